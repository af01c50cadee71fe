/* Tests of memrl_envs.h's physics parameters and domain randomisation:
 * names and Gymnasium defaults, set/get and rejected values, trajectories
 * against independent reference dynamics with changed constants, the
 * randomising wrapper (ranges, determinism by seed, widening, privileged
 * task output, id syntax, vector env) and its errors.
 * cc -std=c99 -Wall -Wextra -pedantic tests/test_envs_dr.c -lm && ./a.out */
#define MEMRL_ENVS_IMPLEMENTATION
#include "../memrl_envs.h"
#include "test.h"

#include <string.h>

/* ---- independent reference dynamics with free constants ------------------ */

typedef struct ref_cp {
  double x, x_dot, theta, theta_dot;
  double gravity, masscart, masspole, length, force_mag, tau;
} ref_cp;

static void ref_cp_reset(ref_cp *s, uint64_t seed) {
  mrl_rng r = mrl_rng_make(seed);
  s->x = -0.05 + 0.1 * (double)mrl_rng_uniform(&r);
  s->x_dot = -0.05 + 0.1 * (double)mrl_rng_uniform(&r);
  s->theta = -0.05 + 0.1 * (double)mrl_rng_uniform(&r);
  s->theta_dot = -0.05 + 0.1 * (double)mrl_rng_uniform(&r);
}

/* Gymnasium's cartpole.py step, written out again. Returns terminated. */
static int ref_cp_step(ref_cp *s, int action) {
  double total_mass = s->masspole + s->masscart;
  double polemass_length = s->masspole * s->length;
  double force = action == 1 ? s->force_mag : -s->force_mag;
  double costheta = cos(s->theta), sintheta = sin(s->theta);
  double temp = (force + polemass_length * (s->theta_dot * s->theta_dot) * sintheta) / total_mass;
  double thetaacc = (s->gravity * sintheta - costheta * temp) /
                    (s->length * (4.0 / 3.0 - s->masspole * (costheta * costheta) / total_mass));
  double xacc = temp - polemass_length * thetaacc * costheta / total_mass;
  double limit = 12.0 * 2.0 * 3.141592653589793 / 360.0;
  s->x = s->x + s->tau * s->x_dot;
  s->x_dot = s->x_dot + s->tau * xacc;
  s->theta = s->theta + s->tau * s->theta_dot;
  s->theta_dot = s->theta_dot + s->tau * thetaacc;
  return s->x < -2.4 || s->x > 2.4 || s->theta < -limit || s->theta > limit;
}

typedef struct ref_pd {
  double th, thdot;
  double g, m, l, dt, max_speed, max_torque;
} ref_pd;

static void ref_pd_reset(ref_pd *s, uint64_t seed) {
  mrl_rng r = mrl_rng_make(seed);
  s->th = -3.141592653589793 + 2.0 * 3.141592653589793 * (double)mrl_rng_uniform(&r);
  s->thdot = -1.0 + 2.0 * (double)mrl_rng_uniform(&r);
}

/* Gymnasium's pendulum.py step; u already inside the action space. */
static double ref_pd_step(ref_pd *s, double u) {
  double pi = 3.141592653589793, an, costs, newthdot;
  if (u > s->max_torque) u = s->max_torque;
  if (u < -s->max_torque) u = -s->max_torque;
  an = fmod(s->th + pi, 2.0 * pi);
  if (an < 0.0) an += 2.0 * pi;
  an -= pi;
  costs = an * an + 0.1 * (s->thdot * s->thdot) + 0.001 * (u * u);
  newthdot = s->thdot +
             (3.0 * s->g / (2.0 * s->l) * sin(s->th) + 3.0 / (s->m * (s->l * s->l)) * u) * s->dt;
  if (newthdot < -s->max_speed) newthdot = -s->max_speed;
  if (newthdot > s->max_speed) newthdot = s->max_speed;
  s->th = s->th + newthdot * s->dt;
  s->thdot = newthdot;
  return -costs;
}

/* The value of a parameter; NaN (which fails every comparison) on an error. */
static double param(const mrl_env *env, const char *name) {
  double v;
  return mrl_env_get_param(env, name, &v) == MRL_OK ? v : NAN;
}

/* ---- the parameter interface ---------------------------------------------- */

