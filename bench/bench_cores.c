/* Every memory core of memrl_mem.h through the core interface (mrl_core_forward),
 * input 64 floats, B = 16 environments, against PyTorch twins where they exist
 * (tools/bench_torch.py, the same shapes, one thread):
 *
 *   core_<spec>_act    one acting step: T = 1, no-grad graph, the state of the
 *                      16 environments read and written in place (microseconds)
 *   core_<spec>_train  one training step on a [T = 32, B = 16] sequence from a
 *                      stored state with some episode starts: forward, loss
 *                      sum(y), backward (into the parameters and into x, as
 *                      behind an encoder), Adam step (milliseconds)
 *   core_<spec>_train_vs_fused  the same training time against torch's fused
 *                      sequence call without resets (LSTM, GRU, Elman: a lower
 *                      bound of the twin's cost; the _train twin loops over the
 *                      steps to apply the resets, as CleanRL's agents do)
 *
 * The stored state is what the core holds after one sequence from zeros; the
 * episode starts are the same fixed pattern in the twin. Each figure is the
 * best of ROUNDS rounds (after a warm-up) of the mean CPU time per iteration,
 * as bench_nn.c; the iterations per round are set from a first timing so that
 * a round lasts about ROUND_SECONDS. The PyTorch figures are read from
 * build/bench_torch.txt (written by `make bench`; ref=none when it or the
 * figure is absent); speedup = PyTorch time / memrl time.
 *
 *   python3 tools/bench_torch.py > build/bench_torch.txt
 *   cc -O2 bench/bench_cores.c -o build/bench_cores -lm
 *   ./build/bench_cores [torch file [spec ...]] */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#endif
#define MEMRL_IMPLEMENTATION
#include "../memrl_algos.h"

#include <string.h>
#include <time.h>

#define ROUNDS 7
#define ROUND_SECONDS 0.05
#define T_STEPS 32
#define BATCH 16
#define IN 64

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

/* Best of ROUNDS rounds after a warm-up; milliseconds per iteration. */
static double best_ms(void (*fn)(void *), void *ctx) {
  double best = 1e30, t0 = cpu_seconds(), one;
  int r, i, iters;
  fn(ctx); /* grows the arena */
  fn(ctx);
  one = cpu_seconds() - t0;
  iters = one > 0.0 ? (int)(ROUND_SECONDS / (one / 2)) : 1000;
  if (iters < 1) iters = 1;
  for (i = 0; i < (iters / 10 > 3 ? iters / 10 : 3); i++) fn(ctx);
  for (r = 0; r < ROUNDS; r++) {
    double dt;
    t0 = cpu_seconds();
    for (i = 0; i < iters; i++) fn(ctx);
    dt = (cpu_seconds() - t0) / iters;
    if (dt < best) best = dt;
  }
  return best * 1e3;
}

/* The PyTorch figure (milliseconds) named `name` in the torch file, or 0. */
static double torch_ms(const char *file, const char *name) {
  FILE *f = fopen(file, "r");
  char key[64];
  double ms, found = 0.0;
  if (!f) return 0.0;
  while (fscanf(f, "%63s %lf", key, &ms) == 2)
    if (strcmp(key, name) == 0) found = ms;
  fclose(f);
  return found;
}

/* One BENCH line: memrl's time against the twin's figure `key` in the torch file. */
static void report(const char *file, const char *name, const char *key, const char *twin, double ms,
                   int micro) {
  double scale = micro ? 1e3 : 1.0, ref = twin ? torch_ms(file, key) : 0.0;
  const char *unit = micro ? "us" : "ms";
  if (ref > 0)
    printf("BENCH name=%s value=%.3f unit=%s ref=%s ref_value=%.3f speedup=%.2f\n", name,
           ms * scale, unit, twin, ref * scale, ref / ms);
  else
    printf("BENCH name=%s value=%.3f unit=%s ref=none ref_value=0 speedup=0\n", name, ms * scale,
           unit);
  fflush(stdout);
}

typedef struct core_ctx {
  mrl_params p;
  mrl_core core;
  mrl_graph g;
  mrl_adam_config adam;
  int S;
  float *x;      /* [T*B, IN] */
  float *starts; /* [T*B] */
  float *stored; /* [B, S]: the state the training sequence starts from */
  float *act;    /* [B, S]: the acting state, carried */
  float *act_x;  /* [B, IN] */
} core_ctx;

/* episode starts of the training sequence: about one in 24 rows, the same in the twin */
static int is_start(int t, int b) {
  return (t * 7 + b * 5) % 24 == 3;
}

static void core_ctx_free(core_ctx *s) {
  mrl_graph_free(&s->g);
  mrl_core_free(&s->core);
  mrl_params_free(&s->p);
  free(s->x);
  free(s->starts);
  free(s->stored);
  free(s->act);
  free(s->act_x);
}

