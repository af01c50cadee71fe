/* The memory-core conformance table (DESIGN §5): every core of memrl_mem.h,
 * and a user's core through mrl_core_type, passes the same checks.
 *   1. sequence = steps: a [T, B] sequence from a stored state, with episode
 *      starts, equals the same steps taken one at a time (outputs and final
 *      state);
 *   2. reset = fresh: a step whose episode starts, from any state, equals a
 *      step from the zero state (bit for bit);
 *   3. gradients through time: d(sum(w * y))/d(x, every parameter) against
 *      central finite differences over a whole sequence with resets;
 *   4. the state round-trips through a rollout buffer's initial state and
 *      through a checkpoint (as an extra tensor): continuing from it equals
 *      continuing in place, bit for bit;
 *   5. acting (T = 1, no gradients) allocates nothing once warm;
 *   6. where the core wraps a layer with a PyTorch twin (LSTM, GRU, Elman
 *      stacks, matched against PyTorch in tests/test_nn.c), the core equals
 *      that layer fed the state in torch's [L, B, H] layout;
 *   7. where the core has its own PyTorch twin (tools/make_ref.py: the DNC,
 *      AMRL and fast weights, HCAM and FTW), outputs, final state (FTW: its
 *      KL) and the gradients of x and every parameter match it.
 * A new core adds one row to the table in main().
 *
 * Run from the repository root:  cc -std=c99 -O2 tests/test_cores.c -lm && ./a.out */
#define MEMRL_IMPLEMENTATION
#define MRL_TEST_COUNT_ALLOCATIONS
#include "test.h"
#include "../memrl_mem.h"
#include "test.h" /* again: the user core of tests/test.h needs memrl_mem.h */
#include "ref_loader.h"

enum { T = 6, B = 3 };

typedef struct core_fixture {
  mrl_params params;
  mrl_core core;
  mrl_graph g;
  int D, S, O;
} core_fixture;

static int fixture_init(core_fixture *f, const mrl_core_config *cfg, int D, const char *label) {
  char err[MRL_ERROR_SIZE];
  mrl_result r;
  memset(f, 0, sizeof *f);
  mrl_params_init(&f->params);
  r = mrl_core_init(&f->core, &f->params, "core", D, cfg, err, sizeof err);
  MRL_CHECK(r == MRL_OK, "%s: core init: %s", label, err);
  if (r != MRL_OK || mrl_params_finalize(&f->params, 11) != MRL_OK) return 0;
  f->D = D;
  f->S = mrl_core_state_dim(&f->core);
  f->O = f->core.output_dim;
  return mrl_graph_init(&f->g, 1 << 20) == MRL_OK;
}

static void fixture_free(core_fixture *f) {
  mrl_core_free(&f->core);
  mrl_params_free(&f->params);
  mrl_graph_free(&f->g);
}

/* y [T_*B, O] of a forward from state_in (stride S) into state_out, no gradients */
static int run(core_fixture *f, const float *x, int T_, const float *starts, const float *state_in,
               float *state_out, float *y) {
  mrl_tensor *xt, *out;
  mrl_graph_reset(&f->g);
  mrl_graph_set_no_grad(&f->g, 1);
  xt = mrl_tensor_from2(&f->g, x, T_ * B, f->D);
  out = mrl_core_forward(&f->core, &f->g, xt, T_, B, starts, state_in, state_out, f->S);
  if (!out) return 0;
  memcpy(y, out->data, sizeof(float) * (size_t)T_ * B * f->O);
  return 1;
}

static int max_diff(const float *a, const float *b, int n, double atol, double rtol) {
  int i, bad = 0;
  for (i = 0; i < n; i++) bad += fabs((double)a[i] - b[i]) > atol + rtol * fabs((double)b[i]);
  return bad;
}

typedef struct grad_ctx {
  core_fixture *f;
  const float *starts, *state, *w;
} grad_ctx;

static mrl_tensor *grad_loss(mrl_graph *g, mrl_tensor **inputs, void *user) {
  grad_ctx *c = (grad_ctx *)user;
  mrl_tensor *y =
      mrl_core_forward(&c->f->core, g, inputs[0], T, B, c->starts, c->state, NULL, c->f->S);
  mrl_tensor *w = y ? mrl_tensor_from2(g, c->w, T * B, c->f->O) : NULL;
  return w ? mrl_sum(g, mrl_mul(g, y, w)) : NULL;
}

/* Finite-difference step: 1e-2 in float32, smaller where a relu's kink could
 * fall inside the step (the central difference then measures the kink):
 * relu Elman, and GTrXL whose submodules end in relus. */
static float gradcheck_eps(const mrl_core_config *cfg) {
  if (cfg->kind == MRL_CORE_GTRXL) return 3e-4f; /* as tests/test_attention.c */
  if (cfg->kind == MRL_CORE_AMRL && cfg->amrl.aggregator == MRL_AMRL_MAX) return 1e-3f;
  return cfg->kind == MRL_CORE_ELMAN && cfg->nonlinearity == MRL_ACT_RELU ? 1e-3f : 1e-2f;
}

/* Floats at the start of a state record that hold what the core remembers;
 * the rest (GTrXL's key/value cache, derived from them and the parameters,
 * present after acting steps, absent after a training segment) may differ. */
static int remembered_floats(const mrl_core_config *cfg, int state_dim) {
  const mrl_gtrxl_config *g = &cfg->gtrxl;
  if (cfg->kind == MRL_CORE_GTRXL) return 1 + g->num_layers * g->mem_len * g->embed_dim;
  return state_dim;
}

/* AMRL's straight-through gradient is by design not the derivative of the
 * forward (except for sum, where they agree): test_amrl_fwp_torch checks it
 * against the paper's ST written in PyTorch instead. */
