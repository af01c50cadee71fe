/* memrl_nn.h - parameters, layers, initialisers, optimisers, distributions, checkpoints.
 *
 * Part of memrl. Needs memrl_tensor.h (included here). libc and libm only.
 *
 * ENABLING
 *   In exactly one file: #define MEMRL_IMPLEMENTATION before including (emits
 *   every memrl header's implementation), or MEMRL_NN_IMPLEMENTATION together
 *   with MEMRL_TENSOR_IMPLEMENTATION.
 *
 * OPTIONS: as memrl_tensor.h (MRL_STATIC, MRL_MALLOC/REALLOC/FREE, MRL_ASSERT).
 *
 * PARAMETERS (llm.c layout)
 *   mrl_params keeps every parameter of a model in one contiguous buffer, and
 *   its gradients and Adam moments in three more. Layers declare their tensors
 *   (name, shape, initialiser) with mrl_params_add; mrl_params_finalize()
 *   allocates the buffers and runs every initialiser in declaration order from
 *   one seed. A target network is one memcpy of `values`; zeroing gradients is
 *   one memset.
 *
 * CONVENTIONS (PyTorch's, so weights and tests carry over)
 *   linear weight [out,in], bias [out]; default init: weight
 *   kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(in)), bias U(+-1/sqrt(in)).
 *   LSTM: gate order i, f, g, o; weight_ih [4H,in], weight_hh [4H,H], separate
 *   bias_ih and bias_hh; default init U(+-1/sqrt(H)) for all four.
 *   Orthogonal init as torch.nn.init.orthogonal_ (QR of a normal matrix, signs
 *   fixed by diag(R)), biases zero (CleanRL's layer_init).
 *   Adam: torch.optim.Adam (L2 weight decay added to the gradient, eps added
 *   after the bias-corrected square root). Clipping: clip_grad_norm_ (norm of
 *   the per-tensor 2-norms, coefficient max_norm / (norm + 1e-6), capped at 1).
 *
 * QUICK START
 *   mrl_params p;  mrl_mlp net;  mrl_graph g;
 *   int sizes[] = {4, 64, 64, 2};
 *   mrl_params_init(&p);
 *   mrl_mlp_init(&net, &p, "pi", 4, sizes, MRL_ACT_TANH, mrl_init_default(), mrl_init_default());
 *   mrl_params_finalize(&p, 42);                       // allocate + initialise
 *   mrl_graph_init(&g, 1 << 20);
 *   mrl_tensor *x = mrl_tensor_from2(&g, obs, batch, 4);
 *   mrl_tensor *logp = mrl_log_softmax(&g, mrl_mlp_forward(&net, &g, x));
 *   ... loss ...; mrl_params_zero_grad(&p); mrl_backward(&g, loss);
 *   mrl_params_clip_grad_norm(&p, 0.5f);  mrl_adam_step(&p, &adam_cfg);
 *
 * CHECKPOINTS (safetensors; details in their section below)
 *   mrl_checkpoint_options o = mrl_checkpoint_options_default();
 *   o.save_optimizer = 1;  o.config = "{\"hidden\": 64}";     // optional
 *   mrl_checkpoint_save(&p, "run/model.safetensors", &o);    // atomic
 *   mrl_checkpoint_load(&p, "run/model.safetensors", MRL_CHECKPOINT_OPTIMIZER);
 *   Also: mrl_checkpoint_save_buffer / _load_buffer (memory), and
 *   mrl_checkpoint_open / _meta / _find / _read_f32 / _apply / _close to read
 *   the metadata (e.g. the config to build the model from) before loading.
 */
#ifndef MEMRL_NN_H
#define MEMRL_NN_H

#define MEMRL_NN_VERSION_MAJOR 0
#define MEMRL_NN_VERSION_MINOR 1
#define MEMRL_NN_VERSION_PATCH 0

#include "memrl_tensor.h"
#if MEMRL_TENSOR_VERSION_MAJOR != MEMRL_NN_VERSION_MAJOR ||                                        \
    MEMRL_TENSOR_VERSION_MINOR != MEMRL_NN_VERSION_MINOR
#error "memrl_nn.h needs the memrl_tensor.h of the same version"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- initialisers ---- */
typedef enum mrl_init_kind {
  MRL_INIT_DEFAULT,    /* the layer's PyTorch default */
  MRL_INIT_ORTHOGONAL, /* weights orthogonal * gain, biases zero */
  MRL_INIT_ZEROS,
  MRL_INIT_CONSTANT, /* every element = a */
  MRL_INIT_UNIFORM,  /* U(-a, a) */
  MRL_INIT_NORMAL,   /* N(0, a^2) */
  MRL_INIT_LSTM_BIAS /* an LSTM bias [4H]: U(-a, a), then b added to the forget quarter */
} mrl_init_kind;

typedef struct mrl_init {
  mrl_init_kind kind;
  float a; /* gain, bound, std or value, by kind */
  float b; /* MRL_INIT_LSTM_BIAS: forget-gate bias */
} mrl_init;

MRL_DEF mrl_init mrl_init_default(void);
MRL_DEF mrl_init mrl_init_orthogonal(float gain);
MRL_DEF mrl_init mrl_init_make(mrl_init_kind kind, float a);

/* ---- parameter store ---- */
typedef struct mrl_param {
  char name[64];
  mrl_init init;
  size_t offset; /* into every buffer of the store */
  mrl_tensor tensor;
} mrl_param;

typedef struct mrl_params {
  mrl_param *items;
  int count, capacity;
  size_t total;             /* number of floats */
  float *values, *grads;    /* [total] each */
  float *moment1, *moment2; /* Adam's m and v, [total] each */
  long long adam_steps;
  int finalized;
} mrl_params;

MRL_DEF void mrl_params_init(mrl_params *p);
/* Declares a tensor; returns its index, or -1 when out of memory or after finalize. */
MRL_DEF int mrl_params_add(mrl_params *p, const char *name, int ndim, const int *shape,
                           mrl_init init);
/* Allocates the four buffers and initialises every tensor from the seed. */
MRL_DEF mrl_result mrl_params_finalize(mrl_params *p, uint64_t seed);
MRL_DEF mrl_tensor *mrl_params_tensor(mrl_params *p, int index);
MRL_DEF int mrl_params_find(const mrl_params *p, const char *name); /* -1 when absent */
MRL_DEF void mrl_params_zero_grad(mrl_params *p);
/* clip_grad_norm_: returns the total norm before clipping. */
MRL_DEF float mrl_params_clip_grad_norm(mrl_params *p, float max_norm);
/* dst = src (same layout), and dst = tau * src + (1 - tau) * dst. */
MRL_DEF void mrl_params_copy(mrl_params *dst, const mrl_params *src);
MRL_DEF void mrl_params_polyak(mrl_params *dst, const mrl_params *src, float tau);
MRL_DEF void mrl_params_free(mrl_params *p);
/* Fills t with an orthogonal matrix (rows = shape[0], cols = size / rows) times gain. */
MRL_DEF void mrl_init_orthogonal_fill(float *data, int rows, int cols, float gain, mrl_rng *rng);

/* ---- Adam (torch.optim.Adam) ---- */
typedef struct mrl_adam_config {
  float lr, beta1, beta2, eps, weight_decay;
} mrl_adam_config;
MRL_DEF mrl_adam_config mrl_adam_config_default(void); /* 1e-3, 0.9, 0.999, 1e-8, 0 */
MRL_DEF void mrl_adam_step(mrl_params *p, const mrl_adam_config *cfg);

/* ---- activations ---- */
typedef enum mrl_activation { MRL_ACT_NONE, MRL_ACT_TANH, MRL_ACT_RELU } mrl_activation;
MRL_DEF mrl_tensor *mrl_activate(mrl_graph *g, mrl_tensor *x, mrl_activation act);

/* ---- linear layer ---- */
typedef struct mrl_linear_layer {
  mrl_params *params;
  int weight, bias; /* indices in params */
  int in_features, out_features;
} mrl_linear_layer;
MRL_DEF void mrl_linear_layer_init(mrl_linear_layer *l, mrl_params *p, const char *name, int in,
                                   int out, mrl_init init);
MRL_DEF mrl_tensor *mrl_linear_layer_forward(const mrl_linear_layer *l, mrl_graph *g,
                                             mrl_tensor *x);

/* ---- MLP: linear layers with an activation between them ---- */
#define MRL_MLP_MAX_LAYERS 8
typedef struct mrl_mlp {
  mrl_linear_layer layers[MRL_MLP_MAX_LAYERS];
  int num_layers;
  mrl_activation activation;
  int activate_output; /* also apply the activation after the last layer */
} mrl_mlp;
/* sizes[0] inputs, sizes[num_sizes-1] outputs. hidden_init for all but the
 * last layer, output_init for the last (e.g. orthogonal(0.01) for a policy). */
MRL_DEF void mrl_mlp_init(mrl_mlp *m, mrl_params *p, const char *name, int num_sizes,
                          const int *sizes, mrl_activation act, mrl_init hidden_init,
                          mrl_init output_init);
MRL_DEF mrl_tensor *mrl_mlp_forward(const mrl_mlp *m, mrl_graph *g, mrl_tensor *x);

/* ---- LSTM (torch.nn.LSTM, one layer) ---- */
typedef struct mrl_lstm_layer {
  mrl_params *params;
  int weight_ih, weight_hh, bias_ih, bias_hh;
  int input_size, hidden_size;
} mrl_lstm_layer;
/* forget_bias is added to bias_ih's forget-gate quarter (0: PyTorch; 1: the
 * common memory-friendly choice of Gers et al. 2000 / Jozefowicz et al. 2015). */
MRL_DEF void mrl_lstm_layer_init(mrl_lstm_layer *l, mrl_params *p, const char *name, int input,
                                 int hidden, mrl_init init, float forget_bias);
/* One fused step. x [B,in], h and c [B,H]; keep (may be NULL) [B] multiplies
 * h and c before the step: 0 where an episode starts. Writes h' and c'. */
MRL_DEF void mrl_lstm_cell(const mrl_lstm_layer *l, mrl_graph *g, mrl_tensor *x, mrl_tensor *h,
                           mrl_tensor *c, const float *keep, mrl_tensor **h_out,
                           mrl_tensor **c_out);
/* Over a time-major sequence: x [T*B, in] (row t*B+b), keep NULL or [T*B].
 * Returns y [T*B, H]; final state in *h_out, *c_out (either may be NULL). */
MRL_DEF mrl_tensor *mrl_lstm_sequence(const mrl_lstm_layer *l, mrl_graph *g, mrl_tensor *x, int T,
                                      int B, mrl_tensor *h0, mrl_tensor *c0, const float *keep,
                                      mrl_tensor **h_out, mrl_tensor **c_out);

/* ---- categorical distribution over rows of normalised log-probabilities ----
 * (log_probs = mrl_log_softmax(logits)) */
MRL_DEF mrl_tensor *mrl_categorical_log_prob(mrl_graph *g, mrl_tensor *log_probs,
                                             const int *actions);
MRL_DEF mrl_tensor *mrl_categorical_entropy(mrl_graph *g, mrl_tensor *log_probs); /* [B] */
/* Sampling and the mode from one row of logits (no graph, no allocation). */
MRL_DEF int mrl_categorical_sample(const float *logits, int n, mrl_rng *rng);
MRL_DEF int mrl_categorical_mode(const float *logits, int n);

