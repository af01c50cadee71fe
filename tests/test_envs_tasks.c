/* Tests of the task environments of memrl_envs.h (Pendulum and the POPGym
 * POMDP variants, corridors, memory chain, sequence classification, meta-RL,
 * episodic control, successor features, pixels): step-by-step rules,
 * determinism, invalid actions, step before reset, render text.
 * cc -std=c99 -Wall -Wextra -pedantic tests/test_envs_tasks.c -lm && ./a.out */
#define MEMRL_ENVS_IMPLEMENTATION
#include "../memrl_envs.h"
#include "ref_loader.h"
#include "test.h"

#include <string.h>

#define MAX_OBS 4096

static mrl_result step1(mrl_env *e, float a, float *o, float *r, int *te, int *tu) {
  return mrl_env_step(e, &a, o, r, te, tu);
}

/* A valid random action of env (discrete index or box vector). */
static void random_action(mrl_env *e, mrl_rng *r, float *a) {
  int n = mrl_env_num_actions(e), i;
  if (n > 0) {
    a[0] = (float)mrl_rng_below(r, (uint32_t)n);
  } else {
    for (i = 0; i < mrl_env_action_dim(e); i++) a[i] = mrl_rng_uniform_range(r, -3.0f, 3.0f);
  }
}

/* Checks every environment must pass: step before reset rejected, invalid
 * actions rejected with everything untouched, same seed same episode, and
 * (where differs_by_seed) some other seed another episode; a render text. */
static void check_common(const char *id, int differs_by_seed) {
  static float oa[MAX_OBS], ob[MAX_OBS], before[MAX_OBS];
  mrl_env *a = mrl_env_make(id), *b = mrl_env_make(id);
  int d, n, ad, t, k, same = 1, differs = 0;
  float act[8], ra = 0.0f, rb = 0.0f;
  int ta = 0, tb = 0, ua = 0, ub = 0;
  uint64_t s;
  char text[4096];
  MRL_CHECK(a != NULL && b != NULL, "%s made", id);
  if (!a || !b) {
    mrl_env_free(a);
    mrl_env_free(b);
    return;
  }
  d = mrl_env_obs_dim(a);
  n = mrl_env_num_actions(a);
  ad = mrl_env_action_dim(a);
  MRL_CHECK(d >= 1 && d <= MAX_OBS && ad >= 1 && ad <= 8, "%s dims", id);
  MRL_CHECK(strcmp(mrl_env_id(a), id) == 0, "%s id kept", id);
  memset(act, 0, sizeof act);
  MRL_CHECK(mrl_env_step(a, act, oa, &ra, &ta, &ua) == MRL_ERR_NOT_RESET, "%s step before reset",
            id);
  /* invalid actions: nothing changes, the next step is as without them */
  mrl_env_reset(a, 11, oa);
  mrl_env_reset(b, 11, ob);
  for (k = 0; k < 4; k++) {
    float bad[8];
    int len = mrl_env_episode_length(a);
    memcpy(bad, act, sizeof bad);
    bad[0] = k == 0 ? NAN : k == 1 ? INFINITY : n > 0 ? (k == 2 ? (float)n : -1.0f) : -INFINITY;
    if (n > 0 && k == 3) bad[0] = 0.5f;
    memcpy(before, oa, (size_t)d * sizeof(float));
    ra = 123.0f;
    MRL_CHECK(mrl_env_step(a, bad, oa, &ra, &ta, &ua) == MRL_ERR_INVALID_ACTION,
              "%s bad action %d rejected", id, k);
    MRL_CHECK(memcmp(before, oa, (size_t)d * sizeof(float)) == 0 && ra == 123.0f &&
                  mrl_env_episode_length(a) == len,
              "%s untouched by bad action %d", id, k);
  }
  {
    mrl_rng r = mrl_rng_make(3);
    for (t = 0; t < 30; t++) {
      random_action(a, &r, act);
      if (mrl_env_step(a, act, oa, &ra, &ta, &ua) != MRL_OK) same = 0;
      if (mrl_env_step(b, act, ob, &rb, &tb, &ub) != MRL_OK) same = 0;
      if (memcmp(oa, ob, (size_t)d * sizeof(float)) != 0 || ra != rb || ta != tb || ua != ub)
        same = 0;
      if (ta || ua) break;
    }
  }
  MRL_CHECK(same, "%s: a rejected action changes nothing; same seed, same episode", id);
  /* seeds */
  for (s = 100; s < 120 && !differs; s++) {
    mrl_rng r = mrl_rng_make(4); /* the same actions in both */
    mrl_env_reset(a, 7, oa);
    mrl_env_reset(b, s, ob);
    differs = memcmp(oa, ob, (size_t)d * sizeof(float)) != 0;
    for (t = 0; t < 40 && !differs; t++) {
      random_action(a, &r, act);
      if (mrl_env_step(a, act, oa, &ra, &ta, &ua) != MRL_OK) break;
      if (mrl_env_step(b, act, ob, &rb, &tb, &ub) != MRL_OK) break;
      differs = memcmp(oa, ob, (size_t)d * sizeof(float)) != 0 || ra != rb;
      if (ta || ua || tb || ub) break;
    }
  }
  if (differs_by_seed)
    MRL_CHECK(differs, "%s: other seeds, other episodes", id);
  else
    MRL_CHECK(!differs, "%s: the same world whatever the seed", id);
  mrl_env_reset(a, 5, oa);
  MRL_CHECK(mrl_env_render(a, text, sizeof text) > 0 && strlen(text) > 0, "%s renders", id);
  MRL_CHECK(mrl_env_render(a, NULL, 0) == (int)strlen(text), "%s render length", id);
  mrl_env_free(a);
  mrl_env_free(b);
}

/* ---- Pendulum: an independent re-derivation of Gymnasium's pendulum.py --- */

typedef struct ref_pendulum {
  double th, thdot;
} ref_pendulum;

static void ref_pendulum_reset(ref_pendulum *s, uint64_t seed) {
  mrl_rng r = mrl_rng_make(seed); /* the reset rule the header documents */
  s->th = -3.141592653589793 + 2 * 3.141592653589793 * (double)mrl_rng_uniform(&r);
  s->thdot = -1 + 2 * (double)mrl_rng_uniform(&r);
}

/* Python's % on floats: the result takes the sign of the divisor. */
static double py_mod(double a, double b) {
  double m = a - b * floor(a / b);
  return m;
}

static double ref_pendulum_step(ref_pendulum *s, double u) {
  const double max_speed = 8, max_torque = 2.0, dt = 0.05, g = 10.0, m = 1.0, l = 1.0;
  const double pi = 3.141592653589793;
  double th = s->th, thdot = s->thdot, norm, costs, newthdot, newth;
  if (u < -max_torque) u = -max_torque;
  if (u > max_torque) u = max_torque;
  norm = py_mod(th + pi, 2 * pi) - pi;
  costs = norm * norm + .1 * thdot * thdot + .001 * (u * u);
  newthdot = thdot + (3 * g / (2 * l) * sin(th) + 3.0 / (m * l * l) * u) * dt;
  newthdot = newthdot < -max_speed ? -max_speed : newthdot > max_speed ? max_speed : newthdot;
  newth = th + newthdot * dt;
  s->th = newth;
  s->thdot = newthdot;
  return -costs;
}

static void test_pendulum(void) {
  mrl_env *env = mrl_env_make("Pendulum-v1");
  ref_pendulum s;
  float obs[3], rew;
  int t, te = 0, tu = 0, same = 1, rew_ok = 1, wrapped = 0, clipped = 0;
  uint64_t seed;
  MRL_CHECK(env != NULL, "Pendulum-v1 made");
  if (!env) return;
  MRL_CHECK(mrl_env_obs_dim(env) == 3 && mrl_env_num_actions(env) == 0 &&
                mrl_env_action_dim(env) == 1 && mrl_env_max_episode_steps(env) == 200,
            "Pendulum dims, box action, 200 steps");
  for (seed = 0; seed < 100; seed++) {
    mrl_env_reset(env, seed, obs);
    ref_pendulum_reset(&s, seed);
    if (obs[0] != (float)cos(s.th) || obs[1] != (float)sin(s.th) || obs[2] != (float)s.thdot ||
        !(s.th >= -3.1416 && s.th < 3.1416 && s.thdot >= -1 && s.thdot < 1))
      same = 0;
  }
  MRL_CHECK(same, "reset: theta in [-pi, pi), thetadot in [-1, 1), obs [cos, sin, thetadot]");
  /* a fixed action sequence, torques beyond the bounds included, long
   * enough to spin past pi (the cost's angle normalisation) and to hit the
   * speed limit */
  mrl_env_reset(env, 42, obs);
  ref_pendulum_reset(&s, 42);
  for (t = 1; t <= 200; t++) {
    float a = t < 120 ? 5.0f : (t % 3 == 0 ? -2.5f : 0.7f);
    double want = ref_pendulum_step(&s, (double)a);
    if (step1(env, a, obs, &rew, &te, &tu) != MRL_OK) same = 0;
    if (obs[0] != (float)cos(s.th) || obs[1] != (float)sin(s.th) || obs[2] != (float)s.thdot)
      same = 0;
    if (rew != (float)want) rew_ok = 0;
    if (fabs(s.th) > 3.2) wrapped = 1;
    if (fabs(s.thdot) == 8.0) clipped = 1;
    if (te || (tu != (t == 200))) same = 0;
  }
  MRL_CHECK(same, "trajectory equals the reference; truncated exactly at step 200");
  MRL_CHECK(rew_ok, "reward -(normalised angle^2 + 0.1 thetadot^2 + 0.001 u^2)");
  MRL_CHECK(wrapped && clipped, "test reaches |theta| > pi (%d) and the speed clip (%d)", wrapped,
            clipped);
  /* hand-computed first step from rest at the top with u = 2:
   * newthdot = 0 + (15 sin 0 + 3 * 2) * 0.05 = 0.3, theta = 0.015 */
  {
    mrl__pendulum *p = (mrl__pendulum *)mrl_env_self(env);
    mrl_env_reset(env, 1, obs);
    p->th = 0.0;
    p->thdot = 0.0;
    step1(env, 2.0f, obs, &rew, &te, &tu);
    MRL_CHECK_NEAR(obs[2], 0.3, 1e-7, 0, "thetadot after one step");
    MRL_CHECK_NEAR(p->th, 0.015, 1e-12, 0, "theta after one step");
    MRL_CHECK_NEAR(rew, -0.004, 1e-9, 0, "reward -0.001 u^2 at rest upright");
    p->th = 3.0 * 3.141592653589793; /* normalises to pi (equivalently -pi) */
    p->thdot = 0.0;
    step1(env, 0.0f, obs, &rew, &te, &tu);
    MRL_CHECK_NEAR(rew, -3.141592653589793 * 3.141592653589793, 1e-5, 0,
                   "cost of an angle of 3 pi is pi^2");
  }
  mrl_env_free(env);
}

