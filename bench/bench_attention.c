/* GTrXL acting (one step, no gradient) and training (forward + backward over
 * a [T, B] segment).
 *
 *   gtrxl_act_M<M>  one acting step, batch 1, E 64, 4 heads, 2 layers, FF 256,
 *                   memory M, the memory carried; against the PyTorch twin of
 *                   tools/bench_torch.py (the same step with a cached key/value
 *                   window and a precomputed position table, no-grad), read
 *                   from build/bench_torch.txt (ref=none when absent);
 *                   best of several rounds of CPU time, as bench_nn.c.
 *   gtrxl_train_*   forward + backward over T 32, B 16 (no PyTorch twin).
 *
 *   python3 tools/bench_torch.py > build/bench_torch.txt
 *   cc -O2 -o build/bench_attention bench/bench_attention.c -lm
 *   ./build/bench_attention [build/bench_torch.txt] */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#endif
#define MEMRL_IMPLEMENTATION
#include "../memrl_algos.h"

#include <string.h>
#include <time.h>

static const char *torch_file = "build/bench_torch.txt";

/* CPU time of this process in seconds (wall time where there is no such clock). */
static double cpu_seconds(void) {
#if defined(CLOCK_PROCESS_CPUTIME_ID)
  struct timespec ts;
  if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0)
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#endif
  return mrl_wall_seconds();
}

/* The PyTorch figure (milliseconds) named `name` in torch_file, or 0. */
static double torch_ms(const char *name) {
  FILE *f = fopen(torch_file, "r");
  char key[64];
  double ms, found = 0.0;
  if (!f) return 0.0;
  while (fscanf(f, "%63s %lf", key, &ms) == 2)
    if (strcmp(key, name) == 0) found = ms;
  fclose(f);
  return found;
}

static void bench_gtrxl_act(int mem_len) {
  mrl_gtrxl_config cfg = mrl_gtrxl_config_default(); /* E 64, 4 heads, 2 layers, ff 256 */
  mrl_gtrxl m;
  mrl_params p;
  mrl_graph g;
  enum { N = 64, ROUNDS = 7, ITERS = 400 };
  float *x = (float *)malloc(sizeof(float) * N * 64), *st;
  mrl_rng rng = mrl_rng_make(1);
  int i, r, it = 0;
  double best = 1e30, ref;
  char name[64];
  cfg.mem_len = mem_len;
  for (i = 0; i < N * 64; i++) x[i] = mrl_rng_uniform(&rng) - 0.5f;
  mrl_params_init(&p);
  mrl_gtrxl_init(&m, &p, "gtrxl", &cfg);
  mrl_params_finalize(&p, 1);
  st = (float *)calloc((size_t)mrl_gtrxl_state_dim(&m), sizeof(float));
  mrl_graph_init(&g, 1 << 20);
  mrl_graph_set_no_grad(&g, 1);
  /* warm-up fills the memory window, then rounds of ITERS steps */
  for (r = -1; r < ROUNDS; r++) {
    int n = r < 0 ? mem_len + 20 : ITERS;
    double t0 = cpu_seconds(), dt;
    for (i = 0; i < n; i++, it++) {
      mrl_tensor *y = mrl_gtrxl_forward(&m, &g, mrl_tensor_from2(&g, x + (it % N) * 64, 1, 64), 1,
                                        1, NULL, st, st);
      x[(it * 7) % (N * 64)] += 1e-3f * y->data[0];
      mrl_graph_reset(&g);
    }
    dt = (cpu_seconds() - t0) / n;
    if (r >= 0 && dt < best) best = dt;
  }
  snprintf(name, sizeof name, "gtrxl_act_M%d", mem_len);
  ref = torch_ms(name);
  if (ref > 0)
    printf("BENCH name=%s value=%.1f unit=us ref=pytorch-1.13 ref_value=%.1f speedup=%.2f\n", name,
           best * 1e6, ref * 1e3, ref * 1e-3 / best);
  else
    printf("BENCH name=%s value=%.1f unit=us ref=none ref_value=0 speedup=0\n", name, best * 1e6);
  mrl_graph_free(&g);
  mrl_params_free(&p);
  free(st);
  free(x);
}

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

int main(int argc, char **argv) {
  if (argc > 1) torch_file = argv[1];
  bench_gtrxl_act(64);
  bench_gtrxl_act(256);
  bench_gtrxl(64);
  return 0;
}
