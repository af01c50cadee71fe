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

/* Logistic function with exp's argument kept non-positive (no overflow). */
static inline float mrl_sigmoidf(float x) {
  float e;
  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
  e = expf(x);
  return e / (1.0f + e);
}

/* ---- kernels (no graph), used by layers and algorithms ---- */
/* C[M,N] = beta*C + op(A) op(B), op = transpose when the flag is set.
 * lda/ldb/ldc are row strides of the matrices as stored. */
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
 * Blocked kernel: op(B) is packed, panel by panel (KC rows x 8 columns,
 * zero-padded), into a stack buffer, and a 4x8 block of C is accumulated in
 * registers over the panel. With GCC or Clang the 8-wide rows use 4-wide vector
 * extensions (SSE on x86-64, NEON on ARM), which -O2 turns into SIMD code without
 * -ffast-math; other compilers get the same arithmetic in scalar loops. The
 * summation order depends only on the shapes, never on threads, so results
 * are bitwise reproducible. */
#define MRL__MR 4
#define MRL__NR 8
#define MRL__KC 256

#if (defined(__GNUC__) || defined(__clang__)) && !defined(MRL_NO_VECTOR_EXTENSIONS)
typedef float mrl__v4 __attribute__((vector_size(16), aligned(4)));
#define MRL__HAVE_V4 1
#endif

/* C[0..mb)[0..nb) += A-rows x panel, where element p of row r of A is at
 * a[r*ars + p*aps]. Full 4-row blocks take the register kernel; edges the
 * plain loop (same products, same order per element). */
static void mrl__gemm_block(int mb, int nb, int kb, const float *a, size_t ars, size_t aps,
                            const float *panel, float *c, int ldc) {
  int r, p, q;
#ifdef MRL__HAVE_V4
  if (mb == MRL__MR) {
    mrl__v4 c00, c01, c10, c11, c20, c21, c30, c31, b0, b1;
    float out[MRL__MR][MRL__NR];
    const float *a0 = a, *a1 = a + ars, *a2 = a + 2 * ars, *a3 = a + 3 * ars;
    memset(&c00, 0, sizeof c00);
    c01 = c10 = c11 = c20 = c21 = c30 = c31 = c00;
    for (p = 0; p < kb; p++) {
      size_t o = (size_t)p * aps;
      memcpy(&b0, panel + (size_t)p * MRL__NR, sizeof b0);
      memcpy(&b1, panel + (size_t)p * MRL__NR + 4, sizeof b1);
      c00 += a0[o] * b0;
      c01 += a0[o] * b1;
      c10 += a1[o] * b0;
      c11 += a1[o] * b1;
      c20 += a2[o] * b0;
      c21 += a2[o] * b1;
      c30 += a3[o] * b0;
      c31 += a3[o] * b1;
    }
    memcpy(out[0], &c00, sizeof c00);
    memcpy(out[0] + 4, &c01, sizeof c01);
    memcpy(out[1], &c10, sizeof c10);
    memcpy(out[1] + 4, &c11, sizeof c11);
    memcpy(out[2], &c20, sizeof c20);
    memcpy(out[2] + 4, &c21, sizeof c21);
    memcpy(out[3], &c30, sizeof c30);
    memcpy(out[3] + 4, &c31, sizeof c31);
    for (r = 0; r < MRL__MR; r++)
      for (q = 0; q < nb; q++) c[(size_t)r * ldc + q] += out[r][q];
    return;
  }
#endif
  for (r = 0; r < mb; r++) {
    float acc[MRL__NR];
    memset(acc, 0, sizeof acc);
    for (p = 0; p < kb; p++) {
      const float *bp = panel + (size_t)p * MRL__NR;
      float av = a[(size_t)r * ars + (size_t)p * aps];
      for (q = 0; q < MRL__NR; q++) acc[q] += av * bp[q];
    }
    for (q = 0; q < nb; q++) c[(size_t)r * ldc + q] += acc[q];
  }
}

