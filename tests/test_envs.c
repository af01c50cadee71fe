/* Tests of memrl_envs.h: the environment rules, the wrapper's checks, the
 * vector environment and the episode statistics.
 * cc -std=c99 -Wall -Wextra -pedantic tests/test_envs.c -lm && ./a.out */
#define MEMRL_ENVS_IMPLEMENTATION
#include "../memrl_envs.h"
#include "test.h"

#include <string.h>

/* ---- an independent, plain CartPole (Gymnasium's equations) ------------- */

typedef struct ref_cartpole {
  double x, x_dot, theta, theta_dot;
} ref_cartpole;

/* The reset rule the header documents. */
static void ref_reset(ref_cartpole *s, uint64_t seed) {
  mrl_rng r = mrl_rng_make(seed);
  s->x = -0.05 + 0.1 * (double)mrl_rng_uniform(&r);
  s->x_dot = -0.05 + 0.1 * (double)mrl_rng_uniform(&r);
  s->theta = -0.05 + 0.1 * (double)mrl_rng_uniform(&r);
  s->theta_dot = -0.05 + 0.1 * (double)mrl_rng_uniform(&r);
}

/* Returns terminated. */
static int ref_step(ref_cartpole *s, int action) {
  const double gravity = 9.8;
  const double masscart = 1.0;
  const double masspole = 0.1;
  const double total_mass = masspole + masscart;
  const double length = 0.5;
  const double polemass_length = masspole * length;
  const double force_mag = 10.0;
  const double tau = 0.02;
  const double theta_threshold_radians = 12 * 2 * 3.141592653589793 / 360;
  const double x_threshold = 2.4;
  double force, costheta, sintheta, temp, thetaacc, xacc;
  double theta_dot_sq;

  if (action == 1)
    force = force_mag;
  else
    force = -force_mag;
  costheta = cos(s->theta);
  sintheta = sin(s->theta);
  theta_dot_sq = s->theta_dot * s->theta_dot;
  temp = (force + polemass_length * theta_dot_sq * sintheta) / total_mass;
  thetaacc = (gravity * sintheta - costheta * temp) /
             (length * (4.0 / 3.0 - masspole * (costheta * costheta) / total_mass));
  xacc = temp - polemass_length * thetaacc * costheta / total_mass;

  s->x = s->x + tau * s->x_dot;
  s->x_dot = s->x_dot + tau * xacc;
  s->theta = s->theta + tau * s->theta_dot;
  s->theta_dot = s->theta_dot + tau * thetaacc;

  if (s->x < -x_threshold) return 1;
  if (s->x > x_threshold) return 1;
  if (s->theta < -theta_threshold_radians) return 1;
  if (s->theta > theta_threshold_radians) return 1;
  return 0;
}

static int ref_obs_equal(const ref_cartpole *s, const float *obs) {
  return obs[0] == (float)s->x && obs[1] == (float)s->x_dot && obs[2] == (float)s->theta &&
         obs[3] == (float)s->theta_dot;
}

static int balancing_action(const float *obs) {
  return obs[2] + 0.5f * obs[3] > 0.0f ? 1 : 0;
}

static void test_cartpole_reset(void) {
  mrl_env *env = mrl_env_make("CartPole-v1");
  float obs[4];
  uint64_t seed;
  int i, all_inside = 1, exact = 1;
  MRL_CHECK(env != NULL, "CartPole-v1 made");
  if (!env) return;
  MRL_CHECK(strcmp(mrl_env_id(env), "CartPole-v1") == 0, "id");
  MRL_CHECK(mrl_env_obs_dim(env) == 4, "obs_dim %d", mrl_env_obs_dim(env));
  MRL_CHECK(mrl_env_num_actions(env) == 2, "num_actions");
  MRL_CHECK(mrl_env_action_dim(env) == 1, "action_dim");
  MRL_CHECK(mrl_env_max_episode_steps(env) == 500, "time limit 500");
  MRL_CHECK(mrl_env_episode_success(env) == -1, "no notion of success");
  for (seed = 0; seed < 200; seed++) {
    ref_cartpole s;
    MRL_CHECK(mrl_env_reset(env, seed, obs) == MRL_OK, "reset");
    for (i = 0; i < 4; i++)
      if (!(obs[i] >= -0.05f && obs[i] <= 0.05f)) all_inside = 0;
    ref_reset(&s, seed);
    if (!ref_obs_equal(&s, obs)) exact = 0;
  }
  MRL_CHECK(all_inside, "reset observations within +-0.05");
  MRL_CHECK(exact, "reset follows the documented rule");
  mrl_env_free(env);
}

/* A fixed action sequence until termination, against the reference. */
static void test_cartpole_trajectory(void) {
  mrl_env *env = mrl_env_make("CartPole-v1");
  ref_cartpole s;
  float obs[4], rew = 0.0f;
  int term = 0, trunc = 0, ref_term = 0, t, same = 1, rewards_one = 1;
  const int pattern[7] = {1, 1, 0, 1, 0, 0, 1};
  if (!env) return;
  MRL_CHECK(mrl_env_reset(env, 2024, obs) == MRL_OK, "reset");
  ref_reset(&s, 2024);
  MRL_CHECK(ref_obs_equal(&s, obs), "first observation");
  /* drift right with a biased pattern, then push right until it falls */
  for (t = 1; t <= 500 && !ref_term; t++) {
    int a = t < 30 ? pattern[t % 7] : 1;
    float af = (float)a;
    mrl_result r = mrl_env_step(env, &af, obs, &rew, &term, &trunc);
    ref_term = ref_step(&s, a);
    if (r != MRL_OK || !ref_obs_equal(&s, obs) || term != ref_term || trunc) same = 0;
    if (rew != 1.0f) rewards_one = 0;
  }
  t--;
  MRL_CHECK(same, "trajectory equals the reference step by step (to step %d)", t);
  MRL_CHECK(rewards_one, "reward 1 on every step, the terminating one included");
  MRL_CHECK(ref_term && term && !trunc, "terminated at step %d", t);
  MRL_CHECK(t > 8 && t < 100, "terminates in a plausible number of steps (%d)", t);
  MRL_CHECK(mrl_env_episode_length(env) == t, "episode length %d", mrl_env_episode_length(env));
  MRL_CHECK(mrl_env_episode_return(env) == (float)t, "episode return");
  {
    float a = 0.0f;
    MRL_CHECK(mrl_env_step(env, &a, obs, &rew, &term, &trunc) == MRL_ERR_NOT_RESET,
              "step after termination");
  }
  mrl_env_free(env);
}

/* Each threshold: push right from rest falls left... compare termination
 * steps of the reference for many seeds and both constant actions. */
static void test_cartpole_termination_steps(void) {
  mrl_env *env = mrl_env_make("CartPole-v1");
  uint64_t seed;
  int ok = 1;
  if (!env) return;
  for (seed = 0; seed < 50; seed++) {
    int a;
    for (a = 0; a < 2; a++) {
      ref_cartpole s;
      float obs[4], af = (float)a, rew;
      int t = 0, term = 0, trunc = 0, rt = 0;
      mrl_env_reset(env, seed, obs);
      ref_reset(&s, seed);
      while (!rt && t < 500) {
        rt = ref_step(&s, a);
        t++;
        if (mrl_env_step(env, &af, obs, &rew, &term, &trunc) != MRL_OK) ok = 0;
        if (term != rt || trunc || rew != 1.0f || !ref_obs_equal(&s, obs)) ok = 0;
      }
      if (!term) ok = 0;
    }
  }
  MRL_CHECK(ok, "constant-action episodes terminate exactly where the reference does");
  mrl_env_free(env);
}

static void test_cartpole_truncation(void) {
  mrl_env *env = mrl_env_make("CartPole-v1");
  uint64_t seed;
  if (!env) return;
  for (seed = 1; seed <= 5; seed++) {
    ref_cartpole s;
    float obs[4], rew;
    int t, term = 0, trunc = 0, early = 0, same = 1;
    mrl_env_reset(env, seed, obs);
    ref_reset(&s, seed);
    for (t = 1; t <= 500; t++) {
      int a = balancing_action(obs);
      float af = (float)a;
      mrl_env_step(env, &af, obs, &rew, &term, &trunc);
      if (ref_step(&s, a) != term || !ref_obs_equal(&s, obs)) same = 0;
      if ((term || trunc) && t < 500) {
        early = 1;
        break;
      }
    }
    MRL_CHECK(!early, "seed %d: the balancing controller lasts 500 steps", (int)seed);
    MRL_CHECK(same, "seed %d: balancing trajectory equals the reference", (int)seed);
    MRL_CHECK(trunc == 1 && term == 0, "seed %d: truncated (not terminated) at step 500",
              (int)seed);
    MRL_CHECK(mrl_env_episode_length(env) == 500, "length 500");
    MRL_CHECK(mrl_env_episode_return(env) == 500.0f, "return 500");
    {
      float a = 1.0f;
      MRL_CHECK(mrl_env_step(env, &a, obs, &rew, &term, &trunc) == MRL_ERR_NOT_RESET,
                "step after truncation");
    }
  }
  mrl_env_free(env);
}

