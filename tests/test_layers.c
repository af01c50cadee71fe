/* Tests for the layers of memrl_nn.h built from memrl_tensor.h's ops:
 * embedding, layernorm layer, conv2d layer, conv encoders (a small
 * configurable stack and the Nature-DQN stack) and the VAE. Values and
 * gradients are compared with PyTorch (tests/ref/layers.txt, written by
 * tools/make_ref.py), every layer's gradient with central finite differences,
 * the default initialisations with PyTorch's distributions, and the VAE
 * trains on a tiny seeded data set.
 *
 * Run from the repository root:
 *   cc -std=c99 -O2 tests/test_layers.c -lm && ./a.out */
#include <stdlib.h>
/* A counting allocator: acting must not touch the heap once warmed up. */
static long heap_calls;
static void *count_malloc(size_t n) {
  heap_calls++;
  return malloc(n);
}
static void *count_realloc(void *p, size_t n) {
  heap_calls++;
  return realloc(p, n);
}
#define MRL_MALLOC(sz) count_malloc(sz)
#define MRL_REALLOC(p, sz) count_realloc(p, sz)
#define MRL_FREE(p) free(p)
#define MEMRL_IMPLEMENTATION
#include "../memrl_nn.h"
#include "test.h"
#include "ref_loader.h"

/* Gradient checks as in tests/test_nn.c: float32 central differences,
 * eps 1e-2, each element within 1e-3 + 1e-2 |numeric|. */
#define GC_EPS 1e-2f
#define GC_ATOL 1e-3
#define GC_RTOL 1e-2
/* PyTorch fixtures: float32 on both sides, different summation orders. */
#define REF_ATOL 1e-5
#define REF_RTOL 1e-4

static void fill_uniform(float *d, int n, mrl_rng *rng, float lo, float hi) {
  int i;
  for (i = 0; i < n; i++) d[i] = mrl_rng_uniform_range(rng, lo, hi);
}

/* Loads every tensor of p from the fixture line <prefix><name without
 * its first component> ("cnn.0.weight" -> "cnn_0.weight"). */
static int load_params(const mrl_ref_file *f, mrl_params *p, const char *prefix) {
  int i, ok = 1;
  char buf[128];
  for (i = 0; i < p->count; i++) {
    const char *dot = strchr(p->items[i].name, '.');
    snprintf(buf, sizeof buf, "%s%s", prefix, dot ? dot + 1 : p->items[i].name);
    ok = mrl_ref_fill(f, buf, p->items[i].tensor.data, p->items[i].tensor.size) && ok;
  }
  return ok;
}

/* Compares every gradient of p with <prefix><name without its first component>. */
static void expect_param_grads(const mrl_ref_file *f, mrl_params *p, const char *prefix) {
  int i;
  char buf[128];
  for (i = 0; i < p->count; i++) {
    const char *dot = strchr(p->items[i].name, '.');
    snprintf(buf, sizeof buf, "%s%s", prefix, dot ? dot + 1 : p->items[i].name);
    mrl_ref_expect(f, buf, p->items[i].tensor.grad, p->items[i].tensor.size, REF_ATOL, REF_RTOL);
  }
}

/* sum(y * gy) with gy a constant of y's shape. */
static mrl_tensor *dot_loss(mrl_graph *g, mrl_tensor *y, const float *gy) {
  if (!y) return NULL;
  return mrl_sum(g, mrl_mul(g, y, mrl_tensor_from(g, gy, y->ndim, y->shape)));
}

static void moments(const float *d, int n, double *mean, double *sd, float *lo, float *hi) {
  double s = 0.0, s2 = 0.0;
  int i;
  *lo = *hi = d[0];
  for (i = 0; i < n; i++) {
    s += d[i];
    s2 += (double)d[i] * d[i];
    if (d[i] < *lo) *lo = d[i];
    if (d[i] > *hi) *hi = d[i];
  }
  *mean = s / n;
  *sd = sqrt(s2 / n - *mean * *mean);
}

/* ------------------------------------------------------------------------ */
/* Embedding                                                                */
/* ------------------------------------------------------------------------ */

typedef struct emb_ctx {
  const mrl_embedding *e;
  const int *ids;
  int n;
  const float *gy;
} emb_ctx;

static mrl_tensor *emb_build(mrl_graph *g, mrl_tensor **in, void *vctx) {
  emb_ctx *c = (emb_ctx *)vctx;
  (void)in;
  return dot_loss(g, mrl_embedding_forward(c->e, g, c->ids, c->n), c->gy);
}

static void test_embedding(const mrl_ref_file *f) {
  mrl_params p, pb;
  mrl_embedding e, big;
  mrl_graph g;
  mrl_tensor *w, *y, *in[1];
  float idsf[6], gy[24];
  int ids[6], i;
  double mean, sd, worst;
  float lo, hi;
  emb_ctx ctx;
  mrl_params_init(&p);
  mrl_embedding_init(&e, &p, "emb", 10, 4, mrl_init_default());
  MRL_CHECK(mrl_params_finalize(&p, 5) == MRL_OK, "embedding: finalize");
  mrl_params_init(&pb);
  mrl_embedding_init(&big, &pb, "big", 200, 50, mrl_init_default());
  mrl_params_finalize(&pb, 6);
  w = mrl_params_tensor(&p, e.weight);
  MRL_CHECK(strcmp(p.items[e.weight].name, "emb.weight") == 0 && w->ndim == 2 &&
                w->shape[0] == 10 && w->shape[1] == 4,
            "embedding: emb.weight [10,4] as torch.nn.Embedding(10, 4)");
  /* torch's default N(0, 1): 10000 draws */
  moments(mrl_params_tensor(&pb, big.weight)->data, 10000, &mean, &sd, &lo, &hi);
  mrl_params_free(&pb);
  MRL_CHECK(fabs(mean) < 0.05 && fabs(sd - 1.0) < 0.05,
            "embedding: default init should be N(0,1), got mean %.3f sd %.3f", mean, sd);

  if (load_params(f, &p, "emb_") && mrl_ref_fill(f, "emb_ids", idsf, 6) &&
      mrl_ref_fill(f, "emb_gy", gy, 24)) {
    for (i = 0; i < 6; i++) ids[i] = (int)idsf[i];
    mrl_params_zero_grad(&p);
    mrl_graph_init(&g, 1 << 16);
    y = mrl_embedding_forward(&e, &g, ids, 6);
    MRL_CHECK(y && y->ndim == 2 && y->shape[0] == 6 && y->shape[1] == 4, "embedding: y [6,4]");
    if (y) {
      mrl_ref_expect(f, "emb_y", y->data, y->size, REF_ATOL, REF_RTOL);
      mrl_backward(&g, dot_loss(&g, y, gy));
      /* id 3 is used three times: its row's gradient accumulates */
      mrl_ref_expect(f, "emb_grad_weight", w->grad, w->size, REF_ATOL, REF_RTOL);
    }
    ctx.e = &e;
    ctx.ids = ids;
    ctx.n = 6;
    ctx.gy = gy;
    in[0] = w;
    worst = mrl_gradcheck(&g, emb_build, in, 1, &ctx, GC_EPS, GC_ATOL, GC_RTOL);
    MRL_CHECK(worst <= 1.0, "gradcheck embedding: ratio %.3g", worst);
    mrl_graph_free(&g);
  }
  mrl_params_free(&p);
}

/* ------------------------------------------------------------------------ */
/* LayerNorm layer                                                          */
/* ------------------------------------------------------------------------ */

typedef struct ln_ctx {
  const mrl_layernorm_layer *l;
  const float *gy;
} ln_ctx;

