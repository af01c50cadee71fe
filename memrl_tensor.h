/* memrl_tensor.h - tensors, arena, RNG and define-by-run autodiff in one header.
 *
 * Part of memrl (single-header C libraries for reinforcement learning with
 * memory). No dependencies beyond libc and libm. Public domain / MIT, see the
 * end of the file.
 *
 * CONTENTS
 *   ENABLING       the one file that defines the implementation
 *   OPTIONS        macros to define before including
 *   CONCEPTS       tensor, arena, graph and tape
 *   ERRORS         wrong shapes stop; a full arena returns NULL
 *   QUICK START    a forward and backward pass
 *   OPS            every op by group, with its shapes
 *   LICENCE        at the end of the file: public domain or MIT
 *   TAGS: each implementation section carries one tag, written >> and the
 *   name; `grep -n '[>]>gemm' memrl_tensor.h` finds that section and nothing else.
 *   The tags in file order:
 *     tensors arena graph gemm matmul xwt fast_act linear_op unary general
 *     binary reductions softmax fused_attention batched_matmul shape indexing fused layernorm
 *     conv2d pooling dropout losses cross_entropy kl_normal kl_categorical
 *     similarity straight_through gradcheck jvp
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
 *   printed to stderr and MRL_ASSERT stops (abort() after it, so also under
 *   NDEBUG). So is an impossible shape: ndim outside 1..4, a negative
 *   dimension, or more than INT_MAX elements (counted in size_t, never
 *   wrapped). A full fixed arena is recoverable:
 *   the op returns NULL, every later op given NULL returns NULL, and
 *   mrl_graph_status() reports MRL_ERR_OUT_OF_MEMORY; so does a request of
 *   more than SIZE_MAX / 2 bytes, on any arena. Nothing is written out of
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
 * OPS (all take the graph first; shapes in brackets; axes may be negative)
 *   matmul      mrl_matmul [M,K]x[K,N], mrl_matmul_nt [M,K]x[N,K]^T, mrl_matmul_tn [K,M]^T x[K,N]
 *   linear      mrl_linear x[M,K], W[N,K], b[N] or NULL -> x W^T + b   (fused, also with
 *               the activation: mrl_linear_relu, mrl_linear_tanh; a W of up
 *               to 64K floats runs as cache-resident dot products, no packing, so a
 *               batch of one is cheap and each row's bits are independent of M)
 *   elementwise mrl_add, mrl_sub, mrl_mul, mrl_div, mrl_minimum, mrl_maximum (NumPy
 *               broadcasting; gradients summed over repeated dimensions), mrl_where (float
 *               mask), mrl_where_int, mrl_scale, mrl_add_scalar, mrl_neg, mrl_square,
 *               mrl_sqrt, mrl_pow (tensor ** scalar), mrl_exp, mrl_log, mrl_abs, mrl_clamp
 *   activations mrl_relu, mrl_leaky_relu, mrl_elu, mrl_gelu (erf), mrl_tanh, mrl_sigmoid,
 *               mrl_softplus (beta 1, threshold 20), mrl_silu
 *   reductions  over all -> [1]: mrl_sum, mrl_mean, mrl_max (+argmax), mrl_logsumexp, mrl_var;
 *               along an axis (keepdim or not): mrl_sum_axis, mrl_mean_axis, mrl_max_axis
 *               (+argmax), mrl_logsumexp_axis, mrl_var_axis (correction 1 = torch default);
 *               last axis: mrl_sum_rows, mrl_mean_rows ([M,N] -> [M])
 *   softmax     mrl_softmax, mrl_log_softmax_axis (any axis, optional 0/1 mask that
 *               broadcasts); mrl_log_softmax (last axis, no mask)
 *   attention   mrl_attention, mrl_attention_cols (fused multi-head softmax(scale (Q Kᵀ +
 *               bias)) V with an optional 0/1 mask, heads read and written in place),
 *               mrl_rel_attention_cols (Transformer-XL's relative term inside)
 *   batched     the three matmuls over up to 2 leading dimensions that broadcast
 *               ([B,M,K]x[K,N], [B,M,K]x[B,K,N], [B,1,M,K]x[H,K,N] ...)
 *   shape       mrl_reshape (view), mrl_permute, mrl_transpose, mrl_slice, mrl_concat,
 *               mrl_stack, mrl_broadcast_to, mrl_concat_rows (axis 0), mrl_detach
 *   indexing    mrl_gather (torch.gather), mrl_gather_rows (one per row), mrl_index_select
 *               (embedding rows), mrl_scatter_add, mrl_one_hot, mrl_topk (+indices)
 *   checking    mrl_gradcheck (central finite differences against mrl_backward)
 *   forward     mrl_graph_jvp (directional derivatives J v over the recorded tape)
 *   layers      mrl_layernorm (last dim), mrl_conv2d (NCHW, stride, padding), mrl_max_pool2d,
 *               mrl_avg_pool2d, mrl_dropout (explicit mrl_rng, inverted scaling)   (fused)
 *   losses      mrl_mse_loss, mrl_huber_loss (delta), mrl_smooth_l1_loss (beta),
 *               mrl_cross_entropy (logits, int targets), mrl_bce_with_logits,
 *               mrl_kl_normal (mean, log-std), mrl_kl_categorical (logits); reduction
 *               MRL_LOSS_MEAN / MRL_LOSS_SUM / MRL_LOSS_NONE
 *   memory      mrl_cosine_similarity [B,D]x[N,D] -> [B,N], mrl_sq_distances (kNN),
 *               mrl_straight_through / mrl_straight_through_fn (backward identity),
 *               mrl_stop_gradient (= mrl_detach)
 */
#ifndef MEMRL_TENSOR_H
#define MEMRL_TENSOR_H

#define MEMRL_TENSOR_VERSION_MAJOR 0
#define MEMRL_TENSOR_VERSION_MINOR 1
#define MEMRL_TENSOR_VERSION_PATCH 0

/* clang-format off */
/* ---- memrl common block -------------------------------------------------
 * The same text stands in memrl_tensor.h and memrl_envs.h so each header can
 * stand alone (tools/run_tests.sh checks that both copies are byte-identical,
 * from this line to the end marker); the guard makes the second copy a no-op. Everything here is
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
  MRL_ERR_NOT_RESET = -7,
  MRL_ERR_NON_FINITE = -8
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
  case MRL_ERR_NON_FINITE:
    return "a value that must be finite is NaN or infinite";
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

/* a[0..n) permuted uniformly in place (Fisher-Yates from the top, one
 * mrl_rng_below(i + 1) per i = n-1 .. 1). */
static inline void mrl_rng_shuffle(mrl_rng *r, int *a, int n) {
  int i;
  for (i = n - 1; i > 0; i--) {
    int k = (int)mrl_rng_below(r, (uint32_t)(i + 1)), t = a[i];
    a[i] = a[k];
    a[k] = t;
  }
}

#ifdef __cplusplus
}
#endif
#endif /* MRL_COMMON_INCLUDED */
/* ---- end of memrl common block ------------------------------------------ */
/* clang-format on */

#include <limits.h>
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
/* Matmul of 2-D operands, or batched over leading dimensions that broadcast
 * (a [B,M,K] x b [K,N] or [B,K,N] -> [B,M,N], up to 2 batch dimensions). */
MRL_DEF mrl_tensor *mrl_matmul(mrl_graph *g, mrl_tensor *a, mrl_tensor *b);
MRL_DEF mrl_tensor *mrl_matmul_nt(mrl_graph *g, mrl_tensor *a, mrl_tensor *b);
MRL_DEF mrl_tensor *mrl_matmul_tn(mrl_graph *g, mrl_tensor *a, mrl_tensor *b);
MRL_DEF mrl_tensor *mrl_linear(mrl_graph *g, mrl_tensor *x, mrl_tensor *w, mrl_tensor *b);
/* relu(x W^T + b) and tanh(x W^T + b) as one node: the same values and
 * gradients, bit for bit, as mrl_relu / mrl_tanh of mrl_linear, without the
 * pre-activation tensor, its zeroed gradient and a pass over each. */
MRL_DEF mrl_tensor *mrl_linear_relu(mrl_graph *g, mrl_tensor *x, mrl_tensor *w, mrl_tensor *b);
MRL_DEF mrl_tensor *mrl_linear_tanh(mrl_graph *g, mrl_tensor *x, mrl_tensor *w, mrl_tensor *b);
MRL_DEF mrl_tensor *mrl_add(mrl_graph *g, mrl_tensor *a, mrl_tensor *b);
MRL_DEF mrl_tensor *mrl_sub(mrl_graph *g, mrl_tensor *a, mrl_tensor *b);
MRL_DEF mrl_tensor *mrl_mul(mrl_graph *g, mrl_tensor *a, mrl_tensor *b);
MRL_DEF mrl_tensor *mrl_scale(mrl_graph *g, mrl_tensor *a, float s);
MRL_DEF mrl_tensor *mrl_add_scalar(mrl_graph *g, mrl_tensor *a, float s);
MRL_DEF mrl_tensor *mrl_neg(mrl_graph *g, mrl_tensor *a);
MRL_DEF mrl_tensor *mrl_square(mrl_graph *g, mrl_tensor *a);
MRL_DEF mrl_tensor *mrl_exp(mrl_graph *g, mrl_tensor *a);
MRL_DEF mrl_tensor *mrl_log(mrl_graph *g, mrl_tensor *a);
/* tanh and sigmoid are vectorised polynomial forms (Cephes), within 2 ulp of
 * the exact value (not libm's bits); NaN propagates, exp below e^-87 flushes
 * to zero (sigmoid(x < -87) = 0). The recurrent layers use the same code. */
MRL_DEF mrl_tensor *mrl_tanh(mrl_graph *g, mrl_tensor *a);
MRL_DEF mrl_tensor *mrl_sigmoid(mrl_graph *g, mrl_tensor *a);
MRL_DEF mrl_tensor *mrl_relu(mrl_graph *g, mrl_tensor *a);
/* Gradient passes where lo <= a <= hi (PyTorch's clamp). */
MRL_DEF mrl_tensor *mrl_clamp(mrl_graph *g, mrl_tensor *a, float lo, float hi);
/* Broadcasting. At ties the gradient is split evenly (PyTorch >= 1.7). */
MRL_DEF mrl_tensor *mrl_minimum(mrl_graph *g, mrl_tensor *a, mrl_tensor *b);
MRL_DEF mrl_tensor *mrl_maximum(mrl_graph *g, mrl_tensor *a, mrl_tensor *b);
MRL_DEF mrl_tensor *mrl_sum(mrl_graph *g, mrl_tensor *a);
MRL_DEF mrl_tensor *mrl_mean(mrl_graph *g, mrl_tensor *a);
MRL_DEF mrl_tensor *mrl_sum_rows(mrl_graph *g, mrl_tensor *a);
MRL_DEF mrl_tensor *mrl_mean_rows(mrl_graph *g, mrl_tensor *a);
MRL_DEF mrl_tensor *mrl_log_softmax(mrl_graph *g, mrl_tensor *a);
/* out[i] = a[i, index[i]] over the last dimension (mrl_gather with k = 1,
 * the trailing 1 dropped). */
MRL_DEF mrl_tensor *mrl_gather_rows(mrl_graph *g, mrl_tensor *a, const int *index);
/* Joins n tensors of equal trailing shape along the first dimension
 * (mrl_concat with axis 0). */
MRL_DEF mrl_tensor *mrl_concat_rows(mrl_graph *g, mrl_tensor *const *parts, int n);
/* A view with another shape of the same size: shares data and gradient, so
 * it needs no node. */
MRL_DEF mrl_tensor *mrl_reshape(mrl_graph *g, mrl_tensor *a, int ndim, const int *shape);
/* The same values with no gradient path (cuts the tape: truncated BPTT). */
MRL_DEF mrl_tensor *mrl_detach(mrl_graph *g, mrl_tensor *a);

/* ---- general ops ----
 * Broadcasting follows NumPy: shapes are aligned at the right and each pair
 * of dimensions must be equal or 1 (a missing leading dimension counts as 1).
 * mrl_add, mrl_sub, mrl_mul, mrl_div, mrl_minimum, mrl_maximum and mrl_where
 * broadcast; the gradient of a broadcast operand is summed over the
 * dimensions it was repeated along. Axes may be negative (-1 = last). Integer
 * index arrays are copied into the arena, so the caller's array may change
 * right after the call. An index out of range stops like a wrong shape. */
MRL_DEF mrl_tensor *mrl_div(mrl_graph *g, mrl_tensor *a, mrl_tensor *b);
/* Elementwise mask ? a : b. mask: float tensor, nonzero selects a; it must
 * broadcast to the shape of a op b and gets no gradient. */
MRL_DEF mrl_tensor *mrl_where(mrl_graph *g, mrl_tensor *mask, mrl_tensor *a, mrl_tensor *b);
/* The same with an int mask holding one entry per element of the result. */
MRL_DEF mrl_tensor *mrl_where_int(mrl_graph *g, const int *mask, mrl_tensor *a, mrl_tensor *b);
MRL_DEF mrl_tensor *mrl_sqrt(mrl_graph *g, mrl_tensor *a);
MRL_DEF mrl_tensor *mrl_pow(mrl_graph *g, mrl_tensor *a, float p); /* a ** p, p a scalar */
/* Gradient sign(a), 0 at 0 (PyTorch). */
MRL_DEF mrl_tensor *mrl_abs(mrl_graph *g, mrl_tensor *a);
/* Activations, PyTorch's definitions: leaky_relu (slope below 0; PyTorch's
 * default 0.01), elu (alpha (e^x - 1) below 0; default 1), gelu (exact erf
 * form, approximate='none'), softplus (beta 1, linear above threshold 20),
 * silu (x sigmoid(x)). */
MRL_DEF mrl_tensor *mrl_leaky_relu(mrl_graph *g, mrl_tensor *a, float negative_slope);
MRL_DEF mrl_tensor *mrl_elu(mrl_graph *g, mrl_tensor *a, float alpha);
MRL_DEF mrl_tensor *mrl_gelu(mrl_graph *g, mrl_tensor *a);
MRL_DEF mrl_tensor *mrl_softplus(mrl_graph *g, mrl_tensor *a);
MRL_DEF mrl_tensor *mrl_silu(mrl_graph *g, mrl_tensor *a);

/* Reductions over everything -> [1]. max: the gradient goes to the first
 * maximal element, whose flat index is written to *argmax unless NULL.
 * var: divides by (count - correction); correction 1 is torch.var's
 * default (unbiased), 0 the population variance. */
MRL_DEF mrl_tensor *mrl_max(mrl_graph *g, mrl_tensor *a, int *argmax);
MRL_DEF mrl_tensor *mrl_logsumexp(mrl_graph *g, mrl_tensor *a);
MRL_DEF mrl_tensor *mrl_var(mrl_graph *g, mrl_tensor *a, int correction);
/* Reductions along one axis. keepdim 1 keeps it with size 1 (PyTorch's
 * keepdim=True); 0 drops it, except that a 1-D input gives [1]. argmax (may
 * be NULL) receives, per output element, the position along the axis of the
 * first maximum (torch.max(x, dim) semantics; gradient flows there only). */
MRL_DEF mrl_tensor *mrl_sum_axis(mrl_graph *g, mrl_tensor *x, int axis, int keepdim);
MRL_DEF mrl_tensor *mrl_mean_axis(mrl_graph *g, mrl_tensor *x, int axis, int keepdim);
MRL_DEF mrl_tensor *mrl_max_axis(mrl_graph *g, mrl_tensor *x, int axis, int keepdim, int *argmax);
MRL_DEF mrl_tensor *mrl_logsumexp_axis(mrl_graph *g, mrl_tensor *x, int axis, int keepdim);
MRL_DEF mrl_tensor *mrl_var_axis(mrl_graph *g, mrl_tensor *x, int axis, int keepdim,
                                 int correction);

/* Softmax and log-softmax along an axis. mask (NULL: none) is a float
 * tensor that broadcasts to x's shape; entries where it is 0 are excluded:
 * probability exactly 0, no gradient (causal attention, invalid actions).
 * log_softmax writes -1e8 there rather than -inf, so that p * log p is 0 and
 * MRL_CHECK_FINITE stays quiet. A slice with every entry masked gives all 0
 * (softmax) or all -1e8 (log_softmax). mrl_log_softmax(g, x) is
 * mrl_log_softmax_axis(g, x, -1, NULL). */
MRL_DEF mrl_tensor *mrl_softmax(mrl_graph *g, mrl_tensor *x, int axis, mrl_tensor *mask);
MRL_DEF mrl_tensor *mrl_log_softmax_axis(mrl_graph *g, mrl_tensor *x, int axis, mrl_tensor *mask);

/* Fused multi-head attention (one node instead of split-heads permutes, Q Kᵀ,
 * scale, masked softmax, P V and the merge permute). q is [B, T, E], k and v
 * [B, K, E], E = num_heads * D; head h is columns h*D .. h*D+D-1. Returns
 * [B, T, E] with out[b, t, h*D+d] = sum_j P[b,h,t,j] v[b, j, h*D+d], where
 * P[b,h,t,:] = softmax over the kept j of scale * (q_bht . k_bhj + bias[b,h,t,j]).
 * bias (NULL: none) is [B, num_heads, T, K]; mask (NULL: none) is 0/1 and
 * broadcasts to [B, num_heads, T, K], as in mrl_softmax (a row with nothing
 * kept gives 0). Gradients reach q, k, v and bias. mrl_attention_cols reads
 * the E columns starting at q_col, k_col, v_col of wider tensors ([B, T, Cq],
 * [B, K, Ck], [B, K, Cv]; q, k and v may be one packed [B, T, 3E] tensor).
 * bias_shift 1 (mrl_attention_cols only, K >= T): Transformer-XL's relative
 * shift, entry (t, j) reads bias[b, h, t, min(T-1-t+j, K-1)] (bias row t
 * indexed by relative distance, as mrl_rel_mha_forward builds it).
 * Keeps B * num_heads * T * K floats of probabilities for the backward pass. */
MRL_DEF mrl_tensor *mrl_attention(mrl_graph *g, mrl_tensor *q, mrl_tensor *k, mrl_tensor *v,
                                  int num_heads, float scale, mrl_tensor *bias, mrl_tensor *mask);
MRL_DEF mrl_tensor *mrl_attention_cols(mrl_graph *g, mrl_tensor *q, int q_col, mrl_tensor *k,
                                       int k_col, mrl_tensor *v, int v_col, int embed_dim,
                                       int num_heads, float scale, mrl_tensor *bias,
                                       mrl_tensor *mask, int bias_shift);
/* Transformer-XL's relative attention in one node: as mrl_attention_cols
 * with bias_shift 1 and bias[b,h,t,r] = qr[b,t,head h] . rk[r,head h] (qr
 * [B, T, E]: queries plus r_r_bias; rk [K, E]: the projected relative
 * table, row r at distance K-1-r), computed head by head and never stored. */
MRL_DEF mrl_tensor *mrl_rel_attention_cols(mrl_graph *g, mrl_tensor *q, int q_col, mrl_tensor *k,
                                           int k_col, mrl_tensor *v, int v_col, mrl_tensor *qr,
                                           mrl_tensor *rk, int embed_dim, int num_heads,
                                           float scale, mrl_tensor *mask);

/* Shape ops (each copies; reshape is the only view). permute: output
 * dimension d is input dimension perm[d]. slice: [start, end) along axis,
 * negative bounds count from the end. concat joins along an existing axis
 * (other dimensions equal); stack inserts a new axis of length n (equal
 * shapes). broadcast_to repeats x to a shape it broadcasts to; backward sums. */
MRL_DEF mrl_tensor *mrl_permute(mrl_graph *g, mrl_tensor *x, const int *perm);
MRL_DEF mrl_tensor *mrl_transpose(mrl_graph *g, mrl_tensor *x, int dim0, int dim1);
MRL_DEF mrl_tensor *mrl_slice(mrl_graph *g, mrl_tensor *x, int axis, int start, int end);
MRL_DEF mrl_tensor *mrl_concat(mrl_graph *g, mrl_tensor *const *parts, int n, int axis);
MRL_DEF mrl_tensor *mrl_stack(mrl_graph *g, mrl_tensor *const *parts, int n, int axis);
MRL_DEF mrl_tensor *mrl_broadcast_to(mrl_graph *g, mrl_tensor *x, int ndim, const int *shape);

/* Indexing.
 * gather (torch.gather): the output is x's shape with the axis replaced by
 *   k; index holds one int per output element (row-major) and
 *   out[.., q, ..] = x[.., index[.., q, ..], ..].
 * index_select: rows of x along its first dimension (embedding lookup):
 *   x [V, ...], index[n] -> [n, ...]; backward adds into the picked rows.
 * scatter_add (torch.scatter_add): out = base with src[.., q, ..] added at
 *   position index[.., q, ..] along axis; src matches base except along axis,
 *   index holds one int per element of src.
 * one_hot: [n, num_classes] constant (no gradient).
 * topk: the k largest entries along the last axis, in descending order
 *   (ties: lower position first); out_index (may be NULL) receives their
 *   positions, rows * k ints. The gradient flows to the selected entries. */
MRL_DEF mrl_tensor *mrl_gather(mrl_graph *g, mrl_tensor *x, int axis, const int *index, int k);
MRL_DEF mrl_tensor *mrl_index_select(mrl_graph *g, mrl_tensor *x, const int *index, int n);
MRL_DEF mrl_tensor *mrl_scatter_add(mrl_graph *g, mrl_tensor *base, int axis, const int *index,
                                    mrl_tensor *src);
MRL_DEF mrl_tensor *mrl_one_hot(mrl_graph *g, const int *index, int n, int num_classes);
MRL_DEF mrl_tensor *mrl_topk(mrl_graph *g, mrl_tensor *x, int k, int *out_index);

/* ---- fused layers, losses, memory ops ----
 * Each op has a hand-written backward. Shapes follow PyTorch: images are
 * NCHW, conv weights [out, in, kh, kw]. Losses reduce as `reduction` says. */

/* How a loss reduces its per-element (or per-row) values. MEAN and SUM give a
 * [1] tensor, NONE keeps them (the input's shape, or its rows for per-row losses). */
typedef enum mrl_loss_reduction {
  MRL_LOSS_MEAN = 0,
  MRL_LOSS_SUM = 1,
  MRL_LOSS_NONE = 2
} mrl_loss_reduction;

/* Layer normalisation over the last dimension D of x[..., D] (PyTorch's
 * layer_norm with normalized_shape = [D]): y = (x - mean) / sqrt(var + eps) * w + b,
 * var biased (divides by D). w[D] and b[D] may each be NULL (no affine part).
 * PyTorch's default eps is 1e-5. */
MRL_DEF mrl_tensor *mrl_layernorm(mrl_graph *g, mrl_tensor *x, mrl_tensor *w, mrl_tensor *b,
                                  float eps);
/* 2-D convolution (cross-correlation, as torch.nn.functional.conv2d):
 * x[N,C,H,W], w[O,C,KH,KW], b[O] or NULL -> [N,O,OH,OW] with
 * OH = (H + 2 pad - KH) / stride + 1 (likewise OW). Zero padding on all sides.
 * Runs as im2col + mrl_gemm per image, with one [C*KH*KW, OH*OW] scratch buffer
 * from the arena (one per thread when built with -fopenmp and the batch is
 * large: images are then split over threads, results bitwise unchanged). */
MRL_DEF mrl_tensor *mrl_conv2d(mrl_graph *g, mrl_tensor *x, mrl_tensor *w, mrl_tensor *b,
                               int stride, int pad);
/* The same with a stride and a padding per axis (torch's stride=(sh, sw),
 * padding=(ph, pw)): OH = (H + 2 ph - KH) / sh + 1, OW = (W + 2 pw - KW) / sw + 1. */
MRL_DEF mrl_tensor *mrl_conv2d_rect(mrl_graph *g, mrl_tensor *x, mrl_tensor *w, mrl_tensor *b,
                                    int stride_h, int stride_w, int pad_h, int pad_w);
/* Max pooling over k x k windows of x[N,C,H,W] -> [N,C,OH,OW],
 * OH = (H + 2 pad - k) / stride + 1 (floor, PyTorch's ceil_mode=False).
 * stride <= 0 means stride = k (PyTorch's default). As in PyTorch, pad <= k/2;
 * padded cells never win. The gradient goes to the first maximum of a window. */
MRL_DEF mrl_tensor *mrl_max_pool2d(mrl_graph *g, mrl_tensor *x, int k, int stride, int pad);
/* Average pooling, same windows as mrl_max_pool2d. Padded zeros count in the
 * divisor k*k (PyTorch's default count_include_pad=True). */
MRL_DEF mrl_tensor *mrl_avg_pool2d(mrl_graph *g, mrl_tensor *x, int k, int stride, int pad);
/* Inverted dropout: in training, each element is zeroed with probability p
 * (drawn from rng, one draw per element in order) and survivors are scaled by
 * 1/(1-p), so evaluation needs no rescaling. Returns x itself (no copy, no
 * node, no draw) when p == 0 or training == 0; p == 1 gives zeros. p outside
 * [0, 1] stops through the shape-check path. */
MRL_DEF mrl_tensor *mrl_dropout(mrl_graph *g, mrl_tensor *x, float p, mrl_rng *rng, int training);

/* Mean squared error (pred - target)^2 elementwise; equal shapes. target may
 * carry a gradient too (it receives the negated one). */
MRL_DEF mrl_tensor *mrl_mse_loss(mrl_graph *g, mrl_tensor *pred, mrl_tensor *target,
                                 mrl_loss_reduction reduction);
/* Huber loss with PyTorch's HuberLoss(delta) semantics, d = pred - target:
 * 0.5 d^2 if |d| < delta, else delta (|d| - 0.5 delta). delta > 0. */
MRL_DEF mrl_tensor *mrl_huber_loss(mrl_graph *g, mrl_tensor *pred, mrl_tensor *target, float delta,
                                   mrl_loss_reduction reduction);
/* Smooth L1 with PyTorch's SmoothL1Loss(beta) semantics: 0.5 d^2 / beta if
 * |d| < beta, else |d| - 0.5 beta; beta == 0 is plain L1. It equals
 * huber(delta = beta) / beta; with beta = delta = 1 (DQN's choice) both agree. */
MRL_DEF mrl_tensor *mrl_smooth_l1_loss(mrl_graph *g, mrl_tensor *pred, mrl_tensor *target,
                                       float beta, mrl_loss_reduction reduction);
/* Cross-entropy from unnormalised logits[..., C] and integer class targets,
 * one per row (rows = all but the last dimension): -log_softmax(logits)[target].
 * MEAN averages over rows (PyTorch's default), NONE gives [rows...]. targets
 * must stay valid until backward has run; an index outside [0, C) stops. */
MRL_DEF mrl_tensor *mrl_cross_entropy(mrl_graph *g, mrl_tensor *logits, const int *targets,
                                      mrl_loss_reduction reduction);
/* Binary cross-entropy on logits x with targets y in [0, 1] (equal shapes), in
 * the stable form max(x, 0) - x y + log(1 + exp(-|x|))
 * (binary_cross_entropy_with_logits without weights). */
MRL_DEF mrl_tensor *mrl_bce_with_logits(mrl_graph *g, mrl_tensor *logits, mrl_tensor *targets,
                                        mrl_loss_reduction reduction);
/* KL(p || q) between diagonal Gaussians given by MEAN and LOG-STANDARD-DEVIATION
 * (log sigma; for a log-variance v pass 0.5 v): per element
 * log_std_q - log_std_p + (sigma_p^2 + (mu_p - mu_q)^2) / (2 sigma_q^2) - 1/2,
 * SUMMED over the last dimension (one KL per row, like
 * kl_divergence(Independent(Normal, 1), ...)), then reduced over rows.
 * mu_q and log_std_q may both be NULL: q is the standard normal (VAE prior).
 * mu_q, log_std_p and log_std_q may each be mu_p's shape or [D] (one value per
 * dimension shared by all rows: a state-independent log-std, as CleanRL's PPO). */
MRL_DEF mrl_tensor *mrl_kl_normal(mrl_graph *g, mrl_tensor *mu_p, mrl_tensor *log_std_p,
                                  mrl_tensor *mu_q, mrl_tensor *log_std_q,
                                  mrl_loss_reduction reduction);
/* KL(p || q) = sum_c p_c (log p_c - log q_c) per row of [..., C], with p and q
 * given as LOGITS (normalised here by log-softmax). Log-probabilities are valid
 * logits too (log-softmax leaves them unchanged). A class with p = 0 (logit
 * -INFINITY: a masked action) adds nothing, as in torch.distributions. MEAN
 * averages over rows (PyTorch's kl_div reduction='batchmean'). */
MRL_DEF mrl_tensor *mrl_kl_categorical(mrl_graph *g, mrl_tensor *p_logits, mrl_tensor *q_logits,
                                       mrl_loss_reduction reduction);

/* Cosine similarity of every key with every memory row: keys[B,D], memory[N,D]
 * -> [B,N], k.m / (max(|k|, eps) max(|m|, eps)) as torch's cosine_similarity
 * (default eps 1e-8). */
MRL_DEF mrl_tensor *mrl_cosine_similarity(mrl_graph *g, mrl_tensor *keys, mrl_tensor *memory,
                                          float eps);
/* Squared Euclidean distances a[B,D], b[N,D] -> [B,N] (kNN lookups, DND).
 * Computed as |a|^2 + |b|^2 - 2 a.b with one gemm (as torch.cdist does for
 * large inputs) and clamped at 0; the gradient is that of |a - b|^2. */
MRL_DEF mrl_tensor *mrl_sq_distances(mrl_graph *g, mrl_tensor *a, mrl_tensor *b);
/* Straight-through estimator (AMRL, Bengio et al. 2013): forward returns a
 * copy of `value` (already computed, same shape as x, any gradient ignored);
 * backward passes the output gradient to x unchanged. */
MRL_DEF mrl_tensor *mrl_straight_through(mrl_graph *g, mrl_tensor *x, mrl_tensor *value);
/* The same with value = f(x) elementwise, e.g. f = mrl_signf or roundf. */
MRL_DEF mrl_tensor *mrl_straight_through_fn(mrl_graph *g, mrl_tensor *x, float (*f)(float));
/* Stop-gradient is mrl_detach; this alias only names it as the papers do. */
#define mrl_stop_gradient(g, a) mrl_detach(g, a)

/* Sign: -1, 0 or 1 (for mrl_straight_through_fn). */
static inline float mrl_signf(float x) {
  return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f);
}

/* ---- gradient check ----
 * build(g, inputs, ctx) must return a one-element loss built from inputs.
 * Compares mrl_backward's gradient for every element of every input that has
 * a grad buffer with the central difference (f(x+eps) - f(x-eps)) / (2 eps),
 * evaluated in float. Returns the worst |analytic - numeric| / (atol + rtol*|numeric|);
 * <= 1 means every element passed. Uses and resets g. */
typedef mrl_tensor *(*mrl_loss_fn)(mrl_graph *g, mrl_tensor **inputs, void *ctx);
MRL_DEF double mrl_gradcheck(mrl_graph *g, mrl_loss_fn build, mrl_tensor **inputs, int n, void *ctx,
                             float eps, double atol, double rtol);

/* ---- forward-mode directional derivatives (JVP) over a recorded tape ----
 * mrl_graph_jvp replays g's tape FORWARDS and leaves in the grad buffer of
 * every recorded output the exact directional derivative (tangent) of that
 * output, J v, where v is what the leaves' grad buffers hold when it is
 * called: put the direction into the parameters' gradients (zero elsewhere),
 * run the forward pass with gradients on, call mrl_graph_jvp, read J v from
 * the output's grad. Each op's rule is its analytic derivative (no finite
 * differences), so J v is exact up to float rounding; with the backward pass
 * (J^T u) it gives Gauss-Newton and Fisher-vector products J^T M J v (TRPO).
 * Afterwards the tape's gradient buffers hold tangents, not gradients: the
 * graph is marked as replayed (mrl_backward refuses it; reset or rebuild).
 * rule (NULL: mrl_jvp_rule) maps a node to its tangent rule; a header with
 * ops of its own chains to mrl_jvp_rule (memrl_nn.h: mrl_nn_jvp_rule adds
 * the fused LSTM, GRU and Elman recurrences and GTrXL's gate; memrl_mem.h:
 * mrl_mem_jvp_rule adds AMRL's aggregate, the fast weights' scan and the
 * DNC's allocation). An op without a rule stops
 * nothing: the call returns MRL_ERR_INVALID_ARGUMENT and error (may be NULL)
 * names the op. Rules here: linear (and linear_relu / _tanh), matmul (2-D and
 * batched), every unary op, every
 * broadcasting binary op and where, permute / transpose / slice /
 * broadcast_to, concat / stack / concat_rows, index_select, gather /
 * gather_rows, topk, the reductions (sum, mean, max, logsumexp, var; all or along
 * an axis), softmax and log_softmax (masked too), layernorm, the fused
 * attention (mrl_attention, mrl_attention_cols with a bias, the relative
 * shift or a mask; mrl_rel_attention_cols), conv2d. Not yet: pooling,
 * conv_transpose2d, dropout, scatter_add, the losses and distances. */
