/* memrl_mem.h - memory cores and rollout storage for agents that remember.
 *
 * Part of memrl. Needs memrl_nn.h (included here). libc and libm only.
 * Public domain / MIT, see the end of the file.
 *
 * CONTENTS
 *   ENABLING        the one file that defines the implementation
 *   MEMORY CORES    one interface for every core; user cores by function table
 *   TOWERS          encoder -> core -> head, each with a slice of the state record
 *   SUM TREE        prioritised sampling in O(log n) (Schaul et al. 2016)
 *   RETURNS         return estimators over plain arrays (value rescaling, K-step
 *                   advantages, lambda-returns, V-trace, ...)
 *   ROLLOUT BUFFER  on-policy steps with the initial core state, GAE
 *   REPLAY BUFFER   transitions in a ring, n-step returns, proportional prioritisation
 *   SEQUENCE REPLAY R2D2's prioritised sequences with stored states and burn-in
 *   LICENCE         at the end of the file: public domain or MIT
 *   TAGS            listed at the end of this block
 *
 * ENABLING
 *   In exactly one file: #define MEMRL_IMPLEMENTATION before including, or
 *   MEMRL_MEM_IMPLEMENTATION together with the macros of the headers below it.
 *
 * MEMORY CORES (one interface)
 *   A core maps an input x_t and its state m_{t-1} to an output y_t and state
 *   m_t. The state of one environment is a flat float vector of
 *   mrl_core_state_dim() floats, so rollout and replay buffers can store it
 *   (R2D2's stored state). One call covers both uses:
 *     acting    T = 1, B environments, state read and written in place;
 *     training  a time-major [T, B] sequence from a stored initial state, with
 *               episode_start flags that reset the state to zero before the
 *               step where a new episode begins, and gradients through time.
 *   Cores: MRL_CORE_NONE (y = x, no state: a feedforward agent);
 *   MRL_CORE_FRAME_STACK (the last k inputs concatenated); MRL_CORE_LSTM,
 *   MRL_CORE_GRU and MRL_CORE_ELMAN (torch.nn.LSTM / GRU / RNN, multi-layer,
 *   PyTorch-exact; state: every layer's h, then every layer's c for the
 *   LSTM); MRL_CORE_GTRXL (Parisotto et al. 2019's gated Transformer-XL over
 *   a window of past steps, memrl_nn.h's mrl_gtrxl); MRL_CORE_AMRL (Beck et
 *   al. 2020: an LSTM whose outputs feed an episode-long average, sum or max,
 *   with the paper's straight-through gradient); MRL_CORE_FWP (Schlag et al.
 *   2021: linear attention as fast weights, heads of d x d matrices written by
 *   the delta rule); MRL_CORE_DNC (the DNC's external memory of Graves et
 *   al. 2016 as MERLIN uses it: an LSTM controller, content-based read heads,
 *   a write with usage-based allocation, optional temporal links; state:
 *   memory, usage, weightings, read vectors and the controller's h and c,
 *   flat; mrl_core_config_dnc, "dnc:<N>:<W>:<R>[:links]"); MRL_CORE_HCAM (hierarchical chunk
 * attention memory, Lampinen et al. 2021: steps stored in chunks with mean summaries, a query reads
 * the top-k chunks); MRL_CORE_FTW (FTW's slow and fast LSTMs with a Gaussian prior and posterior,
 * Jaderberg et al. 2019; mrl_core_forward_aux gives the KL(posterior || prior) per step as an
 * auxiliary loss); and MRL_CORE_USER: a user's own core through a function table (mrl_core_type),
 * which every agent then trains unchanged (tests/test.h has a worked one, a GRU).
 * mrl_core_config_parse("gru:128:2") builds a config from a short spec. Every core passes the
 * conformance table of tests/test_cores.c: a sequence equals the same steps one at a time, a reset
 * equals a fresh state, gradients through time check against finite differences, the state
 * round-trips through a rollout buffer and a checkpoint, and acting allocates nothing.
 * Every built-in core's ops have forward-mode rules too (mrl_mem_jvp_rule for mrl_graph_jvp:
 * TRPO's exact Fisher-vector products; tests/test_jvp.c).
 *
 * TOWERS
 *   mrl_tower is the network most agents are built from: an observation
 *   encoder (optional conv stack, then an MLP), an optional core, an optional
 *   head MLP. An agent with several towers (actor and critic) gives each a
 *   slice of one flat per-environment state record: a tower reads and writes
 *   floats [state_offset, state_offset + state_dim) of it.
 *
 * ROLLOUT BUFFER
 *   mrl_rollout stores T steps of B environments (observations, actions,
 *   log-probabilities, values, rewards, terminated/truncated flags, episode
 *   starts) plus each environment's core state before the first step, and
 *   computes GAE(lambda) advantages and returns (Schulman et al. 2016). A
 *   truncated episode is bootstrapped from the value of its final observation
 *   (stored in final_values); a terminated one from zero.
 *
 * REPLAY BUFFER
 *   mrl_replay stores transitions of B environments in a ring sized at init
 *   (one allocation), for any observation and action size, with n-step
 *   returns computed at insertion (a truncated episode bootstraps from its
 *   final observation, a terminated one does not), uniform or proportional
 *   prioritised sampling on a sum tree (Schaul et al. 2016) with importance
 *   weights, a seeded RNG of its own, and checkpoint extras so an agent's
 *   save/load carries the whole buffer (mrl_dqn uses it; DDPG/SAC can).
 *
 * LICENCE at the end of the file: public domain or MIT.
 * TAGS: each implementation section carries one tag, written >> and the
 * name; `grep -n '[>]>tower' memrl_mem.h` finds that section.
 *   The tags in file order:
 *     core frame_stack gtrxl_core amrl fwp hcam ftw dnc tower sum_tree returns rollout replay
 *     seq_replay
 *
 */
#ifndef MEMRL_MEM_H
#define MEMRL_MEM_H

#define MEMRL_MEM_VERSION_MAJOR 0
#define MEMRL_MEM_VERSION_MINOR 1
#define MEMRL_MEM_VERSION_PATCH 0

#include "memrl_nn.h"
#if MEMRL_NN_VERSION_MAJOR != MEMRL_MEM_VERSION_MAJOR ||                                           \
    MEMRL_NN_VERSION_MINOR != MEMRL_MEM_VERSION_MINOR
#error "memrl_mem.h needs the memrl_nn.h of the same version"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Room for a readable error message on objects whose init can fail. */
#define MRL_ERROR_SIZE 256

/* Built-in cores. Each has its own section below (paper, state layout,
 * deviations); MRL_CORE_USER is a user's core through mrl_core_type. */
typedef enum mrl_core_kind {
  MRL_CORE_NONE,        /* y = x, no state: a feedforward agent */
  MRL_CORE_LSTM,        /* torch.nn.LSTM, num_layers deep; state [h (L*H), c (L*H)] */
  MRL_CORE_USER,        /* user_type */
  MRL_CORE_GRU,         /* torch.nn.GRU, num_layers deep; state [h (L*H)] */
  MRL_CORE_ELMAN,       /* torch.nn.RNN (tanh or relu), num_layers deep; state [h (L*H)] */
  MRL_CORE_FRAME_STACK, /* the last frame_stack inputs concatenated, oldest first */
  MRL_CORE_GTRXL,       /* gated Transformer-XL over a window of past steps (memrl_nn.h) */
  MRL_CORE_AMRL,        /* LSTM + order-invariant aggregator (Beck et al. 2020) */
  MRL_CORE_FWP,         /* fast weights, delta rule (Schlag et al. 2021) */
  MRL_CORE_DNC,         /* DNC external memory (Graves et al. 2016) with an LSTM controller */
  MRL_CORE_HCAM,        /* hierarchical chunk attention memory (Lampinen et al. 2021) */
  MRL_CORE_FTW /* FTW's two-timescale LSTMs with a prior/posterior (Jaderberg et al. 2019) */
} mrl_core_kind;

/* A user's core. init declares its parameters into p under `name` (the store
 * is finalized later, so keep parameter indices, not pointers) and returns
 * its instance; forward follows the contract of mrl_core_forward below
 * exactly (state rows at state_in + b * stride, zeroed where episode_start is
 * 1, output [T*B, output_dim], no heap allocation when T = 1 once the graph
 * arena has grown). free may be NULL. */
typedef struct mrl_core_type {
  const char *name;
  mrl_result (*init)(void **self, mrl_params *p, const char *name, int input_dim,
                     const void *config, int *output_dim, int *state_dim);
  mrl_tensor *(*forward)(void *self, mrl_graph *g, mrl_tensor *x, int T, int B,
                         const float *episode_start, const float *state_in, float *state_out,
                         int stride);
  void (*free)(void *self);
} mrl_core_type;

/* AMRL's aggregator over the episode (its section: the amrl tag). */
typedef enum mrl_amrl_aggregator { MRL_AMRL_AVG, MRL_AMRL_SUM, MRL_AMRL_MAX } mrl_amrl_aggregator;
typedef struct mrl_amrl_config {
  mrl_amrl_aggregator aggregator; /* MRL_AMRL_AVG (the authors' default; AMRL-Avg) */
  int straight_through; /* 1: the paper's straight-through gradient (AMRL-Avg/-Max); 0: the
                           exact gradient (the paper's AVG/MAX baselines) */
} mrl_amrl_config;

/* Fast weight programmer with the delta rule (the fwp tag): heads matrices of
 * head_dim x head_dim; the core's hidden_size is unused. */
typedef struct mrl_fwp_config {
  int head_dim; /* key/query/value size per head */
  int heads;    /* 1 */
} mrl_fwp_config;
/* MRL_CORE_DNC: memory of memory_size rows of word_size floats, read_heads
 * content-based read heads, one write head with usage-based allocation, an
 * LSTM controller of controller_size units; links 1 adds the temporal link
 * matrix and forward/backward read modes (N*N more floats of state). */
typedef struct mrl_dnc_config {
  int memory_size;     /* N (16) */
  int word_size;       /* W (16) */
  int read_heads;      /* R (4) */
  int controller_size; /* LSTM units (64) */
  int links;           /* 0 (MERLIN's choice); 1: the DNC's temporal links */
} mrl_dnc_config;
/* HCAM (its section below): inputs are projected to dim, steps are stored in
 * chunks of `chunk` steps, num_chunks of them in a ring; a query reads the
 * topk chunks whose summaries it matches best. */
typedef struct mrl_hcam_config {
  int dim;        /* model width E (64; even: sinusoid positions) */
  int chunk;      /* steps per chunk C (8) */
  int topk;       /* chunks read per query k (2; at most num_chunks + 1) */
  int num_chunks; /* stored chunks N (16) */
  int num_heads;  /* heads of the within-chunk attention (1; divides dim) */
} mrl_hcam_config;

/* FTW's two-timescale core (its section below): a slow LSTM that steps every
 * period steps, a fast LSTM every step, a Gaussian latent with the slow
 * core's prior and the fast core's posterior. */
typedef struct mrl_ftw_config {
  int fast_size; /* fast LSTM units (64) */
  int slow_size; /* slow LSTM units (64) */
  int period;    /* tau: the slow core steps when (steps since the episode began) % tau == 0 (10) */
  int latent_size;  /* latent z dimensions, the core's output (0: fast_size) */
  float init_scale; /* standard deviation where the scale layer outputs 0 (0.1) */
  float min_scale;  /* added to every standard deviation (1e-4) */
} mrl_ftw_config;

typedef struct mrl_core_config {
  mrl_core_kind kind;
  int hidden_size;   /* LSTM, GRU, Elman: units per layer */
  int num_layers;    /* LSTM, GRU, Elman: stacked layers (1) */
  mrl_init init;     /* recurrent layers: default U(+-1/sqrt(H)), or orthogonal + zero biases */
  float forget_bias; /* LSTM: added to the forget gate's bias; GRU: to the update gate's (z)
                        bias_ih (0: PyTorch's init) */
  mrl_activation nonlinearity;    /* Elman: MRL_ACT_TANH (torch's default) or MRL_ACT_RELU */
  int frame_stack;                /* FRAME_STACK: frames k (4; k = 1 is the feedforward agent) */
  mrl_gtrxl_config gtrxl;         /* GTRXL: embed 64, heads 4, layers 2, ff 256, window 64 */
  const mrl_core_type *user_type; /* MRL_CORE_USER: the table (must outlive the core) */
  const void *user_config;        /* MRL_CORE_USER: passed to user_type->init */
  mrl_amrl_config amrl;           /* AMRL: the aggregator (with hidden_size, num_layers,
                                     init, forget_bias of its LSTM) */
  mrl_fwp_config fwp;             /* FWP: heads and their size */
  mrl_dnc_config dnc;             /* MRL_CORE_DNC (the controller also uses init, forget_bias) */
  mrl_hcam_config hcam;           /* MRL_CORE_HCAM */
  mrl_ftw_config ftw;             /* MRL_CORE_FTW */
} mrl_core_config;

MRL_DEF mrl_core_config mrl_core_config_default(void); /* none */
MRL_DEF mrl_core_config mrl_core_config_lstm(int hidden_size);
MRL_DEF mrl_core_config mrl_core_config_gru(int hidden_size);
MRL_DEF mrl_core_config mrl_core_config_elman(int hidden_size);
MRL_DEF mrl_core_config mrl_core_config_frame_stack(int frames);
/* GTrXL of mrl_gtrxl_config_default() with this embedding width and window. */
MRL_DEF mrl_core_config mrl_core_config_gtrxl(int embed_dim, int mem_len);
/* AMRL over an LSTM of hidden_size units (even; forget_bias 1 as the authors') */
MRL_DEF mrl_core_config mrl_core_config_amrl(int hidden_size, mrl_amrl_aggregator aggregator);
MRL_DEF mrl_core_config mrl_core_config_fwp(int head_dim, int heads);
/* A DNC of N rows of W floats and R read heads, the other fields default. */
MRL_DEF mrl_core_config mrl_core_config_dnc(int memory_size, int word_size, int read_heads);
MRL_DEF mrl_core_config mrl_core_config_hcam(int dim, int chunk, int topk);
MRL_DEF mrl_core_config mrl_core_config_ftw(int fast_size, int slow_size, int period);
/* A core from a short spec, for command lines and benchmark tables: "none",
 * "lstm:<units>[:<layers>]", "gru:<units>[:<layers>]", "elman:<units>[:<layers>]"
 * ("elman_relu:..." for relu), "frame_stack:<k>", "gtrxl:<embed>[:<layers>]" (4 heads,
 * ff 4 x embed... as mrl_gtrxl_config_default otherwise), "amrl:<units>[:avg|sum|max]"
 * (straight-through, one layer), "fwp:<head_dim>[:<heads>]", "dnc:<N>:<W>:<R>[:links]"
 * (controller of 64 units), "hcam:<dim>:<chunk>:<topk>[:<num_chunks>]",
 * "ftw:<fast>:<slow>:<tau>[:<latent>]". MRL_ERR_INVALID_ARGUMENT with the reason in
 * error for anything else. */
MRL_DEF mrl_result mrl_core_config_parse(const char *spec, mrl_core_config *out, char *error,
                                         size_t error_size);
/* Every field of a core config as one JSON object (snprintf semantics): what
 * an agent's checkpoint records, so that a checkpoint of another core is
 * refused by name. A user core appears as its type's name. */
MRL_DEF int mrl_core_config_json(const mrl_core_config *c, char *buf, size_t size);
MRL_DEF mrl_core_config mrl_core_config_user(const mrl_core_type *type, const void *config);

typedef struct mrl_core {
  mrl_core_kind kind;
  int input_dim, output_dim, state_dim;
  int hidden_size, num_layers, frames;
  mrl_lstm lstm;
  mrl_gru gru;
  mrl_elman elman;
  const mrl_core_type *user_type;
  void *user; /* the user core's instance */
  void *impl; /* a built-in core's own layers and settings (MRL_MALLOC'd by its init, freed by
                 mrl_core_free), for cores whose parts do not fit the fields above */
} mrl_core;

/* Declares the core's parameters. MRL_ERR_INVALID_ARGUMENT for a config that
 * does not fit (the message, naming the field and value, goes to error when
 * error_size > 0); nothing is declared then and the core is safe to free. */
MRL_DEF mrl_result mrl_core_init(mrl_core *core, mrl_params *p, const char *name, int input_dim,
                                 const mrl_core_config *cfg, char *error, size_t error_size);
MRL_DEF void mrl_core_free(mrl_core *core);
MRL_DEF int mrl_core_state_dim(const mrl_core *core);
/* x [T*B, input_dim], row t*B+b. episode_start: NULL or [T*B] flags (1: the
 * state is zeroed before this step). state_in: the state of environment b at
 * state_in + b*stride (NULL: zeros); state_out, when not NULL, receives the
 * final state likewise (it may alias state_in). Returns y [T*B, output_dim]. */
MRL_DEF mrl_tensor *mrl_core_forward(const mrl_core *core, mrl_graph *g, mrl_tensor *x, int T,
                                     int B, const float *episode_start, const float *state_in,
                                     float *state_out, int stride);
/* mrl_core_forward that also returns the core's auxiliary loss per step in
 * *aux ([T*B] on the graph, row t*B+b; NULL for a core without one). FTW:
 * KL(posterior || prior) of step t; an algorithm adds
 * cost * mrl_mean(g, *aux) to its loss (the paper's kld_prior_posterior_cost). */
MRL_DEF mrl_tensor *mrl_core_forward_aux(const mrl_core *core, mrl_graph *g, mrl_tensor *x, int T,
                                         int B, const float *episode_start, const float *state_in,
                                         float *state_out, int stride, mrl_tensor **aux);

/* mrl_graph_jvp's rule lookup for tapes through this header's cores: AMRL's
 * aggregate (the straight-through's own Jacobian where that is on, so that
 * J^T M J stays symmetric), the fast weights' delta-rule scan and the DNC's
 * allocation (its sort order held fixed, as the backward pass does), then
 * mrl_nn_jvp_rule: every built-in core has its rules. */
MRL_DEF mrl_jvp_fn mrl_mem_jvp_rule(const mrl_node *node);

/* ---- towers: encoder -> core -> head ---- */
#define MRL_TOWER_MAX_LAYERS 8
typedef struct mrl_tower_config {
  int use_conv;                 /* 0; 1: a conv stack first (observations viewed as images) */
  mrl_conv_encoder_config conv; /* with use_conv */
  int encoder_sizes[MRL_TOWER_MAX_LAYERS]; /* {64, 64} */
  int num_encoder_layers;                  /* 2 */
  mrl_core_config core;                    /* none */
  int head_sizes[MRL_TOWER_MAX_LAYERS];    /* {} */
  int num_head_layers;                     /* 0 */
  mrl_activation activation;               /* tanh, after every encoder and head layer */
  mrl_init init;                           /* encoder and head layers: PyTorch's default */
} mrl_tower_config;
MRL_DEF mrl_tower_config mrl_tower_config_default(void);

typedef struct mrl_tower {
  mrl_conv_encoder conv;
  mrl_mlp encoder, head;
  mrl_core core;
  int use_conv, input_dim, output_dim;
  int state_offset, state_dim; /* its slice of the per-environment state record */
} mrl_tower;

/* Declares <name>.conv.*, <name>.encoder.*, <name>.core.*, <name>.head.*.
 * MRL_ERR_INVALID_ARGUMENT with a message naming the field for a config that
 * does not fit; the tower is safe to free after any result. */
MRL_DEF mrl_result mrl_tower_init(mrl_tower *t, mrl_params *p, const char *name, int input_dim,
                                  const mrl_tower_config *cfg, int state_offset, char *error,
                                  size_t error_size);
MRL_DEF void mrl_tower_free(mrl_tower *t);
/* x [T*B, input_dim] -> [T*B, output_dim]; state records of `stride` floats
 * per environment (the tower uses its own slice); arguments as
 * mrl_core_forward. */
MRL_DEF mrl_tensor *mrl_tower_forward(const mrl_tower *t, mrl_graph *g, mrl_tensor *x, int T, int B,
                                      const float *episode_start, const float *state_in,
                                      float *state_out, int stride);
/* The same, and *aux (may be NULL) the core's auxiliary loss per step
 * (mrl_core_forward_aux: FTW's KL; NULL for cores without one). */
MRL_DEF mrl_tensor *mrl_tower_forward_aux(const mrl_tower *t, mrl_graph *g, mrl_tensor *x, int T,
                                          int B, const float *episode_start, const float *state_in,
                                          float *state_out, int stride, mrl_tensor **aux);

/* ---- sum tree (prioritised replay) ----
 * A complete binary tree over `capacity` leaves whose inner nodes hold the
 * sums (and the minima of the positive values) of their children, so
 * setting a priority, the total, the smallest priority and finding the leaf
 * where a running sum crosses a given mass are O(log capacity) (Schaul et
 * al. 2016, "Prioritized Experience Replay", Appendix B.2.1). Sums are in
 * double precision so millions of updates do not drift. */
typedef struct mrl_sum_tree {
  int capacity; /* number of leaves in use */
  int leaves;   /* capacity rounded up to a power of two */
  double *sum;  /* [2 * leaves]: node 1 is the root, leaf i is node leaves + i */
  double *min;  /* [2 * leaves]: smallest positive priority below a node, HUGE_VAL if none */
} mrl_sum_tree;

MRL_DEF mrl_result mrl_sum_tree_init(mrl_sum_tree *t, int capacity); /* every priority 0 */
MRL_DEF void mrl_sum_tree_free(mrl_sum_tree *t);
/* priority finite and >= 0 (checked); 0 removes the leaf from sampling */
MRL_DEF void mrl_sum_tree_set(mrl_sum_tree *t, int index, double priority);
MRL_DEF double mrl_sum_tree_get(const mrl_sum_tree *t, int index);
MRL_DEF double mrl_sum_tree_total(const mrl_sum_tree *t);
MRL_DEF double mrl_sum_tree_min(const mrl_sum_tree *t); /* smallest positive priority; 0 if none */
/* The leaf i with prefix(i) <= mass < prefix(i + 1), where prefix(i) sums the
 * priorities of leaves before i; mass is clamped into [0, total), and a leaf of
 * priority 0 is never returned. -1 when every priority is 0. */
MRL_DEF int mrl_sum_tree_find(const mrl_sum_tree *t, double mass);
/* n draws, stratified: the total is split into n equal segments and one
 * uniform draw is taken in each (Schaul et al. 2016, Appendix B.2.1). */
MRL_DEF void mrl_sum_tree_sample(const mrl_sum_tree *t, int n, mrl_rng *rng, int *indices);

/* ---- return estimators ----
 * Plain functions over arrays, each tested against a direct transcription of
 * its equation. GAE(lambda) is mrl_rollout_compute_gae (below).
 * Value rescaling of R2D2 (Kapturowski et al. 2019, after Pohlen et al. 2018):
 *   h(x)      = sign(x) (sqrt(|x| + 1) - 1) + eps x
 *   h^-1(x)   = sign(x) (((sqrt(1 + 4 eps (|x| + 1 + eps)) - 1) / (2 eps))^2 - 1)
 * with eps = 1e-3 in the paper; h^-1(h(x)) = x. */
MRL_DEF float mrl_value_rescale(float x, float eps);
MRL_DEF float mrl_value_rescale_inv(float x, float eps);

/* Advantage estimators over time-major [T, B] arrays. Common arguments:
 * rewards, values, terminated, truncated [T*B] (row t*B+b; flags 0/1),
 * final_values [T*B] (the value of the final observation where step t was
 * truncated by a time limit; may be NULL when nothing is truncated),
 * last_values [B] (the value of the observation after step T-1, used where
 * step T-1 did not end the episode). A terminated episode bootstraps from 0.
 * Outputs advantages and returns (the value targets, advantages + values)
 * [T*B]; either may be NULL. */

/* K-step bootstrapped advantages (the history-dependent baseline of
 * recurrent policy gradients, Wierstra et al. 2010, bootstrapped after K
 * steps as in Mnih et al. 2016):
 *   Psi_t = sum_{l<k} gamma^l r_{t+l} + gamma^k V_{t+k} - V_t,
 * k = min(K, steps to the end of the episode, steps to the end of the
 * rollout); an episode end inside the window bootstraps as above. K >= 1;
 * K >= T gives Monte-Carlo returns bootstrapped at the rollout's end. */
MRL_DEF void mrl_returns_kstep(int T, int B, const float *rewards, const float *values,
                               const float *terminated, const float *truncated,
                               const float *final_values, const float *last_values, float gamma,
                               int K, float *advantages, float *returns);
/* lambda-returns (the forward view of eligibility traces, Sutton and Barto
 * 2018 section 12.1): G_t = r_t + gamma ((1 - lambda) V_{t+1} + lambda G_{t+1}),
 * cut at episode and rollout ends as above; advantages G_t - V_t (equal to
 * GAE(lambda)'s). lambda 1: Monte-Carlo returns, lambda 0: one-step TD. */
MRL_DEF void mrl_returns_lambda(int T, int B, const float *rewards, const float *values,
                                const float *terminated, const float *truncated,
                                const float *final_values, const float *last_values, float gamma,
                                float lambda, float *advantages, float *returns);

