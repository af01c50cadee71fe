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
 *                          length curriculum, minibatches, update guard,
 *                          Q-values (epsilon-greedy, Q-learning targets),
 *                          evaluation, agent checkpoints, SVG plots, threads,
 *                          the actor-critic network (PPO, A2C, A3C)
 *   PPO                    clipped-surrogate PPO, discrete or continuous
 *                          actions, feedforward, recurrent or a user's core
 *   DQN                    DQN with double Q, dueling, n-step, prioritised
 *                          replay and C51 as options
 *   REINFORCE              Williams' likelihood-ratio gradient with recurrent policy and
 *                          baseline memories (Wierstra et al.), K-step or lambda-return
 *                          advantages, truncated BPTT, a sequence-length curriculum
 *   A2C                    synchronous advantage actor-critic (SB3's defaults),
 *                          any core, discrete or continuous actions
 *   A3C                    asynchronous actor-learner threads with lock-free
 *                          updates and shared RMSProp (Mnih et al. 2016)
 *   TRPO                   trust-region natural-gradient steps with exact
 *                          Fisher-vector products (forward mode), any core
 *   IMPALA                 actors and one learner, V-trace, RMSProp, optional
 *                          PopArt; synchronous with one actor
 *   R2D2                   recurrent replay DQN: stored states, burn-in, value
 *                          rescaling, prioritised sequences, Ape-X actors
 *   DRQN                   recurrent DQN, bootstrapped random or sequential
 *                          updates (runs on R2D2's machinery)
 *   LICENCE                at the end of the file: public domain or MIT
 *   TAGS: each implementation section carries one tag, written >> and the
 *   name; `grep -n '[>]>ppo' memrl_algos.h` finds that section and nothing else.
 *   The tags in file order:
 *     shared plot threads queue progress runner agent_checkpoint minibatch q_values evaluate
 *     actor_critic ppo dqn reinforce a2c a3c trpo impala r2d2 drqn
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
 *                  (log-prob, entropy) / rsample for every action space;
 *                  mrl_actor_critic: SB3's ActorCriticPolicy (actor and critic
 *                  towers, policy head, value layer) with its rollout + GAE,
 *                  act and value, shared by PPO, A2C and A3C
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

/* ---- a bounded FIFO of ints, between actor threads and a learner ----
 * Carries indices (of trajectory slots, say) from producers to consumers.
 * Without MRL_THREADS it is a plain ring: push on a full queue and pop on an
 * empty one fail at once (MRL_ERR_INVALID_ARGUMENT). With MRL_THREADS every
 * call is thread-safe, push waits while the queue is full and pop while it
 * is empty; mrl_queue_close wakes every waiter: from then on pop fails at
 * once (the items stay, for after mrl_queue_reopen) and push fails on a full
 * queue instead of waiting. */
typedef struct mrl_queue {
  int *items; /* [capacity] ring */
  int capacity, head, count, closed;
  void *sync; /* MRL_THREADS: its mutex and conditions */
} mrl_queue;
MRL_DEF mrl_result mrl_queue_init(mrl_queue *q, int capacity);
MRL_DEF void mrl_queue_free(mrl_queue *q); /* fine on a zeroed queue; no thread may wait on it */
MRL_DEF mrl_result mrl_queue_push(mrl_queue *q, int item);
MRL_DEF mrl_result mrl_queue_pop(mrl_queue *q, int *item);
MRL_DEF void mrl_queue_close(mrl_queue *q);
MRL_DEF void mrl_queue_reopen(mrl_queue *q);
MRL_DEF int mrl_queue_count(mrl_queue *q);

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
  mrl_episode_stats *also_stats; /* NULL, or statistics that also get every finished episode
                                    (e.g. REINFORCE's window at the current curriculum level) */
  long long env_steps;           /* environment steps taken (vector steps x B) */
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
/* A progress report's common figures from a runner: algo, env's id, steps,
 * wall seconds since t0 and the rate of the steps taken since steps0,
 * episodes, mean return, length and success of the recent episodes; the
 * rest (iteration, learning rate, metrics) zero, for the agent to fill. */
MRL_DEF void mrl_runner_progress(mrl_train_progress *p, const char *algo, const mrl_vecenv *env,
                                 const mrl_runner *r, long long steps0, double t0);
/* ---- sequence-length curriculum (REINFORCE's and PPO's `curriculum`) ----
 * For an env id whose first number is the task's length (NoisySequence-<T>[-<N>],
 * TMaze-<L>, PassiveTMaze-<L>, ...): training starts at length `start` and,
 * whenever (checked after each rollout) the success rate of the last `window`
 * episodes finished at the current length is at least `threshold`, the length
 * is multiplied by `growth` (rounded up, at most the id's own length) and the
 * training vector env is rebuilt in place with the new id (same count; seed +
 * level * 0x9e3779b9), new episodes and memories zeroed. The agent points its
 * runner's also_stats at level_stats while it collects, and stores length,
 * level and level_stats in its checkpoints (mrl_length_curriculum_extras). */
typedef struct mrl_length_curriculum {
  int start, window;                 /* the first length; episodes a level is measured over */
  float growth, threshold;           /* > 1; success rate that passes a level, in [0, 1] */
  char id_prefix[64], id_suffix[64]; /* the id split around its length */
  int final_length;                  /* the id's own length */
  long long length, level;           /* the current length and how many levels it has passed */
  mrl_episode_stats level_stats;     /* episodes finished at the current length */
} mrl_length_curriculum;
/* 1 and the reason in error (naming <config>.curriculum_<field>) when the
 * rule cannot work, else 0. */
MRL_DEF int mrl_length_curriculum_check(const char *config, int start, float growth,
                                        float threshold, int window, char *error,
                                        size_t error_size);
/* The rule (checked as above) and env's id split around its length; fails
 * with the reason in error when the id carries no length or its first level
 * is not an environment of env's spaces. Starts at level 0, length start. */
MRL_DEF mrl_result mrl_length_curriculum_init(mrl_length_curriculum *c, const mrl_vecenv *env,
                                              const char *config, int start, float growth,
                                              float threshold, int window, char *error,
                                              size_t error_size);
/* The env id at `length` ("PassiveTMaze-" 1000 ""). */
MRL_DEF void mrl_length_curriculum_id(const mrl_length_curriculum *c, long long length, char *id,
                                      size_t size);
/* The success rate of the last `window` episodes at this level, or -1 while
 * fewer have finished. */
MRL_DEF float mrl_length_curriculum_rate(const mrl_length_curriculum *c);
/* Rebuilds env in place at the current length with `seed` unless it runs
 * that id already (then nothing changes); a rebuilt env starts new episodes
 * (runner->started = 0). */
MRL_DEF mrl_result mrl_length_curriculum_rebuild(mrl_length_curriculum *c, mrl_vecenv *env,
                                                 uint64_t seed, mrl_runner *runner,
                                                 const char *algo, char *error, size_t error_size);
/* The rule, after a rollout: a level passed moves to the next length and
 * rebuilds env (seed env->seed + 0x9e3779b9). */
MRL_DEF mrl_result mrl_length_curriculum_step(mrl_length_curriculum *c, mrl_vecenv *env,
                                              mrl_runner *runner, const char *algo, char *error,
                                              size_t error_size);
/* Three checkpoint extras (length, level, level_stats) under names[0..2];
 * returns 3. */
MRL_DEF int mrl_length_curriculum_extras(const mrl_length_curriculum *c, const char *const names[3],
                                         mrl_checkpoint_extra *x);
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

/* ---- Q-values: epsilon-greedy acting and Q-learning targets ----
 * For the value-based agents (DQN family, DRQN, R2D2, NEC).
 * mrl_epsilon_greedy: per row of q [n, num_actions], with probability
 * epsilon a uniform action, otherwise the argmax (ties: the lowest index).
 * One uniform draw per row, a second only when exploring; rng NULL is
 * greedy. actions are floats, the vector env's format. */
MRL_DEF void mrl_epsilon_greedy(const float *q, int n, int num_actions, float epsilon, mrl_rng *rng,
                                float *actions);
/* Bootstrapped Q-learning targets for n rows:
 *   targets[i] = reward[i] + discount[i] * q_next_target[i, a*]
 * a* = argmax q_next_online[i] (double Q, van Hasselt et al. 2016), or
 * argmax q_next_target[i] when q_next_online is NULL (Mnih et al. 2015).
 * reward[i] is the k-step discounted sum and discount[i] = gamma^k, or 0 when
 * the episode terminated within the k steps (a truncated one keeps gamma^k
 * and bootstraps from its final observation). rescale_eps > 0 applies R2D2's
 * value rescaling: targets[i] = h(reward[i] + discount[i] h^-1(q[i, a*])). */
MRL_DEF void mrl_q_targets(const float *reward, const float *discount, const float *q_next_online,
                           const float *q_next_target, int n, int num_actions, float rescale_eps,
                           float *targets);

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

/* ---- actor-critic network (PPO, A2C, A3C) ----
 * Stable-Baselines3's ActorCriticPolicy and CleanRL's Agent: an actor tower
 * (mrl_tower: encoder -> core -> head) feeding the policy head of the action
 * space, and a critic tower (none with shared_torso: the value reads the
 * actor's features) feeding a linear value layer. The agent owns the pieces
 * (in its struct) and sets the pointers; these functions build and run them.
 * Per-environment state records: the actor's slice first, then the critic's. */
typedef struct mrl_actor_critic {
  mrl_tower *actor, *critic; /* critic: unused with shared_torso */
  mrl_policy_head *policy;
  mrl_linear_layer *value;
  int shared_torso;
  int state_dim;            /* set by init */
  const mrl_popart *popart; /* NULL; or PopArt statistics: the value layer predicts normalised
                               values, which collect and value denormalise (task 0) */
} mrl_actor_critic;
/* The view of an agent's pieces that the functions below take. */
MRL_DEF mrl_actor_critic mrl_actor_critic_make(const mrl_tower *actor, const mrl_tower *critic,
                                               const mrl_policy_head *policy,
                                               const mrl_linear_layer *value, int shared_torso,
                                               int state_dim, const mrl_popart *popart);
typedef struct mrl_actor_critic_config {
  mrl_tower_config net; /* both towers */
  int orthogonal_init;  /* 1: CleanRL's layer_init (sqrt 2 hidden, 0.01 policy, 1 value; orthogonal
                           LSTM weights) for what net leaves at MRL_INIT_DEFAULT */
  int shared_torso;
  int squash_actions; /* box actions: 0 Gaussian (clipped when sent), 1 tanh-squashed */
  float log_std_init; /* box actions */
} mrl_actor_critic_config;
/* Declares actor.*, critic.*, actor.out.* and critic.out.* in p and finalises p with seed.
 * who prefixes the messages written to error (e.g. "mrl_ppo_init"). */
MRL_DEF mrl_result mrl_actor_critic_init(mrl_actor_critic *ac, mrl_params *p,
                                         const mrl_actor_critic_config *cfg, const mrl_vecenv *env,
                                         uint64_t seed, const char *who, char *error,
                                         size_t error_size);
/* Distribution parameters [T*B, P] and values [T*B] of observations x [T*B, obs], arguments
 * as mrl_tower_forward (state records of ac->state_dim floats). dist, values or aux may be NULL
 * (not computed; a critic with its own recurrent state still needs values to advance it); aux:
 * the cores' auxiliary losses (mrl_tower_forward_aux), mean over steps, both towers, or NULL. */
MRL_DEF void mrl_actor_critic_forward(const mrl_actor_critic *ac, mrl_graph *g, mrl_tensor *x,
                                      int T, int B, const float *starts, const float *state_in,
                                      float *state_out, mrl_tensor **dist, mrl_tensor **values,
                                      mrl_tensor **aux);
/* One rollout of ro->num_steps vector steps (actions sampled with rng, values, log-probs,
 * rewards, flags, the value of a truncated episode's final observation, the initial core
 * states), then GAE(gamma, lambda) into ro->advantages and ro->returns. g is a no-grad graph;
 * step_actions [B * env action floats] and last_values [B] are scratch. On failure error
 * says why, prefixed by algo. */
MRL_DEF mrl_result mrl_actor_critic_collect(const mrl_actor_critic *ac, mrl_graph *g,
                                            mrl_runner *run, mrl_vecenv *env, mrl_rollout *ro,
                                            mrl_rng *rng, float *step_actions, float *last_values,
                                            float gamma, float gae_lambda, const char *algo,
                                            char *error, size_t error_size);
/* Deployment (the agents' _act): actions [n, env floats] for raw observations, normalised with
 * norm's statistics when norm is not NULL; state advanced; no heap allocation once g is warm. */
MRL_DEF mrl_result mrl_actor_critic_act(const mrl_actor_critic *ac, mrl_graph *g,
                                        const mrl_runner *norm, const float *obs, int n,
                                        const float *episode_start, float *state, int greedy,
                                        mrl_rng *rng, float *actions);
/* Value estimates [n], as act; the state is not advanced. */
MRL_DEF mrl_result mrl_actor_critic_value(const mrl_actor_critic *ac, mrl_graph *g,
                                          const mrl_runner *norm, const float *obs, int n,
                                          const float *episode_start, const float *state,
                                          float *values);

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
 * Not in CleanRL: an optional sequence-length curriculum (curriculum = 1,
 * REINFORCE's, the shared mrl_length_curriculum): for an env id carrying a
 * length (PassiveTMaze-<L>, ...) training starts at curriculum_start and the
 * length grows by curriculum_growth whenever the success rate of the last
 * curriculum_window episodes at the current length reaches
 * curriculum_threshold, checked after each update; the training vector env
 * is rebuilt in place at each level (new episodes, memories zeroed). With
 * curriculum_rollout the rollout (and so the BPTT) length follows the level,
 * ceil(num_steps * length / final length): a task whose episodes last
 * length + 1 steps (PassiveTMaze) with num_steps = L + 1 then keeps whole
 * episodes in one rollout at every level, so the cue's gradient reaches the
 * decision; the schedules then anneal over environment steps.
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
  int popart;           /* 0; 1: PopArt (memrl_nn.h mrl_popart, van Hasselt et al. 2016): the
                           value layer outputs normalised values; each update first moves the
                           statistics towards the rollout's returns and rescales the layer
                           (outputs preserved), then takes the value loss (and its clipping) on
                           normalised returns and divides the advantages by sigma */
  float popart_beta;    /* 3e-4 */
  float adv_std_floor;  /* 0; > 0: norm_adv divides by max(std, this), so advantages that are
                           all noise (a near-deterministic policy whose value is learned) are
                           not scaled up to unit size and cannot drown the entropy bonus */
  /* the length curriculum (REINFORCE's; see above) */
  int curriculum;             /* 0; 1: grow the env id's length (see above) */
  int curriculum_start;       /* 5: the first length */
  float curriculum_growth;    /* 2: the length is multiplied by this (> 1) */
  float curriculum_threshold; /* 0.9: success rate that passes a level */
  int curriculum_window;      /* 100: episodes at a level it is measured over (1..100) */
  int curriculum_rollout;     /* 0; 1: the rollout length follows the level (see above) */
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
  mrl_popart popart;          /* with cfg.popart: the value statistics (one task) */
  /* with cfg.curriculum: the level (length, level) */
  mrl_length_curriculum curriculum;
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

/* ======================================================================
 * DQN (and the Rainbow components as options)
 * Mnih et al. (2015), "Human-level control through deep reinforcement
 * learning": a Q-network trained on replayed transitions against a target
 * network. Defaults follow CleanRL's dqn.py for classic control: lr 2.5e-4
 * (Adam, eps 1e-8), buffer 10000, gamma 0.99, tau 1 (a hard copy) every 500
 * steps, batch 128, epsilon 1 -> 0.05 over half of the steps, learning
 * starts after 10000 steps, one update every 10 steps, MLP 120-84 ReLU,
 * MSE loss, no gradient clipping, PyTorch's default initialisation. Options:
 *   double_q    Double DQN (van Hasselt et al. 2016): the online network
 *               picks the next action, the target network values it;
 *   dueling     dueling head (Wang et al. 2016, memrl_nn.h's mrl_dueling_head);
 *   n_step      n-step returns (mrl_replay computes them at insertion);
 *   prioritized proportional prioritised replay (Schaul et al. 2016):
 *               alpha 0.6, beta 0.4 annealed linearly to 1, priorities
 *               |delta| + 1e-6 (C51: the item's cross-entropy, as Rainbow);
 *   c51         distributional C51 (Bellemare et al. 2017) with CleanRL's
 *               c51.py defaults (mrl_dqn_config_c51: 101 atoms on
 *               [-100, 100], Adam eps 0.01 / batch_size, a hard target copy).
 * Deviations: with B > 1 environments every env step counts (learning_starts,
 * train_frequency, target_network_frequency and the schedules are in env
 * steps; an update happens for every multiple of train_frequency a vector
 * step passes), which is CleanRL's loop exactly when B = 1; a time-limit
 * truncation bootstraps from the final observation (CleanRL's
 * handle_timeout_termination=False stores it but treats it as non-terminal
 * too: same); C51's cross-entropy uses the head's log-softmax instead of
 * log(clamp(p, 1e-5, 1 - 1e-5)); dueling and c51 together are refused (the
 * dueling head combines Q-values, not distributions). The Q-network is an
 * mrl_tower (cfg.net) without a core: a recurrent Q-network is DRQN's and
 * R2D2's business (init refuses a core with a message naming them). An
 * update whose loss or gradient is not finite is not applied: training
 * stops with MRL_ERR_NON_FINITE.
 * ====================================================================== */

typedef struct mrl_dqn_config {
  uint64_t seed;                /* 1 */
  float learning_rate;          /* 2.5e-4 (constant) */
  int buffer_size;              /* 10000 */
  float gamma;                  /* 0.99 */
  float tau;                    /* 1: the target network is copied; < 1: Polyak averaging */
  int target_network_frequency; /* 500 env steps */
  int batch_size;               /* 128 */
  float start_e, end_e;         /* 1, 0.05 */
  float exploration_fraction;   /* 0.5 of the schedule's steps to go from start_e to end_e */
  long long learning_starts;    /* 10000 env steps before the first update */
  int train_frequency;          /* 10: one update every 10 env steps */
  long long total_steps;        /* 0: each train call schedules epsilon (and beta) over its own
                                   steps (CleanRL); > 0: over this many steps of the agent's life */
  float adam_eps;               /* 1e-8 (torch's default; C51: 0.01 / batch_size) */
  float max_grad_norm;          /* 0: no clipping (CleanRL) */
  float huber_delta;            /* 0: MSE loss (CleanRL); > 0: Huber loss with this delta */
  mrl_tower_config net;         /* encoder {120, 84} ReLU, no core, no head */
  int double_q;                 /* 0 */
  int dueling;                  /* 0 */
  int dueling_hidden;           /* 0: each dueling stream is one linear layer; > 0: hidden ReLU */
  int n_step;                   /* 1 */
  int prioritized;              /* 0 */
  float per_alpha;              /* 0.6 */
  float per_beta;               /* 0.4 at the start, annealed linearly to 1 */
  float per_eps;                /* 1e-6 */
  int c51;                      /* 0 */
  int n_atoms;                  /* 101 (c51) */
  float v_min, v_max;           /* -100, 100 (c51) */
  int save_replay;              /* 0; 1: save/load carry the replay buffer (bitwise resume) */
  int progress_interval;        /* 1000: env steps between progress reports */
} mrl_dqn_config;

/* CleanRL dqn.py's defaults (above). */
MRL_DEF mrl_dqn_config mrl_dqn_config_default(void);
/* CleanRL c51.py's defaults: dqn.py's with c51 = 1, 101 atoms on [-100, 100],
 * adam_eps 0.01 / 128. */
MRL_DEF mrl_dqn_config mrl_dqn_config_c51(void);

typedef struct mrl_dqn_update_stats {
  float loss;     /* the (weighted) loss of the update */
  float q_values; /* mean Q(s, a) of the batch (C51: its expectation) */
} mrl_dqn_update_stats;

/* The Q-network's parts, declared once into the online and once into the
 * target parameter store (same layout, so a target update is one copy). */
typedef struct mrl_dqn_net {
  mrl_tower tower;
  mrl_linear_layer out;     /* plain head: A Q-values */
  mrl_dueling_head dueling; /* dueling */
  mrl_c51_head c51;         /* c51 */
} mrl_dqn_net;

typedef struct mrl_dqn {
  mrl_dqn_config cfg;
  int obs_dim, num_envs, num_actions;
  mrl_params params, target_params;
  mrl_dqn_net net, target;
  mrl_graph graph, act_graph;
  mrl_runner runner;
  mrl_replay replay;
  mrl_rng rng;
  float epsilon;            /* the exploration rate of the last step (act's when not greedy) */
  long long updates;        /* gradient steps since the agent was created */
  int *mb_indices, *mb_act; /* [batch] */
  float *mb_obs, *mb_next;  /* [batch, obs_dim] */
  float *mb_scalars;        /* [batch * 5]: actions, rewards, discounts, weights, td */
  float *mb_q;              /* the update's scratch for targets and C51 */
  float *step_obs, *step_actions; /* [B, obs_dim], [B] */
  char error[MRL_ERROR_SIZE];
} mrl_dqn;

/* Builds the agent for env (discrete actions only). A config that does not
 * fit returns MRL_ERR_INVALID_ARGUMENT and error names the field. */
MRL_DEF mrl_result mrl_dqn_init(mrl_dqn *agent, const mrl_dqn_config *cfg, const mrl_vecenv *env);
MRL_DEF void mrl_dqn_free(mrl_dqn *agent);
/* Trains for env_steps environment steps (rounded down to whole vector
 * steps); progress every progress_interval env steps. The vector env must be
 * the one given to init; training continues its episodes across calls. */
MRL_DEF mrl_result mrl_dqn_train(mrl_dqn *agent, mrl_vecenv *env, long long env_steps,
                                 mrl_progress_fn progress, void *user);
/* One gradient step on a batch of n transitions (what train samples; tests
 * call it on fixed data): obs, next_obs [n, obs_dim], actions [n] (indices
 * as floats), rewards [n] (n-step returns), discounts [n] (gamma^k, 0 after a
 * termination), weights [n] importance weights (NULL: 1). td_errors [n] (may
 * be NULL) receives what prioritisation uses: Q(s,a) - target, or C51's
 * cross-entropy. MRL_ERR_NON_FINITE (nothing applied) for a non-finite loss
 * or gradient. stats may be NULL. */
MRL_DEF mrl_result mrl_dqn_update(mrl_dqn *agent, const float *obs, const float *actions,
                                  const float *rewards, const float *next_obs,
                                  const float *discounts, const float *weights, int n,
                                  float *td_errors, mrl_dqn_update_stats *stats);
/* Q-values [n, num_actions] of n observations (no gradients). */
MRL_DEF mrl_result mrl_dqn_q_values(mrl_dqn *agent, const float *obs, int n, float *q);
MRL_DEF int mrl_dqn_state_dim(const mrl_dqn *agent); /* 0: the Q-network is feedforward */
/* Actions [n] (indices as floats): greedy = 1 the argmax, else epsilon-greedy
 * with the agent's current epsilon, drawing from rng (NULL: the agent's).
 * episode_start and state are unused (feedforward). No heap allocation once
 * the acting arena has grown to the largest n. */
MRL_DEF mrl_result mrl_dqn_act(mrl_dqn *agent, const float *obs, int n, const float *episode_start,
                               float *state, int greedy, mrl_rng *rng, float *actions);
MRL_DEF mrl_result mrl_dqn_evaluate(mrl_dqn *agent, mrl_vecenv *env, int episodes, int greedy,
                                    mrl_episode_stats *stats);
/* The whole agent in one safetensors file: parameters with Adam state, the
 * target network, the runner, RNG, counters, config, the vector env's
 * snapshot when env is given, and with save_replay the replay buffer (then a
 * resumed run equals the uninterrupted one bitwise; without it a loaded
 * agent keeps the buffer it has, empty when fresh, and samples from what it
 * collects from then on). */
MRL_DEF mrl_result mrl_dqn_save(const mrl_dqn *agent, const char *path, const mrl_vecenv *env);
MRL_DEF mrl_result mrl_dqn_load(mrl_dqn *agent, const char *path, mrl_vecenv *env);
MRL_DEF int mrl_dqn_config_json(const mrl_dqn_config *cfg, char *buf, size_t size);

/* ======================================================================
 * REINFORCE with recurrent policies and baselines
 * Williams (1992), "Simple statistical gradient-following algorithms for
 * connectionist reinforcement learning": the likelihood-ratio gradient
 * sum_t grad log pi(a_t | m^pi_t) Psi_t. Done as recurrent policy-gradient
 * work does it (Wierstra, Foerster, Peters, Schmidhuber 2007/2010,
 * "Recurrent policy gradients"): the policy's memory m^pi is a recurrent
 * core (an LSTM in the paper) trained by backpropagation through time, and
 * the baseline is history-dependent, a second tower with its OWN memory m^V
 * (net and value_net, each with its own core). Psi_t is either the K-step
 * bootstrapped advantage
 *   Psi_t = sum_{l<K} gamma^l r_{t+l} + gamma^K V(m^V_{t+K}) - V(m^V_t)
 * (mrl_returns_kstep) or, with use_lambda, the lambda-return advantage
 * G^lambda_t - V(m^V_t) (mrl_returns_lambda: eligibility traces in the
 * forward view). The baseline regresses on the same targets R_t = Psi_t + V_t:
 *   L = -mean(log pi(a_t) Psi_t) - ent_coef mean(H(pi_t)) + vf_coef 0.5 mean((V_t - R_t)^2).
 * Training runs B environments for num_steps steps, then ONE gradient step
 * on the rollout (on-policy, nothing reused), replayed from the core states
 * stored at its start with truncated BPTT: the rollout is cut into pieces of
 * bptt_len steps and the state entering a piece carries its value but no
 * gradient. The curriculum (curriculum = 1) grows the task's sequence
 * length as the agent succeeds: for an env id whose first number is the
 * length (NoisySequence-<T>[-<N>], TMaze-<L>, ...), training starts at
 * curriculum_start and, whenever (checked after each rollout) the success
 * rate of the last curriculum_window episodes finished at the current length
 * is at least curriculum_threshold, multiplies the length by
 * curriculum_growth (rounded up, at most the id's own length) and rebuilds
 * the training vector env in place with the new id (same count; seed +
 * level * 0x9e3779b9) and new episodes, memories zeroed.
 * Not from a paper's code (none is public): Adam instead of the paper's
 * plain gradient steps, an entropy bonus (0 by default), global gradient
 * clipping, batches of synchronous environments and rollouts of fixed
 * length instead of whole episodes (an episode that crosses a rollout's end
 * is bootstrapped there and its gradient cut, as truncated BPTT does);
 * time-limit truncations bootstrap from V(final observation) as in PPO.
 * ====================================================================== */

typedef struct mrl_reinforce_config {
  uint64_t seed;              /* 1 */
  int num_steps;              /* 100: rollout length per environment, one update each */
  int bptt_len;               /* 0: the whole rollout; else gradients cut every bptt_len steps */
  int k_steps;                /* 0: K = num_steps (Monte-Carlo to the rollout's end); else K >= 1 */
  int use_lambda;             /* 0: K-step advantages; 1: lambda-return advantages */
  float lambda;               /* 0.95 (use_lambda) */
  float gamma;                /* 0.99 */
  float learning_rate;        /* 1e-3 (Adam) */
  float adam_eps;             /* 1e-5 */
  float ent_coef;             /* 0 */
  float vf_coef;              /* 0.5: the baseline's squared error (its own tower: only its pace) */
  float max_grad_norm;        /* 1 (<= 0: no clipping) */
  int norm_adv;               /* 0; 1: advantages standardised over the rollout */
  mrl_tower_config net;       /* the policy tower, m^pi: encoder {64, 64} tanh, no core */
  mrl_tower_config value_net; /* the baseline tower, m^V (same defaults) */
  int orthogonal_init;        /* 1: orthogonal (sqrt 2 hidden, 0.01 policy, 1 value, 1 cores) */
  int normalize_obs;          /* 0 */
  int curriculum;             /* 0; 1: grow the sequence length (see above) */
  int curriculum_start;       /* 5: the first length */
  float curriculum_growth;    /* 2: the length is multiplied by this (> 1) */
  float curriculum_threshold; /* 0.9: success rate that passes a level */
  int curriculum_window;      /* 100: episodes at a level it is measured over (1..100) */
} mrl_reinforce_config;

MRL_DEF mrl_reinforce_config mrl_reinforce_config_default(void);

typedef struct mrl_reinforce_update_stats {
  double policy_loss, value_loss, entropy, loss; /* L and its terms (value_loss: 0.5 mean(...)) */
  double grad_norm;                              /* global norm before clipping */
} mrl_reinforce_update_stats;

typedef struct mrl_reinforce {
  mrl_reinforce_config cfg;
  int obs_dim, num_envs, num_actions, env_action_dim, raw_dim;
  int state_dim; /* policy tower's state, then the baseline's */
  mrl_params params;
  mrl_tower policy_net, value_net;
  mrl_policy_head policy;
  mrl_linear_layer value;
  mrl_graph graph, act_graph;
  mrl_runner runner;
  mrl_rollout rollout;
  mrl_rng rng;
  long long iterations;
  mrl_length_curriculum curriculum; /* with cfg.curriculum: the level (length, level) */
  float *step_actions, *last_values, *bptt_state; /* [B*env_action_dim], [B], [B*state_dim] */
  char error[MRL_ERROR_SIZE];
} mrl_reinforce;

/* Builds the agent for env's spaces. With curriculum, env's id must carry a
 * length the curriculum can set (error names the field otherwise); training
 * then rebuilds env in place. */
MRL_DEF mrl_result mrl_reinforce_init(mrl_reinforce *agent, const mrl_reinforce_config *cfg,
                                      const mrl_vecenv *env);
MRL_DEF void mrl_reinforce_free(mrl_reinforce *agent);
/* Trains for env_steps steps in whole rollouts of num_envs * num_steps. */
MRL_DEF mrl_result mrl_reinforce_train(mrl_reinforce *agent, mrl_vecenv *env, long long env_steps,
                                       mrl_progress_fn progress, void *user);
/* Advantages and value targets of what agent->rollout holds (last_values: the
 * baseline after its last step), then one gradient step on it. train calls
 * both once per rollout; tests call them on fixed data. stats may be NULL. A
 * non-finite loss or gradient leaves the agent unchanged: MRL_ERR_NON_FINITE. */
MRL_DEF void mrl_reinforce_targets(mrl_reinforce *agent, const float *last_values);
MRL_DEF mrl_result mrl_reinforce_update(mrl_reinforce *agent, float learning_rate,
                                        mrl_reinforce_update_stats *stats);
MRL_DEF int mrl_reinforce_state_dim(const mrl_reinforce *agent);
/* Deployment, as mrl_ppo_act: no gradients, no heap allocation once warm. */
MRL_DEF mrl_result mrl_reinforce_act(mrl_reinforce *agent, const float *obs, int n,
                                     const float *episode_start, float *state, int greedy,
                                     mrl_rng *rng, float *actions);
MRL_DEF mrl_result mrl_reinforce_evaluate(mrl_reinforce *agent, mrl_vecenv *env, int episodes,
                                          int greedy, mrl_episode_stats *stats);
/* The whole agent (curriculum level included); with env, its snapshot. load
 * rebuilds env at the saved level first when the curriculum had moved it. */
MRL_DEF mrl_result mrl_reinforce_save(const mrl_reinforce *agent, const char *path,
                                      const mrl_vecenv *env);
MRL_DEF mrl_result mrl_reinforce_load(mrl_reinforce *agent, const char *path, mrl_vecenv *env);
MRL_DEF int mrl_reinforce_config_json(const mrl_reinforce_config *cfg, char *buf, size_t size);

/* ======================================================================
 * A2C
 * Synchronous advantage actor-critic: the synchronous, batched form of
 * Mnih et al. (2016)'s A3C (OpenAI Baselines' A2C, Wu et al. 2017). Defaults
 * and details follow Stable-Baselines3's A2C with its MlpPolicy: n_steps 5
 * per environment, one gradient step per rollout on all of it, RMSprop in
 * torch's form (eps outside the root) with lr 7e-4 (constant), alpha 0.99,
 * eps 1e-5, gamma 0.99, gae_lambda 1 (plain n-step returns bootstrapped from
 * V), ent_coef 0, vf_coef 0.5, global gradient clipping at 0.5, advantages
 * not normalised; separate actor and critic networks {64, 64} tanh,
 * orthogonal initialisation (sqrt 2 hidden, 0.01 policy, 1 value), box
 * actions a Gaussian with a state-independent log-std (log_std_init 0)
 * clipped when sent. The loss is SB3's:
 *   policy_loss = -mean(A_t log pi(a_t|s_t)),  value_loss = mean((R_t - V(s_t))^2),
 *   entropy_loss = -mean(H[pi(.|s_t)])   (the one-sample -log p for a tanh-squashed Gaussian),
 *   loss = policy_loss + ent_coef entropy_loss + vf_coef value_loss.
 * rl-baselines3-zoo's CartPole-v1: 8 environments, 5e5 steps, ent_coef 0.
 * Recurrent A2C (no SB3 counterpart; as recurrent PPO here): the whole
 * rollout is one batch of num_envs sequences of num_steps, replayed from
 * the core state stored at its start with the state zeroed where an
 * episode starts (truncated BPTT over num_steps).
 * Deviations from SB3 as in PPO's section: a time-limit truncation
 * bootstraps from the value of the final observation in the GAE (SB3 adds
 * gamma V(final) to the reward: the same targets); optional observation and
 * reward normalisation (off); an update whose loss or gradient is not
 * finite is not applied (MRL_ERR_NON_FINITE). Progress is reported every
 * log_interval updates (SB3's log_interval 100) and after the last.
 * Value normalisation (PopArt) enters at one place: the value targets of
 * mrl__a2c_gradient (marked there).
 * ====================================================================== */

typedef struct mrl_a2c_config {
  uint64_t seed;         /* 1 */
  int num_steps;         /* 5: rollout length per environment (SB3 n_steps) */
  float learning_rate;   /* 7e-4 */
  int anneal_lr;         /* 0: constant (SB3); 1: linear decay to 0 */
  long long total_steps; /* 0: an annealed rate spans each train call; > 0: the agent's life */
  float gamma;           /* 0.99 */
  float gae_lambda;      /* 1.0 */
  int norm_adv;          /* 0 (SB3 normalize_advantage) */
  float ent_coef;        /* 0.0 */
  float vf_coef;         /* 0.5 */
  float max_grad_norm;   /* 0.5; <= 0: no clipping */
  float rms_alpha;       /* 0.99: RMSprop's smoothing constant */
  float rms_eps;         /* 1e-5: added to the root (torch's form) */
  int log_interval;      /* 100: updates between progress reports */
  mrl_tower_config net;  /* encoder {64, 64} tanh, no core, no head */
  int orthogonal_init;   /* 1 (SB3 ortho_init) */
  int shared_torso;      /* 0: separate actor and critic networks */
  int normalize_obs;     /* 0 */
  int normalize_reward;  /* 0 */
  int squash_actions;    /* box actions: 0 Gaussian, clipped when sent; 1 tanh-squashed */
  float log_std_init;    /* box actions: 0 */
  int popart;            /* 0; 1: PopArt-normalised value targets (memrl_nn.h mrl_popart) */
  float popart_beta;     /* 3e-4 */
} mrl_a2c_config;

MRL_DEF mrl_a2c_config mrl_a2c_config_default(void);

typedef struct mrl_a2c_update_stats {
  float loss, policy_loss, value_loss, entropy;
} mrl_a2c_update_stats;

typedef struct mrl_a2c {
  mrl_a2c_config cfg;
  int obs_dim, num_envs;
  int num_actions;         /* discrete: n; box: 0 */
  int env_action_dim;      /* floats per action sent to the environment */
  int raw_dim;             /* floats per action stored in the rollout */
  int state_dim;           /* recurrent floats per environment: actor's, then critic's */
  mrl_params params;       /* values, gradients; RMSprop's mean square in moment2 */
  mrl_tower actor, critic; /* the critic tower is empty with shared_torso */
  mrl_policy_head policy;
  mrl_linear_layer value;
  mrl_graph graph;     /* training */
  mrl_graph act_graph; /* acting and collecting */
  mrl_runner runner;
  mrl_rollout rollout;
  mrl_rng rng;
  long long iterations;                    /* updates since the agent was created */
  float *step_actions, *step_values, *adv; /* [B * env_action_dim], [B], [T*B] scratch */
  float *targets;                          /* [T*B] value targets (normalised with PopArt) */
  mrl_popart popart;                       /* with cfg.popart: the value statistics (one task) */
  char error[MRL_ERROR_SIZE];
} mrl_a2c;

/* Builds the agent for env's spaces; a config that does not fit returns
 * MRL_ERR_INVALID_ARGUMENT and error names the field and value. */
MRL_DEF mrl_result mrl_a2c_init(mrl_a2c *agent, const mrl_a2c_config *cfg, const mrl_vecenv *env);
MRL_DEF void mrl_a2c_free(mrl_a2c *agent);
/* Trains for env_steps environment steps, rounded down to whole updates of
 * num_envs * num_steps; the vector env must be the one given to init. */
MRL_DEF mrl_result mrl_a2c_train(mrl_a2c *agent, mrl_vecenv *env, long long env_steps,
                                 mrl_progress_fn progress, void *user);
/* One update (one RMSprop step) on what agent->rollout holds, advantages and
 * returns included; train calls it once per rollout, tests on fixed data.
 * A non-finite loss or gradient leaves the agent unchanged and returns
 * MRL_ERR_NON_FINITE. stats may be NULL. */
MRL_DEF mrl_result mrl_a2c_update(mrl_a2c *agent, float learning_rate, mrl_a2c_update_stats *stats);
MRL_DEF int mrl_a2c_state_dim(const mrl_a2c *agent);
/* Deployment, as mrl_ppo_act: no gradients, no heap allocation once warm. */
MRL_DEF mrl_result mrl_a2c_act(mrl_a2c *agent, const float *obs, int n, const float *episode_start,
                               float *state, int greedy, mrl_rng *rng, float *actions);
MRL_DEF mrl_result mrl_a2c_value(mrl_a2c *agent, const float *obs, int n,
                                 const float *episode_start, const float *state, float *values);
MRL_DEF mrl_result mrl_a2c_evaluate(mrl_a2c *agent, mrl_vecenv *env, int episodes, int greedy,
                                    mrl_episode_stats *stats);
/* The whole agent (parameters, RMSprop state, runner, RNG, counters, config;
 * with env its snapshot): a loaded agent continues bitwise. */
MRL_DEF mrl_result mrl_a2c_save(const mrl_a2c *agent, const char *path, const mrl_vecenv *env);
MRL_DEF mrl_result mrl_a2c_load(mrl_a2c *agent, const char *path, mrl_vecenv *env);
MRL_DEF int mrl_a2c_config_json(const mrl_a2c_config *cfg, char *buf, size_t size);

/* ======================================================================
 * A3C
 * Mnih, Badia, Mirza, Graves, Lillicrap, Harley, Silver, Kavukcuoglu (2016),
 * "Asynchronous Methods for Deep Reinforcement Learning", Algorithm S3.
 * num_threads actor-learners, each with its own environments (a contiguous
 * slice of the vector env: num_envs / num_threads each), its own core states
 * and its own copy theta' of the parameters. Each repeats: theta' <- theta;
 * t_max (5) steps; n-step returns bootstrapped from V (0 at a terminal
 * state); the actor-critic gradient of the segment (A2C's loss, below) on
 * theta'; then, without any lock (Hogwild!, Recht et al. 2011), the shared
 * RMSProp of the paper on the shared theta with shared statistics g:
 *   g = alpha g + (1 - alpha) d^2,   theta = theta - lr d / sqrt(g + eps)
 * with alpha 0.99 and eps 0.1 (the paper's values; eps inside the root), the
 * learning rate annealed linearly to 0 over the run, counted in the steps
 * of all threads (the paper's global counter T), entropy bonus beta 0.01,
 * gamma 0.99. The threads (MRL_THREADS, mrl_thread) run log_interval
 * updates each between progress reports.
 * Deviations: a segment always has t_max steps per environment, crossing
 * episode ends (returns and the gradient are cut there, as in A2C; the
 * paper ends the segment at a terminal state); losses are means over the
 * segment's steps (as SB3's A2C) rather than sums (the same as a learning
 * rate t_max x envs smaller); value loss vf_coef (0.5) x mean (R - V)^2;
 * optional gradient clipping (max_grad_norm, 0: off as in the paper); a
 * time-limit truncation bootstraps from the final observation's value; the
 * learning rate default 7e-4 (the paper samples it per run from
 * LogUniform(1e-4, 1e-2)).
 * What a run reproduces: with num_threads 1 (or without MRL_THREADS, where
 * more than one thread is refused) everything is sequential and a seed
 * gives the same bits every time. With N > 1 threads each thread's
 * environments, seeds and random streams are fixed, but when its reads of
 * theta and its writes interleave with the other threads' depends on the
 * scheduler, so parameters, trajectories and returns differ from run to run
 * (only their statistics are reproducible); the lock-free updates race on
 * purpose (Hogwild!), so a thread sanitiser reports them. Checkpoints hold
 * the shared parameters, the RMSProp statistics and the counters: a loaded
 * agent trains on with new episodes.
 * ====================================================================== */

typedef struct mrl_a3c_config {
  uint64_t seed;         /* 1 */
  int num_threads;       /* 1; > 1 needs MRL_THREADS */
  int t_max;             /* 5 */
  float learning_rate;   /* 7e-4 */
  int anneal_lr;         /* 1: linear decay to 0 (paper) */
  long long total_steps; /* 0: the annealing spans each train call; > 0: the agent's life */
  float gamma;           /* 0.99 */
  float ent_coef;        /* 0.01 (the paper's beta) */
  float vf_coef;         /* 0.5 */
  float max_grad_norm;   /* 0: no clipping (paper) */
  float rms_alpha;       /* 0.99 */
  float rms_eps;         /* 0.1, inside the root */
  int log_interval;      /* 100: updates of each thread between progress reports */
  mrl_tower_config net;  /* encoder {64, 64} tanh, no core, no head */
  int orthogonal_init;   /* 1 */
  int shared_torso;      /* 0 */
  int squash_actions;    /* box actions: 0 Gaussian, clipped when sent; 1 tanh-squashed */
  float log_std_init;    /* box actions: 0 */
} mrl_a3c_config;

MRL_DEF mrl_a3c_config mrl_a3c_config_default(void);

typedef struct mrl_a3c {
  mrl_a3c_config cfg;
  mrl_a2c global;    /* theta and the shared statistics g (global.params.moment2); acting,
                        evaluation and checkpoints use it */
  mrl_a2c *workers;  /* [num_threads]: theta', environments, core states, rollout, RNG */
  mrl_vecenv *views; /* [num_threads]: each worker's slice of the vector env */
  void *jobs;        /* [num_threads] per-thread work orders */
  long long updates; /* shared-parameter updates since the agent was created */
  char error[MRL_ERROR_SIZE];
} mrl_a3c;

/* env's num_envs must be a multiple of num_threads; its environments are
 * shared out (it must outlive the agent and stay the one given to train). */
MRL_DEF mrl_result mrl_a3c_init(mrl_a3c *agent, const mrl_a3c_config *cfg, mrl_vecenv *env);
MRL_DEF void mrl_a3c_free(mrl_a3c *agent);
/* Trains for env_steps steps (all threads together), rounded down to whole
 * updates of every thread. */
MRL_DEF mrl_result mrl_a3c_train(mrl_a3c *agent, mrl_vecenv *env, long long env_steps,
                                 mrl_progress_fn progress, void *user);
MRL_DEF int mrl_a3c_state_dim(const mrl_a3c *agent);
MRL_DEF mrl_result mrl_a3c_act(mrl_a3c *agent, const float *obs, int n, const float *episode_start,
                               float *state, int greedy, mrl_rng *rng, float *actions);
MRL_DEF mrl_result mrl_a3c_evaluate(mrl_a3c *agent, mrl_vecenv *env, int episodes, int greedy,
                                    mrl_episode_stats *stats);
MRL_DEF mrl_result mrl_a3c_save(const mrl_a3c *agent, const char *path);
MRL_DEF mrl_result mrl_a3c_load(mrl_a3c *agent, const char *path);
MRL_DEF int mrl_a3c_config_json(const mrl_a3c_config *cfg, char *buf, size_t size);

/* ======================================================================
 * TRPO
 * Schulman, Levine, Moritz, Jordan, Abbeel (2015), "Trust Region Policy
 * Optimization": maximise the surrogate L(theta) = mean(A ratio) subject to
 * mean KL(pi_theta || pi_old) <= target_kl, by one natural-gradient step
 * per rollout: the search direction x solves (F + cg_damping I) x = g by
 * conjugate gradient (g = grad L, F = the Fisher matrix, the Hessian of the
 * mean KL at theta_old), the step is x sqrt(2 target_kl / x^T (F + damping) x),
 * and a backtracking line search shrinks it until the KL constraint holds
 * and the surrogate improves (else the policy is left unchanged). A
 * separate value network is fitted afterwards by Adam on the mean squared
 * error to the GAE returns. Defaults: Stable-Baselines3-contrib's TRPO
 * (n_steps 2048, batch_size 128, lr 1e-3, target_kl 0.01, cg_max_steps 15,
 * cg_damping 0.1, line_search_shrinking_factor 0.8, line_search_max_iter
 * 10, n_critic_updates 10, gae_lambda 0.95, advantages normalised) with
 * SB3's actor-critic network (separate tanh MLPs {64, 64}, orthogonal
 * initialisation, Adam eps 1e-5). rl-baselines3-zoo's CartPole-v1 settings
 * (2 envs, n_steps 512, batch_size 512, cg_damping 0.001, gae_lambda 0.98,
 * n_critic_updates 20, 100k steps) are what tests/test_learning_trpo.c uses.
 * Fisher-vector products are EXACT: F v = J^T M J v, J the Jacobian of the
 * distribution parameters (logits, or mean and log-std) over the rollout,
 * J v by forward-mode differentiation of the recorded tape (mrl_graph_jvp,
 * memrl_tensor.h; the fused LSTM/GRU/Elman rules and GTrXL's gate in memrl_nn.h,
 * AMRL, fast weights and the DNC's ops in memrl_mem.h: mrl_mem_jvp_rule), J^T by the
 * ordinary backward pass, M the Fisher of the action distribution in its
 * own parameters (categorical: diag(p) - p p^T on the logits; diagonal
 * Gaussian: 1/sigma^2 on the mean, 2 on the log-std), averaged over rows.
 * Forward mode was chosen over double backward because the tape's backward
 * functions write floats, not ops: a second-order tape would have to
 * re-record every op's backward; tangents need one rule per op and reuse
 * the saved activations. One product costs a forward pass with its tangent
 * pass, then a second forward pass and a backward pass (the first tape's
 * gradient buffers hold tangents), all over the whole rollout. Recurrent
 * policies work unchanged: the whole rollout is one [T, B] sequence from
 * the core state stored at its start, so J v runs through time (every
 * built-in core: LSTM, GRU, Elman, frame stack, GTrXL, AMRL, fast weights,
 * DNC, HCAM, FTW; conv encoders too). A user's core through an op without a
 * rule (pooling, dropout, ...) stops the update with
 * MRL_ERR_INVALID_ARGUMENT and an error naming the op.
 * A time-limit truncation is bootstrapped from the value of its final
 * observation, as SB3 and PPO here do. Deviations from SB3-contrib: the
 * critic's minibatches leave a remainder out (SB3 keeps a short last batch): batch_size should
 * divide num_steps * num_envs; recurrent critics train on whole environment sequences
 * (SB3-contrib's TRPO has no recurrent policy); continuous actions use the Gaussian with a
 * state-independent log-std (no tanh squash); SB3's sub_sampling_factor (1 by default) and gSDE are
 * not offered.
 * ====================================================================== */

typedef struct mrl_trpo_config {
  uint64_t seed;                      /* 1 */
  int num_steps;                      /* 2048: rollout length per environment (n_steps) */
  float learning_rate;                /* 1e-3: the value function's Adam */
  float gamma;                        /* 0.99 */
  float gae_lambda;                   /* 0.95 */
  int batch_size;                     /* 128: the value function's minibatch (rows) */
  int n_critic_updates;               /* 10: epochs of the value function per rollout */
  float target_kl;                    /* 0.01: the trust region, mean KL(new || old) */
  int cg_max_steps;                   /* 15 */
  float cg_damping;                   /* 0.1: F + damping I */
  float line_search_shrinking_factor; /* 0.8 */
  int line_search_max_iter;           /* 10 */
  int normalize_advantage;            /* 1 */
  float adam_eps;                     /* 1e-5 (SB3's policies) */
  mrl_tower_config net; /* actor and critic towers: encoder {64, 64} tanh, no core, no head */
  int orthogonal_init;  /* 1: gains sqrt 2 hidden, 0.01 policy, 1 value (SB3 ortho_init) */
  int normalize_obs;    /* 0 */
  int normalize_reward; /* 0 */
  float log_std_init;   /* box actions: 0 */
} mrl_trpo_config;

MRL_DEF mrl_trpo_config mrl_trpo_config_default(void);

typedef struct mrl_trpo_update_stats {
  float policy_objective;  /* mean(A ratio) before the step */
  float new_objective;     /* after the accepted step (= policy_objective when refused) */
  float kl;                /* mean KL(new || old) of the accepted step, 0 when refused */
  float step_size;         /* sqrt(2 target_kl / x^T (F + damping) x) */
  float line_search_coeff; /* the accepted shrink factor power, 0 when refused */
  int line_search_iters;   /* candidates tried */
  int line_search_success; /* 0: the policy was left as it was */
  int cg_iters;            /* conjugate-gradient steps taken */
  float value_loss;        /* mean over the critic's minibatch steps */
} mrl_trpo_update_stats;

typedef struct mrl_trpo {
  mrl_trpo_config cfg;
  int obs_dim, num_envs, num_actions, env_action_dim, raw_dim, param_dim;
  int state_dim;      /* recurrent floats per environment: actor's, then critic's */
  mrl_params params;  /* the policy's tensors first (policy_size floats), then the critic's */
  size_t policy_size; /* floats of the actor tower and policy head */
  mrl_tower actor, critic;
  mrl_policy_head policy;
  mrl_linear_layer value;
  mrl_graph graph, act_graph;
  mrl_runner runner;
  mrl_rollout rollout;
  mrl_minibatches minibatches;
  mrl_update_backup backup; /* the agent before the running update */
  mrl_rng rng;
  long long iterations;
  float *search_dir;                          /* [policy_size] the last update's CG solution x */
  float *grad, *theta0, *cg_r, *cg_p, *cg_ap; /* [policy_size] update scratch */
  float *old_dist; /* [T*B, param_dim] the rollout's distributions under theta_old */
  float *fisher_u; /* [T*B, param_dim] M J v of a Fisher-vector product */
  float *adv;      /* [T*B] the (normalised) advantages of the update */
  float *step_raw, *step_actions, *step_values;
  float *mb_obs, *mb_starts, *mb_state, *mb_ret; /* critic minibatch scratch */
  char error[MRL_ERROR_SIZE];
} mrl_trpo;

/* Builds the agent for env's spaces (discrete: categorical; box: Gaussian).
 * A config that does not fit returns MRL_ERR_INVALID_ARGUMENT, error names it. */
MRL_DEF mrl_result mrl_trpo_init(mrl_trpo *agent, const mrl_trpo_config *cfg,
                                 const mrl_vecenv *env);
MRL_DEF void mrl_trpo_free(mrl_trpo *agent);
/* Trains for env_steps environment steps (whole rollouts of num_envs * num_steps). */
MRL_DEF mrl_result mrl_trpo_train(mrl_trpo *agent, mrl_vecenv *env, long long env_steps,
                                  mrl_progress_fn progress, void *user);
/* One update (natural-gradient policy step, then the value function) on what
 * agent->rollout holds, advantages and returns included. stats may be NULL.
 * An update that fails (a non-finite gradient or loss: MRL_ERR_NON_FINITE; a
 * core without forward-mode rules: MRL_ERR_INVALID_ARGUMENT) is undone
 * whole (parameters, moments, RNG) and error says why. */
MRL_DEF mrl_result mrl_trpo_update(mrl_trpo *agent, mrl_trpo_update_stats *stats);
/* out = F v (no damping), F the Hessian of the mean KL over agent->rollout at
 * the current policy. v and out [policy_size] are laid out as the store's
 * buffers (params.values[0 .. policy_size): each policy tensor at its offset,
 * the 16-float alignment gaps between tensors ignored in v and 0 in out).
 * Exact: forward mode (mrl_graph_jvp) for J v, then the backward pass. */
MRL_DEF mrl_result mrl_trpo_fisher_vector_product(mrl_trpo *agent, const float *v, float *out);
MRL_DEF int mrl_trpo_state_dim(const mrl_trpo *agent);
/* Deployment, PPO's conventions: no gradients, no heap allocation once warm. */
MRL_DEF mrl_result mrl_trpo_act(mrl_trpo *agent, const float *obs, int n,
                                const float *episode_start, float *state, int greedy, mrl_rng *rng,
                                float *actions);
MRL_DEF mrl_result mrl_trpo_evaluate(mrl_trpo *agent, mrl_vecenv *env, int episodes, int greedy,
                                     mrl_episode_stats *stats);
MRL_DEF mrl_result mrl_trpo_save(const mrl_trpo *agent, const char *path, const mrl_vecenv *env);
MRL_DEF mrl_result mrl_trpo_load(mrl_trpo *agent, const char *path, mrl_vecenv *env);
MRL_DEF int mrl_trpo_config_json(const mrl_trpo_config *cfg, char *buf, size_t size);

/* ======================================================================
 * IMPALA
 * Espeholt, Soyer, Munos, Simonyan, Mnih, Ward, Doron, Firoiu, Harley,
 * Dunning, Legg, Kavukcuoglu (2018), "IMPALA: Scalable Distributed Deep-RL
 * with Importance Weighted Actor-Learner Architectures". Actors act with a
 * lagging copy of the parameters (fetched before each unroll) and send
 * trajectories (observations, actions, rewards, flags, behaviour
 * log-probabilities and the core state before the first step) through a
 * queue to one learner, which corrects for the lag with V-trace
 * (mrl_vtrace, rho_bar = c_bar = 1) and takes one RMSProp step per batch.
 * Loss as the authors' scalable_agent: sums over the batch's [T, B] steps of
 *   -log pi(a_t) pg_adv_t + baseline_cost 0.5 (vs_t - V(x_t))^2 - entropy_cost H(pi(x_t))
 * Defaults: the paper's Atari settings (its appendix's hyperparameters):
 * unroll 20, entropy cost 0.01, baseline cost 0.5, discount 0.99, RMSProp (the
 * TensorFlow form: eps inside the root, v starting at 1) with learning rate
 * 6e-4 annealed linearly to 0, decay 0.99, momentum 0, epsilon 0.01, global
 * gradient-norm clipping at 40. The agent is one network (encoder -> core
 * -> head, any core through net.core: the paper's LSTM with
 * mrl_core_config_lstm(256)) with a policy head and a linear baseline, as
 * the paper's. Optional PopArt (cfg.popart; Hessel et al. 2019): the
 * baseline has one normalised output per task (num_tasks), V-trace runs on
 * denormalised values, the baseline loss on normalised targets and the
 * policy-gradient advantages are divided by the task's sigma; after each
 * learner step the statistics move towards the batch's vs and the layer is
 * rescaled (mrl_popart_update), so outputs are preserved.
 * Actors: num_actors, each owning num_envs / num_actors environments of the
 * training vector env (a contiguous block; with one actor the vector env
 * itself). A learner step takes batch_size trajectories (environment
 * columns of one unroll; 0: num_envs, one unroll of every environment).
 * One actor, or any number without MRL_THREADS: the actors take turns,
 * each fetching the learner's current parameters before its unroll, so a
 * run is synchronous and bitwise deterministic for a seed (the behaviour
 * policy is then the learner's, rho = 1 up to rounding). With MRL_THREADS
 * and num_actors > 1: one thread per actor, queue_capacity trajectory slots
 * in flight; the learner consumes whatever unrolls arrive first. Such runs
 * do not reproduce: which actor's unroll lands in which batch, and how many
 * learner steps each actor's parameters lag, depend on thread timing (each
 * unroll itself is still a deterministic function of its actor's
 * environments, seed and the parameters it fetched). Unrolls still in the
 * queue when a train call ends are learned from in the next call.
 * Deviations: a time-limit truncation is bootstrapped from the behaviour
 * network's value of the final observation (computed by the actor) instead
 * of being treated as a terminal state; no reward clipping (the paper clips
 * Atari rewards to [-1, 1]); the learning rate anneals over total_steps (or
 * each train call) as PPO's. Save/load resumes bitwise with one actor; with
 * several, the parameters, optimiser, PopArt statistics and counters resume
 * while actor 0's environments and every other actor's start anew.
 * ====================================================================== */

typedef struct mrl_impala_config {
  uint64_t seed;         /* 1 */
  int unroll_length;     /* 20: T, steps per trajectory */
  int num_actors;        /* 1 */
  int batch_size;        /* 0: num_envs; else trajectories per learner step, a multiple of the
                            environments of one actor (num_envs / num_actors) */
  int queue_capacity;    /* 0: batch unrolls + num_actors; trajectory slots (threads only) */
  float learning_rate;   /* 6e-4 */
  int anneal_lr;         /* 1: linear decay to 0 */
  long long total_steps; /* 0: each train call anneals over its own steps; > 0: over the agent's
                            life (as mrl_ppo_config.total_steps) */
  float gamma;           /* 0.99 */
  float rho_bar, c_bar, pg_rho_bar; /* 1, 1, 1: V-trace's clipping thresholds */
  float baseline_cost;              /* 0.5 */
  float entropy_cost;               /* 0.01 */
  float max_grad_norm;              /* 40 (<= 0: no clipping) */
  float rms_alpha;                  /* 0.99: RMSProp decay */
  float rms_eps;                    /* 0.01 */
  float rms_momentum;               /* 0 */
  int rms_tf;           /* 1: TensorFlow's RMSProp (the paper's); 0: torch.optim.RMSprop */
  mrl_tower_config net; /* encoder {64, 64} tanh, no core, no head; PyTorch's default inits */
  int popart;           /* 0; 1: PopArt-normalised baseline (Hessel et al. 2019) */
  float popart_beta;    /* 3e-4 */
  int num_tasks;        /* 1: outputs of the baseline; agent.env_task says each env's task */
} mrl_impala_config;

MRL_DEF mrl_impala_config mrl_impala_config_default(void);

/* The network: tower, policy head, linear baseline of num_tasks outputs. The
 * learner has one, every actor its own copy (the lagging parameters). */
typedef struct mrl_impala_net {
  mrl_params params;
  mrl_tower tower;
  mrl_policy_head policy;
  mrl_linear_layer baseline;
} mrl_impala_net;

/* One unroll of one actor: what it sends the learner. */
typedef struct mrl_impala_trajectory {
  int actor;                  /* which actor filled it */
  int num_envs;               /* b: its environments (columns) */
  long long policy_version;   /* learner steps taken when its parameters were fetched */
  mrl_result status;          /* not MRL_OK: the actor failed (its error says why) */
  float *obs;                 /* [T+1, b, obs_dim]: row T is the observation after the last step */
  float *starts;              /* [T+1, b] episode_start of each observation */
  float *actions;             /* [T, b, raw_dim] as sampled */
  float *behaviour_log_probs; /* [T, b] log mu(a_t | x_t) */
  float *rewards, *terminated, *truncated; /* [T, b] */
  float *final_values; /* [T, b] behaviour value of the final observation where truncated */
  float *episode_return, *episode_length, *episode_success; /* [T, b]: the episode that ended at
                                                               step t (-1 success: unknown) */
  float *initial_state; /* [b, state_dim] core state before step 0 */
} mrl_impala_trajectory;

typedef struct mrl_impala_actor {
  void *agent; /* the mrl_impala it belongs to */
  int index, env_offset, num_envs;
  mrl_impala_net net; /* its lagging copy of the parameters */
  mrl_popart popart;  /* and of the PopArt statistics that go with them */
  long long version;  /* learner steps behind net's parameters */
  mrl_graph graph;
  mrl_runner runner;
  mrl_vecenv view; /* num_actors > 1: its block of the training vector env (borrowed) */
  mrl_vecenv *env; /* what it steps: view, or the training vector env itself */
  mrl_rng rng;
  float *step_actions; /* [b, env_action_dim] */
#ifdef MRL_THREADS
  mrl_thread thread;
#endif
  char error[MRL_ERROR_SIZE];
} mrl_impala_actor;

typedef struct mrl_impala_update_stats {
  double policy_loss, baseline_loss, entropy; /* per step (the sums over T*B divided by T*B) */
  double mean_rho;                            /* of the clipped rho_t */
  double policy_lag;                          /* learner steps behind, mean over trajectories */
} mrl_impala_update_stats;

typedef struct mrl_impala {
  mrl_impala_config cfg;
  int obs_dim, num_envs, num_actions, env_action_dim, raw_dim, state_dim;
  int envs_per_actor, batch_envs, num_slots;
  mrl_impala_net net; /* the learner's */
  mrl_popart popart;  /* with cfg.popart */
  mrl_graph graph, act_graph;
  mrl_impala_actor *actors;     /* [num_actors] */
  mrl_impala_trajectory *slots; /* [num_slots] */
  mrl_queue free_slots, full_slots;
  int *env_task; /* [num_envs]: the task of each environment, env b * num_tasks / num_envs at
                    init; set it before training */
  mrl_episode_stats stats;             /* episodes of every actor, as the learner received them */
  long long iterations;                /* learner steps since the agent was created */
  long long env_steps;                 /* environment steps the learner has received */
  int next_actor;                      /* synchronous runs: whose turn it is */
  float *published;                    /* threads: the parameters actors fetch, [params.total] */
  double *published_mu, *published_nu; /* and the PopArt statistics with them */
  long long published_version;
  void *lock; /* threads: guards published* */
  mrl_rng rng;
  float *b_obs, *b_starts, *b_actions, *b_state, *b_scalars; /* learner batch scratch */
  int *b_tasks;
  char error[MRL_ERROR_SIZE];
} mrl_impala;

/* Builds the agent (and its actors) for env's spaces. With num_actors > 1 the
 * actors borrow blocks of env's environments: env must outlive the agent and
 * be the one given to train. A config that does not fit returns
 * MRL_ERR_INVALID_ARGUMENT and error names the field. */
MRL_DEF mrl_result mrl_impala_init(mrl_impala *agent, const mrl_impala_config *cfg,
                                   const mrl_vecenv *env);
MRL_DEF void mrl_impala_free(mrl_impala *agent);
/* Trains until the learner has received env_steps more environment steps
 * (whole learner steps of batch_size * unroll_length; 0 trains nothing). */
MRL_DEF mrl_result mrl_impala_train(mrl_impala *agent, mrl_vecenv *env, long long env_steps,
                                    mrl_progress_fn progress, void *user);
/* One learner step on n trajectories (their columns side by side, at most
 * batch_size of them): V-trace, the loss, one RMSProp step, PopArt. train
 * calls it; tests call it on fixed data. stats may be NULL. A non-finite
 * loss or gradient is not applied: MRL_ERR_NON_FINITE. */
MRL_DEF mrl_result mrl_impala_update(mrl_impala *agent, mrl_impala_trajectory *const *items, int n,
                                     float learning_rate, mrl_impala_update_stats *stats);
MRL_DEF int mrl_impala_state_dim(const mrl_impala *agent);
/* Deployment with the learner's parameters; conventions as mrl_ppo_act. */
MRL_DEF mrl_result mrl_impala_act(mrl_impala *agent, const float *obs, int n,
                                  const float *episode_start, float *state, int greedy,
                                  mrl_rng *rng, float *actions);
MRL_DEF mrl_result mrl_impala_evaluate(mrl_impala *agent, mrl_vecenv *env, int episodes, int greedy,
                                       mrl_episode_stats *stats);
/* The whole agent in one safetensors file (see the section's notes on
 * several actors); env (may be NULL) adds the environments' snapshot. */
MRL_DEF mrl_result mrl_impala_save(const mrl_impala *agent, const char *path,
                                   const mrl_vecenv *env);
MRL_DEF mrl_result mrl_impala_load(mrl_impala *agent, const char *path, mrl_vecenv *env);
MRL_DEF int mrl_impala_config_json(const mrl_impala_config *cfg, char *buf, size_t size);

/* ======================================================================
 * R2D2
 * Kapturowski, Ostrovski, Quan, Munos, Dabney (2019), "Recurrent experience
 * replay in distributed reinforcement learning" (ICLR). A recurrent Q
 * network (any core through cfg.net.core; an LSTM by default) trained from
 * mrl_seq_replay (memrl_mem.h): sequences of 80 steps cut every 40, each
 * with the core state stored when it was acted on, a burn-in of 40 steps
 * unrolled from that state without gradient (on a no-grad graph) before the
 * trained 80, n-step (n = 5) double-Q targets with value rescaling
 * h(x) = sign(x)(sqrt(|x| + 1) - 1) + eps x (eps 1e-3):
 *   y_t = h(sum_{k<n} gamma^k r_{t+k} + gamma^n h^-1(Q_target(s_{t+n}, a*))),
 *   a* = argmax_a Q_online(s_{t+n}, a), gamma 0.997,
 * a squared TD loss (0.5 d^2 summed over a sequence's trained steps, as
 * Acme's R2D2, weighted by the importance weight, mean over the batch), Adam (lr 1e-4, eps 1e-3),
 * target network copied every 2500 updates, priorities eta max|d| +
 * (1 - eta) mean|d| (eta 0.9) written back after every update, priority
 * exponent 0.9, importance exponent 0.6. Exploration as Ape-X (Horgan et al.
 * 2018): actor i of N takes epsilon_i = 0.4^(1 + 7 i / (N - 1)). Three ways
 * to run:
 *   - num_threads 1 (the default; the only one without MRL_THREADS): the
 *     actors are the vector env's environments, environment i of B with
 *     epsilon_i over the B environments; they act with the current
 *     parameters and the learner updates between their steps on the calling
 *     thread: the run is bitwise deterministic (and resumes bitwise).
 *   - num_threads 2, num_actors 1 (MRL_THREADS): the same per-environment
 *     epsilons, all environments stepped on the calling thread with a copy
 *     of the parameters refreshed every actor_refresh env steps (400, the
 *     paper's actor update interval) while the learner runs on a thread of
 *     its own (as Ape-X's learner beside its actors).
 *   - num_threads 2, num_actors N > 1 (MRL_THREADS): Ape-X's actors, N
 *     threads beside the learner's. Actor i owns the contiguous block of
 *     environments [i B/N, (i + 1) B/N) (a view of the vector env, as
 *     IMPALA's actors) and has its own copy of the parameters, refreshed
 *     every actor_refresh of its own env steps, its own RNG stream, acting
 *     graph and core states, and ONE epsilon_i over the N actors for all its
 *     environments, as the paper's actor (which runs one environment). Each
 *     takes env_steps / B vector steps of its block; all insert into the
 *     one mrl_seq_replay under the learner's lock, so the order in which
 *     sequences enter the replay (their slots) varies between runs, and the
 *     calling thread only reports progress (a callback that returns nonzero
 *     stops every actor after its current step).
 *   With the learner on its own thread the number of updates stays one per
 *   update_every env steps (it runs at most two behind), but which sequences
 *   they see depends on timing, so such a run is not bitwise repeatable.
 *   A checkpoint of a multi-actor agent holds what one of a single-thread
 *   agent holds (parameters, Adam moments, target network, replay, counters,
 *   the environments and every environment's observation and core state,
 *   gathered from the actors when train returns), not the actors' parameter
 *   copies (refreshed at the next train), RNG streams, step counts or their
 *   blocks' episode-seed counters: a loaded agent trains on from the same
 *   point, as any threaded run not bitwise.
 * Deviations from the paper, for one CPU instead of 256 actors and a GPU:
 *   - network: an MLP encoder (64, relu) and a 64-unit LSTM (forget-gate
 *     bias 1, Sonnet's default) instead of the conv stack and 512-unit LSTM,
 *     and a linear Q layer instead of the dueling head;
 *   - importance weights normalised by the batch's largest (Acme, Dopamine;
 *     see mrl_seq_replay) and the loss summed over a sequence's steps (Acme);
 *   - replay: 2000 sequences (paper: 4M observations) and learning after 16
 *     (paper: 6250 sequences' worth); one update every update_every env
 *     steps instead of a learner running as fast as it can;
 *   - new sequences enter with the largest priority so far (the paper's
 *     actors compute a priority from their own Q values);
 *   - sequences run on across episode ends with the core reset there (the
 *     paper never lets a sequence cross one): see mrl_seq_replay;
 *   - n-step returns stop at the end of a stored sequence (its last entry is
 *     only bootstrapped from) and at an episode end; a truncated episode
 *     bootstraps from its final observation (stored as a bootstrap entry), a
 *     terminated one from zero.
 * ====================================================================== */
typedef struct mrl_r2d2_config {
  uint64_t seed;                  /* 1 */
  mrl_tower_config net;           /* encoder {64} relu, LSTM 64 (forget-gate bias 1), no head;
                                     then a linear Q layer */
  float learning_rate;            /* 1e-4 */
  float adam_eps;                 /* 1e-3 */
  float max_grad_norm;            /* 0: no clipping (the paper clips nothing) */
  int batch_size;                 /* 64 sequences */
  float gamma;                    /* 0.997 */
  int n_step;                     /* 5 */
  float rescale_eps;              /* 1e-3 (0: no value rescaling) */
  int double_q;                   /* 1 */
  int target_period;              /* 2500 updates */
  mrl_seq_replay_config replay;   /* 2000 sequences of 80 (overlap 40) after a burn-in of 40 */
  int learning_starts;            /* 16: sequences stored before the first update */
  int update_every;               /* 16: env steps (over all environments) per update */
  float epsilon_base;             /* 0.4 */
  float epsilon_alpha;            /* 7 */
  float eval_epsilon;             /* 0.001: act with greedy = 0 */
  int num_threads;                /* 1; 2 (MRL_THREADS): the learner on a thread of its own (and
                                     num_actors > 1: the actors on theirs) */
  int actor_refresh;              /* 400: env steps between the actors' parameter copies when
                                     the learner has its own thread (of each actor's own steps
                                     with num_actors > 1) */
  int report_every;               /* 2000: env steps between progress reports */
  int save_replay;                /* 1: checkpoints hold the replay (bitwise resume) */
  int stored_state;               /* 1: sequences replay from their stored state; 0: from the zero
                                     state (the paper's "zero start state" baseline; DRQN) */
  float epsilon_start;            /* 0: Ape-X's epsilons; > 0: one epsilon for every environment,
                                     from epsilon_start linearly down to epsilon_base over
                                     epsilon_anneal_steps env steps (DQN, DRQN) */
  long long epsilon_anneal_steps; /* 0 */
  int num_actors; /* 1; N > 1 (MRL_THREADS, num_threads 2): N actor threads, actor i stepping
                     environments [i B/N, (i + 1) B/N) with epsilon_i over actors */
  int sequential; /* 0; 1: DRQN's bootstrapped sequential updates: each of the batch_size rows
                     of an update follows one episode from its start to its end, a sequence
                     (the next of its stream) per update, the core state carried from one to
                     the next (needs overlap 1, burn_in 0; no priorities) */
} mrl_r2d2_config;
MRL_DEF mrl_r2d2_config mrl_r2d2_config_default(void);

typedef struct mrl_r2d2_update_stats {
  float loss, mean_q, mean_abs_td, mean_priority;
} mrl_r2d2_update_stats;

/* An actor of a run with num_actors > 1: its block of the environments,
 * its own copy of the parameters, RNG, acting graph and runner (the block's
 * observations and core states). */
typedef struct mrl_r2d2_actor {
  void *agent; /* the mrl_r2d2 it belongs to */
  void *run;   /* while train runs: its lock, the learner and the report schedule */
  int index, env_offset, num_envs;
  float epsilon;       /* Ape-X's epsilon_i of this actor, for all its environments */
  long long env_steps; /* environment steps it took (all train calls) */
  long long refreshes; /* parameter copies it took */
  mrl_params params;   /* its copy of the network, refreshed every actor_refresh of its */
  mrl_tower tower;     /* env steps */
  mrl_linear_layer q;
  mrl_graph graph;
  mrl_runner runner;
  mrl_vecenv view; /* its block of the training vector env (borrowed environments) */
  mrl_rng rng;
  float *step_obs, *step_starts, *step_state, *step_actions;
  mrl_result status; /* not MRL_OK: it failed (error says why) */
#ifdef MRL_THREADS
  mrl_thread thread;
#endif
  char error[MRL_ERROR_SIZE];
} mrl_r2d2_actor;

typedef struct mrl_r2d2 {
  mrl_r2d2_config cfg;
  int obs_dim, num_envs, num_actions, state_dim;
  mrl_params params, target;
  mrl_tower tower, target_tower;
  mrl_linear_layer q, target_q;
  mrl_graph graph, act_graph;
  mrl_runner runner;
  mrl_seq_replay replay;
  mrl_rng rng;
  long long updates, env_steps_since_update;
  float *epsilons;                            /* [B] each environment's epsilon */
  float *step_obs, *step_starts, *step_state; /* [B, O], [B], [B, S] before the step */
  float *step_actions;                        /* [B] */
  float *b_obs, *b_actions, *b_rewards, *b_starts, *b_term, *b_trunc, *b_valid; /* [W, N] */
  float *b_state, *b_state2, *b_weights, *b_prio, *b_abs_td, *b_mask;
  int *b_idx;
  mrl_params actor_params; /* num_threads 2: the actors' copy of the network, refreshed every */
  mrl_tower actor_tower;   /* actor_refresh env steps while the learner trains its own */
  mrl_linear_layer actor_q;
  mrl_rng learner_rng;    /* num_threads 2: the learner thread's sampling */
  mrl_r2d2_actor *actors; /* [num_actors] when num_actors > 1, else NULL */
  /* sequential: each batch row's sequence number (-1: a new episode next), its online and
   * target networks' core states before the next sequence, the entries before its episode */
  long long *seq_k;
  float *seq_state, *seq_tstate;
  int *seq_skip;
  const char *algo; /* "r2d2" (or "drqn" when DRQN runs on it): reports and checkpoints */
  char error[MRL_ERROR_SIZE];
} mrl_r2d2;

MRL_DEF mrl_result mrl_r2d2_init(mrl_r2d2 *agent, const mrl_r2d2_config *cfg,
                                 const mrl_vecenv *env);
MRL_DEF void mrl_r2d2_free(mrl_r2d2 *agent);
/* Acts, stores and learns for env_steps environment steps (whole vector
 * steps). Progress every report_every env steps. */
MRL_DEF mrl_result mrl_r2d2_train(mrl_r2d2 *agent, mrl_vecenv *env, long long env_steps,
                                  mrl_progress_fn progress, void *user);
/* One update on sequences drawn from the replay (stats may be NULL). */
MRL_DEF mrl_result mrl_r2d2_update(mrl_r2d2 *agent, mrl_r2d2_update_stats *stats);
/* One update on the given replay slots with the given importance weights
 * (NULL: all 1), priorities written back; what mrl_r2d2_update runs after
 * sampling, public for pinned tests. */
MRL_DEF mrl_result mrl_r2d2_learn(mrl_r2d2 *agent, const int *indices, int n, const float *weights,
                                  mrl_r2d2_update_stats *stats);
MRL_DEF int mrl_r2d2_state_dim(const mrl_r2d2 *agent);
/* Q values [n, num_actions] of n observations (state advanced when
 * state_out is not NULL; it may alias state). */
MRL_DEF mrl_result mrl_r2d2_q_values(mrl_r2d2 *agent, const float *obs, int n,
                                     const float *episode_start, const float *state,
                                     float *state_out, float *q);
/* greedy 1: argmax; 0: epsilon-greedy with eval_epsilon and rng (NULL: the
 * agent's). No heap allocation once the acting arena has grown. */
MRL_DEF mrl_result mrl_r2d2_act(mrl_r2d2 *agent, const float *obs, int n,
                                const float *episode_start, float *state, int greedy, mrl_rng *rng,
                                float *actions);
MRL_DEF mrl_result mrl_r2d2_evaluate(mrl_r2d2 *agent, mrl_vecenv *env, int episodes, int greedy,
                                     mrl_episode_stats *stats);
/* The whole agent: parameters and Adam moments, the target network, the
 * runner, the RNG and counters, the replay (save_replay) and with env the
 * environments' snapshot: a resumed run continues bitwise. */
MRL_DEF mrl_result mrl_r2d2_save(const mrl_r2d2 *agent, const char *path, const mrl_vecenv *env);
MRL_DEF mrl_result mrl_r2d2_load(mrl_r2d2 *agent, const char *path, mrl_vecenv *env);
MRL_DEF int mrl_r2d2_config_json(const mrl_r2d2_config *cfg, char *buf, size_t size);

/* ======================================================================
 * DRQN
 * Hausknecht & Stone (2015), "Deep Recurrent Q-Learning for Partially
 * Observable MDPs": DQN (Mnih et al. 2015) with a recurrent core, trained
 * on sequences from replay with one-step Q-learning targets from a target
 * network, epsilon annealed linearly (1 -> 0.1), gradients clipped at 10.
 * Both of the paper's update schemes:
 *   MRL_DRQN_RANDOM      bootstrapped random updates: windows of `unroll`
 *                        steps (10) starting at any step, replayed from the
 *                        zero state (the paper's choice);
 *   MRL_DRQN_SEQUENTIAL  bootstrapped sequential updates: episodes drawn
 *                        from the replay, each replayed from its start to
 *                        its end with the core state carried all the way:
 *                        each of the batch_size rows of an update follows
 *                        one episode, `unroll` steps per update (the next
 *                        stored piece of its stream, which begins where the
 *                        last ended), from the zero state at the episode's
 *                        start and from the state its previous piece left
 *                        after that, for both networks; when the episode
 *                        has ended the row draws a new one (uniformly over
 *                        the episodes held).
 * DRQN runs on R2D2's machinery (mrl_r2d2: the sequence replay, the
 * sequence Q loss, acting, checkpoints) with n = 1, no value rescaling, no
 * double Q, uniform sampling, no burn-in: one engine, no copy.
 * Deviations: Adam (lr 1e-3) instead of Adadelta (0.1), an MLP encoder and a
 * 64-unit LSTM instead of the conv stack and 512 units, replay in sequences
 * (a random window may run on across an episode end, with the core reset
 * there) instead of whole stored episodes, and the target network copied
 * every target_period updates. Sequential updates: an episode is replayed
 * over several updates, `unroll` steps each, not in one; gradients stop at
 * each piece's start (truncated backpropagation through time; the state
 * itself is carried); the carried states were computed by the networks of
 * the row's previous update (the online one has moved by one step since,
 * the target one by a copy at most), not recomputed from the episode start;
 * a row drawing a new episode skips the steps before its start in the
 * piece where it begins; after an episode's last step the piece's
 * remaining steps (the next episode's first, from the zero state) are
 * trained too; an episode whose next piece is not stored yet (still being
 * played) or was overwritten ends there.
 * ====================================================================== */
typedef enum mrl_drqn_updates { MRL_DRQN_RANDOM, MRL_DRQN_SEQUENTIAL } mrl_drqn_updates;

typedef struct mrl_drqn_config {
  uint64_t seed;                  /* 1 */
  mrl_drqn_updates updates;       /* MRL_DRQN_RANDOM */
  int unroll;                     /* 10: steps per sequence (sequential: per update) */
  mrl_tower_config net;           /* encoder {64} relu, LSTM 64 */
  float learning_rate;            /* 1e-3 (Adam, eps 1e-8) */
  float max_grad_norm;            /* 10 */
  int batch_size;                 /* 32 sequences */
  float gamma;                    /* 0.99 */
  int target_period;              /* 1000 updates */
  int capacity;                   /* 20000 sequences */
  int learning_starts;            /* 64 sequences */
  int update_every;               /* 16 env steps per update */
  float epsilon_start;            /* 1 */
  float epsilon_end;              /* 0.1 */
  long long epsilon_anneal_steps; /* 50000 env steps */
  float eval_epsilon;             /* 0.001 */
  int report_every;               /* 2000 */
  int save_replay;                /* 1 */
} mrl_drqn_config;
MRL_DEF mrl_drqn_config mrl_drqn_config_default(void);

typedef struct mrl_drqn {
  mrl_drqn_config cfg;
  mrl_r2d2 engine; /* the R2D2 machinery DRQN runs on (its runner, replay, networks) */
  char error[MRL_ERROR_SIZE];
} mrl_drqn;

/* The mrl_r2d2_config a DRQN config runs as. */
MRL_DEF mrl_r2d2_config mrl_drqn_engine_config(const mrl_drqn_config *cfg);
MRL_DEF mrl_result mrl_drqn_init(mrl_drqn *agent, const mrl_drqn_config *cfg,
                                 const mrl_vecenv *env);
MRL_DEF void mrl_drqn_free(mrl_drqn *agent);
MRL_DEF mrl_result mrl_drqn_train(mrl_drqn *agent, mrl_vecenv *env, long long env_steps,
                                  mrl_progress_fn progress, void *user);
MRL_DEF int mrl_drqn_state_dim(const mrl_drqn *agent);
MRL_DEF mrl_result mrl_drqn_act(mrl_drqn *agent, const float *obs, int n,
                                const float *episode_start, float *state, int greedy, mrl_rng *rng,
                                float *actions);
MRL_DEF mrl_result mrl_drqn_evaluate(mrl_drqn *agent, mrl_vecenv *env, int episodes, int greedy,
                                     mrl_episode_stats *stats);
MRL_DEF mrl_result mrl_drqn_save(const mrl_drqn *agent, const char *path, const mrl_vecenv *env);
MRL_DEF mrl_result mrl_drqn_load(mrl_drqn *agent, const char *path, mrl_vecenv *env);

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

/* An actor's block of a vector env: a vector over env's environments first
 * .. first + n - 1 that borrows them (A3C's, IMPALA's and R2D2's actor threads
 * each step one). Its own arrays, seed and episode counters; free it with
 * mrl__vecenv_view_free, which leaves the environments to env. */
static mrl_result mrl__vecenv_view_init(mrl_vecenv *view, const mrl_vecenv *env, int first, int n,
                                        uint64_t seed) {
  return mrl_vecenv_init_envs(view, env->envs + first, n, seed);
}

static void mrl__vecenv_view_free(mrl_vecenv *view) {
  int i;
  if (view->envs) /* borrowed: the training vector frees them */
    for (i = 0; i < view->num_envs; i++) view->envs[i] = NULL;
  mrl_vecenv_free(view);
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

/* ---- bounded queue >>queue ---- */

#ifdef MRL_THREADS
typedef struct mrl__queue_sync {
  mrl_mutex mutex;
  mrl_cond not_empty, not_full;
} mrl__queue_sync;
#define MRL__QUEUE_LOCK(q) mrl_mutex_lock(&((mrl__queue_sync *)(q)->sync)->mutex)
#define MRL__QUEUE_UNLOCK(q) mrl_mutex_unlock(&((mrl__queue_sync *)(q)->sync)->mutex)
#else
#define MRL__QUEUE_LOCK(q) ((void)0)
#define MRL__QUEUE_UNLOCK(q) ((void)0)
#endif

MRL_DEF mrl_result mrl_queue_init(mrl_queue *q, int capacity) {
  memset(q, 0, sizeof *q);
  if (capacity < 1) return MRL_ERR_INVALID_ARGUMENT;
  q->items = (int *)MRL_MALLOC(sizeof(int) * (size_t)capacity);
  if (!q->items) return MRL_ERR_OUT_OF_MEMORY;
  q->capacity = capacity;
#ifdef MRL_THREADS
  {
    mrl__queue_sync *s = (mrl__queue_sync *)MRL_MALLOC(sizeof(mrl__queue_sync));
    if (!s) {
      mrl_queue_free(q);
      return MRL_ERR_OUT_OF_MEMORY;
    }
    memset(s, 0, sizeof *s);
    q->sync = s;
    if (mrl_mutex_init(&s->mutex) != MRL_OK || mrl_cond_init(&s->not_empty) != MRL_OK ||
        mrl_cond_init(&s->not_full) != MRL_OK) {
      mrl_queue_free(q);
      return MRL_ERR_OUT_OF_MEMORY;
    }
  }
#endif
  return MRL_OK;
}

MRL_DEF void mrl_queue_free(mrl_queue *q) {
#ifdef MRL_THREADS
  mrl__queue_sync *s = (mrl__queue_sync *)q->sync;
  if (s) {
    mrl_mutex_free(&s->mutex);
    mrl_cond_free(&s->not_empty);
    mrl_cond_free(&s->not_full);
    MRL_FREE(s);
  }
#endif
  MRL_FREE(q->items);
  memset(q, 0, sizeof *q);
}

MRL_DEF mrl_result mrl_queue_push(mrl_queue *q, int item) {
  mrl_result r = MRL_OK;
  MRL__QUEUE_LOCK(q);
#ifdef MRL_THREADS
  while (q->count == q->capacity && !q->closed)
    mrl_cond_wait(&((mrl__queue_sync *)q->sync)->not_full, &((mrl__queue_sync *)q->sync)->mutex);
#endif
  if (q->count == q->capacity) {
    r = MRL_ERR_INVALID_ARGUMENT;
  } else {
    q->items[(q->head + q->count) % q->capacity] = item;
    q->count++;
#ifdef MRL_THREADS
    mrl_cond_signal(&((mrl__queue_sync *)q->sync)->not_empty);
#endif
  }
  MRL__QUEUE_UNLOCK(q);
  return r;
}

MRL_DEF mrl_result mrl_queue_pop(mrl_queue *q, int *item) {
  mrl_result r = MRL_OK;
  MRL__QUEUE_LOCK(q);
#ifdef MRL_THREADS
  while (q->count == 0 && !q->closed)
    mrl_cond_wait(&((mrl__queue_sync *)q->sync)->not_empty, &((mrl__queue_sync *)q->sync)->mutex);
#endif
  if (q->count == 0 || q->closed) {
    r = MRL_ERR_INVALID_ARGUMENT;
  } else {
    *item = q->items[q->head];
    q->head = (q->head + 1) % q->capacity;
    q->count--;
#ifdef MRL_THREADS
    mrl_cond_signal(&((mrl__queue_sync *)q->sync)->not_full);
#endif
  }
  MRL__QUEUE_UNLOCK(q);
  return r;
}

MRL_DEF void mrl_queue_close(mrl_queue *q) {
  MRL__QUEUE_LOCK(q);
  q->closed = 1;
#ifdef MRL_THREADS
  mrl_cond_broadcast(&((mrl__queue_sync *)q->sync)->not_empty);
  mrl_cond_broadcast(&((mrl__queue_sync *)q->sync)->not_full);
#endif
  MRL__QUEUE_UNLOCK(q);
}

MRL_DEF void mrl_queue_reopen(mrl_queue *q) {
  MRL__QUEUE_LOCK(q);
  q->closed = 0;
  MRL__QUEUE_UNLOCK(q);
}

MRL_DEF int mrl_queue_count(mrl_queue *q) {
  int n;
  MRL__QUEUE_LOCK(q);
  n = q->count;
  MRL__QUEUE_UNLOCK(q);
  return n;
}

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

/* How much of the returns' variance the values explain, 1 - Var(y - y_pred) / Var(y)
 * (CleanRL's explained_variance; 0 when the returns are constant). */
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

MRL_DEF void mrl_runner_progress(mrl_train_progress *p, const char *algo, const mrl_vecenv *env,
                                 const mrl_runner *r, long long steps0, double t0) {
  memset(p, 0, sizeof *p);
  p->algo = algo;
  p->env_id = mrl_env_id(env->envs[0]);
  p->env_steps = r->env_steps;
  p->seconds = mrl_wall_seconds() - t0;
  p->steps_per_second = p->seconds > 0.0 ? (double)(r->env_steps - steps0) / p->seconds : 0.0;
  p->episodes = r->stats.total_episodes;
  p->mean_return = mrl_episode_stats_mean_return(&r->stats);
  p->mean_length = mrl_episode_stats_mean_length(&r->stats);
  p->success_rate = mrl_episode_stats_success_rate(&r->stats);
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
  if (r->also_stats) mrl_episode_stats_add_vecenv(r->also_stats, env);
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

/* The sequence-length curriculum (declared with the runner). */
MRL_DEF int mrl_length_curriculum_check(const char *config, int start, float growth,
                                        float threshold, int window, char *error,
                                        size_t error_size) {
  if (start < 1) {
    mrl__say(error, error_size, "%s.curriculum_start %d must be >= 1", config, start);
  } else if (!(growth > 1.0f)) {
    mrl__say(error, error_size, "%s.curriculum_growth %g must be > 1", config, growth);
  } else if (!(threshold >= 0.0f && threshold <= 1.0f)) {
    mrl__say(error, error_size, "%s.curriculum_threshold %g must be in [0, 1]", config, threshold);
  } else if (window < 1 || window > MRL_EPISODE_STATS_WINDOW) {
    mrl__say(error, error_size, "%s.curriculum_window %d must be in 1..%d", config, window,
             MRL_EPISODE_STATS_WINDOW);
  } else {
    return 0;
  }
  return 1;
}

/* Splits id at its first number ("NoisySequence-100-3" -> "NoisySequence-",
 * 100, "-3"); 0 when it has none that fits. */
static int mrl__length_curriculum_split(const char *id, char *prefix, char *suffix, size_t size,
                                        int *length) {
  const char *p = id;
  long v = 0;
  while (*p && !(*p == '-' && p[1] >= '0' && p[1] <= '9')) p++;
  if (!*p || (size_t)(p + 1 - id) >= size) return 0;
  memcpy(prefix, id, (size_t)(p + 1 - id));
  prefix[p + 1 - id] = '\0';
  for (p++; *p >= '0' && *p <= '9' && v < 100000000L; p++) v = v * 10 + (*p - '0');
  if (v < 1 || v >= 100000000L || strlen(p) >= size) return 0;
  memcpy(suffix, p, strlen(p) + 1);
  *length = (int)v;
  return 1;
}

MRL_DEF void mrl_length_curriculum_id(const mrl_length_curriculum *c, long long length, char *id,
                                      size_t size) {
  snprintf(id, size, "%s%lld%s", c->id_prefix, length, c->id_suffix);
}

MRL_DEF mrl_result mrl_length_curriculum_init(mrl_length_curriculum *c, const mrl_vecenv *env,
                                              const char *config, int start, float growth,
                                              float threshold, int window, char *error,
                                              size_t error_size) {
  const char *id = mrl_env_id(env->envs[0]);
  char first[160];
  mrl_env *e;
  int ok;
  memset(c, 0, sizeof *c);
  mrl_episode_stats_init(&c->level_stats);
  if (mrl_length_curriculum_check(config, start, growth, threshold, window, error, error_size))
    return MRL_ERR_INVALID_ARGUMENT;
  c->start = start;
  c->growth = growth;
  c->threshold = threshold;
  c->window = window;
  if (!mrl__length_curriculum_split(id, c->id_prefix, c->id_suffix, sizeof c->id_prefix,
                                    &c->final_length)) {
    mrl__say(error, error_size, "%s.curriculum 1: env id %s carries no length to grow", config, id);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (start > c->final_length) {
    mrl__say(error, error_size, "%s.curriculum_start %d exceeds the length %d of %s", config, start,
             c->final_length, id);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  mrl_length_curriculum_id(c, start, first, sizeof first);
  e = mrl_env_make(first);
  ok = e && mrl_env_obs_dim(e) == env->obs_dim && mrl_env_num_actions(e) == env->num_actions &&
       mrl_env_action_dim(e) == env->action_dim;
  mrl_env_free(e);
  c->length = start;
  c->level = 0;
  if (!ok) {
    mrl__say(error, error_size, "%s.curriculum_start %d: %s is not an environment of %s's spaces",
             config, start, first, id);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  return MRL_OK;
}

MRL_DEF float mrl_length_curriculum_rate(const mrl_length_curriculum *c) {
  const mrl_episode_stats *s = &c->level_stats;
  int w = c->window, i, k = 0;
  if (s->total_episodes < w) return -1.0f;
  for (i = 0; i < w; i++) {
    int slot = (s->next - 1 - i + 2 * MRL_EPISODE_STATS_WINDOW) % MRL_EPISODE_STATS_WINDOW;
    k += s->success[slot] > 0;
  }
  return (float)k / (float)w;
}

MRL_DEF mrl_result mrl_length_curriculum_rebuild(mrl_length_curriculum *c, mrl_vecenv *env,
                                                 uint64_t seed, mrl_runner *runner,
                                                 const char *algo, char *error, size_t error_size) {
  char id[160];
  int n = env->num_envs;
  mrl_result r;
  mrl_length_curriculum_id(c, c->length, id, sizeof id);
  if (strcmp(id, mrl_env_id(env->envs[0])) == 0) return MRL_OK;
  mrl_vecenv_free(env);
  if ((r = mrl_vecenv_init(env, id, n, seed)) != MRL_OK) {
    mrl__say(error, error_size, "%s: curriculum cannot build %s", algo, id);
    return r;
  }
  runner->started = 0; /* new episodes, memories zeroed */
  return MRL_OK;
}

MRL_DEF mrl_result mrl_length_curriculum_step(mrl_length_curriculum *c, mrl_vecenv *env,
                                              mrl_runner *runner, const char *algo, char *error,
                                              size_t error_size) {
  float rate = mrl_length_curriculum_rate(c);
  double next;
  if (c->length >= c->final_length || rate < 0.0f || rate < c->threshold) return MRL_OK;
  next = ceil((double)c->length * c->growth);
  c->length = next >= c->final_length ? c->final_length : (long long)next;
  c->level++;
  mrl_episode_stats_init(&c->level_stats);
  return mrl_length_curriculum_rebuild(c, env, env->seed + 0x9e3779b9ULL, runner, algo, error,
                                       error_size);
}

MRL_DEF int mrl_length_curriculum_extras(const mrl_length_curriculum *c, const char *const names[3],
                                         mrl_checkpoint_extra *x) {
  x[0].name = names[0];
  x[0].dtype = "I64";
  x[0].data = &c->length;
  x[0].count = 1;
  x[1].name = names[1];
  x[1].dtype = "I64";
  x[1].data = &c->level;
  x[1].count = 1;
  x[2].name = names[2]; /* plain data of this build, as the runner's statistics */
  x[2].dtype = "U8";
  x[2].data = &c->level_stats;
  x[2].count = sizeof c->level_stats;
  return 3;
}

/* ---- whole-agent checkpoints >>agent_checkpoint ---- */

/* The runner's state as checkpoint extras pointing into r (r->state_dim,
 * num_envs and obs_dim size them). Returns the count. */
static int mrl__runner_extras(const mrl_runner *r, mrl_checkpoint_extra *x) {
  static const char f32[] = "F32", f64[] = "F64", i64[] = "I64", u8[] = "U8";
  size_t B = (size_t)r->num_envs, O = (size_t)r->obs_dim;
  int n = 0;
  x[n++] = mrl_checkpoint_extra_of("__runner.obs", f32, r->obs, B * O);
  x[n++] = mrl_checkpoint_extra_of("__runner.final_obs", f32, r->final_obs, B * O);
  x[n++] = mrl_checkpoint_extra_of("__runner.episode_start", f32, r->episode_start, B);
  x[n++] = mrl_checkpoint_extra_of("__runner.state", f32, r->state,
                                   (uint64_t)(B * (size_t)r->state_dim));
  x[n++] = mrl_checkpoint_extra_of("__runner.rewards", f32, r->rewards, B);
  x[n++] = mrl_checkpoint_extra_of("__runner.terminated", f32, r->terminated, B);
  x[n++] = mrl_checkpoint_extra_of("__runner.truncated", f32, r->truncated, B);
  x[n++] = mrl_checkpoint_extra_of("__runner.returns", f64, r->returns, B);
  x[n++] = mrl_checkpoint_extra_of("__runner.obs_mean", f64, r->obs_norm.mean, O);
  x[n++] = mrl_checkpoint_extra_of("__runner.obs_var", f64, r->obs_norm.var, O);
  x[n++] = mrl_checkpoint_extra_of("__runner.obs_count", f64, &r->obs_norm.count, 1);
  x[n++] = mrl_checkpoint_extra_of("__runner.return_mean", f64, r->return_norm.mean, 1);
  x[n++] = mrl_checkpoint_extra_of("__runner.return_var", f64, r->return_norm.var, 1);
  x[n++] = mrl_checkpoint_extra_of("__runner.return_count", f64, &r->return_norm.count, 1);
  /* the statistics ring is plain data of this build: kept as bytes */
  x[n++] = mrl_checkpoint_extra_of("__runner.episode_stats", u8, &r->stats, sizeof r->stats);
  x[n++] = mrl_checkpoint_extra_of("__runner.env_steps", i64, &r->env_steps, 1);
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

/* ---- Q-values >>q_values ---- */

static int mrl__argmax(const float *x, int n) {
  int i, best = 0;
  for (i = 1; i < n; i++)
    if (x[i] > x[best]) best = i;
  return best;
}

MRL_DEF void mrl_epsilon_greedy(const float *q, int n, int num_actions, float epsilon, mrl_rng *rng,
                                float *actions) {
  int i;
  for (i = 0; i < n; i++) {
    int a;
    if (rng && mrl_rng_uniform(rng) < epsilon) {
      a = (int)(mrl_rng_uniform(rng) * (float)num_actions);
      if (a >= num_actions) a = num_actions - 1; /* uniform() < 1, but float rounding */
    } else {
      a = mrl__argmax(q + (size_t)i * num_actions, num_actions);
    }
    actions[i] = (float)a;
  }
}

MRL_DEF void mrl_q_targets(const float *reward, const float *discount, const float *q_next_online,
                           const float *q_next_target, int n, int num_actions, float rescale_eps,
                           float *targets) {
  int i;
  for (i = 0; i < n; i++) {
    const float *qt = q_next_target + (size_t)i * num_actions;
    int a = mrl__argmax(q_next_online ? q_next_online + (size_t)i * num_actions : qt, num_actions);
    float next = qt[a];
    if (rescale_eps > 0.0f)
      targets[i] = mrl_value_rescale(
          reward[i] + discount[i] * mrl_value_rescale_inv(next, rescale_eps), rescale_eps);
    else
      targets[i] = reward[i] + discount[i] * next;
  }
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

/* ---- actor-critic network >>actor_critic ---- */

/* Policy head for the environment's action space: categorical for discrete
 * actions, else a Gaussian (clipped when sent) or tanh-squashed Gaussian. */
static mrl_result mrl__actor_critic_policy_init(mrl_policy_head *h, mrl_params *p,
                                                const mrl_actor_critic_config *c,
                                                const mrl_vecenv *env, int in_features) {
  mrl_policy_head_config pc;
  const mrl_env *e = env->envs[0];
  if (env->num_actions > 0) {
    pc = mrl_policy_head_config_default(MRL_POLICY_CATEGORICAL);
    pc.num_actions = env->num_actions;
  } else {
    pc = mrl_policy_head_config_default(c->squash_actions ? MRL_POLICY_TANH_GAUSSIAN
                                                          : MRL_POLICY_GAUSSIAN);
    pc.action_dim = env->action_dim;
    pc.action_low = mrl_env_action_low(e);
    pc.action_high = mrl_env_action_high(e);
    pc.log_std_init = c->log_std_init;
  }
  pc.init = c->orthogonal_init ? mrl_init_orthogonal(0.01f) : mrl_init_default();
  return mrl_policy_head_init(h, p, "actor.out", in_features, &pc);
}

MRL_DEF mrl_actor_critic mrl_actor_critic_make(const mrl_tower *actor, const mrl_tower *critic,
                                               const mrl_policy_head *policy,
                                               const mrl_linear_layer *value, int shared_torso,
                                               int state_dim, const mrl_popart *popart) {
  mrl_actor_critic ac;
  ac.actor = (mrl_tower *)actor;
  ac.critic = (mrl_tower *)critic;
  ac.policy = (mrl_policy_head *)policy;
  ac.value = (mrl_linear_layer *)value;
  ac.shared_torso = shared_torso;
  ac.state_dim = state_dim;
  ac.popart = popart;
  return ac;
}

MRL_DEF mrl_result mrl_actor_critic_init(mrl_actor_critic *ac, mrl_params *p,
                                         const mrl_actor_critic_config *cfg, const mrl_vecenv *env,
                                         uint64_t seed, const char *who, char *error,
                                         size_t error_size) {
  mrl_tower_config net;
  mrl_result r;
  ac->shared_torso = cfg->shared_torso;
  ac->state_dim = 0;
  ac->popart = NULL;
  /* CleanRL's layer_init is orthogonal(sqrt 2) with zero biases for hidden
   * layers, orthogonal(1) for its LSTM */
  net = cfg->net;
  if (cfg->orthogonal_init) {
    if (net.init.kind == MRL_INIT_DEFAULT) net.init = mrl_init_orthogonal(sqrtf(2.0f));
    if (net.core.init.kind == MRL_INIT_DEFAULT) net.core.init = mrl_init_orthogonal(1.0f);
  }
  if ((r = mrl_tower_init(ac->actor, p, "actor", env->obs_dim, &net, 0, error, error_size)) !=
      MRL_OK)
    return r;
  if (!cfg->shared_torso && (r = mrl_tower_init(ac->critic, p, "critic", env->obs_dim, &net,
                                                ac->actor->state_dim, error, error_size)) != MRL_OK)
    return r;
  if ((r = mrl__actor_critic_policy_init(ac->policy, p, cfg, env, ac->actor->output_dim)) !=
      MRL_OK) {
    mrl__say(error, error_size,
             "%s: no policy head fits the action space (%d actions of %d floats)", who,
             env->num_actions, env->action_dim);
    return r;
  }
  mrl_linear_layer_init(ac->value, p, "critic.out",
                        cfg->shared_torso ? ac->actor->output_dim : ac->critic->output_dim, 1,
                        cfg->orthogonal_init ? mrl_init_orthogonal(1.0f) : mrl_init_default());
  if ((r = mrl_params_finalize(p, seed)) != MRL_OK) {
    mrl__say(error, error_size, "%s: %s", who, p->message);
    return r;
  }
  ac->state_dim = ac->actor->state_dim + (cfg->shared_torso ? 0 : ac->critic->state_dim);
  return MRL_OK;
}

MRL_DEF void mrl_actor_critic_forward(const mrl_actor_critic *ac, mrl_graph *g, mrl_tensor *x,
                                      int T, int B, const float *starts, const float *state_in,
                                      float *state_out, mrl_tensor **dist, mrl_tensor **values,
                                      mrl_tensor **aux) {
  int S = ac->state_dim, shape[1];
  mrl_tensor *aa = NULL, *acr = NULL, *fc;
  mrl_tensor *fa = mrl_tower_forward_aux(ac->actor, g, x, T, B, starts, state_in, state_out, S,
                                         aux ? &aa : NULL);
  if (dist) *dist = mrl_policy_head_forward(ac->policy, g, fa);
  if (values) {
    fc = ac->shared_torso ? fa
                          : mrl_tower_forward_aux(ac->critic, g, x, T, B, starts, state_in,
                                                  state_out, S, aux ? &acr : NULL);
    shape[0] = T * B;
    *values = mrl_reshape(g, mrl_linear_layer_forward(ac->value, g, fc), 1, shape);
  }
  if (aux) /* the cores' auxiliary losses (FTW's KL), mean over steps, both towers */
    *aux = aa && acr ? mrl_add(g, mrl_mean(g, aa), mrl_mean(g, acr))
           : aa      ? mrl_mean(g, aa)
           : acr     ? mrl_mean(g, acr)
                     : NULL;
}

MRL_DEF mrl_result mrl_actor_critic_collect(const mrl_actor_critic *ac, mrl_graph *g,
                                            mrl_runner *run, mrl_vecenv *env, mrl_rollout *ro,
                                            mrl_rng *rng, float *step_actions, float *last_values,
                                            float gamma, float gae_lambda, const char *algo,
                                            char *error, size_t error_size) {
  int T = ro->num_steps, B = ro->num_envs, O = ro->obs_dim, R = ro->action_dim, S = ac->state_dim;
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
      mrl_actor_critic_forward(ac, g, x, 1, B, run->episode_start, run->state, run->state, &dist,
                               &values, NULL);
    if (!dist || !values) return MRL_ERR_OUT_OF_MEMORY;
    memcpy(ro->obs + row * O, run->obs, sizeof(float) * (size_t)B * O);
    memcpy(ro->episode_starts + row, run->episode_start, sizeof(float) * (size_t)B);
    memcpy(ro->values + row, values->data, sizeof(float) * (size_t)B);
    mrl_policy_head_act(ac->policy, dist->data, B, 0, rng, NULL, ro->actions + row * R,
                        ro->log_probs + row);
    mrl_policy_head_env_action(ac->policy, ro->actions + row * R, B, step_actions);
    if ((r = mrl_runner_step(run, env, step_actions)) != MRL_OK) {
      mrl__say(error, error_size, "%s: %s", algo,
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
          mrl_actor_critic_forward(ac, g, xf, 1, 1, &zero, run->state + (size_t)b * S, NULL, NULL,
                                   &vf, NULL);
        if (!vf) return MRL_ERR_OUT_OF_MEMORY;
        ro->final_values[row + b] = vf->data[0];
      }
    }
  }
  { /* value of the observation after the last step, state not advanced */
    mrl_tensor *x, *values = NULL;
    mrl_graph_reset(g);
    x = mrl_tensor_from2(g, run->obs, B, O);
    if (x)
      mrl_actor_critic_forward(ac, g, x, 1, B, run->episode_start, run->state, NULL, NULL, &values,
                               NULL);
    if (!values) return MRL_ERR_OUT_OF_MEMORY;
    memcpy(last_values, values->data, sizeof(float) * (size_t)B);
  }
  if (ac->popart) { /* the value layer's outputs are normalised: GAE on the returns' scale */
    int i, n = T * B;
    mrl_popart_denormalize(ac->popart, ro->values, NULL, n, ro->values);
    for (i = 0; i < n; i++)
      if (ro->truncated[i] != 0.0f)
        mrl_popart_denormalize(ac->popart, &ro->final_values[i], NULL, 1, &ro->final_values[i]);
    mrl_popart_denormalize(ac->popart, last_values, NULL, B, last_values);
  }
  mrl_rollout_compute_gae(ro, last_values, gamma, gae_lambda);
  return MRL_OK;
}

/* Deployment's observations: normalised with the training statistics into
 * the arena when asked, else the caller's array itself. */
static const float *mrl__actor_critic_obs(const mrl_runner *norm, mrl_graph *g, const float *obs,
                                          int n) {
  float *out;
  if (!norm) return obs;
  out = (float *)mrl_graph_alloc(g, sizeof(float) * (size_t)n * norm->obs_dim);
  if (out) mrl_runner_normalize(norm, obs, n, out);
  return out;
}

MRL_DEF mrl_result mrl_actor_critic_act(const mrl_actor_critic *ac, mrl_graph *g,
                                        const mrl_runner *norm, const float *obs, int n,
                                        const float *episode_start, float *state, int greedy,
                                        mrl_rng *rng, float *actions) {
  mrl_tensor *x, *dist = NULL, *v = NULL;
  const float *xo;
  int critic_state = !ac->shared_torso && ac->critic->state_dim > 0;
  int obs_dim = ac->actor->input_dim;
  if (n < 1 || !obs || !actions || (ac->state_dim && !state)) return MRL_ERR_INVALID_ARGUMENT;
  mrl_graph_reset(g);
  mrl_graph_set_no_grad(g, 1);
  if (!(xo = mrl__actor_critic_obs(norm, g, obs, n))) return MRL_ERR_OUT_OF_MEMORY;
  x = mrl_tensor_from2(g, xo, n, obs_dim);
  /* a critic with its own recurrent state runs too, so that state advances */
  if (x)
    mrl_actor_critic_forward(ac, g, x, 1, n, episode_start, state, state, &dist,
                             critic_state ? &v : NULL, NULL);
  if (!dist || (critic_state && !v))
    return mrl_graph_status(g) != MRL_OK ? mrl_graph_status(g) : MRL_ERR_OUT_OF_MEMORY;
  /* raw actions straight into actions, then mapped in place to what is sent */
  mrl_policy_head_act(ac->policy, dist->data, n, greedy, rng, NULL, actions, NULL);
  mrl_policy_head_env_action(ac->policy, actions, n, actions);
  /* fold an overflow into the arena now: later calls of this size allocate nothing */
  mrl_graph_reset(g);
  return MRL_OK;
}

MRL_DEF mrl_result mrl_actor_critic_value(const mrl_actor_critic *ac, mrl_graph *g,
                                          const mrl_runner *norm, const float *obs, int n,
                                          const float *episode_start, const float *state,
                                          float *values) {
  mrl_tensor *x, *v = NULL;
  const float *xo;
  if (n < 1 || !obs || !values || (ac->state_dim && !state)) return MRL_ERR_INVALID_ARGUMENT;
  mrl_graph_reset(g);
  mrl_graph_set_no_grad(g, 1);
  if (!(xo = mrl__actor_critic_obs(norm, g, obs, n))) return MRL_ERR_OUT_OF_MEMORY;
  x = mrl_tensor_from2(g, xo, n, ac->actor->input_dim);
  if (x) mrl_actor_critic_forward(ac, g, x, 1, n, episode_start, state, NULL, NULL, &v, NULL);
  if (!v) return mrl_graph_status(g) != MRL_OK ? mrl_graph_status(g) : MRL_ERR_OUT_OF_MEMORY;
  memcpy(values, v->data, sizeof(float) * (size_t)n);
  if (ac->popart) mrl_popart_denormalize(ac->popart, values, NULL, n, values);
  mrl_graph_reset(g);
  return MRL_OK;
}

/* A tower config's parts as JSON text: enc[96] and head[96] the layer sizes ("64,64"), core[1024]
 * the core's config (what every actor-critic agent's config JSON embeds). */
static void mrl__tower_config_json(const mrl_tower_config *n, char *enc, char *head, char *core) {
  int i, k = 0;
  enc[0] = head[0] = '\0';
  mrl_core_config_json(&n->core, core, 1024);
  for (i = 0; i < n->num_encoder_layers && i < MRL_TOWER_MAX_LAYERS; i++)
    k += snprintf(enc + k, 96 - (size_t)k, "%s%d", i ? "," : "", n->encoder_sizes[i]);
  for (k = 0, i = 0; i < n->num_head_layers && i < MRL_TOWER_MAX_LAYERS; i++)
    k += snprintf(head + k, 96 - (size_t)k, "%s%d", i ? "," : "", n->head_sizes[i]);
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
  c.popart = 0;
  c.popart_beta = 3e-4f;
  c.adv_std_floor = 0.0f;
  c.curriculum = 0;
  c.curriculum_start = 5;
  c.curriculum_growth = 2.0f;
  c.curriculum_threshold = 0.9f;
  c.curriculum_window = 100;
  c.curriculum_rollout = 0;
  return c;
}

MRL_DEF int mrl_ppo_config_json(const mrl_ppo_config *c, char *buf, size_t size) {
  const mrl_tower_config *n = &c->net;
  char enc[96], head[96], f[15][24], core[1024];
  int k;
  mrl__tower_config_json(n, enc, head, core);
  k = snprintf(
      buf, size,
      "{\"seed\":%llu,\"num_steps\":%d,\"learning_rate\":%s,\"anneal_lr\":%d,"
      "\"total_steps\":%lld,\"gamma\":%s,\"gae_lambda\":%s,\"num_minibatches\":%d,"
      "\"update_epochs\":%d,\"norm_adv\":%d,\"clip_coef\":%s,\"anneal_clip\":%d,"
      "\"clip_vloss\":%d,\"ent_coef\":%s,\"vf_coef\":%s,\"max_grad_norm\":%s,"
      "\"target_kl\":%s,\"adam_eps\":%s,\"encoder_sizes\":[%s],\"core\":%s,\"head_sizes\":[%s],"
      "\"activation\":%d,\"use_conv\":%d,\"orthogonal_init\":%d,\"shared_torso\":%d,"
      "\"normalize_obs\":%d,\"normalize_reward\":%d,\"squash_actions\":%d,\"log_std_init\":%s,"
      "\"core_aux_coef\":%s,\"popart\":%d,\"popart_beta\":%s,\"adv_std_floor\":%s}",
      (unsigned long long)c->seed, c->num_steps, mrl__float_text(c->learning_rate, f[0], 24),
      c->anneal_lr, c->total_steps, mrl__float_text(c->gamma, f[1], 24),
      mrl__float_text(c->gae_lambda, f[2], 24), c->num_minibatches, c->update_epochs, c->norm_adv,
      mrl__float_text(c->clip_coef, f[3], 24), c->anneal_clip, c->clip_vloss,
      mrl__float_text(c->ent_coef, f[4], 24), mrl__float_text(c->vf_coef, f[5], 24),
      mrl__float_text(c->max_grad_norm, f[6], 24), mrl__float_text(c->target_kl, f[7], 24),
      mrl__float_text(c->adam_eps, f[8], 24), enc, core, head, (int)n->activation, n->use_conv,
      c->orthogonal_init, c->shared_torso, c->normalize_obs, c->normalize_reward, c->squash_actions,
      mrl__float_text(c->log_std_init, f[9], 24), mrl__float_text(c->core_aux_coef, f[10], 24),
      c->popart, mrl__float_text(c->popart_beta, f[11], 24),
      mrl__float_text(c->adv_std_floor, f[12], 24));
  if (!c->curriculum || k < 1) return k;
  /* only with the curriculum on: configs (and checkpoints) without it read as before */
  k--; /* over the closing brace */
  return k + snprintf(k < (int)size ? buf + k : NULL, k < (int)size ? size - (size_t)k : 0,
                      ",\"curriculum\":%d,\"curriculum_start\":%d,\"curriculum_growth\":%s,"
                      "\"curriculum_threshold\":%s,\"curriculum_window\":%d,"
                      "\"curriculum_rollout\":%d}",
                      c->curriculum, c->curriculum_start,
                      mrl__float_text(c->curriculum_growth, f[13], 24),
                      mrl__float_text(c->curriculum_threshold, f[14], 24), c->curriculum_window,
                      c->curriculum_rollout);
}

/* Names the first field of a PPO config that cannot work (error), or 0. */
static int mrl__ppo_check_config(const mrl_ppo_config *c, const mrl_vecenv *env, char *err,
                                 size_t n) {
  long long batch = (long long)env->num_envs * c->num_steps;
  /* a table on the stack: a static table of pointers would be writable data */
  const char *const names[14] = {"learning_rate",     "gamma",
                                 "gae_lambda",        "clip_coef",
                                 "ent_coef",          "vf_coef",
                                 "max_grad_norm",     "target_kl",
                                 "adam_eps",          "log_std_init",
                                 "core_aux_coef",     "adv_std_floor",
                                 "curriculum_growth", "curriculum_threshold"};
  const float *f[14];
  int i;
  f[0] = &c->learning_rate, f[1] = &c->gamma, f[2] = &c->gae_lambda, f[3] = &c->clip_coef;
  f[4] = &c->ent_coef, f[5] = &c->vf_coef, f[6] = &c->max_grad_norm, f[7] = &c->target_kl;
  f[8] = &c->adam_eps, f[9] = &c->log_std_init, f[10] = &c->core_aux_coef;
  f[11] = &c->adv_std_floor, f[12] = &c->curriculum_growth, f[13] = &c->curriculum_threshold;
  for (i = 0; i < 14; i++)
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
  MRL__REJECT(c->popart && !(c->popart_beta > 0.0f && c->popart_beta <= 1.0f),
              "mrl_ppo_config.popart_beta %g must be in (0, 1]", c->popart_beta);
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
  if (c->curriculum &&
      mrl_length_curriculum_check("mrl_ppo_config", c->curriculum_start, c->curriculum_growth,
                                  c->curriculum_threshold, c->curriculum_window, err, n))
    return 1;
#undef MRL__REJECT
  return 0;
}

/* PPO's view of its network (the shared actor-critic pieces it owns). */
static mrl_actor_critic mrl__ppo_ac(const mrl_ppo *a) {
  return mrl_actor_critic_make(&a->actor, &a->critic, &a->policy, &a->value, a->cfg.shared_torso,
                               a->state_dim, a->cfg.popart ? &a->popart : NULL);
}

/* With curriculum_rollout: the rollout and its minibatches rebuilt at the
 * level's length, ceil(num_steps * length / final length) (the minibatch
 * scratch is sized for num_steps, the longest). */
static int mrl__ppo_level_steps(const mrl_ppo *a) {
  const mrl_length_curriculum *c = &a->curriculum;
  double want = ceil((double)a->cfg.num_steps * (double)c->length / (double)c->final_length);
  if (!a->cfg.curriculum || !a->cfg.curriculum_rollout) return a->cfg.num_steps;
  return want < 1.0 ? 1 : want > a->cfg.num_steps ? a->cfg.num_steps : (int)want;
}

static mrl_result mrl__ppo_level_rollout(mrl_ppo *a) {
  const mrl_length_curriculum *c = &a->curriculum;
  int T = mrl__ppo_level_steps(a);
  mrl_result r;
  if (!a->cfg.curriculum || !a->cfg.curriculum_rollout || T == a->rollout.num_steps) return MRL_OK;
  mrl_rollout_free(&a->rollout);
  mrl_minibatches_free(&a->minibatches);
  if ((r = mrl_rollout_init(&a->rollout, T, a->num_envs, a->obs_dim, a->raw_dim, a->state_dim)) !=
          MRL_OK ||
      (r = mrl_minibatches_init(&a->minibatches, T, a->num_envs, a->cfg.num_minibatches,
                                a->state_dim > 0)) != MRL_OK)
    mrl__say(a->error, sizeof a->error, "ppo: no rollout of %d steps for curriculum length %lld", T,
             c->length);
  return r;
}

MRL_DEF mrl_result mrl_ppo_init(mrl_ppo *a, const mrl_ppo_config *cfg, const mrl_vecenv *env) {
  mrl_actor_critic_config acc;
  mrl_actor_critic ac;
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
  mrl_episode_stats_init(&a->curriculum.level_stats);
  if (cfg->curriculum &&
      mrl_length_curriculum_init(&a->curriculum, env, "mrl_ppo_config", cfg->curriculum_start,
                                 cfg->curriculum_growth, cfg->curriculum_threshold,
                                 cfg->curriculum_window, a->error, sizeof a->error) != MRL_OK)
    return MRL_ERR_INVALID_ARGUMENT;
  /* the network: SB3's ActorCriticPolicy / CleanRL's Agent (the shared actor_critic section) */
  acc.net = cfg->net;
  acc.orthogonal_init = cfg->orthogonal_init;
  acc.shared_torso = cfg->shared_torso;
  acc.squash_actions = cfg->squash_actions;
  acc.log_std_init = cfg->log_std_init;
  ac = mrl__ppo_ac(a);
  mrl_params_init(&a->params);
  if ((r = mrl_actor_critic_init(&ac, &a->params, &acc, env, cfg->seed, "mrl_ppo_init", a->error,
                                 sizeof a->error)) != MRL_OK)
    goto fail;
  a->raw_dim = mrl_policy_head_raw_dim(&a->policy);
  a->state_dim = ac.state_dim;
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
      (r = mrl_update_backup_init(&a->backup, &a->params)) != MRL_OK ||
      (cfg->popart && (r = mrl_popart_init(&a->popart, 1, cfg->popart_beta)) != MRL_OK) ||
      (r = mrl__ppo_level_rollout(a)) != MRL_OK)
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
  mrl_popart_free(&a->popart);
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

/* The network on x [T*B, obs] (mrl_actor_critic_forward). */
static void mrl__ppo_forward_aux(mrl_ppo *a, mrl_graph *g, mrl_tensor *x, int T, int B,
                                 const float *starts, const float *state_in, float *state_out,
                                 mrl_tensor **dist, mrl_tensor **values, mrl_tensor **aux) {
  mrl_actor_critic ac = mrl__ppo_ac(a);
  mrl_actor_critic_forward(&ac, g, x, T, B, starts, state_in, state_out, dist, values, aux);
}

/* Rollout: num_steps vector steps into a->rollout, then GAE. */
static mrl_result mrl__ppo_collect(mrl_ppo *a, mrl_vecenv *env) {
  mrl_actor_critic ac = mrl__ppo_ac(a);
  mrl_result r;
  /* finished episodes also count towards the curriculum level's window */
  a->runner.also_stats = a->cfg.curriculum ? &a->curriculum.level_stats : NULL;
  r = mrl_actor_critic_collect(&ac, &a->act_graph, &a->runner, env, &a->rollout, &a->rng,
                               a->step_actions, a->step_values, a->cfg.gamma, a->cfg.gae_lambda,
                               "ppo", a->error, sizeof a->error);
  a->runner.also_stats = NULL;
  return r;
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
  if (a->cfg.popart) { /* the value head's units: normalised returns and values */
    float sigma = mrl_popart_sigma(&a->popart, 0);
    mrl_popart_normalize(&a->popart, ret, NULL, N, ret);
    mrl_popart_normalize(&a->popart, old_v, NULL, N, old_v);
    for (i = 0; i < N; i++) adv[i] /= sigma;
  }
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
  if (a->cfg.popart) /* statistics towards this rollout's returns; the outputs stay */
    mrl_popart_update(&a->popart, &a->params, &a->value, a->rollout.returns, NULL,
                      a->rollout.num_steps * a->rollout.num_envs);
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

MRL_DEF mrl_result mrl_ppo_train(mrl_ppo *a, mrl_vecenv *env, long long env_steps,
                                 mrl_progress_fn progress, void *user) {
  long long batch = (long long)a->num_envs * a->cfg.num_steps, iters, it, span, done;
  long long steps0 = a->runner.env_steps, taken = 0;
  /* with curriculum_rollout the rollout's length (and batch) changes with the
   * level: the loop runs while a whole rollout fits the budget and the
   * schedules anneal over environment steps */
  int vary = a->cfg.curriculum && a->cfg.curriculum_rollout;
  double t0 = mrl_wall_seconds();
  mrl_result r;
  if (!env || env->num_envs != a->num_envs || env->obs_dim != a->obs_dim ||
      env->num_actions != a->num_actions || env->action_dim != a->env_action_dim) {
    mrl__say(a->error, sizeof a->error, "mrl_ppo_train: not the vector env the agent was made for");
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (vary) batch = (long long)a->num_envs * a->rollout.num_steps;
  if (env_steps < 0) {
    mrl__say(a->error, sizeof a->error, "mrl_ppo_train: env_steps %lld is negative", env_steps);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  iters = env_steps / batch;
  if (iters == 0) return MRL_OK;
  /* schedules: over this call (CleanRL), or over the agent's life */
  span = a->cfg.total_steps > 0 ? a->cfg.total_steps / batch : iters;
  done = a->cfg.total_steps > 0 ? a->iterations : 0;
  /* the curriculum's level decides which task the environments run */
  if (a->cfg.curriculum &&
      (r = mrl_length_curriculum_rebuild(&a->curriculum, env, env->seed, &a->runner, "ppo",
                                         a->error, sizeof a->error)) != MRL_OK)
    return r;
  if ((r = mrl_runner_start(&a->runner, env)) != MRL_OK) return r;
  for (it = 1; vary ? taken + batch <= env_steps : it <= iters; it++) {
    float lr = a->cfg.learning_rate, clip = a->cfg.clip_coef;
    mrl_ppo_update_stats st;
    if (vary) { /* over this call's steps, or the agent's life */
      long long at = a->cfg.total_steps > 0 ? a->runner.env_steps : taken;
      long long of = a->cfg.total_steps > 0 ? a->cfg.total_steps : env_steps;
      if (a->cfg.anneal_lr) lr = mrl_lr_linear(lr, 0.0f, at, of);
      if (a->cfg.anneal_clip) clip = mrl_lr_linear(clip, 0.0f, at, of);
    } else {
      if (a->cfg.anneal_lr) lr = mrl_lr_linear(lr, 0.0f, done + it - 1, span);
      if (a->cfg.anneal_clip) clip = mrl_lr_linear(clip, 0.0f, done + it - 1, span);
    }
    if ((r = mrl__ppo_collect(a, env)) != MRL_OK) return r;
    if ((r = mrl_ppo_update(a, lr, clip, &st)) != MRL_OK) return r;
    a->iterations++;
    taken += batch;
    if (a->cfg.curriculum) {
      if ((r = mrl_length_curriculum_step(&a->curriculum, env, &a->runner, "ppo", a->error,
                                          sizeof a->error)) != MRL_OK ||
          (r = mrl_runner_start(&a->runner, env)) != MRL_OK)
        return r;
    }
    if (progress) {
      mrl_train_progress p;
      double n = st.count ? (double)st.count : 1.0;
      mrl_runner_progress(&p, "ppo", env, &a->runner, steps0, t0);
      p.iteration = (int)it;
      p.num_iterations = (int)iters;
      p.learning_rate = lr;
      mrl_progress_set(&p, "policy_loss", (float)(st.policy_loss / n));
      mrl_progress_set(&p, "value_loss", (float)(st.value_loss / n));
      mrl_progress_set(&p, "entropy", (float)(st.entropy / n));
      mrl_progress_set(&p, "approx_kl", (float)(st.approx_kl / n));
      mrl_progress_set(&p, "clip_fraction", (float)(st.clip_fraction / n));
      mrl_progress_set(&p, "explained_variance",
                       mrl__explained_variance(a->rollout.values, a->rollout.returns, (int)batch));
      if (a->cfg.curriculum) {
        mrl_progress_set(&p, "curriculum_length", (float)a->curriculum.length);
        mrl_progress_set(&p, "level_success", mrl_length_curriculum_rate(&a->curriculum));
      }
      if (vary) /* the iterations left at the new level's length */
        p.num_iterations =
            (int)(it + (env_steps - taken) / ((long long)a->num_envs * mrl__ppo_level_steps(a)));
      if (progress(&p, user)) break;
    }
    if (vary) {
      if ((r = mrl__ppo_level_rollout(a)) != MRL_OK) return r;
      batch = (long long)a->num_envs * a->rollout.num_steps;
    }
  }
  return MRL_OK;
}

MRL_DEF mrl_result mrl_ppo_act(mrl_ppo *a, const float *obs, int n, const float *episode_start,
                               float *state, int greedy, mrl_rng *rng, float *actions) {
  mrl_actor_critic ac = mrl__ppo_ac(a);
  return mrl_actor_critic_act(&ac, &a->act_graph, a->cfg.normalize_obs ? &a->runner : NULL, obs, n,
                              episode_start, state, greedy, rng ? rng : &a->rng, actions);
}

MRL_DEF mrl_result mrl_ppo_value(mrl_ppo *a, const float *obs, int n, const float *episode_start,
                                 const float *state, float *values) {
  mrl_actor_critic ac = mrl__ppo_ac(a);
  return mrl_actor_critic_value(&ac, &a->act_graph, a->cfg.normalize_obs ? &a->runner : NULL, obs,
                                n, episode_start, state, values);
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

/* PPO's own state beyond the runner: its RNG and iteration count (then
 * PopArt's statistics and the curriculum's level, each when on). */
static int mrl__ppo_extras(const mrl_ppo *a, mrl_checkpoint_extra *x) {
  const char *const names[3] = {"__ppo.curriculum_length", "__ppo.curriculum_level",
                                "__ppo.level_stats"};
  int k = 2;
  x[0].name = "__ppo.rng";
  x[0].dtype = "U64";
  x[0].data = &a->rng;
  x[0].count = sizeof a->rng / sizeof(uint64_t);
  x[1].name = "__ppo.iterations";
  x[1].dtype = "I64";
  x[1].data = &a->iterations;
  x[1].count = 1;
  if (a->cfg.popart) {
    x[k++] = mrl_checkpoint_extra_of("__ppo.popart_mu", "F64", a->popart.mu, 1);
    x[k++] = mrl_checkpoint_extra_of("__ppo.popart_nu", "F64", a->popart.nu, 1);
  }
  if (a->cfg.curriculum) k += mrl_length_curriculum_extras(&a->curriculum, names, x + k);
  return k;
}

MRL_DEF mrl_result mrl_ppo_save(const mrl_ppo *a, const char *path, const mrl_vecenv *env) {
  char config[4096];
  mrl_checkpoint_extra x[7];
  int n = mrl__ppo_extras(a, x);
  mrl_ppo_config_json(&a->cfg, config, sizeof config);
  return mrl_agent_save(path, &a->params, "ppo", config, &a->runner, env, x, n);
}

MRL_DEF mrl_result mrl_ppo_load(mrl_ppo *a, const char *path, mrl_vecenv *env) {
  char config[4096];
  mrl_checkpoint_extra x[7];
  int n = mrl__ppo_extras(a, x);
  mrl_result r;
  mrl_ppo_config_json(&a->cfg, config, sizeof config);
  if (!a->cfg.curriculum)
    return mrl_agent_load(path, &a->params, "ppo", config, &a->runner, env, x, n, a->error,
                          sizeof a->error);
  /* as REINFORCE: the saved environments ran at the saved level, so env is
   * rebuilt there (with the seed the curriculum gave it) before they are restored */
  r = mrl_agent_load(path, &a->params, "ppo", config, &a->runner, NULL, x, n, a->error,
                     sizeof a->error);
  if (r == MRL_OK) r = mrl__ppo_level_rollout(a); /* the saved level's rollout length */
  if (r != MRL_OK || !env) return r;
  if ((r = mrl_length_curriculum_rebuild(&a->curriculum, env,
                                         env->seed + 0x9e3779b9ULL * (uint64_t)a->curriculum.level,
                                         &a->runner, "ppo", a->error, sizeof a->error)) != MRL_OK)
    return r;
  return mrl_agent_load(path, &a->params, "ppo", config, &a->runner, env, x, n, a->error,
                        sizeof a->error);
}

/* ---- DQN >>dqn ----
 * Mnih et al. (2015) with CleanRL's dqn.py defaults and the Rainbow
 * components as options (double Q, dueling, n-step, prioritised replay,
 * C51); the paper, defaults and deviations are listed at the declarations. */

MRL_DEF mrl_dqn_config mrl_dqn_config_default(void) {
  mrl_dqn_config c;
  memset(&c, 0, sizeof c);
  c.seed = 1;
  c.learning_rate = 2.5e-4f;
  c.buffer_size = 10000;
  c.gamma = 0.99f;
  c.tau = 1.0f;
  c.target_network_frequency = 500;
  c.batch_size = 128;
  c.start_e = 1.0f;
  c.end_e = 0.05f;
  c.exploration_fraction = 0.5f;
  c.learning_starts = 10000;
  c.train_frequency = 10;
  c.total_steps = 0;
  c.adam_eps = 1e-8f;
  c.max_grad_norm = 0.0f;
  c.huber_delta = 0.0f;
  c.net = mrl_tower_config_default();
  c.net.encoder_sizes[0] = 120;
  c.net.encoder_sizes[1] = 84;
  c.net.num_encoder_layers = 2;
  c.net.activation = MRL_ACT_RELU;
  c.double_q = 0;
  c.dueling = 0;
  c.dueling_hidden = 0;
  c.n_step = 1;
  c.prioritized = 0;
  c.per_alpha = 0.6f;
  c.per_beta = 0.4f;
  c.per_eps = 1e-6f;
  c.c51 = 0;
  c.n_atoms = 101;
  c.v_min = -100.0f;
  c.v_max = 100.0f;
  c.save_replay = 0;
  c.progress_interval = 1000;
  return c;
}

MRL_DEF mrl_dqn_config mrl_dqn_config_c51(void) {
  mrl_dqn_config c = mrl_dqn_config_default();
  c.c51 = 1;
  c.adam_eps = 0.01f / 128.0f; /* c51.py: eps = 0.01 / batch_size */
  return c;
}

MRL_DEF int mrl_dqn_config_json(const mrl_dqn_config *c, char *buf, size_t size) {
  const mrl_tower_config *n = &c->net;
  char enc[96] = "", head[96] = "", f[15][24], core[1024];
  int i, k = 0;
  mrl_core_config_json(&n->core, core, sizeof core);
  for (i = 0; i < n->num_encoder_layers && i < MRL_TOWER_MAX_LAYERS; i++)
    k += snprintf(enc + k, sizeof enc - (size_t)k, "%s%d", i ? "," : "", n->encoder_sizes[i]);
  for (k = 0, i = 0; i < n->num_head_layers && i < MRL_TOWER_MAX_LAYERS; i++)
    k += snprintf(head + k, sizeof head - (size_t)k, "%s%d", i ? "," : "", n->head_sizes[i]);
  return snprintf(
      buf, size,
      "{\"seed\":%llu,\"learning_rate\":%s,\"buffer_size\":%d,\"gamma\":%s,\"tau\":%s,"
      "\"target_network_frequency\":%d,\"batch_size\":%d,\"start_e\":%s,\"end_e\":%s,"
      "\"exploration_fraction\":%s,\"learning_starts\":%lld,\"train_frequency\":%d,"
      "\"total_steps\":%lld,\"adam_eps\":%s,\"max_grad_norm\":%s,\"huber_delta\":%s,"
      "\"encoder_sizes\":[%s],\"core\":%s,\"head_sizes\":[%s],\"activation\":%d,\"use_conv\":%d,"
      "\"double_q\":%d,\"dueling\":%d,\"dueling_hidden\":%d,\"n_step\":%d,\"prioritized\":%d,"
      "\"per_alpha\":%s,\"per_beta\":%s,\"per_eps\":%s,\"c51\":%d,\"n_atoms\":%d,\"v_min\":%s,"
      "\"v_max\":%s,\"save_replay\":%d,\"progress_interval\":%d}",
      (unsigned long long)c->seed, mrl__float_text(c->learning_rate, f[0], 24), c->buffer_size,
      mrl__float_text(c->gamma, f[1], 24), mrl__float_text(c->tau, f[2], 24),
      c->target_network_frequency, c->batch_size, mrl__float_text(c->start_e, f[3], 24),
      mrl__float_text(c->end_e, f[4], 24), mrl__float_text(c->exploration_fraction, f[5], 24),
      c->learning_starts, c->train_frequency, c->total_steps,
      mrl__float_text(c->adam_eps, f[6], 24), mrl__float_text(c->max_grad_norm, f[7], 24),
      mrl__float_text(c->huber_delta, f[8], 24), enc, core, head, (int)n->activation, n->use_conv,
      c->double_q, c->dueling, c->dueling_hidden, c->n_step, c->prioritized,
      mrl__float_text(c->per_alpha, f[9], 24), mrl__float_text(c->per_beta, f[10], 24),
      mrl__float_text(c->per_eps, f[11], 24), c->c51, c->n_atoms,
      mrl__float_text(c->v_min, f[12], 24), mrl__float_text(c->v_max, f[13], 24), c->save_replay,
      c->progress_interval);
}

/* Names the first field of a DQN config that cannot work (err), or 0. */
static int mrl__dqn_check_config(const mrl_dqn_config *c, const mrl_vecenv *env, char *err,
                                 size_t n) {
  const char *const names[13] = {"learning_rate", "gamma",         "tau",
                                 "start_e",       "end_e",         "exploration_fraction",
                                 "adam_eps",      "max_grad_norm", "huber_delta",
                                 "per_alpha",     "per_beta",      "per_eps",
                                 "v_min"};
  const float *f[13];
  int i;
  f[0] = &c->learning_rate, f[1] = &c->gamma, f[2] = &c->tau, f[3] = &c->start_e;
  f[4] = &c->end_e, f[5] = &c->exploration_fraction, f[6] = &c->adam_eps;
  f[7] = &c->max_grad_norm, f[8] = &c->huber_delta, f[9] = &c->per_alpha, f[10] = &c->per_beta;
  f[11] = &c->per_eps, f[12] = &c->v_min;
  for (i = 0; i < 13; i++)
    if (!mrl__finite(*f[i])) {
      mrl__say(err, n, "mrl_dqn_config.%s %g must be finite", names[i], *f[i]);
      return 1;
    }
#define MRL__REJECT(cond, ...)                                                                     \
  do {                                                                                             \
    if (cond) {                                                                                    \
      mrl__say(err, n, __VA_ARGS__);                                                               \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)
  MRL__REJECT(env->num_actions < 1,
              "mrl_dqn: DQN needs discrete actions (this env's actions are a box of %d floats)",
              env->action_dim);
  MRL__REJECT(c->net.core.kind != MRL_CORE_NONE,
              "mrl_dqn_config.net.core: DQN's Q-network is feedforward (core kind %d given); a "
              "recurrent Q-network is DRQN's or R2D2's",
              (int)c->net.core.kind);
  MRL__REJECT(c->learning_rate < 0.0f, "mrl_dqn_config.learning_rate %g must be >= 0",
              c->learning_rate);
  MRL__REJECT(c->buffer_size < 1, "mrl_dqn_config.buffer_size %d must be >= 1", c->buffer_size);
  MRL__REJECT(c->gamma < 0.0f || c->gamma > 1.0f, "mrl_dqn_config.gamma %g must be in [0, 1]",
              c->gamma);
  MRL__REJECT(c->tau <= 0.0f || c->tau > 1.0f, "mrl_dqn_config.tau %g must be in (0, 1]", c->tau);
  MRL__REJECT(c->target_network_frequency < 1,
              "mrl_dqn_config.target_network_frequency %d must be >= 1",
              c->target_network_frequency);
  MRL__REJECT(c->batch_size < 1, "mrl_dqn_config.batch_size %d must be >= 1", c->batch_size);
  MRL__REJECT(c->start_e < 0.0f || c->start_e > 1.0f || c->end_e < 0.0f || c->end_e > 1.0f,
              "mrl_dqn_config.start_e %g and end_e %g must be in [0, 1]", c->start_e, c->end_e);
  MRL__REJECT(c->exploration_fraction < 0.0f, "mrl_dqn_config.exploration_fraction %g must be >= 0",
              c->exploration_fraction);
  MRL__REJECT(c->learning_starts < 0, "mrl_dqn_config.learning_starts %lld must be >= 0",
              c->learning_starts);
  MRL__REJECT(c->train_frequency < 1, "mrl_dqn_config.train_frequency %d must be >= 1",
              c->train_frequency);
  MRL__REJECT(c->total_steps < 0, "mrl_dqn_config.total_steps %lld must be >= 0", c->total_steps);
  MRL__REJECT(c->adam_eps <= 0.0f, "mrl_dqn_config.adam_eps %g must be > 0", c->adam_eps);
  MRL__REJECT(c->max_grad_norm < 0.0f, "mrl_dqn_config.max_grad_norm %g must be >= 0",
              c->max_grad_norm);
  MRL__REJECT(c->huber_delta < 0.0f, "mrl_dqn_config.huber_delta %g must be >= 0", c->huber_delta);
  MRL__REJECT(c->dueling_hidden < 0, "mrl_dqn_config.dueling_hidden %d must be >= 0",
              c->dueling_hidden);
  MRL__REJECT(c->n_step < 1, "mrl_dqn_config.n_step %d must be >= 1", c->n_step);
  MRL__REJECT(c->per_alpha < 0.0f, "mrl_dqn_config.per_alpha %g must be >= 0", c->per_alpha);
  MRL__REJECT(c->per_beta < 0.0f || c->per_beta > 1.0f,
              "mrl_dqn_config.per_beta %g must be in [0, 1]", c->per_beta);
  MRL__REJECT(c->per_eps <= 0.0f, "mrl_dqn_config.per_eps %g must be > 0", c->per_eps);
  MRL__REJECT(c->c51 && c->dueling,
              "mrl_dqn_config.dueling 1 with c51 1: the dueling head combines Q-values, not "
              "C51's distributions");
  MRL__REJECT(c->c51 && c->n_atoms < 2, "mrl_dqn_config.n_atoms %d must be >= 2", c->n_atoms);
  MRL__REJECT(c->c51 && !(mrl__finite(c->v_max) && c->v_max > c->v_min),
              "mrl_dqn_config.v_max %g must be finite and > v_min %g", c->v_max, c->v_min);
  MRL__REJECT(c->progress_interval < 1, "mrl_dqn_config.progress_interval %d must be >= 1",
              c->progress_interval);
#undef MRL__REJECT
  return 0;
}

/* The Q-network's parts into p: tower, then the output head of the config. */
static mrl_result mrl__dqn_net_init(mrl_dqn *a, mrl_dqn_net *net, mrl_params *p) {
  const mrl_dqn_config *c = &a->cfg;
  int A = a->num_actions, F;
  mrl_result r;
  r = mrl_tower_init(&net->tower, p, "q", a->obs_dim, &c->net, 0, a->error, sizeof a->error);
  if (r != MRL_OK) return r;
  F = net->tower.output_dim;
  if (c->c51)
    mrl_c51_head_init(&net->c51, p, "q.c51", F, A, c->n_atoms, c->v_min, c->v_max,
                      mrl_init_default());
  else if (c->dueling)
    mrl_dueling_head_init(&net->dueling, p, "q.dueling", F, c->dueling_hidden, A,
                          mrl_init_default());
  else
    mrl_linear_layer_init(&net->out, p, "q.out", F, A, mrl_init_default());
  return MRL_OK;
}

MRL_DEF mrl_result mrl_dqn_init(mrl_dqn *a, const mrl_dqn_config *cfg, const mrl_vecenv *env) {
  mrl_runner_config rc;
  mrl_replay_config pc;
  mrl_result r;
  size_t M, B, W, N;
  memset(a, 0, sizeof *a);
  if (!cfg || !env || env->num_envs < 1) {
    mrl__say(a->error, sizeof a->error, "mrl_dqn_init: needs a config and a vector env");
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (mrl__dqn_check_config(cfg, env, a->error, sizeof a->error)) return MRL_ERR_INVALID_ARGUMENT;
  a->cfg = *cfg;
  a->obs_dim = env->obs_dim;
  a->num_envs = env->num_envs;
  a->num_actions = env->num_actions;
  mrl_params_init(&a->params);
  mrl_params_init(&a->target_params);
  if ((r = mrl__dqn_net_init(a, &a->net, &a->params)) != MRL_OK ||
      (r = mrl__dqn_net_init(a, &a->target, &a->target_params)) != MRL_OK)
    goto fail;
  if ((r = mrl_params_finalize(&a->params, cfg->seed)) != MRL_OK ||
      (r = mrl_params_finalize(&a->target_params, cfg->seed)) != MRL_OK) {
    mrl__say(a->error, sizeof a->error, "mrl_dqn_init: %s",
             a->params.message[0] ? a->params.message : a->target_params.message);
    goto fail;
  }
  mrl_params_copy(&a->target_params, &a->params); /* target_network.load_state_dict */
  rc = mrl_runner_config_default();
  rc.gamma = cfg->gamma;
  pc = mrl_replay_config_default(cfg->buffer_size, a->num_envs, a->obs_dim, 1);
  pc.n_step = cfg->n_step;
  pc.gamma = cfg->gamma;
  pc.prioritized = cfg->prioritized;
  pc.alpha = cfg->per_alpha;
  pc.priority_eps = cfg->per_eps;
  pc.seed = cfg->seed;
  M = (size_t)cfg->batch_size;
  B = (size_t)a->num_envs;
  N = cfg->c51 ? (size_t)cfg->n_atoms : 1;
  W = (size_t)a->num_actions * N;
  if ((r = mrl_runner_init(&a->runner, env, 0, &rc, a->error, sizeof a->error)) != MRL_OK ||
      (r = mrl_replay_init(&a->replay, &pc, a->error, sizeof a->error)) != MRL_OK ||
      (r = mrl_graph_init(&a->graph, (size_t)1 << 22)) != MRL_OK ||
      (r = mrl_graph_init(&a->act_graph, (size_t)1 << 16)) != MRL_OK)
    goto fail;
  a->rng = mrl_rng_make(cfg->seed ^ 0x9e3779b97f4a7c15ULL);
  a->epsilon = cfg->start_e;
  a->mb_indices = (int *)MRL_MALLOC(sizeof(int) * M * 2);
  a->mb_obs = (float *)MRL_MALLOC(sizeof(float) * M * (size_t)a->obs_dim);
  a->mb_next = (float *)MRL_MALLOC(sizeof(float) * M * (size_t)a->obs_dim);
  a->mb_scalars = (float *)MRL_MALLOC(sizeof(float) * M * 5);
  /* probs [M, W], q [M, A], chosen and target [M, atoms], Q(s, a) [M], support [atoms] */
  a->mb_q = (float *)MRL_MALLOC(sizeof(float) * (M * (W + (size_t)a->num_actions + 2 * N + 1) + N));
  a->step_obs = (float *)MRL_MALLOC(sizeof(float) * B * (size_t)a->obs_dim);
  a->step_actions = (float *)MRL_MALLOC(sizeof(float) * B);
  if (!a->mb_indices || !a->mb_obs || !a->mb_next || !a->mb_scalars || !a->mb_q || !a->step_obs ||
      !a->step_actions) {
    r = MRL_ERR_OUT_OF_MEMORY;
    goto fail;
  }
  a->mb_act = a->mb_indices + M;
  return MRL_OK;
fail:
  if (r == MRL_ERR_OUT_OF_MEMORY && !a->error[0])
    mrl__say(a->error, sizeof a->error, "mrl_dqn_init: out of memory");
  {
    char keep[MRL_ERROR_SIZE];
    memcpy(keep, a->error, sizeof keep);
    mrl_dqn_free(a);
    memcpy(a->error, keep, sizeof keep);
  }
  return r;
}

MRL_DEF void mrl_dqn_free(mrl_dqn *a) {
  mrl_tower_free(&a->net.tower);
  mrl_tower_free(&a->target.tower);
  mrl_params_free(&a->params);
  mrl_params_free(&a->target_params);
  mrl_graph_free(&a->graph);
  mrl_graph_free(&a->act_graph);
  mrl_runner_free(&a->runner);
  mrl_replay_free(&a->replay);
  MRL_FREE(a->mb_indices);
  MRL_FREE(a->mb_obs);
  MRL_FREE(a->mb_next);
  MRL_FREE(a->mb_scalars);
  MRL_FREE(a->mb_q);
  MRL_FREE(a->step_obs);
  MRL_FREE(a->step_actions);
  memset(a, 0, sizeof *a);
}

MRL_DEF int mrl_dqn_state_dim(const mrl_dqn *a) {
  (void)a;
  return 0;
}

/* The network's output for x [n, obs_dim]: Q [n, A], or C51's
 * log-probabilities [n, A * atoms]. */
static mrl_tensor *mrl__dqn_forward(const mrl_dqn *a, const mrl_dqn_net *net, mrl_graph *g,
                                    mrl_tensor *x) {
  int n = x ? x->shape[0] : 0;
  mrl_tensor *h = mrl_tower_forward(&net->tower, g, x, 1, n, NULL, NULL, NULL, 0);
  if (a->cfg.c51) return mrl_c51_head_forward(&net->c51, g, h);
  if (a->cfg.dueling) return mrl_dueling_head_forward(&net->dueling, g, h);
  return mrl_linear_layer_forward(&net->out, g, h);
}

/* Q [n, A] from a forward's output (C51: the expectation over the atoms). */
static void mrl__dqn_q_of(const mrl_dqn *a, const mrl_dqn_net *net, const float *out, int n,
                          float *q) {
  if (a->cfg.c51)
    mrl_c51_q_values(&net->c51, out, n, q);
  else
    memcpy(q, out, sizeof(float) * (size_t)n * a->num_actions);
}

/* C51 in the update: q [n, A] = sum_j p_j z_j from log-probabilities lp
 * [n, A*N], with p = exp(lp) kept in probs [n, A*N] (one expf per atom). */
static void mrl__dqn_c51_q(const float *lp, int n, int A, int N, const float *z, float *probs,
                           float *q) {
  size_t i, W = (size_t)A * N;
  int a, j;
  for (i = 0; i < (size_t)n * W; i++) probs[i] = expf(lp[i]);
  for (i = 0; i < (size_t)n; i++)
    for (a = 0; a < A; a++) {
      const float *p = probs + i * W + (size_t)a * N;
      double s = 0.0;
      for (j = 0; j < N; j++) s += (double)p[j] * z[j];
      q[i * A + a] = (float)s;
    }
}

static int mrl__dqn_argmax(const float *q, int A) {
  int j, best = 0;
  for (j = 1; j < A; j++)
    if (q[j] > q[best]) best = j;
  return best;
}

MRL_DEF mrl_result mrl_dqn_update(mrl_dqn *a, const float *obs, const float *actions,
                                  const float *rewards, const float *next_obs,
                                  const float *discounts, const float *weights, int n,
                                  float *td_errors, mrl_dqn_update_stats *stats) {
  const mrl_dqn_config *c = &a->cfg;
  mrl_graph *g = &a->graph;
  int A = a->num_actions, N = c->c51 ? c->n_atoms : 1, i, shape[1];
  size_t W = (size_t)A * (size_t)N;
  float *probs = a->mb_q, *sel_q = probs + (size_t)n * W, *chosen = sel_q + (size_t)n * A;
  float *target = chosen + (size_t)n * N, *q_sa = target + (size_t)n * N, *z = q_sa + n;
  float *td = a->mb_scalars + (size_t)4 * c->batch_size;
  double q_mean = 0.0;
  mrl_tensor *xn, *out_t, *out_o = NULL, *x, *out, *per, *loss;
  mrl_adam_config adam;
  if (n < 1 || n > c->batch_size || !obs || !actions || !rewards || !next_obs || !discounts)
    return MRL_ERR_INVALID_ARGUMENT;
  for (i = 0; i < n; i++) {
    float v = actions[i];
    if (!(v >= 0.0f && v < (float)A) || v != (float)(int)v) {
      mrl__say(a->error, sizeof a->error, "mrl_dqn_update: action %g of row %d is not in 0..%d", v,
               i, A - 1);
      return MRL_ERR_INVALID_ARGUMENT;
    }
    a->mb_act[i] = (int)v;
  }
  mrl_graph_reset(g);
  /* targets, without gradients: the target network values the next state's
   * action, chosen by the online network (double Q) or by itself */
  mrl_graph_set_no_grad(g, 1);
  xn = mrl_tensor_from2(g, next_obs, n, a->obs_dim);
  out_t = mrl__dqn_forward(a, &a->target, g, xn);
  if (c->double_q) out_o = mrl__dqn_forward(a, &a->net, g, xn);
  if (!out_t || (c->double_q && !out_o)) goto oom;
  if (!c->c51) {
    mrl_q_targets(rewards, discounts, out_o ? out_o->data : NULL, out_t->data, n, A, 0.0f, target);
  } else {
    /* C51: the next action's distribution, projected onto the support */
    mrl_c51_support(c->v_min, c->v_max, N, z);
    mrl__dqn_c51_q(out_o ? out_o->data : out_t->data, n, A, N, z, probs, sel_q);
    for (i = 0; i < n; i++) {
      int b = mrl__dqn_argmax(sel_q + (size_t)i * A, A), j;
      const float *lp = out_t->data + (size_t)i * W + (size_t)b * N;
      const float *p = probs + (size_t)i * W + (size_t)b * N;
      for (j = 0; j < N; j++) chosen[(size_t)i * N + j] = out_o ? expf(lp[j]) : p[j];
    }
    mrl_c51_project(chosen, rewards, discounts, n, N, c->v_min, c->v_max, target);
  }
  /* the online network's loss on the taken actions, importance-weighted */
  mrl_graph_set_no_grad(g, 0);
  x = mrl_tensor_from2(g, obs, n, a->obs_dim);
  out = mrl__dqn_forward(a, &a->net, g, x);
  if (!out) goto oom;
  shape[0] = n;
  if (!c->c51) {
    mrl_tensor *qa = mrl_gather_rows(g, out, a->mb_act);
    mrl_tensor *t = mrl_tensor_from(g, target, 1, shape);
    per = c->huber_delta > 0.0f ? mrl_huber_loss(g, qa, t, c->huber_delta, MRL_LOSS_NONE)
                                : mrl_mse_loss(g, qa, t, MRL_LOSS_NONE);
    if (!qa) goto oom;
    for (i = 0; i < n; i++) {
      q_sa[i] = qa->data[i];
      td[i] = qa->data[i] - target[i];
    }
  } else {
    per = mrl_c51_loss(&a->net.c51, g, out, a->mb_act, target);
    if (!per) goto oom;
    for (i = 0; i < n; i++) { /* the expectation at the taken action only */
      const float *lp = out->data + (size_t)i * W + (size_t)a->mb_act[i] * N;
      double e = 0.0;
      int j;
      for (j = 0; j < N; j++) e += (double)expf(lp[j]) * z[j];
      q_sa[i] = (float)e;
      td[i] = per->data[i];
    }
  }
  if (weights)
    loss = mrl_mean(g, mrl_mul(g, per, mrl_tensor_from(g, weights, 1, shape)));
  else
    loss = mrl_mean(g, per);
  if (!loss) goto oom;
  mrl_params_zero_grad(&a->params);
  mrl_backward(g, loss);
  if (!mrl_update_guard(&a->params, loss->data[0], c->max_grad_norm)) {
    mrl__say(a->error, sizeof a->error,
             "dqn: non-finite loss (%g) or gradient at update %lld: update not applied",
             loss->data[0], a->updates + 1);
    return MRL_ERR_NON_FINITE;
  }
  adam = mrl_adam_config_default();
  adam.lr = c->learning_rate;
  adam.eps = c->adam_eps;
  mrl_adam_step(&a->params, &adam);
  a->updates++;
  for (i = 0; i < n; i++) q_mean += q_sa[i];
  if (td_errors) memcpy(td_errors, td, sizeof(float) * (size_t)n);
  if (stats) {
    stats->loss = loss->data[0];
    stats->q_values = (float)(q_mean / n);
  }
  return MRL_OK;
oom:
  mrl__say(a->error, sizeof a->error, "dqn: out of memory in the update");
  return MRL_ERR_OUT_OF_MEMORY;
}

/* One update on a sampled batch; its TD errors become the new priorities. */
static mrl_result mrl__dqn_train_step(mrl_dqn *a, float beta, mrl_dqn_update_stats *st) {
  int M = a->cfg.batch_size;
  float *actions = a->mb_scalars, *rewards = actions + M, *discounts = rewards + M;
  float *weights = discounts + M, *td = weights + M;
  mrl_result r;
  if ((r = mrl_replay_sample(&a->replay, M, beta, a->mb_indices, weights)) != MRL_OK) return r;
  mrl_replay_gather(&a->replay, a->mb_indices, M, a->mb_obs, actions, rewards, a->mb_next,
                    discounts);
  r = mrl_dqn_update(a, a->mb_obs, actions, rewards, a->mb_next, discounts,
                     a->cfg.prioritized ? weights : NULL, M, td, st);
  if (r == MRL_OK) mrl_replay_update_priorities(&a->replay, a->mb_indices, td, M);
  return r;
}

MRL_DEF mrl_result mrl_dqn_train(mrl_dqn *a, mrl_vecenv *env, long long env_steps,
                                 mrl_progress_fn progress, void *user) {
  const mrl_dqn_config *c = &a->cfg;
  int B = a->num_envs, b;
  long long vsteps, v, span, steps0 = a->runner.env_steps, next_report, s;
  double t0 = mrl_wall_seconds(), loss_sum = 0.0, q_sum = 0.0;
  long long loss_count = 0;
  float beta = c->per_beta;
  mrl_result r;
  if (!env || env->num_envs != a->num_envs || env->obs_dim != a->obs_dim ||
      env->num_actions != a->num_actions) {
    mrl__say(a->error, sizeof a->error, "mrl_dqn_train: not the vector env the agent was made for");
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (env_steps < 0) {
    mrl__say(a->error, sizeof a->error, "mrl_dqn_train: env_steps %lld is negative", env_steps);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  vsteps = env_steps / B;
  if (vsteps == 0) return MRL_OK;
  /* schedules: over this call (CleanRL), or over the agent's life */
  span = c->total_steps > 0 ? c->total_steps : vsteps * B;
  if (!a->runner.started || !env->ready) mrl_replay_drop_pending(&a->replay); /* new episodes */
  if ((r = mrl_runner_start(&a->runner, env)) != MRL_OK) return r;
  next_report = steps0 + c->progress_interval;
  for (v = 0; v < vsteps; v++) {
    long long step = a->runner.env_steps; /* CleanRL's global_step */
    long long sched = c->total_steps > 0 ? step : step - steps0;
    mrl_dqn_update_stats st;
    /* schedule */
    a->epsilon = mrl_lr_linear(c->start_e, c->end_e, sched,
                               (long long)((double)c->exploration_fraction * (double)span));
    if (c->prioritized) beta = mrl_lr_linear(c->per_beta, 1.0f, sched, span);
    /* collect */
    memcpy(a->step_obs, a->runner.obs, sizeof(float) * (size_t)B * a->obs_dim);
    if ((r = mrl_dqn_act(a, a->step_obs, B, NULL, NULL, 0, &a->rng, a->step_actions)) != MRL_OK)
      return r;
    if ((r = mrl_runner_step(&a->runner, env, a->step_actions)) != MRL_OK) return r;
    mrl_replay_add(&a->replay, a->step_obs, a->step_actions, a->runner.rewards, a->runner.obs,
                   a->runner.final_obs, a->runner.terminated, a->runner.truncated);
    /* update (and the target network), at CleanRL's global steps */
    for (b = 0; b < B; b++) {
      s = step + b;
      if (s <= c->learning_starts) continue;
      if (s % c->train_frequency == 0 && a->replay.size > 0) {
        if ((r = mrl__dqn_train_step(a, beta, &st)) != MRL_OK) return r;
        loss_sum += st.loss;
        q_sum += st.q_values;
        loss_count++;
      }
      if (s % c->target_network_frequency == 0) {
        if (c->tau >= 1.0f)
          mrl_params_copy(&a->target_params, &a->params);
        else
          mrl_params_polyak(&a->target_params, &a->params, c->tau);
      }
    }
    /* report */
    if (progress && (a->runner.env_steps >= next_report || v == vsteps - 1)) {
      mrl_train_progress p;
      memset(&p, 0, sizeof p);
      while (next_report <= a->runner.env_steps) next_report += c->progress_interval;
      p.algo = c->c51 ? "c51" : "dqn";
      p.env_id = mrl_env_id(env->envs[0]);
      p.iteration = (int)((a->runner.env_steps - steps0) / c->progress_interval);
      p.num_iterations = (int)(vsteps * B / c->progress_interval);
      p.env_steps = a->runner.env_steps;
      p.seconds = mrl_wall_seconds() - t0;
      p.steps_per_second =
          p.seconds > 0.0 ? (double)(a->runner.env_steps - steps0) / p.seconds : 0.0;
      p.episodes = a->runner.stats.total_episodes;
      p.mean_return = mrl_episode_stats_mean_return(&a->runner.stats);
      p.mean_length = mrl_episode_stats_mean_length(&a->runner.stats);
      p.success_rate = mrl_episode_stats_success_rate(&a->runner.stats);
      p.learning_rate = c->learning_rate;
      mrl_progress_set(&p, "td_loss", loss_count ? (float)(loss_sum / loss_count) : 0.0f);
      mrl_progress_set(&p, "q_values", loss_count ? (float)(q_sum / loss_count) : 0.0f);
      mrl_progress_set(&p, "epsilon", a->epsilon);
      if (c->prioritized) mrl_progress_set(&p, "beta", beta);
      mrl_progress_set(&p, "updates", (float)a->updates);
      mrl_progress_set(&p, "buffer", (float)a->replay.size);
      loss_sum = q_sum = 0.0;
      loss_count = 0;
      if (progress(&p, user)) break;
    }
  }
  return MRL_OK;
}

MRL_DEF mrl_result mrl_dqn_q_values(mrl_dqn *a, const float *obs, int n, float *q) {
  mrl_graph *g = &a->act_graph;
  mrl_tensor *out;
  if (n < 1 || !obs || !q) return MRL_ERR_INVALID_ARGUMENT;
  mrl_graph_reset(g);
  mrl_graph_set_no_grad(g, 1);
  out = mrl__dqn_forward(a, &a->net, g, mrl_tensor_from2(g, obs, n, a->obs_dim));
  if (!out) return mrl_graph_status(g) != MRL_OK ? mrl_graph_status(g) : MRL_ERR_OUT_OF_MEMORY;
  mrl__dqn_q_of(a, &a->net, out->data, n, q);
  mrl_graph_reset(g);
  return MRL_OK;
}

MRL_DEF mrl_result mrl_dqn_act(mrl_dqn *a, const float *obs, int n, const float *episode_start,
                               float *state, int greedy, mrl_rng *rng, float *actions) {
  mrl_graph *g = &a->act_graph;
  mrl_tensor *out;
  float *q;
  (void)episode_start;
  (void)state;
  if (n < 1 || !obs || !actions) return MRL_ERR_INVALID_ARGUMENT;
  mrl_graph_reset(g);
  mrl_graph_set_no_grad(g, 1);
  out = mrl__dqn_forward(a, &a->net, g, mrl_tensor_from2(g, obs, n, a->obs_dim));
  q = out && a->cfg.c51 ? (float *)mrl_graph_alloc(g, sizeof(float) * (size_t)n * a->num_actions)
                        : (out ? out->data : NULL);
  if (!q) return mrl_graph_status(g) != MRL_OK ? mrl_graph_status(g) : MRL_ERR_OUT_OF_MEMORY;
  if (a->cfg.c51) mrl__dqn_q_of(a, &a->net, out->data, n, q);
  mrl_epsilon_greedy(q, n, a->num_actions, greedy ? 0.0f : a->epsilon,
                     greedy ? NULL : (rng ? rng : &a->rng), actions);
  /* fold an overflow into the arena now: later calls of this size allocate nothing */
  mrl_graph_reset(g);
  return MRL_OK;
}

static mrl_result mrl__dqn_act_fn(void *agent, const float *obs, int n, const float *episode_start,
                                  float *state, int greedy, mrl_rng *rng, float *actions) {
  return mrl_dqn_act((mrl_dqn *)agent, obs, n, episode_start, state, greedy, rng, actions);
}

MRL_DEF mrl_result mrl_dqn_evaluate(mrl_dqn *a, mrl_vecenv *env, int episodes, int greedy,
                                    mrl_episode_stats *stats) {
  mrl_rng rng = mrl_rng_make(a->cfg.seed ^ 0x5851f42d4c957f2dULL);
  if (!env || env->obs_dim != a->obs_dim || env->num_actions != a->num_actions)
    return MRL_ERR_INVALID_ARGUMENT;
  return mrl_evaluate(mrl__dqn_act_fn, a, 0, env, episodes, greedy, &rng, stats);
}

/* DQN's own state beyond the runner: the target network, RNG, counters and,
 * with save_replay, the replay buffer. */
#define MRL__DQN_EXTRAS (4 + MRL_REPLAY_EXTRAS)
static int mrl__dqn_extras(const mrl_dqn *a, mrl_checkpoint_extra *x) {
  int n = 0;
  x[n].name = "__dqn.target";
  x[n].dtype = "F32";
  x[n].data = a->target_params.values;
  x[n++].count = a->target_params.total;
  x[n].name = "__dqn.rng";
  x[n].dtype = "U64";
  x[n].data = &a->rng;
  x[n++].count = sizeof a->rng / sizeof(uint64_t);
  x[n].name = "__dqn.updates";
  x[n].dtype = "I64";
  x[n].data = &a->updates;
  x[n++].count = 1;
  x[n].name = "__dqn.epsilon";
  x[n].dtype = "F32";
  x[n].data = &a->epsilon;
  x[n++].count = 1;
  if (a->cfg.save_replay) n += mrl_replay_extras(&a->replay, x + n);
  return n;
}

MRL_DEF mrl_result mrl_dqn_save(const mrl_dqn *a, const char *path, const mrl_vecenv *env) {
  char config[4096];
  mrl_checkpoint_extra x[MRL__DQN_EXTRAS];
  int n = mrl__dqn_extras(a, x);
  mrl_dqn_config_json(&a->cfg, config, sizeof config);
  return mrl_agent_save(path, &a->params, "dqn", config, &a->runner, env, x, n);
}

MRL_DEF mrl_result mrl_dqn_load(mrl_dqn *a, const char *path, mrl_vecenv *env) {
  char config[4096];
  mrl_checkpoint_extra x[MRL__DQN_EXTRAS];
  int n = mrl__dqn_extras(a, x);
  mrl_result r;
  mrl_dqn_config_json(&a->cfg, config, sizeof config);
  r = mrl_agent_load(path, &a->params, "dqn", config, &a->runner, env, x, n, a->error,
                     sizeof a->error);
  if (r == MRL_OK && a->cfg.save_replay) mrl_replay_loaded(&a->replay);
  return r;
}

/* ---- REINFORCE >>reinforce ---- */

MRL_DEF mrl_reinforce_config mrl_reinforce_config_default(void) {
  mrl_reinforce_config c;
  memset(&c, 0, sizeof c);
  c.seed = 1;
  c.num_steps = 100;
  c.bptt_len = 0;
  c.k_steps = 0;
  c.use_lambda = 0;
  c.lambda = 0.95f;
  c.gamma = 0.99f;
  c.learning_rate = 1e-3f;
  c.adam_eps = 1e-5f;
  c.ent_coef = 0.0f;
  c.vf_coef = 0.5f;
  c.max_grad_norm = 1.0f;
  c.norm_adv = 0;
  c.net = mrl_tower_config_default();
  c.value_net = mrl_tower_config_default();
  c.orthogonal_init = 1;
  c.normalize_obs = 0;
  c.curriculum = 0;
  c.curriculum_start = 5;
  c.curriculum_growth = 2.0f;
  c.curriculum_threshold = 0.9f;
  c.curriculum_window = 100;
  return c;
}

/* One tower's config as JSON: encoder and head sizes, core, activation. */
static int mrl__reinforce_tower_json(const mrl_tower_config *n, char *buf, size_t size) {
  char enc[96], head[96], core[1024];
  mrl__tower_config_json(n, enc, head, core);
  return snprintf(buf, size,
                  "{\"encoder_sizes\":[%s],\"core\":%s,\"head_sizes\":[%s],\"activation\":%d,"
                  "\"use_conv\":%d}",
                  enc, core, head, (int)n->activation, n->use_conv);
}

MRL_DEF int mrl_reinforce_config_json(const mrl_reinforce_config *c, char *buf, size_t size) {
  char f[10][24], pn[1400], vn[1400];
  mrl__reinforce_tower_json(&c->net, pn, sizeof pn);
  mrl__reinforce_tower_json(&c->value_net, vn, sizeof vn);
  return snprintf(
      buf, size,
      "{\"seed\":%llu,\"num_steps\":%d,\"bptt_len\":%d,\"k_steps\":%d,\"use_lambda\":%d,"
      "\"lambda\":%s,\"gamma\":%s,\"learning_rate\":%s,\"adam_eps\":%s,\"ent_coef\":%s,"
      "\"vf_coef\":%s,\"max_grad_norm\":%s,\"norm_adv\":%d,\"net\":%s,\"value_net\":%s,"
      "\"orthogonal_init\":%d,\"normalize_obs\":%d,\"curriculum\":%d,\"curriculum_start\":%d,"
      "\"curriculum_growth\":%s,\"curriculum_threshold\":%s,\"curriculum_window\":%d}",
      (unsigned long long)c->seed, c->num_steps, c->bptt_len, c->k_steps, c->use_lambda,
      mrl__float_text(c->lambda, f[0], 24), mrl__float_text(c->gamma, f[1], 24),
      mrl__float_text(c->learning_rate, f[2], 24), mrl__float_text(c->adam_eps, f[3], 24),
      mrl__float_text(c->ent_coef, f[4], 24), mrl__float_text(c->vf_coef, f[5], 24),
      mrl__float_text(c->max_grad_norm, f[6], 24), c->norm_adv, pn, vn, c->orthogonal_init,
      c->normalize_obs, c->curriculum, c->curriculum_start,
      mrl__float_text(c->curriculum_growth, f[7], 24),
      mrl__float_text(c->curriculum_threshold, f[8], 24), c->curriculum_window);
}

/* Names the first field of a config that cannot work (in err), or 0. */
static int mrl__reinforce_check_config(const mrl_reinforce_config *c, const mrl_vecenv *env,
                                       char *err, size_t n) {
  const char *const names[9] = {"lambda",
                                "gamma",
                                "learning_rate",
                                "adam_eps",
                                "ent_coef",
                                "vf_coef",
                                "max_grad_norm",
                                "curriculum_growth",
                                "curriculum_threshold"};
  const float *f[9];
  int i;
  f[0] = &c->lambda, f[1] = &c->gamma, f[2] = &c->learning_rate, f[3] = &c->adam_eps;
  f[4] = &c->ent_coef, f[5] = &c->vf_coef, f[6] = &c->max_grad_norm;
  f[7] = &c->curriculum_growth, f[8] = &c->curriculum_threshold;
  for (i = 0; i < 9; i++)
    if (!mrl__finite(*f[i])) {
      mrl__say(err, n, "mrl_reinforce_config.%s %g must be finite", names[i], *f[i]);
      return 1;
    }
#define MRL__REJECT(cond, ...)                                                                     \
  do {                                                                                             \
    if (cond) {                                                                                    \
      mrl__say(err, n, __VA_ARGS__);                                                               \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)
  MRL__REJECT(c->num_steps < 1, "mrl_reinforce_config.num_steps %d must be >= 1", c->num_steps);
  MRL__REJECT((long long)env->num_envs * c->num_steps > INT_MAX / 4,
              "mrl_reinforce_config.num_steps %d x %d environments is too large", c->num_steps,
              env->num_envs);
  MRL__REJECT(c->bptt_len < 0, "mrl_reinforce_config.bptt_len %d must be >= 0 (0: whole rollout)",
              c->bptt_len);
  MRL__REJECT(c->k_steps < 0, "mrl_reinforce_config.k_steps %d must be >= 0 (0: num_steps)",
              c->k_steps);
  MRL__REJECT(c->lambda < 0.0f || c->lambda > 1.0f,
              "mrl_reinforce_config.lambda %g must be in [0, 1]", c->lambda);
  MRL__REJECT(c->gamma < 0.0f || c->gamma > 1.0f, "mrl_reinforce_config.gamma %g must be in [0, 1]",
              c->gamma);
  MRL__REJECT(c->learning_rate < 0.0f, "mrl_reinforce_config.learning_rate %g must be >= 0",
              c->learning_rate);
  MRL__REJECT(c->adam_eps <= 0.0f, "mrl_reinforce_config.adam_eps %g must be > 0", c->adam_eps);
  MRL__REJECT(c->vf_coef < 0.0f, "mrl_reinforce_config.vf_coef %g must be >= 0", c->vf_coef);
  MRL__REJECT(env->num_actions < 1 && env->action_dim < 1, "the vector env has no actions");
  if (c->curriculum &&
      mrl_length_curriculum_check("mrl_reinforce_config", c->curriculum_start, c->curriculum_growth,
                                  c->curriculum_threshold, c->curriculum_window, err, n))
    return 1;
#undef MRL__REJECT
  return 0;
}

MRL_DEF mrl_result mrl_reinforce_init(mrl_reinforce *a, const mrl_reinforce_config *cfg,
                                      const mrl_vecenv *env) {
  mrl_tower_config pn, vn;
  mrl_policy_head_config pc;
  mrl_runner_config rc;
  mrl_result r;
  size_t B;
  memset(a, 0, sizeof *a);
  if (!cfg || !env || env->num_envs < 1) {
    mrl__say(a->error, sizeof a->error, "mrl_reinforce_init: needs a config and a vector env");
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (mrl__reinforce_check_config(cfg, env, a->error, sizeof a->error))
    return MRL_ERR_INVALID_ARGUMENT;
  a->cfg = *cfg;
  a->obs_dim = env->obs_dim;
  a->num_envs = env->num_envs;
  a->num_actions = env->num_actions;
  a->env_action_dim = env->action_dim;
  B = (size_t)a->num_envs;
  mrl_episode_stats_init(&a->curriculum.level_stats);
  if (cfg->curriculum &&
      mrl_length_curriculum_init(&a->curriculum, env, "mrl_reinforce_config", cfg->curriculum_start,
                                 cfg->curriculum_growth, cfg->curriculum_threshold,
                                 cfg->curriculum_window, a->error, sizeof a->error) != MRL_OK)
    return MRL_ERR_INVALID_ARGUMENT;
  pn = cfg->net;
  vn = cfg->value_net;
  if (cfg->orthogonal_init) { /* CleanRL's layer_init, as PPO */
    if (pn.init.kind == MRL_INIT_DEFAULT) pn.init = mrl_init_orthogonal(sqrtf(2.0f));
    if (pn.core.init.kind == MRL_INIT_DEFAULT) pn.core.init = mrl_init_orthogonal(1.0f);
    if (vn.init.kind == MRL_INIT_DEFAULT) vn.init = mrl_init_orthogonal(sqrtf(2.0f));
    if (vn.core.init.kind == MRL_INIT_DEFAULT) vn.core.init = mrl_init_orthogonal(1.0f);
  }
  mrl_params_init(&a->params);
  /* two towers, two memories: m^pi in [0, policy.state_dim), m^V after it */
  if ((r = mrl_tower_init(&a->policy_net, &a->params, "policy", a->obs_dim, &pn, 0, a->error,
                          sizeof a->error)) != MRL_OK ||
      (r = mrl_tower_init(&a->value_net, &a->params, "baseline", a->obs_dim, &vn,
                          a->policy_net.state_dim, a->error, sizeof a->error)) != MRL_OK)
    goto fail;
  if (env->num_actions > 0) {
    pc = mrl_policy_head_config_default(MRL_POLICY_CATEGORICAL);
    pc.num_actions = env->num_actions;
  } else {
    pc = mrl_policy_head_config_default(MRL_POLICY_GAUSSIAN);
    pc.action_dim = env->action_dim;
    pc.action_low = mrl_env_action_low(env->envs[0]);
    pc.action_high = mrl_env_action_high(env->envs[0]);
  }
  pc.init = cfg->orthogonal_init ? mrl_init_orthogonal(0.01f) : mrl_init_default();
  if ((r = mrl_policy_head_init(&a->policy, &a->params, "policy.out", a->policy_net.output_dim,
                                &pc)) != MRL_OK) {
    mrl__say(a->error, sizeof a->error, "mrl_reinforce_init: no policy head fits the actions");
    goto fail;
  }
  mrl_linear_layer_init(&a->value, &a->params, "baseline.out", a->value_net.output_dim, 1,
                        cfg->orthogonal_init ? mrl_init_orthogonal(1.0f) : mrl_init_default());
  if ((r = mrl_params_finalize(&a->params, cfg->seed)) != MRL_OK) {
    mrl__say(a->error, sizeof a->error, "mrl_reinforce_init: %s", a->params.message);
    goto fail;
  }
  a->raw_dim = mrl_policy_head_raw_dim(&a->policy);
  a->state_dim = a->policy_net.state_dim + a->value_net.state_dim;
  rc = mrl_runner_config_default();
  rc.normalize_obs = cfg->normalize_obs;
  rc.gamma = cfg->gamma;
  if ((r = mrl_runner_init(&a->runner, env, a->state_dim, &rc, a->error, sizeof a->error)) !=
          MRL_OK ||
      (r = mrl_graph_init(&a->graph, (size_t)1 << 22)) != MRL_OK ||
      (r = mrl_graph_init(&a->act_graph, (size_t)1 << 18)) != MRL_OK ||
      (r = mrl_rollout_init(&a->rollout, cfg->num_steps, a->num_envs, a->obs_dim, a->raw_dim,
                            a->state_dim)) != MRL_OK)
    goto fail;
  a->rng = mrl_rng_make(cfg->seed ^ 0x9e3779b97f4a7c15ULL);
  a->step_actions = (float *)MRL_MALLOC(sizeof(float) * B * (size_t)a->env_action_dim);
  a->last_values = (float *)MRL_MALLOC(sizeof(float) * B);
  a->bptt_state = (float *)MRL_MALLOC(sizeof(float) * (B * (size_t)a->state_dim + 1));
  if (!a->step_actions || !a->last_values || !a->bptt_state) {
    r = MRL_ERR_OUT_OF_MEMORY;
    goto fail;
  }
  return MRL_OK;
fail:
  if (r == MRL_ERR_OUT_OF_MEMORY && !a->error[0])
    mrl__say(a->error, sizeof a->error, "mrl_reinforce_init: out of memory");
  {
    char keep[MRL_ERROR_SIZE];
    memcpy(keep, a->error, sizeof keep);
    mrl_reinforce_free(a);
    memcpy(a->error, keep, sizeof keep);
  }
  return r;
}

MRL_DEF void mrl_reinforce_free(mrl_reinforce *a) {
  mrl_tower_free(&a->policy_net);
  mrl_tower_free(&a->value_net);
  mrl_params_free(&a->params);
  mrl_graph_free(&a->graph);
  mrl_graph_free(&a->act_graph);
  mrl_runner_free(&a->runner);
  mrl_rollout_free(&a->rollout);
  MRL_FREE(a->step_actions);
  MRL_FREE(a->last_values);
  MRL_FREE(a->bptt_state);
  memset(a, 0, sizeof *a);
}

MRL_DEF int mrl_reinforce_state_dim(const mrl_reinforce *a) {
  return a->state_dim;
}

/* The two memories as the shared actor-critic: the policy tower (m^pi) with
 * its head, and the baseline tower (m^V) with its value layer. */
static mrl_actor_critic mrl__reinforce_ac(const mrl_reinforce *a) {
  return mrl_actor_critic_make(&a->policy_net, &a->value_net, &a->policy, &a->value, 0,
                               a->state_dim, NULL);
}

/* Distribution parameters [T*B, P] and baseline values [T*B] of x
 * [T*B, obs]; either may be NULL (the baseline still runs when its memory
 * must advance: values given). State records of state_dim floats. */
static void mrl__reinforce_forward(mrl_reinforce *a, mrl_graph *g, mrl_tensor *x, int T, int B,
                                   const float *starts, const float *state_in, float *state_out,
                                   mrl_tensor **dist, mrl_tensor **values) {
  mrl_actor_critic ac = mrl__reinforce_ac(a);
  mrl_actor_critic_forward(&ac, g, x, T, B, starts, state_in, state_out, dist, values, NULL);
}

/* Rollout: num_steps vector steps into a->rollout and the baseline's value
 * of the observation after them into last_values (the collection's GAE is
 * replaced by mrl_reinforce_targets); finished episodes also count towards
 * the curriculum level's window. */
static mrl_result mrl__reinforce_collect(mrl_reinforce *a, mrl_vecenv *env) {
  mrl_actor_critic ac = mrl__reinforce_ac(a);
  mrl_result r;
  a->runner.also_stats = a->cfg.curriculum ? &a->curriculum.level_stats : NULL;
  r = mrl_actor_critic_collect(&ac, &a->act_graph, &a->runner, env, &a->rollout, &a->rng,
                               a->step_actions, a->last_values, a->cfg.gamma, 1.0f, "reinforce",
                               a->error, sizeof a->error);
  a->runner.also_stats = NULL;
  return r;
}

MRL_DEF void mrl_reinforce_targets(mrl_reinforce *a, const float *last_values) {
  mrl_rollout *ro = &a->rollout;
  int T = ro->num_steps, B = ro->num_envs;
  if (a->cfg.use_lambda)
    mrl_returns_lambda(T, B, ro->rewards, ro->values, ro->terminated, ro->truncated,
                       ro->final_values, last_values, a->cfg.gamma, a->cfg.lambda, ro->advantages,
                       ro->returns);
  else
    mrl_returns_kstep(T, B, ro->rewards, ro->values, ro->terminated, ro->truncated,
                      ro->final_values, last_values, a->cfg.gamma,
                      a->cfg.k_steps > 0 ? a->cfg.k_steps : T, ro->advantages, ro->returns);
}

/* The loss over the whole rollout, replayed from its stored states in
 * pieces of bptt_len steps, then one Adam step:
 *   L = -mean_t(log pi(a_t) Psi_t) - ent_coef mean(H) + vf_coef 0.5 mean((V_t - R_t)^2). */
MRL_DEF mrl_result mrl_reinforce_update(mrl_reinforce *a, float lr,
                                        mrl_reinforce_update_stats *stats) {
  mrl_rollout *ro = &a->rollout;
  mrl_graph *g = &a->graph;
  mrl_reinforce_update_stats local;
  int T = ro->num_steps, B = a->num_envs, O = a->obs_dim, S = a->state_dim;
  int L = a->cfg.bptt_len > 0 && a->cfg.bptt_len < T ? a->cfg.bptt_len : T, t0, i, N = T * B;
  float *adv = ro->advantages;
  mrl_tensor *pg = NULL, *vl = NULL, *ent = NULL, *loss;
  mrl_adam_config adam;
  if (!stats) stats = &local;
  memset(stats, 0, sizeof *stats);
  if (!mrl__finite(lr)) return MRL_ERR_INVALID_ARGUMENT;
  if (a->cfg.norm_adv && N > 1) { /* into the arena: the rollout keeps the raw advantages */
    double mean = 0.0, var = 0.0;
    mrl_graph_reset(g);
    adv = (float *)mrl_graph_alloc(g, sizeof(float) * (size_t)N);
    if (!adv) return MRL_ERR_OUT_OF_MEMORY;
    for (i = 0; i < N; i++) mean += ro->advantages[i];
    mean /= N;
    for (i = 0; i < N; i++) var += (ro->advantages[i] - mean) * (ro->advantages[i] - mean);
    var /= (N - 1);
    for (i = 0; i < N; i++) adv[i] = (float)((ro->advantages[i] - mean) / (sqrt(var) + 1e-8));
  } else {
    mrl_graph_reset(g);
  }
  mrl_graph_set_no_grad(g, 0);
  memcpy(a->bptt_state, ro->initial_state, sizeof(float) * (size_t)B * S);
  for (t0 = 0; t0 < T; t0 += L) {
    /* a piece of n steps from the state the previous piece left, as numbers:
     * truncated BPTT (its value carries over, its gradient does not) */
    int n = t0 + L <= T ? L : T - t0, shape[1];
    size_t row = (size_t)t0 * B;
    mrl_tensor *x, *dist = NULL, *values = NULL, *logp = NULL, *h = NULL, *t_adv, *t_ret;
    x = mrl_tensor_from2(g, ro->obs + row * O, n * B, O);
    if (x)
      mrl__reinforce_forward(a, g, x, n, B, ro->episode_starts + row, S ? a->bptt_state : NULL,
                             S ? a->bptt_state : NULL, &dist, &values);
    if (dist)
      mrl_policy_head_evaluate(&a->policy, g, dist, ro->actions + row * a->raw_dim, &logp, &h);
    shape[0] = n * B;
    t_adv = mrl_tensor_from(g, adv + row, 1, shape);
    t_ret = mrl_tensor_from(g, ro->returns + row, 1, shape);
    if (!logp || !h || !values || !t_adv || !t_ret) break;
    logp = mrl_sum(g, mrl_mul(g, logp, t_adv));
    h = mrl_sum(g, h);
    values = mrl_sum(g, mrl_square(g, mrl_sub(g, values, t_ret)));
    pg = pg ? mrl_add(g, pg, logp) : logp;
    ent = ent ? mrl_add(g, ent, h) : h;
    vl = vl ? mrl_add(g, vl, values) : values;
  }
  pg = mrl_scale(g, pg, -1.0f / (float)N);
  ent = mrl_scale(g, ent, 1.0f / (float)N);
  vl = mrl_scale(g, vl, 0.5f / (float)N);
  loss = mrl_add(g, mrl_sub(g, pg, mrl_scale(g, ent, a->cfg.ent_coef)),
                 mrl_scale(g, vl, a->cfg.vf_coef));
  if (!loss) {
    mrl__say(a->error, sizeof a->error, "reinforce: out of memory in the update");
    return MRL_ERR_OUT_OF_MEMORY;
  }
  mrl_params_zero_grad(&a->params);
  mrl_backward(g, loss);
  {
    double sq = 0.0;
    size_t j;
    for (j = 0; j < a->params.total; j++) sq += (double)a->params.grads[j] * a->params.grads[j];
    stats->grad_norm = sqrt(sq);
  }
  if (!mrl_update_guard(&a->params, loss->data[0], a->cfg.max_grad_norm)) {
    mrl__say(a->error, sizeof a->error,
             "reinforce: non-finite loss (%g) or gradient at iteration %lld: update not applied",
             loss->data[0], a->iterations + 1);
    return MRL_ERR_NON_FINITE;
  }
  adam = mrl_adam_config_default();
  adam.lr = lr;
  adam.eps = a->cfg.adam_eps;
  mrl_adam_step(&a->params, &adam);
  stats->policy_loss = pg->data[0];
  stats->value_loss = vl->data[0];
  stats->entropy = ent->data[0];
  stats->loss = loss->data[0];
  return MRL_OK;
}

MRL_DEF mrl_result mrl_reinforce_train(mrl_reinforce *a, mrl_vecenv *env, long long env_steps,
                                       mrl_progress_fn progress, void *user) {
  long long batch = (long long)a->num_envs * a->cfg.num_steps, iters, it;
  long long steps0 = a->runner.env_steps;
  double t0 = mrl_wall_seconds();
  mrl_result r;
  if (!env || env->num_envs != a->num_envs || env->obs_dim != a->obs_dim ||
      env->num_actions != a->num_actions || env->action_dim != a->env_action_dim) {
    mrl__say(a->error, sizeof a->error,
             "mrl_reinforce_train: not the vector env the agent was made for");
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (env_steps < 0) {
    mrl__say(a->error, sizeof a->error, "mrl_reinforce_train: env_steps %lld is negative",
             env_steps);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  iters = env_steps / batch;
  if (iters == 0) return MRL_OK;
  /* the curriculum's level decides which task the environments run */
  if (a->cfg.curriculum &&
      (r = mrl_length_curriculum_rebuild(&a->curriculum, env, env->seed, &a->runner, "reinforce",
                                         a->error, sizeof a->error)) != MRL_OK)
    return r;
  if ((r = mrl_runner_start(&a->runner, env)) != MRL_OK) return r;
  for (it = 1; it <= iters; it++) {
    mrl_reinforce_update_stats st;
    /* collect, targets, update, curriculum, report */
    if ((r = mrl__reinforce_collect(a, env)) != MRL_OK) return r;
    mrl_reinforce_targets(a, a->last_values);
    if ((r = mrl_reinforce_update(a, a->cfg.learning_rate, &st)) != MRL_OK) return r;
    a->iterations++;
    if (a->cfg.curriculum) {
      if ((r = mrl_length_curriculum_step(&a->curriculum, env, &a->runner, "reinforce", a->error,
                                          sizeof a->error)) != MRL_OK)
        return r;
      if ((r = mrl_runner_start(&a->runner, env)) != MRL_OK) return r;
    }
    if (progress) {
      mrl_train_progress p;
      mrl_runner_progress(&p, "reinforce", env, &a->runner, steps0, t0);
      p.iteration = (int)it;
      p.num_iterations = (int)iters;
      p.learning_rate = a->cfg.learning_rate;
      mrl_progress_set(&p, "policy_loss", (float)st.policy_loss);
      mrl_progress_set(&p, "value_loss", (float)st.value_loss);
      mrl_progress_set(&p, "entropy", (float)st.entropy);
      mrl_progress_set(&p, "grad_norm", (float)st.grad_norm);
      mrl_progress_set(&p, "explained_variance",
                       mrl__explained_variance(a->rollout.values, a->rollout.returns, (int)batch));
      if (a->cfg.curriculum) {
        mrl_progress_set(&p, "curriculum_length", (float)a->curriculum.length);
        mrl_progress_set(&p, "level_success", mrl_length_curriculum_rate(&a->curriculum));
      }
      if (progress(&p, user)) break;
    }
  }
  return MRL_OK;
}

MRL_DEF mrl_result mrl_reinforce_act(mrl_reinforce *a, const float *obs, int n,
                                     const float *episode_start, float *state, int greedy,
                                     mrl_rng *rng, float *actions) {
  mrl_actor_critic ac = mrl__reinforce_ac(a);
  return mrl_actor_critic_act(&ac, &a->act_graph, a->cfg.normalize_obs ? &a->runner : NULL, obs, n,
                              episode_start, state, greedy, rng ? rng : &a->rng, actions);
}

static mrl_result mrl__reinforce_act_fn(void *agent, const float *obs, int n,
                                        const float *episode_start, float *state, int greedy,
                                        mrl_rng *rng, float *actions) {
  return mrl_reinforce_act((mrl_reinforce *)agent, obs, n, episode_start, state, greedy, rng,
                           actions);
}

MRL_DEF mrl_result mrl_reinforce_evaluate(mrl_reinforce *a, mrl_vecenv *env, int episodes,
                                          int greedy, mrl_episode_stats *stats) {
  mrl_rng rng = mrl_rng_make(a->cfg.seed ^ 0x5851f42d4c957f2dULL);
  if (!env || env->obs_dim != a->obs_dim || env->num_actions != a->num_actions ||
      env->action_dim != a->env_action_dim)
    return MRL_ERR_INVALID_ARGUMENT;
  return mrl_evaluate(mrl__reinforce_act_fn, a, a->state_dim, env, episodes, greedy, &rng, stats);
}

/* REINFORCE's own state beyond the runner: RNG, iterations, curriculum. */
static int mrl__reinforce_extras(const mrl_reinforce *a, mrl_checkpoint_extra *x) {
  x[0].name = "__reinforce.rng";
  x[0].dtype = "U64";
  x[0].data = &a->rng;
  x[0].count = sizeof a->rng / sizeof(uint64_t);
  x[1].name = "__reinforce.iterations";
  x[1].dtype = "I64";
  x[1].data = &a->iterations;
  x[1].count = 1;
  {
    const char *const names[3] = {"__reinforce.curriculum_length", "__reinforce.curriculum_level",
                                  "__reinforce.level_stats"};
    return 2 + mrl_length_curriculum_extras(&a->curriculum, names, x + 2);
  }
}

MRL_DEF mrl_result mrl_reinforce_save(const mrl_reinforce *a, const char *path,
                                      const mrl_vecenv *env) {
  char config[4096];
  mrl_checkpoint_extra x[5];
  int n = mrl__reinforce_extras(a, x);
  mrl_reinforce_config_json(&a->cfg, config, sizeof config);
  return mrl_agent_save(path, &a->params, "reinforce", config, &a->runner, env, x, n);
}

MRL_DEF mrl_result mrl_reinforce_load(mrl_reinforce *a, const char *path, mrl_vecenv *env) {
  char config[4096];
  mrl_checkpoint_extra x[5];
  int n = mrl__reinforce_extras(a, x);
  mrl_result r;
  mrl_reinforce_config_json(&a->cfg, config, sizeof config);
  r = mrl_agent_load(path, &a->params, "reinforce", config, &a->runner, NULL, x, n, a->error,
                     sizeof a->error);
  if (r != MRL_OK || !env) return r;
  /* the saved environments ran at the saved level: rebuild env there first,
   * with the seed the curriculum gave it, then restore them */
  if (a->cfg.curriculum &&
      (r = mrl_length_curriculum_rebuild(
           &a->curriculum, env, env->seed + 0x9e3779b9ULL * (uint64_t)a->curriculum.level,
           &a->runner, "reinforce", a->error, sizeof a->error)) != MRL_OK)
    return r;
  return mrl_agent_load(path, &a->params, "reinforce", config, &a->runner, env, x, n, a->error,
                        sizeof a->error);
}

/* ---- A2C >>a2c ---- */

MRL_DEF mrl_a2c_config mrl_a2c_config_default(void) {
  mrl_a2c_config c;
  memset(&c, 0, sizeof c);
  c.seed = 1;
  c.num_steps = 5;
  c.learning_rate = 7e-4f;
  c.anneal_lr = 0;
  c.total_steps = 0;
  c.gamma = 0.99f;
  c.gae_lambda = 1.0f;
  c.norm_adv = 0;
  c.ent_coef = 0.0f;
  c.vf_coef = 0.5f;
  c.max_grad_norm = 0.5f;
  c.rms_alpha = 0.99f;
  c.rms_eps = 1e-5f;
  c.log_interval = 100;
  c.net = mrl_tower_config_default();
  c.orthogonal_init = 1;
  c.shared_torso = 0;
  c.normalize_obs = 0;
  c.normalize_reward = 0;
  c.squash_actions = 0;
  c.log_std_init = 0.0f;
  c.popart = 0;
  c.popart_beta = 3e-4f;
  return c;
}

MRL_DEF int mrl_a2c_config_json(const mrl_a2c_config *c, char *buf, size_t size) {
  const mrl_tower_config *n = &c->net;
  char enc[96], head[96], f[10][24], core[1024];
  mrl__tower_config_json(n, enc, head, core);
  return snprintf(
      buf, size,
      "{\"seed\":%llu,\"num_steps\":%d,\"learning_rate\":%s,\"anneal_lr\":%d,"
      "\"total_steps\":%lld,\"gamma\":%s,\"gae_lambda\":%s,\"norm_adv\":%d,\"ent_coef\":%s,"
      "\"vf_coef\":%s,\"max_grad_norm\":%s,\"rms_alpha\":%s,\"rms_eps\":%s,\"log_interval\":%d,"
      "\"encoder_sizes\":[%s],\"core\":%s,\"head_sizes\":[%s],\"activation\":%d,\"use_conv\":%d,"
      "\"orthogonal_init\":%d,\"shared_torso\":%d,\"normalize_obs\":%d,\"normalize_reward\":%d,"
      "\"squash_actions\":%d,\"log_std_init\":%s,\"popart\":%d,\"popart_beta\":%s}",
      (unsigned long long)c->seed, c->num_steps, mrl__float_text(c->learning_rate, f[0], 24),
      c->anneal_lr, c->total_steps, mrl__float_text(c->gamma, f[1], 24),
      mrl__float_text(c->gae_lambda, f[2], 24), c->norm_adv, mrl__float_text(c->ent_coef, f[3], 24),
      mrl__float_text(c->vf_coef, f[4], 24), mrl__float_text(c->max_grad_norm, f[5], 24),
      mrl__float_text(c->rms_alpha, f[6], 24), mrl__float_text(c->rms_eps, f[7], 24),
      c->log_interval, enc, core, head, (int)n->activation, n->use_conv, c->orthogonal_init,
      c->shared_torso, c->normalize_obs, c->normalize_reward, c->squash_actions,
      mrl__float_text(c->log_std_init, f[8], 24), c->popart,
      mrl__float_text(c->popart_beta, f[9], 24));
}

/* Names the first field of an A2C config that cannot work (error), or 0. */
static int mrl__a2c_check_config(const mrl_a2c_config *c, const mrl_vecenv *env, char *err,
                                 size_t n) {
  long long batch = (long long)env->num_envs * c->num_steps;
  const char *const names[8] = {"learning_rate", "gamma",         "gae_lambda", "ent_coef",
                                "vf_coef",       "max_grad_norm", "rms_alpha",  "rms_eps"};
  const float *f[8];
  int i;
  f[0] = &c->learning_rate, f[1] = &c->gamma, f[2] = &c->gae_lambda, f[3] = &c->ent_coef;
  f[4] = &c->vf_coef, f[5] = &c->max_grad_norm, f[6] = &c->rms_alpha, f[7] = &c->rms_eps;
  for (i = 0; i < 8; i++)
    if (!mrl__finite(*f[i])) {
      mrl__say(err, n, "mrl_a2c_config.%s %g must be finite", names[i], *f[i]);
      return 1;
    }
  if (!mrl__finite(c->log_std_init)) {
    mrl__say(err, n, "mrl_a2c_config.log_std_init %g must be finite", c->log_std_init);
    return 1;
  }
#define MRL__REJECT(cond, ...)                                                                     \
  do {                                                                                             \
    if (cond) {                                                                                    \
      mrl__say(err, n, __VA_ARGS__);                                                               \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)
  MRL__REJECT(c->num_steps < 1, "mrl_a2c_config.num_steps %d must be >= 1", c->num_steps);
  MRL__REJECT(batch > INT_MAX / 4, "mrl_a2c_config.num_steps %d x %d environments is too large",
              c->num_steps, env->num_envs);
  MRL__REJECT(c->learning_rate < 0.0f, "mrl_a2c_config.learning_rate %g must be >= 0",
              c->learning_rate);
  MRL__REJECT(c->gamma < 0.0f || c->gamma > 1.0f, "mrl_a2c_config.gamma %g must be in [0, 1]",
              c->gamma);
  MRL__REJECT(c->gae_lambda < 0.0f || c->gae_lambda > 1.0f,
              "mrl_a2c_config.gae_lambda %g must be in [0, 1]", c->gae_lambda);
  MRL__REJECT(c->rms_alpha < 0.0f || c->rms_alpha >= 1.0f,
              "mrl_a2c_config.rms_alpha %g must be in [0, 1)", c->rms_alpha);
  MRL__REJECT(c->rms_eps <= 0.0f, "mrl_a2c_config.rms_eps %g must be > 0", c->rms_eps);
  MRL__REJECT(c->log_interval < 1, "mrl_a2c_config.log_interval %d must be >= 1", c->log_interval);
  MRL__REJECT(c->total_steps < 0, "mrl_a2c_config.total_steps %lld must be >= 0", c->total_steps);
  MRL__REJECT(c->popart && !(c->popart_beta > 0.0f && c->popart_beta <= 1.0f),
              "mrl_a2c_config.popart_beta %g must be in (0, 1]", c->popart_beta);
  MRL__REJECT(env->num_actions < 1 && env->action_dim < 1, "the vector env has no actions");
#undef MRL__REJECT
  return 0;
}

/* A2C's view of its network (the shared actor_critic section). */
static mrl_actor_critic mrl__a2c_ac(const mrl_a2c *a) {
  return mrl_actor_critic_make(&a->actor, &a->critic, &a->policy, &a->value, a->cfg.shared_torso,
                               a->state_dim, a->cfg.popart ? &a->popart : NULL);
}

MRL_DEF mrl_result mrl_a2c_init(mrl_a2c *a, const mrl_a2c_config *cfg, const mrl_vecenv *env) {
  mrl_actor_critic_config acc;
  mrl_actor_critic ac;
  mrl_runner_config rc;
  mrl_result r;
  size_t B;
  memset(a, 0, sizeof *a);
  if (!cfg || !env || env->num_envs < 1) {
    mrl__say(a->error, sizeof a->error, "mrl_a2c_init: needs a config and a vector env");
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (mrl__a2c_check_config(cfg, env, a->error, sizeof a->error)) return MRL_ERR_INVALID_ARGUMENT;
  a->cfg = *cfg;
  a->obs_dim = env->obs_dim;
  a->num_envs = env->num_envs;
  a->num_actions = env->num_actions;
  a->env_action_dim = env->action_dim;
  B = (size_t)a->num_envs;
  /* SB3's ActorCriticPolicy, as PPO's */
  acc.net = cfg->net;
  acc.orthogonal_init = cfg->orthogonal_init;
  acc.shared_torso = cfg->shared_torso;
  acc.squash_actions = cfg->squash_actions;
  acc.log_std_init = cfg->log_std_init;
  ac = mrl__a2c_ac(a);
  mrl_params_init(&a->params);
  if ((r = mrl_actor_critic_init(&ac, &a->params, &acc, env, cfg->seed, "mrl_a2c_init", a->error,
                                 sizeof a->error)) != MRL_OK)
    goto fail;
  a->raw_dim = mrl_policy_head_raw_dim(&a->policy);
  a->state_dim = ac.state_dim;
  rc = mrl_runner_config_default();
  rc.normalize_obs = cfg->normalize_obs;
  rc.normalize_reward = cfg->normalize_reward;
  rc.gamma = cfg->gamma;
  if ((r = mrl_runner_init(&a->runner, env, a->state_dim, &rc, a->error, sizeof a->error)) !=
          MRL_OK ||
      (r = mrl_graph_init(&a->graph, (size_t)1 << 20)) != MRL_OK ||
      (r = mrl_graph_init(&a->act_graph, (size_t)1 << 18)) != MRL_OK ||
      (r = mrl_rollout_init(&a->rollout, cfg->num_steps, a->num_envs, a->obs_dim, a->raw_dim,
                            a->state_dim)) != MRL_OK)
    goto fail;
  a->rng = mrl_rng_make(cfg->seed ^ 0x9e3779b97f4a7c15ULL);
  a->step_actions = (float *)MRL_MALLOC(sizeof(float) * B * (size_t)a->env_action_dim);
  a->step_values = (float *)MRL_MALLOC(sizeof(float) * B);
  a->adv = (float *)MRL_MALLOC(sizeof(float) * B * (size_t)cfg->num_steps);
  a->targets = (float *)MRL_MALLOC(sizeof(float) * B * (size_t)cfg->num_steps);
  if (cfg->popart && (r = mrl_popart_init(&a->popart, 1, cfg->popart_beta)) != MRL_OK) goto fail;
  if (!a->step_actions || !a->step_values || !a->adv || !a->targets) {
    r = MRL_ERR_OUT_OF_MEMORY;
    goto fail;
  }
  return MRL_OK;
fail:
  if (r == MRL_ERR_OUT_OF_MEMORY && !a->error[0])
    mrl__say(a->error, sizeof a->error, "mrl_a2c_init: out of memory");
  {
    char keep[MRL_ERROR_SIZE];
    memcpy(keep, a->error, sizeof keep);
    mrl_a2c_free(a);
    memcpy(a->error, keep, sizeof keep);
  }
  return r;
}

MRL_DEF void mrl_a2c_free(mrl_a2c *a) {
  mrl_tower_free(&a->actor);
  mrl_tower_free(&a->critic);
  mrl_params_free(&a->params);
  mrl_graph_free(&a->graph);
  mrl_graph_free(&a->act_graph);
  mrl_runner_free(&a->runner);
  mrl_rollout_free(&a->rollout);
  MRL_FREE(a->step_actions);
  MRL_FREE(a->step_values);
  MRL_FREE(a->adv);
  MRL_FREE(a->targets);
  mrl_popart_free(&a->popart);
  memset(a, 0, sizeof *a);
}

MRL_DEF int mrl_a2c_state_dim(const mrl_a2c *a) {
  return a->state_dim;
}

/* The loss on the whole rollout (time-major [T, B]; a recurrent core replays
 * every environment's sequence from rollout.initial_state) and its gradient
 * in params.grads, clipped. MRL_ERR_NON_FINITE (nothing to apply) when the
 * loss or a gradient is not finite. A3C's threads call it on their copies. */
static mrl_result mrl__a2c_gradient(mrl_a2c *a, mrl_a2c_update_stats *st) {
  mrl_rollout *ro = &a->rollout;
  mrl_graph *g = &a->graph;
  mrl_actor_critic ac = mrl__a2c_ac(a);
  int T = a->cfg.num_steps, B = a->num_envs, N = T * B, i, shape[1];
  float *adv = a->adv;
  const float *targets;
  double mean = 0.0, var = 0.0;
  mrl_tensor *x, *dist = NULL, *values = NULL, *logp = NULL, *ent_rows = NULL;
  mrl_tensor *pg, *vl, *ent, *loss, *t_adv, *t_ret;
  memcpy(adv, ro->advantages, sizeof(float) * (size_t)N);
  if (a->cfg.norm_adv && N > 1) { /* torch's std() is the unbiased estimate */
    for (i = 0; i < N; i++) mean += adv[i];
    mean /= N;
    for (i = 0; i < N; i++) var += (adv[i] - mean) * (adv[i] - mean);
    var /= (N - 1);
    for (i = 0; i < N; i++) adv[i] = (float)((adv[i] - mean) / (sqrt(var) + 1e-8));
  }
  /* The value targets; with PopArt (van Hasselt et al. 2016) normalised by its
   * statistics, which the value layer a->value predicts, and the advantages
   * divided by its sigma (Hessel et al. 2019, as PPO here). */
  targets = ro->returns;
  if (a->cfg.popart) {
    float sigma = mrl_popart_sigma(&a->popart, 0);
    mrl_popart_normalize(&a->popart, ro->returns, NULL, N, a->targets);
    targets = a->targets;
    for (i = 0; i < N; i++) adv[i] /= sigma;
  }
  mrl_graph_reset(g);
  mrl_graph_set_no_grad(g, 0);
  x = mrl_tensor_from2(g, ro->obs, N, a->obs_dim);
  if (x)
    mrl_actor_critic_forward(&ac, g, x, T, B, ro->episode_starts,
                             a->state_dim ? ro->initial_state : NULL, NULL, &dist, &values, NULL);
  if (dist) mrl_policy_head_evaluate(&a->policy, g, dist, ro->actions, &logp, &ent_rows);
  shape[0] = N;
  t_adv = mrl_tensor_from(g, adv, 1, shape);
  t_ret = mrl_tensor_from(g, targets, 1, shape);
  /* SB3: -(A log pi).mean(), mse(R, V), -(H).mean() */
  pg = mrl_neg(g, mrl_mean(g, mrl_mul(g, logp, t_adv)));
  vl = mrl_mean(g, mrl_square(g, mrl_sub(g, t_ret, values)));
  ent = mrl_mean(g, ent_rows);
  loss = mrl_add(g, mrl_sub(g, pg, mrl_scale(g, ent, a->cfg.ent_coef)),
                 mrl_scale(g, vl, a->cfg.vf_coef));
  if (!loss) {
    mrl__say(a->error, sizeof a->error, "a2c: out of memory in the update");
    return MRL_ERR_OUT_OF_MEMORY;
  }
  mrl_params_zero_grad(&a->params);
  mrl_backward(g, loss);
  if (!mrl_update_guard(&a->params, loss->data[0], a->cfg.max_grad_norm)) {
    mrl__say(a->error, sizeof a->error,
             "a2c: non-finite loss (%g) or gradient at update %lld: update not applied",
             loss->data[0], a->iterations + 1);
    return MRL_ERR_NON_FINITE;
  }
  st->loss = loss->data[0];
  st->policy_loss = pg->data[0];
  st->value_loss = vl->data[0];
  st->entropy = ent->data[0];
  return MRL_OK;
}

MRL_DEF mrl_result mrl_a2c_update(mrl_a2c *a, float lr, mrl_a2c_update_stats *stats) {
  mrl_a2c_update_stats local;
  mrl_rmsprop_config rms;
  mrl_result r;
  if (!stats) stats = &local;
  memset(stats, 0, sizeof *stats);
  if (!mrl__finite(lr)) return MRL_ERR_INVALID_ARGUMENT;
  if (a->cfg.popart) /* statistics towards this rollout's returns; the outputs stay */
    mrl_popart_update(&a->popart, &a->params, &a->value, a->rollout.returns, NULL,
                      a->rollout.num_steps * a->rollout.num_envs);
  if ((r = mrl__a2c_gradient(a, stats)) != MRL_OK) return r;
  /* torch.optim.RMSprop(alpha, eps), SB3's optimizer for A2C */
  rms = mrl_rmsprop_config_default();
  rms.lr = lr;
  rms.alpha = a->cfg.rms_alpha;
  rms.eps = a->cfg.rms_eps;
  return mrl_rmsprop_step(&a->params, &rms);
}

/* The figures every report carries, from a runner. */
MRL_DEF mrl_result mrl_a2c_train(mrl_a2c *a, mrl_vecenv *env, long long env_steps,
                                 mrl_progress_fn progress, void *user) {
  long long batch = (long long)a->num_envs * a->cfg.num_steps, iters, it, span, done;
  long long steps0 = a->runner.env_steps;
  double t0 = mrl_wall_seconds();
  mrl_actor_critic ac = mrl__a2c_ac(a);
  mrl_result r;
  if (!env || env->num_envs != a->num_envs || env->obs_dim != a->obs_dim ||
      env->num_actions != a->num_actions || env->action_dim != a->env_action_dim) {
    mrl__say(a->error, sizeof a->error, "mrl_a2c_train: not the vector env the agent was made for");
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (env_steps < 0) {
    mrl__say(a->error, sizeof a->error, "mrl_a2c_train: env_steps %lld is negative", env_steps);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  iters = env_steps / batch;
  if (iters == 0) return MRL_OK;
  span = a->cfg.total_steps > 0 ? a->cfg.total_steps / batch : iters;
  done = a->cfg.total_steps > 0 ? a->iterations : 0;
  if ((r = mrl_runner_start(&a->runner, env)) != MRL_OK) return r;
  for (it = 1; it <= iters; it++) {
    float lr = a->cfg.learning_rate;
    mrl_a2c_update_stats st;
    /* schedule */
    if (a->cfg.anneal_lr) lr = mrl_lr_linear(lr, 0.0f, done + it - 1, span);
    /* collect num_steps x num_envs; targets: GAE(lambda), n-step returns at lambda 1 */
    if ((r = mrl_actor_critic_collect(&ac, &a->act_graph, &a->runner, env, &a->rollout, &a->rng,
                                      a->step_actions, a->step_values, a->cfg.gamma,
                                      a->cfg.gae_lambda, "a2c", a->error, sizeof a->error)) !=
        MRL_OK)
      return r;
    /* update: one RMSprop step on the whole rollout */
    if ((r = mrl_a2c_update(a, lr, &st)) != MRL_OK) return r;
    a->iterations++;
    /* report */
    if (progress && (it % a->cfg.log_interval == 0 || it == iters)) {
      mrl_train_progress p;
      mrl_runner_progress(&p, "a2c", env, &a->runner, steps0, t0);
      p.iteration = (int)it;
      p.num_iterations = (int)iters;
      p.learning_rate = lr;
      mrl_progress_set(&p, "policy_loss", st.policy_loss);
      mrl_progress_set(&p, "value_loss", st.value_loss);
      mrl_progress_set(&p, "entropy", st.entropy);
      mrl_progress_set(&p, "explained_variance",
                       mrl__explained_variance(a->rollout.values, a->rollout.returns, (int)batch));
      if (progress(&p, user)) break;
    }
  }
  return MRL_OK;
}

MRL_DEF mrl_result mrl_a2c_act(mrl_a2c *a, const float *obs, int n, const float *episode_start,
                               float *state, int greedy, mrl_rng *rng, float *actions) {
  mrl_actor_critic ac = mrl__a2c_ac(a);
  return mrl_actor_critic_act(&ac, &a->act_graph, a->cfg.normalize_obs ? &a->runner : NULL, obs, n,
                              episode_start, state, greedy, rng ? rng : &a->rng, actions);
}

MRL_DEF mrl_result mrl_a2c_value(mrl_a2c *a, const float *obs, int n, const float *episode_start,
                                 const float *state, float *values) {
  mrl_actor_critic ac = mrl__a2c_ac(a);
  return mrl_actor_critic_value(&ac, &a->act_graph, a->cfg.normalize_obs ? &a->runner : NULL, obs,
                                n, episode_start, state, values);
}

static mrl_result mrl__a2c_act_fn(void *agent, const float *obs, int n, const float *episode_start,
                                  float *state, int greedy, mrl_rng *rng, float *actions) {
  return mrl_a2c_act((mrl_a2c *)agent, obs, n, episode_start, state, greedy, rng, actions);
}

MRL_DEF mrl_result mrl_a2c_evaluate(mrl_a2c *a, mrl_vecenv *env, int episodes, int greedy,
                                    mrl_episode_stats *stats) {
  mrl_rng rng = mrl_rng_make(a->cfg.seed ^ 0x5851f42d4c957f2dULL);
  if (!env || env->obs_dim != a->obs_dim || env->num_actions != a->num_actions ||
      env->action_dim != a->env_action_dim)
    return MRL_ERR_INVALID_ARGUMENT;
  return mrl_evaluate(mrl__a2c_act_fn, a, a->state_dim, env, episodes, greedy, &rng, stats);
}

/* A2C's own state beyond the runner: its RNG and update count. */
static int mrl__a2c_extras(const mrl_a2c *a, mrl_checkpoint_extra *x) {
  x[0].name = "__a2c.rng";
  x[0].dtype = "U64";
  x[0].data = &a->rng;
  x[0].count = sizeof a->rng / sizeof(uint64_t);
  x[1].name = "__a2c.iterations";
  x[1].dtype = "I64";
  x[1].data = &a->iterations;
  x[1].count = 1;
  if (!a->cfg.popart) return 2;
  x[2] = mrl_checkpoint_extra_of("__a2c.popart_mu", "F64", a->popart.mu, 1);
  x[3] = mrl_checkpoint_extra_of("__a2c.popart_nu", "F64", a->popart.nu, 1);
  return 4;
}

MRL_DEF mrl_result mrl_a2c_save(const mrl_a2c *a, const char *path, const mrl_vecenv *env) {
  char config[4096];
  mrl_checkpoint_extra x[4];
  int n = mrl__a2c_extras(a, x);
  mrl_a2c_config_json(&a->cfg, config, sizeof config);
  return mrl_agent_save(path, &a->params, "a2c", config, &a->runner, env, x, n);
}

MRL_DEF mrl_result mrl_a2c_load(mrl_a2c *a, const char *path, mrl_vecenv *env) {
  char config[4096];
  mrl_checkpoint_extra x[4];
  int n = mrl__a2c_extras(a, x);
  mrl_a2c_config_json(&a->cfg, config, sizeof config);
  return mrl_agent_load(path, &a->params, "a2c", config, &a->runner, env, x, n, a->error,
                        sizeof a->error);
}

/* ---- A3C >>a3c ---- */

MRL_DEF mrl_a3c_config mrl_a3c_config_default(void) {
  mrl_a3c_config c;
  memset(&c, 0, sizeof c);
  c.seed = 1;
  c.num_threads = 1;
  c.t_max = 5;
  c.learning_rate = 7e-4f;
  c.anneal_lr = 1;
  c.total_steps = 0;
  c.gamma = 0.99f;
  c.ent_coef = 0.01f;
  c.vf_coef = 0.5f;
  c.max_grad_norm = 0.0f;
  c.rms_alpha = 0.99f;
  c.rms_eps = 0.1f;
  c.log_interval = 100;
  c.net = mrl_tower_config_default();
  c.orthogonal_init = 1;
  c.shared_torso = 0;
  c.squash_actions = 0;
  c.log_std_init = 0.0f;
  return c;
}

MRL_DEF int mrl_a3c_config_json(const mrl_a3c_config *c, char *buf, size_t size) {
  const mrl_tower_config *n = &c->net;
  char enc[96], head[96], f[8][24], core[1024];
  mrl__tower_config_json(n, enc, head, core);
  return snprintf(
      buf, size,
      "{\"seed\":%llu,\"num_threads\":%d,\"t_max\":%d,\"learning_rate\":%s,\"anneal_lr\":%d,"
      "\"total_steps\":%lld,\"gamma\":%s,\"ent_coef\":%s,\"vf_coef\":%s,\"max_grad_norm\":%s,"
      "\"rms_alpha\":%s,\"rms_eps\":%s,\"log_interval\":%d,\"encoder_sizes\":[%s],\"core\":%s,"
      "\"head_sizes\":[%s],\"activation\":%d,\"use_conv\":%d,\"orthogonal_init\":%d,"
      "\"shared_torso\":%d,\"squash_actions\":%d,\"log_std_init\":%s}",
      (unsigned long long)c->seed, c->num_threads, c->t_max,
      mrl__float_text(c->learning_rate, f[0], 24), c->anneal_lr, c->total_steps,
      mrl__float_text(c->gamma, f[1], 24), mrl__float_text(c->ent_coef, f[2], 24),
      mrl__float_text(c->vf_coef, f[3], 24), mrl__float_text(c->max_grad_norm, f[4], 24),
      mrl__float_text(c->rms_alpha, f[5], 24), mrl__float_text(c->rms_eps, f[6], 24),
      c->log_interval, enc, core, head, (int)n->activation, n->use_conv, c->orthogonal_init,
      c->shared_torso, c->squash_actions, mrl__float_text(c->log_std_init, f[7], 24));
}

/* One thread's work order for a round of updates, and what it reports back. */
typedef struct mrl__a3c_job {
  mrl_a3c *agent;
  int index;
  long long updates;      /* to do in this round */
  long long steps0, span; /* the schedule: steps of all threads at its start, its length */
  mrl_result result;
  mrl_a2c_update_stats last;
#ifdef MRL_THREADS
  mrl_thread thread;
  int started;
#endif
} mrl__a3c_job;

/* The A2C config each actor-learner runs (its rollout is its t_max segment). */
static mrl_a2c_config mrl__a3c_worker_config(const mrl_a3c_config *c, uint64_t seed) {
  mrl_a2c_config w = mrl_a2c_config_default();
  w.seed = seed;
  w.num_steps = c->t_max;
  w.learning_rate = c->learning_rate;
  w.gamma = c->gamma;
  w.gae_lambda = 1.0f; /* n-step returns bootstrapped from V */
  w.norm_adv = 0;
  w.ent_coef = c->ent_coef;
  w.vf_coef = c->vf_coef;
  w.max_grad_norm = c->max_grad_norm;
  w.rms_alpha = c->rms_alpha;
  w.rms_eps = c->rms_eps;
  w.log_interval = c->log_interval;
  w.net = c->net;
  w.orthogonal_init = c->orthogonal_init;
  w.shared_torso = c->shared_torso;
  w.squash_actions = c->squash_actions;
  w.log_std_init = c->log_std_init;
  return w;
}

/* A failed init frees what it took and keeps its message. */
static mrl_result mrl__a3c_fail(mrl_a3c *a, mrl_result r) {
  char keep[MRL_ERROR_SIZE];
  memcpy(keep, a->error, sizeof keep);
  mrl_a3c_free(a);
  memcpy(a->error, keep, sizeof keep);
  return r;
}

MRL_DEF mrl_result mrl_a3c_init(mrl_a3c *a, const mrl_a3c_config *cfg, mrl_vecenv *env) {
  mrl_a2c_config wc;
  mrl_result r = MRL_OK;
  int N, k, i;
  memset(a, 0, sizeof *a);
  if (!cfg || !env || env->num_envs < 1) {
    mrl__say(a->error, sizeof a->error, "mrl_a3c_init: needs a config and a vector env");
    return MRL_ERR_INVALID_ARGUMENT;
  }
  N = cfg->num_threads;
  if (N < 1 || env->num_envs % N != 0) {
    mrl__say(a->error, sizeof a->error,
             "mrl_a3c_config.num_threads %d must be >= 1 and divide num_envs %d", N, env->num_envs);
    return MRL_ERR_INVALID_ARGUMENT;
  }
#ifndef MRL_THREADS
  if (N > 1) {
    mrl__say(a->error, sizeof a->error,
             "mrl_a3c_config.num_threads %d needs threads: build with -DMRL_THREADS -pthread", N);
    return MRL_ERR_INVALID_ARGUMENT;
  }
#endif
  if (cfg->t_max < 1) {
    mrl__say(a->error, sizeof a->error, "mrl_a3c_config.t_max %d must be >= 1", cfg->t_max);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  a->cfg = *cfg;
  k = env->num_envs / N;
  /* theta: an A2C agent over the whole vector (its spaces; never trained itself) */
  wc = mrl__a3c_worker_config(cfg, cfg->seed);
  if ((r = mrl_a2c_init(&a->global, &wc, env)) != MRL_OK) {
    /* A2C's checks name the field: the same names in A3C's config */
    char *at = strstr(a->global.error, "mrl_a2c_config.");
    if (at) at[5] = '3';
    memcpy(a->error, a->global.error, sizeof a->error);
    return mrl__a3c_fail(a, r);
  }
  a->workers = (mrl_a2c *)MRL_MALLOC(sizeof(mrl_a2c) * (size_t)N);
  a->views = (mrl_vecenv *)MRL_MALLOC(sizeof(mrl_vecenv) * (size_t)N);
  a->jobs = MRL_MALLOC(sizeof(mrl__a3c_job) * (size_t)N);
  if (!a->workers || !a->views || !a->jobs) {
    MRL_FREE(a->workers), MRL_FREE(a->views), MRL_FREE(a->jobs);
    a->workers = NULL, a->views = NULL, a->jobs = NULL;
    mrl_a3c_free(a);
    mrl__say(a->error, sizeof a->error, "mrl_a3c_init: out of memory");
    return MRL_ERR_OUT_OF_MEMORY;
  }
  memset(a->workers, 0, sizeof(mrl_a2c) * (size_t)N);
  memset(a->views, 0, sizeof(mrl_vecenv) * (size_t)N);
  memset(a->jobs, 0, sizeof(mrl__a3c_job) * (size_t)N);
  for (i = 0; i < N && r == MRL_OK; i++) {
    /* thread i's environments: envs[i k .. (i+1) k) of the vector, its own episode seeds */
    r = mrl__vecenv_view_init(&a->views[i], env, i * k, k,
                              mrl_vecenv_episode_seed(env->seed, i, 0x5a3c));
    wc = mrl__a3c_worker_config(cfg, cfg->seed + 1 + (uint64_t)i);
    if (r == MRL_OK) r = mrl_a2c_init(&a->workers[i], &wc, &a->views[i]);
    if (r != MRL_OK)
      mrl__say(a->error, sizeof a->error, "mrl_a3c_init: thread %d: %s", i,
               a->workers[i].error[0] ? a->workers[i].error : mrl_result_string(r));
  }
  return r == MRL_OK ? r : mrl__a3c_fail(a, r);
}

MRL_DEF void mrl_a3c_free(mrl_a3c *a) {
  int i;
  for (i = 0; a->workers && i < a->cfg.num_threads; i++) mrl_a2c_free(&a->workers[i]);
  for (i = 0; a->views && i < a->cfg.num_threads; i++) mrl__vecenv_view_free(&a->views[i]);
  MRL_FREE(a->workers);
  MRL_FREE(a->views);
  MRL_FREE(a->jobs);
  mrl_a2c_free(&a->global);
  memset(a, 0, sizeof *a);
}

MRL_DEF int mrl_a3c_state_dim(const mrl_a3c *a) {
  return a->global.state_dim;
}

/* Steps taken by all threads (each thread writes only its own counter; the
 * others' may be read mid-update with more than one thread, as the paper's T). */
static long long mrl__a3c_steps(const mrl_a3c *a) {
  long long s = 0;
  int i;
  for (i = 0; i < a->cfg.num_threads; i++) s += a->workers[i].runner.env_steps;
  return s;
}

/* One actor-learner's round: Algorithm S3's loop, `updates` times. */
static void mrl__a3c_thread(void *arg) {
  mrl__a3c_job *job = (mrl__a3c_job *)arg;
  mrl_a3c *a = job->agent;
  mrl_a2c *w = &a->workers[job->index];
  mrl_params *G = &a->global.params, *P = &w->params;
  mrl_actor_critic ac = mrl__a2c_ac(w);
  float alpha = a->cfg.rms_alpha, one_a = (float)(1.0 - (double)a->cfg.rms_alpha);
  float eps = a->cfg.rms_eps;
  long long u;
  size_t j;
  job->result = MRL_OK;
  for (u = 0; u < job->updates; u++) {
    float lr = a->cfg.learning_rate;
    /* schedule: linear to 0 in the steps of all threads */
    if (a->cfg.anneal_lr) lr = mrl_lr_linear(lr, 0.0f, mrl__a3c_steps(a) - job->steps0, job->span);
    /* theta' <- theta */
    memcpy(P->values, G->values, sizeof(float) * P->total);
    /* collect t_max steps of this thread's environments; n-step returns */
    job->result = mrl_actor_critic_collect(&ac, &w->act_graph, &w->runner, &a->views[job->index],
                                           &w->rollout, &w->rng, w->step_actions, w->step_values,
                                           w->cfg.gamma, 1.0f, "a3c", w->error, sizeof w->error);
    /* the gradient on theta' */
    if (job->result == MRL_OK) job->result = mrl__a2c_gradient(w, &job->last);
    if (job->result != MRL_OK) return;
    /* shared RMSProp on theta, no lock (Hogwild!) */
    for (j = 0; j < P->total; j++) {
      float d = P->grads[j], g = alpha * G->moment2[j] + one_a * d * d;
      G->moment2[j] = g;
      G->values[j] -= lr * d / sqrtf(g + eps);
    }
    w->iterations++;
  }
}

MRL_DEF mrl_result mrl_a3c_train(mrl_a3c *a, mrl_vecenv *env, long long env_steps,
                                 mrl_progress_fn progress, void *user) {
  mrl__a3c_job *jobs = (mrl__a3c_job *)a->jobs;
  int N = a->cfg.num_threads, i;
  long long per_update = (long long)a->global.num_envs * a->cfg.t_max; /* all threads */
  long long total, done = 0, round = 0, rounds, steps0, span, call_steps0;
  double t0 = mrl_wall_seconds();
  mrl_result r = MRL_OK;
  if (!env || env->num_envs != a->global.num_envs || env->envs[0] != a->views[0].envs[0]) {
    mrl__say(a->error, sizeof a->error, "mrl_a3c_train: not the vector env the agent was made for");
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (env_steps < 0) {
    mrl__say(a->error, sizeof a->error, "mrl_a3c_train: env_steps %lld is negative", env_steps);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  total = env_steps / per_update; /* updates of each thread */
  if (total == 0) return MRL_OK;
  for (i = 0; i < N; i++)
    if ((r = mrl_runner_start(&a->workers[i].runner, &a->views[i])) != MRL_OK) return r;
  call_steps0 = mrl__a3c_steps(a);
  steps0 = a->cfg.total_steps > 0 ? 0 : call_steps0;
  span = a->cfg.total_steps > 0 ? a->cfg.total_steps : total * per_update;
  rounds = (total + a->cfg.log_interval - 1) / a->cfg.log_interval;
  while (done < total) {
    long long n = total - done < a->cfg.log_interval ? total - done : a->cfg.log_interval;
    for (i = 0; i < N; i++) {
      jobs[i].agent = a;
      jobs[i].index = i;
      jobs[i].updates = n;
      jobs[i].steps0 = steps0;
      jobs[i].span = span;
      jobs[i].result = MRL_OK;
    }
#ifdef MRL_THREADS
    if (N > 1) { /* every actor-learner on a thread of its own; this one waits */
      for (i = 0; i < N; i++) {
        jobs[i].started = mrl_thread_start(&jobs[i].thread, mrl__a3c_thread, &jobs[i]) == MRL_OK;
        if (!jobs[i].started) mrl__a3c_thread(&jobs[i]); /* no thread to spare: run it here */
      }
      for (i = 0; i < N; i++)
        if (jobs[i].started) mrl_thread_join(&jobs[i].thread);
    } else
#endif
      mrl__a3c_thread(&jobs[0]);
    for (i = 0; i < N; i++)
      if (jobs[i].result != MRL_OK) {
        mrl__say(a->error, sizeof a->error, "a3c: thread %d: %s", i, a->workers[i].error);
        return jobs[i].result;
      }
    done += n;
    a->updates += n * N;
    round++;
    if (progress) {
      mrl_train_progress p;
      double ret = 0.0, len = 0.0, succ = 0.0;
      int with = 0, succ_n = 0;
      mrl_runner_progress(&p, "a3c", env, &a->workers[0].runner, 0, t0);
      p.env_steps = mrl__a3c_steps(a);
      p.episodes = 0;
      for (i = 0; i < N; i++) { /* every thread's last episodes, averaged over threads */
        const mrl_episode_stats *s = &a->workers[i].runner.stats;
        float sr = mrl_episode_stats_success_rate(s);
        p.episodes += s->total_episodes;
        if (s->count == 0) continue;
        ret += mrl_episode_stats_mean_return(s);
        len += mrl_episode_stats_mean_length(s);
        with++;
        if (sr >= 0.0f) succ += sr, succ_n++;
      }
      p.mean_return = with ? (float)(ret / with) : 0.0f;
      p.mean_length = with ? (float)(len / with) : 0.0f;
      p.success_rate = succ_n ? (float)(succ / succ_n) : -1.0f;
      p.steps_per_second = p.seconds > 0.0 ? (double)(p.env_steps - call_steps0) / p.seconds : 0.0;
      p.iteration = (int)round;
      p.num_iterations = (int)rounds;
      p.learning_rate = a->cfg.anneal_lr ? mrl_lr_linear(a->cfg.learning_rate, 0.0f,
                                                         mrl__a3c_steps(a) - steps0, span)
                                         : a->cfg.learning_rate;
      mrl_progress_set(&p, "policy_loss", jobs[0].last.policy_loss);
      mrl_progress_set(&p, "value_loss", jobs[0].last.value_loss);
      mrl_progress_set(&p, "entropy", jobs[0].last.entropy);
      if (progress(&p, user)) break;
    }
  }
  a->global.iterations = a->updates;
  return MRL_OK;
}

MRL_DEF mrl_result mrl_a3c_act(mrl_a3c *a, const float *obs, int n, const float *episode_start,
                               float *state, int greedy, mrl_rng *rng, float *actions) {
  return mrl_a2c_act(&a->global, obs, n, episode_start, state, greedy, rng, actions);
}

MRL_DEF mrl_result mrl_a3c_evaluate(mrl_a3c *a, mrl_vecenv *env, int episodes, int greedy,
                                    mrl_episode_stats *stats) {
  return mrl_a2c_evaluate(&a->global, env, episodes, greedy, stats);
}

/* The shared parameters with their RMSProp statistics, the update count and the config. */
MRL_DEF mrl_result mrl_a3c_save(const mrl_a3c *a, const char *path) {
  char config[4096];
  mrl_checkpoint_extra x[1];
  x[0].name = "__a3c.updates";
  x[0].dtype = "I64";
  x[0].data = &a->updates;
  x[0].count = 1;
  mrl_a3c_config_json(&a->cfg, config, sizeof config);
  return mrl_agent_save(path, &a->global.params, "a3c", config, &a->global.runner, NULL, x, 1);
}

MRL_DEF mrl_result mrl_a3c_load(mrl_a3c *a, const char *path) {
  char config[4096];
  mrl_checkpoint_extra x[1];
  x[0].name = "__a3c.updates";
  x[0].dtype = "I64";
  x[0].data = &a->updates;
  x[0].count = 1;
  mrl_a3c_config_json(&a->cfg, config, sizeof config);
  return mrl_agent_load(path, &a->global.params, "a3c", config, &a->global.runner, NULL, x, 1,
                        a->error, sizeof a->error);
}

/* ---- TRPO >>trpo ---- */

MRL_DEF mrl_trpo_config mrl_trpo_config_default(void) {
  mrl_trpo_config c;
  memset(&c, 0, sizeof c);
  c.seed = 1;
  c.num_steps = 2048;
  c.learning_rate = 1e-3f;
  c.gamma = 0.99f;
  c.gae_lambda = 0.95f;
  c.batch_size = 128;
  c.n_critic_updates = 10;
  c.target_kl = 0.01f;
  c.cg_max_steps = 15;
  c.cg_damping = 0.1f;
  c.line_search_shrinking_factor = 0.8f;
  c.line_search_max_iter = 10;
  c.normalize_advantage = 1;
  c.adam_eps = 1e-5f;
  c.net = mrl_tower_config_default();
  c.orthogonal_init = 1;
  c.log_std_init = 0.0f;
  return c;
}

MRL_DEF int mrl_trpo_config_json(const mrl_trpo_config *c, char *buf, size_t size) {
  const mrl_tower_config *n = &c->net;
  char enc[96], head[96], f[9][24], core[1024];
  mrl__tower_config_json(n, enc, head, core);
  return snprintf(
      buf, size,
      "{\"seed\":%llu,\"num_steps\":%d,\"learning_rate\":%s,\"gamma\":%s,\"gae_lambda\":%s,"
      "\"batch_size\":%d,\"n_critic_updates\":%d,\"target_kl\":%s,\"cg_max_steps\":%d,"
      "\"cg_damping\":%s,\"line_search_shrinking_factor\":%s,\"line_search_max_iter\":%d,"
      "\"normalize_advantage\":%d,\"adam_eps\":%s,\"encoder_sizes\":[%s],\"core\":%s,"
      "\"head_sizes\":[%s],\"activation\":%d,\"use_conv\":%d,\"orthogonal_init\":%d,"
      "\"normalize_obs\":%d,\"normalize_reward\":%d,\"log_std_init\":%s}",
      (unsigned long long)c->seed, c->num_steps, mrl__float_text(c->learning_rate, f[0], 24),
      mrl__float_text(c->gamma, f[1], 24), mrl__float_text(c->gae_lambda, f[2], 24), c->batch_size,
      c->n_critic_updates, mrl__float_text(c->target_kl, f[3], 24), c->cg_max_steps,
      mrl__float_text(c->cg_damping, f[4], 24),
      mrl__float_text(c->line_search_shrinking_factor, f[5], 24), c->line_search_max_iter,
      c->normalize_advantage, mrl__float_text(c->adam_eps, f[6], 24), enc, core, head,
      (int)n->activation, n->use_conv, c->orthogonal_init, c->normalize_obs, c->normalize_reward,
      mrl__float_text(c->log_std_init, f[7], 24));
}

/* Names the first field of a TRPO config that cannot work (error), or 0. */
static int mrl__trpo_check_config(const mrl_trpo_config *c, const mrl_vecenv *env, char *err,
                                  size_t n) {
  long long batch = (long long)env->num_envs * c->num_steps;
  const char *const names[8] = {"learning_rate", "gamma",       "gae_lambda",
                                "target_kl",     "cg_damping",  "line_search_shrinking_factor",
                                "adam_eps",      "log_std_init"};
  float v[8];
  int i;
  v[0] = c->learning_rate, v[1] = c->gamma, v[2] = c->gae_lambda, v[3] = c->target_kl;
  v[4] = c->cg_damping, v[5] = c->line_search_shrinking_factor, v[6] = c->adam_eps;
  v[7] = c->log_std_init;
  for (i = 0; i < 8; i++)
    if (!mrl__finite(v[i])) {
      mrl__say(err, n, "mrl_trpo_config.%s %g must be finite", names[i], v[i]);
      return 1;
    }
#define MRL__REJECT(cond, ...)                                                                     \
  do {                                                                                             \
    if (cond) {                                                                                    \
      mrl__say(err, n, __VA_ARGS__);                                                               \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)
  MRL__REJECT(c->num_steps < 1, "mrl_trpo_config.num_steps %d must be >= 1", c->num_steps);
  MRL__REJECT(batch > INT_MAX / 8, "mrl_trpo_config.num_steps %d x %d environments is too large",
              c->num_steps, env->num_envs);
  MRL__REJECT(c->batch_size < 1 || c->batch_size > batch,
              "mrl_trpo_config.batch_size %d must be in 1..%lld (the rollout's steps)",
              c->batch_size, batch);
  MRL__REJECT(c->net.core.kind != MRL_CORE_NONE &&
                  env->num_envs % (int)(batch / c->batch_size) != 0,
              "mrl_trpo_config.batch_size %d: %lld minibatches do not divide num_envs %d (a "
              "recurrent critic trains on whole environment sequences)",
              c->batch_size, batch / c->batch_size, env->num_envs);
  MRL__REJECT(c->n_critic_updates < 0, "mrl_trpo_config.n_critic_updates %d must be >= 0",
              c->n_critic_updates);
  MRL__REJECT(c->cg_max_steps < 1, "mrl_trpo_config.cg_max_steps %d must be >= 1", c->cg_max_steps);
  MRL__REJECT(c->line_search_max_iter < 1, "mrl_trpo_config.line_search_max_iter %d must be >= 1",
              c->line_search_max_iter);
  MRL__REJECT(c->target_kl <= 0.0f, "mrl_trpo_config.target_kl %g must be > 0", c->target_kl);
  MRL__REJECT(c->cg_damping < 0.0f, "mrl_trpo_config.cg_damping %g must be >= 0", c->cg_damping);
  MRL__REJECT(c->line_search_shrinking_factor <= 0.0f || c->line_search_shrinking_factor >= 1.0f,
              "mrl_trpo_config.line_search_shrinking_factor %g must be in (0, 1)",
              c->line_search_shrinking_factor);
  MRL__REJECT(c->learning_rate < 0.0f, "mrl_trpo_config.learning_rate %g must be >= 0",
              c->learning_rate);
  MRL__REJECT(c->gamma < 0.0f || c->gamma > 1.0f, "mrl_trpo_config.gamma %g must be in [0, 1]",
              c->gamma);
  MRL__REJECT(c->gae_lambda < 0.0f || c->gae_lambda > 1.0f,
              "mrl_trpo_config.gae_lambda %g must be in [0, 1]", c->gae_lambda);
  MRL__REJECT(c->adam_eps <= 0.0f, "mrl_trpo_config.adam_eps %g must be > 0", c->adam_eps);
  MRL__REJECT(env->num_actions < 1 && env->action_dim < 1, "the vector env has no actions");
#undef MRL__REJECT
  return 0;
}

MRL_DEF mrl_result mrl_trpo_init(mrl_trpo *a, const mrl_trpo_config *cfg, const mrl_vecenv *env) {
  mrl_tower_config net;
  mrl_runner_config rc;
  mrl_policy_head_config pc;
  mrl_result r;
  size_t B, TB, P;
  memset(a, 0, sizeof *a);
  if (!cfg || !env || env->num_envs < 1) {
    mrl__say(a->error, sizeof a->error, "mrl_trpo_init: needs a config and a vector env");
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (mrl__trpo_check_config(cfg, env, a->error, sizeof a->error)) return MRL_ERR_INVALID_ARGUMENT;
  a->cfg = *cfg;
  a->obs_dim = env->obs_dim;
  a->num_envs = env->num_envs;
  a->num_actions = env->num_actions;
  a->env_action_dim = env->action_dim;
  B = (size_t)a->num_envs;
  TB = B * (size_t)cfg->num_steps;
  net = cfg->net;
  if (cfg->orthogonal_init) { /* SB3's ortho_init: sqrt 2 hidden; orthogonal recurrent weights */
    if (net.init.kind == MRL_INIT_DEFAULT) net.init = mrl_init_orthogonal(sqrtf(2.0f));
    if (net.core.init.kind == MRL_INIT_DEFAULT) net.core.init = mrl_init_orthogonal(1.0f);
  }
  /* the policy's tensors are declared first: its flat parameters are the store's prefix */
  mrl_params_init(&a->params);
  if ((r = mrl_tower_init(&a->actor, &a->params, "actor", a->obs_dim, &net, 0, a->error,
                          sizeof a->error)) != MRL_OK)
    goto fail;
  if (env->num_actions > 0) {
    pc = mrl_policy_head_config_default(MRL_POLICY_CATEGORICAL);
    pc.num_actions = env->num_actions;
  } else {
    pc = mrl_policy_head_config_default(MRL_POLICY_GAUSSIAN);
    pc.action_dim = env->action_dim;
    pc.action_low = mrl_env_action_low(env->envs[0]);
    pc.action_high = mrl_env_action_high(env->envs[0]);
    pc.log_std_init = cfg->log_std_init;
  }
  pc.init = cfg->orthogonal_init ? mrl_init_orthogonal(0.01f) : mrl_init_default();
  if ((r = mrl_policy_head_init(&a->policy, &a->params, "actor.out", a->actor.output_dim, &pc)) !=
      MRL_OK) {
    mrl__say(a->error, sizeof a->error, "mrl_trpo_init: %s", a->policy.error);
    goto fail;
  }
  a->policy_size = a->params.total;
  if ((r = mrl_tower_init(&a->critic, &a->params, "critic", a->obs_dim, &net, a->actor.state_dim,
                          a->error, sizeof a->error)) != MRL_OK)
    goto fail;
  mrl_linear_layer_init(&a->value, &a->params, "critic.out", a->critic.output_dim, 1,
                        cfg->orthogonal_init ? mrl_init_orthogonal(1.0f) : mrl_init_default());
  if ((r = mrl_params_finalize(&a->params, cfg->seed)) != MRL_OK) {
    mrl__say(a->error, sizeof a->error, "mrl_trpo_init: %s", a->params.message);
    goto fail;
  }
  a->raw_dim = mrl_policy_head_raw_dim(&a->policy);
  a->param_dim = mrl_policy_head_param_dim(&a->policy);
  a->state_dim = a->actor.state_dim + a->critic.state_dim;
  P = a->policy_size;
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
      (r = mrl_minibatches_init(&a->minibatches, cfg->num_steps, a->num_envs,
                                (int)(TB / (size_t)cfg->batch_size), a->state_dim > 0)) != MRL_OK ||
      (r = mrl_update_backup_init(&a->backup, &a->params)) != MRL_OK)
    goto fail;
  a->rng = mrl_rng_make(cfg->seed ^ 0x9e3779b97f4a7c15ULL);
  a->search_dir = (float *)MRL_MALLOC(sizeof(float) * P * 6);
  a->old_dist = (float *)MRL_MALLOC(sizeof(float) * TB * (size_t)a->param_dim);
  a->fisher_u = (float *)MRL_MALLOC(sizeof(float) * TB * (size_t)a->param_dim);
  a->adv = (float *)MRL_MALLOC(sizeof(float) * TB);
  a->step_raw = (float *)MRL_MALLOC(sizeof(float) * B * (size_t)a->raw_dim);
  a->step_actions = (float *)MRL_MALLOC(sizeof(float) * B * (size_t)a->env_action_dim);
  a->step_values = (float *)MRL_MALLOC(sizeof(float) * B);
  a->mb_obs = (float *)MRL_MALLOC(sizeof(float) * TB * (size_t)a->obs_dim);
  a->mb_starts = (float *)MRL_MALLOC(sizeof(float) * TB);
  a->mb_state = (float *)MRL_MALLOC(sizeof(float) * (B * (size_t)a->state_dim + 1));
  a->mb_ret = (float *)MRL_MALLOC(sizeof(float) * TB);
  if (!a->search_dir || !a->old_dist || !a->fisher_u || !a->adv || !a->step_raw ||
      !a->step_actions || !a->step_values || !a->mb_obs || !a->mb_starts || !a->mb_state ||
      !a->mb_ret) {
    r = MRL_ERR_OUT_OF_MEMORY;
    goto fail;
  }
  a->grad = a->search_dir + P;
  a->theta0 = a->grad + P;
  a->cg_r = a->theta0 + P;
  a->cg_p = a->cg_r + P;
  a->cg_ap = a->cg_p + P;
  return MRL_OK;
fail:
  if (r == MRL_ERR_OUT_OF_MEMORY && !a->error[0])
    mrl__say(a->error, sizeof a->error, "mrl_trpo_init: out of memory");
  {
    char keep[MRL_ERROR_SIZE];
    memcpy(keep, a->error, sizeof keep);
    mrl_trpo_free(a);
    memcpy(a->error, keep, sizeof keep);
  }
  return r;
}

MRL_DEF void mrl_trpo_free(mrl_trpo *a) {
  mrl_tower_free(&a->actor);
  mrl_tower_free(&a->critic);
  mrl_params_free(&a->params);
  mrl_graph_free(&a->graph);
  mrl_graph_free(&a->act_graph);
  mrl_runner_free(&a->runner);
  mrl_rollout_free(&a->rollout);
  mrl_minibatches_free(&a->minibatches);
  mrl_update_backup_free(&a->backup);
  MRL_FREE(a->search_dir);
  MRL_FREE(a->old_dist);
  MRL_FREE(a->fisher_u);
  MRL_FREE(a->adv);
  MRL_FREE(a->step_raw);
  MRL_FREE(a->step_actions);
  MRL_FREE(a->step_values);
  MRL_FREE(a->mb_obs);
  MRL_FREE(a->mb_starts);
  MRL_FREE(a->mb_state);
  MRL_FREE(a->mb_ret);
  memset(a, 0, sizeof *a);
}

MRL_DEF int mrl_trpo_state_dim(const mrl_trpo *a) {
  return a->state_dim;
}

/* Distribution parameters [T*B, P] (actor) and values [T*B] (critic), either
 * may be NULL; state records of state_dim floats, the actor's slice first. */
/* The networks as the shared actor-critic (separate actor and critic towers). */
static mrl_actor_critic mrl__trpo_ac(const mrl_trpo *a) {
  return mrl_actor_critic_make(&a->actor, &a->critic, &a->policy, &a->value, 0, a->state_dim, NULL);
}

static void mrl__trpo_forward(mrl_trpo *a, mrl_graph *g, mrl_tensor *x, int T, int B,
                              const float *starts, const float *state_in, float *state_out,
                              mrl_tensor **dist, mrl_tensor **values) {
  mrl_actor_critic ac = mrl__trpo_ac(a);
  mrl_actor_critic_forward(&ac, g, x, T, B, starts, state_in, state_out, dist, values, NULL);
}

/* Rollout: num_steps vector steps into a->rollout, then GAE (truncations
 * bootstrapped from V of the final observation, as PPO here and SB3). */
static mrl_result mrl__trpo_collect(mrl_trpo *a, mrl_vecenv *env) {
  mrl_actor_critic ac = mrl__trpo_ac(a);
  return mrl_actor_critic_collect(&ac, &a->act_graph, &a->runner, env, &a->rollout, &a->rng,
                                  a->step_actions, a->step_values, a->cfg.gamma, a->cfg.gae_lambda,
                                  "trpo", a->error, sizeof a->error);
}

/* The policy over the whole rollout: one [T, B] sequence from the stored
 * initial states (the recurrent policies' truncated BPTT), on a->graph. */
static mrl_tensor *mrl__trpo_policy(mrl_trpo *a, int grad) {
  mrl_rollout *ro = &a->rollout;
  mrl_graph *g = &a->graph;
  mrl_tensor *x, *dist = NULL;
  mrl_graph_reset(g);
  mrl_graph_set_no_grad(g, !grad);
  x = mrl_tensor_from2(g, ro->obs, ro->num_steps * ro->num_envs, a->obs_dim);
  if (x)
    mrl__trpo_forward(a, g, x, ro->num_steps, ro->num_envs, ro->episode_starts,
                      a->state_dim ? ro->initial_state : NULL, NULL, &dist, NULL);
  return dist;
}

/* Per-row log-probability of the stored action and KL(new || old), in double,
 * summed into *obj (mean of adv * ratio) and *kl (mean KL); dist rows [N, P]. */
static void mrl__trpo_score(const mrl_trpo *a, const float *dist, double *obj, double *kl) {
  const mrl_rollout *ro = &a->rollout;
  int N = ro->num_steps * ro->num_envs, P = a->param_dim, i, d;
  double so = 0.0, sk = 0.0;
  for (i = 0; i < N; i++) {
    const float *z = dist + (size_t)i * P, *zo = a->old_dist + (size_t)i * P;
    const float *act = ro->actions + (size_t)i * a->raw_dim;
    double lp = 0.0, k = 0.0;
    if (a->num_actions > 0) { /* categorical logits */
      double m = z[0], mo = zo[0], s = 0.0, so_ = 0.0, lse, lseo;
      for (d = 1; d < P; d++) m = z[d] > m ? z[d] : m, mo = zo[d] > mo ? zo[d] : mo;
      for (d = 0; d < P; d++) s += exp(z[d] - m), so_ += exp(zo[d] - mo);
      lse = m + log(s), lseo = mo + log(so_);
      for (d = 0; d < P; d++) {
        double lpn = z[d] - lse, lpo = zo[d] - lseo;
        k += exp(lpn) * (lpn - lpo);
      }
      lp = z[(int)act[0]] - lse;
    } else { /* Gaussian [mean | log_std] */
      int D = P / 2;
      for (d = 0; d < D; d++) {
        double mu = z[d], ls = z[D + d], muo = zo[d], lso = zo[D + d], diff = act[d] - mu;
        lp += -diff * diff / (2.0 * exp(2.0 * ls)) - ls - 0.91893853320467274;
        k += lso - ls + (exp(2.0 * ls) + (mu - muo) * (mu - muo)) / (2.0 * exp(2.0 * lso)) - 0.5;
      }
    }
    so += (double)a->adv[i] * exp(lp - (double)ro->log_probs[i]);
    sk += k;
  }
  *obj = so / N;
  *kl = sk / N;
}

MRL_DEF mrl_result mrl_trpo_fisher_vector_product(mrl_trpo *a, const float *v, float *out) {
  mrl_graph *g = &a->graph;
  int N = a->rollout.num_steps * a->rollout.num_envs, P = a->param_dim, i, d;
  mrl_tensor *dist, *u, *loss;
  char why[160];
  mrl_result r;
  if (!v || !out) return MRL_ERR_INVALID_ARGUMENT;
  /* J v: the direction in the policy's gradient slots, the tape replayed forwards */
  mrl_params_zero_grad(&a->params);
  memcpy(a->params.grads, v, sizeof(float) * a->policy_size);
  if (!(dist = mrl__trpo_policy(a, 1))) return MRL_ERR_OUT_OF_MEMORY;
  if ((r = mrl_graph_jvp(g, mrl_mem_jvp_rule, why, sizeof why)) != MRL_OK) {
    mrl__say(a->error, sizeof a->error, "trpo: %s", why[0] ? why : mrl_result_string(r));
    return r;
  }
  /* u = M (J v) / N: the action distribution's Fisher in its own parameters, row by row */
  for (i = 0; i < N; i++) {
    const float *z = dist->data + (size_t)i * P, *t = dist->grad + (size_t)i * P;
    float *o = a->fisher_u + (size_t)i * P;
    if (a->num_actions > 0) { /* logits: (diag(p) - p p^T) t */
      double m = z[0], s = 0.0, pt = 0.0;
      for (d = 1; d < P; d++) m = z[d] > m ? z[d] : m;
      for (d = 0; d < P; d++) s += exp(z[d] - m);
      for (d = 0; d < P; d++) pt += exp(z[d] - m) / s * t[d];
      for (d = 0; d < P; d++) o[d] = (float)(exp(z[d] - m) / s * (t[d] - pt) / N);
    } else { /* [mean | log_std]: 1/sigma^2 on the mean, 2 on the log-std */
      int D = P / 2;
      for (d = 0; d < D; d++) {
        o[d] = (float)(t[d] * exp(-2.0 * z[D + d]) / N);
        o[D + d] = (float)(2.0 * t[D + d] / N);
      }
    }
  }
  /* J^T u: the tape now holds tangents, so a fresh forward pass, then backward of sum(dist u) */
  mrl_params_zero_grad(&a->params);
  dist = mrl__trpo_policy(a, 1);
  u = dist ? mrl_tensor_from(g, a->fisher_u, dist->ndim, dist->shape) : NULL;
  loss = mrl_sum(g, mrl_mul(g, dist, u));
  if (!loss) return MRL_ERR_OUT_OF_MEMORY;
  if ((r = mrl_backward(g, loss)) != MRL_OK) return r;
  memcpy(out, a->params.grads, sizeof(float) * a->policy_size);
  return MRL_OK;
}

static double mrl__trpo_dot(const float *x, const float *y, size_t n) {
  double s = 0.0;
  size_t i;
  for (i = 0; i < n; i++) s += (double)x[i] * y[i];
  return s;
}

/* (F + cg_damping I) v into out */
static mrl_result mrl__trpo_damped_fvp(mrl_trpo *a, const float *v, float *out) {
  size_t i;
  mrl_result r = mrl_trpo_fisher_vector_product(a, v, out);
  for (i = 0; r == MRL_OK && i < a->policy_size; i++) out[i] += a->cfg.cg_damping * v[i];
  return r;
}

/* The value function: n_critic_updates epochs of minibatches (whole
 * environment sequences for a recurrent critic), Adam on the mean squared
 * error. The policy's gradient slots stay zero, so Adam leaves it as it is. */
static mrl_result mrl__trpo_critic(mrl_trpo *a, mrl_trpo_update_stats *st) {
  mrl_rollout *ro = &a->rollout;
  mrl_minibatches *mb = &a->minibatches;
  mrl_graph *g = &a->graph;
  mrl_adam_config adam = mrl_adam_config_default();
  int S = a->state_dim, epoch, k, j, T, B, count = 0;
  double total = 0.0;
  adam.lr = a->cfg.learning_rate;
  adam.eps = a->cfg.adam_eps;
  for (epoch = 0; epoch < a->cfg.n_critic_updates; epoch++) {
    mrl_minibatches_shuffle(mb, &a->rng);
    for (k = 0; k < mb->num_minibatches; k++) {
      const int *envs;
      const int *rows = mrl_minibatches_get(mb, k, &T, &B, &envs);
      int N = T * B, shape[1];
      mrl_tensor *x, *values = NULL, *loss;
      for (j = 0; envs && j < B; j++)
        memcpy(a->mb_state + (size_t)j * S, ro->initial_state + (size_t)envs[j] * S,
               sizeof(float) * (size_t)S);
      mrl_copy_rows(ro->obs, a->obs_dim, rows, N, a->mb_obs);
      mrl_copy_rows(ro->episode_starts, 1, rows, N, a->mb_starts);
      mrl_copy_rows(ro->returns, 1, rows, N, a->mb_ret);
      mrl_graph_reset(g);
      mrl_graph_set_no_grad(g, 0);
      x = mrl_tensor_from2(g, a->mb_obs, N, a->obs_dim);
      if (x)
        mrl__trpo_forward(a, g, x, T, B, a->mb_starts, S ? a->mb_state : NULL, NULL, NULL, &values);
      shape[0] = N;
      loss =
          mrl_mean(g, mrl_square(g, mrl_sub(g, values, mrl_tensor_from(g, a->mb_ret, 1, shape))));
      if (!loss) return MRL_ERR_OUT_OF_MEMORY;
      mrl_params_zero_grad(&a->params);
      mrl_backward(g, loss);
      if (!mrl_update_guard(&a->params, loss->data[0], 0.0f)) {
        mrl__say(a->error, sizeof a->error,
                 "trpo: non-finite value loss (%g) or gradient: value step not applied",
                 loss->data[0]);
        return MRL_ERR_NON_FINITE;
      }
      mrl_adam_step(&a->params, &adam);
      total += loss->data[0];
      count++;
    }
  }
  st->value_loss = count ? (float)(total / count) : 0.0f;
  return MRL_OK;
}

static mrl_result mrl__trpo_update(mrl_trpo *a, mrl_trpo_update_stats *st);

MRL_DEF mrl_result mrl_trpo_update(mrl_trpo *a, mrl_trpo_update_stats *st) {
  mrl_trpo_update_stats local;
  mrl_rng rng0 = a->rng;
  mrl_result r;
  if (!st) st = &local;
  memset(st, 0, sizeof *st);
  mrl_update_backup_save(&a->backup, &a->params);
  if ((r = mrl__trpo_update(a, st)) != MRL_OK) { /* undone whole: parameters, moments, RNG */
    mrl_update_backup_restore(&a->backup, &a->params);
    a->rng = rng0;
  }
  return r;
}

static mrl_result mrl__trpo_update(mrl_trpo *a, mrl_trpo_update_stats *st) {
  mrl_rollout *ro = &a->rollout;
  mrl_graph *g = &a->graph;
  int N = ro->num_steps * ro->num_envs, P = a->param_dim, i, it, shape[1];
  size_t n = a->policy_size, j;
  float *theta = a->params.values, *x = a->search_dir;
  double obj0, kl, obj, rr, coeff, step, shs;
  mrl_tensor *dist, *logp = NULL, *objective;
  mrl_result r;
  /* advantages, normalised over the rollout (torch's unbiased std, + 1e-8) */
  memcpy(a->adv, ro->advantages, sizeof(float) * (size_t)N);
  if (a->cfg.normalize_advantage && N > 1) {
    double mean = 0.0, var = 0.0;
    for (i = 0; i < N; i++) mean += a->adv[i];
    mean /= N;
    for (i = 0; i < N; i++) var += (a->adv[i] - mean) * (a->adv[i] - mean);
    var /= (N - 1);
    for (i = 0; i < N; i++) a->adv[i] = (float)((a->adv[i] - mean) / (sqrt(var) + 1e-8));
  }
  /* theta_old's distributions, and the surrogate there */
  if (!(dist = mrl__trpo_policy(a, 0))) return MRL_ERR_OUT_OF_MEMORY;
  memcpy(a->old_dist, dist->data, sizeof(float) * (size_t)N * P);
  mrl__trpo_score(a, a->old_dist, &obj0, &kl);
  st->policy_objective = (float)obj0;
  /* g = grad of mean(A ratio) */
  mrl_params_zero_grad(&a->params);
  dist = mrl__trpo_policy(a, 1);
  if (dist) mrl_policy_head_evaluate(&a->policy, g, dist, ro->actions, &logp, NULL);
  shape[0] = N;
  objective = mrl_mean(
      g, mrl_mul(g, mrl_exp(g, mrl_sub(g, logp, mrl_tensor_from(g, ro->log_probs, 1, shape))),
                 mrl_tensor_from(g, a->adv, 1, shape)));
  if (!objective) return MRL_ERR_OUT_OF_MEMORY;
  mrl_backward(g, objective);
  memcpy(a->grad, a->params.grads, sizeof(float) * n);
  for (j = 0; j < n; j++)
    if (!mrl__finite(a->grad[j])) {
      mrl__say(a->error, sizeof a->error, "trpo: non-finite policy gradient: update not applied");
      return MRL_ERR_NON_FINITE;
    }
  /* conjugate gradient on (F + damping) x = g (SB3-contrib's solver, residual tol 1e-10) */
  memset(x, 0, sizeof(float) * n);
  memcpy(a->cg_r, a->grad, sizeof(float) * n);
  memcpy(a->cg_p, a->grad, sizeof(float) * n);
  rr = mrl__trpo_dot(a->cg_r, a->cg_r, n);
  for (it = 0; it < a->cfg.cg_max_steps; it++) {
    double alpha, rr_new;
    if ((r = mrl__trpo_damped_fvp(a, a->cg_p, a->cg_ap)) != MRL_OK) return r;
    alpha = mrl__trpo_dot(a->cg_p, a->cg_ap, n);
    if (!(alpha > 0.0) || !mrl__finite(alpha)) break; /* a zero gradient: x stays 0, no step */
    alpha = rr / alpha;
    for (j = 0; j < n; j++) x[j] += (float)alpha * a->cg_p[j];
    st->cg_iters = it + 1;
    if (it == a->cfg.cg_max_steps - 1) break;
    for (j = 0; j < n; j++) a->cg_r[j] -= (float)alpha * a->cg_ap[j];
    rr_new = mrl__trpo_dot(a->cg_r, a->cg_r, n);
    if (rr_new < 1e-10) break;
    for (j = 0; j < n; j++) a->cg_p[j] = a->cg_r[j] + (float)(rr_new / rr) * a->cg_p[j];
    rr = rr_new;
  }
  /* the largest step inside the trust region: sqrt(2 target_kl / x^T (F + damping) x) */
  if ((r = mrl__trpo_damped_fvp(a, x, a->cg_ap)) != MRL_OK) return r;
  shs = mrl__trpo_dot(x, a->cg_ap, n);
  step = (float)sqrt(2.0 * a->cfg.target_kl / shs);
  st->step_size = (float)step;
  /* backtracking line search: the KL constraint and an improvement of the surrogate */
  memcpy(a->theta0, theta, sizeof(float) * n);
  coeff = 1.0;
  for (it = 0; it < a->cfg.line_search_max_iter && mrl__finite(step); it++) {
    float c = (float)(coeff * step);
    for (j = 0; j < n; j++) theta[j] = a->theta0[j] + c * x[j];
    if (!(dist = mrl__trpo_policy(a, 0))) return MRL_ERR_OUT_OF_MEMORY;
    mrl__trpo_score(a, dist->data, &obj, &kl);
    st->line_search_iters = it + 1;
    if (kl < a->cfg.target_kl && obj > obj0) {
      st->line_search_success = 1;
      st->line_search_coeff = (float)coeff;
      st->new_objective = (float)obj;
      st->kl = (float)kl;
      break;
    }
    coeff *= a->cfg.line_search_shrinking_factor;
  }
  if (!st->line_search_success) { /* no acceptable step: the policy stays as it was */
    memcpy(theta, a->theta0, sizeof(float) * n);
    st->new_objective = (float)obj0;
  }
  /* the value function, fitted separately */
  return mrl__trpo_critic(a, st);
}

MRL_DEF mrl_result mrl_trpo_train(mrl_trpo *a, mrl_vecenv *env, long long env_steps,
                                  mrl_progress_fn progress, void *user) {
  long long batch = (long long)a->num_envs * a->cfg.num_steps, iters, it;
  long long steps0 = a->runner.env_steps;
  double t0 = mrl_wall_seconds();
  mrl_result r;
  if (!env || env->num_envs != a->num_envs || env->obs_dim != a->obs_dim ||
      env->num_actions != a->num_actions || env->action_dim != a->env_action_dim) {
    mrl__say(a->error, sizeof a->error,
             "mrl_trpo_train: not the vector env the agent was made for");
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (env_steps < 0) {
    mrl__say(a->error, sizeof a->error, "mrl_trpo_train: env_steps %lld is negative", env_steps);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  iters = env_steps / batch;
  if (iters == 0) return MRL_OK;
  if ((r = mrl_runner_start(&a->runner, env)) != MRL_OK) return r;
  for (it = 1; it <= iters; it++) {
    mrl_trpo_update_stats st;
    if ((r = mrl__trpo_collect(a, env)) != MRL_OK) return r;
    if ((r = mrl_trpo_update(a, &st)) != MRL_OK) return r;
    a->iterations++;
    if (progress) {
      mrl_train_progress p;
      mrl_runner_progress(&p, "trpo", env, &a->runner, steps0, t0);
      p.iteration = (int)it;
      p.num_iterations = (int)iters;
      p.learning_rate = a->cfg.learning_rate;
      mrl_progress_set(&p, "policy_objective", st.policy_objective);
      mrl_progress_set(&p, "kl", st.kl);
      mrl_progress_set(&p, "step_size", st.step_size);
      mrl_progress_set(&p, "line_search_success", (float)st.line_search_success);
      mrl_progress_set(&p, "cg_iters", (float)st.cg_iters);
      mrl_progress_set(&p, "value_loss", st.value_loss);
      mrl_progress_set(&p, "explained_variance",
                       mrl__explained_variance(a->rollout.values, a->rollout.returns, (int)batch));
      if (progress(&p, user)) break;
    }
  }
  return MRL_OK;
}

MRL_DEF mrl_result mrl_trpo_act(mrl_trpo *a, const float *obs, int n, const float *episode_start,
                                float *state, int greedy, mrl_rng *rng, float *actions) {
  mrl_actor_critic ac = mrl__trpo_ac(a);
  return mrl_actor_critic_act(&ac, &a->act_graph, a->cfg.normalize_obs ? &a->runner : NULL, obs, n,
                              episode_start, state, greedy, rng ? rng : &a->rng, actions);
}

static mrl_result mrl__trpo_act_fn(void *agent, const float *obs, int n, const float *episode_start,
                                   float *state, int greedy, mrl_rng *rng, float *actions) {
  return mrl_trpo_act((mrl_trpo *)agent, obs, n, episode_start, state, greedy, rng, actions);
}

MRL_DEF mrl_result mrl_trpo_evaluate(mrl_trpo *a, mrl_vecenv *env, int episodes, int greedy,
                                     mrl_episode_stats *stats) {
  mrl_rng rng = mrl_rng_make(a->cfg.seed ^ 0x5851f42d4c957f2dULL);
  if (!env || env->obs_dim != a->obs_dim || env->num_actions != a->num_actions ||
      env->action_dim != a->env_action_dim)
    return MRL_ERR_INVALID_ARGUMENT;
  return mrl_evaluate(mrl__trpo_act_fn, a, a->state_dim, env, episodes, greedy, &rng, stats);
}

/* TRPO's own state beyond the runner: its RNG and iteration count. */
static int mrl__trpo_extras(const mrl_trpo *a, mrl_checkpoint_extra *x) {
  x[0].name = "__trpo.rng";
  x[0].dtype = "U64";
  x[0].data = &a->rng;
  x[0].count = sizeof a->rng / sizeof(uint64_t);
  x[1].name = "__trpo.iterations";
  x[1].dtype = "I64";
  x[1].data = &a->iterations;
  x[1].count = 1;
  return 2;
}

MRL_DEF mrl_result mrl_trpo_save(const mrl_trpo *a, const char *path, const mrl_vecenv *env) {
  char config[4096];
  mrl_checkpoint_extra x[2];
  int n = mrl__trpo_extras(a, x);
  mrl_trpo_config_json(&a->cfg, config, sizeof config);
  return mrl_agent_save(path, &a->params, "trpo", config, &a->runner, env, x, n);
}

MRL_DEF mrl_result mrl_trpo_load(mrl_trpo *a, const char *path, mrl_vecenv *env) {
  char config[4096];
  mrl_checkpoint_extra x[2];
  int n = mrl__trpo_extras(a, x);
  mrl_trpo_config_json(&a->cfg, config, sizeof config);
  return mrl_agent_load(path, &a->params, "trpo", config, &a->runner, env, x, n, a->error,
                        sizeof a->error);
}

/* ---- IMPALA >>impala ---- */

MRL_DEF mrl_impala_config mrl_impala_config_default(void) {
  mrl_impala_config c;
  memset(&c, 0, sizeof c);
  c.seed = 1;
  c.unroll_length = 20;
  c.num_actors = 1;
  c.batch_size = 0;
  c.queue_capacity = 0;
  c.learning_rate = 6e-4f;
  c.anneal_lr = 1;
  c.total_steps = 0;
  c.gamma = 0.99f;
  c.rho_bar = c.c_bar = c.pg_rho_bar = 1.0f;
  c.baseline_cost = 0.5f;
  c.entropy_cost = 0.01f;
  c.max_grad_norm = 40.0f;
  c.rms_alpha = 0.99f;
  c.rms_eps = 0.01f;
  c.rms_momentum = 0.0f;
  c.rms_tf = 1;
  c.net = mrl_tower_config_default();
  c.popart = 0;
  c.popart_beta = 3e-4f;
  c.num_tasks = 1;
  return c;
}

MRL_DEF int mrl_impala_config_json(const mrl_impala_config *c, char *buf, size_t size) {
  const mrl_tower_config *n = &c->net;
  char enc[96], head[96], f[13][24], core[1024];
  mrl__tower_config_json(n, enc, head, core);
  return snprintf(
      buf, size,
      "{\"seed\":%llu,\"unroll_length\":%d,\"num_actors\":%d,\"batch_size\":%d,"
      "\"queue_capacity\":%d,\"learning_rate\":%s,\"anneal_lr\":%d,\"total_steps\":%lld,"
      "\"gamma\":%s,\"rho_bar\":%s,\"c_bar\":%s,\"pg_rho_bar\":%s,\"baseline_cost\":%s,"
      "\"entropy_cost\":%s,\"max_grad_norm\":%s,\"rms_alpha\":%s,\"rms_eps\":%s,"
      "\"rms_momentum\":%s,\"rms_tf\":%d,\"encoder_sizes\":[%s],\"core\":%s,\"head_sizes\":[%s],"
      "\"activation\":%d,\"use_conv\":%d,\"popart\":%d,\"popart_beta\":%s,\"num_tasks\":%d}",
      (unsigned long long)c->seed, c->unroll_length, c->num_actors, c->batch_size,
      c->queue_capacity, mrl__float_text(c->learning_rate, f[0], 24), c->anneal_lr, c->total_steps,
      mrl__float_text(c->gamma, f[1], 24), mrl__float_text(c->rho_bar, f[2], 24),
      mrl__float_text(c->c_bar, f[3], 24), mrl__float_text(c->pg_rho_bar, f[4], 24),
      mrl__float_text(c->baseline_cost, f[5], 24), mrl__float_text(c->entropy_cost, f[6], 24),
      mrl__float_text(c->max_grad_norm, f[7], 24), mrl__float_text(c->rms_alpha, f[8], 24),
      mrl__float_text(c->rms_eps, f[9], 24), mrl__float_text(c->rms_momentum, f[10], 24), c->rms_tf,
      enc, core, head, (int)n->activation, n->use_conv, c->popart,
      mrl__float_text(c->popart_beta, f[11], 24), c->num_tasks);
}

/* Names the first field of an IMPALA config that cannot work (error), or 0. */
static int mrl__impala_check_config(const mrl_impala_config *c, const mrl_vecenv *env, char *err,
                                    size_t n) {
  const char *const names[12] = {"learning_rate", "gamma",         "rho_bar",      "c_bar",
                                 "pg_rho_bar",    "baseline_cost", "entropy_cost", "max_grad_norm",
                                 "rms_alpha",     "rms_eps",       "rms_momentum", "popart_beta"};
  const float *f[12];
  int i, per;
  f[0] = &c->learning_rate, f[1] = &c->gamma, f[2] = &c->rho_bar, f[3] = &c->c_bar;
  f[4] = &c->pg_rho_bar, f[5] = &c->baseline_cost, f[6] = &c->entropy_cost;
  f[7] = &c->max_grad_norm, f[8] = &c->rms_alpha, f[9] = &c->rms_eps, f[10] = &c->rms_momentum;
  f[11] = &c->popart_beta;
  for (i = 0; i < 12; i++)
    if (!mrl__finite(*f[i])) {
      mrl__say(err, n, "mrl_impala_config.%s %g must be finite", names[i], *f[i]);
      return 1;
    }
#define MRL__REJECT(cond, ...)                                                                     \
  do {                                                                                             \
    if (cond) {                                                                                    \
      mrl__say(err, n, __VA_ARGS__);                                                               \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)
  MRL__REJECT(c->unroll_length < 1, "mrl_impala_config.unroll_length %d must be >= 1",
              c->unroll_length);
  MRL__REJECT(c->num_actors < 1 || env->num_envs % c->num_actors != 0,
              "mrl_impala_config.num_actors %d must be >= 1 and divide num_envs %d", c->num_actors,
              env->num_envs);
  per = env->num_envs / c->num_actors;
  MRL__REJECT(c->batch_size < 0 || c->batch_size % per != 0,
              "mrl_impala_config.batch_size %d must be a multiple of the %d environments of an "
              "actor (0: num_envs)",
              c->batch_size, per);
  MRL__REJECT((long long)(c->batch_size ? c->batch_size : env->num_envs) * (c->unroll_length + 1) >
                  INT_MAX / 8,
              "mrl_impala_config.batch_size %d x unroll_length %d is too large", c->batch_size,
              c->unroll_length);
  MRL__REJECT(c->queue_capacity < 0, "mrl_impala_config.queue_capacity %d must be >= 0",
              c->queue_capacity);
  MRL__REJECT(c->learning_rate < 0.0f, "mrl_impala_config.learning_rate %g must be >= 0",
              c->learning_rate);
  MRL__REJECT(c->gamma < 0.0f || c->gamma > 1.0f, "mrl_impala_config.gamma %g must be in [0, 1]",
              c->gamma);
  MRL__REJECT(c->rho_bar <= 0.0f || c->c_bar <= 0.0f || c->pg_rho_bar <= 0.0f,
              "mrl_impala_config.rho_bar %g, c_bar %g and pg_rho_bar %g must be > 0", c->rho_bar,
              c->c_bar, c->pg_rho_bar);
  MRL__REJECT(c->rms_alpha < 0.0f || c->rms_alpha >= 1.0f,
              "mrl_impala_config.rms_alpha %g must be in [0, 1)", c->rms_alpha);
  MRL__REJECT(c->rms_eps <= 0.0f, "mrl_impala_config.rms_eps %g must be > 0", c->rms_eps);
  MRL__REJECT(c->rms_momentum < 0.0f, "mrl_impala_config.rms_momentum %g must be >= 0",
              c->rms_momentum);
  MRL__REJECT(c->num_tasks < 1 || c->num_tasks > env->num_envs,
              "mrl_impala_config.num_tasks %d must be in 1..num_envs (%d)", c->num_tasks,
              env->num_envs);
  MRL__REJECT(c->popart && !(c->popart_beta > 0.0f && c->popart_beta <= 1.0f),
              "mrl_impala_config.popart_beta %g must be in (0, 1]", c->popart_beta);
  MRL__REJECT(c->total_steps < 0, "mrl_impala_config.total_steps %lld must be >= 0",
              c->total_steps);
  MRL__REJECT(env->num_actions < 1 && env->action_dim < 1, "the vector env has no actions");
#undef MRL__REJECT
  return 0;
}

/* The network, declared the same way for the learner and every actor, so
 * one memcpy of params.values copies the parameters. */
static mrl_result mrl__impala_net_init(mrl_impala_net *m, const mrl_impala_config *c,
                                       const mrl_vecenv *env, char *err, size_t n) {
  mrl_policy_head_config pc;
  mrl_result r;
  mrl_params_init(&m->params);
  if ((r = mrl_tower_init(&m->tower, &m->params, "net", env->obs_dim, &c->net, 0, err, n)) !=
      MRL_OK)
    return r;
  if (env->num_actions > 0) {
    pc = mrl_policy_head_config_default(MRL_POLICY_CATEGORICAL);
    pc.num_actions = env->num_actions;
  } else {
    pc = mrl_policy_head_config_default(MRL_POLICY_GAUSSIAN);
    pc.action_dim = env->action_dim;
    pc.action_low = mrl_env_action_low(env->envs[0]);
    pc.action_high = mrl_env_action_high(env->envs[0]);
  }
  if ((r = mrl_policy_head_init(&m->policy, &m->params, "policy", m->tower.output_dim, &pc)) !=
      MRL_OK) {
    mrl__say(err, n, "mrl_impala_init: no policy head fits the action space");
    return r;
  }
  mrl_linear_layer_init(&m->baseline, &m->params, "baseline", m->tower.output_dim, c->num_tasks,
                        mrl_init_default());
  if ((r = mrl_params_finalize(&m->params, c->seed)) != MRL_OK)
    mrl__say(err, n, "mrl_impala_init: %s", m->params.message);
  return r;
}

static void mrl__impala_net_free(mrl_impala_net *m) {
  mrl_tower_free(&m->tower);
  mrl_params_free(&m->params);
}

static mrl_result mrl__impala_traj_init(mrl_impala_trajectory *tr, int T, int b, int O, int R,
                                        int S) {
  size_t tb = (size_t)T * b, t1 = (size_t)(T + 1) * b;
  memset(tr, 0, sizeof *tr);
  tr->num_envs = b;
  tr->obs = (float *)MRL_MALLOC(sizeof(float) * t1 * O);
  tr->starts = (float *)MRL_MALLOC(sizeof(float) * t1);
  tr->actions = (float *)MRL_MALLOC(sizeof(float) * tb * R);
  /* the [T, b] arrays in one block */
  tr->behaviour_log_probs = (float *)MRL_MALLOC(sizeof(float) * tb * 8);
  tr->initial_state = (float *)MRL_MALLOC(sizeof(float) * ((size_t)b * S + 1));
  if (!tr->obs || !tr->starts || !tr->actions || !tr->behaviour_log_probs || !tr->initial_state)
    return MRL_ERR_OUT_OF_MEMORY;
  memset(tr->behaviour_log_probs, 0, sizeof(float) * tb * 8);
  memset(tr->initial_state, 0, sizeof(float) * ((size_t)b * S + 1));
  tr->rewards = tr->behaviour_log_probs + tb;
  tr->terminated = tr->rewards + tb;
  tr->truncated = tr->terminated + tb;
  tr->final_values = tr->truncated + tb;
  tr->episode_return = tr->final_values + tb;
  tr->episode_length = tr->episode_return + tb;
  tr->episode_success = tr->episode_length + tb;
  return MRL_OK;
}

static void mrl__impala_traj_free(mrl_impala_trajectory *tr) {
  MRL_FREE(tr->obs);
  MRL_FREE(tr->starts);
  MRL_FREE(tr->actions);
  MRL_FREE(tr->behaviour_log_probs);
  MRL_FREE(tr->initial_state);
  memset(tr, 0, sizeof *tr);
}

MRL_DEF mrl_result mrl_impala_init(mrl_impala *a, const mrl_impala_config *cfg,
                                   const mrl_vecenv *env) {
  mrl_runner_config rc = mrl_runner_config_default();
  mrl_result r = MRL_OK;
  int A, k, b, i;
  size_t N1;
  memset(a, 0, sizeof *a);
  if (!cfg || !env || env->num_envs < 1) {
    mrl__say(a->error, sizeof a->error, "mrl_impala_init: needs a config and a vector env");
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (mrl__impala_check_config(cfg, env, a->error, sizeof a->error))
    return MRL_ERR_INVALID_ARGUMENT;
  a->cfg = *cfg;
  A = cfg->num_actors;
  a->obs_dim = env->obs_dim;
  a->num_envs = env->num_envs;
  a->num_actions = env->num_actions;
  a->env_action_dim = env->action_dim;
  a->envs_per_actor = b = env->num_envs / A;
  a->batch_envs = cfg->batch_size ? cfg->batch_size : env->num_envs;
  a->num_slots = cfg->queue_capacity ? cfg->queue_capacity : a->batch_envs / b + A;
  if (a->num_slots < a->batch_envs / b) a->num_slots = a->batch_envs / b;
  if ((r = mrl__impala_net_init(&a->net, cfg, env, a->error, sizeof a->error)) != MRL_OK) goto fail;
  a->raw_dim = mrl_policy_head_raw_dim(&a->net.policy);
  a->state_dim = a->net.tower.state_dim;
  if (cfg->popart && (r = mrl_popart_init(&a->popart, cfg->num_tasks, cfg->popart_beta)) != MRL_OK)
    goto fail;
  if ((r = mrl_graph_init(&a->graph, (size_t)1 << 22)) != MRL_OK ||
      (r = mrl_graph_init(&a->act_graph, (size_t)1 << 18)) != MRL_OK)
    goto fail;
  a->rng = mrl_rng_make(cfg->seed ^ 0x9e3779b97f4a7c15ULL);
  mrl_episode_stats_init(&a->stats);
  a->env_task = (int *)MRL_MALLOC(sizeof(int) * (size_t)a->num_envs);
  a->actors = (mrl_impala_actor *)MRL_MALLOC(sizeof(mrl_impala_actor) * (size_t)A);
  a->slots =
      (mrl_impala_trajectory *)MRL_MALLOC(sizeof(mrl_impala_trajectory) * (size_t)a->num_slots);
  if (a->actors) memset(a->actors, 0, sizeof(mrl_impala_actor) * (size_t)A);
  if (a->slots) memset(a->slots, 0, sizeof(mrl_impala_trajectory) * (size_t)a->num_slots);
  if (!a->env_task || !a->actors || !a->slots) {
    r = MRL_ERR_OUT_OF_MEMORY;
    goto fail;
  }
  for (i = 0; i < a->num_envs; i++)
    a->env_task[i] = (int)((long long)i * cfg->num_tasks / a->num_envs);
  for (i = 0; i < a->num_slots; i++)
    if ((r = mrl__impala_traj_init(&a->slots[i], cfg->unroll_length, b, a->obs_dim, a->raw_dim,
                                   a->state_dim)) != MRL_OK)
      goto fail;
  for (k = 0; k < A; k++) {
    mrl_impala_actor *ac = &a->actors[k];
    ac->agent = a;
    ac->index = k;
    ac->env_offset = k * b;
    ac->num_envs = b;
    if ((r = mrl__impala_net_init(&ac->net, cfg, env, a->error, sizeof a->error)) != MRL_OK)
      goto fail;
    if (cfg->popart &&
        (r = mrl_popart_init(&ac->popart, cfg->num_tasks, cfg->popart_beta)) != MRL_OK)
      goto fail;
    if (A == 1) {
      ac->env = (mrl_vecenv *)env; /* stepped only by train, which gets it non-const */
    } else {
      /* a view over the block: the environments stay the training vector's */
      uint64_t seed = env->seed + 0x9e3779b97f4a7c15ULL * (uint64_t)(k + 1);
      if ((r = mrl__vecenv_view_init(&ac->view, env, ac->env_offset, b, seed)) != MRL_OK) {
        mrl__say(a->error, sizeof a->error, "mrl_impala_init: actor %d: %s", k, ac->view.error);
        goto fail;
      }
      ac->env = &ac->view;
    }
    if ((r = mrl_runner_init(&ac->runner, ac->env, a->state_dim, &rc, a->error, sizeof a->error)) !=
            MRL_OK ||
        (r = mrl_graph_init(&ac->graph, (size_t)1 << 18)) != MRL_OK)
      goto fail;
    ac->rng = mrl_rng_make(cfg->seed * 0x2545f4914f6cdd1dULL + (uint64_t)k + 1);
    ac->step_actions = (float *)MRL_MALLOC(sizeof(float) * (size_t)b * a->env_action_dim);
    if (!ac->step_actions) {
      r = MRL_ERR_OUT_OF_MEMORY;
      goto fail;
    }
    ac->version = -1; /* fetches before its first unroll */
  }
  if ((r = mrl_queue_init(&a->free_slots, a->num_slots)) != MRL_OK ||
      (r = mrl_queue_init(&a->full_slots, a->num_slots)) != MRL_OK)
    goto fail;
  for (i = 0; i < a->num_slots; i++) mrl_queue_push(&a->free_slots, i);
  N1 = (size_t)(cfg->unroll_length + 1) * a->batch_envs;
  a->b_obs = (float *)MRL_MALLOC(sizeof(float) * N1 * a->obs_dim);
  a->b_starts = (float *)MRL_MALLOC(sizeof(float) * N1);
  a->b_actions = (float *)MRL_MALLOC(sizeof(float) * N1 * a->raw_dim);
  a->b_state = (float *)MRL_MALLOC(sizeof(float) * ((size_t)a->batch_envs * a->state_dim + 1));
  a->b_scalars = (float *)MRL_MALLOC(sizeof(float) * N1 * 12);
  a->b_tasks = (int *)MRL_MALLOC(sizeof(int) * N1);
  a->published = (float *)MRL_MALLOC(sizeof(float) * a->net.params.total);
  a->published_mu = (double *)MRL_MALLOC(sizeof(double) * 2 * (size_t)cfg->num_tasks);
  if (!a->b_obs || !a->b_starts || !a->b_actions || !a->b_state || !a->b_scalars || !a->b_tasks ||
      !a->published || !a->published_mu) {
    r = MRL_ERR_OUT_OF_MEMORY;
    goto fail;
  }
  a->published_nu = a->published_mu + cfg->num_tasks;
#ifdef MRL_THREADS
  {
    mrl_mutex *m = (mrl_mutex *)MRL_MALLOC(sizeof(mrl_mutex));
    if (!m || mrl_mutex_init(m) != MRL_OK) {
      MRL_FREE(m);
      r = MRL_ERR_OUT_OF_MEMORY;
      goto fail;
    }
    a->lock = m;
  }
#endif
  return MRL_OK;
fail:
  if (r == MRL_OK) r = MRL_ERR_INVALID_ARGUMENT;
  if (r == MRL_ERR_OUT_OF_MEMORY && !a->error[0])
    mrl__say(a->error, sizeof a->error, "mrl_impala_init: out of memory");
  {
    char keep[MRL_ERROR_SIZE];
    memcpy(keep, a->error, sizeof keep);
    mrl_impala_free(a);
    memcpy(a->error, keep, sizeof keep);
  }
  return r;
}

MRL_DEF void mrl_impala_free(mrl_impala *a) {
  int k, i;
  mrl__impala_net_free(&a->net);
  mrl_popart_free(&a->popart);
  mrl_graph_free(&a->graph);
  mrl_graph_free(&a->act_graph);
  for (k = 0; a->actors && k < a->cfg.num_actors; k++) {
    mrl_impala_actor *ac = &a->actors[k];
    mrl__impala_net_free(&ac->net);
    mrl_popart_free(&ac->popart);
    mrl_graph_free(&ac->graph);
    mrl_runner_free(&ac->runner);
    mrl__vecenv_view_free(&ac->view);
    MRL_FREE(ac->step_actions);
  }
  for (i = 0; a->slots && i < a->num_slots; i++) mrl__impala_traj_free(&a->slots[i]);
  mrl_queue_free(&a->free_slots);
  mrl_queue_free(&a->full_slots);
#ifdef MRL_THREADS
  if (a->lock) mrl_mutex_free((mrl_mutex *)a->lock);
#endif
  MRL_FREE(a->lock);
  MRL_FREE(a->actors);
  MRL_FREE(a->slots);
  MRL_FREE(a->env_task);
  MRL_FREE(a->b_obs);
  MRL_FREE(a->b_starts);
  MRL_FREE(a->b_actions);
  MRL_FREE(a->b_state);
  MRL_FREE(a->b_scalars);
  MRL_FREE(a->b_tasks);
  MRL_FREE(a->published);
  MRL_FREE(a->published_mu);
  memset(a, 0, sizeof *a);
}

MRL_DEF int mrl_impala_state_dim(const mrl_impala *a) {
  return a->state_dim;
}

/* Distribution parameters [T*B, P] and the baseline's outputs [T*B, K] of
 * observations x [T*B, obs] (either may be NULL). */
static void mrl__impala_forward(const mrl_impala_net *m, mrl_graph *g, mrl_tensor *x, int T, int B,
                                const float *starts, const float *state_in, float *state_out, int S,
                                mrl_tensor **dist, mrl_tensor **baseline) {
  mrl_tensor *f = mrl_tower_forward(&m->tower, g, x, T, B, starts, state_in, state_out, S);
  if (dist) *dist = mrl_policy_head_forward(&m->policy, g, f);
  if (baseline) *baseline = mrl_linear_layer_forward(&m->baseline, g, f);
}

/* The actor's copy of the learner's parameters (and PopArt statistics). */
static void mrl__impala_fetch(mrl_impala *a, mrl_impala_actor *ac) {
  int K = a->cfg.num_tasks;
  size_t bytes = sizeof(float) * a->net.params.total;
  if (a->cfg.num_actors == 1 || !a->lock) { /* synchronous: the learner's current parameters */
    if (ac->version == a->iterations) return;
    memcpy(ac->net.params.values, a->net.params.values, bytes);
    if (a->cfg.popart) {
      memcpy(ac->popart.mu, a->popart.mu, sizeof(double) * K);
      memcpy(ac->popart.nu, a->popart.nu, sizeof(double) * K);
    }
    ac->version = a->iterations;
    return;
  }
#ifdef MRL_THREADS
  mrl_mutex_lock((mrl_mutex *)a->lock);
  if (ac->version != a->published_version) {
    memcpy(ac->net.params.values, a->published, bytes);
    if (a->cfg.popart) {
      memcpy(ac->popart.mu, a->published_mu, sizeof(double) * K);
      memcpy(ac->popart.nu, a->published_nu, sizeof(double) * K);
    }
    ac->version = a->published_version;
  }
  mrl_mutex_unlock((mrl_mutex *)a->lock);
#endif
}

/* The learner's parameters, for actor threads to fetch. */
static void mrl__impala_publish(mrl_impala *a) {
#ifdef MRL_THREADS
  int K = a->cfg.num_tasks;
  if (!a->lock) return;
  mrl_mutex_lock((mrl_mutex *)a->lock);
  memcpy(a->published, a->net.params.values, sizeof(float) * a->net.params.total);
  if (a->cfg.popart) {
    memcpy(a->published_mu, a->popart.mu, sizeof(double) * K);
    memcpy(a->published_nu, a->popart.nu, sizeof(double) * K);
  }
  a->published_version = a->iterations;
  mrl_mutex_unlock((mrl_mutex *)a->lock);
#else
  (void)a;
#endif
}

/* A (denormalised) value from the baseline's row of outputs for task k. */
static float mrl__impala_value(const mrl_impala_config *c, const mrl_popart *p, const float *row,
                               int k) {
  float v = row[k];
  if (c->popart) mrl_popart_denormalize(p, &v, &k, 1, &v);
  return v;
}

/* One unroll of actor ac on its environments into tr. */
static mrl_result mrl__impala_unroll(mrl_impala *a, mrl_impala_actor *ac,
                                     mrl_impala_trajectory *tr) {
  mrl_runner *run = &ac->runner;
  mrl_vecenv *env = ac->env;
  mrl_graph *g = &ac->graph;
  int T = a->cfg.unroll_length, b = ac->num_envs, O = a->obs_dim, R = a->raw_dim;
  int S = a->state_dim, t, j;
  mrl_result r;
  tr->actor = ac->index;
  tr->policy_version = ac->version;
  memcpy(tr->initial_state, run->state, sizeof(float) * (size_t)b * S);
  for (t = 0; t < T; t++) {
    size_t row = (size_t)t * b;
    mrl_tensor *x, *dist = NULL;
    mrl_graph_reset(g);
    mrl_graph_set_no_grad(g, 1);
    x = mrl_tensor_from2(g, run->obs, b, O);
    if (x)
      mrl__impala_forward(&ac->net, g, x, 1, b, run->episode_start, run->state, run->state, S,
                          &dist, NULL);
    if (!dist) return MRL_ERR_OUT_OF_MEMORY;
    memcpy(tr->obs + row * O, run->obs, sizeof(float) * (size_t)b * O);
    memcpy(tr->starts + row, run->episode_start, sizeof(float) * (size_t)b);
    mrl_policy_head_act(&ac->net.policy, dist->data, b, 0, &ac->rng, NULL, tr->actions + row * R,
                        tr->behaviour_log_probs + row);
    mrl_policy_head_env_action(&ac->net.policy, tr->actions + row * R, b, ac->step_actions);
    if ((r = mrl_runner_step(run, env, ac->step_actions)) != MRL_OK) {
      mrl__say(ac->error, sizeof ac->error, "impala: actor %d: %s", ac->index,
               env->error[0] ? env->error : mrl_result_string(r));
      return r;
    }
    memcpy(tr->rewards + row, run->rewards, sizeof(float) * (size_t)b);
    memcpy(tr->terminated + row, run->terminated, sizeof(float) * (size_t)b);
    memcpy(tr->truncated + row, run->truncated, sizeof(float) * (size_t)b);
    for (j = 0; j < b; j++) {
      int ended = run->terminated[j] != 0.0f || run->truncated[j] != 0.0f;
      tr->episode_return[row + j] = ended ? env->episode_return[j] : 0.0f;
      tr->episode_length[row + j] = ended ? (float)env->episode_length[j] : 0.0f;
      tr->episode_success[row + j] = ended ? (float)env->episode_success[j] : -1.0f;
      tr->final_values[row + j] = 0.0f;
      if (run->truncated[j] != 0.0f) { /* V(final observation), the state of its episode */
        mrl_tensor *xf, *v = NULL;
        float zero = 0.0f;
        mrl_graph_reset(g);
        xf = mrl_tensor_from2(g, run->final_obs + (size_t)j * O, 1, O);
        if (xf)
          mrl__impala_forward(&ac->net, g, xf, 1, 1, &zero, run->state + (size_t)j * S, NULL, S,
                              NULL, &v);
        if (!v) return MRL_ERR_OUT_OF_MEMORY;
        tr->final_values[row + j] =
            mrl__impala_value(&a->cfg, &ac->popart, v->data, a->env_task[ac->env_offset + j]);
      }
    }
  }
  memcpy(tr->obs + (size_t)T * b * O, run->obs, sizeof(float) * (size_t)b * O);
  memcpy(tr->starts + (size_t)T * b, run->episode_start, sizeof(float) * (size_t)b);
  return MRL_OK;
}

MRL_DEF mrl_result mrl_impala_update(mrl_impala *a, mrl_impala_trajectory *const *items, int n,
                                     float lr, mrl_impala_update_stats *st) {
  mrl_graph *g = &a->graph;
  const mrl_impala_config *c = &a->cfg;
  int T = c->unroll_length, O = a->obs_dim, R = a->raw_dim, S = a->state_dim, K = c->num_tasks;
  int Bt = 0, N, N1, i, t, j, col, shape[1];
  float *log_rho, *disc, *rew, *values, *vs, *adv, *mask, *vtarget, *pg_w, *boot;
  mrl_tensor *x, *dist = NULL, *base = NULL, *logp = NULL, *ent_rows = NULL, *v, *pg, *bl, *ent;
  mrl_tensor *loss;
  mrl_impala_update_stats local;
  double rho_sum = 0.0, lag = 0.0;
  if (!st) st = &local;
  memset(st, 0, sizeof *st);
  for (i = 0; i < n; i++) Bt += items[i]->num_envs;
  if (n < 1 || Bt > a->batch_envs || !mrl__finite(lr)) return MRL_ERR_INVALID_ARGUMENT;
  N = T * Bt;
  N1 = N + Bt;
  log_rho = a->b_scalars, disc = log_rho + N1, rew = disc + N1, values = rew + N1;
  vs = values + N1, adv = vs + N1, mask = adv + N1, vtarget = mask + N1, pg_w = vtarget + N1;
  boot = pg_w + N1;
  /* the batch: each trajectory's columns side by side, time-major [T+1, Bt] */
  for (i = 0, col = 0; i < n; col += items[i]->num_envs, i++) {
    const mrl_impala_trajectory *tr = items[i];
    int b = tr->num_envs, off = a->actors[tr->actor].env_offset;
    for (t = 0; t <= T; t++) {
      size_t dst = (size_t)t * Bt + col, src = (size_t)t * b;
      memcpy(a->b_obs + dst * O, tr->obs + src * O, sizeof(float) * (size_t)b * O);
      memcpy(a->b_starts + dst, tr->starts + src, sizeof(float) * (size_t)b);
      for (j = 0; j < b; j++) a->b_tasks[dst + j] = a->env_task[off + j];
      if (t == T) {
        memset(a->b_actions + dst * R, 0, sizeof(float) * (size_t)b * R);
        continue;
      }
      memcpy(a->b_actions + dst * R, tr->actions + src * R, sizeof(float) * (size_t)b * R);
      for (j = 0; j < b; j++) {
        float term = tr->terminated[src + j], trunc = tr->truncated[src + j];
        log_rho[dst + j] = -tr->behaviour_log_probs[src + j]; /* + log pi below */
        rew[dst + j] = tr->rewards[src + j];
        disc[dst + j] = term != 0.0f || trunc != 0.0f ? 0.0f : c->gamma;
        if (trunc != 0.0f && term == 0.0f) rew[dst + j] += c->gamma * tr->final_values[src + j];
      }
    }
    memcpy(a->b_state + (size_t)col * S, tr->initial_state, sizeof(float) * (size_t)b * S);
    lag += (double)(a->iterations - tr->policy_version);
  }
  /* the learner's network over all T+1 steps (the last gives the bootstrap value) */
  mrl_graph_reset(g);
  mrl_graph_set_no_grad(g, 0);
  x = mrl_tensor_from2(g, a->b_obs, N1, O);
  if (x)
    mrl__impala_forward(&a->net, g, x, T + 1, Bt, a->b_starts, S ? a->b_state : NULL, NULL, S,
                        &dist, &base);
  if (dist) mrl_policy_head_evaluate(&a->net.policy, g, dist, a->b_actions, &logp, &ent_rows);
  if (!logp || !ent_rows || !base) {
    mrl__say(a->error, sizeof a->error, "impala: out of memory in the update");
    return MRL_ERR_OUT_OF_MEMORY;
  }
  for (i = 0; i < N1; i++)
    values[i] = mrl__impala_value(c, &a->popart, base->data + (size_t)i * K, a->b_tasks[i]);
  for (i = 0; i < N; i++) log_rho[i] += logp->data[i];
  memcpy(boot, values + N, sizeof(float) * (size_t)Bt);
  mrl_vtrace(T, Bt, log_rho, disc, rew, values, boot, c->rho_bar, c->c_bar, c->pg_rho_bar, vs, adv);
  for (i = 0; i < N1; i++) {
    int k = a->b_tasks[i];
    float sigma = c->popart ? mrl_popart_sigma(&a->popart, k) : 1.0f;
    mask[i] = i < N ? 1.0f : 0.0f;
    pg_w[i] = i < N ? adv[i] / sigma : 0.0f; /* PopArt: advantages in normalised units */
    vtarget[i] = i < N ? vs[i] : 0.0f;
    if (c->popart && i < N) mrl_popart_normalize(&a->popart, &vs[i], &k, 1, &vtarget[i]);
    if (i < N) {
      double r = exp((double)log_rho[i]);
      rho_sum += r < c->rho_bar ? r : c->rho_bar;
    }
  }
  /* the baseline's output for each row's task: a one-hot mask over the K outputs */
  if (K == 1) {
    shape[0] = N1;
    v = mrl_reshape(g, base, 1, shape);
  } else {
    float *onehot = (float *)mrl_graph_alloc(g, sizeof(float) * (size_t)N1 * K);
    mrl_tensor *oh;
    if (!onehot) return MRL_ERR_OUT_OF_MEMORY;
    memset(onehot, 0, sizeof(float) * (size_t)N1 * K);
    for (i = 0; i < N1; i++) onehot[(size_t)i * K + a->b_tasks[i]] = 1.0f;
    oh = mrl_tensor_from2(g, onehot, N1, K);
    v = mrl_sum_rows(g, mrl_mul(g, base, oh));
  }
  shape[0] = N1;
  /* pg = -sum log pi(a_t) pg_adv_t; baseline = 0.5 sum (vs_t - V(x_t))^2; entropy = sum H_t */
  pg = mrl_neg(g, mrl_sum(g, mrl_mul(g, logp, mrl_tensor_from(g, pg_w, 1, shape))));
  bl = mrl_scale(
      g,
      mrl_sum(g, mrl_mul(g, mrl_square(g, mrl_sub(g, mrl_tensor_from(g, vtarget, 1, shape), v)),
                         mrl_tensor_from(g, mask, 1, shape))),
      0.5f);
  ent = mrl_sum(g, mrl_mul(g, ent_rows, mrl_tensor_from(g, mask, 1, shape)));
  loss = mrl_sub(g, mrl_add(g, pg, mrl_scale(g, bl, c->baseline_cost)),
                 mrl_scale(g, ent, c->entropy_cost));
  if (!loss) {
    mrl__say(a->error, sizeof a->error, "impala: out of memory in the update");
    return MRL_ERR_OUT_OF_MEMORY;
  }
  mrl_params_zero_grad(&a->net.params);
  mrl_backward(g, loss);
  if (!mrl_update_guard(&a->net.params, loss->data[0], c->max_grad_norm)) {
    mrl__say(a->error, sizeof a->error,
             "impala: non-finite loss (%g) or gradient at learner step %lld: not applied",
             loss->data[0], a->iterations + 1);
    return MRL_ERR_NON_FINITE;
  }
  {
    mrl_rmsprop_config rc = c->rms_tf ? mrl_rmsprop_config_tf() : mrl_rmsprop_config_default();
    mrl_result r;
    rc.lr = lr;
    rc.alpha = c->rms_alpha;
    rc.eps = c->rms_eps;
    rc.momentum = c->rms_momentum;
    if ((r = mrl_rmsprop_step(&a->net.params, &rc)) != MRL_OK) return r;
  }
  /* PopArt: the statistics move towards this batch's targets, the outputs stay */
  if (c->popart) mrl_popart_update(&a->popart, &a->net.params, &a->net.baseline, vs, a->b_tasks, N);
  a->iterations++;
  st->policy_loss = pg->data[0] / N;
  st->baseline_loss = bl->data[0] / N;
  st->entropy = ent->data[0] / N;
  st->mean_rho = rho_sum / N;
  st->policy_lag = lag / n;
  return MRL_OK;
}

/* Adds the episodes that ended inside trajectory tr to the agent's statistics. */
static void mrl__impala_record(mrl_impala *a, const mrl_impala_trajectory *tr) {
  int T = a->cfg.unroll_length, b = tr->num_envs, t, j;
  for (t = 0; t < T; t++)
    for (j = 0; j < b; j++) {
      size_t i = (size_t)t * b + j;
      if (tr->terminated[i] != 0.0f || tr->truncated[i] != 0.0f)
        mrl_episode_stats_add(&a->stats, tr->episode_return[i], (int)tr->episode_length[i],
                              (int)tr->episode_success[i]);
    }
  a->env_steps += (long long)T * b;
}

#ifdef MRL_THREADS
static void mrl__impala_actor_main(void *arg) {
  mrl_impala_actor *ac = (mrl_impala_actor *)arg;
  mrl_impala *a = (mrl_impala *)ac->agent;
  int slot;
  while (mrl_queue_pop(&a->free_slots, &slot) == MRL_OK) {
    mrl_impala_trajectory *tr = &a->slots[slot];
    mrl__impala_fetch(a, ac);
    tr->status = mrl__impala_unroll(a, ac, tr);
    mrl_queue_push(&a->full_slots, slot); /* never full: there are as many slots as room */
    if (tr->status != MRL_OK) break;
  }
}
#endif

/* The trajectories of one learner step into items: from the actor threads'
 * queue, or (synchronous) unrolled here by the actors in turn. */
static mrl_result mrl__impala_gather(mrl_impala *a, int threaded, mrl_impala_trajectory **items,
                                     int *count) {
  int n = 0, cols = 0, slot;
  mrl_result r;
  while (cols < a->batch_envs) {
    mrl_impala_trajectory *tr;
    if (threaded) {
      if (mrl_queue_pop(&a->full_slots, &slot) != MRL_OK) return MRL_ERR_INVALID_ARGUMENT;
    } else {
      mrl_impala_actor *ac = &a->actors[a->next_actor];
      if (mrl_queue_pop(&a->free_slots, &slot) != MRL_OK) return MRL_ERR_INVALID_ARGUMENT;
      a->next_actor = (a->next_actor + 1) % a->cfg.num_actors;
      mrl__impala_fetch(a, ac);
      a->slots[slot].status = mrl__impala_unroll(a, ac, &a->slots[slot]);
    }
    tr = &a->slots[slot];
    items[n++] = tr;
    cols += tr->num_envs;
    if (tr->status != MRL_OK) {
      mrl__say(a->error, sizeof a->error, "%s", a->actors[tr->actor].error);
      r = tr->status;
      *count = n;
      return r;
    }
  }
  *count = n;
  return MRL_OK;
}

MRL_DEF mrl_result mrl_impala_train(mrl_impala *a, mrl_vecenv *env, long long env_steps,
                                    mrl_progress_fn progress, void *user) {
  long long batch = (long long)a->batch_envs * a->cfg.unroll_length, iters, it, span, done;
  long long steps0 = a->env_steps;
  double t0 = mrl_wall_seconds();
  int k, n = 0, i, threaded = 0, stop = 0;
  mrl_impala_trajectory *items[64], **pitems = items;
  mrl_result r = MRL_OK;
  if (!env || env->num_envs != a->num_envs || env->obs_dim != a->obs_dim ||
      env->num_actions != a->num_actions || env->action_dim != a->env_action_dim ||
      (a->cfg.num_actors > 1 && a->actors[0].view.envs[0] != env->envs[0])) {
    mrl__say(a->error, sizeof a->error,
             "mrl_impala_train: not the vector env the agent was made for");
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (env_steps < 0) {
    mrl__say(a->error, sizeof a->error, "mrl_impala_train: env_steps %lld is negative", env_steps);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  iters = env_steps / batch;
  if (iters == 0) return MRL_OK;
  if (a->num_slots > 64) {
    pitems = (mrl_impala_trajectory **)MRL_MALLOC(sizeof(void *) * (size_t)a->num_slots);
    if (!pitems) return MRL_ERR_OUT_OF_MEMORY;
  }
  span = a->cfg.total_steps > 0 ? a->cfg.total_steps / batch : iters;
  done = a->cfg.total_steps > 0 ? a->iterations : 0;
  if (a->cfg.num_actors == 1) a->actors[0].env = env;
  for (k = 0; k < a->cfg.num_actors; k++)
    if ((r = mrl_runner_start(&a->actors[k].runner, a->actors[k].env)) != MRL_OK) goto out;
#ifdef MRL_THREADS
  if (a->cfg.num_actors > 1) { /* the actor threads, acting on published parameters */
    threaded = 1;
    mrl__impala_publish(a);
    mrl_queue_reopen(&a->free_slots);
    for (k = 0; k < a->cfg.num_actors; k++)
      if ((r = mrl_thread_start(&a->actors[k].thread, mrl__impala_actor_main, &a->actors[k])) !=
          MRL_OK) {
        mrl_queue_close(&a->free_slots);
        while (--k >= 0) mrl_thread_join(&a->actors[k].thread);
        goto out;
      }
  }
#endif
  for (it = 1; it <= iters && !stop; it++) {
    float lr = a->cfg.learning_rate;
    mrl_impala_update_stats st;
    if (a->cfg.anneal_lr) lr = mrl_lr_linear(lr, 0.0f, done + it - 1, span);
    /* collect */
    r = mrl__impala_gather(a, threaded, pitems, &n);
    /* targets and update */
    if (r == MRL_OK) r = mrl_impala_update(a, pitems, n, lr, &st);
    if (r == MRL_OK) mrl__impala_publish(a);
    for (i = 0; i < n; i++) {
      if (r == MRL_OK) mrl__impala_record(a, pitems[i]);
      mrl_queue_push(&a->free_slots, (int)(pitems[i] - a->slots));
    }
    if (r != MRL_OK) break;
    /* report */
    if (progress) {
      mrl_train_progress p;
      memset(&p, 0, sizeof p);
      p.algo = "impala";
      p.env_id = mrl_env_id(env->envs[0]);
      p.iteration = (int)it;
      p.num_iterations = (int)iters;
      p.env_steps = a->env_steps;
      p.seconds = mrl_wall_seconds() - t0;
      p.steps_per_second = p.seconds > 0.0 ? (double)(a->env_steps - steps0) / p.seconds : 0.0;
      p.episodes = a->stats.total_episodes;
      p.mean_return = mrl_episode_stats_mean_return(&a->stats);
      p.mean_length = mrl_episode_stats_mean_length(&a->stats);
      p.success_rate = mrl_episode_stats_success_rate(&a->stats);
      p.learning_rate = lr;
      mrl_progress_set(&p, "policy_loss", (float)st.policy_loss);
      mrl_progress_set(&p, "baseline_loss", (float)st.baseline_loss);
      mrl_progress_set(&p, "entropy", (float)st.entropy);
      mrl_progress_set(&p, "mean_rho", (float)st.mean_rho);
      mrl_progress_set(&p, "policy_lag", (float)st.policy_lag);
      if (a->cfg.popart) mrl_progress_set(&p, "popart_sigma", mrl_popart_sigma(&a->popart, 0));
      if (progress(&p, user)) stop = 1;
    }
  }
#ifdef MRL_THREADS
  if (threaded) { /* unrolls in flight land in full_slots and wait for the next call */
    mrl_queue_close(&a->free_slots);
    for (k = 0; k < a->cfg.num_actors; k++) mrl_thread_join(&a->actors[k].thread);
  }
#endif
out:
  if (pitems != items) MRL_FREE(pitems);
  return r;
}

MRL_DEF mrl_result mrl_impala_act(mrl_impala *a, const float *obs, int n,
                                  const float *episode_start, float *state, int greedy,
                                  mrl_rng *rng, float *actions) {
  mrl_graph *g = &a->act_graph;
  mrl_tensor *x, *dist = NULL;
  if (n < 1 || !obs || !actions || (a->state_dim && !state)) return MRL_ERR_INVALID_ARGUMENT;
  mrl_graph_reset(g);
  mrl_graph_set_no_grad(g, 1);
  x = mrl_tensor_from2(g, obs, n, a->obs_dim);
  if (x)
    mrl__impala_forward(&a->net, g, x, 1, n, episode_start, state, state, a->state_dim, &dist,
                        NULL);
  if (!dist) return mrl_graph_status(g) != MRL_OK ? mrl_graph_status(g) : MRL_ERR_OUT_OF_MEMORY;
  mrl_policy_head_act(&a->net.policy, dist->data, n, greedy, rng ? rng : &a->rng, NULL, actions,
                      NULL);
  mrl_policy_head_env_action(&a->net.policy, actions, n, actions);
  mrl_graph_reset(g);
  return MRL_OK;
}

static mrl_result mrl__impala_act_fn(void *agent, const float *obs, int n,
                                     const float *episode_start, float *state, int greedy,
                                     mrl_rng *rng, float *actions) {
  return mrl_impala_act((mrl_impala *)agent, obs, n, episode_start, state, greedy, rng, actions);
}

MRL_DEF mrl_result mrl_impala_evaluate(mrl_impala *a, mrl_vecenv *env, int episodes, int greedy,
                                       mrl_episode_stats *stats) {
  mrl_rng rng = mrl_rng_make(a->cfg.seed ^ 0x5851f42d4c957f2dULL);
  if (!env || env->obs_dim != a->obs_dim || env->num_actions != a->num_actions ||
      env->action_dim != a->env_action_dim)
    return MRL_ERR_INVALID_ARGUMENT;
  return mrl_evaluate(mrl__impala_act_fn, a, a->state_dim, env, episodes, greedy, &rng, stats);
}

/* IMPALA's state beyond the parameters and actor 0's runner. */
static int mrl__impala_extras(const mrl_impala *a, mrl_checkpoint_extra *x) {
  int n = 0;
  x[n].name = "__impala.rng", x[n].dtype = "U64", x[n].data = &a->rng;
  x[n++].count = sizeof a->rng / sizeof(uint64_t);
  x[n].name = "__impala.actor_rng", x[n].dtype = "U64", x[n].data = &a->actors[0].rng;
  x[n++].count = sizeof a->rng / sizeof(uint64_t);
  x[n].name = "__impala.iterations", x[n].dtype = "I64", x[n].data = &a->iterations;
  x[n++].count = 1;
  x[n].name = "__impala.env_steps", x[n].dtype = "I64", x[n].data = &a->env_steps;
  x[n++].count = 1;
  x[n].name = "__impala.stats", x[n].dtype = "U8", x[n].data = &a->stats;
  x[n++].count = sizeof a->stats;
  if (a->cfg.popart) {
    x[n].name = "__impala.popart_mu", x[n].dtype = "F64", x[n].data = a->popart.mu;
    x[n++].count = (uint64_t)a->cfg.num_tasks;
    x[n].name = "__impala.popart_nu", x[n].dtype = "F64", x[n].data = a->popart.nu;
    x[n++].count = (uint64_t)a->cfg.num_tasks;
  }
  return n;
}

MRL_DEF mrl_result mrl_impala_save(const mrl_impala *a, const char *path, const mrl_vecenv *env) {
  char config[4096];
  mrl_checkpoint_extra x[8];
  int n = mrl__impala_extras(a, x);
  mrl_impala_config_json(&a->cfg, config, sizeof config);
  return mrl_agent_save(path, &a->net.params, "impala", config, &a->actors[0].runner,
                        a->cfg.num_actors == 1 ? env : NULL, x, n);
}

MRL_DEF mrl_result mrl_impala_load(mrl_impala *a, const char *path, mrl_vecenv *env) {
  char config[4096];
  mrl_checkpoint_extra x[8];
  int n = mrl__impala_extras(a, x), k;
  mrl_result r;
  mrl_impala_config_json(&a->cfg, config, sizeof config);
  r = mrl_agent_load(path, &a->net.params, "impala", config, &a->actors[0].runner,
                     a->cfg.num_actors == 1 ? env : NULL, x, n, a->error, sizeof a->error);
  if (r == MRL_OK)
    for (k = 0; k < a->cfg.num_actors; k++) a->actors[k].version = -1; /* fetch again */
  return r;
}

/* ---- R2D2 >>r2d2 ----
 * Paper, defaults and deviations: with the declarations (the R2D2 block).
 * Reading order: config, init, the network, the sequence Q loss (shared
 * with DRQN), learn/update, the actors' step, train, act, save/load. */

MRL_DEF mrl_r2d2_config mrl_r2d2_config_default(void) {
  mrl_r2d2_config c;
  memset(&c, 0, sizeof c);
  c.seed = 1;
  c.net = mrl_tower_config_default();
  c.net.encoder_sizes[0] = 64;
  c.net.num_encoder_layers = 1;
  c.net.activation = MRL_ACT_RELU;
  c.net.core = mrl_core_config_lstm(64);
  c.net.core.forget_bias = 1.0f; /* Sonnet's LSTM default (DeepMind's agents); long memories
                                    (MemoryChain-30) are learned with it, not without */
  c.learning_rate = 1e-4f;
  c.adam_eps = 1e-3f;
  c.max_grad_norm = 0.0f;
  c.batch_size = 64;
  c.gamma = 0.997f;
  c.n_step = 5;
  c.rescale_eps = 1e-3f;
  c.double_q = 1;
  c.target_period = 2500;
  c.replay = mrl_seq_replay_config_default();
  c.replay.capacity = 2000;
  c.learning_starts = 16;
  c.update_every = 16;
  c.epsilon_base = 0.4f;
  c.epsilon_alpha = 7.0f;
  c.eval_epsilon = 0.001f;
  c.num_threads = 1;
  c.actor_refresh = 400;
  c.report_every = 2000;
  c.save_replay = 1;
  c.stored_state = 1;
  c.epsilon_start = 0.0f;
  c.epsilon_anneal_steps = 0;
  c.num_actors = 1;
  return c;
}

MRL_DEF int mrl_r2d2_config_json(const mrl_r2d2_config *c, char *buf, size_t size) {
  const mrl_tower_config *n = &c->net;
  const mrl_seq_replay_config *r = &c->replay;
  char enc[96] = "", head[96] = "", f[13][24], core[1024];
  int i, k = 0;
  mrl_core_config_json(&n->core, core, sizeof core);
  for (i = 0; i < n->num_encoder_layers && i < MRL_TOWER_MAX_LAYERS; i++)
    k += snprintf(enc + k, sizeof enc - (size_t)k, "%s%d", i ? "," : "", n->encoder_sizes[i]);
  for (k = 0, i = 0; i < n->num_head_layers && i < MRL_TOWER_MAX_LAYERS; i++)
    k += snprintf(head + k, sizeof head - (size_t)k, "%s%d", i ? "," : "", n->head_sizes[i]);
  return snprintf(
      buf, size,
      "{\"seed\":%llu,\"stored_state\":%d,\"epsilon_start\":%s,\"epsilon_anneal_steps\":%lld,"
      "\"episode_aligned\":%d,\"learning_rate\":%s,\"adam_eps\":%s,\"max_grad_norm\":%s,"
      "\"batch_size\":%d,\"gamma\":%s,\"n_step\":%d,\"rescale_eps\":%s,\"double_q\":%d,"
      "\"target_period\":%d,\"capacity\":%d,\"seq_len\":%d,\"overlap\":%d,\"burn_in\":%d,"
      "\"priority_exponent\":%s,\"importance_exponent\":%s,\"eta\":%s,\"priority_eps\":%s,"
      "\"learning_starts\":%d,\"update_every\":%d,\"epsilon_base\":%s,\"epsilon_alpha\":%s,"
      "\"eval_epsilon\":%s,\"num_threads\":%d,\"num_actors\":%d,\"actor_refresh\":%d,"
      "\"save_replay\":%d,\"sequential\":%d,"
      "\"encoder_sizes\":[%s],\"core\":%s,\"head_sizes\":[%s],\"activation\":%d,"
      "\"use_conv\":%d}",
      (unsigned long long)c->seed, c->stored_state, mrl__float_text(c->epsilon_start, f[12], 24),
      c->epsilon_anneal_steps, r->episode_aligned, mrl__float_text(c->learning_rate, f[0], 24),
      mrl__float_text(c->adam_eps, f[1], 24), mrl__float_text(c->max_grad_norm, f[2], 24),
      c->batch_size, mrl__float_text(c->gamma, f[3], 24), c->n_step,
      mrl__float_text(c->rescale_eps, f[4], 24), c->double_q, c->target_period, r->capacity,
      r->seq_len, r->overlap, r->burn_in, mrl__float_text(r->priority_exponent, f[5], 24),
      mrl__float_text(r->importance_exponent, f[6], 24), mrl__float_text(r->eta, f[7], 24),
      mrl__float_text(r->priority_eps, f[8], 24), c->learning_starts, c->update_every,
      mrl__float_text(c->epsilon_base, f[9], 24), mrl__float_text(c->epsilon_alpha, f[10], 24),
      mrl__float_text(c->eval_epsilon, f[11], 24), c->num_threads, c->num_actors, c->actor_refresh,
      c->save_replay, c->sequential, enc, core, head, (int)n->activation, n->use_conv);
}

/* Names the first field of an R2D2 config that cannot work (err), or 0. */
static int mrl__r2d2_check_config(const mrl_r2d2_config *c, const mrl_vecenv *env, char *err,
                                  size_t n) {
  const char *const names[12] = {"learning_rate",
                                 "adam_eps",
                                 "max_grad_norm",
                                 "gamma",
                                 "rescale_eps",
                                 "epsilon_base",
                                 "epsilon_alpha",
                                 "eval_epsilon",
                                 "replay.priority_exponent",
                                 "replay.importance_exponent",
                                 "replay.eta",
                                 "replay.priority_eps"};
  const float *f[12];
  int i;
  f[0] = &c->learning_rate, f[1] = &c->adam_eps, f[2] = &c->max_grad_norm, f[3] = &c->gamma;
  f[4] = &c->rescale_eps, f[5] = &c->epsilon_base, f[6] = &c->epsilon_alpha;
  f[7] = &c->eval_epsilon, f[8] = &c->replay.priority_exponent;
  f[9] = &c->replay.importance_exponent, f[10] = &c->replay.eta, f[11] = &c->replay.priority_eps;
  for (i = 0; i < 12; i++)
    if (!mrl__finite(*f[i]) || *f[i] < 0.0f) {
      mrl__say(err, n, "mrl_r2d2_config.%s %g must be finite and >= 0", names[i], *f[i]);
      return 1;
    }
#define MRL__REJECT(cond, ...)                                                                     \
  do {                                                                                             \
    if (cond) {                                                                                    \
      mrl__say(err, n, __VA_ARGS__);                                                               \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)
  MRL__REJECT(env->num_actions < 1, "mrl_r2d2: needs discrete actions (the vector env has %d)",
              env->num_actions);
  MRL__REJECT(c->batch_size < 1, "mrl_r2d2_config.batch_size %d must be >= 1", c->batch_size);
  MRL__REJECT(c->gamma > 1.0f, "mrl_r2d2_config.gamma %g must be in [0, 1]", c->gamma);
  MRL__REJECT(c->n_step < 1, "mrl_r2d2_config.n_step %d must be >= 1", c->n_step);
  MRL__REJECT(c->adam_eps <= 0.0f, "mrl_r2d2_config.adam_eps %g must be > 0", c->adam_eps);
  MRL__REJECT(c->target_period < 1, "mrl_r2d2_config.target_period %d must be >= 1",
              c->target_period);
  MRL__REJECT(c->learning_starts < 1, "mrl_r2d2_config.learning_starts %d must be >= 1",
              c->learning_starts);
  MRL__REJECT(c->update_every < 1, "mrl_r2d2_config.update_every %d must be >= 1", c->update_every);
  MRL__REJECT(c->epsilon_base > 1.0f || c->eval_epsilon > 1.0f,
              "mrl_r2d2_config.epsilon_base %g and eval_epsilon %g must be in [0, 1]",
              c->epsilon_base, c->eval_epsilon);
#ifdef MRL_THREADS
  MRL__REJECT(c->num_threads != 1 && c->num_threads != 2,
              "mrl_r2d2_config.num_threads %d must be 1 or 2 (the learner on its own thread)",
              c->num_threads);
#else
  MRL__REJECT(c->num_threads != 1,
              "mrl_r2d2_config.num_threads %d needs a build with MRL_THREADS (else 1)",
              c->num_threads);
#endif
  MRL__REJECT(c->num_actors < 1 || (c->num_actors > 1 && c->num_threads != 2) ||
                  env->num_envs % c->num_actors != 0,
              "mrl_r2d2_config.num_actors %d must be 1, or divide num_envs %d with num_threads 2",
              c->num_actors, env->num_envs);
  MRL__REJECT(c->actor_refresh < 1, "mrl_r2d2_config.actor_refresh %d must be >= 1",
              c->actor_refresh);
  MRL__REJECT(c->report_every < 1, "mrl_r2d2_config.report_every %d must be >= 1", c->report_every);
  MRL__REJECT(c->replay.capacity < 1, "mrl_r2d2_config.replay.capacity %d must be >= 1",
              c->replay.capacity);
  MRL__REJECT(c->replay.seq_len < 2, "mrl_r2d2_config.replay.seq_len %d must be >= 2",
              c->replay.seq_len);
  MRL__REJECT(c->replay.overlap < 0 || c->replay.overlap >= c->replay.seq_len,
              "mrl_r2d2_config.replay.overlap %d must be in [0, seq_len %d)", c->replay.overlap,
              c->replay.seq_len);
  MRL__REJECT(c->replay.burn_in < 0, "mrl_r2d2_config.replay.burn_in %d must be >= 0",
              c->replay.burn_in);
  MRL__REJECT(c->replay.eta > 1.0f, "mrl_r2d2_config.replay.eta %g must be in [0, 1]",
              c->replay.eta);
  MRL__REJECT(!mrl__finite(c->epsilon_start) || c->epsilon_start < 0.0f || c->epsilon_start > 1.0f,
              "mrl_r2d2_config.epsilon_start %g must be in [0, 1]", c->epsilon_start);
  MRL__REJECT(c->epsilon_anneal_steps < 0, "mrl_r2d2_config.epsilon_anneal_steps %lld must be >= 0",
              c->epsilon_anneal_steps);
  MRL__REJECT(c->sequential && (c->replay.overlap != 1 || c->replay.burn_in != 0),
              "mrl_r2d2_config.sequential needs replay.overlap 1 (%d) and replay.burn_in 0 (%d): "
              "one sequence's last entry is the next one's first",
              c->replay.overlap, c->replay.burn_in);
#undef MRL__REJECT
  return 0;
}

static void mrl__r2d2_actor_free(mrl_r2d2_actor *ac) {
  mrl_tower_free(&ac->tower);
  mrl_params_free(&ac->params);
  mrl_graph_free(&ac->graph);
  mrl_runner_free(&ac->runner);
  mrl__vecenv_view_free(&ac->view);
  MRL_FREE(ac->step_obs);
  MRL_FREE(ac->step_starts);
  MRL_FREE(ac->step_state);
  MRL_FREE(ac->step_actions);
}

MRL_DEF void mrl_r2d2_free(mrl_r2d2 *a) {
  int k;
  for (k = 0; a->actors && k < a->cfg.num_actors; k++) mrl__r2d2_actor_free(&a->actors[k]);
  MRL_FREE(a->actors);
  mrl_tower_free(&a->tower);
  mrl_tower_free(&a->target_tower);
  mrl_tower_free(&a->actor_tower);
  mrl_params_free(&a->params);
  mrl_params_free(&a->target);
  mrl_params_free(&a->actor_params);
  mrl_graph_free(&a->graph);
  mrl_graph_free(&a->act_graph);
  mrl_runner_free(&a->runner);
  mrl_seq_replay_free(&a->replay);
  MRL_FREE(a->epsilons);
  MRL_FREE(a->step_obs);
  MRL_FREE(a->step_starts);
  MRL_FREE(a->step_state);
  MRL_FREE(a->step_actions);
  MRL_FREE(a->b_obs);
  MRL_FREE(a->b_actions);
  MRL_FREE(a->b_rewards);
  MRL_FREE(a->b_starts);
  MRL_FREE(a->b_term);
  MRL_FREE(a->b_trunc);
  MRL_FREE(a->b_valid);
  MRL_FREE(a->b_state);
  MRL_FREE(a->b_state2);
  MRL_FREE(a->b_weights);
  MRL_FREE(a->b_prio);
  MRL_FREE(a->b_abs_td);
  MRL_FREE(a->b_mask);
  MRL_FREE(a->b_idx);
  MRL_FREE(a->seq_k);
  MRL_FREE(a->seq_state);
  MRL_FREE(a->seq_tstate);
  MRL_FREE(a->seq_skip);
  memset(a, 0, sizeof *a);
}

/* Ape-X's exploration: epsilon_i = base^(1 + alpha i / (N - 1)) for actor i of N. */
static float mrl__apex_epsilon(float base, float alpha, int i, int n) {
  return n > 1 ? powf(base, 1.0f + alpha * (float)i / (float)(n - 1)) : base;
}

/* Builds a Q network (tower + linear layer) named "online" into p. */
static mrl_result mrl__q_net_init(mrl_tower *t, mrl_linear_layer *q, mrl_params *p,
                                  const mrl_tower_config *net, int obs_dim, int num_actions,
                                  char *error, size_t error_size) {
  mrl_result r = mrl_tower_init(t, p, "online", obs_dim, net, 0, error, error_size);
  if (r != MRL_OK) return r;
  mrl_linear_layer_init(q, p, "online.q", t->output_dim, num_actions, net->init);
  return MRL_OK;
}

/* Q values [T*B, A] of observations [T*B, O] (NULL when out of memory). */
static mrl_tensor *mrl__q_net_forward(const mrl_tower *t, const mrl_linear_layer *q, mrl_graph *g,
                                      const float *obs, int T, int B, int O, const float *starts,
                                      const float *state_in, float *state_out, int S) {
  mrl_tensor *x = mrl_tensor_from2(g, obs, T * B, O);
  if (x) x = mrl_tower_forward(t, g, x, T, B, starts, S ? state_in : NULL, S ? state_out : NULL, S);
  return x ? mrl_linear_layer_forward(q, g, x) : NULL;
}

/* num_actors > 1: actor k gets environments [k b, (k + 1) b) as a view, a
 * network copy, its RNG stream and Ape-X's epsilon_k over the actors (all
 * its environments explore with it, as the paper's actor with its one
 * environment). */
static mrl_result mrl__r2d2_actors_init(mrl_r2d2 *a, const mrl_vecenv *env,
                                        const mrl_runner_config *rc) {
  int N = a->cfg.num_actors, b = a->num_envs / N, k, i;
  size_t O = (size_t)a->obs_dim, S = (size_t)a->state_dim;
  mrl_result r;
  a->actors = (mrl_r2d2_actor *)MRL_MALLOC(sizeof(mrl_r2d2_actor) * (size_t)N);
  if (!a->actors) return MRL_ERR_OUT_OF_MEMORY;
  memset(a->actors, 0, sizeof(mrl_r2d2_actor) * (size_t)N);
  for (k = 0; k < N; k++) {
    mrl_r2d2_actor *ac = &a->actors[k];
    ac->agent = a;
    ac->index = k;
    ac->env_offset = k * b;
    ac->num_envs = b;
    ac->epsilon = mrl__apex_epsilon(a->cfg.epsilon_base, a->cfg.epsilon_alpha, k, N);
    for (i = 0; i < b; i++) a->epsilons[ac->env_offset + i] = ac->epsilon;
    mrl_params_init(&ac->params);
    if ((r = mrl__q_net_init(&ac->tower, &ac->q, &ac->params, &a->cfg.net, a->obs_dim,
                             a->num_actions, a->error, sizeof a->error)) != MRL_OK ||
        (r = mrl_params_finalize(&ac->params, a->cfg.seed)) != MRL_OK)
      return r;
    if ((r = mrl__vecenv_view_init(&ac->view, env, ac->env_offset, b,
                                   env->seed + 0x9e3779b97f4a7c15ULL * (uint64_t)(k + 1))) !=
        MRL_OK) {
      mrl__say(a->error, sizeof a->error, "mrl_r2d2_init: actor %d: %s", k, ac->view.error);
      return r;
    }
    if ((r = mrl_runner_init(&ac->runner, &ac->view, a->state_dim, rc, a->error,
                             sizeof a->error)) != MRL_OK ||
        (r = mrl_graph_init(&ac->graph, (size_t)1 << 18)) != MRL_OK)
      return r;
    ac->rng = mrl_rng_make(a->cfg.seed * 0x2545f4914f6cdd1dULL + (uint64_t)k + 1);
    ac->step_obs = (float *)MRL_MALLOC(sizeof(float) * (size_t)b * O);
    ac->step_starts = (float *)MRL_MALLOC(sizeof(float) * (size_t)b);
    ac->step_state = (float *)MRL_MALLOC(sizeof(float) * ((size_t)b * S + 1));
    ac->step_actions = (float *)MRL_MALLOC(sizeof(float) * (size_t)b);
    if (!ac->step_obs || !ac->step_starts || !ac->step_state || !ac->step_actions)
      return MRL_ERR_OUT_OF_MEMORY;
  }
  return MRL_OK;
}

MRL_DEF mrl_result mrl_r2d2_init(mrl_r2d2 *a, const mrl_r2d2_config *cfg, const mrl_vecenv *env) {
  mrl_runner_config rc;
  mrl_result r;
  size_t B, W, N, S, O;
  int i;
  memset(a, 0, sizeof *a);
  if (!cfg || !env || env->num_envs < 1) {
    mrl__say(a->error, sizeof a->error, "mrl_r2d2_init: needs a config and a vector env");
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (mrl__r2d2_check_config(cfg, env, a->error, sizeof a->error)) return MRL_ERR_INVALID_ARGUMENT;
  a->cfg = *cfg;
  a->algo = "r2d2";
  a->obs_dim = env->obs_dim;
  a->num_envs = env->num_envs;
  a->num_actions = env->num_actions;
  mrl_params_init(&a->params);
  mrl_params_init(&a->target);
  mrl_params_init(&a->actor_params);
  if ((r = mrl__q_net_init(&a->tower, &a->q, &a->params, &cfg->net, a->obs_dim, a->num_actions,
                           a->error, sizeof a->error)) != MRL_OK ||
      (r = mrl__q_net_init(&a->target_tower, &a->target_q, &a->target, &cfg->net, a->obs_dim,
                           a->num_actions, a->error, sizeof a->error)) != MRL_OK)
    goto fail;
  if ((r = mrl_params_finalize(&a->params, cfg->seed)) != MRL_OK ||
      (r = mrl_params_finalize(&a->target, cfg->seed)) != MRL_OK) {
    mrl__say(a->error, sizeof a->error, "mrl_r2d2_init: %s",
             a->params.message[0] ? a->params.message : a->target.message);
    goto fail;
  }
  mrl_params_copy(&a->target, &a->params);
  if (cfg->num_threads > 1 && cfg->num_actors == 1) { /* the actors' copy */
    if ((r = mrl__q_net_init(&a->actor_tower, &a->actor_q, &a->actor_params, &cfg->net, a->obs_dim,
                             a->num_actions, a->error, sizeof a->error)) != MRL_OK ||
        (r = mrl_params_finalize(&a->actor_params, cfg->seed)) != MRL_OK)
      goto fail;
    mrl_params_copy(&a->actor_params, &a->params);
  }
  a->state_dim = a->tower.state_dim;
  rc = mrl_runner_config_default();
  rc.gamma = cfg->gamma;
  if ((r = mrl_runner_init(&a->runner, env, a->state_dim, &rc, a->error, sizeof a->error)) !=
          MRL_OK ||
      (r = mrl_graph_init(&a->graph, (size_t)1 << 22)) != MRL_OK ||
      (r = mrl_graph_init(&a->act_graph, (size_t)1 << 18)) != MRL_OK)
    goto fail;
  if ((r = mrl_seq_replay_init(&a->replay, &cfg->replay, a->num_envs, a->obs_dim, 1,
                               a->state_dim)) != MRL_OK) {
    mrl__say(a->error, sizeof a->error, "mrl_r2d2_init: the replay (%d sequences of %d) %s",
             cfg->replay.capacity, cfg->replay.burn_in + cfg->replay.seq_len,
             r == MRL_ERR_OUT_OF_MEMORY ? "does not fit in memory" : "is refused");
    goto fail;
  }
  a->rng = mrl_rng_make(cfg->seed ^ 0x2545f4914f6cdd1dULL);
  a->learner_rng = mrl_rng_make(cfg->seed ^ 0x632be59bd9b4e019ULL);
  B = (size_t)a->num_envs;
  O = (size_t)a->obs_dim;
  S = (size_t)a->state_dim;
  N = (size_t)cfg->batch_size;
  W = (size_t)a->replay.width;
  a->epsilons = (float *)MRL_MALLOC(sizeof(float) * B);
  a->step_obs = (float *)MRL_MALLOC(sizeof(float) * B * O);
  a->step_starts = (float *)MRL_MALLOC(sizeof(float) * B);
  a->step_state = (float *)MRL_MALLOC(sizeof(float) * (B * S + 1));
  a->step_actions = (float *)MRL_MALLOC(sizeof(float) * B);
  a->b_obs = (float *)MRL_MALLOC(sizeof(float) * W * N * O);
  a->b_actions = (float *)MRL_MALLOC(sizeof(float) * W * N);
  a->b_rewards = (float *)MRL_MALLOC(sizeof(float) * W * N);
  a->b_starts = (float *)MRL_MALLOC(sizeof(float) * W * N);
  a->b_term = (float *)MRL_MALLOC(sizeof(float) * W * N);
  a->b_trunc = (float *)MRL_MALLOC(sizeof(float) * W * N);
  a->b_valid = (float *)MRL_MALLOC(sizeof(float) * W * N);
  a->b_state = (float *)MRL_MALLOC(sizeof(float) * (N * S + 1));
  a->b_state2 = (float *)MRL_MALLOC(sizeof(float) * (N * S + 1));
  a->b_weights = (float *)MRL_MALLOC(sizeof(float) * N);
  a->b_prio = (float *)MRL_MALLOC(sizeof(float) * N);
  a->b_abs_td = (float *)MRL_MALLOC(sizeof(float) * W * N);
  a->b_mask = (float *)MRL_MALLOC(sizeof(float) * W * N);
  a->b_idx = (int *)MRL_MALLOC(sizeof(int) * N);
  a->seq_k = (long long *)MRL_MALLOC(sizeof(long long) * N);
  a->seq_state = (float *)MRL_MALLOC(sizeof(float) * (N * S + 1));
  a->seq_tstate = (float *)MRL_MALLOC(sizeof(float) * (N * S + 1));
  a->seq_skip = (int *)MRL_MALLOC(sizeof(int) * N);
  if (!a->epsilons || !a->step_obs || !a->step_starts || !a->step_state || !a->step_actions ||
      !a->b_obs || !a->b_actions || !a->b_rewards || !a->b_starts || !a->b_term || !a->b_trunc ||
      !a->b_valid || !a->b_state || !a->b_state2 || !a->b_weights || !a->b_prio || !a->b_abs_td ||
      !a->b_mask || !a->b_idx || !a->seq_k || !a->seq_state || !a->seq_tstate || !a->seq_skip) {
    r = MRL_ERR_OUT_OF_MEMORY;
    goto fail;
  }
  for (i = 0; i < a->num_envs; i++)
    a->epsilons[i] = mrl__apex_epsilon(cfg->epsilon_base, cfg->epsilon_alpha, i, a->num_envs);
  for (i = 0; i < cfg->batch_size; i++) a->seq_k[i] = -1;
  memset(a->seq_state, 0, sizeof(float) * (N * S + 1));
  memset(a->seq_tstate, 0, sizeof(float) * (N * S + 1));
  if (cfg->num_actors > 1 && (r = mrl__r2d2_actors_init(a, env, &rc)) != MRL_OK) goto fail;
  return MRL_OK;
fail:
  if (r == MRL_ERR_OUT_OF_MEMORY && !a->error[0])
    mrl__say(a->error, sizeof a->error, "mrl_r2d2_init: out of memory");
  {
    char keep[MRL_ERROR_SIZE];
    memcpy(keep, a->error, sizeof keep);
    mrl_r2d2_free(a);
    memcpy(a->error, keep, sizeof keep);
  }
  return r;
}

MRL_DEF int mrl_r2d2_state_dim(const mrl_r2d2 *a) {
  return a->state_dim;
}

/* The n-step (double) Q-learning loss over N sequences of T trained steps
 * (time-major rows t * N + i), shared by R2D2 and DRQN. q: online Q
 * [T*N, A] on the graph; q_target [T*N, A]: the target network's values of
 * the same entries. Step t's target sums rewards up to n steps on and
 * bootstraps from the entry after the last (gamma^k; 0 after a terminal
 * step), stopping early at an episode end (a truncation bootstraps from its
 * bootstrap entry, the final observation) or at the sequence's last entry,
 * which is only bootstrapped from. Entries with valid 0 are not trained.
 * rescale_eps > 0: value rescaling (mrl_q_targets). Loss: per sequence the
 * sum of 0.5 d^2 over its trained steps (as Acme's R2D2), times its weight
 * (NULL: 1), mean over sequences. abs_td and mask [T*N] receive |d| and the trained-step
 * mask (for priorities). NULL when out of memory. */
static mrl_tensor *mrl__seq_q_loss(mrl_graph *g, mrl_tensor *q, const float *q_target, int T, int N,
                                   int A, const float *actions, const float *rewards,
                                   const float *terminated, const float *truncated,
                                   const float *valid, float gamma, int n_step, float rescale_eps,
                                   int double_q, const float *weights, float *abs_td, float *mask) {
  size_t TN = (size_t)T * N, k;
  float *G = (float *)mrl_graph_alloc(g, sizeof(float) * TN * 4);
  float *qn_on = (float *)mrl_graph_alloc(g, sizeof(float) * TN * A * 2);
  int *act = (int *)mrl_graph_alloc(g, sizeof(int) * TN);
  float *disc, *tgt, *wm, *qn_tg;
  mrl_tensor *q_sa, *d, *t_wm;
  int i, t, shape[1];
  if (!G || !qn_on || !act || !q) return NULL;
  disc = G + TN;
  tgt = disc + TN;
  wm = tgt + TN;
  qn_tg = qn_on + TN * A;
  for (i = 0; i < N; i++) {
    for (t = 0; t < T; t++) {
      int u, b = t;
      double ret = 0.0, dis = 1.0;
      k = (size_t)t * N + i;
      act[k] = (int)actions[k];
      if (act[k] < 0 || act[k] >= A) act[k] = 0; /* bootstrap and padding entries: no action */
      mask[k] = 0.0f;
      G[k] = disc[k] = 0.0f;
      if (t == T - 1 || valid[k] == 0.0f) {
        b = t;
      } else {
        for (u = t;; u++) {
          size_t ku = (size_t)u * N + i;
          ret += dis * rewards[ku];
          dis *= gamma;
          if (terminated[ku] != 0.0f) {
            dis = 0.0;
            b = u + 1;
            break;
          }
          if (truncated[ku] != 0.0f || u - t + 1 == n_step || u + 1 == T - 1) {
            b = u + 1;
            break;
          }
        }
        G[k] = (float)ret;
        disc[k] = (float)dis;
        mask[k] = 1.0f;
      }
      memcpy(qn_on + k * A, q->data + ((size_t)b * N + i) * A, sizeof(float) * A);
      memcpy(qn_tg + k * A, q_target + ((size_t)b * N + i) * A, sizeof(float) * A);
    }
    for (t = 0; t < T; t++) {
      k = (size_t)t * N + i;
      wm[k] = mask[k] * (weights ? weights[i] : 1.0f) / (float)N;
    }
  }
  mrl_q_targets(G, disc, double_q ? qn_on : NULL, qn_tg, (int)TN, A, rescale_eps, tgt);
  shape[0] = (int)TN;
  q_sa = mrl_gather_rows(g, q, act);
  d = mrl_sub(g, q_sa, mrl_tensor_from(g, tgt, 1, shape));
  t_wm = mrl_tensor_from(g, wm, 1, shape);
  if (!d || !t_wm) return NULL;
  for (k = 0; k < TN; k++) abs_td[k] = mask[k] != 0.0f ? fabsf(d->data[k]) : 0.0f;
  return mrl_scale(g, mrl_sum(g, mrl_mul(g, mrl_square(g, d), t_wm)), 0.5f);
}

/* The learner thread's lock (num_threads 2), else nothing. */
static void mrl__r2d2_lock(void *m) {
#ifdef MRL_THREADS
  if (m) mrl_mutex_lock((mrl_mutex *)m);
#else
  (void)m;
#endif
}

static void mrl__r2d2_unlock(void *m) {
#ifdef MRL_THREADS
  if (m) mrl_mutex_unlock((mrl_mutex *)m);
#else
  (void)m;
#endif
}

/* The first entry of a slot's sequence that begins an episode (an acted
 * step; the last entry is the next sequence's first), -1: none. */
static int mrl__r2d2_episode_entry(const mrl_seq_replay *rp, int slot) {
  int t;
  for (t = 0; t < rp->width - 1; t++) {
    size_t k = (size_t)slot * (size_t)rp->width + (size_t)t;
    if (rp->episode_starts[k] != 0.0f && rp->valid[k] != 0.0f) return t;
  }
  return -1;
}

/* sequential: the sequence each batch row replays next (b_idx): the next
 * one of its stream, carrying the core states; or, when its episode ended
 * or that one is not stored yet or was overwritten, a new episode: a
 * sequence drawn uniformly among those where an episode begins (so every
 * episode is as likely), the entries before the start skipped, from the
 * zero state. */
static void mrl__r2d2_seq_pick(mrl_r2d2 *a, int n, mrl_rng *rng) {
  mrl_seq_replay *rp = &a->replay;
  size_t S = (size_t)a->state_dim;
  int i, j, slot, t;
  for (i = 0; i < n; i++) {
    long long k = a->seq_k[i] >= 0 ? mrl_seq_replay_next(rp, a->seq_k[i]) : -1;
    a->seq_skip[i] = 0;
    if (k >= 0) {
      a->seq_k[i] = k;
      a->b_idx[i] = (int)(k % rp->cfg.capacity);
      continue;
    }
    slot = (int)mrl_rng_below(rng, (uint32_t)rp->size);
    t = mrl__r2d2_episode_entry(rp, slot);
    for (j = 1; t < 0 && j < 1024; j++) { /* rejection sampling: uniform over the starts */
      slot = (int)mrl_rng_below(rng, (uint32_t)rp->size);
      t = mrl__r2d2_episode_entry(rp, slot);
    }
    for (j = 1; t < 0 && j < rp->size; j++) /* few starts held: the next one */
      if ((t = mrl__r2d2_episode_entry(rp, (int)((slot + j) % rp->size))) >= 0)
        slot = (int)((slot + j) % rp->size);
    a->seq_skip[i] = t > 0 ? t : 0;
    a->seq_k[i] = mrl_seq_replay_number(rp, slot);
    a->b_idx[i] = slot;
    if (S) {
      memset(a->seq_state + (size_t)i * S, 0, sizeof(float) * S);
      memset(a->seq_tstate + (size_t)i * S, 0, sizeof(float) * S);
    }
  }
}

/* One update. rng NULL: on slots idx with weights; else n slots drawn with
 * rng (sequential: the batch rows' next sequences). lock (NULL on one
 * thread) guards the replay and the parameters: held while drawing and
 * gathering, and while applying the step. */
static mrl_result mrl__r2d2_learn(mrl_r2d2 *a, const int *idx, int n, const float *weights,
                                  mrl_r2d2_update_stats *st, mrl_rng *rng, void *lock) {
  mrl_seq_replay *rp = &a->replay;
  mrl_graph *g = &a->graph;
  int W = rp->width, L = a->cfg.replay.burn_in, T = W - L, S = a->state_dim, A = a->num_actions;
  int O = a->obs_dim, i, seq = a->cfg.sequential && rng, t;
  size_t off = (size_t)L * n;
  mrl_tensor *q, *qt, *loss = NULL;
  mrl_adam_config adam;
  if (n < 1 || n > a->cfg.batch_size || (!idx && !rng)) return MRL_ERR_INVALID_ARGUMENT;
  mrl__r2d2_lock(lock);
  if (rng) {
    if (rp->size < 1) {
      mrl__r2d2_unlock(lock);
      return MRL_ERR_INVALID_ARGUMENT;
    }
    if (seq) {
      mrl__r2d2_seq_pick(a, n, rng);
      for (i = 0; i < n; i++) a->b_weights[i] = 1.0f;
    } else {
      mrl_seq_replay_sample(rp, n, rng, a->b_idx, a->b_weights);
    }
    idx = a->b_idx;
    weights = a->b_weights;
  }
  for (i = 0; i < n; i++)
    if (idx[i] < 0 || idx[i] >= rp->size) {
      mrl__r2d2_unlock(lock);
      return MRL_ERR_INVALID_ARGUMENT;
    }
  if (idx != a->b_idx) memcpy(a->b_idx, idx, sizeof(int) * (size_t)n);
  mrl_seq_replay_gather(rp, idx, n, a->b_obs, a->b_actions, a->b_rewards, a->b_starts, a->b_term,
                        a->b_trunc, a->b_valid, a->b_state);
  mrl__r2d2_unlock(lock);
  idx = a->b_idx;
  mrl_graph_reset(g);
  if (!a->cfg.stored_state && S) memset(a->b_state, 0, sizeof(float) * (size_t)n * S);
  if (seq) { /* the entries before a new episode's start: not trained */
    for (i = 0; i < n; i++)
      for (t = 0; t < a->seq_skip[i]; t++) a->b_valid[(size_t)t * n + i] = 0.0f;
    qt = NULL;
  } else {
    /* the target network: the whole sequence from the stored state, no gradient */
    mrl_graph_set_no_grad(g, 1);
    qt = mrl__q_net_forward(&a->target_tower, &a->target_q, g, a->b_obs, W, n, O, a->b_starts,
                            a->b_state, NULL, S);
  }
  /* burn-in: the online network warms the stored state on a graph-free path */
  if (S) memcpy(a->b_state2, a->b_state, sizeof(float) * (size_t)n * S);
  if (L > 0 && S > 0 && qt) {
    mrl_tensor *x = mrl_tensor_from2(g, a->b_obs, L * n, O);
    if (!x || !mrl_tower_forward(&a->tower, g, x, L, n, a->b_starts, a->b_state2, a->b_state2, S))
      qt = NULL;
  }
  mrl_graph_set_no_grad(g, 0);
  if (seq) {
    /* both networks from the states carried in the rows, each unrolled over the entries but
     * the last, whose states go on to the next sequence (it begins with the last entry),
     * then over the last (only bootstrapped from); gradients stop at the sequence's start */
    size_t last = (size_t)(W - 1) * n;
    mrl_tensor *part[2];
    mrl_graph_set_no_grad(g, 1);
    part[0] = mrl__q_net_forward(&a->target_tower, &a->target_q, g, a->b_obs, W - 1, n, O,
                                 a->b_starts, a->seq_tstate, a->seq_tstate, S);
    part[1] = part[0] ? mrl__q_net_forward(&a->target_tower, &a->target_q, g, a->b_obs + last * O,
                                           1, n, O, a->b_starts + last, a->seq_tstate, NULL, S)
                      : NULL;
    qt = part[1] ? mrl_concat_rows(g, part, 2) : NULL;
    mrl_graph_set_no_grad(g, 0);
    part[0] = qt ? mrl__q_net_forward(&a->tower, &a->q, g, a->b_obs, W - 1, n, O, a->b_starts,
                                      a->seq_state, a->b_state2, S)
                 : NULL;
    part[1] = part[0] ? mrl__q_net_forward(&a->tower, &a->q, g, a->b_obs + last * O, 1, n, O,
                                           a->b_starts + last, a->b_state2, NULL, S)
                      : NULL;
    q = part[1] ? mrl_concat_rows(g, part, 2) : NULL;
  } else {
    q = qt ? mrl__q_net_forward(&a->tower, &a->q, g, a->b_obs + off * O, T, n, O, a->b_starts + off,
                                a->b_state2, NULL, S)
           : NULL;
  }
  if (q)
    loss = mrl__seq_q_loss(g, q, qt->data + off * A, T, n, A, a->b_actions + off,
                           a->b_rewards + off, a->b_term + off, a->b_trunc + off, a->b_valid + off,
                           a->cfg.gamma, a->cfg.n_step, a->cfg.rescale_eps, a->cfg.double_q,
                           weights, a->b_abs_td, a->b_mask);
  if (!loss) {
    mrl__say(a->error, sizeof a->error, "r2d2: out of memory in the update");
    return MRL_ERR_OUT_OF_MEMORY;
  }
  mrl_params_zero_grad(&a->params);
  mrl_backward(g, loss);
  if (!mrl_update_guard(&a->params, loss->data[0], a->cfg.max_grad_norm)) {
    mrl__say(a->error, sizeof a->error,
             "r2d2: non-finite loss (%g) or gradient at update %lld: update not applied",
             loss->data[0], a->updates + 1);
    return MRL_ERR_NON_FINITE;
  }
  adam = mrl_adam_config_default();
  adam.lr = a->cfg.learning_rate;
  adam.eps = a->cfg.adam_eps;
  /* priorities: eta max|d| + (1 - eta) mean|d| over each sequence's trained steps */
  for (i = 0; i < n; i++)
    a->b_prio[i] = mrl_seq_replay_priority(a->b_abs_td + i, a->b_mask + i, T, n, rp->cfg.eta);
  mrl__r2d2_lock(lock);
  mrl_adam_step(&a->params, &adam);
  mrl_seq_replay_update_priorities(rp, idx, n, a->b_prio);
  a->updates++;
  if (a->updates % a->cfg.target_period == 0) mrl_params_copy(&a->target, &a->params);
  mrl__r2d2_unlock(lock);
  if (seq) { /* each row's state goes on; a row whose episode ended here starts a new one */
    if (S) memcpy(a->seq_state, a->b_state2, sizeof(float) * (size_t)n * S);
    for (i = 0; i < n; i++)
      for (t = 0; t < W - 1; t++) {
        size_t k = (size_t)t * n + i;
        if (a->b_valid[k] != 0.0f && (a->b_term[k] != 0.0f || a->b_trunc[k] != 0.0f))
          a->seq_k[i] = -1;
      }
  }
  if (st) {
    double qsum = 0.0, td = 0.0, pr = 0.0, cnt = 0.0;
    size_t k, TN = (size_t)T * n;
    for (k = 0; k < TN; k++)
      if (a->b_mask[k] != 0.0f) {
        qsum += q->data[k * A + (size_t)a->b_actions[off + k]];
        td += a->b_abs_td[k];
        cnt += 1.0;
      }
    for (i = 0; i < n; i++) pr += a->b_prio[i];
    st->loss = loss->data[0];
    st->mean_q = cnt > 0.0 ? (float)(qsum / cnt) : 0.0f;
    st->mean_abs_td = cnt > 0.0 ? (float)(td / cnt) : 0.0f;
    st->mean_priority = (float)(pr / n);
  }
  return MRL_OK;
}

MRL_DEF mrl_result mrl_r2d2_learn(mrl_r2d2 *a, const int *idx, int n, const float *weights,
                                  mrl_r2d2_update_stats *st) {
  return idx ? mrl__r2d2_learn(a, idx, n, weights, st, NULL, NULL) : MRL_ERR_INVALID_ARGUMENT;
}

MRL_DEF mrl_result mrl_r2d2_update(mrl_r2d2 *a, mrl_r2d2_update_stats *st) {
  return mrl__r2d2_learn(a, NULL, a->cfg.batch_size, NULL, st, &a->rng, NULL);
}

#ifdef MRL_THREADS
/* The learner thread (num_threads 2): one update per request of the actors,
 * until they stop and no request is left. */
typedef struct mrl__r2d2_learner {
  mrl_r2d2 *a;
  mrl_mutex lock;
  mrl_cond wake, done; /* the learner waits for requests; the actors for the learner */
  long long pending;   /* updates requested and not begun */
  int stop;
  mrl_result result;
  mrl_r2d2_update_stats st;
  /* num_actors > 1: the actor threads' run, reported on by the calling thread */
  mrl_cond tick;         /* the calling thread waits for a report's steps or the actors' end */
  long long steps;       /* vector steps each actor takes */
  long long next_report; /* env steps of the next report */
  int active;            /* actor threads still running */
  int halt;              /* 1: the actors stop early (progress asked, or a failure) */
} mrl__r2d2_learner;

static void mrl__r2d2_learner_main(void *arg) {
  mrl__r2d2_learner *l = (mrl__r2d2_learner *)arg;
  for (;;) {
    mrl_r2d2_update_stats st;
    mrl_result r;
    mrl_mutex_lock(&l->lock);
    while (!l->stop && l->pending == 0) mrl_cond_wait(&l->wake, &l->lock);
    if (l->pending == 0 || l->result != MRL_OK) {
      mrl_cond_broadcast(&l->done);
      mrl_mutex_unlock(&l->lock);
      return;
    }
    l->pending--;
    mrl_mutex_unlock(&l->lock);
    memset(&st, 0, sizeof st);
    r = mrl__r2d2_learn(l->a, NULL, l->a->cfg.batch_size, NULL, &st, &l->a->learner_rng, &l->lock);
    mrl_mutex_lock(&l->lock);
    if (r != MRL_OK)
      l->result = r;
    else
      l->st = st;
    mrl_cond_broadcast(&l->done); /* several actor threads may wait */
    mrl_mutex_unlock(&l->lock);
  }
}
#endif

/* One vector step of the actors: act epsilon-greedily (each environment
 * with its own epsilon), step, store in the replay. */
static mrl_result mrl__r2d2_step(mrl_r2d2 *a, mrl_vecenv *env, void *lock) {
  const mrl_tower *tower = lock ? &a->actor_tower : &a->tower;
  const mrl_linear_layer *qlayer = lock ? &a->actor_q : &a->q;
  mrl_runner *run = &a->runner;
  mrl_graph *g = &a->act_graph;
  int B = a->num_envs, S = a->state_dim, A = a->num_actions, O = a->obs_dim, b;
  mrl_tensor *q;
  mrl_result r;
  memcpy(a->step_obs, run->obs, sizeof(float) * (size_t)B * O);
  memcpy(a->step_starts, run->episode_start, sizeof(float) * (size_t)B);
  memcpy(a->step_state, run->state, sizeof(float) * (size_t)B * S);
  mrl_graph_reset(g);
  mrl_graph_set_no_grad(g, 1);
  q = mrl__q_net_forward(tower, qlayer, g, run->obs, 1, B, O, run->episode_start, run->state,
                         run->state, S);
  if (!q) return MRL_ERR_OUT_OF_MEMORY;
  if (a->cfg.epsilon_start > 0.0f) { /* one annealed epsilon (DQN's schedule) */
    float e = mrl_lr_linear(a->cfg.epsilon_start, a->cfg.epsilon_base, run->env_steps,
                            a->cfg.epsilon_anneal_steps);
    for (b = 0; b < B; b++) a->epsilons[b] = e;
  }
  for (b = 0; b < B; b++)
    mrl_epsilon_greedy(q->data + (size_t)b * A, 1, A, a->epsilons[b], &a->rng, a->step_actions + b);
  if ((r = mrl_runner_step(run, env, a->step_actions)) != MRL_OK) {
    mrl__say(a->error, sizeof a->error, "r2d2: %s",
             env->error[0] ? env->error : mrl_result_string(r));
    return r;
  }
  mrl__r2d2_lock(lock);
  mrl_seq_replay_add(&a->replay, a->step_obs, a->step_starts, a->step_state, a->step_actions,
                     run->rewards, run->terminated, run->truncated, run->final_obs, run->state);
  mrl__r2d2_unlock(lock);
  return MRL_OK;
}

/* Updates owed for n env steps just stored: one per update_every env steps
 * once the replay holds learning_starts sequences (the learner's lock held
 * when it has a thread). */
static long long mrl__r2d2_requests(mrl_r2d2 *a, int n) {
  long long requested = 0;
  if (a->replay.size < a->cfg.learning_starts) {
    a->env_steps_since_update = 0;
  } else {
    a->env_steps_since_update += n;
    while (a->env_steps_since_update >= a->cfg.update_every) {
      a->env_steps_since_update -= a->cfg.update_every;
      requested++;
    }
  }
  return requested;
}

/* A progress report of train (budget: its env_steps, steps0 and t0 its start). */
static void mrl__r2d2_report(mrl_train_progress *p, const mrl_r2d2 *a, const mrl_vecenv *env,
                             int iteration, long long budget, long long steps0, double t0,
                             const mrl_r2d2_update_stats *st, long long updates, long long stored) {
  memset(p, 0, sizeof *p);
  p->algo = a->algo;
  p->env_id = mrl_env_id(env->envs[0]);
  p->iteration = iteration;
  p->num_iterations = (int)((budget + a->cfg.report_every - 1) / a->cfg.report_every);
  p->env_steps = a->runner.env_steps;
  p->seconds = mrl_wall_seconds() - t0;
  p->steps_per_second =
      p->seconds > 0.0 ? (double)(a->runner.env_steps - steps0) / p->seconds : 0.0;
  p->episodes = a->runner.stats.total_episodes;
  p->mean_return = mrl_episode_stats_mean_return(&a->runner.stats);
  p->mean_length = mrl_episode_stats_mean_length(&a->runner.stats);
  p->success_rate = mrl_episode_stats_success_rate(&a->runner.stats);
  p->learning_rate = a->cfg.learning_rate;
  mrl_progress_set(p, "loss", st->loss);
  mrl_progress_set(p, "mean_q", st->mean_q);
  mrl_progress_set(p, "abs_td", st->mean_abs_td);
  mrl_progress_set(p, "priority", st->mean_priority);
  mrl_progress_set(p, "updates", (float)updates);
  mrl_progress_set(p, "replay", (float)stored);
}

#ifdef MRL_THREADS
/* An actor thread (num_actors > 1): acts on its block with its copy of the
 * parameters (refreshed every actor_refresh of its env steps), its RNG and
 * its epsilon, and stores into the one replay under the learner's lock, so
 * the order in which the actors' sequences enter varies from run to run.
 * The learner runs at most two updates behind, as with one actor. */
static void mrl__r2d2_actor_main(void *arg) {
  mrl_r2d2_actor *ac = (mrl_r2d2_actor *)arg;
  mrl_r2d2 *a = (mrl_r2d2 *)ac->agent;
  mrl__r2d2_learner *l = (mrl__r2d2_learner *)ac->run;
  mrl_runner *run = &ac->runner;
  int B = ac->num_envs, S = a->state_dim, A = a->num_actions, O = a->obs_dim, b, stop = 0;
  long long s, total, refresh = a->cfg.actor_refresh;
  mrl_result r = MRL_OK;
  mrl_mutex_lock(&l->lock);
  total = a->runner.env_steps; /* the other actors count on it */
  mrl_mutex_unlock(&l->lock);
  for (s = 0; s < l->steps && !stop; s++) {
    long long before = ac->env_steps, requested;
    float eps = ac->epsilon;
    mrl_tensor *q;
    /* act with its copy */
    memcpy(ac->step_obs, run->obs, sizeof(float) * (size_t)B * O);
    memcpy(ac->step_starts, run->episode_start, sizeof(float) * (size_t)B);
    memcpy(ac->step_state, run->state, sizeof(float) * (size_t)B * S);
    mrl_graph_reset(&ac->graph);
    mrl_graph_set_no_grad(&ac->graph, 1);
    q = mrl__q_net_forward(&ac->tower, &ac->q, &ac->graph, run->obs, 1, B, O, run->episode_start,
                           run->state, run->state, S);
    if (!q) {
      r = MRL_ERR_OUT_OF_MEMORY;
      mrl__say(ac->error, sizeof ac->error, "r2d2: actor %d: out of memory", ac->index);
      break;
    }
    if (a->cfg.epsilon_start > 0.0f) /* DQN's schedule over every actor's steps */
      eps = mrl_lr_linear(a->cfg.epsilon_start, a->cfg.epsilon_base, total,
                          a->cfg.epsilon_anneal_steps);
    for (b = 0; b < B; b++)
      mrl_epsilon_greedy(q->data + (size_t)b * A, 1, A, eps, &ac->rng, ac->step_actions + b);
    if ((r = mrl_runner_step(run, &ac->view, ac->step_actions)) != MRL_OK) {
      mrl__say(ac->error, sizeof ac->error, "r2d2: actor %d: %s", ac->index,
               ac->view.error[0] ? ac->view.error : mrl_result_string(r));
      break;
    }
    /* store, count, ask for updates, refresh */
    mrl_mutex_lock(&l->lock);
    mrl_seq_replay_add_envs(&a->replay, ac->env_offset, B, ac->step_obs, ac->step_starts,
                            ac->step_state, ac->step_actions, run->rewards, run->terminated,
                            run->truncated, run->final_obs, run->state);
    mrl_episode_stats_add_vecenv(&a->runner.stats, &ac->view);
    a->runner.env_steps += B;
    ac->env_steps += B;
    total = a->runner.env_steps;
    requested = mrl__r2d2_requests(a, B);
    l->pending += requested;
    if (requested) mrl_cond_signal(&l->wake);
    if (total >= l->next_report) mrl_cond_signal(&l->tick);
    while (l->pending > 2 && l->result == MRL_OK && !l->halt) mrl_cond_wait(&l->done, &l->lock);
    if (ac->env_steps / refresh != before / refresh) {
      mrl_params_copy(&ac->params, &a->params);
      ac->refreshes++;
    }
    stop = l->halt || l->result != MRL_OK;
    mrl_mutex_unlock(&l->lock);
  }
  mrl_mutex_lock(&l->lock);
  ac->status = r;
  if (r != MRL_OK) { /* the others stop too */
    l->halt = 1;
    mrl_cond_broadcast(&l->done);
  }
  l->active--;
  mrl_cond_signal(&l->tick);
  mrl_mutex_unlock(&l->lock);
}

/* train with num_actors > 1, on the calling thread: hands each actor its
 * block's observations and core states from the agent's runner, runs the
 * actor threads for steps vector steps each, reports every report_every
 * env steps until they end, then takes the blocks back (the runner then
 * describes every environment again, for save and the next call). */
static mrl_result mrl__r2d2_run_actors(mrl_r2d2 *a, mrl_vecenv *env, long long steps,
                                       mrl__r2d2_learner *l, mrl_progress_fn progress, void *user,
                                       long long budget, double t0) {
  int N = a->cfg.num_actors, k, reports = 0, stopped = 0, started;
  size_t O = (size_t)a->obs_dim, S = (size_t)a->state_dim;
  long long steps0 = a->runner.env_steps;
  mrl_result out = MRL_OK;
  mrl_mutex_lock(&l->lock);
  l->steps = steps;
  l->next_report = steps0 + a->cfg.report_every;
  l->halt = 0;
  l->active = 0;
  for (k = 0; k < N; k++) {
    mrl_r2d2_actor *ac = &a->actors[k];
    size_t b = (size_t)ac->num_envs, off = (size_t)ac->env_offset;
    memcpy(ac->runner.obs, a->runner.obs + off * O, sizeof(float) * b * O);
    memcpy(ac->runner.episode_start, a->runner.episode_start + off, sizeof(float) * b);
    memcpy(ac->runner.state, a->runner.state + off * S, sizeof(float) * b * S);
    memcpy(ac->view.obs, env->obs + off * O, sizeof(float) * b * O);
    ac->runner.started = 1;
    ac->view.ready = 1; /* its environments are running: the training vector started them */
    ac->run = l;
    ac->status = MRL_OK;
    mrl_params_copy(&ac->params, &a->params); /* the first refresh */
  }
  mrl_mutex_unlock(&l->lock);
  for (started = 0; started < N; started++) {
    mrl_mutex_lock(&l->lock);
    l->active++;
    mrl_mutex_unlock(&l->lock);
    if ((out = mrl_thread_start(&a->actors[started].thread, mrl__r2d2_actor_main,
                                &a->actors[started])) != MRL_OK) {
      mrl_mutex_lock(&l->lock);
      l->active--;
      l->halt = 1;
      mrl_cond_broadcast(&l->done);
      mrl_mutex_unlock(&l->lock);
      mrl__say(a->error, sizeof a->error, "mrl_r2d2_train: cannot start actor thread %d", started);
      break;
    }
  }
  /* report */
  mrl_mutex_lock(&l->lock);
  for (;;) {
    int last;
    while (l->active > 0 && a->runner.env_steps < l->next_report) mrl_cond_wait(&l->tick, &l->lock);
    last = l->active == 0;
    l->next_report = a->runner.env_steps + a->cfg.report_every;
    if (progress && !stopped) {
      mrl_train_progress p;
      mrl__r2d2_report(&p, a, env, ++reports, budget, steps0, t0, &l->st, a->updates,
                       a->replay.size);
      mrl_mutex_unlock(&l->lock);
      stopped = progress(&p, user) != 0;
      mrl_mutex_lock(&l->lock);
      if (stopped) { /* the actors stop after their current step */
        l->halt = 1;
        mrl_cond_broadcast(&l->done);
      }
    }
    if (last) break;
  }
  mrl_mutex_unlock(&l->lock);
  for (k = 0; k < started; k++) mrl_thread_join(&a->actors[k].thread);
  /* the blocks back into the agent's runner and the training vector */
  for (k = 0; k < N; k++) {
    mrl_r2d2_actor *ac = &a->actors[k];
    size_t b = (size_t)ac->num_envs, off = (size_t)ac->env_offset;
    memcpy(a->runner.obs + off * O, ac->runner.obs, sizeof(float) * b * O);
    memcpy(a->runner.episode_start + off, ac->runner.episode_start, sizeof(float) * b);
    memcpy(a->runner.state + off * S, ac->runner.state, sizeof(float) * b * S);
    memcpy(env->obs + off * O, ac->view.obs, sizeof(float) * b * O);
    ac->run = NULL;
    if (out == MRL_OK && k < started && ac->status != MRL_OK) {
      out = ac->status;
      mrl__say(a->error, sizeof a->error, "%s", ac->error);
    }
  }
  return out;
}
#endif

MRL_DEF mrl_result mrl_r2d2_train(mrl_r2d2 *a, mrl_vecenv *env, long long env_steps,
                                  mrl_progress_fn progress, void *user) {
  long long steps, s, steps0 = a->runner.env_steps, next_report, updates = a->updates;
  long long stored = a->replay.size;
  double t0 = mrl_wall_seconds();
  mrl_r2d2_update_stats st;
  int reports = 0;
  void *lock = NULL; /* the learner thread's, with num_threads 2 */
  mrl_result r, out = MRL_OK;
#ifdef MRL_THREADS
  mrl__r2d2_learner learner;
  mrl_thread thread;
#endif
  if (!env || env->num_envs != a->num_envs || env->obs_dim != a->obs_dim ||
      env->num_actions != a->num_actions ||
      (a->actors && a->actors[0].view.envs[0] != env->envs[0])) {
    mrl__say(a->error, sizeof a->error,
             "mrl_r2d2_train: not the vector env the agent was made for");
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (env_steps < 0) {
    mrl__say(a->error, sizeof a->error, "mrl_r2d2_train: env_steps %lld is negative", env_steps);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  steps = env_steps / a->num_envs;
  if (steps == 0) return MRL_OK;
  if ((r = mrl_runner_start(&a->runner, env)) != MRL_OK) return r;
  memset(&st, 0, sizeof st);
  next_report = steps0 + a->cfg.report_every;
#ifdef MRL_THREADS
  if (a->cfg.num_threads > 1) { /* the learner on a thread of its own */
    memset(&learner, 0, sizeof learner);
    learner.a = a;
    if ((r = mrl_mutex_init(&learner.lock)) != MRL_OK) return r;
    if ((r = mrl_cond_init(&learner.wake)) != MRL_OK) {
      mrl_mutex_free(&learner.lock);
      return r;
    }
    if ((r = mrl_cond_init(&learner.done)) != MRL_OK) {
      mrl_cond_free(&learner.wake);
      mrl_mutex_free(&learner.lock);
      return r;
    }
    if ((r = mrl_cond_init(&learner.tick)) != MRL_OK ||
        (r = mrl_thread_start(&thread, mrl__r2d2_learner_main, &learner)) != MRL_OK) {
      mrl_cond_free(&learner.tick); /* safe after a failed init: memset above */
      mrl_cond_free(&learner.wake);
      mrl_cond_free(&learner.done);
      mrl_mutex_free(&learner.lock);
      return r;
    }
    lock = &learner.lock;
    if (!a->actors) mrl_params_copy(&a->actor_params, &a->params);
  }
  if (a->actors) { /* actor threads, each on its block of the environments */
    out = mrl__r2d2_run_actors(a, env, steps, &learner, progress, user, env_steps, t0);
    steps = 0; /* the loop below is the one actor's of num_actors 1 */
  }
#endif
  for (s = 0; s < steps; s++) {
    long long before = a->runner.env_steps, requested = 0;
    /* collect */
    if ((out = mrl__r2d2_step(a, env, lock)) != MRL_OK) break;
    /* update: one every update_every env steps once the replay has enough */
    mrl__r2d2_lock(lock);
    stored = a->replay.size;
    requested = mrl__r2d2_requests(a, a->num_envs);
    mrl__r2d2_unlock(lock);
    if (!lock) {
      for (; requested > 0; requested--)
        if ((out = mrl_r2d2_update(a, &st)) != MRL_OK) break;
      if (out != MRL_OK) break;
      updates = a->updates;
    }
#ifdef MRL_THREADS
    else {
      int refresh = a->runner.env_steps / a->cfg.actor_refresh != before / a->cfg.actor_refresh;
      mrl_mutex_lock(&learner.lock);
      learner.pending += requested;
      if (requested) mrl_cond_signal(&learner.wake);
      /* the actors act while the learner learns, but run at most two updates ahead of it, so
       * the replay ratio stays one update per update_every env steps */
      while (learner.pending > 2 && learner.result == MRL_OK)
        mrl_cond_wait(&learner.done, &learner.lock);
      if (refresh) mrl_params_copy(&a->actor_params, &a->params); /* the actors' refresh */
      out = learner.result;
      st = learner.st;
      updates = a->updates;
      mrl_mutex_unlock(&learner.lock);
      if (out != MRL_OK) break;
    }
#endif
    (void)before;
    /* report */
    if (progress && (a->runner.env_steps >= next_report || s == steps - 1)) {
      mrl_train_progress p;
      next_report = a->runner.env_steps + a->cfg.report_every;
      mrl__r2d2_report(&p, a, env, ++reports, env_steps, steps0, t0, &st, updates, stored);
      if (progress(&p, user)) break;
    }
  }
#ifdef MRL_THREADS
  if (lock) { /* the learner finishes the updates requested, then stops */
    mrl_mutex_lock(&learner.lock);
    learner.stop = 1;
    mrl_cond_broadcast(&learner.wake);
    mrl_mutex_unlock(&learner.lock);
    mrl_thread_join(&thread);
    if (out == MRL_OK) out = learner.result;
    mrl_cond_free(&learner.tick);
    mrl_cond_free(&learner.wake);
    mrl_cond_free(&learner.done);
    mrl_mutex_free(&learner.lock);
  }
#endif
  return out;
}

MRL_DEF mrl_result mrl_r2d2_q_values(mrl_r2d2 *a, const float *obs, int n,
                                     const float *episode_start, const float *state,
                                     float *state_out, float *q) {
  mrl_graph *g = &a->act_graph;
  mrl_tensor *t;
  if (n < 1 || !obs || !q || (a->state_dim && !state)) return MRL_ERR_INVALID_ARGUMENT;
  mrl_graph_reset(g);
  mrl_graph_set_no_grad(g, 1);
  t = mrl__q_net_forward(&a->tower, &a->q, g, obs, 1, n, a->obs_dim, episode_start, state,
                         state_out, a->state_dim);
  if (!t) return mrl_graph_status(g) != MRL_OK ? mrl_graph_status(g) : MRL_ERR_OUT_OF_MEMORY;
  memcpy(q, t->data, sizeof(float) * (size_t)n * a->num_actions);
  mrl_graph_reset(g);
  return MRL_OK;
}

MRL_DEF mrl_result mrl_r2d2_act(mrl_r2d2 *a, const float *obs, int n, const float *episode_start,
                                float *state, int greedy, mrl_rng *rng, float *actions) {
  mrl_graph *g = &a->act_graph;
  mrl_tensor *t;
  if (n < 1 || !obs || !actions || (a->state_dim && !state)) return MRL_ERR_INVALID_ARGUMENT;
  mrl_graph_reset(g);
  mrl_graph_set_no_grad(g, 1);
  t = mrl__q_net_forward(&a->tower, &a->q, g, obs, 1, n, a->obs_dim, episode_start, state, state,
                         a->state_dim);
  if (!t) return mrl_graph_status(g) != MRL_OK ? mrl_graph_status(g) : MRL_ERR_OUT_OF_MEMORY;
  mrl_epsilon_greedy(t->data, n, a->num_actions, greedy ? 0.0f : a->cfg.eval_epsilon,
                     greedy ? NULL : (rng ? rng : &a->rng), actions);
  /* fold an overflow into the arena now: later calls of this size allocate nothing */
  mrl_graph_reset(g);
  return MRL_OK;
}

static mrl_result mrl__r2d2_act_fn(void *agent, const float *obs, int n, const float *episode_start,
                                   float *state, int greedy, mrl_rng *rng, float *actions) {
  return mrl_r2d2_act((mrl_r2d2 *)agent, obs, n, episode_start, state, greedy, rng, actions);
}

MRL_DEF mrl_result mrl_r2d2_evaluate(mrl_r2d2 *a, mrl_vecenv *env, int episodes, int greedy,
                                     mrl_episode_stats *stats) {
  mrl_rng rng = mrl_rng_make(a->cfg.seed ^ 0x5851f42d4c957f2dULL);
  if (!env || env->obs_dim != a->obs_dim || env->num_actions != a->num_actions)
    return MRL_ERR_INVALID_ARGUMENT;
  return mrl_evaluate(mrl__r2d2_act_fn, a, a->state_dim, env, episodes, greedy, &rng, stats);
}

/* R2D2's state beyond the runner: RNG, counters, the target network and
 * (save_replay) the replay. */
static int mrl__r2d2_extras(const mrl_r2d2 *a, mrl_checkpoint_extra *x) {
  int n = 0;
  x[n].name = "__r2d2.rng", x[n].dtype = "U64", x[n].data = &a->rng;
  x[n++].count = sizeof a->rng / sizeof(uint64_t);
  x[n].name = "__r2d2.updates", x[n].dtype = "I64", x[n].data = &a->updates, x[n++].count = 1;
  x[n].name = "__r2d2.learner_rng", x[n].dtype = "U64", x[n].data = &a->learner_rng;
  x[n++].count = sizeof a->learner_rng / sizeof(uint64_t);
  x[n].name = "__r2d2.since_update", x[n].dtype = "I64", x[n].data = &a->env_steps_since_update;
  x[n++].count = 1;
  x[n].name = "__r2d2.target", x[n].dtype = "F32", x[n].data = a->target.values;
  x[n++].count = a->target.total;
  if (a->cfg.sequential) { /* the batch rows' episodes and carried states */
    x[n].name = "__r2d2.seq_k", x[n].dtype = "I64", x[n].data = a->seq_k;
    x[n++].count = (uint64_t)a->cfg.batch_size;
    x[n].name = "__r2d2.seq_state", x[n].dtype = "F32", x[n].data = a->seq_state;
    x[n++].count = (uint64_t)a->cfg.batch_size * (uint64_t)a->state_dim;
    x[n].name = "__r2d2.seq_tstate", x[n].dtype = "F32", x[n].data = a->seq_tstate;
    x[n++].count = (uint64_t)a->cfg.batch_size * (uint64_t)a->state_dim;
  }
  if (a->cfg.save_replay) n += mrl_seq_replay_extras(&a->replay, x + n);
  return n;
}

MRL_DEF mrl_result mrl_r2d2_save(const mrl_r2d2 *a, const char *path, const mrl_vecenv *env) {
  char config[4096];
  mrl_checkpoint_extra x[8 + MRL_SEQ_REPLAY_EXTRAS];
  int n = mrl__r2d2_extras(a, x);
  mrl_r2d2_config_json(&a->cfg, config, sizeof config);
  return mrl_agent_save(path, &a->params, a->algo, config, &a->runner, env, x, n);
}

MRL_DEF mrl_result mrl_r2d2_load(mrl_r2d2 *a, const char *path, mrl_vecenv *env) {
  char config[4096];
  mrl_checkpoint_extra x[8 + MRL_SEQ_REPLAY_EXTRAS];
  int n = mrl__r2d2_extras(a, x);
  mrl_result r;
  mrl_r2d2_config_json(&a->cfg, config, sizeof config);
  r = mrl_agent_load(path, &a->params, a->algo, config, &a->runner, env, x, n, a->error,
                     sizeof a->error);
  if (r == MRL_OK && a->cfg.save_replay) mrl_seq_replay_loaded(&a->replay);
  return r;
}

/* ---- DRQN >>drqn ----
 * Paper, schemes and deviations: with the declarations (the DRQN block).
 * Everything runs on mrl_r2d2 (the R2D2 section above): this section only maps
 * the paper's settings onto it. */

MRL_DEF mrl_drqn_config mrl_drqn_config_default(void) {
  mrl_drqn_config c;
  memset(&c, 0, sizeof c);
  c.seed = 1;
  c.updates = MRL_DRQN_RANDOM;
  c.unroll = 10;
  c.net = mrl_tower_config_default();
  c.net.encoder_sizes[0] = 64;
  c.net.num_encoder_layers = 1;
  c.net.activation = MRL_ACT_RELU;
  c.net.core = mrl_core_config_lstm(64);
  c.learning_rate = 1e-3f;
  c.max_grad_norm = 10.0f;
  c.batch_size = 32;
  c.gamma = 0.99f;
  c.target_period = 1000;
  c.capacity = 20000;
  c.learning_starts = 64;
  c.update_every = 16;
  c.epsilon_start = 1.0f;
  c.epsilon_end = 0.1f;
  c.epsilon_anneal_steps = 50000;
  c.eval_epsilon = 0.001f;
  c.report_every = 2000;
  c.save_replay = 1;
  return c;
}

MRL_DEF mrl_r2d2_config mrl_drqn_engine_config(const mrl_drqn_config *d) {
  mrl_r2d2_config c = mrl_r2d2_config_default();
  c.seed = d->seed;
  c.net = d->net;
  c.learning_rate = d->learning_rate;
  c.adam_eps = 1e-8f;
  c.max_grad_norm = d->max_grad_norm;
  c.batch_size = d->batch_size;
  c.gamma = d->gamma;
  c.n_step = 1;
  c.rescale_eps = 0.0f;
  c.double_q = 0;
  c.target_period = d->target_period;
  c.replay.capacity = d->capacity;
  c.replay.seq_len = d->unroll + 1; /* the last entry is only bootstrapped from */
  c.replay.burn_in = 0;
  c.replay.priority_exponent = 0.0f; /* uniform */
  c.replay.importance_exponent = 0.0f;
  if (d->updates == MRL_DRQN_SEQUENTIAL) {
    c.sequential = 1;     /* each batch row walks an episode, a sequence per update */
    c.replay.overlap = 1; /* a sequence's last entry is the next one's first */
    c.stored_state = 0;   /* the state comes from the row's previous sequence */
  } else {
    c.replay.overlap = d->unroll; /* a window at every step */
    c.stored_state = 0;           /* from the zero state */
  }
  c.learning_starts = d->learning_starts;
  c.update_every = d->update_every;
  c.epsilon_start = d->epsilon_start;
  c.epsilon_base = d->epsilon_end;
  c.epsilon_anneal_steps = d->epsilon_anneal_steps;
  c.eval_epsilon = d->eval_epsilon;
  c.report_every = d->report_every;
  c.save_replay = d->save_replay;
  return c;
}

MRL_DEF mrl_result mrl_drqn_init(mrl_drqn *a, const mrl_drqn_config *cfg, const mrl_vecenv *env) {
  mrl_r2d2_config c;
  mrl_result r;
  memset(a, 0, sizeof *a);
  if (!cfg || !env) {
    mrl__say(a->error, sizeof a->error, "mrl_drqn_init: needs a config and a vector env");
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (cfg->unroll < 1 || (cfg->updates != MRL_DRQN_RANDOM && cfg->updates != MRL_DRQN_SEQUENTIAL) ||
      !mrl__finite(cfg->epsilon_start) || cfg->epsilon_start <= 0.0f || cfg->epsilon_start > 1.0f) {
    mrl__say(a->error, sizeof a->error,
             "mrl_drqn_config: unroll %d must be >= 1, updates %d a mrl_drqn_updates, "
             "epsilon_start %g in (0, 1]",
             cfg->unroll, (int)cfg->updates, cfg->epsilon_start);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  a->cfg = *cfg;
  c = mrl_drqn_engine_config(cfg);
  r = mrl_r2d2_init(&a->engine, &c, env);
  a->engine.algo = "drqn";
  if (r != MRL_OK) {
    /* the engine names the field of its own config: say it in DRQN's terms */
    const char *s = strstr(a->engine.error, "mrl_r2d2_config.");
    mrl__say(a->error, sizeof a->error, "%s%s", s ? "mrl_drqn_config (as the engine's) " : "",
             s ? s + 16 : a->engine.error);
  }
  return r;
}

MRL_DEF void mrl_drqn_free(mrl_drqn *a) {
  mrl_r2d2_free(&a->engine);
}

MRL_DEF mrl_result mrl_drqn_train(mrl_drqn *a, mrl_vecenv *env, long long env_steps,
                                  mrl_progress_fn progress, void *user) {
  mrl_result r = mrl_r2d2_train(&a->engine, env, env_steps, progress, user);
  if (r != MRL_OK) memcpy(a->error, a->engine.error, sizeof a->error);
  return r;
}

MRL_DEF int mrl_drqn_state_dim(const mrl_drqn *a) {
  return a->engine.state_dim;
}

MRL_DEF mrl_result mrl_drqn_act(mrl_drqn *a, const float *obs, int n, const float *episode_start,
                                float *state, int greedy, mrl_rng *rng, float *actions) {
  return mrl_r2d2_act(&a->engine, obs, n, episode_start, state, greedy, rng, actions);
}

MRL_DEF mrl_result mrl_drqn_evaluate(mrl_drqn *a, mrl_vecenv *env, int episodes, int greedy,
                                     mrl_episode_stats *stats) {
  return mrl_r2d2_evaluate(&a->engine, env, episodes, greedy, stats);
}

MRL_DEF mrl_result mrl_drqn_save(const mrl_drqn *a, const char *path, const mrl_vecenv *env) {
  return mrl_r2d2_save(&a->engine, path, env);
}

MRL_DEF mrl_result mrl_drqn_load(mrl_drqn *a, const char *path, mrl_vecenv *env) {
  mrl_result r = mrl_r2d2_load(&a->engine, path, env);
  if (r != MRL_OK) memcpy(a->error, a->engine.error, sizeof a->error);
  return r;
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
