/* Tests for memrl_nn.h's checkpoints (safetensors): round trips with and
 * without optimiser state, the exact bytes of a small file, the reference
 * implementation's own test vectors, every corruption the loader must reject
 * (and that a failed load leaves the model untouched), model mismatches,
 * metadata, atomic saves (a failing write, a file size limit, a killed
 * writer), the byte-swapping path of big-endian hosts, a deterministic
 * mutation loop over valid files, and a checkpoint written by PyTorch
 * (tests/ref/torch_written.*, made by tools/make_ref.py) that memrl loads and
 * keeps training from.
 *
 * It also writes build/memrl_written.safetensors and .expect, which
 * tools/safetensors_io.py checks from Python (a `check` line in
 * tools/run_tests.sh), and with --write-corpus DIR the libFuzzer seeds.
 *
 * Run from the repository root:
 *   cc -std=c99 -O2 tests/test_checkpoint.c -lm && ./a.out */
#if !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L /* fork, kill, setrlimit, opendir for the atomicity tests */
#endif
#include <stdlib.h>

/* An allocator that fails once its budget is spent (-1: never), to show that
 * every allocation failure is an MRL_ERR_OUT_OF_MEMORY, never a crash, a leak
 * (the sanitizer build checks leaks) or a half-loaded model. */
static long test_alloc_budget = -1;
static void *test_malloc(size_t n) {
  if (test_alloc_budget == 0) return NULL;
  if (test_alloc_budget > 0) test_alloc_budget--;
  return malloc(n);
}
static void *test_realloc(void *p, size_t n) {
  if (test_alloc_budget == 0) return NULL;
  if (test_alloc_budget > 0) test_alloc_budget--;
  return realloc(p, n);
}
#define MRL_MALLOC(n) test_malloc(n)
#define MRL_REALLOC(p, n) test_realloc(p, n)
#define MRL_FREE(p) free(p)
#define MEMRL_IMPLEMENTATION
#include "../memrl_nn.h"
#include "test.h"
#include "ref_loader.h"

#if defined(__unix__) || defined(__APPLE__)
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <fcntl.h> /* AT_FDCWD */
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#define HAVE_POSIX 1
#endif

#define CKPT_DIR "build/ckpt_test"

/* ------------------------------------------------------------------------ */
/* helpers                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct model {
  mrl_params p;
  mrl_mlp pi;
  mrl_lstm_layer core;
} model;

/* MLP 4-8-3 "pi" and LSTM 3->5 "core": the same names as the PyTorch fixture. */
static void model_init(model *m, uint64_t seed, int hidden) {
  int sizes[3];
  sizes[0] = 4;
  sizes[1] = hidden;
  sizes[2] = 3;
  mrl_params_init(&m->p);
  mrl_mlp_init(&m->pi, &m->p, "pi", 3, sizes, MRL_ACT_TANH, mrl_init_default(), mrl_init_default());
  mrl_lstm_layer_init(&m->core, &m->p, "core", 3, 5, mrl_init_default(), 0.0f);
  MRL_CHECK(mrl_params_finalize(&m->p, seed) == MRL_OK, "finalize failed");
}

/* Fills gradients with values and takes `steps` Adam steps, so that values,
 * moments and the step count all differ from a fresh model. */
static void model_train(model *m, int steps, uint64_t seed) {
  mrl_rng rng = mrl_rng_make(seed);
  mrl_adam_config cfg = mrl_adam_config_default();
  int s;
  size_t j;
  for (s = 0; s < steps; s++) {
    for (j = 0; j < m->p.total; j++) m->p.grads[j] = mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
    mrl_adam_step(&m->p, &cfg);
  }
}

static int same_floats(const float *a, const float *b, size_t n) {
  return n == 0 || memcmp(a, b, sizeof(float) * n) == 0;
}

/* The tensors of two stores of the same layout are bitwise equal (buffer 0:
 * values, 1: first moments, 2: second moments; the padding between tensors
 * is not part of a checkpoint). */
static int same_tensors(const mrl_params *a, const mrl_params *b, int which) {
  int i;
  if (a->count != b->count) return 0;
  for (i = 0; i < a->count; i++) {
    const float *x = which == 0 ? a->values : which == 1 ? a->moment1 : a->moment2;
    const float *y = which == 0 ? b->values : which == 1 ? b->moment1 : b->moment2;
    if (!same_floats(x + a->items[i].offset, y + b->items[i].offset,
                     (size_t)a->items[i].tensor.size))
      return 0;
  }
  return 1;
}

/* Exactly the fixture's values (float32 printed with %.9g reads back exactly). */
static void expect_exact(const mrl_ref_file *f, const char *name, const float *got, int n) {
  float *want;
  int count = mrl_ref_get(f, name, &want, NULL, NULL);
  if (count < 0) return;
  MRL_CHECK(count == n && same_floats(got, want, (size_t)n), "%s differs from PyTorch's", name);
  free(want);
}

/* A copy of everything a load may change, to prove a failed load changed nothing. */
typedef struct snapshot {
  float *values, *m1, *m2;
  long long steps;
  size_t n;
} snapshot;

static void snap_take(snapshot *s, const mrl_params *p) {
  s->n = p->total;
  s->values = (float *)malloc(sizeof(float) * (s->n + 1));
  s->m1 = (float *)malloc(sizeof(float) * (s->n + 1));
  s->m2 = (float *)malloc(sizeof(float) * (s->n + 1));
  memcpy(s->values, p->values, sizeof(float) * s->n);
  memcpy(s->m1, p->moment1, sizeof(float) * s->n);
  memcpy(s->m2, p->moment2, sizeof(float) * s->n);
  s->steps = p->adam_steps;
}

static int snap_same(const snapshot *s, const mrl_params *p) {
  return s->n == p->total && same_floats(s->values, p->values, s->n) &&
         same_floats(s->m1, p->moment1, s->n) && same_floats(s->m2, p->moment2, s->n) &&
         s->steps == p->adam_steps;
}

static void snap_free(snapshot *s) {
  free(s->values);
  free(s->m1);
  free(s->m2);
}

static unsigned char *read_all(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  unsigned char *b = NULL;
  size_t cap = 0, n = 0;
  *size = 0;
  if (!f) return NULL;
  for (;;) {
    size_t got;
    if (n == cap) {
      cap = cap ? 2 * cap : 4096;
      b = (unsigned char *)realloc(b, cap);
    }
    got = fread(b + n, 1, cap - n, f);
    n += got;
    if (!got) break;
  }
  fclose(f);
  *size = n;
  return b;
}

static int write_all(const char *path, const void *d, size_t n) {
  FILE *f = fopen(path, "wb");
  int ok;
  if (!f) return 0;
  ok = fwrite(d, 1, n, f) == n;
  return fclose(f) == 0 && ok;
}

static int file_equals(const char *path, const unsigned char *d, size_t n) {
  size_t m;
  unsigned char *b = read_all(path, &m);
  int same = b && m == n && memcmp(b, d, n) == 0;
  free(b);
  return same;
}

/* A file from a header text and `data_len` data bytes (value i&0xff); the
 * header length field is strlen(hdr) unless forced_n != (uint64_t)-1. */
static unsigned char *make_file(const char *hdr, size_t data_len, uint64_t forced_n, size_t *size) {
  size_t h = strlen(hdr), i;
  uint64_t n = forced_n == (uint64_t)-1 ? (uint64_t)h : forced_n;
  unsigned char *b = (unsigned char *)malloc(8 + h + data_len + 1);
  for (i = 0; i < 8; i++) b[i] = (unsigned char)(n >> (8 * i));
  memcpy(b + 8, hdr, h);
  for (i = 0; i < data_len; i++) b[8 + h + i] = (unsigned char)(i & 0xff);
  *size = 8 + h + data_len;
  return b;
}

static mrl_result open_text(const char *hdr, size_t data_len) {
  size_t n;
  unsigned char *b = make_file(hdr, data_len, (uint64_t)-1, &n);
  mrl_checkpoint c;
  mrl_result r = mrl_checkpoint_open_buffer(&c, b, n);
  mrl_checkpoint_close(&c);
  free(b);
  return r;
}

