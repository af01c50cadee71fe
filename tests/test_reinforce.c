/* REINFORCE (memrl_algos.h >>reinforce) and its return estimators
 * (memrl_mem.h >>returns):
 *   - mrl_returns_kstep and mrl_returns_lambda against direct transcriptions
 *     of their equations (the K-step sum; the lambda-return as the weighted
 *     average of n-step returns, the forward view), with terminations,
 *     truncations and the rollout's end inside the window;
 *   - the pinned update (tools/make_ref.py, make_reinforce_update ->
 *     tests/ref/reinforce_update.txt): LSTM policy and baseline, K-step
 *     advantages, truncated BPTT; advantages, losses, clipped gradients and
 *     the parameters after Adam;
 *   - the curriculum's rule (lengths 5, 10, 20, 25 of NoisySequence-25 when
 *     every level passes; none when none does);
 *   - acting allocates nothing once warm; save/load resumes bitwise (with
 *     the curriculum moving the environments between levels); init errors;
 *   - a non-finite loss leaves the agent unchanged; box actions (a Gaussian
 *     policy) train and act.
 * Run from the repository root:  make build/test_reinforce && ./build/test_reinforce */
#define MEMRL_IMPLEMENTATION
#define MRL_TEST_COUNT_ALLOCATIONS
#include "test.h"

#include "../memrl_algos.h"
#include "ref_loader.h"

/* ---- return estimators against their equations ---- */

/* The step at which the episode running at (t, b) ends inside the rollout
 * (terminated or truncated), or T - 1; *boot the value that follows it. */
static int window_end(int T, int B, int t, int b, const float *term, const float *trunc,
                      const float *final_values, const float *last_values, double *boot) {
  int j;
  for (j = t; j < T; j++) {
    size_t i = (size_t)j * B + b;
    if (term[i] != 0.0f) return *boot = 0.0, j;
    if (trunc[i] != 0.0f) return *boot = final_values[i], j;
  }
  *boot = last_values[b];
  return T - 1;
}

/* G^(n)_t = sum_{l<n} gamma^l r_{t+l} + gamma^n (V_{t+n}, or the bootstrap at the end). */
static double n_step(int T, int B, int t, int b, int n, const float *r, const float *v,
                     const float *term, const float *trunc, const float *fv, const float *lv,
                     double gamma) {
  double boot, g = 0.0;
  int e = window_end(T, B, t, b, term, trunc, fv, lv, &boot), l;
  if (n > e - t + 1) n = e - t + 1;
  for (l = 0; l < n; l++) g += pow(gamma, l) * r[(size_t)(t + l) * B + b];
  return g + pow(gamma, n) * (t + n - 1 == e ? boot : v[(size_t)(t + n) * B + b]);
}