static mrl_tensor *ln_build(mrl_graph *g, mrl_tensor **in, void *vctx) {
  ln_ctx *c = (ln_ctx *)vctx;
  return dot_loss(g, mrl_layernorm_layer_forward(c->l, g, in[0]), c->gy);
}

static void test_layernorm_layer(const mrl_ref_file *f) {
  mrl_params p, q;
  mrl_layernorm_layer l, plain;
  mrl_graph g;
  mrl_tensor *w, *b, *y, *in[3];
  float xd[30], xg[30], gy[30];
  int shape[3] = {2, 3, 5}, i, ones = 1;
  double worst;
  ln_ctx ctx;
  mrl_tensor x = mrl_tensor_make(xd, xg, 3, shape);
  mrl_params_init(&p);
  mrl_layernorm_layer_init(&l, &p, "ln", 5, 1e-5f, 1);
  MRL_CHECK(mrl_params_finalize(&p, 1) == MRL_OK, "layernorm: finalize");
  w = mrl_params_tensor(&p, l.weight);
  b = mrl_params_tensor(&p, l.bias);
  for (i = 0; i < 5; i++) ones = ones && w->data[i] == 1.0f && b->data[i] == 0.0f;
  MRL_CHECK(ones && strcmp(p.items[l.weight].name, "ln.weight") == 0 &&
                strcmp(p.items[l.bias].name, "ln.bias") == 0 && p.count == 2,
            "layernorm: ln.weight ones, ln.bias zeros as torch.nn.LayerNorm(5)");
  mrl_params_init(&q);
  mrl_layernorm_layer_init(&plain, &q, "ln", 5, 1e-5f, 0);
  MRL_CHECK(q.count == 0 && plain.weight == -1 && plain.bias == -1,
            "layernorm: elementwise_affine 0 declares nothing");
  mrl_params_free(&q);

  if (load_params(f, &p, "ln_") && mrl_ref_fill(f, "ln_x", xd, 30) &&
      mrl_ref_fill(f, "ln_gy", gy, 30)) {
    memset(xg, 0, sizeof xg);
    mrl_params_zero_grad(&p);
    mrl_graph_init(&g, 1 << 16);
    y = mrl_layernorm_layer_forward(&l, &g, &x);
    MRL_CHECK(y && y->ndim == 3 && y->shape[2] == 5, "layernorm: y keeps x's shape");
    if (y) {
      mrl_ref_expect(f, "ln_y", y->data, y->size, REF_ATOL, REF_RTOL);
      mrl_backward(&g, dot_loss(&g, y, gy));
      mrl_ref_expect(f, "ln_dx", xg, 30, REF_ATOL, REF_RTOL);
      expect_param_grads(f, &p, "ln_grad_");
    }
    ctx.l = &l;
    ctx.gy = gy;
    in[0] = &x;
    in[1] = w;
    in[2] = b;
    worst = mrl_gradcheck(&g, ln_build, in, 3, &ctx, GC_EPS, GC_ATOL, GC_RTOL);
    MRL_CHECK(worst <= 1.0, "gradcheck layernorm layer: ratio %.3g", worst);
    mrl_graph_free(&g);
  }
  mrl_params_free(&p);
}

/* ------------------------------------------------------------------------ */
/* Conv2d layer and encoders                                                */
/* ------------------------------------------------------------------------ */

static void test_conv2d_layer_init(void) {
  mrl_params p;
  mrl_conv2d_layer l, o;
  mrl_tensor *w, *b;
  double mean, sd, bound = 1.0 / sqrt(16.0 * 5 * 5);
  float lo, hi;
  int i, zero = 1;
  mrl_params_init(&p);
  mrl_conv2d_layer_init(&l, &p, "conv", 16, 64, 5, 2, 1, mrl_init_default());
  mrl_conv2d_layer_init(&o, &p, "orth", 16, 8, 3, 1, 0, mrl_init_orthogonal(sqrtf(2.0f)));
  MRL_CHECK(mrl_params_finalize(&p, 9) == MRL_OK, "conv2d layer: finalize");
  w = mrl_params_tensor(&p, l.weight);
  b = mrl_params_tensor(&p, l.bias);
  MRL_CHECK(w->ndim == 4 && w->shape[0] == 64 && w->shape[1] == 16 && w->shape[2] == 5 &&
                w->shape[3] == 5 && b->ndim == 1 && b->size == 64 &&
                strcmp(p.items[l.weight].name, "conv.weight") == 0 &&
                strcmp(p.items[l.bias].name, "conv.bias") == 0,
            "conv2d layer: conv.weight [64,16,5,5], conv.bias [64] as torch.nn.Conv2d");
  /* kaiming_uniform(a = sqrt 5) = U(+-1/sqrt(fan_in)): sd bound / sqrt 3 */
  moments(w->data, w->size, &mean, &sd, &lo, &hi);
  MRL_CHECK(lo >= -bound && hi <= bound && hi > 0.98 * bound && lo < -0.98 * bound,
            "conv2d default weight: range [%g, %g], want +-%g", lo, hi, bound);
  MRL_CHECK(fabs(mean) < 0.02 * bound && fabs(sd / (bound / sqrt(3.0)) - 1.0) < 0.02,
            "conv2d default weight: mean %g sd %g, want 0 and %g", mean, sd, bound / sqrt(3.0));
  moments(b->data, b->size, &mean, &sd, &lo, &hi);
  MRL_CHECK(lo >= -bound && hi <= bound && sd > 0.3 * bound,
            "conv2d default bias: U(+-1/sqrt(fan_in)), got [%g, %g]", lo, hi);
  /* orthogonal on the [out, in k k] flattening, zero bias */
  w = mrl_params_tensor(&p, o.weight);
  {
    double worst = 0.0;
    int r, s, k;
    for (r = 0; r < 8; r++)
      for (s = 0; s < 8; s++) {
        double dot = 0.0;
        for (k = 0; k < 144; k++) dot += (double)w->data[r * 144 + k] * w->data[s * 144 + k];
        dot -= r == s ? 2.0 : 0.0;
        if (fabs(dot) > worst) worst = fabs(dot);
      }
    MRL_CHECK(worst < 1e-4, "conv2d orthogonal(sqrt 2): W W^T - 2 I off by %g", worst);
  }
  for (i = 0; i < 8; i++) zero = zero && mrl_params_tensor(&p, o.bias)->data[i] == 0.0f;
  MRL_CHECK(zero, "conv2d orthogonal init: bias zeros");
  MRL_CHECK(mrl_conv2d_out_size(84, 8, 4, 0) == 20 && mrl_conv2d_out_size(20, 4, 2, 0) == 9 &&
                mrl_conv2d_out_size(9, 3, 1, 0) == 7 && mrl_conv2d_out_size(11, 3, 2, 1) == 6 &&
                mrl_conv2d_out_size(2, 5, 1, 1) == 0 && mrl_conv2d_out_size(7, 7, 1, 0) == 1,
            "mrl_conv2d_out_size: torch's floor((in + 2p - k) / s) + 1");
  mrl_params_free(&p);
}

