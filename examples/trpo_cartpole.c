/* TRPO on CartPole-v1 with rl-baselines3-zoo's settings (2 envs x 512 steps,
 * batch 512, cg_damping 0.001, gae_lambda 0.98, 20 critic epochs; the zoo
 * reaches 500 at 100k steps), exact Fisher-vector products.
 *
 *   cc -O2 -o trpo_cartpole examples/trpo_cartpole.c -lm
 *   ./trpo_cartpole [env_steps] [seed] [lstm_hidden] [env_id]
 *
 * lstm_hidden > 0 gives the policy and the value function an LSTM core
 * (recurrent TRPO), e.g. ./trpo_cartpole 300000 1 32 StatelessCartPole-v1. Prints one progress line
 * per iteration, the greedy evaluation over 20 episodes and the final summary line. */
#define MEMRL_IMPLEMENTATION
#include "../memrl_algos.h"

int main(int argc, char **argv) {
  long long steps = argc > 1 ? atoll(argv[1]) : 100000;
  uint64_t seed = argc > 2 ? (uint64_t)atoll(argv[2]) : 1;
  int lstm = argc > 3 ? atoi(argv[3]) : 0;
  const char *id = argc > 4 ? argv[4] : "CartPole-v1";
  mrl_trpo_config cfg = mrl_trpo_config_default();
  mrl_vecenv env, eval_env;
  mrl_episode_stats eval;
  mrl_trpo agent;
  mrl_result r;
  double t0;
  cfg.seed = seed;
  cfg.num_steps = 512;
  cfg.batch_size = 512;
  cfg.cg_damping = 0.001f;
  cfg.gae_lambda = 0.98f;
  cfg.n_critic_updates = 20;
  if (lstm > 0) cfg.net.core = mrl_core_config_lstm(lstm);
  if ((r = mrl_vecenv_init(&env, id, 2, seed)) != MRL_OK ||
      (r = mrl_vecenv_init(&eval_env, id, 4, seed + 1000)) != MRL_OK ||
      (r = mrl_trpo_init(&agent, &cfg, &env)) != MRL_OK) {
    fprintf(stderr, "setup failed: %s %s\n", mrl_result_string(r), agent.error);
    return 1;
  }
  t0 = mrl_wall_seconds();
  r = mrl_trpo_train(&agent, &env, steps, mrl_progress_print, NULL);
  if (r != MRL_OK) fprintf(stderr, "training failed: %s: %s\n", mrl_result_string(r), agent.error);
  if (mrl_trpo_evaluate(&agent, &eval_env, 20, 1, &eval) == MRL_OK)
    printf("greedy evaluation: mean return %.1f over 20 episodes\n",
           mrl_episode_stats_mean_return(&eval));
  mrl_print_final(stdout, id, "trpo", &agent.runner.stats, agent.runner.env_steps,
                  mrl_wall_seconds() - t0);
  mrl_trpo_free(&agent);
  mrl_vecenv_free(&env);
  mrl_vecenv_free(&eval_env);
  return r == MRL_OK ? 0 : 1;
}
