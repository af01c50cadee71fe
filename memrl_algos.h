/* memrl_algos.h - reinforcement-learning agents with memory.
 *
 * Part of memrl. Needs memrl_mem.h and memrl_envs.h (included here).
 *
 * ENABLING
 *   In exactly one file: #define MEMRL_IMPLEMENTATION before including (emits
 *   every memrl header's implementation), or MEMRL_ALGOS_IMPLEMENTATION
 *   together with the macros of every header it builds on.
 *
 * SHAPE OF EVERY AGENT
 *   mrl_<algo>_config_default()   the paper's / best-known implementation's defaults
 *   mrl_<algo>_init(&agent, &cfg, &vecenv)   caller-owned agent
 *   mrl_<algo>_train(&agent, &vecenv, env_steps, progress_callback, user)
 *   mrl_<algo>_act(...)           deployment: no gradients, no heap allocation
 *   mrl_<algo>_free(&agent)
 *   Training reports through mrl_progress_fn once per iteration; the library
 *   ships mrl_progress_print (a terminal line) and mrl_csv_logger.
 *
 * QUICK START
 *   mrl_vecenv env;  mrl_ppo agent;
 *   mrl_ppo_config cfg = mrl_ppo_config_default();
 *   cfg.core = mrl_core_config_lstm(64);        // remember: PPO-LSTM
 *   mrl_vecenv_init(&env, "TMaze-20", 8, 1);
 *   mrl_ppo_init(&agent, &cfg, &env);
 *   mrl_ppo_train(&agent, &env, 1000000, mrl_progress_print, NULL);
 *   mrl_ppo_free(&agent);  mrl_vecenv_free(&env);
 *
 * ALGORITHMS
 *   PPO (clipped surrogate), feedforward or recurrent. See its section below.
 */
#ifndef MEMRL_ALGOS_H
#define MEMRL_ALGOS_H

#define MEMRL_ALGOS_VERSION_MAJOR 0
#define MEMRL_ALGOS_VERSION_MINOR 1
#define MEMRL_ALGOS_VERSION_PATCH 0

#include "memrl_mem.h"
#include "memrl_envs.h"
#if MEMRL_MEM_VERSION_MAJOR != MEMRL_ALGOS_VERSION_MAJOR ||                                        \
    MEMRL_MEM_VERSION_MINOR != MEMRL_ALGOS_VERSION_MINOR ||                                        \
    MEMRL_ENVS_VERSION_MAJOR != MEMRL_ALGOS_VERSION_MAJOR ||                                       \
    MEMRL_ENVS_VERSION_MINOR != MEMRL_ALGOS_VERSION_MINOR
#error "memrl_algos.h needs memrl_mem.h and memrl_envs.h of the same version"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- progress reporting (shared by every algorithm) ---- */
typedef struct mrl_train_progress {
  const char *algo, *env_id;
  int iteration, num_iterations;
  long long env_steps; /* since the agent was created */
  double seconds;      /* wall time of this train call so far */
  double steps_per_second;
  long long episodes; /* finished since the agent was created */
  float mean_return;  /* over the last 100 episodes */
  float mean_length;
  float success_rate; /* -1 when the environment reports no success */
  float learning_rate;
  float policy_loss, value_loss, entropy, approx_kl, clip_fraction, explained_variance;
} mrl_train_progress;

/* Called once per iteration; return nonzero to stop training early. */
typedef int (*mrl_progress_fn)(const mrl_train_progress *p, void *user);
/* Prints one line to stdout (user == NULL) or to the FILE* given as user. */
MRL_DEF int mrl_progress_print(const mrl_train_progress *p, void *user);

typedef struct mrl_csv_logger {
  FILE *file;
  int wrote_header;
} mrl_csv_logger;
MRL_DEF mrl_result mrl_csv_logger_open(mrl_csv_logger *l, const char *path);
MRL_DEF int mrl_csv_logger_write(const mrl_train_progress *p, void *logger); /* a progress fn */
MRL_DEF void mrl_csv_logger_close(mrl_csv_logger *l);

/* Monotonic-enough wall clock in seconds, for reports. */
MRL_DEF double mrl_wall_seconds(void);

/* ---- learning-curve plot: CSV log -> SVG line chart ---- */
/* Reads a CSV log written by mrl_csv_logger (a header row naming the columns, then one row per
 * iteration) and writes an SVG line chart of column y against column x (e.g. "env_steps",
 * "mean_return"), with axes, tick labels, a title and the y column's name. Several y columns may
 * be given separated by commas ("mean_return,success_rate"): one chart panel each, stacked,
 * sharing the x range. Columns are found by header name, in any order. Missing, empty or
 * non-numeric cells ("nan", "inf", text) are skipped, and rows without a numeric x are dropped.
 * Each axis spans its data exactly (a constant column or a single row is centred), with ticks
 * at 1-2-5 multiples labelled compactly (1.5M, 200k, -0.25, 2e-5). Points that fall in the same
 * pixel column are reduced to their first, lowest, highest and last, so a long log (1e5 rows)
 * keeps its exact envelope in a small file; a short log keeps one point per row.
 * Numbers are parsed and printed by the library itself, so the output does not depend on the
 * C locale. Quoted cells may hold commas but not line breaks. title may be NULL (no title).
 * Errors: MRL_ERR_IO (cannot read the CSV or write the SVG), MRL_ERR_INVALID_ARGUMENT (a NULL
 * path or column list, an empty column name, or a named column absent from the header: the SVG
 * is then not written), MRL_ERR_OUT_OF_MEMORY. */
MRL_DEF mrl_result mrl_plot_csv_svg(const char *csv_path, const char *svg_path,
                                    const char *x_column, const char *y_columns, const char *title);

/* ---- threads (for actor/learner algorithms), only with MRL_THREADS ---- */
/* Compiled only when MRL_THREADS is defined, so default builds need no thread library:
 *   cc -DMRL_THREADS ... -pthread      (POSIX threads; Windows uses Win32 threads, no flag)
 * The handles are opaque: the platform objects live on the heap (MRL_MALLOC in _start/_init),
 * so no <pthread.h> or <windows.h> leaks into the user's translation units. Objects must not be
 * copied after init. mrl_cond_wait may wake spuriously (as pthread_cond_wait and
 * SleepConditionVariableCS do): wait in a loop that re-checks the condition. */
#ifdef MRL_THREADS
typedef struct mrl_thread {
  void *impl;
} mrl_thread;
typedef struct mrl_mutex {
  void *impl;
} mrl_mutex;
typedef struct mrl_cond {
  void *impl;
} mrl_cond;
/* MRL_ERR_OUT_OF_MEMORY when the system cannot create the thread; t is then safe to discard. */
MRL_DEF mrl_result mrl_thread_start(mrl_thread *t, void (*fn)(void *), void *arg);
/* Waits for fn to return and releases the thread; MRL_ERR_INVALID_ARGUMENT if not started. */
MRL_DEF mrl_result mrl_thread_join(mrl_thread *t);
MRL_DEF mrl_result mrl_mutex_init(mrl_mutex *m);
MRL_DEF void mrl_mutex_lock(mrl_mutex *m);
MRL_DEF void mrl_mutex_unlock(mrl_mutex *m);
MRL_DEF void mrl_mutex_free(mrl_mutex *m);
MRL_DEF mrl_result mrl_cond_init(mrl_cond *c);
MRL_DEF void mrl_cond_wait(mrl_cond *c, mrl_mutex *m); /* m locked by the caller */
MRL_DEF void mrl_cond_signal(mrl_cond *c);
MRL_DEF void mrl_cond_broadcast(mrl_cond *c);
MRL_DEF void mrl_cond_free(mrl_cond *c);
#endif

/* ---- running observation normaliser (SB3's VecNormalize for observations) ---- */
typedef struct mrl_obs_normalizer {
  int dim;
  double *mean, *var; /* [dim] */
  double count;
  float clip; /* normalised values are clipped to +-clip (10) */
} mrl_obs_normalizer;
MRL_DEF mrl_result mrl_obs_normalizer_init(mrl_obs_normalizer *n, int dim);
MRL_DEF void mrl_obs_normalizer_update(mrl_obs_normalizer *n, const float *obs, int rows);
MRL_DEF void mrl_obs_normalizer_apply(const mrl_obs_normalizer *n, const float *obs, int rows,
                                      float *out);
MRL_DEF void mrl_obs_normalizer_free(mrl_obs_normalizer *n);

/* ======================================================================
 * PPO: Schulman, Wolski, Dhariwal, Radford, Klimov (2017), "Proximal Policy
 * Optimization Algorithms", clipped-surrogate objective. Defaults and details
 * follow CleanRL's ppo.py (Huang et al. 2022, "The 37 implementation details
 * of PPO"): orthogonal initialisation (sqrt 2 hidden, 0.01 policy, 1 value),
 * Adam eps 1e-5, linear learning-rate annealing, GAE, per-minibatch advantage
 * normalisation, clipped value loss, global gradient clipping at 0.5.
 * Recurrent PPO follows CleanRL's ppo_atari_lstm.py: every minibatch holds
 * whole rollout sequences of a subset of the environments, replayed from the
 * core state stored at the start of the rollout, with the state zeroed where
 * an episode starts (truncated BPTT over the rollout length).
 * Deviations from CleanRL, both as in Stable-Baselines3: a time-limit
 * truncation is bootstrapped from the value of the final observation instead
 * of being treated as a terminal state; and an optional running observation
 * normaliser (off by default).
 * Discrete actions only in this version.
 * ====================================================================== */

#define MRL_PPO_MAX_LAYERS 4