/* Against tests/ref/pendulum.txt: the same equations written in NumPy by
 * tools/make_ref.py (Python's %, np.clip, float32 actions/observations). */
static void test_pendulum_numpy_fixture(void) {
  mrl_ref_file f;
  mrl_env *env = mrl_env_make("Pendulum-v1");
  int k;
  if (!env) return;
  if (!mrl_ref_open(&f, "tests/ref/pendulum.txt")) {
    mrl_env_free(env);
    return;
  }
  for (k = 0; k < 3; k++) {
    char name[32];
    float init[2], acts[200], want_obs[600], want_rew[200], o[3], r;
    int t, te, tu, obs_ok = 1, rew_ok = 1, moved = 0;
    mrl__pendulum *p = (mrl__pendulum *)mrl_env_self(env);
    snprintf(name, sizeof name, "pd%d_init", k);
    if (!mrl_ref_fill(&f, name, init, 2)) break;
    snprintf(name, sizeof name, "pd%d_actions", k);
    if (!mrl_ref_fill(&f, name, acts, 200)) break;
    snprintf(name, sizeof name, "pd%d_obs", k);
    if (!mrl_ref_fill(&f, name, want_obs, 600)) break;
    snprintf(name, sizeof name, "pd%d_rew", k);
    if (!mrl_ref_fill(&f, name, want_rew, 200)) break;
    mrl_env_reset(env, 0, o);
    p->th = (double)init[0];
    p->thdot = (double)init[1];
    for (t = 0; t < 200; t++) {
      int i;
      step1(env, acts[t], o, &r, &te, &tu);
      for (i = 0; i < 3; i++)
        if (fabsf(o[i] - want_obs[3 * t + i]) > 2e-6f) obs_ok = 0;
      if (fabsf(r - want_rew[t]) > 1e-5f * (1.0f + fabsf(want_rew[t]))) rew_ok = 0;
      if (fabsf(want_obs[3 * t + 2]) > 1.0f) moved = 1;
    }
    MRL_CHECK(obs_ok, "episode %d: observations equal the NumPy reference", k);
    MRL_CHECK(rew_ok, "episode %d: rewards equal the NumPy reference", k);
    MRL_CHECK(moved && te == 0 && tu == 1, "episode %d: swings, truncated at 200", k);
  }
  mrl_ref_close(&f);
  mrl_env_free(env);
}

/* Against tests/ref/cartpole.txt: Gymnasium's step written in plain Python
 * by tools/make_ref.py (Python floats, float32 observations), for a random
 * episode, a constant push and a balancing rule that lasts until the time
 * limit. */
static void test_cartpole_python_fixture(void) {
  mrl_ref_file f;
  mrl_env *env = mrl_env_make("CartPole-v1");
  int k;
  if (!env) return;
  if (!mrl_ref_open(&f, "tests/ref/cartpole.txt")) {
    mrl_env_free(env);
    return;
  }
  for (k = 0; k < 3; k++) {
    char name[32];
    float *init = NULL, *acts = NULL, *want_obs = NULL, *want_term = NULL, o[4], r;
    int n, t, te = 0, tu = 0, obs_ok = 1, ends_ok = 1;
    mrl__cartpole *c = (mrl__cartpole *)mrl_env_self(env);
    snprintf(name, sizeof name, "cp%d_init", k);
    if (mrl_ref_get(&f, name, &init, NULL, NULL) != 4) break;
    snprintf(name, sizeof name, "cp%d_actions", k);
    n = mrl_ref_get(&f, name, &acts, NULL, NULL);
    snprintf(name, sizeof name, "cp%d_obs", k);
    if (n < 1 || mrl_ref_get(&f, name, &want_obs, NULL, NULL) != 4 * n) n = -1;
    snprintf(name, sizeof name, "cp%d_term", k);
    if (n < 1 || mrl_ref_get(&f, name, &want_term, NULL, NULL) != n) n = -1;
    if (n > 0) {
      mrl_env_reset(env, 0, o);
      c->x = (double)init[0];
      c->x_dot = (double)init[1];
      c->theta = (double)init[2];
      c->theta_dot = (double)init[3];
      for (t = 0; t < n; t++) {
        int i, last = t == n - 1;
        if (step1(env, acts[t], o, &r, &te, &tu) != MRL_OK || r != 1.0f) obs_ok = 0;
        for (i = 0; i < 4; i++)
          if (fabsf(o[i] - want_obs[4 * t + i]) > 1e-6f * (1.0f + fabsf(want_obs[4 * t + i])))
            obs_ok = 0;
        /* the reference ends with its termination or at 500 steps, where
         * CartPole-v1's time limit truncates */
        if (te != (want_term[t] != 0.0f)) ends_ok = 0;
        if (tu != (last && want_term[t] == 0.0f && n == 500)) ends_ok = 0;
        if (!last && (te || tu)) ends_ok = 0;
      }
      MRL_CHECK(obs_ok, "episode %d: %d observations equal the Python reference", k, n);
      MRL_CHECK(ends_ok && (te || tu), "episode %d: ends where the reference does (step %d, %s)", k,
                n, te ? "terminated" : "truncated");
    } else {
      MRL_CHECK(0, "episode %d of tests/ref/cartpole.txt is malformed", k);
    }
    free(init);
    free(acts);
    free(want_obs);
    free(want_term);
  }
  mrl_ref_close(&f);
  mrl_env_free(env);
}

static void test_pendulum_pomdps(void) {
  mrl_env *full = mrl_env_make("Pendulum-v1");
  mrl_env *pos = mrl_env_make("StatelessPendulum-v1");
  mrl_env *noisy = mrl_env_make("NoisyStatelessPendulum-v1-0.25");
  mrl_env *n0 = mrl_env_make("NoisyStatelessPendulum-v1");
  float of[3], op[2], on[2], rf, rp, rn;
  double sum = 0, sum2 = 0;
  int t, te, tu, same = 1, cnt = 0, inside = 1;
  MRL_CHECK(full && pos && noisy && n0, "pendulum POMDPs made");
  if (!full || !pos || !noisy || !n0) return;
  MRL_CHECK(mrl_env_obs_dim(pos) == 2 && mrl_env_obs_dim(noisy) == 2, "obs_dim 2");
  MRL_CHECK(((mrl__pendulum *)mrl_env_self(n0))->sigma == 0.1, "default sigma 0.1");
  MRL_CHECK(((mrl__pendulum *)mrl_env_self(noisy))->sigma == 0.25, "sigma from the id");
  mrl_env_reset(full, 9, of);
  mrl_env_reset(pos, 9, op);
  mrl_env_reset(noisy, 9, on);
  for (t = 0; t < 200; t++) {
    float a = (float)((t % 7) - 3) * 0.6f;
    mrl_env_step(full, &a, of, &rf, &te, &tu);
    mrl_env_step(pos, &a, op, &rp, &te, &tu);
    mrl_env_step(noisy, &a, on, &rn, &te, &tu);
    if (op[0] != of[0] || op[1] != of[1] || rp != rf || rn != rf) same = 0;
    if (fabsf(on[0]) > 1.0f || fabsf(on[1]) > 1.0f) inside = 0;
    if (fabsf(of[0]) < 0.7f) { /* away from the clip at +-1 */
      double e = (double)on[0] - (double)of[0];
      sum += e;
      sum2 += e * e;
      cnt++;
    }
  }
  MRL_CHECK(same, "position-only = [cos, sin] of the same trajectory; noise leaves rewards");
  MRL_CHECK(inside, "noisy observations clipped to [-1, 1]");
  MRL_CHECK(cnt > 40 && fabs(sum / cnt) < 0.1 && fabs(sqrt(sum2 / cnt) - 0.25) < 0.06,
            "noise mean %.3f std %.3f (want 0, 0.25) over %d", sum / cnt, sqrt(sum2 / cnt), cnt);
  mrl_env_free(full);
  mrl_env_free(pos);
  mrl_env_free(noisy);
  mrl_env_free(n0);
}

