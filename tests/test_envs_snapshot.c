/* Tests of the snapshots of memrl_envs.h (mrl_env_snapshot / _restore,
 * mrl_vecenv_snapshot / _restore): for an id of every registered family
 * (several for some) and for wrapped ids, a run that is snapshotted and
 * restored, into the same object or a fresh one, replays bit for bit what
 * the uninterrupted run did; damaged, truncated and foreign snapshots are
 * refused and change nothing.
 * cc -std=c99 -Wall -Wextra -pedantic tests/test_envs_snapshot.c -lm && ./a.out */
#define MEMRL_ENVS_IMPLEMENTATION
#include "../memrl_envs.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

/* Registered ids: each family of mrl_env_list must make at least one
 * (test_coverage checks it, so a new family without an id here fails). */
static const char *const base_ids[] = {"CartPole-v1",
                                       "StatelessCartPole-v1",
                                       "Pendulum-v1",
                                       "StatelessPendulum-v1",
                                       "NoisyStatelessPendulum-v1",
                                       "NoisyStatelessPendulum-v1-0.3",
                                       "VelocityOnlyCartPole-v1",
                                       "NoisyStatelessCartPole-v1",
                                       "NoisyStatelessCartPole-v1-0.2",
                                       "TMaze-5",
                                       "TMaze-3-7",
                                       "PassiveTMaze-4",
                                       "MemoryChain-4",
                                       "MemoryChain-3-5",
                                       "NoisySequence-6",
                                       "NoisySequence-8-2",
                                       "RepeatFirstEasy-v0",
                                       "RepeatFirstMedium-v0",
                                       "RepeatFirstHard-v0",
                                       "RepeatPreviousEasy-v0",
                                       "RepeatPreviousMedium-v0",
                                       "RepeatPreviousHard-v0",
                                       "AutoencodeEasy-v0",
                                       "AutoencodeMedium-v0",
                                       "AutoencodeHard-v0",
                                       "CountRecallEasy-v0",
                                       "CountRecallMedium-v0",
                                       "CountRecallHard-v0",
                                       "HigherLowerEasy-v0",
                                       "HigherLowerMedium-v0",
                                       "HigherLowerHard-v0",
                                       "ConcentrationEasy-v0",
                                       "ConcentrationMedium-v0",
                                       "ConcentrationHard-v0",
                                       "BattleshipEasy-v0",
                                       "BattleshipMedium-v0",
                                       "BattleshipHard-v0",
                                       "MineSweeperEasy-v0",
                                       "MineSweeperMedium-v0",
                                       "MineSweeperHard-v0",
                                       "MultiarmedBanditEasy-v0",
                                       "MultiarmedBanditMedium-v0",
                                       "MultiarmedBanditHard-v0",
                                       "popgym-RepeatFirstEasy-v0",
                                       "MetaBandit",
                                       "MetaBandit-5-30",
                                       "Semicircle",
                                       "Semicircle-20",
                                       "NumPad",
                                       "NumPad-4-5",
                                       "TreeMDP-3-4",
                                       "TreeMDP-2-6-7",
                                       "SFGrid",
                                       "Catch",
                                       "Catch-6-4",
                                       "PassiveVisualMatch",
                                       "PassiveVisualMatch-5",
                                       "PassiveVisualMatchCrop",
                                       "PassiveVisualMatchCrop-3"};

/* Every wrapper, alone and stacked, over discrete and box actions and over
 * environments with step_delta. */
static const char *const wrapped_ids[] = {
    "TMaze-4|prev_action_reward",
    "Pendulum-v1|prev_action_reward",
    "ConcentrationEasy-v0|prev_action_reward",
    "BattleshipEasy-v0|prev_action_reward|time_limit:20",
    "CartPole-v1|obs_noise:0.1|frame_stack:3",
    "MultiarmedBanditEasy-v0|prev_action_reward|frame_stack:2",
    "MemoryChain-3|obs_mask:0,2",
    "Pendulum-v1|domain_randomization:g=9:11|obs_dropout:0.2",
    "CartPole-v1|domain_randomization:gravity=8:12,length=0.4:0.6",
    "NoisyStatelessCartPole-v1|domain_randomization:masspole=0.05:0.2|prev_action_reward",
    "PassiveVisualMatch-4|time_limit:30",
    "NoisySequence-5|time_limit:3",
    "Semicircle-20|obs_noise:0.5|time_limit:7"};

#define NUM_BASE (int)(sizeof base_ids / sizeof base_ids[0])
#define NUM_WRAPPED (int)(sizeof wrapped_ids / sizeof wrapped_ids[0])

