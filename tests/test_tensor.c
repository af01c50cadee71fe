/* Tests for memrl_tensor.h: the gradient of every op against central finite
 * differences, forward values and gradients against PyTorch (tests/ref/ops.txt),
 * the arena (fixed and heap), shape errors, no-grad mode, gradient
 * accumulation, determinism and the RNG.
 *
 * Run from the repository root:  cc -std=c99 -O2 tests/test_tensor.c -lm && ./a.out */
#define MEMRL_IMPLEMENTATION
#define _POSIX_C_SOURCE 200809L
#ifndef MRL_TEST_PROGRAM /* tests/test_tensor_ndebug.c builds this file again under NDEBUG */
#define MRL_TEST_PROGRAM "test_tensor"
#endif
#include "../memrl_tensor.h"
#include "test.h"
#include "ref_loader.h"
#if defined(__unix__)
#include <errno.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

/* Gradient-check tolerances. The loss is sum(op(x) * R) with a fixed random R,
 * evaluated in float32 by mrl_gradcheck. With eps = 1e-2 the truncation error
 * of the central difference is about eps^2/6 * |f'''| (< 3e-4 for the inputs
 * used here) and float rounding of a loss of magnitude ~10 contributes about
 * 1e-6 / (2 eps) = 5e-5; so every element must satisfy
 * |analytic - numeric| <= 1e-3 + 1e-2 * |numeric| (gradcheck's ratio <= 1). */
#define GC_EPS 1e-2f
#define GC_ATOL 1e-3
#define GC_RTOL 1e-2

/* Fixture comparisons against PyTorch (float32 on both sides). */
#define REF_ATOL 1e-5
#define REF_RTOL 1e-4

static int is_aligned64(const void *p) {
  return ((uintptr_t)p & 63u) == 0;
}

/* ------------------------------------------------------------------------ */
/* Gradient checks of every op                                              */
/* ------------------------------------------------------------------------ */

enum {
  OP_MATMUL,
  OP_MATMUL_NT,
  OP_MATMUL_TN,
  OP_LINEAR,
  OP_LINEAR_NOBIAS,
  OP_ADD,
  OP_SUB,
  OP_MUL,
  OP_SCALE,
  OP_ADD_SCALAR,
  OP_NEG,
  OP_SQUARE,
  OP_EXP,
  OP_LOG,
  OP_TANH,
  OP_SIGMOID,
  OP_RELU,
  OP_CLAMP,
  OP_MINIMUM,
  OP_MAXIMUM,
  OP_SUM,
  OP_MEAN,
  OP_SUM_ROWS,
  OP_MEAN_ROWS,
  OP_LOG_SOFTMAX,
  OP_GATHER,
  OP_CONCAT,
  OP_RESHAPE,
  OP_COMPOSITE,
  OP_FAKE_RIGHT, /* a user-defined op with a correct backward */
  OP_FAKE_WRONG, /* the same op with a backward that doubles the gradient */
  /* general ops */
  OP_DIV,
  OP_WHERE,
  OP_WHERE_INT,
  OP_SQRT,
  OP_POW,
  OP_ABS,
  OP_LEAKY_RELU,
  OP_ELU,
  OP_GELU,
  OP_SOFTPLUS,
  OP_SILU,
  OP_SUM_AXIS,
  OP_MEAN_AXIS,
  OP_MAX_AXIS,
  OP_LSE_AXIS,
  OP_VAR_AXIS,
  OP_MAX_ALL,
  OP_LSE_ALL,
  OP_VAR_ALL,
  OP_SOFTMAX,
  OP_LOG_SOFTMAX_AXIS,
  OP_PERMUTE,
  OP_TRANSPOSE,
  OP_SLICE,
  OP_CONCAT_AXIS,
  OP_STACK,
  OP_BROADCAST_TO,
  OP_GATHER_AXIS,
  OP_INDEX_SELECT,
  OP_SCATTER_ADD,
  OP_TOPK,
  OP_BROADCAST_TO_SUM /* broadcast_to then reduce: the composite of two new ops */
};

#define GC_MAX_IN 4
#define GC_MAX_SIZE 256

/* Extra arguments of the general ops: an axis, keepdim / correction / k,
 * an int array (indices, permutation or int mask) and a float mask of the
 * given shape. Set in gc_next before gc_run, which consumes them. */
typedef struct gc_args {
  int axis, flag, k, n_ints, mask_ndim, mask_shape[4];
  const int *ints;
  const float *mask;
} gc_args;

static gc_args gc_next; /* test program only */

typedef struct gc_ctx {
  int op, n_in;
  float p0, p1;
  const int *index;
  gc_args x;
  float r[GC_MAX_SIZE]; /* the fixed random weights R of the loss sum(op(x) * R) */
} gc_ctx;

/* A user-defined op recorded through mrl_op_output / mrl_graph_record: y = x,
 * with a backward that passes the gradient through scaled by node->f[0]. */
static void fake_copy_backward(mrl_node *nd) {
  mrl_tensor *x = nd->in[0], *y = nd->out;
  int i;
  if (!x->grad) return;
  for (i = 0; i < y->size; i++) x->grad[i] += nd->f[0] * y->grad[i];
}

static mrl_tensor *fake_copy(mrl_graph *g, mrl_tensor *x, float backward_factor) {
  mrl_tensor *y;
  mrl_node *nd;
  if (!x) return NULL;
  y = mrl_op_output(g, x->ndim, x->shape, mrl_graph_wants_grad(g, x, NULL));
  if (!y) return NULL;
  memcpy(y->data, x->data, sizeof(float) * (size_t)x->size);
  if ((nd = mrl_graph_record(g, "fake_copy", fake_copy_backward, y)) != NULL) {
    nd->in[0] = x;
    nd->f[0] = backward_factor;
  }
  return y;
}

static mrl_tensor *gc_mask(mrl_graph *g, const gc_ctx *c) {
  return mrl_tensor_from(g, c->x.mask, c->x.mask_ndim, c->x.mask_shape);
}

static mrl_tensor *gc_apply_general(mrl_graph *g, const gc_ctx *c, mrl_tensor **in) {
  const gc_args *x = &c->x;
  int bshape[3];
  switch (c->op) {
  case OP_DIV: return mrl_div(g, in[0], in[1]);
  case OP_WHERE: return mrl_where(g, gc_mask(g, c), in[0], in[1]);
  case OP_WHERE_INT: return mrl_where_int(g, x->ints, in[0], in[1]);
  case OP_SQRT: return mrl_sqrt(g, in[0]);
  case OP_POW: return mrl_pow(g, in[0], c->p0);
  case OP_ABS: return mrl_abs(g, in[0]);
  case OP_LEAKY_RELU: return mrl_leaky_relu(g, in[0], c->p0);
  case OP_ELU: return mrl_elu(g, in[0], c->p0);
  case OP_GELU: return mrl_gelu(g, in[0]);
  case OP_SOFTPLUS: return mrl_softplus(g, in[0]);
  case OP_SILU: return mrl_silu(g, in[0]);
  case OP_SUM_AXIS: return mrl_sum_axis(g, in[0], x->axis, x->flag);
  case OP_MEAN_AXIS: return mrl_mean_axis(g, in[0], x->axis, x->flag);
  case OP_MAX_AXIS: return mrl_max_axis(g, in[0], x->axis, x->flag, NULL);
  case OP_LSE_AXIS: return mrl_logsumexp_axis(g, in[0], x->axis, x->flag);
  case OP_VAR_AXIS: return mrl_var_axis(g, in[0], x->axis, 0, x->flag);
  case OP_MAX_ALL: return mrl_max(g, in[0], NULL);
  case OP_LSE_ALL: return mrl_logsumexp(g, in[0]);
  case OP_VAR_ALL: return mrl_var(g, in[0], x->flag);
  case OP_SOFTMAX: return mrl_softmax(g, in[0], x->axis, x->mask ? gc_mask(g, c) : NULL);
  case OP_LOG_SOFTMAX_AXIS:
    if (!x->mask) return mrl_log_softmax_axis(g, in[0], x->axis, NULL);
    /* masked entries hold -1e8: zero them so the loss keeps float precision */
    return mrl_mul(g, mrl_log_softmax_axis(g, in[0], x->axis, gc_mask(g, c)), gc_mask(g, c));
  case OP_PERMUTE: return mrl_permute(g, in[0], x->ints);
  case OP_TRANSPOSE: return mrl_transpose(g, in[0], x->axis, x->k);
  case OP_SLICE: return mrl_slice(g, in[0], x->axis, x->flag, x->k);
  case OP_CONCAT_AXIS: return mrl_concat(g, in, c->n_in, x->axis);
  case OP_STACK: return mrl_stack(g, in, c->n_in, x->axis);
  case OP_BROADCAST_TO: return mrl_broadcast_to(g, in[0], x->mask_ndim, x->mask_shape);
  case OP_GATHER_AXIS: return mrl_gather(g, in[0], x->axis, x->ints, x->k);
  case OP_INDEX_SELECT: return mrl_index_select(g, in[0], x->ints, x->n_ints);
  case OP_SCATTER_ADD: return mrl_scatter_add(g, in[0], x->axis, x->ints, in[1]);
  case OP_TOPK: return mrl_topk(g, in[0], x->k, NULL);
  case OP_BROADCAST_TO_SUM:
    bshape[0] = 2;
    bshape[1] = 3;
    bshape[2] = 4;
    return mrl_var_axis(g, mrl_mul(g, mrl_broadcast_to(g, in[0], 3, bshape), in[1]), 1, 1, 1);
  }
  return NULL;
}

static mrl_tensor *gc_apply(mrl_graph *g, const gc_ctx *c, mrl_tensor **in) {
  int shape[2];
  switch (c->op) {
  case OP_MATMUL: return mrl_matmul(g, in[0], in[1]);
  case OP_MATMUL_NT: return mrl_matmul_nt(g, in[0], in[1]);
  case OP_MATMUL_TN: return mrl_matmul_tn(g, in[0], in[1]);
  case OP_LINEAR: return mrl_linear(g, in[0], in[1], in[2]);
  case OP_LINEAR_NOBIAS: return mrl_linear(g, in[0], in[1], NULL);
  case OP_ADD: return mrl_add(g, in[0], in[1]);
  case OP_SUB: return mrl_sub(g, in[0], in[1]);
  case OP_MUL: return mrl_mul(g, in[0], in[1]);
  case OP_SCALE: return mrl_scale(g, in[0], c->p0);
  case OP_ADD_SCALAR: return mrl_add_scalar(g, in[0], c->p0);
  case OP_NEG: return mrl_neg(g, in[0]);
  case OP_SQUARE: return mrl_square(g, in[0]);
  case OP_EXP: return mrl_exp(g, in[0]);
  case OP_LOG: return mrl_log(g, in[0]);
  case OP_TANH: return mrl_tanh(g, in[0]);
  case OP_SIGMOID: return mrl_sigmoid(g, in[0]);
  case OP_RELU: return mrl_relu(g, in[0]);
  case OP_CLAMP: return mrl_clamp(g, in[0], c->p0, c->p1);
  case OP_MINIMUM: return mrl_minimum(g, in[0], in[1]);
  case OP_MAXIMUM: return mrl_maximum(g, in[0], in[1]);
  case OP_SUM: return mrl_sum(g, in[0]);
  case OP_MEAN: return mrl_mean(g, in[0]);
  case OP_SUM_ROWS: return mrl_sum_rows(g, in[0]);
  case OP_MEAN_ROWS: return mrl_mean_rows(g, in[0]);
  case OP_LOG_SOFTMAX: return mrl_log_softmax(g, in[0]);
  case OP_GATHER: return mrl_gather_rows(g, in[0], c->index);
  case OP_CONCAT: return mrl_concat_rows(g, in, c->n_in);
  case OP_RESHAPE: /* a view: the gradient reaches the input through the shared buffer */
    shape[0] = 3;
    shape[1] = 4;
    return mrl_reshape(g, in[0], 2, shape);
  case OP_COMPOSITE:
    return mrl_mean(
        g, mrl_gather_rows(g, mrl_log_softmax(g, mrl_tanh(g, mrl_linear(g, in[0], in[1], in[2]))),
                           c->index));
  case OP_FAKE_RIGHT: return fake_copy(g, in[0], 1.0f);
  case OP_FAKE_WRONG: return fake_copy(g, in[0], 2.0f);
  default: return gc_apply_general(g, c, in);
  }
}

static mrl_tensor *gc_build(mrl_graph *g, mrl_tensor **in, void *ctx) {
  const gc_ctx *c = (const gc_ctx *)ctx;
  mrl_tensor *y = gc_apply(g, c, in), *r;
  if (!y) return NULL;
  MRL_ASSERT(y->size <= GC_MAX_SIZE);
  r = mrl_tensor_from(g, c->r, y->ndim, y->shape);
  return mrl_sum(g, mrl_mul(g, y, r));
}

/* Parses "3x4 4x5" into shapes; returns the number of tensors. */
static int parse_shapes(const char *spec, int ndim[GC_MAX_IN], int shape[GC_MAX_IN][4]) {
  int n = 0;
  const char *p = spec;
  while (*p && n < GC_MAX_IN) {
    char *end;
    ndim[n] = 0;
    while (*p == ' ') p++;
    if (!*p) break;
    for (;;) {
      shape[n][ndim[n]++] = (int)strtol(p, &end, 10);
      p = end;
      if (*p != 'x') break;
      p++;
    }
    n++;
  }
  return n;
}

static float uniform_away(mrl_rng *rng, float lo, float hi, const float *avoid, int n_avoid) {
  for (;;) {
    float v = mrl_rng_uniform_range(rng, lo, hi);
    int k, ok = 1;
    for (k = 0; k < n_avoid; k++)
      if (fabsf(v - avoid[k]) < 0.1f) ok = 0;
    if (ok) return v;
  }
}

/* Checks one op: inputs of the given shapes drawn from U(lo, hi) (kept away
 * from the op's kinks), the loss sum(op(x) * R); returns gradcheck's ratio. */
static double gc_run(const char *name, int op, const char *shapes, float lo, float hi, float p0,
                     float p1, int expect_pass) {
  static const int index[4] = {1, 0, 4, 2};
  float data[GC_MAX_IN][GC_MAX_SIZE], grad[GC_MAX_IN][GC_MAX_SIZE], avoid[2];
  int ndim[GC_MAX_IN], shape[GC_MAX_IN][4], n_in, t, i, n_avoid = 0;
  mrl_tensor tens[GC_MAX_IN], *ptrs[GC_MAX_IN];
  mrl_rng rng = mrl_rng_make(1234u + (uint64_t)op);
  mrl_graph g;
  gc_ctx ctx;
  double worst;
  memset(&ctx, 0, sizeof ctx);
  n_in = parse_shapes(shapes, ndim, shape);
  ctx.op = op;
  ctx.n_in = n_in;
  ctx.p0 = p0;
  ctx.p1 = p1;
  ctx.index = index;
  ctx.x = gc_next;
  memset(&gc_next, 0, sizeof gc_next);
  if (op == OP_RELU || op == OP_ABS || op == OP_LEAKY_RELU || op == OP_ELU) avoid[n_avoid++] = 0.0f;
  if (op == OP_CLAMP) {
    avoid[n_avoid++] = p0;
    avoid[n_avoid++] = p1;
  }
  for (t = 0; t < n_in; t++) {
    tens[t] = mrl_tensor_make(data[t], grad[t], ndim[t], shape[t]);
    MRL_ASSERT(tens[t].size <= GC_MAX_SIZE);
    ptrs[t] = &tens[t];
    for (i = 0; i < tens[t].size; i++) {
      if (t == 1 && (op == OP_MINIMUM || op == OP_MAXIMUM) && tens[1].size == tens[0].size) {
        /* no ties: b differs from a by 0.1 .. 1 either way */
        float d = mrl_rng_uniform_range(&rng, 0.1f, 1.0f);
        data[t][i] = data[0][i] + (mrl_rng_uniform(&rng) < 0.5f ? -d : d);
      } else {
        data[t][i] = uniform_away(&rng, lo, hi, avoid, n_avoid);
      }
      grad[t][i] = 0.0f;
    }
  }
  if (op == OP_MAX_AXIS || op == OP_MAX_ALL || op == OP_TOPK) {
    /* distinct values 0.05 apart (a random permutation of a grid): no two
     * within eps of each other, so no ranking changes under the differences */
    int perm[GC_MAX_SIZE];
    for (i = 0; i < tens[0].size; i++) perm[i] = i;
    for (i = tens[0].size - 1; i > 0; i--) {
      int j = (int)mrl_rng_below(&rng, (uint32_t)i + 1), tmp = perm[i];
      perm[i] = perm[j];
      perm[j] = tmp;
    }
    for (i = 0; i < tens[0].size; i++) data[0][i] = 0.05f * (float)(perm[i] - tens[0].size / 2);
  }
  if ((op == OP_MINIMUM || op == OP_MAXIMUM) && tens[1].size != tens[0].size) {
    /* broadcast operands: a on a grid of step 0.13, b halfway between */
    for (t = 0; t < 2; t++)
      for (i = 0; i < tens[t].size; i++)
        data[t][i] = 0.13f * (float)mrl_rng_below(&rng, 16) - 1.0f + (t ? 0.065f : 0.0f);
  }
  for (i = 0; i < GC_MAX_SIZE; i++) ctx.r[i] = mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
  mrl_graph_init(&g, 1 << 16);
  worst = mrl_gradcheck(&g, gc_build, ptrs, n_in, &ctx, GC_EPS, GC_ATOL, GC_RTOL);
  if (expect_pass) {
    MRL_CHECK(worst <= 1.0, "gradcheck %s: worst error ratio %.3g (> 1)", name, worst);
    /* the check means something only if gradient reached every input */
    for (t = 0; t < n_in; t++) {
      int nonzero = 0;
      for (i = 0; i < tens[t].size; i++) nonzero |= grad[t][i] != 0.0f;
      MRL_CHECK(nonzero, "gradcheck %s: input %d received no gradient at all", name, t);
    }
    /* Backward accumulates: a second pass over the same inputs, without
     * zeroing, adds the same gradient again on top of the first. */
    {
      float first[GC_MAX_IN][GC_MAX_SIZE];
      int twice = 1;
      memcpy(first, grad, sizeof first);
      mrl_graph_reset(&g);
      MRL_CHECK(mrl_backward(&g, gc_build(&g, ptrs, &ctx)) == MRL_OK, "%s: backward failed", name);
      for (t = 0; t < n_in; t++)
        for (i = 0; i < tens[t].size; i++)
          twice &= fabsf(grad[t][i] - 2.0f * first[t][i]) <= 1e-5f * (1.0f + fabsf(first[t][i]));
      MRL_CHECK(twice, "%s: backward must accumulate (+=) into existing gradients", name);
    }
  }
  mrl_graph_free(&g);
  return worst;
}

