/* cc -O2 -o custom_env examples/custom_env.c -lm && ./custom_env [env_steps] [seed] [delay]
 *
 * Your own game, trained by memrl's PPO-LSTM: the environment below lives
 * entirely in this file and plugs into memrl through a table of function
 * pointers (mrl_env_vtable). Nothing in the library changes.
 *
 * The game, "Signal": a lamp flashes one of three colours, goes dark for
 * `delay` steps, then a bell rings and the player presses one of three
 * buttons. The right colour's button: +1, any other: -1, and the game ends.
 * Observation: [red, green, blue, bell] (4 floats). Guessing scores -1/3 on
 * average; a player that remembers the flash scores 1.
 *
 * Prints a progress line per PPO iteration, plays one game with the trained
 * agent (rendered), then the summary line. */
#define MEMRL_IMPLEMENTATION
#include "../memrl_algos.h"

/* ---- the game ----------------------------------------------------------- */

typedef struct signal_game {
  int delay;  /* dark steps between the flash and the bell */
  int colour; /* 0 red, 1 green, 2 blue */
  int t;      /* steps taken */
  int won;
} signal_game;

static void signal_obs(const signal_game *g, float *obs) {
  obs[0] = obs[1] = obs[2] = obs[3] = 0.0f;
  if (g->t == 0) obs[g->colour] = 1.0f;    /* the flash */
  if (g->t == g->delay + 1) obs[3] = 1.0f; /* the bell */
}

static mrl_result signal_reset(void *self, uint64_t seed, float *obs) {
  signal_game *g = (signal_game *)self;
  mrl_rng r = mrl_rng_make(seed); /* everything random comes from the seed */
  g->colour = (int)mrl_rng_below(&r, 3u);
  g->t = 0;
  g->won = 0;
  signal_obs(g, obs);
  return MRL_OK;
}

/* The action arrives checked: an integral value in [0, 3). */
static mrl_result signal_step(void *self, const float *action, float *obs, float *reward,
                              int *terminated, int *truncated) {
  signal_game *g = (signal_game *)self;
  int bell = g->t == g->delay + 1;
  *reward = 0.0f;
  *terminated = 0;
  *truncated = 0;
  if (bell) { /* the answer */
    g->won = (int)action[0] == g->colour;
    *reward = g->won ? 1.0f : -1.0f;
    *terminated = 1;
  }
  g->t++;
  signal_obs(g, obs);
  return MRL_OK;
}

static int signal_success(const void *self) {
  return ((const signal_game *)self)->won;
}

static int signal_render(const void *self, char *buf, size_t size) {
  const signal_game *g = (const signal_game *)self;
  const char *what = g->t == 0              ? (g->colour == 0   ? "lamp: RED"
                                               : g->colour == 1 ? "lamp: GREEN"
                                                                : "lamp: BLUE")
                     : g->t <= g->delay     ? "lamp: dark"
                     : g->t == g->delay + 1 ? "bell! press a button"
                                            : (g->won ? "won" : "lost");
  return snprintf(buf, size, "step %d  %s\n", g->t, what);
}

static void signal_free(void *self) {
  free(self);
}

/* One game in an mrl_env; NULL when out of memory. */
static mrl_env *signal_make(int delay) {
  mrl_env_vtable vt;
  signal_game *g = (signal_game *)calloc(1, sizeof *g);
  mrl_env *env;
  if (!g) return NULL;
  g->delay = delay;
  memset(&vt, 0, sizeof vt); /* zero: no bounds, no task, ... */
  vt.id = "Signal";
  vt.obs_dim = 4;
  vt.num_actions = 3;
  vt.action_dim = 1;
  vt.reset = signal_reset;
  vt.step = signal_step;
  vt.destroy = signal_free;
  vt.episode_success = signal_success;
  vt.render = signal_render;
  vt.max_episode_steps = delay + 2; /* the game never runs longer anyway */
  env = mrl_env_create(&vt, g);
  if (!env) free(g);
  return env;
}

/* ---- training ----------------------------------------------------------- */

#define NUM_ENVS 16

int main(int argc, char **argv) {
  long long steps = argc > 1 ? atoll(argv[1]) : 100000;
  uint64_t seed = argc > 2 ? (uint64_t)atoll(argv[2]) : 1;
  int delay = argc > 3 ? atoi(argv[3]) : 4, i, made = 0;
  mrl_env *envs[NUM_ENVS];
  mrl_ppo_config cfg = mrl_ppo_config_default();
  mrl_vecenv venv;
  mrl_ppo agent;
  mrl_result r = MRL_OK;
  double t0;
  if (delay < 0 || delay > 1000) delay = 4;
  for (i = 0; i < NUM_ENVS; i++, made++)
    if (!(envs[i] = signal_make(delay))) break;
  if (made < NUM_ENVS || (r = mrl_vecenv_init_envs(&venv, envs, NUM_ENVS, seed)) != MRL_OK) {
    for (i = 0; i < made; i++) mrl_env_free(envs[i]);
    fprintf(stderr, "setup failed: %s\n", mrl_result_string(r ? r : MRL_ERR_OUT_OF_MEMORY));
    return 1;
  }
  cfg.seed = seed;
  cfg.learning_rate = 1e-3f;
  cfg.net.encoder_sizes[0] = 32;
  cfg.net.num_encoder_layers = 1;
  cfg.shared_torso = 1;
  cfg.net.core = mrl_core_config_lstm(32); /* the memory that holds the colour */
  if ((r = mrl_ppo_init(&agent, &cfg, &venv)) != MRL_OK) {
    fprintf(stderr, "setup failed: %s\n", mrl_result_string(r));
    mrl_vecenv_free(&venv);
    return 1;
  }
  t0 = mrl_wall_seconds();
  r = mrl_ppo_train(&agent, &venv, steps, mrl_progress_print, NULL);
  if (r != MRL_OK) fprintf(stderr, "training failed: %s\n", mrl_result_string(r));

  { /* watch one game of the trained agent (greedy) */
    mrl_env *game = signal_make(delay);
    float obs[4], act, start = 1.0f, rew = 0.0f, *state = NULL;
    int term = 0, trunc = 0, sd = mrl_ppo_state_dim(&agent);
    char line[128];
    mrl_rng rng = mrl_rng_make(seed);
    if (sd > 0) state = (float *)calloc((size_t)sd, sizeof(float));
    if (game && (sd == 0 || state)) {
      mrl_env_reset(game, seed + 12345, obs);
      while (!term && !trunc) {
        mrl_env_render(game, line, sizeof line);
        fputs(line, stdout);
        mrl_ppo_act(&agent, obs, 1, &start, state, 1, &rng, &act);
        start = 0.0f;
        mrl_env_step(game, &act, obs, &rew, &term, &trunc);
      }
      mrl_env_render(game, line, sizeof line);
      printf("pressed %s: %s", act == 0.0f ? "red" : act == 1.0f ? "green" : "blue", line);
    }
    free(state);
    mrl_env_free(game);
  }
  {
    char id[32];
    snprintf(id, sizeof id, "Signal-%d", delay);
    mrl_print_final(stdout, id, "ppo-lstm", &agent.runner.stats, agent.runner.env_steps,
                    mrl_wall_seconds() - t0);
  }
  mrl_ppo_free(&agent);
  mrl_vecenv_free(&venv);
  return r == MRL_OK ? 0 : 1;
}
