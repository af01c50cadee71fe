/* A2C and A3C (memrl_algos.h >>a2c, >>a3c):
 *   - a pinned update against a PyTorch twin (tools/make_ref.py, make_a2c_update ->
 *     tests/ref/a2c_update.txt): n-step returns, losses, clipped gradients and the
 *     parameters after RMSprop, for discrete actions with MLP and LSTM towers and box actions;
 *   - acting allocates nothing once warm (feedforward and LSTM);
 *   - save, load and continue equals training straight through, bit for bit;
 *   - init rejects bad configs with a message naming the field and value;
 *   - A3C with one thread: one update is the paper's shared RMSProp step on the
 *     thread's gradient, and a seed gives the same bits twice;
 *   - built with -DMRL_THREADS -pthread (tools/run_tests.sh does): A3C with 2 threads
 *     trains, every thread doing its share of updates, the parameters finite.
 *
 * Run from the repository root:  cc -std=c99 -O2 tests/test_a2c.c -lm && ./a.out */
#define MEMRL_IMPLEMENTATION
#define MRL_TEST_COUNT_ALLOCATIONS
#include "test.h"

#include "../memrl_algos.h"
#include "ref_loader.h"

enum { T = 5, B = 4, OBS = MRL_REF_OBS, HIDDEN = 8, LSTM = 6 };

static void expect_scalar(const mrl_ref_file *f, const char *c, const char *what, double got,
                          double atol, double rtol) {
  char name[64];
  float want;
  snprintf(name, sizeof name, "%s_%s", c, what);
  if (mrl_ref_fill(f, name, &want, 1)) MRL_CHECK_NEAR(got, want, atol, rtol, name);
}