static int exact_gradients(const mrl_core_config *cfg) {
  return !(cfg->kind == MRL_CORE_AMRL && cfg->amrl.straight_through &&
           cfg->amrl.aggregator != MRL_AMRL_SUM);
}

static void conformance(const char *label, mrl_core_config cfg, int D) {
  core_fixture f;
  mrl_rng rng = mrl_rng_make(99);
  float x[T * B * 16], starts[T * B] = {0}, *state0, *sa, *sb, *ya, *yb, *w;
  int i, t, n;
  if (!fixture_init(&f, &cfg, D, label)) return;
  n = T * B * f.O;
  state0 = (float *)calloc((size_t)B * f.S + 1, sizeof(float));
  sa = (float *)calloc((size_t)B * f.S + 1, sizeof(float));
  sb = (float *)calloc((size_t)B * f.S + 1, sizeof(float));
  ya = (float *)calloc((size_t)n, sizeof(float));
  yb = (float *)calloc((size_t)n, sizeof(float));
  w = (float *)calloc((size_t)n, sizeof(float));
  /* a state the core itself reached: 5 steps from zero on other inputs */
  for (t = 0; t < 5; t++) {
    for (i = 0; i < B * D; i++) x[i] = mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
    run(&f, x, 1, NULL, state0, state0, ya);
  }
  for (i = 0; i < T * B * D; i++) x[i] = mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
  for (i = 0; i < n; i++) w[i] = mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
  starts[0 * B + 0] = 1.0f; /* env 0 starts at once, env 1 mid-sequence, env 2 twice */
  starts[3 * B + 1] = 1.0f;
  starts[1 * B + 2] = starts[4 * B + 2] = 1.0f;

  /* 1. sequence = steps */
  memcpy(sa, state0, sizeof(float) * (size_t)B * f.S);
  memcpy(sb, state0, sizeof(float) * (size_t)B * f.S);
  MRL_CHECK(run(&f, x, T, starts, sa, sa, ya), "%s: sequence forward", label);
  for (t = 0; t < T; t++)
    MRL_CHECK(run(&f, x + t * B * D, 1, starts + t * B, sb, sb, yb + t * B * f.O), "%s: step %d",
              label, t);
  MRL_CHECK(max_diff(yb, ya, n, 1e-5, 1e-5) == 0, "%s: steps differ from the sequence (%d of %d)",
            label, max_diff(yb, ya, n, 1e-5, 1e-5), n);
  { /* the final states: what they remember, and what one more step makes of them */
    int b, k = remembered_floats(&cfg, f.S), bad = 0;
    for (b = 0; b < B; b++) bad += max_diff(sb + b * f.S, sa + b * f.S, k, 1e-5, 1e-5);
    MRL_CHECK(bad == 0, "%s: final state of steps and sequence (%d floats differ)", label, bad);
    run(&f, x, 1, NULL, sa, sa, ya);
    run(&f, x, 1, NULL, sb, sb, yb);
    MRL_CHECK(max_diff(yb, ya, B * f.O, 1e-5, 1e-5) == 0,
              "%s: a step after the sequence differs from one after the steps", label);
  }

  /* 2. reset = fresh */
  {
    float ones[B] = {1, 1, 1}, *zero = (float *)calloc((size_t)B * f.S + 1, sizeof(float));
    memcpy(sa, state0, sizeof(float) * (size_t)B * f.S);
    run(&f, x, 1, ones, sa, sa, ya);
    run(&f, x, 1, NULL, zero, zero, yb);
    MRL_CHECK(memcmp(ya, yb, sizeof(float) * (size_t)B * f.O) == 0 &&
                  memcmp(sa, zero, sizeof(float) * (size_t)B * f.S) == 0,
              "%s: a reset step differs from a fresh one", label);
    free(zero);
  }

  /* 3. gradients through time */
  if (exact_gradients(&cfg)) {
    grad_ctx c;
    mrl_tensor *inputs[1];
    mrl_graph gi; /* the inputs live outside the graph mrl_gradcheck resets */
    double worst;
    mrl_graph_init(&gi, 1 << 16);
    mrl_graph_reset(&f.g);
    mrl_graph_set_no_grad(&f.g, 0);
    c.f = &f;
    c.starts = starts;
    c.state = state0;
    c.w = w;
    inputs[0] = mrl_tensor_new2(&gi, T * B, D, 1);
    memcpy(inputs[0]->data, x, sizeof(float) * (size_t)T * B * D);
    worst = mrl_gradcheck(&f.g, grad_loss, inputs, 1, &c, gradcheck_eps(&cfg), 2e-3, 1e-2);
    MRL_CHECK(worst <= 1.0, "%s: input gradient through time off by %.3g tolerances", label, worst);
    if (f.params.count > 0) { /* every parameter tensor, one at a time */
      int k;
      for (k = 0; k < f.params.count; k++) {
        mrl_tensor *pt = mrl_params_tensor(&f.params, k), *ins[2];
        mrl_graph_reset(&gi);
        ins[0] = mrl_tensor_from2(&gi, x, T * B, D);
        ins[1] = pt;
        mrl_params_zero_grad(&f.params);
        worst = mrl_gradcheck(&f.g, grad_loss, ins, 2, &c, gradcheck_eps(&cfg), 2e-3, 1e-2);
        MRL_CHECK(worst <= 1.0, "%s: gradient of %s off by %.3g tolerances", label,
                  f.params.items[k].name, worst);
      }
    }
    mrl_graph_free(&gi);
  }

  /* 4. the state through a rollout buffer and a checkpoint */
  {
    mrl_rollout ro;
    float *cont_a = (float *)calloc((size_t)n, sizeof(float));
    float *cont_b = (float *)calloc((size_t)n, sizeof(float));
    memcpy(sa, state0, sizeof(float) * (size_t)B * f.S);
    run(&f, x, T, starts, sa, sa, ya); /* sa: a state worth keeping */
    if (mrl_rollout_init(&ro, T, B, D, 1, f.S) == MRL_OK) {
      memcpy(ro.initial_state, sa, sizeof(float) * (size_t)B * f.S);
      memcpy(sb, ro.initial_state, sizeof(float) * (size_t)B * f.S);
      MRL_CHECK(memcmp(sa, sb, sizeof(float) * (size_t)B * f.S) == 0, "%s: rollout state", label);
      mrl_rollout_free(&ro);
    }
    {
      mrl_checkpoint_extra e;
      mrl_checkpoint_options o = mrl_checkpoint_options_default();
      mrl_checkpoint c;
      void *buf = NULL;
      size_t size = 0;
      core_fixture g2;
      e.name = "__state";
      e.dtype = "F32";
      e.data = sa;
      e.count = (uint64_t)B * f.S;
      o.extras = &e;
      o.num_extras = 1;
      memset(sb, 0, sizeof(float) * (size_t)B * f.S);
      if (mrl_checkpoint_save_buffer(&f.params, &o, &buf, &size) == MRL_OK &&
          fixture_init(&g2, &cfg, D, label) &&
          mrl_checkpoint_load_buffer(&g2.params, buf, size, 0) == MRL_OK &&
          mrl_checkpoint_open_buffer(&c, buf, size) == MRL_OK) {
        MRL_CHECK(mrl_checkpoint_read(mrl_checkpoint_find(&c, "__state"), "F32", sb,
                                      (size_t)B * f.S) == MRL_OK,
                  "%s: state from the checkpoint", label);
        mrl_checkpoint_close(&c);
        run(&f, x, T, starts, sa, sa, cont_a);
        run(&g2, x, T, starts, sb, sb, cont_b);
        MRL_CHECK(memcmp(cont_a, cont_b, sizeof(float) * (size_t)n) == 0 &&
                      memcmp(sa, sb, sizeof(float) * (size_t)B * f.S) == 0,
                  "%s: continuing from a checkpointed state differs", label);
        fixture_free(&g2);
      } else {
        MRL_CHECK(0, "%s: checkpoint round trip failed", label);
      }
      MRL_FREE(buf);
    }
    free(cont_a);
    free(cont_b);
  }

  /* 5. acting allocates nothing once warm */
  {
    long before;
    run(&f, x, 1, starts, sa, sa, ya);
    before = test_alloc_calls;
    for (t = 0; t < 200; t++) run(&f, x + (t % T) * B * D, 1, starts + (t % T) * B, sa, sa, ya);
    MRL_CHECK(test_alloc_calls == before, "%s: 200 acting steps made %ld heap allocations", label,
              test_alloc_calls - before);
  }
  free(state0);
  free(sa);
  free(sb);
  free(ya);
  free(yb);
  free(w);
  fixture_free(&f);
}