static void test_stateless_cartpole(void) {
  mrl_env *full = mrl_env_make("CartPole-v1");
  mrl_env *pos = mrl_env_make("StatelessCartPole-v1");
  float o4[4], o2[2], r4, r2;
  int t, t4 = 0, t4u = 0, t2 = 0, t2u = 0, same = 1;
  MRL_CHECK(pos != NULL, "StatelessCartPole-v1 made");
  if (!full || !pos) return;
  MRL_CHECK(mrl_env_obs_dim(pos) == 2, "obs_dim 2");
  MRL_CHECK(mrl_env_num_actions(pos) == 2, "2 actions");
  MRL_CHECK(mrl_env_max_episode_steps(pos) == 500, "time limit 500");
  mrl_env_reset(full, 99, o4);
  mrl_env_reset(pos, 99, o2);
  if (o2[0] != o4[0] || o2[1] != o4[2]) same = 0;
  for (t = 0; t < 500 && !t4 && !t4u; t++) {
    float a = (float)((t / 3) % 2);
    mrl_env_step(full, &a, o4, &r4, &t4, &t4u);
    mrl_env_step(pos, &a, o2, &r2, &t2, &t2u);
    if (o2[0] != o4[0] || o2[1] != o4[2] || r2 != r4 || t2 != t4 || t2u != t4u) same = 0;
  }
  MRL_CHECK(same, "stateless observations are [x, theta] of the same trajectory (%d steps)", t);
  mrl_env_free(full);
  mrl_env_free(pos);
}

static void run_actions(mrl_env *env, uint64_t seed, const float *acts, int n, float *out) {
  float rew;
  int term, trunc, t, d = mrl_env_obs_dim(env);
  mrl_env_reset(env, seed, out);
  for (t = 0; t < n; t++) {
    if (mrl_env_step(env, acts + t, out + (t + 1) * d, &rew, &term, &trunc) != MRL_OK) break;
    if (term || trunc) break;
  }
}

static void test_determinism(void) {
  const char *ids[3] = {"CartPole-v1", "StatelessCartPole-v1", "TMaze-4"};
  int k;
  for (k = 0; k < 3; k++) {
    mrl_env *a = mrl_env_make(ids[k]), *b = mrl_env_make(ids[k]);
    float acts[40], oa[41 * 4], ob[41 * 4], oc[41 * 4];
    mrl_rng r = mrl_rng_make(5);
    int t, n = mrl_env_num_actions(a);
    for (t = 0; t < 40; t++) acts[t] = (float)mrl_rng_below(&r, (uint32_t)n);
    memset(oa, 0, sizeof oa);
    memset(ob, 0, sizeof ob);
    memset(oc, 0, sizeof oc);
    run_actions(a, 77, acts, 40, oa);
    run_actions(b, 77, acts, 40, ob);
    MRL_CHECK(memcmp(oa, ob, sizeof oa) == 0, "%s: same seed, same observations", ids[k]);
    if (k < 2) {
      run_actions(b, 78, acts, 40, oc);
      MRL_CHECK(memcmp(oa, oc, sizeof oa) != 0, "%s: another seed, other observations", ids[k]);
    } else {
      /* the T-maze has two starts: some seed among a few must differ */
      uint64_t s;
      int differs = 0;
      for (s = 78; s < 90 && !differs; s++) {
        memset(oc, 0, sizeof oc);
        run_actions(b, s, acts, 40, oc);
        differs = memcmp(oa, oc, sizeof oa) != 0;
      }
      MRL_CHECK(differs, "%s: other seeds, other observations", ids[k]);
    }
    mrl_env_free(a);
    mrl_env_free(b);
  }
}

static void test_invalid_actions(void) {
  const float bad[7] = {-1.0f, 2.0f, 0.5f, NAN, INFINITY, -INFINITY, 1.0000001f};
  int k;
  mrl_env *a = mrl_env_make("CartPole-v1"), *b = mrl_env_make("CartPole-v1");
  float oa[4], ob[4], ra, rb, one = 1.0f;
  int ta, tb, ua, ub;
  if (!a || !b) return;
  MRL_CHECK(mrl_env_step(a, &one, oa, &ra, &ta, &ua) == MRL_ERR_NOT_RESET, "step before reset");
  mrl_env_reset(a, 3, oa);
  mrl_env_reset(b, 3, ob);
  for (k = 0; k < 7; k++) {
    float before[4];
    int len = mrl_env_episode_length(a);
    memcpy(before, oa, sizeof before);
    ra = 123.0f;
    MRL_CHECK(mrl_env_step(a, &bad[k], oa, &ra, &ta, &ua) == MRL_ERR_INVALID_ACTION,
              "action %g rejected", (double)bad[k]);
    MRL_CHECK(memcmp(before, oa, sizeof before) == 0 && ra == 123.0f, "outputs untouched");
    MRL_CHECK(mrl_env_episode_length(a) == len, "episode length untouched");
    mrl_env_step(a, &one, oa, &ra, &ta, &ua);
    mrl_env_step(b, &one, ob, &rb, &tb, &ub);
    MRL_CHECK(memcmp(oa, ob, sizeof oa) == 0 && ra == rb && ta == tb && ua == ub,
              "after a rejected %g the next step is as without it", (double)bad[k]);
  }
  MRL_CHECK(mrl_env_step(a, NULL, oa, &ra, &ta, &ua) == MRL_ERR_INVALID_ACTION, "NULL action");
  /* outputs may be NULL */
  MRL_CHECK(mrl_env_step(a, &one, NULL, NULL, NULL, NULL) == MRL_OK, "NULL outputs");
  mrl_env_free(a);
  mrl_env_free(b);
  {
    mrl_env *t = mrl_env_make("TMaze-3");
    const float tbad[4] = {4.0f, -1.0f, 1.5f, NAN};
    float o[3], r;
    int i, te, tu;
    mrl_env_reset(t, 1, o);
    for (i = 0; i < 4; i++)
      MRL_CHECK(mrl_env_step(t, &tbad[i], o, &r, &te, &tu) == MRL_ERR_INVALID_ACTION,
                "T-maze action %g rejected", (double)tbad[i]);
    MRL_CHECK(mrl_env_episode_length(t) == 0, "T-maze untouched");
    mrl_env_free(t);
  }
}

/* ---- T-maze -------------------------------------------------------------- */

static int obs_is(const float *o, int a, int b, int c) {
  return o[0] == (float)a && o[1] == (float)b && o[2] == (float)c;
}

/* A seed whose episode has the goal North (want 0) or South (want 1). */
static uint64_t tmaze_seed_for(mrl_env *env, int want) {
  uint64_t s;
  float o[3] = {0.0f, 0.0f, 0.0f};
  for (s = 0; s < 1000; s++) {
    mrl_env_reset(env, s, o);
    if (want == 0 && obs_is(o, 0, 1, 1)) return s;
    if (want == 1 && obs_is(o, 1, 1, 0)) return s;
  }
  return 0;
}

static mrl_result tstep(mrl_env *env, int a, float *o, float *r, int *te, int *tu) {
  float af = (float)a;
  return mrl_env_step(env, &af, o, r, te, tu);
}

static void test_tmaze_walk(void) {
  const int L = 5;
  int goal;
  mrl_env *env = mrl_env_make("TMaze-5");
  MRL_CHECK(env != NULL, "TMaze-5 made");
  if (!env) return;
  MRL_CHECK(mrl_env_obs_dim(env) == 3 && mrl_env_num_actions(env) == 4 &&
                mrl_env_action_dim(env) == 1,
            "T-maze dimensions");
  MRL_CHECK(mrl_env_max_episode_steps(env) == 10 * (L + 1), "default time limit 10*(L+1)");
  MRL_CHECK(mrl_env_episode_success(env) == 0, "success 0 before any episode");
  for (goal = 0; goal < 2; goal++) {
    int right;
    for (right = 0; right < 2; right++) {
      uint64_t seed = tmaze_seed_for(env, goal);
      float o[3], r;
      int te = 0, tu = 0, k, ok = 1;
      int arm = right ? (goal == 0 ? 0 : 2) : (goal == 0 ? 2 : 0); /* action N=0, S=2 */
      mrl_env_reset(env, seed, o);
      MRL_CHECK(goal == 0 ? obs_is(o, 0, 1, 1) : obs_is(o, 1, 1, 0), "cue at the start");
      for (k = 1; k <= L; k++) {
        tstep(env, 1, o, &r, &te, &tu);
        if (r != 0.0f || te || tu) ok = 0;
        if (k < L && !obs_is(o, 1, 0, 1)) ok = 0;
        if (k == L && !obs_is(o, 0, 1, 0)) ok = 0;
      }
      MRL_CHECK(ok, "walking east: corridor 101 then junction 010 after %d steps, reward 0", L);
      MRL_CHECK(tstep(env, arm, o, &r, &te, &tu) == MRL_OK, "arm step");
      if (right) {
        MRL_CHECK(r == 4.0f && te == 1 && tu == 0, "goal arm: +4, terminated (r=%g)", (double)r);
        MRL_CHECK(mrl_env_episode_success(env) == 1, "success 1");
        MRL_CHECK(mrl_env_episode_return(env) == 4.0f, "return 4");
      } else {
        MRL_CHECK(r == -0.1f && te == 1 && tu == 0, "wrong arm: -0.1, terminated");
        MRL_CHECK(mrl_env_episode_success(env) == 0, "success 0");
      }
      MRL_CHECK(mrl_env_episode_length(env) == L + 1, "length L+1");
      MRL_CHECK(obs_is(o, 0, 0, 0), "terminal observation 000");
      MRL_CHECK(tstep(env, 1, o, &r, &te, &tu) == MRL_ERR_NOT_RESET, "step after the arm");
    }
  }
  mrl_env_free(env);
}

