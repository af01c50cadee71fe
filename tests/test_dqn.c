/* Tests for memrl_algos.h's DQN section (the dqn tag).
 *   1. Pinned updates against PyTorch twins (tools/make_ref.py,
 *      make_dqn_update -> tests/ref/dqn_update.txt): one DQN update with
 *      double Q, n-step discounts (0 after a termination) and importance
 *      weights; the same with a dueling head; one C51 update (its projection
 *      checked on its own too). Loss, TD errors, the priorities they give,
 *      every gradient and every parameter after Adam.
 *   2. Acting allocates nothing once warm (greedy and epsilon-greedy, plain
 *      and C51).
 *   3. The schedule: with one environment the number of updates is exactly
 *      CleanRL's (global steps s > learning_starts with s % train_frequency
 *      == 0), and epsilon ends at end_e.
 *   4. Save/load with the replay buffer, then train: bitwise the same
 *      parameters, target network and buffer as the run that never stopped
 *      (double Q, n-step 3, prioritised replay).
 *   5. Init errors name the field: a recurrent core, box actions, dueling
 *      with C51, batch_size 0, tau 0.
 *
 * Run from the repository root:  make build/test_dqn && ./build/test_dqn */
#define MRL_TEST_COUNT_ALLOCATIONS
#include "test.h"
#define MEMRL_IMPLEMENTATION
#include "../memrl_algos.h"
#include "ref_loader.h"

/* Loads p<k> / t<k> of the fixture into every tensor of a store, in
 * declaration order. */
static int fill_params(const mrl_ref_file *f, mrl_params *p, const char *prefix) {
  char name[64];
  int k, ok = 1;
  for (k = 0; k < p->count; k++) {
    snprintf(name, sizeof name, "%s%d", prefix, k);
    ok &= mrl_ref_fill(f, name, p->items[k].tensor.data, p->items[k].tensor.size);
  }
  return ok;
}

static void test_pinned(const mrl_ref_file *f, const char *c) {
  enum { n = 6 };
  int is_c51 = strcmp(c, "c51") == 0, k, i;
  const char *env_id = is_c51 ? "CartPole-v1" : "TMaze-5";
  mrl_vecenv env;
  mrl_dqn a;
  mrl_dqn_config cfg = is_c51 ? mrl_dqn_config_c51() : mrl_dqn_config_default();
  float obs[n * 4], next[n * 4], actions[n], rewards[n], discounts[n], weights[n], td[n], loss;
  float np[n * 11], target[n * 11], proj[n * 11];
  char name[64];
  mrl_dqn_update_stats st;
  int O;
  cfg.net.encoder_sizes[0] = 8;
  cfg.net.encoder_sizes[1] = 6;
  cfg.learning_rate = 0.01f;
  cfg.adam_eps = is_c51 ? 0.01f / n : 1e-8f;
  cfg.batch_size = n;
  cfg.prioritized = 1; /* priorities: (|td| + 1e-6)^0.6 */
  cfg.double_q = !is_c51;
  cfg.dueling = strcmp(c, "duel") == 0;
  cfg.n_atoms = 11;
  cfg.v_min = -10.0f;
  cfg.v_max = 10.0f;
  if (mrl_vecenv_init(&env, env_id, 1, 1) != MRL_OK) {
    MRL_CHECK(0, "%s: no env %s", c, env_id);
    return;
  }
  if (mrl_dqn_init(&a, &cfg, &env) != MRL_OK) {
    MRL_CHECK(0, "%s: init failed: %s", c, a.error);
    mrl_vecenv_free(&env);
    return;
  }
  O = a.obs_dim;
  MRL_CHECK(a.params.count == (cfg.dueling ? 8 : 6), "%s: %d parameter tensors", c, a.params.count);
  snprintf(name, sizeof name, "%s_p", c);
  fill_params(f, &a.params, name);
  snprintf(name, sizeof name, "%s_t", c);
  fill_params(f, &a.target_params, name);
#define FILL(field, arr, cnt)                                                                      \
  snprintf(name, sizeof name, "%s_%s", c, field);                                                  \
  mrl_ref_fill(f, name, arr, cnt)
  FILL("obs", obs, n * O);
  FILL("next_obs", next, n * O);
  FILL("actions", actions, n);
  FILL("rewards", rewards, n);
  FILL("discounts", discounts, n);
  FILL("weights", weights, n);
  FILL("loss", &loss, 1);
  if (is_c51) {
    FILL("next_probs", np, n * 11);
    mrl_c51_project(np, rewards, discounts, n, 11, -10.0f, 10.0f, proj);
    snprintf(name, sizeof name, "%s_target", c);
    mrl_ref_expect(f, name, proj, n * 11, 1e-6, 1e-5);
    FILL("target", target, n * 11);
  }
#undef FILL
  MRL_CHECK(mrl_dqn_update(&a, obs, actions, rewards, next, discounts, weights, n, td, &st) ==
                MRL_OK,
            "%s: update failed: %s", c, a.error);
  MRL_CHECK_NEAR(st.loss, loss, 1e-6, 1e-5, c);
  snprintf(name, sizeof name, "%s_td", c);
  mrl_ref_expect(f, name, td, n, 1e-6, 1e-5);
  for (k = 0; k < a.params.count; k++) {
    mrl_param *p = &a.params.items[k];
    snprintf(name, sizeof name, "%s_g%d", c, k);
    mrl_ref_expect(f, name, a.params.grads + p->offset, p->tensor.size, 1e-6, 1e-4);
    snprintf(name, sizeof name, "%s_u%d", c, k);
    mrl_ref_expect(f, name, p->tensor.data, p->tensor.size, 1e-6, 1e-5);
  }
  /* the priorities these TD errors give, through the agent's replay */
  {
    float z = 0.0f, r0 = 0.0f, a0 = 0.0f, pr[n];
    int idx[n];
    for (i = 0; i < n; i++) {
      mrl_replay_add(&a.replay, obs, &a0, &r0, next, NULL, &z, &z);
      idx[i] = i;
    }
    mrl_replay_update_priorities(&a.replay, idx, td, n);
    for (i = 0; i < n; i++) pr[i] = (float)a.replay.priorities[i];
    snprintf(name, sizeof name, "%s_priorities", c);
    mrl_ref_expect(f, name, pr, n, 1e-6, 1e-5);
  }
  mrl_dqn_free(&a);
  mrl_vecenv_free(&env);
}

