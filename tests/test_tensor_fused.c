/* Tests for the fused layers, losses and memory ops of memrl_tensor.h:
 * every op against central finite differences, values and gradients against
 * PyTorch (tests/ref/tensor_fused.txt, written by tools/make_ref.py), direct
 * loops in double for the forward passes, reductions, dropout's statistics and
 * seeding, straight-through and stop-gradient, no-grad mode, a full fixed
 * arena, and one shape error per op.
 *
 * Run from the repository root:
 *   cc -std=c99 -O2 tests/test_tensor_fused.c -lm && ./a.out */
#define MEMRL_IMPLEMENTATION
#define _POSIX_C_SOURCE 200809L
#include "../memrl_tensor.h"
#include "test.h"
#include "ref_loader.h"
#ifdef _OPENMP
#include <omp.h>
#endif

/* Gradient-check tolerances, as in test_tensor.c. The loss is sum(op(x) * R)
 * with a fixed random R, evaluated in float32 by mrl_gradcheck. With
 * eps = 1e-2 the central difference's truncation error is about
 * eps^2/6 * |f'''| (below 5e-4 for these smooth ops and inputs kept at least
 * 0.05 away from every kink: pooling maxima, Huber's |d| = delta), and the
 * float rounding of a loss of magnitude ~10 adds about 1e-6 / (2 eps) = 5e-5.
 * Every element must satisfy |analytic - numeric| <= 1e-3 + 1e-2 |numeric|. */
#define GC_EPS 1e-2f
#define GC_ATOL 1e-3
#define GC_RTOL 1e-2

/* PyTorch fixtures: float32 on both sides, different summation orders. */
#define REF_ATOL 1e-5
#define REF_RTOL 1e-4

/* ------------------------------------------------------------------------ */
/* Gradient checks                                                          */
/* ------------------------------------------------------------------------ */

enum {
  OP_LAYERNORM,
  OP_LAYERNORM_PLAIN, /* no weight, no bias */
  OP_CONV,            /* with bias */
  OP_CONV_NOBIAS,
  OP_MAXPOOL,
  OP_AVGPOOL,
  OP_DROPOUT,
  OP_MSE,
  OP_HUBER,
  OP_SMOOTH_L1,
  OP_CE,
  OP_BCE,
  OP_KL_NORMAL,
  OP_KL_NORMAL_STD, /* q = N(0, 1) */
  OP_KL_CAT,
  OP_COSINE,
  OP_SQDIST,
  OP_STRAIGHT,
  OP_COMPOSITE,        /* conv2d -> avg_pool2d -> reshape -> layernorm -> cross_entropy */
  OP_ATTENTION,        /* q k v bias, i0 heads, p0 scale, a [B,1,T,K] mask with one empty row */
  OP_ATTENTION_PACKED, /* one [B, T, 3E] input read as q, k, v columns, causal */
  OP_ATTENTION_SHIFT,  /* bias read through Transformer-XL's relative shift, no mask */
  OP_REL_ATTENTION     /* relative term from qr and rk inside, k and v packed, causal + memory */
};

#define GC_MAX_IN 4
#define GC_MAX_SIZE 512

typedef struct gc_ctx {
  int op, i0, i1, i2;
  float p0;
  mrl_loss_reduction red;
  const int *targets;
  float r[GC_MAX_SIZE];
} gc_ctx;

static float identity_f(float x) {
  return x;
}

/* [T, T] 0/1 causal mask (memrl_nn.h's mrl_attn_causal_mask with no memory). */
static mrl_tensor *mrl_attn_causal_mask_t(mrl_graph *g, int T) {
  mrl_tensor *m = mrl_tensor_new2(g, T, T, 0);
  int i, j;
  if (m)
    for (i = 0; i < T; i++)
      for (j = 0; j < T; j++) m->data[i * T + j] = j <= i ? 1.0f : 0.0f;
  return m;
}

static mrl_tensor *gc_apply(mrl_graph *g, const gc_ctx *c, mrl_tensor **in) {
  mrl_rng rng;
  switch (c->op) {
  case OP_LAYERNORM: return mrl_layernorm(g, in[0], in[1], in[2], c->p0);
  case OP_LAYERNORM_PLAIN: return mrl_layernorm(g, in[0], NULL, NULL, c->p0);
  case OP_CONV: return mrl_conv2d(g, in[0], in[1], in[2], c->i0, c->i1);
  case OP_CONV_NOBIAS: return mrl_conv2d(g, in[0], in[1], NULL, c->i0, c->i1);
  case OP_MAXPOOL: return mrl_max_pool2d(g, in[0], c->i2, c->i0, c->i1);
  case OP_AVGPOOL: return mrl_avg_pool2d(g, in[0], c->i2, c->i0, c->i1);
  case OP_DROPOUT: /* the same seed every evaluation: the same mask */
    rng = mrl_rng_make(77);
    return mrl_dropout(g, in[0], c->p0, &rng, 1);
  case OP_MSE: return mrl_mse_loss(g, in[0], in[1], c->red);
  case OP_HUBER: return mrl_huber_loss(g, in[0], in[1], c->p0, c->red);
  case OP_SMOOTH_L1: return mrl_smooth_l1_loss(g, in[0], in[1], c->p0, c->red);
  case OP_CE: return mrl_cross_entropy(g, in[0], c->targets, c->red);
  case OP_BCE: return mrl_bce_with_logits(g, in[0], in[1], c->red);
  case OP_KL_NORMAL: return mrl_kl_normal(g, in[0], in[1], in[2], in[3], c->red);
  case OP_KL_NORMAL_STD: return mrl_kl_normal(g, in[0], in[1], NULL, NULL, c->red);
  case OP_KL_CAT: return mrl_kl_categorical(g, in[0], in[1], c->red);
  case OP_COSINE: return mrl_cosine_similarity(g, in[0], in[1], c->p0);
  case OP_SQDIST: return mrl_sq_distances(g, in[0], in[1]);
  case OP_STRAIGHT: return mrl_straight_through_fn(g, in[0], identity_f);
  case OP_COMPOSITE: {
    int flat[2] = {2, 27};
    mrl_tensor *h = mrl_avg_pool2d(g, mrl_conv2d(g, in[0], in[1], in[2], 1, 1), 2, 2, 0);
    h = mrl_layernorm(g, mrl_reshape(g, h, 2, flat), NULL, NULL, 1e-5f);
    return mrl_cross_entropy(g, h, c->targets, MRL_LOSS_MEAN);
  }
  case OP_ATTENTION: { /* B 2, T 3, K 4: b 1's row 0 keeps nothing, b 0 keeps a varied set */
    static const float keep[24] = {1, 0, 1, 1, 1, 1, 0, 1, 0, 1, 1, 0,
                                   0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 1};
    int ms[4] = {2, 1, 3, 4};
    return mrl_attention(g, in[0], in[1], in[2], c->i0, c->p0, in[3],
                         mrl_tensor_from(g, keep, 4, ms));
  }
  case OP_ATTENTION_PACKED: {
    int E = in[0]->shape[2] / 3;
    return mrl_attention_cols(g, in[0], 0, in[0], E, in[0], 2 * E, E, c->i0, c->p0, NULL,
                              mrl_attn_causal_mask_t(g, in[0]->shape[1]), 0);
  }
  case OP_ATTENTION_SHIFT: /* every entry kept: the clamped ones still read bias column K-1 */
    return mrl_attention_cols(g, in[0], 0, in[1], 0, in[2], 0, in[0]->shape[2], c->i0, c->p0, in[3],
                              NULL, 1);
  case OP_REL_ATTENTION: { /* T 3, memory 2: query i sees keys j <= 2 + i */
    static const float keep[15] = {1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1};
    int ms[2] = {3, 5}, E = in[0]->shape[2];
    return mrl_rel_attention_cols(g, in[0], 0, in[1], 0, in[1], E, in[2], in[3], E, c->i0, c->p0,
                                  mrl_tensor_from(g, keep, 2, ms));
  }
  }
  return NULL;
}

static mrl_tensor *gc_build(mrl_graph *g, mrl_tensor **in, void *ctx) {
  const gc_ctx *c = (const gc_ctx *)ctx;
  mrl_tensor *y = gc_apply(g, c, in);
  if (!y) return NULL;
  MRL_ASSERT(y->size <= GC_MAX_SIZE);
  return mrl_sum(g, mrl_mul(g, y, mrl_tensor_from(g, c->r, y->ndim, y->shape)));
}

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

/* Fills inputs for op c->op and runs mrl_gradcheck; also checks that every
 * input received some gradient and that a second backward accumulates. */
