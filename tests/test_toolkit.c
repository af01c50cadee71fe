/* Tests for the shared agent toolkit (memrl_algos.h >>shared, memrl_mem.h's
 * towers and user cores) and for what PPO builds on it:
 *   - every rejected PPO config names the field and value in agent.error,
 *     and the agent is safe to free afterwards;
 *   - minibatches by rows and by whole sequences, the shuffle;
 *   - the update guard, and a non-finite update that is refused with the
 *     parameters untouched;
 *   - towers: names, state slices, config errors;
 *   - a user's core (a GRU wrapped in the mrl_core_type table) trains under
 *     PPO with no other change, and acts like its own step;
 *   - whole-agent checkpoints: a run saved, loaded into fresh objects and
 *     continued equals the uninterrupted run bit for bit (PPO and PPO-LSTM);
 *     a saved agent keeps its observation normaliser; a mismatched config
 *     names the field; a corrupt file changes nothing;
 *   - continuous actions: PPO's act sends actions inside the box;
 *   - PPO's length curriculum: levels, the env rebuilt, errors, and a resumed
 *     run equal to the uninterrupted one across levels.
 *
 * Run from the repository root:  cc -std=c99 -O2 tests/test_toolkit.c -lm && ./a.out */
#define MEMRL_IMPLEMENTATION
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* getpid */
#endif
#include "../memrl_algos.h"
#include "test.h"
#ifdef _WIN32
#include <process.h>
#define test_getpid() _getpid()
#else
#include <unistd.h>
#define test_getpid() getpid()
#endif

static void temp_path(char *buf, size_t size, const char *what) {
  snprintf(buf, size, "/tmp/memrl_test_toolkit_%ld_%s.safetensors", (long)test_getpid(), what);
}

/* ------------------------------------------------------------------------ */
/* config errors                                                            */
/* ------------------------------------------------------------------------ */

typedef struct bad_config {
  const char *what;  /* the mutation */
  const char *error; /* a substring agent.error must hold */
} bad_config;

static mrl_ppo_config mutate(int k) {
  mrl_ppo_config c = mrl_ppo_config_default();
  c.num_minibatches = 2;
  switch (k) {
  case 0: c.num_steps = 0; break;
  case 1: c.learning_rate = (float)NAN; break;
  case 2: c.ent_coef = (float)INFINITY; break;
  case 3: c.net.encoder_sizes[0] = 0; break;
  case 4: c.net.head_sizes[0] = -3, c.net.num_head_layers = 1; break;
  case 5: c.net.core = mrl_core_config_lstm(0); break;
  case 6: c.net.core = mrl_core_config_lstm(-5); break;
  case 7: c.net.core.kind = (mrl_core_kind)99; break; /* past every kind */
  case 8: c.net.core = mrl_core_config_lstm(8), c.num_minibatches = 4; break;
  case 9: c.net.activation = (mrl_activation)9; break;
  case 10: c.num_steps = 1 << 30; break;
  case 11: c.num_minibatches = 0; break;
  case 12: c.update_epochs = 0; break;
  case 13: c.gamma = 1.5f; break;
  case 14: c.net.num_encoder_layers = 99; break;
  case 15: c.adam_eps = 0.0f; break;
  case 16: c.max_grad_norm = (float)NAN; break;
  case 17: c.net.core = mrl_core_config_user(NULL, NULL); break;
  case 18: c.total_steps = -1; break;
  }
  return c;
}

static void test_config_errors(void) {
  static const bad_config bad[] = {
      {"num_steps 0", "num_steps 0"},
      {"learning_rate NaN", "learning_rate nan"},
      {"ent_coef inf", "ent_coef inf"},
      {"encoder size 0", "encoder_sizes[0] 0"},
      {"head size -3", "head_sizes[0] -3"},
      {"LSTM of 0 units", "hidden_size 0"},
      {"LSTM of -5 units", "hidden_size -5"},
      {"core kind 99", "core.kind 99"},
      {"6 envs, 4 minibatches of sequences", "num_minibatches 4 does not divide num_envs 6"},
      {"activation 9", "activation 9"},
      {"num_steps 2^30", "too large"},
      {"num_minibatches 0", "num_minibatches 0"},
      {"update_epochs 0", "update_epochs 0"},
      {"gamma 1.5", "gamma 1.5"},
      {"99 encoder layers", "num_encoder_layers 99"},
      {"adam_eps 0", "adam_eps 0"},
      {"max_grad_norm NaN", "max_grad_norm nan"},
      {"a user core without a table", "user_type"},
      {"total_steps -1", "total_steps -1"},
  };
  mrl_vecenv env;
  mrl_ppo a;
  int k;
  if (mrl_vecenv_init(&env, "CartPole-v1", 6, 1) != MRL_OK) return;
  for (k = 0; k < (int)(sizeof bad / sizeof bad[0]); k++) {
    mrl_ppo_config c = mutate(k);
    mrl_result r = mrl_ppo_init(&a, &c, &env);
    MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT, "%s: init gave %d", bad[k].what, (int)r);
    MRL_CHECK(strstr(a.error, bad[k].error) != NULL, "%s: error '%s' does not say '%s'",
              bad[k].what, a.error, bad[k].error);
    mrl_ppo_free(&a); /* safe after any failure */
  }
  {
    mrl_ppo_config c = mrl_ppo_config_default();
    MRL_CHECK(mrl_ppo_init(&a, &c, NULL) == MRL_ERR_INVALID_ARGUMENT && a.error[0] != '\0',
              "init without a vector env: '%s'", a.error);
    mrl_ppo_free(&a);
    MRL_CHECK(mrl_ppo_init(&a, &c, &env) == MRL_OK && a.error[0] == '\0', "a valid config: '%s'",
              a.error);
    mrl_ppo_free(&a);
  }
  mrl_vecenv_free(&env);
}

