/* IMPALA, V-trace and PopArt (issue 16).
 *   1. mrl_vtrace against a direct transcription of the paper's equations
 *      (the sum form of eq. 1 and the policy-gradient advantage of 4.2),
 *      with rho / c / pg-rho clipping, no clipping, and episode ends inside
 *      the trajectory; plus a two-step case worked by hand.
 *   2. PopArt: the statistics follow their equations, and a linear layer's
 *      denormalised outputs are preserved to float precision across updates
 *      of targets 1000x apart (and are not without the rescale).
 *   3. The pinned learner step: tests/ref/impala_update.txt (tools/make_ref.py,
 *      make_impala_update), one LSTM learner step with V-trace and TF-style
 *      RMSProp, without and with PopArt: vs, advantages, losses, clipped
 *      gradients, updated parameters and statistics.
 *   4. Acting allocates nothing; save/load resumes bitwise; synchronous runs
 *      (one actor, and several without threads) are bitwise deterministic;
 *      init rejects bad configs by name; the bounded queue.
 *
 * Run from the repository root:  cc -std=c99 -O2 tests/test_impala.c -lm && ./a.out */
#define MEMRL_IMPLEMENTATION
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* getpid */
#endif
#ifdef _WIN32
#include <process.h>
#define test_getpid() _getpid()
#else
#include <unistd.h>
#define test_getpid() getpid()
#endif
#define MRL_TEST_COUNT_ALLOCATIONS
#include "test.h"

#include "../memrl_algos.h"
#include "ref_loader.h"

/* ---- 1. V-trace ---- */

/* The paper's sum: vs_s = V(x_s) + sum_{t=s}^{T-1} (prod_{i=s}^{t-1} gamma_i c_i) delta_t,
 * pg_s = rho^pg_s (r_s + gamma_s vs_{s+1} - V(x_s)), in double. */
static void vtrace_sum(int T, int B, const float *lr, const float *disc, const float *rew,
                       const float *val, const float *boot, double rho_bar, double c_bar,
                       double pg_bar, double *vs, double *pg) {
  int s, t, b;
  for (b = 0; b < B; b++) {
    for (s = 0; s < T; s++) {
      double acc = 0.0, prod = 1.0;
      for (t = s; t < T; t++) {
        size_t i = (size_t)t * B + b;
        double rho = exp((double)lr[i]);
        double v_next = t + 1 < T ? val[i + B] : boot[b];
        double delta = fmin(rho_bar, rho) * (rew[i] + disc[i] * v_next - val[i]);
        acc += prod * delta;
        prod *= disc[i] * fmin(c_bar, rho);
      }
      vs[(size_t)s * B + b] = val[(size_t)s * B + b] + acc;
    }
    for (s = 0; s < T; s++) {
      size_t i = (size_t)s * B + b;
      double vs_next = s + 1 < T ? vs[i + B] : boot[b];
      pg[i] = fmin(pg_bar, exp((double)lr[i])) * (rew[i] + disc[i] * vs_next - val[i]);
    }
  }
}

static void vtrace_case(const char *label, float rho_bar, float c_bar, float pg_bar,
                        uint64_t seed) {
  enum { T = 9, B = 3 };
  float lr[T * B], disc[T * B], rew[T * B], val[T * B], boot[B], vs[T * B], pg[T * B];
  double want_vs[T * B], want_pg[T * B];
  mrl_rng rng = mrl_rng_make(seed);
  int i, ends = 0, clipped = 0;
  for (i = 0; i < T * B; i++) {
    lr[i] = mrl_rng_uniform_range(&rng, -1.2f, 1.2f); /* rho from 0.3 to 3.3 */
    rew[i] = mrl_rng_uniform_range(&rng, -2.0f, 2.0f);
    val[i] = mrl_rng_uniform_range(&rng, -3.0f, 3.0f);
    disc[i] = mrl_rng_uniform(&rng) < 0.15f ? 0.0f : 0.97f; /* episode ends inside */
    ends += disc[i] == 0.0f;
    clipped += exp(lr[i]) > rho_bar;
  }
  for (i = 0; i < B; i++) boot[i] = mrl_rng_uniform_range(&rng, -3.0f, 3.0f);
  mrl_vtrace(T, B, lr, disc, rew, val, boot, rho_bar, c_bar, pg_bar, vs, pg);
  vtrace_sum(T, B, lr, disc, rew, val, boot, rho_bar, c_bar, pg_bar, want_vs, want_pg);
  MRL_CHECK(ends > 0 && (rho_bar > 100.0f || clipped > 0), "%s: the data has ends and clipping",
            label);
  for (i = 0; i < T * B; i++) {
    MRL_CHECK_NEAR(vs[i], want_vs[i], 1e-5, 1e-5, label);
    MRL_CHECK_NEAR(pg[i], want_pg[i], 1e-5, 1e-5, label);
  }
  { /* NULL outputs are allowed, each alone gives the same numbers */
    float vs2[T * B], pg2[T * B];
    mrl_vtrace(T, B, lr, disc, rew, val, boot, rho_bar, c_bar, pg_bar, vs2, NULL);
    mrl_vtrace(T, B, lr, disc, rew, val, boot, rho_bar, c_bar, pg_bar, NULL, pg2);
    MRL_CHECK(memcmp(vs, vs2, sizeof vs) == 0 && memcmp(pg, pg2, sizeof pg) == 0,
              "%s: outputs alone", label);
  }
}

