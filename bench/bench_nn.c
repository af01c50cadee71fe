/* Networks of memrl_nn.h against PyTorch 1.13 (tools/bench_torch.py, the same
 * networks, shapes, losses and optimiser, single-threaded):
 *
 *   nn_lstm_train  LSTM input 8 -> hidden 64, T = 32, batch 16: forward over
 *                  the sequence, loss mean(y^2), backward, Adam step
 *   nn_gru_train   the same with a GRU
 *   nn_mlp_train   MLP 4-64-64-3 (tanh), batch 128, MSE loss, backward, Adam
 *   nn_mlp_act     one observation through that MLP, no-grad graph
 *   nn_lstm_act    one LSTM-cell step (8 -> 64, batch 1), no-grad graph
 *   nn_gru_act     one GRU-cell step
 *   nn_transformer2_train  two pre-LN transformer blocks (E 64, 4 heads, FF 256)
 *                  over [B 16, T 32] with a causal mask, mean(y^2), backward, Adam
 *   nn_lstm_H<n>_fb  LSTM 64 -> H (256, 512), T 32, batch 16: forward, mean(y^2),
 *                  backward, no optimiser, against PyTorch
 *   nn_lstm_H<n>_fb_gflops  the same in GFLOP/s (counting the six products),
 *                  beside mrl_gemm alone on the same products (one call each,
 *                  as before the LSTM prepacked W_hh) and beside mrl_gemm on
 *                  the square H x H x H product
 *   nn_gtrxl_train GTrXL (2 layers, E 64, 4 heads, FF 256, memory 64), segment
 *                  T 32 x B 16: forward, mean(y^2), backward
 *
 * Each figure is the best of several rounds (after a warm-up) of the mean time
 * per iteration, in CPU time of the process (both here and in the PyTorch
 * twin), so that other jobs on a shared machine do not count. The PyTorch figures are read from
 * build/bench_torch.txt, which `make bench` writes in the same run when python3 can import torch
 * (ref=none when the file is absent); speedup = PyTorch time / memrl time.
 *
 *   make bench      or, by hand:
 *   python3 tools/bench_torch.py > build/bench_torch.txt
 *   cc -O2 bench/bench_nn.c -o build/bench_nn -lm && ./build/bench_nn [file] */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#endif
#define MEMRL_IMPLEMENTATION
#include "../memrl_algos.h"

#include <string.h>
#include <time.h>

#define ROUNDS 7
#define T_STEPS 32
#define BATCH 16
#define IN 8
#define HID 64

static volatile float bench_sink;

/* CPU time of this process in seconds (wall time where there is no such clock). */
static double cpu_seconds(void) {
#if defined(CLOCK_PROCESS_CPUTIME_ID)
  struct timespec ts;
  if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0)
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#endif
  return mrl_wall_seconds();
}

/* Best of ROUNDS rounds of `iters` iterations, after a warm-up; milliseconds. */
static double best_ms(void (*fn)(void *), void *ctx, int iters) {
  double best = 1e30;
  int r, i;
  for (i = 0; i < (iters / 10 > 3 ? iters / 10 : 3); i++) fn(ctx);
  for (r = 0; r < ROUNDS; r++) {
    double t0 = cpu_seconds(), dt;
    for (i = 0; i < iters; i++) fn(ctx);
    dt = (cpu_seconds() - t0) / iters;
    if (dt < best) best = dt;
  }
  return best * 1e3;
}

/* ---- the PyTorch reference figures ---- */

#define MAX_REFS 16
typedef struct refs {
  char name[MAX_REFS][48];
  double ms[MAX_REFS];
  int n;
} refs;

static void refs_load(refs *r, const char *path) {
  FILE *f = fopen(path, "r");
  r->n = 0;
  if (!f) return;
  while (r->n < MAX_REFS && fscanf(f, "%47s %lf", r->name[r->n], &r->ms[r->n]) == 2) r->n++;
  fclose(f);
}

static const char *only; /* argv[2]: run only the figures whose name contains it */