static void test_returns(void) {
  enum { T = 9, B = 4 };
  float r[T * B], v[T * B], term[T * B], trunc[T * B], fv[T * B], lv[B];
  float adv[T * B], ret[T * B], adv2[T * B];
  const int Ks[4] = {1, 2, 4, 20};
  const float lambdas[4] = {0.0f, 0.5f, 0.95f, 1.0f};
  mrl_rng rng = mrl_rng_make(5);
  int i, k, t, b, bad;
  double gamma = 0.9;
  for (i = 0; i < T * B; i++) {
    r[i] = mrl_rng_normal(&rng);
    v[i] = mrl_rng_normal(&rng);
    term[i] = trunc[i] = fv[i] = 0.0f;
  }
  for (b = 0; b < B; b++) lv[b] = mrl_rng_normal(&rng);
  term[2 * B + 0] = term[8 * B + 0] = 1.0f; /* a termination at the rollout's last step */
  trunc[4 * B + 1] = 1.0f;
  fv[4 * B + 1] = 0.7f;
  term[3 * B + 2] = 1.0f;
  trunc[6 * B + 2] = 1.0f;
  fv[6 * B + 2] = -1.3f; /* env 3: no episode end */
  for (k = 0; k < 4; k++) {
    mrl_returns_kstep(T, B, r, v, term, trunc, fv, lv, (float)gamma, Ks[k], adv, ret);
    for (bad = 0, t = 0; t < T; t++)
      for (b = 0; b < B; b++) {
        size_t j = (size_t)t * B + b;
        double g = n_step(T, B, t, b, Ks[k], r, v, term, trunc, fv, lv, gamma);
        bad += fabs(adv[j] - (g - v[j])) > 1e-5 || fabs(ret[j] - g) > 1e-5;
      }
    MRL_CHECK(bad == 0, "K-step advantages (K = %d): %d entries differ from the sum", Ks[k], bad);
  }
  for (k = 0; k < 4; k++) {
    double lam = lambdas[k];
    mrl_returns_lambda(T, B, r, v, term, trunc, fv, lv, (float)gamma, lambdas[k], adv, ret);
    for (bad = 0, t = 0; t < T; t++)
      for (b = 0; b < B; b++) {
        /* G^lambda = (1 - lam) sum_{n<N} lam^{n-1} G^(n) + lam^{N-1} G^(N), N steps to the end */
        size_t j = (size_t)t * B + b;
        double boot, g = 0.0;
        int N = window_end(T, B, t, b, term, trunc, fv, lv, &boot) - t + 1, n;
        for (n = 1; n < N; n++)
          g += (1.0 - lam) * pow(lam, n - 1) *
               n_step(T, B, t, b, n, r, v, term, trunc, fv, lv, gamma);
        g += pow(lam, N - 1) * n_step(T, B, t, b, N, r, v, term, trunc, fv, lv, gamma);
        bad += fabs(adv[j] - (g - v[j])) > 1e-5 || fabs(ret[j] - g) > 1e-5;
      }
    MRL_CHECK(bad == 0, "lambda-returns (lambda = %g): %d entries differ from the forward view",
              lam, bad);
  }
  /* the two meet: lambda 0 is K = 1, lambda 1 is Monte-Carlo (K >= T) */
  mrl_returns_lambda(T, B, r, v, term, trunc, fv, lv, (float)gamma, 0.0f, adv, NULL);
  mrl_returns_kstep(T, B, r, v, term, trunc, fv, lv, (float)gamma, 1, adv2, NULL);
  for (bad = 0, i = 0; i < T * B; i++) bad += fabs(adv[i] - adv2[i]) > 1e-5;
  MRL_CHECK(bad == 0, "lambda 0 differs from K = 1 in %d entries", bad);
  mrl_returns_lambda(T, B, r, v, term, trunc, fv, lv, (float)gamma, 1.0f, adv, NULL);
  mrl_returns_kstep(T, B, r, v, term, trunc, fv, lv, (float)gamma, T, adv2, NULL);
  for (bad = 0, i = 0; i < T * B; i++) bad += fabs(adv[i] - adv2[i]) > 1e-5;
  MRL_CHECK(bad == 0, "lambda 1 differs from K = T in %d entries", bad);
}

/* ---- the pinned update ---- */

enum { PT = 6, PB = 3, PO = 2, PE = 5, PH = 4, PA = 3 };

static mrl_result fixed_reset(void *self, uint64_t seed, float *obs) {
  (void)self;
  (void)seed;
  memset(obs, 0, sizeof(float) * PO);
  return MRL_OK;
}
static mrl_result fixed_step(void *self, const float *action, float *obs, float *reward,
                             int *terminated, int *truncated) {
  (void)self;
  (void)action;
  memset(obs, 0, sizeof(float) * PO);
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
  vt.obs_dim = PO;
  vt.num_actions = PA;
  vt.action_dim = 1;
  vt.reset = fixed_reset;
  vt.step = fixed_step;
  for (i = 0; i < PB; i++) envs[i] = mrl_env_create(&vt, NULL);
  return mrl_vecenv_init_envs(v, envs, PB, 1) == MRL_OK;
}

