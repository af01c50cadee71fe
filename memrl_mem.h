/* memrl_mem.h - memory cores and rollout storage for agents that remember.
 *
 * Part of memrl. Needs memrl_nn.h (included here). libc and libm only.
 * Public domain / MIT, see the end of the file.
 *
 * CONTENTS
 *   ENABLING        the one file that defines the implementation
 *   MEMORY CORES    one interface for every core; user cores by function table
 *   TOWERS          encoder -> core -> head, each with a slice of the state record
 *   ROLLOUT BUFFER  on-policy steps with the initial core state, GAE
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
 *   LSTM); MRL_CORE_HCAM (hierarchical chunk attention memory, Lampinen et
 *   al. 2021: steps stored in chunks with mean summaries, a query reads the
 *   top-k chunks); MRL_CORE_FTW (FTW's slow and fast LSTMs with a Gaussian
 *   prior and posterior, Jaderberg et al. 2019; mrl_core_forward_aux gives
 *   the KL(posterior || prior) per step as an auxiliary loss); and
 *   MRL_CORE_USER: a user's own core through a function table
 *   (mrl_core_type), which every agent then trains unchanged (tests/test.h
 *   has a worked one, a GRU). mrl_core_config_parse("gru:128:2") builds a
 *   config from a short spec. Every core passes the conformance table of
 *   tests/test_cores.c: a sequence equals the same steps one at a time, a
 *   reset equals a fresh state, gradients through time check against finite
 *   differences, the state round-trips through a rollout buffer and a
 *   checkpoint, and acting allocates nothing.
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
 * LICENCE at the end of the file: public domain or MIT.
 * TAGS: each implementation section carries one tag, written >> and the
 * name; `grep -n '[>]>tower' memrl_mem.h` finds that section.
 *   The tags in file order:
 *     core frame_stack hcam ftw tower rollout
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
  float forget_bias; /* LSTM: added to the forget gate's bias (0: PyTorch's init) */
  mrl_activation nonlinearity;    /* Elman: MRL_ACT_TANH (torch's default) or MRL_ACT_RELU */
  int frame_stack;                /* FRAME_STACK: frames k (4; k = 1 is the feedforward agent) */
  const mrl_core_type *user_type; /* MRL_CORE_USER: the table (must outlive the core) */
  const void *user_config;        /* MRL_CORE_USER: passed to user_type->init */
  mrl_hcam_config hcam;           /* MRL_CORE_HCAM */
  mrl_ftw_config ftw;             /* MRL_CORE_FTW */
} mrl_core_config;

MRL_DEF mrl_core_config mrl_core_config_default(void); /* none */
MRL_DEF mrl_core_config mrl_core_config_lstm(int hidden_size);
MRL_DEF mrl_core_config mrl_core_config_gru(int hidden_size);
MRL_DEF mrl_core_config mrl_core_config_elman(int hidden_size);
MRL_DEF mrl_core_config mrl_core_config_frame_stack(int frames);
MRL_DEF mrl_core_config mrl_core_config_hcam(int dim, int chunk, int topk);
MRL_DEF mrl_core_config mrl_core_config_ftw(int fast_size, int slow_size, int period);
/* A core from a short spec, for command lines and benchmark tables: "none",
 * "lstm:<units>[:<layers>]", "gru:<units>[:<layers>]", "elman:<units>[:<layers>]"
 * ("elman_relu:..." for relu), "frame_stack:<k>",
 * "hcam:<dim>:<chunk>:<topk>[:<num_chunks>]", "ftw:<fast>:<slow>:<tau>[:<latent>]".
 * MRL_ERR_INVALID_ARGUMENT with the reason in error for anything else. */
MRL_DEF mrl_result mrl_core_config_parse(const char *spec, mrl_core_config *out, char *error,
                                         size_t error_size);
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

/* printf into a caller's error buffer (size 0: no message wanted) */
static void mrl__error(char *error, size_t size, const char *fmt, ...) {
  va_list ap;
  if (!error || size == 0) return;
  va_start(ap, fmt);
  vsnprintf(error, size, fmt, ap);
  va_end(ap);
}

MRL_DEF mrl_core_config mrl_core_config_default(void) {
  mrl_core_config c;
  memset(&c, 0, sizeof c);
  c.kind = MRL_CORE_NONE;
  c.num_layers = 1;
  c.init = mrl_init_default();
  c.nonlinearity = MRL_ACT_TANH;
  c.frame_stack = 4;
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
  colon = strchr(spec, ':');
  n = colon ? (size_t)(colon - spec) : strlen(spec);
  if (n == 0 || n >= sizeof name) goto bad;
  memcpy(name, spec, n);
  name[n] = '\0';
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
  } else if (colon && strcmp(name, "frame_stack") == 0 && b == 1 &&
             strchr(colon + 1, ':') == NULL) {
    *out = mrl_core_config_frame_stack((int)a);
    return MRL_OK;
  } else {
    goto bad;
  }
  out->num_layers = (int)b;
  return MRL_OK;
bad:
  mrl__error(error, error_size,
             "core spec \"%s\" is not none, lstm:H[:L], gru:H[:L], elman:H[:L], elman_relu:H[:L], "
             "frame_stack:K, hcam:D:C:K[:N] or ftw:F:S:TAU[:Z]",
             spec);
  return MRL_ERR_INVALID_ARGUMENT;
}

MRL_DEF mrl_core_config mrl_core_config_user(const mrl_core_type *type, const void *config) {
  mrl_core_config c = mrl_core_config_default();
  c.kind = MRL_CORE_USER;
  c.user_type = type;
  c.user_config = config;
  return c;
}

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
    else if (cfg->kind == MRL_CORE_GRU)
      mrl_gru_init(&core->gru, p, name, input_dim, H, L, cfg->init);
    else
      mrl_elman_init(&core->elman, p, name, input_dim, H, L, cfg->nonlinearity, cfg->init);
    core->hidden_size = H;
    core->num_layers = L;
    core->output_dim = H;
    core->state_dim = (cfg->kind == MRL_CORE_LSTM ? 2 : 1) * L * H;
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
  case MRL_CORE_HCAM:
    return mrl__hcam_forward(core, g, x, T, B, episode_start, state_in, state_out, stride);
  case MRL_CORE_FTW:
    return mrl__ftw_forward(core, g, x, T, B, episode_start, state_in, state_out, stride, NULL);
  }
  return NULL;
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
  if (c->core.kind != MRL_CORE_NONE && c->core.kind != MRL_CORE_LSTM &&
      c->core.kind != MRL_CORE_USER && c->core.kind != MRL_CORE_HCAM &&
      c->core.kind != MRL_CORE_FTW) {
    mrl__error(error, error_size, "core.kind %d is not an mrl_core_kind", (int)c->core.kind);
    return MRL_ERR_INVALID_ARGUMENT;
  }
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
  if (t->use_conv) x = mrl_conv_encoder_forward(&t->conv, g, x);
  if (t->encoder.num_layers) x = mrl_mlp_forward(&t->encoder, g, x);
  x = mrl_core_forward(&t->core, g, x, T, B, episode_start,
                       state_in ? state_in + t->state_offset : NULL,
                       state_out ? state_out + t->state_offset : NULL, stride);
  if (t->head.num_layers) x = mrl_mlp_forward(&t->head, g, x);
  return x;
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