typedef struct mrl_ppo_config {
  uint64_t seed;       /* 1 */
  int num_steps;       /* 128: rollout length per environment */
  float learning_rate; /* 2.5e-4 */
  int anneal_lr;       /* 1: linear decay to 0 over the train call */
  float gamma;         /* 0.99 */
  float gae_lambda;    /* 0.95 */
  int num_minibatches; /* 4 */
  int update_epochs;   /* 4 */
  int norm_adv;        /* 1 */
  float clip_coef;     /* 0.2 */
  int anneal_clip;     /* 0; 1: clip_coef decays linearly like the learning rate (SB3 lin_) */
  int clip_vloss;      /* 1 */
  float ent_coef;      /* 0.01 */
  float vf_coef;       /* 0.5 */
  float max_grad_norm; /* 0.5 */
  float target_kl;     /* 0: off; else stop an update's epochs once approx_kl exceeds it */
  float adam_eps;      /* 1e-5 */
  /* network, per tower (actor and critic): encoder MLP -> core -> head MLP -> linear */
  int encoder_sizes[MRL_PPO_MAX_LAYERS]; /* {64, 64} */
  int num_encoder_layers;                /* 2 */
  mrl_core_config core;                  /* none */
  int head_sizes[MRL_PPO_MAX_LAYERS];    /* {} */
  int num_head_layers;                   /* 0 */
  mrl_activation activation;             /* tanh */
  int orthogonal_init;                   /* 1: CleanRL's layer_init; 0: PyTorch defaults */
  int shared_torso;  /* 0: separate actor and critic networks (CleanRL ppo.py) */
  int normalize_obs; /* 0 */
  /* 0; 1: rewards divided by the running std of each environment's discounted
   * return (gamma) and clipped to +-10 (SB3 VecNormalize's norm_reward) */
  int normalize_reward;
} mrl_ppo_config;

MRL_DEF mrl_ppo_config mrl_ppo_config_default(void);

typedef struct mrl__ppo_tower {
  mrl_mlp encoder, head;
  mrl_core core;
  mrl_linear_layer out;
} mrl__ppo_tower;

typedef struct mrl_ppo {
  mrl_ppo_config cfg;
  int obs_dim, num_actions, num_envs;
  mrl_params params;
  mrl__ppo_tower actor, critic;                     /* critic's torso unused when shared_torso */
  int actor_state_dim, critic_state_dim, state_dim; /* recurrent floats per environment */
  int recurrent;
  mrl_graph graph;     /* training */
  mrl_graph act_graph; /* acting */
  mrl_rollout rollout;
  mrl_obs_normalizer obs_norm;
  mrl_obs_normalizer return_norm; /* dim 1: statistics of discounted returns */
  mrl_episode_stats stats;
  mrl_rng rng;
  float *env_state;    /* [num_envs, state_dim]: state of every training environment */
  float *env_starts;   /* [num_envs]: the current observation begins an episode */
  float *step_obs;     /* [num_envs, obs_dim] scratch */
  float *step_values;  /* [num_envs] scratch */
  double *env_returns; /* [num_envs]: discounted return so far (reward normalisation) */
  int *mb_index;       /* [num_steps * num_envs] minibatch permutation */
  int *env_perm;       /* [num_envs] recurrent minibatches: environment permutation */
  float *mb_obs, *mb_starts, *mb_state, *mb_scalars; /* minibatch scratch */
  int *mb_actions;
  long long env_steps;
  int env_ready; /* the vector env has been reset for training */
} mrl_ppo;

MRL_DEF mrl_result mrl_ppo_init(mrl_ppo *agent, const mrl_ppo_config *cfg, const mrl_vecenv *env);
MRL_DEF void mrl_ppo_free(mrl_ppo *agent);
/* Trains for (about) env_steps environment steps: whole iterations of
 * num_envs * num_steps. The vector env must be the one given to init (same
 * dimensions and count); training continues its episodes across calls. */
MRL_DEF mrl_result mrl_ppo_train(mrl_ppo *agent, mrl_vecenv *env, long long env_steps,
                                 mrl_progress_fn progress, void *user);
/* Floats of recurrent state per environment for mrl_ppo_act (0: feedforward). */
MRL_DEF int mrl_ppo_state_dim(const mrl_ppo *agent);
/* Deployment: actions for n observations [n, obs_dim]. state [n, state_dim]
 * is read and updated; episode_start [n] (may be NULL) zeroes it first.
 * greedy = 1 takes the most probable action, else samples with rng (NULL: the
 * agent's own). No gradients, and no heap allocation once the acting arena
 * has grown to the largest n used. */
MRL_DEF mrl_result mrl_ppo_act(mrl_ppo *agent, const float *obs, int n, float *state,
                               const float *episode_start, int greedy, mrl_rng *rng,
                               float *actions);
/* Value estimates for deployment-side diagnostics (same conventions, state not advanced). */
/* Runs the policy (greedy or sampled) on env, a vector env of its own (not
 * the training one), until `episodes` episodes (at most 100) have finished,
 * spread evenly over its environments as Stable-Baselines3's evaluate_policy
 * does; their returns, lengths and successes go into *stats. No learning. */
MRL_DEF mrl_result mrl_ppo_evaluate(mrl_ppo *agent, mrl_vecenv *env, int episodes, int greedy,
                                    mrl_episode_stats *stats);
MRL_DEF mrl_result mrl_ppo_value(mrl_ppo *agent, const float *obs, int n, const float *state,
                                 const float *episode_start, float *values);

#ifdef __cplusplus
}
#endif
#endif /* MEMRL_ALGOS_H */

/* ======================================================================== */
#if (defined(MEMRL_ALGOS_IMPLEMENTATION) || defined(MEMRL_IMPLEMENTATION)) &&                      \
    !defined(MEMRL_ALGOS_IMPLEMENTED)
#define MEMRL_ALGOS_IMPLEMENTED

#if defined(_WIN32) && defined(MRL_THREADS) && !defined(_WIN32_WINNT)
#define _WIN32_WINNT 0x0600 /* condition variables: Windows Vista and later */
#endif
#if defined(_WIN32)
#include <windows.h>
#else
#include <sys/time.h>
#endif
#if defined(MRL_THREADS) && !defined(_WIN32)
#include <pthread.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

MRL_DEF double mrl_wall_seconds(void) {
#if defined(_WIN32)
  return (double)GetTickCount64() * 1e-3;
#else
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec;
#endif
}

/* ---- learning-curve plot ---- */

/* A whole cell as a finite decimal number, parsed here because strtod follows the C locale
 * (under a decimal-comma locale it reads "0.5" as 0). Empty, text, nan and inf cells give 0. */
static int mrl__plot_number(const char *s, const char *end, double *out) {
  double mant = 0.0, v;
  int exp10 = 0, digits = 0, neg = 0, e = 0, eneg = 0, edigits = 0;
  if (s < end && (*s == '+' || *s == '-')) neg = *s++ == '-';
  for (; s < end && *s >= '0' && *s <= '9'; s++, digits++) {
    exp10 += mant >= 1e17; /* digits beyond double precision only scale */
    if (mant < 1e17) mant = mant * 10.0 + (*s - '0');
  }
  if (s < end && *s == '.') {
    for (s++; s < end && *s >= '0' && *s <= '9'; s++, digits++)
      if (mant < 1e17) mant = mant * 10.0 + (*s - '0'), exp10--;
  }
  if (!digits) return 0;
  if (s < end && (*s == 'e' || *s == 'E')) {
    if (++s < end && (*s == '+' || *s == '-')) eneg = *s++ == '-';
    for (; s < end && *s >= '0' && *s <= '9'; s++, edigits++)
      if (e < 100000) e = e * 10 + (*s - '0');
    if (!edigits) return 0;
  }
  if (s != end) return 0;
  exp10 += eneg ? -e : e;
  v = exp10 >= 0      ? mant * pow(10.0, exp10) /* two steps below 1e-300: 1e-310 is a double */
      : exp10 >= -300 ? mant / pow(10.0, -exp10)
                      : mant / 1e300 / pow(10.0, -exp10 - 300);
  if (!isfinite(v)) return 0;
  *out = neg ? -v : v;
  return 1;
}

/* Next cell of the line [*p, end), trimmed, without its quotes (which may hide commas); *p
 * becomes NULL after the last cell. Returns 0 when the line has no more cells. */
static int mrl__plot_cell(const char **p, const char *end, const char **cs, const char **ce) {
  const char *s = *p;
  int quoted;
  if (!s) return 0;
  while (s < end && (*s == ' ' || *s == '\t')) s++;
  quoted = s < end && *s == '"';
  *cs = s + quoted;
  if (quoted) {
    for (s++; s < end && (*s != '"' || (s + 1 < end && s[1] == '"')); s += *s == '"' ? 2 : 1) {
    }
    *ce = s;
  }
  while (s < end && *s != ',') s++;
  if (!quoted) *ce = s;
  while (*ce > *cs && ((*ce)[-1] == ' ' || (*ce)[-1] == '\t' || (*ce)[-1] == '\r')) (*ce)--;
  *p = s < end ? s + 1 : NULL;
  return 1;
}

/* v rounded to dec (0..15) decimals, trailing zeros dropped, into buf[48]; integers only go
 * through printf, so the decimal point never follows the C locale. */
static char *mrl__plot_fixed(char *buf, double v, int dec) {
  long long p = 1, r;
  int i, n;
  for (i = 0; i < dec; i++) p *= 10;
  r = (long long)floor(fmin(fabs(v) * (double)p + 0.5, 9e18));
  n = snprintf(buf, 48, "%s%lld", v < 0 && r ? "-" : "", r / p);
  if (r % p) {
    n += snprintf(buf + n, (size_t)(48 - n), ".%0*lld", dec, r % p);
    while (buf[n - 1] == '0') buf[--n] = '\0';
  }
  return buf;
}

/* An axis spans [lo, hi]; its ticks are k0*step .. k1*step inside, 3 to 7 of a 1-2-5 step. */
typedef struct mrl__plot_axis {
  double lo, hi, step, k0, mag; /* mag: the largest |tick| */
  int ticks;
} mrl__plot_axis;

