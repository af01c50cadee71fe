/* Seeded learning tests of IMPALA (issue 16); bitwise reproducible on a given
 * build (synchronous: one actor).
 *   1. IMPALA with an LSTM (examples/impala_memory.c's configuration) on
 *      StatelessCartPole-v1, where the velocities must be remembered: mean
 *      return of the last 100 training episodes >= 400 after 1M steps
 *      (about 15 s on one core).
 *   2. PopArt, multi-task, two tasks whose rewards differ in scale by 1000x
 *      and whose goals conflict: CartPole-v1 (+1 per step: keep the pole up)
 *      in 8 environments and the same environment with every reward
 *      multiplied by -1000 (the reward_scale wrapper: -1000 per step, so end
 *      the episode fast) in 8 more; both with the prev_action_reward wrapper,
 *      so the previous reward in the observation tells the tasks apart, and
 *      one baseline output per task. With PopArt both are learned after 600k
 *      steps: task 0's evaluation return >= 400 and task 1's episodes
 *      <= 15 steps (a random policy's last about 22, the fastest fall about 9).
 *      Without PopArt (the same agent, unnormalised baseline) the 1000x task
 *      dominates the shared network and task 0 visibly fails (return < 200:
 *      the agent drops the pole there too). About 2 s each.
 *   3. PPO with cfg.popart (CleanRL's defaults otherwise) on CartPole-v1 with
 *      rewards x1000: mean episode length of the last 100 >= 475 after 200k
 *      steps (reaches 500; without PopArt 286, and 318 on the unscaled task). */
#define MEMRL_IMPLEMENTATION
#include "../memrl_algos.h"
#include "test.h"

static mrl_impala_config lstm_config(void) {
  mrl_impala_config cfg = mrl_impala_config_default();
  cfg.seed = 1;
  cfg.unroll_length = 20;
  cfg.learning_rate = 1e-2f;
  cfg.gamma = 0.98f;
  cfg.net.activation = MRL_ACT_RELU;
  cfg.net.num_encoder_layers = 1;
  cfg.net.encoder_sizes[0] = 64;
  cfg.net.core = mrl_core_config_lstm(64);
  return cfg;
}

static void test_lstm_stateless_cartpole(void) {
  mrl_vecenv env;
  mrl_impala a;
  mrl_impala_config cfg = lstm_config();
  double t0 = mrl_wall_seconds();
  float ret;
  if (mrl_vecenv_init(&env, "StatelessCartPole-v1", 16, cfg.seed) != MRL_OK ||
      mrl_impala_init(&a, &cfg, &env) != MRL_OK) {
    MRL_CHECK(0, "impala-lstm: setup");
    return;
  }
  MRL_CHECK(mrl_impala_train(&a, &env, 1000000, NULL, NULL) == MRL_OK, "impala-lstm: train (%s)",
            a.error);
  ret = mrl_episode_stats_mean_return(&a.stats);
  mrl_print_final(stdout, "StatelessCartPole-v1", "impala-lstm", &a.stats, a.env_steps,
                  mrl_wall_seconds() - t0);
  MRL_CHECK(ret >= 400.0f, "impala-lstm on StatelessCartPole-v1: return %.1f < 400", ret);
  mrl_impala_free(&a);
  mrl_vecenv_free(&env);
}

#define TASK0 "CartPole-v1|prev_action_reward"
#define TASK1 "CartPole-v1|reward_scale:-1000|prev_action_reward"

/* Trains on 8 + 8 environments of the two tasks; each task's evaluation
 * (sampled actions, 20 episodes): task 0's return, task 1's episode length. */
