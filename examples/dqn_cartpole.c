/* DQN on CartPole-v1 with CleanRL's dqn.py defaults (or C51 with c51.py's).
 *
 *   cc -O2 -o dqn_cartpole examples/dqn_cartpole.c -lm
 *   ./dqn_cartpole [env_steps] [seed] [dqn|c51|rainbow]
 *
 * env_steps (default 200000) is also the schedule's length: epsilon falls from
 * 1 to 0.05 over its first half (CleanRL runs 500000). "rainbow" adds double
 * Q, a dueling head, 3-step returns and prioritised replay to DQN. Prints a
 * progress line every 10000 steps, the greedy policy's return over 20
 * evaluation episodes and the final summary line. */
#define MEMRL_IMPLEMENTATION
#include "../memrl_algos.h"

int main(int argc, char **argv) {
  long long steps = argc > 1 ? atoll(argv[1]) : 200000;
  uint64_t seed = argc > 2 ? (uint64_t)atoll(argv[2]) : 1;
  const char *variant = argc > 3 ? argv[3] : "dqn";
  int c51 = strcmp(variant, "c51") == 0;
  mrl_dqn_config cfg = c51 ? mrl_dqn_config_c51() : mrl_dqn_config_default();
  mrl_vecenv env, eval_env;
  mrl_episode_stats eval;
  mrl_dqn agent;
  mrl_result r;
  double t0;
  cfg.seed = seed;
  cfg.progress_interval = 10000;
  if (strcmp(variant, "rainbow") == 0) {
    cfg.double_q = 1;
    cfg.dueling = 1;
    cfg.n_step = 3;
    cfg.prioritized = 1;
  }
  if ((r = mrl_vecenv_init(&env, "CartPole-v1", 1, seed)) != MRL_OK ||
      (r = mrl_vecenv_init(&eval_env, "CartPole-v1", 4, seed + 1000)) != MRL_OK) {
    fprintf(stderr, "setup failed: %s\n", mrl_result_string(r));
    return 1;
  }
  if ((r = mrl_dqn_init(&agent, &cfg, &env)) != MRL_OK) {
    fprintf(stderr, "setup failed: %s\n", agent.error);
    return 1;
  }
  t0 = mrl_wall_seconds();
  r = mrl_dqn_train(&agent, &env, steps, mrl_progress_print, NULL);
  if (r != MRL_OK) fprintf(stderr, "training failed: %s\n", agent.error);
  if (mrl_dqn_evaluate(&agent, &eval_env, 20, 1, &eval) == MRL_OK)
    printf("greedy evaluation: mean return %.1f over 20 episodes\n",
           mrl_episode_stats_mean_return(&eval));
  mrl_print_final(stdout, "CartPole-v1", c51 ? "c51" : "dqn", &agent.runner.stats,
                  agent.runner.env_steps, mrl_wall_seconds() - t0);
  mrl_dqn_free(&agent);
  mrl_vecenv_free(&env);
  mrl_vecenv_free(&eval_env);
  return r == MRL_OK ? 0 : 1;
}
