/* Tests for memrl_nn.h against PyTorch fixtures (tests/ref/, written by
 * tools/make_ref.py): the LSTM, GRU, Elman and multi-layer stacks (rnn.txt),
 * Adam, SGD, AdamW, RMSProp and LR schedules (adam.txt, optim.txt), gradient
 * clipping (clip.txt), Xavier/Kaiming statistics (init.txt), distributions
 * (dist.txt) and heads (heads.txt); plus finite-difference gradient checks,
 * the parameter store's layout, the MLP, sampling statistics, Net2Net
 * function preservation and target-network updates.
 *
 * Run from the repository root:  cc -std=c99 -O2 tests/test_nn.c -lm && ./a.out */
#define _POSIX_C_SOURCE 200809L /* fork: the programmer-error tests */
#define MEMRL_IMPLEMENTATION
#include "../memrl_nn.h"
#include "test.h"
#include "ref_loader.h"

/* Gradient checks: central differences in float32 with eps = 1e-2, each
 * element within 1e-3 + 1e-2 * |numeric| (see tests/test_tensor.c for why). */
#define GC_EPS 1e-2f
#define GC_ATOL 1e-3
#define GC_RTOL 1e-2

/* Loss used by the gradient checks: sum over outputs of sum(out * R). */
#define MAX_R 256

static void fill_uniform(float *d, int n, mrl_rng *rng, float lo, float hi) {
  int i;
  for (i = 0; i < n; i++) d[i] = mrl_rng_uniform_range(rng, lo, hi);
}

static mrl_tensor *weighted_sum(mrl_graph *g, mrl_tensor *y, const float *r) {
  if (!y) return NULL;
  MRL_ASSERT(y->size <= MAX_R);
  return mrl_sum(g, mrl_mul(g, y, mrl_tensor_from(g, r, y->ndim, y->shape)));
}

/* ------------------------------------------------------------------------ */
/* LSTM against torch.nn.LSTM                                               */
/* ------------------------------------------------------------------------ */

/* LSTM fixture tolerances (float32 on both sides). */
#define LSTM_ATOL 1e-5
#define LSTM_RTOL 1e-4

static void lstm_reference_case(const mrl_ref_file *f, int masked) {
  const char *pre = masked ? "mask_" : "";
  char name[64];
  float xd[30], xg[30], h0d[8], h0g[8], c0d[8], c0g[8], gy[40], gh[8], gc[8], keep[10], start[10];
  mrl_tensor x = mrl_tensor_make2(xd, xg, 10, 3), h0 = mrl_tensor_make2(h0d, h0g, 2, 4);
  mrl_tensor c0 = mrl_tensor_make2(c0d, c0g, 2, 4);
  mrl_tensor *w_ih, *w_hh, *b_ih, *b_hh, *y, *hT = NULL, *cT = NULL, *loss;
  mrl_params p;
  mrl_lstm_layer l;
  mrl_graph g;
  int ok, i;
  mrl_params_init(&p);
  mrl_lstm_layer_init(&l, &p, "lstm", 3, 4, mrl_init_default(), 0.0f);
  MRL_CHECK(mrl_params_finalize(&p, 1) == MRL_OK, "lstm: finalize failed");
  w_ih = mrl_params_tensor(&p, l.weight_ih);
  w_hh = mrl_params_tensor(&p, l.weight_hh);
  b_ih = mrl_params_tensor(&p, l.bias_ih);
  b_hh = mrl_params_tensor(&p, l.bias_hh);
  MRL_CHECK(w_ih->shape[0] == 16 && w_ih->shape[1] == 3 && w_hh->shape[0] == 16 &&
                w_hh->shape[1] == 4 && b_ih->size == 16 && b_hh->size == 16,
            "lstm: parameter shapes differ from torch.nn.LSTM(3, 4)");
  ok = mrl_ref_fill(f, "weight_ih", w_ih->data, 48) &&
       mrl_ref_fill(f, "weight_hh", w_hh->data, 64) && mrl_ref_fill(f, "bias_ih", b_ih->data, 16) &&
       mrl_ref_fill(f, "bias_hh", b_hh->data, 16) && mrl_ref_fill(f, "x", xd, 30) &&
       mrl_ref_fill(f, "h0", h0d, 8) && mrl_ref_fill(f, "c0", c0d, 8) &&
       mrl_ref_fill(f, "gy", gy, 40) && mrl_ref_fill(f, "gh", gh, 8) &&
       mrl_ref_fill(f, "gc", gc, 8) && (!masked || mrl_ref_fill(f, "mask_m", keep, 10));
  if (!ok) {
    mrl_params_free(&p);
    return;
  }
  /* the fixture's 0/1 keep mask is the complement of episode_start */
  if (masked)
    for (i = 0; i < 10; i++) start[i] = keep[i] == 0.0f ? 1.0f : 0.0f;
  memset(xg, 0, sizeof xg);
  memset(h0g, 0, sizeof h0g);
  memset(c0g, 0, sizeof c0g);
  mrl_params_zero_grad(&p);
  mrl_graph_init(&g, 1 << 16);
  y = mrl_lstm_sequence(&l, &g, &x, 5, 2, &h0, &c0, masked ? start : NULL, &hT, &cT);
  MRL_CHECK(y && hT && cT, "lstm%s: sequence returned NULL", pre);
  if (y && hT && cT) {
    MRL_CHECK(y->ndim == 2 && y->shape[0] == 10 && y->shape[1] == 4, "lstm: y must be [T*B, H]");
    loss = mrl_add(&g, mrl_add(&g, weighted_sum(&g, y, gy), weighted_sum(&g, hT, gh)),
                   weighted_sum(&g, cT, gc));
    MRL_CHECK(mrl_backward(&g, loss) == MRL_OK, "lstm%s: backward failed", pre);
#define EXPECT(fixture, ptr, n)                                                                    \
  do {                                                                                             \
    snprintf(name, sizeof name, "%s%s", pre, fixture);                                             \
    mrl_ref_expect(f, name, ptr, n, LSTM_ATOL, LSTM_RTOL);                                         \
  } while (0)
    EXPECT("y", y->data, 40);
    EXPECT("hT", hT->data, 8);
    EXPECT("cT", cT->data, 8);
    EXPECT("d_weight_ih", w_ih->grad, 48);
    EXPECT("d_weight_hh", w_hh->grad, 64);
    EXPECT("d_bias_ih", b_ih->grad, 16);
    EXPECT("d_bias_hh", b_hh->grad, 16);
    EXPECT("d_x", xg, 30);
    EXPECT("d_h0", h0g, 8);
    EXPECT("d_c0", c0g, 8);
#undef EXPECT
  }
  mrl_graph_free(&g);
  mrl_params_free(&p);
}

static void test_lstm_reference(void) {
  mrl_ref_file f;
  if (!mrl_ref_open(&f, "tests/ref/lstm.txt")) return;
  lstm_reference_case(&f, 0);
  lstm_reference_case(&f, 1);
  mrl_ref_close(&f);
}

typedef struct lstm_ctx {
  const mrl_lstm_layer *layer;
  const float *episode_start;
  int T, B;
  float r_h[MAX_R], r_c[MAX_R], r_y[MAX_R];
} lstm_ctx;

/* in: x, h, c, then the four parameter tensors (checked, not read here). */
static mrl_tensor *lstm_cell_build(mrl_graph *g, mrl_tensor **in, void *ctx) {
  const lstm_ctx *c = (const lstm_ctx *)ctx;
  mrl_tensor *h, *cc;
  mrl_lstm_cell(c->layer, g, in[0], in[1], in[2], c->episode_start, &h, &cc);
  if (!h || !cc) return NULL;
  return mrl_add(g, weighted_sum(g, h, c->r_h), weighted_sum(g, cc, c->r_c));
}

static mrl_tensor *lstm_seq_build(mrl_graph *g, mrl_tensor **in, void *ctx) {
  const lstm_ctx *c = (const lstm_ctx *)ctx;
  mrl_tensor *h = NULL, *cc = NULL, *y;
  y = mrl_lstm_sequence(c->layer, g, in[0], c->T, c->B, in[1], in[2], c->episode_start, &h, &cc);
  if (!y) return NULL;
  return mrl_add(g, mrl_add(g, weighted_sum(g, y, c->r_y), weighted_sum(g, h, c->r_h)),
                 weighted_sum(g, cc, c->r_c));
}

static void test_lstm_gradcheck(void) {
  static const float start_cell[3] = {0.0f, 0.0f, 1.0f};
  static const float start_seq[6] = {0.0f, 0.0f, 0.0f, 1.0f, 1.0f, 0.0f}; /* [T=3, B=2] */
  float xd[18], xg[18], hd[12], hg[12], cd[12], cg[12];
  mrl_tensor x, h, c, *in[7];
  mrl_params p;
  mrl_lstm_layer l;
  mrl_graph g;
  lstm_ctx ctx;
  mrl_rng rng = mrl_rng_make(31);
  double worst;
  int k;
  mrl_params_init(&p);
  mrl_lstm_layer_init(&l, &p, "lstm", 3, 4, mrl_init_make(MRL_INIT_UNIFORM, 0.6f), 0.0f);
  mrl_params_finalize(&p, 3);
  /* non-zero biases, so their gradients are checked at a generic point */
  fill_uniform(mrl_params_tensor(&p, l.bias_ih)->data, 16, &rng, -0.5f, 0.5f);
  fill_uniform(mrl_params_tensor(&p, l.bias_hh)->data, 16, &rng, -0.5f, 0.5f);
  fill_uniform(xd, 18, &rng, -1, 1);
  fill_uniform(hd, 12, &rng, -1, 1);
  fill_uniform(cd, 12, &rng, -1.5f, 1.5f);
  fill_uniform(ctx.r_h, MAX_R, &rng, -1, 1);
  fill_uniform(ctx.r_c, MAX_R, &rng, -1, 1);
  fill_uniform(ctx.r_y, MAX_R, &rng, -1, 1);
  ctx.layer = &l;
  mrl_graph_init(&g, 1 << 16);

  /* one cell, B = 3, episode_start = {0, 0, 1} */
  x = mrl_tensor_make2(xd, xg, 3, 3);
  h = mrl_tensor_make2(hd, hg, 3, 4);
  c = mrl_tensor_make2(cd, cg, 3, 4);
  in[0] = &x;
  in[1] = &h;
  in[2] = &c;
  in[3] = mrl_params_tensor(&p, l.weight_ih);
  in[4] = mrl_params_tensor(&p, l.weight_hh);
  in[5] = mrl_params_tensor(&p, l.bias_ih);
  in[6] = mrl_params_tensor(&p, l.bias_hh);
  ctx.episode_start = start_cell;
  worst = mrl_gradcheck(&g, lstm_cell_build, in, 7, &ctx, GC_EPS, GC_ATOL, GC_RTOL);
  MRL_CHECK(worst <= 1.0, "gradcheck lstm_cell with episode_start {0, 0, 1}: ratio %.3g", worst);
  for (k = 0; k < 4; k++) { /* a start cuts the gradient to that row's state */
    MRL_CHECK(hg[8 + k] == 0.0f && cg[8 + k] == 0.0f, "lstm_cell: a start must cut dh, dc");
    MRL_CHECK(hg[4 + k] != 0.0f && cg[4 + k] != 0.0f, "lstm_cell: no start must pass dh, dc");
  }
  ctx.episode_start = NULL;
  worst = mrl_gradcheck(&g, lstm_cell_build, in, 7, &ctx, GC_EPS, GC_ATOL, GC_RTOL);
  MRL_CHECK(worst <= 1.0, "gradcheck lstm_cell without episode_start: ratio %.3g", worst);

  /* a sequence, T = 3, B = 2: the state's gradient crosses steps */
  x = mrl_tensor_make2(xd, xg, 6, 3);
  h = mrl_tensor_make2(hd, hg, 2, 4);
  c = mrl_tensor_make2(cd, cg, 2, 4);
  ctx.episode_start = start_seq;
  ctx.T = 3;
  ctx.B = 2;
  worst = mrl_gradcheck(&g, lstm_seq_build, in, 7, &ctx, GC_EPS, GC_ATOL, GC_RTOL);
  MRL_CHECK(worst <= 1.0, "gradcheck lstm_sequence T=3 B=2 with episode_start: ratio %.3g", worst);
  mrl_graph_free(&g);
  mrl_params_free(&p);
}

/* The LSTM over fixed graph buffers of every size from 0 up: when memory runs
 * out, y is NULL and so are both final states (or the status says out of
 * memory and backward refuses); nothing outside the buffer is written; once
 * it fits, results equal a heap graph's bit for bit. */
static mrl_tensor *lstm_sweep_forward(mrl_graph *g, const mrl_lstm_layer *l, mrl_tensor *x,
                                      mrl_tensor *h0, mrl_tensor *c0, const float *episode_start,
                                      int *inconsistent) {
  mrl_tensor *h = NULL, *c = NULL;
  mrl_tensor *y = mrl_lstm_sequence(l, g, x, 3, 2, h0, c0, episode_start, &h, &c);
  if (!y && (h || c)) (*inconsistent)++;
  if (!y || !h || !c) return NULL;
  return mrl_add(g, mrl_sum(g, mrl_square(g, y)), mrl_sum(g, mrl_mul(g, h, c)));
}

static void test_lstm_out_of_memory(void) {
  static unsigned char buf[16384 + 256];
  static const float start[6] = {0, 0, 1, 0, 0, 1};
  float xd[18], xg[18], hd[8], hg[8], cd[8], cg[8], ref_loss = 0.0f, *ref_grads;
  mrl_tensor x = mrl_tensor_make2(xd, xg, 6, 3), h0 = mrl_tensor_make2(hd, hg, 2, 4);
  mrl_tensor c0 = mrl_tensor_make2(cd, cg, 2, 4), *loss;
  mrl_params p;
  mrl_lstm_layer l;
  mrl_graph g;
  mrl_rng rng = mrl_rng_make(64);
  int inconsistent = 0, bad_status = 0, bad_backward = 0, touched = 0, canaries = 1, mismatch = 0;
  int fails = 0, successes = 0;
  size_t size, k;
  mrl_params_init(&p);
  mrl_lstm_layer_init(&l, &p, "lstm", 3, 4, mrl_init_default(), 0.0f);
  mrl_params_finalize(&p, 12);
  fill_uniform(xd, 18, &rng, -1, 1);
  fill_uniform(hd, 8, &rng, -1, 1);
  fill_uniform(cd, 8, &rng, -1, 1);
  ref_grads = (float *)malloc(sizeof(float) * p.total);
  mrl_graph_init(&g, 1 << 14);
  loss = lstm_sweep_forward(&g, &l, &x, &h0, &c0, start, &inconsistent);
  MRL_CHECK(loss && mrl_backward(&g, loss) == MRL_OK, "lstm oom sweep: heap reference failed");
  if (loss) ref_loss = loss->data[0];
  memcpy(ref_grads, p.grads, sizeof(float) * p.total);
  mrl_graph_free(&g);
  for (size = 0; size <= 16384; size += 64) {
    unsigned char *region = buf + 128;
    mrl_result r;
    memset(buf, 0xA5, sizeof buf);
    mrl_params_zero_grad(&p);
    mrl_graph_init_buffer(&g, region, size);
    loss = lstm_sweep_forward(&g, &l, &x, &h0, &c0, start, &inconsistent);
    if (!loss && mrl_graph_status(&g) != MRL_ERR_OUT_OF_MEMORY) bad_status++;
    r = mrl_backward(&g, loss);
    if (mrl_graph_status(&g) != MRL_OK) {
      fails++;
      if (r != MRL_ERR_OUT_OF_MEMORY) bad_backward++;
      for (k = 0; k < p.total; k++) touched |= p.grads[k] != 0.0f;
    } else {
      successes++;
      if (r != MRL_OK || !loss)
        bad_backward++;
      else
        mismatch |=
            loss->data[0] != ref_loss || memcmp(p.grads, ref_grads, sizeof(float) * p.total) != 0;
    }
    for (k = 0; k < sizeof buf; k++)
      if ((buf + k < region || buf + k >= region + size) && buf[k] != 0xA5) canaries = 0;
  }
  MRL_CHECK(fails > 10 && successes > 10, "lstm oom sweep: %d failing and %d fitting sizes", fails,
            successes);
  MRL_CHECK(!inconsistent, "lstm_sequence: returned NULL but left %d final states set",
            inconsistent);
  MRL_CHECK(!bad_status, "lstm oom sweep: %d NULL results without the out-of-memory status",
            bad_status);
  MRL_CHECK(!bad_backward, "lstm oom sweep: backward disagreed with the status %d times",
            bad_backward);
  MRL_CHECK(!touched, "lstm oom sweep: backward changed gradients on a broken tape");
  MRL_CHECK(canaries, "lstm oom sweep: bytes outside the caller's buffer were written");
  MRL_CHECK(!mismatch, "lstm oom sweep: fixed-buffer results differ from the heap graph's");
  free(ref_grads);
  mrl_params_free(&p);
}

