/* Tests for memrl_nn.h's policy heads (mrl_policy_head), every kind:
 * forward / evaluate / rsample values and gradients against a PyTorch twin
 * (tests/ref/policy_heads.txt, written by tools/make_ref.py), finite-difference
 * gradient checks, acting statistics and consistency (greedy = mode, act's
 * log-probs = evaluate's, act = rsample for equal rng states, no heap
 * allocation), environment actions (clipping, squashing), Ornstein-Uhlenbeck
 * noise and its reset, and init's rejection of bad configs (nothing declared,
 * and an out-of-memory failure undone).
 *
 * The library's allocator is replaced by a counting one that can also be told
 * to fail one call.
 *
 * Run from the repository root:  cc -std=c99 -O2 tests/test_heads.c -lm && ./a.out */
#define MEMRL_IMPLEMENTATION
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MRL_TEST_COUNT_ALLOCATIONS
#include "test.h"

#include "../memrl_nn.h"
#include "ref_loader.h"

/* Gradient checks as tests/test_nn.c: central differences in float32 with
 * eps = 1e-2, each element within 1e-3 + 1e-2 * |numeric|. */
#define GC_EPS 1e-2f
#define GC_ATOL 1e-3
#define GC_RTOL 1e-2
/* PyTorch fixtures (float32 on both sides). */
#define REF_ATOL 1e-5
#define REF_RTOL 1e-4

static const char *const kind_names[] = {"categorical", "gaussian", "gaussian_state",
                                         "tanh_gaussian", "deterministic"};

static void fill_uniform(float *d, int n, mrl_rng *rng, float lo, float hi) {
  int i;
  for (i = 0; i < n; i++) d[i] = mrl_rng_uniform_range(rng, lo, hi);
}

/* sum(y * w) with w constant, y's shape. */
static mrl_tensor *weighted_sum(mrl_graph *g, mrl_tensor *y, const float *w) {
  if (!y) return NULL;
  return mrl_sum(g, mrl_mul(g, y, mrl_tensor_from(g, w, y->ndim, y->shape)));
}

/* ------------------------------------------------------------------------ */
/* PyTorch twin (tests/ref/policy_heads.txt)                                */
/* ------------------------------------------------------------------------ */

#define REF_N 5
#define REF_F 4
#define REF_A 4
#define REF_D 3

/* Copies every parameter of the head (named "pi.<x>") from fixture <pre><x>. */
static int ref_load_params(const mrl_ref_file *f, mrl_params *p, const char *pre) {
  char name[96];
  int i, ok = 1;
  for (i = 0; i < p->count; i++) {
    mrl_tensor *t = mrl_params_tensor(p, i);
    snprintf(name, sizeof name, "%s%s", pre, p->items[i].name + 3);
    ok &= mrl_ref_fill(f, name, t->data, t->size);
  }
  return ok;
}

/* Compares every parameter's gradient with fixture <pre><gpre><x>, and x's. */
static void ref_expect_grads(const mrl_ref_file *f, mrl_params *p, const char *pre,
                             const char *gpre, const mrl_tensor *x) {
  char name[96];
  int i;
  for (i = 0; i < p->count; i++) {
    mrl_tensor *t = mrl_params_tensor(p, i);
    snprintf(name, sizeof name, "%s%s%s", pre, gpre, p->items[i].name + 3);
    mrl_ref_expect(f, name, t->grad, t->size, REF_ATOL, REF_RTOL);
  }
  snprintf(name, sizeof name, "%s%sx", pre, gpre);
  mrl_ref_expect(f, name, x->grad, x->size, REF_ATOL, REF_RTOL);
}

