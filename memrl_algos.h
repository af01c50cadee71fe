/* memrl_algos.h - reinforcement-learning agents with memory.
 *
 * Part of memrl. Needs memrl_mem.h and memrl_envs.h (included here). Public
 * domain / MIT, see the end of the file.
 *
 * CONTENTS
 *   ENABLING               how to emit the implementation
 *   SHAPE OF EVERY AGENT   the functions every algorithm has, argument order
 *   QUICK START            PPO-LSTM on a T-maze in ten lines
 *   ANATOMY OF AN ALGORITHM  which shared parts an algorithm uses (PPO as the example)
 *   SHARED PARTS           progress and logs, observation normaliser, runner,
 *                          minibatches, update guard, evaluation, agent
 *                          checkpoints, SVG plots, threads
 *   PPO                    clipped-surrogate PPO, discrete or continuous
 *                          actions, feedforward, recurrent or a user's core
 *   LICENCE                at the end of the file: public domain or MIT
 *   TAGS: each implementation section carries one tag, written >> and the
 *   name; `grep -n '[>]>ppo' memrl_algos.h` finds that section and nothing else.
 *   The tags in file order:
 *     shared plot threads progress runner agent_checkpoint minibatch evaluate ppo
 *
 *
 * ENABLING
 *   In exactly one file: #define MEMRL_IMPLEMENTATION before including (emits
 *   every memrl header's implementation), or MEMRL_ALGOS_IMPLEMENTATION
 *   together with the macros of every header it builds on.
 *
 * SHAPE OF EVERY AGENT
 *   mrl_<algo>_config_default()   the paper's / best-known implementation's defaults
 *   mrl_<algo>_init(&agent, &cfg, &vecenv)   caller-owned agent; a rejected
 *                                 config returns MRL_ERR_INVALID_ARGUMENT and
 *                                 agent.error names the field and value
 *   mrl_<algo>_train(&agent, &vecenv, env_steps, progress_fn, user)
 *   mrl_<algo>_act(&agent, obs, n, episode_start, state, greedy, rng, actions)
 *                                 deployment: no gradients, no heap allocation
 *   mrl_<algo>_state_dim(&agent)  floats of recurrent state per environment
 *   mrl_<algo>_evaluate(&agent, &vecenv, episodes, greedy, &stats)
 *   mrl_<algo>_save / _load       the whole agent in one safetensors file
 *   mrl_<algo>_free(&agent)
 *   Training reports through mrl_progress_fn once per iteration (the common
 *   figures plus the algorithm's named metrics); the library ships
 *   mrl_progress_print (a terminal line), mrl_csv_logger (a CSV log) and
 *   mrl_plot_csv_svg (a learning curve from that log). Every example ends
 *   with mrl_print_final's `final:` line.
 *
 * QUICK START (examples/quickstart.c is this program, built and run by make test)
 *   mrl_vecenv env;  mrl_ppo agent;
 *   mrl_ppo_config cfg = mrl_ppo_config_default();
 *   cfg.net.core = mrl_core_config_lstm(32);        // remember: PPO-LSTM
 *   mrl_vecenv_init(&env, "TMaze-20", 16, 1);
 *   if (mrl_ppo_init(&agent, &cfg, &env) != MRL_OK) puts(agent.error);
 *   mrl_ppo_train(&agent, &env, 400000, mrl_progress_print, NULL);
 *   float *state = calloc(mrl_ppo_state_dim(&agent), sizeof(float)), start = 1, action;
 *   mrl_ppo_act(&agent, obs, 1, &start, state, 1, NULL, &action);   // then start = 0
 *   mrl_ppo_save(&agent, "tmaze.safetensors", &env);
 *   mrl_ppo_free(&agent);  mrl_vecenv_free(&env);
 *
 * ANATOMY OF AN ALGORITHM
 *   Each algorithm is one section that reads top to bottom like a CleanRL
 *   file: paper and defaults, deviations, config, agent struct, init, train
 *   (schedule, collect, targets, update, report), act. What more than one
 *   algorithm needs lives once, in the shared parts and the headers below:
 *     networks     mrl_tower (memrl_mem.h): encoder -> core -> head, each tower
 *                  owning a slice of the per-environment state record
 *     policy       mrl_policy_head (memrl_nn.h): act (no graph) / evaluate
 *                  (log-prob, entropy) / rsample for every action space
 *     experience   mrl_runner: the vector env with core states, episode
 *                  starts, normalisers, statistics and final observations;
 *                  mrl_rollout (memrl_mem.h) and its GAE
 *     updates      mrl_minibatches (rows or whole sequences), mrl_rng_shuffle,
 *                  mrl_update_guard (clip + refuse non-finite), mrl_update_backup
 *                  (undo a refused update whole), mrl_lr_linear (memrl_nn.h: the
 *                  learning rate, the clip range, and exploration's epsilon as
 *                  CleanRL's linear_schedule)
 *     reporting    mrl_train_progress + named metrics, CSV, SVG, final line
 *     deployment   mrl_evaluate over any act function
 *     persistence  mrl_agent_save / mrl_agent_load: whole-agent checkpoints
 *                  and bitwise resume
 *   PPO's section uses every one of them and owns only its loss and loop.
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

/* ======================================================================
 * SHARED PARTS
 * ====================================================================== */

/* ---- progress reporting ---- */
#define MRL_MAX_METRICS 16
typedef struct mrl_train_progress {
  const char *algo, *env_id;
  int iteration, num_iterations; /* of this train call */
  long long env_steps;           /* since the agent was created */
  double seconds;                /* wall time of this train call so far */
  double steps_per_second;
  long long episodes; /* finished since the agent was created */
  float mean_return;  /* over the last 100 episodes */
  float mean_length;
  float success_rate; /* -1 when the environment reports no success */
  float learning_rate;
  /* the algorithm's own figures, e.g. policy_loss, value_loss, td_error */
  int num_metrics;
  const char *metric_names[MRL_MAX_METRICS]; /* string literals */
  float metrics[MRL_MAX_METRICS];
} mrl_train_progress;

/* Adds (or overwrites) a named metric; names beyond MRL_MAX_METRICS are dropped. */
MRL_DEF void mrl_progress_set(mrl_train_progress *p, const char *name, float value);
/* The named metric, or NaN when the algorithm does not report it. */
MRL_DEF float mrl_progress_metric(const mrl_train_progress *p, const char *name);

/* Called once per iteration; return nonzero to stop training early. */
typedef int (*mrl_progress_fn)(const mrl_train_progress *p, void *user);
/* Prints one line to stdout (user == NULL) or to the FILE* given as user:
 * the common figures, then every metric as "name value". */
MRL_DEF int mrl_progress_print(const mrl_train_progress *p, void *user);

/* CSV log: the header row is the common columns followed by the metric
 * names of the first row written; later rows follow that header. A missing
 * figure (no success notion, a metric a row lacks) is an empty cell. */
typedef struct mrl_csv_logger {
  FILE *file;
  int wrote_header;
  int num_metrics;
  char metric_names[MRL_MAX_METRICS][32];
} mrl_csv_logger;
MRL_DEF mrl_result mrl_csv_logger_open(mrl_csv_logger *l, const char *path);
MRL_DEF int mrl_csv_logger_write(const mrl_train_progress *p, void *logger); /* a progress fn */
MRL_DEF void mrl_csv_logger_close(mrl_csv_logger *l);
/* A progress fn that prints the line to stdout and, when logger (an open
 * mrl_csv_logger) is not NULL, writes the CSV row: what the examples use. */
MRL_DEF int mrl_progress_print_and_log(const mrl_train_progress *p, void *logger);

/* The summary line every training example ends with:
 * final: env=<id> algo=<name> return=<mean of last 100> success=<rate or -> steps=<n> seconds=<s>
 */
MRL_DEF int mrl_progress_print_and_log(const mrl_train_progress *p, void *logger) {
  mrl_progress_print(p, NULL);
  if (logger) mrl_csv_logger_write(p, logger);
  return 0;
}

MRL_DEF void mrl_print_final(FILE *f, const char *env_id, const char *algo,
                             const mrl_episode_stats *stats, long long env_steps, double seconds);

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

/* ---- the runner: a vector env with everything an agent keeps per environment ----
 * Owns, for every environment of a training vector env: the observation to
 * act on (normalised when asked, as SB3's VecNormalize does), the flag that
 * it begins an episode, the agent's flat core-state record, the last step's
 * (normalised) rewards and terminated/truncated flags, the final observation
 * of an episode that just ended (for bootstrapping a truncation), episode
 * statistics and the step count. An algorithm acts on runner.obs with
 * runner.state and runner.episode_start, then calls mrl_runner_step. */
typedef struct mrl_runner_config {
  int normalize_obs;           /* 0; 1: running mean/std of observations, clipped to +-clip_obs */
  int normalize_reward;        /* 0; 1: rewards divided by the running std of each environment's
                                  discounted return (gamma), clipped to +-clip_reward (SB3) */
  float gamma;                 /* 0.99 */
  float clip_obs, clip_reward; /* 10, 10 */
} mrl_runner_config;
MRL_DEF mrl_runner_config mrl_runner_config_default(void);

typedef struct mrl_runner {
  mrl_runner_config cfg;
  int num_envs, obs_dim, env_action_dim, state_dim;
  float *obs;           /* [B, obs_dim] observation to act on */
  float *final_obs;     /* [B, obs_dim] last observation of an episode that ended in the last
                           step (valid where terminated or truncated) */
  float *episode_start; /* [B] 1: obs begins an episode (reset the core before acting) */
  float *state;         /* [B, state_dim] the agent's core state of every environment */
  float *rewards;       /* [B] of the last step (normalised with normalize_reward) */
  float *terminated;    /* [B] 0/1 */
  float *truncated;     /* [B] 0/1, only where not terminated */
  mrl_obs_normalizer obs_norm, return_norm;
  double *returns; /* [B] discounted return so far (reward normalisation) */
  mrl_episode_stats stats;
  long long env_steps; /* environment steps taken (vector steps x B) */
  int started;
} mrl_runner;

/* state_dim floats of core state per environment (0: feedforward). A bad
 * argument or config fails with the reason in error (error_size > 0). */
MRL_DEF mrl_result mrl_runner_init(mrl_runner *r, const mrl_vecenv *env, int state_dim,
                                   const mrl_runner_config *cfg, char *error, size_t error_size);
MRL_DEF void mrl_runner_free(mrl_runner *r);
/* Resets env (new episodes everywhere, states zeroed) unless this runner is
 * already running on it; afterwards obs and episode_start are ready. */
MRL_DEF mrl_result mrl_runner_start(mrl_runner *r, mrl_vecenv *env);
/* One vector step with env actions [B, env_action_dim]. */
MRL_DEF mrl_result mrl_runner_step(mrl_runner *r, mrl_vecenv *env, const float *actions);
/* The training normaliser applied to n raw observations, without updating it
 * (a copy when observations are not normalised). */
MRL_DEF void mrl_runner_normalize(const mrl_runner *r, const float *obs, int n, float *out);
/* ---- minibatches ----
 * Which rollout rows (t * B + b) each minibatch of an update holds: by rows
 * (a shuffled permutation of all T*B rows cut into num_minibatches pieces,
 * the remainder left out as CleanRL does) or by whole environment sequences
 * (recurrent training: B / num_minibatches environments each, every one
 * replayed over all T steps from its stored initial state). */
typedef struct mrl_minibatches {
  int T, B, num_minibatches, by_sequence;
  int *order; /* [T*B] rows, or [B] environments */
  int *rows;  /* [T*B] the rows of the current minibatch, time-major */
} mrl_minibatches;
MRL_DEF mrl_result mrl_minibatches_init(mrl_minibatches *m, int T, int B, int num_minibatches,
                                        int by_sequence);
MRL_DEF void mrl_minibatches_free(mrl_minibatches *m);
/* A new order (call once per epoch). */
MRL_DEF void mrl_minibatches_shuffle(mrl_minibatches *m, mrl_rng *rng);
/* Rows of minibatch k as a time-major [*mb_T, *mb_B] block; *envs (may be
 * NULL) gets the environment of each column when by_sequence. */