/* ------------------------------------------------------------------------ */
/* minibatches, shuffle, update guard                                       */
/* ------------------------------------------------------------------------ */

static void test_minibatches(void) {
  mrl_minibatches m;
  mrl_rng rng = mrl_rng_make(5);
  int seen[24], k, i, t, T, B;
  const int *rows, *envs;
  /* by rows: 6 steps x 4 envs in 5 minibatches of 4, the remaining 4 rows left out */
  MRL_CHECK(mrl_minibatches_init(&m, 6, 4, 5, 0) == MRL_OK, "minibatches by rows: init");
  mrl_minibatches_shuffle(&m, &rng);
  memset(seen, 0, sizeof seen);
  for (k = 0; k < 5; k++) {
    rows = mrl_minibatches_get(&m, k, &T, &B, &envs);
    MRL_CHECK(T == 1 && B == 4 && envs == NULL, "by rows: minibatch %d is [%d, %d]", k, T, B);
    for (i = 0; i < B; i++) seen[rows[i]]++;
  }
  for (i = k = 0; i < 24; i++) {
    MRL_CHECK(seen[i] <= 1, "by rows: row %d in %d minibatches", i, seen[i]);
    k += seen[i];
  }
  MRL_CHECK(k == 20, "by rows: %d rows used, want 20", k);
  mrl_minibatches_free(&m);
  /* by sequence: 4 envs in 2 minibatches of 2 whole sequences, time-major */
  MRL_CHECK(mrl_minibatches_init(&m, 3, 4, 2, 1) == MRL_OK, "minibatches by sequence: init");
  mrl_minibatches_shuffle(&m, &rng);
  memset(seen, 0, sizeof seen);
  for (k = 0; k < 2; k++) {
    rows = mrl_minibatches_get(&m, k, &T, &B, &envs);
    MRL_CHECK(T == 3 && B == 2 && envs != NULL, "by sequence: minibatch %d is [%d, %d]", k, T, B);
    for (t = 0; t < T; t++)
      for (i = 0; i < B; i++)
        MRL_CHECK(rows[t * B + i] == t * 4 + envs[i], "by sequence: row (%d, %d) is %d", t, i,
                  rows[t * B + i]);
    for (i = 0; i < B; i++) seen[envs[i]]++;
  }
  for (i = 0; i < 4; i++) MRL_CHECK(seen[i] == 1, "by sequence: env %d used %d times", i, seen[i]);
  mrl_minibatches_free(&m);
  MRL_CHECK(mrl_minibatches_init(&m, 3, 6, 4, 1) == MRL_ERR_INVALID_ARGUMENT,
            "by sequence: 6 envs do not split into 4 minibatches");
  mrl_minibatches_free(&m);
  MRL_CHECK(mrl_minibatches_init(&m, 2, 2, 5, 0) == MRL_ERR_INVALID_ARGUMENT,
            "by rows: 4 rows do not make 5 minibatches");
  mrl_minibatches_free(&m);
  { /* the shuffle is a uniform permutation: every position sees every value */
    int a[5], count[5][5], n;
    memset(count, 0, sizeof count);
    for (n = 0; n < 5000; n++) {
      for (i = 0; i < 5; i++) a[i] = i;
      mrl_rng_shuffle(&rng, a, 5);
      for (i = 0; i < 5; i++) count[i][a[i]]++;
    }
    for (i = 0; i < 25; i++)
      MRL_CHECK(count[i / 5][i % 5] > 850 && count[i / 5][i % 5] < 1150,
                "shuffle: value %d at position %d %d times of 5000", i % 5, i / 5,
                count[i / 5][i % 5]);
  }
}

static void test_update_guard(void) {
  mrl_params p;
  int shape[1] = {3};
  mrl_params_init(&p);
  mrl_params_add(&p, "w", 1, shape, mrl_init_default());
  if (mrl_params_finalize(&p, 1) != MRL_OK) return;
  p.grads[0] = 3.0f, p.grads[1] = 4.0f, p.grads[2] = 0.0f;
  MRL_CHECK(mrl_update_guard(&p, 1.0f, 1.0f) == 1, "guard: finite update refused");
  MRL_CHECK_NEAR(p.grads[0], 0.6f, 1e-6, 1e-5, "guard clips like clip_grad_norm_");
  p.grads[1] = (float)NAN;
  MRL_CHECK(mrl_update_guard(&p, 1.0f, 1.0f) == 0, "guard: NaN gradient with clipping");
  MRL_CHECK(mrl_update_guard(&p, 1.0f, 0.0f) == 0, "guard: NaN gradient without clipping");
  p.grads[1] = (float)INFINITY;
  MRL_CHECK(mrl_update_guard(&p, 1.0f, 0.0f) == 0, "guard: infinite gradient");
  p.grads[1] = 1.0f;
  MRL_CHECK(mrl_update_guard(&p, (float)NAN, 0.5f) == 0, "guard: NaN loss");
  MRL_CHECK(mrl_update_guard(&p, 2.0f, 0.0f) == 1, "guard: finite, no clipping");
  mrl_params_free(&p);
}

/* A PPO update whose data hold a NaN is refused: nothing of the agent's
 * parameters or optimiser changes, and the error says why. */
