/* Tests for memrl_mem.h: the memory-core interface (LSTM and none) and the
 * rollout buffer's GAE.
 *   1. LSTM core: one [T, B] call equals T single-step calls that carry the
 *      state in place (state_in == state_out), with episode starts in the
 *      middle and each state embedded in a larger per-environment record.
 *   2. episode_start: from a reset on, outputs equal a fresh sequence.
 *   3. The none core passes its input through and has no state.
 *   4. Gradients through the LSTM core with reset masks (finite differences).
 *   5. GAE against an independent double-precision sum, and a hand case.
 *   6. mrl_rollout_init's argument checks.
 *
 * Run from the repository root:  cc -std=c99 -O2 tests/test_mem.c -lm && ./a.out */
#define MEMRL_IMPLEMENTATION
#include "../memrl_mem.h"
#include "test.h"

/* Gradient checks: central differences in float32 with eps = 1e-2, each
 * element within 1e-3 + 1e-2 * |numeric| (as tests/test_nn.c). */
#define GC_EPS 1e-2f
#define GC_ATOL 1e-3
#define GC_RTOL 1e-2

static void fill_uniform(float *d, int n, mrl_rng *rng, float lo, float hi) {
  int i;
  for (i = 0; i < n; i++) d[i] = mrl_rng_uniform_range(rng, lo, hi);
}

/* An LSTM core with its own parameter store. */
typedef struct lstm_fixture {
  mrl_params params;
  mrl_core core;
} lstm_fixture;

static int lstm_fixture_init(lstm_fixture *f, int input, int hidden, float forget_bias,
                             uint64_t seed) {
  mrl_core_config cfg = mrl_core_config_lstm(hidden);
  cfg.forget_bias = forget_bias;
  mrl_params_init(&f->params);
  mrl_core_init(&f->core, &f->params, "core", input, &cfg, NULL, 0);
  return mrl_params_finalize(&f->params, seed) == MRL_OK;
}

/* ------------------------------------------------------------------------ */
/* 1. one sequence call == T step calls with the state carried in place      */
/* ------------------------------------------------------------------------ */

enum { SQ_T = 6, SQ_B = 3, SQ_I = 4, SQ_H = 5, SQ_S = 2 * SQ_H, SQ_OFF = 3, SQ_STRIDE = SQ_S + 7 };

