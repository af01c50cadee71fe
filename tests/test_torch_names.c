/* PyTorch's weights as PyTorch names them: memrl's tensor names follow the
 * state_dict keys of the equivalent torch modules (nn.Sequential indices,
 * nn.LSTM's _l<k>, nn.LSTMCell's plain names, top-level modules without a
 * prefix, keys of any length), checkpoints written straight from a PyTorch
 * state_dict load unchanged (float16, bfloat16 and float64 tensors
 * converted), load errors name the tensor, and the torch options Linear/Conv2d
 * bias=False, rectangular Conv2d, Embedding padding_idx and the post-LN
 * TransformerEncoderLayer match PyTorch. Fixtures: tests/ref/torch_names.txt
 * and tests/ref/torch_names_*.safetensors (tools/make_ref.py,
 * make_torch_names).
 *
 * Run from the repository root:
 *   cc -std=c99 -O2 tests/test_torch_names.c -lm && ./a.out */
#include <stdlib.h>
#define MEMRL_IMPLEMENTATION
#include "../memrl_nn.h"
#include "test.h"
#include "ref_loader.h"

/* float32 on both sides, different summation orders. */
#define REF_ATOL 1e-5
#define REF_RTOL 1e-4

static const char *const LONG_PREFIX = "agent_memory_core_with_a_rather_long_descriptive_name."
                                       "transformer_encoder_layers_stack.0";

/* The names of p in declaration order equal names[0..n-1]. */
static int names_are(const mrl_params *p, const char *const *names, int n) {
  int i, ok = p->count == n;
  for (i = 0; ok && i < n; i++) ok = strcmp(p->items[i].name, names[i]) == 0;
  return ok;
}

static int has_text(const char *s, const char *part) {
  return strstr(s, part) != NULL;
}

/* A leaf [ndim, shape] with a gradient, filled from the fixture line. */
static mrl_tensor *ref_leaf(mrl_graph *g, const mrl_ref_file *f, const char *name, int ndim,
                            const int *shape) {
  mrl_tensor *t = mrl_tensor_new(g, ndim, shape, 1);
  if (t) mrl_ref_fill(f, name, t->data, t->size);
  return t;
}

/* sum(y * gy) with gy from the fixture; backward from it. */
static void backward_weighted(mrl_graph *g, const mrl_ref_file *f, const char *gy_name,
                              mrl_tensor *y) {
  float *gy = (float *)malloc(sizeof(float) * (size_t)y->size);
  if (gy && mrl_ref_fill(f, gy_name, gy, y->size)) {
    mrl_tensor *w = mrl_tensor_from(g, gy, y->ndim, y->shape);
    mrl_backward(g, mrl_sum(g, mrl_mul(g, y, w)));
  }
  free(gy);
}

/* ---- names ---- */

static void test_sequential_names(void) {
  static const char *const tanh_names[6] = {"pi.0.weight", "pi.0.bias",   "pi.2.weight",
                                            "pi.2.bias",   "pi.4.weight", "pi.4.bias"};
  static const char *const none_names[4] = {"q.0.weight", "q.0.bias", "q.1.weight", "q.1.bias"};
  static const char *const top_names[4] = {"0.weight", "0.bias", "2.weight", "2.bias"};
  static const char *const duel_names[8] = {
      "h.value.0.weight",     "h.value.0.bias",     "h.value.2.weight",     "h.value.2.bias",
      "h.advantage.0.weight", "h.advantage.0.bias", "h.advantage.2.weight", "h.advantage.2.bias"};
  int sizes[4] = {4, 8, 8, 2};
  mrl_params p;
  mrl_mlp m;
  mrl_dueling_head h;
  mrl_params_init(&p);
  mrl_mlp_init(&m, &p, "pi", 4, sizes, MRL_ACT_TANH, mrl_init_default(), mrl_init_default());
  MRL_CHECK(names_are(&p, tanh_names, 6), "mlp with tanh: nn.Sequential's names .0, .2, .4");
  mrl_params_free(&p);
  mrl_params_init(&p);
  mrl_mlp_init(&m, &p, "q", 3, sizes, MRL_ACT_NONE, mrl_init_default(), mrl_init_default());
  MRL_CHECK(names_are(&p, none_names, 4), "mlp without activation: .0, .1");
  mrl_params_free(&p);
  mrl_params_init(&p);
  mrl_mlp_init(&m, &p, "", 3, sizes, MRL_ACT_RELU, mrl_init_default(), mrl_init_default());
  MRL_CHECK(names_are(&p, top_names, 4), "mlp with prefix \"\": top-level 0.weight, 2.weight");
  mrl_params_free(&p);
  mrl_params_init(&p);
  mrl_dueling_head_init(&h, &p, "h", 5, 8, 3, mrl_init_default());
  MRL_CHECK(names_are(&p, duel_names, 8), "dueling head: streams named as nn.Sequential");
  mrl_params_free(&p);
}