static void test_non_finite_update(void) {
  mrl_vecenv env;
  mrl_ppo a;
  mrl_ppo_config c = mrl_ppo_config_default();
  float *before;
  size_t bytes;
  c.num_steps = 16;
  if (mrl_vecenv_init(&env, "CartPole-v1", 4, 2) != MRL_OK) return;
  if (mrl_ppo_init(&a, &c, &env) != MRL_OK) {
    mrl_vecenv_free(&env);
    return;
  }
  MRL_CHECK(mrl_ppo_train(&a, &env, 64, NULL, NULL) == MRL_OK, "non-finite: first train");
  bytes = sizeof(float) * a.params.total;
  before = (float *)malloc(3 * bytes);
  memcpy(before, a.params.values, bytes);
  memcpy(before + a.params.total, a.params.moment1, bytes);
  memcpy(before + 2 * a.params.total, a.params.moment2, bytes);
  a.rollout.returns[5] = (float)NAN;
  MRL_CHECK(mrl_ppo_update(&a, 1e-3f, 0.2f, NULL) == MRL_ERR_NON_FINITE,
            "non-finite: an update on a NaN return was not refused");
  MRL_CHECK(strstr(a.error, "non-finite") != NULL, "non-finite: error '%s'", a.error);
  MRL_CHECK(memcmp(before, a.params.values, bytes) == 0 &&
                memcmp(before + a.params.total, a.params.moment1, bytes) == 0 &&
                memcmp(before + 2 * a.params.total, a.params.moment2, bytes) == 0,
            "non-finite: the refused update changed the parameters or moments");
  free(before);
  mrl_ppo_free(&a);
  mrl_vecenv_free(&env);
}

/* adv_std_floor: a floor below the advantages' std leaves the update bit
 * for bit as without it; a floor above it shrinks the normalised advantages,
 * so the update differs (the policy gradient is scaled down). */
static void test_adv_std_floor(void) {
  mrl_vecenv env;
  mrl_ppo a;
  mrl_ppo_config c = mrl_ppo_config_default();
  float *start, *after[3];
  mrl_rng rng0;
  long long steps0;
  size_t n, bytes;
  int k;
  const float floors[3] = {0.0f, 1e-6f, 1e3f};
  c.num_steps = 16;
  if (mrl_vecenv_init(&env, "CartPole-v1", 4, 3) != MRL_OK) return;
  if (mrl_ppo_init(&a, &c, &env) != MRL_OK) {
    mrl_vecenv_free(&env);
    return;
  }
  MRL_CHECK(mrl_ppo_train(&a, &env, 64, NULL, NULL) == MRL_OK, "adv_std_floor: train");
  n = a.params.total;
  bytes = sizeof(float) * n;
  start = (float *)malloc(3 * bytes);
  memcpy(start, a.params.values, bytes);
  memcpy(start + n, a.params.moment1, bytes);
  memcpy(start + 2 * n, a.params.moment2, bytes);
  rng0 = a.rng;
  steps0 = a.params.adam_steps;
  for (k = 0; k < 3; k++) {
    memcpy(a.params.values, start, bytes);
    memcpy(a.params.moment1, start + n, bytes);
    memcpy(a.params.moment2, start + 2 * n, bytes);
    a.rng = rng0;
    a.params.adam_steps = steps0;
    a.cfg.adv_std_floor = floors[k];
    MRL_CHECK(mrl_ppo_update(&a, 1e-3f, 0.2f, NULL) == MRL_OK, "adv_std_floor %g: update",
              floors[k]);
    after[k] = (float *)malloc(bytes);
    memcpy(after[k], a.params.values, bytes);
  }
  MRL_CHECK(memcmp(after[0], after[1], bytes) == 0,
            "adv_std_floor 1e-6 (below the std) changed the update");
  MRL_CHECK(memcmp(after[0], after[2], bytes) != 0,
            "adv_std_floor 1e3 (above the std) left the update unchanged");
  for (k = 0; k < 3; k++) free(after[k]);
  free(start);
  c.adv_std_floor = -1.0f;
  mrl_ppo_free(&a);
  MRL_CHECK(mrl_ppo_init(&a, &c, &env) == MRL_ERR_INVALID_ARGUMENT &&
                strstr(a.error, "adv_std_floor") != NULL,
            "adv_std_floor -1 not refused (%s)", a.error);
  mrl_vecenv_free(&env);
}

/* A user's game that returns a NaN reward once, at its 500th step: training
 * stops with MRL_ERR_NON_FINITE naming the environment, every parameter
 * stays finite (it used to turn thousands of them into NaN). */
typedef struct glitch_game {
  long long steps;
} glitch_game;
static mrl_result glitch_reset(void *self, uint64_t seed, float *obs) {
  (void)self;
  obs[0] = (float)(seed % 3);
  return MRL_OK;
}
static mrl_result glitch_step(void *self, const float *action, float *obs, float *reward,
                              int *terminated, int *truncated) {
  glitch_game *g = (glitch_game *)self;
  g->steps++;
  obs[0] = action[0];
  *reward = g->steps == 500 ? (float)NAN : 1.0f;
  *terminated = g->steps % 20 == 0;
  *truncated = 0;
  return MRL_OK;
}

static void test_non_finite_env(void) {
  glitch_game games[2] = {{0}, {0}};
  mrl_env *envs[2];
  mrl_env_vtable vt;
  mrl_vecenv env;
  mrl_ppo a;
  mrl_ppo_config c = mrl_ppo_config_default();
  mrl_result r;
  size_t j;
  int bad = 0;
  memset(&vt, 0, sizeof vt);
  vt.id = "Glitch";
  vt.obs_dim = 1;
  vt.num_actions = 2;
  vt.action_dim = 1;
  vt.reset = glitch_reset;
  vt.step = glitch_step;
  envs[0] = mrl_env_create(&vt, &games[0]);
  envs[1] = mrl_env_create(&vt, &games[1]);
  if (mrl_vecenv_init_envs(&env, envs, 2, 1) != MRL_OK) return;
  c.num_steps = 64;
  if (mrl_ppo_init(&a, &c, &env) == MRL_OK) {
    r = mrl_ppo_train(&a, &env, 2 * 64 * 20, NULL, NULL);
    MRL_CHECK(r == MRL_ERR_NON_FINITE && strstr(a.error, "non-finite reward"),
              "glitch: train gave %d, error '%s'", (int)r, a.error);
    for (j = 0; j < a.params.total; j++) bad += !(a.params.values[j] - a.params.values[j] == 0.0f);
    MRL_CHECK(bad == 0, "glitch: %d parameters are not finite", bad);
    MRL_CHECK(a.runner.env_steps < 2 * 500, "glitch: training went on (%lld steps)",
              a.runner.env_steps);
    mrl_ppo_free(&a);
  }
  mrl_vecenv_free(&env);
}