static void test_lstm_sequence_equals_steps(void) {
  float x[SQ_T * SQ_B * SQ_I], starts[SQ_T * SQ_B], y_seq[SQ_T * SQ_B * SQ_H];
  float rec0[SQ_B * SQ_STRIDE], rec_seq[SQ_B * SQ_STRIDE], rec_step[SQ_B * SQ_STRIDE];
  float rec_sep[SQ_B * SQ_STRIDE], y_zero[SQ_T * SQ_B * SQ_H];
  mrl_rng rng = mrl_rng_make(11);
  lstm_fixture f;
  mrl_graph g;
  mrl_tensor *xt, *y;
  int t, i, worst_row = -1;
  double worst = 0.0;
  if (!lstm_fixture_init(&f, SQ_I, SQ_H, 1.0f, 5) || mrl_graph_init(&g, 1 << 16) != MRL_OK) {
    MRL_CHECK(0, "lstm sequence: setup failed");
    return;
  }
  MRL_CHECK(mrl_core_state_dim(&f.core) == SQ_S && f.core.output_dim == SQ_H &&
                f.core.input_dim == SQ_I,
            "lstm core: state_dim %d output_dim %d, want %d %d", mrl_core_state_dim(&f.core),
            f.core.output_dim, SQ_S, SQ_H);
  fill_uniform(x, SQ_T * SQ_B * SQ_I, &rng, -2.0f, 2.0f);
  fill_uniform(rec0, SQ_B * SQ_STRIDE, &rng, -1.0f, 1.0f);
  /* resets: env 0 at t = 2; env 1 at t = 0 and t = 4; env 2 at the last step */
  memset(starts, 0, sizeof starts);
  starts[2 * SQ_B + 0] = 1.0f;
  starts[0 * SQ_B + 1] = 1.0f;
  starts[4 * SQ_B + 1] = 1.0f;
  starts[(SQ_T - 1) * SQ_B + 2] = 1.0f;

  /* the whole sequence at once, state updated in place */
  memcpy(rec_seq, rec0, sizeof rec0);
  xt = mrl_tensor_from2(&g, x, SQ_T * SQ_B, SQ_I);
  y = mrl_core_forward(&f.core, &g, xt, SQ_T, SQ_B, starts, rec_seq + SQ_OFF, rec_seq + SQ_OFF,
                       SQ_STRIDE);
  MRL_CHECK(y && y->ndim == 2 && y->shape[0] == SQ_T * SQ_B && y->shape[1] == SQ_H,
            "lstm sequence: output must be [T*B, H]");
  if (!y) return;
  memcpy(y_seq, y->data, sizeof y_seq);

  /* step by step, the state carried in place */
  memcpy(rec_step, rec0, sizeof rec0);
  for (t = 0; t < SQ_T; t++) {
    mrl_graph_reset(&g);
    xt = mrl_tensor_from2(&g, x + t * SQ_B * SQ_I, SQ_B, SQ_I);
    y = mrl_core_forward(&f.core, &g, xt, 1, SQ_B, starts + t * SQ_B, rec_step + SQ_OFF,
                         rec_step + SQ_OFF, SQ_STRIDE);
    if (!y) break;
    for (i = 0; i < SQ_B * SQ_H; i++) {
      double d = fabs((double)y->data[i] - (double)y_seq[t * SQ_B * SQ_H + i]);
      if (d > worst) {
        worst = d;
        worst_row = t * SQ_B + i / SQ_H;
      }
    }
  }
  MRL_CHECK(t == SQ_T, "lstm steps: forward failed at step %d", t);
  MRL_CHECK(worst <= 1e-6, "lstm: sequence and step outputs differ by %g (row %d)", worst,
            worst_row);
  worst = 0.0;
  for (i = 0; i < SQ_B * SQ_STRIDE; i++) {
    double d = fabs((double)rec_seq[i] - (double)rec_step[i]);
    if (d > worst) worst = d;
  }
  MRL_CHECK(worst <= 1e-6, "lstm: final states of sequence and steps differ by %g", worst);
  /* floats of the record outside [OFF, OFF + state_dim) are untouched */
  for (i = 0; i < SQ_B * SQ_STRIDE; i++) {
    int k = i % SQ_STRIDE, inside = k >= SQ_OFF && k < SQ_OFF + SQ_S;
    if (!inside && (rec_seq[i] != rec0[i] || rec_step[i] != rec0[i])) break;
  }
  MRL_CHECK(i == SQ_B * SQ_STRIDE, "lstm: float %d of the record outside the state was written", i);
  /* the state did advance */
  for (i = 0; i < SQ_S; i++)
    if (rec_seq[SQ_OFF + i] != rec0[SQ_OFF + i]) break;
  MRL_CHECK(i < SQ_S, "lstm: the state of env 0 did not change");

  /* separate state_out: state_in stays as it was, state_out equals the in-place result */
  memcpy(rec_sep, rec0, sizeof rec0);
  {
    float out[SQ_B * SQ_STRIDE];
    memset(out, 0, sizeof out);
    mrl_graph_reset(&g);
    xt = mrl_tensor_from2(&g, x, SQ_T * SQ_B, SQ_I);
    y = mrl_core_forward(&f.core, &g, xt, SQ_T, SQ_B, starts, rec_sep + SQ_OFF, out + SQ_OFF,
                         SQ_STRIDE);
    MRL_CHECK(y && memcmp(y->data, y_seq, sizeof y_seq) == 0,
              "lstm: outputs depend on whether state_out aliases state_in");
    MRL_CHECK(memcmp(rec_sep, rec0, sizeof rec0) == 0, "lstm: state_in was written");
    for (i = 0; i < SQ_B; i++)
      if (memcmp(out + i * SQ_STRIDE + SQ_OFF, rec_seq + i * SQ_STRIDE + SQ_OFF,
                 sizeof(float) * SQ_S) != 0)
        break;
    MRL_CHECK(i == SQ_B, "lstm: separate state_out of env %d differs from the in-place one", i);
  }

  /* state_in NULL means zeros */
  {
    float zeros[SQ_B * SQ_STRIDE];
    memset(zeros, 0, sizeof zeros);
    mrl_graph_reset(&g);
    xt = mrl_tensor_from2(&g, x, SQ_T * SQ_B, SQ_I);
    y = mrl_core_forward(&f.core, &g, xt, SQ_T, SQ_B, NULL, NULL, NULL, SQ_STRIDE);
    if (y) memcpy(y_zero, y->data, sizeof y_zero);
    mrl_graph_reset(&g);
    xt = mrl_tensor_from2(&g, x, SQ_T * SQ_B, SQ_I);
    y = mrl_core_forward(&f.core, &g, xt, SQ_T, SQ_B, NULL, zeros + SQ_OFF, NULL, SQ_STRIDE);
    MRL_CHECK(y && memcmp(y->data, y_zero, sizeof y_zero) == 0,
              "lstm: state_in NULL differs from an explicit zero state");
  }
  mrl_graph_free(&g);
  mrl_params_free(&f.params);
}

/* ------------------------------------------------------------------------ */
/* 2. a reset at step t: outputs from t on are those of a fresh sequence     */
/* ------------------------------------------------------------------------ */