/* ---- checkpoints (safetensors) ----
 * A checkpoint is a safetensors file (huggingface/safetensors), so Python's
 * safetensors.torch.load_file and tools/safetensors_io.py read it unchanged:
 *   8 bytes   N, the header length, unsigned 64-bit little-endian
 *   N bytes   UTF-8 JSON, starting with '{' and padded with spaces so that the
 *             data starts at a multiple of 8 bytes:
 *             {"__metadata__":{"memrl.version":"0.1.0",...},
 *              "pi.0.weight":{"dtype":"F32","shape":[64,4],"data_offsets":[0,1024]},...}
 *   the rest  the tensors' raw little-endian bytes; data_offsets count from the
 *             first byte after the header; tensors are contiguous, with no gap
 *             and no overlap, and the last one ends at the end of the file.
 * Tensors: every parameter of the mrl_params under its own name (shape and
 * float32 values as in the store), in declaration order. With optimiser state,
 * each parameter's Adam moments follow as "<name>.adam_m" and "<name>.adam_v"
 * (torch.optim.Adam's exp_avg and exp_avg_sq), same shape.
 * Metadata (__metadata__, strings only):
 *   memrl.version     writer's library version, "MAJOR.MINOR.PATCH"
 *   memrl.config      the caller's config string (any text, e.g. JSON), if given
 *   memrl.adam_steps  Adam's step count in decimal, with optimiser state
 *   plus any key/value strings of the caller (keys other than these three).
 *
 * Saving is atomic: the file is written as "<path>.tmp.<unique>", flushed,
 * fsync'ed (POSIX; _commit on Windows), closed and renamed over <path> (on
 * POSIX the directory is fsync'ed too). A failed or interrupted save leaves
 * the previous checkpoint as it was; a process killed mid-save may leave its
 * temporary file behind, never a damaged <path>.
 *
 * Loading trusts nothing: the header length (at least 2, at most
 * MRL_CHECKPOINT_MAX_HEADER, inside the file), UTF-8, strict JSON (escapes,
 * numbers, nesting at most MRL_CHECKPOINT_MAX_DEPTH deep, trailing
 * whitespace only), the schema (dtype names, shapes of at most
 * MRL_CHECKPOINT_MAX_DIMS non-negative integers, exactly two offsets, no
 * duplicate names or fields, metadata values strings), element counts and byte
 * sizes without overflow, offsets contiguous from 0 to the end of the file.
 * Tensors may come in any order (the loader sorts them by offset, as the
 * reference does), so files written by other tools load too. Then, against
 * the model: every parameter present with dtype F32 and the same shape (so
 * rank <= 4), and no tensor the model lacks unless MRL_CHECKPOINT_ALLOW_UNKNOWN
 * (the moments "<name>.adam_m/v" of its parameters always count as known).
 * Only when all of that holds is anything written into the model: a failed
 * load leaves it untouched. A load holds the whole file in memory while it
 * checks it. Results: MRL_ERR_IO (cannot open, read,
 * write or rename), MRL_ERR_CORRUPT (not a valid safetensors file),
 * MRL_ERR_INVALID_ARGUMENT (valid, but not this model: a missing, unexpected,
 * differently shaped or non-F32 tensor; or a bad argument),
 * MRL_ERR_OUT_OF_MEMORY. Files are always little-endian: big-endian hosts
 * swap bytes on save and load. */
#define MRL_CHECKPOINT_MAX_HEADER 100000000u /* the reference parser's limit */
#define MRL_CHECKPOINT_MAX_DIMS 8
#define MRL_CHECKPOINT_MAX_DEPTH 64

/* Flags for loading. */
#define MRL_CHECKPOINT_OPTIMIZER 1     /* also load Adam moments and step count (required) */
#define MRL_CHECKPOINT_ALLOW_UNKNOWN 2 /* ignore tensors the model lacks (default: mismatch) */

/* Writes `bytes` bytes to f; returns how many it wrote (fewer: failure). */
typedef size_t (*mrl_checkpoint_write_fn)(const void *data, size_t bytes, FILE *f, void *user);

typedef struct mrl_checkpoint_options {
  int save_optimizer;          /* also save Adam moments and step count */
  const char *config;          /* stored as memrl.config; NULL: none */
  const char *const *metadata; /* num_metadata pairs: key0, value0, key1, value1, ... */
  int num_metadata;
  mrl_checkpoint_write_fn write; /* file saves write through this (to count bytes, throttle,
                                    inject failures); NULL: fwrite */
  void *write_user;
} mrl_checkpoint_options;

/* No optimiser state, no config, no extra metadata, fwrite. */
MRL_DEF mrl_checkpoint_options mrl_checkpoint_options_default(void);
/* Saves a finalized store atomically to path. opt may be NULL (defaults).
 * Names and strings must be valid UTF-8 and names unique
 * (MRL_ERR_INVALID_ARGUMENT otherwise, and nothing is written). */
MRL_DEF mrl_result mrl_checkpoint_save(const mrl_params *p, const char *path,
                                       const mrl_checkpoint_options *opt);
/* The same bytes into a new buffer (*data, *size); free it with MRL_FREE. */
MRL_DEF mrl_result mrl_checkpoint_save_buffer(const mrl_params *p,
                                              const mrl_checkpoint_options *opt, void **data,
                                              size_t *size);

/* Load in one call: read, validate, apply (flags: MRL_CHECKPOINT_*). */
MRL_DEF mrl_result mrl_checkpoint_load(mrl_params *p, const char *path, int flags);
MRL_DEF mrl_result mrl_checkpoint_load_buffer(mrl_params *p, const void *data, size_t size,
                                              int flags);

/* An opened, fully validated checkpoint, to read its metadata (e.g. the config
 * to build the model from) before applying it. Read-only for the caller. */
typedef struct mrl_checkpoint_tensor {
  const char *name; /* NUL-terminated; name_len counts bytes (a \u0000 escape stops name early) */
  size_t name_len;
  const char *dtype; /* "F32", "F16", "BF16", "I64", ... */
  int ndim;
  uint64_t shape[MRL_CHECKPOINT_MAX_DIMS];
  uint64_t numel;
  uint64_t offsets[2];        /* data_offsets as in the header */
  const unsigned char *bytes; /* the raw little-endian data, nbytes long */
  size_t nbytes;
} mrl_checkpoint_tensor;

typedef struct mrl_checkpoint_meta_entry {
  const char *key, *value; /* NUL-terminated */
  size_t key_len, value_len;
} mrl_checkpoint_meta_entry;

typedef struct mrl_checkpoint {
  const unsigned char *bytes; /* the whole file */
  size_t size;
  unsigned char *owned;           /* the file's bytes when opened from a path */
  char *strings;                  /* decoded names, keys and values */
  mrl_checkpoint_tensor *tensors; /* sorted by name */
  int num_tensors;
  mrl_checkpoint_meta_entry *meta; /* in file order */
  int num_meta;
  uint64_t header_len;
} mrl_checkpoint;

/* Reads and validates a file, or validates a buffer (borrowed: it must outlive
 * c). On failure c is left empty (closing it is harmless). */
MRL_DEF mrl_result mrl_checkpoint_open(mrl_checkpoint *c, const char *path);
MRL_DEF mrl_result mrl_checkpoint_open_buffer(mrl_checkpoint *c, const void *data, size_t size);
MRL_DEF void mrl_checkpoint_close(mrl_checkpoint *c);
/* The tensor of that name, or NULL. */
MRL_DEF const mrl_checkpoint_tensor *mrl_checkpoint_find(const mrl_checkpoint *c, const char *name);
/* Copies an F32 tensor of exactly count elements into out (host byte order). */
MRL_DEF mrl_result mrl_checkpoint_read_f32(const mrl_checkpoint_tensor *t, float *out,
                                           size_t count);
/* The metadata value of key, or NULL. */
MRL_DEF const char *mrl_checkpoint_meta(const mrl_checkpoint *c, const char *key);
/* Checks the checkpoint against the model, then copies its values (and with
 * MRL_CHECKPOINT_OPTIMIZER its Adam moments and step count) into p. Without
 * that flag the model's moments and step count are left as they are. */
MRL_DEF mrl_result mrl_checkpoint_apply(const mrl_checkpoint *c, mrl_params *p, int flags);

#ifdef __cplusplus
}
#endif
#endif /* MEMRL_NN_H */

/* ======================================================================== */
#if (defined(MEMRL_NN_IMPLEMENTATION) || defined(MEMRL_IMPLEMENTATION)) &&                         \
    !defined(MEMRL_NN_IMPLEMENTED)
#define MEMRL_NN_IMPLEMENTED

