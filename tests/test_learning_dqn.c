/* Seeded learning tests of the DQN family (memrl_algos.h, the dqn tag).
 *
 * CleanRL's dqn.py and c51.py configurations (mrl_dqn_config_default,
 * mrl_dqn_config_c51) on CartPole-v1 with one environment; the only change is
 * the budget, which is also the schedule's length (epsilon falls from 1 to
 * 0.05 over its first half; CleanRL runs 500k steps). After training, the
 * greedy policy's mean return over 20 evaluation episodes on a vector env of
 * its own must reach 475 (CleanRL at 500k: DQN 488.7 +- 16.1, C51 481.2 +-
 * 20.5, training returns).
 *   1. DQN, 200k steps (seed 1: greedy 500.0; 175k gives 451.8), about 6 s CPU.
 *   2. C51, 275k steps (seed 1: greedy 500.0; 250k gives 444.3), about 45 s CPU
 * (the program: about 51 s CPU on the development machine).
 * Each prints its CPU time; the seeds are fixed, so a run is bitwise
 * reproducible on a given build. */
#define MEMRL_IMPLEMENTATION
#include "../memrl_algos.h"
#include "test.h"
#include <time.h>

#define DQN_STEPS 200000
#define DQN_SEED 1
#define C51_STEPS 275000
#define C51_SEED 1

static void learn(const char *name, mrl_dqn_config cfg, long long steps, uint64_t seed) {
  mrl_vecenv env, eval_env;
  mrl_dqn agent;
  mrl_episode_stats st;
  float ret = -1.0f;
  clock_t c0 = clock();
  cfg.seed = seed;
  if (mrl_vecenv_init(&env, "CartPole-v1", 1, seed) != MRL_OK ||
      mrl_vecenv_init(&eval_env, "CartPole-v1", 4, seed + 1000) != MRL_OK) {
    MRL_CHECK(0, "%s: no CartPole-v1", name);
    return;
  }
  if (mrl_dqn_init(&agent, &cfg, &env) != MRL_OK) {
    MRL_CHECK(0, "%s: init failed: %s", name, agent.error);
    return;
  }
  MRL_CHECK(mrl_dqn_train(&agent, &env, steps, NULL, NULL) == MRL_OK, "%s: train failed: %s", name,
            agent.error);
  if (mrl_dqn_evaluate(&agent, &eval_env, 20, 1, &st) == MRL_OK)
    ret = mrl_episode_stats_mean_return(&st);
  printf("%s: CartPole-v1 %lld steps, training return %.1f, greedy return %.1f over 20 episodes, "
         "%.1f s CPU\n",
         name, agent.runner.env_steps, mrl_episode_stats_mean_return(&agent.runner.stats), ret,
         (double)(clock() - c0) / CLOCKS_PER_SEC);
  MRL_CHECK(ret >= 475.0f, "%s: greedy return %.1f < 475 after %lld steps", name, ret, steps);
  mrl_dqn_free(&agent);
  mrl_vecenv_free(&env);
  mrl_vecenv_free(&eval_env);
}

int main(void) {
  learn("dqn", mrl_dqn_config_default(), DQN_STEPS, DQN_SEED);
  learn("c51", mrl_dqn_config_c51(), C51_STEPS, C51_SEED);
  return mrl_test_summary("test_learning_dqn");
}