/* The axis over the finite values among v[0..n); returns their number. */
static int mrl__plot_axis_make(mrl__plot_axis *ax, const double *v, int n) {
  double lo = 0.0, hi = 1.0, raw, base, f, k1, pad;
  int i, count = 0;
  for (i = 0; i < n; i++) {
    if (!isfinite(v[i])) continue;
    lo = count == 0 || v[i] < lo ? v[i] : lo;
    hi = count++ == 0 || v[i] > hi ? v[i] : hi;
  }
  if (lo == hi) { /* a constant or a single value: centred (one-sided next to +-DBL_MAX) */
    pad = lo != 0.0 ? fabs(lo) * 0.1 : 1.0;
    lo -= isfinite(lo - pad) ? pad : 0.0;
    hi += isfinite(hi + pad) ? pad : 0.0;
  }
  ax->lo = lo, ax->hi = hi, ax->ticks = 0;
  raw = isfinite(hi - lo) ? (hi - lo) / 6.0 : hi / 6.0 - lo / 6.0;
  base = pow(10.0, floor(log10(raw)));
  f = raw / base;
  ax->step = (f <= 1.000001 ? 1.0 : f <= 2.000001 ? 2.0 : f <= 5.000001 ? 5.0 : 10.0) * base;
  ax->k0 = ceil(lo / ax->step - 1e-9);
  k1 = floor(hi / ax->step + 1e-9);
  if (!(ax->step > 0.0 && k1 - ax->k0 >= 0.0 && k1 - ax->k0 < 20.0)) return count; /* denormal */
  ax->ticks = (int)(k1 - ax->k0) + 1;
  ax->mag = fmax(fabs(ax->k0 * ax->step), fabs(k1 * ax->step));
  return count;
}

/* Position of v on the axis in [0, 1], also when hi - lo overflows. */
static double mrl__plot_frac(const mrl__plot_axis *ax, double v) {
  if (isfinite(ax->hi - ax->lo)) return (v - ax->lo) / (ax->hi - ax->lo);
  return (v * 0.5 - ax->lo * 0.5) / (ax->hi * 0.5 - ax->lo * 0.5);
}

/* Tick j's label: compact (1.5M, 200k, -0.25), or 2e-5 on an axis whose ticks are all below
 * 1e-3 or reach 1e15, with as many decimals as the step needs. */
static char *mrl__plot_label(char *buf, const mrl__plot_axis *ax, int j) {
  double v = (ax->k0 + j) * ax->step, a = fabs(v), scale = 1.0;
  int s = 0, e, dec, n;
  if (a < ax->step * 1e-6) return strcpy(buf, "0");
  if (ax->mag < 1e-3 || ax->mag >= 1e15) {
    for (e = (int)floor(log10(a));; e++) { /* e + 1 when the mantissa rounds up to 10 */
      dec = e - (int)floor(log10(ax->step) + 1e-9);
      dec = dec < 0 ? 0 : dec > 15 ? 15 : dec;
      if (floor(a / pow(10.0, e) * pow(10.0, dec) + 0.5) < 10.0 * pow(10.0, dec)) break;
    }
    mrl__plot_fixed(buf, v / pow(10.0, e), dec);
    n = (int)strlen(buf);
    snprintf(buf + n, (size_t)(48 - n), "e%d", e);
    return buf;
  }
  while (s < 4 && a * (1.0 + 1e-9) >= scale * 1e3) s++, scale *= 1e3;
  dec = -(int)floor(log10(ax->step / scale) + 1e-9);
  mrl__plot_fixed(buf, v / scale, dec < 0 ? 0 : dec > 15 ? 15 : dec);
  n = (int)strlen(buf);
  if (s && n < 47) buf[n] = "kMGT"[s - 1], buf[n + 1] = '\0';
  return buf;
}

/* XML text: markup characters escaped, control characters (not allowed in XML 1.0) dropped. */
static void mrl__plot_text(FILE *f, const char *s, const char *e) {
  for (; s < e; s++) {
    switch (*s) {
    case '&': fputs("&amp;", f); break;
    case '<': fputs("&lt;", f); break;
    case '>': fputs("&gt;", f); break;
    case '"': fputs("&quot;", f); break;
    default:
      if ((unsigned char)*s >= 0x20) fputc(*s, f);
    }
  }
}

static mrl_result mrl__plot_read(const char *path, char **text, size_t *len) {
  FILE *f = fopen(path, "rb");
  size_t cap = 0, got = 1;
  char *nb;
  int err;
  *text = NULL, *len = 0;
  if (!f) return MRL_ERR_IO;
  while (got) {
    if (cap - *len < 4096) {
      cap = cap ? cap * 2 : 65536;
      nb = (char *)MRL_REALLOC(*text, cap + 1);
      if (!nb) return fclose(f), MRL_ERR_OUT_OF_MEMORY;
      *text = nb;
    }
    got = fread(*text + *len, 1, cap - *len, f);
    *len += got;
  }
  (*text)[*len] = '\0';
  err = ferror(f);
  fclose(f);
  return err ? MRL_ERR_IO : MRL_OK;
}

/* The polyline's points, in row order; points sharing a pixel column keep only their first,
 * lowest, highest and last, which draws the same envelope. */
static void mrl__plot_curve(FILE *f, const double *px, const double *py, const double *ys, int n) {
  int i, j, k, m, run[4], pick[4], first = 1;
  char bx[48], by[48];
  for (i = 0; i < n; i = j) {
    if (!isfinite(ys[i])) {
      j = i + 1;
      continue;
    }
    run[0] = run[1] = run[2] = run[3] = i;
    for (j = i + 1; j < n && (!isfinite(ys[j]) || floor(px[j]) == floor(px[i])); j++) {
      if (!isfinite(ys[j])) continue;
      if (ys[j] < ys[run[1]]) run[1] = j;
      if (ys[j] > ys[run[2]]) run[2] = j;
      run[3] = j;
    }
    pick[0] = run[0], m = 1; /* run[0] <= min, max <= run[3]: ascending, each once */
    k = run[1] < run[2] ? run[1] : run[2];
    if (k != pick[m - 1]) pick[m++] = k;
    k = run[1] < run[2] ? run[2] : run[1];
    if (k != pick[m - 1]) pick[m++] = k;
    if (run[3] != pick[m - 1]) pick[m++] = run[3];
    for (k = 0; k < m; k++, first = 0)
      fprintf(f, "%s%s,%s", first ? "" : " ", mrl__plot_fixed(bx, px[pick[k]], 2),
              mrl__plot_fixed(by, py[pick[k]], 2));
  }
}

/* Every tick of an axis: a grid line across the plot [x0, x0 + w] x [y0, y0 + h] and a label. */
static void mrl__plot_ticks(FILE *f, const mrl__plot_axis *ax, int is_y, int x0, int y0, int w,
                            int h) {
  char at[48], label[48];
  int j;
  for (j = 0; j < ax->ticks; j++) {
    double u = fmin(fmax(mrl__plot_frac(ax, (ax->k0 + j) * ax->step), 0.0), 1.0);
    mrl__plot_label(label, ax, j);
    if (is_y) {
      mrl__plot_fixed(at, y0 + h - u * h, 2);
      fprintf(f,
              "<line x1=\"%d\" y1=\"%s\" x2=\"%d\" y2=\"%s\" stroke=\"#ddd\"/>\n<text "
              "class=\"ytick\" x=\"%d\" y=\"%s\" dy=\"0.35em\" text-anchor=\"end\">%s</text>\n",
              x0, at, x0 + w, at, x0 - 6, at, label);
    } else {
      mrl__plot_fixed(at, x0 + u * w, 2);
      fprintf(f,
              "<line x1=\"%s\" y1=\"%d\" x2=\"%s\" y2=\"%d\" stroke=\"#ddd\"/>\n<text "
              "class=\"xtick\" x=\"%s\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
              at, y0, at, y0 + h, at, y0 + h + 16, label);
    }
  }
}

typedef struct mrl__plot_panel {
  const char *name, *name_end;
  int col; /* in the CSV */
} mrl__plot_panel;

static int mrl__plot_same(const char *s, const char *e, const char *t, const char *te) {
  return e - s == te - t && memcmp(s, t, (size_t)(e - s)) == 0;
}