/* 6. a recurrent core equals its stack fed torch's [L, B, H] layout */
static void matches_stack(const char *label, mrl_core_config cfg, int D) {
  core_fixture f;
  mrl_rng rng = mrl_rng_make(5);
  float x[T * B * 8], starts[T * B] = {0}, state[B * 2 * 2 * 16], h0[2 * B * 16], c0[2 * B * 16];
  float *ya, *yb;
  int L = cfg.num_layers, H = cfg.hidden_size, lstm = cfg.kind == MRL_CORE_LSTM, l, b, i;
  mrl_tensor *y, *th, *tc;
  if (!fixture_init(&f, &cfg, D, label)) return;
  ya = (float *)calloc((size_t)T * B * H, sizeof(float));
  yb = (float *)calloc((size_t)T * B * H, sizeof(float));
  for (i = 0; i < T * B * D; i++) x[i] = mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
  for (i = 0; i < B * f.S; i++) state[i] = mrl_rng_uniform_range(&rng, -0.5f, 0.5f);
  starts[2 * B + 1] = 1.0f;
  for (l = 0; l < L; l++) /* env b's record: h of every layer, then c of every layer */
    for (b = 0; b < B; b++)
      for (i = 0; i < H; i++) {
        h0[(l * B + b) * H + i] = state[b * f.S + l * H + i];
        if (lstm) c0[(l * B + b) * H + i] = state[b * f.S + L * H + l * H + i];
      }
  run(&f, x, T, starts, state, NULL, ya);
  mrl_graph_reset(&f.g);
  th = mrl_tensor_from2(&f.g, h0, L * B, H);
  tc = mrl_tensor_from2(&f.g, c0, L * B, H);
  {
    mrl_tensor *xt = mrl_tensor_from2(&f.g, x, T * B, D);
    if (cfg.kind == MRL_CORE_LSTM)
      y = mrl_lstm_forward(&f.core.lstm, &f.g, xt, T, B, th, tc, starts, NULL, NULL);
    else if (cfg.kind == MRL_CORE_GRU)
      y = mrl_gru_forward(&f.core.gru, &f.g, xt, T, B, th, starts, NULL);
    else
      y = mrl_elman_forward(&f.core.elman, &f.g, xt, T, B, th, starts, NULL);
  }
  if (y) memcpy(yb, y->data, sizeof(float) * (size_t)T * B * H);
  MRL_CHECK(y && memcmp(ya, yb, sizeof(float) * (size_t)T * B * H) == 0,
            "%s: the core differs from its stack", label);
  free(ya);
  free(yb);
  fixture_free(&f);
}