/* ---- a log of everything a run shows ------------------------------------ */

typedef struct tlog {
  unsigned char *p;
  size_t n, cap;
} tlog;

static void tlog_put(tlog *l, const void *x, size_t n) {
  if (l->n + n > l->cap) {
    size_t cap = l->cap ? l->cap : 4096;
    while (cap < l->n + n) cap *= 2;
    l->p = (unsigned char *)realloc(l->p, cap);
    l->cap = cap;
  }
  memcpy(l->p + l->n, x, n);
  l->n += n;
}

static int tlog_same(const tlog *a, const tlog *b) {
  return a->n == b->n && (a->n == 0 || memcmp(a->p, b->p, a->n) == 0);
}

/* The environment's visible state: render, task, parameters, episode
 * statistics. */
static void log_env_state(tlog *l, const mrl_env *env) {
  char text[8192];
  float task[64];
  int len = mrl_env_render(env, text, sizeof text), i, x;
  float f;
  tlog_put(l, &len, sizeof len);
  if (len > 0) tlog_put(l, text, strlen(text));
  if (mrl_env_task_dim(env) > 0 && mrl_env_task_dim(env) <= 64) {
    mrl_env_task(env, task);
    tlog_put(l, task, (size_t)mrl_env_task_dim(env) * sizeof(float));
  }
  for (i = 0; i < mrl_env_num_params(env); i++) {
    double v = 0.0;
    mrl_env_get_param(env, mrl_env_param_name(env, i), &v);
    tlog_put(l, &v, sizeof v);
  }
  f = mrl_env_episode_return(env);
  tlog_put(l, &f, sizeof f);
  x = mrl_env_episode_length(env);
  tlog_put(l, &x, sizeof x);
  x = mrl_env_episode_success(env);
  tlog_put(l, &x, sizeof x);
}

/* ---- the driver: random actions, resets with its own episode counter ---- */

typedef struct driver {
  mrl_rng rng;
  uint64_t episode;
} driver;

static void random_action(driver *d, int num_actions, int action_dim, float *a) {
  int j;
  if (num_actions > 0)
    a[0] = (float)mrl_rng_below(&d->rng, (uint32_t)num_actions);
  else /* beyond the bounds too: the wrapper clips */
    for (j = 0; j < action_dim; j++) a[j] = mrl_rng_uniform_range(&d->rng, -3.0f, 3.0f);
}

/* steps of env, resetting it when an episode ends; everything into l */
static void run_env(mrl_env *env, driver *d, int steps, tlog *l) {
  float obs[2048], a[8], r = 0.0f;
  int t, term = 0, trunc = 0, od = mrl_env_obs_dim(env);
  log_env_state(l, env);
  for (t = 0; t < steps; t++) {
    mrl_result res;
    random_action(d, mrl_env_num_actions(env), mrl_env_action_dim(env), a);
    res = mrl_env_step(env, a, obs, &r, &term, &trunc);
    tlog_put(l, &res, sizeof res);
    if (res != MRL_OK) continue;
    tlog_put(l, obs, (size_t)od * sizeof(float));
    tlog_put(l, &r, sizeof r);
    tlog_put(l, &term, sizeof term);
    tlog_put(l, &trunc, sizeof trunc);
    log_env_state(l, env);
    if (term || trunc) {
      res = mrl_env_reset(env, 1000 + d->episode++, obs);
      tlog_put(l, &res, sizeof res);
      tlog_put(l, obs, (size_t)od * sizeof(float));
      log_env_state(l, env);
    }
  }
}

/* The snapshot of env in a new buffer (*len its length); NULL when none. */
static unsigned char *take_snapshot(const mrl_env *env, size_t *len) {
  unsigned char *b;
  *len = mrl_env_snapshot(env, NULL, 0);
  if (*len == 0) return NULL;
  b = (unsigned char *)malloc(*len);
  if (mrl_env_snapshot(env, b, *len) != *len) {
    free(b);
    return NULL;
  }
  return b;
}

/* 1 when env's current snapshot is byte for byte ref. */
static int env_is(const mrl_env *env, const unsigned char *ref, size_t len) {
  size_t n;
  unsigned char *now = take_snapshot(env, &n);
  int same = now && n == len && memcmp(now, ref, len) == 0;
  free(now);
  return same;
}