/* ------------------------------------------------------------------------ */
/* towers                                                                   */
/* ------------------------------------------------------------------------ */

static void test_tower(void) {
  mrl_params p;
  mrl_tower t1, t2;
  mrl_tower_config c = mrl_tower_config_default();
  char err[MRL_ERROR_SIZE];
  mrl_graph g;
  float state[2 * 20], x[2 * 3] = {0.1f, -0.2f, 0.3f, 0.5f, 0.4f, -0.6f}, keep[2 * 20];
  int i;
  c.core = mrl_core_config_lstm(4);
  c.head_sizes[0] = 5;
  c.num_head_layers = 1;
  mrl_params_init(&p);
  MRL_CHECK(mrl_tower_init(&t1, &p, "a", 3, &c, 0, err, sizeof err) == MRL_OK &&
                mrl_tower_init(&t2, &p, "b", 3, &c, 8, err, sizeof err) == MRL_OK,
            "tower init: %s", err);
  MRL_CHECK(t1.state_dim == 8 && t2.state_offset == 8 && t1.output_dim == 5,
            "tower: state_dim %d offset %d output %d", t1.state_dim, t2.state_offset,
            t1.output_dim);
  MRL_CHECK(mrl_params_find(&p, "a.encoder.0.weight") >= 0 &&
                mrl_params_find(&p, "b.core.weight_hh_l0") >= 0 &&
                mrl_params_find(&p, "a.head.0.bias") >= 0,
            "tower: parameter names");
  if (mrl_params_finalize(&p, 3) != MRL_OK || mrl_graph_init(&g, 1 << 16) != MRL_OK) return;
  /* each tower writes only its slice of a 20-float record */
  for (i = 0; i < 40; i++) state[i] = keep[i] = 0.25f * (float)(i % 7);
  mrl_graph_set_no_grad(&g, 1);
  mrl_tower_forward(&t2, &g, mrl_tensor_from2(&g, x, 2, 3), 1, 2, NULL, state, state, 20);
  for (i = 0; i < 40; i++) {
    int mine = i % 20 >= 8 && i % 20 < 16;
    MRL_CHECK(mine ? state[i] != keep[i] : state[i] == keep[i],
              "tower b: float %d of the records %s", i, mine ? "unchanged" : "written");
  }
  mrl_graph_free(&g);
  mrl_tower_free(&t1);
  mrl_tower_free(&t2);
  mrl_params_free(&p);
  /* config errors name the field, declare nothing */
  mrl_params_init(&p);
  c = mrl_tower_config_default();
  c.encoder_sizes[1] = 0;
  MRL_CHECK(mrl_tower_init(&t1, &p, "a", 3, &c, 0, err, sizeof err) == MRL_ERR_INVALID_ARGUMENT &&
                strstr(err, "encoder_sizes[1] 0") && p.count == 0,
            "tower: encoder size 0 gave '%s', %d tensors declared", err, p.count);
  c = mrl_tower_config_default();
  c.use_conv = 1;
  MRL_CHECK(mrl_tower_init(&t1, &p, "a", 3, &c, 0, err, sizeof err) == MRL_ERR_INVALID_ARGUMENT &&
                strstr(err, "does not match the observation size 3"),
            "tower: conv on a 3-float observation gave '%s'", err);
  mrl_tower_free(&t1);
  mrl_params_free(&p);
}

/* ------------------------------------------------------------------------ */
/* a user's core through the function table                                 */
/* ------------------------------------------------------------------------ */

static void test_user_core(void) {
  static const int hidden = 16;
  mrl_vecenv env;
  mrl_ppo a;
  mrl_ppo_config c = mrl_ppo_config_default();
  float obs[3 * 8], state[3 * 64], starts[3] = {1, 1, 1}, actions[3];
  int i;
  c.num_steps = 16;
  c.num_minibatches = 2;
  c.net.num_encoder_layers = 1;
  c.net.encoder_sizes[0] = 16;
  c.net.core = mrl_core_config_user(&test_user_gru_type, &hidden);
  if (mrl_vecenv_init(&env, "TMaze-5", 4, 1) != MRL_OK) return;
  if (mrl_ppo_init(&a, &c, &env) != MRL_OK) {
    MRL_CHECK(0, "user core: init failed: %s", a.error);
    mrl_vecenv_free(&env);
    return;
  }
  MRL_CHECK(mrl_ppo_state_dim(&a) == 2 * hidden,
            "user core: state_dim %d, want %d (actor + critic)", mrl_ppo_state_dim(&a), 2 * hidden);
  MRL_CHECK(mrl_params_find(&a.params, "actor.core.weight_hh_l0") >= 0,
            "user core: its parameters are the agent's");
  MRL_CHECK(mrl_ppo_train(&a, &env, 4 * 16 * 3, NULL, NULL) == MRL_OK, "user core: train: %s",
            a.error);
  /* acting advances the user core's state and is repeatable */
  memset(state, 0, sizeof state);
  for (i = 0; i < 3 * env.obs_dim; i++) obs[i] = (float)(i % 2);
  MRL_CHECK(mrl_ppo_act(&a, obs, 3, starts, state, 1, NULL, actions) == MRL_OK, "user core: act");
  MRL_CHECK(state[0] != 0.0f && state[2 * hidden] != 0.0f, "user core: act did not advance state");
  mrl_ppo_free(&a);
  mrl_vecenv_free(&env);
}