/* ------------------------------------------------------------------------ */
/* GRU, Elman and multi-layer stacks against torch.nn.GRU / RNN / LSTM      */
/* ------------------------------------------------------------------------ */

enum { RNN_LSTM, RNN_GRU, RNN_TANH, RNN_RELU };

typedef struct rnn_any {
  int kind, L, layer_api; /* layer_api: the single-layer functions (L = 1) */
  mrl_lstm lstm;
  mrl_gru gru;
  mrl_elman elman;
  mrl_gru_layer gru1;
  mrl_elman_layer elman1;
} rnn_any;

static void rnn_any_init(rnn_any *r, mrl_params *p, int kind, int I, int H, int L, int layer_api,
                         mrl_init init) {
  memset(r, 0, sizeof *r);
  r->kind = kind;
  r->L = L;
  r->layer_api = layer_api;
  if (kind == RNN_LSTM)
    mrl_lstm_init(&r->lstm, p, "rnn", I, H, L, init, 0.0f);
  else if (kind == RNN_GRU && layer_api)
    mrl_gru_layer_init(&r->gru1, p, "rnn", I, H, init);
  else if (kind == RNN_GRU)
    mrl_gru_init(&r->gru, p, "rnn", I, H, L, init);
  else if (layer_api)
    mrl_elman_layer_init(&r->elman1, p, "rnn", I, H, kind == RNN_TANH ? MRL_ACT_TANH : MRL_ACT_RELU,
                         init);
  else
    mrl_elman_init(&r->elman, p, "rnn", I, H, L, kind == RNN_TANH ? MRL_ACT_TANH : MRL_ACT_RELU,
                   init);
}

static mrl_tensor *rnn_any_forward(const rnn_any *r, mrl_graph *g, mrl_tensor *x, int T, int B,
                                   mrl_tensor *h0, mrl_tensor *c0, const float *start,
                                   mrl_tensor **hT, mrl_tensor **cT) {
  if (cT) *cT = NULL;
  if (r->kind == RNN_LSTM) return mrl_lstm_forward(&r->lstm, g, x, T, B, h0, c0, start, hT, cT);
  if (r->kind == RNN_GRU && r->layer_api)
    return mrl_gru_sequence(&r->gru1, g, x, T, B, h0, start, hT);
  if (r->kind == RNN_GRU) return mrl_gru_forward(&r->gru, g, x, T, B, h0, start, hT);
  if (r->layer_api) return mrl_elman_sequence(&r->elman1, g, x, T, B, h0, start, hT);
  return mrl_elman_forward(&r->elman, g, x, T, B, h0, start, hT);
}

static void rnn_reference_case(const mrl_ref_file *f, const char *case_prefix, int kind, int L,
                               int layer_api, int masked) {
  enum { T = 5, B = 2, I = 3, H = 4 };
  static const char *const pnames[4] = {"weight_ih_l%d", "weight_hh_l%d", "bias_ih_l%d",
                                        "bias_hh_l%d"};
  int gates = kind == RNN_LSTM ? 4 : kind == RNN_GRU ? 3 : 1, k, q, ok = 1, lstm = kind == RNN_LSTM;
  char pre[32], name[96], pname[32], dname[40];
  float xd[T * B * I], xg[T * B * I], h0d[2 * B * H], h0g[2 * B * H], c0d[2 * B * H],
      c0g[2 * B * H], gy[T * B * H], gh[2 * B * H], gc[2 * B * H], keep[T * B], start[T * B];
  mrl_tensor x = mrl_tensor_make2(xd, xg, T * B, I), h0 = mrl_tensor_make2(h0d, h0g, L * B, H);
  mrl_tensor c0 = mrl_tensor_make2(c0d, c0g, L * B, H), *y, *hT = NULL, *cT = NULL, *loss;
  mrl_params p;
  mrl_graph g;
  rnn_any r;
  snprintf(pre, sizeof pre, "%s%s", case_prefix, masked ? "mask_" : "");
  mrl_params_init(&p);
  rnn_any_init(&r, &p, kind, I, H, L, layer_api, mrl_init_default());
  MRL_CHECK(mrl_params_finalize(&p, 5) == MRL_OK, "%s: finalize failed", case_prefix);
  MRL_CHECK(p.count == 4 * L, "%s: %d tensors, torch has %d", case_prefix, p.count, 4 * L);
  for (k = 0; k < L; k++)
    for (q = 0; q < 4; q++) {
      int idx, n;
      mrl_tensor *t;
      snprintf(pname, sizeof pname, pnames[q], k);
      snprintf(name, sizeof name, "rnn.%s", pname);
      idx = mrl_params_find(&p, name);
      MRL_CHECK(idx >= 0, "%s: no tensor named %s", case_prefix, name);
      if (idx < 0) {
        ok = 0;
        continue;
      }
      t = mrl_params_tensor(&p, idx);
      n = gates * H * (q == 0 ? (k ? H : I) : q == 1 ? H : 1);
      MRL_CHECK(t->size == n && t->shape[0] == gates * H, "%s: %s has %d values, torch %d",
                case_prefix, name, t->size, n);
      snprintf(name, sizeof name, "%s%s", case_prefix, pname);
      ok &= t->size == n && mrl_ref_fill(f, name, t->data, n);
    }
#define FILL(field, dst, n)                                                                        \
  (snprintf(name, sizeof name, "%s%s", case_prefix, field), mrl_ref_fill(f, name, dst, n))
  ok = ok && FILL("x", xd, T * B * I) && FILL("h0", h0d, L * B * H) && FILL("gy", gy, T * B * H) &&
       FILL("gh", gh, L * B * H) &&
       (!lstm || (FILL("c0", c0d, L * B * H) && FILL("gc", gc, L * B * H))) &&
       (!masked || FILL("mask_m", keep, T * B));
#undef FILL
  if (!ok) {
    mrl_params_free(&p);
    return;
  }
  /* the fixture's 0/1 keep mask is the complement of episode_start */
  if (masked)
    for (k = 0; k < T * B; k++) start[k] = keep[k] == 0.0f ? 1.0f : 0.0f;
  memset(xg, 0, sizeof xg);
  memset(h0g, 0, sizeof h0g);
  memset(c0g, 0, sizeof c0g);
  mrl_params_zero_grad(&p);
  mrl_graph_init(&g, 1 << 16);
  y = rnn_any_forward(&r, &g, &x, T, B, &h0, lstm ? &c0 : NULL, masked ? start : NULL, &hT,
                      lstm ? &cT : NULL);
  MRL_CHECK(y && hT && (!lstm || cT), "%s: forward returned NULL", pre);
  if (y && hT && (!lstm || cT)) {
    MRL_CHECK(hT->shape[0] == L * B && hT->shape[1] == H, "%s: hT must be [L*B, H]", pre);
    loss = mrl_add(&g, weighted_sum(&g, y, gy), weighted_sum(&g, hT, gh));
    if (lstm) loss = mrl_add(&g, loss, weighted_sum(&g, cT, gc));
    MRL_CHECK(mrl_backward(&g, loss) == MRL_OK, "%s: backward failed", pre);
#define EXPECT(field, ptr, n)                                                                      \
  do {                                                                                             \
    snprintf(name, sizeof name, "%s%s", pre, field);                                               \
    mrl_ref_expect(f, name, ptr, n, LSTM_ATOL, LSTM_RTOL);                                         \
  } while (0)
    EXPECT("y", y->data, T * B * H);
    EXPECT("hT", hT->data, L * B * H);
    if (lstm) EXPECT("cT", cT->data, L * B * H);
    for (k = 0; k < L; k++)
      for (q = 0; q < 4; q++) {
        mrl_tensor *t;
        snprintf(pname, sizeof pname, pnames[q], k);
        snprintf(name, sizeof name, "rnn.%s", pname);
        t = mrl_params_tensor(&p, mrl_params_find(&p, name));
        snprintf(dname, sizeof dname, "d_%s", pname);
        EXPECT(dname, t->grad, t->size);
      }
    EXPECT("d_x", xg, T * B * I);
    EXPECT("d_h0", h0g, L * B * H);
    if (lstm) EXPECT("d_c0", c0g, L * B * H);
#undef EXPECT
  }
  mrl_graph_free(&g);
  mrl_params_free(&p);
}

static void test_rnn_reference(void) {
  mrl_ref_file f;
  int masked;
  if (!mrl_ref_open(&f, "tests/ref/rnn.txt")) return;
  for (masked = 0; masked < 2; masked++) {
    rnn_reference_case(&f, "gru_", RNN_GRU, 1, 1, masked);
    rnn_reference_case(&f, "gru_", RNN_GRU, 1, 0, masked); /* a stack of one layer */
    rnn_reference_case(&f, "tanh_", RNN_TANH, 1, 1, masked);
    rnn_reference_case(&f, "relu_", RNN_RELU, 1, 1, masked);
    rnn_reference_case(&f, "lstm2_", RNN_LSTM, 2, 0, masked);
    rnn_reference_case(&f, "gru2_", RNN_GRU, 2, 0, masked);
    rnn_reference_case(&f, "tanh2_", RNN_TANH, 2, 0, masked);
    rnn_reference_case(&f, "relu2_", RNN_RELU, 2, 0, masked);
  }
  mrl_ref_close(&f);
}

typedef struct rnn_ctx {
  const rnn_any *r;
  const float *episode_start;
  int T, B, cell;
  float r_h[MAX_R], r_c[MAX_R], r_y[MAX_R];
} rnn_ctx;

/* in: x, h0, c0 (LSTM only; otherwise a dummy), then the parameters. */
static mrl_tensor *rnn_build(mrl_graph *g, mrl_tensor **in, void *ctx) {
  const rnn_ctx *c = (const rnn_ctx *)ctx;
  mrl_tensor *h = NULL, *cc = NULL, *y, *loss;
  int lstm = c->r->kind == RNN_LSTM;
  if (c->cell && c->r->kind == RNN_GRU) {
    y = h = mrl_gru_cell(&c->r->gru1, g, in[0], in[1], c->episode_start);
  } else if (c->cell) {
    y = h = mrl_elman_cell(&c->r->elman1, g, in[0], in[1], c->episode_start);
  } else {
    y = rnn_any_forward(c->r, g, in[0], c->T, c->B, in[1], lstm ? in[2] : NULL, c->episode_start,
                        &h, lstm ? &cc : NULL);
  }
  if (!y || !h) return NULL;
  loss = mrl_add(g, weighted_sum(g, y, c->r_y), weighted_sum(g, h, c->r_h));
  return lstm ? mrl_add(g, loss, weighted_sum(g, cc, c->r_c)) : loss;
}

static void rnn_gradcheck_case(int kind, int L, int layer_api, int cell, const char *what) {
  static const float start_cell[3] = {0.0f, 0.0f, 1.0f};
  /* [T=3, B=2]; here no relu pre-activation lies within the finite-difference
   * step of its kink (with env 1 running on through step 2, one does) */
  static const float start_seq[6] = {0.0f, 0.0f, 0.0f, 1.0f, 0.0f, 1.0f};
  float xd[18], xg[18], hd[24], hg[24], cd[24], cg[24];
  mrl_tensor x, h, c, *in[3 + 4 * 2];
  mrl_params p;
  mrl_graph g;
  rnn_any r;
  rnn_ctx ctx;
  mrl_rng rng = mrl_rng_make(77 + (uint64_t)kind);
  double worst;
  int i, B = cell ? 3 : 2, rows = cell ? 3 : 6;
  mrl_params_init(&p);
  rnn_any_init(&r, &p, kind, 3, 4, L, layer_api, mrl_init_make(MRL_INIT_UNIFORM, 0.6f));
  mrl_params_finalize(&p, 3);
  for (i = 0; i < p.count; i++) { /* non-zero biases: a generic point */
    mrl_tensor *t = mrl_params_tensor(&p, i);
    if (t->ndim == 1) fill_uniform(t->data, t->size, &rng, -0.5f, 0.5f);
  }
  fill_uniform(xd, 18, &rng, -1, 1);
  fill_uniform(hd, 24, &rng, -1, 1);
  fill_uniform(cd, 24, &rng, -1.5f, 1.5f);
  fill_uniform(ctx.r_h, MAX_R, &rng, -1, 1);
  fill_uniform(ctx.r_c, MAX_R, &rng, -1, 1);
  fill_uniform(ctx.r_y, MAX_R, &rng, -1, 1);
  ctx.r = &r;
  ctx.cell = cell;
  ctx.T = cell ? 1 : 3;
  ctx.B = B;
  x = mrl_tensor_make2(xd, xg, rows, 3);
  h = mrl_tensor_make2(hd, hg, L * B, 4);
  c = mrl_tensor_make2(cd, cg, L * B, 4);
  in[0] = &x;
  in[1] = &h;
  in[2] = &c;
  for (i = 0; i < p.count; i++) in[3 + i] = mrl_params_tensor(&p, i);
  mrl_graph_init(&g, 1 << 16);
  ctx.episode_start = cell ? start_cell : start_seq;
  worst = mrl_gradcheck(&g, rnn_build, in, 3 + p.count, &ctx, GC_EPS, GC_ATOL, GC_RTOL);
  MRL_CHECK(worst <= 1.0, "gradcheck %s with episode_start: ratio %.3g", what, worst);
  if (cell)
    for (i = 0; i < 4; i++) { /* a start cuts the gradient to that row's state */
      MRL_CHECK(hg[8 + i] == 0.0f, "%s: a start must cut dh", what);
      MRL_CHECK(hg[4 + i] != 0.0f, "%s: no start must pass dh", what);
    }
  ctx.episode_start = NULL;
  worst = mrl_gradcheck(&g, rnn_build, in, 3 + p.count, &ctx, GC_EPS, GC_ATOL, GC_RTOL);
  MRL_CHECK(worst <= 1.0, "gradcheck %s without episode_start: ratio %.3g", what, worst);
  mrl_graph_free(&g);
  mrl_params_free(&p);
}

static void test_rnn_gradcheck(void) {
  rnn_gradcheck_case(RNN_GRU, 1, 1, 1, "gru_cell");
  rnn_gradcheck_case(RNN_GRU, 1, 1, 0, "gru_sequence T=3 B=2");
  rnn_gradcheck_case(RNN_TANH, 1, 1, 1, "elman_cell tanh");
  rnn_gradcheck_case(RNN_TANH, 1, 1, 0, "elman_sequence tanh");
  rnn_gradcheck_case(RNN_RELU, 1, 1, 0, "elman_sequence relu");
  rnn_gradcheck_case(RNN_LSTM, 2, 0, 0, "lstm_forward 2 layers");
  rnn_gradcheck_case(RNN_GRU, 2, 0, 0, "gru_forward 2 layers");
  rnn_gradcheck_case(RNN_TANH, 2, 0, 0, "elman_forward 2 layers");
}

/* The LSTM's wide per-unit loops (8 and 16 lanes, where this CPU has them)
 * against the scalar loops' expressions, bitwise, over H not a multiple of
 * the lanes (the callers finish the tail), with gates at 0 and 1 and keep 0
 * and 1 among the values. */
static void test_lstm_wide_lanes(void) {
#ifdef MRL__HAVE_WIDE_ACT
  enum { H = 37 };
  float gb[4 * H], tc[H], cp[H], gy[H], dhp[H], dc0[H], dc[H], db[4 * H], cb[H], yb[H];
  mrl_rng rng = mrl_rng_make(9);
  int isa = mrl__gemm_isa(), w, j, done, ok = 1;
  for (j = 0; j < 4 * H; j++) gb[j] = j % 9 == 0 ? (float)(j % 2) : mrl_rng_uniform(&rng);
  for (j = 0; j < H; j++) {
    tc[j] = 2.0f * mrl_rng_uniform(&rng) - 1.0f, cp[j] = 4.0f * mrl_rng_uniform(&rng) - 2.0f;
    gy[j] = mrl_rng_uniform(&rng) - 0.5f, dhp[j] = mrl_rng_uniform(&rng) - 0.5f;
    dc0[j] = mrl_rng_uniform(&rng) - 0.5f;
  }
  for (w = 8; w <= 16; w += 8) {
    float keep = w == 8 ? 1.0f : 0.0f;
    if (isa != MRL__ISA_AVX512 && !(w == 8 && isa == MRL__ISA_AVX2)) continue;
    memcpy(dc, dc0, sizeof dc);
    done = w == 8 ? mrl__lstm_back_run8(H, gb, tc, cp, gy, dhp, dc, db, keep)
                  : mrl__lstm_back_run16(H, gb, tc, cp, gy, dhp, dc, db, keep);
    MRL_CHECK(done == H / w * w, "lstm_back_run%d did %d of %d units", w, done, H);
    for (j = 0; j < done; j++) {
      float ig = gb[j], fg = gb[H + j], gg = gb[2 * H + j], og = gb[3 * H + j];
      float dh = gy[j] + dhp[j], d = dc0[j] + dh * og * (1.0f - tc[j] * tc[j]);
      ok &= db[j] == d * gg * ig * (1.0f - ig) && db[H + j] == d * cp[j] * fg * (1.0f - fg);
      ok &= db[2 * H + j] == d * ig * (1.0f - gg * gg);
      ok &= db[3 * H + j] == dh * tc[j] * og * (1.0f - og) && dc[j] == d * fg * keep;
    }
    done = w == 8 ? mrl__lstm_cell_run8(H, gb, cp, cb) : mrl__lstm_cell_run16(H, gb, cp, cb);
    MRL_CHECK(done == H / w * w, "lstm_cell_run%d did %d of %d units", w, done, H);
    for (j = 0; j < done; j++) ok &= cb[j] == gb[H + j] * cp[j] + gb[j] * gb[2 * H + j];
    done = w == 8 ? mrl__lstm_out_run8(H, gb + 3 * H, tc, yb)
                  : mrl__lstm_out_run16(H, gb + 3 * H, tc, yb);
    MRL_CHECK(done == H / w * w, "lstm_out_run%d did %d of %d units", w, done, H);
    for (j = 0; j < done; j++) ok &= yb[j] == gb[3 * H + j] * tc[j];
    MRL_CHECK(ok, "the %d-lane LSTM loops differ from the scalar expressions", w);
  }
#endif
}