static void test_gradcheck_ops(void) {
  double worst;
  gc_run("matmul", OP_MATMUL, "3x4 4x5", -1, 1, 0, 0, 1);
  gc_run("matmul_nt", OP_MATMUL_NT, "3x4 5x4", -1, 1, 0, 0, 1);
  gc_run("matmul_tn", OP_MATMUL_TN, "4x3 4x5", -1, 1, 0, 0, 1);
  gc_run("matmul 1x1 edge", OP_MATMUL, "1x7 7x1", -1, 1, 0, 0, 1);
  gc_run("matmul k=17 (blocked path)", OP_MATMUL_NT, "2x17 3x17", -1, 1, 0, 0, 1);
  gc_run("linear", OP_LINEAR, "3x4 5x4 5", -1, 1, 0, 0, 1);
  gc_run("linear 3-D x", OP_LINEAR, "2x3x4 5x4 5", -1, 1, 0, 0, 1);
  gc_run("linear without bias", OP_LINEAR_NOBIAS, "3x4 5x4", -1, 1, 0, 0, 1);
  gc_run("add", OP_ADD, "3x4 3x4", -1, 1, 0, 0, 1);
  gc_run("add [M,N]+[N]", OP_ADD, "3x4 4", -1, 1, 0, 0, 1);
  gc_run("add [2,3,4]+[3,4]", OP_ADD, "2x3x4 3x4", -1, 1, 0, 0, 1);
  gc_run("sub", OP_SUB, "3x4 3x4", -1, 1, 0, 0, 1);
  gc_run("sub [M,N]-[N]", OP_SUB, "3x4 4", -1, 1, 0, 0, 1);
  gc_run("sub [2,3,4]-[3,4]", OP_SUB, "2x3x4 3x4", -1, 1, 0, 0, 1);
  gc_run("mul", OP_MUL, "3x4 3x4", -1, 1, 0, 0, 1);
  gc_run("mul [M,N]*[N]", OP_MUL, "3x4 4", -1, 1, 0, 0, 1);
  gc_run("mul [2,3,4]*[3,4]", OP_MUL, "2x3x4 3x4", -1, 1, 0, 0, 1);
  gc_run("scale", OP_SCALE, "3x4", -1, 1, -1.75f, 0, 1);
  gc_run("add_scalar", OP_ADD_SCALAR, "3x4", -1, 1, 0.3f, 0, 1);
  gc_run("neg", OP_NEG, "3x4", -1, 1, 0, 0, 1);
  gc_run("square", OP_SQUARE, "3x4", -1, 1, 0, 0, 1);
  gc_run("exp", OP_EXP, "3x4", -1, 1, 0, 0, 1);
  gc_run("log", OP_LOG, "3x4", 0.3f, 2.0f, 0, 0, 1);
  gc_run("tanh", OP_TANH, "3x4", -2, 2, 0, 0, 1);
  gc_run("sigmoid", OP_SIGMOID, "3x4", -3, 3, 0, 0, 1);
  gc_run("relu", OP_RELU, "3x4", -1, 1, 0, 0, 1);
  /* inputs in [-1.5, 1.5]: both inside and outside [-0.5, 0.5], never within 0.1 of a bound */
  gc_run("clamp", OP_CLAMP, "4x5", -1.5f, 1.5f, -0.5f, 0.5f, 1);
  gc_run("minimum", OP_MINIMUM, "3x4 3x4", -1, 1, 0, 0, 1);
  gc_run("maximum", OP_MAXIMUM, "3x4 3x4", -1, 1, 0, 0, 1);
  gc_run("sum", OP_SUM, "3x4", -1, 1, 0, 0, 1);
  gc_run("mean", OP_MEAN, "3x4", -1, 1, 0, 0, 1);
  gc_run("sum_rows", OP_SUM_ROWS, "3x4", -1, 1, 0, 0, 1);
  gc_run("sum_rows 3-D", OP_SUM_ROWS, "2x3x4", -1, 1, 0, 0, 1);
  gc_run("mean_rows", OP_MEAN_ROWS, "3x4", -1, 1, 0, 0, 1);
  gc_run("log_softmax", OP_LOG_SOFTMAX, "3x5", -2, 2, 0, 0, 1);
  gc_run("gather_rows", OP_GATHER, "4x5", -1, 1, 0, 0, 1);
  gc_run("concat_rows", OP_CONCAT, "2x3 1x3 3x3", -1, 1, 0, 0, 1);
  gc_run("reshape", OP_RESHAPE, "2x6", -1, 1, 0, 0, 1);
  gc_run("composite tanh(linear)->log_softmax->gather->mean", OP_COMPOSITE, "4x3 5x3 5", -1, 1, 0,
         0, 1);

  /* Controls for the checker itself: a user-defined op recorded through
   * mrl_graph_record passes with a correct backward and fails when its
   * backward doubles the gradient (ratio ~ 1 / rtol = 100). */
  gc_run("user op, correct backward", OP_FAKE_RIGHT, "3x4", -1, 1, 0, 0, 1);
  worst = gc_run("user op, doubled backward", OP_FAKE_WRONG, "3x4", -1, 1, 0, 0, 0);
  MRL_CHECK(worst > 1.0, "gradcheck accepted a backward that doubles the gradient (ratio %.3g)",
            worst);
  MRL_CHECK(worst > 10.0, "gradcheck ratio for a doubled gradient is only %.3g", worst);
}

/* Extra-argument setters for gc_run (consumed by the next call). */
static void gc_axis(int axis, int flag, int k) {
  gc_next.axis = axis;
  gc_next.flag = flag;
  gc_next.k = k;
}
static void gc_ints(const int *v, int n) {
  gc_next.ints = v;
  gc_next.n_ints = n;
}
static void gc_shape_arg(const float *mask, int ndim, int d0, int d1, int d2) {
  gc_next.mask = mask;
  gc_next.mask_ndim = ndim;
  gc_next.mask_shape[0] = d0;
  gc_next.mask_shape[1] = d1;
  gc_next.mask_shape[2] = d2;
}

/* The general ops, with the same loss and tolerances as above (GC_*). Every
 * input is drawn away from the op's kinks: 0 for abs / leaky relu / elu,
 * distinct values 0.05 apart for max and top-k, broadcast min/max operands
 * on interleaved grids, positive inputs for sqrt, pow and div. */
static void test_gradcheck_general(void) {
  static const float mask4[4] = {1, 0, 0, 1};
  static const float mask34[12] = {1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1};
  static const float mask35[15] = {1, 1, 0, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0};
  static const float mask_row_out[12] = {1, 1, 0, 1, 0, 0, 0, 0, 0, 1, 1, 1};
  static const int where_int[12] = {0, 1, 1, 0, 2, 0, 1, 0, 0, 0, 1, -1};
  static const int perm3[3] = {2, 0, 1}, perm4[4] = {3, 1, 0, 2}, perm_neg[3] = {-1, 0, 1};
  static const int gather0[6] = {3, 0, 1, 3, 2, 0};                    /* [2,3] into [4,3] axis 0 */
  static const int gather1[12] = {4, 0, 1, 1, 3, 2, 0, 0, 4, 2, 1, 3}; /* [2,2,3] into [2,5,3] */
  static const int gather_last[9] = {4, 4, 0, 2, 1, 3, 0, 0, 0};       /* [3,3] into [3,5] */
  static const int rows[4] = {4, 0, 4, 2}, rows3[2] = {3, 1};
  static const int scatter0[6] = {1, 3, 1, 0, 3, 3}, scatter1[6] = {4, 0, 4, 2, 2, 1};

  /* broadcasting: either operand repeated, along leading and inner dimensions */
  gc_run("add [3,1,4]+[2,1]", OP_ADD, "3x1x4 2x1", -1, 1, 0, 0, 1);
  gc_run("add [4]+[2,3,4] (first operand broadcast)", OP_ADD, "4 2x3x4", -1, 1, 0, 0, 1);
  gc_run("add 4-D [2,1,3,1]+[1,4,1,5]", OP_ADD, "2x1x3x1 1x4x1x5", -1, 1, 0, 0, 1);
  gc_run("sub [3,1]-[1,4]", OP_SUB, "3x1 1x4", -1, 1, 0, 0, 1);
  gc_run("mul [2,3,1]*[3,4]", OP_MUL, "2x3x1 3x4", -1, 1, 0, 0, 1);
  gc_run("div", OP_DIV, "3x4 3x4", 0.5f, 2.0f, 0, 0, 1);
  gc_run("div [2,3,4]/[3,1]", OP_DIV, "2x3x4 3x1", 0.5f, 2.0f, 0, 0, 1);
  gc_run("minimum [3,4] vs [4]", OP_MINIMUM, "3x4 4", -1, 1, 0, 0, 1);
  gc_run("maximum [3,1] vs [1,4]", OP_MAXIMUM, "3x1 1x4", -1, 1, 0, 0, 1);
  gc_shape_arg(mask4, 1, 4, 0, 0);
  gc_run("where mask [4] over [3,4]", OP_WHERE, "3x4 3x4", -1, 1, 0, 0, 1);
  gc_shape_arg(mask34, 2, 3, 4, 0);
  gc_run("where [3,4] ? [3,4] : [4]", OP_WHERE, "3x4 4", -1, 1, 0, 0, 1);
  gc_ints(where_int, 12);
  gc_run("where_int [3,4] ? [1,4] : [3,1]", OP_WHERE_INT, "1x4 3x1", -1, 1, 0, 0, 1);

  /* unary ops and activations */
  gc_run("sqrt", OP_SQRT, "3x4", 0.3f, 2.0f, 0, 0, 1);
  gc_run("pow 2.5", OP_POW, "3x4", 0.3f, 2.0f, 2.5f, 0, 1);
  gc_run("pow -1.5", OP_POW, "3x4", 0.5f, 2.0f, -1.5f, 0, 1);
  gc_run("abs", OP_ABS, "3x4", -1, 1, 0, 0, 1);
  gc_run("leaky_relu 0.01", OP_LEAKY_RELU, "3x4", -1, 1, 0.01f, 0, 1);
  gc_run("leaky_relu 0.2", OP_LEAKY_RELU, "3x4", -1, 1, 0.2f, 0, 1);
  gc_run("elu", OP_ELU, "3x4", -2, 2, 1.0f, 0, 1);
  gc_run("gelu", OP_GELU, "3x4", -3, 3, 0, 0, 1);
  gc_run("softplus", OP_SOFTPLUS, "3x4", -3, 3, 0, 0, 1);
  gc_run("softplus around its threshold 20", OP_SOFTPLUS, "2x2", 18, 22, 0, 0, 1);
  gc_run("silu", OP_SILU, "3x4", -3, 3, 0, 0, 1);

  /* reductions */
  gc_axis(0, 0, 0);
  gc_run("sum_axis 0", OP_SUM_AXIS, "3x4x5", -1, 1, 0, 0, 1);
  gc_axis(1, 1, 0);
  gc_run("sum_axis 1 keepdim", OP_SUM_AXIS, "3x4x5", -1, 1, 0, 0, 1);
  gc_axis(-1, 0, 0);
  gc_run("sum_axis -1 4-D", OP_SUM_AXIS, "2x2x3x4", -1, 1, 0, 0, 1);
  gc_axis(1, 0, 0);
  gc_run("mean_axis 1", OP_MEAN_AXIS, "2x3x4", -1, 1, 0, 0, 1);
  gc_axis(0, 1, 0);
  gc_run("max_axis 0 keepdim", OP_MAX_AXIS, "4x3", -1, 1, 0, 0, 1);
  gc_axis(-1, 0, 0);
  gc_run("max_axis -1", OP_MAX_AXIS, "2x3x5", -1, 1, 0, 0, 1);
  gc_axis(1, 0, 0);
  gc_run("logsumexp_axis 1", OP_LSE_AXIS, "2x4x3", -3, 3, 0, 0, 1);
  gc_axis(0, 1, 0);
  gc_run("var_axis 0 unbiased", OP_VAR_AXIS, "5x3", -1, 1, 0, 0, 1);
  gc_axis(-1, 0, 0);
  gc_run("var_axis -1 biased", OP_VAR_AXIS, "2x3x4", -1, 1, 0, 0, 1);
  gc_run("max (all)", OP_MAX_ALL, "3x4", -1, 1, 0, 0, 1);
  gc_run("logsumexp (all)", OP_LSE_ALL, "3x4", -3, 3, 0, 0, 1);
  gc_axis(0, 1, 0);
  gc_run("var (all) unbiased", OP_VAR_ALL, "3x4", -1, 1, 0, 0, 1);

  /* softmax and log-softmax: any axis, masks broadcast, a fully masked row */
  gc_axis(-1, 0, 0);
  gc_run("softmax -1", OP_SOFTMAX, "3x5", -2, 2, 0, 0, 1);
  gc_axis(1, 0, 0);
  gc_run("softmax 1 of [2,4,3]", OP_SOFTMAX, "2x4x3", -2, 2, 0, 0, 1);
  gc_axis(-1, 0, 0);
  gc_shape_arg(mask35, 2, 3, 5, 0);
  gc_run("softmax -1, mask [3,5] over [2,3,5]", OP_SOFTMAX, "2x3x5", -2, 2, 0, 0, 1);
  gc_axis(0, 0, 0);
  gc_run("log_softmax_axis 0", OP_LOG_SOFTMAX_AXIS, "4x3", -2, 2, 0, 0, 1);
  gc_axis(-1, 0, 0);
  gc_shape_arg(mask_row_out, 2, 3, 4, 0);
  gc_run("log_softmax_axis -1, mask with a fully masked row", OP_LOG_SOFTMAX_AXIS, "2x3x4", -2, 2,
         0, 0, 1);

  /* batched matmul (mrl_matmul with more than 2 dimensions) */
  gc_run("matmul [2,3,4]x[4,5]", OP_MATMUL, "2x3x4 4x5", -1, 1, 0, 0, 1);
  gc_run("matmul [2,3,4]x[2,4,5]", OP_MATMUL, "2x3x4 2x4x5", -1, 1, 0, 0, 1);
  gc_run("matmul [4,3]x[2,3,5] (a shared)", OP_MATMUL, "4x3 2x3x5", -1, 1, 0, 0, 1);
  gc_run("matmul [2,1,3,4]x[3,4,2] (batch broadcast)", OP_MATMUL, "2x1x3x4 3x4x2", -1, 1, 0, 0, 1);
  gc_run("matmul_nt [2,3,4]x[2,5,4]^T", OP_MATMUL_NT, "2x3x4 2x5x4", -1, 1, 0, 0, 1);
  gc_run("matmul_tn [2,4,3]^T x[4,5]", OP_MATMUL_TN, "2x4x3 4x5", -1, 1, 0, 0, 1);

  /* shape ops */
  gc_ints(perm3, 3);
  gc_run("permute [2,3,4] (2,0,1)", OP_PERMUTE, "2x3x4", -1, 1, 0, 0, 1);
  gc_ints(perm4, 4);
  gc_run("permute 4-D (3,1,0,2)", OP_PERMUTE, "2x3x2x2", -1, 1, 0, 0, 1);
  gc_ints(perm_neg, 3);
  gc_run("permute (-1,0,1)", OP_PERMUTE, "2x3x4", -1, 1, 0, 0, 1);
  gc_axis(0, 0, 1);
  gc_run("transpose 2-D", OP_TRANSPOSE, "3x4", -1, 1, 0, 0, 1);
  gc_axis(-1, 0, 0);
  gc_run("transpose (-1,0) of [2,3,4]", OP_TRANSPOSE, "2x3x4", -1, 1, 0, 0, 1);
  gc_axis(1, 1, 3);
  gc_run("slice axis 1 [1,3)", OP_SLICE, "3x4x2", -1, 1, 0, 0, 1);
  gc_axis(-1, -3, -1);
  gc_run("slice axis -1 [-3,-1)", OP_SLICE, "4x5", -1, 1, 0, 0, 1);
  gc_axis(1, 0, 0);
  gc_run("concat axis 1", OP_CONCAT_AXIS, "2x3 2x1 2x2", -1, 1, 0, 0, 1);
  gc_axis(-1, 0, 0);
  gc_run("concat axis -1 3-D", OP_CONCAT_AXIS, "2x2x3 2x2x1", -1, 1, 0, 0, 1);
  gc_axis(0, 0, 0);
  gc_run("concat axis 0", OP_CONCAT_AXIS, "1x3 2x3", -1, 1, 0, 0, 1);
  gc_axis(0, 0, 0);
  gc_run("stack axis 0", OP_STACK, "2x3 2x3 2x3", -1, 1, 0, 0, 1);
  gc_axis(1, 0, 0);
  gc_run("stack axis 1", OP_STACK, "2x3 2x3", -1, 1, 0, 0, 1);
  gc_axis(-1, 0, 0);
  gc_run("stack axis -1 (new last)", OP_STACK, "2x3 2x3", -1, 1, 0, 0, 1);
  gc_shape_arg(NULL, 3, 2, 3, 4);
  gc_run("broadcast_to [3,1] -> [2,3,4]", OP_BROADCAST_TO, "3x1", -1, 1, 0, 0, 1);
  gc_shape_arg(NULL, 2, 3, 4, 0);
  gc_run("broadcast_to [4] -> [3,4]", OP_BROADCAST_TO, "4", -1, 1, 0, 0, 1);
  gc_run("broadcast_to, mul, var_axis keepdim", OP_BROADCAST_TO_SUM, "3x1 2x3x4", -1, 1, 0, 0, 1);

  /* indexing (repeated indices accumulate) */
  gc_axis(0, 0, 2);
  gc_ints(gather0, 6);
  gc_run("gather axis 0", OP_GATHER_AXIS, "4x3", -1, 1, 0, 0, 1);
  gc_axis(1, 0, 2);
  gc_ints(gather1, 12);
  gc_run("gather axis 1 of [2,5,3]", OP_GATHER_AXIS, "2x5x3", -1, 1, 0, 0, 1);
  gc_axis(-1, 0, 3);
  gc_ints(gather_last, 9);
  gc_run("gather axis -1, repeats", OP_GATHER_AXIS, "3x5", -1, 1, 0, 0, 1);
  gc_ints(rows, 4);
  gc_run("index_select rows, repeats", OP_INDEX_SELECT, "5x3", -1, 1, 0, 0, 1);
  gc_ints(rows3, 2);
  gc_run("index_select 3-D", OP_INDEX_SELECT, "4x2x3", -1, 1, 0, 0, 1);
  gc_axis(0, 0, 0);
  gc_ints(scatter0, 6);
  gc_run("scatter_add axis 0", OP_SCATTER_ADD, "4x3 2x3", -1, 1, 0, 0, 1);
  gc_axis(-1, 0, 0);
  gc_ints(scatter1, 6);
  gc_run("scatter_add axis -1", OP_SCATTER_ADD, "2x5 2x3", -1, 1, 0, 0, 1);
  gc_axis(0, 0, 3);
  gc_run("topk 3 of [3,6]", OP_TOPK, "3x6", -1, 1, 0, 0, 1);
  gc_axis(0, 0, 2);
  gc_run("topk 2 of [2,2,5]", OP_TOPK, "2x2x5", -1, 1, 0, 0, 1);
  gc_axis(0, 0, 4);
  gc_run("topk k = n (full sort)", OP_TOPK, "2x4", -1, 1, 0, 0, 1);
}