/* Damaged, truncated and foreign snapshots are refused; env unchanged. */
static void check_env_refuses(const char *id, mrl_env *env, const unsigned char *snap, size_t len) {
  size_t before_len, at[8], k;
  unsigned char *before = take_snapshot(env, &before_len), *bad = (unsigned char *)malloc(len);
  const char *other_id = strcmp(id, "TMaze-5") ? "TMaze-5" : "TMaze-6";
  mrl_env *other = mrl_env_make(other_id);
  unsigned char *foreign;
  size_t foreign_len;
  mrl_result r;
  at[0] = 0;       /* magic */
  at[1] = 9;       /* version */
  at[2] = 17;      /* total */
  at[3] = 25;      /* checksum */
  at[4] = 33;      /* id */
  at[5] = len / 2; /* the payload */
  at[6] = len - 1;
  at[7] = len - 9;
  for (k = 0; k < 8; k++) {
    memcpy(bad, snap, len);
    bad[at[k]] ^= 0x5a;
    r = mrl_env_restore(env, bad, len);
    MRL_CHECK(r == MRL_ERR_CORRUPT || r == MRL_ERR_INVALID_ARGUMENT,
              "%s: byte %d flipped: refused (%d)", id, (int)at[k], (int)r);
    MRL_CHECK(env_is(env, before, before_len), "%s: byte %d flipped: unchanged", id, (int)at[k]);
  }
  for (k = 0; k < 4; k++) {
    size_t cut = k == 0 ? 0 : k == 1 ? 31 : k == 2 ? len / 2 : len - 1;
    r = mrl_env_restore(env, snap, cut);
    MRL_CHECK(r == MRL_ERR_CORRUPT, "%s: truncated to %d: corrupt (%d)", id, (int)cut, (int)r);
    MRL_CHECK(env_is(env, before, before_len), "%s: truncated: unchanged", id);
  }
  MRL_CHECK(mrl_env_restore(env, NULL, len) == MRL_ERR_CORRUPT, "%s: NULL buffer", id);
  mrl_env_reset(other, 3, NULL);
  foreign = take_snapshot(other, &foreign_len);
  r = mrl_env_restore(env, foreign, foreign_len);
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT, "%s: snapshot of %s refused (%d)", id, other_id, (int)r);
  MRL_CHECK(env_is(env, before, before_len), "%s: foreign: unchanged", id);
  free(foreign);
  free(bad);
  free(before);
  mrl_env_free(other);
}

/* Snapshot after N steps; the next M steps replayed from the snapshot in
 * the same object and in a fresh one. */
static void check_env_replay(const char *id, int n_before, int m_after) {
  mrl_env *env = mrl_env_make(id), *fresh = mrl_env_make(id);
  driver d, saved;
  tlog before = {NULL, 0, 0}, uninterrupted = {NULL, 0, 0}, same = {NULL, 0, 0},
       again = {NULL, 0, 0};
  unsigned char *snap, guard[64];
  size_t len;
  MRL_CHECK(env && fresh, "%s made", id);
  if (!env || !fresh) return;
  d.rng = mrl_rng_make(77);
  d.episode = 0;
  mrl_env_reset(env, 5, NULL);
  run_env(env, &d, n_before, &before);
  snap = take_snapshot(env, &len);
  MRL_CHECK(snap != NULL && len > 32, "%s: snapshot of %d bytes", id, (int)len);
  if (!snap) return;
  memset(guard, 0xab, sizeof guard);
  MRL_CHECK(mrl_env_snapshot(env, guard, len - 1 < sizeof guard ? len - 1 : sizeof guard) == len &&
                guard[0] == 0xab && guard[sizeof guard - 1] == 0xab,
            "%s: a short buffer gets the length and no bytes", id);
  saved = d;
  run_env(env, &d, m_after, &uninterrupted);

  MRL_CHECK(mrl_env_restore(env, snap, len) == MRL_OK, "%s: restore into the same env", id);
  d = saved;
  run_env(env, &d, m_after, &same);
  MRL_CHECK(tlog_same(&uninterrupted, &same), "%s: same env replays bitwise (%d vs %d bytes)", id,
            (int)uninterrupted.n, (int)same.n);

  mrl_env_reset(fresh, 999, NULL); /* another episode first: restore must replace it */
  MRL_CHECK(mrl_env_restore(fresh, snap, len) == MRL_OK, "%s: restore into a fresh env", id);
  d = saved;
  run_env(fresh, &d, m_after, &again);
  MRL_CHECK(tlog_same(&uninterrupted, &again), "%s: fresh env replays bitwise", id);

  check_env_refuses(id, fresh, snap, len);
  free(snap);
  free(before.p);
  free(uninterrupted.p);
  free(same.p);
  free(again.p);
  mrl_env_free(env);
  mrl_env_free(fresh);
}