static void ref_case(const mrl_ref_file *f, mrl_policy_kind kind, const char *pre) {
  char name[96];
  float low[REF_D], high[REF_D], lsmin = 0, lsmax = 0, seedf = 0;
  float xd[REF_N * REF_F], xg[REF_N * REF_F], raw[REF_N * REF_D], w1[REF_N], w2[REF_N];
  float w3[REF_N * REF_D], w4[REF_N], eps[REF_N * REF_D];
  mrl_tensor x = mrl_tensor_make2(xd, xg, REF_N, REF_F), *dist, *lp, *ent, *a, *loss;
  mrl_policy_head_config cfg = mrl_policy_head_config_default(kind);
  mrl_policy_head h;
  mrl_params p;
  mrl_graph g;
  mrl_rng rng;
  int cont = kind != MRL_POLICY_CATEGORICAL, R = cont ? REF_D : 1, ok, i;
  cfg.num_actions = REF_A;
  cfg.action_dim = REF_D;
  if (kind == MRL_POLICY_TANH_GAUSSIAN || kind == MRL_POLICY_DETERMINISTIC) {
    snprintf(name, sizeof name, "%slow", pre);
    ok = mrl_ref_fill(f, name, low, REF_D);
    snprintf(name, sizeof name, "%shigh", pre);
    if (!ok || !mrl_ref_fill(f, name, high, REF_D)) return;
    cfg.action_low = low;
    cfg.action_high = high;
  }
  if (kind == MRL_POLICY_GAUSSIAN_STATE) {
    if (!mrl_ref_fill(f, "gstate_log_std_min", &lsmin, 1) ||
        !mrl_ref_fill(f, "gstate_log_std_max", &lsmax, 1))
      return;
    cfg.log_std_min = lsmin;
    cfg.log_std_max = lsmax;
  }
  mrl_params_init(&p);
  MRL_CHECK(mrl_policy_head_init(&h, &p, "pi", REF_F, &cfg) == MRL_OK, "%s: init: %s", pre,
            h.error);
  MRL_CHECK(mrl_params_finalize(&p, 3) == MRL_OK, "%s: finalize", pre);
  snprintf(name, sizeof name, "%sx", pre);
  ok = ref_load_params(f, &p, pre) && mrl_ref_fill(f, name, xd, REF_N * REF_F);
  if (ok && kind != MRL_POLICY_DETERMINISTIC) {
    snprintf(name, sizeof name, "%sactions", pre);
    ok = mrl_ref_fill(f, name, raw, REF_N * R);
    snprintf(name, sizeof name, "%sw1", pre);
    ok = ok && mrl_ref_fill(f, name, w1, REF_N);
    snprintf(name, sizeof name, "%sw2", pre);
    ok = ok && mrl_ref_fill(f, name, w2, REF_N);
  }
  if (ok && cont) {
    snprintf(name, sizeof name, "%sw3", pre);
    ok = mrl_ref_fill(f, name, w3, REF_N * REF_D);
    if (kind != MRL_POLICY_DETERMINISTIC) {
      snprintf(name, sizeof name, "%sw4", pre);
      ok = ok && mrl_ref_fill(f, name, w4, REF_N);
      snprintf(name, sizeof name, "%srs_seed", pre);
      ok = ok && mrl_ref_fill(f, name, &seedf, 1);
      snprintf(name, sizeof name, "%srs_eps", pre);
      ok = ok && mrl_ref_fill(f, name, eps, REF_N * REF_D);
    }
  }
  if (!ok) {
    mrl_params_free(&p);
    return;
  }
  mrl_graph_init(&g, 1 << 16);

  /* forward + evaluate */
  mrl_params_zero_grad(&p);
  memset(xg, 0, sizeof xg);
  dist = mrl_policy_head_forward(&h, &g, &x);
  MRL_CHECK(dist && dist->ndim == 2 && dist->shape[0] == REF_N &&
                dist->shape[1] == mrl_policy_head_param_dim(&h),
            "%s: forward must give [N, param_dim]", pre);
  if (!dist) goto done;
  snprintf(name, sizeof name, "%sdist", pre);
  mrl_ref_expect(f, name, dist->data, dist->size, REF_ATOL, REF_RTOL);
  lp = ent = &x; /* must be overwritten */
  mrl_policy_head_evaluate(&h, &g, dist, raw, &lp, &ent);
  if (kind == MRL_POLICY_DETERMINISTIC) {
    MRL_CHECK(!lp && !ent, "%s: evaluate must give NULL log_prob and entropy", pre);
  } else {
    MRL_CHECK(lp && ent && lp->size == REF_N && ent->size == REF_N, "%s: evaluate: want [N] each",
              pre);
    if (lp && ent) {
      snprintf(name, sizeof name, "%slogp", pre);
      mrl_ref_expect(f, name, lp->data, REF_N, REF_ATOL, REF_RTOL);
      snprintf(name, sizeof name, "%sent", pre);
      mrl_ref_expect(f, name, ent->data, REF_N, REF_ATOL, REF_RTOL);
      loss = mrl_add(&g, weighted_sum(&g, lp, w1), weighted_sum(&g, ent, w2));
      MRL_CHECK(mrl_backward(&g, loss) == MRL_OK, "%s: backward", pre);
      ref_expect_grads(f, &p, pre, "d_", &x);
    }
  }
  if (!cont) goto done;

  /* rsample, from mrl_rng_make(seed): its draws are the fixture's eps */
  mrl_graph_reset(&g);
  mrl_params_zero_grad(&p);
  memset(xg, 0, sizeof xg);
  rng = mrl_rng_make((uint64_t)seedf);
  if (kind != MRL_POLICY_DETERMINISTIC) {
    mrl_rng copy = rng;
    float drawn[REF_N * REF_D];
    for (i = 0; i < REF_N * REF_D; i++) drawn[i] = mrl_rng_normal(&copy);
    snprintf(name, sizeof name, "%srs_eps", pre);
    mrl_ref_expect(f, name, drawn, REF_N * REF_D, 1e-6, 1e-6);
  }
  dist = mrl_policy_head_forward(&h, &g, &x);
  lp = &x;
  a = mrl_policy_head_rsample(&h, &g, dist, &rng, &lp);
  MRL_CHECK(a && a->ndim == 2 && a->shape[0] == REF_N && a->shape[1] == REF_D,
            "%s: rsample: want [N, D]", pre);
  if (!a) goto done;
  snprintf(name, sizeof name, "%srs_a", pre);
  mrl_ref_expect(f, name, a->data, a->size, REF_ATOL, REF_RTOL);
  loss = weighted_sum(&g, a, w3);
  if (kind == MRL_POLICY_DETERMINISTIC) {
    MRL_CHECK(lp == NULL, "%s: rsample's log_prob must be NULL", pre);
  } else {
    MRL_CHECK(lp && lp->size == REF_N, "%s: rsample's log_prob: want [N]", pre);
    if (!lp) goto done;
    snprintf(name, sizeof name, "%srs_logp", pre);
    mrl_ref_expect(f, name, lp->data, REF_N, REF_ATOL, REF_RTOL);
    loss = mrl_add(&g, loss, weighted_sum(&g, lp, w4));
  }
  MRL_CHECK(mrl_backward(&g, loss) == MRL_OK, "%s: rsample backward", pre);
  ref_expect_grads(f, &p, pre, "rs_d_", &x);
done:
  mrl_graph_free(&g);
  mrl_params_free(&p);
}

static void test_reference(void) {
  mrl_ref_file f;
  if (!mrl_ref_open(&f, "tests/ref/policy_heads.txt")) return;
  ref_case(&f, MRL_POLICY_CATEGORICAL, "cat_");
  ref_case(&f, MRL_POLICY_GAUSSIAN, "gauss_");
  ref_case(&f, MRL_POLICY_GAUSSIAN_STATE, "gstate_");
  ref_case(&f, MRL_POLICY_TANH_GAUSSIAN, "tanh_");
  ref_case(&f, MRL_POLICY_DETERMINISTIC, "det_");
  mrl_ref_close(&f);
}

/* ------------------------------------------------------------------------ */
/* Finite-difference gradient checks                                        */
/* ------------------------------------------------------------------------ */

#define GC_N 3
#define GC_F 4
#define GC_D 2
#define GC_A 3

typedef struct gc_ctx {
  const mrl_policy_head *h;
  float raw[GC_N * GC_D];
  float r1[GC_N], r2[GC_N], r3[GC_N * GC_D];
  int rsample;
  uint64_t seed;
} gc_ctx;