static int wanted(const char *name) {
  return !only || strstr(name, only) != NULL;
}

static void report(const refs *r, const char *name, double ms, int micro) {
  double scale = micro ? 1e3 : 1.0;
  const char *unit = micro ? "us" : "ms";
  int i;
  for (i = 0; i < r->n; i++)
    if (strcmp(r->name[i], name) == 0 && r->ms[i] > 0) {
      printf("BENCH name=%s value=%.3f unit=%s ref=pytorch-1.13 ref_value=%.3f speedup=%.2f\n",
             name, ms * scale, unit, r->ms[i] * scale, r->ms[i] / ms);
      return;
    }
  printf("BENCH name=%s value=%.3f unit=%s ref=none ref_value=0 speedup=0\n", name, ms * scale,
         unit);
}

/* ---- recurrent training: forward over T steps, mean(y^2), backward, Adam ---- */

typedef struct rnn_ctx {
  int gru;
  mrl_params p;
  mrl_lstm_layer lstm;
  mrl_gru_layer grucell;
  mrl_graph g;
  mrl_adam_config adam;
  float x[T_STEPS * BATCH * IN], zeros[BATCH * HID], obs[IN];
  float h[HID], c[HID]; /* acting state, batch 1 */
} rnn_ctx;

static void rnn_init(rnn_ctx *s, int gru) {
  mrl_rng rng = mrl_rng_make(3);
  int i;
  memset(s, 0, sizeof *s);
  s->gru = gru;
  mrl_params_init(&s->p);
  if (gru)
    mrl_gru_layer_init(&s->grucell, &s->p, "gru", IN, HID, mrl_init_default());
  else
    mrl_lstm_layer_init(&s->lstm, &s->p, "lstm", IN, HID, mrl_init_default(), 0.0f);
  mrl_params_finalize(&s->p, 1);
  mrl_graph_init(&s->g, 1 << 20);
  s->adam = mrl_adam_config_default();
  for (i = 0; i < T_STEPS * BATCH * IN; i++) s->x[i] = mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
  for (i = 0; i < IN; i++) s->obs[i] = mrl_rng_uniform(&rng);
}

static void rnn_train_step(void *ctx) {
  rnn_ctx *s = (rnn_ctx *)ctx;
  mrl_graph *g = &s->g;
  mrl_tensor *x, *h0, *y;
  mrl_graph_reset(g);
  x = mrl_tensor_from2(g, s->x, T_STEPS * BATCH, IN);
  h0 = mrl_tensor_from2(g, s->zeros, BATCH, HID);
  if (s->gru)
    y = mrl_gru_sequence(&s->grucell, g, x, T_STEPS, BATCH, h0, NULL, NULL);
  else
    y = mrl_lstm_sequence(&s->lstm, g, x, T_STEPS, BATCH, h0,
                          mrl_tensor_from2(g, s->zeros, BATCH, HID), NULL, NULL, NULL);
  y = mrl_mean(g, mrl_square(g, y));
  mrl_params_zero_grad(&s->p);
  mrl_backward(g, y);
  mrl_adam_step(&s->p, &s->adam);
  bench_sink = y->data[0];
}

/* one cell step, batch 1, no-grad graph; the state is carried in s->h, s->c */
static void rnn_act_step(void *ctx) {
  rnn_ctx *s = (rnn_ctx *)ctx;
  mrl_graph *g = &s->g;
  mrl_tensor *x, *h, *c, *h2, *c2;
  mrl_graph_reset(g);
  x = mrl_tensor_from2(g, s->obs, 1, IN);
  h = mrl_tensor_from2(g, s->h, 1, HID);
  if (s->gru) {
    h2 = mrl_gru_cell(&s->grucell, g, x, h, NULL);
  } else {
    c = mrl_tensor_from2(g, s->c, 1, HID);
    mrl_lstm_cell(&s->lstm, g, x, h, c, NULL, &h2, &c2);
    memcpy(s->c, c2->data, sizeof s->c);
  }
  memcpy(s->h, h2->data, sizeof s->h);
  bench_sink = s->h[0];
}