#ifdef __cplusplus
extern "C" {
#endif

MRL_DEF mrl_init mrl_init_make(mrl_init_kind kind, float a) {
  mrl_init i;
  i.kind = kind;
  i.a = a;
  i.b = 0.0f;
  return i;
}
MRL_DEF mrl_init mrl_init_default(void) {
  return mrl_init_make(MRL_INIT_DEFAULT, 0.0f);
}
MRL_DEF mrl_init mrl_init_orthogonal(float gain) {
  return mrl_init_make(MRL_INIT_ORTHOGONAL, gain);
}

MRL_DEF void mrl_params_init(mrl_params *p) {
  memset(p, 0, sizeof *p);
}

MRL_DEF int mrl_params_add(mrl_params *p, const char *name, int ndim, const int *shape,
                           mrl_init init) {
  mrl_param *it;
  if (p->finalized) return -1;
  if (p->count == p->capacity) {
    int cap = p->capacity ? 2 * p->capacity : 16;
    mrl_param *items = (mrl_param *)MRL_REALLOC(p->items, sizeof(mrl_param) * (size_t)cap);
    if (!items) return -1;
    p->items = items;
    p->capacity = cap;
  }
  it = &p->items[p->count];
  memset(it, 0, sizeof *it);
  snprintf(it->name, sizeof it->name, "%s", name);
  it->init = init;
  it->tensor = mrl_tensor_make(NULL, NULL, ndim, shape);
  it->offset = p->total;
  /* keep every tensor 16-float aligned inside the buffers */
  p->total += ((size_t)it->tensor.size + 15u) & ~(size_t)15u;
  return p->count++;
}

MRL_DEF void mrl_init_orthogonal_fill(float *data, int rows, int cols, float gain, mrl_rng *rng) {
  /* Modified Gram-Schmidt on the columns of the tall orientation of a normal
   * matrix: the Q of its QR with diag(R) > 0, i.e. orthogonal_'s sign fix. */
  int tall = rows >= cols, n = tall ? rows : cols, k = tall ? cols : rows, i, j, r;
  double *q = (double *)MRL_MALLOC(sizeof(double) * (size_t)n * (size_t)k);
  if (!q) return;
  /* Fill in the flattened row-major order of the [rows, cols] matrix. */
  for (i = 0; i < rows; i++)
    for (j = 0; j < cols; j++) {
      double v = mrl_rng_normal(rng);
      if (tall)
        q[(size_t)j * n + i] = v; /* column j of the tall matrix */
      else
        q[(size_t)i * n + j] = v; /* transposed: row i becomes column i */
    }
  for (j = 0; j < k; j++) {
    double *cj = q + (size_t)j * n, norm = 0.0;
    for (r = 0; r < j; r++) {
      double *cr = q + (size_t)r * n, dot = 0.0;
      for (i = 0; i < n; i++) dot += cr[i] * cj[i];
      for (i = 0; i < n; i++) cj[i] -= dot * cr[i];
    }
    for (i = 0; i < n; i++) norm += cj[i] * cj[i];
    norm = sqrt(norm);
    for (i = 0; i < n; i++) cj[i] = norm > 0.0 ? cj[i] / norm : 0.0;
  }
  for (i = 0; i < rows; i++)
    for (j = 0; j < cols; j++)
      data[(size_t)i * cols + j] =
          (float)(gain * (tall ? q[(size_t)j * n + i] : q[(size_t)i * n + j]));
  MRL_FREE(q);
}

static void mrl__param_initialise(mrl_param *it, mrl_rng *rng) {
  float *d = it->tensor.data, a = it->init.a;
  int n = it->tensor.size, i;
  switch (it->init.kind) {
  case MRL_INIT_DEFAULT: /* layers resolve DEFAULT before adding; treat as zeros */
  case MRL_INIT_ZEROS: memset(d, 0, sizeof(float) * (size_t)n); break;
  case MRL_INIT_CONSTANT:
    for (i = 0; i < n; i++) d[i] = a;
    break;
  case MRL_INIT_UNIFORM:
    for (i = 0; i < n; i++) d[i] = mrl_rng_uniform_range(rng, -a, a);
    break;
  case MRL_INIT_NORMAL:
    for (i = 0; i < n; i++) d[i] = a * mrl_rng_normal(rng);
    break;
  case MRL_INIT_LSTM_BIAS:
    for (i = 0; i < n; i++) d[i] = a > 0.0f ? mrl_rng_uniform_range(rng, -a, a) : 0.0f;
    for (i = n / 4; i < n / 2; i++) d[i] += it->init.b;
    break;
  case MRL_INIT_ORTHOGONAL:
    mrl_init_orthogonal_fill(d, it->tensor.shape[0], n / it->tensor.shape[0], a, rng);
    break;
  }
}

MRL_DEF mrl_result mrl_params_finalize(mrl_params *p, uint64_t seed) {
  size_t bytes = sizeof(float) * (p->total ? p->total : 1);
  mrl_rng rng = mrl_rng_make(seed);
  int i;
  if (p->finalized) return MRL_ERR_INVALID_ARGUMENT;
  p->values = (float *)MRL_MALLOC(bytes);
  p->grads = (float *)MRL_MALLOC(bytes);
  p->moment1 = (float *)MRL_MALLOC(bytes);
  p->moment2 = (float *)MRL_MALLOC(bytes);
  if (!p->values || !p->grads || !p->moment1 || !p->moment2) return MRL_ERR_OUT_OF_MEMORY;
  memset(p->values, 0, bytes);
  memset(p->grads, 0, bytes);
  memset(p->moment1, 0, bytes);
  memset(p->moment2, 0, bytes);
  for (i = 0; i < p->count; i++) {
    mrl_param *it = &p->items[i];
    it->tensor.data = p->values + it->offset;
    it->tensor.grad = p->grads + it->offset;
    mrl__param_initialise(it, &rng);
  }
  p->finalized = 1;
  return MRL_OK;
}

MRL_DEF mrl_tensor *mrl_params_tensor(mrl_params *p, int index) {
  MRL_ASSERT(p->finalized && index >= 0 && index < p->count);
  return &p->items[index].tensor;
}

MRL_DEF int mrl_params_find(const mrl_params *p, const char *name) {
  int i;
  for (i = 0; i < p->count; i++)
    if (strcmp(p->items[i].name, name) == 0) return i;
  return -1;
}

MRL_DEF void mrl_params_zero_grad(mrl_params *p) {
  if (p->grads) memset(p->grads, 0, sizeof(float) * p->total);
}

MRL_DEF float mrl_params_clip_grad_norm(mrl_params *p, float max_norm) {
  double sq = 0.0;
  float total, coef;
  int i;
  size_t j;
  for (i = 0; i < p->count; i++) {
    const mrl_tensor *t = &p->items[i].tensor;
    double s = 0.0;
    int k;
    for (k = 0; k < t->size; k++) s += (double)t->grad[k] * t->grad[k];
    /* torch: norm of the per-tensor norms, each rounded to float */
    {
      float tn = (float)sqrt(s);
      sq += (double)tn * tn;
    }
  }
  total = (float)sqrt(sq);
  coef = max_norm / (total + 1e-6f);
  if (coef < 1.0f)
    for (j = 0; j < p->total; j++) p->grads[j] *= coef;
  return total;
}

MRL_DEF void mrl_params_copy(mrl_params *dst, const mrl_params *src) {
  MRL_ASSERT(dst->total == src->total);
  memcpy(dst->values, src->values, sizeof(float) * src->total);
}

MRL_DEF void mrl_params_polyak(mrl_params *dst, const mrl_params *src, float tau) {
  size_t j;
  MRL_ASSERT(dst->total == src->total);
  for (j = 0; j < src->total; j++) dst->values[j] += tau * (src->values[j] - dst->values[j]);
}

MRL_DEF void mrl_params_free(mrl_params *p) {
  MRL_FREE(p->items);
  MRL_FREE(p->values);
  MRL_FREE(p->grads);
  MRL_FREE(p->moment1);
  MRL_FREE(p->moment2);
  memset(p, 0, sizeof *p);
}

MRL_DEF mrl_adam_config mrl_adam_config_default(void) {
  mrl_adam_config c;
  c.lr = 1e-3f;
  c.beta1 = 0.9f;
  c.beta2 = 0.999f;
  c.eps = 1e-8f;
  c.weight_decay = 0.0f;
  return c;
}

MRL_DEF void mrl_adam_step(mrl_params *p, const mrl_adam_config *cfg) {
  /* torch.optim.Adam, single-tensor path; scalars in double as Python has them */
  double bc1, bc2;
  float step_size, bc2_sqrt, b1 = cfg->beta1, b2 = cfg->beta2, wd = cfg->weight_decay;
  float one_b1 = (float)(1.0 - (double)b1), one_b2 = (float)(1.0 - (double)b2);
  size_t j;
  p->adam_steps++;
  bc1 = 1.0 - pow((double)b1, (double)p->adam_steps);
  bc2 = 1.0 - pow((double)b2, (double)p->adam_steps);
  step_size = (float)((double)cfg->lr / bc1);
  bc2_sqrt = (float)sqrt(bc2);
  for (j = 0; j < p->total; j++) {
    float grad = p->grads[j], m, v, denom;
    if (wd != 0.0f) grad += wd * p->values[j];
    m = p->moment1[j] * b1 + one_b1 * grad;
    v = p->moment2[j] * b2 + one_b2 * grad * grad;
    p->moment1[j] = m;
    p->moment2[j] = v;
    denom = sqrtf(v) / bc2_sqrt + cfg->eps;
    p->values[j] -= step_size * (m / denom);
  }
}

MRL_DEF mrl_tensor *mrl_activate(mrl_graph *g, mrl_tensor *x, mrl_activation act) {
  switch (act) {
  case MRL_ACT_TANH: return mrl_tanh(g, x);
  case MRL_ACT_RELU: return mrl_relu(g, x);
  case MRL_ACT_NONE: break;
  }
  return x;
}

MRL_DEF void mrl_linear_layer_init(mrl_linear_layer *l, mrl_params *p, const char *name, int in,
                                   int out, mrl_init init) {
  char buf[80];
  int wshape[2], bshape[1];
  mrl_init wi = init, bi = mrl_init_make(MRL_INIT_ZEROS, 0.0f);
  wshape[0] = out;
  wshape[1] = in;
  bshape[0] = out;
  if (init.kind == MRL_INIT_DEFAULT) {
    float bound = 1.0f / sqrtf((float)in);
    wi = mrl_init_make(MRL_INIT_UNIFORM, bound);
    bi = mrl_init_make(MRL_INIT_UNIFORM, bound);
  }
  l->params = p;
  l->in_features = in;
  l->out_features = out;
  snprintf(buf, sizeof buf, "%s.weight", name);
  l->weight = mrl_params_add(p, buf, 2, wshape, wi);
  snprintf(buf, sizeof buf, "%s.bias", name);
  l->bias = mrl_params_add(p, buf, 1, bshape, bi);
}

MRL_DEF mrl_tensor *mrl_linear_layer_forward(const mrl_linear_layer *l, mrl_graph *g,
                                             mrl_tensor *x) {
  return mrl_linear(g, x, mrl_params_tensor(l->params, l->weight),
                    mrl_params_tensor(l->params, l->bias));
}

MRL_DEF void mrl_mlp_init(mrl_mlp *m, mrl_params *p, const char *name, int num_sizes,
                          const int *sizes, mrl_activation act, mrl_init hidden_init,
                          mrl_init output_init) {
  int i;
  char buf[72];
  MRL_ASSERT(num_sizes >= 2 && num_sizes - 1 <= MRL_MLP_MAX_LAYERS);
  memset(m, 0, sizeof *m);
  m->num_layers = num_sizes - 1;
  m->activation = act;
  for (i = 0; i < m->num_layers; i++) {
    snprintf(buf, sizeof buf, "%s.%d", name, i);
    mrl_linear_layer_init(&m->layers[i], p, buf, sizes[i], sizes[i + 1],
                          i == m->num_layers - 1 ? output_init : hidden_init);
  }
}

MRL_DEF mrl_tensor *mrl_mlp_forward(const mrl_mlp *m, mrl_graph *g, mrl_tensor *x) {
  int i;
  for (i = 0; i < m->num_layers; i++) {
    x = mrl_linear_layer_forward(&m->layers[i], g, x);
    if (i < m->num_layers - 1 || m->activate_output) x = mrl_activate(g, x, m->activation);
  }
  return x;
}

/* ---- LSTM ---- */

MRL_DEF void mrl_lstm_layer_init(mrl_lstm_layer *l, mrl_params *p, const char *name, int input,
                                 int hidden, mrl_init init, float forget_bias) {
  char buf[80];
  int sih[2], shh[2], sb[1];
  mrl_init wi = init, bi = mrl_init_make(MRL_INIT_ZEROS, 0.0f);
  sih[0] = shh[0] = sb[0] = 4 * hidden;
  sih[1] = input;
  shh[1] = hidden;
  if (init.kind == MRL_INIT_DEFAULT) {
    float bound = 1.0f / sqrtf((float)hidden);
    wi = bi = mrl_init_make(MRL_INIT_UNIFORM, bound);
  }
  l->params = p;
  l->input_size = input;
  l->hidden_size = hidden;
  snprintf(buf, sizeof buf, "%s.weight_ih_l0", name);
  l->weight_ih = mrl_params_add(p, buf, 2, sih, wi);
  snprintf(buf, sizeof buf, "%s.weight_hh_l0", name);
  l->weight_hh = mrl_params_add(p, buf, 2, shh, wi);
  snprintf(buf, sizeof buf, "%s.bias_ih_l0", name);
  {
    mrl_init bf = mrl_init_make(MRL_INIT_LSTM_BIAS, bi.kind == MRL_INIT_UNIFORM ? bi.a : 0.0f);
    bf.b = forget_bias;
    l->bias_ih = mrl_params_add(p, buf, 1, sb, bf);
  }
  snprintf(buf, sizeof buf, "%s.bias_hh_l0", name);
  l->bias_hh = mrl_params_add(p, buf, 1, sb, bi);
}

/* The LSTM over a sequence is one fused node: the input projection of every
 * step is one large matmul, the recurrence runs step by step, and backward
 * does the weight and input gradients as large matmuls after the reverse
 * recurrence. Saved per step: activated gates (i, f, g, o), the masked
 * previous h and c, and tanh(c). */
typedef struct mrl__lstm_saved {
  mrl_tensor *x, *h0, *c0, *w_ih, *w_hh, *b_ih, *b_hh, *c_last;
  const float *keep;
  float *gates;           /* [T*B, 4H] */
  float *h_prev, *c_prev; /* [T*B, H]: keep * h_{t-1}, keep * c_{t-1} */
  float *c_all, *tanh_c;  /* [T*B, H]: c_t and tanh(c_t) */
  float *dpre;            /* [T*B, 4H] backward scratch */
  float *dc, *dh_prev;    /* [B, H] backward scratch */
  int T, B;
} mrl__lstm_saved;

static void mrl__lstm_backward(mrl_node *nd) {
  mrl__lstm_saved *s = (mrl__lstm_saved *)(void *)nd->extra[0];
  mrl_tensor *y = nd->out;
  int T = s->T, B = s->B, H = y->shape[1], I = s->x->shape[1], G = 4 * H, t, b, j;
  size_t BH = (size_t)B * H, k;
  /* y's last block is h_T, so its gradient arrives through y; c_T's own */
  memset(s->dh_prev, 0, sizeof(float) * BH);
  if (s->c_last->grad)
    memcpy(s->dc, s->c_last->grad, sizeof(float) * BH);
  else
    memset(s->dc, 0, sizeof(float) * BH);
  for (t = T - 1; t >= 0; t--) {
    const float *gt = s->gates + (size_t)t * B * G, *tc = s->tanh_c + (size_t)t * BH;
    const float *cp = s->c_prev + (size_t)t * BH, *gy = y->grad + (size_t)t * BH;
    float *dp = s->dpre + (size_t)t * B * G;
    for (b = 0; b < B; b++) {
      const float *gb = gt + (size_t)b * G;
      float *db = dp + (size_t)b * G, keep = s->keep ? s->keep[(size_t)t * B + b] : 1.0f;
      for (j = 0; j < H; j++) {
        float ig = gb[j], fg = gb[H + j], gg = gb[2 * H + j], og = gb[3 * H + j];
        float dh, dc;
        k = (size_t)b * H + j;
        dh = gy[k] + s->dh_prev[k];
        dc = s->dc[k] + dh * og * (1.0f - tc[k] * tc[k]);
        db[j] = dc * gg * ig * (1.0f - ig);
        db[H + j] = dc * cp[k] * fg * (1.0f - fg);
        db[2 * H + j] = dc * ig * (1.0f - gg * gg);
        db[3 * H + j] = dh * tc[k] * og * (1.0f - og);
        s->dc[k] = dc * fg * keep; /* gradient of c_{t-1} */
      }
    }
    /* gradient of h_{t-1}: (dpre_t W_hh) * keep */
    mrl_gemm(0, 0, B, H, G, dp, G, s->w_hh->data, H, 0.0f, s->dh_prev, H);
    for (b = 0; b < B; b++) {
      float keep = s->keep ? s->keep[(size_t)t * B + b] : 1.0f;
      for (j = 0; j < H; j++) s->dh_prev[(size_t)b * H + j] *= keep;
    }
  }
  if (s->h0->grad)
    for (k = 0; k < BH; k++) s->h0->grad[k] += s->dh_prev[k];
  if (s->c0->grad)
    for (k = 0; k < BH; k++) s->c0->grad[k] += s->dc[k];
  if (s->x->grad) mrl_gemm(0, 0, T * B, I, G, s->dpre, G, s->w_ih->data, I, 1.0f, s->x->grad, I);
  if (s->w_ih->grad) mrl_gemm(1, 0, G, I, T * B, s->dpre, G, s->x->data, I, 1.0f, s->w_ih->grad, I);
  if (s->w_hh->grad) mrl_gemm(1, 0, G, H, T * B, s->dpre, G, s->h_prev, H, 1.0f, s->w_hh->grad, H);
  for (k = 0; k < (size_t)T * B; k++)
    for (j = 0; j < G; j++) {
      float d = s->dpre[k * G + j];
      if (s->b_ih->grad) s->b_ih->grad[j] += d;
      if (s->b_hh->grad) s->b_hh->grad[j] += d;
    }
}

MRL_DEF mrl_tensor *mrl_lstm_sequence(const mrl_lstm_layer *l, mrl_graph *g, mrl_tensor *x, int T,
                                      int B, mrl_tensor *h0, mrl_tensor *c0, const float *keep,
                                      mrl_tensor **h_out, mrl_tensor **c_out) {
  mrl_tensor *w_ih, *w_hh, *b_ih, *b_hh, *y, *c_last, *h_last;
  mrl__lstm_saved *s;
  mrl_node *nd;
  int H = l->hidden_size, I = l->input_size, G = 4 * H, t, b, j, wants;
  size_t BH = (size_t)B * H, N = (size_t)T * B;
  if (h_out) *h_out = NULL;
  if (c_out) *c_out = NULL;
  if (!x || !h0 || !c0) return NULL;
  w_ih = mrl_params_tensor(l->params, l->weight_ih);
  w_hh = mrl_params_tensor(l->params, l->weight_hh);
  b_ih = mrl_params_tensor(l->params, l->bias_ih);
  b_hh = mrl_params_tensor(l->params, l->bias_hh);
  MRL_SHAPE_CHECK(x->ndim == 2 && x->shape[0] == T * B && x->shape[1] == I, "lstm",
                  "x must be [T*B, input_size]", x, w_ih);
  MRL_SHAPE_CHECK(h0->ndim == 2 && h0->shape[0] == B && h0->shape[1] == H, "lstm",
                  "h0 must be [B, hidden_size]", h0, x);
  MRL_SHAPE_CHECK(mrl_tensor_same_shape(h0, c0), "lstm", "h0 and c0 differ", h0, c0);
  wants = mrl_graph_wants_grad(g, x, h0) || mrl_graph_wants_grad(g, c0, w_ih) ||
          mrl_graph_wants_grad(g, w_hh, b_ih) || mrl_graph_wants_grad(g, b_hh, NULL);
  y = mrl_tensor_new2(g, T * B, H, wants);
  c_last = mrl_tensor_new2(g, B, H, wants);
  h_last = (mrl_tensor *)mrl_graph_alloc(g, sizeof(mrl_tensor));
  s = (mrl__lstm_saved *)mrl_graph_alloc(g, sizeof(mrl__lstm_saved));
  if (!y || !c_last || !h_last || !s) return NULL;
  memset(s, 0, sizeof *s);
  s->gates = (float *)mrl_graph_alloc(g, sizeof(float) * N * G);
  s->h_prev = (float *)mrl_graph_alloc(g, sizeof(float) * N * H);
  s->c_prev = (float *)mrl_graph_alloc(g, sizeof(float) * N * H);
  s->c_all = (float *)mrl_graph_alloc(g, sizeof(float) * N * H);
  s->tanh_c = (float *)mrl_graph_alloc(g, sizeof(float) * N * H);
  if (!s->gates || !s->h_prev || !s->c_prev || !s->c_all || !s->tanh_c) return NULL;
  /* input projection of every step at once, plus both biases */
  for (t = 0; t < T * B; t++)
    for (j = 0; j < G; j++) s->gates[(size_t)t * G + j] = b_ih->data[j] + b_hh->data[j];
  mrl_gemm(0, 1, T * B, G, I, x->data, I, w_ih->data, I, 1.0f, s->gates, G);
  for (t = 0; t < T; t++) {
    const float *hp = t ? y->data + (size_t)(t - 1) * BH : h0->data;
    const float *cp = t ? s->c_all + (size_t)(t - 1) * BH : c0->data;
    float *hk = s->h_prev + (size_t)t * BH, *ck = s->c_prev + (size_t)t * BH;
    float *gt = s->gates + (size_t)t * B * G, *tc = s->tanh_c + (size_t)t * BH;
    float *ct = s->c_all + (size_t)t * BH, *yt = y->data + (size_t)t * BH;
    for (b = 0; b < B; b++) {
      float kb = keep ? keep[(size_t)t * B + b] : 1.0f;
      for (j = 0; j < H; j++) {
        hk[(size_t)b * H + j] = hp[(size_t)b * H + j] * kb;
        ck[(size_t)b * H + j] = cp[(size_t)b * H + j] * kb;
      }
    }
    mrl_gemm(0, 1, B, G, H, hk, H, w_hh->data, H, 1.0f, gt, G);
    for (b = 0; b < B; b++) {
      float *gb = gt + (size_t)b * G;
      for (j = 0; j < H; j++) {
        size_t k = (size_t)b * H + j;
        float ig, fg, gg, og;
        gb[j] = ig = mrl_sigmoidf(gb[j]);
        gb[H + j] = fg = mrl_sigmoidf(gb[H + j]);
        gb[2 * H + j] = gg = tanhf(gb[2 * H + j]);
        gb[3 * H + j] = og = mrl_sigmoidf(gb[3 * H + j]);
        ct[k] = fg * ck[k] + ig * gg;
        tc[k] = tanhf(ct[k]);
        yt[k] = og * tc[k];
      }
    }
  }
  memcpy(c_last->data, s->c_all + (size_t)(T - 1) * BH, sizeof(float) * BH);
  /* h_T is a view of y's last block: its gradient lands in y's */
  *h_last = mrl_tensor_make2(y->data + (size_t)(T - 1) * BH,
                             y->grad ? y->grad + (size_t)(T - 1) * BH : NULL, B, H);
  MRL__FINITE("lstm", y, x, h0);
  if (h_out) *h_out = h_last;
  if (c_out) *c_out = c_last;
  if (!wants) return y;
  if ((nd = mrl_graph_record(g, "lstm", mrl__lstm_backward, y)) != NULL) {
    s->dpre = (float *)mrl_graph_alloc(g, sizeof(float) * N * G);
    s->dc = (float *)mrl_graph_alloc(g, sizeof(float) * BH);
    s->dh_prev = (float *)mrl_graph_alloc(g, sizeof(float) * BH);
    if (!s->dpre || !s->dc || !s->dh_prev) {
      g->tape = nd->prev;
      if (h_out) *h_out = NULL;
      if (c_out) *c_out = NULL;
      return NULL;
    }
    s->x = x;
    s->h0 = h0;
    s->c0 = c0;
    s->w_ih = w_ih;
    s->w_hh = w_hh;
    s->b_ih = b_ih;
    s->b_hh = b_hh;
    s->c_last = c_last;
    s->keep = keep;
    s->T = T;
    s->B = B;
    nd->extra[0] = (mrl_tensor *)(void *)s;
  }
  return y;
}

MRL_DEF void mrl_lstm_cell(const mrl_lstm_layer *l, mrl_graph *g, mrl_tensor *x, mrl_tensor *h,
                           mrl_tensor *c, const float *keep, mrl_tensor **h_out,
                           mrl_tensor **c_out) {
  /* one step is a sequence of length one */
  int B = x ? x->shape[0] : 0;
  mrl_tensor *y = mrl_lstm_sequence(l, g, x, 1, B, h, c, keep, NULL, c_out);
  *h_out = y;
  if (!y && c_out) *c_out = NULL;
}

/* ---- categorical ---- */

MRL_DEF mrl_tensor *mrl_categorical_log_prob(mrl_graph *g, mrl_tensor *log_probs,
                                             const int *actions) {
  return mrl_gather_rows(g, log_probs, actions);
}

MRL_DEF mrl_tensor *mrl_categorical_entropy(mrl_graph *g, mrl_tensor *log_probs) {
  return mrl_neg(g, mrl_sum_rows(g, mrl_mul(g, mrl_exp(g, log_probs), log_probs)));
}

MRL_DEF int mrl_categorical_sample(const float *logits, int n, mrl_rng *rng) {
  /* inverse CDF over exp(logit - max), accumulated in double */
  float mx = logits[0];
  double total = 0.0, u, acc = 0.0;
  int i;
  for (i = 1; i < n; i++)
    if (logits[i] > mx) mx = logits[i];
  for (i = 0; i < n; i++) total += exp((double)(logits[i] - mx));
  u = (double)mrl_rng_uniform(rng) * total;
  for (i = 0; i < n; i++) {
    acc += exp((double)(logits[i] - mx));
    if (u < acc) return i;
  }
  return mrl_categorical_mode(logits, n);
}

MRL_DEF int mrl_categorical_mode(const float *logits, int n) {
  int i, best = 0;
  for (i = 1; i < n; i++)
    if (logits[i] > logits[best]) best = i;
  return best;
}

/* ---- checkpoints (safetensors) ---- */
#ifdef __cplusplus
}
#endif
#include <limits.h>
#include <string.h>
#if defined(_WIN32)
#include <io.h> /* _commit */
#define MRL__CKPT_WINDOWS 1
#elif defined(__unix__) || defined(__unix) || (defined(__APPLE__) && defined(__MACH__))
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#define MRL__CKPT_POSIX 1
#endif
#ifdef __cplusplus
extern "C" {
#endif
#if defined(MRL__CKPT_WINDOWS)
/* Two kernel32 functions, declared as <windows.h> does (without including it
 * and its macros, as stb_image does for its UTF-8 helpers). */
__declspec(dllimport) int __stdcall MoveFileExA(const char *from, const char *to,
                                                unsigned long flags);
__declspec(dllimport) unsigned long __stdcall GetCurrentProcessId(void);
#define MRL__CKPT_MOVEFILE_REPLACE 0x1u /* MOVEFILE_REPLACE_EXISTING */
#define MRL__CKPT_MOVEFILE_THROUGH 0x8u /* MOVEFILE_WRITE_THROUGH */
#elif defined(MRL__CKPT_POSIX) && !defined(__cplusplus) && !defined(fileno)
/* POSIX; glibc's <stdio.h> hides it under a strict -std=c99. */
extern int fileno(FILE *stream);
#endif

/* ..... byte order: the file is little-endian whatever the host ..... */

static int mrl__ckpt_host_le(void) {
  const uint32_t one = 1u;
  unsigned char b;
  memcpy(&b, &one, 1);
  return b == 1u;
}

/* n floats to little-endian bytes; `native` says the host is little-endian
 * (a plain copy), otherwise each word is split by shifts (works on any host). */
static void mrl__ckpt_f32_to_le(unsigned char *dst, const float *src, size_t n, int native) {
  size_t i;
  if (n == 0) return;
  if (native) {
    memcpy(dst, src, n * 4u);
    return;
  }
  for (i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, &src[i], 4);
    dst[4 * i] = (unsigned char)(u & 0xffu);
    dst[4 * i + 1] = (unsigned char)((u >> 8) & 0xffu);
    dst[4 * i + 2] = (unsigned char)((u >> 16) & 0xffu);
    dst[4 * i + 3] = (unsigned char)((u >> 24) & 0xffu);
  }
}