/* in[0] features; the rest are the head's parameters (perturbed in place). */
static mrl_tensor *gc_build(mrl_graph *g, mrl_tensor **in, void *ctx) {
  const gc_ctx *c = (const gc_ctx *)ctx;
  mrl_tensor *dist = mrl_policy_head_forward(c->h, g, in[0]), *lp = NULL, *ent = NULL, *a;
  if (c->rsample) {
    mrl_rng rng = mrl_rng_make(c->seed); /* the same eps at every evaluation */
    a = mrl_policy_head_rsample(c->h, g, dist, &rng, &lp);
    return lp ? mrl_add(g, weighted_sum(g, a, c->r3), weighted_sum(g, lp, c->r1))
              : weighted_sum(g, a, c->r3);
  }
  mrl_policy_head_evaluate(c->h, g, dist, c->raw, &lp, &ent);
  if (!lp || !ent) return NULL;
  return mrl_add(g, weighted_sum(g, lp, c->r1), weighted_sum(g, ent, c->r2));
}

static void gradcheck_case(mrl_policy_kind kind, int rsample) {
  float xd[GC_N * GC_F], xg[GC_N * GC_F], low[GC_D] = {-2.0f, 0.5f}, high[GC_D] = {1.0f, 3.0f};
  mrl_tensor x = mrl_tensor_make2(xd, xg, GC_N, GC_F), *in[8];
  mrl_policy_head_config cfg = mrl_policy_head_config_default(kind);
  mrl_policy_head h;
  mrl_params p;
  mrl_graph g;
  mrl_rng rng = mrl_rng_make(11 + (uint64_t)kind);
  gc_ctx ctx;
  double worst;
  int i, n = 1;
  cfg.num_actions = GC_A;
  cfg.action_dim = GC_D;
  cfg.log_std_init = -0.3f;
  if (kind != MRL_POLICY_GAUSSIAN && kind != MRL_POLICY_GAUSSIAN_STATE) {
    cfg.action_low = low;
    cfg.action_high = high;
  }
  mrl_params_init(&p);
  mrl_policy_head_init(&h, &p, "pi", GC_F, &cfg);
  mrl_params_finalize(&p, 5 + (uint64_t)kind);
  memset(&ctx, 0, sizeof ctx);
  ctx.h = &h;
  ctx.rsample = rsample;
  ctx.seed = 99;
  /* small features keep the log-std pre-activations well inside [-5, 2] */
  fill_uniform(xd, GC_N * GC_F, &rng, -0.5f, 0.5f);
  fill_uniform(ctx.r1, GC_N, &rng, -1.0f, 1.0f);
  fill_uniform(ctx.r2, GC_N, &rng, -1.0f, 1.0f);
  fill_uniform(ctx.r3, GC_N * GC_D, &rng, -1.0f, 1.0f);
  if (kind == MRL_POLICY_CATEGORICAL)
    for (i = 0; i < GC_N; i++) ctx.raw[i] = (float)(i % GC_A);
  else
    fill_uniform(ctx.raw, GC_N * GC_D, &rng, -1.5f, 1.5f);
  in[0] = &x;
  for (i = 0; i < p.count; i++) in[n++] = mrl_params_tensor(&p, i);
  mrl_graph_init(&g, 1 << 16);
  worst = mrl_gradcheck(&g, gc_build, in, n, &ctx, GC_EPS, GC_ATOL, GC_RTOL);
  MRL_CHECK(worst <= 1.0, "gradcheck %s %s: ratio %.3g", kind_names[kind],
            rsample ? "rsample" : "evaluate", worst);
  mrl_graph_free(&g);
  mrl_params_free(&p);
}

static void test_gradcheck(void) {
  int k;
  for (k = MRL_POLICY_CATEGORICAL; k <= MRL_POLICY_DETERMINISTIC; k++) {
    if (k != MRL_POLICY_DETERMINISTIC) gradcheck_case((mrl_policy_kind)k, 0);
    if (k != MRL_POLICY_CATEGORICAL) gradcheck_case((mrl_policy_kind)k, 1);
  }
}

/* ------------------------------------------------------------------------ */
/* Acting                                                                   */
/* ------------------------------------------------------------------------ */

#define ACT_N 20000
#define EVAL_N 256 /* rows compared with evaluate */

/* A head over dist rows the test writes itself (act reads only floats). */
static void act_head(mrl_policy_head *h, mrl_params *p, mrl_policy_head_config *cfg) {
  mrl_params_init(p);
  MRL_CHECK(mrl_policy_head_init(h, p, "pi", 2, cfg) == MRL_OK, "act head: init: %s", h->error);
  mrl_params_finalize(p, 1);
}

/* act's log_probs against evaluate on the first EVAL_N rows of raw. */
static void expect_act_logp_is_evaluate(const mrl_policy_head *h, const float *dist,
                                        const float *raw, const float *logp, const char *what) {
  mrl_graph g;
  mrl_tensor *d, *lp = NULL;
  int i, worst = 0;
  double err = 0.0;
  mrl_graph_init(&g, 1 << 16);
  d = mrl_tensor_from2(&g, dist, EVAL_N, mrl_policy_head_param_dim(h));
  mrl_policy_head_evaluate(h, &g, d, raw, &lp, NULL);
  MRL_CHECK(lp != NULL, "%s: evaluate gave no log_prob", what);
  for (i = 0; lp && i < EVAL_N; i++) {
    double e = fabs((double)logp[i] - lp->data[i]) / (1e-5 + 1e-5 * fabs((double)lp->data[i]));
    if (e > err) {
      err = e;
      worst = i;
    }
  }
  if (lp)
    MRL_CHECK(err <= 1.0, "%s: act's log_prob[%d] %.9g, evaluate's %.9g", what, worst,
              (double)logp[worst], (double)lp->data[worst]);
  mrl_graph_free(&g);
}

