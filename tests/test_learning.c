/* Seeded learning tests: each agent must reach a stated return.
 *
 * The configurations are those of the examples (examples/ppo_cartpole.c,
 * examples/ppo_lstm_cartpole.c, examples/ppo_tmaze.c); the seeds are fixed,
 * so each run is bitwise reproducible on a given build.
 *   1. PPO (MLP) on CartPole-v1: mean return of the last 100 episodes >= 475.
 *   2. PPO-LSTM on StatelessCartPole-v1 (RL Zoo's tuned RecurrentPPO
 *      configuration for CartPoleNoVel-v1): >= 475.
 *   3. PPO-LSTM on TMaze-20: success rate of the last 100 episodes >= 0.95.
 *   4. The same PPO with the feedforward core on TMaze-20 stays near chance
 *      (success <= 0.65): the memory is what solves the task.
 *   5. PPO with continuous actions on Pendulum-v1 (examples/ppo_pendulum.c,
 *      rl-baselines3-zoo's PPO config without gSDE, learning rate annealed):
 *      after 100k steps (98,304) the greedy policy's mean return over 20
 *      evaluation episodes >= -200 (the zoo: -172 +- 104 after 100k).
 *   6. PPO-LSTM on StatelessPendulum-v1 (RecurrentPPO's PendulumNoVel
 *      config without gSDE): after 300k steps (299,008) the greedy return
 *      >= -250 (the zoo: -218 +- 140 after 100k, with gSDE).
 *   7. The TMaze-20 agent of 3 with a user's core (a GRU written against the
 *      mrl_core_type table, tests/test.h) instead of the LSTM: success >= 0.95,
 *      so a user's own core trains under PPO with no other change.
 *   8. The same with the built-in AMRL core (amrl:32, average, straight-
 *      through) and the fast-weight core (fwp:8:2, delta rule): success
 *      >= 0.95 each after 400k steps (about 10 s each on one core).
 *   9. The TMaze-20 agent of 3 with the DNC core (memrl_mem.h >>dnc: 8 rows
 *      of 8 floats, one read head, a controller of 32 units) instead of the
 *      LSTM, at a constant learning rate, after 250k steps (249,856; about
 *      25 s on one core): success >= 0.95.
 *  10. The TMaze agent of 3 with FTW's two-timescale core ("ftw:32:32:4") on
 *      TMaze-20 and with HCAM ("hcam:32:4:2:8", top-2 of 8 chunks of 4) on
 *      TMaze-5: success >= 0.95 (about 25 s each on one core). */
#define MEMRL_IMPLEMENTATION
#include "../memrl_algos.h"
#include "test.h"

typedef struct result {
  float mean_return, success;
  long long steps;
  double seconds;
} result;

/* Trains, then (eval_episodes > 0) evaluates the greedy policy on a vector
 * env of its own: eval_return. */
static result train_eval(const char *id, int num_envs, const mrl_ppo_config *cfg, long long steps,
                         int eval_episodes, float *eval_return);

static result train(const char *id, int num_envs, const mrl_ppo_config *cfg, long long steps) {
  return train_eval(id, num_envs, cfg, steps, 0, NULL);
}

static result train_eval(const char *id, int num_envs, const mrl_ppo_config *cfg, long long steps,
                         int eval_episodes, float *eval_return) {
  mrl_vecenv env;
  mrl_ppo agent;
  result res;
  double t0 = mrl_wall_seconds();
  memset(&res, 0, sizeof res);
  if (mrl_vecenv_init(&env, id, num_envs, cfg->seed) != MRL_OK) return res;
  if (mrl_ppo_init(&agent, cfg, &env) == MRL_OK) {
    MRL_CHECK(mrl_ppo_train(&agent, &env, steps, NULL, NULL) == MRL_OK, "%s: train failed", id);
    res.mean_return = mrl_episode_stats_mean_return(&agent.runner.stats);
    res.success = mrl_episode_stats_success_rate(&agent.runner.stats);
    res.steps = agent.runner.env_steps;
    if (eval_episodes > 0) {
      mrl_vecenv eval_env;
      mrl_episode_stats st;
      *eval_return = -1e9f;
      if (mrl_vecenv_init(&eval_env, id, 4, cfg->seed + 1000) == MRL_OK &&
          mrl_ppo_evaluate(&agent, &eval_env, eval_episodes, 1, &st) == MRL_OK)
        *eval_return = mrl_episode_stats_mean_return(&st);
      mrl_vecenv_free(&eval_env);
      printf("eval: env=%s greedy return %.2f over %d episodes\n", id, *eval_return, eval_episodes);
    }
    mrl_ppo_free(&agent);
  }
  mrl_vecenv_free(&env);
  res.seconds = mrl_wall_seconds() - t0;
  return res;
}

