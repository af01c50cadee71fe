/* mrl_gemm against a double-precision naive loop: the three layouts (A B,
 * A B^T, A^T B, and A^T B^T, which the contract also allows), many shapes
 * (odd sizes, 1xN, Mx1, K=1, sizes that are not multiples of any blocking,
 * leading dimensions wider than the matrix), beta = 0, 1 and other values,
 * every kernel this CPU can run, bitwise run-to-run determinism, and that
 * C's padding columns are never written.
 *
 * `test_gemm --checksum` prints one line of bitwise checksums of products
 * large enough to take the OpenMP path; tools/run_tests.sh compares it for
 * OMP_NUM_THREADS=1 and 2 with a -fopenmp build.
 * cc -std=c99 -O2 tests/test_gemm.c -o build/test_gemm -lm && ./build/test_gemm */
#define MEMRL_TENSOR_IMPLEMENTATION
#include "../memrl_tensor.h"
#include "test.h"

#include <string.h>

/* element (i, j) of op(X) for X stored with row stride ld */
static float at(const float *x, int ld, int trans, int i, int j) {
  return trans ? x[(size_t)j * ld + i] : x[(size_t)i * ld + j];
}

static void fill(mrl_rng *rng, float *x, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) x[i] = mrl_rng_uniform_range(rng, -1.0f, 1.0f);
}

/* One product checked against double precision. Tolerance: each element is
 * a k-term float chain, so its error is at most about k * eps * sum|a||b|
 * (plus beta*C's rounding); we allow 2 k eps sum|a b| + 1e-6. */
static int check_one(mrl_rng *rng, int isa, int ta, int tb, int m, int n, int k, int pad,
                     float beta) {
  int lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
  int rows_a = ta ? k : m, rows_b = tb ? n : k, i, j, p, bad = 0;
  /* A and B allocated to the last element they hold (so the sanitizers see
   * any read past it), starting off 16-byte alignment for odd shapes */
  int off = (m + n + k) & 1;
  size_t na = (size_t)(rows_a - 1) * lda + (ta ? m : k) + off;
  size_t nb = (size_t)(rows_b - 1) * ldb + (tb ? k : n) + off, nc = (size_t)m * ldc + 1;
  float *abuf = (float *)malloc(sizeof(float) * na), *bbuf = (float *)malloc(sizeof(float) * nb);
  float *c = (float *)malloc(sizeof(float) * nc), *c0 = (float *)malloc(sizeof(float) * nc);
  float *c2 = (float *)malloc(sizeof(float) * nc), *a = abuf + off, *b = bbuf + off;
  fill(rng, abuf, na);
  fill(rng, bbuf, nb);
  fill(rng, c0, nc);
  if (beta == 0.0f) /* beta = 0 must ignore C, even NaN */
    for (i = 0; i < m; i++) c0[(size_t)i * ldc] = NAN;
  memcpy(c, c0, sizeof(float) * nc);
  mrl__gemm_isa_run(isa, ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);
  memcpy(c2, c0, sizeof(float) * nc);
  mrl__gemm_isa_run(isa, ta, tb, m, n, k, a, lda, b, ldb, beta, c2, ldc);
  for (i = 0; i < m && bad < 3; i++) {
    for (j = 0; j < ldc && bad < 3; j++) {
      size_t o = (size_t)i * ldc + j;
      if (j >= n) { /* padding columns untouched */
        if (memcmp(&c[o], &c0[o], sizeof(float)) != 0) {
          bad++;
          MRL_CHECK(0, "isa %d ta %d tb %d %dx%dx%d pad %d: wrote padding (%d,%d)", isa, ta, tb, m,
                    n, k, pad, i, j);
        }
        continue;
      }
      {
        double want = beta == 0.0f ? 0.0 : (double)beta * c0[o], mag = fabs(want);
        double tol;
        for (p = 0; p < k; p++) {
          double t = (double)at(a, lda, ta, i, p) * at(b, ldb, tb, p, j);
          want += t;
          mag += fabs(t);
        }
        tol = 2.0 * (k + 2) * 1.2e-7 * mag + 1e-6;
        if (!(fabs(c[o] - want) <= tol)) {
          bad++;
          MRL_CHECK(0, "isa %d ta %d tb %d %dx%dx%d pad %d beta %g: C(%d,%d) = %.9g, want %.9g",
                    isa, ta, tb, m, n, k, pad, (double)beta, i, j, (double)c[o], want);
        }
      }
    }
  }
  if (memcmp(c, c2, sizeof(float) * nc) != 0) {
    bad++;
    MRL_CHECK(0, "isa %d ta %d tb %d %dx%dx%d: two runs differ", isa, ta, tb, m, n, k);
  }
  free(abuf);
  free(bbuf);
  free(c);
  free(c0);
  free(c2);
  return bad == 0;
}