/* The GRU's wide per-unit loops against the scalar loops' expressions, as
 * test_lstm_wide_lanes. */
static void test_gru_wide_lanes(void) {
#ifdef MRL__HAVE_WIDE_ACT
  enum { H = 37 };
  float gb[3 * H], g0[3 * H], hb[3 * H], hk[H], hn[H], gy[H], dhp[H], dhz[H], dxb[3 * H],
      dhb[3 * H], nb[H], yb[H], dh[H];
  mrl_rng rng = mrl_rng_make(10);
  int isa = mrl__gemm_isa(), w, j, done, ok = 1;
  for (j = 0; j < 3 * H; j++) {
    g0[j] = j % 9 == 0 ? (float)(j % 2) : mrl_rng_uniform(&rng);
    hb[j] = 2.0f * mrl_rng_uniform(&rng) - 1.0f;
  }
  for (j = 0; j < H; j++) {
    hk[j] = 2.0f * mrl_rng_uniform(&rng) - 1.0f, hn[j] = mrl_rng_uniform(&rng) - 0.5f;
    gy[j] = mrl_rng_uniform(&rng) - 0.5f, dhp[j] = mrl_rng_uniform(&rng) - 0.5f;
    dhz[j] = mrl_rng_uniform(&rng) - 0.5f;
  }
  for (w = 8; w <= 16; w += 8) {
    float keep = w == 8 ? 1.0f : 0.0f;
    if (isa != MRL__ISA_AVX512 && !(w == 8 && isa == MRL__ISA_AVX2)) continue;
    memcpy(gb, g0, sizeof gb);
    done = w == 8 ? mrl__gru_add_run8(2 * H, gb, hb) : mrl__gru_add_run16(2 * H, gb, hb);
    MRL_CHECK(done == 2 * H / w * w, "gru_add_run%d did %d of %d", w, done, 2 * H);
    for (j = 0; j < done; j++) ok &= gb[j] == g0[j] + hb[j];
    memcpy(gb, g0, sizeof gb);
    done = w == 8 ? mrl__gru_gate_run8(H, gb, hb, nb) : mrl__gru_gate_run16(H, gb, hb, nb);
    MRL_CHECK(done == H / w * w, "gru_gate_run%d did %d of %d", w, done, H);
    for (j = 0; j < done; j++)
      ok &= nb[j] == hb[2 * H + j] && gb[2 * H + j] == g0[2 * H + j] + g0[j] * hb[2 * H + j];
    done = w == 8 ? mrl__gru_out_run8(H, g0, hk, yb) : mrl__gru_out_run16(H, g0, hk, yb);
    for (j = 0; j < done; j++) ok &= yb[j] == (hk[j] - g0[2 * H + j]) * g0[H + j] + g0[2 * H + j];
    done = w == 8 ? mrl__gru_back_run8(H, g0, hk, hn, gy, dhp, dxb, dhb, dh)
                  : mrl__gru_back_run16(H, g0, hk, hn, gy, dhp, dxb, dhb, dh);
    MRL_CHECK(done == H / w * w, "gru_back_run%d did %d of %d", w, done, H);
    for (j = 0; j < done; j++) {
      float r = g0[j], z = g0[H + j], n = g0[2 * H + j], d = gy[j] + dhp[j];
      float dn = d * (1.0f - z) * (1.0f - n * n), dr = dn * hn[j] * r * (1.0f - r);
      float dz = d * (hk[j] - n) * z * (1.0f - z);
      ok &= dxb[j] == dr && dhb[j] == dr && dxb[H + j] == dz && dhb[H + j] == dz;
      ok &= dxb[2 * H + j] == dn && dhb[2 * H + j] == dn * r && dh[j] == d * z;
    }
    memcpy(dh, dhp, sizeof dh);
    done = w == 8 ? mrl__gru_dh_run8(H, dh, dhz, keep) : mrl__gru_dh_run16(H, dh, dhz, keep);
    for (j = 0; j < done; j++) ok &= dh[j] == (dhp[j] + dhz[j]) * keep;
    MRL_CHECK(ok, "the %d-lane GRU loops differ from the scalar expressions", w);
  }
#endif
}

/* Sequences long and wide enough that the recurrences prepack W_hh (T > 1,
 * B >= 4; H = 33: partial kernel panels) against the same T steps run as
 * single cells, which never prepack: outputs and every gradient (x, h0, c0,
 * all four parameters) agree up to rounding. A panel laid out or read wrong
 * in the forward's W_hh^T or the backward's W_hh shows as an O(1) error. */
static void test_rnn_prepacked_matches_cells(void) {
  enum { T = 3, B = 5, I = 3, H = 33 };
  static const char *names[3] = {"lstm", "gru", "elman"};
  int kind;
  for (kind = 0; kind < 3; kind++) {
    float xd[T * B * I], xg[T * B * I], hd[B * H], hg[B * H], cd[B * H], cg[B * H];
    float r[T * B * H], rc[B * H], ys[T * B * H], gs[T * B * I + 2 * B * H],
        *pg[4] = {NULL, NULL, NULL, NULL};
    float worst = 0.0f, scale = 0.0f;
    mrl_params p;
    mrl_lstm_layer ll;
    mrl_gru_layer gl;
    mrl_elman_layer el;
    mrl_graph g;
    mrl_rng rng = mrl_rng_make(5 + (uint64_t)kind);
    int pass, t, i, j;
    mrl_params_init(&p);
    if (kind == 0)
      mrl_lstm_layer_init(&ll, &p, "r", I, H, mrl_init_make(MRL_INIT_UNIFORM, 0.3f), 0.0f);
    else if (kind == 1)
      mrl_gru_layer_init(&gl, &p, "r", I, H, mrl_init_make(MRL_INIT_UNIFORM, 0.3f));
    else
      mrl_elman_layer_init(&el, &p, "r", I, H, MRL_ACT_TANH, mrl_init_make(MRL_INIT_UNIFORM, 0.3f));
    mrl_params_finalize(&p, 9);
    fill_uniform(xd, T * B * I, &rng, -1, 1);
    fill_uniform(hd, B * H, &rng, -1, 1);
    fill_uniform(cd, B * H, &rng, -1, 1);
    fill_uniform(r, T * B * H, &rng, -1, 1);
    fill_uniform(rc, B * H, &rng, -1, 1);
    mrl_graph_init(&g, 1 << 22);
    for (pass = 0; pass < 2; pass++) { /* 0: one sequence (prepacked), 1: T cells */
      mrl_tensor x = mrl_tensor_make2(xd, xg, T * B, I), h = mrl_tensor_make2(hd, hg, B, H);
      mrl_tensor c = mrl_tensor_make2(cd, cg, B, H), *hh = &h, *cc = &c, *loss = NULL, *y = NULL;
      memset(xg, 0, sizeof xg);
      memset(hg, 0, sizeof hg);
      memset(cg, 0, sizeof cg);
      mrl_params_zero_grad(&p);
      mrl_graph_reset(&g);
      if (pass == 0) {
        y = kind == 0   ? mrl_lstm_sequence(&ll, &g, &x, T, B, &h, &c, NULL, NULL, &cc)
            : kind == 1 ? mrl_gru_sequence(&gl, &g, &x, T, B, &h, NULL, NULL)
                        : mrl_elman_sequence(&el, &g, &x, T, B, &h, NULL, NULL);
        MRL_CHECK(y != NULL, "%s prepacked: sequence forward", names[kind]);
        if (!y) break;
        memcpy(ys, y->data, sizeof ys);
        loss = mrl_sum(&g, mrl_mul(&g, y, mrl_tensor_from2(&g, r, T * B, H)));
      } else {
        for (t = 0; t < T; t++) {
          mrl_tensor *xt = (mrl_tensor *)mrl_graph_alloc(&g, sizeof(mrl_tensor)), *term;
          /* a view of x's rows, so the cells' dx lands in xg */
          *xt = mrl_tensor_make2(xd + t * B * I, xg + t * B * I, B, I);
          if (kind == 0)
            mrl_lstm_cell(&ll, &g, xt, hh, cc, NULL, &hh, &cc);
          else
            hh = kind == 1 ? mrl_gru_cell(&gl, &g, xt, hh, NULL)
                           : mrl_elman_cell(&el, &g, xt, hh, NULL);
          for (i = 0; i < B * H; i++) { /* outputs: the sequence's up to rounding */
            float d = fabsf(hh->data[i] - ys[t * B * H + i]);
            worst = d > worst ? d : worst;
          }
          term = mrl_sum(&g, mrl_mul(&g, hh, mrl_tensor_from2(&g, r + t * B * H, B, H)));
          loss = loss ? mrl_add(&g, loss, term) : term;
        }
        MRL_CHECK(worst < 1e-5f, "%s prepacked: outputs differ from cells by %g", names[kind],
                  (double)worst);
      }
      if (kind == 0)
        loss = mrl_add(&g, loss, mrl_sum(&g, mrl_mul(&g, cc, mrl_tensor_from2(&g, rc, B, H))));
      MRL_CHECK(mrl_backward(&g, loss) == MRL_OK, "%s prepacked: backward", names[kind]);
      if (pass == 0) { /* keep the sequence's gradients */
        for (i = 0; i < 4; i++) {
          mrl_tensor *pt = mrl_params_tensor(&p, i);
          pg[i] = (float *)malloc(sizeof(float) * (size_t)pt->size);
          memcpy(pg[i], pt->grad, sizeof(float) * (size_t)pt->size);
        }
        memcpy(gs, xg, sizeof(float) * T * B * I);
        for (i = 0; i < B * H; i++) { /* dh0, dc0 after dx in ys */
          gs[T * B * I + i] = hg[i];
          gs[T * B * I + B * H + i] = cg[i];
        }
      } else {
        float d = 0.0f;
        for (i = 0; i < T * B * I; i++) d = fmaxf(d, fabsf(xg[i] - gs[i]));
        for (i = 0; i < B * H; i++) {
          d = fmaxf(d, fabsf(hg[i] - gs[T * B * I + i]));
          if (kind == 0) d = fmaxf(d, fabsf(cg[i] - gs[T * B * I + B * H + i]));
        }
        for (i = 0; i < 4; i++) {
          mrl_tensor *pt = mrl_params_tensor(&p, i);
          for (j = 0; j < pt->size; j++) {
            d = fmaxf(d, fabsf(pt->grad[j] - pg[i][j]));
            scale = fmaxf(scale, fabsf(pg[i][j]));
          }
        }
        MRL_CHECK(scale > 0.1f && d <= 1e-4f * scale,
                  "%s prepacked: gradients differ from cells by %g (largest %g)", names[kind],
                  (double)d, (double)scale);
      }
    }
    for (i = 0; i < 4; i++) free(pg[i]);
    mrl_graph_free(&g);
    mrl_params_free(&p);
  }
}

/* Acting one step at a time through the cells gives the sequence's outputs
 * bit for bit, and no-grad mode records nothing. */
static void test_rnn_steps_match_sequence(void) {
  enum { T = 4, B = 3, I = 3, H = 5 };
  static const float start[T * B] = {0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1};
  float xd[T * B * I], hd[B * H];
  mrl_params p;
  mrl_gru_layer gl;
  mrl_elman_layer el;
  mrl_graph g;
  mrl_rng rng = mrl_rng_make(5);
  int t, which, same = 1;
  mrl_params_init(&p);
  mrl_gru_layer_init(&gl, &p, "g", I, H, mrl_init_default());
  mrl_elman_layer_init(&el, &p, "e", I, H, MRL_ACT_TANH, mrl_init_default());
  mrl_params_finalize(&p, 21);
  fill_uniform(xd, T * B * I, &rng, -1, 1);
  fill_uniform(hd, B * H, &rng, -1, 1);
  mrl_graph_init(&g, 1 << 16);
  mrl_graph_set_no_grad(&g, 1);
  for (which = 0; which < 2; which++) {
    mrl_tensor *x = mrl_tensor_from2(&g, xd, T * B, I), *h0 = mrl_tensor_from2(&g, hd, B, H);
    mrl_tensor *y = which ? mrl_elman_sequence(&el, &g, x, T, B, h0, start, NULL)
                          : mrl_gru_sequence(&gl, &g, x, T, B, h0, start, NULL);
    mrl_tensor *h = h0;
    for (t = 0; t < T && y; t++) {
      mrl_tensor *xt = mrl_tensor_from2(&g, xd + t * B * I, B, I);
      h = which ? mrl_elman_cell(&el, &g, xt, h, start + t * B)
                : mrl_gru_cell(&gl, &g, xt, h, start + t * B);
      same &= h && memcmp(h->data, y->data + t * B * H, sizeof(float) * B * H) == 0;
    }
    MRL_CHECK(y && same, "%s: cell steps differ from the sequence", which ? "elman" : "gru");
  }
  MRL_CHECK(g.num_nodes == 0, "no-grad recurrent layers recorded %d nodes", g.num_nodes);
  mrl_graph_free(&g);
  mrl_params_free(&p);
}

/* ------------------------------------------------------------------------ */
/* Adam and clip_grad_norm_ against PyTorch                                 */
/* ------------------------------------------------------------------------ */

static void adam_case(const mrl_ref_file *f, float weight_decay, const char *prefix) {
  mrl_params p;
  mrl_adam_config cfg = mrl_adam_config_default();
  int shape[1] = {6}, idx, k;
  char name[32];
  mrl_tensor *t;
  mrl_params_init(&p);
  idx = mrl_params_add(&p, "p", 1, shape, mrl_init_make(MRL_INIT_ZEROS, 0.0f));
  MRL_CHECK(idx == 0 && mrl_params_finalize(&p, 0) == MRL_OK, "adam: parameter setup failed");
  t = mrl_params_tensor(&p, idx);
  cfg.lr = 0.01f;
  cfg.beta1 = 0.9f;
  cfg.beta2 = 0.999f;
  cfg.eps = 1e-8f;
  cfg.weight_decay = weight_decay;
  if (mrl_ref_fill(f, "p0", t->data, 6)) {
    for (k = 1; k <= 5; k++) {
      snprintf(name, sizeof name, "g%d", k);
      if (!mrl_ref_fill(f, name, t->grad, 6)) break;
      mrl_adam_step(&p, &cfg);
      snprintf(name, sizeof name, "%sp%d", prefix, k);
      mrl_ref_expect(f, name, t->data, 6, 1e-6, 1e-5);
    }
  }
  mrl_params_free(&p);
}

static void test_adam_reference(void) {
  mrl_ref_file f;
  mrl_adam_config d = mrl_adam_config_default();
  MRL_CHECK(d.lr == 1e-3f && d.beta1 == 0.9f && d.beta2 == 0.999f && d.eps == 1e-8f &&
                d.weight_decay == 0.0f,
            "adam: defaults must be torch.optim.Adam's");
  { /* eps sits after the bias-corrected square root: one step with g = eps
     * moves by lr * g / (|g| + eps) = lr / 2, and a zero gradient not at all */
    mrl_params p;
    int shape[1] = {2};
    mrl_tensor *t;
    mrl_params_init(&p);
    mrl_params_add(&p, "p", 1, shape, mrl_init_make(MRL_INIT_CONSTANT, 1.0f));
    mrl_params_finalize(&p, 0);
    t = mrl_params_tensor(&p, 0);
    t->grad[0] = 1e-8f;
    t->grad[1] = 0.0f;
    d.lr = 0.1f;
    mrl_adam_step(&p, &d);
    MRL_CHECK_NEAR(t->data[0], 1.0 - 0.05, 1e-6, 0, "adam: one step with g = eps");
    MRL_CHECK(t->data[1] == 1.0f, "adam: a zero gradient must not move the parameter");
    MRL_CHECK(p.adam_steps == 1, "adam: step count %lld, want 1", p.adam_steps);
    mrl_params_free(&p);
  }
  if (!mrl_ref_open(&f, "tests/ref/adam.txt")) return;
  adam_case(&f, 0.0f, "");
  adam_case(&f, 0.1f, "wd_");
  mrl_ref_close(&f);
}