static void test_act_categorical(void) {
  static const float logits[GC_A + 1] = {0.5f, -1.0f, 1.2f, 0.0f};
  const int A = GC_A + 1;
  mrl_policy_head_config cfg = mrl_policy_head_config_default(MRL_POLICY_CATEGORICAL);
  mrl_policy_head h;
  mrl_params p;
  mrl_rng rng = mrl_rng_make(21);
  float *dist = (float *)malloc(sizeof(float) * ACT_N * A),
        *raw = (float *)malloc(sizeof(float) * ACT_N);
  float *logp = (float *)malloc(sizeof(float) * ACT_N), env[4];
  double prob[GC_A + 1], total = 0.0;
  long counts[GC_A + 1] = {0}, calls;
  int i, k, integral = 1, modes = 1;
  cfg.num_actions = A;
  act_head(&h, &p, &cfg);
  for (i = 0; i < ACT_N; i++) memcpy(dist + (size_t)i * A, logits, sizeof logits);
  for (k = 0; k < A; k++) total += exp((double)logits[k]);
  for (k = 0; k < A; k++) prob[k] = exp((double)logits[k]) / total;
  calls = test_alloc_calls;
  mrl_policy_head_act(&h, dist, ACT_N, 0, &rng, NULL, raw, logp);
  MRL_CHECK(test_alloc_calls == calls, "categorical act allocated %ld times",
            test_alloc_calls - calls);
  for (i = 0; i < ACT_N; i++) {
    k = (int)raw[i];
    integral &= raw[i] == (float)k && k >= 0 && k < A;
    if (k >= 0 && k < A) counts[k]++;
  }
  MRL_CHECK(integral, "categorical act: raw actions must be indices 0..A-1");
  for (k = 0; k < A; k++) {
    double fr = (double)counts[k] / ACT_N, sd = sqrt(prob[k] * (1.0 - prob[k]) / ACT_N);
    MRL_CHECK(fabs(fr - prob[k]) <= 5.0 * sd, "categorical frequency of %d: %.4f, want %.4f", k, fr,
              prob[k]);
  }
  expect_act_logp_is_evaluate(&h, dist, raw, logp, "categorical");
  mrl_policy_head_act(&h, dist, 8, 1, NULL, NULL, raw, logp);
  for (i = 0; i < 8; i++) modes &= raw[i] == 2.0f;
  MRL_CHECK(modes, "categorical greedy act must pick the argmax (2)");
  MRL_CHECK_NEAR(logp[0], log(prob[2]), 1e-6, 1e-5, "categorical greedy log_prob");
  raw[0] = 3.0f;
  raw[1] = 0.0f;
  mrl_policy_head_env_action(&h, raw, 2, env);
  MRL_CHECK(env[0] == 3.0f && env[1] == 0.0f, "categorical env_action must pass the index");
  mrl_params_free(&p);
  free(dist);
  free(raw);
  free(logp);
}

/* Gaussian kinds: raw sample statistics, greedy, log-probs, act = rsample. */
static void act_gaussian_case(mrl_policy_kind kind) {
  static const float mean[3] = {0.3f, -1.0f, 2.0f}, log_std[3] = {-0.5f, 0.0f, 0.7f};
  static const float low[3] = {-1.0f, -2.0f, 0.0f}, high[3] = {1.0f, 0.0f, 5.0f};
  const int D = 3, P = 6;
  mrl_policy_head_config cfg = mrl_policy_head_config_default(kind);
  mrl_policy_head h;
  mrl_params p;
  mrl_graph g;
  mrl_rng rng = mrl_rng_make(31 + (uint64_t)kind), rng2;
  float *dist = (float *)malloc(sizeof(float) * ACT_N * P);
  float *raw = (float *)malloc(sizeof(float) * ACT_N * D),
        *logp = (float *)malloc(sizeof(float) * ACT_N);
  float env[EVAL_N * 3];
  mrl_tensor *d, *a, *lp = NULL;
  long calls;
  int i, k, same = 1, greedy_ok = 1;
  const char *what = kind_names[kind];
  cfg.action_dim = D;
  if (kind == MRL_POLICY_TANH_GAUSSIAN) {
    cfg.action_low = low;
    cfg.action_high = high;
  }
  act_head(&h, &p, &cfg);
  for (i = 0; i < ACT_N; i++) {
    memcpy(dist + (size_t)i * P, mean, sizeof mean);
    memcpy(dist + (size_t)i * P + D, log_std, sizeof log_std);
  }
  rng2 = rng;
  calls = test_alloc_calls;
  mrl_policy_head_act(&h, dist, ACT_N, 0, &rng, NULL, raw, logp);
  MRL_CHECK(test_alloc_calls == calls, "%s act allocated %ld times", what,
            test_alloc_calls - calls);
  /* raw is the Gaussian sample u (pre-squash for the tanh head) */
  for (k = 0; k < D; k++) {
    double s = 0.0, s2 = 0.0, m, sd, want_sd = exp((double)log_std[k]);
    for (i = 0; i < ACT_N; i++) s += raw[(size_t)i * D + k];
    m = s / ACT_N;
    for (i = 0; i < ACT_N; i++) {
      double e = raw[(size_t)i * D + k] - m;
      s2 += e * e;
    }
    sd = sqrt(s2 / (ACT_N - 1));
    MRL_CHECK(fabs(m - mean[k]) <= 5.0 * want_sd / sqrt((double)ACT_N),
              "%s: sample mean of dim %d %.4f, want %.4f", what, k, m, (double)mean[k]);
    MRL_CHECK(fabs(sd - want_sd) <= 0.03 * want_sd, "%s: sample std of dim %d %.4f, want %.4f",
              what, k, sd, want_sd);
  }
  expect_act_logp_is_evaluate(&h, dist, raw, logp, what);
  /* rsample from the same rng state draws the same noise */
  mrl_graph_init(&g, 1 << 18);
  d = mrl_tensor_from2(&g, dist, EVAL_N, P);
  a = mrl_policy_head_rsample(&h, &g, d, &rng2, &lp);
  mrl_policy_head_env_action(&h, raw, EVAL_N, env);
  for (i = 0; a && i < EVAL_N * D; i++) {
    float want = kind == MRL_POLICY_TANH_GAUSSIAN ? env[i] : raw[i];
    same &= fabsf(a->data[i] - want) <= 1e-6f + 1e-6f * fabsf(want);
  }
  MRL_CHECK(a && same, "%s: act and rsample from equal rng states must agree", what);
  for (i = 0; lp && i < EVAL_N; i++) same &= fabsf(lp->data[i] - logp[i]) <= 1e-4f;
  MRL_CHECK(lp && same, "%s: rsample's log_prob must equal act's", what);
  mrl_graph_free(&g);
  /* greedy: the mean, nothing drawn */
  rng2 = rng;
  mrl_policy_head_act(&h, dist, 4, 1, &rng, NULL, raw, logp);
  for (i = 0; i < 4 * D; i++) greedy_ok &= raw[i] == mean[i % D];
  MRL_CHECK(greedy_ok && rng.state == rng2.state,
            "%s: greedy act must give the mean, drawing nothing", what);
  /* rows 0-3 now greedy, the rest still the samples above */
  expect_act_logp_is_evaluate(&h, dist, raw, logp, what);
  mrl_params_free(&p);
  free(dist);
  free(raw);
  free(logp);
}