MRL_DEF const int *mrl_minibatches_get(mrl_minibatches *m, int k, int *mb_T, int *mb_B,
                                       const int **envs);
/* dst[i] = src row rows[i] (width floats each), for n rows. */
MRL_DEF void mrl_copy_rows(const float *src, int width, const int *rows, int n, float *dst);

/* ---- the update guard ----
 * Clips the gradients to max_grad_norm (<= 0: no clipping) and returns 1
 * when the loss and every gradient are finite, 0 otherwise: an update that
 * would write NaN or infinity into the parameters must not be applied. */
MRL_DEF int mrl_update_guard(mrl_params *p, float loss, float max_grad_norm);
/* A copy of a store's parameters, optimiser moments and step count taken
 * before an update of several optimiser steps, so that a step refused by
 * the guard can undo the whole update: the agent is then as it was. */
typedef struct mrl_update_backup {
  float *data; /* [3 * total]: values, moment1, moment2 */
  size_t total;
  long long adam_steps;
} mrl_update_backup;
MRL_DEF mrl_result mrl_update_backup_init(mrl_update_backup *b, const mrl_params *p);
MRL_DEF void mrl_update_backup_save(mrl_update_backup *b, const mrl_params *p);
MRL_DEF void mrl_update_backup_restore(const mrl_update_backup *b, mrl_params *p);
MRL_DEF void mrl_update_backup_free(mrl_update_backup *b);

/* ---- evaluation of any agent ----
 * act follows every agent's acting convention. Runs it (greedy or sampled)
 * on env, a vector env of its own (not the training one), until `episodes`
 * episodes (at most 100) have finished, spread evenly over its environments
 * as Stable-Baselines3's evaluate_policy does; their returns, lengths and
 * successes go into *stats. rng seeds the sampling. */
typedef mrl_result (*mrl_act_fn)(void *agent, const float *obs, int n, const float *episode_start,
                                 float *state, int greedy, mrl_rng *rng, float *actions);
MRL_DEF mrl_result mrl_evaluate(mrl_act_fn act, void *agent, int state_dim, mrl_vecenv *env,
                                int episodes, int greedy, mrl_rng *rng, mrl_episode_stats *stats);

/* ---- whole-agent checkpoints ----
 * One safetensors file (memrl_nn.h's checkpoints) holding the parameters
 * with their Adam moments and step count, metadata agent.algo and
 * memrl.config (the algorithm's config as JSON), the runner (observation and
 * return normalisers, episode statistics, every environment's core state,
 * observation, flags, step count) as "__runner.*" tensors, the vector env's
 * snapshot ("__runner.vecenv", when env is given, running and every one of
 * its environments supports snapshots), and the algorithm's own extras
 * (RNG state, counters). */
MRL_DEF mrl_result mrl_agent_save(const char *path, const mrl_params *p, const char *algo,
                                  const char *config_json, const mrl_runner *r,
                                  const mrl_vecenv *env, const mrl_checkpoint_extra *extras,
                                  int num_extras);
/* Loads into an agent built with the same config: algo and config_json must
 * match the file's (error names the first config field that differs), every
 * tensor must fit. The algorithm's extras are written through their data
 * pointers. With env and a stored snapshot, the environments are restored
 * and training continues their episodes; otherwise the next train call
 * starts new ones. Nothing changes on failure. */
MRL_DEF mrl_result mrl_agent_load(const char *path, mrl_params *p, const char *algo,
                                  const char *config_json, mrl_runner *r, mrl_vecenv *env,
                                  const mrl_checkpoint_extra *extras, int num_extras, char *error,
                                  size_t error_size);

/* ======================================================================
 * PPO
 * Schulman, Wolski, Dhariwal, Radford, Klimov (2017), "Proximal Policy
 * Optimization Algorithms", clipped-surrogate objective. Defaults and details
 * follow CleanRL's ppo.py (Huang et al. 2022, "The 37 implementation details
 * of PPO"): orthogonal initialisation (sqrt 2 hidden, 0.01 policy, 1 value),
 * Adam eps 1e-5, linear learning-rate annealing, GAE, per-minibatch advantage
 * normalisation, clipped value loss, global gradient clipping at 0.5.
 * Continuous (box) actions follow CleanRL's ppo_continuous_action.py: a
 * diagonal Gaussian whose log-std is a state-independent parameter
 * (initialised to log_std_init = 0), actions sampled unbounded, stored and
 * scored as sampled, and clipped to the bounds only when sent to the
 * environment (its ClipAction wrapper; SB3 does the same). Set
 * squash_actions for a tanh-squashed Gaussian instead (the bounds are then
 * reached smoothly; its log-std comes from the features, clamped to [-5, 2],
 * and its entropy bonus is the one-sample estimate -log p, as SB3's).
 * Use CleanRL's continuous hyperparameters by hand (see
 * examples/ppo_pendulum.c): they differ from the discrete defaults.
 * Recurrent PPO follows CleanRL's ppo_atari_lstm.py: every minibatch holds
 * whole rollout sequences of a subset of the environments, replayed from the
 * core state stored at the start of the rollout, with the state zeroed where
 * an episode starts (truncated BPTT over the rollout length).
 * Deviations from CleanRL, all as in Stable-Baselines3: a time-limit
 * truncation is bootstrapped from the value of the final observation instead
 * of being treated as a terminal state; optional running observation and
 * reward normalisation (off by default; CleanRL's continuous script always
 * normalises through Gymnasium wrappers); and an optional linear decay of
 * clip_coef (anneal_clip). An update whose loss or gradient is not finite is
 * not applied: training stops with MRL_ERR_NON_FINITE and says where.
 * ====================================================================== */

typedef struct mrl_ppo_config {
  uint64_t seed;         /* 1 */
  int num_steps;         /* 128: rollout length per environment */
  float learning_rate;   /* 2.5e-4 */
  int anneal_lr;         /* 1: linear decay to 0 */
  long long total_steps; /* 0: each train call anneals over its own steps; > 0: the schedules
                            span this many steps of the agent's life, so a run split over
                            several calls (or saved and resumed) anneals like one call */
  float gamma;           /* 0.99 */
  float gae_lambda;      /* 0.95 */
  int num_minibatches;   /* 4 */
  int update_epochs;     /* 4 */
  int norm_adv;          /* 1 */
  float clip_coef;       /* 0.2 */
  int anneal_clip;       /* 0; 1: clip_coef decays linearly like the learning rate (SB3 lin_) */
  int clip_vloss;        /* 1 */
  float ent_coef;        /* 0.01 */
  float vf_coef;         /* 0.5 */
  float max_grad_norm;   /* 0.5 */
  float target_kl;       /* 0: off; else stop an update's epochs once approx_kl exceeds it */
  float adam_eps;        /* 1e-5 */
  /* network: actor and critic towers (encoder MLP -> core -> head MLP), then
   * the policy head and a linear value layer */
  mrl_tower_config net; /* encoder {64, 64} tanh, no core, no head */
  int orthogonal_init;  /* 1: CleanRL's layer_init (and orthogonal LSTM weights, zero biases);
                           0: PyTorch defaults */
  int shared_torso;     /* 0: separate actor and critic networks (CleanRL ppo.py) */
  int normalize_obs;    /* 0 */
  int normalize_reward; /* 0 */
  int squash_actions;   /* box actions: 0 Gaussian, clipped when sent; 1 tanh-squashed */
  float log_std_init;   /* box actions: 0 */
  float core_aux_coef;  /* 0; > 0: the cores' auxiliary loss (FTW's KL(posterior || prior),
                           mrl_core_forward_aux) joins the loss with this weight (FTW tunes it
                           by population-based training) */
  float adv_std_floor;  /* 0; > 0: norm_adv divides by max(std, this), so advantages that are
                           all noise (a near-deterministic policy whose value is learned) are
                           not scaled up to unit size and cannot drown the entropy bonus */
} mrl_ppo_config;

MRL_DEF mrl_ppo_config mrl_ppo_config_default(void);

typedef struct mrl_ppo_update_stats {
  double policy_loss, value_loss, entropy, approx_kl, clip_fraction;
  int count; /* minibatches the sums are over */
} mrl_ppo_update_stats;

typedef struct mrl_ppo {
  mrl_ppo_config cfg;
  int obs_dim, num_envs;
  int num_actions;    /* discrete: n; box: 0 */
  int env_action_dim; /* floats per action sent to the environment */
  int raw_dim;        /* floats per action stored in the rollout (mrl_policy_head_raw_dim) */
  int state_dim;      /* recurrent floats per environment: actor's, then critic's */
  mrl_params params;
  mrl_tower actor, critic; /* the critic tower is empty with shared_torso */
  mrl_policy_head policy;
  mrl_linear_layer value;
  mrl_graph graph;     /* training */
  mrl_graph act_graph; /* acting */
  mrl_runner runner;
  mrl_rollout rollout;
  mrl_minibatches minibatches;
  mrl_update_backup backup; /* the agent before the running update */
  mrl_rng rng;
  long long iterations;                         /* updates since the agent was created */
  float *step_raw, *step_actions, *step_values; /* [B * raw_dim], [B * env_action_dim], [B] */
  float *mb_obs, *mb_actions, *mb_starts, *mb_state, *mb_scalars; /* minibatch scratch */
  char error[MRL_ERROR_SIZE]; /* why the last call failed, when it says */
} mrl_ppo;

/* Builds the agent for env's observation and action spaces. A config that
 * does not fit returns MRL_ERR_INVALID_ARGUMENT and error names the field. */
MRL_DEF mrl_result mrl_ppo_init(mrl_ppo *agent, const mrl_ppo_config *cfg, const mrl_vecenv *env);
MRL_DEF void mrl_ppo_free(mrl_ppo *agent);
/* Trains for env_steps environment steps, rounded down to whole iterations
 * of num_envs * num_steps (0 trains nothing; negative is an error). The
 * vector env must be the one given to init (same dimensions and count);
 * training continues its episodes across calls. */
MRL_DEF mrl_result mrl_ppo_train(mrl_ppo *agent, mrl_vecenv *env, long long env_steps,
                                 mrl_progress_fn progress, void *user);
/* One update (update_epochs over the minibatches) on what agent->rollout
 * holds, advantages and returns included. train calls it once per
 * iteration; tests call it on fixed data. stats may be NULL. An update in
 * which any step's loss or gradient is not finite is undone whole
 * (parameters, moments, RNG) and returns MRL_ERR_NON_FINITE. */
MRL_DEF mrl_result mrl_ppo_update(mrl_ppo *agent, float learning_rate, float clip_coef,
                                  mrl_ppo_update_stats *stats);
/* Floats of recurrent state per environment for mrl_ppo_act (0: feedforward). */
MRL_DEF int mrl_ppo_state_dim(const mrl_ppo *agent);
/* Deployment: actions [n, env_action_dim] for n raw observations [n, obs_dim]
 * (normalised here with the training statistics when normalize_obs).
 * episode_start [n] (may be NULL) zeroes a row's state first; state
 * [n, state_dim] is read and advanced. greedy = 1 takes the mode (argmax,
 * the mean), else samples with rng (NULL: the agent's own). No gradients,
 * and no heap allocation once the acting arena has grown to the largest n. */
MRL_DEF mrl_result mrl_ppo_act(mrl_ppo *agent, const float *obs, int n, const float *episode_start,
                               float *state, int greedy, mrl_rng *rng, float *actions);
/* Value estimates [n], same conventions as act; the state is not advanced. */
MRL_DEF mrl_result mrl_ppo_value(mrl_ppo *agent, const float *obs, int n,
                                 const float *episode_start, const float *state, float *values);
/* mrl_evaluate with the agent's act (rng seeded from the agent's seed). */
MRL_DEF mrl_result mrl_ppo_evaluate(mrl_ppo *agent, mrl_vecenv *env, int episodes, int greedy,
                                    mrl_episode_stats *stats);