static void test_coverage(void) {
  mrl_env_info info;
  int e, i, n = mrl_env_list(0, NULL);
  for (e = 0; e < n; e++) {
    int made = 0;
    mrl_env_list(e, &info);
    for (i = 0; i < NUM_BASE && !made; i++) {
      mrl_env *env = info.make(base_ids[i]);
      made = env != NULL;
      mrl_env_free(env);
    }
    MRL_CHECK(made, "family %s has an id in the snapshot test", info.pattern);
  }
}

static void test_env_replay(void) {
  int i;
  for (i = 0; i < NUM_BASE; i++) check_env_replay(base_ids[i], 37, 90);
  for (i = 0; i < NUM_WRAPPED; i++) check_env_replay(wrapped_ids[i], 37, 90);
}

/* The checks above can fail: a run that is not restored differs, and an
 * episode that ended stays ended across a snapshot. */
static void test_env_edges(void) {
  mrl_env *env = mrl_env_make("CartPole-v1"), *fresh = mrl_env_make("CartPole-v1");
  driver d, saved;
  tlog a = {NULL, 0, 0}, b = {NULL, 0, 0};
  unsigned char *snap;
  size_t len;
  float act = 1.0f;
  int term = 0, trunc = 0;
  d.rng = mrl_rng_make(3);
  d.episode = 0;
  mrl_env_reset(env, 1, NULL);
  run_env(env, &d, 10, &a);
  saved = d;
  a.n = 0;
  run_env(env, &d, 30, &a);
  d = saved;
  run_env(env, &d, 30, &b); /* no restore: a different state */
  MRL_CHECK(!tlog_same(&a, &b), "without a restore the replay differs");

  /* not reset yet: restored as such */
  snap = take_snapshot(fresh, &len);
  MRL_CHECK(snap != NULL, "a fresh env has a snapshot");
  MRL_CHECK(mrl_env_restore(env, snap, len) == MRL_OK, "restore a never-reset env");
  MRL_CHECK(mrl_env_step(env, &act, NULL, NULL, NULL, NULL) == MRL_ERR_NOT_RESET,
            "restored before any reset: step refused");
  free(snap);

  /* after the end of an episode: still ended, with its statistics */
  mrl_env_reset(env, 2, NULL);
  while (!term && !trunc) mrl_env_step(env, &act, NULL, NULL, &term, &trunc);
  snap = take_snapshot(env, &len);
  mrl_env_reset(fresh, 8, NULL);
  MRL_CHECK(mrl_env_restore(fresh, snap, len) == MRL_OK, "restore an ended episode");
  MRL_CHECK(mrl_env_step(fresh, &act, NULL, NULL, NULL, NULL) == MRL_ERR_NOT_RESET,
            "ended episode: step refused after restore");
  MRL_CHECK(mrl_env_episode_length(fresh) == mrl_env_episode_length(env) &&
                mrl_env_episode_return(fresh) == mrl_env_episode_return(env),
            "ended episode: its length and return");
  free(snap);
  free(a.p);
  free(b.p);
  mrl_env_free(env);
  mrl_env_free(fresh);
}

/* ---- user environments --------------------------------------------------- */

typedef struct counter {
  int t, limit;
} counter;

static mrl_result counter_reset(void *self, uint64_t seed, float *obs) {
  counter *c = (counter *)self;
  c->t = (int)(seed % 3);
  obs[0] = (float)c->t;
  return MRL_OK;
}
static mrl_result counter_step(void *self, const float *action, float *obs, float *reward,
                               int *terminated, int *truncated) {
  counter *c = (counter *)self;
  c->t += 1 + (int)action[0];
  obs[0] = (float)c->t;
  *reward = (float)c->t;
  *terminated = c->t >= 20;
  *truncated = 0;
  return MRL_OK;
}
static size_t counter_snapshot(const void *self, void *buf, size_t size) {
  if (buf && size >= sizeof(int)) memcpy(buf, &((const counter *)self)->t, sizeof(int));
  return sizeof(int);
}
/* refuses counts above the limit: a hook that checks what it restores */
static mrl_result counter_restore(void *self, const void *buf, size_t size) {
  int t;
  if (!buf || size != sizeof(int)) return MRL_ERR_CORRUPT;
  memcpy(&t, buf, sizeof t);
  if (t < 0 || t > ((counter *)self)->limit) return MRL_ERR_CORRUPT;
  ((counter *)self)->t = t;
  return MRL_OK;
}