static void test_tmaze_bumps(void) {
  mrl_env *env = mrl_env_make("TMaze-3");
  uint64_t seed;
  float o[3], r;
  int te, tu, ok;
  if (!env) return;
  seed = tmaze_seed_for(env, 1);
  mrl_env_reset(env, seed, o);
  /* at the start: N, S, W bump */
  ok = 1;
  tstep(env, 0, o, &r, &te, &tu);
  ok &= r == -0.1f && obs_is(o, 1, 1, 0) && !te && !tu;
  tstep(env, 2, o, &r, &te, &tu);
  ok &= r == -0.1f && obs_is(o, 1, 1, 0) && !te;
  tstep(env, 3, o, &r, &te, &tu);
  ok &= r == -0.1f && obs_is(o, 1, 1, 0) && !te;
  MRL_CHECK(ok, "N, S, W at the start: -0.1, still at the start (cue again)");
  /* corridor: N, S bump; W goes back to the start */
  tstep(env, 1, o, &r, &te, &tu);
  ok = r == 0.0f && obs_is(o, 1, 0, 1);
  tstep(env, 0, o, &r, &te, &tu);
  ok &= r == -0.1f && obs_is(o, 1, 0, 1) && !te;
  tstep(env, 2, o, &r, &te, &tu);
  ok &= r == -0.1f && obs_is(o, 1, 0, 1) && !te;
  MRL_CHECK(ok, "N, S in the corridor: -0.1, position unchanged");
  tstep(env, 3, o, &r, &te, &tu);
  MRL_CHECK(r == 0.0f && obs_is(o, 1, 1, 0), "W from x=1 returns to the start, reward 0");
  /* junction: E bumps, W leaves */
  tstep(env, 1, o, &r, &te, &tu);
  tstep(env, 1, o, &r, &te, &tu);
  tstep(env, 1, o, &r, &te, &tu);
  MRL_CHECK(obs_is(o, 0, 1, 0) && r == 0.0f, "at the junction");
  tstep(env, 1, o, &r, &te, &tu);
  MRL_CHECK(r == -0.1f && obs_is(o, 0, 1, 0) && !te, "E at the junction: -0.1, stays");
  tstep(env, 3, o, &r, &te, &tu);
  MRL_CHECK(r == 0.0f && obs_is(o, 1, 0, 1), "W from the junction: back in the corridor");
  tstep(env, 1, o, &r, &te, &tu);
  tstep(env, 2, o, &r, &te, &tu); /* goal South */
  MRL_CHECK(r == 4.0f && te == 1, "South arm is the goal");
  MRL_CHECK(mrl_env_episode_length(env) == 14, "14 steps");
  MRL_CHECK_NEAR(mrl_env_episode_return(env), 4.0 - 6 * 0.1, 1e-5, 0, "return with 6 bumps");
  mrl_env_free(env);
}

static void test_tmaze_time_limit(void) {
  mrl_env *env = mrl_env_make("TMaze-5");
  float o[3], r;
  int te = 0, tu = 0, t, early = 0;
  if (!env) return;
  mrl_env_reset(env, 11, o);
  for (t = 1; t <= 60; t++) {
    tstep(env, 0, o, &r, &te, &tu); /* bump North at the start forever */
    if ((te || tu) && t < 60) early = 1;
  }
  MRL_CHECK(!early && tu == 1 && te == 0, "TMaze-5 truncates at 60 steps");
  MRL_CHECK(mrl_env_episode_success(env) == 0, "truncated episode is no success");
  MRL_CHECK_NEAR(mrl_env_episode_return(env), -6.0, 1e-4, 0, "60 bumps: -6");
  MRL_CHECK(tstep(env, 1, o, &r, &te, &tu) == MRL_ERR_NOT_RESET, "step after truncation");
  mrl_env_free(env);

  env = mrl_env_make("TMaze-5-7");
  MRL_CHECK(env != NULL && mrl_env_max_episode_steps(env) == 7, "TMaze-5-7 limit 7");
  if (env) {
    mrl_env_reset(env, 11, o);
    for (t = 1; t <= 7; t++) tstep(env, 1, o, &r, &te, &tu);
    MRL_CHECK(tu == 1 && te == 0, "TMaze-5-7 truncates at 7");
    mrl_env_free(env);
  }
  /* a terminal step at the limit is terminal, not truncated */
  env = mrl_env_make("TMaze-1-2");
  if (env) {
    uint64_t s = tmaze_seed_for(env, 0);
    mrl_env_reset(env, s, o);
    tstep(env, 1, o, &r, &te, &tu);
    MRL_CHECK(!te && !tu && obs_is(o, 0, 1, 0), "TMaze-1: junction one step east");
    tstep(env, 0, o, &r, &te, &tu);
    MRL_CHECK(te == 1 && tu == 0 && r == 4.0f, "terminal at the limit: terminated only");
    mrl_env_free(env);
  }
  env = mrl_env_make("TMaze-2-0");
  MRL_CHECK(env != NULL && mrl_env_max_episode_steps(env) == 0, "TMaze-2-0: no limit");
  if (env) {
    mrl_env_reset(env, 1, o);
    for (t = 0; t < 5000 && !tu; t++) tstep(env, 3, o, &r, &te, &tu);
    MRL_CHECK(!tu && !te, "no truncation without a limit");
    mrl_env_free(env);
  }
}

static void test_tmaze_goal_balance(void) {
  mrl_env *env = mrl_env_make("TMaze-10");
  uint64_t s;
  int north = 0;
  float o[3];
  if (!env) return;
  for (s = 0; s < 2000; s++) {
    mrl_env_reset(env, s, o);
    north += obs_is(o, 0, 1, 1);
  }
  MRL_CHECK(north > 900 && north < 1100, "goal North in %d of 2000 seeds", north);
  mrl_env_free(env);
}

static void test_ids(void) {
  const char *good[6] = {"TMaze-1",   "TMaze-20",    "TMaze-100000",
                         "TMaze-3-1", "CartPole-v1", "StatelessCartPole-v1"};
  const char *bad[18] = {"TMaze-0",
                         "TMaze-x",
                         "TMaze-5x",
                         "TMaze-",
                         "TMaze--5",
                         "TMaze-+5",
                         "TMaze-100001",
                         "TMaze-5-",
                         "TMaze-5-x",
                         "TMaze-5-3-1",
                         "TMaze- 5",
                         "tmaze-5",
                         "CartPole-v0",
                         "CartPole-v1 ",
                         "",
                         "TMaze",
                         "TMaze-99999999999999999999999",
                         "TMaze-5-99999999999"};
  int i;
  for (i = 0; i < 6; i++) {
    mrl_env *e = mrl_env_make(good[i]);
    MRL_CHECK(e != NULL, "id %s accepted", good[i]);
    if (e) MRL_CHECK(strcmp(mrl_env_id(e), good[i]) == 0, "id kept");
    mrl_env_free(e);
  }
  for (i = 0; i < 18; i++) {
    mrl_env *e = mrl_env_make(bad[i]);
    MRL_CHECK(e == NULL, "id \"%s\" rejected", bad[i]);
    mrl_env_free(e);
  }
  MRL_CHECK(mrl_env_make(NULL) == NULL, "NULL id");
  mrl_env_free(NULL);
}

/* ---- a user environment through the function table ---------------------- */

typedef struct counter_env {
  int count, target, destroyed;
} counter_env;

static mrl_result counter_reset(void *self, uint64_t seed, float *obs) {
  counter_env *c = (counter_env *)self;
  c->count = (int)(seed % 2u); /* odd seeds start at 1 */
  obs[0] = (float)c->count;
  return MRL_OK;
}

static mrl_result counter_step(void *self, const float *action, float *obs, float *reward,
                               int *terminated, int *truncated) {
  counter_env *c = (counter_env *)self;
  c->count += (int)action[0];
  obs[0] = (float)c->count;
  *reward = action[0] * 0.5f;
  *terminated = c->count >= c->target;
  *truncated = 0;
  return MRL_OK;
}

static int counter_success(const void *self) {
  const counter_env *c = (const counter_env *)self;
  return c->count >= c->target;
}