static void test_cartpole_pomdps(void) {
  mrl_env *full = mrl_env_make("CartPole-v1");
  mrl_env *vel = mrl_env_make("VelocityOnlyCartPole-v1");
  mrl_env *noisy = mrl_env_make("NoisyStatelessCartPole-v1-0.3");
  mrl_env *zero = mrl_env_make("NoisyStatelessCartPole-v1-0");
  float of[4], ov[2], on[2], oz[2], r1, r2, r3, r4;
  int t, te1 = 0, tu1 = 0, te2, tu2, te3, tu3, te4, tu4, same = 1, cnt = 0;
  double sum2 = 0;
  MRL_CHECK(full && vel && noisy && zero, "CartPole POMDPs made");
  if (!full || !vel || !noisy || !zero) return;
  MRL_CHECK(mrl_env_obs_dim(vel) == 2 && mrl_env_num_actions(vel) == 2 &&
                mrl_env_max_episode_steps(vel) == 500,
            "velocity-only dims");
  mrl_env_reset(full, 4, of);
  mrl_env_reset(vel, 4, ov);
  mrl_env_reset(noisy, 4, on);
  mrl_env_reset(zero, 4, oz);
  if (ov[0] != of[1] || ov[1] != of[3] || oz[0] != of[0] || oz[1] != of[2]) same = 0;
  for (t = 0; t < 500 && !te1 && !tu1; t++) {
    float a = (float)((t / 2) % 2);
    mrl_env_step(full, &a, of, &r1, &te1, &tu1);
    mrl_env_step(vel, &a, ov, &r2, &te2, &tu2);
    mrl_env_step(noisy, &a, on, &r3, &te3, &tu3);
    mrl_env_step(zero, &a, oz, &r4, &te4, &tu4);
    if (ov[0] != of[1] || ov[1] != of[3] || oz[0] != of[0] || oz[1] != of[2]) same = 0;
    if (r2 != r1 || r3 != r1 || r4 != r1 || te2 != te1 || te3 != te1 || te4 != te1) same = 0;
    sum2 += (double)(on[0] - of[0]) * (on[0] - of[0]);
    cnt++;
  }
  MRL_CHECK(same,
            "velocity-only [x_dot, theta_dot] (at reset too) and sigma 0 = [x, theta] of "
            "the same trajectory, same rewards and ends (%d steps)",
            cnt);
  MRL_CHECK(cnt > 20 && fabs(sqrt(sum2 / cnt) - 0.3) < 0.1, "noise std %.3f, want 0.3",
            sqrt(sum2 / cnt));
  { /* sigma 10: the noise is clipped to POPGym's observation box */
    const float x_hi = 4.8f, th_hi = (float)(2.0 * 12.0 * 2.0 * 3.141592653589793 / 360.0);
    mrl_env *wide = mrl_env_make("NoisyStatelessCartPole-v1-10");
    float o[2], rw, a = 0.0f;
    int tw, uw, inside = 1, at_bound[4] = {0, 0, 0, 0};
    MRL_CHECK(wide != NULL, "sigma 10 made");
    if (wide) {
      mrl_env_reset(wide, 9, o);
      for (t = 0; t < 400; t++) {
        mrl_env_step(wide, &a, o, &rw, &tw, &uw);
        if (tw || uw) mrl_env_reset(wide, 10 + (uint64_t)t, o);
        if (!(fabsf(o[0]) <= x_hi && fabsf(o[1]) <= th_hi)) inside = 0;
        at_bound[0] += o[0] == x_hi;
        at_bound[1] += o[0] == -x_hi;
        at_bound[2] += o[1] == th_hi;
        at_bound[3] += o[1] == -th_hi;
        a = 1.0f - a;
      }
      MRL_CHECK(inside && at_bound[0] && at_bound[1] && at_bound[2] && at_bound[3],
                "sigma 10: every observation in [+-4.8] x [+-0.4189], each bound reached "
                "(%d %d %d %d times)",
                at_bound[0], at_bound[1], at_bound[2], at_bound[3]);
      mrl_env_free(wide);
    }
  }
  {
    const char *bad[8] = {"NoisyStatelessCartPole-v1-",     "NoisyStatelessCartPole-v1-.5",
                          "NoisyStatelessCartPole-v1-0.",   "NoisyStatelessCartPole-v1-11",
                          "NoisyStatelessCartPole-v1-0.1x", "VelocityOnlyCartPole-v1-0.1",
                          "StatelessPendulum-v1-0.1",       "Pendulum-v0"};
    int i;
    for (i = 0; i < 8; i++) {
      mrl_env *e = mrl_env_make(bad[i]);
      MRL_CHECK(e == NULL, "id %s rejected", bad[i]);
      mrl_env_free(e);
    }
  }
  mrl_env_free(full);
  mrl_env_free(vel);
  mrl_env_free(noisy);
  mrl_env_free(zero);
}

/* ---- corridors and memory tasks ----------------------------------------- */

static void test_passive_tmaze(void) {
  const int L = 6;
  mrl_env *env = mrl_env_make("PassiveTMaze-6");
  float o[2], r;
  int te = 0, tu = 0, t, g, ok;
  MRL_CHECK(env != NULL, "PassiveTMaze-6 made");
  if (!env) return;
  MRL_CHECK(mrl_env_obs_dim(env) == 2 && mrl_env_num_actions(env) == 4 &&
                mrl_env_max_episode_steps(env) == 0,
            "passive T-maze dims");
  for (g = 0; g < 2; g++) {
    uint64_t seed = 0;
    mrl__ptmaze *m = (mrl__ptmaze *)mrl_env_self(env);
    do mrl_env_reset(env, seed++, o);
    while (o[1] != (g ? 1.0f : -1.0f) && seed < 100);
    MRL_CHECK(o[0] == 0.0f && o[1] == (float)m->goal_y, "cue [0, goal_y] at reset");
    /* the optimal walk: L steps right, then into the goal arm */
    ok = 1;
    for (t = 1; t <= L; t++) {
      step1(env, 0.0f, o, &r, &te, &tu);
      if (r != 0.0f || te || tu) ok = 0;
      if (t < L && (o[0] != 0.0f || o[1] != 0.0f)) ok = 0;
      if (t == L && (o[0] != 1.0f || o[1] != 0.0f)) ok = 0;
    }
    MRL_CHECK(ok, "corridor: [0, 0], junction [1, 0], no penalty on the ideal path");
    step1(env, g ? 1.0f : 3.0f, o, &r, &te, &tu);
    MRL_CHECK(r == 1.0f && te == 1 && tu == 0 && o[0] == 1.0f && o[1] == (g ? 1.0f : -1.0f),
              "goal arm at step L+1: reward 1, terminated, obs [1, y]");
    MRL_CHECK(mrl_env_episode_success(env) == 1 && mrl_env_episode_return(env) == 1.0f,
              "success, return 1");
    MRL_CHECK(step1(env, 0.0f, o, &r, &te, &tu) == MRL_ERR_NOT_RESET, "ended");
    /* the wrong arm */
    mrl_env_reset(env, seed - 1, o);
    for (t = 1; t <= L; t++) step1(env, 0.0f, o, &r, &te, &tu);
    step1(env, g ? 3.0f : 1.0f, o, &r, &te, &tu);
    MRL_CHECK(r == 0.0f && te && mrl_env_episode_success(env) == 0, "wrong arm: 0, failure");
  }
  /* penalties and walls: left at the start stays at x = 0 (behind x = t:
   * -1/L) and sees [0, 0], the cue being shown only at t = 0; up in the
   * corridor is a wall */
  mrl_env_reset(env, 3, o);
  step1(env, 2.0f, o, &r, &te, &tu);
  MRL_CHECK(r == (float)(-1.0 / L) && o[0] == 0.0f && o[1] == 0.0f, "left at start: -1/L, [0,0]");
  step1(env, 0.0f, o, &r, &te, &tu);
  MRL_CHECK(r == (float)(-1.0 / L), "x=1 at t=2: still behind, -1/L");
  step1(env, 1.0f, o, &r, &te, &tu);
  MRL_CHECK(r == (float)(-1.0 / L) && ((mrl__ptmaze *)mrl_env_self(env))->y == 0 &&
                ((mrl__ptmaze *)mrl_env_self(env))->x == 1,
            "up in the corridor: no move");
  for (t = 4; t <= L + 1; t++) step1(env, 0.0f, o, &r, &te, &tu);
  MRL_CHECK(te && r == 0.0f && mrl_env_episode_success(env) == 0,
            "time runs out before the junction: terminated, 0");
  /* behind the ideal path on each of the steps 1..L: -1 in all */
  MRL_CHECK_NEAR(mrl_env_episode_return(env), -1.0, 1e-6, 0, "return L * (-1/L)");
  /* from an arm back down to the junction, then east is a wall */
  mrl_env_reset(env, 3, o);
  {
    mrl__ptmaze *m = (mrl__ptmaze *)mrl_env_self(env);
    m->x = L;
    m->y = 1;
    step1(env, 0.0f, o, &r, &te, &tu);
    MRL_CHECK(m->x == L && m->y == 1 && o[0] == 1.0f && o[1] == 1.0f, "east of an arm: wall");
    step1(env, 3.0f, o, &r, &te, &tu);
    MRL_CHECK(m->x == L && m->y == 0, "down from the up arm: the junction");
  }
  mrl_env_free(env);
  /* L = 1000: the optimal walk still scores 1 in 1001 steps */
  env = mrl_env_make("PassiveTMaze-1000");
  MRL_CHECK(env != NULL, "PassiveTMaze-1000 made");
  if (env) {
    float cue;
    mrl_env_reset(env, 77, o);
    cue = o[1];
    for (t = 1; t <= 1000; t++) step1(env, 0.0f, o, &r, &te, &tu);
    step1(env, cue > 0 ? 1.0f : 3.0f, o, &r, &te, &tu);
    MRL_CHECK(te && mrl_env_episode_length(env) == 1001 && mrl_env_episode_return(env) == 1.0f,
              "L=1000: 1001 steps, return 1");
    mrl_env_free(env);
  }
  {
    const char *bad[4] = {"PassiveTMaze-0", "PassiveTMaze-", "PassiveTMaze-100001",
                          "PassiveTMaze-5-5"};
    for (t = 0; t < 4; t++) {
      mrl_env *e = mrl_env_make(bad[t]);
      MRL_CHECK(e == NULL, "id %s rejected", bad[t]);
      mrl_env_free(e);
    }
  }
  env = mrl_env_make("PassiveTMaze-3");
  if (env) {
    char text[64];
    mrl__ptmaze *m = (mrl__ptmaze *)mrl_env_self(env);
    mrl_env_reset(env, 1, o);
    m->goal_y = 1;
    step1(env, 0.0f, o, &r, &te, &tu);
    mrl_env_render(env, text, sizeof text);
    MRL_CHECK(strcmp(text, "   G\nSA..\n   o\n") == 0, "passive T-maze render:\n%s", text);
    mrl_env_free(env);
  }
}