static void test_lstm_episode_start(void) {
  enum { T = 7, B = 3, I = 3, H = 4 };
  const int reset_at[B] = {3, 1, 6};
  float x[T * B * I], starts[T * B], state[B * 2 * H], y_all[T * B * H], final_all[B * 2 * H];
  mrl_rng rng = mrl_rng_make(23);
  lstm_fixture f;
  mrl_graph g;
  mrl_tensor *xt, *y;
  int b, t, j;
  if (!lstm_fixture_init(&f, I, H, 0.0f, 9) || mrl_graph_init(&g, 1 << 16) != MRL_OK) {
    MRL_CHECK(0, "episode_start: setup failed");
    return;
  }
  fill_uniform(x, T * B * I, &rng, -1.5f, 1.5f);
  fill_uniform(state, B * 2 * H, &rng, -1.0f, 1.0f);
  memset(starts, 0, sizeof starts);
  for (b = 0; b < B; b++) starts[reset_at[b] * B + b] = 1.0f;
  xt = mrl_tensor_from2(&g, x, T * B, I);
  y = mrl_core_forward(&f.core, &g, xt, T, B, starts, state, state, 2 * H);
  if (!y) {
    MRL_CHECK(0, "episode_start: forward failed");
    return;
  }
  memcpy(y_all, y->data, sizeof y_all);
  memcpy(final_all, state, sizeof final_all);
  for (b = 0; b < B; b++) {
    int L = T - reset_at[b];
    float xs[T * I], fresh_state[2 * H];
    double worst = 0.0;
    for (t = 0; t < L; t++)
      for (j = 0; j < I; j++) xs[t * I + j] = x[((reset_at[b] + t) * B + b) * I + j];
    mrl_graph_reset(&g);
    xt = mrl_tensor_from2(&g, xs, L, I);
    y = mrl_core_forward(&f.core, &g, xt, L, 1, NULL, NULL, fresh_state, 2 * H);
    if (!y) {
      MRL_CHECK(0, "episode_start: fresh forward failed");
      continue;
    }
    for (t = 0; t < L; t++)
      for (j = 0; j < H; j++) {
        double d = fabs((double)y->data[t * H + j] - y_all[((reset_at[b] + t) * B + b) * H + j]);
        if (d > worst) worst = d;
      }
    for (j = 0; j < 2 * H; j++) {
      double d = fabs((double)fresh_state[j] - final_all[b * 2 * H + j]);
      if (d > worst) worst = d;
    }
    MRL_CHECK(worst <= 1e-6,
              "episode_start: env %d after its reset at t=%d differs from a fresh sequence by %g",
              b, reset_at[b], worst);
  }
  /* before its reset, env 0 is not a fresh sequence (the stored state matters) */
  {
    float xs[I];
    for (j = 0; j < I; j++) xs[j] = x[j];
    mrl_graph_reset(&g);
    xt = mrl_tensor_from2(&g, xs, 1, I);
    y = mrl_core_forward(&f.core, &g, xt, 1, 1, NULL, NULL, NULL, 2 * H);
    for (j = 0; j < H; j++)
      if (y && y->data[j] != y_all[j]) break;
    MRL_CHECK(y && j < H, "episode_start: the initial state had no effect");
  }
  mrl_graph_free(&g);
  mrl_params_free(&f.params);
}

/* ------------------------------------------------------------------------ */
/* 3. the none core                                                          */
/* ------------------------------------------------------------------------ */

static void test_none_core(void) {
  mrl_core_config cfg = mrl_core_config_default();
  mrl_params p;
  mrl_core core;
  mrl_graph g;
  mrl_tensor *x, *y;
  float xd[6 * 5], starts[6] = {1, 0, 0, 1, 0, 0}, sentinel[4] = {7, 7, 7, 7};
  int i;
  mrl_params_init(&p);
  MRL_CHECK(cfg.kind == MRL_CORE_NONE, "core_config_default: kind %d, want none", (int)cfg.kind);
  mrl_core_init(&core, &p, "core", 5, &cfg, NULL, 0);
  MRL_CHECK(mrl_params_finalize(&p, 1) == MRL_OK, "none core: finalize failed");
  MRL_CHECK(p.count == 0, "none core: declared %d parameters", p.count);
  MRL_CHECK(mrl_core_state_dim(&core) == 0 && core.output_dim == 5 && core.input_dim == 5,
            "none core: state_dim %d output_dim %d", mrl_core_state_dim(&core), core.output_dim);
  if (mrl_graph_init(&g, 1 << 12) != MRL_OK) return;
  for (i = 0; i < 30; i++) xd[i] = (float)i - 3.5f;
  x = mrl_tensor_from2(&g, xd, 6, 5);
  y = mrl_core_forward(&core, &g, x, 2, 3, starts, sentinel, sentinel, 0);
  MRL_CHECK(y == x, "none core: output is not the input tensor");
  MRL_CHECK(sentinel[0] == 7 && sentinel[1] == 7 && sentinel[2] == 7 && sentinel[3] == 7,
            "none core: wrote to the state");
  MRL_CHECK(mrl_core_forward(&core, &g, NULL, 2, 3, NULL, NULL, NULL, 0) == NULL,
            "none core: a NULL input must give NULL");
  mrl_graph_free(&g);
  mrl_params_free(&p);
}