/* detach: loss = sum(R * (square(x) + exp(detach(x)))). The gradient reaching
 * x is exactly the square branch's, 2 x R, bit for bit. */
typedef struct detach_ctx {
  float r[12];
} detach_ctx;

static mrl_tensor *detach_build(mrl_graph *g, mrl_tensor **in, void *ctx) {
  const detach_ctx *c = (const detach_ctx *)ctx;
  mrl_tensor *x = in[0], *d = mrl_detach(g, x);
  mrl_tensor *s = mrl_add(g, mrl_square(g, x), mrl_exp(g, d));
  return mrl_sum(g, mrl_mul(g, s, mrl_tensor_from(g, c->r, x->ndim, x->shape)));
}

static void test_detach(void) {
  float xd[12], xg[12];
  mrl_tensor x = mrl_tensor_make2(xd, xg, 3, 4), *in[1], *d, *loss;
  mrl_rng rng = mrl_rng_make(99);
  detach_ctx ctx;
  mrl_graph g;
  int i, exact = 1, same = 1;
  double worst;
  for (i = 0; i < 12; i++) {
    xd[i] = mrl_rng_uniform_range(&rng, -1, 1);
    xg[i] = 0.0f;
    ctx.r[i] = mrl_rng_uniform_range(&rng, -1, 1);
  }
  in[0] = &x;
  mrl_graph_init(&g, 1 << 14);
  d = mrl_detach(&g, &x);
  MRL_CHECK(d && d->grad == NULL, "detach: the result must have no gradient buffer");
  for (i = 0; d && i < 12; i++) same &= d->data[i] == xd[i];
  MRL_CHECK(same, "detach: values must be unchanged");
  mrl_graph_reset(&g);
  loss = detach_build(&g, in, &ctx);
  MRL_CHECK(mrl_backward(&g, loss) == MRL_OK, "detach: backward failed");
  for (i = 0; i < 12; i++) {
    float want = ctx.r[i] * 2.0f * xd[i];
    if (xg[i] != want) {
      exact = 0;
      printf("  detach: grad[%d] = %.9g, square branch alone gives %.9g\n", i, xg[i], want);
    }
  }
  MRL_CHECK(exact, "detach: gradient must be exactly the non-detached branch's");
  /* Finite differences see both branches, so the check must now fail. */
  worst = mrl_gradcheck(&g, detach_build, in, 1, &ctx, GC_EPS, GC_ATOL, GC_RTOL);
  MRL_CHECK(worst > 1.0, "detach: gradient appears to flow through the detached branch");
  mrl_graph_free(&g);
}

/* ------------------------------------------------------------------------ */
/* Forward values against direct computation in double                      */
/* ------------------------------------------------------------------------ */

/* One check per op: |got - want| <= tol * (1 + |want|) for every element. */
static void expect_values(const char *what, const mrl_tensor *y, const double *want, int n,
                          double tol) {
  int i, worst_i = 0;
  double worst = 0.0;
  MRL_CHECK(y != NULL && y->size == n, "%s: output missing or of size %d, want %d", what,
            y ? y->size : -1, n);
  if (!y || y->size != n) return;
  for (i = 0; i < n; i++) {
    double d = fabs((double)y->data[i] - want[i]) / (1.0 + fabs(want[i]));
    if (d != d) d = 1e300;
    if (d > worst) {
      worst = d;
      worst_i = i;
    }
  }
  MRL_CHECK(worst <= tol, "%s: element %d is %.9g, want %.9g", what, worst_i,
            (double)y->data[worst_i], want[worst_i]);
}

static void test_forward_values(void) {
  static const int idx[6] = {3, 0, 2, 1, 1, 3};
  float a[24], b[12], m1[12], m2[20], pos[24];
  double want[64];
  int s3[3] = {2, 3, 4}, s2[2] = {3, 4}, s1[1] = {4}, s45[2] = {4, 5}, s34[2] = {3, 4};
  int s64[2] = {6, 4}, i, j, k;
  mrl_rng rng = mrl_rng_make(555);
  mrl_tensor A, B, Bv, P, M1, M2, A2, *parts[2], *y;
  mrl_graph g;
  for (i = 0; i < 24; i++) {
    a[i] = mrl_rng_uniform_range(&rng, -2, 2);
    pos[i] = mrl_rng_uniform_range(&rng, 0.1f, 3);
  }
  for (i = 0; i < 12; i++) {
    b[i] = mrl_rng_uniform_range(&rng, -2, 2);
    m1[i] = mrl_rng_uniform_range(&rng, -1, 1);
  }
  for (i = 0; i < 20; i++) m2[i] = mrl_rng_uniform_range(&rng, -1, 1);
  A = mrl_tensor_make(a, NULL, 3, s3);    /* [2,3,4] */
  A2 = mrl_tensor_make(a, NULL, 2, s64);  /* the same values as [6,4] */
  B = mrl_tensor_make(b, NULL, 2, s2);    /* [3,4] */
  Bv = mrl_tensor_make(b, NULL, 1, s1);   /* [4] */
  P = mrl_tensor_make(pos, NULL, 3, s3);  /* positive [2,3,4] */
  M1 = mrl_tensor_make(m1, NULL, 2, s34); /* [3,4] */
  M2 = mrl_tensor_make(m2, NULL, 2, s45); /* [4,5] */
  mrl_graph_init(&g, 1 << 16);

  for (i = 0; i < 24; i++) want[i] = (double)a[i] + b[i % 12];
  expect_values("add [2,3,4]+[3,4]", mrl_add(&g, &A, &B), want, 24, 0.0);
  for (i = 0; i < 24; i++) want[i] = (double)a[i] - b[i % 4];
  expect_values("sub [2,3,4]-[4]", mrl_sub(&g, &A, &Bv), want, 24, 0.0);
  for (i = 0; i < 24; i++) want[i] = (double)(a[i] * b[i % 12]);
  expect_values("mul [2,3,4]*[3,4]", mrl_mul(&g, &A, &B), want, 24, 0.0);
  for (i = 0; i < 24; i++) want[i] = (double)(a[i] * -1.75f);
  expect_values("scale", mrl_scale(&g, &A, -1.75f), want, 24, 0.0);
  for (i = 0; i < 24; i++) want[i] = (double)(a[i] + 0.3f);
  expect_values("add_scalar", mrl_add_scalar(&g, &A, 0.3f), want, 24, 0.0);
  for (i = 0; i < 24; i++) want[i] = -(double)a[i];
  expect_values("neg", mrl_neg(&g, &A), want, 24, 0.0);
  for (i = 0; i < 24; i++) want[i] = (double)a[i] * a[i];
  expect_values("square", mrl_square(&g, &A), want, 24, 1e-7);
  for (i = 0; i < 24; i++) want[i] = exp((double)a[i]);
  expect_values("exp", mrl_exp(&g, &A), want, 24, 1e-6);
  for (i = 0; i < 24; i++) want[i] = log((double)pos[i]);
  expect_values("log", mrl_log(&g, &P), want, 24, 1e-6);
  for (i = 0; i < 24; i++) want[i] = tanh((double)a[i]);
  expect_values("tanh", mrl_tanh(&g, &A), want, 24, 1e-6);
  for (i = 0; i < 24; i++) want[i] = 1.0 / (1.0 + exp(-(double)a[i] * 8.0));
  expect_values("sigmoid (large |x|)", mrl_sigmoid(&g, mrl_scale(&g, &A, 8.0f)), want, 24, 1e-6);
  for (i = 0; i < 24; i++) want[i] = a[i] > 0 ? a[i] : 0.0;
  expect_values("relu", mrl_relu(&g, &A), want, 24, 0.0);
  for (i = 0; i < 24; i++) want[i] = a[i] < -0.5f ? -0.5 : (a[i] > 0.5f ? 0.5 : a[i]);
  expect_values("clamp", mrl_clamp(&g, &A, -0.5f, 0.5f), want, 24, 0.0);
  for (i = 0; i < 24; i++) want[i] = a[i] < pos[i] ? a[i] : pos[i];
  expect_values("minimum", mrl_minimum(&g, &A, &P), want, 24, 0.0);
  for (i = 0; i < 24; i++) want[i] = a[i] > pos[i] ? a[i] : pos[i];
  expect_values("maximum", mrl_maximum(&g, &A, &P), want, 24, 0.0);

  want[0] = 0.0;
  for (i = 0; i < 24; i++) want[0] += a[i];
  expect_values("sum", mrl_sum(&g, &A), want, 1, 1e-6);
  want[0] /= 24.0;
  expect_values("mean", mrl_mean(&g, &A), want, 1, 1e-6);
  for (i = 0; i < 6; i++) {
    want[i] = 0.0;
    for (j = 0; j < 4; j++) want[i] += a[i * 4 + j];
  }
  y = mrl_sum_rows(&g, &A);
  expect_values("sum_rows [2,3,4]", y, want, 6, 1e-6);
  MRL_CHECK(y && y->ndim == 2 && y->shape[0] == 2 && y->shape[1] == 3,
            "sum_rows [2,3,4] must give [2,3]");
  for (i = 0; i < 6; i++) want[i] /= 4.0;
  expect_values("mean_rows [2,3,4]", mrl_mean_rows(&g, &A), want, 6, 1e-6);
  for (i = 0; i < 6; i++) {
    double lse = 0.0;
    for (j = 0; j < 4; j++) lse += exp((double)a[i * 4 + j]);
    for (j = 0; j < 4; j++) want[i * 4 + j] = a[i * 4 + j] - log(lse);
  }
  expect_values("log_softmax [6,4]", mrl_log_softmax(&g, &A2), want, 24, 1e-6);
  for (i = 0; i < 6; i++) want[i] = a[i * 4 + idx[i]];
  expect_values("gather_rows", mrl_gather_rows(&g, &A2, idx), want, 6, 0.0);
  parts[0] = &B;
  parts[1] = &M1;
  for (i = 0; i < 12; i++) {
    want[i] = b[i];
    want[12 + i] = m1[i];
  }
  y = mrl_concat_rows(&g, parts, 2);
  expect_values("concat_rows", y, want, 24, 0.0);
  MRL_CHECK(y && y->shape[0] == 6 && y->shape[1] == 4, "concat_rows [3,4],[3,4] must give [6,4]");

  for (i = 0; i < 3; i++) /* [3,4] x [4,5] */
    for (j = 0; j < 5; j++) {
      want[i * 5 + j] = 0.0;
      for (k = 0; k < 4; k++) want[i * 5 + j] += (double)m1[i * 4 + k] * m2[k * 5 + j];
    }
  expect_values("matmul", mrl_matmul(&g, &M1, &M2), want, 15, 1e-6);
  for (i = 0; i < 3; i++) /* [3,4] x [3,4]^T */
    for (j = 0; j < 3; j++) {
      want[i * 3 + j] = 0.0;
      for (k = 0; k < 4; k++) want[i * 3 + j] += (double)m1[i * 4 + k] * b[j * 4 + k];
    }
  expect_values("matmul_nt", mrl_matmul_nt(&g, &M1, &B), want, 9, 1e-6);
  for (i = 0; i < 4; i++) /* [3,4]^T x [3,4] */
    for (j = 0; j < 4; j++) {
      want[i * 4 + j] = 0.0;
      for (k = 0; k < 3; k++) want[i * 4 + j] += (double)m1[k * 4 + i] * b[k * 4 + j];
    }
  expect_values("matmul_tn", mrl_matmul_tn(&g, &M1, &B), want, 16, 1e-6);
  for (i = 0; i < 6; i++) /* x [6,4], W [3,4], bias = first 3 of a */
    for (j = 0; j < 3; j++) {
      want[i * 3 + j] = a[j];
      for (k = 0; k < 4; k++) want[i * 3 + j] += (double)a[i * 4 + k] * m1[j * 4 + k];
    }
  {
    int s3b[1] = {3};
    mrl_tensor bias = mrl_tensor_make(a, NULL, 1, s3b);
    expect_values("linear", mrl_linear(&g, &A2, &M1, &bias), want, 18, 1e-6);
  }
  y = mrl_reshape(&g, &A, 2, s64);
  MRL_CHECK(y && y->data == a && y->ndim == 2 && y->shape[0] == 6 && y->shape[1] == 4,
            "reshape must be a view with the new shape");
  MRL_CHECK(mrl_graph_status(&g) == MRL_OK, "forward values: graph status %d", (int)g.status);
  mrl_graph_free(&g);
}

/* Forward values of the general ops against direct loops in double (the
 * gradient checks only prove backward consistent with forward). */
static int shape_is(const mrl_tensor *y, int ndim, int d0, int d1, int d2, int d3) {
  int want[4], i;
  want[0] = d0;
  want[1] = d1;
  want[2] = d2;
  want[3] = d3;
  if (!y || y->ndim != ndim) return 0;
  for (i = 0; i < ndim; i++)
    if (y->shape[i] != want[i]) return 0;
  return 1;
}