/* V-trace (Espeholt et al. 2018, "IMPALA", section 4.1): off-policy value
 * targets vs and policy-gradient advantages for [T, B] time-major arrays
 * (row t*B+b). log_rhos = log pi(a_t|x_t) - log mu(a_t|x_t) (target minus
 * behaviour log-probabilities); discounts = gamma, or 0 where step t ended its
 * episode (the next row of column b then belongs to a new episode); values
 * V(x_t); bootstrap_value [B] V(x_T) of the observation after the last step.
 * With rho_t = min(rho_bar, e^log_rho_t), c_t = min(c_bar, e^log_rho_t),
 *   delta_t = rho_t (r_t + discount_t V(x_{t+1}) - V(x_t))
 *   vs_t    = V(x_t) + sum_{k>=t} (prod_{i<k} discount_i) (prod_{i=t}^{k-1} c_i) delta_k
 *           = V(x_t) + delta_t + discount_t c_t (vs_{t+1} - V(x_{t+1}))    (computed so)
 *   pg_advantages_t = min(pg_rho_bar, e^log_rho_t) (r_t + discount_t vs_{t+1} - V(x_t))
 * with vs_T = V(x_T) = bootstrap_value. A time-limit truncation at step t is
 * bootstrapped by the caller: rewards_t += gamma V(final observation), discount_t = 0.
 * The thresholds: the paper's rho_bar = c_bar = pg_rho_bar = 1; HUGE_VALF for
 * no clipping. Sums run in double. vs or pg_advantages may be NULL. */
MRL_DEF void mrl_vtrace(int T, int B, const float *log_rhos, const float *discounts,
                        const float *rewards, const float *values, const float *bootstrap_value,
                        float rho_bar, float c_bar, float pg_rho_bar, float *vs,
                        float *pg_advantages);

typedef struct mrl_rollout {
  int num_steps, num_envs, obs_dim, action_dim, state_dim;
  float *obs;            /* [T, B, obs_dim] */
  float *actions;        /* [T, B, action_dim] */
  float *log_probs;      /* [T, B] */
  float *values;         /* [T, B] */
  float *rewards;        /* [T, B] */
  float *episode_starts; /* [T, B]: obs[t,b] is the first of an episode */
  float *terminated;     /* [T, B]: step t ended the episode in a terminal state */
  float *truncated;      /* [T, B]: step t ended it by a time limit */
  float *final_values;   /* [T, B]: value of the final observation where truncated */
  float *advantages;     /* [T, B] */
  float *returns;        /* [T, B] */
  float *initial_state;  /* [B, state_dim]: core state before step 0 */
} mrl_rollout;

MRL_DEF mrl_result mrl_rollout_init(mrl_rollout *r, int num_steps, int num_envs, int obs_dim,
                                    int action_dim, int state_dim);
MRL_DEF void mrl_rollout_free(mrl_rollout *r);
/* last_values [B]: value of the observation after the last step (used where
 * step T-1 did not end the episode). */
MRL_DEF void mrl_rollout_compute_gae(mrl_rollout *r, const float *last_values, float gamma,
                                     float gae_lambda);

/* ---- replay buffer (its section: the replay tag) ----
 * Transitions of a vector env of num_envs environments in a ring of
 * `capacity` items, any obs_dim and action_dim (a discrete action is one
 * float, a continuous one action_dim floats). n-step returns are computed AT
 * INSERTION: each environment keeps a pending window of its last n steps;
 * once it is full its oldest step becomes one item
 *   (obs_t, action_t, R = sum_{j<k} gamma^j r_{t+j}, next_obs = obs_{t+k},
 *    discount = gamma^k)
 * with k = n. An episode end flushes the window: every pending step becomes
 * an item with k = the steps left to the end, next_obs = the episode's final
 * observation, and discount = gamma^k after a truncation (a target
 * bootstraps from the final observation) but 0 after a termination.
 * Prioritised (Schaul et al. 2016, proportional variant) on an mrl_sum_tree:
 * a new item gets the largest priority seen so far (1 at first); an update
 * sets p_i = (|delta_i| + priority_eps)^alpha; sampling draws P(i) = p_i /
 * sum_k p_k (stratified, the paper's Appendix B) with importance weights
 * w_i = (N P(i))^-beta / max_j w_j, the maximum over all N stored items
 * (from the tree's smallest priority), so w_i = (p_i / p_min)^-beta; the
 * agent anneals beta to 1. Uniform sampling draws with replacement, weights
 * 1. Every draw comes from the buffer's own seeded RNG. One allocation holds
 * the ring and the windows (plus the tree's own when prioritised). */
typedef struct mrl_replay_config {
  int capacity;       /* items (10000) */
  int num_envs;       /* B environments adding each step (1) */
  int obs_dim;        /* floats per observation */
  int action_dim;     /* floats per action (1: a discrete action's index) */
  int n_step;         /* n (1) */
  float gamma;        /* 0.99 */
  int prioritized;    /* 0: uniform; 1: proportional prioritisation */
  float alpha;        /* priority exponent (0.6, Schaul et al.'s proportional variant) */
  float priority_eps; /* added to |delta| (1e-6) */
  uint64_t seed;      /* 1 */
} mrl_replay_config;
MRL_DEF mrl_replay_config mrl_replay_config_default(int capacity, int num_envs, int obs_dim,
                                                    int action_dim);

typedef struct mrl_replay {
  mrl_replay_config cfg;
  long long size;      /* items stored (<= capacity) */
  long long next;      /* ring slot of the next item */
  long long added;     /* items ever stored */
  double max_priority; /* largest p^alpha seen: what a new item gets */
  float *obs;          /* [capacity, obs_dim] */
  float *actions;      /* [capacity, action_dim] */
  float *rewards;      /* [capacity] n-step returns R */
  float *next_obs;     /* [capacity, obs_dim] obs_{t+k} (final observation at an episode end) */
  float *discounts;    /* [capacity] gamma^k, 0 after a termination */
  float *pend_obs;     /* [B, n, obs_dim] pending window of each environment (a ring) */
  float *pend_actions; /* [B, n, action_dim] */
  float *pend_rewards; /* [B, n] */
  long long *pending;  /* [2B]: steps pending in env b's window, then its oldest slot */
  double *priorities;  /* [capacity] p^alpha of each item (prioritised only; mirrors the tree) */
  mrl_sum_tree tree;   /* prioritised only */
  mrl_rng rng;
  size_t floats; /* floats in the one block (obs ... pend_rewards) */
  void *block;
} mrl_replay;

/* MRL_ERR_INVALID_ARGUMENT with the reason in error (error_size > 0) for a
 * config that does not fit; the buffer is safe to free after any result. */
MRL_DEF mrl_result mrl_replay_init(mrl_replay *r, const mrl_replay_config *cfg, char *error,
                                   size_t error_size);
MRL_DEF void mrl_replay_free(mrl_replay *r);
/* One vector step of the B environments: obs [B, obs_dim] acted on, actions
 * [B, action_dim], rewards [B], next_obs [B, obs_dim] the observation after
 * the step (the reset one where an episode ended: mrl_runner.obs), final_obs
 * [B, obs_dim] read only where terminated or truncated (mrl_runner.final_obs;
 * may be NULL when no episode ever ends), terminated and truncated [B] 0/1. */
MRL_DEF void mrl_replay_add(mrl_replay *r, const float *obs, const float *actions,
                            const float *rewards, const float *next_obs, const float *final_obs,
                            const float *terminated, const float *truncated);
/* n item indices (with replacement) and their importance weights [n]
 * (weights may be NULL; all 1 when uniform). beta is ignored when uniform.
 * MRL_ERR_INVALID_ARGUMENT when the buffer is empty or n < 1. */
MRL_DEF mrl_result mrl_replay_sample(mrl_replay *r, int n, float beta, int *indices,
                                     float *weights);
/* The items at indices, row by row; any output may be NULL. */
MRL_DEF void mrl_replay_gather(const mrl_replay *r, const int *indices, int n, float *obs,
                               float *actions, float *rewards, float *next_obs, float *discounts);
/* p_i = (|td_errors[k]| + priority_eps)^alpha for i = indices[k] (a later
 * duplicate wins); a no-op when uniform. Non-finite errors are programmer
 * errors (the agent's update guard refuses them first). */
MRL_DEF void mrl_replay_update_priorities(mrl_replay *r, const int *indices, const float *td_errors,
                                          int n);
/* The environments were reset without ending their episodes (a resumed
 * run without their snapshot): the steps pending in every window are
 * dropped, so no item joins two episodes. */
MRL_DEF void mrl_replay_drop_pending(mrl_replay *r);
/* Save/load with an agent's checkpoint: the buffer's whole state (ring,
 * windows, priorities, counters, RNG) as checkpoint extras pointing into r
 * (names "__replay.*"), at most MRL_REPLAY_EXTRAS of them; pass them to
 * mrl_agent_save / mrl_agent_load (whose size checks refuse another
 * buffer's), then call mrl_replay_loaded(r) after a successful load to
 * rebuild the sum tree from the loaded priorities. */
#define MRL_REPLAY_EXTRAS 8
MRL_DEF int mrl_replay_extras(const mrl_replay *r, mrl_checkpoint_extra *x);
MRL_DEF void mrl_replay_loaded(mrl_replay *r);

/* ---- sequence replay (R2D2) ----
 * mrl_seq_replay keeps fixed-length sequences of experience for recurrent
 * off-policy learning (Kapturowski et al. 2019, "Recurrent experience replay
 * in distributed reinforcement learning"; their defaults: length 80, a new
 * sequence every 40 steps, a burn-in prefix of 40, priority exponent 0.9,
 * importance exponent 0.6, priority eta max|d| + (1 - eta) mean|d| with
 * eta 0.9). Each environment's steps form one stream of entries; a stored
 * sequence is burn_in + seq_len consecutive entries (width) with the core
 * state before its first entry, and a new sequence is cut every
 * seq_len - overlap entries.
 *   Episode ends. A sequence runs on across an episode end instead of being
 *   padded: the step that ends an episode is followed by one bootstrap entry
 *   holding the final observation (valid 0: no action, never trained on;
 *   its Q value is what a truncated n-step return bootstraps from, computed
 *   with the ended episode's state), then the next episode's first entry
 *   with episode_start 1, where every unroll (burn-in included) zeroes the
 *   core state. So no burn-in carries memory across an episode start, and
 *   a stored state is zero when its entry begins an episode (it belongs to
 *   the episode of that entry). The paper never lets a sequence cross an
 *   episode end; ours do, with the reset, so no step is padding except the
 *   burn_in padding entries (valid 0, zero observation) that begin each
 *   environment's stream, which let the first steps be trained on.
 *   Priorities. A new sequence gets the largest priority seen so far
 *   (Schaul et al. 2016; R2D2's actors compute one instead). The tree holds
 *   (p + priority_eps)^priority_exponent; sampling is stratified over the
 *   total; importance weights are (N P(i))^-beta normalised by their
 *   largest value in the batch (as Acme's R2D2 and Dopamine; Schaul et al.
 *   leave the maximum's range open, and one over the whole buffer shrinks
 *   every weight towards 0 once a sequence's TD error is near zero). */
typedef struct mrl_seq_replay_config {
  int capacity;              /* sequences kept, oldest overwritten (1000) */
  int seq_len;               /* 80: entries trained on */
  int overlap;               /* 40: entries shared by consecutive sequences (< seq_len) */
  int burn_in;               /* 40: entries before them, unrolled only to warm the state */
  float priority_exponent;   /* alpha 0.9 (0: uniform sampling) */
  float importance_exponent; /* beta 0.6 (0: every weight 1) */
  float eta;                 /* 0.9 */
  float priority_eps;        /* 1e-6: keeps a sequence with zero TD error sampled */
  int episode_aligned;       /* 0; 1: a sequence only where its first entry begins an episode,
                                instead of every seq_len - overlap entries (DRQN's sequential
                                updates follow the stream instead: mrl_seq_replay_next) */
} mrl_seq_replay_config;
MRL_DEF mrl_seq_replay_config mrl_seq_replay_config_default(void);

typedef struct mrl_seq_replay {
  mrl_seq_replay_config cfg;
  int num_envs, obs_dim, action_dim, state_dim;
  int width;                   /* burn_in + seq_len entries per sequence */
  int period;                  /* seq_len - overlap */
  long long size, next, added; /* sequences held, slot written next, sequences ever added */
  double max_priority;         /* largest tree priority so far (new sequences get it) */
  float *obs;                  /* [capacity, width, obs_dim] */
  float *actions;              /* [capacity, width, action_dim] */
  float *rewards;              /* [capacity, width] */
  float *episode_starts;       /* [capacity, width] 1: the entry begins an episode */
  float *terminated;           /* [capacity, width] the step ended its episode, terminal */
  float *truncated;            /* [capacity, width] the step ended it by a time limit */
  float *valid;                /* [capacity, width] 1: an acted step; 0: bootstrap or padding */
  float *state;                /* [capacity, state_dim] core state before entry 0 */
  double *priority;            /* [capacity] tree priority of each slot (saved; the tree is
                                  rebuilt from it) */
  mrl_sum_tree tree;
  /* each environment's last width entries (a ring), each with the state before it */
  float *st_obs, *st_actions, *st_rewards, *st_starts, *st_terminated, *st_truncated, *st_valid;
  float *st_state;
  long long *st_count; /* [num_envs] entries in each stream so far */
  /* chains (DRQN's sequential updates follow a stream from window to window): sequence k
   * (counting every one ever added) is in slot k % capacity while k >= added - size */
  long long *link;    /* [capacity] the number of the stream's next sequence, -1: none yet */
  long long *st_last; /* [num_envs] the number of each stream's last sequence, -1: none */
} mrl_seq_replay;

/* MRL_ERR_INVALID_ARGUMENT for sizes that do not fit (capacity >= 1,
 * seq_len >= 2, 0 <= overlap < seq_len, burn_in >= 0, exponents >= 0,
 * eta in [0, 1]); safe to free after any result. */
MRL_DEF mrl_result mrl_seq_replay_init(mrl_seq_replay *r, const mrl_seq_replay_config *cfg,
                                       int num_envs, int obs_dim, int action_dim, int state_dim);
MRL_DEF void mrl_seq_replay_free(mrl_seq_replay *r);
/* One vector step of every environment b: the observation acted on
 * obs[b], its episode_start flag, the core state before acting state[b]
 * (may be NULL when state_dim is 0), the action, the reward and the
 * terminated/truncated flags of the step; where it ended the episode,
 * final_obs[b] and the state after acting next_state[b] make the bootstrap
 * entry. Returns the sequences completed (and stored) by this step. */
MRL_DEF int mrl_seq_replay_add(mrl_seq_replay *r, const float *obs, const float *episode_start,
                               const float *state, const float *actions, const float *rewards,
                               const float *terminated, const float *truncated,
                               const float *final_obs, const float *next_state);
/* The same for the environments first .. first + n - 1 only (their rows of
 * every array: obs[i] is environment first + i), for actors that each step
 * a block of the environments (R2D2's actor threads). */
MRL_DEF int mrl_seq_replay_add_envs(mrl_seq_replay *r, int first, int n, const float *obs,
                                    const float *episode_start, const float *state,
                                    const float *actions, const float *rewards,
                                    const float *terminated, const float *truncated,
                                    const float *final_obs, const float *next_state);
/* n sequence slots drawn in proportion to their priority (stratified,
 * rng), and their importance weights (may be NULL). MRL_ERR_INVALID_ARGUMENT
 * while the replay is empty. */
MRL_DEF mrl_result mrl_seq_replay_sample(mrl_seq_replay *r, int n, mrl_rng *rng, int *indices,
                                         float *weights);
/* The n sequences as time-major [width, n] arrays (row t * n + i); state
 * [n, state_dim]. Any output may be NULL. */
MRL_DEF void mrl_seq_replay_gather(const mrl_seq_replay *r, const int *indices, int n, float *obs,
                                   float *actions, float *rewards, float *episode_starts,
                                   float *terminated, float *truncated, float *valid, float *state);
/* R2D2's sequence priority eta max|d| + (1 - eta) mean|d| over the entries
 * where mask is nonzero (stride apart: td[k * stride]); 0 without any. */
MRL_DEF float mrl_seq_replay_priority(const float *abs_td, const float *mask, int n, int stride,
                                      float eta);
/* Sets slots indices[0..n) to priorities (as mrl_seq_replay_priority gives
 * them: before the exponent). */
MRL_DEF void mrl_seq_replay_update_priorities(mrl_seq_replay *r, const int *indices, int n,
                                              const float *priorities);
/* Sequences by number (every one ever added counts; number k is in slot
 * k % capacity while held): the number of the one in a slot, and the number
 * of the sequence after sequence k in its environment's stream (cut period
 * entries later: its first overlap entries are k's last), -1 when k or
 * that one is not held (not stored yet, or overwritten). */
MRL_DEF long long mrl_seq_replay_number(const mrl_seq_replay *r, int slot);
MRL_DEF long long mrl_seq_replay_next(const mrl_seq_replay *r, long long k);
/* The replay as checkpoint extras ("__seq_replay.*", pointing into r), for
 * mrl_agent_save/_load; x must hold MRL_SEQ_REPLAY_EXTRAS entries. After a
 * load through them call mrl_seq_replay_loaded (rebuilds the sum tree). */
#define MRL_SEQ_REPLAY_EXTRAS 24
MRL_DEF int mrl_seq_replay_extras(const mrl_seq_replay *r, mrl_checkpoint_extra *x);
MRL_DEF void mrl_seq_replay_loaded(mrl_seq_replay *r);

#ifdef __cplusplus
}
#endif
#endif /* MEMRL_MEM_H */

/* ======================================================================== */
#if (defined(MEMRL_MEM_IMPLEMENTATION) || defined(MEMRL_IMPLEMENTATION)) &&                        \
    !defined(MEMRL_MEM_IMPLEMENTED)
#define MEMRL_MEM_IMPLEMENTED
#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- memory cores >>core ---- */

/* GTrXL's parts (core->impl) */
typedef struct mrl__gtrxl_core {
  mrl_gtrxl net;
  mrl_linear_layer in; /* input embedding when input_dim != embed_dim */
  int project;
} mrl__gtrxl_core;

/* printf into a caller's error buffer (size 0: no message wanted) */
static void mrl__error(char *error, size_t size, const char *fmt, ...) {
  va_list ap;
  if (!error || size == 0) return;
  va_start(ap, fmt);
  vsnprintf(error, size, fmt, ap);
  va_end(ap);
}

/* The shortest decimal text that reads back as exactly v (configs as JSON). */
static const char *mrl__float_text(float v, char *buf, size_t size) {
  int digits;
  for (digits = 6; digits < 9; digits++) {
    snprintf(buf, size, "%.*g", digits, v);
    if (strtof(buf, NULL) == v) return buf;
  }
  snprintf(buf, size, "%.9g", v);
  return buf;
}

MRL_DEF int mrl_core_config_json(const mrl_core_config *c, char *buf, size_t size) {
  const mrl_gtrxl_config *g = &c->gtrxl;
  char f[5][24];
  return snprintf(
      buf, size,
      "{\"kind\":%d,\"hidden_size\":%d,\"num_layers\":%d,\"init\":[%d,%s],"
      "\"forget_bias\":%s,\"nonlinearity\":%d,\"frame_stack\":%d,"
      "\"gtrxl\":[%d,%d,%d,%d,%d,%s],\"amrl\":[%d,%d],\"fwp\":[%d,%d],"
      "\"dnc\":[%d,%d,%d,%d,%d],\"hcam\":[%d,%d,%d,%d,%d],\"ftw\":[%d,%d,%d,%d,%s,%s],"
      "\"user_type\":\"%s\"}",
      (int)c->kind, c->hidden_size, c->num_layers, (int)c->init.kind,
      mrl__float_text(c->init.a, f[0], 24), mrl__float_text(c->forget_bias, f[1], 24),
      (int)c->nonlinearity, c->frame_stack, g->embed_dim, g->num_heads, g->num_layers, g->ff_dim,
      g->mem_len, mrl__float_text(g->gate_bias, f[2], 24), (int)c->amrl.aggregator,
      c->amrl.straight_through, c->fwp.head_dim, c->fwp.heads, c->dnc.memory_size, c->dnc.word_size,
      c->dnc.read_heads, c->dnc.controller_size, c->dnc.links, c->hcam.dim, c->hcam.chunk,
      c->hcam.topk, c->hcam.num_chunks, c->hcam.num_heads, c->ftw.fast_size, c->ftw.slow_size,
      c->ftw.period, c->ftw.latent_size, mrl__float_text(c->ftw.init_scale, f[3], 24),
      mrl__float_text(c->ftw.min_scale, f[4], 24),
      c->kind == MRL_CORE_USER && c->user_type && c->user_type->name ? c->user_type->name : "");
}

MRL_DEF mrl_core_config mrl_core_config_default(void) {
  mrl_core_config c;
  memset(&c, 0, sizeof c);
  c.kind = MRL_CORE_NONE;
  c.num_layers = 1;
  c.init = mrl_init_default();
  c.nonlinearity = MRL_ACT_TANH;
  c.frame_stack = 4;
  c.gtrxl = mrl_gtrxl_config_default();
  c.amrl.aggregator = MRL_AMRL_AVG;
  c.amrl.straight_through = 1;
  c.fwp.heads = 1;
  c.dnc.memory_size = 16;
  c.dnc.word_size = 16;
  c.dnc.read_heads = 4;
  c.dnc.controller_size = 64;
  c.hcam.dim = 64;
  c.hcam.chunk = 8;
  c.hcam.topk = 2;
  c.hcam.num_chunks = 16;
  c.hcam.num_heads = 1;
  c.ftw.fast_size = 64;
  c.ftw.slow_size = 64;
  c.ftw.period = 10;
  c.ftw.init_scale = 0.1f;
  c.ftw.min_scale = 1e-4f;
  return c;
}

MRL_DEF mrl_core_config mrl_core_config_lstm(int hidden_size) {
  mrl_core_config c = mrl_core_config_default();
  c.kind = MRL_CORE_LSTM;
  c.hidden_size = hidden_size;
  return c;
}

MRL_DEF mrl_core_config mrl_core_config_gru(int hidden_size) {
  mrl_core_config c = mrl_core_config_default();
  c.kind = MRL_CORE_GRU;
  c.hidden_size = hidden_size;
  return c;
}

MRL_DEF mrl_core_config mrl_core_config_elman(int hidden_size) {
  mrl_core_config c = mrl_core_config_default();
  c.kind = MRL_CORE_ELMAN;
  c.hidden_size = hidden_size;
  return c;
}

MRL_DEF mrl_core_config mrl_core_config_frame_stack(int frames) {
  mrl_core_config c = mrl_core_config_default();
  c.kind = MRL_CORE_FRAME_STACK;
  c.frame_stack = frames;
  return c;
}

MRL_DEF mrl_core_config mrl_core_config_amrl(int hidden_size, mrl_amrl_aggregator aggregator) {
  mrl_core_config c = mrl_core_config_default();
  c.kind = MRL_CORE_AMRL;
  c.hidden_size = hidden_size;
  c.forget_bias = 1.0f; /* the authors' TF BasicLSTMCell default */
  c.amrl.aggregator = aggregator;
  return c;
}

MRL_DEF mrl_core_config mrl_core_config_fwp(int head_dim, int heads) {
  mrl_core_config c = mrl_core_config_default();
  c.kind = MRL_CORE_FWP;
  c.fwp.head_dim = head_dim;
  c.fwp.heads = heads;
  return c;
}
MRL_DEF mrl_core_config mrl_core_config_dnc(int memory_size, int word_size, int read_heads) {
  mrl_core_config c = mrl_core_config_default();
  c.kind = MRL_CORE_DNC;
  c.dnc.memory_size = memory_size;
  c.dnc.word_size = word_size;
  c.dnc.read_heads = read_heads;
  return c;
}

static mrl_result mrl__dnc_parse(const char *args, mrl_core_config *out);
MRL_DEF mrl_core_config mrl_core_config_hcam(int dim, int chunk, int topk) {
  mrl_core_config c = mrl_core_config_default();
  c.kind = MRL_CORE_HCAM;
  c.hcam.dim = dim;
  c.hcam.chunk = chunk;
  c.hcam.topk = topk;
  return c;
}

MRL_DEF mrl_core_config mrl_core_config_ftw(int fast_size, int slow_size, int period) {
  mrl_core_config c = mrl_core_config_default();
  c.kind = MRL_CORE_FTW;
  c.ftw.fast_size = fast_size;
  c.ftw.slow_size = slow_size;
  c.ftw.period = period;
  return c;
}

/* "<a>:<b>:..." after a core's name: up to max positive integers (each at
 * most 1000000) into v; returns how many, or -1 when malformed. */
static int mrl__parse_ints(const char *s, long *v, int max) {
  int n = 0;
  char *end;
  while (*s) {
    if (n == max) return -1;
    v[n] = strtol(s, &end, 10);
    if (end == s || v[n] < 1 || v[n] > 1000000) return -1;
    n++;
    if (*end == ':' && end[1])
      s = end + 1;
    else if (*end)
      return -1;
    else
      s = end;
  }
  return n;
}

