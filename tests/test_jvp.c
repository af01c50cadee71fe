/* Forward-mode derivatives (mrl_graph_jvp, memrl_tensor.h >>jvp and memrl_nn.h
 * >>rnn_jvp): every rule's J v against central finite differences of the
 * forward pass, and against the backward pass through the adjoint identity
 * <u, J v> = <J^T u, v> (tight: both are exact up to rounding). An op without
 * a rule must fail and name itself. */
#define _POSIX_C_SOURCE 200809L
#define MEMRL_IMPLEMENTATION
#include "test.h"
#include "../memrl_mem.h"

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
  mrl_gru_gate gate;
  mrl_tower tower;
  const float *state;   /* the tower's state records (constant) */
  mrl_tensor *konst[4]; /* constants: masks, with no tangent */
  int cfg[8];           /* a case's own shape or option numbers */
  float fd_eps;         /* the finite differences' step (0: 1e-3) */
  int no_fd;            /* a surrogate Jacobian (straight-through): the adjoint check only */
  mrl_core core;
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
  float h = c->fd_eps > 0.0f ? c->fd_eps : 1e-3f;
  mrl_rng rng = mrl_rng_make(99);
  mrl_tensor *y, *ut, *loss;
  char err[128];
  mrl_result r;
  for (i = 0; i < nv; i++) v[i] = mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
  /* J v */
  set_tangents(c, v, 0, 0.0f);
  mrl_graph_reset(g);
  y = c->build(g, c);
  r = mrl_graph_jvp(g, mrl_mem_jvp_rule, err, sizeof err);
  MRL_CHECK(r == MRL_OK, "%s: jvp failed: %s", c->name, err);
  ny = y->size;
  jv = (float *)malloc(sizeof(float) * (size_t)ny * 4);
  fp = jv + ny, fm = fp + ny, u = fm + ny;
  memcpy(jv, y->grad, sizeof(float) * (size_t)ny);
  MRL_CHECK(mrl_backward(g, mrl_sum(g, y)) == MRL_ERR_INVALID_ARGUMENT,
            "%s: a tape holding tangents must refuse backward", c->name);
  /* central finite differences along v */
  mrl_graph_set_no_grad(g, 1);
  set_tangents(c, v, 1, h);
  mrl_graph_reset(g);
  memcpy(fp, c->build(g, c)->data, sizeof(float) * (size_t)ny);
  set_tangents(c, v, 1, -2.0f * h);
  mrl_graph_reset(g);
  memcpy(fm, c->build(g, c)->data, sizeof(float) * (size_t)ny);
  set_tangents(c, v, 1, h);
  mrl_graph_set_no_grad(g, 0);
  for (k = 0; k < ny; k++) {
    double fd = ((double)fp[k] - fm[k]) / (2.0 * h),
           e = fabs(jv[k] - fd) / (3e-3 + 3e-2 * fabs(fd));
    if (e > worst) worst = e;
  }
  MRL_CHECK(c->no_fd || worst <= 1.0, "%s: J v against finite differences: worst ratio %.3g",
            c->name, worst);
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

/* masked softmax and log_softmax (konst[0]: [3, 4] with an empty row), along both axes */
static mrl_tensor *b_masked_softmax(mrl_graph *g, jcase *c) {
  mrl_tensor *a = c->leaf[0], *m = c->konst[0];
  mrl_tensor *y = mrl_add(g, mrl_softmax(g, a, 1, m), mrl_log_softmax_axis(g, a, 1, m));
  y = mrl_add(g, y, mrl_softmax(g, mrl_tanh(g, a), 0, m));
  return mrl_add(g, y, mrl_scale(g, mrl_log_softmax_axis(g, a, 0, m), 0.5f));
}

/* batched matmuls in the three layouts, w's batch of 1 broadcast */
static mrl_tensor *b_bmm(mrl_graph *g, jcase *c) {
  mrl_tensor *a = c->leaf[0], *b = c->leaf[1], *w = c->leaf[2]; /* [2,3,4], [2,4,4], [1,4,4] */
  mrl_tensor *y = mrl_add(g, mrl_matmul(g, a, b), mrl_matmul_nt(g, a, w));
  mrl_tensor *t = mrl_matmul_tn(g, b, mrl_transpose(g, a, 1, 2)); /* [2,4,3] */
  return mrl_add(g, y, mrl_transpose(g, t, 1, 2));
}