static int isa_available(int isa) {
  if (isa == MRL__ISA_C) return 1;
#ifdef MRL__X86_SIMD
  if (isa == MRL__ISA_AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == MRL__ISA_AVX512) return __builtin_cpu_supports("avx512f");
#endif
  return 0;
}

/* Path independence (see the gemm notes in memrl_tensor.h): in the layouts
 * A B, A^T B and A^T B^T every element is the same chain whichever path runs,
 * so rows computed alone (the direct path for one or two rows) equal the same
 * rows of a large product (packed path), bitwise; and the AVX2 and AVX-512
 * kernels, both fused multiply-add chains, agree bitwise in every layout once
 * A B^T leaves its dot-product path (more than 16 rows and 4 columns). */
static int check_paths(mrl_rng *rng, int ta, int tb, int m, int n, int k) {
  int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, rows_a = ta ? k : m;
  int rows_b = tb ? n : k, isa, i, ok = 1;
  size_t na = (size_t)rows_a * lda, nb = (size_t)rows_b * ldb, nc = (size_t)m * n;
  float *a = (float *)malloc(sizeof(float) * na), *b = (float *)malloc(sizeof(float) * nb);
  float *c0 = (float *)malloc(sizeof(float) * nc), *c = (float *)malloc(sizeof(float) * nc);
  float *prev = (float *)malloc(sizeof(float) * nc), *row = (float *)malloc(sizeof(float) * 2 * n);
  fill(rng, a, na);
  fill(rng, b, nb);
  fill(rng, c0, nc);
  for (isa = 0; isa <= MRL__ISA_AVX512; isa++) {
    if (!isa_available(isa)) continue;
    memcpy(c, c0, sizeof(float) * nc);
    mrl__gemm_isa_run(isa, ta, tb, m, n, k, a, lda, b, ldb, 1.0f, c, n);
    if (!(ta == 0 && tb == 1)) {
      for (i = 0; i + 2 <= m; i += m / 3 + 1) { /* rows i and i+1 alone */
        const float *ai = ta ? a + i : a + (size_t)i * lda;
        memcpy(row, c0 + (size_t)i * n, sizeof(float) * 2 * n);
        mrl__gemm_isa_run(isa, ta, tb, 2, n, k, ai, lda, b, ldb, 1.0f, row, n);
        ok &= memcmp(row, c + (size_t)i * n, sizeof(float) * 2 * n) == 0;
        memcpy(row, c0 + (size_t)i * n, sizeof(float) * n);
        mrl__gemm_isa_run(isa, ta, tb, 1, n, k, ai, lda, b, ldb, 1.0f, row, n);
        ok &= memcmp(row, c + (size_t)i * n, sizeof(float) * n) == 0;
      }
    }
    if (isa == MRL__ISA_AVX512 && isa_available(MRL__ISA_AVX2) &&
        (!(ta == 0 && tb == 1) || (m > 16 && n > 4 && m * n * k > 4096)))
      ok &= memcmp(prev, c, sizeof(float) * nc) == 0;
    memcpy(prev, c, sizeof(float) * nc);
  }
  MRL_CHECK(ok, "ta %d tb %d %dx%dx%d: rows alone or another SIMD kernel differ bitwise", ta, tb, m,
            n, k);
  free(a);
  free(b);
  free(c0);
  free(c);
  free(prev);
  free(row);
  return ok;
}

/* One-row A B^T (acting): the 8-column path gives each element bitwise what
 * the 4-column dot tiles give (C computed 4 columns at a time, n < 8). */