static void test_nature_shapes(void) {
  static const char *names[8] = {"network.0.weight", "network.0.bias",   "network.2.weight",
                                 "network.2.bias",   "network.4.weight", "network.4.bias",
                                 "network.7.weight", "network.7.bias"};
  static const int sizes[8] = {32 * 4 * 8 * 8,  32, 64 * 32 * 4 * 4, 64,
                               64 * 64 * 3 * 3, 64, 512 * 3136,      512};
  mrl_conv_encoder_config cfg = mrl_conv_encoder_config_default();
  mrl_conv_encoder e;
  mrl_params p;
  mrl_graph g;
  mrl_tensor *x, *y;
  int i, ok = 1, before;
  mrl_params_init(&p);
  MRL_CHECK(mrl_conv_encoder_init(&e, &p, "network", &cfg) == MRL_OK, "nature: init");
  MRL_CHECK(e.conv_channels == 64 && e.conv_height == 7 && e.conv_width == 7 &&
                e.flat_features == 3136 && e.out_features == 512,
            "nature: 84x84 -> 20 -> 9 -> 7, 3136 features, 512 out; got %dx%dx%d, %d, %d",
            e.conv_channels, e.conv_height, e.conv_width, e.flat_features, e.out_features);
  MRL_CHECK(p.count == 8, "nature: 8 tensors, got %d", p.count);
  for (i = 0; i < 8 && i < p.count; i++)
    ok = ok && strcmp(p.items[i].name, names[i]) == 0 && p.items[i].tensor.size == sizes[i];
  MRL_CHECK(ok, "nature: names and sizes of CleanRL's network.0/2/4/7");
  MRL_CHECK(mrl_params_finalize(&p, 3) == MRL_OK, "nature: finalize");
  /* two flat observations of 4x84x84 (a flat env observation is accepted) */
  mrl_graph_init(&g, 1 << 22);
  mrl_graph_set_no_grad(&g, 1);
  x = mrl_tensor_new2(&g, 2, 4 * 84 * 84, 0);
  if (x) {
    mrl_rng rng = mrl_rng_make(4);
    fill_uniform(x->data, x->size, &rng, 0.0f, 1.0f);
  }
  y = mrl_conv_encoder_forward(&e, &g, x);
  MRL_CHECK(y && y->ndim == 2 && y->shape[0] == 2 && y->shape[1] == 512,
            "nature: forward gives [2,512]");
  mrl_graph_free(&g);
  /* configs that do not fit declare nothing */
  before = p.count;
  cfg.in_height = cfg.in_width = 30; /* 30 -> 6 -> 2 -> 0 */
  MRL_CHECK(mrl_conv_encoder_init(&e, &p, "bad", &cfg) == MRL_ERR_INVALID_ARGUMENT,
            "conv encoder: 30x30 input is too small for the Nature stack");
  cfg = mrl_conv_encoder_config_default();
  cfg.num_layers = MRL_CONV_MAX_LAYERS + 1;
  MRL_CHECK(mrl_conv_encoder_init(&e, &p, "bad", &cfg) == MRL_ERR_INVALID_ARGUMENT,
            "conv encoder: too many layers");
  cfg = mrl_conv_encoder_config_default();
  cfg.strides[1] = 0;
  MRL_CHECK(mrl_conv_encoder_init(&e, &p, "bad", &cfg) == MRL_ERR_INVALID_ARGUMENT,
            "conv encoder: stride 0");
  MRL_CHECK(p.count == before, "conv encoder: a rejected config declares nothing");
  mrl_params_free(&p);
}

/* Acting with the Nature encoder and sampling from the World Models VAE
 * (no-grad, graph rewound each step) allocate nothing once the arena has
 * reached its size (after the first step and the reset that follows it). */
static void test_no_heap_when_acting(void) {
  mrl_conv_encoder_config cfg = mrl_conv_encoder_config_default();
  mrl_vae_config vcfg = mrl_vae_config_world_models();
  mrl_conv_encoder e;
  mrl_vae v;
  mrl_params p;
  mrl_graph g;
  mrl_rng rng = mrl_rng_make(3);
  static float obs[4 * 84 * 84];
  int step, shape[4] = {1, 4, 84, 84}, ok = 1;
  long before = 0;
  mrl_params_init(&p);
  mrl_conv_encoder_init(&e, &p, "network", &cfg);
  mrl_vae_init(&v, &p, "wm", &vcfg);
  mrl_params_finalize(&p, 1);
  fill_uniform(obs, 4 * 84 * 84, &rng, 0.0f, 1.0f);
  mrl_graph_init(&g, 1 << 16); /* too small on purpose: the first step grows it */
  mrl_graph_set_no_grad(&g, 1);
  for (step = 0; step < 5; step++) { /* step 1's reset folds the grown arena into one block */
    mrl_tensor *y, *frame;
    mrl_vae_output o;
    int fshape[4] = {1, 3, 64, 64};
    if (step == 2) before = heap_calls;
    mrl_graph_reset(&g);
    y = mrl_conv_encoder_forward(&e, &g, mrl_tensor_from(&g, obs, 4, shape));
    frame = mrl_tensor_from(&g, obs, 4, fshape);
    o = mrl_vae_forward(&v, &g, frame, NULL, &rng);
    ok = ok && y && o.z && o.recon;
  }
  MRL_CHECK(ok && heap_calls == before,
            "acting (Nature encoder + World Models VAE, no-grad): %ld heap calls after warm-up",
            heap_calls - before);
  mrl_graph_free(&g);
  mrl_params_free(&p);
}

/* The small stack of the fixture: [2,3,11,13], conv 4 k3 s2 p1, ReLU, conv 6
 * k3 s1 p0, ReLU, flatten (6x4x5), linear 16, ReLU. */
static mrl_conv_encoder_config small_config(mrl_activation act) {
  mrl_conv_encoder_config c;
  memset(&c, 0, sizeof c);
  c.in_channels = 3;
  c.in_height = 11;
  c.in_width = 13;
  c.num_layers = 2;
  c.channels[0] = 4;
  c.kernels[0] = 3;
  c.strides[0] = 2;
  c.paddings[0] = 1;
  c.channels[1] = 6;
  c.kernels[1] = 3;
  c.strides[1] = 1;
  c.paddings[1] = 0;
  c.activation = act;
  c.linear_out = 16;
  c.activate_linear = 1;
  c.init = mrl_init_default();
  return c;
}

static void test_conv_encoder_reference(const mrl_ref_file *f) {
  static const char *names[6] = {"cnn.0.weight", "cnn.0.bias",   "cnn.2.weight",
                                 "cnn.2.bias",   "cnn.5.weight", "cnn.5.bias"};
  mrl_conv_encoder_config cfg = small_config(MRL_ACT_RELU);
  mrl_conv_encoder e;
  mrl_params p;
  mrl_graph g;
  mrl_tensor *y;
  float xd[2 * 3 * 11 * 13], xg[2 * 3 * 11 * 13], gy[32];
  int shape[4] = {2, 3, 11, 13}, i, ok = 1;
  mrl_tensor x = mrl_tensor_make(xd, xg, 4, shape);
  mrl_params_init(&p);
  MRL_CHECK(mrl_conv_encoder_init(&e, &p, "cnn", &cfg) == MRL_OK, "small encoder: init");
  MRL_CHECK(e.conv_height == 4 && e.conv_width == 5 && e.flat_features == 120 &&
                e.out_features == 16,
            "small encoder: 11x13 -> 6x7 -> 4x5, 120 features");
  for (i = 0; i < 6 && i < p.count; i++) ok = ok && strcmp(p.items[i].name, names[i]) == 0;
  MRL_CHECK(ok && p.count == 6, "small encoder: torch.nn.Sequential names cnn.0, cnn.2, cnn.5");
  mrl_params_finalize(&p, 1);
  if (load_params(f, &p, "cnn_") && mrl_ref_fill(f, "cnn_x", xd, x.size) &&
      mrl_ref_fill(f, "cnn_gy", gy, 32)) {
    memset(xg, 0, sizeof xg);
    mrl_params_zero_grad(&p);
    mrl_graph_init(&g, 1 << 18);
    y = mrl_conv_encoder_forward(&e, &g, &x);
    MRL_CHECK(y && y->shape[0] == 2 && y->shape[1] == 16, "small encoder: y [2,16]");
    if (y) {
      mrl_ref_expect(f, "cnn_y", y->data, y->size, REF_ATOL, REF_RTOL);
      mrl_backward(&g, dot_loss(&g, y, gy));
      mrl_ref_expect(f, "cnn_dx", xg, x.size, REF_ATOL, REF_RTOL);
      expect_param_grads(f, &p, "cnn_grad_");
    }
    mrl_graph_free(&g);
  }
  mrl_params_free(&p);
}

