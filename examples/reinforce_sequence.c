/* REINFORCE with recurrent policy and baseline memories (two LSTMs) learns
 * NoisySequence-100: the class is shown (with noise) in the first 3 of 100
 * steps and must be named at the last. A curriculum starts the agent on
 * short sequences and doubles their length each time it gets 90% right
 * (about 3 s; without the curriculum, or without memory, it stays at chance).
 *   cc -O2 -o reinforce_sequence examples/reinforce_sequence.c -lm && ./reinforce_sequence
 * Arguments: [env_steps (300000)] [curriculum 1|0] [core spec (lstm:32)] [env id]
 * e.g. ./reinforce_sequence 300000 0 none  (no curriculum, no memory: chance) */
#define MEMRL_IMPLEMENTATION
#include "../memrl_algos.h"

int main(int argc, char **argv) {
  long long steps = argc > 1 ? atoll(argv[1]) : 300000;
  int curriculum = argc > 2 ? atoi(argv[2]) : 1;
  const char *core = argc > 3 ? argv[3] : "lstm:32";
  const char *id = argc > 4 ? argv[4] : "NoisySequence-100";
  double t0 = mrl_wall_seconds();
  char error[MRL_ERROR_SIZE];
  mrl_vecenv env, eval_env;
  mrl_reinforce agent;
  mrl_episode_stats eval;
  mrl_reinforce_config cfg = mrl_reinforce_config_default();
  cfg.num_steps = 100;
  cfg.learning_rate = 3e-3f;
  cfg.net.num_encoder_layers = 0; /* the observation goes straight into the memory */
  cfg.value_net.num_encoder_layers = 0;
  cfg.curriculum = curriculum;
  if (mrl_core_config_parse(core, &cfg.net.core, error, sizeof error) != MRL_OK)
    return puts(error), 1;
  cfg.value_net.core = cfg.net.core; /* m^V: a memory of its own, same kind */
  if (mrl_vecenv_init(&env, id, 16, 1) != MRL_OK) return puts("unknown env id"), 1;
  if (mrl_reinforce_init(&agent, &cfg, &env) != MRL_OK) return puts(agent.error), 1;
  if (mrl_reinforce_train(&agent, &env, steps, mrl_progress_print, NULL) != MRL_OK)
    return puts(agent.error), 1;
  /* greedy answers on the full-length task, fresh episodes */
  mrl_vecenv_init(&eval_env, id, 10, 12345);
  mrl_reinforce_evaluate(&agent, &eval_env, 100, 1, &eval);
  printf("evaluation on %s: success %.2f over 100 episodes (chance 0.5)\n", id,
         mrl_episode_stats_success_rate(&eval));
  mrl_print_final(stdout, id, curriculum ? "reinforce-curriculum" : "reinforce", &eval,
                  agent.runner.env_steps, mrl_wall_seconds() - t0);
  mrl_reinforce_free(&agent);
  mrl_vecenv_free(&env);
  mrl_vecenv_free(&eval_env);
  return 0;
}
