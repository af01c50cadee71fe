/* Acting and training allocate nothing in steady state.
 *
 * The library's allocator is replaced by a counting one (MRL_MALLOC and
 * friends below). After a warm-up that lets a heap arena grow to its high
 * water mark, these make zero heap allocations, repeated many times with
 * mrl_graph_reset between them:
 *   - acting in no-grad mode: an MLP forward, an LSTM-cell step, a GRU-cell
 *     step and an Elman-cell step (batch 1, the state carried across steps);
 *   - a full training step: LSTM over a sequence + linear head, MSE loss,
 *     backward, gradient clipping and Adam; and an MLP training step.
 * A graph over a caller buffer allocates nothing from the first call. The
 * counter is shown to work: a graph that starts too small does allocate while
 * warming up, and the steps compute what they should (outputs change with the
 * state, repeated steps from the same state agree bitwise).
 *
 * Also the kernels that make acting fast: the vectorised tanh and sigmoid
 * ops agree with libm's double-precision results to a few
 * ulp, elementwise the same at every position, with NaN and the infinities
 * handled.
 *
 * Run from the repository root:  cc -std=c99 -O2 tests/test_nn_alloc.c -lm && ./a.out */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MRL_TEST_COUNT_ALLOCATIONS
#include "test.h"

#define MEMRL_TENSOR_IMPLEMENTATION
#define MEMRL_NN_IMPLEMENTATION
#include "../memrl_nn.h"

#define IN 8
#define HID 64
#define STEPS 2000

typedef struct nets {
  mrl_params p;
  mrl_mlp mlp;
  mrl_lstm_layer lstm;
  mrl_gru_layer gru;
  mrl_elman_layer elman;
  mrl_linear_layer head;
} nets;

static void nets_init(nets *n) {
  static const int sizes[4] = {IN, 64, 64, 3};
  mrl_params_init(&n->p);
  mrl_mlp_init(&n->mlp, &n->p, "mlp", 4, sizes, MRL_ACT_TANH, mrl_init_default(),
               mrl_init_default());
  mrl_lstm_layer_init(&n->lstm, &n->p, "lstm", IN, HID, mrl_init_default(), 1.0f);
  mrl_gru_layer_init(&n->gru, &n->p, "gru", IN, HID, mrl_init_default());
  mrl_elman_layer_init(&n->elman, &n->p, "elman", IN, HID, MRL_ACT_TANH, mrl_init_default());
  mrl_linear_layer_init(&n->head, &n->p, "head", HID, 1, mrl_init_default());
  MRL_CHECK(mrl_params_finalize(&n->p, 11) == MRL_OK, "finalize");
}

/* One acting step of every kind, batch 1; the recurrent states live in the
 * caller's arrays. Returns 0 when anything failed. */
typedef struct act_state {
  float obs[IN], h[HID], c[HID], hg[HID], he[HID], out[3];
} act_state;

static int act_step(const nets *n, mrl_graph *g, act_state *s) {
  mrl_tensor *x, *y, *h, *c;
  mrl_graph_reset(g);
  x = mrl_tensor_from2(g, s->obs, 1, IN);
  y = mrl_mlp_forward(&n->mlp, g, x);
  if (!y) return 0;
  memcpy(s->out, y->data, sizeof s->out);
  mrl_lstm_cell(&n->lstm, g, x, mrl_tensor_from2(g, s->h, 1, HID),
                mrl_tensor_from2(g, s->c, 1, HID), NULL, &h, &c);
  if (!h || !c) return 0;
  memcpy(s->h, h->data, sizeof s->h);
  memcpy(s->c, c->data, sizeof s->c);
  h = mrl_gru_cell(&n->gru, g, x, mrl_tensor_from2(g, s->hg, 1, HID), NULL);
  if (!h) return 0;
  memcpy(s->hg, h->data, sizeof s->hg);
  h = mrl_elman_cell(&n->elman, g, x, mrl_tensor_from2(g, s->he, 1, HID), NULL);
  if (!h) return 0;
  memcpy(s->he, h->data, sizeof s->he);
  return mrl_graph_status(g) == MRL_OK && g->num_nodes == 0;
}