static void test_pinned_update(void) {
  mrl_ref_file f;
  mrl_vecenv env;
  mrl_reinforce a;
  mrl_reinforce_update_stats st;
  mrl_reinforce_config cfg = mrl_reinforce_config_default();
  mrl_rollout *ro;
  float last_values[PB], want;
  char name[32];
  int k, n = PT * PB;
  if (!mrl_ref_open(&f, "tests/ref/reinforce_update.txt")) return;
  if (!make_fixed_env(&env)) {
    MRL_CHECK(0, "pinned: stand-in env");
    mrl_ref_close(&f);
    return;
  }
  cfg.num_steps = PT;
  cfg.bptt_len = 4;
  cfg.k_steps = 2;
  cfg.gamma = 0.9f;
  cfg.ent_coef = 0.01f;
  cfg.net.encoder_sizes[0] = PE;
  cfg.net.num_encoder_layers = 1;
  cfg.net.core = mrl_core_config_lstm(PH);
  cfg.value_net = cfg.net;
  if (mrl_reinforce_init(&a, &cfg, &env) != MRL_OK) {
    MRL_CHECK(0, "pinned: init: %s", a.error);
    mrl_vecenv_free(&env);
    mrl_ref_close(&f);
    return;
  }
  ro = &a.rollout;
  for (k = 0; k < a.params.count; k++) {
    mrl_tensor *t = &a.params.items[k].tensor;
    snprintf(name, sizeof name, "p%d", k);
    MRL_CHECK(mrl_ref_fill(&f, name, t->data, t->size), "pinned: parameter %d (%s) does not fit", k,
              a.params.items[k].name);
  }
  MRL_CHECK(strstr(f.text, "\np16 ") == NULL && a.params.count == 16,
            "pinned: %d parameters here, the twin has 16", a.params.count);
  mrl_ref_fill(&f, "obs", ro->obs, n * PO);
  mrl_ref_fill(&f, "actions", ro->actions, n);
  mrl_ref_fill(&f, "values", ro->values, n);
  mrl_ref_fill(&f, "rewards", ro->rewards, n);
  mrl_ref_fill(&f, "terminated", ro->terminated, n);
  mrl_ref_fill(&f, "truncated", ro->truncated, n);
  mrl_ref_fill(&f, "final_values", ro->final_values, n);
  mrl_ref_fill(&f, "episode_starts", ro->episode_starts, n);
  mrl_ref_fill(&f, "initial_state", ro->initial_state, PB * a.state_dim);
  mrl_ref_fill(&f, "last_values", last_values, PB);
  mrl_reinforce_targets(&a, last_values);
  mrl_ref_expect(&f, "advantages", ro->advantages, n, 1e-5, 1e-5);
  mrl_ref_expect(&f, "returns", ro->returns, n, 1e-5, 1e-5);
  MRL_CHECK(mrl_reinforce_update(&a, cfg.learning_rate, &st) == MRL_OK, "pinned: update: %s",
            a.error);
  if (mrl_ref_fill(&f, "policy_loss", &want, 1))
    MRL_CHECK_NEAR(st.policy_loss, want, 1e-6, 1e-4, "policy_loss");
  if (mrl_ref_fill(&f, "value_loss", &want, 1))
    MRL_CHECK_NEAR(st.value_loss, want, 1e-6, 1e-5, "value_loss");
  if (mrl_ref_fill(&f, "entropy", &want, 1))
    MRL_CHECK_NEAR(st.entropy, want, 1e-6, 1e-5, "entropy");
  if (mrl_ref_fill(&f, "loss", &want, 1)) MRL_CHECK_NEAR(st.loss, want, 1e-6, 1e-4, "loss");
  for (k = 0; k < a.params.count; k++) {
    mrl_tensor *t = &a.params.items[k].tensor;
    snprintf(name, sizeof name, "g%d", k);
    mrl_ref_expect(&f, name, t->grad, t->size, 2e-6, 1e-4);
    snprintf(name, sizeof name, "u%d", k);
    mrl_ref_expect(&f, name, t->data, t->size, 1e-6, 1e-5);
  }
  mrl_reinforce_free(&a);
  mrl_vecenv_free(&env);
  mrl_ref_close(&f);
}

/* ---- the curriculum ---- */

static mrl_reinforce_config small_config(void) {
  mrl_reinforce_config c = mrl_reinforce_config_default();
  c.num_steps = 25;
  c.net.encoder_sizes[0] = 8;
  c.net.num_encoder_layers = 1;
  c.net.core = mrl_core_config_lstm(8);
  c.value_net = c.net;
  c.curriculum = 1;
  c.curriculum_window = 4;
  return c;
}

/* threshold 0: every level passes as soon as a window of episodes has
 * finished; threshold 1 with an untrained agent: none passes. */