static void gc_run(const char *name, gc_ctx *ctx, const char *shapes, float lo, float hi) {
  static float data[GC_MAX_IN][GC_MAX_SIZE], grad[GC_MAX_IN][GC_MAX_SIZE];
  static float first[GC_MAX_IN][GC_MAX_SIZE];
  int ndim[GC_MAX_IN], shape[GC_MAX_IN][4], n_in, t, i, twice = 1;
  mrl_tensor tens[GC_MAX_IN], *ptrs[GC_MAX_IN];
  mrl_rng rng = mrl_rng_make(4321u + (uint64_t)ctx->op * 17u);
  mrl_graph g;
  double worst;
  n_in = parse_shapes(shapes, ndim, shape);
  for (t = 0; t < n_in; t++) {
    tens[t] = mrl_tensor_make(data[t], grad[t], ndim[t], shape[t]);
    MRL_ASSERT(tens[t].size <= GC_MAX_SIZE);
    ptrs[t] = &tens[t];
    for (i = 0; i < tens[t].size; i++) {
      data[t][i] = mrl_rng_uniform_range(&rng, lo, hi);
      grad[t][i] = 0.0f;
    }
  }
  if (ctx->op == OP_MAXPOOL) {
    /* distinct values 0.05 apart (> 2 eps): no window's maximum changes under
     * a perturbation, so the op is smooth where it is checked */
    int n = tens[0].size;
    for (i = 0; i < n; i++) data[0][i] = 0.05f * (float)i - 0.025f * (float)n;
    for (i = n - 1; i > 0; i--) {
      int j = (int)mrl_rng_below(&rng, (uint32_t)(i + 1));
      float tmp = data[0][i];
      data[0][i] = data[0][j];
      data[0][j] = tmp;
    }
  }
  if (ctx->op == OP_HUBER || ctx->op == OP_SMOOTH_L1) {
    /* |pred - target| in [0.05, delta - 0.05] or [delta + 0.05, 2]: both
     * branches, never near the kink */
    for (i = 0; i < tens[0].size; i++) {
      float d = (i % 2) ? mrl_rng_uniform_range(&rng, 0.05f, ctx->p0 - 0.05f)
                        : mrl_rng_uniform_range(&rng, ctx->p0 + 0.05f, 2.0f);
      data[0][i] = data[1][i] + ((i % 4) < 2 ? d : -d);
    }
  }
  if (ctx->op == OP_BCE)
    for (i = 0; i < tens[1].size; i++) data[1][i] = mrl_rng_uniform(&rng);
  if (ctx->op == OP_COSINE && ctx->p0 > 0.1f) {
    /* rows 0 and 2 of each input get norm 0.2 < eps: the clamped branch */
    for (t = 0; t < 2; t++) {
      int d = tens[t].shape[1];
      for (i = 0; i < tens[t].shape[0]; i += 2) {
        float nrm = 0.0f;
        int k;
        for (k = 0; k < d; k++) nrm += data[t][i * d + k] * data[t][i * d + k];
        nrm = sqrtf(nrm);
        for (k = 0; k < d; k++) data[t][i * d + k] *= 0.2f / nrm;
      }
    }
  }
  for (i = 0; i < GC_MAX_SIZE; i++) ctx->r[i] = mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
  mrl_graph_init(&g, 1 << 16);
  worst = mrl_gradcheck(&g, gc_build, ptrs, n_in, ctx, GC_EPS, GC_ATOL, GC_RTOL);
  MRL_CHECK(worst <= 1.0, "gradcheck %s: worst error ratio %.3g (> 1)", name, worst);
  for (t = 0; t < n_in; t++) {
    int nonzero = 0;
    for (i = 0; i < tens[t].size; i++) nonzero |= grad[t][i] != 0.0f;
    MRL_CHECK(nonzero, "gradcheck %s: input %d received no gradient at all", name, t);
  }
  memcpy(first, grad, sizeof first);
  mrl_graph_reset(&g);
  MRL_CHECK(mrl_backward(&g, gc_build(&g, ptrs, ctx)) == MRL_OK, "%s: backward failed", name);
  for (t = 0; t < n_in; t++)
    for (i = 0; i < tens[t].size; i++)
      twice &= fabsf(grad[t][i] - 2.0f * first[t][i]) <= 1e-5f * (1.0f + fabsf(first[t][i]));
  MRL_CHECK(twice, "%s: backward must accumulate (+=) into existing gradients", name);
  mrl_graph_free(&g);
}

static gc_ctx *ctx_for(int op) {
  static gc_ctx c;
  memset(&c, 0, sizeof c);
  c.op = op;
  c.red = MRL_LOSS_MEAN;
  return &c;
}

static void test_gradcheck(void) {
  static const int targets[6] = {2, 0, 4, 1, 1, 3};
  gc_ctx *c;
  c = ctx_for(OP_LAYERNORM);
  c->p0 = 1e-5f;
  gc_run("layernorm [2,3,6] with weight and bias", c, "2x3x6 6 6", -2, 2);
  c = ctx_for(OP_LAYERNORM_PLAIN);
  c->p0 = 1e-5f;
  gc_run("layernorm [4,5] without affine", c, "4x5", -2, 2);
  c = ctx_for(OP_LAYERNORM_PLAIN);
  c->p0 = 0.5f; /* a large eps weighs in the gradient */
  gc_run("layernorm eps 0.5", c, "3x4", -1, 1);

  c = ctx_for(OP_CONV);
  c->i0 = 2;
  c->i1 = 1;
  gc_run("conv2d 3x2 kernel, stride 2, padding 1, bias", c, "2x3x7x6 4x3x3x2 4", -1, 1);
  c = ctx_for(OP_CONV_NOBIAS);
  c->i0 = 1;
  c->i1 = 2;
  gc_run("conv2d 3x3, stride 1, padding 2, no bias", c, "1x2x4x5 3x2x3x3", -1, 1);
  c = ctx_for(OP_CONV);
  c->i0 = 1;
  c->i1 = 0;
  gc_run("conv2d 1x1 (direct path)", c, "2x3x4x4 5x3x1x1 5", -1, 1);
  c = ctx_for(OP_CONV_NOBIAS);
  c->i0 = 3;
  c->i1 = 0;
  gc_run("conv2d 2x2 stride 3 (skipped cells)", c, "1x2x8x7 2x2x2x2", -1, 1);

  c = ctx_for(OP_MAXPOOL);
  c->i2 = 3;
  c->i0 = 2;
  c->i1 = 1;
  gc_run("max_pool2d k3 s2 p1", c, "2x2x7x7", -1, 1);
  c = ctx_for(OP_MAXPOOL);
  c->i2 = 2;
  c->i0 = 0; /* default stride = k */
  c->i1 = 0;
  gc_run("max_pool2d k2 (stride default)", c, "1x3x6x5", -1, 1);
  c = ctx_for(OP_AVGPOOL);
  c->i2 = 3;
  c->i0 = 2;
  c->i1 = 1;
  gc_run("avg_pool2d k3 s2 p1", c, "2x2x7x7", -1, 1);
  c = ctx_for(OP_AVGPOOL);
  c->i2 = 2;
  c->i0 = 1;
  c->i1 = 0;
  gc_run("avg_pool2d k2 s1 (overlapping)", c, "1x2x4x5", -1, 1);

  c = ctx_for(OP_DROPOUT);
  c->p0 = 0.3f;
  gc_run("dropout p=0.3 (fixed seed)", c, "4x6", -1, 1);

  c = ctx_for(OP_MSE);
  gc_run("mse mean", c, "3x4 3x4", -1, 1);
  c = ctx_for(OP_MSE);
  c->red = MRL_LOSS_NONE;
  gc_run("mse none", c, "2x3x2 2x3x2", -1, 1);
  c = ctx_for(OP_HUBER);
  c->p0 = 0.7f;
  gc_run("huber delta 0.7 mean", c, "4x5 4x5", -1, 1);
  c = ctx_for(OP_SMOOTH_L1);
  c->p0 = 0.5f;
  c->red = MRL_LOSS_SUM;
  gc_run("smooth_l1 beta 0.5 sum", c, "4x5 4x5", -1, 1);
  c = ctx_for(OP_CE);
  c->targets = targets;
  gc_run("cross_entropy mean", c, "6x5", -2, 2);
  c = ctx_for(OP_CE);
  c->targets = targets;
  c->red = MRL_LOSS_NONE;
  gc_run("cross_entropy none [2,3,5]", c, "2x3x5", -2, 2);
  c = ctx_for(OP_BCE);
  gc_run("bce_with_logits mean", c, "3x4 3x4", -4, 4);
  c = ctx_for(OP_KL_NORMAL);
  gc_run("kl_normal mean", c, "3x4 3x4 3x4 3x4", -1, 1);
  c = ctx_for(OP_KL_NORMAL);
  c->red = MRL_LOSS_NONE;
  gc_run("kl_normal none", c, "2x3x2 2x3x2 2x3x2 2x3x2", -1, 1);
  c = ctx_for(OP_KL_NORMAL);
  gc_run("kl_normal, log-stds and mu_q shared [D]", c, "3x4 4 4 4", -1, 1);
  c = ctx_for(OP_KL_NORMAL_STD);
  c->red = MRL_LOSS_SUM;
  gc_run("kl_normal against N(0,1), sum", c, "3x4 3x4", -1, 1);
  c = ctx_for(OP_KL_CAT);
  gc_run("kl_categorical mean", c, "3x5 3x5", -2, 2);
  c = ctx_for(OP_KL_CAT);
  c->red = MRL_LOSS_NONE;
  gc_run("kl_categorical none", c, "2x2x4 2x2x4", -2, 2);

  c = ctx_for(OP_COSINE);
  c->p0 = 1e-8f;
  gc_run("cosine_similarity [3,5]x[4,5]", c, "3x5 4x5", -1, 1);
  c = ctx_for(OP_COSINE);
  c->p0 = 0.6f;
  gc_run("cosine_similarity, some norms below eps", c, "4x3 5x3", -1, 1);
  c = ctx_for(OP_SQDIST);
  gc_run("sq_distances [3,5]x[4,5]", c, "3x5 4x5", -1, 1);
  c = ctx_for(OP_STRAIGHT);
  gc_run("straight_through_fn identity", c, "3x4", -1, 1);
  c = ctx_for(OP_COMPOSITE);
  c->targets = targets + 2; /* classes 4 and 1 of 27 */
  gc_run("composite conv2d -> avg_pool2d -> layernorm -> cross_entropy", c, "2x2x6x6 3x2x3x3 3", -1,
         1);

  c = ctx_for(OP_ATTENTION);
  c->i0 = 2;
  c->p0 = 0.7f;
  gc_run("attention, 2 heads, bias, mask with an empty row", c, "2x3x6 2x4x6 2x4x6 2x2x3x4", -1, 1);
  c = ctx_for(OP_ATTENTION_PACKED);
  c->i0 = 3;
  c->p0 = 0.5f;
  gc_run("attention, 3 heads from one packed qkv, causal", c, "2x4x18", -1, 1);
  c = ctx_for(OP_ATTENTION_SHIFT);
  c->i0 = 2;
  c->p0 = 0.6f;
  gc_run("attention, relative-shifted bias", c, "2x3x4 2x5x4 2x5x4 2x2x3x5", -1, 1);
  c = ctx_for(OP_REL_ATTENTION);
  c->i0 = 2;
  c->p0 = 0.6f;
  gc_run("relative attention (qr, rk inside)", c, "2x3x4 2x5x8 2x3x4 5x4", -1, 1);
}