static void test_general_values(void) {
  float a[60], b[60], c[60], pos[60];
  double want[128];
  int s314[3] = {3, 1, 4}, s21[2] = {2, 1}, s234[3] = {2, 3, 4}, s34[2] = {3, 4}, s45[2] = {4, 5};
  int s2134[4] = {2, 1, 3, 4}, s342[3] = {3, 4, 2}, s4[1] = {4}, s23[2] = {2, 3};
  int i, j, k, l, p, argmax[12], idx[12], ok;
  mrl_rng rng = mrl_rng_make(777);
  mrl_tensor A, B, P, *y, *parts[3];
  mrl_graph g;
  for (i = 0; i < 60; i++) {
    a[i] = mrl_rng_uniform_range(&rng, -2, 2);
    b[i] = mrl_rng_uniform_range(&rng, -2, 2);
    c[i] = mrl_rng_uniform_range(&rng, -2, 2);
    pos[i] = mrl_rng_uniform_range(&rng, 0.2f, 3);
  }
  mrl_graph_init(&g, 1 << 16);

  /* broadcasting: [3,1,4] op [2,1] -> [3,2,4] */
  A = mrl_tensor_make(a, NULL, 3, s314);
  B = mrl_tensor_make(b, NULL, 2, s21);
  P = mrl_tensor_make(pos, NULL, 2, s21);
  for (i = 0; i < 3; i++)
    for (j = 0; j < 2; j++)
      for (k = 0; k < 4; k++) want[(i * 2 + j) * 4 + k] = (double)a[i * 4 + k] + b[j];
  y = mrl_add(&g, &A, &B);
  MRL_CHECK(shape_is(y, 3, 3, 2, 4, 0), "add [3,1,4]+[2,1] must give [3,2,4]");
  expect_values("add [3,1,4]+[2,1]", y, want, 24, 0.0);
  for (i = 0; i < 3; i++)
    for (j = 0; j < 2; j++)
      for (k = 0; k < 4; k++) want[(i * 2 + j) * 4 + k] = (double)(a[i * 4 + k] / pos[j]);
  expect_values("div [3,1,4]/[2,1]", mrl_div(&g, &A, &P), want, 24, 0.0);
  for (i = 0; i < 3; i++)
    for (j = 0; j < 2; j++)
      for (k = 0; k < 4; k++) want[(i * 2 + j) * 4 + k] = a[i * 4 + k] > b[j] ? a[i * 4 + k] : b[j];
  expect_values("maximum [3,1,4],[2,1]", mrl_maximum(&g, &A, &B), want, 24, 0.0);
  {
    float m4[4] = {1, 0, 0, 2};
    int mi[12] = {0, 1, 1, 0, 5, 0, 1, 0, 0, 0, 1, -3};
    mrl_tensor M = mrl_tensor_make(m4, NULL, 1, s4), A34 = mrl_tensor_make(a, NULL, 2, s34);
    mrl_tensor B4 = mrl_tensor_make(b, NULL, 1, s4);
    for (i = 0; i < 12; i++) want[i] = m4[i % 4] != 0.0f ? a[i] : b[i % 4];
    expect_values("where mask [4], [3,4] : [4]", mrl_where(&g, &M, &A34, &B4), want, 12, 0.0);
    for (i = 0; i < 12; i++) want[i] = mi[i] != 0 ? a[i] : b[i % 4];
    expect_values("where_int", mrl_where_int(&g, mi, &A34, &B4), want, 12, 0.0);
  }

  /* unary ops and activations against their double formulas */
  A = mrl_tensor_make(a, NULL, 3, s234);
  P = mrl_tensor_make(pos, NULL, 3, s234);
  for (i = 0; i < 24; i++) want[i] = sqrt((double)pos[i]);
  expect_values("sqrt", mrl_sqrt(&g, &P), want, 24, 1e-6);
  for (i = 0; i < 24; i++) want[i] = pow((double)pos[i], -1.5);
  expect_values("pow -1.5", mrl_pow(&g, &P, -1.5f), want, 24, 1e-6);
  for (i = 0; i < 24; i++) want[i] = fabs((double)a[i]);
  expect_values("abs", mrl_abs(&g, &A), want, 24, 0.0);
  for (i = 0; i < 24; i++) want[i] = a[i] > 0 ? a[i] : 0.1 * a[i];
  expect_values("leaky_relu 0.1", mrl_leaky_relu(&g, &A, 0.1f), want, 24, 1e-7);
  for (i = 0; i < 24; i++) want[i] = a[i] > 0 ? a[i] : 1.5 * (exp((double)a[i]) - 1.0);
  expect_values("elu 1.5", mrl_elu(&g, &A, 1.5f), want, 24, 1e-6);
  for (i = 0; i < 24; i++) want[i] = 0.5 * a[i] * (1.0 + erf(a[i] / sqrt(2.0)));
  expect_values("gelu (erf)", mrl_gelu(&g, &A), want, 24, 1e-6);
  for (i = 0; i < 24; i++) want[i] = log1p(exp((double)a[i]));
  expect_values("softplus", mrl_softplus(&g, &A), want, 24, 1e-6);
  for (i = 0; i < 24; i++) want[i] = a[i] / (1.0 + exp(-(double)a[i]));
  expect_values("silu", mrl_silu(&g, &A), want, 24, 1e-6);

  /* reductions along axis 1 of [2,3,4] */
  for (i = 0; i < 2; i++)
    for (k = 0; k < 4; k++) {
      double s = 0.0, mx = -1e30, lse = 0.0, var = 0.0;
      int am = 0;
      for (j = 0; j < 3; j++) {
        double v = a[(i * 3 + j) * 4 + k];
        s += v;
        if (v > mx) {
          mx = v;
          am = j;
        }
      }
      for (j = 0; j < 3; j++) {
        double v = a[(i * 3 + j) * 4 + k];
        lse += exp(v - mx);
        var += (v - s / 3) * (v - s / 3);
      }
      want[i * 4 + k] = s;
      want[8 + i * 4 + k] = s / 3;
      want[16 + i * 4 + k] = mx;
      want[24 + i * 4 + k] = mx + log(lse);
      want[32 + i * 4 + k] = var / 2; /* unbiased */
      want[40 + i * 4 + k] = var / 3; /* biased */
      idx[i * 4 + k] = am;
    }
  y = mrl_sum_axis(&g, &A, 1, 0);
  MRL_CHECK(shape_is(y, 2, 2, 4, 0, 0), "sum_axis 1 of [2,3,4] must give [2,4]");
  expect_values("sum_axis 1", y, want, 8, 1e-6);
  y = mrl_mean_axis(&g, &A, -2, 1);
  MRL_CHECK(shape_is(y, 3, 2, 1, 4, 0), "mean_axis -2 keepdim of [2,3,4] must give [2,1,4]");
  expect_values("mean_axis -2 keepdim", y, want + 8, 8, 1e-6);
  memset(argmax, -1, sizeof argmax);
  expect_values("max_axis 1", mrl_max_axis(&g, &A, 1, 0, argmax), want + 16, 8, 0.0);
  MRL_CHECK(memcmp(argmax, idx, 8 * sizeof(int)) == 0, "max_axis: argmax differs");
  expect_values("logsumexp_axis 1", mrl_logsumexp_axis(&g, &A, 1, 0), want + 24, 8, 1e-6);
  expect_values("var_axis 1 unbiased", mrl_var_axis(&g, &A, 1, 0, 1), want + 32, 8, 1e-6);
  expect_values("var_axis 1 biased", mrl_var_axis(&g, &A, 1, 0, 0), want + 40, 8, 1e-6);
  y = mrl_sum_axis(&g, mrl_reshape(&g, &A, 1, &A.size), 0, 0);
  MRL_CHECK(shape_is(y, 1, 1, 0, 0, 0), "sum_axis of a 1-D tensor must give [1]");
  {
    double mx = -1e30, s = 0.0, lse = 0.0, var = 0.0;
    int am = -1, got = -2;
    for (i = 0; i < 24; i++) {
      s += a[i];
      if (a[i] > mx) {
        mx = a[i];
        am = i;
      }
    }
    for (i = 0; i < 24; i++) {
      lse += exp(a[i] - mx);
      var += (a[i] - s / 24) * (a[i] - s / 24);
    }
    want[0] = mx;
    expect_values("max (all)", mrl_max(&g, &A, &got), want, 1, 0.0);
    MRL_CHECK(got == am, "max (all): argmax %d, want %d", got, am);
    want[0] = mx + log(lse);
    expect_values("logsumexp (all)", mrl_logsumexp(&g, &A), want, 1, 1e-6);
    want[0] = var / 23;
    expect_values("var (all)", mrl_var(&g, &A, 1), want, 1, 1e-6);
  }

  /* softmax along axis 0, and a masked one over the last axis */
  for (j = 0; j < 12; j++) {
    double mx = -1e30, s = 0.0;
    for (i = 0; i < 2; i++) mx = a[i * 12 + j] > mx ? a[i * 12 + j] : mx;
    for (i = 0; i < 2; i++) s += exp(a[i * 12 + j] - mx);
    for (i = 0; i < 2; i++) want[i * 12 + j] = exp(a[i * 12 + j] - mx) / s;
  }
  expect_values("softmax axis 0", mrl_softmax(&g, &A, 0, NULL), want, 24, 1e-6);
  {
    float m4[4] = {0, 1, 1, 0};
    mrl_tensor M = mrl_tensor_make(m4, NULL, 1, s4);
    for (i = 0; i < 6; i++) {
      double mx = a[i * 4 + 1] > a[i * 4 + 2] ? a[i * 4 + 1] : a[i * 4 + 2];
      double s = exp(a[i * 4 + 1] - mx) + exp(a[i * 4 + 2] - mx);
      for (k = 0; k < 4; k++) want[i * 4 + k] = m4[k] != 0.0f ? exp(a[i * 4 + k] - mx) / s : 0.0;
      for (k = 0; k < 4; k++)
        want[24 + i * 4 + k] = m4[k] != 0.0f ? a[i * 4 + k] - mx - log(s) : -1e8;
    }
    expect_values("softmax -1 masked", mrl_softmax(&g, &A, -1, &M), want, 24, 1e-6);
    expect_values("log_softmax_axis -1 masked", mrl_log_softmax_axis(&g, &A, -1, &M), want + 24, 24,
                  1e-6);
  }

  /* batched matmul */
  A = mrl_tensor_make(a, NULL, 3, s234);
  B = mrl_tensor_make(b, NULL, 2, s45);
  for (p = 0; p < 2; p++)
    for (i = 0; i < 3; i++)
      for (j = 0; j < 5; j++) {
        double s = 0.0;
        for (k = 0; k < 4; k++) s += (double)a[(p * 3 + i) * 4 + k] * b[k * 5 + j];
        want[(p * 3 + i) * 5 + j] = s;
      }
  y = mrl_matmul(&g, &A, &B);
  MRL_CHECK(shape_is(y, 3, 2, 3, 5, 0), "matmul [2,3,4]x[4,5] must give [2,3,5]");
  expect_values("matmul [2,3,4]x[4,5]", y, want, 30, 1e-6);
  A = mrl_tensor_make(a, NULL, 4, s2134);
  B = mrl_tensor_make(b, NULL, 3, s342);
  for (p = 0; p < 2; p++)
    for (l = 0; l < 3; l++)
      for (i = 0; i < 3; i++)
        for (j = 0; j < 2; j++) {
          double s = 0.0;
          for (k = 0; k < 4; k++) s += (double)a[(p * 3 + i) * 4 + k] * b[(l * 4 + k) * 2 + j];
          want[((p * 3 + l) * 3 + i) * 2 + j] = s;
        }
  y = mrl_matmul(&g, &A, &B);
  MRL_CHECK(shape_is(y, 4, 2, 3, 3, 2), "matmul [2,1,3,4]x[3,4,2] must give [2,3,3,2]");
  expect_values("matmul [2,1,3,4]x[3,4,2]", y, want, 36, 1e-6);

  /* shape ops */
  A = mrl_tensor_make(a, NULL, 3, s234);
  {
    int perm[3] = {2, 0, 1};
    for (k = 0; k < 4; k++)
      for (i = 0; i < 2; i++)
        for (j = 0; j < 3; j++) want[(k * 2 + i) * 3 + j] = a[(i * 3 + j) * 4 + k];
    y = mrl_permute(&g, &A, perm);
    MRL_CHECK(shape_is(y, 3, 4, 2, 3, 0), "permute (2,0,1) of [2,3,4] must give [4,2,3]");
    expect_values("permute (2,0,1)", y, want, 24, 0.0);
    for (i = 0; i < 2; i++)
      for (k = 0; k < 4; k++)
        for (j = 0; j < 3; j++) want[(i * 4 + k) * 3 + j] = a[(i * 3 + j) * 4 + k];
    expect_values("transpose (1,2)", mrl_transpose(&g, &A, 1, -1), want, 24, 0.0);
  }
  for (i = 0; i < 2; i++)
    for (j = 0; j < 3; j++)
      for (k = 0; k < 2; k++) want[(i * 3 + j) * 2 + k] = a[(i * 3 + j) * 4 + 1 + k];
  y = mrl_slice(&g, &A, -1, 1, -1);
  MRL_CHECK(shape_is(y, 3, 2, 3, 2, 0), "slice [1,-1) of the last axis of [2,3,4] gives [2,3,2]");
  expect_values("slice", y, want, 12, 0.0);
  {
    mrl_tensor X = mrl_tensor_make(a, NULL, 2, s23), Y = mrl_tensor_make(b, NULL, 2, s23);
    mrl_tensor Z = mrl_tensor_make(c, NULL, 2, s21);
    parts[0] = &X;
    parts[1] = &Z;
    parts[2] = &Y;
    for (i = 0; i < 2; i++) {
      for (j = 0; j < 3; j++) want[i * 7 + j] = a[i * 3 + j];
      want[i * 7 + 3] = c[i];
      for (j = 0; j < 3; j++) want[i * 7 + 4 + j] = b[i * 3 + j];
    }
    y = mrl_concat(&g, parts, 3, 1);
    MRL_CHECK(shape_is(y, 2, 2, 7, 0, 0), "concat [2,3],[2,1],[2,3] axis 1 must give [2,7]");
    expect_values("concat axis 1", y, want, 14, 0.0);
    parts[1] = &Y;
    for (i = 0; i < 2; i++)
      for (j = 0; j < 3; j++) {
        want[(i * 2 + 0) * 3 + j] = a[i * 3 + j];
        want[(i * 2 + 1) * 3 + j] = b[i * 3 + j];
      }
    y = mrl_stack(&g, parts, 2, 1);
    MRL_CHECK(shape_is(y, 3, 2, 2, 3, 0), "stack of two [2,3] on axis 1 must give [2,2,3]");
    expect_values("stack axis 1", y, want, 12, 0.0);
    for (i = 0; i < 2; i++)
      for (j = 0; j < 3; j++) {
        want[(i * 3 + j) * 2 + 0] = a[i * 3 + j];
        want[(i * 3 + j) * 2 + 1] = b[i * 3 + j];
      }
    expect_values("stack axis -1", mrl_stack(&g, parts, 2, -1), want, 12, 0.0);
    for (p = 0; p < 4; p++)
      for (i = 0; i < 2; i++)
        for (j = 0; j < 3; j++) want[(p * 2 + i) * 3 + j] = c[i];
    {
      int s423[3] = {4, 2, 3};
      expect_values("broadcast_to [2,1] -> [4,2,3]", mrl_broadcast_to(&g, &Z, 3, s423), want, 24,
                    0.0);
    }
  }

  /* indexing */
  {
    int gi[6] = {2, 0, 1, 0, 2, 2}, rows[3] = {2, 2, 0}, oh[3] = {2, 0, 3};
    int g0[8] = {2, 0, 1, 1, 0, 0, 2, 2}, si[8] = {1, 1, 0, 2, 0, 2, 0, 1};
    mrl_tensor X = mrl_tensor_make(a, NULL, 2, s34), S = mrl_tensor_make2(b, NULL, 2, 4);
    for (i = 0; i < 2; i++)
      for (k = 0; k < 4; k++) want[i * 4 + k] = a[g0[i * 4 + k] * 4 + k];
    expect_values("gather axis 0", mrl_gather(&g, &X, 0, g0, 2), want, 8, 0.0);
    for (i = 0; i < 3; i++)
      for (k = 0; k < 2; k++) want[i * 2 + k] = a[i * 4 + gi[i * 2 + k]];
    expect_values("gather axis 1", mrl_gather(&g, &X, 1, gi, 2), want, 6, 0.0);
    for (i = 0; i < 3; i++)
      for (k = 0; k < 4; k++) want[i * 4 + k] = a[rows[i] * 4 + k];
    expect_values("index_select", mrl_index_select(&g, &X, rows, 3), want, 12, 0.0);
    for (i = 0; i < 12; i++) want[i] = a[i];
    for (i = 0; i < 2; i++)
      for (k = 0; k < 4; k++) want[si[i * 4 + k] * 4 + k] += b[i * 4 + k];
    expect_values("scatter_add axis 0 of [3,4] from [2,4]", mrl_scatter_add(&g, &X, 0, si, &S),
                  want, 12, 1e-7);
    for (i = 0; i < 12; i++) want[i] = 0.0;
    for (i = 0; i < 3; i++) want[i * 4 + oh[i]] = 1.0;
    y = mrl_one_hot(&g, oh, 3, 4);
    MRL_CHECK(y && y->grad == NULL, "one_hot: must be a constant");
    expect_values("one_hot", y, want, 12, 0.0);
  }
  {
    float tv[10] = {0.5f, 2.0f, -1.0f, 2.0f, 7.0f, 3.0f, 3.0f, -2.0f, 9.0f, 0.0f};
    int want_i[6] = {4, 1, 3, 3, 0, 1}, got_i[6];
    mrl_tensor T = mrl_tensor_make2(tv, NULL, 2, 5);
    want[0] = 7;
    want[1] = 2;
    want[2] = 2;
    want[3] = 9;
    want[4] = 3;
    want[5] = 3;
    y = mrl_topk(&g, &T, 3, got_i);
    MRL_CHECK(shape_is(y, 2, 2, 3, 0, 0), "topk 3 of [2,5] must give [2,3]");
    expect_values("topk values (ties: lower position first)", y, want, 6, 0.0);
    MRL_CHECK(memcmp(got_i, want_i, sizeof got_i) == 0, "topk: indices %d %d %d / %d %d %d",
              got_i[0], got_i[1], got_i[2], got_i[3], got_i[4], got_i[5]);
  }
  ok = mrl_graph_status(&g) == MRL_OK;
  MRL_CHECK(ok, "general values: graph status %d", (int)g.status);
  mrl_graph_free(&g);
}

/* Integer indices are copied at the call: changing the caller's arrays before
 * backward (a reused action buffer) must not move the gradient. */
static void test_index_copied(void) {
  float xd[16] = {0}, xg[16] = {0};
  int idx[4] = {1, 3, 0, 2}, rows[2] = {1, 3}, i, ok = 1;
  mrl_tensor x = mrl_tensor_make2(xd, xg, 4, 4), *y, *z;
  mrl_graph g;
  mrl_graph_init(&g, 1 << 14);
  y = mrl_gather_rows(&g, &x, idx);
  z = mrl_index_select(&g, &x, rows, 2);
  for (i = 0; i < 4; i++) idx[i] = 0;
  rows[0] = rows[1] = 0;
  MRL_CHECK(mrl_backward(&g, mrl_add(&g, mrl_sum(&g, y), mrl_sum(&g, z))) == MRL_OK,
            "index copy: backward failed");
  for (i = 0; i < 16; i++) {
    int r = i / 4, c = i % 4;
    float want = (c == (r == 0 ? 1 : r == 1 ? 3 : r == 2 ? 0 : 2)) ? 1.0f : 0.0f;
    want += (r == 1 || r == 3) ? 1.0f : 0.0f;
    ok &= xg[i] == want;
  }
  MRL_CHECK(ok, "index copy: the gradient followed the caller's later index values");
  mrl_graph_free(&g);
}

/* mrl_gemm, the kernel under matmul, linear and the fused layers: every
 * transpose combination, beta 0 / 1 / 0.5, row strides wider than the
 * matrices, and shapes that cross the kernel's blocking (k > 256, partial
 * row and column blocks). The padding between rows must stay untouched. */
static void test_gemm(void) {
  static const int shapes[4][3] = {{37, 21, 300}, {1, 1, 1}, {5, 16, 7}, {4, 33, 260}};
  static const float betas[3] = {0.0f, 1.0f, 0.5f};
  const int pad = 3;
  mrl_rng rng = mrl_rng_make(4242);
  int si, ta, tb, bi, i, j, p;
  for (si = 0; si < 4; si++) {
    int m = shapes[si][0], n = shapes[si][1], k = shapes[si][2];
    int ldc = n + pad;
    float *a = (float *)malloc(sizeof(float) * (size_t)(m + pad) * (size_t)(k + pad));
    float *b = (float *)malloc(sizeof(float) * (size_t)(k + pad) * (size_t)(n + pad));
    float *c = (float *)malloc(sizeof(float) * (size_t)m * (size_t)ldc);
    float *c0 = (float *)malloc(sizeof(float) * (size_t)m * (size_t)ldc);
    for (i = 0; i < (m + pad) * (k + pad); i++) a[i] = mrl_rng_uniform_range(&rng, -1, 1);
    for (i = 0; i < (k + pad) * (n + pad); i++) b[i] = mrl_rng_uniform_range(&rng, -1, 1);
    for (i = 0; i < m * ldc; i++) c0[i] = mrl_rng_uniform_range(&rng, -1, 1);
    for (ta = 0; ta < 2; ta++)
      for (tb = 0; tb < 2; tb++)
        for (bi = 0; bi < 3; bi++) {
          /* stored A: [m, k] (lda = k + pad) or, transposed, [k, m] (lda = m + pad) */
          int lda = ta ? m + pad : k + pad, ldb = tb ? k + pad : n + pad, ok = 1, pad_ok = 1;
          double worst = 0.0;
          memcpy(c, c0, sizeof(float) * (size_t)m * (size_t)ldc);
          mrl_gemm(ta, tb, m, n, k, a, lda, b, ldb, betas[bi], c, ldc);
          for (i = 0; i < m; i++) {
            for (j = 0; j < n; j++) {
              double s = betas[bi] == 0.0f ? 0.0 : (double)betas[bi] * c0[i * ldc + j];
              double mag = fabs(s) + 1e-3, err;
              for (p = 0; p < k; p++) {
                double av = ta ? a[p * lda + i] : a[i * lda + p];
                double bv = tb ? b[j * ldb + p] : b[p * ldb + j];
                s += av * bv;
                mag += fabs(av * bv);
              }
              err = fabs((double)c[i * ldc + j] - s) / mag;
              if (err > worst) worst = err;
            }
            for (j = n; j < ldc; j++) pad_ok &= c[i * ldc + j] == c0[i * ldc + j];
          }
          ok = worst <= 1e-5; /* relative to the sum of |terms|: float accumulation */
          MRL_CHECK(ok, "gemm ta=%d tb=%d beta=%g [%d,%d,%d]: relative error %.3g", ta, tb,
                    (double)betas[bi], m, n, k, worst);
          MRL_CHECK(pad_ok, "gemm ta=%d tb=%d [%d,%d,%d]: wrote outside the ldc rows", ta, tb, m, n,
                    k);
        }
    free(a);
    free(b);
    free(c);
    free(c0);
  }
}