typedef void (*mrl_jvp_fn)(mrl_node *node);
typedef mrl_jvp_fn (*mrl_jvp_lookup)(const mrl_node *node);
MRL_DEF mrl_jvp_fn mrl_jvp_rule(const mrl_node *node);
MRL_DEF mrl_result mrl_graph_jvp(mrl_graph *g, mrl_jvp_lookup rule, char *error, size_t error_size);

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

/* Batched matmul over leading dimensions (defined with the general ops). */
static mrl_tensor *mrl__matmul_batched(mrl_graph *g, mrl_tensor *a, mrl_tensor *b, int layout,
                                       const char *op);

/* ---- tensor headers ---- >>tensors */

/* The checked path for a shape given as numbers (no tensor exists yet):
 * prints the op, the problem and the dimensions, then stops like
 * mrl_shape_fail, also under NDEBUG. */
static void mrl__dims_fail(const char *op, const char *what, int ndim, const int *shape,
                           const char *file, int line) {
  char buf[160];
  size_t used = 0;
  int i;
  if (ndim >= 1 && ndim <= 8 && shape) { /* the caller promised ndim entries */
    used += (size_t)snprintf(buf, sizeof buf, "[");
    for (i = 0; i < ndim && used < sizeof buf; i++)
      used += (size_t)snprintf(buf + used, sizeof buf - used, i ? ",%d" : "%d", shape[i]);
    if (used < sizeof buf) snprintf(buf + used, sizeof buf - used, "]");
  } else {
    snprintf(buf, sizeof buf, "ndim %d", ndim);
  }
  fprintf(stderr, "memrl: %s: %s: %s (%s:%d)\n", op, what, buf, file, line);
  MRL_ASSERT(0 && "memrl: impossible shape (see message above)");
  abort(); /* never continue with an impossible shape, even under NDEBUG */
}

/* Element count of a shape, checked: 1 <= ndim <= 4, every dimension >= 0
 * and the product (in size_t, overflow-checked) at most INT_MAX, since
 * sizes are int. Anything else is a programmer error naming op. */
static int mrl__shape_numel(const char *op, int ndim, const int *shape) {
  size_t n = 1;
  int i;
  if (ndim < 1 || ndim > MRL_MAX_DIMS)
    mrl__dims_fail(op, "a tensor has 1 to 4 dimensions", ndim, shape, __FILE__, __LINE__);
  for (i = 0; i < ndim; i++)
    if (shape[i] < 0) mrl__dims_fail(op, "negative dimension", ndim, shape, __FILE__, __LINE__);
  for (i = 0; i < ndim; i++) {
    if (shape[i] != 0 && n > (size_t)INT_MAX / (size_t)shape[i]) {
      for (i = 0; i < ndim; i++) /* a later 0 makes it empty, not too big */
        if (shape[i] == 0) return 0;
      mrl__dims_fail(op, "more than INT_MAX elements", ndim, shape, __FILE__, __LINE__);
    }
    n *= (size_t)shape[i];
  }
  return (int)n;
}

static mrl_tensor mrl__tensor_make(const char *op, float *data, float *grad, int ndim,
                                   const int *shape) {
  mrl_tensor t;
  int i, size = mrl__shape_numel(op, ndim, shape);
  memset(&t, 0, sizeof t);
  t.data = data;
  t.grad = grad;
  t.ndim = ndim;
  t.size = size;
  for (i = 0; i < ndim; i++) t.shape[i] = shape[i];
  for (; i < MRL_MAX_DIMS; i++) t.shape[i] = 1;
  return t;
}

MRL_DEF mrl_tensor mrl_tensor_make(float *data, float *grad, int ndim, const int *shape) {
  return mrl__tensor_make("tensor_make", data, grad, ndim, shape);
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
  if (b)
    fprintf(stderr, "memrl: %s: %s: %s and %s (%s:%d)\n", op, what,
            mrl_tensor_shape_string(a, sa, sizeof sa), mrl_tensor_shape_string(b, sb, sizeof sb),
            file, line);
  else
    fprintf(stderr, "memrl: %s: %s: %s (%s:%d)\n", op, what,
            mrl_tensor_shape_string(a, sa, sizeof sa), file, line);
  MRL_ASSERT(0 && "memrl: shape mismatch (see message above)");
  abort(); /* never continue with wrong shapes, even under NDEBUG */
}

/* ---- arena ---- >>arena */

struct mrl__arena_block {
  mrl__arena_block *next;
  size_t capacity, used;
  unsigned char *data; /* aligned start inside this allocation */
};

/* The largest request an arena considers: with its alignment slack and a
 * block header added it still fits in a size_t (half the address space is
 * more than any allocator grants). */