static void test_param_names_defaults(void) {
  static const char *const cp_ids[] = {"CartPole-v1", "StatelessCartPole-v1",
                                       "VelocityOnlyCartPole-v1", "NoisyStatelessCartPole-v1-0.2",
                                       "CartPole-v1|frame_stack:3|prev_action_reward"};
  static const char *const cp_names[] = {"gravity", "masscart",  "masspole",
                                         "length",  "force_mag", "tau"};
  static const double cp_def[] = {9.8, 1.0, 0.1, 0.5, 10.0, 0.02};
  static const char *const pd_ids[] = {"Pendulum-v1", "StatelessPendulum-v1",
                                       "NoisyStatelessPendulum-v1-0.3",
                                       "Pendulum-v1|obs_noise:0.1"};
  static const char *const pd_names[] = {"g", "m", "l", "dt", "max_speed", "max_torque"};
  static const double pd_def[] = {10.0, 1.0, 1.0, 0.05, 8.0, 2.0};
  int e, i;
  for (e = 0; e < 5; e++) {
    mrl_env *env = mrl_env_make(cp_ids[e]);
    MRL_CHECK(env != NULL, "%s made", cp_ids[e]);
    if (!env) continue;
    MRL_CHECK(mrl_env_num_params(env) == 6, "%s: 6 params", cp_ids[e]);
    for (i = 0; i < 6; i++) {
      const char *n = mrl_env_param_name(env, i);
      MRL_CHECK(n && strcmp(n, cp_names[i]) == 0, "%s: name %d", cp_ids[e], i);
      MRL_CHECK(mrl_env_param_index(env, cp_names[i]) == i, "%s: index of %s", cp_ids[e],
                cp_names[i]);
      MRL_CHECK(param(env, cp_names[i]) == cp_def[i], "%s: default %s", cp_ids[e], cp_names[i]);
    }
    MRL_CHECK(mrl_env_param_name(env, 6) == NULL && mrl_env_param_name(env, -1) == NULL,
              "name out of range");
    mrl_env_free(env);
  }
  for (e = 0; e < 4; e++) {
    mrl_env *env = mrl_env_make(pd_ids[e]);
    MRL_CHECK(env != NULL, "%s made", pd_ids[e]);
    if (!env) continue;
    MRL_CHECK(mrl_env_num_params(env) == 6, "%s: 6 params", pd_ids[e]);
    for (i = 0; i < 6; i++) {
      const char *n = mrl_env_param_name(env, i);
      MRL_CHECK(n && strcmp(n, pd_names[i]) == 0, "%s: name %d", pd_ids[e], i);
      MRL_CHECK(param(env, pd_names[i]) == pd_def[i], "%s: default %s", pd_ids[e], pd_names[i]);
    }
    mrl_env_free(env);
  }
  { /* environments without physics */
    mrl_env *env = mrl_env_make("TMaze-5");
    double v = 7.0;
    MRL_CHECK(env && mrl_env_num_params(env) == 0, "TMaze: no params");
    MRL_CHECK(mrl_env_param_name(env, 0) == NULL, "TMaze: no name");
    MRL_CHECK(mrl_env_get_param(env, "gravity", &v) == MRL_ERR_INVALID_ARGUMENT && v == 7.0,
              "TMaze: get rejected");
    MRL_CHECK(mrl_env_set_param(env, "gravity", 1.0) == MRL_ERR_INVALID_ARGUMENT,
              "TMaze: set rejected");
    mrl_env_free(env);
    MRL_CHECK(mrl_env_num_params(NULL) == 0, "NULL env: 0 params");
  }
}

static void test_param_set_get(void) {
  mrl_env *env = mrl_env_make("CartPole-v1");
  double v = 0.0;
  if (!env) return;
  MRL_CHECK(mrl_env_set_param(env, "gravity", 20.5) == MRL_OK, "set gravity");
  MRL_CHECK(param(env, "gravity") == 20.5, "gravity read back");
  MRL_CHECK(mrl_env_set_param(env, "gravity", 0.0) == MRL_OK, "gravity 0 allowed");
  MRL_CHECK(mrl_env_set_param(env, "gravity", -1.0) == MRL_ERR_INVALID_ARGUMENT,
            "negative gravity rejected");
  MRL_CHECK(mrl_env_set_param(env, "masspole", 0.0) == MRL_ERR_INVALID_ARGUMENT,
            "zero mass rejected");
  MRL_CHECK(mrl_env_set_param(env, "length", -0.5) == MRL_ERR_INVALID_ARGUMENT,
            "negative length rejected");
  MRL_CHECK(mrl_env_set_param(env, "tau", NAN) == MRL_ERR_INVALID_ARGUMENT, "NaN rejected");
  MRL_CHECK(mrl_env_set_param(env, "masscart", HUGE_VAL) == MRL_ERR_INVALID_ARGUMENT,
            "infinity rejected");
  MRL_CHECK(mrl_env_set_param(env, "Gravity", 1.0) == MRL_ERR_INVALID_ARGUMENT,
            "unknown name (case) rejected");
  MRL_CHECK(mrl_env_set_param(env, NULL, 1.0) == MRL_ERR_INVALID_ARGUMENT, "NULL name rejected");
  MRL_CHECK(mrl_env_get_param(env, "gravity", NULL) == MRL_ERR_INVALID_ARGUMENT,
            "NULL out rejected");
  MRL_CHECK(mrl_env_get_param(env, "nope", &v) == MRL_ERR_INVALID_ARGUMENT, "unknown get");
  MRL_CHECK(param(env, "gravity") == 0.0 && param(env, "masspole") == 0.1 &&
                param(env, "length") == 0.5 && param(env, "tau") == 0.02 &&
                param(env, "masscart") == 1.0,
            "rejected values changed nothing");
  mrl_env_free(env);

  env = mrl_env_make("Pendulum-v1");
  if (!env) return;
  MRL_CHECK(mrl_env_set_param(env, "max_torque", 0.0) == MRL_OK, "max_torque 0 allowed");
  MRL_CHECK(mrl_env_set_param(env, "dt", 0.0) == MRL_ERR_INVALID_ARGUMENT, "dt 0 rejected");
  MRL_CHECK(mrl_env_set_param(env, "m", -2.0) == MRL_ERR_INVALID_ARGUMENT, "m < 0 rejected");
  MRL_CHECK(param(env, "dt") == 0.05 && param(env, "m") == 1.0, "rejected: unchanged");
  mrl_env_free(env);
}