static void test_curriculum(void) {
  static const long long want[4] = {5, 10, 20, 25};
  mrl_vecenv env;
  mrl_reinforce a;
  mrl_reinforce_config c = small_config();
  int it, ok = 1;
  c.curriculum_threshold = 0.0f;
  if (mrl_vecenv_init(&env, "NoisySequence-25", 4, 3) != MRL_OK) return;
  MRL_CHECK(mrl_reinforce_init(&a, &c, &env) == MRL_OK, "curriculum: init: %s", a.error);
  for (it = 0; it < 4; it++) {
    char id[32];
    MRL_CHECK(mrl_reinforce_train(&a, &env, 4 * 25, NULL, NULL) == MRL_OK, "curriculum: train");
    ok &= a.curriculum.length == (it + 1 < 4 ? want[it + 1] : 25) &&
          a.curriculum.level == (it + 1 < 3 ? it + 1 : 3);
    snprintf(id, sizeof id, "NoisySequence-%lld", a.curriculum.length);
    ok &= strcmp(mrl_env_id(env.envs[0]), id) == 0;
  }
  MRL_CHECK(ok, "curriculum: lengths should go 5, 10, 20, 25 (now %lld, level %lld)",
            a.curriculum.length, a.curriculum.level);
  mrl_reinforce_free(&a);
  mrl_vecenv_free(&env);
  c.curriculum_threshold = 1.0f;
  c.curriculum_window = 100;
  if (mrl_vecenv_init(&env, "NoisySequence-25", 4, 3) != MRL_OK) return;
  MRL_CHECK(mrl_reinforce_init(&a, &c, &env) == MRL_OK, "curriculum: init: %s", a.error);
  MRL_CHECK(mrl_reinforce_train(&a, &env, 8 * 100, NULL, NULL) == MRL_OK, "curriculum: train");
  MRL_CHECK(a.curriculum.length == 5 && a.curriculum.level == 0 &&
                strcmp(mrl_env_id(env.envs[0]), "NoisySequence-5") == 0,
            "curriculum: an agent at chance passed a level (length %lld)", a.curriculum.length);
  mrl_reinforce_free(&a);
  mrl_vecenv_free(&env);
}

/* ---- acting allocates nothing ---- */

static void test_act_no_alloc(void) {
  mrl_vecenv env;
  mrl_reinforce a;
  mrl_reinforce_config c = small_config();
  float obs[8 * 2], starts[8], actions[8], *state;
  long before;
  int i, n;
  c.curriculum = 0;
  if (mrl_vecenv_init(&env, "NoisySequence-10", 2, 1) != MRL_OK) return;
  if (mrl_reinforce_init(&a, &c, &env) != MRL_OK) {
    MRL_CHECK(0, "act: init: %s", a.error);
    return;
  }
  MRL_CHECK(mrl_reinforce_state_dim(&a) == 4 * 8, "act: state_dim %d: two LSTMs' h and c",
            mrl_reinforce_state_dim(&a));
  state = (float *)calloc((size_t)8 * a.state_dim, sizeof(float));
  for (i = 0; i < 16; i++) obs[i] = 0.1f * (float)i;
  for (n = 1; n <= 8; n *= 8) {
    for (i = 0; i < n; i++) starts[i] = 1.0f;
    mrl_reinforce_act(&a, obs, n, starts, state, 0, NULL, actions); /* warm */
    before = test_alloc_calls;
    for (i = 0; i < 100; i++) {
      starts[0] = (float)(i % 10 == 0);
      mrl_reinforce_act(&a, obs, n, starts, state, i & 1, NULL, actions);
    }
    MRL_CHECK(test_alloc_calls == before, "act: 100 calls with n=%d made %ld heap allocations", n,
              test_alloc_calls - before);
  }
  free(state);
  mrl_reinforce_free(&a);
  mrl_vecenv_free(&env);
}

/* ---- save / load resumes bitwise ---- */

static int same_agent(const mrl_reinforce *x, const mrl_reinforce *y) {
  size_t n = x->params.total;
  return memcmp(x->params.values, y->params.values, sizeof(float) * n) == 0 &&
         memcmp(x->params.moment1, y->params.moment1, sizeof(float) * n) == 0 &&
         memcmp(x->runner.state, y->runner.state,
                sizeof(float) * (size_t)x->num_envs * x->state_dim) == 0 &&
         memcmp(&x->rng, &y->rng, sizeof x->rng) == 0 &&
         x->curriculum.length == y->curriculum.length &&
         x->curriculum.level == y->curriculum.level && x->iterations == y->iterations;
}

