/* GTrXL acting (one step, no gradient) and training (forward + backward over
 * a [T, B] segment). No reference runs here (ref=none: PyTorch has no GTrXL);
 * the pre-LN transformer block is compared with PyTorch in bench_nn.c.
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
  st = (float *)calloc((size_t)mrl_gtrxl_state_dim(&m) * B, sizeof(float));
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

int main(void) {
  bench_gtrxl(64);
  return 0;
}