/* core.forget_bias on a GRU core goes to the update gate z (the middle third
 * of every layer's bias_ih, torch's gate order r, z, n), on top of the
 * layer's own init; bias_hh and forget_bias 0 keep PyTorch's init. */
static void test_gru_core_update_bias(void) {
  int variant;
  for (variant = 0; variant < 3; variant++) {
    mrl_core_config cfg = mrl_core_config_gru(4);
    mrl_params p, q;
    mrl_core core, plain;
    float bound = 0.5f; /* 1/sqrt(H) */
    int k, i, ok = 1, same_hh = 1, same_w = 1;
    cfg.num_layers = 2;
    cfg.forget_bias = variant == 2 ? 0.0f : 3.0f;
    if (variant == 1) cfg.init = mrl_init_orthogonal(1.0f);
    mrl_params_init(&p);
    mrl_params_init(&q);
    MRL_CHECK(mrl_core_init(&core, &p, "core", 3, &cfg, NULL, 0) == MRL_OK, "gru core init");
    cfg.forget_bias = 0.0f;
    MRL_CHECK(mrl_core_init(&plain, &q, "core", 3, &cfg, NULL, 0) == MRL_OK, "gru core init");
    MRL_CHECK(mrl_params_finalize(&p, 5) == MRL_OK && mrl_params_finalize(&q, 5) == MRL_OK,
              "gru core: finalize");
    for (k = 0; k < 2; k++) {
      const mrl_gru_layer *l = &core.gru.layers[k], *m = &plain.gru.layers[k];
      const float *b = mrl_params_tensor(&p, l->bias_ih)->data;
      const float *b0 = mrl_params_tensor(&q, m->bias_ih)->data;
      for (i = 0; i < 12; i++) {
        float want = variant != 2 && i >= 4 && i < 8 ? 3.0f : 0.0f;
        if (variant == 1)
          ok &= b[i] == want;
        else
          ok &= fabsf(b[i] - want) <= bound && (want != 0.0f || b[i] == b0[i]);
      }
      same_hh &= memcmp(mrl_params_tensor(&p, l->bias_hh)->data,
                        mrl_params_tensor(&q, m->bias_hh)->data, 12 * sizeof(float)) == 0;
      same_w &= memcmp(mrl_params_tensor(&p, l->weight_hh)->data,
                       mrl_params_tensor(&q, m->weight_hh)->data, 48 * sizeof(float)) == 0;
    }
    MRL_CHECK(ok,
              "gru core forget_bias (variant %d): bias_ih z third must be 3 + the init, "
              "r and n thirds the init",
              variant);
    MRL_CHECK(same_hh && same_w, "gru core forget_bias (variant %d): bias_hh and weights changed",
              variant);
    mrl_core_free(&core);
    mrl_core_free(&plain);
    mrl_params_free(&p);
    mrl_params_free(&q);
  }
}

/* ------------------------------------------------------------------------ */
/* 4. gradients through the LSTM core with reset masks                      */
/* ------------------------------------------------------------------------ */

enum { GC_T = 4, GC_B = 2, GC_I = 3, GC_H = 4 };

typedef struct gc_ctx {
  const mrl_core *core;
  const float *starts, *state;
  const float *r; /* [T*B*H] loss weights */
} gc_ctx;

static mrl_tensor *gc_build(mrl_graph *g, mrl_tensor **inputs, void *vctx) {
  gc_ctx *c = (gc_ctx *)vctx;
  mrl_tensor *y =
      mrl_core_forward(c->core, g, inputs[0], GC_T, GC_B, c->starts, c->state, NULL, 2 * GC_H);
  if (!y) return NULL;
  return mrl_sum(g, mrl_mul(g, y, mrl_tensor_from(g, c->r, y->ndim, y->shape)));
}

