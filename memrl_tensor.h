/* memrl_tensor.h - tensors, arena, RNG and define-by-run autodiff in one header.
 *
 * Part of memrl (single-header C libraries for reinforcement learning with
 * memory). No dependencies beyond libc and libm. Public domain / MIT, see the
 * end of the file.
 *
 * ENABLING
 *   In exactly one C or C++ file:
 *       #define MEMRL_TENSOR_IMPLEMENTATION   (or MEMRL_IMPLEMENTATION for all headers)
 *       #include "memrl_tensor.h"
 *   Everywhere else include it without the macro.
 *
 * OPTIONS (define before including)
 *   MRL_STATIC                      make every function static (private to one file)
 *   MRL_MALLOC / MRL_REALLOC / MRL_FREE   custom allocator (all three or none)
 *   MRL_ASSERT(c)                   where programmer errors stop (default: assert)
 *   MRL_CHECK_FINITE                stop at the first op whose output holds NaN/Inf
 *   MRL_NO_SIMD                     mrl_gemm: portable C kernel only (no AVX2/AVX-512
 *                                   intrinsics, no run-time CPU check)
 *   MRL_NO_VECTOR_EXTENSIONS        portable kernel in plain scalar C (no GCC vectors)
 *   MRL_GEMM_KC, MRL_GEMM_NC        mrl_gemm depth and column blocks (default 128 and
 *                                   128; NC a multiple of 32): 4*KC*(NC+48) bytes of
 *                                   stack per call (88 KiB)
 *
 * CONCEPTS
 *   mrl_tensor  row-major float32 array of up to 4 dimensions, with an optional
 *               gradient buffer of the same shape (grad == NULL: no gradient).
 *   mrl_arena   bump allocator over a caller buffer (fixed) or the heap (grows
 *               by overflow blocks, folded into one block at the next reset, so
 *               steady-state use allocates nothing). Tracks a high-water mark.
 *   mrl_graph   an arena plus a tape. Every op allocates its output from the
 *               arena and, unless the graph is in no-grad mode and when some
 *               input has a gradient, appends a node. mrl_backward() walks the
 *               tape in reverse and ACCUMULATES (+=) into gradient buffers.
 *               mrl_graph_reset() rewinds both for the next step.
 *   Loops over time simply record more nodes; mrl_detach() cuts the tape for
 *   truncated backpropagation through time.
 *
 * ERRORS
 *   A wrong shape is a programmer error: the op, both shapes and file:line are
 *   printed to stderr and MRL_ASSERT stops. A full fixed arena is recoverable:
 *   the op returns NULL, every later op given NULL returns NULL, and
 *   mrl_graph_status() reports MRL_ERR_OUT_OF_MEMORY. Nothing is written out of
 *   bounds.
 *
 * QUICK START
 *   mrl_graph g;  mrl_graph_init(&g, 1 << 20);
 *   float wd[6] = {...}, wg[6] = {0};
 *   mrl_tensor w = mrl_tensor_make(wd, wg, 2, (int[]){2, 3});   // a parameter
 *   mrl_tensor *x = mrl_tensor_from(&g, xd, 2, (int[]){4, 2});  // an input (copied)
 *   mrl_tensor *y = mrl_tanh(&g, mrl_matmul(&g, x, &w));        // [4,3]
 *   mrl_tensor *loss = mrl_mean(&g, mrl_square(&g, y));
 *   mrl_backward(&g, loss);            // wg += dloss/dw
 *   mrl_graph_reset(&g);               // next step
 *   mrl_graph_free(&g);
 *
 * OPS (all take the graph first; shapes in brackets)
 *   matmul      mrl_matmul [M,K]x[K,N], mrl_matmul_nt [M,K]x[N,K]^T, mrl_matmul_tn [K,M]^T x[K,N]
 *   linear      mrl_linear x[M,K], W[N,K], b[N] or NULL -> x W^T + b   (fused)
 *   elementwise mrl_add, mrl_sub, mrl_mul (b's shape a suffix of a's: row broadcast),
 *               mrl_scale, mrl_add_scalar, mrl_neg, mrl_square, mrl_exp, mrl_log,
 *               mrl_tanh, mrl_sigmoid, mrl_relu, mrl_clamp, mrl_minimum, mrl_maximum
 *   reductions  mrl_sum, mrl_mean (all -> [1]), mrl_sum_rows, mrl_mean_rows ([M,N] -> [M])
 *   rows        mrl_log_softmax ([M,N] per row), mrl_gather_rows (x[M,N], idx[M] -> [M])
 *   shape       mrl_concat_rows (stack along the first dimension), mrl_reshape (view),
 *               mrl_detach
 *   checking    mrl_gradcheck (central finite differences against mrl_backward)
 */
#ifndef MEMRL_TENSOR_H
#define MEMRL_TENSOR_H

#define MEMRL_TENSOR_VERSION_MAJOR 0
#define MEMRL_TENSOR_VERSION_MINOR 1
#define MEMRL_TENSOR_VERSION_PATCH 0

/* clang-format off */
/* ---- memrl common block -------------------------------------------------
 * The same text stands in memrl_tensor.h and memrl_envs.h so each header can
 * stand alone; the guard makes the second copy a no-op. Everything here is
 * either a macro, a type or a static inline function, so including several
 * memrl headers (with or without their implementations, in any number of
 * translation units) never defines a symbol twice. */
#ifndef MRL_COMMON_INCLUDED
#define MRL_COMMON_INCLUDED
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef MRL_DEF
#if defined(MRL_STATIC) && (defined(__GNUC__) || defined(__clang__))
#define MRL_DEF static __attribute__((unused)) /* no warning for functions a program skips */
#elif defined(MRL_STATIC)
#define MRL_DEF static
#else
#define MRL_DEF extern
#endif
#endif

#if defined(MRL_MALLOC) && defined(MRL_FREE) && defined(MRL_REALLOC)
/* all three overridden: fine */
#elif !defined(MRL_MALLOC) && !defined(MRL_FREE) && !defined(MRL_REALLOC)
#define MRL_MALLOC(sz) malloc(sz)
#define MRL_REALLOC(p, sz) realloc(p, sz)
#define MRL_FREE(p) free(p)
#else
#error "memrl: define all of MRL_MALLOC, MRL_REALLOC and MRL_FREE, or none"
#endif

#ifndef MRL_ASSERT
#include <assert.h>
#define MRL_ASSERT(c) assert(c)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Recoverable failures. Programmer errors (wrong shapes) stop instead. */
typedef enum mrl_result {
  MRL_OK = 0,
  MRL_ERR_INVALID_ARGUMENT = -1,
  MRL_ERR_OUT_OF_MEMORY = -2,
  MRL_ERR_IO = -3,
  MRL_ERR_CORRUPT = -4,
  MRL_ERR_UNKNOWN_ENV = -5,
  MRL_ERR_INVALID_ACTION = -6,
  MRL_ERR_NOT_RESET = -7
} mrl_result;

static inline const char *mrl_result_string(mrl_result r) {
  switch (r) {
  case MRL_OK:
    return "ok";
  case MRL_ERR_INVALID_ARGUMENT:
    return "invalid argument";
  case MRL_ERR_OUT_OF_MEMORY:
    return "out of memory";
  case MRL_ERR_IO:
    return "file input/output failed";
  case MRL_ERR_CORRUPT:
    return "corrupt or truncated data";
  case MRL_ERR_UNKNOWN_ENV:
    return "unknown environment id";
  case MRL_ERR_INVALID_ACTION:
    return "invalid action (out of range or not finite)";
  case MRL_ERR_NOT_RESET:
    return "step called before reset (or after the episode ended)";
  }
  return "unknown error";
}

/* PCG32 (O'Neill 2014, pcg-random.org): 64-bit state, 32-bit output.
 * Small, fast, statistically strong; one per object, never global. */
typedef struct mrl_rng {
  uint64_t state;
  uint64_t inc; /* stream selector, always odd */
} mrl_rng;

static inline uint32_t mrl_rng_u32(mrl_rng *r) {
  uint64_t old = r->state;
  uint32_t xorshifted, rot;
  r->state = old * 6364136223846793005ULL + r->inc;
  xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
  rot = (uint32_t)(old >> 59u);
  return (xorshifted >> rot) | (xorshifted << ((32u - rot) & 31u));
}

/* Seeds with the reference PCG32 initialisation sequence. */
static inline void mrl_rng_seed(mrl_rng *r, uint64_t seed, uint64_t stream) {
  r->state = 0u;
  r->inc = (stream << 1u) | 1u;
  (void)mrl_rng_u32(r);
  r->state += seed;
  (void)mrl_rng_u32(r);
}

static inline mrl_rng mrl_rng_make(uint64_t seed) {
  mrl_rng r;
  mrl_rng_seed(&r, seed, 0xda3e39cb94b95bdbULL);
  return r;
}

/* Uniform float in [0, 1) with 24 random bits (every value exact in float). */
static inline float mrl_rng_uniform(mrl_rng *r) {
  return (float)(mrl_rng_u32(r) >> 8) * (1.0f / 16777216.0f);
}

/* Uniform float in [lo, hi). */
static inline float mrl_rng_uniform_range(mrl_rng *r, float lo, float hi) {
  return lo + (hi - lo) * mrl_rng_uniform(r);
}

/* Uniform integer in [0, n), unbiased (Lemire's rejection method). */
static inline uint32_t mrl_rng_below(mrl_rng *r, uint32_t n) {
  uint64_t m = (uint64_t)mrl_rng_u32(r) * n;
  uint32_t low = (uint32_t)m;
  if (low < n) {
    uint32_t threshold = (uint32_t)(-n) % n;
    while (low < threshold) {
      m = (uint64_t)mrl_rng_u32(r) * n;
      low = (uint32_t)m;
    }
  }
  return (uint32_t)(m >> 32);
}

/* Standard normal by Box-Muller (one value per call; simple and exact). */
static inline float mrl_rng_normal(mrl_rng *r) {
  double u1 = ((double)(mrl_rng_u32(r) >> 8) + 1.0) * (1.0 / 16777217.0);
  double u2 = (double)(mrl_rng_u32(r) >> 8) * (1.0 / 16777216.0);
  return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* Index drawn from unnormalised non-negative weights p[0..n). */
static inline int mrl_rng_categorical(mrl_rng *r, const float *p, int n) {
  double total = 0.0, u, acc = 0.0;
  int i;
  for (i = 0; i < n; i++)
    total += p[i];
  u = (double)mrl_rng_uniform(r) * total;
  for (i = 0; i < n; i++) {
    acc += p[i];
    if (u < acc)
      return i;
  }
  for (i = n - 1; i > 0 && p[i] <= 0.0f; i--) {
  }
  return i; /* rounding fell off the end: last index with mass */
}

#ifdef __cplusplus
}
#endif
#endif /* MRL_COMMON_INCLUDED */
/* ---- end of memrl common block ------------------------------------------ */
/* clang-format on */

#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MRL_MAX_DIMS 4

typedef struct mrl_tensor {
  float *data;
  float *grad; /* NULL: no gradient is wanted for this tensor */
  int shape[MRL_MAX_DIMS];
  int ndim;
  int size;
} mrl_tensor;

/* A tensor header over caller memory (a parameter, a buffer). grad may be NULL. */
MRL_DEF mrl_tensor mrl_tensor_make(float *data, float *grad, int ndim, const int *shape);
/* Convenience for 1-D and 2-D tensors. */
MRL_DEF mrl_tensor mrl_tensor_make2(float *data, float *grad, int rows, int cols);
MRL_DEF int mrl_tensor_rows(const mrl_tensor *t); /* product of all but the last dimension */
MRL_DEF int mrl_tensor_cols(const mrl_tensor *t); /* the last dimension */
MRL_DEF int mrl_tensor_same_shape(const mrl_tensor *a, const mrl_tensor *b);
/* Writes "[2,3]" into buf (at least 48 bytes). */
MRL_DEF const char *mrl_tensor_shape_string(const mrl_tensor *t, char *buf, size_t n);

/* ---- arena ---- */
typedef struct mrl__arena_block mrl__arena_block;
typedef struct mrl_arena {
  unsigned char *base;
  size_t capacity, used, high_water;
  int owns_memory;            /* heap arena: may grow; caller buffer: fixed */
  mrl__arena_block *overflow; /* heap arenas only: blocks added since the last reset */
  size_t overflow_used;       /* bytes handed out from overflow blocks */
} mrl_arena;

MRL_DEF mrl_result mrl_arena_init(mrl_arena *a, size_t initial_bytes);        /* heap, grows */
MRL_DEF void mrl_arena_init_buffer(mrl_arena *a, void *buffer, size_t bytes); /* fixed */
MRL_DEF void *mrl_arena_alloc(mrl_arena *a, size_t bytes); /* 64-byte aligned, NULL when full */
MRL_DEF void mrl_arena_reset(mrl_arena *a);
MRL_DEF void mrl_arena_free(mrl_arena *a);
MRL_DEF size_t mrl_arena_high_water(const mrl_arena *a);

/* ---- graph and tape ---- */
typedef struct mrl_node mrl_node;
typedef void (*mrl_backward_fn)(mrl_node *node);

/* One recorded op. Ops defined outside this header (fused layers in
 * memrl_nn.h) record nodes through mrl_graph_record the same way. */
struct mrl_node {
  mrl_backward_fn backward;
  const char *op;
  mrl_tensor *out;
  mrl_tensor *in[4];
  mrl_tensor *extra[4]; /* further outputs or saved activations */
  const int *index;     /* integer inputs (gather) */
  float f[4];
  int i[4];
  mrl_node *prev;
};

typedef struct mrl_graph {
  mrl_arena arena;
  mrl_node *tape; /* last node recorded; nodes link backwards */
  int num_nodes;
  int no_grad;
  int backward_done; /* the tape has been replayed: a second pass would double-count */
  mrl_result status;
} mrl_graph;

MRL_DEF mrl_result mrl_graph_init(mrl_graph *g, size_t initial_bytes);
MRL_DEF void mrl_graph_init_buffer(mrl_graph *g, void *buffer, size_t bytes);
MRL_DEF void mrl_graph_reset(mrl_graph *g); /* rewinds arena and tape, clears status */
MRL_DEF void mrl_graph_free(mrl_graph *g);
MRL_DEF mrl_result mrl_graph_status(const mrl_graph *g);
/* Sets no-grad mode (nothing recorded, no gradient buffers); returns the old mode. */
MRL_DEF int mrl_graph_set_no_grad(mrl_graph *g, int no_grad);

