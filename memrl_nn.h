/* memrl_nn.h - parameters, layers, initialisers, optimisers, distributions, checkpoints.
 *
 * Part of memrl. Needs memrl_tensor.h (included here). libc and libm only.
 * Public domain / MIT, see the end of the file.
 *
 * CONTENTS
 *   ENABLING         the one file that defines the implementation
 *   OPTIONS          as memrl_tensor.h
 *   PARAMETERS       one contiguous buffer per model (llm.c layout)
 *   CONVENTIONS      PyTorch's layouts and default initialisations
 *   WHAT IS HERE     layers, optimisers, distributions, heads, attention
 *   OPTIMISER STATE  where the moments live
 *   QUICK START      an MLP trained by Adam
 *   CHECKPOINTS      safetensors files
 *   LICENCE          at the end of the file: public domain or MIT
 *   TAGS: each implementation section carries one tag, written >> and the
 *   name; `grep -n '[>]>lstm' memrl_nn.h` finds that section and nothing else.
 *   The tags in file order:
 *     init params optim lr_schedule linear_layer mlp lstm gru elman rnn_stack rnn_jvp
 *     categorical gaussian tanh_gaussian mixture policy_head heads popart net2net safetensors
 *     encoders attention
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
 *   its gradients and optimiser moments in more of the same layout. Layers declare their tensors
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
 *   GRU: gate order r, z, n, reset gate applied after the hidden matmul;
 *   Elman RNN: tanh or relu. Same layouts ([3H,...], [H,...]) and defaults.
 *   Stacks (mrl_lstm, mrl_gru, mrl_elman) follow num_layers: names
 *   weight_ih_l0, weight_ih_l1, ...; states [num_layers*B, H].
 *   Embedding weight [num, dim], N(0,1). LayerNorm weight ones, bias zeros,
 *   eps 1e-5. Conv2d weight [out,in,kh,kw] and bias [out], both
 *   U(+-1/sqrt(in kh kw)) by default (kaiming_uniform(a=sqrt(5)) and torch's bias rule).
 *   Orthogonal init as torch.nn.init.orthogonal_ (QR of a normal matrix, signs
 *   fixed by diag(R)), biases zero (CleanRL's layer_init).
 *   Xavier and Kaiming inits as torch.nn.init (calculate_gain, fan modes).
 *   Adam: torch.optim.Adam (L2 weight decay added to the gradient, eps added
 *   after the bias-corrected square root). Clipping: clip_grad_norm_ (norm of
 *   the per-tensor 2-norms, coefficient max_norm / (norm + 1e-6), capped at 1).
 *
 * NAMES (a PyTorch state_dict loads without renaming a key)
 *   Every tensor is named as the state_dict of the equivalent torch module
 *   names it: declare each layer under the key prefix its torch module has
 *   (the attribute path, "actor", "network", "encoder.layers.0").
 *   - A layer's tensors are <prefix>.<torch's parameter name>; prefix NULL or
 *     "" declares the layer at the top level ("weight_ih_l0" for a bare
 *     nn.LSTM, "0.weight" for a bare nn.Sequential).
 *   - mrl_mlp is nn.Sequential(Linear, act, Linear, act, ..., Linear): the
 *     linear layers are <prefix>.0, .2, .4, ... (activations hold the odd
 *     slots), or .0, .1, .2 with MRL_ACT_NONE; a Sequential that ends with
 *     its activation is activate_output = 1 (same names). Conv encoders,
 *     deconv decoders, the dueling head's streams and the VAE's MLPs count
 *     slots the same way.
 *   - Recurrent stacks (mrl_lstm/gru/elman, and mrl_*_layer_init) are
 *     nn.LSTM/GRU/RNN: weight_ih_l<k>, weight_hh_l<k>, bias_ih_l<k>,
 *     bias_hh_l<k>. mrl_lstm_cell_init / mrl_gru_cell_init /
 *     mrl_elman_cell_init declare one layer as nn.LSTMCell / GRUCell /
 *     RNNCell: weight_ih, weight_hh, bias_ih, bias_hh.
 *   - Names are kept whole, up to MRL_NAME_MAX - 1 = 1023 bytes (PyTorch's
 *     nested keys are often 100+). A longer, empty or repeated name is
 *     refused at declaration, never cut: mrl_params_add returns -1, the store
 *     keeps the first such failure in status and message, and
 *     mrl_params_finalize returns it (a layer's void init cannot be used by
 *     mistake). Checkpoints read and write names of any length.
 *   - bias=False: mrl_linear_layer_init_bias, mrl_conv2d_config.bias,
 *     mrl_mha_init's bias (the index is then -1).
 *   mrl_params.message says why the last failing declaration, finalize or
 *   checkpoint load failed ("" until one does; a load clears it first).
 *
 * WHAT IS HERE
 *   store        mrl_params_* (add, finalize, find, zero_grad, clip_grad_norm,
 *                copy, polyak, copy_matching, reset_optimizer)
 *   initialisers mrl_init_default / orthogonal / xavier_* / kaiming_*,
 *                mrl_init_gain, mrl_init_fans
 *   layers       mrl_linear_layer (bias optional), mrl_mlp; recurrent layers
 *                with a fused node per sequence, step-by-step cells and
 *                [T,B] sequences with per-step episode_start resets:
 *                mrl_lstm_layer, mrl_gru_layer, mrl_elman_layer (LSTM/GRU/RNN
 *                or *Cell names); multi-layer stacks mrl_lstm, mrl_gru,
 *                mrl_elman
 *   optimisers   mrl_adam_step, mrl_adamw_step, mrl_sgd_step,
 *                mrl_rmsprop_step (torch and TensorFlow forms, centred);
 *                schedules mrl_lr_linear / mrl_lr_cosine / mrl_lr_step
 *   distributions categorical (log-prob, entropy, KL, sample, mode), diagonal
 *                Gaussian, tanh-squashed Gaussian, mixture of Gaussians
 *   policy heads mrl_policy_head for every action space: categorical,
 *                diagonal Gaussian (state-independent or state-dependent
 *                log-std), tanh-squashed Gaussian (SAC), deterministic with
 *                Gaussian or Ornstein-Uhlenbeck noise (DDPG/TD3); forward,
 *                act (no graph, no allocation), env_action, evaluate
 *                (log-prob, entropy), rsample
 *   heads        mrl_dueling_head, mrl_c51_head (+ mrl_c51_project),
 *                mrl_mdn_head; mrl_popart (PopArt value normalisation)
 *   attention    mrl_mha (torch.nn.MultiheadAttention, batch first, with a
 *                detached key/value memory of past steps),
 *                mrl_rel_mha_init / _forward (Transformer-XL relative
 *                positions), masks
 *                mrl_attn_causal_mask / _episode_mask / _key_padding_mask;
 *                positions mrl_sinusoid_fill / mrl_sinusoidal_positions,
 *                mrl_learned_positions
 *   transformer  mrl_transformer_block (= TransformerEncoderLayer, pre-LN
 *                or torch's default post-LN), mrl_gru_gate, mrl_gtrxl_layer, and the GTrXL
 *                stack mrl_gtrxl with a per-layer memory window stepped one
 *                step at a time or run over [T,B] segments with episode starts
 *   surgery      Net2Net: mrl_mlp_widen, mrl_mlp_insert_identity,
 *                mrl_lstm_widen, mrl_net2net_mapping / widen_rows
 *   more layers  mrl_embedding (torch.nn.Embedding, padding_idx),
 *                mrl_layernorm_layer (torch.nn.LayerNorm), mrl_conv2d_layer
 *                (torch.nn.Conv2d: rectangular, bias optional;
 *                + mrl_conv2d_out_size), mrl_conv_encoder (Nature-DQN stack
 *                by default, or any conv stack + optional linear), mrl_vae
 *                (MLP or conv encoder, diagonal Gaussian with log-variance,
 *                reparameterised sample, MLP or deconv decoder, ELBO with
 *                beta and free nats; World Models' V config),
 *                mrl_conv_transpose2d (fused op) + mrl_conv_transpose2d_layer
 *                (torch.nn.ConvTranspose2d), mrl_deconv_decoder
 *
 * OPTIMISER STATE lives in the store's buffers, never in the optimiser:
 *   moment1  Adam/AdamW first moment; SGD and RMSProp momentum buffer
 *   moment2  Adam/AdamW second moment; RMSProp mean square
 *   moment3  centred RMSProp's mean gradient (allocated on first use)
 *   adam_steps  the step count of whichever optimiser runs.
 *   Use one optimiser per store (mrl_params_reset_optimizer to switch).
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
  MRL_INIT_CONSTANT,  /* every element = a */
  MRL_INIT_UNIFORM,   /* U(-a, a) */
  MRL_INIT_NORMAL,    /* N(0, a^2) */
  MRL_INIT_LSTM_BIAS, /* an LSTM bias [4H]: U(-a, a), then b added to the forget quarter */
  /* torch.nn.init's fan-based schemes; fans as torch computes them (see
   * mrl_init_fans). a = gain; for Kaiming b = 1 selects fan_out. */
  MRL_INIT_XAVIER_UNIFORM,  /* U(-s, s), s = gain sqrt(6 / (fan_in + fan_out)) */
  MRL_INIT_XAVIER_NORMAL,   /* N(0, gain^2 2 / (fan_in + fan_out)) */
  MRL_INIT_KAIMING_UNIFORM, /* U(-s, s), s = gain sqrt(3 / fan) */
  MRL_INIT_KAIMING_NORMAL,  /* N(0, gain^2 / fan) */
  MRL_INIT_GRU_BIAS /* a GRU bias [3H] (r, z, n): U(-a, a), then b added to the update gate z */
} mrl_init_kind;

typedef struct mrl_init {
  mrl_init_kind kind;
  float a; /* gain, bound, std or value, by kind */
  float b; /* MRL_INIT_LSTM_BIAS: forget-gate bias; MRL_INIT_GRU_BIAS: update-gate bias */
} mrl_init;

MRL_DEF mrl_init mrl_init_default(void);
MRL_DEF mrl_init mrl_init_orthogonal(float gain);
MRL_DEF mrl_init mrl_init_make(mrl_init_kind kind, float a);

/* torch.nn.init.calculate_gain: linear and sigmoid 1, tanh 5/3, relu sqrt(2),
 * leaky_relu sqrt(2 / (1 + slope^2)) (param = slope; torch's default 0.01
 * is for calculate_gain itself, Kaiming passes its own a), selu 3/4. */
typedef enum mrl_nonlinearity {
  MRL_NL_LINEAR,
  MRL_NL_SIGMOID,
  MRL_NL_TANH,
  MRL_NL_RELU,
  MRL_NL_LEAKY_RELU,
  MRL_NL_SELU
} mrl_nonlinearity;
typedef enum mrl_fan_mode { MRL_FAN_IN, MRL_FAN_OUT } mrl_fan_mode;
MRL_DEF float mrl_init_gain(mrl_nonlinearity nl, float param);
/* torch's _calculate_fan_in_and_fan_out: fan_in = shape[1] * receptive field,
 * fan_out = shape[0] * receptive field (receptive field = product of
 * shape[2..]); a 1-D tensor (torch refuses one) gets fan_in = fan_out = size. */
MRL_DEF void mrl_init_fans(int ndim, const int *shape, int *fan_in, int *fan_out);
/* xavier_uniform_ / xavier_normal_ (Glorot & Bengio 2010) with the given gain. */
MRL_DEF mrl_init mrl_init_xavier_uniform(float gain);
MRL_DEF mrl_init mrl_init_xavier_normal(float gain);
/* kaiming_uniform_ / kaiming_normal_ (He et al. 2015): a is the leaky-relu
 * slope (used only with MRL_NL_LEAKY_RELU); torch's defaults are a = 0,
 * MRL_FAN_IN, MRL_NL_LEAKY_RELU (gain sqrt(2)). */
MRL_DEF mrl_init mrl_init_kaiming_uniform(float a, mrl_fan_mode mode, mrl_nonlinearity nl);
MRL_DEF mrl_init mrl_init_kaiming_normal(float a, mrl_fan_mode mode, mrl_nonlinearity nl);

/* ---- parameter store ---- */
/* Tensor names (see NAMES above) are at most MRL_NAME_MAX - 1 bytes long. */
#define MRL_NAME_MAX 1024
/* Size of mrl_params.message, the reason for the last failure. */
#define MRL_MESSAGE_MAX 512
typedef struct mrl_param {
  const char *name; /* NUL-terminated; in the store's name pool (valid until mrl_params_free) */
  mrl_init init;
  int zero_row;  /* 1 + a row zeroed after the initialiser (nn.Embedding's padding_idx); 0: none */
  size_t offset; /* into every buffer of the store */
  mrl_tensor tensor;
} mrl_param;

/* Size of mrl_params.message, the reason for the last failure. */
#define MRL_MESSAGE_MAX 512
typedef struct mrl_params {
  mrl_param *items;
  int count, capacity;
  size_t total;             /* number of floats */
  float *values, *grads;    /* [total] each */
  float *moment1, *moment2; /* optimiser moments, [total] each (see OPTIMISERS) */
  long long adam_steps;     /* steps taken by the optimiser (whichever it is) */
  int finalized;
  float *moment3; /* centred RMSProp's mean gradient: allocated by its first step */
  char *names;    /* the name pool: every name, NUL-terminated, in declaration order */
  size_t names_size, names_cap;
  mrl_result status;             /* the first declaration failure (finalize returns it) */
  char message[MRL_MESSAGE_MAX]; /* why the last failing call failed ("" until one does) */
} mrl_params;

MRL_DEF void mrl_params_init(mrl_params *p);
/* Declares a tensor; returns its index, or -1 (with a message) when the name
 * is empty, longer than MRL_NAME_MAX - 1 bytes or already declared, when out
 * of memory, or after finalize. A failed declaration before finalize is
 * remembered: mrl_params_finalize then returns it (status) and allocates
 * nothing, so a layer whose init could not report it cannot be used. */
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
/* AdamW (torch.optim.AdamW, Loshchilov & Hutter 2019): decoupled decay,
 * p *= 1 - lr * weight_decay before the Adam step (which then has no L2
 * term). Same moments as Adam. */
MRL_DEF mrl_adam_config mrl_adamw_config_default(void); /* 1e-3, 0.9, 0.999, 1e-8, 0.01 */
MRL_DEF void mrl_adamw_step(mrl_params *p, const mrl_adam_config *cfg);

/* ---- SGD (torch.optim.SGD) ----
 * g = grad + weight_decay * p; with momentum: buf = g on the first step, then
 * buf = momentum * buf + (1 - dampening) * g, and g = buf (or, Nesterov,
 * g + momentum * buf); p -= lr * g. The momentum buffer is moment1. */
typedef struct mrl_sgd_config {
  float lr, momentum, dampening, weight_decay;
  int nesterov; /* needs momentum > 0 and dampening 0, as torch requires */
} mrl_sgd_config;
MRL_DEF mrl_sgd_config mrl_sgd_config_default(void); /* 0.01, 0, 0, 0, 0 */
MRL_DEF void mrl_sgd_step(mrl_params *p, const mrl_sgd_config *cfg);

/* ---- RMSProp ----
 * torch.optim.RMSprop (eps_inside_sqrt = 0):
 *   g = grad + weight_decay * p;  v = alpha v + (1 - alpha) g^2
 *   centred: m = alpha m + (1 - alpha) g,  d = sqrt(v - m^2) + eps;  else d = sqrt(v) + eps
 *   momentum > 0: buf = momentum buf + g / d,  p -= lr buf;  else p -= lr g / d
 * TensorFlow form (eps_inside_sqrt = 1; tf.compat.v1.train.RMSPropOptimizer,
 * used by A3C and IMPALA):
 *   v = v + (1 - alpha)(g^2 - v);  d = sqrt(v + eps)  (centred: sqrt(v - m^2 + eps))
 *   buf = momentum buf + lr g / d;  p -= buf   (lr inside the buffer)
 * and TF starts v at 1 (square_avg_init), torch at 0. Buffers: v in moment2,
 * the momentum buffer in moment1, the centred mean gradient m in moment3
 * (allocated on the first centred step: the only call that can fail). */
typedef struct mrl_rmsprop_config {
  float lr, alpha, eps, weight_decay, momentum;
  int centered;
  int eps_inside_sqrt;   /* 1: the TensorFlow form above */
  float square_avg_init; /* v before the first step: 0 (torch) or 1 (TF) */
} mrl_rmsprop_config;
/* torch's defaults: lr 0.01, alpha 0.99, eps 1e-8, no decay, no momentum, not centred. */
MRL_DEF mrl_rmsprop_config mrl_rmsprop_config_default(void);
/* TF1's defaults: lr 0.001 (TF has no default; this is the common choice),
 * decay (alpha) 0.9, eps 1e-10 inside the root, v starts at 1. IMPALA used
 * lr 0.00048, alpha 0.99, eps 0.1; A3C alpha 0.99, eps 0.1. */
MRL_DEF mrl_rmsprop_config mrl_rmsprop_config_tf(void);
MRL_DEF mrl_result mrl_rmsprop_step(mrl_params *p, const mrl_rmsprop_config *cfg);
/* Zeros every optimiser buffer and the step count (e.g. after surgery or
 * when switching optimiser). */
MRL_DEF void mrl_params_reset_optimizer(mrl_params *p);

/* ---- learning-rate schedules: pure functions of the step ----
 * linear: lr_start -> lr_end over total_steps, then lr_end (torch's LinearLR
 *   with start/end factors folded in: lr_start = base * start_factor).
 * cosine: lr_min + (lr_max - lr_min) (1 + cos(pi step / period)) / 2, torch's
 *   CosineAnnealingLR closed form (T_max = period, eta_min = lr_min; like torch
 *   it keeps oscillating past the period).
 * step: lr0 * gamma^floor(step / step_size) (torch's StepLR). */
MRL_DEF float mrl_lr_linear(float lr_start, float lr_end, long long step, long long total_steps);
MRL_DEF float mrl_lr_cosine(float lr_max, float lr_min, long long step, long long period);
MRL_DEF float mrl_lr_step(float lr0, float gamma, long long step, long long step_size);

/* ---- activations ---- */
typedef enum mrl_activation { MRL_ACT_NONE, MRL_ACT_TANH, MRL_ACT_RELU } mrl_activation;
/* A value outside the enum is a programmer error (it stops with a message,
 * here and in every layer init taking one; a config's field gives
 * MRL_ERR_INVALID_ARGUMENT from its init), never a silent "none". */
MRL_DEF mrl_tensor *mrl_activate(mrl_graph *g, mrl_tensor *x, mrl_activation act);

/* ---- linear layer ---- */
typedef struct mrl_linear_layer {
  mrl_params *params;
  int weight, bias; /* indices in params */
  int in_features, out_features;
} mrl_linear_layer;
MRL_DEF void mrl_linear_layer_init(mrl_linear_layer *l, mrl_params *p, const char *name, int in,
                                   int out, mrl_init init);
/* bias 0: no <name>.bias (torch's bias=False; the index is -1). */
MRL_DEF void mrl_linear_layer_init_bias(mrl_linear_layer *l, mrl_params *p, const char *name,
                                        int in, int out, int bias, mrl_init init);
MRL_DEF mrl_tensor *mrl_linear_layer_forward(const mrl_linear_layer *l, mrl_graph *g,
                                             mrl_tensor *x);
/* act(l(x)) as one node for MRL_ACT_RELU / MRL_ACT_TANH (mrl_linear_relu /
 * mrl_linear_tanh: the same bits as the two ops), l(x) for MRL_ACT_NONE. */
MRL_DEF mrl_tensor *mrl_linear_layer_forward_act(const mrl_linear_layer *l, mrl_graph *g,
                                                 mrl_tensor *x, mrl_activation act);

/* ---- MLP: linear layers with an activation between them ----
 * Named as the nn.Sequential(Linear, act, Linear, act, ..., Linear): with an
 * activation the linear layers are <name>.0, <name>.2, <name>.4, ... (the
 * activations take the odd slots); with MRL_ACT_NONE, <name>.0, .1, .2. */
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
/* The same layer named as torch.nn.LSTMCell: <name>.weight_ih, .weight_hh,
 * .bias_ih, .bias_hh (no _l0; mrl_lstm_layer_init names it as a one-layer
 * nn.LSTM). Likewise mrl_gru_cell_init (nn.GRUCell), mrl_elman_cell_init
 * (nn.RNNCell). */
MRL_DEF void mrl_lstm_cell_init(mrl_lstm_layer *l, mrl_params *p, const char *name, int input,
                                int hidden, mrl_init init, float forget_bias);
/* One fused step. x [B,in], h and c [B,H]; episode_start NULL or [B]: where
 * it is nonzero the row's h and c are zeroed before the step (that step
 * begins a new episode). Writes h' and c'. */
MRL_DEF void mrl_lstm_cell(const mrl_lstm_layer *l, mrl_graph *g, mrl_tensor *x, mrl_tensor *h,
                           mrl_tensor *c, const float *episode_start, mrl_tensor **h_out,
                           mrl_tensor **c_out);
/* Over a time-major sequence: x [T*B, in] (row t*B+b), episode_start NULL or
 * [T*B] (row t*B+b nonzero: the state of env b is zeroed before step t).
 * Returns y [T*B, H]; final state in *h_out, *c_out (either may be NULL). */
MRL_DEF mrl_tensor *mrl_lstm_sequence(const mrl_lstm_layer *l, mrl_graph *g, mrl_tensor *x, int T,
                                      int B, mrl_tensor *h0, mrl_tensor *c0,
                                      const float *episode_start, mrl_tensor **h_out,
                                      mrl_tensor **c_out);

/* ---- GRU (torch.nn.GRU, one layer) ----
 * Gate order r, z, n; weight_ih [3H,in], weight_hh [3H,H], separate bias_ih
 * and bias_hh [3H]; the reset gate multiplies the hidden projection after
 * the matmul: n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),
 * h' = (1 - z) * n + z * h. Default init U(+-1/sqrt(H)) for all four. */
typedef struct mrl_gru_layer {
  mrl_params *params;
  int weight_ih, weight_hh, bias_ih, bias_hh;
  int input_size, hidden_size;
} mrl_gru_layer;
MRL_DEF void mrl_gru_layer_init(mrl_gru_layer *l, mrl_params *p, const char *name, int input,
                                int hidden, mrl_init init);
MRL_DEF void mrl_gru_cell_init(mrl_gru_layer *l, mrl_params *p, const char *name, int input,
                               int hidden, mrl_init init);
/* Over a time-major sequence: x [T*B, in], h0 [B,H], episode_start NULL or
 * [T*B] (nonzero: h is zeroed before step t). One fused node.
 * Returns y [T*B, H]; *h_out (may be NULL) is h_T, a view of y's last block. */
MRL_DEF mrl_tensor *mrl_gru_sequence(const mrl_gru_layer *l, mrl_graph *g, mrl_tensor *x, int T,
                                     int B, mrl_tensor *h0, const float *episode_start,
                                     mrl_tensor **h_out);
/* One step: x [B,in], h [B,H], episode_start NULL or [B]. Returns h' [B,H]. */
MRL_DEF mrl_tensor *mrl_gru_cell(const mrl_gru_layer *l, mrl_graph *g, mrl_tensor *x, mrl_tensor *h,
                                 const float *episode_start);

/* ---- Elman RNN (torch.nn.RNN, one layer) ----
 * h' = act(W_ih x + b_ih + W_hh h + b_hh), act tanh or relu (torch's
 * nonlinearity='tanh' / 'relu'); weight_ih [H,in], weight_hh [H,H], biases
 * [H]; default init U(+-1/sqrt(H)). */
typedef struct mrl_elman_layer {
  mrl_params *params;
  int weight_ih, weight_hh, bias_ih, bias_hh;
  int input_size, hidden_size;
  mrl_activation nonlinearity; /* MRL_ACT_TANH or MRL_ACT_RELU */
} mrl_elman_layer;
MRL_DEF void mrl_elman_layer_init(mrl_elman_layer *l, mrl_params *p, const char *name, int input,
                                  int hidden, mrl_activation nonlinearity, mrl_init init);
MRL_DEF void mrl_elman_cell_init(mrl_elman_layer *l, mrl_params *p, const char *name, int input,
                                 int hidden, mrl_activation nonlinearity, mrl_init init);
/* As mrl_gru_sequence / mrl_gru_cell. */
MRL_DEF mrl_tensor *mrl_elman_sequence(const mrl_elman_layer *l, mrl_graph *g, mrl_tensor *x, int T,
                                       int B, mrl_tensor *h0, const float *episode_start,
                                       mrl_tensor **h_out);
MRL_DEF mrl_tensor *mrl_elman_cell(const mrl_elman_layer *l, mrl_graph *g, mrl_tensor *x,
                                   mrl_tensor *h, const float *episode_start);

/* ---- multi-layer stacks (torch's num_layers) ----
 * Layer k reads layer k-1's outputs; its tensors are named
 * <name>.weight_ih_l<k>, .weight_hh_l<k>, .bias_ih_l<k>, .bias_hh_l<k> as in
 * torch's state_dict, declared layer by layer. States are stacked by layer:
 * h0, c0 and the final states are [L*B, H] (torch's [L, B, H] flattened).
 * episode_start (NULL or [T*B]) resets every layer's state. No inter-layer dropout
 * (torch's default dropout = 0). */
#define MRL_RNN_MAX_LAYERS 8
typedef struct mrl_lstm {
  mrl_lstm_layer layers[MRL_RNN_MAX_LAYERS];
  int num_layers, input_size, hidden_size;
} mrl_lstm;
typedef struct mrl_gru {
  mrl_gru_layer layers[MRL_RNN_MAX_LAYERS];
  int num_layers, input_size, hidden_size;
} mrl_gru;
typedef struct mrl_elman {
  mrl_elman_layer layers[MRL_RNN_MAX_LAYERS];
  int num_layers, input_size, hidden_size;
} mrl_elman;
MRL_DEF void mrl_lstm_init(mrl_lstm *m, mrl_params *p, const char *name, int input, int hidden,
                           int num_layers, mrl_init init, float forget_bias);
MRL_DEF void mrl_gru_init(mrl_gru *m, mrl_params *p, const char *name, int input, int hidden,
                          int num_layers, mrl_init init);
MRL_DEF void mrl_elman_init(mrl_elman *m, mrl_params *p, const char *name, int input, int hidden,
                            int num_layers, mrl_activation nonlinearity, mrl_init init);
/* x [T*B, in] time-major; returns the last layer's y [T*B, H]. For a single
 * step (acting) call with T = 1. */
MRL_DEF mrl_tensor *mrl_lstm_forward(const mrl_lstm *m, mrl_graph *g, mrl_tensor *x, int T, int B,
                                     mrl_tensor *h0, mrl_tensor *c0, const float *episode_start,
                                     mrl_tensor **h_out, mrl_tensor **c_out);
MRL_DEF mrl_tensor *mrl_gru_forward(const mrl_gru *m, mrl_graph *g, mrl_tensor *x, int T, int B,
                                    mrl_tensor *h0, const float *episode_start, mrl_tensor **h_out);
MRL_DEF mrl_tensor *mrl_elman_forward(const mrl_elman *m, mrl_graph *g, mrl_tensor *x, int T, int B,
                                      mrl_tensor *h0, const float *episode_start,
                                      mrl_tensor **h_out);
/* mrl_graph_jvp's rule lookup for tapes with this header's fused recurrences:
 * the LSTM, GRU and Elman nodes (exact tangents through time) and GTrXL's
 * GRU gate, then every rule of memrl_tensor.h (mrl_jvp_rule). Pass it to
 * mrl_graph_jvp. */
MRL_DEF mrl_jvp_fn mrl_nn_jvp_rule(const mrl_node *node);

/* ---- categorical distribution over rows of normalised log-probabilities ----
 * (log_probs = mrl_log_softmax(logits)) */
MRL_DEF mrl_tensor *mrl_categorical_log_prob(mrl_graph *g, mrl_tensor *log_probs,
                                             const int *actions);
MRL_DEF mrl_tensor *mrl_categorical_entropy(mrl_graph *g, mrl_tensor *log_probs); /* [B] */
/* Sampling and the mode from one row of logits (no graph, no allocation). */
MRL_DEF int mrl_categorical_sample(const float *logits, int n, mrl_rng *rng);
MRL_DEF int mrl_categorical_mode(const float *logits, int n);

/* KL(p || q) per row [B] from rows of normalised log-probabilities:
 * mrl_kl_categorical with MRL_LOSS_NONE (memrl_tensor.h), named for the
 * distributions API. */
MRL_DEF mrl_tensor *mrl_categorical_kl(mrl_graph *g, mrl_tensor *log_p, mrl_tensor *log_q);

/* ---- diagonal Gaussian (torch.distributions.Independent(Normal, 1)) ----
 * mean [B,D]; log_std [B,D], or [D] for a state-independent std (CleanRL's
 * continuous PPO). Results are per row: [B]. */
/* Reparameterised sample mean + exp(log_std) * eps, eps ~ N(0, I) from rng:
 * gradients reach mean and log_std. [B,D]. */
MRL_DEF mrl_tensor *mrl_gaussian_sample(mrl_graph *g, mrl_tensor *mean, mrl_tensor *log_std,
                                        mrl_rng *rng);
/* sum_d -((x - mean) / std)^2 / 2 - log_std - log(2 pi) / 2. x [B,D]. */
MRL_DEF mrl_tensor *mrl_gaussian_log_prob(mrl_graph *g, mrl_tensor *mean, mrl_tensor *log_std,
                                          mrl_tensor *x);
/* sum_d log_std + (1 + log(2 pi)) / 2: [B] (or [1] for a [D] log_std). */
MRL_DEF mrl_tensor *mrl_gaussian_entropy(mrl_graph *g, mrl_tensor *log_std);
/* KL(p || q) = sum_d log(sq/sp) + (sp^2 + (mp - mq)^2) / (2 sq^2) - 1/2. log_std_q
 * must broadcast against log_std_p (same shape, or [D]). [B] (mrl_kl_normal
 * with MRL_LOSS_NONE). */
MRL_DEF mrl_tensor *mrl_gaussian_kl(mrl_graph *g, mrl_tensor *mean_p, mrl_tensor *log_std_p,
                                    mrl_tensor *mean_q, mrl_tensor *log_std_q);

/* ---- tanh-squashed Gaussian (SAC, Haarnoja et al. 2018) ----
 * a = tanh(u), u ~ N(mean, std). log p(a) = log N(u) - sum_d log(1 - tanh(u)^2),
 * with log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), stable for any u
 * (torch's TanhTransform). */
/* Elementwise 2 (log 2 - u - softplus(-2u)), a fused node (derivative -2 tanh u). */
MRL_DEF mrl_tensor *mrl_tanh_log_det(mrl_graph *g, mrl_tensor *u);
/* log p(tanh(u)) from the pre-squash u [B,D] (no atanh of a saturated action): [B]. */
MRL_DEF mrl_tensor *mrl_tanh_gaussian_log_prob(mrl_graph *g, mrl_tensor *mean, mrl_tensor *log_std,
                                               mrl_tensor *u);
/* Reparameterised a = tanh(mean + std eps) [B,D]; *log_prob (may be NULL)
 * gets its log-probability [B]. */
MRL_DEF mrl_tensor *mrl_tanh_gaussian_sample(mrl_graph *g, mrl_tensor *mean, mrl_tensor *log_std,
                                             mrl_rng *rng, mrl_tensor **log_prob);

/* ---- mixture of diagonal Gaussians (MDN; torch's MixtureSameFamily) ----
 * logits [N,K]; mean and log_std [N, K*D], component k in columns k*D..k*D+D-1;
 * x [N,D]. World Models' MDN-RNN mixes each output dimension separately: use
 * N = B*D rows with D = 1. */
/* log p(x) [N] = logsumexp_k(log_softmax(logits)_k + log N(x; mean_k, std_k)),
 * the logsumexp as a_j - log_softmax(a)_j with j the row's largest a. */
MRL_DEF mrl_tensor *mrl_mixture_log_prob(mrl_graph *g, mrl_tensor *logits, mrl_tensor *mean,
                                         mrl_tensor *log_std, mrl_tensor *x);
/* The per-component log-densities [N,K] (one fused node). */
MRL_DEF mrl_tensor *mrl_mixture_component_log_prob(mrl_graph *g, mrl_tensor *mean,
                                                   mrl_tensor *log_std, mrl_tensor *x);
/* One draw from one row (no graph, no allocation): picks k from
 * softmax(logits / temperature), then out[d] = mean_kd + std_kd sqrt(temperature)
 * eps (World Models' temperature; 1 samples the mixture itself). Returns k. */
MRL_DEF int mrl_mixture_sample(const float *logits, const float *mean, const float *log_std, int K,
                               int D, float temperature, mrl_rng *rng, float *out);

/* ---- policy heads: one per action space ----
 * The last layer(s) of an actor and the distribution they parameterise, for
 * every on- and off-policy algorithm (PPO, A2C, IMPALA, REINFORCE: act +
 * evaluate; SAC: rsample of the tanh head; DDPG/TD3: the deterministic
 * head). Three float layouts travel between the calls:
 *   dist [N, P]      forward's output (P = mrl_policy_head_param_dim)
 *   raw  [N, R]      what act writes, a rollout stores and evaluate reads
 *                    (R = mrl_policy_head_raw_dim)
 *   env  [N, E]      what the environment receives (mrl_policy_head_env_action)
 * Kinds (the defaults are those of the CleanRL file named with each):
 *   CATEGORICAL     logits = Linear(F, A); raw = the index (a float).
 *   GAUSSIAN        mean = Linear(F, D), log_std a state-independent
 *                   parameter [D] initialised to log_std_init
 *                   (ppo_continuous_action.py's actor_logstd); raw = the
 *                   unclipped sample, env = raw clipped to [low, high].
 *   GAUSSIAN_STATE  log_std = clamp(Linear(F, D), log_std_min, log_std_max).
 *   TANH_GAUSSIAN   SAC (sac_continuous_action.py): log_std = log_std_min +
 *                   (log_std_max - log_std_min) (tanh(Linear(F, D)) + 1) / 2;
 *                   raw = the pre-squash u, env = tanh(u) scale + bias with
 *                   scale = (high - low) / 2, bias = (high + low) / 2.
 *                   log p = log N(u) - sum_d log(1 - tanh(u)^2) - sum_d log
 *                   scale_d (torch's TransformedDistribution with TanhTransform
 *                   and AffineTransform, evaluated at u so nothing saturates).
 *                   Its entropy has no closed form: evaluate returns
 *                   -log_prob, the one-sample estimate Stable-Baselines3 uses.
 *   DETERMINISTIC   DDPG/TD3 (td3_continuous_action.py): env = tanh(Linear(F,
 *                   D)) scale + bias plus exploration noise in env units:
 *                   Gaussian N(0, (noise_std scale)^2), or scale * x with x
 *                   Ornstein-Uhlenbeck, x += theta (-x) dt + sigma sqrt(dt)
 *                   N(0, 1) per step (Lillicrap et al. 2016; the new x is
 *                   used, as Stable-Baselines3 does), then clipped to [low,
 *                   high] (TD3 stores the clipped action); raw = that action.
 * Bounds: NULL means unbounded for the Gaussian kinds (an infinite bound,
 * as mrl_env gives for an unbounded box, means the same), [-1, 1] for the
 * tanh and deterministic kinds, which need finite low < high.
 * Random draws, in a fixed order: act takes one uniform per row (categorical)
 * or one normal per action element, row-major (every other kind); greedy
 * draws nothing. rsample draws one normal per element, row-major, so act and
 * rsample from equal rng states draw the same noise. */
typedef enum mrl_policy_kind {
  MRL_POLICY_CATEGORICAL,    /* discrete: logits from a linear layer */
  MRL_POLICY_GAUSSIAN,       /* diagonal Gaussian, state-independent log-std [D] */
  MRL_POLICY_GAUSSIAN_STATE, /* diagonal Gaussian, clamped log-std from a second linear layer */
  MRL_POLICY_TANH_GAUSSIAN,  /* tanh-squashed Gaussian (SAC) */
  MRL_POLICY_DETERMINISTIC   /* DDPG/TD3 actor with exploration noise */
} mrl_policy_kind;
typedef enum mrl_noise_kind { MRL_NOISE_GAUSSIAN, MRL_NOISE_OU } mrl_noise_kind;
#define MRL_POLICY_MAX_ACTION_DIM 64
typedef struct mrl_policy_head_config {
  mrl_policy_kind kind;
  int num_actions; /* categorical: A >= 1 (the default 0 must be set) */
  int action_dim;  /* continuous: D in 1..MRL_POLICY_MAX_ACTION_DIM (default 0: set it) */
  const float *action_low, *action_high; /* [D] each, copied at init; NULL: see Bounds */
  mrl_init init;      /* the output layer(s): PyTorch's default; e.g. orthogonal(0.01) for PPO */
  float log_std_init; /* MRL_POLICY_GAUSSIAN: 0 */
  float log_std_min, log_std_max;  /* -5, 2 (CleanRL SAC) */
  mrl_noise_kind noise;            /* deterministic: Gaussian */
  float noise_std;                 /* 0.1 (TD3's exploration_noise), times scale */
  float ou_theta, ou_sigma, ou_dt; /* 0.15, 0.2, 1e-2 (DDPG) */
} mrl_policy_head_config;
MRL_DEF mrl_policy_head_config mrl_policy_head_config_default(mrl_policy_kind kind);
typedef struct mrl_policy_head {
  mrl_policy_kind kind;
  mrl_params *params;
  mrl_linear_layer mean;    /* logits, mean, or the deterministic pre-tanh action */
  mrl_linear_layer log_std; /* GAUSSIAN_STATE and TANH_GAUSSIAN */
  int log_std_param;        /* GAUSSIAN: index of <name>.log_std [D]; else -1 */
  int in_features, num_actions, action_dim;
  int param_dim, raw_dim, env_dim;
  float low[MRL_POLICY_MAX_ACTION_DIM], high[MRL_POLICY_MAX_ACTION_DIM];
  float scale[MRL_POLICY_MAX_ACTION_DIM], bias[MRL_POLICY_MAX_ACTION_DIM];
  float log_scale_sum; /* sum_d log scale_d (tanh head's log-prob) */
  int unit_affine;     /* scale 1 and bias 0 everywhere: the affine step is skipped */
  float log_std_min, log_std_max;
  mrl_noise_kind noise;
  float noise_std, ou_theta, ou_sigma, ou_dt;
  char error[192]; /* why init rejected its config ("" after success) */
} mrl_policy_head;
/* Declares its tensors under name: categorical and deterministic
 * "<name>.weight", "<name>.bias" (one linear); Gaussian kinds "<name>.mean.*"
 * plus "<name>.log_std" [D] (GAUSSIAN) or "<name>.log_std.*" (a linear).
 * MRL_ERR_INVALID_ARGUMENT, with the reason in h->error and nothing declared,
 * for a bad config: a count or dimension out of range, low > high, NaN or
 * (tanh, deterministic) infinite bounds, non-finite or inverted log-std or
 * noise settings, an unknown kind or initialiser, a name too long for the
 * store, or a finalized store. MRL_ERR_OUT_OF_MEMORY undoes its declarations. */
MRL_DEF mrl_result mrl_policy_head_init(mrl_policy_head *h, mrl_params *p, const char *name,
                                        int in_features, const mrl_policy_head_config *cfg);
MRL_DEF int mrl_policy_head_param_dim(const mrl_policy_head *h); /* A, 2D or D */
MRL_DEF int mrl_policy_head_raw_dim(const mrl_policy_head *h);   /* 1 (the index) or D */
MRL_DEF int mrl_policy_head_env_dim(const mrl_policy_head *h);   /* 1 or D */
/* features [N, in_features] -> dist [N, P]: logits (categorical), [mean |
 * log_std] (Gaussian kinds; log_std already clamped or squashed, GAUSSIAN's
 * parameter broadcast to every row with its gradient intact), or the pre-tanh
 * action (deterministic). */
MRL_DEF mrl_tensor *mrl_policy_head_forward(const mrl_policy_head *h, mrl_graph *g,
                                            mrl_tensor *features);
/* Acting, no graph, no heap allocation: dist [n, P] (forward's floats) ->
 * raw_actions [n, raw_dim] and log_probs [n] (may be NULL; zeros for the
 * deterministic head). greedy 1: argmax, the mean, u = mean (env action
 * tanh(mean) scale + bias), no noise. noise_state [n, D]: each row's OU state
 * (NULL unless the deterministic head with MRL_NOISE_OU acts non-greedily;
 * zero it where an episode starts: mrl_policy_head_noise_reset). */
MRL_DEF void mrl_policy_head_act(const mrl_policy_head *h, const float *dist, int n, int greedy,
                                 mrl_rng *rng, float *noise_state, float *raw_actions,
                                 float *log_probs);
/* raw [n, raw_dim] -> env_actions [n, env_dim]: the index as a float;
 * Gaussian kinds clipped to [low, high] (CleanRL and SB3 clip when sending);
 * tanh: tanh(u) scale + bias (clipped too, against rounding past a bound);
 * deterministic: clipped. Element by element, so env_actions may be raw
 * itself (raw_dim equals env_dim for every kind). */
MRL_DEF void mrl_policy_head_env_action(const mrl_policy_head *h, const float *raw, int n,
                                        float *env_actions);
/* Zeros the OU state [n, D] of the rows whose episode_start is nonzero (every
 * row when episode_start is NULL). Nothing for a NULL state or a categorical head. */
MRL_DEF void mrl_policy_head_noise_reset(const mrl_policy_head *h, float *noise_state, int n,
                                         const float *episode_start);
/* Training: log_prob [N] and entropy [N] of raw_actions [N, raw_dim] under
 * dist [N, P], recorded on g with gradients to dist (so to the layers and
 * log_std). Either output pointer may be NULL. Tanh head: entropy = -log_prob
 * (see above). Deterministic: both set to NULL. A categorical index outside
 * 0..A-1 stops as a shape error does. */
MRL_DEF void mrl_policy_head_evaluate(const mrl_policy_head *h, mrl_graph *g, mrl_tensor *dist,
                                      const float *raw_actions, mrl_tensor **log_prob,
                                      mrl_tensor **entropy);
/* Reparameterised action with gradients (SAC's actor loss, DDPG's
 * deterministic action): Gaussian kinds mean + std eps (unclipped, eps from
 * rng), tanh: tanh(mean + std eps) scale + bias, deterministic: tanh(mean)
 * scale + bias (rng unused, *log_prob NULL). *log_prob (may be NULL) [N].
 * Returns [N, D]. A categorical head has none: it stops as a shape error. */
MRL_DEF mrl_tensor *mrl_policy_head_rsample(const mrl_policy_head *h, mrl_graph *g,
                                            mrl_tensor *dist, mrl_rng *rng, mrl_tensor **log_prob);

/* ---- heads ---- */

/* Dueling Q head (Wang et al. 2016): separate value and advantage streams,
 * Q = V + A - mean_a(A). Each stream is an MLP over the features with
 * hidden_size units (ReLU) when hidden_size > 0, else one linear layer.
 * Tensors: <name>.value.{0,2}.*, <name>.advantage.{0,2}.* (nn.Sequential's
 * indices; .0 alone without a hidden layer). */
typedef struct mrl_dueling_head {
  mrl_mlp value, advantage;
  int num_actions;
} mrl_dueling_head;
MRL_DEF void mrl_dueling_head_init(mrl_dueling_head *h, mrl_params *p, const char *name,
                                   int in_features, int hidden_size, int num_actions,
                                   mrl_init init);
/* x [B,F] -> Q [B,A]. */
MRL_DEF mrl_tensor *mrl_dueling_head_forward(const mrl_dueling_head *h, mrl_graph *g,
                                             mrl_tensor *x);
/* The combination alone, one fused node: value [B,1], advantage [B,A] -> [B,A]. */
MRL_DEF mrl_tensor *mrl_dueling_combine(mrl_graph *g, mrl_tensor *value, mrl_tensor *advantage);

/* Categorical distributional head (C51, Bellemare et al. 2017): for each
 * action a distribution over num_atoms atoms z_i = v_min + i dz,
 * dz = (v_max - v_min) / (num_atoms - 1); the paper's values are 51 atoms
 * on [-10, 10]. One linear layer <name> to A*N logits. */
typedef struct mrl_c51_head {
  mrl_linear_layer linear;
  int num_actions, num_atoms;
  float v_min, v_max;
} mrl_c51_head;
MRL_DEF void mrl_c51_head_init(mrl_c51_head *h, mrl_params *p, const char *name, int in_features,
                               int num_actions, int num_atoms, float v_min, float v_max,
                               mrl_init init);
/* x [B,F] -> log-probabilities [B, A*N], normalised over the atoms of each
 * action (action a's atoms in columns a*N..a*N+N-1). */
MRL_DEF mrl_tensor *mrl_c51_head_forward(const mrl_c51_head *h, mrl_graph *g, mrl_tensor *x);
/* q[b,a] = sum_i exp(log_probs[b, a*N+i]) z_i (no graph). */
MRL_DEF void mrl_c51_q_values(const mrl_c51_head *h, const float *log_probs, int B, float *q);
/* z_i for i < num_atoms. */
MRL_DEF void mrl_c51_support(float v_min, float v_max, int num_atoms, float *z);
/* Projection of the distributional Bellman target onto the support (the
 * paper's Algorithm 1): each atom j of next_probs [B,N] moves to
 * Tz = clamp(r + discount z_j, v_min, v_max) and its mass splits between the
 * two neighbouring atoms in proportion to closeness (all of it to one atom
 * when Tz hits it exactly). discounts [B] = gamma^n (0 at a terminal step).
 * Writes target [B,N]; each row sums to the row of next_probs. */
MRL_DEF void mrl_c51_project(const float *next_probs, const float *rewards, const float *discounts,
                             int B, int num_atoms, float v_min, float v_max, float *target);
/* Cross-entropy -sum_i target[b,i] log p_i(s_b, actions[b]): [B]. */
MRL_DEF mrl_tensor *mrl_c51_loss(const mrl_c51_head *h, mrl_graph *g, mrl_tensor *log_probs,
                                 const int *actions, const float *target);

/* Mixture-density head (World Models' MDN-RNN, Ha & Schmidhuber 2018): for
 * each of out_dim outputs a mixture of num_mixtures univariate Gaussians.
 * Three linear layers <name>.pi, <name>.mu, <name>.log_sigma, each to
 * out_dim*K, output d's components in columns d*K..d*K+K-1. */
typedef struct mrl_mdn_head {
  mrl_linear_layer pi, mu, log_sigma;
  int out_dim, num_mixtures;
} mrl_mdn_head;
MRL_DEF void mrl_mdn_head_init(mrl_mdn_head *h, mrl_params *p, const char *name, int in_features,
                               int out_dim, int num_mixtures, mrl_init init);
/* x [B,F] -> logits, mean, log_std, each [B*out_dim, K] (row b*out_dim+d). */
MRL_DEF void mrl_mdn_head_forward(const mrl_mdn_head *h, mrl_graph *g, mrl_tensor *x,
                                  mrl_tensor **logits, mrl_tensor **mean, mrl_tensor **log_std);
/* One draw per output from the forward's tensors (World Models' temperature,
 * see mrl_mixture_sample): out [B*out_dim], i.e. [B, out_dim]. No graph. */
MRL_DEF void mrl_mdn_head_sample(const mrl_mdn_head *h, const mrl_tensor *logits,
                                 const mrl_tensor *mean, const mrl_tensor *log_std,
                                 float temperature, mrl_rng *rng, float *out);
/* log p(y | x) [B] = sum_d log sum_k pi_dk N(y_d; mu_dk, sigma_dk); y [B, out_dim]. */
MRL_DEF mrl_tensor *mrl_mdn_head_log_prob(const mrl_mdn_head *h, mrl_graph *g, mrl_tensor *x,
                                          mrl_tensor *y);

/* ---- PopArt: adaptive target normalisation that preserves outputs ----
 * van Hasselt, Guez, Hessel, Mnih, Silver (2016), "Learning values across
 * many orders of magnitude"; the multi-task form of Hessel, Soyer, Espeholt,
 * Czarnecki, Schmitt, van Hasselt (2019), "Multi-task deep reinforcement
 * learning with PopArt": one normalised value n_k(x) per task k, the last
 * linear layer's row k, and the unnormalised value v_k = sigma_k n_k + mu_k.
 * Per task, running moments of the value targets G with step size beta:
 *   mu_k <- (1 - beta) mu_k + beta mean(G),  nu_k <- (1 - beta) nu_k + beta mean(G^2),
 *   sigma_k = sqrt(nu_k - mu_k^2) clipped to [sigma_min, sigma_max]
 * (the means over the targets of task k in the batch; a task absent from the
 * batch keeps its statistics). ART: every statistics update rescales row k
 * of the layer, w_k' = sigma_k / sigma_k' w_k and
 * b_k' = (sigma_k b_k + mu_k - mu_k') / sigma_k', so sigma' n' + mu' = sigma n + mu
 * for every input (to float rounding: the rescale runs in double). POP: the
 * value loss is then taken on normalised targets (G - mu_k') / sigma_k', and
 * policy-gradient advantages are divided by sigma_k (Hessel et al.).
 * Defaults (Hessel et al.): beta 3e-4, sigma in [1e-4, 1e6], mu 0, nu 1
 * (sigma 1: the layer's outputs start as values). The optimiser's moments
 * of the rescaled rows are left as they are, as in both papers. */
typedef struct mrl_popart {
  int num_tasks;
  double beta, sigma_min, sigma_max;
  double *mu, *nu; /* [num_tasks]: first and second moments of the targets */
} mrl_popart;
/* num_tasks >= 1, beta in (0, 1] (3e-4); MRL_ERR_INVALID_ARGUMENT or
 * MRL_ERR_OUT_OF_MEMORY otherwise (the object is then safe to free). */
MRL_DEF mrl_result mrl_popart_init(mrl_popart *p, int num_tasks, float beta);
MRL_DEF void mrl_popart_free(mrl_popart *p);
MRL_DEF float mrl_popart_sigma(const mrl_popart *p, int task);
MRL_DEF float mrl_popart_mu(const mrl_popart *p, int task);
/* Updates the statistics of the tasks present in n targets (tasks[i] the task
 * of targets[i]; tasks NULL: all task 0) and rescales the rows of layer (a
 * linear layer of out_features == num_tasks in params, with a bias) so that
 * its denormalised outputs are unchanged. layer NULL: statistics only. */
MRL_DEF void mrl_popart_update(mrl_popart *p, mrl_params *params, const mrl_linear_layer *layer,
                               const float *targets, const int *tasks, int n);
/* out[i] = (x[i] - mu) / sigma of task tasks[i] (NULL: task 0); out may be x. */
MRL_DEF void mrl_popart_normalize(const mrl_popart *p, const float *x, const int *tasks, int n,
                                  float *out);
/* out[i] = sigma x[i] + mu of task tasks[i] (NULL: task 0); out may be x. */
MRL_DEF void mrl_popart_denormalize(const mrl_popart *p, const float *x, const int *tasks, int n,
                                    float *out);

/* ---- network surgery (Net2Net, Chen et al. 2016) ----
 * Function-preserving growth: the bigger network computes the same outputs,
 * so training continues from where it was (as OpenAI Five did across
 * architecture changes). Declare the new model in a new parameter store
 * (same layer names, new sizes), finalize it, then fill it from the old one:
 * mrl_params_copy_matching for the tensors that did not change, and the
 * functions below for those that did. A widened unit j copies unit
 * mapping[j]; the weights reading a copied unit are divided by its number
 * of copies. Copies stay symmetric under training until something breaks
 * the tie (Net2Net adds small noise; add it yourself if you want it). */
/* Copies every tensor of src into dst's tensor of the same name and shape;
 * returns how many were copied. */
MRL_DEF int mrl_params_copy_matching(mrl_params *dst, const mrl_params *src);
/* mapping[j] = j for j < old_width, a uniformly drawn old unit for the rest. */
MRL_DEF void mrl_net2net_mapping(int old_width, int new_width, mrl_rng *rng, int *mapping);
/* dst[r, j] = src[r, mapping[j]] for r < rows: widens a recurrent state
 * [rows, old_width] to [rows, new_width] so a widened LSTM continues from it. */
MRL_DEF void mrl_net2net_widen_rows(const float *src, int rows, int old_width, const int *mapping,
                                    int new_width, float *dst);
/* dst is src's MLP with hidden layer `layer` (the output of layers[layer],
 * 0 <= layer < num_layers - 1) widened to dst's width; mapping has that
 * many entries. Fills every layer of dst. Any activation works. */
MRL_DEF mrl_result mrl_mlp_widen(mrl_mlp *dst, const mrl_mlp *src, int layer, const int *mapping);
/* Net2DeeperNet: dst is src with one more square layer at index `position`
 * (1 <= position < src's num_layers: between two of src's layers, after an
 * activation), set to the identity; src's layers fill the others. Preserving when act(act(z)) =
 * act(z): ReLU or none; a tanh MLP returns MRL_ERR_INVALID_ARGUMENT. */
MRL_DEF mrl_result mrl_mlp_insert_identity(mrl_mlp *dst, const mrl_mlp *src, int position);
/* Widens an LSTM's hidden units (every gate, the recurrent weights' rows and
 * columns) and the input columns of the linear layer that reads h (next and
 * src_next may be NULL when nothing does). Widen the carried h and c with
 * mrl_net2net_widen_rows. */
MRL_DEF mrl_result mrl_lstm_widen(mrl_lstm_layer *dst, const mrl_lstm_layer *src,
                                  const int *mapping, mrl_linear_layer *next,
                                  const mrl_linear_layer *src_next);

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
 * Extra tensors (mrl_checkpoint_extra): state that is not a parameter (an
 * agent's normaliser statistics, RNG, environment snapshot) follows the
 * parameters as 1-D tensors whose names begin with "__"; loading into an
 * mrl_params skips every "__" tensor, and mrl_checkpoint_read reads one.
 *
 * Saving is atomic: the file is written as "<path>.tmp.<unique>", flushed,
 * fsync'ed (POSIX; _commit on Windows), closed and renamed over <path> (on
 * POSIX the directory is fsync'ed too). A failed or interrupted save leaves
 * the previous checkpoint as it was; a process killed mid-save may leave its
 * temporary file behind, never a damaged <path>. The next save to <path>
 * (POSIX) removes such leftovers: files named exactly
 * "<path>.tmp.<pid>.<hex>.<n>" whose process <pid> no longer exists
 * (kill(pid, 0) fails with ESRCH; never this process's, nor a live or
 * foreign one's) and that have not changed for MRL_CHECKPOINT_STALE_SECONDS
 * (60; define it to change it), so a save running concurrently, here or on
 * another machine sharing the directory, keeps its file.
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
 * the model, name by name (a PyTorch state_dict saved as it is loads into
 * a model declared under PyTorch's names, see NAMES; names of any length):
 * every parameter present with a floating dtype and the same shape (so
 * rank <= 4), and no tensor the model lacks unless MRL_CHECKPOINT_ALLOW_UNKNOWN
 * (the moments "<name>.adam_m/v" of its parameters always count as known).
 * F32 loads as it is; F16 and BF16 (most published checkpoints) convert to
 * float32 exactly (F16 subnormals, infinities and NaNs included, NaNs
 * quieted as IEEE 754 converts them), F64 rounds to nearest (beyond float32's
 * range: +-inf), all as torch's .float(); integer and other dtypes are
 * refused. mrl_params.message names the tensor that is missing, unknown, of
 * another dtype or of another shape (with both shapes).
 * The values themselves: a parameter that is NaN or infinite, an Adam
 * moment that is, or a negative second moment (a mean of squares) is
 * MRL_ERR_CORRUPT, since loading it would silently poison every later
 * output and update; p->message names the tensor and the element. A
 * diverged model can still be loaded for inspection with
 * MRL_CHECKPOINT_ALLOW_NON_FINITE (parameter values only; moments are
 * always checked). Saving writes whatever the model holds.
 * Only when all of that holds is anything written into the model: a failed
 * load leaves it untouched. A load holds the whole file in memory while it
 * checks it. Results: MRL_ERR_IO (cannot open, read,
 * write or rename), MRL_ERR_CORRUPT (not a valid safetensors file),
 * MRL_ERR_INVALID_ARGUMENT (valid, but not this model: a missing, unexpected,
 * differently shaped or non-floating tensor; or a bad argument),
 * MRL_ERR_OUT_OF_MEMORY. Files are always little-endian: big-endian hosts
 * swap bytes on save and load. */
#define MRL_CHECKPOINT_MAX_HEADER 100000000u /* the reference parser's limit */
#define MRL_CHECKPOINT_MAX_DIMS 8
#define MRL_CHECKPOINT_MAX_DEPTH 64
#ifndef MRL_CHECKPOINT_STALE_SECONDS /* see "Saving" above */
#define MRL_CHECKPOINT_STALE_SECONDS 60
#endif

/* Flags for loading. */
#define MRL_CHECKPOINT_OPTIMIZER 1        /* also load Adam moments and step count (required) */
#define MRL_CHECKPOINT_ALLOW_UNKNOWN 2    /* ignore tensors the model lacks (default: mismatch) */
#define MRL_CHECKPOINT_ALLOW_NON_FINITE 4 /* load NaN/Inf parameter values (default: corrupt) */

/* Writes `bytes` bytes to f; returns how many it wrote (fewer: failure). */
typedef size_t (*mrl_checkpoint_write_fn)(const void *data, size_t bytes, FILE *f, void *user);

/* A 1-D non-parameter tensor to store: name begins with "__"; dtype "F32",
 * "F64", "U8", "I64" or "U64"; count elements at data (host byte order). */
typedef struct mrl_checkpoint_extra {
  const char *name, *dtype;
  const void *data;
  uint64_t count;
} mrl_checkpoint_extra;
/* One extra, for filling arrays of them: x[k++] = mrl_checkpoint_extra_of(...). */
static inline mrl_checkpoint_extra mrl_checkpoint_extra_of(const char *name, const char *dtype,
                                                           const void *data, uint64_t count) {
  mrl_checkpoint_extra e;
  e.name = name;
  e.dtype = dtype;
  e.data = data;
  e.count = count;
  return e;
}

typedef struct mrl_checkpoint_options {
  int save_optimizer;          /* also save Adam moments and step count */
  const char *config;          /* stored as memrl.config; NULL: none */
  const char *const *metadata; /* num_metadata pairs: key0, value0, key1, value1, ... */
  int num_metadata;
  mrl_checkpoint_write_fn write; /* file saves write through this (to count bytes, throttle,
                                    inject failures); NULL: fwrite */
  void *write_user;
  const mrl_checkpoint_extra *extras; /* num_extras tensors after the parameters */
  int num_extras;
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
/* Copies a floating tensor (F32, F16, BF16 or F64, converted as a load
 * converts) of exactly count elements into out as float32 (host byte order). */
MRL_DEF mrl_result mrl_checkpoint_read_f32(const mrl_checkpoint_tensor *t, float *out,
                                           size_t count);
/* Copies a tensor of the given dtype (one of mrl_checkpoint_extra's) and
 * exactly count elements into out, host byte order; MRL_ERR_INVALID_ARGUMENT
 * when the dtype or count differ. */
MRL_DEF mrl_result mrl_checkpoint_read(const mrl_checkpoint_tensor *t, const char *dtype, void *out,
                                       size_t count);
/* The metadata value of key, or NULL. */
MRL_DEF const char *mrl_checkpoint_meta(const mrl_checkpoint *c, const char *key);
/* Checks the checkpoint against the model, then copies its values (and with
 * MRL_CHECKPOINT_OPTIMIZER its Adam moments and step count) into p. Without
 * that flag the model's moments and step count are left as they are. */
MRL_DEF mrl_result mrl_checkpoint_apply(const mrl_checkpoint *c, mrl_params *p, int flags);

/* ---- embedding, layernorm, conv encoders, VAE ---- */

/* Embedding (torch.nn.Embedding): a table <name>.weight [num_embeddings, dim],
 * default init N(0, 1). No max_norm. mrl_embedding_init_padding is torch's
 * padding_idx (negative counts from the end, as torch): that row is zeroed
 * after the initialiser and gets no gradient (a loaded value is used as is). */
typedef struct mrl_embedding {
  mrl_params *params;
  int weight; /* index in params */
  int num_embeddings, embedding_dim;
  int padding_idx; /* -1: none */
} mrl_embedding;
MRL_DEF void mrl_embedding_init(mrl_embedding *e, mrl_params *p, const char *name,
                                int num_embeddings, int embedding_dim, mrl_init init);
/* padding_idx outside [-num_embeddings, num_embeddings) is a declaration
 * failure (mrl_params_finalize returns it, with the message). */
MRL_DEF void mrl_embedding_init_padding(mrl_embedding *e, mrl_params *p, const char *name,
                                        int num_embeddings, int embedding_dim, int padding_idx,
                                        mrl_init init);
/* ids[n] (each in [0, num_embeddings), else it stops like a wrong shape) ->
 * [n, dim]; backward adds into the picked rows (mrl_index_select). The ids
 * are copied, so the array may change after the call. */
MRL_DEF mrl_tensor *mrl_embedding_forward(const mrl_embedding *e, mrl_graph *g, const int *ids,
                                          int n);

/* Layer normalisation layer (torch.nn.LayerNorm(dim), over the last
 * dimension): <name>.weight ones and <name>.bias zeros, eps 1e-5 by default.
 * elementwise_affine 0 declares no tensors (weight = bias = -1). */
typedef struct mrl_layernorm_layer {
  mrl_params *params;
  int weight, bias; /* indices in params, -1 without the affine part */
  int dim;
  float eps;
} mrl_layernorm_layer;
MRL_DEF void mrl_layernorm_layer_init(mrl_layernorm_layer *l, mrl_params *p, const char *name,
                                      int dim, float eps, int elementwise_affine);
/* x [..., dim] -> the same shape (mrl_layernorm). */
MRL_DEF mrl_tensor *mrl_layernorm_layer_forward(const mrl_layernorm_layer *l, mrl_graph *g,
                                                mrl_tensor *x);

/* 2-D convolution layer (torch.nn.Conv2d): <name>.weight [out, in, kh, kw],
 * <name>.bias [out] (none with bias = 0, torch's bias=False; index -1).
 * Default init as torch: weight kaiming_uniform(a = sqrt(5)) =
 * U(+-1/sqrt(fan_in)), bias U(+-1/sqrt(fan_in)), fan_in = in kh kw. Any other
 * init sets the weight (e.g. orthogonal(sqrt 2), CleanRL's Atari layer_init,
 * on the [out, in kh kw] flattening) and zeros the bias.
 * mrl_conv2d_layer_init: a square kernel, stride and padding, with bias;
 * mrl_conv2d_layer_init_config: any of torch's kernel_size=(kh, kw),
 * stride=(sh, sw), padding=(ph, pw), bias. */
typedef struct mrl_conv2d_layer {
  mrl_params *params;
  int weight, bias; /* indices in params (bias -1: none) */
  int in_channels, out_channels, kernel_size, stride, padding; /* kernel_h, stride_h, pad_h */
  int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
} mrl_conv2d_layer;
MRL_DEF void mrl_conv2d_layer_init(mrl_conv2d_layer *l, mrl_params *p, const char *name,
                                   int in_channels, int out_channels, int kernel_size, int stride,
                                   int padding, mrl_init init);
typedef struct mrl_conv2d_config {
  int in_channels, out_channels; /* required (> 0) */
  int kernel_h, kernel_w;        /* required (> 0) */
  int stride_h, stride_w;        /* 1 */
  int pad_h, pad_w;              /* 0 */
  int bias;                      /* 1 */
  mrl_init init;                 /* torch's default */
} mrl_conv2d_config;
/* torch.nn.Conv2d's defaults; channels and kernel 0 (to be set). */
MRL_DEF mrl_conv2d_config mrl_conv2d_config_default(void);
/* MRL_ERR_INVALID_ARGUMENT (nothing declared; p->message names the field)
 * when a size is out of range. */
MRL_DEF mrl_result mrl_conv2d_layer_init_config(mrl_conv2d_layer *l, mrl_params *p,
                                                const char *name, const mrl_conv2d_config *cfg);
/* x [N, in, H, W] -> [N, out, OH, OW] (mrl_conv2d). */
MRL_DEF mrl_tensor *mrl_conv2d_layer_forward(const mrl_conv2d_layer *l, mrl_graph *g,
                                             mrl_tensor *x);
/* Output length along one axis: (in + 2 padding - kernel) / stride + 1 (floor,
 * as torch), or 0 when the kernel does not fit the padded input. */
MRL_DEF int mrl_conv2d_out_size(int in, int kernel_size, int stride, int padding);

/* Convolutional encoder for pixel observations: conv layers each followed by
 * the activation, flatten (C, H, W order, torch's nn.Flatten), then an
 * optional linear layer (followed by the activation when activate_linear).
 * Tensor names are those of the obvious torch.nn.Sequential of
 * [Conv2d, act] * L, Flatten, Linear, act: with an activation the convs are
 * <name>.0, <name>.2, ... <name>.(2L-2) and the linear <name>.(2L+1);
 * without one, <name>.0 ... <name>.(L-1) and <name>.(L+1). The Nature-DQN
 * encoder (Mnih et al. 2015) is mrl_conv_encoder_config_default(): on 4
 * stacked 84x84 frames, 32 8x8 stride 4, 64 4x4 stride 2, 64 3x3 stride 1,
 * ReLU, flatten (64 x 7 x 7 = 3136), linear 512, ReLU; CleanRL's
 * QNetwork/Agent trunk has the same names (network.0 ... network.7). Inputs
 * are used as given: divide pixels by 255 yourself. */
#define MRL_CONV_MAX_LAYERS 8
typedef struct mrl_conv_encoder_config {
  int in_channels, in_height, in_width;
  int num_layers; /* 1 .. MRL_CONV_MAX_LAYERS */
  int channels[MRL_CONV_MAX_LAYERS], kernels[MRL_CONV_MAX_LAYERS];
  int strides[MRL_CONV_MAX_LAYERS], paddings[MRL_CONV_MAX_LAYERS];
  mrl_activation activation;
  int linear_out;      /* 0: no final linear, the output is the flattened features */
  int activate_linear; /* apply the activation after the final linear (Nature: 1) */
  mrl_init init;       /* for every conv and the linear (default: torch's) */
} mrl_conv_encoder_config;
/* Nature DQN on [4, 84, 84] with torch's default init. */
MRL_DEF mrl_conv_encoder_config mrl_conv_encoder_config_default(void);
typedef struct mrl_conv_encoder {
  mrl_conv2d_layer convs[MRL_CONV_MAX_LAYERS];
  mrl_linear_layer linear;
  int num_layers, has_linear, activate_linear;
  mrl_activation activation;
  int in_channels, in_height, in_width;
  int conv_channels, conv_height, conv_width; /* the last conv's output */
  int flat_features;                          /* conv_channels * conv_height * conv_width */
  int out_features;                           /* linear_out, or flat_features */
} mrl_conv_encoder;
/* Declares the layers; computes every output size from the input HxW.
 * MRL_ERR_INVALID_ARGUMENT (nothing declared) when the config does not fit:
 * a size or count out of range, or a kernel larger than its padded input. */
MRL_DEF mrl_result mrl_conv_encoder_init(mrl_conv_encoder *e, mrl_params *p, const char *name,
                                         const mrl_conv_encoder_config *cfg);
/* x [N, C, H, W], or [N, C*H*W] (flat observations, viewed as images) ->
 * [N, out_features]. */
MRL_DEF mrl_tensor *mrl_conv_encoder_forward(const mrl_conv_encoder *e, mrl_graph *g,
                                             mrl_tensor *x);

/* Transposed 2-D convolution (torch.nn.functional.conv_transpose2d, groups
 * 1, dilation 1), a fused node: x [N, C, H, W], w [C, O, KH, KW] (torch's
 * layout: input channels first), b [O] or NULL -> [N, O, OH, OW] with
 * OH = (H - 1) stride - 2 pad + KH + output_padding (likewise OW). It is the
 * gradient of mrl_conv2d with respect to its input: each input pixel adds
 * w[c] times itself into a KHxKW window of the output. Runs as one gemm per
 * chunk of images (as many as make about 512 output columns, at least one)
 * into a [O*KH*KW, chunk*H*W] scratch buffer from the arena, then col2im.
 * output_padding < stride (as torch requires). */
MRL_DEF mrl_tensor *mrl_conv_transpose2d(mrl_graph *g, mrl_tensor *x, mrl_tensor *w, mrl_tensor *b,
                                         int stride, int pad, int output_padding);
/* Output length along one axis: (in - 1) stride - 2 padding + kernel +
 * output_padding, or 0 when that is below 1 or the arguments are invalid. */
MRL_DEF int mrl_conv_transpose2d_out_size(int in, int kernel_size, int stride, int padding,
                                          int output_padding);
/* Layer (torch.nn.ConvTranspose2d, square kernel, bias=True):
 * <name>.weight [in, out, k, k], <name>.bias [out]. Default init as torch:
 * both U(+-1/sqrt(fan_in)) with torch's fan_in for this layout, out k k
 * (the weight's second dimension times the kernel area). Another init sets
 * the weight and zeros the bias. */
typedef struct mrl_conv_transpose2d_layer {
  mrl_params *params;
  int weight, bias; /* indices in params */
  int in_channels, out_channels, kernel_size, stride, padding, output_padding;
} mrl_conv_transpose2d_layer;
MRL_DEF void mrl_conv_transpose2d_layer_init(mrl_conv_transpose2d_layer *l, mrl_params *p,
                                             const char *name, int in_channels, int out_channels,
                                             int kernel_size, int stride, int padding,
                                             int output_padding, mrl_init init);
MRL_DEF mrl_tensor *mrl_conv_transpose2d_layer_forward(const mrl_conv_transpose2d_layer *l,
                                                       mrl_graph *g, mrl_tensor *x);

/* Deconvolutional decoder (World Models' V decoder): a linear layer from
 * in_features to in_channels*in_height*in_width (optionally followed by the
 * activation), viewed as [in_channels, in_height, in_width] (nn.Unflatten),
 * then transposed convolutions with the activation between them and none
 * after the last (its outputs are logits or means). Names follow the
 * torch.nn.Sequential of Linear, [act], Unflatten, [ConvTranspose2d, act]...:
 * the linear is <name>.0; the first transposed conv is <name>.2 (<name>.3
 * when activate_linear), the next ones every 2 (every 1 without an
 * activation). mrl_deconv_decoder_config_default() is World Models' decoder
 * (Ha & Schmidhuber 2018): z 32 -> dense 1024 = [1024, 1, 1], then 128 5x5,
 * 64 5x5, 32 6x6, 3 6x6, all stride 2, ReLU: [3, 64, 64]. The original code's
 * dense layer has no activation (activate_linear 0). */
typedef struct mrl_deconv_decoder_config {
  int in_features;
  int in_channels, in_height, in_width;
  int activate_linear;
  int num_layers; /* 1 .. MRL_CONV_MAX_LAYERS */
  int channels[MRL_CONV_MAX_LAYERS], kernels[MRL_CONV_MAX_LAYERS];
  int strides[MRL_CONV_MAX_LAYERS], paddings[MRL_CONV_MAX_LAYERS];
  int output_paddings[MRL_CONV_MAX_LAYERS];
  mrl_activation activation;
  mrl_init init;
} mrl_deconv_decoder_config;
MRL_DEF mrl_deconv_decoder_config mrl_deconv_decoder_config_default(void);
typedef struct mrl_deconv_decoder {
  mrl_linear_layer linear;
  mrl_conv_transpose2d_layer layers[MRL_CONV_MAX_LAYERS];
  int num_layers, activate_linear;
  mrl_activation activation;
  int in_features, in_channels, in_height, in_width;
  int out_channels, out_height, out_width; /* the last layer's output */
  int out_features;                        /* out_channels * out_height * out_width */
} mrl_deconv_decoder;
/* MRL_ERR_INVALID_ARGUMENT (nothing declared) when the config does not fit. */
MRL_DEF mrl_result mrl_deconv_decoder_init(mrl_deconv_decoder *d, mrl_params *p, const char *name,
                                           const mrl_deconv_decoder_config *cfg);
/* z [B, in_features] -> [B, out_channels, out_height, out_width]. */
MRL_DEF mrl_tensor *mrl_deconv_decoder_forward(const mrl_deconv_decoder *d, mrl_graph *g,
                                               mrl_tensor *z);

/* Variational autoencoder (Kingma & Welling 2014; World Models' V, Ha &
 * Schmidhuber 2018). The encoder (an MLP, or a conv encoder as above) maps x
 * to features, two linear layers to the diagonal Gaussian q(z|x) given by its
 * MEAN and LOG-VARIANCE (logvar = log sigma^2, as the papers and torch's VAE
 * example), z = mean + exp(logvar / 2) eps with eps ~ N(0, I), and an MLP
 * decoder maps z back to input_dim outputs: the mean of a Gaussian
 * likelihood (reconstruction = squared error) or the logits of a Bernoulli
 * one (BCE with logits). Per batch:
 *   recon = (1/B) sum_b sum_d l(x_bd, out_bd)      (l = squared error or BCE)
 *   kl    = (1/B) sum_b max(KL(q(z|x_b) || N(0, I)), kl_free_nats)   (mrl_kl_normal)
 *   loss  = recon + beta kl                        (the negative ELBO at beta = 1
 *                                                   and kl_free_nats = 0;
 *                                                   beta-VAE, Higgins et al. 2017)
 * kl_free_nats is World Models' KL tolerance (0.5 per latent dimension:
 * 16 nats for 32): a per-example floor below which the KL gets no gradient.
 * sigmoid_output squashes the decoder's output into (0, 1) before the
 * Gaussian likelihood's squared error, as World Models does (ignored for the
 * Bernoulli likelihood, whose decoder outputs logits).
 * Names: <name>.encoder.* (an MLP: .0, .2, ... as mrl_mlp; conv: as mrl_conv_encoder),
 * <name>.fc_mu, <name>.fc_logvar, <name>.decoder.* (an MLP mirroring the
 * hidden sizes: .0, .2, ... as mrl_mlp; deconv: as mrl_deconv_decoder). */
typedef enum mrl_vae_likelihood {
  MRL_VAE_BERNOULLI, /* decoder outputs logits; BCE with logits */
  MRL_VAE_GAUSSIAN   /* decoder outputs the mean; squared error (unit variance up to constants) */
} mrl_vae_likelihood;
#define MRL_VAE_MAX_HIDDEN 6
typedef struct mrl_vae_config {
  int input_dim; /* MLP encoder input; set from the conv config when use_conv */
  int latent_dim;
  int num_hidden; /* 0 .. MRL_VAE_MAX_HIDDEN hidden layers in encoder and decoder MLPs */
  int hidden[MRL_VAE_MAX_HIDDEN];
  mrl_activation activation;
  int use_conv;                     /* 1: encoder = mrl_conv_encoder over conv (its features) */
  mrl_conv_encoder_config conv;     /* the decoder then outputs C*H*W values */
  int use_deconv;                   /* 1: decoder = mrl_deconv_decoder over deconv */
  mrl_deconv_decoder_config deconv; /* in_features is set to latent_dim; its output
                                       size must equal input_dim (C*H*W) */
  mrl_vae_likelihood likelihood;
  int sigmoid_output; /* Gaussian likelihood only: compare sigmoid(decoder output) */
  float beta;         /* KL weight */
  float kl_free_nats; /* per-example KL floor (0: off) */
  mrl_init init;
} mrl_vae_config;
/* torch's VAE example (MNIST): 784 - 400 - 20, ReLU, Bernoulli, beta 1,
 * default init; no conv. */
MRL_DEF mrl_vae_config mrl_vae_config_default(void);
/* World Models' V (Ha & Schmidhuber 2018) on [3, 64, 64] frames: conv
 * encoder 32, 64, 128, 256 filters 4x4 stride 2, ReLU, flatten 256x2x2 =
 * 1024 (no linear); latent 32; the decoder of mrl_deconv_decoder_config_default;
 * Gaussian likelihood on sigmoid outputs (sum of squares), beta 1, KL
 * tolerance 16 nats. 4.3M parameters. */
MRL_DEF mrl_vae_config mrl_vae_config_world_models(void);
typedef struct mrl_vae {
  mrl_mlp encoder_mlp;
  mrl_conv_encoder encoder_conv;
  mrl_linear_layer fc_mu, fc_logvar;
  mrl_mlp decoder;
  mrl_deconv_decoder decoder_deconv;
  mrl_vae_config cfg;
  int feature_dim; /* the encoder's output width */
} mrl_vae;
/* MRL_ERR_INVALID_ARGUMENT when the config does not fit (nothing declared). */
MRL_DEF mrl_result mrl_vae_init(mrl_vae *v, mrl_params *p, const char *name,
                                const mrl_vae_config *cfg);
/* x [B, input_dim] (or [B,C,H,W] with a conv encoder) -> mean, logvar [B, latent]. */
MRL_DEF void mrl_vae_encode(const mrl_vae *v, mrl_graph *g, mrl_tensor *x, mrl_tensor **mean,
                            mrl_tensor **logvar);
/* z = mean + exp(logvar / 2) * eps, eps [B, latent] given (no gradient). */
MRL_DEF mrl_tensor *mrl_vae_reparameterize(mrl_graph *g, mrl_tensor *mean, mrl_tensor *logvar,
                                           mrl_tensor *eps);
/* z [B, latent] -> [B, input_dim] (MLP) or [B, C, H, W] (deconv): logits or
 * the mean, by likelihood (before sigmoid_output's squashing). */
MRL_DEF mrl_tensor *mrl_vae_decode(const mrl_vae *v, mrl_graph *g, mrl_tensor *z);
typedef struct mrl_vae_output {
  mrl_tensor *mean, *logvar, *z, *recon; /* recon: the decoder's output for z */
  mrl_tensor *recon_loss, *kl, *loss;    /* [1] each, as defined above */
} mrl_vae_output;
/* The whole pass and the ELBO terms. eps: B*latent standard-normal draws;
 * NULL draws them from rng (B*latent calls of mrl_rng_normal, row-major);
 * both NULL: z = mean (deterministic, for evaluation). The loss terms
 * compare with x itself (flattened). Any tensor is NULL when the arena is full. */
MRL_DEF mrl_vae_output mrl_vae_forward(const mrl_vae *v, mrl_graph *g, mrl_tensor *x,
                                       const float *eps, mrl_rng *rng);
/* The ELBO terms alone, from the decoder's output recon [B, D], the target x
 * (same size) and the posterior: fills recon_loss, kl and loss of *out. */
MRL_DEF void mrl_vae_loss(const mrl_vae_config *cfg, mrl_graph *g, mrl_tensor *recon, mrl_tensor *x,
                          mrl_tensor *mean, mrl_tensor *logvar, mrl_vae_output *out);

/* ---- attention, transformer, GTrXL ----
 * Layout: batch first, x [B, T, E] (torch's batch_first=True); B*T rows of E.
 * Masks are float tensors, 1 = may attend, 0 = may not (the opposite of
 * torch's boolean attn_mask / key_padding_mask, where True blocks), of any
 * shape that broadcasts to the scores [B, H, T, K], K = M + T keys: [T, K]
 * for one mask shared by the batch, [B, 1, T, K] per sequence, [B, 1, 1, K]
 * for key padding. Combine masks with mrl_mul. A query with every key masked
 * gets a zero context (mrl_softmax's rule; its output is out_proj's bias)
 * where torch gives NaN.
 * Memory (Transformer-XL, Dai et al. 2019): mem [B, M, E] holds cached past
 * steps; the keys and values are built from [mem ; x] (M + T rows, memory
 * first, oldest first), the queries from x only, and the memory is detached
 * (no gradient reaches it). Query i sits at position M + i. */

/* Multi-head attention, torch.nn.MultiheadAttention (kdim = vdim = E):
 * name.in_proj_weight [3E, E] (rows q, k, v), name.in_proj_bias [3E],
 * name.out_proj.weight [E, E], name.out_proj.bias [E]; scores scaled by
 * 1/sqrt(E/H). Init as torch: xavier_uniform in_proj, zero biases,
 * out_proj.weight U(+-1/sqrt(E)). bias = 0 declares no biases (torch's
 * bias=False; the index fields are then -1). */
typedef struct mrl_mha {
  mrl_params *params;
  int in_proj_weight, in_proj_bias, out_proj_weight, out_proj_bias;
  int r_net_weight, r_w_bias, r_r_bias; /* relative attention only, else -1 */
  int embed_dim, num_heads, head_dim, relative;
} mrl_mha;
MRL_DEF void mrl_mha_init(mrl_mha *m, mrl_params *p, const char *name, int embed_dim, int num_heads,
                          int bias);
/* x [B,T,E], mem [B,M,E] or NULL, mask or NULL -> [B,T,E]. */
MRL_DEF mrl_tensor *mrl_mha_forward(const mrl_mha *m, mrl_graph *g, mrl_tensor *x, mrl_tensor *mem,
                                    mrl_tensor *mask);

/* Transformer-XL relative multi-head attention (Dai et al. 2019, eq. in
 * section 3.3), no projection biases as in the paper's code:
 *   score(i, j) = [(q_i + u) . k_j  +  (q_i + v) . (W_R R_{i-j})] / sqrt(d_head)
 * (terms a + c and b + d), with R the sinusoid of the distance i - j in
 * Transformer-XL's layout [sin(d f) | cos(d f)], f_k = 10000^(-2k/E) (E even).
 * The b + d term is computed for every distance once and then indexed by
 * i - j, which is exactly the paper's "relative shift". Parameters:
 * name.in_proj_weight [3E, E] (xavier_uniform), name.r_net.weight [E, E]
 * (W_R, xavier_uniform), name.r_w_bias (u) and name.r_r_bias (v) [H, E/H]
 * (N(0, 0.02^2), the paper code's init_std), name.out_proj.weight [E, E]
 * (U(+-1/sqrt(E))). Always causal: the causal mask is applied inside and
 * multiplied by `mask` when given. */
MRL_DEF void mrl_rel_mha_init(mrl_mha *m, mrl_params *p, const char *name, int embed_dim,
                              int num_heads);
MRL_DEF mrl_tensor *mrl_rel_mha_forward(const mrl_mha *m, mrl_graph *g, mrl_tensor *x,
                                        mrl_tensor *mem, mrl_tensor *mask);

/* Masks (constants in the arena, no gradient).
 * causal [T, M+T]: query i sees keys j <= M + i.
 * episode [B, 1, T, M+T]: causal, and query t of sequence b sees no key
 *   before the latest episode start at or before t: episode_start [B*T]
 *   (batch-major here: row b*T+t, nonzero where step t begins an episode;
 *   NULL: none); mem_valid [B] (NULL: all
 *   M) counts how many of the newest memory slots belong to the episode
 *   running when the segment starts (older slots are masked).
 * key padding [B, 1, 1, K]: valid [B*K], 1 for a real key, 0 for padding
 *   (NULL: all real). */
MRL_DEF mrl_tensor *mrl_attn_causal_mask(mrl_graph *g, int T, int M);
MRL_DEF mrl_tensor *mrl_attn_episode_mask(mrl_graph *g, int B, int T, int M,
                                          const float *episode_start, const int *mem_valid);
MRL_DEF mrl_tensor *mrl_attn_key_padding_mask(mrl_graph *g, int B, int K, const float *valid);

/* Positions.
 * Sinusoidal (Vaswani et al. 2017): PE[p, 2i] = sin(p / 10000^(2i/E)),
 *   PE[p, 2i+1] = cos(p / 10000^(2i/E)), for p = start .. start+T-1.
 *   mrl_sinusoid_fill writes [T, E] floats; mrl_sinusoidal_positions returns
 *   them as a constant [T, E] tensor (add it to x [B,T,E] with mrl_add).
 * Learned absolute: name.weight [max_len, E] initialised N(0, 1) like
 *   nn.Embedding; forward returns x + weight[start : start+T] for x [.., T, E]. */
MRL_DEF void mrl_sinusoid_fill(float *out, int T, int E, int start);
MRL_DEF mrl_tensor *mrl_sinusoidal_positions(mrl_graph *g, int T, int E, int start);
typedef struct mrl_learned_positions {
  mrl_params *params;
  int weight;
  int max_len, embed_dim;
} mrl_learned_positions;
MRL_DEF void mrl_learned_positions_init(mrl_learned_positions *l, mrl_params *p, const char *name,
                                        int max_len, int embed_dim);
MRL_DEF mrl_tensor *mrl_learned_positions_forward(const mrl_learned_positions *l, mrl_graph *g,
                                                  mrl_tensor *x, int start);

/* Transformer block. mrl_transformer_block_init: the pre-layernorm block
 * (Xiong et al. 2020), the structure of
 * torch.nn.TransformerEncoderLayer(norm_first=True, batch_first=True,
 * dropout=0) with the same state_dict names under `name`:
 *   x = x + self_attn(norm1(x));  x = x + linear2(act(linear1(norm2(x))))
 * self_attn.*, linear1 [F, E], linear2 [E, F], norm1/norm2 .weight/.bias (ones,
 * zeros; eps 1e-5). act: ReLU or GELU (erf). With mem [B,M,E] the keys and
 * values are norm1([mem ; x]) (Transformer-XL's cached layer inputs). */
typedef enum mrl_ffn_activation { MRL_FFN_RELU, MRL_FFN_GELU } mrl_ffn_activation;
typedef struct mrl_transformer_block {
  mrl_params *params;
  mrl_mha self_attn;
  mrl_linear_layer linear1, linear2;
  int norm1_weight, norm1_bias, norm2_weight, norm2_bias;
  int embed_dim, ff_dim;
  mrl_ffn_activation activation;
  float eps;
  int norm_first; /* 1: pre-LN (above); 0: post-LN (below) */
} mrl_transformer_block;
/* A pre-LN block (norm_first 1), eps 1e-5. */
MRL_DEF void mrl_transformer_block_init(mrl_transformer_block *b, mrl_params *p, const char *name,
                                        int embed_dim, int num_heads, int ff_dim,
                                        mrl_ffn_activation act);
/* Any block TransformerEncoderLayer builds (dropout 0, batch_first, bias):
 * norm_first 0 is torch's default, the post-LN block of Vaswani et al. 2017:
 *   x = norm1(x + self_attn(x));  x = norm2(x + linear2(act(linear1(x))))
 * (with mem the keys and values come from [mem ; x], un-normalised). Same
 * tensors and names as the pre-LN block. */
typedef struct mrl_transformer_block_config {
  int embed_dim, num_heads;      /* d_model, nhead: required (embed_dim % num_heads == 0) */
  int ff_dim;                    /* dim_feedforward: 2048 */
  mrl_ffn_activation activation; /* relu */
  int norm_first;                /* 0 */
  float layer_norm_eps;          /* 1e-5 */
} mrl_transformer_block_config;
/* torch.nn.TransformerEncoderLayer's defaults; embed_dim and num_heads 0 (to be set). */
MRL_DEF mrl_transformer_block_config mrl_transformer_block_config_default(void);
/* MRL_ERR_INVALID_ARGUMENT (nothing declared; p->message names the field)
 * when the config does not fit. */
MRL_DEF mrl_result mrl_transformer_block_init_config(mrl_transformer_block *b, mrl_params *p,
                                                     const char *name,
                                                     const mrl_transformer_block_config *cfg);
MRL_DEF mrl_tensor *mrl_transformer_block_forward(const mrl_transformer_block *b, mrl_graph *g,
                                                  mrl_tensor *x, mrl_tensor *mem, mrl_tensor *mask);

/* GRU-type gating layer of GTrXL (Parisotto et al. 2019, eq. for g^(l)):
 *   r = s(W_r y + U_r x),  z = s(W_z y + U_z x - b_g),
 *   h = tanh(W_g y + U_g (r * x)),  out = (1 - z) * x + z * h
 * x: the residual stream, y: the submodule's output. name.W [3E, E] stacks
 * W_r, W_z, W_g; name.U [3E, E] stacks U_r, U_z, U_g (no other biases, as in
 * the paper); both U(+-1/sqrt(E)) (torch's Linear default). name.bg [E] starts
 * at gate_bias: b_g > 0 makes z small, so the layer starts near the identity
 * (the paper's point; 2 is the usual setting, e.g. RLlib's init_gru_gate_bias). */
typedef struct mrl_gru_gate {
  mrl_params *params;
  int W, U, bg;
  int dim;
} mrl_gru_gate;
MRL_DEF void mrl_gru_gate_init(mrl_gru_gate *gt, mrl_params *p, const char *name, int dim,
                               float gate_bias);
MRL_DEF mrl_tensor *mrl_gru_gate_forward(const mrl_gru_gate *gt, mrl_graph *g, mrl_tensor *x,
                                         mrl_tensor *y);

/* One GTrXL layer (Parisotto et al. 2019, section 3 equations):
 *   Ybar = RelMHA(LN1([StopGrad(mem) ; x]))    (queries from LN1(x))
 *   Y    = gate1(x, ReLU(Ybar))
 *   Ebar = linear2(ReLU(linear1(LN2(Y))))      (position-wise MLP)
 *   out  = gate2(Y, ReLU(Ebar))
 * The ReLU sits on each submodule's output, before its gate, as in the
 * paper. Names: name.attn.* (mrl_rel_mha_init), name.norm1/norm2.weight/.bias,
 * name.linear1/linear2.weight/.bias, name.gate1/gate2.{W,U,bg}; layernorm eps 1e-5.
 * x [B,T,E], mem [B,M,E] or NULL, mask as mrl_rel_mha_forward. */
typedef struct mrl_gtrxl_layer {
  mrl_params *params;
  mrl_mha attn;
  mrl_gru_gate gate1, gate2;
  mrl_linear_layer linear1, linear2;
  int norm1_weight, norm1_bias, norm2_weight, norm2_bias;
  int embed_dim, ff_dim;
} mrl_gtrxl_layer;
MRL_DEF void mrl_gtrxl_layer_init(mrl_gtrxl_layer *l, mrl_params *p, const char *name,
                                  int embed_dim, int num_heads, int ff_dim, float gate_bias);
MRL_DEF mrl_tensor *mrl_gtrxl_layer_forward(const mrl_gtrxl_layer *l, mrl_graph *g, mrl_tensor *x,
                                            mrl_tensor *mem, mrl_tensor *mask);

/* A stack of GTrXL layers with a per-layer memory of the last mem_len layer
 * inputs (a shifting window), stepped one step at a time for acting (T = 1)
 * or run over a [T, B] segment for training; both give the same outputs
 * when the window covers the same past.
 * The state of one environment is a flat vector of mrl_gtrxl_state_dim()
 * = 5 + L*E*(4*M + 3) floats (L layers, E embed_dim, M mem_len):
 *   [0]                the number of valid memory slots (steps since the
 *                      episode started, capped at M);
 *   [1, 1 + L*M*E)     for each layer M rows of E, oldest first: that layer's
 *                      inputs at past steps (Transformer-XL's cached hidden
 *                      states; slots older than the episode hold zeros);
 *   C = 1 + L*M*E      the acting cache, derived from the above and the
 *                      parameters: [C, C+4) a tag (a 64-bit hash of the
 *                      parameters it was built from, in four 16-bit chunks
 *                      plus one; 0 = no cache), then per layer the keys
 *                      W_k LN1(input) of the M slots [M+1][E] (row M: room
 *                      for the step's own key), then per layer the values
 *                      W_v LN1(input) transposed [E][M+1], then per layer the
 *                      position keys W_R R_{M-j} of slot j = 0..M [M+1][E]
 *                      (data-independent: the distances of the slots to the
 *                      new query are fixed in a shifting window).
 * The memory itself is the inputs: training segments read only them and
 * write state_out with no cache (tag 0). A no-grad step (T = 1 on a no-grad
 * graph: acting) uses the cache, projecting only the new row (O(1)
 * projections, O(M) attention), and first rebuilds an environment's cache
 * from its inputs when the tag differs from the current parameters' (after
 * any parameter change: optimiser step, load, copy, or a user's own write),
 * so a stale cache is never used. Code that writes the inputs region itself
 * must zero the tag (or reset the state). A zeroed state is an empty memory
 * (mrl_gtrxl_state_reset). */
#define MRL_GTRXL_MAX_LAYERS 16
typedef struct mrl_gtrxl_config {
  int embed_dim, num_heads, num_layers, ff_dim, mem_len;
  float gate_bias;
} mrl_gtrxl_config;
/* embed 64, heads 4, layers 2, ff 256, mem_len 64, gate_bias 2 (a small RL
 * size; the paper's DMLab agent is 12 layers of 256). */
MRL_DEF mrl_gtrxl_config mrl_gtrxl_config_default(void);
typedef struct mrl_gtrxl {
  mrl_gtrxl_config cfg;
  mrl_gtrxl_layer layers[MRL_GTRXL_MAX_LAYERS];
} mrl_gtrxl;
/* Layer k is named name.layers.k.* */
MRL_DEF void mrl_gtrxl_init(mrl_gtrxl *m, mrl_params *p, const char *name,
                            const mrl_gtrxl_config *cfg);
MRL_DEF int mrl_gtrxl_state_dim(const mrl_gtrxl *m);
MRL_DEF void mrl_gtrxl_state_reset(const mrl_gtrxl *m, float *state, int B);
/* x [T*B, E] time-major (row t*B+b, as mrl_lstm_sequence), episode_start NULL
 * or [T*B] (nonzero where step t of env b begins an episode: it and later steps see
 * nothing older), state_in [B * state_dim] (read; NULL: empty memories),
 * state_out (written; NULL or the same array as state_in is fine). Returns [T*B, E]. Memory
 * enters detached (stop-gradient): gradients stay inside the segment. With
 * T = 1 on a no-grad graph the cached step runs (see above): the same
 * outputs and memory within float rounding, nothing recorded; it allocates
 * only from the graph's arena (a scratch state when state_out is NULL). */
MRL_DEF mrl_tensor *mrl_gtrxl_forward(const mrl_gtrxl *m, mrl_graph *g, mrl_tensor *x, int T, int B,
                                      const float *episode_start, const float *state_in,
                                      float *state_out);

#ifdef __cplusplus
}
#endif
#endif /* MEMRL_NN_H */

/* ======================================================================== */
#if (defined(MEMRL_NN_IMPLEMENTATION) || defined(MEMRL_IMPLEMENTATION)) &&                         \
    !defined(MEMRL_NN_IMPLEMENTED)
#define MEMRL_NN_IMPLEMENTED

#include <stdarg.h> /* the name and message helpers */
#if defined(MRL__HAVE_F4) && defined(__SSE__)
#include <xmmintrin.h> /* _mm_sqrt_ps for Adam */
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- initialisers ---- >>init */

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

MRL_DEF float mrl_init_gain(mrl_nonlinearity nl, float param) {
  switch (nl) {
  case MRL_NL_LINEAR:
  case MRL_NL_SIGMOID: return 1.0f;
  case MRL_NL_TANH: return 5.0f / 3.0f;
  case MRL_NL_RELU: return (float)sqrt(2.0);
  case MRL_NL_LEAKY_RELU: return (float)sqrt(2.0 / (1.0 + (double)param * param));
  case MRL_NL_SELU: return 0.75f;
  }
  return 1.0f;
}

MRL_DEF void mrl_init_fans(int ndim, const int *shape, int *fan_in, int *fan_out) {
  int receptive = 1, i;
  if (ndim < 2) {
    *fan_in = *fan_out = ndim == 1 ? shape[0] : 1;
    return;
  }
  for (i = 2; i < ndim; i++) receptive *= shape[i];
  *fan_in = shape[1] * receptive;
  *fan_out = shape[0] * receptive;
}

MRL_DEF mrl_init mrl_init_xavier_uniform(float gain) {
  return mrl_init_make(MRL_INIT_XAVIER_UNIFORM, gain);
}
MRL_DEF mrl_init mrl_init_xavier_normal(float gain) {
  return mrl_init_make(MRL_INIT_XAVIER_NORMAL, gain);
}
MRL_DEF mrl_init mrl_init_kaiming_uniform(float a, mrl_fan_mode mode, mrl_nonlinearity nl) {
  mrl_init i = mrl_init_make(MRL_INIT_KAIMING_UNIFORM, mrl_init_gain(nl, a));
  i.b = mode == MRL_FAN_OUT ? 1.0f : 0.0f;
  return i;
}
MRL_DEF mrl_init mrl_init_kaiming_normal(float a, mrl_fan_mode mode, mrl_nonlinearity nl) {
  mrl_init i = mrl_init_make(MRL_INIT_KAIMING_NORMAL, mrl_init_gain(nl, a));
  i.b = mode == MRL_FAN_OUT ? 1.0f : 0.0f;
  return i;
}

/* ---- parameter store ---- >>params */

MRL_DEF void mrl_params_init(mrl_params *p) {
  memset(p, 0, sizeof *p);
}

/* Writes the message of a failure into p->message (printf-style). */
static void mrl__params_say(mrl_params *p, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->message, sizeof p->message, fmt, ap);
  va_end(ap);
}

/* Records a declaration failure: the first one is kept in status and message. */
static void mrl__params_fail(mrl_params *p, mrl_result r, const char *what, const char *name) {
  if (p->status != MRL_OK && !p->finalized) return;
  if (!p->finalized) p->status = r;
  if (name)
    mrl__params_say(p, "declaring a tensor: %s: \"%.*s%s\"", what, 200, name,
                    strlen(name) > 200 ? "..." : "");
  else
    mrl__params_say(p, "declaring a tensor: %s", what);
}

/* "<prefix>.<fmt...>", or just "<fmt...>" when prefix is NULL or "" (a module
 * declared at the top level, as a bare nn.LSTM's state_dict). buf holds
 * MRL_NAME_MAX bytes. A name that does not fit is a declaration failure of
 * p; buf then gets "" so that the layer's mrl_params_add fails too. */
static const char *mrl__name(mrl_params *p, char *buf, const char *prefix, const char *fmt, ...) {
  va_list ap;
  size_t n = prefix && *prefix ? strlen(prefix) + 1 : 0;
  int m;
  buf[0] = '\0';
  if (n >= MRL_NAME_MAX) {
    mrl__params_fail(p, MRL_ERR_INVALID_ARGUMENT, "name longer than MRL_NAME_MAX - 1 bytes",
                     prefix);
    return buf;
  }
  if (n) {
    memcpy(buf, prefix, n - 1);
    buf[n - 1] = '.';
  }
  va_start(ap, fmt);
  m = vsnprintf(buf + n, MRL_NAME_MAX - n, fmt, ap);
  va_end(ap);
  if (m < 0 || (size_t)m >= MRL_NAME_MAX - n) {
    buf[MRL_NAME_MAX - 1] = '\0';
    mrl__params_fail(p, MRL_ERR_INVALID_ARGUMENT, "name longer than MRL_NAME_MAX - 1 bytes", buf);
    buf[0] = '\0';
  }
  return buf;
}

MRL_DEF int mrl_params_add(mrl_params *p, const char *name, int ndim, const int *shape,
                           mrl_init init) {
  mrl_param *it;
  size_t len;
  int i;
  if (p->finalized) {
    mrl__params_fail(p, MRL_ERR_INVALID_ARGUMENT, "the store is already finalized", name);
    return -1;
  }
  if (p->status != MRL_OK) return -1; /* keep the first failure's message */
  if (!name || !*name) {
    mrl__params_fail(p, MRL_ERR_INVALID_ARGUMENT, "empty name", NULL);
    return -1;
  }
  if ((len = strlen(name)) >= MRL_NAME_MAX) {
    mrl__params_fail(p, MRL_ERR_INVALID_ARGUMENT, "name longer than MRL_NAME_MAX - 1 bytes", name);
    return -1;
  }
  for (i = 0; i < p->count; i++)
    if (strcmp(p->items[i].name, name) == 0) {
      mrl__params_fail(p, MRL_ERR_INVALID_ARGUMENT, "name declared twice", name);
      return -1;
    }
  if (p->count == p->capacity) {
    int cap = p->capacity ? 2 * p->capacity : 16;
    mrl_param *items = (mrl_param *)MRL_REALLOC(p->items, sizeof(mrl_param) * (size_t)cap);
    if (!items) {
      mrl__params_fail(p, MRL_ERR_OUT_OF_MEMORY, "out of memory", name);
      return -1;
    }
    p->items = items;
    p->capacity = cap;
  }
  if (len + 1 > p->names_cap - p->names_size) { /* grow the pool; names move with it */
    size_t cap = p->names_cap ? p->names_cap : 1024, at = 0;
    char *pool;
    while (len + 1 > cap - p->names_size) cap *= 2;
    if ((pool = (char *)MRL_REALLOC(p->names, cap)) == NULL) {
      mrl__params_fail(p, MRL_ERR_OUT_OF_MEMORY, "out of memory", name);
      return -1;
    }
    p->names = pool;
    p->names_cap = cap;
    for (i = 0; i < p->count; i++) { /* names sit in declaration order */
      p->items[i].name = pool + at;
      at += strlen(pool + at) + 1;
    }
  }
  it = &p->items[p->count];
  memset(it, 0, sizeof *it);
  memcpy(p->names + p->names_size, name, len + 1);
  it->name = p->names + p->names_size;
  p->names_size += len + 1;
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
  case MRL_INIT_GRU_BIAS:
    for (i = 0; i < n; i++) d[i] = a > 0.0f ? mrl_rng_uniform_range(rng, -a, a) : 0.0f;
    for (i = n / 3; i < 2 * n / 3; i++) d[i] += it->init.b;
    break;
  case MRL_INIT_ORTHOGONAL:
    mrl_init_orthogonal_fill(d, it->tensor.shape[0], n / it->tensor.shape[0], a, rng);
    break;
  case MRL_INIT_XAVIER_UNIFORM:
  case MRL_INIT_XAVIER_NORMAL:
  case MRL_INIT_KAIMING_UNIFORM:
  case MRL_INIT_KAIMING_NORMAL: {
    int fan_in, fan_out, uniform;
    double std;
    mrl_init_fans(it->tensor.ndim, it->tensor.shape, &fan_in, &fan_out);
    if (it->init.kind == MRL_INIT_XAVIER_UNIFORM || it->init.kind == MRL_INIT_XAVIER_NORMAL)
      std = (double)a * sqrt(2.0 / (double)(fan_in + fan_out));
    else
      std = (double)a / sqrt((double)(it->init.b != 0.0f ? fan_out : fan_in));
    uniform = it->init.kind == MRL_INIT_XAVIER_UNIFORM || it->init.kind == MRL_INIT_KAIMING_UNIFORM;
    if (uniform) {
      float bound = (float)(sqrt(3.0) * std);
      for (i = 0; i < n; i++) d[i] = mrl_rng_uniform_range(rng, -bound, bound);
    } else {
      for (i = 0; i < n; i++) d[i] = (float)std * mrl_rng_normal(rng);
    }
    break;
  }
  }
}

MRL_DEF mrl_result mrl_params_finalize(mrl_params *p, uint64_t seed) {
  size_t bytes = sizeof(float) * (p->total ? p->total : 1);
  mrl_rng rng = mrl_rng_make(seed);
  int i;
  if (p->finalized) return MRL_ERR_INVALID_ARGUMENT;
  if (p->status != MRL_OK) return p->status; /* a declaration failed: message says which */
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
    if (it->zero_row > 0 && it->tensor.ndim == 2 && it->zero_row <= it->tensor.shape[0])
      memset(it->tensor.data + (size_t)(it->zero_row - 1) * it->tensor.shape[1], 0,
             sizeof(float) * (size_t)it->tensor.shape[1]);
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
  /* CleanRL's tau * src + (1 - tau) * dst: exact copy at tau = 1, no-op at 0 */
  float keep = 1.0f - tau;
  MRL_ASSERT(dst->total == src->total);
  for (j = 0; j < src->total; j++) dst->values[j] = tau * src->values[j] + keep * dst->values[j];
}

MRL_DEF void mrl_params_free(mrl_params *p) {
  MRL_FREE(p->items);
  MRL_FREE(p->names);
  MRL_FREE(p->values);
  MRL_FREE(p->grads);
  MRL_FREE(p->moment1);
  MRL_FREE(p->moment2);
  MRL_FREE(p->moment3);
  memset(p, 0, sizeof *p);
}

/* ---- optimisers: Adam, AdamW, SGD, RMSProp ---- >>optim */

MRL_DEF mrl_adam_config mrl_adam_config_default(void) {
  mrl_adam_config c;
  c.lr = 1e-3f;
  c.beta1 = 0.9f;
  c.beta2 = 0.999f;
  c.eps = 1e-8f;
  c.weight_decay = 0.0f;
  return c;
}

#define MRL__FLT_MIN 1.17549435e-38f /* FLT_MIN: the smallest normal float */

MRL_DEF void mrl_adam_step(mrl_params *p, const mrl_adam_config *cfg) {
  /* torch.optim.Adam, single-tensor path; scalars in double as Python has them.
   * One deviation: a moment below FLT_MIN (1.2e-38) is stored as 0. The
   * moments of weights that stop getting gradients (dead ReLU units) decay
   * geometrically through the subnormal range, where each multiply takes a
   * slow microcode path: that made Adam 40% of a DQN run. The change to a
   * step is below lr * 1e-38 / eps. */
  double bc1, bc2;
  float step_size, bc2_sqrt, b1 = cfg->beta1, b2 = cfg->beta2, wd = cfg->weight_decay;
  float one_b1 = (float)(1.0 - (double)b1), one_b2 = (float)(1.0 - (double)b2);
  size_t j;
  p->adam_steps++;
  bc1 = 1.0 - pow((double)b1, (double)p->adam_steps);
  bc2 = 1.0 - pow((double)b2, (double)p->adam_steps);
  step_size = (float)((double)cfg->lr / bc1);
  bc2_sqrt = (float)sqrt(bc2);
  j = 0;
#if defined(MRL__HAVE_F4) && defined(__SSE__)
  /* four at a time, the scalar loop's operations lane by lane (sqrtps is
   * correctly rounded, as sqrtf) */
  for (; j + 4 <= p->total; j += 4) {
    const mrl__f4 zero = {0.0f, 0.0f, 0.0f, 0.0f};
    const mrl__f4 tiny = {MRL__FLT_MIN, MRL__FLT_MIN, MRL__FLT_MIN, MRL__FLT_MIN};
    mrl__f4 grad, val, m, v, denom;
    __m128 root;
    memcpy(&grad, p->grads + j, sizeof grad);
    memcpy(&val, p->values + j, sizeof val);
    memcpy(&m, p->moment1 + j, sizeof m);
    memcpy(&v, p->moment2 + j, sizeof v);
    if (wd != 0.0f) grad += wd * val;
    m = m * b1 + one_b1 * grad;
    v = v * b2 + one_b2 * grad * grad;
    m = mrl__select4((m < tiny) & (m > -tiny), zero, m);
    v = mrl__select4(v < tiny, zero, v);
    memcpy(p->moment1 + j, &m, sizeof m);
    memcpy(p->moment2 + j, &v, sizeof v);
    memcpy(&root, &v, sizeof root);
    root = _mm_sqrt_ps(root);
    memcpy(&denom, &root, sizeof denom);
    denom = denom / bc2_sqrt + cfg->eps;
    val -= step_size * (m / denom);
    memcpy(p->values + j, &val, sizeof val);
  }
#endif
  for (; j < p->total; j++) {
    float grad = p->grads[j], m, v, denom;
    if (wd != 0.0f) grad += wd * p->values[j];
    m = p->moment1[j] * b1 + one_b1 * grad;
    v = p->moment2[j] * b2 + one_b2 * grad * grad;
    if (m < MRL__FLT_MIN && m > -MRL__FLT_MIN) m = 0.0f;
    if (v < MRL__FLT_MIN) v = 0.0f;
    p->moment1[j] = m;
    p->moment2[j] = v;
    denom = sqrtf(v) / bc2_sqrt + cfg->eps;
    p->values[j] -= step_size * (m / denom);
  }
}

MRL_DEF mrl_adam_config mrl_adamw_config_default(void) {
  mrl_adam_config c = mrl_adam_config_default();
  c.weight_decay = 1e-2f;
  return c;
}

MRL_DEF void mrl_adamw_step(mrl_params *p, const mrl_adam_config *cfg) {
  mrl_adam_config plain = *cfg;
  float keep = (float)(1.0 - (double)cfg->lr * (double)cfg->weight_decay);
  size_t j;
  if (cfg->weight_decay != 0.0f)
    for (j = 0; j < p->total; j++) p->values[j] *= keep;
  plain.weight_decay = 0.0f;
  mrl_adam_step(p, &plain);
}

MRL_DEF mrl_sgd_config mrl_sgd_config_default(void) {
  mrl_sgd_config c;
  c.lr = 1e-2f;
  c.momentum = 0.0f;
  c.dampening = 0.0f;
  c.weight_decay = 0.0f;
  c.nesterov = 0;
  return c;
}

MRL_DEF void mrl_sgd_step(mrl_params *p, const mrl_sgd_config *cfg) {
  float mom = cfg->momentum, damp = (float)(1.0 - (double)cfg->dampening), wd = cfg->weight_decay;
  int first = p->adam_steps == 0;
  size_t j;
  MRL_ASSERT(!cfg->nesterov || (mom > 0.0f && cfg->dampening == 0.0f));
  p->adam_steps++;
  for (j = 0; j < p->total; j++) {
    float g = p->grads[j];
    if (wd != 0.0f) g += wd * p->values[j];
    if (mom != 0.0f) {
      float buf = first ? g : p->moment1[j] * mom + damp * g;
      p->moment1[j] = buf;
      g = cfg->nesterov ? g + mom * buf : buf;
    }
    p->values[j] -= cfg->lr * g;
  }
}

MRL_DEF mrl_rmsprop_config mrl_rmsprop_config_default(void) {
  mrl_rmsprop_config c;
  c.lr = 1e-2f;
  c.alpha = 0.99f;
  c.eps = 1e-8f;
  c.weight_decay = 0.0f;
  c.momentum = 0.0f;
  c.centered = 0;
  c.eps_inside_sqrt = 0;
  c.square_avg_init = 0.0f;
  return c;
}

MRL_DEF mrl_rmsprop_config mrl_rmsprop_config_tf(void) {
  mrl_rmsprop_config c = mrl_rmsprop_config_default();
  c.lr = 1e-3f;
  c.alpha = 0.9f;
  c.eps = 1e-10f;
  c.eps_inside_sqrt = 1;
  c.square_avg_init = 1.0f;
  return c;
}

MRL_DEF mrl_result mrl_rmsprop_step(mrl_params *p, const mrl_rmsprop_config *cfg) {
  float a = cfg->alpha, one_a = (float)(1.0 - (double)cfg->alpha), mom = cfg->momentum;
  float wd = cfg->weight_decay, lr = cfg->lr, eps = cfg->eps;
  size_t j;
  if (cfg->centered && !p->moment3) {
    p->moment3 = (float *)MRL_MALLOC(sizeof(float) * (p->total ? p->total : 1));
    if (!p->moment3) return MRL_ERR_OUT_OF_MEMORY;
    memset(p->moment3, 0, sizeof(float) * p->total);
  }
  if (p->adam_steps == 0)
    for (j = 0; j < p->total; j++) p->moment2[j] = cfg->square_avg_init;
  p->adam_steps++;
  for (j = 0; j < p->total; j++) {
    float g = p->grads[j], v, d;
    if (wd != 0.0f) g += wd * p->values[j];
    if (cfg->eps_inside_sqrt) {
      /* TF's kernel: ms += (g^2 - ms) (1 - rho); mom = mom * momentum + lr g / sqrt(.) */
      v = p->moment2[j] + (g * g - p->moment2[j]) * one_a;
      if (v < MRL__FLT_MIN) v = 0.0f; /* no subnormals, as mrl_adam_step */
      p->moment2[j] = v;
      if (cfg->centered) {
        float m = p->moment3[j] + (g - p->moment3[j]) * one_a;
        p->moment3[j] = m;
        d = sqrtf(v - m * m + eps);
      } else {
        d = sqrtf(v + eps);
      }
      p->moment1[j] = p->moment1[j] * mom + lr * g / d;
      p->values[j] -= p->moment1[j];
      continue;
    }
    v = p->moment2[j] * a + one_a * (g * g);
    if (v < MRL__FLT_MIN) v = 0.0f; /* no subnormals, as mrl_adam_step */
    p->moment2[j] = v;
    if (cfg->centered) {
      float m = p->moment3[j] * a + one_a * g;
      p->moment3[j] = m;
      d = sqrtf(v - m * m) + eps;
    } else {
      d = sqrtf(v) + eps;
    }
    if (mom > 0.0f) {
      p->moment1[j] = p->moment1[j] * mom + g / d;
      p->values[j] -= lr * p->moment1[j];
    } else {
      p->values[j] -= lr * (g / d);
    }
  }
  return MRL_OK;
}

MRL_DEF void mrl_params_reset_optimizer(mrl_params *p) {
  if (p->moment1) memset(p->moment1, 0, sizeof(float) * p->total);
  if (p->moment2) memset(p->moment2, 0, sizeof(float) * p->total);
  if (p->moment3) memset(p->moment3, 0, sizeof(float) * p->total);
  p->adam_steps = 0;
}

/* ---- learning-rate schedules ---- >>lr_schedule */

MRL_DEF float mrl_lr_linear(float lr_start, float lr_end, long long step, long long total_steps) {
  double frac;
  if (total_steps <= 0 || step >= total_steps) return lr_end;
  if (step <= 0) return lr_start;
  frac = (double)step / (double)total_steps;
  return (float)((double)lr_start + ((double)lr_end - (double)lr_start) * frac);
}

MRL_DEF float mrl_lr_cosine(float lr_max, float lr_min, long long step, long long period) {
  const double pi = 3.14159265358979323846;
  if (period <= 0) return lr_min;
  return (float)((double)lr_min + ((double)lr_max - (double)lr_min) *
                                      (1.0 + cos(pi * (double)step / (double)period)) / 2.0);
}

MRL_DEF float mrl_lr_step(float lr0, float gamma, long long step, long long step_size) {
  long long k = step_size > 0 && step > 0 ? step / step_size : 0;
  return (float)((double)lr0 * pow((double)gamma, (double)k));
}

/* ---- activations and the linear layer ---- >>linear_layer */

/* An activation outside the enum (an uninitialised field, a cast integer)
 * is a programmer error: it must not quietly mean "none". allow_none 0: a
 * layer that needs a nonlinearity (Elman). */
static void mrl__check_activation(const char *op, mrl_activation act, int allow_none,
                                  const mrl_tensor *x) {
  char what[96];
  if (act == MRL_ACT_TANH || act == MRL_ACT_RELU || (allow_none && act == MRL_ACT_NONE)) return;
  snprintf(what, sizeof what, "activation %d is not %sMRL_ACT_TANH or MRL_ACT_RELU", (int)act,
           allow_none ? "MRL_ACT_NONE, " : "");
  mrl_shape_fail(op, what, x, NULL, __FILE__, __LINE__);
}

static int mrl__activation_ok(mrl_activation act) {
  return act == MRL_ACT_NONE || act == MRL_ACT_TANH || act == MRL_ACT_RELU;
}

MRL_DEF mrl_tensor *mrl_activate(mrl_graph *g, mrl_tensor *x, mrl_activation act) {
  switch (act) {
  case MRL_ACT_TANH: return mrl_tanh(g, x);
  case MRL_ACT_RELU: return mrl_relu(g, x);
  case MRL_ACT_NONE: break;
  default: mrl__check_activation("activate", act, 1, x);
  }
  return x;
}

MRL_DEF void mrl_linear_layer_init(mrl_linear_layer *l, mrl_params *p, const char *name, int in,
                                   int out, mrl_init init) {
  mrl_linear_layer_init_bias(l, p, name, in, out, 1, init);
}

MRL_DEF void mrl_linear_layer_init_bias(mrl_linear_layer *l, mrl_params *p, const char *name,
                                        int in, int out, int bias, mrl_init init) {
  char buf[MRL_NAME_MAX];
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
  mrl__name(p, buf, name, "weight");
  l->weight = mrl_params_add(p, buf, 2, wshape, wi);
  l->bias = -1;
  if (bias) {
    mrl__name(p, buf, name, "bias");
    l->bias = mrl_params_add(p, buf, 1, bshape, bi);
  }
}

MRL_DEF mrl_tensor *mrl_linear_layer_forward(const mrl_linear_layer *l, mrl_graph *g,
                                             mrl_tensor *x) {
  return mrl_linear(g, x, mrl_params_tensor(l->params, l->weight),
                    l->bias >= 0 ? mrl_params_tensor(l->params, l->bias) : NULL);
}

MRL_DEF mrl_tensor *mrl_linear_layer_forward_act(const mrl_linear_layer *l, mrl_graph *g,
                                                 mrl_tensor *x, mrl_activation act) {
  mrl_tensor *w = mrl_params_tensor(l->params, l->weight);
  mrl_tensor *b = l->bias >= 0 ? mrl_params_tensor(l->params, l->bias) : NULL;
  switch (act) {
  case MRL_ACT_RELU: return mrl_linear_relu(g, x, w, b);
  case MRL_ACT_TANH: return mrl_linear_tanh(g, x, w, b);
  case MRL_ACT_NONE: break;
  default: mrl__check_activation("linear_layer_forward_act", act, 1, x);
  }
  return mrl_linear(g, x, w, b);
}

/* ---- MLP ---- >>mlp */

MRL_DEF void mrl_mlp_init(mrl_mlp *m, mrl_params *p, const char *name, int num_sizes,
                          const int *sizes, mrl_activation act, mrl_init hidden_init,
                          mrl_init output_init) {
  int i;
  char buf[MRL_NAME_MAX];
  MRL_ASSERT(num_sizes >= 2 && num_sizes - 1 <= MRL_MLP_MAX_LAYERS);
  mrl__check_activation("mlp_init", act, 1, NULL);
  memset(m, 0, sizeof *m);
  m->num_layers = num_sizes - 1;
  m->activation = act;
  for (i = 0; i < m->num_layers; i++) { /* nn.Sequential counts the activations' slots */
    mrl__name(p, buf, name, "%d", act == MRL_ACT_NONE ? i : 2 * i);
    mrl_linear_layer_init(&m->layers[i], p, buf, sizes[i], sizes[i + 1],
                          i == m->num_layers - 1 ? output_init : hidden_init);
  }
}

MRL_DEF mrl_tensor *mrl_mlp_forward(const mrl_mlp *m, mrl_graph *g, mrl_tensor *x) {
  int i;
  for (i = 0; i < m->num_layers; i++)
    x = mrl_linear_layer_forward_act(&m->layers[i], g, x,
                                     i < m->num_layers - 1 || m->activate_output ? m->activation
                                                                                 : MRL_ACT_NONE);
  return x;
}

/* ---- LSTM ---- >>lstm */

/* acc[j] += rows[k][j] for k = 0..n-1 in order (bias gradients), and the
 * same into acc2 when it is not NULL (a recurrence's two biases share their
 * gradient): rows are read in memory order, four at a time, each column's
 * sum in the same order as a plain loop. (Walking column strips down the
 * rows instead crosses a page every row once rows are 4 KiB apart, where the
 * hardware prefetchers stop: measured 2-3x slower at 1024 columns.) */
static void mrl__add_col_sums(float *acc, float *acc2, const float *rows, size_t n, int cols) {
  size_t k = 0;
  int j;
  if (!acc) acc = acc2, acc2 = NULL;
  if (!acc) return;
#ifdef MRL__HAVE_F4
  for (; k + 4 <= n; k += 4) {
    const float *r0 = rows + k * cols, *r1 = r0 + cols, *r2 = r1 + cols, *r3 = r2 + cols;
    for (j = 0; j + 4 <= cols; j += 4) {
      mrl__f4 a, b, v0, v1, v2, v3;
      memcpy(&v0, r0 + j, sizeof a), memcpy(&v1, r1 + j, sizeof a);
      memcpy(&v2, r2 + j, sizeof a), memcpy(&v3, r3 + j, sizeof a);
      memcpy(&a, acc + j, sizeof a);
      a += v0, a += v1, a += v2, a += v3;
      memcpy(acc + j, &a, sizeof a);
      if (acc2) {
        memcpy(&b, acc2 + j, sizeof b);
        b += v0, b += v1, b += v2, b += v3;
        memcpy(acc2 + j, &b, sizeof b);
      }
    }
    for (; j < cols; j++) {
      acc[j] += r0[j], acc[j] += r1[j], acc[j] += r2[j], acc[j] += r3[j];
      if (acc2) acc2[j] += r0[j], acc2[j] += r1[j], acc2[j] += r2[j], acc2[j] += r3[j];
    }
  }
#endif
  for (; k < n; k++)
    for (j = 0; j < cols; j++) {
      acc[j] += rows[k * cols + j];
      if (acc2) acc2[j] += rows[k * cols + j];
    }
}

/* Whether a recurrence (LSTM, GRU, Elman) over T steps of B rows multiplies
 * by a prepacked W_hh [G, H] (mrl__gemm_pack_b once per call, then
 * mrl__gemm_prepacked per step) instead of handing W_hh to mrl_gemm every
 * step, which takes the dot products for h W_hh^T (up to 16 rows) and reads
 * W_hh in place for dpre W_hh (its 1-8 KiB row strides fall into few cache
 * sets). Measured (AVX-512, one core): h W_hh^T 1.1-2x faster from B = 4 at
 * H 16-512, dpre W_hh the same at H <= 64 and 1.1-1.7x faster from H = 128;
 * forward + backward of the LSTM 1.08x at H 64 and 1.1-1.3x at H 256-512
 * (batch 16, T 32). Single steps (T = 1: acting) never prepack. The
 * backward's dpre W_hh is the packed path's own product, bitwise the same
 * (at least 4 rows, n = H >= 16, more than 4096 multiply-adds); the forward's
 * h W_hh^T at B <= 16 moves from the dot products to the packed kernels'
 * chain: other bits than T single steps, the same up to rounding. */
static int mrl__rnn_prepack(int T, int B, int H, int G) {
  return T > 1 && B >= 4 && H >= 16 && (double)B * H * G > 4096.0;
}

/* dst [B, H] = src [B, G] W_hh, W_hh [G, H]: the reverse recurrences' dpre_t W_hh */
static void mrl__rnn_back_h(int B, int H, int G, const float *src, const float *w_hh, float *dst) {
  mrl_gemm(0, 0, B, H, G, src, G, w_hh, H, 0.0f, dst, H);
}

/* Declares the four tensors of recurrent layer k (torch's _l<k> suffix; k < 0:
 * no suffix, as nn.LSTMCell / GRUCell / RNNCell name them):
 * weight_ih [gates*H, in], weight_hh [gates*H, H], bias_ih, bias_hh. DEFAULT
 * resolves to U(+-1/sqrt(H)) for all four, as torch's RNN, LSTM and GRU do;
 * another init applies to the weights with zero biases. */
static void mrl__rnn_declare(mrl_params *p, const char *name, int k, int gates, int input,
                             int hidden, mrl_init init, mrl_init bias_ih_init, int *ids) {
  char buf[MRL_NAME_MAX];
  int sih[2], shh[2], sb[1];
  mrl_init wi = init, bi = mrl_init_make(MRL_INIT_ZEROS, 0.0f);
  sih[0] = shh[0] = sb[0] = gates * hidden;
  sih[1] = input;
  shh[1] = hidden;
  if (init.kind == MRL_INIT_DEFAULT)
    wi = bi = mrl_init_make(MRL_INIT_UNIFORM, 1.0f / sqrtf((float)hidden));
  if (bias_ih_init.kind == MRL_INIT_DEFAULT) bias_ih_init = bi;
  mrl__name(p, buf, name, k < 0 ? "weight_ih" : "weight_ih_l%d", k);
  ids[0] = mrl_params_add(p, buf, 2, sih, wi);
  mrl__name(p, buf, name, k < 0 ? "weight_hh" : "weight_hh_l%d", k);
  ids[1] = mrl_params_add(p, buf, 2, shh, wi);
  mrl__name(p, buf, name, k < 0 ? "bias_ih" : "bias_ih_l%d", k);
  ids[2] = mrl_params_add(p, buf, 1, sb, bias_ih_init);
  mrl__name(p, buf, name, k < 0 ? "bias_hh" : "bias_hh_l%d", k);
  ids[3] = mrl_params_add(p, buf, 1, sb, bi);
}

static void mrl__lstm_layer_init_k(mrl_lstm_layer *l, mrl_params *p, const char *name, int k,
                                   int input, int hidden, mrl_init init, float forget_bias) {
  int ids[4];
  mrl_init bf = mrl_init_make(MRL_INIT_LSTM_BIAS,
                              init.kind == MRL_INIT_DEFAULT ? 1.0f / sqrtf((float)hidden) : 0.0f);
  bf.b = forget_bias;
  l->params = p;
  l->input_size = input;
  l->hidden_size = hidden;
  mrl__rnn_declare(p, name, k, 4, input, hidden, init, bf, ids);
  l->weight_ih = ids[0];
  l->weight_hh = ids[1];
  l->bias_ih = ids[2];
  l->bias_hh = ids[3];
}

MRL_DEF void mrl_lstm_layer_init(mrl_lstm_layer *l, mrl_params *p, const char *name, int input,
                                 int hidden, mrl_init init, float forget_bias) {
  mrl__lstm_layer_init_k(l, p, name, 0, input, hidden, init, forget_bias);
}

MRL_DEF void mrl_lstm_cell_init(mrl_lstm_layer *l, mrl_params *p, const char *name, int input,
                                int hidden, mrl_init init, float forget_bias) {
  mrl__lstm_layer_init_k(l, p, name, -1, input, hidden, init, forget_bias);
}

#ifdef MRL__HAVE_WIDE_ACT
/* The LSTM's per-unit loops, 8 or 16 units at a time on AVX2 or AVX-512
 * (picked at run time), each lane the portable loop's expressions in the same
 * order with no contraction into FMA: bitwise the scalar results. Each
 * returns how many units it did; the callers finish the rest. back: the gate
 * gradients of one row (mrl__lstm_backward's four-lane loop); cell: c = f c'
 * + i g; out: h = o tanh(c). */
#define MRL__LSTM_WIDE(W, TGT)                                                                     \
  TGT MRL__NOCONTRACT_ATTR static int mrl__lstm_back_run##W(                                       \
      int H, const float *gb, const float *tc, const float *cp, const float *gy, const float *dhp, \
      float *dcp, float *db, float keep) {                                                         \
    MRL__NOCONTRACT                                                                                \
    int j = 0;                                                                                     \
    for (; j + W <= H; j += W) {                                                                   \
      mrl__f##W ig, fg, gg, og, tk, ck, gk, hk, ck2, dh, dc, o;                                    \
      memcpy(&ig, gb + j, sizeof ig);                                                              \
      memcpy(&fg, gb + H + j, sizeof fg);                                                          \
      memcpy(&gg, gb + 2 * H + j, sizeof gg);                                                      \
      memcpy(&og, gb + 3 * H + j, sizeof og);                                                      \
      memcpy(&tk, tc + j, sizeof tk);                                                              \
      memcpy(&ck, cp + j, sizeof ck);                                                              \
      memcpy(&gk, gy + j, sizeof gk);                                                              \
      memcpy(&hk, dhp + j, sizeof hk);                                                             \
      memcpy(&ck2, dcp + j, sizeof ck2);                                                           \
      dh = gk + hk;                                                                                \
      dc = ck2 + dh * og * (1.0f - tk * tk);                                                       \
      o = dc * gg * ig * (1.0f - ig);                                                              \
      memcpy(db + j, &o, sizeof o);                                                                \
      o = dc * ck * fg * (1.0f - fg);                                                              \
      memcpy(db + H + j, &o, sizeof o);                                                            \
      o = dc * ig * (1.0f - gg * gg);                                                              \
      memcpy(db + 2 * H + j, &o, sizeof o);                                                        \
      o = dh * tk * og * (1.0f - og);                                                              \
      memcpy(db + 3 * H + j, &o, sizeof o);                                                        \
      o = dc * fg * keep;                                                                          \
      memcpy(dcp + j, &o, sizeof o);                                                               \
    }                                                                                              \
    return j;                                                                                      \
  }                                                                                                \
  TGT MRL__NOCONTRACT_ATTR static int mrl__lstm_cell_run##W(int H, const float *gb,                \
                                                            const float *ck, float *cb) {          \
    MRL__NOCONTRACT                                                                                \
    int j = 0;                                                                                     \
    for (; j + W <= H; j += W) {                                                                   \
      mrl__f##W ig, fg, gg, c;                                                                     \
      memcpy(&ig, gb + j, sizeof ig);                                                              \
      memcpy(&fg, gb + H + j, sizeof fg);                                                          \
      memcpy(&gg, gb + 2 * H + j, sizeof gg);                                                      \
      memcpy(&c, ck + j, sizeof c);                                                                \
      c = fg * c + ig * gg;                                                                        \
      memcpy(cb + j, &c, sizeof c);                                                                \
    }                                                                                              \
    return j;                                                                                      \
  }                                                                                                \
  TGT MRL__NOCONTRACT_ATTR static int mrl__lstm_out_run##W(int H, const float *og,                 \
                                                           const float *tb, float *yb) {           \
    MRL__NOCONTRACT                                                                                \
    int j = 0;                                                                                     \
    for (; j + W <= H; j += W) {                                                                   \
      mrl__f##W o, t;                                                                              \
      memcpy(&o, og + j, sizeof o);                                                                \
      memcpy(&t, tb + j, sizeof t);                                                                \
      o = o * t;                                                                                   \
      memcpy(yb + j, &o, sizeof o);                                                                \
    }                                                                                              \
    return j;                                                                                      \
  }
MRL__LSTM_WIDE(8, MRL__TARGET_AVX2)
MRL__LSTM_WIDE(16, MRL__TARGET_AVX512)
#undef MRL__LSTM_WIDE
#endif

/* The LSTM over a sequence is one fused node: the input projection of every
 * step is one large matmul, the recurrence runs step by step, and backward
 * does the weight and input gradients as large matmuls after the reverse
 * recurrence. Saved per step: activated gates (i, f, g, o), the masked
 * previous h and c, and tanh(c). Sequences multiply by a prepacked W_hh
 * (mrl__rnn_prepack: the forward's sum order differs from single steps'). */
typedef struct mrl__lstm_saved {
  mrl_tensor *x, *h0, *c0, *w_ih, *w_hh, *b_ih, *b_hh, *c_last;
  const float *keep;
  float *gates;           /* [T*B, 4H] */
  float *h_prev, *c_prev; /* [T*B, H]: keep * h_{t-1}, keep * c_{t-1} */
  float *c_all, *tanh_c;  /* [T*B, H]: c_t and tanh(c_t) */
  float *dpre;            /* [T*B, 4H] backward scratch */
  float *dc, *dh_prev;    /* [B, H] backward scratch */
  float *w_pack;          /* prepacked W_hh (mrl__rnn_prepack), or NULL */
  int T, B;
} mrl__lstm_saved;

static void mrl__lstm_backward(mrl_node *nd) {
  mrl__lstm_saved *s = (mrl__lstm_saved *)(void *)nd->extra[0];
  mrl_tensor *y = nd->out;
  int T = s->T, B = s->B, H = y->shape[1], I = s->x->shape[1], G = 4 * H, t, b, j;
  int isa = mrl__gemm_isa();
  size_t BH = (size_t)B * H, k;
  /* op(B) = W_hh for every step's dpre_t W_hh (the forward's W_hh^T is dead) */
  if (s->w_pack) mrl__gemm_pack_b(isa, 0, H, G, s->w_hh->data, H, s->w_pack);
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
      j = 0;
#ifdef MRL__HAVE_WIDE_ACT
      if (isa == MRL__ISA_AVX512)
        j = mrl__lstm_back_run16(H, gb, tc + (size_t)b * H, cp + (size_t)b * H, gy + (size_t)b * H,
                                 s->dh_prev + (size_t)b * H, s->dc + (size_t)b * H, db, keep);
      else if (isa == MRL__ISA_AVX2)
        j = mrl__lstm_back_run8(H, gb, tc + (size_t)b * H, cp + (size_t)b * H, gy + (size_t)b * H,
                                s->dh_prev + (size_t)b * H, s->dc + (size_t)b * H, db, keep);
#endif
#ifdef MRL__HAVE_F4
      /* four units at a time: the scalar loop's expressions, lane by lane */
      for (; j + 4 <= H; j += 4) {
        mrl__f4 ig, fg, gg, og, tk, ck, gk, hk, ck2, dh, dc, o;
        k = (size_t)b * H + j;
        memcpy(&ig, gb + j, sizeof ig);
        memcpy(&fg, gb + H + j, sizeof fg);
        memcpy(&gg, gb + 2 * H + j, sizeof gg);
        memcpy(&og, gb + 3 * H + j, sizeof og);
        memcpy(&tk, tc + k, sizeof tk);
        memcpy(&ck, cp + k, sizeof ck);
        memcpy(&gk, gy + k, sizeof gk);
        memcpy(&hk, s->dh_prev + k, sizeof hk);
        memcpy(&ck2, s->dc + k, sizeof ck2);
        dh = gk + hk;
        dc = ck2 + dh * og * (1.0f - tk * tk);
        o = dc * gg * ig * (1.0f - ig);
        memcpy(db + j, &o, sizeof o);
        o = dc * ck * fg * (1.0f - fg);
        memcpy(db + H + j, &o, sizeof o);
        o = dc * ig * (1.0f - gg * gg);
        memcpy(db + 2 * H + j, &o, sizeof o);
        o = dh * tk * og * (1.0f - og);
        memcpy(db + 3 * H + j, &o, sizeof o);
        o = dc * fg * keep;
        memcpy(s->dc + k, &o, sizeof o);
      }
#endif
      for (; j < H; j++) {
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
    if (s->w_pack)
      mrl__gemm_prepacked(isa, 0, B, H, G, dp, G, s->w_pack, 0.0f, s->dh_prev, H);
    else
      mrl__rnn_back_h(B, H, G, dp, s->w_hh->data, s->dh_prev);
    if (s->keep)
      for (b = 0; b < B; b++) {
        float keep = s->keep[(size_t)t * B + b];
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
  mrl__add_col_sums(s->b_ih->grad, s->b_hh->grad, s->dpre, (size_t)T * B, G);
}

/* The fused recurrences multiply the carried state by keep = 1 - (start != 0)
 * (exactly 0 or 1, so the state is zeroed or passed bit for bit). It is built
 * once per call in the arena, so backward can read it after the caller's
 * episode_start array is gone; *keep stays NULL when nothing starts. Returns
 * 0 when the arena is full. */
static int mrl__keep_from_start(mrl_graph *g, const float *episode_start, int T, int B,
                                const float **keep) {
  size_t n = T > 0 && B > 0 ? (size_t)T * B : 0, i;
  float *k;
  *keep = NULL;
  if (!episode_start) return 1;
  for (i = 0; i < n; i++)
    if (episode_start[i] != 0.0f) break;
  if (i == n) return 1; /* no start: the same as none (x * 1 is x) */
  if (!(k = (float *)mrl_graph_alloc(g, sizeof(float) * n))) return 0;
  for (i = 0; i < n; i++) k[i] = episode_start[i] != 0.0f ? 0.0f : 1.0f;
  *keep = k;
  return 1;
}

static mrl_tensor *mrl__lstm_run(const mrl_lstm_layer *l, mrl_graph *g, mrl_tensor *x, int T, int B,
                                 mrl_tensor *h0, mrl_tensor *c0, const float *keep,
                                 mrl_tensor **h_out, mrl_tensor **c_out) {
  mrl_tensor *w_ih, *w_hh, *b_ih, *b_hh, *y, *c_last, *h_last;
  float *bias;
  mrl__lstm_saved *s;
  mrl_node *nd;
  int H = l->hidden_size, I = l->input_size, G = 4 * H, t, b, j, wants, isa = mrl__gemm_isa();
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
  if (mrl__rnn_prepack(T, B, H, G)) { /* W_hh^T here, W_hh in backward: room for either */
    size_t f = mrl__gemm_packed_floats(isa, G, H), r = mrl__gemm_packed_floats(isa, H, G);
    if (!(s->w_pack = (float *)mrl_graph_alloc(g, sizeof(float) * (f > r ? f : r)))) return NULL;
    mrl__gemm_pack_b(isa, 1, G, H, w_hh->data, H, s->w_pack);
  }
  /* input projection of every step at once, each chain starting from both
   * biases (the gemm's start row: the same sums as copying them into every
   * row first, without the pass) */
  if (!(bias = (float *)mrl_graph_alloc(g, sizeof(float) * G))) return NULL;
  for (j = 0; j < G; j++) bias[j] = b_ih->data[j] + b_hh->data[j];
  mrl__gemm_run(isa, 0, 1, T * B, G, I, x->data, I, w_ih->data, I, 0.0f, bias, s->gates, G);
  for (t = 0; t < T; t++) {
    const float *hp = t ? y->data + (size_t)(t - 1) * BH : h0->data;
    const float *cp = t ? s->c_all + (size_t)(t - 1) * BH : c0->data;
    float *hk = s->h_prev + (size_t)t * BH, *ck = s->c_prev + (size_t)t * BH;
    float *gt = s->gates + (size_t)t * B * G, *tc = s->tanh_c + (size_t)t * BH;
    float *ct = s->c_all + (size_t)t * BH, *yt = y->data + (size_t)t * BH;
    if (!keep) { /* x * 1 is x: plain copies */
      memcpy(hk, hp, sizeof(float) * BH);
      memcpy(ck, cp, sizeof(float) * BH);
    } else {
      for (b = 0; b < B; b++) {
        float kb = keep[(size_t)t * B + b];
        for (j = 0; j < H; j++) {
          hk[(size_t)b * H + j] = hp[(size_t)b * H + j] * kb;
          ck[(size_t)b * H + j] = cp[(size_t)b * H + j] * kb;
        }
      }
    }
    if (s->w_pack)
      mrl__gemm_prepacked(isa, 0, B, G, H, hk, H, s->w_pack, 1.0f, gt, G);
    else
      mrl__xwt(B, G, H, hk, H, w_hh->data, H, gt, G);
    for (b = 0; b < B; b++) {
      float *gb = gt + (size_t)b * G, *cb = ct + (size_t)b * H, *tb = tc + (size_t)b * H;
      const float *kb = ck + (size_t)b * H;
      mrl__sigmoid_n(gb, gb, 2 * H);             /* i, f */
      mrl__tanh_n(gb + 2 * H, gb + 2 * H, H);    /* g */
      mrl__sigmoid_n(gb + 3 * H, gb + 3 * H, H); /* o */
      j = 0;
#ifdef MRL__HAVE_WIDE_ACT
      if (isa == MRL__ISA_AVX512)
        j = mrl__lstm_cell_run16(H, gb, kb, cb);
      else if (isa == MRL__ISA_AVX2)
        j = mrl__lstm_cell_run8(H, gb, kb, cb);
#endif
      for (; j < H; j++) cb[j] = gb[H + j] * kb[j] + gb[j] * gb[2 * H + j];
      mrl__tanh_n(cb, tb, H);
      j = 0;
#ifdef MRL__HAVE_WIDE_ACT
      if (isa == MRL__ISA_AVX512)
        j = mrl__lstm_out_run16(H, gb + 3 * H, tb, yt + (size_t)b * H);
      else if (isa == MRL__ISA_AVX2)
        j = mrl__lstm_out_run8(H, gb + 3 * H, tb, yt + (size_t)b * H);
#endif
      for (; j < H; j++) yt[(size_t)b * H + j] = gb[3 * H + j] * tb[j];
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

MRL_DEF mrl_tensor *mrl_lstm_sequence(const mrl_lstm_layer *l, mrl_graph *g, mrl_tensor *x, int T,
                                      int B, mrl_tensor *h0, mrl_tensor *c0,
                                      const float *episode_start, mrl_tensor **h_out,
                                      mrl_tensor **c_out) {
  const float *keep;
  if (h_out) *h_out = NULL;
  if (c_out) *c_out = NULL;
  if (!mrl__keep_from_start(g, episode_start, T, B, &keep)) return NULL;
  return mrl__lstm_run(l, g, x, T, B, h0, c0, keep, h_out, c_out);
}

MRL_DEF void mrl_lstm_cell(const mrl_lstm_layer *l, mrl_graph *g, mrl_tensor *x, mrl_tensor *h,
                           mrl_tensor *c, const float *episode_start, mrl_tensor **h_out,
                           mrl_tensor **c_out) {
  /* one step is a sequence of length one */
  int B = x ? x->shape[0] : 0;
  mrl_tensor *y = mrl_lstm_sequence(l, g, x, 1, B, h, c, episode_start, NULL, c_out);
  *h_out = y;
  if (!y && c_out) *c_out = NULL;
}

/* ---- GRU ---- >>gru */

static void mrl__gru_layer_init_k(mrl_gru_layer *l, mrl_params *p, const char *name, int k,
                                  int input, int hidden, mrl_init init) {
  int ids[4];
  l->params = p;
  l->input_size = input;
  l->hidden_size = hidden;
  mrl__rnn_declare(p, name, k, 3, input, hidden, init, mrl_init_default(), ids);
  l->weight_ih = ids[0];
  l->weight_hh = ids[1];
  l->bias_ih = ids[2];
  l->bias_hh = ids[3];
}

MRL_DEF void mrl_gru_layer_init(mrl_gru_layer *l, mrl_params *p, const char *name, int input,
                                int hidden, mrl_init init) {
  mrl__gru_layer_init_k(l, p, name, 0, input, hidden, init);
}

MRL_DEF void mrl_gru_cell_init(mrl_gru_layer *l, mrl_params *p, const char *name, int input,
                               int hidden, mrl_init init) {
  mrl__gru_layer_init_k(l, p, name, -1, input, hidden, init);
}

#ifdef MRL__HAVE_WIDE_ACT
/* The GRU's per-unit loops, 8 or 16 units at a time on AVX2 or AVX-512 (as
 * the LSTM's: each lane the scalar loop's expressions in the same order, no
 * contraction; each returns how many it did, the callers finish the rest).
 * add: x += y over n; gate: n's pre-activation += r (W_hn h + b_hn), keeping
 * that projection; out: h' = (h - n) z + n; back: one row's gate gradients;
 * dh: dh = (dh + dhz) keep. */
#define MRL__GRU_WIDE(W, TGT)                                                                      \
  TGT MRL__NOCONTRACT_ATTR static int mrl__gru_add_run##W(int n, float *x, const float *y) {       \
    MRL__NOCONTRACT                                                                                \
    int j = 0;                                                                                     \
    for (; j + W <= n; j += W) {                                                                   \
      mrl__f##W a, b;                                                                              \
      memcpy(&a, x + j, sizeof a);                                                                 \
      memcpy(&b, y + j, sizeof b);                                                                 \
      a += b;                                                                                      \
      memcpy(x + j, &a, sizeof a);                                                                 \
    }                                                                                              \
    return j;                                                                                      \
  }                                                                                                \
  TGT MRL__NOCONTRACT_ATTR static int mrl__gru_gate_run##W(int H, float *gb, const float *hb,      \
                                                           float *nb) {                            \
    MRL__NOCONTRACT                                                                                \
    int j = 0;                                                                                     \
    for (; j + W <= H; j += W) {                                                                   \
      mrl__f##W r, hn, g;                                                                          \
      memcpy(&r, gb + j, sizeof r);                                                                \
      memcpy(&hn, hb + 2 * H + j, sizeof hn);                                                      \
      memcpy(&g, gb + 2 * H + j, sizeof g);                                                        \
      memcpy(nb + j, &hn, sizeof hn);                                                              \
      g += r * hn;                                                                                 \
      memcpy(gb + 2 * H + j, &g, sizeof g);                                                        \
    }                                                                                              \
    return j;                                                                                      \
  }                                                                                                \
  TGT MRL__NOCONTRACT_ATTR static int mrl__gru_out_run##W(int H, const float *gb,                  \
                                                          const float *hkb, float *yb) {           \
    MRL__NOCONTRACT                                                                                \
    int j = 0;                                                                                     \
    for (; j + W <= H; j += W) {                                                                   \
      mrl__f##W z, n, h;                                                                           \
      memcpy(&z, gb + H + j, sizeof z);                                                            \
      memcpy(&n, gb + 2 * H + j, sizeof n);                                                        \
      memcpy(&h, hkb + j, sizeof h);                                                               \
      h = (h - n) * z + n;                                                                         \
      memcpy(yb + j, &h, sizeof h);                                                                \
    }                                                                                              \
    return j;                                                                                      \
  }                                                                                                \
  TGT MRL__NOCONTRACT_ATTR static int mrl__gru_back_run##W(                                        \
      int H, const float *gb, const float *hk, const float *hn, const float *gy, const float *dhp, \
      float *dxb, float *dhb, float *dhz) {                                                        \
    MRL__NOCONTRACT                                                                                \
    int j = 0;                                                                                     \
    for (; j + W <= H; j += W) {                                                                   \
      mrl__f##W r, z, n, d, dn, v, w, h, q;                                                        \
      memcpy(&r, gb + j, sizeof r);                                                                \
      memcpy(&z, gb + H + j, sizeof z);                                                            \
      memcpy(&n, gb + 2 * H + j, sizeof n);                                                        \
      memcpy(&d, gy + j, sizeof d);                                                                \
      memcpy(&v, dhp + j, sizeof v);                                                               \
      memcpy(&h, hn + j, sizeof h);                                                                \
      memcpy(&q, hk + j, sizeof q);                                                                \
      d = d + v;                                                                                   \
      dn = d * (1.0f - z) * (1.0f - n * n);                                                        \
      v = dn * h * r * (1.0f - r);                                                                 \
      memcpy(dxb + j, &v, sizeof v);                                                               \
      memcpy(dhb + j, &v, sizeof v);                                                               \
      w = d * (q - n) * z * (1.0f - z);                                                            \
      memcpy(dxb + H + j, &w, sizeof w);                                                           \
      memcpy(dhb + H + j, &w, sizeof w);                                                           \
      memcpy(dxb + 2 * H + j, &dn, sizeof dn);                                                     \
      dn = dn * r;                                                                                 \
      memcpy(dhb + 2 * H + j, &dn, sizeof dn);                                                     \
      d = d * z;                                                                                   \
      memcpy(dhz + j, &d, sizeof d);                                                               \
    }                                                                                              \
    return j;                                                                                      \
  }                                                                                                \
  TGT MRL__NOCONTRACT_ATTR static int mrl__gru_dh_run##W(int H, float *dh, const float *dhz,       \
                                                         float keep) {                             \
    MRL__NOCONTRACT                                                                                \
    int j = 0;                                                                                     \
    for (; j + W <= H; j += W) {                                                                   \
      mrl__f##W a, b;                                                                              \
      memcpy(&a, dh + j, sizeof a);                                                                \
      memcpy(&b, dhz + j, sizeof b);                                                               \
      a = (a + b) * keep;                                                                          \
      memcpy(dh + j, &a, sizeof a);                                                                \
    }                                                                                              \
    return j;                                                                                      \
  }
MRL__GRU_WIDE(8, MRL__TARGET_AVX2)
MRL__GRU_WIDE(16, MRL__TARGET_AVX512)
#undef MRL__GRU_WIDE
/* Which of them this CPU runs: MRL__GRU_RUN(name, args) calls the widest and
 * yields how many units it did (0 where there are none). */
#define MRL__GRU_RUN(isa, name, ...)                                                               \
  ((isa) == MRL__ISA_AVX512 ? mrl__gru_##name##_run16(__VA_ARGS__)                                 \
   : (isa) == MRL__ISA_AVX2 ? mrl__gru_##name##_run8(__VA_ARGS__)                                  \
                            : 0)
#else
#define MRL__GRU_RUN(isa, name, ...) ((void)(isa), 0)
#endif

/* One fused node per sequence, as the LSTM. Saved per step: activated gates
 * (r, z, n), the hidden projection of the n gate (W_hn h + b_hn, which the
 * reset gate multiplies) and the masked previous state. Backward keeps two
 * pre-activation gradients, for the input side and the hidden side, since
 * they differ in the n gate (r * dn on the hidden side). */
typedef struct mrl__gru_saved {
  mrl_tensor *x, *h0, *w_ih, *w_hh, *b_ih, *b_hh;
  const float *keep;
  float *gates;         /* [T*B, 3H] */
  float *hn;            /* [T*B, H] */
  float *h_prev;        /* [T*B, H]: keep * h_{t-1} */
  float *dxp, *dhh;     /* [T*B, 3H] backward scratch */
  float *dh_prev, *dhz; /* [B, H] backward scratch */
  float *w_pack;        /* prepacked W_hh (mrl__rnn_prepack), or NULL */
  int T, B;
} mrl__gru_saved;

static void mrl__gru_backward(mrl_node *nd) {
  mrl__gru_saved *s = (mrl__gru_saved *)(void *)nd->extra[0];
  mrl_tensor *y = nd->out;
  int T = s->T, B = s->B, H = y->shape[1], I = s->x->shape[1], G = 3 * H, t, b, j;
  int isa = mrl__gemm_isa();
  size_t BH = (size_t)B * H, k, N = (size_t)T * B;
  if (s->w_pack) mrl__gemm_pack_b(isa, 0, H, G, s->w_hh->data, H, s->w_pack);
  memset(s->dh_prev, 0, sizeof(float) * BH);
  for (t = T - 1; t >= 0; t--) {
    const float *gt = s->gates + (size_t)t * B * G, *hk = s->h_prev + (size_t)t * BH;
    const float *hn = s->hn + (size_t)t * BH, *gy = y->grad + (size_t)t * BH;
    float *dx = s->dxp + (size_t)t * B * G, *dh = s->dhh + (size_t)t * B * G;
    for (b = 0; b < B; b++) {
      const float *gb = gt + (size_t)b * G;
      float *dxb = dx + (size_t)b * G, *dhb = dh + (size_t)b * G;
      j = MRL__GRU_RUN(isa, back, H, gb, hk + (size_t)b * H, hn + (size_t)b * H, gy + (size_t)b * H,
                       s->dh_prev + (size_t)b * H, dxb, dhb, s->dhz + (size_t)b * H);
      for (; j < H; j++) {
        float r = gb[j], z = gb[H + j], n = gb[2 * H + j], d, dn;
        k = (size_t)b * H + j;
        d = gy[k] + s->dh_prev[k];
        dn = d * (1.0f - z) * (1.0f - n * n);
        dxb[j] = dn * hn[k] * r * (1.0f - r);
        dxb[H + j] = d * (hk[k] - n) * z * (1.0f - z);
        dxb[2 * H + j] = dn;
        dhb[j] = dxb[j];
        dhb[H + j] = dxb[H + j];
        dhb[2 * H + j] = dn * r;
        s->dhz[k] = d * z;
      }
    }
    if (s->w_pack)
      mrl__gemm_prepacked(isa, 0, B, H, G, dh, G, s->w_pack, 0.0f, s->dh_prev, H);
    else
      mrl__rnn_back_h(B, H, G, dh, s->w_hh->data, s->dh_prev);
    for (b = 0; b < B; b++) {
      float keep = s->keep ? s->keep[(size_t)t * B + b] : 1.0f;
      j = MRL__GRU_RUN(isa, dh, H, s->dh_prev + (size_t)b * H, s->dhz + (size_t)b * H, keep);
      for (; j < H; j++) {
        k = (size_t)b * H + j;
        s->dh_prev[k] = (s->dh_prev[k] + s->dhz[k]) * keep;
      }
    }
  }
  if (s->h0->grad)
    for (k = 0; k < BH; k++) s->h0->grad[k] += s->dh_prev[k];
  if (s->x->grad) mrl_gemm(0, 0, T * B, I, G, s->dxp, G, s->w_ih->data, I, 1.0f, s->x->grad, I);
  if (s->w_ih->grad) mrl_gemm(1, 0, G, I, T * B, s->dxp, G, s->x->data, I, 1.0f, s->w_ih->grad, I);
  if (s->w_hh->grad) mrl_gemm(1, 0, G, H, T * B, s->dhh, G, s->h_prev, H, 1.0f, s->w_hh->grad, H);
  mrl__add_col_sums(s->b_ih->grad, NULL, s->dxp, N, G);
  mrl__add_col_sums(s->b_hh->grad, NULL, s->dhh, N, G);
}

/* y's last block as a [B, H] tensor sharing y's data and gradient. */
static mrl_tensor *mrl__last_block(mrl_graph *g, mrl_tensor *y, int T, int B) {
  mrl_tensor *v = (mrl_tensor *)mrl_graph_alloc(g, sizeof(mrl_tensor));
  size_t off = (size_t)(T - 1) * B * y->shape[1];
  if (!v) return NULL;
  *v = mrl_tensor_make2(y->data + off, y->grad ? y->grad + off : NULL, B, y->shape[1]);
  return v;
}

static mrl_tensor *mrl__gru_run(const mrl_gru_layer *l, mrl_graph *g, mrl_tensor *x, int T, int B,
                                mrl_tensor *h0, const float *keep, mrl_tensor **h_out) {
  mrl_tensor *w_ih, *w_hh, *b_ih, *b_hh, *y, *h_last;
  mrl__gru_saved *s;
  mrl_node *nd;
  float *hh;
  int H = l->hidden_size, I = l->input_size, G = 3 * H, t, b, j, wants, isa = mrl__gemm_isa();
  size_t BH = (size_t)B * H, N = (size_t)T * B;
  if (h_out) *h_out = NULL;
  if (!x || !h0) return NULL;
  w_ih = mrl_params_tensor(l->params, l->weight_ih);
  w_hh = mrl_params_tensor(l->params, l->weight_hh);
  b_ih = mrl_params_tensor(l->params, l->bias_ih);
  b_hh = mrl_params_tensor(l->params, l->bias_hh);
  MRL_SHAPE_CHECK(T >= 1 && B >= 1, "gru", "T and B must be positive", x, h0);
  MRL_SHAPE_CHECK(x->ndim == 2 && x->shape[0] == T * B && x->shape[1] == I, "gru",
                  "x must be [T*B, input_size]", x, w_ih);
  MRL_SHAPE_CHECK(h0->ndim == 2 && h0->shape[0] == B && h0->shape[1] == H, "gru",
                  "h0 must be [B, hidden_size]", h0, x);
  wants = mrl_graph_wants_grad(g, x, h0) || mrl_graph_wants_grad(g, w_ih, w_hh) ||
          mrl_graph_wants_grad(g, b_ih, b_hh);
  y = mrl_tensor_new2(g, T * B, H, wants);
  s = (mrl__gru_saved *)mrl_graph_alloc(g, sizeof(mrl__gru_saved));
  hh = (float *)mrl_graph_alloc(g, sizeof(float) * BH * 3);
  if (!y || !s || !hh) return NULL;
  memset(s, 0, sizeof *s);
  s->gates = (float *)mrl_graph_alloc(g, sizeof(float) * N * G);
  s->hn = (float *)mrl_graph_alloc(g, sizeof(float) * N * H);
  s->h_prev = (float *)mrl_graph_alloc(g, sizeof(float) * N * H);
  h_last = mrl__last_block(g, y, T, B);
  if (!s->gates || !s->hn || !s->h_prev || !h_last) return NULL;
  if (mrl__rnn_prepack(T, B, H, G)) { /* W_hh^T here, W_hh in backward: room for either */
    size_t f = mrl__gemm_packed_floats(isa, G, H), r = mrl__gemm_packed_floats(isa, H, G);
    if (!(s->w_pack = (float *)mrl_graph_alloc(g, sizeof(float) * (f > r ? f : r)))) return NULL;
    mrl__gemm_pack_b(isa, 1, G, H, w_hh->data, H, s->w_pack);
  }
  /* input projections of every step at once, each chain starting from b_ih
   * (the gemm's start row: the same sums as copying it into every row) */
  mrl__gemm_run(isa, 0, 1, T * B, G, I, x->data, I, w_ih->data, I, 0.0f, b_ih->data, s->gates, G);
  for (t = 0; t < T; t++) {
    const float *hp = t ? y->data + (size_t)(t - 1) * BH : h0->data;
    float *hk = s->h_prev + (size_t)t * BH, *gt = s->gates + (size_t)t * B * G;
    float *hn = s->hn + (size_t)t * BH, *yt = y->data + (size_t)t * BH;
    for (b = 0; b < B; b++) {
      float kb = keep ? keep[(size_t)t * B + b] : 1.0f;
      for (j = 0; j < H; j++) hk[(size_t)b * H + j] = hp[(size_t)b * H + j] * kb;
      memcpy(hh + (size_t)b * G, b_hh->data, sizeof(float) * G);
    }
    if (s->w_pack)
      mrl__gemm_prepacked(isa, 0, B, G, H, hk, H, s->w_pack, 1.0f, hh, G);
    else
      mrl__xwt(B, G, H, hk, H, w_hh->data, H, hh, G);
    for (b = 0; b < B; b++) {
      float *gb = gt + (size_t)b * G, *hb = hh + (size_t)b * G, *nb = hn + (size_t)b * H;
      const float *hkb = hk + (size_t)b * H;
      float *yb = yt + (size_t)b * H;
      for (j = MRL__GRU_RUN(isa, add, 2 * H, gb, hb); j < 2 * H; j++) gb[j] += hb[j];
      mrl__sigmoid_n(gb, gb, 2 * H); /* r, z */
      for (j = MRL__GRU_RUN(isa, gate, H, gb, hb, nb); j < H; j++) {
        nb[j] = hb[2 * H + j];
        gb[2 * H + j] += gb[j] * nb[j];
      }
      mrl__tanh_n(gb + 2 * H, gb + 2 * H, H); /* n */
      /* torch's form of (1 - z) n + z h */
      for (j = MRL__GRU_RUN(isa, out, H, gb, hkb, yb); j < H; j++)
        yb[j] = (hkb[j] - gb[2 * H + j]) * gb[H + j] + gb[2 * H + j];
    }
  }
  MRL__FINITE("gru", y, x, h0);
  if (h_out) *h_out = h_last;
  if (!wants) return y;
  if ((nd = mrl_graph_record(g, "gru", mrl__gru_backward, y)) != NULL) {
    s->dxp = (float *)mrl_graph_alloc(g, sizeof(float) * N * G);
    s->dhh = (float *)mrl_graph_alloc(g, sizeof(float) * N * G);
    s->dh_prev = (float *)mrl_graph_alloc(g, sizeof(float) * BH);
    s->dhz = (float *)mrl_graph_alloc(g, sizeof(float) * BH);
    if (!s->dxp || !s->dhh || !s->dh_prev || !s->dhz) {
      g->tape = nd->prev;
      if (h_out) *h_out = NULL;
      return NULL;
    }
    s->x = x;
    s->h0 = h0;
    s->w_ih = w_ih;
    s->w_hh = w_hh;
    s->b_ih = b_ih;
    s->b_hh = b_hh;
    s->keep = keep;
    s->T = T;
    s->B = B;
    nd->extra[0] = (mrl_tensor *)(void *)s;
  }
  return y;
}

MRL_DEF mrl_tensor *mrl_gru_sequence(const mrl_gru_layer *l, mrl_graph *g, mrl_tensor *x, int T,
                                     int B, mrl_tensor *h0, const float *episode_start,
                                     mrl_tensor **h_out) {
  const float *keep;
  if (h_out) *h_out = NULL;
  if (!mrl__keep_from_start(g, episode_start, T, B, &keep)) return NULL;
  return mrl__gru_run(l, g, x, T, B, h0, keep, h_out);
}

MRL_DEF mrl_tensor *mrl_gru_cell(const mrl_gru_layer *l, mrl_graph *g, mrl_tensor *x, mrl_tensor *h,
                                 const float *episode_start) {
  return x ? mrl_gru_sequence(l, g, x, 1, x->shape[0], h, episode_start, NULL) : NULL;
}

/* ---- Elman RNN ---- >>elman */

static void mrl__elman_layer_init_k(mrl_elman_layer *l, mrl_params *p, const char *name, int k,
                                    int input, int hidden, mrl_activation nonlinearity,
                                    mrl_init init) {
  int ids[4];
  mrl__check_activation("elman_layer_init", nonlinearity, 0, NULL);
  l->params = p;
  l->input_size = input;
  l->hidden_size = hidden;
  l->nonlinearity = nonlinearity;
  mrl__rnn_declare(p, name, k, 1, input, hidden, init, mrl_init_default(), ids);
  l->weight_ih = ids[0];
  l->weight_hh = ids[1];
  l->bias_ih = ids[2];
  l->bias_hh = ids[3];
}

MRL_DEF void mrl_elman_layer_init(mrl_elman_layer *l, mrl_params *p, const char *name, int input,
                                  int hidden, mrl_activation nonlinearity, mrl_init init) {
  mrl__elman_layer_init_k(l, p, name, 0, input, hidden, nonlinearity, init);
}

MRL_DEF void mrl_elman_cell_init(mrl_elman_layer *l, mrl_params *p, const char *name, int input,
                                 int hidden, mrl_activation nonlinearity, mrl_init init) {
  mrl__elman_layer_init_k(l, p, name, -1, input, hidden, nonlinearity, init);
}

/* Saved: the masked previous states; the outputs themselves give the
 * activation's derivative (1 - h^2 for tanh, h > 0 for relu). */
typedef struct mrl__elman_saved {
  mrl_tensor *x, *h0, *w_ih, *w_hh, *b_ih, *b_hh;
  const float *keep;
  float *h_prev;  /* [T*B, H] */
  float *dpre;    /* [T*B, H] backward scratch */
  float *dh_prev; /* [B, H] */
  float *w_pack;  /* prepacked W_hh (mrl__rnn_prepack), or NULL */
  int T, B, relu;
} mrl__elman_saved;

static void mrl__elman_backward(mrl_node *nd) {
  mrl__elman_saved *s = (mrl__elman_saved *)(void *)nd->extra[0];
  mrl_tensor *y = nd->out;
  int T = s->T, B = s->B, H = y->shape[1], I = s->x->shape[1], t, b, j, isa = mrl__gemm_isa();
  size_t BH = (size_t)B * H, k, N = (size_t)T * B;
  if (s->w_pack) mrl__gemm_pack_b(isa, 0, H, H, s->w_hh->data, H, s->w_pack);
  memset(s->dh_prev, 0, sizeof(float) * BH);
  for (t = T - 1; t >= 0; t--) {
    const float *yt = y->data + (size_t)t * BH, *gy = y->grad + (size_t)t * BH;
    float *dp = s->dpre + (size_t)t * BH;
    for (k = 0; k < BH; k++) {
      float d = gy[k] + s->dh_prev[k];
      dp[k] = s->relu ? (yt[k] > 0.0f ? d : 0.0f) : d * (1.0f - yt[k] * yt[k]);
    }
    if (s->w_pack)
      mrl__gemm_prepacked(isa, 0, B, H, H, dp, H, s->w_pack, 0.0f, s->dh_prev, H);
    else
      mrl__rnn_back_h(B, H, H, dp, s->w_hh->data, s->dh_prev);
    if (s->keep)
      for (b = 0; b < B; b++)
        for (j = 0; j < H; j++) s->dh_prev[(size_t)b * H + j] *= s->keep[(size_t)t * B + b];
  }
  if (s->h0->grad)
    for (k = 0; k < BH; k++) s->h0->grad[k] += s->dh_prev[k];
  if (s->x->grad) mrl_gemm(0, 0, T * B, I, H, s->dpre, H, s->w_ih->data, I, 1.0f, s->x->grad, I);
  if (s->w_ih->grad) mrl_gemm(1, 0, H, I, T * B, s->dpre, H, s->x->data, I, 1.0f, s->w_ih->grad, I);
  if (s->w_hh->grad) mrl_gemm(1, 0, H, H, T * B, s->dpre, H, s->h_prev, H, 1.0f, s->w_hh->grad, H);
  mrl__add_col_sums(s->b_ih->grad, s->b_hh->grad, s->dpre, N, H);
}

static mrl_tensor *mrl__elman_run(const mrl_elman_layer *l, mrl_graph *g, mrl_tensor *x, int T,
                                  int B, mrl_tensor *h0, const float *keep, mrl_tensor **h_out) {
  mrl_tensor *w_ih, *w_hh, *b_ih, *b_hh, *y, *h_last;
  mrl__elman_saved *s;
  mrl_node *nd;
  int H = l->hidden_size, I = l->input_size, t, b, j, wants, relu = l->nonlinearity == MRL_ACT_RELU;
  int isa = mrl__gemm_isa();
  size_t BH = (size_t)B * H, N = (size_t)T * B, k;
  if (h_out) *h_out = NULL;
  if (!x || !h0) return NULL;
  w_ih = mrl_params_tensor(l->params, l->weight_ih);
  w_hh = mrl_params_tensor(l->params, l->weight_hh);
  b_ih = mrl_params_tensor(l->params, l->bias_ih);
  b_hh = mrl_params_tensor(l->params, l->bias_hh);
  MRL_SHAPE_CHECK(T >= 1 && B >= 1, "elman", "T and B must be positive", x, h0);
  MRL_SHAPE_CHECK(x->ndim == 2 && x->shape[0] == T * B && x->shape[1] == I, "elman",
                  "x must be [T*B, input_size]", x, w_ih);
  MRL_SHAPE_CHECK(h0->ndim == 2 && h0->shape[0] == B && h0->shape[1] == H, "elman",
                  "h0 must be [B, hidden_size]", h0, x);
  wants = mrl_graph_wants_grad(g, x, h0) || mrl_graph_wants_grad(g, w_ih, w_hh) ||
          mrl_graph_wants_grad(g, b_ih, b_hh);
  y = mrl_tensor_new2(g, T * B, H, wants);
  s = (mrl__elman_saved *)mrl_graph_alloc(g, sizeof(mrl__elman_saved));
  if (!y || !s) return NULL;
  memset(s, 0, sizeof *s);
  s->h_prev = (float *)mrl_graph_alloc(g, sizeof(float) * N * H);
  h_last = mrl__last_block(g, y, T, B);
  if (!s->h_prev || !h_last) return NULL;
  if (mrl__rnn_prepack(T, B, H, H)) { /* W_hh^T here, W_hh in backward (same size) */
    if (!(s->w_pack =
              (float *)mrl_graph_alloc(g, sizeof(float) * mrl__gemm_packed_floats(isa, H, H))))
      return NULL;
    mrl__gemm_pack_b(isa, 1, H, H, w_hh->data, H, s->w_pack);
  }
  /* y first holds the pre-activations' input side, b_ih + b_hh + W_ih x */
  for (j = 0; j < H; j++) y->data[j] = b_ih->data[j] + b_hh->data[j];
  for (k = 1; k < N; k++) memcpy(y->data + k * H, y->data, sizeof(float) * H);
  mrl__xwt(T * B, H, I, x->data, I, w_ih->data, I, y->data, H);
  for (t = 0; t < T; t++) {
    const float *hp = t ? y->data + (size_t)(t - 1) * BH : h0->data;
    float *hk = s->h_prev + (size_t)t * BH, *yt = y->data + (size_t)t * BH;
    if (!keep) /* x * 1 is x: a plain copy */
      memcpy(hk, hp, sizeof(float) * BH);
    else
      for (b = 0; b < B; b++) {
        float kb = keep[(size_t)t * B + b];
        for (j = 0; j < H; j++) hk[(size_t)b * H + j] = hp[(size_t)b * H + j] * kb;
      }
    if (s->w_pack)
      mrl__gemm_prepacked(isa, 0, B, H, H, hk, H, s->w_pack, 1.0f, yt, H);
    else
      mrl__xwt(B, H, H, hk, H, w_hh->data, H, yt, H);
    if (relu)
      for (k = 0; k < BH; k++) yt[k] = yt[k] > 0.0f ? yt[k] : 0.0f;
    else
      mrl__tanh_n(yt, yt, (int)BH);
  }
  MRL__FINITE("elman", y, x, h0);
  if (h_out) *h_out = h_last;
  if (!wants) return y;
  if ((nd = mrl_graph_record(g, "elman", mrl__elman_backward, y)) != NULL) {
    s->dpre = (float *)mrl_graph_alloc(g, sizeof(float) * N * H);
    s->dh_prev = (float *)mrl_graph_alloc(g, sizeof(float) * BH);
    if (!s->dpre || !s->dh_prev) {
      g->tape = nd->prev;
      if (h_out) *h_out = NULL;
      return NULL;
    }
    s->x = x;
    s->h0 = h0;
    s->w_ih = w_ih;
    s->w_hh = w_hh;
    s->b_ih = b_ih;
    s->b_hh = b_hh;
    s->keep = keep;
    s->T = T;
    s->B = B;
    s->relu = relu;
    nd->extra[0] = (mrl_tensor *)(void *)s;
  }
  return y;
}

MRL_DEF mrl_tensor *mrl_elman_sequence(const mrl_elman_layer *l, mrl_graph *g, mrl_tensor *x, int T,
                                       int B, mrl_tensor *h0, const float *episode_start,
                                       mrl_tensor **h_out) {
  const float *keep;
  if (h_out) *h_out = NULL;
  if (!mrl__keep_from_start(g, episode_start, T, B, &keep)) return NULL;
  return mrl__elman_run(l, g, x, T, B, h0, keep, h_out);
}

MRL_DEF mrl_tensor *mrl_elman_cell(const mrl_elman_layer *l, mrl_graph *g, mrl_tensor *x,
                                   mrl_tensor *h, const float *episode_start) {
  return x ? mrl_elman_sequence(l, g, x, 1, x->shape[0], h, episode_start, NULL) : NULL;
}

/* ---- multi-layer stacks ---- >>rnn_stack */

/* Rows [layer*B, (layer+1)*B) of a stacked state, sharing data and gradient. */
static mrl_tensor *mrl__state_rows(mrl_graph *g, mrl_tensor *t, int layer, int B) {
  mrl_tensor *v = (mrl_tensor *)mrl_graph_alloc(g, sizeof(mrl_tensor));
  size_t off = (size_t)layer * B * t->shape[1];
  if (!v) return NULL;
  *v = mrl_tensor_make2(t->data + off, t->grad ? t->grad + off : NULL, B, t->shape[1]);
  return v;
}

/* The per-layer final states stacked into [L*B, H] (the tensor itself when L = 1). */
static mrl_tensor *mrl__stack_states(mrl_graph *g, mrl_tensor **parts, int L) {
  int i;
  for (i = 0; i < L; i++)
    if (!parts[i]) return NULL;
  return L == 1 ? parts[0] : mrl_concat_rows(g, parts, L);
}

static void mrl__stack_check(const char *op, mrl_tensor *h0, int L, int B, int H) {
  MRL_SHAPE_CHECK(h0->ndim == 2 && h0->shape[0] == L * B && h0->shape[1] == H, op,
                  "initial state must be [num_layers*B, hidden_size]", h0, NULL);
}

MRL_DEF void mrl_lstm_init(mrl_lstm *m, mrl_params *p, const char *name, int input, int hidden,
                           int num_layers, mrl_init init, float forget_bias) {
  int k;
  MRL_ASSERT(num_layers >= 1 && num_layers <= MRL_RNN_MAX_LAYERS);
  memset(m, 0, sizeof *m);
  m->num_layers = num_layers;
  m->input_size = input;
  m->hidden_size = hidden;
  for (k = 0; k < num_layers; k++)
    mrl__lstm_layer_init_k(&m->layers[k], p, name, k, k ? hidden : input, hidden, init,
                           forget_bias);
}

MRL_DEF void mrl_gru_init(mrl_gru *m, mrl_params *p, const char *name, int input, int hidden,
                          int num_layers, mrl_init init) {
  int k;
  MRL_ASSERT(num_layers >= 1 && num_layers <= MRL_RNN_MAX_LAYERS);
  memset(m, 0, sizeof *m);
  m->num_layers = num_layers;
  m->input_size = input;
  m->hidden_size = hidden;
  for (k = 0; k < num_layers; k++)
    mrl__gru_layer_init_k(&m->layers[k], p, name, k, k ? hidden : input, hidden, init);
}

MRL_DEF void mrl_elman_init(mrl_elman *m, mrl_params *p, const char *name, int input, int hidden,
                            int num_layers, mrl_activation nonlinearity, mrl_init init) {
  int k;
  MRL_ASSERT(num_layers >= 1 && num_layers <= MRL_RNN_MAX_LAYERS);
  memset(m, 0, sizeof *m);
  m->num_layers = num_layers;
  m->input_size = input;
  m->hidden_size = hidden;
  for (k = 0; k < num_layers; k++)
    mrl__elman_layer_init_k(&m->layers[k], p, name, k, k ? hidden : input, hidden, nonlinearity,
                            init);
}

/* The stacks build the keep mask once and share it between their layers. */
MRL_DEF mrl_tensor *mrl_lstm_forward(const mrl_lstm *m, mrl_graph *g, mrl_tensor *x, int T, int B,
                                     mrl_tensor *h0, mrl_tensor *c0, const float *episode_start,
                                     mrl_tensor **h_out, mrl_tensor **c_out) {
  mrl_tensor *hs[MRL_RNN_MAX_LAYERS], *cs[MRL_RNN_MAX_LAYERS];
  const float *keep;
  int k, L = m->num_layers;
  if (h_out) *h_out = NULL;
  if (c_out) *c_out = NULL;
  if (!x || !h0 || !c0) return NULL;
  mrl__stack_check("lstm_forward", h0, L, B, m->hidden_size);
  mrl__stack_check("lstm_forward", c0, L, B, m->hidden_size);
  if (!mrl__keep_from_start(g, episode_start, T, B, &keep)) return NULL;
  for (k = 0; k < L && x; k++)
    x = mrl__lstm_run(&m->layers[k], g, x, T, B, mrl__state_rows(g, h0, k, B),
                      mrl__state_rows(g, c0, k, B), keep, &hs[k], &cs[k]);
  if (!x) return NULL;
  if (h_out && !(*h_out = mrl__stack_states(g, hs, L))) return NULL;
  if (c_out && !(*c_out = mrl__stack_states(g, cs, L))) {
    if (h_out) *h_out = NULL;
    return NULL;
  }
  return x;
}

MRL_DEF mrl_tensor *mrl_gru_forward(const mrl_gru *m, mrl_graph *g, mrl_tensor *x, int T, int B,
                                    mrl_tensor *h0, const float *episode_start,
                                    mrl_tensor **h_out) {
  mrl_tensor *hs[MRL_RNN_MAX_LAYERS];
  const float *keep;
  int k, L = m->num_layers;
  if (h_out) *h_out = NULL;
  if (!x || !h0) return NULL;
  mrl__stack_check("gru_forward", h0, L, B, m->hidden_size);
  if (!mrl__keep_from_start(g, episode_start, T, B, &keep)) return NULL;
  for (k = 0; k < L && x; k++)
    x = mrl__gru_run(&m->layers[k], g, x, T, B, mrl__state_rows(g, h0, k, B), keep, &hs[k]);
  if (!x) return NULL;
  if (h_out && !(*h_out = mrl__stack_states(g, hs, L))) return NULL;
  return x;
}

MRL_DEF mrl_tensor *mrl_elman_forward(const mrl_elman *m, mrl_graph *g, mrl_tensor *x, int T, int B,
                                      mrl_tensor *h0, const float *episode_start,
                                      mrl_tensor **h_out) {
  mrl_tensor *hs[MRL_RNN_MAX_LAYERS];
  const float *keep;
  int k, L = m->num_layers;
  if (h_out) *h_out = NULL;
  if (!x || !h0) return NULL;
  mrl__stack_check("elman_forward", h0, L, B, m->hidden_size);
  if (!mrl__keep_from_start(g, episode_start, T, B, &keep)) return NULL;
  for (k = 0; k < L && x; k++)
    x = mrl__elman_run(&m->layers[k], g, x, T, B, mrl__state_rows(g, h0, k, B), keep, &hs[k]);
  if (!x) return NULL;
  if (h_out && !(*h_out = mrl__stack_states(g, hs, L))) return NULL;
  return x;
}

/* ---- forward-mode rules of the fused recurrences >>rnn_jvp ----
 * mrl_graph_jvp's rules (memrl_tensor.h) for the LSTM, GRU and Elman nodes:
 * the tangent of every step follows the forward equations, differentiated
 * (dW: the weights' tangents from their grad buffers; dh', dc': the carried
 * tangents times keep, so an episode start cuts them as it cuts the state).
 * They reuse the node's backward scratch, so backward must not follow on
 * the same tape (mrl_graph_jvp marks it replayed). */

/* rows [N, G] of P += bias tangents + dX W^T + X dW^T (the input side of every step) */
static void mrl__jvp_in_side(float *P, size_t N, int G, int I, const mrl_tensor *x,
                             const mrl_tensor *w, const mrl_tensor *b1, const mrl_tensor *b2) {
  size_t r;
  int j;
  memset(P, 0, sizeof(float) * N * (size_t)G);
  for (r = 0; r < N; r++)
    for (j = 0; j < G; j++)
      P[r * G + j] = (b1 && b1->grad ? b1->grad[j] : 0.0f) + (b2 && b2->grad ? b2->grad[j] : 0.0f);
  if (x->grad) mrl_gemm(0, 1, (int)N, G, I, x->grad, I, w->data, I, 1.0f, P, G);
  if (w->grad) mrl_gemm(0, 1, (int)N, G, I, x->data, I, w->grad, I, 1.0f, P, G);
}

/* dh' = keep * (tangent of h_{t-1}) into dst [B, H]; P_t += dh' W_hh^T + h' dW_hh^T */
static void mrl__jvp_hidden_side(float *P_t, float *dst, const float *prev, const float *hk,
                                 const float *keep, int t, int B, int H, int G,
                                 const mrl_tensor *w_hh) {
  int b, j;
  for (b = 0; b < B; b++) {
    float kb = keep ? keep[(size_t)t * B + b] : 1.0f;
    for (j = 0; j < H; j++) dst[(size_t)b * H + j] = prev ? prev[(size_t)b * H + j] * kb : 0.0f;
  }
  mrl_gemm(0, 1, B, G, H, dst, H, w_hh->data, H, 1.0f, P_t, G);
  if (w_hh->grad) mrl_gemm(0, 1, B, G, H, hk, H, w_hh->grad, H, 1.0f, P_t, G);
}

static void mrl__lstm_jvp(mrl_node *nd) {
  mrl__lstm_saved *s = (mrl__lstm_saved *)(void *)nd->extra[0];
  mrl_tensor *y = nd->out;
  int T = s->T, B = s->B, H = y->shape[1], I = s->x->shape[1], G = 4 * H, t, b, j;
  size_t BH = (size_t)B * H, k;
  mrl__jvp_in_side(s->dpre, (size_t)T * B, G, I, s->x, s->w_ih, s->b_ih, s->b_hh);
  for (k = 0; k < BH; k++) s->dc[k] = s->c0->grad ? s->c0->grad[k] : 0.0f;
  for (t = 0; t < T; t++) {
    float *P = s->dpre + (size_t)t * B * G, *dy = y->grad + (size_t)t * BH;
    const float *prev = t ? y->grad + (size_t)(t - 1) * BH : s->h0->grad;
    const float *gt = s->gates + (size_t)t * B * G, *tc = s->tanh_c + (size_t)t * BH;
    const float *cp = s->c_prev + (size_t)t * BH;
    mrl__jvp_hidden_side(P, s->dh_prev, prev, s->h_prev + (size_t)t * BH, s->keep, t, B, H, G,
                         s->w_hh);
    for (b = 0; b < B; b++) {
      const float *gb = gt + (size_t)b * G, *pb = P + (size_t)b * G;
      float kb = s->keep ? s->keep[(size_t)t * B + b] : 1.0f;
      for (j = 0; j < H; j++) {
        float ig = gb[j], fg = gb[H + j], gg = gb[2 * H + j], og = gb[3 * H + j], dc;
        float di = ig * (1.0f - ig) * pb[j], df = fg * (1.0f - fg) * pb[H + j];
        float dg = (1.0f - gg * gg) * pb[2 * H + j], dO = og * (1.0f - og) * pb[3 * H + j];
        k = (size_t)b * H + j;
        dc = df * cp[k] + fg * (s->dc[k] * kb) + di * gg + ig * dg;
        s->dc[k] = dc;
        dy[k] = dO * tc[k] + og * (1.0f - tc[k] * tc[k]) * dc;
      }
    }
  }
  if (s->c_last->grad) memcpy(s->c_last->grad, s->dc, sizeof(float) * BH);
}

static void mrl__gru_jvp(mrl_node *nd) {
  mrl__gru_saved *s = (mrl__gru_saved *)(void *)nd->extra[0];
  mrl_tensor *y = nd->out;
  int T = s->T, B = s->B, H = y->shape[1], I = s->x->shape[1], G = 3 * H, t, b, j;
  size_t BH = (size_t)B * H, k;
  mrl__jvp_in_side(s->dxp, (size_t)T * B, G, I, s->x, s->w_ih, s->b_ih, NULL);
  for (t = 0; t < T; t++) {
    float *X = s->dxp + (size_t)t * B * G, *Hs = s->dhh + (size_t)t * B * G;
    float *dy = y->grad + (size_t)t * BH;
    const float *prev = t ? y->grad + (size_t)(t - 1) * BH : s->h0->grad;
    const float *gt = s->gates + (size_t)t * B * G, *hn = s->hn + (size_t)t * BH;
    const float *hk = s->h_prev + (size_t)t * BH;
    for (b = 0; b < B; b++)
      for (j = 0; j < G; j++) Hs[(size_t)b * G + j] = s->b_hh->grad ? s->b_hh->grad[j] : 0.0f;
    mrl__jvp_hidden_side(Hs, s->dh_prev, prev, hk, s->keep, t, B, H, G, s->w_hh);
    for (b = 0; b < B; b++) {
      const float *gb = gt + (size_t)b * G, *xb = X + (size_t)b * G, *hb = Hs + (size_t)b * G;
      for (j = 0; j < H; j++) {
        float r = gb[j], z = gb[H + j], n = gb[2 * H + j], dr, dz, dn;
        k = (size_t)b * H + j;
        dr = r * (1.0f - r) * (xb[j] + hb[j]);
        dz = z * (1.0f - z) * (xb[H + j] + hb[H + j]);
        dn = (1.0f - n * n) * (xb[2 * H + j] + dr * hn[k] + r * hb[2 * H + j]);
        dy[k] = (s->dh_prev[k] - dn) * z + (hk[k] - n) * dz + dn;
      }
    }
  }
}

static void mrl__elman_jvp(mrl_node *nd) {
  mrl__elman_saved *s = (mrl__elman_saved *)(void *)nd->extra[0];
  mrl_tensor *y = nd->out;
  int T = s->T, B = s->B, H = y->shape[1], I = s->x->shape[1], t;
  size_t BH = (size_t)B * H, k;
  mrl__jvp_in_side(s->dpre, (size_t)T * B, H, I, s->x, s->w_ih, s->b_ih, s->b_hh);
  for (t = 0; t < T; t++) {
    float *P = s->dpre + (size_t)t * BH, *dy = y->grad + (size_t)t * BH;
    const float *prev = t ? y->grad + (size_t)(t - 1) * BH : s->h0->grad;
    const float *yt = y->data + (size_t)t * BH;
    mrl__jvp_hidden_side(P, s->dh_prev, prev, s->h_prev + (size_t)t * BH, s->keep, t, B, H, H,
                         s->w_hh);
    for (k = 0; k < BH; k++)
      dy[k] = s->relu ? (yt[k] > 0.0f ? P[k] : 0.0f) : P[k] * (1.0f - yt[k] * yt[k]);
  }
}

/* GTrXL's fused gate: its backward and forward rule are further down */
static void mrl__gru_gate_backward(mrl_node *nd);
static void mrl__gru_gate_jvp(mrl_node *nd);
MRL_DEF mrl_jvp_fn mrl_nn_jvp_rule(const mrl_node *nd) {
  if (nd->backward == mrl__lstm_backward) return mrl__lstm_jvp;
  if (nd->backward == mrl__gru_backward) return mrl__gru_jvp;
  if (nd->backward == mrl__elman_backward) return mrl__elman_jvp;
  if (nd->backward == mrl__gru_gate_backward) return mrl__gru_gate_jvp;
  return mrl_jvp_rule(nd);
}

/* ---- categorical ---- >>categorical */

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

MRL_DEF mrl_tensor *mrl_categorical_kl(mrl_graph *g, mrl_tensor *log_p, mrl_tensor *log_q) {
  /* the tensor op takes logits; normalised log-probabilities are logits too */
  return mrl_kl_categorical(g, log_p, log_q, MRL_LOSS_NONE);
}

/* ---- diagonal Gaussian ---- >>gaussian */

#define MRL__LOG_2PI 1.8378770664093453

MRL_DEF mrl_tensor *mrl_gaussian_sample(mrl_graph *g, mrl_tensor *mean, mrl_tensor *log_std,
                                        mrl_rng *rng) {
  mrl_tensor *eps;
  int i;
  if (!mean || !log_std) return NULL;
  eps = mrl_tensor_new(g, mean->ndim, mean->shape, 0);
  if (!eps) return NULL;
  for (i = 0; i < eps->size; i++) eps->data[i] = mrl_rng_normal(rng);
  return mrl_add(g, mean, mrl_mul(g, eps, mrl_exp(g, log_std)));
}

MRL_DEF mrl_tensor *mrl_gaussian_log_prob(mrl_graph *g, mrl_tensor *mean, mrl_tensor *log_std,
                                          mrl_tensor *x) {
  mrl_tensor *z;
  int D;
  if (!mean || !log_std || !x) return NULL;
  MRL_SHAPE_CHECK(mrl_tensor_same_shape(x, mean), "gaussian_log_prob", "x and mean differ", x,
                  mean);
  D = mrl_tensor_cols(mean);
  z = mrl_mul(g, mrl_sub(g, x, mean), mrl_exp(g, mrl_neg(g, log_std)));
  return mrl_add_scalar(g,
                        mrl_sum_rows(g, mrl_sub(g, mrl_scale(g, mrl_square(g, z), -0.5f), log_std)),
                        (float)(-0.5 * MRL__LOG_2PI * D));
}

MRL_DEF mrl_tensor *mrl_gaussian_entropy(mrl_graph *g, mrl_tensor *log_std) {
  if (!log_std) return NULL;
  return mrl_add_scalar(g, log_std->ndim == 1 ? mrl_sum(g, log_std) : mrl_sum_rows(g, log_std),
                        (float)(0.5 * (1.0 + MRL__LOG_2PI) * mrl_tensor_cols(log_std)));
}

MRL_DEF mrl_tensor *mrl_gaussian_kl(mrl_graph *g, mrl_tensor *mean_p, mrl_tensor *log_std_p,
                                    mrl_tensor *mean_q, mrl_tensor *log_std_q) {
  return mrl_kl_normal(g, mean_p, log_std_p, mean_q, log_std_q, MRL_LOSS_NONE);
}

/* ---- tanh-squashed Gaussian ---- >>tanh_gaussian */

static void mrl__tanh_log_det_backward(mrl_node *nd) {
  mrl_tensor *u = nd->in[0], *y = nd->out;
  int i;
  if (!u->grad) return;
  for (i = 0; i < y->size; i++) u->grad[i] += -2.0f * tanhf(u->data[i]) * y->grad[i];
}

MRL_DEF mrl_tensor *mrl_tanh_log_det(mrl_graph *g, mrl_tensor *u) {
  mrl_tensor *y;
  mrl_node *nd;
  int i;
  if (!u) return NULL;
  y = mrl_op_output(g, u->ndim, u->shape, mrl_graph_wants_grad(g, u, NULL));
  if (!y) return NULL;
  for (i = 0; i < u->size; i++) {
    float v = -2.0f * u->data[i];
    /* softplus(v) = max(v, 0) + log1p(exp(-|v|)) never overflows */
    float sp = (v > 0.0f ? v : 0.0f) + log1pf(expf(-fabsf(v)));
    y->data[i] = 2.0f * (0.69314718055994531f - u->data[i] - sp);
  }
  MRL__FINITE("tanh_log_det", y, u, NULL);
  if ((nd = mrl_graph_record(g, "tanh_log_det", mrl__tanh_log_det_backward, y)) != NULL)
    nd->in[0] = u;
  return y;
}

MRL_DEF mrl_tensor *mrl_tanh_gaussian_log_prob(mrl_graph *g, mrl_tensor *mean, mrl_tensor *log_std,
                                               mrl_tensor *u) {
  return mrl_sub(g, mrl_gaussian_log_prob(g, mean, log_std, u),
                 mrl_sum_rows(g, mrl_tanh_log_det(g, u)));
}

MRL_DEF mrl_tensor *mrl_tanh_gaussian_sample(mrl_graph *g, mrl_tensor *mean, mrl_tensor *log_std,
                                             mrl_rng *rng, mrl_tensor **log_prob) {
  mrl_tensor *u = mrl_gaussian_sample(g, mean, log_std, rng), *a = mrl_tanh(g, u);
  if (log_prob) *log_prob = a ? mrl_tanh_gaussian_log_prob(g, mean, log_std, u) : NULL;
  return a;
}

/* ---- mixture of Gaussians ---- >>mixture */

static void mrl__mixture_comp_backward(mrl_node *nd) {
  mrl_tensor *mean = nd->in[0], *ls = nd->in[1], *x = nd->in[2], *y = nd->out;
  int N = y->shape[0], K = y->shape[1], D = x->shape[1], n, k, d;
  for (n = 0; n < N; n++)
    for (k = 0; k < K; k++) {
      float gk = y->grad[(size_t)n * K + k];
      for (d = 0; d < D; d++) {
        size_t m = ((size_t)n * K + k) * D + d;
        float inv = expf(-ls->data[m]), z = (x->data[(size_t)n * D + d] - mean->data[m]) * inv;
        if (mean->grad) mean->grad[m] += gk * z * inv;
        if (ls->grad) ls->grad[m] += gk * (z * z - 1.0f);
        if (x->grad) x->grad[(size_t)n * D + d] -= gk * z * inv;
      }
    }
}

MRL_DEF mrl_tensor *mrl_mixture_component_log_prob(mrl_graph *g, mrl_tensor *mean,
                                                   mrl_tensor *log_std, mrl_tensor *x) {
  mrl_tensor *y;
  mrl_node *nd;
  int N, K, D, n, k, d, wants;
  if (!mean || !log_std || !x) return NULL;
  MRL_SHAPE_CHECK(x->ndim == 2 && mean->ndim == 2 && mean->shape[0] == x->shape[0] &&
                      mean->shape[1] % x->shape[1] == 0,
                  "mixture_log_prob", "mean must be [N, K*D] for x [N, D]", mean, x);
  MRL_SHAPE_CHECK(mrl_tensor_same_shape(mean, log_std), "mixture_log_prob",
                  "mean and log_std differ", mean, log_std);
  N = x->shape[0];
  D = x->shape[1];
  K = mean->shape[1] / D;
  wants = mrl_graph_wants_grad(g, mean, log_std) || mrl_graph_wants_grad(g, x, NULL);
  y = mrl_tensor_new2(g, N, K, wants);
  if (!y) return NULL;
  for (n = 0; n < N; n++)
    for (k = 0; k < K; k++) {
      float acc = (float)(-0.5 * MRL__LOG_2PI * D);
      for (d = 0; d < D; d++) {
        size_t m = ((size_t)n * K + k) * D + d;
        float z = (x->data[(size_t)n * D + d] - mean->data[m]) * expf(-log_std->data[m]);
        acc += -0.5f * z * z - log_std->data[m];
      }
      y->data[(size_t)n * K + k] = acc;
    }
  MRL__FINITE("mixture_component_log_prob", y, mean, x);
  if ((nd = mrl_graph_record(g, "mixture_component_log_prob", mrl__mixture_comp_backward, y)) !=
      NULL) {
    nd->in[0] = mean;
    nd->in[1] = log_std;
    nd->in[2] = x;
  }
  return y;
}

MRL_DEF mrl_tensor *mrl_mixture_log_prob(mrl_graph *g, mrl_tensor *logits, mrl_tensor *mean,
                                         mrl_tensor *log_std, mrl_tensor *x) {
  mrl_tensor *a;
  int *best, N, K, n, k;
  if (!logits || !mean || !x) return NULL;
  MRL_SHAPE_CHECK(logits->ndim == 2 && x->ndim == 2 && mean->ndim == 2 &&
                      logits->shape[0] == x->shape[0] &&
                      logits->shape[1] * x->shape[1] == mean->shape[1],
                  "mixture_log_prob", "logits must be [N, K] for mean [N, K*D]", logits, mean);
  a = mrl_add(g, mrl_log_softmax(g, logits), mrl_mixture_component_log_prob(g, mean, log_std, x));
  if (!a) return NULL;
  N = a->shape[0];
  K = a->shape[1];
  best = (int *)mrl_graph_alloc(g, sizeof(int) * (size_t)N);
  if (!best) return NULL;
  for (n = 0; n < N; n++) {
    best[n] = 0;
    for (k = 1; k < K; k++)
      if (a->data[(size_t)n * K + k] > a->data[(size_t)n * K + best[n]]) best[n] = k;
  }
  /* logsumexp(a) = a_j - log_softmax(a)_j, exact for any j; the largest
   * keeps a_j - max = 0 in log_softmax, so nothing cancels */
  return mrl_sub(g, mrl_gather_rows(g, a, best), mrl_gather_rows(g, mrl_log_softmax(g, a), best));
}

MRL_DEF int mrl_mixture_sample(const float *logits, const float *mean, const float *log_std, int K,
                               int D, float temperature, mrl_rng *rng, float *out) {
  float mx = logits[0], scale = sqrtf(temperature);
  double total = 0.0, u, acc = 0.0;
  int k, d, pick = K - 1;
  MRL_ASSERT(K >= 1 && D >= 1 && temperature > 0.0f);
  for (k = 1; k < K; k++)
    if (logits[k] > mx) mx = logits[k];
  for (k = 0; k < K; k++) total += exp((double)(logits[k] - mx) / temperature);
  u = (double)mrl_rng_uniform(rng) * total;
  for (k = 0; k < K; k++) {
    acc += exp((double)(logits[k] - mx) / temperature);
    if (u < acc) {
      pick = k;
      break;
    }
  }
  for (d = 0; d < D; d++) {
    size_t m = (size_t)pick * D + d;
    out[d] = mean[m] + expf(log_std[m]) * scale * mrl_rng_normal(rng);
  }
  return pick;
}

/* ---- policy heads ---- >>policy_head */

MRL_DEF mrl_policy_head_config mrl_policy_head_config_default(mrl_policy_kind kind) {
  mrl_policy_head_config c;
  memset(&c, 0, sizeof c);
  c.kind = kind;
  c.init = mrl_init_default();
  c.log_std_init = 0.0f;
  c.log_std_min = -5.0f;
  c.log_std_max = 2.0f;
  c.noise = MRL_NOISE_GAUSSIAN;
  c.noise_std = 0.1f;
  c.ou_theta = 0.15f;
  c.ou_sigma = 0.2f;
  c.ou_dt = 1e-2f;
  return c;
}

/* The config check: returns 0 with h->error set when cfg does not fit. */
static int mrl__policy_head_check(mrl_policy_head *h, const mrl_params *p, const char *name,
                                  int in_features, const mrl_policy_head_config *c) {
  /* the longest suffix a head declares; longer names would be cut silently */
  static const char longest[] = ".log_std.weight";
  int k = (int)c->kind, cont = k != MRL_POLICY_CATEGORICAL, D = c->action_dim, d;
  int squash = k == MRL_POLICY_TANH_GAUSSIAN || k == MRL_POLICY_DETERMINISTIC;
#define MRL__PH_FAIL(...)                                                                          \
  do {                                                                                             \
    snprintf(h->error, sizeof h->error, __VA_ARGS__);                                              \
    return 0;                                                                                      \
  } while (0)
  if (!p || !name || !c) MRL__PH_FAIL("mrl_policy_head_init: NULL store, name or config");
  if (p->finalized) MRL__PH_FAIL("mrl_policy_head_init: the store is already finalized");
  if (strlen(name) + sizeof longest > MRL_NAME_MAX)
    MRL__PH_FAIL("mrl_policy_head_init: name \"%.40s...\" is too long for the store", name);
  if (k < MRL_POLICY_CATEGORICAL || k > MRL_POLICY_DETERMINISTIC)
    MRL__PH_FAIL("mrl_policy_head_config.kind %d is not a mrl_policy_kind", k);
  if (in_features < 1) MRL__PH_FAIL("mrl_policy_head_init: in_features %d < 1", in_features);
  if ((int)c->init.kind < MRL_INIT_DEFAULT || (int)c->init.kind > MRL_INIT_KAIMING_NORMAL ||
      !isfinite(c->init.a) || !isfinite(c->init.b))
    MRL__PH_FAIL("mrl_policy_head_config.init (kind %d, a %g) is not a valid initialiser",
                 (int)c->init.kind, (double)c->init.a);
  if (!cont) {
    if (c->num_actions < 1)
      MRL__PH_FAIL("mrl_policy_head_config.num_actions %d < 1", c->num_actions);
    return 1;
  }
  if (D < 1 || D > MRL_POLICY_MAX_ACTION_DIM)
    MRL__PH_FAIL("mrl_policy_head_config.action_dim %d is outside 1..%d", D,
                 MRL_POLICY_MAX_ACTION_DIM);
  if (!c->action_low != !c->action_high)
    MRL__PH_FAIL("mrl_policy_head_config: action_low and action_high must both be given or "
                 "both be NULL");
  for (d = 0; c->action_low && d < D; d++) {
    float lo = c->action_low[d], hi = c->action_high[d];
    if (lo != lo || hi != hi) MRL__PH_FAIL("mrl_policy_head_config.action_low/high[%d] is NaN", d);
    if (squash && (!isfinite(lo) || !isfinite(hi) || !(lo < hi)))
      MRL__PH_FAIL("mrl_policy_head_config.action_low/high[%d] = %g, %g: a squashed head needs "
                   "finite low < high",
                   d, (double)lo, (double)hi);
    if (lo > hi)
      MRL__PH_FAIL("mrl_policy_head_config.action_low[%d] %g > action_high %g", d, (double)lo,
                   (double)hi);
  }
  if (k == MRL_POLICY_GAUSSIAN && !isfinite(c->log_std_init))
    MRL__PH_FAIL("mrl_policy_head_config.log_std_init %g is not finite", (double)c->log_std_init);
  if ((k == MRL_POLICY_GAUSSIAN_STATE || k == MRL_POLICY_TANH_GAUSSIAN) &&
      !(isfinite(c->log_std_min) && isfinite(c->log_std_max) && c->log_std_min < c->log_std_max))
    MRL__PH_FAIL("mrl_policy_head_config.log_std_min %g, log_std_max %g: need finite min < max",
                 (double)c->log_std_min, (double)c->log_std_max);
  if (k == MRL_POLICY_DETERMINISTIC) {
    if (c->noise != MRL_NOISE_GAUSSIAN && c->noise != MRL_NOISE_OU)
      MRL__PH_FAIL("mrl_policy_head_config.noise %d is not a mrl_noise_kind", (int)c->noise);
    if (!isfinite(c->noise_std) || c->noise_std < 0.0f)
      MRL__PH_FAIL("mrl_policy_head_config.noise_std %g: need finite >= 0", (double)c->noise_std);
    if (c->noise == MRL_NOISE_OU &&
        !(isfinite(c->ou_theta) && isfinite(c->ou_sigma) && isfinite(c->ou_dt) &&
          c->ou_theta >= 0.0f && c->ou_sigma >= 0.0f && c->ou_dt > 0.0f))
      MRL__PH_FAIL("mrl_policy_head_config.ou_theta %g, ou_sigma %g, ou_dt %g: need finite, "
                   "theta and sigma >= 0, dt > 0",
                   (double)c->ou_theta, (double)c->ou_sigma, (double)c->ou_dt);
  }
#undef MRL__PH_FAIL
  return 1;
}

MRL_DEF mrl_result mrl_policy_head_init(mrl_policy_head *h, mrl_params *p, const char *name,
                                        int in_features, const mrl_policy_head_config *cfg) {
  char buf[80];
  int D, d, count0, shape[1], failed = 0;
  size_t names0;
  mrl_result status0;
  size_t total0;
  memset(h, 0, sizeof *h);
  h->log_std_param = -1;
  if (!mrl__policy_head_check(h, p, name, in_features, cfg)) return MRL_ERR_INVALID_ARGUMENT;
  h->kind = cfg->kind;
  h->params = p;
  h->in_features = in_features;
  h->log_std_min = cfg->log_std_min;
  h->log_std_max = cfg->log_std_max;
  h->noise = cfg->noise;
  h->noise_std = cfg->noise_std;
  h->ou_theta = cfg->ou_theta;
  h->ou_sigma = cfg->ou_sigma;
  h->ou_dt = cfg->ou_dt;
  h->unit_affine = 1;
  count0 = p->count;
  total0 = p->total;
  names0 = p->names_size;
  status0 = p->status;
  if (cfg->kind == MRL_POLICY_CATEGORICAL) {
    h->num_actions = cfg->num_actions;
    h->param_dim = cfg->num_actions;
    h->raw_dim = h->env_dim = 1;
    mrl_linear_layer_init(&h->mean, p, name, in_features, cfg->num_actions, cfg->init);
  } else {
    int squash = cfg->kind == MRL_POLICY_TANH_GAUSSIAN || cfg->kind == MRL_POLICY_DETERMINISTIC;
    double log_scale = 0.0;
    D = h->action_dim = h->raw_dim = h->env_dim = cfg->action_dim;
    h->param_dim = cfg->kind == MRL_POLICY_DETERMINISTIC ? D : 2 * D;
    for (d = 0; d < D; d++) {
      h->low[d] = cfg->action_low ? cfg->action_low[d] : (squash ? -1.0f : -HUGE_VALF);
      h->high[d] = cfg->action_high ? cfg->action_high[d] : (squash ? 1.0f : HUGE_VALF);
      /* CleanRL's action_scale and action_bias */
      h->scale[d] = squash ? (h->high[d] - h->low[d]) / 2.0f : 1.0f;
      h->bias[d] = squash ? (h->high[d] + h->low[d]) / 2.0f : 0.0f;
      if (h->scale[d] != 1.0f || h->bias[d] != 0.0f) h->unit_affine = 0;
      log_scale += log((double)h->scale[d]);
    }
    h->log_scale_sum = (float)log_scale;
    if (cfg->kind == MRL_POLICY_DETERMINISTIC) {
      mrl_linear_layer_init(&h->mean, p, name, in_features, D, cfg->init);
    } else {
      snprintf(buf, sizeof buf, "%s.mean", name);
      mrl_linear_layer_init(&h->mean, p, buf, in_features, D, cfg->init);
      snprintf(buf, sizeof buf, "%s.log_std", name);
      if (cfg->kind == MRL_POLICY_GAUSSIAN) {
        shape[0] = D;
        h->log_std_param =
            mrl_params_add(p, buf, 1, shape, mrl_init_make(MRL_INIT_CONSTANT, cfg->log_std_init));
        failed = h->log_std_param < 0;
      } else {
        mrl_linear_layer_init(&h->log_std, p, buf, in_features, D, cfg->init);
        failed = h->log_std.weight < 0 || h->log_std.bias < 0;
      }
    }
  }
  if (failed || h->mean.weight < 0 || h->mean.bias < 0) {
    /* out of memory part way: forget what was declared (declarations only append) */
    p->count = count0;
    p->total = total0;
    p->names_size = names0;
    p->status = status0; /* the store is as it was: later declarations may succeed */
    snprintf(h->error, sizeof h->error, "mrl_policy_head_init: out of memory");
    return MRL_ERR_OUT_OF_MEMORY;
  }
  return MRL_OK;
}

MRL_DEF int mrl_policy_head_param_dim(const mrl_policy_head *h) {
  return h->param_dim;
}
MRL_DEF int mrl_policy_head_raw_dim(const mrl_policy_head *h) {
  return h->raw_dim;
}
MRL_DEF int mrl_policy_head_env_dim(const mrl_policy_head *h) {
  return h->env_dim;
}

MRL_DEF mrl_tensor *mrl_policy_head_forward(const mrl_policy_head *h, mrl_graph *g,
                                            mrl_tensor *features) {
  mrl_tensor *mean, *ls, *parts[2];
  int shape[2];
  if (!features) return NULL;
  mean = mrl_linear_layer_forward(&h->mean, g, features);
  if (!mean) return NULL;
  switch (h->kind) {
  case MRL_POLICY_CATEGORICAL:
  case MRL_POLICY_DETERMINISTIC: return mean;
  case MRL_POLICY_GAUSSIAN:
    shape[0] = mean->shape[0];
    shape[1] = h->action_dim;
    ls = mrl_broadcast_to(g, mrl_params_tensor(h->params, h->log_std_param), 2, shape);
    break;
  case MRL_POLICY_GAUSSIAN_STATE:
    ls = mrl_clamp(g, mrl_linear_layer_forward(&h->log_std, g, features), h->log_std_min,
                   h->log_std_max);
    break;
  default: { /* tanh: CleanRL SAC's squash of tanh's (-1, 1) onto [min, max] */
    float half = 0.5f * (h->log_std_max - h->log_std_min);
    ls = mrl_add_scalar(
        g, mrl_scale(g, mrl_tanh(g, mrl_linear_layer_forward(&h->log_std, g, features)), half),
        h->log_std_min + half);
  }
  }
  parts[0] = mean;
  parts[1] = ls;
  return ls ? mrl_concat(g, parts, 2, 1) : NULL;
}

/* log(1 - tanh(u)^2), the stable form of mrl_tanh_log_det, for acting */
static float mrl__tanh_log_det1(float u) {
  float v = -2.0f * u, sp = (v > 0.0f ? v : 0.0f) + log1pf(expf(-fabsf(v)));
  return 2.0f * (0.69314718055994531f - u - sp);
}

static float mrl__clipf(float x, float lo, float hi) {
  return x < lo ? lo : (x > hi ? hi : x);
}

MRL_DEF void mrl_policy_head_act(const mrl_policy_head *h, const float *dist, int n, int greedy,
                                 mrl_rng *rng, float *noise_state, float *raw_actions,
                                 float *log_probs) {
  int P = h->param_dim, D = h->action_dim, i, d;
  MRL_ASSERT(greedy || rng);
  for (i = 0; i < n; i++) {
    const float *row = dist + (size_t)i * P;
    float *raw = raw_actions + (size_t)i * h->raw_dim;
    double lp = 0.0;
    switch (h->kind) {
    case MRL_POLICY_CATEGORICAL: {
      int a = greedy ? mrl_categorical_mode(row, P) : mrl_categorical_sample(row, P, rng);
      raw[0] = (float)a;
      if (log_probs) { /* deployment asks for none: spare the exps */
        float mx = row[mrl_categorical_mode(row, P)];
        double total = 0.0;
        for (d = 0; d < P; d++) total += exp((double)(row[d] - mx));
        lp = (double)(row[a] - mx) - log(total);
      }
      break;
    }
    case MRL_POLICY_DETERMINISTIC: {
      float *x = noise_state ? noise_state + (size_t)i * D : NULL;
      MRL_ASSERT(greedy || h->noise != MRL_NOISE_OU || x);
      for (d = 0; d < D; d++) {
        float a = tanhf(row[d]) * h->scale[d] + h->bias[d];
        if (!greedy) {
          float eps = mrl_rng_normal(rng);
          if (h->noise == MRL_NOISE_OU) {
            x[d] += h->ou_theta * (-x[d]) * h->ou_dt + h->ou_sigma * sqrtf(h->ou_dt) * eps;
            a += h->scale[d] * x[d];
          } else {
            a += h->noise_std * h->scale[d] * eps;
          }
        }
        raw[d] = mrl__clipf(a, h->low[d], h->high[d]);
      }
      break;
    }
    default: /* the Gaussian kinds: [mean | log_std] */
      for (d = 0; d < D; d++) {
        float ls = row[D + d], z = greedy ? 0.0f : mrl_rng_normal(rng);
        float u = row[d] + expf(ls) * z;
        raw[d] = u;
        lp += -0.5 * (double)z * z - ls - 0.5 * MRL__LOG_2PI;
        if (h->kind == MRL_POLICY_TANH_GAUSSIAN) lp -= mrl__tanh_log_det1(u);
      }
      if (h->kind == MRL_POLICY_TANH_GAUSSIAN) lp -= h->log_scale_sum;
    }
    if (log_probs) log_probs[i] = (float)lp;
  }
}

MRL_DEF void mrl_policy_head_env_action(const mrl_policy_head *h, const float *raw, int n,
                                        float *env_actions) {
  int D = h->env_dim, i, d;
  for (i = 0; i < n; i++)
    for (d = 0; d < D; d++) {
      size_t k = (size_t)i * D + d;
      float a = raw[k];
      if (h->kind == MRL_POLICY_CATEGORICAL) {
        env_actions[k] = a;
        continue;
      }
      if (h->kind == MRL_POLICY_TANH_GAUSSIAN) a = tanhf(a) * h->scale[d] + h->bias[d];
      env_actions[k] = mrl__clipf(a, h->low[d], h->high[d]);
    }
}

MRL_DEF void mrl_policy_head_noise_reset(const mrl_policy_head *h, float *noise_state, int n,
                                         const float *episode_start) {
  int i, D = h->action_dim;
  if (!noise_state || h->kind == MRL_POLICY_CATEGORICAL) return;
  for (i = 0; i < n; i++)
    if (!episode_start || episode_start[i] != 0.0f)
      memset(noise_state + (size_t)i * D, 0, sizeof(float) * (size_t)D);
}

static void mrl__policy_head_check_dist(const mrl_policy_head *h, mrl_tensor *dist,
                                        const char *op) {
  MRL_SHAPE_CHECK(dist->ndim == 2 && dist->shape[1] == h->param_dim, op,
                  "dist must be [N, mrl_policy_head_param_dim]", dist, NULL);
}

/* scale * a + bias with scale and bias as constant [D] rows (broadcast). */
static mrl_tensor *mrl__policy_head_affine(const mrl_policy_head *h, mrl_graph *g, mrl_tensor *a) {
  int D = h->action_dim;
  if (!a || h->unit_affine) return a;
  return mrl_add(g, mrl_mul(g, a, mrl_tensor_from(g, h->scale, 1, &D)),
                 mrl_tensor_from(g, h->bias, 1, &D));
}

MRL_DEF void mrl_policy_head_evaluate(const mrl_policy_head *h, mrl_graph *g, mrl_tensor *dist,
                                      const float *raw_actions, mrl_tensor **log_prob,
                                      mrl_tensor **entropy) {
  mrl_tensor *lp = NULL, *ent = NULL, *mean, *ls, *x;
  int N, D = h->action_dim, i;
  if (log_prob) *log_prob = NULL;
  if (entropy) *entropy = NULL;
  if (!dist || h->kind == MRL_POLICY_DETERMINISTIC) return;
  mrl__policy_head_check_dist(h, dist, "policy_head_evaluate");
  N = dist->shape[0];
  if (h->kind == MRL_POLICY_CATEGORICAL) {
    int *idx = (int *)mrl_graph_alloc(g, sizeof(int) * (size_t)(N > 0 ? N : 1));
    mrl_tensor *logp = mrl_log_softmax(g, dist);
    if (!idx || !logp) return;
    /* stored indices are exact small integers; a bad one stops in gather_rows */
    for (i = 0; i < N; i++) idx[i] = (int)floorf(raw_actions[i] + 0.5f);
    if (log_prob) lp = mrl_categorical_log_prob(g, logp, idx);
    if (entropy) ent = mrl_categorical_entropy(g, logp);
  } else {
    mean = mrl_slice(g, dist, 1, 0, D);
    ls = mrl_slice(g, dist, 1, D, 2 * D);
    x = mrl_tensor_from2(g, raw_actions, N, D);
    if (h->kind == MRL_POLICY_TANH_GAUSSIAN) {
      lp = mrl_add_scalar(g, mrl_tanh_gaussian_log_prob(g, mean, ls, x), -h->log_scale_sum);
      if (entropy) ent = mrl_neg(g, lp); /* one-sample estimate (SB3) */
    } else {
      lp = mrl_gaussian_log_prob(g, mean, ls, x);
      if (entropy) ent = mrl_gaussian_entropy(g, ls);
    }
  }
  if (log_prob) *log_prob = lp;
  if (entropy) *entropy = ent;
}

MRL_DEF mrl_tensor *mrl_policy_head_rsample(const mrl_policy_head *h, mrl_graph *g,
                                            mrl_tensor *dist, mrl_rng *rng, mrl_tensor **log_prob) {
  mrl_tensor *mean, *ls, *u, *a;
  int D = h->action_dim;
  if (log_prob) *log_prob = NULL;
  if (!dist) return NULL;
  mrl__policy_head_check_dist(h, dist, "policy_head_rsample");
  MRL_SHAPE_CHECK(h->kind != MRL_POLICY_CATEGORICAL, "policy_head_rsample",
                  "a categorical head has no reparameterised sample", dist, NULL);
  if (h->kind == MRL_POLICY_DETERMINISTIC) return mrl__policy_head_affine(h, g, mrl_tanh(g, dist));
  mean = mrl_slice(g, dist, 1, 0, D);
  ls = mrl_slice(g, dist, 1, D, 2 * D);
  u = mrl_gaussian_sample(g, mean, ls, rng);
  if (h->kind != MRL_POLICY_TANH_GAUSSIAN) {
    if (log_prob && u) *log_prob = mrl_gaussian_log_prob(g, mean, ls, u);
    return u;
  }
  a = mrl__policy_head_affine(h, g, mrl_tanh(g, u));
  if (log_prob && a)
    *log_prob = mrl_add_scalar(g, mrl_tanh_gaussian_log_prob(g, mean, ls, u), -h->log_scale_sum);
  return a;
}

/* ---- heads ---- >>heads */

MRL_DEF void mrl_dueling_head_init(mrl_dueling_head *h, mrl_params *p, const char *name,
                                   int in_features, int hidden_size, int num_actions,
                                   mrl_init init) {
  char buf[MRL_NAME_MAX];
  int sizes[3], n = hidden_size > 0 ? 3 : 2;
  sizes[0] = in_features;
  sizes[1] = hidden_size > 0 ? hidden_size : 1;
  sizes[n - 1] = 1;
  mrl__name(p, buf, name, "value");
  mrl_mlp_init(&h->value, p, buf, n, sizes, MRL_ACT_RELU, init, init);
  sizes[n - 1] = num_actions;
  mrl__name(p, buf, name, "advantage");
  mrl_mlp_init(&h->advantage, p, buf, n, sizes, MRL_ACT_RELU, init, init);
  h->num_actions = num_actions;
}

static void mrl__dueling_backward(mrl_node *nd) {
  mrl_tensor *v = nd->in[0], *a = nd->in[1], *q = nd->out;
  int B = q->shape[0], A = q->shape[1], b, j;
  for (b = 0; b < B; b++) {
    const float *gq = q->grad + (size_t)b * A;
    float s = 0.0f;
    for (j = 0; j < A; j++) s += gq[j];
    if (v->grad) v->grad[b] += s;
    if (a->grad)
      for (j = 0; j < A; j++) a->grad[(size_t)b * A + j] += gq[j] - s / (float)A;
  }
}

MRL_DEF mrl_tensor *mrl_dueling_combine(mrl_graph *g, mrl_tensor *value, mrl_tensor *advantage) {
  mrl_tensor *q;
  mrl_node *nd;
  int B, A, b, j;
  if (!value || !advantage) return NULL;
  MRL_SHAPE_CHECK(advantage->ndim == 2 && value->size == advantage->shape[0], "dueling_combine",
                  "value must be [B,1] for advantage [B,A]", value, advantage);
  B = advantage->shape[0];
  A = advantage->shape[1];
  q = mrl_op_output(g, 2, advantage->shape, mrl_graph_wants_grad(g, value, advantage));
  if (!q) return NULL;
  for (b = 0; b < B; b++) {
    const float *ar = advantage->data + (size_t)b * A;
    float mean = 0.0f;
    for (j = 0; j < A; j++) mean += ar[j];
    mean /= (float)A;
    for (j = 0; j < A; j++) q->data[(size_t)b * A + j] = value->data[b] + (ar[j] - mean);
  }
  MRL__FINITE("dueling_combine", q, value, advantage);
  if ((nd = mrl_graph_record(g, "dueling_combine", mrl__dueling_backward, q)) != NULL) {
    nd->in[0] = value;
    nd->in[1] = advantage;
  }
  return q;
}

MRL_DEF mrl_tensor *mrl_dueling_head_forward(const mrl_dueling_head *h, mrl_graph *g,
                                             mrl_tensor *x) {
  return mrl_dueling_combine(g, mrl_mlp_forward(&h->value, g, x),
                             mrl_mlp_forward(&h->advantage, g, x));
}

MRL_DEF void mrl_c51_support(float v_min, float v_max, int num_atoms, float *z) {
  double dz = num_atoms > 1 ? ((double)v_max - (double)v_min) / (num_atoms - 1) : 0.0;
  int i;
  for (i = 0; i < num_atoms; i++) z[i] = (float)((double)v_min + i * dz);
}

MRL_DEF void mrl_c51_head_init(mrl_c51_head *h, mrl_params *p, const char *name, int in_features,
                               int num_actions, int num_atoms, float v_min, float v_max,
                               mrl_init init) {
  MRL_ASSERT(num_atoms >= 2 && v_max > v_min);
  mrl_linear_layer_init(&h->linear, p, name, in_features, num_actions * num_atoms, init);
  h->num_actions = num_actions;
  h->num_atoms = num_atoms;
  h->v_min = v_min;
  h->v_max = v_max;
}

MRL_DEF mrl_tensor *mrl_c51_head_forward(const mrl_c51_head *h, mrl_graph *g, mrl_tensor *x) {
  mrl_tensor *logits = mrl_linear_layer_forward(&h->linear, g, x), *lp;
  int shape[2];
  if (!logits) return NULL;
  shape[0] = logits->shape[0] * h->num_actions;
  shape[1] = h->num_atoms;
  lp = mrl_log_softmax(g, mrl_reshape(g, logits, 2, shape));
  if (!lp) return NULL;
  shape[0] = logits->shape[0];
  shape[1] = h->num_actions * h->num_atoms;
  return mrl_reshape(g, lp, 2, shape);
}

MRL_DEF void mrl_c51_q_values(const mrl_c51_head *h, const float *log_probs, int B, float *q) {
  int A = h->num_actions, N = h->num_atoms, b, a, i;
  double dz = ((double)h->v_max - (double)h->v_min) / (N - 1);
  for (b = 0; b < B; b++)
    for (a = 0; a < A; a++) {
      const float *lp = log_probs + ((size_t)b * A + a) * N;
      double s = 0.0;
      for (i = 0; i < N; i++) s += exp((double)lp[i]) * ((double)h->v_min + i * dz);
      q[(size_t)b * A + a] = (float)s;
    }
}

MRL_DEF void mrl_c51_project(const float *next_probs, const float *rewards, const float *discounts,
                             int B, int num_atoms, float v_min, float v_max, float *target) {
  int N = num_atoms, b, j;
  double dz = ((double)v_max - (double)v_min) / (N - 1);
  MRL_ASSERT(N >= 2 && v_max > v_min);
  memset(target, 0, sizeof(float) * (size_t)B * N);
  for (b = 0; b < B; b++) {
    const float *p = next_probs + (size_t)b * N;
    float *m = target + (size_t)b * N;
    for (j = 0; j < N; j++) {
      double tz = (double)rewards[b] + (double)discounts[b] * ((double)v_min + j * dz), pos;
      int lo, hi;
      if (tz < v_min) tz = v_min;
      if (tz > v_max) tz = v_max;
      pos = (tz - v_min) / dz;
      lo = (int)floor(pos);
      hi = (int)ceil(pos);
      if (lo < 0) lo = 0; /* rounding at the ends */
      if (hi > N - 1) hi = N - 1;
      if (lo > hi) lo = hi;
      if (lo == hi) {
        m[lo] += p[j];
      } else {
        m[lo] += (float)(p[j] * ((double)hi - pos));
        m[hi] += (float)(p[j] * (pos - (double)lo));
      }
    }
  }
}

MRL_DEF mrl_tensor *mrl_c51_loss(const mrl_c51_head *h, mrl_graph *g, mrl_tensor *log_probs,
                                 const int *actions, const float *target) {
  mrl_tensor *w;
  int A = h->num_actions, N = h->num_atoms, B, b;
  if (!log_probs) return NULL;
  MRL_SHAPE_CHECK(log_probs->ndim == 2 && log_probs->shape[1] == A * N, "c51_loss",
                  "log_probs must be [B, num_actions*num_atoms]", log_probs, NULL);
  B = log_probs->shape[0];
  /* -target placed at the taken action's atoms, zero elsewhere: the loss is
   * then one product and a row sum */
  w = mrl_tensor_new2(g, B, A * N, 0);
  if (!w) return NULL;
  memset(w->data, 0, sizeof(float) * (size_t)B * A * N);
  for (b = 0; b < B; b++) {
    int i;
    MRL_ASSERT(actions[b] >= 0 && actions[b] < A);
    for (i = 0; i < N; i++)
      w->data[(size_t)b * A * N + (size_t)actions[b] * N + i] = -target[(size_t)b * N + i];
  }
  return mrl_sum_rows(g, mrl_mul(g, log_probs, w));
}

MRL_DEF void mrl_mdn_head_init(mrl_mdn_head *h, mrl_params *p, const char *name, int in_features,
                               int out_dim, int num_mixtures, mrl_init init) {
  char buf[MRL_NAME_MAX];
  mrl__name(p, buf, name, "pi");
  mrl_linear_layer_init(&h->pi, p, buf, in_features, out_dim * num_mixtures, init);
  mrl__name(p, buf, name, "mu");
  mrl_linear_layer_init(&h->mu, p, buf, in_features, out_dim * num_mixtures, init);
  mrl__name(p, buf, name, "log_sigma");
  mrl_linear_layer_init(&h->log_sigma, p, buf, in_features, out_dim * num_mixtures, init);
  h->out_dim = out_dim;
  h->num_mixtures = num_mixtures;
}

MRL_DEF void mrl_mdn_head_forward(const mrl_mdn_head *h, mrl_graph *g, mrl_tensor *x,
                                  mrl_tensor **logits, mrl_tensor **mean, mrl_tensor **log_std) {
  int shape[2];
  shape[0] = x ? x->shape[0] * h->out_dim : 0;
  shape[1] = h->num_mixtures;
  *logits = mrl_reshape(g, mrl_linear_layer_forward(&h->pi, g, x), 2, shape);
  *mean = mrl_reshape(g, mrl_linear_layer_forward(&h->mu, g, x), 2, shape);
  *log_std = mrl_reshape(g, mrl_linear_layer_forward(&h->log_sigma, g, x), 2, shape);
}

MRL_DEF void mrl_mdn_head_sample(const mrl_mdn_head *h, const mrl_tensor *logits,
                                 const mrl_tensor *mean, const mrl_tensor *log_std,
                                 float temperature, mrl_rng *rng, float *out) {
  int K = h->num_mixtures, rows = logits->shape[0], r;
  MRL_SHAPE_CHECK(logits->shape[1] == K && mrl_tensor_same_shape(logits, mean) &&
                      mrl_tensor_same_shape(mean, log_std),
                  "mdn_head_sample", "logits, mean and log_std must be [B*out_dim, K]", logits,
                  mean);
  for (r = 0; r < rows; r++)
    mrl_mixture_sample(logits->data + (size_t)r * K, mean->data + (size_t)r * K,
                       log_std->data + (size_t)r * K, K, 1, temperature, rng, out + r);
}

MRL_DEF mrl_tensor *mrl_mdn_head_log_prob(const mrl_mdn_head *h, mrl_graph *g, mrl_tensor *x,
                                          mrl_tensor *y) {
  mrl_tensor *logits, *mean, *log_std, *lp;
  int shape[2];
  if (!x || !y) return NULL;
  MRL_SHAPE_CHECK(y->ndim == 2 && y->shape[0] == x->shape[0] && y->shape[1] == h->out_dim,
                  "mdn_head_log_prob", "y must be [B, out_dim]", y, x);
  mrl_mdn_head_forward(h, g, x, &logits, &mean, &log_std);
  shape[0] = y->shape[0] * h->out_dim;
  shape[1] = 1;
  lp = mrl_mixture_log_prob(g, logits, mean, log_std, mrl_reshape(g, y, 2, shape));
  if (!lp) return NULL;
  shape[0] = y->shape[0];
  shape[1] = h->out_dim;
  return mrl_sum_rows(g, mrl_reshape(g, lp, 2, shape));
}

/* ---- PopArt ---- >>popart */

MRL_DEF mrl_result mrl_popart_init(mrl_popart *p, int num_tasks, float beta) {
  int k;
  memset(p, 0, sizeof *p);
  if (num_tasks < 1 || !(beta > 0.0f && beta <= 1.0f)) return MRL_ERR_INVALID_ARGUMENT;
  p->mu = (double *)MRL_MALLOC(sizeof(double) * (size_t)num_tasks);
  p->nu = (double *)MRL_MALLOC(sizeof(double) * (size_t)num_tasks);
  if (!p->mu || !p->nu) {
    mrl_popart_free(p);
    return MRL_ERR_OUT_OF_MEMORY;
  }
  p->num_tasks = num_tasks;
  p->beta = beta;
  p->sigma_min = 1e-4;
  p->sigma_max = 1e6;
  for (k = 0; k < num_tasks; k++) p->mu[k] = 0.0, p->nu[k] = 1.0;
  return MRL_OK;
}

MRL_DEF void mrl_popart_free(mrl_popart *p) {
  MRL_FREE(p->mu);
  MRL_FREE(p->nu);
  memset(p, 0, sizeof *p);
}

static double mrl__popart_sigma(const mrl_popart *p, int k) {
  double var = p->nu[k] - p->mu[k] * p->mu[k];
  double s = var > 0.0 ? sqrt(var) : 0.0;
  return s < p->sigma_min ? p->sigma_min : s > p->sigma_max ? p->sigma_max : s;
}

MRL_DEF float mrl_popart_sigma(const mrl_popart *p, int task) {
  MRL_ASSERT(task >= 0 && task < p->num_tasks);
  return (float)mrl__popart_sigma(p, task);
}

MRL_DEF float mrl_popart_mu(const mrl_popart *p, int task) {
  MRL_ASSERT(task >= 0 && task < p->num_tasks);
  return (float)p->mu[task];
}

MRL_DEF void mrl_popart_update(mrl_popart *p, mrl_params *params, const mrl_linear_layer *layer,
                               const float *targets, const int *tasks, int n) {
  int k, i;
  float *w = NULL, *bias = NULL;
  int in = 0;
  if (layer) {
    MRL_ASSERT(layer->out_features == p->num_tasks && layer->bias >= 0);
    w = mrl_params_tensor(params, layer->weight)->data;
    bias = mrl_params_tensor(params, layer->bias)->data;
    in = layer->in_features;
  }
  for (k = 0; k < p->num_tasks; k++) {
    double sum = 0.0, sum2 = 0.0, sigma, mu, sigma_new;
    int count = 0;
    for (i = 0; i < n; i++)
      if ((tasks ? tasks[i] : 0) == k) {
        sum += targets[i];
        sum2 += (double)targets[i] * targets[i];
        count++;
      }
    if (count == 0) continue;
    sigma = mrl__popart_sigma(p, k);
    mu = p->mu[k];
    p->mu[k] = (1.0 - p->beta) * p->mu[k] + p->beta * (sum / count);
    p->nu[k] = (1.0 - p->beta) * p->nu[k] + p->beta * (sum2 / count);
    sigma_new = mrl__popart_sigma(p, k);
    if (layer) { /* ART: sigma' n' + mu' = sigma n + mu */
      float *row = w + (size_t)k * in;
      for (i = 0; i < in; i++) row[i] = (float)(sigma / sigma_new * row[i]);
      bias[k] = (float)((sigma * bias[k] + mu - p->mu[k]) / sigma_new);
    }
  }
}

MRL_DEF void mrl_popart_normalize(const mrl_popart *p, const float *x, const int *tasks, int n,
                                  float *out) {
  int i;
  for (i = 0; i < n; i++) {
    int k = tasks ? tasks[i] : 0;
    out[i] = (float)((x[i] - p->mu[k]) / mrl__popart_sigma(p, k));
  }
}

MRL_DEF void mrl_popart_denormalize(const mrl_popart *p, const float *x, const int *tasks, int n,
                                    float *out) {
  int i;
  for (i = 0; i < n; i++) {
    int k = tasks ? tasks[i] : 0;
    out[i] = (float)(mrl__popart_sigma(p, k) * x[i] + p->mu[k]);
  }
}

/* ---- network surgery ---- >>net2net */

MRL_DEF int mrl_params_copy_matching(mrl_params *dst, const mrl_params *src) {
  int i, j, n = 0;
  for (i = 0; i < dst->count; i++) {
    mrl_tensor *d = &dst->items[i].tensor;
    j = mrl_params_find(src, dst->items[i].name);
    if (j < 0 || !mrl_tensor_same_shape(d, &src->items[j].tensor)) continue;
    memcpy(d->data, src->items[j].tensor.data, sizeof(float) * (size_t)d->size);
    n++;
  }
  return n;
}

MRL_DEF void mrl_net2net_mapping(int old_width, int new_width, mrl_rng *rng, int *mapping) {
  int j;
  MRL_ASSERT(old_width >= 1 && new_width >= old_width);
  for (j = 0; j < new_width; j++)
    mapping[j] = j < old_width ? j : (int)mrl_rng_below(rng, (uint32_t)old_width);
}

MRL_DEF void mrl_net2net_widen_rows(const float *src, int rows, int old_width, const int *mapping,
                                    int new_width, float *dst) {
  int r, j;
  for (r = 0; r < rows; r++)
    for (j = 0; j < new_width; j++)
      dst[(size_t)r * new_width + j] = src[(size_t)r * old_width + mapping[j]];
}

/* Number of copies of each old unit, or NULL when the mapping is invalid. */
static int *mrl__net2net_counts(const int *mapping, int old_width, int new_width) {
  int *cnt, j;
  if (new_width < old_width || old_width < 1) return NULL;
  cnt = (int *)MRL_MALLOC(sizeof(int) * (size_t)old_width);
  if (!cnt) return NULL;
  memset(cnt, 0, sizeof(int) * (size_t)old_width);
  for (j = 0; j < new_width; j++) {
    if (mapping[j] < 0 || mapping[j] >= old_width || (j < old_width && mapping[j] != j)) {
      MRL_FREE(cnt);
      return NULL;
    }
    cnt[mapping[j]]++;
  }
  return cnt;
}

/* Copies a [blocks*old_rows, cols] matrix into [blocks*new_rows, cols],
 * row j of each block from row mapping[j] (mapping NULL: same rows). Columns
 * are remapped with col_map / col_cnt (NULL: unchanged): new column k reads
 * old column col_map[k] divided by its count. */
static void mrl__net2net_matrix(float *dst, const float *src, int blocks, int old_rows,
                                int new_rows, const int *row_map, int old_cols, int new_cols,
                                const int *col_map, const int *col_cnt) {
  int bl, j, k;
  for (bl = 0; bl < blocks; bl++)
    for (j = 0; j < new_rows; j++) {
      const float *sr = src + ((size_t)bl * old_rows + (row_map ? row_map[j] : j)) * old_cols;
      float *dr = dst + ((size_t)bl * new_rows + j) * new_cols;
      for (k = 0; k < new_cols; k++)
        dr[k] = col_map ? sr[col_map[k]] / (float)col_cnt[col_map[k]] : sr[k];
    }
}

static void mrl__linear_copy(mrl_linear_layer *dst, const mrl_linear_layer *src) {
  mrl_tensor *dw = mrl_params_tensor(dst->params, dst->weight);
  mrl_tensor *db = mrl_params_tensor(dst->params, dst->bias);
  const mrl_tensor *sw = mrl_params_tensor(src->params, src->weight);
  const mrl_tensor *sb = mrl_params_tensor(src->params, src->bias);
  memcpy(dw->data, sw->data, sizeof(float) * (size_t)sw->size);
  memcpy(db->data, sb->data, sizeof(float) * (size_t)sb->size);
}

MRL_DEF mrl_result mrl_mlp_widen(mrl_mlp *dst, const mrl_mlp *src, int layer, const int *mapping) {
  int i, old_w, new_w, *cnt;
  if (dst->num_layers != src->num_layers || layer < 0 || layer >= src->num_layers - 1)
    return MRL_ERR_INVALID_ARGUMENT;
  old_w = src->layers[layer].out_features;
  new_w = dst->layers[layer].out_features;
  for (i = 0; i < src->num_layers; i++) {
    const mrl_linear_layer *a = &src->layers[i];
    const mrl_linear_layer *b = &dst->layers[i];
    int in_ok = i == layer + 1 ? b->in_features == new_w : b->in_features == a->in_features;
    int out_ok = i == layer ? b->out_features == new_w : b->out_features == a->out_features;
    if (!in_ok || !out_ok) return MRL_ERR_INVALID_ARGUMENT;
  }
  if (!(cnt = mrl__net2net_counts(mapping, old_w, new_w))) return MRL_ERR_INVALID_ARGUMENT;
  for (i = 0; i < src->num_layers; i++) {
    const mrl_linear_layer *a = &src->layers[i];
    mrl_linear_layer *b = &dst->layers[i];
    float *dw = mrl_params_tensor(b->params, b->weight)->data;
    float *db = mrl_params_tensor(b->params, b->bias)->data;
    const float *sw = mrl_params_tensor(a->params, a->weight)->data;
    const float *sb = mrl_params_tensor(a->params, a->bias)->data;
    if (i == layer) { /* copied units: rows and biases */
      mrl__net2net_matrix(dw, sw, 1, old_w, new_w, mapping, a->in_features, a->in_features, NULL,
                          NULL);
      mrl__net2net_matrix(db, sb, 1, old_w, new_w, mapping, 1, 1, NULL, NULL);
    } else if (i == layer + 1) { /* their readers: columns divided by the copies */
      mrl__net2net_matrix(dw, sw, 1, a->out_features, a->out_features, NULL, old_w, new_w, mapping,
                          cnt);
      memcpy(db, sb, sizeof(float) * (size_t)a->out_features);
    } else {
      mrl__linear_copy(b, a);
    }
  }
  dst->activation = src->activation;
  dst->activate_output = src->activate_output;
  MRL_FREE(cnt);
  return MRL_OK;
}

MRL_DEF mrl_result mrl_mlp_insert_identity(mrl_mlp *dst, const mrl_mlp *src, int position) {
  int i, n;
  mrl_linear_layer *id;
  mrl_tensor *w, *b;
  if (dst->num_layers != src->num_layers + 1 || position < 1 || position >= src->num_layers)
    return MRL_ERR_INVALID_ARGUMENT;
  if (src->activation != MRL_ACT_RELU && src->activation != MRL_ACT_NONE)
    return MRL_ERR_INVALID_ARGUMENT; /* act(act(z)) != act(z): not function-preserving */
  id = &dst->layers[position];
  n = src->layers[position - 1].out_features;
  if (id->in_features != n || id->out_features != n) return MRL_ERR_INVALID_ARGUMENT;
  for (i = 0; i < src->num_layers; i++) {
    const mrl_linear_layer *a = &src->layers[i];
    const mrl_linear_layer *d = &dst->layers[i < position ? i : i + 1];
    if (d->in_features != a->in_features || d->out_features != a->out_features)
      return MRL_ERR_INVALID_ARGUMENT;
  }
  for (i = 0; i < src->num_layers; i++)
    mrl__linear_copy(&dst->layers[i < position ? i : i + 1], &src->layers[i]);
  w = mrl_params_tensor(id->params, id->weight);
  b = mrl_params_tensor(id->params, id->bias);
  memset(w->data, 0, sizeof(float) * (size_t)w->size);
  memset(b->data, 0, sizeof(float) * (size_t)b->size);
  for (i = 0; i < n; i++) w->data[(size_t)i * n + i] = 1.0f;
  dst->activation = src->activation;
  dst->activate_output = src->activate_output;
  return MRL_OK;
}

MRL_DEF mrl_result mrl_lstm_widen(mrl_lstm_layer *dst, const mrl_lstm_layer *src,
                                  const int *mapping, mrl_linear_layer *next,
                                  const mrl_linear_layer *src_next) {
  int H = src->hidden_size, H2 = dst->hidden_size, I = src->input_size, *cnt;
  mrl_params *dp = dst->params, *sp = src->params;
  if (dst->input_size != I || (!next) != (!src_next)) return MRL_ERR_INVALID_ARGUMENT;
  if (next && (next->in_features != H2 || src_next->in_features != H ||
               next->out_features != src_next->out_features))
    return MRL_ERR_INVALID_ARGUMENT;
  if (!(cnt = mrl__net2net_counts(mapping, H, H2))) return MRL_ERR_INVALID_ARGUMENT;
  mrl__net2net_matrix(mrl_params_tensor(dp, dst->weight_ih)->data,
                      mrl_params_tensor(sp, src->weight_ih)->data, 4, H, H2, mapping, I, I, NULL,
                      NULL);
  mrl__net2net_matrix(mrl_params_tensor(dp, dst->weight_hh)->data,
                      mrl_params_tensor(sp, src->weight_hh)->data, 4, H, H2, mapping, H, H2,
                      mapping, cnt);
  mrl__net2net_matrix(mrl_params_tensor(dp, dst->bias_ih)->data,
                      mrl_params_tensor(sp, src->bias_ih)->data, 4, H, H2, mapping, 1, 1, NULL,
                      NULL);
  mrl__net2net_matrix(mrl_params_tensor(dp, dst->bias_hh)->data,
                      mrl_params_tensor(sp, src->bias_hh)->data, 4, H, H2, mapping, 1, 1, NULL,
                      NULL);
  if (next) {
    int O = next->out_features;
    mrl__net2net_matrix(mrl_params_tensor(next->params, next->weight)->data,
                        mrl_params_tensor(src_next->params, src_next->weight)->data, 1, O, O, NULL,
                        H, H2, mapping, cnt);
    if (next->bias >= 0 && src_next->bias >= 0) /* bias=False layers have none */
      memcpy(mrl_params_tensor(next->params, next->bias)->data,
             mrl_params_tensor(src_next->params, src_next->bias)->data, sizeof(float) * (size_t)O);
  }
  MRL_FREE(cnt);
  return MRL_OK;
}

/* ---- checkpoints (safetensors) ---- >>safetensors */
#ifdef __cplusplus
}
#endif
#include <limits.h>
#include <string.h>
#if defined(_WIN32)
#include <io.h> /* _commit */
#define MRL__CKPT_WINDOWS 1
#elif defined(__unix__) || defined(__unix) || (defined(__APPLE__) && defined(__MACH__))
#include <dirent.h> /* removing stale temporaries of killed saves */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
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
#if defined(MRL__CKPT_POSIX) && !defined(__cplusplus) && !defined(_POSIX_C_SOURCE) &&              \
    !defined(_XOPEN_SOURCE) && !defined(_DEFAULT_SOURCE) && !defined(_GNU_SOURCE) &&               \
    !defined(_BSD_SOURCE) && defined(__STRICT_ANSI__)
/* POSIX too, hidden the same way by <signal.h> */
extern int kill(pid_t pid, int sig);
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

/* IEEE binary16 -> float32, exact for every value (each is a float32):
 * subnormals are m 2^-24, infinities keep their sign, NaNs their sign and
 * payload and come out quiet (IEEE 754's conversion, as torch's .float() on
 * x86 and ARM hardware). */
static float mrl__ckpt_f16(unsigned h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31u, m = h & 1023u, u;
  float f;
  if (e == 0) { /* zero or subnormal: m * 2^-24, exact in float32 */
    f = (float)m * (1.0f / 16777216.0f);
    return sign ? -f : f;
  }
  u = sign | (e == 31u ? 0x7f800000u | (m ? 0x00400000u : 0u) : (e + 112u) << 23) | (m << 13);
  memcpy(&f, &u, 4);
  return f;
}

/* The floating dtypes a load converts to float32. */
static int mrl__ckpt_float_dtype(const char *dtype) {
  return strcmp(dtype, "F32") == 0 || strcmp(dtype, "F16") == 0 || strcmp(dtype, "BF16") == 0 ||
         strcmp(dtype, "F64") == 0;
}

/* n values of t (little-endian F32, F16, BF16 or F64) as float32: F16 and
 * BF16 exactly, F64 rounded to nearest (beyond the float range: +-inf), as
 * torch's .float(). */
static void mrl__ckpt_to_f32(float *dst, const mrl_checkpoint_tensor *t, size_t n, int native) {
  const unsigned char *b = t->bytes;
  size_t i;
  if (strcmp(t->dtype, "F32") == 0) {
    mrl__ckpt_f32_from_le(dst, b, n, native);
  } else if (strcmp(t->dtype, "F16") == 0) {
    for (i = 0; i < n; i++)
      dst[i] = mrl__ckpt_f16((unsigned)b[2 * i] | ((unsigned)b[2 * i + 1] << 8));
  } else if (strcmp(t->dtype, "BF16") == 0) { /* the top half of a float32 */
    for (i = 0; i < n; i++) {
      uint32_t u = ((uint32_t)b[2 * i] << 16) | ((uint32_t)b[2 * i + 1] << 24);
      memcpy(&dst[i], &u, 4);
    }
  } else { /* F64 */
    for (i = 0; i < n; i++) {
      uint64_t u = 0;
      double d;
      int k;
      for (k = 7; k >= 0; k--) u = (u << 8) | b[8 * i + (size_t)k];
      memcpy(&d, &u, 8);
      dst[i] = (float)d;
    }
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

/* s's characters escaped for JSON (serde_json's escapes: \" \\ \b \f \n \r \t, \u00XX). */
static void mrl__ckpt_text_escaped(mrl__ckpt_text *t, const char *s) {
  static const char hex[] = "0123456789abcdef";
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
}

/* The JSON string literal of s followed by suffix (NULL: none). */
static void mrl__ckpt_text_json2(mrl__ckpt_text *t, const char *s, const char *suffix) {
  mrl__ckpt_text_add(t, "\"", 1);
  mrl__ckpt_text_escaped(t, s);
  if (suffix) mrl__ckpt_text_escaped(t, suffix);
  mrl__ckpt_text_add(t, "\"", 1);
}

static void mrl__ckpt_text_json(mrl__ckpt_text *t, const char *s) {
  mrl__ckpt_text_json2(t, s, NULL);
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

/* Bytes per element of an extra tensor's dtype; 0 for one extras cannot use. */
static size_t mrl__ckpt_extra_size(const char *dtype) {
  if (!dtype) return 0;
  if (strcmp(dtype, "U8") == 0) return 1;
  if (strcmp(dtype, "F32") == 0) return 4;
  if (strcmp(dtype, "F64") == 0 || strcmp(dtype, "I64") == 0 || strcmp(dtype, "U64") == 0) return 8;
  return 0;
}

/* Copies n elements of esize bytes, reversing each element's bytes on a
 * big-endian host (files are little-endian). */
static void mrl__ckpt_copy_le(unsigned char *dst, const unsigned char *src, size_t n, size_t esize,
                              int native) {
  size_t i, b;
  if (native || esize == 1) {
    memcpy(dst, src, n * esize);
    return;
  }
  for (i = 0; i < n; i++)
    for (b = 0; b < esize; b++) dst[i * esize + b] = src[i * esize + esize - 1 - b];
}

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
  char version[48];
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
  if (o->num_extras < 0 || (o->num_extras > 0 && !o->extras)) return MRL_ERR_INVALID_ARGUMENT;
  for (m = 0; m < o->num_extras; m++) {
    const mrl_checkpoint_extra *e = &o->extras[m];
    if (!e->name || strncmp(e->name, "__", 2) != 0 || strcmp(e->name, "__metadata__") == 0 ||
        !mrl__ckpt_utf8_valid((const unsigned char *)e->name, strlen(e->name)) ||
        !mrl__ckpt_extra_size(e->dtype) || (e->count && !e->data) || e->count > ((uint64_t)1 << 60))
      return MRL_ERR_INVALID_ARGUMENT;
    for (k = 0; k < m; k++)
      if (strcmp(o->extras[k].name, e->name) == 0) return MRL_ERR_INVALID_ARGUMENT;
  }
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
      mrl__ckpt_text_str(t, ",");
      mrl__ckpt_text_json2(t, it->name, k ? mrl__ckpt_moment_suffix[k - 1] : NULL);
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
  for (m = 0; m < o->num_extras; m++) {
    const mrl_checkpoint_extra *e = &o->extras[m];
    uint64_t bytes = e->count * mrl__ckpt_extra_size(e->dtype);
    mrl__ckpt_text_str(t, ",");
    mrl__ckpt_text_json(t, e->name);
    mrl__ckpt_text_str(t, ":{\"dtype\":");
    mrl__ckpt_text_json(t, e->dtype);
    mrl__ckpt_text_str(t, ",\"shape\":[");
    mrl__ckpt_text_u64(t, e->count);
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

static void mrl__ckpt_emit(const mrl_params *p, const mrl_checkpoint_options *o,
                           const mrl__ckpt_text *hdr, mrl__ckpt_sink *s) {
  int moments = o->save_optimizer;
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
  for (i = 0; i < o->num_extras; i++) {
    const mrl_checkpoint_extra *e = &o->extras[i];
    size_t esize = mrl__ckpt_extra_size(e->dtype), left = (size_t)e->count;
    const unsigned char *src = (const unsigned char *)e->data;
    while (left) {
      size_t c = left < sizeof chunk / esize ? left : sizeof chunk / esize;
      mrl__ckpt_copy_le(chunk, src, c, esize, native);
      mrl__ckpt_put(s, chunk, c * esize);
      src += c * esize;
      left -= c;
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
  mrl__ckpt_emit(p, &o, &hdr, &s);
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

/* A killed save leaves its "<path>.tmp.<pid>.<hex>.<n>" behind. Before
 * saving to path, remove those of path whose writer is surely gone: the
 * name has exactly that form (nothing else in the directory is touched),
 * <pid> is not this process, kill(<pid>, 0) says no such process (ESRCH),
 * and the file has not changed for MRL_CHECKPOINT_STALE_SECONDS (another
 * machine saving into a shared directory has pids this one cannot see,
 * but its live save keeps its file fresh). POSIX only; best effort. */
static void mrl__ckpt_remove_stale(const char *path) {
#if defined(MRL__CKPT_POSIX)
  size_t n = strlen(path), dlen = n, blen;
  char *buf;
  DIR *d;
  struct dirent *e;
  unsigned long self = (unsigned long)getpid();
  time_t now = time(NULL);
  while (dlen > 0 && path[dlen - 1] != '/') dlen--;
  blen = n - dlen; /* the base name path[dlen..n) */
  if (blen == 0) return;
  buf = (char *)MRL_MALLOC(n + 256 + 2);
  if (!buf) return;
  if (dlen == 0) {
    strcpy(buf, ".");
  } else {
    memcpy(buf, path, dlen);
    buf[dlen > 1 ? dlen - 1 : 1] = '\0'; /* keep "/" for a file in the root */
  }
  d = opendir(buf);
  while (d && (e = readdir(d)) != NULL) {
    const char *q = e->d_name;
    unsigned long pid = 0;
    int digits = 0, hex = 0, tail = 0;
    struct stat st;
    if (strncmp(q, path + dlen, blen) != 0 || strncmp(q + blen, ".tmp.", 5) != 0) continue;
    for (q += blen + 5; *q >= '0' && *q <= '9' && digits < 10; q++, digits++)
      pid = pid * 10u + (unsigned long)(*q - '0');
    if (!digits || *q++ != '.') continue;
    for (; (*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f'); q++) hex++;
    if (!hex || *q++ != '.') continue;
    for (; *q >= '0' && *q <= '9'; q++) tail++;
    if (!tail || *q || pid == 0 || pid == self || pid > (unsigned long)INT_MAX) continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to judge */
    if (strlen(e->d_name) > 255) continue;
    memcpy(buf, path, dlen); /* the directory's name is not needed again */
    strcpy(buf + dlen, e->d_name);
    if (stat(buf, &st) == 0 && S_ISREG(st.st_mode) &&
        difftime(now, st.st_mtime) >= (double)MRL_CHECKPOINT_STALE_SECONDS)
      remove(buf); /* a symbolic link of that name: the link, never its target */
  }
  if (d) closedir(d);
  MRL_FREE(buf);
#else
  (void)path;
#endif
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
  mrl__ckpt_remove_stale(path);
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
  mrl__ckpt_emit(p, &o, &hdr, &s);
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
  if (!path) return MRL_ERR_INVALID_ARGUMENT; /* as mrl_checkpoint_save answers */
  if ((f = fopen(path, "rb")) == NULL) return MRL_ERR_IO;
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

/* The order of mrl__ckpt_cmp_name between the string a followed by b and t's name. */
static int mrl__ckpt_cmp_parts(const char *a, size_t la, const char *b, size_t lb,
                               const mrl_checkpoint_tensor *t) {
  size_t n = la < t->name_len ? la : t->name_len, rest, m;
  int c = n ? memcmp(a, t->name, n) : 0;
  if (c) return c;
  if (la > t->name_len) return 1;
  rest = t->name_len - la;
  m = lb < rest ? lb : rest;
  c = m ? memcmp(b, t->name + la, m) : 0;
  if (c) return c;
  return lb < rest ? -1 : lb > rest ? 1 : 0;
}

/* The tensor named a followed by b (names of any length, nothing built). */
static const mrl_checkpoint_tensor *mrl__ckpt_find2(const mrl_checkpoint *c, const char *a,
                                                    const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  int lo = 0, hi = c->num_tensors - 1;
  while (lo <= hi) { /* tensors are sorted by name */
    int mid = lo + (hi - lo) / 2, cmp = mrl__ckpt_cmp_parts(a, la, b, lb, &c->tensors[mid]);
    if (cmp == 0) return &c->tensors[mid];
    if (cmp < 0)
      hi = mid - 1;
    else
      lo = mid + 1;
  }
  return NULL;
}

MRL_DEF const mrl_checkpoint_tensor *mrl_checkpoint_find(const mrl_checkpoint *c,
                                                         const char *name) {
  if (!c || !name) return NULL;
  return mrl__ckpt_find2(c, name, "");
}

MRL_DEF mrl_result mrl_checkpoint_read_f32(const mrl_checkpoint_tensor *t, float *out,
                                           size_t count) {
  if (!t || (!out && count) || !mrl__ckpt_float_dtype(t->dtype) || t->numel != (uint64_t)count)
    return MRL_ERR_INVALID_ARGUMENT;
  mrl__ckpt_to_f32(out, t, count, mrl__ckpt_host_le());
  return MRL_OK;
}

MRL_DEF mrl_result mrl_checkpoint_read(const mrl_checkpoint_tensor *t, const char *dtype, void *out,
                                       size_t count) {
  size_t esize = mrl__ckpt_extra_size(dtype);
  if (!t || !esize || (!out && count) || strcmp(t->dtype, dtype) != 0 ||
      t->numel != (uint64_t)count)
    return MRL_ERR_INVALID_ARGUMENT;
  mrl__ckpt_copy_le((unsigned char *)out, t->bytes, count, esize, mrl__ckpt_host_le());
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

/* "[d0,d1,...]" into buf (at least 24 * MRL_CHECKPOINT_MAX_DIMS bytes). */
static const char *mrl__ckpt_shape_str(char *buf, int ndim, const uint64_t *shape) {
  size_t at = 0;
  int d;
  buf[at++] = '[';
  for (d = 0; d < ndim; d++) {
    char digits[24];
    int i = 23;
    uint64_t v = shape[d];
    digits[i] = '\0';
    do {
      digits[--i] = (char)('0' + (int)(v % 10u));
      v /= 10u;
    } while (v);
    if (d) buf[at++] = ',';
    memcpy(buf + at, digits + i, (size_t)(23 - i));
    at += (size_t)(23 - i);
  }
  buf[at++] = ']';
  buf[at] = '\0';
  return buf;
}

/* The file tensor for model tensor m (name + suffix), checked: a floating
 * dtype and the same shape. With p, a mismatch is explained in p->message. */
static mrl_result mrl__ckpt_match(const mrl_checkpoint *c, const mrl_param *m, const char *suffix,
                                  const mrl_checkpoint_tensor **out, mrl_params *p) {
  char want[24 * MRL_CHECKPOINT_MAX_DIMS], got[24 * MRL_CHECKPOINT_MAX_DIMS];
  uint64_t shape[MRL_MAX_DIMS];
  const mrl_checkpoint_tensor *t;
  int d, same;
  *out = NULL;
  for (d = 0; d < m->tensor.ndim; d++) shape[d] = (uint64_t)m->tensor.shape[d];
  if ((t = mrl__ckpt_find2(c, m->name, suffix)) == NULL) {
    if (p)
      mrl__params_say(p, "checkpoint: no tensor \"%.300s%s\" (the model's, shape %s)", m->name,
                      suffix, mrl__ckpt_shape_str(want, m->tensor.ndim, shape));
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (!mrl__ckpt_float_dtype(t->dtype)) {
    if (p)
      mrl__params_say(p,
                      "checkpoint: tensor \"%.300s%s\" has dtype %s (loads: F32, F16, BF16, F64)",
                      m->name, suffix, t->dtype);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  same = t->ndim == m->tensor.ndim;
  for (d = 0; same && d < t->ndim; d++) same = t->shape[d] == shape[d];
  if (!same) {
    if (p)
      mrl__params_say(p, "checkpoint: tensor \"%.300s%s\" has shape %s, the model's is %s", m->name,
                      suffix, mrl__ckpt_shape_str(got, t->ndim, t->shape),
                      mrl__ckpt_shape_str(want, m->tensor.ndim, shape));
    return MRL_ERR_INVALID_ARGUMENT;
  }
  *out = t;
  return MRL_OK;
}

/* The values a model may take from file tensor t (any float dtype a load
 * converts, judged after the conversion to float32, as they would land):
 * parameters finite (unless allowed otherwise), Adam's moments finite and
 * its second moment (a running mean of squares) never negative; -0 is
 * fine. MRL_ERR_CORRUPT with p->message naming the tensor and the first
 * offending element otherwise. kind: 0 values, 1 first, 2 second moment. */
static mrl_result mrl__ckpt_check_values(const mrl_checkpoint_tensor *t, int kind,
                                         int allow_non_finite, mrl_params *p) {
  float chunk[256];
  size_t i, j, n = (size_t)t->numel, esize = (size_t)(t->nbytes / (t->numel ? t->numel : 1));
  int native = mrl__ckpt_host_le();
  for (i = 0; i < n; i += 256) {
    mrl_checkpoint_tensor part = *t;
    size_t m = n - i < 256 ? n - i : 256;
    part.bytes = t->bytes + i * esize;
    mrl__ckpt_to_f32(chunk, &part, m, native);
    for (j = 0; j < m; j++) {
      uint32_t u;
      int non_finite, negative;
      memcpy(&u, &chunk[j], 4);
      non_finite = (u & 0x7f800000u) == 0x7f800000u;
      negative = (u & 0x80000000u) && (u & 0x7fffffffu);
      if ((non_finite && !(kind == 0 && allow_non_finite)) || (kind == 2 && negative)) {
        mrl__params_say(p, "checkpoint: tensor \"%.300s\" holds %s %g at element %lu%s", t->name,
                        kind == 2 && !non_finite ? "a negative Adam second moment"
                        : kind                   ? "a non-finite Adam moment"
                                                 : "a non-finite parameter value",
                        (double)chunk[j], (unsigned long)(i + j),
                        kind == 0 ? " (MRL_CHECKPOINT_ALLOW_NON_FINITE loads it)" : "");
        return MRL_ERR_CORRUPT;
      }
    }
  }
  return MRL_OK;
}

MRL_DEF mrl_result mrl_checkpoint_apply(const mrl_checkpoint *c, mrl_params *p, int flags) {
  int opt = (flags & MRL_CHECKPOINT_OPTIMIZER) != 0, i, k, native = mrl__ckpt_host_le();
  int allow_non_finite = (flags & MRL_CHECKPOINT_ALLOW_NON_FINITE) != 0;
  long long steps = 0;
  unsigned char *used;
  mrl_result r = MRL_OK;
  if (!p) return MRL_ERR_INVALID_ARGUMENT;
  p->message[0] = '\0';
  if (!c || !p->finalized || (flags & ~7)) {
    mrl__params_say(p, "mrl_checkpoint_apply: %s",
                    !c              ? "no checkpoint"
                    : !p->finalized ? "the store is not finalized"
                                    : "unknown flags");
    return MRL_ERR_INVALID_ARGUMENT;
  }
  if (opt) { /* memrl.adam_steps: decimal digits, fits in long long */
    const char *s = mrl_checkpoint_meta(c, "memrl.adam_steps");
    if (!s) {
      mrl__params_say(p, "checkpoint: no optimiser state (metadata memrl.adam_steps)");
      return MRL_ERR_INVALID_ARGUMENT;
    }
    if (!*s) return MRL_ERR_CORRUPT;
    for (; *s; s++) {
      if (*s < '0' || *s > '9' || steps > (LLONG_MAX - (*s - '0')) / 10) {
        mrl__params_say(p, "checkpoint: memrl.adam_steps is not a step count");
        return MRL_ERR_CORRUPT;
      }
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
      r = mrl__ckpt_match(c, &p->items[i], k ? mrl__ckpt_moment_suffix[k - 1] : "", &t, p);
      if (r == MRL_OK) used[t - c->tensors] = 1;
      if (r == MRL_OK) r = mrl__ckpt_check_values(t, k, allow_non_finite, p);
    }
  if (r == MRL_OK && !(flags & MRL_CHECKPOINT_ALLOW_UNKNOWN)) {
    /* moments are known tensors even when not loaded */
    for (i = 0; i < p->count; i++)
      for (k = 1; k < 3; k++) {
        const mrl_checkpoint_tensor *t;
        if (mrl__ckpt_match(c, &p->items[i], mrl__ckpt_moment_suffix[k - 1], &t, NULL) == MRL_OK)
          used[t - c->tensors] = 1;
      }
    for (i = 0; i < c->num_tensors && r == MRL_OK; i++) /* "__" tensors are not parameters */
      if (!used[i] && strncmp(c->tensors[i].name, "__", 2) != 0) {
        char got[24 * MRL_CHECKPOINT_MAX_DIMS];
        const mrl_checkpoint_tensor *t = &c->tensors[i];
        mrl__params_say(p,
                        "checkpoint: tensor \"%.*s\" (%s %s) is not in the model "
                        "(MRL_CHECKPOINT_ALLOW_UNKNOWN ignores it)",
                        (int)(t->name_len < 300 ? t->name_len : 300), t->name, t->dtype,
                        mrl__ckpt_shape_str(got, t->ndim, t->shape));
        r = MRL_ERR_INVALID_ARGUMENT;
      }
  }
  MRL_FREE(used);
  if (r != MRL_OK) return r;
  /* 2. write */
  for (k = 0; k < (opt ? 3 : 1); k++)
    for (i = 0; i < p->count; i++) {
      const mrl_checkpoint_tensor *t;
      float *dst = (k == 0 ? p->values : k == 1 ? p->moment1 : p->moment2) + p->items[i].offset;
      mrl__ckpt_match(c, &p->items[i], k ? mrl__ckpt_moment_suffix[k - 1] : "", &t, NULL);
      mrl__ckpt_to_f32(dst, t, (size_t)t->numel, native);
    }
  if (opt) p->adam_steps = steps;
  return MRL_OK;
}

MRL_DEF mrl_result mrl_checkpoint_load_buffer(mrl_params *p, const void *data, size_t size,
                                              int flags) {
  mrl_checkpoint c;
  mrl_result r = mrl_checkpoint_open_buffer(&c, data, size);
  if (r == MRL_OK)
    r = mrl_checkpoint_apply(&c, p, flags);
  else if (p)
    mrl__params_say(p, "checkpoint buffer: %s", mrl_result_string(r));
  mrl_checkpoint_close(&c);
  return r;
}

MRL_DEF mrl_result mrl_checkpoint_load(mrl_params *p, const char *path, int flags) {
  mrl_checkpoint c;
  mrl_result r = mrl_checkpoint_open(&c, path);
  if (r == MRL_OK)
    r = mrl_checkpoint_apply(&c, p, flags);
  else if (p)
    mrl__params_say(p, "checkpoint %.300s: %s", path ? path : "(null path)", mrl_result_string(r));
  mrl_checkpoint_close(&c);
  return r;
}

/* ---- embedding, layernorm, conv encoders, VAE ---- >>encoders */

MRL_DEF void mrl_embedding_init(mrl_embedding *e, mrl_params *p, const char *name,
                                int num_embeddings, int embedding_dim, mrl_init init) {
  char buf[MRL_NAME_MAX];
  int shape[2];
  shape[0] = num_embeddings;
  shape[1] = embedding_dim;
  if (init.kind == MRL_INIT_DEFAULT) init = mrl_init_make(MRL_INIT_NORMAL, 1.0f);
  e->params = p;
  e->num_embeddings = num_embeddings;
  e->embedding_dim = embedding_dim;
  e->padding_idx = -1;
  mrl__name(p, buf, name, "weight");
  e->weight = mrl_params_add(p, buf, 2, shape, init);
}

MRL_DEF void mrl_embedding_init_padding(mrl_embedding *e, mrl_params *p, const char *name,
                                        int num_embeddings, int embedding_dim, int padding_idx,
                                        mrl_init init) {
  mrl_embedding_init(e, p, name, num_embeddings, embedding_dim, init);
  if (padding_idx < -num_embeddings || padding_idx >= num_embeddings) {
    char msg[96];
    snprintf(msg, sizeof msg, "embedding padding_idx %d outside [-%d, %d)", padding_idx,
             num_embeddings, num_embeddings);
    mrl__params_fail(p, MRL_ERR_INVALID_ARGUMENT, msg, NULL);
    return;
  }
  e->padding_idx = padding_idx < 0 ? padding_idx + num_embeddings : padding_idx;
  if (e->weight >= 0) p->items[e->weight].zero_row = e->padding_idx + 1;
}

/* index_select that gives the padding row no gradient: i[0] rows, i[1] dim, i[2] padding_idx. */
static void mrl__embedding_backward(mrl_node *nd) {
  mrl_tensor *w = nd->in[0], *y = nd->out;
  int n = nd->i[0], dim = nd->i[1], r, j;
  if (!w->grad) return;
  for (r = 0; r < n; r++) {
    float *gw = w->grad + (size_t)nd->index[r] * dim;
    const float *gy = y->grad + (size_t)r * dim;
    if (nd->index[r] == nd->i[2]) continue;
    for (j = 0; j < dim; j++) gw[j] += gy[j];
  }
}

MRL_DEF mrl_tensor *mrl_embedding_forward(const mrl_embedding *e, mrl_graph *g, const int *ids,
                                          int n) {
  mrl_tensor *w = mrl_params_tensor(e->params, e->weight), *y;
  mrl_node *nd;
  int shape[2], r, *idx;
  if (e->padding_idx < 0) return mrl_index_select(g, w, ids, n);
  MRL_SHAPE_CHECK(n >= 0, "embedding", "negative number of indices", w, NULL);
  for (r = 0; r < n; r++) MRL__INDEX_CHECK("embedding", w, ids[r], r, w->shape[0]);
  if ((idx = mrl__copy_ints(g, ids, n)) == NULL) return NULL;
  shape[0] = n;
  shape[1] = w->shape[1];
  if ((y = mrl_op_output(g, 2, shape, mrl_graph_wants_grad(g, w, NULL))) == NULL) return NULL;
  for (r = 0; r < n; r++)
    memcpy(y->data + (size_t)r * shape[1], w->data + (size_t)idx[r] * shape[1],
           sizeof(float) * (size_t)shape[1]);
  if ((nd = mrl_graph_record(g, "embedding", mrl__embedding_backward, y)) != NULL) {
    nd->in[0] = w;
    nd->index = idx;
    nd->i[0] = n;
    nd->i[1] = shape[1];
    nd->i[2] = e->padding_idx;
  }
  return y;
}

MRL_DEF void mrl_layernorm_layer_init(mrl_layernorm_layer *l, mrl_params *p, const char *name,
                                      int dim, float eps, int elementwise_affine) {
  char buf[MRL_NAME_MAX];
  l->params = p;
  l->dim = dim;
  l->eps = eps;
  l->weight = l->bias = -1;
  if (!elementwise_affine) return;
  mrl__name(p, buf, name, "weight");
  l->weight = mrl_params_add(p, buf, 1, &dim, mrl_init_make(MRL_INIT_CONSTANT, 1.0f));
  mrl__name(p, buf, name, "bias");
  l->bias = mrl_params_add(p, buf, 1, &dim, mrl_init_make(MRL_INIT_ZEROS, 0.0f));
}

MRL_DEF mrl_tensor *mrl_layernorm_layer_forward(const mrl_layernorm_layer *l, mrl_graph *g,
                                                mrl_tensor *x) {
  mrl_tensor *w = l->weight >= 0 ? mrl_params_tensor(l->params, l->weight) : NULL;
  mrl_tensor *b = l->bias >= 0 ? mrl_params_tensor(l->params, l->bias) : NULL;
  if (x)
    MRL_SHAPE_CHECK(mrl_tensor_cols(x) == l->dim, "layernorm_layer",
                    "x's last dimension must equal the layer's dim", x, w);
  return mrl_layernorm(g, x, w, b, l->eps);
}

/* Declares <name>.weight [d0, d1, k, k] and <name>.bias [out_channels].
 * DEFAULT is PyTorch's: kaiming_uniform(a = sqrt 5) on the weight, whose
 * bound is 1 / sqrt(fan_in), and the bias U(+-1 / sqrt(fan_in)); another
 * init applies to the weight with a zero bias. */
static void mrl__conv_declare(mrl_params *p, const char *name, int d0, int d1, int kh, int kw,
                              int out_channels, int fan_in, int has_bias, mrl_init init,
                              int *weight, int *bias) {
  char buf[MRL_NAME_MAX];
  int wshape[4];
  mrl_init wi = init, bi = mrl_init_make(MRL_INIT_ZEROS, 0.0f);
  wshape[0] = d0;
  wshape[1] = d1;
  wshape[2] = kh;
  wshape[3] = kw;
  if (init.kind == MRL_INIT_DEFAULT) {
    float bound = 1.0f / sqrtf((float)fan_in);
    wi = mrl_init_make(MRL_INIT_UNIFORM, bound);
    bi = mrl_init_make(MRL_INIT_UNIFORM, bound);
  }
  mrl__name(p, buf, name, "weight");
  *weight = mrl_params_add(p, buf, 4, wshape, wi);
  *bias = -1;
  if (has_bias) {
    mrl__name(p, buf, name, "bias");
    *bias = mrl_params_add(p, buf, 1, &out_channels, bi);
  }
}

MRL_DEF void mrl_conv2d_layer_init(mrl_conv2d_layer *l, mrl_params *p, const char *name,
                                   int in_channels, int out_channels, int kernel_size, int stride,
                                   int padding, mrl_init init) {
  memset(l, 0, sizeof *l);
  l->params = p;
  l->in_channels = in_channels;
  l->out_channels = out_channels;
  l->kernel_size = l->kernel_h = l->kernel_w = kernel_size;
  l->stride = l->stride_h = l->stride_w = stride;
  l->padding = l->pad_h = l->pad_w = padding;
  mrl__conv_declare(p, name, out_channels, in_channels, kernel_size, kernel_size, out_channels,
                    in_channels * kernel_size * kernel_size, 1, init, &l->weight, &l->bias);
}

MRL_DEF mrl_conv2d_config mrl_conv2d_config_default(void) {
  mrl_conv2d_config c;
  memset(&c, 0, sizeof c);
  c.stride_h = c.stride_w = 1;
  c.bias = 1;
  c.init = mrl_init_default();
  return c;
}

MRL_DEF mrl_result mrl_conv2d_layer_init_config(mrl_conv2d_layer *l, mrl_params *p,
                                                const char *name, const mrl_conv2d_config *cfg) {
  static const char fields[8][16] = {"in_channels", "out_channels", "kernel_h", "kernel_w",
                                     "stride_h",    "stride_w",     "pad_h",    "pad_w"};
  int v[8], k;
  if (!l || !p || !cfg) return MRL_ERR_INVALID_ARGUMENT;
  v[0] = cfg->in_channels;
  v[1] = cfg->out_channels;
  v[2] = cfg->kernel_h;
  v[3] = cfg->kernel_w;
  v[4] = cfg->stride_h;
  v[5] = cfg->stride_w;
  v[6] = cfg->pad_h;
  v[7] = cfg->pad_w;
  for (k = 0; k < 8; k++)
    if (k < 6 ? v[k] < 1 : v[k] < 0) {
      mrl__params_say(p, "mrl_conv2d_config.%s %d must be %s", fields[k], v[k],
                      k < 6 ? ">= 1" : ">= 0");
      return MRL_ERR_INVALID_ARGUMENT;
    }
  if (v[2] > INT_MAX / v[3] || v[0] > INT_MAX / (v[2] * v[3])) {
    mrl__params_say(p, "mrl_conv2d_config: in_channels * kernel_h * kernel_w overflows int");
    return MRL_ERR_INVALID_ARGUMENT;
  }
  memset(l, 0, sizeof *l);
  l->params = p;
  l->in_channels = cfg->in_channels;
  l->out_channels = cfg->out_channels;
  l->kernel_size = l->kernel_h = cfg->kernel_h;
  l->kernel_w = cfg->kernel_w;
  l->stride = l->stride_h = cfg->stride_h;
  l->stride_w = cfg->stride_w;
  l->padding = l->pad_h = cfg->pad_h;
  l->pad_w = cfg->pad_w;
  mrl__conv_declare(p, name, cfg->out_channels, cfg->in_channels, cfg->kernel_h, cfg->kernel_w,
                    cfg->out_channels, cfg->in_channels * cfg->kernel_h * cfg->kernel_w,
                    cfg->bias != 0, cfg->init, &l->weight, &l->bias);
  return p->status;
}

MRL_DEF mrl_tensor *mrl_conv2d_layer_forward(const mrl_conv2d_layer *l, mrl_graph *g,
                                             mrl_tensor *x) {
  return mrl_conv2d_rect(g, x, mrl_params_tensor(l->params, l->weight),
                         l->bias >= 0 ? mrl_params_tensor(l->params, l->bias) : NULL, l->stride_h,
                         l->stride_w, l->pad_h, l->pad_w);
}

MRL_DEF int mrl_conv2d_out_size(int in, int kernel_size, int stride, int padding) {
  if (in < 1 || kernel_size < 1 || stride < 1 || padding < 0 || in + 2 * padding < kernel_size)
    return 0;
  return (in + 2 * padding - kernel_size) / stride + 1;
}

MRL_DEF mrl_conv_encoder_config mrl_conv_encoder_config_default(void) {
  mrl_conv_encoder_config c;
  static const int ch[3] = {32, 64, 64}, k[3] = {8, 4, 3}, s[3] = {4, 2, 1};
  int i;
  memset(&c, 0, sizeof c);
  c.in_channels = 4;
  c.in_height = c.in_width = 84;
  c.num_layers = 3;
  for (i = 0; i < 3; i++) {
    c.channels[i] = ch[i];
    c.kernels[i] = k[i];
    c.strides[i] = s[i];
    c.paddings[i] = 0;
  }
  c.activation = MRL_ACT_RELU;
  c.linear_out = 512;
  c.activate_linear = 1;
  c.init = mrl_init_default();
  return c;
}

MRL_DEF mrl_result mrl_conv_encoder_init(mrl_conv_encoder *e, mrl_params *p, const char *name,
                                         const mrl_conv_encoder_config *cfg) {
  char buf[MRL_NAME_MAX];
  int i, c, h, w, step = cfg->activation == MRL_ACT_NONE ? 1 : 2;
  memset(e, 0, sizeof *e);
  if (cfg->num_layers < 1 || cfg->num_layers > MRL_CONV_MAX_LAYERS || cfg->in_channels < 1 ||
      cfg->linear_out < 0 || !mrl__activation_ok(cfg->activation))
    return MRL_ERR_INVALID_ARGUMENT;
  /* check every size before declaring anything */
  h = cfg->in_height;
  w = cfg->in_width;
  for (i = 0; i < cfg->num_layers; i++) {
    if (cfg->channels[i] < 1) return MRL_ERR_INVALID_ARGUMENT;
    h = mrl_conv2d_out_size(h, cfg->kernels[i], cfg->strides[i], cfg->paddings[i]);
    w = mrl_conv2d_out_size(w, cfg->kernels[i], cfg->strides[i], cfg->paddings[i]);
    if (h < 1 || w < 1) return MRL_ERR_INVALID_ARGUMENT;
  }
  e->num_layers = cfg->num_layers;
  e->activation = cfg->activation;
  e->in_channels = cfg->in_channels;
  e->in_height = cfg->in_height;
  e->in_width = cfg->in_width;
  c = cfg->in_channels;
  for (i = 0; i < cfg->num_layers; i++) {
    mrl__name(p, buf, name, "%d", step * i);
    mrl_conv2d_layer_init(&e->convs[i], p, buf, c, cfg->channels[i], cfg->kernels[i],
                          cfg->strides[i], cfg->paddings[i], cfg->init);
    c = cfg->channels[i];
  }
  e->conv_channels = c;
  e->conv_height = h;
  e->conv_width = w;
  e->flat_features = c * h * w;
  e->out_features = e->flat_features;
  if (cfg->linear_out > 0) {
    /* Sequential index after the convs (and their activations) and Flatten */
    mrl__name(p, buf, name, "%d", step * cfg->num_layers + 1);
    mrl_linear_layer_init(&e->linear, p, buf, e->flat_features, cfg->linear_out, cfg->init);
    e->has_linear = 1;
    e->activate_linear = cfg->activate_linear;
    e->out_features = cfg->linear_out;
  }
  return MRL_OK;
}

MRL_DEF mrl_tensor *mrl_conv_encoder_forward(const mrl_conv_encoder *e, mrl_graph *g,
                                             mrl_tensor *x) {
  int i, shape[4], n;
  if (!x) return NULL;
  n = x->shape[0];
  shape[0] = n;
  shape[1] = e->in_channels;
  shape[2] = e->in_height;
  shape[3] = e->in_width;
  if (x->ndim == 2) {
    MRL_SHAPE_CHECK(x->shape[1] == e->in_channels * e->in_height * e->in_width, "conv_encoder",
                    "a flat x must have C*H*W columns", x, NULL);
    x = mrl_reshape(g, x, 4, shape);
  } else {
    MRL_SHAPE_CHECK(x->ndim == 4 && x->shape[1] == shape[1] && x->shape[2] == shape[2] &&
                        x->shape[3] == shape[3],
                    "conv_encoder", "x must be [N,C,H,W] with the encoder's C, H and W", x, NULL);
  }
  for (i = 0; i < e->num_layers; i++)
    x = mrl_activate(g, mrl_conv2d_layer_forward(&e->convs[i], g, x), e->activation);
  shape[1] = e->flat_features;
  x = mrl_reshape(g, x, 2, shape); /* nn.Flatten: C, H, W order is already row-major */
  if (e->has_linear) {
    x = mrl_linear_layer_forward(&e->linear, g, x);
    if (e->activate_linear) x = mrl_activate(g, x, e->activation);
  }
  return x;
}

/* conv_transpose2d. The gemm runs over a chunk of images at once (their
 * pixels side by side as columns), so that small feature maps (World Models'
 * 1x1 and 5x5 inputs) still give the gemm wide matrices: a chunk holds
 * max(1, 512 / (H W)) images. Node: in x, w, b; extra[0] cols
 * [O*KH*KW, chunk*H*W], extra[1] xt [C, chunk*H*W] (scratch reused by the
 * backward); i[] stride, pad, chunk. */
#define MRL__CONVT_COLUMNS 512

/* y[o, i s - pad + ki, j s - pad + kj] += cols[(o, ki, kj), (i, j)]; cols has row stride ld. */
static void mrl__convt_col2im(const float *cols, size_t ld, int o, int kh, int kw, int h, int w,
                              int stride, int pad, int oh, int ow, float *y) {
  int c, ki, kj, i, j;
  for (c = 0; c < o; c++)
    for (ki = 0; ki < kh; ki++)
      for (kj = 0; kj < kw; kj++) {
        const float *row = cols + (size_t)((c * kh + ki) * kw + kj) * ld;
        float *yc = y + (size_t)c * oh * ow;
        for (i = 0; i < h; i++) {
          int yi = i * stride - pad + ki;
          if (yi < 0 || yi >= oh) continue;
          for (j = 0; j < w; j++) {
            int yj = j * stride - pad + kj;
            if (yj >= 0 && yj < ow) yc[(size_t)yi * ow + yj] += row[(size_t)i * w + j];
          }
        }
      }
}

/* The adjoint of col2im: cols[(o, ki, kj), (i, j)] = y[o, i s - pad + ki, j s - pad + kj] or 0. */
static void mrl__convt_im2col(const float *y, int o, int kh, int kw, int h, int w, int stride,
                              int pad, int oh, int ow, float *cols, size_t ld) {
  int c, ki, kj, i, j;
  for (c = 0; c < o; c++)
    for (ki = 0; ki < kh; ki++)
      for (kj = 0; kj < kw; kj++) {
        float *row = cols + (size_t)((c * kh + ki) * kw + kj) * ld;
        const float *yc = y + (size_t)c * oh * ow;
        for (i = 0; i < h; i++) {
          int yi = i * stride - pad + ki;
          for (j = 0; j < w; j++) {
            int yj = j * stride - pad + kj;
            row[(size_t)i * w + j] =
                yi >= 0 && yi < oh && yj >= 0 && yj < ow ? yc[(size_t)yi * ow + yj] : 0.0f;
          }
        }
      }
}

/* xt[c, j hw + q] = x[n0 + j, c, q] for j < m: images side by side. */
static void mrl__convt_pack(const float *x, int n0, int m, int c, int hw, float *xt) {
  int j, k;
  size_t ld = (size_t)m * hw;
  for (j = 0; j < m; j++)
    for (k = 0; k < c; k++)
      memcpy(xt + (size_t)k * ld + (size_t)j * hw, x + ((size_t)(n0 + j) * c + k) * hw,
             sizeof(float) * (size_t)hw);
}

static void mrl__convt_backward(mrl_node *nd) {
  mrl_tensor *x = nd->in[0], *wt = nd->in[1], *b = nd->in[2], *y = nd->out;
  float *cols = nd->extra[0]->data, *xt = nd->extra[1]->data;
  int n = x->shape[0], c = x->shape[1], h = x->shape[2], w = x->shape[3], chunk = nd->i[2];
  int o = wt->shape[1], kh = wt->shape[2], kw = wt->shape[3], oh = y->shape[2], ow = y->shape[3];
  int okk = o * kh * kw, hw = h * w, n0, j, k, q;
  for (n0 = 0; n0 < n; n0 += chunk) {
    int m = n - n0 < chunk ? n - n0 : chunk, cols_n = m * hw;
    for (j = 0; j < m; j++)
      mrl__convt_im2col(y->grad + (size_t)(n0 + j) * o * oh * ow, o, kh, kw, h, w, nd->i[0],
                        nd->i[1], oh, ow, cols + (size_t)j * hw, (size_t)cols_n);
    /* dW [C, OKK] += x [C, m HW] . dcols^T */
    if (wt->grad) {
      mrl__convt_pack(x->data, n0, m, c, hw, xt);
      mrl_gemm(0, 1, c, okk, cols_n, xt, cols_n, cols, cols_n, 1.0f, wt->grad, okk);
    }
    /* dx [C, m HW] = W [C, OKK] . dcols, then back to [m, C, HW] */
    if (x->grad) {
      mrl_gemm(0, 0, c, cols_n, okk, wt->data, okk, cols, cols_n, 0.0f, xt, cols_n);
      for (j = 0; j < m; j++)
        for (k = 0; k < c; k++) {
          float *gx = x->grad + ((size_t)(n0 + j) * c + k) * hw;
          const float *src = xt + (size_t)k * cols_n + (size_t)j * hw;
          for (q = 0; q < hw; q++) gx[q] += src[q];
        }
    }
  }
  if (b && b->grad)
    for (j = 0; j < n; j++)
      for (k = 0; k < o; k++) {
        const float *gy = y->grad + ((size_t)j * o + k) * oh * ow;
        float s = 0.0f;
        for (q = 0; q < oh * ow; q++) s += gy[q];
        b->grad[k] += s;
      }
}

MRL_DEF int mrl_conv_transpose2d_out_size(int in, int kernel_size, int stride, int padding,
                                          int output_padding) {
  int out;
  if (in < 1 || kernel_size < 1 || stride < 1 || padding < 0 || output_padding < 0 ||
      output_padding >= stride)
    return 0;
  out = (in - 1) * stride - 2 * padding + kernel_size + output_padding;
  return out >= 1 ? out : 0;
}

MRL_DEF mrl_tensor *mrl_conv_transpose2d(mrl_graph *g, mrl_tensor *x, mrl_tensor *w, mrl_tensor *b,
                                         int stride, int pad, int output_padding) {
  mrl_tensor *y, *cols, *xt;
  mrl_node *nd;
  int n, c, h, wd, o, kh, kw, oh, ow, hw, okk, shape[4], n0, j, k, q, wants, chunk;
  if (!x || !w) return NULL;
  MRL_SHAPE_CHECK(x->ndim == 4 && w->ndim == 4, "conv_transpose2d",
                  "x must be [N,C,H,W] and the weight [C,O,KH,KW]", x, w);
  MRL_SHAPE_CHECK(x->shape[1] == w->shape[0], "conv_transpose2d",
                  "x's channels must equal the weight's first dimension", x, w);
  MRL_SHAPE_CHECK(stride >= 1 && pad >= 0 && output_padding >= 0 && output_padding < stride,
                  "conv_transpose2d", "need stride >= 1, pad >= 0, 0 <= output_padding < stride", x,
                  w);
  n = x->shape[0];
  c = x->shape[1];
  h = x->shape[2];
  wd = x->shape[3];
  o = w->shape[1];
  kh = w->shape[2];
  kw = w->shape[3];
  if (b) MRL_SHAPE_CHECK(b->size == o, "conv_transpose2d", "bias length must equal O", b, w);
  oh = (h - 1) * stride - 2 * pad + kh + output_padding;
  ow = (wd - 1) * stride - 2 * pad + kw + output_padding;
  MRL_SHAPE_CHECK(oh >= 1 && ow >= 1, "conv_transpose2d", "the padding leaves no output", x, w);
  hw = h * wd;
  okk = o * kh * kw;
  chunk = hw >= MRL__CONVT_COLUMNS ? 1 : MRL__CONVT_COLUMNS / hw;
  if (chunk > n) chunk = n > 0 ? n : 1;
  shape[0] = n;
  shape[1] = o;
  shape[2] = oh;
  shape[3] = ow;
  wants = mrl_graph_wants_grad(g, x, w) || (b && mrl_graph_wants_grad(g, b, NULL));
  y = mrl_op_output(g, 4, shape, wants);
  if (!y) return NULL;
  shape[0] = okk;
  shape[1] = chunk * hw;
  cols = mrl_tensor_new(g, 2, shape, 0);
  shape[0] = c;
  xt = mrl_tensor_new(g, 2, shape, 0);
  if (!cols || !xt) return NULL;
  memset(y->data, 0, sizeof(float) * (size_t)y->size);
  for (n0 = 0; n0 < n; n0 += chunk) {
    int m = n - n0 < chunk ? n - n0 : chunk, cols_n = m * hw;
    /* cols [OKK, m HW] = W^T [OKK, C] . x [C, m HW] */
    mrl__convt_pack(x->data, n0, m, c, hw, xt->data);
    mrl_gemm(1, 0, okk, cols_n, c, w->data, okk, xt->data, cols_n, 0.0f, cols->data, cols_n);
    for (j = 0; j < m; j++) {
      float *yi = y->data + (size_t)(n0 + j) * o * oh * ow;
      mrl__convt_col2im(cols->data + (size_t)j * hw, (size_t)cols_n, o, kh, kw, h, wd, stride, pad,
                        oh, ow, yi);
      if (b)
        for (k = 0; k < o; k++)
          for (q = 0; q < oh * ow; q++) yi[(size_t)k * oh * ow + q] += b->data[k];
    }
  }
  MRL__FINITE("conv_transpose2d", y, x, w);
  if ((nd = mrl_graph_record(g, "conv_transpose2d", mrl__convt_backward, y)) != NULL) {
    nd->in[0] = x;
    nd->in[1] = w;
    nd->in[2] = b;
    nd->extra[0] = cols; /* reused as the backward's scratch */
    nd->extra[1] = xt;
    nd->i[0] = stride;
    nd->i[1] = pad;
    nd->i[2] = chunk;
  }
  return y;
}

MRL_DEF void mrl_conv_transpose2d_layer_init(mrl_conv_transpose2d_layer *l, mrl_params *p,
                                             const char *name, int in_channels, int out_channels,
                                             int kernel_size, int stride, int padding,
                                             int output_padding, mrl_init init) {
  l->params = p;
  l->in_channels = in_channels;
  l->out_channels = out_channels;
  l->kernel_size = kernel_size;
  l->stride = stride;
  l->padding = padding;
  l->output_padding = output_padding;
  /* weight [in, out, k, k]: torch's fan_in of it is out k k */
  mrl__conv_declare(p, name, in_channels, out_channels, kernel_size, kernel_size, out_channels,
                    out_channels * kernel_size * kernel_size, 1, init, &l->weight, &l->bias);
}

MRL_DEF mrl_tensor *mrl_conv_transpose2d_layer_forward(const mrl_conv_transpose2d_layer *l,
                                                       mrl_graph *g, mrl_tensor *x) {
  return mrl_conv_transpose2d(g, x, mrl_params_tensor(l->params, l->weight),
                              mrl_params_tensor(l->params, l->bias), l->stride, l->padding,
                              l->output_padding);
}

MRL_DEF mrl_deconv_decoder_config mrl_deconv_decoder_config_default(void) {
  mrl_deconv_decoder_config c;
  static const int ch[4] = {128, 64, 32, 3}, k[4] = {5, 5, 6, 6};
  int i;
  memset(&c, 0, sizeof c);
  c.in_features = 32;
  c.in_channels = 1024;
  c.in_height = c.in_width = 1;
  c.activate_linear = 0;
  c.num_layers = 4;
  for (i = 0; i < 4; i++) {
    c.channels[i] = ch[i];
    c.kernels[i] = k[i];
    c.strides[i] = 2;
  }
  c.activation = MRL_ACT_RELU;
  c.init = mrl_init_default();
  return c;
}

MRL_DEF mrl_result mrl_deconv_decoder_init(mrl_deconv_decoder *d, mrl_params *p, const char *name,
                                           const mrl_deconv_decoder_config *cfg) {
  char buf[MRL_NAME_MAX];
  int i, c, h, w, step = cfg->activation == MRL_ACT_NONE ? 1 : 2;
  int first = cfg->activate_linear && cfg->activation != MRL_ACT_NONE ? 3 : 2;
  memset(d, 0, sizeof *d);
  if (cfg->num_layers < 1 || cfg->num_layers > MRL_CONV_MAX_LAYERS || cfg->in_features < 1 ||
      cfg->in_channels < 1 || cfg->in_height < 1 || cfg->in_width < 1 ||
      !mrl__activation_ok(cfg->activation))
    return MRL_ERR_INVALID_ARGUMENT;
  h = cfg->in_height;
  w = cfg->in_width;
  for (i = 0; i < cfg->num_layers; i++) {
    if (cfg->channels[i] < 1) return MRL_ERR_INVALID_ARGUMENT;
    h = mrl_conv_transpose2d_out_size(h, cfg->kernels[i], cfg->strides[i], cfg->paddings[i],
                                      cfg->output_paddings[i]);
    w = mrl_conv_transpose2d_out_size(w, cfg->kernels[i], cfg->strides[i], cfg->paddings[i],
                                      cfg->output_paddings[i]);
    if (h < 1 || w < 1) return MRL_ERR_INVALID_ARGUMENT;
  }
  d->num_layers = cfg->num_layers;
  d->activate_linear = cfg->activate_linear;
  d->activation = cfg->activation;
  d->in_features = cfg->in_features;
  d->in_channels = cfg->in_channels;
  d->in_height = cfg->in_height;
  d->in_width = cfg->in_width;
  mrl__name(p, buf, name, "0");
  mrl_linear_layer_init(&d->linear, p, buf, cfg->in_features,
                        cfg->in_channels * cfg->in_height * cfg->in_width, cfg->init);
  c = cfg->in_channels;
  for (i = 0; i < cfg->num_layers; i++) {
    mrl__name(p, buf, name, "%d", first + step * i);
    mrl_conv_transpose2d_layer_init(&d->layers[i], p, buf, c, cfg->channels[i], cfg->kernels[i],
                                    cfg->strides[i], cfg->paddings[i], cfg->output_paddings[i],
                                    cfg->init);
    c = cfg->channels[i];
  }
  d->out_channels = c;
  d->out_height = h;
  d->out_width = w;
  d->out_features = c * h * w;
  return MRL_OK;
}

MRL_DEF mrl_tensor *mrl_deconv_decoder_forward(const mrl_deconv_decoder *d, mrl_graph *g,
                                               mrl_tensor *z) {
  int i, shape[4];
  mrl_tensor *x = mrl_linear_layer_forward(&d->linear, g, z);
  if (!x) return NULL;
  if (d->activate_linear) x = mrl_activate(g, x, d->activation);
  shape[0] = x->shape[0];
  shape[1] = d->in_channels;
  shape[2] = d->in_height;
  shape[3] = d->in_width;
  x = mrl_reshape(g, x, 4, shape); /* nn.Unflatten */
  for (i = 0; i < d->num_layers; i++) {
    x = mrl_conv_transpose2d_layer_forward(&d->layers[i], g, x);
    if (i < d->num_layers - 1) x = mrl_activate(g, x, d->activation);
  }
  return x;
}

MRL_DEF mrl_vae_config mrl_vae_config_default(void) {
  mrl_vae_config c;
  memset(&c, 0, sizeof c);
  c.input_dim = 784;
  c.latent_dim = 20;
  c.num_hidden = 1;
  c.hidden[0] = 400;
  c.activation = MRL_ACT_RELU;
  c.use_conv = 0;
  c.conv = mrl_conv_encoder_config_default();
  c.use_deconv = 0;
  c.deconv = mrl_deconv_decoder_config_default();
  c.likelihood = MRL_VAE_BERNOULLI;
  c.sigmoid_output = 0;
  c.beta = 1.0f;
  c.kl_free_nats = 0.0f;
  c.init = mrl_init_default();
  return c;
}

MRL_DEF mrl_vae_config mrl_vae_config_world_models(void) {
  mrl_vae_config c = mrl_vae_config_default();
  int i;
  c.input_dim = 3 * 64 * 64;
  c.latent_dim = 32;
  c.num_hidden = 0;
  c.use_conv = 1;
  c.conv.in_channels = 3;
  c.conv.in_height = c.conv.in_width = 64;
  c.conv.num_layers = 4;
  for (i = 0; i < 4; i++) {
    c.conv.channels[i] = 32 << i;
    c.conv.kernels[i] = 4;
    c.conv.strides[i] = 2;
    c.conv.paddings[i] = 0;
  }
  c.conv.linear_out = 0;
  c.use_deconv = 1;
  c.deconv = mrl_deconv_decoder_config_default();
  c.likelihood = MRL_VAE_GAUSSIAN;
  c.sigmoid_output = 1;
  c.kl_free_nats = 0.5f * 32.0f;
  return c;
}

MRL_DEF mrl_result mrl_vae_init(mrl_vae *v, mrl_params *p, const char *name,
                                const mrl_vae_config *cfg) {
  char buf[MRL_NAME_MAX];
  int sizes[MRL_VAE_MAX_HIDDEN + 2], i, nh = cfg->num_hidden;
  mrl_result r;
  memset(v, 0, sizeof *v);
  if (nh < 0 || nh > MRL_VAE_MAX_HIDDEN || cfg->latent_dim < 1) return MRL_ERR_INVALID_ARGUMENT;
  for (i = 0; i < nh; i++)
    if (cfg->hidden[i] < 1) return MRL_ERR_INVALID_ARGUMENT;
  v->cfg = *cfg;
  mrl__name(p, buf, name, "encoder");
  if (cfg->use_conv) {
    r = mrl_conv_encoder_init(&v->encoder_conv, p, buf, &cfg->conv);
    if (r != MRL_OK) return r;
    v->cfg.input_dim = cfg->conv.in_channels * cfg->conv.in_height * cfg->conv.in_width;
    v->feature_dim = v->encoder_conv.out_features;
  } else {
    if (cfg->input_dim < 1) return MRL_ERR_INVALID_ARGUMENT;
    v->feature_dim = cfg->input_dim;
    if (nh > 0) {
      sizes[0] = cfg->input_dim;
      for (i = 0; i < nh; i++) sizes[i + 1] = cfg->hidden[i];
      mrl_mlp_init(&v->encoder_mlp, p, buf, nh + 1, sizes, cfg->activation, cfg->init, cfg->init);
      v->encoder_mlp.activate_output = 1;
      v->feature_dim = cfg->hidden[nh - 1];
    }
  }
  mrl__name(p, buf, name, "fc_mu");
  mrl_linear_layer_init(&v->fc_mu, p, buf, v->feature_dim, cfg->latent_dim, cfg->init);
  mrl__name(p, buf, name, "fc_logvar");
  mrl_linear_layer_init(&v->fc_logvar, p, buf, v->feature_dim, cfg->latent_dim, cfg->init);
  mrl__name(p, buf, name, "decoder");
  if (cfg->use_deconv) {
    v->cfg.deconv.in_features = cfg->latent_dim;
    r = mrl_deconv_decoder_init(&v->decoder_deconv, p, buf, &v->cfg.deconv);
    if (r != MRL_OK) return r;
    if (v->decoder_deconv.out_features != v->cfg.input_dim) return MRL_ERR_INVALID_ARGUMENT;
    return MRL_OK;
  }
  /* MLP decoder: latent, hidden sizes in reverse, input_dim */
  sizes[0] = cfg->latent_dim;
  for (i = 0; i < nh; i++) sizes[i + 1] = cfg->hidden[nh - 1 - i];
  sizes[nh + 1] = v->cfg.input_dim;
  mrl_mlp_init(&v->decoder, p, buf, nh + 2, sizes, cfg->activation, cfg->init, cfg->init);
  return MRL_OK;
}

MRL_DEF void mrl_vae_encode(const mrl_vae *v, mrl_graph *g, mrl_tensor *x, mrl_tensor **mean,
                            mrl_tensor **logvar) {
  mrl_tensor *h = x;
  if (v->cfg.use_conv)
    h = mrl_conv_encoder_forward(&v->encoder_conv, g, x);
  else if (v->cfg.num_hidden > 0)
    h = mrl_mlp_forward(&v->encoder_mlp, g, x);
  *mean = mrl_linear_layer_forward(&v->fc_mu, g, h);
  *logvar = mrl_linear_layer_forward(&v->fc_logvar, g, h);
}

MRL_DEF mrl_tensor *mrl_vae_reparameterize(mrl_graph *g, mrl_tensor *mean, mrl_tensor *logvar,
                                           mrl_tensor *eps) {
  mrl_tensor *std = mrl_exp(g, mrl_scale(g, logvar, 0.5f));
  return mrl_add(g, mean, mrl_mul(g, std, eps));
}

MRL_DEF mrl_tensor *mrl_vae_decode(const mrl_vae *v, mrl_graph *g, mrl_tensor *z) {
  if (v->cfg.use_deconv) return mrl_deconv_decoder_forward(&v->decoder_deconv, g, z);
  return mrl_mlp_forward(&v->decoder, g, z);
}

MRL_DEF void mrl_vae_loss(const mrl_vae_config *cfg, mrl_graph *g, mrl_tensor *recon, mrl_tensor *x,
                          mrl_tensor *mean, mrl_tensor *logvar, mrl_vae_output *out) {
  mrl_tensor *per_batch, *kl, *flat = NULL;
  out->recon_loss = out->kl = out->loss = NULL;
  if (!recon || !x || !mean || !logvar) return;
  MRL_SHAPE_CHECK(x->size == recon->size, "vae_loss", "x and the reconstruction differ in size", x,
                  recon);
  flat = mrl_reshape(g, x, recon->ndim, recon->shape);
  /* sum over features and batch, then / B: the per-example sum of the ELBO */
  if (cfg->likelihood == MRL_VAE_GAUSSIAN)
    per_batch =
        mrl_mse_loss(g, cfg->sigmoid_output ? mrl_sigmoid(g, recon) : recon, flat, MRL_LOSS_SUM);
  else
    per_batch = mrl_bce_with_logits(g, recon, flat, MRL_LOSS_SUM);
  out->recon_loss = mrl_scale(g, per_batch, 1.0f / (float)recon->shape[0]);
  /* KL to N(0, I); kl_normal wants log sigma = logvar / 2; MEAN averages rows */
  if (cfg->kl_free_nats > 0.0f) {
    float floor_value = cfg->kl_free_nats;
    int one = 1;
    kl = mrl_kl_normal(g, mean, mrl_scale(g, logvar, 0.5f), NULL, NULL, MRL_LOSS_NONE);
    kl = mrl_mean(g, mrl_maximum(g, kl, mrl_tensor_from(g, &floor_value, 1, &one)));
  } else {
    kl = mrl_kl_normal(g, mean, mrl_scale(g, logvar, 0.5f), NULL, NULL, MRL_LOSS_MEAN);
  }
  out->kl = kl;
  out->loss = mrl_add(g, out->recon_loss, mrl_scale(g, kl, cfg->beta));
}

MRL_DEF mrl_vae_output mrl_vae_forward(const mrl_vae *v, mrl_graph *g, mrl_tensor *x,
                                       const float *eps, mrl_rng *rng) {
  mrl_vae_output o;
  memset(&o, 0, sizeof o);
  mrl_vae_encode(v, g, x, &o.mean, &o.logvar);
  if (!o.mean || !o.logvar) return o;
  if (eps || rng) {
    mrl_tensor *e = eps ? mrl_tensor_from(g, eps, o.mean->ndim, o.mean->shape)
                        : mrl_tensor_new(g, o.mean->ndim, o.mean->shape, 0);
    int i;
    if (!e) return o;
    if (!eps)
      for (i = 0; i < e->size; i++) e->data[i] = mrl_rng_normal(rng);
    o.z = mrl_vae_reparameterize(g, o.mean, o.logvar, e);
  } else {
    o.z = o.mean;
  }
  o.recon = mrl_vae_decode(v, g, o.z);
  mrl_vae_loss(&v->cfg, g, o.recon, x, o.mean, o.logvar, &o);
  return o;
}

/* ---- attention, transformer, GTrXL ---- >>attention */

static int mrl__param_or_none(mrl_params *p, const char *name, const char *suffix, int ndim,
                              const int *shape, mrl_init init) {
  char buf[MRL_NAME_MAX];
  mrl__name(p, buf, name, "%s", suffix);
  return mrl_params_add(p, buf, ndim, shape, init);
}

static void mrl__mha_common(mrl_mha *m, mrl_params *p, const char *name, int E, int H, int bias) {
  int s2[2], s1[1];
  MRL_ASSERT(E > 0 && H > 0 && E % H == 0);
  memset(m, 0, sizeof *m);
  m->params = p;
  m->embed_dim = E;
  m->num_heads = H;
  m->head_dim = E / H;
  m->in_proj_bias = m->out_proj_bias = -1;
  m->r_net_weight = m->r_w_bias = m->r_r_bias = -1;
  s2[0] = 3 * E;
  s2[1] = E;
  m->in_proj_weight =
      mrl__param_or_none(p, name, "in_proj_weight", 2, s2, mrl_init_xavier_uniform(1.0f));
  if (bias) {
    s1[0] = 3 * E;
    m->in_proj_bias =
        mrl__param_or_none(p, name, "in_proj_bias", 1, s1, mrl_init_make(MRL_INIT_ZEROS, 0.0f));
  }
  s2[0] = E;
  /* torch's NonDynamicallyQuantizableLinear: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(E)) */
  m->out_proj_weight = mrl__param_or_none(p, name, "out_proj.weight", 2, s2,
                                          mrl_init_make(MRL_INIT_UNIFORM, 1.0f / sqrtf((float)E)));
  if (bias) {
    s1[0] = E;
    m->out_proj_bias =
        mrl__param_or_none(p, name, "out_proj.bias", 1, s1, mrl_init_make(MRL_INIT_ZEROS, 0.0f));
  }
}

MRL_DEF void mrl_mha_init(mrl_mha *m, mrl_params *p, const char *name, int embed_dim, int num_heads,
                          int bias) {
  mrl__mha_common(m, p, name, embed_dim, num_heads, bias);
}

MRL_DEF void mrl_rel_mha_init(mrl_mha *m, mrl_params *p, const char *name, int embed_dim,
                              int num_heads) {
  int s2[2];
  MRL_ASSERT(embed_dim % 2 == 0);
  mrl__mha_common(m, p, name, embed_dim, num_heads, 0);
  m->relative = 1;
  s2[0] = s2[1] = embed_dim;
  m->r_net_weight =
      mrl__param_or_none(p, name, "r_net.weight", 2, s2, mrl_init_xavier_uniform(1.0f));
  s2[0] = num_heads;
  s2[1] = embed_dim / num_heads;
  m->r_w_bias =
      mrl__param_or_none(p, name, "r_w_bias", 2, s2, mrl_init_make(MRL_INIT_NORMAL, 0.02f));
  m->r_r_bias =
      mrl__param_or_none(p, name, "r_r_bias", 2, s2, mrl_init_make(MRL_INIT_NORMAL, 0.02f));
}

/* Shared front of both attentions: checks shapes and projects through
 * in_proj over [detach(mem) ; x]. Queries are columns 0 .. E-1 of *qt, keys
 * and values columns *kc and *vc onward of *kvt (one packed [B, T, 3E]
 * tensor when there is no memory and sep_q is 0), for mrl_attention_cols,
 * which reads the heads in place. sep_q: queries as their own [B, T, E]
 * tensor (relative attention adds its biases to them). */
static int mrl__attn_qkv(const mrl_mha *m, mrl_graph *g, mrl_tensor *x, mrl_tensor *mem,
                         int detach_mem, int sep_q, const char *op, mrl_tensor **qt,
                         mrl_tensor **kvt, int *kc, int *vc, int *Bp, int *Tp, int *Mp) {
  int E = m->embed_dim, B, T, M;
  mrl_tensor *w, *b = NULL, *h = x, *parts[2];
  MRL_SHAPE_CHECK(x->ndim == 3 && x->shape[2] == E, op, "x must be [B, T, embed_dim]", x, NULL);
  B = x->shape[0];
  T = x->shape[1];
  M = 0;
  if (mem) {
    MRL_SHAPE_CHECK(mem->ndim == 3 && mem->shape[0] == B && mem->shape[2] == E, op,
                    "mem must be [B, M, embed_dim] with x's B", x, mem);
    M = mem->shape[1];
  }
  *Bp = B;
  *Tp = T;
  *Mp = M;
  w = mrl_params_tensor(m->params, m->in_proj_weight);
  if (m->in_proj_bias >= 0) b = mrl_params_tensor(m->params, m->in_proj_bias);
  if (M == 0 && !sep_q) { /* one projection [B, T, 3E] */
    *qt = *kvt = mrl_linear(g, x, w, b);
    *kc = E;
    *vc = 2 * E;
    return *qt != NULL;
  }
  /* Transformer-XL's stop-gradient on the cache; the blocks detach it
   * before their layernorm instead, so the norm's parameters still learn
   * from the memory rows (LN([StopGrad(M) ; E]) in GTrXL). */
  if (M > 0) {
    parts[0] = detach_mem ? mrl_detach(g, mem) : mem;
    parts[1] = x;
    h = mrl_concat(g, parts, 2, 1);
  }
  /* queries for the T new rows only, keys and values for all M + T */
  *qt = mrl_linear(g, x, mrl_slice(g, w, 0, 0, E), b ? mrl_slice(g, b, 0, 0, E) : NULL);
  *kvt = mrl_linear(g, h, mrl_slice(g, w, 0, E, 3 * E), b ? mrl_slice(g, b, 0, E, 3 * E) : NULL);
  *kc = 0;
  *vc = E;
  return *qt && *kvt;
}

/* out_proj of the merged heads [B, T, E]. */
static mrl_tensor *mrl__attn_out(const mrl_mha *m, mrl_graph *g, mrl_tensor *c) {
  mrl_tensor *bo = NULL;
  if (m->out_proj_bias >= 0) bo = mrl_params_tensor(m->params, m->out_proj_bias);
  return mrl_linear(g, c, mrl_params_tensor(m->params, m->out_proj_weight), bo);
}

static mrl_tensor *mrl__mha_forward(const mrl_mha *m, mrl_graph *g, mrl_tensor *x, mrl_tensor *mem,
                                    mrl_tensor *mask, int detach_mem) {
  mrl_tensor *qt, *kvt;
  int B, T, M, kc, vc;
  if (!x) return NULL;
  MRL_SHAPE_CHECK(!m->relative, "mha_forward", "relative attention: call mrl_rel_mha_forward", x,
                  NULL);
  if (!mrl__attn_qkv(m, g, x, mem, detach_mem, 0, "mha_forward", &qt, &kvt, &kc, &vc, &B, &T, &M))
    return NULL;
  return mrl__attn_out(m, g,
                       mrl_attention_cols(g, qt, 0, kvt, kc, kvt, vc, m->embed_dim, m->num_heads,
                                          1.0f / sqrtf((float)m->head_dim), NULL, mask, 0));
}

/* Transformer-XL's R: row r holds the sinusoid of distance K-1-r, laid out
 * [sin(d f_0) .. sin(d f_{E/2-1}) | cos(d f_0) .. cos(d f_{E/2-1})]. */
static mrl_tensor *mrl__txl_relative_table(mrl_graph *g, int K, int E) {
  mrl_tensor *r = mrl_tensor_new2(g, K, E, 0);
  int row, i, half = E / 2;
  if (!r) return NULL;
  for (i = 0; i < half; i++) {
    /* distance d = 0, 1, ... by angle addition in double (reseeded every 32
     * steps, error far below float's), instead of a sin and cos per entry */
    double f = pow(10000.0, -(2.0 * i) / (double)E), cf = cos(f), sf = sin(f), sd = 0.0, cd = 1.0;
    int d;
    for (d = 0; d < K; d++) {
      double t;
      row = K - 1 - d;
      if (d % 32 == 0) {
        sd = sin((double)d * f);
        cd = cos((double)d * f);
      }
      r->data[(size_t)row * E + i] = (float)sd;
      r->data[(size_t)row * E + half + i] = (float)cd;
      t = sd * cf + cd * sf;
      cd = cd * cf - sd * sf;
      sd = t;
    }
  }
  return r;
}

MRL_DEF mrl_tensor *mrl_mha_forward(const mrl_mha *m, mrl_graph *g, mrl_tensor *x, mrl_tensor *mem,
                                    mrl_tensor *mask) {
  return mrl__mha_forward(m, g, x, mem, mask, 1);
}

static mrl_tensor *mrl__rel_mha_forward(const mrl_mha *m, mrl_graph *g, mrl_tensor *x,
                                        mrl_tensor *mem, mrl_tensor *mask, int detach_mem) {
  mrl_tensor *q, *kv, *u, *vb, *R, *rk, *cm;
  int B, T, M, K, H = m->num_heads, D = m->head_dim, E = m->embed_dim, s1[1], kc, vc;
  if (!x) return NULL;
  MRL_SHAPE_CHECK(m->relative, "rel_mha_forward", "layer was not made by mrl_rel_mha_init", x,
                  NULL);
  if (!mrl__attn_qkv(m, g, x, mem, detach_mem, 1, "rel_mha_forward", &q, &kv, &kc, &vc, &B, &T, &M))
    return NULL;
  K = M + T;
  s1[0] = E; /* r_w_bias, r_r_bias [H, D] as one row of E: head h at columns h*D */
  u = mrl_reshape(g, mrl_params_tensor(m->params, m->r_w_bias), 1, s1);
  vb = mrl_reshape(g, mrl_params_tensor(m->params, m->r_r_bias), 1, s1);
  R = mrl__txl_relative_table(g, K, E);
  rk = mrl_linear(g, R, mrl_params_tensor(m->params, m->r_net_weight), NULL); /* [K, E] */
  cm = mrl_attn_causal_mask(g, T, M);
  if (mask) cm = mrl_mul(g, mask, cm);
  /* one node: terms (a) + (c), (q + u) kᵀ, and (b) + (d), (q + v) rkᵀ by row
   * of R with the relative shift (key j of query i is at distance M + i - j,
   * row T-1-i+j of R; future keys, masked, borrow the last row) */
  return mrl__attn_out(m, g,
                       mrl_rel_attention_cols(g, mrl_add(g, q, u), 0, kv, kc, kv, vc,
                                              mrl_add(g, q, vb), rk, E, H, 1.0f / sqrtf((float)D),
                                              cm));
}

MRL_DEF mrl_tensor *mrl_rel_mha_forward(const mrl_mha *m, mrl_graph *g, mrl_tensor *x,
                                        mrl_tensor *mem, mrl_tensor *mask) {
  return mrl__rel_mha_forward(m, g, x, mem, mask, 1);
}

MRL_DEF mrl_tensor *mrl_attn_causal_mask(mrl_graph *g, int T, int M) {
  mrl_tensor *t = mrl_tensor_new2(g, T, M + T, 0);
  int i, j;
  if (!t) return NULL;
  for (i = 0; i < T; i++)
    for (j = 0; j < M + T; j++) t->data[(size_t)i * (M + T) + j] = j <= M + i ? 1.0f : 0.0f;
  return t;
}

MRL_DEF mrl_tensor *mrl_attn_episode_mask(mrl_graph *g, int B, int T, int M,
                                          const float *episode_start, const int *mem_valid) {
  int shape[4], b, i, j, K = M + T;
  mrl_tensor *t;
  shape[0] = B;
  shape[1] = 1;
  shape[2] = T;
  shape[3] = K;
  t = mrl_tensor_new(g, 4, shape, 0);
  if (!t) return NULL;
  for (b = 0; b < B; b++) {
    int valid = mem_valid ? mem_valid[b] : M, lo;
    valid = valid < 0 ? 0 : (valid > M ? M : valid);
    lo = M - valid;
    for (i = 0; i < T; i++) {
      float *row = t->data + ((size_t)b * T + i) * K;
      if (episode_start && episode_start[(size_t)b * T + i] != 0.0f) lo = M + i;
      for (j = 0; j < K; j++) row[j] = j >= lo && j <= M + i ? 1.0f : 0.0f;
    }
  }
  return t;
}

MRL_DEF mrl_tensor *mrl_attn_key_padding_mask(mrl_graph *g, int B, int K, const float *valid) {
  int shape[4], i;
  mrl_tensor *t;
  shape[0] = B;
  shape[1] = 1;
  shape[2] = 1;
  shape[3] = K;
  t = mrl_tensor_new(g, 4, shape, 0);
  if (!t) return NULL;
  for (i = 0; i < B * K; i++) t->data[i] = !valid || valid[i] != 0.0f ? 1.0f : 0.0f;
  return t;
}

MRL_DEF void mrl_sinusoid_fill(float *out, int T, int E, int start) {
  int p, c;
  for (p = 0; p < T; p++)
    for (c = 0; c < E; c++) {
      double angle = (double)(start + p) * pow(10000.0, -(double)(c - c % 2) / (double)E);
      out[(size_t)p * E + c] = (float)(c % 2 ? cos(angle) : sin(angle));
    }
}

MRL_DEF mrl_tensor *mrl_sinusoidal_positions(mrl_graph *g, int T, int E, int start) {
  mrl_tensor *t = mrl_tensor_new2(g, T, E, 0);
  if (t) mrl_sinusoid_fill(t->data, T, E, start);
  return t;
}

MRL_DEF void mrl_learned_positions_init(mrl_learned_positions *l, mrl_params *p, const char *name,
                                        int max_len, int embed_dim) {
  int s2[2];
  s2[0] = max_len;
  s2[1] = embed_dim;
  l->params = p;
  l->max_len = max_len;
  l->embed_dim = embed_dim;
  l->weight = mrl__param_or_none(p, name, "weight", 2, s2, mrl_init_make(MRL_INIT_NORMAL, 1.0f));
}

MRL_DEF mrl_tensor *mrl_learned_positions_forward(const mrl_learned_positions *l, mrl_graph *g,
                                                  mrl_tensor *x, int start) {
  mrl_tensor *w = mrl_params_tensor(l->params, l->weight);
  int T;
  if (!x) return NULL;
  MRL_SHAPE_CHECK(x->ndim >= 2 && x->shape[x->ndim - 1] == l->embed_dim, "learned_positions",
                  "x must be [..., T, embed_dim]", x, w);
  T = x->shape[x->ndim - 2];
  MRL_SHAPE_CHECK(start >= 0 && start + T <= l->max_len, "learned_positions",
                  "positions start..start+T-1 must lie below max_len", x, w);
  return mrl_add(g, x, mrl_slice(g, w, 0, start, start + T));
}

static void mrl__norm_params(mrl_params *p, const char *name, const char *which, int E, int *w,
                             int *b) {
  char buf[MRL_NAME_MAX];
  int s1[1];
  s1[0] = E;
  mrl__name(p, buf, name, "%s.weight", which);
  *w = mrl_params_add(p, buf, 1, s1, mrl_init_make(MRL_INIT_CONSTANT, 1.0f));
  mrl__name(p, buf, name, "%s.bias", which);
  *b = mrl_params_add(p, buf, 1, s1, mrl_init_make(MRL_INIT_ZEROS, 0.0f));
}

static mrl_tensor *mrl__norm(mrl_params *p, mrl_graph *g, mrl_tensor *x, int w, int b, float eps) {
  return mrl_layernorm(g, x, mrl_params_tensor(p, w), mrl_params_tensor(p, b), eps);
}

MRL_DEF void mrl_transformer_block_init(mrl_transformer_block *b, mrl_params *p, const char *name,
                                        int embed_dim, int num_heads, int ff_dim,
                                        mrl_ffn_activation act) {
  char buf[MRL_NAME_MAX];
  memset(b, 0, sizeof *b);
  b->params = p;
  b->embed_dim = embed_dim;
  b->ff_dim = ff_dim;
  b->activation = act;
  b->eps = 1e-5f;
  b->norm_first = 1;
  /* declaration order = torch's state_dict order */
  mrl__name(p, buf, name, "self_attn");
  mrl_mha_init(&b->self_attn, p, buf, embed_dim, num_heads, 1);
  mrl__name(p, buf, name, "linear1");
  mrl_linear_layer_init(&b->linear1, p, buf, embed_dim, ff_dim, mrl_init_default());
  mrl__name(p, buf, name, "linear2");
  mrl_linear_layer_init(&b->linear2, p, buf, ff_dim, embed_dim, mrl_init_default());
  mrl__norm_params(p, name, "norm1", embed_dim, &b->norm1_weight, &b->norm1_bias);
  mrl__norm_params(p, name, "norm2", embed_dim, &b->norm2_weight, &b->norm2_bias);
}

MRL_DEF mrl_transformer_block_config mrl_transformer_block_config_default(void) {
  mrl_transformer_block_config c;
  memset(&c, 0, sizeof c);
  c.ff_dim = 2048;
  c.activation = MRL_FFN_RELU;
  c.norm_first = 0;
  c.layer_norm_eps = 1e-5f;
  return c;
}

MRL_DEF mrl_result mrl_transformer_block_init_config(mrl_transformer_block *b, mrl_params *p,
                                                     const char *name,
                                                     const mrl_transformer_block_config *cfg) {
  const char *bad = NULL;
  if (!b || !p || !cfg) return MRL_ERR_INVALID_ARGUMENT;
  if (cfg->embed_dim < 1)
    bad = "embed_dim";
  else if (cfg->num_heads < 1 || cfg->embed_dim % cfg->num_heads != 0)
    bad = "num_heads";
  else if (cfg->ff_dim < 1)
    bad = "ff_dim";
  else if (cfg->activation != MRL_FFN_RELU && cfg->activation != MRL_FFN_GELU)
    bad = "activation";
  else if (cfg->norm_first != 0 && cfg->norm_first != 1)
    bad = "norm_first";
  else if (!(cfg->layer_norm_eps > 0.0f && cfg->layer_norm_eps < 1e30f))
    bad = "layer_norm_eps";
  if (bad) {
    mrl__params_say(p,
                    "mrl_transformer_block_config.%s is invalid (embed_dim %d, num_heads %d, "
                    "ff_dim %d, activation %d, norm_first %d, layer_norm_eps %g)",
                    bad, cfg->embed_dim, cfg->num_heads, cfg->ff_dim, (int)cfg->activation,
                    cfg->norm_first, (double)cfg->layer_norm_eps);
    return MRL_ERR_INVALID_ARGUMENT;
  }
  mrl_transformer_block_init(b, p, name, cfg->embed_dim, cfg->num_heads, cfg->ff_dim,
                             cfg->activation);
  b->eps = cfg->layer_norm_eps;
  b->norm_first = cfg->norm_first;
  return p->status;
}

MRL_DEF mrl_tensor *mrl_transformer_block_forward(const mrl_transformer_block *b, mrl_graph *g,
                                                  mrl_tensor *x, mrl_tensor *mem,
                                                  mrl_tensor *mask) {
  mrl_params *p = b->params;
  mrl_tensor *h, *hm = NULL;
  if (!x) return NULL;
  if (!b->norm_first) { /* post-LN */
    x = mrl_add(g, x,
                mrl__mha_forward(&b->self_attn, g, x, mem ? mrl_detach(g, mem) : NULL, mask, 0));
    x = mrl__norm(p, g, x, b->norm1_weight, b->norm1_bias, b->eps);
    h = b->activation == MRL_FFN_GELU
            ? mrl_gelu(g, mrl_linear_layer_forward(&b->linear1, g, x))
            : mrl_linear_layer_forward_act(&b->linear1, g, x, MRL_ACT_RELU);
    x = mrl_add(g, x, mrl_linear_layer_forward(&b->linear2, g, h));
    return mrl__norm(p, g, x, b->norm2_weight, b->norm2_bias, b->eps);
  }
  h = mrl__norm(p, g, x, b->norm1_weight, b->norm1_bias, b->eps);
  if (mem) hm = mrl__norm(p, g, mrl_detach(g, mem), b->norm1_weight, b->norm1_bias, b->eps);
  x = mrl_add(g, x, mrl__mha_forward(&b->self_attn, g, h, hm, mask, 0));
  h = mrl__norm(p, g, x, b->norm2_weight, b->norm2_bias, b->eps);
  h = b->activation == MRL_FFN_GELU ? mrl_gelu(g, mrl_linear_layer_forward(&b->linear1, g, h))
                                    : mrl_linear_layer_forward_act(&b->linear1, g, h, MRL_ACT_RELU);
  return mrl_add(g, x, mrl_linear_layer_forward(&b->linear2, g, h));
}

MRL_DEF void mrl_gru_gate_init(mrl_gru_gate *gt, mrl_params *p, const char *name, int dim,
                               float gate_bias) {
  int s2[2], s1[1];
  mrl_init wi = mrl_init_make(MRL_INIT_UNIFORM, 1.0f / sqrtf((float)dim));
  gt->params = p;
  gt->dim = dim;
  s2[0] = 3 * dim;
  s2[1] = dim;
  s1[0] = dim;
  gt->W = mrl__param_or_none(p, name, "W", 2, s2, wi);
  gt->U = mrl__param_or_none(p, name, "U", 2, s2, wi);
  gt->bg = mrl__param_or_none(p, name, "bg", 1, s1, mrl_init_make(MRL_INIT_CONSTANT, gate_bias));
}

/* The GRU gate's arithmetic on N rows, without a graph:
 *   wy = W y, ux = U_rz x, r|z = sigmoid(wy_rz + ux_rz (- bg for z)),
 *   h = tanh(wy_g + U_g (r * x)), out = x + z * (h - x).
 * tmp holds 6*N*E floats and keeps what the backward pass reads: [0, 3NE)
 * wy with h in place of W_g y, [3NE, 5NE) r and z, [5NE, 6NE) r * x.
 * per_row: the U_g products one row at a time, so that each acting row's bits
 * do not depend on how many rows are stepped together (mrl_gemm's small-batch
 * path sums differently). */
static void mrl__gru_gate_run(const mrl_gru_gate *gt, int N, const float *x, const float *y,
                              float *out, float *tmp, int per_row) {
  int E = gt->dim, i, b;
  const float *W = mrl_params_tensor(gt->params, gt->W)->data;
  const float *U = mrl_params_tensor(gt->params, gt->U)->data;
  const float *bg = mrl_params_tensor(gt->params, gt->bg)->data;
  float *wy = tmp, *ux = wy + (size_t)3 * N * E, *rx = ux + (size_t)2 * N * E;
  memset(wy, 0, sizeof(float) * (size_t)5 * N * E);
  mrl__xwt(N, 3 * E, E, y, E, W, E, wy, 3 * E);
  mrl__xwt(N, 2 * E, E, x, E, U, E, ux, 2 * E);
  for (b = 0; b < N; b++) {
    float *w = wy + (size_t)b * 3 * E, *u = ux + (size_t)b * 2 * E;
    for (i = 0; i < E; i++) {
      u[i] = w[i] + u[i];                       /* r before the sigmoid */
      u[E + i] = (w[E + i] + u[E + i]) - bg[i]; /* z */
    }
    mrl__sigmoid_n(u, u, 2 * E);
    for (i = 0; i < E; i++) rx[(size_t)b * E + i] = u[i] * x[(size_t)b * E + i];
  }
  /* U_g (r * x) lands on W_g y */
  if (per_row)
    for (b = 0; b < N; b++)
      mrl__xwt(1, E, E, rx + (size_t)b * E, E, U + (size_t)2 * E * E, E,
               wy + (size_t)b * 3 * E + 2 * E, 3 * E);
  else
    mrl__xwt(N, E, E, rx, E, U + (size_t)2 * E * E, E, wy + 2 * E, 3 * E);
  for (b = 0; b < N; b++) {
    float *w = wy + (size_t)b * 3 * E + 2 * E, *z = ux + (size_t)b * 2 * E + E;
    const float *xr = x + (size_t)b * E;
    mrl__tanh_n(w, w, E);
    for (i = 0; i < E; i++) out[(size_t)b * E + i] = xr[i] + z[i] * (w[i] - xr[i]);
  }
}

typedef struct mrl__gru_gate_saved {
  const mrl_gru_gate *gt;
  mrl_tensor *x, *y;
  float *tmp;  /* mrl__gru_gate_run's, 6*N*E */
  float *dtmp; /* backward scratch: d(wy) [N, 3E], d(r * x) [N, E], d(ux) [N, 2E] */
  int N;
} mrl__gru_gate_saved;

/* out = x + z (h - x): dx = dout (1 - z), dz = dout (h - x), dh = dout z;
 * through the sigmoids and the tanh to the pre-activations, which are the
 * rows of W y, U_rz x and U_g (r * x); then the five products. */
static void mrl__gru_gate_backward(mrl_node *nd) {
  const mrl__gru_gate_saved *s = (const mrl__gru_gate_saved *)(const void *)nd->extra[0];
  const mrl_gru_gate *gt = s->gt;
  int E = gt->dim, N = s->N, n, i;
  mrl_tensor *W = mrl_params_tensor(gt->params, gt->W), *U = mrl_params_tensor(gt->params, gt->U);
  mrl_tensor *bg = mrl_params_tensor(gt->params, gt->bg);
  const float *dout = nd->out->grad, *x = s->x->data;
  const float *wy = s->tmp, *rz = wy + (size_t)3 * N * E, *rx = rz + (size_t)2 * N * E;
  float *dwy = s->dtmp, *drx = dwy + (size_t)3 * N * E, *dux = drx + (size_t)N * E;
  float *dx = s->x->grad;
  for (n = 0; n < N; n++) {
    const float *h = wy + (size_t)n * 3 * E + 2 * E, *z = rz + (size_t)n * 2 * E + E;
    const float *d = dout + (size_t)n * E, *xr = x + (size_t)n * E;
    float *dw = dwy + (size_t)n * 3 * E, *du = dux + (size_t)n * 2 * E;
    for (i = 0; i < E; i++) {
      float dz = d[i] * (h[i] - xr[i]) * z[i] * (1.0f - z[i]);
      dw[E + i] = dz;
      du[E + i] = dz;
      dw[2 * E + i] = d[i] * z[i] * (1.0f - h[i] * h[i]);
      if (dx) dx[(size_t)n * E + i] += d[i] * (1.0f - z[i]);
    }
  }
  /* d(r * x) = d(pre_g) U_g;  dU_g += d(pre_g)^T (r * x) */
  mrl_gemm(0, 0, N, E, E, dwy + 2 * E, 3 * E, U->data + (size_t)2 * E * E, E, 0.0f, drx, E);
  if (U->grad)
    mrl_gemm(1, 0, E, E, N, dwy + 2 * E, 3 * E, rx, E, 1.0f, U->grad + (size_t)2 * E * E, E);
  for (n = 0; n < N; n++) {
    const float *r = rz + (size_t)n * 2 * E, *xr = x + (size_t)n * E, *dr = drx + (size_t)n * E;
    float *dw = dwy + (size_t)n * 3 * E, *du = dux + (size_t)n * 2 * E;
    for (i = 0; i < E; i++) {
      float dpre = dr[i] * xr[i] * r[i] * (1.0f - r[i]);
      dw[i] = dpre;
      du[i] = dpre;
      if (dx) dx[(size_t)n * E + i] += dr[i] * r[i];
    }
  }
  if (W->grad) mrl_gemm(1, 0, 3 * E, E, N, dwy, 3 * E, s->y->data, E, 1.0f, W->grad, E);
  if (s->y->grad) mrl_gemm(0, 0, N, E, 3 * E, dwy, 3 * E, W->data, E, 1.0f, s->y->grad, E);
  if (U->grad) mrl_gemm(1, 0, 2 * E, E, N, dux, 2 * E, x, E, 1.0f, U->grad, E);
  if (dx) mrl_gemm(0, 0, N, E, 2 * E, dux, 2 * E, U->data, E, 1.0f, dx, E);
  if (bg->grad)
    for (n = 0; n < N; n++)
      for (i = 0; i < E; i++) bg->grad[i] -= dux[(size_t)n * 2 * E + E + i];
}

/* Forward mode (mrl_graph_jvp): the pre-activations' tangents A = dW y +
 * W dy (+ dU_rz x + U_rz dx - dbg for r, z), then dr, dz through the
 * sigmoids, d(r x) = dr x + r dx, A_g += dU_g (r x) + U_g d(r x), dh =
 * (1 - h^2) A_g, dout = dx + dz (h - x) + z (dh - dx). Scratch: dtmp. */
static void mrl__gru_gate_jvp(mrl_node *nd) {
  const mrl__gru_gate_saved *s = (const mrl__gru_gate_saved *)(const void *)nd->extra[0];
  const mrl_gru_gate *gt = s->gt;
  int E = gt->dim, N = s->N, n, i;
  mrl_tensor *W = mrl_params_tensor(gt->params, gt->W), *U = mrl_params_tensor(gt->params, gt->U);
  mrl_tensor *bg = mrl_params_tensor(gt->params, gt->bg);
  const float *x = s->x->data, *dx = s->x->grad, *h3 = s->tmp, *rz = h3 + (size_t)3 * N * E;
  const float *rx = rz + (size_t)2 * N * E;
  float *A = s->dtmp, *drx = A + (size_t)3 * N * E, *dout = nd->out->grad;
  memset(A, 0, sizeof(float) * (size_t)4 * N * E);
  if (W->grad) mrl_gemm(0, 1, N, 3 * E, E, s->y->data, E, W->grad, E, 1.0f, A, 3 * E);
  if (s->y->grad) mrl_gemm(0, 1, N, 3 * E, E, s->y->grad, E, W->data, E, 1.0f, A, 3 * E);
  if (U->grad) mrl_gemm(0, 1, N, 2 * E, E, x, E, U->grad, E, 1.0f, A, 3 * E);
  if (dx) mrl_gemm(0, 1, N, 2 * E, E, dx, E, U->data, E, 1.0f, A, 3 * E);
  for (n = 0; n < N; n++) {
    const float *r = rz + (size_t)n * 2 * E, *z = r + E, *xr = x + (size_t)n * E;
    float *a = A + (size_t)n * 3 * E;
    for (i = 0; i < E; i++) {
      float dr = r[i] * (1.0f - r[i]) * a[i];
      a[E + i] = z[i] * (1.0f - z[i]) * (a[E + i] - (bg->grad ? bg->grad[i] : 0.0f)); /* dz */
      drx[(size_t)n * E + i] = dr * xr[i] + (dx ? r[i] * dx[(size_t)n * E + i] : 0.0f);
    }
  }
  if (U->grad)
    mrl_gemm(0, 1, N, E, E, rx, E, U->grad + (size_t)2 * E * E, E, 1.0f, A + 2 * E, 3 * E);
  mrl_gemm(0, 1, N, E, E, drx, E, U->data + (size_t)2 * E * E, E, 1.0f, A + 2 * E, 3 * E);
  for (n = 0; n < N; n++) {
    const float *h = h3 + (size_t)n * 3 * E + 2 * E, *z = rz + (size_t)n * 2 * E + E;
    const float *xr = x + (size_t)n * E, *a = A + (size_t)n * 3 * E;
    for (i = 0; i < E; i++) {
      float dxi = dx ? dx[(size_t)n * E + i] : 0.0f, dh = (1.0f - h[i] * h[i]) * a[2 * E + i];
      dout[(size_t)n * E + i] = dxi + a[E + i] * (h[i] - xr[i]) + z[i] * (dh - dxi);
    }
  }
}

MRL_DEF mrl_tensor *mrl_gru_gate_forward(const mrl_gru_gate *gt, mrl_graph *g, mrl_tensor *x,
                                         mrl_tensor *y) {
  int E = gt->dim, N, wants;
  mrl_tensor *W = mrl_params_tensor(gt->params, gt->W), *U = mrl_params_tensor(gt->params, gt->U);
  mrl_tensor *bg = mrl_params_tensor(gt->params, gt->bg), *out;
  mrl__gru_gate_saved *s;
  mrl_node *nd;
  float *tmp;
  if (!x || !y) return NULL;
  MRL_SHAPE_CHECK(mrl_tensor_same_shape(x, y) && mrl_tensor_cols(x) == E, "gru_gate",
                  "x and y must have the same shape [..., dim]", x, y);
  N = (int)(x->size / (size_t)E);
  wants = mrl_graph_wants_grad(g, x, y) || mrl_graph_wants_grad(g, W, U) ||
          mrl_graph_wants_grad(g, bg, NULL);
  out = mrl_op_output(g, x->ndim, x->shape, wants);
  tmp = (float *)mrl_graph_alloc(g, sizeof(float) * (size_t)6 * N * E);
  if (!out || !tmp) return NULL;
  mrl__gru_gate_run(gt, N, x->data, y->data, out->data, tmp, 0);
  MRL__FINITE("gru_gate", out, x, y);
  if (!wants) return out;
  if ((nd = mrl_graph_record(g, "gru_gate", mrl__gru_gate_backward, out)) != NULL) {
    s = (mrl__gru_gate_saved *)mrl_graph_alloc(g, sizeof *s);
    if (!s || !(s->dtmp = (float *)mrl_graph_alloc(g, sizeof(float) * (size_t)6 * N * E))) {
      g->tape = nd->prev;
      return NULL;
    }
    s->gt = gt;
    s->x = x;
    s->y = y;
    s->tmp = tmp;
    s->N = N;
    nd->extra[0] = (mrl_tensor *)(void *)s;
  }
  return out;
}

MRL_DEF void mrl_gtrxl_layer_init(mrl_gtrxl_layer *l, mrl_params *p, const char *name,
                                  int embed_dim, int num_heads, int ff_dim, float gate_bias) {
  char buf[MRL_NAME_MAX];
  memset(l, 0, sizeof *l);
  l->params = p;
  l->embed_dim = embed_dim;
  l->ff_dim = ff_dim;
  mrl__name(p, buf, name, "attn");
  mrl_rel_mha_init(&l->attn, p, buf, embed_dim, num_heads);
  mrl__norm_params(p, name, "norm1", embed_dim, &l->norm1_weight, &l->norm1_bias);
  mrl__name(p, buf, name, "gate1");
  mrl_gru_gate_init(&l->gate1, p, buf, embed_dim, gate_bias);
  mrl__norm_params(p, name, "norm2", embed_dim, &l->norm2_weight, &l->norm2_bias);
  mrl__name(p, buf, name, "linear1");
  mrl_linear_layer_init(&l->linear1, p, buf, embed_dim, ff_dim, mrl_init_default());
  mrl__name(p, buf, name, "linear2");
  mrl_linear_layer_init(&l->linear2, p, buf, ff_dim, embed_dim, mrl_init_default());
  mrl__name(p, buf, name, "gate2");
  mrl_gru_gate_init(&l->gate2, p, buf, embed_dim, gate_bias);
}

MRL_DEF mrl_tensor *mrl_gtrxl_layer_forward(const mrl_gtrxl_layer *l, mrl_graph *g, mrl_tensor *x,
                                            mrl_tensor *mem, mrl_tensor *mask) {
  mrl_params *p = l->params;
  mrl_tensor *h, *hm = NULL, *y, *f;
  if (!x) return NULL;
  h = mrl__norm(p, g, x, l->norm1_weight, l->norm1_bias, 1e-5f);
  if (mem) hm = mrl__norm(p, g, mrl_detach(g, mem), l->norm1_weight, l->norm1_bias, 1e-5f);
  y = mrl_gru_gate_forward(&l->gate1, g, x,
                           mrl_relu(g, mrl__rel_mha_forward(&l->attn, g, h, hm, mask, 0)));
  f = mrl_linear_layer_forward_act(
      &l->linear1, g, mrl__norm(p, g, y, l->norm2_weight, l->norm2_bias, 1e-5f), MRL_ACT_RELU);
  f = mrl_linear_layer_forward_act(&l->linear2, g, f, MRL_ACT_RELU);
  return mrl_gru_gate_forward(&l->gate2, g, y, f);
}

MRL_DEF mrl_gtrxl_config mrl_gtrxl_config_default(void) {
  mrl_gtrxl_config c;
  c.embed_dim = 64;
  c.num_heads = 4;
  c.num_layers = 2;
  c.ff_dim = 256;
  c.mem_len = 64;
  c.gate_bias = 2.0f;
  return c;
}

MRL_DEF void mrl_gtrxl_init(mrl_gtrxl *m, mrl_params *p, const char *name,
                            const mrl_gtrxl_config *cfg) {
  char buf[MRL_NAME_MAX];
  int k;
  MRL_ASSERT(cfg->num_layers >= 1 && cfg->num_layers <= MRL_GTRXL_MAX_LAYERS && cfg->mem_len >= 0);
  memset(m, 0, sizeof *m);
  m->cfg = *cfg;
  for (k = 0; k < cfg->num_layers; k++) {
    mrl__name(p, buf, name, "layers.%d", k);
    mrl_gtrxl_layer_init(&m->layers[k], p, buf, cfg->embed_dim, cfg->num_heads, cfg->ff_dim,
                         cfg->gate_bias);
  }
}

MRL_DEF int mrl_gtrxl_state_dim(const mrl_gtrxl *m) {
  return 5 + m->cfg.num_layers * m->cfg.embed_dim * (4 * m->cfg.mem_len + 3);
}

/* ---- the acting cache (layout in the declaration's comment) ---- */

/* Offset of the cache tag in one environment's state. */
static size_t mrl__gtrxl_cache_at(const mrl_gtrxl *m) {
  return 1 + (size_t)m->cfg.num_layers * m->cfg.mem_len * m->cfg.embed_dim;
}

/* Two 32-bit sums of every value's bits times a distinct odd multiplier per
 * position (and a second, mixed, stream): a change of any one value always
 * changes the first sum; independent changes collide with odds ~2^-64. No
 * dependency chain between elements, so it runs at memory speed. */
typedef struct mrl__hash64 {
  uint32_t a, b, ca, cb;
} mrl__hash64;

static void mrl__hash64_floats(mrl__hash64 *h, const float *d, size_t n) {
  uint32_t a = h->a, b = h->b, ca = h->ca, cb = h->cb;
  size_t i = 0;
#ifdef MRL__HAVE_F4
  { /* lane k takes positions k mod 4: the same multipliers, the same sums */
    mrl__u4 va = {0, 0, 0, 0}, vb = {0, 0, 0, 0},
            sa = {0, 0x6A09E668u, 2u * 0x6A09E668u, 3u * 0x6A09E668u},
            sb = {0, 0x3C6EF372u, 2u * 0x3C6EF372u, 3u * 0x3C6EF372u}, ma, mb;
    ma = sa + ca;
    mb = sb + cb;
    for (; i + 4 <= n; i += 4) {
      mrl__u4 w;
      memcpy(&w, d + i, sizeof w);
      va += w * ma;
      vb += (w ^ (w >> 16)) * mb;
      ma += 4u * 0x6A09E668u;
      mb += 4u * 0x3C6EF372u;
    }
    a += va[0] + va[1] + va[2] + va[3];
    b += vb[0] + vb[1] + vb[2] + vb[3];
    ca = ma[0];
    cb = mb[0];
  }
#endif
  for (; i < n; i++) {
    uint32_t w;
    memcpy(&w, d + i, sizeof w);
    a += w * ca;
    b += (w ^ (w >> 16)) * cb;
    ca += 0x6A09E668u; /* even steps keep the multipliers odd */
    cb += 0x3C6EF372u;
  }
  h->a = a;
  h->b = b;
  h->ca = ca;
  h->cb = cb;
}

/* The tag of the current parameters: everything the cache is built from
 * (norm1, the key and value rows of in_proj, r_net) and the sizes. */
static void mrl__gtrxl_tag(const mrl_gtrxl *m, float tag[4]) {
  int E = m->cfg.embed_dim, l;
  mrl__hash64 h;
  h.a = 0x243F6A88u ^ (uint32_t)m->cfg.mem_len;
  h.b = 0x85A308D3u ^ (uint32_t)E ^ ((uint32_t)m->cfg.num_heads << 16);
  h.ca = 0x9E3779B1u;
  h.cb = 0x85EBCA77u;
  for (l = 0; l < m->cfg.num_layers; l++) {
    const mrl_gtrxl_layer *ly = &m->layers[l];
    mrl_params *p = ly->params;
    mrl__hash64_floats(&h, mrl_params_tensor(p, ly->norm1_weight)->data, (size_t)E);
    mrl__hash64_floats(&h, mrl_params_tensor(p, ly->norm1_bias)->data, (size_t)E);
    mrl__hash64_floats(&h, mrl_params_tensor(p, ly->attn.in_proj_weight)->data + (size_t)E * E,
                       (size_t)2 * E * E);
    mrl__hash64_floats(&h, mrl_params_tensor(p, ly->attn.r_net_weight)->data, (size_t)E * E);
  }
  tag[0] = (float)(h.a >> 16) + 1.0f;
  tag[1] = (float)(h.a & 0xFFFFu) + 1.0f;
  tag[2] = (float)(h.b >> 16) + 1.0f;
  tag[3] = (float)(h.b & 0xFFFFu) + 1.0f;
}

/* mrl_layernorm's arithmetic on n rows of E (the same bits), without a graph. */
static void mrl__gtrxl_ln_rows(const float *x, int n, int E, const float *w, const float *b,
                               float *y) {
  int r, j;
  for (r = 0; r < n; r++) {
    const float *xr = x + (size_t)r * E;
    float *yr = y + (size_t)r * E, mu, sd;
    double acc = 0.0, var = 0.0;
    for (j = 0; j < E; j++) acc += xr[j];
    mu = (float)(acc / E);
    for (j = 0; j < E; j++) var += ((double)xr[j] - mu) * ((double)xr[j] - mu);
    sd = (float)(1.0 / sqrt(var / E + 1e-5));
    for (j = 0; j < E; j++) yr[j] = (xr[j] - mu) * sd * w[j] + b[j];
  }
}

/* Rebuilds one environment's cache from its n valid input rows: keys and
 * values of those slots (zeros elsewhere) and the position keys, which
 * `pos` holds for every layer ([L][M+1][E], computed once per call). */
static void mrl__gtrxl_rebuild(const mrl_gtrxl *m, float *s, int n, const float *tag,
                               const float *pos, float *ln, float *kv) {
  int E = m->cfg.embed_dim, M = m->cfg.mem_len, L = m->cfg.num_layers, l, r, e;
  size_t c = mrl__gtrxl_cache_at(m), blk = (size_t)(M + 1) * E;
  float *K0 = s + c + 4, *V0 = K0 + (size_t)L * blk, *P0 = V0 + (size_t)L * blk;
  for (l = 0; l < L; l++) {
    const mrl_gtrxl_layer *ly = &m->layers[l];
    mrl_params *p = ly->params;
    float *K = K0 + (size_t)l * blk, *V = V0 + (size_t)l * blk;
    memset(K, 0, sizeof(float) * blk);
    memset(V, 0, sizeof(float) * blk);
    if (n > 0) {
      mrl__gtrxl_ln_rows(s + 1 + ((size_t)l * M + (M - n)) * E, n, E,
                         mrl_params_tensor(p, ly->norm1_weight)->data,
                         mrl_params_tensor(p, ly->norm1_bias)->data, ln);
      memset(kv, 0, sizeof(float) * (size_t)n * 2 * E);
      mrl__xwt(n, 2 * E, E, ln, E,
               mrl_params_tensor(p, ly->attn.in_proj_weight)->data + (size_t)E * E, E, kv, 2 * E);
      for (r = 0; r < n; r++) {
        int j = M - n + r;
        memcpy(K + (size_t)j * E, kv + (size_t)r * 2 * E, sizeof(float) * (size_t)E);
        for (e = 0; e < E; e++) V[(size_t)e * (M + 1) + j] = kv[(size_t)r * 2 * E + E + e];
      }
    }
  }
  memcpy(P0, pos, sizeof(float) * (size_t)L * blk);
  memcpy(s + c, tag, sizeof(float) * 4);
}

/* In place: x[i] = exp(x[i] - mx) (arguments <= 0), returns their sum. */
static float mrl__gtrxl_softmax_exp(float *x, int n, float mx) {
  float sum = 0.0f;
  int i = 0;
#ifdef MRL__HAVE_F4
  mrl__f4 acc = {0.0f, 0.0f, 0.0f, 0.0f};
  for (; i + 4 <= n; i += 4) {
    mrl__f4 v;
    memcpy(&v, x + i, sizeof v);
    v = mrl__exp_nonpos4(v - mx);
    memcpy(x + i, &v, sizeof v);
    acc += v;
  }
  sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
#endif
  for (; i < n; i++) {
    x[i] = mrl__exp_nonpos(x[i] - mx);
    sum += x[i];
  }
  return sum;
}

/* The cached step: T = 1, no graph recorded. */
static mrl_tensor *mrl__gtrxl_step(const mrl_gtrxl *m, mrl_graph *g, mrl_tensor *x, int B,
                                   const float *episode_start, const float *state_in,
                                   float *state_out) {
  int E = m->cfg.embed_dim, M = m->cfg.mem_len, L = m->cfg.num_layers, H = m->cfg.num_heads;
  int D = E / H, S = mrl_gtrxl_state_dim(m), b, l, hh, d, j, *nv;
  size_t c = mrl__gtrxl_cache_at(m);
  float tag[4], *st = state_out, *pos = NULL, *ln = NULL, *kv = NULL, *sc, *qs, *gtmp;
  float scale = 1.0f / sqrtf((float)D);
  mrl_tensor *h = x;
  if (!st) st = (float *)mrl_graph_alloc(g, sizeof(float) * (size_t)B * S);
  nv = (int *)mrl_graph_alloc(g, sizeof(int) * (size_t)B);
  sc = (float *)mrl_graph_alloc(g, sizeof(float) * (size_t)(M + 1));
  qs = (float *)mrl_graph_alloc(g, sizeof(float) * (size_t)2 * E);
  gtmp = (float *)mrl_graph_alloc(g, sizeof(float) * (size_t)6 * B * E);
  if (!st || !nv || !sc || !qs || !gtmp) return NULL;
  if (!state_in)
    memset(st, 0, sizeof(float) * (size_t)B * S);
  else if (state_in != st)
    memcpy(st, state_in, sizeof(float) * (size_t)B * S);
  mrl__gtrxl_tag(m, tag);
  for (b = 0; b < B; b++) {
    float *s = st + (size_t)b * S, v = s[0];
    int n = v > 0.0f ? (v < (float)M ? (int)v : M) : 0;
    if (episode_start && episode_start[b] != 0.0f) n = 0;
    nv[b] = n;
    if (memcmp(s + c, tag, sizeof tag) != 0) {
      if (!pos) { /* position keys of every layer, for every stale env of this call */
        mrl_tensor *R = mrl__txl_relative_table(g, M + 1, E);
        pos = (float *)mrl_graph_alloc(g, sizeof(float) * (size_t)L * E * (M + 1));
        ln = (float *)mrl_graph_alloc(g, sizeof(float) * (size_t)(M > 0 ? M : 1) * E);
        kv = (float *)mrl_graph_alloc(g, sizeof(float) * (size_t)(M > 0 ? M : 1) * 2 * E);
        if (!R || !pos || !ln || !kv) return NULL;
        for (l = 0; l < L; l++) { /* row j of R is distance M - j: slot j's */
          float *P = pos + (size_t)l * E * (M + 1);
          memset(P, 0, sizeof(float) * (size_t)(M + 1) * E);
          mrl__xwt(M + 1, E, E, R->data, E,
                   mrl_params_tensor(m->layers[l].params, m->layers[l].attn.r_net_weight)->data, E,
                   P, E);
        }
      }
      mrl__gtrxl_rebuild(m, s, n, tag, pos, ln, kv);
    }
  }
  for (l = 0; l < L; l++) {
    const mrl_gtrxl_layer *ly = &m->layers[l];
    mrl_params *p = ly->params;
    const float *u = mrl_params_tensor(p, ly->attn.r_w_bias)->data;
    const float *rr = mrl_params_tensor(p, ly->attn.r_r_bias)->data;
    size_t blk = (size_t)(M + 1) * E;
    mrl_tensor *n1, *qkv, *ctx, *y, *f, *gated, *bo = NULL;
    n1 = mrl__norm(p, g, h, ly->norm1_weight, ly->norm1_bias, 1e-5f);
    qkv = mrl_linear(g, n1, mrl_params_tensor(p, ly->attn.in_proj_weight), NULL);
    ctx = mrl_tensor_new2(g, B, E, 0);
    if (!qkv || !ctx) return NULL;
    for (b = 0; b < B; b++) {
      float *s = st + (size_t)b * S, *X = s + 1 + (size_t)l * M * E;
      float *K = s + c + 4 + (size_t)l * blk, *V = s + c + 4 + (size_t)(L + l) * blk;
      const float *P = s + c + 4 + (size_t)(2 * L + l) * blk;
      const float *q = qkv->data + (size_t)b * 3 * E, *kn = q + E, *vn = q + 2 * E;
      float *cx = ctx->data + (size_t)b * E;
      int n = nv[b], lo = M - n, no = n + 1 < M ? n + 1 : M, e;
      /* this step's key and value join the window as slot M */
      memcpy(K + (size_t)M * E, kn, sizeof(float) * (size_t)E);
      for (e = 0; e < E; e++) V[(size_t)e * (M + 1) + M] = vn[e];
      for (e = 0; e < E; e++) { /* (q + u) / sqrt(D) and (q + v) / sqrt(D) */
        qs[e] = (q[e] + u[e]) * scale;
        qs[E + e] = (q[e] + rr[e]) * scale;
      }
      for (hh = 0; hh < H; hh++) {
        float mx, sum;
        /* score(j) = (q + u) . k_j + (q + v) . W_R R_{M-j}, slots lo..M */
        mrl_gemm(0, 1, 1, n + 1, D, qs + hh * D, D, K + (size_t)lo * E + hh * D, E, 0.0f, sc + lo,
                 n + 1);
        mrl_gemm(0, 1, 1, n + 1, D, qs + E + hh * D, D, P + (size_t)lo * E + hh * D, E, 1.0f,
                 sc + lo, n + 1);
        mx = sc[M];
        for (j = lo; j < M; j++) mx = sc[j] > mx ? sc[j] : mx;
        sum = mrl__gtrxl_softmax_exp(sc + lo, n + 1, mx);
        mrl_gemm(0, 1, 1, D, n + 1, sc + lo, n + 1, V + (size_t)hh * D * (M + 1) + lo, M + 1, 0.0f,
                 cx + hh * D, D);
        for (d = 0; d < D; d++) cx[hh * D + d] /= sum;
      }
      /* the window moves on: the valid rows and the new one shift one slot
       * older, older slots (and the spare slot M) hold zeros */
      if (M > 0) {
        size_t gone = (size_t)(M - no);
        memmove(X + gone * E, X + (gone + 1) * E, sizeof(float) * (size_t)(no - 1) * E);
        memcpy(X + (size_t)(M - 1) * E, h->data + (size_t)b * E, sizeof(float) * (size_t)E);
        memset(X, 0, sizeof(float) * gone * E);
        memmove(K + gone * E, K + (gone + 1) * E, sizeof(float) * (size_t)no * E);
        memset(K, 0, sizeof(float) * gone * E);
        for (e = 0; e < E; e++) {
          float *vr = V + (size_t)e * (M + 1);
          memmove(vr + gone, vr + gone + 1, sizeof(float) * (size_t)no);
          memset(vr, 0, sizeof(float) * gone);
        }
      }
      memset(K + (size_t)M * E, 0, sizeof(float) * (size_t)E);
      for (e = 0; e < E; e++) V[(size_t)e * (M + 1) + M] = 0.0f;
    }
    if (ly->attn.out_proj_bias >= 0) bo = mrl_params_tensor(p, ly->attn.out_proj_bias);
    y = mrl_relu(g, mrl_linear(g, ctx, mrl_params_tensor(p, ly->attn.out_proj_weight), bo));
    gated = mrl_tensor_new2(g, B, E, 0);
    if (!y || !gated) return NULL;
    mrl__gru_gate_run(&ly->gate1, B, h->data, y->data, gated->data, gtmp, 1);
    y = gated;
    f = mrl_relu(
        g, mrl_linear_layer_forward(&ly->linear1, g,
                                    mrl__norm(p, g, y, ly->norm2_weight, ly->norm2_bias, 1e-5f)));
    f = mrl_relu(g, mrl_linear_layer_forward(&ly->linear2, g, f));
    h = mrl_tensor_new2(g, B, E, 0);
    if (!f || !h) return NULL;
    mrl__gru_gate_run(&ly->gate2, B, y->data, f->data, h->data, gtmp, 1);
  }
  for (b = 0; b < B; b++) st[(size_t)b * S] = (float)(nv[b] + 1 < M ? nv[b] + 1 : M);
  return h;
}

MRL_DEF void mrl_gtrxl_state_reset(const mrl_gtrxl *m, float *state, int B) {
  memset(state, 0, sizeof(float) * (size_t)B * (size_t)mrl_gtrxl_state_dim(m));
}

MRL_DEF mrl_tensor *mrl_gtrxl_forward(const mrl_gtrxl *m, mrl_graph *g, mrl_tensor *x, int T, int B,
                                      const float *episode_start, const float *state_in,
                                      float *state_out) {
  int E = m->cfg.embed_dim, M = m->cfg.mem_len, L = m->cfg.num_layers, S, b, t, l, i;
  int s3[3], perm[3] = {1, 0, 2}, *valid;
  float *starts_bm = NULL, *next;
  mrl_tensor *h, *mask;
  if (!x) return NULL;
  MRL_SHAPE_CHECK(x->ndim == 2 && x->shape[0] == T * B && x->shape[1] == E, "gtrxl_forward",
                  "x must be [T*B, embed_dim]", x, NULL);
  if (T == 1 && g->no_grad) return mrl__gtrxl_step(m, g, x, B, episode_start, state_in, state_out);
  S = mrl_gtrxl_state_dim(m);
  valid = (int *)mrl_graph_alloc(g, sizeof(int) * (size_t)B);
  next = (float *)mrl_graph_alloc(g, sizeof(float) * (size_t)B * (size_t)S);
  if (episode_start) starts_bm = (float *)mrl_graph_alloc(g, sizeof(float) * (size_t)B * (size_t)T);
  if (!valid || !next || (episode_start && !starts_bm)) return NULL;
  for (b = 0; b < B; b++) {
    float v = state_in ? state_in[(size_t)b * S] : 0.0f;
    valid[b] = v > 0.0f ? (v < (float)M ? (int)v : M) : 0;
    if (episode_start)
      for (t = 0; t < T; t++) starts_bm[(size_t)b * T + t] = episode_start[(size_t)t * B + b];
  }
  mask = mrl_attn_episode_mask(g, B, T, M, starts_bm, valid);
  s3[0] = T;
  s3[1] = B;
  s3[2] = E;
  h = mrl_permute(g, mrl_reshape(g, x, 3, s3), perm); /* [B, T, E] */
  for (l = 0; l < L; l++) {
    mrl_tensor *mem = NULL;
    if (!h) return NULL;
    if (M > 0) {
      s3[0] = B;
      s3[1] = M;
      s3[2] = E;
      mem = mrl_tensor_new(g, 3, s3, 0);
      if (!mem) return NULL;
      /* only the valid tail is read; older slots enter as zeros, so even a
       * non-finite value left there cannot reach the output (0 * inf) */
      for (b = 0; b < B; b++) {
        size_t skip = (size_t)(M - valid[b]) * E;
        float *dst = mem->data + (size_t)b * M * E;
        memset(dst, 0, sizeof(float) * skip);
        if (skip < (size_t)M * E) /* valid[b] > 0 implies state_in */
          memcpy(dst + skip, state_in + (size_t)b * S + 1 + (size_t)l * M * E + skip,
                 sizeof(float) * ((size_t)M * E - skip));
      }
      /* the new window: the last M rows of [memory ; this layer's inputs] */
      for (b = 0; b < B; b++)
        for (i = 0; i < M; i++) {
          int src = i + T; /* row in [memory ; inputs] of length M + T */
          const float *row = src < M ? mem->data + ((size_t)b * M + src) * E
                                     : h->data + ((size_t)b * T + (src - M)) * E;
          memcpy(next + (size_t)b * S + 1 + ((size_t)l * M + i) * E, row, sizeof(float) * E);
        }
    }
    h = mrl_gtrxl_layer_forward(&m->layers[l], g, h, mem, mask);
  }
  if (!h) return NULL;
  for (b = 0; b < B; b++) {
    int v = valid[b] + T;
    if (starts_bm)
      for (t = 0; t < T; t++)
        if (starts_bm[(size_t)b * T + t] != 0.0f) v = T - t;
    v = v < M ? v : M;
    next[(size_t)b * S] = (float)v;
    /* slots older than the episode are zeroed: one canonical state whatever
     * the segmentation, nothing stale kept in replay buffers */
    for (l = 0; l < L; l++)
      memset(next + (size_t)b * S + 1 + (size_t)l * M * E, 0, sizeof(float) * (size_t)(M - v) * E);
    /* no acting cache (tag 0): the next cached step builds it */
    memset(next + (size_t)b * S + mrl__gtrxl_cache_at(m), 0,
           sizeof(float) * ((size_t)S - mrl__gtrxl_cache_at(m)));
  }
  if (state_out) memcpy(state_out, next, sizeof(float) * (size_t)B * S);
  h = mrl_permute(g, h, perm); /* [T, B, E] */
  s3[0] = T * B;
  s3[1] = E;
  return mrl_reshape(g, h, 2, s3);
}

#ifdef __cplusplus
}
#endif
#endif /* MEMRL_NN_IMPLEMENTATION */

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