static void mrl__ckpt_f32_from_le(float *dst, const unsigned char *src, size_t n, int native) {
  size_t i;
  if (n == 0) return;
  if (native) {
    memcpy(dst, src, n * 4u);
    return;
  }
  for (i = 0; i < n; i++) {
    uint32_t u = (uint32_t)src[4 * i] | ((uint32_t)src[4 * i + 1] << 8) |
                 ((uint32_t)src[4 * i + 2] << 16) | ((uint32_t)src[4 * i + 3] << 24);
    memcpy(&dst[i], &u, 4);
  }
}

/* ..... UTF-8 (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF) ..... */

static int mrl__ckpt_utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    size_t k, len;
    unsigned lo = 0x80u, hi = 0xbfu; /* range of the first continuation byte */
    if (c < 0x80u) {
      i++;
      continue;
    }
    if (c >= 0xc2u && c <= 0xdfu)
      len = 2;
    else if (c >= 0xe0u && c <= 0xefu) {
      len = 3;
      if (c == 0xe0u) lo = 0xa0u;
      if (c == 0xedu) hi = 0x9fu;
    } else if (c >= 0xf0u && c <= 0xf4u) {
      len = 4;
      if (c == 0xf0u) lo = 0x90u;
      if (c == 0xf4u) hi = 0x8fu;
    } else
      return 0;
    if (n - i < len) return 0;
    if (s[i + 1] < lo || s[i + 1] > hi) return 0;
    for (k = 2; k < len; k++)
      if (s[i + k] < 0x80u || s[i + k] > 0xbfu) return 0;
    i += len;
  }
  return 1;
}

