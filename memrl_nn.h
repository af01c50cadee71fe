/* memrl_nn.h - parameters, layers, initialisers, optimisers and distributions.
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
 *   Orthogonal init as torch.nn.init.orthogonal_ (QR of a normal matrix, signs
 *   fixed by diag(R)), biases zero (CleanRL's layer_init).
 *   Xavier and Kaiming inits as torch.nn.init (calculate_gain, fan modes).
 *   Adam: torch.optim.Adam (L2 weight decay added to the gradient, eps added
 *   after the bias-corrected square root). Clipping: clip_grad_norm_ (norm of
 *   the per-tensor 2-norms, coefficient max_norm / (norm + 1e-6), capped at 1).
 *
 * WHAT IS HERE
 *   store        mrl_params_* (add, finalize, find, zero_grad, clip_grad_norm,
 *                copy, polyak, copy_matching, reset_optimizer)
 *   initialisers mrl_init_default / orthogonal / xavier_* / kaiming_*,
 *                mrl_init_gain, mrl_init_fans
 *   layers       mrl_linear_layer, mrl_mlp; recurrent layers with a fused
 *                node per sequence, step-by-step cells and [T,B] sequences
 *                with per-step reset masks: mrl_lstm_layer, mrl_gru_layer,
 *                mrl_elman_layer; multi-layer stacks mrl_lstm, mrl_gru,
 *                mrl_elman
 *   optimisers   mrl_adam_step, mrl_adamw_step, mrl_sgd_step,
 *                mrl_rmsprop_step (torch and TensorFlow forms, centred);
 *                schedules mrl_lr_linear / mrl_lr_cosine / mrl_lr_step
 *   distributions categorical (log-prob, entropy, KL, sample, mode), diagonal
 *                Gaussian, tanh-squashed Gaussian, mixture of Gaussians
 *   heads        mrl_dueling_head, mrl_c51_head (+ mrl_c51_project),
 *                mrl_mdn_head
 *   surgery      Net2Net: mrl_mlp_widen, mrl_mlp_insert_identity,
 *                mrl_lstm_widen, mrl_net2net_mapping / widen_rows
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
  MRL_INIT_KAIMING_NORMAL   /* N(0, gain^2 / fan) */
} mrl_init_kind;

typedef struct mrl_init {
  mrl_init_kind kind;
  float a; /* gain, bound, std or value, by kind */
  float b; /* MRL_INIT_LSTM_BIAS: forget-gate bias */
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
  float *moment1, *moment2; /* optimiser moments, [total] each (see OPTIMISERS) */
  long long adam_steps;     /* steps taken by the optimiser (whichever it is) */
  int finalized;
  float *moment3; /* centred RMSProp's mean gradient: allocated by its first step */
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
/* Over a time-major sequence: x [T*B, in], h0 [B,H], keep NULL or [T*B]
 * (multiplies h before step t: 0 where an episode starts). One fused node.
 * Returns y [T*B, H]; *h_out (may be NULL) is h_T, a view of y's last block. */
MRL_DEF mrl_tensor *mrl_gru_sequence(const mrl_gru_layer *l, mrl_graph *g, mrl_tensor *x, int T,
                                     int B, mrl_tensor *h0, const float *keep, mrl_tensor **h_out);
/* One step: x [B,in], h [B,H], keep NULL or [B]. Returns h' [B,H]. */
MRL_DEF mrl_tensor *mrl_gru_cell(const mrl_gru_layer *l, mrl_graph *g, mrl_tensor *x, mrl_tensor *h,
                                 const float *keep);

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
/* As mrl_gru_sequence / mrl_gru_cell. */
MRL_DEF mrl_tensor *mrl_elman_sequence(const mrl_elman_layer *l, mrl_graph *g, mrl_tensor *x, int T,
                                       int B, mrl_tensor *h0, const float *keep,
                                       mrl_tensor **h_out);
MRL_DEF mrl_tensor *mrl_elman_cell(const mrl_elman_layer *l, mrl_graph *g, mrl_tensor *x,
                                   mrl_tensor *h, const float *keep);

/* ---- multi-layer stacks (torch's num_layers) ----
 * Layer k reads layer k-1's outputs; its tensors are named
 * <name>.weight_ih_l<k>, .weight_hh_l<k>, .bias_ih_l<k>, .bias_hh_l<k> as in
 * torch's state_dict, declared layer by layer. States are stacked by layer:
 * h0, c0 and the final states are [L*B, H] (torch's [L, B, H] flattened).
 * keep (NULL or [T*B]) resets every layer's state. No inter-layer dropout
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
                                     mrl_tensor *h0, mrl_tensor *c0, const float *keep,
                                     mrl_tensor **h_out, mrl_tensor **c_out);
MRL_DEF mrl_tensor *mrl_gru_forward(const mrl_gru *m, mrl_graph *g, mrl_tensor *x, int T, int B,
                                    mrl_tensor *h0, const float *keep, mrl_tensor **h_out);
MRL_DEF mrl_tensor *mrl_elman_forward(const mrl_elman *m, mrl_graph *g, mrl_tensor *x, int T, int B,
                                      mrl_tensor *h0, const float *keep, mrl_tensor **h_out);

/* ---- categorical distribution over rows of normalised log-probabilities ----
 * (log_probs = mrl_log_softmax(logits)) */
MRL_DEF mrl_tensor *mrl_categorical_log_prob(mrl_graph *g, mrl_tensor *log_probs,
                                             const int *actions);
MRL_DEF mrl_tensor *mrl_categorical_entropy(mrl_graph *g, mrl_tensor *log_probs); /* [B] */
/* Sampling and the mode from one row of logits (no graph, no allocation). */
MRL_DEF int mrl_categorical_sample(const float *logits, int n, mrl_rng *rng);
MRL_DEF int mrl_categorical_mode(const float *logits, int n);

/* KL(p || q) per row, from rows of normalised log-probabilities: [B]. */
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
 * must broadcast against log_std_p (same shape, or [D]). [B]. */
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

/* ---- heads ---- */

/* Dueling Q head (Wang et al. 2016): separate value and advantage streams,
 * Q = V + A - mean_a(A). Each stream is an MLP over the features with
 * hidden_size units (ReLU) when hidden_size > 0, else one linear layer.
 * Tensors: <name>.value.{0,1}.*, <name>.advantage.{0,1}.*. */
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

#ifdef __cplusplus
}
#endif
#endif /* MEMRL_NN_H */