static void test_act_gaussian(void) {
  act_gaussian_case(MRL_POLICY_GAUSSIAN);
  act_gaussian_case(MRL_POLICY_GAUSSIAN_STATE);
  act_gaussian_case(MRL_POLICY_TANH_GAUSSIAN);
}

static void test_env_action(void) {
  static const float low[3] = {-1.0f, 0.0f, -2.0f}, high[3] = {1.0f, 1.0f, 2.0f};
  static const float raw[6] = {-3.0f, 0.5f, 5.0f, 0.2f, -7.0f, 1.5f};
  const float inf = HUGE_VALF;
  float lo_inf[3], hi_inf[3], env[6], raw_t[6] = {30.0f, -30.0f, 0.3f, 0.0f, 1.0f, -0.5f};
  mrl_policy_head_config cfg = mrl_policy_head_config_default(MRL_POLICY_GAUSSIAN);
  mrl_policy_head h;
  mrl_params p;
  int i, ok = 1;
  lo_inf[0] = -inf;
  lo_inf[1] = 0.0f;
  lo_inf[2] = -inf;
  hi_inf[0] = inf;
  hi_inf[1] = inf;
  hi_inf[2] = 1.0f;
  cfg.action_dim = 3;
  cfg.action_low = low;
  cfg.action_high = high;
  act_head(&h, &p, &cfg);
  mrl_policy_head_env_action(&h, raw, 2, env);
  for (i = 0; i < 6; i++) {
    float want = raw[i] < low[i % 3] ? low[i % 3] : (raw[i] > high[i % 3] ? high[i % 3] : raw[i]);
    ok &= env[i] == want;
  }
  MRL_CHECK(ok, "gaussian env_action must clip to [low, high]");
  mrl_params_free(&p);

  cfg.action_low = cfg.action_high = NULL;
  act_head(&h, &p, &cfg);
  mrl_policy_head_env_action(&h, raw, 2, env);
  MRL_CHECK(memcmp(env, raw, sizeof env) == 0, "unbounded gaussian env_action must pass raw");
  mrl_params_free(&p);

  cfg.action_low = lo_inf; /* an env's unbounded dims: infinite bounds */
  cfg.action_high = hi_inf;
  act_head(&h, &p, &cfg);
  mrl_policy_head_env_action(&h, raw, 2, env);
  MRL_CHECK(env[0] == -3.0f && env[1] == 0.5f && env[2] == 1.0f && env[4] == 0.0f && env[5] == 1.0f,
            "gaussian env_action with infinite bounds clips only the finite ones");
  mrl_params_free(&p);

  cfg = mrl_policy_head_config_default(MRL_POLICY_TANH_GAUSSIAN);
  cfg.action_dim = 3;
  cfg.action_low = low;
  cfg.action_high = high;
  act_head(&h, &p, &cfg);
  mrl_policy_head_env_action(&h, raw_t, 2, env);
  ok = 1;
  for (i = 0; i < 6; i++) {
    int d = i % 3;
    double want = tanh((double)raw_t[i]) * (high[d] - low[d]) / 2 + (high[d] + low[d]) / 2;
    ok &= fabs(env[i] - want) <= 1e-6 && env[i] >= low[d] && env[i] <= high[d];
  }
  MRL_CHECK(ok, "tanh env_action must be tanh(u) scale + bias inside [low, high]");
  MRL_CHECK(env[0] == 1.0f && env[1] == 0.0f, "tanh env_action of a saturated u is the bound");
  mrl_params_free(&p);

  cfg = mrl_policy_head_config_default(MRL_POLICY_DETERMINISTIC);
  cfg.action_dim = 3;
  cfg.action_low = low;
  cfg.action_high = high;
  act_head(&h, &p, &cfg);
  mrl_policy_head_env_action(&h, raw, 2, env);
  ok = 1;
  for (i = 0; i < 6; i++) {
    float want = raw[i] < low[i % 3] ? low[i % 3] : (raw[i] > high[i % 3] ? high[i % 3] : raw[i]);
    ok &= env[i] == want;
  }
  MRL_CHECK(ok, "deterministic env_action must clip to [low, high]");
  mrl_params_free(&p);
}