static void counter_destroy(void *self) {
  ((counter_env *)self)->destroyed++;
}

static mrl_env_vtable counter_vtable(void) {
  mrl_env_vtable vt;
  memset(&vt, 0, sizeof vt);
  vt.id = "Counter-v0";
  vt.obs_dim = 1;
  vt.num_actions = 2;
  vt.action_dim = 1;
  vt.reset = counter_reset;
  vt.step = counter_step;
  vt.destroy = counter_destroy;
  vt.episode_success = counter_success;
  vt.max_episode_steps = 4;
  return vt;
}

static void test_custom_env(void) {
  counter_env c;
  mrl_env_vtable vt = counter_vtable();
  mrl_env *env;
  float o, r, one = 1.0f, zero = 0.0f, two = 2.0f;
  int te, tu, t;
  c.count = 0;
  c.target = 3;
  c.destroyed = 0;
  env = mrl_env_create(&vt, &c);
  MRL_CHECK(env != NULL, "custom env created");
  if (!env) return;
  vt.id = "changed"; /* the table was copied */
  MRL_CHECK(strcmp(mrl_env_id(env), "Counter-v0") == 0, "id copied");
  MRL_CHECK(mrl_env_self(env) == (void *)&c, "self");
  MRL_CHECK(mrl_env_max_episode_steps(env) == 4, "limit");
  MRL_CHECK(mrl_env_step(env, &one, &o, &r, &te, &tu) == MRL_ERR_NOT_RESET, "before reset");
  MRL_CHECK(mrl_env_reset(env, 0, &o) == MRL_OK && o == 0.0f, "reset");
  MRL_CHECK(mrl_env_step(env, &two, &o, &r, &te, &tu) == MRL_ERR_INVALID_ACTION, "action 2");
  MRL_CHECK(c.count == 0, "the callback never saw the bad action");
  for (t = 1; t <= 3; t++) {
    mrl_env_step(env, &one, &o, &r, &te, &tu);
    MRL_CHECK(o == (float)t && r == 0.5f && te == (t == 3) && tu == 0, "counter step %d", t);
  }
  MRL_CHECK(mrl_env_episode_success(env) == 1, "success reported at the end");
  MRL_CHECK(mrl_env_episode_return(env) == 1.5f && mrl_env_episode_length(env) == 3,
            "return 1.5, length 3");
  MRL_CHECK(mrl_env_step(env, &one, &o, &r, &te, &tu) == MRL_ERR_NOT_RESET, "after the end");
  /* time limit: four idle steps */
  mrl_env_reset(env, 0, &o);
  MRL_CHECK(mrl_env_episode_length(env) == 0 && mrl_env_episode_return(env) == 0.0f,
            "reset clears the episode");
  for (t = 1; t <= 4; t++) {
    mrl_env_step(env, &zero, &o, &r, &te, &tu);
    MRL_CHECK(te == 0 && tu == (t == 4), "idle step %d: truncated only at 4", t);
  }
  MRL_CHECK(mrl_env_episode_success(env) == 0, "truncated: no success");
  MRL_CHECK(c.destroyed == 0, "not destroyed yet");
  mrl_env_free(env);
  MRL_CHECK(c.destroyed == 1, "destroy called once by mrl_env_free");

  /* malformed tables */
  vt = counter_vtable();
  vt.step = NULL;
  MRL_CHECK(mrl_env_create(&vt, &c) == NULL, "no step callback");
  vt = counter_vtable();
  vt.obs_dim = 0;
  MRL_CHECK(mrl_env_create(&vt, &c) == NULL, "obs_dim 0");
  vt = counter_vtable();
  vt.action_dim = 2;
  MRL_CHECK(mrl_env_create(&vt, &c) == NULL, "discrete with action_dim 2");
  vt = counter_vtable();
  vt.max_episode_steps = -1;
  MRL_CHECK(mrl_env_create(&vt, &c) == NULL, "negative time limit");
  MRL_CHECK(mrl_env_create(NULL, &c) == NULL, "NULL table");
  MRL_CHECK(c.destroyed == 1, "failed creates do not destroy self");
}

/* A box-action environment: echoes the action it receives. */
static mrl_result echo_reset(void *self, uint64_t seed, float *obs) {
  (void)self;
  (void)seed;
  obs[0] = obs[1] = 0.0f;
  return MRL_OK;
}

static mrl_result echo_step(void *self, const float *action, float *obs, float *reward,
                            int *terminated, int *truncated) {
  (void)self;
  obs[0] = action[0];
  obs[1] = action[1];
  *reward = 0.0f;
  *terminated = *truncated = 0;
  return MRL_OK;
}

static void test_box_actions(void) {
  const float lo[2] = {-1.0f, 0.0f}, hi[2] = {1.0f, 2.0f};
  mrl_env_vtable vt;
  mrl_env *env;
  float o[2], r, a[2];
  int te, tu;
  memset(&vt, 0, sizeof vt);
  vt.obs_dim = 2;
  vt.num_actions = 0;
  vt.action_dim = 2;
  vt.action_low = lo;
  vt.action_high = hi;
  vt.reset = echo_reset;
  vt.step = echo_step;
  env = mrl_env_create(&vt, NULL);
  MRL_CHECK(env != NULL, "box env created");
  if (!env) return;
  MRL_CHECK(strcmp(mrl_env_id(env), "custom") == 0, "default id");
  MRL_CHECK(mrl_env_num_actions(env) == 0 && mrl_env_action_dim(env) == 2, "box dims");
  MRL_CHECK(mrl_env_episode_success(env) == -1, "no success callback: -1");
  mrl_env_reset(env, 0, o);
  a[0] = 5.0f;
  a[1] = -3.0f;
  MRL_CHECK(mrl_env_step(env, a, o, &r, &te, &tu) == MRL_OK, "out-of-bounds action accepted");
  MRL_CHECK(o[0] == 1.0f && o[1] == 0.0f, "clipped to the bounds (%g, %g)", (double)o[0],
            (double)o[1]);
  MRL_CHECK(a[0] == 5.0f && a[1] == -3.0f, "caller's action not modified");
  a[0] = 0.25f;
  a[1] = 1.5f;
  mrl_env_step(env, a, o, &r, &te, &tu);
  MRL_CHECK(o[0] == 0.25f && o[1] == 1.5f, "in-bounds action passed unchanged");
  a[1] = NAN;
  MRL_CHECK(mrl_env_step(env, a, o, &r, &te, &tu) == MRL_ERR_INVALID_ACTION, "NaN rejected");
  a[1] = INFINITY;
  MRL_CHECK(mrl_env_step(env, a, o, &r, &te, &tu) == MRL_ERR_INVALID_ACTION,
            "infinity rejected, not clipped");
  MRL_CHECK(mrl_env_episode_length(env) == 2, "rejected steps not counted");
  mrl_env_free(env);

  vt.action_low = vt.action_high = NULL; /* unbounded */
  env = mrl_env_create(&vt, NULL);
  if (!env) return;
  mrl_env_reset(env, 0, o);
  a[0] = 1e30f;
  a[1] = -1e30f;
  mrl_env_step(env, a, o, &r, &te, &tu);
  MRL_CHECK(o[0] == 1e30f && o[1] == -1e30f, "no bounds: no clipping");
  mrl_env_free(env);
}

/* ---- vector environment ------------------------------------------------- */