static void test_lstm_core_gradients(void) {
  float xd[GC_T * GC_B * GC_I], xg[GC_T * GC_B * GC_I], r[GC_T * GC_B * GC_H];
  float state[GC_B * 2 * GC_H], starts[GC_T * GC_B];
  mrl_tensor x = mrl_tensor_make2(xd, xg, GC_T * GC_B, GC_I), *inputs[5];
  mrl_rng rng = mrl_rng_make(31);
  lstm_fixture f;
  mrl_graph g;
  gc_ctx ctx;
  double worst;
  int i, t;
  if (!lstm_fixture_init(&f, GC_I, GC_H, 1.0f, 17) || mrl_graph_init(&g, 1 << 16) != MRL_OK) {
    MRL_CHECK(0, "lstm gradcheck: setup failed");
    return;
  }
  fill_uniform(xd, GC_T * GC_B * GC_I, &rng, -1.0f, 1.0f);
  fill_uniform(r, GC_T * GC_B * GC_H, &rng, -1.0f, 1.0f);
  fill_uniform(state, GC_B * 2 * GC_H, &rng, -1.0f, 1.0f);
  memset(starts, 0, sizeof starts);
  starts[2 * GC_B + 0] = 1.0f; /* env 0 restarts at t = 2 */
  starts[1 * GC_B + 1] = 1.0f; /* env 1 at t = 1 */
  ctx.core = &f.core;
  ctx.starts = starts;
  ctx.state = state;
  ctx.r = r;
  inputs[0] = &x;
  inputs[1] = mrl_params_tensor(&f.params, f.core.lstm.layers[0].weight_ih);
  inputs[2] = mrl_params_tensor(&f.params, f.core.lstm.layers[0].weight_hh);
  inputs[3] = mrl_params_tensor(&f.params, f.core.lstm.layers[0].bias_ih);
  inputs[4] = mrl_params_tensor(&f.params, f.core.lstm.layers[0].bias_hh);
  for (i = 1; i < 5; i++)
    MRL_CHECK(inputs[i]->grad != NULL, "lstm gradcheck: parameter %d has no grad buffer", i);
  worst = mrl_gradcheck(&g, gc_build, inputs, 5, &ctx, GC_EPS, GC_ATOL, GC_RTOL);
  MRL_CHECK(worst <= 1.0, "lstm core gradcheck (x and parameters, resets): worst ratio %g", worst);

  /* A reset cuts the gradient: with the loss on env 0's steps from its reset
   * on only, env 0's inputs before the reset get exactly zero gradient. */
  memset(r, 0, sizeof r);
  for (t = 2; t < GC_T; t++)
    for (i = 0; i < GC_H; i++) r[(t * GC_B + 0) * GC_H + i] = 1.0f;
  memset(xg, 0, sizeof xg);
  mrl_graph_reset(&g);
  MRL_CHECK(mrl_backward(&g, gc_build(&g, inputs, &ctx)) == MRL_OK, "lstm: backward failed");
  for (t = 0; t < 2; t++)
    for (i = 0; i < GC_I; i++)
      MRL_CHECK(xg[(t * GC_B + 0) * GC_I + i] == 0.0f,
                "lstm: gradient %g crossed the reset into step %d", xg[(t * GC_B + 0) * GC_I + i],
                t);
  for (i = 0; i < GC_I; i++)
    if (xg[(2 * GC_B + 0) * GC_I + i] != 0.0f) break;
  MRL_CHECK(i < GC_I, "lstm: no gradient at the reset step itself");
  /* env 1 has no loss at all: no gradient anywhere in its column */
  for (t = 0; t < GC_T; t++)
    for (i = 0; i < GC_I; i++)
      MRL_CHECK(xg[(t * GC_B + 1) * GC_I + i] == 0.0f, "lstm: gradient leaked into env 1");
  mrl_graph_free(&g);
  mrl_params_free(&f.params);
}

/* ------------------------------------------------------------------------ */
/* 5. GAE                                                                    */
/* ------------------------------------------------------------------------ */

/* Independent reference: A_t = sum_{k=t}^{end} (gamma lambda)^{k-t} delta_k,
 * summed forward in double, where end is the first step >= t that ends the
 * episode (or the last step) and delta_k bootstraps from 0 (terminated),
 * final_values (truncated), the next value, or last_values (last step). */
static void gae_reference(const mrl_rollout *r, const float *last_values, double gamma,
                          double lambda, double *adv, double *ret) {
  int T = r->num_steps, B = r->num_envs, t, k, b;
  for (b = 0; b < B; b++)
    for (t = 0; t < T; t++) {
      double a = 0.0, w = 1.0;
      for (k = t; k < T; k++) {
        int i = k * B + b, term = r->terminated[i] != 0.0f, trunc = r->truncated[i] != 0.0f;
        double next;
        if (term)
          next = 0.0;
        else if (trunc)
          next = r->final_values[i];
        else if (k == T - 1)
          next = last_values[b];
        else
          next = r->values[i + B];
        a += w * ((double)r->rewards[i] + gamma * next - (double)r->values[i]);
        if (term || trunc) break;
        w *= gamma * lambda;
      }
      adv[t * B + b] = a;
      ret[t * B + b] = a + r->values[t * B + b];
    }
}