static void pinned_case(const mrl_ref_file *f, const char *c, int lstm, int box) {
  mrl_vecenv env;
  mrl_a2c a;
  mrl_a2c_config cfg = mrl_a2c_config_default();
  mrl_a2c_update_stats st;
  mrl_rollout *ro;
  float last_values[B], init_state[B * 4 * LSTM + 1];
  char name[64];
  int k, n = T * B;
  if (!mrl_ref_fixed_vecenv(&env, B, box)) {
    MRL_CHECK(0, "%s: stand-in env", c);
    return;
  }
  cfg.num_steps = T;
  cfg.ent_coef = 0.01f; /* the twin's: SB3's 0 would leave the entropy gradient untested */
  cfg.net.encoder_sizes[0] = cfg.net.encoder_sizes[1] = HIDDEN;
  if (lstm) cfg.net.core = mrl_core_config_lstm(LSTM);
  if (mrl_a2c_init(&a, &cfg, &env) != MRL_OK) {
    MRL_CHECK(0, "%s: init: %s", c, a.error);
    mrl_vecenv_free(&env);
    return;
  }
  ro = &a.rollout;
  if (mrl_ref_load_params(f, c, &a.params)) {
    const int R = a.raw_dim;
#define FILL(field, count)                                                                         \
  do {                                                                                             \
    snprintf(name, sizeof name, "%s_%s", c, #field);                                               \
    mrl_ref_fill(f, name, ro->field, count);                                                       \
  } while (0)
    FILL(obs, n * OBS);
    FILL(actions, n * R);
    FILL(log_probs, n);
    FILL(values, n);
    FILL(rewards, n);
    FILL(terminated, n);
    FILL(truncated, n);
    FILL(final_values, n);
    FILL(episode_starts, n);
#undef FILL
    snprintf(name, sizeof name, "%s_initial_state", c);
    mrl_ref_fill(f, name, init_state, lstm ? B * a.state_dim : 1);
    memcpy(ro->initial_state, init_state, sizeof(float) * (size_t)B * a.state_dim);
    snprintf(name, sizeof name, "%s_last_values", c);
    mrl_ref_fill(f, name, last_values, B);
    /* A2C's targets: GAE at lambda 1 is the n-step return bootstrapped from V */
    mrl_rollout_compute_gae(ro, last_values, cfg.gamma, cfg.gae_lambda);
    snprintf(name, sizeof name, "%s_advantages", c);
    mrl_ref_expect(f, name, ro->advantages, n, 1e-5, 1e-5);
    snprintf(name, sizeof name, "%s_returns", c);
    mrl_ref_expect(f, name, ro->returns, n, 1e-5, 1e-5);
    MRL_CHECK(mrl_a2c_update(&a, cfg.learning_rate, &st) == MRL_OK, "%s: update failed (%s)", c,
              a.error);
    expect_scalar(f, c, "policy_loss", st.policy_loss, 1e-6, 1e-4);
    expect_scalar(f, c, "value_loss", st.value_loss, 1e-6, 1e-5);
    expect_scalar(f, c, "entropy", st.entropy, 1e-6, 1e-5);
    expect_scalar(f, c, "loss", st.loss, 1e-6, 1e-4);
    for (k = 0; k < a.params.count; k++) {
      mrl_tensor *t = &a.params.items[k].tensor;
      snprintf(name, sizeof name, "%s_g%d", c, k);
      mrl_ref_expect(f, name, t->grad, t->size, 2e-6, 1e-4);
      snprintf(name, sizeof name, "%s_u%d", c, k);
      mrl_ref_expect(f, name, t->data, t->size, 1e-6, 1e-5);
    }
  }
  mrl_a2c_free(&a);
  mrl_vecenv_free(&env);
}

static mrl_a2c_config small_config(int lstm) {
  mrl_a2c_config cfg = mrl_a2c_config_default();
  cfg.net.encoder_sizes[0] = cfg.net.encoder_sizes[1] = 16;
  if (lstm) cfg.net.core = mrl_core_config_lstm(8);
  cfg.seed = 7;
  return cfg;
}

static void act_no_allocation(int lstm) {
  mrl_a2c_config cfg = small_config(lstm);
  mrl_vecenv env;
  mrl_a2c a;
  float obs[3 * 4], state[3 * 64], starts[3] = {1, 0, 1}, actions[3], values[3];
  long before;
  int i, ok = 1;
  memset(state, 0, sizeof state);
  for (i = 0; i < 12; i++) obs[i] = 0.1f * (float)(i - 6);
  if (mrl_vecenv_init(&env, "CartPole-v1", 2, 1) != MRL_OK || mrl_a2c_init(&a, &cfg, &env)) {
    MRL_CHECK(0, "act: init");
    return;
  }
  MRL_CHECK(mrl_a2c_state_dim(&a) == (lstm ? 2 * 2 * 8 : 0), "a2c state_dim %d",
            mrl_a2c_state_dim(&a));
  ok &= mrl_a2c_act(&a, obs, 3, starts, state, 0, NULL, actions) == MRL_OK; /* warm-up */
  ok &= mrl_a2c_value(&a, obs, 3, starts, state, values) == MRL_OK;
  before = test_alloc_calls;
  for (i = 0; i < 50; i++) {
    ok &= mrl_a2c_act(&a, obs, 3, i % 7 ? NULL : starts, state, i & 1, NULL, actions) == MRL_OK;
    ok &= mrl_a2c_value(&a, obs, 3, NULL, state, values) == MRL_OK;
  }
  MRL_CHECK(ok, "a2c act failed");
  MRL_CHECK(test_alloc_calls == before, "a2c act (lstm %d): %ld heap allocations in 50 calls", lstm,
            test_alloc_calls - before);
  for (i = 0; i < 3; i++)
    MRL_CHECK(actions[i] == 0.0f || actions[i] == 1.0f, "a2c act: action %g", actions[i]);
  mrl_a2c_free(&a);
  mrl_vecenv_free(&env);
}

static int same_params(const mrl_params *x, const mrl_params *y) {
  return x->total == y->total && !memcmp(x->values, y->values, sizeof(float) * x->total) &&
         !memcmp(x->moment2, y->moment2, sizeof(float) * x->total) &&
         x->adam_steps == y->adam_steps;
}

/* Train 2k steps, save, train 2k more; a fresh agent loading the file and
 * training 2k gives the same bits (parameters, RMSprop state, statistics). */
static void save_load_resumes(int lstm) {
  const char *path = lstm ? "build/test_a2c_lstm.safetensors" : "build/test_a2c.safetensors";
  mrl_a2c_config cfg = small_config(lstm);
  mrl_vecenv e1, e2;
  mrl_a2c a, b;
  int ok;
  if (mrl_vecenv_init(&e1, "CartPole-v1", 4, 3) != MRL_OK ||
      mrl_vecenv_init(&e2, "CartPole-v1", 4, 3) != MRL_OK || mrl_a2c_init(&a, &cfg, &e1) ||
      mrl_a2c_init(&b, &cfg, &e2)) {
    MRL_CHECK(0, "save/load: init");
    return;
  }
  ok = mrl_a2c_train(&a, &e1, 2000, NULL, NULL) == MRL_OK;
  ok &= mrl_a2c_save(&a, path, &e1) == MRL_OK;
  ok &= mrl_a2c_train(&a, &e1, 2000, NULL, NULL) == MRL_OK;
  MRL_CHECK(ok, "save/load: train or save failed: %s", a.error);
  MRL_CHECK(mrl_a2c_load(&b, path, &e2) == MRL_OK, "save/load: load failed: %s", b.error);
  MRL_CHECK(mrl_a2c_train(&b, &e2, 2000, NULL, NULL) == MRL_OK, "save/load: resumed train");
  MRL_CHECK(same_params(&a.params, &b.params),
            "a2c (lstm %d): resumed run differs from the "
            "straight run",
            lstm);
  MRL_CHECK(a.runner.env_steps == b.runner.env_steps && a.iterations == b.iterations &&
                a.runner.stats.total_episodes == b.runner.stats.total_episodes &&
                mrl_episode_stats_mean_return(&a.runner.stats) ==
                    mrl_episode_stats_mean_return(&b.runner.stats),
            "a2c (lstm %d): resumed counters differ", lstm);
  MRL_CHECK(a.params.adam_steps == 2 * 2000 / (4 * 5), "a2c: %lld RMSprop steps",
            a.params.adam_steps);
  { /* a config that differs is refused, naming the field */
    mrl_a2c c;
    cfg.rms_eps = 1e-4f;
    if (mrl_a2c_init(&c, &cfg, &e2) == MRL_OK) {
      MRL_CHECK(mrl_a2c_load(&c, path, NULL) != MRL_OK && strstr(c.error, "rms_eps"),
                "a2c load of another config: '%s'", c.error);
      mrl_a2c_free(&c);
    }
  }
  mrl_a2c_free(&a);
  mrl_a2c_free(&b);
  mrl_vecenv_free(&e1);
  mrl_vecenv_free(&e2);
  remove(path);
}

static void expect_reject(const mrl_a2c_config *cfg, const char *want) {
  mrl_vecenv env;
  mrl_a2c a;
  mrl_result r;
  if (mrl_vecenv_init(&env, "CartPole-v1", 2, 1) != MRL_OK) return;
  r = mrl_a2c_init(&a, cfg, &env);
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT && strstr(a.error, want),
            "a2c init should fail with '%s', got %d '%s'", want, (int)r, a.error);
  mrl_a2c_free(&a); /* safe after a failed init */
  mrl_vecenv_free(&env);
}

