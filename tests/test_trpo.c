/* TRPO (memrl_algos.h >>trpo):
 *   1. the pinned update against a PyTorch twin (tools/make_ref.py,
 *      make_trpo_update -> tests/ref/trpo_update.txt): an exact
 *      Fisher-vector product (torch: double backward of the mean KL) on an
 *      MLP, an LSTM and a Gaussian policy, then one whole update: the
 *      surrogate's gradient, the CG solution, the step size, the line search
 *      (one case backtracks five times), the accepted parameters and the
 *      value function's Adam steps;
 *   2. F is symmetric and positive definite on GRU, Elman, frame-stack,
 *      GTrXL, HCAM, FTW, AMRL, fast-weight and DNC policies (<u, F v> = <F u, v>, <v, F v> > 0); on
 * a GTrXL policy F v equals the central difference of the mean KL's gradient along v and a whole
 * update runs;
 *   3. a core whose ops have no forward-mode rule (a user's core through
 *      max pooling) stops the update with an error naming the op;
 *   4. acting allocates nothing once warm; 5. save/load resumes bitwise;
 *   6. init rejects bad configs and names the field. */
#define _POSIX_C_SOURCE 200809L
#define MRL_TEST_COUNT_ALLOCATIONS
#include "test.h"
#define MEMRL_IMPLEMENTATION
#include "../memrl_algos.h"
#include "ref_loader.h"

enum { T = 5, B = 4, HIDDEN = 8, LSTM = 6 };

/* Overwrites the agent's parameters with <case>_p<k>, in declaration order. */
static int load_twin_params(const mrl_ref_file *f, const char *c, mrl_params *p) {
  char name[64];
  int k;
  for (k = 0; k < p->count; k++) {
    mrl_tensor *t = &p->items[k].tensor;
    snprintf(name, sizeof name, "%s_p%d", c, k);
    if (!mrl_ref_fill(f, name, t->data, t->size)) {
      MRL_CHECK(0, "%s: parameter %d (%s) does not fit the twin's", c, k, p->items[k].name);
      return 0;
    }
  }
  snprintf(name, sizeof name, "\n%s_p%d ", c, k);
  MRL_CHECK(strstr(f->text, name) == NULL, "%s: the twin has more parameters than the %d here", c,
            p->count);
  return 1;
}

/* The twin's flat policy vectors are packed; the store keeps each tensor
 * 16-float aligned: scatter (to_store 1) or gather between the two. */
static int repack(const mrl_trpo *a, float *packed, float *store, int to_store) {
  int k, at = 0;
  for (k = 0; k < a->params.count; k++) {
    const mrl_param *it = &a->params.items[k];
    if (it->offset >= a->policy_size) break;
    if (to_store)
      memcpy(store + it->offset, packed + at, sizeof(float) * (size_t)it->tensor.size);
    else
      memcpy(packed + at, store + it->offset, sizeof(float) * (size_t)it->tensor.size);
    at += it->tensor.size;
  }
  return at;
}

static float ref_scalar(const mrl_ref_file *f, const char *c, const char *what) {
  char name[64];
  float v = NAN;
  snprintf(name, sizeof name, "%s_%s", c, what);
  MRL_CHECK(mrl_ref_fill(f, name, &v, 1), "%s missing", name);
  return v;
}

static mrl_trpo_config small_config(int lstm) {
  mrl_trpo_config cfg = mrl_trpo_config_default();
  cfg.num_steps = T;
  cfg.batch_size = T * B;
  cfg.n_critic_updates = 2;
  cfg.cg_max_steps = 10;
  cfg.net.encoder_sizes[0] = cfg.net.encoder_sizes[1] = HIDDEN;
  if (lstm) cfg.net.core = mrl_core_config_lstm(LSTM);
  return cfg;
}

