/* IMPALA with an LSTM on StatelessCartPole-v1: CartPole with the velocities
 * hidden (observation [x, theta]), so the agent must infer them from memory.
 * Actors unroll 20 steps with a copy of the parameters and send the
 * trajectories (with their behaviour log-probabilities and the LSTM state
 * before the first step) to the learner, which corrects for the lag with
 * V-trace and takes one RMSProp step per batch of 16 trajectories. One actor:
 * mean return about 470 after 1M steps (15 s on one core).
 *
 *   cc -O2 -o impala_memory examples/impala_memory.c -lm
 *   ./impala_memory [env_steps] [seed] [num_actors] [env_id]
 * With actor threads (num_actors > 1 then runs them in parallel):
 *   cc -O2 -DMRL_THREADS -o impala_memory examples/impala_memory.c -lm -pthread
 * Without MRL_THREADS, or with one actor, the actors take turns and a run is
 * bitwise reproducible for a seed.
 */
#define MEMRL_IMPLEMENTATION
#include "../memrl_algos.h"

/* The configuration of tests/test_learning_impala.c. */
static mrl_impala_config impala_memory_config(uint64_t seed, int num_actors) {
  mrl_impala_config cfg = mrl_impala_config_default();
  cfg.seed = seed;
  cfg.num_actors = num_actors;
  cfg.unroll_length = 20;
  cfg.learning_rate = 1e-2f; /* the paper's 6e-4 is tuned for Atari's much longer runs */
  cfg.gamma = 0.98f;         /* as RL Zoo's tuned agents for CartPoleNoVel */
  cfg.net.activation = MRL_ACT_RELU;
  cfg.net.num_encoder_layers = 1;
  cfg.net.encoder_sizes[0] = 64;
  cfg.net.core = mrl_core_config_lstm(64);
  return cfg;
}

int main(int argc, char **argv) {
  long long steps = argc > 1 ? atoll(argv[1]) : 1000000;
  uint64_t seed = argc > 2 ? (uint64_t)atoll(argv[2]) : 1;
  int actors = argc > 3 ? atoi(argv[3]) : 1;
  const char *id = argc > 4 ? argv[4] : "StatelessCartPole-v1";
  mrl_impala_config cfg = impala_memory_config(seed, actors);
  mrl_vecenv env;
  mrl_impala agent;
  mrl_result r;
  double t0;
  if ((r = mrl_vecenv_init(&env, id, 16, seed)) != MRL_OK) {
    fprintf(stderr, "setup failed: %s\n", mrl_result_string(r));
    return 1;
  }
  if ((r = mrl_impala_init(&agent, &cfg, &env)) != MRL_OK) {
    fprintf(stderr, "setup failed: %s\n", agent.error);
    mrl_vecenv_free(&env);
    return 1;
  }
  t0 = mrl_wall_seconds();
  r = mrl_impala_train(&agent, &env, steps, mrl_progress_print, NULL);
  if (r != MRL_OK) fprintf(stderr, "training failed: %s\n", agent.error);
  mrl_print_final(stdout, id, "impala-lstm", &agent.stats, agent.env_steps,
                  mrl_wall_seconds() - t0);
  mrl_impala_free(&agent);
  mrl_vecenv_free(&env);
  return r == MRL_OK ? 0 : 1;
}