static void test_prefixless_and_cells(void) {
  static const char *const lin_names[2] = {"weight", "bias"};
  static const char *const lstm_names[8] = {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0",
                                            "bias_hh_l0",   "weight_ih_l1", "weight_hh_l1",
                                            "bias_ih_l1",   "bias_hh_l1"};
  static const char *const cell_names[12] = {
      "c.lstm.weight_ih", "c.lstm.weight_hh", "c.lstm.bias_ih", "c.lstm.bias_hh",
      "c.gru.weight_ih",  "c.gru.weight_hh",  "c.gru.bias_ih",  "c.gru.bias_hh",
      "c.rnn.weight_ih",  "c.rnn.weight_hh",  "c.rnn.bias_ih",  "c.rnn.bias_hh"};
  static const char *const layer_names[4] = {"core.weight_ih_l0", "core.weight_hh_l0",
                                             "core.bias_ih_l0", "core.bias_hh_l0"};
  mrl_params p;
  mrl_linear_layer l;
  mrl_lstm s;
  mrl_lstm_layer lc;
  mrl_gru_layer gc;
  mrl_elman_layer ec;
  mrl_params_init(&p);
  mrl_linear_layer_init(&l, &p, NULL, 3, 2, mrl_init_default());
  MRL_CHECK(names_are(&p, lin_names, 2), "linear with a NULL prefix: weight, bias");
  mrl_params_free(&p);
  mrl_params_init(&p);
  mrl_lstm_init(&s, &p, NULL, 3, 4, 2, mrl_init_default(), 0.0f);
  MRL_CHECK(names_are(&p, lstm_names, 8), "bare LSTM stack: weight_ih_l0 ... bias_hh_l1");
  mrl_params_free(&p);
  mrl_params_init(&p);
  mrl_lstm_cell_init(&lc, &p, "c.lstm", 3, 4, mrl_init_default(), 0.0f);
  mrl_gru_cell_init(&gc, &p, "c.gru", 3, 4, mrl_init_default());
  mrl_elman_cell_init(&ec, &p, "c.rnn", 3, 4, MRL_ACT_TANH, mrl_init_default());
  MRL_CHECK(names_are(&p, cell_names, 12), "cells: nn.LSTMCell/GRUCell/RNNCell names, no _l0");
  MRL_CHECK(p.count == 12 && p.items[0].tensor.shape[0] == 16 && p.items[4].tensor.shape[0] == 12 &&
                p.items[8].tensor.shape[0] == 4,
            "cells: gate rows 4H, 3H, H");
  mrl_params_free(&p);
  mrl_params_init(&p);
  mrl_lstm_layer_init(&lc, &p, "core", 3, 4, mrl_init_default(), 0.0f);
  MRL_CHECK(names_are(&p, layer_names, 4), "one-layer LSTM keeps nn.LSTM's _l0 names");
  mrl_params_free(&p);
}