static void pinned_case(const mrl_ref_file *f, const char *c, int lstm, int box) {
  mrl_vecenv env;
  mrl_trpo a;
  mrl_trpo_config cfg = small_config(lstm);
  mrl_trpo_update_stats st;
  mrl_rollout *ro;
  float init_state[B * 4 * LSTM + 1], *v, *fv, *packed;
  char name[64];
  int k, n = T * B, P, S;
  cfg.target_kl = ref_scalar(f, c, "target_kl");
  if (mrl_vecenv_init(&env, box ? "Pendulum-v1" : "CartPole-v1", B, 1) != MRL_OK) {
    MRL_CHECK(0, "%s: env", c);
    return;
  }
  if (mrl_trpo_init(&a, &cfg, &env) != MRL_OK) {
    MRL_CHECK(0, "%s: init: %s", c, a.error);
    mrl_vecenv_free(&env);
    return;
  }
  ro = &a.rollout;
  S = (int)a.policy_size;
  v = (float *)calloc((size_t)S * 3, sizeof(float));
  fv = v + S;
  packed = fv + S;
  P = repack(&a, packed, v, 0); /* the packed size */
  if (v && load_twin_params(f, c, &a.params)) {
#define FILL(field, count)                                                                         \
  do {                                                                                             \
    snprintf(name, sizeof name, "%s_%s", c, #field);                                               \
    MRL_CHECK(mrl_ref_fill(f, name, ro->field, count), "%s does not fit", name);                   \
  } while (0)
    FILL(obs, n * a.obs_dim);
    FILL(actions, n * a.raw_dim);
    FILL(log_probs, n);
    FILL(advantages, n);
    FILL(returns, n);
    FILL(episode_starts, n);
#undef FILL
    snprintf(name, sizeof name, "%s_initial_state", c);
    mrl_ref_fill(f, name, init_state, lstm ? B * a.state_dim : 1);
    memcpy(ro->initial_state, init_state, sizeof(float) * (size_t)B * a.state_dim);
    /* the Fisher-vector product, exact: against torch's double backward */
    snprintf(name, sizeof name, "%s_fvp_v", c);
    MRL_CHECK(mrl_ref_fill(f, name, packed, P), "%s: %s does not fit %d policy floats", c, name, P);
    repack(&a, packed, v, 1);
    MRL_CHECK(mrl_trpo_fisher_vector_product(&a, v, fv) == MRL_OK, "%s: fvp: %s", c, a.error);
    repack(&a, packed, fv, 0);
    snprintf(name, sizeof name, "%s_fvp_out", c);
    mrl_ref_expect(f, name, packed, P, 1e-6, 2e-4);
    /* one whole update */
    MRL_CHECK(mrl_trpo_update(&a, &st) == MRL_OK, "%s: update failed (%s)", c, a.error);
    repack(&a, packed, a.grad, 0);
    snprintf(name, sizeof name, "%s_grad", c);
    mrl_ref_expect(f, name, packed, P, 1e-7, 1e-4);
    repack(&a, packed, a.search_dir, 0);
    snprintf(name, sizeof name, "%s_cg_x", c);
    mrl_ref_expect(f, name, packed, P, 1e-5, 1e-3);
    MRL_CHECK_NEAR(st.policy_objective, ref_scalar(f, c, "objective"), 1e-6, 1e-4, "objective");
    MRL_CHECK_NEAR(st.step_size, ref_scalar(f, c, "step_size"), 1e-6, 1e-3, "step size");
    MRL_CHECK_NEAR(st.line_search_coeff, ref_scalar(f, c, "ls_coeff"), 1e-6, 1e-5,
                   "line-search coefficient");
    MRL_CHECK(st.line_search_success == (int)ref_scalar(f, c, "ls_success"),
              "%s: line search success %d", c, st.line_search_success);
    MRL_CHECK_NEAR(st.kl, ref_scalar(f, c, "ls_kl"), 1e-6, 2e-3, "accepted KL");
    MRL_CHECK_NEAR(st.new_objective, ref_scalar(f, c, "ls_objective"), 1e-6, 2e-3,
                   "accepted objective");
    MRL_CHECK_NEAR(st.value_loss, ref_scalar(f, c, "value_loss"), 1e-5, 1e-4, "value loss");
    for (k = 0; k < a.params.count; k++) {
      mrl_tensor *t = &a.params.items[k].tensor;
      snprintf(name, sizeof name, "%s_u%d", c, k);
      mrl_ref_expect(f, name, t->data, t->size, 1e-5, 1e-3);
    }
    if (strcmp(c, "big") == 0)
      MRL_CHECK(st.line_search_iters == 6, "big: the line search tried %d steps, want 6",
                st.line_search_iters);
  }
  free(v);
  mrl_trpo_free(&a);
  mrl_vecenv_free(&env);
}

/* A short rollout of a fresh agent on CartPole, for the checks below. */
static int collect_some(mrl_trpo *a, mrl_vecenv *env, mrl_core_config core) {
  mrl_trpo_config cfg = small_config(0);
  cfg.num_steps = 16;
  cfg.batch_size = 32;
  cfg.net.core = core;
  if (mrl_vecenv_init(env, "CartPole-v1", 2, 3) != MRL_OK) return 0;
  if (mrl_trpo_init(a, &cfg, env) != MRL_OK) {
    MRL_CHECK(0, "init: %s", a->error);
    mrl_vecenv_free(env);
    return 0;
  }
  return mrl_runner_start(&a->runner, env) == MRL_OK && mrl__trpo_collect(a, env) == MRL_OK;
}

static void fisher_symmetric(const char *label, mrl_core_config core) {
  mrl_vecenv env;
  mrl_trpo a;
  if (collect_some(&a, &env, core)) {
    size_t n = a.policy_size, i;
    float *u = (float *)malloc(sizeof(float) * n * 4), *v = u + n, *fu = v + n, *fv = fu + n;
    mrl_rng rng = mrl_rng_make(11);
    double ufv = 0.0, fuv = 0.0, vfv = 0.0;
    for (i = 0; i < n; i++) u[i] = mrl_rng_normal(&rng), v[i] = mrl_rng_normal(&rng);
    MRL_CHECK(mrl_trpo_fisher_vector_product(&a, u, fu) == MRL_OK &&
                  mrl_trpo_fisher_vector_product(&a, v, fv) == MRL_OK,
              "%s fvp: %s", label, a.error);
    for (i = 0; i < n; i++) {
      ufv += (double)u[i] * fv[i];
      fuv += (double)fu[i] * v[i];
      vfv += (double)v[i] * fv[i];
    }
    MRL_CHECK_NEAR(ufv, fuv, 1e-6, 1e-4, label);
    MRL_CHECK(vfv > 0.0, "%s: <v, F v> = %g must be positive", label, vfv);
    free(u);
  }
  mrl_trpo_free(&a);
  mrl_vecenv_free(&env);
}

/* A user's core through an op without a forward rule (max pooling, of width 1: the identity) */
static mrl_result pool_core_init(void **self, mrl_params *p, const char *name, int input_dim,
                                 const void *config, int *output_dim, int *state_dim) {
  (void)p, (void)name, (void)config;
  *self = NULL;
  *output_dim = input_dim;
  *state_dim = 0;
  return MRL_OK;
}
static mrl_tensor *pool_core_forward(void *self, mrl_graph *g, mrl_tensor *x, int T, int B,
                                     const float *episode_start, const float *state_in,
                                     float *state_out, int stride) {
  int s4[4] = {1, 1, 1, 1};
  (void)self, (void)T, (void)B, (void)episode_start, (void)state_in, (void)state_out, (void)stride;
  s4[0] = x->shape[0], s4[3] = x->shape[1];
  return mrl_reshape(g, mrl_max_pool2d(g, mrl_reshape(g, x, 4, s4), 1, 1, 0), 2, x->shape);
}
static void pool_core_free(void *self) {
  (void)self;
}
static const mrl_core_type pool_core_type = {"pool_core", pool_core_init, pool_core_forward,
                                             pool_core_free};

static void no_rule_core(void) {
  mrl_vecenv env;
  mrl_trpo a;
  mrl_core_config core = mrl_core_config_user(&pool_core_type, NULL); /* no forward rule */
  if (collect_some(&a, &env, core)) {
    float *before = (float *)malloc(sizeof(float) * a.params.total);
    mrl_result r;
    memcpy(before, a.params.values, sizeof(float) * a.params.total);
    r = mrl_trpo_update(&a, NULL);
    MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT && strstr(a.error, "no forward-mode rule"),
              "a core without JVP rules must fail clearly: %d %s", (int)r, a.error);
    MRL_CHECK(memcmp(before, a.params.values, sizeof(float) * a.params.total) == 0,
              "a failed update must leave the parameters as they were");
    free(before);
  }
  mrl_trpo_free(&a);
  mrl_vecenv_free(&env);
}