static void expect_reject_a3c(const mrl_a3c_config *cfg, int num_envs, const char *want) {
  mrl_vecenv env;
  mrl_a3c a;
  mrl_result r;
  if (mrl_vecenv_init(&env, "CartPole-v1", num_envs, 1) != MRL_OK) return;
  r = mrl_a3c_init(&a, cfg, &env);
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT && strstr(a.error, want),
            "a3c init should fail with '%s', got %d '%s'", want, (int)r, a.error);
  mrl_a3c_free(&a);
  mrl_vecenv_free(&env);
}

static void init_errors(void) {
  mrl_a2c_config c = mrl_a2c_config_default();
  mrl_a3c_config d = mrl_a3c_config_default();
  c.num_steps = 0;
  expect_reject(&c, "mrl_a2c_config.num_steps 0 must be >= 1");
  c = mrl_a2c_config_default();
  c.rms_eps = 0.0f;
  expect_reject(&c, "mrl_a2c_config.rms_eps 0 must be > 0");
  c = mrl_a2c_config_default();
  c.rms_alpha = 1.0f;
  expect_reject(&c, "mrl_a2c_config.rms_alpha 1 must be in [0, 1)");
  c = mrl_a2c_config_default();
  c.gamma = 1.5f;
  expect_reject(&c, "mrl_a2c_config.gamma 1.5 must be in [0, 1]");
  c = mrl_a2c_config_default();
  c.learning_rate = (float)NAN;
  expect_reject(&c, "mrl_a2c_config.learning_rate nan must be finite");
  c = mrl_a2c_config_default();
  c.log_interval = 0;
  expect_reject(&c, "mrl_a2c_config.log_interval 0 must be >= 1");
  c = mrl_a2c_config_default();
  c.net.core.kind = (mrl_core_kind)999;
  expect_reject(&c, "core");
  d.num_threads = 3;
  expect_reject_a3c(&d, 4, "mrl_a3c_config.num_threads 3 must be >= 1 and divide num_envs 4");
  d = mrl_a3c_config_default();
  d.t_max = 0;
  expect_reject_a3c(&d, 2, "mrl_a3c_config.t_max 0 must be >= 1");
  d = mrl_a3c_config_default();
  d.rms_eps = -1.0f;
  expect_reject_a3c(&d, 2, "mrl_a3c_config.rms_eps -1 must be > 0");
#ifndef MRL_THREADS
  d = mrl_a3c_config_default();
  d.num_threads = 2;
  expect_reject_a3c(&d, 2, "num_threads 2 needs threads: build with -DMRL_THREADS");
#endif
}