/* Every CartPole constant changed: the trajectory is Gymnasium's equations
 * with those constants, bit for bit; the values survive resets. */
static void test_cartpole_changed_physics(void) {
  static const char *const names[] = {"gravity", "masscart",  "masspole",
                                      "length",  "force_mag", "tau"};
  const double vals[] = {14.7, 1.7, 0.23, 0.8, 7.5, 0.01};
  mrl_env *env = mrl_env_make("CartPole-v1");
  mrl_env *sl = mrl_env_make("StatelessCartPole-v1");
  ref_cp s;
  mrl_rng ar = mrl_rng_make(99);
  int i, t, exact = 1, ends_agree = 1, episodes;
  if (!env || !sl) return;
  for (i = 0; i < 6; i++) {
    MRL_CHECK(mrl_env_set_param(env, names[i], vals[i]) == MRL_OK, "set %s", names[i]);
    MRL_CHECK(mrl_env_set_param(sl, names[i], vals[i]) == MRL_OK, "set %s (stateless)", names[i]);
  }
  s.gravity = vals[0];
  s.masscart = vals[1];
  s.masspole = vals[2];
  s.length = vals[3];
  s.force_mag = vals[4];
  s.tau = vals[5];
  for (episodes = 0; episodes < 3; episodes++) {
    float obs[4], o2[2], r;
    int te = 0, tu = 0, te2, tu2, ref_te = 0;
    mrl_env_reset(env, 50 + (uint64_t)episodes, obs);
    mrl_env_reset(sl, 50 + (uint64_t)episodes, o2);
    ref_cp_reset(&s, 50 + (uint64_t)episodes);
    for (t = 0; t < 500 && !te && !tu; t++) {
      int a = (int)mrl_rng_below(&ar, 2);
      float af = (float)a;
      mrl_env_step(env, &af, obs, &r, &te, &tu);
      mrl_env_step(sl, &af, o2, &r, &te2, &tu2);
      ref_te = ref_cp_step(&s, a);
      if (obs[0] != (float)s.x || obs[1] != (float)s.x_dot || obs[2] != (float)s.theta ||
          obs[3] != (float)s.theta_dot || o2[0] != obs[0] || o2[1] != obs[2])
        exact = 0;
      if (te != ref_te || te2 != te) ends_agree = 0;
    }
  }
  MRL_CHECK(exact, "CartPole with changed constants follows the reference bit for bit");
  MRL_CHECK(ends_agree, "terminations agree with the reference");
  mrl_env_free(env);
  mrl_env_free(sl);
}

/* Steps until termination with alternating pushes (no net force). */
static int steps_to_fall(mrl_env *env, uint64_t seed) {
  float obs[4], r;
  int te = 0, tu = 0, t = 0;
  mrl_env_reset(env, seed, obs);
  while (!te && !tu) {
    float a = (float)(t % 2);
    mrl_env_step(env, &a, obs, &r, &te, &tu);
    t++;
  }
  return t;
}