/* The gradient of the mean KL(old || new) over the rollout, categorical
 * policy: J^T (softmax(z) - p_old) / N, by the backward pass alone. */
static void kl_gradient(mrl_trpo *a, const float *p_old, float *out) {
  int N = a->rollout.num_steps * a->rollout.num_envs, P = a->param_dim, i, d;
  mrl_tensor *dist = mrl__trpo_policy(a, 1), *u;
  float *w = (float *)malloc(sizeof(float) * (size_t)N * P);
  for (i = 0; i < N; i++) {
    const float *z = dist->data + (size_t)i * P;
    double m = z[0], s = 0.0;
    for (d = 1; d < P; d++) m = z[d] > m ? z[d] : m;
    for (d = 0; d < P; d++) s += exp(z[d] - m);
    for (d = 0; d < P; d++)
      w[(size_t)i * P + d] = (float)((exp(z[d] - m) / s - p_old[(size_t)i * P + d]) / N);
  }
  mrl_params_zero_grad(&a->params);
  u = mrl_tensor_from(&a->graph, w, dist->ndim, dist->shape);
  MRL_CHECK(mrl_backward(&a->graph, mrl_sum(&a->graph, mrl_mul(&a->graph, dist, u))) == MRL_OK,
            "kl gradient: backward");
  memcpy(out, a->params.grads, sizeof(float) * a->policy_size);
  free(w);
}

