/* The README's quick start as a complete program: PPO with an LSTM memory
 * learns TMaze-20 (the cue that says which arm holds the goal is shown only
 * at the start of the corridor), then the trained agent is saved, loaded
 * into a fresh agent and deployed step by step with its recurrent state.
 *
 *   cc -O2 -o quickstart examples/quickstart.c -lm && ./quickstart
 *
 * make test runs it and checks its last two lines: success at least 0.95
 * when deployed and in the last 100 training episodes. */
#define MEMRL_IMPLEMENTATION
#include "../memrl_algos.h"

int main(void) {
  mrl_vecenv env;
  mrl_ppo agent, loaded;
  mrl_ppo_config cfg = mrl_ppo_config_default(); /* CleanRL's ppo.py defaults */
  mrl_env *game;
  float *obs, *state, start = 1.0f, action, reward;
  int terminated = 0, truncated = 0, episode, wins = 0;
  double t0 = mrl_wall_seconds();

  cfg.learning_rate = 1e-3f; /* what TMaze-20 needs beyond the defaults: */
  cfg.net.encoder_sizes[0] = 32;
  cfg.net.num_encoder_layers = 1;
  cfg.net.core = mrl_core_config_lstm(32); /* a memory */
  cfg.shared_torso = 1;
  if (mrl_vecenv_init(&env, "TMaze-20", 16, 1) != MRL_OK) return 1;
  if (mrl_ppo_init(&agent, &cfg, &env) != MRL_OK) { /* agent.error says why */
    fprintf(stderr, "%s\n", agent.error);
    return 1;
  }
  mrl_ppo_train(&agent, &env, 400000, mrl_progress_print, NULL);

  /* the whole agent in one file (parameters, optimiser, normalisers, RNG,
   * config, and the environments so that training could resume bitwise) */
  if (mrl_ppo_save(&agent, "quickstart.safetensors", &env) != MRL_OK ||
      mrl_ppo_init(&loaded, &cfg, &env) != MRL_OK ||
      mrl_ppo_load(&loaded, "quickstart.safetensors", NULL) != MRL_OK) {
    fprintf(stderr, "save/load failed: %s\n", loaded.error);
    return 1;
  }

  /* deployment, one environment, one step at a time: no gradients, no heap
   * allocation; the recurrent state is sized by mrl_ppo_state_dim */
  game = mrl_env_make("TMaze-20");
  obs = (float *)calloc((size_t)mrl_env_obs_dim(game), sizeof(float));
  state = (float *)calloc((size_t)mrl_ppo_state_dim(&loaded) + 1, sizeof(float));
  for (episode = 0; episode < 100; episode++) {
    mrl_env_reset(game, (uint64_t)episode + 12345, obs);
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
  free(obs);
  free(state);
  mrl_env_free(game);
  mrl_ppo_free(&loaded);
  mrl_ppo_free(&agent);
  mrl_vecenv_free(&env);
  remove("quickstart.safetensors");
  return 0;
}
