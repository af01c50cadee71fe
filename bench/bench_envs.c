/* Environment steps per second through the vector API, against a naive loop
 * that steps the same environments one mrl_env_step call at a time (and
 * resets them by hand), measured in the same run. The two alternate in short
 * rounds and each keeps its best round, so a busy machine skews both alike.
 * cc -std=c99 -O2 bench/bench_envs.c -o bench_envs -lm && ./bench_envs */
#define _POSIX_C_SOURCE 199309L
#define MEMRL_ENVS_IMPLEMENTATION
#include "../memrl_envs.h"

#include <string.h>
#include <time.h>

#define NUM_ENVS 16
#define ACTION_ROWS 4096 /* precomputed actions, reused cyclically */
#define ROUNDS 5         /* alternating rounds per environment */
#define SECONDS 0.08     /* per round and loop: 5 rounds x 2 loops = 0.8 s per env */
#define MAX_AD 2         /* widest action of the benchmarked envs */
#define MAX_OBS 512      /* widest observation of the benchmarked envs */
#define CHUNK 256        /* vector steps between clock reads */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A sink the compiler cannot prove unused. */
static volatile float bench_sink;

static double bench_vector(const char *id, const float *actions, int ad) {
  mrl_vecenv v;
  double t0, t1;
  long long steps = 0;
  int row = 0, k;
  float acc = 0.0f;
  if (mrl_vecenv_init(&v, id, NUM_ENVS, 1) != MRL_OK) return 0.0;
  mrl_vecenv_reset(&v);
  t0 = now_s();
  do {
    for (k = 0; k < CHUNK; k++) {
      mrl_vecenv_step(&v, actions + (size_t)row * NUM_ENVS * (size_t)ad);
      acc += v.rewards[0];
      row = (row + 1) % ACTION_ROWS;
    }
    steps += (long long)CHUNK * NUM_ENVS;
    t1 = now_s();
  } while (t1 - t0 < SECONDS);
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
        float r;
        int te, tu;
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

int main(void) {
  static float actions[ACTION_ROWS * NUM_ENVS * MAX_AD];
  const char *ids[] = {"CartPole-v1",
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
                       "PassiveVisualMatch"};
  const int num_ids = (int)(sizeof ids / sizeof ids[0]);
  int e, i;
  for (e = 0; e < num_ids; e++) {
    mrl_env *probe = mrl_env_make(ids[e]);
    mrl_rng rng = mrl_rng_make(12345);
    uint32_t n;
    int ad;
    double vec, ref;
    if (!probe || mrl_env_obs_dim(probe) > MAX_OBS || mrl_env_action_dim(probe) > MAX_AD) {
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
      double r = bench_naive(ids[e], actions, ad), x = bench_vector(ids[e], actions, ad);
      if (r > ref) ref = r;
      if (x > vec) vec = x;
    }
    printf("BENCH name=env_steps_%s value=%.4g unit=steps/s ref=naive_env_step_loop "
           "ref_value=%.4g speedup=%.3f\n",
           ids[e], vec, ref, ref > 0.0 ? vec / ref : 0.0);
  }
  return 0;
}