/* GRU, Elman and the stacks over fixed graph buffers of every size: a NULL
 * result comes with the out-of-memory status and no final state, nothing
 * outside the buffer is written, a broken tape changes no gradient, and once
 * it fits the results equal a heap graph's bit for bit. */
static mrl_tensor *rnn_sweep_forward(mrl_graph *g, const rnn_any *r, mrl_tensor *x, mrl_tensor *h0,
                                     mrl_tensor *c0, const float *start, int *inconsistent) {
  mrl_tensor *h = NULL, *c = NULL, *y;
  int lstm = r->kind == RNN_LSTM;
  y = rnn_any_forward(r, g, x, 3, 2, h0, lstm ? c0 : NULL, start, &h, lstm ? &c : NULL);
  if (!y && (h || c)) (*inconsistent)++;
  if (!y || !h || (lstm && !c)) return NULL;
  y = mrl_add(g, mrl_sum(g, mrl_square(g, y)), mrl_sum(g, mrl_square(g, h)));
  return lstm ? mrl_add(g, y, mrl_sum(g, mrl_mul(g, c, c))) : y;
}

static void rnn_oom_case(int kind, int L, int layer_api, const char *what) {
  enum { CAP = 32768 };
  static unsigned char buf[CAP + 256];
  static const float start[6] = {0, 0, 1, 0, 0, 1};
  float xd[18], xg[18], hd[16], hg[16], cd[16], cg[16], ref_loss = 0.0f, *ref_grads;
  mrl_tensor x = mrl_tensor_make2(xd, xg, 6, 3), h0 = mrl_tensor_make2(hd, hg, 2 * L, 4);
  mrl_tensor c0 = mrl_tensor_make2(cd, cg, 2 * L, 4), *loss;
  mrl_params p;
  rnn_any r;
  mrl_graph g;
  mrl_rng rng = mrl_rng_make(65);
  int inconsistent = 0, bad_status = 0, bad_backward = 0, touched = 0, canaries = 1, mismatch = 0;
  int fails = 0, successes = 0;
  size_t size, k;
  mrl_params_init(&p);
  rnn_any_init(&r, &p, kind, 3, 4, L, layer_api, mrl_init_default());
  mrl_params_finalize(&p, 12);
  fill_uniform(xd, 18, &rng, -1, 1);
  fill_uniform(hd, 16, &rng, -1, 1);
  fill_uniform(cd, 16, &rng, -1, 1);
  ref_grads = (float *)malloc(sizeof(float) * p.total);
  mrl_graph_init(&g, 1 << 14);
  loss = rnn_sweep_forward(&g, &r, &x, &h0, &c0, start, &inconsistent);
  MRL_CHECK(loss && mrl_backward(&g, loss) == MRL_OK, "%s oom sweep: heap reference failed", what);
  if (loss) ref_loss = loss->data[0];
  memcpy(ref_grads, p.grads, sizeof(float) * p.total);
  mrl_graph_free(&g);
  for (size = 0; size <= CAP; size += 128) {
    unsigned char *region = buf + 128;
    mrl_result res;
    memset(buf, 0xA5, sizeof buf);
    mrl_params_zero_grad(&p);
    mrl_graph_init_buffer(&g, region, size);
    loss = rnn_sweep_forward(&g, &r, &x, &h0, &c0, start, &inconsistent);
    if (!loss && mrl_graph_status(&g) != MRL_ERR_OUT_OF_MEMORY) bad_status++;
    res = mrl_backward(&g, loss);
    if (mrl_graph_status(&g) != MRL_OK) {
      fails++;
      if (res != MRL_ERR_OUT_OF_MEMORY) bad_backward++;
      for (k = 0; k < p.total; k++) touched |= p.grads[k] != 0.0f;
    } else {
      successes++;
      if (res != MRL_OK || !loss)
        bad_backward++;
      else
        mismatch |=
            loss->data[0] != ref_loss || memcmp(p.grads, ref_grads, sizeof(float) * p.total) != 0;
    }
    for (k = 0; k < sizeof buf; k++)
      if ((buf + k < region || buf + k >= region + size) && buf[k] != 0xA5) canaries = 0;
  }
  MRL_CHECK(fails > 10 && successes > 10, "%s oom sweep: %d failing and %d fitting sizes", what,
            fails, successes);
  MRL_CHECK(!inconsistent, "%s: returned NULL but left %d final states set", what, inconsistent);
  MRL_CHECK(!bad_status, "%s oom sweep: %d NULL results without the out-of-memory status", what,
            bad_status);
  MRL_CHECK(!bad_backward, "%s oom sweep: backward disagreed with the status %d times", what,
            bad_backward);
  MRL_CHECK(!touched, "%s oom sweep: backward changed gradients on a broken tape", what);
  MRL_CHECK(canaries, "%s oom sweep: bytes outside the caller's buffer were written", what);
  MRL_CHECK(!mismatch, "%s oom sweep: fixed-buffer results differ from the heap graph's", what);
  free(ref_grads);
  mrl_params_free(&p);
}

static void test_rnn_out_of_memory(void) {
  rnn_oom_case(RNN_GRU, 1, 1, "gru_sequence");
  rnn_oom_case(RNN_TANH, 1, 1, "elman_sequence");
  rnn_oom_case(RNN_LSTM, 2, 0, "lstm_forward 2 layers");
  rnn_oom_case(RNN_GRU, 2, 0, "gru_forward 2 layers");
  rnn_oom_case(RNN_RELU, 2, 0, "elman_forward 2 layers");
}

/* ------------------------------------------------------------------------ */
/* SGD, AdamW, RMSProp (torch and TF forms) and LR schedules                */
/* ------------------------------------------------------------------------ */

enum { OPT_SGD, OPT_ADAMW, OPT_RMS };

typedef struct opt_case {
  const char *prefix;
  int kind;
  mrl_sgd_config sgd;
  mrl_adam_config adam;
  mrl_rmsprop_config rms;
} opt_case;

static void optim_run(const mrl_ref_file *f, const opt_case *c) {
  mrl_params p;
  int shape[1] = {6}, k;
  char name[32];
  mrl_tensor *t;
  mrl_params_init(&p);
  mrl_params_add(&p, "p", 1, shape, mrl_init_make(MRL_INIT_ZEROS, 0.0f));
  mrl_params_finalize(&p, 0);
  t = mrl_params_tensor(&p, 0);
  if (mrl_ref_fill(f, "p0", t->data, 6)) {
    for (k = 1; k <= 6; k++) {
      snprintf(name, sizeof name, "g%d", k);
      if (!mrl_ref_fill(f, name, t->grad, 6)) break;
      if (c->kind == OPT_SGD)
        mrl_sgd_step(&p, &c->sgd);
      else if (c->kind == OPT_ADAMW)
        mrl_adamw_step(&p, &c->adam);
      else
        MRL_CHECK(mrl_rmsprop_step(&p, &c->rms) == MRL_OK, "%s: rmsprop step failed", c->prefix);
      snprintf(name, sizeof name, "%sp%d", c->prefix, k);
      mrl_ref_expect(f, name, t->data, 6, 1e-6, 2e-5);
    }
  }
  mrl_params_free(&p);
}

static void test_optim_reference(void) {
  mrl_ref_file f;
  opt_case c[12];
  int n = 0, i;
  mrl_sgd_config sd = mrl_sgd_config_default();
  mrl_adam_config aw = mrl_adamw_config_default();
  mrl_rmsprop_config rd = mrl_rmsprop_config_default(), tf = mrl_rmsprop_config_tf();
  MRL_CHECK(sd.lr == 0.01f && sd.momentum == 0.0f && sd.dampening == 0.0f &&
                sd.weight_decay == 0.0f && !sd.nesterov,
            "sgd defaults");
  MRL_CHECK(aw.lr == 1e-3f && aw.beta1 == 0.9f && aw.beta2 == 0.999f && aw.eps == 1e-8f &&
                aw.weight_decay == 0.01f,
            "adamw: defaults must be torch.optim.AdamW's");
  MRL_CHECK(rd.lr == 0.01f && rd.alpha == 0.99f && rd.eps == 1e-8f && rd.momentum == 0.0f &&
                !rd.centered && !rd.eps_inside_sqrt && rd.square_avg_init == 0.0f,
            "rmsprop: defaults must be torch.optim.RMSprop's");
  MRL_CHECK(tf.alpha == 0.9f && tf.eps == 1e-10f && tf.eps_inside_sqrt &&
                tf.square_avg_init == 1.0f,
            "rmsprop tf: defaults must be tf.compat.v1.train.RMSPropOptimizer's");
  memset(c, 0, sizeof c);
  for (i = 0; i < 12; i++) {
    c[i].sgd = sd;
    c[i].adam = aw;
    c[i].rms = rd;
  }
  c[n].prefix = "sgd_", c[n].kind = OPT_SGD, c[n++].sgd.lr = 0.1f;
  c[n].prefix = "sgdm_", c[n].kind = OPT_SGD, c[n].sgd.lr = 0.1f, c[n++].sgd.momentum = 0.9f;
  c[n].prefix = "sgdmd_", c[n].kind = OPT_SGD, c[n].sgd.lr = 0.05f, c[n].sgd.momentum = 0.8f;
  c[n].sgd.dampening = 0.3f, c[n++].sgd.weight_decay = 0.05f;
  c[n].prefix = "sgdn_", c[n].kind = OPT_SGD, c[n].sgd.lr = 0.1f, c[n].sgd.momentum = 0.9f;
  c[n].sgd.nesterov = 1, c[n++].sgd.weight_decay = 0.01f;
  c[n].prefix = "adamw_", c[n].kind = OPT_ADAMW, c[n].adam.lr = 0.01f,
  c[n++].adam.weight_decay = 0.1f;
  c[n].prefix = "adamwd_", c[n++].kind = OPT_ADAMW;
  c[n].prefix = "rms_", c[n++].kind = OPT_RMS;
  c[n].prefix = "rmsm_", c[n].kind = OPT_RMS, c[n].rms.momentum = 0.9f,
  c[n++].rms.weight_decay = 0.1f;
  c[n].prefix = "rmsc_", c[n].kind = OPT_RMS, c[n].rms.alpha = 0.9f, c[n++].rms.centered = 1;
  c[n].prefix = "rmscm_", c[n].kind = OPT_RMS, c[n].rms.alpha = 0.95f, c[n].rms.eps = 1e-6f;
  c[n].rms.centered = 1, c[n++].rms.momentum = 0.5f;
  c[n].prefix = "tf_", c[n].kind = OPT_RMS, c[n].rms = tf, c[n].rms.lr = 0.01f;
  c[n++].rms.eps = 1e-3f;
  c[n].prefix = "tfc_", c[n].kind = OPT_RMS, c[n].rms = tf, c[n].rms.lr = 0.01f,
  c[n].rms.eps = 1e-3f;
  c[n].rms.centered = 1, c[n++].rms.momentum = 0.9f;
  if (!mrl_ref_open(&f, "tests/ref/optim.txt")) return;
  for (i = 0; i < n; i++) optim_run(&f, &c[i]);
  { /* schedules, from lr 0.1 as torch's schedulers ran them */
    float lrs[21];
    long long s;
    for (s = 0; s < 21; s++) lrs[s] = mrl_lr_cosine(0.1f, 0.001f, s, 10);
    mrl_ref_expect(&f, "cos_lr", lrs, 21, 1e-7, 1e-5);
    for (s = 0; s < 12; s++) lrs[s] = mrl_lr_step(0.1f, 0.5f, s, 3);
    mrl_ref_expect(&f, "steplr_lr", lrs, 12, 1e-9, 1e-6);
    for (s = 0; s < 12; s++) lrs[s] = mrl_lr_linear(0.1f, 0.01f, s, 8);
    mrl_ref_expect(&f, "linlr_lr", lrs, 12, 1e-8, 1e-5);
  }
  mrl_ref_close(&f);
}

/* Optimiser state lives in the store's buffers: SGD momentum in moment1,
 * RMSProp's mean square in moment2 and its centred mean in moment3; a reset
 * zeros them all. */
static void test_optim_buffers(void) {
  mrl_params p;
  mrl_sgd_config sc = mrl_sgd_config_default();
  mrl_rmsprop_config rc = mrl_rmsprop_config_default();
  int shape[1] = {3}, i, ok = 1;
  float *g;
  mrl_params_init(&p);
  mrl_params_add(&p, "w", 1, shape, mrl_init_make(MRL_INIT_CONSTANT, 1.0f));
  mrl_params_finalize(&p, 0);
  g = mrl_params_tensor(&p, 0)->grad;
  g[0] = 1.0f, g[1] = -2.0f, g[2] = 0.5f;
  sc.momentum = 0.9f;
  mrl_sgd_step(&p, &sc);
  mrl_sgd_step(&p, &sc);
  for (i = 0; i < 3; i++) ok &= fabsf(p.moment1[i] - 1.9f * g[i]) < 1e-6f;
  MRL_CHECK(ok && p.adam_steps == 2,
            "sgd: momentum buffer must be moment1 (= 1.9 g after 2 steps)");
  mrl_params_reset_optimizer(&p);
  rc.centered = 1;
  MRL_CHECK(mrl_rmsprop_step(&p, &rc) == MRL_OK && p.moment3, "rmsprop centred: allocates moment3");
  ok = 1;
  for (i = 0; i < 3; i++) {
    ok &= fabsf(p.moment2[i] - 0.01f * g[i] * g[i]) < 1e-7f;
    ok &= fabsf(p.moment3[i] - 0.01f * g[i]) < 1e-7f;
    ok &= p.moment1[i] == 0.0f; /* the reset cleared SGD's buffer; no momentum here */
  }
  MRL_CHECK(ok, "rmsprop centred: v in moment2, mean gradient in moment3");
  mrl_params_reset_optimizer(&p);
  ok = p.adam_steps == 0;
  for (i = 0; i < 3; i++)
    ok &= p.moment1[i] == 0.0f && p.moment2[i] == 0.0f && p.moment3[i] == 0.0f;
  MRL_CHECK(ok, "reset_optimizer must zero every buffer and the step count");
  MRL_CHECK(
      mrl_lr_linear(1.0f, 0.0f, -3, 10) == 1.0f && mrl_lr_linear(1.0f, 0.0f, 50, 10) == 0.0f &&
          mrl_lr_linear(1.0f, 0.5f, 5, 10) == 0.75f && mrl_lr_linear(2.0f, 1.0f, 0, 0) == 1.0f,
      "lr_linear: clamps before 0 and after total_steps");
  MRL_CHECK(mrl_lr_step(1.0f, 0.1f, 0, 0) == 1.0f, "lr_step: step_size 0 keeps lr0");
  mrl_params_free(&p);
}

static void test_clip_reference(void) {
  mrl_ref_file f;
  mrl_params p;
  int sa[2] = {3, 4}, sb[1] = {5}, ia, ib;
  mrl_tensor *a, *b;
  float total;
  if (!mrl_ref_open(&f, "tests/ref/clip.txt")) return;
  mrl_params_init(&p);
  ia = mrl_params_add(&p, "a", 2, sa, mrl_init_make(MRL_INIT_ZEROS, 0.0f));
  ib = mrl_params_add(&p, "b", 1, sb, mrl_init_make(MRL_INIT_ZEROS, 0.0f));
  mrl_params_finalize(&p, 0);
  a = mrl_params_tensor(&p, ia);
  b = mrl_params_tensor(&p, ib);
  if (mrl_ref_fill(&f, "ga", a->grad, 12) && mrl_ref_fill(&f, "gb", b->grad, 5)) {
    total = mrl_params_clip_grad_norm(&p, 0.5f);
    mrl_ref_expect(&f, "total_norm", &total, 1, 1e-6, 1e-5);
    mrl_ref_expect(&f, "ca", a->grad, 12, 1e-6, 1e-5);
    mrl_ref_expect(&f, "cb", b->grad, 5, 1e-6, 1e-5);
  }
  mrl_params_zero_grad(&p);
  if (mrl_ref_fill(&f, "ga", a->grad, 12) && mrl_ref_fill(&f, "gb", b->grad, 5)) {
    total = mrl_params_clip_grad_norm(&p, 100.0f);
    mrl_ref_expect(&f, "total_norm2", &total, 1, 1e-6, 1e-5);
    mrl_ref_expect(&f, "ca2", a->grad, 12, 1e-6, 1e-5);
    mrl_ref_expect(&f, "cb2", b->grad, 5, 1e-6, 1e-5);
  }
  mrl_params_free(&p);
  mrl_ref_close(&f);
}

/* ------------------------------------------------------------------------ */
/* Initialisers and the parameter store                                     */
/* ------------------------------------------------------------------------ */