static void test_long_names(void) {
  char prefix[301], name[MRL_NAME_MAX + 8], want[400];
  mrl_params p, q;
  mrl_mha m, m2;
  mrl_linear_layer l;
  void *buf = NULL;
  size_t size = 0;
  int i, w, b, shape[1] = {3};
  mrl_result r;
  /* 300-byte prefix: in_proj_weight and in_proj_bias stay distinct, save and load */
  memset(prefix, 'a', 300);
  prefix[300] = '\0';
  prefix[100] = '.';
  mrl_params_init(&p);
  mrl_mha_init(&m, &p, prefix, 8, 2, 1);
  snprintf(want, sizeof want, "%s.in_proj_weight", prefix);
  w = mrl_params_find(&p, want);
  snprintf(want, sizeof want, "%s.in_proj_bias", prefix);
  b = mrl_params_find(&p, want);
  MRL_CHECK(
      w == m.in_proj_weight && b == m.in_proj_bias && w != b && strlen(p.items[w].name) == 315,
      "long names: %d, %d (want %d, %d), stored whole", w, b, m.in_proj_weight, m.in_proj_bias);
  MRL_CHECK(mrl_params_finalize(&p, 3) == MRL_OK, "long names: finalize");
  r = mrl_checkpoint_save_buffer(&p, NULL, &buf, &size);
  MRL_CHECK(r == MRL_OK, "long names: save %s", mrl_result_string(r));
  mrl_params_init(&q);
  mrl_mha_init(&m2, &q, prefix, 8, 2, 1);
  mrl_params_finalize(&q, 4);
  r = buf ? mrl_checkpoint_load_buffer(&q, buf, size, 0) : MRL_ERR_IO;
  MRL_CHECK(r == MRL_OK && memcmp(p.values, q.values, sizeof(float) * p.total) == 0,
            "long names: load %s (%s)", mrl_result_string(r), q.message);
  MRL_FREE(buf);
  mrl_params_free(&q);
  mrl_params_free(&p);

  /* the longest name fits; one byte more is refused with a message, never cut */
  memset(name, 'n', sizeof name);
  name[MRL_NAME_MAX - 1] = '\0';
  mrl_params_init(&p);
  MRL_CHECK(mrl_params_add(&p, name, 1, shape, mrl_init_default()) == 0 &&
                strlen(p.items[0].name) == MRL_NAME_MAX - 1,
            "a name of MRL_NAME_MAX - 1 bytes is kept whole");
  name[MRL_NAME_MAX - 1] = 'n';
  name[MRL_NAME_MAX] = '\0';
  MRL_CHECK(mrl_params_add(&p, name, 1, shape, mrl_init_default()) == -1 &&
                has_text(p.message, "MRL_NAME_MAX"),
            "a name of MRL_NAME_MAX bytes is refused: '%s'", p.message);
  r = mrl_params_finalize(&p, 1);
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT && p.values == NULL,
            "finalize reports the refused declaration: %s", mrl_result_string(r));
  mrl_params_free(&p);
  /* through a layer: the composed name is too long */
  memset(name, 'x', MRL_NAME_MAX - 3);
  name[MRL_NAME_MAX - 3] = '\0';
  mrl_params_init(&p);
  mrl_linear_layer_init(&l, &p, name, 2, 2, mrl_init_default()); /* + ".weight" */
  MRL_CHECK(p.status == MRL_ERR_INVALID_ARGUMENT && p.count == 0 &&
                has_text(p.message, "MRL_NAME_MAX") &&
                mrl_params_finalize(&p, 1) == MRL_ERR_INVALID_ARGUMENT,
            "layer with a too-long prefix: %d tensors, '%s'", p.count, p.message);
  mrl_params_free(&p);
  /* duplicates */
  mrl_params_init(&p);
  mrl_linear_layer_init(&l, &p, "fc", 2, 2, mrl_init_default());
  mrl_linear_layer_init(&l, &p, "fc", 2, 2, mrl_init_default());
  MRL_CHECK(p.count == 2 && has_text(p.message, "declared twice") &&
                has_text(p.message, "fc.weight") &&
                mrl_params_finalize(&p, 1) == MRL_ERR_INVALID_ARGUMENT,
            "a name declared twice is refused: '%s'", p.message);
  mrl_params_free(&p);
  /* many names: the pool grows and every name stays right */
  mrl_params_init(&p);
  for (i = 0; i < 600; i++) {
    snprintf(want, sizeof want, "block_%d.some_module_with_a_long_name.weight", i);
    mrl_params_add(&p, want, 1, shape, mrl_init_default());
  }
  w = p.count == 600 && p.names_cap > 1024;
  for (i = 0; w && i < 600; i++) {
    snprintf(want, sizeof want, "block_%d.some_module_with_a_long_name.weight", i);
    w = strcmp(p.items[i].name, want) == 0 && mrl_params_find(&p, want) == i;
  }
  MRL_CHECK(w, "600 names through pool growth (capacity %lu)", (unsigned long)p.names_cap);
  mrl_params_free(&p);
}

/* ---- load errors name the tensor ---- */

