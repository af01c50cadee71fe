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

/* Counting allocator (define MRL_TEST_COUNT_ALLOCATIONS, then include this
 * file before the memrl headers): every malloc and realloc the library makes
 * is counted in test_alloc_calls, and the one numbered test_alloc_fail_at
 * (when > 0) fails, to test out-of-memory paths. */
#ifdef MRL_TEST_COUNT_ALLOCATIONS
#include <stdlib.h>
static long test_alloc_calls, test_alloc_fail_at;
static void *test_malloc(size_t sz) {
  if (++test_alloc_calls == test_alloc_fail_at) return NULL;
  return malloc(sz);
}
static void *test_realloc(void *p, size_t sz) {
  if (++test_alloc_calls == test_alloc_fail_at) return NULL;
  return realloc(p, sz);
}
static void test_free(void *p) {
  free(p);
}
#define MRL_MALLOC(sz) test_malloc(sz)
#define MRL_REALLOC(p, sz) test_realloc(p, sz)
#define MRL_FREE(p) test_free(p)
#endif

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

/* Programmer errors stop the process: a test runs the offending call in a
 * child (POSIX; the includer defines _POSIX_C_SOURCE 200809L before any
 * #include) and inspects its status and message. */
#if defined(__unix__) && defined(_POSIX_C_SOURCE)
#include <errno.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#define MRL_TEST_HAVE_FORK 1

/* Runs fn in a child with stderr captured into out; returns the wait status,
 * or -1 when the child could not be started. */
static inline int mrl_test_run_captured(void (*fn)(void), char *out, size_t cap) {
  int fds[2], status = 0;
  size_t len = 0;
  pid_t pid;
  out[0] = '\0';
  if (pipe(fds) != 0) return -1;
  fflush(stdout);
  fflush(stderr);
  pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  if (pid == 0) {
    struct rlimit no_core;
    no_core.rlim_cur = no_core.rlim_max = 0;
    setrlimit(RLIMIT_CORE, &no_core); /* no core file in the source tree */
    close(fds[0]);
    dup2(fds[1], 2);
    close(fds[1]);
    fn();
    _exit(0); /* reached only if the op did not stop */
  }
  close(fds[1]);
  for (;;) {
    char chunk[512];
    ssize_t r = read(fds[0], chunk, sizeof chunk);
    if (r > 0) {
      size_t k = (size_t)r < cap - 1 - len ? (size_t)r : cap - 1 - len;
      memcpy(out + len, chunk, k);
      len += k;
    } else if (r == 0 || errno != EINTR) {
      break;
    }
  }
  out[len] = '\0';
  close(fds[0]);
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return status;
}
#endif

static int mrl_test_summary(const char *program) {
  printf("%s: %d passed, %d failed\n", program, mrl_test_g.passed, mrl_test_g.failed);
  return mrl_test_g.failed ? 1 : 0;
}

#endif /* MRL_TEST_H */

/* Outside the guard: a file that includes test.h before memrl_mem.h (to
 * count allocations) includes it again after to get this. */
#if defined(MEMRL_MEM_H) && !defined(MRL_TEST_USER_CORE)
#define MRL_TEST_USER_CORE
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

static const mrl_core_type test_user_gru_type = {"test_user_gru", test_user_gru_init,
                                                 test_user_gru_forward, test_user_gru_free};

#endif