/* C's rows starting from a row c0 (mrl__gemm_run, the linear layer's bias):
 * bitwise the same as C's rows holding c0 and beta = 1, on every kernel and
 * path (packed, edge tiles, narrow C as C^T, direct rows and dots, k = 0),
 * whatever C held before (NaN). */
static void check_start_row(mrl_rng *rng) {
  static const int shapes[][3] = {{512, 192, 64}, {100, 33, 17}, {37, 70, 300}, {200, 5, 40},
                                  {16, 64, 64},   {3, 40, 20},   {30, 200, 0},  {13, 45, 8}};
  int s, isa, t, ok = 1;
  for (s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++)
    for (t = 0; t < 4; t++) {
      int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2], ta = t & 1, tb = t >> 1, i;
      int lda = (ta ? m : k) + 1, ldb = (tb ? k : n) + 2, ldc = n + 3;
      size_t na = (size_t)(ta ? k : m) * lda + 1, nb = (size_t)(tb ? n : k) * ldb + 1;
      size_t nc = (size_t)m * ldc;
      float *a = (float *)malloc(sizeof(float) * na), *b = (float *)malloc(sizeof(float) * nb);
      float *c0 = (float *)malloc(sizeof(float) * (size_t)n);
      float *want = (float *)malloc(sizeof(float) * nc), *got = (float *)malloc(sizeof(float) * nc);
      fill(rng, a, na);
      fill(rng, b, nb);
      fill(rng, c0, (size_t)n);
      for (isa = 0; isa <= MRL__ISA_AVX512; isa++) {
        if (!isa_available(isa)) continue;
        for (i = 0; i < (int)nc; i++) want[i] = got[i] = NAN;
        for (i = 0; i < m; i++) memcpy(want + (size_t)i * ldc, c0, sizeof(float) * (size_t)n);
        mrl__gemm_isa_run(isa, ta, tb, m, n, k, a, lda, b, ldb, 1.0f, want, ldc);
        mrl__gemm_run(isa, ta, tb, m, n, k, a, lda, b, ldb, 0.0f, c0, got, ldc);
        if (memcmp(want, got, sizeof(float) * nc) != 0) {
          ok = 0;
          MRL_CHECK(0, "start row: isa %d ta %d tb %d %dx%dx%d differs", isa, ta, tb, m, n, k);
        }
      }
      free(a);
      free(b);
      free(c0);
      free(want);
      free(got);
    }
  MRL_CHECK(ok, "C from a start row = C holding it with beta 1, bitwise");
}

static void check_one_row(mrl_rng *rng) {
  static const int ns[] = {8, 9, 15, 16, 24, 31, 64, 67, 256};
  static const int ks[] = {1, 3, 7, 8, 9, 15, 16, 17, 33, 64, 65};
  int isa, in, ik, j, ok = 1;
  for (isa = 0; isa <= MRL__ISA_AVX512; isa++) {
    if (!isa_available(isa)) continue;
    for (in = 0; in < (int)(sizeof ns / sizeof ns[0]); in++)
      for (ik = 0; ik < (int)(sizeof ks / sizeof ks[0]); ik++) {
        int n = ns[in], k = ks[ik], ldb = k + (ik % 3);
        float *a = (float *)malloc(sizeof(float) * (size_t)k);
        float *b = (float *)malloc(sizeof(float) * (size_t)n * ldb);
        float *c = (float *)malloc(sizeof(float) * (size_t)n);
        float *c4 = (float *)malloc(sizeof(float) * (size_t)n);
        fill(rng, a, (size_t)k);
        fill(rng, b, (size_t)n * ldb);
        fill(rng, c, (size_t)n);
        memcpy(c4, c, sizeof(float) * (size_t)n);
        mrl__gemm_isa_run(isa, 0, 1, 1, n, k, a, k, b, ldb, 1.0f, c, n);
        for (j = 0; j < n; j += 4)
          mrl__gemm_isa_run(isa, 0, 1, 1, n - j < 4 ? n - j : 4, k, a, k, b + (size_t)j * ldb, ldb,
                            1.0f, c4 + j, n - j < 4 ? n - j : 4);
        if (memcmp(c, c4, sizeof(float) * (size_t)n) != 0) {
          ok = 0;
          MRL_CHECK(0, "isa %d one row 1x%dx%d: 8-column path differs from 4-column tiles", isa, n,
                    k);
        }
        free(a);
        free(b);
        free(c);
        free(c4);
      }
  }
  MRL_CHECK(ok, "one-row A B^T paths agree bitwise");
}