static void multitask(int popart, float *task0_return, float *task1_length) {
  mrl_vecenv env, e0, e1;
  mrl_env *envs[16];
  mrl_impala a;
  mrl_impala_config cfg = mrl_impala_config_default();
  mrl_episode_stats st;
  double t0 = mrl_wall_seconds();
  int i;
  *task0_return = *task1_length = -1.0f;
  cfg.seed = 3;
  cfg.learning_rate = 1e-2f;
  cfg.gamma = 0.98f;
  cfg.net.activation = MRL_ACT_RELU;
  cfg.num_tasks = 2; /* envs 0-7: task 0, 8-15: task 1 */
  cfg.popart = popart;
  for (i = 0; i < 16; i++) envs[i] = mrl_env_make(i < 8 ? TASK0 : TASK1);
  if (mrl_vecenv_init_envs(&env, envs, 16, cfg.seed) != MRL_OK ||
      mrl_impala_init(&a, &cfg, &env) != MRL_OK) {
    MRL_CHECK(0, "popart multitask: setup");
    return;
  }
  MRL_CHECK(a.env_task[7] == 0 && a.env_task[8] == 1, "popart multitask: tasks by block");
  MRL_CHECK(mrl_impala_train(&a, &env, 600000, NULL, NULL) == MRL_OK, "multitask: train (%s)",
            a.error);
  if (mrl_vecenv_init(&e0, TASK0, 4, 77) == MRL_OK &&
      mrl_impala_evaluate(&a, &e0, 20, 0, &st) == MRL_OK)
    *task0_return = mrl_episode_stats_mean_return(&st);
  if (mrl_vecenv_init(&e1, TASK1, 4, 77) == MRL_OK &&
      mrl_impala_evaluate(&a, &e1, 20, 0, &st) == MRL_OK)
    *task1_length = mrl_episode_stats_mean_length(&st);
  printf("popart %d: task 0 (+1 per step) return %.1f; task 1 (-1000 per step) episode length "
         "%.1f; sigma %.4g / %.4g; %.1f s\n",
         popart, *task0_return, *task1_length, popart ? mrl_popart_sigma(&a.popart, 0) : 1.0f,
         popart ? mrl_popart_sigma(&a.popart, 1) : 1.0f, mrl_wall_seconds() - t0);
  mrl_impala_free(&a);
  mrl_vecenv_free(&env);
  mrl_vecenv_free(&e0);
  mrl_vecenv_free(&e1);
}

static void test_popart_multitask(void) {
  float p0, p1, n0, n1;
  multitask(1, &p0, &p1);
  multitask(0, &n0, &n1);
  MRL_CHECK(p0 >= 400.0f && p1 > 0.0f && p1 <= 15.0f,
            "PopArt learns both tasks (task 0 return %.1f, task 1 length %.1f)", p0, p1);
  MRL_CHECK(n0 >= 0.0f && n0 < 200.0f, "without PopArt task 0 fails (return %.1f)", n0);
}

static void test_ppo_popart_scaled(void) {
  mrl_vecenv env;
  mrl_ppo a;
  mrl_ppo_config cfg = mrl_ppo_config_default();
  float len;
  cfg.popart = 1;
  if (mrl_vecenv_init(&env, "CartPole-v1|reward_scale:1000", 4, 1) != MRL_OK ||
      mrl_ppo_init(&a, &cfg, &env) != MRL_OK) {
    MRL_CHECK(0, "ppo popart: setup");
    return;
  }
  MRL_CHECK(mrl_ppo_train(&a, &env, 200000, NULL, NULL) == MRL_OK, "ppo popart: train");
  len = mrl_episode_stats_mean_length(&a.runner.stats);
  printf("ppo popart on CartPole-v1 x1000: mean length %.1f, sigma %.4g\n", len,
         mrl_popart_sigma(&a.popart, 0));
  MRL_CHECK(len >= 475.0f, "ppo popart on CartPole-v1 x1000: mean length %.1f < 475", len);
  mrl_ppo_free(&a);
  mrl_vecenv_free(&env);
}

int main(void) {
  test_popart_multitask();
  test_lstm_stateless_cartpole();
  test_ppo_popart_scaled();
  return mrl_test_summary("test_learning_impala");
}