static void test_vtrace(void) {
  /* two steps by hand: rho = (2, 0.5), rho_bar = c_bar = 1, gamma 0.9, no end
   * delta_1 = 0.5 (1 + 0.9*4 - 3) = 0.8; vs_1 = 3.8
   * delta_0 = 1 (2 + 0.9*3 - 1) = 3.7; vs_0 = 1 + 3.7 + 0.9 * 1 * 0.8 = 5.42
   * pg_0 = 1 (2 + 0.9*3.8 - 1) = 4.42; pg_1 = 0.5 (1 + 0.9*4 - 3) = 0.8 */
  float lr[2], disc[2] = {0.9f, 0.9f}, rew[2] = {2.0f, 1.0f}, val[2] = {1.0f, 3.0f};
  float boot = 4.0f, vs[2], pg[2];
  lr[0] = logf(2.0f), lr[1] = logf(0.5f);
  mrl_vtrace(2, 1, lr, disc, rew, val, &boot, 1.0f, 1.0f, 1.0f, vs, pg);
  MRL_CHECK_NEAR(vs[0], 5.42, 1e-5, 0, "vtrace by hand vs_0");
  MRL_CHECK_NEAR(vs[1], 3.8, 1e-5, 0, "vtrace by hand vs_1");
  MRL_CHECK_NEAR(pg[0], 4.42, 1e-5, 0, "vtrace by hand pg_0");
  MRL_CHECK_NEAR(pg[1], 0.8, 1e-5, 0, "vtrace by hand pg_1");
  /* the first step ends its episode: vs_0 = V + rho (r - V) */
  disc[0] = 0.0f;
  mrl_vtrace(2, 1, lr, disc, rew, val, &boot, 1.0f, 1.0f, 1.0f, vs, pg);
  MRL_CHECK_NEAR(vs[0], 2.0, 1e-6, 0, "vtrace by hand, end: vs_0");
  MRL_CHECK_NEAR(pg[0], 1.0, 1e-6, 0, "vtrace by hand, end: pg_0");
  vtrace_case("vtrace paper 1/1/1", 1.0f, 1.0f, 1.0f, 1);
  vtrace_case("vtrace 1.5/0.8/2", 1.5f, 0.8f, 2.0f, 2);
  vtrace_case("vtrace unclipped", HUGE_VALF, HUGE_VALF, HUGE_VALF, 3);
  { /* on-policy (rho = 1), no clipping at play: n-step bootstrapped returns */
    enum { T = 4 };
    float l0[T] = {0, 0, 0, 0}, d[T] = {0.5f, 0.5f, 0.5f, 0.5f}, r[T] = {1, 2, 3, 4};
    float v[T] = {0, 0, 0, 0}, b = 8.0f, out[T];
    mrl_vtrace(T, 1, l0, d, r, v, &b, 1.0f, 1.0f, 1.0f, out, NULL);
    MRL_CHECK_NEAR(out[0], 1 + 0.5 * (2 + 0.5 * (3 + 0.5 * (4 + 0.5 * 8))), 1e-6, 0,
                   "vtrace on-policy = discounted return");
  }
}

/* ---- 2. PopArt ---- */