#define MRL__ARENA_MAX ((size_t)-1 / 2)

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
  if (initial_bytes > MRL__ARENA_MAX) return MRL_ERR_OUT_OF_MEMORY;
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
  size_t need;
  void *p;
  /* every sum below stays far from SIZE_MAX: a request this large cannot
   * be met anyway, and rounding it up would wrap around to a tiny one */
  if (bytes > MRL__ARENA_MAX) return NULL;
  need = mrl__align_up(bytes ? bytes : 1);
  if (need <= a->capacity - a->used) { /* used <= capacity always */
    p = mrl__arena_start(a) + a->used;
    a->used += need;
  } else if (!a->owns_memory) {
    return NULL;
  } else {
    /* Overflow: add a block; pointers already handed out stay valid. */
    mrl__arena_block *blk = a->overflow;
    if (!blk || need > blk->capacity - blk->used) {
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
    if (cap < a->high_water || cap > MRL__ARENA_MAX) cap = a->high_water; /* never wraps */
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

/* ---- graph ---- >>graph */

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
  hdr = mrl__tensor_make("tensor_new", NULL, NULL, ndim, shape);
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

/* ---- gemm ---- >>gemm
 * C = beta*C + op(A) op(B), GotoBLAS-style: op(B) is packed block by block
 * (KC x NC, in NR-wide column panels) and op(A) (MC x KC, in MR-tall row
 * panels) into stack buffers, zero-padded at the edges, and an MR x NR
 * register-blocked micro-kernel runs over the packed panels (op(B) = B is
 * read in place when packing would not pay; op(A)'s whole panels are read in
 * place, A^T by every kernel and A by row-strided AVX-512 kernels, so only
 * the last, partial panel is packed: packing A was an eighth of the
 * transformer step's products at K = 64). Three kernels:
 * AVX-512F (12x32, with 8- and 4-row and 16-column variants for the last
 * panels) and AVX2+FMA (6x16) with intrinsics, chosen at run time
 * (__builtin_cpu_supports) on x86-64 with GCC or Clang, and a portable 6x8
 * kernel in GCC/Clang vector extensions (plain scalar loops elsewhere). Define
 * MRL_NO_SIMD to use only the portable kernel. Few-row and tiny (at most
 * 4096 multiply-adds) products skip packing (mrl__gemm_direct): rows of axpys
 * for A B and A^T B, dot-product tiles for A B^T (up to 16 rows or 4
 * columns), and for A^T B^T the packed kernels' chain element by element. A
 * narrow C (under 16 columns, at least twice as many rows) is packed as C^T.
 * Recurrences pack W_hh once for all their steps (mrl__gemm_pack_b and
 * mrl__gemm_prepacked, after mrl__gemm_run).
 *
 * Numerics: every element of C is one chain over k in increasing order,
 * starting from beta*C: c = c + a_ip*b_pj. The SIMD kernels round each step
 * once (fused multiply-add); the portable kernel rounds the product and the
 * sum separately. Packing, blocking, edges and the thread count never change
 * the chain, so the result depends only on the kernel, never on how many
 * OpenMP threads ran (threads share out column blocks of C, never K), nor on
 * which of the two SIMD kernels ran, nor on how many rows the call had. The
 * one other order: A B^T with at most MRL__DOT_M rows (but not 8, 12 or 16
 * rows with k <= 4 m: mrl__dot_rows), at most 4 columns or
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
 * steps, where Ap holds 6 consecutive floats per step (as apart: 6 when
 * packed, A's row stride when a transposed A is read in place) and Bp 8; Cin
 * is read from ci (row stride ldi). Rows are written out so the accumulators
 * stay in registers. */
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
static void mrl__kern_c(int kc, const float *ap, size_t as, const float *bp, size_t bs,
                        const float *ci, size_t ldi, float *c, size_t ldc) {
#ifdef MRL__HAVE_V4
  mrl__v4 b0, b1;
  int p;
  MRL__KC_LOAD(0);
  MRL__KC_LOAD(1);
  MRL__KC_LOAD(2);
  MRL__KC_LOAD(3);
  MRL__KC_LOAD(4);
  MRL__KC_LOAD(5);
  for (p = 0; p < kc; p++, ap += as, bp += bs) {
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
  for (p = 0; p < kc; p++, ap += as, bp += bs)
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

/* AVX2+FMA micro-kernel: C[6,16] += Ap Bp (6 and 16 floats per step, A's
 * steps as apart). */
MRL__TARGET_AVX2 static void mrl__kern_avx2(int kc, const float *ap, size_t as, const float *bp,
                                            size_t bs, const float *ci, size_t ldi, float *c,
                                            size_t ldc) {
  __m256 c00 = _mm256_loadu_ps(ci), c01 = _mm256_loadu_ps(ci + 8);
  __m256 c10 = _mm256_loadu_ps(ci + ldi), c11 = _mm256_loadu_ps(ci + ldi + 8);
  __m256 c20 = _mm256_loadu_ps(ci + 2 * ldi), c21 = _mm256_loadu_ps(ci + 2 * ldi + 8);
  __m256 c30 = _mm256_loadu_ps(ci + 3 * ldi), c31 = _mm256_loadu_ps(ci + 3 * ldi + 8);
  __m256 c40 = _mm256_loadu_ps(ci + 4 * ldi), c41 = _mm256_loadu_ps(ci + 4 * ldi + 8);
  __m256 c50 = _mm256_loadu_ps(ci + 5 * ldi), c51 = _mm256_loadu_ps(ci + 5 * ldi + 8);
  int p;
  for (p = 0; p < kc; p++, ap += as, bp += bs) {
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
 * of A), so every element still gets the same chain. A's element (r, p) is
 * read as MRL__A512P (consecutive rows, steps as apart: a packed panel, or a
 * transposed A in place) or MRL__A512N (rows ar apart, consecutive steps: A
 * read in place, no packing); the values, so the chains, are the same. The
 * row-strided form walks four row pointers (rows 3i .. 3i+2 at q_i, q_i + l,
 * q_i + 2l bytes), which keeps the addressing in registers. */
#define MRL__A512P(r) ap[r]
#define MRL__A512N(r) (*(const float *)(MRL__AQ##r))
#define MRL__AQ0 q0
#define MRL__AQ1 (q0 + l)
#define MRL__AQ2 (q0 + 2 * l)
#define MRL__AQ3 q1
#define MRL__AQ4 (q1 + l)
#define MRL__AQ5 (q1 + 2 * l)
#define MRL__AQ6 q2
#define MRL__AQ7 (q2 + l)
#define MRL__AQ8 (q2 + 2 * l)
#define MRL__AQ9 q3
#define MRL__AQ10 (q3 + l)
#define MRL__AQ11 (q3 + 2 * l)
#define MRL__K512_LOAD(r)                                                                          \
  __m512 c##r##a = _mm512_loadu_ps(ci + r * ldi), c##r##b = _mm512_loadu_ps(ci + r * ldi + 16)
#define MRL__K512_STEP(r)                                                                          \
  a = _mm512_set1_ps(MRL__A512(r));                                                                \
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
/* The kernels' signature and the A pointers of both forms (nr: the rows) */
#define MRL__K512_HEAD(name, nr)                                                                   \
  MRL__TARGET_AVX512 static void name(int kc, const float *ap, size_t as, size_t ar,               \
                                      const float *bp, size_t bs, const float *ci, size_t ldi,     \
                                      float *c, size_t ldc) {                                      \
    const size_t l = ar * sizeof(float);                                                           \
    const char *q0 = (const char *)ap, *q1 = nr > 3 ? q0 + 3 * l : q0;                             \
    const char *q2 = nr > 6 ? q0 + 6 * l : q0, *q3 = nr > 9 ? q0 + 9 * l : q0;                     \
    int p;
#define MRL__A512P_NEXT ap += as
#define MRL__A512N_NEXT q0 += 4, q1 += 4, q2 += 4, q3 += 4
/* PF: nothing, or (the _pf kernels, for a prepacked B: recurrent weights
 * read from L3 every step) a request for the same step of the next panel
 * into L2, kc*32 floats on, since the hardware prefetchers stop at 4 KiB
 * pages (measured: 16 x 2048 x 512 from a prepacked B 116-122 -> 124-129
 * GFLOP/s; for a B packed just before, already in cache, the requests cost
 * about 3%, so those kernels make none). */
#define MRL__K512_PF                                                                               \
  _mm_prefetch((const char *)(bp + (size_t)kc * 32), _MM_HINT_T1);                                 \
  _mm_prefetch((const char *)(bp + (size_t)kc * 32 + 16), _MM_HINT_T1)
#define MRL__K512_DEFINE(name, nr, ROWS, PF)                                                       \
  MRL__K512_HEAD(name, nr)                                                                         \
  ROWS(MRL__K512_LOAD);                                                                            \
  for (p = 0; p < kc; p++, MRL__A512_NEXT, bp += bs) {                                             \
    __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16), a;                             \
    PF;                                                                                            \
    ROWS(MRL__K512_STEP);                                                                          \
  }                                                                                                \
  ROWS(MRL__K512_STORE);                                                                           \
  (void)q0, (void)q1, (void)q2, (void)q3, (void)as;                                                \
  }
/* The same over the first 16 columns of the panels (the last, narrow panel of
 * B). */
#define MRL__K512H_LOAD(r) __m512 c##r##a = _mm512_loadu_ps(ci + r * ldi)
#define MRL__K512H_STEP(r) c##r##a = _mm512_fmadd_ps(_mm512_set1_ps(MRL__A512(r)), b0, c##r##a)
#define MRL__K512H_STORE(r) _mm512_storeu_ps(c + r * ldc, c##r##a)
#define MRL__K512H_DEFINE(name, nr, ROWS)                                                          \
  MRL__K512_HEAD(name, nr)                                                                         \
  ROWS(MRL__K512H_LOAD);                                                                           \
  for (p = 0; p < kc; p++, MRL__A512_NEXT, bp += bs) {                                             \
    __m512 b0 = _mm512_loadu_ps(bp);                                                               \
    ROWS(MRL__K512H_STEP);                                                                         \
  }                                                                                                \
  ROWS(MRL__K512H_STORE);                                                                          \
  (void)q0, (void)q1, (void)q2, (void)q3, (void)as;                                                \
  }
#define MRL__A512 MRL__A512P
#define MRL__A512_NEXT MRL__A512P_NEXT
MRL__K512_DEFINE(mrl__kern_avx512, 12, MRL__ROWS12, )
MRL__K512_DEFINE(mrl__kern_avx512_r8, 8, MRL__ROWS8, )
MRL__K512_DEFINE(mrl__kern_avx512_r4, 4, MRL__ROWS4, )
MRL__K512H_DEFINE(mrl__kern_avx512_c16, 12, MRL__ROWS12)
MRL__K512H_DEFINE(mrl__kern_avx512_r8c16, 8, MRL__ROWS8)
MRL__K512H_DEFINE(mrl__kern_avx512_r4c16, 4, MRL__ROWS4)
#undef MRL__A512
#undef MRL__A512_NEXT
#define MRL__A512 MRL__A512N
#define MRL__A512_NEXT MRL__A512N_NEXT
MRL__K512_DEFINE(mrl__kern_avx512n, 12, MRL__ROWS12, )
MRL__K512_DEFINE(mrl__kern_avx512n_r8, 8, MRL__ROWS8, )
MRL__K512_DEFINE(mrl__kern_avx512n_r4, 4, MRL__ROWS4, )
MRL__K512_DEFINE(mrl__kern_avx512n_pf, 12, MRL__ROWS12, MRL__K512_PF)
MRL__K512_DEFINE(mrl__kern_avx512n_r8_pf, 8, MRL__ROWS8, MRL__K512_PF)
MRL__K512_DEFINE(mrl__kern_avx512n_r4_pf, 4, MRL__ROWS4, MRL__K512_PF)
MRL__K512H_DEFINE(mrl__kern_avx512n_c16, 12, MRL__ROWS12)
MRL__K512H_DEFINE(mrl__kern_avx512n_r8c16, 8, MRL__ROWS8)
MRL__K512H_DEFINE(mrl__kern_avx512n_r4c16, 4, MRL__ROWS4)
#undef MRL__A512
#undef MRL__A512_NEXT

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
 * C's old contents are never read and need no clearing). A's element (r, p)
 * is ap[r + p*as] (ar == 1: packed, or a transposed A in place) or, on
 * AVX-512 only, ap[r*ar + p] (ar > 1: A in place). */
static void mrl__gemm_kernel(int isa, int rows, int cols, int kc, const float *ap, size_t as,
                             size_t ar, const float *bp, size_t bs, const float *ci, size_t ldi,
                             float *c, size_t ldc, int prepacked) {
#ifdef MRL__X86_SIMD
  if (isa == MRL__ISA_AVX512 && ar != 1) {
    if (prepacked && cols == 32)
      (rows == 4   ? mrl__kern_avx512n_r4_pf
       : rows == 8 ? mrl__kern_avx512n_r8_pf
                   : mrl__kern_avx512n_pf)(kc, ap, as, ar, bp, bs, ci, ldi, c, ldc);
    else if (cols == 16)
      (rows == 4   ? mrl__kern_avx512n_r4c16
       : rows == 8 ? mrl__kern_avx512n_r8c16
                   : mrl__kern_avx512n_c16)(kc, ap, as, ar, bp, bs, ci, ldi, c, ldc);
    else
      (rows == 4   ? mrl__kern_avx512n_r4
       : rows == 8 ? mrl__kern_avx512n_r8
                   : mrl__kern_avx512n)(kc, ap, as, ar, bp, bs, ci, ldi, c, ldc);
    return;
  }
  if (isa == MRL__ISA_AVX512) {
    if (cols == 16)
      (rows == 4   ? mrl__kern_avx512_r4c16
       : rows == 8 ? mrl__kern_avx512_r8c16
                   : mrl__kern_avx512_c16)(kc, ap, as, ar, bp, bs, ci, ldi, c, ldc);
    else
      (rows == 4   ? mrl__kern_avx512_r4
       : rows == 8 ? mrl__kern_avx512_r8
                   : mrl__kern_avx512)(kc, ap, as, ar, bp, bs, ci, ldi, c, ldc);
    return;
  }
  if (isa == MRL__ISA_AVX2) {
    mrl__kern_avx2(kc, ap, as, bp, bs, ci, ldi, c, ldc);
    return;
  }
#endif
  (void)isa;
  (void)rows;
  (void)cols;
  (void)ar;
  (void)prepacked;
  mrl__kern_c(kc, ap, as, bp, bs, ci, ldi, c, ldc);
}

/* Rounds the aligned start of a stack buffer up to 64 bytes. */
static float *mrl__align64(float *p) {
  return p + ((16 - ((size_t)(uintptr_t)p / sizeof(float)) % 16) % 16);
}

/* Packs op(B)[p0..p0+kc, j0..j0+nc) as panels of kc rows x nr columns at bp
 * (panel jr at bp + jr*kc, zero-padded past nc), skipping the full panels
 * that are read in place (inplace). */
static void mrl__gemm_pack_b_block(int isa, int tb, int j0, int nc, int p0, int kc, const float *b,
                                   int ldb, int inplace, float *bp) {
  int nr = isa == MRL__ISA_AVX512 ? 32 : isa == MRL__ISA_AVX2 ? 16 : 8;
  int jr, p, q;
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
}

/* Packed path over C's column block [j0, j0+nc): for each KC slice, pack
 * op(B) once, then op(A) in MC-row blocks, and run the micro-kernel on every
 * MR x NR tile (edge tiles through a padded copy, same arithmetic). */
static const float mrl__zeros[32] = {0.0f};

/* rows the kernel runs for a panel of mb rows: mr, or on AVX-512 the last
 * panel's 4 or 8 */
#define MRL__KROWS(mb) (isa == MRL__ISA_AVX512 && (mb) <= 8 ? ((mb) <= 4 ? 4 : 8) : mr)
static void mrl__gemm_packed_block(int isa, int ta, int tb, int m, int j0, int nc, int k,
                                   const float *a, int lda, const float *b, int ldb, int zero,
                                   const float *c0, float *c, int ldc, int ctr, const float *bpre) {
  float bbuf[MRL__KC * MRL__NC + 16], abuf[MRL__MC * MRL__KC + 16], tbuf[12 * 32 + 16];
  float *bp = mrl__align64(bbuf), *ap = mrl__align64(abuf), *tile = mrl__align64(tbuf);
  int mr = isa == MRL__ISA_AVX512 ? 12 : 6;
  int nr = isa == MRL__ISA_AVX512 ? 32 : isa == MRL__ISA_AVX2 ? 16 : 8;
  /* With op(B) = B, full panels of B are read in place (row stride ldb)
   * instead of packed when that is cheaper: with few rows (one MC block, so
   * each panel is used once) or, for the 32-wide AVX-512 panels, short rows
   * (ldb < 256: the panel stays in cache without set conflicts; 256-float
   * rows conflict once A is read in place too; measured slower with the
   * 16-wide AVX2 panels). */
  int inplace = !bpre && !tb && (m <= MRL__MC || (ldb < 256 && isa == MRL__ISA_AVX512));
  /* Whole panels of op(A) (as tall as the kernel that runs them) are read in
   * place, not packed: op(A) = A^T by every kernel (a step of the panel is
   * part of a row of A) while A's rows are at most 512 floats (measured: with
   * 4-8 KiB rows the panel's steps fall into a few cache sets and packing
   * wins, 10-15%), op(A) = A by the row-strided AVX-512 kernels (faster at
   * every stride measured, 64 to 2048). */
  int a_inplace = (ta && lda <= 512) || (!ta && isa == MRL__ISA_AVX512);
  int p0, i0, jr, ir, p, q, r;
  for (p0 = 0; p0 < k; p0 += MRL__KC) {
    int kc = k - p0 < MRL__KC ? k - p0 : MRL__KC;
    /* pack op(B)[p0.., j0..] as panels of kc rows x nr columns (or take the
     * caller's prepacked slice) */
    const float *bpk = bpre ? bpre + (size_t)p0 * ((nc + nr - 1) / nr * nr) : bp;
    if (!bpre) mrl__gemm_pack_b_block(isa, tb, j0, nc, p0, kc, b, ldb, inplace, bp);
    for (i0 = 0; i0 < m; i0 += MRL__MC) {
      int mc = m - i0 < MRL__MC ? m - i0 : MRL__MC;
      /* pack op(A)[i0.., p0..] as panels of mr rows x kc; a transposed A
       * with whole 12-row panels row by row of A, each row's panels in one
       * visit with the rows ahead prefetched (A's rows are pages apart in the
       * weight gradients' dpre^T: the hardware prefetchers stop at pages) */
      int by_rows = ta && !a_inplace && mr == 12 && mc % 12 == 0;
      if (by_rows)
        for (p = 0; p < kc; p++) {
          const float *src = a + (size_t)(p0 + p) * lda + i0;
#if defined(__GNUC__) || defined(__clang__)
          if (p + 8 < kc)
            for (r = 0; r < mc; r += 16) __builtin_prefetch(src + 8 * (size_t)lda + r);
#endif
          for (ir = 0; ir < mc; ir += 12)
            memcpy(ap + (size_t)ir * kc + (size_t)p * 12, src + ir, 12 * sizeof(float));
        }
      for (ir = 0; ir < mc; ir += mr) {
        float *dst = ap + (size_t)ir * kc;
        int mb = mc - ir < mr ? mc - ir : mr;
        if (by_rows || (a_inplace && mb == MRL__KROWS(mb))) continue;
        if (ta) {
          if (mb < mr) memset(dst, 0, sizeof(float) * (size_t)kc * (size_t)mr);
          /* full panels of the kernels' heights as fixed-size copies (inlined);
           * the element loop below compiled to one scalar move per float */
          if (mb == 12)
            for (p = 0; p < kc; p++)
              memcpy(dst + (size_t)p * mr, a + (size_t)(p0 + p) * lda + i0 + ir,
                     12 * sizeof(float));
          else if (mb == 6)
            for (p = 0; p < kc; p++)
              memcpy(dst + (size_t)p * mr, a + (size_t)(p0 + p) * lda + i0 + ir, 6 * sizeof(float));
          else if (mb == 8)
            for (p = 0; p < kc; p++)
              memcpy(dst + (size_t)p * mr, a + (size_t)(p0 + p) * lda + i0 + ir, 8 * sizeof(float));
          else
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
          int kr = MRL__KROWS(mb);
          int kn = isa == MRL__ISA_AVX512 && nb <= 16 ? 16 : nr; /* and columns */
          /* this panel of op(A): in place or packed (A(r, p) = apan[r ar + p as]) */
          int ain = a_inplace && mb == kr;
          const float *apan = !ain ? ap + (size_t)ir * kc
                              : ta ? a + (size_t)p0 * lda + i0 + ir
                                   : a + (size_t)(i0 + ir) * lda + p0;
          size_t as = !ain ? (size_t)mr : ta ? (size_t)lda : 1, ar = ain && !ta ? (size_t)lda : 1;
          /* this panel of op(B): packed, or in place with row stride ldb */
          const float *bpan =
              inplace && nb == nr ? b + (size_t)p0 * ldb + j0 + jr : bpk + (size_t)jr * kc;
          size_t bs = inplace && nb == nr ? (size_t)ldb : (size_t)nr;
          /* a fresh tile starts from zeros or from the row c0 (ldi 0: every row) */
          const float *start = c0 ? c0 + j0 + jr : mrl__zeros;
          if (mb == kr && nb == kn && !ctr) {
            mrl__gemm_kernel(isa, kr, kn, kc, apan, as, ar, bpan, bs, fresh ? start : ct,
                             fresh ? 0 : (size_t)ldc, ct, (size_t)ldc, bpre != NULL);
          } else {
            memset(tile, 0, sizeof(float) * (size_t)(kr * nr));
            if (fresh && c0)
              for (r = 0; r < mb; r++) memcpy(tile + r * nr, start, sizeof(float) * (size_t)nb);
            if (!fresh && ctr)
              for (r = 0; r < mb; r++)
                for (q = 0; q < nb; q++) tile[r * nr + q] = ct[(size_t)q * ldc + r];
            else if (!fresh)
              for (r = 0; r < mb; r++)
                memcpy(tile + r * nr, ct + (size_t)r * ldc, sizeof(float) * (size_t)nb);
            mrl__gemm_kernel(isa, kr, kn, kc, apan, as, ar, bpan, bs, tile, (size_t)nr, tile,
                             (size_t)nr, bpre != NULL);
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
#undef MRL__KROWS

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

/* AVX2 one-row A B^T (acting: x W^T with a batch of one), 8 columns at a
 * time: the 8 lane chains of each column as in mrl__dot_tile_avx2, and the
 * same reduction tree (l + l+4, l + l+2, 0 + 1) done for the 8 columns
 * together, so each C element is bitwise the tile path's. Returns how many
 * columns it did (a multiple of 8). */
MRL__TARGET_AVX2 static int mrl__gemv8_avx2(int n, int k, const float *a, const float *b,
                                            size_t ldb, float *c) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  int j, p;
  for (j = 0; j + 8 <= n; j += 8) {
    const float *w = b + (size_t)j * ldb;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
    __m256 b04, b15, b26, b37, u, v;
    for (p = 0; p < k; p += 8) {
      __m256 x;
      if (k - p >= 8) {
#define MRL__GEMV_LD(q) _mm256_loadu_ps(q)
#define MRL__GEMV_STEP(LD)                                                                         \
  x = LD(a + p);                                                                                   \
  s0 = _mm256_fmadd_ps(x, LD(w + p), s0);                                                          \
  s1 = _mm256_fmadd_ps(x, LD(w + ldb + p), s1);                                                    \
  s2 = _mm256_fmadd_ps(x, LD(w + 2 * ldb + p), s2);                                                \
  s3 = _mm256_fmadd_ps(x, LD(w + 3 * ldb + p), s3);                                                \
  s4 = _mm256_fmadd_ps(x, LD(w + 4 * ldb + p), s4);                                                \
  s5 = _mm256_fmadd_ps(x, LD(w + 5 * ldb + p), s5);                                                \
  s6 = _mm256_fmadd_ps(x, LD(w + 6 * ldb + p), s6);                                                \
  s7 = _mm256_fmadd_ps(x, LD(w + 7 * ldb + p), s7)
        MRL__GEMV_STEP(MRL__GEMV_LD);
      } else { /* lanes past k load zeros */
        __m256i mk = _mm256_cmpgt_epi32(_mm256_set1_epi32(k - p), lane);
#define MRL__GEMV_LDM(q) _mm256_maskload_ps(q, mk)
        MRL__GEMV_STEP(MRL__GEMV_LDM);
#undef MRL__GEMV_LDM
      }
#undef MRL__GEMV_LD
#undef MRL__GEMV_STEP
    }
    /* l + l+4: [column 0 | column 4] and so on */
    b04 = _mm256_add_ps(_mm256_permute2f128_ps(s0, s4, 0x20), _mm256_permute2f128_ps(s0, s4, 0x31));
    b15 = _mm256_add_ps(_mm256_permute2f128_ps(s1, s5, 0x20), _mm256_permute2f128_ps(s1, s5, 0x31));
    b26 = _mm256_add_ps(_mm256_permute2f128_ps(s2, s6, 0x20), _mm256_permute2f128_ps(s2, s6, 0x31));
    b37 = _mm256_add_ps(_mm256_permute2f128_ps(s3, s7, 0x20), _mm256_permute2f128_ps(s3, s7, 0x31));
    /* l + l+2: [0 (l=0,1), 1 (l=0,1), ...] per half */
    u = _mm256_add_ps(_mm256_unpacklo_ps(b04, b15), _mm256_unpackhi_ps(b04, b15));
    v = _mm256_add_ps(_mm256_unpacklo_ps(b26, b37), _mm256_unpackhi_ps(b26, b37));
    /* 0 + 1: columns 0..7 in order */
    u = _mm256_add_ps(_mm256_shuffle_ps(u, v, 0x44), _mm256_shuffle_ps(u, v, 0xEE));
    _mm256_storeu_ps(c + j, _mm256_add_ps(_mm256_loadu_ps(c + j), u));
  }
  return j;
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
    j = 0;
#ifdef MRL__X86_SIMD
    if (m == 1 && isa == MRL__ISA_AVX2) j = mrl__gemv8_avx2(n, k, a, b, (size_t)ldb, c);
#endif
    for (; j < n; j += 4) {
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

/* Whether A B^T with m rows and depth k takes the dot products: up to
 * MRL__DOT_M rows, except 8, 12 or 16 rows over a short k (at most 4 m), where
 * the packed kernels' full row tiles beat the dots' per-element lane sums
 * (measured: 16 x 256 x 64, the LSTM's per-step h W_hh^T, 10-40% faster). */
static int mrl__dot_rows(int m, int k) {
  return m <= MRL__DOT_M && !(m >= 8 && m % 4 == 0 && k <= 4 * m);
}

/* mrl_gemm with the kernel chosen by the caller, and with C's rows starting
 * from the row c0 (n floats; NULL: from beta C): C = c0 + op(A) op(B), each
 * element's chain from c0[j] as if C's rows held c0 and beta were 1 (the
 * packed kernels read c0 as their first C, no pass over C; bias adds). */
static void mrl__gemm_run(int isa, int trans_a, int trans_b, int m, int n, int k, const float *a,
                          int lda, const float *b, int ldb, float beta, const float *c0, float *c,
                          int ldc) {
  int i, j, packed, ctr = 0;
  if (m <= 0 || n <= 0) return;
  MRL_ASSERT(ldc >= n && "mrl_gemm: ldc must be at least n");
  packed = k > 0 && !((trans_b && !trans_a && (mrl__dot_rows(m, k) || n <= 4)) ||
                      (!trans_b && m <= 3) || (double)m * n * k <= 4096.0);
  if (c0 && (!packed || (n < 16 && m >= 2 * n))) { /* other paths: C's rows hold c0 first */
    for (i = 0; i < m; i++) memcpy(c + (size_t)i * ldc, c0, sizeof(float) * (size_t)n);
    c0 = NULL;
    beta = 1.0f;
  }
  if (c0) beta = 0.0f; /* the packed path starts from c0, not from C */
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
                               k, a, lda, b, ldb, beta == 0.0f, c0, c, ldc, ctr, NULL);
    }
  }
}

/* A prepacked op(B), for one B multiplied by many small blocks of rows (the
 * recurrent layers' W_hh, once per time step): mrl__gemm_pack_b lays op(B)
 * [k, n] out as mrl__gemm_packed_block consumes it, per NC column block (at
 * j0*k), per KC slice (at p0*ncr, ncr = the block's width rounded up to nr),
 * kc x nr panels zero-padded at the edge; mrl__gemm_prepacked runs the packed
 * path on it without packing. Pack and run with the same isa (nr depends on
 * it). With OpenMP, threads share out whole NC blocks (the layout's units,
 * from column 0), not mrl__gemm_run's 32-column split. The arithmetic is the packed path's, so the
 * result equals mrl__gemm_run's whenever that takes the packed path without computing C^T (at least
 * 4 rows, more than 4096 multiply-adds, n >= 16 or m < 2n, and not A B^T on the dot products);
 * elsewhere only the sum order differs. */
#if defined(__GNUC__) || defined(__clang__)
#define MRL__MAYBE_UNUSED __attribute__((unused)) /* used by memrl_nn.h, not by every program */
#else
#define MRL__MAYBE_UNUSED
#endif
MRL__MAYBE_UNUSED static size_t mrl__gemm_packed_floats(int isa, int n, int k) {
  int nr = isa == MRL__ISA_AVX512 ? 32 : isa == MRL__ISA_AVX2 ? 16 : 8;
  return n > 0 && k > 0 ? (size_t)((n + nr - 1) / nr * nr) * (size_t)k : 0;
}

MRL__MAYBE_UNUSED static void mrl__gemm_pack_b(int isa, int trans_b, int n, int k, const float *b,
                                               int ldb, float *bp) {
  int j0, p0;
  for (j0 = 0; j0 < n; j0 += MRL__NC) {
    int nc = n - j0 < MRL__NC ? n - j0 : MRL__NC;
    int ncr = (int)mrl__gemm_packed_floats(isa, nc, 1);
    for (p0 = 0; p0 < k; p0 += MRL__KC)
      mrl__gemm_pack_b_block(isa, trans_b, j0, nc, p0, k - p0 < MRL__KC ? k - p0 : MRL__KC, b, ldb,
                             0, bp + (size_t)j0 * k + (size_t)p0 * ncr);
  }
}

MRL__MAYBE_UNUSED static void mrl__gemm_prepacked(int isa, int trans_a, int m, int n, int k,
                                                  const float *a, int lda, const float *bp,
                                                  float beta, float *c, int ldc) {
  int i, j, jb;
  if (m <= 0 || n <= 0) return;
  MRL_ASSERT(ldc >= n && lda >= (trans_a ? m : k) && "mrl__gemm_prepacked: a stride is short");
  if (beta != 0.0f && beta != 1.0f)
    for (i = 0; i < m; i++)
      for (j = 0; j < n; j++) c[(size_t)i * ldc + j] *= beta;
  if (k <= 0) {
    if (beta == 0.0f)
      for (i = 0; i < m; i++) memset(c + (size_t)i * ldc, 0, sizeof(float) * (size_t)n);
    return;
  }
  /* with OpenMP, threads take whole NC blocks (the layout's own units) */
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if ((double)m * n * k > 4e6)
#endif
  for (jb = 0; jb < (n + MRL__NC - 1) / MRL__NC; jb++) {
    int j0 = jb * MRL__NC;
    mrl__gemm_packed_block(isa, trans_a, 0, m, j0, n - j0 < MRL__NC ? n - j0 : MRL__NC, k, a, lda,
                           NULL, 0, beta == 0.0f, NULL, c, ldc, 0, bp + (size_t)j0 * k);
  }
}

/* mrl_gemm with the kernel chosen by the caller (tests run every kernel the
 * CPU has). */
static void mrl__gemm_isa_run(int isa, int trans_a, int trans_b, int m, int n, int k,
                              const float *a, int lda, const float *b, int ldb, float beta,
                              float *c, int ldc) {
  mrl__gemm_run(isa, trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, NULL, c, ldc);
}

MRL_DEF void mrl_gemm(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
                      const float *b, int ldb, float beta, float *c, int ldc) {
  mrl__gemm_isa_run(mrl__gemm_isa(), trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc);
}

/* ---- matmul ---- >>matmul */

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
  if (a->ndim != 2 || b->ndim != 2) return mrl__matmul_batched(g, a, b, layout, op);
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

/* ---- y += x Wᵀ (linear layers, recurrent projections) ---- >>xwt
 * W row-major [n,k], row strides ldx, ldw, ldy. One entry point for the
 * library's x Wᵀ products: mrl_gemm picks a dot-product path for the small
 * batches of acting and packed kernels for training batches. */
static void mrl__xwt(int m, int n, int k, const float *x, int ldx, const float *w, int ldw,
                     float *y, int ldy) {
  if (m <= 0 || n <= 0 || k <= 0) return;
  mrl_gemm(0, 1, m, n, k, x, ldx, w, ldw, 1.0f, y, ldy);
}

/* four-lane vectors for the activations below */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(MRL_NO_VECTOR_EXTENSIONS)
#define MRL__HAVE_F4 1
typedef float mrl__f4 __attribute__((vector_size(16), aligned(4)));
typedef uint32_t mrl__u4 __attribute__((vector_size(16), aligned(4)));
typedef int32_t mrl__i4 __attribute__((vector_size(16), aligned(4)));
#endif

/* ---- fast activations (tanh and sigmoid ops, recurrent layers) ---- >>fast_act
 * sigmoid and tanh over arrays, both from one exp of a non-positive argument:
 * Cephes' expf (range reduction by ln 2 in two parts, a degree-6 polynomial,
 * 2^n built in the exponent bits) and, for |x| < 0.625, Cephes' tanhf
 * polynomial. Within a few ulp of libm and several times faster, since four
 * lanes run at once with GCC/Clang vector extensions. The scalar code (other
 * compilers, and the tails) performs the same operations in the same order,
 * so a result depends only on its input, never on its position. NaN
 * propagates; +-inf give the limits; exp below e^-87 is flushed to zero. */
#define MRL__EXP_LO -87.0f     /* keeps 2^n normal */
#define MRL__MAGIC 12582912.0f /* 1.5 * 2^23: adding it rounds to an integer */

static float mrl__exp_nonpos(float z) { /* exp(z) for z <= 0 */
  float n, r, p, k, scale;
  uint32_t kb, mb, eb;
  if (z < MRL__EXP_LO) return 0.0f; /* flushed: below the normal range */
  k = z * 1.44269504088896341f + MRL__MAGIC;
  n = k - MRL__MAGIC;
  r = z - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  mb = 0x4B400000u; /* the bits of MRL__MAGIC */
  memcpy(&kb, &k, sizeof kb);
  eb = (kb - mb + 127u) << 23;
  memcpy(&scale, &eb, sizeof scale);
  return p * scale;
}

static float mrl__abs_bits(float x) {
  uint32_t b;
  memcpy(&b, &x, sizeof b);
  b &= 0x7FFFFFFFu;
  memcpy(&x, &b, sizeof b);
  return x;
}

static float mrl__sigmoid1(float x) {
  float e = mrl__exp_nonpos(-mrl__abs_bits(x)), s = 1.0f / (1.0f + e);
  return x >= 0.0f ? s : e * s;
}

static float mrl__tanh1(float x) {
  float a = mrl__abs_bits(x), z = a * a, e = mrl__exp_nonpos(-2.0f * a), t, p;
  uint32_t tb, xb;
  t = (1.0f - e) / (1.0f + e);
  p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  p = p * z * a + a;
  if (a < 0.625f) t = p;
  memcpy(&tb, &t, sizeof tb);
  memcpy(&xb, &x, sizeof xb);
  tb |= xb & 0x80000000u;
  memcpy(&t, &tb, sizeof t);
  return t;
}

#ifdef MRL__HAVE_F4

static inline mrl__f4 mrl__select4(mrl__i4 mask, mrl__f4 a, mrl__f4 b) { /* mask ? a : b */
  return (mrl__f4)(((mrl__i4)a & mask) | ((mrl__i4)b & ~mask));
}

static inline mrl__f4 mrl__exp_nonpos4(mrl__f4 z) {
  const mrl__f4 lo = {MRL__EXP_LO, MRL__EXP_LO, MRL__EXP_LO, MRL__EXP_LO};
  const mrl__u4 mb = {0x4B400000u, 0x4B400000u, 0x4B400000u, 0x4B400000u};
  mrl__f4 n, r, p, k;
  mrl__u4 eb;
  mrl__i4 under = z < lo;
  z = mrl__select4(under, lo, z);
  k = z * 1.44269504088896341f + MRL__MAGIC;
  n = k - MRL__MAGIC;
  r = z - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  p = r * 1.9875691500e-4f + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  eb = ((mrl__u4)k - mb + 127u) << 23;
  return (mrl__f4)((mrl__i4)(p * (mrl__f4)eb) & ~under); /* flushed below the normal range */
}

static inline mrl__f4 mrl__abs4(mrl__f4 x) {
  return (mrl__f4)((mrl__u4)x & 0x7FFFFFFFu);
}

static inline mrl__f4 mrl__sigmoid4(mrl__f4 x) {
  const mrl__f4 zero = {0.0f, 0.0f, 0.0f, 0.0f};
  mrl__f4 e = mrl__exp_nonpos4(-mrl__abs4(x)), s = 1.0f / (1.0f + e);
  return mrl__select4(x >= zero, s, e * s);
}

static inline mrl__f4 mrl__tanh4(mrl__f4 x) {
  const mrl__f4 small = {0.625f, 0.625f, 0.625f, 0.625f};
  mrl__f4 a = mrl__abs4(x), z = a * a, e = mrl__exp_nonpos4(-2.0f * a), t, p;
  t = (1.0f - e) / (1.0f + e);
  p = z * -5.70498872745e-3f + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  p = p * z * a + a;
  t = mrl__select4(a < small, p, t);
  return (mrl__f4)((mrl__u4)t | ((mrl__u4)x & 0x80000000u));
}
#endif

/* Eight- and sixteen-lane forms of the four-lane code above (AVX2 and
 * AVX-512 CPUs, picked at run time like mrl_gemm's kernels). Each lane does
 * the same operations in the same order as the portable code, and
 * contraction into FMA is switched off (the AVX targets offer FMA), so results
 * are bitwise those of the portable path. */
#if defined(MRL__HAVE_F4) && defined(MRL__X86_SIMD)
#define MRL__HAVE_WIDE_ACT 1
#ifdef __clang__
#define MRL__NOCONTRACT _Pragma("clang fp contract(off)")
#define MRL__NOCONTRACT_ATTR
#else
#define MRL__NOCONTRACT
#define MRL__NOCONTRACT_ATTR __attribute__((optimize("fp-contract=off")))
#endif
#define MRL__WIDE_ACT(W, TGT)                                                                      \
  typedef float mrl__f##W __attribute__((vector_size(4 * W), aligned(4)));                         \
  typedef uint32_t mrl__u##W __attribute__((vector_size(4 * W), aligned(4)));                      \
  typedef int32_t mrl__i##W __attribute__((vector_size(4 * W), aligned(4)));                       \
  TGT MRL__NOCONTRACT_ATTR static inline mrl__f##W mrl__select##W(mrl__i##W m, mrl__f##W a,        \
                                                                  mrl__f##W b) {                   \
    return (mrl__f##W)(((mrl__i##W)a & m) | ((mrl__i##W)b & ~m));                                  \
  }                                                                                                \
  TGT MRL__NOCONTRACT_ATTR static inline mrl__f##W mrl__exp_nonpos##W(mrl__f##W z) {               \
    MRL__NOCONTRACT                                                                                \
    mrl__f##W lo = (mrl__f##W)((mrl__u##W)z & 0u) + MRL__EXP_LO, n, r, p, k;                       \
    mrl__u##W eb;                                                                                  \
    mrl__i##W under = z < lo;                                                                      \
    z = mrl__select##W(under, lo, z);                                                              \
    k = z * 1.44269504088896341f + MRL__MAGIC;                                                     \
    n = k - MRL__MAGIC;                                                                            \
    r = z - n * 0.693359375f;                                                                      \
    r = r - n * -2.12194440e-4f;                                                                   \
    p = r * 1.9875691500e-4f + 1.3981999507e-3f;                                                   \
    p = p * r + 8.3334519073e-3f;                                                                  \
    p = p * r + 4.1665795894e-2f;                                                                  \
    p = p * r + 1.6666665459e-1f;                                                                  \
    p = p * r + 5.0000001201e-1f;                                                                  \
    p = p * (r * r) + r + 1.0f;                                                                    \
    eb = ((mrl__u##W)k - 0x4B400000u + 127u) << 23;                                                \
    return (mrl__f##W)((mrl__i##W)(p * (mrl__f##W)eb) & ~under);                                   \
  }                                                                                                \
  /* Sigmoid of x[0..), W lanes at a time; returns how many were done. */                          \
  TGT MRL__NOCONTRACT_ATTR static int mrl__sigmoid_run##W(const float *x, float *y, int n) {       \
    MRL__NOCONTRACT                                                                                \
    int i = 0;                                                                                     \
    for (; i + W <= n; i += W) {                                                                   \
      mrl__f##W v, e, s, zero;                                                                     \
      memcpy(&v, x + i, sizeof v);                                                                 \
      zero = (mrl__f##W)((mrl__u##W)v & 0u);                                                       \
      e = mrl__exp_nonpos##W(-(mrl__f##W)((mrl__u##W)v & 0x7FFFFFFFu));                            \
      s = 1.0f / (1.0f + e);                                                                       \
      v = mrl__select##W(v >= zero, s, e * s);                                                     \
      memcpy(y + i, &v, sizeof v);                                                                 \
    }                                                                                              \
    return i;                                                                                      \
  }                                                                                                \
  TGT MRL__NOCONTRACT_ATTR static int mrl__tanh_run##W(const float *x, float *y, int n) {          \
    MRL__NOCONTRACT                                                                                \
    int i = 0;                                                                                     \
    for (; i + W <= n; i += W) {                                                                   \
      mrl__f##W v, a, z, e, t, p, small;                                                           \
      memcpy(&v, x + i, sizeof v);                                                                 \
      small = (mrl__f##W)((mrl__u##W)v & 0u) + 0.625f;                                             \
      a = (mrl__f##W)((mrl__u##W)v & 0x7FFFFFFFu);                                                 \
      z = a * a;                                                                                   \
      e = mrl__exp_nonpos##W(-2.0f * a);                                                           \
      t = (1.0f - e) / (1.0f + e);                                                                 \
      p = z * -5.70498872745e-3f + 2.06390887954e-2f;                                              \
      p = p * z - 5.37397155531e-2f;                                                               \
      p = p * z + 1.33314422036e-1f;                                                               \
      p = p * z - 3.33332819422e-1f;                                                               \
      p = p * z * a + a;                                                                           \
      t = mrl__select##W(a < small, p, t);                                                         \
      v = (mrl__f##W)((mrl__u##W)t | ((mrl__u##W)v & 0x80000000u));                                \
      memcpy(y + i, &v, sizeof v);                                                                 \
    }                                                                                              \
    return i;                                                                                      \
  }                                                                                                \
  /* x[i] = exp(x[i] - m) for x[i] <= m (softmax rows), W lanes at a time */                       \
  TGT MRL__NOCONTRACT_ATTR static int mrl__expsub_run##W(float *x, float m, int n) {               \
    MRL__NOCONTRACT                                                                                \
    int i = 0;                                                                                     \
    for (; i + W <= n; i += W) {                                                                   \
      mrl__f##W v;                                                                                 \
      memcpy(&v, x + i, sizeof v);                                                                 \
      v = mrl__exp_nonpos##W(v - m);                                                               \
      memcpy(x + i, &v, sizeof v);                                                                 \
    }                                                                                              \
    return i;                                                                                      \
  }
MRL__WIDE_ACT(8, MRL__TARGET_AVX2)
MRL__WIDE_ACT(16, MRL__TARGET_AVX512)
#endif

/* y[i] = sigmoid(x[i]) (is_tanh 0) or tanh(x[i]) (1); y may be x. The
 * widest lanes the CPU has first, then four lanes, then one: every path
 * computes the same bits. */
static void mrl__act_n(int is_tanh, const float *x, float *y, int n) {
  int i = 0;
#ifdef MRL__HAVE_WIDE_ACT
  if (n >= 8) {
    int isa = mrl__gemm_isa();
    if (isa == MRL__ISA_AVX512)
      i = is_tanh ? mrl__tanh_run16(x, y, n) : mrl__sigmoid_run16(x, y, n);
    else if (isa == MRL__ISA_AVX2)
      i = is_tanh ? mrl__tanh_run8(x, y, n) : mrl__sigmoid_run8(x, y, n);
  }
#endif
#ifdef MRL__HAVE_F4
  for (; i + 4 <= n; i += 4) {
    mrl__f4 v;
    memcpy(&v, x + i, sizeof v);
    v = is_tanh ? mrl__tanh4(v) : mrl__sigmoid4(v);
    memcpy(y + i, &v, sizeof v);
  }
#endif
  for (; i < n; i++) y[i] = is_tanh ? mrl__tanh1(x[i]) : mrl__sigmoid1(x[i]);
}

/* x[i] = exp(x[i] - m), every x[i] <= m (or -inf: 0), in place; the same
 * bits on every path, as mrl__act_n. */
static void mrl__expsub_n(float *x, float m, int n) {
  int i = 0;
#ifdef MRL__HAVE_WIDE_ACT
  if (n >= 8) {
    int isa = mrl__gemm_isa();
    if (isa == MRL__ISA_AVX512)
      i = mrl__expsub_run16(x, m, n);
    else if (isa == MRL__ISA_AVX2)
      i = mrl__expsub_run8(x, m, n);
  }
#endif
#ifdef MRL__HAVE_F4
  for (; i + 4 <= n; i += 4) {
    mrl__f4 v;
    memcpy(&v, x + i, sizeof v);
    v = mrl__exp_nonpos4(v - m);
    memcpy(x + i, &v, sizeof v);
  }
#endif
  for (; i < n; i++) x[i] = mrl__exp_nonpos(x[i] - m);
}

static void mrl__sigmoid_n(const float *x, float *y, int n) {
  mrl__act_n(0, x, y, n);
}

static void mrl__tanh_n(const float *x, float *y, int n) {
  mrl__act_n(1, x, y, n);
}

/* ---- linear: y = x Wᵀ + b ---- >>linear_op */

/* o[i] = x[i] > 0 ? x[i] : 0 (o may be x); branch-free lanes, same bits:
 * -0 and NaN give +0 on every path. */
static void mrl__relu_n(const float *x, float *o, size_t n) {
  size_t i = 0;
#ifdef MRL__HAVE_F4
  for (; i + 4 <= n; i += 4) {
    const mrl__f4 zero = {0.0f, 0.0f, 0.0f, 0.0f};
    mrl__f4 v;
    memcpy(&v, x + i, sizeof v);
    v = mrl__select4(v > zero, v, zero);
    memcpy(o + i, &v, sizeof v);
  }
#endif
  for (; i < n; i++) o[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

static void mrl__linear_backward(mrl_node *nd) {
  mrl_tensor *x = nd->in[0], *w = nd->in[1], *b = nd->in[2], *y = nd->out;
  int m = mrl_tensor_rows(x), k = mrl_tensor_cols(x), n = w->shape[0], i, j;
  if (nd->i[0]) { /* linear_relu / linear_tanh: y->grad becomes the pre-activation's */
    float *gy = y->grad;
    const float *o = y->data;
    size_t e, size = y->size;
    /* After this node nothing reads y's gradient, so it is rewritten in place
     * with the arithmetic of mrl__unary_backward on a zeroed gradient (0 + ...). */
    e = 0;
#ifdef MRL__HAVE_F4 /* branch-free lanes: a scalar branch mispredicts on mixed signs */
    for (; e + 4 <= size; e += 4) {
      const mrl__f4 zero = {0.0f, 0.0f, 0.0f, 0.0f};
      mrl__f4 vg, vo;
      memcpy(&vg, gy + e, sizeof vg);
      memcpy(&vo, o + e, sizeof vo);
      vg = nd->i[0] == 1 ? zero + mrl__select4(vo > zero, vg, zero) : zero + vg * (1.0f - vo * vo);
      memcpy(gy + e, &vg, sizeof vg);
    }
#endif
    for (; e < size; e++)
      gy[e] =
          nd->i[0] == 1 ? 0.0f + (o[e] > 0.0f ? gy[e] : 0.0f) : 0.0f + gy[e] * (1.0f - o[e] * o[e]);
  }
  if (x->grad) mrl_gemm(0, 0, m, k, n, y->grad, n, w->data, k, 1.0f, x->grad, k);
  if (w->grad) mrl_gemm(1, 0, n, k, m, y->grad, n, x->data, k, 1.0f, w->grad, k);
  if (b && b->grad) {
    const float *gy = y->grad;
    j = 0;
#ifdef MRL__HAVE_F4
    /* 16 columns at a time, their sums in registers over all rows (one row
     * at a time through memory waited on store-to-load forwarding); each
     * column still sums its rows in order */
    for (; j + 16 <= n; j += 16) {
      mrl__f4 s0, s1, s2, s3, r;
      memcpy(&s0, b->grad + j, sizeof s0);
      memcpy(&s1, b->grad + j + 4, sizeof s1);
      memcpy(&s2, b->grad + j + 8, sizeof s2);
      memcpy(&s3, b->grad + j + 12, sizeof s3);
      for (i = 0; i < m; i++) {
        const float *gr = gy + (size_t)i * n + j;
        memcpy(&r, gr, sizeof r);
        s0 += r;
        memcpy(&r, gr + 4, sizeof r);
        s1 += r;
        memcpy(&r, gr + 8, sizeof r);
        s2 += r;
        memcpy(&r, gr + 12, sizeof r);
        s3 += r;
      }
      memcpy(b->grad + j, &s0, sizeof s0);
      memcpy(b->grad + j + 4, &s1, sizeof s1);
      memcpy(b->grad + j + 8, &s2, sizeof s2);
      memcpy(b->grad + j + 12, &s3, sizeof s3);
    }
#endif
    for (; j < n; j++) {
      float acc = b->grad[j];
      for (i = 0; i < m; i++) acc += gy[(size_t)i * n + j];
      b->grad[j] = acc;
    }
  }
}

/* act: 0 none, 1 relu, 2 tanh */
static mrl_tensor *mrl__linear_act(mrl_graph *g, mrl_tensor *x, mrl_tensor *w, mrl_tensor *b,
                                   int act, const char *op) {
  int m, k, n, i, shape[MRL_MAX_DIMS];
  mrl_tensor *y;
  mrl_node *nd;
  if (!x || !w) return NULL;
  MRL_SHAPE_CHECK(w->ndim == 2 && mrl_tensor_cols(x) == w->shape[1], op,
                  "x's last dimension must equal W's columns (W is [out,in])", x, w);
  m = mrl_tensor_rows(x);
  k = mrl_tensor_cols(x);
  n = w->shape[0];
  if (b) MRL_SHAPE_CHECK(b->size == n, op, "bias length must equal W's rows", b, w);
  for (i = 0; i < x->ndim; i++) shape[i] = x->shape[i];
  shape[x->ndim - 1] = n;
  y = mrl_op_output(g, x->ndim, shape,
                    mrl_graph_wants_grad(g, x, w) || (b && b->grad && !g->no_grad));
  if (!y) return NULL;
  if (b) /* y = b + x Wᵀ, each element's chain starting from its bias (no pass over y) */
    mrl__gemm_run(mrl__gemm_isa(), 0, 1, m, n, k, x->data, k, w->data, k, 0.0f, b->data, y->data,
                  n);
  else {
    for (i = 0; i < m; i++) memset(y->data + (size_t)i * n, 0, sizeof(float) * (size_t)n);
    mrl__xwt(m, n, k, x->data, k, w->data, k, y->data, n);
  }
  if (act == 1) mrl__relu_n(y->data, y->data, y->size);
  if (act == 2) mrl__tanh_n(y->data, y->data, (int)y->size);
  MRL__FINITE(op, y, x, w);
  if ((nd = mrl_graph_record(g, op, mrl__linear_backward, y)) != NULL) {
    nd->in[0] = x;
    nd->in[1] = w;
    nd->in[2] = b;
    nd->i[0] = act;
  }
  return y;
}

MRL_DEF mrl_tensor *mrl_linear(mrl_graph *g, mrl_tensor *x, mrl_tensor *w, mrl_tensor *b) {
  return mrl__linear_act(g, x, w, b, 0, "linear");
}
MRL_DEF mrl_tensor *mrl_linear_relu(mrl_graph *g, mrl_tensor *x, mrl_tensor *w, mrl_tensor *b) {
  return mrl__linear_act(g, x, w, b, 1, "linear_relu");
}
MRL_DEF mrl_tensor *mrl_linear_tanh(mrl_graph *g, mrl_tensor *x, mrl_tensor *w, mrl_tensor *b) {
  return mrl__linear_act(g, x, w, b, 2, "linear_tanh");
}

/* ---- unary ops ---- >>unary
 * One enum value per op; its forward is a case of mrl__unary and its
 * derivative a case of mrl__unary_backward, in the same order. */

enum {
  MRL__SCALE,
  MRL__ADD_SCALAR,
  MRL__SQUARE,
  MRL__EXP,
  MRL__LOG,
  MRL__TANH,
  MRL__SIGMOID,
  MRL__RELU,
  MRL__CLAMP,
  MRL__SQRT,
  MRL__POW,
  MRL__ABS,
  MRL__LEAKY_RELU,
  MRL__ELU,
  MRL__GELU,
  MRL__SOFTPLUS,
  MRL__SILU
};

/* Exact GELU (PyTorch's default, approximate='none'): x * Phi(x). */
static float mrl__gelu_cdf(float x) {
  return 0.5f * (1.0f + erff(x * 0.70710678118654752f));
}

static void mrl__unary_backward(mrl_node *nd) {
  mrl_tensor *a = nd->in[0], *y = nd->out;
  const float *x = a->data, *o = y->data, *gy = y->grad;
  float *ga = a->grad, s = nd->f[0], lo = nd->f[0], hi = nd->f[1];
  int n = y->size, i;
  if (!ga) return;
  switch (nd->i[0]) {
  case MRL__SCALE: i = 0;
#ifdef MRL__HAVE_F4
    for (; i + 4 <= n; i += 4) {
      mrl__f4 va, vg;
      memcpy(&va, ga + i, sizeof va);
      memcpy(&vg, gy + i, sizeof vg);
      va += vg * s;
      memcpy(ga + i, &va, sizeof va);
    }
#endif
    for (; i < n; i++) ga[i] += gy[i] * s;
    break;
  case MRL__ADD_SCALAR:
    for (i = 0; i < n; i++) ga[i] += gy[i];
    break;
  case MRL__SQUARE: i = 0;
#ifdef MRL__HAVE_F4
    for (; i + 4 <= n; i += 4) {
      mrl__f4 va, vg, vx;
      memcpy(&va, ga + i, sizeof va);
      memcpy(&vg, gy + i, sizeof vg);
      memcpy(&vx, x + i, sizeof vx);
      va += vg * 2.0f * vx;
      memcpy(ga + i, &va, sizeof va);
    }
#endif
    for (; i < n; i++) ga[i] += gy[i] * 2.0f * x[i];
    break;
  case MRL__EXP:
    for (i = 0; i < n; i++) ga[i] += gy[i] * o[i];
    break;
  case MRL__LOG:
    for (i = 0; i < n; i++) ga[i] += gy[i] / x[i];
    break;
  case MRL__TANH: i = 0;
#ifdef MRL__HAVE_F4 /* four lanes by hand: -O2 does not vectorise with alias checks */
    for (; i + 4 <= n; i += 4) {
      mrl__f4 va, vg, vo;
      memcpy(&va, ga + i, sizeof va);
      memcpy(&vg, gy + i, sizeof vg);
      memcpy(&vo, o + i, sizeof vo);
      va += vg * (1.0f - vo * vo);
      memcpy(ga + i, &va, sizeof va);
    }
#endif
    for (; i < n; i++) ga[i] += gy[i] * (1.0f - o[i] * o[i]);
    break;
  case MRL__SIGMOID: i = 0;
#ifdef MRL__HAVE_F4
    for (; i + 4 <= n; i += 4) {
      mrl__f4 va, vg, vo;
      memcpy(&va, ga + i, sizeof va);
      memcpy(&vg, gy + i, sizeof vg);
      memcpy(&vo, o + i, sizeof vo);
      va += vg * vo * (1.0f - vo);
      memcpy(ga + i, &va, sizeof va);
    }
#endif
    for (; i < n; i++) ga[i] += gy[i] * o[i] * (1.0f - o[i]);
    break;
  case MRL__RELU: i = 0;
#ifdef MRL__HAVE_F4 /* branch-free lanes: the scalar branch mispredicts on mixed signs */
    for (; i + 4 <= n; i += 4) {
      const mrl__f4 zero = {0.0f, 0.0f, 0.0f, 0.0f};
      mrl__f4 va, vg, vx;
      memcpy(&va, ga + i, sizeof va);
      memcpy(&vg, gy + i, sizeof vg);
      memcpy(&vx, x + i, sizeof vx);
      va += mrl__select4(vx > zero, vg, zero);
      memcpy(ga + i, &va, sizeof va);
    }
#endif
    for (; i < n; i++) ga[i] += x[i] > 0.0f ? gy[i] : 0.0f;
    break;
  case MRL__CLAMP:
    for (i = 0; i < n; i++) ga[i] += (x[i] >= lo && x[i] <= hi) ? gy[i] : 0.0f;
    break;
  case MRL__SQRT:
    for (i = 0; i < n; i++) ga[i] += gy[i] * 0.5f / o[i];
    break;
  case MRL__POW:
    for (i = 0; i < n; i++) ga[i] += gy[i] * s * powf(x[i], s - 1.0f);
    break;
  case MRL__ABS: /* PyTorch: sign(x), 0 at 0 */
    for (i = 0; i < n; i++) ga[i] += x[i] > 0.0f ? gy[i] : (x[i] < 0.0f ? -gy[i] : 0.0f);
    break;
  case MRL__LEAKY_RELU:
    for (i = 0; i < n; i++) ga[i] += x[i] > 0.0f ? gy[i] : gy[i] * s;
    break;
  case MRL__ELU: /* below 0: d/dx alpha (e^x - 1) = y + alpha */
    for (i = 0; i < n; i++) ga[i] += x[i] > 0.0f ? gy[i] : gy[i] * (o[i] + s);
    break;
  case MRL__GELU:
    for (i = 0; i < n; i++)
      ga[i] +=
          gy[i] * (mrl__gelu_cdf(x[i]) + x[i] * 0.39894228040143268f * expf(-0.5f * x[i] * x[i]));
    break;
  case MRL__SOFTPLUS: /* linear above the threshold 20, as PyTorch */
    for (i = 0; i < n; i++) ga[i] += x[i] > 20.0f ? gy[i] : gy[i] * mrl_sigmoidf(x[i]);
    break;
  case MRL__SILU:
    for (i = 0; i < n; i++) {
      float sg = mrl_sigmoidf(x[i]);
      ga[i] += gy[i] * sg * (1.0f + x[i] * (1.0f - sg));
    }
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
  case MRL__SCALE: i = 0;
#ifdef MRL__HAVE_F4
    for (; i + 4 <= n; i += 4) {
      mrl__f4 v;
      memcpy(&v, x + i, sizeof v);
      v = v * p0;
      memcpy(o + i, &v, sizeof v);
    }
#endif
    for (; i < n; i++) o[i] = x[i] * p0;
    break;
  case MRL__ADD_SCALAR:
    for (i = 0; i < n; i++) o[i] = x[i] + p0;
    break;
  case MRL__SQUARE: i = 0;
#ifdef MRL__HAVE_F4
    for (; i + 4 <= n; i += 4) {
      mrl__f4 v;
      memcpy(&v, x + i, sizeof v);
      v = v * v;
      memcpy(o + i, &v, sizeof v);
    }
#endif
    for (; i < n; i++) o[i] = x[i] * x[i];
    break;
  case MRL__EXP:
    for (i = 0; i < n; i++) o[i] = expf(x[i]);
    break;
  case MRL__LOG:
    for (i = 0; i < n; i++) o[i] = logf(x[i]);
    break;
  case MRL__TANH: mrl__tanh_n(x, o, n); break;
  case MRL__SIGMOID: mrl__sigmoid_n(x, o, n); break;
  case MRL__RELU: mrl__relu_n(x, o, (size_t)n); break;
  case MRL__CLAMP:
    for (i = 0; i < n; i++) o[i] = x[i] < p0 ? p0 : (x[i] > p1 ? p1 : x[i]);
    break;
  case MRL__SQRT:
    for (i = 0; i < n; i++) o[i] = sqrtf(x[i]);
    break;
  case MRL__POW:
    for (i = 0; i < n; i++) o[i] = powf(x[i], p0);
    break;
  case MRL__ABS:
    for (i = 0; i < n; i++) o[i] = fabsf(x[i]);
    break;
  case MRL__LEAKY_RELU:
    for (i = 0; i < n; i++) o[i] = x[i] > 0.0f ? x[i] : x[i] * p0;
    break;
  case MRL__ELU:
    for (i = 0; i < n; i++) o[i] = x[i] > 0.0f ? x[i] : p0 * expm1f(x[i]);
    break;
  case MRL__GELU:
    for (i = 0; i < n; i++) o[i] = x[i] * mrl__gelu_cdf(x[i]);
    break;
  case MRL__SOFTPLUS:
    for (i = 0; i < n; i++) o[i] = x[i] > 20.0f ? x[i] : log1pf(expf(x[i]));
    break;
  case MRL__SILU:
    for (i = 0; i < n; i++) o[i] = x[i] * mrl_sigmoidf(x[i]);
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
MRL_DEF mrl_tensor *mrl_sqrt(mrl_graph *g, mrl_tensor *a) {
  return mrl__unary(g, a, MRL__SQRT, 0.0f, 0.0f, "sqrt");
}
MRL_DEF mrl_tensor *mrl_pow(mrl_graph *g, mrl_tensor *a, float p) {
  return mrl__unary(g, a, MRL__POW, p, 0.0f, "pow");
}
MRL_DEF mrl_tensor *mrl_abs(mrl_graph *g, mrl_tensor *a) {
  return mrl__unary(g, a, MRL__ABS, 0.0f, 0.0f, "abs");
}
MRL_DEF mrl_tensor *mrl_leaky_relu(mrl_graph *g, mrl_tensor *a, float negative_slope) {
  return mrl__unary(g, a, MRL__LEAKY_RELU, negative_slope, 0.0f, "leaky_relu");
}
MRL_DEF mrl_tensor *mrl_elu(mrl_graph *g, mrl_tensor *a, float alpha) {
  return mrl__unary(g, a, MRL__ELU, alpha, 0.0f, "elu");
}
MRL_DEF mrl_tensor *mrl_gelu(mrl_graph *g, mrl_tensor *a) {
  return mrl__unary(g, a, MRL__GELU, 0.0f, 0.0f, "gelu");
}
MRL_DEF mrl_tensor *mrl_softplus(mrl_graph *g, mrl_tensor *a) {
  return mrl__unary(g, a, MRL__SOFTPLUS, 0.0f, 0.0f, "softplus");
}
MRL_DEF mrl_tensor *mrl_silu(mrl_graph *g, mrl_tensor *a) {
  return mrl__unary(g, a, MRL__SILU, 0.0f, 0.0f, "silu");
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

/* ======================================================================
 * General ops: broadcasting, axes, shapes, indexing. >>general
 * Shapes are handled as MRL_MAX_DIMS-D, left-padded with 1s, so one set of
 * four nested loops with per-operand element strides covers every rank.
 * ====================================================================== */

/* Left-pads a shape to MRL_MAX_DIMS dimensions with 1s. */
static void mrl__pad4(const int *shape, int ndim, int o4[MRL_MAX_DIMS]) {
  int d, off = MRL_MAX_DIMS - ndim;
  for (d = 0; d < MRL_MAX_DIMS; d++) o4[d] = d >= off ? shape[d - off] : 1;
}

/* Row-major element strides of a padded shape. */
static void mrl__cstrides(const int o4[MRL_MAX_DIMS], int st[MRL_MAX_DIMS]) {
  int d, s = 1;
  for (d = MRL_MAX_DIMS - 1; d >= 0; d--) {
    st[d] = s;
    s *= o4[d];
  }
}

/* Strides of t inside a broadcast result: 0 along its size-1 dimensions. */
static void mrl__bstrides(const mrl_tensor *t, int st[MRL_MAX_DIMS]) {
  int t4[MRL_MAX_DIMS], d;
  mrl__pad4(t->shape, t->ndim, t4);
  mrl__cstrides(t4, st);
  for (d = 0; d < MRL_MAX_DIMS; d++)
    if (t4[d] == 1) st[d] = 0;
}

/* NumPy broadcasting of two shapes (aligned at the right; each pair of
 * dimensions equal or one of them 1). Returns 0 when they do not broadcast. */
static int mrl__broadcast_shape(const int *sa, int na, const int *sb, int nb, int *out, int *nout) {
  int n = na > nb ? na : nb, d;
  for (d = 0; d < n; d++) {
    int ia = na - n + d, ib = nb - n + d;
    int da = ia >= 0 ? sa[ia] : 1, db = ib >= 0 ? sb[ib] : 1;
    if (da != db && da != 1 && db != 1) return 0;
    out[d] = da == 1 ? db : da;
  }
  *nout = n;
  return 1;
}

/* dst = src (add = 0) or dst += src (add = 1) over the padded shape n4, each
 * side with its own element strides. Fixed loop order: deterministic sums. */
static void mrl__strided_copy(const int n4[MRL_MAX_DIMS], const float *src,
                              const int ss[MRL_MAX_DIMS], float *dst, const int ds[MRL_MAX_DIMS],
                              int add) {
  int i0, i1, i2, i3;
  for (i0 = 0; i0 < n4[0]; i0++)
    for (i1 = 0; i1 < n4[1]; i1++)
      for (i2 = 0; i2 < n4[2]; i2++) {
        const float *s = src + (size_t)i0 * ss[0] + (size_t)i1 * ss[1] + (size_t)i2 * ss[2];
        float *d = dst + (size_t)i0 * ds[0] + (size_t)i1 * ds[1] + (size_t)i2 * ds[2];
        if (ss[3] == 1 && ds[3] == 1) { /* contiguous rows (slices, concat): block copies */
          i3 = 0;
          if (!add) {
            memcpy(d, s, sizeof(float) * (size_t)n4[3]);
            continue;
          }
#ifdef MRL__HAVE_F4
          for (; i3 + 4 <= n4[3]; i3 += 4) {
            mrl__f4 a, b;
            memcpy(&a, d + i3, sizeof a);
            memcpy(&b, s + i3, sizeof b);
            a += b;
            memcpy(d + i3, &a, sizeof a);
          }
#endif
          for (; i3 < n4[3]; i3++) d[i3] += s[i3];
        } else if (add)
          for (i3 = 0; i3 < n4[3]; i3++) d[(size_t)i3 * ds[3]] += s[(size_t)i3 * ss[3]];
        else
          for (i3 = 0; i3 < n4[3]; i3++) d[(size_t)i3 * ds[3]] = s[(size_t)i3 * ss[3]];
      }
}

/* Normalises a Python-style axis (-1 = last) for a tensor of ndim dimensions. */
static int mrl__axis(const char *op, const mrl_tensor *x, int axis, int ndim, const char *file,
                     int line) {
  int a = axis < 0 ? axis + ndim : axis;
  if (a < 0 || a >= ndim) {
    char what[80];
    snprintf(what, sizeof what, "axis %d out of range for %d dimensions", axis, ndim);
    mrl_shape_fail(op, what, x, NULL, file, line);
  }
  return a;
}
#define MRL__AXIS(op, x, axis, ndim) mrl__axis(op, x, axis, ndim, __FILE__, __LINE__)

/* An index outside [0, limit) is a programmer error like a wrong shape. */
static void mrl__index_check(const char *op, const mrl_tensor *x, int index, int pos, int limit,
                             const char *file, int line) {
  if (index < 0 || index >= limit) {
    char what[96];
    snprintf(what, sizeof what, "index %d at position %d outside [0,%d)", index, pos, limit);
    mrl_shape_fail(op, what, x, NULL, file, line);
  }
}
#define MRL__INDEX_CHECK(op, x, index, pos, limit)                                                 \
  mrl__index_check(op, x, index, pos, limit, __FILE__, __LINE__)

/* x viewed as [outer, n, inner] around axis. */
static void mrl__split(const mrl_tensor *x, int axis, int *outer, int *n, int *inner) {
  int d;
  *outer = 1;
  *inner = 1;
  for (d = 0; d < axis; d++) *outer *= x->shape[d];
  *n = x->shape[axis];
  for (d = axis + 1; d < x->ndim; d++) *inner *= x->shape[d];
}

/* Integer array copied into the arena (kept for backward). NULL when full. */
static int *mrl__copy_ints(mrl_graph *g, const int *src, int n) {
  int *p = (int *)mrl_graph_alloc(g, sizeof(int) * (size_t)(n > 0 ? n : 1));
  if (p && n > 0) memcpy(p, src, sizeof(int) * (size_t)n);
  return p;
}

/* ---- elementwise binary ops with broadcasting ---- >>binary */

enum { MRL__ADD, MRL__SUB, MRL__MUL, MRL__DIV, MRL__MIN, MRL__MAX, MRL__WHERE };

/* One output row: y[j] = f(a[j*sa], b[j*sb]) (m: the where-mask). */
static void mrl__bin_row(int kind, int n, const float *a, int sa, const float *b, int sb,
                         const float *m, int sm, float *y) {
  int j;
  if (sa == 1 && sb == 1 && kind <= MRL__MUL) { /* contiguous: four lanes, then the tail */
    j = 0;
#ifdef MRL__HAVE_F4 /* by hand: -O2 does not vectorise loops that need alias checks */
    for (; j + 4 <= n; j += 4) {
      mrl__f4 va, vb;
      memcpy(&va, a + j, sizeof va);
      memcpy(&vb, b + j, sizeof vb);
      va = kind == MRL__ADD ? va + vb : (kind == MRL__SUB ? va - vb : va * vb);
      memcpy(y + j, &va, sizeof va);
    }
#endif
    if (kind == MRL__ADD)
      for (; j < n; j++) y[j] = a[j] + b[j];
    else if (kind == MRL__SUB)
      for (; j < n; j++) y[j] = a[j] - b[j];
    else
      for (; j < n; j++) y[j] = a[j] * b[j];
    return;
  }
  switch (kind) {
  case MRL__ADD:
    for (j = 0; j < n; j++) y[j] = a[(size_t)j * sa] + b[(size_t)j * sb];
    break;
  case MRL__SUB:
    for (j = 0; j < n; j++) y[j] = a[(size_t)j * sa] - b[(size_t)j * sb];
    break;
  case MRL__MUL:
    for (j = 0; j < n; j++) y[j] = a[(size_t)j * sa] * b[(size_t)j * sb];
    break;
  case MRL__DIV:
    for (j = 0; j < n; j++) y[j] = a[(size_t)j * sa] / b[(size_t)j * sb];
    break;
  case MRL__MIN:
    for (j = 0; j < n; j++) {
      float av = a[(size_t)j * sa], bv = b[(size_t)j * sb];
      y[j] = av < bv ? av : bv;
    }
    break;
  case MRL__MAX:
    for (j = 0; j < n; j++) {
      float av = a[(size_t)j * sa], bv = b[(size_t)j * sb];
      y[j] = av > bv ? av : bv;
    }
    break;
  default:
    for (j = 0; j < n; j++)
      y[j] = m[(size_t)j * sm] != 0.0f ? a[(size_t)j * sa] : b[(size_t)j * sb];
    break;
  }
}

/* One output row of the backward pass; ga/gb NULL when not wanted. A
 * broadcast operand (stride 0) accumulates the row in order. */
static void mrl__bin_row_back(int kind, int n, const float *a, int sa, const float *b, int sb,
                              const float *m, int sm, const float *gy, float *ga, float *gb) {
  int j;
  if (sa == 1 && sb == 1 && kind <= MRL__MUL) { /* contiguous: four lanes, then the tail */
    j = 0;
#ifdef MRL__HAVE_F4
    for (; ga && j + 4 <= n; j += 4) {
      mrl__f4 g, v, o;
      memcpy(&g, ga + j, sizeof g);
      memcpy(&v, gy + j, sizeof v);
      if (kind == MRL__MUL) {
        memcpy(&o, b + j, sizeof o);
        v = v * o;
      }
      g += v;
      memcpy(ga + j, &g, sizeof g);
    }
#endif
    if (ga && kind == MRL__MUL)
      for (; j < n; j++) ga[j] += gy[j] * b[j];
    else if (ga)
      for (; j < n; j++) ga[j] += gy[j];
    j = 0;
#ifdef MRL__HAVE_F4
    for (; gb && j + 4 <= n; j += 4) {
      mrl__f4 g, v, o;
      memcpy(&g, gb + j, sizeof g);
      memcpy(&v, gy + j, sizeof v);
      if (kind == MRL__MUL) {
        memcpy(&o, a + j, sizeof o);
        v = v * o;
      }
      if (kind == MRL__SUB)
        g -= v;
      else
        g += v;
      memcpy(gb + j, &g, sizeof g);
    }
#endif
    if (gb && kind == MRL__MUL)
      for (; j < n; j++) gb[j] += gy[j] * a[j];
    else if (gb && kind == MRL__SUB)
      for (; j < n; j++) gb[j] -= gy[j];
    else if (gb)
      for (; j < n; j++) gb[j] += gy[j];
    return;
  }
  for (j = 0; j < n; j++) {
    size_t ia = (size_t)j * sa, ib = (size_t)j * sb;
    float gv = gy[j], da, db;
    switch (kind) {
    case MRL__ADD:
      da = gv;
      db = gv;
      break;
    case MRL__SUB:
      da = gv;
      db = -gv;
      break;
    case MRL__MUL:
      da = gv * b[ib];
      db = gv * a[ia];
      break;
    case MRL__DIV:
      da = gv / b[ib];
      db = -gv * a[ia] / (b[ib] * b[ib]);
      break;
    case MRL__MIN:
    case MRL__MAX: { /* ties split the gradient evenly (PyTorch >= 1.7) */
      float av = a[ia], bv = b[ib];
      float w = av == bv ? 0.5f : ((kind == MRL__MAX ? av > bv : av < bv) ? 1.0f : 0.0f);
      da = gv * w;
      db = gv * (1.0f - w);
      break;
    }
    default:
      da = m[(size_t)j * sm] != 0.0f ? gv : 0.0f;
      db = gv - da;
      break;
    }
    if (ga) ga[ia] += da;
    if (gb) gb[ib] += db;
  }
}

static void mrl__bin_loop(int kind, const mrl_tensor *a, const mrl_tensor *b, const mrl_tensor *m,
                          const mrl_tensor *y, int backward) {
  int o4[MRL_MAX_DIMS], sa[MRL_MAX_DIMS], sb[MRL_MAX_DIMS], sm[MRL_MAX_DIMS], i0, i1, i2;
  if (a->size == y->size && b->size == y->size && (!m || m->size == y->size)) {
    /* no broadcasting: one contiguous row (the common case, vectorisable) */
    const float *mp = m ? m->data : NULL;
    if (!backward)
      mrl__bin_row(kind, y->size, a->data, 1, b->data, 1, mp, 1, y->data);
    else
      mrl__bin_row_back(kind, y->size, a->data, 1, b->data, 1, mp, 1, y->grad, a->grad, b->grad);
    return;
  }
  mrl__pad4(y->shape, y->ndim, o4);
  mrl__bstrides(a, sa);
  mrl__bstrides(b, sb);
  if (m)
    mrl__bstrides(m, sm);
  else
    memset(sm, 0, sizeof sm);
  for (i0 = 0; i0 < o4[0]; i0++)
    for (i1 = 0; i1 < o4[1]; i1++)
      for (i2 = 0; i2 < o4[2]; i2++) {
        size_t oa = (size_t)i0 * sa[0] + (size_t)i1 * sa[1] + (size_t)i2 * sa[2];
        size_t ob = (size_t)i0 * sb[0] + (size_t)i1 * sb[1] + (size_t)i2 * sb[2];
        size_t om = (size_t)i0 * sm[0] + (size_t)i1 * sm[1] + (size_t)i2 * sm[2];
        size_t oy = (((size_t)i0 * o4[1] + i1) * o4[2] + i2) * o4[3];
        const float *mp = m ? m->data + om : NULL;
        if (!backward)
          mrl__bin_row(kind, o4[3], a->data + oa, sa[3], b->data + ob, sb[3], mp, sm[3],
                       y->data + oy);
        else
          mrl__bin_row_back(kind, o4[3], a->data + oa, sa[3], b->data + ob, sb[3], mp, sm[3],
                            y->grad + oy, a->grad ? a->grad + oa : NULL,
                            b->grad ? b->grad + ob : NULL);
      }
}

static void mrl__binary_backward(mrl_node *nd) {
  mrl__bin_loop(nd->i[0], nd->in[0], nd->in[1], nd->in[2], nd->out, 1);
}

/* m: the mask of where (NULL otherwise); it must broadcast to a op b's shape. */
static mrl_tensor *mrl__binary(mrl_graph *g, mrl_tensor *a, mrl_tensor *b, mrl_tensor *m, int kind,
                               const char *op) {
  int shape[MRL_MAX_DIMS], ndim;
  mrl_tensor *y;
  mrl_node *nd;
  if (!a || !b || (kind == MRL__WHERE && !m)) return NULL;
  MRL_SHAPE_CHECK(mrl__broadcast_shape(a->shape, a->ndim, b->shape, b->ndim, shape, &ndim), op,
                  "shapes do not broadcast (NumPy rules)", a, b);
  if (m) {
    int s2[MRL_MAX_DIMS], n2, d, same;
    same = mrl__broadcast_shape(shape, ndim, m->shape, m->ndim, s2, &n2) && n2 == ndim;
    for (d = 0; same && d < ndim; d++) same = s2[d] == shape[d];
    MRL_SHAPE_CHECK(same, op, "mask does not broadcast to the shape of the values", m, a);
  }
  y = mrl_op_output(g, ndim, shape, mrl_graph_wants_grad(g, a, b));
  if (!y) return NULL;
  mrl__bin_loop(kind, a, b, m, y, 0);
  MRL__FINITE(op, y, a, b);
  if ((nd = mrl_graph_record(g, op, mrl__binary_backward, y)) != NULL) {
    nd->in[0] = a;
    nd->in[1] = b;
    nd->in[2] = m;
    nd->i[0] = kind;
  }
  return y;
}

MRL_DEF mrl_tensor *mrl_add(mrl_graph *g, mrl_tensor *a, mrl_tensor *b) {
  return mrl__binary(g, a, b, NULL, MRL__ADD, "add");
}
MRL_DEF mrl_tensor *mrl_sub(mrl_graph *g, mrl_tensor *a, mrl_tensor *b) {
  return mrl__binary(g, a, b, NULL, MRL__SUB, "sub");
}
MRL_DEF mrl_tensor *mrl_mul(mrl_graph *g, mrl_tensor *a, mrl_tensor *b) {
  return mrl__binary(g, a, b, NULL, MRL__MUL, "mul");
}
MRL_DEF mrl_tensor *mrl_div(mrl_graph *g, mrl_tensor *a, mrl_tensor *b) {
  return mrl__binary(g, a, b, NULL, MRL__DIV, "div");
}
MRL_DEF mrl_tensor *mrl_minimum(mrl_graph *g, mrl_tensor *a, mrl_tensor *b) {
  return mrl__binary(g, a, b, NULL, MRL__MIN, "minimum");
}
MRL_DEF mrl_tensor *mrl_maximum(mrl_graph *g, mrl_tensor *a, mrl_tensor *b) {
  return mrl__binary(g, a, b, NULL, MRL__MAX, "maximum");
}
MRL_DEF mrl_tensor *mrl_where(mrl_graph *g, mrl_tensor *mask, mrl_tensor *a, mrl_tensor *b) {
  return mrl__binary(g, a, b, mask, MRL__WHERE, "where");
}

MRL_DEF mrl_tensor *mrl_where_int(mrl_graph *g, const int *mask, mrl_tensor *a, mrl_tensor *b) {
  int shape[MRL_MAX_DIMS], ndim, i;
  mrl_tensor *m;
  if (!a || !b) return NULL;
  MRL_SHAPE_CHECK(mrl__broadcast_shape(a->shape, a->ndim, b->shape, b->ndim, shape, &ndim),
                  "where_int", "shapes do not broadcast (NumPy rules)", a, b);
  m = mrl_tensor_new(g, ndim, shape, 0);
  if (!m) return NULL;
  for (i = 0; i < m->size; i++) m->data[i] = mask[i] != 0 ? 1.0f : 0.0f;
  return mrl__binary(g, a, b, m, MRL__WHERE, "where_int");
}

/* ---- reductions along an axis ---- >>reductions */

enum { MRL__R_SUM, MRL__R_MEAN, MRL__R_MAX, MRL__R_LSE, MRL__R_VAR };

/* i[0] kind, i[1] outer, i[2] n, i[3] inner; f[0] scale (1/n, 1/(n - correction));
 * index: argmax for max. */
static void mrl__reduce_backward(mrl_node *nd) {
  mrl_tensor *x = nd->in[0], *y = nd->out;
  int kind = nd->i[0], outer = nd->i[1], n = nd->i[2], inner = nd->i[3], o, j, k;
  float s = nd->f[0];
  if (!x->grad) return;
  for (o = 0; o < outer; o++)
    for (j = 0; j < inner; j++) {
      size_t r = (size_t)o * inner + j, base = (size_t)o * n * inner + j;
      const float *xr = x->data + base;
      float *gx = x->grad + base, gy = y->grad[r], yv = y->data[r];
      double mean = 0.0;
      switch (kind) {
      case MRL__R_SUM:
      case MRL__R_MEAN: k = 0;
#ifdef MRL__HAVE_F4
        if (inner == 1) /* a whole row: four lanes of the same formula */
          for (; k + 4 <= n; k += 4) {
            mrl__f4 v;
            memcpy(&v, gx + k, sizeof v);
            v += gy * s;
            memcpy(gx + k, &v, sizeof v);
          }
#endif
        for (; k < n; k++) gx[(size_t)k * inner] += gy * s;
        break;
      case MRL__R_MAX: gx[(size_t)nd->index[r] * inner] += gy; break;
      case MRL__R_LSE:
        for (k = 0; k < n; k++) gx[(size_t)k * inner] += gy * expf(xr[(size_t)k * inner] - yv);
        break;
      default: /* variance: 2 (x - mean) / (n - correction) */
        for (k = 0; k < n; k++) mean += xr[(size_t)k * inner];
        mean /= n;
        for (k = 0; k < n; k++)
          gx[(size_t)k * inner] += gy * 2.0f * s * (float)(xr[(size_t)k * inner] - mean);
        break;
      }
    }
}

static mrl_tensor *mrl__reduce(mrl_graph *g, mrl_tensor *x, int axis, int keepdim, int all,
                               int kind, int correction, int *argmax_out, const char *op) {
  int shape[MRL_MAX_DIMS], ndim, outer, n, inner, o, j, k, d, *arg = NULL;
  mrl_tensor *y;
  mrl_node *nd;
  float s = 1.0f;
  if (!x) return NULL;
  if (all) {
    outer = 1;
    n = x->size;
    inner = 1;
    ndim = 1;
    shape[0] = 1;
  } else {
    axis = MRL__AXIS(op, x, axis, x->ndim);
    mrl__split(x, axis, &outer, &n, &inner);
    ndim = 0;
    for (d = 0; d < x->ndim; d++) {
      if (d != axis)
        shape[ndim++] = x->shape[d];
      else if (keepdim)
        shape[ndim++] = 1;
    }
    if (ndim == 0) shape[ndim++] = 1; /* a 1-D tensor reduces to [1] */
  }
  if (kind == MRL__R_MAX || kind == MRL__R_LSE)
    MRL_SHAPE_CHECK(n >= 1, op, "cannot reduce an empty dimension", x, NULL);
  if (kind == MRL__R_VAR)
    MRL_SHAPE_CHECK(n > correction && correction >= 0, op,
                    "variance needs more elements than the correction", x, NULL);
  if (kind == MRL__R_MEAN) s = 1.0f / (float)(n ? n : 1);
  if (kind == MRL__R_VAR) s = 1.0f / (float)(n - correction);
  if (kind == MRL__R_MAX) {
    arg = (int *)mrl_graph_alloc(g, sizeof(int) * (size_t)(outer * inner > 0 ? outer * inner : 1));
    if (!arg) return NULL;
  }
  y = mrl_op_output(g, ndim, shape, mrl_graph_wants_grad(g, x, NULL));
  if (!y) return NULL;
  for (o = 0; o < outer; o++)
    for (j = 0; j < inner; j++) {
      size_t r = (size_t)o * inner + j;
      const float *xr = x->data + (size_t)o * n * inner + j;
      double acc = 0.0, mean = 0.0; /* double: long sums stay exact enough */
      float mx;
      int am = 0;
      switch (kind) {
      case MRL__R_SUM:
      case MRL__R_MEAN:
        for (k = 0; k < n; k++) acc += xr[(size_t)k * inner];
        y->data[r] = (float)acc * s;
        break;
      case MRL__R_MAX: /* first index of the maximum, as torch.max(dim) */
        mx = xr[0];
        for (k = 1; k < n; k++)
          if (xr[(size_t)k * inner] > mx) {
            mx = xr[(size_t)k * inner];
            am = k;
          }
        y->data[r] = mx;
        arg[r] = am;
        break;
      case MRL__R_LSE:
        mx = xr[0];
        for (k = 1; k < n; k++)
          if (xr[(size_t)k * inner] > mx) mx = xr[(size_t)k * inner];
        if (isinf(mx)) {
          y->data[r] = mx; /* all -inf (or some +inf): the limit, not NaN */
          break;
        }
        for (k = 0; k < n; k++) acc += expf(xr[(size_t)k * inner] - mx);
        y->data[r] = mx + (float)log(acc);
        break;
      default:
        for (k = 0; k < n; k++) mean += xr[(size_t)k * inner];
        mean /= n;
        for (k = 0; k < n; k++) {
          double dv = xr[(size_t)k * inner] - mean;
          acc += dv * dv;
        }
        y->data[r] = (float)(acc / (double)(n - correction));
        break;
      }
    }
  if (argmax_out && arg) memcpy(argmax_out, arg, sizeof(int) * (size_t)(outer * inner));
  MRL__FINITE(op, y, x, NULL);
  if ((nd = mrl_graph_record(g, op, mrl__reduce_backward, y)) != NULL) {
    nd->in[0] = x;
    nd->i[0] = kind;
    nd->i[1] = outer;
    nd->i[2] = n;
    nd->i[3] = inner;
    nd->f[0] = s;
    nd->index = arg;
  }
  return y;
}

MRL_DEF mrl_tensor *mrl_sum(mrl_graph *g, mrl_tensor *a) {
  return mrl__reduce(g, a, 0, 0, 1, MRL__R_SUM, 0, NULL, "sum");
}
MRL_DEF mrl_tensor *mrl_mean(mrl_graph *g, mrl_tensor *a) {
  return mrl__reduce(g, a, 0, 0, 1, MRL__R_MEAN, 0, NULL, "mean");
}
MRL_DEF mrl_tensor *mrl_max(mrl_graph *g, mrl_tensor *a, int *argmax) {
  return mrl__reduce(g, a, 0, 0, 1, MRL__R_MAX, 0, argmax, "max");
}
MRL_DEF mrl_tensor *mrl_logsumexp(mrl_graph *g, mrl_tensor *a) {
  return mrl__reduce(g, a, 0, 0, 1, MRL__R_LSE, 0, NULL, "logsumexp");
}
MRL_DEF mrl_tensor *mrl_var(mrl_graph *g, mrl_tensor *a, int correction) {
  return mrl__reduce(g, a, 0, 0, 1, MRL__R_VAR, correction, NULL, "var");
}
MRL_DEF mrl_tensor *mrl_sum_axis(mrl_graph *g, mrl_tensor *x, int axis, int keepdim) {
  return mrl__reduce(g, x, axis, keepdim, 0, MRL__R_SUM, 0, NULL, "sum_axis");
}
MRL_DEF mrl_tensor *mrl_mean_axis(mrl_graph *g, mrl_tensor *x, int axis, int keepdim) {
  return mrl__reduce(g, x, axis, keepdim, 0, MRL__R_MEAN, 0, NULL, "mean_axis");
}
MRL_DEF mrl_tensor *mrl_max_axis(mrl_graph *g, mrl_tensor *x, int axis, int keepdim, int *argmax) {
  return mrl__reduce(g, x, axis, keepdim, 0, MRL__R_MAX, 0, argmax, "max_axis");
}
MRL_DEF mrl_tensor *mrl_logsumexp_axis(mrl_graph *g, mrl_tensor *x, int axis, int keepdim) {
  return mrl__reduce(g, x, axis, keepdim, 0, MRL__R_LSE, 0, NULL, "logsumexp_axis");
}
MRL_DEF mrl_tensor *mrl_var_axis(mrl_graph *g, mrl_tensor *x, int axis, int keepdim,
                                 int correction) {
  return mrl__reduce(g, x, axis, keepdim, 0, MRL__R_VAR, correction, NULL, "var_axis");
}
MRL_DEF mrl_tensor *mrl_sum_rows(mrl_graph *g, mrl_tensor *a) {
  if (a) MRL_SHAPE_CHECK(a->ndim >= 2, "sum_rows", "needs at least 2 dimensions", a, NULL);
  return mrl__reduce(g, a, -1, 0, 0, MRL__R_SUM, 0, NULL, "sum_rows");
}
MRL_DEF mrl_tensor *mrl_mean_rows(mrl_graph *g, mrl_tensor *a) {
  if (a) MRL_SHAPE_CHECK(a->ndim >= 2, "mean_rows", "needs at least 2 dimensions", a, NULL);
  return mrl__reduce(g, a, -1, 0, 0, MRL__R_MEAN, 0, NULL, "mean_rows");
}

/* ---- softmax / log-softmax along an axis, with an optional mask ---- >>softmax */

/* What log_softmax writes at masked entries: finite, so p * log p stays 0
 * and MRL_CHECK_FINITE does not fire; exp() of it is exactly 0. */
#define MRL__MASKED_LOGP (-1e8f)

/* i[0] is_log, i[1] outer, i[2] n, i[3] inner; extra[0]: the keep-mask
 * expanded to x's shape (unsigned char), or NULL. */
static void mrl__softmax_backward(mrl_node *nd) {
  mrl_tensor *x = nd->in[0], *y = nd->out;
  const unsigned char *keep = (const unsigned char *)(void *)nd->extra[0];
  int is_log = nd->i[0], outer = nd->i[1], n = nd->i[2], inner = nd->i[3], o, j, k;
  if (!x->grad) return;
  if (!keep && inner == 1) { /* rows along the last axis: contiguous loops */
    for (o = 0; o < outer; o++) {
      const float *yr = y->data + (size_t)o * n, *gr = y->grad + (size_t)o * n;
      float *gx = x->grad + (size_t)o * n, acc = 0.0f;
      if (is_log) {
        for (k = 0; k < n; k++) acc += gr[k];
        for (k = 0; k < n; k++) gx[k] += gr[k] - expf(yr[k]) * acc;
      } else {
        for (k = 0; k < n; k++) acc += gr[k] * yr[k];
        for (k = 0; k < n; k++) gx[k] += yr[k] * (gr[k] - acc);
      }
    }
    return;
  }
  for (o = 0; o < outer; o++)
    for (j = 0; j < inner; j++) {
      size_t base = (size_t)o * n * inner + j;
      const float *yr = y->data + base, *gr = y->grad + base;
      const unsigned char *kr = keep ? keep + base : NULL;
      float *gx = x->grad + base, acc = 0.0f;
      if (is_log) { /* dx = gy - softmax * sum(gy) over kept entries */
        for (k = 0; k < n; k++)
          if (!kr || kr[(size_t)k * inner]) acc += gr[(size_t)k * inner];
        for (k = 0; k < n; k++)
          if (!kr || kr[(size_t)k * inner])
            gx[(size_t)k * inner] += gr[(size_t)k * inner] - expf(yr[(size_t)k * inner]) * acc;
      } else { /* dx = y (gy - sum(gy y)); masked y are 0 */
        for (k = 0; k < n; k++) acc += gr[(size_t)k * inner] * yr[(size_t)k * inner];
        for (k = 0; k < n; k++)
          gx[(size_t)k * inner] += yr[(size_t)k * inner] * (gr[(size_t)k * inner] - acc);
      }
    }
}

static mrl_tensor *mrl__softmax(mrl_graph *g, mrl_tensor *x, int axis, mrl_tensor *mask, int is_log,
                                const char *op) {
  int outer, n, inner, o, j, k;
  unsigned char *keep = NULL;
  mrl_tensor *y;
  mrl_node *nd;
  if (!x) return NULL;
  axis = MRL__AXIS(op, x, axis, x->ndim);
  mrl__split(x, axis, &outer, &n, &inner);
  if (mask) {
    int s2[MRL_MAX_DIMS], n2, d, same, x4[MRL_MAX_DIMS], ms[MRL_MAX_DIMS], i0, i1, i2, i3;
    same =
        mrl__broadcast_shape(x->shape, x->ndim, mask->shape, mask->ndim, s2, &n2) && n2 == x->ndim;
    for (d = 0; same && d < n2; d++) same = s2[d] == x->shape[d];
    MRL_SHAPE_CHECK(same, op, "mask does not broadcast to the input's shape", mask, x);
    keep = (unsigned char *)mrl_graph_alloc(g, (size_t)(x->size > 0 ? x->size : 1));
    if (!keep) return NULL;
    mrl__pad4(x->shape, x->ndim, x4);
    mrl__bstrides(mask, ms);
    k = 0;
    for (i0 = 0; i0 < x4[0]; i0++)
      for (i1 = 0; i1 < x4[1]; i1++)
        for (i2 = 0; i2 < x4[2]; i2++)
          for (i3 = 0; i3 < x4[3]; i3++)
            keep[k++] = mask->data[(size_t)i0 * ms[0] + (size_t)i1 * ms[1] + (size_t)i2 * ms[2] +
                                   (size_t)i3 * ms[3]] != 0.0f;
  }
  y = mrl_op_output(g, x->ndim, x->shape, mrl_graph_wants_grad(g, x, NULL));
  if (!y) return NULL;
  for (o = 0; !keep && inner == 1 && n > 0 && o < outer;
       o++) { /* last axis, no mask: contiguous rows */
    const float *xr = x->data + (size_t)o * n;
    float *yr = y->data + (size_t)o * n, mx = xr[0], s = 0.0f, lse;
    for (k = 1; k < n; k++)
      if (xr[k] > mx) mx = xr[k];
    for (k = 0; k < n; k++) s += expf(xr[k] - mx);
    lse = mx + logf(s);
    if (is_log)
      for (k = 0; k < n; k++) yr[k] = xr[k] - lse;
    else
      for (k = 0; k < n; k++) yr[k] = expf(xr[k] - mx) / s;
  }
  for (o = 0; (keep || inner != 1 || n == 0) && o < outer; o++)
    for (j = 0; j < inner; j++) {
      size_t base = (size_t)o * n * inner + j;
      const float *xr = x->data + base;
      const unsigned char *kr = keep ? keep + base : NULL;
      float *yr = y->data + base, mx = -INFINITY, s = 0.0f, lse;
      int any = 0;
      for (k = 0; k < n; k++)
        if (!kr || kr[(size_t)k * inner]) {
          float v = xr[(size_t)k * inner];
          if (!any || v > mx) mx = v;
          any = 1;
        }
      if (!any) { /* everything masked: probability 0 everywhere */
        for (k = 0; k < n; k++) yr[(size_t)k * inner] = is_log ? MRL__MASKED_LOGP : 0.0f;
        continue;
      }
      for (k = 0; k < n; k++)
        if (!kr || kr[(size_t)k * inner]) s += expf(xr[(size_t)k * inner] - mx);
      lse = mx + logf(s);
      for (k = 0; k < n; k++) {
        float v = xr[(size_t)k * inner];
        if (kr && !kr[(size_t)k * inner])
          yr[(size_t)k * inner] = is_log ? MRL__MASKED_LOGP : 0.0f;
        else
          yr[(size_t)k * inner] = is_log ? v - lse : expf(v - mx) / s;
      }
    }
  MRL__FINITE(op, y, x, mask);
  if ((nd = mrl_graph_record(g, op, mrl__softmax_backward, y)) != NULL) {
    nd->in[0] = x;
    nd->extra[0] = (mrl_tensor *)(void *)keep;
    nd->i[0] = is_log;
    nd->i[1] = outer;
    nd->i[2] = n;
    nd->i[3] = inner;
  }
  return y;
}

MRL_DEF mrl_tensor *mrl_softmax(mrl_graph *g, mrl_tensor *x, int axis, mrl_tensor *mask) {
  return mrl__softmax(g, x, axis, mask, 0, "softmax");
}
MRL_DEF mrl_tensor *mrl_log_softmax_axis(mrl_graph *g, mrl_tensor *x, int axis, mrl_tensor *mask) {
  return mrl__softmax(g, x, axis, mask, 1, "log_softmax");
}
MRL_DEF mrl_tensor *mrl_log_softmax(mrl_graph *g, mrl_tensor *a) {
  return mrl__softmax(g, a, -1, NULL, 1, "log_softmax");
}

/* ---- fused multi-head attention ---- >>fused_attention
 * One (batch, head) at a time: S = Q Kᵀ by mrl_gemm straight from the
 * strided head columns, scaled and softmaxed in place (the same operations
 * per element as mrl_scale, mrl_add and mrl_softmax), then O = P V written
 * into the head's columns of the output. The backward pass is softmax's
 * y (g - sum g y) with four more products; nothing is permuted or copied. */

/* out[r] = sum_j d[r K + j] p[r K + j], one chain per row in increasing j,
 * for rows r < nr (up to 4), the rows side by side so that their chains
 * overlap (one row's chain alone waits on add latency). */
static void mrl__dot_rows4(int nr, const float *d, const float *p, int K, float out[4]) {
  const float *d0 = d, *d1 = d + (nr > 1 ? K : 0), *d2 = d + (nr > 2 ? 2 * K : 0);
  const float *d3 = d + (nr > 3 ? 3 * K : 0), *p0 = p, *p1 = p + (nr > 1 ? K : 0);
  const float *p2 = p + (nr > 2 ? 2 * K : 0), *p3 = p + (nr > 3 ? 3 * K : 0);
  float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
  int j;
  for (j = 0; j < K; j++) {
    a0 += d0[j] * p0[j];
    a1 += d1[j] * p1[j];
    a2 += d2[j] * p2[j];
    a3 += d3[j] * p3[j];
  }
  out[0] = a0;
  out[1] = a1;
  out[2] = a2;
  out[3] = a3;
}

/* in[0..3] q k v bias; extra[0] P, extra[1] one [T, K] scratch; i[0] heads,
 * i[1..3] the column offsets; f[0] scale */
static void mrl__attention_backward(mrl_node *nd) {
  mrl_tensor *q = nd->in[0], *k = nd->in[1], *v = nd->in[2], *bias = nd->in[3], *y = nd->out;
  const float *P = (const float *)(void *)nd->extra[0];
  float *dS = (float *)(void *)nd->extra[1], scale = nd->f[0];
  mrl_tensor *qr = nd->extra[2], *rk = nd->extra[3]; /* relative bias terms, or NULL */
  float *dbd = dS ? dS + (size_t)y->shape[1] * k->shape[1] : NULL;
  int H = nd->i[0], qc = nd->i[1], kc = nd->i[2], vc = nd->i[3];
  int B = y->shape[0], T = y->shape[1], E = y->shape[2], K = k->shape[1], D = E / H;
  int ldq = q->shape[2], ldk = k->shape[2], ldv = v->shape[2], b, h, t, j;
  int rel_grad = qr && (qr->grad || rk->grad);
  float accs[4];
  for (b = 0; b < B; b++)
    for (h = 0; h < H; h++) {
      size_t n = (size_t)b * H + h;
      const float *Pn = P + n * T * K, *gO = y->grad + (size_t)b * T * E + h * D;
      const float *qn = q->data + (size_t)b * T * ldq + qc + h * D;
      const float *kn = k->data + (size_t)b * K * ldk + kc + h * D;
      const float *vn = v->data + (size_t)b * K * ldv + vc + h * D;
      if (v->grad)
        mrl_gemm(1, 0, K, D, T, Pn, K, gO, E, 1.0f, v->grad + (size_t)b * K * ldv + vc + h * D,
                 ldv);
      if (!q->grad && !k->grad && !(bias && bias->grad) && !rel_grad) continue;
      mrl_gemm(0, 1, T, K, D, gO, E, vn, ldv, 0.0f, dS, K); /* dP */
      if (rel_grad) memset(dbd, 0, sizeof(float) * (size_t)T * K);
      for (t = 0; t < T; t++) {
        const float *pr = Pn + (size_t)t * K;
        float *dr = dS + (size_t)t * K, acc;
        if (t % 4 == 0) mrl__dot_rows4(T - t < 4 ? T - t : 4, dr, pr, K, accs);
        acc = accs[t % 4];
        for (j = 0; j < K; j++) dr[j] = pr[j] * (dr[j] - acc) * scale;
        if (bias && bias->grad) {
          float *gb = bias->grad + (n * T + t) * K;
          if (nd->f[1] != 0.0f) /* shifted: entry j came from column min(T-1-t+j, K-1) */
            for (j = 0; j < K; j++) gb[T - 1 - t + j < K ? T - 1 - t + j : K - 1] += dr[j];
          else
            for (j = 0; j < K; j++) gb[j] += dr[j];
        }
        if (rel_grad) {
          float *gb = dbd + (size_t)t * K;
          for (j = 0; j < K; j++) gb[T - 1 - t + j < K ? T - 1 - t + j : K - 1] += dr[j];
        }
      }
      if (rel_grad) { /* bd = qr_h rk_hᵀ: its two gradients */
        int ldr = rk->shape[1];
        if (qr->grad)
          mrl_gemm(0, 0, T, D, K, dbd, K, rk->data + h * D, ldr, 1.0f,
                   qr->grad + (size_t)b * T * E + h * D, E);
        if (rk->grad)
          mrl_gemm(1, 0, K, D, T, dbd, K, qr->data + (size_t)b * T * E + h * D, E, 1.0f,
                   rk->grad + h * D, ldr);
      }
      if (q->grad)
        mrl_gemm(0, 0, T, D, K, dS, K, kn, ldk, 1.0f, q->grad + (size_t)b * T * ldq + qc + h * D,
                 ldq);
      if (k->grad)
        mrl_gemm(1, 0, K, D, T, dS, K, qn, ldq, 1.0f, k->grad + (size_t)b * K * ldk + kc + h * D,
                 ldk);
    }
}

/* row[j] <- softmax over the kept j of scale * (row[j] + br[j]) (br NULL: no
 * bias; mr NULL: all kept, else entry j kept where mr[j * mst] != 0), in two
 * steps so that the exps of many rows run as one call (a row's alone waited
 * on their latency): mrl__attn_softmax_pre leaves row[j] - max in the row
 * and returns 0 when nothing is kept, then mrl__attn_softmax_post takes the
 * exps, sums and divides nr consecutive rows (a row with nothing kept is all
 * 0). Masked entries become -inf before the maximum, so exp gives exactly 0.
 * exp is Cephes' (mrl__exp_nonpos: the argument is never positive), in the
 * widest lanes the CPU has, the same bits on every path (of (x - max) - 0 =
 * x - max, so the same as exp(x - max)); with four-lane vectors and K >= 4 a
 * row sums in four lanes, then across them, else in order. */
static int mrl__attn_softmax_pre(float *row, const float *br, const float *mr, int mst, int K,
                                 float scale) {
  float mx = -INFINITY;
  int j = 0;
#ifdef MRL__HAVE_F4
  if (!mr || mst == 1)
    for (; j + 4 <= K; j += 4) {
      const mrl__f4 zero = {0.0f, 0.0f, 0.0f, 0.0f};
      const mrl__f4 ninf = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
      mrl__f4 v, p;
      memcpy(&v, row + j, sizeof v);
      if (br) {
        memcpy(&p, br + j, sizeof p);
        v += p;
      }
      v *= scale;
      if (mr) {
        memcpy(&p, mr + j, sizeof p);
        v = mrl__select4(p != zero, v, ninf);
      }
      memcpy(row + j, &v, sizeof v);
    }
#endif
  for (; j < K; j++) {
    float v = (br ? row[j] + br[j] : row[j]) * scale;
    row[j] = !mr || mr[(size_t)j * mst] != 0.0f ? v : -INFINITY;
  }
  j = 0;
#ifdef MRL__HAVE_F4
  if (K >= 4) {
    mrl__f4 m4, v;
    memcpy(&m4, row, sizeof m4);
    for (j = 4; j + 4 <= K; j += 4) {
      memcpy(&v, row + j, sizeof v);
      m4 = mrl__select4(v > m4, v, m4);
    }
    for (; j < K; j++) mx = row[j] > mx ? row[j] : mx;
    for (j = 0; j < 4; j++) mx = m4[j] > mx ? m4[j] : mx;
  }
#endif
  if (j == 0) /* no lanes ran */
    for (; j < K; j++) mx = row[j] > mx ? row[j] : mx;
  if (mx == -INFINITY) return 0; /* nothing kept */
  j = 0;
#ifdef MRL__HAVE_F4
  for (; j + 4 <= K; j += 4) {
    mrl__f4 v;
    memcpy(&v, row + j, sizeof v);
    v = v - mx;
    memcpy(row + j, &v, sizeof v);
  }
#endif
  for (; j < K; j++) row[j] = row[j] - mx;
  return 1;
}

static void mrl__attn_softmax_post(float *rows, int nr, int K, const unsigned char *live) {
  int t, j;
  mrl__expsub_n(rows, 0.0f, nr * K); /* every row at once */
  for (t = 0; t < nr; t++) {
    float *row = rows + (size_t)t * K, s = 0.0f;
    if (!live[t]) { /* nothing kept: probability 0 everywhere */
      memset(row, 0, sizeof(float) * (size_t)K);
      continue;
    }
    j = 0;
#ifdef MRL__HAVE_F4
    if (K >= 4) {
      mrl__f4 v, sum = {0.0f, 0.0f, 0.0f, 0.0f};
      for (j = 0; j + 4 <= K; j += 4) {
        memcpy(&v, row + j, sizeof v);
        sum += v;
      }
      s = (sum[0] + sum[1]) + (sum[2] + sum[3]);
    }
#endif
    for (; j < K; j++) s += row[j];
    j = 0;
#ifdef MRL__HAVE_F4
    for (; j + 4 <= K; j += 4) {
      mrl__f4 v;
      memcpy(&v, row + j, sizeof v);
      v = v / s;
      memcpy(row + j, &v, sizeof v);
    }
#endif
    for (; j < K; j++) row[j] = row[j] / s;
  }
}

/* qr, rk (both or neither): the bias is Transformer-XL's shifted qr_h rk_hᵀ */
static mrl_tensor *mrl__attention_impl(mrl_graph *g, mrl_tensor *q, int q_col, mrl_tensor *k,
                                       int k_col, mrl_tensor *v, int v_col, int embed_dim,
                                       int num_heads, float scale, mrl_tensor *bias,
                                       mrl_tensor *mask, int bias_shift, mrl_tensor *qr,
                                       mrl_tensor *rk) {
  static const char op[] = "attention"; /* an array: a static pointer would be writable data */
  int B, T, K, E = embed_dim, H = num_heads, D, b, h, t, shape[3], ms[MRL_MAX_DIMS];
  int ldq, ldk, ldv, wants;
  unsigned char live[16];
  float *P, *dS = NULL, *sb = NULL, *bdbuf = NULL;
  mrl_tensor *y;
  mrl_node *nd;
  if (!q || !k || !v) return NULL;
  MRL_SHAPE_CHECK(E > 0 && H > 0 && E % H == 0, op, "embed_dim must be a multiple of num_heads", q,
                  NULL);
  MRL_SHAPE_CHECK(q->ndim == 3 && q_col >= 0 && q_col + E <= q->shape[2], op,
                  "q must be [B, T, C] with columns q_col .. q_col+embed_dim", q, NULL);
  B = q->shape[0];
  T = q->shape[1];
  MRL_SHAPE_CHECK(k->ndim == 3 && k->shape[0] == B && k_col >= 0 && k_col + E <= k->shape[2], op,
                  "k must be [B, K, C] with q's B and columns k_col .. k_col+embed_dim", q, k);
  K = k->shape[1];
  MRL_SHAPE_CHECK(v->ndim == 3 && v->shape[0] == B && v->shape[1] == K && v_col >= 0 &&
                      v_col + E <= v->shape[2],
                  op, "v must be [B, K, C] with k's B and K and columns v_col .. v_col+embed_dim",
                  k, v);
  if (bias)
    MRL_SHAPE_CHECK(bias->ndim == 4 && bias->shape[0] == B && bias->shape[1] == H &&
                        bias->shape[2] == T && bias->shape[3] == K,
                    op, "bias must be [B, num_heads, T, K]", q, bias);
  MRL_SHAPE_CHECK(!bias_shift || ((bias || qr) && K >= T), op, "bias_shift needs a bias and K >= T",
                  q, k);
  if (qr) {
    MRL_SHAPE_CHECK(qr->ndim == 3 && qr->shape[0] == B && qr->shape[1] == T && qr->shape[2] == E,
                    op, "qr must be [B, T, embed_dim]", q, qr);
    MRL_SHAPE_CHECK(rk && rk->ndim == 2 && rk->shape[0] == K && rk->shape[1] == E, op,
                    "rk must be [K, embed_dim]", k, rk);
  }
  if (mask) {
    int m4[MRL_MAX_DIMS], x4[MRL_MAX_DIMS], d, ok = mask->ndim <= MRL_MAX_DIMS;
    x4[0] = B;
    x4[1] = H;
    x4[2] = T;
    x4[3] = K;
    if (ok) mrl__pad4(mask->shape, mask->ndim, m4);
    for (d = 0; ok && d < MRL_MAX_DIMS; d++) ok = m4[d] == x4[d] || m4[d] == 1;
    MRL_SHAPE_CHECK(ok, op, "mask must broadcast to [B, num_heads, T, K]", mask, q);
    mrl__bstrides(mask, ms);
  }
  D = E / H;
  ldq = q->shape[2];
  ldk = k->shape[2];
  ldv = v->shape[2];
  shape[0] = B;
  shape[1] = T;
  shape[2] = E;
  wants = mrl_graph_wants_grad(g, q, k) || mrl_graph_wants_grad(g, v, bias) ||
          mrl_graph_wants_grad(g, qr, rk);
  y = mrl_op_output(g, 3, shape, wants);
  P = (float *)mrl_graph_alloc(g, sizeof(float) * ((size_t)B * H * T * K + 1));
  if (y && y->grad) /* dP, and the relative term's gradient */
    dS = (float *)mrl_graph_alloc(g, sizeof(float) * ((size_t)(qr ? 2 : 1) * T * K + 1));
  if (bias_shift) sb = (float *)mrl_graph_alloc(g, sizeof(float) * (size_t)K);
  if (qr) bdbuf = (float *)mrl_graph_alloc(g, sizeof(float) * (size_t)T * K);
  if (!y || !P || (y->grad && !dS) || (bias_shift && !sb) || (qr && !bdbuf)) return NULL;
  for (b = 0; b < B; b++)
    for (h = 0; h < H; h++) {
      size_t n = (size_t)b * H + h;
      float *Pn = P + n * T * K;
      mrl_gemm(0, 1, T, K, D, q->data + (size_t)b * T * ldq + q_col + h * D, ldq,
               k->data + (size_t)b * K * ldk + k_col + h * D, ldk, 0.0f, Pn, K);
      if (qr) /* the relative term of this head, unshifted: row t by distance */
        mrl_gemm(0, 1, T, K, D, qr->data + (size_t)b * T * E + h * D, E, rk->data + h * D, E, 0.0f,
                 bdbuf, K);
      for (t = 0; t < T; t++) {
        const float *br = qr ? bdbuf + (size_t)t * K : (bias ? bias->data + (n * T + t) * K : NULL);
        if (bias_shift) { /* relative distances: columns T-1-t .. K-1, then the last again */
          int j, lim = K - (T - 1 - t);
          memcpy(sb, br + (T - 1 - t), sizeof(float) * (size_t)lim);
          for (j = lim; j < K; j++) sb[j] = br[K - 1];
          br = sb;
        }
        live[t % 16] = (unsigned char)mrl__attn_softmax_pre(
            Pn + (size_t)t * K, br,
            mask ? mask->data + (size_t)b * ms[0] + (size_t)h * ms[1] + (size_t)t * ms[2] : NULL,
            mask ? ms[3] : 0, K, scale);
        if (t % 16 == 15 || t == T - 1) /* up to 16 rows' exps at a time */
          mrl__attn_softmax_post(Pn + (size_t)(t - t % 16) * K, t % 16 + 1, K, live);
      }
      mrl_gemm(0, 0, T, D, K, Pn, K, v->data + (size_t)b * K * ldv + v_col + h * D, ldv, 0.0f,
               y->data + (size_t)b * T * E + h * D, E);
    }
  MRL__FINITE(op, y, q, k);
  if ((nd = mrl_graph_record(g, op, mrl__attention_backward, y)) != NULL) {
    nd->in[0] = q;
    nd->in[1] = k;
    nd->in[2] = v;
    nd->in[3] = bias;
    nd->extra[0] = (mrl_tensor *)(void *)P;
    nd->extra[1] = (mrl_tensor *)(void *)dS;
    nd->i[0] = H;
    nd->i[1] = q_col;
    nd->i[2] = k_col;
    nd->i[3] = v_col;
    nd->f[0] = scale;
    nd->f[1] = bias_shift ? 1.0f : 0.0f;
    nd->extra[2] = qr;
    nd->extra[3] = rk;
  }
  return y;
}

MRL_DEF mrl_tensor *mrl_attention_cols(mrl_graph *g, mrl_tensor *q, int q_col, mrl_tensor *k,
                                       int k_col, mrl_tensor *v, int v_col, int embed_dim,
                                       int num_heads, float scale, mrl_tensor *bias,
                                       mrl_tensor *mask, int bias_shift) {
  return mrl__attention_impl(g, q, q_col, k, k_col, v, v_col, embed_dim, num_heads, scale, bias,
                             mask, bias_shift, NULL, NULL);
}

MRL_DEF mrl_tensor *mrl_rel_attention_cols(mrl_graph *g, mrl_tensor *q, int q_col, mrl_tensor *k,
                                           int k_col, mrl_tensor *v, int v_col, mrl_tensor *qr,
                                           mrl_tensor *rk, int embed_dim, int num_heads,
                                           float scale, mrl_tensor *mask) {
  if (!qr || !rk) return NULL;
  return mrl__attention_impl(g, q, q_col, k, k_col, v, v_col, embed_dim, num_heads, scale, NULL,
                             mask, 1, qr, rk);
}

MRL_DEF mrl_tensor *mrl_attention(mrl_graph *g, mrl_tensor *q, mrl_tensor *k, mrl_tensor *v,
                                  int num_heads, float scale, mrl_tensor *bias, mrl_tensor *mask) {
  if (!q) return NULL;
  MRL_SHAPE_CHECK(q->ndim == 3, "attention", "q must be [B, T, E]", q, NULL);
  if (k && v)
    MRL_SHAPE_CHECK(k->ndim == 3 && v->ndim == 3 && k->shape[2] == q->shape[2] &&
                        v->shape[2] == q->shape[2],
                    "attention", "k and v must be [B, K, E] with q's E", k, v);
  return mrl_attention_cols(g, q, 0, k, 0, v, 0, q->shape[2], num_heads, scale, bias, mask, 0);
}

/* ---- batched matmul: leading dimensions broadcast, mrl_gemm per matrix ---- >>batched_matmul */

/* i[0] layout, i[1] k; matrices of a and b found through the batch strides
 * recomputed from the shapes. */
static void mrl__bmm_offsets(const mrl_tensor *a, const mrl_tensor *b, const mrl_tensor *c,
                             int nb4[2], int sa[2], int sb[2]) {
  int ab[2] = {1, 1}, bb[2] = {1, 1}, d, stride_a, stride_b;
  for (d = 0; d < a->ndim - 2; d++) ab[2 - (a->ndim - 2) + d] = a->shape[d];
  for (d = 0; d < b->ndim - 2; d++) bb[2 - (b->ndim - 2) + d] = b->shape[d];
  for (d = 0; d < 2; d++) nb4[d] = 1;
  for (d = 0; d < c->ndim - 2; d++) nb4[2 - (c->ndim - 2) + d] = c->shape[d];
  stride_a = a->shape[a->ndim - 2] * a->shape[a->ndim - 1];
  stride_b = b->shape[b->ndim - 2] * b->shape[b->ndim - 1];
  sa[1] = ab[1] == 1 ? 0 : stride_a;
  sa[0] = ab[0] == 1 ? 0 : stride_a * ab[1];
  sb[1] = bb[1] == 1 ? 0 : stride_b;
  sb[0] = bb[0] == 1 ? 0 : stride_b * bb[1];
}

static void mrl__bmm_backward(mrl_node *nd) {
  mrl_tensor *a = nd->in[0], *b = nd->in[1], *c = nd->out;
  int layout = nd->i[0], k = nd->i[1], m = c->shape[c->ndim - 2], n = c->shape[c->ndim - 1];
  int nb[2], sa[2], sb[2], i0, i1;
  mrl__bmm_offsets(a, b, c, nb, sa, sb);
  for (i0 = 0; i0 < nb[0]; i0++)
    for (i1 = 0; i1 < nb[1]; i1++) {
      size_t oa = (size_t)i0 * sa[0] + (size_t)i1 * sa[1];
      size_t ob = (size_t)i0 * sb[0] + (size_t)i1 * sb[1];
      const float *gc = c->grad + ((size_t)i0 * nb[1] + i1) * (size_t)m * n;
      const float *ad = a->data + oa, *bd = b->data + ob;
      if (layout == 0) { /* C = A B: dA = dC Bᵀ, dB = Aᵀ dC */
        if (a->grad) mrl_gemm(0, 1, m, k, n, gc, n, bd, n, 1.0f, a->grad + oa, k);
        if (b->grad) mrl_gemm(1, 0, k, n, m, ad, k, gc, n, 1.0f, b->grad + ob, n);
      } else if (layout == 1) { /* C = A Bᵀ: dA = dC B, dB = dCᵀ A */
        if (a->grad) mrl_gemm(0, 0, m, k, n, gc, n, bd, k, 1.0f, a->grad + oa, k);
        if (b->grad) mrl_gemm(1, 0, n, k, m, gc, n, ad, k, 1.0f, b->grad + ob, k);
      } else { /* C = Aᵀ B: dA = B dCᵀ, dB = A dC */
        if (a->grad) mrl_gemm(0, 1, k, m, n, bd, n, gc, n, 1.0f, a->grad + oa, m);
        if (b->grad) mrl_gemm(0, 0, k, n, m, ad, m, gc, n, 1.0f, b->grad + ob, n);
      }
    }
}

static mrl_tensor *mrl__matmul_batched(mrl_graph *g, mrl_tensor *a, mrl_tensor *b, int layout,
                                       const char *op) {
  int m, n, k, kb, shape[MRL_MAX_DIMS], ndim, nb[2], sa[2], sb[2], i0, i1, ra, rb;
  mrl_tensor *c;
  mrl_node *nd;
  MRL_SHAPE_CHECK(a->ndim >= 2 && b->ndim >= 2, op, "operands need at least 2 dimensions", a, b);
  ra = a->ndim;
  rb = b->ndim;
  m = layout == 2 ? a->shape[ra - 1] : a->shape[ra - 2];
  k = layout == 2 ? a->shape[ra - 2] : a->shape[ra - 1];
  n = layout == 1 ? b->shape[rb - 2] : b->shape[rb - 1];
  kb = layout == 1 ? b->shape[rb - 1] : b->shape[rb - 2];
  MRL_SHAPE_CHECK(k == kb, op, "inner dimensions differ", a, b);
  MRL_SHAPE_CHECK(mrl__broadcast_shape(a->shape, ra - 2, b->shape, rb - 2, shape, &ndim), op,
                  "batch dimensions do not broadcast", a, b);
  shape[ndim++] = m;
  shape[ndim++] = n;
  c = mrl_op_output(g, ndim, shape, mrl_graph_wants_grad(g, a, b));
  if (!c) return NULL;
  mrl__bmm_offsets(a, b, c, nb, sa, sb);
  for (i0 = 0; i0 < nb[0]; i0++)
    for (i1 = 0; i1 < nb[1]; i1++)
      mrl_gemm(layout == 2, layout == 1, m, n, k, a->data + (size_t)i0 * sa[0] + (size_t)i1 * sa[1],
               a->shape[ra - 1], b->data + (size_t)i0 * sb[0] + (size_t)i1 * sb[1],
               b->shape[rb - 1], 0.0f, c->data + ((size_t)i0 * nb[1] + i1) * (size_t)m * n, n);
  MRL__FINITE(op, c, a, b);
  if ((nd = mrl_graph_record(g, op, mrl__bmm_backward, c)) != NULL) {
    nd->in[0] = a;
    nd->in[1] = b;
    nd->i[0] = layout;
    nd->i[1] = k;
  }
  return c;
}

/* ---- shape ops: permute, slice, broadcast_to, concat, stack ---- >>shape
 * Each is one strided copy forward and the same copy reversed (+=) backward.
 * permute, slice and broadcast_to keep the copy's geometry (an
 * mrl__copy_plan in the arena) in the node's extra[1]. */

typedef struct mrl__copy_plan {
  int n4[MRL_MAX_DIMS], src[MRL_MAX_DIMS], dst[MRL_MAX_DIMS];
  size_t src_off; /* element offset into the input */
} mrl__copy_plan;

static void mrl__copy_backward(mrl_node *nd) {
  const mrl__copy_plan *p = (const mrl__copy_plan *)(void *)nd->extra[1];
  mrl_tensor *x = nd->in[0];
  if (!x->grad) return;
  mrl__strided_copy(p->n4, nd->out->grad, p->dst, x->grad + p->src_off, p->src, 1);
}

/* Output of the given shape filled by one strided copy from x; records the
 * reverse for backward. */
static mrl_tensor *mrl__copy_op(mrl_graph *g, mrl_tensor *x, int ndim, const int *shape,
                                const mrl__copy_plan *plan, const char *op) {
  mrl__copy_plan *saved = NULL;
  mrl_tensor *y;
  mrl_node *nd;
  int wants = mrl_graph_wants_grad(g, x, NULL);
  if (wants) {
    saved = (mrl__copy_plan *)mrl_graph_alloc(g, sizeof(mrl__copy_plan));
    if (!saved) return NULL;
    *saved = *plan;
  }
  y = mrl_op_output(g, ndim, shape, wants);
  if (!y) return NULL;
  mrl__strided_copy(plan->n4, x->data + plan->src_off, plan->src, y->data, plan->dst, 0);
  MRL__FINITE(op, y, x, NULL);
  if ((nd = mrl_graph_record(g, op, mrl__copy_backward, y)) != NULL) {
    nd->in[0] = x;
    nd->extra[1] = (mrl_tensor *)(void *)saved;
  }
  return y;
}

MRL_DEF mrl_tensor *mrl_permute(mrl_graph *g, mrl_tensor *x, const int *perm) {
  int shape[MRL_MAX_DIMS], x4[MRL_MAX_DIMS], xs[MRL_MAX_DIMS], used[MRL_MAX_DIMS] = {0, 0, 0, 0};
  int d, off, ok = 1;
  mrl__copy_plan plan;
  if (!x) return NULL;
  off = MRL_MAX_DIMS - x->ndim;
  for (d = 0; d < x->ndim; d++) {
    int p = perm[d] < 0 ? perm[d] + x->ndim : perm[d];
    if (p < 0 || p >= x->ndim || used[p]) {
      ok = 0;
      break;
    }
    used[p] = 1;
    shape[d] = x->shape[p];
  }
  MRL_SHAPE_CHECK(ok, "permute", "perm is not a permutation of the dimensions", x, NULL);
  mrl__pad4(x->shape, x->ndim, x4);
  mrl__cstrides(x4, xs);
  mrl__pad4(shape, x->ndim, plan.n4);
  mrl__cstrides(plan.n4, plan.dst);
  for (d = 0; d < MRL_MAX_DIMS; d++)
    plan.src[d] =
        d < off ? 0 : xs[off + (perm[d - off] < 0 ? perm[d - off] + x->ndim : perm[d - off])];
  plan.src_off = 0;
  return mrl__copy_op(g, x, x->ndim, shape, &plan, "permute");
}

MRL_DEF mrl_tensor *mrl_transpose(mrl_graph *g, mrl_tensor *x, int dim0, int dim1) {
  int perm[MRL_MAX_DIMS], d;
  if (!x) return NULL;
  dim0 = MRL__AXIS("transpose", x, dim0, x->ndim);
  dim1 = MRL__AXIS("transpose", x, dim1, x->ndim);
  for (d = 0; d < x->ndim; d++) perm[d] = d;
  perm[dim0] = dim1;
  perm[dim1] = dim0;
  return mrl_permute(g, x, perm);
}

MRL_DEF mrl_tensor *mrl_slice(mrl_graph *g, mrl_tensor *x, int axis, int start, int end) {
  int shape[MRL_MAX_DIMS], x4[MRL_MAX_DIMS], d, off, len;
  mrl__copy_plan plan;
  if (!x) return NULL;
  axis = MRL__AXIS("slice", x, axis, x->ndim);
  len = x->shape[axis];
  if (start < 0) start += len;
  if (end < 0) end += len;
  if (start < 0 || end > len || start > end) {
    char what[96];
    snprintf(what, sizeof what, "range [%d,%d) outside axis %d of length %d", start, end, axis,
             len);
    mrl_shape_fail("slice", what, x, NULL, __FILE__, __LINE__);
  }
  for (d = 0; d < x->ndim; d++) shape[d] = x->shape[d];
  shape[axis] = end - start;
  off = MRL_MAX_DIMS - x->ndim;
  mrl__pad4(x->shape, x->ndim, x4);
  mrl__cstrides(x4, plan.src);
  mrl__pad4(shape, x->ndim, plan.n4);
  mrl__cstrides(plan.n4, plan.dst);
  plan.src_off = (size_t)start * plan.src[off + axis];
  return mrl__copy_op(g, x, x->ndim, shape, &plan, "slice");
}

MRL_DEF mrl_tensor *mrl_broadcast_to(mrl_graph *g, mrl_tensor *x, int ndim, const int *shape) {
  int s2[MRL_MAX_DIMS], n2, d, same;
  mrl_tensor target;
  mrl__copy_plan plan;
  if (!x) return NULL;
  target = mrl_tensor_make(NULL, NULL, ndim, shape);
  same = mrl__broadcast_shape(x->shape, x->ndim, shape, ndim, s2, &n2) && n2 == ndim;
  for (d = 0; same && d < ndim; d++) same = s2[d] == shape[d];
  MRL_SHAPE_CHECK(same, "broadcast_to", "shape does not broadcast to the target", x, &target);
  mrl__pad4(shape, ndim, plan.n4);
  mrl__cstrides(plan.n4, plan.dst);
  mrl__bstrides(x, plan.src);
  plan.src_off = 0;
  return mrl__copy_op(g, x, ndim, shape, &plan, "broadcast_to");
}

/* concat / stack: part p is copied into its block of the output. i[0] n,
 * i[1] axis of the output, i[2] stack; extra[0] the saved parts array. */
static void mrl__concat_backward(mrl_node *nd) {
  mrl_tensor *const *parts = (mrl_tensor *const *)(void *)nd->extra[0];
  mrl_tensor *y = nd->out;
  int n = nd->i[0], axis = nd->i[1], stack = nd->i[2], p, y4[MRL_MAX_DIMS], ys[MRL_MAX_DIMS];
  int off = MRL_MAX_DIMS - y->ndim;
  size_t at = 0;
  mrl__pad4(y->shape, y->ndim, y4);
  mrl__cstrides(y4, ys);
  for (p = 0; p < n; p++) {
    mrl_tensor *t = parts[p];
    int b4[MRL_MAX_DIMS], bs[MRL_MAX_DIMS];
    memcpy(b4, y4, sizeof b4);
    b4[off + axis] = stack ? 1 : t->shape[axis];
    mrl__cstrides(b4, bs);
    if (t->grad) mrl__strided_copy(b4, y->grad + at * ys[off + axis], ys, t->grad, bs, 1);
    at += (size_t)b4[off + axis];
  }
}

static mrl_tensor *mrl__concat(mrl_graph *g, mrl_tensor *const *parts, int n, int axis, int stack,
                               const char *op) {
  mrl_tensor *y, **saved = NULL, *p0;
  mrl_node *nd;
  int p, d, wants = 0, shape[MRL_MAX_DIMS], ndim, y4[MRL_MAX_DIMS], ys[MRL_MAX_DIMS], off;
  size_t at = 0;
  MRL_ASSERT(n >= 1);
  for (p = 0; p < n; p++)
    if (!parts[p]) return NULL;
  p0 = parts[0];
  ndim = p0->ndim + (stack ? 1 : 0);
  MRL_SHAPE_CHECK(ndim <= MRL_MAX_DIMS, op, "result would have more than 4 dimensions", p0, NULL);
  axis = MRL__AXIS(op, p0, axis, ndim);
  for (p = 0; p < n; p++) {
    mrl_tensor *t = parts[p];
    int ok = t->ndim == p0->ndim;
    for (d = 0; ok && d < p0->ndim; d++) ok = t->shape[d] == p0->shape[d] || (!stack && d == axis);
    MRL_SHAPE_CHECK(ok, op,
                    stack ? "parts must have equal shapes"
                          : "parts must agree in every dimension but the axis",
                    p0, t);
    wants |= mrl_graph_wants_grad(g, t, NULL);
  }
  for (d = 0, p = 0; d < ndim; d++) shape[d] = (stack && d == axis) ? n : p0->shape[p++];
  if (!stack) {
    shape[axis] = 0;
    for (p = 0; p < n; p++) shape[axis] += parts[p]->shape[axis];
  }
  if (wants && !g->no_grad) {
    saved = (mrl_tensor **)mrl_graph_alloc(g, sizeof(mrl_tensor *) * (size_t)n);
    if (!saved) return NULL;
    memcpy(saved, parts, sizeof(mrl_tensor *) * (size_t)n);
  }
  y = mrl_op_output(g, ndim, shape, wants);
  if (!y) return NULL;
  off = MRL_MAX_DIMS - ndim;
  mrl__pad4(shape, ndim, y4);
  mrl__cstrides(y4, ys);
  for (p = 0; p < n; p++) {
    int b4[MRL_MAX_DIMS], bs[MRL_MAX_DIMS];
    memcpy(b4, y4, sizeof b4);
    b4[off + axis] = stack ? 1 : parts[p]->shape[axis];
    mrl__cstrides(b4, bs);
    mrl__strided_copy(b4, parts[p]->data, bs, y->data + at * ys[off + axis], ys, 0);
    at += (size_t)b4[off + axis];
  }
  MRL__FINITE(op, y, parts[0], n > 1 ? parts[1] : NULL);
  if ((nd = mrl_graph_record(g, op, mrl__concat_backward, y)) != NULL) {
    nd->extra[0] = (mrl_tensor *)(void *)saved;
    nd->in[0] = p0;
    nd->i[0] = n;
    nd->i[1] = axis;
    nd->i[2] = stack;
  }
  return y;
}

MRL_DEF mrl_tensor *mrl_concat(mrl_graph *g, mrl_tensor *const *parts, int n, int axis) {
  return mrl__concat(g, parts, n, axis, 0, "concat");
}
MRL_DEF mrl_tensor *mrl_stack(mrl_graph *g, mrl_tensor *const *parts, int n, int axis) {
  return mrl__concat(g, parts, n, axis, 1, "stack");
}
MRL_DEF mrl_tensor *mrl_concat_rows(mrl_graph *g, mrl_tensor *const *parts, int n) {
  return mrl__concat(g, parts, n, 0, 0, "concat_rows");
}

/* ---- indexing: gather, index_select, scatter_add, one_hot, top-k ---- >>indexing */

/* gather: i[0] outer, i[1] n (x's axis length), i[2] k, i[3] inner; index in the arena. */
static void mrl__gather_backward(mrl_node *nd) {
  mrl_tensor *x = nd->in[0], *y = nd->out;
  int outer = nd->i[0], n = nd->i[1], k = nd->i[2], inner = nd->i[3], o, q, j;
  if (!x->grad) return;
  for (o = 0; o < outer; o++)
    for (q = 0; q < k; q++)
      for (j = 0; j < inner; j++) {
        size_t r = ((size_t)o * k + q) * inner + j;
        x->grad[((size_t)o * n + nd->index[r]) * inner + j] += y->grad[r];
      }
}

static mrl_tensor *mrl__gather(mrl_graph *g, mrl_tensor *x, int axis, const int *index, int k,
                               const char *op) {
  int outer, n, inner, o, q, j, shape[MRL_MAX_DIMS], d, *idx;
  mrl_tensor *y;
  mrl_node *nd;
  if (!x) return NULL;
  axis = MRL__AXIS(op, x, axis, x->ndim);
  mrl__split(x, axis, &outer, &n, &inner);
  MRL_SHAPE_CHECK(k >= 0, op, "negative number of indices", x, NULL);
  for (o = 0; o < outer * k * inner; o++) MRL__INDEX_CHECK(op, x, index[o], o, n);
  idx = mrl__copy_ints(g, index, outer * k * inner);
  if (!idx) return NULL;
  for (d = 0; d < x->ndim; d++) shape[d] = x->shape[d];
  shape[axis] = k;
  y = mrl_op_output(g, x->ndim, shape, mrl_graph_wants_grad(g, x, NULL));
  if (!y) return NULL;
  for (o = 0; o < outer; o++)
    for (q = 0; q < k; q++)
      for (j = 0; j < inner; j++) {
        size_t r = ((size_t)o * k + q) * inner + j;
        y->data[r] = x->data[((size_t)o * n + idx[r]) * inner + j];
      }
  MRL__FINITE(op, y, x, NULL);
  if ((nd = mrl_graph_record(g, op, mrl__gather_backward, y)) != NULL) {
    nd->in[0] = x;
    nd->index = idx;
    nd->i[0] = outer;
    nd->i[1] = n;
    nd->i[2] = k;
    nd->i[3] = inner;
  }
  return y;
}

MRL_DEF mrl_tensor *mrl_gather(mrl_graph *g, mrl_tensor *x, int axis, const int *index, int k) {
  return mrl__gather(g, x, axis, index, k, "gather");
}

MRL_DEF mrl_tensor *mrl_gather_rows(mrl_graph *g, mrl_tensor *a, const int *index) {
  mrl_tensor *y;
  if (!a) return NULL;
  MRL_SHAPE_CHECK(a->ndim >= 2, "gather_rows", "needs at least 2 dimensions", a, NULL);
  y = mrl__gather(g, a, -1, index, 1, "gather_rows");
  return mrl_reshape(g, y, a->ndim - 1, a->shape); /* drop the trailing 1 */
}

/* index_select rows: i[0] rows taken, i[1] row length. */
static void mrl__index_select_backward(mrl_node *nd) {
  mrl_tensor *x = nd->in[0], *y = nd->out;
  int n = nd->i[0], row = nd->i[1], r, j;
  if (!x->grad) return;
  for (r = 0; r < n; r++) {
    float *gx = x->grad + (size_t)nd->index[r] * row;
    const float *gy = y->grad + (size_t)r * row;
    for (j = 0; j < row; j++) gx[j] += gy[j];
  }
}

MRL_DEF mrl_tensor *mrl_index_select(mrl_graph *g, mrl_tensor *x, const int *index, int n) {
  int shape[MRL_MAX_DIMS], row, r, d, *idx;
  mrl_tensor *y;
  mrl_node *nd;
  if (!x) return NULL;
  MRL_SHAPE_CHECK(n >= 0, "index_select", "negative number of indices", x, NULL);
  for (r = 0; r < n; r++) MRL__INDEX_CHECK("index_select", x, index[r], r, x->shape[0]);
  idx = mrl__copy_ints(g, index, n);
  if (!idx) return NULL;
  row = x->shape[0] ? x->size / x->shape[0] : 0;
  for (d = 0; d < x->ndim; d++) shape[d] = x->shape[d];
  shape[0] = n;
  y = mrl_op_output(g, x->ndim, shape, mrl_graph_wants_grad(g, x, NULL));
  if (!y) return NULL;
  for (r = 0; r < n; r++)
    memcpy(y->data + (size_t)r * row, x->data + (size_t)idx[r] * row, sizeof(float) * (size_t)row);
  MRL__FINITE("index_select", y, x, NULL);
  if ((nd = mrl_graph_record(g, "index_select", mrl__index_select_backward, y)) != NULL) {
    nd->in[0] = x;
    nd->index = idx;
    nd->i[0] = n;
    nd->i[1] = row;
  }
  return y;
}

/* scatter_add: i[0] outer, i[1] n (base's axis), i[2] k (src's axis), i[3] inner. */
static void mrl__scatter_add_backward(mrl_node *nd) {
  mrl_tensor *base = nd->in[0], *src = nd->in[1], *y = nd->out;
  int outer = nd->i[0], n = nd->i[1], k = nd->i[2], inner = nd->i[3], o, q, j, i;
  if (base->grad)
    for (i = 0; i < y->size; i++) base->grad[i] += y->grad[i];
  if (src->grad)
    for (o = 0; o < outer; o++)
      for (q = 0; q < k; q++)
        for (j = 0; j < inner; j++) {
          size_t r = ((size_t)o * k + q) * inner + j;
          src->grad[r] += y->grad[((size_t)o * n + nd->index[r]) * inner + j];
        }
}

MRL_DEF mrl_tensor *mrl_scatter_add(mrl_graph *g, mrl_tensor *base, int axis, const int *index,
                                    mrl_tensor *src) {
  int outer, n, inner, k, o, q, j, d, ok, *idx;
  mrl_tensor *y;
  mrl_node *nd;
  if (!base || !src) return NULL;
  axis = MRL__AXIS("scatter_add", base, axis, base->ndim);
  ok = src->ndim == base->ndim;
  for (d = 0; ok && d < base->ndim; d++) ok = d == axis || src->shape[d] == base->shape[d];
  MRL_SHAPE_CHECK(ok, "scatter_add", "src must match base in every dimension but the axis", base,
                  src);
  mrl__split(base, axis, &outer, &n, &inner);
  k = src->shape[axis];
  for (o = 0; o < src->size; o++) MRL__INDEX_CHECK("scatter_add", base, index[o], o, n);
  idx = mrl__copy_ints(g, index, src->size);
  if (!idx) return NULL;
  y = mrl_op_output(g, base->ndim, base->shape, mrl_graph_wants_grad(g, base, src));
  if (!y) return NULL;
  memcpy(y->data, base->data, sizeof(float) * (size_t)base->size);
  for (o = 0; o < outer; o++)
    for (q = 0; q < k; q++)
      for (j = 0; j < inner; j++) {
        size_t r = ((size_t)o * k + q) * inner + j;
        y->data[((size_t)o * n + idx[r]) * inner + j] += src->data[r];
      }
  MRL__FINITE("scatter_add", y, base, src);
  if ((nd = mrl_graph_record(g, "scatter_add", mrl__scatter_add_backward, y)) != NULL) {
    nd->in[0] = base;
    nd->in[1] = src;
    nd->index = idx;
    nd->i[0] = outer;
    nd->i[1] = n;
    nd->i[2] = k;
    nd->i[3] = inner;
  }
  return y;
}

MRL_DEF mrl_tensor *mrl_one_hot(mrl_graph *g, const int *index, int n, int num_classes) {
  int shape[2], i;
  mrl_tensor *y;
  shape[0] = n;
  shape[1] = num_classes;
  for (i = 0; i < n; i++) {
    if (index[i] < 0 || index[i] >= num_classes) {
      mrl_tensor t = mrl_tensor_make(NULL, NULL, 2, shape);
      mrl__index_check("one_hot", &t, index[i], i, num_classes, __FILE__, __LINE__);
    }
  }
  y = mrl_tensor_new(g, 2, shape, 0);
  if (!y) return NULL;
  memset(y->data, 0, sizeof(float) * (size_t)y->size);
  for (i = 0; i < n; i++) y->data[(size_t)i * num_classes + index[i]] = 1.0f;
  return y;
}

/* top-k along the last axis: i[0] rows, i[1] n, i[2] k; index: positions. */
static void mrl__topk_backward(mrl_node *nd) {
  mrl_tensor *x = nd->in[0], *y = nd->out;
  int rows = nd->i[0], n = nd->i[1], k = nd->i[2], r, q;
  if (!x->grad) return;
  for (r = 0; r < rows; r++)
    for (q = 0; q < k; q++)
      x->grad[(size_t)r * n + nd->index[(size_t)r * k + q]] += y->grad[(size_t)r * k + q];
}

MRL_DEF mrl_tensor *mrl_topk(mrl_graph *g, mrl_tensor *x, int k, int *out_index) {
  int rows, n, r, q, j, shape[MRL_MAX_DIMS], d, *idx;
  mrl_tensor *y;
  mrl_node *nd;
  if (!x) return NULL;
  n = mrl_tensor_cols(x);
  rows = mrl_tensor_rows(x);
  if (k < 1 || k > n) {
    char what[80];
    snprintf(what, sizeof what, "k = %d outside [1,%d] (the last dimension)", k, n);
    mrl_shape_fail("topk", what, x, NULL, __FILE__, __LINE__);
  }
  idx = (int *)mrl_graph_alloc(g, sizeof(int) * (size_t)rows * (size_t)k);
  if (!idx) return NULL;
  for (d = 0; d < x->ndim; d++) shape[d] = x->shape[d];
  shape[x->ndim - 1] = k;
  y = mrl_op_output(g, x->ndim, shape, mrl_graph_wants_grad(g, x, NULL));
  if (!y) return NULL;
  for (r = 0; r < rows; r++) {
    /* Insertion into a sorted list of k: O(n k), fine for the small k of
     * RL (kNN lookups, beams). Ties keep the lower index first. */
    const float *xr = x->data + (size_t)r * n;
    float *vr = y->data + (size_t)r * k;
    int *ir = idx + (size_t)r * k, len = 0;
    for (j = 0; j < n; j++) {
      float v = xr[j];
      if (len == k && !(v > vr[k - 1])) continue;
      q = len < k ? len++ : k - 1;
      while (q > 0 && v > vr[q - 1]) {
        vr[q] = vr[q - 1];
        ir[q] = ir[q - 1];
        q--;
      }
      vr[q] = v;
      ir[q] = j;
    }
  }
  if (out_index) memcpy(out_index, idx, sizeof(int) * (size_t)rows * (size_t)k);
  MRL__FINITE("topk", y, x, NULL);
  if ((nd = mrl_graph_record(g, "topk", mrl__topk_backward, y)) != NULL) {
    nd->in[0] = x;
    nd->index = idx;
    nd->i[0] = rows;
    nd->i[1] = n;
    nd->i[2] = k;
  }
  return y;
}

/* ---- fused layers, losses, memory ops ---- >>fused */

/* Output of a loss: [1] when reduced; with MRL_LOSS_NONE the input's shape,
 * or for per-row losses all but its last dimension ([1] for a 1-D input). */
static mrl_tensor *mrl__loss_output(mrl_graph *g, const mrl_tensor *x, int per_row,
                                    mrl_loss_reduction reduction, int wants) {
  int shape[MRL_MAX_DIMS], nd = 1, i;
  shape[0] = 1;
  if (reduction == MRL_LOSS_NONE && (!per_row || x->ndim > 1)) {
    nd = per_row ? x->ndim - 1 : x->ndim;
    for (i = 0; i < nd; i++) shape[i] = x->shape[i];
  }
  return mrl_op_output(g, nd, shape, wants);
}

static void mrl__check_reduction(mrl_loss_reduction r, const char *op, const mrl_tensor *x) {
  MRL_SHAPE_CHECK(r == MRL_LOSS_MEAN || r == MRL_LOSS_SUM || r == MRL_LOSS_NONE, op,
                  "reduction must be MRL_LOSS_MEAN, MRL_LOSS_SUM or MRL_LOSS_NONE", x, NULL);
}

/* Gradient reaching element (or row) i of a loss: i[3] holds the reduction,
 * f[3] the scale of a reduced loss (1/count for a mean, 1 for a sum). */
static float mrl__loss_grad(const mrl_node *nd, int i) {
  return nd->i[3] == MRL_LOSS_NONE ? nd->out->grad[i] : nd->out->grad[0] * nd->f[3];
}

static int mrl__any_grad(const mrl_graph *g, mrl_tensor *const *t, int n) {
  int i, any = 0;
  for (i = 0; i < n; i++) any |= t[i] && t[i]->grad;
  return !g->no_grad && any;
}

/* ---- layernorm over the last dimension ---- >>layernorm */

/* Row sums for layernorm in double precision, each in four lanes (lane l
 * sums the elements j = l mod 4 in order, a last partial step goes to lane 0,
 * then (l0 + l1) + (l2 + l3)), for rows r < nr of x (and g), row stride d,
 * four rows side by side: one row's lanes are chains of d/4 dependent adds,
 * so a row alone waits on their latency (this was a tenth of a transformer
 * step with one chain per row, 7% with one row of four chains at a time).
 * mode 0: sums[r][0] = sum x. mode 1: sums[r][1] = sum (x - m_r)^2. mode 2:
 * with xh = (x - m_r) s_r and dxh = g w (w NULL: 1), sums[r][0] = sum dxh,
 * sums[r][1] = sum dxh xh. The lanes run as vectors where the compiler has
 * them; either way each lane is the same chain of the same operations. */
#ifdef MRL__HAVE_F4
typedef double mrl__d4 __attribute__((vector_size(32)));
/* by pointer: a 32-byte vector argument or result warns (-Wpsabi) without AVX */
static inline void mrl__f4_to_d4(mrl__d4 *r, const mrl__f4 *v) {
  mrl__d4 t = {(*v)[0], (*v)[1], (*v)[2], (*v)[3]};
  *r = t;
}
#define MRL__RS_X(r)                                                                               \
  mrl__f4 x##r;                                                                                    \
  memcpy(&x##r, xr[r] + j, sizeof x##r)
#define MRL__RS_SUM(r)                                                                             \
  do {                                                                                             \
    mrl__d4 xd;                                                                                    \
    MRL__RS_X(r);                                                                                  \
    mrl__f4_to_d4(&xd, &x##r);                                                                     \
    a##r += xd;                                                                                    \
  } while (0)
#define MRL__RS_SQ(r)                                                                              \
  do {                                                                                             \
    mrl__d4 c;                                                                                     \
    MRL__RS_X(r);                                                                                  \
    mrl__f4_to_d4(&c, &x##r);                                                                      \
    c -= (double)mr[r];                                                                            \
    b##r += c * c;                                                                                 \
  } while (0)
#define MRL__RS_GRAD(r)                                                                            \
  do {                                                                                             \
    mrl__f4 gv, wv = {1.0f, 1.0f, 1.0f, 1.0f}, dv, xh;                                             \
    mrl__d4 dd, xhd;                                                                               \
    MRL__RS_X(r);                                                                                  \
    memcpy(&gv, gr[r] + j, sizeof gv);                                                             \
    if (w) memcpy(&wv, w + j, sizeof wv);                                                          \
    dv = gv * wv;                                                                                  \
    xh = (x##r - mr[r]) * sr[r];                                                                   \
    mrl__f4_to_d4(&dd, &dv);                                                                       \
    mrl__f4_to_d4(&xhd, &xh);                                                                      \
    a##r += dd;                                                                                    \
    b##r += dd * xhd;                                                                              \
  } while (0)
#endif
#ifdef MRL__X86_SIMD
#define MRL__RS_INLINE MRL__INLINE
#else
#define MRL__RS_INLINE inline
#endif
static MRL__RS_INLINE void mrl__row_sums4_body(int mode, int nr, const float *x, const float *g,
                                               int d, const float *w, const float *m,
                                               const float *s, double sums[4][2]) {
  const float *xr[4], *gr[4];
  float mr[4], sr[4];
  double la[4][4], lb[4][4]; /* [row][lane] */
  int r, l, j = 0;
  for (r = 0; r < 4; r++) { /* rows past nr repeat the last, not stored */
    int q = r < nr ? r : nr - 1;
    xr[r] = x + (size_t)q * d;
    gr[r] = g ? g + (size_t)q * d : NULL;
    mr[r] = m ? m[q] : 0.0f;
    sr[r] = s ? s[q] : 1.0f;
    for (l = 0; l < 4; l++) la[r][l] = lb[r][l] = 0.0;
  }
#ifdef MRL__HAVE_F4
  {
    mrl__d4 a0 = {0.0, 0.0, 0.0, 0.0}, a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0,
            b3 = a0;
    if (mode == 0)
      for (; j + 4 <= d; j += 4) {
        MRL__RS_SUM(0);
        MRL__RS_SUM(1);
        MRL__RS_SUM(2);
        MRL__RS_SUM(3);
      }
    else if (mode == 1)
      for (; j + 4 <= d; j += 4) {
        MRL__RS_SQ(0);
        MRL__RS_SQ(1);
        MRL__RS_SQ(2);
        MRL__RS_SQ(3);
      }
    else
      for (; j + 4 <= d; j += 4) {
        MRL__RS_GRAD(0);
        MRL__RS_GRAD(1);
        MRL__RS_GRAD(2);
        MRL__RS_GRAD(3);
      }
    for (l = 0; l < 4; l++) {
      la[0][l] = a0[l], la[1][l] = a1[l], la[2][l] = a2[l], la[3][l] = a3[l];
      lb[0][l] = b0[l], lb[1][l] = b1[l], lb[2][l] = b2[l], lb[3][l] = b3[l];
    }
  }
#endif
  for (r = 0; r < nr; r++) {
    const float *xv = xr[r], *gv = gr[r];
    int i;
    for (i = j; i < d; i++) { /* the lanes in scalars: no vectors, or the tail (lane 0) */
      int ln = i < d / 4 * 4 ? i % 4 : 0;
      if (mode == 0) la[r][ln] += xv[i];
      if (mode == 1) {
        double c = (double)xv[i] - mr[r];
        lb[r][ln] += c * c;
      }
      if (mode == 2) {
        float dv = gv[i] * (w ? w[i] : 1.0f);
        la[r][ln] += dv;
        lb[r][ln] += (double)dv * ((xv[i] - mr[r]) * sr[r]);
      }
    }
    sums[r][0] = (la[r][0] + la[r][1]) + (la[r][2] + la[r][3]);
    sums[r][1] = (lb[r][0] + lb[r][1]) + (lb[r][2] + lb[r][3]);
  }
}
/* The same compiled for AVX where the CPU has it (four doubles per register:
 * without it the eight accumulators spill; no FMA, so the same roundings). */
#ifdef MRL__X86_SIMD
__attribute__((target("avx"))) static void mrl__row_sums4_avx(int mode, int nr, const float *x,
                                                              const float *g, int d, const float *w,
                                                              const float *m, const float *s,
                                                              double sums[4][2]) {
  mrl__row_sums4_body(mode, nr, x, g, d, w, m, s, sums);
}
#endif
static void mrl__row_sums4(int mode, int nr, const float *x, const float *g, int d, const float *w,
                           const float *m, const float *s, double sums[4][2]) {
#ifdef MRL__X86_SIMD
  if (__builtin_cpu_supports("avx")) {
    mrl__row_sums4_avx(mode, nr, x, g, d, w, m, s, sums);
    return;
  }
#endif
  mrl__row_sums4_body(mode, nr, x, g, d, w, m, s, sums);
}

static void mrl__layernorm_backward(mrl_node *nd) {
  mrl_tensor *x = nd->in[0], *w = nd->in[1], *b = nd->in[2], *y = nd->out;
  const float *mean = nd->extra[0]->data, *rstd = nd->extra[1]->data;
  int rows = mrl_tensor_rows(x), d = mrl_tensor_cols(x), r, j;
  double sums[4][2];
  for (r = 0; r < rows; r++) {
    const float *xr = x->data + (size_t)r * d, *gr = y->grad + (size_t)r * d;
    float m = mean[r], s = rstd[r];
    double s1, s2;
    if (r % 4 == 0) /* four rows' sums at a time */
      mrl__row_sums4(2, rows - r < 4 ? rows - r : 4, xr, gr, d, w ? w->data : NULL, mean + r,
                     rstd + r, sums);
    s1 = sums[r % 4][0];
    s2 = sums[r % 4][1];
    j = 0;
#ifdef MRL__HAVE_F4 /* the parameter and input gradients four lanes at a time, same bits */
    if (w && w->grad)
      for (; j + 4 <= d; j += 4) {
        mrl__f4 xv, gv, acc;
        memcpy(&xv, xr + j, sizeof xv);
        memcpy(&gv, gr + j, sizeof gv);
        memcpy(&acc, w->grad + j, sizeof acc);
        acc += gv * ((xv - m) * s);
        memcpy(w->grad + j, &acc, sizeof acc);
      }
#endif
    for (; w && w->grad && j < d; j++) w->grad[j] += gr[j] * ((xr[j] - m) * s);
    j = 0;
#ifdef MRL__HAVE_F4
    if (b && b->grad)
      for (; j + 4 <= d; j += 4) {
        mrl__f4 gv, acc;
        memcpy(&gv, gr + j, sizeof gv);
        memcpy(&acc, b->grad + j, sizeof acc);
        acc += gv;
        memcpy(b->grad + j, &acc, sizeof acc);
      }
#endif
    for (; b && b->grad && j < d; j++) b->grad[j] += gr[j];
    if (x->grad) {
      float *gx = x->grad + (size_t)r * d, a1 = (float)(s1 / d), a2 = (float)(s2 / d);
      j = 0;
#ifdef MRL__HAVE_F4
      for (; j + 4 <= d; j += 4) {
        mrl__f4 xv, gv, wv = {1.0f, 1.0f, 1.0f, 1.0f}, acc, xh, dxh;
        memcpy(&xv, xr + j, sizeof xv);
        memcpy(&gv, gr + j, sizeof gv);
        if (w) memcpy(&wv, w->data + j, sizeof wv);
        memcpy(&acc, gx + j, sizeof acc);
        xh = (xv - m) * s;
        dxh = gv * wv;
        acc += s * (dxh - a1 - xh * a2);
        memcpy(gx + j, &acc, sizeof acc);
      }
#endif
      for (; j < d; j++) {
        float xh = (xr[j] - m) * s, dxh = gr[j] * (w ? w->data[j] : 1.0f);
        gx[j] += s * (dxh - a1 - xh * a2);
      }
    }
  }
}

MRL_DEF mrl_tensor *mrl_layernorm(mrl_graph *g, mrl_tensor *x, mrl_tensor *w, mrl_tensor *b,
                                  float eps) {
  mrl_tensor *y, *mean = NULL, *rstd = NULL, *ins[3];
  mrl_node *nd;
  int rows, d, r, j;
  float m4[4], s4[4];
  if (!x) return NULL;
  d = mrl_tensor_cols(x);
  rows = mrl_tensor_rows(x);
  if (w)
    MRL_SHAPE_CHECK(w->size == d, "layernorm", "weight length must equal x's last dimension", x, w);
  if (b)
    MRL_SHAPE_CHECK(b->size == d, "layernorm", "bias length must equal x's last dimension", x, b);
  ins[0] = x;
  ins[1] = w;
  ins[2] = b;
  y = mrl_op_output(g, x->ndim, x->shape, mrl__any_grad(g, ins, 3));
  if (!y) return NULL;
  if (y->grad) {
    mean = mrl_tensor_new(g, 1, &rows, 0);
    rstd = mrl_tensor_new(g, 1, &rows, 0);
    if (!mean || !rstd) return NULL;
  }
  for (r = 0; r < rows; r++) {
    const float *xr = x->data + (size_t)r * d;
    float *yr = y->data + (size_t)r * d, m, s;
    if (r % 4 == 0) { /* four rows' means and scales at a time */
      int nr = rows - r < 4 ? rows - r : 4, q;
      double sums[4][2];
      mrl__row_sums4(0, nr, xr, NULL, d, NULL, NULL, NULL, sums);
      for (q = 0; q < nr; q++) m4[q] = (float)(sums[q][0] / (d ? d : 1));
      mrl__row_sums4(1, nr, xr, NULL, d, NULL, m4, NULL, sums);
      for (q = 0; q < nr; q++) s4[q] = (float)(1.0 / sqrt(sums[q][1] / (d ? d : 1) + (double)eps));
    }
    m = m4[r % 4];
    s = s4[r % 4];
    j = 0;
#ifdef MRL__HAVE_F4 /* four lanes, the same operations as the loop below */
    for (; j + 4 <= d; j += 4) {
      mrl__f4 v, p;
      memcpy(&v, xr + j, sizeof v);
      v = (v - m) * s;
      if (w) {
        memcpy(&p, w->data + j, sizeof p);
        v *= p;
      }
      if (b) {
        memcpy(&p, b->data + j, sizeof p);
        v += p;
      }
      memcpy(yr + j, &v, sizeof v);
    }
#endif
    for (; j < d; j++) {
      float v = (xr[j] - m) * s;
      if (w) v *= w->data[j];
      if (b) v += b->data[j];
      yr[j] = v;
    }
    if (mean) {
      mean->data[r] = m;
      rstd->data[r] = s;
    }
  }
  MRL__FINITE("layernorm", y, x, w);
  if ((nd = mrl_graph_record(g, "layernorm", mrl__layernorm_backward, y)) != NULL) {
    nd->in[0] = x;
    nd->in[1] = w;
    nd->in[2] = b;
    nd->extra[0] = mean;
    nd->extra[1] = rstd;
  }
  return y;
}

/* ---- conv2d: im2col + gemm ---- >>conv2d */
#ifdef _OPENMP
#include <omp.h>
#endif

/* cols[(c*kh + i)*kw + j][yo*ow + xo] = x[c][yo*sh - ph + i][xo*sw - pw + j] (0 outside);
 * geo = {sh, sw, ph, pw} */
static void mrl__im2col(const float *x, int c, int h, int w, int kh, int kw, const int *geo, int oh,
                        int ow, float *cols) {
  int ci, i, j, yo, xo;
  for (ci = 0; ci < c; ci++)
    for (i = 0; i < kh; i++)
      for (j = 0; j < kw; j++) {
        float *row = cols + ((size_t)(ci * kh + i) * kw + j) * (size_t)oh * ow;
        const float *plane = x + (size_t)ci * h * w;
        for (yo = 0; yo < oh; yo++) {
          int yi = yo * geo[0] - geo[2] + i;
          float *dst = row + (size_t)yo * ow;
          if (yi < 0 || yi >= h) {
            memset(dst, 0, sizeof(float) * (size_t)ow);
            continue;
          }
          for (xo = 0; xo < ow; xo++) {
            int xi = xo * geo[1] - geo[3] + j;
            dst[xo] = (xi >= 0 && xi < w) ? plane[(size_t)yi * w + xi] : 0.0f;
          }
        }
      }
}

/* The adjoint of im2col: adds every column entry back onto its input cell. */
static void mrl__col2im_add(const float *cols, int c, int h, int w, int kh, int kw, const int *geo,
                            int oh, int ow, float *x) {
  int ci, i, j, yo, xo;
  for (ci = 0; ci < c; ci++)
    for (i = 0; i < kh; i++)
      for (j = 0; j < kw; j++) {
        const float *row = cols + ((size_t)(ci * kh + i) * kw + j) * (size_t)oh * ow;
        float *plane = x + (size_t)ci * h * w;
        for (yo = 0; yo < oh; yo++) {
          int yi = yo * geo[0] - geo[2] + i;
          const float *src = row + (size_t)yo * ow;
          if (yi < 0 || yi >= h) continue;
          for (xo = 0; xo < ow; xo++) {
            int xi = xo * geo[1] - geo[3] + j;
            if (xi >= 0 && xi < w) plane[(size_t)yi * w + xi] += src[xo];
          }
        }
      }
}

/* Images are independent in the forward pass and in the input gradient, so
 * with OpenMP they are spread over threads, each with its own im2col buffer;
 * every image's arithmetic is the same whatever the thread count, so results
 * stay bitwise identical. The weight and bias gradients sum over images in
 * a fixed serial order. */
#ifdef _OPENMP
#define MRL__CONV_THREAD omp_get_thread_num()
#else
#define MRL__CONV_THREAD 0
#endif

static void mrl__conv2d_backward(mrl_node *nd) {
  mrl_tensor *x = nd->in[0], *wt = nd->in[1], *b = nd->in[2], *y = nd->out;
  float *cols = nd->extra[0] ? nd->extra[0]->data : NULL; /* NULL: 1x1, stride 1, no padding */
  int n = x->shape[0], c = x->shape[1], h = x->shape[2], w = x->shape[3];
  int o = wt->shape[0], kh = wt->shape[2], kw = wt->shape[3];
  const int *geo = nd->index; /* sh, sw, ph, pw */
  int nbuf = nd->i[2], oh = y->shape[2], ow = y->shape[3], ohw = oh * ow, ckk = c * kh * kw;
  int im, q, r;
  for (im = 0; im < n; im++) {
    const float *xn = x->data + (size_t)im * c * h * w;
    const float *gy = y->grad + (size_t)im * o * ohw;
    if (b && b->grad)
      for (q = 0; q < o; q++) {
        float acc = 0.0f;
        for (r = 0; r < ohw; r++) acc += gy[(size_t)q * ohw + r];
        b->grad[q] += acc;
      }
    if (wt->grad) { /* dW += dY cols^T */
      const float *cn = xn;
      if (cols) {
        mrl__im2col(xn, c, h, w, kh, kw, geo, oh, ow, cols);
        cn = cols;
      }
      mrl_gemm(0, 1, o, ckk, ohw, gy, ohw, cn, ohw, 1.0f, wt->grad, ckk);
    }
  }
  if (!x->grad) return;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nbuf) schedule(static) if (nbuf > 1)
#endif
  for (im = 0; im < n; im++) { /* dcols = W^T dY, then back onto the image */
    const float *gy = y->grad + (size_t)im * o * ohw;
    float *gx = x->grad + (size_t)im * c * h * w;
    if (cols) {
      float *buf = cols + (size_t)MRL__CONV_THREAD * ckk * ohw;
      mrl_gemm(1, 0, ckk, ohw, o, wt->data, ckk, gy, ohw, 0.0f, buf, ohw);
      mrl__col2im_add(buf, c, h, w, kh, kw, geo, oh, ow, gx);
    } else {
      mrl_gemm(1, 0, ckk, ohw, o, wt->data, ckk, gy, ohw, 1.0f, gx, ohw);
    }
  }
  (void)nbuf;
}

MRL_DEF mrl_tensor *mrl_conv2d(mrl_graph *g, mrl_tensor *x, mrl_tensor *w, mrl_tensor *b,
                               int stride, int pad) {
  return mrl_conv2d_rect(g, x, w, b, stride, stride, pad, pad);
}

MRL_DEF mrl_tensor *mrl_conv2d_rect(mrl_graph *g, mrl_tensor *x, mrl_tensor *w, mrl_tensor *b,
                                    int stride_h, int stride_w, int pad_h, int pad_w) {
  mrl_tensor *y, *cols = NULL, *ins[3];
  mrl_node *nd;
  int n, c, h, wd, o, kh, kw, oh, ow, ohw, ckk, shape[4], im, direct, nbuf = 1, geo4[4], *geo;
  if (!x || !w) return NULL;
  MRL_SHAPE_CHECK(x->ndim == 4 && w->ndim == 4, "conv2d",
                  "x must be [N,C,H,W] and the weight [O,C,KH,KW]", x, w);
  MRL_SHAPE_CHECK(x->shape[1] == w->shape[1], "conv2d",
                  "x's channels must equal the weight's input channels", x, w);
  MRL_SHAPE_CHECK(stride_h >= 1 && stride_w >= 1 && pad_h >= 0 && pad_w >= 0, "conv2d",
                  "stride must be >= 1 and padding >= 0", x, w);
  n = x->shape[0];
  c = x->shape[1];
  h = x->shape[2];
  wd = x->shape[3];
  o = w->shape[0];
  kh = w->shape[2];
  kw = w->shape[3];
  MRL_SHAPE_CHECK(h + 2 * pad_h >= kh && wd + 2 * pad_w >= kw && kh >= 1 && kw >= 1, "conv2d",
                  "the kernel is larger than the padded input", x, w);
  if (b) MRL_SHAPE_CHECK(b->size == o, "conv2d", "bias length must equal output channels", b, w);
  oh = (h + 2 * pad_h - kh) / stride_h + 1;
  ow = (wd + 2 * pad_w - kw) / stride_w + 1;
  geo4[0] = stride_h;
  geo4[1] = stride_w;
  geo4[2] = pad_h;
  geo4[3] = pad_w;
  if ((geo = mrl__copy_ints(g, geo4, 4)) == NULL) return NULL; /* backward needs it */
  ohw = oh * ow;
  ckk = c * kh * kw;
  shape[0] = n;
  shape[1] = o;
  shape[2] = oh;
  shape[3] = ow;
  ins[0] = x;
  ins[1] = w;
  ins[2] = b;
  y = mrl_op_output(g, 4, shape, mrl__any_grad(g, ins, 3));
  if (!y) return NULL;
#ifdef _OPENMP
  /* one thread per image when the batch is worth splitting */
  if ((double)n * o * ohw * ckk > 2e6) nbuf = omp_get_max_threads() < n ? omp_get_max_threads() : n;
  if (nbuf < 1) nbuf = 1;
#endif
  /* A 1x1 kernel with stride 1 and no padding reads the image as it is. */
  direct = kh == 1 && kw == 1 && stride_h == 1 && stride_w == 1 && pad_h == 0 && pad_w == 0;
  if (!direct) {
    int sz = ckk * ohw * nbuf;
    cols = mrl_tensor_new(g, 1, &sz, 0);
    if (!cols) return NULL;
  }
#ifdef _OPENMP
#pragma omp parallel for num_threads(nbuf) schedule(static) if (nbuf > 1)
#endif
  for (im = 0; im < n; im++) {
    const float *xn = x->data + (size_t)im * c * h * wd, *cn = xn;
    float *yn = y->data + (size_t)im * o * ohw;
    int q, r;
    if (cols) {
      float *buf = cols->data + (size_t)MRL__CONV_THREAD * ckk * ohw;
      mrl__im2col(xn, c, h, wd, kh, kw, geo, oh, ow, buf);
      cn = buf;
    }
    if (b)
      for (q = 0; q < o; q++)
        for (r = 0; r < ohw; r++) yn[(size_t)q * ohw + r] = b->data[q];
    mrl_gemm(0, 0, o, ohw, ckk, w->data, ckk, cn, ohw, b ? 1.0f : 0.0f, yn, ohw);
  }
  MRL__FINITE("conv2d", y, x, w);
  if ((nd = mrl_graph_record(g, "conv2d", mrl__conv2d_backward, y)) != NULL) {
    nd->in[0] = x;
    nd->in[1] = w;
    nd->in[2] = b;
    nd->extra[0] = cols;
    nd->index = geo;
    nd->i[2] = nbuf;
  }
  return y;
}

/* ---- max / avg pooling ---- >>pooling */

/* Checks the geometry and makes the [N,C,OH,OW] output; *stride gets its default. */
static mrl_tensor *mrl__pool_output(mrl_graph *g, mrl_tensor *x, int k, int *stride, int pad,
                                    const char *op) {
  char what[160];
  int shape[4];
  if (*stride <= 0) *stride = k;
  MRL_SHAPE_CHECK(x->ndim == 4, op, "x must be [N,C,H,W]", x, NULL);
  snprintf(what, sizeof what,
           "kernel %d, stride %d, padding %d: need k >= 1, padding <= k/2 and k <= H,W + 2 padding",
           k, *stride, pad);
  MRL_SHAPE_CHECK(k >= 1 && pad >= 0 && 2 * pad <= k && x->shape[2] + 2 * pad >= k &&
                      x->shape[3] + 2 * pad >= k,
                  op, what, x, NULL);
  shape[0] = x->shape[0];
  shape[1] = x->shape[1];
  shape[2] = (x->shape[2] + 2 * pad - k) / *stride + 1;
  shape[3] = (x->shape[3] + 2 * pad - k) / *stride + 1;
  return mrl_op_output(g, 4, shape, mrl_graph_wants_grad(g, x, NULL));
}

static void mrl__max_pool_backward(mrl_node *nd) {
  mrl_tensor *x = nd->in[0], *y = nd->out;
  int planes = y->shape[0] * y->shape[1], per = y->shape[2] * y->shape[3];
  int hw = x->shape[2] * x->shape[3], pl, i;
  if (!x->grad) return;
  for (pl = 0; pl < planes; pl++)
    for (i = 0; i < per; i++)
      x->grad[(size_t)pl * hw + nd->index[(size_t)pl * per + i]] += y->grad[(size_t)pl * per + i];
}

static void mrl__avg_pool_backward(mrl_node *nd) {
  mrl_tensor *x = nd->in[0], *y = nd->out;
  int k = nd->i[0], s = nd->i[1], p = nd->i[2], h = x->shape[2], w = x->shape[3];
  int oh = y->shape[2], ow = y->shape[3], planes = y->shape[0] * y->shape[1], pl, yo, xo, i, j;
  float inv = 1.0f / (float)(k * k);
  if (!x->grad) return;
  for (pl = 0; pl < planes; pl++) {
    float *gx = x->grad + (size_t)pl * h * w;
    const float *gy = y->grad + (size_t)pl * oh * ow;
    for (yo = 0; yo < oh; yo++)
      for (xo = 0; xo < ow; xo++) {
        float gv = gy[yo * ow + xo] * inv;
        for (i = 0; i < k; i++) {
          int yi = yo * s - p + i;
          if (yi < 0 || yi >= h) continue;
          for (j = 0; j < k; j++) {
            int xi = xo * s - p + j;
            if (xi >= 0 && xi < w) gx[(size_t)yi * w + xi] += gv;
          }
        }
      }
  }
}

static mrl_tensor *mrl__pool(mrl_graph *g, mrl_tensor *x, int k, int stride, int pad, int is_max,
                             const char *op) {
  mrl_tensor *y;
  mrl_node *nd;
  int *arg = NULL, planes, h, w, oh, ow, pl, yo, xo, i, j;
  if (!x) return NULL;
  y = mrl__pool_output(g, x, k, &stride, pad, op);
  if (!y) return NULL;
  planes = x->shape[0] * x->shape[1];
  h = x->shape[2];
  w = x->shape[3];
  oh = y->shape[2];
  ow = y->shape[3];
  if (is_max && y->grad) {
    arg = (int *)mrl_graph_alloc(g, sizeof(int) * (size_t)y->size);
    if (!arg) return NULL;
  }
  for (pl = 0; pl < planes; pl++) {
    const float *xp = x->data + (size_t)pl * h * w;
    float *yp = y->data + (size_t)pl * oh * ow;
    for (yo = 0; yo < oh; yo++)
      for (xo = 0; xo < ow; xo++) {
        float best = -HUGE_VALF;
        double acc = 0.0;
        int at = -1;
        for (i = 0; i < k; i++) {
          int yi = yo * stride - pad + i;
          if (yi < 0 || yi >= h) continue;
          for (j = 0; j < k; j++) {
            int xi = xo * stride - pad + j;
            float v;
            if (xi < 0 || xi >= w) continue;
            v = xp[(size_t)yi * w + xi];
            acc += v;
            if (at < 0 || v > best) { /* strict: the first maximum wins */
              best = v;
              at = yi * w + xi;
            }
          }
        }
        yp[yo * ow + xo] = is_max ? best : (float)(acc / (k * k));
        if (arg) arg[((size_t)pl * oh + yo) * ow + xo] = at;
      }
  }
  MRL__FINITE(op, y, x, NULL);
  if ((nd = mrl_graph_record(g, op, is_max ? mrl__max_pool_backward : mrl__avg_pool_backward, y)) !=
      NULL) {
    nd->in[0] = x;
    nd->index = arg;
    nd->i[0] = k;
    nd->i[1] = stride;
    nd->i[2] = pad;
  }
  return y;
}

MRL_DEF mrl_tensor *mrl_max_pool2d(mrl_graph *g, mrl_tensor *x, int k, int stride, int pad) {
  return mrl__pool(g, x, k, stride, pad, 1, "max_pool2d");
}
MRL_DEF mrl_tensor *mrl_avg_pool2d(mrl_graph *g, mrl_tensor *x, int k, int stride, int pad) {
  return mrl__pool(g, x, k, stride, pad, 0, "avg_pool2d");
}

/* ---- dropout ---- >>dropout */

static void mrl__dropout_backward(mrl_node *nd) {
  mrl_tensor *x = nd->in[0], *y = nd->out;
  const float *m = nd->extra[0]->data;
  int i;
  if (!x->grad) return;
  for (i = 0; i < y->size; i++) x->grad[i] += y->grad[i] * m[i];
}

MRL_DEF mrl_tensor *mrl_dropout(mrl_graph *g, mrl_tensor *x, float p, mrl_rng *rng, int training) {
  mrl_tensor *y, *mask = NULL;
  mrl_node *nd;
  float scale;
  int i;
  if (!x) return NULL;
  MRL_SHAPE_CHECK(p >= 0.0f && p <= 1.0f, "dropout", "p must lie in [0, 1]", x, NULL);
  if (p == 0.0f || !training) return x;
  MRL_ASSERT(rng != NULL);
  y = mrl_op_output(g, x->ndim, x->shape, mrl_graph_wants_grad(g, x, NULL));
  if (!y) return NULL;
  if (y->grad) {
    mask = mrl_tensor_new(g, x->ndim, x->shape, 0);
    if (!mask) return NULL;
  }
  scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  for (i = 0; i < x->size; i++) {
    float m = mrl_rng_uniform(rng) >= p ? scale : 0.0f;
    y->data[i] = x->data[i] * m;
    if (mask) mask->data[i] = m;
  }
  MRL__FINITE("dropout", y, x, NULL);
  if ((nd = mrl_graph_record(g, "dropout", mrl__dropout_backward, y)) != NULL) {
    nd->in[0] = x;
    nd->extra[0] = mask;
  }
  return y;
}

/* ---- elementwise losses: mse, huber, smooth L1, BCE with logits ---- >>losses */

enum { MRL__LOSS_MSE, MRL__LOSS_HUBER, MRL__LOSS_SMOOTH_L1, MRL__LOSS_BCE };

/* Loss value at (x, t) and its derivative with respect to x (*dx) and t (*dt). */
static double mrl__pointwise_loss(int kind, float prm, float x, float t, float *dx, float *dt) {
  float d = x - t, ad = fabsf(d), sg = d > 0.0f ? 1.0f : (d < 0.0f ? -1.0f : 0.0f);
  switch (kind) {
  case MRL__LOSS_MSE:
    *dx = 2.0f * d;
    *dt = -*dx;
    return (double)d * d;
  case MRL__LOSS_HUBER:
    *dx = ad < prm ? d : prm * sg;
    *dt = -*dx;
    return ad < prm ? 0.5 * d * d : (double)prm * (ad - 0.5 * prm);
  case MRL__LOSS_SMOOTH_L1:
    *dx = ad < prm ? d / prm : sg;
    *dt = -*dx;
    return ad < prm ? 0.5 * d * d / prm : ad - 0.5 * prm;
  default: /* BCE with logits: x logit, t target */
    *dx = mrl_sigmoidf(x) - t;
    *dt = -x;
    return (x > 0.0f ? (double)x : 0.0) - (double)x * t + log1p(exp(-(double)fabsf(x)));
  }
}

static void mrl__pointwise_loss_backward(mrl_node *nd) {
  mrl_tensor *a = nd->in[0], *t = nd->in[1];
  int i;
  for (i = 0; i < a->size; i++) {
    float dx, dt, gl = mrl__loss_grad(nd, i);
    (void)mrl__pointwise_loss(nd->i[0], nd->f[0], a->data[i], t->data[i], &dx, &dt);
    if (a->grad) a->grad[i] += gl * dx;
    if (t->grad) t->grad[i] += gl * dt;
  }
}

static mrl_tensor *mrl__pointwise(mrl_graph *g, mrl_tensor *a, mrl_tensor *t, int kind, float prm,
                                  mrl_loss_reduction reduction, const char *op) {
  mrl_tensor *y;
  mrl_node *nd;
  double acc = 0.0;
  float scale;
  int i;
  if (!a || !t) return NULL;
  MRL_SHAPE_CHECK(mrl_tensor_same_shape(a, t), op, "input and target shapes must be equal", a, t);
  mrl__check_reduction(reduction, op, a);
  y = mrl__loss_output(g, a, 0, reduction, mrl_graph_wants_grad(g, a, t));
  if (!y) return NULL;
  for (i = 0; i < a->size; i++) {
    float dx, dt;
    double v = mrl__pointwise_loss(kind, prm, a->data[i], t->data[i], &dx, &dt);
    if (reduction == MRL_LOSS_NONE)
      y->data[i] = (float)v;
    else
      acc += v;
  }
  scale = reduction == MRL_LOSS_MEAN ? 1.0f / (float)(a->size ? a->size : 1) : 1.0f;
  if (reduction != MRL_LOSS_NONE) y->data[0] = (float)(acc * scale);
  MRL__FINITE(op, y, a, t);
  if ((nd = mrl_graph_record(g, op, mrl__pointwise_loss_backward, y)) != NULL) {
    nd->in[0] = a;
    nd->in[1] = t;
    nd->i[0] = kind;
    nd->f[0] = prm;
    nd->i[3] = (int)reduction;
    nd->f[3] = scale;
  }
  return y;
}

MRL_DEF mrl_tensor *mrl_mse_loss(mrl_graph *g, mrl_tensor *pred, mrl_tensor *target,
                                 mrl_loss_reduction reduction) {
  return mrl__pointwise(g, pred, target, MRL__LOSS_MSE, 0.0f, reduction, "mse_loss");
}

MRL_DEF mrl_tensor *mrl_huber_loss(mrl_graph *g, mrl_tensor *pred, mrl_tensor *target, float delta,
                                   mrl_loss_reduction reduction) {
  if (pred) MRL_SHAPE_CHECK(delta > 0.0f, "huber_loss", "delta must be > 0", pred, target);
  return mrl__pointwise(g, pred, target, MRL__LOSS_HUBER, delta, reduction, "huber_loss");
}

MRL_DEF mrl_tensor *mrl_smooth_l1_loss(mrl_graph *g, mrl_tensor *pred, mrl_tensor *target,
                                       float beta, mrl_loss_reduction reduction) {
  if (pred) MRL_SHAPE_CHECK(beta >= 0.0f, "smooth_l1_loss", "beta must be >= 0", pred, target);
  return mrl__pointwise(g, pred, target, MRL__LOSS_SMOOTH_L1, beta, reduction, "smooth_l1_loss");
}

MRL_DEF mrl_tensor *mrl_bce_with_logits(mrl_graph *g, mrl_tensor *logits, mrl_tensor *targets,
                                        mrl_loss_reduction reduction) {
  return mrl__pointwise(g, logits, targets, MRL__LOSS_BCE, 0.0f, reduction, "bce_with_logits");
}

/* ---- cross-entropy with logits ---- >>cross_entropy */

static float mrl__row_logsumexp(const float *r, int n) {
  float mx = r[0];
  double s = 0.0;
  int j;
  for (j = 1; j < n; j++)
    if (r[j] > mx) mx = r[j];
  for (j = 0; j < n; j++) s += exp((double)r[j] - mx);
  return mx + (float)log(s);
}

static void mrl__cross_entropy_backward(mrl_node *nd) {
  mrl_tensor *a = nd->in[0];
  const float *lse = nd->extra[0]->data;
  int rows = mrl_tensor_rows(a), c = mrl_tensor_cols(a), r, j;
  if (!a->grad) return;
  for (r = 0; r < rows; r++) {
    const float *xr = a->data + (size_t)r * c;
    float *gr = a->grad + (size_t)r * c, gl = mrl__loss_grad(nd, r);
    for (j = 0; j < c; j++) gr[j] += gl * expf(xr[j] - lse[r]);
    gr[nd->index[r]] -= gl;
  }
}

MRL_DEF mrl_tensor *mrl_cross_entropy(mrl_graph *g, mrl_tensor *logits, const int *targets,
                                      mrl_loss_reduction reduction) {
  mrl_tensor *y, *lse = NULL;
  mrl_node *nd;
  double acc = 0.0;
  float scale;
  int rows, c, r;
  if (!logits) return NULL;
  mrl__check_reduction(reduction, "cross_entropy", logits);
  rows = mrl_tensor_rows(logits);
  c = mrl_tensor_cols(logits);
  MRL_SHAPE_CHECK(c >= 1, "cross_entropy", "needs at least one class", logits, NULL);
  y = mrl__loss_output(g, logits, 1, reduction, mrl_graph_wants_grad(g, logits, NULL));
  if (!y) return NULL;
  if (y->grad) {
    lse = mrl_tensor_new(g, 1, &rows, 0);
    if (!lse) return NULL;
  }
  for (r = 0; r < rows; r++) {
    const float *xr = logits->data + (size_t)r * c;
    float l;
    if (targets[r] < 0 || targets[r] >= c) {
      char sx[64];
      fprintf(stderr, "memrl: cross_entropy: target %d at row %d outside [0,%d) for logits %s\n",
              targets[r], r, c, mrl_tensor_shape_string(logits, sx, sizeof sx));
      MRL_ASSERT(0 && "memrl: cross_entropy target out of range");
      abort();
    }
    l = mrl__row_logsumexp(xr, c);
    if (lse) lse->data[r] = l;
    if (reduction == MRL_LOSS_NONE)
      y->data[r] = l - xr[targets[r]];
    else
      acc += (double)l - xr[targets[r]];
  }
  scale = reduction == MRL_LOSS_MEAN ? 1.0f / (float)(rows ? rows : 1) : 1.0f;
  if (reduction != MRL_LOSS_NONE) y->data[0] = (float)(acc * scale);
  MRL__FINITE("cross_entropy", y, logits, NULL);
  if ((nd = mrl_graph_record(g, "cross_entropy", mrl__cross_entropy_backward, y)) != NULL) {
    nd->in[0] = logits;
    nd->index = targets;
    nd->extra[0] = lse;
    nd->i[3] = (int)reduction;
    nd->f[3] = scale;
  }
  return y;
}

/* ---- KL between diagonal Gaussians (mean, log-std) ---- >>kl_normal */

/* Element i of an input that is either full-size or one [D] row shared by all rows. */
#define MRL__KL_AT(t, i) ((size_t)(i) % (size_t)(t)->size)

static void mrl__kl_normal_backward(mrl_node *nd) {
  mrl_tensor *mp = nd->in[0], *sp = nd->in[1], *mq = nd->in[2], *sq = nd->in[3];
  int d = mrl_tensor_cols(mp), i;
  for (i = 0; i < mp->size; i++) {
    size_t ip = MRL__KL_AT(sp, i), jm = mq ? MRL__KL_AT(mq, i) : 0, js = sq ? MRL__KL_AT(sq, i) : 0;
    float gl = mrl__loss_grad(nd, i / d);
    float dm = mp->data[i] - (mq ? mq->data[jm] : 0.0f), lq = sq ? sq->data[js] : 0.0f;
    float iq = expf(-2.0f * lq), ratio = expf(2.0f * (sp->data[ip] - lq));
    if (mp->grad) mp->grad[i] += gl * dm * iq;
    if (mq && mq->grad) mq->grad[jm] -= gl * dm * iq;
    if (sp->grad) sp->grad[ip] += gl * (ratio - 1.0f);
    if (sq && sq->grad) sq->grad[js] += gl * (1.0f - ratio - dm * dm * iq);
  }
}

/* Full shape, or [D] with D = mu_p's last dimension. */
static int mrl__kl_shape_ok(const mrl_tensor *mu_p, const mrl_tensor *t) {
  return mrl_tensor_same_shape(mu_p, t) || (t->ndim == 1 && t->size == mrl_tensor_cols(mu_p));
}

MRL_DEF mrl_tensor *mrl_kl_normal(mrl_graph *g, mrl_tensor *mu_p, mrl_tensor *log_std_p,
                                  mrl_tensor *mu_q, mrl_tensor *log_std_q,
                                  mrl_loss_reduction reduction) {
  mrl_tensor *y, *ins[4];
  mrl_node *nd;
  double acc = 0.0, row = 0.0;
  float scale;
  int d, rows, i;
  /* NULL inputs after a full arena propagate NULL; a NULL q alone means N(0, 1). */
  if (!mu_p || !log_std_p || (!mu_q && g->status != MRL_OK)) return NULL;
  if ((!mu_q) != (!log_std_q)) {
    if (g->status != MRL_OK) return NULL;
    MRL_SHAPE_CHECK(0, "kl_normal", "mu_q and log_std_q must be both given or both NULL", mu_q,
                    log_std_q);
  }
  MRL_SHAPE_CHECK(mrl__kl_shape_ok(mu_p, log_std_p), "kl_normal",
                  "log_std_p must have mu_p's shape or be [D]", mu_p, log_std_p);
  if (mu_q) {
    MRL_SHAPE_CHECK(mrl__kl_shape_ok(mu_p, mu_q), "kl_normal",
                    "mu_q must have mu_p's shape or be [D]", mu_p, mu_q);
    MRL_SHAPE_CHECK(mrl__kl_shape_ok(mu_p, log_std_q), "kl_normal",
                    "log_std_q must have mu_p's shape or be [D]", mu_p, log_std_q);
  }
  mrl__check_reduction(reduction, "kl_normal", mu_p);
  d = mrl_tensor_cols(mu_p);
  rows = mrl_tensor_rows(mu_p);
  ins[0] = mu_p;
  ins[1] = log_std_p;
  ins[2] = mu_q;
  ins[3] = log_std_q;
  y = mrl__loss_output(g, mu_p, 1, reduction, mrl__any_grad(g, ins, 4));
  if (!y) return NULL;
  for (i = 0; i < mu_p->size; i++) {
    double sp = log_std_p->data[MRL__KL_AT(log_std_p, i)];
    double sq = log_std_q ? log_std_q->data[MRL__KL_AT(log_std_q, i)] : 0.0;
    double dm = (double)mu_p->data[i] - (mu_q ? mu_q->data[MRL__KL_AT(mu_q, i)] : 0.0);
    row += sq - sp + 0.5 * (exp(2.0 * (sp - sq)) + dm * dm * exp(-2.0 * sq)) - 0.5;
    if ((i + 1) % d == 0) {
      if (reduction == MRL_LOSS_NONE)
        y->data[i / d] = (float)row;
      else
        acc += row;
      row = 0.0;
    }
  }
  scale = reduction == MRL_LOSS_MEAN ? 1.0f / (float)(rows ? rows : 1) : 1.0f;
  if (reduction != MRL_LOSS_NONE) y->data[0] = (float)(acc * scale);
  MRL__FINITE("kl_normal", y, mu_p, mu_q);
  if ((nd = mrl_graph_record(g, "kl_normal", mrl__kl_normal_backward, y)) != NULL) {
    nd->in[0] = mu_p;
    nd->in[1] = log_std_p;
    nd->in[2] = mu_q;
    nd->in[3] = log_std_q;
    nd->i[3] = (int)reduction;
    nd->f[3] = scale;
  }
  return y;
}

/* ---- KL between categoricals given by logits ---- >>kl_categorical */

/* extra[0] holds, per row: logsumexp of p's logits, of q's logits, and the KL. */
static void mrl__kl_categorical_backward(mrl_node *nd) {
  mrl_tensor *a = nd->in[0], *b = nd->in[1];
  const float *st = nd->extra[0]->data;
  int rows = mrl_tensor_rows(a), c = mrl_tensor_cols(a), r, j;
  for (r = 0; r < rows; r++) {
    const float *ar = a->data + (size_t)r * c, *br = b->data + (size_t)r * c;
    float la = st[3 * r], lb = st[3 * r + 1], kl = st[3 * r + 2], gl = mrl__loss_grad(nd, r);
    for (j = 0; j < c; j++) {
      float lp = ar[j] - la, lq = br[j] - lb, p = expf(lp);
      if (a->grad && p > 0.0f) a->grad[(size_t)r * c + j] += gl * p * (lp - lq - kl);
      if (b->grad) b->grad[(size_t)r * c + j] += gl * (expf(lq) - p);
    }
  }
}

MRL_DEF mrl_tensor *mrl_kl_categorical(mrl_graph *g, mrl_tensor *p_logits, mrl_tensor *q_logits,
                                       mrl_loss_reduction reduction) {
  mrl_tensor *y, *st = NULL;
  mrl_node *nd;
  double acc = 0.0;
  float scale;
  int rows, c, r, j, n3;
  if (!p_logits || !q_logits) return NULL;
  MRL_SHAPE_CHECK(mrl_tensor_same_shape(p_logits, q_logits), "kl_categorical",
                  "p's and q's shapes must be equal", p_logits, q_logits);
  mrl__check_reduction(reduction, "kl_categorical", p_logits);
  rows = mrl_tensor_rows(p_logits);
  c = mrl_tensor_cols(p_logits);
  MRL_SHAPE_CHECK(c >= 1, "kl_categorical", "needs at least one class", p_logits, q_logits);
  y = mrl__loss_output(g, p_logits, 1, reduction, mrl_graph_wants_grad(g, p_logits, q_logits));
  if (!y) return NULL;
  if (y->grad) {
    n3 = 3 * rows;
    st = mrl_tensor_new(g, 1, &n3, 0);
    if (!st) return NULL;
  }
  for (r = 0; r < rows; r++) {
    const float *ar = p_logits->data + (size_t)r * c, *br = q_logits->data + (size_t)r * c;
    float la = mrl__row_logsumexp(ar, c), lb = mrl__row_logsumexp(br, c);
    double kl = 0.0;
    for (j = 0; j < c; j++) {
      float lp = ar[j] - la, lq = br[j] - lb, pj = expf(lp);
      if (pj > 0.0f) kl += (double)pj * ((double)lp - lq); /* 0 log 0 = 0: masked classes */
    }
    if (st) {
      st->data[3 * r] = la;
      st->data[3 * r + 1] = lb;
      st->data[3 * r + 2] = (float)kl;
    }
    if (reduction == MRL_LOSS_NONE)
      y->data[r] = (float)kl;
    else
      acc += kl;
  }
  scale = reduction == MRL_LOSS_MEAN ? 1.0f / (float)(rows ? rows : 1) : 1.0f;
  if (reduction != MRL_LOSS_NONE) y->data[0] = (float)(acc * scale);
  MRL__FINITE("kl_categorical", y, p_logits, q_logits);
  if ((nd = mrl_graph_record(g, "kl_categorical", mrl__kl_categorical_backward, y)) != NULL) {
    nd->in[0] = p_logits;
    nd->in[1] = q_logits;
    nd->extra[0] = st;
    nd->i[3] = (int)reduction;
    nd->f[3] = scale;
  }
  return y;
}

/* ---- cosine similarity and squared distances, [B,D] x [N,D] -> [B,N] ---- >>similarity */

/* Checks a[B,D], b[N,D]; makes the [B,N] output and, when recording, a [B,N]
 * scratch tensor for backward (returned through *scratch). */
static mrl_tensor *mrl__pairwise_output(mrl_graph *g, mrl_tensor *a, mrl_tensor *b, const char *op,
                                        mrl_tensor **scratch) {
  mrl_tensor *y;
  int shape[2];
  MRL_SHAPE_CHECK(a->ndim == 2 && b->ndim == 2 && a->shape[1] == b->shape[1], op,
                  "need [B,D] and [N,D] with the same D", a, b);
  shape[0] = a->shape[0];
  shape[1] = b->shape[0];
  y = mrl_op_output(g, 2, shape, mrl_graph_wants_grad(g, a, b));
  *scratch = NULL;
  if (y && y->grad) {
    *scratch = mrl_tensor_new(g, 2, shape, 0);
    if (!*scratch) return NULL;
  }
  return y;
}

static void mrl__cosine_backward(mrl_node *nd) {
  mrl_tensor *a = nd->in[0], *b = nd->in[1], *y = nd->out;
  float *gs = nd->extra[0]->data, eps = nd->f[0];
  const float *na = nd->extra[1]->data, *nb = na + a->shape[0];
  int m = a->shape[0], n = b->shape[0], d = a->shape[1], i, j, k;
  /* dy/da_i = b_j / (|a_i|' |b_j|') - y_ij a_i / |a_i|^2 (second term only where
   * |a_i| > eps; |.|' is the norm clamped to eps); likewise for b_j. */
  for (i = 0; i < m; i++)
    for (j = 0; j < n; j++)
      gs[(size_t)i * n + j] =
          y->grad[(size_t)i * n + j] / ((na[i] > eps ? na[i] : eps) * (nb[j] > eps ? nb[j] : eps));
  if (a->grad) {
    mrl_gemm(0, 0, m, d, n, gs, n, b->data, d, 1.0f, a->grad, d);
    for (i = 0; i < m; i++) {
      double t = 0.0;
      float c;
      if (!(na[i] > eps)) continue;
      for (j = 0; j < n; j++) t += (double)y->grad[(size_t)i * n + j] * y->data[(size_t)i * n + j];
      c = (float)(t / ((double)na[i] * na[i]));
      for (k = 0; k < d; k++) a->grad[(size_t)i * d + k] -= c * a->data[(size_t)i * d + k];
    }
  }
  if (b->grad) {
    mrl_gemm(1, 0, n, d, m, gs, n, a->data, d, 1.0f, b->grad, d);
    for (j = 0; j < n; j++) {
      double t = 0.0;
      float c;
      if (!(nb[j] > eps)) continue;
      for (i = 0; i < m; i++) t += (double)y->grad[(size_t)i * n + j] * y->data[(size_t)i * n + j];
      c = (float)(t / ((double)nb[j] * nb[j]));
      for (k = 0; k < d; k++) b->grad[(size_t)j * d + k] -= c * b->data[(size_t)j * d + k];
    }
  }
}

static double mrl__row_sqnorm(const float *r, int d) {
  double s = 0.0;
  int k;
  for (k = 0; k < d; k++) s += (double)r[k] * r[k];
  return s;
}

static float mrl__row_norm(const float *r, int d) {
  return (float)sqrt(mrl__row_sqnorm(r, d));
}

MRL_DEF mrl_tensor *mrl_cosine_similarity(mrl_graph *g, mrl_tensor *keys, mrl_tensor *memory,
                                          float eps) {
  mrl_tensor *y, *gs, *norms;
  mrl_node *nd;
  int m, n, d, i, j, mn;
  if (!keys || !memory) return NULL;
  y = mrl__pairwise_output(g, keys, memory, "cosine_similarity", &gs);
  if (!y) return NULL;
  m = keys->shape[0];
  n = memory->shape[0];
  d = keys->shape[1];
  mn = m + n;
  norms = mrl_tensor_new(g, 1, &mn, 0);
  if (!norms) return NULL;
  for (i = 0; i < m; i++) norms->data[i] = mrl__row_norm(keys->data + (size_t)i * d, d);
  for (j = 0; j < n; j++) norms->data[m + j] = mrl__row_norm(memory->data + (size_t)j * d, d);
  mrl_gemm(0, 1, m, n, d, keys->data, d, memory->data, d, 0.0f, y->data, n);
  for (i = 0; i < m; i++) {
    float na = norms->data[i] > eps ? norms->data[i] : eps;
    for (j = 0; j < n; j++) {
      float nb = norms->data[m + j] > eps ? norms->data[m + j] : eps;
      y->data[(size_t)i * n + j] /= na * nb;
    }
  }
  MRL__FINITE("cosine_similarity", y, keys, memory);
  if ((nd = mrl_graph_record(g, "cosine_similarity", mrl__cosine_backward, y)) != NULL) {
    nd->in[0] = keys;
    nd->in[1] = memory;
    nd->extra[0] = gs;
    nd->extra[1] = norms;
    nd->f[0] = eps;
  }
  return y;
}

static void mrl__sq_distances_backward(mrl_node *nd) {
  mrl_tensor *a = nd->in[0], *b = nd->in[1], *y = nd->out;
  float *s = nd->extra[0]->data;
  int m = a->shape[0], n = b->shape[0], d = a->shape[1], i, j, k;
  /* d/da_i = 2 sum_j g_ij (a_i - b_j), d/db_j = 2 sum_i g_ij (b_j - a_i):
   * the cross terms are one gemm each with S = -2 G. */
  for (i = 0; i < m * n; i++) s[i] = -2.0f * y->grad[i];
  if (a->grad) {
    mrl_gemm(0, 0, m, d, n, s, n, b->data, d, 1.0f, a->grad, d);
    for (i = 0; i < m; i++) {
      double t = 0.0;
      for (j = 0; j < n; j++) t += y->grad[(size_t)i * n + j];
      for (k = 0; k < d; k++)
        a->grad[(size_t)i * d + k] += 2.0f * (float)t * a->data[(size_t)i * d + k];
    }
  }
  if (b->grad) {
    mrl_gemm(1, 0, n, d, m, s, n, a->data, d, 1.0f, b->grad, d);
    for (j = 0; j < n; j++) {
      double t = 0.0;
      for (i = 0; i < m; i++) t += y->grad[(size_t)i * n + j];
      for (k = 0; k < d; k++)
        b->grad[(size_t)j * d + k] += 2.0f * (float)t * b->data[(size_t)j * d + k];
    }
  }
}

MRL_DEF mrl_tensor *mrl_sq_distances(mrl_graph *g, mrl_tensor *a, mrl_tensor *b) {
  mrl_tensor *y, *s, *sq;
  mrl_node *nd;
  int m, n, d, i, j, mn;
  if (!a || !b) return NULL;
  y = mrl__pairwise_output(g, a, b, "sq_distances", &s);
  if (!y) return NULL;
  m = a->shape[0];
  n = b->shape[0];
  d = a->shape[1];
  mn = m + n;
  sq = mrl_tensor_new(g, 1, &mn, 0); /* squared norms; only the forward needs them */
  if (!sq) return NULL;
  for (i = 0; i < m; i++) sq->data[i] = (float)mrl__row_sqnorm(a->data + (size_t)i * d, d);
  for (j = 0; j < n; j++) sq->data[m + j] = (float)mrl__row_sqnorm(b->data + (size_t)j * d, d);
  mrl_gemm(0, 1, m, n, d, a->data, d, b->data, d, 0.0f, y->data, n);
  for (i = 0; i < m; i++)
    for (j = 0; j < n; j++) {
      float v = sq->data[i] + sq->data[m + j] - 2.0f * y->data[(size_t)i * n + j];
      y->data[(size_t)i * n + j] = v > 0.0f ? v : 0.0f;
    }
  MRL__FINITE("sq_distances", y, a, b);
  if ((nd = mrl_graph_record(g, "sq_distances", mrl__sq_distances_backward, y)) != NULL) {
    nd->in[0] = a;
    nd->in[1] = b;
    nd->extra[0] = s;
  }
  return y;
}

/* ---- straight-through ---- >>straight_through */

static void mrl__straight_through_backward(mrl_node *nd) {
  mrl_tensor *x = nd->in[0], *y = nd->out;
  int i;
  if (!x->grad) return;
  for (i = 0; i < y->size; i++) x->grad[i] += y->grad[i];
}

static mrl_tensor *mrl__straight_through(mrl_graph *g, mrl_tensor *x, const mrl_tensor *value,
                                         float (*f)(float)) {
  mrl_tensor *y;
  mrl_node *nd;
  int i;
  y = mrl_op_output(g, x->ndim, x->shape, mrl_graph_wants_grad(g, x, NULL));
  if (!y) return NULL;
  if (value)
    memcpy(y->data, value->data, sizeof(float) * (size_t)y->size);
  else
    for (i = 0; i < y->size; i++) y->data[i] = f(x->data[i]);
  MRL__FINITE("straight_through", y, x, value);
  if ((nd = mrl_graph_record(g, "straight_through", mrl__straight_through_backward, y)) != NULL)
    nd->in[0] = x;
  return y;
}

MRL_DEF mrl_tensor *mrl_straight_through(mrl_graph *g, mrl_tensor *x, mrl_tensor *value) {
  if (!x || !value) return NULL;
  MRL_SHAPE_CHECK(mrl_tensor_same_shape(x, value), "straight_through",
                  "x and value shapes must be equal", x, value);
  return mrl__straight_through(g, x, value, NULL);
}

MRL_DEF mrl_tensor *mrl_straight_through_fn(mrl_graph *g, mrl_tensor *x, float (*f)(float)) {
  if (!x) return NULL;
  MRL_ASSERT(f != NULL);
  return mrl__straight_through(g, x, NULL, f);
}

/* ---- gradient check ---- >>gradcheck */

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

/* ---- forward-mode JVP over the tape ---- >>jvp
 * Each rule reads its inputs' tangents from their grad buffers (NULL: the
 * input is a constant, tangent 0) and writes (=, not +=) its output's
 * tangent into out->grad. Rules are the analytic derivatives of the forward
 * code above; tests/test_jvp.c checks each one against central finite
 * differences and against the backward pass (<u, J v> = <J^T u, v>). */

/* dy = act'(pre) (dx W^T + x dW^T + db): linear, linear_relu (act' = [y > 0])
 * and linear_tanh (act' = 1 - y^2), told apart by nd->i[0]. */
static void mrl__jvp_linear(mrl_node *nd) {
  mrl_tensor *x = nd->in[0], *w = nd->in[1], *b = nd->in[2], *y = nd->out;
  int m = mrl_tensor_rows(x), k = mrl_tensor_cols(x), n = w->shape[0], i, j;
  size_t e;
  memset(y->grad, 0, sizeof(float) * (size_t)y->size);
  if (x->grad) mrl_gemm(0, 1, m, n, k, x->grad, k, w->data, k, 1.0f, y->grad, n);
  if (w->grad) mrl_gemm(0, 1, m, n, k, x->data, k, w->grad, k, 1.0f, y->grad, n);
  if (b && b->grad)
    for (i = 0; i < m; i++)
      for (j = 0; j < n; j++) y->grad[(size_t)i * n + j] += b->grad[j];
  if (nd->i[0] == 1)
    for (e = 0; e < (size_t)y->size; e++) y->grad[e] = y->data[e] > 0.0f ? y->grad[e] : 0.0f;
  else if (nd->i[0] == 2)
    for (e = 0; e < (size_t)y->size; e++) y->grad[e] *= 1.0f - y->data[e] * y->data[e];
}

static void mrl__jvp_matmul(mrl_node *nd) { /* dC = dA B + A dB in the node's layout */
  mrl_tensor *a = nd->in[0], *b = nd->in[1], *c = nd->out;
  int layout = nd->i[0], m = c->shape[0], n = c->shape[1], k = nd->i[1];
  int ta = layout == 2, tb = layout == 1, lda = ta ? m : k, ldb = tb ? k : n;
  memset(c->grad, 0, sizeof(float) * (size_t)c->size);
  if (a->grad) mrl_gemm(ta, tb, m, n, k, a->grad, lda, b->data, ldb, 1.0f, c->grad, n);
  if (b->grad) mrl_gemm(ta, tb, m, n, k, a->data, lda, b->grad, ldb, 1.0f, c->grad, n);
}

/* Elementwise ops have a diagonal Jacobian, its own transpose: the backward
 * pass run with the input's tangent in the output gradient's place and the
 * output tangent in the input gradient's place accumulates J dx. */
static void mrl__jvp_unary(mrl_node *nd) {
  mrl_node f = *nd;
  mrl_tensor x = *nd->in[0], y = *nd->out;
  memset(nd->out->grad, 0, sizeof(float) * (size_t)nd->out->size);
  if (!nd->in[0]->grad) return;
  x.grad = nd->out->grad;
  y.grad = nd->in[0]->grad;
  f.in[0] = &x;
  f.out = &y;
  mrl__unary_backward(&f);
}

static void mrl__jvp_binary(mrl_node *nd) {
  mrl_tensor *a = nd->in[0], *b = nd->in[1], *m = nd->in[2], *y = nd->out;
  int kind = nd->i[0], o4[MRL_MAX_DIMS], sa[MRL_MAX_DIMS], sb[MRL_MAX_DIMS], sm[MRL_MAX_DIMS];
  int i0, i1, i2, i3;
  size_t r = 0;
  mrl__pad4(y->shape, y->ndim, o4);
  mrl__bstrides(a, sa);
  mrl__bstrides(b, sb);
  if (m)
    mrl__bstrides(m, sm);
  else
    memset(sm, 0, sizeof sm);
  for (i0 = 0; i0 < o4[0]; i0++)
    for (i1 = 0; i1 < o4[1]; i1++)
      for (i2 = 0; i2 < o4[2]; i2++)
        for (i3 = 0; i3 < o4[3]; i3++, r++) {
          size_t ia =
              (size_t)i0 * sa[0] + (size_t)i1 * sa[1] + (size_t)i2 * sa[2] + (size_t)i3 * sa[3];
          size_t ib =
              (size_t)i0 * sb[0] + (size_t)i1 * sb[1] + (size_t)i2 * sb[2] + (size_t)i3 * sb[3];
          size_t im =
              (size_t)i0 * sm[0] + (size_t)i1 * sm[1] + (size_t)i2 * sm[2] + (size_t)i3 * sm[3];
          float av = a->data[ia], bv = b->data[ib], w;
          float da = a->grad ? a->grad[ia] : 0.0f, db = b->grad ? b->grad[ib] : 0.0f, t;
          switch (kind) {
          case MRL__ADD: t = da + db; break;
          case MRL__SUB: t = da - db; break;
          case MRL__MUL: t = da * bv + av * db; break;
          case MRL__DIV: t = da / bv - av * db / (bv * bv); break;
          case MRL__MIN:
          case MRL__MAX: /* the backward pass's subgradient: ties split evenly */
            w = av == bv ? 0.5f : ((kind == MRL__MAX ? av > bv : av < bv) ? 1.0f : 0.0f);
            t = w * da + (1.0f - w) * db;
            break;
          default: t = m->data[im] != 0.0f ? da : db; break;
          }
          y->grad[r] = t;
        }
}

static void mrl__jvp_copy(mrl_node *nd) { /* permute, slice, broadcast_to: the same copy */
  const mrl__copy_plan *p = (const mrl__copy_plan *)(void *)nd->extra[1];
  mrl_tensor *x = nd->in[0];
  memset(nd->out->grad, 0, sizeof(float) * (size_t)nd->out->size);
  if (x->grad) mrl__strided_copy(p->n4, x->grad + p->src_off, p->src, nd->out->grad, p->dst, 0);
}

static void mrl__jvp_concat(mrl_node *nd) {
  mrl_tensor *const *parts = (mrl_tensor *const *)(void *)nd->extra[0];
  mrl_tensor *y = nd->out;
  int n = nd->i[0], axis = nd->i[1], stack = nd->i[2], p, y4[MRL_MAX_DIMS], ys[MRL_MAX_DIMS];
  int off = MRL_MAX_DIMS - y->ndim;
  size_t at = 0;
  memset(y->grad, 0, sizeof(float) * (size_t)y->size);
  mrl__pad4(y->shape, y->ndim, y4);
  mrl__cstrides(y4, ys);
  for (p = 0; p < n; p++) {
    mrl_tensor *t = parts[p];
    int b4[MRL_MAX_DIMS], bs[MRL_MAX_DIMS];
    memcpy(b4, y4, sizeof b4);
    b4[off + axis] = stack ? 1 : t->shape[axis];
    mrl__cstrides(b4, bs);
    if (t->grad) mrl__strided_copy(b4, t->grad, bs, y->grad + at * ys[off + axis], ys, 0);
    at += (size_t)b4[off + axis];
  }
}

static void mrl__jvp_index_select(mrl_node *nd) {
  mrl_tensor *x = nd->in[0], *y = nd->out;
  int n = nd->i[0], row = nd->i[1], r;
  for (r = 0; r < n; r++) {
    float *gy = y->grad + (size_t)r * row;
    if (x->grad)
      memcpy(gy, x->grad + (size_t)nd->index[r] * row, sizeof(float) * (size_t)row);
    else
      memset(gy, 0, sizeof(float) * (size_t)row);
  }
}

static void mrl__jvp_gather(mrl_node *nd) {
  mrl_tensor *x = nd->in[0], *y = nd->out;
  int outer = nd->i[0], n = nd->i[1], k = nd->i[2], inner = nd->i[3], o, q, j;
  for (o = 0; o < outer; o++)
    for (q = 0; q < k; q++)
      for (j = 0; j < inner; j++) {
        size_t r = ((size_t)o * k + q) * inner + j;
        y->grad[r] = x->grad ? x->grad[((size_t)o * n + nd->index[r]) * inner + j] : 0.0f;
      }
}

static void mrl__jvp_reduce(mrl_node *nd) {
  mrl_tensor *x = nd->in[0], *y = nd->out;
  int kind = nd->i[0], outer = nd->i[1], n = nd->i[2], inner = nd->i[3], o, j, k;
  float s = nd->f[0];
  for (o = 0; o < outer; o++)
    for (j = 0; j < inner; j++) {
      size_t r = (size_t)o * inner + j, base = (size_t)o * n * inner + j;
      const float *xr = x->data + base, *dx = x->grad ? x->grad + base : NULL;
      double acc = 0.0, mean = 0.0;
      if (!dx) {
        y->grad[r] = 0.0f;
        continue;
      }
      switch (kind) {
      case MRL__R_SUM:
      case MRL__R_MEAN:
        for (k = 0; k < n; k++) acc += dx[(size_t)k * inner];
        acc *= s;
        break;
      case MRL__R_MAX: acc = dx[(size_t)nd->index[r] * inner]; break;
      case MRL__R_LSE:
        for (k = 0; k < n; k++)
          acc += (double)expf(xr[(size_t)k * inner] - y->data[r]) * dx[(size_t)k * inner];
        break;
      default:
        for (k = 0; k < n; k++) mean += xr[(size_t)k * inner];
        mean /= n;
        for (k = 0; k < n; k++)
          acc += 2.0 * s * ((double)xr[(size_t)k * inner] - mean) * dx[(size_t)k * inner];
        break;
      }
      y->grad[r] = (float)acc;
    }
}

/* softmax: dy = y (dx - sum(y dx)); log_softmax: dy = dx - sum(softmax dx).
 * Masked entries are constants (probability 0, log-probability -1e8): dy 0. */
static void mrl__jvp_softmax(mrl_node *nd) {
  mrl_tensor *x = nd->in[0], *y = nd->out;
  const unsigned char *keep = (const unsigned char *)(void *)nd->extra[0];
  int is_log = nd->i[0], outer = nd->i[1], n = nd->i[2], inner = nd->i[3], o, j, k;
  for (o = 0; o < outer; o++)
    for (j = 0; j < inner; j++) {
      size_t base = (size_t)o * n * inner + j;
      const float *yr = y->data + base, *dx = x->grad + base;
      const unsigned char *kr = keep ? keep + base : NULL;
      float *dy = y->grad + base;
      double acc = 0.0;
      for (k = 0; k < n; k++) {
        float p = is_log ? expf(yr[(size_t)k * inner]) : yr[(size_t)k * inner];
        if (!kr || kr[(size_t)k * inner]) acc += (double)p * dx[(size_t)k * inner];
      }
      for (k = 0; k < n; k++) {
        float d = dx[(size_t)k * inner] - (float)acc;
        dy[(size_t)k * inner] = kr && !kr[(size_t)k * inner] ? 0.0f
                                : is_log                     ? d
                                                             : yr[(size_t)k * inner] * d;
      }
    }
}

/* batched matmul: dC = dA B + A dB per matrix, in the node's layout */
static void mrl__jvp_bmm(mrl_node *nd) {
  mrl_tensor *a = nd->in[0], *b = nd->in[1], *c = nd->out;
  int layout = nd->i[0], k = nd->i[1], m = c->shape[c->ndim - 2], n = c->shape[c->ndim - 1];
  int lda = a->shape[a->ndim - 1], ldb = b->shape[b->ndim - 1], nb[2], sa[2], sb[2], i0, i1;
  mrl__bmm_offsets(a, b, c, nb, sa, sb);
  memset(c->grad, 0, sizeof(float) * (size_t)c->size);
  for (i0 = 0; i0 < nb[0]; i0++)
    for (i1 = 0; i1 < nb[1]; i1++) {
      size_t oa = (size_t)i0 * sa[0] + (size_t)i1 * sa[1];
      size_t ob = (size_t)i0 * sb[0] + (size_t)i1 * sb[1];
      float *dc = c->grad + ((size_t)i0 * nb[1] + i1) * (size_t)m * n;
      if (a->grad)
        mrl_gemm(layout == 2, layout == 1, m, n, k, a->grad + oa, lda, b->data + ob, ldb, 1.0f, dc,
                 n);
      if (b->grad)
        mrl_gemm(layout == 2, layout == 1, m, n, k, a->data + oa, lda, b->grad + ob, ldb, 1.0f, dc,
                 n);
    }
}

/* topk: the tangents of the selected entries */
static void mrl__jvp_topk(mrl_node *nd) {
  mrl_tensor *x = nd->in[0], *y = nd->out;
  int rows = nd->i[0], n = nd->i[1], k = nd->i[2], r, q;
  for (r = 0; r < rows; r++)
    for (q = 0; q < k; q++)
      y->grad[(size_t)r * k + q] =
          x->grad ? x->grad[(size_t)r * n + nd->index[(size_t)r * k + q]] : 0.0f;
}

/* layernorm, y = xh w + b with xh = (x - m) s: dxh = s (dx - mean(dx) -
 * xh mean(xh dx)), dy = dxh w + xh dw + db. */
static void mrl__jvp_layernorm(mrl_node *nd) {
  mrl_tensor *x = nd->in[0], *w = nd->in[1], *b = nd->in[2], *y = nd->out;
  const float *mean = nd->extra[0]->data, *rstd = nd->extra[1]->data;
  int rows = mrl_tensor_rows(x), d = mrl_tensor_cols(x), r, j;
  for (r = 0; r < rows; r++) {
    const float *xr = x->data + (size_t)r * d, *dx = x->grad ? x->grad + (size_t)r * d : NULL;
    float *dy = y->grad + (size_t)r * d, m = mean[r], s = rstd[r], a1 = 0.0f, a2 = 0.0f;
    if (dx && d > 0) {
      double s1 = 0.0, s2 = 0.0;
      for (j = 0; j < d; j++) {
        s1 += dx[j];
        s2 += (double)dx[j] * ((xr[j] - m) * s);
      }
      a1 = (float)(s1 / d);
      a2 = (float)(s2 / d);
    }
    for (j = 0; j < d; j++) {
      float xh = (xr[j] - m) * s, t = dx ? s * (dx[j] - a1 - xh * a2) : 0.0f;
      t *= w ? w->data[j] : 1.0f;
      if (w && w->grad) t += xh * w->grad[j];
      if (b && b->grad) t += b->grad[j];
      dy[j] = t;
    }
  }
}

/* Fused attention, per (batch, head): dS = scale (dQ Kᵀ + Q dKᵀ + dbias)
 * (the bias's tangent read through the relative shift where the forward
 * read it so; Transformer-XL's bias qr rkᵀ has tangent dqr rkᵀ + qr drkᵀ),
 * dP = P (dS - rowsum(P dS)) (masked and empty rows have P = 0, so dP = 0
 * there: no mask is needed), dO = dP V + P dV. Scratch: the node's dS
 * buffer (T K floats, twice that with the relative term). */
static void mrl__jvp_attention(mrl_node *nd) {
  mrl_tensor *q = nd->in[0], *k = nd->in[1], *v = nd->in[2], *bias = nd->in[3], *y = nd->out;
  const float *P = (const float *)(void *)nd->extra[0];
  float *dS = (float *)(void *)nd->extra[1], scale = nd->f[0];
  mrl_tensor *qr = nd->extra[2], *rk = nd->extra[3];
  int H = nd->i[0], qc = nd->i[1], kc = nd->i[2], vc = nd->i[3], shift = nd->f[1] != 0.0f;
  int B = y->shape[0], T = y->shape[1], E = y->shape[2], K = k->shape[1], D = E / H;
  int ldq = q->shape[2], ldk = k->shape[2], ldv = v->shape[2], b, h, t, j;
  int rel = qr && (qr->grad || rk->grad);
  float *dbd = dS + (size_t)T * K;
  memset(y->grad, 0, sizeof(float) * (size_t)y->size);
  for (b = 0; b < B; b++)
    for (h = 0; h < H; h++) {
      size_t n = (size_t)b * H + h;
      const float *Pn = P + n * T * K;
      float *dO = y->grad + (size_t)b * T * E + h * D;
      size_t qo = (size_t)b * T * ldq + qc + h * D, ko = (size_t)b * K * ldk + kc + h * D;
      size_t vo = (size_t)b * K * ldv + vc + h * D;
      memset(dS, 0, sizeof(float) * (size_t)T * K);
      if (q->grad) mrl_gemm(0, 1, T, K, D, q->grad + qo, ldq, k->data + ko, ldk, 1.0f, dS, K);
      if (k->grad) mrl_gemm(0, 1, T, K, D, q->data + qo, ldq, k->grad + ko, ldk, 1.0f, dS, K);
      if (rel) { /* the unshifted relative term's tangent, row t by distance */
        size_t ro = (size_t)b * T * E + h * D;
        memset(dbd, 0, sizeof(float) * (size_t)T * K);
        if (qr->grad) mrl_gemm(0, 1, T, K, D, qr->grad + ro, E, rk->data + h * D, E, 1.0f, dbd, K);
        if (rk->grad) mrl_gemm(0, 1, T, K, D, qr->data + ro, E, rk->grad + h * D, E, 1.0f, dbd, K);
      }
      for (t = 0; t < T; t++) {
        const float *pr = Pn + (size_t)t * K;
        const float *br =
            rel ? dbd + (size_t)t * K : (bias && bias->grad ? bias->grad + (n * T + t) * K : NULL);
        float *dr = dS + (size_t)t * K;
        double acc = 0.0;
        for (j = 0; j < K; j++) {
          if (br) dr[j] += br[shift && T - 1 - t + j >= K ? K - 1 : (shift ? T - 1 - t + j : j)];
          dr[j] *= scale;
          acc += (double)pr[j] * dr[j];
        }
        for (j = 0; j < K; j++) dr[j] = pr[j] * (dr[j] - (float)acc);
      }
      mrl_gemm(0, 0, T, D, K, dS, K, v->data + vo, ldv, 1.0f, dO, E);
      if (v->grad) mrl_gemm(0, 0, T, D, K, Pn, K, v->grad + vo, ldv, 1.0f, dO, E);
    }
}

/* conv2d is linear in x and in w: dy = conv(dx, w) + conv(x, dw) + db, one
 * image at a time through the node's im2col buffer. */
static void mrl__jvp_conv2d(mrl_node *nd) {
  mrl_tensor *x = nd->in[0], *wt = nd->in[1], *b = nd->in[2], *y = nd->out;
  float *cols = nd->extra[0] ? nd->extra[0]->data : NULL; /* NULL: the image is its own cols */
  int n = x->shape[0], c = x->shape[1], h = x->shape[2], w = x->shape[3];
  int o = wt->shape[0], kh = wt->shape[2], kw = wt->shape[3];
  int oh = y->shape[2], ow = y->shape[3], ohw = oh * ow, ckk = c * kh * kw, im, q, r;
  for (im = 0; im < n; im++) {
    size_t xo = (size_t)im * c * h * w;
    float *dy = y->grad + (size_t)im * o * ohw;
    for (q = 0; q < o; q++)
      for (r = 0; r < ohw; r++) dy[(size_t)q * ohw + r] = b && b->grad ? b->grad[q] : 0.0f;
    if (x->grad) {
      const float *cn = x->grad + xo;
      if (cols) {
        mrl__im2col(cn, c, h, w, kh, kw, nd->index, oh, ow, cols);
        cn = cols;
      }
      mrl_gemm(0, 0, o, ohw, ckk, wt->data, ckk, cn, ohw, 1.0f, dy, ohw);
    }
    if (wt->grad) {
      const float *cn = x->data + xo;
      if (cols) {
        mrl__im2col(cn, c, h, w, kh, kw, nd->index, oh, ow, cols);
        cn = cols;
      }
      mrl_gemm(0, 0, o, ohw, ckk, wt->grad, ckk, cn, ohw, 1.0f, dy, ohw);
    }
  }
}

MRL_DEF mrl_jvp_fn mrl_jvp_rule(const mrl_node *nd) {
  mrl_backward_fn b = nd->backward;
  if (b == mrl__linear_backward) return mrl__jvp_linear;
  if (b == mrl__matmul_backward) return mrl__jvp_matmul;
  if (b == mrl__unary_backward) return mrl__jvp_unary;
  if (b == mrl__binary_backward) return mrl__jvp_binary;
  if (b == mrl__copy_backward) return mrl__jvp_copy;
  if (b == mrl__concat_backward) return mrl__jvp_concat;
  if (b == mrl__index_select_backward) return mrl__jvp_index_select;
  if (b == mrl__gather_backward) return mrl__jvp_gather;
  if (b == mrl__reduce_backward) return mrl__jvp_reduce;
  if (b == mrl__softmax_backward) return mrl__jvp_softmax;
  if (b == mrl__bmm_backward) return mrl__jvp_bmm;
  if (b == mrl__topk_backward) return mrl__jvp_topk;
  if (b == mrl__layernorm_backward) return mrl__jvp_layernorm;
  if (b == mrl__attention_backward) return mrl__jvp_attention;
  if (b == mrl__conv2d_backward) return mrl__jvp_conv2d;
  return NULL;
}

MRL_DEF mrl_result mrl_graph_jvp(mrl_graph *g, mrl_jvp_lookup rule, char *error,
                                 size_t error_size) {
  mrl_node *n, **order;
  mrl_jvp_fn *fns;
  int count = 0, i;
  if (error && error_size) error[0] = '\0';
  if (g->status != MRL_OK) return g->status;
  if (g->backward_done) {
    if (error && error_size)
      snprintf(error, error_size, "mrl_graph_jvp: the tape has already been replayed");
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (!rule) rule = mrl_jvp_rule;
  order = (mrl_node **)mrl_graph_alloc(g, sizeof(mrl_node *) * (size_t)(g->num_nodes + 1));
  fns = (mrl_jvp_fn *)mrl_graph_alloc(g, sizeof(mrl_jvp_fn) * (size_t)(g->num_nodes + 1));
  if (!order || !fns) return MRL_ERR_OUT_OF_MEMORY;
  /* the tape links backwards: collect it, and check every rule before writing anything */
  for (n = g->tape; n && count < g->num_nodes; n = n->prev) order[count++] = n;
  for (i = 0; i < count; i++)
    if (!(fns[i] = rule(order[i]))) {
      if (error && error_size)
        snprintf(error, error_size, "mrl_graph_jvp: no forward-mode rule for op '%s'",
                 order[i]->op ? order[i]->op : "?");
      return MRL_ERR_INVALID_ARGUMENT;
    }
  g->backward_done = 1; /* the gradient buffers now hold tangents */
  for (i = count - 1; i >= 0; i--) fns[i](order[i]);
  return MRL_OK;
}

#ifdef __cplusplus
}
#endif
#endif /* MEMRL_TENSOR_IMPLEMENTATION */

/*
---- memrl licence: the text of LICENSE (tools/run_tests.sh checks every copy) ----
This software is available under two licences; choose whichever you prefer.

------------------------------------------------------------------------------
ALTERNATIVE A - MIT License

Copyright (c) 2026 the memrl authors

Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.

------------------------------------------------------------------------------
ALTERNATIVE B - Public Domain (www.unlicense.org)

This is free and unencumbered software released into the public domain.
Anyone is free to copy, modify, publish, use, compile, sell, or distribute this
software, either in source code form or as a compiled binary, for any purpose,
commercial or non-commercial, and by any means.
---- end of memrl licence ----
*/