/* CRC-32 (IEEE, as zlib.crc32) for the Python cross-check. */
static uint32_t crc32_bytes(const unsigned char *d, size_t n) {
  uint32_t c = 0xffffffffu;
  size_t i;
  int k;
  for (i = 0; i < n; i++) {
    c ^= d[i];
    for (k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return c ^ 0xffffffffu;
}

/* ------------------------------------------------------------------------ */
/* round trips                                                              */
/* ------------------------------------------------------------------------ */

static void test_roundtrip(void) {
  model a, b;
  const char *kv[4] = {"env", "CartPole-v1", "seed", "42"};
  mrl_checkpoint_options o = mrl_checkpoint_options_default();
  mrl_checkpoint c;
  const char *path = CKPT_DIR "/roundtrip.safetensors";
  mrl_result r;
  model_init(&a, 1, 8);
  model_train(&a, 3, 7);
  model_init(&b, 2, 8);
  o.save_optimizer = 1;
  o.config = "{\"lr\": 0.001, \"name\": \"ppo \\\"lstm\\\"\"}";
  o.metadata = kv;
  o.num_metadata = 2;
  r = mrl_checkpoint_save(&a.p, path, &o);
  MRL_CHECK(r == MRL_OK, "save: %s", mrl_result_string(r));

  /* parameters only: values copied, moments and steps untouched */
  r = mrl_checkpoint_load(&b.p, path, 0);
  MRL_CHECK(r == MRL_OK, "load: %s", mrl_result_string(r));
  MRL_CHECK(same_tensors(&a.p, &b.p, 0), "values differ after load");
  MRL_CHECK(b.p.adam_steps == 0 && b.p.moment1[0] == 0.0f,
            "a load without MRL_CHECKPOINT_OPTIMIZER changed the optimiser state");

  /* with optimiser state: bitwise equal, step count restored */
  r = mrl_checkpoint_load(&b.p, path, MRL_CHECKPOINT_OPTIMIZER);
  MRL_CHECK(r == MRL_OK, "load with optimiser: %s", mrl_result_string(r));
  MRL_CHECK(same_tensors(&a.p, &b.p, 1) && same_tensors(&a.p, &b.p, 2),
            "Adam moments differ after load");
  MRL_CHECK(b.p.adam_steps == 3, "adam_steps %lld, want 3", b.p.adam_steps);

  /* training continues identically from the loaded state */
  model_train(&a, 2, 99);
  model_train(&b, 2, 99);
  MRL_CHECK(same_tensors(&a.p, &b.p, 0), "training diverged after reload");

  /* metadata read back */
  r = mrl_checkpoint_open(&c, path);
  MRL_CHECK(r == MRL_OK, "open: %s", mrl_result_string(r));
  if (r == MRL_OK) {
    const char *v = mrl_checkpoint_meta(&c, "memrl.version");
    MRL_CHECK(v && strcmp(v, "0.1.0") == 0, "memrl.version = %s", v ? v : "(none)");
    v = mrl_checkpoint_meta(&c, "memrl.config");
    MRL_CHECK(v && strcmp(v, o.config) == 0, "memrl.config = %s", v ? v : "(none)");
    v = mrl_checkpoint_meta(&c, "memrl.adam_steps");
    MRL_CHECK(v && strcmp(v, "3") == 0, "memrl.adam_steps = %s", v ? v : "(none)");
    v = mrl_checkpoint_meta(&c, "env");
    MRL_CHECK(v && strcmp(v, "CartPole-v1") == 0, "env = %s", v ? v : "(none)");
    v = mrl_checkpoint_meta(&c, "seed");
    MRL_CHECK(v && strcmp(v, "42") == 0, "seed = %s", v ? v : "(none)");
    MRL_CHECK(mrl_checkpoint_meta(&c, "absent") == NULL, "absent key found");
    MRL_CHECK(c.num_meta == 5, "%d metadata entries, want 5", c.num_meta);
    MRL_CHECK(c.num_tensors == 3 * a.p.count, "%d tensors, want %d", c.num_tensors, 3 * a.p.count);
    {
      const mrl_checkpoint_tensor *t = mrl_checkpoint_find(&c, "core.weight_hh_l0.adam_v");
      MRL_CHECK(t && strcmp(t->dtype, "F32") == 0 && t->ndim == 2 && t->shape[0] == 20 &&
                    t->shape[1] == 5,
                "core.weight_hh_l0.adam_v missing or misdescribed");
      MRL_CHECK(mrl_checkpoint_find(&c, "core.weight_hh") == NULL, "a prefix matched a name");
    }
    mrl_checkpoint_close(&c);
  }

  /* the buffer saver gives the same bytes as the file */
  {
    void *buf = NULL;
    size_t n = 0;
    mrl_params_free(&b.p);
    model_init(&b, 5, 8);
    r = mrl_checkpoint_save(&a.p, path, &o);
    MRL_CHECK(r == MRL_OK, "save: %s", mrl_result_string(r));
    r = mrl_checkpoint_save_buffer(&a.p, &o, &buf, &n);
    MRL_CHECK(r == MRL_OK && file_equals(path, (const unsigned char *)buf, n),
              "save_buffer and save differ");
    r = mrl_checkpoint_load_buffer(&b.p, buf, n, MRL_CHECKPOINT_OPTIMIZER);
    MRL_CHECK(r == MRL_OK && same_tensors(&a.p, &b.p, 0) && b.p.adam_steps == a.p.adam_steps,
              "load_buffer: %s", mrl_result_string(r));
    MRL_FREE(buf);
  }
  mrl_params_free(&a.p);
  mrl_params_free(&b.p);
}

/* Exactly the bytes the format prescribes, for a one-tensor store. */
static void test_exact_bytes(void) {
  mrl_params p;
  int shape[3] = {1, 2, 3}, i;
  const char *want_hdr =
      "{\"__metadata__\":{\"memrl.version\":\"0.1.0\"},\"w\":{\"dtype\":\"F32\",\"shape\":[1,2,"
      "3],\"data_offsets\":[0,24]}}";
  void *buf = NULL;
  size_t n = 0, h = strlen(want_hdr), padded = (h + 7) / 8 * 8;
  unsigned char *b;
  mrl_params_init(&p);
  mrl_params_add(&p, "w", 3, shape, mrl_init_make(MRL_INIT_ZEROS, 0.0f));
  mrl_params_finalize(&p, 0);
  for (i = 0; i < 6; i++) p.values[i] = (float)i;
  MRL_CHECK(mrl_checkpoint_save_buffer(&p, NULL, &buf, &n) == MRL_OK, "save_buffer failed");
  b = (unsigned char *)buf;
  MRL_CHECK(n == 8 + padded + 24, "size %zu, want %zu", n, 8 + padded + 24);
  if (n == 8 + padded + 24) {
    uint64_t len = 0;
    for (i = 7; i >= 0; i--) len = (len << 8) | b[i];
    MRL_CHECK(len == padded && len % 8 == 0, "header length %llu, want %zu",
              (unsigned long long)len, padded);
    MRL_CHECK(memcmp(b + 8, want_hdr, h) == 0, "header text differs: %.*s", (int)h, b + 8);
    for (i = (int)h; i < (int)padded; i++) MRL_CHECK(b[8 + i] == ' ', "padding is not spaces");
    /* 1.0f is 00 00 80 3f in little-endian */
    MRL_CHECK(b[8 + padded + 4] == 0x00 && b[8 + padded + 5] == 0x00 && b[8 + padded + 6] == 0x80 &&
                  b[8 + padded + 7] == 0x3f,
              "data is not little-endian float32");
  }
  MRL_FREE(buf);
  mrl_params_free(&p);
}

/* Test vectors of the reference implementation (huggingface/safetensors
 * tensor.rs tests), and the reference's acceptance of trailing whitespace. */
static void test_reference_vectors(void) {
  static const char attn[] = "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,"
                             "24]}}"; /* 64 bytes: no padding needed */
  unsigned char *b;
  size_t n;
  mrl_checkpoint c;
  float v[6];
  int i;
  b = make_file(attn, 0, (uint64_t)-1, &n);
  b = (unsigned char *)realloc(b, n + 24);
  for (i = 0; i < 6; i++) {
    float f = (float)i;
    uint32_t u;
    memcpy(&u, &f, 4);
    b[n + 4 * i] = (unsigned char)u;
    b[n + 4 * i + 1] = (unsigned char)(u >> 8);
    b[n + 4 * i + 2] = (unsigned char)(u >> 16);
    b[n + 4 * i + 3] = (unsigned char)(u >> 24);
  }
  MRL_CHECK(b[0] == 64, "vector header length");
  MRL_CHECK(mrl_checkpoint_open_buffer(&c, b, n + 24) == MRL_OK, "reference vector rejected");
  {
    const mrl_checkpoint_tensor *t = mrl_checkpoint_find(&c, "attn.0");
    MRL_CHECK(t && mrl_checkpoint_read_f32(t, v, 6) == MRL_OK && v[0] == 0.0f && v[5] == 5.0f,
              "reference vector values");
    MRL_CHECK(t && mrl_checkpoint_read_f32(t, v, 5) == MRL_ERR_INVALID_ARGUMENT,
              "read_f32 with a wrong count");
  }
  mrl_checkpoint_close(&c);
  free(b);
  /* the empty file and the empty file with metadata, as the reference writes them */
  MRL_CHECK(open_text("{}      ", 0) == MRL_OK, "empty checkpoint rejected");
  MRL_CHECK(open_text("{\"__metadata__\":{\"framework\":\"pt\"}}     ", 0) == MRL_OK,
            "metadata-only checkpoint rejected");
  MRL_CHECK(open_text("{}\r \t\n", 0) == MRL_OK, "trailing JSON whitespace rejected");
  MRL_CHECK(open_text("\t\n{}\r ", 0) == MRL_ERR_CORRUPT, "leading whitespace accepted");
  MRL_CHECK(open_text("{\"__metadata__\":null}", 0) == MRL_OK, "null metadata rejected");
  /* zero-size and rank-0 tensors are valid */
  MRL_CHECK(open_text("{\"e\":{\"dtype\":\"F32\",\"shape\":[2,0],\"data_offsets\":[0,0]},"
                      "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
                      4) == MRL_OK,
            "empty or scalar tensors rejected");
}

/* ------------------------------------------------------------------------ */
/* corruption                                                               */
/* ------------------------------------------------------------------------ */

#define T1(shape, off) "{\"t\":{\"dtype\":\"F32\",\"shape\":" shape ",\"data_offsets\":" off "}}"

static void test_corrupt_headers(void) {
  /* each: header text, data bytes; every one must be MRL_ERR_CORRUPT */
  static const struct {
    const char *hdr;
    size_t data;
  } bad[] = {
      {"", 0},
      {"{", 0},
      {"[]", 0},
      {"{}x", 0},
      {"{},", 0},
      {"{\"t\"}", 0},
      {"{'t':1}", 0},
      {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},}", 4},
      {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", 4},
      {"{\"t\":{\"dtype\":\"F32\" \"shape\":[1],\"data_offsets\":[0,4]}}", 4},
      {"{\"t\":{}}", 0},
      {"{\"t\":[]}", 0},
      {"{\"t\":null}", 0},
      {"{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4},
      {"{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4},
      {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4},
      {"{\"t\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4},
      {"{\"t\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4},
      {"{\"t\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4},
      {"{\"t\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4},
      {T1("[-1]", "[0,4]"), 4},
      {T1("[1.0]", "[0,4]"), 4},
      {T1("[1e0]", "[0,4]"), 4},
      {T1("[01]", "[0,4]"), 4},
      {T1("[\"1\"]", "[0,4]"), 4},
      {T1("[1,]", "[0,4]"), 4},
      {T1("[,1]", "[0,4]"), 4},
      {T1("1", "[0,4]"), 4},
      {T1("[1,1,1,1,1,1,1,1,1]", "[0,4]"), 4},
      {T1("[18446744073709551616]", "[0,4]"), 4},
      {T1("[4294967296,4294967296]", "[0,4]"), 4},
      {T1("[4611686018427387904]", "[0,4]"), 4},
      {T1("[1]", "[0]"), 4},
      {T1("[1]", "[0,4,8]"), 4},
      {T1("[1]", "[4,0]"), 4},
      {T1("[1]", "[0,8]"), 8},
      {T1("[1]", "[4,8]"), 8},
      {T1("[1]", "[0,4]"), 8},
      {T1("[1]", "[0,4]"), 3},
      {T1("[1]", "[0,4]"), 0},
      {T1("[2]", "[0,4]"), 4},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
       "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}",
       6},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
       "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
       12},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
       "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
       8},
      {"{\"t\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,1]}}", 1},
      {"{\"__metadata__\":{\"a\":1}}", 0},
      {"{\"__metadata__\":{\"a\":\"x\",\"a\":\"y\"}}", 0},
      {"{\"__metadata__\":{},\"__metadata__\":{}}", 0},
      {"{\"__metadata__\":[\"a\"]}", 0},
      {"{\"__metadata__\":\"a\"}", 0},
      {"{\"__metadata__\":{\"a\":\"x\"", 0},
      {"{\"\\x\":1}", 0},
      {"{\"\\ud800\":1}", 0},
      {"{\"\\udc00\":1}", 0},
      {"{\"\\ud800\\u0041\":1}", 0},
      {"{\"\\u12\":1}", 0},
      {"{\"a\tb\":1}", 0},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":tru}}", 4},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":-}}", 4},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1.}}", 4},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1e}}", 4},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":NaN}}", 4},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":[1,]}}", 4},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":{\"k\"}}}", 4},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":\"\\q\"}}", 4},
  };
  /* and these, syntactically unusual but valid, must load */
  static const char *const good[] = {
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":[1,-2.5e-3,true,"
      "false,null,\"s\",{\"k\":{}},[]]}}",
      "{ \"a\" : { \"data_offsets\" : [ 0 , 4 ] , \"shape\" : [ 1 ] , \"dtype\" : \"F32\" } }",
      "{\"\\ud83d\\ude00 \\u00e9\\n\\\"\\\\\\/\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":"
      "[0,4]}}",
      "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
      "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
      "{\"t\":{\"dtype\":\"F4\",\"shape\":[4],\"data_offsets\":[0,2]}}",
      "{\"t\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}",
  };
  static const size_t good_data[] = {4, 4, 4, 8, 2, 4};
  size_t i;
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    mrl_result r = open_text(bad[i].hdr, bad[i].data);
    MRL_CHECK(r == MRL_ERR_CORRUPT, "case %zu accepted (%s): %s", i, mrl_result_string(r),
              bad[i].hdr);
  }
  for (i = 0; i < sizeof good / sizeof good[0]; i++) {
    mrl_result r = open_text(good[i], good_data[i]);
    MRL_CHECK(r == MRL_OK, "valid case %zu rejected (%s): %s", i, mrl_result_string(r), good[i]);
  }
  /* a name holding \u0000: valid, kept whole (name_len), never matched by a shorter name */
  {
    size_t n;
    unsigned char *b = make_file("{\"__metadata__\":{\"m\\u0000k\":\"v\"},\"a\\u0000b\":{\"dtype\":"
                                 "\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                                 4, (uint64_t)-1, &n);
    mrl_checkpoint c;
    if (mrl_checkpoint_open_buffer(&c, b, n) == MRL_OK) {
      MRL_CHECK(c.num_tensors == 1 && c.tensors[0].name_len == 3 &&
                    memcmp(c.tensors[0].name, "a\0b", 3) == 0 &&
                    mrl_checkpoint_find(&c, "a") == NULL && mrl_checkpoint_meta(&c, "m") == NULL,
                "a name holding \\u0000");
      mrl_checkpoint_close(&c);
    } else
      MRL_CHECK(0, "a name holding \\u0000 rejected");
    free(b);
  }
  /* decoded names: the escaped name reads back as UTF-8 */
  {
    size_t n;
    unsigned char *b = make_file(good[2], 4, (uint64_t)-1, &n);
    mrl_checkpoint c;
    if (mrl_checkpoint_open_buffer(&c, b, n) == MRL_OK) {
      MRL_CHECK(c.num_tensors == 1 &&
                    strcmp(c.tensors[0].name, "\xf0\x9f\x98\x80 \xc3\xa9\n\"\\/") == 0,
                "escaped name decoded wrongly");
      mrl_checkpoint_close(&c);
    }
    free(b);
  }
}