/* New tensors in the graph's arena. requires_grad: give it a zeroed gradient
 * buffer (ignored in no-grad mode). NULL when the arena is full. */
MRL_DEF mrl_tensor *mrl_tensor_new(mrl_graph *g, int ndim, const int *shape, int requires_grad);
MRL_DEF mrl_tensor *mrl_tensor_new2(mrl_graph *g, int rows, int cols, int requires_grad);
MRL_DEF mrl_tensor *mrl_tensor_zeros_like(mrl_graph *g, const mrl_tensor *t);
/* A constant input: data copied into the arena, no gradient. */
MRL_DEF mrl_tensor *mrl_tensor_from(mrl_graph *g, const float *data, int ndim, const int *shape);
MRL_DEF mrl_tensor *mrl_tensor_from2(mrl_graph *g, const float *data, int rows, int cols);
/* Scratch memory from the arena for an op's own use. */
MRL_DEF void *mrl_graph_alloc(mrl_graph *g, size_t bytes);

/* For op authors: output tensor whose gradient exists iff recording is on and
 * one of the inputs has a gradient; and recording of the node for it. */
MRL_DEF int mrl_graph_wants_grad(const mrl_graph *g, const mrl_tensor *a, const mrl_tensor *b);
MRL_DEF mrl_tensor *mrl_op_output(mrl_graph *g, int ndim, const int *shape, int wants_grad);
MRL_DEF mrl_node *mrl_graph_record(mrl_graph *g, const char *op, mrl_backward_fn backward,
                                   mrl_tensor *out);
/* The one path for programmer errors: prints op, shapes, location; stops. */
MRL_DEF void mrl_shape_fail(const char *op, const char *what, const mrl_tensor *a,
                            const mrl_tensor *b, const char *file, int line);
#define MRL_SHAPE_CHECK(cond, op, what, a, b)                                                      \
  do {                                                                                             \
    if (!(cond)) mrl_shape_fail(op, what, a, b, __FILE__, __LINE__);                               \
  } while (0)

/* Seeds loss->grad with 1 (loss must have one element) and runs the tape
 * backwards. Gradients accumulate; zero parameter gradients yourself. A tape
 * is replayed once: a second call before mrl_graph_reset returns
 * MRL_ERR_INVALID_ARGUMENT. */
MRL_DEF mrl_result mrl_backward(mrl_graph *g, mrl_tensor *loss);

/* ---- ops ---- */
MRL_DEF mrl_tensor *mrl_matmul(mrl_graph *g, mrl_tensor *a, mrl_tensor *b);
MRL_DEF mrl_tensor *mrl_matmul_nt(mrl_graph *g, mrl_tensor *a, mrl_tensor *b);
MRL_DEF mrl_tensor *mrl_matmul_tn(mrl_graph *g, mrl_tensor *a, mrl_tensor *b);
MRL_DEF mrl_tensor *mrl_linear(mrl_graph *g, mrl_tensor *x, mrl_tensor *w, mrl_tensor *b);
MRL_DEF mrl_tensor *mrl_add(mrl_graph *g, mrl_tensor *a, mrl_tensor *b);
MRL_DEF mrl_tensor *mrl_sub(mrl_graph *g, mrl_tensor *a, mrl_tensor *b);
MRL_DEF mrl_tensor *mrl_mul(mrl_graph *g, mrl_tensor *a, mrl_tensor *b);
MRL_DEF mrl_tensor *mrl_scale(mrl_graph *g, mrl_tensor *a, float s);
MRL_DEF mrl_tensor *mrl_add_scalar(mrl_graph *g, mrl_tensor *a, float s);
MRL_DEF mrl_tensor *mrl_neg(mrl_graph *g, mrl_tensor *a);
MRL_DEF mrl_tensor *mrl_square(mrl_graph *g, mrl_tensor *a);
MRL_DEF mrl_tensor *mrl_exp(mrl_graph *g, mrl_tensor *a);
MRL_DEF mrl_tensor *mrl_log(mrl_graph *g, mrl_tensor *a);
MRL_DEF mrl_tensor *mrl_tanh(mrl_graph *g, mrl_tensor *a);
MRL_DEF mrl_tensor *mrl_sigmoid(mrl_graph *g, mrl_tensor *a);
MRL_DEF mrl_tensor *mrl_relu(mrl_graph *g, mrl_tensor *a);
/* Gradient passes where lo <= a <= hi (PyTorch's clamp). */
MRL_DEF mrl_tensor *mrl_clamp(mrl_graph *g, mrl_tensor *a, float lo, float hi);
/* Same shapes. At ties the gradient is split evenly (PyTorch >= 1.7). */
MRL_DEF mrl_tensor *mrl_minimum(mrl_graph *g, mrl_tensor *a, mrl_tensor *b);
MRL_DEF mrl_tensor *mrl_maximum(mrl_graph *g, mrl_tensor *a, mrl_tensor *b);
MRL_DEF mrl_tensor *mrl_sum(mrl_graph *g, mrl_tensor *a);
MRL_DEF mrl_tensor *mrl_mean(mrl_graph *g, mrl_tensor *a);
MRL_DEF mrl_tensor *mrl_sum_rows(mrl_graph *g, mrl_tensor *a);
MRL_DEF mrl_tensor *mrl_mean_rows(mrl_graph *g, mrl_tensor *a);
MRL_DEF mrl_tensor *mrl_log_softmax(mrl_graph *g, mrl_tensor *a);
/* out[i] = a[i, index[i]]; index must stay valid until backward has run. */
MRL_DEF mrl_tensor *mrl_gather_rows(mrl_graph *g, mrl_tensor *a, const int *index);
/* Stacks n tensors of equal trailing shape along the first dimension. */
MRL_DEF mrl_tensor *mrl_concat_rows(mrl_graph *g, mrl_tensor *const *parts, int n);
/* A view with another shape of the same size: shares data and gradient, so
 * it needs no node. */
MRL_DEF mrl_tensor *mrl_reshape(mrl_graph *g, mrl_tensor *a, int ndim, const int *shape);
/* The same values with no gradient path (cuts the tape: truncated BPTT). */
MRL_DEF mrl_tensor *mrl_detach(mrl_graph *g, mrl_tensor *a);

/* ---- gradient check ----
 * build(g, inputs, ctx) must return a one-element loss built from inputs.
 * Compares mrl_backward's gradient for every element of every input that has
 * a grad buffer with the central difference (f(x+eps) - f(x-eps)) / (2 eps),
 * evaluated in float. Returns the worst |analytic - numeric| / (atol + rtol*|numeric|);
 * <= 1 means every element passed. Uses and resets g. */
typedef mrl_tensor *(*mrl_loss_fn)(mrl_graph *g, mrl_tensor **inputs, void *ctx);
MRL_DEF double mrl_gradcheck(mrl_graph *g, mrl_loss_fn build, mrl_tensor **inputs, int n, void *ctx,
                             float eps, double atol, double rtol);

/* Logistic function with exp's argument kept non-positive (no overflow). */
static inline float mrl_sigmoidf(float x) {
  float e;
  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
  e = expf(x);
  return e / (1.0f + e);
}

/* ---- kernels (no graph), used by layers and algorithms ---- */
/* C[M,N] = beta*C + op(A) op(B), op = transpose when the flag is set.
 * lda/ldb/ldc are row strides of the matrices as stored. beta == 0 ignores
 * C's old contents (NaN included); m, n or k <= 0 only applies beta. A
 * stride shorter than its matrix's row stops at MRL_ASSERT.
 * Packed, register-blocked kernels: AVX-512F or AVX2+FMA when the CPU has
 * them (checked at run time; x86-64 with GCC or Clang, not MinGW GCC), else
 * portable C; with -fopenmp, column blocks of large products are shared
 * between threads.
 * Deterministic: each element is one chain over k in increasing order from
 * beta*C, whatever the thread count, blocking or batch size (fused
 * multiply-adds on the SIMD kernels, separate roundings in portable C, so the
 * two differ in the last bits). Exception: A B^T with at most 16 rows (the
 * batch-1 / small-batch linear layer) or at most 4 columns (policy and value
 * heads) sums each element as a lane-split dot product, so its rows may
 * differ in the last bits from a larger batch's (likewise any A B^T of at
 * most 4096 multiply-adds).
 * Uses about 88 KiB of stack (see MRL_GEMM_KC / MRL_GEMM_NC). */
MRL_DEF void mrl_gemm(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
                      const float *b, int ldb, float beta, float *c, int ldc);

#ifdef __cplusplus
}
#endif
#endif /* MEMRL_TENSOR_H */

/* ======================================================================== */
/*                             IMPLEMENTATION                               */
/* ======================================================================== */
#if (defined(MEMRL_TENSOR_IMPLEMENTATION) || defined(MEMRL_IMPLEMENTATION)) &&                     \
    !defined(MEMRL_TENSOR_IMPLEMENTED)
#define MEMRL_TENSOR_IMPLEMENTED

#ifdef __cplusplus
extern "C" {
#endif

#define MRL__ALIGN 64

/* ---- tensor headers ---- */

MRL_DEF mrl_tensor mrl_tensor_make(float *data, float *grad, int ndim, const int *shape) {
  mrl_tensor t;
  int i;
  MRL_ASSERT(ndim >= 1 && ndim <= MRL_MAX_DIMS);
  memset(&t, 0, sizeof t);
  t.data = data;
  t.grad = grad;
  t.ndim = ndim;
  t.size = 1;
  for (i = 0; i < ndim; i++) {
    MRL_ASSERT(shape[i] >= 0);
    t.shape[i] = shape[i];
    t.size *= shape[i];
  }
  for (; i < MRL_MAX_DIMS; i++) t.shape[i] = 1;
  return t;
}

MRL_DEF mrl_tensor mrl_tensor_make2(float *data, float *grad, int rows, int cols) {
  int shape[2];
  shape[0] = rows;
  shape[1] = cols;
  return mrl_tensor_make(data, grad, 2, shape);
}

MRL_DEF int mrl_tensor_cols(const mrl_tensor *t) {
  return t->shape[t->ndim - 1];
}

MRL_DEF int mrl_tensor_rows(const mrl_tensor *t) {
  int c = mrl_tensor_cols(t);
  return c ? t->size / c : 0;
}

MRL_DEF int mrl_tensor_same_shape(const mrl_tensor *a, const mrl_tensor *b) {
  int i;
  if (a->ndim != b->ndim) return 0;
  for (i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i]) return 0;
  return 1;
}

MRL_DEF const char *mrl_tensor_shape_string(const mrl_tensor *t, char *buf, size_t n) {
  size_t used = 0;
  int i;
  if (!t) {
    snprintf(buf, n, "(null)");
    return buf;
  }
  used += (size_t)snprintf(buf, n, "[");
  for (i = 0; i < t->ndim && used < n; i++)
    used += (size_t)snprintf(buf + used, n - used, i ? ",%d" : "%d", t->shape[i]);
  if (used < n) snprintf(buf + used, n - used, "]");
  return buf;
}

MRL_DEF void mrl_shape_fail(const char *op, const char *what, const mrl_tensor *a,
                            const mrl_tensor *b, const char *file, int line) {
  char sa[64], sb[64];
  fprintf(stderr, "memrl: %s: %s: %s and %s (%s:%d)\n", op, what,
          mrl_tensor_shape_string(a, sa, sizeof sa), mrl_tensor_shape_string(b, sb, sizeof sb),
          file, line);
  MRL_ASSERT(0 && "memrl: shape mismatch (see message above)");
  abort(); /* never continue with wrong shapes, even under NDEBUG */
}

/* ---- arena ---- */

struct mrl__arena_block {
  mrl__arena_block *next;
  size_t capacity, used;
  unsigned char *data; /* aligned start inside this allocation */
};

static size_t mrl__align_up(size_t n) {
  return (n + (MRL__ALIGN - 1)) & ~(size_t)(MRL__ALIGN - 1);
}

static unsigned char *mrl__align_ptr(unsigned char *p) {
  uintptr_t u = (uintptr_t)p;
  return (unsigned char *)((u + (MRL__ALIGN - 1)) & ~(uintptr_t)(MRL__ALIGN - 1));
}

MRL_DEF mrl_result mrl_arena_init(mrl_arena *a, size_t initial_bytes) {
  memset(a, 0, sizeof *a);
  a->owns_memory = 1;
  if (initial_bytes < 4096) initial_bytes = 4096;
  a->base = (unsigned char *)MRL_MALLOC(initial_bytes + MRL__ALIGN);
  if (!a->base) return MRL_ERR_OUT_OF_MEMORY;
  a->capacity = initial_bytes;
  return MRL_OK;
}

MRL_DEF void mrl_arena_init_buffer(mrl_arena *a, void *buffer, size_t bytes) {
  unsigned char *p = (unsigned char *)buffer, *q = mrl__align_ptr(p);
  memset(a, 0, sizeof *a);
  a->base = p;
  a->capacity = bytes > (size_t)(q - p) ? bytes - (size_t)(q - p) : 0;
  a->base = q;
}

/* Heap arenas keep MRL__ALIGN spare bytes to align their base. */
static unsigned char *mrl__arena_start(const mrl_arena *a) {
  return a->owns_memory ? mrl__align_ptr(a->base) : a->base;
}

MRL_DEF void *mrl_arena_alloc(mrl_arena *a, size_t bytes) {
  size_t need = mrl__align_up(bytes ? bytes : 1);
  void *p;
  if (a->used + need <= a->capacity) {
    p = mrl__arena_start(a) + a->used;
    a->used += need;
  } else if (!a->owns_memory) {
    return NULL;
  } else {
    /* Overflow: add a block; pointers already handed out stay valid. */
    mrl__arena_block *blk = a->overflow;
    if (!blk || blk->used + need > blk->capacity) {
      size_t cap = need > a->capacity ? need : a->capacity;
      blk = (mrl__arena_block *)MRL_MALLOC(sizeof(mrl__arena_block) + cap + MRL__ALIGN);
      if (!blk) return NULL;
      blk->capacity = cap;
      blk->used = 0;
      blk->data = mrl__align_ptr((unsigned char *)(blk + 1));
      blk->next = a->overflow;
      a->overflow = blk;
    }
    p = blk->data + blk->used;
    blk->used += need;
    a->overflow_used += need;
  }
  if (a->used + a->overflow_used > a->high_water) a->high_water = a->used + a->overflow_used;
  return p;
}