/* ------------------------------------------------------------------------ */
/* Forward values and gradients against PyTorch                             */
/* ------------------------------------------------------------------------ */

static void test_reference_ops(void) {
  mrl_ref_file f;
  mrl_graph g;
  float lsx[15], lsx_g[15], lsgy[15], ma[12], ma_g[12], mb[15], mb_g[15], mgc[20];
  int ok;
  if (!mrl_ref_open(&f, "tests/ref/ops.txt")) return;
  ok = mrl_ref_fill(&f, "ls_x", lsx, 15) && mrl_ref_fill(&f, "ls_gy", lsgy, 15) &&
       mrl_ref_fill(&f, "mm_a", ma, 12) && mrl_ref_fill(&f, "mm_b", mb, 15) &&
       mrl_ref_fill(&f, "mm_gc", mgc, 20);
  if (ok) {
    mrl_tensor x = mrl_tensor_make2(lsx, lsx_g, 3, 5), a = mrl_tensor_make2(ma, ma_g, 4, 3);
    mrl_tensor b = mrl_tensor_make2(mb, mb_g, 3, 5), *y, *c, *loss;
    memset(lsx_g, 0, sizeof lsx_g);
    memset(ma_g, 0, sizeof ma_g);
    memset(mb_g, 0, sizeof mb_g);
    mrl_graph_init(&g, 1 << 14);

    y = mrl_log_softmax(&g, &x);
    loss = mrl_sum(&g, mrl_mul(&g, y, mrl_tensor_from2(&g, lsgy, 3, 5)));
    MRL_CHECK(mrl_backward(&g, loss) == MRL_OK, "log_softmax reference: backward failed");
    mrl_ref_expect(&f, "ls_y", y->data, y->size, REF_ATOL, REF_RTOL);
    mrl_ref_expect(&f, "ls_dx", lsx_g, 15, REF_ATOL, REF_RTOL);

    mrl_graph_reset(&g);
    c = mrl_matmul(&g, &a, &b);
    loss = mrl_sum(&g, mrl_mul(&g, c, mrl_tensor_from2(&g, mgc, 4, 5)));
    MRL_CHECK(mrl_backward(&g, loss) == MRL_OK, "matmul reference: backward failed");
    mrl_ref_expect(&f, "mm_c", c->data, c->size, REF_ATOL, REF_RTOL);
    mrl_ref_expect(&f, "mm_da", ma_g, 12, REF_ATOL, REF_RTOL);
    mrl_ref_expect(&f, "mm_db", mb_g, 15, REF_ATOL, REF_RTOL);
    mrl_graph_free(&g);
  }
  mrl_ref_close(&f);
}

/* The general ops against PyTorch (tests/ref/tensor_ops.txt): values and the
 * gradients of sum(y * gy). */
static void ref_ints(const float *v, int *out, int n) {
  int i;
  for (i = 0; i < n; i++) out[i] = (int)v[i];
}

static void test_reference_tensor_ops(void) {
  static const char *act_names[5] = {"gelu", "softplus", "elu", "silu", "leaky"};
  mrl_ref_file f;
  mrl_graph g;
  float ba[24], bag[24], bb[3], bbg[3], bgy[24];
  float smx[30], smxg[30], smm[15], smgy[30];
  float lx[24], lxg[24], lgy[24];
  float ex[60], exg[60], egy[15];
  float vx[15], vxg[15], vgy[3];
  float gx[15], gxg[15], gif[6], ggy[6];
  float tx[18], txg[18], tgy[9], tif[9];
  float ax[16], agy[16];
  int s234[3] = {2, 3, 4}, s31[2] = {3, 1}, s235[3] = {2, 3, 5}, s35[2] = {3, 5};
  int s243[3] = {2, 4, 3}, s345[3] = {3, 4, 5}, s53[2] = {5, 3}, s36[2] = {3, 6};
  int gidx[6], tidx[9], want_idx[9], i, ok, same;
  mrl_tensor *y, *loss;
  if (!mrl_ref_open(&f, "tests/ref/tensor_ops.txt")) return;
  ok = mrl_ref_fill(&f, "badd_a", ba, 24) && mrl_ref_fill(&f, "badd_b", bb, 3) &&
       mrl_ref_fill(&f, "badd_gy", bgy, 24) && mrl_ref_fill(&f, "sm_x", smx, 30) &&
       mrl_ref_fill(&f, "sm_mask", smm, 15) && mrl_ref_fill(&f, "sm_gy", smgy, 30) &&
       mrl_ref_fill(&f, "lsm_x", lx, 24) && mrl_ref_fill(&f, "lsm_gy", lgy, 24) &&
       mrl_ref_fill(&f, "lse_x", ex, 60) && mrl_ref_fill(&f, "lse_gy", egy, 15) &&
       mrl_ref_fill(&f, "var_x", vx, 15) && mrl_ref_fill(&f, "var_gy", vgy, 3) &&
       mrl_ref_fill(&f, "gat_x", gx, 15) && mrl_ref_fill(&f, "gat_index", gif, 6) &&
       mrl_ref_fill(&f, "gat_gy", ggy, 6) && mrl_ref_fill(&f, "topk_x", tx, 18) &&
       mrl_ref_fill(&f, "topk_gy", tgy, 9) && mrl_ref_fill(&f, "topk_index", tif, 9) &&
       mrl_ref_fill(&f, "act_x", ax, 16) && mrl_ref_fill(&f, "act_gy", agy, 16);
  if (!ok) {
    mrl_ref_close(&f);
    return;
  }
  mrl_graph_init(&g, 1 << 16);
  memset(bag, 0, sizeof bag);
  memset(bbg, 0, sizeof bbg);
  memset(smxg, 0, sizeof smxg);
  memset(lxg, 0, sizeof lxg);
  memset(exg, 0, sizeof exg);
  memset(vxg, 0, sizeof vxg);
  memset(gxg, 0, sizeof gxg);
  memset(txg, 0, sizeof txg);
  {
    mrl_tensor a = mrl_tensor_make(ba, bag, 3, s234), b = mrl_tensor_make(bb, bbg, 2, s31);
    y = mrl_add(&g, &a, &b);
    loss = mrl_sum(&g, mrl_mul(&g, y, mrl_tensor_from(&g, bgy, 3, s234)));
    MRL_CHECK(mrl_backward(&g, loss) == MRL_OK, "broadcast add reference: backward failed");
    mrl_ref_expect(&f, "badd_y", y->data, y->size, REF_ATOL, REF_RTOL);
    mrl_ref_expect(&f, "badd_da", bag, 24, REF_ATOL, REF_RTOL);
    mrl_ref_expect(&f, "badd_db", bbg, 3, REF_ATOL, REF_RTOL);
  }
  mrl_graph_reset(&g);
  {
    mrl_tensor x = mrl_tensor_make(smx, smxg, 3, s235), m = mrl_tensor_make(smm, NULL, 2, s35);
    y = mrl_softmax(&g, &x, -1, &m);
    loss = mrl_sum(&g, mrl_mul(&g, y, mrl_tensor_from(&g, smgy, 3, s235)));
    MRL_CHECK(mrl_backward(&g, loss) == MRL_OK, "masked softmax reference: backward failed");
    mrl_ref_expect(&f, "sm_y", y->data, y->size, REF_ATOL, REF_RTOL);
    mrl_ref_expect(&f, "sm_dx", smxg, 30, REF_ATOL, REF_RTOL);
    same = 1;
    for (i = 0; i < 30; i++) same &= smm[i % 15] != 0.0f || (y->data[i] == 0.0f && smxg[i] == 0.0f);
    MRL_CHECK(same, "masked softmax: masked entries must be exactly 0 with no gradient");
  }
  mrl_graph_reset(&g);
  {
    mrl_tensor x = mrl_tensor_make(lx, lxg, 3, s243);
    y = mrl_log_softmax_axis(&g, &x, 1, NULL);
    loss = mrl_sum(&g, mrl_mul(&g, y, mrl_tensor_from(&g, lgy, 3, s243)));
    MRL_CHECK(mrl_backward(&g, loss) == MRL_OK, "log_softmax axis 1 reference: backward failed");
    mrl_ref_expect(&f, "lsm_y", y->data, y->size, REF_ATOL, REF_RTOL);
    mrl_ref_expect(&f, "lsm_dx", lxg, 24, REF_ATOL, REF_RTOL);
  }
  mrl_graph_reset(&g);
  {
    mrl_tensor x = mrl_tensor_make(ex, exg, 3, s345);
    y = mrl_logsumexp_axis(&g, &x, 1, 0);
    MRL_CHECK(y && y->ndim == 2 && y->shape[0] == 3 && y->shape[1] == 5,
              "logsumexp_axis [3,4,5] axis 1 must give [3,5]");
    loss = mrl_sum(&g, mrl_mul(&g, y, mrl_tensor_from2(&g, egy, 3, 5)));
    MRL_CHECK(mrl_backward(&g, loss) == MRL_OK, "logsumexp reference: backward failed");
    mrl_ref_expect(&f, "lse_y", y->data, y->size, REF_ATOL, REF_RTOL);
    mrl_ref_expect(&f, "lse_dx", exg, 60, REF_ATOL, REF_RTOL);
  }
  mrl_graph_reset(&g);
  {
    mrl_tensor x = mrl_tensor_make(vx, vxg, 2, s53);
    int s3[1] = {3};
    y = mrl_var_axis(&g, &x, 0, 0, 1);
    loss = mrl_sum(&g, mrl_mul(&g, y, mrl_tensor_from(&g, vgy, 1, s3)));
    MRL_CHECK(mrl_backward(&g, loss) == MRL_OK, "var reference: backward failed");
    mrl_ref_expect(&f, "var_y", y->data, y->size, REF_ATOL, REF_RTOL);
    mrl_ref_expect(&f, "var_dx", vxg, 15, REF_ATOL, REF_RTOL);
  }
  mrl_graph_reset(&g);
  {
    mrl_tensor x = mrl_tensor_make(gx, gxg, 2, s35);
    ref_ints(gif, gidx, 6);
    y = mrl_gather(&g, &x, 1, gidx, 2);
    loss = mrl_sum(&g, mrl_mul(&g, y, mrl_tensor_from2(&g, ggy, 3, 2)));
    MRL_CHECK(mrl_backward(&g, loss) == MRL_OK, "gather reference: backward failed");
    mrl_ref_expect(&f, "gat_y", y->data, y->size, REF_ATOL, REF_RTOL);
    mrl_ref_expect(&f, "gat_dx", gxg, 15, REF_ATOL, REF_RTOL);
  }
  mrl_graph_reset(&g);
  {
    mrl_tensor x = mrl_tensor_make(tx, txg, 2, s36);
    ref_ints(tif, want_idx, 9);
    y = mrl_topk(&g, &x, 3, tidx);
    loss = mrl_sum(&g, mrl_mul(&g, y, mrl_tensor_from2(&g, tgy, 3, 3)));
    MRL_CHECK(mrl_backward(&g, loss) == MRL_OK, "topk reference: backward failed");
    mrl_ref_expect(&f, "topk_y", y->data, y->size, REF_ATOL, REF_RTOL);
    mrl_ref_expect(&f, "topk_dx", txg, 18, REF_ATOL, REF_RTOL);
    MRL_CHECK(memcmp(tidx, want_idx, sizeof tidx) == 0, "topk: indices differ from torch.topk's");
  }
  {
    float ma[24], mag[24], mb[24], mbg[24], mgy[36];
    int s2134[4] = {2, 1, 3, 4}, s342[3] = {3, 4, 2}, s2332[4] = {2, 3, 3, 2};
    if (mrl_ref_fill(&f, "bmm_a", ma, 24) && mrl_ref_fill(&f, "bmm_b", mb, 24) &&
        mrl_ref_fill(&f, "bmm_gy", mgy, 36)) {
      mrl_tensor a = mrl_tensor_make(ma, mag, 4, s2134), b = mrl_tensor_make(mb, mbg, 3, s342);
      memset(mag, 0, sizeof mag);
      memset(mbg, 0, sizeof mbg);
      mrl_graph_reset(&g);
      y = mrl_matmul(&g, &a, &b);
      loss = mrl_sum(&g, mrl_mul(&g, y, mrl_tensor_from(&g, mgy, 4, s2332)));
      MRL_CHECK(mrl_backward(&g, loss) == MRL_OK, "batched matmul reference: backward failed");
      mrl_ref_expect(&f, "bmm_y", y->data, y->size, REF_ATOL, REF_RTOL);
      mrl_ref_expect(&f, "bmm_da", mag, 24, REF_ATOL, REF_RTOL);
      mrl_ref_expect(&f, "bmm_db", mbg, 24, REF_ATOL, REF_RTOL);
    }
  }
  for (i = 0; i < 5; i++) {
    float axg[16];
    char name[32];
    mrl_tensor x = mrl_tensor_make2(ax, axg, 2, 8);
    memset(axg, 0, sizeof axg);
    mrl_graph_reset(&g);
    switch (i) {
    case 0: y = mrl_gelu(&g, &x); break;
    case 1: y = mrl_softplus(&g, &x); break;
    case 2: y = mrl_elu(&g, &x, 1.0f); break;
    case 3: y = mrl_silu(&g, &x); break;
    default: y = mrl_leaky_relu(&g, &x, 0.01f); break;
    }
    loss = mrl_sum(&g, mrl_mul(&g, y, mrl_tensor_from2(&g, agy, 2, 8)));
    MRL_CHECK(mrl_backward(&g, loss) == MRL_OK, "%s reference: backward failed", act_names[i]);
    snprintf(name, sizeof name, "act_%s_y", act_names[i]);
    mrl_ref_expect(&f, name, y->data, y->size, REF_ATOL, REF_RTOL);
    snprintf(name, sizeof name, "act_%s_dx", act_names[i]);
    mrl_ref_expect(&f, name, axg, 16, REF_ATOL, REF_RTOL);
  }
  mrl_graph_free(&g);
  mrl_ref_close(&f);
}

/* ------------------------------------------------------------------------ */
/* Arena                                                                    */
/* ------------------------------------------------------------------------ */

#define CANARY 0xA5

static void test_arena_fixed(void) {
  static unsigned char buf[8192];
  unsigned char *region = buf + 1024 + 3; /* deliberately misaligned */
  size_t region_size = 2000, i;
  mrl_arena a;
  int n = 0, in_bounds = 1, aligned = 1, canaries = 1, got_null = 0;
  memset(buf, CANARY, sizeof buf);
  mrl_arena_init_buffer(&a, region, region_size);
  while (n < 1000) {
    unsigned char *p = (unsigned char *)mrl_arena_alloc(&a, 100);
    if (!p) {
      got_null = 1;
      break;
    }
    aligned &= is_aligned64(p);
    in_bounds &= p >= region && p + 100 <= region + region_size;
    memset(p, 0, 100); /* writes exactly what was handed out */
    n++;
  }
  MRL_CHECK(got_null, "fixed arena: never returned NULL");
  MRL_CHECK(n >= 10 && n <= 20, "fixed arena: %d allocations of 100 bytes from 2000", n);
  MRL_CHECK(aligned, "fixed arena: allocation not 64-byte aligned");
  MRL_CHECK(in_bounds, "fixed arena: allocation outside the caller's buffer");
  MRL_CHECK(a.used <= a.capacity, "fixed arena: used %lu past capacity %lu", (unsigned long)a.used,
            (unsigned long)a.capacity);
  MRL_CHECK(mrl_arena_alloc(&a, 100000) == NULL, "fixed arena: huge allocation must fail");
  for (i = 0; i < sizeof buf; i++) {
    unsigned char *p = buf + i;
    int inside = p >= region && p < region + region_size;
    if (!inside && *p != CANARY) canaries = 0;
  }
  MRL_CHECK(canaries, "fixed arena: bytes outside the caller's buffer were written");
  MRL_CHECK(mrl_arena_high_water(&a) <= region_size, "fixed arena: high water beyond the buffer");
  mrl_arena_reset(&a);
  MRL_CHECK(mrl_arena_alloc(&a, 100) != NULL, "fixed arena: reset must make room again");
  mrl_arena_free(&a); /* must not free the caller's buffer */
  canaries = 1;
  for (i = 0; i < 1024; i++) canaries &= buf[i] == CANARY;
  MRL_CHECK(canaries, "fixed arena: free touched memory before the buffer");
}