/* ------------------------------------------------------------------------ */
/* PyTorch fixtures                                                         */
/* ------------------------------------------------------------------------ */

/* A tensor with the fixture array `name` (data and a zeroed gradient on the
 * heap; tensor_drop frees them). NULL data after a failed check. */
static mrl_tensor ref_tensor(const mrl_ref_file *f, const char *name) {
  float *v;
  int nd = 1, shape[4] = {0, 1, 1, 1}, n = mrl_ref_get(f, name, &v, &nd, shape);
  mrl_tensor t;
  if (n < 0) {
    memset(&t, 0, sizeof t);
    return t;
  }
  t = mrl_tensor_make(v, (float *)calloc((size_t)(n ? n : 1), sizeof(float)), nd, shape);
  return t;
}

static void tensor_drop(mrl_tensor *t) {
  free(t->data);
  free(t->grad);
  t->data = t->grad = NULL;
}

/* loss = sum(y * gy) (gy NULL: y itself, one element), then backward. */
static int backward_weighted(mrl_graph *g, mrl_tensor *y, const mrl_tensor *gy) {
  mrl_tensor *loss;
  if (!y) return 0;
  loss = gy ? mrl_sum(g, mrl_mul(g, y, mrl_tensor_from(g, gy->data, gy->ndim, gy->shape))) : y;
  return mrl_backward(g, loss) == MRL_OK;
}

static void expect_tensor(const mrl_ref_file *f, const char *name, const mrl_tensor *t) {
  if (!t || !t->data) {
    MRL_CHECK(0, "%s: no output", name);
    return;
  }
  mrl_ref_expect(f, name, t->data, t->size, REF_ATOL, REF_RTOL);
}

static void expect_grad(const mrl_ref_file *f, const char *name, const mrl_tensor *t) {
  if (!t->grad) {
    MRL_CHECK(0, "%s: no gradient", name);
    return;
  }
  mrl_ref_expect(f, name, t->grad, t->size, REF_ATOL, REF_RTOL);
}