/* Worst |G - gain² I| where G = W Wᵀ (row_gram) or Wᵀ W, W [rows, cols]. */
static double gram_error(const float *w, int rows, int cols, float gain, int row_gram) {
  int wide = row_gram, n = wide ? rows : cols, len = wide ? cols : rows, i, j, k;
  double worst = 0.0;
  for (i = 0; i < n; i++)
    for (j = 0; j < n; j++) {
      double s = 0.0, want = i == j ? (double)gain * gain : 0.0;
      for (k = 0; k < len; k++)
        s += wide ? (double)w[i * cols + k] * w[j * cols + k]
                  : (double)w[k * cols + i] * w[k * cols + j];
      if (fabs(s - want) > worst) worst = fabs(s - want);
    }
  return worst;
}

static void test_orthogonal(void) {
  static const int dims[5][2] = {{3, 7}, {7, 3}, {5, 5}, {1, 9}, {16, 4}};
  static const float gains[3] = {1.0f, 1.41421356f, 0.01f};
  float w[256];
  int d, k;
  for (d = 0; d < 5; d++)
    for (k = 0; k < 3; k++) {
      mrl_rng rng = mrl_rng_make(100u + (uint64_t)d);
      int rows = dims[d][0], cols = dims[d][1];
      double err;
      mrl_init_orthogonal_fill(w, rows, cols, gains[k], &rng);
      err = gram_error(w, rows, cols, gains[k], rows <= cols);
      MRL_CHECK(err <= 1e-5, "orthogonal [%d,%d] gain %g: %s off gain^2 I by %.3g", rows, cols,
                gains[k], rows <= cols ? "W W^T" : "W^T W", err);
      if (rows == cols) {
        err = gram_error(w, rows, cols, gains[k], 0); /* and Wᵀ W */
        MRL_CHECK(err <= 1e-5, "orthogonal square: both products must be gain^2 I (%.3g)", err);
      }
    }
  { /* through the parameter store: orthogonal weight, zero bias */
    mrl_params p;
    mrl_linear_layer l;
    mrl_tensor *wt, *bt;
    int i, zero = 1;
    mrl_params_init(&p);
    mrl_linear_layer_init(&l, &p, "fc", 6, 10, mrl_init_orthogonal(1.41421356f));
    mrl_params_finalize(&p, 9);
    wt = mrl_params_tensor(&p, l.weight);
    bt = mrl_params_tensor(&p, l.bias);
    MRL_CHECK(gram_error(wt->data, 10, 6, 1.41421356f, 0) <= 1e-5,
              "orthogonal init of a linear layer: W^T W != 2 I");
    for (i = 0; i < bt->size; i++) zero &= bt->data[i] == 0.0f;
    MRL_CHECK(zero, "orthogonal init: bias must be zero");
    mrl_params_free(&p);
  }
}

/* Xavier and Kaiming: the gains and fans are torch's exactly; the draws use
 * our RNG, so one draw of each is compared with one of torch's by its
 * statistics (mean, std within 1.5%, and for uniform inits the largest
 * |w|, which sits within 0.5% of the bound for 100k draws). */
static void test_fan_inits(void) {
  static const int big[2] = {400, 250}, conv[4] = {64, 16, 3, 3};
  static const char *const names[7] = {"xu", "xn", "kuin", "kuout", "knleaky", "knconv", "xuconv"};
  mrl_init inits[7];
  const int uniform[7] = {1, 0, 1, 1, 0, 0, 1};
  mrl_ref_file f;
  mrl_params p;
  float gains[6], fans[2], want[3];
  int i, fi, fo;
  if (!mrl_ref_open(&f, "tests/ref/init.txt")) return;
  gains[0] = mrl_init_gain(MRL_NL_LINEAR, 0.0f);
  gains[1] = mrl_init_gain(MRL_NL_SIGMOID, 0.0f);
  gains[2] = mrl_init_gain(MRL_NL_TANH, 0.0f);
  gains[3] = mrl_init_gain(MRL_NL_RELU, 0.0f);
  gains[4] = mrl_init_gain(MRL_NL_LEAKY_RELU, 0.2f);
  gains[5] = mrl_init_gain(MRL_NL_SELU, 0.0f);
  mrl_ref_expect(&f, "gains", gains, 6, 1e-9, 1e-7);
  mrl_init_fans(4, conv, &fi, &fo);
  fans[0] = (float)fi;
  fans[1] = (float)fo;
  mrl_ref_expect(&f, "conv_fans", fans, 2, 1e-9, 0);
  inits[0] = mrl_init_xavier_uniform(1.0f);
  inits[1] = mrl_init_xavier_normal(5.0f / 3.0f);
  inits[2] = mrl_init_kaiming_uniform(0.0f, MRL_FAN_IN, MRL_NL_LEAKY_RELU);
  inits[3] = mrl_init_kaiming_uniform(0.0f, MRL_FAN_OUT, MRL_NL_RELU);
  inits[4] = mrl_init_kaiming_normal(0.2f, MRL_FAN_IN, MRL_NL_LEAKY_RELU);
  inits[5] = mrl_init_kaiming_normal(0.0f, MRL_FAN_OUT, MRL_NL_TANH);
  inits[6] = mrl_init_xavier_uniform(mrl_init_gain(MRL_NL_RELU, 0.0f));
  mrl_params_init(&p);
  for (i = 0; i < 7; i++) mrl_params_add(&p, names[i], i < 5 ? 2 : 4, i < 5 ? big : conv, inits[i]);
  MRL_CHECK(mrl_params_finalize(&p, 99) == MRL_OK, "fan inits: finalize failed");
  for (i = 0; i < 7; i++) {
    const mrl_tensor *t = mrl_params_tensor(&p, i);
    double s = 0.0, s2 = 0.0, mx = 0.0, mean, sd;
    char name[32];
    int k;
    for (k = 0; k < t->size; k++) {
      s += t->data[k];
      s2 += (double)t->data[k] * t->data[k];
      if (fabs(t->data[k]) > mx) mx = fabs(t->data[k]);
    }
    mean = s / t->size;
    sd = sqrt(s2 / t->size - mean * mean);
    snprintf(name, sizeof name, "%s_stats", names[i]);
    if (!mrl_ref_fill(&f, name, want, 3)) continue;
    MRL_CHECK(fabs(sd - want[1]) <= 0.015 * want[1], "%s: std %.6f, torch's draw %.6f", names[i],
              sd, want[1]);
    MRL_CHECK(fabs(mean) <= 0.02 * want[1], "%s: mean %.6f, want ~0", names[i], mean);
    if (uniform[i])
      MRL_CHECK(fabs(mx - want[2]) <= 0.005 * want[2], "%s: max |w| %.6f, torch's %.6f", names[i],
                mx, want[2]);
  }
  { /* a linear layer given a fan init: weight by the scheme, bias zero */
    mrl_params q;
    mrl_linear_layer l;
    int zero = 1;
    mrl_params_init(&q);
    mrl_linear_layer_init(&l, &q, "fc", 30, 20,
                          mrl_init_kaiming_uniform(0.0f, MRL_FAN_IN, MRL_NL_RELU));
    mrl_params_finalize(&q, 4);
    for (i = 0; i < 20; i++) zero &= mrl_params_tensor(&q, l.bias)->data[i] == 0.0f;
    for (i = 0; i < 600; i++)
      zero &= fabsf(mrl_params_tensor(&q, l.weight)->data[i]) <= sqrtf(6.0f / 30.0f);
    MRL_CHECK(zero, "kaiming linear: weights within sqrt(6/fan_in), zero bias");
    mrl_params_free(&q);
  }
  mrl_params_free(&p);
  mrl_ref_close(&f);
}

static void test_default_init(void) {
  mrl_params p;
  mrl_linear_layer l;
  mrl_lstm_layer lstm;
  mrl_tensor *w, *b;
  float bound = 1.0f / sqrtf(50.0f), lbound = 1.0f / sqrtf(8.0f);
  double s = 0.0, s2 = 0.0, mean, sd, largest = 0.0;
  int i, k, inside = 1;
  mrl_params_init(&p);
  mrl_linear_layer_init(&l, &p, "fc", 50, 200, mrl_init_default());
  mrl_lstm_layer_init(&lstm, &p, "rnn", 5, 8, mrl_init_default(), 0.0f);
  MRL_CHECK(mrl_params_finalize(&p, 11) == MRL_OK, "default init: finalize failed");
  w = mrl_params_tensor(&p, l.weight);
  b = mrl_params_tensor(&p, l.bias);
  for (i = 0; i < w->size; i++) {
    inside &= fabsf(w->data[i]) <= bound;
    if (fabsf(w->data[i]) > largest) largest = fabsf(w->data[i]);
    s += w->data[i];
    s2 += (double)w->data[i] * w->data[i];
  }
  for (i = 0; i < b->size; i++) inside &= fabsf(b->data[i]) <= bound;
  MRL_CHECK(inside, "default linear init: value outside +-1/sqrt(in)");
  /* 10000 draws of U(-bound, bound) reach 0.999 bound except with probability e^-10 */
  MRL_CHECK(largest >= 0.999 * bound, "default linear init: largest |w| %.5f, bound %.5f", largest,
            bound);
  mean = s / w->size;
  sd = sqrt(s2 / w->size - mean * mean);
  MRL_CHECK(fabs(sd - bound / sqrt(3.0)) <= 0.03 * bound / sqrt(3.0),
            "default linear init: std %.5f, want bound/sqrt(3) = %.5f", sd, bound / sqrt(3.0));
  MRL_CHECK(fabs(mean) < 0.05 * bound, "default linear init: mean %.5f, want ~0", mean);
  inside = 1;
  {
    int ids[4];
    ids[0] = lstm.weight_ih;
    ids[1] = lstm.weight_hh;
    ids[2] = lstm.bias_ih;
    ids[3] = lstm.bias_hh;
    for (k = 0; k < 4; k++) {
      mrl_tensor *t = mrl_params_tensor(&p, ids[k]);
      int nonzero = 0;
      for (i = 0; i < t->size; i++) {
        inside &= fabsf(t->data[i]) <= lbound;
        nonzero |= t->data[i] != 0.0f;
      }
      MRL_CHECK(nonzero, "default LSTM init: tensor %d is all zero", k);
    }
  }
  MRL_CHECK(inside, "default LSTM init: value outside +-1/sqrt(hidden)");
  mrl_params_free(&p);
}

static void test_forget_bias(void) {
  mrl_params p;
  mrl_lstm_layer a, b;
  mrl_tensor *ba, *bb, *hh;
  float bound = 1.0f / sqrtf(4.0f);
  int i, ok_a = 1, ok_b = 1, ok_hh = 1;
  mrl_params_init(&p);
  mrl_lstm_layer_init(&a, &p, "a", 3, 4, mrl_init_orthogonal(1.0f), 1.0f);
  mrl_lstm_layer_init(&b, &p, "b", 3, 4, mrl_init_default(), 1.0f);
  mrl_params_finalize(&p, 8);
  ba = mrl_params_tensor(&p, a.bias_ih);
  bb = mrl_params_tensor(&p, b.bias_ih);
  hh = mrl_params_tensor(&p, b.bias_hh);
  for (i = 0; i < 16; i++) {
    int forget = i >= 4 && i < 8; /* gate order i, f, g, o */
    ok_a &= ba->data[i] == (forget ? 1.0f : 0.0f);
    ok_b &= forget ? fabsf(bb->data[i] - 1.0f) <= bound : fabsf(bb->data[i]) <= bound;
    ok_hh &= fabsf(hh->data[i]) <= bound;
  }
  MRL_CHECK(ok_a,
            "lstm forget_bias 1 with orthogonal init: bias_ih must be 1 on the f gate, else 0");
  MRL_CHECK(ok_b,
            "lstm forget_bias 1 with default init: bias_ih f gate must be 1 + U(+-1/sqrt(H))");
  MRL_CHECK(ok_hh, "lstm forget_bias: bias_hh must be untouched");
  mrl_params_free(&p);
}

static void build_model(mrl_params *p, mrl_mlp *m, mrl_lstm_layer *l, uint64_t seed) {
  int sizes[3] = {4, 8, 3};
  mrl_params_init(p);
  mrl_mlp_init(m, p, "pi", 3, sizes, MRL_ACT_TANH, mrl_init_default(), mrl_init_orthogonal(0.01f));
  mrl_lstm_layer_init(l, p, "core", 4, 5, mrl_init_default(), 1.0f);
  MRL_CHECK(mrl_params_finalize(p, seed) == MRL_OK, "params: finalize failed");
}

static void test_params_store(void) {
  mrl_params a, b, c;
  mrl_mlp ma, mb, mc;
  mrl_lstm_layer la, lb, lc;
  int i, inside = 1, disjoint = 1, shape[1] = {3};
  build_model(&a, &ma, &la, 42);
  build_model(&b, &mb, &lb, 42);
  build_model(&c, &mc, &lc, 43);
  MRL_CHECK(a.total == b.total && memcmp(a.values, b.values, sizeof(float) * a.total) == 0,
            "params: same seed must give identical parameters");
  MRL_CHECK(memcmp(a.values, c.values, sizeof(float) * a.total) != 0,
            "params: another seed gave the same parameters");
  MRL_CHECK(a.count == 8, "params: an MLP of 2 layers and an LSTM declare 8 tensors, got %d",
            a.count);
  for (i = 0; i < a.count; i++) {
    mrl_tensor *t = mrl_params_tensor(&a, i);
    inside &= t->data >= a.values && t->data + t->size <= a.values + a.total;
    inside &= t->grad >= a.grads && t->grad + t->size <= a.grads + a.total;
    inside &= t->data - a.values == t->grad - a.grads; /* same offset in every buffer */
    if (i + 1 < a.count) disjoint &= t->data + t->size <= mrl_params_tensor(&a, i + 1)->data;
  }
  MRL_CHECK(inside, "params: a tensor lies outside the one contiguous buffer");
  MRL_CHECK(disjoint, "params: tensors overlap");
  MRL_CHECK(mrl_params_find(&a, "pi.2.weight") == ma.layers[1].weight,
            "params: find(pi.2.weight) failed (nn.Sequential's index of the second Linear)");
  MRL_CHECK(mrl_params_find(&a, "core.weight_hh_l0") == la.weight_hh,
            "params: find(core.weight_hh_l0) failed");
  MRL_CHECK(mrl_params_find(&a, "nope") == -1, "params: find of an absent name must be -1");
  MRL_CHECK(mrl_params_add(&a, "late", 1, shape, mrl_init_default()) == -1,
            "params: add after finalize must return -1");
  for (i = 0; i < (int)a.total; i++) a.grads[i] = 1.0f;
  mrl_params_zero_grad(&a);
  inside = 1;
  for (i = 0; i < (int)a.total; i++) inside &= a.grads[i] == 0.0f;
  MRL_CHECK(inside, "params: zero_grad must clear every gradient");
  mrl_params_free(&a);
  mrl_params_free(&b);
  mrl_params_free(&c);
}

/* ------------------------------------------------------------------------ */
/* MLP                                                                      */
/* ------------------------------------------------------------------------ */

typedef struct mlp_ctx {
  const mrl_mlp *mlp;
  float r[MAX_R];
} mlp_ctx;

static mrl_tensor *mlp_build(mrl_graph *g, mrl_tensor **in, void *ctx) {
  const mlp_ctx *c = (const mlp_ctx *)ctx;
  return weighted_sum(g, mrl_mlp_forward(c->mlp, g, in[0]), c->r);
}

static void test_mlp(void) {
  int sizes[3] = {3, 4, 2}, i, j, k, b, pass;
  float xd[6], xg[6];
  mrl_params p;
  mrl_mlp m;
  mrl_graph g;
  mrl_tensor x = mrl_tensor_make2(xd, xg, 2, 3), *in[5], *w0, *b0, *w1, *b1;
  mrl_rng rng = mrl_rng_make(77);
  mlp_ctx ctx;
  double worst;
  mrl_params_init(&p);
  mrl_mlp_init(&m, &p, "net", 3, sizes, MRL_ACT_TANH, mrl_init_default(), mrl_init_default());
  mrl_params_finalize(&p, 5);
  w0 = mrl_params_tensor(&p, m.layers[0].weight);
  b0 = mrl_params_tensor(&p, m.layers[0].bias);
  w1 = mrl_params_tensor(&p, m.layers[1].weight);
  b1 = mrl_params_tensor(&p, m.layers[1].bias);
  MRL_CHECK(w0->shape[0] == 4 && w0->shape[1] == 3 && w1->shape[0] == 2 && w1->shape[1] == 4,
            "mlp: weights must be [out, in]");
  fill_uniform(xd, 6, &rng, -1, 1);
  fill_uniform(b0->data, 4, &rng, -0.5f, 0.5f);
  fill_uniform(b1->data, 2, &rng, -0.5f, 0.5f);
  mrl_graph_init(&g, 1 << 14);
  for (pass = 0; pass < 2; pass++) { /* pass 1: also activate the output */
    mrl_tensor *y;
    int ok = 1;
    m.activate_output = pass;
    mrl_graph_reset(&g);
    y = mrl_mlp_forward(&m, &g, &x);
    MRL_CHECK(y && y->ndim == 2 && y->shape[0] == 2 && y->shape[1] == 2, "mlp: output shape");
    if (!y) continue;
    for (b = 0; b < 2; b++) {
      double hid[4];
      for (j = 0; j < 4; j++) {
        double s = b0->data[j];
        for (k = 0; k < 3; k++) s += (double)w0->data[j * 3 + k] * xd[b * 3 + k];
        hid[j] = tanh(s);
      }
      for (i = 0; i < 2; i++) {
        double s = b1->data[i];
        for (j = 0; j < 4; j++) s += (double)w1->data[i * 4 + j] * hid[j];
        if (pass) s = tanh(s);
        ok &= fabs(y->data[b * 2 + i] - s) <= 1e-6;
      }
    }
    MRL_CHECK(ok, "mlp: forward differs from the hand computation (activate_output %d)", pass);
  }
  m.activate_output = 0;
  fill_uniform(ctx.r, MAX_R, &rng, -1, 1);
  ctx.mlp = &m;
  in[0] = &x;
  in[1] = w0;
  in[2] = b0;
  in[3] = w1;
  in[4] = b1;
  worst = mrl_gradcheck(&g, mlp_build, in, 5, &ctx, GC_EPS, GC_ATOL, GC_RTOL);
  MRL_CHECK(worst <= 1.0, "gradcheck mlp (x and every parameter): ratio %.3g", worst);
  mrl_graph_free(&g);
  mrl_params_free(&p);
}