MRL_DEF mrl_result mrl_plot_csv_svg(const char *csv_path, const char *svg_path,
                                    const char *x_column, const char *y_columns,
                                    const char *title) {
  /* layout in pixels: image width, plot left edge and size, panel height (name, plot, ticks) */
  const int width = 800, x0 = 72, pw = 700, ph = 220, panel_h = 278;
  char *text = NULL, b1[48], b2[48];
  const char *p, *line, *eol, *end, *cs, *ce, *xn, *xe;
  mrl__plot_panel *pn;
  mrl__plot_axis ax, ay;
  double *xs = NULL, *ys, *px, *py;
  size_t len = 0, cap = 1;
  int np = 1, k, i, n, col, xcol = -1, rows = 0, header = 0, top, height;
  FILE *f;
  mrl_result r = MRL_OK;
  if (!csv_path || !svg_path || !x_column || !y_columns) return MRL_ERR_INVALID_ARGUMENT;
  for (p = y_columns; *p; p++) np += *p == ',';
  if (!(pn = (mrl__plot_panel *)MRL_MALLOC(sizeof(mrl__plot_panel) * (size_t)np)))
    return MRL_ERR_OUT_OF_MEMORY;
  p = x_column;
  mrl__plot_cell(&p, x_column + strlen(x_column), &xn, &xe);
  p = y_columns;
  for (k = 0; k < np && mrl__plot_cell(&p, y_columns + strlen(y_columns), &cs, &ce); k++) {
    pn[k].name = cs, pn[k].name_end = ce, pn[k].col = -1;
    if (cs == ce) r = MRL_ERR_INVALID_ARGUMENT; /* "a,,b" */
  }
  np = k; /* fewer when a quoted name holds a comma */
  if (xn == xe || r || (r = mrl__plot_read(csv_path, &text, &len)) != MRL_OK) goto done;
  end = text + len;
  for (p = text; p < end; p++) cap += *p == '\n';
  if (!(xs = (double *)MRL_MALLOC(sizeof(double) * cap * (size_t)(np + 3)))) {
    r = MRL_ERR_OUT_OF_MEMORY;
    goto done;
  }
  px = xs + cap, py = px + cap, ys = py + cap;                               /* ys: [np][cap] */
  line = len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0 ? text + 3 : text; /* UTF-8 BOM */
  for (; line < end; line = eol + 1) {
    if (!(eol = (const char *)memchr(line, '\n', (size_t)(end - line)))) eol = end;
    for (cs = line; cs < eol && (*cs == ' ' || *cs == '\t' || *cs == '\r'); cs++) {
    }
    if (cs == eol) continue; /* blank line */
    if (!header) {           /* the first line names the columns */
      for (p = line, col = 0; mrl__plot_cell(&p, eol, &cs, &ce); col++) {
        if (xcol < 0 && mrl__plot_same(cs, ce, xn, xe)) xcol = col;
        for (k = 0; k < np; k++)
          if (pn[k].col < 0 && mrl__plot_same(cs, ce, pn[k].name, pn[k].name_end)) pn[k].col = col;
      }
      header = 1;
      continue;
    }
    xs[rows] = NAN;
    for (k = 0; k < np; k++) ys[(size_t)k * cap + (size_t)rows] = NAN;
    for (p = line, col = 0; mrl__plot_cell(&p, eol, &cs, &ce); col++) {
      if (col == xcol) mrl__plot_number(cs, ce, &xs[rows]);
      for (k = 0; k < np; k++)
        if (col == pn[k].col) mrl__plot_number(cs, ce, &ys[(size_t)k * cap + (size_t)rows]);
    }
    rows += isfinite(xs[rows]) != 0; /* a row without x has no place on the chart */
  }
  for (k = 0; k < np; k++) xcol = pn[k].col < 0 ? -1 : xcol;
  if (xcol < 0 || !(f = fopen(svg_path, "wb"))) {
    r = xcol < 0 ? MRL_ERR_INVALID_ARGUMENT : MRL_ERR_IO; /* a named column is not in the header */
    goto done;
  }
  mrl__plot_axis_make(&ax, xs, rows);
  top = title ? 40 : 8;
  height = top + np * panel_h + 24;
  fprintf(f,
          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
          "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" "
          "font-size=\"12\">\n<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n",
          width, height, width, height, width, height);
  if (title) {
    fprintf(f, "<text class=\"title\" x=\"%d\" y=\"26\" text-anchor=\"middle\" font-size=\"16\">",
            width / 2);
    mrl__plot_text(f, title, title + strlen(title));
    fprintf(f, "</text>\n");
  }
  for (k = 0; k < np; k++) {
    const double *y = ys + (size_t)k * cap;
    int y0 = top + k * panel_h + 24;
    n = mrl__plot_axis_make(&ay, y, rows);
    fprintf(f, "<g class=\"panel\">\n<text class=\"name\" x=\"%d\" y=\"%d\" font-weight=\"bold\">",
            x0, y0 - 8);
    mrl__plot_text(f, pn[k].name, pn[k].name_end);
    fprintf(f, "</text>\n");
    mrl__plot_ticks(f, &ay, 1, x0, y0, pw, ph);
    mrl__plot_ticks(f, &ax, 0, x0, y0, pw, ph);
    fprintf(f,
            "<rect class=\"plot\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
            "stroke=\"#444\"/>\n",
            x0, y0, pw, ph);
    for (i = 0; i < rows; i++) {
      px[i] = x0 + mrl__plot_frac(&ax, xs[i]) * pw;
      py[i] = y0 + ph - mrl__plot_frac(&ay, y[i]) * ph;
    }
    if (n == 0) {
      fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"#888\">no data</text>\n",
              x0 + pw / 2, y0 + ph / 2);
    } else {
      fprintf(f, "<polyline class=\"curve\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" "
                 "stroke-linejoin=\"round\" points=\"");
      mrl__plot_curve(f, px, py, y, rows);
      fprintf(f, "\"/>\n");
    }
    for (i = 0; i < rows && n == 1; i++) /* a lone point draws no line: a dot */
      if (isfinite(y[i]))
        fprintf(f, "<circle cx=\"%s\" cy=\"%s\" r=\"3\" fill=\"#1f77b4\"/>\n",
                mrl__plot_fixed(b1, px[i], 2), mrl__plot_fixed(b2, py[i], 2));
    fprintf(f, "</g>\n");
  }
  fprintf(f, "<text class=\"xname\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">", x0 + pw / 2,
          height - 8);
  mrl__plot_text(f, xn, xe);
  fprintf(f, "</text>\n</svg>\n");
  if (ferror(f)) r = MRL_ERR_IO;
  if (fclose(f) != 0) r = MRL_ERR_IO;
done:
  MRL_FREE(xs);
  MRL_FREE(text);
  MRL_FREE(pn);
  return r;
}

/* ---- threads ---- */
#ifdef MRL_THREADS
/* fn and arg ride along because the platform entry points have other signatures. */
typedef struct mrl__thread_impl {
#if defined(_WIN32)
  HANDLE handle;
#else
  pthread_t id;
#endif
  void (*fn)(void *);
  void *arg;
} mrl__thread_impl;

#if defined(_WIN32)
static DWORD WINAPI mrl__thread_main(LPVOID p) {
  ((mrl__thread_impl *)p)->fn(((mrl__thread_impl *)p)->arg);
  return 0;
}
#else
static void *mrl__thread_main(void *p) {
  ((mrl__thread_impl *)p)->fn(((mrl__thread_impl *)p)->arg);
  return NULL;
}
#endif

MRL_DEF mrl_result mrl_thread_start(mrl_thread *t, void (*fn)(void *), void *arg) {
  mrl__thread_impl *p = (mrl__thread_impl *)MRL_MALLOC(sizeof(mrl__thread_impl));
  int ok;
  t->impl = NULL;
  if (!p) return MRL_ERR_OUT_OF_MEMORY;
  p->fn = fn, p->arg = arg;
#if defined(_WIN32)
  p->handle = CreateThread(NULL, 0, mrl__thread_main, p, 0, NULL);
  ok = p->handle != NULL;
#else
  ok = pthread_create(&p->id, NULL, mrl__thread_main, p) == 0;
#endif
  if (!ok) {
    MRL_FREE(p);
    return MRL_ERR_OUT_OF_MEMORY; /* the system's thread or memory limit */
  }
  t->impl = p;
  return MRL_OK;
}

MRL_DEF mrl_result mrl_thread_join(mrl_thread *t) {
  mrl__thread_impl *p = (mrl__thread_impl *)t->impl;
  if (!p) return MRL_ERR_INVALID_ARGUMENT;
#if defined(_WIN32)
  if (WaitForSingleObject(p->handle, INFINITE) != WAIT_OBJECT_0) return MRL_ERR_INVALID_ARGUMENT;
  CloseHandle(p->handle);
#else
  if (pthread_join(p->id, NULL) != 0) return MRL_ERR_INVALID_ARGUMENT; /* e.g. joins itself */
#endif
  MRL_FREE(p);
  t->impl = NULL;
  return MRL_OK;
}

#if defined(_WIN32)
typedef CRITICAL_SECTION mrl__mutex_impl;
typedef CONDITION_VARIABLE mrl__cond_impl;
#else
typedef pthread_mutex_t mrl__mutex_impl;
typedef pthread_cond_t mrl__cond_impl;
#endif

MRL_DEF mrl_result mrl_mutex_init(mrl_mutex *m) {
  mrl__mutex_impl *p = (mrl__mutex_impl *)MRL_MALLOC(sizeof(mrl__mutex_impl));
  m->impl = p;
  if (!p) return MRL_ERR_OUT_OF_MEMORY;
#if defined(_WIN32)
  InitializeCriticalSection(p);
#else
  if (pthread_mutex_init(p, NULL) != 0) {
    MRL_FREE(p);
    m->impl = NULL;
    return MRL_ERR_OUT_OF_MEMORY;
  }
#endif
  return MRL_OK;
}

MRL_DEF void mrl_mutex_lock(mrl_mutex *m) {
#if defined(_WIN32)
  EnterCriticalSection((mrl__mutex_impl *)m->impl);
#else
  int rc = pthread_mutex_lock((mrl__mutex_impl *)m->impl);
  MRL_ASSERT(rc == 0);
  (void)rc;
#endif
}

MRL_DEF void mrl_mutex_unlock(mrl_mutex *m) {
#if defined(_WIN32)
  LeaveCriticalSection((mrl__mutex_impl *)m->impl);
#else
  int rc = pthread_mutex_unlock((mrl__mutex_impl *)m->impl);
  MRL_ASSERT(rc == 0);
  (void)rc;
#endif
}

MRL_DEF void mrl_mutex_free(mrl_mutex *m) {
  if (!m->impl) return;
#if defined(_WIN32)
  DeleteCriticalSection((mrl__mutex_impl *)m->impl);
#else
  pthread_mutex_destroy((mrl__mutex_impl *)m->impl);
#endif
  MRL_FREE(m->impl);
  m->impl = NULL;
}

MRL_DEF mrl_result mrl_cond_init(mrl_cond *c) {
  mrl__cond_impl *p = (mrl__cond_impl *)MRL_MALLOC(sizeof(mrl__cond_impl));
  c->impl = p;
  if (!p) return MRL_ERR_OUT_OF_MEMORY;
#if defined(_WIN32)
  InitializeConditionVariable(p);
#else
  if (pthread_cond_init(p, NULL) != 0) {
    MRL_FREE(p);
    c->impl = NULL;
    return MRL_ERR_OUT_OF_MEMORY;
  }
#endif
  return MRL_OK;
}