static void test_graph_out_of_memory(void) {
  static unsigned char buf[4096];
  unsigned char *region = buf + 512;
  size_t region_size = 2048, i;
  float xd[64], xg[64];
  mrl_tensor x = mrl_tensor_make2(xd, xg, 8, 8), *y, *z;
  mrl_graph g;
  int steps = 0, canaries = 1;
  for (i = 0; i < 64; i++) {
    xd[i] = 0.01f * (float)i;
    xg[i] = 0.0f;
  }
  memset(buf, CANARY, sizeof buf);
  mrl_graph_init_buffer(&g, region, region_size);
  y = &x;
  while (y && steps < 100) { /* each op needs ~700 bytes: fails within a few steps */
    y = mrl_matmul(&g, y, &x);
    steps++;
  }
  MRL_CHECK(y == NULL, "tiny graph: ops never returned NULL");
  MRL_CHECK(steps >= 2 && steps < 100, "tiny graph: %d ops before running out", steps);
  MRL_CHECK(mrl_graph_status(&g) == MRL_ERR_OUT_OF_MEMORY, "tiny graph: status %d, want %d",
            (int)mrl_graph_status(&g), (int)MRL_ERR_OUT_OF_MEMORY);
  z = mrl_tanh(&g, y);
  MRL_CHECK(z == NULL, "tiny graph: tanh(NULL) must return NULL");
  z = mrl_sum(&g, mrl_add(&g, z, &x));
  MRL_CHECK(z == NULL, "tiny graph: ops given NULL must return NULL");
  MRL_CHECK(mrl_linear(&g, NULL, &x, NULL) == NULL, "tiny graph: linear(NULL) must return NULL");
  MRL_CHECK(mrl_backward(&g, z) == MRL_ERR_OUT_OF_MEMORY,
            "tiny graph: backward must report out of memory");
  MRL_CHECK(mrl_backward(&g, &x) == MRL_ERR_OUT_OF_MEMORY,
            "tiny graph: backward must refuse to run on a broken tape");
  for (i = 0; i < sizeof buf; i++) {
    unsigned char *p = buf + i;
    if ((p < region || p >= region + region_size) && *p != CANARY) canaries = 0;
  }
  MRL_CHECK(canaries, "tiny graph: bytes outside the caller's buffer were written");
  mrl_graph_reset(&g);
  MRL_CHECK(mrl_graph_status(&g) == MRL_OK, "tiny graph: reset must clear the status");
  y = mrl_matmul(&g, &x, &x);
  MRL_CHECK(y != NULL, "tiny graph: after reset an op must fit again");
  mrl_graph_free(&g);
}

/* A small model over fixed buffers of every size from 0 up: whenever the
 * buffer is too small, the loss is NULL or the status says out of memory,
 * backward refuses to run (gradients untouched) and nothing outside the
 * buffer is written; once it fits, results equal a heap graph's bit for bit. */
static mrl_tensor *sweep_forward(mrl_graph *g, const float *xd, mrl_tensor *w, mrl_tensor *b,
                                 const int *idx) {
  mrl_tensor *h = mrl_tanh(g, mrl_linear(g, mrl_tensor_from2(g, xd, 3, 4), w, b)), *parts[2];
  parts[0] = h;
  parts[1] = mrl_square(g, h);
  if (!parts[0] || !parts[1]) return NULL;
  return mrl_neg(
      g, mrl_mean(g, mrl_gather_rows(g, mrl_log_softmax(g, mrl_concat_rows(g, parts, 2)), idx)));
}

static void test_oom_sweep(void) {
  static unsigned char buf[8192 + 256];
  static const int idx[6] = {0, 4, 2, 1, 3, 0};
  float xd[12], wd[20], wg[20], bd[5], bg[5], ref_wg[20], ref_bg[5], ref_loss = 0.0f;
  int s5[1] = {5}, i, fails = 0, successes = 0, bad_status = 0, bad_backward = 0;
  int touched = 0, canaries = 1, mismatch = 0;
  mrl_tensor w = mrl_tensor_make2(wd, wg, 5, 4), b = mrl_tensor_make(bd, bg, 1, s5), *loss;
  mrl_rng rng = mrl_rng_make(8);
  mrl_graph g;
  size_t size, k;
  for (i = 0; i < 12; i++) xd[i] = mrl_rng_uniform_range(&rng, -1, 1);
  for (i = 0; i < 20; i++) wd[i] = mrl_rng_uniform_range(&rng, -1, 1);
  for (i = 0; i < 5; i++) bd[i] = mrl_rng_uniform_range(&rng, -1, 1);
  memset(wg, 0, sizeof wg);
  memset(bg, 0, sizeof bg);
  mrl_graph_init(&g, 1 << 14);
  loss = sweep_forward(&g, xd, &w, &b, idx);
  MRL_CHECK(loss && mrl_backward(&g, loss) == MRL_OK, "oom sweep: heap reference failed");
  if (loss) ref_loss = loss->data[0];
  memcpy(ref_wg, wg, sizeof wg);
  memcpy(ref_bg, bg, sizeof bg);
  mrl_graph_free(&g);
  for (size = 0; size <= 8192; size += 32) {
    unsigned char *region = buf + 128;
    mrl_result r;
    memset(buf, CANARY, sizeof buf);
    memset(wg, 0, sizeof wg);
    memset(bg, 0, sizeof bg);
    mrl_graph_init_buffer(&g, region, size);
    loss = sweep_forward(&g, xd, &w, &b, idx);
    if (!loss && mrl_graph_status(&g) != MRL_ERR_OUT_OF_MEMORY) bad_status++;
    r = mrl_backward(&g, loss);
    if (mrl_graph_status(&g) != MRL_OK) {
      fails++;
      if (r != MRL_ERR_OUT_OF_MEMORY) bad_backward++;
      for (i = 0; i < 20; i++) touched |= wg[i] != 0.0f;
    } else {
      successes++;
      if (r != MRL_OK || !loss) {
        bad_backward++;
      } else {
        mismatch |= loss->data[0] != ref_loss;
        mismatch |= memcmp(wg, ref_wg, sizeof wg) != 0 || memcmp(bg, ref_bg, sizeof bg) != 0;
      }
    }
    for (k = 0; k < sizeof buf; k++)
      if ((buf + k < region || buf + k >= region + size) && buf[k] != CANARY) canaries = 0;
  }
  MRL_CHECK(fails > 10 && successes > 10, "oom sweep: %d failing and %d fitting sizes", fails,
            successes);
  MRL_CHECK(!bad_status, "oom sweep: %d times a NULL loss without the out-of-memory status",
            bad_status);
  MRL_CHECK(!bad_backward, "oom sweep: backward's result disagreed with the status %d times",
            bad_backward);
  MRL_CHECK(!touched, "oom sweep: backward changed gradients on a broken tape");
  MRL_CHECK(canaries, "oom sweep: bytes outside the caller's buffer were written");
  MRL_CHECK(!mismatch, "oom sweep: a fixed-buffer graph gave other results than the heap graph");
}

/* A forward through most general ops (every one that allocates scratch:
 * masks, argmax, index copies, copy plans, saved parts). Used by the
 * out-of-memory sweep and the determinism test. */
static mrl_tensor *general_forward(mrl_graph *g, const float *xd, mrl_tensor *w, mrl_tensor *e) {
  static const int perm[3] = {0, 2, 1}, rows[2] = {3, 1}, gi[4] = {2, 0, 3, 3};
  static const int si[4] = {1, 0, 1, 1};
  static const int wi[32] = {1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1, 1, 0, 1, 0,
                             0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 0, 0};
  static const float maskd[3] = {1, 0, 1};
  int s234[3] = {2, 3, 4}, s3[1] = {3}, s24[2] = {2, 4}, s14[2] = {1, 4}, argmax[8];
  mrl_tensor *x = mrl_tensor_from(g, xd, 3, s234), *m = mrl_tensor_from(g, maskd, 1, s3);
  mrl_tensor *h, *p, *mm, *emb, *parts[2], *cat, *tk, *lse, *v, *gs, *sc, *mx, *wsel;
  h = mrl_gelu(g, mrl_add(g, x, w));                  /* [2,3,4] */
  p = mrl_softmax(g, mrl_permute(g, h, perm), -1, m); /* [2,4,3] */
  mm = mrl_matmul(g, p, h);                           /* [2,4,4] */
  emb = mrl_index_select(g, e, rows, 2);              /* [2,4] */
  parts[0] = emb;
  parts[1] = mrl_broadcast_to(g, mrl_slice(g, emb, 0, 1, 2), 2, s24);
  parts[0] = mrl_stack(g, parts, 2, 1);                      /* [2,2,4] */
  parts[1] = mrl_slice(g, mm, 1, 0, 2);                      /* [2,2,4] */
  cat = mrl_concat(g, parts, 2, 1);                          /* [2,4,4] */
  tk = mrl_topk(g, cat, 2, NULL);                            /* [2,4,2] */
  lse = mrl_logsumexp_axis(g, tk, -1, 0);                    /* [2,4] */
  v = mrl_var_axis(g, mrl_transpose(g, cat, 0, 2), 2, 0, 1); /* [4,4] */
  gs = mrl_gather(g, v, 1, gi, 1);                           /* [4,1] */
  sc = mrl_scatter_add(g, lse, 0, si, mrl_reshape(g, mrl_sqrt(g, mrl_abs(g, gs)), 2, s14));
  mx = mrl_max_axis(g, mrl_where_int(g, wi, cat, mrl_neg(g, cat)), 1, 1, argmax);
  wsel = mrl_log_softmax_axis(g, mx, -1, NULL); /* [2,1,4] */
  if (!sc || !wsel) return NULL;
  return mrl_add(g, mrl_mean(g, sc), mrl_var(g, wsel, 0));
}

static void general_inputs(uint64_t seed, float *xd, float *wd, float *ed) {
  mrl_rng rng = mrl_rng_make(seed);
  int i;
  for (i = 0; i < 24; i++) xd[i] = mrl_rng_normal(&rng);
  for (i = 0; i < 4; i++) wd[i] = mrl_rng_uniform_range(&rng, -1, 1);
  for (i = 0; i < 20; i++) ed[i] = mrl_rng_normal(&rng);
}

/* Every fixed buffer size from 0 up past what the forward needs: a NULL
 * loss always comes with MRL_ERR_OUT_OF_MEMORY, backward then refuses and
 * leaves gradients alone, no byte outside the buffer changes (the sanitizer
 * build also watches every access), and once the graph fits the results
 * equal the heap graph's bit for bit. */
static void test_general_oom_sweep(void) {
  static unsigned char buf[65536 + 256];
  float xd[24], wd[4], wg[4], ed[20], eg[20], ref_wg[4], ref_eg[20], ref_loss = 0.0f;
  int s4[1] = {4}, i, fails = 0, successes = 0, bad_status = 0, bad_backward = 0, touched = 0;
  int canaries = 1, mismatch = 0;
  mrl_tensor w = mrl_tensor_make(wd, wg, 1, s4), e = mrl_tensor_make2(ed, eg, 5, 4), *loss;
  mrl_graph g;
  size_t size, k, need;
  general_inputs(31, xd, wd, ed);
  memset(wg, 0, sizeof wg);
  memset(eg, 0, sizeof eg);
  mrl_graph_init(&g, 1 << 16);
  loss = general_forward(&g, xd, &w, &e);
  MRL_CHECK(loss && mrl_backward(&g, loss) == MRL_OK, "general oom sweep: heap reference failed");
  if (loss) ref_loss = loss->data[0];
  need = mrl_arena_high_water(&g.arena);
  memcpy(ref_wg, wg, sizeof wg);
  memcpy(ref_eg, eg, sizeof eg);
  mrl_graph_free(&g);
  MRL_CHECK(need + 1024 <= 65536, "general oom sweep: the forward needs %lu bytes",
            (unsigned long)need);
  for (size = 0; size <= need + 1024 && size <= 65536; size += 40) {
    unsigned char *region = buf + 128;
    mrl_result r;
    memset(buf, CANARY, sizeof buf);
    memset(wg, 0, sizeof wg);
    memset(eg, 0, sizeof eg);
    mrl_graph_init_buffer(&g, region, size);
    loss = general_forward(&g, xd, &w, &e);
    if (!loss && mrl_graph_status(&g) != MRL_ERR_OUT_OF_MEMORY) bad_status++;
    r = mrl_backward(&g, loss);
    if (mrl_graph_status(&g) != MRL_OK) {
      fails++;
      if (r != MRL_ERR_OUT_OF_MEMORY) bad_backward++;
      for (i = 0; i < 4; i++) touched |= wg[i] != 0.0f;
      for (i = 0; i < 20; i++) touched |= eg[i] != 0.0f;
    } else {
      successes++;
      if (r != MRL_OK || !loss) {
        bad_backward++;
      } else {
        mismatch |= loss->data[0] != ref_loss;
        mismatch |= memcmp(wg, ref_wg, sizeof wg) != 0 || memcmp(eg, ref_eg, sizeof eg) != 0;
      }
    }
    for (k = 0; k < sizeof buf; k++)
      if ((buf + k < region || buf + k >= region + size) && buf[k] != CANARY) canaries = 0;
  }
  MRL_CHECK(fails > 50 && successes > 10, "general oom sweep: %d failing and %d fitting sizes",
            fails, successes);
  MRL_CHECK(!bad_status, "general oom sweep: %d NULL losses without the out-of-memory status",
            bad_status);
  MRL_CHECK(!bad_backward, "general oom sweep: backward disagreed with the status %d times",
            bad_backward);
  MRL_CHECK(!touched, "general oom sweep: backward changed gradients on a broken tape");
  MRL_CHECK(canaries, "general oom sweep: bytes outside the caller's buffer were written");
  MRL_CHECK(!mismatch, "general oom sweep: a fixed-buffer graph differs from the heap graph");
}

/* Same seed, same bits: the general forward and backward run twice from
 * fresh graphs give identical loss and gradients; another seed differs. */
static int general_run(uint64_t seed, float *out) {
  float xd[24], wd[4], wg[4], ed[20], eg[20];
  int s4[1] = {4}, n = 0, i;
  mrl_tensor w = mrl_tensor_make(wd, wg, 1, s4), e = mrl_tensor_make2(ed, eg, 5, 4), *loss;
  mrl_graph g;
  general_inputs(seed, xd, wd, ed);
  memset(wg, 0, sizeof wg);
  memset(eg, 0, sizeof eg);
  mrl_graph_init(&g, 1 << 12); /* small: grows through overflow blocks on the way */
  loss = general_forward(&g, xd, &w, &e);
  if (!loss || mrl_backward(&g, loss) != MRL_OK) {
    mrl_graph_free(&g);
    return 0;
  }
  out[n++] = loss->data[0];
  for (i = 0; i < 4; i++) out[n++] = wg[i];
  for (i = 0; i < 20; i++) out[n++] = eg[i];
  mrl_graph_free(&g);
  return n;
}

static void test_general_determinism(void) {
  float a[32], b[32], c[32];
  int na = general_run(2024, a), nb = general_run(2024, b), nc = general_run(2025, c), i, nz = 0;
  MRL_CHECK(na == 25 && nb == na && memcmp(a, b, sizeof(float) * (size_t)na) == 0,
            "general determinism: same seed gave different bits");
  MRL_CHECK(nc == na && memcmp(a, c, sizeof(float) * (size_t)na) != 0,
            "general determinism: a different seed gave the same results");
  for (i = 1; i < na; i++) nz += a[i] != 0.0f;
  MRL_CHECK(nz >= 8, "general determinism: only %d nonzero gradients", nz);
}

static void test_arena_heap(void) {
  mrl_arena a;
  unsigned char *ptrs[16];
  int i, j, intact = 1, aligned = 1;
  size_t cap_after_reset, hw;
  unsigned char *base_after_reset;
  MRL_CHECK(mrl_arena_init(&a, 4096) == MRL_OK, "heap arena: init failed");
  for (i = 0; i < 16; i++) { /* 16 KiB from a 4 KiB arena: grows by overflow blocks */
    ptrs[i] = (unsigned char *)mrl_arena_alloc(&a, 1000);
    MRL_CHECK(ptrs[i] != NULL, "heap arena: allocation %d failed", i);
    if (!ptrs[i]) return;
    aligned &= is_aligned64(ptrs[i]);
    memset(ptrs[i], i + 1, 1000);
  }
  MRL_CHECK(a.overflow != NULL, "heap arena: did not grow past its initial size");
  for (i = 0; i < 16; i++)
    for (j = 0; j < 1000; j++) intact &= ptrs[i][j] == (unsigned char)(i + 1);
  MRL_CHECK(intact, "heap arena: earlier allocations changed when the arena grew");
  MRL_CHECK(aligned, "heap arena: allocation not 64-byte aligned");
  for (i = 0; i < 16; i++)
    for (j = i + 1; j < 16; j++)
      if (ptrs[i] < ptrs[j] + 1000 && ptrs[j] < ptrs[i] + 1000) intact = 0;
  MRL_CHECK(intact, "heap arena: allocations overlap");
  hw = mrl_arena_high_water(&a);
  MRL_CHECK(hw >= 16 * 1000, "heap arena: high water %lu below 16000", (unsigned long)hw);

  mrl_arena_reset(&a);
  MRL_CHECK(a.overflow == NULL, "heap arena: reset must fold the overflow blocks");
  MRL_CHECK(a.capacity >= hw, "heap arena: capacity %lu after reset below high water %lu",
            (unsigned long)a.capacity, (unsigned long)hw);
  cap_after_reset = a.capacity;
  base_after_reset = a.base;
  /* The same workload again: fits in the one block, so no malloc happens
   * (no overflow block, and the next reset keeps the same block). */
  for (i = 0; i < 16; i++) {
    ptrs[i] = (unsigned char *)mrl_arena_alloc(&a, 1000);
    aligned &= ptrs[i] && is_aligned64(ptrs[i]);
  }
  MRL_CHECK(a.overflow == NULL, "heap arena: same workload after reset allocated a new block");
  MRL_CHECK(aligned, "heap arena: allocation after reset not 64-byte aligned");
  mrl_arena_reset(&a);
  MRL_CHECK(a.capacity == cap_after_reset && a.base == base_after_reset,
            "heap arena: steady-state reset reallocated");
  MRL_CHECK(mrl_arena_high_water(&a) == hw, "heap arena: high water moved on the same workload");
  mrl_arena_free(&a);
}

/* Requests near SIZE_MAX used to wrap around when rounded up to the
 * alignment (SIZE_MAX gave a pointer, SIZE_MAX - 39 the same address
 * twice): they fail with NULL and the graph reports out of memory, on heap
 * and fixed arenas alike, and the arena stays usable. */