/* A GTrXL policy (attention, layernorm, the GRU gate): F v from forward mode
 * equals the central difference of the KL's gradient along v, and one whole
 * update runs. */
static void fisher_gtrxl(void) {
  mrl_vecenv env;
  mrl_trpo a;
  mrl_core_config core = mrl_core_config_gtrxl(8, 8);
  core.gtrxl.num_heads = 2, core.gtrxl.ff_dim = 16;
  core.gtrxl.gate_bias = 0.0f; /* gates half open: the layers matter */
  if (collect_some(&a, &env, core)) {
    size_t n = a.policy_size, i;
    int N = a.rollout.num_steps * a.rollout.num_envs, P = a.param_dim, r, d, k;
    float *v = (float *)malloc(sizeof(float) * n * 4), *fv = v + n, *gp = fv + n, *gm = gp + n;
    float *p_old = (float *)malloc(sizeof(float) * (size_t)N * P),
          eps = 1e-4f; /* small: the feed-forward ReLUs' kinks */
    mrl_rng rng = mrl_rng_make(12);
    double worst = 0.0, scale = 0.0;
    mrl_trpo_update_stats st;
    mrl_tensor *dist;
    /* the policy head starts at gain 0.01, which would leave the core's share of F v in the
     * finite differences' noise: move every policy parameter off its initial value */
    for (i = 0; i < n; i++) a.params.values[i] += 0.3f * mrl_rng_uniform_range(&rng, -1, 1);
    dist = mrl__trpo_policy(&a, 0);
    for (r = 0; r < N; r++) { /* the old policy's probabilities */
      const float *z = dist->data + (size_t)r * P;
      double m = z[0], s = 0.0;
      for (d = 1; d < P; d++) m = z[d] > m ? z[d] : m;
      for (d = 0; d < P; d++) s += exp(z[d] - m);
      for (d = 0; d < P; d++) p_old[(size_t)r * P + d] = (float)(exp(z[d] - m) / s);
    }
    for (i = 0; i < n; i++) v[i] = mrl_rng_normal(&rng);
    MRL_CHECK(mrl_trpo_fisher_vector_product(&a, v, fv) == MRL_OK, "gtrxl fvp: %s", a.error);
    for (i = 0; i < n; i++) a.params.values[i] += eps * v[i];
    kl_gradient(&a, p_old, gp);
    for (i = 0; i < n; i++) a.params.values[i] -= 2.0f * eps * v[i];
    kl_gradient(&a, p_old, gm);
    for (i = 0; i < n; i++) a.params.values[i] += eps * v[i];
    /* the core's parameters only: the encoder and head dominate F v elsewhere */
    for (k = 0; k < a.params.count; k++) {
      const mrl_param *it = &a.params.items[k];
      if (it->offset >= n || !strstr(it->name, ".core.")) continue;
      for (i = it->offset; i < it->offset + (size_t)it->tensor.size; i++)
        scale = fabs(fv[i]) > scale ? fabs(fv[i]) : scale;
    }
    for (k = 0; k < a.params.count; k++) {
      const mrl_param *it = &a.params.items[k];
      if (it->offset >= n || !strstr(it->name, ".core.")) continue;
      for (i = it->offset; i < it->offset + (size_t)it->tensor.size; i++) {
        double fd = ((double)gp[i] - gm[i]) / (2.0 * eps),
               e = fabs(fv[i] - fd) / (2e-3 * scale + 1e-2 * fabs(fd));
        worst = e > worst ? e : worst;
      }
    }
    MRL_CHECK(scale > 0.0 && worst <= 1.0,
              "GTrXL policy: F v against finite differences of the KL gradient: worst %.3g "
              "(largest |F v| %.3g)",
              worst, scale);
    MRL_CHECK(mrl_trpo_update(&a, &st) == MRL_OK, "GTrXL policy: update: %s", a.error);
    free(v);
    free(p_old);
  }
  mrl_trpo_free(&a);
  mrl_vecenv_free(&env);
}