MRL_DEF void mrl_cond_wait(mrl_cond *c, mrl_mutex *m) {
#if defined(_WIN32)
  SleepConditionVariableCS((mrl__cond_impl *)c->impl, (mrl__mutex_impl *)m->impl, INFINITE);
#else
  int rc = pthread_cond_wait((mrl__cond_impl *)c->impl, (mrl__mutex_impl *)m->impl);
  MRL_ASSERT(rc == 0);
  (void)rc;
#endif
}

MRL_DEF void mrl_cond_signal(mrl_cond *c) {
#if defined(_WIN32)
  WakeConditionVariable((mrl__cond_impl *)c->impl);
#else
  pthread_cond_signal((mrl__cond_impl *)c->impl);
#endif
}

MRL_DEF void mrl_cond_broadcast(mrl_cond *c) {
#if defined(_WIN32)
  WakeAllConditionVariable((mrl__cond_impl *)c->impl);
#else
  pthread_cond_broadcast((mrl__cond_impl *)c->impl);
#endif
}

MRL_DEF void mrl_cond_free(mrl_cond *c) {
  if (!c->impl) return;
#if !defined(_WIN32)
  pthread_cond_destroy((mrl__cond_impl *)c->impl);
#endif
  MRL_FREE(c->impl); /* a Windows condition variable needs no destruction */
  c->impl = NULL;
}
#endif /* MRL_THREADS */

/* ---- progress ---- */

MRL_DEF int mrl_progress_print(const mrl_train_progress *p, void *user) {
  FILE *f = user ? (FILE *)user : stdout;
  char success[16];
  if (p->success_rate >= 0.0f)
    snprintf(success, sizeof success, "%.2f", p->success_rate);
  else
    snprintf(success, sizeof success, "-");
  fprintf(f,
          "%s %s iter %d/%d steps %lld return %.2f success %s len %.1f episodes %lld "
          "pi %.4f v %.4f ent %.3f kl %.4f sps %.0f\n",
          p->algo, p->env_id, p->iteration, p->num_iterations, p->env_steps, p->mean_return,
          success, p->mean_length, p->episodes, p->policy_loss, p->value_loss, p->entropy,
          p->approx_kl, p->steps_per_second);
  fflush(f);
  return 0;
}

MRL_DEF mrl_result mrl_csv_logger_open(mrl_csv_logger *l, const char *path) {
  l->wrote_header = 0;
  l->file = fopen(path, "w");
  return l->file ? MRL_OK : MRL_ERR_IO;
}

MRL_DEF int mrl_csv_logger_write(const mrl_train_progress *p, void *logger) {
  mrl_csv_logger *l = (mrl_csv_logger *)logger;
  if (!l || !l->file) return 0;
  if (!l->wrote_header) {
    fprintf(l->file, "algo,env,iteration,env_steps,seconds,episodes,mean_return,mean_length,"
                     "success_rate,learning_rate,policy_loss,value_loss,entropy,approx_kl,"
                     "clip_fraction,explained_variance\n");
    l->wrote_header = 1;
  }
  fprintf(l->file, "%s,%s,%d,%lld,%.3f,%lld,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g\n",
          p->algo, p->env_id, p->iteration, p->env_steps, p->seconds, p->episodes, p->mean_return,
          p->mean_length, p->success_rate, p->learning_rate, p->policy_loss, p->value_loss,
          p->entropy, p->approx_kl, p->clip_fraction, p->explained_variance);
  fflush(l->file);
  return 0;
}

MRL_DEF void mrl_csv_logger_close(mrl_csv_logger *l) {
  if (l->file) fclose(l->file);
  l->file = NULL;
}

/* ---- observation normaliser ---- */

MRL_DEF mrl_result mrl_obs_normalizer_init(mrl_obs_normalizer *n, int dim) {
  int i;
  n->dim = dim;
  n->count = 1e-4; /* SB3's RunningMeanStd epsilon */
  n->clip = 10.0f;
  n->mean = (double *)MRL_MALLOC(sizeof(double) * (size_t)dim);
  n->var = (double *)MRL_MALLOC(sizeof(double) * (size_t)dim);
  if (!n->mean || !n->var) return MRL_ERR_OUT_OF_MEMORY;
  for (i = 0; i < dim; i++) {
    n->mean[i] = 0.0;
    n->var[i] = 1.0;
  }
  return MRL_OK;
}

MRL_DEF void mrl_obs_normalizer_update(mrl_obs_normalizer *n, const float *obs, int rows) {
  /* parallel-variance merge of the batch moments into the running ones */
  int i, r;
  double batch = (double)rows, total = n->count + batch;
  for (i = 0; i < n->dim; i++) {
    double m = 0.0, v = 0.0, delta, m2;
    for (r = 0; r < rows; r++) m += obs[(size_t)r * n->dim + i];
    m /= batch;
    for (r = 0; r < rows; r++) {
      double d = obs[(size_t)r * n->dim + i] - m;
      v += d * d;
    }
    v /= batch;
    delta = m - n->mean[i];
    m2 = n->var[i] * n->count + v * batch + delta * delta * n->count * batch / total;
    n->mean[i] += delta * batch / total;
    n->var[i] = m2 / total;
  }
  n->count = total;
}

MRL_DEF void mrl_obs_normalizer_apply(const mrl_obs_normalizer *n, const float *obs, int rows,
                                      float *out) {
  int i, r;
  for (r = 0; r < rows; r++)
    for (i = 0; i < n->dim; i++) {
      size_t k = (size_t)r * n->dim + i;
      float v = (float)((obs[k] - n->mean[i]) / sqrt(n->var[i] + 1e-8));
      out[k] = v < -n->clip ? -n->clip : (v > n->clip ? n->clip : v);
    }
}

MRL_DEF void mrl_obs_normalizer_free(mrl_obs_normalizer *n) {
  MRL_FREE(n->mean);
  MRL_FREE(n->var);
  n->mean = n->var = NULL;
}

/* ---- PPO ---- */

MRL_DEF mrl_ppo_config mrl_ppo_config_default(void) {
  mrl_ppo_config c;
  memset(&c, 0, sizeof c);
  c.seed = 1;
  c.num_steps = 128;
  c.learning_rate = 2.5e-4f;
  c.anneal_lr = 1;
  c.gamma = 0.99f;
  c.gae_lambda = 0.95f;
  c.num_minibatches = 4;
  c.update_epochs = 4;
  c.norm_adv = 1;
  c.clip_coef = 0.2f;
  c.clip_vloss = 1;
  c.ent_coef = 0.01f;
  c.vf_coef = 0.5f;
  c.max_grad_norm = 0.5f;
  c.target_kl = 0.0f;
  c.adam_eps = 1e-5f;
  c.encoder_sizes[0] = 64;
  c.encoder_sizes[1] = 64;
  c.num_encoder_layers = 2;
  c.core = mrl_core_config_default();
  c.num_head_layers = 0;
  c.activation = MRL_ACT_TANH;
  c.orthogonal_init = 1;
  c.shared_torso = 0;
  c.normalize_obs = 0;
  c.normalize_reward = 0;
  return c;
}

/* Builds encoder -> core -> head -> linear(out_dim). torso = 0 builds only the
 * output layer (the critic of a shared torso). */
static void mrl__ppo_tower_init(mrl__ppo_tower *t, mrl_params *p, const char *name,
                                const mrl_ppo_config *c, int in_dim, int out_dim, float out_gain,
                                int torso, int torso_out_dim) {
  char buf[64];
  int sizes[MRL_PPO_MAX_LAYERS + 1], i, dim = in_dim;
  mrl_init hidden = c->orthogonal_init ? mrl_init_orthogonal(sqrtf(2.0f)) : mrl_init_default();
  mrl_init out = c->orthogonal_init ? mrl_init_orthogonal(out_gain) : mrl_init_default();
  memset(t, 0, sizeof *t);
  if (torso) {
    if (c->num_encoder_layers > 0) {
      sizes[0] = dim;
      for (i = 0; i < c->num_encoder_layers; i++) sizes[i + 1] = c->encoder_sizes[i];
      snprintf(buf, sizeof buf, "%s.encoder", name);
      mrl_mlp_init(&t->encoder, p, buf, c->num_encoder_layers + 1, sizes, c->activation, hidden,
                   hidden);
      t->encoder.activate_output = 1;
      dim = sizes[c->num_encoder_layers];
    }
    {
      mrl_core_config cc = c->core;
      if (c->orthogonal_init && cc.init.kind == MRL_INIT_DEFAULT)
        cc.init = mrl_init_orthogonal(1.0f); /* CleanRL's LSTM: orthogonal 1, biases 0 */
      snprintf(buf, sizeof buf, "%s.core", name);
      mrl_core_init(&t->core, p, buf, dim, &cc);
      dim = t->core.output_dim;
    }
    if (c->num_head_layers > 0) {
      sizes[0] = dim;
      for (i = 0; i < c->num_head_layers; i++) sizes[i + 1] = c->head_sizes[i];
      snprintf(buf, sizeof buf, "%s.head", name);
      mrl_mlp_init(&t->head, p, buf, c->num_head_layers + 1, sizes, c->activation, hidden, hidden);
      t->head.activate_output = 1;
      dim = sizes[c->num_head_layers];
    }
  } else {
    dim = torso_out_dim;
  }
  snprintf(buf, sizeof buf, "%s.out", name);
  mrl_linear_layer_init(&t->out, p, buf, dim, out_dim, out);
}

static int mrl__ppo_torso_out_dim(const mrl__ppo_tower *t) {
  return t->out.in_features;
}