/* ------------------------------------------------------------------------ */
/* Categorical distribution                                                 */
/* ------------------------------------------------------------------------ */

typedef struct ent_ctx {
  float r[MAX_R];
  const int *actions;
} ent_ctx;

static mrl_tensor *entropy_build(mrl_graph *g, mrl_tensor **in, void *ctx) {
  const ent_ctx *c = (const ent_ctx *)ctx;
  return weighted_sum(g, mrl_categorical_entropy(g, mrl_log_softmax(g, in[0])), c->r);
}

static mrl_tensor *log_prob_build(mrl_graph *g, mrl_tensor **in, void *ctx) {
  const ent_ctx *c = (const ent_ctx *)ctx;
  return weighted_sum(g, mrl_categorical_log_prob(g, mrl_log_softmax(g, in[0]), c->actions), c->r);
}

static void test_categorical(void) {
  static const float logits[8] = {0.5f, -1.0f, 2.0f, 0.0f, 1.0f, 1.0f, 1.0f, 1.0f};
  static const int actions[3] = {2, 3, 0};
  const int draws = 200000;
  float xd[15], xg[15];
  double lse = log(exp(0.5) + exp(-1.0) + exp(2.0) + exp(0.0)), ent0 = 0.0, prob[4];
  int i, counts[4] = {0}, only = 1;
  mrl_graph g;
  mrl_tensor *lp, *logp, *ent, x, *in[1];
  mrl_rng rng = mrl_rng_make(2718);
  ent_ctx ctx;
  double worst;
  for (i = 0; i < 4; i++) {
    prob[i] = exp((double)logits[i] - lse);
    ent0 -= prob[i] * ((double)logits[i] - lse);
  }
  mrl_graph_init(&g, 1 << 14);
  lp = mrl_log_softmax(&g, mrl_tensor_from2(&g, logits, 2, 4));
  logp = mrl_categorical_log_prob(&g, lp, actions);
  ent = mrl_categorical_entropy(&g, lp);
  MRL_CHECK(logp && logp->size == 2 && ent && ent->size == 2, "categorical: outputs must be [B]");
  if (logp && ent) {
    MRL_CHECK_NEAR(logp->data[0], 2.0 - lse, 1e-6, 1e-6, "log_prob(row 0, action 2)");
    MRL_CHECK_NEAR(logp->data[1], -log(4.0), 1e-6, 1e-6, "log_prob(uniform row, action 3)");
    MRL_CHECK_NEAR(ent->data[0], ent0, 1e-6, 1e-6, "entropy(row 0)");
    MRL_CHECK_NEAR(ent->data[1], log(4.0), 1e-6, 1e-6, "entropy(uniform row)");
  }

  fill_uniform(xd, 15, &rng, -2, 2);
  fill_uniform(ctx.r, MAX_R, &rng, -1, 1);
  ctx.actions = actions;
  x = mrl_tensor_make2(xd, xg, 3, 5);
  in[0] = &x;
  worst = mrl_gradcheck(&g, entropy_build, in, 1, &ctx, GC_EPS, GC_ATOL, GC_RTOL);
  MRL_CHECK(worst <= 1.0, "gradcheck categorical entropy: ratio %.3g", worst);
  worst = mrl_gradcheck(&g, log_prob_build, in, 1, &ctx, GC_EPS, GC_ATOL, GC_RTOL);
  MRL_CHECK(worst <= 1.0, "gradcheck categorical log_prob: ratio %.3g", worst);
  mrl_graph_free(&g);

  for (i = 0; i < draws; i++) {
    int k = mrl_categorical_sample(logits, 4, &rng);
    if (k < 0 || k >= 4) {
      only = 0;
      break;
    }
    counts[k]++;
  }
  MRL_CHECK(only, "categorical_sample: index out of range");
  for (i = 0; i < 4; i++)
    MRL_CHECK(fabs((double)counts[i] / draws - prob[i]) < 0.01,
              "categorical_sample: action %d drawn %.4f of the time, softmax gives %.4f", i,
              (double)counts[i] / draws, prob[i]);
  {
    const float masked[3] = {-1e30f, 0.0f, -1e30f};
    only = 1;
    for (i = 0; i < 1000; i++) only &= mrl_categorical_sample(masked, 3, &rng) == 1;
    MRL_CHECK(only, "categorical_sample: drew an action of probability 0");
  }
  {
    const float l2[5] = {-3.0f, 0.25f, -0.5f, 4.0f, 3.5f};
    MRL_CHECK(mrl_categorical_mode(logits, 4) == 2, "categorical_mode: want 2");
    MRL_CHECK(mrl_categorical_mode(l2, 5) == 3, "categorical_mode: want 3");
    MRL_CHECK(mrl_categorical_mode(l2, 1) == 0, "categorical_mode: one action");
  }
}

/* ------------------------------------------------------------------------ */
/* Distributions against torch.distributions (tests/ref/dist.txt)          */
/* ------------------------------------------------------------------------ */

#define DIST_ATOL 1e-5
#define DIST_RTOL 1e-4

/* A fixture tensor copied into a graph tensor with a zeroed gradient. */
static mrl_tensor *ref_leaf(mrl_graph *g, const mrl_ref_file *f, const char *name, int rows,
                            int cols) {
  mrl_tensor *t = mrl_tensor_new2(g, rows, cols, 1);
  if (!t || !mrl_ref_fill(f, name, t->data, rows * cols)) return NULL;
  return t;
}

static mrl_tensor *ref_weights(mrl_graph *g, const mrl_ref_file *f, const char *name, int n) {
  mrl_tensor *t = mrl_tensor_new2(g, 1, n, 0);
  if (!t || !mrl_ref_fill(f, name, t->data, n)) return NULL;
  return mrl_reshape(g, t, 1, &n);
}

static void test_dist_reference(void) {
  mrl_ref_file f;
  mrl_graph g;
  mrl_tensor *a, *b, *c, *d, *e, *w1, *w2, *w3, *v1, *v2, *v3, *loss;
  if (!mrl_ref_open(&f, "tests/ref/dist.txt")) return;
  mrl_graph_init(&g, 1 << 16);
  /* categorical KL */
  a = ref_leaf(&g, &f, "cat_logits_p", 3, 5);
  b = ref_leaf(&g, &f, "cat_logits_q", 3, 5);
  w1 = ref_weights(&g, &f, "cat_w", 3);
  v1 = mrl_categorical_kl(&g, mrl_log_softmax(&g, a), mrl_log_softmax(&g, b));
  MRL_CHECK(v1 && v1->size == 3, "categorical_kl: want [3]");
  if (v1 && w1 && mrl_backward(&g, mrl_sum(&g, mrl_mul(&g, v1, w1))) == MRL_OK) {
    mrl_ref_expect(&f, "cat_kl", v1->data, 3, DIST_ATOL, DIST_RTOL);
    mrl_ref_expect(&f, "cat_d_logits_p", a->grad, 15, DIST_ATOL, DIST_RTOL);
    mrl_ref_expect(&f, "cat_d_logits_q", b->grad, 15, DIST_ATOL, DIST_RTOL);
  }
  /* diagonal Gaussian */
  mrl_graph_reset(&g);
  a = ref_leaf(&g, &f, "gauss_mean", 4, 3);
  b = ref_leaf(&g, &f, "gauss_log_std", 4, 3);
  c = ref_leaf(&g, &f, "gauss_x", 4, 3);
  d = ref_leaf(&g, &f, "gauss_mean_q", 4, 3);
  e = ref_leaf(&g, &f, "gauss_log_std_q", 4, 3);
  w1 = ref_weights(&g, &f, "gauss_w1", 4);
  w2 = ref_weights(&g, &f, "gauss_w2", 4);
  w3 = ref_weights(&g, &f, "gauss_w3", 4);
  v1 = mrl_gaussian_log_prob(&g, a, b, c);
  v2 = mrl_gaussian_entropy(&g, b);
  v3 = mrl_gaussian_kl(&g, a, b, d, e);
  loss =
      mrl_add(&g, mrl_add(&g, mrl_sum(&g, mrl_mul(&g, v1, w1)), mrl_sum(&g, mrl_mul(&g, v2, w2))),
              mrl_sum(&g, mrl_mul(&g, v3, w3)));
  MRL_CHECK(loss && mrl_backward(&g, loss) == MRL_OK, "gaussian: forward/backward failed");
  if (loss) {
    mrl_ref_expect(&f, "gauss_logp", v1->data, 4, DIST_ATOL, DIST_RTOL);
    mrl_ref_expect(&f, "gauss_ent", v2->data, 4, DIST_ATOL, DIST_RTOL);
    mrl_ref_expect(&f, "gauss_kl", v3->data, 4, DIST_ATOL, DIST_RTOL);
    mrl_ref_expect(&f, "gauss_d_mean", a->grad, 12, DIST_ATOL, DIST_RTOL);
    mrl_ref_expect(&f, "gauss_d_log_std", b->grad, 12, DIST_ATOL, DIST_RTOL);
    mrl_ref_expect(&f, "gauss_d_x", c->grad, 12, DIST_ATOL, DIST_RTOL);
    mrl_ref_expect(&f, "gauss_d_mean_q", d->grad, 12, DIST_ATOL, DIST_RTOL);
    mrl_ref_expect(&f, "gauss_d_log_std_q", e->grad, 12, DIST_ATOL, DIST_RTOL);
  }
  /* tanh-squashed Gaussian, including saturated tanh(u) = +-1 */
  mrl_graph_reset(&g);
  a = ref_leaf(&g, &f, "tanh_mean", 4, 3);
  b = ref_leaf(&g, &f, "tanh_log_std", 4, 3);
  c = ref_leaf(&g, &f, "tanh_u", 4, 3);
  w1 = ref_weights(&g, &f, "tanh_w", 4);
  v1 = mrl_tanh_gaussian_log_prob(&g, a, b, c);
  MRL_CHECK(v1 && mrl_backward(&g, mrl_sum(&g, mrl_mul(&g, v1, w1))) == MRL_OK,
            "tanh_gaussian: forward/backward failed");
  if (v1) {
    mrl_ref_expect(&f, "tanh_logp", v1->data, 4, DIST_ATOL, DIST_RTOL);
    mrl_ref_expect(&f, "tanh_d_mean", a->grad, 12, DIST_ATOL, DIST_RTOL);
    mrl_ref_expect(&f, "tanh_d_log_std", b->grad, 12, DIST_ATOL, DIST_RTOL);
    mrl_ref_expect(&f, "tanh_d_u", c->grad, 12, DIST_ATOL, DIST_RTOL);
  }
  /* mixture, with a near-empty component and a far-away point */
  mrl_graph_reset(&g);
  a = ref_leaf(&g, &f, "mix_logits", 4, 3);
  b = ref_leaf(&g, &f, "mix_mean", 4, 6);
  c = ref_leaf(&g, &f, "mix_log_std", 4, 6);
  d = ref_leaf(&g, &f, "mix_x", 4, 2);
  w1 = ref_weights(&g, &f, "mix_w", 4);
  v1 = mrl_mixture_log_prob(&g, a, b, c, d);
  MRL_CHECK(v1 && mrl_backward(&g, mrl_sum(&g, mrl_mul(&g, v1, w1))) == MRL_OK,
            "mixture: forward/backward failed");
  if (v1) {
    mrl_ref_expect(&f, "mix_logp", v1->data, 4, DIST_ATOL, DIST_RTOL);
    mrl_ref_expect(&f, "mix_d_logits", a->grad, 12, DIST_ATOL, DIST_RTOL);
    mrl_ref_expect(&f, "mix_d_mean", b->grad, 24, DIST_ATOL, DIST_RTOL);
    mrl_ref_expect(&f, "mix_d_log_std", c->grad, 24, DIST_ATOL, DIST_RTOL);
    mrl_ref_expect(&f, "mix_d_x", d->grad, 8, DIST_ATOL, DIST_RTOL);
  }
  mrl_graph_free(&g);
  mrl_ref_close(&f);
}

typedef struct dist_ctx {
  int which;
  uint64_t seed;
  float r[MAX_R];
} dist_ctx;

/* in: mean [3,2], log_std [2] (state-independent), x [3,2], logits [3,2],
 * and a mixture target [3,1] (the mixture uses K = 2, D = 1, log_std = x). */
static mrl_tensor *dist_build(mrl_graph *g, mrl_tensor **in, void *ctx) {
  const dist_ctx *c = (const dist_ctx *)ctx;
  mrl_rng rng = mrl_rng_make(c->seed); /* the same eps at every evaluation */
  mrl_tensor *lp = NULL, *y;
  switch (c->which) {
  case 0: return weighted_sum(g, mrl_gaussian_log_prob(g, in[0], in[1], in[2]), c->r);
  case 1: return weighted_sum(g, mrl_gaussian_kl(g, in[0], in[1], in[2], in[1]), c->r);
  case 2:
    y = mrl_tanh_gaussian_sample(g, in[0], in[1], &rng, &lp);
    return y && lp ? mrl_add(g, weighted_sum(g, y, c->r), weighted_sum(g, lp, c->r + 8)) : NULL;
  case 3: return weighted_sum(g, mrl_gaussian_entropy(g, in[1]), c->r);
  default: /* mixture with K = 2, D = 1: mean and log_std as [3, 2] */
    return weighted_sum(g, mrl_mixture_log_prob(g, in[3], in[0], in[2], in[4]), c->r);
  }
}

static void test_dist_gradcheck(void) {
  static const char *const what[5] = {"gaussian_log_prob", "gaussian_kl", "tanh_gaussian_sample",
                                      "gaussian_entropy", "mixture_log_prob"};
  float md[6], mg[6], sd[2], sg[2], xd[6], xg[6], ld[6], lg[6], td[3], tg[3];
  mrl_tensor m = mrl_tensor_make2(md, mg, 3, 2), x = mrl_tensor_make2(xd, xg, 3, 2);
  mrl_tensor l = mrl_tensor_make2(ld, lg, 3, 2), t = mrl_tensor_make2(td, tg, 3, 1), s, *in[5];
  int shape1[1] = {2}, k;
  mrl_graph g;
  dist_ctx ctx;
  mrl_rng rng = mrl_rng_make(404);
  s = mrl_tensor_make(sd, sg, 1, shape1);
  fill_uniform(md, 6, &rng, -1, 1);
  fill_uniform(sd, 2, &rng, -0.7f, 0.3f);
  fill_uniform(xd, 6, &rng, -1, 1);
  fill_uniform(ld, 6, &rng, -1, 1);
  fill_uniform(td, 3, &rng, -1.5f, 1.5f);
  fill_uniform(ctx.r, MAX_R, &rng, -1, 1);
  ctx.seed = 8;
  in[0] = &m;
  in[1] = &s;
  in[2] = &x;
  in[3] = &l;
  in[4] = &t;
  mrl_graph_init(&g, 1 << 16);
  for (k = 0; k < 5; k++) {
    double worst;
    ctx.which = k;
    worst = mrl_gradcheck(&g, dist_build, in, 5, &ctx, GC_EPS, GC_ATOL, GC_RTOL);
    MRL_CHECK(worst <= 1.0, "gradcheck %s (shared [D] log_std): ratio %.3g", what[k], worst);
  }
  mrl_graph_free(&g);
}

/* Samples: the reparameterised Gaussian has the requested mean and std, the
 * tanh-Gaussian stays in (-1, 1) and reports the log-prob of its own draw,
 * the mixture picks components with softmax weights. */
