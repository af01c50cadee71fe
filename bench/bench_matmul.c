/* Matrix multiply and tape overhead.
 *
 * GFLOP/s of mrl_gemm for square sizes and the skinny shapes RL acting and
 * training use (batch 1 and 16 against 64..512 hidden, in the x W^T layout of
 * mrl_linear), each beside a naive triple loop and OpenBLAS single-threaded
 * measured in the same run. OpenBLAS is loaded at run time with dlopen, so it
 * is never a build dependency; `ref=none` where it is not installed. Every
 * figure is the best of several timed rounds after a warm-up (CPU time of
 * the process; calls in batches of about 2 MFLOP between clock reads).
 * Built with -fopenmp, it instead reports the speedup of large products on 2
 * threads over 1 (same binary, omp_set_num_threads).
 * The last figure is the cost of recording one tiny op on the tape and
 * replaying it in mrl_backward, in nanoseconds per op.
 * cc -std=c99 -O2 bench/bench_matmul.c -o bench_matmul -lm -ldl && ./bench_matmul
 * (add -DBENCH_ISA=1 to time the AVX2 kernel on an AVX-512 CPU, -DMRL_NO_SIMD
 * for the portable one) */
#define _POSIX_C_SOURCE 199309L
#define MEMRL_TENSOR_IMPLEMENTATION
#include "../memrl_tensor.h"

#include <dlfcn.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Single-threaded figures use the process's CPU time, so time slices lost
 * to other processes on a shared machine do not count; the OpenMP figures
 * need wall time. */
#ifdef _OPENMP
#define BENCH_CLOCK CLOCK_MONOTONIC
#else
#define BENCH_CLOCK CLOCK_PROCESS_CPUTIME_ID
#endif
static double now_s(void) {
  struct timespec ts;
  clock_gettime(BENCH_CLOCK, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static volatile float bench_sink;

/* ---- OpenBLAS through dlopen (cblas enums as in cblas.h) ---- */
typedef void (*sgemm_fn)(int order, int ta, int tb, int m, int n, int k, float alpha,
                         const float *a, int lda, const float *b, int ldb, float beta, float *c,
                         int ldc);
typedef void (*set_threads_fn)(int);
#ifndef BENCH_OPENBLAS
#define BENCH_OPENBLAS "libopenblas.so.0" /* -DBENCH_OPENBLAS=\"x.so\" to try another */
#endif
static sgemm_fn blas_load(void) {
  void *h = dlopen(BENCH_OPENBLAS, RTLD_NOW | RTLD_LOCAL);
  sgemm_fn f;
  set_threads_fn st;
  if (!h) return NULL;
  /* object-to-function pointer casts through memcpy keep -pedantic quiet */
  {
    void *sym = dlsym(h, "openblas_set_num_threads");
    if (!sym) return NULL;
    memcpy(&st, &sym, sizeof st);
    sym = dlsym(h, "cblas_sgemm");
    if (!sym) return NULL;
    memcpy(&f, &sym, sizeof f);
  }
  st(1);
  return f;
}

typedef struct shape {
  int m, n, k, ta, tb;
} shape;

static void naive(const shape *s, const float *a, const float *b, float *c) {
  int i, j, p, lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
  for (i = 0; i < s->m; i++)
    for (j = 0; j < s->n; j++) {
      float acc = 0.0f;
      for (p = 0; p < s->k; p++)
        acc += (s->ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p]) *
               (s->tb ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j]);
      c[(size_t)i * s->n + j] = acc;
    }
}

/* which: 0 memrl, 1 naive, 2 OpenBLAS. One timed round of at least `sec`
 * seconds, calls in batches of about 2 MFLOP between clock reads; GFLOP/s. */
static double round_gflops(int which, const shape *s, const float *a, const float *b, float *c,
                           sgemm_fn blas, double sec) {
  double flops = 2.0 * s->m * s->n * s->k, t0 = now_s(), t1;
  int lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n, batch = (int)(2e6 / flops) + 1, i;
  long reps = 0;
  do {
    for (i = 0; i < batch; i++) {
      if (which == 0)
#ifdef BENCH_ISA /* force a kernel: 0 portable, 1 AVX2+FMA, 2 AVX-512 */
        mrl__gemm_isa_run(BENCH_ISA, s->ta, s->tb, s->m, s->n, s->k, a, lda, b, ldb, 0.0f, c, s->n);
#else
        mrl_gemm(s->ta, s->tb, s->m, s->n, s->k, a, lda, b, ldb, 0.0f, c, s->n);
#endif
      else if (which == 1)
        naive(s, a, b, c);
      else
        blas(101, s->ta ? 112 : 111, s->tb ? 112 : 111, s->m, s->n, s->k, 1.0f, a, lda, b, ldb,
             0.0f, c, s->n);
    }
    reps += batch;
    t1 = now_s();
  } while (t1 - t0 < sec);
  bench_sink = c[0];
  return flops * reps / (t1 - t0) * 1e-9;
}

#ifndef _OPENMP
/* Best of `rounds` rounds after a warm-up round; memrl and OpenBLAS
 * alternate round by round so that load from other processes skews both alike. */
static void measure(const shape *s, const float *a, const float *b, float *c, sgemm_fn blas,
                    int rounds, double sec, double *mine, double *ref) {
  int r;
  *mine = *ref = 0.0;
  for (r = -1; r < rounds; r++) {
    double v = round_gflops(0, s, a, b, c, NULL, sec),
           w = blas ? round_gflops(2, s, a, b, c, blas, sec) : 0.0;
    if (r >= 0 && v > *mine) *mine = v;
    if (r >= 0 && w > *ref) *ref = w;
  }
}