static void test_memory_chain(void) {
  mrl_env *env = mrl_env_make("MemoryChain-3");
  float o[8], r;
  int te, tu, a, ok = 1, balance[2] = {0, 0};
  uint64_t seed;
  MRL_CHECK(env != NULL, "MemoryChain-3 made");
  if (!env) return;
  MRL_CHECK(mrl_env_obs_dim(env) == 3 && mrl_env_num_actions(env) == 2, "dims [time, query, bit]");
  for (seed = 0; seed < 40; seed++) {
    mrl__mchain *m = (mrl__mchain *)mrl_env_self(env);
    float c;
    mrl_env_reset(env, seed, o);
    c = m->context[0] ? 1.0f : -1.0f;
    balance[m->context[0]]++;
    if (o[0] != 1.0f || o[1] != 0.0f || o[2] != c || m->query != 0) ok = 0;
    /* bsuite returns the observation of the timestep before the step */
    step1(env, 1.0f, o, &r, &te, &tu);
    if (o[0] != 1.0f || o[1] != 0.0f || o[2] != c || r != 0.0f || te) ok = 0;
    step1(env, 0.0f, o, &r, &te, &tu);
    if (o[0] != (float)(1.0 - 1.0 / 3.0) || o[1] != 0.0f || o[2] != 0.0f || r != 0.0f || te) ok = 0;
    step1(env, 0.0f, o, &r, &te, &tu); /* t = 2 = memory_length - 1: the query (bit 0) */
    if (o[0] != (float)(1.0 - 2.0 / 3.0) || o[1] != 0.0f || r != 0.0f || te) ok = 0;
    a = (int)(seed % 2);
    step1(env, (float)a, o, &r, &te, &tu);
    if (o[0] != 0.0f || !te || tu || r != (a == m->context[0] ? 1.0f : -1.0f)) ok = 0;
    if (mrl_env_episode_success(env) != (a == m->context[0])) ok = 0;
    if (mrl_env_episode_length(env) != 4) ok = 0;
  }
  MRL_CHECK(ok, "memory chain: bsuite's observations, 0 until step memory_length+1, then +-1");
  MRL_CHECK(balance[0] > 8 && balance[1] > 8, "context bits balanced (%d/%d)", balance[0],
            balance[1]);
  mrl_env_free(env);
  env = mrl_env_make("MemoryChain-2-5");
  MRL_CHECK(env != NULL && mrl_env_obs_dim(env) == 7, "MemoryChain-2-5: 7 floats");
  if (env) {
    mrl__mchain *m = (mrl__mchain *)mrl_env_self(env);
    int i, qseen[5] = {0, 0, 0, 0, 0};
    ok = 1;
    for (seed = 0; seed < 60; seed++) {
      mrl_env_reset(env, seed, o);
      for (i = 0; i < 5; i++)
        if (o[2 + i] != (m->context[i] ? 1.0f : -1.0f)) ok = 0;
      if (o[1] != 0.0f) ok = 0;
      step1(env, 0.0f, o, &r, &te, &tu); /* obs of t = 0 again */
      step1(env, 0.0f, o, &r, &te, &tu); /* obs of t = 1 = memory_length - 1 */
      if (o[1] != (float)m->query || o[0] != 0.5f || o[2] != 0.0f || te) ok = 0;
      qseen[m->query]++;
      step1(env, (float)m->context[m->query], o, &r, &te, &tu);
      if (!te || r != 1.0f) ok = 0;
    }
    MRL_CHECK(ok, "memory_size layout: 5 context bits at t=0, query index at t=1");
    MRL_CHECK(qseen[0] && qseen[1] && qseen[2] && qseen[3] && qseen[4], "every bit queried");
    mrl_env_free(env);
  }
  {
    long long eps[4] = {100, 100, 80, 0}, perf[4] = {100, 62, 51, 0};
    /* ratios 0, 0.76, 0.725, none -> learned: 1, 0, 1, 0 */
    MRL_CHECK(mrl_memory_chain_score(eps, perf, 4) == 0.5f, "bsuite score 2 of 4");
    MRL_CHECK(mrl_memory_chain_score(eps, perf, 1) == 1.0f, "score 1 of 1");
    MRL_CHECK(mrl_memory_chain_score(eps + 1, perf + 1, 1) == 0.0f, "62%% is not learned");
    MRL_CHECK(mrl_memory_chain_score(eps, perf, 0) == 0.0f, "no settings");
  }
  env = mrl_env_make("MemoryChain-2-3");
  if (env) {
    char text[64];
    mrl__mchain *m = (mrl__mchain *)mrl_env_self(env);
    mrl_env_reset(env, 1, o);
    m->context[0] = 1;
    m->context[1] = 0;
    m->context[2] = 1;
    m->query = 2;
    mrl_env_render(env, text, sizeof text);
    MRL_CHECK(strcmp(text, "t=0/3 query=2 context=+-+\n") == 0, "memory chain render: %s", text);
    mrl_env_free(env);
  }
}

static void test_noisy_sequence(void) {
  mrl_env *env = mrl_env_make("NoisySequence-6-2");
  float o[2], r;
  int te, tu, t, ok = 1, n = 0;
  uint64_t seed;
  double sig_sum = 0, noise_sum = 0, noise_sq = 0;
  int sig_n = 0, noise_n = 0;
  MRL_CHECK(env != NULL, "NoisySequence-6-2 made");
  if (!env) return;
  MRL_CHECK(mrl_env_obs_dim(env) == 2 && mrl_env_num_actions(env) == 2, "dims");
  for (seed = 0; seed < 400; seed++) {
    mrl__noisyseq *s = (mrl__noisyseq *)mrl_env_self(env);
    int cls, a = (int)(seed % 2);
    mrl_env_reset(env, seed, o);
    cls = s->cls;
    for (t = 0; t < 6; t++) {
      /* o is observation t */
      if (o[1] != (t == 5 ? 1.0f : 0.0f)) ok = 0;
      if (t < 2) {
        sig_sum += (double)o[0] * cls;
        sig_n++;
      } else {
        noise_sum += o[0];
        noise_sq += (double)o[0] * o[0];
        noise_n++;
      }
      step1(env, t == 5 ? (float)a : (float)(t % 2), o, &r, &te, &tu);
      if (t < 5 && (r != 0.0f || te || tu)) ok = 0;
    }
    if (!te || tu || r != ((a == 1) == (cls == 1) ? 1.0f : -1.0f)) ok = 0;
    if (mrl_env_episode_success(env) != ((a == 1) == (cls == 1))) ok = 0;
    if (mrl_env_episode_length(env) != 6) ok = 0;
    n += cls == 1;
  }
  MRL_CHECK(ok, "6 observations, query flag on the last, reward +-1 on the 6th action only");
  MRL_CHECK(n > 160 && n < 240, "classes balanced (%d of 400 +1)", n);
  MRL_CHECK(fabs(sig_sum / sig_n - 1.0) < 0.05, "signal steps: class + noise (mean %.3f)",
            sig_sum / sig_n);
  MRL_CHECK(fabs(noise_sum / noise_n) < 0.05 && fabs(sqrt(noise_sq / noise_n) - sqrt(0.2)) < 0.03,
            "later steps: noise of variance 0.2 (mean %.3f, std %.3f)", noise_sum / noise_n,
            sqrt(noise_sq / noise_n));
  mrl_env_free(env);
  {
    const char *bad[4] = {"NoisySequence-1", "NoisySequence-5-5", "NoisySequence-5-0",
                          "NoisySequence-"};
    for (t = 0; t < 4; t++) {
      mrl_env *e = mrl_env_make(bad[t]);
      MRL_CHECK(e == NULL, "id %s rejected", bad[t]);
      mrl_env_free(e);
    }
  }
  env = mrl_env_make("NoisySequence-100");
  MRL_CHECK(env && ((mrl__noisyseq *)mrl_env_self(env))->signal == 3, "default N = 3");
  if (env) {
    char text[64];
    mrl__noisyseq *s = (mrl__noisyseq *)mrl_env_self(env);
    mrl_env_reset(env, 1, o);
    s->cls = -1;
    mrl_env_render(env, text, sizeof text);
    MRL_CHECK(strcmp(text, "t=1/100 class=-1 signal + noise\n") == 0, "render: %s", text);
    mrl_env_free(env);
  }
}

/* ---- meta-RL ------------------------------------------------------------- */

static void test_meta_bandit(void) {
  mrl_env *env = mrl_env_make("MetaBandit");
  float o[32], p[32], p2[32], r;
  int te, tu, t, i, ok = 1;
  MRL_CHECK(env != NULL, "MetaBandit made");
  if (!env) return;
  MRL_CHECK(mrl_env_obs_dim(env) == 22 && mrl_env_num_actions(env) == 20 &&
                mrl_env_task_dim(env) == 20 && mrl_env_max_episode_steps(env) == 100,
            "20 arms, horizon 100, obs [one-hot arm, reward, t/H], task 20 probabilities");
  mrl_env_reset(env, 5, o);
  mrl_env_task(env, p);
  for (i = 0; i < 22; i++)
    if (o[i] != 0.0f) ok = 0;
  for (i = 0; i < 20; i++)
    if (!(p[i] >= 0.0f && p[i] < 1.0f)) ok = 0;
  MRL_CHECK(ok, "reset: zero observation (no task in it), p in [0, 1)");
  ok = 1;
  for (t = 1; t <= 100; t++) {
    int a = t % 20;
    step1(env, (float)a, o, &r, &te, &tu);
    for (i = 0; i < 20; i++)
      if (o[i] != (i == a ? 1.0f : 0.0f)) ok = 0;
    if ((r != 0.0f && r != 1.0f) || o[20] != r || o[21] != (float)t / 100.0f) ok = 0;
    if (te || tu != (t == 100)) ok = 0;
  }
  MRL_CHECK(ok, "observations, 0/1 rewards, truncated at the horizon");
  mrl_env_reset(env, 6, o);
  mrl_env_task(env, p2);
  MRL_CHECK(memcmp(p, p2, 20 * sizeof(float)) != 0, "a new seed draws a new task");
  mrl_env_free(env);
  env = mrl_env_make("MetaBandit-3-6000");
  MRL_CHECK(env && mrl_env_num_actions(env) == 3 && mrl_env_max_episode_steps(env) == 6000,
            "MetaBandit-3-6000");
  if (env) {
    int wins[3] = {0, 0, 0};
    mrl_env_reset(env, 8, o);
    mrl_env_task(env, p);
    for (t = 0; t < 6000; t++) {
      step1(env, (float)(t % 3), o, &r, &te, &tu);
      wins[t % 3] += r == 1.0f;
    }
    for (i = 0; i < 3; i++)
      MRL_CHECK(fabs(wins[i] / 2000.0 - p[i]) < 0.04, "arm %d: rate %.3f, p %.3f", i,
                wins[i] / 2000.0, (double)p[i]);
    mrl_env_free(env);
  }
  {
    const char *bad[4] = {"MetaBandit-1", "MetaBandit-", "MetaBandit-5-0", "MetaBandit-5-5-5"};
    for (i = 0; i < 4; i++) {
      mrl_env *e = mrl_env_make(bad[i]);
      MRL_CHECK(e == NULL, "id %s rejected", bad[i]);
      mrl_env_free(e);
    }
  }
}