/* ---- MLP 4-64-64-3 ---- */

typedef struct mlp_ctx {
  mrl_params p;
  mrl_mlp net;
  mrl_graph g;
  mrl_adam_config adam;
  float x[128 * 4], target[128 * 3];
} mlp_ctx;

static void mlp_ctx_init(mlp_ctx *s) {
  static const int sizes[4] = {4, 64, 64, 3};
  mrl_rng rng = mrl_rng_make(5);
  int i;
  mrl_params_init(&s->p);
  mrl_mlp_init(&s->net, &s->p, "mlp", 4, sizes, MRL_ACT_TANH, mrl_init_default(),
               mrl_init_default());
  mrl_params_finalize(&s->p, 2);
  mrl_graph_init(&s->g, 1 << 20);
  s->adam = mrl_adam_config_default();
  for (i = 0; i < 128 * 4; i++) s->x[i] = mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
  for (i = 0; i < 128 * 3; i++) s->target[i] = mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
}

static void mlp_train_step(void *ctx) {
  mlp_ctx *s = (mlp_ctx *)ctx;
  mrl_graph *g = &s->g;
  mrl_tensor *out, *loss;
  mrl_graph_reset(g);
  out = mrl_mlp_forward(&s->net, g, mrl_tensor_from2(g, s->x, 128, 4));
  loss = mrl_mse_loss(g, out, mrl_tensor_from2(g, s->target, 128, 3), MRL_LOSS_MEAN);
  mrl_params_zero_grad(&s->p);
  mrl_backward(g, loss);
  mrl_adam_step(&s->p, &s->adam);
  bench_sink = loss->data[0];
}

static void mlp_act_step(void *ctx) {
  mlp_ctx *s = (mlp_ctx *)ctx;
  mrl_graph *g = &s->g;
  mrl_tensor *out;
  mrl_graph_reset(g);
  out = mrl_mlp_forward(&s->net, g, mrl_tensor_from2(g, s->x, 1, 4));
  bench_sink = out->data[0];
}

/* ---- two pre-LN transformer blocks (E 64, 4 heads, FF 256, ReLU) over
 * [B 16, T 32] with a causal mask: forward, mean(y^2), backward, Adam ---- */

enum { TF_T = 32, TF_B = 16, TF_E = 64 };
typedef struct tf_ctx {
  mrl_params p;
  mrl_transformer_block blk[2];
  mrl_graph g;
  mrl_adam_config adam;
  float x[TF_B * TF_T * TF_E];
} tf_ctx;

static void tf_ctx_init(tf_ctx *s) {
  mrl_rng rng = mrl_rng_make(5);
  int i;
  mrl_params_init(&s->p);
  mrl_transformer_block_init(&s->blk[0], &s->p, "layers.0", TF_E, 4, 256, MRL_FFN_RELU);
  mrl_transformer_block_init(&s->blk[1], &s->p, "layers.1", TF_E, 4, 256, MRL_FFN_RELU);
  mrl_params_finalize(&s->p, 4);
  mrl_graph_init(&s->g, 1 << 22);
  s->adam = mrl_adam_config_default();
  for (i = 0; i < TF_B * TF_T * TF_E; i++) s->x[i] = mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
}

static void tf_train_step(void *ctx) {
  tf_ctx *s = (tf_ctx *)ctx;
  mrl_graph *g = &s->g;
  int shape[3] = {TF_B, TF_T, TF_E};
  mrl_tensor *h, *mask, *loss;
  mrl_graph_reset(g);
  h = mrl_tensor_from(g, s->x, 3, shape);
  mask = mrl_attn_causal_mask(g, TF_T, 0);
  h = mrl_transformer_block_forward(&s->blk[0], g, h, NULL, mask);
  h = mrl_transformer_block_forward(&s->blk[1], g, h, NULL, mask);
  loss = mrl_mean(g, mrl_square(g, h));
  mrl_params_zero_grad(&s->p);
  mrl_backward(g, loss);
  mrl_adam_step(&s->p, &s->adam);
  bench_sink = loss->data[0];
}