static mrl_tensor *b_topk(mrl_graph *g, jcase *c) {
  return mrl_topk(g, mrl_tanh(g, c->leaf[0]), 3, NULL);
}

/* layernorm with an affine weight and bias, and without */
static mrl_tensor *b_layernorm(mrl_graph *g, jcase *c) {
  mrl_tensor *y = mrl_layernorm(g, c->leaf[0], c->leaf[1], c->leaf[2], 1e-5f);
  return mrl_add(g, y,
                 mrl_scale(g, mrl_layernorm(g, mrl_tanh(g, c->leaf[0]), NULL, NULL, 1e-5f), 0.5f));
}

/* cfg: heads, bias (1: a [B,H,T,K] tangent leaf), shifted bias; konst[0]: mask or NULL.
 * leaves: q [B,T,E], k [B,K,E], v [B,K,E], bias */
static mrl_tensor *b_attention(mrl_graph *g, jcase *c) {
  mrl_tensor *bias = c->cfg[1] ? c->leaf[3] : NULL;
  int E = c->leaf[0]->shape[2];
  return mrl_attention_cols(g, c->leaf[0], 0, c->leaf[1], 0, c->leaf[2], 0, E, c->cfg[0], 0.7f,
                            bias, c->konst[0], c->cfg[2]);
}

/* one packed [B, T, 3E] tensor through a linear, as mrl_mha_forward without memory */
static mrl_tensor *b_attention_packed(mrl_graph *g, jcase *c) {
  mrl_tensor *qkv = mrl_linear(g, c->leaf[0], c->leaf[1], NULL);
  int E = c->leaf[0]->shape[2];
  return mrl_attention_cols(g, qkv, 0, qkv, E, qkv, 2 * E, E, 2, 0.5f, NULL, c->konst[0], 0);
}

/* leaves: q [B,T,E], kv [B,K,2E], qr [B,T,E], rk [K,E]; konst[0] the causal mask */
static mrl_tensor *b_rel_attention(mrl_graph *g, jcase *c) {
  int E = c->leaf[0]->shape[2];
  return mrl_rel_attention_cols(g, c->leaf[0], 0, c->leaf[1], 0, c->leaf[1], E, c->leaf[2],
                                c->leaf[3], E, c->cfg[0], 0.6f, c->konst[0]);
}

/* cfg: stride h, stride w, pad h, pad w; leaves x, w, b */
static mrl_tensor *b_conv2d(mrl_graph *g, jcase *c) {
  mrl_tensor *y = mrl_conv2d_rect(g, c->leaf[0], c->leaf[1], c->leaf[2], c->cfg[0], c->cfg[1],
                                  c->cfg[2], c->cfg[3]);
  return mrl_tanh(g, y);
}

static mrl_tensor *b_gru_gate(mrl_graph *g, jcase *c) {
  return mrl_gru_gate_forward(&c->gate, g, c->leaf[0], mrl_tanh(g, c->leaf[1]));
}

/* the DNC's allocation weighting on its own (memrl_mem.h's static op), usages in (0, 1) */
static mrl_tensor *b_dnc_allocation(mrl_graph *g, jcase *c) {
  return mrl__dnc_allocation(g, mrl_sigmoid(g, c->leaf[0]));
}

/* a core on its own (cfg[0] T, cfg[1] B), state from earlier segments */
static mrl_tensor *b_core(mrl_graph *g, jcase *c) {
  return mrl_core_forward(&c->core, g, c->leaf[0], c->cfg[0], c->cfg[1], c->starts, c->state, NULL,
                          c->core.state_dim);
}

/* a whole tower (conv encoder, MLP, GTrXL with its memory from a previous segment) */
static mrl_tensor *b_tower(mrl_graph *g, jcase *c) {
  return mrl_tower_forward(&c->tower, g, c->leaf[0], c->cfg[0], c->cfg[1], c->starts, c->state,
                           NULL, c->tower.state_dim);
}