static void test_semicircle(void) {
  mrl_env *env = mrl_env_make("Semicircle");
  float o[2], g[2], r, a[2];
  int te, tu, t, ok = 1, inside_steps = 0, first_inside = 0;
  uint64_t seed;
  MRL_CHECK(env != NULL, "Semicircle made");
  if (!env) return;
  MRL_CHECK(mrl_env_obs_dim(env) == 2 && mrl_env_num_actions(env) == 0 &&
                mrl_env_action_dim(env) == 2 && mrl_env_task_dim(env) == 2 &&
                mrl_env_max_episode_steps(env) == 100,
            "Semicircle dims");
  for (seed = 0; seed < 100; seed++) {
    mrl_env_reset(env, seed, o);
    mrl_env_task(env, g);
    if (o[0] != 0.0f || o[1] != 0.0f || fabs(g[0] * g[0] + g[1] * g[1] - 1.0) > 1e-6 || g[1] < 0)
      ok = 0;
  }
  MRL_CHECK(ok, "start at the origin; goals on the unit upper semicircle");
  /* actions are clipped to 0.1 per axis */
  mrl_env_reset(env, 3, o);
  mrl_env_task(env, g);
  a[0] = 5.0f;
  a[1] = -0.05f;
  mrl_env_step(env, a, o, &r, &te, &tu);
  MRL_CHECK(o[0] == 0.1f && o[1] == -0.05f && r == 0.0f, "clipped move, no reward far away");
  /* head to the goal: reward 1 - d while within d <= 0.2, else 0 */
  for (t = 2; t <= 100; t++) {
    const mrl__semicircle *s = (const mrl__semicircle *)mrl_env_self(env);
    double dx = g[0] - o[0], dy = g[1] - o[1], d = sqrt(dx * dx + dy * dy), ex, ey;
    double sc = d > 0.05 ? 0.05 / d : 1.0;
    a[0] = (float)(dx * sc);
    a[1] = (float)(dy * sc);
    mrl_env_step(env, a, o, &r, &te, &tu);
    ex = s->x - s->gx;
    ey = s->y - s->gy;
    if (r != (ex * ex + ey * ey <= 0.04 ? (float)(1.0 - sqrt(ex * ex + ey * ey)) : 0.0f)) ok = 0;
    if (o[0] != (float)s->x || o[1] != (float)s->y) ok = 0;
    if (r > 0.0f && !first_inside) first_inside = t;
    inside_steps += r > 0.0f;
    if (te || tu != (t == 100)) ok = 0;
  }
  MRL_CHECK(r > 0.999f, "at the goal the reward is about 1 (%g)", (double)r);
  MRL_CHECK(ok, "reward 1 - d within 0.2 of the goal, else 0; obs the position; truncated at 100");
  MRL_CHECK(first_inside > 10 && first_inside < 25 && inside_steps > 70, "reached (%d, %d)",
            first_inside, inside_steps);
  mrl_env_free(env);
  env = mrl_env_make("Semicircle-30");
  MRL_CHECK(env && mrl_env_max_episode_steps(env) == 30, "Semicircle-30");
  mrl_env_free(env);
  env = mrl_env_make("Semicircle-30-2");
  MRL_CHECK(env == NULL, "Semicircle-30-2 rejected");
  mrl_env_free(env);
}

static void test_numpad(void) {
  mrl_env *env = mrl_env_make("NumPad");
  float o[25], seq[25], r;
  int te, tu, i, k, ok = 1;
  MRL_CHECK(env != NULL, "NumPad made");
  if (!env) return;
  MRL_CHECK(mrl_env_obs_dim(env) == 9 && mrl_env_num_actions(env) == 9 &&
                mrl_env_task_dim(env) == 3 && mrl_env_max_episode_steps(env) == 100,
            "NumPad dims");
  mrl_env_reset(env, 12, o);
  mrl_env_task(env, seq);
  MRL_CHECK(seq[0] != seq[1] && seq[1] != seq[2] && seq[0] != seq[2], "distinct tiles");
  for (i = 0; i < 9; i++)
    if (o[i] != 0.0f) ok = 0;
  MRL_CHECK(ok, "all dark at reset");
  /* the right sequence: +1 each, lit tiles shown, then all dark again */
  for (k = 0; k < 3; k++) {
    step1(env, seq[k], o, &r, &te, &tu);
    ok = r == 1.0f;
    for (i = 0; i < 9; i++) {
      int lit = k < 2 && (i == (int)seq[0] || (k >= 1 && i == (int)seq[1]));
      if (o[i] != (float)lit) ok = 0;
    }
    MRL_CHECK(ok, "press %d of the sequence", k);
  }
  /* a lit tile again: nothing; a wrong tile: dark, 0 */
  step1(env, seq[0], o, &r, &te, &tu);
  MRL_CHECK(r == 1.0f && o[(int)seq[0]] == 1.0f, "a new round starts");
  step1(env, seq[0], o, &r, &te, &tu);
  MRL_CHECK(r == 0.0f && o[(int)seq[0]] == 1.0f, "pressing a lit tile changes nothing");
  for (i = 0; i < 9; i++)
    if (i != (int)seq[0] && i != (int)seq[1] && i != (int)seq[2]) break;
  step1(env, (float)i, o, &r, &te, &tu);
  MRL_CHECK(r == 0.0f && o[(int)seq[0]] == 0.0f, "a wrong tile turns the lights off");
  step1(env, seq[1], o, &r, &te, &tu);
  MRL_CHECK(r == 0.0f && o[(int)seq[1]] == 0.0f, "the sequence starts from the first tile again");
  {
    char text[128];
    mrl_env_reset(env, 12, o);
    step1(env, seq[0], o, &r, &te, &tu);
    mrl_env_render(env, text, sizeof text);
    MRL_CHECK(strstr(text, "pressed 1/3, completed 0\n") == text + 12 &&
                  text[(int)seq[0] + (int)seq[0] / 3] == '*',
              "numpad render:\n%s", text);
  }
  mrl_env_free(env);
  env = mrl_env_make("NumPad-4-16");
  MRL_CHECK(env && mrl_env_obs_dim(env) == 16 && mrl_env_task_dim(env) == 16, "NumPad-4-16");
  if (env) {
    int seen[16];
    mrl_env_reset(env, 1, o);
    mrl_env_task(env, seq);
    memset(seen, 0, sizeof seen);
    for (i = 0; i < 16; i++) seen[(int)seq[i]]++;
    ok = 1;
    for (i = 0; i < 16; i++) ok &= seen[i] == 1;
    MRL_CHECK(ok, "a full-length sequence is a permutation");
    mrl_env_free(env);
  }
  {
    const char *bad[3] = {"NumPad-1", "NumPad-6", "NumPad-3-10"};
    for (i = 0; i < 3; i++) {
      mrl_env *e = mrl_env_make(bad[i]);
      MRL_CHECK(e == NULL, "id %s rejected", bad[i]);
      mrl_env_free(e);
    }
  }
}

/* ---- episodic control, successor features -------------------------------- */

static float ref_leaf_reward(uint64_t world, uint64_t leaf) {
  /* the documented rule, written out again */
  return (float)((double)(mrl_vecenv_episode_seed(world, 0, leaf) >> 40) / 16777216.0);
}

static void test_tree_mdp(void) {
  mrl_env *env = mrl_env_make("TreeMDP-3-4"), *other = mrl_env_make("TreeMDP-3-4-7");
  float o[4], r, best = -1.0f;
  int te, tu, leaf, d, ok = 1, differs = 0;
  MRL_CHECK(env != NULL && other != NULL, "TreeMDP made");
  if (!env || !other) return;
  MRL_CHECK(mrl_env_obs_dim(env) == 4 && mrl_env_num_actions(env) == 3 &&
                mrl_env_max_episode_steps(env) == 0,
            "TreeMDP-3-4 dims");
  for (leaf = 0; leaf < 81; leaf++) {
    int digits[4], rem = leaf;
    float r2;
    for (d = 3; d >= 0; d--) {
      digits[d] = rem % 3;
      rem /= 3;
    }
    mrl_env_reset(env, (uint64_t)leaf * 31u, o);
    mrl_env_reset(other, 1, o);
    for (d = 0; d < 4; d++) {
      int i;
      step1(env, (float)digits[d], o, &r, &te, &tu);
      step1(other, (float)digits[d], o, &r2, &te, &tu);
      for (i = 0; i < 4; i++)
        if (o[i] != (i <= d ? (float)(digits[i] + 1) / 3.0f : 0.0f)) ok = 0;
      if (d < 3 && (r != 0.0f || te || tu)) ok = 0;
    }
    if (!te || tu || r != ref_leaf_reward(0, (uint64_t)leaf) || !(r >= 0.0f && r < 1.0f)) ok = 0;
    if (r2 != ref_leaf_reward(7, (uint64_t)leaf)) ok = 0;
    differs |= r2 != r;
    if (r > best) best = r;
  }
  MRL_CHECK(ok, "path observations, reward 0 inside, the documented leaf reward at depth D");
  MRL_CHECK(differs, "another world, other leaf rewards");
  MRL_CHECK(best > 0.9f, "best of 81 leaves %.3f", (double)best);
  {
    char text[128];
    mrl_env_reset(env, 0, o);
    step1(env, 1.0f, o, &r, &te, &tu);
    step1(env, 0.0f, o, &r, &te, &tu);
    mrl_env_render(env, text, sizeof text);
    MRL_CHECK(strcmp(text, "depth 2/4 path 1 0\n") == 0, "tree render: %s", text);
  }
  mrl_env_free(env);
  mrl_env_free(other);
  {
    const char *bad[7] = {"TreeMDP-1-3", "TreeMDP-2-0",  "TreeMDP-2-63", "TreeMDP-64-11",
                          "TreeMDP-3",   "TreeMDP-3-4-", "TreeMDP-65-2"};
    int i;
    for (i = 0; i < 7; i++) {
      mrl_env *e = mrl_env_make(bad[i]);
      MRL_CHECK(e == NULL, "id %s rejected", bad[i]);
      mrl_env_free(e);
    }
    env = mrl_env_make("TreeMDP-2-62");
    MRL_CHECK(env != NULL, "TreeMDP-2-62 (2^62 leaves) made");
    if (env) {
      mrl_env_reset(env, 0, NULL);
      for (i = 0; i < 62; i++) step1(env, 1.0f, NULL, &r, &te, &tu);
      MRL_CHECK(te && r == ref_leaf_reward(0, (1ULL << 62) - 1u), "deepest leaf");
    }
    mrl_env_free(env);
  }
}