static void test_acting(void) {
  nets n;
  mrl_graph g;
  act_state s, s2;
  long before, grown;
  int i, ok = 1;
  mrl_rng rng = mrl_rng_make(3);
  nets_init(&n);
  memset(&s, 0, sizeof s);
  /* a heap arena that starts far too small: it must grow while warming up */
  MRL_CHECK(mrl_graph_init(&g, 64) == MRL_OK, "graph init");
  mrl_graph_set_no_grad(&g, 1);
  before = test_alloc_calls;
  for (i = 0; i < 5; i++) {
    int k;
    for (k = 0; k < IN; k++) s.obs[k] = mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
    ok &= act_step(&n, &g, &s);
  }
  grown = test_alloc_calls - before;
  MRL_CHECK(grown > 0, "the counting allocator saw no arena growth while warming up");
  before = test_alloc_calls;
  for (i = 0; i < STEPS; i++) {
    int k;
    for (k = 0; k < IN; k++) s.obs[k] = mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
    ok &= act_step(&n, &g, &s);
  }
  MRL_CHECK(ok, "acting steps failed or recorded nodes");
  MRL_CHECK(test_alloc_calls == before, "acting: %ld heap allocations in %d steady-state steps",
            test_alloc_calls - before, STEPS);
  /* the steps do work: the same step from the same state agrees bitwise, and
   * the state moves */
  s2 = s;
  ok = act_step(&n, &g, &s) && act_step(&n, &g, &s2);
  MRL_CHECK(ok && memcmp(&s, &s2, sizeof s) == 0, "acting is not repeatable");
  s2 = s;
  ok = act_step(&n, &g, &s2);
  MRL_CHECK(ok && memcmp(s.h, s2.h, sizeof s.h) != 0 && memcmp(s.hg, s2.hg, sizeof s.hg) != 0 &&
                memcmp(s.he, s2.he, sizeof s.he) != 0,
            "recurrent states did not move");
  mrl_graph_free(&g);

  /* over a caller buffer: nothing from the very first step */
  {
    static unsigned char buffer[1 << 16];
    mrl_graph gb;
    mrl_graph_init_buffer(&gb, buffer, sizeof buffer);
    mrl_graph_set_no_grad(&gb, 1);
    before = test_alloc_calls;
    ok = 1;
    for (i = 0; i < 100; i++) ok &= act_step(&n, &gb, &s);
    MRL_CHECK(ok, "acting over a caller buffer failed");
    MRL_CHECK(test_alloc_calls == before, "acting over a caller buffer: %ld allocations",
              test_alloc_calls - before);
    mrl_graph_free(&gb);
  }
  mrl_params_free(&n.p);
}

/* ---- training ---- */

#define T_STEPS 16
#define BATCH 8

typedef struct train_data {
  float x[T_STEPS * BATCH * IN], target[T_STEPS * BATCH], zeros[BATCH * HID],
      start[T_STEPS * BATCH];
  float mx[128 * IN], mt[128 * 3];
} train_data;

/* LSTM + GRU over the sequence (episode starts in start), linear head, MSE, backward,
 * clipping, Adam; then an MLP step. Returns the sum of the two losses. */
static float train_step(nets *n, mrl_graph *g, const train_data *d, const mrl_adam_config *adam) {
  mrl_tensor *x, *y, *loss, *loss2;
  float total;
  mrl_graph_reset(g);
  x = mrl_tensor_from2(g, d->x, T_STEPS * BATCH, IN);
  y = mrl_lstm_sequence(&n->lstm, g, x, T_STEPS, BATCH, mrl_tensor_from2(g, d->zeros, BATCH, HID),
                        mrl_tensor_from2(g, d->zeros, BATCH, HID), d->start, NULL, NULL);
  y = mrl_add(g, y,
              mrl_gru_sequence(&n->gru, g, x, T_STEPS, BATCH,
                               mrl_tensor_from2(g, d->zeros, BATCH, HID), d->start, NULL));
  y = mrl_linear_layer_forward(&n->head, g, y);
  loss = mrl_mse_loss(g, y, mrl_tensor_from2(g, d->target, T_STEPS * BATCH, 1), MRL_LOSS_MEAN);
  loss2 = mrl_mse_loss(g, mrl_mlp_forward(&n->mlp, g, mrl_tensor_from2(g, d->mx, 128, IN)),
                       mrl_tensor_from2(g, d->mt, 128, 3), MRL_LOSS_MEAN);
  loss = mrl_add(g, loss, loss2);
  if (!loss) return -1.0f;
  total = loss->data[0];
  mrl_params_zero_grad(&n->p);
  if (mrl_backward(g, loss) != MRL_OK) return -1.0f;
  mrl_params_clip_grad_norm(&n->p, 0.5f);
  mrl_adam_step(&n->p, adam);
  return total;
}