MRL_DEF mrl_result mrl_core_config_parse(const char *spec, mrl_core_config *out, char *error,
                                         size_t error_size) {
  char name[32];
  const char *colon;
  long a = 0, b = 1;
  char *end;
  size_t n;
  if (!spec || !out) {
    mrl__error(error, error_size, "mrl_core_config_parse: NULL spec or output");
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (strncmp(spec, "amrl:", 5) == 0) {                   /* amrl:<units>[:avg|sum|max] */
    static const char aggs[3][4] = {"avg", "sum", "max"}; /* MRL_AMRL_AVG, _SUM, _MAX */
    int k;
    a = strtol(spec + 5, &end, 10);
    if (end == spec + 5 || a < 2 || a > 1000000) goto bad;
    *out = mrl_core_config_amrl((int)a, MRL_AMRL_AVG);
    if (*end == '\0') return MRL_OK;
    for (k = 0; k < 3; k++)
      if (end[0] == ':' && strcmp(end + 1, aggs[k]) == 0) {
        out->amrl.aggregator = (mrl_amrl_aggregator)k;
        return MRL_OK;
      }
    goto bad;
  }
  colon = strchr(spec, ':');
  n = colon ? (size_t)(colon - spec) : strlen(spec);
  if (n == 0 || n >= sizeof name) goto bad;
  memcpy(name, spec, n);
  name[n] = '\0';
  if (colon && strcmp(name, "dnc") == 0) {
    if (mrl__dnc_parse(colon + 1, out) == MRL_OK) return MRL_OK;
    goto bad;
  }
  if (colon && (strcmp(name, "hcam") == 0 || strcmp(name, "ftw") == 0)) {
    long v[4];
    int count = mrl__parse_ints(colon + 1, v, 4);
    if (count < 3) goto bad;
    if (name[0] == 'h') {
      *out = mrl_core_config_hcam((int)v[0], (int)v[1], (int)v[2]);
      if (count == 4) out->hcam.num_chunks = (int)v[3];
    } else {
      *out = mrl_core_config_ftw((int)v[0], (int)v[1], (int)v[2]);
      if (count == 4) out->ftw.latent_size = (int)v[3];
    }
    return MRL_OK;
  }
  if (colon) {
    a = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || a < 1 || a > 1000000) goto bad;
    if (*end == ':') {
      const char *s2 = end + 1;
      b = strtol(s2, &end, 10);
      if (end == s2 || b < 1 || b > MRL_RNN_MAX_LAYERS) goto bad;
    }
    if (*end) goto bad;
  }
  if (strcmp(name, "none") == 0 && !colon) {
    *out = mrl_core_config_default();
  } else if (colon && strcmp(name, "lstm") == 0) {
    *out = mrl_core_config_lstm((int)a);
  } else if (colon && strcmp(name, "gru") == 0) {
    *out = mrl_core_config_gru((int)a);
  } else if (colon && (strcmp(name, "elman") == 0 || strcmp(name, "elman_relu") == 0)) {
    *out = mrl_core_config_elman((int)a);
    if (name[5]) out->nonlinearity = MRL_ACT_RELU;
  } else if (colon && strcmp(name, "gtrxl") == 0) { /* gtrxl:<embed>[:<layers>] */
    *out = mrl_core_config_gtrxl((int)a, 64);
    out->gtrxl.num_layers = (int)b;
    return MRL_OK;
  } else if (colon && strcmp(name, "frame_stack") == 0 && b == 1 &&
             strchr(colon + 1, ':') == NULL) {
    *out = mrl_core_config_frame_stack((int)a);
    return MRL_OK;
  } else if (colon && strcmp(name, "fwp") == 0) {
    *out = mrl_core_config_fwp((int)a, (int)b);
    return MRL_OK;
  } else {
    goto bad;
  }
  out->num_layers = (int)b;
  return MRL_OK;
bad:
  mrl__error(error, error_size,
             "core spec \"%s\" is not none, lstm:H[:L], gru:H[:L], elman:H[:L], elman_relu:H[:L], "
             "gtrxl:E[:L], frame_stack:K, amrl:H[:avg|sum|max], fwp:D[:HEADS], "
             "dnc:N:W:R[:links], hcam:D:C:K[:N] or ftw:F:S:TAU[:Z]",
             spec);
  return MRL_ERR_INVALID_ARGUMENT;
}

MRL_DEF mrl_core_config mrl_core_config_gtrxl(int embed_dim, int mem_len) {
  mrl_core_config c = mrl_core_config_default();
  c.kind = MRL_CORE_GTRXL;
  c.gtrxl.embed_dim = embed_dim;
  c.gtrxl.mem_len = mem_len;
  return c;
}

MRL_DEF mrl_core_config mrl_core_config_user(const mrl_core_type *type, const void *config) {
  mrl_core_config c = mrl_core_config_default();
  c.kind = MRL_CORE_USER;
  c.user_type = type;
  c.user_config = config;
  return c;
}

/* the built-in cores with sections of their own (below) */
static mrl_result mrl__amrl_init(mrl_core *core, mrl_params *p, const char *name,
                                 const mrl_core_config *cfg, char *error, size_t error_size);
static mrl_result mrl__fwp_init(mrl_core *core, mrl_params *p, const char *name,
                                const mrl_core_config *cfg, char *error, size_t error_size);
static mrl_result mrl__dnc_init(mrl_core *core, mrl_params *p, const char *name, int input_dim,
                                const mrl_core_config *cfg, char *error, size_t error_size);
static mrl_tensor *mrl__dnc_forward(const mrl_core *core, mrl_graph *g, mrl_tensor *x, int T, int B,
                                    const float *episode_start, const float *state_in,
                                    float *state_out, int stride);
/* Built-in cores with their own sections below. */
static mrl_result mrl__hcam_init(mrl_core *core, mrl_params *p, const char *name,
                                 const mrl_hcam_config *c, char *error, size_t error_size);
static mrl_result mrl__ftw_init(mrl_core *core, mrl_params *p, const char *name,
                                const mrl_ftw_config *c, char *error, size_t error_size);