static void test_reference(void) {
  mrl_ref_file f;
  mrl_graph g;
  mrl_tensor x, w, b, gy, p, q, t, k, m, s1, s2, *y;
  int targets[5], i;
  if (!mrl_ref_open(&f, "tests/ref/tensor_fused.txt")) return;
  mrl_graph_init(&g, 1 << 16);

  /* layernorm */
  x = ref_tensor(&f, "ln_x");
  w = ref_tensor(&f, "ln_w");
  b = ref_tensor(&f, "ln_b");
  gy = ref_tensor(&f, "ln_gy");
  if (x.data && w.data && b.data && gy.data) {
    y = mrl_layernorm(&g, &x, &w, &b, 1e-5f);
    expect_tensor(&f, "ln_y", y);
    MRL_CHECK(backward_weighted(&g, y, &gy), "layernorm: backward failed");
    expect_grad(&f, "ln_dx", &x);
    expect_grad(&f, "ln_dw", &w);
    expect_grad(&f, "ln_db", &b);
  }
  tensor_drop(&x), tensor_drop(&w), tensor_drop(&b), tensor_drop(&gy);
  mrl_graph_reset(&g);
  x = ref_tensor(&f, "ln2_x");
  gy = ref_tensor(&f, "ln2_gy");
  if (x.data && gy.data) {
    y = mrl_layernorm(&g, &x, NULL, NULL, 1e-5f);
    expect_tensor(&f, "ln2_y", y);
    MRL_CHECK(backward_weighted(&g, y, &gy), "layernorm: backward failed");
    expect_grad(&f, "ln2_dx", &x);
  }
  tensor_drop(&x), tensor_drop(&gy);
  mrl_graph_reset(&g);

  /* conv2d */
  x = ref_tensor(&f, "cv_x");
  w = ref_tensor(&f, "cv_w");
  b = ref_tensor(&f, "cv_b");
  gy = ref_tensor(&f, "cv_gy");
  if (x.data && w.data && b.data && gy.data) {
    y = mrl_conv2d(&g, &x, &w, &b, 2, 1);
    expect_tensor(&f, "cv_y", y);
    MRL_CHECK(backward_weighted(&g, y, &gy), "conv2d: backward failed");
    expect_grad(&f, "cv_dx", &x);
    expect_grad(&f, "cv_dw", &w);
    expect_grad(&f, "cv_db", &b);
  }
  tensor_drop(&x), tensor_drop(&w), tensor_drop(&b), tensor_drop(&gy);
  mrl_graph_reset(&g);
  x = ref_tensor(&f, "cv2_x");
  w = ref_tensor(&f, "cv2_w");
  gy = ref_tensor(&f, "cv2_gy");
  if (x.data && w.data && gy.data) {
    y = mrl_conv2d(&g, &x, &w, NULL, 1, 2);
    expect_tensor(&f, "cv2_y", y);
    MRL_CHECK(backward_weighted(&g, y, &gy), "conv2d: backward failed");
    expect_grad(&f, "cv2_dx", &x);
    expect_grad(&f, "cv2_dw", &w);
  }
  tensor_drop(&x), tensor_drop(&w), tensor_drop(&gy);
  mrl_graph_reset(&g);

  /* pooling */
  x = ref_tensor(&f, "mp_x");
  gy = ref_tensor(&f, "mp_gy");
  if (x.data && gy.data) {
    y = mrl_max_pool2d(&g, &x, 3, 2, 1);
    expect_tensor(&f, "mp_y", y);
    MRL_CHECK(backward_weighted(&g, y, &gy), "max_pool2d: backward failed");
    expect_grad(&f, "mp_dx", &x);
    mrl_graph_reset(&g);
    memset(x.grad, 0, sizeof(float) * (size_t)x.size);
    y = mrl_avg_pool2d(&g, &x, 3, 2, 1);
    expect_tensor(&f, "ap_y", y);
    MRL_CHECK(backward_weighted(&g, y, &gy), "avg_pool2d: backward failed");
    expect_grad(&f, "ap_dx", &x);
  }
  tensor_drop(&x), tensor_drop(&gy);
  mrl_graph_reset(&g);

  /* cross-entropy: mean, sum, none */
  x = ref_tensor(&f, "ce_x");
  t = ref_tensor(&f, "ce_t");
  gy = ref_tensor(&f, "ce_gy");
  if (x.data && t.data && gy.data && t.size == 5) {
    for (i = 0; i < 5; i++) targets[i] = (int)t.data[i];
    y = mrl_cross_entropy(&g, &x, targets, MRL_LOSS_MEAN);
    expect_tensor(&f, "ce_mean", y);
    MRL_CHECK(backward_weighted(&g, y, NULL), "cross_entropy: backward failed");
    expect_grad(&f, "ce_dx_mean", &x);
    mrl_graph_reset(&g);
    memset(x.grad, 0, sizeof(float) * (size_t)x.size);
    y = mrl_cross_entropy(&g, &x, targets, MRL_LOSS_SUM);
    expect_tensor(&f, "ce_sum", y);
    MRL_CHECK(backward_weighted(&g, y, NULL), "cross_entropy: backward failed");
    expect_grad(&f, "ce_dx_sum", &x);
    mrl_graph_reset(&g);
    memset(x.grad, 0, sizeof(float) * (size_t)x.size);
    y = mrl_cross_entropy(&g, &x, targets, MRL_LOSS_NONE);
    expect_tensor(&f, "ce_none", y);
    MRL_CHECK(y && y->ndim == 1 && y->shape[0] == 5, "cross_entropy none: shape must be [5]");
    MRL_CHECK(backward_weighted(&g, y, &gy), "cross_entropy: backward failed");
    expect_grad(&f, "ce_dx_none", &x);
  }
  tensor_drop(&x), tensor_drop(&t), tensor_drop(&gy);
  mrl_graph_reset(&g);

  /* mse, huber, smooth L1 (mean) */
  p = ref_tensor(&f, "el_p");
  q = ref_tensor(&f, "el_q");
  if (p.data && q.data) {
    static const char *const names[3][3] = {{"mse_y", "mse_dp", "mse_dq"},
                                            {"hub_y", "hub_dp", "hub_dq"},
                                            {"sl1_y", "sl1_dp", "sl1_dq"}};
    for (i = 0; i < 3; i++) {
      memset(p.grad, 0, sizeof(float) * (size_t)p.size);
      memset(q.grad, 0, sizeof(float) * (size_t)q.size);
      mrl_graph_reset(&g);
      y = i == 0   ? mrl_mse_loss(&g, &p, &q, MRL_LOSS_MEAN)
          : i == 1 ? mrl_huber_loss(&g, &p, &q, 0.7f, MRL_LOSS_MEAN)
                   : mrl_smooth_l1_loss(&g, &p, &q, 0.5f, MRL_LOSS_MEAN);
      expect_tensor(&f, names[i][0], y);
      MRL_CHECK(backward_weighted(&g, y, NULL), "%s: backward failed", names[i][0]);
      expect_grad(&f, names[i][1], &p);
      expect_grad(&f, names[i][2], &q);
    }
  }
  tensor_drop(&p), tensor_drop(&q);
  mrl_graph_reset(&g);

  /* BCE with logits */
  x = ref_tensor(&f, "bce_x");
  t = ref_tensor(&f, "bce_t");
  if (x.data && t.data) {
    y = mrl_bce_with_logits(&g, &x, &t, MRL_LOSS_MEAN);
    expect_tensor(&f, "bce_y", y);
    MRL_CHECK(backward_weighted(&g, y, NULL), "bce: backward failed");
    expect_grad(&f, "bce_dx", &x);
    expect_grad(&f, "bce_dt", &t);
  }
  tensor_drop(&x), tensor_drop(&t);
  mrl_graph_reset(&g);

  /* KL of diagonal Gaussians (mean, log-std) */
  p = ref_tensor(&f, "kln_mp");
  s1 = ref_tensor(&f, "kln_sp");
  q = ref_tensor(&f, "kln_mq");
  s2 = ref_tensor(&f, "kln_sq");
  if (p.data && s1.data && q.data && s2.data) {
    y = mrl_kl_normal(&g, &p, &s1, &q, &s2, MRL_LOSS_MEAN);
    expect_tensor(&f, "kln_y", y);
    MRL_CHECK(backward_weighted(&g, y, NULL), "kl_normal: backward failed");
    expect_grad(&f, "kln_dmp", &p);
    expect_grad(&f, "kln_dsp", &s1);
    expect_grad(&f, "kln_dmq", &q);
    expect_grad(&f, "kln_dsq", &s2);
  }
  tensor_drop(&p), tensor_drop(&s1), tensor_drop(&q), tensor_drop(&s2);
  mrl_graph_reset(&g);

  /* KL of categoricals from logits */
  p = ref_tensor(&f, "klc_p");
  q = ref_tensor(&f, "klc_q");
  if (p.data && q.data) {
    y = mrl_kl_categorical(&g, &p, &q, MRL_LOSS_MEAN);
    expect_tensor(&f, "klc_y", y);
    MRL_CHECK(backward_weighted(&g, y, NULL), "kl_categorical: backward failed");
    expect_grad(&f, "klc_dp", &p);
    expect_grad(&f, "klc_dq", &q);
  }
  tensor_drop(&p), tensor_drop(&q);
  mrl_graph_reset(&g);

  /* cosine similarity and squared distances */
  k = ref_tensor(&f, "cos_k");
  m = ref_tensor(&f, "cos_m");
  gy = ref_tensor(&f, "cos_gy");
  if (k.data && m.data && gy.data) {
    y = mrl_cosine_similarity(&g, &k, &m, 1e-8f);
    expect_tensor(&f, "cos_y", y);
    MRL_CHECK(backward_weighted(&g, y, &gy), "cosine_similarity: backward failed");
    expect_grad(&f, "cos_dk", &k);
    expect_grad(&f, "cos_dm", &m);
    mrl_graph_reset(&g);
    memset(k.grad, 0, sizeof(float) * (size_t)k.size);
    memset(m.grad, 0, sizeof(float) * (size_t)m.size);
    y = mrl_sq_distances(&g, &k, &m);
    expect_tensor(&f, "sqd_y", y);
    MRL_CHECK(backward_weighted(&g, y, &gy), "sq_distances: backward failed");
    expect_grad(&f, "sqd_dk", &k);
    expect_grad(&f, "sqd_dm", &m);
  }
  tensor_drop(&k), tensor_drop(&m), tensor_drop(&gy);

  mrl_graph_free(&g);
  mrl_ref_close(&f);
}

/* ------------------------------------------------------------------------ */
/* Forward values against direct loops, reductions, special cases           */
/* ------------------------------------------------------------------------ */

static void fill(mrl_rng *rng, float *v, int n, float lo, float hi) {
  int i;
  for (i = 0; i < n; i++) v[i] = mrl_rng_uniform_range(rng, lo, hi);
}

/* Worst |got - want| / (1 + |want|) over n elements. */
static double worst_rel(const float *got, const double *want, int n) {
  double worst = 0.0;
  int i;
  for (i = 0; i < n; i++) {
    double d = fabs((double)got[i] - want[i]) / (1.0 + fabs(want[i]));
    if (d != d) d = 1e300;
    if (d > worst) worst = d;
  }
  return worst;
}

/* conv2d against the textbook 7-loop definition, in double, on shapes that
 * exercise the blocked gemm (K = C*KH*KW = 75 and 256 > one 4x8 block). */
