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
 *      (success <= 0.65): the memory is what solves the task. */
#define MEMRL_IMPLEMENTATION
#include "../memrl_algos.h"
#include "test.h"

typedef struct result {
  float mean_return, success;
  long long steps;
  double seconds;
} result;

static result train(const char *id, int num_envs, const mrl_ppo_config *cfg, long long steps) {
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
  return mrl_test_summary("test_learning");
}