static void test_vecenv_autoreset(void) {
  enum { N = 4 };
  const uint64_t seed = 123;
  mrl_vecenv v;
  mrl_env *twin[N];
  uint64_t episode[N];
  float tobs[N][4], actions[N];
  int i, t, ok = 1, ends = 0;
  MRL_CHECK(mrl_vecenv_init(&v, "CartPole-v1", N, seed) == MRL_OK, "vecenv init");
  MRL_CHECK(v.num_envs == N && v.obs_dim == 4 && v.num_actions == 2 && v.action_dim == 1,
            "vecenv dims");
  for (i = 0; i < N; i++) actions[i] = 1.0f;
  MRL_CHECK(mrl_vecenv_step(&v, actions) == MRL_ERR_NOT_RESET, "vecenv step before reset");
  MRL_CHECK(mrl_vecenv_reset(&v) == MRL_OK, "vecenv reset");
  for (i = 0; i < N; i++) {
    twin[i] = mrl_env_make("CartPole-v1");
    episode[i] = 0;
    mrl_env_reset(twin[i], mrl_vecenv_episode_seed(seed, i, episode[i]++), tobs[i]);
    MRL_CHECK(memcmp(tobs[i], v.obs + i * 4, sizeof tobs[i]) == 0, "env %d first obs", i);
    MRL_CHECK(v.episodes_started[i] == 1, "one episode started");
  }
  MRL_CHECK(memcmp(v.obs, v.obs + 4, 4 * sizeof(float)) != 0, "envs start differently");
  for (t = 0; t < 100; t++) {
    for (i = 0; i < N; i++) actions[i] = (float)((t + i) % 3 == 0 ? 0 : 1);
    if (mrl_vecenv_step(&v, actions) != MRL_OK) ok = 0;
    for (i = 0; i < N; i++) {
      float r;
      int te, tu;
      mrl_env_step(twin[i], &actions[i], tobs[i], &r, &te, &tu);
      if (v.rewards[i] != r || v.terminated[i] != te || v.truncated[i] != tu) ok = 0;
      if (te || tu) {
        if (memcmp(v.final_obs + i * 4, tobs[i], sizeof tobs[i]) != 0) ok = 0;
        ends++;
        if (v.episode_length[i] != mrl_env_episode_length(twin[i])) ok = 0;
        if (v.episode_return[i] != (float)mrl_env_episode_length(twin[i])) ok = 0;
        if (v.episode_success[i] != -1) ok = 0;
        mrl_env_reset(twin[i], mrl_vecenv_episode_seed(seed, i, episode[i]++), tobs[i]);
        if (memcmp(v.obs + i * 4, tobs[i], sizeof tobs[i]) != 0) ok = 0;
      } else {
        if (memcmp(v.obs + i * 4, tobs[i], sizeof tobs[i]) != 0) ok = 0;
        if (v.episode_length[i] != 0 || v.episode_return[i] != 0.0f) ok = 0;
        if (v.episode_success[i] != -1) ok = 0;
      }
      if (v.episodes_started[i] != episode[i]) ok = 0;
    }
  }
  MRL_CHECK(ok, "vecenv equals per-env twins seeded with episode seeds (final_obs, returns, "
                "lengths, reset obs)");
  MRL_CHECK(ends > 4, "several episodes ended (%d)", ends);
  MRL_CHECK(v.total_steps == 100, "total_steps");
  for (i = 0; i < N; i++) mrl_env_free(twin[i]);
  mrl_vecenv_free(&v);
  mrl_vecenv_free(&v); /* twice is fine */
}

static void run_vec(mrl_vecenv *v, int steps, uint64_t action_seed, float *trace) {
  mrl_rng r = mrl_rng_make(action_seed);
  float actions[8];
  int t, i, n = v->num_envs, d = v->obs_dim;
  for (t = 0; t < steps; t++) {
    for (i = 0; i < n; i++) actions[i] = (float)mrl_rng_below(&r, (uint32_t)v->num_actions);
    mrl_vecenv_step(v, actions);
    for (i = 0; i < n * d; i++) *trace++ = v->obs[i];
    for (i = 0; i < n; i++) *trace++ = v->rewards[i] + (float)(2 * v->terminated[i]);
  }
}

static void test_vecenv_determinism(void) {
  enum { N = 5, T = 300 };
  const char *ids[2] = {"CartPole-v1", "TMaze-3"};
  int k;
  for (k = 0; k < 2; k++) {
    mrl_vecenv a, b, c;
    static float ta[T * N * 5], tb[T * N * 5], tc[T * N * 5];
    memset(ta, 0, sizeof ta);
    memset(tb, 0, sizeof tb);
    memset(tc, 0, sizeof tc);
    mrl_vecenv_init(&a, ids[k], N, 9);
    mrl_vecenv_init(&b, ids[k], N, 9);
    mrl_vecenv_init(&c, ids[k], N, 10);
    mrl_vecenv_reset(&a);
    mrl_vecenv_reset(&b);
    mrl_vecenv_reset(&c);
    run_vec(&a, T, 1, ta);
    run_vec(&b, T, 1, tb);
    run_vec(&c, T, 1, tc);
    MRL_CHECK(memcmp(ta, tb, sizeof ta) == 0, "%s: same seed, same vector run", ids[k]);
    MRL_CHECK(memcmp(ta, tc, sizeof ta) != 0, "%s: other seed, other run", ids[k]);
    /* reseed + reset replays from the start */
    mrl_vecenv_reseed(&b, 9);
    MRL_CHECK(mrl_vecenv_step(&b, NULL) == MRL_ERR_NOT_RESET, "reseed requires a reset");
    mrl_vecenv_reset(&b);
    memset(tb, 0, sizeof tb);
    run_vec(&b, T, 1, tb);
    MRL_CHECK(memcmp(ta, tb, sizeof ta) == 0, "%s: reseed replays the run", ids[k]);
    mrl_vecenv_free(&a);
    mrl_vecenv_free(&b);
    mrl_vecenv_free(&c);
  }
}

static void test_vecenv_invalid(void) {
  enum { N = 4 };
  mrl_vecenv a, b;
  float actions[N], snap_obs[N * 4], snap_fin[N * 4], snap_rew[N];
  int i, t, ok = 1;
  long long steps;
  mrl_vecenv_init(&a, "CartPole-v1", N, 31);
  mrl_vecenv_init(&b, "CartPole-v1", N, 31);
  mrl_vecenv_reset(&a);
  mrl_vecenv_reset(&b);
  for (t = 0; t < 7; t++) {
    for (i = 0; i < N; i++) actions[i] = (float)((t * 7 + i) % 2);
    mrl_vecenv_step(&a, actions);
    mrl_vecenv_step(&b, actions);
  }
  memcpy(snap_obs, a.obs, sizeof snap_obs);
  memcpy(snap_fin, a.final_obs, sizeof snap_fin);
  memcpy(snap_rew, a.rewards, sizeof snap_rew);
  steps = a.total_steps;
  for (i = 0; i < N; i++) actions[i] = 1.0f;
  actions[2] = 3.0f; /* env 2 gets a bad action; 0 and 1 come first */
  MRL_CHECK(mrl_vecenv_step(&a, actions) == MRL_ERR_INVALID_ACTION, "bad action in env 2");
  actions[2] = NAN;
  MRL_CHECK(mrl_vecenv_step(&a, actions) == MRL_ERR_INVALID_ACTION, "NaN in env 2");
  MRL_CHECK(memcmp(snap_obs, a.obs, sizeof snap_obs) == 0 &&
                memcmp(snap_fin, a.final_obs, sizeof snap_fin) == 0 &&
                memcmp(snap_rew, a.rewards, sizeof snap_rew) == 0 && a.total_steps == steps,
            "vector outputs untouched");
  for (i = 0; i < N; i++)
    MRL_CHECK(mrl_env_episode_length(a.envs[i]) == mrl_env_episode_length(b.envs[i]),
              "env %d not stepped", i);
  for (t = 0; t < 50; t++) {
    for (i = 0; i < N; i++) actions[i] = (float)((t + i) % 2);
    mrl_vecenv_step(&a, actions);
    mrl_vecenv_step(&b, actions);
    if (memcmp(a.obs, b.obs, sizeof snap_obs) != 0 ||
        memcmp(a.rewards, b.rewards, sizeof snap_rew) != 0)
      ok = 0;
  }
  MRL_CHECK(ok, "after the rejected step the vector runs as its twin");
  mrl_vecenv_free(&a);
  mrl_vecenv_free(&b);
}

static void test_vecenv_init_errors(void) {
  mrl_vecenv v;
  mrl_env *envs[2];
  MRL_CHECK(mrl_vecenv_init(&v, "Nope-v0", 3, 1) == MRL_ERR_UNKNOWN_ENV, "unknown id");
  MRL_CHECK(mrl_vecenv_init(&v, NULL, 3, 1) == MRL_ERR_UNKNOWN_ENV, "NULL id");
  MRL_CHECK(mrl_vecenv_init(&v, "CartPole-v1", 0, 1) == MRL_ERR_INVALID_ARGUMENT, "0 envs");
  mrl_vecenv_free(&v);
  envs[0] = mrl_env_make("CartPole-v1");
  envs[1] = mrl_env_make("StatelessCartPole-v1");
  MRL_CHECK(mrl_vecenv_init_envs(&v, envs, 2, 1) == MRL_ERR_INVALID_ARGUMENT, "dims differ");
  mrl_env_free(envs[1]); /* still ours after the failure */
  envs[1] = mrl_env_make("CartPole-v1");
  MRL_CHECK(mrl_vecenv_init_envs(&v, envs, 2, 1) == MRL_OK, "init_envs");
  MRL_CHECK(mrl_vecenv_reset(&v) == MRL_OK, "reset");
  mrl_vecenv_free(&v); /* frees both */
  /* more envs than the internal stack array */
  MRL_CHECK(mrl_vecenv_init(&v, "TMaze-2", 40, 1) == MRL_OK, "40 envs");
  MRL_CHECK(mrl_vecenv_reset(&v) == MRL_OK, "reset 40");
  mrl_vecenv_free(&v);
}