/* x [T*B, obs] -> torso features [T*B, F] */
static mrl_tensor *mrl__ppo_torso(const mrl__ppo_tower *t, mrl_graph *g, mrl_tensor *x, int T,
                                  int B, const float *starts, const float *state_in,
                                  float *state_out, int stride) {
  if (t->encoder.num_layers) x = mrl_mlp_forward(&t->encoder, g, x);
  x = mrl_core_forward(&t->core, g, x, T, B, starts, state_in, state_out, stride);
  if (t->head.num_layers) x = mrl_mlp_forward(&t->head, g, x);
  return x;
}

/* Logits [T*B, A] and values [T*B]. State for environment b: actor's at
 * state + b*stride, critic's right after it. state_out may be NULL. */
static void mrl__ppo_forward(mrl_ppo *a, mrl_graph *g, mrl_tensor *x, int T, int B,
                             const float *starts, const float *state_in, float *state_out,
                             int stride, mrl_tensor **logits, mrl_tensor **values) {
  mrl_tensor *fa, *fc, *v;
  int shape[1];
  fa = mrl__ppo_torso(&a->actor, g, x, T, B, starts, state_in, state_out, stride);
  if (logits) *logits = mrl_linear_layer_forward(&a->actor.out, g, fa);
  if (!values) return;
  if (a->cfg.shared_torso) {
    fc = fa;
  } else {
    fc = mrl__ppo_torso(&a->critic, g, x, T, B, starts,
                        state_in ? state_in + a->actor_state_dim : NULL,
                        state_out ? state_out + a->actor_state_dim : NULL, stride);
  }
  v = mrl_linear_layer_forward(&a->critic.out, g, fc);
  shape[0] = T * B;
  *values = mrl_reshape(g, v, 1, shape);
}

MRL_DEF mrl_result mrl_ppo_init(mrl_ppo *a, const mrl_ppo_config *cfg, const mrl_vecenv *env) {
  mrl_result r;
  int n, T, torso_dim;
  size_t tb;
  memset(a, 0, sizeof *a);
  if (!cfg || !env || env->num_actions < 1 || cfg->num_steps < 1 || cfg->num_minibatches < 1 ||
      cfg->update_epochs < 1 || cfg->num_encoder_layers < 0 ||
      cfg->num_encoder_layers > MRL_PPO_MAX_LAYERS || cfg->num_head_layers < 0 ||
      cfg->num_head_layers > MRL_PPO_MAX_LAYERS)
    return MRL_ERR_INVALID_ARGUMENT;
  a->cfg = *cfg;
  a->obs_dim = env->obs_dim;
  a->num_actions = env->num_actions;
  a->num_envs = n = env->num_envs;
  T = cfg->num_steps;
  a->recurrent = cfg->core.kind != MRL_CORE_NONE;
  if (a->recurrent && n % cfg->num_minibatches != 0) return MRL_ERR_INVALID_ARGUMENT;
  if (!a->recurrent && (n * T) / cfg->num_minibatches < 1) return MRL_ERR_INVALID_ARGUMENT;
  mrl_params_init(&a->params);
  mrl__ppo_tower_init(&a->actor, &a->params, "actor", cfg, a->obs_dim, a->num_actions, 0.01f, 1, 0);
  torso_dim = mrl__ppo_torso_out_dim(&a->actor);
  mrl__ppo_tower_init(&a->critic, &a->params, "critic", cfg, a->obs_dim, 1, 1.0f,
                      !cfg->shared_torso, torso_dim);
  if ((r = mrl_params_finalize(&a->params, cfg->seed)) != MRL_OK) goto fail;
  a->actor_state_dim = mrl_core_state_dim(&a->actor.core);
  a->critic_state_dim = cfg->shared_torso ? 0 : mrl_core_state_dim(&a->critic.core);
  a->state_dim = a->actor_state_dim + a->critic_state_dim;
  if ((r = mrl_graph_init(&a->graph, (size_t)1 << 22)) != MRL_OK) goto fail;
  if ((r = mrl_graph_init(&a->act_graph, (size_t)1 << 18)) != MRL_OK) goto fail;
  if ((r = mrl_rollout_init(&a->rollout, T, n, a->obs_dim, 1, a->state_dim)) != MRL_OK) goto fail;
  if ((r = mrl_obs_normalizer_init(&a->obs_norm, a->obs_dim)) != MRL_OK) goto fail;
  if ((r = mrl_obs_normalizer_init(&a->return_norm, 1)) != MRL_OK) goto fail;
  mrl_episode_stats_init(&a->stats);
  a->rng = mrl_rng_make(cfg->seed ^ 0x9e3779b97f4a7c15ULL);
  tb = (size_t)n * T;
  a->env_state = (float *)MRL_MALLOC(sizeof(float) * ((size_t)n * a->state_dim + 1));
  a->env_starts = (float *)MRL_MALLOC(sizeof(float) * (size_t)n);
  a->step_obs = (float *)MRL_MALLOC(sizeof(float) * (size_t)n * a->obs_dim);
  a->step_values = (float *)MRL_MALLOC(sizeof(float) * (size_t)n);
  a->env_returns = (double *)MRL_MALLOC(sizeof(double) * (size_t)n);
  a->mb_index = (int *)MRL_MALLOC(sizeof(int) * tb);
  a->mb_actions = (int *)MRL_MALLOC(sizeof(int) * tb);
  a->env_perm = (int *)MRL_MALLOC(sizeof(int) * (size_t)n);
  a->mb_obs = (float *)MRL_MALLOC(sizeof(float) * tb * a->obs_dim);
  a->mb_starts = (float *)MRL_MALLOC(sizeof(float) * tb);
  a->mb_state = (float *)MRL_MALLOC(sizeof(float) * ((size_t)n * a->state_dim + 1));
  a->mb_scalars = (float *)MRL_MALLOC(sizeof(float) * tb * 4);
  if (!a->env_state || !a->env_starts || !a->step_obs || !a->step_values || !a->env_returns ||
      !a->mb_index || !a->env_perm || !a->mb_actions || !a->mb_obs || !a->mb_starts ||
      !a->mb_state || !a->mb_scalars) {
    r = MRL_ERR_OUT_OF_MEMORY;
    goto fail;
  }
  memset(a->env_state, 0, sizeof(float) * ((size_t)n * a->state_dim + 1));
  memset(a->env_returns, 0, sizeof(double) * (size_t)n);
  return MRL_OK;
fail:
  mrl_ppo_free(a);
  return r;
}

MRL_DEF void mrl_ppo_free(mrl_ppo *a) {
  mrl_params_free(&a->params);
  mrl_graph_free(&a->graph);
  mrl_graph_free(&a->act_graph);
  mrl_rollout_free(&a->rollout);
  mrl_obs_normalizer_free(&a->obs_norm);
  mrl_obs_normalizer_free(&a->return_norm);
  MRL_FREE(a->env_state);
  MRL_FREE(a->env_starts);
  MRL_FREE(a->step_obs);
  MRL_FREE(a->step_values);
  MRL_FREE(a->env_returns);
  MRL_FREE(a->mb_index);
  MRL_FREE(a->mb_actions);
  MRL_FREE(a->env_perm);
  MRL_FREE(a->mb_obs);
  MRL_FREE(a->mb_starts);
  MRL_FREE(a->mb_state);
  MRL_FREE(a->mb_scalars);
  memset(a, 0, sizeof *a);
}

MRL_DEF int mrl_ppo_state_dim(const mrl_ppo *a) {
  return a->state_dim;
}

static const float *mrl__ppo_prepare_obs(mrl_ppo *a, mrl_graph *g, const float *obs, int n) {
  float *x;
  if (!a->cfg.normalize_obs) return obs;
  x = (float *)mrl_graph_alloc(g, sizeof(float) * (size_t)n * a->obs_dim);
  if (x) mrl_obs_normalizer_apply(&a->obs_norm, obs, n, x);
  return x;
}

MRL_DEF mrl_result mrl_ppo_act(mrl_ppo *a, const float *obs, int n, float *state,
                               const float *episode_start, int greedy, mrl_rng *rng,
                               float *actions) {
  mrl_graph *g = &a->act_graph;
  mrl_tensor *x, *logits = NULL, *v = NULL;
  const float *xo;
  int i;
  if (n < 1 || !obs || !actions || (a->state_dim && !state)) return MRL_ERR_INVALID_ARGUMENT;
  mrl_graph_reset(g);
  mrl_graph_set_no_grad(g, 1);
  xo = mrl__ppo_prepare_obs(a, g, obs, n);
  x = xo ? mrl_tensor_from2(g, xo, n, a->obs_dim) : NULL;
  /* a critic with its own recurrent state runs too, so that state advances */
  if (x)
    mrl__ppo_forward(a, g, x, 1, n, episode_start, state, state, a->state_dim, &logits,
                     a->critic_state_dim ? &v : NULL);
  if (!logits || (a->critic_state_dim && !v))
    return mrl_graph_status(g) != MRL_OK ? mrl_graph_status(g) : MRL_ERR_OUT_OF_MEMORY;
  if (!rng) rng = &a->rng;
  for (i = 0; i < n; i++) {
    const float *row = logits->data + (size_t)i * a->num_actions;
    actions[i] = (float)(greedy ? mrl_categorical_mode(row, a->num_actions)
                                : mrl_categorical_sample(row, a->num_actions, rng));
  }
  /* fold an overflow into the arena now: later calls of this size allocate nothing */
  mrl_graph_reset(g);
  return MRL_OK;
}

MRL_DEF mrl_result mrl_ppo_value(mrl_ppo *a, const float *obs, int n, const float *state,
                                 const float *episode_start, float *values) {
  mrl_graph *g = &a->act_graph;
  mrl_tensor *x, *v = NULL;
  const float *xo;
  if (n < 1 || !obs || !values || (a->state_dim && !state)) return MRL_ERR_INVALID_ARGUMENT;
  mrl_graph_reset(g);
  mrl_graph_set_no_grad(g, 1);
  xo = mrl__ppo_prepare_obs(a, g, obs, n);
  x = xo ? mrl_tensor_from2(g, xo, n, a->obs_dim) : NULL;
  if (x) mrl__ppo_forward(a, g, x, 1, n, episode_start, state, NULL, a->state_dim, NULL, &v);
  if (!v) return mrl_graph_status(g) != MRL_OK ? mrl_graph_status(g) : MRL_ERR_OUT_OF_MEMORY;
  memcpy(values, v->data, sizeof(float) * (size_t)n);
  /* fold an overflow into the arena now: later calls of this size allocate nothing */
  mrl_graph_reset(g);
  return MRL_OK;
}