static void test_act_allocates_nothing(int c51) {
  mrl_vecenv env;
  mrl_dqn a;
  mrl_dqn_config cfg = c51 ? mrl_dqn_config_c51() : mrl_dqn_config_default();
  float actions[8];
  long before;
  int greedy, ok = 1, i;
  mrl_vecenv_init(&env, "CartPole-v1", 8, 3);
  if (mrl_dqn_init(&a, &cfg, &env) != MRL_OK) {
    MRL_CHECK(0, "init failed: %s", a.error);
    return;
  }
  mrl_vecenv_reset(&env);
  a.epsilon = 0.5f;
  for (greedy = 0; greedy < 2; greedy++) {
    MRL_CHECK(mrl_dqn_act(&a, env.obs, 8, NULL, NULL, greedy, NULL, actions) == MRL_OK, "act");
    before = test_alloc_calls;
    for (i = 0; i < 5; i++) mrl_dqn_act(&a, env.obs, 8, NULL, NULL, greedy, NULL, actions);
    MRL_CHECK(test_alloc_calls == before, "%s act (greedy %d) allocated %ld times",
              c51 ? "C51" : "DQN", greedy, test_alloc_calls - before);
    for (i = 0; i < 8; i++) ok &= actions[i] == 0.0f || actions[i] == 1.0f;
  }
  MRL_CHECK(ok, "act gave an action outside {0, 1}");
  mrl_dqn_free(&a);
  mrl_vecenv_free(&env);
}

static void test_schedule(void) {
  mrl_vecenv env;
  mrl_dqn a;
  mrl_dqn_config cfg = mrl_dqn_config_default();
  long long s, want = 0;
  cfg.learning_starts = 300;
  cfg.train_frequency = 7;
  cfg.batch_size = 16;
  cfg.exploration_fraction = 0.5f;
  mrl_vecenv_init(&env, "CartPole-v1", 1, 4);
  if (mrl_dqn_init(&a, &cfg, &env) != MRL_OK) return;
  MRL_CHECK(mrl_dqn_train(&a, &env, 1000, NULL, NULL) == MRL_OK, "train: %s", a.error);
  for (s = 0; s < 1000; s++) want += s > 300 && s % 7 == 0;
  MRL_CHECK(a.updates == want, "%lld updates, CleanRL's loop makes %lld", a.updates, want);
  MRL_CHECK(a.epsilon == 0.05f, "epsilon %g at the end, want end_e 0.05", a.epsilon);
  MRL_CHECK(a.replay.size == 1000, "replay holds %lld items after 1000 steps", a.replay.size);
  mrl_dqn_free(&a);
  mrl_vecenv_free(&env);
}

static mrl_dqn_config resume_config(void) {
  mrl_dqn_config cfg = mrl_dqn_config_default();
  cfg.buffer_size = 500;
  cfg.learning_starts = 200;
  cfg.train_frequency = 2;
  cfg.batch_size = 32;
  cfg.target_network_frequency = 50;
  cfg.total_steps = 1200;
  cfg.double_q = 1;
  cfg.n_step = 3;
  cfg.prioritized = 1;
  cfg.save_replay = 1;
  cfg.seed = 9;
  return cfg;
}

