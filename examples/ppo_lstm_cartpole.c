/* PPO-LSTM on StatelessCartPole-v1: CartPole with the velocities hidden
 * (observation [x, theta]), so the agent must infer them from memory.
 * Hyperparameters follow RL Zoo's tuned RecurrentPPO for CartPoleNoVel-v1:
 * 8 envs x 32 steps, one minibatch, 20 epochs, lr 1e-3 and clip range 0.2
 * both annealed to 0, gamma 0.98, lambda 0.8, no entropy bonus, no value-loss
 * clipping (SB3's default), ReLU, separate actor and critic LSTMs of 64 with
 * [64] heads, PyTorch default initialisation, observation and reward
 * normalisation (VecNormalize). Reaches a mean return of 500 in 200k steps.
 *
 *   cc -O2 -o ppo_lstm_cartpole examples/ppo_lstm_cartpole.c -lm
 *   ./ppo_lstm_cartpole [env_steps] [seed] [env_id]
 */
#define MEMRL_IMPLEMENTATION
#include "../memrl_algos.h"

int main(int argc, char **argv) {
  long long steps = argc > 1 ? atoll(argv[1]) : 200000;
  uint64_t seed = argc > 2 ? (uint64_t)atoll(argv[2]) : 1;
  const char *id = argc > 3 ? argv[3] : "StatelessCartPole-v1";
  mrl_ppo_config cfg = mrl_ppo_config_default();
  mrl_vecenv env;
  mrl_ppo agent;
  mrl_result r;
  double t0;
  cfg.seed = seed;
  cfg.num_steps = 32;
  cfg.num_minibatches = 1;
  cfg.update_epochs = 20;
  cfg.learning_rate = 1e-3f;
  cfg.gamma = 0.98f;
  cfg.gae_lambda = 0.8f;
  cfg.ent_coef = 0.0f;
  cfg.net.activation = MRL_ACT_RELU;
  cfg.orthogonal_init = 0;
  cfg.net.num_encoder_layers = 0;
  cfg.net.core = mrl_core_config_lstm(64);
  cfg.net.head_sizes[0] = 64;
  cfg.net.num_head_layers = 1;
  cfg.normalize_obs = 1;    /* RL Zoo's normalize: true is VecNormalize: */
  cfg.normalize_reward = 1; /* observations and rewards */
  cfg.anneal_clip = 1;      /* clip_range lin_0.2 */
  cfg.clip_vloss = 0;       /* SB3 clips no value loss by default */
  if ((r = mrl_vecenv_init(&env, id, 8, seed)) != MRL_OK ||
      (r = mrl_ppo_init(&agent, &cfg, &env)) != MRL_OK) {
    fprintf(stderr, "setup failed: %s\n", mrl_result_string(r));
    return 1;
  }
  t0 = mrl_wall_seconds();
  r = mrl_ppo_train(&agent, &env, steps, mrl_progress_print, NULL);
  if (r != MRL_OK) fprintf(stderr, "training failed: %s\n", mrl_result_string(r));
  mrl_print_final(stdout, id, "ppo-lstm", &agent.runner.stats, agent.runner.env_steps,
                  mrl_wall_seconds() - t0);
  mrl_ppo_free(&agent);
  mrl_vecenv_free(&env);
  return r == MRL_OK ? 0 : 1;
}