static void test_load_messages(void) {
  mrl_params a, b;
  mrl_linear_layer la, lb, lc;
  void *buf = NULL;
  size_t size = 0;
  mrl_result r;
  int sh[1] = {2};
  mrl_params_init(&a);
  mrl_linear_layer_init(&la, &a, "enc.fc", 4, 3, mrl_init_default());
  mrl_params_finalize(&a, 1);
  mrl_checkpoint_save_buffer(&a, NULL, &buf, &size);
  if (!buf) {
    MRL_CHECK(0, "load messages: save failed");
    mrl_params_free(&a);
    return;
  }
  /* wrong shape: both shapes */
  mrl_params_init(&b);
  mrl_linear_layer_init(&lb, &b, "enc.fc", 5, 3, mrl_init_default());
  mrl_params_finalize(&b, 1);
  r = mrl_checkpoint_load_buffer(&b, buf, size, 0);
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT && has_text(b.message, "\"enc.fc.weight\"") &&
                has_text(b.message, "[3,4]") && has_text(b.message, "[3,5]"),
            "wrong shape: '%s'", b.message);
  mrl_params_free(&b);
  /* missing */
  mrl_params_init(&b);
  mrl_linear_layer_init(&lb, &b, "enc.fc", 4, 3, mrl_init_default());
  mrl_params_add(&b, "enc.scale", 1, sh, mrl_init_default());
  mrl_params_finalize(&b, 1);
  r = mrl_checkpoint_load_buffer(&b, buf, size, 0);
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT && has_text(b.message, "no tensor \"enc.scale\"") &&
                has_text(b.message, "[2]"),
            "missing tensor: '%s'", b.message);
  mrl_params_free(&b);
  /* extra (the model has no bias), and allowed with the flag */
  mrl_params_init(&b);
  mrl_linear_layer_init_bias(&lc, &b, "enc.fc", 4, 3, 0, mrl_init_default());
  mrl_params_finalize(&b, 1);
  r = mrl_checkpoint_load_buffer(&b, buf, size, 0);
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT && has_text(b.message, "\"enc.fc.bias\"") &&
                has_text(b.message, "not in the model") && has_text(b.message, "F32 [3]"),
            "extra tensor: '%s'", b.message);
  r = mrl_checkpoint_load_buffer(&b, buf, size, MRL_CHECKPOINT_ALLOW_UNKNOWN);
  MRL_CHECK(r == MRL_OK && b.message[0] == '\0' &&
                memcmp(b.values, a.values, sizeof(float) * 12) == 0,
            "extra tensor allowed: %s '%s'", mrl_result_string(r), b.message);
  mrl_params_free(&b);
  MRL_FREE(buf);
  /* an integer dtype */
  {
    static const char hdr[] = "{\"w\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    unsigned char file[8 + sizeof hdr - 1 + 8];
    size_t i, n = sizeof hdr - 1;
    for (i = 0; i < 8; i++) file[i] = (unsigned char)(n >> (8 * i));
    memcpy(file + 8, hdr, n);
    memset(file + 8 + n, 0, 8);
    mrl_params_init(&b);
    mrl_params_add(&b, "w", 1, sh, mrl_init_default());
    mrl_params_finalize(&b, 1);
    r = mrl_checkpoint_load_buffer(&b, file, sizeof file, 0);
    MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT && has_text(b.message, "\"w\" has dtype I32"),
              "integer dtype: '%s'", b.message);
    r = mrl_checkpoint_load_buffer(&b, file, 5, 0);
    MRL_CHECK(r == MRL_ERR_CORRUPT && has_text(b.message, "checkpoint buffer"),
              "corrupt buffer: '%s'", b.message);
    mrl_params_free(&b);
  }
  mrl_params_free(&a);
}

/* ---- dtypes ---- */

static void expect_bits(const mrl_ref_file *f, const char *dtype, const float *got, int n) {
  char hi_name[32], lo_name[32];
  float hi[32], lo[32];
  int i, bad = -1;
  snprintf(hi_name, sizeof hi_name, "dt_%s_hi", dtype);
  snprintf(lo_name, sizeof lo_name, "dt_%s_lo", dtype);
  if (n > 32 || !mrl_ref_fill(f, hi_name, hi, n) || !mrl_ref_fill(f, lo_name, lo, n)) return;
  for (i = 0; i < n && bad < 0; i++) {
    uint32_t u, want = ((uint32_t)hi[i] << 16) | (uint32_t)lo[i];
    memcpy(&u, &got[i], 4);
    if (u != want) bad = i;
  }
  MRL_CHECK(bad < 0, "%s -> float32: element %d bits differ from torch's .float()", dtype, bad);
}