/* ..... safetensors dtypes and their sizes in bits ..... */

typedef struct mrl__ckpt_dtype { /* arrays, not pointers: the table stays read-only */
  char name[8];
  unsigned bits;
} mrl__ckpt_dtype;

static const mrl__ckpt_dtype mrl__ckpt_dtypes[] = {
    {"BOOL", 8}, {"F4", 4},      {"F6_E2M3", 6}, {"F6_E3M2", 6}, {"U8", 8},
    {"I8", 8},   {"F8_E5M2", 8}, {"F8_E4M3", 8}, {"F8_E8M0", 8}, {"I16", 16},
    {"U16", 16}, {"F16", 16},    {"BF16", 16},   {"I32", 32},    {"U32", 32},
    {"F32", 32}, {"C64", 64},    {"F64", 64},    {"I64", 64},    {"U64", 64}};

static const mrl__ckpt_dtype *mrl__ckpt_dtype_find(const char *s, size_t len) {
  size_t i;
  for (i = 0; i < sizeof mrl__ckpt_dtypes / sizeof mrl__ckpt_dtypes[0]; i++)
    if (strlen(mrl__ckpt_dtypes[i].name) == len && memcmp(mrl__ckpt_dtypes[i].name, s, len) == 0)
      return &mrl__ckpt_dtypes[i];
  return NULL;
}

/* ..... writing ..... */

typedef struct mrl__ckpt_text { /* growable string */
  char *buf;
  size_t len, cap;
  int oom;
} mrl__ckpt_text;

static void mrl__ckpt_text_add(mrl__ckpt_text *t, const char *s, size_t n) {
  if (t->oom) return;
  if (n + 1 > t->cap - t->len) {
    size_t cap = t->cap ? t->cap : 256;
    char *b;
    while (n + 1 > cap - t->len) {
      if (cap > ((size_t)-1) / 2) {
        t->oom = 1;
        return;
      }
      cap *= 2;
    }
    b = (char *)MRL_REALLOC(t->buf, cap);
    if (!b) {
      t->oom = 1;
      return;
    }
    t->buf = b;
    t->cap = cap;
  }
  memcpy(t->buf + t->len, s, n);
  t->len += n;
  t->buf[t->len] = '\0';
}

static void mrl__ckpt_text_str(mrl__ckpt_text *t, const char *s) {
  mrl__ckpt_text_add(t, s, strlen(s));
}

/* A JSON string literal (serde_json's escapes: \" \\ \b \f \n \r \t, \u00XX). */
static void mrl__ckpt_text_json(mrl__ckpt_text *t, const char *s) {
  static const char hex[] = "0123456789abcdef";
  mrl__ckpt_text_add(t, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    char esc[7];
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      mrl__ckpt_text_add(t, esc, 2);
    } else if (c < 0x20u) {
      const char *named = c == '\b'   ? "\\b"
                          : c == '\f' ? "\\f"
                          : c == '\n' ? "\\n"
                          : c == '\r' ? "\\r"
                          : c == '\t' ? "\\t"
                                      : NULL;
      if (named)
        mrl__ckpt_text_add(t, named, 2);
      else {
        memcpy(esc, "\\u00", 4);
        esc[4] = hex[c >> 4];
        esc[5] = hex[c & 15u];
        mrl__ckpt_text_add(t, esc, 6);
      }
    } else
      mrl__ckpt_text_add(t, (const char *)&c, 1);
  }
  mrl__ckpt_text_add(t, "\"", 1);
}

static void mrl__ckpt_text_u64(mrl__ckpt_text *t, uint64_t v) {
  char buf[24];
  int i = 23;
  buf[i] = '\0';
  do {
    buf[--i] = (char)('0' + (int)(v % 10u));
    v /= 10u;
  } while (v);
  mrl__ckpt_text_str(t, buf + i);
}

static const char mrl__ckpt_moment_suffix[2][8] = {".adam_m", ".adam_v"};

static int mrl__ckpt_cmp_cstr(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every tensor name the save would write: unique, valid UTF-8. */
static mrl_result mrl__ckpt_check_names(const mrl_params *p, int moments) {
  int kinds = moments ? 3 : 1, n = p->count * kinds, i, k;
  size_t bytes = 0, at = 0;
  char **names, *text;
  mrl_result r = MRL_OK;
  if (n == 0) return MRL_OK;
  for (i = 0; i < p->count; i++) {
    const char *nm = p->items[i].name;
    if (!mrl__ckpt_utf8_valid((const unsigned char *)nm, strlen(nm)) ||
        strcmp(nm, "__metadata__") == 0)
      return MRL_ERR_INVALID_ARGUMENT;
    bytes += (size_t)kinds * (strlen(nm) + 8);
  }
  names = (char **)MRL_MALLOC(sizeof(char *) * (size_t)n + bytes);
  if (!names) return MRL_ERR_OUT_OF_MEMORY;
  text = (char *)(names + n); /* the strings follow the pointers */
  for (k = 0; k < kinds; k++)
    for (i = 0; i < p->count; i++) {
      names[k * p->count + i] = text + at;
      sprintf(text + at, "%s%s", p->items[i].name, k ? mrl__ckpt_moment_suffix[k - 1] : "");
      at += strlen(text + at) + 1;
    }
  if (n > 1) {
    qsort(names, (size_t)n, sizeof(char *), mrl__ckpt_cmp_cstr);
    for (i = 1; i < n; i++)
      if (strcmp(names[i - 1], names[i]) == 0) r = MRL_ERR_INVALID_ARGUMENT;
  }
  MRL_FREE(names);
  return r;
}

/* Builds the padded JSON header; *data_bytes gets the size of the data. */
static mrl_result mrl__ckpt_header(const mrl_params *p, const mrl_checkpoint_options *o,
                                   mrl__ckpt_text *t, uint64_t *data_bytes) {
  char version[48], suffixed[96];
  int i, k, d, m, passes = o->save_optimizer ? 3 : 1;
  uint64_t off = 0;
  mrl_result r;
  if (!p->finalized || o->num_metadata < 0 || (o->num_metadata > 0 && !o->metadata))
    return MRL_ERR_INVALID_ARGUMENT;
  if (o->config && !mrl__ckpt_utf8_valid((const unsigned char *)o->config, strlen(o->config)))
    return MRL_ERR_INVALID_ARGUMENT;
  for (m = 0; m < o->num_metadata; m++) {
    const char *key = o->metadata[2 * m], *value = o->metadata[2 * m + 1];
    if (!key || !value || strncmp(key, "memrl.", 6) == 0 ||
        !mrl__ckpt_utf8_valid((const unsigned char *)key, strlen(key)) ||
        !mrl__ckpt_utf8_valid((const unsigned char *)value, strlen(value)))
      return MRL_ERR_INVALID_ARGUMENT;
    for (k = 0; k < m; k++)
      if (strcmp(o->metadata[2 * k], key) == 0) return MRL_ERR_INVALID_ARGUMENT;
  }
  if ((r = mrl__ckpt_check_names(p, o->save_optimizer)) != MRL_OK) return r;
  snprintf(version, sizeof version, "%d.%d.%d", MEMRL_NN_VERSION_MAJOR, MEMRL_NN_VERSION_MINOR,
           MEMRL_NN_VERSION_PATCH);
  mrl__ckpt_text_str(t, "{\"__metadata__\":{\"memrl.version\":");
  mrl__ckpt_text_json(t, version);
  if (o->config) {
    mrl__ckpt_text_str(t, ",\"memrl.config\":");
    mrl__ckpt_text_json(t, o->config);
  }
  if (o->save_optimizer) {
    char steps[32];
    snprintf(steps, sizeof steps, "%lld", p->adam_steps < 0 ? 0LL : p->adam_steps);
    mrl__ckpt_text_str(t, ",\"memrl.adam_steps\":");
    mrl__ckpt_text_json(t, steps);
  }
  for (m = 0; m < o->num_metadata; m++) {
    mrl__ckpt_text_str(t, ",");
    mrl__ckpt_text_json(t, o->metadata[2 * m]);
    mrl__ckpt_text_str(t, ":");
    mrl__ckpt_text_json(t, o->metadata[2 * m + 1]);
  }
  mrl__ckpt_text_str(t, "}");
  for (k = 0; k < passes; k++)
    for (i = 0; i < p->count; i++) {
      const mrl_param *it = &p->items[i];
      uint64_t bytes = (uint64_t)(it->tensor.size > 0 ? it->tensor.size : 0) * 4u;
      snprintf(suffixed, sizeof suffixed, "%s%s", it->name,
               k ? mrl__ckpt_moment_suffix[k - 1] : "");
      mrl__ckpt_text_str(t, ",");
      mrl__ckpt_text_json(t, suffixed);
      mrl__ckpt_text_str(t, ":{\"dtype\":\"F32\",\"shape\":[");
      for (d = 0; d < it->tensor.ndim; d++) {
        if (d) mrl__ckpt_text_str(t, ",");
        mrl__ckpt_text_u64(t, (uint64_t)it->tensor.shape[d]);
      }
      mrl__ckpt_text_str(t, "],\"data_offsets\":[");
      mrl__ckpt_text_u64(t, off);
      mrl__ckpt_text_str(t, ",");
      mrl__ckpt_text_u64(t, off + bytes);
      mrl__ckpt_text_str(t, "]}");
      off += bytes;
    }
  mrl__ckpt_text_str(t, "}");
  while (!t->oom && t->len % 8u) mrl__ckpt_text_str(t, " "); /* data 8-byte aligned */
  *data_bytes = off;
  return t->oom ? MRL_ERR_OUT_OF_MEMORY : MRL_OK;
}

typedef struct mrl__ckpt_sink {
  FILE *f; /* file, through write (or fwrite) ... */
  mrl_checkpoint_write_fn write;
  void *user;
  unsigned char *mem; /* ... or memory */
  size_t pos, cap;
  int failed;
} mrl__ckpt_sink;

static void mrl__ckpt_put(mrl__ckpt_sink *s, const void *d, size_t n) {
  if (s->failed || n == 0) return;
  if (s->mem) {
    if (n > s->cap - s->pos) {
      s->failed = 1;
      return;
    }
    memcpy(s->mem + s->pos, d, n);
    s->pos += n;
    return;
  }
  if ((s->write ? s->write(d, n, s->f, s->user) : fwrite(d, 1, n, s->f)) != n) s->failed = 1;
}

static void mrl__ckpt_emit(const mrl_params *p, int moments, const mrl__ckpt_text *hdr,
                           mrl__ckpt_sink *s) {
  unsigned char len8[8], chunk[4096];
  uint64_t n = (uint64_t)hdr->len;
  int i, k, b, native = mrl__ckpt_host_le();
  for (b = 0; b < 8; b++) len8[b] = (unsigned char)((n >> (8 * b)) & 0xffu);
  mrl__ckpt_put(s, len8, 8);
  mrl__ckpt_put(s, hdr->buf, hdr->len);
  for (k = 0; k < (moments ? 3 : 1); k++) {
    const float *base = k == 0 ? p->values : k == 1 ? p->moment1 : p->moment2;
    for (i = 0; i < p->count; i++) {
      const float *src = base + p->items[i].offset;
      size_t left = p->items[i].tensor.size > 0 ? (size_t)p->items[i].tensor.size : 0;
      if (native) {
        mrl__ckpt_put(s, src, left * 4u);
        continue;
      }
      while (left) {
        size_t c = left < sizeof chunk / 4u ? left : sizeof chunk / 4u;
        mrl__ckpt_f32_to_le(chunk, src, c, 0);
        mrl__ckpt_put(s, chunk, c * 4u);
        src += c;
        left -= c;
      }
    }
  }
}

MRL_DEF mrl_checkpoint_options mrl_checkpoint_options_default(void) {
  mrl_checkpoint_options o;
  memset(&o, 0, sizeof o);
  return o;
}

MRL_DEF mrl_result mrl_checkpoint_save_buffer(const mrl_params *p,
                                              const mrl_checkpoint_options *opt, void **data,
                                              size_t *size) {
  mrl_checkpoint_options o = opt ? *opt : mrl_checkpoint_options_default();
  mrl__ckpt_text hdr;
  mrl__ckpt_sink s;
  uint64_t data_bytes = 0, total;
  mrl_result r;
  if (data) *data = NULL;
  if (size) *size = 0;
  if (!p || !data || !size) return MRL_ERR_INVALID_ARGUMENT;
  memset(&hdr, 0, sizeof hdr);
  if ((r = mrl__ckpt_header(p, &o, &hdr, &data_bytes)) != MRL_OK) {
    MRL_FREE(hdr.buf);
    return r;
  }
  total = 8u + (uint64_t)hdr.len + data_bytes;
  if (total > (uint64_t)((size_t)-1)) {
    MRL_FREE(hdr.buf);
    return MRL_ERR_OUT_OF_MEMORY;
  }
  memset(&s, 0, sizeof s);
  s.cap = (size_t)total;
  s.mem = (unsigned char *)MRL_MALLOC(s.cap);
  if (!s.mem) {
    MRL_FREE(hdr.buf);
    return MRL_ERR_OUT_OF_MEMORY;
  }
  mrl__ckpt_emit(p, o.save_optimizer, &hdr, &s);
  MRL_FREE(hdr.buf);
  if (s.failed || s.pos != s.cap) {
    MRL_FREE(s.mem);
    return MRL_ERR_OUT_OF_MEMORY;
  }
  *data = s.mem;
  *size = s.cap;
  return MRL_OK;
}

/* Flushes the file's data to the disk where the platform can. */
static int mrl__ckpt_sync(FILE *f) {
#if defined(MRL__CKPT_POSIX)
  return fsync(fileno(f)) == 0;
#elif defined(MRL__CKPT_WINDOWS)
  return _commit(_fileno(f)) == 0;
#else
  (void)f;
  return 1;
#endif
}

/* Creates the temporary file under a name no one else uses. */
static FILE *mrl__ckpt_create_temp(const char *path, char *tmp, size_t cap) {
  int attempt;
  unsigned long pid = 0, addr = (unsigned long)(uintptr_t)(const void *)&attempt;
#if defined(MRL__CKPT_POSIX)
  pid = (unsigned long)getpid();
#elif defined(MRL__CKPT_WINDOWS)
  pid = (unsigned long)GetCurrentProcessId();
#endif
  for (attempt = 0; attempt < 100; attempt++) {
    FILE *f;
    if (snprintf(tmp, cap, "%s.tmp.%lu.%lx.%d", path, pid, addr, attempt) >= (int)cap) return NULL;
#if defined(MRL__CKPT_POSIX)
    {
      int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0666); /* reserves the name */
      if (fd < 0) continue;
      close(fd);
    }
#else
    if ((f = fopen(tmp, "rb")) != NULL) { /* taken */
      fclose(f);
      continue;
    }
#endif
    if ((f = fopen(tmp, "wb")) != NULL) return f;
#if defined(MRL__CKPT_POSIX)
    remove(tmp);
#endif
    return NULL;
  }
  return NULL;
}