static void test_resume(void) {
  const char *path = "build/test_reinforce_resume.safetensors";
  mrl_vecenv e1, e2, e3;
  mrl_reinforce a1, a2, a3;
  mrl_reinforce_config c = small_config();
  long long batch = 4 * 25;
  mrl_result r;
  c.curriculum_threshold = 0.0f; /* the levels move during the run */
  c.k_steps = 5;
  c.bptt_len = 10;
  if (mrl_vecenv_init(&e1, "NoisySequence-40", 4, 9) != MRL_OK ||
      mrl_vecenv_init(&e2, "NoisySequence-40", 4, 9) != MRL_OK ||
      mrl_vecenv_init(&e3, "NoisySequence-40", 4, 9) != MRL_OK)
    return;
  if (mrl_reinforce_init(&a1, &c, &e1) != MRL_OK || mrl_reinforce_init(&a2, &c, &e2) != MRL_OK ||
      mrl_reinforce_init(&a3, &c, &e3) != MRL_OK) {
    MRL_CHECK(0, "resume: init");
    return;
  }
  mrl_reinforce_train(&a1, &e1, 6 * batch, NULL, NULL);
  mrl_reinforce_train(&a2, &e2, 3 * batch, NULL, NULL);
  MRL_CHECK(a2.curriculum.level > 0, "resume: the curriculum should have moved by the save");
  MRL_CHECK((r = mrl_reinforce_save(&a2, path, &e2)) == MRL_OK, "resume: save gave %d", (int)r);
  mrl_reinforce_free(&a2);
  mrl_vecenv_free(&e2);
  MRL_CHECK((r = mrl_reinforce_load(&a3, path, &e3)) == MRL_OK, "resume: load gave %d: %s", (int)r,
            a3.error);
  MRL_CHECK(mrl_reinforce_train(&a3, &e3, 3 * batch, NULL, NULL) == MRL_OK, "resume: train");
  MRL_CHECK(same_agent(&a1, &a3) && memcmp(e1.obs, e3.obs, sizeof(float) * 4 * 2) == 0 &&
                strcmp(mrl_env_id(e1.envs[0]), mrl_env_id(e3.envs[0])) == 0,
            "resume: the resumed run differs from the uninterrupted one (lengths %lld / %lld)",
            a1.curriculum.length, a3.curriculum.length);
  /* a config that differs is refused by name */
  {
    mrl_reinforce a4;
    mrl_vecenv e4;
    c.k_steps = 6;
    if (mrl_vecenv_init(&e4, "NoisySequence-40", 4, 9) == MRL_OK &&
        mrl_reinforce_init(&a4, &c, &e4) == MRL_OK) {
      MRL_CHECK(mrl_reinforce_load(&a4, path, NULL) == MRL_ERR_INVALID_ARGUMENT &&
                    strstr(a4.error, "k_steps") != NULL,
                "resume: a mismatched config should be named (%s)", a4.error);
      mrl_reinforce_free(&a4);
    }
    mrl_vecenv_free(&e4);
  }
  remove(path);
  mrl_reinforce_free(&a1);
  mrl_reinforce_free(&a3);
  mrl_vecenv_free(&e1);
  mrl_vecenv_free(&e3);
}

/* ---- init errors name the field ---- */

