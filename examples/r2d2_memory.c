/* R2D2 (recurrent replay DQN) on a memory task, with any memory core.
 *
 *   cc -O2 -o r2d2_memory examples/r2d2_memory.c -lm
 *   ./r2d2_memory [env_id] [core] [env_steps] [seed] [threads] [actors]
 *
 * threads 2 puts the learner on a thread of its own (build with
 * cc -O2 -DMRL_THREADS -pthread -o r2d2_memory examples/r2d2_memory.c -lm);
 * actors N (2, 4, 8 or 16; with threads 2) adds Ape-X's N actor threads, each
 * stepping 16/N of the environments with its own epsilon and parameter copy:
 *   ./r2d2_memory TMaze-20 lstm:32 60000 1 2 2
 *
 * Defaults: TMaze-20, "lstm:32", 60000 steps, seed 1. core is a spec of
 * mrl_core_config_parse ("none", "gru:64", "lstm:32:2", ...). Sized for a
 * CPU and small tasks (the paper's own values are mrl_r2d2_config_default's,
 * apart from those set here): 16 environments exploring with Ape-X's
 * epsilons, a 32-unit relu encoder, sequences of 20 cut every 10 after a
 * burn-in of 10, batches of 16 sequences, one update per 16 env steps,
 * learning rate 1e-3, the target network copied every 250 updates, an LSTM's
 * forget-gate bias 1 (mrl_r2d2_config_default's, Sonnet's default). Prints a
 * progress line every 2000 steps, then the final line. */
#define MEMRL_IMPLEMENTATION
#include "../memrl_algos.h"

int main(int argc, char **argv) {
  const char *id = argc > 1 ? argv[1] : "TMaze-20";
  const char *core = argc > 2 ? argv[2] : "lstm:32";
  long long steps = argc > 3 ? atoll(argv[3]) : 60000;
  uint64_t seed = argc > 4 ? (uint64_t)atoll(argv[4]) : 1;
  int threads = argc > 5 ? atoi(argv[5]) : 1;
  int actors = argc > 6 ? atoi(argv[6]) : 1;
  char err[256], algo[64];
  mrl_r2d2_config cfg = mrl_r2d2_config_default();
  mrl_vecenv env;
  mrl_r2d2 agent;
  mrl_result r;
  double t0;
  if (mrl_core_config_parse(core, &cfg.net.core, err, sizeof err) != MRL_OK) {
    fprintf(stderr, "core %s: %s\n", core, err);
    return 1;
  }
  if (cfg.net.core.kind == MRL_CORE_LSTM) cfg.net.core.forget_bias = 1.0f; /* as the default's */
  cfg.seed = seed;
  cfg.num_threads = threads;
  cfg.num_actors = actors;
  cfg.net.encoder_sizes[0] = 32;
  cfg.learning_rate = 1e-3f;
  cfg.batch_size = 16;
  cfg.replay.seq_len = 40;
  cfg.replay.overlap = 20;
  cfg.replay.burn_in = 10;
  cfg.update_every = 16;
  cfg.target_period = 250;
  if ((r = mrl_vecenv_init(&env, id, 16, seed)) != MRL_OK) {
    fprintf(stderr, "%s: %s\n", id, mrl_result_string(r));
    return 1;
  }
  if ((r = mrl_r2d2_init(&agent, &cfg, &env)) != MRL_OK) {
    fprintf(stderr, "r2d2: %s\n", agent.error);
    mrl_vecenv_free(&env);
    return 1;
  }
  t0 = mrl_wall_seconds();
  r = mrl_r2d2_train(&agent, &env, steps, mrl_progress_print, NULL);
  if (r != MRL_OK) fprintf(stderr, "training failed: %s (%s)\n", mrl_result_string(r), agent.error);
  snprintf(algo, sizeof algo, "r2d2-%s", core);
  mrl_print_final(stdout, id, algo, &agent.runner.stats, agent.runner.env_steps,
                  mrl_wall_seconds() - t0);
  mrl_r2d2_free(&agent);
  mrl_vecenv_free(&env);
  return r == MRL_OK ? 0 : 1;
}