/* Bitwise checksum (FNV-1a over the bytes) of several large products. */
static int print_checksums(void) {
  static const int shapes[][3] = {
      {300, 200, 260}, {257, 511, 129}, {96, 1000, 300}, {3000, 6, 400}};
  mrl_rng rng = mrl_rng_make(7);
  int s, t;
  for (s = 0; s < 4; s++) {
    int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
    size_t big = (size_t)(m > n ? m : n) * (size_t)(k > n ? k : n), i;
    float *a = (float *)malloc(sizeof(float) * big), *b = (float *)malloc(sizeof(float) * big);
    float *c = (float *)malloc(sizeof(float) * (size_t)m * n);
    fill(&rng, a, big);
    fill(&rng, b, big);
    for (t = 0; t < 3; t++) {
      int ta = t == 2, tb = t == 1;
      uint64_t h = 1469598103934665603ull;
      const unsigned char *bytes = (const unsigned char *)c;
      mrl_gemm(ta, tb, m, n, k, a, ta ? m : k, b, tb ? k : n, 0.0f, c, n);
      for (i = 0; i < sizeof(float) * (size_t)m * n; i++) h = (h ^ bytes[i]) * 1099511628211ull;
      printf("%016llx ", (unsigned long long)h);
    }
    free(a);
    free(b);
    free(c);
  }
  printf("\n");
  return 0;
}

/* A prepacked op(B) (mrl__gemm_pack_b + mrl__gemm_prepacked, the recurrent
 * layers' W_hh) equals mrl_gemm bitwise wherever that takes the packed path:
 * odd shapes across the NC, KC and NR edges, both op(A) and op(B), padded
 * strides, beta 0, 1 and 0.5, every kernel this CPU has. The packed buffer is
 * filled with NaN first, so a panel read from the wrong place shows. */
static void check_prepacked(mrl_rng *rng) {
  static const int shapes[][3] = {{4, 16, 70},   {5, 33, 129},   {13, 129, 130},  {16, 257, 300},
                                  {17, 200, 64}, {49, 130, 257}, {16, 1024, 256}, {7, 45, 513}};
  static const float betas[] = {0.0f, 1.0f, 0.5f};
  int isa, s, t;
  for (isa = 0; isa <= MRL__ISA_AVX512; isa++) {
    if (!isa_available(isa)) continue;
    for (s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++)
      for (t = 0; t < 4; t++) {
        int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2], ta = t & 1, tb = t >> 1;
        /* the packed path's A B^T needs more than 16 rows (or 8-16 over a short k) */
        int mm = tb && !ta && m <= 16 && !(m >= 8 && m % 4 == 0 && k <= 4 * m) ? 17 : m;
        int lda = (ta ? mm : k) + 1, ldb = (tb ? k : n) + 3, ldc = n + 2, rows_a = ta ? k : mm;
        size_t na = (size_t)rows_a * lda, nb = (size_t)(tb ? n : k) * ldb, nc = (size_t)mm * ldc;
        size_t np = mrl__gemm_packed_floats(isa, n, k), i;
        float beta = betas[(s + t) % 3];
        float *a = (float *)malloc(sizeof(float) * na), *b = (float *)malloc(sizeof(float) * nb);
        float *c = (float *)malloc(sizeof(float) * nc), *c2 = (float *)malloc(sizeof(float) * nc);
        float *bp = (float *)malloc(sizeof(float) * np);
        m = mm;
        MRL_CHECK(a && b && c && c2 && bp, "prepacked: out of memory");
        if (!a || !b || !c || !c2 || !bp) return;
        fill(rng, a, na);
        fill(rng, b, nb);
        fill(rng, c, nc);
        memcpy(c2, c, sizeof(float) * nc);
        for (i = 0; i < np; i++) bp[i] = NAN;
        mrl__gemm_isa_run(isa, ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);
        mrl__gemm_pack_b(isa, tb, n, k, b, ldb, bp);
        mrl__gemm_prepacked(isa, ta, m, n, k, a, lda, bp, beta, c2, ldc);
        MRL_CHECK(memcmp(c, c2, sizeof(float) * nc) == 0,
                  "prepacked isa %d ta %d tb %d %dx%dx%d beta %g: differs from mrl_gemm", isa, ta,
                  tb, m, n, k, (double)beta);
        free(a);
        free(b);
        free(c);
        free(c2);
        free(bp);
      }
  }
}