static void test_corrupt_framing(void) {
  static const unsigned char bad_utf8[][4] = {
      {0xc0, 0x80, 0, 0}, {0xe0, 0x80, 0x80, 0}, {0xed, 0xa0, 0x80, 0}, {0xf4, 0x90, 0x80, 0x80},
      {0xff, 0, 0, 0},    {0x80, 0, 0, 0},       {0xc3, 0, 0, 0},       {0xf0, 0x9f, 0x98, 0}};
  const char *ok = "{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
  unsigned char *b;
  size_t n, i;
  mrl_checkpoint c;
  /* shorter than the length field, and every truncation of a valid file */
  b = make_file(ok, 4, (uint64_t)-1, &n);
  MRL_CHECK(mrl_checkpoint_open_buffer(&c, b, n) == MRL_OK, "base case rejected");
  mrl_checkpoint_close(&c);
  for (i = 0; i < n; i++) {
    unsigned char *t = (unsigned char *)malloc(i + 1);
    memcpy(t, b, i);
    MRL_CHECK(mrl_checkpoint_open_buffer(&c, t, i) == MRL_ERR_CORRUPT, "truncation to %zu", i);
    free(t);
  }
  MRL_CHECK(mrl_checkpoint_open_buffer(&c, NULL, 0) == MRL_ERR_CORRUPT, "empty buffer");
  free(b);
  /* header length: past the end, enormous, over the cap */
  {
    static const uint64_t lens[] = {1000, (uint64_t)1 << 63, ~(uint64_t)0, 100000001u, 0, 1};
    for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
      int k;
      b = make_file(ok, 4, 0, &n);
      for (k = 0; k < 8; k++) b[k] = (unsigned char)(lens[i] >> (8 * k));
      MRL_CHECK(mrl_checkpoint_open_buffer(&c, b, n) == MRL_ERR_CORRUPT,
                "header length %llu accepted", (unsigned long long)lens[i]);
      free(b);
    }
  }
  /* invalid UTF-8 in a name (overlong, surrogate, too large, stray, truncated) */
  for (i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
    char hdr[128];
    size_t k, len;
    strcpy(hdr, "{\"xxxx\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}");
    for (k = 0; k < 4; k++) hdr[2 + k] = bad_utf8[i][k] ? (char)bad_utf8[i][k] : 'a';
    b = make_file(hdr, 4, (uint64_t)-1, &n);
    len = n;
    MRL_CHECK(mrl_checkpoint_open_buffer(&c, b, len) == MRL_ERR_CORRUPT,
              "invalid UTF-8 %zu accepted", i);
    free(b);
  }
  /* nesting: 60 levels inside an unknown field load, 100 do not */
  {
    char hdr[512];
    int depth, k;
    for (depth = 60; depth <= 100; depth += 40) {
      size_t len;
      strcpy(hdr, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":");
      len = strlen(hdr);
      for (k = 0; k < depth; k++) hdr[len++] = '[';
      for (k = 0; k < depth; k++) hdr[len++] = ']';
      strcpy(hdr + len, "}}");
      MRL_CHECK(open_text(hdr, 4) == (depth == 60 ? MRL_OK : MRL_ERR_CORRUPT), "nesting depth %d",
                depth);
    }
  }
  /* a NUL byte inside the header */
  {
    char hdr[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}  ";
    b = make_file(hdr, 4, (uint64_t)-1, &n);
    b[8 + strlen(hdr) - 1] = 0;
    MRL_CHECK(mrl_checkpoint_open_buffer(&c, b, n) == MRL_ERR_CORRUPT, "NUL in padding");
    free(b);
  }
}

/* ------------------------------------------------------------------------ */
/* model mismatches, arguments, metadata                                    */
/* ------------------------------------------------------------------------ */

static mrl_result load_into(model *m, const mrl_params *src, int save_opt, int flags) {
  mrl_checkpoint_options o = mrl_checkpoint_options_default();
  void *buf = NULL;
  size_t n = 0;
  mrl_result r;
  o.save_optimizer = save_opt;
  r = mrl_checkpoint_save_buffer(src, &o, &buf, &n);
  if (r != MRL_OK) return r;
  r = mrl_checkpoint_load_buffer(&m->p, buf, n, flags);
  MRL_FREE(buf);
  return r;
}