static void test_resume(void) {
  const char *path = "build/test_dqn_resume.safetensors";
  mrl_vecenv e1, e2;
  mrl_dqn a, b;
  mrl_dqn_config cfg = resume_config();
  mrl_result r;
  mrl_vecenv_init(&e1, "CartPole-v1", 2, 9);
  mrl_vecenv_init(&e2, "CartPole-v1", 2, 123); /* restored from the file */
  if (mrl_dqn_init(&a, &cfg, &e1) != MRL_OK || mrl_dqn_init(&b, &cfg, &e2) != MRL_OK) {
    MRL_CHECK(0, "init failed");
    return;
  }
  MRL_CHECK(mrl_dqn_train(&a, &e1, 600, NULL, NULL) == MRL_OK, "train: %s", a.error);
  MRL_CHECK(mrl_dqn_save(&a, path, &e1) == MRL_OK, "save failed");
  MRL_CHECK(mrl_dqn_train(&a, &e1, 600, NULL, NULL) == MRL_OK, "train on: %s", a.error);
  r = mrl_dqn_load(&b, path, &e2);
  MRL_CHECK(r == MRL_OK, "load failed: %s", b.error);
  MRL_CHECK(mrl_dqn_train(&b, &e2, 600, NULL, NULL) == MRL_OK, "resumed train: %s", b.error);
  MRL_CHECK(a.updates == b.updates && a.updates > 0, "updates %lld vs %lld", a.updates, b.updates);
  MRL_CHECK(memcmp(a.params.values, b.params.values, sizeof(float) * a.params.total) == 0,
            "resumed parameters differ from the uninterrupted run");
  MRL_CHECK(memcmp(a.params.moment2, b.params.moment2, sizeof(float) * a.params.total) == 0,
            "resumed Adam moments differ");
  MRL_CHECK(memcmp(a.target_params.values, b.target_params.values,
                   sizeof(float) * a.target_params.total) == 0,
            "resumed target network differs");
  MRL_CHECK(a.replay.size == b.replay.size &&
                memcmp(a.replay.obs, b.replay.obs, sizeof(float) * a.replay.floats) == 0 &&
                memcmp(a.replay.priorities, b.replay.priorities,
                       sizeof(double) * (size_t)cfg.buffer_size) == 0,
            "resumed replay buffer differs");
  /* a config that differs is refused by name */
  {
    mrl_dqn c3;
    mrl_dqn_config other = cfg;
    other.n_step = 2;
    if (mrl_dqn_init(&c3, &other, &e2) == MRL_OK) {
      MRL_CHECK(mrl_dqn_load(&c3, path, NULL) != MRL_OK && strstr(c3.error, "n_step"),
                "a checkpoint of another n_step loaded (%s)", c3.error);
      mrl_dqn_free(&c3);
    }
  }
  mrl_dqn_free(&a);
  mrl_dqn_free(&b);
  mrl_vecenv_free(&e1);
  mrl_vecenv_free(&e2);
  remove(path);
}

static void expect_init_error(const char *env_id, const mrl_dqn_config *cfg, const char *needle) {
  mrl_vecenv env;
  mrl_dqn a;
  if (mrl_vecenv_init(&env, env_id, 1, 1) != MRL_OK) return;
  MRL_CHECK(mrl_dqn_init(&a, cfg, &env) == MRL_ERR_INVALID_ARGUMENT && strstr(a.error, needle),
            "init should refuse with a message naming \"%s\", got \"%s\"", needle, a.error);
  mrl_dqn_free(&a);
  mrl_vecenv_free(&env);
}

static void test_init_errors(void) {
  mrl_dqn_config c = mrl_dqn_config_default();
  c.net.core = mrl_core_config_lstm(16);
  expect_init_error("CartPole-v1", &c, "DRQN");
  c = mrl_dqn_config_default();
  expect_init_error("Pendulum-v1", &c, "discrete actions");
  c = mrl_dqn_config_c51();
  c.dueling = 1;
  expect_init_error("CartPole-v1", &c, "dueling 1 with c51 1");
  c = mrl_dqn_config_default();
  c.batch_size = 0;
  expect_init_error("CartPole-v1", &c, "batch_size 0");
  c = mrl_dqn_config_default();
  c.tau = 0.0f;
  expect_init_error("CartPole-v1", &c, "tau 0");
}

int main(void) {
  mrl_ref_file f;
  if (mrl_ref_open(&f, "tests/ref/dqn_update.txt")) {
    test_pinned(&f, "dqn");
    test_pinned(&f, "duel");
    test_pinned(&f, "c51");
    mrl_ref_close(&f);
  }
  test_act_allocates_nothing(0);
  test_act_allocates_nothing(1);
  test_schedule();
  test_resume();
  test_init_errors();
  return mrl_test_summary("test_dqn");
}