static void test_dtypes(const mrl_ref_file *f) {
  static const char *const names[3] = {"f16", "bf16", "f64"};
  static const int counts[3] = {16, 13, 17};
  const char *path = "tests/ref/torch_names_dtypes.safetensors";
  mrl_checkpoint c;
  mrl_params p;
  float out[32];
  int k, ids[3];
  mrl_result r = mrl_checkpoint_open(&c, path);
  MRL_CHECK(r == MRL_OK, "open %s: %s", path, mrl_result_string(r));
  if (r != MRL_OK) return;
  for (k = 0; k < 3; k++) {
    const mrl_checkpoint_tensor *t = mrl_checkpoint_find(&c, names[k]);
    r = t ? mrl_checkpoint_read_f32(t, out, (size_t)counts[k]) : MRL_ERR_INVALID_ARGUMENT;
    MRL_CHECK(r == MRL_OK, "read_f32 %s: %s", names[k], mrl_result_string(r));
    if (r == MRL_OK) expect_bits(f, names[k], out, counts[k]);
  }
  mrl_checkpoint_close(&c);
  /* the same through a load into a model */
  mrl_params_init(&p);
  for (k = 0; k < 3; k++) ids[k] = mrl_params_add(&p, names[k], 1, &counts[k], mrl_init_default());
  mrl_params_finalize(&p, 1);
  /* the file holds infinities and NaNs on purpose: refused unless allowed, and
   * the check sees them after the conversion (F16/BF16/F64 too) */
  r = mrl_checkpoint_load(&p, path, 0);
  MRL_CHECK(r == MRL_ERR_CORRUPT && strstr(p.message, "non-finite"),
            "load %s with non-finite values, not allowed: %s (%s)", path, mrl_result_string(r),
            p.message);
  r = mrl_checkpoint_load(&p, path, MRL_CHECKPOINT_ALLOW_NON_FINITE);
  MRL_CHECK(r == MRL_OK, "load %s: %s (%s)", path, mrl_result_string(r), p.message);
  if (r == MRL_OK)
    for (k = 0; k < 3; k++)
      expect_bits(f, names[k], mrl_params_tensor(&p, ids[k])->data, counts[k]);
  mrl_params_free(&p);
}

/* ---- the CleanRL-style agent ---- */

static void test_cleanrl_agent(const mrl_ref_file *f) {
  enum { T = 5, B = 2, OBS = 6, H = 32, L = 2 };
  int net_sizes[3] = {OBS, 64, 64}, actor_sizes[3] = {H, 64, 3}, critic_sizes[3] = {H, 64, 1};
  float obs[T * B * OBS], done[T * B], h0[L * B * H], c0[L * B * H];
  mrl_params p;
  mrl_mlp network, actor, critic;
  mrl_lstm lstm;
  mrl_graph g;
  mrl_result r;
  mrl_params_init(&p);
  mrl_mlp_init(&network, &p, "network", 3, net_sizes, MRL_ACT_TANH, mrl_init_default(),
               mrl_init_default());
  network.activate_output = 1; /* the Sequential ends with Tanh */
  mrl_lstm_init(&lstm, &p, "lstm", 64, H, L, mrl_init_default(), 0.0f);
  mrl_mlp_init(&actor, &p, "actor", 3, actor_sizes, MRL_ACT_TANH, mrl_init_default(),
               mrl_init_default());
  mrl_mlp_init(&critic, &p, "critic", 3, critic_sizes, MRL_ACT_TANH, mrl_init_default(),
               mrl_init_default());
  mrl_params_finalize(&p, 7);
  /* exactly the state_dict's tensors: no flag, nothing renamed */
  r = mrl_checkpoint_load(&p, "tests/ref/torch_names_agent.safetensors", 0);
  MRL_CHECK(r == MRL_OK, "CleanRL agent: load %s (%s)", mrl_result_string(r), p.message);
  if (r == MRL_OK && mrl_ref_fill(f, "agent_obs", obs, T * B * OBS) &&
      mrl_ref_fill(f, "agent_done", done, T * B) && mrl_ref_fill(f, "agent_h0", h0, L * B * H) &&
      mrl_ref_fill(f, "agent_c0", c0, L * B * H)) {
    mrl_tensor *x, *y, *hT = NULL, *cT = NULL, *logits, *values;
    mrl_graph_init(&g, 1 << 20);
    x = mrl_mlp_forward(&network, &g, mrl_tensor_from2(&g, obs, T * B, OBS));
    y = mrl_lstm_forward(&lstm, &g, x, T, B, mrl_tensor_from2(&g, h0, L * B, H),
                         mrl_tensor_from2(&g, c0, L * B, H), done, &hT,
                         &cT); /* CleanRL's done = episode_start */
    logits = mrl_mlp_forward(&actor, &g, y);
    values = mrl_mlp_forward(&critic, &g, y);
    MRL_CHECK(logits && values && hT && cT, "CleanRL agent: forward");
    if (logits && values && hT && cT) {
      mrl_ref_expect(f, "agent_logits", logits->data, T * B * 3, REF_ATOL, REF_RTOL);
      mrl_ref_expect(f, "agent_values", values->data, T * B, REF_ATOL, REF_RTOL);
      mrl_ref_expect(f, "agent_hT", hT->data, L * B * H, REF_ATOL, REF_RTOL);
      mrl_ref_expect(f, "agent_cT", cT->data, L * B * H, REF_ATOL, REF_RTOL);
    }
    mrl_graph_free(&g);
  }
  mrl_params_free(&p);
}

/* ---- a bare nn.LSTM, the cells ---- */