static int core_ctx_init(core_ctx *s, const char *spec) {
  mrl_core_config cfg;
  char err[MRL_ERROR_SIZE];
  mrl_rng rng = mrl_rng_make(7);
  int i, t, b;
  mrl_tensor *y;
  memset(s, 0, sizeof *s);
  if (mrl_core_config_parse(spec, &cfg, err, sizeof err) != MRL_OK) {
    fprintf(stderr, "%s\n", err);
    return 0;
  }
  mrl_params_init(&s->p);
  if (mrl_core_init(&s->core, &s->p, "core", IN, &cfg, err, sizeof err) != MRL_OK) {
    fprintf(stderr, "%s: %s\n", spec, err);
    mrl_params_free(&s->p);
    return 0;
  }
  mrl_params_finalize(&s->p, 1);
  mrl_graph_init(&s->g, 1 << 20);
  s->adam = mrl_adam_config_default();
  s->S = mrl_core_state_dim(&s->core);
  s->x = (float *)malloc(sizeof(float) * T_STEPS * BATCH * IN);
  s->starts = (float *)malloc(sizeof(float) * T_STEPS * BATCH);
  s->stored = (float *)calloc((size_t)BATCH * s->S + 1, sizeof(float));
  s->act = (float *)calloc((size_t)BATCH * s->S + 1, sizeof(float));
  s->act_x = (float *)malloc(sizeof(float) * BATCH * IN);
  for (i = 0; i < T_STEPS * BATCH * IN; i++) s->x[i] = mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
  for (i = 0; i < BATCH * IN; i++) s->act_x[i] = mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
  for (t = 0; t < T_STEPS; t++)
    for (b = 0; b < BATCH; b++) s->starts[t * BATCH + b] = (float)is_start(t, b);
  /* the stored state: after one sequence from zeros (no resets) */
  mrl_graph_set_no_grad(&s->g, 1);
  y = mrl_core_forward(&s->core, &s->g, mrl_tensor_from2(&s->g, s->x, T_STEPS * BATCH, IN), T_STEPS,
                       BATCH, NULL, NULL, s->stored, s->S);
  if (!y) {
    core_ctx_free(s);
    return 0;
  }
  memcpy(s->act, s->stored, sizeof(float) * (size_t)BATCH * s->S);
  mrl_graph_reset(&s->g);
  return 1;
}

static void core_act_step(void *ctx) {
  core_ctx *s = (core_ctx *)ctx;
  mrl_graph *g = &s->g;
  mrl_tensor *y;
  mrl_graph_reset(g);
  y = mrl_core_forward(&s->core, g, mrl_tensor_from2(g, s->act_x, BATCH, IN), 1, BATCH, NULL,
                       s->act, s->act, s->S);
  bench_sink = y->data[0];
}

static void core_train_step(void *ctx) {
  core_ctx *s = (core_ctx *)ctx;
  mrl_graph *g = &s->g;
  mrl_tensor *x, *y;
  mrl_graph_reset(g);
  x = mrl_tensor_new2(g, T_STEPS * BATCH, IN, 1); /* x carries a gradient, as behind an encoder */
  memcpy(x->data, s->x, sizeof(float) * T_STEPS * BATCH * IN);
  y = mrl_sum(g,
              mrl_core_forward(&s->core, g, x, T_STEPS, BATCH, s->starts, s->stored, NULL, s->S));
  mrl_params_zero_grad(&s->p);
  mrl_backward(g, y);
  mrl_adam_step(&s->p, &s->adam);
  bench_sink = y->data[0];
}

/* The cores timed and their PyTorch twins (NULL: none). */
static const char *const specs[][2] = {
    {"none", NULL},
    {"frame_stack:4", NULL},
    {"lstm:128", "torch_lstm_loop"},
    {"gru:128", "torch_gru_loop"},
    {"elman:128", "torch_rnn_loop"},
    {"elman:128:2", "torch_rnn_loop"},
    {"gtrxl:64", "torch_gtrxl"},
    {"amrl:128", "torch_amrl"},
    {"fwp:32:4", "torch_fwp"},
    {"dnc:16:16:4", "torch_dnc"},
    {"hcam:64:8:2", "torch_hcam"}, /* 16 chunks of 8, one head */
    {"ftw:64:64:10", "torch_ftw"},
};

static void bench_one(const char *file, const char *spec, const char *twin) {
  static core_ctx s;
  char name[96];
  double ms;
  if (!core_ctx_init(&s, spec)) {
    printf("# core %s skipped: the spec did not build\n", spec);
    return;
  }
  mrl_graph_set_no_grad(&s.g, 1);
  snprintf(name, sizeof name, "core_%s_act", spec);
  report(file, name, name, twin, best_ms(core_act_step, &s), 1);
  mrl_graph_set_no_grad(&s.g, 0);
  snprintf(name, sizeof name, "core_%s_train", spec);
  ms = best_ms(core_train_step, &s);
  report(file, name, name, twin, ms, 0);
  if (twin && strstr(twin, "_loop")) {
    /* the same time against torch's fused sequence call, which cannot reset
     * inside the sequence: a lower bound of what the twin's work costs */
    char key[96], fused[64];
    snprintf(key, sizeof key, "core_%s_train_fused_noreset", spec);
    snprintf(fused, sizeof fused, "%.*s_fused_noreset", (int)(strlen(twin) - 5), twin);
    snprintf(name, sizeof name, "core_%s_train_vs_fused", spec);
    report(file, name, key, fused, ms, 0);
  }
  core_ctx_free(&s);
}

int main(int argc, char **argv) {
  const char *file = argc > 1 ? argv[1] : "build/bench_torch.txt";
  int i, n = (int)(sizeof specs / sizeof specs[0]);
  if (argc > 2) /* the specs named on the command line, with the twin of a listed one */
    for (i = 2; i < argc; i++) {
      const char *twin = NULL;
      int k;
      for (k = 0; k < n; k++)
        if (strcmp(specs[k][0], argv[i]) == 0) twin = specs[k][1];
      bench_one(file, argv[i], twin);
    }
  else
    for (i = 0; i < n; i++) bench_one(file, specs[i][0], specs[i][1]);
  return 0;
}