static void test_tmaze_vecenv_success(void) {
  enum { N = 6 };
  mrl_vecenv v;
  mrl_episode_stats st;
  float actions[N];
  int i, t, ends = 0, wins = 0, ok = 1;
  mrl_vecenv_init(&v, "TMaze-2", N, 77);
  mrl_vecenv_reset(&v);
  mrl_episode_stats_init(&st);
  /* a perfect memory policy: remember the cue per env */
  {
    int goal[N];
    for (i = 0; i < N; i++) goal[i] = v.obs[i * 3] == 0.0f ? 0 : 1;
    for (t = 0; t < 60; t++) {
      for (i = 0; i < N; i++) {
        const float *o = v.obs + i * 3;
        if (o[0] == 0.0f && o[1] == 1.0f && o[2] == 0.0f)
          actions[i] = goal[i] == 0 ? 0.0f : 2.0f;
        else
          actions[i] = 1.0f;
      }
      mrl_vecenv_step(&v, actions);
      mrl_episode_stats_add_vecenv(&st, &v);
      for (i = 0; i < N; i++) {
        if (v.terminated[i] || v.truncated[i]) {
          ends++;
          wins += v.episode_success[i] == 1;
          if (v.episode_length[i] != 3 || v.episode_return[i] != 4.0f) ok = 0;
          goal[i] = v.obs[i * 3] == 0.0f ? 0 : 1;     /* cue of the new episode */
          if (v.final_obs[i * 3 + 1] != 0.0f) ok = 0; /* terminal obs 000 */
        }
      }
    }
  }
  MRL_CHECK(ends == N * 20 && wins == ends, "memory policy wins every episode (%d/%d)", wins, ends);
  MRL_CHECK(ok, "episode length 3, return 4");
  MRL_CHECK(st.total_episodes == ends, "stats counted every episode");
  MRL_CHECK(mrl_episode_stats_success_rate(&st) == 1.0f, "success rate 1");
  MRL_CHECK(mrl_episode_stats_mean_return(&st) == 4.0f, "mean return 4");
  MRL_CHECK(mrl_episode_stats_mean_length(&st) == 3.0f, "mean length 3");
  mrl_vecenv_free(&v);
}

static void test_episode_stats(void) {
  mrl_episode_stats s;
  int i;
  mrl_episode_stats_init(&s);
  MRL_CHECK(mrl_episode_stats_mean_return(&s) == 0.0f, "empty mean 0");
  MRL_CHECK(mrl_episode_stats_success_rate(&s) == -1.0f, "empty success -1");
  for (i = 0; i < 150; i++) mrl_episode_stats_add(&s, (float)i, 2 * i, i % 4 == 0 ? 1 : 0);
  MRL_CHECK(s.count == 100 && s.total_episodes == 150, "window holds 100 of 150");
  MRL_CHECK_NEAR(mrl_episode_stats_mean_return(&s), 99.5, 1e-4, 0, "mean of 50..149");
  MRL_CHECK_NEAR(mrl_episode_stats_mean_length(&s), 199.0, 1e-4, 0, "mean length");
  MRL_CHECK_NEAR(mrl_episode_stats_success_rate(&s), 0.25, 1e-6, 0, "success 1 in 4");
  mrl_episode_stats_init(&s);
  for (i = 0; i < 10; i++) mrl_episode_stats_add(&s, 1.0f, 1, -1);
  MRL_CHECK(mrl_episode_stats_success_rate(&s) == -1.0f, "no success info: -1");
  mrl_episode_stats_add(&s, 1.0f, 1, 1);
  mrl_episode_stats_add(&s, 1.0f, 1, 0);
  MRL_CHECK(mrl_episode_stats_success_rate(&s) == 0.5f, "only reporting episodes count");
}

/* ---- every registered family: a well-formed pattern and a renderer ------- */

/* An example id from a registry pattern: "<A|B|C>" becomes its alt-th
 * alternative (the last when there are fewer); the other placeholders take
 * 5, 3, 2 in turn (valid for every family); optional "[...]" parts are kept
 * when full, else dropped. */
static void example_id(const char *pattern, int full, int alt, char *out, size_t size) {
  static const char *const fill[3] = {"5", "3", "2"};
  size_t at = 0;
  int depth = 0, next = 0;
  const char *p;
  for (p = pattern; *p && at + 2 < size; p++) {
    if (*p == '[') {
      depth++;
      continue;
    }
    if (*p == ']') {
      depth--;
      continue;
    }
    if (depth > 0 && !full) {
      if (*p == '<') next++; /* a skipped placeholder still uses its number */
      if (*p == '<') p = strchr(p, '>');
      continue;
    }
    if (*p == '<') {
      const char *end = strchr(p, '>'), *bar = strchr(p, '|');
      if (bar && bar < end) { /* alternatives */
        const char *from = p + 1;
        int k;
        for (k = 0; k < alt && bar && bar < end; k++) {
          from = bar + 1;
          bar = strchr(from, '|');
        }
        if (!bar || bar > end) bar = end;
        memcpy(out + at, from, (size_t)(bar - from));
        at += (size_t)(bar - from);
      } else {
        const char *f = fill[next < 3 ? next : 2];
        next++;
        memcpy(out + at, f, strlen(f));
        at += strlen(f);
      }
      p = end;
      continue;
    }
    out[at++] = *p;
  }
  out[at] = '\0';
}

static void test_registry_render(void) {
  mrl_env_info info;
  int i, n = mrl_env_list(0, NULL), full;
  MRL_CHECK(n >= 27, "registry has every family (%d)", n);
  for (i = 0; i < n; i++) {
    MRL_CHECK(mrl_env_list(i, &info) == n && info.pattern && info.description && info.make,
              "entry %d complete", i);
    for (full = 0; full < 2; full++) {
      char id[128], text[4096], small[8];
      float obs[1024], act[2] = {0.0f, 0.0f}, r;
      int te, tu, len, len0, len_small;
      mrl_env *env;
      example_id(info.pattern, full, 0, id, sizeof id);
      env = mrl_env_make(id);
      MRL_CHECK(env != NULL, "example id %s of %s made", id, info.pattern);
      if (!env) continue;
      {
        mrl_env *direct = info.make(id);
        MRL_CHECK(direct != NULL, "its own family makes %s", id);
        mrl_env_free(direct);
      }
      if (mrl_env_obs_dim(env) > 1024) {
        mrl_env_free(env);
        continue;
      }
      mrl_env_reset(env, 1, obs);
      len = mrl_env_render(env, text, sizeof text);
      MRL_CHECK(len > 0 && (size_t)len < sizeof text && strlen(text) == (size_t)len,
                "%s renders (%d chars)", id, len);
      len0 = mrl_env_render(env, NULL, 0);
      len_small = mrl_env_render(env, small, sizeof small);
      MRL_CHECK(len0 == len && len_small == len && strlen(small) == (len < 7 ? (size_t)len : 7u),
                "%s: snprintf semantics", id);
      if (mrl_env_num_actions(env) == 0) act[0] = act[1] = 0.05f;
      mrl_env_step(env, act, obs, &r, &te, &tu);
      len = mrl_env_render(env, text, sizeof text);
      MRL_CHECK(len > 0 && strlen(text) == (size_t)len, "%s renders after a step", id);
      mrl_env_free(env);
    }
  }
}

/* ---- step_delta: the in-place observation update of vector envs ---------- */

/* A ticker: obs = [ticks, 7]. step rewrites both entries; step_delta only
 * the first, trusting the 7 to be still there. Counts which one ran. */
typedef struct ticker_env {
  int ticks, full_steps, delta_steps;
} ticker_env;

static mrl_result ticker_reset(void *self, uint64_t seed, float *obs) {
  ticker_env *t = (ticker_env *)self;
  (void)seed;
  t->ticks = 0;
  obs[0] = 0.0f;
  obs[1] = 7.0f;
  return MRL_OK;
}

/* the entry that changes, and the step's outputs */
static mrl_result ticker_tick(ticker_env *t, float *obs, float *reward, int *terminated,
                              int *truncated) {
  obs[0] = (float)++t->ticks;
  *reward = 0.0f;
  *terminated = *truncated = 0;
  return MRL_OK;
}

static mrl_result ticker_step(void *self, const float *action, float *obs, float *reward,
                              int *terminated, int *truncated) {
  ticker_env *t = (ticker_env *)self;
  (void)action;
  t->full_steps++;
  obs[1] = 7.0f;
  return ticker_tick(t, obs, reward, terminated, truncated);
}

static mrl_result ticker_step_delta(void *self, const float *action, float *obs, float *reward,
                                    int *terminated, int *truncated) {
  ticker_env *t = (ticker_env *)self;
  (void)action;
  t->delta_steps++;
  return ticker_tick(t, obs, reward, terminated, truncated);
}

