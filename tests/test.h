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

#ifdef MEMRL_MEM_H
/* A user's own memory core, written as a user would write one against the
 * mrl_core_type table: a GRU (its own state layout h, its own parameters
 * under the given name) honouring mrl_core_forward's contract. config points
 * to the int hidden size. Used by the toolkit and learning tests. */
typedef struct test_user_gru {
  mrl_gru_layer layer;
  int hidden;
} test_user_gru;

static mrl_result test_user_gru_init(void **self, mrl_params *p, const char *name, int input_dim,
                                const void *config, int *output_dim, int *state_dim) {
  test_user_gru *u = (test_user_gru *)malloc(sizeof *u);
  if (!u) return MRL_ERR_OUT_OF_MEMORY;
  u->hidden = *(const int *)config;
  mrl_gru_layer_init(&u->layer, p, name, input_dim, u->hidden, mrl_init_default());
  *self = u;
  *output_dim = u->hidden;
  *state_dim = u->hidden;
  return MRL_OK;
}

static mrl_tensor *test_user_gru_forward(void *self, mrl_graph *g, mrl_tensor *x, int T, int B,
                                    const float *episode_start, const float *state_in,
                                    float *state_out, int stride) {
  test_user_gru *u = (test_user_gru *)self;
  int H = u->hidden, b;
  mrl_tensor *h0 = mrl_tensor_new2(g, B, H, 0), *hT = NULL, *y;
  if (!h0) return NULL;
  for (b = 0; b < B; b++) {
    if (state_in)
      memcpy(h0->data + b * H, state_in + (size_t)b * stride, sizeof(float) * (size_t)H);
    else
      memset(h0->data + b * H, 0, sizeof(float) * (size_t)H);
  }
  y = mrl_gru_sequence(&u->layer, g, x, T, B, h0, episode_start, &hT);
  if (y && state_out)
    for (b = 0; b < B; b++)
      memcpy(state_out + (size_t)b * stride, hT->data + b * H, sizeof(float) * (size_t)H);
  return y;
}

static void test_user_gru_free(void *self) {
  free(self);
}

static const mrl_core_type test_user_gru_type = {"test_user_gru", test_user_gru_init, test_user_gru_forward,
                                            test_user_gru_free};

#endif
#endif