int main(int argc, char **argv) {
  static const int sizes[] = {1, 2, 3, 5, 7, 8, 13, 16, 17, 31, 33, 64, 97};
  static const float betas[] = {0.0f, 1.0f, 0.5f};
  mrl_rng rng = mrl_rng_make(1234);
  int nsz = (int)(sizeof sizes / sizeof sizes[0]), isa, t, s, ok;
  if (argc > 1 && strcmp(argv[1], "--checksum") == 0) return print_checksums();
  for (isa = 0; isa <= MRL__ISA_AVX512; isa++) {
    if (!isa_available(isa)) {
      printf("kernel %d not available on this CPU, skipped\n", isa);
      continue;
    }
    for (t = 0; t < 4; t++) {
      int ta = t & 1, tb = t >> 1, i1, i2, i3;
      /* all small combinations of m, n, k */
      ok = 1;
      for (i1 = 0; i1 < nsz; i1 += 2)
        for (i2 = 0; i2 < nsz; i2 += 1)
          for (i3 = 0; i3 < nsz; i3 += 3)
            ok &= check_one(&rng, isa, ta, tb, sizes[i1], sizes[i2], sizes[i3], (i1 + i2) % 3,
                            betas[(i1 + i2 + i3) % 3]);
      MRL_CHECK(ok, "isa %d ta %d tb %d: small shapes", isa, ta, tb);
      /* shapes across the blocking: edges of MC, NC, KC and the kernels' MR, NR */
      {
        static const int big[][3] = {
            {1, 1, 1},     {1, 700, 300}, {700, 1, 300},   {300, 300, 1},  {200, 190, 257},
            {97, 96, 255}, {96, 97, 256}, {193, 289, 513}, {16, 512, 512}, {17, 130, 64},
            {4, 333, 65},  {5, 64, 512},  {12, 32, 40},    {13, 33, 1000}, {130, 70, 20},
            {16, 256, 64}, {8, 40, 32},   {12, 9, 48},     {16, 7, 65}}; /* 8/12/16 rows, short k */
        ok = 1;
        for (s = 0; s < (int)(sizeof big / sizeof big[0]); s++)
          ok &= check_one(&rng, isa, ta, tb, big[s][0], big[s][1], big[s][2], s % 2 ? 5 : 0,
                          betas[s % 3]);
        MRL_CHECK(ok, "isa %d ta %d tb %d: large shapes", isa, ta, tb);
      }
    }
  }
  for (t = 0; t < 4; t++) {
    check_paths(&rng, t & 1, t >> 1, 50, 70, 300);
    check_paths(&rng, t & 1, t >> 1, 13, 40, 600);
    check_paths(&rng, t & 1, t >> 1, 100, 33, 17);
    check_paths(&rng, t & 1, t >> 1, 30, 200, 64);
    check_paths(&rng, t & 1, t >> 1, 200, 5, 150); /* narrow C: computed as C^T */
    check_paths(&rng, t & 1, t >> 1, 64, 15, 40);
    check_paths(&rng, t & 1, t >> 1, 610, 40, 130); /* lda > 512: A^T packed row by row */
  }
  check_one_row(&rng);
  check_start_row(&rng);
  check_prepacked(&rng);
  /* m, n or k zero: C only scaled by beta */
  {
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 4}, c[4] = {1, 2, 3, 4};
    mrl_gemm(0, 0, 2, 2, 0, a, 1, b, 2, 0.5f, c, 2);
    MRL_CHECK(c[0] == 0.5f && c[3] == 2.0f, "k = 0 scales C by beta");
    mrl_gemm(0, 0, 0, 2, 2, a, 2, b, 2, 0.0f, c, 2);
    MRL_CHECK(c[0] == 0.5f, "m = 0 leaves C alone");
  }
  return mrl_test_summary("test_gemm");
}
