/* Loader for the PyTorch reference fixtures under tests/ref/ (written by
 * tools/make_ref.py), shared by the test programs.
 *
 * File format: one array per line, `<name> <ndim> <d0> ... <v0> <v1> ...`,
 * row-major; lines starting with '#' are comments. Paths are relative to the
 * repository root, where the tests run.
 *
 *   mrl_ref_file f;
 *   if (mrl_ref_open(&f, "tests/ref/ops.txt")) {
 *     float *x;  int n = mrl_ref_get(&f, "ls_x", &x, NULL, NULL);  ...  free(x);
 *     mrl_ref_expect(&f, "ls_y", y->data, y->size, 1e-5, 1e-4);
 *     mrl_ref_close(&f);
 *   }
 *
 * A missing file, a missing name or a malformed line is one failed check with
 * a message that says which, never a crash. */
#ifndef MRL_REF_LOADER_H
#define MRL_REF_LOADER_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "test.h"

typedef struct mrl_ref_file {
  const char *path;
  char *text; /* the whole file, NUL-terminated; NULL when it could not be read */
} mrl_ref_file;

/* Reads the whole fixture. Returns 1, or 0 after recording a failed check. */
static inline int mrl_ref_open(mrl_ref_file *f, const char *path) {
  FILE *fp = fopen(path, "rb");
  long len;
  size_t got;
  f->path = path;
  f->text = NULL;
  if (!fp) {
    MRL_CHECK(0, "fixture %s is missing (run the tests from the repository root)", path);
    return 0;
  }
  if (fseek(fp, 0, SEEK_END) != 0 || (len = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) != 0) {
    fclose(fp);
    MRL_CHECK(0, "fixture %s: cannot determine its size", path);
    return 0;
  }
  f->text = (char *)malloc((size_t)len + 1);
  if (!f->text) {
    fclose(fp);
    MRL_CHECK(0, "fixture %s: out of memory", path);
    return 0;
  }
  got = fread(f->text, 1, (size_t)len, fp);
  fclose(fp);
  f->text[got] = '\0';
  return 1;
}

static inline void mrl_ref_close(mrl_ref_file *f) {
  free(f->text);
  f->text = NULL;
}

/* Finds the line named `name` and parses its values into a new heap array
 * (*out, freed by the caller with free()). ndim and shape (4 ints) may be NULL.
 * Returns the number of values, or -1 after recording a failed check. */
static inline int mrl_ref_get(const mrl_ref_file *f, const char *name, float **out, int *ndim,
                              int *shape) {
  const char *line = f->text;
  size_t name_len = strlen(name);
  *out = NULL;
  if (!line) {
    MRL_CHECK(0, "fixture %s was not loaded, so %s is unavailable", f->path, name);
    return -1;
  }
  while (*line) {
    const char *eol = strchr(line, '\n');
    if (!eol) eol = line + strlen(line);
    if (line[0] != '#' && strncmp(line, name, name_len) == 0 &&
        (line[name_len] == ' ' || line[name_len] == '\t')) {
      char *p = (char *)line + name_len, *end;
      long nd = strtol(p, &end, 10), count = 1, i;
      int dims[4] = {1, 1, 1, 1};
      float *v;
      if (end == p || nd < 1 || nd > 4) {
        MRL_CHECK(0, "fixture %s: %s: bad number of dimensions", f->path, name);
        return -1;
      }
      for (i = 0; i < nd; i++) {
        long d;
        p = end;
        d = strtol(p, &end, 10);
        if (end == p || d < 0 || d > 1000000) {
          MRL_CHECK(0, "fixture %s: %s: bad dimension %ld", f->path, name, i);
          return -1;
        }
        dims[i] = (int)d;
        count *= d;
      }
      v = (float *)malloc(sizeof(float) * (size_t)(count ? count : 1));
      if (!v) {
        MRL_CHECK(0, "fixture %s: %s: out of memory", f->path, name);
        return -1;
      }
      for (i = 0; i < count; i++) {
        p = end;
        v[i] = (float)strtod(p, &end);
        if (end == p || end > eol) {
          free(v);
          MRL_CHECK(0, "fixture %s: %s: expected %ld values, found %ld", f->path, name, count, i);
          return -1;
        }
      }
      while (end < eol && (*end == ' ' || *end == '\t' || *end == '\r')) end++;
      if (end != eol) {
        free(v);
        MRL_CHECK(0, "fixture %s: %s: more values than its shape holds", f->path, name);
        return -1;
      }
      if (ndim) *ndim = (int)nd;
      if (shape) memcpy(shape, dims, sizeof dims);
      *out = v;
      return (int)count;
    }
    line = *eol ? eol + 1 : eol;
  }
  MRL_CHECK(0, "fixture %s has no line named %s", f->path, name);
  return -1;
}

/* Loads `name`, which must hold n values, into dst (n floats). Returns 1 on
 * success, 0 after recording a failed check. */