static void test_mismatch(void) {
  model m, other;
  mrl_params extra, missing, wrong;
  snapshot s;
  int shape[2] = {2, 2};
  mrl_result r;
  model_init(&m, 1, 8);
  model_train(&m, 1, 3);
  snap_take(&s, &m.p);

  /* a different hidden size: wrong shapes */
  model_init(&other, 2, 16);
  r = load_into(&m, &other.p, 1, MRL_CHECKPOINT_OPTIMIZER);
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT && snap_same(&s, &m.p), "shape mismatch: %s",
            mrl_result_string(r));

  /* the same model plus one tensor: unexpected unless allowed */
  mrl_params_init(&extra);
  {
    model tmp;
    model_init(&tmp, 3, 8);
    mrl_params_add(&extra, "zzz.extra", 2, shape, mrl_init_make(MRL_INIT_CONSTANT, 1.0f));
    mrl_params_finalize(&extra, 0);
    /* a file holding tmp's tensors and the extra one: save both stores' names
     * by building one store with all of them */
    mrl_params_free(&extra);
    mrl_params_init(&extra);
    {
      int i;
      for (i = 0; i < tmp.p.count; i++)
        mrl_params_add(&extra, tmp.p.items[i].name, tmp.p.items[i].tensor.ndim,
                       tmp.p.items[i].tensor.shape, mrl_init_make(MRL_INIT_CONSTANT, 0.25f));
    }
    mrl_params_add(&extra, "zzz.extra", 2, shape, mrl_init_make(MRL_INIT_CONSTANT, 1.0f));
    mrl_params_finalize(&extra, 0);
    mrl_params_free(&tmp.p);
  }
  r = load_into(&m, &extra, 0, 0);
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT && snap_same(&s, &m.p), "unexpected tensor: %s",
            mrl_result_string(r));
  r = load_into(&m, &extra, 0, MRL_CHECKPOINT_ALLOW_UNKNOWN);
  MRL_CHECK(r == MRL_OK && m.p.values[0] == 0.25f && m.p.adam_steps == s.steps,
            "ALLOW_UNKNOWN load: %s", mrl_result_string(r));
  memcpy(m.p.values, s.values, sizeof(float) * s.n);

  /* a store lacking the model's last tensor: missing */
  mrl_params_init(&missing);
  {
    int i;
    for (i = 0; i + 1 < m.p.count; i++)
      mrl_params_add(&missing, m.p.items[i].name, m.p.items[i].tensor.ndim,
                     m.p.items[i].tensor.shape, mrl_init_make(MRL_INIT_CONSTANT, 0.5f));
    mrl_params_finalize(&missing, 0);
  }
  r = load_into(&m, &missing, 1, MRL_CHECKPOINT_ALLOW_UNKNOWN);
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT && snap_same(&s, &m.p), "missing tensor: %s",
            mrl_result_string(r));

  /* the last tensor reshaped (same element count): never half-loaded */
  mrl_params_init(&wrong);
  {
    int i;
    for (i = 0; i < m.p.count; i++) {
      int sh[4], nd = m.p.items[i].tensor.ndim;
      memcpy(sh, m.p.items[i].tensor.shape, sizeof sh);
      if (i == m.p.count - 1) {
        nd = 2;
        sh[0] = sh[0] / 2;
        sh[1] = 2;
      }
      mrl_params_add(&wrong, m.p.items[i].name, nd, sh, mrl_init_make(MRL_INIT_CONSTANT, 0.5f));
    }
    mrl_params_finalize(&wrong, 0);
  }
  r = load_into(&m, &wrong, 1, MRL_CHECKPOINT_OPTIMIZER);
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT && snap_same(&s, &m.p),
            "reshaped last tensor: %s (model changed: %d)", mrl_result_string(r),
            !snap_same(&s, &m.p));

  /* optimiser state asked for but not saved */
  r = load_into(&m, &other.p, 0, MRL_CHECKPOINT_OPTIMIZER);
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT && snap_same(&s, &m.p), "no optimiser state: %s",
            mrl_result_string(r));

  /* another dtype: the reference vector's "attn.0" as F16 with a matching name */
  {
    mrl_params one;
    int sh[1] = {2};
    size_t n;
    unsigned char *b;
    snapshot s1;
    mrl_params_init(&one);
    mrl_params_add(&one, "t", 1, sh, mrl_init_make(MRL_INIT_CONSTANT, 3.0f));
    mrl_params_finalize(&one, 0);
    snap_take(&s1, &one);
    /* an integer tensor where the model has a float one (F16/BF16/F64 convert) */
    b = make_file("{\"t\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                  (uint64_t)-1, &n);
    r = mrl_checkpoint_load_buffer(&one, b, n, 0);
    MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT && snap_same(&s1, &one), "I32 tensor: %s",
              mrl_result_string(r));
    free(b);
    /* a malformed step count is corrupt */
    b = make_file("{\"__metadata__\":{\"memrl.adam_steps\":\"12x\"},"
                  "\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"t.adam_m\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
                  "\"t.adam_v\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}",
                  24, (uint64_t)-1, &n);
    r = mrl_checkpoint_load_buffer(&one, b, n, MRL_CHECKPOINT_OPTIMIZER);
    MRL_CHECK(r == MRL_ERR_CORRUPT && snap_same(&s1, &one), "bad adam_steps: %s",
              mrl_result_string(r));
    r = mrl_checkpoint_load_buffer(&one, b, n, 0); /* fine without the optimiser */
    MRL_CHECK(r == MRL_OK && !snap_same(&s1, &one), "load without optimiser: %s",
              mrl_result_string(r));
    free(b);
    snap_free(&s1);
    mrl_params_free(&one);
  }

  /* bad arguments */
  {
    mrl_params unfinalized;
    void *buf = NULL;
    size_t n = 0;
    mrl_params_init(&unfinalized);
    MRL_CHECK(mrl_checkpoint_save_buffer(&unfinalized, NULL, &buf, &n) == MRL_ERR_INVALID_ARGUMENT,
              "saving an unfinalized store");
    MRL_CHECK(mrl_checkpoint_load(&unfinalized, CKPT_DIR "/roundtrip.safetensors", 0) ==
                  MRL_ERR_INVALID_ARGUMENT,
              "loading into an unfinalized store");
    MRL_CHECK(mrl_checkpoint_load(&m.p, CKPT_DIR "/roundtrip.safetensors", 8) ==
                  MRL_ERR_INVALID_ARGUMENT,
              "unknown flag accepted");
    MRL_CHECK(mrl_checkpoint_load(&m.p, CKPT_DIR "/no_such_file.safetensors", 0) == MRL_ERR_IO,
              "missing file is not an I/O error");
#ifdef HAVE_POSIX
    MRL_CHECK(mrl_checkpoint_load(&m.p, CKPT_DIR, 0) == MRL_ERR_IO,
              "reading a directory is not an I/O error");
#endif
    write_all(CKPT_DIR "/empty.safetensors", "", 0);
    MRL_CHECK(mrl_checkpoint_load(&m.p, CKPT_DIR "/empty.safetensors", 0) == MRL_ERR_CORRUPT,
              "an empty file is not corrupt");
    MRL_CHECK(mrl_checkpoint_save(&m.p, CKPT_DIR "/no_such_dir/x.safetensors", NULL) == MRL_ERR_IO,
              "saving into a missing directory is not an I/O error");
    MRL_CHECK(snap_same(&s, &m.p), "failed calls changed the model");
  }
  snap_free(&s);
  mrl_params_free(&m.p);
  mrl_params_free(&other.p);
  mrl_params_free(&extra);
  mrl_params_free(&missing);
  mrl_params_free(&wrong);
}

static void test_save_arguments(void) {
  mrl_params p;
  int sh[1] = {3};
  void *buf = NULL;
  size_t n = 0;
  mrl_checkpoint_options o = mrl_checkpoint_options_default();
  const char *reserved[2] = {"memrl.version", "9"}, *dup[4] = {"k", "1", "k", "2"};
  const char *nullval[2] = {"k", NULL};
  const char *path = CKPT_DIR "/args.safetensors";
  FILE *f;
  mrl_params_init(&p);
  mrl_params_add(&p, "a", 1, sh, mrl_init_make(MRL_INIT_CONSTANT, 1.0f));
  mrl_params_add(&p, "a", 1, sh, mrl_init_make(MRL_INIT_CONSTANT, 2.0f));
  mrl_params_finalize(&p, 0);
  remove(path);
  MRL_CHECK(mrl_checkpoint_save(&p, path, NULL) == MRL_ERR_INVALID_ARGUMENT,
            "duplicate names saved");
  f = fopen(path, "rb");
  MRL_CHECK(f == NULL, "a refused save created the file");
  if (f) fclose(f);
  mrl_params_free(&p);
  /* "b.adam_m" collides with b's first moment only when moments are saved */
  mrl_params_init(&p);
  mrl_params_add(&p, "b", 1, sh, mrl_init_make(MRL_INIT_CONSTANT, 1.0f));
  mrl_params_add(&p, "b.adam_m", 1, sh, mrl_init_make(MRL_INIT_CONSTANT, 2.0f));
  mrl_params_finalize(&p, 0);
  MRL_CHECK(mrl_checkpoint_save_buffer(&p, &o, &buf, &n) == MRL_OK, "no collision refused");
  MRL_FREE(buf);
  o.save_optimizer = 1;
  MRL_CHECK(mrl_checkpoint_save_buffer(&p, &o, &buf, &n) == MRL_ERR_INVALID_ARGUMENT,
            "moment name collision saved");
  o.save_optimizer = 0;
  o.metadata = reserved;
  o.num_metadata = 1;
  MRL_CHECK(mrl_checkpoint_save_buffer(&p, &o, &buf, &n) == MRL_ERR_INVALID_ARGUMENT,
            "reserved metadata key saved");
  o.metadata = dup;
  o.num_metadata = 2;
  MRL_CHECK(mrl_checkpoint_save_buffer(&p, &o, &buf, &n) == MRL_ERR_INVALID_ARGUMENT,
            "duplicate metadata key saved");
  o.metadata = nullval;
  o.num_metadata = 1;
  MRL_CHECK(mrl_checkpoint_save_buffer(&p, &o, &buf, &n) == MRL_ERR_INVALID_ARGUMENT,
            "NULL metadata value saved");
  o.metadata = NULL;
  o.num_metadata = 0;
  o.config = "bad \xff utf-8";
  MRL_CHECK(mrl_checkpoint_save_buffer(&p, &o, &buf, &n) == MRL_ERR_INVALID_ARGUMENT,
            "invalid UTF-8 config saved");
  /* every character class survives the JSON escaping */
  o.config = "q\" b\\ nl\n tab\t cr\r ctl\x01\x1f del\x7f \xc3\xa9\xe2\x9c\x93\xf0\x9f\x98\x80 /";
  MRL_CHECK(mrl_checkpoint_save_buffer(&p, &o, &buf, &n) == MRL_OK, "escaped config refused");
  {
    mrl_checkpoint c;
    if (MRL_OK == mrl_checkpoint_open_buffer(&c, buf, n)) {
      const char *v = mrl_checkpoint_meta(&c, "memrl.config");
      MRL_CHECK(v && strcmp(v, o.config) == 0, "config did not survive escaping");
      mrl_checkpoint_close(&c);
    } else
      MRL_CHECK(0, "escaped config unreadable");
  }
  MRL_FREE(buf);
  mrl_params_free(&p);
}

