/* REINFORCE's seeded learning test (issue 16): REINFORCE with recurrent
 * policy and baseline memories (two LSTMs of 32 units, K-step advantages
 * with K = the rollout of 100 steps, whole-rollout BPTT) and the sequence-
 * length curriculum (5, 10, 20, 40, 80, 100, passing a level at 90% right
 * over 100 episodes) solves NoisySequence-100 (the class shown, with noise,
 * in the first 3 of 100 steps; named at the last): the greedy policy is
 * right on >= 90% of 100 fresh full-length episodes after 300k steps.
 * With the same budget and seed, the same agent
 *   - without the curriculum (trained on NoisySequence-100 from the start)
 *     stays at chance: <= 0.65 (0.52 even after 1M steps, measured with
 *     examples/reinforce_sequence.c);
 *   - without memory (core none, curriculum on) stays at chance: <= 0.65.
 * And the options of the section solve it too (>= 0.9): lambda-return
 * advantages (lambda 0.95) instead of K-step ones, and BPTT truncated to 20
 * steps (the class must be held for 97: the curriculum teaches the memory to
 * hold it at short lengths, where 20 steps of gradient reach the signal).
 * Seeds 1-4 all pass (success 1.00 with the curriculum, 0.44-0.56 without).
 * The configuration is examples/reinforce_sequence.c's; about 3.5 s of CPU in
 * total (-O2, one core; 10 s of wall time on a shared machine). Seeded:
 * bitwise reproducible on a given build. */
#define MEMRL_IMPLEMENTATION
#include "../memrl_algos.h"
#include "test.h"

/* Greedy success rate on 100 fresh NoisySequence-100 episodes after training. */
static float run(int curriculum, int memory, int use_lambda, int bptt_len, uint64_t seed,
                 long long steps) {
  mrl_vecenv env, eval_env;
  mrl_reinforce agent;
  mrl_episode_stats eval;
  mrl_reinforce_config cfg = mrl_reinforce_config_default();
  float success = -1.0f;
  cfg.seed = seed;
  cfg.num_steps = 100;
  cfg.learning_rate = 3e-3f;
  cfg.net.num_encoder_layers = 0;
  cfg.value_net.num_encoder_layers = 0;
  cfg.net.core = memory ? mrl_core_config_lstm(32) : mrl_core_config_default();
  cfg.value_net.core = cfg.net.core;
  cfg.curriculum = curriculum;
  cfg.use_lambda = use_lambda;
  cfg.bptt_len = bptt_len;
  if (mrl_vecenv_init(&env, "NoisySequence-100", 16, seed) != MRL_OK) return -1.0f;
  if (mrl_reinforce_init(&agent, &cfg, &env) == MRL_OK) {
    MRL_CHECK(mrl_reinforce_train(&agent, &env, steps, NULL, NULL) == MRL_OK, "train: %s",
              agent.error);
    MRL_CHECK(!curriculum || !memory || agent.curriculum.length == 100,
              "the curriculum stopped at length %lld", agent.curriculum.length);
    if (mrl_vecenv_init(&eval_env, "NoisySequence-100", 10, 777) == MRL_OK) {
      MRL_CHECK(mrl_reinforce_evaluate(&agent, &eval_env, 100, 1, &eval) == MRL_OK, "evaluate");
      success = mrl_episode_stats_success_rate(&eval);
      mrl_vecenv_free(&eval_env);
    }
  } else {
    MRL_CHECK(0, "init: %s", agent.error);
  }
  mrl_reinforce_free(&agent);
  mrl_vecenv_free(&env);
  return success;
}

int main(int argc, char **argv) {
  long long steps = argc > 1 ? atoll(argv[1]) : 300000;
  uint64_t seed = argc > 2 ? (uint64_t)atoll(argv[2]) : 1;
  double t0 = mrl_wall_seconds();
  float with = run(1, 1, 0, 0, seed, steps), without_curriculum = run(0, 1, 0, 0, seed, steps),
        without_memory = run(1, 0, 0, 0, seed, steps), lambda = run(1, 1, 1, 0, seed, steps),
        truncated = run(1, 1, 0, 20, seed, steps);
  printf("NoisySequence-100 after %lld steps, greedy success over 100 episodes: curriculum + "
         "LSTM %.2f, LSTM without curriculum %.2f, curriculum without memory %.2f, with "
         "lambda-returns %.2f, with BPTT truncated to 20 steps %.2f (%.1f s)\n",
         steps, with, without_curriculum, without_memory, lambda, truncated,
         mrl_wall_seconds() - t0);
  MRL_CHECK(with >= 0.9f, "REINFORCE-LSTM with the curriculum: success %.2f < 0.9", with);
  MRL_CHECK(lambda >= 0.9f, "the same with lambda-return advantages: success %.2f < 0.9", lambda);
  MRL_CHECK(truncated >= 0.9f, "the same with BPTT truncated to 20 steps: success %.2f < 0.9",
            truncated);
  MRL_CHECK(without_curriculum >= 0.0f && without_curriculum <= 0.65f,
            "without the curriculum: success %.2f (expected chance, <= 0.65)", without_curriculum);
  MRL_CHECK(without_memory >= 0.0f && without_memory <= 0.65f,
            "without memory: success %.2f (expected chance, <= 0.65)", without_memory);
  return mrl_test_summary("test_learning_reinforce");
}