/* 7. the DNC core against tests/ref/dnc.txt (case "nl" without links, "lk" with) */
static void dnc_reference(const char *pre, int links) {
  static const char *const names[6][2] = {
      {"w_ih", "core.controller.weight_ih"}, {"w_hh", "core.controller.weight_hh"},
      {"b_ih", "core.controller.bias_ih"},   {"b_hh", "core.controller.bias_hh"},
      {"w_if", "core.interface.weight"},     {"b_if", "core.interface.bias"}};
  mrl_ref_file rf;
  mrl_params params;
  mrl_core core;
  mrl_graph g;
  mrl_core_config cfg;
  char key[64], err[MRL_ERROR_SIZE];
  float sizes[7], *x = NULL, *starts = NULL, *state0 = NULL, *gy = NULL, *final = NULL;
  int D, N, W, R, H, Tn, Bn, S, i;
  mrl_tensor *xt, *y;
  if (!mrl_ref_open(&rf, "tests/ref/dnc.txt")) return;
  snprintf(key, sizeof key, "%s_sizes", pre);
  if (!mrl_ref_fill(&rf, key, sizes, 7)) {
    mrl_ref_close(&rf);
    return;
  }
  D = (int)sizes[0], N = (int)sizes[1], W = (int)sizes[2], R = (int)sizes[3], H = (int)sizes[4];
  Tn = (int)sizes[5], Bn = (int)sizes[6];
  cfg = mrl_core_config_dnc(N, W, R);
  cfg.dnc.controller_size = H;
  cfg.dnc.links = links;
  mrl_params_init(&params);
  MRL_CHECK(mrl_core_init(&core, &params, "core", D, &cfg, err, sizeof err) == MRL_OK &&
                mrl_params_finalize(&params, 3) == MRL_OK && mrl_graph_init(&g, 1 << 20) == MRL_OK,
            "dnc %s: init", pre);
  S = mrl_core_state_dim(&core);
  for (i = 0; i < 6; i++) {
    mrl_tensor *pt = mrl_params_tensor(&params, mrl_params_find(&params, names[i][1]));
    snprintf(key, sizeof key, "%s_%s", pre, names[i][0]);
    mrl_ref_fill(&rf, key, pt->data, pt->size);
  }
  x = (float *)calloc((size_t)Tn * Bn * D, sizeof(float));
  starts = (float *)calloc((size_t)Tn * Bn, sizeof(float));
  state0 = (float *)calloc((size_t)Bn * S, sizeof(float));
  final = (float *)calloc((size_t)Bn * S, sizeof(float));
  gy = (float *)calloc((size_t)Tn * Bn * (H + R * W), sizeof(float));
  snprintf(key, sizeof key, "%s_x", pre);
  mrl_ref_fill(&rf, key, x, Tn * Bn * D);
  snprintf(key, sizeof key, "%s_starts", pre);
  mrl_ref_fill(&rf, key, starts, Tn * Bn);
  snprintf(key, sizeof key, "%s_state0", pre);
  mrl_ref_fill(&rf, key, state0, Bn * S);
  snprintf(key, sizeof key, "%s_gy", pre);
  mrl_ref_fill(&rf, key, gy, Tn * Bn * (H + R * W));
  mrl_params_zero_grad(&params);
  xt = mrl_tensor_new2(&g, Tn * Bn, D, 1);
  memcpy(xt->data, x, sizeof(float) * (size_t)Tn * Bn * D);
  y = mrl_core_forward(&core, &g, xt, Tn, Bn, starts, state0, final, S);
  MRL_CHECK(y && y->shape[1] == H + R * W, "dnc %s: forward", pre);
  if (y) {
    mrl_tensor *loss = mrl_sum(&g, mrl_mul(&g, y, mrl_tensor_from2(&g, gy, Tn * Bn, H + R * W)));
    MRL_CHECK(loss && mrl_backward(&g, loss) == MRL_OK, "dnc %s: backward", pre);
    snprintf(key, sizeof key, "%s_y", pre);
    mrl_ref_expect(&rf, key, y->data, y->size, 1e-5, 1e-4);
    snprintf(key, sizeof key, "%s_final", pre);
    mrl_ref_expect(&rf, key, final, Bn * S, 1e-5, 1e-4);
    snprintf(key, sizeof key, "%s_g_x", pre);
    mrl_ref_expect(&rf, key, xt->grad, xt->size, 1e-4, 1e-3);
    for (i = 0; i < 6; i++) {
      mrl_tensor *pt = mrl_params_tensor(&params, mrl_params_find(&params, names[i][1]));
      snprintf(key, sizeof key, "%s_g_%s", pre, names[i][0]);
      mrl_ref_expect(&rf, key, pt->grad, pt->size, 1e-4, 1e-3);
    }
  }
  free(x);
  free(starts);
  free(state0);
  free(final);
  free(gy);
  mrl_ref_close(&rf);
  mrl_core_free(&core);
  mrl_params_free(&params);
  mrl_graph_free(&g);
}

/* 6b. a core against its PyTorch twin: prefix "hcam" or "ftw" in
 * tests/ref/hcam_ftw.txt (parameters by their C names, a stored initial state,
 * episode starts; L = sum(y * gy) (+ sum(kl * gk) for FTW)). */