static void test_gravity_effect(void) {
  mrl_env *env = mrl_env_make("CartPole-v1");
  int light, normal, heavy, seed, faster = 1, slower = 0;
  if (!env) return;
  for (seed = 1; seed <= 20; seed++) {
    mrl_env_set_param(env, "gravity", 9.8);
    normal = steps_to_fall(env, (uint64_t)seed);
    mrl_env_set_param(env, "gravity", 40.0);
    heavy = steps_to_fall(env, (uint64_t)seed);
    mrl_env_set_param(env, "gravity", 2.0);
    light = steps_to_fall(env, (uint64_t)seed);
    if (!(heavy < normal)) faster = 0;
    if (normal < light) slower++;
  }
  MRL_CHECK(faster, "gravity 40 makes the pole fall sooner than 9.8 (20 seeds)");
  /* with alternating pushes, one seed of 20 balances a step longer at 9.8 */
  MRL_CHECK(slower >= 18, "gravity 2 makes it fall later than 9.8 (%d of 20)", slower);
  /* a longer pole falls more slowly */
  mrl_env_set_param(env, "gravity", 9.8);
  normal = steps_to_fall(env, 3);
  mrl_env_set_param(env, "length", 2.0);
  heavy = steps_to_fall(env, 3);
  MRL_CHECK(heavy > normal, "a longer pole falls later (%d vs %d)", heavy, normal);
  mrl_env_free(env);
}

static void test_pendulum_changed_physics(void) {
  mrl_env *env = mrl_env_make("Pendulum-v1");
  mrl_env *sp = mrl_env_make("NoisyStatelessPendulum-v1-0");
  ref_pd s;
  float obs[3], o2[2], r, r2;
  mrl_rng ar = mrl_rng_make(5);
  int t, te, tu, exact = 1, clipped = 0;
  if (!env || !sp) return;
  s.g = 9.81;
  s.m = 1.3;
  s.l = 0.7;
  s.dt = 0.04;
  s.max_speed = 6.0;
  s.max_torque = 1.25;
  mrl_env_set_param(env, "g", s.g);
  mrl_env_set_param(env, "m", s.m);
  mrl_env_set_param(env, "l", s.l);
  mrl_env_set_param(env, "dt", s.dt);
  mrl_env_set_param(env, "max_speed", s.max_speed);
  MRL_CHECK(mrl_env_set_param(env, "max_torque", s.max_torque) == MRL_OK, "max_torque set");
  mrl_env_set_param(sp, "g", s.g);
  mrl_env_set_param(sp, "m", s.m);
  mrl_env_set_param(sp, "l", s.l);
  mrl_env_set_param(sp, "dt", s.dt);
  mrl_env_set_param(sp, "max_speed", s.max_speed);
  mrl_env_set_param(sp, "max_torque", s.max_torque);
  mrl_env_reset(env, 11, obs);
  mrl_env_reset(sp, 11, o2);
  ref_pd_reset(&s, 11);
  for (t = 0; t < 200; t++) {
    float a = mrl_rng_uniform_range(&ar, -3.0f, 3.0f);
    double u = a < -2.0f ? -2.0 : a > 2.0f ? 2.0 : (double)a; /* the action space clips first */
    double want;
    if (fabs(u) > 1.25) clipped++;
    want = ref_pd_step(&s, u);
    mrl_env_step(env, &a, obs, &r, &te, &tu);
    mrl_env_step(sp, &a, o2, &r2, &te, &tu);
    if (r != (float)want || obs[0] != (float)cos(s.th) || obs[1] != (float)sin(s.th) ||
        obs[2] != (float)s.thdot || o2[0] != obs[0] || o2[1] != obs[1] || r2 != r)
      exact = 0;
  }
  MRL_CHECK(clipped > 20, "the test drives torques beyond max_torque (%d)", clipped);
  MRL_CHECK(exact, "Pendulum with changed constants follows the reference bit for bit");
  mrl_env_free(env);
  mrl_env_free(sp);
}

/* ---- domain randomisation ------------------------------------------------- */

