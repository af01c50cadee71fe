/* Long seeded learning tests of issue 14's memory claims (make test-long;
 * NOT part of make test or CI: minutes of CPU). Each asserts its threshold.
 *
 * The passive T-maze (Ni et al. 2023, "When do transformers shine in RL?
 * Decoupling memory from credit assignment"; memrl_envs.h PassiveTMaze-<L>):
 * the cue is seen at the first step only, the agent must walk east on every
 * one of L steps (-1/L for each step behind) and turn into the cued arm on
 * step L + 1 (+1). What makes PPO solve it (each found by a pilot run with
 * examples/memory_benchmark.c; BENCHMARKS.md has the commands):
 *   - num_steps = L + 1. PPO replays each environment's rollout of num_steps
 *     from the core state stored at its start, so the gradient reaches the
 *     cue only when the cue and the decision fall in one rollout. The
 *     episodes last exactly L + 1 steps and every environment starts at once,
 *     so rollouts of L + 1 steps hold exactly one whole episode each (with
 *     128-step rollouts most episodes straddle two and the cue's gradient is
 *     cut: success about 0.5 to 0.57 at 8M steps).
 *   - ent_coef 0.05 (CleanRL's 0.01 lets the policy turn deterministic at the
 *     junction before the cue is used: it then always takes one arm, the
 *     value function learns which cue pays and the advantage of the only arm
 *     ever taken is 0, so success stays at 0.5).
 *   - 64 environments (16 leave too few visits of the junction per update:
 *     the walk east turns deterministic, and with it the junction's action,
 *     before either arm has been tried; the stochastic policy reaches the
 *     junction at all only once p(east)^L is not negligible).
 *   - LSTM forget-gate bias 6 at init (sigmoid(6)^100 = 0.78 of the cell
 *     kept over 100 steps).
 * The GRU (h' = (1 - z) n + z h) needs two more things: forget_bias 2 on its
 * update gate z (with 6 it writes only 0.25% of the cue into h at the first
 * step: its keep and write gates are one), and adv_std_floor 0.1 (PPO's
 * advantage normalisation divides by max(std, 0.1)): without it, once the
 * walk is deterministic and the value function exact, the advantages are
 * noise scaled up to unit size, which drowns the entropy bonus and drives
 * the junction's action deterministic before the cue is used (every GRU
 * pilot without the floor ended at success 0 or about 0.5: seeds 1-3,
 * entropy 0.05 and 0.1, 16 to 128 environments, 64 and 128 units,
 * update-gate bias 0, 2 and 6; BENCHMARKS.md).
 * Success is the training success of the last 100 episodes (the stochastic
 * policy) and, after training, the greedy policy's on 100 fresh episodes.
 * PassiveTMaze-1000 (tmaze1000-lstm-curriculum) is solved only with PPO's
 * length curriculum, from L = 10 growing by 1.5 to 1000, rollouts of one episode at
 * every level (curriculum_rollout) and entropy 0.01; it asserts the greedy
 * success on PassiveTMaze-1000 itself and that the curriculum got there
 * (BENCHMARKS.md has the failed variants, and the runs without a curriculum).
 * Cost (2026-12-06, shared 2-core machine): tmaze100-lstm 4M steps, 53 s CPU;
 * tmaze100-gru 10M steps, 111 s CPU; both reach 1.00 and 1.00;
 * tmaze1000-lstm-curriculum 6M steps, 99 s CPU, greedy 1.00 (training 0.90). */
#define MEMRL_IMPLEMENTATION
#include "../memrl_algos.h"
#include "test.h"
#include <time.h>

typedef struct long_result {
  float success, greedy_success;
  long long steps, length; /* length: the curriculum's at the end (the task's without one) */
  double cpu_seconds;
} long_result;

/* examples/memory_benchmark.c's agent with the T-maze settings above. */
static mrl_ppo_config tmaze_config(mrl_core_config core, int length) {
  mrl_ppo_config cfg = mrl_ppo_config_default();
  cfg.seed = 1;
  cfg.learning_rate = 1e-3f;
  cfg.net.encoder_sizes[0] = 64;
  cfg.net.num_encoder_layers = 1;
  cfg.shared_torso = 1;
  cfg.net.core = core;
  cfg.num_steps = length + 1;
  cfg.ent_coef = 0.05f;
  return cfg;
}