static void matches_torch(const char *prefix, mrl_core_config cfg, int D, int T_, int B_) {
  mrl_ref_file rf;
  mrl_params params;
  mrl_core core;
  mrl_graph g;
  char key[256], err[MRL_ERROR_SIZE];
  float *x = NULL, *starts = NULL, *state = NULL;
  int k, S, O, ok = 1;
  mrl_tensor *xt, *y, *kl = NULL, *loss;
  if (!mrl_ref_open(&rf, "tests/ref/hcam_ftw.txt")) return;
  mrl_params_init(&params);
  if (mrl_core_init(&core, &params, "core", D, &cfg, err, sizeof err) != MRL_OK ||
      mrl_params_finalize(&params, 3) != MRL_OK || mrl_graph_init(&g, 1 << 20) != MRL_OK) {
    MRL_CHECK(0, "%s: init: %s", prefix, err);
    mrl_ref_close(&rf);
    return;
  }
  S = mrl_core_state_dim(&core);
  O = core.output_dim;
  for (k = 0; k < params.count; k++) {
    mrl_tensor *pt = mrl_params_tensor(&params, k);
    snprintf(key, sizeof key, "%s_param.%s", prefix, params.items[k].name);
    ok &= mrl_ref_fill(&rf, key, pt->data, pt->size);
  }
  snprintf(key, sizeof key, "%s_x", prefix);
  ok &= mrl_ref_get(&rf, key, &x, NULL, NULL) == T_ * B_ * D;
  snprintf(key, sizeof key, "%s_starts", prefix);
  ok &= mrl_ref_get(&rf, key, &starts, NULL, NULL) == T_ * B_;
  snprintf(key, sizeof key, "%s_state", prefix);
  ok &= mrl_ref_get(&rf, key, &state, NULL, NULL) == B_ * S;
  MRL_CHECK(ok, "%s: fixture does not fit the core (state_dim %d)", prefix, S);
  if (ok) {
    float *gy = NULL, *gk = NULL;
    mrl_params_zero_grad(&params);
    mrl_graph_set_no_grad(&g, 0);
    xt = mrl_tensor_new2(&g, T_ * B_, D, 1);
    memcpy(xt->data, x, sizeof(float) * (size_t)T_ * B_ * D);
    y = mrl_core_forward_aux(&core, &g, xt, T_, B_, starts, state, state, S, &kl);
    snprintf(key, sizeof key, "%s_gy", prefix);
    mrl_ref_get(&rf, key, &gy, NULL, NULL);
    if (kl) mrl_ref_get(&rf, "ftw_gk", &gk, NULL, NULL);
    if (y && gy && (!kl || gk)) {
      snprintf(key, sizeof key, "%s_y", prefix);
      mrl_ref_expect(&rf, key, y->data, y->size, 1e-5, 1e-4);
      if (kl) mrl_ref_expect(&rf, "ftw_kl", kl->data, kl->size, 1e-5, 1e-4);
      snprintf(key, sizeof key, "%s_state_out", prefix);
      mrl_ref_expect(&rf, key, state, B_ * S, 1e-5, 1e-4);
      loss = mrl_sum(&g, mrl_mul(&g, y, mrl_tensor_from2(&g, gy, T_ * B_, O)));
      if (kl)
        loss = mrl_add(&g, loss,
                       mrl_sum(&g, mrl_mul(&g, kl, mrl_tensor_from(&g, gk, 1, &kl->shape[0]))));
      MRL_CHECK(mrl_backward(&g, loss) == MRL_OK, "%s: backward", prefix);
      for (k = 0; k < params.count; k++) {
        mrl_tensor *pt = mrl_params_tensor(&params, k);
        snprintf(key, sizeof key, "%s_grad.%s", prefix, params.items[k].name);
        mrl_ref_expect(&rf, key, pt->grad, pt->size, 1e-5, 1e-3);
      }
      snprintf(key, sizeof key, "%s_gx", prefix);
      mrl_ref_expect(&rf, key, xt->grad, xt->size, 1e-5, 1e-3);
    } else {
      MRL_CHECK(0, "%s: forward or fixture gradients failed", prefix);
    }
    free(gy);
    free(gk);
  }
  MRL_CHECK(cfg.kind == MRL_CORE_FTW ? kl != NULL : kl == NULL,
            "%s: mrl_core_forward_aux: a KL only for FTW", prefix);
  free(x);
  free(starts);
  free(state);
  mrl_graph_free(&g);
  mrl_core_free(&core);
  mrl_params_free(&params);
  mrl_ref_close(&rf);
}