static void test_conv_direct(void) {
  static float x[2 * 3 * 19 * 17], w[16 * 3 * 5 * 5], b[16];
  static double want[2 * 16 * 10 * 9];
  static float x2[1 * 64 * 6 * 5], w2[8 * 64], b2[8];
  static double want2[8 * 6 * 5];
  int xs[4] = {2, 3, 19, 17}, ws[4] = {16, 3, 5, 5}, bs[1] = {16};
  int xs2[4] = {1, 64, 6, 5}, ws2[4] = {8, 64, 1, 1}, bs2[1] = {8};
  int n, o, yo, xo, c, i, j, oh, ow;
  mrl_rng rng = mrl_rng_make(31);
  mrl_tensor X, W, B, *y;
  mrl_graph g;
  fill(&rng, x, (int)(sizeof x / sizeof *x), -1, 1);
  fill(&rng, w, (int)(sizeof w / sizeof *w), -0.5f, 0.5f);
  fill(&rng, b, 16, -1, 1);
  X = mrl_tensor_make(x, NULL, 4, xs);
  W = mrl_tensor_make(w, NULL, 4, ws);
  B = mrl_tensor_make(b, NULL, 1, bs);
  oh = (19 + 2 * 2 - 5) / 2 + 1; /* stride 2, padding 2 */
  ow = (17 + 2 * 2 - 5) / 2 + 1;
  for (n = 0; n < 2; n++)
    for (o = 0; o < 16; o++)
      for (yo = 0; yo < oh; yo++)
        for (xo = 0; xo < ow; xo++) {
          double acc = b[o];
          for (c = 0; c < 3; c++)
            for (i = 0; i < 5; i++)
              for (j = 0; j < 5; j++) {
                int yi = yo * 2 - 2 + i, xi = xo * 2 - 2 + j;
                if (yi < 0 || yi >= 19 || xi < 0 || xi >= 17) continue;
                acc +=
                    (double)x[((n * 3 + c) * 19 + yi) * 17 + xi] * w[((o * 3 + c) * 5 + i) * 5 + j];
              }
          want[((n * 16 + o) * oh + yo) * ow + xo] = acc;
        }
  mrl_graph_init(&g, 1 << 20);
  y = mrl_conv2d(&g, &X, &W, &B, 2, 2);
  MRL_CHECK(y && y->ndim == 4 && y->shape[0] == 2 && y->shape[1] == 16 && y->shape[2] == oh &&
                y->shape[3] == ow,
            "conv2d: output shape must be [2,16,%d,%d]", oh, ow);
  if (y)
    MRL_CHECK(worst_rel(y->data, want, 2 * 16 * oh * ow) <= 1e-5,
              "conv2d 5x5 stride 2 padding 2 differs from the direct loop");
  /* 1x1 kernel: the direct (no im2col) path */
  fill(&rng, x2, (int)(sizeof x2 / sizeof *x2), -1, 1);
  fill(&rng, w2, (int)(sizeof w2 / sizeof *w2), -0.5f, 0.5f);
  fill(&rng, b2, 8, -1, 1);
  for (o = 0; o < 8; o++)
    for (i = 0; i < 30; i++) {
      double acc = b2[o];
      for (c = 0; c < 64; c++) acc += (double)w2[o * 64 + c] * x2[c * 30 + i];
      want2[o * 30 + i] = acc;
    }
  X = mrl_tensor_make(x2, NULL, 4, xs2);
  W = mrl_tensor_make(w2, NULL, 4, ws2);
  B = mrl_tensor_make(b2, NULL, 1, bs2);
  y = mrl_conv2d(&g, &X, &W, &B, 1, 0);
  if (y)
    MRL_CHECK(worst_rel(y->data, want2, 8 * 30) <= 1e-5, "conv2d 1x1 differs from the direct loop");
  mrl_graph_free(&g);
}

/* conv2d forward and gradients are bitwise identical run to run and, when
 * built with -fopenmp, for 1 and 2 threads (images are split over threads). */
static void conv_run(float *out, float *gx, float *gw, int threads) {
  static float x[8 * 4 * 32 * 32], w[16 * 4 * 5 * 5], gyd[8 * 16 * 32 * 32];
  int xs[4] = {8, 4, 32, 32}, ws[4] = {16, 4, 5, 5}, i;
  mrl_rng rng = mrl_rng_make(17);
  mrl_tensor X = mrl_tensor_make(x, gx, 4, xs), W = mrl_tensor_make(w, gw, 4, ws), *y, *gy;
  mrl_graph g;
#ifdef _OPENMP
  omp_set_num_threads(threads);
#else
  (void)threads;
#endif
  fill(&rng, x, 8 * 4 * 32 * 32, -1, 1);
  fill(&rng, w, 16 * 4 * 5 * 5, -0.3f, 0.3f);
  fill(&rng, gyd, 8 * 16 * 32 * 32, -1, 1);
  memset(gx, 0, sizeof(float) * 8 * 4 * 32 * 32);
  memset(gw, 0, sizeof(float) * 16 * 4 * 5 * 5);
  mrl_graph_init(&g, 1 << 22);
  y = mrl_conv2d(&g, &X, &W, NULL, 1, 2);
  gy = mrl_tensor_from(&g, gyd, 4, y ? y->shape : xs);
  MRL_CHECK(y && mrl_backward(&g, mrl_sum(&g, mrl_mul(&g, y, gy))) == MRL_OK,
            "conv2d determinism: backward failed");
  for (i = 0; y && i < y->size; i++) out[i] = y->data[i];
  mrl_graph_free(&g);
}

static void test_conv_determinism(void) {
  static float y1[8 * 16 * 32 * 32], y2[8 * 16 * 32 * 32];
  static float gx1[8 * 4 * 32 * 32], gx2[8 * 4 * 32 * 32], gw1[1600], gw2[1600];
  conv_run(y1, gx1, gw1, 1);
  conv_run(y2, gx2, gw2, 2);
  MRL_CHECK(memcmp(y1, y2, sizeof y1) == 0 && memcmp(gx1, gx2, sizeof gx1) == 0 &&
                memcmp(gw1, gw2, sizeof gw1) == 0,
            "conv2d: results must be bitwise identical across runs and thread counts");
}