/* ---- wide LSTM training (issue 14): forward + backward at hidden H, against
 * mrl_gemm alone on the same products ---- */

enum { LW_T = 32, LW_B = 16, LW_I = 64 };
typedef struct lstm_wide_ctx {
  int H;
  mrl_params p;
  mrl_lstm_layer lstm;
  mrl_graph g;
  mrl_adam_config adam;
  float *x, *zeros;
  /* the gemm-only twin: the same matrices, shapes and call sequence */
  float *gates, *hbuf, *dpre, *dh, *dx, *dwih, *dwhh;
} lstm_wide_ctx;

static float *bench_floats(size_t n, mrl_rng *rng) {
  float *v = (float *)calloc(n, sizeof(float));
  size_t i;
  for (i = 0; rng && i < n; i++) v[i] = mrl_rng_uniform_range(rng, -0.1f, 0.1f);
  return v;
}

static void lstm_wide_init(lstm_wide_ctx *s, int H) {
  mrl_rng rng = mrl_rng_make(11);
  size_t N = (size_t)LW_T * LW_B, G = 4 * (size_t)H;
  s->H = H;
  mrl_params_init(&s->p);
  mrl_lstm_layer_init(&s->lstm, &s->p, "lstm", LW_I, H, mrl_init_default(), 0.0f);
  mrl_params_finalize(&s->p, 1);
  mrl_graph_init(&s->g, 1 << 24);
  s->adam = mrl_adam_config_default();
  s->x = bench_floats(N * LW_I, &rng);
  s->zeros = bench_floats((size_t)LW_B * H, NULL);
  s->gates = bench_floats(N * G, &rng);
  s->hbuf = bench_floats(N * H, &rng);
  s->dpre = bench_floats(N * G, &rng);
  s->dh = bench_floats((size_t)LW_B * H, NULL);
  s->dx = bench_floats(N * LW_I, NULL);
  s->dwih = bench_floats(G * LW_I, NULL);
  s->dwhh = bench_floats(G * H, NULL);
}

static void lstm_wide_free(lstm_wide_ctx *s) {
  mrl_graph_free(&s->g);
  mrl_params_free(&s->p);
  free(s->x), free(s->zeros), free(s->gates), free(s->hbuf), free(s->dpre), free(s->dh);
  free(s->dx), free(s->dwih), free(s->dwhh);
}

/* forward over T steps, mean(y^2), backward (no optimiser: its cost is
 * elementwise and the same in any implementation) */
static void lstm_wide_step(void *ctx) {
  lstm_wide_ctx *s = (lstm_wide_ctx *)ctx;
  mrl_graph *g = &s->g;
  mrl_tensor *y;
  mrl_graph_reset(g);
  y = mrl_lstm_sequence(&s->lstm, g, mrl_tensor_from2(g, s->x, LW_T * LW_B, LW_I), LW_T, LW_B,
                        mrl_tensor_from2(g, s->zeros, LW_B, s->H),
                        mrl_tensor_from2(g, s->zeros, LW_B, s->H), NULL, NULL, NULL);
  y = mrl_mean(g, mrl_square(g, y));
  mrl_params_zero_grad(&s->p);
  mrl_backward(g, y);
  bench_sink = y->data[0];
}

/* The products of lstm_wide_step alone, in the same order and shapes: the
 * input projection, T recurrent steps h W_hhᵀ, T reverse steps dpre W_hh,
 * then dx, dW_ih and dW_hh over all steps. */