static void test_sfgrid(void) {
  mrl_env *env = mrl_env_make("SFGrid"), *cp = mrl_env_make("CartPole-v1");
  float o[14], r, phi[4], w[4];
  int te, tu, i, ok = 1;
  MRL_CHECK(env != NULL, "SFGrid made");
  if (!env || !cp) return;
  MRL_CHECK(mrl_env_obs_dim(env) == 14 && mrl_env_num_actions(env) == 4 &&
                mrl_env_task_dim(env) == 4 && mrl_env_max_episode_steps(env) == 200,
            "SFGrid dims");
  MRL_CHECK(mrl_sfgrid_features(env, NULL) == 4 && mrl_sfgrid_features(cp, phi) == 0,
            "features: 4 for SFGrid, 0 for others");
  mrl_env_task(env, w);
  MRL_CHECK(w[0] == 1.0f && w[1] == -1.0f && w[2] == 0.0f && w[3] == 1.0f, "default w");
  mrl_env_reset(env, 0, o);
  MRL_CHECK(o[0] == 0.9f && o[1] == 0.1f, "start S at row 9, col 1");
  for (i = 0; i < 12; i++) ok &= o[2 + i] == 1.0f;
  MRL_CHECK(ok, "all 12 objects present");
  step1(env, 3.0f, o, &r, &te, &tu); /* west: wall */
  mrl_sfgrid_features(env, phi);
  MRL_CHECK(o[0] == 0.9f && o[1] == 0.1f && r == 0.0f && phi[0] == 0 && phi[3] == 0, "wall");
  step1(env, 0.0f, o, &r, &te, &tu); /* north to (8, 1) */
  step1(env, 1.0f, o, &r, &te, &tu); /* east to (8, 2): an 'a' */
  mrl_sfgrid_features(env, phi);
  MRL_CHECK(r == 1.0f && phi[0] == 1.0f && phi[1] == 0.0f && phi[2] == 0.0f && phi[3] == 0.0f,
            "object a: phi (1,0,0,0), reward w_a = 1");
  MRL_CHECK(o[2 + 9] == 0.0f, "the picked-up object is gone (object 9 in map order)");
  step1(env, 3.0f, o, &r, &te, &tu); /* back west, then east again: nothing left */
  step1(env, 1.0f, o, &r, &te, &tu);
  mrl_sfgrid_features(env, phi);
  MRL_CHECK(r == 0.0f && phi[0] == 0.0f, "an object is picked up once");
  /* a new task at run time: c objects now pay 2.5 */
  w[0] = 0.0f;
  w[1] = 0.0f;
  w[2] = 2.5f;
  w[3] = -1.0f;
  MRL_CHECK(mrl_sfgrid_set_task(env, w) == MRL_OK, "set task");
  step1(env, 2.0f, o, &r, &te, &tu); /* south to (9, 2) */
  step1(env, 1.0f, o, &r, &te, &tu); /* east to (9, 3): a 'c' */
  mrl_sfgrid_features(env, phi);
  MRL_CHECK(r == 2.5f && phi[2] == 1.0f, "c with the new w: 2.5");
  {
    float bad[4] = {0.0f, NAN, 0.0f, 0.0f}, got[4];
    MRL_CHECK(mrl_sfgrid_set_task(env, bad) == MRL_ERR_INVALID_ARGUMENT &&
                  mrl_sfgrid_set_task(cp, w) == MRL_ERR_INVALID_ARGUMENT &&
                  mrl_sfgrid_set_task(env, NULL) == MRL_ERR_INVALID_ARGUMENT,
              "bad tasks rejected");
    mrl_env_task(env, got);
    MRL_CHECK(memcmp(got, w, sizeof got) == 0, "task unchanged by a rejected one");
  }
  /* to the goal: (9,3) -> (8,3) -> (7,3) .. (7,8) 'a' -> (8,8) -> (8,9) G */
  {
    const int path[9] = {0, 0, 1, 1, 1, 1, 1, 2, 1};
    float total = 0.0f;
    for (i = 0; i < 9; i++) {
      step1(env, (float)path[i], o, &r, &te, &tu);
      total += r;
      if (i < 8 && te) ok = 0;
    }
    mrl_sfgrid_features(env, phi);
    MRL_CHECK(te && !tu && phi[3] == 1.0f && r == -1.0f && total == -1.0f,
              "goal: phi_goal = 1, reward w_goal, terminated (total %g)", (double)total);
    MRL_CHECK(mrl_env_episode_success(env) == 1, "success");
  }
  {
    char text[256];
    mrl_env_reset(env, 0, o);
    mrl_env_render(env, text, sizeof text);
    MRL_CHECK(strncmp(text, "###########\n#a..#b...c#\n", 24) == 0 &&
                  strstr(text, "#A.c#b....#\n") != NULL,
              "SFGrid render:\n%s", text);
  }
  mrl_env_free(env);
  mrl_env_free(cp);
}

/* ---- pixels -------------------------------------------------------------- */

static void test_catch(void) {
  mrl_env *env = mrl_env_make("Catch");
  float o[50], r;
  int te = 0, tu = 0, t, ok = 1, i;
  uint64_t seed;
  MRL_CHECK(env != NULL, "Catch made");
  if (!env) return;
  MRL_CHECK(mrl_env_obs_dim(env) == 50 && mrl_env_num_actions(env) == 3 &&
                mrl_env_max_episode_steps(env) == 0,
            "Catch: 10x5 board, 3 actions");
  for (seed = 0; seed < 50; seed++) {
    mrl_rng rr = mrl_rng_make(seed);
    int bx = (int)mrl_rng_below(&rr, 5u), px = 2, ones = 0;
    float sum = 0.0f;
    mrl_env_reset(env, seed, o);
    for (i = 0; i < 50; i++) ones += o[i] == 1.0f, sum += o[i];
    if (ones != 2 || sum != 2.0f || o[bx] != 1.0f || o[45 + 2] != 1.0f) ok = 0;
    /* chase the ball: always caught; the episode lasts 9 steps */
    for (t = 1; t <= 9; t++) {
      int a = bx < px ? 0 : bx > px ? 2 : 1;
      px += a - 1;
      step1(env, (float)a, o, &r, &te, &tu);
      if (o[t * 5 + bx] != 1.0f || o[45 + px] != 1.0f) ok = 0;
      if (te != (t == 9) || tu || r != (t == 9 ? 1.0f : 0.0f)) ok = 0;
    }
    if (mrl_env_episode_success(env) != 1) ok = 0;
    /* push left all the way: caught only when the ball is in column 0 */
    mrl_env_reset(env, seed, o);
    for (t = 1; t <= 9; t++) step1(env, 0.0f, o, &r, &te, &tu);
    if (!te || r != (bx == 0 ? 1.0f : -1.0f) || o[45] != 1.0f) ok = 0;
  }
  MRL_CHECK(ok, "bsuite Catch rules: ball falls one row a step, paddle clipped, +-1 at row 9");
  {
    char text[128];
    mrl__catch *c = (mrl__catch *)mrl_env_self(env);
    mrl_env_reset(env, 1, o);
    c->ball_x = 4;
    step1(env, 2.0f, o, &r, &te, &tu);
    mrl_env_render(env, text, sizeof text);
    MRL_CHECK(strcmp(text, ".....\n....o\n.....\n.....\n.....\n.....\n.....\n.....\n.....\n"
                           "...=.\n") == 0,
              "Catch render:\n%s", text);
  }
  mrl_env_free(env);
  env = mrl_env_make("Catch-4-3");
  MRL_CHECK(env && mrl_env_obs_dim(env) == 12, "Catch-4-3");
  if (env) {
    mrl_env_reset(env, 2, o);
    for (t = 0; t < 3; t++) step1(env, 1.0f, o, &r, &te, &tu);
    MRL_CHECK(te && mrl_env_episode_length(env) == 3, "3 steps on a 4-row board");
  }
  mrl_env_free(env);
  env = mrl_env_make("Catch-10");
  MRL_CHECK(env == NULL, "Catch-10 rejected (rows and columns come together)");
  mrl_env_free(env);
}

/* Index of plane p, row r, column c of a PassiveVisualMatch observation. */
static int vm_at(int p, int r, int c) {
  return p * 77 + r * 11 + c;
}

static int vm_count(const float *o, int p) {
  int i, n = 0;
  for (i = 0; i < 77; i++) n += o[p * 77 + i] == 1.0f;
  return n;
}

enum { VM_N, VM_S, VM_W, VM_E }; /* pycolab's action order */

/* Phase 1: the agent boxed in at (2, 5), the target colour on one of the 8
 * box cells, the rest walls; 15 steps without a move or a reward. */
