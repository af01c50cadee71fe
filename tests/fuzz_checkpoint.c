/* libFuzzer target for the checkpoint loader of memrl_nn.h.
 *
 *   make fuzz                     (FUZZ_TIME=60 seconds by default)
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined tests/fuzz_checkpoint.c -lm
 *   ./a.out -dict=tests/fuzz_checkpoint.dict build/fuzz_corpus tests/fuzz_corpus
 *
 * Each input is a whole file: it is opened from memory, everything the reader
 * offers is used (find, metadata, read_f32), and it is applied to a model of
 * the seeds' layout (MLP 4-8-3 "pi" + LSTM 3->5 "core", the layout of
 * tests/fuzz_corpus/params.safetensors) with every flag combination. Besides
 * the sanitizers' findings, a load that fails but changed the model aborts.
 * Seeds: ./build/test_checkpoint --write-corpus tests/fuzz_corpus */
#define MEMRL_IMPLEMENTATION
#include "../memrl_nn.h"

#include <stdlib.h>
#include <string.h>

typedef struct fuzz_model {
  mrl_params p;
  mrl_mlp pi;
  mrl_lstm_layer core;
  float *saved; /* values, moment1, moment2 before the load */
} fuzz_model;

static void fuzz_model_init(fuzz_model *m) {
  int sizes[3] = {4, 8, 3};
  mrl_params_init(&m->p);
  mrl_mlp_init(&m->pi, &m->p, "pi", 3, sizes, MRL_ACT_TANH, mrl_init_default(), mrl_init_default());
  mrl_lstm_layer_init(&m->core, &m->p, "core", 3, 5, mrl_init_default(), 0.0f);
  if (mrl_params_finalize(&m->p, 1) != MRL_OK) abort();
  m->saved = (float *)malloc(sizeof(float) * 3 * m->p.total);
  if (!m->saved) abort();
}

static void fuzz_snapshot(fuzz_model *m) {
  size_t n = m->p.total;
  memcpy(m->saved, m->p.values, sizeof(float) * n);
  memcpy(m->saved + n, m->p.moment1, sizeof(float) * n);
  memcpy(m->saved + 2 * n, m->p.moment2, sizeof(float) * n);
}

static int fuzz_unchanged(const fuzz_model *m, long long steps) {
  size_t n = m->p.total;
  return memcmp(m->saved, m->p.values, sizeof(float) * n) == 0 &&
         memcmp(m->saved + n, m->p.moment1, sizeof(float) * n) == 0 &&
         memcmp(m->saved + 2 * n, m->p.moment2, sizeof(float) * n) == 0 && steps == m->p.adam_steps;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_model m;
  mrl_checkpoint c;
  int flags;
  fuzz_model_init(&m);
  if (mrl_checkpoint_open_buffer(&c, data, size) == MRL_OK) {
    int i;
    for (i = 0; i < c.num_tensors; i++) {
      const mrl_checkpoint_tensor *t = &c.tensors[i];
      if (mrl_checkpoint_find(&c, t->name) == NULL && t->name_len == strlen(t->name)) abort();
      if (strcmp(t->dtype, "F32") == 0 && t->numel <= 65536) {
        float *out = (float *)malloc(sizeof(float) * ((size_t)t->numel + 1));
        if (mrl_checkpoint_read_f32(t, out, (size_t)t->numel) != MRL_OK) abort();
        free(out);
      }
    }
    for (i = 0; i < c.num_meta; i++)
      if (mrl_checkpoint_meta(&c, c.meta[i].key) != c.meta[i].value &&
          c.meta[i].key_len == strlen(c.meta[i].key)) /* a \u0000 in a key hides it */
        abort();
    for (flags = 0; flags < 8; flags++) {
      long long steps = m.p.adam_steps;
      mrl_result r;
      fuzz_snapshot(&m);
      r = mrl_checkpoint_apply(&c, &m.p, flags);
      if (r != MRL_OK && !fuzz_unchanged(&m, steps)) abort(); /* half-loaded */
    }
    mrl_checkpoint_close(&c);
  } else {
    fuzz_snapshot(&m);
    if (mrl_checkpoint_load_buffer(&m.p, data, size, MRL_CHECKPOINT_OPTIMIZER) == MRL_OK) abort();
    if (!fuzz_unchanged(&m, 0)) abort();
  }
  free(m.saved);
  mrl_params_free(&m.p);
  return 0;
}