/* Deterministic head: greedy, Gaussian noise statistics, clipping. */
static void test_act_deterministic(void) {
  static const float low[2] = {-2.0f, 0.0f}, high[2] = {2.0f, 1.0f};
  const int D = 2;
  mrl_policy_head_config cfg = mrl_policy_head_config_default(MRL_POLICY_DETERMINISTIC);
  mrl_policy_head h;
  mrl_params p;
  mrl_rng rng = mrl_rng_make(41), rng2;
  float *dist = (float *)calloc((size_t)ACT_N * D, sizeof(float));
  float *raw = (float *)malloc(sizeof(float) * ACT_N * D), logp[4] = {1, 1, 1, 1};
  float pre[4] = {0.4f, -0.8f, 30.0f, -30.0f};
  long calls;
  int i, k, ok = 1, at_high = 0;
  cfg.action_dim = D;
  cfg.action_low = low;
  cfg.action_high = high;
  act_head(&h, &p, &cfg);
  /* greedy: tanh(pre) scale + bias, no draw, log-probs 0 */
  rng2 = rng;
  mrl_policy_head_act(&h, pre, 2, 1, &rng, NULL, raw, logp);
  for (i = 0; i < 4; i++) {
    int d = i % D;
    float want = tanhf(pre[i]) * (high[d] - low[d]) / 2 + (high[d] + low[d]) / 2;
    ok &= fabsf(raw[i] - want) <= 1e-6f && logp[i / D] == 0.0f;
  }
  MRL_CHECK(ok && rng.state == rng2.state,
            "deterministic greedy act: tanh(mean) scale + bias, log_prob 0, no draw");
  /* Gaussian noise with std noise_std * scale around the action (pre = 0: bias) */
  calls = test_alloc_calls;
  mrl_policy_head_act(&h, dist, ACT_N, 0, &rng, NULL, raw, NULL);
  MRL_CHECK(test_alloc_calls == calls, "deterministic act allocated");
  for (k = 0; k < D; k++) {
    double s = 0.0, s2 = 0.0, m, sd, bias = (high[k] + low[k]) / 2.0;
    double want_sd = 0.1 * (high[k] - low[k]) / 2.0;
    for (i = 0; i < ACT_N; i++) s += raw[(size_t)i * D + k];
    m = s / ACT_N;
    for (i = 0; i < ACT_N; i++) s2 += (raw[(size_t)i * D + k] - m) * (raw[(size_t)i * D + k] - m);
    sd = sqrt(s2 / (ACT_N - 1));
    MRL_CHECK(fabs(m - bias) <= 5.0 * want_sd / sqrt((double)ACT_N),
              "deterministic noise: mean of dim %d %.4f, want %.4f", k, m, bias);
    MRL_CHECK(fabs(sd - want_sd) <= 0.03 * want_sd,
              "deterministic noise: std of dim %d %.5f, want %.5f", k, sd, want_sd);
  }
  /* near a bound the noisy action is clipped (TD3 stores the clipped one) */
  for (i = 0; i < ACT_N; i++) {
    dist[(size_t)i * D] = 30.0f;
    dist[(size_t)i * D + 1] = -30.0f;
  }
  mrl_policy_head_act(&h, dist, ACT_N, 0, &rng, NULL, raw, NULL);
  ok = 1;
  for (i = 0; i < ACT_N * D; i++) {
    ok &= raw[i] >= low[i % D] && raw[i] <= high[i % D];
    at_high += raw[i] == high[i % D];
  }
  MRL_CHECK(ok && at_high > ACT_N / 4, "deterministic act must clip to the bounds (%d at high)",
            at_high);
  mrl_params_free(&p);
  free(dist);
  free(raw);
}

/* OU noise: x += theta (-x) dt + sigma sqrt(dt) N(0,1) per element, row-major,
 * action = clip(tanh(pre) scale + bias + scale x); reset on episode_start. */
static void test_act_ou(void) {
  static const float low[2] = {-2.0f, 0.0f}, high[2] = {2.0f, 1.0f};
  static const float pre[6] = {0.1f, -0.2f, 0.0f, 0.3f, -0.4f, 0.05f};
  const int D = 2, n = 3, steps = 60;
  mrl_policy_head_config cfg = mrl_policy_head_config_default(MRL_POLICY_DETERMINISTIC);
  mrl_policy_head h;
  mrl_params p;
  mrl_rng rng = mrl_rng_make(51), mirror;
  float state[6] = {0}, x[6] = {0}, raw[6], start[3] = {0.0f, 1.0f, 0.0f}, kept[6];
  float theta = 0.15f, sigma = 0.2f, dt = 1e-2f;
  long calls = test_alloc_calls;
  int t, i, ok = 1, moved = 0;
  cfg.action_dim = D;
  cfg.action_low = low;
  cfg.action_high = high;
  cfg.noise = MRL_NOISE_OU;
  /* larger than the default so the state moves visibly within 60 steps */
  cfg.ou_sigma = sigma = 2.0f;
  act_head(&h, &p, &cfg);
  MRL_CHECK(h.ou_theta == theta && h.ou_dt == dt, "OU defaults: theta 0.15, dt 1e-2");
  mirror = rng;
  calls = test_alloc_calls;
  for (t = 0; t < steps; t++) {
    mrl_policy_head_act(&h, pre, n, 0, &rng, state, raw, NULL);
    for (i = 0; i < n * D; i++) {
      int d = i % D;
      float sc = (high[d] - low[d]) / 2, b = (high[d] + low[d]) / 2, a;
      x[i] += theta * (-x[i]) * dt + sigma * sqrtf(dt) * mrl_rng_normal(&mirror);
      a = tanhf(pre[i]) * sc + b + sc * x[i];
      a = a < low[d] ? low[d] : (a > high[d] ? high[d] : a);
      ok &= fabsf(state[i] - x[i]) <= 1e-6f && fabsf(raw[i] - a) <= 1e-6f;
    }
  }
  MRL_CHECK(test_alloc_calls == calls, "OU act allocated");
  MRL_CHECK(ok, "OU noise must follow x += theta (-x) dt + sigma sqrt(dt) N(0,1), in env units");
  for (i = 0; i < n * D; i++) moved += fabsf(state[i]) > 0.05f;
  MRL_CHECK(moved >= 3, "OU state should have moved (%d of 6 elements)", moved);
  memcpy(kept, state, sizeof kept);
  mrl_policy_head_noise_reset(&h, state, n, start);
  MRL_CHECK(state[2] == 0.0f && state[3] == 0.0f && state[0] == kept[0] && state[1] == kept[1] &&
                state[4] == kept[4] && state[5] == kept[5],
            "noise_reset must zero exactly the rows whose episode starts");
  mrl_policy_head_noise_reset(&h, state, n, NULL);
  ok = 1;
  for (i = 0; i < n * D; i++) ok &= state[i] == 0.0f;
  MRL_CHECK(ok, "noise_reset with NULL episode_start zeros every row");
  /* greedy leaves the state and the rng alone */
  state[0] = 0.5f;
  mirror = rng;
  mrl_policy_head_act(&h, pre, n, 1, &rng, state, raw, NULL);
  MRL_CHECK(state[0] == 0.5f && rng.state == mirror.state, "greedy OU act must not step the noise");
  mrl_params_free(&p);
}