/* A3C, one thread: after one update theta = theta0 - lr d / sqrt(g + eps) with
 * g = (1 - alpha) d^2 and d the thread's (unclipped) gradient; and a seed
 * repeats bit for bit. */
static void a3c_one_thread(void) {
  mrl_a3c_config cfg = mrl_a3c_config_default();
  mrl_vecenv e1, e2;
  mrl_a3c a, b;
  float *theta0;
  size_t j, bad = 0;
  cfg.net.encoder_sizes[0] = cfg.net.encoder_sizes[1] = 16;
  cfg.log_interval = 1;
  cfg.seed = 5;
  if (mrl_vecenv_init(&e1, "CartPole-v1", 2, 9) != MRL_OK ||
      mrl_vecenv_init(&e2, "CartPole-v1", 2, 9) != MRL_OK || mrl_a3c_init(&a, &cfg, &e1) ||
      mrl_a3c_init(&b, &cfg, &e2)) {
    MRL_CHECK(0, "a3c: init: %s", a.error);
    return;
  }
  theta0 = (float *)malloc(sizeof(float) * a.global.params.total);
  memcpy(theta0, a.global.params.values, sizeof(float) * a.global.params.total);
  MRL_CHECK(mrl_a3c_train(&a, &e1, 2 * 5, NULL, NULL) == MRL_OK && a.updates == 1,
            "a3c: one update: %s", a.error);
  for (j = 0; j < a.global.params.total; j++) {
    /* 1 - alpha as the library forms it (torch's RMSprop does the same in double) */
    float d = a.workers[0].params.grads[j], g = (float)(1.0 - (double)0.99f) * d * d;
    double want = theta0[j] - 7e-4f * d / sqrtf(g + 0.1f);
    if (fabs(a.global.params.moment2[j] - g) > 1e-7 * fabs(g) + 1e-30 ||
        fabs(a.global.params.values[j] - want) > 1e-7 * fabs(want) + 1e-9)
      bad++;
  }
  MRL_CHECK(bad == 0, "a3c: %zu parameters differ from the shared RMSProp step", bad);
  MRL_CHECK(mrl_a3c_train(&a, &e1, 3000, NULL, NULL) == MRL_OK, "a3c train: %s", a.error);
  MRL_CHECK(mrl_a3c_train(&b, &e2, 10, NULL, NULL) == MRL_OK &&
                mrl_a3c_train(&b, &e2, 3000, NULL, NULL) == MRL_OK,
            "a3c train: %s", b.error);
  MRL_CHECK(same_params(&a.global.params, &b.global.params) && a.updates == b.updates &&
                a.updates == 1 + 3000 / 10,
            "a3c: one thread is not deterministic (%lld, %lld updates)", a.updates, b.updates);
  { /* checkpoint round trip of the shared parameters and statistics */
    mrl_a3c c;
    const char *path = "build/test_a3c.safetensors";
    mrl_vecenv e3;
    if (mrl_vecenv_init(&e3, "CartPole-v1", 2, 9) == MRL_OK && mrl_a3c_init(&c, &cfg, &e3) == 0) {
      MRL_CHECK(mrl_a3c_save(&a, path) == MRL_OK && mrl_a3c_load(&c, path) == MRL_OK,
                "a3c save/load: %s", c.error);
      MRL_CHECK(same_params(&a.global.params, &c.global.params) && c.updates == a.updates,
                "a3c: loaded parameters differ");
      mrl_a3c_free(&c);
      remove(path);
    }
    mrl_vecenv_free(&e3);
  }
  free(theta0);
  mrl_a3c_free(&a);
  mrl_a3c_free(&b);
  mrl_vecenv_free(&e1);
  mrl_vecenv_free(&e2);
}

