/* Minimal test harness shared by every test program.
 *
 * Each check prints one line on failure; mrl_test_summary() prints
 * "<program>: N passed, N failed" and returns the exit status.
 * tools/run_tests.sh adds the counts of all programs into the one closing
 * line of `make test`. */
#ifndef MRL_TEST_H
#define MRL_TEST_H
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct mrl_test_state {
  int passed, failed;
} mrl_test_state;

static mrl_test_state mrl_test_g; /* test programs only; the library has no globals */

#define MRL_CHECK(cond, ...)                                                                       \
  do {                                                                                             \
    if (cond) {                                                                                    \
      mrl_test_g.passed++;                                                                         \
    } else {                                                                                       \
      mrl_test_g.failed++;                                                                         \
      printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                  \
      printf(__VA_ARGS__);                                                                         \
      printf("\n");                                                                                \
    }                                                                                              \
  } while (0)

/* |a - b| <= atol + rtol * |b| */
#define MRL_CHECK_NEAR(a, b, atol, rtol, what)                                                     \
  do {                                                                                             \
    double mrl__a = (double)(a), mrl__b = (double)(b);                                             \
    MRL_CHECK(fabs(mrl__a - mrl__b) <= (atol) + (rtol)*fabs(mrl__b), "%s: got %.9g, want %.9g",    \
              what, mrl__a, mrl__b);                                                               \
  } while (0)

static int mrl_test_summary(const char *program) {
  printf("%s: %d passed, %d failed\n", program, mrl_test_g.passed, mrl_test_g.failed);
  return mrl_test_g.failed ? 1 : 0;
}
#endif