/* Advantages all zero: no gradient, so no step (and nothing non-finite). */
static void zero_gradient(void) {
  mrl_vecenv env;
  mrl_trpo a;
  if (collect_some(&a, &env, mrl_core_config_default())) {
    float *before = (float *)malloc(sizeof(float) * a.policy_size);
    mrl_trpo_update_stats st;
    memcpy(before, a.params.values, sizeof(float) * a.policy_size);
    memset(a.rollout.advantages, 0, sizeof(float) * 32);
    MRL_CHECK(mrl_trpo_update(&a, &st) == MRL_OK, "zero gradient: %s", a.error);
    MRL_CHECK(memcmp(before, a.params.values, sizeof(float) * a.policy_size) == 0,
              "zero gradient: the policy must not move");
    MRL_CHECK(!st.line_search_success && st.kl == 0.0f, "zero gradient: no step accepted");
    free(before);
  }
  mrl_trpo_free(&a);
  mrl_vecenv_free(&env);
}

static void act_no_allocation(int lstm) {
  mrl_vecenv env;
  mrl_trpo a;
  mrl_trpo_config cfg = small_config(lstm);
  float obs[8 * 4], state[8 * 4 * LSTM + 1], starts[8], out[8];
  mrl_rng rng = mrl_rng_make(5);
  long before;
  int i, ok = 1;
  memset(state, 0, sizeof state);
  for (i = 0; i < 8 * 4; i++) obs[i] = mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
  for (i = 0; i < 8; i++) starts[i] = (float)(i % 3 == 0);
  if (mrl_vecenv_init(&env, "CartPole-v1", 2, 1) != MRL_OK) return;
  if (mrl_trpo_init(&a, &cfg, &env) == MRL_OK) {
    ok &= mrl_trpo_act(&a, obs, 8, starts, state, 0, NULL, out) == MRL_OK; /* warm-up */
    before = test_alloc_calls;
    for (i = 0; i < 50; i++)
      ok &= mrl_trpo_act(&a, obs, 8, i % 5 ? NULL : starts, state, i & 1, (i & 2) ? &rng : NULL,
                         out) == MRL_OK;
    MRL_CHECK(ok, "act failed");
    MRL_CHECK(test_alloc_calls == before, "%s: 50 act calls made %ld heap allocations",
              lstm ? "lstm" : "mlp", test_alloc_calls - before);
    for (i = 0; i < 8; i++) MRL_CHECK(out[i] == 0.0f || out[i] == 1.0f, "action %g", out[i]);
  }
  mrl_trpo_free(&a);
  mrl_vecenv_free(&env);
}

