/* Fused layers and memory ops of memrl_tensor.h against direct loops.
 *
 * conv2d: the Nature-DQN encoder (4x84x84 -> 32 8x8/4 -> 64 4x4/2 -> 64 3x3/1)
 * at batch 32, forward and forward + backward, im2col + mrl_gemm against the
 * textbook 7-deep loop (the reference backward is the same loops run for the
 * input and weight gradients). Memory lookups: 32 keys against a 16384 x 64
 * memory, mrl_sq_distances and mrl_cosine_similarity forward against a
 * direct float loop. Each figure is the best of several rounds after a
 * warm-up, in milliseconds; speedup = reference time / memrl time.
 * Built with -fopenmp, it also reports the conv forward + backward speedup of
 * 2 threads over 1 (images are split over threads).
 * cc -std=c99 -O2 bench/bench_fused.c -o bench_fused -lm && ./bench_fused */
#define _POSIX_C_SOURCE 199309L
#define MEMRL_TENSOR_IMPLEMENTATION
#include "../memrl_tensor.h"

#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static volatile float bench_sink;

static void report(const char *name, double ms, const char *ref, double ref_ms) {
  if (ref)
    printf("BENCH name=%s value=%.3f unit=ms ref=%s ref_value=%.3f speedup=%.2f\n", name, ms, ref,
           ref_ms, ref_ms / ms);
  else
    printf("BENCH name=%s value=%.3f unit=ms ref=none ref_value=0 speedup=0\n", name, ms);
}

/* ---- the encoder ---- */

typedef struct layer {
  int c, o, k, s, h, w, oh, ow;
  float *wt, *gw, *b, *gb;
} layer;

#define BATCH 32
static layer net[3];
static float *input;

static void net_init(void) {
  static const int spec[3][4] = {{4, 32, 8, 4}, {32, 64, 4, 2}, {64, 64, 3, 1}};
  int h = 84, l, i;
  mrl_rng rng = mrl_rng_make(7);
  input = (float *)malloc(sizeof(float) * BATCH * 4 * 84 * 84);
  for (i = 0; i < BATCH * 4 * 84 * 84; i++) input[i] = mrl_rng_uniform(&rng);
  for (l = 0; l < 3; l++) {
    layer *L = &net[l];
    int nw;
    L->c = spec[l][0];
    L->o = spec[l][1];
    L->k = spec[l][2];
    L->s = spec[l][3];
    L->h = L->w = h;
    L->oh = L->ow = (h - L->k) / L->s + 1;
    h = L->oh;
    nw = L->o * L->c * L->k * L->k;
    L->wt = (float *)malloc(sizeof(float) * (size_t)nw);
    L->gw = (float *)calloc((size_t)nw, sizeof(float));
    L->b = (float *)calloc((size_t)L->o, sizeof(float));
    L->gb = (float *)calloc((size_t)L->o, sizeof(float));
    for (i = 0; i < nw; i++) L->wt[i] = mrl_rng_uniform_range(&rng, -0.05f, 0.05f);
  }
}

/* memrl: three conv2d ops, a mean, and optionally backward */
static double memrl_encoder(mrl_graph *g, int backward) {
  int xs[4] = {BATCH, 4, 84, 84}, l;
  mrl_tensor x = mrl_tensor_make(input, NULL, 4, xs), w[3], b[3], *y = &x;
  double t0 = now_s();
  mrl_graph_reset(g);
  for (l = 0; l < 3; l++) {
    int ws[4], bs[1];
    ws[0] = net[l].o;
    ws[1] = net[l].c;
    ws[2] = ws[3] = net[l].k;
    bs[0] = net[l].o;
    w[l] = mrl_tensor_make(net[l].wt, net[l].gw, 4, ws);
    b[l] = mrl_tensor_make(net[l].b, net[l].gb, 1, bs);
    y = mrl_conv2d(g, y, &w[l], &b[l], net[l].s, 0);
  }
  y = mrl_mean(g, y);
  if (backward) mrl_backward(g, y);
  bench_sink = y ? y->data[0] : 0.0f;
  return now_s() - t0;
}