static void test_arena_huge_requests(void) {
  static unsigned char region[4096];
  static const size_t huge[4] = {(size_t)-1, (size_t)-1 - 39, (size_t)-1 - 63, (size_t)-1 / 2 + 1};
  mrl_graph g;
  int heap, k;
  for (heap = 0; heap < 2; heap++) {
    if (heap)
      MRL_CHECK(mrl_graph_init(&g, 4096) == MRL_OK, "graph init");
    else
      mrl_graph_init_buffer(&g, region, sizeof region);
    for (k = 0; k < 4; k++) {
      void *p = mrl_graph_alloc(&g, huge[k]);
      MRL_CHECK(p == NULL, "%s arena: alloc(SIZE_MAX - %lu) gave a pointer",
                heap ? "heap" : "fixed", (unsigned long)((size_t)-1 - huge[k]));
      MRL_CHECK(mrl_graph_status(&g) == MRL_ERR_OUT_OF_MEMORY,
                "%s arena: status %s after a huge alloc", heap ? "heap" : "fixed",
                mrl_result_string(mrl_graph_status(&g)));
      mrl_graph_reset(&g);
    }
    MRL_CHECK(g.arena.used == 0 && g.arena.overflow == NULL, "huge requests took nothing");
    MRL_CHECK(mrl_graph_alloc(&g, 100) != NULL, "%s arena usable after huge requests",
              heap ? "heap" : "fixed");
    if (heap) mrl_graph_free(&g);
  }
  {
    mrl_arena a;
    MRL_CHECK(mrl_arena_init(&a, (size_t)-1) == MRL_ERR_OUT_OF_MEMORY,
              "heap arena: init with SIZE_MAX bytes");
    mrl_arena_free(&a);
  }
}

static void test_tensor_alignment(void) {
  mrl_graph g;
  int shape[3] = {3, 5, 7}, aligned = 1, k;
  mrl_graph_init(&g, 4096);
  for (k = 0; k < 40; k++) { /* enough to spill into overflow blocks */
    mrl_tensor *t = mrl_tensor_new(&g, 3, shape, 1);
    aligned &= t && is_aligned64(t) && is_aligned64(t->data) && is_aligned64(t->grad);
  }
  MRL_CHECK(aligned, "tensor_new: data and grad must be 64-byte aligned");
  mrl_graph_free(&g);
}

/* ------------------------------------------------------------------------ */
/* Shape errors stop with the op and both shapes                            */
/* ------------------------------------------------------------------------ */

#if defined(__unix__)
static void bad_matmul(void) {
  static unsigned char buf[4096];
  float a[6] = {0}, b[20] = {0};
  mrl_graph g;
  mrl_tensor ta = mrl_tensor_make2(a, NULL, 2, 3), tb = mrl_tensor_make2(b, NULL, 4, 5);
  mrl_graph_init_buffer(&g, buf, sizeof buf);
  (void)mrl_matmul(&g, &ta, &tb);
}

static void bad_add(void) {
  static unsigned char buf[4096];
  float a[6] = {0}, b[4] = {0};
  int s1[1] = {4};
  mrl_graph g;
  mrl_tensor ta = mrl_tensor_make2(a, NULL, 2, 3), tb = mrl_tensor_make(b, NULL, 1, s1);
  mrl_graph_init_buffer(&g, buf, sizeof buf);
  (void)mrl_add(&g, &ta, &tb);
}

static void expect_shape_failure(const char *what, void (*fn)(void), const char *op,
                                 const char *shape_a, const char *shape_b) {
  char msg[4096];
  int status = mrl_test_run_captured(fn, msg, sizeof msg);
  MRL_CHECK(status != -1, "%s: could not fork", what);
  if (status == -1) return;
  MRL_CHECK(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0),
            "%s: the process did not stop (exit status %d)", what,
            WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  MRL_CHECK(strstr(msg, op) != NULL, "%s: message does not name the op %s: \"%s\"", what, op, msg);
  MRL_CHECK(strstr(msg, shape_a) != NULL, "%s: message lacks %s: \"%s\"", what, shape_a, msg);
  MRL_CHECK(strstr(msg, shape_b) != NULL, "%s: message lacks %s: \"%s\"", what, shape_b, msg);
  MRL_CHECK(strstr(msg, "memrl_tensor.h:") != NULL, "%s: message lacks file:line: \"%s\"", what,
            msg);
}

/* One bad call of a general op per case; the child process runs it. */
static int bad_case;

static void bad_general(void) {
  static unsigned char buf[16384];
  static float z[64];
  int s23[2] = {2, 3}, s32[2] = {3, 2}, s234[3] = {2, 3, 4}, s345[3] = {3, 4, 5}, s35[2] = {3, 5};
  int s33[2] = {3, 3}, s45[2] = {4, 5}, s31[2] = {3, 1}, s3[1] = {3}, s24[2] = {2, 4};
  int s4[1] = {4}, s22[2] = {2, 2}, s2222[4] = {2, 2, 2, 2};
  int bad_perm[3] = {0, 0, 1}, idx[6] = {0, 5, 1, 2, 3, 4}, neg[2] = {1, -1}, oh[2] = {1, 4};
  mrl_tensor t23 = mrl_tensor_make(z, NULL, 2, s23), t32 = mrl_tensor_make(z, NULL, 2, s32);
  mrl_tensor t234 = mrl_tensor_make(z, NULL, 3, s234), t345 = mrl_tensor_make(z, NULL, 3, s345);
  mrl_tensor t35 = mrl_tensor_make(z, NULL, 2, s35), t33 = mrl_tensor_make(z, NULL, 2, s33);
  mrl_tensor t45 = mrl_tensor_make(z, NULL, 2, s45), t31 = mrl_tensor_make(z, NULL, 2, s31);
  mrl_tensor t3 = mrl_tensor_make(z, NULL, 1, s3), t24 = mrl_tensor_make(z, NULL, 2, s24);
  mrl_tensor t4 = mrl_tensor_make(z, NULL, 1, s4), t22 = mrl_tensor_make(z, NULL, 2, s22);
  mrl_tensor t2222 = mrl_tensor_make(z, NULL, 4, s2222), *parts[2];
  mrl_graph g;
  mrl_graph_init_buffer(&g, buf, sizeof buf);
  switch (bad_case) {
  case 0: (void)mrl_add(&g, &t23, &t32); break;
  case 1: (void)mrl_matmul(&g, &t234, &t345); break;
  case 2: (void)mrl_softmax(&g, &t23, 2, NULL); break;
  case 3: (void)mrl_gather(&g, &t35, 1, idx, 2); break;
  case 4:
    parts[0] = &t23;
    parts[1] = &t33;
    (void)mrl_concat(&g, parts, 2, 1);
    break;
  case 5: (void)mrl_permute(&g, &t234, bad_perm); break;
  case 6: (void)mrl_slice(&g, &t45, 1, 2, 7); break;
  case 7: (void)mrl_topk(&g, &t35, 6, NULL); break;
  case 8: (void)mrl_var_axis(&g, &t31, 1, 0, 1); break;
  case 9: (void)mrl_broadcast_to(&g, &t3, 2, s24); break;
  case 10: (void)mrl_softmax(&g, &t23, -1, &t4); break;
  case 11:
    parts[0] = &t23;
    parts[1] = &t24;
    (void)mrl_stack(&g, parts, 2, 0);
    break;
  case 12: (void)mrl_index_select(&g, &t35, neg, 2); break;
  case 13: (void)mrl_scatter_add(&g, &t33, 0, idx, &t24); break;
  case 14: (void)mrl_where(&g, &t3, &t22, &t22); break;
  case 15: (void)mrl_one_hot(&g, oh, 2, 4); break;
  case 16:
    parts[0] = &t2222;
    parts[1] = &t2222;
    (void)mrl_stack(&g, parts, 2, 0);
    break;
  case 17: (void)mrl_matmul_nt(&g, &t234, &t45); break;
  case 18: (void)mrl_sum_axis(&g, &t234, -4, 0); break;
  case 19: (void)mrl_transpose(&g, &t23, 0, 2); break;
  case 20: (void)mrl_div(&g, &t234, &t32); break;
  case 21: (void)mrl_where_int(&g, idx, &t23, &t24); break;
  case 22: (void)mrl_matmul(&g, &t3, &t33); break;
  case 23: (void)mrl_gather(&g, &t35, 2, idx, 1); break;
  case 24: (void)mrl_max_axis(&g, &t234, 3, 1, NULL); break;
  default: (void)mrl_log_softmax_axis(&g, &t23, 0, &t32); break;
  }
}

static void test_general_shape_errors(void) {
  static const char *cases[][4] = {
      {"add [2,3]+[3,2]", "add", "[2,3]", "[3,2]"},
      {"matmul batch [2]x[3]", "matmul", "[2,3,4]", "[3,4,5]"},
      {"softmax axis 2 of 2-D", "softmax", "axis 2", "[2,3]"},
      {"gather index 5 of 5", "gather", "index 5", "[3,5]"},
      {"concat axis 1 rows differ", "concat", "[2,3]", "[3,3]"},
      {"permute (0,0,1)", "permute", "not a permutation", "[2,3,4]"},
      {"slice [2,7) of 5", "slice", "[2,7)", "[4,5]"},
      {"topk 6 of 5", "topk", "k = 6", "[3,5]"},
      {"var of one element, unbiased", "var_axis", "correction", "[3,1]"},
      {"broadcast_to [3] -> [2,4]", "broadcast_to", "[3]", "[2,4]"},
      {"softmax mask [4] over [2,3]", "softmax", "[4]", "[2,3]"},
      {"stack [2,3],[2,4]", "stack", "[2,3]", "[2,4]"},
      {"index_select -1", "index_select", "index -1", "[3,5]"},
      {"scatter_add src [2,4] into [3,3]", "scatter_add", "[3,3]", "[2,4]"},
      {"where mask [3] over [2,2]", "where", "[3]", "[2,2]"},
      {"one_hot 4 of 4 classes", "one_hot", "index 4", "[2,4]"},
      {"stack of 4-D parts", "stack", "more than 4 dimensions", "[2,2,2,2]"},
      {"matmul_nt [2,3,4]x[4,5]^T", "matmul_nt", "inner dimensions", "[4,5]"},
      {"sum_axis -4 of 3-D", "sum_axis", "axis -4", "[2,3,4]"},
      {"transpose axis 2 of 2-D", "transpose", "axis 2", "[2,3]"},
      {"div [2,3,4]/[3,2]", "div", "[2,3,4]", "[3,2]"},
      {"where_int [2,3] vs [2,4]", "where_int", "[2,3]", "[2,4]"},
      {"matmul of a 1-D operand", "matmul", "at least 2 dimensions", "[3]"},
      {"gather axis 2 of 2-D", "gather", "axis 2", "[3,5]"},
      {"max_axis 3 of 3-D", "max_axis", "axis 3", "[2,3,4]"},
      {"log_softmax mask [3,2] over [2,3]", "log_softmax", "[3,2]", "[2,3]"}};
  int i;
  for (i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++) {
    bad_case = i;
    expect_shape_failure(cases[i][0], bad_general, cases[i][1], cases[i][2], cases[i][3]);
  }
}

/* Impossible shapes: element counts beyond int (computed in size_t, not
 * wrapped), negative dimensions and ndim outside 1..4, for new tensors and
 * for headers over caller memory. */
static void bad_dims(void) {
  static unsigned char buf[4096];
  static float z[8];
  int s5[5] = {1, 1, 1, 1, 2}, big[3] = {2048, 2048, 1024}, neg[2] = {2, -3};
  mrl_graph g;
  mrl_graph_init_buffer(&g, buf, sizeof buf);
  switch (bad_case) {
  case 0: (void)mrl_tensor_new2(&g, 65536, 65537, 0); break;
  case 1: (void)mrl_tensor_new(&g, 3, big, 0); break;
  case 2: (void)mrl_tensor_new(&g, 2, neg, 1); break;
  case 3: (void)mrl_tensor_new(&g, 5, s5, 0); break;
  case 4: (void)mrl_tensor_make(z, NULL, 0, s5); break;
  case 5: (void)mrl_tensor_make2(z, NULL, 46341, 46341); break;
  default: (void)mrl_tensor_from(&g, z, 5, s5); break;
  }
}

static void test_impossible_shapes(void) {
  static const char *cases[][4] = {
      {"new2 65536 x 65537", "tensor_new", "more than INT_MAX elements", "[65536,65537]"},
      {"new 2048 x 2048 x 1024", "tensor_new", "INT_MAX", "[2048,2048,1024]"},
      {"new [2,-3]", "tensor_new", "negative dimension", "[2,-3]"},
      {"new with ndim 5", "tensor_new", "1 to 4 dimensions", "[1,1,1,1,2]"},
      {"make with ndim 0", "tensor_make", "1 to 4 dimensions", "ndim 0"},
      {"make2 46341 x 46341", "tensor_make", "INT_MAX", "[46341,46341]"},
      {"from with ndim 5", "tensor_new", "1 to 4 dimensions", "[1,1,1,1,2]"}};
  static float z[1];
  static unsigned char buf[4096];
  int i, zero[3] = {65536, 65537, 0};
  mrl_graph g;
  mrl_tensor t;
  for (i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++) {
    bad_case = i;
    expect_shape_failure(cases[i][0], bad_dims, cases[i][1], cases[i][2], cases[i][3]);
  }
  /* a zero anywhere makes an empty tensor, however big the others */
  mrl_graph_init_buffer(&g, buf, sizeof buf);
  t = mrl_tensor_make(z, NULL, 3, zero);
  MRL_CHECK(t.size == 0, "[65536,65537,0] has %d elements, want 0", t.size);
  MRL_CHECK(mrl_tensor_new2(&g, 46340, 46340, 0) == NULL && g.status == MRL_ERR_OUT_OF_MEMORY,
            "a possible but too large tensor is out of memory");
}

static void test_shape_errors(void) {
  test_impossible_shapes();
  expect_shape_failure("matmul [2,3]x[4,5]", bad_matmul, "matmul", "[2,3]", "[4,5]");
  expect_shape_failure("add [2,3]+[4]", bad_add, "add", "[2,3]", "[4]");
  test_general_shape_errors();
}
#else
static void test_shape_errors(void) {
  printf("shape-error tests skipped: no fork()\n");
}
#endif

/* ------------------------------------------------------------------------ */
/* No-grad mode, accumulation, determinism                                  */
/* ------------------------------------------------------------------------ */

static void test_no_grad(void) {
  float xd[6] = {0.1f, -0.2f, 0.3f, 0.4f, -0.5f, 0.6f}, xg[6] = {0}, wd[6] = {1, 2, 3, -1, 0.5f, 2};
  float wg[6] = {0};
  mrl_tensor x = mrl_tensor_make2(xd, xg, 2, 3), w = mrl_tensor_make2(wd, wg, 2, 3), *y, *t, *loss;
  mrl_graph g;
  int i, untouched = 1;
  mrl_graph_init(&g, 1 << 14);
  MRL_CHECK(mrl_graph_set_no_grad(&g, 1) == 0, "no_grad: old mode must be 0");
  y = mrl_log_softmax(&g, mrl_tanh(&g, mrl_linear(&g, &x, &w, NULL)));
  loss = mrl_mean(&g, y);
  t = mrl_tensor_new2(&g, 2, 2, 1);
  MRL_CHECK(g.num_nodes == 0 && g.tape == NULL, "no_grad: %d nodes recorded", g.num_nodes);
  MRL_CHECK(y && y->grad == NULL && loss && loss->grad == NULL,
            "no_grad: outputs must have no gradient buffer");
  MRL_CHECK(t && t->grad == NULL, "no_grad: tensor_new(requires_grad) must not allocate a grad");
  MRL_CHECK(mrl_backward(&g, loss) == MRL_OK, "no_grad: backward on a constant must be a no-op");
  for (i = 0; i < 6; i++) untouched &= xg[i] == 0.0f && wg[i] == 0.0f;
  MRL_CHECK(untouched, "no_grad: gradients changed");
  MRL_CHECK(mrl_graph_set_no_grad(&g, 0) == 1, "no_grad: old mode must be 1");
  mrl_graph_reset(&g);
  y = mrl_linear(&g, &x, &w, NULL);
  MRL_CHECK(g.num_nodes == 1 && y->grad != NULL, "grad mode: linear must record one node");
  mrl_graph_free(&g);
}

static void test_accumulation(void) {
  float xd[6] = {0.1f, -0.2f, 0.3f, 0.4f, -0.5f, 0.6f}, xg[6] = {0}, wd[6] = {1, 2, 3, -1, 0.5f, 2};
  float wg[6] = {0}, bd[2] = {0.25f, -0.5f}, bg[2] = {0}, xg1[6], wg1[6], bg1[2];
  int bshape[1] = {2}, pass, i, ok = 1;
  mrl_tensor x = mrl_tensor_make2(xd, xg, 2, 3), w = mrl_tensor_make2(wd, wg, 2, 3);
  mrl_tensor b = mrl_tensor_make(bd, bg, 1, bshape);
  mrl_graph g;
  mrl_graph_init(&g, 1 << 14);
  for (pass = 0; pass < 2; pass++) {
    mrl_tensor *loss;
    mrl_graph_reset(&g);
    loss = mrl_sum(&g, mrl_square(&g, mrl_tanh(&g, mrl_linear(&g, &x, &w, &b))));
    MRL_CHECK(mrl_backward(&g, loss) == MRL_OK, "accumulation: backward failed");
    if (pass == 0) {
      memcpy(xg1, xg, sizeof xg);
      memcpy(wg1, wg, sizeof wg);
      memcpy(bg1, bg, sizeof bg);
    }
  }
  for (i = 0; i < 6; i++) {
    ok &= fabsf(xg[i] - 2.0f * xg1[i]) <= 1e-6f * (1.0f + fabsf(xg1[i]));
    ok &= fabsf(wg[i] - 2.0f * wg1[i]) <= 1e-6f * (1.0f + fabsf(wg1[i]));
  }
  for (i = 0; i < 2; i++) ok &= fabsf(bg[i] - 2.0f * bg1[i]) <= 1e-6f * (1.0f + fabsf(bg1[i]));
  MRL_CHECK(ok, "accumulation: two backward passes must give twice the gradient (+=)");
  MRL_CHECK(wg1[0] != 0.0f && bg1[0] != 0.0f, "accumulation: first pass gave no gradient");
  mrl_graph_free(&g);
}