static void test_visual_match_explore(void) {
  mrl_env *env = mrl_env_make("PassiveVisualMatch-25");
  static float o[462], first[462];
  float r;
  int te = 0, tu = 0, t, seed, k, ok = 1, cells_seen = 0, targets_seen = 0;
  MRL_CHECK(env != NULL, "PassiveVisualMatch-25 made");
  if (!env) return;
  MRL_CHECK(mrl_env_obs_dim(env) == 462 && mrl_env_num_actions(env) == 4, "6 x 7 x 11 planes");
  for (seed = 0; seed < 64; seed++) {
    mrl__vmatch *m = (mrl__vmatch *)mrl_env_self(env);
    int target, cell, dr, dc, colour_at = -1;
    mrl_env_reset(env, (uint64_t)seed, o);
    target = m->target;
    cell = m->target_cell;
    cells_seen |= 1 << cell;
    targets_seen |= 1 << target;
    if (vm_count(o, 0) != 7 || vm_count(o, 1) != 1 || o[vm_at(1, 2, 5)] != 1.0f ||
        vm_count(o, 2) != 0 || vm_count(o, 3 + target) != 1 ||
        vm_count(o, 3) + vm_count(o, 4) + vm_count(o, 5) != 1)
      ok = 0;
    for (k = 0, dr = -1; dr <= 1; dr++) /* the 8 box cells, row-major */
      for (dc = -1; dc <= 1; dc++) {
        if (dr == 0 && dc == 0) continue;
        if (o[vm_at(3 + target, 2 + dr, 5 + dc)] == 1.0f)
          colour_at = k;
        else if (o[vm_at(0, 2 + dr, 5 + dc)] != 1.0f)
          ok = 0;
        k++;
      }
    if (colour_at != cell) ok = 0;
  }
  MRL_CHECK(ok, "phase 1: agent at (2, 5), 7 walls and the target colour around it, nothing else");
  MRL_CHECK(cells_seen == 0xff && targets_seen == 7, "every box cell and colour drawn (%x, %x)",
            cells_seen, targets_seen);
  mrl_env_reset(env, 3, first);
  memcpy(o, first, sizeof o);
  for (t = 1; t <= 15; t++) {
    step1(env, (float)(t % 4), o, &r, &te, &tu);
    if (r != 0.0f || te || tu) ok = 0;
    if (t < 15 && memcmp(o, first, sizeof o) != 0) ok = 0;
  }
  MRL_CHECK(ok, "phase 1: 15 steps, the agent cannot move, no reward");
  {
    mrl__vmatch *m = (mrl__vmatch *)mrl_env_self(env);
    int i, j, apples_ok = 1;
    MRL_CHECK(m->phase == 1 && vm_count(o, 0) == 32 && o[vm_at(1, 5, 5)] == 1.0f &&
                  vm_count(o, 2) == 10 && vm_count(o, 3) + vm_count(o, 4) + vm_count(o, 5) == 0,
              "step 15 returns phase 2: the framed room, agent at (5, 5), 10 apples, no colour");
    for (i = 0; i < 10; i++) {
      int ar = m->apple_cell[i] / 11, ac = m->apple_cell[i] % 11;
      if (ar < 1 || ar > 5 || ac < 1 || ac > 9 || (ar + ac) % 2 || (ar == 5 && ac == 5))
        apples_ok = 0;
      for (j = 0; j < i; j++) apples_ok &= m->apple_cell[j] != m->apple_cell[i];
    }
    MRL_CHECK(apples_ok, "apples on distinct checkerboard cells of rows 1-5, columns 1-9");
  }
  {
    char text[256];
    mrl__vmatch *m = (mrl__vmatch *)mrl_env_self(env);
    mrl_env_reset(env, 3, o);
    m->target = 1;
    m->target_cell = 0;
    mrl_env_render(env, text, sizeof text);
    MRL_CHECK(strcmp(text, "phase 1/3 step 0/15\n...........\n....G##....\n....#A#....\n"
                           "....###....\n...........\n...........\n...........\n") == 0,
              "visual match render:\n%s", text);
  }
  mrl_env_free(env);
  env = mrl_env_make("PassiveVisualMatch-0");
  if (env) {
    mrl_env_reset(env, 1, o);
    for (t = 0; t < 15; t++) step1(env, 1.0f, o, &r, &te, &tu);
    MRL_CHECK(((mrl__vmatch *)mrl_env_self(env))->phase == 2 && o[vm_at(1, 5, 5)] == 1.0f,
              "no distractor phase: the reward room follows phase 1");
  }
  mrl_env_free(env);
}

/* Phase 2 and 3: an apple gone for 21 steps; the reward room, colours that
 * vanish when one is entered, 15 steps however it goes. */
static void test_visual_match(void) {
  mrl_env *env = mrl_env_make("PassiveVisualMatch-25");
  static float o[462];
  float r, later = 0.0f;
  int te = 0, tu = 0, t, k, target, wrong;
  mrl__vmatch *m;
  if (!env) return;
  mrl_env_reset(env, 3, o);
  m = (mrl__vmatch *)mrl_env_self(env);
  target = m->target;
  for (t = 0; t < 15; t++) step1(env, 0.0f, o, &r, &te, &tu);
  {
    int ar = m->apple_cell[0] / 11, ac = m->apple_cell[0] % 11, a, i;
    /* put the agent beside apple 0, on an odd cell (never an apple), and
     * eat it on the phase's step 1 */
    m->r = ar;
    m->c = ac + (ac < 9 ? 1 : -1);
    a = ac < 9 ? VM_W : VM_E;
    step1(env, (float)a, o, &r, &te, &tu);
    MRL_CHECK(r == 1.0f && o[vm_at(2, ar, ac)] == 0.0f && o[vm_at(1, ar, ac)] == 1.0f,
              "eating an apple: +1, it disappears");
    step1(env, (float)(a == VM_W ? VM_E : VM_W), o, &r, &te, &tu); /* back to the odd cell */
    for (i = 3; i <= 21; i++) step1(env, (float)(i % 2 ? VM_N : VM_S), o, &r, &te, &tu);
    MRL_CHECK(m->t == 21 && o[vm_at(2, ar, ac)] == 0.0f, "apple still gone on step 21");
    step1(env, (float)VM_S, o, &r, &te, &tu);
    MRL_CHECK(m->phase == 1 && m->t == 22 && o[vm_at(2, ar, ac)] == 1.0f,
              "eaten on step 1, back on step 22");
  }
  for (t = 23; t <= 25; t++) step1(env, (float)VM_E, o, &r, &te, &tu);
  MRL_CHECK(m->phase == 2 && !te && o[vm_at(1, 5, 5)] == 1.0f && vm_count(o, 1) == 1 &&
                vm_count(o, 2) == 0,
            "after 25 distractor steps: the reward room, agent at (5, 5), no apples");
  MRL_CHECK(o[vm_at(3, 1, 2)] == 1.0f && o[vm_at(4, 1, 5)] == 1.0f && o[vm_at(5, 1, 8)] == 1.0f &&
                vm_count(o, 3) + vm_count(o, 4) + vm_count(o, 5) == 3,
            "colours 0, 1, 2 at (1, 2), (1, 5), (1, 8)");
  MRL_CHECK(o[vm_at(0, 4, 0)] == 1.0f && o[vm_at(0, 4, 4)] == 0.0f && o[vm_at(0, 5, 3)] == 1.0f &&
                o[vm_at(0, 5, 0)] == 0.0f && vm_count(o, 0) == 11 + 2 * 3 + 8 + 2 + 5,
            "reward room walls");
  /* walk to the target colour: north to (2, 5), along row 2, north into it */
  for (t = 0; t < 3; t++) step1(env, (float)VM_N, o, &r, &te, &tu);
  for (t = 0; t < 3 && target != 1; t++) step1(env, target == 0 ? VM_W : VM_E, o, &r, &te, &tu);
  MRL_CHECK(!te && r == 0.0f && m->r == 2 && m->c == 2 + 3 * target, "below the target colour");
  step1(env, (float)VM_N, o, &r, &te, &tu);
  MRL_CHECK(!te && r == 10.0f && m->success == 1 &&
                vm_count(o, 3) + vm_count(o, 4) + vm_count(o, 5) == 0 &&
                o[vm_at(1, 1, 2 + 3 * target)] == 1.0f,
            "the matching colour: +10, the colours vanish, the episode goes on");
  wrong = (target + 1) % 3;
  m->c = 2 + 3 * wrong;
  for (t = m->t + 1; t <= 15; t++) {
    step1(env, (float)(t % 2 ? VM_S : VM_N), o, &r, &te, &tu);
    later += r;
    if (te) break;
  }
  MRL_CHECK(te && t == 15 && later == 0.0f && mrl_env_episode_success(env) == 1,
            "the phase ends on its 15th step, no reward from the vanished colours");
  /* the wrong colour: 0, the colours vanish, the target is gone too */
  mrl_env_reset(env, 3, o);
  for (t = 0; t < 40; t++) step1(env, (float)VM_S, o, &r, &te, &tu);
  MRL_CHECK(m->phase == 2 && !te, "reward room reached");
  m->r = 2;
  m->c = 2 + 3 * wrong;
  step1(env, (float)VM_N, o, &r, &te, &tu);
  MRL_CHECK(!te && r == 0.0f && m->success == 0 &&
                vm_count(o, 3) + vm_count(o, 4) + vm_count(o, 5) == 0,
            "a wrong colour: 0, all three vanish");
  m->r = 2;
  m->c = 2 + 3 * target;
  step1(env, (float)VM_N, o, &r, &te, &tu);
  MRL_CHECK(r == 0.0f && m->success == 0, "the target's cell is empty now");
  for (k = m->t + 1; k <= 15; k++) step1(env, (float)VM_S, o, &r, &te, &tu);
  MRL_CHECK(te && mrl_env_episode_length(env) == 55 && mrl_env_episode_success(env) == 0,
            "15 + 25 + 15 steps, failed (%d)", mrl_env_episode_length(env));
  mrl_env_free(env);
}

/* An apple comes back even under the agent, which eats it on its next step
 * if it stays there (walking into a wall), as pycolab's apple drape does. */
static void test_visual_match_apple_return(void) {
  mrl_env *env = mrl_env_make("PassiveVisualMatch-80");
  static float o[462];
  float r, total = 0.0f;
  int te, tu, t, i, gone_ok = 1;
  mrl__vmatch *m;
  if (!env) return;
  mrl_env_reset(env, 5, o);
  for (t = 0; t < 15; t++) step1(env, 0.0f, o, &r, &te, &tu);
  m = (mrl__vmatch *)mrl_env_self(env);
  MRL_CHECK(m->phase == 1, "apples phase");
  /* apple 0 in the corner (1, 1), walls above and to the left */
  for (i = 1; i < 10; i++)
    if (m->apple_cell[i] == 12) m->apple_cell[i] = m->apple_cell[0];
  m->apple_cell[0] = 12;
  m->r = 1;
  m->c = 2;
  step1(env, (float)VM_W, o, &r, &te, &tu); /* step 1: eat it */
  MRL_CHECK(r == 1.0f && o[vm_at(1, 1, 1)] == 1.0f && o[vm_at(2, 1, 1)] == 0.0f, "eaten: +1");
  for (t = 2; t <= 21; t++) { /* stand on the cell: north into the wall */
    step1(env, (float)VM_N, o, &r, &te, &tu);
    total += r;
    if (o[vm_at(2, 1, 1)] != 0.0f || o[vm_at(1, 1, 1)] != 1.0f) gone_ok = 0;
  }
  MRL_CHECK(gone_ok && total == 0.0f, "steps 2-21 on its cell: gone, no reward");
  step1(env, (float)VM_N, o, &r, &te, &tu);
  MRL_CHECK(r == 0.0f && o[vm_at(2, 1, 1)] == 1.0f && o[vm_at(1, 1, 1)] == 1.0f,
            "step 22: back under the agent, no reward yet");
  step1(env, (float)VM_W, o, &r, &te, &tu);
  MRL_CHECK(r == 1.0f && o[vm_at(2, 1, 1)] == 0.0f, "step 23, still there: eaten again, +1");
  mrl_env_free(env);
}