static void test_dr_sampling(void) {
  mrl_param_range rg[2];
  mrl_env *env;
  float task[6], obs[4];
  double lo_seen = 1e9, hi_seen = -1e9, lo, hi, mean = 0.0;
  int seed, inside = 1, others_fixed = 1, task_ok = 1;
  rg[0].name = "gravity";
  rg[0].lo = 8.0;
  rg[0].hi = 12.0;
  rg[1].name = "masspole";
  rg[1].lo = 0.05;
  rg[1].hi = 0.2;
  env = mrl_env_wrap_domain_randomization(mrl_env_make("CartPole-v1"), rg, 2);
  MRL_CHECK(env != NULL, "DR wrapper made");
  if (!env) return;
  MRL_CHECK(strcmp(mrl_env_id(env), "CartPole-v1|domain_randomization:gravity=8:12,"
                                    "masspole=0.05:0.2") == 0,
            "id: %s", mrl_env_id(env));
  MRL_CHECK(mrl_env_task_dim(env) == 6, "task: the 6 parameters");
  MRL_CHECK(mrl_env_num_params(env) == 6, "params forwarded");
  MRL_CHECK(mrl_env_domain_randomization_get_range(env, "gravity", &lo, &hi) == MRL_OK &&
                lo == 8.0 && hi == 12.0,
            "get_range");
  MRL_CHECK(mrl_env_domain_randomization_get_range(env, "length", &lo, &hi) ==
                MRL_ERR_INVALID_ARGUMENT,
            "get_range of a parameter not randomised");
  for (seed = 0; seed < 2000; seed++) {
    double g, mp;
    mrl_env_reset(env, (uint64_t)seed, obs);
    g = param(env, "gravity");
    mp = param(env, "masspole");
    if (!(g >= 8.0 && g <= 12.0 && mp >= 0.05 && mp <= 0.2)) inside = 0;
    if (param(env, "length") != 0.5 || param(env, "masscart") != 1.0) others_fixed = 0;
    mrl_env_task(env, task);
    if (task[0] != (float)g || task[2] != (float)mp || task[3] != 0.5f || task[4] != 10.0f)
      task_ok = 0;
    if (g < lo_seen) lo_seen = g;
    if (g > hi_seen) hi_seen = g;
    mean += g / 2000.0;
  }
  MRL_CHECK(inside, "every draw inside its range");
  MRL_CHECK(others_fixed, "parameters not listed keep their values");
  MRL_CHECK(task_ok, "task reports the physics of the episode");
  MRL_CHECK(lo_seen < 8.02 && hi_seen > 11.98, "draws cover the range [%g, %g]", lo_seen, hi_seen);
  MRL_CHECK_NEAR(mean, 10.0, 0.1, 0.0, "mean gravity (uniform)");
  mrl_env_free(env);
}

static void test_dr_determinism_and_widening(void) {
  mrl_env *a = mrl_env_make("CartPole-v1|domain_randomization:gravity=9:11,length=0.4:0.6");
  mrl_env *b = mrl_env_make("CartPole-v1|domain_randomization:gravity=9:11,length=0.4:0.6");
  float obs[4];
  double g1, g2, l1, u_before[50];
  int seed, same = 1, differ = 0, continuous = 1, outside_old = 0, inside = 1;
  MRL_CHECK(a && b, "made from ids");
  if (!a || !b) return;
  for (seed = 0; seed < 50; seed++) {
    mrl_env_reset(a, (uint64_t)seed, obs);
    mrl_env_reset(b, (uint64_t)seed, obs);
    g1 = param(a, "gravity");
    l1 = param(a, "length");
    if (g1 != param(b, "gravity") || l1 != param(b, "length")) same = 0;
    mrl_env_reset(b, (uint64_t)seed + 1000, obs);
    if (param(b, "gravity") != g1) differ++;
    mrl_env_reset(b, (uint64_t)seed, obs); /* back to the same seed: same physics */
    if (param(b, "gravity") != g1) same = 0;
    u_before[seed] = (g1 - 9.0) / 2.0;
  }
  MRL_CHECK(same, "same seed, same physics (two envs, and again after other seeds)");
  MRL_CHECK(differ >= 49, "other seeds, other physics (%d of 50)", differ);

  /* ADR: widen gravity; each seed's draw moves with the range */
  MRL_CHECK(mrl_env_domain_randomization_set_range(a, "gravity", 5.0, 15.0) == MRL_OK, "widen");
  for (seed = 0; seed < 50; seed++) {
    double g;
    mrl_env_reset(a, (uint64_t)seed, obs);
    g = param(a, "gravity");
    if (!(g >= 5.0 && g <= 15.0)) inside = 0;
    if (g < 9.0 || g > 11.0) outside_old++;
    if (fabs((g - 5.0) / 10.0 - u_before[seed]) > 1e-12) continuous = 0;
  }
  MRL_CHECK(inside, "widened draws inside the new range");
  MRL_CHECK(outside_old > 20, "widened draws leave the old range (%d of 50)", outside_old);
  MRL_CHECK(continuous, "a seed keeps its quantile when the range widens");
  g2 = param(a, "gravity");
  (void)g2;
  /* pin (ADR boundary evaluation) */
  MRL_CHECK(mrl_env_domain_randomization_set_range(a, "gravity", 15.0, 15.0) == MRL_OK, "pin");
  mrl_env_reset(a, 3, obs);
  MRL_CHECK(param(a, "gravity") == 15.0, "pinned value exact");
  /* add a range for a parameter not randomised before */
  MRL_CHECK(mrl_env_domain_randomization_set_range(a, "force_mag", 5.0, 6.0) == MRL_OK, "add");
  mrl_env_reset(a, 4, obs);
  MRL_CHECK(param(a, "force_mag") >= 5.0 && param(a, "force_mag") <= 6.0, "added range used");
  mrl_env_free(a);
  mrl_env_free(b);
}