static void test_bare_and_cells(const mrl_ref_file *f) {
  mrl_params p;
  mrl_lstm bare;
  mrl_lstm_layer lc;
  mrl_gru_layer gc;
  mrl_elman_layer ec;
  mrl_graph g;
  mrl_result r;
  float x[18], cx[6], ch[8], cc[8];
  mrl_params_init(&p);
  mrl_lstm_init(&bare, &p, NULL, 3, 4, 2, mrl_init_default(), 0.0f);
  mrl_params_finalize(&p, 1);
  r = mrl_checkpoint_load(&p, "tests/ref/torch_names_bare.safetensors", 0);
  MRL_CHECK(r == MRL_OK, "bare nn.LSTM: load %s (%s)", mrl_result_string(r), p.message);
  mrl_graph_init(&g, 1 << 16);
  if (r == MRL_OK && mrl_ref_fill(f, "bare_x", x, 18)) {
    mrl_tensor *y = mrl_lstm_forward(&bare, &g, mrl_tensor_from2(&g, x, 6, 3), 3, 2, NULL, NULL,
                                     NULL, NULL, NULL);
    if (y) mrl_ref_expect(f, "bare_y", y->data, 24, REF_ATOL, REF_RTOL);
  }
  mrl_params_free(&p);
  mrl_graph_reset(&g);
  mrl_params_init(&p);
  mrl_lstm_cell_init(&lc, &p, "lstm_cell", 3, 4, mrl_init_default(), 0.0f);
  mrl_gru_cell_init(&gc, &p, "gru_cell", 3, 4, mrl_init_default());
  mrl_elman_cell_init(&ec, &p, "rnn_cell", 3, 4, MRL_ACT_TANH, mrl_init_default());
  mrl_params_finalize(&p, 1);
  r = mrl_checkpoint_load(&p, "tests/ref/torch_names_cells.safetensors", 0);
  MRL_CHECK(r == MRL_OK, "cells: load %s (%s)", mrl_result_string(r), p.message);
  if (r == MRL_OK && mrl_ref_fill(f, "cell_x", cx, 6) && mrl_ref_fill(f, "cell_h0", ch, 8) &&
      mrl_ref_fill(f, "cell_c0", cc, 8)) {
    mrl_tensor *xt = mrl_tensor_from2(&g, cx, 2, 3), *ht = mrl_tensor_from2(&g, ch, 2, 4);
    mrl_tensor *h1 = NULL, *c1 = NULL, *gh, *rh;
    mrl_lstm_cell(&lc, &g, xt, ht, mrl_tensor_from2(&g, cc, 2, 4), NULL, &h1, &c1);
    gh = mrl_gru_cell(&gc, &g, xt, ht, NULL);
    rh = mrl_elman_cell(&ec, &g, xt, ht, NULL);
    if (h1 && c1 && gh && rh) {
      mrl_ref_expect(f, "lstm_h1", h1->data, 8, REF_ATOL, REF_RTOL);
      mrl_ref_expect(f, "lstm_c1", c1->data, 8, REF_ATOL, REF_RTOL);
      mrl_ref_expect(f, "gru_h1", gh->data, 8, REF_ATOL, REF_RTOL);
      mrl_ref_expect(f, "rnn_h1", rh->data, 8, REF_ATOL, REF_RTOL);
    }
  }
  mrl_params_free(&p);
  mrl_graph_free(&g);
}

/* ---- post-LN TransformerEncoderLayer at a long path ---- */

static void test_post_ln_long(const mrl_ref_file *f) {
  mrl_transformer_block_config cfg = mrl_transformer_block_config_default();
  mrl_transformer_block blk;
  mrl_params p;
  mrl_graph g;
  mrl_result r;
  int shape[3] = {2, 3, 8}, i;
  MRL_CHECK(cfg.ff_dim == 2048 && cfg.norm_first == 0 && cfg.layer_norm_eps == 1e-5f &&
                cfg.activation == MRL_FFN_RELU,
            "transformer config: torch's defaults");
  mrl_params_init(&p);
  cfg.embed_dim = 8;
  cfg.num_heads = 3;
  r = mrl_transformer_block_init_config(&blk, &p, "t", &cfg);
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT && p.count == 0 && has_text(p.message, "num_heads"),
            "transformer config: 8 dims over 3 heads refused: '%s'", p.message);
  cfg.num_heads = 2;
  cfg.ff_dim = 16;
  r = mrl_transformer_block_init_config(&blk, &p, LONG_PREFIX, &cfg);
  MRL_CHECK(r == MRL_OK && blk.norm_first == 0 && p.count == 12, "post-LN block: init %s",
            mrl_result_string(r));
  mrl_params_finalize(&p, 1);
  r = mrl_checkpoint_load(&p, "tests/ref/torch_names_long.safetensors", 0);
  MRL_CHECK(r == MRL_OK, "post-LN block: load %s (%s)", mrl_result_string(r), p.message);
  mrl_graph_init(&g, 1 << 18);
  if (r == MRL_OK) {
    mrl_tensor *x = ref_leaf(&g, f, "long_x", 3, shape);
    mrl_tensor *y = mrl_transformer_block_forward(&blk, &g, x, NULL, NULL);
    if (y) {
      mrl_ref_expect(f, "long_y", y->data, y->size, REF_ATOL, REF_RTOL);
      backward_weighted(&g, f, "long_gy", y);
      mrl_ref_expect(f, "long_dx", x->grad, x->size, REF_ATOL, REF_RTOL);
      for (i = 0; i < p.count; i++) { /* the fixture's lines are named by the long keys */
        char name[256];
        snprintf(name, sizeof name, "d_%s", p.items[i].name);
        mrl_ref_expect(f, name, p.items[i].tensor.grad, p.items[i].tensor.size, REF_ATOL, REF_RTOL);
      }
    }
  }
  mrl_graph_free(&g);
  mrl_params_free(&p);
}