/* rename over an existing file, atomically where the platform allows. */
static int mrl__ckpt_replace(const char *tmp, const char *path) {
#if defined(MRL__CKPT_WINDOWS)
  return MoveFileExA(tmp, path, MRL__CKPT_MOVEFILE_REPLACE | MRL__CKPT_MOVEFILE_THROUGH) != 0;
#else
  return rename(tmp, path) == 0;
#endif
}

/* Makes the rename itself durable: fsync the directory holding path. */
static void mrl__ckpt_sync_dir(const char *path) {
#if defined(MRL__CKPT_POSIX)
  size_t n = strlen(path);
  char *dir = (char *)MRL_MALLOC(n + 2);
  int fd;
  if (!dir) return;
  memcpy(dir, path, n + 1);
  while (n > 0 && dir[n - 1] != '/') n--;
  if (n == 0)
    strcpy(dir, ".");
  else
    dir[n > 1 ? n - 1 : 1] = '\0'; /* keep "/" for a file in the root */
  fd = open(dir, O_RDONLY);
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
  MRL_FREE(dir);
#else
  (void)path;
#endif
}

MRL_DEF mrl_result mrl_checkpoint_save(const mrl_params *p, const char *path,
                                       const mrl_checkpoint_options *opt) {
  mrl_checkpoint_options o = opt ? *opt : mrl_checkpoint_options_default();
  mrl__ckpt_text hdr;
  mrl__ckpt_sink s;
  uint64_t data_bytes = 0;
  size_t cap;
  char *tmp;
  mrl_result r;
  int ok;
  if (!p || !path || !*path) return MRL_ERR_INVALID_ARGUMENT;
  memset(&hdr, 0, sizeof hdr);
  if ((r = mrl__ckpt_header(p, &o, &hdr, &data_bytes)) != MRL_OK) {
    MRL_FREE(hdr.buf);
    return r;
  }
  cap = strlen(path) + 64;
  tmp = (char *)MRL_MALLOC(cap);
  if (!tmp) {
    MRL_FREE(hdr.buf);
    return MRL_ERR_OUT_OF_MEMORY;
  }
  memset(&s, 0, sizeof s);
  s.f = mrl__ckpt_create_temp(path, tmp, cap);
  if (!s.f) {
    MRL_FREE(hdr.buf);
    MRL_FREE(tmp);
    return MRL_ERR_IO;
  }
  s.write = o.write;
  s.user = o.write_user;
  mrl__ckpt_emit(p, o.save_optimizer, &hdr, &s);
  MRL_FREE(hdr.buf);
  ok = !s.failed && fflush(s.f) == 0 && !ferror(s.f) && mrl__ckpt_sync(s.f);
  ok = (fclose(s.f) == 0) && ok;
  ok = ok && mrl__ckpt_replace(tmp, path);
  if (!ok)
    remove(tmp);
  else
    mrl__ckpt_sync_dir(path);
  MRL_FREE(tmp);
  return ok ? MRL_OK : MRL_ERR_IO;
}

/* ..... reading: a strict JSON parser for the header ..... */

typedef struct mrl__ckpt_json {
  const unsigned char *s;
  size_t pos, end;
  char *out; /* decoded strings; never longer than their JSON text */
  size_t used;
  int depth;
} mrl__ckpt_json;

static void mrl__ckpt_ws(mrl__ckpt_json *j) {
  while (j->pos < j->end && (j->s[j->pos] == ' ' || j->s[j->pos] == '\t' || j->s[j->pos] == '\n' ||
                             j->s[j->pos] == '\r'))
    j->pos++;
}

static int mrl__ckpt_eat(mrl__ckpt_json *j, char c) {
  mrl__ckpt_ws(j);
  if (j->pos < j->end && j->s[j->pos] == (unsigned char)c) {
    j->pos++;
    return 1;
  }
  return 0;
}