static void test_training(void) {
  static train_data d;
  nets n;
  mrl_graph g;
  mrl_adam_config adam = mrl_adam_config_default();
  mrl_rng rng = mrl_rng_make(9);
  long before;
  float first = 0.0f, last = 0.0f;
  int i, ok = 1;
  nets_init(&n);
  for (i = 0; i < T_STEPS * BATCH * IN; i++) d.x[i] = mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
  for (i = 0; i < T_STEPS * BATCH; i++) {
    d.target[i] = mrl_rng_uniform_range(&rng, -0.5f, 0.5f);
    d.start[i] = i % 37 == 5 ? 1.0f : 0.0f;
  }
  for (i = 0; i < 128 * IN; i++) d.mx[i] = mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
  for (i = 0; i < 128 * 3; i++) d.mt[i] = mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
  MRL_CHECK(mrl_graph_init(&g, 256) == MRL_OK, "graph init");
  before = test_alloc_calls;
  for (i = 0; i < 3; i++) first = train_step(&n, &g, &d, &adam);
  MRL_CHECK(test_alloc_calls > before, "the counting allocator saw no arena growth in training");
  before = test_alloc_calls;
  for (i = 0; i < 200; i++) {
    last = train_step(&n, &g, &d, &adam);
    ok &= last >= 0.0f;
  }
  MRL_CHECK(ok && mrl_graph_status(&g) == MRL_OK, "training steps failed");
  MRL_CHECK(test_alloc_calls == before, "training: %ld heap allocations in 200 steady-state steps",
            test_alloc_calls - before);
  /* the steps train: the loss on the fixed batch went down */
  MRL_CHECK(last < 0.9f * first, "training did not reduce the loss (%g -> %g)", first, last);
  mrl_graph_free(&g);
  mrl_params_free(&n.p);
}

/* ---- kernels ---- */

static void test_activations(void) {
  enum { N = 20003 };
  static float xs[N];
  mrl_graph g;
  mrl_tensor x, *t, *s, *t1, *s1;
  double worst_t = 0.0, worst_s = 0.0;
  int i, same = 1;
  for (i = 0; i < N; i++) xs[i] = -20.0f + 40.0f * (float)i / (float)(N - 1);
  xs[0] = 0.0f;
  xs[1] = -0.0f;
  xs[2] = 1e-30f;
  xs[3] = -100.0f;
  xs[4] = 100.0f;
  mrl_graph_init(&g, 1 << 20);
  mrl_graph_set_no_grad(&g, 1);
  x = mrl_tensor_make2(xs, NULL, 1, N);
  t = mrl_tanh(&g, &x);
  s = mrl_sigmoid(&g, &x);
  MRL_CHECK(t && s, "tanh/sigmoid failed");
  if (!t || !s) return;
  for (i = 5; i < N; i++) { /* the ramp over [-20, 20] */
    double wt = tanh((double)xs[i]), ws = 1.0 / (1.0 + exp(-(double)xs[i]));
    double et = fabs(t->data[i] - wt) / (fabs(wt) + 1e-30), es = fabs(s->data[i] - ws) / ws;
    if (et > worst_t) worst_t = et;
    if (es > worst_s) worst_s = es;
  }
  /* float eps is 1.19e-7: within two ulp of the exact value */
  MRL_CHECK(worst_t < 2.4e-7, "tanh: worst relative error %.3g", worst_t);
  MRL_CHECK(worst_s < 2.4e-7, "sigmoid: worst relative error %.3g", worst_s);
  MRL_CHECK(t->data[1] == 0.0f && signbit(t->data[1]) && t->data[2] == 1e-30f, "tanh of +-0, tiny");
  MRL_CHECK(t->data[3] == -1.0f && t->data[4] == 1.0f && s->data[4] == 1.0f &&
                s->data[3] < 1e-37f && s->data[3] >= 0.0f,
            "tanh/sigmoid limits");
  /* the same value at every position (vector body and scalar tail agree) */
  for (i = 0; i < 7 && same; i++) {
    mrl_tensor one = mrl_tensor_make2(xs + 1000 + i, NULL, 1, 1);
    t1 = mrl_tanh(&g, &one);
    s1 = mrl_sigmoid(&g, &one);
    same = t1 && s1 && memcmp(t1->data, t->data + 1000 + i, sizeof(float)) == 0 &&
           memcmp(s1->data, s->data + 1000 + i, sizeof(float)) == 0;
  }
  MRL_CHECK(same, "tanh/sigmoid: a value's result depends on its position");
  {
    float sp[5] = {NAN, INFINITY, -INFINITY, NAN, -INFINITY};
    mrl_tensor v = mrl_tensor_make2(sp, NULL, 1, 5);
    t = mrl_tanh(&g, &v);
    s = mrl_sigmoid(&g, &v);
    MRL_CHECK(t && s && isnan(t->data[0]) && isnan(s->data[0]) && isnan(t->data[3]) &&
                  t->data[1] == 1.0f && t->data[2] == -1.0f && s->data[1] == 1.0f &&
                  s->data[2] == 0.0f,
              "tanh/sigmoid of NaN and the infinities");
  }
  mrl_graph_free(&g);
}

int main(void) {
  test_activations();
  test_acting();
  test_training();
  return mrl_test_summary("test_nn_alloc");
}