#endif

static void line(const char *name, double v, const char *unit, const char *ref, double rv) {
  if (rv > 0.0)
    printf("BENCH name=%s value=%.2f unit=%s ref=%s ref_value=%.2f speedup=%.2f\n", name, v, unit,
           ref, rv, v / rv);
  else
    printf("BENCH name=%s value=%.2f unit=%s ref=none ref_value=- speedup=-\n", name, v, unit);
}

static void fill(float *x, size_t n) {
  mrl_rng rng = mrl_rng_make(42);
  size_t i;
  for (i = 0; i < n; i++) x[i] = mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
}

#ifndef _OPENMP
/* ns per tiny op: 1000 alternating adds and muls on [1] tensors recorded on
 * the tape, then mrl_backward over them; reset between rounds. */
static double tape_ns_per_op(void) {
  enum { OPS = 1000 };
  mrl_graph g;
  float xd[1] = {0.5f}, xg[1] = {0.0f}, yd[1] = {1.0001f}, yg[1] = {0.0f};
  int shape[1] = {1}, r, i;
  mrl_tensor x = mrl_tensor_make(xd, xg, 1, shape), y = mrl_tensor_make(yd, yg, 1, shape);
  double best = 1e30;
  if (mrl_graph_init(&g, 1 << 20) != MRL_OK) return 0.0;
  for (r = 0; r < 200; r++) {
    double t0 = now_s(), t;
    mrl_tensor *h = &x;
    for (i = 0; i < OPS / 2; i++) h = mrl_mul(&g, mrl_add(&g, h, &x), &y);
    mrl_backward(&g, h);
    t = now_s() - t0;
    bench_sink = xg[0];
    mrl_graph_reset(&g);
    if (r >= 5 && t < best) best = t;
  }
  mrl_graph_free(&g);
  return best * 1e9 / OPS;
}
#endif

int main(void) {
  sgemm_fn blas = blas_load();
  static const int square[] = {64, 128, 256, 512, 1024};
  static const int hidden[] = {64, 128, 256, 512};
  shape shapes[32];
  int ns = 0, i;
  size_t big = 1024 * 1024;
  float *a = (float *)malloc(sizeof(float) * big), *b = (float *)malloc(sizeof(float) * big);
  float *c = (float *)malloc(sizeof(float) * big);
  char name[64];
  fill(a, big);
  fill(b, big);
#ifdef _OPENMP
  /* 2 threads over 1 on large products (the library's OpenMP path) */
  for (i = 2; i < 5; i++) {
    shape s = {square[i], square[i], square[i], 0, 0};
    double one = 0.0, two = 0.0;
    int r;
    for (r = -1; r < 10; r++) { /* alternate 1 and 2 threads, best of each */
      double v;
      omp_set_num_threads(1);
      v = round_gflops(0, &s, a, b, c, NULL, 0.1);
      if (r >= 0 && v > one) one = v;
      omp_set_num_threads(2);
      v = round_gflops(0, &s, a, b, c, NULL, 0.1);
      if (r >= 0 && v > two) two = v;
    }
    sprintf(name, "sgemm_%d_omp2", square[i]);
    line(name, two, "GFLOP/s", "memrl_1thread", one);
  }
  (void)blas;
  (void)hidden;
  (void)ns;
  (void)shapes;
#else
  for (i = 0; i < 5; i++) {
    shape s = {square[i], square[i], square[i], 0, 0};
    shapes[ns++] = s;
  }
  for (i = 0; i < 4; i++) { /* x[1,K] W[N,K]^T and x[16,K] W[N,K]^T with K = N */
    shape s1 = {1, hidden[i], hidden[i], 0, 1}, s16 = {16, hidden[i], hidden[i], 0, 1};
    shapes[ns++] = s1;
    shapes[ns++] = s16;
  }
  { /* the other layouts at 16 x 512 x 512 and 256^3 (backward passes) */
    shape s1 = {16, 512, 512, 0, 0}, s2 = {256, 256, 256, 0, 1}, s3 = {256, 256, 256, 1, 0};
    shapes[ns++] = s1;
    shapes[ns++] = s2;
    shapes[ns++] = s3;
  }
  { /* policy (4 actions) and value heads on a batch of 128, and the policy
     * head's weight gradient (dW = dY^T X) */
    shape h1 = {128, 4, 128, 0, 1}, h2 = {128, 1, 128, 0, 1}, h3 = {4, 128, 128, 1, 0};
    shapes[ns++] = h1;
    shapes[ns++] = h2;
    shapes[ns++] = h3;
  }
  if (!blas) printf("OpenBLAS (%s) not found: ref=none for that comparison\n", BENCH_OPENBLAS);
  for (i = 0; i < ns; i++) {
    const shape *s = &shapes[i];
    double v, nv, bv;
    measure(s, a, b, c, blas, 7, 0.05, &v, &bv);
    nv = round_gflops(1, s, a, b, c, NULL, 0.05); /* the naive loop: one round */
    if (s->m * s->n * s->k < 512 * 512 * 512) {
      double w = round_gflops(1, s, a, b, c, NULL, 0.05);
      nv = w > nv ? w : nv;
    }
    sprintf(name, "sgemm_%s%s_%dx%dx%d", s->ta ? "t" : "n", s->tb ? "t" : "n", s->m, s->n, s->k);
    line(name, v, "GFLOP/s", "naive", nv);
    line(name, v, "GFLOP/s", "openblas_1thread", bv);
  }
  line("tape_record_backward_tiny_op", tape_ns_per_op(), "ns/op", "none", 0.0);
#endif
  free(a);
  free(b);
  free(c);
  return 0;
}