/* ------------------------------------------------------------------------ */
/* atomic saves                                                             */
/* ------------------------------------------------------------------------ */

typedef struct fail_writer {
  size_t budget; /* bytes that still succeed */
} fail_writer;

static size_t failing_write(const void *d, size_t n, FILE *f, void *user) {
  fail_writer *w = (fail_writer *)user;
  size_t k = n < w->budget ? n : w->budget;
  k = fwrite(d, 1, k, f);
  w->budget -= k;
  return k;
}

#ifdef HAVE_POSIX
/* Names in dir that start with prefix (leftover temporary files). */
static int count_prefixed(const char *dir, const char *prefix) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int n = 0;
  if (!d) return -1;
  while ((e = readdir(d)) != NULL)
    if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) n++;
  closedir(d);
  return n;
}
#endif

static void test_atomic(void) {
  model a, b, v;
  const char *path = CKPT_DIR "/atomic.safetensors";
  unsigned char *before;
  size_t before_n, total, cuts[6];
  mrl_checkpoint_options o = mrl_checkpoint_options_default();
  fail_writer w;
  int i;
  model_init(&a, 11, 8);
  model_init(&b, 12, 8);
  model_init(&v, 13, 8);
  MRL_CHECK(mrl_checkpoint_save(&a.p, path, NULL) == MRL_OK, "first save failed");
  before = read_all(path, &before_n);
  {
    void *buf;
    mrl_checkpoint_save_buffer(&b.p, NULL, &buf, &total);
    MRL_FREE(buf);
  }
  /* a write that fails after k bytes: header length, header, data, last byte */
  cuts[0] = 0;
  cuts[1] = 5;
  cuts[2] = 100;
  cuts[3] = total / 2;
  cuts[4] = total - 1;
  cuts[5] = total; /* succeeds */
  for (i = 0; i < 6; i++) {
    mrl_result r;
    w.budget = cuts[i];
    o.write = failing_write;
    o.write_user = &w;
    r = mrl_checkpoint_save(&b.p, path, &o);
    if (i < 5) {
      MRL_CHECK(r == MRL_ERR_IO, "write failing after %zu bytes: %s", cuts[i],
                mrl_result_string(r));
      MRL_CHECK(file_equals(path, before, before_n),
                "write failing after %zu bytes damaged the checkpoint", cuts[i]);
    } else
      MRL_CHECK(r == MRL_OK && mrl_checkpoint_load(&v.p, path, 0) == MRL_OK &&
                    same_tensors(&v.p, &b.p, 0),
                "a save through the write hook: %s", mrl_result_string(r));
  }
#ifdef HAVE_POSIX
  MRL_CHECK(count_prefixed(CKPT_DIR, "atomic.safetensors.tmp") == 0,
            "failed saves left temporary files");
  mrl_checkpoint_save(&a.p, path, NULL); /* back to a's bytes, as `before` holds */
  MRL_CHECK(file_equals(path, before, before_n), "resave differs");
  /* the operating system refuses the write: a file size limit in a child */
  {
    pid_t pid = fork();
    if (pid == 0) {
      struct rlimit rl;
      rl.rlim_cur = rl.rlim_max = 1024;
      signal(SIGXFSZ, SIG_IGN);
      setrlimit(RLIMIT_FSIZE, &rl);
      _exit(mrl_checkpoint_save(&b.p, path, NULL) == MRL_ERR_IO ? 0 : 1);
    } else if (pid > 0) {
      int st = 0;
      waitpid(pid, &st, 0);
      MRL_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "save over RLIMIT_FSIZE did not fail");
      MRL_CHECK(file_equals(path, before, before_n), "RLIMIT_FSIZE failure damaged the file");
      MRL_CHECK(count_prefixed(CKPT_DIR, "atomic.safetensors.tmp") == 0,
                "RLIMIT_FSIZE failure left a temporary file");
    }
  }
  /* a writer killed at random moments: the file is always one whole checkpoint */
  {
    model big_a, big_b;
    mrl_rng rng = mrl_rng_make(5);
    int trial, whole = 0, sizes[3] = {64, 2048, 32};
    const char *kpath = CKPT_DIR "/killed.safetensors";
    mrl_params_init(&big_a.p);
    mrl_mlp_init(&big_a.pi, &big_a.p, "big", 3, sizes, MRL_ACT_TANH, mrl_init_default(),
                 mrl_init_default());
    mrl_params_finalize(&big_a.p, 1);
    mrl_params_init(&big_b.p);
    mrl_mlp_init(&big_b.pi, &big_b.p, "big", 3, sizes, MRL_ACT_TANH, mrl_init_default(),
                 mrl_init_default());
    mrl_params_finalize(&big_b.p, 2);
    mrl_checkpoint_save(&big_a.p, kpath, NULL);
    for (trial = 0; trial < 8; trial++) {
      pid_t pid = fork();
      if (pid == 0) {
        int k;
        for (k = 0;; k++) mrl_checkpoint_save(k % 2 ? &big_a.p : &big_b.p, kpath, NULL);
      } else if (pid > 0) {
        struct timespec ts;
        mrl_params probe;
        int st, same_a, same_b;
        ts.tv_sec = 0;
        ts.tv_nsec = 2000000L + (long)mrl_rng_below(&rng, 20000000u);
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        mrl_params_init(&probe);
        mrl_mlp_init(&big_b.pi, &probe, "big", 3, sizes, MRL_ACT_TANH, mrl_init_default(),
                     mrl_init_default());
        mrl_params_finalize(&probe, 3);
        if (mrl_checkpoint_load(&probe, kpath, 0) == MRL_OK) {
          same_a = same_tensors(&probe, &big_a.p, 0);
          same_b = same_tensors(&probe, &big_b.p, 0);
          whole += same_a || same_b;
        }
        mrl_params_free(&probe);
      }
    }
    MRL_CHECK(whole == 8, "after killing the writer, %d of 8 files were whole checkpoints", whole);
    /* temporary files of killed writers may remain; once stale, the next
     * save removes them (their mtime is set back past the threshold) */
    {
      DIR *d = opendir(CKPT_DIR);
      struct dirent *e;
      char name[512];
      struct timespec old[2];
      clock_gettime(CLOCK_REALTIME, &old[0]);
      old[0].tv_sec -= MRL_CHECKPOINT_STALE_SECONDS + 1;
      old[1] = old[0];
      while (d && (e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "killed.safetensors.tmp", 22) == 0) {
          snprintf(name, sizeof name, "%s/%s", CKPT_DIR, e->d_name);
          utimensat(AT_FDCWD, name, old, 0);
        }
      if (d) closedir(d);
      MRL_CHECK(mrl_checkpoint_save(&big_a.p, kpath, NULL) == MRL_OK, "save after the kills");
      MRL_CHECK(count_prefixed(CKPT_DIR, "killed.safetensors.tmp") == 0,
                "the save after the kills left %d stale temporaries",
                count_prefixed(CKPT_DIR, "killed.safetensors.tmp"));
      d = opendir(CKPT_DIR);
      while (d && (e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "killed.safetensors.tmp", 22) == 0) {
          snprintf(name, sizeof name, "%s/%s", CKPT_DIR, e->d_name);
          remove(name);
        }
      if (d) closedir(d);
    }
    mrl_params_free(&big_a.p);
    mrl_params_free(&big_b.p);
  }
  /* a read-only directory (not for root, who may write anyway) */
  if (geteuid() != 0) {
    chmod(CKPT_DIR, 0555);
    MRL_CHECK(mrl_checkpoint_save(&b.p, path, NULL) == MRL_ERR_IO,
              "save into a read-only directory did not fail");
    chmod(CKPT_DIR, 0755);
    MRL_CHECK(file_equals(path, before, before_n), "read-only directory damaged the file");
  }
#endif
  free(before);
  mrl_params_free(&a.p);
  mrl_params_free(&b.p);
  mrl_params_free(&v.p);
}

/* ------------------------------------------------------------------------ */
/* big-endian path                                                          */
/* ------------------------------------------------------------------------ */

static void test_byte_order(void) {
  float src[5] = {1.0f, -2.5f, 3.14159274f, 1e-38f, -0.0f}, back[5];
  unsigned char le_fast[20], le_shift[20];
  MRL_CHECK(mrl__ckpt_host_le() == 1, "this test host is expected to be little-endian");
  mrl__ckpt_f32_to_le(le_fast, src, 5, 1);
  mrl__ckpt_f32_to_le(le_shift, src, 5, 0); /* the path a big-endian host takes */
  MRL_CHECK(memcmp(le_fast, le_shift, 20) == 0, "portable encoding differs from memcpy");
  MRL_CHECK(le_shift[0] == 0x00 && le_shift[1] == 0x00 && le_shift[2] == 0x80 &&
                le_shift[3] == 0x3f,
            "1.0f is not 00 00 80 3f");
  mrl__ckpt_f32_from_le(back, le_shift, 5, 0);
  MRL_CHECK(memcmp(back, src, sizeof src) == 0, "portable decoding does not round-trip");
}

/* ------------------------------------------------------------------------ */
/* mutation loop (the fuzzer's work in miniature, deterministic)            */
/* ------------------------------------------------------------------------ */