/* The cropped variant sees the 5 x 5 window of the full board centred on
 * the agent, zeros beyond the board, on the same episode. */
static void test_visual_match_crop(void) {
  mrl_env *full = mrl_env_make("PassiveVisualMatch-12");
  mrl_env *crop = mrl_env_make("PassiveVisualMatchCrop-12");
  static float of[462], oc[150];
  float rf, rc, a;
  int tef = 0, tuf = 0, tec = 0, tuc = 0, seed, t, p, r, c, same = 1, centred = 1, off_board_ok = 1;
  mrl_rng rng = mrl_rng_make(4);
  MRL_CHECK(full && crop, "both made");
  if (!full || !crop) {
    mrl_env_free(full);
    mrl_env_free(crop);
    return;
  }
  MRL_CHECK(mrl_env_obs_dim(crop) == 150 && mrl_env_num_actions(crop) == 4, "6 x 5 x 5 planes");
  MRL_CHECK(mrl_env_make("PassiveVisualMatchCrop-12-3") == NULL, "one number");
  for (seed = 0; seed < 8; seed++) {
    mrl_env_reset(full, (uint64_t)seed, of);
    mrl_env_reset(crop, (uint64_t)seed, oc);
    for (t = 0; t <= 42; t++) {
      mrl__vmatch *m = (mrl__vmatch *)mrl_env_self(full);
      for (p = 0; p < 6; p++)
        for (r = 0; r < 5; r++)
          for (c = 0; c < 5; c++) {
            int br = m->r - 2 + r, bc = m->c - 2 + c;
            float want = br >= 0 && br < 7 && bc >= 0 && bc < 11 ? of[vm_at(p, br, bc)] : 0.0f;
            if (oc[p * 25 + r * 5 + c] != want) same = 0;
            if ((br < 0 || br >= 7 || bc < 0 || bc >= 11) && oc[p * 25 + r * 5 + c] != 0.0f)
              off_board_ok = 0;
          }
      for (r = 0, c = 0; r < 25; r++) c += oc[25 + r] == 1.0f; /* the agent plane */
      if (oc[25 + 12] != 1.0f || c != 1) centred = 0;
      if (t == 42) break;
      a = (float)mrl_rng_below(&rng, 4);
      mrl_env_step(full, &a, of, &rf, &tef, &tuf);
      mrl_env_step(crop, &a, oc, &rc, &tec, &tuc);
      if (rf != rc || tef != tec || tuf != tuc) same = 0;
    }
    if (!tef || !tec) same = 0;
  }
  MRL_CHECK(same, "the window of the full board, same rewards and ends, 42 steps");
  MRL_CHECK(off_board_ok, "zeros beyond the board");
  MRL_CHECK(centred, "the agent always in the centre");
  mrl_env_free(full);
  mrl_env_free(crop);
}

/* Every task env through the vector API: steps succeed, finished episodes
 * report the return and length accumulated step by step. */
static void test_vecenv_all(void) {
  static const char *ids[] = {"Pendulum-v1",
                              "NoisyStatelessPendulum-v1",
                              "VelocityOnlyCartPole-v1",
                              "NoisyStatelessCartPole-v1-0.2",
                              "PassiveTMaze-4",
                              "MemoryChain-3-2",
                              "NoisySequence-5",
                              "MetaBandit-4-7",
                              "Semicircle-9",
                              "NumPad-2-2",
                              "TreeMDP-2-3",
                              "SFGrid",
                              "Catch",
                              "PassiveVisualMatch-3",
                              "PassiveVisualMatchCrop-3"};
  int k;
  for (k = 0; k < (int)(sizeof ids / sizeof ids[0]); k++) {
    mrl_vecenv v;
    float acts[3 * 2], ret[3] = {0, 0, 0};
    int len[3] = {0, 0, 0}, t, i, ok = 1, ended = 0;
    mrl_rng r = mrl_rng_make(9);
    if (mrl_vecenv_init(&v, ids[k], 3, 21) != MRL_OK) {
      MRL_CHECK(0, "%s: vecenv", ids[k]);
      continue;
    }
    mrl_vecenv_reset(&v);
    for (t = 0; t < 300; t++) {
      for (i = 0; i < 3; i++) random_action(v.envs[i], &r, acts + i * v.action_dim);
      if (mrl_vecenv_step(&v, acts) != MRL_OK) ok = 0;
      for (i = 0; i < 3; i++) {
        ret[i] += v.rewards[i];
        len[i]++;
        if (v.terminated[i] || v.truncated[i]) {
          if (v.episode_length[i] != len[i] || fabsf(v.episode_return[i] - ret[i]) > 1e-3f) ok = 0;
          ret[i] = 0.0f;
          len[i] = 0;
          ended++;
        }
      }
    }
    MRL_CHECK(ok && ended > 0, "%s: vector steps, %d episodes with their returns", ids[k], ended);
    mrl_vecenv_free(&v);
  }
}

static void test_meta_render(void) {
  char text[512];
  float o[32], a[2] = {0.1f, 0.1f}, r;
  int te, tu;
  mrl_env *e = mrl_env_make("MetaBandit-3-10");
  mrl__mbandit *b = (mrl__mbandit *)mrl_env_self(e);
  mrl_env_reset(e, 1, o);
  b->p[0] = 0.25f;
  b->p[1] = 0.5f;
  b->p[2] = 0.125f;
  mrl_env_render(e, text, sizeof text);
  MRL_CHECK(strcmp(text, "t=0/10 last arm=-1 reward=0 best arm=1 (p=0.500)\n") == 0,
            "bandit render: %s", text);
  mrl_env_free(e);
  e = mrl_env_make("Semicircle");
  mrl_env_reset(e, 1, o);
  {
    mrl__semicircle *s = (mrl__semicircle *)mrl_env_self(e);
    s->gx = 0.0;
    s->gy = 1.0;
  }
  mrl_env_step(e, a, o, &r, &te, &tu);
  mrl_env_render(e, text, sizeof text);
  /* goal (0, 1): row 1, column 10; agent (0.1, 0.1): row 8, column 11 */
  MRL_CHECK(strlen(text) == 11 * 22 && text[1 * 22 + 10] == 'G' && text[8 * 22 + 11] == 'A',
            "semicircle render:\n%s", text);
  mrl_env_free(e);
}

static void test_classic_render(void) {
  mrl_env *e = mrl_env_make("Pendulum-v1");
  mrl__pendulum *p = (mrl__pendulum *)mrl_env_self(e);
  float o[3];
  char text[256];
  mrl_env_reset(e, 1, o);
  p->th = 0.0;
  p->thdot = 0.5;
  mrl_env_render(e, text, sizeof text);
  MRL_CHECK(strcmp(text, "pole ^ theta=+0.0 deg thetadot=+0.500 torque=+0.000\n") == 0,
            "pendulum render: %s", text);
  p->th = 3.141592653589793;
  mrl_env_render(e, text, sizeof text);
  MRL_CHECK(text[5] == 'v', "hanging pole drawn as v: %s", text);
  mrl_env_free(e);
}

static void test_all_common(void) {
  /* id, whether other seeds give other episodes (the tree and the grid are
   * the same world every episode) */
  static const struct {
    const char *id;
    int differs;
  } envs[] = {{"CartPole-v1", 1},
              {"StatelessCartPole-v1", 1},
              {"TMaze-5", 1},
              {"Pendulum-v1", 1},
              {"StatelessPendulum-v1", 1},
              {"NoisyStatelessPendulum-v1-0.2", 1},
              {"VelocityOnlyCartPole-v1", 1},
              {"NoisyStatelessCartPole-v1", 1},
              {"PassiveTMaze-5", 1},
              {"MemoryChain-5-3", 1},
              {"NoisySequence-8", 1},
              {"MetaBandit", 1},
              {"Semicircle", 1},
              {"NumPad", 1},
              {"TreeMDP-3-5", 0},
              {"SFGrid", 0},
              {"Catch", 1},
              {"PassiveVisualMatch", 1},
              {"PassiveVisualMatchCrop", 1}};
  int i;
  for (i = 0; i < (int)(sizeof envs / sizeof envs[0]); i++)
    check_common(envs[i].id, envs[i].differs);
}

/* Every registry entry's example id (the pattern with its parameters
 * filled in by the first example in its description) makes an env. */
static void test_registry_examples(void) {
  int n = mrl_env_list(0, NULL), i;
  MRL_CHECK(n >= 18, "registry lists %d families", n);
  for (i = 0; i < n; i++) {
    char id[128];
    mrl_env_info info;
    const char *p;
    MRL_CHECK(mrl_env_list(i, &info) == n && info.make && info.description, "registry entry %d", i);
    p = info.pattern;
    size_t k = 0;
    /* strip optional parts "[...]", replace "<x>" by "4" and "<a|b>" by "a" */
    while (*p && k + 2 < sizeof id) {
      if (*p == '[') { /* skip the optional part, nested ones included */
        int depth = 0;
        do {
          depth += *p == '[' ? 1 : *p == ']' ? -1 : 0;
          p++;
        } while (*p && depth > 0);
      } else if (*p == '<') { /* <a|b|c>: the first choice; <n>: 4 */
        const char *q = ++p;
        while (*q && *q != '>' && *q != '|') q++;
        if (*q == '|')
          while (p < q && k + 2 < sizeof id) id[k++] = *p++;
        else
          id[k++] = '4';
        while (*p && *p != '>') p++;
        if (*p) p++;
      } else {
        id[k++] = *p++;
      }
    }
    id[k] = '\0';
    {
      mrl_env *e = mrl_env_make(id);
      MRL_CHECK(e != NULL, "registry pattern %s: example id %s makes an env", info.pattern, id);
      mrl_env_free(e);
    }
  }
}

int main(void) {
  test_pendulum();
  test_pendulum_numpy_fixture();
  test_cartpole_python_fixture();
  test_pendulum_pomdps();
  test_cartpole_pomdps();
  test_classic_render();
  test_passive_tmaze();
  test_memory_chain();
  test_noisy_sequence();
  test_meta_bandit();
  test_semicircle();
  test_numpad();
  test_tree_mdp();
  test_sfgrid();
  test_catch();
  test_visual_match_explore();
  test_visual_match();
  test_visual_match_apple_return();
  test_visual_match_crop();
  test_all_common();
  test_vecenv_all();
  test_meta_render();
  test_registry_examples();
  return mrl_test_summary("test_envs_tasks");
}