static mrl_env_vtable counter_vtable(int hooks) {
  mrl_env_vtable vt;
  memset(&vt, 0, sizeof vt);
  vt.id = "Counter-v0";
  vt.obs_dim = 1;
  vt.num_actions = 2;
  vt.action_dim = 1;
  vt.reset = counter_reset;
  vt.step = counter_step;
  if (hooks) {
    vt.snapshot = counter_snapshot;
    vt.restore = counter_restore;
  }
  return vt;
}

static void test_user_envs(void) {
  counter c[5];
  mrl_env_vtable vt = counter_vtable(0);
  mrl_env *env, *wrapped, *envs[3];
  mrl_vecenv v;
  unsigned char buf[256];
  float act = 1.0f, acts[3] = {1.0f, 0.0f, 1.0f};
  size_t len;
  int i, t_before[3];
  memset(c, 0, sizeof c);
  for (i = 0; i < 5; i++) c[i].limit = 1000;
  env = mrl_env_create(&vt, &c[0]);
  mrl_env_reset(env, 1, NULL);
  MRL_CHECK(mrl_env_snapshot(env, NULL, 0) == 0 && mrl_env_snapshot(env, buf, sizeof buf) == 0,
            "user env without hooks: 0");
  MRL_CHECK(mrl_env_restore(env, buf, sizeof buf) == MRL_ERR_INVALID_ARGUMENT,
            "user env without hooks: restore refused");
  wrapped = mrl_env_wrap_prev_action_reward(env);
  MRL_CHECK(mrl_env_snapshot(wrapped, NULL, 0) == 0, "wrapper around it: 0");
  mrl_env_free(wrapped);
  MRL_CHECK(mrl_env_snapshot(NULL, NULL, 0) == 0, "NULL env: 0");

  vt.snapshot = counter_snapshot; /* one hook without the other */
  MRL_CHECK(mrl_env_create(&vt, &c[0]) == NULL, "snapshot without restore: refused");
  vt = counter_vtable(1);
  env = mrl_env_create(&vt, &c[0]);
  mrl_env_reset(env, 2, NULL);
  mrl_env_step(env, &act, NULL, NULL, NULL, NULL);
  len = mrl_env_snapshot(env, buf, sizeof buf);
  MRL_CHECK(len > 0 && len <= sizeof buf && c[0].t == 4, "user env with hooks: %d bytes", (int)len);
  mrl_env_step(env, &act, NULL, NULL, NULL, NULL);
  MRL_CHECK(mrl_env_restore(env, buf, len) == MRL_OK && c[0].t == 4 &&
                mrl_env_episode_length(env) == 1 && mrl_env_episode_return(env) == 4.0f,
            "user env restored through its hook");
  mrl_env_free(env);

  /* a vector whose third env's hook refuses: none of the three changes */
  for (i = 0; i < 3; i++) envs[i] = mrl_env_create(&vt, &c[i]);
  MRL_CHECK(mrl_vecenv_init_envs(&v, envs, 3, 9) == MRL_OK, "vector of user envs");
  mrl_vecenv_reset(&v);
  mrl_vecenv_step(&v, acts);
  c[2].t = 500; /* above the limit set next: its restore will refuse */
  len = mrl_vecenv_snapshot(&v, NULL, 0);
  {
    unsigned char *snap = (unsigned char *)malloc(len), *before, *after;
    size_t blen;
    MRL_CHECK(mrl_vecenv_snapshot(&v, snap, len) == len, "vector snapshot");
    c[2].limit = 100;
    c[2].t = 3;
    mrl_vecenv_step(&v, acts);
    blen = mrl_vecenv_snapshot(&v, NULL, 0);
    before = (unsigned char *)malloc(blen);
    after = (unsigned char *)malloc(blen);
    mrl_vecenv_snapshot(&v, before, blen);
    for (i = 0; i < 3; i++) t_before[i] = c[i].t;
    MRL_CHECK(mrl_vecenv_restore(&v, snap, len) == MRL_ERR_CORRUPT, "a hook refuses: error");
    mrl_vecenv_snapshot(&v, after, blen);
    MRL_CHECK(memcmp(before, after, blen) == 0 && c[0].t == t_before[0] && c[1].t == t_before[1] &&
                  c[2].t == t_before[2],
              "a hook refuses: every env as before (rolled back)");
    c[2].limit = 1000;
    MRL_CHECK(mrl_vecenv_restore(&v, snap, len) == MRL_OK && c[2].t == 500,
              "then accepted once the hook agrees");
    free(snap);
    free(before);
    free(after);
  }
  mrl_vecenv_free(&v);

  /* a vector over an env without hooks: 0 */
  vt = counter_vtable(0);
  envs[0] = mrl_env_create(&vt, &c[3]);
  vt = counter_vtable(1);
  envs[1] = mrl_env_create(&vt, &c[4]);
  mrl_vecenv_init_envs(&v, envs, 2, 1);
  MRL_CHECK(mrl_vecenv_snapshot(&v, NULL, 0) == 0, "vector with an env without hooks: 0");
  MRL_CHECK(mrl_vecenv_restore(&v, buf, sizeof buf) == MRL_ERR_INVALID_ARGUMENT,
            "vector with an env without hooks: restore refused");
  mrl_vecenv_free(&v);
}