static void report(const char *id, const char *algo, result r) {
  char success[16];
  if (r.success >= 0.0f)
    snprintf(success, sizeof success, "%.2f", r.success);
  else
    snprintf(success, sizeof success, "-");
  printf("final: env=%s algo=%s return=%.2f success=%s steps=%lld seconds=%.1f\n", id, algo,
         r.mean_return, success, r.steps, r.seconds);
}

static mrl_ppo_config tmaze_config(int lstm) {
  mrl_ppo_config cfg = mrl_ppo_config_default();
  cfg.seed = 1;
  cfg.learning_rate = 1e-3f;
  cfg.net.encoder_sizes[0] = 32;
  cfg.net.num_encoder_layers = 1;
  cfg.shared_torso = 1;
  if (lstm) cfg.net.core = mrl_core_config_lstm(32);
  return cfg;
}

/* examples/ppo_pendulum.c's configurations (lstm: its units, 0 for none) */
static mrl_ppo_config pendulum_config(int lstm) {
  mrl_ppo_config cfg = mrl_ppo_config_default();
  cfg.seed = 1;
  cfg.num_steps = 1024;
  cfg.num_minibatches = 64;
  cfg.update_epochs = 10;
  cfg.learning_rate = 1e-3f;
  cfg.gamma = 0.9f;
  cfg.gae_lambda = 0.95f;
  cfg.ent_coef = 0.0f;
  cfg.clip_vloss = 0;
  if (lstm > 0) {
    cfg.net.num_encoder_layers = 0;
    cfg.net.core = mrl_core_config_lstm(lstm);
    cfg.net.head_sizes[0] = 64;
    cfg.net.num_head_layers = 1;
    cfg.net.activation = MRL_ACT_RELU;
    cfg.orthogonal_init = 0;
    cfg.normalize_obs = 1;
    cfg.normalize_reward = 1;
    cfg.num_minibatches = 4;
    cfg.anneal_lr = 0;
  }
  return cfg;
}