static void test_parse(void) {
  mrl_core_config c;
  char err[MRL_ERROR_SIZE];
  MRL_CHECK(mrl_core_config_parse("gru:64:2", &c, err, sizeof err) == MRL_OK &&
                c.kind == MRL_CORE_GRU && c.hidden_size == 64 && c.num_layers == 2,
            "parse gru:64:2");
  MRL_CHECK(mrl_core_config_parse("lstm:128", &c, err, sizeof err) == MRL_OK &&
                c.kind == MRL_CORE_LSTM && c.hidden_size == 128 && c.num_layers == 1,
            "parse lstm:128");
  MRL_CHECK(mrl_core_config_parse("elman_relu:8", &c, err, sizeof err) == MRL_OK &&
                c.kind == MRL_CORE_ELMAN && c.nonlinearity == MRL_ACT_RELU,
            "parse elman_relu:8");
  MRL_CHECK(mrl_core_config_parse("frame_stack:4", &c, err, sizeof err) == MRL_OK &&
                c.kind == MRL_CORE_FRAME_STACK && c.frame_stack == 4,
            "parse frame_stack:4");
  MRL_CHECK(mrl_core_config_parse("gtrxl:32:3", &c, err, sizeof err) == MRL_OK &&
                c.kind == MRL_CORE_GTRXL && c.gtrxl.embed_dim == 32 && c.gtrxl.num_layers == 3,
            "parse gtrxl:32:3");
  MRL_CHECK(mrl_core_config_parse("none", &c, err, sizeof err) == MRL_OK && c.kind == MRL_CORE_NONE,
            "parse none");
  MRL_CHECK(mrl_core_config_parse("lstm", &c, err, sizeof err) == MRL_ERR_INVALID_ARGUMENT &&
                strstr(err, "\"lstm\""),
            "parse lstm without units: '%s'", err);
  MRL_CHECK(mrl_core_config_parse("gru:0", &c, err, sizeof err) == MRL_ERR_INVALID_ARGUMENT,
            "parse gru:0");
  MRL_CHECK(mrl_core_config_parse("gru:8:99", &c, err, sizeof err) == MRL_ERR_INVALID_ARGUMENT,
            "parse gru:8:99 (too many layers)");
  MRL_CHECK(mrl_core_config_parse("tardis:8", &c, err, sizeof err) == MRL_ERR_INVALID_ARGUMENT,
            "parse an unknown core");
  MRL_CHECK(mrl_core_config_parse("amrl:64", &c, err, sizeof err) == MRL_OK &&
                c.kind == MRL_CORE_AMRL && c.hidden_size == 64 &&
                c.amrl.aggregator == MRL_AMRL_AVG && c.amrl.straight_through == 1,
            "parse amrl:64");
  MRL_CHECK(mrl_core_config_parse("amrl:32:max", &c, err, sizeof err) == MRL_OK &&
                c.kind == MRL_CORE_AMRL && c.hidden_size == 32 && c.amrl.aggregator == MRL_AMRL_MAX,
            "parse amrl:32:max");
  MRL_CHECK(mrl_core_config_parse("amrl:32:sum", &c, err, sizeof err) == MRL_OK &&
                c.amrl.aggregator == MRL_AMRL_SUM,
            "parse amrl:32:sum");
  MRL_CHECK(mrl_core_config_parse("amrl:32:median", &c, err, sizeof err) ==
                    MRL_ERR_INVALID_ARGUMENT &&
                strstr(err, "amrl:H[:avg|sum|max]"),
            "parse amrl:32:median: '%s'", err);
  MRL_CHECK(mrl_core_config_parse("fwp:16:4", &c, err, sizeof err) == MRL_OK &&
                c.kind == MRL_CORE_FWP && c.fwp.head_dim == 16 && c.fwp.heads == 4,
            "parse fwp:16:4");
  MRL_CHECK(mrl_core_config_parse("fwp:8", &c, err, sizeof err) == MRL_OK && c.fwp.heads == 1,
            "parse fwp:8");
  {
    mrl_params p;
    mrl_core core;
    mrl_params_init(&p);
    c = mrl_core_config_amrl(7, MRL_AMRL_MAX);
    MRL_CHECK(mrl_core_init(&core, &p, "core", 3, &c, err, sizeof err) ==
                      MRL_ERR_INVALID_ARGUMENT &&
                  strstr(err, "hidden_size 7") && p.count == 0,
              "amrl with 7 units: '%s'", err);
    mrl_core_free(&core);
    c = mrl_core_config_fwp(0, 2);
    MRL_CHECK(mrl_core_init(&core, &p, "core", 3, &c, err, sizeof err) ==
                      MRL_ERR_INVALID_ARGUMENT &&
                  strstr(err, "head_dim 0") && p.count == 0,
              "fwp of size 0: '%s'", err);
    mrl_core_free(&core);
    mrl_params_free(&p);
  }
  MRL_CHECK(mrl_core_config_parse("dnc:32:8:2", &c, err, sizeof err) == MRL_OK &&
                c.kind == MRL_CORE_DNC && c.dnc.memory_size == 32 && c.dnc.word_size == 8 &&
                c.dnc.read_heads == 2 && c.dnc.links == 0 && c.dnc.controller_size == 64,
            "parse dnc:32:8:2");
  MRL_CHECK(mrl_core_config_parse("dnc:16:4:1:links", &c, err, sizeof err) == MRL_OK &&
                c.kind == MRL_CORE_DNC && c.dnc.memory_size == 16 && c.dnc.links == 1,
            "parse dnc:16:4:1:links");
  MRL_CHECK(mrl_core_config_parse("dnc:16:4", &c, err, sizeof err) == MRL_ERR_INVALID_ARGUMENT &&
                mrl_core_config_parse("dnc:16:4:1:link", &c, err, sizeof err) ==
                    MRL_ERR_INVALID_ARGUMENT &&
                mrl_core_config_parse("dnc:0:4:1", &c, err, sizeof err) == MRL_ERR_INVALID_ARGUMENT,
            "parse bad dnc specs");
  MRL_CHECK(mrl_core_config_parse("hcam:32:4:3", &c, err, sizeof err) == MRL_OK &&
                c.kind == MRL_CORE_HCAM && c.hcam.dim == 32 && c.hcam.chunk == 4 &&
                c.hcam.topk == 3 && c.hcam.num_chunks == 16,
            "parse hcam:32:4:3");
  MRL_CHECK(mrl_core_config_parse("hcam:32:4:3:7", &c, err, sizeof err) == MRL_OK &&
                c.hcam.num_chunks == 7,
            "parse hcam:32:4:3:7");
  MRL_CHECK(mrl_core_config_parse("ftw:64:32:8", &c, err, sizeof err) == MRL_OK &&
                c.kind == MRL_CORE_FTW && c.ftw.fast_size == 64 && c.ftw.slow_size == 32 &&
                c.ftw.period == 8 && c.ftw.latent_size == 0,
            "parse ftw:64:32:8");
  MRL_CHECK(mrl_core_config_parse("ftw:64:32:8:16", &c, err, sizeof err) == MRL_OK &&
                c.ftw.latent_size == 16,
            "parse ftw:64:32:8:16");
  MRL_CHECK(mrl_core_config_parse("hcam:32:4", &c, err, sizeof err) == MRL_ERR_INVALID_ARGUMENT,
            "parse hcam without topk");
  MRL_CHECK(
      mrl_core_config_parse("ftw:8:8:2:4:1", &c, err, sizeof err) == MRL_ERR_INVALID_ARGUMENT &&
          mrl_core_config_parse("ftw:8:8:0", &c, err, sizeof err) == MRL_ERR_INVALID_ARGUMENT &&
          mrl_core_config_parse("hcam:8:2:1:", &c, err, sizeof err) == MRL_ERR_INVALID_ARGUMENT,
      "parse malformed hcam/ftw specs");
}

/* The frame stack by hand: k = 3 over one environment's inputs 1, 2, 3, ...
 * with an episode starting at step 2: stacks [0 0 1] [0 1 2] [0 0 3] [0 3 4]. */