/* ------------------------------------------------------------------------ */
/* init: names, shapes, dimensions, rejected configs                        */
/* ------------------------------------------------------------------------ */

static void expect_param(mrl_params *p, const char *name, int d0, int d1, const char *what) {
  int i = mrl_params_find(p, name);
  mrl_tensor *t = i >= 0 ? mrl_params_tensor(p, i) : NULL;
  MRL_CHECK(t && t->shape[0] == d0 && (d1 ? t->ndim == 2 && t->shape[1] == d1 : t->ndim == 1),
            "%s: parameter %s [%d, %d] missing or misshapen", what, name, d0, d1);
}

static void test_init_layout(void) {
  static const int want_p[5] = {5, 6, 6, 6, 3}, want_r[5] = {1, 3, 3, 3, 3},
                   want_e[5] = {1, 3, 3, 3, 3}, want_n[5] = {2, 3, 4, 4, 2};
  int k;
  for (k = 0; k <= MRL_POLICY_DETERMINISTIC; k++) {
    mrl_policy_head_config cfg = mrl_policy_head_config_default((mrl_policy_kind)k);
    mrl_policy_head h;
    mrl_params p;
    const char *what = kind_names[k];
    cfg.num_actions = 5;
    cfg.action_dim = 3;
    cfg.log_std_init = -0.5f;
    mrl_params_init(&p);
    MRL_CHECK(mrl_policy_head_init(&h, &p, "actor", 7, &cfg) == MRL_OK && h.error[0] == '\0',
              "%s: init: %s", what, h.error);
    MRL_CHECK(mrl_params_finalize(&p, 1) == MRL_OK, "%s: finalize", what);
    MRL_CHECK(mrl_policy_head_param_dim(&h) == want_p[k] &&
                  mrl_policy_head_raw_dim(&h) == want_r[k] &&
                  mrl_policy_head_env_dim(&h) == want_e[k] && p.count == want_n[k],
              "%s: dims %d %d %d, %d tensors", what, mrl_policy_head_param_dim(&h),
              mrl_policy_head_raw_dim(&h), mrl_policy_head_env_dim(&h), p.count);
    if (k == MRL_POLICY_CATEGORICAL || k == MRL_POLICY_DETERMINISTIC) {
      expect_param(&p, "actor.weight", want_p[k], 7, what);
      expect_param(&p, "actor.bias", want_p[k], 0, what);
    } else {
      expect_param(&p, "actor.mean.weight", 3, 7, what);
      expect_param(&p, "actor.mean.bias", 3, 0, what);
      if (k == MRL_POLICY_GAUSSIAN) {
        int i = mrl_params_find(&p, "actor.log_std");
        expect_param(&p, "actor.log_std", 3, 0, what);
        MRL_CHECK(i >= 0 && mrl_params_tensor(&p, i)->data[2] == -0.5f,
                  "gaussian: log_std starts at log_std_init");
      } else {
        expect_param(&p, "actor.log_std.weight", 3, 7, what);
        expect_param(&p, "actor.log_std.bias", 3, 0, what);
      }
    }
    mrl_params_free(&p);
  }
}

static void expect_rejected(const mrl_policy_head_config *cfg, int in_features, const char *name,
                            const char *what) {
  mrl_policy_head h;
  mrl_params p;
  mrl_result r;
  mrl_params_init(&p);
  r = mrl_policy_head_init(&h, &p, name, in_features, cfg);
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT && p.count == 0 && p.total == 0 && h.error[0] != '\0',
            "init must reject %s (result %d, %d tensors declared)", what, (int)r, p.count);
  mrl_params_free(&p);
}