/* A randomised episode is exactly the plain environment with the drawn
 * constants. */
static void test_dr_trajectory(void) {
  mrl_env *dr = mrl_env_make("CartPole-v1|domain_randomization:gravity=5:20,masscart=0.5:2,"
                             "masspole=0.05:0.5,length=0.25:1,force_mag=5:15");
  mrl_env *plain = mrl_env_make("CartPole-v1");
  float task[6], o1[4], o2[4], r1, r2;
  int ep, t, exact = 1, i;
  if (!dr || !plain) return;
  for (ep = 0; ep < 5; ep++) {
    int te1 = 0, tu1 = 0, te2 = 0, tu2 = 0;
    mrl_rng ar = mrl_rng_make((uint64_t)ep);
    mrl_env_reset(dr, 700 + (uint64_t)ep, o1);
    for (i = 0; i < 6; i++) {
      const char *n = mrl_env_param_name(dr, i);
      mrl_env_set_param(plain, n, param(dr, n));
    }
    mrl_env_task(dr, task);
    MRL_CHECK(task[1] == (float)param(plain, "masscart"), "task matches");
    mrl_env_reset(plain, 700 + (uint64_t)ep, o2);
    if (memcmp(o1, o2, sizeof o1) != 0) exact = 0;
    for (t = 0; t < 500 && !te1 && !tu1; t++) {
      float a = (float)mrl_rng_below(&ar, 2);
      mrl_env_step(dr, &a, o1, &r1, &te1, &tu1);
      mrl_env_step(plain, &a, o2, &r2, &te2, &tu2);
      if (memcmp(o1, o2, sizeof o1) != 0 || te1 != te2 || tu1 != tu2 || r1 != r2) exact = 0;
    }
  }
  MRL_CHECK(exact, "randomised episodes equal the plain env with the drawn constants");
  mrl_env_free(dr);
  mrl_env_free(plain);
}

static void test_dr_errors(void) {
  mrl_param_range rg;
  mrl_env *inner = mrl_env_make("CartPole-v1"), *env;
  double lo, hi;
  float obs[4];
  rg.name = "gravitee";
  rg.lo = 1.0;
  rg.hi = 2.0;
  MRL_CHECK(mrl_env_wrap_domain_randomization(inner, &rg, 1) == NULL, "unknown name");
  rg.name = "gravity";
  rg.lo = 12.0;
  rg.hi = 8.0;
  MRL_CHECK(mrl_env_wrap_domain_randomization(inner, &rg, 1) == NULL, "lo > hi");
  rg.name = "masspole";
  rg.lo = -0.1;
  rg.hi = 0.2;
  MRL_CHECK(mrl_env_wrap_domain_randomization(inner, &rg, 1) == NULL, "range outside domain");
  rg.lo = 0.1;
  rg.hi = HUGE_VAL;
  MRL_CHECK(mrl_env_wrap_domain_randomization(inner, &rg, 1) == NULL, "infinite bound");
  MRL_CHECK(param(inner, "masspole") == 0.1, "failed checks left the inner env as it was");
  MRL_CHECK(mrl_env_wrap_domain_randomization(inner, NULL, 1) == NULL, "NULL ranges");
  MRL_CHECK(mrl_env_wrap_domain_randomization(NULL, NULL, 0) == NULL, "NULL inner");
  {
    mrl_env *tm = mrl_env_make("TMaze-4");
    MRL_CHECK(mrl_env_wrap_domain_randomization(tm, NULL, 0) == NULL, "env without params");
    mrl_env_free(tm);
  }
  env = mrl_env_wrap_domain_randomization(inner, NULL, 0); /* no ranges yet */
  MRL_CHECK(env != NULL, "no ranges is fine");
  if (!env) {
    mrl_env_free(inner);
    return;
  }
  MRL_CHECK(strcmp(mrl_env_id(env), "CartPole-v1|domain_randomization") == 0, "id: %s",
            mrl_env_id(env));
  mrl_env_reset(env, 1, obs);
  MRL_CHECK(param(env, "gravity") == 9.8, "no ranges: defaults");
  MRL_CHECK(mrl_env_domain_randomization_set_range(env, "nope", 1.0, 2.0) ==
                MRL_ERR_INVALID_ARGUMENT,
            "set_range: unknown name");
  MRL_CHECK(mrl_env_domain_randomization_set_range(env, "tau", 0.0, 0.02) ==
                MRL_ERR_INVALID_ARGUMENT,
            "set_range: bound outside the domain");
  MRL_CHECK(mrl_env_domain_randomization_set_range(env, "tau", 0.03, 0.02) ==
                MRL_ERR_INVALID_ARGUMENT,
            "set_range: lo > hi");
  MRL_CHECK(mrl_env_domain_randomization_set_range(env, "tau", NAN, 0.02) ==
                MRL_ERR_INVALID_ARGUMENT,
            "set_range: NaN");
  MRL_CHECK(mrl_env_domain_randomization_get_range(env, "tau", &lo, &hi) ==
                MRL_ERR_INVALID_ARGUMENT,
            "failed set_range added nothing");
  MRL_CHECK(param(env, "tau") == 0.02, "failed set_range left tau");
  mrl_env_free(env);
  {
    mrl_env *plain = mrl_env_make("CartPole-v1|frame_stack:2");
    MRL_CHECK(mrl_env_domain_randomization_set_range(plain, "gravity", 1.0, 2.0) ==
                  MRL_ERR_INVALID_ARGUMENT,
              "set_range without a DR wrapper");
    mrl_env_free(plain);
  }
  {
    static const char *const bad[] = {
        "CartPole-v1|domain_randomization:",
        "CartPole-v1|domain_randomization:gravity=8",
        "CartPole-v1|domain_randomization:gravity=8:",
        "CartPole-v1|domain_randomization:gravity=8:12,",
        "CartPole-v1|domain_randomization:gravity=12:8",
        "CartPole-v1|domain_randomization:foo=1:2",
        "CartPole-v1|domain_randomization:=1:2",
        "CartPole-v1|domain_randomization:gravity=8:12x",
        "CartPole-v1|domain_randomization:gravity=nan:12",
        "CartPole-v1|domain_randomization:masspole=0:1",
        "TMaze-5|domain_randomization",
    };
    int i;
    for (i = 0; i < (int)(sizeof bad / sizeof bad[0]); i++) {
      mrl_env *e = mrl_env_make(bad[i]);
      MRL_CHECK(e == NULL, "malformed id rejected: %s", bad[i]);
      mrl_env_free(e);
    }
  }
}

