/* Training throughput: environment steps per second of whole PPO training
 * iterations (acting, GAE and the update), feedforward on CartPole-v1 and
 * LSTM on TMaze-20, plus acting throughput of mrl_ppo_act. No reference
 * implementation runs here (ref=none); BENCHMARKS.md records the figures.
 *
 *   cc -O2 -o bench_train bench/bench_train.c -lm */
#define MEMRL_IMPLEMENTATION
#include "../memrl_algos.h"

static void bench_train(const char *name, const char *id, int num_envs, mrl_ppo_config cfg,
                        long long steps) {
  mrl_vecenv env;
  mrl_ppo agent;
  double t0, dt;
  if (mrl_vecenv_init(&env, id, num_envs, 1) != MRL_OK) return;
  if (mrl_ppo_init(&agent, &cfg, &env) != MRL_OK) return;
  mrl_ppo_train(&agent, &env, (long long)num_envs * cfg.num_steps, NULL, NULL); /* warm-up */
  t0 = mrl_wall_seconds();
  mrl_ppo_train(&agent, &env, steps, NULL, NULL);
  dt = mrl_wall_seconds() - t0;
  printf("BENCH name=%s value=%.0f unit=steps/s ref=none ref_value=0 speedup=0\n", name,
         (double)steps / dt);
  {
    /* deployment: one observation at a time, recurrent state carried */
    float obs[16] = {0}, state[1024] = {0}, action = 0.0f, start = 1.0f;
    int i, n = 20000;
    t0 = mrl_wall_seconds();
    for (i = 0; i < n; i++) {
      mrl_ppo_act(&agent, obs, 1, &start, state, 1, NULL, &action);
      start = 0.0f;
    }
    dt = mrl_wall_seconds() - t0;
    printf("BENCH name=%s_act value=%.0f unit=actions/s ref=none ref_value=0 speedup=0\n", name,
           n / dt);
  }
  mrl_ppo_free(&agent);
  mrl_vecenv_free(&env);
}

int main(void) {
  mrl_ppo_config mlp = mrl_ppo_config_default(), lstm = mrl_ppo_config_default();
  bench_train("ppo_mlp_cartpole_train", "CartPole-v1", 4, mlp, 4 * 128 * 40);
  lstm.learning_rate = 1e-3f;
  lstm.net.encoder_sizes[0] = 32;
  lstm.net.num_encoder_layers = 1;
  lstm.shared_torso = 1;
  lstm.net.core = mrl_core_config_lstm(32);
  bench_train("ppo_lstm_tmaze_train", "TMaze-20", 16, lstm, 16 * 128 * 10);
  return 0;
}