static void test_init_rejects(void) {
  static const float lo[2] = {-1.0f, 2.0f}, hi[2] = {1.0f, 1.0f}, ok_lo[2] = {-1.0f, -1.0f},
                     ok_hi[2] = {1.0f, 1.0f};
  const float nan = (float)(0.0 * HUGE_VAL) /* NaN without NAN's C99 header quirks */;
  float nan_lo[2], inf_lo[2], eq_hi[2];
  char long_name[MRL_NAME_MAX + 16];
  mrl_policy_head_config c;
  mrl_policy_head h;
  mrl_params p;
  nan_lo[0] = -1.0f;
  nan_lo[1] = nan;
  inf_lo[0] = -HUGE_VALF;
  inf_lo[1] = -1.0f;
  eq_hi[0] = -1.0f;
  eq_hi[1] = 1.0f;

  c = mrl_policy_head_config_default(MRL_POLICY_CATEGORICAL);
  expect_rejected(&c, 4, "pi", "num_actions 0 (the default)");
  c.num_actions = -2;
  expect_rejected(&c, 4, "pi", "num_actions -2");
  c.num_actions = 3;
  expect_rejected(&c, 0, "pi", "in_features 0");
  c.init.kind = (mrl_init_kind)99;
  expect_rejected(&c, 4, "pi", "an unknown initialiser");
  c.init = mrl_init_orthogonal(nan);
  expect_rejected(&c, 4, "pi", "a NaN initialiser gain");
  c.init = mrl_init_default();
  c.kind = (mrl_policy_kind)9;
  expect_rejected(&c, 4, "pi", "an unknown kind");
  c.kind = MRL_POLICY_CATEGORICAL;
  memset(long_name, 'n', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';
  expect_rejected(&c, 4, long_name, "a name too long for the store");
  long_name[MRL_NAME_MAX - 16] = '\0'; /* + ".log_std.weight" and NUL: MRL_NAME_MAX */
  mrl_params_init(&p);
  MRL_CHECK(mrl_policy_head_init(&h, &p, long_name, 4, &c) == MRL_OK,
            "init must accept a name that just fits: %s", h.error);
  mrl_params_free(&p);
  mrl_params_init(&p);
  mrl_params_finalize(&p, 1);
  MRL_CHECK(mrl_policy_head_init(&h, &p, "pi", 4, &c) == MRL_ERR_INVALID_ARGUMENT && p.count == 0,
            "init must reject a finalized store");
  mrl_params_free(&p);

  c = mrl_policy_head_config_default(MRL_POLICY_GAUSSIAN);
  expect_rejected(&c, 4, "pi", "action_dim 0 (the default)");
  c.action_dim = MRL_POLICY_MAX_ACTION_DIM + 1;
  expect_rejected(&c, 4, "pi", "action_dim 65");
  c.action_dim = 2;
  c.action_low = lo;
  c.action_high = hi;
  expect_rejected(&c, 4, "pi", "low > high");
  c.action_low = nan_lo;
  c.action_high = ok_hi;
  expect_rejected(&c, 4, "pi", "a NaN low");
  c.action_low = ok_lo;
  c.action_high = NULL;
  expect_rejected(&c, 4, "pi", "low without high");
  c.action_low = NULL;
  c.log_std_init = nan;
  expect_rejected(&c, 4, "pi", "log_std_init NaN");
  c.log_std_init = HUGE_VALF;
  expect_rejected(&c, 4, "pi", "log_std_init inf");
  c.log_std_init = 0.0f;
  c.action_low = inf_lo;
  c.action_high = ok_hi;
  mrl_params_init(&p);
  MRL_CHECK(mrl_policy_head_init(&h, &p, "pi", 4, &c) == MRL_OK,
            "a Gaussian head accepts infinite bounds: %s", h.error);
  mrl_params_free(&p);

  c = mrl_policy_head_config_default(MRL_POLICY_GAUSSIAN_STATE);
  c.action_dim = 2;
  c.log_std_min = 1.0f;
  c.log_std_max = -1.0f;
  expect_rejected(&c, 4, "pi", "log_std_min > log_std_max");
  c.log_std_min = nan;
  c.log_std_max = 2.0f;
  expect_rejected(&c, 4, "pi", "log_std_min NaN");

  c = mrl_policy_head_config_default(MRL_POLICY_TANH_GAUSSIAN);
  c.action_dim = 2;
  c.log_std_max = HUGE_VALF;
  expect_rejected(&c, 4, "pi", "tanh log_std_max inf");
  c.log_std_max = 2.0f;
  c.action_low = inf_lo;
  c.action_high = ok_hi;
  expect_rejected(&c, 4, "pi", "tanh with an infinite bound");
  c.action_low = ok_lo;
  c.action_high = eq_hi;
  expect_rejected(&c, 4, "pi", "tanh with low == high");

  c = mrl_policy_head_config_default(MRL_POLICY_DETERMINISTIC);
  c.action_dim = 2;
  c.noise_std = -0.1f;
  expect_rejected(&c, 4, "pi", "noise_std < 0");
  c.noise_std = nan;
  expect_rejected(&c, 4, "pi", "noise_std NaN");
  c.noise_std = 0.1f;
  c.noise = (mrl_noise_kind)5;
  expect_rejected(&c, 4, "pi", "an unknown noise kind");
  c.noise = MRL_NOISE_OU;
  c.ou_dt = 0.0f;
  expect_rejected(&c, 4, "pi", "ou_dt 0");
  c.ou_dt = 1e-2f;
  c.ou_theta = nan;
  expect_rejected(&c, 4, "pi", "ou_theta NaN");
  c.ou_theta = 0.15f;
  c.action_low = inf_lo;
  c.action_high = ok_hi;
  expect_rejected(&c, 4, "pi", "deterministic with an infinite bound");
  c.action_low = NULL;
  c.action_high = NULL;
  mrl_params_init(&p);
  MRL_CHECK(mrl_policy_head_init(&h, &p, "pi", 4, &c) == MRL_OK && p.count == 2,
            "the same config made valid is accepted: %s", h.error);
  mrl_params_free(&p);
}

/* Out of memory part way through the declarations: everything is undone. */
static void test_init_out_of_memory(void) {
  mrl_policy_head_config c = mrl_policy_head_config_default(MRL_POLICY_GAUSSIAN_STATE);
  mrl_policy_head h;
  mrl_params p;
  mrl_result r;
  char name[16];
  int i, shape[1] = {3};
  size_t total;
  c.action_dim = 2;
  mrl_params_init(&p);
  /* 15 tensors: the head's first fits the 16-slot array, the second needs a realloc */
  for (i = 0; i < 15; i++) {
    snprintf(name, sizeof name, "t%d", i);
    mrl_params_add(&p, name, 1, shape, mrl_init_default());
  }
  total = p.total;
  test_alloc_fail_at = test_alloc_calls + 1;
  r = mrl_policy_head_init(&h, &p, "pi", 4, &c);
  test_alloc_fail_at = 0;
  MRL_CHECK(r == MRL_ERR_OUT_OF_MEMORY && p.count == 15 && p.total == total,
            "init out of memory: result %d, %d tensors (want 15)", (int)r, p.count);
  r = mrl_policy_head_init(&h, &p, "pi", 4, &c);
  MRL_CHECK(r == MRL_OK && p.count == 19 && mrl_params_find(&p, "pi.log_std.bias") == 18,
            "init after an out-of-memory failure: result %d, %d tensors", (int)r, p.count);
  mrl_params_free(&p);
}

int main(void) {
  test_reference();
  test_gradcheck();
  test_act_categorical();
  test_act_gaussian();
  test_act_deterministic();
  test_act_ou();
  test_env_action();
  test_init_layout();
  test_init_rejects();
  test_init_out_of_memory();
  return mrl_test_summary("test_heads");
}