static void test_gae_random(void) {
  enum { T = 7, B = 3 };
  mrl_rollout r;
  mrl_rng rng = mrl_rng_make(77);
  float last_values[B];
  double adv[T * B], ret[T * B];
  int i, ends = 0;
  MRL_CHECK(mrl_rollout_init(&r, T, B, 2, 1, 4) == MRL_OK, "rollout_init failed");
  if (!r.values) return;
  for (i = 0; i < T * B; i++) {
    float u = mrl_rng_uniform(&rng);
    r.values[i] = mrl_rng_uniform_range(&rng, -2.0f, 2.0f);
    r.rewards[i] = mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
    r.terminated[i] = u < 0.15f ? 1.0f : 0.0f;
    r.truncated[i] = u >= 0.15f && u < 0.3f ? 1.0f : 0.0f;
    /* final_values only count where truncated: a huge value elsewhere shows misuse */
    r.final_values[i] = r.truncated[i] != 0.0f ? mrl_rng_uniform_range(&rng, -3.0f, 3.0f) : 1e6f;
  }
  /* the last step: env 0 terminated, env 1 truncated, env 2 goes on */
  r.terminated[(T - 1) * B + 0] = 1.0f;
  r.truncated[(T - 1) * B + 0] = 0.0f;
  r.final_values[(T - 1) * B + 0] = 1e6f;
  r.terminated[(T - 1) * B + 1] = 0.0f;
  r.truncated[(T - 1) * B + 1] = 1.0f;
  r.final_values[(T - 1) * B + 1] = 2.5f;
  r.terminated[(T - 1) * B + 2] = 0.0f;
  r.truncated[(T - 1) * B + 2] = 0.0f;
  r.final_values[(T - 1) * B + 2] = 1e6f;
  /* and one of each in the middle, whatever the draws */
  r.terminated[2 * B + 2] = 1.0f;
  r.truncated[2 * B + 2] = 0.0f;
  r.final_values[2 * B + 2] = 1e6f;
  r.terminated[4 * B + 2] = 0.0f;
  r.truncated[4 * B + 2] = 1.0f;
  r.final_values[4 * B + 2] = -1.25f;
  for (i = 0; i < T * B; i++) ends += r.terminated[i] != 0.0f || r.truncated[i] != 0.0f;
  last_values[0] = 1e6f; /* env 0's last step terminated: unused */
  last_values[1] = 1e6f; /* env 1's last step truncated: unused */
  last_values[2] = 0.75f;
  mrl_rollout_compute_gae(&r, last_values, 0.97f, 0.9f);
  gae_reference(&r, last_values, 0.97f, 0.9f, adv, ret);
  for (i = 0; i < T * B; i++) {
    char what[64];
    snprintf(what, sizeof what, "gae advantage t=%d b=%d", i / B, i % B);
    MRL_CHECK_NEAR(r.advantages[i], adv[i], 1e-5, 0.0, what);
    snprintf(what, sizeof what, "gae return t=%d b=%d", i / B, i % B);
    MRL_CHECK_NEAR(r.returns[i], ret[i], 1e-5, 0.0, what);
  }
  MRL_CHECK(ends >= 4, "gae: only %d episode ends in the random rollout", ends);
  mrl_rollout_free(&r);
  MRL_CHECK(r.values == NULL && r.num_steps == 0, "rollout_free: the struct is not zeroed");
}

static void test_gae_hand_case(void) {
  mrl_rollout r;
  float last = 8.0f;
  int t;
  MRL_CHECK(mrl_rollout_init(&r, 3, 1, 1, 1, 0) == MRL_OK, "rollout_init (state_dim 0) failed");
  if (!r.values) return;
  for (t = 0; t < 3; t++) {
    r.rewards[t] = 1.0f;
    r.values[t] = 0.0f;
  }
  mrl_rollout_compute_gae(&r, &last, 0.5f, 1.0f);
  /* returns: 1 + 0.5 + 0.25 + 0.125 * 8, 1 + 0.5 + 0.25 * 8, 1 + 0.5 * 8 */
  MRL_CHECK(r.returns[0] == 2.75f && r.returns[1] == 3.5f && r.returns[2] == 5.0f,
            "gae hand case: returns %.9g %.9g %.9g, want 2.75 3.5 5", r.returns[0], r.returns[1],
            r.returns[2]);
  MRL_CHECK(r.advantages[0] == 2.75f && r.advantages[1] == 3.5f && r.advantages[2] == 5.0f,
            "gae hand case: advantages %.9g %.9g %.9g, want 2.75 3.5 5", r.advantages[0],
            r.advantages[1], r.advantages[2]);
  /* terminated in the middle: the sum stops there, the value after it is not used */
  r.terminated[1] = 1.0f;
  mrl_rollout_compute_gae(&r, &last, 0.5f, 1.0f);
  MRL_CHECK(r.returns[0] == 1.5f && r.returns[1] == 1.0f && r.returns[2] == 5.0f,
            "gae hand case, terminated at t=1: returns %.9g %.9g %.9g, want 1.5 1 5", r.returns[0],
            r.returns[1], r.returns[2]);
  /* truncated there instead, final value 4: bootstrapped from it */
  r.terminated[1] = 0.0f;
  r.truncated[1] = 1.0f;
  r.final_values[1] = 4.0f;
  mrl_rollout_compute_gae(&r, &last, 0.5f, 1.0f);
  MRL_CHECK(r.returns[0] == 2.5f && r.returns[1] == 3.0f && r.returns[2] == 5.0f,
            "gae hand case, truncated at t=1: returns %.9g %.9g %.9g, want 2.5 3 5", r.returns[0],
            r.returns[1], r.returns[2]);
  mrl_rollout_free(&r);
}