MRL_DEF void mrl_gemm(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
                      const float *b, int ldb, float beta, float *c, int ldc) {
  int i, j, p, j0;
  if (beta == 0.0f) {
    for (i = 0; i < m; i++) memset(c + (size_t)i * ldc, 0, sizeof(float) * (size_t)n);
  } else if (beta != 1.0f) {
    for (i = 0; i < m; i++)
      for (j = 0; j < n; j++) c[(size_t)i * ldc + j] *= beta;
  }
  if (m <= 0 || n <= 0 || k <= 0) return;
#ifdef _OPENMP
#pragma omp parallel for private(i, p) if ((double)m * n * k > 4e6)
#endif
  for (j0 = 0; j0 < n; j0 += MRL__NR) {
    float panel[MRL__KC * MRL__NR];
    int nb = n - j0 < MRL__NR ? n - j0 : MRL__NR, p0;
    for (p0 = 0; p0 < k; p0 += MRL__KC) {
      int kb = k - p0 < MRL__KC ? k - p0 : MRL__KC, q;
      /* pack op(B)[p0 .. p0+kb, j0 .. j0+nb) */
      for (p = 0; p < kb; p++) {
        float *dst = panel + (size_t)p * MRL__NR;
        if (trans_b)
          for (q = 0; q < nb; q++) dst[q] = b[(size_t)(j0 + q) * ldb + p0 + p];
        else
          memcpy(dst, b + (size_t)(p0 + p) * ldb + j0, sizeof(float) * (size_t)nb);
        for (q = nb; q < MRL__NR; q++) dst[q] = 0.0f;
      }
      for (i = 0; i < m; i += MRL__MR) {
        int mb = m - i < MRL__MR ? m - i : MRL__MR;
        /* element (i+r, p0+p) of op(A) */
        if (trans_a)
          mrl__gemm_block(mb, nb, kb, a + (size_t)p0 * lda + i, 1, (size_t)lda, panel,
                          c + (size_t)i * ldc + j0, ldc);
        else
          mrl__gemm_block(mb, nb, kb, a + (size_t)i * lda + p0, (size_t)lda, 1, panel,
                          c + (size_t)i * ldc + j0, ldc);
      }
    }
  }
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

/* ---- fused layers, losses, memory ops ---- */

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

/* ---- layernorm over the last dimension ---- */

static void mrl__layernorm_backward(mrl_node *nd) {
  mrl_tensor *x = nd->in[0], *w = nd->in[1], *b = nd->in[2], *y = nd->out;
  const float *mean = nd->extra[0]->data, *rstd = nd->extra[1]->data;
  int rows = mrl_tensor_rows(x), d = mrl_tensor_cols(x), r, j;
  for (r = 0; r < rows; r++) {
    const float *xr = x->data + (size_t)r * d, *gr = y->grad + (size_t)r * d;
    float m = mean[r], s = rstd[r];
    double s1 = 0.0, s2 = 0.0;
    for (j = 0; j < d; j++) {
      float xh = (xr[j] - m) * s, dxh = gr[j] * (w ? w->data[j] : 1.0f);
      s1 += dxh;
      s2 += (double)dxh * xh;
      if (w && w->grad) w->grad[j] += gr[j] * xh;
      if (b && b->grad) b->grad[j] += gr[j];
    }
    if (x->grad) {
      float *gx = x->grad + (size_t)r * d, a1 = (float)(s1 / d), a2 = (float)(s2 / d);
      for (j = 0; j < d; j++) {
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
    double acc = 0.0, var = 0.0;
    for (j = 0; j < d; j++) acc += xr[j];
    m = (float)(acc / (d ? d : 1));
    for (j = 0; j < d; j++) var += ((double)xr[j] - m) * ((double)xr[j] - m);
    s = (float)(1.0 / sqrt(var / (d ? d : 1) + (double)eps));
    for (j = 0; j < d; j++) {
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

/* ---- conv2d: im2col + gemm ---- */
#ifdef _OPENMP
#include <omp.h>
#endif

/* cols[(c*kh + i)*kw + j][yo*ow + xo] = x[c][yo*s - p + i][xo*s - p + j] (0 outside) */
static void mrl__im2col(const float *x, int c, int h, int w, int kh, int kw, int s, int p, int oh,
                        int ow, float *cols) {
  int ci, i, j, yo, xo;
  for (ci = 0; ci < c; ci++)
    for (i = 0; i < kh; i++)
      for (j = 0; j < kw; j++) {
        float *row = cols + ((size_t)(ci * kh + i) * kw + j) * (size_t)oh * ow;
        const float *plane = x + (size_t)ci * h * w;
        for (yo = 0; yo < oh; yo++) {
          int yi = yo * s - p + i;
          float *dst = row + (size_t)yo * ow;
          if (yi < 0 || yi >= h) {
            memset(dst, 0, sizeof(float) * (size_t)ow);
            continue;
          }
          for (xo = 0; xo < ow; xo++) {
            int xi = xo * s - p + j;
            dst[xo] = (xi >= 0 && xi < w) ? plane[(size_t)yi * w + xi] : 0.0f;
          }
        }
      }
}

/* The adjoint of im2col: adds every column entry back onto its input cell. */
static void mrl__col2im_add(const float *cols, int c, int h, int w, int kh, int kw, int s, int p,
                            int oh, int ow, float *x) {
  int ci, i, j, yo, xo;
  for (ci = 0; ci < c; ci++)
    for (i = 0; i < kh; i++)
      for (j = 0; j < kw; j++) {
        const float *row = cols + ((size_t)(ci * kh + i) * kw + j) * (size_t)oh * ow;
        float *plane = x + (size_t)ci * h * w;
        for (yo = 0; yo < oh; yo++) {
          int yi = yo * s - p + i;
          const float *src = row + (size_t)yo * ow;
          if (yi < 0 || yi >= h) continue;
          for (xo = 0; xo < ow; xo++) {
            int xi = xo * s - p + j;
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
  int o = wt->shape[0], kh = wt->shape[2], kw = wt->shape[3], s = nd->i[0], p = nd->i[1];
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
        mrl__im2col(xn, c, h, w, kh, kw, s, p, oh, ow, cols);
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
      mrl__col2im_add(buf, c, h, w, kh, kw, s, p, oh, ow, gx);
    } else {
      mrl_gemm(1, 0, ckk, ohw, o, wt->data, ckk, gy, ohw, 1.0f, gx, ohw);
    }
  }
  (void)nbuf;
}

MRL_DEF mrl_tensor *mrl_conv2d(mrl_graph *g, mrl_tensor *x, mrl_tensor *w, mrl_tensor *b,
                               int stride, int pad) {
  mrl_tensor *y, *cols = NULL, *ins[3];
  mrl_node *nd;
  int n, c, h, wd, o, kh, kw, oh, ow, ohw, ckk, shape[4], im, direct, nbuf = 1;
  if (!x || !w) return NULL;
  MRL_SHAPE_CHECK(x->ndim == 4 && w->ndim == 4, "conv2d",
                  "x must be [N,C,H,W] and the weight [O,C,KH,KW]", x, w);
  MRL_SHAPE_CHECK(x->shape[1] == w->shape[1], "conv2d",
                  "x's channels must equal the weight's input channels", x, w);
  MRL_SHAPE_CHECK(stride >= 1 && pad >= 0, "conv2d", "stride must be >= 1 and padding >= 0", x, w);
  n = x->shape[0];
  c = x->shape[1];
  h = x->shape[2];
  wd = x->shape[3];
  o = w->shape[0];
  kh = w->shape[2];
  kw = w->shape[3];
  MRL_SHAPE_CHECK(h + 2 * pad >= kh && wd + 2 * pad >= kw && kh >= 1 && kw >= 1, "conv2d",
                  "the kernel is larger than the padded input", x, w);
  if (b) MRL_SHAPE_CHECK(b->size == o, "conv2d", "bias length must equal output channels", b, w);
  oh = (h + 2 * pad - kh) / stride + 1;
  ow = (wd + 2 * pad - kw) / stride + 1;
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
  direct = kh == 1 && kw == 1 && stride == 1 && pad == 0;
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
      mrl__im2col(xn, c, h, wd, kh, kw, stride, pad, oh, ow, buf);
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
    nd->i[0] = stride;
    nd->i[1] = pad;
    nd->i[2] = nbuf;
  }
  return y;
}

/* ---- max / avg pooling ---- */

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

/* ---- dropout ---- */

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

/* ---- elementwise losses: mse, huber, smooth L1, BCE with logits ---- */

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

/* ---- cross-entropy with logits ---- */

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

/* ---- KL between diagonal Gaussians (mean, log-std) ---- */

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

/* ---- KL between categoricals given by logits ---- */

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

/* ---- cosine similarity and squared distances, [B,D] x [N,D] -> [B,N] ---- */

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

/* ---- straight-through ---- */

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
