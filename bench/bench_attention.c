/* Attention layers: GTrXL acting (one step, no gradient) and training
 * (forward + backward over a [T, B] segment), and a 2-block pre-LN
 * transformer training step. No reference runs here (ref=none); compare with
 * PyTorch by hand (tools/ has no GTrXL twin).
 *
 *   cc -O2 -o bench_attention bench/bench_attention.c -lm && ./bench_attention */
#define MEMRL_IMPLEMENTATION
#include "../memrl_algos.h"

static void bench_gtrxl(int mem_len) {
  mrl_gtrxl_config cfg = mrl_gtrxl_config_default(); /* E 64, 4 heads, 2 layers, ff 256 */
  mrl_gtrxl m;
  mrl_params p;
  mrl_graph g;
  enum { T = 32, B = 16 };
  float *x = (float *)malloc(sizeof(float) * T * B * 64), *st;
  mrl_rng rng = mrl_rng_make(1);
  int i, it, n;
  double t0 = 0.0, dt;
  cfg.mem_len = mem_len;
  for (i = 0; i < T * B * 64; i++) x[i] = mrl_rng_uniform(&rng) - 0.5f;
  mrl_params_init(&p);
  mrl_gtrxl_init(&m, &p, "gtrxl", &cfg);
  mrl_params_finalize(&p, 1);
  st = (float *)calloc((size_t)mrl_gtrxl_state_size(&m) * B, sizeof(float));
  mrl_graph_init(&g, 1 << 20);
  /* acting: one environment, one step at a time, memory carried */
  mrl_graph_set_no_grad(&g, 1);
  n = 500;
  for (it = 0; it < n + 20; it++) {
    mrl_tensor *y;
    if (it == 20) t0 = mrl_wall_seconds();
    y = mrl_gtrxl_forward(&m, &g, mrl_tensor_from2(&g, x + (it % T) * 64, 1, 64), 1, 1, NULL, st,
                          st);
    x[0] += 1e-3f * y->data[0];
    mrl_graph_reset(&g);
  }
  dt = mrl_wall_seconds() - t0;
  printf("BENCH name=gtrxl_act_E64_L2_M%d value=%.1f unit=us ref=none ref_value=0 speedup=0\n",
         mem_len, dt / n * 1e6);
  /* training: forward + backward over T = 32, B = 16 with memory */
  mrl_graph_set_no_grad(&g, 0);
  n = 10;
  for (it = 0; it < n + 2; it++) {
    mrl_tensor *y;
    if (it == 2) t0 = mrl_wall_seconds();
    y = mrl_gtrxl_forward(&m, &g, mrl_tensor_from2(&g, x, T * B, 64), T, B, NULL, st, st);
    mrl_params_zero_grad(&p);
    mrl_backward(&g, mrl_mean(&g, mrl_square(&g, y)));
    mrl_graph_reset(&g);
  }
  dt = mrl_wall_seconds() - t0;
  printf("BENCH name=gtrxl_train_T32_B16_E64_L2_M%d value=%.2f unit=ms ref=none ref_value=0 "
         "speedup=0\n",
         mem_len, dt / n * 1e3);
  mrl_graph_free(&g);
  mrl_params_free(&p);
  free(st);
  free(x);
}

static void bench_blocks(void) {
  enum { T = 32, B = 16, E = 64 };
  mrl_transformer_block blk[2];
  mrl_params p;
  mrl_graph g;
  float *x = (float *)malloc(sizeof(float) * T * B * E);
  int shape[3] = {B, T, E}, i, it, n = 20;
  mrl_rng rng = mrl_rng_make(2);
  double t0 = 0, dt;
  for (i = 0; i < T * B * E; i++) x[i] = mrl_rng_uniform(&rng) - 0.5f;
  mrl_params_init(&p);
  mrl_transformer_block_init(&blk[0], &p, "b0", E, 4, 256, MRL_FFN_RELU);
  mrl_transformer_block_init(&blk[1], &p, "b1", E, 4, 256, MRL_FFN_RELU);
  mrl_params_finalize(&p, 1);
  mrl_graph_init(&g, 1 << 20);
  for (it = 0; it < n + 2; it++) {
    mrl_tensor *h = mrl_tensor_from(&g, x, 3, shape), *mask = mrl_attn_causal_mask(&g, T, 0);
    if (it == 2) t0 = mrl_wall_seconds();
    h = mrl_transformer_block_forward(&blk[0], &g, h, NULL, mask);
    h = mrl_transformer_block_forward(&blk[1], &g, h, NULL, mask);
    mrl_params_zero_grad(&p);
    mrl_backward(&g, mrl_mean(&g, mrl_square(&g, h)));
    mrl_graph_reset(&g);
  }
  dt = mrl_wall_seconds() - t0;
  printf("BENCH name=preln_2block_train_T32_B16_E64 value=%.2f unit=ms ref=none ref_value=0 "
         "speedup=0\n",
         dt / n * 1e3);
  mrl_graph_free(&g);
  mrl_params_free(&p);
  free(x);
}

int main(void) {
  bench_gtrxl(64);
  bench_blocks();
  return 0;
}