static void test_dist_sampling(void) {
  enum { N = 20000 };
  static const int two[1] = {2};
  static const float mean[2] = {0.5f, -2.0f}, log_std[2] = {-1.0f, 0.3f};
  static const float logits[3] = {0.0f, 1.0f, -1.0f}, mmean[6] = {-5, 0, 0, 0, 5, 1};
  static const float mls[6] = {-2, -2, -1, -1, -3, -3};
  mrl_graph g;
  mrl_rng rng = mrl_rng_make(123);
  double s[2] = {0, 0}, s2[2] = {0, 0}, total = 0.0, p[3];
  int i, k, counts[3] = {0, 0, 0}, inside = 1;
  mrl_graph_init(&g, 1 << 20);
  mrl_graph_set_no_grad(&g, 1);
  {
    mrl_tensor *mu = mrl_tensor_new2(&g, N, 2, 0), *ls = mrl_tensor_from(&g, log_std, 1, two);
    mrl_tensor *y, *a, *lp = NULL, *lp2;
    for (i = 0; i < N; i++) memcpy(mu->data + 2 * i, mean, sizeof mean);
    y = mrl_gaussian_sample(&g, mu, ls, &rng);
    for (i = 0; i < N; i++)
      for (k = 0; k < 2; k++) {
        s[k] += y->data[2 * i + k];
        s2[k] += (double)y->data[2 * i + k] * y->data[2 * i + k];
      }
    for (k = 0; k < 2; k++) {
      double m = s[k] / N, sd = sqrt(s2[k] / N - m * m), want = exp(log_std[k]);
      MRL_CHECK(fabs(m - mean[k]) < 4.0 * want / sqrt((double)N),
                "gaussian_sample: mean %.4f, want %.4f", m, mean[k]);
      MRL_CHECK(fabs(sd - want) < 0.02 * want, "gaussian_sample: std %.4f, want %.4f", sd, want);
    }
    a = mrl_tanh_gaussian_sample(&g, mrl_tensor_new2(&g, 4, 2, 0), ls, &rng, &lp);
    for (i = 0; i < 8; i++) inside &= fabsf(a->data[i]) < 1.0f;
    MRL_CHECK(inside, "tanh_gaussian_sample: actions must stay in (-1, 1)");
    /* its log-prob equals the density of the same draw: u = atanh(a) */
    {
      mrl_tensor *u = mrl_tensor_new2(&g, 4, 2, 0);
      for (i = 0; i < 8; i++) u->data[i] = 0.5f * logf((1.0f + a->data[i]) / (1.0f - a->data[i]));
      lp2 = mrl_tanh_gaussian_log_prob(&g, mrl_tensor_new2(&g, 4, 2, 0), ls, u);
      for (i = 0; i < 4; i++)
        MRL_CHECK_NEAR(lp->data[i], lp2->data[i], 1e-3, 1e-3, "tanh_gaussian_sample log_prob");
    }
  }
  for (k = 0; k < 3; k++) total += exp(logits[k]);
  for (k = 0; k < 3; k++) p[k] = exp(logits[k]) / total;
  for (i = 0; i < N; i++) {
    float out[2];
    int c = mrl_mixture_sample(logits, mmean, mls, 3, 2, 1.0f, &rng, out);
    counts[c]++;
    inside &= fabsf(out[0] - mmean[2 * c]) < 6.0f * expf(mls[2 * c]) &&
              fabsf(out[1] - mmean[2 * c + 1]) < 6.0f * expf(mls[2 * c + 1]);
  }
  for (k = 0; k < 3; k++)
    MRL_CHECK(fabs((double)counts[k] / N - p[k]) < 0.015,
              "mixture_sample: component %d drawn %.4f, want %.4f", k, (double)counts[k] / N, p[k]);
  MRL_CHECK(inside, "mixture_sample: a draw lies far from its component");
  mrl_graph_free(&g);
}

/* ------------------------------------------------------------------------ */
/* Heads: dueling, C51 and MDN against PyTorch (tests/ref/heads.txt)        */
/* ------------------------------------------------------------------------ */

/* Loads every tensor of p from "<prefix><name without the first component>"
 * (e.g. "duel_value.0.weight" for "q.value.0.weight"). */
static int load_params(const mrl_ref_file *f, mrl_params *p, const char *prefix) {
  int i, ok = 1;
  char name[96];
  for (i = 0; i < p->count; i++) {
    const char *dot = strchr(p->items[i].name, '.');
    mrl_tensor *t = mrl_params_tensor(p, i);
    snprintf(name, sizeof name, "%s%s", prefix, dot ? dot + 1 : p->items[i].name);
    ok &= mrl_ref_fill(f, name, t->data, t->size);
  }
  return ok;
}

static void expect_param_grads(const mrl_ref_file *f, mrl_params *p, const char *prefix) {
  int i;
  char name[96];
  for (i = 0; i < p->count; i++) {
    const char *dot = strchr(p->items[i].name, '.');
    mrl_tensor *t = mrl_params_tensor(p, i);
    snprintf(name, sizeof name, "%sd_%s", prefix, dot ? dot + 1 : p->items[i].name);
    mrl_ref_expect(f, name, t->grad, t->size, DIST_ATOL, DIST_RTOL);
  }
}

static void test_heads_reference(void) {
  mrl_ref_file f;
  mrl_graph g;
  mrl_params p;
  mrl_tensor *x, *w, *y, *out;
  if (!mrl_ref_open(&f, "tests/ref/heads.txt")) return;
  mrl_graph_init(&g, 1 << 16);
  { /* dueling */
    mrl_dueling_head h;
    mrl_params_init(&p);
    mrl_dueling_head_init(&h, &p, "q", 5, 8, 3, mrl_init_default());
    mrl_params_finalize(&p, 1);
    x = ref_leaf(&g, &f, "duel_x", 4, 5);
    w = ref_leaf(&g, &f, "duel_w", 4, 3);
    if (load_params(&f, &p, "duel_") && x && w) {
      out = mrl_dueling_head_forward(&h, &g, x);
      MRL_CHECK(out && out->shape[0] == 4 && out->shape[1] == 3, "dueling: Q must be [B, A]");
      if (out && mrl_backward(&g, mrl_sum(&g, mrl_mul(&g, out, w))) == MRL_OK) {
        mrl_ref_expect(&f, "duel_q", out->data, 12, DIST_ATOL, DIST_RTOL);
        mrl_ref_expect(&f, "duel_d_x", x->grad, 20, DIST_ATOL, DIST_RTOL);
        expect_param_grads(&f, &p, "duel_");
      }
    }
    mrl_params_free(&p);
  }
  { /* C51 projection against the NumPy reference */
    float probs[66], rewards[6], discounts[6], target[66];
    int b, j;
    if (mrl_ref_fill(&f, "proj_next_probs", probs, 66) &&
        mrl_ref_fill(&f, "proj_rewards", rewards, 6) &&
        mrl_ref_fill(&f, "proj_discounts", discounts, 6)) {
      mrl_c51_project(probs, rewards, discounts, 6, 11, -5.0f, 5.0f, target);
      mrl_ref_expect(&f, "proj_target", target, 66, 1e-6, 1e-5);
      for (b = 0; b < 6; b++) {
        double s = 0.0, want = 0.0;
        for (j = 0; j < 11; j++) s += target[b * 11 + j], want += probs[b * 11 + j];
        MRL_CHECK(fabs(s - want) < 1e-6, "c51_project: row %d mass %.7f, want %.7f", b, s, want);
      }
    }
  }
  { /* C51 head and loss */
    mrl_c51_head h;
    float target[15], af[3], z[5], q[6];
    int actions[3], i;
    mrl_graph_reset(&g);
    mrl_params_init(&p);
    mrl_c51_head_init(&h, &p, "c51", 4, 2, 5, -2.0f, 2.0f, mrl_init_default());
    mrl_params_finalize(&p, 1);
    x = ref_leaf(&g, &f, "c51_x", 3, 4);
    w = ref_leaf(&g, &f, "c51_w", 1, 3);
    if (load_params(&f, &p, "c51_") && x && w && mrl_ref_fill(&f, "c51_target", target, 15) &&
        mrl_ref_fill(&f, "c51_actions", af, 3)) {
      mrl_tensor *lp, *ce;
      for (i = 0; i < 3; i++) actions[i] = (int)af[i];
      lp = mrl_c51_head_forward(&h, &g, x);
      ce = mrl_c51_loss(&h, &g, lp, actions, target);
      MRL_CHECK(lp && ce && ce->size == 3, "c51: log_probs [B, A*N] and loss [B]");
      if (ce && mrl_backward(&g, mrl_sum(&g, mrl_mul(&g, mrl_reshape(&g, ce, 2, w->shape), w))) ==
                    MRL_OK) {
        mrl_ref_expect(&f, "c51_log_probs", lp->data, 30, DIST_ATOL, DIST_RTOL);
        mrl_ref_expect(&f, "c51_ce", ce->data, 3, DIST_ATOL, DIST_RTOL);
        mrl_ref_expect(&f, "c51_d_x", x->grad, 12, DIST_ATOL, DIST_RTOL);
        expect_param_grads(&f, &p, "c51_");
        mrl_c51_support(-2.0f, 2.0f, 5, z);
        mrl_c51_q_values(&h, lp->data, 3, q);
        for (i = 0; i < 6; i++) {
          double s = 0.0;
          int k;
          for (k = 0; k < 5; k++) s += exp(lp->data[i * 5 + k]) * z[k];
          MRL_CHECK_NEAR(q[i], s, 1e-6, 1e-5, "c51_q_values: expectation over the support");
        }
        MRL_CHECK(z[0] == -2.0f && z[2] == 0.0f && z[4] == 2.0f,
                  "c51_support: -2..2 in steps of 1");
      }
    }
    mrl_params_free(&p);
  }
  { /* MDN head */
    mrl_mdn_head h;
    mrl_rng rng = mrl_rng_make(31);
    mrl_graph_reset(&g);
    mrl_params_init(&p);
    mrl_mdn_head_init(&h, &p, "mdn", 4, 2, 3, mrl_init_default());
    mrl_params_finalize(&p, 1);
    x = ref_leaf(&g, &f, "mdn_x", 3, 4);
    y = ref_leaf(&g, &f, "mdn_y", 3, 2);
    w = ref_leaf(&g, &f, "mdn_w", 1, 3);
    if (load_params(&f, &p, "mdn_") && x && y && w) {
      out = mrl_mdn_head_log_prob(&h, &g, x, y);
      MRL_CHECK(out && out->size == 3, "mdn: log_prob must be [B]");
      if (out && mrl_backward(&g, mrl_sum(&g, mrl_mul(&g, mrl_reshape(&g, out, 2, w->shape), w))) ==
                     MRL_OK) {
        mrl_ref_expect(&f, "mdn_logp", out->data, 3, DIST_ATOL, DIST_RTOL);
        mrl_ref_expect(&f, "mdn_d_x", x->grad, 12, DIST_ATOL, DIST_RTOL);
        expect_param_grads(&f, &p, "mdn_");
      }
      { /* sampling: sharp components, one dominant logit per output */
        mrl_tensor *lg, *mu, *ls;
        float out[6];
        int i, ok = 1;
        mrl_graph_reset(&g);
        mrl_graph_set_no_grad(&g, 1);
        x = ref_leaf(&g, &f, "mdn_x", 3, 4); /* the reset reclaimed the old one */
        mrl_mdn_head_forward(&h, &g, x, &lg, &mu, &ls);
        for (i = 0; i < 18; i++) {
          lg->data[i] = i % 3 == 1 ? 30.0f : 0.0f; /* component 1 */
          ls->data[i] = -12.0f;
        }
        mrl_mdn_head_sample(&h, lg, mu, ls, 1.0f, &rng, out);
        for (i = 0; i < 6; i++) ok &= fabsf(out[i] - mu->data[i * 3 + 1]) < 1e-3f;
        MRL_CHECK(ok, "mdn_head_sample: draws must sit on the dominant component's mean");
        mrl_graph_set_no_grad(&g, 0);
      }
    }
    mrl_params_free(&p);
  }
  mrl_graph_free(&g);
  mrl_ref_close(&f);
}

typedef struct duel_ctx {
  float r[MAX_R];
} duel_ctx;

static mrl_tensor *duel_build(mrl_graph *g, mrl_tensor **in, void *ctx) {
  return weighted_sum(g, mrl_dueling_combine(g, in[0], in[1]), ((duel_ctx *)ctx)->r);
}

static mrl_tensor *tanh_log_det_build(mrl_graph *g, mrl_tensor **in, void *ctx) {
  return weighted_sum(g, mrl_tanh_log_det(g, in[0]), ((duel_ctx *)ctx)->r);
}

static void test_heads_gradcheck(void) {
  float vd[3], vg[3], ad[12], ag[12], ud[12], ug[12];
  mrl_tensor v = mrl_tensor_make2(vd, vg, 3, 1), a = mrl_tensor_make2(ad, ag, 3, 4);
  mrl_tensor u = mrl_tensor_make2(ud, ug, 3, 4), *in[2];
  mrl_graph g;
  duel_ctx ctx;
  mrl_rng rng = mrl_rng_make(55);
  double worst;
  int i;
  fill_uniform(vd, 3, &rng, -1, 1);
  fill_uniform(ad, 12, &rng, -1, 1);
  fill_uniform(ud, 12, &rng, -3, 3);
  fill_uniform(ctx.r, MAX_R, &rng, -1, 1);
  mrl_graph_init(&g, 1 << 14);
  in[0] = &v;
  in[1] = &a;
  worst = mrl_gradcheck(&g, duel_build, in, 2, &ctx, GC_EPS, GC_ATOL, GC_RTOL);
  MRL_CHECK(worst <= 1.0, "gradcheck dueling_combine: ratio %.3g", worst);
  in[0] = &u;
  worst = mrl_gradcheck(&g, tanh_log_det_build, in, 1, &ctx, GC_EPS, GC_ATOL, GC_RTOL);
  MRL_CHECK(worst <= 1.0, "gradcheck tanh_log_det: ratio %.3g", worst);
  { /* far in the tails the stable form stays finite and equals log(1 - tanh^2) */
    static const float us[4] = {-40.0f, -0.3f, 0.7f, 45.0f};
    mrl_tensor *t;
    mrl_graph_reset(&g);
    t = mrl_tanh_log_det(&g, mrl_tensor_from2(&g, us, 1, 4));
    for (i = 0; i < 4; i++) {
      double want = fabs(us[i]) < 5 ? log(1.0 - tanh(us[i]) * tanh(us[i]))
                                    : 2.0 * (log(2.0) - fabs(us[i])); /* asymptote */
      MRL_CHECK_NEAR(t->data[i], want, 1e-5, 1e-5, "tanh_log_det");
    }
  }
  mrl_graph_free(&g);
}

/* ------------------------------------------------------------------------ */
/* Net2Net surgery: the grown network computes the same function            */
/* ------------------------------------------------------------------------ */

static double max_abs_diff(const float *a, const float *b, int n) {
  double w = 0.0;
  int i;
  for (i = 0; i < n; i++)
    if (fabs((double)a[i] - b[i]) > w) w = fabs((double)a[i] - b[i]);
  return w;
}

static void mlp_outputs(const mrl_mlp *m, const float *x, int B, int in, float *out) {
  mrl_graph g;
  mrl_tensor *y;
  mrl_graph_init(&g, 1 << 14);
  mrl_graph_set_no_grad(&g, 1);
  y = mrl_mlp_forward(m, &g, mrl_tensor_from2(&g, x, B, in));
  memcpy(out, y->data, sizeof(float) * (size_t)y->size);
  mrl_graph_free(&g);
}