static void test_vecenv_step_delta(void) {
  ticker_env t = {0, 0, 0};
  mrl_env_vtable vt;
  mrl_env *env, *envs[1];
  mrl_vecenv v;
  float a = 0.0f, o[2], r;
  int te, tu;
  memset(&vt, 0, sizeof vt);
  vt.obs_dim = 2;
  vt.num_actions = 1;
  vt.action_dim = 1;
  vt.reset = ticker_reset;
  vt.step = ticker_step;
  vt.step_delta = ticker_step_delta;
  env = mrl_env_create(&vt, &t);
  MRL_CHECK(env != NULL, "ticker created");
  if (!env) return;
  /* the single-env API never assumes the caller's buffer is untouched */
  mrl_env_reset(env, 0, o);
  mrl_env_step(env, &a, o, &r, &te, &tu);
  mrl_env_step(env, &a, o, &r, &te, &tu);
  MRL_CHECK(t.full_steps == 2 && t.delta_steps == 0, "mrl_env_step steps in full");
  envs[0] = env;
  MRL_CHECK(mrl_vecenv_init_envs(&v, envs, 1, 0) == MRL_OK && v.obs_updates_in_place == 1,
            "vector owns the ticker, in-place updates on by default");
  mrl_vecenv_reset(&v);
  mrl_vecenv_step(&v, &a);
  mrl_vecenv_step(&v, &a);
  MRL_CHECK(t.full_steps == 2 && t.delta_steps == 2 && v.obs[0] == 2.0f && v.obs[1] == 7.0f,
            "the vector updates its row in place");
  /* someone else's step into another buffer: the row no longer holds the
   * environment's last observation, so the next vector step is in full */
  mrl_env_step(v.envs[0], &a, o, &r, &te, &tu);
  v.obs[1] = -1.0f;
  mrl_vecenv_step(&v, &a);
  MRL_CHECK(t.full_steps == 4 && t.delta_steps == 2 && v.obs[0] == 4.0f && v.obs[1] == 7.0f,
            "a step elsewhere in between: the next vector step writes everything");
  mrl_vecenv_step(&v, &a);
  MRL_CHECK(t.delta_steps == 3, "then in place again");
  v.obs_updates_in_place = 0; /* the user writes into obs */
  v.obs[1] = -1.0f;
  mrl_vecenv_step(&v, &a);
  MRL_CHECK(t.full_steps == 5 && t.delta_steps == 3 && v.obs[0] == 6.0f && v.obs[1] == 7.0f,
            "opted out: every step in full");
  mrl_vecenv_free(&v);
}

/* A vector of three against three twins stepped one by one (the same
 * episode seeds, random actions), for T steps. in_place 1: the vector may
 * update obs in place (step_delta where the environment has one); 0: opted
 * out, with the vector's obs overwritten by NaN before every step, so each
 * step must write its whole observation. */
static void check_vecenv_twins(const char *id, int in_place, uint64_t action_seed) {
  enum { N = 3, T = 300 };
  mrl_vecenv v;
  mrl_env *twin[N];
  uint64_t episode[N];
  mrl_rng rng = mrl_rng_make(action_seed);
  float *tobs, *actions;
  int i, t, k, od, ad, na, ok = 1, made = 0;
  if (mrl_vecenv_init(&v, id, N, 77) != MRL_OK) {
    MRL_CHECK(0, "%s: vector made", id);
    return;
  }
  od = v.obs_dim;
  ad = v.action_dim;
  na = v.num_actions;
  v.obs_updates_in_place = in_place;
  tobs = (float *)malloc(sizeof(float) * (size_t)(N * od));
  actions = (float *)malloc(sizeof(float) * (size_t)(N * ad));
  mrl_vecenv_reset(&v);
  for (i = 0; i < N; i++) {
    twin[i] = mrl_env_make(id);
    made += twin[i] != NULL;
    episode[i] = 0;
    if (twin[i] && tobs)
      mrl_env_reset(twin[i], mrl_vecenv_episode_seed(77, i, episode[i]++), tobs + i * od);
  }
  if (made < N || !tobs || !actions) ok = 0;
  for (t = 0; ok && t < T; t++) {
    for (k = 0; k < N * ad; k++)
      actions[k] = na > 0 ? (float)mrl_rng_below(&rng, (uint32_t)na)
                          : mrl_rng_uniform_range(&rng, -1.5f, 1.5f);
    if (!in_place)
      for (k = 0; k < N * od; k++) v.obs[k] = NAN;
    if (mrl_vecenv_step(&v, actions) != MRL_OK) ok = 0;
    for (i = 0; ok && i < N; i++) {
      float r;
      int te, tu;
      mrl_env_step(twin[i], actions + i * ad, tobs + i * od, &r, &te, &tu);
      if (v.rewards[i] != r || v.terminated[i] != te || v.truncated[i] != tu) ok = 0;
      if (te || tu) {
        if (memcmp(v.final_obs + i * od, tobs + i * od, sizeof(float) * (size_t)od)) ok = 0;
        mrl_env_reset(twin[i], mrl_vecenv_episode_seed(77, i, episode[i]++), tobs + i * od);
      }
      if (memcmp(v.obs + i * od, tobs + i * od, sizeof(float) * (size_t)od)) ok = 0;
    }
  }
  MRL_CHECK(ok, "%s: vector %s equals its twins for %d steps", id,
            in_place ? "(updating in place)" : "(obs scribbled over)", T);
  for (i = 0; i < N; i++) mrl_env_free(twin[i]);
  free(tobs);
  free(actions);
  mrl_vecenv_free(&v);
}

/* Every registered environment, every alternative of its pattern (e.g. the
 * three POPGym levels), with and without its optional parts; then wrapped
 * environments, whose tables are built from the inner one's. */
static void test_registry_vecenv_twins(void) {
  static const char *const wrapped[3] = {"ConcentrationHard-v0|prev_action_reward",
                                         "ConcentrationEasy-v0|obs_noise:0.1|frame_stack:2",
                                         "ConcentrationMedium-v0|time_limit:50"};
  mrl_env_info info;
  int e, n = mrl_env_list(0, NULL), variant, j;
  for (e = 0; e < n; e++) {
    char ids[6][128];
    for (variant = 0; variant < 6; variant++) {
      int seen = 0;
      mrl_env_list(e, &info);
      example_id(info.pattern, variant & 1, variant >> 1, ids[variant], sizeof ids[variant]);
      for (j = 0; j < variant; j++) seen |= strcmp(ids[j], ids[variant]) == 0;
      if (seen) continue;
      check_vecenv_twins(ids[variant], 1, 5 + (uint64_t)e);
      check_vecenv_twins(ids[variant], 0, 5 + (uint64_t)e);
    }
  }
  for (j = 0; j < 3; j++) {
    check_vecenv_twins(wrapped[j], 1, 3);
    check_vecenv_twins(wrapped[j], 0, 3);
  }
}

/* ---- non-finite values from a user environment -------------------------- */

/* Returns finite values except one bad value: kind 0 a NaN reward, 1 an
 * infinite obs[1], 2 a NaN obs[0] at reset, at step `bad_step` (counting
 * from 1, over the environment's whole life) or at reset number
 * `bad_step` (kind 2). Episodes end after `len` steps. */
typedef struct glitch_env {
  int kind, bad_step, len, steps, resets, t;
} glitch_env;

static mrl_result glitch_reset(void *self, uint64_t seed, float *obs) {
  glitch_env *g = (glitch_env *)self;
  (void)seed;
  g->t = 0;
  g->resets++;
  obs[0] = g->kind == 2 && g->resets == g->bad_step ? (float)NAN : 0.0f;
  obs[1] = 1.0f;
  return MRL_OK;
}

static mrl_result glitch_step(void *self, const float *action, float *obs, float *reward,
                              int *terminated, int *truncated) {
  glitch_env *g = (glitch_env *)self;
  int bad = ++g->steps == g->bad_step;
  (void)action;
  g->t++;
  obs[0] = (float)g->t;
  obs[1] = g->kind == 1 && bad ? (float)INFINITY : 1.0f;
  *reward = g->kind == 0 && bad ? (float)NAN : 1.0f;
  *terminated = g->t >= g->len;
  *truncated = 0;
  return MRL_OK;
}

/* Three glitch envs (index 0..2), env `which` misbehaving; runs up to 20
 * vector steps and returns the first failure (or MRL_OK) in *res. */
static void glitch_run(glitch_env *gs, int which, int kind, int bad_step, int delta, mrl_vecenv *v,
                       mrl_result *res, int *vector_steps) {
  mrl_env_vtable vt;
  mrl_env *envs[3];
  float actions[3] = {0, 1, 0};
  int i;
  memset(&vt, 0, sizeof vt);
  vt.id = "Glitch-v0";
  vt.obs_dim = 2;
  vt.num_actions = 2;
  vt.action_dim = 1;
  vt.reset = glitch_reset;
  vt.step = glitch_step;
  vt.step_delta = delta ? glitch_step : NULL; /* rewrites the whole row: a valid delta */
  for (i = 0; i < 3; i++) {
    gs[i].kind = i == which ? kind : -1;
    gs[i].bad_step = bad_step;
    gs[i].len = 4;
    gs[i].steps = gs[i].resets = gs[i].t = 0;
    envs[i] = mrl_env_create(&vt, &gs[i]);
  }
  *vector_steps = 0;
  *res = mrl_vecenv_init_envs(v, envs, 3, 7);
  if (*res != MRL_OK) return;
  *res = mrl_vecenv_reset(v);
  while (*res == MRL_OK && *vector_steps < 20) {
    *res = mrl_vecenv_step(v, actions);
    if (*res == MRL_OK) ++*vector_steps;
  }
}