/* ---- vector environments -------------------------------------------------- */

/* Everything the vector shows, before the first step too (so what a restore
 * wrote is compared before a step overwrites it). */
static void log_vec_state(tlog *l, const mrl_vecenv *v) {
  const size_t n = (size_t)v->num_envs, od = (size_t)v->obs_dim;
  int i;
  tlog_put(l, v->obs, n * od * sizeof(float));
  for (i = 0; i < v->num_envs; i++)
    if (v->terminated[i] || v->truncated[i])
      tlog_put(l, v->final_obs + (size_t)i * od, od * sizeof(float));
  tlog_put(l, v->rewards, n * sizeof(float));
  tlog_put(l, v->terminated, n * sizeof(int));
  tlog_put(l, v->truncated, n * sizeof(int));
  tlog_put(l, v->episode_return, n * sizeof(float));
  tlog_put(l, v->episode_length, n * sizeof(int));
  tlog_put(l, v->episode_success, n * sizeof(int));
  tlog_put(l, v->episodes_started, n * sizeof(uint64_t));
  tlog_put(l, &v->total_steps, sizeof v->total_steps);
  tlog_put(l, &v->ready, sizeof v->ready);
  for (i = 0; i < v->num_envs; i++) log_env_state(l, v->envs[i]);
}

static void run_vec(mrl_vecenv *v, driver *d, int steps, tlog *l) {
  float acts[3 * 8];
  int t, i;
  log_vec_state(l, v);
  for (t = 0; t < steps; t++) {
    mrl_result r;
    for (i = 0; i < v->num_envs; i++)
      random_action(d, v->num_actions, v->action_dim, acts + (size_t)i * (size_t)v->action_dim);
    r = mrl_vecenv_step(v, acts);
    tlog_put(l, &r, sizeof r);
    log_vec_state(l, v);
  }
}

static unsigned char *take_vec_snapshot(const mrl_vecenv *v, size_t *len) {
  unsigned char *b;
  *len = mrl_vecenv_snapshot(v, NULL, 0);
  if (*len == 0) return NULL;
  b = (unsigned char *)malloc(*len);
  if (mrl_vecenv_snapshot(v, b, *len) != *len) {
    free(b);
    return NULL;
  }
  return b;
}

static int vec_is(const mrl_vecenv *v, const unsigned char *ref, size_t len) {
  size_t n;
  unsigned char *now = take_vec_snapshot(v, &n);
  int same = now && n == len && memcmp(now, ref, len) == 0;
  free(now);
  return same;
}