MRL_DEF void mrl_arena_reset(mrl_arena *a) {
  if (a->overflow) {
    /* Fold into one block big enough for the high-water mark, so the same
     * workload next time allocates nothing. */
    mrl__arena_block *blk = a->overflow;
    size_t cap = a->high_water + a->high_water / 4;
    unsigned char *nb;
    while (blk) {
      mrl__arena_block *next = blk->next;
      MRL_FREE(blk);
      blk = next;
    }
    a->overflow = NULL;
    nb = (unsigned char *)MRL_MALLOC(cap + MRL__ALIGN);
    if (nb) {
      MRL_FREE(a->base);
      a->base = nb;
      a->capacity = cap;
    }
  }
  a->used = 0;
  a->overflow_used = 0;
}

MRL_DEF void mrl_arena_free(mrl_arena *a) {
  mrl__arena_block *blk = a->overflow;
  while (blk) {
    mrl__arena_block *next = blk->next;
    MRL_FREE(blk);
    blk = next;
  }
  if (a->owns_memory) MRL_FREE(a->base);
  memset(a, 0, sizeof *a);
}

MRL_DEF size_t mrl_arena_high_water(const mrl_arena *a) {
  return a->high_water;
}

/* ---- graph ---- */

MRL_DEF mrl_result mrl_graph_init(mrl_graph *g, size_t initial_bytes) {
  memset(g, 0, sizeof *g);
  return mrl_arena_init(&g->arena, initial_bytes);
}

MRL_DEF void mrl_graph_init_buffer(mrl_graph *g, void *buffer, size_t bytes) {
  memset(g, 0, sizeof *g);
  mrl_arena_init_buffer(&g->arena, buffer, bytes);
}

MRL_DEF void mrl_graph_reset(mrl_graph *g) {
  mrl_arena_reset(&g->arena);
  g->tape = NULL;
  g->num_nodes = 0;
  g->backward_done = 0;
  g->status = MRL_OK;
}

MRL_DEF void mrl_graph_free(mrl_graph *g) {
  mrl_arena_free(&g->arena);
  memset(g, 0, sizeof *g);
}

MRL_DEF mrl_result mrl_graph_status(const mrl_graph *g) {
  return g->status;
}

MRL_DEF int mrl_graph_set_no_grad(mrl_graph *g, int no_grad) {
  int old = g->no_grad;
  g->no_grad = no_grad;
  return old;
}

MRL_DEF void *mrl_graph_alloc(mrl_graph *g, size_t bytes) {
  void *p = mrl_arena_alloc(&g->arena, bytes);
  if (!p) g->status = MRL_ERR_OUT_OF_MEMORY;
  return p;
}

MRL_DEF mrl_tensor *mrl_tensor_new(mrl_graph *g, int ndim, const int *shape, int requires_grad) {
  mrl_tensor *t = (mrl_tensor *)mrl_graph_alloc(g, sizeof(mrl_tensor));
  mrl_tensor hdr;
  if (!t) return NULL;
  hdr = mrl_tensor_make(NULL, NULL, ndim, shape);
  hdr.data = (float *)mrl_graph_alloc(g, sizeof(float) * (size_t)hdr.size);
  if (!hdr.data) return NULL;
  if (requires_grad && !g->no_grad) {
    hdr.grad = (float *)mrl_graph_alloc(g, sizeof(float) * (size_t)hdr.size);
    if (!hdr.grad) return NULL;
    memset(hdr.grad, 0, sizeof(float) * (size_t)hdr.size);
  }
  *t = hdr;
  return t;
}

MRL_DEF mrl_tensor *mrl_tensor_new2(mrl_graph *g, int rows, int cols, int requires_grad) {
  int shape[2];
  shape[0] = rows;
  shape[1] = cols;
  return mrl_tensor_new(g, 2, shape, requires_grad);
}

MRL_DEF mrl_tensor *mrl_tensor_zeros_like(mrl_graph *g, const mrl_tensor *t) {
  mrl_tensor *z = t ? mrl_tensor_new(g, t->ndim, t->shape, 0) : NULL;
  if (z) memset(z->data, 0, sizeof(float) * (size_t)z->size);
  return z;
}

MRL_DEF mrl_tensor *mrl_tensor_from(mrl_graph *g, const float *data, int ndim, const int *shape) {
  mrl_tensor *t = mrl_tensor_new(g, ndim, shape, 0);
  if (t) memcpy(t->data, data, sizeof(float) * (size_t)t->size);
  return t;
}

MRL_DEF mrl_tensor *mrl_tensor_from2(mrl_graph *g, const float *data, int rows, int cols) {
  int shape[2];
  shape[0] = rows;
  shape[1] = cols;
  return mrl_tensor_from(g, data, 2, shape);
}

MRL_DEF int mrl_graph_wants_grad(const mrl_graph *g, const mrl_tensor *a, const mrl_tensor *b) {
  return !g->no_grad && ((a && a->grad) || (b && b->grad));
}

MRL_DEF mrl_tensor *mrl_op_output(mrl_graph *g, int ndim, const int *shape, int wants_grad) {
  return mrl_tensor_new(g, ndim, shape, wants_grad);
}

MRL_DEF mrl_node *mrl_graph_record(mrl_graph *g, const char *op, mrl_backward_fn backward,
                                   mrl_tensor *out) {
  mrl_node *n;
  if (!out || !out->grad || g->no_grad) return NULL;
  n = (mrl_node *)mrl_graph_alloc(g, sizeof(mrl_node));
  if (!n) return NULL;
  memset(n, 0, sizeof *n);
  n->backward = backward;
  n->op = op;
  n->out = out;
  n->prev = g->tape;
  g->tape = n;
  g->num_nodes++;
  return n;
}

MRL_DEF mrl_result mrl_backward(mrl_graph *g, mrl_tensor *loss) {
  mrl_node *n;
  if (g->status != MRL_OK) return g->status;
  if (!loss) return MRL_ERR_INVALID_ARGUMENT;
  MRL_SHAPE_CHECK(loss->size == 1, "backward", "loss must have one element", loss, NULL);
  if (!loss->grad) return MRL_OK; /* nothing requires a gradient */
  /* Intermediate gradients still hold the first pass: refuse, don't double-count. */
  if (g->backward_done) return MRL_ERR_INVALID_ARGUMENT;
  g->backward_done = 1;
  loss->grad[0] += 1.0f;
  for (n = g->tape; n; n = n->prev) n->backward(n);
  return MRL_OK;
}

#ifdef MRL_CHECK_FINITE
static void mrl__check_finite(const char *op, const mrl_tensor *out, const mrl_tensor *a,
                              const mrl_tensor *b) {
  int i;
  if (!out) return;
  for (i = 0; i < out->size; i++) {
    if (!isfinite(out->data[i])) {
      char sa[64], sb[64], so[64];
      fprintf(stderr, "memrl: %s produced a non-finite value at element %d of %s (inputs %s %s)\n",
              op, i, mrl_tensor_shape_string(out, so, sizeof so),
              mrl_tensor_shape_string(a, sa, sizeof sa), mrl_tensor_shape_string(b, sb, sizeof sb));
      MRL_ASSERT(0 && "memrl: non-finite value (MRL_CHECK_FINITE)");
      abort();
    }
  }
}
#define MRL__FINITE(op, out, a, b) mrl__check_finite(op, out, a, b)
#else
#define MRL__FINITE(op, out, a, b) ((void)0)
#endif

/* ---- gemm ----
 * C = beta*C + op(A) op(B), GotoBLAS-style: op(B) is packed block by block
 * (KC x NC, in NR-wide column panels) and op(A) (MC x KC, in MR-tall row
 * panels) into stack buffers, zero-padded at the edges, and an MR x NR
 * register-blocked micro-kernel runs over the packed panels (op(B) = B is
 * read in place when packing would not pay). Three kernels:
 * AVX-512F (12x32, with 8- and 4-row and 16-column variants for the last
 * panels) and AVX2+FMA (6x16) with intrinsics, chosen at run time
 * (__builtin_cpu_supports) on x86-64 with GCC or Clang, and a portable 6x8
 * kernel in GCC/Clang vector extensions (plain scalar loops elsewhere). Define
 * MRL_NO_SIMD to use only the portable kernel. Few-row and tiny (at most
 * 4096 multiply-adds) products skip packing (mrl__gemm_direct): rows of axpys
 * for A B and A^T B, dot-product tiles for A B^T (up to 16 rows or 4
 * columns), and for A^T B^T the packed kernels' chain element by element. A
 * narrow C (under 16 columns, at least twice as many rows) is packed as C^T.
 *
 * Numerics: every element of C is one chain over k in increasing order,
 * starting from beta*C: c = c + a_ip*b_pj. The SIMD kernels round each step
 * once (fused multiply-add); the portable kernel rounds the product and the
 * sum separately. Packing, blocking, edges and the thread count never change
 * the chain, so the result depends only on the kernel, never on how many
 * OpenMP threads ran (threads share out column blocks of C, never K), nor on
 * which of the two SIMD kernels ran, nor on how many rows the call had. The
 * one other order: A B^T with at most MRL__DOT_M rows, at most 4 columns or
 * at most 4096 multiply-adds (mrl__gemm_direct), where each element is a dot
 * product summed in 8 (AVX2, portable, AVX-512 with 1-3 rows) or 16 (AVX-512
 * with 4 or more rows) interleaved lanes, reduced in a fixed tree, then added
 * to C.
 * (If a build lets the compiler contract a*b+c, e.g. -march=native with
 * -ffp-contract=fast, the portable kernel may fuse too; it stays
 * deterministic.)
 *
 * Stack: one call (or each OpenMP thread) keeps its packed panels on the
 * stack, 4*KC*(NC + MC) bytes: 88 KiB with the defaults (KC = NC = 128), so
 * that threads with small stacks (musl's 128 KiB) can call it. Where stacks
 * are large, -DMRL_GEMM_KC=256 -DMRL_GEMM_NC=192 (240 KiB) gains a few
 * percent on products of 512 and more. */
#ifndef MRL_GEMM_KC
#define MRL_GEMM_KC 128
#endif
#ifndef MRL_GEMM_NC
#define MRL_GEMM_NC 128
#endif
#define MRL__KC MRL_GEMM_KC
#define MRL__MC 48          /* multiple of every MR (12, 6) */
#define MRL__NC MRL_GEMM_NC /* multiple of every NR (32, 16, 8) */
typedef char mrl__gemm_block_check[(MRL__NC % 32 == 0 && MRL__NC >= 32 && MRL__KC >= 1) ? 1 : -1];
#define MRL__DOT_M 16 /* op(B)=B^T with at most this many rows (or 4 columns): dots */
#define MRL__ISA_C 0
#define MRL__ISA_AVX2 1
#define MRL__ISA_AVX512 2

/* Not with MinGW's GCC: it cannot align the stack for spilled AVX registers
 * on Win64 (GCC bug 54412). */
#if !defined(MRL_NO_SIMD) && defined(__x86_64__) && (defined(__clang__) || __GNUC__ >= 5) &&       \
    !(defined(_WIN32) && !defined(__clang__))
