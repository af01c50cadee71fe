/* Environment steps per second through the vector API, against a naive loop
 * that steps the same environments one mrl_env_step call at a time (and
 * resets them by hand), measured in the same run. The two alternate in short
 * rounds and each keeps its best round, so a busy machine skews both alike.
 * Then every POPGym task at every level, beside the steps per second that
 * POPGym's README reports for its Python version (MacBook Air 2020): the
 * reference is another machine and language, so the ratio is indicative.
 * These are timed in CPU seconds of this (single-threaded) process: steps
 * per second of one core, robust to other programs on a shared machine.
 * cc -std=c99 -O2 bench/bench_envs.c -o bench_envs -lm && ./bench_envs */
#define _POSIX_C_SOURCE 199309L
#define MEMRL_ENVS_IMPLEMENTATION
#include "../memrl_envs.h"

#include <string.h>
#include <time.h>

#define NUM_ENVS 16
#define ACTION_ROWS 4096    /* precomputed actions, reused cyclically */
#define ROUNDS 5            /* alternating rounds per environment */
#define SECONDS 0.08        /* per round and loop: 5 rounds x 2 loops = 0.8 s per env */
#define MAX_AD 2            /* widest action of the benchmarked envs */
#define MAX_OBS 1024        /* widest observation of the benchmarked envs */
#define CHUNK 256           /* vector steps between clock reads */
#define POPGYM_ROUNDS 3     /* per POPGym task and level, best kept: */
#define POPGYM_SECONDS 0.04 /* 27 x 3 x 0.04 s = 3.2 s of CPU time */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU time of this process: with one thread, the time one core spent, so
 * other programs on a shared machine do not count against us. */
static double cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A sink the compiler cannot prove unused. */
static volatile float bench_sink;

static double bench_vector(const char *id, const float *actions, int ad, double seconds,
                           double (*clock_s)(void)) {
  mrl_vecenv v;
  double t0, t1;
  long long steps = 0;
  int row = 0, k;
  float acc = 0.0f;
  if (mrl_vecenv_init(&v, id, NUM_ENVS, 1) != MRL_OK) return 0.0;
  mrl_vecenv_reset(&v);
  t0 = clock_s();
  do {
    for (k = 0; k < CHUNK; k++) {
      mrl_vecenv_step(&v, actions + (size_t)row * NUM_ENVS * (size_t)ad);
      acc += v.rewards[0];
      row = (row + 1) % ACTION_ROWS;
    }
    steps += (long long)CHUNK * NUM_ENVS;
    t1 = clock_s();
  } while (t1 - t0 < seconds);
  bench_sink = acc;
  mrl_vecenv_free(&v);
  return (double)steps / (t1 - t0);
}

static double bench_naive(const char *id, const float *actions, int ad) {
  mrl_env *envs[NUM_ENVS];
  static float obs[NUM_ENVS][MAX_OBS];
  uint64_t episodes = 0;
  double t0, t1;
  long long steps = 0;
  int row = 0, k, i;
  float acc = 0.0f;
  for (i = 0; i < NUM_ENVS; i++) {
    envs[i] = mrl_env_make(id);
    if (!envs[i]) return 0.0;
    mrl_env_reset(envs[i], episodes++, obs[i]);
  }
  t0 = now_s();
  do {
    for (k = 0; k < CHUNK; k++) {
      for (i = 0; i < NUM_ENVS; i++) {
        float r = 0.0f;
        int te = 0, tu = 0;
        mrl_env_step(envs[i], actions + ((size_t)row * NUM_ENVS + (size_t)i) * (size_t)ad, obs[i],
                     &r, &te, &tu);
        acc += r;
        if (te || tu) mrl_env_reset(envs[i], episodes++, obs[i]);
      }
      row = (row + 1) % ACTION_ROWS;
    }
    steps += (long long)CHUNK * NUM_ENVS;
    t1 = now_s();
  } while (t1 - t0 < SECONDS);
  bench_sink = acc;
  for (i = 0; i < NUM_ENVS; i++) mrl_env_free(envs[i]);
  return (double)steps / (t1 - t0);
}

/* POPGym's README table ("Macbook Air (2020) FPS", its Python environments,
 * one difficulty per task): the reference each POPGym task is quoted beside. */
static const struct {
  const char *name;
  double python_fps;
} popgym_ref[9] = {
    {"RepeatFirst", 155201}, {"RepeatPrevious", 136392}, {"Autoencode", 251997},
    {"CountRecall", 50311},  {"HigherLower", 76903},     {"Concentration", 157217},
    {"Battleship", 235402},  {"MineSweeper", 32003},     {"MultiarmedBandit", 469325}};

/* Every POPGym task at every level through the vector API, uniform random
 * actions (auto-resets, and so shuffles, included). */