static mrl_tensor *b_no_rule(mrl_graph *g, jcase *c) {
  int s4[4] = {1, 1, 3, 4};
  return mrl_max_pool2d(g, mrl_reshape(g, c->leaf[0], 4, s4), 2, 1, 0);
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
  {
    jcase c;
    static float mdata[12];
    static mrl_tensor mask;
    memset(&c, 0, sizeof c);
    c.name = "masked softmax and log_softmax";
    c.build = b_masked_softmax;
    leaf(&c, 2, s34, &rng, -2, 2);
    for (i = 0; i < 12; i++) mdata[i] = i / 4 != 1 && i % 3 != 2; /* row 1 keeps nothing */
    mask = mrl_tensor_make(mdata, NULL, 2, s34);
    c.konst[0] = &mask;
    run_case(&c, &g);
  }
  {
    jcase c;
    int sa3[3] = {2, 3, 4}, sb3[3] = {2, 4, 4}, sw3[3] = {1, 4, 4};
    memset(&c, 0, sizeof c);
    c.name = "batched matmul, three layouts, broadcast batch";
    c.build = b_bmm;
    leaf(&c, 3, sa3, &rng, -1, 1), leaf(&c, 3, sb3, &rng, -1, 1), leaf(&c, 3, sw3, &rng, -1, 1);
    run_case(&c, &g);
  }
  {
    jcase c;
    int s37[2] = {3, 7};
    memset(&c, 0, sizeof c);
    c.name = "topk";
    c.build = b_topk;
    leaf(&c, 2, s37, &rng, -2, 2);
    run_case(&c, &g);
  }
  {
    jcase c;
    int sx5[2] = {5, 6}, s6[1] = {6};
    memset(&c, 0, sizeof c);
    c.name = "layernorm, affine and plain";
    c.build = b_layernorm;
    leaf(&c, 2, sx5, &rng, -2, 2), leaf(&c, 1, s6, &rng, -1, 1), leaf(&c, 1, s6, &rng, -1, 1);
    run_case(&c, &g);
  }
  { /* fused attention: plain, with a bias tangent and a broadcast mask holding an empty row,
     * with the relative shift of the bias, one head and a per-batch mask */
    static const int cases[4][6] = {/* B, T, K, E, heads, bias (1 plain, 2 shifted) */
                                    {2, 3, 4, 8, 2, 0},
                                    {2, 3, 4, 8, 2, 1},
                                    {1, 3, 5, 6, 3, 2},
                                    {2, 4, 4, 4, 1, 0}};
    static const char *names[4] = {"attention, no mask", "attention, bias and mask (empty row)",
                                   "attention, shifted bias, causal mask",
                                   "attention, one head, per-batch mask"};
    static float mdata[64];
    static mrl_tensor mask;
    int q;
    for (q = 0; q < 4; q++) {
      jcase c;
      const int *k = cases[q];
      int sq[3], sk[3], sb[4], sm[4], t, j, b;
      memset(&c, 0, sizeof c);
      c.name = names[q];
      c.build = b_attention;
      c.cfg[0] = k[4], c.cfg[1] = k[5] != 0, c.cfg[2] = k[5] == 2;
      sq[0] = sk[0] = k[0], sq[1] = k[1], sk[1] = k[2], sq[2] = sk[2] = k[3];
      sb[0] = k[0], sb[1] = k[4], sb[2] = k[1], sb[3] = k[2];
      leaf(&c, 3, sq, &rng, -1, 1), leaf(&c, 3, sk, &rng, -1, 1), leaf(&c, 3, sk, &rng, -1, 1);
      if (k[5]) leaf(&c, 4, sb, &rng, -1, 1);
      if (q == 1) { /* [T, K]: row 1 keeps nothing */
        for (t = 0; t < k[1]; t++)
          for (j = 0; j < k[2]; j++) mdata[t * k[2] + j] = t != 1 && (t + j) % 3 != 0;
        mask = mrl_tensor_make(mdata, NULL, 2, sb + 2);
        c.konst[0] = &mask;
      } else if (q == 2) { /* causal with K - T cached rows */
        for (t = 0; t < k[1]; t++)
          for (j = 0; j < k[2]; j++) mdata[t * k[2] + j] = j <= k[2] - k[1] + t;
        mask = mrl_tensor_make(mdata, NULL, 2, sb + 2);
        c.konst[0] = &mask;
      } else if (q == 3) { /* [B, 1, 1, K] */
        sm[0] = k[0], sm[1] = sm[2] = 1, sm[3] = k[2];
        for (b = 0; b < k[0]; b++)
          for (j = 0; j < k[2]; j++) mdata[b * k[2] + j] = (b + j) % 4 != 1;
        mask = mrl_tensor_make(mdata, NULL, 4, sm);
        c.konst[0] = &mask;
      }
      run_case(&c, &g);
    }
  }
  {
    jcase c;
    static float mdata[16];
    static mrl_tensor mask;
    int sx3[3] = {2, 4, 6}, sw[2] = {18, 6}, s44b[2] = {4, 4}, t, j;
    memset(&c, 0, sizeof c);
    c.name = "attention on one packed q|k|v tensor, causal";
    c.build = b_attention_packed;
    leaf(&c, 3, sx3, &rng, -1, 1), leaf(&c, 2, sw, &rng, -0.5f, 0.5f);
    for (t = 0; t < 4; t++)
      for (j = 0; j < 4; j++) mdata[t * 4 + j] = j <= t;
    mask = mrl_tensor_make(mdata, NULL, 2, s44b);
    c.konst[0] = &mask;
    run_case(&c, &g);
  }
  {
    static const int cases[2][4] = {{2, 3, 5, 2}, {1, 4, 4, 1}}; /* B, T, K, heads */
    static float mdata[32];
    static mrl_tensor mask;
    int q;
    for (q = 0; q < 2; q++) {
      jcase c;
      const int *k = cases[q];
      int E = 4, sq[3], skv[3], srk[2], sm[2], t, j;
      memset(&c, 0, sizeof c);
      c.name = q ? "relative attention, no memory" : "relative attention, 2 memory rows";
      c.build = b_rel_attention;
      c.cfg[0] = k[3];
      sq[0] = skv[0] = k[0], sq[1] = k[1], skv[1] = k[2], sq[2] = E, skv[2] = 2 * E;
      srk[0] = k[2], srk[1] = E, sm[0] = k[1], sm[1] = k[2];
      leaf(&c, 3, sq, &rng, -1, 1), leaf(&c, 3, skv, &rng, -1, 1), leaf(&c, 3, sq, &rng, -1, 1);
      leaf(&c, 2, srk, &rng, -1, 1);
      for (t = 0; t < k[1]; t++)
        for (j = 0; j < k[2]; j++) mdata[t * k[2] + j] = j <= k[2] - k[1] + t;
      mask = mrl_tensor_make(mdata, NULL, 2, sm);
      c.konst[0] = &mask;
      run_case(&c, &g);
    }
  }
  { /* conv2d: padded with strides, rectangular, and the direct 1x1 path */
    static const int cases[3][10] = {/* N, C, H, W, O, KH, KW, stride h, stride w, pad */
                                     {2, 2, 5, 5, 3, 3, 3, 2, 2, 1},
                                     {1, 3, 4, 6, 2, 2, 3, 1, 2, 0},
                                     {2, 3, 3, 4, 2, 1, 1, 1, 1, 0}};
    static const char *names[3] = {"conv2d, stride 2, padding 1", "conv2d, rectangular",
                                   "conv2d, 1x1 direct"};
    int q;
    for (q = 0; q < 3; q++) {
      jcase c;
      const int *k = cases[q];
      int sx4[4], sw4[4], sb1[1];
      memset(&c, 0, sizeof c);
      c.name = names[q];
      c.build = b_conv2d;
      c.cfg[0] = k[7], c.cfg[1] = k[8], c.cfg[2] = c.cfg[3] = k[9];
      sx4[0] = k[0], sx4[1] = k[1], sx4[2] = k[2], sx4[3] = k[3];
      sw4[0] = k[4], sw4[1] = k[1], sw4[2] = k[5], sw4[3] = k[6], sb1[0] = k[4];
      leaf(&c, 4, sx4, &rng, -1, 1), leaf(&c, 4, sw4, &rng, -0.5f, 0.5f);
      leaf(&c, 1, sb1, &rng, -0.5f, 0.5f);
      run_case(&c, &g);
    }
  }
  {
    jcase c;
    int sg[2] = {5, 4};
    memset(&c, 0, sizeof c);
    mrl_params_init(&p);
    mrl_gru_gate_init(&c.gate, &p, "gate", 4, 0.5f);
    mrl_params_finalize(&p, 6);
    c.params = &p;
    c.name = "GTrXL's GRU gate";
    c.build = b_gru_gate;
    leaf(&c, 2, sg, &rng, -1, 1), leaf(&c, 2, sg, &rng, -1, 1);
    run_case(&c, &g);
    mrl_params_free(&p);
  }
  { /* whole towers over a memory left by a previous segment, an episode start inside the
     * segment: conv encoder, MLP and two GTrXL layers; MLP and HCAM */
    int q;
    for (q = 0; q < 2; q++) {
      jcase c;
      mrl_tower_config tc = mrl_tower_config_default();
      int sxt[2] = {6, 18}, nT = 3, nB = 2;
      float *st, *x0;
      mrl_tensor *xt;
      memset(&c, 0, sizeof c);
      tc.encoder_sizes[0] = 8, tc.num_encoder_layers = 1;
      if (q == 0) {
        tc.use_conv = 1;
        tc.conv = mrl_conv_encoder_config_default();
        tc.conv.in_channels = 2, tc.conv.in_height = 3, tc.conv.in_width = 3;
        tc.conv.num_layers = 1, tc.conv.channels[0] = 2, tc.conv.kernels[0] = 2;
        tc.conv.strides[0] = 1, tc.conv.paddings[0] = 0, tc.conv.linear_out = 6;
        tc.core = mrl_core_config_gtrxl(8, 4);
        tc.core.gtrxl.num_heads = 2, tc.core.gtrxl.ff_dim = 8;
        c.name = "tower: conv, MLP, 2-layer GTrXL with memory";
      } else {
        tc.core = mrl_core_config_hcam(8, 2, 2);
        c.name = "tower: MLP, HCAM with memory";
      }
      mrl_params_init(&p);
      MRL_CHECK(mrl_tower_init(&c.tower, &p, "tower", 18, &tc, 0, err, sizeof err) == MRL_OK,
                "tower: %s", err);
      mrl_params_finalize(&p, 8);
      for (i = 0; i < (int)p.total; i++) p.values[i] += 0.3f * mrl_rng_uniform_range(&rng, -1, 1);
      c.params = &p;
      c.build = b_tower;
      c.fd_eps = 3e-4f; /* a step of 1e-3 on every parameter at once crosses ReLU kinks */
      c.cfg[0] = nT, c.cfg[1] = nB;
      /* the memory: two earlier segments through the same tower */
      st = (float *)calloc((size_t)c.tower.state_dim * nB, sizeof(float));
      x0 = (float *)malloc(sizeof(float) * 6 * 18);
      mrl_graph_set_no_grad(&g, 1);
      for (i = 0; i < 2; i++) {
        int e;
        for (e = 0; e < 6 * 18; e++) x0[e] = mrl_rng_uniform_range(&rng, -1, 1);
        mrl_graph_reset(&g);
        xt = mrl_tensor_from(&g, x0, 2, sxt);
        mrl_tower_forward(&c.tower, &g, xt, nT, nB, NULL, st, st, c.tower.state_dim);
      }
      mrl_graph_set_no_grad(&g, 0);
      c.state = st;
      c.starts[3] = 1.0f; /* step 1 of environment 1 starts an episode */
      leaf(&c, 2, sxt, &rng, -1, 1);
      run_case(&c, &g);
      mrl_tower_free(&c.tower);
      mrl_params_free(&p);
      free(st);
      free(x0);
    }
  }
  {
    jcase c;
    int su[2] = {3, 6};
    memset(&c, 0, sizeof c);
    c.name = "DNC allocation weighting";
    c.build = b_dnc_allocation;
    leaf(&c, 2, su, &rng, -3, 3);
    run_case(&c, &g);
  }
  { /* cores on their own over a memory from an earlier segment, an episode start inside:
     * AMRL sum, exact avg and max (finite differences), straight-through avg and max (the
     * surrogate the backward pass uses: the adjoint identity only); fast weights; the DNC */
    static const int cases[9][2] = {{MRL_AMRL_SUM, 0},
                                    {MRL_AMRL_AVG, 0},
                                    {MRL_AMRL_MAX, 0},
                                    {MRL_AMRL_AVG, 1},
                                    {MRL_AMRL_MAX, 1},
                                    {3, 1},
                                    {2, 2}, /* fwp: head_dim, heads */
                                    {0, 0},
                                    {1, 0}}; /* DNC: links */
    static const char *names[9] = {"AMRL sum",
                                   "AMRL avg (exact)",
                                   "AMRL max (exact)",
                                   "AMRL avg (straight-through)",
                                   "AMRL max (straight-through)",
                                   "fast weights, 1 head",
                                   "fast weights, 2 heads",
                                   "DNC",
                                   "DNC with temporal links"};
    int q;
    for (q = 0; q < 9; q++) {
      jcase c;
      mrl_core_config cc = mrl_core_config_amrl(6, (mrl_amrl_aggregator)cases[q][0]);
      int sxa[2] = {12, 3}, nT = 4, nB = 3, e;
      float *st, x0[36];
      mrl_tensor *xt;
      memset(&c, 0, sizeof c);
      if (q < 5)
        cc.amrl.straight_through = cases[q][1];
      else if (q < 7)
        cc = mrl_core_config_fwp(cases[q][0], cases[q][1]);
      else {
        cc = mrl_core_config_dnc(5, 3, 2);
        cc.dnc.links = cases[q][0];
        cc.hidden_size = 6; /* the controller */
      }
      mrl_params_init(&p);
      MRL_CHECK(mrl_core_init(&c.core, &p, "amrl", 3, &cc, err, sizeof err) == MRL_OK, "core: %s",
                err);
      mrl_params_finalize(&p, 9);
      c.params = &p;
      c.name = names[q];
      c.build = b_core;
      c.no_fd = q == 3 || q == 4;
      c.cfg[0] = nT, c.cfg[1] = nB;
      st = (float *)calloc((size_t)c.core.state_dim * nB + 1, sizeof(float));
      for (e = 0; e < 36; e++) x0[e] = mrl_rng_uniform_range(&rng, -1, 1);
      mrl_graph_reset(&g);
      mrl_graph_set_no_grad(&g, 1);
      xt = mrl_tensor_from(&g, x0, 2, sxa);
      mrl_core_forward(&c.core, &g, xt, nT, nB, NULL, NULL, st, c.core.state_dim);
      mrl_graph_set_no_grad(&g, 0);
      c.state = st;
      c.starts[7] = 1.0f; /* step 2 of environment 1 starts an episode */
      leaf(&c, 2, sxa, &rng, -1, 1);
      run_case(&c, &g);
      mrl_core_free(&c.core);
      mrl_params_free(&p);
      free(st);
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
    MRL_CHECK(strstr(err, "max_pool2d") != NULL, "the error names the op: %s", err);
    MRL_CHECK(mrl_backward(&g, mrl_sum(&g, y)) == MRL_OK, "a refused jvp leaves the tape usable");
    /* a replayed tape is refused */
    MRL_CHECK(mrl_graph_jvp(&g, NULL, err, sizeof err) == MRL_ERR_INVALID_ARGUMENT,
              "jvp after backward must fail");
  }
  mrl_graph_free(&g);
  return mrl_test_summary("test_jvp");
}
