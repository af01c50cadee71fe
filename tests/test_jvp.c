/* Forward-mode derivatives (mrl_graph_jvp, memrl_tensor.h >>jvp and memrl_nn.h
 * >>rnn_jvp): every rule's J v against central finite differences of the
 * forward pass, and against the backward pass through the adjoint identity
 * <u, J v> = <J^T u, v> (tight: both are exact up to rounding). An op without
 * a rule must fail and name itself. */
#define _POSIX_C_SOURCE 200809L
#define MEMRL_IMPLEMENTATION
#include "test.h"
#include "../memrl_nn.h"

#define MAXL 8 /* leaves per case */

typedef struct jcase {
  const char *name;
  mrl_tensor *(*build)(mrl_graph *g, struct jcase *c);
  mrl_tensor *leaf[MAXL]; /* every leaf with a grad buffer gets a tangent */
  int n;
  mrl_params *params; /* its tensors are leaves too (through params->grads) */
  mrl_lstm lstm;
  mrl_gru gru;
  mrl_elman elman;
  float starts[12];
  int index[16];
} jcase;

static float buf_data[MAXL][256], buf_grad[MAXL][256];
static mrl_tensor leaf_tensors[MAXL]; /* slot i of the running case */

static mrl_tensor *leaf(jcase *c, int ndim, const int *shape, mrl_rng *rng, float lo, float hi) {
  int i = c->n++;
  mrl_tensor *t = &leaf_tensors[i];
  int k;
  *t = mrl_tensor_make(buf_data[i], buf_grad[i], ndim, shape);
  for (k = 0; k < t->size; k++) t->data[k] = mrl_rng_uniform_range(rng, lo, hi);
  c->leaf[i] = t;
  return t;
}

/* every tangent slot: the leaves' grads and the parameter store's grads */
static void set_tangents(jcase *c, const float *v, int scale_data, float eps) {
  int i, k, at = 0;
  for (i = 0; i < c->n; i++)
    for (k = 0; k < c->leaf[i]->size; k++, at++) {
      if (scale_data)
        c->leaf[i]->data[k] += eps * v[at];
      else
        c->leaf[i]->grad[k] = v[at];
    }
  if (c->params)
    for (k = 0; k < (int)c->params->total; k++, at++) {
      if (scale_data)
        c->params->values[k] += eps * v[at];
      else
        c->params->grads[k] = v[at];
    }
}

static int tangent_count(const jcase *c) {
  int i, n = 0;
  for (i = 0; i < c->n; i++) n += c->leaf[i]->size;
  return n + (c->params ? (int)c->params->total : 0);
}

static void run_case(jcase *c, mrl_graph *g) {
  int nv = tangent_count(c), i, k, at, ny;
  float *v = (float *)malloc(sizeof(float) * (size_t)nv), *jv, *fp, *fm, *u;
  double dot_u_jv = 0.0, dot_jtu_v = 0.0, worst = 0.0;
  mrl_rng rng = mrl_rng_make(99);
  mrl_tensor *y, *ut, *loss;
  char err[128];
  mrl_result r;
  for (i = 0; i < nv; i++) v[i] = mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
  /* J v */
  set_tangents(c, v, 0, 0.0f);
  mrl_graph_reset(g);
  y = c->build(g, c);
  r = mrl_graph_jvp(g, mrl_nn_jvp_rule, err, sizeof err);
  MRL_CHECK(r == MRL_OK, "%s: jvp failed: %s", c->name, err);
  ny = y->size;
  jv = (float *)malloc(sizeof(float) * (size_t)ny * 4);
  fp = jv + ny, fm = fp + ny, u = fm + ny;
  memcpy(jv, y->grad, sizeof(float) * (size_t)ny);
  MRL_CHECK(mrl_backward(g, mrl_sum(g, y)) == MRL_ERR_INVALID_ARGUMENT,
            "%s: a tape holding tangents must refuse backward", c->name);
  /* central finite differences along v */
  mrl_graph_set_no_grad(g, 1);
  set_tangents(c, v, 1, 1e-3f);
  mrl_graph_reset(g);
  memcpy(fp, c->build(g, c)->data, sizeof(float) * (size_t)ny);
  set_tangents(c, v, 1, -2e-3f);
  mrl_graph_reset(g);
  memcpy(fm, c->build(g, c)->data, sizeof(float) * (size_t)ny);
  set_tangents(c, v, 1, 1e-3f);
  mrl_graph_set_no_grad(g, 0);
  for (k = 0; k < ny; k++) {
    double fd = ((double)fp[k] - fm[k]) / 2e-3, e = fabs(jv[k] - fd) / (3e-3 + 3e-2 * fabs(fd));
    if (e > worst) worst = e;
  }
  MRL_CHECK(worst <= 1.0, "%s: J v against finite differences: worst ratio %.3g", c->name, worst);
  /* adjoint identity with the backward pass */
  for (k = 0; k < ny; k++) u[k] = mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
  for (i = 0; i < c->n; i++) memset(c->leaf[i]->grad, 0, sizeof(float) * c->leaf[i]->size);
  if (c->params) mrl_params_zero_grad(c->params);
  mrl_graph_reset(g);
  y = c->build(g, c);
  ut = mrl_tensor_from(g, u, y->ndim, y->shape);
  loss = mrl_sum(g, mrl_mul(g, y, ut));
  MRL_CHECK(mrl_backward(g, loss) == MRL_OK, "%s: backward", c->name);
  for (k = 0; k < ny; k++) dot_u_jv += (double)u[k] * jv[k];
  at = 0;
  for (i = 0; i < c->n; i++)
    for (k = 0; k < c->leaf[i]->size; k++, at++) dot_jtu_v += (double)c->leaf[i]->grad[k] * v[at];
  for (k = 0; c->params && k < (int)c->params->total; k++, at++)
    dot_jtu_v += (double)c->params->grads[k] * v[at];
  MRL_CHECK_NEAR(dot_u_jv, dot_jtu_v, 1e-4 * (1.0 + fabs(dot_jtu_v)), 0.0, c->name);
  free(v);
  free(jv);
}