MRL_DEF mrl_result mrl_ppo_evaluate(mrl_ppo *a, mrl_vecenv *env, int episodes, int greedy,
                                    mrl_episode_stats *stats) {
  int n, i, done = 0, *count, *target;
  float *state, *starts, *actions;
  mrl_result r;
  mrl_rng rng = mrl_rng_make(a->cfg.seed ^ 0x5851f42d4c957f2dULL);
  if (!env || !stats || episodes < 1 || episodes > MRL_EPISODE_STATS_WINDOW ||
      env->obs_dim != a->obs_dim || env->num_actions != a->num_actions)
    return MRL_ERR_INVALID_ARGUMENT;
  n = env->num_envs;
  state = (float *)MRL_MALLOC(sizeof(float) * ((size_t)n * a->state_dim + 1));
  starts = (float *)MRL_MALLOC(sizeof(float) * (size_t)n);
  actions = (float *)MRL_MALLOC(sizeof(float) * (size_t)n);
  count = (int *)MRL_MALLOC(sizeof(int) * (size_t)n * 2);
  if (!state || !starts || !actions || !count) {
    r = MRL_ERR_OUT_OF_MEMORY;
    goto out;
  }
  target = count + n;
  memset(state, 0, sizeof(float) * ((size_t)n * a->state_dim + 1));
  for (i = 0; i < n; i++) {
    starts[i] = 1.0f;
    count[i] = 0;
    target[i] = (episodes + i) / n;
  }
  mrl_episode_stats_init(stats);
  if ((r = mrl_vecenv_reset(env)) != MRL_OK) goto out;
  while (done < episodes) {
    if ((r = mrl_ppo_act(a, env->obs, n, state, starts, greedy, &rng, actions)) != MRL_OK) goto out;
    if ((r = mrl_vecenv_step(env, actions)) != MRL_OK) goto out;
    for (i = 0; i < n; i++) {
      starts[i] = (float)(env->terminated[i] || env->truncated[i]);
      if (starts[i] != 0.0f && count[i] < target[i]) {
        mrl_episode_stats_add(stats, env->episode_return[i], env->episode_length[i],
                              env->episode_success[i]);
        count[i]++;
        done++;
      }
    }
  }
  r = MRL_OK;
out:
  MRL_FREE(state);
  MRL_FREE(starts);
  MRL_FREE(actions);
  MRL_FREE(count);
  return r;
}

/* SB3 VecNormalize's reward scaling: each environment's discounted return
 * feeds running statistics, and rewards are divided by their std (no mean
 * subtraction), clipped to +-10; the return restarts when an episode ends. */
static void mrl__ppo_normalize_rewards(mrl_ppo *a, const mrl_vecenv *env, float *out) {
  mrl_obs_normalizer *n = &a->return_norm;
  int B = a->num_envs, b;
  double scale;
  for (b = 0; b < B; b++) {
    a->env_returns[b] = a->env_returns[b] * a->cfg.gamma + env->rewards[b];
    out[b] = (float)a->env_returns[b]; /* staging for the statistics update */
  }
  mrl_obs_normalizer_update(n, out, B);
  scale = 1.0 / sqrt(n->var[0] + 1e-8);
  for (b = 0; b < B; b++) {
    float v = (float)(env->rewards[b] * scale);
    out[b] = v < -n->clip ? -n->clip : (v > n->clip ? n->clip : v);
    if (env->terminated[b] || env->truncated[b]) a->env_returns[b] = 0.0;
  }
}

/* One rollout of num_steps vector steps into a->rollout. */
static mrl_result mrl__ppo_collect(mrl_ppo *a, mrl_vecenv *env) {
  mrl_rollout *ro = &a->rollout;
  mrl_graph *g = &a->act_graph;
  int T = a->cfg.num_steps, B = a->num_envs, O = a->obs_dim, A = a->num_actions, t, b;
  mrl_result r;
  memcpy(ro->initial_state, a->env_state, sizeof(float) * (size_t)B * a->state_dim);
  for (t = 0; t < T; t++) {
    size_t base = (size_t)t * B;
    mrl_tensor *x, *logits = NULL, *values = NULL;
    if (a->cfg.normalize_obs) {
      mrl_obs_normalizer_update(&a->obs_norm, env->obs, B);
      mrl_obs_normalizer_apply(&a->obs_norm, env->obs, B, a->step_obs);
    } else {
      memcpy(a->step_obs, env->obs, sizeof(float) * (size_t)B * O);
    }
    mrl_graph_reset(g);
    mrl_graph_set_no_grad(g, 1);
    x = mrl_tensor_from2(g, a->step_obs, B, O);
    if (x)
      mrl__ppo_forward(a, g, x, 1, B, a->env_starts, a->env_state, a->env_state, a->state_dim,
                       &logits, &values);
    if (!logits || !values) return MRL_ERR_OUT_OF_MEMORY;
    memcpy(ro->obs + base * O, a->step_obs, sizeof(float) * (size_t)B * O);
    memcpy(ro->episode_starts + base, a->env_starts, sizeof(float) * (size_t)B);
    memcpy(ro->values + base, values->data, sizeof(float) * (size_t)B);
    for (b = 0; b < B; b++) {
      const float *row = logits->data + (size_t)b * A;
      int act = mrl_categorical_sample(row, A, &a->rng);
      float mx = row[0], s = 0.0f;
      int k;
      for (k = 1; k < A; k++)
        if (row[k] > mx) mx = row[k];
      for (k = 0; k < A; k++) s += expf(row[k] - mx);
      ro->actions[base + b] = (float)act;
      ro->log_probs[base + b] = row[act] - mx - logf(s);
    }
    if ((r = mrl_vecenv_step(env, ro->actions + base)) != MRL_OK) return r;
    mrl_episode_stats_add_vecenv(&a->stats, env);
    if (a->cfg.normalize_reward) mrl__ppo_normalize_rewards(a, env, ro->rewards + base);
    for (b = 0; b < B; b++) {
      if (!a->cfg.normalize_reward) ro->rewards[base + b] = env->rewards[b];
      ro->terminated[base + b] = (float)(env->terminated[b] != 0);
      ro->truncated[base + b] = (float)(env->truncated[b] != 0 && !env->terminated[b]);
      ro->final_values[base + b] = 0.0f;
      a->env_starts[b] = (float)(env->terminated[b] || env->truncated[b]);
    }
    /* Bootstrap truncated episodes from V(final observation), evaluated with
     * the critic state that has seen the episode so far. */
    for (b = 0; b < B; b++) {
      if (ro->truncated[base + b] != 0.0f) {
        mrl_tensor *xf, *vf = NULL;
        float zero = 0.0f;
        mrl_graph_reset(g);
        if (a->cfg.normalize_obs)
          mrl_obs_normalizer_apply(&a->obs_norm, env->final_obs + (size_t)b * O, 1, a->step_obs);
        else
          memcpy(a->step_obs, env->final_obs + (size_t)b * O, sizeof(float) * (size_t)O);
        xf = mrl_tensor_from2(g, a->step_obs, 1, O);
        if (xf)
          mrl__ppo_forward(a, g, xf, 1, 1, &zero, a->env_state + (size_t)b * a->state_dim, NULL,
                           a->state_dim, NULL, &vf);
        if (!vf) return MRL_ERR_OUT_OF_MEMORY;
        ro->final_values[base + b] = vf->data[0];
      }
    }
    a->env_steps += B;
  }
  /* value of the observation after the last step, without advancing state */
  {
    mrl_tensor *x, *values = NULL;
    mrl_graph_reset(g);
    if (a->cfg.normalize_obs)
      mrl_obs_normalizer_apply(&a->obs_norm, env->obs, B, a->step_obs);
    else
      memcpy(a->step_obs, env->obs, sizeof(float) * (size_t)B * O);
    x = mrl_tensor_from2(g, a->step_obs, B, O);
    if (x)
      mrl__ppo_forward(a, g, x, 1, B, a->env_starts, a->env_state, NULL, a->state_dim, NULL,
                       &values);
    if (!values) return MRL_ERR_OUT_OF_MEMORY;
    memcpy(a->step_values, values->data, sizeof(float) * (size_t)B);
  }
  mrl_rollout_compute_gae(ro, a->step_values, a->cfg.gamma, a->cfg.gae_lambda);
  return MRL_OK;
}

typedef struct mrl__ppo_stats {
  double policy_loss, value_loss, entropy, approx_kl, clip_fraction;
  int count;
} mrl__ppo_stats;

/* One minibatch: entries idx[0..T*B) are rollout indices t*num_envs+env laid
 * out time-major (row t*B + k); the recurrent state of column k comes from
 * mb_state. Returns the minibatch's approx_kl. */