static void bench_popgym(float *actions) {
  static const char *const levels[3] = {"Easy", "Medium", "Hard"};
  int t, l, i, k;
  for (t = 0; t < 9; t++)
    for (l = 0; l < 3; l++) {
      char id[64];
      mrl_env *probe;
      mrl_rng rng = mrl_rng_make(777);
      uint32_t n;
      double best = 0.0;
      snprintf(id, sizeof id, "%s%s-v0", popgym_ref[t].name, levels[l]);
      probe = mrl_env_make(id);
      if (!probe) {
        fprintf(stderr, "bench_envs: %s skipped (unknown id)\n", id);
        continue;
      }
      n = (uint32_t)mrl_env_num_actions(probe);
      mrl_env_free(probe);
      for (i = 0; i < ACTION_ROWS * NUM_ENVS; i++) actions[i] = (float)mrl_rng_below(&rng, n);
      for (k = 0; k < POPGYM_ROUNDS; k++) {
        double x = bench_vector(id, actions, 1, POPGYM_SECONDS, cpu_s);
        if (x > best) best = x;
      }
      printf("BENCH name=env_steps_%s value=%.4g unit=steps/s ref=popgym-python-readme "
             "ref_value=%.6g speedup=%.1f\n",
             id, best, popgym_ref[t].python_fps, best / popgym_ref[t].python_fps);
    }
}

int main(void) {
  static float actions[ACTION_ROWS * NUM_ENVS * MAX_AD];
  /* ConcentrationHard-v0: the direct loop writes the whole card table every
   * step, the vector only the cards that changed (step_delta); with
   * prev_action_reward it is as POPGym trains it */
  const char *ids[] = {"CartPole-v1",
                       "CartPole-v1|domain_randomization:gravity=4.9:19.6,length=0.25:1",
                       "StatelessCartPole-v1",
                       "TMaze-20",
                       "Pendulum-v1",
                       "StatelessPendulum-v1",
                       "NoisyStatelessPendulum-v1",
                       "VelocityOnlyCartPole-v1",
                       "NoisyStatelessCartPole-v1",
                       "PassiveTMaze-100",
                       "MemoryChain-30",
                       "NoisySequence-100",
                       "MetaBandit",
                       "Semicircle",
                       "NumPad",
                       "TreeMDP-4-6",
                       "SFGrid",
                       "Catch",
                       "PassiveVisualMatch",
                       "PassiveVisualMatchCrop",
                       "ConcentrationHard-v0",
                       "ConcentrationHard-v0|prev_action_reward"};
  const int num_ids = (int)(sizeof ids / sizeof ids[0]);
  int e, i;
  for (e = 0; e < num_ids; e++) {
    mrl_env *probe = mrl_env_make(ids[e]);
    mrl_rng rng = mrl_rng_make(12345);
    uint32_t n;
    int ad;
    double vec, ref;
    if (!probe || mrl_env_obs_dim(probe) > MAX_OBS || mrl_env_action_dim(probe) > MAX_AD) {
      fprintf(stderr, "bench_envs: %s skipped (%s)\n", ids[e],
              probe ? "wider than MAX_OBS or MAX_AD" : "unknown id");
      mrl_env_free(probe);
      continue;
    }
    n = (uint32_t)mrl_env_num_actions(probe);
    ad = mrl_env_action_dim(probe);
    mrl_env_free(probe);
    for (i = 0; i < ACTION_ROWS * NUM_ENVS * ad; i++) {
      if (n == 0) /* box: uniform over a range wider than the bounds */
        actions[i] = mrl_rng_uniform_range(&rng, -2.5f, 2.5f);
      else if (strncmp(ids[e], "TMaze", 5) == 0 || strncmp(ids[e], "PassiveTMaze", 12) == 0)
        /* mostly east (T-maze action 1, passive T-maze action 0) so that
         * episodes reach the junction */
        actions[i] = mrl_rng_uniform(&rng) < 0.7f ? (ids[e][0] == 'T' ? 1.0f : 0.0f)
                                                  : (float)mrl_rng_below(&rng, n);
      else
        actions[i] = (float)mrl_rng_below(&rng, n);
    }
    vec = ref = 0.0;
    for (i = 0; i < ROUNDS; i++) {
      double r = bench_naive(ids[e], actions, ad);
      double x = bench_vector(ids[e], actions, ad, SECONDS, now_s);
      if (r > ref) ref = r;
      if (x > vec) vec = x;
    }
    printf("BENCH name=env_steps_%s value=%.4g unit=steps/s ref=naive_env_step_loop "
           "ref_value=%.4g speedup=%.3f\n",
           ids[e], vec, ref, ref > 0.0 ? vec / ref : 0.0);
  }
  bench_popgym(actions);
  return 0;
}