/* Training k + m iterations equals training k, saving, loading into a fresh
 * agent and training m: parameters, moments and the next rollout, bitwise. */
static void save_load_resume(int lstm) {
  const char *path = "build/test_trpo_resume.safetensors";
  mrl_trpo_config cfg = small_config(lstm);
  mrl_vecenv e1, e2;
  mrl_trpo a, b;
  size_t i;
  int same = 1;
  cfg.num_steps = 32;
  cfg.batch_size = 32;
  cfg.seed = 9;
  if (mrl_vecenv_init(&e1, "CartPole-v1", 2, 4) != MRL_OK) return;
  if (mrl_vecenv_init(&e2, "CartPole-v1", 2, 77) != MRL_OK) return;
  MRL_CHECK(mrl_trpo_init(&a, &cfg, &e1) == MRL_OK, "init a");
  MRL_CHECK(mrl_trpo_init(&b, &cfg, &e2) == MRL_OK, "init b");
  MRL_CHECK(mrl_trpo_train(&a, &e1, 2 * 64, NULL, NULL) == MRL_OK, "train a: %s", a.error);
  MRL_CHECK(mrl_trpo_save(&a, path, &e1) == MRL_OK, "save");
  MRL_CHECK(mrl_trpo_train(&a, &e1, 2 * 64, NULL, NULL) == MRL_OK, "train a more");
  MRL_CHECK(mrl_trpo_load(&b, path, &e2) == MRL_OK, "load: %s", b.error);
  MRL_CHECK(mrl_trpo_train(&b, &e2, 2 * 64, NULL, NULL) == MRL_OK, "train b: %s", b.error);
  for (i = 0; i < a.params.total; i++)
    same &= memcmp(&a.params.values[i], &b.params.values[i], sizeof(float)) == 0 &&
            memcmp(&a.params.moment1[i], &b.params.moment1[i], sizeof(float)) == 0;
  MRL_CHECK(same, "%s: resumed training differs from the uninterrupted run", lstm ? "lstm" : "mlp");
  MRL_CHECK(a.iterations == 4 && b.iterations == 4, "iterations %lld %lld", a.iterations,
            b.iterations);
  MRL_CHECK(memcmp(a.rollout.obs, b.rollout.obs, sizeof(float) * 64 * 4) == 0,
            "the last rollouts differ");
  mrl_trpo_free(&a);
  mrl_trpo_free(&b);
  mrl_vecenv_free(&e1);
  mrl_vecenv_free(&e2);
  remove(path);
}