#ifdef MRL_THREADS
static void a3c_two_threads(void) {
  mrl_a3c_config cfg = mrl_a3c_config_default();
  mrl_vecenv env;
  mrl_a3c a;
  size_t j, bad = 0;
  cfg.num_threads = 2;
  cfg.log_interval = 50;
  if (mrl_vecenv_init(&env, "CartPole-v1", 4, 2) != MRL_OK || mrl_a3c_init(&a, &cfg, &env)) {
    MRL_CHECK(0, "a3c 2 threads: init: %s", a.error);
    return;
  }
  MRL_CHECK(mrl_a3c_train(&a, &env, 4 * 5 * 120, NULL, NULL) == MRL_OK, "a3c 2 threads: %s",
            a.error);
  MRL_CHECK(a.updates == 240 && a.workers[0].iterations == 120 && a.workers[1].iterations == 120,
            "a3c 2 threads: %lld updates (%lld, %lld)", a.updates, a.workers[0].iterations,
            a.workers[1].iterations);
  MRL_CHECK(a.workers[0].runner.env_steps == 1200 && a.workers[1].runner.env_steps == 1200,
            "a3c 2 threads: steps %lld, %lld", a.workers[0].runner.env_steps,
            a.workers[1].runner.env_steps);
  for (j = 0; j < a.global.params.total; j++)
    bad += !(fabsf(a.global.params.values[j]) < 1e6f) || !(a.global.params.moment2[j] >= 0.0f);
  MRL_CHECK(bad == 0, "a3c 2 threads: %zu parameters not finite", bad);
  mrl_a3c_free(&a);
  mrl_vecenv_free(&env);
}
#endif

int main(void) {
  mrl_ref_file f;
  if (mrl_ref_open(&f, "tests/ref/a2c_update.txt")) {
    pinned_case(&f, "ff", 0, 0);
    pinned_case(&f, "lstm", 1, 0);
    pinned_case(&f, "cont", 0, 1);
    mrl_ref_close(&f);
  }
  act_no_allocation(0);
  act_no_allocation(1);
  save_load_resumes(0);
  save_load_resumes(1);
  init_errors();
  a3c_one_thread();
#ifdef MRL_THREADS
  a3c_two_threads();
#endif
  return mrl_test_summary("test_a2c");
}