/* A small forward/backward; writes outputs and gradients into out[0..n). */
static int deterministic_run(uint64_t seed, float *out) {
  float xd[5 * 7], wd[6 * 7], wg[6 * 7], bd[6], bg[6];
  int idx[5], i, n = 0, bshape[1] = {6};
  mrl_rng rng = mrl_rng_make(seed);
  mrl_tensor x, w, b, *y, *loss;
  mrl_graph g;
  for (i = 0; i < 35; i++) xd[i] = mrl_rng_normal(&rng);
  for (i = 0; i < 42; i++) {
    wd[i] = mrl_rng_uniform_range(&rng, -0.5f, 0.5f);
    wg[i] = 0.0f;
  }
  for (i = 0; i < 6; i++) {
    bd[i] = mrl_rng_uniform_range(&rng, -0.5f, 0.5f);
    bg[i] = 0.0f;
  }
  for (i = 0; i < 5; i++) idx[i] = (int)mrl_rng_below(&rng, 6);
  x = mrl_tensor_make2(xd, NULL, 5, 7);
  w = mrl_tensor_make2(wd, wg, 6, 7);
  b = mrl_tensor_make(bd, bg, 1, bshape);
  mrl_graph_init(&g, 1 << 12);
  y = mrl_log_softmax(&g, mrl_relu(&g, mrl_linear(&g, &x, &w, &b)));
  loss = mrl_neg(&g, mrl_mean(&g, mrl_gather_rows(&g, y, idx)));
  (void)mrl_backward(&g, loss);
  for (i = 0; i < y->size; i++) out[n++] = y->data[i];
  out[n++] = loss->data[0];
  for (i = 0; i < 42; i++) out[n++] = wg[i];
  for (i = 0; i < 6; i++) out[n++] = bg[i];
  mrl_graph_free(&g);
  return n;
}

static void test_determinism(void) {
  float a[128], b[128], c[128];
  int na = deterministic_run(2024, a), nb = deterministic_run(2024, b);
  int nc = deterministic_run(2025, c);
  MRL_CHECK(na == nb && memcmp(a, b, sizeof(float) * (size_t)na) == 0,
            "determinism: same seed gave different bits");
  MRL_CHECK(na == nc && memcmp(a, c, sizeof(float) * (size_t)na) != 0,
            "determinism: a different seed gave the same results");
}

/* ------------------------------------------------------------------------ */
/* RNG                                                                      */
/* ------------------------------------------------------------------------ */

/* The activation arrays: every path (portable four-lane and scalar, and the
 * AVX2 / AVX-512 lanes where the CPU has them) gives bitwise the scalar
 * result, for every length and offset (tails), and on the special values. */
static int act_same(float a, float b) {
  uint32_t ua, ub;
  if (a != a || b != b) return a != a && b != b; /* NaN payloads may differ */
  memcpy(&ua, &a, sizeof ua);
  memcpy(&ub, &b, sizeof ub);
  return ua == ub;
}

static void act_check(const char *what, int sig, const float *x, const float *y, int n) {
  int i, bad = 0;
  for (i = 0; i < n && !bad; i++) {
    float want = sig ? mrl__sigmoid1(x[i]) : mrl__tanh1(x[i]);
    if (!act_same(want, y[i])) {
      bad = 1;
      MRL_CHECK(0, "%s %s: x = %.9g gives %.9g, scalar %.9g (n = %d, i = %d)", what,
                sig ? "sigmoid" : "tanh", (double)x[i], (double)y[i], (double)want, n, i);
    }
  }
}

static void test_activation_paths(void) {
  enum { N = 4096 };
  static float x[N], y[N];
  const float special[] = {0.0f,    -0.0f,        INFINITY,    -INFINITY, NAN,     -NAN,
                           0.625f,  -0.625f,      0.62499994f, 87.0f,     -87.0f,  43.5f,
                           -43.5f,  87.5f,        -87.5f,      1e-38f,    -1e-38f, 1e-45f,
                           -1e-45f, 3.4e38f,      -3.4e38f,    1.0f,      -1.0f,   20.0f,
                           -20.0f,  -43.4999962f, 43.4999962f, 9.0f,      -9.0f};
  mrl_rng rng = mrl_rng_make(77);
  int i, n, off, sig;
  for (i = 0; i < N; i++) {
    float u = mrl_rng_uniform(&rng);
    int kind = i % 4;
    x[i] = kind == 0   ? (u - 0.5f) * 4.0f   /* the polynomial branch and near */
           : kind == 1 ? (u - 0.5f) * 200.0f /* past the flush point */
           : kind == 2 ? (u - 0.5f) * 30.0f  /* the usual range */
                       : special[(i / 4) % (int)(sizeof special / sizeof special[0])];
  }
  for (sig = 0; sig < 2; sig++) {
    /* the dispatching entry point over every length and start up to 40 */
    for (off = 0; off < 17; off++)
      for (n = 0; n <= 40; n++) {
        for (i = 0; i < n; i++) y[i] = -1.0f;
        if (sig)
          mrl__sigmoid_n(x + off, y, n);
        else
          mrl__tanh_n(x + off, y, n);
        act_check("dispatch", sig, x + off, y, n);
      }
    if (sig)
      mrl__sigmoid_n(x, y, N);
    else
      mrl__tanh_n(x, y, N);
    act_check("dispatch (long)", sig, x, y, N);
    /* in place */
    memcpy(y, x, sizeof x);
    if (sig)
      mrl__sigmoid_n(y + 3, y + 3, N - 3);
    else
      mrl__tanh_n(y + 3, y + 3, N - 3);
    act_check("in place", sig, x + 3, y + 3, N - 3);
#ifdef MRL__HAVE_WIDE_ACT
    { /* each wide path on its own, where this CPU runs it */
      int isa = mrl__gemm_isa(), done;
      if (isa == MRL__ISA_AVX2 || isa == MRL__ISA_AVX512) {
        done = sig ? mrl__sigmoid_run8(x + 1, y, N - 1) : mrl__tanh_run8(x + 1, y, N - 1);
        MRL_CHECK(done == (N - 1) / 8 * 8, "eight-lane run covered %d of %d", done, N - 1);
        act_check("avx2", sig, x + 1, y, done);
      }
      if (isa == MRL__ISA_AVX512) {
        done = sig ? mrl__sigmoid_run16(x + 2, y, N - 2) : mrl__tanh_run16(x + 2, y, N - 2);
        MRL_CHECK(done == (N - 2) / 16 * 16, "sixteen-lane run covered %d of %d", done, N - 2);
        act_check("avx512", sig, x + 2, y, done);
      }
    }
#endif
  }
  /* the scalar reference itself on the special values */
  MRL_CHECK(mrl__sigmoid1(INFINITY) == 1.0f && mrl__sigmoid1(-INFINITY) == 0.0f,
            "sigmoid(+-inf) must be 1 and 0");
  MRL_CHECK(mrl__tanh1(INFINITY) == 1.0f && mrl__tanh1(-INFINITY) == -1.0f,
            "tanh(+-inf) must be +-1");
  MRL_CHECK(mrl__sigmoid1(NAN) != mrl__sigmoid1(NAN) && mrl__tanh1(NAN) != mrl__tanh1(NAN),
            "NaN must propagate");
}

/* tanh and sigmoid backward (four lanes, then a scalar tail): every element
 * bitwise the scalar formula, gy * (1 - y^2) and gy * y * (1 - y). */
static void test_activation_backward_lanes(void) {
  float xd[13], xg[13], rd[13];
  mrl_tensor x = mrl_tensor_make2(xd, xg, 1, 13), r = mrl_tensor_make2(rd, NULL, 1, 13), *y;
  mrl_graph g;
  mrl_rng rng = mrl_rng_make(5);
  int i, op, exact;
  mrl_graph_init(&g, 1 << 14);
  for (i = 0; i < 13; i++) {
    xd[i] = mrl_rng_uniform_range(&rng, -3, 3);
    rd[i] = mrl_rng_uniform_range(&rng, -1, 1);
  }
  for (op = 0; op < 2; op++) {
    mrl_graph_reset(&g);
    memset(xg, 0, sizeof xg);
    y = op ? mrl_sigmoid(&g, &x) : mrl_tanh(&g, &x);
    MRL_CHECK(mrl_backward(&g, mrl_sum(&g, mrl_mul(&g, y, &r))) == MRL_OK, "backward failed");
    exact = 1;
    for (i = 0; i < 13; i++) {
      float o = y->data[i],
            want = op ? 0.0f + rd[i] * o * (1.0f - o) : 0.0f + rd[i] * (1.0f - o * o);
      exact &= memcmp(&want, xg + i, sizeof want) == 0;
    }
    MRL_CHECK(exact, "%s backward: four-lane and scalar elements differ", op ? "sigmoid" : "tanh");
  }
  mrl_graph_free(&g);
}

/* ReLU and scale run four lanes at a time plus a scalar tail: every element,
 * -0, +-inf and +-0 inputs and -0 accumulated gradients included, must equal
 * the scalar formulas bit for bit (15 elements: three vectors and a tail). */
static void test_relu_scale_lanes(void) {
  float xd[15], xg[15], rd[15], g0[15];
  mrl_tensor x = mrl_tensor_make2(xd, xg, 1, 15), r = mrl_tensor_make2(rd, NULL, 1, 15), *y;
  mrl_graph g;
  mrl_rng rng = mrl_rng_make(9);
  int i, op, exact_f, exact_b;
  mrl_graph_init(&g, 1 << 14);
  for (i = 0; i < 15; i++) {
    xd[i] = mrl_rng_uniform_range(&rng, -2, 2);
    rd[i] = mrl_rng_uniform_range(&rng, -1, 1);
    g0[i] = i % 3 ? mrl_rng_uniform_range(&rng, -1, 1) : -0.0f;
  }
  xd[1] = -0.0f;
  xd[2] = 0.0f;
  xd[5] = INFINITY;
  xd[6] = -INFINITY;
  xd[13] = -0.0f;
  rd[3] = -0.0f;
  for (op = 0; op < 2; op++) {
    mrl_graph_reset(&g);
    memcpy(xg, g0, sizeof xg);
    y = op ? mrl_scale(&g, &x, -0.75f) : mrl_relu(&g, &x);
    MRL_CHECK(mrl_backward(&g, mrl_sum(&g, mrl_mul(&g, y, &r))) == MRL_OK, "backward failed");
    exact_f = exact_b = 1;
    for (i = 0; i < 15; i++) {
      float want = op ? xd[i] * -0.75f : (xd[i] > 0.0f ? xd[i] : 0.0f);
      float gy = y->grad[i], gw = op ? g0[i] + gy * -0.75f : g0[i] + (xd[i] > 0.0f ? gy : 0.0f);
      exact_f &= memcmp(&want, y->data + i, sizeof want) == 0;
      exact_b &= memcmp(&gw, xg + i, sizeof gw) == 0;
    }
    MRL_CHECK(exact_f, "%s forward: four-lane and scalar elements differ", op ? "scale" : "relu");
    MRL_CHECK(exact_b, "%s backward: four-lane and scalar elements differ", op ? "scale" : "relu");
  }
  mrl_graph_free(&g);
}

static void test_rng(void) {
  mrl_rng r = mrl_rng_make(7), r2;
  const int n = 100000;
  double sum = 0.0, sum2 = 0.0, mean, var, chi2;
  int i, in_range = 1, counts[7] = {0}, below_ok = 1, cat[5] = {0}, cat_ok = 1, same = 1;
  int differ = 0;
  const float w[5] = {1.0f, 2.0f, 0.0f, 3.0f, 4.0f};
  for (i = 0; i < n; i++) {
    float u = mrl_rng_uniform(&r);
    in_range &= u >= 0.0f && u < 1.0f;
    sum += u;
  }
  MRL_CHECK(in_range, "rng_uniform: value outside [0,1)");
  MRL_CHECK(fabs(sum / n - 0.5) < 0.005, "rng_uniform: mean %.5f, want 0.5", sum / n);

  sum = 0.0;
  for (i = 0; i < n; i++) {
    double v = mrl_rng_normal(&r);
    sum += v;
    sum2 += v * v;
  }
  mean = sum / n;
  var = sum2 / n - mean * mean;
  MRL_CHECK(fabs(mean) < 0.02, "rng_normal: mean %.5f, want 0", mean);
  MRL_CHECK(fabs(var - 1.0) < 0.03, "rng_normal: variance %.5f, want 1", var);

  for (i = 0; i < 70000; i++) {
    uint32_t k = mrl_rng_below(&r, 7);
    if (k >= 7) {
      below_ok = 0;
      break;
    }
    counts[k]++;
  }
  MRL_CHECK(below_ok, "rng_below(7): returned a value >= 7");
  chi2 = 0.0;
  for (i = 0; i < 7; i++) chi2 += (counts[i] - 10000.0) * (counts[i] - 10000.0) / 10000.0;
  MRL_CHECK(chi2 < 30.0, "rng_below(7): chi-square %.2f over 6 dof (counts not uniform)", chi2);
  for (i = 0; i < 10000; i++) {
    below_ok &= mrl_rng_below(&r, 1) == 0;
    below_ok &= mrl_rng_below(&r, 3000000000u) < 3000000000u;
  }
  MRL_CHECK(below_ok, "rng_below: out of range for n = 1 or n = 3e9");

  for (i = 0; i < n; i++) {
    int k = mrl_rng_categorical(&r, w, 5);
    if (k < 0 || k >= 5) {
      cat_ok = 0;
      break;
    }
    cat[k]++;
  }
  MRL_CHECK(cat_ok, "rng_categorical: index out of range");
  MRL_CHECK(cat[2] == 0, "rng_categorical: drew index 2, whose weight is 0");
  chi2 = 0.0;
  for (i = 0; i < 5; i++) {
    double expect = n * w[i] / 10.0;
    if (expect > 0) chi2 += (cat[i] - expect) * (cat[i] - expect) / expect;
  }
  MRL_CHECK(chi2 < 25.0, "rng_categorical: chi-square %.2f over 3 dof (not following weights)",
            chi2);

  r = mrl_rng_make(12345);
  r2 = mrl_rng_make(12345);
  for (i = 0; i < 1000; i++) same &= mrl_rng_u32(&r) == mrl_rng_u32(&r2);
  MRL_CHECK(same, "rng: same seed must give the same stream");
  r2 = mrl_rng_make(12346);
  for (i = 0; i < 100; i++) differ |= mrl_rng_u32(&r) != mrl_rng_u32(&r2);
  MRL_CHECK(differ, "rng: different seeds gave the same stream");
}

/* mrl_linear_relu / mrl_linear_tanh equal mrl_relu / mrl_tanh of mrl_linear bit
 * for bit: outputs and the gradients of x, W and b, with exact zeros, negative
 * pre-activations and a 3-D input; without a bias too. */
static void test_linear_act_fused(void) {
  int act, with_bias, shape[3] = {3, 5, 7};
  for (act = 0; act < 2; act++)
    for (with_bias = 0; with_bias < 2; with_bias++) {
      mrl_graph g[2];
      mrl_tensor *x[2], *w[2], *b[2], *y[2];
      mrl_rng rng = mrl_rng_make(42);
      float xd[105], wd[6 * 7], bd[6];
      int k, r, same = 1;
      for (k = 0; k < 105; k++) xd[k] = mrl_rng_uniform(&rng) * 2.0f - 1.0f;
      for (k = 0; k < 42; k++) wd[k] = mrl_rng_uniform(&rng) * 2.0f - 1.0f;
      for (k = 0; k < 6; k++) bd[k] = mrl_rng_uniform(&rng) - 0.5f;
      for (k = 0; k < 7; k++) xd[k] = 0.0f; /* a row of zeros: pre-activation = bias */
      bd[2] = 0.0f;
      for (r = 0; r < 2; r++) {
        mrl_graph_init(&g[r], 1 << 16);
        x[r] = mrl_tensor_new(&g[r], 3, shape, 1);
        memcpy(x[r]->data, xd, sizeof xd);
        w[r] = mrl_tensor_new2(&g[r], 6, 7, 1);
        memcpy(w[r]->data, wd, sizeof wd);
        b[r] = with_bias ? mrl_tensor_new2(&g[r], 1, 6, 1) : NULL;
        if (b[r]) memcpy(b[r]->data, bd, sizeof bd);
        if (r == 0)
          y[r] = act ? mrl_tanh(&g[r], mrl_linear(&g[r], x[r], w[r], b[r]))
                     : mrl_relu(&g[r], mrl_linear(&g[r], x[r], w[r], b[r]));
        else
          y[r] = act ? mrl_linear_tanh(&g[r], x[r], w[r], b[r])
                     : mrl_linear_relu(&g[r], x[r], w[r], b[r]);
        /* a loss that weighs every output differently, and uses y twice */
        mrl_backward(&g[r],
                     mrl_sum(&g[r], mrl_mul(&g[r], y[r],
                                            mrl_add(&g[r], y[r],
                                                    mrl_add_scalar(&g[r], mrl_square(&g[r], y[r]),
                                                                   0.25f)))));
      }
      same = memcmp(y[0]->data, y[1]->data, sizeof(float) * y[0]->size) == 0 &&
             memcmp(x[0]->grad, x[1]->grad, sizeof xd) == 0 &&
             memcmp(w[0]->grad, w[1]->grad, sizeof wd) == 0 &&
             (!with_bias || memcmp(b[0]->grad, b[1]->grad, sizeof bd) == 0);
      MRL_CHECK(same, "linear_%s (bias %d): not bitwise the composed ops", act ? "tanh" : "relu",
                with_bias);
      mrl_graph_free(&g[0]);
      mrl_graph_free(&g[1]);
    }
}

int main(void) {
  test_gradcheck_ops();
  test_linear_act_fused();
  test_gradcheck_general();
  test_detach();
  test_forward_values();
  test_general_values();
  test_index_copied();
  test_gemm();
  test_reference_ops();
  test_reference_tensor_ops();
  test_arena_fixed();
  test_graph_out_of_memory();
  test_oom_sweep();
  test_general_oom_sweep();
  test_arena_heap();
  test_arena_huge_requests();
  test_tensor_alignment();
  test_shape_errors();
  test_no_grad();
  test_accumulation();
  test_determinism();
  test_general_determinism();
  test_rng();
  test_activation_paths();
  test_activation_backward_lanes();
  test_relu_scale_lanes();
  return mrl_test_summary(MRL_TEST_PROGRAM);
}