static void check_vec_refuses(const char *id, mrl_vecenv *v, const unsigned char *snap,
                              size_t len) {
  size_t before_len, k, at[7];
  unsigned char *before = take_vec_snapshot(v, &before_len), *bad = (unsigned char *)malloc(len);
  mrl_vecenv other;
  unsigned char *foreign;
  size_t foreign_len;
  mrl_result r;
  at[0] = 0;
  at[1] = 13; /* num_envs */
  at[2] = 20; /* total */
  at[3] = 48; /* seed */
  at[4] = 64; /* the arrays */
  at[5] = len / 2;
  at[6] = len - 1;
  for (k = 0; k < 7; k++) {
    memcpy(bad, snap, len);
    bad[at[k]] ^= 0x21;
    r = mrl_vecenv_restore(v, bad, len);
    MRL_CHECK(r == MRL_ERR_CORRUPT || r == MRL_ERR_INVALID_ARGUMENT,
              "vec %s: byte %d flipped: refused (%d)", id, (int)at[k], (int)r);
    MRL_CHECK(vec_is(v, before, before_len), "vec %s: byte %d flipped: unchanged", id, (int)at[k]);
  }
  r = mrl_vecenv_restore(v, snap, len - 1);
  MRL_CHECK(r == MRL_ERR_CORRUPT && vec_is(v, before, before_len), "vec %s: truncated", id);
  r = mrl_vecenv_restore(v, snap, 20);
  MRL_CHECK(r == MRL_ERR_CORRUPT && vec_is(v, before, before_len), "vec %s: head only", id);
  /* an environment's snapshot is not a vector's, nor the other way round */
  foreign = take_snapshot(v->envs[1], &foreign_len);
  r = mrl_vecenv_restore(v, foreign, foreign_len);
  MRL_CHECK(r == MRL_ERR_CORRUPT && vec_is(v, before, before_len),
            "vec %s: an env snapshot refused (%d)", id, (int)r);
  r = mrl_env_restore(v->envs[1], snap, len);
  MRL_CHECK(r == MRL_ERR_CORRUPT && vec_is(v, before, before_len),
            "vec %s: a vector snapshot refused by an env (%d)", id, (int)r);
  free(foreign);
  /* the same id, two envs instead of three */
  mrl_vecenv_init(&other, id, 2, 1);
  mrl_vecenv_reset(&other);
  foreign = take_vec_snapshot(&other, &foreign_len);
  r = mrl_vecenv_restore(v, foreign, foreign_len);
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT && vec_is(v, before, before_len),
            "vec %s: a vector of 2 refused (%d)", id, (int)r);
  free(foreign);
  mrl_vecenv_free(&other);
  /* another id of the same shape: caught by the environments' snapshots */
  if (strcmp(id, "TMaze-5") == 0 || strcmp(id, "TMaze-3-7") == 0) {
    mrl_vecenv_init(&other, strcmp(id, "TMaze-5") ? "TMaze-5" : "TMaze-3-7", 3, 1);
    mrl_vecenv_reset(&other);
    foreign = take_vec_snapshot(&other, &foreign_len);
    r = mrl_vecenv_restore(v, foreign, foreign_len);
    MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT && vec_is(v, before, before_len),
              "vec %s: another TMaze refused (%d)", id, (int)r);
    free(foreign);
    mrl_vecenv_free(&other);
  }
  free(bad);
  free(before);
}

static void check_vec_replay(const char *id, int n_before, int m_after) {
  mrl_vecenv v, fresh;
  driver d, saved;
  tlog uninterrupted = {NULL, 0, 0}, same = {NULL, 0, 0}, again = {NULL, 0, 0},
       scratch = {NULL, 0, 0};
  unsigned char *snap;
  size_t len;
  if (mrl_vecenv_init(&v, id, 3, 21) != MRL_OK) {
    MRL_CHECK(0, "vec %s made", id);
    return;
  }
  d.rng = mrl_rng_make(5);
  d.episode = 0;
  mrl_vecenv_reset(&v);
  run_vec(&v, &d, n_before, &scratch);
  snap = take_vec_snapshot(&v, &len);
  MRL_CHECK(snap != NULL, "vec %s: snapshot", id);
  if (!snap) return;
  {
    unsigned char *guard = (unsigned char *)malloc(len);
    memset(guard, 0xab, len);
    MRL_CHECK(mrl_vecenv_snapshot(&v, guard, len - 1) == len && guard[0] == 0xab &&
                  guard[len - 2] == 0xab,
              "vec %s: a short buffer gets the length and no bytes", id);
    free(guard);
  }
  saved = d;
  run_vec(&v, &d, m_after, &uninterrupted);
  MRL_CHECK(mrl_vecenv_restore(&v, snap, len) == MRL_OK, "vec %s: restore into the same", id);
  d = saved;
  run_vec(&v, &d, m_after, &same);
  MRL_CHECK(tlog_same(&uninterrupted, &same), "vec %s: same vector replays bitwise", id);

  mrl_vecenv_init(&fresh, id, 3, 12345); /* another seed, never reset */
  MRL_CHECK(mrl_vecenv_restore(&fresh, snap, len) == MRL_OK, "vec %s: restore into a fresh", id);
  MRL_CHECK(fresh.seed == 21 && fresh.ready == 1, "vec %s: seed and ready restored", id);
  d = saved;
  run_vec(&fresh, &d, m_after, &again);
  MRL_CHECK(tlog_same(&uninterrupted, &again), "vec %s: fresh vector replays bitwise", id);

  check_vec_refuses(id, &fresh, snap, len);
  free(snap);
  free(scratch.p);
  free(uninterrupted.p);
  free(same.p);
  free(again.p);
  mrl_vecenv_free(&v);
  mrl_vecenv_free(&fresh);
}

static void test_vec_replay(void) {
  int i;
  for (i = 0; i < NUM_BASE; i++) check_vec_replay(base_ids[i], 23, 70);
  for (i = 0; i < NUM_WRAPPED; i++) check_vec_replay(wrapped_ids[i], 23, 70);
}