static void lstm_wide_gemms(void *ctx) {
  lstm_wide_ctx *s = (lstm_wide_ctx *)ctx;
  int H = s->H, G = 4 * H, N = LW_T * LW_B, t;
  const float *w_ih = mrl_params_tensor(&s->p, s->lstm.weight_ih)->data;
  const float *w_hh = mrl_params_tensor(&s->p, s->lstm.weight_hh)->data;
  mrl_gemm(0, 1, N, G, LW_I, s->x, LW_I, w_ih, LW_I, 1.0f, s->gates, G);
  for (t = 0; t < LW_T; t++)
    mrl_gemm(0, 1, LW_B, G, H, s->hbuf + (size_t)t * LW_B * H, H, w_hh, H, 1.0f,
             s->gates + (size_t)t * LW_B * G, G);
  for (t = LW_T - 1; t >= 0; t--)
    mrl_gemm(0, 0, LW_B, H, G, s->dpre + (size_t)t * LW_B * G, G, w_hh, H, 0.0f, s->dh, H);
  mrl_gemm(0, 0, N, LW_I, G, s->dpre, G, w_ih, LW_I, 1.0f, s->dx, LW_I);
  mrl_gemm(1, 0, G, LW_I, N, s->dpre, G, s->x, LW_I, 1.0f, s->dwih, LW_I);
  mrl_gemm(1, 0, G, H, N, s->dpre, G, s->hbuf, H, 1.0f, s->dwhh, H);
  bench_sink = s->dh[0];
}

/* mrl_gemm on the square H x H x H product A B, the reference rate the
 * wide LSTM is measured against (issue 14: at least 80% of it) */
typedef struct square_ctx {
  int n;
  float *a, *b, *c;
} square_ctx;

static void square_gemm(void *ctx) {
  square_ctx *s = (square_ctx *)ctx;
  mrl_gemm(0, 0, s->n, s->n, s->n, s->a, s->n, s->b, s->n, 0.0f, s->c, s->n);
  bench_sink = s->c[0];
}

static void bench_lstm_wide(const refs *r, int H) {
  static lstm_wide_ctx s;
  double flops = 2.0 * LW_T * LW_B * 4.0 * H * (3.0 * LW_I + 3.0 * H), ms, gms, sms;
  square_ctx sq;
  mrl_rng rng = mrl_rng_make(5);
  char name[64];
  lstm_wide_init(&s, H);
  sq.n = H;
  sq.a = bench_floats((size_t)H * H, &rng), sq.b = bench_floats((size_t)H * H, &rng);
  sq.c = bench_floats((size_t)H * H, NULL);
  ms = best_ms(lstm_wide_step, &s, 10);
  gms = best_ms(lstm_wide_gemms, &s, 10);
  sms = best_ms(square_gemm, &sq, 20);
  snprintf(name, sizeof name, "nn_lstm_H%d_fb_gflops", H);
  printf("BENCH name=%s value=%.1f unit=GFLOP/s ref=mrl_gemm_same_shapes ref_value=%.1f "
         "speedup=%.2f\n",
         name, flops / ms * 1e-6, flops / gms * 1e-6, gms / ms);
  snprintf(name, sizeof name, "nn_lstm_H%d_fb", H);
  report(r, name, ms, 0);
  snprintf(name, sizeof name, "nn_lstm_H%d_fb_gflops", H);
  /* speedup here: the LSTM's rate over the square product's */
  printf("BENCH name=%s value=%.1f unit=GFLOP/s ref=mrl_gemm_%dx%dx%d ref_value=%.1f "
         "speedup=%.2f\n",
         name, flops / ms * 1e-6, H, H, H, 2.0 * H * H * H / sms * 1e-6,
         flops / ms / (2.0 * H * H * H / sms));
  free(sq.a), free(sq.b), free(sq.c);
  lstm_wide_free(&s);
}

/* ---- GTrXL training segment (issue 14): 2 layers, E 64, 4 heads, FF 256,
 * memory 64 (full after the first call), T 32 x B 16: forward, mean(y^2),
 * backward, no optimiser (the PyTorch twin is the layer written for the
 * reference fixtures, tools/make_ref.py) ---- */

enum { GX_T = 32, GX_B = 16 };
typedef struct gtrxl_ctx {
  mrl_params p;
  mrl_gtrxl m;
  mrl_graph g;
  float *x, *state;
} gtrxl_ctx;