/* Outer wrappers find the randomiser; the id prints back and makes the same
 * environment. */
static void test_dr_wrapped_and_ids(void) {
  mrl_env *env = mrl_env_make(
      "Pendulum-v1|domain_randomization:g=5:15,max_torque=1:2|prev_action_reward|frame_stack:2");
  mrl_env *again;
  float obs[12];
  double lo, hi;
  if (!env) {
    MRL_CHECK(0, "wrapped DR id made");
    return;
  }
  MRL_CHECK(mrl_env_obs_dim(env) == 10, "obs dim 2 x (3 + 1 + 1)");
  MRL_CHECK(mrl_env_task_dim(env) == 6, "task through outer wrappers");
  MRL_CHECK(mrl_env_domain_randomization_set_range(env, "g", 2.0, 3.0) == MRL_OK,
            "set_range through outer wrappers");
  MRL_CHECK(mrl_env_domain_randomization_get_range(env, "g", &lo, &hi) == MRL_OK && lo == 2.0 &&
                hi == 3.0,
            "get_range through outer wrappers");
  mrl_env_reset(env, 9, obs);
  MRL_CHECK(param(env, "g") >= 2.0 && param(env, "g") <= 3.0, "new range used");
  again = mrl_env_make(mrl_env_id(env));
  MRL_CHECK(again && strcmp(mrl_env_id(again), mrl_env_id(env)) == 0, "id round trip: %s",
            mrl_env_id(env));
  mrl_env_free(again);
  mrl_env_free(env);
  /* bounds that need many digits print back exactly */
  env = mrl_env_make("CartPole-v1|domain_randomization:gravity=0.1:9.8000000000000007");
  MRL_CHECK(env != NULL, "long decimal made");
  if (env) {
    again = mrl_env_make(mrl_env_id(env));
    MRL_CHECK(again &&
                  mrl_env_domain_randomization_get_range(again, "gravity", &lo, &hi) == MRL_OK &&
                  lo == 0.1 && hi == 9.8000000000000007,
              "exact bounds after the round trip (%s)", mrl_env_id(env));
    mrl_env_free(again);
    mrl_env_free(env);
  }
}

