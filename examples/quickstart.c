/* PPO with an LSTM memory learns TMaze-20 (the cue that says which arm holds
 * the goal is shown only at the start of the corridor); the agent is saved,
 * loaded into a fresh one and deployed step by step with its memory.
 *   cc -O2 -o quickstart examples/quickstart.c -lm && ./quickstart */
#define MEMRL_IMPLEMENTATION
#include "../memrl_algos.h"

int main(void) {
  mrl_vecenv env;
  mrl_ppo agent, loaded;
  double t0 = mrl_wall_seconds();
  mrl_ppo_config cfg = mrl_ppo_config_default(); /* CleanRL's ppo.py defaults */
  cfg.learning_rate = 1e-3f;
  cfg.net.encoder_sizes[0] = 32;
  cfg.net.num_encoder_layers = 1;
  cfg.net.core = mrl_core_config_lstm(32); /* the memory */
  cfg.shared_torso = 1;
  mrl_vecenv_init(&env, "TMaze-20", 16, 1);
  if (mrl_ppo_init(&agent, &cfg, &env) != MRL_OK) return puts(agent.error), 1; /* says why */
  mrl_ppo_train(&agent, &env, 400000, mrl_progress_print, NULL);

  /* the whole agent in one file; a fresh agent of the same config loads it */
  mrl_ppo_save(&agent, "tmaze.safetensors", &env);
  mrl_ppo_init(&loaded, &cfg, &env);
  if (mrl_ppo_load(&loaded, "tmaze.safetensors", NULL) != MRL_OK) return puts(loaded.error), 1;

  /* deployment: one step at a time, no gradients, no heap allocation */
  mrl_env *game = mrl_env_make("TMaze-20");
  float obs[3], reward, action, start; /* TMaze's observation: 3 floats */
  float *state = (float *)calloc((size_t)mrl_ppo_state_dim(&loaded), sizeof(float));
  int episode, terminated, truncated, wins = 0;
  for (episode = 0; episode < 100; episode++) {
    mrl_env_reset(game, 1000 + (uint64_t)episode, obs);
    start = 1.0f; /* a new episode: the memory is reset before this step */
    do {
      mrl_ppo_act(&loaded, obs, 1, &start, state, /*greedy=*/1, NULL, &action);
      start = 0.0f;
      mrl_env_step(game, &action, obs, &reward, &terminated, &truncated);
    } while (!terminated && !truncated);
    wins += mrl_env_episode_success(game) == 1;
  }
  printf("deployed: success %.2f over 100 episodes\n", wins / 100.0);
  mrl_print_final(stdout, "TMaze-20", "ppo-lstm", &agent.runner.stats, agent.runner.env_steps,
                  mrl_wall_seconds() - t0);
  free(state);
  mrl_env_free(game);
  mrl_ppo_free(&loaded);
  mrl_ppo_free(&agent);
  mrl_vecenv_free(&env);
  remove("tmaze.safetensors");
  return 0;
}