/* FTW's KL joins PPO's loss with core_aux_coef: the same seed and data give
 * other parameters with the coefficient than without; a core without an
 * auxiliary loss is untouched by it (bit for bit). */
static void aux_case(const char *spec, int expect_change) {
  mrl_vecenv e1, e2;
  mrl_ppo a1, a2;
  mrl_ppo_config c = mrl_ppo_config_default();
  c.num_steps = 16;
  c.num_minibatches = 2;
  mrl_core_config_parse(spec, &c.net.core, NULL, 0);
  if (mrl_vecenv_init(&e1, "TMaze-5", 4, 3) != MRL_OK ||
      mrl_vecenv_init(&e2, "TMaze-5", 4, 3) != MRL_OK)
    return;
  if (mrl_ppo_init(&a1, &c, &e1) == MRL_OK) {
    c.core_aux_coef = 1.0f;
    if (mrl_ppo_init(&a2, &c, &e2) == MRL_OK) {
      int differ;
      mrl_ppo_train(&a1, &e1, 2 * 4 * 16, NULL, NULL);
      mrl_ppo_train(&a2, &e2, 2 * 4 * 16, NULL, NULL);
      differ = memcmp(a1.params.values, a2.params.values, sizeof(float) * a1.params.total) != 0;
      MRL_CHECK(differ == expect_change, "core_aux_coef with %s: parameters %s", spec,
                differ ? "changed" : "unchanged");
      mrl_ppo_free(&a2);
    }
    mrl_ppo_free(&a1);
  }
  mrl_vecenv_free(&e1);
  mrl_vecenv_free(&e2);
}

static void test_core_aux_loss(void) {
  mrl_vecenv env;
  mrl_ppo a;
  mrl_ppo_config c = mrl_ppo_config_default();
  aux_case("ftw:8:8:2", 1);
  aux_case("lstm:8", 0);
  c.core_aux_coef = -1.0f;
  if (mrl_vecenv_init(&env, "TMaze-5", 2, 1) == MRL_OK) {
    MRL_CHECK(mrl_ppo_init(&a, &c, &env) == MRL_ERR_INVALID_ARGUMENT &&
                  strstr(a.error, "core_aux_coef -1"),
              "core_aux_coef -1: '%s'", a.error);
    mrl_ppo_free(&a);
    mrl_vecenv_free(&env);
  }
}

/* ------------------------------------------------------------------------ */
/* whole-agent checkpoints                                                  */
/* ------------------------------------------------------------------------ */

static int same_agent(const mrl_ppo *x, const mrl_ppo *y) {
  size_t bytes = sizeof(float) * x->params.total;
  return x->params.total == y->params.total &&
         memcmp(x->params.values, y->params.values, bytes) == 0 &&
         memcmp(x->params.moment1, y->params.moment1, bytes) == 0 &&
         memcmp(x->params.moment2, y->params.moment2, bytes) == 0 &&
         x->params.adam_steps == y->params.adam_steps &&
         x->runner.env_steps == y->runner.env_steps &&
         memcmp(&x->runner.stats, &y->runner.stats, sizeof x->runner.stats) == 0 &&
         memcmp(x->runner.state, y->runner.state,
                sizeof(float) * (size_t)x->num_envs * x->state_dim) == 0 &&
         memcmp(x->runner.obs, y->runner.obs, sizeof(float) * (size_t)x->num_envs * x->obs_dim) ==
             0 &&
         memcmp(x->rollout.advantages, y->rollout.advantages,
                sizeof(float) * (size_t)x->num_envs * x->cfg.num_steps) == 0 &&
         memcmp(&x->rng, &y->rng, sizeof x->rng) == 0;
}

/* ---- PPO's length curriculum (the shared mrl_length_curriculum) ---- */

static mrl_ppo_config curriculum_config(void) {
  mrl_ppo_config c = mrl_ppo_config_default();
  c.num_steps = 25;
  c.num_minibatches = 2;
  c.net.encoder_sizes[0] = 8;
  c.net.num_encoder_layers = 1;
  c.net.core = mrl_core_config_lstm(8);
  c.curriculum = 1;
  c.curriculum_window = 4;
  return c;
}

/* threshold 0: every level passes once a window of episodes has finished
 * (5, 10, 20, 25 of NoisySequence-25, the env rebuilt at each); threshold 1
 * with an untrained agent: none passes. Off, the config reads as before. */