/* The fixture's stand-in weights (tools/make_ref.py's nature_formula):
 * tensor k, element i: bound sin(0.7 i + 1.3 k + 0.1), bound = 1/sqrt(fan_in)
 * of the layer's weight (size / shape[0], torch's fan_in for Conv2d, Linear
 * and ConvTranspose2d alike). */
static void formula_fill(mrl_params *p) {
  int k, i;
  for (k = 0; k < p->count; k++) {
    mrl_tensor *t = &p->items[k].tensor;
    /* fan_in of the layer's weight: the weight precedes its bias */
    const mrl_tensor *w = t->ndim == 1 ? &p->items[k - 1].tensor : t;
    double bound = 1.0 / sqrt((double)(w->size / w->shape[0]));
    for (i = 0; i < t->size; i++) t->data[i] = (float)(bound * sin(0.7 * i + 1.3 * k + 0.1));
  }
}

static void test_nature_reference(const mrl_ref_file *f) {
  mrl_conv_encoder_config cfg = mrl_conv_encoder_config_default();
  mrl_conv_encoder e;
  mrl_params p;
  mrl_graph g;
  mrl_tensor *y;
  static float xd[4 * 36 * 36], xg[4 * 36 * 36];
  float gy[512];
  int shape[4] = {1, 4, 36, 36}, i;
  mrl_tensor x = mrl_tensor_make(xd, xg, 4, shape);
  char buf[64];
  cfg.in_height = cfg.in_width = 36; /* 36 -> 8 -> 3 -> 1: 64 features */
  mrl_params_init(&p);
  MRL_CHECK(mrl_conv_encoder_init(&e, &p, "nat", &cfg) == MRL_OK && e.flat_features == 64,
            "nature 36x36: init");
  mrl_params_finalize(&p, 1);
  formula_fill(&p);
  for (i = 0; i < x.size; i++) xd[i] = (float)(0.5 + 0.5 * sin(0.37 * i));
  for (i = 0; i < 512; i++) gy[i] = (float)cos(0.11 * i);
  memset(xg, 0, sizeof xg);
  mrl_params_zero_grad(&p);
  mrl_graph_init(&g, 1 << 20);
  y = mrl_conv_encoder_forward(&e, &g, &x);
  MRL_CHECK(y && y->shape[1] == 512, "nature 36x36: y [1,512]");
  if (y) {
    mrl_ref_expect(f, "nat_y", y->data, y->size, REF_ATOL, REF_RTOL);
    mrl_backward(&g, dot_loss(&g, y, gy));
    mrl_ref_expect(f, "nat_dx", xg, x.size, REF_ATOL, REF_RTOL);
    for (i = 1; i < p.count; i += 2) {
      snprintf(buf, sizeof buf, "nat_grad_%s", strchr(p.items[i].name, '.') + 1);
      mrl_ref_expect(f, buf, p.items[i].tensor.grad, p.items[i].tensor.size, REF_ATOL, REF_RTOL);
    }
  }
  mrl_graph_free(&g);
  mrl_params_free(&p);
}

typedef struct enc_ctx {
  const mrl_conv_encoder *e;
  const float *gy;
} enc_ctx;

static mrl_tensor *enc_build(mrl_graph *g, mrl_tensor **in, void *vctx) {
  enc_ctx *c = (enc_ctx *)vctx;
  return dot_loss(g, mrl_conv_encoder_forward(c->e, g, in[0]), c->gy);
}

/* Finite differences through a tanh stack (smooth: no ReLU kinks), one
 * case with a final linear and 4-D input, one without and a flat input. */
static void test_conv_encoder_gradcheck(void) {
  mrl_conv_encoder_config cfg;
  mrl_conv_encoder e;
  mrl_params p;
  mrl_graph g;
  mrl_rng rng = mrl_rng_make(21);
  float xd[2 * 2 * 7 * 6], xg[2 * 2 * 7 * 6], gy[64];
  mrl_tensor *in[8];
  int shape[4] = {2, 2, 7, 6}, i, lin;
  double worst;
  enc_ctx ctx;
  for (lin = 1; lin >= 0; lin--) {
    memset(&cfg, 0, sizeof cfg);
    cfg.in_channels = 2;
    cfg.in_height = 7;
    cfg.in_width = 6;
    cfg.num_layers = 2;
    cfg.channels[0] = 3;
    cfg.kernels[0] = 3;
    cfg.strides[0] = 2;
    cfg.paddings[0] = 1;
    cfg.channels[1] = 2;
    cfg.kernels[1] = 2;
    cfg.strides[1] = 1;
    cfg.paddings[1] = 0;
    cfg.activation = MRL_ACT_TANH;
    cfg.linear_out = lin ? 5 : 0;
    cfg.activate_linear = 1;
    cfg.init = mrl_init_default();
    mrl_params_init(&p);
    MRL_CHECK(mrl_conv_encoder_init(&e, &p, "enc", &cfg) == MRL_OK, "gradcheck encoder: init");
    MRL_CHECK(e.out_features == (lin ? 5 : 2 * 3 * 2), "gradcheck encoder: out_features %d",
              e.out_features);
    MRL_CHECK(lin || (p.count == 4 && strcmp(p.items[2].name, "enc.2.weight") == 0),
              "encoder without linear: tensors enc.0, enc.2 only");
    mrl_params_finalize(&p, 2);
    fill_uniform(xd, 168, &rng, -1, 1);
    fill_uniform(gy, 64, &rng, -1, 1);
    {
      mrl_tensor x4 = mrl_tensor_make(xd, xg, 4, shape), x2 = mrl_tensor_make2(xd, xg, 2, 84);
      in[0] = lin ? &x4 : &x2;
      for (i = 0; i < p.count; i++) in[i + 1] = mrl_params_tensor(&p, i);
      ctx.e = &e;
      ctx.gy = gy;
      mrl_graph_init(&g, 1 << 16);
      worst = mrl_gradcheck(&g, enc_build, in, p.count + 1, &ctx, GC_EPS, GC_ATOL, GC_RTOL);
      MRL_CHECK(worst <= 1.0, "gradcheck conv encoder (%s): ratio %.3g",
                lin ? "linear, 4-D x" : "no linear, flat x", worst);
      mrl_graph_free(&g);
    }
    mrl_params_free(&p);
  }
}

/* ------------------------------------------------------------------------ */
/* VAE                                                                      */
/* ------------------------------------------------------------------------ */

static mrl_vae_config tiny_vae_config(mrl_vae_likelihood lik, float beta) {
  mrl_vae_config c = mrl_vae_config_default();
  c.input_dim = 6;
  c.latent_dim = 3;
  c.num_hidden = 1;
  c.hidden[0] = 8;
  c.activation = MRL_ACT_RELU;
  c.likelihood = lik;
  c.beta = beta;
  return c;
}

