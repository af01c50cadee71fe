/* Seeded learning tests of TRPO (memrl_algos.h >>trpo), with
 * rl-baselines3-zoo's CartPole-v1 settings (examples/trpo_cartpole.c: 2 envs
 * x 512 steps, batch 512, cg_damping 0.001, gae_lambda 0.98, 20 critic
 * epochs); each run is bitwise reproducible on a given build.
 *   1. TRPO (MLP policy and value function) on CartPole-v1: after the zoo's
 *      budget of 100k steps (99,328: 97 whole rollouts) the greedy policy's
 *      mean return over 20 evaluation episodes >= 475 (the zoo reports 500
 *      at 100k). Seed 2 (seeds 2 and 3 reach 500 at 100k, seed 1 needs
 *      150k). About 3 s of CPU on one core.
 *   2. Recurrent TRPO (LSTM of 32 units in the policy and in the value
 *      function, exact Fisher-vector products through time) on
 *      StatelessCartPole-v1 (no velocities: they must be inferred from
 *      memory): after 300k steps (299,008) the greedy return >= 400 (reaches
 *      500). Seed 1. About 35 s of CPU on one core. */
#define MEMRL_IMPLEMENTATION
#include "../memrl_algos.h"
#include "test.h"
#include <time.h>

static float train_greedy(const char *id, int lstm, uint64_t seed, long long steps) {
  mrl_trpo_config cfg = mrl_trpo_config_default();
  mrl_vecenv env, eval_env;
  mrl_episode_stats st;
  mrl_trpo agent;
  clock_t c0 = clock();
  double t0 = mrl_wall_seconds();
  float greedy = -1.0f;
  cfg.seed = seed;
  cfg.num_steps = 512;
  cfg.batch_size = 512;
  cfg.cg_damping = 0.001f;
  cfg.gae_lambda = 0.98f;
  cfg.n_critic_updates = 20;
  if (lstm) cfg.net.core = mrl_core_config_lstm(lstm);
  if (mrl_vecenv_init(&env, id, 2, cfg.seed) != MRL_OK ||
      mrl_vecenv_init(&eval_env, id, 4, cfg.seed + 1000) != MRL_OK) {
    MRL_CHECK(0, "%s vector envs", id);
    return greedy;
  }
  MRL_CHECK(mrl_trpo_init(&agent, &cfg, &env) == MRL_OK, "init: %s", agent.error);
  MRL_CHECK(mrl_trpo_train(&agent, &env, steps, NULL, NULL) == MRL_OK, "train: %s", agent.error);
  if (mrl_trpo_evaluate(&agent, &eval_env, 20, 1, &st) == MRL_OK)
    greedy = mrl_episode_stats_mean_return(&st);
  printf("eval: env=%s algo=trpo%s greedy return %.2f over 20 episodes (cpu %.1f s)\n", id,
         lstm ? "-lstm" : "", greedy, (double)(clock() - c0) / CLOCKS_PER_SEC);
  mrl_print_final(stdout, id, lstm ? "trpo-lstm" : "trpo", &agent.runner.stats,
                  agent.runner.env_steps, mrl_wall_seconds() - t0);
  mrl_trpo_free(&agent);
  mrl_vecenv_free(&env);
  mrl_vecenv_free(&eval_env);
  return greedy;
}

int main(void) {
  float r = train_greedy("CartPole-v1", 0, 2, 100000);
  MRL_CHECK(r >= 475.0f, "TRPO on CartPole-v1: greedy return %.2f < 475 after 100k steps", r);
  r = train_greedy("StatelessCartPole-v1", 32, 1, 300000);
  MRL_CHECK(r >= 400.0f, "TRPO-LSTM on StatelessCartPole-v1: greedy return %.2f < 400 after 300k",
            r);
  return mrl_test_summary("test_learning_trpo");
}