MRL_DEF mrl_result mrl_core_init(mrl_core *core, mrl_params *p, const char *name, int input_dim,
                                 const mrl_core_config *cfg, char *error, size_t error_size) {
  memset(core, 0, sizeof *core);
  core->input_dim = input_dim;
  if (input_dim < 1) {
    mrl__error(error, error_size, "core: input_dim %d must be >= 1", input_dim);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  switch (cfg->kind) {
  case MRL_CORE_NONE:
    core->output_dim = input_dim;
    core->state_dim = 0;
    break;
  case MRL_CORE_LSTM:
  case MRL_CORE_GRU:
  case MRL_CORE_ELMAN: {
    int H = cfg->hidden_size, L = cfg->num_layers;
    const char *what = cfg->kind == MRL_CORE_LSTM  ? "an LSTM"
                       : cfg->kind == MRL_CORE_GRU ? "a GRU"
                                                   : "an Elman RNN";
    if (H < 1) {
      mrl__error(error, error_size, "core.hidden_size %d must be >= 1 for %s", H, what);
      return MRL_ERR_INVALID_ARGUMENT;
    }
    if (L < 1 || L > MRL_RNN_MAX_LAYERS) {
      mrl__error(error, error_size, "core.num_layers %d must be in 1..%d", L, MRL_RNN_MAX_LAYERS);
      return MRL_ERR_INVALID_ARGUMENT;
    }
    if (!(cfg->forget_bias - cfg->forget_bias == 0.0f)) {
      mrl__error(error, error_size, "core.forget_bias %g must be finite", cfg->forget_bias);
      return MRL_ERR_INVALID_ARGUMENT;
    }
    if (cfg->kind == MRL_CORE_ELMAN && cfg->nonlinearity != MRL_ACT_TANH &&
        cfg->nonlinearity != MRL_ACT_RELU) {
      mrl__error(error, error_size, "core.nonlinearity %d must be MRL_ACT_TANH or MRL_ACT_RELU",
                 (int)cfg->nonlinearity);
      return MRL_ERR_INVALID_ARGUMENT;
    }
    if (cfg->kind == MRL_CORE_LSTM)
      mrl_lstm_init(&core->lstm, p, name, input_dim, H, L, cfg->init, cfg->forget_bias);
    else if (cfg->kind == MRL_CORE_GRU) {
      int k;
      mrl_gru_init(&core->gru, p, name, input_dim, H, L, cfg->init);
      /* forget_bias on the update gate z (h' = (1 - z) n + z h): a GRU that
       * starts out keeping its state, as the LSTM's forget bias does */
      for (k = 0; k < L && cfg->forget_bias != 0.0f; k++) {
        int id = core->gru.layers[k].bias_ih;
        if (id >= 0 && id < p->count) {
          mrl_init *bi = &p->items[id].init;
          *bi = mrl_init_make(MRL_INIT_GRU_BIAS, bi->kind == MRL_INIT_UNIFORM ? bi->a : 0.0f);
          bi->b = cfg->forget_bias;
        }
      }
    } else
      mrl_elman_init(&core->elman, p, name, input_dim, H, L, cfg->nonlinearity, cfg->init);
    core->hidden_size = H;
    core->num_layers = L;
    core->output_dim = H;
    core->state_dim = (cfg->kind == MRL_CORE_LSTM ? 2 : 1) * L * H;
    break;
  }
  case MRL_CORE_GTRXL: {
    const mrl_gtrxl_config *gc = &cfg->gtrxl;
    mrl__gtrxl_core *m;
    char buf[MRL_NAME_MAX];
    if (gc->embed_dim < 1 || gc->num_heads < 1 || gc->embed_dim % gc->num_heads != 0 ||
        gc->num_layers < 1 || gc->num_layers > MRL_GTRXL_MAX_LAYERS || gc->ff_dim < 1 ||
        gc->mem_len < 1 || !(gc->gate_bias - gc->gate_bias == 0.0f)) {
      mrl__error(error, error_size,
                 "core.gtrxl: embed_dim %d (a multiple of num_heads %d), num_layers %d (1..%d), "
                 "ff_dim %d, mem_len %d must be >= 1, gate_bias finite",
                 gc->embed_dim, gc->num_heads, gc->num_layers, MRL_GTRXL_MAX_LAYERS, gc->ff_dim,
                 gc->mem_len);
      return MRL_ERR_INVALID_ARGUMENT;
    }
    m = (mrl__gtrxl_core *)MRL_MALLOC(sizeof *m);
    if (!m) return MRL_ERR_OUT_OF_MEMORY;
    memset(m, 0, sizeof *m);
    core->impl = m;
    if (input_dim != gc->embed_dim) { /* the paper's input embedding: a linear map to E */
      m->project = 1;
      mrl_linear_layer_init(&m->in, p, mrl__name(p, buf, name, "input"), input_dim, gc->embed_dim,
                            mrl_init_default());
    }
    mrl_gtrxl_init(&m->net, p, name, gc);
    core->output_dim = gc->embed_dim;
    core->state_dim = mrl_gtrxl_state_dim(&m->net);
    break;
  }
  case MRL_CORE_FRAME_STACK:
    if (cfg->frame_stack < 1 || cfg->frame_stack > 4096) {
      mrl__error(error, error_size, "core.frame_stack %d must be in 1..4096", cfg->frame_stack);
      return MRL_ERR_INVALID_ARGUMENT;
    }
    core->frames = cfg->frame_stack;
    core->output_dim = cfg->frame_stack * input_dim;
    core->state_dim = (cfg->frame_stack - 1) * input_dim;
    break;
  case MRL_CORE_AMRL:
  case MRL_CORE_FWP: {
    mrl_result r = cfg->kind == MRL_CORE_AMRL
                       ? mrl__amrl_init(core, p, name, cfg, error, error_size)
                       : mrl__fwp_init(core, p, name, cfg, error, error_size);
    if (r != MRL_OK) return r;
    break;
  }
  case MRL_CORE_HCAM: {
    mrl_result r = mrl__hcam_init(core, p, name, &cfg->hcam, error, error_size);
    if (r != MRL_OK) return r;
    break;
  }
  case MRL_CORE_FTW: {
    mrl_result r = mrl__ftw_init(core, p, name, &cfg->ftw, error, error_size);
    if (r != MRL_OK) return r;
    break;
  }
  case MRL_CORE_USER: {
    const mrl_core_type *ty = cfg->user_type;
    mrl_result r;
    int out = 0, st = -1;
    if (!ty || !ty->init || !ty->forward) {
      mrl__error(error, error_size, "core.user_type must be a table with init and forward");
      return MRL_ERR_INVALID_ARGUMENT;
    }
    r = ty->init(&core->user, p, name, input_dim, cfg->user_config, &out, &st);
    if (r != MRL_OK || out < 1 || st < 0) {
      if (r == MRL_OK && ty->free) ty->free(core->user);
      core->user = NULL;
      mrl__error(error, error_size, "core %s: init failed (%s; output_dim %d, state_dim %d)",
                 ty->name ? ty->name : "(user)", mrl_result_string(r), out, st);
      return r != MRL_OK ? r : MRL_ERR_INVALID_ARGUMENT;
    }
    core->user_type = ty;
    core->output_dim = out;
    core->state_dim = st;
    break;
  }
  case MRL_CORE_DNC: {
    mrl_result r = mrl__dnc_init(core, p, name, input_dim, cfg, error, error_size);
    if (r != MRL_OK) return r;
    break;
  }
  default:
    mrl__error(error, error_size, "core.kind %d is not an mrl_core_kind", (int)cfg->kind);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  core->kind = cfg->kind;
  return MRL_OK;
}

MRL_DEF void mrl_core_free(mrl_core *core) {
  if (core->kind == MRL_CORE_USER && core->user_type && core->user_type->free && core->user)
    core->user_type->free(core->user);
  core->user = NULL;
  MRL_FREE(core->impl); /* plain data: a core that owns more frees it in its own case first */
  core->impl = NULL;
}

MRL_DEF int mrl_core_state_dim(const mrl_core *core) {
  return core->state_dim;
}

/* Layered recurrent states: environment b keeps L blocks of H floats at
 * state + b * stride + offset (layer 0 first); the stacks take [L*B, H]
 * (torch's [L, B, H]). NULL state: zeros. */
static mrl_tensor *mrl__core_layers_in(mrl_graph *g, const float *state, int stride, int offset,
                                       int L, int B, int H) {
  mrl_tensor *t = mrl_tensor_new2(g, L * B, H, 0);
  int l, b;
  if (!t) return NULL;
  for (l = 0; l < L; l++)
    for (b = 0; b < B; b++) {
      float *row = t->data + ((size_t)l * B + b) * H;
      if (state)
        memcpy(row, state + (size_t)b * stride + offset + (size_t)l * H, sizeof(float) * (size_t)H);
      else
        memset(row, 0, sizeof(float) * (size_t)H);
    }
  return t;
}

static void mrl__core_layers_out(const mrl_tensor *t, float *state, int stride, int offset, int L,
                                 int B, int H) {
  int l, b;
  for (l = 0; l < L; l++)
    for (b = 0; b < B; b++)
      memcpy(state + (size_t)b * stride + offset + (size_t)l * H, t->data + ((size_t)l * B + b) * H,
             sizeof(float) * (size_t)H);
}

/* ---- frame stack >>frame_stack ----
 * The baseline every memory paper compares against (Mnih et al. 2015 stack
 * 4 frames): y_t = [x_{t-k+1}, ..., x_t], oldest first, with zeros for steps
 * before the episode began. State: the last k-1 inputs, oldest first
 * ((k-1) * input_dim floats), zeros where the episode had not begun. The
 * inputs inside a training sequence keep their gradients; those from the
 * stored state enter as constants (truncated BPTT at the sequence start,
 * like every core here). */
static mrl_tensor *mrl__frame_stack_forward(const mrl_core *core, mrl_graph *g, mrl_tensor *x,
                                            int T, int B, const float *episode_start,
                                            const float *state_in, float *state_out, int stride) {
  int k = core->frames, D = core->input_dim, P = k - 1, t, b, j, shape[2];
  int zero_row = (P + T) * B, n = T * B * k;
  mrl_tensor *parts[3], *z, *y;
  int *index, *first;
  if (k == 1) return x;
  /* rows: P stored frames per environment (time-major: slot s of env b at
   * row s*B + b), then x (row (P + t)*B + b), then one zero row */
  parts[0] = mrl_tensor_new2(g, P * B, D, 0);
  parts[2] = mrl_tensor_new2(g, 1, D, 0);
  index = (int *)mrl_graph_alloc(g, sizeof(int) * ((size_t)n + (size_t)B));
  if (!parts[0] || !parts[2] || !index) return NULL;
  first = index + n; /* per environment: the first step of the running episode (-P: before all) */
  for (b = 0; b < B; b++)
    for (j = 0; j < P; j++)
      if (state_in)
        memcpy(parts[0]->data + ((size_t)j * B + b) * D,
               state_in + (size_t)b * stride + (size_t)j * D, sizeof(float) * (size_t)D);
      else
        memset(parts[0]->data + ((size_t)j * B + b) * D, 0, sizeof(float) * (size_t)D);
  memset(parts[2]->data, 0, sizeof(float) * (size_t)D);
  parts[1] = x;
  z = mrl_concat_rows(g, parts, 3);
  if (!z) return NULL;
  for (b = 0; b < B; b++) first[b] = -P;
  for (t = 0; t < T; t++)
    for (b = 0; b < B; b++) {
      if (episode_start && episode_start[(size_t)t * B + b] != 0.0f) first[b] = t;
      for (j = 0; j < k; j++) { /* slot j holds step t - (k-1) + j */
        int s = t - P + j;
        index[((size_t)t * B + b) * k + j] = s >= first[b] ? (s + P) * B + b : zero_row;
      }
    }
  y = mrl_index_select(g, z, index, n);
  if (y && state_out) /* the last P frames of the final step, as its stack held them */
    for (b = 0; b < B; b++)
      for (j = 0; j < P; j++)
        memcpy(state_out + (size_t)b * stride + (size_t)j * D,
               y->data + (((size_t)(T - 1) * B + b) * k + j + 1) * D, sizeof(float) * (size_t)D);
  if (!y) return NULL;
  shape[0] = T * B;
  shape[1] = k * D;
  return mrl_reshape(g, y, 2, shape);
}

/* ---- GTrXL core >>gtrxl_core ----
 * Parisotto et al. 2019, "Stabilizing Transformers for Reinforcement
 * Learning": memrl_nn.h's mrl_gtrxl (GRU-gated, identity-initialised layers
 * over a Transformer-XL memory of each layer's last mem_len inputs, relative
 * positions, masked at episode starts) behind the core interface. Input of
 * another width than embed_dim is first mapped to it by a linear layer
 * (<name>.input), the paper's input embedding. State: mrl_gtrxl's own flat
 * record (see mrl_gtrxl_state_dim); the memory enters a training segment
 * detached, as in Transformer-XL, so gradients stay inside the segment. */
static mrl_tensor *mrl__gtrxl_core_forward(const mrl_core *core, mrl_graph *g, mrl_tensor *x, int T,
                                           int B, const float *episode_start, const float *state_in,
                                           float *state_out, int stride) {
  const mrl__gtrxl_core *m = (const mrl__gtrxl_core *)core->impl;
  int S = core->state_dim, b;
  float *in = NULL, *out;
  mrl_tensor *y;
  if (m->project) x = mrl_linear_layer_forward(&m->in, g, x);
  if (!x) return NULL;
  /* mrl_gtrxl keeps environments' records back to back: gather the strided ones */
  out = (float *)mrl_graph_alloc(g, sizeof(float) * ((size_t)B * S + 1));
  if (state_in) in = (float *)mrl_graph_alloc(g, sizeof(float) * ((size_t)B * S + 1));
  if (!out || (state_in && !in)) return NULL;
  for (b = 0; state_in && b < B; b++)
    memcpy(in + (size_t)b * S, state_in + (size_t)b * stride, sizeof(float) * (size_t)S);
  y = mrl_gtrxl_forward(&m->net, g, x, T, B, episode_start, in, out);
  for (b = 0; y && state_out && b < B; b++)
    memcpy(state_out + (size_t)b * stride, out + (size_t)b * S, sizeof(float) * (size_t)S);
  return y;
}

/* ---- AMRL >>amrl ----
 * AMRL (Beck, Ciosek, Devlin, Tschiatschek, Zhang, Hofmann 2020, "AMRL:
 * Aggregated Memory for Reinforcement Learning", ICLR), wired as the authors'
 * code (github.com/jacooba/AMRL-ICLR2020, models/lstm_diff and
 * average_rnn.py: an LSTM in slot 1, the "avg" cell stacked on it):
 *   h_t = LSTM(x_t)                     (torch.nn.LSTM, num_layers, H units)
 *   a_t = h_t[0 : H/2],  s_t = h_t[H/2 : H]
 *   avg: S_t = S_{t-1} + a_t, n_t = n_{t-1} + 1, m_t = S_t / n_t
 *   sum: S_t = S_{t-1} + a_t,                    m_t = S_t
 *   max: S_t = max(S_{t-1}, a_t) elementwise,    m_t = S_t
 *   y_t = [s_t, m_t]                    (the skip half first, as the authors)
 * with S and n zero at an episode's start (so max starts from 0, as the
 * authors' zero initial state does). Straight-through (the paper's ST,
 * straight_through = 1): the backward pass treats m_t = S_t / n_t as
 * m_t = S_t and max(S_{t-1}, a_t) as S_{t-1} + a_t, so the gradient of a_t
 * is the sum of the output gradients of m over the rest of the episode, for
 * every aggregator; straight_through = 0 gives the exact gradient (the
 * paper's AVG and MAX baselines; the authors' SUM has no ST).
 * State: [h (L*H), c (L*H), S (H/2)] and, for avg, n (1 float): the LSTM's
 * layout, then the aggregator. Output H floats.
 * Deviations: the authors' average_rnn_eps (dividing by t^(1+eps)) and
 * average_rnn_count (appending n_t to the output) are off, as in their
 * configs; their final_hidden layer is the tower's head MLP here. */
typedef struct mrl__amrl {
  mrl_amrl_aggregator aggregator;
  int straight_through;
} mrl__amrl;

static mrl_result mrl__amrl_init(mrl_core *core, mrl_params *p, const char *name,
                                 const mrl_core_config *cfg, char *error, size_t error_size) {
  int H = cfg->hidden_size, L = cfg->num_layers;
  mrl__amrl *a;
  if (H < 2 || H % 2) {
    mrl__error(error, error_size, "core.hidden_size %d must be even and >= 2 for AMRL", H);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (L < 1 || L > MRL_RNN_MAX_LAYERS) {
    mrl__error(error, error_size, "core.num_layers %d must be in 1..%d", L, MRL_RNN_MAX_LAYERS);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (!(cfg->forget_bias - cfg->forget_bias == 0.0f)) {
    mrl__error(error, error_size, "core.forget_bias %g must be finite", cfg->forget_bias);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if ((int)cfg->amrl.aggregator < 0 || (int)cfg->amrl.aggregator > (int)MRL_AMRL_MAX) {
    mrl__error(error, error_size, "core.amrl.aggregator %d is not an mrl_amrl_aggregator",
               (int)cfg->amrl.aggregator);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  a = (mrl__amrl *)MRL_MALLOC(sizeof *a);
  if (!a) {
    mrl__error(error, error_size, "core: out of memory");
    return MRL_ERR_OUT_OF_MEMORY;
  }
  a->aggregator = cfg->amrl.aggregator;
  a->straight_through = cfg->amrl.straight_through != 0;
  core->impl = a;
  mrl_lstm_init(&core->lstm, p, name, core->input_dim, H, L, cfg->init, cfg->forget_bias);
  core->hidden_size = H;
  core->num_layers = L;
  core->output_dim = H;
  core->state_dim = 2 * L * H + H / 2 + (a->aggregator == MRL_AMRL_AVG);
  return MRL_OK;
}

/* The aggregator over a [T*B, K] sequence. i: T, B, K, mode (0 straight-
 * through or sum: running sums of the gradient; 1 exact avg; 2 exact max);
 * index: episode starts as ints (NULL: none); extra[0]: n_t per row (exact avg). */
static void mrl__amrl_agg_backward(mrl_node *nd) {
  mrl_tensor *a = nd->in[0], *y = nd->out;
  int T = nd->i[0], B = nd->i[1], K = nd->i[2], mode = nd->i[3], t, b, k;
  const float *n = nd->extra[0] ? nd->extra[0]->data : NULL;
  if (!a->grad) return;
  for (b = 0; b < B; b++)
    for (k = 0; k < K; k++) {
      float gsum = 0.0f; /* dL/dS_t: what flows back into the aggregate */
      for (t = T - 1; t >= 0; t--) {
        size_t r = (size_t)t * B + b, e = r * K + k;
        gsum += mode == 1 ? y->grad[e] / n[r] : y->grad[e];
        if (mode == 2) { /* exact max: the winner takes it (a on ties) */
          if (y->data[e] == a->data[e]) {
            a->grad[e] += gsum;
            gsum = 0.0f;
          }
        } else {
          a->grad[e] += gsum;
        }
        if (nd->index && nd->index[r]) gsum = 0.0f; /* S_{t-1} was reset: not used */
      }
    }
}

/* Forward mode (mrl_graph_jvp): the transpose of the backward pass above,
 * so that a Fisher J^T M J v stays symmetric: the tangent of S runs forward
 * from 0 at each episode start (the stored S is a constant), plus da_t for
 * sum / avg (divided by n_t for the exact avg), or da_t where a_t won the
 * exact max. Straight-through: the running sum's tangent, which is what the
 * backward pass differentiates, not the forward's avg or max. */
static void mrl__amrl_agg_jvp(mrl_node *nd) {
  mrl_tensor *a = nd->in[0], *y = nd->out;
  int T = nd->i[0], B = nd->i[1], K = nd->i[2], mode = nd->i[3], t, b, k;
  const float *n = nd->extra[0] ? nd->extra[0]->data : NULL;
  for (b = 0; b < B; b++)
    for (k = 0; k < K; k++) {
      float ds = 0.0f; /* the aggregate's tangent */
      for (t = 0; t < T; t++) {
        size_t r = (size_t)t * B + b, e = r * K + k;
        float da = a->grad ? a->grad[e] : 0.0f;
        if (nd->index && nd->index[r]) ds = 0.0f;
        if (mode == 2)
          ds = y->data[e] == a->data[e] ? da : ds;
        else
          ds += da;
        y->grad[e] = mode == 1 ? ds / n[r] : ds;
      }
    }
}

static void mrl__fwp_scan_backward(mrl_node *nd); /* the fwp and dnc sections below */
static void mrl__fwp_scan_jvp(mrl_node *nd);
static void mrl__dnc_allocation_backward(mrl_node *nd);
static void mrl__dnc_allocation_jvp(mrl_node *nd);
MRL_DEF mrl_jvp_fn mrl_mem_jvp_rule(const mrl_node *nd) {
  if (nd->backward == mrl__amrl_agg_backward) return mrl__amrl_agg_jvp;
  if (nd->backward == mrl__fwp_scan_backward) return mrl__fwp_scan_jvp;
  if (nd->backward == mrl__dnc_allocation_backward) return mrl__dnc_allocation_jvp;
  return mrl_nn_jvp_rule(nd);
}

static mrl_tensor *mrl__amrl_aggregate(const mrl_core *core, mrl_graph *g, mrl_tensor *a, int T,
                                       int B, const float *episode_start, const float *state_in,
                                       float *state_out, int stride) {
  const mrl__amrl *c = (const mrl__amrl *)core->impl;
  int K = core->hidden_size / 2, off = 2 * core->num_layers * core->hidden_size, t, b, k;
  int avg = c->aggregator == MRL_AMRL_AVG, mx = c->aggregator == MRL_AMRL_MAX;
  int mode = c->straight_through || c->aggregator == MRL_AMRL_SUM ? 0 : (avg ? 1 : 2);
  int wants, *starts = NULL;
  mrl_tensor *y, *counts = NULL;
  float *S;
  mrl_node *nd;
  if (!a) return NULL;
  wants = mrl_graph_wants_grad(g, a, NULL);
  y = mrl_op_output(g, 2, a->shape, wants);
  S = (float *)mrl_graph_alloc(g, sizeof(float) * (size_t)K);
  if (!y || !S) return NULL;
  if (wants && episode_start) {
    starts = (int *)mrl_graph_alloc(g, sizeof(int) * (size_t)T * B);
    if (!starts) return NULL;
    for (t = 0; t < T * B; t++) starts[t] = episode_start[t] != 0.0f;
  }
  if (wants && mode == 1 && !(counts = mrl_tensor_new2(g, T * B, 1, 0))) return NULL;
  for (b = 0; b < B; b++) {
    const float *st = state_in ? state_in + (size_t)b * stride + off : NULL;
    float n = st && avg ? st[K] : 0.0f;
    for (k = 0; k < K; k++) S[k] = st ? st[k] : 0.0f;
    for (t = 0; t < T; t++) {
      size_t r = (size_t)t * B + b;
      const float *x = a->data + r * K;
      float *o = y->data + r * K;
      if (episode_start && episode_start[r] != 0.0f) {
        memset(S, 0, sizeof(float) * (size_t)K);
        n = 0.0f;
      }
      n += 1.0f;
      for (k = 0; k < K; k++) {
        S[k] = mx ? (x[k] >= S[k] ? x[k] : S[k]) : S[k] + x[k];
        o[k] = avg ? S[k] / n : S[k];
      }
      if (counts) counts->data[r] = n;
    }
    if (state_out) {
      float *so = state_out + (size_t)b * stride + off;
      memcpy(so, S, sizeof(float) * (size_t)K);
      if (avg) so[K] = n;
    }
  }
  MRL__FINITE("amrl_aggregate", y, a, NULL);
  if ((nd = mrl_graph_record(g, "amrl_aggregate", mrl__amrl_agg_backward, y)) != NULL) {
    nd->in[0] = a;
    nd->extra[0] = counts;
    nd->index = starts;
    nd->i[0] = T;
    nd->i[1] = B;
    nd->i[2] = K;
    nd->i[3] = mode;
  }
  return y;
}

static mrl_tensor *mrl__amrl_forward(const mrl_core *core, mrl_graph *g, mrl_tensor *x, int T,
                                     int B, const float *episode_start, const float *state_in,
                                     float *state_out, int stride) {
  int H = core->hidden_size, L = core->num_layers;
  mrl_tensor *h0 = mrl__core_layers_in(g, state_in, stride, 0, L, B, H);
  mrl_tensor *c0 = mrl__core_layers_in(g, state_in, stride, L * H, L, B, H);
  mrl_tensor *h, *hT = NULL, *cT = NULL, *parts[2], *y;
  if (!h0 || !c0) return NULL;
  h = mrl_lstm_forward(&core->lstm, g, x, T, B, h0, c0, episode_start, &hT, &cT);
  parts[0] = mrl_slice(g, h, 1, H / 2, H); /* s_t: around the aggregator */
  parts[1] = mrl__amrl_aggregate(core, g, mrl_slice(g, h, 1, 0, H / 2), T, B, episode_start,
                                 state_in, state_out, stride);
  if (!parts[0] || !parts[1]) return NULL;
  y = mrl_concat(g, parts, 2, 1);
  if (y && state_out) { /* after the aggregator read state_in (state_out may alias it) */
    mrl__core_layers_out(hT, state_out, stride, 0, L, B, H);
    mrl__core_layers_out(cT, state_out, stride, L * H, L, B, H);
  }
  return y;
}

/* ---- fast weight programmer >>fwp ----
 * Linear attention as a fast weight programmer with the delta rule (Schlag,
 * Irie, Schmidhuber 2021, "Linear Transformers Are Secretly Fast Weight
 * Programmers", ICML, eqs. 23-26), one matrix W^h (d x d) per head h:
 *   [q, k, v, b] = x_t P                   (one linear map, no bias)
 *   q_t = phi(q), k_t = phi(k)             phi(z) = sum-normalised ELU(z) + 1
 *   beta_t = sigmoid(b)                    (one write strength per head)
 *   vbar_t = W_{t-1} k_t                   (the value stored under k_t)
 *   W_t = W_{t-1} + beta_t (v_t - vbar_t) k_t^T
 *   y_t = W_t q_t                          (heads concatenated: heads*d floats)
 * with W zero at an episode's start. phi: ELU + 1 (Katharopoulos et al. 2020,
 * the map of POPGym's LinearAttention and one of those the paper evaluates),
 * then the paper's sum normalisation phi(z) / sum_j phi(z)_j (section 4.2),
 * which with the delta rule keeps W bounded. P's columns per row: q of every
 * head, then k, v (heads*d each), then b (heads).
 * State: the heads' W, row-major (W[i][j]: value i, key j), heads*d*d floats.
 * Deviations: no DPFP feature map (the paper's own proposal); the block
 * around the layer (POPGym's input LayerNorm, feed-forward and shortcut; the
 * paper's output projection and residual) is left to the tower's encoder and
 * head. POPGym's FWP model differs: ReLU keys, no delta rule (a plain sum of
 * v k^T). */
typedef struct mrl__fwp {
  mrl_linear_layer proj;
  int heads, dim;
} mrl__fwp;

static mrl_result mrl__fwp_init(mrl_core *core, mrl_params *p, const char *name,
                                const mrl_core_config *cfg, char *error, size_t error_size) {
  char buf[MRL_NAME_MAX];
  int d = cfg->fwp.head_dim, heads = cfg->fwp.heads;
  mrl__fwp *f;
  if (d < 1 || d > 4096 || heads < 1 || heads > 4096 || (long long)heads * d * d > 1 << 26) {
    mrl__error(
        error, error_size,
        "core.fwp.head_dim %d and core.fwp.heads %d must be >= 1 (at most 2^26 state floats)", d,
        heads);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  f = (mrl__fwp *)MRL_MALLOC(sizeof *f);
  if (!f) {
    mrl__error(error, error_size, "core: out of memory");
    return MRL_ERR_OUT_OF_MEMORY;
  }
  f->heads = heads;
  f->dim = d;
  core->impl = f;
  mrl_linear_layer_init_bias(&f->proj, p, mrl__name(p, buf, name, "proj"), core->input_dim,
                             heads * (3 * d + 1), 0, cfg->init);
  core->output_dim = heads * d;
  core->state_dim = heads * d * d;
  return MRL_OK;
}

/* The delta-rule scan. in: q, k [T*B*heads, d], v [T*B, heads*d], beta
 * [T*B, heads]; extra: W_t after every step [T*B*heads, d*d], W before the
 * first step [B*heads, d*d], scratch (d*d + 3d); i: T, B, heads, d; index:
 * episode starts as ints (NULL: none). */
static void mrl__fwp_scan_backward(mrl_node *nd) {
  mrl_tensor *q = nd->in[0], *k = nd->in[1], *v = nd->in[2], *beta = nd->in[3], *y = nd->out;
  int T = nd->i[0], B = nd->i[1], NH = nd->i[2], d = nd->i[3], t, b, h, i, j;
  size_t dd = (size_t)d * d;
  float *dW = nd->extra[2]->data, *dq = dW + dd, *dk = dq + d, *dv = dk + d;
  for (b = 0; b < B; b++)
    for (h = 0; h < NH; h++) {
      memset(dW, 0, sizeof(float) * dd);
      for (t = T - 1; t >= 0; t--) {
        size_t r = (size_t)t * B + b, e = r * NH + h;
        int start = nd->index && nd->index[r];
        const float *Wt = nd->extra[0]->data + e * dd, *qe = q->data + e * d, *ke = k->data + e * d,
                    *ve = v->data + e * d, *dy = y->grad + e * d;
        const float *Wp = start    ? NULL
                          : t == 0 ? nd->extra[1]->data + ((size_t)b * NH + h) * dd
                                   : nd->extra[0]->data + (e - (size_t)B * NH) * dd;
        float be = beta->data[e], dbeta = 0.0f;
        memset(dq, 0, sizeof(float) * 3 * (size_t)d);
        for (i = 0; i < d; i++) { /* y = W_t q */
          float *dWi = dW + (size_t)i * d;
          const float *Wi = Wt + (size_t)i * d;
          for (j = 0; j < d; j++) {
            dWi[j] += dy[i] * qe[j];
            dq[j] += Wi[j] * dy[i];
          }
        }
        for (i = 0; i < d; i++) { /* W_t = W_{t-1} + beta (v - W_{t-1} k) k^T, row by row */
          float *dWi = dW + (size_t)i * d, vbar = 0.0f, u, du = 0.0f, dvbar;
          if (Wp)
            for (j = 0; j < d; j++) vbar += Wp[(size_t)i * d + j] * ke[j];
          u = be * (ve[i] - vbar);
          for (j = 0; j < d; j++) {
            du += dWi[j] * ke[j];
            dk[j] += dWi[j] * u;
          }
          dbeta += du * (ve[i] - vbar);
          dv[i] += be * du;
          dvbar = -be * du;
          for (j = 0; j < d; j++) dWi[j] += dvbar * ke[j]; /* now dL/dW_{t-1} */
          if (Wp)
            for (j = 0; j < d; j++) dk[j] += Wp[(size_t)i * d + j] * dvbar;
        }
        if (q->grad)
          for (j = 0; j < d; j++) q->grad[e * d + j] += dq[j];
        if (k->grad)
          for (j = 0; j < d; j++) k->grad[e * d + j] += dk[j];
        if (v->grad)
          for (j = 0; j < d; j++) v->grad[e * d + j] += dv[j];
        if (beta->grad) beta->grad[e] += dbeta;
        if (start) memset(dW, 0, sizeof(float) * dd); /* W_{t-1} was not used */
      }
    }
}

/* Forward mode (mrl_graph_jvp): the scan's tangent, forwards in time per
 * environment and head, dW zero at an episode's start (the stored W is a
 * constant): dvbar = dW_{t-1} k + W_{t-1} dk, du = dbeta (v - vbar) +
 * beta (dv - dvbar), dW_t = dW_{t-1} + du k^T + u dk^T, dy = dW_t q + W_t dq.
 * dW lives in the node's scratch. */
static void mrl__fwp_scan_jvp(mrl_node *nd) {
  mrl_tensor *q = nd->in[0], *k = nd->in[1], *v = nd->in[2], *beta = nd->in[3], *y = nd->out;
  int T = nd->i[0], B = nd->i[1], NH = nd->i[2], d = nd->i[3], t, b, h, i, j;
  size_t dd = (size_t)d * d;
  float *dW = nd->extra[2]->data;
  for (b = 0; b < B; b++)
    for (h = 0; h < NH; h++) {
      memset(dW, 0, sizeof(float) * dd);
      for (t = 0; t < T; t++) {
        size_t r = (size_t)t * B + b, e = r * NH + h;
        int start = nd->index && nd->index[r];
        const float *Wt = nd->extra[0]->data + e * dd, *qe = q->data + e * d, *ke = k->data + e * d;
        const float *ve = v->data + e * d, *dq = q->grad ? q->grad + e * d : NULL;
        const float *dk = k->grad ? k->grad + e * d : NULL, *dv = v->grad ? v->grad + e * d : NULL;
        const float *Wp = start    ? NULL
                          : t == 0 ? nd->extra[1]->data + ((size_t)b * NH + h) * dd
                                   : nd->extra[0]->data + (e - (size_t)B * NH) * dd;
        float be = beta->data[e], dbe = beta->grad ? beta->grad[e] : 0.0f;
        if (start) memset(dW, 0, sizeof(float) * dd);
        for (i = 0; i < d; i++) {
          float *dWi = dW + (size_t)i * d, vbar = 0.0f, dvbar = 0.0f, u, du, out = 0.0f;
          const float *Wi = Wt + (size_t)i * d;
          for (j = 0; j < d; j++) {
            dvbar += dWi[j] * ke[j];
            if (Wp) vbar += Wp[(size_t)i * d + j] * ke[j];
            if (Wp && dk) dvbar += Wp[(size_t)i * d + j] * dk[j];
          }
          u = be * (ve[i] - vbar);
          du = dbe * (ve[i] - vbar) + be * ((dv ? dv[i] : 0.0f) - dvbar);
          for (j = 0; j < d; j++) {
            dWi[j] += du * ke[j] + (dk ? u * dk[j] : 0.0f);
            out += dWi[j] * qe[j] + (dq ? Wi[j] * dq[j] : 0.0f);
          }
          y->grad[e * d + i] = out;
        }
      }
    }
}

static mrl_tensor *mrl__fwp_scan(const mrl__fwp *f, mrl_graph *g, mrl_tensor *q, mrl_tensor *k,
                                 mrl_tensor *v, mrl_tensor *beta, int T, int B,
                                 const float *episode_start, const float *state_in,
                                 float *state_out, int stride) {
  int NH = f->heads, d = f->dim, t, b, h, i, j, shape[2], *starts = NULL, wants;
  size_t dd = (size_t)d * d, per_env = (size_t)NH * dd;
  mrl_tensor *y, *hist = NULL, *w0 = NULL, *scratch = NULL;
  float *W;
  mrl_node *nd;
  if (!q || !k || !v || !beta) return NULL;
  wants = mrl_graph_wants_grad(g, q, k) || mrl_graph_wants_grad(g, v, beta);
  shape[0] = T * B;
  shape[1] = NH * d;
  y = mrl_op_output(g, 2, shape, wants);
  W = (float *)mrl_graph_alloc(g, sizeof(float) * per_env * (size_t)B);
  if (!y || !W) return NULL;
  for (b = 0; b < B; b++)
    if (state_in)
      memcpy(W + (size_t)b * per_env, state_in + (size_t)b * stride, sizeof(float) * per_env);
    else
      memset(W + (size_t)b * per_env, 0, sizeof(float) * per_env);
  if (wants) {
    hist = mrl_tensor_new2(g, T * B * NH, (int)dd, 0);
    w0 = mrl_tensor_new2(g, B * NH, (int)dd, 0);
    scratch = mrl_tensor_new2(g, 1, (int)dd + 3 * d, 0);
    if (!hist || !w0 || !scratch) return NULL;
    memcpy(w0->data, W, sizeof(float) * per_env * (size_t)B);
    if (episode_start) {
      starts = (int *)mrl_graph_alloc(g, sizeof(int) * (size_t)T * B);
      if (!starts) return NULL;
      for (t = 0; t < T * B; t++) starts[t] = episode_start[t] != 0.0f;
    }
  }
  for (t = 0; t < T; t++)
    for (b = 0; b < B; b++) {
      size_t r = (size_t)t * B + b;
      if (episode_start && episode_start[r] != 0.0f)
        memset(W + (size_t)b * per_env, 0, sizeof(float) * per_env);
      for (h = 0; h < NH; h++) {
        size_t e = r * NH + h;
        float *Wh = W + (size_t)b * per_env + (size_t)h * dd, be = beta->data[e];
        const float *qe = q->data + e * d, *ke = k->data + e * d, *ve = v->data + e * d;
        for (i = 0; i < d; i++) { /* each row of W updates on its own */
          float *Wi = Wh + (size_t)i * d, vbar = 0.0f, u, out = 0.0f;
          for (j = 0; j < d; j++) vbar += Wi[j] * ke[j];
          u = be * (ve[i] - vbar);
          for (j = 0; j < d; j++) {
            Wi[j] += u * ke[j];
            out += Wi[j] * qe[j];
          }
          y->data[e * d + i] = out;
        }
        if (hist) memcpy(hist->data + e * dd, Wh, sizeof(float) * dd);
      }
    }
  if (state_out)
    for (b = 0; b < B; b++)
      memcpy(state_out + (size_t)b * stride, W + (size_t)b * per_env, sizeof(float) * per_env);
  MRL__FINITE("fwp_scan", y, q, k);
  if ((nd = mrl_graph_record(g, "fwp_scan", mrl__fwp_scan_backward, y)) != NULL) {
    nd->in[0] = q;
    nd->in[1] = k;
    nd->in[2] = v;
    nd->in[3] = beta;
    nd->extra[0] = hist;
    nd->extra[1] = w0;
    nd->extra[2] = scratch;
    nd->index = starts;
    nd->i[0] = T;
    nd->i[1] = B;
    nd->i[2] = NH;
    nd->i[3] = d;
  }
  return y;
}

/* ---- hierarchical chunk attention memory >>hcam ----
 * HCAM: Lampinen, Chan, Banino and Hill 2021, "Towards mental time travel: a
 * hierarchical memory for reinforcement learning agents" (NeurIPS), with the
 * read of DeepMind's reference module (deepmind-research,
 * hierarchical_transformer_memory/hierarchical_attention/htm_attention.py).
 * One block, per step t of environment b (E = dim, C = chunk, N = num_chunks,
 * k = topk):
 *   h_t = W_in x_t + b_in                          (input projection to E)
 *   q_t = LayerNorm(h_t)                           (the block's pre-LN)
 *   write: q_t is appended to the current chunk; a full chunk (C steps) goes
 *          into the ring of N chunks with its summary s = mean of its C rows
 *   read:  candidates are the N stored chunks and the current partial chunk
 *          (summary: the mean of its rows so far; it holds q_t), invalid ones
 *          (not yet written in this episode) masked with -1e6 as the reference;
 *          l_j = (W_q q_t) . (W_k s_j) / sqrt(E)   (no biases, as the reference)
 *          (l_1..l_k, j_1..j_k) = top-k(l); w = softmax(l_1..l_k) (over the k
 *          selected only; the gradient reaches the selected logits)
 *          r_i = MHA(query q_t, keys = values = rows of chunk j_i + P), P the
 *          reference's sinusoid positions (position C-1-c for row c, [sin|cos])
 *   y_t = h_t + sum_i w_i r_i                      (residual, the paper's Fig. 1c)
 * MHA is torch.nn.MultiheadAttention (in_proj, out_proj with biases); the
 * rows of a partially filled chunk beyond its fill are masked.
 * State per environment ((N C + N + C) E + 3 floats): the N chunks [N, C, E]
 * (a ring), their summaries [N, E], the current partial chunk [C, E], then
 * three counters as floats: rows in the partial chunk, valid chunks, next ring
 * slot. Unwritten rows are zero. An episode start clears it.
 * Deviations: the reference stops gradients into the memory; here rows and
 * summaries written inside a training sequence keep theirs (the core contract:
 * gradients through time inside the sequence; rows from the stored state are
 * constants, truncated BPTT as every core). The paper's agent puts HCAM beside
 * local self-attention in each of 4 transformer layers with an MLP; this core
 * is one HCAM block with no MLP and no separate local attention: the current
 * partial chunk as an extra candidate gives access to the most recent steps.
 * The summary is the plain mean (no learned pooling); the reference's
 * VarianceScaling(2) inits are replaced by PyTorch's defaults. */
typedef struct mrl__hcam {
  mrl_linear_layer in_proj, q_head, k_head;
  mrl_layernorm_layer norm;
  mrl_mha attn;
  int E, C, K, N;
} mrl__hcam;

static mrl_result mrl__hcam_init(mrl_core *core, mrl_params *p, const char *name,
                                 const mrl_hcam_config *c, char *error, size_t error_size) {
  char buf[MRL_NAME_MAX];
  mrl__hcam *m;
  int E = c->dim;
  if (E < 2 || E % 2 != 0 || E > 65536) {
    mrl__error(error, error_size, "core.hcam.dim %d must be even and in 2..65536", E);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (c->chunk < 1 || c->chunk > 4096 || c->num_chunks < 1 || c->num_chunks > 65536) {
    mrl__error(error, error_size, "core.hcam.chunk %d and num_chunks %d must be >= 1", c->chunk,
               c->num_chunks);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (c->topk < 1 || c->topk > c->num_chunks + 1) {
    mrl__error(error, error_size, "core.hcam.topk %d must be in 1..num_chunks + 1 (%d)", c->topk,
               c->num_chunks + 1);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (c->num_heads < 1 || E % c->num_heads != 0) {
    mrl__error(error, error_size, "core.hcam.num_heads %d must divide dim %d", c->num_heads, E);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if ((double)(c->num_chunks + 1) * (c->chunk + 1) * E + 3 > 2e9) {
    mrl__error(error, error_size, "core.hcam: a state of %d chunks of %d x %d is too large",
               c->num_chunks, c->chunk, E);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  m = (mrl__hcam *)MRL_MALLOC(sizeof *m);
  if (!m) {
    mrl__error(error, error_size, "core.hcam: out of memory");
    return MRL_ERR_OUT_OF_MEMORY;
  }
  memset(m, 0, sizeof *m);
  m->E = E;
  m->C = c->chunk;
  m->K = c->topk;
  m->N = c->num_chunks;
  mrl_linear_layer_init(&m->in_proj, p, mrl__name(p, buf, name, "in_proj"), core->input_dim, E,
                        mrl_init_default());
  mrl_layernorm_layer_init(&m->norm, p, mrl__name(p, buf, name, "norm"), E, 1e-5f, 1);
  mrl_linear_layer_init_bias(&m->q_head, p, mrl__name(p, buf, name, "query"), E, E, 0,
                             mrl_init_default());
  mrl_linear_layer_init_bias(&m->k_head, p, mrl__name(p, buf, name, "key"), E, E, 0,
                             mrl_init_default());
  mrl_mha_init(&m->attn, p, mrl__name(p, buf, name, "attn"), E, c->num_heads, 1);
  core->impl = m;
  core->output_dim = E;
  core->state_dim = (m->N * m->C + m->N + m->C) * E + 3;
  return MRL_OK;
}

/* a counter stored as a float, clamped into [0, hi] (garbage reads as 0) */
static int mrl__state_count(const float *s, int hi) {
  float v = s ? *s : 0.0f;
  int n = v >= 1.0f && v < 2e9f ? (int)v : 0;
  return n > hi ? hi : n;
}

static mrl_tensor *mrl__hcam_forward(const mrl_core *core, mrl_graph *g, mrl_tensor *x, int T,
                                     int B, const float *episode_start, const float *state_in,
                                     float *state_out, int stride) {
  const mrl__hcam *m = (const mrl__hcam *)core->impl;
  const int E = m->E, C = m->C, K = m->K, N = m->N, J = N + 1, TB = T * B;
  const size_t o_sum = (size_t)N * C * E, o_part = o_sum + (size_t)N * E,
               o_cnt = o_part + (size_t)C * E;
  const int n_state_rows = B * N * C + B * C, q0 = n_state_rows, zero_row = n_state_rows + TB;
  const int max_commits = B * ((T + C - 1) / C + 1);
  int *slot_rows, *slot_sum, *part_rows, *fill, *nvalid, *next, *rec_rows, *rec_sum, *rec_valid;
  int *commit_rows, *idx, *sel, n_commits = 0, t, b, j, c, i, shape[4];
  mrl_tensor *h, *q, *zst, *zero, *sst, *parts[3], *zbank, *sbank, *psum, *inv, *ks, *qs, *logits;
  mrl_tensor *bias, *top, *w, *cc, *pe, *qrep, *mask, *att, *y;
  float *inv_data;
  if (!x) return NULL;
  h = mrl_linear_layer_forward(&m->in_proj, g, x);
  q = mrl_layernorm_layer_forward(&m->norm, g, h);
  zst = mrl_tensor_new2(g, n_state_rows, E, 0);
  zero = mrl_tensor_new2(g, 1, E, 0);
  sst = mrl_tensor_new2(g, B * N, E, 0);
  slot_rows = (int *)mrl_graph_alloc(
      g, sizeof(int) * ((size_t)B * N * C + (size_t)B * N + (size_t)B * C + 3 * (size_t)B +
                        (size_t)TB * J * (C + 2) + (size_t)max_commits * C));
  if (!h || !q || !zst || !zero || !sst || !slot_rows) return NULL;
  slot_sum = slot_rows + (size_t)B * N * C;
  part_rows = slot_sum + (size_t)B * N;
  fill = part_rows + (size_t)B * C;
  nvalid = fill + B;
  next = nvalid + B;
  rec_rows = next + B;                      /* [TB, J, C] rows of the bank */
  rec_sum = rec_rows + (size_t)TB * J * C;  /* [TB, J] rows of the summary bank */
  rec_valid = rec_sum + (size_t)TB * J;     /* [TB, J] valid rows of each candidate */
  commit_rows = rec_valid + (size_t)TB * J; /* [max_commits, C] */
  memset(zero->data, 0, sizeof(float) * (size_t)E);
  /* the stored memory as constants: bank rows b*N*C + s*C + c (chunks), then
   * B*N*C + b*C + c (partial chunks); summary bank rows b*N + s */
  for (b = 0; b < B; b++) {
    const float *s = state_in ? state_in + (size_t)b * stride : NULL;
    float *zr = zst->data + (size_t)b * N * C * E,
          *pr = zst->data + ((size_t)B * N * C + (size_t)b * C) * E;
    if (s) {
      memcpy(zr, s, sizeof(float) * (size_t)N * C * E);
      memcpy(pr, s + o_part, sizeof(float) * (size_t)C * E);
      memcpy(sst->data + (size_t)b * N * E, s + o_sum, sizeof(float) * (size_t)N * E);
    } else {
      memset(zr, 0, sizeof(float) * (size_t)N * C * E);
      memset(pr, 0, sizeof(float) * (size_t)C * E);
      memset(sst->data + (size_t)b * N * E, 0, sizeof(float) * (size_t)N * E);
    }
    fill[b] = mrl__state_count(s ? s + o_cnt : NULL, C - 1);
    nvalid[b] = mrl__state_count(s ? s + o_cnt + 1 : NULL, N);
    next[b] = nvalid[b] < N ? nvalid[b] : mrl__state_count(s ? s + o_cnt + 2 : NULL, N - 1);
    for (j = 0; j < N; j++) {
      slot_sum[b * N + j] = b * N + j;
      for (c = 0; c < C; c++) slot_rows[((size_t)b * N + j) * C + c] = b * N * C + j * C + c;
    }
    for (c = 0; c < C; c++) part_rows[b * C + c] = B * N * C + b * C + c;
  }
  /* The writes depend on q alone, so where every row sits at every step is
   * worked out first; the reads then run for all T*B steps at once.
   * Summary bank: [B*N stored][T*B partial, row t*B+b][one per commit]. */
  for (t = 0; t < T; t++)
    for (b = 0; b < B; b++) {
      int r = t * B + b, *rr = rec_rows + (size_t)r * J * C;
      if (episode_start && episode_start[r] != 0.0f) fill[b] = nvalid[b] = next[b] = 0;
      part_rows[b * C + fill[b]++] = q0 + r;
      if (fill[b] == C) { /* commit: the chunk takes the ring slot, its summary a new bank row */
        int s = next[b];
        for (c = 0; c < C; c++) {
          slot_rows[((size_t)b * N + s) * C + c] = part_rows[b * C + c];
          commit_rows[(size_t)n_commits * C + c] = part_rows[b * C + c];
        }
        slot_sum[b * N + s] = B * N + TB + n_commits++;
        next[b] = (s + 1) % N;
        if (nvalid[b] < N) nvalid[b]++;
        fill[b] = 0;
      }
      for (j = 0; j < J; j++) {
        int valid = j < N ? (j < nvalid[b] ? C : 0) : fill[b];
        rec_valid[(size_t)r * J + j] = valid;
        rec_sum[(size_t)r * J + j] = valid ? (j < N ? slot_sum[b * N + j] : B * N + r) : B * N + r;
        for (c = 0; c < C; c++)
          rr[(size_t)j * C + c] =
              c < valid ? (j < N ? slot_rows[((size_t)b * N + j) * C + c] : part_rows[b * C + c])
                        : zero_row;
      }
    }
  parts[0] = zst;
  parts[1] = q;
  parts[2] = zero;
  zbank = mrl_concat_rows(g, parts, 3);
  /* partial-chunk summaries: the mean of the rows so far (0 when empty) */
  idx = (int *)mrl_graph_alloc(g,
                               sizeof(int) * ((size_t)TB * J * (C + 1) + (size_t)TB * K * (C + 1)));
  inv = mrl_tensor_new2(g, TB, 1, 0);
  if (!zbank || !idx || !inv) return NULL;
  inv_data = inv->data;
  for (i = 0; i < TB; i++) {
    int valid = rec_valid[(size_t)i * J + N];
    for (c = 0; c < C; c++) idx[(size_t)i * C + c] = rec_rows[((size_t)i * J + N) * C + c];
    inv_data[i] = valid ? 1.0f / (float)valid : 0.0f;
  }
  shape[0] = TB;
  shape[1] = C;
  shape[2] = E;
  psum = mrl_mul(
      g, mrl_sum_axis(g, mrl_reshape(g, mrl_index_select(g, zbank, idx, TB * C), 3, shape), 1, 0),
      inv);
  parts[0] = sst;
  parts[1] = psum;
  parts[2] = NULL;
  if (n_commits > 0) {
    shape[0] = n_commits;
    parts[2] = mrl_mean_axis(
        g, mrl_reshape(g, mrl_index_select(g, zbank, commit_rows, n_commits * C), 3, shape), 1, 0);
  }
  sbank = mrl_concat_rows(g, parts, n_commits > 0 ? 3 : 2);
  /* chunk relevance: top-k of the summary logits */
  ks = mrl_index_select(g, mrl_linear_layer_forward(&m->k_head, g, sbank), rec_sum, TB * J);
  qs = mrl_linear_layer_forward(&m->q_head, g, q);
  bias = mrl_tensor_new2(g, TB, J, 0);
  sel = (int *)mrl_graph_alloc(g, sizeof(int) * (size_t)TB * K);
  if (!ks || !qs || !bias || !sel) return NULL;
  for (i = 0; i < TB * J; i++) bias->data[i] = rec_valid[i] ? 0.0f : -1e6f;
  shape[0] = TB;
  shape[1] = J;
  shape[2] = E;
  ks = mrl_reshape(g, ks, 3, shape);
  shape[1] = 1;
  logits = mrl_matmul_nt(g, mrl_reshape(g, qs, 3, shape), ks); /* [TB, 1, J] */
  shape[2] = J;
  logits = mrl_add(g, mrl_scale(g, logits, 1.0f / sqrtf((float)E)), mrl_reshape(g, bias, 3, shape));
  top = mrl_topk(g, logits, K, sel);
  w = mrl_softmax(g, top, -1, NULL); /* [TB, 1, K] */
  /* within-chunk attention over the k selected chunks */
  pe = mrl_tensor_new2(g, C, E, 0);
  shape[0] = TB * K;
  shape[1] = 1;
  shape[2] = 1;
  shape[3] = C + 1;
  mask = mrl_tensor_new(g, 4, shape, 0);
  if (!top || !w || !pe || !mask) return NULL;
  for (c = 0; c < C; c++)
    for (i = 0; i < E / 2; i++) { /* the reference's sinusoid: position C-1-c, [sin | cos] */
      double ang = (double)(C - 1 - c) * pow(1e4, -(2.0 * i) / (double)E);
      pe->data[(size_t)c * E + i] = (float)sin(ang);
      pe->data[(size_t)c * E + E / 2 + i] = (float)cos(ang);
    }
  {
    int *cidx = idx, *rep = idx + (size_t)TB * K * C;
    for (i = 0; i < TB * K; i++) {
      int r = i / K, jj = sel[i], valid = rec_valid[(size_t)r * J + jj];
      for (c = 0; c < C; c++) {
        cidx[(size_t)i * C + c] = rec_rows[((size_t)r * J + jj) * C + c];
        mask->data[(size_t)i * (C + 1) + c] = c < valid ? 1.0f : 0.0f;
      }
      mask->data[(size_t)i * (C + 1) + C] = 0.0f; /* the query is not a key */
      rep[i] = r;
    }
    shape[0] = TB * K;
    shape[1] = C;
    shape[2] = E;
    cc = mrl_add(g, mrl_reshape(g, mrl_index_select(g, zbank, cidx, TB * K * C), 3, shape), pe);
    shape[1] = 1;
    qrep = mrl_reshape(g, mrl_index_select(g, q, rep, TB * K), 3, shape);
  }
  att = mrl__mha_forward(&m->attn, g, qrep, cc, mask, 0); /* [TB*K, 1, E] */
  shape[0] = TB;
  shape[1] = K;
  shape[2] = E;
  att = mrl_matmul(g, w, mrl_reshape(g, att, 3, shape)); /* [TB, 1, E] */
  shape[1] = E;
  y = mrl_add(g, h, mrl_reshape(g, att, 2, shape));
  if (!y) return NULL;
  if (state_out)
    for (b = 0; b < B; b++) {
      float *s = state_out + (size_t)b * stride;
      for (j = 0; j < N; j++) {
        int valid = j < nvalid[b];
        for (c = 0; c < C; c++) {
          float *dst = s + ((size_t)j * C + c) * E;
          if (valid)
            memcpy(dst, zbank->data + (size_t)slot_rows[((size_t)b * N + j) * C + c] * E,
                   sizeof(float) * (size_t)E);
          else
            memset(dst, 0, sizeof(float) * (size_t)E);
        }
        if (valid)
          memcpy(s + o_sum + (size_t)j * E, sbank->data + (size_t)slot_sum[b * N + j] * E,
                 sizeof(float) * (size_t)E);
        else
          memset(s + o_sum + (size_t)j * E, 0, sizeof(float) * (size_t)E);
      }
      for (c = 0; c < C; c++)
        if (c < fill[b])
          memcpy(s + o_part + (size_t)c * E, zbank->data + (size_t)part_rows[b * C + c] * E,
                 sizeof(float) * (size_t)E);
        else
          memset(s + o_part + (size_t)c * E, 0, sizeof(float) * (size_t)E);
      s[o_cnt] = (float)fill[b];
      s[o_cnt + 1] = (float)nvalid[b];
      s[o_cnt + 2] = (float)next[b];
    }
  return y;
}

/* ---- FTW two-timescale core >>ftw ----
 * The recurrent core of the FTW agent: Jaderberg et al. 2019, "Human-level
 * performance in 3D multiplayer games with population-based reinforcement
 * learning" (Science), supplementary material (Figure S11), as public
 * reimplementations read it (slow cores see the fast core's state; the fast
 * core sees the slow core's state, the prior and its own last z). Per step t
 * of one environment (n = steps since the episode began, tau = period):
 *   slow:  (h^q_t, c^q_t) = LSTM_q(h^p_{t-1}, (h^q_{t-1}, c^q_{t-1})) if n % tau == 0,
 *          else (h^q_{t-1}, c^q_{t-1})
 *   prior: P_t = N(mu^q_t, sigma^q_t), [mu^q_t, u^q_t] = W_P h^q_t + b_P
 *   fast:  (h^p_t, c^p_t) = LSTM_p([x_t, h^q_t, mu^q_t, sigma^q_t, z_{t-1}], (h^p_{t-1},
 * c^p_{t-1})) posterior: Q_t = N(mu^p_t, sigma^p_t), [mu^p_t, u^p_t] = W_Q h^p_t + b_Q sigma =
 * softplus(u) * init_scale / log(2) + min_scale (Acme's Gaussian head) z_t = mu^p_t;  y_t = z_t;
 * aux_t = KL(Q_t || P_t) (summed over dimensions) LSTMs are torch.nn.LSTMCell (<name>.slow.*,
 * <name>.fast.*); the heads are <name>.prior.*, <name>.posterior.* ([2Z] rows: means, then scale
 * inputs). The KL reaches the algorithm through mrl_core_forward_aux (per step, [T*B]);
 * mrl_core_forward drops it.
 * State per environment (2 S + 2 F + Z + 1 floats): h^q, c^q (S each), h^p,
 * c^p (F each), z_{t-1} (Z), and n % tau as a float. The prior needs no
 * storage: it is a function of h^q, which holds between ticks.
 * Deviations: z_t is the posterior mean, not a sample (the core is then
 * deterministic, so acting and training agree without a stored noise; the KL
 * between the two Gaussians is still the paper's analytic term); no
 * KL(prior || fixed Gaussian) term, no gradient scaling from the fast to the
 * slow core, no DNC memory, tau is fixed (the paper evolves it by PBT); the
 * paper's policy sees z_t, so does anything after this core. */
typedef struct mrl__ftw {
  mrl_lstm_layer slow, fast;
  mrl_linear_layer prior, post;
  int S, F, Z, tau;
  float init_scale, min_scale;
} mrl__ftw;

static mrl_result mrl__ftw_init(mrl_core *core, mrl_params *p, const char *name,
                                const mrl_ftw_config *c, char *error, size_t error_size) {
  char buf[MRL_NAME_MAX];
  mrl__ftw *m;
  int Z = c->latent_size ? c->latent_size : c->fast_size;
  if (c->fast_size < 1 || c->slow_size < 1 || c->fast_size > 65536 || c->slow_size > 65536 ||
      Z < 1 || Z > 65536) {
    mrl__error(error, error_size,
               "core.ftw.fast_size %d, slow_size %d and latent_size %d must be in 1..65536",
               c->fast_size, c->slow_size, Z);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (c->period < 1) {
    mrl__error(error, error_size, "core.ftw.period %d must be >= 1", c->period);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (!(c->init_scale > 0.0f && c->init_scale < 1e30f) ||
      !(c->min_scale >= 0.0f && c->min_scale < 1e30f)) {
    mrl__error(error, error_size, "core.ftw.init_scale %g must be > 0, min_scale %g >= 0",
               c->init_scale, c->min_scale);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  m = (mrl__ftw *)MRL_MALLOC(sizeof *m);
  if (!m) {
    mrl__error(error, error_size, "core.ftw: out of memory");
    return MRL_ERR_OUT_OF_MEMORY;
  }
  memset(m, 0, sizeof *m);
  m->S = c->slow_size;
  m->F = c->fast_size;
  m->Z = Z;
  m->tau = c->period;
  m->init_scale = c->init_scale;
  m->min_scale = c->min_scale;
  mrl_lstm_cell_init(&m->slow, p, mrl__name(p, buf, name, "slow"), m->F, m->S, mrl_init_default(),
                     0.0f);
  mrl_linear_layer_init(&m->prior, p, mrl__name(p, buf, name, "prior"), m->S, 2 * Z,
                        mrl_init_default());
  mrl_lstm_cell_init(&m->fast, p, mrl__name(p, buf, name, "fast"), core->input_dim + m->S + 3 * Z,
                     m->F, mrl_init_default(), 0.0f);
  mrl_linear_layer_init(&m->post, p, mrl__name(p, buf, name, "posterior"), m->F, 2 * Z,
                        mrl_init_default());
  core->impl = m;
  core->output_dim = Z;
  core->state_dim = 2 * m->S + 2 * m->F + Z + 1;
  return MRL_OK;
}

/* a Gaussian head: [mu, u] -> mu, log sigma with sigma = softplus(u) a + min */
static void mrl__ftw_gauss(const mrl__ftw *m, mrl_graph *g, mrl_tensor *out, mrl_tensor **mu,
                           mrl_tensor **log_sigma, mrl_tensor **sigma) {
  *mu = mrl_slice(g, out, 1, 0, m->Z);
  *sigma = mrl_add_scalar(g,
                          mrl_scale(g, mrl_softplus(g, mrl_slice(g, out, 1, m->Z, 2 * m->Z)),
                                    m->init_scale / 0.69314718055994531f),
                          m->min_scale);
  *log_sigma = mrl_log(g, *sigma);
}

static mrl_tensor *mrl__ftw_forward(const mrl_core *core, mrl_graph *g, mrl_tensor *x, int T, int B,
                                    const float *episode_start, const float *state_in,
                                    float *state_out, int stride, mrl_tensor **aux) {
  const mrl__ftw *m = (const mrl__ftw *)core->impl;
  const int S = m->S, F = m->F, Z = m->Z, o_hf = 2 * S, o_z = 2 * S + 2 * F, o_n = o_z + Z;
  mrl_tensor *hs, *cs, *hf, *cf, *zp, **ys, **kls, *y, *mu_q = NULL, *ls_q = NULL, *sg_q = NULL;
  int *phase, t, b;
  if (!x) return NULL;
  hs = mrl__core_layers_in(g, state_in, stride, 0, 1, B, S);
  cs = mrl__core_layers_in(g, state_in, stride, S, 1, B, S);
  hf = mrl__core_layers_in(g, state_in, stride, o_hf, 1, B, F);
  cf = mrl__core_layers_in(g, state_in, stride, o_hf + F, 1, B, F);
  zp = mrl__core_layers_in(g, state_in, stride, o_z, 1, B, Z);
  ys = (mrl_tensor **)mrl_graph_alloc(g, sizeof(mrl_tensor *) * 2 * (size_t)T);
  phase = (int *)mrl_graph_alloc(g, sizeof(int) * (size_t)B);
  if (!hs || !cs || !hf || !cf || !zp || !ys || !phase) return NULL;
  kls = ys + T;
  for (b = 0; b < B; b++)
    phase[b] = mrl__state_count(state_in ? state_in + (size_t)b * stride + o_n : NULL, m->tau - 1);
  for (t = 0; t < T; t++) {
    const float *st = episode_start ? episode_start + (size_t)t * B : NULL;
    int any_start = 0, ticks = 0;
    mrl_tensor *tick, *in[5], *mu_p, *ls_p, *sg_p, *h2, *c2;
    for (b = 0; b < B; b++) any_start |= st && st[b] != 0.0f;
    if (any_start) { /* the new episode's memory is zero */
      mrl_tensor *keep = mrl_tensor_new2(g, B, 1, 0);
      if (!keep) return NULL;
      for (b = 0; b < B; b++) {
        keep->data[b] = st[b] != 0.0f ? 0.0f : 1.0f;
        if (st[b] != 0.0f) phase[b] = 0;
      }
      hs = mrl_mul(g, hs, keep);
      cs = mrl_mul(g, cs, keep);
      hf = mrl_mul(g, hf, keep);
      cf = mrl_mul(g, cf, keep);
      zp = mrl_mul(g, zp, keep);
    }
    tick = mrl_tensor_new2(g, B, 1, 0);
    if (!tick) return NULL;
    for (b = 0; b < B; b++) {
      tick->data[b] = phase[b] == 0 ? 1.0f : 0.0f;
      ticks += phase[b] == 0;
    }
    if (ticks > 0) { /* the slow core steps where n % tau == 0 */
      mrl_lstm_cell(&m->slow, g, hf, hs, cs, NULL, &h2, &c2);
      hs = ticks == B ? h2 : mrl_where(g, tick, h2, hs);
      cs = ticks == B ? c2 : mrl_where(g, tick, c2, cs);
    }
    if (!mu_q || ticks > 0 || any_start) /* else h^q and so the prior are unchanged */
      mrl__ftw_gauss(m, g, mrl_linear_layer_forward(&m->prior, g, hs), &mu_q, &ls_q, &sg_q);
    in[0] = mrl_slice(g, x, 0, t * B, (t + 1) * B);
    in[1] = hs;
    in[2] = mu_q;
    in[3] = sg_q;
    in[4] = zp;
    mrl_lstm_cell(&m->fast, g, mrl_concat(g, in, 5, 1), hf, cf, NULL, &hf, &cf);
    mrl__ftw_gauss(m, g, mrl_linear_layer_forward(&m->post, g, hf), &mu_p, &ls_p, &sg_p);
    zp = mu_p;
    ys[t] = zp;
    kls[t] = aux ? mrl_kl_normal(g, mu_p, ls_p, mu_q, ls_q, MRL_LOSS_NONE) : NULL;
    if (!zp || (aux && !kls[t])) return NULL;
    for (b = 0; b < B; b++) phase[b] = (phase[b] + 1) % m->tau;
  }
  y = T == 1 ? ys[0] : mrl_concat_rows(g, ys, T);
  if (aux) *aux = T == 1 ? kls[0] : mrl_concat_rows(g, kls, T);
  if (!y || (aux && !*aux)) return NULL;
  if (state_out) {
    mrl__core_layers_out(hs, state_out, stride, 0, 1, B, S);
    mrl__core_layers_out(cs, state_out, stride, S, 1, B, S);
    mrl__core_layers_out(hf, state_out, stride, o_hf, 1, B, F);
    mrl__core_layers_out(cf, state_out, stride, o_hf + F, 1, B, F);
    mrl__core_layers_out(zp, state_out, stride, o_z, 1, B, Z);
    for (b = 0; b < B; b++) state_out[(size_t)b * stride + o_n] = (float)phase[b];
  }
  return y;
}

/* phi: ELU + 1, normalised to sum 1 over each head's d features */
static mrl_tensor *mrl__fwp_phi(mrl_graph *g, mrl_tensor *z, int rows, int d) {
  int shape[2];
  mrl_tensor *f;
  shape[0] = rows;
  shape[1] = d;
  f = mrl_reshape(g, mrl_add_scalar(g, mrl_elu(g, z, 1.0f), 1.0f), 2, shape);
  return mrl_div(g, f, mrl_sum_axis(g, f, 1, 1));
}

static mrl_tensor *mrl__fwp_forward(const mrl_core *core, mrl_graph *g, mrl_tensor *x, int T, int B,
                                    const float *episode_start, const float *state_in,
                                    float *state_out, int stride) {
  const mrl__fwp *f = (const mrl__fwp *)core->impl;
  int NH = f->heads, d = f->dim, hd = NH * d;
  mrl_tensor *z = mrl_linear_layer_forward(&f->proj, g, x);
  mrl_tensor *q = mrl__fwp_phi(g, mrl_slice(g, z, 1, 0, hd), T * B * NH, d);
  mrl_tensor *k = mrl__fwp_phi(g, mrl_slice(g, z, 1, hd, 2 * hd), T * B * NH, d);
  mrl_tensor *v = mrl_slice(g, z, 1, 2 * hd, 3 * hd);
  mrl_tensor *beta = mrl_sigmoid(g, mrl_slice(g, z, 1, 3 * hd, 3 * hd + NH));
  return mrl__fwp_scan(f, g, q, k, v, beta, T, B, episode_start, state_in, state_out, stride);
}

MRL_DEF mrl_tensor *mrl_core_forward(const mrl_core *core, mrl_graph *g, mrl_tensor *x, int T,
                                     int B, const float *episode_start, const float *state_in,
                                     float *state_out, int stride) {
  if (!x) return NULL;
  MRL_SHAPE_CHECK(x->ndim == 2 && x->shape[0] == T * B && x->shape[1] == core->input_dim,
                  "core_forward", "x must be [T*B, input_dim]", x, NULL);
  switch (core->kind) {
  case MRL_CORE_NONE: return x;
  case MRL_CORE_USER:
    return core->user_type->forward(core->user, g, x, T, B, episode_start, state_in, state_out,
                                    stride);
  case MRL_CORE_LSTM:
  case MRL_CORE_GRU:
  case MRL_CORE_ELMAN: {
    int H = core->hidden_size, L = core->num_layers;
    mrl_tensor *h0 = mrl__core_layers_in(g, state_in, stride, 0, L, B, H), *c0 = NULL, *y,
               *hT = NULL, *cT = NULL;
    if (core->kind == MRL_CORE_LSTM) c0 = mrl__core_layers_in(g, state_in, stride, L * H, L, B, H);
    if (!h0 || (core->kind == MRL_CORE_LSTM && !c0)) return NULL;
    if (core->kind == MRL_CORE_LSTM)
      y = mrl_lstm_forward(&core->lstm, g, x, T, B, h0, c0, episode_start, &hT, &cT);
    else if (core->kind == MRL_CORE_GRU)
      y = mrl_gru_forward(&core->gru, g, x, T, B, h0, episode_start, &hT);
    else
      y = mrl_elman_forward(&core->elman, g, x, T, B, h0, episode_start, &hT);
    if (y && state_out) {
      mrl__core_layers_out(hT, state_out, stride, 0, L, B, H);
      if (cT) mrl__core_layers_out(cT, state_out, stride, L * H, L, B, H);
    }
    return y;
  }
  case MRL_CORE_FRAME_STACK:
    return mrl__frame_stack_forward(core, g, x, T, B, episode_start, state_in, state_out, stride);
  case MRL_CORE_GTRXL:
    return mrl__gtrxl_core_forward(core, g, x, T, B, episode_start, state_in, state_out, stride);
  case MRL_CORE_AMRL:
    return mrl__amrl_forward(core, g, x, T, B, episode_start, state_in, state_out, stride);
  case MRL_CORE_FWP:
    return mrl__fwp_forward(core, g, x, T, B, episode_start, state_in, state_out, stride);
  case MRL_CORE_DNC:
    return mrl__dnc_forward(core, g, x, T, B, episode_start, state_in, state_out, stride);
  case MRL_CORE_HCAM:
    return mrl__hcam_forward(core, g, x, T, B, episode_start, state_in, state_out, stride);
  case MRL_CORE_FTW:
    return mrl__ftw_forward(core, g, x, T, B, episode_start, state_in, state_out, stride, NULL);
  }
  return NULL;
}

/* ---- DNC memory >>dnc ----
 * The differentiable neural computer of Graves et al. 2016 ("Hybrid computing
 * using a neural network with dynamic external memory", Nature 538; equations
 * of its Methods), in the form MERLIN (Wayne et al. 2018) builds on: an LSTM
 * controller, content-based reads, no temporal links unless asked for, and
 * the read vectors handed straight to the agent.
 *
 * Per step, for each environment (M_{t-1} the N x W memory, w^r_{t-1} the R
 * read weightings, r_{t-1} the R read vectors):
 *   controller  (h_t, c_t) = LSTMCell([x_t, r_{t-1}], (h_{t-1}, c_{t-1}))
 *   interface   xi_t = W_xi h_t + b_xi, split in this order: read keys k^r
 *               (R*W), read strengths (R), write key k^w (W), write strength
 *               (1), erase e (W), write vector v (W), free gates (R),
 *               allocation gate (1), write gate (1), read modes (3R, links only);
 *               strengths oneplus(z) = 1 + softplus(z), erase and gates
 *               sigmoid, read modes softmax over (backward, content, forward)
 *   content     C(M, k, beta)[i] = softmax_i(beta D(k, M[i])), with
 *               D(a, b) = a.b / (sqrt(|a|^2 + 1e-6) sqrt(|b|^2 + 1e-6))
 *   usage       psi = prod_i (1 - f^i w^{r,i}_{t-1}),
 *               u_t = (u_{t-1} + w^w_{t-1} - u_{t-1} w^w_{t-1}) psi
 *   allocation  phi = the rows in ascending order of u_t (ties: lower row
 *               first), a[phi_j] = (1 - u[phi_j]) prod_{i<j} u[phi_i]
 *   write       w^w_t = g^w (g^a a + (1 - g^a) C(M_{t-1}, k^w, beta^w)),
 *               M_t = M_{t-1} o (1 - w^w e^T) + w^w v^T
 *   links       p_t = (1 - sum_i w^w_t[i]) p_{t-1} + w^w_t,
 *   (optional)  L_t[i,j] = (1 - w^w_t[i] - w^w_t[j]) L_{t-1}[i,j] + w^w_t[i] p_{t-1}[j],
 *               L_t[i,i] = 0; forward f^i = L_t w^{r,i}_{t-1}, backward
 *               b^i = L_t^T w^{r,i}_{t-1}
 *   read        w^{r,i}_t = C(M_t, k^{r,i}, beta^{r,i}) (without links), or
 *               pi^i_1 b^i + pi^i_2 C(...) + pi^i_3 f^i (with links);
 *               r^i_t = M_t^T w^{r,i}_t
 *   output      y_t = [h_t, r^1_t, ..., r^R_t]   (H + R*W floats)
 * State of one environment, flat, in this order: M (N*W, row-major), u (N),
 * with links p (N) and L (N*N), w^r (R*N), w^w (N), r (R*W), h (H), c (H).
 * An episode start zeroes all of it. Parameters: <name>.controller.weight_ih
 * [4H, D+R*W], .weight_hh, .bias_ih, .bias_hh (torch.nn.LSTMCell), and
 * <name>.interface.weight, .bias (nn.Linear).
 *
 * Deviations and choices:
 *  - The output is the concatenation [h_t, r_t] rather than the paper's
 *    W_y h_t + W_r r_t: the agent's next linear layer (a tower head or the
 *    policy) computes exactly that sum from the concatenation, as MERLIN
 *    passes the read vectors on to its policy.
 *  - Links are off by default (MERLIN's memory has none); links = 1 gives the
 *    DNC's with N*N floats of state per environment.
 *  - The sort: the permutation phi is a constant of the forward pass (the
 *    allocation is discontinuous where two usages tie, and the paper ignores
 *    those points); the gradient flows through the sorted usage values in
 *    the product, as through the values of torch.sort or tf.nn.top_k. Unlike
 *    DeepMind's reference code, no stop-gradient is put on w^w_{t-1} inside
 *    the usage and no epsilon is mixed into u before the sort: the gradient
 *    is that of the forward function, which finite differences confirm.
 *  - D uses the smoothed norms of DeepMind's reference code (epsilon 1e-6
 *    inside the square root) rather than torch's max(|a|, eps), so a fresh
 *    all-zero memory row has a finite, bounded gradient. It is built from
 *    batched graph ops (each environment has its own memory, which
 *    mrl_cosine_similarity's single [N, D] memory does not cover).
 *  - One write head, as in the paper's experiments; the controller is one
 *    LSTM layer and reads x_t with the previous read vectors (not h_{t-1}
 *    and x_t with the previous interface outputs of some variants).
 * Inside a training sequence every quantity keeps its gradient through time;
 * the stored state enters as constants (truncated BPTT at the sequence start,
 * like every core here). Each step records about 70 graph nodes (95 with
 * links). */

typedef struct mrl__dnc {
  mrl_lstm_layer controller;
  mrl_linear_layer interface;
  int N, W, R, H, links, iface;
} mrl__dnc;

#define MRL__DNC_EPS 1e-6f

/* "N:W:R" or "N:W:R:links" */
static mrl_result mrl__dnc_parse(const char *args, mrl_core_config *out) {
  long v[3];
  int i;
  char *end;
  const char *s = args;
  for (i = 0; i < 3; i++) {
    v[i] = strtol(s, &end, 10);
    if (end == s || v[i] < 1 || v[i] > 100000) return MRL_ERR_INVALID_ARGUMENT;
    if (i < 2 && *end != ':') return MRL_ERR_INVALID_ARGUMENT;
    s = end + 1;
  }
  if (*end != '\0' && strcmp(end, ":links") != 0) return MRL_ERR_INVALID_ARGUMENT;
  *out = mrl_core_config_dnc((int)v[0], (int)v[1], (int)v[2]);
  out->dnc.links = *end != '\0';
  return MRL_OK;
}

static mrl_result mrl__dnc_init(mrl_core *core, mrl_params *p, const char *name, int input_dim,
                                const mrl_core_config *cfg, char *error, size_t error_size) {
  char buf[MRL_NAME_MAX];
  const mrl_dnc_config *c = &cfg->dnc;
  int N = c->memory_size, W = c->word_size, R = c->read_heads, H = c->controller_size;
  long long state, in;
  mrl__dnc *d;
  if (N < 1 || N > 4096 || W < 1 || W > 4096 || R < 1 || R > 64 || H < 1 || H > 65536) {
    mrl__error(error, error_size,
               "core.dnc: memory_size %d, word_size %d (1..4096), read_heads %d (1..64), "
               "controller_size %d (1..65536) out of range",
               N, W, R, H);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (c->links != 0 && c->links != 1) {
    mrl__error(error, error_size, "core.dnc.links %d must be 0 or 1", c->links);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (!(cfg->forget_bias - cfg->forget_bias == 0.0f)) {
    mrl__error(error, error_size, "core.forget_bias %g must be finite", cfg->forget_bias);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  state = (long long)N * W + 2LL * N + (long long)R * N + (long long)R * W + 2LL * H +
          (c->links ? (long long)N + (long long)N * N : 0);
  in = (long long)input_dim + (long long)R * W;
  if (state > INT_MAX / 4 || in > INT_MAX / 4 || (long long)R * N * W > INT_MAX / 4) {
    mrl__error(error, error_size, "core.dnc: a state of %lld floats is too large", state);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  d = (mrl__dnc *)MRL_MALLOC(sizeof *d);
  if (!d) {
    mrl__error(error, error_size, "core.dnc: out of memory");
    return MRL_ERR_OUT_OF_MEMORY;
  }
  memset(d, 0, sizeof *d);
  d->N = N;
  d->W = W;
  d->R = R;
  d->H = H;
  d->links = c->links;
  d->iface = R * W + R + 3 * W + 1 + R + 2 + (c->links ? 3 * R : 0);
  mrl_lstm_cell_init(&d->controller, p, mrl__name(p, buf, name, "controller"), (int)in, H,
                     cfg->init, cfg->forget_bias);
  mrl_linear_layer_init(&d->interface, p, mrl__name(p, buf, name, "interface"), H, d->iface,
                        cfg->init);
  core->impl = d;
  core->hidden_size = H;
  core->output_dim = H + R * W;
  core->state_dim = (int)state;
  return MRL_OK;
}

/* Allocation weighting a [B,N] from usage u [B,N] (see the section's doc).
 * Backward, with s the sorted usage, P_j = prod_{i<j} s_i and g = dL/da in
 * sorted order: dL/ds_k = P_k (Q_k - g_k), Q_{N-1} = 0,
 * Q_{k-1} = g_k (1 - s_k) + s_k Q_k (no division, so zero usages are fine). */
typedef struct mrl__dnc_key {
  float u;
  int row;
} mrl__dnc_key;

static int mrl__dnc_key_cmp(const void *pa, const void *pb) {
  const mrl__dnc_key *a = (const mrl__dnc_key *)pa, *b = (const mrl__dnc_key *)pb;
  if (a->u < b->u) return -1;
  if (a->u > b->u) return 1;
  return (a->row > b->row) - (a->row < b->row);
}

static void mrl__dnc_allocation_backward(mrl_node *nd) {
  mrl_tensor *u = nd->in[0], *a = nd->out, *P = nd->extra[0];
  int B = nd->i[0], N = nd->i[1], b, j;
  if (!u->grad) return;
  for (b = 0; b < B; b++) {
    const int *order = nd->index + (size_t)b * N;
    const float *ub = u->data + (size_t)b * N, *ga = a->grad + (size_t)b * N,
                *pb = P->data + (size_t)b * N;
    float *gu = u->grad + (size_t)b * N, q = 0.0f;
    for (j = N - 1; j >= 0; j--) {
      int row = order[j];
      float s = ub[row];
      gu[row] += pb[j] * (q - ga[row]);
      q = ga[row] * (1.0f - s) + s * q;
    }
  }
}

/* Forward mode (mrl_graph_jvp), the order held fixed as in the backward pass:
 * a[phi_j] = (1 - u[phi_j]) P_j with P_{j+1} = P_j u[phi_j], so
 * da[phi_j] = (1 - u[phi_j]) dP_j - du[phi_j] P_j, dP_{j+1} = dP_j u[phi_j] + P_j du[phi_j]. */
static void mrl__dnc_allocation_jvp(mrl_node *nd) {
  mrl_tensor *u = nd->in[0], *a = nd->out, *P = nd->extra[0];
  int B = nd->i[0], N = nd->i[1], b, j;
  for (b = 0; b < B; b++) {
    const int *order = nd->index + (size_t)b * N;
    const float *ub = u->data + (size_t)b * N, *pb = P->data + (size_t)b * N;
    const float *du = u->grad ? u->grad + (size_t)b * N : NULL;
    float *da = a->grad + (size_t)b * N, dp = 0.0f;
    for (j = 0; j < N; j++) {
      int row = order[j];
      float d = du ? du[row] : 0.0f;
      da[row] = (1.0f - ub[row]) * dp - d * pb[j];
      dp = dp * ub[row] + pb[j] * d;
    }
  }
}

static mrl_tensor *mrl__dnc_allocation(mrl_graph *g, mrl_tensor *u) {
  int B, N, b, j, want;
  mrl_tensor *a, *P = NULL;
  mrl__dnc_key *keys;
  int *order;
  mrl_node *nd;
  if (!u) return NULL;
  B = u->shape[0];
  N = u->shape[1];
  want = mrl_graph_wants_grad(g, u, NULL);
  a = mrl_op_output(g, 2, u->shape, want);
  order = (int *)mrl_graph_alloc(g, sizeof(int) * (size_t)B * N);
  keys = (mrl__dnc_key *)mrl_graph_alloc(g, sizeof(mrl__dnc_key) * (size_t)N);
  if (want) P = mrl_tensor_new2(g, B, N, 0);
  if (!a || !order || !keys || (want && !P)) return NULL;
  for (b = 0; b < B; b++) {
    const float *ub = u->data + (size_t)b * N;
    float *ab = a->data + (size_t)b * N, prod = 1.0f;
    int *ob = order + (size_t)b * N;
    for (j = 0; j < N; j++) {
      keys[j].u = ub[j];
      keys[j].row = j;
    }
    qsort(keys, (size_t)N, sizeof *keys, mrl__dnc_key_cmp);
    for (j = 0; j < N; j++) {
      int row = keys[j].row;
      ob[j] = row;
      if (P) P->data[(size_t)b * N + j] = prod;
      ab[row] = (1.0f - keys[j].u) * prod;
      prod *= keys[j].u;
    }
  }
  if ((nd = mrl_graph_record(g, "dnc_allocation", mrl__dnc_allocation_backward, a)) != NULL) {
    nd->in[0] = u;
    nd->extra[0] = P;
    nd->index = order;
    nd->i[0] = B;
    nd->i[1] = N;
  }
  return a;
}

/* softmax over rows of beta * D(key, row): keys [B,K,W], mem [B,N,W], beta [B,K,1] -> [B,K,N] */
static mrl_tensor *mrl__dnc_content(mrl_graph *g, mrl_tensor *keys, mrl_tensor *mem,
                                    mrl_tensor *beta) {
  int shape[3];
  mrl_tensor *dots, *kn, *mn;
  if (!keys || !mem || !beta) return NULL;
  shape[0] = mem->shape[0];
  shape[1] = 1;
  shape[2] = mem->shape[1];
  dots = mrl_matmul_nt(g, keys, mem);
  kn = mrl_sqrt(g, mrl_add_scalar(g, mrl_sum_axis(g, mrl_square(g, keys), -1, 1), MRL__DNC_EPS));
  mn = mrl_sqrt(g, mrl_add_scalar(g, mrl_sum_axis(g, mrl_square(g, mem), -1, 1), MRL__DNC_EPS));
  if (!mn) return NULL;
  mn = mrl_reshape(g, mn, 3, shape);
  return mrl_softmax(g, mrl_mul(g, mrl_div(g, dots, mrl_mul(g, kn, mn)), beta), -1, NULL);
}

static mrl_tensor *mrl__dnc_view(mrl_graph *g, mrl_tensor *t, int d0, int d1, int d2) {
  int shape[3];
  shape[0] = d0;
  shape[1] = d1;
  shape[2] = d2;
  return t ? mrl_reshape(g, t, d2 > 0 ? 3 : 2, shape) : NULL;
}

/* columns [*o, *o + n) of xi, advancing *o */
static mrl_tensor *mrl__dnc_take(mrl_graph *g, mrl_tensor *xi, int *o, int n) {
  *o += n;
  return mrl_slice(g, xi, 1, *o - n, *o);
}

/* 1 + softplus(t): the paper's strengths in [1, inf) */
static mrl_tensor *mrl__dnc_oneplus(mrl_graph *g, mrl_tensor *t) {
  return mrl_add_scalar(g, mrl_softplus(g, t), 1.0f);
}

/* 1 - t */
static mrl_tensor *mrl__dnc_one_minus(mrl_graph *g, mrl_tensor *t) {
  return mrl_add_scalar(g, mrl_neg(g, t), 1.0f);
}

/* A state part of `size` floats per environment at offset, as [B, d1(, d2)] constants. */
static mrl_tensor *mrl__dnc_state_in(mrl_graph *g, const float *state, int stride, int offset,
                                     int B, int d1, int d2) {
  int shape[3], size = d1 * (d2 > 0 ? d2 : 1), b;
  mrl_tensor *t;
  shape[0] = B;
  shape[1] = d1;
  shape[2] = d2;
  t = mrl_tensor_new(g, d2 > 0 ? 3 : 2, shape, 0);
  if (!t) return NULL;
  for (b = 0; b < B; b++)
    if (state)
      memcpy(t->data + (size_t)b * size, state + (size_t)b * stride + offset,
             sizeof(float) * (size_t)size);
    else
      memset(t->data + (size_t)b * size, 0, sizeof(float) * (size_t)size);
  return t;
}

static void mrl__dnc_state_out(const mrl_tensor *t, float *state, int stride, int offset, int B) {
  int size = t->size / B, b;
  for (b = 0; b < B; b++)
    memcpy(state + (size_t)b * stride + offset, t->data + (size_t)b * size,
           sizeof(float) * (size_t)size);
}

#define MRL__DNC_PARTS 9 /* M u p L wr ww r h c */

static mrl_tensor *mrl__dnc_forward(const mrl_core *core, mrl_graph *g, mrl_tensor *x, int T, int B,
                                    const float *episode_start, const float *state_in,
                                    float *state_out, int stride) {
  const mrl__dnc *d = (const mrl__dnc *)core->impl;
  int N = d->N, W = d->W, R = d->R, H = d->H, t, b, k, o;
  int off[MRL__DNC_PARTS], d1[MRL__DNC_PARTS], d2[MRL__DNC_PARTS];
  mrl_tensor *s[MRL__DNC_PARTS], **ys, *zero, *offdiag = NULL, *y;
  /* parts in state order: M [B,N,W], u [B,N], p [B,N], L [B,N,N], wr [B,R,N], ww [B,N],
   * r [B,R*W], h [B,H], c [B,H]; p and L only with links */
  enum { M_, U_, P_, L_, WR_, WW_, RV_, H_, C_ };
  d1[M_] = N, d2[M_] = W;
  d1[U_] = N, d2[U_] = 0;
  d1[P_] = N, d2[P_] = 0;
  d1[L_] = N, d2[L_] = N;
  d1[WR_] = R, d2[WR_] = N;
  d1[WW_] = N, d2[WW_] = 0;
  d1[RV_] = R * W, d2[RV_] = 0;
  d1[H_] = H, d2[H_] = 0;
  d1[C_] = H, d2[C_] = 0;
  for (o = 0, k = 0; k < MRL__DNC_PARTS; k++) {
    off[k] = o;
    s[k] = NULL;
    if ((k == P_ || k == L_) && !d->links) continue;
    o += d1[k] * (d2[k] > 0 ? d2[k] : 1);
    s[k] = mrl__dnc_state_in(g, state_in, stride, off[k], B, d1[k], d2[k]);
    if (!s[k]) return NULL;
  }
  ys = (mrl_tensor **)mrl_graph_alloc(g, sizeof(mrl_tensor *) * (size_t)T);
  zero = mrl_tensor_new2(g, 1, 1, 0);
  if (!ys || !zero) return NULL;
  zero->data[0] = 0.0f;
  if (d->links) { /* L_t[i,i] = 0 */
    int i, j;
    if (!(offdiag = mrl_tensor_new2(g, N, N, 0))) return NULL;
    for (i = 0; i < N; i++)
      for (j = 0; j < N; j++) offdiag->data[i * N + j] = i != j ? 1.0f : 0.0f;
  }
  for (t = 0; t < T; t++) {
    mrl_tensor *xt, *h, *c, *xi, *kr, *br, *kw, *bw, *e, *v, *f, *ga, *gw, *pi = NULL, *psi = NULL;
    mrl_tensor *parts[2], *a, *cw, *ww, *ww3, *cr, *wr;
    int any = 0, i;
    if (episode_start)
      for (b = 0; b < B; b++) any |= episode_start[(size_t)t * B + b] != 0.0f;
    if (any) { /* zero the whole state of environments whose episode starts here */
      mrl_tensor *keep2 = mrl_tensor_new2(g, B, 1, 0), *keep3;
      if (!keep2) return NULL;
      for (b = 0; b < B; b++)
        keep2->data[b] = episode_start[(size_t)t * B + b] != 0.0f ? 0.0f : 1.0f;
      keep3 = mrl__dnc_view(g, keep2, B, 1, 1);
      for (k = 0; k < MRL__DNC_PARTS; k++)
        if (s[k]) s[k] = mrl_where(g, s[k]->ndim == 3 ? keep3 : keep2, s[k], zero);
    }
    xt = T == 1 ? x : mrl_slice(g, x, 0, t * B, (t + 1) * B);
    parts[0] = xt;
    parts[1] = s[RV_];
    h = c = NULL;
    mrl_lstm_cell(&d->controller, g, mrl_concat(g, parts, 2, 1), s[H_], s[C_], NULL, &h, &c);
    xi = mrl_linear_layer_forward(&d->interface, g, h);
    if (!xi) return NULL;
    o = 0; /* the interface vector's parts, in order */
    kr = mrl__dnc_view(g, mrl__dnc_take(g, xi, &o, R * W), B, R, W);
    br = mrl__dnc_view(g, mrl__dnc_oneplus(g, mrl__dnc_take(g, xi, &o, R)), B, R, 1);
    kw = mrl__dnc_view(g, mrl__dnc_take(g, xi, &o, W), B, 1, W);
    bw = mrl__dnc_view(g, mrl__dnc_oneplus(g, mrl__dnc_take(g, xi, &o, 1)), B, 1, 1);
    e = mrl__dnc_view(g, mrl_sigmoid(g, mrl__dnc_take(g, xi, &o, W)), B, 1, W);
    v = mrl__dnc_view(g, mrl__dnc_take(g, xi, &o, W), B, 1, W);
    f = mrl__dnc_view(g, mrl_sigmoid(g, mrl__dnc_take(g, xi, &o, R)), B, R, 1);
    ga = mrl_sigmoid(g, mrl__dnc_take(g, xi, &o, 1));
    gw = mrl_sigmoid(g, mrl__dnc_take(g, xi, &o, 1));
    if (d->links)
      pi = mrl_softmax(g, mrl__dnc_view(g, mrl__dnc_take(g, xi, &o, 3 * R), B, R, 3), -1, NULL);
    /* usage: retention over the read heads, then the previous write */
    {
      mrl_tensor *fw = mrl_mul(g, f, s[WR_]);
      for (i = 0; i < R; i++) {
        mrl_tensor *keep =
            mrl__dnc_one_minus(g, mrl__dnc_view(g, mrl_slice(g, fw, 1, i, i + 1), B, N, 0));
        psi = psi ? mrl_mul(g, psi, keep) : keep;
      }
    }
    s[U_] = mrl_mul(g, mrl_sub(g, mrl_add(g, s[U_], s[WW_]), mrl_mul(g, s[U_], s[WW_])), psi);
    a = mrl__dnc_allocation(g, s[U_]);
    cw = mrl__dnc_view(g, mrl__dnc_content(g, kw, s[M_], bw), B, N, 0);
    ww = mrl_mul(g, gw, mrl_add(g, mrl_mul(g, ga, a), mrl_mul(g, mrl__dnc_one_minus(g, ga), cw)));
    ww3 = mrl__dnc_view(g, ww, B, N, 1);
    s[M_] = mrl_add(g, mrl_mul(g, s[M_], mrl__dnc_one_minus(g, mrl_mul(g, ww3, e))),
                    mrl_mul(g, ww3, v));
    cr = mrl__dnc_content(g, kr, s[M_], br);
    if (d->links) {
      mrl_tensor *wwj = mrl__dnc_view(g, ww, B, 1, N), *fwd, *bwd, *Lt;
      Lt = mrl_add(g, mrl_mul(g, mrl_sub(g, mrl__dnc_one_minus(g, ww3), wwj), s[L_]),
                   mrl_mul(g, ww3, mrl__dnc_view(g, s[P_], B, 1, N)));
      s[L_] = mrl_where(g, offdiag, Lt, zero);
      s[P_] = mrl_add(g, mrl_mul(g, mrl__dnc_one_minus(g, mrl_sum_axis(g, ww, -1, 1)), s[P_]), ww);
      fwd = mrl_matmul_nt(g, s[WR_], s[L_]);
      bwd = mrl_matmul(g, s[WR_], s[L_]);
      wr = mrl_add(g,
                   mrl_add(g, mrl_mul(g, mrl_slice(g, pi, 2, 0, 1), bwd),
                           mrl_mul(g, mrl_slice(g, pi, 2, 1, 2), cr)),
                   mrl_mul(g, mrl_slice(g, pi, 2, 2, 3), fwd));
    } else {
      wr = cr;
    }
    s[WR_] = wr;
    s[WW_] = ww;
    s[RV_] = mrl__dnc_view(g, mrl_matmul(g, wr, s[M_]), B, R * W, 0);
    s[H_] = h;
    s[C_] = c;
    for (k = 0; k < MRL__DNC_PARTS; k++)
      if ((k != P_ && k != L_) || d->links)
        if (!s[k]) return NULL;
    parts[0] = h;
    parts[1] = s[RV_];
    if (!(ys[t] = mrl_concat(g, parts, 2, 1))) return NULL;
  }
  y = T == 1 ? ys[0] : mrl_concat_rows(g, ys, T);
  if (y && state_out)
    for (k = 0; k < MRL__DNC_PARTS; k++)
      if (s[k]) mrl__dnc_state_out(s[k], state_out, stride, off[k], B);
  return y;
}

MRL_DEF mrl_tensor *mrl_core_forward_aux(const mrl_core *core, mrl_graph *g, mrl_tensor *x, int T,
                                         int B, const float *episode_start, const float *state_in,
                                         float *state_out, int stride, mrl_tensor **aux) {
  if (aux) *aux = NULL;
  if (core->kind != MRL_CORE_FTW || !x)
    return mrl_core_forward(core, g, x, T, B, episode_start, state_in, state_out, stride);
  MRL_SHAPE_CHECK(x->ndim == 2 && x->shape[0] == T * B && x->shape[1] == core->input_dim,
                  "core_forward", "x must be [T*B, input_dim]", x, NULL);
  return mrl__ftw_forward(core, g, x, T, B, episode_start, state_in, state_out, stride, aux);
}

/* ---- towers >>tower ---- */

MRL_DEF mrl_tower_config mrl_tower_config_default(void) {
  mrl_tower_config c;
  memset(&c, 0, sizeof c);
  c.conv = mrl_conv_encoder_config_default();
  c.encoder_sizes[0] = 64;
  c.encoder_sizes[1] = 64;
  c.num_encoder_layers = 2;
  c.core = mrl_core_config_default();
  c.activation = MRL_ACT_TANH;
  c.init = mrl_init_default();
  return c;
}

/* An MLP of n layers (sizes) after in_dim, activation after every layer. */
static mrl_result mrl__tower_mlp(mrl_mlp *m, mrl_params *p, const char *name, const char *part,
                                 int in_dim, const int *sizes, int n, const mrl_tower_config *c,
                                 char *error, size_t error_size) {
  char buf[MRL_NAME_MAX];
  int dims[MRL_TOWER_MAX_LAYERS + 1], i;
  dims[0] = in_dim;
  for (i = 0; i < n; i++) {
    if (sizes[i] < 1) {
      mrl__error(error, error_size, "%s_sizes[%d] %d must be >= 1", part, i, sizes[i]);
      return MRL_ERR_INVALID_ARGUMENT;
    }
    dims[i + 1] = sizes[i];
  }
  mrl_mlp_init(m, p, mrl__name(p, buf, name, "%s", part), n + 1, dims, c->activation, c->init,
               c->init);
  m->activate_output = 1;
  return MRL_OK;
}

MRL_DEF mrl_result mrl_tower_init(mrl_tower *t, mrl_params *p, const char *name, int input_dim,
                                  const mrl_tower_config *c, int state_offset, char *error,
                                  size_t error_size) {
  char buf[MRL_NAME_MAX];
  int dim = input_dim, i;
  mrl_result r;
  memset(t, 0, sizeof *t);
  t->input_dim = input_dim;
  t->state_offset = state_offset;
  if (c->num_encoder_layers < 0 || c->num_encoder_layers > MRL_TOWER_MAX_LAYERS ||
      c->num_head_layers < 0 || c->num_head_layers > MRL_TOWER_MAX_LAYERS) {
    mrl__error(error, error_size, "num_encoder_layers %d / num_head_layers %d must be in 0..%d",
               c->num_encoder_layers, c->num_head_layers, MRL_TOWER_MAX_LAYERS);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (c->activation != MRL_ACT_NONE && c->activation != MRL_ACT_TANH &&
      c->activation != MRL_ACT_RELU) {
    mrl__error(error, error_size, "activation %d is not an mrl_activation", (int)c->activation);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (input_dim < 1) {
    mrl__error(error, error_size, "observation size %d must be >= 1", input_dim);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  /* check every size before declaring anything */
  for (i = 0; i < c->num_encoder_layers; i++)
    if (c->encoder_sizes[i] < 1) {
      mrl__error(error, error_size, "encoder_sizes[%d] %d must be >= 1", i, c->encoder_sizes[i]);
      return MRL_ERR_INVALID_ARGUMENT;
    }
  for (i = 0; i < c->num_head_layers; i++)
    if (c->head_sizes[i] < 1) {
      mrl__error(error, error_size, "head_sizes[%d] %d must be >= 1", i, c->head_sizes[i]);
      return MRL_ERR_INVALID_ARGUMENT;
    }
  if (c->core.kind == MRL_CORE_LSTM && c->core.hidden_size < 1) {
    mrl__error(error, error_size, "core.hidden_size %d must be >= 1 for an LSTM",
               c->core.hidden_size);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  /* the core's kind and sizes are checked by mrl_core_init (every built-in kind) */
  if (c->use_conv) {
    const mrl_conv_encoder_config *cc = &c->conv;
    if ((long long)cc->in_channels * cc->in_height * cc->in_width != input_dim) {
      mrl__error(error, error_size, "conv input %dx%dx%d does not match the observation size %d",
                 cc->in_channels, cc->in_height, cc->in_width, input_dim);
      return MRL_ERR_INVALID_ARGUMENT;
    }
    if ((r = mrl_conv_encoder_init(&t->conv, p, mrl__name(p, buf, name, "conv"), cc)) != MRL_OK) {
      mrl__error(error, error_size, "conv: the stack does not fit a %dx%dx%d input",
                 cc->in_channels, cc->in_height, cc->in_width);
      return r;
    }
    t->use_conv = 1;
    dim = t->conv.out_features;
  }
  if (c->num_encoder_layers > 0) {
    r = mrl__tower_mlp(&t->encoder, p, name, "encoder", dim, c->encoder_sizes,
                       c->num_encoder_layers, c, error, error_size);
    if (r != MRL_OK) return r;
    dim = c->encoder_sizes[c->num_encoder_layers - 1];
  }
  r = mrl_core_init(&t->core, p, mrl__name(p, buf, name, "core"), dim, &c->core, error, error_size);
  if (r != MRL_OK) return r;
  dim = t->core.output_dim;
  t->state_dim = t->core.state_dim;
  if (c->num_head_layers > 0) {
    r = mrl__tower_mlp(&t->head, p, name, "head", dim, c->head_sizes, c->num_head_layers, c, error,
                       error_size);
    if (r != MRL_OK) return r;
    dim = c->head_sizes[c->num_head_layers - 1];
  }
  t->output_dim = dim;
  return MRL_OK;
}

MRL_DEF void mrl_tower_free(mrl_tower *t) {
  mrl_core_free(&t->core);
}

MRL_DEF mrl_tensor *mrl_tower_forward(const mrl_tower *t, mrl_graph *g, mrl_tensor *x, int T, int B,
                                      const float *episode_start, const float *state_in,
                                      float *state_out, int stride) {
  return mrl_tower_forward_aux(t, g, x, T, B, episode_start, state_in, state_out, stride, NULL);
}

MRL_DEF mrl_tensor *mrl_tower_forward_aux(const mrl_tower *t, mrl_graph *g, mrl_tensor *x, int T,
                                          int B, const float *episode_start, const float *state_in,
                                          float *state_out, int stride, mrl_tensor **aux) {
  if (t->use_conv) x = mrl_conv_encoder_forward(&t->conv, g, x);
  if (t->encoder.num_layers) x = mrl_mlp_forward(&t->encoder, g, x);
  x = mrl_core_forward_aux(&t->core, g, x, T, B, episode_start,
                           state_in ? state_in + t->state_offset : NULL,
                           state_out ? state_out + t->state_offset : NULL, stride, aux);
  if (t->head.num_layers) x = mrl_mlp_forward(&t->head, g, x);
  return x;
}

/* ---- sum tree >>sum_tree ---- */

MRL_DEF mrl_result mrl_sum_tree_init(mrl_sum_tree *t, int capacity) {
  int i;
  memset(t, 0, sizeof *t);
  if (capacity < 1 || capacity > (1 << 29)) return MRL_ERR_INVALID_ARGUMENT;
  t->capacity = capacity;
  t->leaves = 1;
  while (t->leaves < capacity) t->leaves *= 2;
  t->sum = (double *)MRL_MALLOC(sizeof(double) * 2 * (size_t)t->leaves);
  t->min = (double *)MRL_MALLOC(sizeof(double) * 2 * (size_t)t->leaves);
  if (!t->sum || !t->min) {
    mrl_sum_tree_free(t);
    return MRL_ERR_OUT_OF_MEMORY;
  }
  for (i = 0; i < 2 * t->leaves; i++) {
    t->sum[i] = 0.0;
    t->min[i] = HUGE_VAL;
  }
  return MRL_OK;
}

MRL_DEF void mrl_sum_tree_free(mrl_sum_tree *t) {
  MRL_FREE(t->sum);
  MRL_FREE(t->min);
  memset(t, 0, sizeof *t);
}

MRL_DEF void mrl_sum_tree_set(mrl_sum_tree *t, int index, double priority) {
  int node;
  MRL_ASSERT(index >= 0 && index < t->capacity);
  MRL_ASSERT(priority >= 0.0 && priority < HUGE_VAL); /* also false for NaN */
  node = t->leaves + index;
  t->sum[node] = priority;
  t->min[node] = priority > 0.0 ? priority : HUGE_VAL;
  for (node /= 2; node >= 1; node /= 2) {
    double l = t->min[2 * node], r = t->min[2 * node + 1];
    t->sum[node] = t->sum[2 * node] + t->sum[2 * node + 1];
    t->min[node] = l < r ? l : r;
  }
}

MRL_DEF double mrl_sum_tree_get(const mrl_sum_tree *t, int index) {
  MRL_ASSERT(index >= 0 && index < t->capacity);
  return t->sum[t->leaves + index];
}

MRL_DEF double mrl_sum_tree_total(const mrl_sum_tree *t) {
  return t->sum[1];
}

MRL_DEF double mrl_sum_tree_min(const mrl_sum_tree *t) {
  return t->min[1] == HUGE_VAL ? 0.0 : t->min[1];
}

MRL_DEF int mrl_sum_tree_find(const mrl_sum_tree *t, double mass) {
  int node = 1;
  if (!(t->sum[1] > 0.0)) return -1;
  if (!(mass > 0.0)) mass = 0.0; /* also catches NaN */
  while (node < t->leaves) {
    double left = t->sum[2 * node];
    /* Descend left while the mass falls inside it. Only children of positive
     * sum are entered (a right child of sum 0 is skipped even when rounding
     * leaves mass >= left), so the walk ends on a positive leaf. */
    if (mass < left || t->sum[2 * node + 1] <= 0.0) {
      node = 2 * node;
    } else {
      mass -= left;
      node = 2 * node + 1;
    }
  }
  return node - t->leaves;
}

MRL_DEF void mrl_sum_tree_sample(const mrl_sum_tree *t, int n, mrl_rng *rng, int *indices) {
  double segment = mrl_sum_tree_total(t) / (n > 0 ? n : 1);
  int i;
  for (i = 0; i < n; i++)
    indices[i] = mrl_sum_tree_find(t, segment * (i + (double)mrl_rng_uniform(rng)));
}

/* ---- return estimators >>returns ---- */

MRL_DEF float mrl_value_rescale(float x, float eps) {
  double a = fabs((double)x);
  double h = sqrt(a + 1.0) - 1.0;
  return (float)((x < 0.0f ? -h : h) + (double)eps * x);
}

MRL_DEF float mrl_value_rescale_inv(float x, float eps) {
  double a = fabs((double)x), e = eps, y;
  if (e == 0.0) { /* h without the linear term: (|x| + 1)^2 - 1 */
    y = (a + 1.0) * (a + 1.0) - 1.0;
  } else {
    double root = (sqrt(1.0 + 4.0 * e * (a + 1.0 + e)) - 1.0) / (2.0 * e);
    y = root * root - 1.0;
  }
  return (float)(x < 0.0f ? -y : y);
}

/* The value that follows step i = t*B+b, and whether the episode ended there
 * (bootstrapping as documented above). */
static float mrl__returns_next_value(int T, int B, int t, int b, const float *values,
                                     const float *terminated, const float *truncated,
                                     const float *final_values, const float *last_values,
                                     int *ended) {
  size_t i = (size_t)t * B + b;
  *ended = terminated[i] != 0.0f || truncated[i] != 0.0f;
  if (terminated[i] != 0.0f) return 0.0f;
  if (truncated[i] != 0.0f) return final_values ? final_values[i] : 0.0f;
  return t == T - 1 ? last_values[b] : values[i + B];
}

MRL_DEF void mrl_returns_kstep(int T, int B, const float *rewards, const float *values,
                               const float *terminated, const float *truncated,
                               const float *final_values, const float *last_values, float gamma,
                               int K, float *advantages, float *returns) {
  int t, b, l;
  MRL_ASSERT(K >= 1);
  for (b = 0; b < B; b++)
    for (t = 0; t < T; t++) {
      size_t i = (size_t)t * B + b;
      double g = 0.0, disc = 1.0;
      for (l = 0; l < K && t + l < T; l++) {
        int ended;
        float next = mrl__returns_next_value(T, B, t + l, b, values, terminated, truncated,
                                             final_values, last_values, &ended);
        g += disc * rewards[(size_t)(t + l) * B + b];
        disc *= gamma;
        /* the window closes at an episode end, the rollout's end or after K rewards */
        if (ended || l == K - 1 || t + l == T - 1) {
          g += disc * next;
          break;
        }
      }
      if (advantages) advantages[i] = (float)(g - values[i]);
      if (returns) returns[i] = (float)g;
    }
}

MRL_DEF void mrl_returns_lambda(int T, int B, const float *rewards, const float *values,
                                const float *terminated, const float *truncated,
                                const float *final_values, const float *last_values, float gamma,
                                float lambda, float *advantages, float *returns) {
  int t, b;
  for (b = 0; b < B; b++) {
    double g = 0.0; /* G_{t+1} */
    for (t = T - 1; t >= 0; t--) {
      size_t i = (size_t)t * B + b;
      int ended;
      float next = mrl__returns_next_value(T, B, t, b, values, terminated, truncated, final_values,
                                           last_values, &ended);
      /* at an episode or rollout end G_{t+1} is the bootstrap value itself */
      double tail = ended || t == T - 1 ? next : (1.0 - lambda) * next + lambda * g;
      g = rewards[i] + gamma * tail;
      if (advantages) advantages[i] = (float)(g - values[i]);
      if (returns) returns[i] = (float)g;
    }
  }
}

MRL_DEF void mrl_vtrace(int T, int B, const float *log_rhos, const float *discounts,
                        const float *rewards, const float *values, const float *bootstrap_value,
                        float rho_bar, float c_bar, float pg_rho_bar, float *vs,
                        float *pg_advantages) {
  int t, b;
  for (b = 0; b < B; b++) {
    /* backwards: acc = vs_{t+1} - V(x_{t+1}), next = V(x_{t+1}), vs_next = vs_{t+1} */
    double acc = 0.0, next = bootstrap_value[b], vs_next = bootstrap_value[b];
    for (t = T - 1; t >= 0; t--) {
      size_t i = (size_t)t * B + b;
      double rho = exp((double)log_rhos[i]), d = discounts[i], v = values[i];
      double rho_c = rho < rho_bar ? rho : rho_bar, c = rho < c_bar ? rho : c_bar;
      double rho_pg = rho < pg_rho_bar ? rho : pg_rho_bar;
      double delta = rho_c * (rewards[i] + d * next - v);
      double vs_t;
      acc = delta + d * c * acc;
      vs_t = v + acc;
      if (pg_advantages) pg_advantages[i] = (float)(rho_pg * (rewards[i] + d * vs_next - v));
      if (vs) vs[i] = (float)vs_t;
      next = v;
      vs_next = vs_t;
    }
  }
}

/* ---- rollout buffer >>rollout ---- */

/* count floats, zeroed (at least one, so a zero-sized field is still valid) */
static float *mrl__floats_zeroed(size_t count) {
  float *p = (float *)MRL_MALLOC(sizeof(float) * (count ? count : 1));
  if (p) memset(p, 0, sizeof(float) * (count ? count : 1));
  return p;
}

MRL_DEF mrl_result mrl_rollout_init(mrl_rollout *r, int num_steps, int num_envs, int obs_dim,
                                    int action_dim, int state_dim) {
  size_t tb = (size_t)num_steps * num_envs;
  memset(r, 0, sizeof *r);
  if (num_steps < 1 || num_envs < 1 || obs_dim < 1 || action_dim < 1 || state_dim < 0)
    return MRL_ERR_INVALID_ARGUMENT;
  r->num_steps = num_steps;
  r->num_envs = num_envs;
  r->obs_dim = obs_dim;
  r->action_dim = action_dim;
  r->state_dim = state_dim;
  r->obs = mrl__floats_zeroed(tb * obs_dim);
  r->actions = mrl__floats_zeroed(tb * action_dim);
  r->log_probs = mrl__floats_zeroed(tb);
  r->values = mrl__floats_zeroed(tb);
  r->rewards = mrl__floats_zeroed(tb);
  r->episode_starts = mrl__floats_zeroed(tb);
  r->terminated = mrl__floats_zeroed(tb);
  r->truncated = mrl__floats_zeroed(tb);
  r->final_values = mrl__floats_zeroed(tb);
  r->advantages = mrl__floats_zeroed(tb);
  r->returns = mrl__floats_zeroed(tb);
  r->initial_state = mrl__floats_zeroed((size_t)num_envs * state_dim);
  if (!r->obs || !r->actions || !r->log_probs || !r->values || !r->rewards || !r->episode_starts ||
      !r->terminated || !r->truncated || !r->final_values || !r->advantages || !r->returns ||
      !r->initial_state) {
    mrl_rollout_free(r);
    return MRL_ERR_OUT_OF_MEMORY;
  }
  return MRL_OK;
}

MRL_DEF void mrl_rollout_free(mrl_rollout *r) {
  MRL_FREE(r->obs);
  MRL_FREE(r->actions);
  MRL_FREE(r->log_probs);
  MRL_FREE(r->values);
  MRL_FREE(r->rewards);
  MRL_FREE(r->episode_starts);
  MRL_FREE(r->terminated);
  MRL_FREE(r->truncated);
  MRL_FREE(r->final_values);
  MRL_FREE(r->advantages);
  MRL_FREE(r->returns);
  MRL_FREE(r->initial_state);
  memset(r, 0, sizeof *r);
}

MRL_DEF void mrl_rollout_compute_gae(mrl_rollout *r, const float *last_values, float gamma,
                                     float gae_lambda) {
  int T = r->num_steps, B = r->num_envs, t, b;
  for (b = 0; b < B; b++) {
    float running = 0.0f;
    for (t = T - 1; t >= 0; t--) {
      size_t i = (size_t)t * B + b;
      int ended = r->terminated[i] != 0.0f || r->truncated[i] != 0.0f;
      float next_value;
      if (r->terminated[i] != 0.0f)
        next_value = 0.0f;
      else if (r->truncated[i] != 0.0f)
        next_value = r->final_values[i];
      else
        next_value = t == T - 1 ? last_values[b] : r->values[i + B];
      /* delta_t = r_t + gamma V(s_{t+1}) - V(s_t); the sum stops at episode ends */
      running = r->rewards[i] + gamma * next_value - r->values[i] +
                (ended ? 0.0f : gamma * gae_lambda * running);
      r->advantages[i] = running;
      r->returns[i] = running + r->values[i];
    }
  }
}

/* ---- replay buffer >>replay ----
 * Schaul, Quan, Antonoglou, Silver (2016), "Prioritized Experience Replay",
 * proportional variant; n-step returns as in Rainbow (Hessel et al. 2018),
 * computed at insertion from a pending window per environment (see the
 * declaration for the item each step becomes). An item never spans an
 * episode end: a window is flushed when its episode ends, so a truncated
 * episode's last items bootstrap from its final observation and a
 * terminated one's do not bootstrap at all. */

MRL_DEF mrl_replay_config mrl_replay_config_default(int capacity, int num_envs, int obs_dim,
                                                    int action_dim) {
  mrl_replay_config c;
  memset(&c, 0, sizeof c);
  c.capacity = capacity;
  c.num_envs = num_envs;
  c.obs_dim = obs_dim;
  c.action_dim = action_dim;
  c.n_step = 1;
  c.gamma = 0.99f;
  c.prioritized = 0;
  c.alpha = 0.6f;
  c.priority_eps = 1e-6f;
  c.seed = 1;
  return c;
}

MRL_DEF mrl_result mrl_replay_init(mrl_replay *r, const mrl_replay_config *c, char *error,
                                   size_t error_size) {
  size_t cap, B, O, A, n, floats, bytes;
  mrl_result res;
  memset(r, 0, sizeof *r);
  if (!c) {
    mrl__error(error, error_size, "mrl_replay_init: NULL config");
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (c->capacity < 1 || c->num_envs < 1 || c->obs_dim < 1 || c->action_dim < 1 || c->n_step < 1) {
    mrl__error(error, error_size,
               "mrl_replay_config: capacity %d, num_envs %d, obs_dim %d, action_dim %d and "
               "n_step %d must all be >= 1",
               c->capacity, c->num_envs, c->obs_dim, c->action_dim, c->n_step);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (!(c->gamma >= 0.0f && c->gamma <= 1.0f)) {
    mrl__error(error, error_size, "mrl_replay_config.gamma %g must be in [0, 1]", c->gamma);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (c->prioritized && (!(c->alpha >= 0.0f && c->alpha < 1e30f) ||
                         !(c->priority_eps > 0.0f && c->priority_eps < 1e30f))) {
    mrl__error(error, error_size,
               "mrl_replay_config.alpha %g must be >= 0 and priority_eps %g > 0 (finite)", c->alpha,
               c->priority_eps);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  r->cfg = *c;
  cap = (size_t)c->capacity;
  B = (size_t)c->num_envs;
  O = (size_t)c->obs_dim;
  A = (size_t)c->action_dim;
  n = (size_t)c->n_step;
  /* one block: priorities and window counters (8-byte values) first, then
   * every float array */
  floats = cap * (2 * O + A + 2) + B * n * (O + A + 1);
  bytes = sizeof(double) * (c->prioritized ? cap : 0) + sizeof(long long) * 2 * B +
          sizeof(float) * floats;
  r->block = MRL_MALLOC(bytes);
  if (!r->block) {
    mrl__error(error, error_size, "mrl_replay_init: out of memory (%zu bytes)", bytes);
    return MRL_ERR_OUT_OF_MEMORY;
  }
  memset(r->block, 0, bytes);
  r->priorities = c->prioritized ? (double *)r->block : NULL;
  r->pending = (long long *)((char *)r->block + sizeof(double) * (c->prioritized ? cap : 0));
  r->obs = (float *)(r->pending + 2 * B);
  r->actions = r->obs + cap * O;
  r->rewards = r->actions + cap * A;
  r->next_obs = r->rewards + cap;
  r->discounts = r->next_obs + cap * O;
  r->pend_obs = r->discounts + cap;
  r->pend_actions = r->pend_obs + B * n * O;
  r->pend_rewards = r->pend_actions + B * n * A;
  r->floats = floats;
  r->max_priority = 1.0;
  r->rng = mrl_rng_make(c->seed ^ 0x2545f4914f6cdd1dULL);
  if (c->prioritized && (res = mrl_sum_tree_init(&r->tree, c->capacity)) != MRL_OK) {
    mrl__error(error, error_size, "mrl_replay_init: out of memory for the sum tree");
    mrl_replay_free(r);
    return res;
  }
  return MRL_OK;
}

MRL_DEF void mrl_replay_free(mrl_replay *r) {
  if (r->cfg.prioritized && r->block) mrl_sum_tree_free(&r->tree);
  MRL_FREE(r->block);
  memset(r, 0, sizeof *r);
}

/* Stores pending step i (0 = oldest) of env b and the k - 1 after it as one
 * item: R = sum_{j<k} gamma^j r, next_obs, discount. */
static void mrl__replay_store(mrl_replay *r, int b, int i, int k, const float *next_obs,
                              float discount) {
  const mrl_replay_config *c = &r->cfg;
  size_t O = (size_t)c->obs_dim, A = (size_t)c->action_dim, n = (size_t)c->n_step;
  size_t first = (size_t)r->pending[c->num_envs + b], slot = (first + (size_t)i) % n;
  size_t base = (size_t)b * n, at = (size_t)r->next;
  double R = 0.0, g = 1.0;
  int j;
  for (j = 0; j < k; j++) { /* accumulated in double, newest term last */
    R += g * r->pend_rewards[base + (first + (size_t)i + (size_t)j) % n];
    g *= c->gamma;
  }
  memcpy(r->obs + at * O, r->pend_obs + (base + slot) * O, sizeof(float) * O);
  memcpy(r->actions + at * A, r->pend_actions + (base + slot) * A, sizeof(float) * A);
  r->rewards[at] = (float)R;
  memcpy(r->next_obs + at * O, next_obs, sizeof(float) * O);
  r->discounts[at] = discount;
  if (c->prioritized) {
    r->priorities[at] = r->max_priority;
    mrl_sum_tree_set(&r->tree, (int)at, r->max_priority);
  }
  r->next = (r->next + 1) % c->capacity;
  if (r->size < c->capacity) r->size++;
  r->added++;
}

MRL_DEF void mrl_replay_add(mrl_replay *r, const float *obs, const float *actions,
                            const float *rewards, const float *next_obs, const float *final_obs,
                            const float *terminated, const float *truncated) {
  const mrl_replay_config *c = &r->cfg;
  int B = c->num_envs, n = c->n_step, b, i;
  size_t O = (size_t)c->obs_dim, A = (size_t)c->action_dim;
  for (b = 0; b < B; b++) {
    long long *count = &r->pending[b], *first = &r->pending[B + b];
    size_t slot = (size_t)b * n + (size_t)((*first + *count) % n);
    int term = terminated && terminated[b] != 0.0f;
    int ended = term || (truncated && truncated[b] != 0.0f);
    memcpy(r->pend_obs + slot * O, obs + (size_t)b * O, sizeof(float) * O);
    memcpy(r->pend_actions + slot * A, actions + (size_t)b * A, sizeof(float) * A);
    r->pend_rewards[slot] = rewards[b];
    (*count)++;
    if (ended) { /* flush: every pending step up to the episode's end */
      const float *fin = final_obs ? final_obs + (size_t)b * O : next_obs + (size_t)b * O;
      int k = (int)*count;
      for (i = 0; i < k; i++) {
        double disc = 1.0;
        int j;
        for (j = 0; j < k - i; j++) disc *= c->gamma;
        mrl__replay_store(r, b, i, k - i, fin, term ? 0.0f : (float)disc);
      }
      *count = 0;
      *first = 0;
    } else if (*count == n) { /* full: the oldest step becomes an n-step item */
      double disc = 1.0;
      int j;
      for (j = 0; j < n; j++) disc *= c->gamma;
      mrl__replay_store(r, b, 0, n, next_obs + (size_t)b * O, (float)disc);
      *first = (*first + 1) % n;
      (*count)--;
    }
  }
}

MRL_DEF mrl_result mrl_replay_sample(mrl_replay *r, int n, float beta, int *indices,
                                     float *weights) {
  int i;
  if (r->size < 1 || n < 1 || !indices) return MRL_ERR_INVALID_ARGUMENT;
  if (!r->cfg.prioritized) {
    for (i = 0; i < n; i++) indices[i] = (int)mrl_rng_below(&r->rng, (uint32_t)r->size);
    for (i = 0; weights && i < n; i++) weights[i] = 1.0f;
    return MRL_OK;
  }
  mrl_sum_tree_sample(&r->tree, n, &r->rng, indices);
  if (weights) {
    /* w_i = (N P(i))^-beta / max_j (N P(j))^-beta = (p_i / p_min)^-beta */
    double p_min = mrl_sum_tree_min(&r->tree);
    for (i = 0; i < n; i++) {
      double p = r->priorities[indices[i]];
      weights[i] = p > 0.0 && p_min > 0.0 ? (float)pow(p / p_min, -(double)beta) : 0.0f;
    }
  }
  return MRL_OK;
}

MRL_DEF void mrl_replay_gather(const mrl_replay *r, const int *indices, int n, float *obs,
                               float *actions, float *rewards, float *next_obs, float *discounts) {
  size_t O = (size_t)r->cfg.obs_dim, A = (size_t)r->cfg.action_dim;
  int i;
  for (i = 0; i < n; i++) {
    size_t at = (size_t)indices[i];
    MRL_ASSERT(indices[i] >= 0 && indices[i] < r->size);
    if (obs) memcpy(obs + (size_t)i * O, r->obs + at * O, sizeof(float) * O);
    if (actions) memcpy(actions + (size_t)i * A, r->actions + at * A, sizeof(float) * A);
    if (rewards) rewards[i] = r->rewards[at];
    if (next_obs) memcpy(next_obs + (size_t)i * O, r->next_obs + at * O, sizeof(float) * O);
    if (discounts) discounts[i] = r->discounts[at];
  }
}

MRL_DEF void mrl_replay_update_priorities(mrl_replay *r, const int *indices, const float *td_errors,
                                          int n) {
  int i;
  if (!r->cfg.prioritized) return;
  for (i = 0; i < n; i++) {
    double p = pow(fabs((double)td_errors[i]) + (double)r->cfg.priority_eps, (double)r->cfg.alpha);
    MRL_ASSERT(indices[i] >= 0 && indices[i] < r->size && p == p && p < 1e300);
    r->priorities[indices[i]] = p;
    mrl_sum_tree_set(&r->tree, indices[i], p);
    if (p > r->max_priority) r->max_priority = p;
  }
}

MRL_DEF void mrl_replay_drop_pending(mrl_replay *r) {
  memset(r->pending, 0, sizeof(long long) * 2 * (size_t)r->cfg.num_envs);
}

MRL_DEF int mrl_replay_extras(const mrl_replay *r, mrl_checkpoint_extra *x) {
  int n = 0;
  x[n++] = mrl_checkpoint_extra_of("__replay.floats", "F32", r->obs, r->floats);
  x[n++] = mrl_checkpoint_extra_of("__replay.pending", "I64", r->pending,
                                   (uint64_t)(2 * (size_t)r->cfg.num_envs));
  x[n++] = mrl_checkpoint_extra_of("__replay.size", "I64", &r->size, 1);
  x[n++] = mrl_checkpoint_extra_of("__replay.next", "I64", &r->next, 1);
  x[n++] = mrl_checkpoint_extra_of("__replay.added", "I64", &r->added, 1);
  x[n++] = mrl_checkpoint_extra_of("__replay.rng", "U64", &r->rng,
                                   (uint64_t)(sizeof r->rng / sizeof(uint64_t)));
  if (r->cfg.prioritized) {
    x[n++] = mrl_checkpoint_extra_of("__replay.priorities", "F64", r->priorities, r->cfg.capacity);
    x[n++] = mrl_checkpoint_extra_of("__replay.max_priority", "F64", &r->max_priority, 1);
  }
  return n;
}

MRL_DEF void mrl_replay_loaded(mrl_replay *r) {
  int i;
  if (!r->cfg.prioritized) return;
  for (i = 0; i < r->cfg.capacity; i++) mrl_sum_tree_set(&r->tree, i, r->priorities[i]);
}

/* ---- sequence replay >>seq_replay ----
 * Kapturowski et al. 2019 (R2D2), the layout described with the
 * declarations. Each environment's stream goes through a ring of width
 * entries; every period entries, once width are there, the last width
 * entries become a sequence in the next slot of the sequence ring. */

MRL_DEF mrl_seq_replay_config mrl_seq_replay_config_default(void) {
  mrl_seq_replay_config c;
  c.capacity = 1000;
  c.seq_len = 80;
  c.overlap = 40;
  c.burn_in = 40;
  c.priority_exponent = 0.9f;
  c.importance_exponent = 0.6f;
  c.eta = 0.9f;
  c.priority_eps = 1e-6f;
  c.episode_aligned = 0;
  return c;
}

MRL_DEF void mrl_seq_replay_free(mrl_seq_replay *r) {
  MRL_FREE(r->obs);
  MRL_FREE(r->actions);
  MRL_FREE(r->rewards);
  MRL_FREE(r->episode_starts);
  MRL_FREE(r->terminated);
  MRL_FREE(r->truncated);
  MRL_FREE(r->valid);
  MRL_FREE(r->state);
  MRL_FREE(r->priority);
  mrl_sum_tree_free(&r->tree);
  MRL_FREE(r->st_obs);
  MRL_FREE(r->st_actions);
  MRL_FREE(r->st_rewards);
  MRL_FREE(r->st_starts);
  MRL_FREE(r->st_terminated);
  MRL_FREE(r->st_truncated);
  MRL_FREE(r->st_valid);
  MRL_FREE(r->st_state);
  MRL_FREE(r->st_count);
  MRL_FREE(r->link);
  MRL_FREE(r->st_last);
  memset(r, 0, sizeof *r);
}

MRL_DEF mrl_result mrl_seq_replay_init(mrl_seq_replay *r, const mrl_seq_replay_config *cfg,
                                       int num_envs, int obs_dim, int action_dim, int state_dim) {
  size_t C, W, B, i;
  int b, k;
  mrl_result res;
  memset(r, 0, sizeof *r);
  if (!cfg || cfg->capacity < 1 || cfg->seq_len < 2 || cfg->overlap < 0 ||
      cfg->overlap >= cfg->seq_len || cfg->burn_in < 0 || num_envs < 1 || obs_dim < 1 ||
      action_dim < 1 || state_dim < 0 || !(cfg->priority_exponent >= 0.0f) ||
      !(cfg->importance_exponent >= 0.0f) || !(cfg->eta >= 0.0f && cfg->eta <= 1.0f) ||
      !(cfg->priority_eps >= 0.0f) || (double)cfg->burn_in + cfg->seq_len > INT_MAX / 4)
    return MRL_ERR_INVALID_ARGUMENT;
  r->cfg = *cfg;
  r->num_envs = num_envs;
  r->obs_dim = obs_dim;
  r->action_dim = action_dim;
  r->state_dim = state_dim;
  r->width = cfg->burn_in + cfg->seq_len;
  r->period = cfg->seq_len - cfg->overlap;
  r->max_priority = 1.0;
  C = (size_t)cfg->capacity;
  W = (size_t)r->width;
  B = (size_t)num_envs;
  r->obs = mrl__floats_zeroed(C * W * obs_dim);
  r->actions = mrl__floats_zeroed(C * W * action_dim);
  r->rewards = mrl__floats_zeroed(C * W);
  r->episode_starts = mrl__floats_zeroed(C * W);
  r->terminated = mrl__floats_zeroed(C * W);
  r->truncated = mrl__floats_zeroed(C * W);
  r->valid = mrl__floats_zeroed(C * W);
  r->state = mrl__floats_zeroed(C * state_dim);
  r->priority = (double *)MRL_MALLOC(sizeof(double) * C);
  r->st_obs = mrl__floats_zeroed(B * W * obs_dim);
  r->st_actions = mrl__floats_zeroed(B * W * action_dim);
  r->st_rewards = mrl__floats_zeroed(B * W);
  r->st_starts = mrl__floats_zeroed(B * W);
  r->st_terminated = mrl__floats_zeroed(B * W);
  r->st_truncated = mrl__floats_zeroed(B * W);
  r->st_valid = mrl__floats_zeroed(B * W);
  r->st_state = mrl__floats_zeroed(B * W * state_dim);
  r->st_count = (long long *)MRL_MALLOC(sizeof(long long) * B);
  r->link = (long long *)MRL_MALLOC(sizeof(long long) * C);
  r->st_last = (long long *)MRL_MALLOC(sizeof(long long) * B);
  if (!r->obs || !r->actions || !r->rewards || !r->episode_starts || !r->terminated ||
      !r->truncated || !r->valid || !r->state || !r->priority || !r->st_obs || !r->st_actions ||
      !r->st_rewards || !r->st_starts || !r->st_terminated || !r->st_truncated || !r->st_valid ||
      !r->st_state || !r->st_count || !r->link || !r->st_last) {
    mrl_seq_replay_free(r);
    return MRL_ERR_OUT_OF_MEMORY;
  }
  if ((res = mrl_sum_tree_init(&r->tree, cfg->capacity)) != MRL_OK) {
    mrl_seq_replay_free(r);
    return res;
  }
  for (i = 0; i < C; i++) r->priority[i] = 0.0, r->link[i] = -1;
  for (i = 0; i < B; i++) r->st_last[i] = -1;
  /* every stream begins with burn_in padding entries (zeroed, valid 0) */
  for (b = 0; b < num_envs; b++) {
    r->st_count[b] = cfg->burn_in;
    for (k = 0; k < cfg->burn_in; k++) r->st_starts[(size_t)b * W + (size_t)k] = 1.0f;
  }
  return MRL_OK;
}

/* Appends one entry to environment b's stream; stores a sequence when one
 * is complete (returns 1 then). */
static int mrl__seq_replay_push(mrl_seq_replay *r, int b, const float *obs, const float *action,
                                float reward, float start, float term, float trunc, float valid,
                                const float *state) {
  size_t W = (size_t)r->width, O = (size_t)r->obs_dim, A = (size_t)r->action_dim;
  size_t S = (size_t)r->state_dim, at = (size_t)b * W + (size_t)(r->st_count[b] % r->width);
  size_t slot, first, k;
  memcpy(r->st_obs + at * O, obs, sizeof(float) * O);
  if (action)
    memcpy(r->st_actions + at * A, action, sizeof(float) * A);
  else
    memset(r->st_actions + at * A, 0, sizeof(float) * A);
  r->st_rewards[at] = reward;
  r->st_starts[at] = start;
  r->st_terminated[at] = term;
  r->st_truncated[at] = trunc;
  r->st_valid[at] = valid;
  /* the state belongs to the episode of its entry: none before a start */
  if (S && (start != 0.0f || !state))
    memset(r->st_state + at * S, 0, sizeof(float) * S);
  else if (S)
    memcpy(r->st_state + at * S, state, sizeof(float) * S);
  r->st_count[b]++;
  if (r->st_count[b] < r->width) return 0;
  first = (size_t)((r->st_count[b] - r->width) % r->width);
  if (r->cfg.episode_aligned) { /* only windows that begin an episode (not the padding) */
    size_t oldest = (size_t)b * W + first;
    if (r->st_starts[oldest] == 0.0f || r->st_valid[oldest] == 0.0f) return 0;
  } else if ((r->st_count[b] - r->width) % r->period != 0) {
    return 0;
  }
  /* the last width entries, oldest first, into the next slot */
  slot = (size_t)r->next;
  for (k = 0; k < W; k++) {
    size_t from = (size_t)b * W + (first + k) % W, to = slot * W + k;
    memcpy(r->obs + to * O, r->st_obs + from * O, sizeof(float) * O);
    memcpy(r->actions + to * A, r->st_actions + from * A, sizeof(float) * A);
    r->rewards[to] = r->st_rewards[from];
    r->episode_starts[to] = r->st_starts[from];
    r->terminated[to] = r->st_terminated[from];
    r->truncated[to] = r->st_truncated[from];
    r->valid[to] = r->st_valid[from];
    if (k == 0 && S) memcpy(r->state + slot * S, r->st_state + from * S, sizeof(float) * S);
  }
  r->priority[slot] = r->max_priority;
  mrl_sum_tree_set(&r->tree, (int)slot, r->max_priority);
  r->link[slot] = -1;
  if (r->st_last[b] >= 0 && r->added - r->st_last[b] < r->cfg.capacity) /* still held */
    r->link[r->st_last[b] % r->cfg.capacity] = r->added;
  r->st_last[b] = r->added;
  r->next = (r->next + 1) % r->cfg.capacity;
  if (r->size < r->cfg.capacity) r->size++;
  r->added++;
  return 1;
}

MRL_DEF int mrl_seq_replay_add_envs(mrl_seq_replay *r, int first, int n, const float *obs,
                                    const float *episode_start, const float *state,
                                    const float *actions, const float *rewards,
                                    const float *terminated, const float *truncated,
                                    const float *final_obs, const float *next_state) {
  size_t O = (size_t)r->obs_dim, A = (size_t)r->action_dim, S = (size_t)r->state_dim;
  int b, stored = 0;
  MRL_ASSERT(first >= 0 && n >= 0 && first + n <= r->num_envs);
  for (b = 0; b < n; b++) {
    float term = terminated[b] != 0.0f ? 1.0f : 0.0f;
    float trunc = !term && truncated[b] != 0.0f ? 1.0f : 0.0f;
    stored += mrl__seq_replay_push(r, first + b, obs + b * O, actions + b * A, rewards[b],
                                   episode_start && episode_start[b] != 0.0f ? 1.0f : 0.0f, term,
                                   trunc, 1.0f, state ? state + b * S : NULL);
    if (term != 0.0f || trunc != 0.0f) /* the bootstrap entry: the final observation */
      stored += mrl__seq_replay_push(r, first + b, final_obs + b * O, NULL, 0.0f, 0.0f, 0.0f, 0.0f,
                                     0.0f, next_state ? next_state + b * S : NULL);
  }
  return stored;
}

MRL_DEF int mrl_seq_replay_add(mrl_seq_replay *r, const float *obs, const float *episode_start,
                               const float *state, const float *actions, const float *rewards,
                               const float *terminated, const float *truncated,
                               const float *final_obs, const float *next_state) {
  return mrl_seq_replay_add_envs(r, 0, r->num_envs, obs, episode_start, state, actions, rewards,
                                 terminated, truncated, final_obs, next_state);
}

MRL_DEF mrl_result mrl_seq_replay_sample(mrl_seq_replay *r, int n, mrl_rng *rng, int *indices,
                                         float *weights) {
  double pmin = HUGE_VAL;
  int i;
  if (r->size < 1 || n < 1 || !rng || !indices) return MRL_ERR_INVALID_ARGUMENT;
  mrl_sum_tree_sample(&r->tree, n, rng, indices);
  if (!weights) return MRL_OK;
  for (i = 0; i < n; i++) {
    double p = mrl_sum_tree_get(&r->tree, indices[i]);
    if (p > 0.0 && p < pmin) pmin = p;
  }
  for (i = 0; i < n; i++) {
    /* (N P(i))^-beta over its largest value in the batch = (p_i / p_min)^-beta */
    double p = mrl_sum_tree_get(&r->tree, indices[i]);
    weights[i] = p > 0.0 && pmin < HUGE_VAL
                     ? (float)pow(p / pmin, -(double)r->cfg.importance_exponent)
                     : 1.0f;
  }
  return MRL_OK;
}

MRL_DEF void mrl_seq_replay_gather(const mrl_seq_replay *r, const int *indices, int n, float *obs,
                                   float *actions, float *rewards, float *episode_starts,
                                   float *terminated, float *truncated, float *valid,
                                   float *state) {
  size_t W = (size_t)r->width, O = (size_t)r->obs_dim, A = (size_t)r->action_dim;
  size_t S = (size_t)r->state_dim, N = (size_t)n, t, i;
  for (i = 0; i < N; i++) {
    size_t slot = (size_t)indices[i];
    MRL_ASSERT(indices[i] >= 0 && indices[i] < r->cfg.capacity);
    for (t = 0; t < W; t++) {
      size_t from = slot * W + t, to = t * N + i;
      if (obs) memcpy(obs + to * O, r->obs + from * O, sizeof(float) * O);
      if (actions) memcpy(actions + to * A, r->actions + from * A, sizeof(float) * A);
      if (rewards) rewards[to] = r->rewards[from];
      if (episode_starts) episode_starts[to] = r->episode_starts[from];
      if (terminated) terminated[to] = r->terminated[from];
      if (truncated) truncated[to] = r->truncated[from];
      if (valid) valid[to] = r->valid[from];
    }
    if (state && S) memcpy(state + i * S, r->state + slot * S, sizeof(float) * S);
  }
}

MRL_DEF float mrl_seq_replay_priority(const float *abs_td, const float *mask, int n, int stride,
                                      float eta) {
  double mx = 0.0, sum = 0.0;
  int k, count = 0;
  for (k = 0; k < n; k++) {
    double d;
    if (mask && mask[(size_t)k * stride] == 0.0f) continue;
    d = fabs((double)abs_td[(size_t)k * stride]);
    if (d > mx) mx = d;
    sum += d;
    count++;
  }
  return count ? (float)(eta * mx + (1.0 - eta) * sum / count) : 0.0f;
}

MRL_DEF void mrl_seq_replay_update_priorities(mrl_seq_replay *r, const int *indices, int n,
                                              const float *priorities) {
  int i;
  for (i = 0; i < n; i++) {
    double p = pow((double)priorities[i] + r->cfg.priority_eps, (double)r->cfg.priority_exponent);
    MRL_ASSERT(indices[i] >= 0 && indices[i] < r->cfg.capacity);
    if (!(p >= 0.0) || p == HUGE_VAL) continue; /* a non-finite TD error leaves it as it was */
    r->priority[indices[i]] = p;
    mrl_sum_tree_set(&r->tree, indices[i], p);
    if (p > r->max_priority) r->max_priority = p;
  }
}

MRL_DEF int mrl_seq_replay_extras(const mrl_seq_replay *r, mrl_checkpoint_extra *x) {
  static const char f32[] = "F32", f64[] = "F64", i64[] = "I64";
  size_t C = (size_t)r->cfg.capacity, W = (size_t)r->width, B = (size_t)r->num_envs;
  size_t O = (size_t)r->obs_dim, A = (size_t)r->action_dim, S = (size_t)r->state_dim;
  int n = 0;
#define MRL__SQ(nm, ty, ptr, cnt)                                                                  \
  do {                                                                                             \
    x[n].name = nm;                                                                                \
    x[n].dtype = ty;                                                                               \
    x[n].data = ptr;                                                                               \
    x[n].count = (uint64_t)(cnt);                                                                  \
    n++;                                                                                           \
  } while (0)
  MRL__SQ("__seq_replay.obs", f32, r->obs, C * W * O);
  MRL__SQ("__seq_replay.actions", f32, r->actions, C * W * A);
  MRL__SQ("__seq_replay.rewards", f32, r->rewards, C * W);
  MRL__SQ("__seq_replay.episode_starts", f32, r->episode_starts, C * W);
  MRL__SQ("__seq_replay.terminated", f32, r->terminated, C * W);
  MRL__SQ("__seq_replay.truncated", f32, r->truncated, C * W);
  MRL__SQ("__seq_replay.valid", f32, r->valid, C * W);
  MRL__SQ("__seq_replay.state", f32, r->state, C * S);
  MRL__SQ("__seq_replay.priority", f64, r->priority, C);
  MRL__SQ("__seq_replay.size", i64, &r->size, 1);
  MRL__SQ("__seq_replay.next", i64, &r->next, 1);
  MRL__SQ("__seq_replay.added", i64, &r->added, 1);
  MRL__SQ("__seq_replay.max_priority", f64, &r->max_priority, 1);
  MRL__SQ("__seq_replay.st_obs", f32, r->st_obs, B * W * O);
  MRL__SQ("__seq_replay.st_actions", f32, r->st_actions, B * W * A);
  MRL__SQ("__seq_replay.st_rewards", f32, r->st_rewards, B * W);
  MRL__SQ("__seq_replay.st_starts", f32, r->st_starts, B * W);
  MRL__SQ("__seq_replay.st_terminated", f32, r->st_terminated, B * W);
  MRL__SQ("__seq_replay.st_truncated", f32, r->st_truncated, B * W);
  MRL__SQ("__seq_replay.st_valid", f32, r->st_valid, B * W);
  MRL__SQ("__seq_replay.st_state", f32, r->st_state, B * W * S);
  MRL__SQ("__seq_replay.st_count", i64, r->st_count, B);
  MRL__SQ("__seq_replay.link", i64, r->link, C);
  MRL__SQ("__seq_replay.st_last", i64, r->st_last, B);
#undef MRL__SQ
  return n;
}

MRL_DEF long long mrl_seq_replay_number(const mrl_seq_replay *r, int slot) {
  long long C = r->cfg.capacity;
  MRL_ASSERT(slot >= 0 && slot < r->size);
  return slot + C * ((r->added - 1 - slot) / C);
}

MRL_DEF long long mrl_seq_replay_next(const mrl_seq_replay *r, long long k) {
  long long first = r->added - r->size, next;
  if (k < first || k >= r->added) return -1;
  next = r->link[k % r->cfg.capacity];
  return next >= first && next < r->added ? next : -1;
}

MRL_DEF void mrl_seq_replay_loaded(mrl_seq_replay *r) {
  int i;
  for (i = 0; i < r->cfg.capacity; i++) mrl_sum_tree_set(&r->tree, i, r->priority[i]);
}

#ifdef __cplusplus
}
#endif
#endif /* MEMRL_MEM_IMPLEMENTATION */

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