/* ------------------------------------------------------------------------ */
/* 6. rollout_init arguments                                                 */
/* ------------------------------------------------------------------------ */

static void test_rollout_init(void) {
  static const int bad[][5] = {{0, 2, 3, 1, 0}, {-1, 2, 3, 1, 0}, {4, 0, 3, 1, 0}, {4, -2, 3, 1, 0},
                               {4, 2, 0, 1, 0}, {4, 2, 3, 0, 0},  {4, 2, 3, 1, -1}};
  mrl_rollout r;
  size_t k;
  int i;
  for (k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    mrl_result res;
    memset(&r, 0xab, sizeof r);
    res = mrl_rollout_init(&r, bad[k][0], bad[k][1], bad[k][2], bad[k][3], bad[k][4]);
    MRL_CHECK(res == MRL_ERR_INVALID_ARGUMENT,
              "rollout_init(%d, %d, %d, %d, %d) returned %d, want MRL_ERR_INVALID_ARGUMENT",
              bad[k][0], bad[k][1], bad[k][2], bad[k][3], bad[k][4], (int)res);
    MRL_CHECK(r.obs == NULL && r.initial_state == NULL, "rollout_init: rejected struct not zeroed");
    mrl_rollout_free(&r); /* safe on a rejected rollout */
  }
  MRL_CHECK(mrl_rollout_init(&r, 5, 3, 4, 2, 6) == MRL_OK, "rollout_init(5, 3, 4, 2, 6) failed");
  MRL_CHECK(r.num_steps == 5 && r.num_envs == 3 && r.obs_dim == 4 && r.action_dim == 2 &&
                r.state_dim == 6,
            "rollout_init: dimensions not stored");
  if (r.obs) {
    /* every buffer has its documented size and starts at zero (ASan checks the bounds) */
    float s = 0.0f;
    for (i = 0; i < 5 * 3 * 4; i++) s += r.obs[i];
    for (i = 0; i < 5 * 3 * 2; i++) s += r.actions[i];
    for (i = 0; i < 5 * 3; i++)
      s += r.log_probs[i] + r.values[i] + r.rewards[i] + r.episode_starts[i] + r.terminated[i] +
           r.truncated[i] + r.final_values[i] + r.advantages[i] + r.returns[i];
    for (i = 0; i < 3 * 6; i++) s += r.initial_state[i];
    MRL_CHECK(s == 0.0f, "rollout_init: buffers are not zeroed");
  }
  mrl_rollout_free(&r);
}

/* The sum tree against brute force: sums, minima and the prefix search,
 * over random updates (zeros included) on a capacity that is not a power of two. */
static void test_sum_tree_brute_force(void) {
  enum { N = 37 };
  mrl_sum_tree t;
  double p[N] = {0};
  mrl_rng rng = mrl_rng_make(11);
  int round, i, mismatches = 0;
  MRL_CHECK(mrl_sum_tree_init(&t, 0) == MRL_ERR_INVALID_ARGUMENT, "sum_tree_init(0) accepted");
  MRL_CHECK(mrl_sum_tree_init(&t, N) == MRL_OK, "sum_tree_init(%d) failed", N);
  MRL_CHECK(mrl_sum_tree_find(&t, 0.5) == -1 && mrl_sum_tree_min(&t) == 0.0,
            "an empty tree must find nothing and have min 0");
  for (round = 0; round < 400; round++) {
    double total = 0.0, min = 0.0, mass, prefix = 0.0;
    int k = (int)(mrl_rng_uniform(&rng) * N), want = -1;
    p[k] = mrl_rng_uniform(&rng) < 0.3f ? 0.0 : (double)mrl_rng_uniform(&rng) * 10.0;
    mrl_sum_tree_set(&t, k, p[k]);
    for (i = 0; i < N; i++) {
      total += p[i];
      if (p[i] > 0.0 && (min == 0.0 || p[i] < min)) min = p[i];
    }
    mass = (double)mrl_rng_uniform(&rng) * total;
    for (i = 0; i < N && want < 0; i++) {
      if (p[i] > 0.0 && mass < prefix + p[i]) want = i;
      prefix += p[i];
    }
    if (fabs(mrl_sum_tree_total(&t) - total) > 1e-9 || mrl_sum_tree_min(&t) != min ||
        mrl_sum_tree_get(&t, k) != p[k] || (total > 0.0 && mrl_sum_tree_find(&t, mass) != want))
      mismatches++;
  }
  MRL_CHECK(mismatches == 0, "sum tree: %d of 400 rounds differ from brute force", mismatches);
  /* masses at and beyond the ends land on the first and last positive leaves */
  for (i = 0; i < N; i++) mrl_sum_tree_set(&t, i, 0.0);
  mrl_sum_tree_set(&t, 3, 1.0);
  mrl_sum_tree_set(&t, 30, 2.0);
  MRL_CHECK(mrl_sum_tree_find(&t, -5.0) == 3 && mrl_sum_tree_find(&t, 0.0) == 3 &&
                mrl_sum_tree_find(&t, 2.999) == 30 && mrl_sum_tree_find(&t, 3.0) == 30 &&
                mrl_sum_tree_find(&t, 1e9) == 30,
            "sum tree: the ends of the mass range do not land on positive leaves");
  mrl_sum_tree_free(&t);
}