static void test_pool_values(void) {
  /* a 1x1x4x4 image with a tie: the gradient goes to the first maximum */
  float x[16] = {1, 5, 5, 0, 2, 3, 4, 4, -1, -2, 7, 7, 0, 0, 7, 6}, gx[16] = {0};
  int xs[4] = {1, 1, 4, 4};
  mrl_tensor X = mrl_tensor_make(x, gx, 4, xs), *y;
  mrl_graph g;
  mrl_graph_init(&g, 1 << 14);
  y = mrl_max_pool2d(&g, &X, 2, 2, 0);
  MRL_CHECK(y && y->shape[2] == 2 && y->shape[3] == 2, "max_pool2d: output must be 2x2");
  if (y) {
    MRL_CHECK(y->data[0] == 5 && y->data[1] == 5 && y->data[2] == 0 && y->data[3] == 7,
              "max_pool2d values: %g %g %g %g", y->data[0], y->data[1], y->data[2], y->data[3]);
    MRL_CHECK(mrl_backward(&g, mrl_sum(&g, y)) == MRL_OK, "max_pool2d: backward failed");
    MRL_CHECK(gx[1] == 1 && gx[2] == 1 && gx[12] == 1 && gx[10] == 1 && gx[11] == 0 && gx[14] == 0,
              "max_pool2d: the gradient must go to the first maximum of each window");
  }
  /* avg pool with padding counts padded zeros: corner window of a ones image */
  mrl_graph_reset(&g);
  {
    float ones[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    int s[4] = {1, 1, 3, 3};
    mrl_tensor O = mrl_tensor_make(ones, NULL, 4, s);
    y = mrl_avg_pool2d(&g, &O, 3, 1, 1);
    MRL_CHECK(y && fabsf(y->data[0] - 4.0f / 9.0f) < 1e-6f && fabsf(y->data[4] - 1.0f) < 1e-6f,
              "avg_pool2d: padded zeros must count in the divisor (count_include_pad)");
    /* max pool with padding: padded cells never win, even over negatives */
    ones[0] = -3.0f;
    y = mrl_max_pool2d(&g, &O, 3, 2, 1);
    MRL_CHECK(y && y->size == 4, "max_pool2d k3 s2 p1 on 3x3: 2x2 output");
  }
  {
    float neg[4] = {-4, -3, -2, -1};
    int s[4] = {1, 1, 2, 2};
    mrl_tensor N = mrl_tensor_make(neg, NULL, 4, s);
    y = mrl_max_pool2d(&g, &N, 2, 1, 1);
    MRL_CHECK(y && y->size == 9 && y->data[0] == -4 && y->data[4] == -1 && y->data[8] == -1,
              "max_pool2d: padding must act as -inf, not 0");
  }
  mrl_graph_free(&g);
}

static void test_dropout(void) {
  static float x[10000], gx[10000];
  int s[2] = {100, 100}, i, zeros = 0, scaled = 1, same = 1, grad_ok = 1;
  mrl_rng rng = mrl_rng_make(5), rng2 = mrl_rng_make(5);
  mrl_tensor X = mrl_tensor_make(x, gx, 2, s), *y, *y2;
  mrl_graph g;
  double frac;
  for (i = 0; i < 10000; i++) x[i] = 1.0f + (float)(i % 7);
  mrl_graph_init(&g, 1 << 20);
  MRL_CHECK(mrl_dropout(&g, &X, 0.0f, &rng, 1) == &X, "dropout p=0 must return x itself");
  MRL_CHECK(mrl_dropout(&g, &X, 0.5f, &rng, 0) == &X, "dropout not training must return x");
  MRL_CHECK(mrl_rng_u32(&rng) == mrl_rng_u32(&rng2), "dropout identity must not draw numbers");
  y = mrl_dropout(&g, &X, 0.25f, &rng, 1);
  y2 = mrl_dropout(&g, &X, 0.25f, &rng2, 1);
  MRL_CHECK(y && y2, "dropout: no output");
  if (!y || !y2) return;
  for (i = 0; i < 10000; i++) {
    if (y->data[i] == 0.0f)
      zeros++;
    else
      scaled &= y->data[i] == x[i] * (1.0f / 0.75f);
    same &= y->data[i] == y2->data[i];
  }
  frac = zeros / 10000.0;
  /* binomial(10000, 0.25): sd 0.0043; 5 sd */
  MRL_CHECK(fabs(frac - 0.25) < 0.022, "dropout: zeroed fraction %.4f, want 0.25", frac);
  MRL_CHECK(scaled, "dropout: survivors must be scaled by 1/(1-p)");
  MRL_CHECK(same, "dropout: the same seed must give the same mask");
  MRL_CHECK(mrl_backward(&g, mrl_sum(&g, y)) == MRL_OK, "dropout: backward failed");
  for (i = 0; i < 10000; i++) grad_ok &= gx[i] == (y->data[i] == 0.0f ? 0.0f : 1.0f / 0.75f);
  MRL_CHECK(grad_ok, "dropout: gradient must be the mask (0 or 1/(1-p))");
  mrl_graph_reset(&g);
  y = mrl_dropout(&g, &X, 1.0f, &rng, 1);
  zeros = 0;
  for (i = 0; y && i < 10000; i++) zeros += y->data[i] == 0.0f;
  MRL_CHECK(zeros == 10000, "dropout p=1 must give zeros");
  mrl_graph_free(&g);
}

/* Losses: values against loops in double; mean = sum / n = mean of none. */
static void test_loss_values(void) {
  float a[24], t[24], u[24];
  double want = 0.0, sum_none;
  int s[3] = {2, 3, 4}, i, r, j;
  static const int tg[6] = {0, 3, 1, 2, 2, 0};
  mrl_rng rng = mrl_rng_make(9);
  mrl_tensor A, T, U, *ym, *ys, *yn;
  mrl_graph g;
  fill(&rng, a, 24, -3, 3);
  fill(&rng, t, 24, -3, 3);
  fill(&rng, u, 24, 0, 1);
  A = mrl_tensor_make(a, NULL, 3, s);
  T = mrl_tensor_make(t, NULL, 3, s);
  U = mrl_tensor_make(u, NULL, 3, s);
  mrl_graph_init(&g, 1 << 16);
  for (i = 0; i < 24; i++) {
    double d = (double)a[i] - t[i], ad = fabs(d);
    want += ad < 1.0 ? 0.5 * d * d : ad - 0.5;
  }
  ym = mrl_huber_loss(&g, &A, &T, 1.0f, MRL_LOSS_SUM);
  ys = mrl_smooth_l1_loss(&g, &A, &T, 1.0f, MRL_LOSS_SUM);
  MRL_CHECK(ym && fabs(ym->data[0] - want) < 1e-4 * (1 + fabs(want)), "huber delta 1 sum");
  MRL_CHECK(ys && ym && ys->data[0] == ym->data[0], "smooth_l1(beta 1) must equal huber(delta 1)");
  want = 0.0;
  for (i = 0; i < 24; i++) want += fabs((double)a[i] - t[i]);
  ys = mrl_smooth_l1_loss(&g, &A, &T, 0.0f, MRL_LOSS_SUM);
  MRL_CHECK(ys && fabs(ys->data[0] - want) < 1e-4 * (1 + want), "smooth_l1 beta 0 is L1");
  want = 0.0;
  for (i = 0; i < 24; i++) {
    double x = a[i];
    want += log(1.0 + exp(x)) - x * u[i];
  }
  ym = mrl_bce_with_logits(&g, &A, &U, MRL_LOSS_MEAN);
  MRL_CHECK(ym && fabs(ym->data[0] - want / 24) < 1e-5, "bce_with_logits mean");
  {
    float big[2] = {100.0f, -100.0f}, tt[2] = {0.0f, 1.0f};
    int s2[1] = {2};
    mrl_tensor Bg = mrl_tensor_make(big, NULL, 1, s2), Tt = mrl_tensor_make(tt, NULL, 1, s2);
    yn = mrl_bce_with_logits(&g, &Bg, &Tt, MRL_LOSS_NONE);
    MRL_CHECK(yn && yn->data[0] == 100.0f && yn->data[1] == 100.0f,
              "bce_with_logits must be stable at |x| = 100 (got %g, %g)", yn ? yn->data[0] : 0,
              yn ? yn->data[1] : 0);
  }
  /* reductions agree */
  ym = mrl_mse_loss(&g, &A, &T, MRL_LOSS_MEAN);
  ys = mrl_mse_loss(&g, &A, &T, MRL_LOSS_SUM);
  yn = mrl_mse_loss(&g, &A, &T, MRL_LOSS_NONE);
  MRL_CHECK(yn && mrl_tensor_same_shape(yn, &A), "mse none keeps the input's shape");
  sum_none = 0.0;
  for (i = 0; yn && i < 24; i++) sum_none += yn->data[i];
  MRL_CHECK(ym && ys && fabs(ys->data[0] - sum_none) < 1e-4 &&
                fabs(ym->data[0] * 24.0 - ys->data[0]) < 1e-4,
            "mse: sum, mean and none must agree");
  /* cross-entropy on [2,3,4] against loops */
  yn = mrl_cross_entropy(&g, &A, tg, MRL_LOSS_NONE);
  MRL_CHECK(yn && yn->ndim == 2 && yn->shape[0] == 2 && yn->shape[1] == 3,
            "cross_entropy none on [2,3,4] gives [2,3]");
  for (r = 0; yn && r < 6; r++) {
    double lse = 0.0;
    for (j = 0; j < 4; j++) lse += exp((double)a[r * 4 + j]);
    lse = log(lse);
    MRL_CHECK_NEAR(yn->data[r], lse - a[r * 4 + tg[r]], 1e-5, 1e-5, "cross_entropy row");
  }
  /* KL normal against q = N(0,1) equals explicit zeros; KL of a distribution with itself is 0 */
  {
    float z[24] = {0};
    mrl_tensor Z = mrl_tensor_make(z, NULL, 3, s);
    ym = mrl_kl_normal(&g, &A, &T, NULL, NULL, MRL_LOSS_NONE);
    ys = mrl_kl_normal(&g, &A, &T, &Z, &Z, MRL_LOSS_NONE);
    MRL_CHECK(ym && ys && ym->size == 6 && ys->size == 6, "kl_normal none gives one per row");
    for (i = 0; ym && ys && i < 6; i++)
      MRL_CHECK_NEAR(ym->data[i], ys->data[i], 1e-6, 1e-6, "kl_normal N(0,1)");
    {
      /* a [D] log-std equals the same row repeated */
      float rep[24];
      int d4[1] = {4};
      mrl_tensor Row = mrl_tensor_make(t, NULL, 1, d4), Rep = mrl_tensor_make(rep, NULL, 3, s);
      for (i = 0; i < 24; i++) rep[i] = t[i % 4];
      ym = mrl_kl_normal(&g, &A, &Row, &T, &Row, MRL_LOSS_NONE);
      ys = mrl_kl_normal(&g, &A, &Rep, &T, &Rep, MRL_LOSS_NONE);
      for (i = 0; ym && ys && i < 6; i++)
        MRL_CHECK(ym->data[i] == ys->data[i], "kl_normal: a [D] log-std must broadcast over rows");
    }
    ym = mrl_kl_normal(&g, &A, &T, &A, &T, MRL_LOSS_SUM);
    MRL_CHECK(ym && fabsf(ym->data[0]) < 1e-5f, "kl_normal(p, p) must be 0");
    ym = mrl_kl_categorical(&g, &A, &A, MRL_LOSS_SUM);
    MRL_CHECK(ym && fabsf(ym->data[0]) < 1e-5f, "kl_categorical(p, p) must be 0");
  }
  /* KL categorical with a masked class (p's logit -inf) equals the KL over
   * the other classes; its gradients stay finite */
  {
    float pl[4] = {0.3f, -INFINITY, 1.2f, -0.5f}, ql[4] = {0.1f, 0.4f, -0.2f, 0.8f}, gp[4] = {0};
    float gq[4] = {0}, p3[3] = {0.3f, 1.2f, -0.5f}, q3[3] = {0.1f, -0.2f, 0.8f};
    int s4[2] = {1, 4}, s3b[2] = {1, 3}, finite = 1;
    mrl_tensor P = mrl_tensor_make(pl, gp, 2, s4), Q = mrl_tensor_make(ql, gq, 2, s4);
    mrl_tensor P3 = mrl_tensor_make(p3, NULL, 2, s3b), Q3 = mrl_tensor_make(q3, NULL, 2, s3b);
    double lse3 = log(exp(0.1) + exp(-0.2) + exp(0.8)), lse4 = log(exp(lse3) + exp(0.4));
    ym = mrl_kl_categorical(&g, &P, &Q, MRL_LOSS_SUM);
    ys = mrl_kl_categorical(&g, &P3, &Q3, MRL_LOSS_SUM);
    /* q renormalised over 4 classes: KL_4 = KL_3 + (lse4 - lse3) */
    MRL_CHECK(ym && ys && fabs(ym->data[0] - (ys->data[0] + (lse4 - lse3))) < 1e-5,
              "kl_categorical with a -inf logit: %g, want %g", ym ? ym->data[0] : 0.0,
              ys ? ys->data[0] + (lse4 - lse3) : 0.0);
    MRL_CHECK(ym && mrl_backward(&g, ym) == MRL_OK, "kl_categorical masked: backward failed");
    for (i = 0; i < 4; i++) finite &= isfinite(gp[i]) && isfinite(gq[i]);
    MRL_CHECK(finite && gp[1] == 0.0f, "kl_categorical masked: gradients must be finite");
    mrl_graph_reset(&g);
  }
  /* KL categorical: logits and their log-softmax give the same value */
  {
    mrl_tensor *la = mrl_log_softmax(&g, &A), *lb = mrl_log_softmax(&g, &T);
    ym = mrl_kl_categorical(&g, &A, &T, MRL_LOSS_NONE);
    ys = mrl_kl_categorical(&g, la, lb, MRL_LOSS_NONE);
    for (i = 0; ym && ys && i < 6; i++) {
      double kl = 0.0;
      for (j = 0; j < 4; j++)
        kl += exp(la->data[i * 4 + j]) * (la->data[i * 4 + j] - lb->data[i * 4 + j]);
      MRL_CHECK_NEAR(ym->data[i], kl, 1e-5, 1e-4, "kl_categorical from logits");
      MRL_CHECK_NEAR(ys->data[i], kl, 1e-5, 1e-4, "kl_categorical from log-probs");
    }
  }
  mrl_graph_free(&g);
}

static void test_memory_values(void) {
  static float a[16 * 33], b[70 * 33];
  static double want[16 * 70];
  float zero[3] = {0, 0, 0}, one[3] = {1, 2, 2};
  int sa[2] = {16, 33}, sb[2] = {70, 33}, s13[2] = {1, 3}, i, j, k;
  mrl_rng rng = mrl_rng_make(21);
  mrl_tensor A, B, Z, O, *y;
  mrl_graph g;
  fill(&rng, a, 16 * 33, -1, 1);
  fill(&rng, b, 70 * 33, -1, 1);
  memcpy(b + 5 * 33, a + 3 * 33, sizeof(float) * 33); /* an exact match: distance 0 */
  A = mrl_tensor_make(a, NULL, 2, sa);
  B = mrl_tensor_make(b, NULL, 2, sb);
  mrl_graph_init(&g, 1 << 20);
  for (i = 0; i < 16; i++)
    for (j = 0; j < 70; j++) {
      double d2 = 0.0;
      for (k = 0; k < 33; k++)
        d2 += ((double)a[i * 33 + k] - b[j * 33 + k]) * ((double)a[i * 33 + k] - b[j * 33 + k]);
      want[i * 70 + j] = d2;
    }
  y = mrl_sq_distances(&g, &A, &B);
  MRL_CHECK(y && y->shape[0] == 16 && y->shape[1] == 70, "sq_distances: shape [16,70]");
  if (y) {
    MRL_CHECK(worst_rel(y->data, want, 16 * 70) < 1e-5, "sq_distances differ from the direct loop");
    MRL_CHECK(y->data[3 * 70 + 5] >= 0.0f && y->data[3 * 70 + 5] < 1e-5f,
              "sq_distances: identical rows must give ~0, never negative (%g)",
              y->data[3 * 70 + 5]);
  }
  for (i = 0; i < 16; i++)
    for (j = 0; j < 70; j++) {
      double dot = 0.0, na = 0.0, nb = 0.0;
      for (k = 0; k < 33; k++) {
        dot += (double)a[i * 33 + k] * b[j * 33 + k];
        na += (double)a[i * 33 + k] * a[i * 33 + k];
        nb += (double)b[j * 33 + k] * b[j * 33 + k];
      }
      want[i * 70 + j] = dot / (sqrt(na) * sqrt(nb));
    }
  y = mrl_cosine_similarity(&g, &A, &B, 1e-8f);
  if (y) MRL_CHECK(worst_rel(y->data, want, 16 * 70) < 1e-5, "cosine differs from the direct loop");
  /* a zero key: 0 / eps^2 = 0, finite */
  Z = mrl_tensor_make(zero, NULL, 2, s13);
  O = mrl_tensor_make(one, NULL, 2, s13);
  y = mrl_cosine_similarity(&g, &Z, &O, 1e-8f);
  MRL_CHECK(y && y->data[0] == 0.0f, "cosine of a zero vector must be 0");
  y = mrl_cosine_similarity(&g, &O, &O, 1e-8f);
  MRL_CHECK(y && fabsf(y->data[0] - 1.0f) < 1e-6f, "cosine of a vector with itself must be 1");
  mrl_graph_free(&g);
}

/* straight-through: forward is round(x) (or a given value), gradient exactly R */
static void test_straight_through(void) {
  float x[6] = {0.2f, -1.7f, 2.5f, 0.49f, -0.2f, 3.1f}, gx[6] = {0};
  float v[6] = {9, 8, 7, 6, 5, 4}, r[6] = {0.5f, -1.0f, 2.0f, 0.25f, 3.0f, -0.75f};
  int i, ok = 1;
  mrl_tensor X = mrl_tensor_make2(x, gx, 2, 3), V = mrl_tensor_make2(v, NULL, 2, 3), *y, *R;
  mrl_graph g;
  mrl_graph_init(&g, 1 << 14);
  y = mrl_straight_through_fn(&g, &X, roundf);
  for (i = 0; y && i < 6; i++) ok &= y->data[i] == roundf(x[i]);
  MRL_CHECK(y && ok, "straight_through_fn(round): forward must be round(x)");
  R = mrl_tensor_from2(&g, r, 2, 3);
  MRL_CHECK(mrl_backward(&g, mrl_sum(&g, mrl_mul(&g, y, R))) == MRL_OK,
            "straight_through backward");
  ok = 1;
  for (i = 0; i < 6; i++) ok &= gx[i] == r[i];
  MRL_CHECK(ok, "straight_through: the gradient must pass unchanged");
  mrl_graph_reset(&g);
  memset(gx, 0, sizeof gx);
  y = mrl_straight_through(&g, &X, &V);
  ok = 1;
  for (i = 0; y && i < 6; i++) ok &= y->data[i] == v[i];
  MRL_CHECK(y && ok, "straight_through(x, value): forward must be value");
  R = mrl_tensor_from2(&g, r, 2, 3);
  MRL_CHECK(mrl_backward(&g, mrl_sum(&g, mrl_mul(&g, y, R))) == MRL_OK,
            "straight_through backward");
  ok = 1;
  for (i = 0; i < 6; i++) ok &= gx[i] == r[i];
  MRL_CHECK(ok, "straight_through(x, value): the gradient must reach x unchanged");
  mrl_graph_reset(&g);
  y = mrl_straight_through_fn(&g, &X, mrl_signf);
  MRL_CHECK(y && y->data[0] == 1.0f && y->data[1] == -1.0f, "mrl_signf forward");
  y = mrl_stop_gradient(&g, &X);
  MRL_CHECK(y && y->grad == NULL && y->data[2] == x[2], "mrl_stop_gradient is mrl_detach");
  mrl_graph_free(&g);
}

/* No-grad mode records nothing; a full fixed arena gives NULL and an error. */
static void test_no_grad_and_oom(void) {
  static unsigned char small[24576];
  float x[2 * 2 * 6 * 6], gxd[2 * 2 * 6 * 6], w[3 * 2 * 3 * 3], gw[3 * 2 * 3 * 3], b[3], gb[3];
  int xs[4] = {2, 2, 6, 6}, ws[4] = {3, 2, 3, 3}, bs[1] = {3}, flat[2] = {2, 27};
  static const int tg[2] = {1, 2};
  mrl_rng rng = mrl_rng_make(3);
  mrl_tensor X = mrl_tensor_make(x, gxd, 4, xs), W = mrl_tensor_make(w, gw, 4, ws);
  mrl_tensor B = mrl_tensor_make(b, gb, 1, bs), *y, *l;
  mrl_graph g;
  int size, nulls = 0, ok_runs = 0, bad = 0;
  fill(&rng, x, 144, -1, 1);
  fill(&rng, w, 54, -1, 1);
  fill(&rng, b, 3, -1, 1);
  mrl_graph_init(&g, 1 << 16);
  mrl_graph_set_no_grad(&g, 1);
  y = mrl_layernorm(&g, mrl_max_pool2d(&g, mrl_conv2d(&g, &X, &W, &B, 1, 1), 2, 2, 0), NULL, NULL,
                    1e-5f);
  MRL_CHECK(y && y->grad == NULL && g.num_nodes == 0, "no-grad mode must record nothing");
  mrl_graph_free(&g);
  /* a chain of ops over fixed arenas of growing size: NULL and OUT_OF_MEMORY
   * when too small, never a crash (the sanitizer build checks the bounds) */
  for (size = 0; size <= (int)sizeof small; size += 96) {
    mrl_graph_init_buffer(&g, small, (size_t)size);
    y = mrl_conv2d(&g, &X, &W, &B, 1, 1);                            /* [2,3,6,6] */
    y = mrl_avg_pool2d(&g, mrl_max_pool2d(&g, y, 2, 2, 0), 3, 1, 1); /* [2,3,3,3] */
    y = mrl_reshape(&g, y, 2, flat);
    y = mrl_layernorm(&g, y, NULL, NULL, 1e-5f);
    l = mrl_cross_entropy(&g, y, tg, MRL_LOSS_MEAN);
    if (!l) {
      nulls++;
      bad += mrl_graph_status(&g) != MRL_ERR_OUT_OF_MEMORY;
      bad += mrl_backward(&g, l) == MRL_OK;
    } else if (mrl_graph_status(&g) == MRL_OK) {
      ok_runs++;
      bad += mrl_backward(&g, l) != MRL_OK;
    }
  }
  MRL_CHECK(nulls > 0 && ok_runs > 0, "oom sweep: %d failures, %d successes (want both)", nulls,
            ok_runs);
  MRL_CHECK(bad == 0, "oom sweep: %d runs reported the wrong status", bad);
}

/* ------------------------------------------------------------------------ */
/* Shape errors                                                             */
/* ------------------------------------------------------------------------ */

#ifdef MRL_TEST_HAVE_FORK
static int bad_case; /* which bad call the child makes (set before fork) */

static void bad_call(void) {
  static unsigned char buf[1 << 16];
  static float d[4096];
  static const int tg[4] = {0, 4, 1, 2};
  int s4[4] = {2, 3, 5, 5}, w4[4] = {4, 2, 3, 3}, s2[2] = {3, 4}, s2b[2] = {3, 5};
  int s5[1] = {5}, s3[3] = {2, 3, 4};
  mrl_tensor x = mrl_tensor_make(d, NULL, 4, s4), w = mrl_tensor_make(d, NULL, 4, w4);
  mrl_tensor a = mrl_tensor_make(d, NULL, 2, s2), bb = mrl_tensor_make(d, NULL, 2, s2b);
  mrl_tensor v5 = mrl_tensor_make(d, NULL, 1, s5), t3 = mrl_tensor_make(d, NULL, 3, s3);
  mrl_rng rng = mrl_rng_make(1);
  mrl_graph g;
  mrl_graph_init_buffer(&g, buf, sizeof buf);
  switch (bad_case) {
  case 0: (void)mrl_layernorm(&g, &a, &v5, NULL, 1e-5f); break;
  case 1: (void)mrl_conv2d(&g, &x, &w, NULL, 1, 0); break;
  case 2: (void)mrl_max_pool2d(&g, &t3, 2, 2, 0); break;
  case 3: (void)mrl_avg_pool2d(&g, &x, 3, 1, 2); break;
  case 4: (void)mrl_dropout(&g, &a, 1.5f, &rng, 1); break;
  case 5: (void)mrl_mse_loss(&g, &a, &bb, MRL_LOSS_MEAN); break;
  case 6: (void)mrl_huber_loss(&g, &a, &bb, 1.0f, MRL_LOSS_MEAN); break;
  case 7: (void)mrl_smooth_l1_loss(&g, &a, &bb, 1.0f, MRL_LOSS_MEAN); break;
  case 8: (void)mrl_bce_with_logits(&g, &a, &bb, MRL_LOSS_MEAN); break;
  case 9: (void)mrl_kl_normal(&g, &a, &a, &bb, &bb, MRL_LOSS_MEAN); break;
  case 10: (void)mrl_kl_categorical(&g, &a, &bb, MRL_LOSS_MEAN); break;
  case 11: (void)mrl_cosine_similarity(&g, &a, &bb, 1e-8f); break;
  case 12: (void)mrl_sq_distances(&g, &a, &bb); break;
  case 13: (void)mrl_straight_through(&g, &a, &bb); break;
  case 14: (void)mrl_cross_entropy(&g, &a, tg, MRL_LOSS_MEAN); break; /* target 4 >= 4 classes */
  case 15: (void)mrl_conv2d(&g, &x, &a, NULL, 1, 0); break;
  }
}

static void expect_failure(int which, const char *op, const char *shape_a, const char *shape_b) {
  char msg[4096];
  int status;
  bad_case = which;
  status = mrl_test_run_captured(bad_call, msg, sizeof msg);
  MRL_CHECK(status != -1, "%s: could not fork", op);
  if (status == -1) return;
  MRL_CHECK(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0),
            "%s: the process did not stop", op);
  MRL_CHECK(strstr(msg, op) != NULL, "%s: message does not name the op: \"%s\"", op, msg);
  MRL_CHECK(strstr(msg, shape_a) != NULL, "%s: message lacks %s: \"%s\"", op, shape_a, msg);
  if (shape_b)
    MRL_CHECK(strstr(msg, shape_b) != NULL, "%s: message lacks %s: \"%s\"", op, shape_b, msg);
}