/* obs_updates_in_place is the caller's: a restore keeps it */
static void test_vec_keeps_user_setting(void) {
  mrl_vecenv v;
  unsigned char *snap;
  size_t len;
  mrl_vecenv_init(&v, "ConcentrationEasy-v0", 3, 4);
  mrl_vecenv_reset(&v);
  snap = take_vec_snapshot(&v, &len);
  v.obs_updates_in_place = 0;
  MRL_CHECK(mrl_vecenv_restore(&v, snap, len) == MRL_OK && v.obs_updates_in_place == 0,
            "obs_updates_in_place kept");
  free(snap);
  mrl_vecenv_free(&v);
}

/* Ranges that ADR moved after the id was made come back with a restore. */
static void test_dr_ranges(void) {
  const char *id = "CartPole-v1|domain_randomization:gravity=9:10";
  mrl_env *env = mrl_env_make(id), *fresh = mrl_env_make(id);
  driver d, saved;
  tlog a = {NULL, 0, 0}, b = {NULL, 0, 0};
  unsigned char *snap;
  size_t len;
  double lo = 0.0, hi = 0.0;
  d.rng = mrl_rng_make(8);
  d.episode = 0;
  mrl_env_reset(env, 1, NULL);
  MRL_CHECK(mrl_env_domain_randomization_set_range(env, "gravity", 4.0, 16.0) == MRL_OK &&
                mrl_env_domain_randomization_set_range(env, "masscart", 0.5, 2.0) == MRL_OK,
            "ADR moves the ranges");
  run_env(env, &d, 20, &a);
  snap = take_snapshot(env, &len);
  saved = d;
  a.n = 0;
  run_env(env, &d, 120, &a);
  MRL_CHECK(mrl_env_restore(fresh, snap, len) == MRL_OK, "restore into a fresh DR env");
  MRL_CHECK(mrl_env_domain_randomization_get_range(fresh, "gravity", &lo, &hi) == MRL_OK &&
                lo == 4.0 && hi == 16.0,
            "gravity range restored: %g %g", lo, hi);
  MRL_CHECK(mrl_env_domain_randomization_get_range(fresh, "masscart", &lo, &hi) == MRL_OK &&
                lo == 0.5 && hi == 2.0,
            "masscart range restored (added by ADR)");
  d = saved;
  run_env(fresh, &d, 120, &b);
  MRL_CHECK(tlog_same(&a, &b), "DR with moved ranges replays bitwise");
  free(snap);
  free(a.p);
  free(b.p);
  mrl_env_free(env);
  mrl_env_free(fresh);
}

/* An environment of a vector restored on its own: its row of obs no longer
 * holds its last observation, so the next step must write the whole row. */
static void test_vec_env_restored_alone(void) {
  const char *ids[2] = {"ConcentrationEasy-v0", "ConcentrationEasy-v0|prev_action_reward"};
  int k;
  for (k = 0; k < 2; k++) {
    mrl_vecenv v;
    mrl_env *single = mrl_env_make(ids[k]);
    unsigned char *snap;
    size_t len, od;
    float acts[3] = {0.0f, 1.0f, 2.0f}, obs[1024], r;
    int t, same, term, trunc;
    mrl_vecenv_init(&v, ids[k], 3, 6);
    mrl_vecenv_reset(&v);
    od = (size_t)v.obs_dim;
    snap = take_snapshot(v.envs[0], &len);
    for (t = 0; t < 9; t++) {
      acts[0] = (float)((t * 7) % 52);
      mrl_vecenv_step(&v, acts);
    }
    MRL_CHECK(mrl_env_restore(v.envs[0], snap, len) == MRL_OK, "%s: env 0 restored alone", ids[k]);
    MRL_CHECK(mrl_env_restore(single, snap, len) == MRL_OK, "%s: a single env restored", ids[k]);
    acts[0] = 5.0f;
    mrl_vecenv_step(&v, acts);
    memset(obs, 0, sizeof obs);
    mrl_env_step(single, acts, obs, &r, &term, &trunc);
    same = memcmp(obs, v.obs, od * sizeof(float)) == 0;
    MRL_CHECK(same && r == v.rewards[0], "%s: the row is written whole after a restore", ids[k]);
    free(snap);
    mrl_env_free(single);
    mrl_vecenv_free(&v);
  }
}

int main(void) {
  test_coverage();
  test_env_replay();
  test_env_edges();
  test_user_envs();
  test_vec_replay();
  test_vec_keeps_user_setting();
  test_dr_ranges();
  test_vec_env_restored_alone();
  return mrl_test_summary("test_envs_snapshot");
}