static void test_vecenv_non_finite(void) {
  glitch_env gs[3];
  mrl_vecenv v;
  mrl_result r;
  int steps, i, clean = 1;
  float actions[3] = {0, 0, 0};
  /* a NaN reward at env 2's step 6: episode 2 (4 steps each), its step 2 */
  glitch_run(gs, 2, 0, 6, 0, &v, &r, &steps);
  MRL_CHECK(r == MRL_ERR_NON_FINITE, "NaN reward: got %s", mrl_result_string(r));
  MRL_CHECK(steps == 5, "NaN reward: failed after %d good vector steps, want 5", steps);
  MRL_CHECK(strstr(v.error, "mrl_vecenv_step") && strstr(v.error, "environment 2 (Glitch-v0)") &&
                strstr(v.error, "reward nan") && strstr(v.error, "step 2 of its episode") &&
                strstr(v.error, "vector step 5"),
            "NaN reward message: \"%s\"", v.error);
  MRL_CHECK(mrl_vecenv_step(&v, actions) == MRL_ERR_NOT_RESET, "a reset is needed after it");
  MRL_CHECK(mrl_vecenv_reset(&v) == MRL_OK, "the reset recovers");
  MRL_CHECK(mrl_vecenv_step(&v, actions) == MRL_OK, "and stepping goes on");
  mrl_vecenv_free(&v);
  /* an infinite obs[1] from env 1 at its step 3 */
  glitch_run(gs, 1, 1, 3, 0, &v, &r, &steps);
  MRL_CHECK(r == MRL_ERR_NON_FINITE && steps == 2, "inf obs: %s after %d steps",
            mrl_result_string(r), steps);
  MRL_CHECK(strstr(v.error, "environment 1 (Glitch-v0)") && strstr(v.error, "obs[1] = inf") &&
                strstr(v.error, "step 3 of its episode"),
            "inf obs message: \"%s\"", v.error);
  mrl_vecenv_free(&v);
  /* a NaN observation at env 0's first reset (mrl_vecenv_reset) */
  glitch_run(gs, 0, 2, 1, 0, &v, &r, &steps);
  MRL_CHECK(r == MRL_ERR_NON_FINITE && steps == 0, "NaN reset obs: %s after %d steps",
            mrl_result_string(r), steps);
  MRL_CHECK(strstr(v.error, "mrl_vecenv_reset: environment 0") && strstr(v.error, "obs[0] = nan") &&
                strstr(v.error, "reset of its episode 0"),
            "NaN reset message: \"%s\"", v.error);
  MRL_CHECK(mrl_vecenv_step(&v, actions) == MRL_ERR_NOT_RESET, "not ready after a bad reset");
  mrl_vecenv_free(&v);
  /* ... and at its third reset: the auto-reset after episode 2 */
  glitch_run(gs, 0, 2, 3, 0, &v, &r, &steps);
  MRL_CHECK(r == MRL_ERR_NON_FINITE && steps == 7, "NaN auto-reset obs: %s after %d steps",
            mrl_result_string(r), steps);
  MRL_CHECK(strstr(v.error, "mrl_vecenv_step: environment 0") &&
                strstr(v.error, "reset of its episode 2"),
            "NaN auto-reset message: \"%s\"", v.error);
  mrl_vecenv_free(&v);
  /* an environment stepped in place (step_delta) still has its reward and
   * its resets checked */
  glitch_run(gs, 1, 0, 7, 1, &v, &r, &steps);
  MRL_CHECK(r == MRL_ERR_NON_FINITE && steps == 6 && strstr(v.error, "environment 1") &&
                strstr(v.error, "reward nan"),
            "NaN reward of a step_delta env: %s after %d steps, \"%s\"", mrl_result_string(r),
            steps, v.error);
  mrl_vecenv_free(&v);
  glitch_run(gs, 2, 2, 2, 1, &v, &r, &steps);
  MRL_CHECK(r == MRL_ERR_NON_FINITE && steps == 3 && strstr(v.error, "reset of its episode 1"),
            "NaN reset obs of a step_delta env: %s after %d steps, \"%s\"", mrl_result_string(r),
            steps, v.error);
  mrl_vecenv_free(&v);
  /* finite values pass, and the message stays empty */
  glitch_run(gs, 0, -1, 1, 0, &v, &r, &steps);
  MRL_CHECK(r == MRL_OK && steps == 20 && v.error[0] == '\0', "clean run: %s, \"%s\"",
            mrl_result_string(r), v.error);
  for (i = 0; i < 3 * 2; i++) clean &= v.obs[i] - v.obs[i] == 0.0f;
  MRL_CHECK(clean, "clean run: obs finite");
  mrl_vecenv_free(&v);
}

/* The same mrl_env twice would be stepped twice per vector step and freed
 * twice by mrl_vecenv_free. */
static void test_vecenv_duplicate_env(void) {
  mrl_vecenv v;
  mrl_env *envs[3], *inner;
  envs[0] = mrl_env_make("CartPole-v1");
  envs[1] = mrl_env_make("CartPole-v1");
  envs[2] = envs[0];
  MRL_CHECK(mrl_vecenv_init_envs(&v, envs, 3, 1) == MRL_ERR_INVALID_ARGUMENT,
            "the same env twice is rejected");
  MRL_CHECK(strstr(v.error, "envs[0] and envs[2]") && strstr(v.error, "CartPole-v1"),
            "duplicate message: \"%s\"", v.error);
  mrl_vecenv_free(&v);
  /* an env and a wrapper around it */
  inner = envs[0];
  mrl_env_free(envs[1]);
  envs[0] = mrl_env_make("CartPole-v1");
  envs[1] = inner;
  envs[2] = mrl_env_wrap_time_limit(inner, 50);
  MRL_CHECK(mrl_vecenv_init_envs(&v, envs, 3, 1) == MRL_ERR_INVALID_ARGUMENT &&
                strstr(v.error, "envs[1] and envs[2]"),
            "an env and its wrapper: \"%s\"", v.error);
  mrl_vecenv_free(&v);
  /* the envs stayed ours: each freed once (envs[2] frees inner) */
  mrl_env_free(envs[0]);
  mrl_env_free(envs[2]);
}

/* A NULL env gets the documented empty answers from every getter. */
static void test_env_getters_null(void) {
  char buf[8];
  double x = 1.0;
  float task[2] = {7.0f, 7.0f};
  MRL_CHECK(mrl_env_id(NULL) == NULL, "id(NULL)");
  MRL_CHECK(mrl_env_obs_dim(NULL) == 0 && mrl_env_num_actions(NULL) == 0 &&
                mrl_env_action_dim(NULL) == 0 && mrl_env_max_episode_steps(NULL) == 0,
            "dimensions of NULL are 0");
  MRL_CHECK(mrl_env_episode_success(NULL) == -1 && mrl_env_episode_return(NULL) == 0.0f &&
                mrl_env_episode_length(NULL) == 0,
            "episode statistics of NULL");
  MRL_CHECK(mrl_env_self(NULL) == NULL && mrl_env_inner(NULL) == NULL, "self/inner of NULL");
  MRL_CHECK(mrl_env_render(NULL, buf, sizeof buf) == -1 && mrl_env_task_dim(NULL) == 0,
            "render/task_dim of NULL");
  mrl_env_task(NULL, task);
  MRL_CHECK(task[0] == 7.0f, "task(NULL) writes nothing");
  MRL_CHECK(mrl_env_num_params(NULL) == 0 && mrl_env_param_name(NULL, 0) == NULL &&
                mrl_env_param_index(NULL, "gravity") == -1,
            "parameters of NULL");
  MRL_CHECK(mrl_env_get_param(NULL, "gravity", &x) == MRL_ERR_INVALID_ARGUMENT &&
                mrl_env_set_param(NULL, "gravity", 1.0) == MRL_ERR_INVALID_ARGUMENT && x == 1.0,
            "get/set_param of NULL");
  MRL_CHECK(mrl_env_reset(NULL, 1, NULL) == MRL_ERR_INVALID_ARGUMENT &&
                mrl_env_step(NULL, task, NULL, NULL, NULL, NULL) == MRL_ERR_INVALID_ARGUMENT,
            "reset/step of NULL");
}

int main(void) {
  test_cartpole_reset();
  test_cartpole_trajectory();
  test_cartpole_termination_steps();
  test_cartpole_truncation();
  test_stateless_cartpole();
  test_determinism();
  test_invalid_actions();
  test_tmaze_walk();
  test_tmaze_bumps();
  test_tmaze_time_limit();
  test_tmaze_goal_balance();
  test_ids();
  test_custom_env();
  test_box_actions();
  test_vecenv_autoreset();
  test_vecenv_determinism();
  test_vecenv_invalid();
  test_vecenv_init_errors();
  test_tmaze_vecenv_success();
  test_episode_stats();
  test_registry_render();
  test_vecenv_step_delta();
  test_registry_vecenv_twins();
  test_vecenv_non_finite();
  test_vecenv_duplicate_env();
  test_env_getters_null();
  return mrl_test_summary("test_envs");
}
