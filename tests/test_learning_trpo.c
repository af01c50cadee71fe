/* Seeded learning test of TRPO (memrl_algos.h >>trpo):
 *   TRPO (MLP policy and value function) on CartPole-v1 with
 *   rl-baselines3-zoo's settings (examples/trpo_cartpole.c: 2 envs x 512
 *   steps, batch 512, cg_damping 0.001, gae_lambda 0.98, 20 critic epochs):
 *   after the zoo's budget of 100k steps (99,328: 97 whole rollouts) the
 *   greedy policy's mean return over 20 evaluation episodes >= 475 (the zoo
 *   reports 500 at 100k). Seed 2; the run is bitwise reproducible on a
 *   given build (seeds 2 and 3 reach 500 at 100k, seed 1 needs 150k).
 *   About 4 s of CPU on one core. */
#define MEMRL_IMPLEMENTATION
#include "../memrl_algos.h"
#include "test.h"
#include <time.h>

int main(void) {
  mrl_trpo_config cfg = mrl_trpo_config_default();
  mrl_vecenv env, eval_env;
  mrl_episode_stats st;
  mrl_trpo agent;
  clock_t c0 = clock();
  double t0 = mrl_wall_seconds();
  float greedy = -1.0f;
  cfg.seed = 2;
  cfg.num_steps = 512;
  cfg.batch_size = 512;
  cfg.cg_damping = 0.001f;
  cfg.gae_lambda = 0.98f;
  cfg.n_critic_updates = 20;
  if (mrl_vecenv_init(&env, "CartPole-v1", 2, cfg.seed) != MRL_OK ||
      mrl_vecenv_init(&eval_env, "CartPole-v1", 4, cfg.seed + 1000) != MRL_OK) {
    MRL_CHECK(0, "CartPole-v1 vector envs");
    return mrl_test_summary("test_learning_trpo");
  }
  MRL_CHECK(mrl_trpo_init(&agent, &cfg, &env) == MRL_OK, "init: %s", agent.error);
  MRL_CHECK(mrl_trpo_train(&agent, &env, 100000, NULL, NULL) == MRL_OK, "train: %s", agent.error);
  if (mrl_trpo_evaluate(&agent, &eval_env, 20, 1, &st) == MRL_OK)
    greedy = mrl_episode_stats_mean_return(&st);
  printf("eval: env=CartPole-v1 algo=trpo greedy return %.2f over 20 episodes\n", greedy);
  mrl_print_final(stdout, "CartPole-v1", "trpo", &agent.runner.stats, agent.runner.env_steps,
                  mrl_wall_seconds() - t0);
  printf("cpu seconds %.1f\n", (double)(clock() - c0) / CLOCKS_PER_SEC);
  MRL_CHECK(greedy >= 475.0f, "TRPO on CartPole-v1: greedy return %.2f < 475 after %lld steps",
            greedy, agent.runner.env_steps);
  mrl_trpo_free(&agent);
  mrl_vecenv_free(&env);
  mrl_vecenv_free(&eval_env);
  return mrl_test_summary("test_learning_trpo");
}