static void gtrxl_ctx_init(gtrxl_ctx *s) {
  mrl_gtrxl_config cfg = mrl_gtrxl_config_default(); /* E 64, 4 heads, 2 layers, FF 256, M 64 */
  mrl_rng rng = mrl_rng_make(1);
  int i, n = GX_T * GX_B * cfg.embed_dim;
  mrl_params_init(&s->p);
  mrl_gtrxl_init(&s->m, &s->p, "gtrxl", &cfg);
  mrl_params_finalize(&s->p, 1);
  mrl_graph_init(&s->g, 1 << 24);
  s->x = (float *)malloc(sizeof(float) * (size_t)n);
  s->state = (float *)calloc((size_t)mrl_gtrxl_state_dim(&s->m) * GX_B, sizeof(float));
  for (i = 0; i < n; i++) s->x[i] = mrl_rng_uniform(&rng) - 0.5f;
}

static void gtrxl_train_step(void *ctx) {
  gtrxl_ctx *s = (gtrxl_ctx *)ctx;
  mrl_graph *g = &s->g;
  mrl_tensor *y;
  mrl_graph_reset(g);
  y = mrl_gtrxl_forward(&s->m, g, mrl_tensor_from2(g, s->x, GX_T * GX_B, s->m.cfg.embed_dim), GX_T,
                        GX_B, NULL, s->state, s->state);
  y = mrl_mean(g, mrl_square(g, y));
  mrl_params_zero_grad(&s->p);
  mrl_backward(g, y);
  bench_sink = y->data[0];
}

int main(int argc, char **argv) {
  static rnn_ctx rnn;
  static mlp_ctx mlp;
  static tf_ctx tf;
  refs r;
  refs_load(&r, argc > 1 ? argv[1] : "build/bench_torch.txt");
  only = argc > 2 ? argv[2] : NULL;

  rnn_init(&rnn, 0);
  if (wanted("nn_lstm_train")) report(&r, "nn_lstm_train", best_ms(rnn_train_step, &rnn, 100), 0);
  mrl_graph_set_no_grad(&rnn.g, 1);
  if (wanted("nn_lstm_act")) report(&r, "nn_lstm_act", best_ms(rnn_act_step, &rnn, 100000), 1);
  mrl_graph_free(&rnn.g);
  mrl_params_free(&rnn.p);

  rnn_init(&rnn, 1);
  if (wanted("nn_gru_train")) report(&r, "nn_gru_train", best_ms(rnn_train_step, &rnn, 100), 0);
  mrl_graph_set_no_grad(&rnn.g, 1);
  if (wanted("nn_gru_act")) report(&r, "nn_gru_act", best_ms(rnn_act_step, &rnn, 100000), 1);
  mrl_graph_free(&rnn.g);
  mrl_params_free(&rnn.p);

  mlp_ctx_init(&mlp);
  if (wanted("nn_mlp_train")) report(&r, "nn_mlp_train", best_ms(mlp_train_step, &mlp, 1000), 0);
  mrl_graph_set_no_grad(&mlp.g, 1);
  if (wanted("nn_mlp_act")) report(&r, "nn_mlp_act", best_ms(mlp_act_step, &mlp, 100000), 1);
  mrl_graph_free(&mlp.g);
  mrl_params_free(&mlp.p);

  if (wanted("nn_lstm_H256")) bench_lstm_wide(&r, 256);
  if (wanted("nn_lstm_H512")) bench_lstm_wide(&r, 512);

  tf_ctx_init(&tf);
  if (wanted("nn_transformer2_train"))
    report(&r, "nn_transformer2_train", best_ms(tf_train_step, &tf, 20), 0);
  mrl_graph_free(&tf.g);
  mrl_params_free(&tf.p);

  if (wanted("nn_gtrxl_train")) {
    static gtrxl_ctx gx;
    gtrxl_ctx_init(&gx);
    report(&r, "nn_gtrxl_train", best_ms(gtrxl_train_step, &gx, 10), 0);
    mrl_graph_free(&gx.g);
    mrl_params_free(&gx.p);
    free(gx.x);
    free(gx.state);
  }
  return 0;
}