/* The whole agent in one safetensors file, written atomically: parameters,
 * Adam moments and step count, the runner (normalisers, episode statistics,
 * every environment's core state, step counts), the RNG, the iteration count
 * and the config (as JSON in memrl.config); with env, the training vector
 * env's snapshot too, so a resumed run continues the same episodes bitwise. */
MRL_DEF mrl_result mrl_ppo_save(const mrl_ppo *agent, const char *path, const mrl_vecenv *env);
/* Loads into an agent initialised with the same config and env (the config
 * stored in the file must match: error names the first field that differs).
 * With env, restores the environments when the file holds their snapshot.
 * Nothing changes on failure. */
MRL_DEF mrl_result mrl_ppo_load(mrl_ppo *agent, const char *path, mrl_vecenv *env);
/* The config as one line of JSON (what save stores); snprintf semantics. */
MRL_DEF int mrl_ppo_config_json(const mrl_ppo_config *cfg, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif /* MEMRL_ALGOS_H */

/* ======================================================================== */
#if (defined(MEMRL_ALGOS_IMPLEMENTATION) || defined(MEMRL_IMPLEMENTATION)) &&                      \
    !defined(MEMRL_ALGOS_IMPLEMENTED)
#define MEMRL_ALGOS_IMPLEMENTED

#include <limits.h>
#include <stdarg.h>
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

/* ---- shared parts >>shared ---- */

MRL_DEF double mrl_wall_seconds(void) {
#if defined(_WIN32)
  return (double)GetTickCount64() * 1e-3;
#else
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec;
#endif
}

/* ---- learning-curve plot >>plot ---- */

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

/* ---- threads >>threads ---- */
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

/* printf into an object's error buffer (size 0: no message wanted) */
static void mrl__say(char *error, size_t size, const char *fmt, ...) {
  va_list ap;
  if (!error || size == 0) return;
  va_start(ap, fmt);
  vsnprintf(error, size, fmt, ap);
  va_end(ap);
}

static int mrl__finite(double x) {
  return x - x == 0.0;
}

/* ---- progress >>progress ---- */

MRL_DEF void mrl_progress_set(mrl_train_progress *p, const char *name, float value) {
  int i;
  for (i = 0; i < p->num_metrics; i++)
    if (strcmp(p->metric_names[i], name) == 0) {
      p->metrics[i] = value;
      return;
    }
  if (p->num_metrics >= MRL_MAX_METRICS) return;
  p->metric_names[p->num_metrics] = name;
  p->metrics[p->num_metrics++] = value;
}

MRL_DEF float mrl_progress_metric(const mrl_train_progress *p, const char *name) {
  int i;
  for (i = 0; i < p->num_metrics; i++)
    if (strcmp(p->metric_names[i], name) == 0) return p->metrics[i];
  return (float)NAN;
}

static void mrl__success_text(float rate, char *buf, size_t size) {
  if (rate >= 0.0f)
    snprintf(buf, size, "%.2f", rate);
  else
    snprintf(buf, size, "-");
}

MRL_DEF int mrl_progress_print(const mrl_train_progress *p, void *user) {
  FILE *f = user ? (FILE *)user : stdout;
  char success[16];
  int i;
  mrl__success_text(p->success_rate, success, sizeof success);
  fprintf(f, "%s %s iter %d/%d steps %lld return %.2f success %s len %.1f episodes %lld lr %.3g",
          p->algo, p->env_id, p->iteration, p->num_iterations, p->env_steps, p->mean_return,
          success, p->mean_length, p->episodes, p->learning_rate);
  for (i = 0; i < p->num_metrics; i++) fprintf(f, " %s %.4g", p->metric_names[i], p->metrics[i]);
  fprintf(f, " sps %.0f\n", p->steps_per_second);
  fflush(f);
  return 0;
}

MRL_DEF mrl_result mrl_csv_logger_open(mrl_csv_logger *l, const char *path) {
  memset(l, 0, sizeof *l);
  if (!path) return MRL_ERR_INVALID_ARGUMENT;
  l->file = fopen(path, "w");
  return l->file ? MRL_OK : MRL_ERR_IO;
}

MRL_DEF int mrl_csv_logger_write(const mrl_train_progress *p, void *logger) {
  mrl_csv_logger *l = (mrl_csv_logger *)logger;
  int i;
  if (!l || !l->file) return 0;
  if (!l->wrote_header) {
    fprintf(l->file, "algo,env,iteration,env_steps,seconds,steps_per_second,episodes,mean_return,"
                     "mean_length,success_rate,learning_rate");
    for (i = 0; i < p->num_metrics; i++) {
      snprintf(l->metric_names[i], sizeof l->metric_names[i], "%s", p->metric_names[i]);
      fprintf(l->file, ",%s", l->metric_names[i]);
    }
    l->num_metrics = p->num_metrics;
    fprintf(l->file, "\n");
    l->wrote_header = 1;
  }
  fprintf(l->file, "%s,%s,%d,%lld,%.3f,%.1f,%lld,%.6g,%.6g,", p->algo, p->env_id, p->iteration,
          p->env_steps, p->seconds, p->steps_per_second, p->episodes, p->mean_return,
          p->mean_length);
  if (p->success_rate >= 0.0f) fprintf(l->file, "%.6g", p->success_rate); /* else empty: none */
  fprintf(l->file, ",%.6g", p->learning_rate);
  for (i = 0; i < l->num_metrics; i++) { /* by name: a missing metric leaves its cell empty */
    float v = mrl_progress_metric(p, l->metric_names[i]);
    if (v == v)
      fprintf(l->file, ",%.6g", v);
    else
      fprintf(l->file, ",");
  }
  fprintf(l->file, "\n");
  fflush(l->file);
  return 0;
}

MRL_DEF void mrl_csv_logger_close(mrl_csv_logger *l) {
  if (l->file) fclose(l->file);
  l->file = NULL;
}

MRL_DEF void mrl_print_final(FILE *f, const char *env_id, const char *algo,
                             const mrl_episode_stats *stats, long long env_steps, double seconds) {
  char success[16];
  mrl__success_text(mrl_episode_stats_success_rate(stats), success, sizeof success);
  fprintf(f ? f : stdout, "final: env=%s algo=%s return=%.2f success=%s steps=%lld seconds=%.1f\n",
          env_id, algo, mrl_episode_stats_mean_return(stats), success, env_steps, seconds);
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

/* ---- runner >>runner ---- */

MRL_DEF mrl_runner_config mrl_runner_config_default(void) {
  mrl_runner_config c;
  c.normalize_obs = 0;
  c.normalize_reward = 0;
  c.gamma = 0.99f;
  c.clip_obs = 10.0f;
  c.clip_reward = 10.0f;
  return c;
}

MRL_DEF mrl_result mrl_runner_init(mrl_runner *r, const mrl_vecenv *env, int state_dim,
                                   const mrl_runner_config *cfg, char *error, size_t error_size) {
  size_t B, O;
  mrl_result res;
  memset(r, 0, sizeof *r);
  if (!env || !cfg || env->num_envs < 1 || env->obs_dim < 1 || state_dim < 0) {
    mrl__say(error, error_size, "runner: needs a vector env and state_dim >= 0 (got %d)",
             state_dim);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (!mrl__finite(cfg->gamma) || cfg->gamma < 0.0f || cfg->gamma > 1.0f ||
      !mrl__finite(cfg->clip_obs) || cfg->clip_obs <= 0.0f || !mrl__finite(cfg->clip_reward) ||
      cfg->clip_reward <= 0.0f) {
    mrl__say(error, error_size, "runner: gamma %g must be in [0, 1], clips %g and %g > 0",
             cfg->gamma, cfg->clip_obs, cfg->clip_reward);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  r->cfg = *cfg;
  r->num_envs = env->num_envs;
  r->obs_dim = env->obs_dim;
  r->env_action_dim = env->action_dim;
  r->state_dim = state_dim;
  B = (size_t)r->num_envs;
  O = (size_t)r->obs_dim;
  r->obs = (float *)MRL_MALLOC(sizeof(float) * B * O);
  r->final_obs = (float *)MRL_MALLOC(sizeof(float) * B * O);
  r->episode_start = (float *)MRL_MALLOC(sizeof(float) * B);
  r->state = (float *)MRL_MALLOC(sizeof(float) * (B * (size_t)state_dim + 1));
  r->rewards = (float *)MRL_MALLOC(sizeof(float) * B);
  r->terminated = (float *)MRL_MALLOC(sizeof(float) * B);
  r->truncated = (float *)MRL_MALLOC(sizeof(float) * B);
  r->returns = (double *)MRL_MALLOC(sizeof(double) * B);
  if (!r->obs || !r->final_obs || !r->episode_start || !r->state || !r->rewards || !r->terminated ||
      !r->truncated || !r->returns) {
    mrl_runner_free(r);
    return MRL_ERR_OUT_OF_MEMORY;
  }
  if ((res = mrl_obs_normalizer_init(&r->obs_norm, r->obs_dim)) != MRL_OK ||
      (res = mrl_obs_normalizer_init(&r->return_norm, 1)) != MRL_OK) {
    mrl_runner_free(r);
    return res;
  }
  r->obs_norm.clip = cfg->clip_obs;
  r->return_norm.clip = cfg->clip_reward;
  memset(r->obs, 0, sizeof(float) * B * O);
  memset(r->final_obs, 0, sizeof(float) * B * O);
  memset(r->state, 0, sizeof(float) * (B * (size_t)state_dim + 1));
  memset(r->rewards, 0, sizeof(float) * B);
  memset(r->terminated, 0, sizeof(float) * B);
  memset(r->truncated, 0, sizeof(float) * B);
  memset(r->returns, 0, sizeof(double) * B);
  for (B = 0; B < (size_t)r->num_envs; B++) r->episode_start[B] = 1.0f;
  mrl_episode_stats_init(&r->stats);
  return MRL_OK;
}

MRL_DEF void mrl_runner_free(mrl_runner *r) {
  MRL_FREE(r->obs);
  MRL_FREE(r->final_obs);
  MRL_FREE(r->episode_start);
  MRL_FREE(r->state);
  MRL_FREE(r->rewards);
  MRL_FREE(r->terminated);
  MRL_FREE(r->truncated);
  MRL_FREE(r->returns);
  mrl_obs_normalizer_free(&r->obs_norm);
  mrl_obs_normalizer_free(&r->return_norm);
  memset(r, 0, sizeof *r);
}

MRL_DEF void mrl_runner_normalize(const mrl_runner *r, const float *obs, int n, float *out) {
  if (r->cfg.normalize_obs)
    mrl_obs_normalizer_apply(&r->obs_norm, obs, n, out);
  else if (out != obs)
    memcpy(out, obs, sizeof(float) * (size_t)n * r->obs_dim);
}

/* The observation to act on: the environments' (the normaliser learns from
 * it first, as VecNormalize does when a step returns). */
static void mrl__runner_observe(mrl_runner *r, const mrl_vecenv *env) {
  if (r->cfg.normalize_obs) mrl_obs_normalizer_update(&r->obs_norm, env->obs, r->num_envs);
  mrl_runner_normalize(r, env->obs, r->num_envs, r->obs);
}

static int mrl__runner_matches(const mrl_runner *r, const mrl_vecenv *env) {
  return env && env->num_envs == r->num_envs && env->obs_dim == r->obs_dim &&
         env->action_dim == r->env_action_dim;
}

MRL_DEF mrl_result mrl_runner_start(mrl_runner *r, mrl_vecenv *env) {
  mrl_result res;
  int b;
  if (!mrl__runner_matches(r, env)) return MRL_ERR_INVALID_ARGUMENT;
  if (r->started && env->ready) return MRL_OK;
  if ((res = mrl_vecenv_reset(env)) != MRL_OK) return res;
  for (b = 0; b < r->num_envs; b++) {
    r->episode_start[b] = 1.0f;
    r->returns[b] = 0.0;
  }
  memset(r->state, 0, sizeof(float) * (size_t)r->num_envs * r->state_dim);
  mrl__runner_observe(r, env);
  r->started = 1;
  return MRL_OK;
}

MRL_DEF mrl_result mrl_runner_step(mrl_runner *r, mrl_vecenv *env, const float *actions) {
  int B = r->num_envs, b;
  mrl_result res;
  if (!mrl__runner_matches(r, env) || !actions) return MRL_ERR_INVALID_ARGUMENT;
  if (!r->started) return MRL_ERR_NOT_RESET;
  if ((res = mrl_vecenv_step(env, actions)) != MRL_OK) return res;
  mrl_episode_stats_add_vecenv(&r->stats, env);
  if (r->cfg.normalize_reward) {
    /* SB3 VecNormalize: each environment's discounted return feeds running
     * statistics; rewards are divided by their std (no mean subtracted) */
    mrl_obs_normalizer *n = &r->return_norm;
    double scale;
    for (b = 0; b < B; b++) {
      r->returns[b] = r->returns[b] * r->cfg.gamma + env->rewards[b];
      r->rewards[b] = (float)r->returns[b]; /* staging for the statistics update */
    }
    mrl_obs_normalizer_update(n, r->rewards, B);
    scale = 1.0 / sqrt(n->var[0] + 1e-8);
    for (b = 0; b < B; b++) {
      float v = (float)(env->rewards[b] * scale);
      r->rewards[b] = v < -n->clip ? -n->clip : (v > n->clip ? n->clip : v);
    }
  } else {
    memcpy(r->rewards, env->rewards, sizeof(float) * (size_t)B);
  }
  for (b = 0; b < B; b++) {
    int done = env->terminated[b] || env->truncated[b];
    r->terminated[b] = (float)(env->terminated[b] != 0);
    r->truncated[b] = (float)(env->truncated[b] != 0 && !env->terminated[b]);
    r->episode_start[b] = (float)done;
    if (done) {
      r->returns[b] = 0.0;
      mrl_runner_normalize(r, env->final_obs + (size_t)b * r->obs_dim, 1,
                           r->final_obs + (size_t)b * r->obs_dim);
    }
  }
  mrl__runner_observe(r, env);
  r->env_steps += B;
  return MRL_OK;
}

/* ---- whole-agent checkpoints >>agent_checkpoint ---- */

/* The runner's state as checkpoint extras pointing into r (r->state_dim,
 * num_envs and obs_dim size them). Returns the count. */
static int mrl__runner_extras(const mrl_runner *r, mrl_checkpoint_extra *x) {
  static const char f32[] = "F32", f64[] = "F64", i64[] = "I64", u8[] = "U8";
  size_t B = (size_t)r->num_envs, O = (size_t)r->obs_dim;
  int n = 0;
#define MRL__EXTRA(nm, ty, ptr, cnt)                                                               \
  do {                                                                                             \
    x[n].name = nm;                                                                                \
    x[n].dtype = ty;                                                                               \
    x[n].data = ptr;                                                                               \
    x[n].count = (uint64_t)(cnt);                                                                  \
    n++;                                                                                           \
  } while (0)
  MRL__EXTRA("__runner.obs", f32, r->obs, B * O);
  MRL__EXTRA("__runner.final_obs", f32, r->final_obs, B * O);
  MRL__EXTRA("__runner.episode_start", f32, r->episode_start, B);
  MRL__EXTRA("__runner.state", f32, r->state, B * (size_t)r->state_dim);
  MRL__EXTRA("__runner.rewards", f32, r->rewards, B);
  MRL__EXTRA("__runner.terminated", f32, r->terminated, B);
  MRL__EXTRA("__runner.truncated", f32, r->truncated, B);
  MRL__EXTRA("__runner.returns", f64, r->returns, B);
  MRL__EXTRA("__runner.obs_mean", f64, r->obs_norm.mean, O);
  MRL__EXTRA("__runner.obs_var", f64, r->obs_norm.var, O);
  MRL__EXTRA("__runner.obs_count", f64, &r->obs_norm.count, 1);
  MRL__EXTRA("__runner.return_mean", f64, r->return_norm.mean, 1);
  MRL__EXTRA("__runner.return_var", f64, r->return_norm.var, 1);
  MRL__EXTRA("__runner.return_count", f64, &r->return_norm.count, 1);
  /* the statistics ring is plain data of this build: kept as bytes */
  MRL__EXTRA("__runner.episode_stats", u8, &r->stats, sizeof r->stats);
  MRL__EXTRA("__runner.env_steps", i64, &r->env_steps, 1);
#undef MRL__EXTRA
  return n;
}

#define MRL__RUNNER_EXTRAS 16

/* A runner whose arrays live in one scratch block (fl, db), to read into. */
static mrl_result mrl__runner_scratch(const mrl_runner *r, mrl_runner *tmp, float **fl,
                                      double **db) {
  size_t B = (size_t)r->num_envs, O = (size_t)r->obs_dim, S = (size_t)r->state_dim;
  *fl = (float *)MRL_MALLOC(sizeof(float) * (2 * B * O + B * S + 4 * B + 1));
  *db = (double *)MRL_MALLOC(sizeof(double) * (B + 2 * O + 2));
  if (!*fl || !*db) return MRL_ERR_OUT_OF_MEMORY;
  *tmp = *r;
  tmp->obs = *fl;
  tmp->final_obs = tmp->obs + B * O;
  tmp->episode_start = tmp->final_obs + B * O;
  tmp->state = tmp->episode_start + B;
  tmp->rewards = tmp->state + B * S;
  tmp->terminated = tmp->rewards + B;
  tmp->truncated = tmp->terminated + B;
  tmp->returns = *db;
  tmp->obs_norm.mean = tmp->returns + B;
  tmp->obs_norm.var = tmp->obs_norm.mean + O;
  tmp->return_norm.mean = tmp->obs_norm.var + O;
  tmp->return_norm.var = tmp->return_norm.mean + 1;
  return MRL_OK;
}

static void mrl__runner_copy(mrl_runner *dst, const mrl_runner *src) {
  size_t B = (size_t)dst->num_envs, O = (size_t)dst->obs_dim, S = (size_t)dst->state_dim;
  memcpy(dst->obs, src->obs, sizeof(float) * B * O);
  memcpy(dst->final_obs, src->final_obs, sizeof(float) * B * O);
  memcpy(dst->episode_start, src->episode_start, sizeof(float) * B);
  memcpy(dst->state, src->state, sizeof(float) * B * S);
  memcpy(dst->rewards, src->rewards, sizeof(float) * B);
  memcpy(dst->terminated, src->terminated, sizeof(float) * B);
  memcpy(dst->truncated, src->truncated, sizeof(float) * B);
  memcpy(dst->returns, src->returns, sizeof(double) * B);
  memcpy(dst->obs_norm.mean, src->obs_norm.mean, sizeof(double) * O);
  memcpy(dst->obs_norm.var, src->obs_norm.var, sizeof(double) * O);
  dst->obs_norm.count = src->obs_norm.count;
  dst->return_norm.mean[0] = src->return_norm.mean[0];
  dst->return_norm.var[0] = src->return_norm.var[0];
  dst->return_norm.count = src->return_norm.count;
  dst->stats = src->stats;
  dst->env_steps = src->env_steps;
}

MRL_DEF mrl_result mrl_agent_save(const char *path, const mrl_params *p, const char *algo,
                                  const char *config_json, const mrl_runner *r,
                                  const mrl_vecenv *env, const mrl_checkpoint_extra *extras,
                                  int num_extras) {
  mrl_checkpoint_extra *x;
  mrl_checkpoint_options o = mrl_checkpoint_options_default();
  const char *meta[2];
  void *snap = NULL;
  int n, i;
  mrl_result res;
  if (!path || !p || !algo || !r || num_extras < 0 || (num_extras && !extras))
    return MRL_ERR_INVALID_ARGUMENT;
  x = (mrl_checkpoint_extra *)MRL_MALLOC(sizeof *x * (size_t)(MRL__RUNNER_EXTRAS + 1 + num_extras));
  if (!x) return MRL_ERR_OUT_OF_MEMORY;
  n = mrl__runner_extras(r, x);
  for (i = 0; i < num_extras; i++) x[n++] = extras[i];
  if (env && r->started && env->ready) { /* the environments too, when they can */
    size_t bytes = mrl_vecenv_snapshot(env, NULL, 0);
    if (bytes > 0) {
      snap = MRL_MALLOC(bytes);
      if (!snap) {
        MRL_FREE(x);
        return MRL_ERR_OUT_OF_MEMORY;
      }
      mrl_vecenv_snapshot(env, snap, bytes);
      x[n].name = "__runner.vecenv";
      x[n].dtype = "U8";
      x[n].data = snap;
      x[n].count = bytes;
      n++;
    }
  }
  meta[0] = "agent.algo";
  meta[1] = algo;
  o.save_optimizer = 1;
  o.config = config_json;
  o.metadata = meta;
  o.num_metadata = 1;
  o.extras = x;
  o.num_extras = n;
  res = mrl_checkpoint_save(p, path, &o);
  MRL_FREE(snap);
  MRL_FREE(x);
  return res;
}

/* The name of the JSON field that holds position at in text. */
static void mrl__json_field_at(const char *text, size_t at, char *out, size_t size) {
  size_t end, start;
  while (at > 0 && !(text[at] == '"' && at + 1 < strlen(text) && text[at + 1] == ':')) at--;
  end = at;
  start = end > 0 ? end - 1 : 0;
  while (start > 0 && text[start] != '"') start--;
  if (end <= start + 1) {
    snprintf(out, size, "?");
    return;
  }
  snprintf(out, size, "%.*s", (int)(end - start - 1), text + start + 1);
}

/* The value after "field": in text, up to the next top-level comma. */
static void mrl__json_value_of(const char *text, const char *field, char *out, size_t size) {
  char key[80];
  const char *s, *e;
  int depth = 0;
  snprintf(key, sizeof key, "\"%s\":", field);
  s = strstr(text, key);
  if (!s) {
    snprintf(out, size, "(absent)");
    return;
  }
  s += strlen(key);
  for (e = s; *e && !(depth == 0 && (*e == ',' || *e == '}')); e++)
    depth += *e == '[' ? 1 : *e == ']' ? -1 : 0;
  snprintf(out, size, "%.*s", (int)(e - s), s);
}

MRL_DEF mrl_result mrl_agent_load(const char *path, mrl_params *p, const char *algo,
                                  const char *config_json, mrl_runner *r, mrl_vecenv *env,
                                  const mrl_checkpoint_extra *extras, int num_extras, char *error,
                                  size_t error_size) {
  mrl_checkpoint c;
  mrl_checkpoint_extra x[MRL__RUNNER_EXTRAS];
  mrl_runner tmp;
  float *fl = NULL, *backup = NULL;
  double *db = NULL;
  long long steps = 0;
  const char *s;
  const mrl_checkpoint_tensor *snap;
  int n, i;
  mrl_result res;
  if (!path || !p || !algo || !r || num_extras < 0 || (num_extras && !extras))
    return MRL_ERR_INVALID_ARGUMENT;
  if ((res = mrl_checkpoint_open(&c, path)) != MRL_OK) {
    mrl__say(error, error_size, "%s: cannot load %s (%s)", algo, path, mrl_result_string(res));
    return res;
  }
  s = mrl_checkpoint_meta(&c, "agent.algo");
  if (!s || strcmp(s, algo) != 0) {
    mrl__say(error, error_size, "%s: %s holds a %s agent", algo, path, s ? s : "(not an)");
    res = MRL_ERR_INVALID_ARGUMENT;
    goto out;
  }
  s = mrl_checkpoint_meta(&c, "memrl.config");
  if (config_json && (!s || strcmp(s, config_json) != 0)) {
    size_t at = 0;
    char field[64], have[96], want[96];
    if (!s) s = "";
    while (s[at] && s[at] == config_json[at]) at++;
    mrl__json_field_at(config_json, at, field, sizeof field);
    mrl__json_value_of(s, field, have, sizeof have);
    mrl__json_value_of(config_json, field, want, sizeof want);
    mrl__say(error, error_size, "%s: config.%s is %s in %s but %s in this agent", algo, field, have,
             path, want);
    res = MRL_ERR_INVALID_ARGUMENT;
    goto out;
  }
  /* read everything that is not a parameter into scratch first */
  if ((res = mrl__runner_scratch(r, &tmp, &fl, &db)) != MRL_OK) goto out;
  n = mrl__runner_extras(&tmp, x);
  for (i = 0; i < n + num_extras && res == MRL_OK; i++) {
    const mrl_checkpoint_extra *e = i < n ? &x[i] : &extras[i - n];
    const mrl_checkpoint_tensor *t = mrl_checkpoint_find(&c, e->name);
    if (!t || strcmp(t->dtype, e->dtype) != 0 || t->numel != e->count) {
      mrl__say(error, error_size, "%s: %s tensor %s (%s[%llu] expected)", algo,
               t ? "mismatched" : "missing", e->name, e->dtype, (unsigned long long)e->count);
      res = MRL_ERR_INVALID_ARGUMENT;
    } else if (i < n) {
      res = mrl_checkpoint_read(t, e->dtype, (void *)(uintptr_t)e->data, (size_t)e->count);
    }
  }
  if (res != MRL_OK) goto out;
  /* parameters and optimiser (checked whole before anything is written) */
  backup = (float *)MRL_MALLOC(sizeof(float) * (3 * p->total + 1));
  if (!backup) {
    res = MRL_ERR_OUT_OF_MEMORY;
    goto out;
  }
  memcpy(backup, p->values, sizeof(float) * p->total);
  memcpy(backup + p->total, p->moment1, sizeof(float) * p->total);
  memcpy(backup + 2 * p->total, p->moment2, sizeof(float) * p->total);
  steps = p->adam_steps;
  if ((res = mrl_checkpoint_apply(&c, p, MRL_CHECKPOINT_OPTIMIZER)) != MRL_OK) {
    mrl__say(error, error_size, "%s: the parameters in %s do not fit this agent: %s", algo, path,
             p->message[0] ? p->message : mrl_result_string(res));
    goto out;
  }
  snap = mrl_checkpoint_find(&c, "__runner.vecenv");
  if (env && snap) {
    res = strcmp(snap->dtype, "U8") == 0 && mrl__runner_matches(r, env)
              ? mrl_vecenv_restore(env, snap->bytes, snap->nbytes)
              : MRL_ERR_INVALID_ARGUMENT;
    if (res != MRL_OK) {
      mrl__say(error, error_size, "%s: the environments saved in %s do not fit this vector env",
               algo, path);
      memcpy(p->values, backup, sizeof(float) * p->total);
      memcpy(p->moment1, backup + p->total, sizeof(float) * p->total);
      memcpy(p->moment2, backup + 2 * p->total, sizeof(float) * p->total);
      p->adam_steps = steps;
      goto out;
    }
  }
  mrl__runner_copy(r, &tmp);
  /* with its environments restored the run goes on where it stopped; else
   * training starts new episodes */
  r->started = env && snap ? 1 : 0;
  for (i = 0; i < num_extras; i++)
    mrl_checkpoint_read(mrl_checkpoint_find(&c, extras[i].name), extras[i].dtype,
                        (void *)(uintptr_t)extras[i].data, (size_t)extras[i].count);
out:
  MRL_FREE(backup);
  MRL_FREE(fl);
  MRL_FREE(db);
  mrl_checkpoint_close(&c);
  return res;
}

/* ---- minibatches >>minibatch ---- */

MRL_DEF mrl_result mrl_minibatches_init(mrl_minibatches *m, int T, int B, int num_minibatches,
                                        int by_sequence) {
  size_t n;
  int i;
  memset(m, 0, sizeof *m);
  if (T < 1 || B < 1 || num_minibatches < 1 || (long long)T * B > INT_MAX / 2)
    return MRL_ERR_INVALID_ARGUMENT;
  if (by_sequence ? B % num_minibatches != 0 : T * B < num_minibatches)
    return MRL_ERR_INVALID_ARGUMENT;
  n = (size_t)T * B;
  m->order = (int *)MRL_MALLOC(sizeof(int) * n);
  m->rows = (int *)MRL_MALLOC(sizeof(int) * n);
  if (!m->order || !m->rows) {
    mrl_minibatches_free(m);
    return MRL_ERR_OUT_OF_MEMORY;
  }
  m->T = T;
  m->B = B;
  m->num_minibatches = num_minibatches;
  m->by_sequence = by_sequence;
  for (i = 0; i < (by_sequence ? B : T * B); i++) m->order[i] = i;
  return MRL_OK;
}

MRL_DEF void mrl_minibatches_free(mrl_minibatches *m) {
  MRL_FREE(m->order);
  MRL_FREE(m->rows);
  memset(m, 0, sizeof *m);
}

MRL_DEF void mrl_minibatches_shuffle(mrl_minibatches *m, mrl_rng *rng) {
  int i, n = m->by_sequence ? m->B : m->T * m->B;
  for (i = 0; i < n; i++) m->order[i] = i;
  mrl_rng_shuffle(rng, m->order, n);
}

MRL_DEF const int *mrl_minibatches_get(mrl_minibatches *m, int k, int *mb_T, int *mb_B,
                                       const int **envs) {
  if (m->by_sequence) {
    int per = m->B / m->num_minibatches, t, j;
    const int *chosen = m->order + (size_t)k * per;
    for (t = 0; t < m->T; t++)
      for (j = 0; j < per; j++) m->rows[t * per + j] = t * m->B + chosen[j];
    *mb_T = m->T;
    *mb_B = per;
    if (envs) *envs = chosen;
    return m->rows;
  }
  *mb_T = 1;
  *mb_B = m->T * m->B / m->num_minibatches;
  if (envs) *envs = NULL;
  return m->order + (size_t)k * *mb_B;
}

MRL_DEF void mrl_copy_rows(const float *src, int width, const int *rows, int n, float *dst) {
  int i;
  for (i = 0; i < n; i++)
    memcpy(dst + (size_t)i * width, src + (size_t)rows[i] * width, sizeof(float) * (size_t)width);
}

/* ---- update guard ---- */

MRL_DEF int mrl_update_guard(mrl_params *p, float loss, float max_grad_norm) {
  double sq = 0.0;
  size_t j;
  if (!mrl__finite(loss)) return 0;
  if (max_grad_norm > 0.0f) /* the norm is NaN or infinite when any gradient is */
    return mrl__finite(mrl_params_clip_grad_norm(p, max_grad_norm));
  for (j = 0; j < p->total; j++) sq += (double)p->grads[j] * p->grads[j];
  return mrl__finite(sq);
}

MRL_DEF mrl_result mrl_update_backup_init(mrl_update_backup *b, const mrl_params *p) {
  b->total = p->total;
  b->adam_steps = 0;
  b->data = (float *)MRL_MALLOC(sizeof(float) * (3 * p->total + 1));
  return b->data ? MRL_OK : MRL_ERR_OUT_OF_MEMORY;
}

MRL_DEF void mrl_update_backup_save(mrl_update_backup *b, const mrl_params *p) {
  size_t n = b->total;
  memcpy(b->data, p->values, sizeof(float) * n);
  memcpy(b->data + n, p->moment1, sizeof(float) * n);
  memcpy(b->data + 2 * n, p->moment2, sizeof(float) * n);
  b->adam_steps = p->adam_steps;
}

MRL_DEF void mrl_update_backup_restore(const mrl_update_backup *b, mrl_params *p) {
  size_t n = b->total;
  memcpy(p->values, b->data, sizeof(float) * n);
  memcpy(p->moment1, b->data + n, sizeof(float) * n);
  memcpy(p->moment2, b->data + 2 * n, sizeof(float) * n);
  p->adam_steps = b->adam_steps;
}

MRL_DEF void mrl_update_backup_free(mrl_update_backup *b) {
  MRL_FREE(b->data);
  b->data = NULL;
}

/* ---- evaluation >>evaluate ---- */

MRL_DEF mrl_result mrl_evaluate(mrl_act_fn act, void *agent, int state_dim, mrl_vecenv *env,
                                int episodes, int greedy, mrl_rng *rng, mrl_episode_stats *stats) {
  int n, i, done = 0, *count = NULL, *target;
  float *state = NULL, *starts = NULL, *actions = NULL;
  mrl_result r;
  if (!act || !env || !stats || state_dim < 0 || episodes < 1 ||
      episodes > MRL_EPISODE_STATS_WINDOW)
    return MRL_ERR_INVALID_ARGUMENT;
  n = env->num_envs;
  state = (float *)MRL_MALLOC(sizeof(float) * ((size_t)n * state_dim + 1));
  starts = (float *)MRL_MALLOC(sizeof(float) * (size_t)n);
  actions = (float *)MRL_MALLOC(sizeof(float) * (size_t)n * env->action_dim);
  count = (int *)MRL_MALLOC(sizeof(int) * (size_t)n * 2);
  if (!state || !starts || !actions || !count) {
    r = MRL_ERR_OUT_OF_MEMORY;
    goto out;
  }
  target = count + n;
  memset(state, 0, sizeof(float) * ((size_t)n * state_dim + 1));
  for (i = 0; i < n; i++) {
    starts[i] = 1.0f;
    count[i] = 0;
    target[i] = (episodes + i) / n;
  }
  mrl_episode_stats_init(stats);
  if ((r = mrl_vecenv_reset(env)) != MRL_OK) goto out;
  while (done < episodes) {
    if ((r = act(agent, env->obs, n, starts, state, greedy, rng, actions)) != MRL_OK) goto out;
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

/* ---- PPO >>ppo ---- */

MRL_DEF mrl_ppo_config mrl_ppo_config_default(void) {
  mrl_ppo_config c;
  memset(&c, 0, sizeof c);
  c.seed = 1;
  c.num_steps = 128;
  c.learning_rate = 2.5e-4f;
  c.anneal_lr = 1;
  c.total_steps = 0;
  c.gamma = 0.99f;
  c.gae_lambda = 0.95f;
  c.num_minibatches = 4;
  c.update_epochs = 4;
  c.norm_adv = 1;
  c.clip_coef = 0.2f;
  c.anneal_clip = 0;
  c.clip_vloss = 1;
  c.ent_coef = 0.01f;
  c.vf_coef = 0.5f;
  c.max_grad_norm = 0.5f;
  c.target_kl = 0.0f;
  c.adam_eps = 1e-5f;
  c.net = mrl_tower_config_default();
  c.orthogonal_init = 1;
  c.shared_torso = 0;
  c.normalize_obs = 0;
  c.normalize_reward = 0;
  c.squash_actions = 0;
  c.log_std_init = 0.0f;
  c.core_aux_coef = 0.0f;
  c.adv_std_floor = 0.0f;
  return c;
}

MRL_DEF int mrl_ppo_config_json(const mrl_ppo_config *c, char *buf, size_t size) {
  const mrl_tower_config *n = &c->net;
  char enc[96] = "", head[96] = "", f[12][24], core[1024];
  int i, k = 0;
  mrl_core_config_json(&n->core, core, sizeof core);
  for (i = 0; i < n->num_encoder_layers && i < MRL_TOWER_MAX_LAYERS; i++)
    k += snprintf(enc + k, sizeof enc - (size_t)k, "%s%d", i ? "," : "", n->encoder_sizes[i]);
  for (k = 0, i = 0; i < n->num_head_layers && i < MRL_TOWER_MAX_LAYERS; i++)
    k += snprintf(head + k, sizeof head - (size_t)k, "%s%d", i ? "," : "", n->head_sizes[i]);
  return snprintf(
      buf, size,
      "{\"seed\":%llu,\"num_steps\":%d,\"learning_rate\":%s,\"anneal_lr\":%d,"
      "\"total_steps\":%lld,\"gamma\":%s,\"gae_lambda\":%s,\"num_minibatches\":%d,"
      "\"update_epochs\":%d,\"norm_adv\":%d,\"clip_coef\":%s,\"anneal_clip\":%d,"
      "\"clip_vloss\":%d,\"ent_coef\":%s,\"vf_coef\":%s,\"max_grad_norm\":%s,"
      "\"target_kl\":%s,\"adam_eps\":%s,\"encoder_sizes\":[%s],\"core\":%s,\"head_sizes\":[%s],"
      "\"activation\":%d,\"use_conv\":%d,\"orthogonal_init\":%d,\"shared_torso\":%d,"
      "\"normalize_obs\":%d,\"normalize_reward\":%d,\"squash_actions\":%d,\"log_std_init\":%s,"
      "\"core_aux_coef\":%s,\"adv_std_floor\":%s}",
      (unsigned long long)c->seed, c->num_steps, mrl__float_text(c->learning_rate, f[0], 24),
      c->anneal_lr, c->total_steps, mrl__float_text(c->gamma, f[1], 24),
      mrl__float_text(c->gae_lambda, f[2], 24), c->num_minibatches, c->update_epochs, c->norm_adv,
      mrl__float_text(c->clip_coef, f[3], 24), c->anneal_clip, c->clip_vloss,
      mrl__float_text(c->ent_coef, f[4], 24), mrl__float_text(c->vf_coef, f[5], 24),
      mrl__float_text(c->max_grad_norm, f[6], 24), mrl__float_text(c->target_kl, f[7], 24),
      mrl__float_text(c->adam_eps, f[8], 24), enc, core, head, (int)n->activation, n->use_conv,
      c->orthogonal_init, c->shared_torso, c->normalize_obs, c->normalize_reward, c->squash_actions,
      mrl__float_text(c->log_std_init, f[9], 24), mrl__float_text(c->core_aux_coef, f[10], 24),
      mrl__float_text(c->adv_std_floor, f[11], 24));
}

/* Names the first field of a PPO config that cannot work (error), or 0. */
static int mrl__ppo_check_config(const mrl_ppo_config *c, const mrl_vecenv *env, char *err,
                                 size_t n) {
  long long batch = (long long)env->num_envs * c->num_steps;
  /* a table on the stack: a static table of pointers would be writable data */
  const char *const names[12] = {"learning_rate", "gamma",        "gae_lambda",    "clip_coef",
                                 "ent_coef",      "vf_coef",      "max_grad_norm", "target_kl",
                                 "adam_eps",      "log_std_init", "core_aux_coef", "adv_std_floor"};
  const float *f[12];
  int i;
  f[0] = &c->learning_rate, f[1] = &c->gamma, f[2] = &c->gae_lambda, f[3] = &c->clip_coef;
  f[4] = &c->ent_coef, f[5] = &c->vf_coef, f[6] = &c->max_grad_norm, f[7] = &c->target_kl;
  f[8] = &c->adam_eps, f[9] = &c->log_std_init, f[10] = &c->core_aux_coef;
  f[11] = &c->adv_std_floor;
  for (i = 0; i < 12; i++)
    if (!mrl__finite(*f[i])) {
      mrl__say(err, n, "mrl_ppo_config.%s %g must be finite", names[i], *f[i]);
      return 1;
    }
#define MRL__REJECT(cond, ...)                                                                     \
  do {                                                                                             \
    if (cond) {                                                                                    \
      mrl__say(err, n, __VA_ARGS__);                                                               \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)
  MRL__REJECT(c->num_steps < 1, "mrl_ppo_config.num_steps %d must be >= 1", c->num_steps);
  MRL__REJECT(batch > INT_MAX / 4, "mrl_ppo_config.num_steps %d x %d environments is too large",
              c->num_steps, env->num_envs);
  MRL__REJECT(c->num_minibatches < 1, "mrl_ppo_config.num_minibatches %d must be >= 1",
              c->num_minibatches);
  MRL__REJECT(c->update_epochs < 1, "mrl_ppo_config.update_epochs %d must be >= 1",
              c->update_epochs);
  MRL__REJECT(c->learning_rate < 0.0f, "mrl_ppo_config.learning_rate %g must be >= 0",
              c->learning_rate);
  MRL__REJECT(c->gamma < 0.0f || c->gamma > 1.0f, "mrl_ppo_config.gamma %g must be in [0, 1]",
              c->gamma);
  MRL__REJECT(c->gae_lambda < 0.0f || c->gae_lambda > 1.0f,
              "mrl_ppo_config.gae_lambda %g must be in [0, 1]", c->gae_lambda);
  MRL__REJECT(c->clip_coef < 0.0f, "mrl_ppo_config.clip_coef %g must be >= 0", c->clip_coef);
  MRL__REJECT(c->adam_eps <= 0.0f, "mrl_ppo_config.adam_eps %g must be > 0", c->adam_eps);
  MRL__REJECT(c->core_aux_coef < 0.0f, "mrl_ppo_config.core_aux_coef %g must be >= 0",
              c->core_aux_coef);
  MRL__REJECT(c->adv_std_floor < 0.0f, "mrl_ppo_config.adv_std_floor %g must be >= 0",
              c->adv_std_floor);
  MRL__REJECT(c->total_steps < 0, "mrl_ppo_config.total_steps %lld must be >= 0", c->total_steps);
  MRL__REJECT(c->net.core.kind != MRL_CORE_NONE && env->num_envs % c->num_minibatches != 0,
              "mrl_ppo_config.num_minibatches %d does not divide num_envs %d (a recurrent "
              "core trains on whole environment sequences)",
              c->num_minibatches, env->num_envs);
  MRL__REJECT(batch < c->num_minibatches,
              "mrl_ppo_config.num_minibatches %d exceeds the %lld steps of a rollout",
              c->num_minibatches, batch);
  MRL__REJECT(env->num_actions < 1 && env->action_dim < 1, "the vector env has no actions");
#undef MRL__REJECT
  return 0;
}

/* Policy head for the environment's action space: categorical for discrete
 * actions, else a Gaussian (clipped when sent) or tanh-squashed Gaussian. */
static mrl_result mrl__ppo_policy_init(mrl_ppo *a, const mrl_vecenv *env, int in_features) {
  mrl_policy_head_config pc;
  const mrl_env *e = env->envs[0];
  if (env->num_actions > 0) {
    pc = mrl_policy_head_config_default(MRL_POLICY_CATEGORICAL);
    pc.num_actions = env->num_actions;
  } else {
    pc = mrl_policy_head_config_default(a->cfg.squash_actions ? MRL_POLICY_TANH_GAUSSIAN
                                                              : MRL_POLICY_GAUSSIAN);
    pc.action_dim = env->action_dim;
    pc.action_low = mrl_env_action_low(e);
    pc.action_high = mrl_env_action_high(e);
    pc.log_std_init = a->cfg.log_std_init;
  }
  pc.init = a->cfg.orthogonal_init ? mrl_init_orthogonal(0.01f) : mrl_init_default();
  return mrl_policy_head_init(&a->policy, &a->params, "actor.out", in_features, &pc);
}

MRL_DEF mrl_result mrl_ppo_init(mrl_ppo *a, const mrl_ppo_config *cfg, const mrl_vecenv *env) {
  mrl_tower_config net;
  mrl_runner_config rc;
  mrl_result r;
  size_t B, TB;
  memset(a, 0, sizeof *a);
  if (!cfg || !env || env->num_envs < 1) {
    mrl__say(a->error, sizeof a->error, "mrl_ppo_init: needs a config and a vector env");
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (mrl__ppo_check_config(cfg, env, a->error, sizeof a->error)) return MRL_ERR_INVALID_ARGUMENT;
  a->cfg = *cfg;
  a->obs_dim = env->obs_dim;
  a->num_envs = env->num_envs;
  a->num_actions = env->num_actions;
  a->env_action_dim = env->action_dim;
  B = (size_t)a->num_envs;
  TB = B * (size_t)cfg->num_steps;
  /* the network: CleanRL's layer_init is orthogonal(sqrt 2) with zero biases
   * for hidden layers, orthogonal(1) for its LSTM */
  net = cfg->net;
  if (cfg->orthogonal_init) {
    if (net.init.kind == MRL_INIT_DEFAULT) net.init = mrl_init_orthogonal(sqrtf(2.0f));
    if (net.core.init.kind == MRL_INIT_DEFAULT) net.core.init = mrl_init_orthogonal(1.0f);
  }
  mrl_params_init(&a->params);
  if ((r = mrl_tower_init(&a->actor, &a->params, "actor", a->obs_dim, &net, 0, a->error,
                          sizeof a->error)) != MRL_OK)
    goto fail;
  if (!cfg->shared_torso &&
      (r = mrl_tower_init(&a->critic, &a->params, "critic", a->obs_dim, &net, a->actor.state_dim,
                          a->error, sizeof a->error)) != MRL_OK)
    goto fail;
  if ((r = mrl__ppo_policy_init(a, env, a->actor.output_dim)) != MRL_OK) {
    mrl__say(a->error, sizeof a->error,
             "mrl_ppo_init: no policy head fits the action space "
             "(%d actions of %d floats)",
             env->num_actions, env->action_dim);
    goto fail;
  }
  mrl_linear_layer_init(&a->value, &a->params, "critic.out",
                        cfg->shared_torso ? a->actor.output_dim : a->critic.output_dim, 1,
                        cfg->orthogonal_init ? mrl_init_orthogonal(1.0f) : mrl_init_default());
  if ((r = mrl_params_finalize(&a->params, cfg->seed)) != MRL_OK) {
    mrl__say(a->error, sizeof a->error, "mrl_ppo_init: %s", a->params.message);
    goto fail;
  }
  a->raw_dim = mrl_policy_head_raw_dim(&a->policy);
  a->state_dim = a->actor.state_dim + (cfg->shared_torso ? 0 : a->critic.state_dim);
  rc = mrl_runner_config_default();
  rc.normalize_obs = cfg->normalize_obs;
  rc.normalize_reward = cfg->normalize_reward;
  rc.gamma = cfg->gamma;
  if ((r = mrl_runner_init(&a->runner, env, a->state_dim, &rc, a->error, sizeof a->error)) !=
          MRL_OK ||
      (r = mrl_graph_init(&a->graph, (size_t)1 << 22)) != MRL_OK ||
      (r = mrl_graph_init(&a->act_graph, (size_t)1 << 18)) != MRL_OK ||
      (r = mrl_rollout_init(&a->rollout, cfg->num_steps, a->num_envs, a->obs_dim, a->raw_dim,
                            a->state_dim)) != MRL_OK ||
      (r = mrl_minibatches_init(&a->minibatches, cfg->num_steps, a->num_envs, cfg->num_minibatches,
                                a->state_dim > 0)) != MRL_OK ||
      (r = mrl_update_backup_init(&a->backup, &a->params)) != MRL_OK)
    goto fail;
  a->rng = mrl_rng_make(cfg->seed ^ 0x9e3779b97f4a7c15ULL);
  a->step_raw = (float *)MRL_MALLOC(sizeof(float) * B * (size_t)a->raw_dim);
  a->step_actions = (float *)MRL_MALLOC(sizeof(float) * B * (size_t)a->env_action_dim);
  a->step_values = (float *)MRL_MALLOC(sizeof(float) * B);
  a->mb_obs = (float *)MRL_MALLOC(sizeof(float) * TB * (size_t)a->obs_dim);
  a->mb_actions = (float *)MRL_MALLOC(sizeof(float) * TB * (size_t)a->raw_dim);
  a->mb_starts = (float *)MRL_MALLOC(sizeof(float) * TB);
  a->mb_state = (float *)MRL_MALLOC(sizeof(float) * (B * (size_t)a->state_dim + 1));
  a->mb_scalars = (float *)MRL_MALLOC(sizeof(float) * TB * 4);
  if (!a->step_raw || !a->step_actions || !a->step_values || !a->mb_obs || !a->mb_actions ||
      !a->mb_starts || !a->mb_state || !a->mb_scalars) {
    r = MRL_ERR_OUT_OF_MEMORY;
    goto fail;
  }
  return MRL_OK;
fail:
  if (r == MRL_ERR_OUT_OF_MEMORY && !a->error[0])
    mrl__say(a->error, sizeof a->error, "mrl_ppo_init: out of memory");
  {
    char keep[MRL_ERROR_SIZE];
    memcpy(keep, a->error, sizeof keep);
    mrl_ppo_free(a);
    memcpy(a->error, keep, sizeof keep);
  }
  return r;
}

MRL_DEF void mrl_ppo_free(mrl_ppo *a) {
  mrl_tower_free(&a->actor);
  mrl_tower_free(&a->critic);
  mrl_params_free(&a->params);
  mrl_graph_free(&a->graph);
  mrl_graph_free(&a->act_graph);
  mrl_runner_free(&a->runner);
  mrl_rollout_free(&a->rollout);
  mrl_minibatches_free(&a->minibatches);
  mrl_update_backup_free(&a->backup);
  MRL_FREE(a->step_raw);
  MRL_FREE(a->step_actions);
  MRL_FREE(a->step_values);
  MRL_FREE(a->mb_obs);
  MRL_FREE(a->mb_actions);
  MRL_FREE(a->mb_starts);
  MRL_FREE(a->mb_state);
  MRL_FREE(a->mb_scalars);
  memset(a, 0, sizeof *a);
}

MRL_DEF int mrl_ppo_state_dim(const mrl_ppo *a) {
  return a->state_dim;
}

/* Distribution parameters [T*B, P] and values [T*B] of observations x
 * [T*B, obs]. State records of a->state_dim floats: the actor's slice first,
 * then the critic's. dist or values may be NULL (not computed; a critic with
 * its own recurrent state still needs values to advance it). */
static void mrl__ppo_forward_aux(mrl_ppo *a, mrl_graph *g, mrl_tensor *x, int T, int B,
                                 const float *starts, const float *state_in, float *state_out,
                                 mrl_tensor **dist, mrl_tensor **values, mrl_tensor **aux) {
  int S = a->state_dim, shape[1];
  mrl_tensor *aa = NULL, *ac = NULL, *fc;
  mrl_tensor *fa = mrl_tower_forward_aux(&a->actor, g, x, T, B, starts, state_in, state_out, S,
                                         aux ? &aa : NULL);
  if (dist) *dist = mrl_policy_head_forward(&a->policy, g, fa);
  if (values) {
    fc = a->cfg.shared_torso ? fa
                             : mrl_tower_forward_aux(&a->critic, g, x, T, B, starts, state_in,
                                                     state_out, S, aux ? &ac : NULL);
    shape[0] = T * B;
    *values = mrl_reshape(g, mrl_linear_layer_forward(&a->value, g, fc), 1, shape);
  }
  if (aux) /* the cores' auxiliary losses (FTW's KL), mean over steps, both towers */
    *aux = aa && ac ? mrl_add(g, mrl_mean(g, aa), mrl_mean(g, ac))
           : aa     ? mrl_mean(g, aa)
           : ac     ? mrl_mean(g, ac)
                    : NULL;
}

static void mrl__ppo_forward(mrl_ppo *a, mrl_graph *g, mrl_tensor *x, int T, int B,
                             const float *starts, const float *state_in, float *state_out,
                             mrl_tensor **dist, mrl_tensor **values) {
  mrl__ppo_forward_aux(a, g, x, T, B, starts, state_in, state_out, dist, values, NULL);
}

/* Rollout: num_steps vector steps into a->rollout, then GAE. */
static mrl_result mrl__ppo_collect(mrl_ppo *a, mrl_vecenv *env) {
  mrl_runner *run = &a->runner;
  mrl_rollout *ro = &a->rollout;
  mrl_graph *g = &a->act_graph;
  int T = a->cfg.num_steps, B = a->num_envs, O = a->obs_dim, R = a->raw_dim, S = a->state_dim;
  int t, b;
  mrl_result r;
  memcpy(ro->initial_state, run->state, sizeof(float) * (size_t)B * S);
  for (t = 0; t < T; t++) {
    size_t row = (size_t)t * B;
    mrl_tensor *x, *dist = NULL, *values = NULL;
    mrl_graph_reset(g);
    mrl_graph_set_no_grad(g, 1);
    x = mrl_tensor_from2(g, run->obs, B, O);
    if (x)
      mrl__ppo_forward(a, g, x, 1, B, run->episode_start, run->state, run->state, &dist, &values);
    if (!dist || !values) return MRL_ERR_OUT_OF_MEMORY;
    memcpy(ro->obs + row * O, run->obs, sizeof(float) * (size_t)B * O);
    memcpy(ro->episode_starts + row, run->episode_start, sizeof(float) * (size_t)B);
    memcpy(ro->values + row, values->data, sizeof(float) * (size_t)B);
    mrl_policy_head_act(&a->policy, dist->data, B, 0, &a->rng, NULL, ro->actions + row * R,
                        ro->log_probs + row);
    mrl_policy_head_env_action(&a->policy, ro->actions + row * R, B, a->step_actions);
    if ((r = mrl_runner_step(run, env, a->step_actions)) != MRL_OK) {
      mrl__say(a->error, sizeof a->error, "ppo: %s",
               env->error[0] ? env->error : mrl_result_string(r));
      return r;
    }
    memcpy(ro->rewards + row, run->rewards, sizeof(float) * (size_t)B);
    memcpy(ro->terminated + row, run->terminated, sizeof(float) * (size_t)B);
    memcpy(ro->truncated + row, run->truncated, sizeof(float) * (size_t)B);
    /* bootstrap a truncation from V(final observation), with the critic
     * state that has seen the episode so far */
    for (b = 0; b < B; b++) {
      ro->final_values[row + b] = 0.0f;
      if (run->truncated[b] != 0.0f) {
        mrl_tensor *xf, *vf = NULL;
        float zero = 0.0f;
        mrl_graph_reset(g);
        xf = mrl_tensor_from2(g, run->final_obs + (size_t)b * O, 1, O);
        if (xf)
          mrl__ppo_forward(a, g, xf, 1, 1, &zero, run->state + (size_t)b * S, NULL, NULL, &vf);
        if (!vf) return MRL_ERR_OUT_OF_MEMORY;
        ro->final_values[row + b] = vf->data[0];
      }
    }
  }
  { /* value of the observation after the last step, state not advanced */
    mrl_tensor *x, *values = NULL;
    mrl_graph_reset(g);
    x = mrl_tensor_from2(g, run->obs, B, O);
    if (x) mrl__ppo_forward(a, g, x, 1, B, run->episode_start, run->state, NULL, NULL, &values);
    if (!values) return MRL_ERR_OUT_OF_MEMORY;
    memcpy(a->step_values, values->data, sizeof(float) * (size_t)B);
  }
  mrl_rollout_compute_gae(ro, a->step_values, a->cfg.gamma, a->cfg.gae_lambda);
  return MRL_OK;
}

/* One minibatch of rollout rows (time-major [T, B]; recurrent state of
 * column k in mb_state): the clipped-surrogate loss, one Adam step. */
static mrl_result mrl__ppo_minibatch(mrl_ppo *a, const int *rows, int T, int B, float lr,
                                     float clip, mrl_ppo_update_stats *st, float *approx_kl) {
  mrl_rollout *ro = &a->rollout;
  mrl_graph *g = &a->graph;
  int N = T * B, i, shape[1];
  float *old_logp = a->mb_scalars, *adv = old_logp + N, *ret = adv + N, *old_v = ret + N;
  double mean = 0.0, var = 0.0, sd, kl = 0.0, clipped = 0.0;
  mrl_tensor *x, *dist = NULL, *values = NULL, *logp = NULL, *ent_rows = NULL, *ratio, *pg, *ent;
  mrl_tensor *aux = NULL;
  mrl_tensor *vl, *loss, *t_old_logp, *t_adv, *t_ret, *t_old_v;
  mrl_adam_config adam;
  mrl_copy_rows(ro->obs, a->obs_dim, rows, N, a->mb_obs);
  mrl_copy_rows(ro->actions, a->raw_dim, rows, N, a->mb_actions);
  mrl_copy_rows(ro->episode_starts, 1, rows, N, a->mb_starts);
  mrl_copy_rows(ro->log_probs, 1, rows, N, old_logp);
  mrl_copy_rows(ro->advantages, 1, rows, N, adv);
  mrl_copy_rows(ro->returns, 1, rows, N, ret);
  mrl_copy_rows(ro->values, 1, rows, N, old_v);
  if (a->cfg.norm_adv && N > 1) { /* torch's adv.std() is the unbiased estimate */
    for (i = 0; i < N; i++) mean += adv[i];
    mean /= N;
    for (i = 0; i < N; i++) var += (adv[i] - mean) * (adv[i] - mean);
    var /= (N - 1);
    sd = sqrt(var);
    if (sd < a->cfg.adv_std_floor) sd = a->cfg.adv_std_floor;
    for (i = 0; i < N; i++) adv[i] = (float)((adv[i] - mean) / (sd + 1e-8));
  }
  mrl_graph_reset(g);
  mrl_graph_set_no_grad(g, 0);
  x = mrl_tensor_from2(g, a->mb_obs, N, a->obs_dim);
  if (x)
    mrl__ppo_forward_aux(a, g, x, T, B, a->mb_starts, a->state_dim ? a->mb_state : NULL, NULL,
                         &dist, &values, a->cfg.core_aux_coef != 0.0f ? &aux : NULL);
  if (dist) mrl_policy_head_evaluate(&a->policy, g, dist, a->mb_actions, &logp, &ent_rows);
  shape[0] = N;
  t_old_logp = mrl_tensor_from(g, old_logp, 1, shape);
  t_adv = mrl_tensor_from(g, adv, 1, shape);
  t_ret = mrl_tensor_from(g, ret, 1, shape);
  t_old_v = mrl_tensor_from(g, old_v, 1, shape);
  ent = mrl_mean(g, ent_rows);
  ratio = mrl_exp(g, mrl_sub(g, logp, t_old_logp));
  /* policy loss: -mean(min(r A, clip(r, 1 - c, 1 + c) A)) */
  pg = mrl_neg(g, mrl_mean(g, mrl_minimum(g, mrl_mul(g, ratio, t_adv),
                                          mrl_mul(g, mrl_clamp(g, ratio, 1.0f - clip, 1.0f + clip),
                                                  t_adv))));
  if (a->cfg.clip_vloss) {
    mrl_tensor *unclipped = mrl_square(g, mrl_sub(g, values, t_ret));
    mrl_tensor *v_clip =
        mrl_add(g, t_old_v, mrl_clamp(g, mrl_sub(g, values, t_old_v), -clip, clip));
    mrl_tensor *clipped_loss = mrl_square(g, mrl_sub(g, v_clip, t_ret));
    vl = mrl_scale(g, mrl_mean(g, mrl_maximum(g, unclipped, clipped_loss)), 0.5f);
  } else {
    vl = mrl_scale(g, mrl_mean(g, mrl_square(g, mrl_sub(g, values, t_ret))), 0.5f);
  }
  loss = mrl_add(g, mrl_sub(g, pg, mrl_scale(g, ent, a->cfg.ent_coef)),
                 mrl_scale(g, vl, a->cfg.vf_coef));
  if (aux) loss = mrl_add(g, loss, mrl_scale(g, aux, a->cfg.core_aux_coef));
  if (!loss) {
    mrl__say(a->error, sizeof a->error, "ppo: out of memory in the update");
    return MRL_ERR_OUT_OF_MEMORY;
  }
  for (i = 0; i < N; i++) { /* CleanRL's approx_kl ((r - 1) - log r) and clip fraction */
    double log_ratio = (double)logp->data[i] - old_logp[i], r_i = exp(log_ratio);
    kl += (r_i - 1.0) - log_ratio;
    clipped += fabs(r_i - 1.0) > clip ? 1.0 : 0.0;
  }
  mrl_params_zero_grad(&a->params);
  mrl_backward(g, loss);
  if (!mrl_update_guard(&a->params, loss->data[0], a->cfg.max_grad_norm)) {
    mrl__say(a->error, sizeof a->error,
             "ppo: non-finite loss (%g) or gradient at iteration %lld: update not applied",
             loss->data[0], a->iterations + 1);
    return MRL_ERR_NON_FINITE;
  }
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
  *approx_kl = (float)(kl / N);
  return MRL_OK;
}

MRL_DEF mrl_result mrl_ppo_update(mrl_ppo *a, float lr, float clip, mrl_ppo_update_stats *stats) {
  mrl_minibatches *mb = &a->minibatches;
  mrl_ppo_update_stats local;
  int S = a->state_dim, epoch, k, j, T, B;
  float kl = 0.0f;
  mrl_result r;
  mrl_rng rng0 = a->rng;
  if (!stats) stats = &local;
  memset(stats, 0, sizeof *stats);
  if (!mrl__finite(lr) || !mrl__finite(clip)) return MRL_ERR_INVALID_ARGUMENT;
  mrl_update_backup_save(&a->backup, &a->params);
  for (epoch = 0; epoch < a->cfg.update_epochs; epoch++) {
    mrl_minibatches_shuffle(mb, &a->rng);
    for (k = 0; k < a->cfg.num_minibatches; k++) {
      const int *envs;
      const int *rows = mrl_minibatches_get(mb, k, &T, &B, &envs);
      for (j = 0; envs && j < B; j++) /* each sequence replays from its stored state */
        memcpy(a->mb_state + (size_t)j * S, a->rollout.initial_state + (size_t)envs[j] * S,
               sizeof(float) * (size_t)S);
      if ((r = mrl__ppo_minibatch(a, rows, T, B, lr, clip, stats, &kl)) != MRL_OK) {
        mrl_update_backup_restore(&a->backup, &a->params); /* the whole update, undone */
        a->rng = rng0;
        return r;
      }
      if (a->cfg.target_kl > 0.0f && kl > a->cfg.target_kl) break;
    }
    if (a->cfg.target_kl > 0.0f && kl > a->cfg.target_kl) break;
  }
  return MRL_OK;
}

/* 1 - explained variance of the returns by the values (CleanRL's figure). */
static float mrl__explained_variance(const float *y_pred, const float *y, int n) {
  double y_mean = 0.0, d_mean = 0.0, y_var = 0.0, d_var = 0.0;
  int i;
  for (i = 0; i < n; i++) {
    y_mean += y[i];
    d_mean += y[i] - y_pred[i];
  }
  y_mean /= n;
  d_mean /= n;
  for (i = 0; i < n; i++) {
    double dy = y[i] - y_mean, dd = y[i] - y_pred[i] - d_mean;
    y_var += dy * dy;
    d_var += dd * dd;
  }
  return y_var > 0.0 ? (float)(1.0 - d_var / y_var) : 0.0f;
}

MRL_DEF mrl_result mrl_ppo_train(mrl_ppo *a, mrl_vecenv *env, long long env_steps,
                                 mrl_progress_fn progress, void *user) {
  long long batch = (long long)a->num_envs * a->cfg.num_steps, iters, it, span, done;
  long long steps0 = a->runner.env_steps;
  double t0 = mrl_wall_seconds();
  mrl_result r;
  if (!env || env->num_envs != a->num_envs || env->obs_dim != a->obs_dim ||
      env->num_actions != a->num_actions || env->action_dim != a->env_action_dim) {
    mrl__say(a->error, sizeof a->error, "mrl_ppo_train: not the vector env the agent was made for");
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (env_steps < 0) {
    mrl__say(a->error, sizeof a->error, "mrl_ppo_train: env_steps %lld is negative", env_steps);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  iters = env_steps / batch;
  if (iters == 0) return MRL_OK;
  /* schedules: over this call (CleanRL), or over the agent's life */
  span = a->cfg.total_steps > 0 ? a->cfg.total_steps / batch : iters;
  done = a->cfg.total_steps > 0 ? a->iterations : 0;
  if ((r = mrl_runner_start(&a->runner, env)) != MRL_OK) return r;
  for (it = 1; it <= iters; it++) {
    float lr = a->cfg.learning_rate, clip = a->cfg.clip_coef;
    mrl_ppo_update_stats st;
    if (a->cfg.anneal_lr) lr = mrl_lr_linear(lr, 0.0f, done + it - 1, span);
    if (a->cfg.anneal_clip) clip = mrl_lr_linear(clip, 0.0f, done + it - 1, span);
    if ((r = mrl__ppo_collect(a, env)) != MRL_OK) return r;
    if ((r = mrl_ppo_update(a, lr, clip, &st)) != MRL_OK) return r;
    a->iterations++;
    if (progress) {
      mrl_train_progress p;
      double n = st.count ? (double)st.count : 1.0;
      memset(&p, 0, sizeof p);
      p.algo = "ppo";
      p.env_id = mrl_env_id(env->envs[0]);
      p.iteration = (int)it;
      p.num_iterations = (int)iters;
      p.env_steps = a->runner.env_steps;
      p.seconds = mrl_wall_seconds() - t0;
      p.steps_per_second =
          p.seconds > 0.0 ? (double)(a->runner.env_steps - steps0) / p.seconds : 0.0;
      p.episodes = a->runner.stats.total_episodes;
      p.mean_return = mrl_episode_stats_mean_return(&a->runner.stats);
      p.mean_length = mrl_episode_stats_mean_length(&a->runner.stats);
      p.success_rate = mrl_episode_stats_success_rate(&a->runner.stats);
      p.learning_rate = lr;
      mrl_progress_set(&p, "policy_loss", (float)(st.policy_loss / n));
      mrl_progress_set(&p, "value_loss", (float)(st.value_loss / n));
      mrl_progress_set(&p, "entropy", (float)(st.entropy / n));
      mrl_progress_set(&p, "approx_kl", (float)(st.approx_kl / n));
      mrl_progress_set(&p, "clip_fraction", (float)(st.clip_fraction / n));
      mrl_progress_set(&p, "explained_variance",
                       mrl__explained_variance(a->rollout.values, a->rollout.returns, (int)batch));
      if (progress(&p, user)) break;
    }
  }
  return MRL_OK;
}

/* Deployment's observations: normalised with the training statistics into
 * the arena when asked, else the caller's array itself. */
static const float *mrl__ppo_obs(mrl_ppo *a, mrl_graph *g, const float *obs, int n) {
  float *out;
  if (!a->cfg.normalize_obs) return obs;
  out = (float *)mrl_graph_alloc(g, sizeof(float) * (size_t)n * a->obs_dim);
  if (out) mrl_runner_normalize(&a->runner, obs, n, out);
  return out;
}

MRL_DEF mrl_result mrl_ppo_act(mrl_ppo *a, const float *obs, int n, const float *episode_start,
                               float *state, int greedy, mrl_rng *rng, float *actions) {
  mrl_graph *g = &a->act_graph;
  mrl_tensor *x, *dist = NULL, *v = NULL;
  const float *xo;
  int critic_state = !a->cfg.shared_torso && a->critic.state_dim > 0;
  if (n < 1 || !obs || !actions || (a->state_dim && !state)) return MRL_ERR_INVALID_ARGUMENT;
  mrl_graph_reset(g);
  mrl_graph_set_no_grad(g, 1);
  if (!(xo = mrl__ppo_obs(a, g, obs, n))) return MRL_ERR_OUT_OF_MEMORY;
  x = mrl_tensor_from2(g, xo, n, a->obs_dim);
  /* a critic with its own recurrent state runs too, so that state advances */
  if (x)
    mrl__ppo_forward(a, g, x, 1, n, episode_start, state, state, &dist, critic_state ? &v : NULL);
  if (!dist || (critic_state && !v))
    return mrl_graph_status(g) != MRL_OK ? mrl_graph_status(g) : MRL_ERR_OUT_OF_MEMORY;
  /* raw actions straight into actions, then mapped in place to what is sent */
  mrl_policy_head_act(&a->policy, dist->data, n, greedy, rng ? rng : &a->rng, NULL, actions, NULL);
  mrl_policy_head_env_action(&a->policy, actions, n, actions);
  /* fold an overflow into the arena now: later calls of this size allocate nothing */
  mrl_graph_reset(g);
  return MRL_OK;
}

MRL_DEF mrl_result mrl_ppo_value(mrl_ppo *a, const float *obs, int n, const float *episode_start,
                                 const float *state, float *values) {
  mrl_graph *g = &a->act_graph;
  mrl_tensor *x, *v = NULL;
  const float *xo;
  if (n < 1 || !obs || !values || (a->state_dim && !state)) return MRL_ERR_INVALID_ARGUMENT;
  mrl_graph_reset(g);
  mrl_graph_set_no_grad(g, 1);
  if (!(xo = mrl__ppo_obs(a, g, obs, n))) return MRL_ERR_OUT_OF_MEMORY;
  x = mrl_tensor_from2(g, xo, n, a->obs_dim);
  if (x) mrl__ppo_forward(a, g, x, 1, n, episode_start, state, NULL, NULL, &v);
  if (!v) return mrl_graph_status(g) != MRL_OK ? mrl_graph_status(g) : MRL_ERR_OUT_OF_MEMORY;
  memcpy(values, v->data, sizeof(float) * (size_t)n);
  mrl_graph_reset(g);
  return MRL_OK;
}

static mrl_result mrl__ppo_act_fn(void *agent, const float *obs, int n, const float *episode_start,
                                  float *state, int greedy, mrl_rng *rng, float *actions) {
  return mrl_ppo_act((mrl_ppo *)agent, obs, n, episode_start, state, greedy, rng, actions);
}

MRL_DEF mrl_result mrl_ppo_evaluate(mrl_ppo *a, mrl_vecenv *env, int episodes, int greedy,
                                    mrl_episode_stats *stats) {
  mrl_rng rng = mrl_rng_make(a->cfg.seed ^ 0x5851f42d4c957f2dULL);
  if (!env || env->obs_dim != a->obs_dim || env->num_actions != a->num_actions ||
      env->action_dim != a->env_action_dim)
    return MRL_ERR_INVALID_ARGUMENT;
  return mrl_evaluate(mrl__ppo_act_fn, a, a->state_dim, env, episodes, greedy, &rng, stats);
}

/* PPO's own state beyond the runner: its RNG and iteration count. */
static int mrl__ppo_extras(const mrl_ppo *a, mrl_checkpoint_extra *x) {
  x[0].name = "__ppo.rng";
  x[0].dtype = "U64";
  x[0].data = &a->rng;
  x[0].count = sizeof a->rng / sizeof(uint64_t);
  x[1].name = "__ppo.iterations";
  x[1].dtype = "I64";
  x[1].data = &a->iterations;
  x[1].count = 1;
  return 2;
}

MRL_DEF mrl_result mrl_ppo_save(const mrl_ppo *a, const char *path, const mrl_vecenv *env) {
  char config[4096];
  mrl_checkpoint_extra x[2];
  int n = mrl__ppo_extras(a, x);
  mrl_ppo_config_json(&a->cfg, config, sizeof config);
  return mrl_agent_save(path, &a->params, "ppo", config, &a->runner, env, x, n);
}

MRL_DEF mrl_result mrl_ppo_load(mrl_ppo *a, const char *path, mrl_vecenv *env) {
  char config[4096];
  mrl_checkpoint_extra x[2];
  int n = mrl__ppo_extras(a, x);
  mrl_ppo_config_json(&a->cfg, config, sizeof config);
  return mrl_agent_load(path, &a->params, "ppo", config, &a->runner, env, x, n, a->error,
                        sizeof a->error);
}

#ifdef __cplusplus
}
#endif
#endif /* MEMRL_ALGOS_IMPLEMENTATION */

/*
---- memrl licence: the text of LICENSE (tools/run_tests.sh checks every copy) ----
This software is available under two licences; choose whichever you prefer.

------------------------------------------------------------------------------
ALTERNATIVE A - MIT License

Copyright (c) 2026 the memrl authors

Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.

------------------------------------------------------------------------------
ALTERNATIVE B - Public Domain (www.unlicense.org)

This is free and unencumbered software released into the public domain.
Anyone is free to copy, modify, publish, use, compile, sell, or distribute this
software, either in source code form or as a compiled binary, for any purpose,
commercial or non-commercial, and by any means.
---- end of memrl licence ----
*/