/* reference: direct loops, activations kept for the backward pass */
static float *acts[4], *grads[4];

static void direct_forward(const layer *L, const float *x, float *y) {
  int n, o, yo, xo, c, i, j;
  for (n = 0; n < BATCH; n++)
    for (o = 0; o < L->o; o++)
      for (yo = 0; yo < L->oh; yo++)
        for (xo = 0; xo < L->ow; xo++) {
          float acc = L->b[o];
          for (c = 0; c < L->c; c++)
            for (i = 0; i < L->k; i++)
              for (j = 0; j < L->k; j++)
                acc += x[((size_t)(n * L->c + c) * L->h + yo * L->s + i) * L->w + xo * L->s + j] *
                       L->wt[((o * L->c + c) * L->k + i) * L->k + j];
          y[((size_t)(n * L->o + o) * L->oh + yo) * L->ow + xo] = acc;
        }
}

static void direct_backward(const layer *L, const float *x, const float *gy, float *gx) {
  int n, o, yo, xo, c, i, j;
  if (gx) memset(gx, 0, sizeof(float) * (size_t)BATCH * L->c * L->h * L->w);
  for (n = 0; n < BATCH; n++)
    for (o = 0; o < L->o; o++)
      for (yo = 0; yo < L->oh; yo++)
        for (xo = 0; xo < L->ow; xo++) {
          float gv = gy[((size_t)(n * L->o + o) * L->oh + yo) * L->ow + xo];
          L->gb[o] += gv;
          for (c = 0; c < L->c; c++)
            for (i = 0; i < L->k; i++)
              for (j = 0; j < L->k; j++) {
                size_t xi = ((size_t)(n * L->c + c) * L->h + yo * L->s + i) * L->w + xo * L->s + j;
                size_t wi = (size_t)((o * L->c + c) * L->k + i) * L->k + j;
                L->gw[wi] += gv * x[xi];
                if (gx) gx[xi] += gv * L->wt[wi];
              }
        }
}

static double direct_encoder(int backward) {
  int l, i, last;
  double t0 = now_s();
  acts[0] = input;
  for (l = 0; l < 3; l++) direct_forward(&net[l], acts[l], acts[l + 1]);
  last = BATCH * net[2].o * net[2].oh * net[2].ow;
  if (backward) {
    for (i = 0; i < last; i++) grads[3][i] = 1.0f / (float)last;
    for (l = 2; l >= 0; l--) direct_backward(&net[l], acts[l], grads[l + 1], l ? grads[l] : NULL);
  }
  bench_sink = acts[3][0];
  return now_s() - t0;
}

static double best_of(double (*fn)(mrl_graph *, int), mrl_graph *g, int backward, int rounds) {
  double best = 1e30;
  int r;
  fn(g, backward); /* warm-up: the arena grows to its high-water mark */
  for (r = 0; r < rounds; r++) {
    double t = fn(g, backward);
    if (t < best) best = t;
  }
  return best;
}

static double best_direct(int backward, int rounds) {
  double best = 1e30;
  int r;
  for (r = 0; r < rounds; r++) {
    double t = direct_encoder(backward);
    if (t < best) best = t;
  }
  return best;
}

/* ---- memory lookups ---- */

#define KEYS 32
#define SLOTS 16384
#define DIM 64

static double lookup(mrl_graph *g, const float *k, const float *m, int cosine) {
  int ks[2] = {KEYS, DIM}, ms[2] = {SLOTS, DIM};
  mrl_tensor K = mrl_tensor_make((float *)k, NULL, 2, ks),
             M = mrl_tensor_make((float *)m, NULL, 2, ms);
  mrl_tensor *y;
  double t0 = now_s();
  mrl_graph_reset(g);
  y = cosine ? mrl_cosine_similarity(g, &K, &M, 1e-8f) : mrl_sq_distances(g, &K, &M);
  bench_sink = y ? y->data[0] : 0.0f;
  return now_s() - t0;
}