/* ---- Conv2d: rectangular, bias=False ---- */

static void test_conv(const mrl_ref_file *f) {
  int t, xs[4] = {2, 3, 5, 4};
  for (t = 0; t < 2; t++) {
    const char *tag = t ? "convb_" : "conv_";
    mrl_conv2d_config c = mrl_conv2d_config_default();
    mrl_conv2d_layer l;
    mrl_params p;
    mrl_graph g;
    mrl_result r;
    char nm[32];
    c.in_channels = 3;
    c.out_channels = t ? 2 : 4;
    c.kernel_h = t ? 2 : 3;
    c.kernel_w = t ? 3 : 2;
    c.stride_h = t ? 1 : 2;
    c.stride_w = t ? 2 : 1;
    c.pad_h = t ? 0 : 1;
    c.pad_w = t ? 1 : 0;
    c.bias = t;
    mrl_params_init(&p);
    r = mrl_conv2d_layer_init_config(&l, &p, "conv", &c);
    MRL_CHECK(r == MRL_OK && p.count == 1 + t && (t ? l.bias == 1 : l.bias == -1) &&
                  p.items[0].tensor.shape[2] == c.kernel_h &&
                  p.items[0].tensor.shape[3] == c.kernel_w,
              "%s: init (%d tensors)", tag, p.count);
    mrl_params_finalize(&p, 1);
    snprintf(nm, sizeof nm, "%sweight", tag);
    mrl_ref_fill(f, nm, mrl_params_tensor(&p, l.weight)->data,
                 mrl_params_tensor(&p, l.weight)->size);
    if (t) mrl_ref_fill(f, "convb_bias", mrl_params_tensor(&p, l.bias)->data, 2);
    mrl_graph_init(&g, 1 << 18);
    {
      mrl_tensor *x, *y;
      snprintf(nm, sizeof nm, "%sx", tag);
      x = ref_leaf(&g, f, nm, 4, xs);
      y = mrl_conv2d_layer_forward(&l, &g, x);
      if (y) {
        snprintf(nm, sizeof nm, "%sy", tag);
        mrl_ref_expect(f, nm, y->data, y->size, REF_ATOL, REF_RTOL);
        snprintf(nm, sizeof nm, "%sgy", tag);
        backward_weighted(&g, f, nm, y);
        snprintf(nm, sizeof nm, "%sdx", tag);
        mrl_ref_expect(f, nm, x->grad, x->size, REF_ATOL, REF_RTOL);
        snprintf(nm, sizeof nm, "%sdweight", tag);
        mrl_ref_expect(f, nm, mrl_params_tensor(&p, l.weight)->grad,
                       mrl_params_tensor(&p, l.weight)->size, REF_ATOL, REF_RTOL);
        if (t)
          mrl_ref_expect(f, "convb_dbias", mrl_params_tensor(&p, l.bias)->grad, 2, REF_ATOL,
                         REF_RTOL);
      }
    }
    mrl_graph_free(&g);
    mrl_params_free(&p);
  }
  { /* a bad config names its field */
    mrl_conv2d_config c = mrl_conv2d_config_default();
    mrl_conv2d_layer l;
    mrl_params p;
    c.in_channels = 3;
    c.out_channels = 4;
    c.kernel_h = 3;
    mrl_params_init(&p);
    MRL_CHECK(mrl_conv2d_layer_init_config(&l, &p, "conv", &c) == MRL_ERR_INVALID_ARGUMENT &&
                  p.count == 0 && has_text(p.message, "kernel_w"),
              "conv config without kernel_w: '%s'", p.message);
    mrl_params_free(&p);
  }
}