static void test_frame_stack_values(void) {
  core_fixture f;
  mrl_core_config cfg = mrl_core_config_frame_stack(3);
  float x[4] = {1, 2, 3, 4}, starts[4] = {1, 0, 1, 0}, state[2] = {7, 7},
        want[12] = {0, 0, 1, 0, 1, 2, 0, 0, 3, 0, 3, 4};
  mrl_tensor *y;
  if (!fixture_init(&f, &cfg, 1, "frame stack values")) return;
  mrl_graph_set_no_grad(&f.g, 1);
  y = mrl_core_forward(&f.core, &f.g, mrl_tensor_from2(&f.g, x, 4, 1), 4, 1, starts, state, state,
                       2);
  MRL_CHECK(y && y->shape[0] == 4 && y->shape[1] == 3 && memcmp(y->data, want, sizeof want) == 0,
            "frame stack: stacks by hand");
  MRL_CHECK(state[0] == 3.0f && state[1] == 4.0f, "frame stack: state %g %g, want 3 4", state[0],
            state[1]);
  fixture_free(&f);
}

/* 7. AMRL and FWP against their equations written in PyTorch
 * (tools/make_ref.py make_amrl_fwp -> tests/ref/amrl_fwp.txt): outputs, final
 * state and gradients of sum(y * gy) for x and every parameter, on fixed
 * weights, from a stored state, with resets; for AMRL the paper's
 * straight-through gradient. */
static void torch_case(mrl_ref_file *rf, const char *label, mrl_core_config cfg, int T_, int B_,
                       int D, const char *pre, const char *wpre, const char *const *pnames,
                       const char *const *fnames, int np) {
  char name[128];
  core_fixture f;
  float *x = NULL, *starts = NULL, *state = NULL, *gy = NULL;
  mrl_tensor *xt, *y, *loss;
  int k, S;
  (void)label;
  if (!fixture_init(&f, &cfg, D, label)) return;
  S = f.S;
  for (k = 0; k < np; k++) { /* fixed weights */
    int idx = mrl_params_find(&f.params, pnames[k]);
    MRL_CHECK(idx >= 0, "%s: no parameter %s", label, pnames[k]);
    if (idx < 0) goto done;
    snprintf(name, sizeof name, "%s%s", wpre, fnames[k]);
    if (!mrl_ref_fill(rf, name, mrl_params_tensor(&f.params, idx)->data,
                      mrl_params_tensor(&f.params, idx)->size))
      goto done;
  }
  x = (float *)malloc(sizeof(float) * (size_t)T_ * B_ * D);
  starts = (float *)malloc(sizeof(float) * (size_t)T_ * B_);
  state = (float *)malloc(sizeof(float) * (size_t)B_ * S);
  gy = (float *)malloc(sizeof(float) * (size_t)T_ * B_ * f.O);
  snprintf(name, sizeof name, "%sstate0", pre);
  if (!mrl_ref_fill(rf, name, state, B_ * S)) goto done;
  snprintf(name, sizeof name, "%sx", cfg.kind == MRL_CORE_AMRL ? "amrl_" : "fwp_");
  if (!mrl_ref_fill(rf, name, x, T_ * B_ * D)) goto done;
  snprintf(name, sizeof name, "%sstarts", cfg.kind == MRL_CORE_AMRL ? "amrl_" : "fwp_");
  if (!mrl_ref_fill(rf, name, starts, T_ * B_)) goto done;
  snprintf(name, sizeof name, "%sgy", cfg.kind == MRL_CORE_AMRL ? "amrl_" : "fwp_");
  if (!mrl_ref_fill(rf, name, gy, T_ * B_ * f.O)) goto done;
  mrl_graph_reset(&f.g);
  mrl_graph_set_no_grad(&f.g, 0);
  mrl_params_zero_grad(&f.params);
  xt = mrl_tensor_new2(&f.g, T_ * B_, D, 1);
  memcpy(xt->data, x, sizeof(float) * (size_t)T_ * B_ * D);
  y = mrl_core_forward(&f.core, &f.g, xt, T_, B_, starts, state, state, S);
  loss = y ? mrl_sum(&f.g, mrl_mul(&f.g, y, mrl_tensor_from2(&f.g, gy, T_ * B_, f.O))) : NULL;
  MRL_CHECK(loss && mrl_backward(&f.g, loss) == MRL_OK, "%s: forward/backward", label);
  if (!loss) goto done;
  snprintf(name, sizeof name, "%sy", pre);
  mrl_ref_expect(rf, name, y->data, y->size, 1e-5, 1e-4);
  snprintf(name, sizeof name, "%sstate", pre);
  mrl_ref_expect(rf, name, state, B_ * S, 1e-5, 1e-4);
  snprintf(name, sizeof name, "%sgx", pre);
  mrl_ref_expect(rf, name, xt->grad, xt->size, 1e-5, 1e-4);
  for (k = 0; k < np; k++) {
    mrl_tensor *pt = mrl_params_tensor(&f.params, mrl_params_find(&f.params, pnames[k]));
    snprintf(name, sizeof name, "%sg_%s", pre, fnames[k]);
    mrl_ref_expect(rf, name, pt->grad, pt->size, 1e-5, 1e-4);
  }
done:
  free(x);
  free(starts);
  free(state);
  free(gy);
  fixture_free(&f);
}