/* ======================================================================== */
#if (defined(MEMRL_NN_IMPLEMENTATION) || defined(MEMRL_IMPLEMENTATION)) &&                         \
    !defined(MEMRL_NN_IMPLEMENTED)
#define MEMRL_NN_IMPLEMENTED

#if defined(MRL__HAVE_F4) && defined(__SSE__)
#include <xmmintrin.h> /* _mm_sqrt_ps for Adam */
#endif

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
  /* CleanRL's tau * src + (1 - tau) * dst: exact copy at tau = 1, no-op at 0 */
  float keep = 1.0f - tau;
  MRL_ASSERT(dst->total == src->total);
  for (j = 0; j < src->total; j++) dst->values[j] = tau * src->values[j] + keep * dst->values[j];
}

MRL_DEF void mrl_params_free(mrl_params *p) {
  MRL_FREE(p->items);
  MRL_FREE(p->values);
  MRL_FREE(p->grads);
  MRL_FREE(p->moment1);
  MRL_FREE(p->moment2);
  MRL_FREE(p->moment3);
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
  j = 0;
#if defined(MRL__HAVE_F4) && defined(__SSE__)
  /* four at a time, the scalar loop's operations lane by lane (sqrtps is
   * correctly rounded, as sqrtf) */
  for (; j + 4 <= p->total; j += 4) {
    mrl__f4 grad, val, m, v, denom;
    __m128 root;
    memcpy(&grad, p->grads + j, sizeof grad);
    memcpy(&val, p->values + j, sizeof val);
    memcpy(&m, p->moment1 + j, sizeof m);
    memcpy(&v, p->moment2 + j, sizeof v);
    if (wd != 0.0f) grad += wd * val;
    m = m * b1 + one_b1 * grad;
    v = v * b2 + one_b2 * grad * grad;
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

/* The reverse recurrences need dpre_t W_hh every step. A W_hh small enough
 * for mrl__xwt's cache-resident kernel is transposed once per backward pass
 * into w_t [H, gates*H], so each step is a product of contiguous rows rather
 * than a repacking of W_hh; a larger one goes to mrl_gemm as it is (w_t is
 * then not allocated: NULL). */
static int mrl__rnn_small(int G, int H) {
  return (size_t)G * (size_t)H <= MRL__XWT_MAX;
}

static void mrl__rnn_transpose(const float *w, int rows, int cols, float *w_t) {
  int r, c;
  if (!w_t) return;
  for (r = 0; r < rows; r++)
    for (c = 0; c < cols; c++) w_t[(size_t)c * rows + r] = w[(size_t)r * cols + c];
}

/* acc[j] += rows[k][j] for k = 0..n-1 in order (bias gradients): four
 * columns at a time, each column's sum in the same order as a plain loop. */
static void mrl__add_col_sums(float *acc, const float *rows, size_t n, int cols) {
  size_t k;
  int j = 0;
  if (!acc) return;
#ifdef MRL__HAVE_F4
  for (; j + 4 <= cols; j += 4) {
    mrl__f4 a, r;
    memcpy(&a, acc + j, sizeof a);
    for (k = 0; k < n; k++) {
      memcpy(&r, rows + k * cols + j, sizeof r);
      a += r;
    }
    memcpy(acc + j, &a, sizeof a);
  }
#endif
  for (; j < cols; j++)
    for (k = 0; k < n; k++) acc[j] += rows[k * cols + j];
}

/* dst [B, H] = src [B, G] W_hh, W_hh [G, H] (w_t its transpose, or NULL) */
static void mrl__rnn_back_h(int B, int H, int G, const float *src, const float *w_hh,
                            const float *w_t, float *dst) {
  if (!w_t) {
    mrl_gemm(0, 0, B, H, G, src, G, w_hh, H, 0.0f, dst, H);
    return;
  }
  memset(dst, 0, sizeof(float) * (size_t)B * H);
  mrl__xwt(B, H, G, src, G, w_t, G, dst, H);
}

/* Declares the four tensors of recurrent layer k (torch's _l<k> suffix):
 * weight_ih [gates*H, in], weight_hh [gates*H, H], bias_ih, bias_hh. DEFAULT
 * resolves to U(+-1/sqrt(H)) for all four, as torch's RNN, LSTM and GRU do;
 * another init applies to the weights with zero biases. */
static void mrl__rnn_declare(mrl_params *p, const char *name, int k, int gates, int input,
                             int hidden, mrl_init init, mrl_init bias_ih_init, int *ids) {
  char buf[96];
  int sih[2], shh[2], sb[1];
  mrl_init wi = init, bi = mrl_init_make(MRL_INIT_ZEROS, 0.0f);
  sih[0] = shh[0] = sb[0] = gates * hidden;
  sih[1] = input;
  shh[1] = hidden;
  if (init.kind == MRL_INIT_DEFAULT)
    wi = bi = mrl_init_make(MRL_INIT_UNIFORM, 1.0f / sqrtf((float)hidden));
  if (bias_ih_init.kind == MRL_INIT_DEFAULT) bias_ih_init = bi;
  snprintf(buf, sizeof buf, "%s.weight_ih_l%d", name, k);
  ids[0] = mrl_params_add(p, buf, 2, sih, wi);
  snprintf(buf, sizeof buf, "%s.weight_hh_l%d", name, k);
  ids[1] = mrl_params_add(p, buf, 2, shh, wi);
  snprintf(buf, sizeof buf, "%s.bias_ih_l%d", name, k);
  ids[2] = mrl_params_add(p, buf, 1, sb, bias_ih_init);
  snprintf(buf, sizeof buf, "%s.bias_hh_l%d", name, k);
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
  float *w_t;             /* [H, 4H] backward scratch: W_hh transposed (or NULL) */
  int T, B;
} mrl__lstm_saved;

static void mrl__lstm_backward(mrl_node *nd) {
  mrl__lstm_saved *s = (mrl__lstm_saved *)(void *)nd->extra[0];
  mrl_tensor *y = nd->out;
  int T = s->T, B = s->B, H = y->shape[1], I = s->x->shape[1], G = 4 * H, t, b, j;
  size_t BH = (size_t)B * H, k;
  /* y's last block is h_T, so its gradient arrives through y; c_T's own */
  memset(s->dh_prev, 0, sizeof(float) * BH);
  mrl__rnn_transpose(s->w_hh->data, G, H, s->w_t);
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
    mrl__rnn_back_h(B, H, G, dp, s->w_hh->data, s->w_t, s->dh_prev);
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
  mrl__add_col_sums(s->b_ih->grad, s->dpre, (size_t)T * B, G);
  mrl__add_col_sums(s->b_hh->grad, s->dpre, (size_t)T * B, G);
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
  mrl__xwt(T * B, G, I, x->data, I, w_ih->data, I, s->gates, G);
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
    mrl__xwt(B, G, H, hk, H, w_hh->data, H, gt, G);
    for (b = 0; b < B; b++) {
      float *gb = gt + (size_t)b * G, *cb = ct + (size_t)b * H, *tb = tc + (size_t)b * H;
      const float *kb = ck + (size_t)b * H;
      mrl__sigmoid_n(gb, gb, 2 * H);             /* i, f */
      mrl__tanh_n(gb + 2 * H, gb + 2 * H, H);    /* g */
      mrl__sigmoid_n(gb + 3 * H, gb + 3 * H, H); /* o */
      for (j = 0; j < H; j++) cb[j] = gb[H + j] * kb[j] + gb[j] * gb[2 * H + j];
      mrl__tanh_n(cb, tb, H);
      for (j = 0; j < H; j++) yt[(size_t)b * H + j] = gb[3 * H + j] * tb[j];
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
    s->w_t =
        mrl__rnn_small(G, H) ? (float *)mrl_graph_alloc(g, sizeof(float) * (size_t)G * H) : NULL;
    if (!s->dpre || !s->dc || !s->dh_prev || (mrl__rnn_small(G, H) && !s->w_t)) {
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

/* ---- GRU ---- */

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
  float *w_t;           /* [H, 3H] backward scratch: W_hh transposed (or NULL) */
  int T, B;
} mrl__gru_saved;

static void mrl__gru_backward(mrl_node *nd) {
  mrl__gru_saved *s = (mrl__gru_saved *)(void *)nd->extra[0];
  mrl_tensor *y = nd->out;
  int T = s->T, B = s->B, H = y->shape[1], I = s->x->shape[1], G = 3 * H, t, b, j;
  size_t BH = (size_t)B * H, k, N = (size_t)T * B;
  memset(s->dh_prev, 0, sizeof(float) * BH);
  mrl__rnn_transpose(s->w_hh->data, G, H, s->w_t);
  for (t = T - 1; t >= 0; t--) {
    const float *gt = s->gates + (size_t)t * B * G, *hk = s->h_prev + (size_t)t * BH;
    const float *hn = s->hn + (size_t)t * BH, *gy = y->grad + (size_t)t * BH;
    float *dx = s->dxp + (size_t)t * B * G, *dh = s->dhh + (size_t)t * B * G;
    for (b = 0; b < B; b++) {
      const float *gb = gt + (size_t)b * G;
      float *dxb = dx + (size_t)b * G, *dhb = dh + (size_t)b * G;
      for (j = 0; j < H; j++) {
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
    mrl__rnn_back_h(B, H, G, dh, s->w_hh->data, s->w_t, s->dh_prev);
    for (b = 0; b < B; b++) {
      float keep = s->keep ? s->keep[(size_t)t * B + b] : 1.0f;
      for (j = 0; j < H; j++) {
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
  mrl__add_col_sums(s->b_ih->grad, s->dxp, N, G);
  mrl__add_col_sums(s->b_hh->grad, s->dhh, N, G);
}

/* y's last block as a [B, H] tensor sharing y's data and gradient. */
static mrl_tensor *mrl__last_block(mrl_graph *g, mrl_tensor *y, int T, int B) {
  mrl_tensor *v = (mrl_tensor *)mrl_graph_alloc(g, sizeof(mrl_tensor));
  size_t off = (size_t)(T - 1) * B * y->shape[1];
  if (!v) return NULL;
  *v = mrl_tensor_make2(y->data + off, y->grad ? y->grad + off : NULL, B, y->shape[1]);
  return v;
}

MRL_DEF mrl_tensor *mrl_gru_sequence(const mrl_gru_layer *l, mrl_graph *g, mrl_tensor *x, int T,
                                     int B, mrl_tensor *h0, const float *keep, mrl_tensor **h_out) {
  mrl_tensor *w_ih, *w_hh, *b_ih, *b_hh, *y, *h_last;
  mrl__gru_saved *s;
  mrl_node *nd;
  float *hh;
  int H = l->hidden_size, I = l->input_size, G = 3 * H, t, b, j, wants;
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
  /* input projections of every step at once */
  for (t = 0; t < T * B; t++) memcpy(s->gates + (size_t)t * G, b_ih->data, sizeof(float) * G);
  mrl__xwt(T * B, G, I, x->data, I, w_ih->data, I, s->gates, G);
  for (t = 0; t < T; t++) {
    const float *hp = t ? y->data + (size_t)(t - 1) * BH : h0->data;
    float *hk = s->h_prev + (size_t)t * BH, *gt = s->gates + (size_t)t * B * G;
    float *hn = s->hn + (size_t)t * BH, *yt = y->data + (size_t)t * BH;
    for (b = 0; b < B; b++) {
      float kb = keep ? keep[(size_t)t * B + b] : 1.0f;
      for (j = 0; j < H; j++) hk[(size_t)b * H + j] = hp[(size_t)b * H + j] * kb;
      memcpy(hh + (size_t)b * G, b_hh->data, sizeof(float) * G);
    }
    mrl__xwt(B, G, H, hk, H, w_hh->data, H, hh, G);
    for (b = 0; b < B; b++) {
      float *gb = gt + (size_t)b * G, *hb = hh + (size_t)b * G, *nb = hn + (size_t)b * H;
      const float *hkb = hk + (size_t)b * H;
      float *yb = yt + (size_t)b * H;
      for (j = 0; j < 2 * H; j++) gb[j] += hb[j];
      mrl__sigmoid_n(gb, gb, 2 * H); /* r, z */
      for (j = 0; j < H; j++) {
        nb[j] = hb[2 * H + j];
        gb[2 * H + j] += gb[j] * nb[j];
      }
      mrl__tanh_n(gb + 2 * H, gb + 2 * H, H); /* n */
      for (j = 0; j < H; j++)                 /* torch's form of (1 - z) n + z h */
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
    s->w_t =
        mrl__rnn_small(G, H) ? (float *)mrl_graph_alloc(g, sizeof(float) * (size_t)G * H) : NULL;
    if (!s->dxp || !s->dhh || !s->dh_prev || !s->dhz || (mrl__rnn_small(G, H) && !s->w_t)) {
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

MRL_DEF mrl_tensor *mrl_gru_cell(const mrl_gru_layer *l, mrl_graph *g, mrl_tensor *x, mrl_tensor *h,
                                 const float *keep) {
  return x ? mrl_gru_sequence(l, g, x, 1, x->shape[0], h, keep, NULL) : NULL;
}

/* ---- Elman RNN ---- */

static void mrl__elman_layer_init_k(mrl_elman_layer *l, mrl_params *p, const char *name, int k,
                                    int input, int hidden, mrl_activation nonlinearity,
                                    mrl_init init) {
  int ids[4];
  MRL_ASSERT(nonlinearity == MRL_ACT_TANH || nonlinearity == MRL_ACT_RELU);
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

/* Saved: the masked previous states; the outputs themselves give the
 * activation's derivative (1 - h^2 for tanh, h > 0 for relu). */
typedef struct mrl__elman_saved {
  mrl_tensor *x, *h0, *w_ih, *w_hh, *b_ih, *b_hh;
  const float *keep;
  float *h_prev;  /* [T*B, H] */
  float *dpre;    /* [T*B, H] backward scratch */
  float *dh_prev; /* [B, H] */
  float *w_t;     /* [H, H] W_hh transposed (or NULL) */
  int T, B, relu;
} mrl__elman_saved;

static void mrl__elman_backward(mrl_node *nd) {
  mrl__elman_saved *s = (mrl__elman_saved *)(void *)nd->extra[0];
  mrl_tensor *y = nd->out;
  int T = s->T, B = s->B, H = y->shape[1], I = s->x->shape[1], t, b, j;
  size_t BH = (size_t)B * H, k, N = (size_t)T * B;
  memset(s->dh_prev, 0, sizeof(float) * BH);
  mrl__rnn_transpose(s->w_hh->data, H, H, s->w_t);
  for (t = T - 1; t >= 0; t--) {
    const float *yt = y->data + (size_t)t * BH, *gy = y->grad + (size_t)t * BH;
    float *dp = s->dpre + (size_t)t * BH;
    for (k = 0; k < BH; k++) {
      float d = gy[k] + s->dh_prev[k];
      dp[k] = s->relu ? (yt[k] > 0.0f ? d : 0.0f) : d * (1.0f - yt[k] * yt[k]);
    }
    mrl__rnn_back_h(B, H, H, dp, s->w_hh->data, s->w_t, s->dh_prev);
    if (s->keep)
      for (b = 0; b < B; b++)
        for (j = 0; j < H; j++) s->dh_prev[(size_t)b * H + j] *= s->keep[(size_t)t * B + b];
  }
  if (s->h0->grad)
    for (k = 0; k < BH; k++) s->h0->grad[k] += s->dh_prev[k];
  if (s->x->grad) mrl_gemm(0, 0, T * B, I, H, s->dpre, H, s->w_ih->data, I, 1.0f, s->x->grad, I);
  if (s->w_ih->grad) mrl_gemm(1, 0, H, I, T * B, s->dpre, H, s->x->data, I, 1.0f, s->w_ih->grad, I);
  if (s->w_hh->grad) mrl_gemm(1, 0, H, H, T * B, s->dpre, H, s->h_prev, H, 1.0f, s->w_hh->grad, H);
  mrl__add_col_sums(s->b_ih->grad, s->dpre, N, H);
  mrl__add_col_sums(s->b_hh->grad, s->dpre, N, H);
}

MRL_DEF mrl_tensor *mrl_elman_sequence(const mrl_elman_layer *l, mrl_graph *g, mrl_tensor *x, int T,
                                       int B, mrl_tensor *h0, const float *keep,
                                       mrl_tensor **h_out) {
  mrl_tensor *w_ih, *w_hh, *b_ih, *b_hh, *y, *h_last;
  mrl__elman_saved *s;
  mrl_node *nd;
  int H = l->hidden_size, I = l->input_size, t, b, j, wants, relu = l->nonlinearity == MRL_ACT_RELU;
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
  /* y first holds the pre-activations' input side, b_ih + b_hh + W_ih x */
  for (k = 0; k < N; k++)
    for (j = 0; j < H; j++) y->data[k * H + j] = b_ih->data[j] + b_hh->data[j];
  mrl__xwt(T * B, H, I, x->data, I, w_ih->data, I, y->data, H);
  for (t = 0; t < T; t++) {
    const float *hp = t ? y->data + (size_t)(t - 1) * BH : h0->data;
    float *hk = s->h_prev + (size_t)t * BH, *yt = y->data + (size_t)t * BH;
    for (b = 0; b < B; b++) {
      float kb = keep ? keep[(size_t)t * B + b] : 1.0f;
      for (j = 0; j < H; j++) hk[(size_t)b * H + j] = hp[(size_t)b * H + j] * kb;
    }
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
    s->w_t =
        mrl__rnn_small(H, H) ? (float *)mrl_graph_alloc(g, sizeof(float) * (size_t)H * H) : NULL;
    if (!s->dpre || !s->dh_prev || (mrl__rnn_small(H, H) && !s->w_t)) {
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

MRL_DEF mrl_tensor *mrl_elman_cell(const mrl_elman_layer *l, mrl_graph *g, mrl_tensor *x,
                                   mrl_tensor *h, const float *keep) {
  return x ? mrl_elman_sequence(l, g, x, 1, x->shape[0], h, keep, NULL) : NULL;
}

/* ---- multi-layer stacks ---- */

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

MRL_DEF mrl_tensor *mrl_lstm_forward(const mrl_lstm *m, mrl_graph *g, mrl_tensor *x, int T, int B,
                                     mrl_tensor *h0, mrl_tensor *c0, const float *keep,
                                     mrl_tensor **h_out, mrl_tensor **c_out) {
  mrl_tensor *hs[MRL_RNN_MAX_LAYERS], *cs[MRL_RNN_MAX_LAYERS];
  int k, L = m->num_layers;
  if (h_out) *h_out = NULL;
  if (c_out) *c_out = NULL;
  if (!x || !h0 || !c0) return NULL;
  mrl__stack_check("lstm_forward", h0, L, B, m->hidden_size);
  mrl__stack_check("lstm_forward", c0, L, B, m->hidden_size);
  for (k = 0; k < L && x; k++)
    x = mrl_lstm_sequence(&m->layers[k], g, x, T, B, mrl__state_rows(g, h0, k, B),
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
                                    mrl_tensor *h0, const float *keep, mrl_tensor **h_out) {
  mrl_tensor *hs[MRL_RNN_MAX_LAYERS];
  int k, L = m->num_layers;
  if (h_out) *h_out = NULL;
  if (!x || !h0) return NULL;
  mrl__stack_check("gru_forward", h0, L, B, m->hidden_size);
  for (k = 0; k < L && x; k++)
    x = mrl_gru_sequence(&m->layers[k], g, x, T, B, mrl__state_rows(g, h0, k, B), keep, &hs[k]);
  if (!x) return NULL;
  if (h_out && !(*h_out = mrl__stack_states(g, hs, L))) return NULL;
  return x;
}

MRL_DEF mrl_tensor *mrl_elman_forward(const mrl_elman *m, mrl_graph *g, mrl_tensor *x, int T, int B,
                                      mrl_tensor *h0, const float *keep, mrl_tensor **h_out) {
  mrl_tensor *hs[MRL_RNN_MAX_LAYERS];
  int k, L = m->num_layers;
  if (h_out) *h_out = NULL;
  if (!x || !h0) return NULL;
  mrl__stack_check("elman_forward", h0, L, B, m->hidden_size);
  for (k = 0; k < L && x; k++)
    x = mrl_elman_sequence(&m->layers[k], g, x, T, B, mrl__state_rows(g, h0, k, B), keep, &hs[k]);
  if (!x) return NULL;
  if (h_out && !(*h_out = mrl__stack_states(g, hs, L))) return NULL;
  return x;
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

MRL_DEF mrl_tensor *mrl_categorical_kl(mrl_graph *g, mrl_tensor *log_p, mrl_tensor *log_q) {
  if (!log_p || !log_q) return NULL;
  MRL_SHAPE_CHECK(mrl_tensor_same_shape(log_p, log_q), "categorical_kl", "shapes differ", log_p,
                  log_q);
  return mrl_sum_rows(g, mrl_mul(g, mrl_exp(g, log_p), mrl_sub(g, log_p, log_q)));
}

/* ---- diagonal Gaussian ---- */

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
  mrl_tensor *d, *t1, *vr;
  if (!mean_p || !log_std_p || !mean_q || !log_std_q) return NULL;
  MRL_SHAPE_CHECK(mrl_tensor_same_shape(mean_p, mean_q), "gaussian_kl", "means differ", mean_p,
                  mean_q);
  d = mrl_sub(g, log_std_p, log_std_q); /* log(sp/sq) */
  t1 = mrl_square(g, mrl_mul(g, mrl_sub(g, mean_p, mean_q), mrl_exp(g, mrl_neg(g, log_std_q))));
  vr = mrl_exp(g, mrl_scale(g, d, 2.0f)); /* (sp/sq)^2 */
  return mrl_sum_rows(
      g, mrl_sub(g, mrl_scale(g, mrl_add_scalar(g, mrl_add(g, t1, vr), -1.0f), 0.5f), d));
}

/* ---- tanh-squashed Gaussian ---- */

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

/* ---- mixture of Gaussians ---- */

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

/* ---- heads ---- */

MRL_DEF void mrl_dueling_head_init(mrl_dueling_head *h, mrl_params *p, const char *name,
                                   int in_features, int hidden_size, int num_actions,
                                   mrl_init init) {
  char buf[72];
  int sizes[3], n = hidden_size > 0 ? 3 : 2;
  sizes[0] = in_features;
  sizes[1] = hidden_size > 0 ? hidden_size : 1;
  sizes[n - 1] = 1;
  snprintf(buf, sizeof buf, "%s.value", name);
  mrl_mlp_init(&h->value, p, buf, n, sizes, MRL_ACT_RELU, init, init);
  sizes[n - 1] = num_actions;
  snprintf(buf, sizeof buf, "%s.advantage", name);
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
  char buf[72];
  snprintf(buf, sizeof buf, "%s.pi", name);
  mrl_linear_layer_init(&h->pi, p, buf, in_features, out_dim * num_mixtures, init);
  snprintf(buf, sizeof buf, "%s.mu", name);
  mrl_linear_layer_init(&h->mu, p, buf, in_features, out_dim * num_mixtures, init);
  snprintf(buf, sizeof buf, "%s.log_sigma", name);
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

/* ---- network surgery ---- */

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
    memcpy(mrl_params_tensor(next->params, next->bias)->data,
           mrl_params_tensor(src_next->params, src_next->bias)->data, sizeof(float) * (size_t)O);
  }
  MRL_FREE(cnt);
  return MRL_OK;
}

#ifdef __cplusplus
}
#endif
#endif /* MEMRL_NN_IMPLEMENTATION */