#define MRL__X86_SIMD 1
#endif
#if defined(MRL__X86_SIMD) || defined(_OPENMP)
#ifdef __cplusplus
} /* system headers outside the extern "C" block */
#endif
#ifdef MRL__X86_SIMD
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef __cplusplus
extern "C" {
#endif
#endif
#if (defined(__GNUC__) || defined(__clang__)) && !defined(MRL_NO_VECTOR_EXTENSIONS)
typedef float mrl__v4 __attribute__((vector_size(16), aligned(4)));
#define MRL__HAVE_V4 1
#endif

/* Portable micro-kernel: C[6,8] (row stride ldc) = Cin + Ap Bp over kc
 * steps, where Ap holds 6 floats per step and Bp 8; Cin is read from ci (row
 * stride ldi). Rows are written out so the accumulators stay in registers. */
#ifdef MRL__HAVE_V4
#define MRL__KC_LOAD(r)                                                                            \
  mrl__v4 c##r##a, c##r##b;                                                                        \
  memcpy(&c##r##a, ci + r * ldi, sizeof(mrl__v4));                                                 \
  memcpy(&c##r##b, ci + r * ldi + 4, sizeof(mrl__v4))
#define MRL__KC_STEP(r)                                                                            \
  c##r##a += ap[r] * b0;                                                                           \
  c##r##b += ap[r] * b1
#define MRL__KC_STORE(r)                                                                           \
  memcpy(c + r * ldc, &c##r##a, sizeof(mrl__v4));                                                  \
  memcpy(c + r * ldc + 4, &c##r##b, sizeof(mrl__v4))
#endif
static void mrl__kern_c(int kc, const float *ap, const float *bp, size_t bs, const float *ci,
                        size_t ldi, float *c, size_t ldc) {
#ifdef MRL__HAVE_V4
  mrl__v4 b0, b1;
  int p;
  MRL__KC_LOAD(0);
  MRL__KC_LOAD(1);
  MRL__KC_LOAD(2);
  MRL__KC_LOAD(3);
  MRL__KC_LOAD(4);
  MRL__KC_LOAD(5);
  for (p = 0; p < kc; p++, ap += 6, bp += bs) {
    memcpy(&b0, bp, sizeof b0);
    memcpy(&b1, bp + 4, sizeof b1);
    MRL__KC_STEP(0);
    MRL__KC_STEP(1);
    MRL__KC_STEP(2);
    MRL__KC_STEP(3);
    MRL__KC_STEP(4);
    MRL__KC_STEP(5);
  }
  MRL__KC_STORE(0);
  MRL__KC_STORE(1);
  MRL__KC_STORE(2);
  MRL__KC_STORE(3);
  MRL__KC_STORE(4);
  MRL__KC_STORE(5);
#else
  float acc[6][8];
  int p, r, q;
  for (r = 0; r < 6; r++)
    for (q = 0; q < 8; q++) acc[r][q] = ci[r * ldi + q];
  for (p = 0; p < kc; p++, ap += 6, bp += bs)
    for (r = 0; r < 6; r++)
      for (q = 0; q < 8; q++) acc[r][q] = acc[r][q] + ap[r] * bp[q];
  for (r = 0; r < 6; r++)
    for (q = 0; q < 8; q++) c[r * ldc + q] = acc[r][q];
#endif
}

#ifdef MRL__X86_SIMD
#define MRL__TARGET_AVX2 __attribute__((target("avx2,fma")))
#define MRL__TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define MRL__INLINE __attribute__((always_inline)) inline

/* AVX2+FMA micro-kernel: C[6,16] += Ap Bp (6 and 16 floats per step). */
MRL__TARGET_AVX2 static void mrl__kern_avx2(int kc, const float *ap, const float *bp, size_t bs,
                                            const float *ci, size_t ldi, float *c, size_t ldc) {
  __m256 c00 = _mm256_loadu_ps(ci), c01 = _mm256_loadu_ps(ci + 8);
  __m256 c10 = _mm256_loadu_ps(ci + ldi), c11 = _mm256_loadu_ps(ci + ldi + 8);
  __m256 c20 = _mm256_loadu_ps(ci + 2 * ldi), c21 = _mm256_loadu_ps(ci + 2 * ldi + 8);
  __m256 c30 = _mm256_loadu_ps(ci + 3 * ldi), c31 = _mm256_loadu_ps(ci + 3 * ldi + 8);
  __m256 c40 = _mm256_loadu_ps(ci + 4 * ldi), c41 = _mm256_loadu_ps(ci + 4 * ldi + 8);
  __m256 c50 = _mm256_loadu_ps(ci + 5 * ldi), c51 = _mm256_loadu_ps(ci + 5 * ldi + 8);
  int p;
  for (p = 0; p < kc; p++, ap += 6, bp += bs) {
    __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8), a;
    a = _mm256_broadcast_ss(ap);
    c00 = _mm256_fmadd_ps(a, b0, c00);
    c01 = _mm256_fmadd_ps(a, b1, c01);
    a = _mm256_broadcast_ss(ap + 1);
    c10 = _mm256_fmadd_ps(a, b0, c10);
    c11 = _mm256_fmadd_ps(a, b1, c11);
    a = _mm256_broadcast_ss(ap + 2);
    c20 = _mm256_fmadd_ps(a, b0, c20);
    c21 = _mm256_fmadd_ps(a, b1, c21);
    a = _mm256_broadcast_ss(ap + 3);
    c30 = _mm256_fmadd_ps(a, b0, c30);
    c31 = _mm256_fmadd_ps(a, b1, c31);
    a = _mm256_broadcast_ss(ap + 4);
    c40 = _mm256_fmadd_ps(a, b0, c40);
    c41 = _mm256_fmadd_ps(a, b1, c41);
    a = _mm256_broadcast_ss(ap + 5);
    c50 = _mm256_fmadd_ps(a, b0, c50);
    c51 = _mm256_fmadd_ps(a, b1, c51);
  }
  _mm256_storeu_ps(c, c00);
  _mm256_storeu_ps(c + 8, c01);
  _mm256_storeu_ps(c + ldc, c10);
  _mm256_storeu_ps(c + ldc + 8, c11);
  _mm256_storeu_ps(c + 2 * ldc, c20);
  _mm256_storeu_ps(c + 2 * ldc + 8, c21);
  _mm256_storeu_ps(c + 3 * ldc, c30);
  _mm256_storeu_ps(c + 3 * ldc + 8, c31);
  _mm256_storeu_ps(c + 4 * ldc, c40);
  _mm256_storeu_ps(c + 4 * ldc + 8, c41);
  _mm256_storeu_ps(c + 5 * ldc, c50);
  _mm256_storeu_ps(c + 5 * ldc + 8, c51);
}

/* AVX-512F micro-kernel: C[12,32] += Ap Bp (12 and 32 floats per step). The
 * rows are written out so that the 24 accumulators stay in registers. The
 * 8- and 4-row variants read the same 12-row panels (the last, partial panel
 * of A), so every element still gets the same chain. */
#define MRL__K512_LOAD(r)                                                                          \
  __m512 c##r##a = _mm512_loadu_ps(ci + r * ldi), c##r##b = _mm512_loadu_ps(ci + r * ldi + 16)
#define MRL__K512_STEP(r)                                                                          \
  a = _mm512_set1_ps(ap[r]);                                                                       \
  c##r##a = _mm512_fmadd_ps(a, b0, c##r##a);                                                       \
  c##r##b = _mm512_fmadd_ps(a, b1, c##r##b)
#define MRL__K512_STORE(r)                                                                         \
  _mm512_storeu_ps(c + r * ldc, c##r##a);                                                          \
  _mm512_storeu_ps(c + r * ldc + 16, c##r##b)
#define MRL__ROWS4(X)                                                                              \
  X(0);                                                                                            \
  X(1);                                                                                            \
  X(2);                                                                                            \
  X(3)
#define MRL__ROWS8(X)                                                                              \
  MRL__ROWS4(X);                                                                                   \
  X(4);                                                                                            \
  X(5);                                                                                            \
  X(6);                                                                                            \
  X(7)
#define MRL__ROWS12(X)                                                                             \
  MRL__ROWS8(X);                                                                                   \
  X(8);                                                                                            \
  X(9);                                                                                            \
  X(10);                                                                                           \
  X(11)
#define MRL__K512_DEFINE(name, ROWS)                                                               \
  MRL__TARGET_AVX512 static void name(int kc, const float *ap, const float *bp, size_t bs,         \
                                      const float *ci, size_t ldi, float *c, size_t ldc) {         \
    ROWS(MRL__K512_LOAD);                                                                          \
    int p;                                                                                         \
    for (p = 0; p < kc; p++, ap += 12, bp += bs) {                                                 \
      __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16), a;                           \
      ROWS(MRL__K512_STEP);                                                                        \
    }                                                                                              \
    ROWS(MRL__K512_STORE);                                                                         \
  }
MRL__K512_DEFINE(mrl__kern_avx512, MRL__ROWS12)
MRL__K512_DEFINE(mrl__kern_avx512_r8, MRL__ROWS8)
MRL__K512_DEFINE(mrl__kern_avx512_r4, MRL__ROWS4)
/* The same over the first 16 columns of the panels (the last, narrow panel of
 * B). */
#define MRL__K512H_LOAD(r) __m512 c##r##a = _mm512_loadu_ps(ci + r * ldi)
#define MRL__K512H_STEP(r) c##r##a = _mm512_fmadd_ps(_mm512_set1_ps(ap[r]), b0, c##r##a)
#define MRL__K512H_STORE(r) _mm512_storeu_ps(c + r * ldc, c##r##a)
#define MRL__K512H_DEFINE(name, ROWS)                                                              \
  MRL__TARGET_AVX512 static void name(int kc, const float *ap, const float *bp, size_t bs,         \
                                      const float *ci, size_t ldi, float *c, size_t ldc) {         \
    ROWS(MRL__K512H_LOAD);                                                                         \
    int p;                                                                                         \
    for (p = 0; p < kc; p++, ap += 12, bp += bs) {                                                 \
      __m512 b0 = _mm512_loadu_ps(bp);                                                             \
      ROWS(MRL__K512H_STEP);                                                                       \
    }                                                                                              \
    ROWS(MRL__K512H_STORE);                                                                        \
  }
MRL__K512H_DEFINE(mrl__kern_avx512_c16, MRL__ROWS12)
MRL__K512H_DEFINE(mrl__kern_avx512_r8c16, MRL__ROWS8)
MRL__K512H_DEFINE(mrl__kern_avx512_r4c16, MRL__ROWS4)

/* Packs `rows` rows of src (row stride ld, contiguous along p) into w lanes
 * per step p: dst[p*w + r] = src[r*ld + p], lanes rows..w-1 zero. This is the
 * transposing pack (op(A) = A, op(B) = B^T): 8x8 and 4x4 blocks go through
 * register transposes, the rest element by element. Pure data movement. */
MRL__TARGET_AVX2 static void mrl__pack_rows_avx2(int w, int rows, int kc, const float *src,
                                                 size_t ld, float *dst) {
  int r0 = 0, p, r;
  if (rows < w) memset(dst, 0, sizeof(float) * (size_t)kc * (size_t)w); /* padding lanes */
  for (; r0 + 8 <= rows; r0 += 8) {
    const float *s = src + (size_t)r0 * ld;
    for (p = 0; p + 8 <= kc; p += 8) {
      __m256 t0, t1, t2, t3, t4, t5, t6, t7, u0, u1, u2, u3, u4, u5, u6, u7;
      t0 = _mm256_unpacklo_ps(_mm256_loadu_ps(s + p), _mm256_loadu_ps(s + ld + p));
      t1 = _mm256_unpackhi_ps(_mm256_loadu_ps(s + p), _mm256_loadu_ps(s + ld + p));
      t2 = _mm256_unpacklo_ps(_mm256_loadu_ps(s + 2 * ld + p), _mm256_loadu_ps(s + 3 * ld + p));
      t3 = _mm256_unpackhi_ps(_mm256_loadu_ps(s + 2 * ld + p), _mm256_loadu_ps(s + 3 * ld + p));
      t4 = _mm256_unpacklo_ps(_mm256_loadu_ps(s + 4 * ld + p), _mm256_loadu_ps(s + 5 * ld + p));
      t5 = _mm256_unpackhi_ps(_mm256_loadu_ps(s + 4 * ld + p), _mm256_loadu_ps(s + 5 * ld + p));
      t6 = _mm256_unpacklo_ps(_mm256_loadu_ps(s + 6 * ld + p), _mm256_loadu_ps(s + 7 * ld + p));
      t7 = _mm256_unpackhi_ps(_mm256_loadu_ps(s + 6 * ld + p), _mm256_loadu_ps(s + 7 * ld + p));
      u0 = _mm256_shuffle_ps(t0, t2, 0x44);
      u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
      u2 = _mm256_shuffle_ps(t1, t3, 0x44);
      u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
      u4 = _mm256_shuffle_ps(t4, t6, 0x44);
      u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
      u6 = _mm256_shuffle_ps(t5, t7, 0x44);
      u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
      _mm256_storeu_ps(dst + (size_t)p * w + r0, _mm256_permute2f128_ps(u0, u4, 0x20));
      _mm256_storeu_ps(dst + (size_t)(p + 1) * w + r0, _mm256_permute2f128_ps(u1, u5, 0x20));
      _mm256_storeu_ps(dst + (size_t)(p + 2) * w + r0, _mm256_permute2f128_ps(u2, u6, 0x20));
      _mm256_storeu_ps(dst + (size_t)(p + 3) * w + r0, _mm256_permute2f128_ps(u3, u7, 0x20));
      _mm256_storeu_ps(dst + (size_t)(p + 4) * w + r0, _mm256_permute2f128_ps(u0, u4, 0x31));
      _mm256_storeu_ps(dst + (size_t)(p + 5) * w + r0, _mm256_permute2f128_ps(u1, u5, 0x31));
      _mm256_storeu_ps(dst + (size_t)(p + 6) * w + r0, _mm256_permute2f128_ps(u2, u6, 0x31));
      _mm256_storeu_ps(dst + (size_t)(p + 7) * w + r0, _mm256_permute2f128_ps(u3, u7, 0x31));
    }
    for (; p < kc; p++)
      for (r = 0; r < 8; r++) dst[(size_t)p * w + r0 + r] = s[(size_t)r * ld + p];
  }
  for (; r0 + 4 <= rows; r0 += 4) {
    const float *s = src + (size_t)r0 * ld;
    for (p = 0; p + 4 <= kc; p += 4) {
      __m128 t0 = _mm_unpacklo_ps(_mm_loadu_ps(s + p), _mm_loadu_ps(s + ld + p));
      __m128 t1 = _mm_unpackhi_ps(_mm_loadu_ps(s + p), _mm_loadu_ps(s + ld + p));
      __m128 t2 = _mm_unpacklo_ps(_mm_loadu_ps(s + 2 * ld + p), _mm_loadu_ps(s + 3 * ld + p));
      __m128 t3 = _mm_unpackhi_ps(_mm_loadu_ps(s + 2 * ld + p), _mm_loadu_ps(s + 3 * ld + p));
      _mm_storeu_ps(dst + (size_t)p * w + r0, _mm_movelh_ps(t0, t2));
      _mm_storeu_ps(dst + (size_t)(p + 1) * w + r0, _mm_movehl_ps(t2, t0));
      _mm_storeu_ps(dst + (size_t)(p + 2) * w + r0, _mm_movelh_ps(t1, t3));
      _mm_storeu_ps(dst + (size_t)(p + 3) * w + r0, _mm_movehl_ps(t3, t1));
    }
    for (; p < kc; p++)
      for (r = 0; r < 4; r++) dst[(size_t)p * w + r0 + r] = s[(size_t)r * ld + p];
  }
  if (r0 < rows)
    for (p = 0; p < kc; p++)
      for (r = r0; r < rows; r++) dst[(size_t)p * w + r] = src[(size_t)r * ld + p];
}
#endif /* MRL__X86_SIMD */

/* Which kernel this CPU runs (no state is kept: the check is a few loads). */
static int mrl__gemm_isa(void) {
#ifdef MRL__X86_SIMD
  if (__builtin_cpu_supports("avx512f")) return MRL__ISA_AVX512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return MRL__ISA_AVX2;
#endif
  return MRL__ISA_C;
}

/* Runs the kernel: C tile = Cin tile + Ap Bp, Cin read from ci (row stride
 * ldi; the zero table with ldi = 0 when beta == 0 on the first K slice, so
 * C's old contents are never read and need no clearing). */
static void mrl__gemm_kernel(int isa, int rows, int cols, int kc, const float *ap, const float *bp,
                             size_t bs, const float *ci, size_t ldi, float *c, size_t ldc) {
#ifdef MRL__X86_SIMD
  if (isa == MRL__ISA_AVX512 && cols == 16) {
    if (rows == 4)
      mrl__kern_avx512_r4c16(kc, ap, bp, bs, ci, ldi, c, ldc);
    else if (rows == 8)
      mrl__kern_avx512_r8c16(kc, ap, bp, bs, ci, ldi, c, ldc);
    else
      mrl__kern_avx512_c16(kc, ap, bp, bs, ci, ldi, c, ldc);
    return;
  }
  if (isa == MRL__ISA_AVX512) {
    if (rows == 4)
      mrl__kern_avx512_r4(kc, ap, bp, bs, ci, ldi, c, ldc);
    else if (rows == 8)
      mrl__kern_avx512_r8(kc, ap, bp, bs, ci, ldi, c, ldc);
    else
      mrl__kern_avx512(kc, ap, bp, bs, ci, ldi, c, ldc);
    return;
  }
  if (isa == MRL__ISA_AVX2) {
    mrl__kern_avx2(kc, ap, bp, bs, ci, ldi, c, ldc);
    return;
  }
#endif
  (void)isa;
  (void)rows;
  (void)cols;
  mrl__kern_c(kc, ap, bp, bs, ci, ldi, c, ldc);
}

/* Rounds the aligned start of a stack buffer up to 64 bytes. */
static float *mrl__align64(float *p) {
  return p + ((16 - ((size_t)(uintptr_t)p / sizeof(float)) % 16) % 16);
}

/* Packed path over C's column block [j0, j0+nc): for each KC slice, pack
 * op(B) once, then op(A) in MC-row blocks, and run the micro-kernel on every
 * MR x NR tile (edge tiles through a padded copy, same arithmetic). */
static const float mrl__zeros[32] = {0.0f};

static void mrl__gemm_packed_block(int isa, int ta, int tb, int m, int j0, int nc, int k,
                                   const float *a, int lda, const float *b, int ldb, int zero,
                                   float *c, int ldc, int ctr) {
  float bbuf[MRL__KC * MRL__NC + 16], abuf[MRL__MC * MRL__KC + 16], tbuf[12 * 32 + 16];
  float *bp = mrl__align64(bbuf), *ap = mrl__align64(abuf), *tile = mrl__align64(tbuf);
  int mr = isa == MRL__ISA_AVX512 ? 12 : 6;
  int nr = isa == MRL__ISA_AVX512 ? 32 : isa == MRL__ISA_AVX2 ? 16 : 8;
  /* With op(B) = B, full panels of B are read in place (row stride ldb)
   * instead of packed when that is cheaper: with few rows (one MC block, so
   * each panel is used once) or, for the 32-wide AVX-512 panels, short rows
   * (ldb <= 256: the panel stays in cache without set conflicts; measured
   * slower with the 16-wide AVX2 panels). */
  int inplace = !tb && (m <= MRL__MC || (ldb <= 256 && isa == MRL__ISA_AVX512));
  int p0, i0, jr, ir, p, q, r;
  for (p0 = 0; p0 < k; p0 += MRL__KC) {
    int kc = k - p0 < MRL__KC ? k - p0 : MRL__KC;
    /* pack op(B)[p0.., j0..] as panels of kc rows x nr columns */
    for (jr = 0; jr < nc; jr += nr) {
      float *dst = bp + (size_t)jr * kc;
      int nb = nc - jr < nr ? nc - jr : nr;
      if (inplace && nb == nr) continue;
      if (tb) {
#ifdef MRL__X86_SIMD
        if (isa != MRL__ISA_C) {
          mrl__pack_rows_avx2(nr, nb, kc, b + (size_t)(j0 + jr) * ldb + p0, (size_t)ldb, dst);
          continue;
        }
#endif
        if (nb < nr) memset(dst, 0, sizeof(float) * (size_t)kc * (size_t)nr);
        for (q = 0; q < nb; q++) {
          const float *src = b + (size_t)(j0 + jr + q) * ldb + p0;
          for (p = 0; p < kc; p++) dst[(size_t)p * nr + q] = src[p];
        }
      } else {
        /* zero padding first (one memset, not one per row) */
        if (nb < nr) memset(dst, 0, sizeof(float) * (size_t)kc * (size_t)nr);
        for (p = 0; p < kc; p++) {
          const float *src = b + (size_t)(p0 + p) * ldb + j0 + jr;
          float *d = dst + (size_t)p * nr;
          q = 0;
          if (nb == 32) { /* constant sizes: inline vector moves */
            memcpy(d, src, 32 * sizeof(float));
            q = 32;
          } else if (nb == 16) {
            memcpy(d, src, 16 * sizeof(float));
            q = 16;
          } else if (nb == 8) {
            memcpy(d, src, 8 * sizeof(float));
            q = 8;
          }
          for (; q < nb; q++) d[q] = src[q];
        }
      }
    }
    for (i0 = 0; i0 < m; i0 += MRL__MC) {
      int mc = m - i0 < MRL__MC ? m - i0 : MRL__MC;
      /* pack op(A)[i0.., p0..] as panels of mr rows x kc */
      for (ir = 0; ir < mc; ir += mr) {
        float *dst = ap + (size_t)ir * kc;
        int mb = mc - ir < mr ? mc - ir : mr;
        if (ta) {
          if (mb < mr) memset(dst, 0, sizeof(float) * (size_t)kc * (size_t)mr);
          for (p = 0; p < kc; p++) {
            const float *src = a + (size_t)(p0 + p) * lda + i0 + ir;
            float *d = dst + (size_t)p * mr;
            for (r = 0; r < mb; r++) d[r] = src[r];
          }
        } else {
          const float *src = a + (size_t)(i0 + ir) * lda + p0;
#ifdef MRL__X86_SIMD
          if (isa != MRL__ISA_C) {
            mrl__pack_rows_avx2(mr, mb, kc, src, (size_t)lda, dst);
            continue;
          }
#endif
          if (mb < mr) memset(dst, 0, sizeof(float) * (size_t)kc * (size_t)mr);
          for (p = 0; p < kc; p++) {
            float *d = dst + (size_t)p * mr;
            for (r = 0; r < mb; r++) d[r] = src[(size_t)r * lda + p];
          }
        }
      }
      for (jr = 0; jr < nc; jr += nr) {
        int nb = nc - jr < nr ? nc - jr : nr;
        for (ir = 0; ir < mc; ir += mr) {
          int mb = mc - ir < mr ? mc - ir : mr;
          /* ctr: this block computes C^T, element (r, q) of the tile is at
           * ct[q*ldc + r] */
          float *ct =
              ctr ? c + (size_t)(j0 + jr) * ldc + i0 + ir : c + (size_t)(i0 + ir) * ldc + j0 + jr;
          int fresh = zero && p0 == 0; /* beta == 0: start from the zero table */
          /* rows the kernel runs: mr, or on AVX-512 the last panel's 4 or 8 */
          int kr = isa == MRL__ISA_AVX512 && mb <= 8 ? (mb <= 4 ? 4 : 8) : mr;
          int kn = isa == MRL__ISA_AVX512 && nb <= 16 ? 16 : nr; /* and columns */
          /* this panel of op(B): packed, or in place with row stride ldb */
          const float *bpan =
              inplace && nb == nr ? b + (size_t)p0 * ldb + j0 + jr : bp + (size_t)jr * kc;
          size_t bs = inplace && nb == nr ? (size_t)ldb : (size_t)nr;
          if (mb == kr && nb == kn && !ctr) {
            mrl__gemm_kernel(isa, kr, kn, kc, ap + (size_t)ir * kc, bpan, bs,
                             fresh ? mrl__zeros : ct, fresh ? 0 : (size_t)ldc, ct, (size_t)ldc);
          } else {
            memset(tile, 0, sizeof(float) * (size_t)(kr * nr));
            if (!fresh && ctr)
              for (r = 0; r < mb; r++)
                for (q = 0; q < nb; q++) tile[r * nr + q] = ct[(size_t)q * ldc + r];
            else if (!fresh)
              for (r = 0; r < mb; r++)
                memcpy(tile + r * nr, ct + (size_t)r * ldc, sizeof(float) * (size_t)nb);
            mrl__gemm_kernel(isa, kr, kn, kc, ap + (size_t)ir * kc, bpan, bs, tile, (size_t)nr,
                             tile, (size_t)nr);
            if (ctr)
              for (r = 0; r < mb; r++)
                for (q = 0; q < nb; q++) ct[(size_t)q * ldc + r] = tile[r * nr + q];
            else
              for (r = 0; r < mb; r++)
                memcpy(ct + (size_t)r * ldc, tile + r * nr, sizeof(float) * (size_t)nb);
          }
        }
      }
    }
  }
}

/* Direct (unpacked) paths for few rows. op(B) = B: each row of C is a chain
 * of axpys over B's rows, the same per-element chain as the packed path.
 * op(B) = B^T: dot products with lane-interleaved partial sums. */
static void mrl__axpy_rows_c(int n, int k, const float *a, size_t aps, const float *b, int ldb,
                             float *c) {
  int p, j;
  for (p = 0; p < k; p++) {
    const float av = a[(size_t)p * aps], *bp = b + (size_t)p * ldb;
    for (j = 0; j < n; j++) c[j] = c[j] + av * bp[j];
  }
}

static float mrl__dot_c(int k, const float *x, const float *y) {
  int p;
#ifdef MRL__HAVE_V4
  mrl__v4 s0, s1, x0, x1, y0, y1;
  float lane[4], sum;
  memset(&s0, 0, sizeof s0);
  s1 = s0;
  for (p = 0; p + 8 <= k; p += 8) {
    memcpy(&x0, x + p, sizeof x0);
    memcpy(&x1, x + p + 4, sizeof x1);
    memcpy(&y0, y + p, sizeof y0);
    memcpy(&y1, y + p + 4, sizeof y1);
    s0 += x0 * y0;
    s1 += x1 * y1;
  }
  s0 += s1;
  memcpy(lane, &s0, sizeof lane);
  sum = (lane[0] + lane[1]) + (lane[2] + lane[3]);
#else
  float sum = 0.0f;
  p = 0;
#endif
  for (; p < k; p++) sum += x[p] * y[p];
  return sum;
}

#ifdef MRL__X86_SIMD
MRL__TARGET_AVX2 static void mrl__axpy_rows_avx2(int n, int k, const float *a, size_t aps,
                                                 const float *b, int ldb, float *c) {
  int p, j = 0;
  /* 64 columns of C stay in registers across the whole k chain */
  for (; j + 32 <= n; j += 32) {
    __m256 c0 = _mm256_loadu_ps(c + j), c1 = _mm256_loadu_ps(c + j + 8);
    __m256 c2 = _mm256_loadu_ps(c + j + 16), c3 = _mm256_loadu_ps(c + j + 24);
    for (p = 0; p < k; p++) {
      const float *bp = b + (size_t)p * ldb + j;
      __m256 av = _mm256_set1_ps(a[(size_t)p * aps]);
      c0 = _mm256_fmadd_ps(av, _mm256_loadu_ps(bp), c0);
      c1 = _mm256_fmadd_ps(av, _mm256_loadu_ps(bp + 8), c1);
      c2 = _mm256_fmadd_ps(av, _mm256_loadu_ps(bp + 16), c2);
      c3 = _mm256_fmadd_ps(av, _mm256_loadu_ps(bp + 24), c3);
    }
    _mm256_storeu_ps(c + j, c0);
    _mm256_storeu_ps(c + j + 8, c1);
    _mm256_storeu_ps(c + j + 16, c2);
    _mm256_storeu_ps(c + j + 24, c3);
  }
  for (; j + 8 <= n; j += 8) {
    __m256 c0 = _mm256_loadu_ps(c + j);
    for (p = 0; p < k; p++)
      c0 = _mm256_fmadd_ps(_mm256_set1_ps(a[(size_t)p * aps]),
                           _mm256_loadu_ps(b + (size_t)p * ldb + j), c0);
    _mm256_storeu_ps(c + j, c0);
  }
  for (; j < n; j++) {
    float s = c[j];
    for (p = 0; p < k; p++) s = fmaf(a[(size_t)p * aps], b[(size_t)p * ldb + j], s);
    c[j] = s;
  }
}

/* Dot-product tiles for op(B) = B^T with few rows: C[r][j] += sum_p A[r][p]
 * B[j][p] with both rows contiguous. Each element sums in its own vector of
 * lanes (lane l takes p = l mod width; the last partial step loads zeros past
 * k), then the lanes are added in a fixed tree, then the sum is added to C.
 * Tiles of R rows x 4 columns share loads; a column past n reads column 0
 * again and is not stored, so every element gets the same arithmetic. */
/* Lane sums of four 8-lane vectors at once, [sum v0, sum v1, sum v2, sum v3],
 * each in the fixed tree (l + l+4), then (l + l+2), then (0 + 1). */
MRL__TARGET_AVX2 MRL__INLINE static __m128 mrl__hsum4x256(__m256 v0, __m256 v1, __m256 v2,
                                                          __m256 v3) {
  __m128 b0 = _mm_add_ps(_mm256_castps256_ps128(v0), _mm256_extractf128_ps(v0, 1));
  __m128 b1 = _mm_add_ps(_mm256_castps256_ps128(v1), _mm256_extractf128_ps(v1, 1));
  __m128 b2 = _mm_add_ps(_mm256_castps256_ps128(v2), _mm256_extractf128_ps(v2, 1));
  __m128 b3 = _mm_add_ps(_mm256_castps256_ps128(v3), _mm256_extractf128_ps(v3, 1));
  __m128 u01 = _mm_add_ps(_mm_unpacklo_ps(b0, b1), _mm_unpackhi_ps(b0, b1));
  __m128 u23 = _mm_add_ps(_mm_unpacklo_ps(b2, b3), _mm_unpackhi_ps(b2, b3));
  return _mm_add_ps(_mm_movelh_ps(u01, u23), _mm_movehl_ps(u23, u01));
}
/* The same for 16-lane vectors: first (l + l+8), then as above. The halves
 * go through memory: GCC 12's C++ front end warns about the register casts
 * (_mm512_castps512_ps256) at -O2. */
MRL__TARGET_AVX512 MRL__INLINE static __m256 mrl__half512(__m512 v) {
  float t[16];
  _mm512_storeu_ps(t, v);
  return _mm256_add_ps(_mm256_loadu_ps(t), _mm256_loadu_ps(t + 8));
}
MRL__TARGET_AVX512 MRL__INLINE static __m128 mrl__hsum4x512(__m512 v0, __m512 v1, __m512 v2,
                                                            __m512 v3) {
  return mrl__hsum4x256(mrl__half512(v0), mrl__half512(v1), mrl__half512(v2), mrl__half512(v3));
}
/* C row r, columns 0..cols-1 (column stride cs), += the four lane sums of row
 * r's accumulators */
#define MRL__DOT_OUT(r, HSUM4)                                                                     \
  do {                                                                                             \
    float *cr = c + (size_t)(r)*ldc, sums[4];                                                      \
    __m128 h = HSUM4(s##r##0, s##r##1, s##r##2, s##r##3);                                          \
    if (cols == 4 && cs == 1) {                                                                    \
      _mm_storeu_ps(cr, _mm_add_ps(_mm_loadu_ps(cr), h));                                          \
    } else {                                                                                       \
      _mm_storeu_ps(sums, h);                                                                      \
      for (j = 0; j < cols; j++) cr[(size_t)j * cs] += sums[j];                                    \
    }                                                                                              \
  } while (0)
#define MRL__DOT_ROW(r, FMA)                                                                       \
  s##r##0 = FMA(x##r, y0, s##r##0);                                                                \
  s##r##1 = FMA(x##r, y1, s##r##1);                                                                \
  s##r##2 = FMA(x##r, y2, s##r##2);                                                                \
  s##r##3 = FMA(x##r, y3, s##r##3)

/* AVX-512: 4 x 4 tiles (rows == 4) or 1 x 4 (rows == 1), 16 lanes. */
MRL__TARGET_AVX512 static void mrl__dot_tile_avx512(int rows, int cols, int k, const float *a,
                                                    size_t lda, const float *b, size_t ldb,
                                                    float *c, size_t ldc, size_t cs) {
  const float *b0 = b, *b1 = cols > 1 ? b + ldb : b, *b2 = cols > 2 ? b + 2 * ldb : b;
  const float *b3 = cols > 3 ? b + 3 * ldb : b;
  __m512 s00 = _mm512_setzero_ps(), s01 = s00, s02 = s00, s03 = s00, s10 = s00, s11 = s00;
  __m512 s12 = s00, s13 = s00, s20 = s00, s21 = s00, s22 = s00, s23 = s00, s30 = s00, s31 = s00;
  __m512 s32 = s00, s33 = s00;
  __m512 x0, x1, x2, x3, y0, y1, y2, y3;
  __mmask16 mk = (__mmask16)((1u << (k % 16)) - 1u); /* the last partial step */
  int p, j;
#define MRL__LD512(q) _mm512_loadu_ps(q)
#define MRL__LD512M(q) _mm512_maskz_loadu_ps(mk, q)
#define MRL__D512_ROW0(LD)                                                                         \
  y0 = LD(b0 + p);                                                                                 \
  y1 = LD(b1 + p);                                                                                 \
  y2 = LD(b2 + p);                                                                                 \
  y3 = LD(b3 + p);                                                                                 \
  x0 = LD(a + p);                                                                                  \
  MRL__DOT_ROW(0, _mm512_fmadd_ps)
#define MRL__D512_ROWS123(LD)                                                                      \
  x1 = LD(a + lda + p);                                                                            \
  x2 = LD(a + 2 * lda + p);                                                                        \
  x3 = LD(a + 3 * lda + p);                                                                        \
  MRL__DOT_ROW(1, _mm512_fmadd_ps);                                                                \
  MRL__DOT_ROW(2, _mm512_fmadd_ps);                                                                \
  MRL__DOT_ROW(3, _mm512_fmadd_ps)
  if (rows == 4) {
    for (p = 0; p + 16 <= k; p += 16) {
      MRL__D512_ROW0(MRL__LD512);
      MRL__D512_ROWS123(MRL__LD512);
    }
    if (p < k) {
      MRL__D512_ROW0(MRL__LD512M);
      MRL__D512_ROWS123(MRL__LD512M);
    }
  } else {
    for (p = 0; p + 16 <= k; p += 16) {
      MRL__D512_ROW0(MRL__LD512);
    }
    if (p < k) {
      MRL__D512_ROW0(MRL__LD512M);
    }
  }
  MRL__DOT_OUT(0, mrl__hsum4x512);
  if (rows == 4) {
    MRL__DOT_OUT(1, mrl__hsum4x512);
    MRL__DOT_OUT(2, mrl__hsum4x512);
    MRL__DOT_OUT(3, mrl__hsum4x512);
  }
}

/* AVX2: 2 x 4 tiles (rows == 2) or 1 x 4 (rows == 1), 8 lanes. */
MRL__TARGET_AVX2 static void mrl__dot_tile_avx2(int rows, int cols, int k, const float *a,
                                                size_t lda, const float *b, size_t ldb, float *c,
                                                size_t ldc, size_t cs) {
  const float *b0 = b, *b1 = cols > 1 ? b + ldb : b, *b2 = cols > 2 ? b + 2 * ldb : b;
  const float *b3 = cols > 3 ? b + 3 * ldb : b;
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  __m256 s00 = _mm256_setzero_ps(), s01 = s00, s02 = s00, s03 = s00, s10 = s00, s11 = s00;
  __m256 s12 = s00, s13 = s00;
  int p, j;
  for (p = 0; p < k; p += 8) {
    __m256 x0, x1, y0, y1, y2, y3;
    if (k - p >= 8) {
      y0 = _mm256_loadu_ps(b0 + p);
      y1 = _mm256_loadu_ps(b1 + p);
      y2 = _mm256_loadu_ps(b2 + p);
      y3 = _mm256_loadu_ps(b3 + p);
      x0 = _mm256_loadu_ps(a + p);
      x1 = rows == 2 ? _mm256_loadu_ps(a + lda + p) : x0;
    } else { /* lanes past k load zeros */
      __m256i mk = _mm256_cmpgt_epi32(_mm256_set1_epi32(k - p), lane);
      y0 = _mm256_maskload_ps(b0 + p, mk);
      y1 = _mm256_maskload_ps(b1 + p, mk);
      y2 = _mm256_maskload_ps(b2 + p, mk);
      y3 = _mm256_maskload_ps(b3 + p, mk);
      x0 = _mm256_maskload_ps(a + p, mk);
      x1 = rows == 2 ? _mm256_maskload_ps(a + lda + p, mk) : x0;
    }
    MRL__DOT_ROW(0, _mm256_fmadd_ps);
    if (rows == 2) {
      MRL__DOT_ROW(1, _mm256_fmadd_ps);
    }
  }
  MRL__DOT_OUT(0, mrl__hsum4x256);
  if (rows == 2) {
    MRL__DOT_OUT(1, mrl__hsum4x256);
  }
}
#endif

static void mrl__gemm_direct(int isa, int ta, int tb, int m, int n, int k, const float *a, int lda,
                             const float *b, int ldb, float *c, int ldc) {
  int i, j, p;
  (void)isa;
  if (tb && !ta) { /* dot products: both operands contiguous along k */
#ifdef MRL__X86_SIMD
    /* single rows run faster in 8 lanes (measured on Zen 4) */
    if (isa == MRL__ISA_AVX512 && m < 4) isa = MRL__ISA_AVX2;
#endif
    if (n < 4 && m >= 4) {
      /* fewer than 4 columns: a tile takes 4 rows of A as its columns and
       * writes them down C's column (x*y = y*x, so the sums are the same) */
      for (j = 0; j < n; j++) {
        const float *bj = b + (size_t)j * ldb;
        for (i = 0; i < m; i += 4) {
          int cols = m - i < 4 ? m - i : 4;
          const float *ai = a + (size_t)i * lda;
          float *ci = c + (size_t)i * ldc + j;
#ifdef MRL__X86_SIMD
          if (isa == MRL__ISA_AVX512) {
            mrl__dot_tile_avx512(1, cols, k, bj, 0, ai, (size_t)lda, ci, 0, (size_t)ldc);
            continue;
          }
          if (isa == MRL__ISA_AVX2) {
            mrl__dot_tile_avx2(1, cols, k, bj, 0, ai, (size_t)lda, ci, 0, (size_t)ldc);
            continue;
          }
#endif
          for (p = 0; p < cols; p++) ci[(size_t)p * ldc] += mrl__dot_c(k, bj, ai + (size_t)p * lda);
        }
      }
      return;
    }
    for (j = 0; j < n; j += 4) {
      int cols = n - j < 4 ? n - j : 4;
      const float *bj = b + (size_t)j * ldb;
      for (i = 0; i < m;) {
        const float *ai = a + (size_t)i * lda;
        float *ci = c + (size_t)i * ldc + j;
#ifdef MRL__X86_SIMD
        if (isa == MRL__ISA_AVX512) {
          int rows = m - i >= 4 ? 4 : 1;
          mrl__dot_tile_avx512(rows, cols, k, ai, (size_t)lda, bj, (size_t)ldb, ci, (size_t)ldc, 1);
          i += rows;
          continue;
        }
        if (isa == MRL__ISA_AVX2) {
          int rows = m - i >= 2 ? 2 : 1;
          mrl__dot_tile_avx2(rows, cols, k, ai, (size_t)lda, bj, (size_t)ldb, ci, (size_t)ldc, 1);
          i += rows;
          continue;
        }
#endif
        for (p = 0; p < cols; p++) ci[p] += mrl__dot_c(k, ai, bj + (size_t)p * ldb);
        i++;
      }
    }
    return;
  }
  for (i = 0; i < m; i++) {
    const float *ai = ta ? a + i : a + (size_t)i * lda;
    size_t aps = ta ? (size_t)lda : 1;
    float *ci = c + (size_t)i * ldc;
    if (tb) { /* A^T B^T: the packed kernels' chain, element by element */
      for (j = 0; j < n; j++) {
        const float *bj = b + (size_t)j * ldb;
        float s = ci[j];
        if (isa != MRL__ISA_C)
          for (p = 0; p < k; p++) s = fmaf(ai[(size_t)p * aps], bj[p], s);
        else
          for (p = 0; p < k; p++) s = s + ai[(size_t)p * aps] * bj[p];
        ci[j] = s;
      }
    } else {
#ifdef MRL__X86_SIMD
      if (isa != MRL__ISA_C) {
        mrl__axpy_rows_avx2(n, k, ai, aps, b, ldb, ci);
        continue;
      }
#endif
      mrl__axpy_rows_c(n, k, ai, aps, b, ldb, ci);
    }
  }
}

/* mrl_gemm with the kernel chosen by the caller (tests run every kernel the
 * CPU has). */
static void mrl__gemm_isa_run(int isa, int trans_a, int trans_b, int m, int n, int k,
                              const float *a, int lda, const float *b, int ldb, float beta,
                              float *c, int ldc) {
  int i, j, packed, ctr = 0;
  if (m <= 0 || n <= 0) return;
  MRL_ASSERT(ldc >= n && "mrl_gemm: ldc must be at least n");
  packed = k > 0 && !((trans_b && !trans_a && (m <= MRL__DOT_M || n <= 4)) ||
                      (!trans_b && m <= 3) || (double)m * n * k <= 4096.0);
  if (beta == 0.0f && packed) {
    /* the packed kernels start from zero themselves */
  } else if (beta == 0.0f) {
    for (i = 0; i < m; i++) memset(c + (size_t)i * ldc, 0, sizeof(float) * (size_t)n);
  } else if (beta != 1.0f) {
    for (i = 0; i < m; i++)
      for (j = 0; j < n; j++) c[(size_t)i * ldc + j] *= beta;
  }
  if (k <= 0) return;
  MRL_ASSERT(lda >= (trans_a ? m : k) && ldb >= (trans_b ? k : n) &&
             "mrl_gemm: a row stride is shorter than its row");
  if (!packed) {
    mrl__gemm_direct(isa, trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc);
    return;
  }
  /* A narrow C (few columns, many rows) is computed as C^T = op(B)^T op(A)^T,
   * so the kernels' rows, not their wide columns, cover the few columns; each
   * element's chain is the same (a*b = b*a exactly), so is the result. */
  if (n < 16 && m >= 2 * n) {
    const float *t = a;
    int ld = lda, ta = trans_a;
    a = b;
    lda = ldb;
    trans_a = !trans_b;
    b = t;
    ldb = ld;
    trans_b = !ta;
    ld = m;
    m = n;
    n = ld;
    ctr = 1;
  }
  /* Column blocks of C. With OpenMP each thread takes one contiguous range
   * of columns (split at multiples of 32) in blocks of at most NC; block
   * widths never change a result (each element's chain is the same in any
   * block), so the split can follow the thread count. */
  {
#ifdef _OPENMP
#pragma omp parallel if ((double)m * n * k > 4e6)
#endif
    {
      int t = 0, nt = 1, lo, hi, j0;
#ifdef _OPENMP
      t = omp_get_thread_num();
      nt = omp_get_num_threads();
#endif
      lo = (int)(((long long)n * t / nt + 31) / 32 * 32);
      hi = t == nt - 1 ? n : (int)(((long long)n * (t + 1) / nt + 31) / 32 * 32);
      if (hi > n) hi = n;
      for (j0 = lo; j0 < hi; j0 += MRL__NC)
        mrl__gemm_packed_block(isa, trans_a, trans_b, m, j0, hi - j0 < MRL__NC ? hi - j0 : MRL__NC,
                               k, a, lda, b, ldb, beta == 0.0f, c, ldc, ctr);
    }
  }
}

MRL_DEF void mrl_gemm(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
                      const float *b, int ldb, float beta, float *c, int ldc) {
  mrl__gemm_isa_run(mrl__gemm_isa(), trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc);
}

/* ---- matmul ---- */

/* layout: 0 = A·B, 1 = A·Bᵀ, 2 = Aᵀ·B */
static void mrl__matmul_backward(mrl_node *nd) {
  mrl_tensor *a = nd->in[0], *b = nd->in[1], *c = nd->out;
  int layout = nd->i[0];
  int m = c->shape[0], n = c->shape[1], k = nd->i[1];
  if (layout == 0) { /* C = A B: dA = dC Bᵀ, dB = Aᵀ dC */
    if (a->grad) mrl_gemm(0, 1, m, k, n, c->grad, n, b->data, n, 1.0f, a->grad, k);
    if (b->grad) mrl_gemm(1, 0, k, n, m, a->data, k, c->grad, n, 1.0f, b->grad, n);
  } else if (layout == 1) { /* C = A Bᵀ, B [n,k]: dA = dC B, dB = dCᵀ A */
    if (a->grad) mrl_gemm(0, 0, m, k, n, c->grad, n, b->data, k, 1.0f, a->grad, k);
    if (b->grad) mrl_gemm(1, 0, n, k, m, c->grad, n, a->data, k, 1.0f, b->grad, k);
  } else { /* C = Aᵀ B, A [k,m]: dA = B dCᵀ, dB = A dC */
    if (a->grad) mrl_gemm(0, 1, k, m, n, b->data, n, c->grad, n, 1.0f, a->grad, m);
    if (b->grad) mrl_gemm(0, 0, k, n, m, a->data, m, c->grad, n, 1.0f, b->grad, n);
  }
}

static mrl_tensor *mrl__matmul(mrl_graph *g, mrl_tensor *a, mrl_tensor *b, int layout,
                               const char *op) {
  int m, n, k, kb, shape[2];
  mrl_tensor *c;
  mrl_node *nd;
  if (!a || !b) return NULL;
  MRL_SHAPE_CHECK(a->ndim == 2 && b->ndim == 2, op, "operands must be 2-D", a, b);
  m = layout == 2 ? a->shape[1] : a->shape[0];
  k = layout == 2 ? a->shape[0] : a->shape[1];
  n = layout == 1 ? b->shape[0] : b->shape[1];
  kb = layout == 1 ? b->shape[1] : b->shape[0];
  MRL_SHAPE_CHECK(k == kb, op, "inner dimensions differ", a, b);
  shape[0] = m;
  shape[1] = n;
  c = mrl_op_output(g, 2, shape, mrl_graph_wants_grad(g, a, b));
  if (!c) return NULL;
  mrl_gemm(layout == 2, layout == 1, m, n, k, a->data, a->shape[1], b->data, b->shape[1], 0.0f,
           c->data, n);
  MRL__FINITE(op, c, a, b);
  if ((nd = mrl_graph_record(g, op, mrl__matmul_backward, c)) != NULL) {
    nd->in[0] = a;
    nd->in[1] = b;
    nd->i[0] = layout;
    nd->i[1] = k;
  }
  return c;
}

MRL_DEF mrl_tensor *mrl_matmul(mrl_graph *g, mrl_tensor *a, mrl_tensor *b) {
  return mrl__matmul(g, a, b, 0, "matmul");
}
MRL_DEF mrl_tensor *mrl_matmul_nt(mrl_graph *g, mrl_tensor *a, mrl_tensor *b) {
  return mrl__matmul(g, a, b, 1, "matmul_nt");
}
MRL_DEF mrl_tensor *mrl_matmul_tn(mrl_graph *g, mrl_tensor *a, mrl_tensor *b) {
  return mrl__matmul(g, a, b, 2, "matmul_tn");
}

/* ---- linear: y = x Wᵀ + b ---- */

static void mrl__linear_backward(mrl_node *nd) {
  mrl_tensor *x = nd->in[0], *w = nd->in[1], *b = nd->in[2], *y = nd->out;
  int m = mrl_tensor_rows(x), k = mrl_tensor_cols(x), n = w->shape[0], i, j;
  if (x->grad) mrl_gemm(0, 0, m, k, n, y->grad, n, w->data, k, 1.0f, x->grad, k);
  if (w->grad) mrl_gemm(1, 0, n, k, m, y->grad, n, x->data, k, 1.0f, w->grad, k);
  if (b && b->grad)
    for (i = 0; i < m; i++)
      for (j = 0; j < n; j++) b->grad[j] += y->grad[(size_t)i * n + j];
}

MRL_DEF mrl_tensor *mrl_linear(mrl_graph *g, mrl_tensor *x, mrl_tensor *w, mrl_tensor *b) {
  int m, k, n, i, shape[MRL_MAX_DIMS];
  mrl_tensor *y;
  mrl_node *nd;
  if (!x || !w) return NULL;
  MRL_SHAPE_CHECK(w->ndim == 2 && mrl_tensor_cols(x) == w->shape[1], "linear",
                  "x's last dimension must equal W's columns (W is [out,in])", x, w);
  m = mrl_tensor_rows(x);
  k = mrl_tensor_cols(x);
  n = w->shape[0];
  if (b) MRL_SHAPE_CHECK(b->size == n, "linear", "bias length must equal W's rows", b, w);
  for (i = 0; i < x->ndim; i++) shape[i] = x->shape[i];
  shape[x->ndim - 1] = n;
  y = mrl_op_output(g, x->ndim, shape,
                    mrl_graph_wants_grad(g, x, w) || (b && b->grad && !g->no_grad));
  if (!y) return NULL;
  for (i = 0; i < m; i++) {
    if (b)
      memcpy(y->data + (size_t)i * n, b->data, sizeof(float) * (size_t)n);
    else
      memset(y->data + (size_t)i * n, 0, sizeof(float) * (size_t)n);
  }
  mrl_gemm(0, 1, m, n, k, x->data, k, w->data, k, 1.0f, y->data, n);
  MRL__FINITE("linear", y, x, w);
  if ((nd = mrl_graph_record(g, "linear", mrl__linear_backward, y)) != NULL) {
    nd->in[0] = x;
    nd->in[1] = w;
    nd->in[2] = b;
  }
  return y;
}

/* ---- broadcasting binary ops ----
 * b broadcasts over a when b's shape is a suffix of a's (leading 1s ignored):
 * element i of a pairs with element i % b->size of b. */

static int mrl__suffix_broadcastable(const mrl_tensor *a, const mrl_tensor *b) {
  int ia = a->ndim - 1, ib = b->ndim - 1;
  for (; ib >= 0; ib--, ia--) {
    if (ia < 0) {
      if (b->shape[ib] != 1) return 0;
    } else if (b->shape[ib] != a->shape[ia]) {
      return 0;
    }
  }
  return 1;
}

enum { MRL__ADD, MRL__SUB, MRL__MUL };

static void mrl__binary_backward(mrl_node *nd) {
  mrl_tensor *a = nd->in[0], *b = nd->in[1], *y = nd->out;
  int kind = nd->i[0], n = y->size, nb = b->size, i;
  float sb = kind == MRL__SUB ? -1.0f : 1.0f;
  if (a->grad) {
    if (kind == MRL__MUL)
      for (i = 0; i < n; i++) a->grad[i] += y->grad[i] * b->data[i % nb];
    else
      for (i = 0; i < n; i++) a->grad[i] += y->grad[i];
  }
  if (b->grad) {
    int r, j;
    for (r = 0; r < n / nb; r++) {
      const float *gy = y->grad + (size_t)r * nb;
      if (kind == MRL__MUL) {
        const float *ar = a->data + (size_t)r * nb;
        for (j = 0; j < nb; j++) b->grad[j] += gy[j] * ar[j];
      } else {
        for (j = 0; j < nb; j++) b->grad[j] += sb * gy[j];
      }
    }
  }
}

static mrl_tensor *mrl__binary(mrl_graph *g, mrl_tensor *a, mrl_tensor *b, int kind,
                               const char *op) {
  mrl_tensor *y;
  mrl_node *nd;
  int n, nb, r, j;
  if (!a || !b) return NULL;
  MRL_SHAPE_CHECK(mrl__suffix_broadcastable(a, b), op,
                  "shapes do not broadcast (b's shape must be a suffix of a's)", a, b);
  y = mrl_op_output(g, a->ndim, a->shape, mrl_graph_wants_grad(g, a, b));
  if (!y) return NULL;
  n = a->size;
  nb = b->size;
  for (r = 0; r < (nb ? n / nb : 0); r++) {
    const float *ar = a->data + (size_t)r * nb;
    float *yr = y->data + (size_t)r * nb;
    if (kind == MRL__ADD)
      for (j = 0; j < nb; j++) yr[j] = ar[j] + b->data[j];
    else if (kind == MRL__SUB)
      for (j = 0; j < nb; j++) yr[j] = ar[j] - b->data[j];
    else
      for (j = 0; j < nb; j++) yr[j] = ar[j] * b->data[j];
  }
  MRL__FINITE(op, y, a, b);
  if ((nd = mrl_graph_record(g, op, mrl__binary_backward, y)) != NULL) {
    nd->in[0] = a;
    nd->in[1] = b;
    nd->i[0] = kind;
  }
  return y;
}

MRL_DEF mrl_tensor *mrl_add(mrl_graph *g, mrl_tensor *a, mrl_tensor *b) {
  return mrl__binary(g, a, b, MRL__ADD, "add");
}
MRL_DEF mrl_tensor *mrl_sub(mrl_graph *g, mrl_tensor *a, mrl_tensor *b) {
  return mrl__binary(g, a, b, MRL__SUB, "sub");
}
MRL_DEF mrl_tensor *mrl_mul(mrl_graph *g, mrl_tensor *a, mrl_tensor *b) {
  return mrl__binary(g, a, b, MRL__MUL, "mul");
}

/* ---- unary ops: one table entry each, forward and derivative side by side ---- */

enum {
  MRL__SCALE,
  MRL__ADD_SCALAR,
  MRL__SQUARE,
  MRL__EXP,
  MRL__LOG,
  MRL__TANH,
  MRL__SIGMOID,
  MRL__RELU,
  MRL__CLAMP
};

static void mrl__unary_backward(mrl_node *nd) {
  mrl_tensor *a = nd->in[0], *y = nd->out;
  const float *x = a->data, *o = y->data, *gy = y->grad;
  float *ga = a->grad, s = nd->f[0], lo = nd->f[0], hi = nd->f[1];
  int n = y->size, i;
  if (!ga) return;
  switch (nd->i[0]) {
  case MRL__SCALE:
    for (i = 0; i < n; i++) ga[i] += gy[i] * s;
    break;
  case MRL__ADD_SCALAR:
    for (i = 0; i < n; i++) ga[i] += gy[i];
    break;
  case MRL__SQUARE:
    for (i = 0; i < n; i++) ga[i] += gy[i] * 2.0f * x[i];
    break;
  case MRL__EXP:
    for (i = 0; i < n; i++) ga[i] += gy[i] * o[i];
    break;
  case MRL__LOG:
    for (i = 0; i < n; i++) ga[i] += gy[i] / x[i];
    break;
  case MRL__TANH:
    for (i = 0; i < n; i++) ga[i] += gy[i] * (1.0f - o[i] * o[i]);
    break;
  case MRL__SIGMOID:
    for (i = 0; i < n; i++) ga[i] += gy[i] * o[i] * (1.0f - o[i]);
    break;
  case MRL__RELU:
    for (i = 0; i < n; i++) ga[i] += x[i] > 0.0f ? gy[i] : 0.0f;
    break;
  case MRL__CLAMP:
    for (i = 0; i < n; i++) ga[i] += (x[i] >= lo && x[i] <= hi) ? gy[i] : 0.0f;
    break;
  }
}

static mrl_tensor *mrl__unary(mrl_graph *g, mrl_tensor *a, int kind, float p0, float p1,
                              const char *op) {
  mrl_tensor *y;
  mrl_node *nd;
  const float *x;
  float *o;
  int n, i;
  if (!a) return NULL;
  y = mrl_op_output(g, a->ndim, a->shape, mrl_graph_wants_grad(g, a, NULL));
  if (!y) return NULL;
  x = a->data;
  o = y->data;
  n = a->size;
  switch (kind) {
  case MRL__SCALE:
    for (i = 0; i < n; i++) o[i] = x[i] * p0;
    break;
  case MRL__ADD_SCALAR:
    for (i = 0; i < n; i++) o[i] = x[i] + p0;
    break;
  case MRL__SQUARE:
    for (i = 0; i < n; i++) o[i] = x[i] * x[i];
    break;
  case MRL__EXP:
    for (i = 0; i < n; i++) o[i] = expf(x[i]);
    break;
  case MRL__LOG:
    for (i = 0; i < n; i++) o[i] = logf(x[i]);
    break;
  case MRL__TANH:
    for (i = 0; i < n; i++) o[i] = tanhf(x[i]);
    break;
  case MRL__SIGMOID:
    for (i = 0; i < n; i++) o[i] = mrl_sigmoidf(x[i]);
    break;
  case MRL__RELU:
    for (i = 0; i < n; i++) o[i] = x[i] > 0.0f ? x[i] : 0.0f;
    break;
  case MRL__CLAMP:
    for (i = 0; i < n; i++) o[i] = x[i] < p0 ? p0 : (x[i] > p1 ? p1 : x[i]);
    break;
  }
  MRL__FINITE(op, y, a, NULL);
  if ((nd = mrl_graph_record(g, op, mrl__unary_backward, y)) != NULL) {
    nd->in[0] = a;
    nd->i[0] = kind;
    nd->f[0] = p0;
    nd->f[1] = p1;
  }
  return y;
}

MRL_DEF mrl_tensor *mrl_scale(mrl_graph *g, mrl_tensor *a, float s) {
  return mrl__unary(g, a, MRL__SCALE, s, 0.0f, "scale");
}
MRL_DEF mrl_tensor *mrl_add_scalar(mrl_graph *g, mrl_tensor *a, float s) {
  return mrl__unary(g, a, MRL__ADD_SCALAR, s, 0.0f, "add_scalar");
}
MRL_DEF mrl_tensor *mrl_neg(mrl_graph *g, mrl_tensor *a) {
  return mrl__unary(g, a, MRL__SCALE, -1.0f, 0.0f, "neg");
}
MRL_DEF mrl_tensor *mrl_square(mrl_graph *g, mrl_tensor *a) {
  return mrl__unary(g, a, MRL__SQUARE, 0.0f, 0.0f, "square");
}
MRL_DEF mrl_tensor *mrl_exp(mrl_graph *g, mrl_tensor *a) {
  return mrl__unary(g, a, MRL__EXP, 0.0f, 0.0f, "exp");
}
MRL_DEF mrl_tensor *mrl_log(mrl_graph *g, mrl_tensor *a) {
  return mrl__unary(g, a, MRL__LOG, 0.0f, 0.0f, "log");
}
MRL_DEF mrl_tensor *mrl_tanh(mrl_graph *g, mrl_tensor *a) {
  return mrl__unary(g, a, MRL__TANH, 0.0f, 0.0f, "tanh");
}
MRL_DEF mrl_tensor *mrl_sigmoid(mrl_graph *g, mrl_tensor *a) {
  return mrl__unary(g, a, MRL__SIGMOID, 0.0f, 0.0f, "sigmoid");
}
MRL_DEF mrl_tensor *mrl_relu(mrl_graph *g, mrl_tensor *a) {
  return mrl__unary(g, a, MRL__RELU, 0.0f, 0.0f, "relu");
}
MRL_DEF mrl_tensor *mrl_clamp(mrl_graph *g, mrl_tensor *a, float lo, float hi) {
  return mrl__unary(g, a, MRL__CLAMP, lo, hi, "clamp");
}

/* ---- minimum / maximum ---- */

static void mrl__minmax_backward(mrl_node *nd) {
  mrl_tensor *a = nd->in[0], *b = nd->in[1], *y = nd->out;
  int is_max = nd->i[0], n = y->size, i;
  for (i = 0; i < n; i++) {
    float av = a->data[i], bv = b->data[i], gy = y->grad[i];
    float wa = av == bv ? 0.5f : ((is_max ? av > bv : av < bv) ? 1.0f : 0.0f);
    if (a->grad) a->grad[i] += gy * wa;
    if (b->grad) b->grad[i] += gy * (1.0f - wa);
  }
}

static mrl_tensor *mrl__minmax(mrl_graph *g, mrl_tensor *a, mrl_tensor *b, int is_max,
                               const char *op) {
  mrl_tensor *y;
  mrl_node *nd;
  int i;
  if (!a || !b) return NULL;
  MRL_SHAPE_CHECK(mrl_tensor_same_shape(a, b), op, "shapes must be equal", a, b);
  y = mrl_op_output(g, a->ndim, a->shape, mrl_graph_wants_grad(g, a, b));
  if (!y) return NULL;
  for (i = 0; i < a->size; i++) {
    float av = a->data[i], bv = b->data[i];
    y->data[i] = is_max ? (av > bv ? av : bv) : (av < bv ? av : bv);
  }
  if ((nd = mrl_graph_record(g, op, mrl__minmax_backward, y)) != NULL) {
    nd->in[0] = a;
    nd->in[1] = b;
    nd->i[0] = is_max;
  }
  return y;
}

MRL_DEF mrl_tensor *mrl_minimum(mrl_graph *g, mrl_tensor *a, mrl_tensor *b) {
  return mrl__minmax(g, a, b, 0, "minimum");
}
MRL_DEF mrl_tensor *mrl_maximum(mrl_graph *g, mrl_tensor *a, mrl_tensor *b) {
  return mrl__minmax(g, a, b, 1, "maximum");
}

/* ---- reductions ---- */

/* i[0]: 1 = per row; f[0]: scale (1 for sum, 1/count for mean) */
static void mrl__reduce_backward(mrl_node *nd) {
  mrl_tensor *a = nd->in[0], *y = nd->out;
  int per_row = nd->i[0], n = a->size, i;
  float s = nd->f[0];
  if (!a->grad) return;
  if (per_row) {
    int cols = mrl_tensor_cols(a);
    for (i = 0; i < n; i++) a->grad[i] += y->grad[i / cols] * s;
  } else {
    float gy = y->grad[0] * s;
    for (i = 0; i < n; i++) a->grad[i] += gy;
  }
}

static mrl_tensor *mrl__reduce(mrl_graph *g, mrl_tensor *a, int per_row, int mean, const char *op) {
  mrl_tensor *y;
  mrl_node *nd;
  int shape[MRL_MAX_DIMS], i, j, rows, cols;
  float s;
  if (!a) return NULL;
  if (per_row) {
    MRL_SHAPE_CHECK(a->ndim >= 2, op, "needs at least 2 dimensions", a, NULL);
    for (i = 0; i < a->ndim - 1; i++) shape[i] = a->shape[i];
    y = mrl_op_output(g, a->ndim - 1, shape, mrl_graph_wants_grad(g, a, NULL));
    rows = mrl_tensor_rows(a);
    cols = mrl_tensor_cols(a);
  } else {
    shape[0] = 1;
    y = mrl_op_output(g, 1, shape, mrl_graph_wants_grad(g, a, NULL));
    rows = 1;
    cols = a->size;
  }
  if (!y) return NULL;
  s = mean ? 1.0f / (float)(cols ? cols : 1) : 1.0f;
  for (i = 0; i < rows; i++) {
    const float *r = a->data + (size_t)i * cols;
    double acc = 0.0; /* double: sums of thousands of losses stay exact enough */
    for (j = 0; j < cols; j++) acc += r[j];
    y->data[i] = (float)acc * s;
  }
  if ((nd = mrl_graph_record(g, op, mrl__reduce_backward, y)) != NULL) {
    nd->in[0] = a;
    nd->i[0] = per_row;
    nd->f[0] = s;
  }
  return y;
}

MRL_DEF mrl_tensor *mrl_sum(mrl_graph *g, mrl_tensor *a) {
  return mrl__reduce(g, a, 0, 0, "sum");
}
MRL_DEF mrl_tensor *mrl_mean(mrl_graph *g, mrl_tensor *a) {
  return mrl__reduce(g, a, 0, 1, "mean");
}
MRL_DEF mrl_tensor *mrl_sum_rows(mrl_graph *g, mrl_tensor *a) {
  return mrl__reduce(g, a, 1, 0, "sum_rows");
}
MRL_DEF mrl_tensor *mrl_mean_rows(mrl_graph *g, mrl_tensor *a) {
  return mrl__reduce(g, a, 1, 1, "mean_rows");
}

/* ---- log-softmax per row ---- */

static void mrl__log_softmax_backward(mrl_node *nd) {
  mrl_tensor *a = nd->in[0], *y = nd->out;
  int rows = mrl_tensor_rows(a), cols = mrl_tensor_cols(a), i, j;
  if (!a->grad) return;
  for (i = 0; i < rows; i++) {
    const float *yr = y->data + (size_t)i * cols, *gr = y->grad + (size_t)i * cols;
    float *ga = a->grad + (size_t)i * cols, gsum = 0.0f;
    for (j = 0; j < cols; j++) gsum += gr[j];
    for (j = 0; j < cols; j++) ga[j] += gr[j] - expf(yr[j]) * gsum;
  }
}

MRL_DEF mrl_tensor *mrl_log_softmax(mrl_graph *g, mrl_tensor *a) {
  mrl_tensor *y;
  mrl_node *nd;
  int rows, cols, i, j;
  if (!a) return NULL;
  y = mrl_op_output(g, a->ndim, a->shape, mrl_graph_wants_grad(g, a, NULL));
  if (!y) return NULL;
  rows = mrl_tensor_rows(a);
  cols = mrl_tensor_cols(a);
  for (i = 0; i < rows; i++) {
    const float *r = a->data + (size_t)i * cols;
    float *o = y->data + (size_t)i * cols, mx = r[0], s = 0.0f, lse;
    for (j = 1; j < cols; j++)
      if (r[j] > mx) mx = r[j];
    for (j = 0; j < cols; j++) s += expf(r[j] - mx);
    lse = mx + logf(s);
    for (j = 0; j < cols; j++) o[j] = r[j] - lse;
  }
  MRL__FINITE("log_softmax", y, a, NULL);
  if ((nd = mrl_graph_record(g, "log_softmax", mrl__log_softmax_backward, y)) != NULL)
    nd->in[0] = a;
  return y;
}

/* ---- gather one element per row ---- */

static void mrl__gather_backward(mrl_node *nd) {
  mrl_tensor *a = nd->in[0], *y = nd->out;
  int rows = y->size, cols = mrl_tensor_cols(a), i;
  if (!a->grad) return;
  for (i = 0; i < rows; i++) a->grad[(size_t)i * cols + nd->index[i]] += y->grad[i];
}

MRL_DEF mrl_tensor *mrl_gather_rows(mrl_graph *g, mrl_tensor *a, const int *index) {
  mrl_tensor *y;
  mrl_node *nd;
  int rows, cols, i, shape[MRL_MAX_DIMS];
  if (!a) return NULL;
  rows = mrl_tensor_rows(a);
  cols = mrl_tensor_cols(a);
  MRL_SHAPE_CHECK(a->ndim >= 2, "gather_rows", "needs at least 2 dimensions", a, NULL);
  for (i = 0; i < a->ndim - 1; i++) shape[i] = a->shape[i];
  y = mrl_op_output(g, a->ndim - 1, shape, mrl_graph_wants_grad(g, a, NULL));
  if (!y) return NULL;
  for (i = 0; i < rows; i++) {
    if (index[i] < 0 || index[i] >= cols) {
      fprintf(stderr, "memrl: gather_rows: index %d at row %d outside [0,%d)\n", index[i], i, cols);
      MRL_ASSERT(0 && "memrl: gather_rows index out of range");
      abort();
    }
    y->data[i] = a->data[(size_t)i * cols + index[i]];
  }
  if ((nd = mrl_graph_record(g, "gather_rows", mrl__gather_backward, y)) != NULL) {
    nd->in[0] = a;
    nd->index = index;
  }
  return y;
}

/* ---- concat along the first dimension ---- */

static void mrl__concat_backward(mrl_node *nd) {
  mrl_tensor *const *parts = (mrl_tensor *const *)nd->extra[0];
  int n = nd->i[0], p, off = 0, j;
  for (p = 0; p < n; p++) {
    mrl_tensor *t = parts[p];
    if (t->grad)
      for (j = 0; j < t->size; j++) t->grad[j] += nd->out->grad[off + j];
    off += t->size;
  }
}

MRL_DEF mrl_tensor *mrl_concat_rows(mrl_graph *g, mrl_tensor *const *parts, int n) {
  mrl_tensor *y, **saved;
  mrl_node *nd;
  int p, rows = 0, wants = 0, off = 0, shape[MRL_MAX_DIMS], i;
  MRL_ASSERT(n >= 1);
  for (p = 0; p < n; p++) {
    if (!parts[p]) return NULL;
    MRL_SHAPE_CHECK(parts[p]->ndim == parts[0]->ndim, "concat_rows", "ranks differ", parts[0],
                    parts[p]);
    for (i = 1; i < parts[0]->ndim; i++)
      MRL_SHAPE_CHECK(parts[p]->shape[i] == parts[0]->shape[i], "concat_rows",
                      "trailing dimensions differ", parts[0], parts[p]);
    rows += parts[p]->shape[0];
    wants |= mrl_graph_wants_grad(g, parts[p], NULL);
  }
  for (i = 0; i < parts[0]->ndim; i++) shape[i] = parts[0]->shape[i];
  shape[0] = rows;
  y = mrl_op_output(g, parts[0]->ndim, shape, wants);
  if (!y) return NULL;
  for (p = 0; p < n; p++) {
    memcpy(y->data + off, parts[p]->data, sizeof(float) * (size_t)parts[p]->size);
    off += parts[p]->size;
  }
  if ((nd = mrl_graph_record(g, "concat_rows", mrl__concat_backward, y)) != NULL) {
    saved = (mrl_tensor **)mrl_graph_alloc(g, sizeof(mrl_tensor *) * (size_t)n);
    if (!saved) {
      g->tape = nd->prev; /* drop the node; status already says out of memory */
      return NULL;
    }
    memcpy(saved, parts, sizeof(mrl_tensor *) * (size_t)n);
    nd->extra[0] = (mrl_tensor *)(void *)saved;
    nd->i[0] = n;
  }
  return y;
}

MRL_DEF mrl_tensor *mrl_reshape(mrl_graph *g, mrl_tensor *a, int ndim, const int *shape) {
  mrl_tensor *t, view;
  if (!a) return NULL;
  view = mrl_tensor_make(a->data, a->grad, ndim, shape);
  MRL_SHAPE_CHECK(view.size == a->size, "reshape", "sizes differ", a, &view);
  t = (mrl_tensor *)mrl_graph_alloc(g, sizeof(mrl_tensor));
  if (t) *t = view;
  return t;
}

MRL_DEF mrl_tensor *mrl_detach(mrl_graph *g, mrl_tensor *a) {
  mrl_tensor *t;
  if (!a) return NULL;
  t = (mrl_tensor *)mrl_graph_alloc(g, sizeof(mrl_tensor));
  if (!t) return NULL;
  *t = *a;
  t->grad = NULL;
  return t;
}

/* ---- gradient check ---- */

MRL_DEF double mrl_gradcheck(mrl_graph *g, mrl_loss_fn build, mrl_tensor **inputs, int n, void *ctx,
                             float eps, double atol, double rtol) {
  double worst = 0.0;
  int t, i;
  mrl_tensor *loss;
  for (t = 0; t < n; t++)
    if (inputs[t]->grad) memset(inputs[t]->grad, 0, sizeof(float) * (size_t)inputs[t]->size);
  mrl_graph_reset(g);
  loss = build(g, inputs, ctx);
  if (!loss || mrl_backward(g, loss) != MRL_OK) return 1e30;
  for (t = 0; t < n; t++) {
    mrl_tensor *x = inputs[t];
    if (!x->grad) continue;
    for (i = 0; i < x->size; i++) {
      float keep = x->data[i], fp, fm;
      double numeric, err;
      int old = mrl_graph_set_no_grad(g, 1);
      mrl_tensor *lp, *lm;
      x->data[i] = keep + eps;
      mrl_graph_reset(g);
      lp = build(g, inputs, ctx);
      fp = lp ? lp->data[0] : 0.0f;
      x->data[i] = keep - eps;
      mrl_graph_reset(g);
      lm = build(g, inputs, ctx);
      fm = lm ? lm->data[0] : 0.0f;
      if (!lp || !lm) {
        x->data[i] = keep;
        mrl_graph_set_no_grad(g, old);
        return 1e30; /* out of memory: report failure, never read NULL */
      }
      x->data[i] = keep;
      mrl_graph_set_no_grad(g, old);
      numeric = ((double)fp - (double)fm) / (2.0 * (double)eps);
      err = fabs((double)x->grad[i] - numeric) / (atol + rtol * fabs(numeric));
      if (err > worst) worst = err;
    }
  }
  mrl_graph_reset(g);
  return worst;
}

#ifdef __cplusplus
}
#endif
#endif /* MEMRL_TENSOR_IMPLEMENTATION */