static void test_net2net_mlp(void) {
  static const int s0[4] = {4, 6, 5, 3}, s1[4] = {4, 10, 5, 3}, s2[4] = {4, 10, 8, 3};
  static const int s3[5] = {4, 10, 8, 8, 3};
  mrl_params p0, p1, p2, p3, extra0, extra1;
  mrl_mlp m0, m1, m2, m3;
  mrl_rng rng = mrl_rng_make(2016);
  float x[5 * 4], y0[15], y[15];
  int map1[10], map2[8], act, copies, shape[1] = {7};
  for (act = 0; act < 2; act++) {
    mrl_activation a = act ? MRL_ACT_RELU : MRL_ACT_TANH;
    fill_uniform(x, 20, &rng, -2, 2);
    mrl_params_init(&p0);
    mrl_mlp_init(&m0, &p0, "pi", 4, s0, a, mrl_init_default(), mrl_init_default());
    mrl_params_finalize(&p0, 10 + (uint64_t)act);
    mlp_outputs(&m0, x, 5, 4, y0);
    /* widen the first hidden layer 6 -> 10 */
    mrl_params_init(&p1);
    mrl_mlp_init(&m1, &p1, "pi", 4, s1, a, mrl_init_default(), mrl_init_default());
    mrl_params_finalize(&p1, 99);
    mrl_net2net_mapping(6, 10, &rng, map1);
    MRL_CHECK(mrl_mlp_widen(&m1, &m0, 0, map1) == MRL_OK, "mlp_widen layer 0 failed");
    mlp_outputs(&m1, x, 5, 4, y);
    MRL_CHECK(max_abs_diff(y, y0, 15) <= 1e-6, "mlp_widen 6->10 (%s): outputs moved by %.3g",
              act ? "relu" : "tanh", max_abs_diff(y, y0, 15));
    /* then the second 5 -> 8 */
    mrl_params_init(&p2);
    mrl_mlp_init(&m2, &p2, "pi", 4, s2, a, mrl_init_default(), mrl_init_default());
    mrl_params_finalize(&p2, 98);
    mrl_net2net_mapping(5, 8, &rng, map2);
    MRL_CHECK(mrl_mlp_widen(&m2, &m1, 1, map2) == MRL_OK, "mlp_widen layer 1 failed");
    mlp_outputs(&m2, x, 5, 4, y);
    MRL_CHECK(max_abs_diff(y, y0, 15) <= 1e-6, "mlp_widen 5->8 (%s): outputs moved by %.3g",
              act ? "relu" : "tanh", max_abs_diff(y, y0, 15));
    /* deeper: an identity layer between the two hidden layers' successors */
    mrl_params_init(&p3);
    mrl_mlp_init(&m3, &p3, "pi", 5, s3, a, mrl_init_default(), mrl_init_default());
    mrl_params_finalize(&p3, 97);
    if (a == MRL_ACT_RELU) {
      MRL_CHECK(mrl_mlp_insert_identity(&m3, &m2, 2) == MRL_OK, "insert_identity failed");
      mlp_outputs(&m3, x, 5, 4, y);
      MRL_CHECK(max_abs_diff(y, y0, 15) <= 1e-6, "insert_identity (relu): outputs moved by %.3g",
                max_abs_diff(y, y0, 15));
    } else {
      MRL_CHECK(mrl_mlp_insert_identity(&m3, &m2, 2) == MRL_ERR_INVALID_ARGUMENT,
                "insert_identity must refuse a tanh MLP (not function-preserving)");
    }
    MRL_CHECK(mrl_mlp_widen(&m2, &m0, 1, map2) == MRL_ERR_INVALID_ARGUMENT,
              "mlp_widen: mismatched architectures must be refused");
    MRL_CHECK(mrl_mlp_insert_identity(&m3, &m2, 0) == MRL_ERR_INVALID_ARGUMENT,
              "insert_identity: position 0 must be refused");
    mrl_params_free(&p0);
    mrl_params_free(&p1);
    mrl_params_free(&p2);
    mrl_params_free(&p3);
  }
  { /* a bad mapping is refused */
    int bad[10] = {0, 1, 2, 3, 4, 5, 6, 0, 0, 0};
    mrl_params_init(&p0);
    mrl_mlp_init(&m0, &p0, "pi", 4, s0, MRL_ACT_TANH, mrl_init_default(), mrl_init_default());
    mrl_params_finalize(&p0, 1);
    mrl_params_init(&p1);
    mrl_mlp_init(&m1, &p1, "pi", 4, s1, MRL_ACT_TANH, mrl_init_default(), mrl_init_default());
    mrl_params_finalize(&p1, 2);
    MRL_CHECK(mrl_mlp_widen(&m1, &m0, 0, bad) == MRL_ERR_INVALID_ARGUMENT,
              "mlp_widen: a mapping to a unit that does not exist must be refused");
    /* copy_matching copies tensors of equal name and shape only */
    mrl_params_init(&extra0);
    mrl_params_add(&extra0, "pi.4.bias", 1, s0 + 3, mrl_init_make(MRL_INIT_CONSTANT, 3.0f));
    mrl_params_add(&extra0, "pi.0.weight", 1, shape, mrl_init_make(MRL_INIT_CONSTANT, 4.0f));
    mrl_params_finalize(&extra0, 0);
    mrl_params_init(&extra1);
    mrl_params_add(&extra1, "other", 1, shape, mrl_init_make(MRL_INIT_ZEROS, 0.0f));
    mrl_params_finalize(&extra1, 0);
    copies = mrl_params_copy_matching(&p1, &extra0);
    MRL_CHECK(copies == 1 && mrl_params_tensor(&p1, m1.layers[2].bias)->data[2] == 3.0f,
              "copy_matching: copied %d tensors, want 1 (same name and shape)", copies);
    MRL_CHECK(mrl_params_copy_matching(&p1, &extra1) == 0, "copy_matching: no names in common");
    mrl_params_free(&extra0);
    mrl_params_free(&extra1);
    mrl_params_free(&p0);
    mrl_params_free(&p1);
  }
}

static void lstm_head_outputs(const mrl_lstm_layer *l, const mrl_linear_layer *head, const float *x,
                              int T, int B, const float *h0, const float *c0, const float *start,
                              float *out) {
  mrl_graph g;
  mrl_tensor *y, *hT = NULL, *cT = NULL;
  int H = l->hidden_size;
  mrl_graph_init(&g, 1 << 16);
  mrl_graph_set_no_grad(&g, 1);
  y = mrl_lstm_sequence(l, &g, mrl_tensor_from2(&g, x, T * B, l->input_size), T, B,
                        mrl_tensor_from2(&g, h0, B, H), mrl_tensor_from2(&g, c0, B, H), start, &hT,
                        &cT);
  y = mrl_linear_layer_forward(head, &g, y);
  memcpy(out, y->data, sizeof(float) * (size_t)y->size);
  mrl_graph_free(&g);
}

static void test_net2net_lstm(void) {
  enum { T = 6, B = 2, I = 3, H = 4, H2 = 7, O = 5 };
  static const float start[T * B] = {0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0};
  mrl_params p0, p1;
  mrl_lstm_layer l0, l1;
  mrl_linear_layer h0l, h1l;
  mrl_rng rng = mrl_rng_make(7);
  float x[T * B * I], hs[B * H], cs[B * H], hw[B * H2], cw[B * H2], y0[T * B * O], y1[T * B * O];
  int map[H2];
  fill_uniform(x, T * B * I, &rng, -1, 1);
  fill_uniform(hs, B * H, &rng, -1, 1);
  fill_uniform(cs, B * H, &rng, -1, 1);
  mrl_params_init(&p0);
  mrl_lstm_layer_init(&l0, &p0, "core", I, H, mrl_init_default(), 1.0f);
  mrl_linear_layer_init(&h0l, &p0, "pi", H, O, mrl_init_default());
  mrl_params_finalize(&p0, 3);
  mrl_params_init(&p1);
  mrl_lstm_layer_init(&l1, &p1, "core", I, H2, mrl_init_default(), 1.0f);
  mrl_linear_layer_init(&h1l, &p1, "pi", H2, O, mrl_init_default());
  mrl_params_finalize(&p1, 4);
  mrl_net2net_mapping(H, H2, &rng, map);
  MRL_CHECK(mrl_lstm_widen(&l1, &l0, map, &h1l, &h0l) == MRL_OK, "lstm_widen failed");
  mrl_net2net_widen_rows(hs, B, H, map, H2, hw);
  mrl_net2net_widen_rows(cs, B, H, map, H2, cw);
  lstm_head_outputs(&l0, &h0l, x, T, B, hs, cs, start, y0);
  lstm_head_outputs(&l1, &h1l, x, T, B, hw, cw, start, y1);
  MRL_CHECK(max_abs_diff(y0, y1, T * B * O) <= 1e-6,
            "lstm_widen 4->7: outputs through the head moved by %.3g",
            max_abs_diff(y0, y1, T * B * O));
  MRL_CHECK(mrl_lstm_widen(&l1, &l0, map, &h1l, NULL) == MRL_ERR_INVALID_ARGUMENT,
            "lstm_widen: a head without its source must be refused");
  mrl_params_free(&p0);
  mrl_params_free(&p1);
}

/* Target networks: Polyak with tau = 1 is the copy, tau = 0 changes nothing,
 * and neither touches gradients or optimiser moments. */
static void test_target_updates(void) {
  mrl_params a, b;
  mrl_mlp ma, mb;
  int sizes[3] = {3, 5, 2};
  size_t j;
  int ok;
  float *saved;
  mrl_params_init(&a);
  mrl_mlp_init(&ma, &a, "q", 3, sizes, MRL_ACT_RELU, mrl_init_default(), mrl_init_default());
  mrl_params_finalize(&a, 1);
  mrl_params_init(&b);
  mrl_mlp_init(&mb, &b, "q", 3, sizes, MRL_ACT_RELU, mrl_init_default(), mrl_init_default());
  mrl_params_finalize(&b, 2);
  for (j = 0; j < b.total; j++) b.grads[j] = 1.0f, b.moment1[j] = 2.0f, b.moment2[j] = 3.0f;
  saved = (float *)malloc(sizeof(float) * b.total);
  memcpy(saved, b.values, sizeof(float) * b.total);
  mrl_params_polyak(&b, &a, 0.0f);
  MRL_CHECK(memcmp(saved, b.values, sizeof(float) * b.total) == 0, "polyak(0) must change nothing");
  mrl_params_polyak(&b, &a, 1.0f);
  MRL_CHECK(memcmp(a.values, b.values, sizeof(float) * b.total) == 0,
            "polyak(1) must equal the copy");
  memcpy(b.values, saved, sizeof(float) * b.total);
  mrl_params_polyak(&b, &a, 0.005f);
  ok = 1;
  for (j = 0; j < b.total; j++)
    ok &= fabsf(b.values[j] - (0.005f * a.values[j] + 0.995f * saved[j])) <= 1e-7f;
  MRL_CHECK(ok, "polyak(0.005): tau src + (1 - tau) dst");
  mrl_params_copy(&b, &a);
  ok = memcmp(a.values, b.values, sizeof(float) * b.total) == 0;
  for (j = 0; j < b.total; j++)
    ok &= b.grads[j] == 1.0f && b.moment1[j] == 2.0f && b.moment2[j] == 3.0f;
  MRL_CHECK(ok, "copy: values equal, gradients and moments untouched");
  free(saved);
  mrl_params_free(&a);
  mrl_params_free(&b);
}

/* ------------------------------------------------------------------------ */
/* Target networks: copy and Polyak averaging                               */
/* ------------------------------------------------------------------------ */

static void make_small(mrl_params *p, const float *v) {
  int shape[1] = {4}, idx;
  mrl_params_init(p);
  idx = mrl_params_add(p, "w", 1, shape, mrl_init_make(MRL_INIT_ZEROS, 0.0f));
  mrl_params_finalize(p, 0);
  memcpy(mrl_params_tensor(p, idx)->data, v, sizeof(float) * 4);
}

static void test_copy_polyak(void) {
  static const float vs[4] = {5.0f, -2.0f, 4.5f, 0.0f}, vd[4] = {1.0f, 2.0f, 0.5f, 8.0f};
  static const float want[4] = {2.0f, 1.0f, 1.5f, 6.0f}; /* vd + 0.25 (vs - vd), exact */
  mrl_params src, dst;
  float *d;
  int i, ok = 1;
  make_small(&src, vs);
  make_small(&dst, vd);
  d = mrl_params_tensor(&dst, 0)->data;
  mrl_params_polyak(&dst, &src, 0.25f);
  for (i = 0; i < 4; i++) ok &= d[i] == want[i];
  MRL_CHECK(ok, "polyak(0.25): got %g %g %g %g, want 2 1 1.5 6", d[0], d[1], d[2], d[3]);
  for (i = 0; i < 4; i++) ok &= mrl_params_tensor(&src, 0)->data[i] == vs[i];
  MRL_CHECK(ok, "polyak: the source must not change");
  mrl_params_copy(&dst, &src);
  ok = memcmp(dst.values, src.values, sizeof(float) * src.total) == 0;
  MRL_CHECK(ok, "copy: destination must equal the source exactly");
  mrl_params_free(&src);
  mrl_params_free(&dst);
}

/* An mrl_activation outside the enum stops with the op and the value (it
 * used to mean "none" without a word); a config's field is a recoverable
 * MRL_ERR_INVALID_ARGUMENT. */
#if defined(MRL_TEST_HAVE_FORK)
static int bad_activation_case;

static void bad_activation(void) {
  static float xd[4];
  mrl_tensor x = mrl_tensor_make2(xd, NULL, 2, 2);
  mrl_graph g;
  mrl_params p;
  mrl_mlp m;
  mrl_elman_layer e;
  int sizes[2] = {2, 3};
  mrl_graph_init(&g, 1 << 12);
  mrl_params_init(&p);
  switch (bad_activation_case) {
  case 0: (void)mrl_activate(&g, &x, (mrl_activation)7); break;
  case 1:
    mrl_mlp_init(&m, &p, "pi", 2, sizes, (mrl_activation)-1, mrl_init_default(),
                 mrl_init_default());
    break;
  default: mrl_elman_layer_init(&e, &p, "rnn", 2, 3, MRL_ACT_NONE, mrl_init_default()); break;
  }
}

static void test_bad_activation(void) {
  static const char *cases[3][3] = {{"activate", "activation 7 is not", "[2,2]"},
                                    {"mlp_init", "activation -1 is not", "MRL_ACT_NONE"},
                                    {"elman_layer_init", "activation 0 is not", "MRL_ACT_TANH"}};
  mrl_conv_encoder_config cfg = mrl_conv_encoder_config_default();
  mrl_conv_encoder enc;
  mrl_params p;
  char msg[2048];
  int i, status;
  for (i = 0; i < 3; i++) {
    bad_activation_case = i;
    status = mrl_test_run_captured(bad_activation, msg, sizeof msg);
    MRL_CHECK(status != -1 && (WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status))),
              "%s: bad activation did not stop", cases[i][0]);
    MRL_CHECK(strstr(msg, cases[i][0]) && strstr(msg, cases[i][1]) && strstr(msg, cases[i][2]),
              "%s: message \"%s\"", cases[i][0], msg);
  }
  mrl_params_init(&p);
  MRL_CHECK(mrl_conv_encoder_init(&enc, &p, "enc", &cfg) == MRL_OK, "default conv encoder");
  mrl_params_free(&p);
  mrl_params_init(&p);
  cfg.activation = (mrl_activation)3;
  MRL_CHECK(mrl_conv_encoder_init(&enc, &p, "enc", &cfg) == MRL_ERR_INVALID_ARGUMENT,
            "conv encoder config with activation 3");
  mrl_params_free(&p);
}
#else
static void test_bad_activation(void) {
  printf("activation tests skipped: no fork()\n");
}
#endif

/* Adam and RMSProp store no subnormal moments: a moment that decays below
 * FLT_MIN becomes 0 (weights without gradients would otherwise run Adam's
 * multiplies through slow subnormal arithmetic); normal moments are untouched. */
static void test_optimizer_no_subnormals(void) {
  mrl_params p;
  mrl_adam_config adam = mrl_adam_config_default();
  mrl_rmsprop_config rms = mrl_rmsprop_config_default();
  int shape[1] = {6}, i, ok = 1;
  mrl_params_init(&p);
  mrl_params_add(&p, "w", 1, shape, mrl_init_make(MRL_INIT_ZEROS, 0.0f));
  mrl_params_finalize(&p, 1);
  for (i = 0; i < 6; i++) {
    p.grads[i] = 0.0f;
    p.moment1[i] = i < 3 ? 1.2e-38f : 1e-3f; /* times 0.9: subnormal, or normal */
    p.moment2[i] = i < 3 ? 1.0e-38f : 1e-6f;
  }
  p.adam_steps = 10;
  mrl_adam_step(&p, &adam);
  for (i = 0; i < 3; i++) ok &= p.moment1[i] == 0.0f && p.moment2[i] == 0.0f;
  for (i = 3; i < 6; i++) ok &= p.moment1[i] == 0.9f * 1e-3f && p.moment2[i] == 0.999f * 1e-6f;
  MRL_CHECK(ok, "adam: subnormal moments flushed to 0, normal ones kept");
  for (i = 0; i < 6; i++) p.moment2[i] = i < 3 ? 1.0e-38f : 1e-6f;
  mrl_rmsprop_step(&p, &rms);
  for (i = 0; i < 3; i++) ok &= p.moment2[i] == 0.0f;
  for (i = 3; i < 6; i++) ok &= p.moment2[i] == 0.99f * 1e-6f;
  MRL_CHECK(ok, "rmsprop: subnormal mean square flushed to 0, normal ones kept");
  mrl_params_free(&p);
}

int main(void) {
  test_optimizer_no_subnormals();
  test_lstm_reference();
  test_lstm_gradcheck();
  test_lstm_out_of_memory();
  test_rnn_reference();
  test_rnn_gradcheck();
  test_lstm_wide_lanes();
  test_gru_wide_lanes();
  test_rnn_prepacked_matches_cells();
  test_rnn_steps_match_sequence();
  test_rnn_out_of_memory();
  test_adam_reference();
  test_clip_reference();
  test_optim_reference();
  test_optim_buffers();
  test_orthogonal();
  test_default_init();
  test_fan_inits();
  test_forget_bias();
  test_params_store();
  test_mlp();
  test_categorical();
  test_dist_reference();
  test_dist_gradcheck();
  test_dist_sampling();
  test_heads_reference();
  test_heads_gradcheck();
  test_copy_polyak();
  test_target_updates();
  test_net2net_mlp();
  test_net2net_lstm();
  test_bad_activation();
  return mrl_test_summary("test_nn");
}