static void test_shape_errors(void) {
  expect_failure(0, "layernorm", "[3,4]", "[5]");
  expect_failure(1, "conv2d", "[2,3,5,5]", "[4,2,3,3]");
  expect_failure(2, "max_pool2d", "[2,3,4]", NULL);
  expect_failure(3, "avg_pool2d", "[2,3,5,5]", "padding 2");
  expect_failure(4, "dropout", "[3,4]", "p must lie in [0, 1]");
  expect_failure(5, "mse_loss", "[3,4]", "[3,5]");
  expect_failure(6, "huber_loss", "[3,4]", "[3,5]");
  expect_failure(7, "smooth_l1_loss", "[3,4]", "[3,5]");
  expect_failure(8, "bce_with_logits", "[3,4]", "[3,5]");
  expect_failure(9, "kl_normal", "[3,4]", "[3,5]");
  expect_failure(10, "kl_categorical", "[3,4]", "[3,5]");
  expect_failure(11, "cosine_similarity", "[3,4]", "[3,5]");
  expect_failure(12, "sq_distances", "[3,4]", "[3,5]");
  expect_failure(13, "straight_through", "[3,4]", "[3,5]");
  expect_failure(14, "cross_entropy", "[3,4]", "target 4");
  expect_failure(15, "conv2d", "[2,3,5,5]", "[3,4]");
}
#else
static void test_shape_errors(void) {
  printf("shape-error tests skipped: no fork()\n");
}
#endif