static void test_curriculum(void) {
  static const long long want[4] = {5, 10, 20, 25};
  char json[4096];
  mrl_vecenv env;
  mrl_ppo a;
  mrl_ppo_config c = curriculum_config();
  int it, ok = 1;
  c.curriculum_threshold = 0.0f;
  if (mrl_vecenv_init(&env, "NoisySequence-25", 4, 3) != MRL_OK) return;
  MRL_CHECK(mrl_ppo_init(&a, &c, &env) == MRL_OK, "curriculum: init: %s", a.error);
  MRL_CHECK(a.curriculum.length == 5 && strcmp(mrl_env_id(env.envs[0]), "NoisySequence-25") == 0,
            "curriculum: init should set length 5 and leave env to train");
  for (it = 0; it < 4; it++) {
    char id[32];
    MRL_CHECK(mrl_ppo_train(&a, &env, 4 * 25, NULL, NULL) == MRL_OK, "curriculum: train: %s",
              a.error);
    ok &= a.curriculum.length == (it + 1 < 4 ? want[it + 1] : 25) &&
          a.curriculum.level == (it + 1 < 3 ? it + 1 : 3);
    snprintf(id, sizeof id, "NoisySequence-%lld", a.curriculum.length);
    ok &= strcmp(mrl_env_id(env.envs[0]), id) == 0;
  }
  MRL_CHECK(ok, "curriculum: lengths should go 5, 10, 20, 25 (now %lld, level %lld)",
            a.curriculum.length, a.curriculum.level);
  mrl_ppo_config_json(&a.cfg, json, sizeof json);
  MRL_CHECK(strstr(json, "\"curriculum\":1,\"curriculum_start\":5") != NULL &&
                json[strlen(json) - 1] == '}',
            "curriculum: the config JSON should carry it: %s", json);
  mrl_ppo_free(&a);
  mrl_vecenv_free(&env);
  c.curriculum = 0;
  mrl_ppo_config_json(&c, json, sizeof json);
  MRL_CHECK(strstr(json, "curriculum") == NULL && json[strlen(json) - 1] == '}',
            "curriculum: off, the config JSON should read as before: %s", json);
  c = curriculum_config();
  c.curriculum_threshold = 1.0f;
  c.curriculum_window = 100;
  if (mrl_vecenv_init(&env, "NoisySequence-25", 4, 3) != MRL_OK) return;
  MRL_CHECK(mrl_ppo_init(&a, &c, &env) == MRL_OK, "curriculum: init: %s", a.error);
  MRL_CHECK(mrl_ppo_train(&a, &env, 8 * 100, NULL, NULL) == MRL_OK, "curriculum: train");
  MRL_CHECK(a.curriculum.length == 5 && a.curriculum.level == 0 &&
                strcmp(mrl_env_id(env.envs[0]), "NoisySequence-5") == 0,
            "curriculum: an agent at chance passed a level (length %lld)", a.curriculum.length);
  mrl_ppo_free(&a);
  /* curriculum_rollout: the rollout follows the level, ceil(26 * length / 25) */
  mrl_vecenv_free(&env);
  if (mrl_vecenv_init(&env, "NoisySequence-25", 4, 3) != MRL_OK) return;
  c = curriculum_config();
  c.num_steps = 26;
  c.curriculum_threshold = 0.0f;
  c.curriculum_rollout = 1;
  MRL_CHECK(mrl_ppo_init(&a, &c, &env) == MRL_OK && a.rollout.num_steps == 6,
            "curriculum_rollout: init: %s (rollout %d, want 6)", a.error, a.rollout.num_steps);
  {
    static const int steps[5] = {6, 11, 21, 26, 26};
    int T_ok = 1;
    for (it = 0; it < 4; it++) {
      long long before = a.runner.env_steps;
      MRL_CHECK(mrl_ppo_train(&a, &env, 4 * steps[it], NULL, NULL) == MRL_OK,
                "curriculum_rollout: train: %s", a.error);
      T_ok &= a.runner.env_steps - before == 4 * steps[it] && a.rollout.num_steps == steps[it + 1];
    }
    MRL_CHECK(T_ok && a.curriculum.length == 25,
              "curriculum_rollout: rollouts should go 6, 11, 21, 26 (now %d at length %lld)",
              a.rollout.num_steps, a.curriculum.length);
  }
  mrl_ppo_free(&a);
  /* errors name the field */
  c.curriculum_growth = 1.0f;
  MRL_CHECK(mrl_ppo_init(&a, &c, &env) == MRL_ERR_INVALID_ARGUMENT &&
                strstr(a.error, "mrl_ppo_config.curriculum_growth 1") != NULL,
            "curriculum: growth 1 should be refused by name (%s)", a.error);
  mrl_ppo_free(&a);
  c = curriculum_config();
  c.curriculum_start = 30;
  MRL_CHECK(mrl_ppo_init(&a, &c, &env) == MRL_ERR_INVALID_ARGUMENT &&
                strstr(a.error, "curriculum_start 30 exceeds the length 25") != NULL,
            "curriculum: a start beyond the id's length should be refused (%s)", a.error);
  mrl_ppo_free(&a);
  mrl_vecenv_free(&env);
  if (mrl_vecenv_init(&env, "CartPole-v1", 4, 3) == MRL_OK) {
    c.curriculum_start = 5;
    MRL_CHECK(mrl_ppo_init(&a, &c, &env) == MRL_ERR_INVALID_ARGUMENT &&
                  strstr(a.error, "carries no length") != NULL,
              "curriculum: an id without a length should be refused (%s)", a.error);
    mrl_ppo_free(&a);
    mrl_vecenv_free(&env);
  }
}

/* Trains 3 + 3 iterations in one run, and 3, save, load into fresh objects, 3. */
static void resume_case(const char *label, const char *id, mrl_ppo_config c) {
  enum { N = 4 };
  char path[160];
  long long batch = (long long)N * c.num_steps;
  mrl_vecenv e1, e2, e3;
  mrl_ppo a1, a2, a3;
  mrl_result r;
  temp_path(path, sizeof path, "resume");
  c.total_steps = 6 * batch; /* the schedules span the whole run */
  if (mrl_vecenv_init(&e1, id, N, 7) != MRL_OK || mrl_vecenv_init(&e2, id, N, 7) != MRL_OK ||
      mrl_vecenv_init(&e3, id, N, 7) != MRL_OK)
    return;
  if (mrl_ppo_init(&a1, &c, &e1) != MRL_OK || mrl_ppo_init(&a2, &c, &e2) != MRL_OK ||
      mrl_ppo_init(&a3, &c, &e3) != MRL_OK) {
    MRL_CHECK(0, "%s: init", label);
    return;
  }
  mrl_ppo_train(&a1, &e1, 6 * batch, NULL, NULL);
  mrl_ppo_train(&a2, &e2, 3 * batch, NULL, NULL);
  MRL_CHECK((r = mrl_ppo_save(&a2, path, &e2)) == MRL_OK, "%s: save gave %d", label, (int)r);
  mrl_ppo_free(&a2);
  mrl_vecenv_free(&e2);
  /* a fresh agent and vector env, as in a new process */
  MRL_CHECK((r = mrl_ppo_load(&a3, path, &e3)) == MRL_OK, "%s: load gave %d: %s", label, (int)r,
            a3.error);
  MRL_CHECK(mrl_ppo_train(&a3, &e3, 3 * batch, NULL, NULL) == MRL_OK, "%s: continued training",
            label);
  MRL_CHECK(same_agent(&a1, &a3) && memcmp(e1.obs, e3.obs, sizeof(float) * N * e1.obs_dim) == 0 &&
                e1.total_steps == e3.total_steps &&
                strcmp(mrl_env_id(e1.envs[0]), mrl_env_id(e3.envs[0])) == 0 &&
                a1.curriculum.length == a3.curriculum.length &&
                a1.curriculum.level == a3.curriculum.level,
            "%s: the resumed run differs from the uninterrupted one", label);
  remove(path);
  mrl_ppo_free(&a1);
  mrl_ppo_free(&a3);
  mrl_vecenv_free(&e1);
  mrl_vecenv_free(&e3);
}