static float mrl__ppo_minibatch(mrl_ppo *a, const int *idx, int T, int B, float lr, float clip,
                                mrl__ppo_stats *st) {
  mrl_rollout *ro = &a->rollout;
  mrl_graph *g = &a->graph;
  int N = T * B, O = a->obs_dim, i;
  float *old_logp = a->mb_scalars, *adv = old_logp + N, *ret = adv + N, *old_v = ret + N;
  double mean = 0.0, var = 0.0, kl = 0.0, clipped = 0.0;
  mrl_tensor *x, *logits = NULL, *values = NULL, *logp_all, *logp, *ratio, *tadv, *pg, *ent, *vl;
  mrl_tensor *loss, *t_old_logp, *t_ret, *t_old_v;
  mrl_adam_config adam;
  for (i = 0; i < N; i++) {
    int k = idx[i];
    memcpy(a->mb_obs + (size_t)i * O, ro->obs + (size_t)k * O, sizeof(float) * (size_t)O);
    a->mb_actions[i] = (int)ro->actions[k];
    a->mb_starts[i] = ro->episode_starts[k];
    old_logp[i] = ro->log_probs[k];
    adv[i] = ro->advantages[k];
    ret[i] = ro->returns[k];
    old_v[i] = ro->values[k];
    mean += adv[i];
  }
  if (a->cfg.norm_adv && N > 1) {
    /* torch's adv.std() is the unbiased estimate */
    mean /= N;
    for (i = 0; i < N; i++) var += (adv[i] - mean) * (adv[i] - mean);
    var /= (N - 1);
    for (i = 0; i < N; i++) adv[i] = (float)((adv[i] - mean) / (sqrt(var) + 1e-8));
  }
  mrl_graph_reset(g);
  mrl_graph_set_no_grad(g, 0);
  x = mrl_tensor_from2(g, a->mb_obs, N, O);
  if (x)
    mrl__ppo_forward(a, g, x, T, B, a->mb_starts, a->recurrent ? a->mb_state : NULL, NULL,
                     a->state_dim, &logits, &values);
  {
    int shape[1];
    shape[0] = N;
    t_old_logp = mrl_tensor_from(g, old_logp, 1, shape);
    tadv = mrl_tensor_from(g, adv, 1, shape);
    t_ret = mrl_tensor_from(g, ret, 1, shape);
    t_old_v = mrl_tensor_from(g, old_v, 1, shape);
  }
  logp_all = mrl_log_softmax(g, logits);
  logp = mrl_categorical_log_prob(g, logp_all, a->mb_actions);
  ent = mrl_mean(g, mrl_categorical_entropy(g, logp_all));
  ratio = mrl_exp(g, mrl_sub(g, logp, t_old_logp));
  /* policy loss: -mean(min(r A, clip(r) A)) */
  pg = mrl_neg(
      g, mrl_mean(g, mrl_minimum(g, mrl_mul(g, ratio, tadv),
                                 mrl_mul(g, mrl_clamp(g, ratio, 1.0f - clip, 1.0f + clip), tadv))));
  if (a->cfg.clip_vloss) {
    mrl_tensor *unclipped = mrl_square(g, mrl_sub(g, values, t_ret));
    mrl_tensor *vclip = mrl_add(g, t_old_v, mrl_clamp(g, mrl_sub(g, values, t_old_v), -clip, clip));
    mrl_tensor *clipped_loss = mrl_square(g, mrl_sub(g, vclip, t_ret));
    vl = mrl_scale(g, mrl_mean(g, mrl_maximum(g, unclipped, clipped_loss)), 0.5f);
  } else {
    vl = mrl_scale(g, mrl_mean(g, mrl_square(g, mrl_sub(g, values, t_ret))), 0.5f);
  }
  loss = mrl_add(g, mrl_sub(g, pg, mrl_scale(g, ent, a->cfg.ent_coef)),
                 mrl_scale(g, vl, a->cfg.vf_coef));
  if (!loss) return 0.0f; /* out of memory: skip (graph arena is heap-backed; not expected) */
  for (i = 0; i < N; i++) {
    double lr_i = (double)logp->data[i] - old_logp[i], r_i = exp(lr_i);
    kl += (r_i - 1.0) - lr_i;
    clipped += fabs(r_i - 1.0) > clip ? 1.0 : 0.0;
  }
  mrl_params_zero_grad(&a->params);
  mrl_backward(g, loss);
  mrl_params_clip_grad_norm(&a->params, a->cfg.max_grad_norm);
  adam = mrl_adam_config_default();
  adam.lr = lr;
  adam.eps = a->cfg.adam_eps;
  mrl_adam_step(&a->params, &adam);
  st->policy_loss += pg->data[0];
  st->value_loss += vl->data[0];
  st->entropy += ent->data[0];
  st->approx_kl += kl / N;
  st->clip_fraction += clipped / N;
  st->count++;
  return (float)(kl / N);
}

static void mrl__ppo_update(mrl_ppo *a, float lr, float clip, mrl__ppo_stats *st) {
  int T = a->cfg.num_steps, B = a->num_envs, M = a->cfg.num_minibatches, epoch, m, i, j;
  int S = a->state_dim;
  memset(st, 0, sizeof *st);
  for (epoch = 0; epoch < a->cfg.update_epochs; epoch++) {
    float kl = 0.0f;
    if (a->recurrent) {
      /* permute environments; each minibatch: B/M whole sequences */
      int per = B / M, *envs = a->env_perm, *idx = a->mb_index;
      for (i = 0; i < B; i++) envs[i] = i;
      for (i = B - 1; i > 0; i--) {
        int k = (int)mrl_rng_below(&a->rng, (uint32_t)(i + 1)), tmp = envs[i];
        envs[i] = envs[k];
        envs[k] = tmp;
      }
      for (m = 0; m < M; m++) {
        const int *chosen = envs + (size_t)m * per;
        for (i = 0; i < T; i++)
          for (j = 0; j < per; j++) idx[i * per + j] = i * B + chosen[j];
        for (j = 0; j < per; j++)
          memcpy(a->mb_state + (size_t)j * S, a->rollout.initial_state + (size_t)chosen[j] * S,
                 sizeof(float) * (size_t)S);
        kl = mrl__ppo_minibatch(a, idx, T, per, lr, clip, st);
        if (a->cfg.target_kl > 0.0f && kl > a->cfg.target_kl) break;
      }
    } else {
      int N = T * B, mb = N / M;
      for (i = 0; i < N; i++) a->mb_index[i] = i;
      for (i = N - 1; i > 0; i--) {
        int k = (int)mrl_rng_below(&a->rng, (uint32_t)(i + 1)), tmp = a->mb_index[i];
        a->mb_index[i] = a->mb_index[k];
        a->mb_index[k] = tmp;
      }
      for (m = 0; m < M; m++) {
        kl = mrl__ppo_minibatch(a, a->mb_index + (size_t)m * mb, 1, mb, lr, clip, st);
        if (a->cfg.target_kl > 0.0f && kl > a->cfg.target_kl) break;
      }
    }
    if (a->cfg.target_kl > 0.0f && kl > a->cfg.target_kl) break;
  }
}

MRL_DEF mrl_result mrl_ppo_train(mrl_ppo *a, mrl_vecenv *env, long long env_steps,
                                 mrl_progress_fn progress, void *user) {
  int batch = a->num_envs * a->cfg.num_steps, iters, it, i;
  double t0 = mrl_wall_seconds();
  long long steps0 = a->env_steps;
  mrl_result r;
  if (!env || env->num_envs != a->num_envs || env->obs_dim != a->obs_dim ||
      env->num_actions != a->num_actions)
    return MRL_ERR_INVALID_ARGUMENT;
  iters = (int)(env_steps / batch);
  if (iters < 1) iters = 1;
  if (!a->env_ready || !env->ready) {
    if ((r = mrl_vecenv_reset(env)) != MRL_OK) return r;
    for (i = 0; i < a->num_envs; i++) a->env_starts[i] = 1.0f;
    a->env_ready = 1;
  }
  for (it = 1; it <= iters; it++) {
    float lr = a->cfg.learning_rate, clip = a->cfg.clip_coef;
    float remaining = 1.0f - (float)(it - 1) / (float)iters;
    mrl__ppo_stats st;
    mrl_train_progress p;
    if (a->cfg.anneal_lr) lr *= remaining;
    if (a->cfg.anneal_clip) clip *= remaining;
    if ((r = mrl__ppo_collect(a, env)) != MRL_OK) return r;
    mrl__ppo_update(a, lr, clip, &st);
    if (progress) {
      double y_var = 0.0, d_var = 0.0, y_mean = 0.0, d_mean = 0.0;
      int n = batch;
      memset(&p, 0, sizeof p);
      for (i = 0; i < n; i++) {
        y_mean += a->rollout.returns[i];
        d_mean += a->rollout.returns[i] - a->rollout.values[i];
      }
      y_mean /= n;
      d_mean /= n;
      for (i = 0; i < n; i++) {
        double y = a->rollout.returns[i] - y_mean;
        double d = a->rollout.returns[i] - a->rollout.values[i] - d_mean;
        y_var += y * y;
        d_var += d * d;
      }
      p.algo = "ppo";
      p.env_id = env->num_envs > 0 ? mrl_env_id(env->envs[0]) : "";
      p.iteration = it;
      p.num_iterations = iters;
      p.env_steps = a->env_steps;
      p.seconds = mrl_wall_seconds() - t0;
      p.steps_per_second = p.seconds > 0.0 ? (double)(a->env_steps - steps0) / p.seconds : 0.0;
      p.episodes = a->stats.total_episodes;
      p.mean_return = mrl_episode_stats_mean_return(&a->stats);
      p.mean_length = mrl_episode_stats_mean_length(&a->stats);
      p.success_rate = mrl_episode_stats_success_rate(&a->stats);
      p.learning_rate = lr;
      if (st.count) {
        p.policy_loss = (float)(st.policy_loss / st.count);
        p.value_loss = (float)(st.value_loss / st.count);
        p.entropy = (float)(st.entropy / st.count);
        p.approx_kl = (float)(st.approx_kl / st.count);
        p.clip_fraction = (float)(st.clip_fraction / st.count);
      }
      p.explained_variance = y_var > 0.0 ? (float)(1.0 - d_var / y_var) : 0.0f;
      if (progress(&p, user)) break;
    }
  }
  return MRL_OK;
}

#ifdef __cplusplus
}
#endif
#endif /* MEMRL_ALGOS_IMPLEMENTATION */