static int mrl__ckpt_hex4(mrl__ckpt_json *j, unsigned *v) {
  int i;
  *v = 0;
  if (j->end - j->pos < 4) return 0;
  for (i = 0; i < 4; i++) {
    unsigned char c = j->s[j->pos++];
    unsigned d;
    if (c >= '0' && c <= '9')
      d = (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
      d = (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      d = (unsigned)(c - 'A' + 10);
    else
      return 0;
    *v = *v * 16u + d;
  }
  return 1;
}

/* A string at the cursor, decoded NUL-terminated into j->out. */
static int mrl__ckpt_string(mrl__ckpt_json *j, const char **str, size_t *len) {
  char *o = j->out + j->used;
  size_t n = 0;
  mrl__ckpt_ws(j);
  if (j->pos >= j->end || j->s[j->pos] != '"') return 0;
  j->pos++;
  for (;;) {
    unsigned char c;
    if (j->pos >= j->end) return 0;
    c = j->s[j->pos++];
    if (c == '"') break;
    if (c < 0x20u) return 0; /* control characters must be escaped */
    if (c != '\\') {
      o[n++] = (char)c; /* raw UTF-8, validated beforehand */
      continue;
    }
    if (j->pos >= j->end) return 0;
    c = j->s[j->pos++];
    switch (c) {
    case '"': o[n++] = '"'; break;
    case '\\': o[n++] = '\\'; break;
    case '/': o[n++] = '/'; break;
    case 'b': o[n++] = '\b'; break;
    case 'f': o[n++] = '\f'; break;
    case 'n': o[n++] = '\n'; break;
    case 'r': o[n++] = '\r'; break;
    case 't': o[n++] = '\t'; break;
    case 'u': {
      unsigned cp, lo;
      if (!mrl__ckpt_hex4(j, &cp)) return 0;
      if (cp >= 0xdc00u && cp <= 0xdfffu) return 0; /* lone trailing surrogate */
      if (cp >= 0xd800u && cp <= 0xdbffu) {
        if (j->end - j->pos < 2 || j->s[j->pos] != '\\' || j->s[j->pos + 1] != 'u') return 0;
        j->pos += 2;
        if (!mrl__ckpt_hex4(j, &lo) || lo < 0xdc00u || lo > 0xdfffu) return 0;
        cp = 0x10000u + ((cp - 0xd800u) << 10) + (lo - 0xdc00u);
      }
      if (cp < 0x80u)
        o[n++] = (char)cp;
      else if (cp < 0x800u) {
        o[n++] = (char)(0xc0u | (cp >> 6));
        o[n++] = (char)(0x80u | (cp & 0x3fu));
      } else if (cp < 0x10000u) {
        o[n++] = (char)(0xe0u | (cp >> 12));
        o[n++] = (char)(0x80u | ((cp >> 6) & 0x3fu));
        o[n++] = (char)(0x80u | (cp & 0x3fu));
      } else {
        o[n++] = (char)(0xf0u | (cp >> 18));
        o[n++] = (char)(0x80u | ((cp >> 12) & 0x3fu));
        o[n++] = (char)(0x80u | ((cp >> 6) & 0x3fu));
        o[n++] = (char)(0x80u | (cp & 0x3fu));
      }
      break;
    }
    default: return 0;
    }
  }
  o[n] = '\0';
  j->used += n + 1;
  *str = o;
  *len = n;
  return 1;
}

/* A non-negative integer that fits in 64 bits (serde's usize). A sign, a
 * fraction, an exponent or a leading zero is rejected. */
static int mrl__ckpt_u64(mrl__ckpt_json *j, uint64_t *v) {
  size_t start;
  mrl__ckpt_ws(j);
  start = j->pos;
  *v = 0;
  while (j->pos < j->end && j->s[j->pos] >= '0' && j->s[j->pos] <= '9') {
    unsigned d = (unsigned)(j->s[j->pos] - '0');
    if (*v > (~(uint64_t)0 - d) / 10u) return 0;
    *v = *v * 10u + d;
    j->pos++;
  }
  if (j->pos == start) return 0;
  if (j->s[start] == '0' && j->pos - start > 1) return 0;
  if (j->pos < j->end && (j->s[j->pos] == '.' || j->s[j->pos] == 'e' || j->s[j->pos] == 'E'))
    return 0;
  return 1;
}

/* Any JSON value, checked and skipped (unknown fields of a tensor entry). */
static int mrl__ckpt_skip(mrl__ckpt_json *j) {
  unsigned char c;
  mrl__ckpt_ws(j);
  if (j->pos >= j->end) return 0;
  c = j->s[j->pos];
  if (c == '"') {
    const char *s;
    size_t n, used = j->used;
    int ok = mrl__ckpt_string(j, &s, &n);
    j->used = used;
    return ok;
  }
  if (c == '{' || c == '[') {
    char close = c == '{' ? '}' : ']';
    if (++j->depth > MRL_CHECKPOINT_MAX_DEPTH) return 0;
    j->pos++;
    if (!mrl__ckpt_eat(j, close)) {
      do {
        if (c == '{') {
          const char *s;
          size_t n, used = j->used;
          int ok = mrl__ckpt_string(j, &s, &n) && mrl__ckpt_eat(j, ':');
          j->used = used;
          if (!ok) return 0;
        }
        if (!mrl__ckpt_skip(j)) return 0;
      } while (mrl__ckpt_eat(j, ','));
      if (!mrl__ckpt_eat(j, close)) return 0;
    }
    j->depth--;
    return 1;
  }
  if (c == '-' || (c >= '0' && c <= '9')) { /* -?(0|[1-9]d*)(.d+)?([eE][+-]?d+)? */
    if (c == '-') j->pos++;
    if (j->pos >= j->end || j->s[j->pos] < '0' || j->s[j->pos] > '9') return 0;
    if (j->s[j->pos] == '0')
      j->pos++;
    else
      while (j->pos < j->end && j->s[j->pos] >= '0' && j->s[j->pos] <= '9') j->pos++;
    if (j->pos < j->end && j->s[j->pos] == '.') {
      size_t d = ++j->pos;
      while (j->pos < j->end && j->s[j->pos] >= '0' && j->s[j->pos] <= '9') j->pos++;
      if (j->pos == d) return 0;
    }
    if (j->pos < j->end && (j->s[j->pos] == 'e' || j->s[j->pos] == 'E')) {
      size_t d;
      j->pos++;
      if (j->pos < j->end && (j->s[j->pos] == '+' || j->s[j->pos] == '-')) j->pos++;
      d = j->pos;
      while (j->pos < j->end && j->s[j->pos] >= '0' && j->s[j->pos] <= '9') j->pos++;
      if (j->pos == d) return 0;
    }
    return 1;
  }
  {
    static const char words[3][6] = {"true", "false", "null"};
    int w;
    for (w = 0; w < 3; w++) {
      size_t n = strlen(words[w]);
      if (j->end - j->pos >= n && memcmp(j->s + j->pos, words[w], n) == 0) {
        j->pos += n;
        return 1;
      }
    }
  }
  return 0;
}

/* One tensor entry: {"dtype": .., "shape": [..], "data_offsets": [b, e]}. */
static int mrl__ckpt_entry(mrl__ckpt_json *j, mrl_checkpoint_tensor *t) {
  int seen = 0;
  if (!mrl__ckpt_eat(j, '{')) return 0;
  do {
    const char *key;
    size_t klen, used = j->used;
    if (!mrl__ckpt_string(j, &key, &klen) || !mrl__ckpt_eat(j, ':')) return 0;
    j->used = used; /* the key is not kept */
    if (klen == 5 && memcmp(key, "dtype", 5) == 0) {
      const char *s;
      size_t n;
      const mrl__ckpt_dtype *dt;
      if (seen & 1) return 0; /* duplicate field */
      seen |= 1;
      if (!mrl__ckpt_string(j, &s, &n)) return 0;
      j->used = used;
      if ((dt = mrl__ckpt_dtype_find(s, n)) == NULL) return 0;
      t->dtype = dt->name;
    } else if (klen == 5 && memcmp(key, "shape", 5) == 0) {
      if (seen & 2) return 0;
      seen |= 2;
      if (!mrl__ckpt_eat(j, '[')) return 0;
      t->ndim = 0;
      if (!mrl__ckpt_eat(j, ']')) {
        do {
          if (t->ndim == MRL_CHECKPOINT_MAX_DIMS) return 0;
          if (!mrl__ckpt_u64(j, &t->shape[t->ndim++])) return 0;
        } while (mrl__ckpt_eat(j, ','));
        if (!mrl__ckpt_eat(j, ']')) return 0;
      }
    } else if (klen == 12 && memcmp(key, "data_offsets", 12) == 0) {
      if (seen & 4) return 0;
      seen |= 4;
      if (!mrl__ckpt_eat(j, '[') || !mrl__ckpt_u64(j, &t->offsets[0]) || !mrl__ckpt_eat(j, ',') ||
          !mrl__ckpt_u64(j, &t->offsets[1]) || !mrl__ckpt_eat(j, ']'))
        return 0;
    } else { /* unknown fields are skipped, as the reference parser does */
      int ok;
      j->depth++;
      ok = mrl__ckpt_skip(j);
      j->depth--;
      if (!ok) return 0;
    }
  } while (mrl__ckpt_eat(j, ','));
  return seen == 7 && mrl__ckpt_eat(j, '}');
}

static int mrl__ckpt_cmp_name(const void *a, const void *b) {
  const mrl_checkpoint_tensor *x = (const mrl_checkpoint_tensor *)a;
  const mrl_checkpoint_tensor *y = (const mrl_checkpoint_tensor *)b;
  size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
  int c = n ? memcmp(x->name, y->name, n) : 0;
  if (c) return c;
  return x->name_len < y->name_len ? -1 : x->name_len > y->name_len ? 1 : 0;
}

static int mrl__ckpt_cmp_offsets(const void *a, const void *b) {
  const mrl_checkpoint_tensor *x = (const mrl_checkpoint_tensor *)a;
  const mrl_checkpoint_tensor *y = (const mrl_checkpoint_tensor *)b;
  if (x->offsets[0] != y->offsets[0]) return x->offsets[0] < y->offsets[0] ? -1 : 1;
  if (x->offsets[1] != y->offsets[1]) return x->offsets[1] < y->offsets[1] ? -1 : 1;
  return 0;
}

static int mrl__ckpt_cmp_meta(const void *a, const void *b) {
  const mrl_checkpoint_meta_entry *x = *(const mrl_checkpoint_meta_entry *const *)a;
  const mrl_checkpoint_meta_entry *y = *(const mrl_checkpoint_meta_entry *const *)b;
  size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
  int c = n ? memcmp(x->key, y->key, n) : 0;
  if (c) return c;
  return x->key_len < y->key_len ? -1 : x->key_len > y->key_len ? 1 : 0;
}

/* Appends one element to a growable array; 0 when out of memory. */
static int mrl__ckpt_grow(void **items, int *count, int *cap, size_t item) {
  if (*count == *cap) {
    int ncap = *cap ? *cap * 2 : 16;
    void *p;
    if (*cap > INT_MAX / 2 || (size_t)ncap > ((size_t)-1) / item) return 0;
    p = MRL_REALLOC(*items, item * (size_t)ncap);
    if (!p) return 0;
    *items = p;
    *cap = ncap;
  }
  (*count)++;
  return 1;
}

MRL_DEF void mrl_checkpoint_close(mrl_checkpoint *c) {
  if (!c) return;
  MRL_FREE(c->owned);
  MRL_FREE(c->strings);
  MRL_FREE(c->tensors);
  MRL_FREE(c->meta);
  memset(c, 0, sizeof *c);
}

/* Parses the header and checks it against the data; c->bytes/size are set. */
static mrl_result mrl__ckpt_parse(mrl_checkpoint *c) {
  const unsigned char *b = c->bytes;
  uint64_t n = 0, end = 0, data_size;
  mrl__ckpt_json j;
  int i, tcap = 0, mcap = 0, have_meta = 0;
  if (c->size < 8) return MRL_ERR_CORRUPT;
  for (i = 7; i >= 0; i--) n = (n << 8) | b[i];
  if (n > MRL_CHECKPOINT_MAX_HEADER || n > (uint64_t)(c->size - 8) || n < 2) return MRL_ERR_CORRUPT;
  c->header_len = n;
  data_size = (uint64_t)(c->size - 8) - n;
  if (b[8] != '{' || !mrl__ckpt_utf8_valid(b + 8, (size_t)n)) return MRL_ERR_CORRUPT;
  c->strings = (char *)MRL_MALLOC((size_t)n + 1);
  if (!c->strings) return MRL_ERR_OUT_OF_MEMORY;
  memset(&j, 0, sizeof j);
  j.s = b + 8;
  j.end = (size_t)n;
  j.out = c->strings;
  j.pos = 1;
  j.depth = 1;
  if (!mrl__ckpt_eat(&j, '}')) {
    do {
      const char *key;
      size_t klen;
      if (!mrl__ckpt_string(&j, &key, &klen) || !mrl__ckpt_eat(&j, ':')) return MRL_ERR_CORRUPT;
      if (klen == 12 && memcmp(key, "__metadata__", 12) == 0) {
        if (have_meta) return MRL_ERR_CORRUPT; /* duplicate key */
        have_meta = 1;
        mrl__ckpt_ws(&j);
        if (j.end - j.pos >= 4 && memcmp(j.s + j.pos, "null", 4) == 0) {
          j.pos += 4;
          continue;
        }
        if (!mrl__ckpt_eat(&j, '{')) return MRL_ERR_CORRUPT;
        if (mrl__ckpt_eat(&j, '}')) continue;
        do { /* string -> string */
          mrl_checkpoint_meta_entry *e;
          if (!mrl__ckpt_grow((void **)&c->meta, &c->num_meta, &mcap, sizeof *c->meta))
            return MRL_ERR_OUT_OF_MEMORY;
          e = &c->meta[c->num_meta - 1];
          if (!mrl__ckpt_string(&j, &e->key, &e->key_len) || !mrl__ckpt_eat(&j, ':') ||
              !mrl__ckpt_string(&j, &e->value, &e->value_len))
            return MRL_ERR_CORRUPT;
        } while (mrl__ckpt_eat(&j, ','));
        if (!mrl__ckpt_eat(&j, '}')) return MRL_ERR_CORRUPT;
      } else {
        mrl_checkpoint_tensor *t;
        if (!mrl__ckpt_grow((void **)&c->tensors, &c->num_tensors, &tcap, sizeof *c->tensors))
          return MRL_ERR_OUT_OF_MEMORY;
        t = &c->tensors[c->num_tensors - 1];
        memset(t, 0, sizeof *t);
        t->name = key;
        t->name_len = klen;
        if (!mrl__ckpt_entry(&j, t)) return MRL_ERR_CORRUPT;
      }
    } while (mrl__ckpt_eat(&j, ','));
    if (!mrl__ckpt_eat(&j, '}')) return MRL_ERR_CORRUPT;
  }
  mrl__ckpt_ws(&j);
  if (j.pos != j.end) return MRL_ERR_CORRUPT; /* only whitespace may follow */
  /* sizes: elements and bytes without overflow, whole bytes */
  for (i = 0; i < c->num_tensors; i++) {
    mrl_checkpoint_tensor *t = &c->tensors[i];
    const mrl__ckpt_dtype *dt = mrl__ckpt_dtype_find(t->dtype, strlen(t->dtype));
    uint64_t numel = 1, bits;
    int d;
    for (d = 0; d < t->ndim; d++) {
      if (t->shape[d] != 0 && numel > ~(uint64_t)0 / t->shape[d]) return MRL_ERR_CORRUPT;
      numel *= t->shape[d];
    }
    if (numel > ~(uint64_t)0 / dt->bits) return MRL_ERR_CORRUPT;
    bits = numel * dt->bits;
    if (bits % 8u) return MRL_ERR_CORRUPT;
    t->numel = numel;
    if (t->offsets[1] < t->offsets[0] || t->offsets[1] - t->offsets[0] != bits / 8u)
      return MRL_ERR_CORRUPT;
  }
  /* offsets: sorted, they tile [0, data_size) exactly */
  if (c->num_tensors > 1)
    qsort(c->tensors, (size_t)c->num_tensors, sizeof *c->tensors, mrl__ckpt_cmp_offsets);
  for (i = 0; i < c->num_tensors; i++) {
    mrl_checkpoint_tensor *t = &c->tensors[i];
    if (t->offsets[0] != end) return MRL_ERR_CORRUPT;
    end = t->offsets[1];
  }
  if (end != data_size) return MRL_ERR_CORRUPT;
  for (i = 0; i < c->num_tensors; i++) {
    mrl_checkpoint_tensor *t = &c->tensors[i];
    t->nbytes = (size_t)(t->offsets[1] - t->offsets[0]);
    t->bytes = b + 8 + (size_t)n + (size_t)t->offsets[0];
  }
  /* no duplicate names, no duplicate metadata keys */
  if (c->num_tensors > 1) {
    qsort(c->tensors, (size_t)c->num_tensors, sizeof *c->tensors, mrl__ckpt_cmp_name);
    for (i = 1; i < c->num_tensors; i++)
      if (mrl__ckpt_cmp_name(&c->tensors[i - 1], &c->tensors[i]) == 0) return MRL_ERR_CORRUPT;
  }
  if (c->num_meta > 1) {
    const mrl_checkpoint_meta_entry **idx = (const mrl_checkpoint_meta_entry **)MRL_MALLOC(
        sizeof(mrl_checkpoint_meta_entry *) * (size_t)c->num_meta);
    int dup = 0;
    if (!idx) return MRL_ERR_OUT_OF_MEMORY;
    for (i = 0; i < c->num_meta; i++) idx[i] = &c->meta[i];
    qsort((void *)idx, (size_t)c->num_meta, sizeof *idx, mrl__ckpt_cmp_meta);
    for (i = 1; i < c->num_meta; i++)
      if (mrl__ckpt_cmp_meta(&idx[i - 1], &idx[i]) == 0) dup = 1;
    MRL_FREE((void *)idx);
    if (dup) return MRL_ERR_CORRUPT;
  }
  return MRL_OK;
}

MRL_DEF mrl_result mrl_checkpoint_open_buffer(mrl_checkpoint *c, const void *data, size_t size) {
  mrl_result r;
  if (!c) return MRL_ERR_INVALID_ARGUMENT;
  memset(c, 0, sizeof *c);
  if (!data && size) return MRL_ERR_INVALID_ARGUMENT;
  c->bytes = (const unsigned char *)data;
  c->size = size;
  if ((r = mrl__ckpt_parse(c)) != MRL_OK) mrl_checkpoint_close(c);
  return r;
}

/* The size of a regular file (0: unknown); 0 when the stream is unusable. */
static int mrl__ckpt_size_hint(FILE *f, size_t *size) {
#if defined(MRL__CKPT_POSIX)
  struct stat st; /* not ftell: a directory may report an absurd size */
  *size = 0;
  if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
      (uint64_t)st.st_size < (uint64_t)((size_t)-1))
    *size = (size_t)st.st_size;
  return 1;
#else
  long end = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
  *size = end > 0 && (unsigned long)end < (unsigned long)((size_t)-1) ? (size_t)end : 0;
  return fseek(f, 0, SEEK_SET) == 0;
#endif
}

MRL_DEF mrl_result mrl_checkpoint_open(mrl_checkpoint *c, const char *path) {
  FILE *f;
  unsigned char *buf = NULL;
  size_t len = 0, cap = 0;
  mrl_result r;
  if (!c) return MRL_ERR_INVALID_ARGUMENT;
  memset(c, 0, sizeof *c);
  if (!path || (f = fopen(path, "rb")) == NULL) return MRL_ERR_IO;
  { /* one allocation when the size is known; the loop below still reads to the end */
    size_t hint = 0;
    if (!mrl__ckpt_size_hint(f, &hint)) {
      fclose(f);
      return MRL_ERR_IO;
    }
    /* + 1: reaching the end needs no regrowth; a failed allocation just
     * falls back to growing */
    if (hint > 0 && hint < (size_t)-1 && (buf = (unsigned char *)MRL_MALLOC(hint + 1)) != NULL)
      cap = hint + 1;
  }
  for (;;) { /* read to the end, growing the buffer (files whose size ftell cannot tell) */
    size_t got;
    if (len == cap) {
      size_t ncap = cap ? cap * 2 : 65536;
      unsigned char *nb;
      if (ncap < cap || (nb = (unsigned char *)MRL_REALLOC(buf, ncap)) == NULL) {
        MRL_FREE(buf);
        fclose(f);
        return MRL_ERR_OUT_OF_MEMORY;
      }
      buf = nb;
      cap = ncap;
    }
    got = fread(buf + len, 1, cap - len, f);
    len += got;
    if (got == 0) break;
  }
  if (ferror(f)) {
    MRL_FREE(buf);
    fclose(f);
    return MRL_ERR_IO;
  }
  fclose(f);
  c->owned = buf;
  c->bytes = buf;
  c->size = len;
  if ((r = mrl__ckpt_parse(c)) != MRL_OK) mrl_checkpoint_close(c);
  return r;
}

MRL_DEF const mrl_checkpoint_tensor *mrl_checkpoint_find(const mrl_checkpoint *c,
                                                         const char *name) {
  mrl_checkpoint_tensor key;
  int lo = 0, hi;
  if (!c || !name) return NULL;
  memset(&key, 0, sizeof key);
  key.name = name;
  key.name_len = strlen(name);
  hi = c->num_tensors - 1;
  while (lo <= hi) { /* tensors are sorted by name */
    int mid = lo + (hi - lo) / 2, cmp = mrl__ckpt_cmp_name(&key, &c->tensors[mid]);
    if (cmp == 0) return &c->tensors[mid];
    if (cmp < 0)
      hi = mid - 1;
    else
      lo = mid + 1;
  }
  return NULL;
}

MRL_DEF mrl_result mrl_checkpoint_read_f32(const mrl_checkpoint_tensor *t, float *out,
                                           size_t count) {
  if (!t || (!out && count) || strcmp(t->dtype, "F32") != 0 || t->numel != (uint64_t)count)
    return MRL_ERR_INVALID_ARGUMENT;
  mrl__ckpt_f32_from_le(out, t->bytes, count, mrl__ckpt_host_le());
  return MRL_OK;
}

MRL_DEF const char *mrl_checkpoint_meta(const mrl_checkpoint *c, const char *key) {
  size_t n;
  int i;
  if (!c || !key) return NULL;
  n = strlen(key);
  for (i = 0; i < c->num_meta; i++)
    if (c->meta[i].key_len == n && memcmp(c->meta[i].key, key, n) == 0) return c->meta[i].value;
  return NULL;
}

/* The file tensor for model tensor m (name + suffix), checked: F32, same shape. */
static mrl_result mrl__ckpt_match(const mrl_checkpoint *c, const mrl_param *m, const char *suffix,
                                  const mrl_checkpoint_tensor **out) {
  char name[96];
  const mrl_checkpoint_tensor *t;
  int d;
  *out = NULL;
  snprintf(name, sizeof name, "%s%s", m->name, suffix);
  if ((t = mrl_checkpoint_find(c, name)) == NULL) return MRL_ERR_INVALID_ARGUMENT;
  if (strcmp(t->dtype, "F32") != 0 || t->ndim != m->tensor.ndim) return MRL_ERR_INVALID_ARGUMENT;
  for (d = 0; d < t->ndim; d++)
    if (t->shape[d] != (uint64_t)m->tensor.shape[d]) return MRL_ERR_INVALID_ARGUMENT;
  *out = t;
  return MRL_OK;
}

MRL_DEF mrl_result mrl_checkpoint_apply(const mrl_checkpoint *c, mrl_params *p, int flags) {
  int opt = (flags & MRL_CHECKPOINT_OPTIMIZER) != 0, i, k, native = mrl__ckpt_host_le();
  long long steps = 0;
  unsigned char *used;
  mrl_result r = MRL_OK;
  if (!c || !p || !p->finalized || (flags & ~3)) return MRL_ERR_INVALID_ARGUMENT;
  if (opt) { /* memrl.adam_steps: decimal digits, fits in long long */
    const char *s = mrl_checkpoint_meta(c, "memrl.adam_steps");
    if (!s) return MRL_ERR_INVALID_ARGUMENT;
    if (!*s) return MRL_ERR_CORRUPT;
    for (; *s; s++) {
      if (*s < '0' || *s > '9' || steps > (LLONG_MAX - (*s - '0')) / 10) return MRL_ERR_CORRUPT;
      steps = steps * 10 + (*s - '0');
    }
  }
  used = (unsigned char *)MRL_MALLOC((size_t)c->num_tensors + 1);
  if (!used) return MRL_ERR_OUT_OF_MEMORY;
  memset(used, 0, (size_t)c->num_tensors + 1);
  /* 1. check everything */
  for (i = 0; i < p->count && r == MRL_OK; i++)
    for (k = 0; k < (opt ? 3 : 1) && r == MRL_OK; k++) {
      const mrl_checkpoint_tensor *t;
      r = mrl__ckpt_match(c, &p->items[i], k ? mrl__ckpt_moment_suffix[k - 1] : "", &t);
      if (r == MRL_OK) used[t - c->tensors] = 1;
    }
  if (r == MRL_OK && !(flags & MRL_CHECKPOINT_ALLOW_UNKNOWN)) {
    /* moments are known tensors even when not loaded */
    for (i = 0; i < p->count; i++)
      for (k = 1; k < 3; k++) {
        const mrl_checkpoint_tensor *t;
        if (mrl__ckpt_match(c, &p->items[i], mrl__ckpt_moment_suffix[k - 1], &t) == MRL_OK)
          used[t - c->tensors] = 1;
      }
    for (i = 0; i < c->num_tensors; i++)
      if (!used[i]) r = MRL_ERR_INVALID_ARGUMENT;
  }
  MRL_FREE(used);
  if (r != MRL_OK) return r;
  /* 2. write */
  for (k = 0; k < (opt ? 3 : 1); k++)
    for (i = 0; i < p->count; i++) {
      const mrl_checkpoint_tensor *t;
      float *dst = (k == 0 ? p->values : k == 1 ? p->moment1 : p->moment2) + p->items[i].offset;
      mrl__ckpt_match(c, &p->items[i], k ? mrl__ckpt_moment_suffix[k - 1] : "", &t);
      mrl__ckpt_f32_from_le(dst, t->bytes, (size_t)t->numel, native);
    }
  if (opt) p->adam_steps = steps;
  return MRL_OK;
}

MRL_DEF mrl_result mrl_checkpoint_load_buffer(mrl_params *p, const void *data, size_t size,
                                              int flags) {
  mrl_checkpoint c;
  mrl_result r = mrl_checkpoint_open_buffer(&c, data, size);
  if (r == MRL_OK) r = mrl_checkpoint_apply(&c, p, flags);
  mrl_checkpoint_close(&c);
  return r;
}

MRL_DEF mrl_result mrl_checkpoint_load(mrl_params *p, const char *path, int flags) {
  mrl_checkpoint c;
  mrl_result r = mrl_checkpoint_open(&c, path);
  if (r == MRL_OK) r = mrl_checkpoint_apply(&c, p, flags);
  mrl_checkpoint_close(&c);
  return r;
}

#ifdef __cplusplus
}
#endif
#endif /* MEMRL_NN_IMPLEMENTATION */