static void test_resume(void) {
  mrl_ppo_config c = mrl_ppo_config_default();
  c.num_steps = 32;
  c.normalize_obs = 1;
  c.normalize_reward = 1;
  resume_case("ppo CartPole-v1", "CartPole-v1", c);
  c.net.core = mrl_core_config_lstm(16);
  c.num_minibatches = 2;
  resume_case("ppo-lstm StatelessCartPole-v1", "StatelessCartPole-v1", c);
  c = mrl_ppo_config_default();
  c.num_steps = 32;
  c.net.core = mrl_core_config_lstm(8);
  c.num_minibatches = 2;
  resume_case("ppo-lstm TMaze-10", "TMaze-10", c);
  c = mrl_ppo_config_default();
  c.num_steps = 64;
  resume_case("ppo Pendulum-v1", "Pendulum-v1", c);
  c = curriculum_config();
  c.curriculum_threshold = 0.0f; /* a level a rollout: 5, 10, 20, 40 at the save, 80 after */
  resume_case("ppo-lstm curriculum NoisySequence-80", "NoisySequence-80", c);
  c.num_steps = 81; /* rollouts of 6, 11, 21, 41, 81 steps; the calls end on the same steps */
  c.curriculum_rollout = 1;
  resume_case("ppo-lstm curriculum_rollout NoisySequence-80", "NoisySequence-80", c);
}

/* A saved agent acts as before in a fresh one: the normaliser comes along. */
static void test_save_keeps_normalizer(void) {
  char path[160];
  mrl_vecenv env, fresh_env;
  mrl_ppo a, b;
  mrl_ppo_config c = mrl_ppo_config_default();
  mrl_episode_stats s1, s2;
  temp_path(path, sizeof path, "normalizer");
  c.num_steps = 32;
  c.normalize_obs = 1;
  if (mrl_vecenv_init(&env, "CartPole-v1", 4, 3) != MRL_OK ||
      mrl_vecenv_init(&fresh_env, "CartPole-v1", 4, 3) != MRL_OK)
    return;
  if (mrl_ppo_init(&a, &c, &env) != MRL_OK || mrl_ppo_init(&b, &c, &fresh_env) != MRL_OK) return;
  mrl_ppo_train(&a, &env, 20 * 4 * 32, NULL, NULL);
  MRL_CHECK(mrl_ppo_save(&a, path, NULL) == MRL_OK, "normaliser: save");
  MRL_CHECK(mrl_ppo_load(&b, path, NULL) == MRL_OK, "normaliser: load: %s", b.error);
  MRL_CHECK(memcmp(a.runner.obs_norm.mean, b.runner.obs_norm.mean, sizeof(double) * 4) == 0 &&
                a.runner.obs_norm.count == b.runner.obs_norm.count,
            "normaliser: statistics not restored");
  { /* the same episodes for both: two vector envs of one seed */
    mrl_vecenv e1, e2;
    if (mrl_vecenv_init(&e1, "CartPole-v1", 4, 11) == MRL_OK &&
        mrl_vecenv_init(&e2, "CartPole-v1", 4, 11) == MRL_OK) {
      mrl_ppo_evaluate(&a, &e1, 8, 1, &s1);
      mrl_ppo_evaluate(&b, &e2, 8, 1, &s2);
    }
    mrl_vecenv_free(&e1);
    mrl_vecenv_free(&e2);
  }
  MRL_CHECK(memcmp(s1.returns, s2.returns, sizeof s1.returns) == 0,
            "normaliser: the loaded agent acts differently (%g vs %g)",
            mrl_episode_stats_mean_return(&s1), mrl_episode_stats_mean_return(&s2));
  MRL_CHECK(b.runner.started == 0, "without an env snapshot training starts new episodes");
  remove(path);
  mrl_ppo_free(&a);
  mrl_ppo_free(&b);
  mrl_vecenv_free(&env);
  mrl_vecenv_free(&fresh_env);
}