static void test_amrl_fwp_torch(void) {
  static const char *const lstm_p[4] = {"core.weight_ih_l0", "core.weight_hh_l0", "core.bias_ih_l0",
                                        "core.bias_hh_l0"};
  static const char *const lstm_f[4] = {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"};
  static const char *const fwp_p[1] = {"core.proj.weight"};
  static const char *const fwp_f[1] = {"weight"};
  mrl_ref_file rf;
  if (!mrl_ref_open(&rf, "tests/ref/amrl_fwp.txt")) return;
  torch_case(&rf, "amrl avg vs torch", mrl_core_config_amrl(6, MRL_AMRL_AVG), 5, 2, 3, "amrl_avg_",
             "amrl_w_", lstm_p, lstm_f, 4);
  torch_case(&rf, "amrl max vs torch", mrl_core_config_amrl(6, MRL_AMRL_MAX), 5, 2, 3, "amrl_max_",
             "amrl_w_", lstm_p, lstm_f, 4);
  torch_case(&rf, "amrl sum vs torch", mrl_core_config_amrl(6, MRL_AMRL_SUM), 5, 2, 3, "amrl_sum_",
             "amrl_w_", lstm_p, lstm_f, 4);
  torch_case(&rf, "fwp vs torch", mrl_core_config_fwp(3, 2), 5, 2, 4, "fwp_", "fwp_", fwp_p, fwp_f,
             1);
  mrl_ref_close(&rf);
}

int main(void) {
  static const int user_hidden = 5;
  mrl_core_config c;
  conformance("lstm", mrl_core_config_lstm(6), 4);
  c = mrl_core_config_lstm(5);
  c.num_layers = 2;
  conformance("lstm 2 layers", c, 3);
  conformance("gru", mrl_core_config_gru(6), 4);
  c = mrl_core_config_gru(4);
  c.num_layers = 3;
  conformance("gru 3 layers", c, 3);
  conformance("elman tanh", mrl_core_config_elman(6), 4);
  c = mrl_core_config_elman(5);
  c.nonlinearity = MRL_ACT_RELU;
  c.num_layers = 2;
  conformance("elman relu 2 layers", c, 3);
  conformance("frame stack 4", mrl_core_config_frame_stack(4), 3);
  conformance("frame stack 1", mrl_core_config_frame_stack(1), 3);
  conformance("none", mrl_core_config_default(), 3);
  conformance("user gru", mrl_core_config_user(&test_user_gru_type, &user_hidden), 4);
  /* GTrXL: a sequence equals its steps while the window holds the whole history
   * (5 warm-up steps + 6), as in Transformer-XL a segment otherwise sees further */
  c = mrl_core_config_gtrxl(8, 12);
  c.gtrxl.num_heads = 2;
  c.gtrxl.ff_dim = 16;
  conformance("gtrxl (input projected)", c, 3);
  c.gtrxl.num_layers = 1;
  conformance("gtrxl 1 layer, input of embed width", c, 8);
  conformance("amrl avg (straight-through)", mrl_core_config_amrl(6, MRL_AMRL_AVG), 4);
  conformance("amrl max (straight-through)", mrl_core_config_amrl(6, MRL_AMRL_MAX), 4);
  conformance("amrl sum", mrl_core_config_amrl(6, MRL_AMRL_SUM), 4);
  c = mrl_core_config_amrl(6, MRL_AMRL_AVG);
  c.amrl.straight_through = 0;
  conformance("amrl avg (exact gradient)", c, 4);
  c = mrl_core_config_amrl(4, MRL_AMRL_MAX);
  c.amrl.straight_through = 0;
  c.num_layers = 2;
  conformance("amrl max 2 layers (exact gradient)", c, 3);
  conformance("fwp", mrl_core_config_fwp(3, 1), 4);
  conformance("fwp 2 heads", mrl_core_config_fwp(4, 2), 3);
  /* The DNC's allocation jumps where two usages swap order (the paper ignores
   * those points): sizes are chosen so that no order changes inside the
   * finite-difference step; dnc_reference checks gradients independently. */
  c = mrl_core_config_dnc(5, 3, 2);
  c.dnc.controller_size = 4;
  conformance("dnc", c, 3);
  c = mrl_core_config_dnc(6, 3, 2);
  c.dnc.controller_size = 4;
  c.dnc.links = 1;
  conformance("dnc links", c, 3);
  c = mrl_core_config_dnc(4, 3, 1);
  c.dnc.controller_size = 3;
  conformance("dnc one head", c, 2);
  /* HCAM: chunks of 2 in a ring of 2, so T = 6 commits, wraps and reads the
   * partial chunk; top-2 of 3 candidates, 2 heads */
  c = mrl_core_config_hcam(4, 2, 2);
  c.hcam.num_chunks = 2;
  c.hcam.num_heads = 2;
  conformance("hcam", c, 3);
  c = mrl_core_config_hcam(6, 3, 1);
  c.hcam.num_chunks = 3;
  conformance("hcam top-1", c, 4);
  c = mrl_core_config_ftw(5, 4, 2); /* tau 2: the slow core ticks mid-sequence */
  c.ftw.latent_size = 3;
  conformance("ftw", c, 3);
  conformance("ftw tau 1", mrl_core_config_ftw(4, 3, 1), 3);
  c = mrl_core_config_lstm(4);
  c.num_layers = 2;
  matches_stack("lstm 2 layers = mrl_lstm", c, 3);
  c = mrl_core_config_gru(4);
  c.num_layers = 2;
  matches_stack("gru 2 layers = mrl_gru", c, 3);
  c = mrl_core_config_elman(4);
  c.num_layers = 2;
  matches_stack("elman 2 layers = mrl_elman", c, 3);
  dnc_reference("nl", 0);
  dnc_reference("lk", 1);
  c = mrl_core_config_hcam(8, 3, 2);
  c.hcam.num_chunks = 3;
  c.hcam.num_heads = 2;
  matches_torch("hcam", c, 5, 9, 3);
  c = mrl_core_config_ftw(6, 5, 3);
  c.ftw.latent_size = 3;
  matches_torch("ftw", c, 4, 8, 3);
  test_parse();
  test_frame_stack_values();
  test_amrl_fwp_torch();
  return mrl_test_summary("test_cores");
}
