/* PPO with a feedforward (MLP) agent on CartPole-v1, CleanRL's ppo.py defaults.
 *
 *   cc -O2 -o ppo_cartpole examples/ppo_cartpole.c -lm
 *   ./ppo_cartpole [env_steps] [seed]
 *
 * Prints one progress line per iteration and the final summary line. */
#define MEMRL_IMPLEMENTATION
#include "../memrl_algos.h"

int main(int argc, char **argv) {
  long long steps = argc > 1 ? atoll(argv[1]) : 500000;
  uint64_t seed = argc > 2 ? (uint64_t)atoll(argv[2]) : 1;
  mrl_ppo_config cfg = mrl_ppo_config_default(); /* CleanRL: 4 envs x 128 steps, MLP 64-64 tanh */
  mrl_vecenv env;
  mrl_ppo agent;
  mrl_result r;
  double t0;
  cfg.seed = seed;
  if ((r = mrl_vecenv_init(&env, "CartPole-v1", 4, seed)) != MRL_OK ||
      (r = mrl_ppo_init(&agent, &cfg, &env)) != MRL_OK) {
    fprintf(stderr, "setup failed: %s\n", mrl_result_string(r));
    return 1;
  }
  t0 = mrl_wall_seconds();
  r = mrl_ppo_train(&agent, &env, steps, mrl_progress_print, NULL);
  if (r != MRL_OK) fprintf(stderr, "training failed: %s\n", mrl_result_string(r));
  mrl_print_final(stdout, "CartPole-v1", "ppo", &agent.runner.stats, agent.runner.env_steps,
                  mrl_wall_seconds() - t0);
  mrl_ppo_free(&agent);
  mrl_vecenv_free(&env);
  return r == MRL_OK ? 0 : 1;
}