static void test_mutations(void) {
  model m;
  snapshot s;
  void *seeds[3];
  size_t seed_n[3], k;
  mrl_checkpoint_options o = mrl_checkpoint_options_default();
  const char *kv[2] = {"env", "T-maze"};
  mrl_rng rng = mrl_rng_make(2024);
  int i, counts[8] = {0}, changed_ok = 0, cases = 30000, unexpected = 0, bad_find = 0;
  model_init(&m, 21, 8);
  model_train(&m, 2, 1);
  snap_take(&s, &m.p);
  mrl_checkpoint_save_buffer(&m.p, NULL, &seeds[0], &seed_n[0]);
  o.save_optimizer = 1;
  o.config = "{\"hidden\": 8}";
  o.metadata = kv;
  o.num_metadata = 1;
  mrl_checkpoint_save_buffer(&m.p, &o, &seeds[1], &seed_n[1]);
  seeds[2] = read_all("tests/ref/torch_written.safetensors", &seed_n[2]);
  MRL_CHECK(seeds[2] != NULL, "tests/ref/torch_written.safetensors missing");
  for (i = 0; i < cases; i++) {
    int which = (int)mrl_rng_below(&rng, seeds[2] ? 3u : 2u), op = (int)mrl_rng_below(&rng, 7u);
    size_t n = seed_n[which], hdr_end;
    const unsigned char *base = (const unsigned char *)seeds[which];
    unsigned char *b;
    mrl_result r;
    hdr_end = 8;
    for (k = 0; k < 8; k++) hdr_end += (size_t)base[k] << (8 * k);
    b = (unsigned char *)malloc(n + 64);
    memcpy(b, base, n);
    switch (op) {
    case 0: /* flip one bit anywhere */ {
      size_t at = mrl_rng_below(&rng, (uint32_t)n);
      b[at] ^= (unsigned char)(1u << mrl_rng_below(&rng, 8u));
      break;
    }
    case 1: /* one random byte in the header */
    case 2: {
      size_t at = mrl_rng_below(&rng, (uint32_t)hdr_end);
      b[at] = (unsigned char)mrl_rng_below(&rng, 256u);
      break;
    }
    case 3: /* a digit in the header changed to another digit */ {
      size_t at = 8 + mrl_rng_below(&rng, (uint32_t)(hdr_end - 8)), tries = 0;
      while ((b[at] < '0' || b[at] > '9') && tries++ < 64)
        at = 8 + mrl_rng_below(&rng, (uint32_t)(hdr_end - 8));
      b[at] = (unsigned char)('0' + mrl_rng_below(&rng, 10u));
      break;
    }
    case 4: /* truncated */ n = mrl_rng_below(&rng, (uint32_t)n); break;
    case 5: /* extended by random bytes */ {
      size_t extra = 1 + mrl_rng_below(&rng, 63u);
      for (k = 0; k < extra; k++) b[n + k] = (unsigned char)mrl_rng_below(&rng, 256u);
      n += extra;
      break;
    }
    case 6: /* one header byte deleted (the length field no longer matches) */ {
      size_t at = 8 + mrl_rng_below(&rng, (uint32_t)(hdr_end - 8));
      memmove(b + at, b + at + 1, n - at - 1);
      n--;
      break;
    }
    }
    /* an exact-size copy, so the sanitizers see any read past the end */
    {
      unsigned char *exact = (unsigned char *)malloc(n ? n : 1);
      memcpy(exact, b, n);
      free(b);
      b = exact;
    }
    {
      mrl_checkpoint c;
      r = mrl_checkpoint_open_buffer(&c, b, n);
      if (r == MRL_OK) { /* everything the reader offers must be safe to use */
        int t;
        for (t = 0; t < c.num_tensors; t++) {
          const mrl_checkpoint_tensor *ct = &c.tensors[t];
          if (mrl_checkpoint_find(&c, ct->name) != ct && ct->name_len == strlen(ct->name))
            bad_find++;
          if (strcmp(ct->dtype, "F32") == 0 && ct->numel <= 4096) {
            float tmp[4096];
            mrl_checkpoint_read_f32(ct, tmp, (size_t)ct->numel);
          }
        }
        for (t = 0; t < c.num_meta; t++) /* a \u0000 in a key hides it from lookups */
          if (mrl_checkpoint_meta(&c, c.meta[t].key) != c.meta[t].value &&
              c.meta[t].key_len == strlen(c.meta[t].key))
            bad_find++;
      }
      mrl_checkpoint_close(&c);
    }
    r = mrl_checkpoint_load_buffer(&m.p, b, n,
                                   (int)mrl_rng_below(&rng, 4u)); /* every flag combination */
    counts[-r < 8 ? -r : 7]++;
    if (r != MRL_OK) {
      if (!snap_same(&s, &m.p)) {
        MRL_CHECK(0, "mutation %d (op %d) failed with %s but changed the model", i, op,
                  mrl_result_string(r));
        break;
      }
    } else {
      changed_ok += !snap_same(&s, &m.p);
      memcpy(m.p.values, s.values, sizeof(float) * s.n); /* restore */
      memcpy(m.p.moment1, s.m1, sizeof(float) * s.n);
      memcpy(m.p.moment2, s.m2, sizeof(float) * s.n);
      m.p.adam_steps = s.steps;
    }
    if (r != MRL_OK && r != MRL_ERR_CORRUPT && r != MRL_ERR_INVALID_ARGUMENT && unexpected++ < 5)
      printf("mutation %d: unexpected result %s\n", i, mrl_result_string(r));
    free(b);
  }
  MRL_CHECK(unexpected == 0, "%d mutations gave results other than ok/corrupt/mismatch",
            unexpected);
  MRL_CHECK(bad_find == 0, "%d valid mutations had names find() or meta() could not find",
            bad_find);
  printf("mutations: %d cases: %d loaded (%d changed values), %d corrupt, %d mismatched\n", cases,
         counts[0], changed_ok, counts[-MRL_ERR_CORRUPT], counts[-MRL_ERR_INVALID_ARGUMENT]);
  MRL_CHECK(counts[-MRL_ERR_CORRUPT] > cases / 4 && counts[0] > cases / 50,
            "the mutations do not exercise both outcomes");
  for (k = 0; k < 2; k++) MRL_FREE(seeds[k]);
  free(seeds[2]);
  snap_free(&s);
  mrl_params_free(&m.p);
}

/* ------------------------------------------------------------------------ */
/* allocation failures                                                      */
/* ------------------------------------------------------------------------ */

static void test_out_of_memory(void) {
  model m, src;
  snapshot s;
  mrl_checkpoint_options o = mrl_checkpoint_options_default();
  const char *kv[4] = {"a", "1", "b", "2"};
  const char *path = CKPT_DIR "/oom.safetensors";
  unsigned char *before;
  void *buf = NULL;
  size_t n = 0, before_n;
  long budget;
  int load_ok_at = -1, save_ok_at = -1, file_ok_at = -1, bad = 0;
  model_init(&m, 1, 8);
  model_init(&src, 2, 8);
  model_train(&src, 1, 1);
  snap_take(&s, &m.p);
  o.save_optimizer = 1;
  o.config = "cfg";
  o.metadata = kv;
  o.num_metadata = 2;
  mrl_checkpoint_save(&m.p, path, &o);
  before = read_all(path, &before_n);
  MRL_CHECK(mrl_checkpoint_save_buffer(&src.p, &o, &buf, &n) == MRL_OK, "save_buffer");
  for (budget = 0; budget < 64; budget++) {
    mrl_result r;
    void *b2 = NULL;
    size_t n2 = 0;
    /* serialise into memory */
    test_alloc_budget = budget;
    r = mrl_checkpoint_save_buffer(&src.p, &o, &b2, &n2);
    test_alloc_budget = -1;
    if (r == MRL_OK && save_ok_at < 0) save_ok_at = (int)budget;
    bad += r != MRL_OK && (r != MRL_ERR_OUT_OF_MEMORY || b2 != NULL);
    bad += r == MRL_OK && (n2 != n || memcmp(b2, buf, n) != 0);
    MRL_FREE(b2);
    /* save to a file: the old file stays */
    test_alloc_budget = budget;
    r = mrl_checkpoint_save(&src.p, path, &o);
    test_alloc_budget = -1;
    if (r == MRL_OK && file_ok_at < 0) file_ok_at = (int)budget;
    if (r != MRL_OK)
      bad += r != MRL_ERR_OUT_OF_MEMORY || !file_equals(path, before, before_n);
    else
      write_all(path, before, before_n);
    /* load from memory: nothing changes unless it all succeeds */
    if (buf) {
      test_alloc_budget = budget;
      r = mrl_checkpoint_load_buffer(&m.p, buf, n, MRL_CHECKPOINT_OPTIMIZER);
      test_alloc_budget = -1;
      if (r == MRL_OK && load_ok_at < 0) load_ok_at = (int)budget;
      if (r != MRL_OK) bad += r != MRL_ERR_OUT_OF_MEMORY || !snap_same(&s, &m.p);
    }
  }
  printf("allocations needed: save_buffer %d, save %d, load_buffer %d\n", save_ok_at, file_ok_at,
         load_ok_at);
  MRL_CHECK(bad == 0, "%d allocation failures were not clean MRL_ERR_OUT_OF_MEMORY", bad);
  MRL_CHECK(save_ok_at > 0 && file_ok_at > 0 && load_ok_at > 0,
            "no allocation failure was exercised, or the operations never succeeded");
  MRL_CHECK(same_tensors(&m.p, &src.p, 0) && m.p.adam_steps == 1, "final load incomplete");
#ifdef HAVE_POSIX
  MRL_CHECK(count_prefixed(CKPT_DIR, "oom.safetensors.tmp") == 0,
            "failed saves left temporary files");
#endif
  MRL_FREE(buf);
  free(before);
  snap_free(&s);
  mrl_params_free(&m.p);
  mrl_params_free(&src.p);
}