/* ---- the cases ---- */
static mrl_tensor *b_linear_unary(mrl_graph *g, jcase *c) {
  mrl_tensor *h = mrl_tanh(g, mrl_linear(g, c->leaf[0], c->leaf[1], c->leaf[2]));
  mrl_tensor *a = mrl_add(g, mrl_sigmoid(g, h), mrl_relu(g, mrl_scale(g, h, 2.0f)));
  a = mrl_add(g, a, mrl_exp(g, mrl_square(g, mrl_add_scalar(g, h, 0.5f))));
  a = mrl_add(g, a, mrl_log(g, mrl_add_scalar(g, mrl_square(g, h), 1.0f)));
  a = mrl_add(g, a, mrl_softplus(g, mrl_neg(g, h)));
  return mrl_add(g, a, mrl_clamp(g, mrl_elu(g, h, 1.0f), -0.3f, 0.3f));
}

/* the fused linear + activation nodes (MLPs record these) */
static mrl_tensor *b_linear_act(mrl_graph *g, jcase *c) {
  mrl_tensor *h = mrl_linear_tanh(g, c->leaf[0], c->leaf[1], c->leaf[2]);
  return mrl_linear_relu(g, h, c->leaf[3], NULL);
}

static mrl_tensor *b_binary(mrl_graph *g, jcase *c) {
  mrl_tensor *a = c->leaf[0], *b = c->leaf[1], *m = c->leaf[2];
  mrl_tensor *y =
      mrl_add(g, mrl_mul(g, a, b), mrl_div(g, a, mrl_add_scalar(g, mrl_square(g, b), 1)));
  y = mrl_add(g, y, mrl_sub(g, mrl_minimum(g, a, b), mrl_maximum(g, b, a)));
  return mrl_add(g, y, mrl_where(g, m, a, mrl_scale(g, mrl_broadcast_to(g, b, 2, a->shape), 3)));
}

static mrl_tensor *b_matmul(mrl_graph *g, jcase *c) {
  mrl_tensor *a = c->leaf[0], *b = c->leaf[1]; /* a [3,4], b [4,4] */
  mrl_tensor *y = mrl_add(g, mrl_matmul(g, a, b), mrl_matmul_nt(g, a, b));
  return mrl_add(g, y, mrl_transpose(g, mrl_matmul_tn(g, b, mrl_transpose(g, a, 0, 1)), 0, 1));
}

static mrl_tensor *b_shape(mrl_graph *g, jcase *c) {
  mrl_tensor *a = c->leaf[0], *b = c->leaf[1], *k = c->leaf[2]; /* a [3,4], b [3,4], k const */
  mrl_tensor *parts[3], *cat, *st, *y;
  int perm[2] = {1, 0};
  parts[0] = a, parts[1] = k, parts[2] = b;
  cat = mrl_concat(g, parts, 3, 1); /* [3,12] */
  st = mrl_stack(g, parts, 3, 0);   /* [3,3,4] */
  y = mrl_add(g, mrl_slice(g, cat, 1, 2, 6), mrl_permute(g, mrl_permute(g, b, perm), perm));
  y = mrl_add(g, y, mrl_sum_axis(g, st, 0, 0));
  y = mrl_add(g, y, mrl_index_select(g, mrl_concat_rows(g, parts, 3), c->index, 3));
  {
    int s31[2] = {3, 1};
    mrl_tensor *gr = mrl_gather_rows(g, mrl_log_softmax(g, a), c->index + 4);
    return mrl_add(g, y, mrl_broadcast_to(g, mrl_reshape(g, gr, 2, s31), 2, a->shape));
  }
}