static void test_popart(void) {
  enum { IN = 5, K = 3, N = 7 };
  mrl_params p;
  mrl_linear_layer l;
  mrl_popart pa;
  mrl_graph g;
  mrl_rng rng = mrl_rng_make(11);
  float x[N * IN], before[N * K], after[N * K], targets[2 * N];
  int tasks[2 * N], i, k, round;
  double worst = 0.0, moved = 0.0, mu = 0.0, nu = 1.0;
  mrl_params_init(&p);
  mrl_linear_layer_init(&l, &p, "v", IN, K, mrl_init_default());
  MRL_CHECK(mrl_params_finalize(&p, 3) == MRL_OK, "popart: params");
  MRL_CHECK(mrl_popart_init(&pa, K, 0.3f) == MRL_OK, "popart: init");
  {
    mrl_popart bad;
    MRL_CHECK(mrl_popart_init(&bad, 0, 0.3f) == MRL_ERR_INVALID_ARGUMENT &&
                  mrl_popart_init(&bad, 2, 0.0f) == MRL_ERR_INVALID_ARGUMENT,
              "popart: bad arguments refused");
    mrl_popart_free(&bad);
  }
  MRL_CHECK(mrl_graph_init(&g, 1 << 16) == MRL_OK, "popart: graph");
  for (i = 0; i < N * IN; i++) x[i] = mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
  for (round = 0; round < 6; round++) {
    mrl_tensor *y;
    /* outputs of every task for every input, denormalised */
    mrl_graph_reset(&g);
    y = mrl_linear_layer_forward(&l, &g, mrl_tensor_from2(&g, x, N, IN));
    for (i = 0; i < N; i++)
      for (k = 0; k < K; k++) {
        mrl_popart_denormalize(&pa, &y->data[i * K + k], &k, 1, &before[i * K + k]);
      }
    /* targets: task 0 ~ 1, task 1 ~ 1000 (a scale 1000x apart), task 2 absent */
    for (i = 0; i < 2 * N; i++) {
      tasks[i] = i % 2;
      targets[i] = (tasks[i] ? 1000.0f : 1.0f) * mrl_rng_uniform_range(&rng, -1.0f, 3.0f);
    }
    { /* task 0's statistics by their equations */
      double s = 0.0, s2 = 0.0;
      for (i = 0; i < 2 * N; i += 2) s += targets[i], s2 += (double)targets[i] * targets[i];
      mu = 0.7 * mu + 0.3 * s / N;
      nu = 0.7 * nu + 0.3 * s2 / N;
    }
    mrl_popart_update(&pa, &p, &l, targets, tasks, 2 * N);
    MRL_CHECK_NEAR(mrl_popart_mu(&pa, 0), mu, 1e-6, 1e-6, "popart mu by its equation");
    MRL_CHECK_NEAR(mrl_popart_sigma(&pa, 0), sqrt(nu - mu * mu), 1e-6, 1e-6,
                   "popart sigma by its equation");
    MRL_CHECK(mrl_popart_mu(&pa, 2) == 0.0f && mrl_popart_sigma(&pa, 2) == 1.0f,
              "popart: an absent task keeps its statistics");
    mrl_graph_reset(&g);
    y = mrl_linear_layer_forward(&l, &g, mrl_tensor_from2(&g, x, N, IN));
    for (i = 0; i < N * K; i++) {
      k = i % K;
      mrl_popart_denormalize(&pa, &y->data[i], &k, 1, &after[i]);
      /* float precision at the task's scale: sigma n + mu rounds at ~1e-7 (sigma + |mu|) */
      worst =
          fmax(worst, fabs(after[i] - before[i]) / (mrl_popart_sigma(&pa, k) +
                                                    fabs(mrl_popart_mu(&pa, k)) + fabs(before[i])));
    }
  }
  {
    /* a layer that is not rescaled: its denormalised outputs jump */
    mrl_params q;
    mrl_linear_layer m;
    mrl_popart pc;
    mrl_tensor *y0, *y1;
    float t1[4] = {1000.0f, 2000.0f, 1500.0f, 900.0f}, o0, o1;
    int zero = 0;
    mrl_params_init(&q);
    mrl_linear_layer_init(&m, &q, "v", IN, 1, mrl_init_default());
    mrl_params_finalize(&q, 5);
    mrl_popart_init(&pc, 1, 0.5f);
    mrl_graph_reset(&g);
    y0 = mrl_linear_layer_forward(&m, &g, mrl_tensor_from2(&g, x, 1, IN));
    mrl_popart_denormalize(&pc, y0->data, &zero, 1, &o0);
    mrl_popart_update(&pc, &q, NULL, t1, NULL, 4);
    y1 = mrl_linear_layer_forward(&m, &g, mrl_tensor_from2(&g, x, 1, IN));
    mrl_popart_denormalize(&pc, y1->data, &zero, 1, &o1);
    moved = fabs(o1 - o0);
    mrl_popart_free(&pc);
    mrl_params_free(&q);
  }
  printf("popart: worst relative change of a preserved output %.3g (sigma of task 1 %.4g)\n", worst,
         mrl_popart_sigma(&pa, 1));
  MRL_CHECK(worst < 2e-6, "popart preserves outputs to float precision (worst %.3g)", worst);
  MRL_CHECK(mrl_popart_sigma(&pa, 1) > 100.0f, "popart: task 1's sigma follows its scale");
  MRL_CHECK(moved > 100.0, "popart without the rescale changes the outputs (%.3g)", moved);
  mrl_graph_free(&g);
  mrl_popart_free(&pa);
  mrl_params_free(&p);
}

/* ---- 3. the pinned learner step ---- */

enum { PT = 5, PB = 4, POBS = 3 };

static mrl_result fixed_reset(void *self, uint64_t seed, float *obs) {
  (void)self;
  (void)seed;
  memset(obs, 0, sizeof(float) * POBS);
  return MRL_OK;
}
static mrl_result fixed_step(void *self, const float *action, float *obs, float *reward,
                             int *terminated, int *truncated) {
  (void)self;
  (void)action;
  memset(obs, 0, sizeof(float) * POBS);
  *reward = 0.0f;
  *terminated = *truncated = 0;
  return MRL_OK;
}

static int make_fixed_env(mrl_vecenv *v) {
  mrl_env *envs[PB];
  mrl_env_vtable vt;
  int i;
  memset(&vt, 0, sizeof vt);
  vt.id = "FixedDiscrete";
  vt.obs_dim = POBS;
  vt.num_actions = 3;
  vt.action_dim = 1;
  vt.reset = fixed_reset;
  vt.step = fixed_step;
  for (i = 0; i < PB; i++) envs[i] = mrl_env_create(&vt, NULL);
  return mrl_vecenv_init_envs(v, envs, PB, 1) == MRL_OK;
}