static void init_errors(void) {
  mrl_vecenv env;
  mrl_trpo a;
  mrl_trpo_config c;
  if (mrl_vecenv_init(&env, "CartPole-v1", 2, 1) != MRL_OK) return;
#define REJECT(stmt, field)                                                                        \
  do {                                                                                             \
    c = small_config(0);                                                                           \
    c.batch_size = 10;                                                                             \
    stmt;                                                                                          \
    MRL_CHECK(mrl_trpo_init(&a, &c, &env) == MRL_ERR_INVALID_ARGUMENT && strstr(a.error, field),   \
              "%s: got \"%s\"", field, a.error);                                                   \
    mrl_trpo_free(&a);                                                                             \
  } while (0)
  REJECT(c.num_steps = 0, "num_steps");
  REJECT(c.batch_size = 11, "batch_size"); /* > 10 steps of the rollout */
  REJECT(c.batch_size = 0, "batch_size");
  REJECT(c.target_kl = 0.0f, "target_kl");
  REJECT(c.cg_max_steps = 0, "cg_max_steps");
  REJECT(c.cg_damping = -1.0f, "cg_damping");
  REJECT(c.line_search_shrinking_factor = 1.0f, "line_search_shrinking_factor");
  REJECT(c.line_search_max_iter = 0, "line_search_max_iter");
  REJECT(c.gamma = NAN, "gamma");
  REJECT(c.gae_lambda = 1.5f, "gae_lambda");
  REJECT(c.adam_eps = 0.0f, "adam_eps");
  REJECT((c.net.core = mrl_core_config_lstm(4), c.batch_size = 2), "batch_size"); /* 5 batches */
#undef REJECT
  c = small_config(0);
  c.num_steps = 5;
  c.batch_size = 10;
  MRL_CHECK(mrl_trpo_init(&a, &c, &env) == MRL_OK, "a good config: %s", a.error);
  mrl_trpo_free(&a);
  mrl_vecenv_free(&env);
}

int main(void) {
  mrl_ref_file f;
  if (mrl_ref_open(&f, "tests/ref/trpo_update.txt")) {
    pinned_case(&f, "ff", 0, 0);
    pinned_case(&f, "lstm", 1, 0);
    pinned_case(&f, "cont", 0, 1);
    pinned_case(&f, "big", 0, 1);
    mrl_ref_close(&f);
  } else {
    MRL_CHECK(0, "tests/ref/trpo_update.txt missing");
  }
  fisher_symmetric("GRU policy: <u, F v> = <F u, v>", mrl_core_config_gru(5));
  fisher_symmetric("Elman policy: <u, F v> = <F u, v>", mrl_core_config_elman(5));
  fisher_symmetric("frame-stack policy: <u, F v> = <F u, v>", mrl_core_config_frame_stack(3));
  fisher_symmetric("GTrXL policy: <u, F v> = <F u, v>", mrl_core_config_gtrxl(8, 4));
  fisher_symmetric("HCAM policy: <u, F v> = <F u, v>", mrl_core_config_hcam(8, 2, 2));
  fisher_symmetric("FTW policy: <u, F v> = <F u, v>", mrl_core_config_ftw(6, 6, 2));
  fisher_symmetric("fast-weight policy: <u, F v> = <F u, v>", mrl_core_config_fwp(3, 2));
  fisher_symmetric("DNC policy: <u, F v> = <F u, v>", mrl_core_config_dnc(5, 3, 1));
  fisher_symmetric("AMRL (straight-through) policy: <u, F v> = <F u, v>",
                   mrl_core_config_amrl(6, MRL_AMRL_AVG));
  fisher_gtrxl();
  no_rule_core();
  zero_gradient();
  act_no_allocation(0);
  act_no_allocation(1);
  save_load_resume(0);
  save_load_resume(1);
  init_errors();
  return mrl_test_summary("test_trpo");
}