static double lookup_direct(const float *k, const float *m, float *out, int cosine) {
  int i, j, d;
  double t0 = now_s();
  for (i = 0; i < KEYS; i++)
    for (j = 0; j < SLOTS; j++) {
      float acc = 0.0f, na = 0.0f, nb = 0.0f;
      const float *a = k + (size_t)i * DIM, *b = m + (size_t)j * DIM;
      if (cosine) {
        for (d = 0; d < DIM; d++) {
          acc += a[d] * b[d];
          na += a[d] * a[d];
          nb += b[d] * b[d];
        }
        out[(size_t)i * SLOTS + j] = acc / (sqrtf(na) * sqrtf(nb));
      } else {
        for (d = 0; d < DIM; d++) acc += (a[d] - b[d]) * (a[d] - b[d]);
        out[(size_t)i * SLOTS + j] = acc;
      }
    }
  bench_sink = out[0];
  return now_s() - t0;
}

int main(void) {
  mrl_graph g;
  int l, r;
  double t_f, t_fb, r_f, r_fb;
  float *keys, *mem, *out;
  mrl_rng rng = mrl_rng_make(3);
  net_init();
  for (l = 0; l < 3; l++) {
    size_t n = (size_t)BATCH * net[l].o * net[l].oh * net[l].ow;
    acts[l + 1] = (float *)malloc(sizeof(float) * n);
    grads[l + 1] = (float *)malloc(sizeof(float) * n);
  }
  grads[0] = NULL;
  for (l = 1; l < 3; l++)
    grads[l] = (float *)malloc(sizeof(float) * (size_t)BATCH * net[l].c * net[l].h * net[l].w);
  mrl_graph_init(&g, 1 << 20);
#ifdef _OPENMP
  omp_set_num_threads(1);
#endif
  t_f = best_of(memrl_encoder, &g, 0, 5);
  t_fb = best_of(memrl_encoder, &g, 1, 5);
  r_f = best_direct(0, 2);
  r_fb = best_direct(1, 2);
  report("conv2d_nature_cnn_b32_forward", t_f * 1e3, "direct_loops", r_f * 1e3);
  report("conv2d_nature_cnn_b32_forward_backward", t_fb * 1e3, "direct_loops", r_fb * 1e3);
#ifdef _OPENMP
  {
    double t2;
    omp_set_num_threads(2);
    t2 = best_of(memrl_encoder, &g, 1, 5);
    printf("BENCH name=conv2d_nature_cnn_b32_fb_2threads value=%.3f unit=ms ref=1thread "
           "ref_value=%.3f speedup=%.2f\n",
           t2 * 1e3, t_fb * 1e3, t_fb / t2);
    omp_set_num_threads(1);
  }
#endif

  keys = (float *)malloc(sizeof(float) * KEYS * DIM);
  mem = (float *)malloc(sizeof(float) * SLOTS * DIM);
  out = (float *)malloc(sizeof(float) * KEYS * SLOTS);
  for (r = 0; r < KEYS * DIM; r++) keys[r] = mrl_rng_uniform_range(&rng, -1, 1);
  for (r = 0; r < SLOTS * DIM; r++) mem[r] = mrl_rng_uniform_range(&rng, -1, 1);
  for (l = 0; l < 2; l++) {
    double best = 1e30, ref = 1e30;
    lookup(&g, keys, mem, l);
    for (r = 0; r < 5; r++) {
      double t = lookup(&g, keys, mem, l);
      if (t < best) best = t;
    }
    for (r = 0; r < 2; r++) {
      double t = lookup_direct(keys, mem, out, l);
      if (t < ref) ref = t;
    }
    report(l ? "cosine_similarity_32x16384x64" : "sq_distances_32x16384x64", best * 1e3,
           "direct_loops", ref * 1e3);
  }
  mrl_graph_free(&g);
  return 0;
}