static inline int mrl_ref_fill(const mrl_ref_file *f, const char *name, float *dst, int n) {
  float *v;
  int got = mrl_ref_get(f, name, &v, NULL, NULL);
  if (got < 0) return 0;
  if (got != n) {
    MRL_CHECK(0, "fixture %s: %s has %d values, the test expects %d", f->path, name, got, n);
    free(v);
    return 0;
  }
  memcpy(dst, v, sizeof(float) * (size_t)n);
  free(v);
  return 1;
}

/* One check: every |got[i] - want[i]| <= atol + rtol * |want[i]| for the n
 * values of the fixture array `name`; a failure names the worst element. */
static inline void mrl_ref_expect(const mrl_ref_file *f, const char *name, const float *got, int n,
                                  double atol, double rtol) {
  float *want;
  int count = mrl_ref_get(f, name, &want, NULL, NULL), i, worst_i = 0;
  double worst = -1.0;
  if (count < 0) return;
  if (count != n) {
    MRL_CHECK(0, "%s: fixture has %d values, the test produced %d", name, count, n);
    free(want);
    return;
  }
  for (i = 0; i < n; i++) {
    double d = fabs((double)got[i] - (double)want[i]) / (atol + rtol * fabs((double)want[i]));
    if (d != d) d = 1e300; /* NaN counts as the worst */
    if (d > worst) {
      worst = d;
      worst_i = i;
    }
  }
  MRL_CHECK(n == 0 || worst <= 1.0, "%s vs PyTorch: element %d is %.9g, want %.9g", name, worst_i,
            n ? (double)got[worst_i] : 0.0, n ? (double)want[worst_i] : 0.0);
  free(want);
}
#endif

/* ---- pinned agent updates (test_ppo_update.c, test_a2c.c) ----
 * Outside the guard, for files that include memrl_algos.h: a stand-in vector
 * env of fixed spaces that an update never steps (MRL_REF_OBS observation
 * floats; 3 discrete actions, or 2 box actions in [-1, 1]), and the twin's
 * parameters <case>_p<k> loaded in declaration order with shapes checked. */
#if defined(MEMRL_ALGOS_H) && !defined(MRL_REF_AGENT_HELPERS)
#define MRL_REF_AGENT_HELPERS
#define MRL_REF_OBS 3
static inline mrl_result mrl_ref_fixed_reset(void *self, uint64_t seed, float *obs) {
  (void)self;
  (void)seed;
  memset(obs, 0, sizeof(float) * MRL_REF_OBS);
  return MRL_OK;
}
static inline mrl_result mrl_ref_fixed_step(void *self, const float *action, float *obs,
                                            float *reward, int *terminated, int *truncated) {
  (void)self;
  (void)action;
  memset(obs, 0, sizeof(float) * MRL_REF_OBS);
  *reward = 0.0f;
  *terminated = *truncated = 0;
  return MRL_OK;
}

/* num_envs (at most 16) stand-in environments; 1 on success. */
static inline int mrl_ref_fixed_vecenv(mrl_vecenv *v, int num_envs, int box) {
  static const float low[2] = {-1.0f, -1.0f}, high[2] = {1.0f, 1.0f};
  mrl_env *envs[16];
  mrl_env_vtable vt;
  int i;
  memset(&vt, 0, sizeof vt);
  vt.id = box ? "FixedBox" : "FixedDiscrete";
  vt.obs_dim = MRL_REF_OBS;
  vt.num_actions = box ? 0 : 3;
  vt.action_dim = box ? 2 : 1;
  vt.action_low = box ? low : NULL;
  vt.action_high = box ? high : NULL;
  vt.reset = mrl_ref_fixed_reset;
  vt.step = mrl_ref_fixed_step;
  if (num_envs > 16) return 0;
  for (i = 0; i < num_envs; i++) envs[i] = mrl_env_create(&vt, NULL);
  return mrl_vecenv_init_envs(v, envs, num_envs, 1) == MRL_OK;
}

/* Overwrites the agent's parameters with <c>_p<k>, in declaration order. */
static inline int mrl_ref_load_params(const mrl_ref_file *f, const char *c, mrl_params *p) {
  char name[64];
  int k;
  for (k = 0; k < p->count; k++) {
    mrl_tensor *t = &p->items[k].tensor;
    snprintf(name, sizeof name, "%s_p%d", c, k);
    if (!mrl_ref_fill(f, name, t->data, t->size)) {
      MRL_CHECK(0, "%s: parameter %d (%s) does not fit the twin's", c, k, p->items[k].name);
      return 0;
    }
  }
  snprintf(name, sizeof name, "\n%s_p%d ", c, k);
  MRL_CHECK(strstr(f->text, name) == NULL, "%s: the twin has more parameters than the %d here", c,
            p->count);
  return 1;
}
#endif