static void pinned_case(const mrl_ref_file *f, const char *c, int popart) {
  mrl_vecenv env;
  mrl_impala a;
  mrl_impala_config cfg = mrl_impala_config_default();
  mrl_impala_update_stats st;
  mrl_impala_trajectory *tr;
  char name[64];
  int k, N = PT * PB;
  float want;
  if (!make_fixed_env(&env)) {
    MRL_CHECK(0, "%s: stand-in env", c);
    return;
  }
  cfg.unroll_length = PT;
  cfg.net.encoder_sizes[0] = cfg.net.encoder_sizes[1] = 8;
  cfg.net.core = mrl_core_config_lstm(6);
  if (popart) {
    cfg.popart = 1;
    cfg.num_tasks = 2;
    cfg.popart_beta = 0.1f;
    cfg.max_grad_norm = 1.0f;
  }
  if (mrl_impala_init(&a, &cfg, &env) != MRL_OK) {
    MRL_CHECK(0, "%s: init: %s", c, a.error);
    mrl_vecenv_free(&env);
    return;
  }
  for (k = 0; k < a.net.params.count; k++) {
    mrl_tensor *t = &a.net.params.items[k].tensor;
    snprintf(name, sizeof name, "%s_p%d", c, k);
    MRL_CHECK(mrl_ref_fill(f, name, t->data, t->size), "%s: parameter %d (%s) does not fit", c, k,
              a.net.params.items[k].name);
  }
  tr = &a.slots[0];
  tr->actor = 0;
  tr->policy_version = 0;
#define FILL(field, count)                                                                         \
  do {                                                                                             \
    snprintf(name, sizeof name, "%s_%s", c, #field);                                               \
    MRL_CHECK(mrl_ref_fill(f, name, tr->field, count), "%s: fixture %s", c, name);                 \
  } while (0)
  FILL(obs, (PT + 1) * PB * POBS);
  FILL(starts, (PT + 1) * PB);
  FILL(actions, N);
  FILL(behaviour_log_probs, N);
  FILL(rewards, N);
  FILL(terminated, N);
  FILL(truncated, N);
  FILL(final_values, N);
  FILL(initial_state, PB * a.state_dim);
#undef FILL
  if (popart) {
    float mu0[2], nu0[2];
    snprintf(name, sizeof name, "%s_popart_mu0", c);
    mrl_ref_fill(f, name, mu0, 2);
    snprintf(name, sizeof name, "%s_popart_nu0", c);
    mrl_ref_fill(f, name, nu0, 2);
    for (k = 0; k < 2; k++) a.popart.mu[k] = mu0[k], a.popart.nu[k] = nu0[k];
  }
  MRL_CHECK(mrl_impala_update(&a, &tr, 1, cfg.learning_rate, &st) == MRL_OK,
            "%s: update failed (%s)", c, a.error);
  {
    /* vs and the advantages, as the update computed them (its scratch) */
    const float *vs = a.b_scalars + 4 * (N + PB), *adv = a.b_scalars + 5 * (N + PB);
    snprintf(name, sizeof name, "%s_vs", c);
    mrl_ref_expect(f, name, vs, N, 1e-5, 1e-5);
    snprintf(name, sizeof name, "%s_pg_adv", c);
    mrl_ref_expect(f, name, adv, N, 1e-5, 1e-5);
  }
  snprintf(name, sizeof name, "%s_policy_loss", c);
  if (mrl_ref_fill(f, name, &want, 1)) MRL_CHECK_NEAR(st.policy_loss * N, want, 1e-5, 1e-5, name);
  snprintf(name, sizeof name, "%s_baseline_loss", c);
  if (mrl_ref_fill(f, name, &want, 1)) MRL_CHECK_NEAR(st.baseline_loss * N, want, 1e-5, 1e-5, name);
  snprintf(name, sizeof name, "%s_entropy", c);
  if (mrl_ref_fill(f, name, &want, 1)) MRL_CHECK_NEAR(st.entropy * N, want, 1e-5, 1e-5, name);
  for (k = 0; k < a.net.params.count; k++) {
    mrl_tensor *t = &a.net.params.items[k].tensor;
    snprintf(name, sizeof name, "%s_g%d", c, k);
    mrl_ref_expect(f, name, t->grad, t->size, 2e-6, 1e-4);
    snprintf(name, sizeof name, "%s_u%d", c, k);
    mrl_ref_expect(f, name, t->data, t->size, 1e-6, 1e-5);
  }
  if (popart) {
    float mu[2] = {mrl_popart_mu(&a.popart, 0), mrl_popart_mu(&a.popart, 1)};
    float nu[2] = {(float)a.popart.nu[0], (float)a.popart.nu[1]};
    snprintf(name, sizeof name, "%s_popart_mu", c);
    mrl_ref_expect(f, name, mu, 2, 1e-6, 1e-6);
    snprintf(name, sizeof name, "%s_popart_nu", c);
    mrl_ref_expect(f, name, nu, 2, 1e-6, 1e-6);
  }
  MRL_CHECK(a.iterations == 1, "%s: one learner step counted", c);
  mrl_impala_free(&a);
  mrl_vecenv_free(&env);
}

/* ---- 4. the agent ---- */

static mrl_impala_config small_config(int lstm) {
  mrl_impala_config c = mrl_impala_config_default();
  c.unroll_length = 8;
  c.net.encoder_sizes[0] = c.net.encoder_sizes[1] = 16;
  if (lstm) c.net.core = mrl_core_config_lstm(8);
  c.seed = 7;
  return c;
}

/* Every tensor's values (which = 0) or RMSProp mean square (which = 2)
 * bitwise equal (the store's alignment padding between tensors aside). */
static int same_params_buf(const mrl_impala *a, const mrl_impala *b, int which) {
  const mrl_params *p = &a->net.params, *q = &b->net.params;
  int k;
  if (p->count != q->count) return 0;
  for (k = 0; k < p->count; k++) {
    const float *x = which == 2 ? p->moment2 : p->values, *y = which == 2 ? q->moment2 : q->values;
    size_t off = p->items[k].offset, n = p->items[k].tensor.size;
    if (off != q->items[k].offset || memcmp(x + off, y + off, sizeof(float) * n) != 0) return 0;
  }
  return 1;
}

static int same_params(const mrl_impala *a, const mrl_impala *b) {
  return same_params_buf(a, b, 0);
}

static void test_act_no_allocation(void) {
  mrl_vecenv env;
  mrl_impala a;
  mrl_impala_config cfg = small_config(1);
  float obs[8 * 4], starts[8], state[8 * 64], actions[8];
  long before;
  int i, n;
  if (mrl_vecenv_init(&env, "CartPole-v1", 4, 3) != MRL_OK ||
      mrl_impala_init(&a, &cfg, &env) != MRL_OK) {
    MRL_CHECK(0, "act: setup");
    return;
  }
  MRL_CHECK(mrl_impala_train(&a, &env, 2 * 4 * 8, NULL, NULL) == MRL_OK, "act: train");
  MRL_CHECK(a.state_dim <= 64, "act: state fits");
  memset(obs, 0, sizeof obs);
  memset(state, 0, sizeof state);
  for (n = 1; n <= 8; n += 7) {
    for (i = 0; i < n; i++) starts[i] = 1.0f;
    mrl_impala_act(&a, obs, n, starts, state, 0, NULL, actions); /* warm the arena */
    for (i = 0; i < n; i++) starts[i] = 0.0f;
    before = test_alloc_calls;
    for (i = 0; i < 500; i++) mrl_impala_act(&a, obs, n, starts, state, i & 1, NULL, actions);
    MRL_CHECK(test_alloc_calls == before, "act: 500 calls with n=%d made %ld allocations", n,
              test_alloc_calls - before);
  }
  MRL_CHECK(mrl_impala_act(&a, obs, 0, NULL, state, 0, NULL, actions) == MRL_ERR_INVALID_ARGUMENT &&
                mrl_impala_act(&a, obs, 1, NULL, NULL, 0, NULL, actions) ==
                    MRL_ERR_INVALID_ARGUMENT,
            "act: bad arguments refused");
  mrl_impala_free(&a);
  mrl_vecenv_free(&env);
}

/* Trains `first` steps, saves, trains `second` more; a fresh agent loaded
 * from the file and trained `second` steps must end bitwise equal. */
static void test_save_load(const char *id, mrl_impala_config cfg) {
  char path[256];
  mrl_vecenv e1, e2;
  mrl_impala a, b;
  long long chunk;
  snprintf(path, sizeof path, "build/test_impala_%d.safetensors", (int)test_getpid());
  if (mrl_vecenv_init(&e1, id, 4, 5) != MRL_OK || mrl_vecenv_init(&e2, id, 4, 5) != MRL_OK ||
      mrl_impala_init(&a, &cfg, &e1) != MRL_OK || mrl_impala_init(&b, &cfg, &e2) != MRL_OK) {
    MRL_CHECK(0, "save/load: setup");
    return;
  }
  chunk = 3LL * 4 * cfg.unroll_length;
  MRL_CHECK(mrl_impala_train(&a, &e1, chunk, NULL, NULL) == MRL_OK, "save/load: train");
  MRL_CHECK(mrl_impala_save(&a, path, &e1) == MRL_OK, "save/load: save");
  MRL_CHECK(mrl_impala_train(&a, &e1, 2 * chunk, NULL, NULL) == MRL_OK, "save/load: train on");
  MRL_CHECK(mrl_impala_load(&b, path, &e2) == MRL_OK, "save/load: load (%s)", b.error);
  MRL_CHECK(mrl_impala_train(&b, &e2, 2 * chunk, NULL, NULL) == MRL_OK, "save/load: resumed");
  MRL_CHECK(same_params(&a, &b), "save/load %s: resumed parameters bitwise equal", id);
  MRL_CHECK(same_params_buf(&a, &b, 2), "save/load: RMSProp statistics bitwise equal");
  MRL_CHECK(a.iterations == b.iterations && a.env_steps == b.env_steps &&
                a.stats.total_episodes == b.stats.total_episodes &&
                mrl_episode_stats_mean_return(&a.stats) == mrl_episode_stats_mean_return(&b.stats),
            "save/load: counters and statistics");
  if (cfg.popart)
    MRL_CHECK(a.popart.mu[0] == b.popart.mu[0] && a.popart.nu[1] == b.popart.nu[1],
              "save/load: PopArt statistics");
  { /* another config is refused by name */
    mrl_impala c;
    mrl_impala_config other = cfg;
    other.entropy_cost = 0.5f;
    if (mrl_impala_init(&c, &other, &e2) == MRL_OK) {
      MRL_CHECK(mrl_impala_load(&c, path, NULL) != MRL_OK && strstr(c.error, "entropy_cost"),
                "save/load: another config refused (%s)", c.error);
      mrl_impala_free(&c);
    }
  }
  remove(path);
  mrl_impala_free(&a);
  mrl_impala_free(&b);
  mrl_vecenv_free(&e1);
  mrl_vecenv_free(&e2);
}

static void test_determinism(int actors) {
  mrl_vecenv e1, e2;
  mrl_impala a, b;
  mrl_impala_config cfg = small_config(1);
  cfg.num_actors = actors;
  cfg.total_steps = 20 * 4 * 8; /* one schedule over both calls */
  if (mrl_vecenv_init(&e1, "StatelessCartPole-v1", 4, 9) != MRL_OK ||
      mrl_vecenv_init(&e2, "StatelessCartPole-v1", 4, 9) != MRL_OK ||
      mrl_impala_init(&a, &cfg, &e1) != MRL_OK || mrl_impala_init(&b, &cfg, &e2) != MRL_OK) {
    MRL_CHECK(0, "determinism: setup");
    return;
  }
  MRL_CHECK(mrl_impala_train(&a, &e1, 20 * 4 * 8, NULL, NULL) == MRL_OK &&
                mrl_impala_train(&b, &e2, 10 * 4 * 8, NULL, NULL) == MRL_OK &&
                mrl_impala_train(&b, &e2, 10 * 4 * 8, NULL, NULL) == MRL_OK,
            "determinism: train (%s)", a.error);
  MRL_CHECK(a.iterations == 20 && b.iterations == 20 && a.env_steps == 20 * 4 * 8,
            "determinism: 20 learner steps of 32 environment steps");
#ifndef MRL_THREADS
  MRL_CHECK(same_params(&a, &b), "determinism (%d actors): one call = two calls, bitwise", actors);
#else
  if (actors == 1) MRL_CHECK(same_params(&a, &b), "determinism (1 actor): bitwise");
#endif
  MRL_CHECK(a.stats.total_episodes > 0, "determinism: episodes recorded");
  mrl_impala_free(&a);
  mrl_impala_free(&b);
  mrl_vecenv_free(&e1);
  mrl_vecenv_free(&e2);
}

static void test_init_errors(void) {
  mrl_vecenv env;
  mrl_impala a;
  mrl_impala_config c;
  if (mrl_vecenv_init(&env, "CartPole-v1", 4, 1) != MRL_OK) return;
#define REJECT(field_expr, word)                                                                   \
  do {                                                                                             \
    c = small_config(0);                                                                           \
    field_expr;                                                                                    \
    MRL_CHECK(mrl_impala_init(&a, &c, &env) == MRL_ERR_INVALID_ARGUMENT && strstr(a.error, word),  \
              "init refuses %s (%s)", word, a.error);                                              \
    mrl_impala_free(&a);                                                                           \
  } while (0)
  REJECT(c.num_actors = 3, "num_actors");
  REJECT(c.num_actors = 2; c.batch_size = 3, "batch_size");
  REJECT(c.unroll_length = 0, "unroll_length");
  REJECT(c.rho_bar = 0.0f, "rho_bar");
  REJECT(c.rms_eps = 0.0f, "rms_eps");
  REJECT(c.num_tasks = 5, "num_tasks");
  REJECT(c.popart = 1; c.popart_beta = 2.0f, "popart_beta");
  REJECT(c.gamma = NAN, "gamma");
#undef REJECT
  c = small_config(0);
  c.num_tasks = 2;
  MRL_CHECK(mrl_impala_init(&a, &c, &env) == MRL_OK && a.env_task[0] == 0 && a.env_task[1] == 0 &&
                a.env_task[2] == 1 && a.env_task[3] == 1,
            "init: tasks in contiguous blocks of environments");
  mrl_impala_free(&a);
  mrl_vecenv_free(&env);
}

/* PPO with cfg.popart: values on the return scale, outputs preserved by a
 * statistics update, save/load resumes bitwise (PopArt statistics too). */
static void test_ppo_popart(void) {
  char path[256];
  mrl_vecenv e1, e2;
  mrl_ppo a, b;
  mrl_ppo_config cfg = mrl_ppo_config_default();
  float obs[4 * 4], v1[4], v2[4], targets[3] = {3e4f, 5e4f, 4e4f};
  int i, ok = 1;
  cfg.num_steps = 64;
  cfg.popart = 1;
  cfg.popart_beta = 0.01f;
  snprintf(path, sizeof path, "build/test_impala_ppo_%d.safetensors", (int)test_getpid());
  if (mrl_vecenv_init(&e1, "CartPole-v1|reward_scale:1000", 4, 2) != MRL_OK ||
      mrl_vecenv_init(&e2, "CartPole-v1|reward_scale:1000", 4, 2) != MRL_OK ||
      mrl_ppo_init(&a, &cfg, &e1) != MRL_OK || mrl_ppo_init(&b, &cfg, &e2) != MRL_OK) {
    MRL_CHECK(0, "ppo popart: setup");
    return;
  }
  MRL_CHECK(mrl_ppo_train(&a, &e1, 30 * 4 * 64, NULL, NULL) == MRL_OK, "ppo popart: train (%s)",
            a.error);
  MRL_CHECK(mrl_popart_sigma(&a.popart, 0) > 100.0f && mrl_popart_mu(&a.popart, 0) > 100.0f,
            "ppo popart: statistics on the 1000x scale (mu %g, sigma %g)",
            mrl_popart_mu(&a.popart, 0), mrl_popart_sigma(&a.popart, 0));
  for (i = 0; i < 16; i++) obs[i] = 0.05f * (float)(i % 5) - 0.1f;
  mrl_ppo_value(&a, obs, 4, NULL, NULL, v1);
  mrl_popart_update(&a.popart, &a.params, &a.value, targets, NULL, 3);
  mrl_ppo_value(&a, obs, 4, NULL, NULL, v2);
  for (i = 0; i < 4; i++) ok &= fabs(v2[i] - v1[i]) <= 1e-6 * (fabs(v1[i]) + 1e3);
  MRL_CHECK(ok && v1[0] > 100.0f, "ppo popart: values (%g) preserved by an update (%g)", v1[0],
            v2[0]);
  MRL_CHECK(mrl_ppo_save(&a, path, &e1) == MRL_OK, "ppo popart: save");
  MRL_CHECK(mrl_ppo_train(&a, &e1, 4 * 4 * 64, NULL, NULL) == MRL_OK, "ppo popart: train on");
  MRL_CHECK(mrl_ppo_load(&b, path, &e2) == MRL_OK, "ppo popart: load (%s)", b.error);
  MRL_CHECK(mrl_ppo_train(&b, &e2, 4 * 4 * 64, NULL, NULL) == MRL_OK, "ppo popart: resumed");
  MRL_CHECK(memcmp(a.params.values, b.params.values, sizeof(float) * a.params.total) == 0 &&
                a.popart.mu[0] == b.popart.mu[0] && a.popart.nu[0] == b.popart.nu[0],
            "ppo popart: save/load resumes bitwise");
  remove(path);
  mrl_ppo_free(&a);
  mrl_ppo_free(&b);
  mrl_vecenv_free(&e1);
  mrl_vecenv_free(&e2);
}

/* The reward_scale wrapper the PopArt test uses (memrl_envs.h). */
static void test_reward_scale(void) {
  mrl_env *plain = mrl_env_make("CartPole-v1"),
          *scaled = mrl_env_make("CartPole-v1|reward_scale:-1000");
  float o1[4], o2[4], act = 1.0f, r1 = 0.0f, r2 = 0.0f;
  int t1, u1, t2, u2;
  MRL_CHECK(plain && scaled && strcmp(mrl_env_id(scaled), "CartPole-v1|reward_scale:-1000") == 0,
            "reward_scale: made from its id");
  MRL_CHECK(mrl_env_make("CartPole-v1|reward_scale:x") == NULL &&
                mrl_env_make("CartPole-v1|reward_scale") == NULL &&
                mrl_env_wrap_reward_scale(NULL, 2.0f) == NULL,
            "reward_scale: malformed refused");
  if (plain && scaled) {
    mrl_env_reset(plain, 5, o1);
    mrl_env_reset(scaled, 5, o2);
    mrl_env_step(plain, &act, o1, &r1, &t1, &u1);
    mrl_env_step(scaled, &act, o2, &r2, &t2, &u2);
    MRL_CHECK(r2 == -1000.0f * r1 && r1 == 1.0f && memcmp(o1, o2, sizeof o1) == 0,
              "reward_scale: the same step, the reward scaled (%g, %g)", r1, r2);
  }
  mrl_env_free(plain);
  mrl_env_free(scaled);
}

#ifdef MRL_THREADS
static void queue_producer(void *arg) {
  int i;
  for (i = 0; i < 1000; i++) mrl_queue_push((mrl_queue *)arg, i); /* waits while full */
}
typedef struct queue_waiter {
  mrl_queue q;
  int result;
} queue_waiter;
static void queue_blocked_pop(void *arg) {
  queue_waiter *w = (queue_waiter *)arg;
  int v;
  /* waits on the empty queue until it is closed, then fails */
  w->result = mrl_queue_pop(&w->q, &v) == MRL_OK ? 1 : 2;
}
#endif

/* Every allocation of init failing in turn: MRL_ERR_OUT_OF_MEMORY, nothing
 * leaked (the sanitizer build), the agent safe to free. */
static void test_init_out_of_memory(void) {
  mrl_vecenv env;
  mrl_impala a;
  mrl_impala_config cfg = small_config(1);
  long calls, k;
  int bad = 0;
  cfg.popart = 1;
  cfg.num_actors = 2;
  if (mrl_vecenv_init(&env, "CartPole-v1", 4, 1) != MRL_OK) return;
  calls = test_alloc_calls;
  MRL_CHECK(mrl_impala_init(&a, &cfg, &env) == MRL_OK, "oom: init");
  calls = test_alloc_calls - calls;
  mrl_impala_free(&a);
  for (k = 1; k <= calls; k++) {
    mrl_result r;
    test_alloc_fail_at = test_alloc_calls + k;
    r = mrl_impala_init(&a, &cfg, &env);
    test_alloc_fail_at = 0;
    bad += r != MRL_ERR_OUT_OF_MEMORY;
    mrl_impala_free(&a);
  }
  MRL_CHECK(bad == 0 && calls > 10,
            "oom: each of %ld allocations failing gives out of memory (%d not)", calls, bad);
  mrl_vecenv_free(&env);
}

/* A non-finite loss is refused: MRL_ERR_NON_FINITE, parameters unchanged. */
static void test_non_finite(void) {
  mrl_vecenv env;
  mrl_impala a;
  mrl_impala_config cfg = small_config(1);
  mrl_impala_trajectory *tr;
  float *before;
  if (mrl_vecenv_init(&env, "CartPole-v1", 4, 1) != MRL_OK ||
      mrl_impala_init(&a, &cfg, &env) != MRL_OK)
    return;
  MRL_CHECK(mrl_impala_train(&a, &env, 4 * 8, NULL, NULL) == MRL_OK, "non-finite: train");
  before = (float *)malloc(sizeof(float) * a.net.params.total);
  memcpy(before, a.net.params.values, sizeof(float) * a.net.params.total);
  tr = &a.slots[0]; /* the last unroll, with a poisoned reward */
  tr->rewards[3] = NAN;
  MRL_CHECK(mrl_impala_update(&a, &tr, 1, 1e-3f, NULL) == MRL_ERR_NON_FINITE &&
                strstr(a.error, "non-finite") &&
                memcmp(before, a.net.params.values, sizeof(float) * a.net.params.total) == 0 &&
                a.iterations == 1,
            "non-finite: refused, nothing changed (%s)", a.error);
  free(before);
  mrl_impala_free(&a);
  mrl_vecenv_free(&env);
}

/* Box actions: a Gaussian policy head trains and acts. */
static void test_box_actions(void) {
  mrl_vecenv env;
  mrl_impala a;
  mrl_impala_config cfg = small_config(1);
  float obs[3] = {0.1f, 0.2f, 0.3f}, state[64], act = 99.0f;
  if (mrl_vecenv_init(&env, "StatelessPendulum-v1", 4, 1) != MRL_OK ||
      mrl_impala_init(&a, &cfg, &env) != MRL_OK) {
    MRL_CHECK(0, "box: setup");
    return;
  }
  memset(state, 0, sizeof state);
  MRL_CHECK(mrl_impala_train(&a, &env, 10 * 4 * 8, NULL, NULL) == MRL_OK && a.raw_dim == 1 &&
                mrl_impala_act(&a, obs, 1, NULL, state, 1, NULL, &act) == MRL_OK && act >= -2.0f &&
                act <= 2.0f,
            "box: trains, acts within the bounds (%g; %s)", act, a.error);
  mrl_impala_free(&a);
  mrl_vecenv_free(&env);
}

static void test_queue(void) {
  mrl_queue q;
  int v = -1, i, ok = 1;
  MRL_CHECK(mrl_queue_init(&q, 0) == MRL_ERR_INVALID_ARGUMENT, "queue: capacity 0 refused");
  MRL_CHECK(mrl_queue_init(&q, 3) == MRL_OK, "queue: init");
  for (i = 0; i < 7; i++) { /* FIFO across the ring's wrap */
    ok &= mrl_queue_push(&q, 10 + i) == MRL_OK;
    ok &= mrl_queue_pop(&q, &v) == MRL_OK && v == 10 + i;
  }
  MRL_CHECK(ok, "queue: first in, first out");
#ifndef MRL_THREADS
  MRL_CHECK(mrl_queue_pop(&q, &v) == MRL_ERR_INVALID_ARGUMENT, "queue: empty pop fails");
  for (i = 0; i < 3; i++) mrl_queue_push(&q, i);
  MRL_CHECK(mrl_queue_push(&q, 9) == MRL_ERR_INVALID_ARGUMENT && mrl_queue_count(&q) == 3,
            "queue: full push fails");
  mrl_queue_close(&q);
  MRL_CHECK(mrl_queue_pop(&q, &v) == MRL_ERR_INVALID_ARGUMENT, "queue: closed pop fails");
  mrl_queue_reopen(&q);
  MRL_CHECK(mrl_queue_pop(&q, &v) == MRL_OK && v == 0, "queue: reopened, the items stayed");
#endif
#ifdef MRL_THREADS
  { /* a producer thread through a queue of 3: all 1000 arrive, in order */
    mrl_thread th;
    int expect = 0;
    while (mrl_queue_count(&q) > 0) mrl_queue_pop(&q, &v);
    MRL_CHECK(mrl_thread_start(&th, queue_producer, &q) == MRL_OK, "queue: producer started");
    for (i = 0; i < 1000; i++) ok &= mrl_queue_pop(&q, &v) == MRL_OK && v == expect++;
    mrl_thread_join(&th);
    MRL_CHECK(ok, "queue: 1000 items through a queue of 3, in order");
  }
  { /* close wakes a consumer waiting on an empty queue */
    queue_waiter w;
    mrl_thread th;
    mrl_queue_init(&w.q, 2);
    w.result = 0;
    MRL_CHECK(mrl_thread_start(&th, queue_blocked_pop, &w) == MRL_OK, "queue: waiter started");
    mrl_queue_close(&w.q);
    mrl_thread_join(&th);
    MRL_CHECK(w.result == 2, "queue: close wakes a waiting pop, which fails");
    mrl_queue_free(&w.q);
  }
#endif
  mrl_queue_free(&q);
}

int main(void) {
  mrl_ref_file f;
  test_vtrace();
  test_popart();
  if (mrl_ref_open(&f, "tests/ref/impala_update.txt")) {
    pinned_case(&f, "lstm", 0);
    pinned_case(&f, "popart", 1);
    mrl_ref_close(&f);
  } else {
    MRL_CHECK(0, "tests/ref/impala_update.txt missing");
  }
  test_act_no_allocation();
  test_save_load("StatelessCartPole-v1", small_config(1));
  {
    mrl_impala_config c = small_config(1);
    c.popart = 1;
    c.num_tasks = 2;
    test_save_load("CartPole-v1", c);
  }
  test_determinism(1);
  test_determinism(2);
  test_init_errors();
  test_queue();
  test_reward_scale();
  test_ppo_popart();
  test_init_out_of_memory();
  test_non_finite();
  test_box_actions();
  return mrl_test_summary("test_impala");
}
