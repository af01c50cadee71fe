/* MRL_CHECK_FINITE: the first op whose output holds a NaN or Inf stops, and
 * the message names that op and its inputs' shapes. This program compiles
 * memrl_tensor.h with the option and with an MRL_ASSERT that records the
 * failure and jumps back here instead of aborting, so one process can check
 * several ops. stderr is redirected into a temporary file to read the
 * message.
 *
 * Run from the repository root:
 *   cc -std=c99 -O2 tests/test_tensor_finite.c -lm && ./a.out */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdio.h>

static jmp_buf finite_jump;
static int finite_stops; /* test program only: how many times MRL_ASSERT fired */

#define MRL_ASSERT(c)                                                                              \
  do {                                                                                             \
    if (!(c)) {                                                                                    \
      finite_stops++;                                                                              \
      longjmp(finite_jump, 1);                                                                     \
    }                                                                                              \
  } while (0)
#define MRL_CHECK_FINITE
#define MEMRL_IMPLEMENTATION
#include "../memrl_tensor.h"
#include "test.h"
#if defined(__unix__)
#include <unistd.h>
#endif

enum { CASE_EXP, CASE_DIV, CASE_SQRT, CASE_MATMUL, CASE_LOG_SOFTMAX, CASE_MASKED, CASE_CLEAN };

/* Builds a small graph for one case; the op that goes non-finite is inside. */
static mrl_tensor *finite_case(mrl_graph *g, int which) {
  static const float xd[6] = {0.5f, -1.0f, 2.0f, 1.5f, -0.25f, 3.0f};
  static const float zd[3] = {1.0f, 0.0f, 2.0f}, mask[3] = {1.0f, 0.0f, 0.0f};
  static const float big[24] = {1e30f, 1e30f, 1e30f, 1e30f, 1e30f, 1e30f, 1e30f, 1e30f,
                                1e30f, 1e30f, 1e30f, 1e30f, 1e30f, 1e30f, 1e30f, 1e30f,
                                1e30f, 1e30f, 1e30f, 1e30f, 1e30f, 1e30f, 1e30f, 1e30f};
  int s23[2] = {2, 3}, s3[1] = {3}, s234[3] = {2, 3, 4}, s43[2] = {4, 3};
  mrl_tensor *x = mrl_tensor_from(g, xd, 2, s23), *y;
  switch (which) {
  case CASE_EXP: /* exp(100 x) overflows; the tanh after it must not be blamed */
    return mrl_tanh(g, mrl_exp(g, mrl_scale(g, x, 100.0f)));
  case CASE_DIV: /* [2,3] / [3] with a zero: broadcasting div is named with both shapes */
    return mrl_sum(g, mrl_div(g, x, mrl_tensor_from(g, zd, 1, s3)));
  case CASE_SQRT: return mrl_sqrt(g, mrl_sum_axis(g, x, 0, 0));
  case CASE_MATMUL: /* batched matmul overflows to Inf */
    y = mrl_tensor_from(g, big, 3, s234);
    return mrl_matmul(g, y, mrl_tensor_from(g, big, 2, s43));
  case CASE_LOG_SOFTMAX: /* log of a softmax that underflows to 0 */
    y = mrl_softmax(g, mrl_scale(g, x, 100.0f), -1, NULL);
    return mrl_log(g, y);
  case CASE_MASKED: /* masked entries are 0 / -1e8: finite, no stop */
    y = mrl_log_softmax_axis(g, x, -1, mrl_tensor_from(g, mask, 1, s3));
    return mrl_sum(g, mrl_mul(g, y, mrl_softmax(g, x, 1, mrl_tensor_from(g, mask, 1, s3))));
  default: return mrl_mean(g, mrl_gelu(g, mrl_softmax(g, x, 0, NULL)));
  }
}

/* Runs one case with stderr in a temporary file; returns 1 if MRL_ASSERT
 * fired, and the message in msg. */
static int run_case(int which, char *msg, size_t cap) {
  mrl_graph g;
  FILE *tmp = tmpfile();
  int saved = -1, stopped, before = finite_stops;
  size_t len = 0;
  msg[0] = '\0';
  fflush(stderr);
#if defined(__unix__)
  if (tmp) {
    saved = dup(2);
    dup2(fileno(tmp), 2);
  }
#endif
  mrl_graph_init(&g, 1 << 14);
  if (setjmp(finite_jump) == 0) (void)finite_case(&g, which);
  stopped = finite_stops > before;
  mrl_graph_free(&g);
  fflush(stderr);
#if defined(__unix__)
  if (saved >= 0) {
    dup2(saved, 2);
    close(saved);
  }
#endif
  if (tmp) {
    rewind(tmp);
    len = fread(msg, 1, cap - 1, tmp);
    msg[len] = '\0';
    fclose(tmp);
  }
  return stopped;
}

static void expect_stop(const char *what, int which, const char *op, const char *s1,
                        const char *s2) {
  char msg[2048], prefix[64];
  int stopped = run_case(which, msg, sizeof msg);
  MRL_CHECK(stopped, "%s: MRL_CHECK_FINITE did not stop", what);
#if defined(__unix__)
  snprintf(prefix, sizeof prefix, "memrl: %s produced a non-finite value", op);
  MRL_CHECK(strstr(msg, prefix) != NULL, "%s: message does not start with \"%s\": \"%s\"", what,
            prefix, msg);
  MRL_CHECK(strstr(msg, s1) != NULL, "%s: message lacks %s: \"%s\"", what, s1, msg);
  MRL_CHECK(!s2 || strstr(msg, s2) != NULL, "%s: message lacks %s: \"%s\"", what, s2, msg);
#else
  (void)prefix;
  (void)op;
  (void)s1;
  (void)s2;
#endif
}

int main(void) {
  char msg[2048];
  expect_stop("exp overflow", CASE_EXP, "exp", "(inputs [2,3]", NULL);
  expect_stop("broadcast div by zero", CASE_DIV, "div", "[2,3]", "[3])");
  expect_stop("sqrt of a negative sum", CASE_SQRT, "sqrt", "(inputs [3]", NULL);
  expect_stop("batched matmul overflow", CASE_MATMUL, "matmul", "[2,3,4]", "[4,3])");
  expect_stop("log of an underflowed softmax", CASE_LOG_SOFTMAX, "log", "(inputs [2,3]", NULL);
  MRL_CHECK(!run_case(CASE_MASKED, msg, sizeof msg),
            "masked softmax / log_softmax must stay finite: \"%s\"", msg);
  MRL_CHECK(!run_case(CASE_CLEAN, msg, sizeof msg), "a finite graph stopped: \"%s\"", msg);
  return mrl_test_summary("test_tensor_finite");
}