static void test_dr_vecenv(void) {
  mrl_vecenv v, w;
  float actions[8];
  int i, t, same = 1, moved = 0;
  if (mrl_vecenv_init(&v, "CartPole-v1|domain_randomization:gravity=9:11", 8, 5) != MRL_OK) {
    MRL_CHECK(0, "vecenv with DR");
    return;
  }
  if (mrl_vecenv_init(&w, "CartPole-v1|domain_randomization:gravity=9:11", 8, 5) != MRL_OK) {
    mrl_vecenv_free(&v);
    return;
  }
  MRL_CHECK(mrl_vecenv_domain_randomization_set_range(&v, "gravity", 1.0, 30.0) == MRL_OK &&
                mrl_vecenv_domain_randomization_set_range(&w, "gravity", 1.0, 30.0) == MRL_OK,
            "vecenv set_range");
  MRL_CHECK(mrl_vecenv_domain_randomization_set_range(&v, "gravity", -1.0, 30.0) ==
                MRL_ERR_INVALID_ARGUMENT,
            "vecenv set_range checked");
  {
    double lo, hi;
    int all = 1;
    for (i = 0; i < 8; i++)
      if (mrl_env_domain_randomization_get_range(v.envs[i], "gravity", &lo, &hi) != MRL_OK ||
          lo != 1.0 || hi != 30.0)
        all = 0;
    MRL_CHECK(all, "every env has the range; the failed call changed none");
  }
  mrl_vecenv_reset(&v);
  mrl_vecenv_reset(&w);
  for (t = 0; t < 300; t++) {
    for (i = 0; i < 8; i++) actions[i] = (float)((t + i) % 2);
    mrl_vecenv_step(&v, actions);
    mrl_vecenv_step(&w, actions);
    if (memcmp(v.obs, w.obs, sizeof(float) * 32) != 0) same = 0;
    for (i = 0; i < 8; i++)
      if (param(v.envs[i], "gravity") != param(w.envs[i], "gravity")) same = 0;
    if (v.terminated[0]) moved++;
  }
  MRL_CHECK(same, "two vectors with one seed: same physics, same observations");
  MRL_CHECK(moved > 3, "episodes ended and were re-randomised (%d)", moved);
  mrl_vecenv_free(&v);
  mrl_vecenv_free(&w);
}

/* A user environment's parameter table is checked and its hooks used. */
typedef struct user_env {
  double k;
} user_env;
static mrl_result user_reset(void *self, uint64_t seed, float *obs) {
  (void)seed;
  obs[0] = (float)((user_env *)self)->k;
  return MRL_OK;
}
static mrl_result user_step(void *self, const float *action, float *obs, float *reward, int *te,
                            int *tu) {
  (void)action;
  obs[0] = (float)((user_env *)self)->k;
  *reward = 0.0f;
  *te = *tu = 0;
  return MRL_OK;
}
static const char *user_name(const void *self, int i) {
  (void)self;
  return i == 0 ? "k" : NULL;
}
static double user_get(const void *self, int i) {
  (void)i;
  return ((const user_env *)self)->k;
}
static mrl_result user_set(void *self, int i, double v) {
  (void)i;
  if (v > 100.0) return MRL_ERR_INVALID_ARGUMENT;
  ((user_env *)self)->k = v;
  return MRL_OK;
}

static void test_user_params(void) {
  user_env u;
  mrl_env_vtable vt;
  mrl_env *env;
  mrl_param_range rg;
  float obs[1];
  memset(&vt, 0, sizeof vt);
  u.k = 1.0;
  vt.obs_dim = 1;
  vt.num_actions = 2;
  vt.action_dim = 1;
  vt.reset = user_reset;
  vt.step = user_step;
  vt.num_params = 1;
  vt.param_name = user_name;
  MRL_CHECK(mrl_env_create(&vt, &u) == NULL, "params without all hooks rejected");
  vt.get_param = user_get;
  vt.set_param = user_set;
  vt.num_params = -1;
  MRL_CHECK(mrl_env_create(&vt, &u) == NULL, "negative num_params rejected");
  vt.num_params = 1;
  env = mrl_env_create(&vt, &u);
  MRL_CHECK(env != NULL, "user env with params");
  if (!env) return;
  rg.name = "k";
  rg.lo = 50.0;
  rg.hi = 200.0;
  MRL_CHECK(mrl_env_wrap_domain_randomization(env, &rg, 1) == NULL, "user domain checked");
  MRL_CHECK(u.k == 1.0, "value restored after the check");
  rg.hi = 60.0;
  env = mrl_env_wrap_domain_randomization(env, &rg, 1);
  MRL_CHECK(env != NULL, "user env randomised");
  if (!env) return;
  mrl_env_reset(env, 3, obs);
  MRL_CHECK(obs[0] >= 50.0f && obs[0] <= 60.0f && (double)obs[0] == (double)(float)u.k,
            "user parameter drawn before the reset (%g)", (double)obs[0]);
  mrl_env_free(env); /* no destroy hook: u is on the stack */
}

int main(void) {
  test_param_names_defaults();
  test_param_set_get();
  test_cartpole_changed_physics();
  test_gravity_effect();
  test_pendulum_changed_physics();
  test_dr_sampling();
  test_dr_determinism_and_widening();
  test_dr_trajectory();
  test_dr_errors();
  test_dr_wrapped_and_ids();
  test_dr_vecenv();
  test_user_params();
  return mrl_test_summary("test_envs_dr");
}