static mrl_tensor *b_reduce(mrl_graph *g, jcase *c) {
  mrl_tensor *a = c->leaf[0], *parts[7];
  int s[1] = {1};
  parts[0] = mrl_reshape(g, mrl_sum(g, a), 1, s);
  parts[1] = mrl_mean(g, mrl_square(g, a));
  parts[2] = mrl_max(g, a, NULL);
  parts[3] = mrl_logsumexp(g, a);
  parts[4] = mrl_var(g, a, 1);
  parts[5] = mrl_mean_axis(g, mrl_softmax(g, a, 0, NULL), 1, 0); /* [3] */
  parts[6] = mrl_sum_rows(g, mrl_log_softmax_axis(g, a, 0, NULL));
  return mrl_concat(g, parts, 7, 0);
}

static mrl_tensor *b_lstm(mrl_graph *g, jcase *c) { /* x leaf [T*B, 3], T 4, B 3, 2 layers */
  mrl_tensor *hT, *cT, *y;
  mrl_tensor *h0 = c->leaf[1], *c0 = c->leaf[2], *parts[3];
  y = mrl_lstm_forward(&c->lstm, g, c->leaf[0], 4, 3, h0, c0, c->starts, &hT, &cT);
  parts[0] = y, parts[1] = hT, parts[2] = cT;
  return mrl_concat_rows(g, parts, 3);
}

static mrl_tensor *b_gru(mrl_graph *g, jcase *c) {
  mrl_tensor *hT, *y = mrl_gru_forward(&c->gru, g, c->leaf[0], 4, 3, c->leaf[1], c->starts, &hT);
  mrl_tensor *parts[2];
  parts[0] = y, parts[1] = hT;
  return mrl_concat_rows(g, parts, 2);
}

static mrl_tensor *b_elman(mrl_graph *g, jcase *c) {
  mrl_tensor *hT,
      *y = mrl_elman_forward(&c->elman, g, c->leaf[0], 4, 3, c->leaf[1], c->starts, &hT);
  return mrl_add(g, mrl_tanh(g, y), mrl_relu(g, y));
}

static mrl_tensor *b_no_rule(mrl_graph *g, jcase *c) {
  return mrl_layernorm(g, c->leaf[0], NULL, NULL, 1e-5f);
}