/* ---- Embedding padding_idx, Linear bias=False ---- */

static void test_embedding_padding(const mrl_ref_file *f) {
  mrl_embedding e;
  mrl_params p;
  mrl_graph g;
  float idsf[6];
  int ids[6], i, zero = 1, other = 0, wshape[2];
  mrl_params_init(&p);
  mrl_embedding_init_padding(&e, &p, "emb", 5, 3, 1, mrl_init_default());
  mrl_params_finalize(&p, 9);
  for (i = 0; i < 15; i++) {
    float v = mrl_params_tensor(&p, e.weight)->data[i];
    if (i / 3 == 1)
      zero = zero && v == 0.0f;
    else
      other += v != 0.0f;
  }
  MRL_CHECK(e.padding_idx == 1 && zero && other == 12, "padding_idx: row 1 zero after init");
  wshape[0] = 5;
  wshape[1] = 3;
  mrl_ref_fill(f, "emb_weight", mrl_params_tensor(&p, e.weight)->data, 15);
  if (mrl_ref_fill(f, "emb_ids", idsf, 6)) {
    mrl_tensor *y;
    for (i = 0; i < 6; i++) ids[i] = (int)idsf[i];
    mrl_graph_init(&g, 1 << 16);
    y = mrl_embedding_forward(&e, &g, ids, 6);
    if (y) {
      mrl_ref_expect(f, "emb_y", y->data, 18, REF_ATOL, REF_RTOL);
      backward_weighted(&g, f, "emb_gy", y);
      mrl_ref_expect(f, "emb_dweight", mrl_params_tensor(&p, e.weight)->grad, 15, REF_ATOL,
                     REF_RTOL);
    }
    mrl_graph_free(&g);
  }
  mrl_params_free(&p);
  (void)wshape;
  mrl_params_init(&p);
  mrl_embedding_init_padding(&e, &p, "emb", 5, 3, -2, mrl_init_default());
  MRL_CHECK(e.padding_idx == 3, "padding_idx -2 of 5 is row 3 (got %d)", e.padding_idx);
  mrl_params_free(&p);
  mrl_params_init(&p);
  mrl_embedding_init_padding(&e, &p, "emb", 5, 3, 5, mrl_init_default());
  MRL_CHECK(mrl_params_finalize(&p, 1) == MRL_ERR_INVALID_ARGUMENT &&
                has_text(p.message, "padding_idx 5"),
            "padding_idx 5 of 5 refused: '%s'", p.message);
  mrl_params_free(&p);
}

static void test_linear_no_bias(const mrl_ref_file *f) {
  mrl_linear_layer l;
  mrl_params p;
  mrl_graph g;
  int xs[2] = {2, 4};
  mrl_params_init(&p);
  mrl_linear_layer_init_bias(&l, &p, "lin", 4, 3, 0, mrl_init_default());
  MRL_CHECK(p.count == 1 && l.bias == -1 && strcmp(p.items[0].name, "lin.weight") == 0,
            "Linear bias=False: one tensor lin.weight");
  mrl_params_finalize(&p, 1);
  mrl_ref_fill(f, "lin_weight", mrl_params_tensor(&p, l.weight)->data, 12);
  mrl_graph_init(&g, 1 << 16);
  {
    mrl_tensor *x = ref_leaf(&g, f, "lin_x", 2, xs), *y = mrl_linear_layer_forward(&l, &g, x);
    if (y) {
      mrl_ref_expect(f, "lin_y", y->data, 6, REF_ATOL, REF_RTOL);
      backward_weighted(&g, f, "lin_gy", y);
      mrl_ref_expect(f, "lin_dx", x->grad, 8, REF_ATOL, REF_RTOL);
      mrl_ref_expect(f, "lin_dweight", mrl_params_tensor(&p, l.weight)->grad, 12, REF_ATOL,
                     REF_RTOL);
    }
  }
  mrl_graph_free(&g);
  mrl_params_free(&p);
}

int main(void) {
  mrl_ref_file f;
  test_sequential_names();
  test_prefixless_and_cells();
  test_long_names();
  test_load_messages();
  if (mrl_ref_open(&f, "tests/ref/torch_names.txt")) {
    test_dtypes(&f);
    test_cleanrl_agent(&f);
    test_bare_and_cells(&f);
    test_post_ln_long(&f);
    test_conv(&f);
    test_embedding_padding(&f);
    test_linear_no_bias(&f);
    mrl_ref_close(&f);
  }
  return mrl_test_summary("test_torch_names");
}