/* mrl_attention against PyTorch (tests/ref/attention_fused.txt). */
static void test_attention_reference(void) {
  static const char *pre[2] = {"at_", "at2_"};
  mrl_ref_file f;
  mrl_graph g;
  int r;
  if (!mrl_ref_open(&f, "tests/ref/attention_fused.txt")) return;
  mrl_graph_init(&g, 1 << 16);
  for (r = 0; r < 2; r++) {
    char nm[9][16];
    static const char *suf[9] = {"q", "k", "v", "mask", "gy", "bias", "y", "dq", "dk"};
    mrl_tensor t[6], *y;
    int i, have = 1;
    for (i = 0; i < 9; i++) snprintf(nm[i], sizeof nm[i], "%s%s", pre[r], suf[i]);
    for (i = 0; i < 6; i++) {
      memset(&t[i], 0, sizeof t[i]);
      if (i == 5 && r == 1) continue; /* at2_ has no bias */
      t[i] = ref_tensor(&f, nm[i]);
      have &= t[i].data != NULL;
    }
    if (have) {
      y = mrl_attention(&g, &t[0], &t[1], &t[2], 2, 0.6f, r == 0 ? &t[5] : NULL, &t[3]);
      expect_tensor(&f, nm[6], y);
      MRL_CHECK(backward_weighted(&g, y, &t[4]), "attention: backward failed");
      expect_grad(&f, nm[7], &t[0]);
      expect_grad(&f, nm[8], &t[1]);
      snprintf(nm[0], sizeof nm[0], "%sdv", pre[r]);
      expect_grad(&f, nm[0], &t[2]);
      if (r == 0) {
        snprintf(nm[0], sizeof nm[0], "%sdbias", pre[r]);
        expect_grad(&f, nm[0], &t[5]);
      }
      /* the row that keeps nothing: exactly 0 */
      if (r == 0 && y)
        for (i = 0; i < 8; i++)
          MRL_CHECK(y->data[3 * 8 + i] == 0.0f, "attention: empty row gives %g", y->data[24 + i]);
    }
    for (i = 0; i < 6; i++) tensor_drop(&t[i]);
    mrl_graph_reset(&g);
  }
  mrl_graph_free(&g);
  mrl_ref_close(&f);
}

int main(void) {
  test_gradcheck();
  test_reference();
  test_attention_reference();
  test_conv_direct();
  test_conv_determinism();
  test_pool_values();
  test_dropout();
  test_loss_values();
  test_memory_values();
  test_straight_through();
  test_no_grad_and_oom();
  test_shape_errors();
  return mrl_test_summary("test_tensor_fused");
}