int main(void) {
  mrl_graph g;
  mrl_rng rng = mrl_rng_make(7);
  int s34[2] = {3, 4}, s4[1] = {4}, s44[2] = {4, 4}, sx[2] = {12, 3}, sh[2] = {6, 5};
  int i;
  mrl_params p;
  char err[128];
  mrl_graph_init(&g, 1 << 20);
  {
    jcase c;
    int sw[2] = {4, 3}, sin[2] = {3, 3};
    memset(&c, 0, sizeof c);
    c.name = "linear + unary ops";
    c.build = b_linear_unary;
    leaf(&c, 2, sin, &rng, -1, 1), leaf(&c, 2, sw, &rng, -1, 1), leaf(&c, 1, s4, &rng, -1, 1);
    run_case(&c, &g);
  }
  {
    jcase c;
    int sw[2] = {4, 3}, sin[2] = {3, 3}, sw2[2] = {5, 4};
    memset(&c, 0, sizeof c);
    c.name = "linear_tanh then linear_relu";
    c.build = b_linear_act;
    leaf(&c, 2, sin, &rng, -1, 1), leaf(&c, 2, sw, &rng, -1, 1), leaf(&c, 1, s4, &rng, -1, 1);
    leaf(&c, 2, sw2, &rng, -1, 1);
    run_case(&c, &g);
  }
  {
    jcase c;
    memset(&c, 0, sizeof c);
    c.name = "binary ops with broadcasting";
    c.build = b_binary;
    leaf(&c, 2, s34, &rng, -1, 1), leaf(&c, 1, s4, &rng, -1, 1);
    { /* the mask is a constant: not counted among the leaves */
      static mrl_tensor mask;
      for (i = 0; i < 12; i++) buf_data[MAXL - 1][i] = mrl_rng_uniform(&rng) > 0.5f;
      mask = mrl_tensor_make(buf_data[MAXL - 1], NULL, 2, s34);
      c.leaf[2] = &mask;
    }
    run_case(&c, &g);
  }
  {
    jcase c;
    memset(&c, 0, sizeof c);
    c.name = "matmul layouts";
    c.build = b_matmul;
    leaf(&c, 2, s34, &rng, -1, 1), leaf(&c, 2, s44, &rng, -1, 1);
    run_case(&c, &g);
  }
  {
    jcase c;
    static mrl_tensor konst;
    float kd[12];
    memset(&c, 0, sizeof c);
    c.name = "shape and indexing ops";
    c.build = b_shape;
    leaf(&c, 2, s34, &rng, -1, 1), leaf(&c, 2, s34, &rng, -1, 1);
    for (i = 0; i < 12; i++) kd[i] = (float)i * 0.1f;
    konst = mrl_tensor_make(kd, NULL, 2, s34);
    c.leaf[2] = &konst;                             /* not a leaf with a tangent: c.n stays 2 */
    c.index[0] = 8, c.index[1] = 1, c.index[2] = 4; /* rows of the [9,4] concat_rows */
    c.index[4] = 3, c.index[5] = 0, c.index[6] = 2; /* one column per row of a */
    run_case(&c, &g);
  }
  {
    jcase c;
    memset(&c, 0, sizeof c);
    c.name = "reductions and softmax";
    c.build = b_reduce;
    leaf(&c, 2, s34, &rng, -1, 1);
    run_case(&c, &g);
  }
  /* recurrences: weights in a store, x and the initial states as leaves, an episode start
   * inside the sequence (row 1 of step 2) */
  {
    jcase c;
    memset(&c, 0, sizeof c);
    mrl_params_init(&p);
    mrl_lstm_init(&c.lstm, &p, "lstm", 3, 5, 2, mrl_init_default(), 1.0f);
    mrl_params_finalize(&p, 3);
    c.params = &p;
    c.name = "LSTM, 2 layers, with an episode start";
    c.build = b_lstm;
    c.starts[7] = 1.0f;
    leaf(&c, 2, sx, &rng, -1, 1), leaf(&c, 2, sh, &rng, -1, 1), leaf(&c, 2, sh, &rng, -1, 1);
    run_case(&c, &g);
    mrl_params_free(&p);
  }
  {
    jcase c;
    memset(&c, 0, sizeof c);
    mrl_params_init(&p);
    mrl_gru_init(&c.gru, &p, "gru", 3, 5, 2, mrl_init_default());
    mrl_params_finalize(&p, 4);
    c.params = &p;
    c.name = "GRU, 2 layers, with an episode start";
    c.build = b_gru;
    c.starts[7] = 1.0f;
    leaf(&c, 2, sx, &rng, -1, 1), leaf(&c, 2, sh, &rng, -1, 1);
    run_case(&c, &g);
    mrl_params_free(&p);
  }
  {
    int relu;
    for (relu = 0; relu < 2; relu++) {
      jcase c;
      memset(&c, 0, sizeof c);
      mrl_params_init(&p);
      mrl_elman_init(&c.elman, &p, "elman", 3, 5, 2, relu ? MRL_ACT_RELU : MRL_ACT_TANH,
                     mrl_init_default());
      mrl_params_finalize(&p, 5);
      c.params = &p;
      c.name = relu ? "Elman (relu)" : "Elman (tanh)";
      c.build = b_elman;
      c.starts[4] = 1.0f;
      leaf(&c, 2, sx, &rng, -1, 1), leaf(&c, 2, sh, &rng, -1, 1);
      run_case(&c, &g);
      mrl_params_free(&p);
    }
  }
  { /* no rule: a clear failure naming the op, nothing else */
    jcase c;
    mrl_tensor *y;
    memset(&c, 0, sizeof c);
    leaf(&c, 2, s34, &rng, -1, 1);
    mrl_graph_reset(&g);
    y = b_no_rule(&g, &c);
    MRL_CHECK(y && mrl_graph_jvp(&g, mrl_nn_jvp_rule, err, sizeof err) == MRL_ERR_INVALID_ARGUMENT,
              "an op without a rule must fail");
    MRL_CHECK(strstr(err, "layernorm") != NULL, "the error names the op: %s", err);
    MRL_CHECK(mrl_backward(&g, mrl_sum(&g, y)) == MRL_OK, "a refused jvp leaves the tape usable");
    /* a replayed tape is refused */
    MRL_CHECK(mrl_graph_jvp(&g, NULL, err, sizeof err) == MRL_ERR_INVALID_ARGUMENT,
              "jvp after backward must fail");
  }
  mrl_graph_free(&g);
  return mrl_test_summary("test_jvp");
}