/* ------------------------------------------------------------------------ */
/* PyTorch-written checkpoint                                               */
/* ------------------------------------------------------------------------ */

static void test_torch_written(void) {
  model m;
  mrl_ref_file f;
  mrl_checkpoint c;
  mrl_graph g;
  mrl_result r;
  int i, k;
  const char *path = "tests/ref/torch_written.safetensors";
  model_init(&m, 77, 8);
  if (!mrl_ref_open(&f, "tests/ref/torch_written.txt")) return;
  /* the file holds two tensors the model lacks */
  r = mrl_checkpoint_load(&m.p, path, MRL_CHECKPOINT_OPTIMIZER);
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT, "extra tensors not refused: %s", mrl_result_string(r));
  r = mrl_checkpoint_load(&m.p, path, MRL_CHECKPOINT_OPTIMIZER | MRL_CHECKPOINT_ALLOW_UNKNOWN);
  MRL_CHECK(r == MRL_OK, "torch checkpoint: %s", mrl_result_string(r));
  MRL_CHECK(m.p.adam_steps == 3, "adam_steps %lld, want 3", m.p.adam_steps);
  for (i = 0; i < m.p.count; i++)
    for (k = 0; k < 3; k++) {
      static const char *const suffix[3] = {"", ".adam_m", ".adam_v"};
      const float *base = k == 0 ? m.p.values : k == 1 ? m.p.moment1 : m.p.moment2;
      char name[96];
      snprintf(name, sizeof name, "%s%s", m.p.items[i].name, suffix[k]);
      expect_exact(&f, name, base + m.p.items[i].offset, m.p.items[i].tensor.size);
    }
  /* the other dtypes through the reader */
  if (mrl_checkpoint_open(&c, path) == MRL_OK) {
    const mrl_checkpoint_tensor *t = mrl_checkpoint_find(&c, "extra.counter");
    MRL_CHECK(t && strcmp(t->dtype, "I64") == 0 && t->numel == 2 && t->nbytes == 16 &&
                  t->bytes[0] == 7 && t->bytes[8] == 0xfd && t->bytes[15] == 0xff,
              "I64 tensor extra.counter");
    t = mrl_checkpoint_find(&c, "extra.half");
    MRL_CHECK(t && strcmp(t->dtype, "F16") == 0 && t->nbytes == 4 && t->bytes[1] == 0x38 &&
                  t->bytes[3] == 0xc0,
              "F16 tensor extra.half");
    MRL_CHECK(t && mrl_checkpoint_read_f32(t, NULL, 0) == MRL_ERR_INVALID_ARGUMENT,
              "read_f32 of an F16 tensor");
    MRL_CHECK(mrl_checkpoint_meta(&c, "format") && mrl_checkpoint_meta(&c, "memrl.config") &&
                  strcmp(mrl_checkpoint_meta(&c, "memrl.config"), "{\"written_by\": \"torch\"}") ==
                      0,
              "torch metadata");
    mrl_checkpoint_close(&c);
  } else
    MRL_CHECK(0, "cannot open %s", path);
  /* same outputs as torch, then the same 4th Adam step */
  mrl_graph_init(&g, 1 << 16);
  {
    float x[24], xs[18], h0d[10] = {0}, c0d[10] = {0};
    mrl_tensor *tx, *txs, *y, *ys, *h0, *c0, *loss;
    mrl_adam_config cfg = mrl_adam_config_default();
    if (mrl_ref_fill(&f, "x", x, 24) && mrl_ref_fill(&f, "xs", xs, 18)) {
      tx = mrl_tensor_from2(&g, x, 6, 4);
      txs = mrl_tensor_from2(&g, xs, 6, 3);
      h0 = mrl_tensor_from2(&g, h0d, 2, 5);
      c0 = mrl_tensor_from2(&g, c0d, 2, 5);
      y = mrl_mlp_forward(&m.pi, &g, tx);
      ys = mrl_lstm_sequence(&m.core, &g, txs, 3, 2, h0, c0, NULL, NULL, NULL);
      mrl_ref_expect(&f, "y", y->data, y->size, 1e-6, 1e-5);
      mrl_ref_expect(&f, "ys", ys->data, ys->size, 1e-6, 1e-5);
      loss = mrl_add(&g, mrl_mean(&g, mrl_square(&g, y)), mrl_mean(&g, mrl_square(&g, ys)));
      mrl_ref_expect(&f, "loss", loss->data, 1, 1e-6, 1e-5);
      mrl_params_zero_grad(&m.p);
      mrl_backward(&g, loss);
      cfg.lr = 1e-2f;
      mrl_adam_step(&m.p, &cfg);
      for (i = 0; i < m.p.count; i++) {
        char name[96];
        snprintf(name, sizeof name, "next_%s", m.p.items[i].name);
        mrl_ref_expect(&f, name, m.p.values + m.p.items[i].offset, m.p.items[i].tensor.size, 1e-6,
                       1e-5);
      }
    }
  }
  mrl_graph_free(&g);
  mrl_ref_close(&f);
  mrl_params_free(&m.p);
}

/* ------------------------------------------------------------------------ */
/* files for Python and the fuzzer                                          */
/* ------------------------------------------------------------------------ */

/* build/memrl_written.safetensors and its expectations for
 * `python3 tools/safetensors_io.py check` (see tools/run_tests.sh). */
static void write_for_python(void) {
  model m;
  mrl_checkpoint_options o = mrl_checkpoint_options_default();
  const char *kv[2] = {"env", "MemoryChain-v0"};
  const char *path = "build/memrl_written.safetensors";
  FILE *f;
  mrl_checkpoint c;
  int i;
  model_init(&m, 31, 8);
  model_train(&m, 2, 4);
  o.save_optimizer = 1;
  o.config = "{\"hidden\": 8, \"note\": \"caf\xc3\xa9\"}";
  o.metadata = kv;
  o.num_metadata = 1;
  MRL_CHECK(mrl_checkpoint_save(&m.p, path, &o) == MRL_OK, "cannot write %s", path);
  f = fopen("build/memrl_written.expect", "w");
  if (!f || mrl_checkpoint_open(&c, path) != MRL_OK) {
    MRL_CHECK(0, "cannot write the Python expectations");
    if (f) fclose(f);
    mrl_params_free(&m.p);
    return;
  }
  fprintf(f, "# written by tests/test_checkpoint.c for tools/safetensors_io.py check\n");
  fprintf(f, "count %d\n", 3 * m.p.count);
  fprintf(f, "meta memrl.version 0.1.0\nmeta memrl.adam_steps 2\nmeta env MemoryChain-v0\n");
  fprintf(f, "meta memrl.config %s\n", o.config);
  for (i = 0; i < m.p.count; i++) {
    int k, d;
    for (k = 0; k < 3; k++) {
      static const char *const suffix[3] = {"", ".adam_m", ".adam_v"};
      const float *v = (k == 0   ? m.p.values
                        : k == 1 ? m.p.moment1
                                 : m.p.moment2) +
                       m.p.items[i].offset;
      unsigned char raw[4 * 1024];
      double sum = 0.0;
      int j, n = m.p.items[i].tensor.size;
      MRL_ASSERT(n <= 1024);
      for (j = 0; j < n; j++) sum += (double)v[j];
      mrl__ckpt_f32_to_le(raw, v, (size_t)n, 0);
      fprintf(f, "tensor %s%s F32 ", m.p.items[i].name, suffix[k]);
      for (d = 0; d < m.p.items[i].tensor.ndim; d++)
        fprintf(f, "%s%d", d ? "," : "", m.p.items[i].tensor.shape[d]);
      fprintf(f, " %08lx %.17g\n", (unsigned long)crc32_bytes(raw, (size_t)n * 4u), sum);
    }
  }
  fclose(f);
  mrl_checkpoint_close(&c);
  mrl_params_free(&m.p);
}

/* Seeds for tests/fuzz_checkpoint.c: the model the fuzz target loads into
 * (MLP 4-8-3 "pi" + LSTM 3->5 "core"), small variants, and edge cases. */
static int write_corpus(const char *dir) {
  model m;
  mrl_checkpoint_options o = mrl_checkpoint_options_default();
  const char *kv[2] = {"k", "v"};
  char path[512];
  size_t n;
  int ok = 1;
  model_init(&m, 1, 8);
  model_train(&m, 1, 1);
  snprintf(path, sizeof path, "%s/params.safetensors", dir);
  ok &= mrl_checkpoint_save(&m.p, path, NULL) == MRL_OK;
  o.save_optimizer = 1;
  o.config = "{\"a\": [1, 2.5e-3, true, null]}";
  o.metadata = kv;
  o.num_metadata = 1;
  snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
  ok &= mrl_checkpoint_save(&m.p, path, &o) == MRL_OK;
  mrl_params_free(&m.p);
  {
    static const char *const texts[4] = {
        "{}      ",
        "{\"__metadata__\":{\"x\":\"\\u00e9\\ud83d\\ude00\"},\"t\":{\"dtype\":\"BF16\","
        "\"shape\":[2],\"data_offsets\":[0,4],\"u\":{\"k\":[1,-0.5e+2]}}}",
        "{\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]},\"s\":{\"dtype\":"
        "\"I64\",\"shape\":[],\"data_offsets\":[0,8]}}",
        "{\"__metadata__\":{\"m\\u0000k\":\"v\"},\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],"
        "\"data_offsets\":[0,4]}}"};
    static const size_t data[4] = {0, 4, 8, 4};
    int i;
    for (i = 0; i < 4; i++) {
      unsigned char *b = make_file(texts[i], data[i], (uint64_t)-1, &n);
      snprintf(path, sizeof path, "%s/edge%d.safetensors", dir, i);
      ok &= write_all(path, b, n);
      free(b);
    }
  }
  return ok;
}