/* Stratified sampling draws each leaf in proportion to its priority:
 * a chi-square test over 10 leaves (one of priority 0, never drawn). */
static void test_sum_tree_frequencies(void) {
  enum { N = 10, DRAWS = 32, ROUNDS = 4000 };
  const double p[N] = {1, 2, 3, 4, 0, 5, 0.5, 8, 1.5, 3};
  mrl_sum_tree t;
  mrl_rng rng = mrl_rng_make(5);
  long count[N] = {0};
  int idx[DRAWS], r, i;
  double total = 0.0, chi2 = 0.0;
  MRL_CHECK(mrl_sum_tree_init(&t, N) == MRL_OK, "sum_tree_init failed");
  for (i = 0; i < N; i++) {
    mrl_sum_tree_set(&t, i, p[i]);
    total += p[i];
  }
  for (r = 0; r < ROUNDS; r++) {
    mrl_sum_tree_sample(&t, DRAWS, &rng, idx);
    for (i = 0; i < DRAWS; i++) count[idx[i]]++;
  }
  for (i = 0; i < N; i++) {
    double expected = (double)DRAWS * ROUNDS * p[i] / total;
    if (p[i] > 0.0) chi2 += (count[i] - expected) * (count[i] - expected) / expected;
  }
  MRL_CHECK(count[4] == 0 && count[6] > 0, "sum tree: a zero-priority leaf was drawn");
  /* 8 degrees of freedom: the 0.999 quantile is 26.1. Stratification only
   * lowers the variance, so a correct tree sits far below it. */
  MRL_CHECK(chi2 < 26.1, "sum tree: frequencies do not follow priorities (chi2 %.1f)", chi2);
  mrl_sum_tree_free(&t);
}

/* R2D2's value rescaling against a direct transcription of h, and h^-1 as its inverse. */
static void test_value_rescale(void) {
  const float eps = 1e-3f;
  int i, bad = 0;
  for (i = -2000; i <= 2000; i++) {
    double x = i * (i < -1000 || i > 1000 ? 7.3 : 0.013);
    double h = (x < 0 ? -1.0 : 1.0) * (sqrt(fabs(x) + 1.0) - 1.0) + 1e-3 * x;
    float hx = mrl_value_rescale((float)x, eps);
    float back = mrl_value_rescale_inv(hx, eps);
    if (fabs(hx - h) > 1e-5 * (1.0 + fabs(h))) bad++;
    if (fabs(back - x) > 2e-4 * (1.0 + fabs(x))) bad++;
    if (fabs(mrl_value_rescale(mrl_value_rescale_inv((float)x, eps), eps) - x) >
        2e-5 * (1.0 + fabs(x)))
      bad++;
  }
  MRL_CHECK(bad == 0, "value rescaling: %d values differ from h or are not inverted", bad);
  MRL_CHECK(mrl_value_rescale(0.0f, eps) == 0.0f && mrl_value_rescale_inv(0.0f, eps) == 0.0f,
            "value rescaling: h(0) and h^-1(0) must be 0");
  MRL_CHECK(fabsf(mrl_value_rescale_inv(mrl_value_rescale(3.0f, 0.0f), 0.0f) - 3.0f) < 1e-5f,
            "value rescaling: eps = 0 does not invert");
}

int main(void) {
  test_lstm_sequence_equals_steps();
  test_lstm_episode_start();
  test_none_core();
  test_gru_core_update_bias();
  test_lstm_core_gradients();
  test_gae_random();
  test_gae_hand_case();
  test_rollout_init();
  test_sum_tree_brute_force();
  test_sum_tree_frequencies();
  test_value_rescale();
  return mrl_test_summary("test_mem");
}