static void test_vae_reference(const mrl_ref_file *f) {
  static const char *names[10] = {
      "vae.encoder.0.weight", "vae.encoder.0.bias", "vae.fc_mu.weight",     "vae.fc_mu.bias",
      "vae.fc_logvar.weight", "vae.fc_logvar.bias", "vae.decoder.0.weight", "vae.decoder.0.bias",
      "vae.decoder.2.weight", "vae.decoder.2.bias"};
  float xd[24], xg[24], eps[12];
  mrl_tensor x = mrl_tensor_make2(xd, xg, 4, 6);
  int k, i, ok;
  for (k = 0; k < 2; k++) {
    const char *tag = k == 0 ? "b" : "g";
    mrl_vae_config cfg =
        tiny_vae_config(k == 0 ? MRL_VAE_BERNOULLI : MRL_VAE_GAUSSIAN, k == 0 ? 1.0f : 0.5f);
    mrl_vae v;
    mrl_params p;
    mrl_graph g;
    mrl_vae_output o;
    char buf[64];
    mrl_params_init(&p);
    MRL_CHECK(mrl_vae_init(&v, &p, "vae", &cfg) == MRL_OK, "vae: init");
    ok = p.count == 10;
    for (i = 0; i < 10 && i < p.count; i++) ok = ok && strcmp(p.items[i].name, names[i]) == 0;
    MRL_CHECK(ok, "vae: tensor names encoder.0, fc_mu, fc_logvar, decoder.0, decoder.2");
    mrl_params_finalize(&p, 1);
    if (!load_params(f, &p, "vae_") || !mrl_ref_fill(f, "vae_x", xd, 24) ||
        !mrl_ref_fill(f, "vae_eps", eps, 12)) {
      mrl_params_free(&p);
      continue;
    }
    memset(xg, 0, sizeof xg);
    mrl_params_zero_grad(&p);
    mrl_graph_init(&g, 1 << 16);
    o = mrl_vae_forward(&v, &g, &x, eps, NULL);
    MRL_CHECK(o.loss && o.z && o.recon, "vae: forward returned NULL");
    if (o.loss) {
#define VAE_EXPECT(field)                                                                          \
  snprintf(buf, sizeof buf, "vae_%s_%s", tag, #field);                                             \
  mrl_ref_expect(f, buf, o.field->data, o.field->size, REF_ATOL, REF_RTOL)
      VAE_EXPECT(mean);
      VAE_EXPECT(logvar);
      VAE_EXPECT(z);
      VAE_EXPECT(recon);
      VAE_EXPECT(recon_loss);
      VAE_EXPECT(kl);
      VAE_EXPECT(loss);
#undef VAE_EXPECT
      mrl_backward(&g, o.loss);
      snprintf(buf, sizeof buf, "vae_%s_dx", tag);
      mrl_ref_expect(f, buf, xg, 24, REF_ATOL, REF_RTOL);
      snprintf(buf, sizeof buf, "vae_%s_grad_", tag);
      expect_param_grads(f, &p, buf);
    }
    mrl_graph_free(&g);
    mrl_params_free(&p);
  }
}

typedef struct vae_ctx {
  const mrl_vae *v;
  const float *eps;
} vae_ctx;

static mrl_tensor *vae_build(mrl_graph *g, mrl_tensor **in, void *vctx) {
  vae_ctx *c = (vae_ctx *)vctx;
  return mrl_vae_forward(c->v, g, in[0], c->eps, NULL).loss;
}

/* Gradients of the whole loss (both likelihoods, beta 0.7), with tanh so the
 * finite differences see no kinks; an MLP and a conv encoder. */
static void test_vae_gradcheck(void) {
  mrl_rng rng = mrl_rng_make(8);
  float xd[3 * 2 * 5 * 5], xg[3 * 2 * 5 * 5], eps[3 * 3];
  mrl_tensor *in[32];
  int k, i;
  double worst;
  vae_ctx ctx;
  for (k = 0; k < 3; k++) {
    mrl_vae_config cfg = tiny_vae_config(k == 1 ? MRL_VAE_GAUSSIAN : MRL_VAE_BERNOULLI, 0.7f);
    mrl_vae v;
    mrl_params p;
    mrl_graph g;
    int shape[4] = {3, 2, 5, 5};
    mrl_tensor x = k < 2 ? mrl_tensor_make2(xd, xg, 3, 6) : mrl_tensor_make(xd, xg, 4, shape);
    cfg.activation = MRL_ACT_TANH;
    if (k == 2) { /* conv encoder [2,5,5] -> 3 ch 3x3 s2 p1 (3x3) -> linear 4; MLP decoder */
      memset(&cfg.conv, 0, sizeof cfg.conv);
      cfg.use_conv = 1;
      cfg.conv.in_channels = 2;
      cfg.conv.in_height = cfg.conv.in_width = 5;
      cfg.conv.num_layers = 1;
      cfg.conv.channels[0] = 3;
      cfg.conv.kernels[0] = 3;
      cfg.conv.strides[0] = 2;
      cfg.conv.paddings[0] = 1;
      cfg.conv.activation = MRL_ACT_TANH;
      cfg.conv.linear_out = 4;
      cfg.conv.activate_linear = 1;
      cfg.conv.init = mrl_init_default();
      cfg.hidden[0] = 5;
    }
    mrl_params_init(&p);
    MRL_CHECK(mrl_vae_init(&v, &p, "vae", &cfg) == MRL_OK && p.count < 31, "vae gradcheck: init");
    MRL_CHECK(k < 2 || (v.cfg.input_dim == 50 && v.feature_dim == 4 &&
                        mrl_params_find(&p, "vae.encoder.0.weight") >= 0 &&
                        mrl_params_find(&p, "vae.encoder.3.weight") >= 0),
              "vae conv encoder: input_dim 50, features 4, names vae.encoder.0 / .3");
    mrl_params_finalize(&p, 3 + (uint64_t)k);
    fill_uniform(xd, x.size, &rng, 0.0f, 1.0f);
    for (i = 0; i < 9; i++) eps[i] = mrl_rng_normal(&rng);
    in[0] = &x;
    for (i = 0; i < p.count; i++) in[i + 1] = mrl_params_tensor(&p, i);
    ctx.v = &v;
    ctx.eps = eps;
    mrl_graph_init(&g, 1 << 16);
    worst = mrl_gradcheck(&g, vae_build, in, p.count + 1, &ctx, GC_EPS, GC_ATOL, GC_RTOL);
    MRL_CHECK(worst <= 1.0, "gradcheck vae (%s): ratio %.3g",
              k == 0 ? "Bernoulli" : (k == 1 ? "Gaussian" : "conv encoder"), worst);
    mrl_graph_free(&g);
    mrl_params_free(&p);
  }
}

/* Sampling: eps from the rng (same seed, same draws, same z), and without
 * noise z = mean. */
static void test_vae_sampling(void) {
  mrl_vae_config cfg = tiny_vae_config(MRL_VAE_BERNOULLI, 1.0f);
  mrl_vae v;
  mrl_params p;
  mrl_graph g;
  mrl_rng r1 = mrl_rng_make(77), r2 = mrl_rng_make(77), r3 = mrl_rng_make(77);
  mrl_vae_output a, b, c;
  float xd[12], za[6];
  int i, same = 1, differs = 0, det = 1, follows = 1;
  mrl_tensor x = mrl_tensor_make2(xd, NULL, 2, 6);
  mrl_params_init(&p);
  mrl_vae_init(&v, &p, "vae", &cfg);
  mrl_params_finalize(&p, 5);
  fill_uniform(xd, 12, &r3, 0.0f, 1.0f);
  mrl_graph_init(&g, 1 << 16);
  a = mrl_vae_forward(&v, &g, &x, NULL, &r1);
  b = mrl_vae_forward(&v, &g, &x, NULL, &r2);
  c = mrl_vae_forward(&v, &g, &x, NULL, NULL);
  if (a.z && b.z && c.z) {
    mrl_rng r4 = mrl_rng_make(77);
    for (i = 0; i < 6; i++) {
      float e = mrl_rng_normal(&r4);
      float want = a.mean->data[i] + expf(0.5f * a.logvar->data[i]) * e;
      za[i] = a.z->data[i];
      same = same && a.z->data[i] == b.z->data[i];
      differs = differs || a.z->data[i] != a.mean->data[i];
      det = det && c.z->data[i] == c.mean->data[i];
      follows = follows && fabsf(want - za[i]) <= 1e-6f * (1.0f + fabsf(want));
    }
  }
  MRL_CHECK(same && differs, "vae: the same rng seed gives the same z, and z != mean");
  MRL_CHECK(follows, "vae: z = mean + exp(logvar/2) eps with eps the rng's row-major normals");
  MRL_CHECK(det && c.kl && c.loss, "vae: without eps or rng, z = mean");
  mrl_graph_free(&g);
  mrl_params_free(&p);
}

/* A tiny seeded training run: 64 binary vectors of 16 bits, noisy copies
 * (2% of bits flipped) of 4 prototypes; VAE 16-32-4 (ReLU, Bernoulli,
 * beta 1), Adam lr 1e-2, full batch, 300 steps. The negative ELBO starts
 * near 16 log 2 = 11.1 nats; the data's entropy bounds it below by about
 * 16 H(0.02) + log 4 = 3.0. It must fall by a factor of at least 2.5 (3.15
 * measured), with a KL that did not collapse. */
#define TRAIN_N 64
#define TRAIN_D 16
#define TRAIN_STEPS 300
static void test_vae_training(void) {
  mrl_vae_config cfg = mrl_vae_config_default();
  mrl_vae v;
  mrl_params p;
  mrl_graph g;
  mrl_rng data_rng = mrl_rng_make(123), noise = mrl_rng_make(456);
  mrl_adam_config adam = mrl_adam_config_default();
  static float xd[TRAIN_N * TRAIN_D];
  float proto[4][TRAIN_D], first = 0.0f, last = 0.0f, kl_last = 0.0f;
  int i, j, step, ok = 1;
  cfg.input_dim = TRAIN_D;
  cfg.hidden[0] = 32;
  cfg.latent_dim = 4;
  adam.lr = 1e-2f;
  for (i = 0; i < 4; i++)
    for (j = 0; j < TRAIN_D; j++) proto[i][j] = mrl_rng_uniform(&data_rng) < 0.5f ? 1.0f : 0.0f;
  for (i = 0; i < TRAIN_N; i++)
    for (j = 0; j < TRAIN_D; j++) {
      float bit = proto[i % 4][j];
      xd[i * TRAIN_D + j] = mrl_rng_uniform(&data_rng) < 0.02f ? 1.0f - bit : bit;
    }
  mrl_params_init(&p);
  MRL_CHECK(mrl_vae_init(&v, &p, "vae", &cfg) == MRL_OK, "vae training: init");
  mrl_params_finalize(&p, 11);
  mrl_graph_init(&g, 1 << 18);
  for (step = 0; step < TRAIN_STEPS && ok; step++) {
    mrl_tensor *x;
    mrl_vae_output o;
    mrl_graph_reset(&g);
    x = mrl_tensor_from2(&g, xd, TRAIN_N, TRAIN_D);
    o = mrl_vae_forward(&v, &g, x, NULL, &noise);
    ok = o.loss != NULL;
    if (!ok) break;
    if (step == 0) first = o.loss->data[0];
    if (step >= TRAIN_STEPS - 10) { /* average of the last 10 (sampled) losses */
      last += o.loss->data[0] / 10.0f;
      kl_last = o.kl->data[0];
    }
    mrl_params_zero_grad(&p);
    mrl_backward(&g, o.loss);
    mrl_adam_step(&p, &adam);
  }
  printf("vae training: negative ELBO %.3f -> %.3f (last-10 mean, KL %.3f), factor %.2f\n", first,
         last, kl_last, first / last);
  MRL_CHECK(ok && last * 2.5f < first && kl_last > 0.1f,
            "vae training: loss %.3f -> %.3f should fall 2.5x with KL > 0.1 (got %.3f)", first,
            last, kl_last);
  mrl_graph_free(&g);
  mrl_params_free(&p);
}

/* ------------------------------------------------------------------------ */
/* Transposed convolution and the deconv decoder                            */
/* ------------------------------------------------------------------------ */

static void test_conv_transpose_reference(const mrl_ref_file *f) {
  mrl_params p;
  mrl_conv_transpose2d_layer l;
  mrl_graph g;
  mrl_tensor *y, *w;
  float xd[120], xg[120], gy[2 * 4 * 8 * 10], wd[36], wg[36], gy2[2 * 2 * 5 * 7];
  int shape[4] = {2, 3, 4, 5}, wshape[4] = {3, 2, 2, 3};
  mrl_tensor x = mrl_tensor_make(xd, xg, 4, shape), w2 = mrl_tensor_make(wd, wg, 4, wshape);
  mrl_params_init(&p);
  mrl_conv_transpose2d_layer_init(&l, &p, "ct", 3, 4, 3, 2, 1, 1, mrl_init_default());
  mrl_params_finalize(&p, 1);
  w = mrl_params_tensor(&p, l.weight);
  MRL_CHECK(w->shape[0] == 3 && w->shape[1] == 4 && w->shape[2] == 3 &&
                strcmp(p.items[l.weight].name, "ct.weight") == 0 &&
                mrl_params_tensor(&p, l.bias)->size == 4,
            "conv_transpose2d layer: ct.weight [3,4,3,3] (in, out, k, k), ct.bias [4]");
  MRL_CHECK(mrl_conv_transpose2d_out_size(4, 3, 2, 1, 1) == 8 &&
                mrl_conv_transpose2d_out_size(5, 3, 2, 1, 1) == 10 &&
                mrl_conv_transpose2d_out_size(1, 5, 2, 0, 0) == 5 &&
                mrl_conv_transpose2d_out_size(30, 6, 2, 0, 0) == 64 &&
                mrl_conv_transpose2d_out_size(4, 3, 2, 1, 2) == 0 &&
                mrl_conv_transpose2d_out_size(1, 1, 1, 1, 0) == 0,
            "mrl_conv_transpose2d_out_size: (in - 1) s - 2 p + k + output_padding");
  if (load_params(f, &p, "ct_") && mrl_ref_fill(f, "ct_x", xd, 120) &&
      mrl_ref_fill(f, "ct_gy", gy, 640)) {
    memset(xg, 0, sizeof xg);
    mrl_params_zero_grad(&p);
    mrl_graph_init(&g, 1 << 16);
    y = mrl_conv_transpose2d_layer_forward(&l, &g, &x);
    MRL_CHECK(y && y->shape[1] == 4 && y->shape[2] == 8 && y->shape[3] == 10,
              "conv_transpose2d: y [2,4,8,10]");
    if (y) {
      mrl_ref_expect(f, "ct_y", y->data, y->size, REF_ATOL, REF_RTOL);
      mrl_backward(&g, dot_loss(&g, y, gy));
      mrl_ref_expect(f, "ct_dx", xg, 120, REF_ATOL, REF_RTOL);
      expect_param_grads(f, &p, "ct_grad_");
    }
    mrl_graph_free(&g);
  }
  /* non-square kernel, no bias, stride 1 */
  if (mrl_ref_fill(f, "ct2_x", xd, 120) && mrl_ref_fill(f, "ct2_w", wd, 36) &&
      mrl_ref_fill(f, "ct2_gy", gy2, 140)) {
    memset(xg, 0, sizeof xg);
    memset(wg, 0, sizeof wg);
    mrl_graph_init(&g, 1 << 16);
    y = mrl_conv_transpose2d(&g, &x, &w2, NULL, 1, 0, 0);
    MRL_CHECK(y && y->shape[1] == 2 && y->shape[2] == 5 && y->shape[3] == 7,
              "conv_transpose2d 2x3 kernel: y [2,2,5,7]");
    if (y) {
      mrl_ref_expect(f, "ct2_y", y->data, y->size, REF_ATOL, REF_RTOL);
      mrl_backward(&g, dot_loss(&g, y, gy2));
      mrl_ref_expect(f, "ct2_dx", xg, 120, REF_ATOL, REF_RTOL);
      mrl_ref_expect(f, "ct2_dw", wg, 36, REF_ATOL, REF_RTOL);
    }
    mrl_graph_free(&g);
  }
  mrl_params_free(&p);
}

typedef struct ct_ctx {
  const float *gy;
  int stride, pad, output_padding, bias;
} ct_ctx;

static mrl_tensor *ct_build(mrl_graph *g, mrl_tensor **in, void *vctx) {
  ct_ctx *c = (ct_ctx *)vctx;
  return dot_loss(g,
                  mrl_conv_transpose2d(g, in[0], in[1], c->bias ? in[2] : NULL, c->stride, c->pad,
                                       c->output_padding),
                  c->gy);
}

static void test_conv_transpose_gradcheck(void) {
  mrl_rng rng = mrl_rng_make(31);
  float xd[2 * 3 * 3 * 4], xg[2 * 3 * 3 * 4], wd[3 * 2 * 3 * 2], wg[3 * 2 * 3 * 2], bd[2], bg[2];
  float gy[2 * 2 * 12 * 12]; /* the largest case below is [2,2,9,11] */
  int xs[4] = {2, 3, 3, 4}, ws[4] = {3, 2, 3, 2}, two = 2, k;
  mrl_tensor x = mrl_tensor_make(xd, xg, 4, xs), w = mrl_tensor_make(wd, wg, 4, ws);
  mrl_tensor b = mrl_tensor_make(bd, bg, 1, &two), *in[3];
  mrl_graph g;
  double worst;
  ct_ctx ctx;
  fill_uniform(xd, 72, &rng, -1, 1);
  fill_uniform(wd, 36, &rng, -1, 1);
  fill_uniform(bd, 2, &rng, -1, 1);
  fill_uniform(gy, 576, &rng, -1, 1);
  in[0] = &x;
  in[1] = &w;
  in[2] = &b;
  ctx.gy = gy;
  mrl_graph_init(&g, 1 << 16);
  for (k = 0; k < 3; k++) { /* (stride, pad, output_padding, bias) cases */
    ctx.stride = k == 0 ? 1 : (k == 1 ? 2 : 3);
    ctx.pad = k == 0 ? 0 : 1;
    ctx.output_padding = k == 2 ? 2 : (k == 1 ? 1 : 0);
    ctx.bias = k != 0;
    worst = mrl_gradcheck(&g, ct_build, in, ctx.bias ? 3 : 2, &ctx, GC_EPS, GC_ATOL, GC_RTOL);
    MRL_CHECK(worst <= 1.0, "gradcheck conv_transpose2d stride %d pad %d output_padding %d: %.3g",
              ctx.stride, ctx.pad, ctx.output_padding, worst);
  }
  mrl_graph_free(&g);
}

/* Images are batched into one gemm in chunks of 512 / (H W): with 16x16
 * inputs a chunk holds 2 images, so a batch of 3 runs as 2 + 1. The batch
 * must equal the images run one by one, and its gradient must check. */
static void test_conv_transpose_chunks(void) {
  static float xd[3 * 256], xg[3 * 256], gy[3 * 2 * 18 * 18];
  float wd[18], wg[18], bd[2], bg[2];
  int xs[4] = {3, 1, 16, 16}, ws[4] = {1, 2, 3, 3}, one[4] = {1, 1, 16, 16}, two = 2, j, i;
  mrl_tensor x = mrl_tensor_make(xd, xg, 4, xs), w = mrl_tensor_make(wd, wg, 4, ws);
  mrl_tensor b = mrl_tensor_make(bd, bg, 1, &two), *in[3], *y, *yj;
  mrl_rng rng = mrl_rng_make(41);
  mrl_graph g;
  double worst = 0.0;
  ct_ctx ctx;
  fill_uniform(xd, 768, &rng, -1, 1);
  fill_uniform(wd, 18, &rng, -1, 1);
  fill_uniform(bd, 2, &rng, -1, 1);
  fill_uniform(gy, 1944, &rng, -1, 1);
  mrl_graph_init(&g, 1 << 18);
  y = mrl_conv_transpose2d(&g, &x, &w, &b, 1, 0, 0);
  for (j = 0; j < 3 && y; j++) {
    mrl_tensor xj = mrl_tensor_make(xd + 256 * j, NULL, 4, one);
    yj = mrl_conv_transpose2d(&g, &xj, &w, &b, 1, 0, 0);
    for (i = 0; yj && i < yj->size; i++) {
      double d = fabs((double)yj->data[i] - y->data[648 * j + i]);
      if (d > worst) worst = d;
    }
  }
  MRL_CHECK(y && worst < 1e-5, "conv_transpose2d: batch of 3 in chunks of 2 vs one by one: %g",
            worst);
  in[0] = &x;
  in[1] = &w;
  in[2] = &b;
  ctx.gy = gy;
  ctx.stride = 1;
  ctx.pad = 0;
  ctx.output_padding = 0;
  ctx.bias = 1;
  worst = mrl_gradcheck(&g, ct_build, in, 3, &ctx, GC_EPS, GC_ATOL, GC_RTOL);
  MRL_CHECK(worst <= 1.0, "gradcheck conv_transpose2d, chunks 2 + 1: ratio %.3g", worst);
  mrl_graph_free(&g);
}

static void test_deconv_decoder_reference(const mrl_ref_file *f) {
  static const char *names[6] = {"dec.0.weight", "dec.0.bias",   "dec.2.weight",
                                 "dec.2.bias",   "dec.4.weight", "dec.4.bias"};
  mrl_deconv_decoder_config cfg;
  mrl_deconv_decoder d;
  mrl_params p;
  mrl_graph g;
  mrl_tensor *y;
  float zd[10], zg[10], gy[400];
  mrl_tensor z = mrl_tensor_make2(zd, zg, 2, 5);
  int i, ok = 1;
  memset(&cfg, 0, sizeof cfg);
  cfg.in_features = 5;
  cfg.in_channels = 4;
  cfg.in_height = cfg.in_width = 2;
  cfg.num_layers = 2;
  cfg.channels[0] = 3;
  cfg.kernels[0] = 3;
  cfg.strides[0] = 2;
  cfg.channels[1] = 2;
  cfg.kernels[1] = 4;
  cfg.strides[1] = 2;
  cfg.paddings[1] = 1;
  cfg.activation = MRL_ACT_RELU;
  cfg.init = mrl_init_default();
  mrl_params_init(&p);
  MRL_CHECK(mrl_deconv_decoder_init(&d, &p, "dec", &cfg) == MRL_OK && d.out_channels == 2 &&
                d.out_height == 10 && d.out_width == 10 && d.out_features == 200,
            "deconv decoder: [4,2,2] -> 5x5 -> 10x10");
  for (i = 0; i < 6 && i < p.count; i++) ok = ok && strcmp(p.items[i].name, names[i]) == 0;
  MRL_CHECK(ok && p.count == 6, "deconv decoder: Sequential names dec.0, dec.2, dec.4");
  mrl_params_finalize(&p, 1);
  if (load_params(f, &p, "dec_") && mrl_ref_fill(f, "dec_z", zd, 10) &&
      mrl_ref_fill(f, "dec_gy", gy, 400)) {
    memset(zg, 0, sizeof zg);
    mrl_params_zero_grad(&p);
    mrl_graph_init(&g, 1 << 16);
    y = mrl_deconv_decoder_forward(&d, &g, &z);
    MRL_CHECK(y && y->ndim == 4 && y->shape[1] == 2 && y->shape[2] == 10,
              "deconv decoder: y [2,2,10,10]");
    if (y) {
      mrl_ref_expect(f, "dec_y", y->data, y->size, REF_ATOL, REF_RTOL);
      mrl_backward(&g, dot_loss(&g, y, gy));
      mrl_ref_expect(f, "dec_dz", zg, 10, REF_ATOL, REF_RTOL);
      expect_param_grads(f, &p, "dec_grad_");
    }
    mrl_graph_free(&g);
  }
  /* a config whose padding leaves nothing declares nothing */
  cfg.paddings[1] = 9;
  i = p.count;
  MRL_CHECK(mrl_deconv_decoder_init(&d, &p, "bad", &cfg) == MRL_ERR_INVALID_ARGUMENT &&
                p.count == i,
            "deconv decoder: an impossible config is rejected");
  mrl_params_free(&p);
}

/* The tiny VAE with World Models' loss form: Gaussian on sigmoid outputs and
 * a per-example KL floor (the fixture puts it between the examples' KLs). */
static void test_vae_free_nats_reference(const mrl_ref_file *f) {
  mrl_vae_config cfg = tiny_vae_config(MRL_VAE_GAUSSIAN, 1.0f);
  mrl_vae v;
  mrl_params p;
  mrl_graph g;
  mrl_vae_output o;
  float xd[24], xg[24], eps[12];
  mrl_tensor x = mrl_tensor_make2(xd, xg, 4, 6);
  cfg.sigmoid_output = 1;
  if (!mrl_ref_fill(f, "vae_f_floor", &cfg.kl_free_nats, 1)) return;
  mrl_params_init(&p);
  mrl_vae_init(&v, &p, "vae", &cfg);
  mrl_params_finalize(&p, 1);
  if (load_params(f, &p, "vae_") && mrl_ref_fill(f, "vae_x", xd, 24) &&
      mrl_ref_fill(f, "vae_eps", eps, 12)) {
    memset(xg, 0, sizeof xg);
    mrl_params_zero_grad(&p);
    mrl_graph_init(&g, 1 << 16);
    o = mrl_vae_forward(&v, &g, &x, eps, NULL);
    MRL_CHECK(o.loss != NULL, "vae free nats: forward");
    if (o.loss) {
      mrl_ref_expect(f, "vae_f_recon_loss", o.recon_loss->data, 1, REF_ATOL, REF_RTOL);
      mrl_ref_expect(f, "vae_f_kl", o.kl->data, 1, REF_ATOL, REF_RTOL);
      mrl_ref_expect(f, "vae_f_loss", o.loss->data, 1, REF_ATOL, REF_RTOL);
      mrl_backward(&g, o.loss);
      mrl_ref_expect(f, "vae_f_dx", xg, 24, REF_ATOL, REF_RTOL);
      expect_param_grads(f, &p, "vae_f_grad_");
    }
    mrl_graph_free(&g);
  }
  mrl_params_free(&p);
}

/* |got - want| <= 1e-4 max|want| + 1e-3 |want| for every element: for
 * gradients whose scale varies over orders of magnitude between layers. */
static void expect_scaled(const mrl_ref_file *f, const char *name, const float *got, int n) {
  float *want;
  double m = 0.0;
  int count = mrl_ref_get(f, name, &want, NULL, NULL), i;
  if (count < 0) return;
  for (i = 0; i < count; i++)
    if (fabs(want[i]) > m) m = fabs(want[i]);
  free(want);
  mrl_ref_expect(f, name, got, n, 1e-4 * m + 1e-30, 1e-3);
}

/* World Models' V: the paper's parameter count, names, and the whole loss
 * and every bias gradient against PyTorch on formula weights. */
static void test_world_models_vae(const mrl_ref_file *f) {
  mrl_vae_config cfg = mrl_vae_config_world_models();
  mrl_vae v;
  mrl_params p;
  mrl_graph g;
  mrl_vae_output o;
  mrl_tensor *x;
  float count, eps[64];
  size_t total = 0;
  int i, shape[4] = {2, 3, 64, 64};
  char buf[80];
  mrl_params_init(&p);
  MRL_CHECK(mrl_vae_init(&v, &p, "wm", &cfg) == MRL_OK, "world models vae: init");
  for (i = 0; i < p.count; i++) total += (size_t)p.items[i].tensor.size;
  MRL_CHECK(total == 4348547, "world models vae: %zu parameters, the paper's 4,348,547", total);
  if (mrl_ref_fill(f, "wm_param_count", &count, 1))
    MRL_CHECK((size_t)count == total, "world models vae: PyTorch counts %.0f", count);
  MRL_CHECK(mrl_params_find(&p, "wm.encoder.6.weight") >= 0 &&
                mrl_params_find(&p, "wm.decoder.0.weight") >= 0 &&
                mrl_params_find(&p, "wm.decoder.8.weight") >= 0 && v.feature_dim == 1024 &&
                v.decoder_deconv.out_height == 64,
            "world models vae: names encoder.0-6, decoder.0, .2-.8; 1024 features; 64x64 out");
  if (mrl_params_finalize(&p, 1) != MRL_OK) {
    mrl_params_free(&p);
    return;
  }
  formula_fill(&p);
  for (i = 0; i < 64; i++) eps[i] = (float)sin(1.7 * i);
  mrl_params_zero_grad(&p);
  mrl_graph_init(&g, 1 << 24);
  x = mrl_tensor_new(&g, 4, shape, 0);
  if (x)
    for (i = 0; i < x->size; i++) x->data[i] = (float)(0.5 + 0.5 * sin(0.37 * i));
  o = mrl_vae_forward(&v, &g, x, eps, NULL);
  MRL_CHECK(o.loss && o.recon && o.recon->ndim == 4 && o.recon->shape[1] == 3 &&
                o.recon->shape[3] == 64,
            "world models vae: recon [2,3,64,64]");
  if (o.loss) {
    mrl_ref_expect(f, "wm_mean", o.mean->data, 64, REF_ATOL, 1e-3);
    mrl_ref_expect(f, "wm_logvar", o.logvar->data, 64, REF_ATOL, 1e-3);
    mrl_ref_expect(f, "wm_recon_loss", o.recon_loss->data, 1, REF_ATOL, REF_RTOL);
    mrl_ref_expect(f, "wm_kl", o.kl->data, 1, REF_ATOL, REF_RTOL);
    mrl_ref_expect(f, "wm_loss", o.loss->data, 1, REF_ATOL, REF_RTOL);
    mrl_backward(&g, o.loss);
    for (i = 1; i < p.count; i += 2) {
      snprintf(buf, sizeof buf, "wm_grad_%s", strchr(p.items[i].name, '.') + 1);
      expect_scaled(f, buf, p.items[i].tensor.grad, p.items[i].tensor.size);
    }
  }
  mrl_graph_free(&g);
  mrl_params_free(&p);
}

int main(void) {
  mrl_ref_file f;
  int have = mrl_ref_open(&f, "tests/ref/layers.txt");
  if (have) {
    test_embedding(&f);
    test_layernorm_layer(&f);
    test_conv_encoder_reference(&f);
    test_nature_reference(&f);
    test_vae_reference(&f);
    test_vae_free_nats_reference(&f);
    test_conv_transpose_reference(&f);
    test_deconv_decoder_reference(&f);
    test_world_models_vae(&f);
    mrl_ref_close(&f);
  }
  test_conv2d_layer_init();
  test_nature_shapes();
  test_no_heap_when_acting();
  test_conv_encoder_gradcheck();
  test_conv_transpose_gradcheck();
  test_conv_transpose_chunks();
  test_vae_gradcheck();
  test_vae_sampling();
  test_vae_training();
  return mrl_test_summary("test_layers");
}