static void test_load_errors(void) {
  char path[160];
  mrl_vecenv env;
  mrl_ppo a, b;
  mrl_ppo_config c = mrl_ppo_config_default();
  float *before;
  size_t bytes;
  FILE *f;
  temp_path(path, sizeof path, "errors");
  c.num_steps = 16;
  if (mrl_vecenv_init(&env, "CartPole-v1", 4, 3) != MRL_OK) return;
  if (mrl_ppo_init(&a, &c, &env) != MRL_OK) return;
  mrl_ppo_train(&a, &env, 2 * 64, NULL, NULL);
  MRL_CHECK(mrl_ppo_save(&a, path, &env) == MRL_OK, "errors: save");
  c.ent_coef = 0.02f; /* another config */
  if (mrl_ppo_init(&b, &c, &env) != MRL_OK) return;
  bytes = sizeof(float) * b.params.total;
  before = (float *)malloc(bytes);
  memcpy(before, b.params.values, bytes);
  MRL_CHECK(mrl_ppo_load(&b, path, NULL) == MRL_ERR_INVALID_ARGUMENT &&
                strstr(b.error, "ent_coef") && strstr(b.error, "0.01") && strstr(b.error, "0.02"),
            "errors: another config gave '%s'", b.error);
  MRL_CHECK(memcmp(before, b.params.values, bytes) == 0,
            "errors: a refused load changed the agent");
  { /* a core of the same sizes but another kind of memory is refused too */
    char other[160];
    mrl_ppo x, y;
    mrl_ppo_config cx = mrl_ppo_config_default();
    temp_path(other, sizeof other, "core");
    cx.num_steps = 16;
    cx.net.core = mrl_core_config_amrl(8, MRL_AMRL_AVG);
    cx.num_minibatches = 2;
    if (mrl_ppo_init(&x, &cx, &env) == MRL_OK) {
      MRL_CHECK(mrl_ppo_save(&x, other, NULL) == MRL_OK, "errors: save amrl");
      cx.net.core.amrl.aggregator = MRL_AMRL_MAX;
      if (mrl_ppo_init(&y, &cx, &env) == MRL_OK) {
        MRL_CHECK(mrl_ppo_load(&y, other, NULL) == MRL_ERR_INVALID_ARGUMENT &&
                      strstr(y.error, "amrl"),
                  "errors: an AMRL-avg checkpoint into an AMRL-max agent gave '%s'", y.error);
        mrl_ppo_free(&y);
      }
      mrl_ppo_free(&x);
    }
    remove(other);
  }
  /* a damaged file: cut in half */
  f = fopen(path, "rb");
  if (f) {
    char *data = (char *)malloc(1 << 20);
    size_t size = fread(data, 1, 1 << 20, f);
    fclose(f);
    f = fopen(path, "wb");
    if (f) {
      fwrite(data, 1, size / 2, f);
      fclose(f);
    }
    free(data);
  }
  mrl_ppo_free(&b);
  c.ent_coef = 0.01f;
  if (mrl_ppo_init(&b, &c, &env) != MRL_OK) return;
  memcpy(before, b.params.values, bytes);
  MRL_CHECK(mrl_ppo_load(&b, path, &env) == MRL_ERR_CORRUPT && b.error[0],
            "errors: a truncated file gave '%s'", b.error);
  MRL_CHECK(memcmp(before, b.params.values, bytes) == 0 && b.runner.env_steps == 0,
            "errors: a corrupt load changed the agent");
  MRL_CHECK(mrl_ppo_load(&b, "/nonexistent-memrl/x.safetensors", NULL) == MRL_ERR_IO,
            "errors: a missing file");
  free(before);
  remove(path);
  mrl_ppo_free(&a);
  mrl_ppo_free(&b);
  mrl_vecenv_free(&env);
}

/* ------------------------------------------------------------------------ */
/* continuous actions                                                       */
/* ------------------------------------------------------------------------ */

static void test_box_actions(void) {
  mrl_vecenv env;
  mrl_ppo a;
  mrl_ppo_config c = mrl_ppo_config_default();
  float obs[64 * 3], actions[64];
  mrl_rng rng = mrl_rng_make(3);
  int i, k, outside = 0, squashed;
  for (squashed = 0; squashed < 2; squashed++) {
    c.num_steps = 32;
    c.squash_actions = squashed;
    c.log_std_init = 1.0f; /* wide: many samples beyond the bounds */
    if (mrl_vecenv_init(&env, "Pendulum-v1", 2, 1) != MRL_OK) return;
    if (mrl_ppo_init(&a, &c, &env) != MRL_OK) {
      MRL_CHECK(0, "box: init: %s", a.error);
      return;
    }
    MRL_CHECK(a.num_actions == 0 && a.env_action_dim == 1 && a.raw_dim == 1,
              "box: actions %d, env floats %d, raw %d", a.num_actions, a.env_action_dim, a.raw_dim);
    MRL_CHECK(mrl_ppo_train(&a, &env, 2 * 2 * 32, NULL, NULL) == MRL_OK, "box: train: %s", a.error);
    for (i = 0; i < 64 * 3; i++) obs[i] = mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
    for (k = 0; k < 10; k++) {
      mrl_ppo_act(&a, obs, 64, NULL, NULL, 0, NULL, actions);
      for (i = 0; i < 64; i++) outside += !(actions[i] >= -2.0f && actions[i] <= 2.0f);
    }
    MRL_CHECK(outside == 0, "box: %d actions outside [-2, 2] were sent", outside);
    if (!squashed) { /* and the stored ones were sampled unbounded (CleanRL) */
      int wide = 0;
      for (i = 0; i < 2 * 32; i++)
        wide += a.rollout.actions[i] < -2.0f || a.rollout.actions[i] > 2.0f;
      MRL_CHECK(wide > 0, "box: no stored action beyond the bounds with log_std 1");
    }
    mrl_ppo_free(&a);
    mrl_vecenv_free(&env);
  }
}

int main(void) {
  test_config_errors();
  test_minibatches();
  test_update_guard();
  test_non_finite_update();
  test_adv_std_floor();
  test_non_finite_env();
  test_tower();
  test_user_core();
  test_core_aux_loss();
  test_curriculum();
  test_resume();
  test_save_keeps_normalizer();
  test_load_errors();
  test_box_actions();
  return mrl_test_summary("test_toolkit");
}