static void test_init_errors(void) {
  mrl_vecenv env, cart;
  mrl_reinforce a;
  mrl_reinforce_config c;
  struct {
    const char *field;
    int what;
  } cases[] = {{"num_steps", 0},
               {"bptt_len", 1},
               {"k_steps", 2},
               {"lambda", 3},
               {"gamma", 4},
               {"learning_rate", 5},
               {"adam_eps", 6},
               {"curriculum_growth", 7},
               {"curriculum_window", 8},
               {"curriculum_threshold", 9},
               {"curriculum_start", 10},
               {"core.hidden_size", 11}};
  int i;
  if (mrl_vecenv_init(&env, "NoisySequence-20", 2, 1) != MRL_OK) return;
  for (i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++) {
    mrl_result r;
    c = small_config();
    switch (cases[i].what) {
    case 0: c.num_steps = 0; break;
    case 1: c.bptt_len = -1; break;
    case 2: c.k_steps = -2; break;
    case 3: c.lambda = 1.5f; break;
    case 4: c.gamma = (float)NAN; break;
    case 5: c.learning_rate = -1.0f; break;
    case 6: c.adam_eps = 0.0f; break;
    case 7: c.curriculum_growth = 1.0f; break;
    case 8: c.curriculum_window = 101; break;
    case 9: c.curriculum_threshold = 2.0f; break;
    case 10: c.curriculum_start = 30; break;
    default: c.value_net.core.hidden_size = 0; break;
    }
    r = mrl_reinforce_init(&a, &c, &env);
    MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT && strstr(a.error, cases[i].field) != NULL,
              "init: %s: got %d, \"%s\"", cases[i].field, (int)r, a.error);
    mrl_reinforce_free(&a); /* safe after a failed init */
  }
  /* NoisySequence-20 with 3 signal steps cannot start at length 3 */
  c = small_config();
  c.curriculum_start = 3;
  MRL_CHECK(mrl_reinforce_init(&a, &c, &env) == MRL_ERR_INVALID_ARGUMENT &&
                strstr(a.error, "NoisySequence-3") != NULL,
            "init: an impossible first level: \"%s\"", a.error);
  mrl_reinforce_free(&a);
  /* the curriculum needs a length in the id */
  if (mrl_vecenv_init(&cart, "CartPole-v1", 2, 1) == MRL_OK) {
    c = small_config();
    MRL_CHECK(mrl_reinforce_init(&a, &c, &cart) == MRL_ERR_INVALID_ARGUMENT &&
                  strstr(a.error, "curriculum") != NULL,
              "init: CartPole-v1 has no length to grow: \"%s\"", a.error);
    mrl_reinforce_free(&a);
    c.curriculum = 0;
    MRL_CHECK(mrl_reinforce_init(&a, &c, &cart) == MRL_OK, "init: CartPole-v1 without: %s",
              a.error);
    mrl_reinforce_free(&a);
    mrl_vecenv_free(&cart);
  }
  mrl_vecenv_free(&env);
}

/* ---- a non-finite update is refused; box actions ---- */

static void test_non_finite_and_box(void) {
  mrl_vecenv env;
  mrl_reinforce a;
  mrl_reinforce_config c = small_config();
  float *before, obs[3] = {0.1f, 0.2f, 0.3f}, action[1], *state;
  c.curriculum = 0;
  if (mrl_vecenv_init(&env, "NoisySequence-10", 4, 1) != MRL_OK) return;
  if (mrl_reinforce_init(&a, &c, &env) != MRL_OK) return;
  MRL_CHECK(mrl_reinforce_train(&a, &env, 4 * 25, NULL, NULL) == MRL_OK, "non-finite: train");
  before = (float *)malloc(sizeof(float) * a.params.total);
  memcpy(before, a.params.values, sizeof(float) * a.params.total);
  a.rollout.rewards[3] = (float)NAN;
  mrl_reinforce_targets(&a, a.last_values);
  MRL_CHECK(mrl_reinforce_update(&a, 1e-3f, NULL) == MRL_ERR_NON_FINITE &&
                memcmp(before, a.params.values, sizeof(float) * a.params.total) == 0 &&
                strstr(a.error, "non-finite") != NULL,
            "non-finite: the update should be refused and change nothing (%s)", a.error);
  free(before);
  mrl_reinforce_free(&a);
  mrl_vecenv_free(&env);
  /* Pendulum-v1: a Gaussian policy; its act stays in the bounds */
  c = mrl_reinforce_config_default();
  c.num_steps = 16;
  c.net.core = mrl_core_config_gru(8);
  if (mrl_vecenv_init(&env, "Pendulum-v1", 2, 1) != MRL_OK) return;
  if (mrl_reinforce_init(&a, &c, &env) != MRL_OK) {
    MRL_CHECK(0, "box: init: %s", a.error);
    return;
  }
  MRL_CHECK(mrl_reinforce_train(&a, &env, 2 * 16 * 3, NULL, NULL) == MRL_OK && a.iterations == 3,
            "box: train: %s", a.error);
  state = (float *)calloc((size_t)a.state_dim + 1, sizeof(float));
  MRL_CHECK(mrl_reinforce_act(&a, obs, 1, NULL, state, 0, NULL, action) == MRL_OK &&
                action[0] >= -2.0f && action[0] <= 2.0f,
            "box: act gave %g", action[0]);
  free(state);
  mrl_reinforce_free(&a);
  mrl_vecenv_free(&env);
}

int main(void) {
  test_returns();
  test_pinned_update();
  test_curriculum();
  test_act_no_alloc();
  test_resume();
  test_init_errors();
  test_non_finite_and_box();
  return mrl_test_summary("test_reinforce");
}