static long_result tmaze_run(int length, const char *name, const mrl_ppo_config *cfg, int num_envs,
                             long long steps) {
  char id[32];
  mrl_vecenv env, eval_env;
  mrl_ppo agent;
  mrl_episode_stats es;
  long_result res;
  clock_t c0 = clock();
  double t0 = mrl_wall_seconds();
  memset(&res, 0, sizeof res);
  snprintf(id, sizeof id, "PassiveTMaze-%d", length);
  if (mrl_vecenv_init(&env, id, num_envs, cfg->seed) != MRL_OK) {
    MRL_CHECK(0, "%s: no environment", id);
    return res;
  }
  if (mrl_ppo_init(&agent, cfg, &env) == MRL_OK) {
    MRL_CHECK(mrl_ppo_train(&agent, &env, steps, NULL, NULL) == MRL_OK, "%s: train failed", id);
    res.success = mrl_episode_stats_success_rate(&agent.runner.stats);
    res.steps = agent.runner.env_steps;
    res.length = cfg->curriculum ? agent.curriculum.length : length;
    mrl_print_final(stdout, id, name, &agent.runner.stats, agent.runner.env_steps,
                    mrl_wall_seconds() - t0);
    if (mrl_vecenv_init(&eval_env, id, num_envs, cfg->seed + 1000003u) == MRL_OK) {
      MRL_CHECK(mrl_ppo_evaluate(&agent, &eval_env, 100, 1, &es) == MRL_OK, "%s: evaluate", id);
      res.greedy_success = mrl_episode_stats_success_rate(&es);
      mrl_vecenv_free(&eval_env);
    }
    mrl_ppo_free(&agent);
  } else {
    MRL_CHECK(0, "%s: init failed: %s", id, agent.error);
  }
  mrl_vecenv_free(&env);
  res.cpu_seconds = (double)(clock() - c0) / CLOCKS_PER_SEC;
  printf("%s %s: success %.2f (last 100 training episodes), greedy %.2f, %lld steps, length "
         "%lld at the end, %.1f s CPU\n",
         id, name, res.success, res.greedy_success, res.steps, res.length, res.cpu_seconds);
  return res;
}

static void check_tmaze(int length, const char *name, const mrl_ppo_config *cfg, int num_envs,
                        long long steps) {
  long_result r = tmaze_run(length, name, cfg, num_envs, steps);
  MRL_CHECK(r.success >= 0.95f, "PPO-%s PassiveTMaze-%d: success %.2f < 0.95", name, length,
            r.success);
  MRL_CHECK(r.greedy_success >= 0.95f, "PPO-%s PassiveTMaze-%d: greedy success %.2f < 0.95", name,
            length, r.greedy_success);
}

int main(int argc, char **argv) {
  /* argv[1]: run only the test whose name it is (tmaze100-lstm, tmaze100-gru,
   * tmaze1000-lstm-curriculum) */
  const char *only = argc > 1 ? argv[1] : NULL;
  double t0 = mrl_wall_seconds();
  if (!only || strcmp(only, "tmaze100-lstm") == 0) {
    mrl_core_config core = mrl_core_config_lstm(64);
    mrl_ppo_config cfg;
    core.forget_bias = 6.0f;
    cfg = tmaze_config(core, 100);
    cfg.seed = 2;
    check_tmaze(100, "lstm:64", &cfg, 64, 4000000);
  }
  if (!only || strcmp(only, "tmaze100-gru") == 0) {
    mrl_core_config core = mrl_core_config_gru(64);
    mrl_ppo_config cfg;
    core.forget_bias = 2.0f; /* on the update gate z */
    cfg = tmaze_config(core, 100);
    cfg.adv_std_floor = 0.1f;
    check_tmaze(100, "gru:64", &cfg, 64, 10000000);
  }
  if (!only || strcmp(only, "tmaze1000-lstm-curriculum") == 0) {
    /* PassiveTMaze-1000 through PPO's length curriculum: 10, 15, 23, ..., 608,
     * 912, 1000, passing a level at 90% success over its last 100 episodes, with
     * the rollout following the level (curriculum_rollout: L + 1 steps, one
     * whole episode per rollout at every level); evaluated greedily on
     * PassiveTMaze-1000 itself. Without the curriculum PPO never leaves the
     * uniform policy here (BENCHMARKS.md). ent_coef 0.01: with 0.05 the
     * levels pass as fast but at L = 1000 the walk unlearns (a mistake there
     * costs only about 20 steps of -1/1000 within GAE's horizon, less than
     * the entropy bonus is worth). */
    mrl_core_config core = mrl_core_config_lstm(64);
    mrl_ppo_config cfg;
    long_result r;
    core.forget_bias = 6.0f;
    cfg = tmaze_config(core, 1000);
    cfg.seed = 2;
    cfg.ent_coef = 0.01f;
    cfg.curriculum = 1;
    cfg.curriculum_start = 10;
    cfg.curriculum_growth = 1.5f; /* with 2, seed 3 stops at L = 320 within 6M steps */
    cfg.curriculum_rollout = 1;
    r = tmaze_run(1000, "lstm:64 curriculum 10..1000", &cfg, 64, 6000000);
    MRL_CHECK(r.length == 1000, "PPO-LSTM PassiveTMaze-1000: the curriculum stopped at %lld",
              r.length);
    MRL_CHECK(r.greedy_success >= 0.95f, "PPO-LSTM PassiveTMaze-1000: greedy success %.2f < 0.95",
              r.greedy_success);
  }
  printf("test_long_memory: %.1f s\n", mrl_wall_seconds() - t0);
  return mrl_test_summary("test_long_memory");
}
