/* A2C on CartPole-v1 with Stable-Baselines3's defaults and rl-baselines3-zoo's
 * settings (8 environments x 5 steps, RMSprop lr 7e-4, MLP 64-64 tanh, ent_coef 0),
 * then the greedy policy evaluated on 20 fresh episodes.
 *
 *   cc -O2 -o a2c_cartpole examples/a2c_cartpole.c -lm
 *   ./a2c_cartpole [env_steps] [seed]
 *
 * Prints a progress line every 100 updates and the final summary line. */
#define MEMRL_IMPLEMENTATION
#include "../memrl_algos.h"

int main(int argc, char **argv) {
  long long steps = argc > 1 ? atoll(argv[1]) : 500000;
  uint64_t seed = argc > 2 ? (uint64_t)atoll(argv[2]) : 1;
  mrl_a2c_config cfg = mrl_a2c_config_default();
  mrl_vecenv env, eval_env;
  mrl_episode_stats greedy;
  mrl_a2c agent;
  mrl_result r;
  double t0;
  cfg.seed = seed;
  if ((r = mrl_vecenv_init(&env, "CartPole-v1", 8, seed)) != MRL_OK ||
      (r = mrl_vecenv_init(&eval_env, "CartPole-v1", 4, seed + 1000)) != MRL_OK ||
      (r = mrl_a2c_init(&agent, &cfg, &env)) != MRL_OK) {
    fprintf(stderr, "setup failed: %s %s\n", mrl_result_string(r), agent.error);
    return 1;
  }
  t0 = mrl_wall_seconds();
  r = mrl_a2c_train(&agent, &env, steps, mrl_progress_print, NULL);
  if (r != MRL_OK) fprintf(stderr, "training failed: %s (%s)\n", mrl_result_string(r), agent.error);
  if (r == MRL_OK && mrl_a2c_evaluate(&agent, &eval_env, 20, 1, &greedy) == MRL_OK)
    printf("greedy: return %.1f over 20 episodes\n", mrl_episode_stats_mean_return(&greedy));
  mrl_print_final(stdout, "CartPole-v1", "a2c", &agent.runner.stats, agent.runner.env_steps,
                  mrl_wall_seconds() - t0);
  mrl_a2c_free(&agent);
  mrl_vecenv_free(&env);
  mrl_vecenv_free(&eval_env);
  return r == MRL_OK ? 0 : 1;
}