/* ------------------------------------------------------------------------ */
/* values a model must never take silently                                 */
/* ------------------------------------------------------------------------ */

/* Saves src into a buffer and loads it into dst with flags; returns the
 * result and whether a failed load left dst untouched (1 when it loaded). */
static mrl_result load_via_buffer(const model *src, model *dst, int save_optimizer, int flags,
                                  int *untouched) {
  mrl_checkpoint_options o = mrl_checkpoint_options_default();
  snapshot before;
  void *data = NULL;
  size_t size = 0;
  mrl_result r;
  o.save_optimizer = save_optimizer;
  if (mrl_checkpoint_save_buffer(&src->p, &o, &data, &size) != MRL_OK) return MRL_ERR_IO;
  snap_take(&before, &dst->p);
  r = mrl_checkpoint_load_buffer(&dst->p, data, size, flags);
  *untouched = r == MRL_OK || snap_same(&before, &dst->p);
  snap_free(&before);
  free(data);
  return r;
}

static void test_non_finite_values(void) {
  model a, b;
  const char *name;
  size_t at;
  int untouched;
  mrl_result r;
  model_init(&a, 1, 8);
  model_train(&a, 3, 2);
  model_init(&b, 3, 8);
  name = a.p.items[1].name;
  at = a.p.items[1].offset + 2;
  /* a NaN parameter: corrupt, nothing changes, the message names it */
  a.p.values[at] = (float)NAN;
  r = load_via_buffer(&a, &b, 0, 0, &untouched);
  MRL_CHECK(r == MRL_ERR_CORRUPT && untouched, "NaN parameter: %s, untouched %d",
            mrl_result_string(r), untouched);
  MRL_CHECK(strstr(b.p.message, name) && strstr(b.p.message, "nan") &&
                strstr(b.p.message, "element 2") &&
                strstr(b.p.message, "MRL_CHECKPOINT_ALLOW_NON_FINITE"),
            "NaN parameter message: \"%s\"", b.p.message);
  /* ... loads when allowed, bit for bit */
  r = load_via_buffer(&a, &b, 0, MRL_CHECKPOINT_ALLOW_NON_FINITE, &untouched);
  MRL_CHECK(r == MRL_OK && same_tensors(&a.p, &b.p, 0) && b.p.values[at] != b.p.values[at],
            "NaN parameter with MRL_CHECKPOINT_ALLOW_NON_FINITE: %s", mrl_result_string(r));
  MRL_CHECK(b.p.message[0] == '\0', "a load that works leaves no message: \"%s\"", b.p.message);
  /* an infinity, in the last tensor's last element */
  a.p.values[at] = 0.5f;
  at = a.p.items[a.p.count - 1].offset + (size_t)a.p.items[a.p.count - 1].tensor.size - 1;
  a.p.values[at] = -(float)INFINITY;
  r = load_via_buffer(&a, &b, 0, MRL_CHECKPOINT_ALLOW_UNKNOWN, &untouched);
  MRL_CHECK(r == MRL_ERR_CORRUPT && untouched && strstr(b.p.message, "-inf") &&
                strstr(b.p.message, a.p.items[a.p.count - 1].name),
            "-inf parameter: %s, \"%s\"", mrl_result_string(r), b.p.message);
  a.p.values[at] = 0.25f;
  /* a negative second moment: corrupt with the moments, ignored without */
  at = a.p.items[0].offset + 1;
  a.p.moment2[at] = -1e-3f;
  r = load_via_buffer(&a, &b, 1, MRL_CHECKPOINT_OPTIMIZER, &untouched);
  MRL_CHECK(r == MRL_ERR_CORRUPT && untouched && strstr(b.p.message, ".adam_v") &&
                strstr(b.p.message, "negative"),
            "negative Adam v: %s, \"%s\"", mrl_result_string(r), b.p.message);
  r = load_via_buffer(&a, &b, 1, MRL_CHECKPOINT_OPTIMIZER | MRL_CHECKPOINT_ALLOW_NON_FINITE,
                      &untouched);
  MRL_CHECK(r == MRL_ERR_CORRUPT && untouched, "negative Adam v is never allowed: %s",
            mrl_result_string(r));
  r = load_via_buffer(&a, &b, 1, 0, &untouched);
  MRL_CHECK(r == MRL_OK && same_tensors(&a.p, &b.p, 0), "values only, moments not read: %s",
            mrl_result_string(r));
  a.p.moment2[at] = -0.0f; /* the sign of a zero is no harm */
  r = load_via_buffer(&a, &b, 1, MRL_CHECKPOINT_OPTIMIZER, &untouched);
  MRL_CHECK(r == MRL_OK && same_tensors(&a.p, &b.p, 2), "-0 second moment: %s",
            mrl_result_string(r));
  /* a non-finite first moment */
  a.p.moment1[at] = (float)INFINITY;
  r = load_via_buffer(&a, &b, 1, MRL_CHECKPOINT_OPTIMIZER | MRL_CHECKPOINT_ALLOW_NON_FINITE,
                      &untouched);
  MRL_CHECK(r == MRL_ERR_CORRUPT && untouched && strstr(b.p.message, ".adam_m"),
            "infinite Adam m: %s, \"%s\"", mrl_result_string(r), b.p.message);
  /* flags beyond the known ones, and a NULL path, are invalid arguments */
  MRL_CHECK(load_via_buffer(&a, &b, 0, 8, &untouched) == MRL_ERR_INVALID_ARGUMENT && untouched,
            "unknown flag 8");
  MRL_CHECK(mrl_checkpoint_load(&b.p, NULL, 0) == MRL_ERR_INVALID_ARGUMENT,
            "load with a NULL path: %s", mrl_result_string(mrl_checkpoint_load(&b.p, NULL, 0)));
  {
    mrl_checkpoint c;
    MRL_CHECK(mrl_checkpoint_open(&c, NULL) == MRL_ERR_INVALID_ARGUMENT, "open with a NULL path");
    mrl_checkpoint_close(&c);
  }
  mrl_params_free(&a.p);
  mrl_params_free(&b.p);
}

#ifdef HAVE_POSIX
/* A file in CKPT_DIR with the given name, last modified age_s seconds ago. */
static void make_temp_file(const char *name, long age_s) {
  char full[1100];
  struct timespec times[2];
  FILE *f;
  snprintf(full, sizeof full, "%s/%s", CKPT_DIR, name);
  f = fopen(full, "wb");
  if (f) {
    fputs("partial", f);
    fclose(f);
  }
  clock_gettime(CLOCK_REALTIME, &times[0]);
  times[0].tv_sec -= age_s;
  times[1] = times[0];
  utimensat(AT_FDCWD, full, times, 0);
}

static int temp_exists(const char *name) {
  char full[1100];
  struct stat st;
  snprintf(full, sizeof full, "%s/%s", CKPT_DIR, name);
  return stat(full, &st) == 0;
}

/* Killed saves leave "<path>.tmp.<pid>.<hex>.<n>"; the next save to path
 * removes exactly those whose process is gone and that are stale. */
static void test_stale_temporaries(void) {
  static const char *const names[8] = {
      "stale.safetensors.tmp.%d.7f00aa.0",     /* dead writer, old: removed */
      "stale.safetensors.tmp.%d.7f00aa.3",     /* dead writer, old: removed */
      "stale.safetensors.tmp.%d.7f00aa.1",     /* dead writer, fresh: kept */
      "stale.safetensors.tmp.%d.7f00aa.2",     /* this process: kept */
      "stale.safetensors.tmp.1.7f00aa.0",      /* a live process (init): kept */
      "stale.safetensors.tmp.%d.7f00aa.0.bak", /* not the pattern: kept */
      "other.safetensors.tmp.%d.7f00aa.0",     /* another path's: kept */
      "stale.safetensors.tmp.%d.7F00AA.0"};    /* not the pattern (upper case): kept */
  const long ages[8] = {3600, 120, 0, 3600, 3600, 3600, 3600, 3600};
  const int removed[8] = {1, 1, 0, 0, 0, 0, 0, 0};
  char name[8][128];
  model a;
  pid_t dead = fork();
  int i, st = 0;
  if (dead == 0) _exit(0);
  if (dead < 0) return;
  waitpid(dead, &st, 0); /* reaped: no process has this pid now */
  model_init(&a, 1, 8);
  for (i = 0; i < 8; i++) {
    snprintf(name[i], sizeof name[i], names[i], i == 3 ? (int)getpid() : (int)dead);
    make_temp_file(name[i], ages[i]);
  }
  MRL_CHECK(mrl_checkpoint_save(&a.p, CKPT_DIR "/stale.safetensors", NULL) == MRL_OK, "save");
  for (i = 0; i < 8; i++) {
    MRL_CHECK(temp_exists(name[i]) == !removed[i], "%s: %s", name[i],
              removed[i] ? "left behind" : "removed");
    if (temp_exists(name[i])) {
      char full[1100];
      snprintf(full, sizeof full, "%s/%s", CKPT_DIR, name[i]);
      remove(full);
    }
  }
  mrl_params_free(&a.p);
}
#else
static void test_stale_temporaries(void) {
  printf("stale temporary tests skipped: not POSIX\n");
}
#endif

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0) {
    int ok = write_corpus(argv[2]);
    printf("%s corpus in %s\n", ok ? "wrote" : "could not write the", argv[2]);
    return ok ? 0 : 1;
  }
#ifdef HAVE_POSIX
  mkdir("build", 0755);
  mkdir(CKPT_DIR, 0755);
#endif
  test_exact_bytes();
  test_reference_vectors();
  test_roundtrip();
  test_corrupt_headers();
  test_corrupt_framing();
  test_mismatch();
  test_save_arguments();
  test_atomic();
  test_byte_order();
  test_mutations();
  test_out_of_memory();
  test_torch_written();
  test_non_finite_values();
  test_stale_temporaries();
  write_for_python();
  return mrl_test_summary("test_checkpoint");
}