int main(void) {
  result r;
  {
    mrl_ppo_config cfg = mrl_ppo_config_default();
    cfg.seed = 1;
    r = train("CartPole-v1", 4, &cfg, 500000);
    report("CartPole-v1", "ppo", r);
    MRL_CHECK(r.mean_return >= 475.0f, "PPO CartPole-v1: mean return %.2f < 475", r.mean_return);
  }
  {
    mrl_ppo_config cfg = mrl_ppo_config_default();
    cfg.seed = 1;
    cfg.num_steps = 32;
    cfg.num_minibatches = 1;
    cfg.update_epochs = 20;
    cfg.learning_rate = 1e-3f;
    cfg.gamma = 0.98f;
    cfg.gae_lambda = 0.8f;
    cfg.ent_coef = 0.0f;
    cfg.net.activation = MRL_ACT_RELU;
    cfg.orthogonal_init = 0;
    cfg.net.num_encoder_layers = 0;
    cfg.net.core = mrl_core_config_lstm(64);
    cfg.net.head_sizes[0] = 64;
    cfg.net.num_head_layers = 1;
    cfg.normalize_obs = 1;    /* RL Zoo's normalize: true is VecNormalize: */
    cfg.normalize_reward = 1; /* observations and rewards */
    cfg.anneal_clip = 1;      /* clip_range lin_0.2 */
    cfg.clip_vloss = 0;       /* SB3 clips no value loss by default */
    r = train("StatelessCartPole-v1", 8, &cfg, 200000);
    report("StatelessCartPole-v1", "ppo-lstm", r);
    MRL_CHECK(r.mean_return >= 475.0f, "PPO-LSTM StatelessCartPole-v1: mean return %.2f < 475",
              r.mean_return);
  }
  {
    mrl_ppo_config cfg = tmaze_config(1);
    r = train("TMaze-20", 16, &cfg, 400000);
    report("TMaze-20", "ppo-lstm", r);
    MRL_CHECK(r.success >= 0.95f, "PPO-LSTM TMaze-20: success %.2f < 0.95", r.success);
  }
  {
    mrl_ppo_config cfg = tmaze_config(0);
    r = train("TMaze-20", 16, &cfg, 400000);
    report("TMaze-20", "ppo-mlp", r);
    MRL_CHECK(r.success <= 0.65f, "PPO-MLP TMaze-20: success %.2f is not near chance", r.success);
    MRL_CHECK(r.success >= 0.35f, "PPO-MLP TMaze-20: success %.2f below chance: broken?",
              r.success);
  }
  {
    mrl_ppo_config cfg = pendulum_config(0);
    float eval = 0.0f;
    r = train_eval("Pendulum-v1", 4, &cfg, 100000, 20, &eval);
    report("Pendulum-v1", "ppo", r);
    MRL_CHECK(eval >= -200.0f, "PPO Pendulum-v1: greedy return %.2f < -200", eval);
  }
  {
    mrl_ppo_config cfg = pendulum_config(64);
    float eval = 0.0f;
    r = train_eval("StatelessPendulum-v1", 4, &cfg, 300000, 20, &eval);
    report("StatelessPendulum-v1", "ppo-lstm", r);
    MRL_CHECK(eval >= -250.0f, "PPO-LSTM StatelessPendulum-v1: greedy return %.2f < -250", eval);
  }
  {
    static const int hidden = 32;
    mrl_ppo_config cfg = tmaze_config(0);
    cfg.net.core = mrl_core_config_user(&test_user_gru_type, &hidden);
    r = train("TMaze-20", 16, &cfg, 400000);
    report("TMaze-20", "ppo-user-gru", r);
    MRL_CHECK(r.success >= 0.95f, "PPO with a user's GRU core, TMaze-20: success %.2f < 0.95",
              r.success);
  }
  {
    static const char *const specs[2] = {"amrl:32", "fwp:8:2"};
    int k;
    for (k = 0; k < 2; k++) {
      char algo[32];
      mrl_ppo_config cfg = tmaze_config(0);
      MRL_CHECK(mrl_core_config_parse(specs[k], &cfg.net.core, NULL, 0) == MRL_OK, "parse %s",
                specs[k]);
      r = train("TMaze-20", 16, &cfg, 400000);
      snprintf(algo, sizeof algo, "ppo-%s", specs[k]);
      report("TMaze-20", algo, r);
      MRL_CHECK(r.success >= 0.95f, "PPO with core %s, TMaze-20: success %.2f < 0.95", specs[k],
                r.success);
    }
  }
  {
    mrl_ppo_config cfg = tmaze_config(0);
    cfg.net.core = mrl_core_config_dnc(8, 8, 1);
    cfg.net.core.dnc.controller_size = 32;
    cfg.anneal_lr = 0;
    r = train("TMaze-20", 16, &cfg, 250000);
    report("TMaze-20", "ppo-dnc", r);
    MRL_CHECK(r.success >= 0.95f, "PPO with the DNC core, TMaze-20: success %.2f < 0.95",
              r.success);
  }
  {
    static const char *const specs[2] = {"ftw:32:32:4", "hcam:32:4:2:8"};
    static const char *const ids[2] = {"TMaze-20", "TMaze-5"};
    int i;
    for (i = 0; i < 2; i++) {
      mrl_ppo_config cfg = tmaze_config(0);
      MRL_CHECK(mrl_core_config_parse(specs[i], &cfg.net.core, NULL, 0) == MRL_OK, "%s", specs[i]);
      r = train(ids[i], 16, &cfg, i == 0 ? 400000 : 300000);
      report(ids[i], specs[i], r);
      MRL_CHECK(r.success >= 0.95f, "PPO with the %s core, %s: success %.2f < 0.95", specs[i],
                ids[i], r.success);
    }
  }
  return mrl_test_summary("test_learning");
}
