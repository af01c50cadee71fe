/* Tests for memrl_algos.h: PPO's defaults and argument checks, smoke training
 * of the feedforward and recurrent agents (progress reports, early stop,
 * training across calls), bitwise determinism, deployment (mrl_ppo_act /
 * mrl_ppo_value: consistency, recurrent state, episode starts, sampling, and
 * no heap allocation in steady state), the observation normaliser, the CSV
 * logger and the progress line.
 *
 * The library's allocator is replaced by a counting one (MRL_MALLOC and
 * friends below) so the tests can see every heap allocation it makes.
 *
 * Run from the repository root:  cc -std=c99 -O2 tests/test_algos.c -lm && ./a.out */
#define MEMRL_IMPLEMENTATION
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* getpid */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _WIN32
#include <process.h>
#define test_getpid() _getpid()
#else
#include <unistd.h>
#define test_getpid() getpid()
#endif

#define MRL_TEST_COUNT_ALLOCATIONS
#include "test.h"

#include "../memrl_algos.h"

static int is_finite(double x) {
  return x == x && fabs(x) <= 1e300;
}

static void fill_uniform(float *d, int n, mrl_rng *rng, float lo, float hi) {
  int i;
  for (i = 0; i < n; i++) d[i] = mrl_rng_uniform_range(rng, lo, hi);
}

/* A small, fast configuration: 16 steps, 2 minibatches, 2 epochs. */
static mrl_ppo_config small_config(int lstm, int shared_torso) {
  mrl_ppo_config c = mrl_ppo_config_default();
  c.num_steps = 16;
  c.num_minibatches = 2;
  c.update_epochs = 2;
  c.net.encoder_sizes[0] = 32;
  c.net.encoder_sizes[1] = 32;
  if (lstm) c.net.core = mrl_core_config_lstm(16);
  c.shared_torso = shared_torso;
  return c;
}

/* ------------------------------------------------------------------------ */
/* defaults and argument checks                                             */
/* ------------------------------------------------------------------------ */

static void test_config_default(void) {
  mrl_ppo_config c = mrl_ppo_config_default();
  /* CleanRL ppo.py */
  MRL_CHECK(c.num_steps == 128, "ppo default num_steps %d, want 128", c.num_steps);
  MRL_CHECK(c.learning_rate == 2.5e-4f, "ppo default learning_rate %g", c.learning_rate);
  MRL_CHECK(c.anneal_lr == 1, "ppo default anneal_lr %d", c.anneal_lr);
  MRL_CHECK(c.gamma == 0.99f, "ppo default gamma %g", c.gamma);
  MRL_CHECK(c.gae_lambda == 0.95f, "ppo default gae_lambda %g", c.gae_lambda);
  MRL_CHECK(c.num_minibatches == 4, "ppo default num_minibatches %d", c.num_minibatches);
  MRL_CHECK(c.update_epochs == 4, "ppo default update_epochs %d", c.update_epochs);
  MRL_CHECK(c.norm_adv == 1, "ppo default norm_adv %d", c.norm_adv);
  MRL_CHECK(c.clip_coef == 0.2f, "ppo default clip_coef %g", c.clip_coef);
  MRL_CHECK(c.clip_vloss == 1, "ppo default clip_vloss %d", c.clip_vloss);
  MRL_CHECK(c.ent_coef == 0.01f, "ppo default ent_coef %g", c.ent_coef);
  MRL_CHECK(c.vf_coef == 0.5f, "ppo default vf_coef %g", c.vf_coef);
  MRL_CHECK(c.max_grad_norm == 0.5f, "ppo default max_grad_norm %g", c.max_grad_norm);
  MRL_CHECK(c.target_kl == 0.0f, "ppo default target_kl %g (CleanRL: None)", c.target_kl);
  MRL_CHECK(c.adam_eps == 1e-5f, "ppo default adam_eps %g", c.adam_eps);
  MRL_CHECK(c.net.num_encoder_layers == 2 && c.net.encoder_sizes[0] == 64 &&
                c.net.encoder_sizes[1] == 64,
            "ppo default network: %d layers %d-%d, want 64-64", c.net.num_encoder_layers,
            c.net.encoder_sizes[0], c.net.encoder_sizes[1]);
  MRL_CHECK(c.net.num_head_layers == 0, "ppo default head layers %d", c.net.num_head_layers);
  MRL_CHECK(c.net.activation == MRL_ACT_TANH, "ppo default activation %d", (int)c.net.activation);
  MRL_CHECK(c.orthogonal_init == 1, "ppo default orthogonal_init %d", c.orthogonal_init);
  MRL_CHECK(c.net.core.kind == MRL_CORE_NONE, "ppo default core %d", (int)c.net.core.kind);
  MRL_CHECK(c.shared_torso == 0 && c.normalize_obs == 0 && c.anneal_clip == 0 &&
                c.normalize_reward == 0,
            "ppo default shared_torso %d normalize_obs %d anneal_clip %d", c.shared_torso,
            c.normalize_obs, c.anneal_clip);
}

static void test_init_rejects(void) {
  mrl_vecenv env;
  mrl_ppo a;
  mrl_ppo_config c;
  mrl_result r;
  if (mrl_vecenv_init(&env, "TMaze-5", 6, 1) != MRL_OK) {
    MRL_CHECK(0, "vecenv_init TMaze-5 failed");
    return;
  }
  c = small_config(1, 0);
  c.num_minibatches = 4; /* 6 environments do not split into 4 minibatches of sequences */
  r = mrl_ppo_init(&a, &c, &env);
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT, "ppo_init: recurrent, 6 envs / 4 minibatches gave %d",
            (int)r);
  mrl_ppo_free(&a); /* safe on a rejected agent */
  c = small_config(0, 0);
  r = mrl_ppo_init(&a, &c, NULL);
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT, "ppo_init: NULL env gave %d", (int)r);
  c.num_steps = 0;
  r = mrl_ppo_init(&a, &c, &env);
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT, "ppo_init: num_steps 0 gave %d", (int)r);
  r = mrl_ppo_init(&a, NULL, &env);
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT, "ppo_init: NULL config gave %d", (int)r);
  c = small_config(0, 0);
  c.num_minibatches = 0;
  r = mrl_ppo_init(&a, &c, &env);
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT, "ppo_init: num_minibatches 0 gave %d", (int)r);
  /* the feedforward agent does not need num_envs divisible by num_minibatches */
  c = small_config(0, 0);
  c.num_minibatches = 4;
  r = mrl_ppo_init(&a, &c, &env);
  MRL_CHECK(r == MRL_OK, "ppo_init: feedforward, 6 envs / 4 minibatches gave %d", (int)r);
  if (r == MRL_OK) mrl_ppo_free(&a);
  mrl_vecenv_free(&env);
}

/* ------------------------------------------------------------------------ */
/* smoke training                                                           */
/* ------------------------------------------------------------------------ */

typedef struct progress_log {
  const char *label, *env_id;
  int calls, stop_at, num_iterations, num_actions, tmaze;
  long long steps0, batch, last_episodes;
  float lr0, last_success;
} progress_log;

static void progress_log_start(progress_log *l, const mrl_ppo *a, int num_iterations, int stop_at) {
  l->calls = 0;
  l->stop_at = stop_at;
  l->num_iterations = num_iterations;
  l->num_actions = a->num_actions;
  l->steps0 = a->runner.env_steps;
  l->batch = (long long)a->num_envs * a->cfg.num_steps;
  l->lr0 = a->cfg.learning_rate;
  l->last_success = -2.0f;
}

static int progress_check(const mrl_train_progress *p, void *user) {
  progress_log *l = (progress_log *)user;
  float remaining = 1.0f - (float)(p->iteration - 1) / (float)p->num_iterations;
  l->calls++;
  MRL_CHECK(p->algo && strcmp(p->algo, "ppo") == 0, "%s: progress algo '%s'", l->label,
            p->algo ? p->algo : "(null)");
  MRL_CHECK(p->env_id && strcmp(p->env_id, l->env_id) == 0, "%s: progress env_id '%s'", l->label,
            p->env_id ? p->env_id : "(null)");
  MRL_CHECK(p->iteration == l->calls, "%s: iteration %d at call %d", l->label, p->iteration,
            l->calls);
  MRL_CHECK(p->num_iterations == l->num_iterations, "%s: num_iterations %d, want %d", l->label,
            p->num_iterations, l->num_iterations);
  MRL_CHECK(p->env_steps == l->steps0 + l->calls * l->batch, "%s: env_steps %lld, want %lld",
            l->label, p->env_steps, l->steps0 + l->calls * l->batch);
  MRL_CHECK(mrl_progress_metric(p, "entropy") > 0.0f &&
                mrl_progress_metric(p, "entropy") <= logf((float)l->num_actions) + 1e-4f,
            "%s: entropy %g outside (0, log %d]", l->label, mrl_progress_metric(p, "entropy"),
            l->num_actions);
  MRL_CHECK(is_finite(mrl_progress_metric(p, "policy_loss")) &&
                is_finite(mrl_progress_metric(p, "value_loss")) &&
                mrl_progress_metric(p, "value_loss") >= 0.0f,
            "%s: losses pi %g v %g", l->label, mrl_progress_metric(p, "policy_loss"),
            mrl_progress_metric(p, "value_loss"));
  MRL_CHECK(is_finite(mrl_progress_metric(p, "approx_kl")) &&
                mrl_progress_metric(p, "approx_kl") > -1e-6f,
            "%s: approx_kl %g", l->label, mrl_progress_metric(p, "approx_kl"));
  MRL_CHECK(mrl_progress_metric(p, "clip_fraction") >= 0.0f &&
                mrl_progress_metric(p, "clip_fraction") <= 1.0f,
            "%s: clip_fraction %g", l->label, mrl_progress_metric(p, "clip_fraction"));
  MRL_CHECK(is_finite(mrl_progress_metric(p, "explained_variance")) &&
                mrl_progress_metric(p, "explained_variance") <= 1.0f,
            "%s: explained_variance %g", l->label, mrl_progress_metric(p, "explained_variance"));
  MRL_CHECK_NEAR(p->learning_rate, l->lr0 * remaining, 0.0, 1e-6, "annealed learning rate");
  MRL_CHECK(p->seconds >= 0.0 && p->steps_per_second >= 0.0, "%s: seconds %g sps %g", l->label,
            p->seconds, p->steps_per_second);
  MRL_CHECK(p->episodes >= l->last_episodes, "%s: episodes went down (%lld after %lld)", l->label,
            p->episodes, l->last_episodes);
  MRL_CHECK(p->mean_length >= 0.0f && is_finite(p->mean_return), "%s: mean length %g return %g",
            l->label, p->mean_length, p->mean_return);
  if (!l->tmaze)
    MRL_CHECK(p->success_rate == -1.0f, "%s: success_rate %g, want -1 (no success notion)",
              l->label, p->success_rate);
  else if (p->episodes > 0)
    MRL_CHECK(p->success_rate >= 0.0f && p->success_rate <= 1.0f,
              "%s: success_rate %g outside [0, 1]", l->label, p->success_rate);
  l->last_episodes = p->episodes;
  l->last_success = p->success_rate;
  return l->stop_at > 0 && l->calls >= l->stop_at;
}

/* Trains a few iterations in four calls: 3.5 batches (3 iterations), 2 more
 * (training goes on), 4 stopped by the callback after 2, and 1 step (one
 * iteration at least). */
static void smoke(const char *label, const char *id, mrl_ppo_config cfg, int num_envs) {
  mrl_vecenv env;
  mrl_ppo a;
  progress_log l;
  mrl_result r;
  long long batch = (long long)num_envs * cfg.num_steps, started = 0;
  int i;
  memset(&l, 0, sizeof l);
  l.label = label;
  l.env_id = id;
  l.tmaze = strncmp(id, "TMaze", 5) == 0;
  if (mrl_vecenv_init(&env, id, num_envs, 7) != MRL_OK) {
    MRL_CHECK(0, "%s: vecenv_init failed", label);
    return;
  }
  r = mrl_ppo_init(&a, &cfg, &env);
  MRL_CHECK(r == MRL_OK, "%s: ppo_init gave %d", label, (int)r);
  if (r != MRL_OK) {
    mrl_vecenv_free(&env);
    return;
  }
  MRL_CHECK(mrl_ppo_state_dim(&a) == (cfg.net.core.kind == MRL_CORE_LSTM
                                          ? (cfg.shared_torso ? 2 : 4) * cfg.net.core.hidden_size
                                          : 0),
            "%s: state_dim %d", label, mrl_ppo_state_dim(&a));

  progress_log_start(&l, &a, 3, 0);
  r = mrl_ppo_train(&a, &env, 3 * batch + batch / 2, progress_check, &l);
  MRL_CHECK(r == MRL_OK, "%s: train gave %d", label, (int)r);
  MRL_CHECK(l.calls == 3, "%s: %d progress calls, want 3", label, l.calls);
  MRL_CHECK(a.runner.env_steps == 3 * batch, "%s: env_steps %lld, want %lld", label,
            a.runner.env_steps, 3 * batch);

  progress_log_start(&l, &a, 2, 0);
  r = mrl_ppo_train(&a, &env, 2 * batch, progress_check, &l);
  MRL_CHECK(r == MRL_OK && l.calls == 2 && a.runner.env_steps == 5 * batch,
            "%s: second train call: result %d, %d calls, env_steps %lld", label, (int)r, l.calls,
            a.runner.env_steps);
  /* the vector env was reset once: each env has one running episode besides the finished ones */
  for (i = 0; i < num_envs; i++) started += (long long)env.episodes_started[i];
  MRL_CHECK(started == a.runner.stats.total_episodes + num_envs,
            "%s: %lld episodes started, %lld finished: the env was reset again", label, started,
            a.runner.stats.total_episodes);
  MRL_CHECK(env.total_steps == 5 * cfg.num_steps, "%s: vector steps %lld, want %d", label,
            env.total_steps, 5 * cfg.num_steps);

  progress_log_start(&l, &a, 4, 2);
  r = mrl_ppo_train(&a, &env, 4 * batch, progress_check, &l);
  MRL_CHECK(r == MRL_OK && l.calls == 2 && a.runner.env_steps == 7 * batch,
            "%s: early stop: result %d, %d calls, env_steps %lld, want 2 calls and %lld", label,
            (int)r, l.calls, a.runner.env_steps, 7 * batch);

  /* budgets are whole iterations, rounded down (CleanRL): less than one
   * trains nothing, zero too, and a negative budget is an error */
  r = mrl_ppo_train(&a, &env, batch - 1, progress_check, &l); /* l still counts 2 calls */
  MRL_CHECK(r == MRL_OK && l.calls == 2 && a.runner.env_steps == 7 * batch,
            "%s: a budget below one iteration: result %d, %d calls, env_steps %lld", label, (int)r,
            l.calls, a.runner.env_steps);
  r = mrl_ppo_train(&a, &env, 0, progress_check, &l);
  MRL_CHECK(r == MRL_OK && l.calls == 2 && a.runner.env_steps == 7 * batch,
            "%s: budget 0: result %d, %d calls", label, (int)r, l.calls);
  r = mrl_ppo_train(&a, &env, -1000, progress_check, &l);
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT && l.calls == 2 && a.runner.env_steps == 7 * batch &&
                strstr(a.error, "env_steps -1000") != NULL,
            "%s: budget -1000: result %d, error '%s'", label, (int)r, a.error);
  if (l.tmaze)
    MRL_CHECK(a.runner.stats.total_episodes > 0 && l.last_success >= 0.0f && l.last_success <= 1.0f,
              "%s: success_rate %g after %lld episodes", label, l.last_success,
              a.runner.stats.total_episodes);
  else
    MRL_CHECK(l.last_success == -1.0f, "%s: success_rate %g, want -1", label, l.last_success);
  if (cfg.normalize_obs) { /* every observation acted on: the first of each env, then one per step
                            */
    MRL_CHECK_NEAR(a.runner.obs_norm.count, 1e-4 + (double)(a.runner.env_steps + num_envs), 1e-9,
                   1e-12, "normaliser count = 1e-4 + observations seen");
    MRL_CHECK(a.runner.obs_norm.var[0] != 1.0 && a.runner.obs_norm.mean[0] != 0.0,
              "%s: the normaliser was not updated", label);
  }
  /* without a callback */
  r = mrl_ppo_train(&a, &env, batch, NULL, NULL);
  MRL_CHECK(r == MRL_OK && a.runner.env_steps == 8 * batch, "%s: train without callback", label);
  /* a vector env of other dimensions is refused */
  {
    mrl_vecenv other;
    if (mrl_vecenv_init(&other, l.tmaze ? "CartPole-v1" : "TMaze-5", num_envs, 1) == MRL_OK) {
      r = mrl_ppo_train(&a, &other, batch, NULL, NULL);
      MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT && a.runner.env_steps == 8 * batch,
                "%s: train on a different env gave %d", label, (int)r);
      mrl_vecenv_free(&other);
    }
  }
  mrl_ppo_free(&a);
  mrl_vecenv_free(&env);
}

static void test_smoke(void) {
  mrl_ppo_config c;
  smoke("ppo CartPole-v1", "CartPole-v1", small_config(0, 0), 4);
  smoke("ppo-lstm shared TMaze-5", "TMaze-5", small_config(1, 1), 4);
  smoke("ppo-lstm separate TMaze-5", "TMaze-5", small_config(1, 0), 4);
  c = small_config(1, 0);
  c.normalize_obs = 1;
  smoke("ppo-lstm normalize_obs StatelessCartPole-v1", "StatelessCartPole-v1", c, 4);
  c = small_config(0, 1);
  c.net.num_head_layers = 1;
  c.net.head_sizes[0] = 16;
  c.target_kl = 0.01f;
  c.anneal_clip = 1;
  c.clip_vloss = 0;
  c.orthogonal_init = 0;
  smoke("ppo shared, head, target_kl TMaze-5", "TMaze-5", c, 4);
}

/* ------------------------------------------------------------------------ */
/* determinism                                                              */
/* ------------------------------------------------------------------------ */

typedef struct trained {
  mrl_ppo agent;
  mrl_vecenv env;
  int ok;
} trained;

static void train_fixed(trained *t, const char *id, const mrl_ppo_config *cfg, int iterations) {
  t->ok = 0;
  if (mrl_vecenv_init(&t->env, id, 4, 21) != MRL_OK) return;
  if (mrl_ppo_init(&t->agent, cfg, &t->env) != MRL_OK) {
    mrl_vecenv_free(&t->env);
    return;
  }
  t->ok = mrl_ppo_train(&t->agent, &t->env, (long long)iterations * 4 * cfg->num_steps, NULL,
                        NULL) == MRL_OK;
  if (!t->ok) {
    mrl_ppo_free(&t->agent);
    mrl_vecenv_free(&t->env);
  }
}

static void trained_free(trained *t) {
  if (!t->ok) return;
  mrl_ppo_free(&t->agent);
  mrl_vecenv_free(&t->env);
}

static void determinism_case(const char *label, const char *id, mrl_ppo_config cfg) {
  trained x, y, z;
  float *init_values;
  size_t bytes;
  mrl_ppo fresh;
  train_fixed(&x, id, &cfg, 3);
  train_fixed(&y, id, &cfg, 3);
  cfg.seed += 1;
  train_fixed(&z, id, &cfg, 3);
  cfg.seed -= 1;
  MRL_CHECK(x.ok && y.ok && z.ok, "%s: training failed", label);
  if (!x.ok || !y.ok || !z.ok) {
    trained_free(&x);
    trained_free(&y);
    trained_free(&z);
    return;
  }
  bytes = sizeof(float) * x.agent.params.total;
  MRL_CHECK(x.agent.params.total == y.agent.params.total &&
                memcmp(x.agent.params.values, y.agent.params.values, bytes) == 0,
            "%s: same seed, different parameters", label);
  MRL_CHECK(memcmp(&x.agent.runner.stats, &y.agent.runner.stats, sizeof x.agent.runner.stats) == 0,
            "%s: same seed, different episode statistics", label);
  MRL_CHECK(x.agent.runner.env_steps == y.agent.runner.env_steps &&
                x.agent.runner.stats.total_episodes > 0,
            "%s: env_steps %lld vs %lld, %lld episodes", label, x.agent.runner.env_steps,
            y.agent.runner.env_steps, x.agent.runner.stats.total_episodes);
  MRL_CHECK(memcmp(x.agent.rollout.advantages, y.agent.rollout.advantages,
                   sizeof(float) * 4 * cfg.num_steps) == 0 &&
                memcmp(x.env.obs, y.env.obs, sizeof(float) * 4 * x.env.obs_dim) == 0,
            "%s: same seed, different rollouts", label);
  if (x.agent.state_dim)
    MRL_CHECK(memcmp(x.agent.runner.state, y.agent.runner.state,
                     sizeof(float) * 4 * x.agent.state_dim) == 0,
              "%s: same seed, different recurrent states", label);
  MRL_CHECK(memcmp(x.agent.params.values, z.agent.params.values, bytes) != 0,
            "%s: a different seed gave the same parameters", label);
  /* and training changed the parameters at all */
  if (mrl_ppo_init(&fresh, &cfg, &x.env) == MRL_OK) {
    init_values = fresh.params.values;
    MRL_CHECK(memcmp(init_values, x.agent.params.values, bytes) != 0,
              "%s: training left the parameters as initialised", label);
    mrl_ppo_free(&fresh);
  }
  trained_free(&x);
  trained_free(&y);
  trained_free(&z);
}

static void test_determinism(void) {
  mrl_ppo_config c = small_config(1, 0);
  c.seed = 3;
  determinism_case("ppo-lstm TMaze-5", "TMaze-5", c);
  c = small_config(0, 0);
  c.seed = 5;
  determinism_case("ppo CartPole-v1", "CartPole-v1", c);
  c = small_config(1, 1);
  c.seed = 8;
  c.normalize_obs = 1;
  determinism_case("ppo-lstm normalize_obs StatelessCartPole-v1", "StatelessCartPole-v1", c);
}

/* ------------------------------------------------------------------------ */
/* acting                                                                   */
/* ------------------------------------------------------------------------ */

/* Runs one tower and its output layer (the policy head's forward or the
 * value layer) for one step through the public functions, state (stride =
 * the agent's state_dim) updated in place. state points at the first
 * environment's record. */
static int tower_step(const mrl_ppo *a, const mrl_tower *t, int policy, const float *obs, int n,
                      const float *starts, float *state, float *result) {
  mrl_graph g;
  mrl_tensor *x, *y;
  if (mrl_graph_init(&g, 1 << 16) != MRL_OK) return 0;
  mrl_graph_set_no_grad(&g, 1);
  x = mrl_tensor_from2(&g, obs, n, a->obs_dim);
  x = mrl_tower_forward(t, &g, x, 1, n, starts, state, state, a->state_dim);
  y = policy ? mrl_policy_head_forward(&a->policy, &g, x)
             : mrl_linear_layer_forward(&a->value, &g, x);
  if (y) memcpy(result, y->data, sizeof(float) * (size_t)y->size);
  mrl_graph_free(&g);
  return y != NULL;
}

static int critic_state_dim(const mrl_ppo *a) {
  return a->cfg.shared_torso ? 0 : a->critic.state_dim;
}

enum { ACT_N = 5, ACT_MAX_STATE = 128, ACT_MAX_OBS = 8, ACT_MAX_A = 8 };

static void act_consistency(const char *label, mrl_ppo *a) {
  const int n = ACT_N, S = a->state_dim, O = a->obs_dim, A = a->num_actions;
  float obs[ACT_N * ACT_MAX_OBS], state0[ACT_N * ACT_MAX_STATE + 1];
  float s1[ACT_N * ACT_MAX_STATE + 1], s2[ACT_N * ACT_MAX_STATE + 1];
  float mine[ACT_N * ACT_MAX_STATE + 1], logits[ACT_N * ACT_MAX_A], values[ACT_N];
  float act1[ACT_N], act2[ACT_N], starts[ACT_N] = {0, 1, 0, 0, 1};
  mrl_rng rng = mrl_rng_make(4242);
  int i, k;
  if (S > ACT_MAX_STATE || O > ACT_MAX_OBS || A > ACT_MAX_A) {
    MRL_CHECK(0, "%s: test buffers too small", label);
    return;
  }
  fill_uniform(obs, n * O, &rng, -1.0f, 1.0f);
  fill_uniform(state0, n * S + 1, &rng, -0.5f, 0.5f);
  memcpy(s1, state0, sizeof state0);
  memcpy(s2, state0, sizeof state0);
  memcpy(mine, state0, sizeof state0);
  MRL_CHECK(mrl_ppo_act(a, obs, n, starts, s1, 1, NULL, act1) == MRL_OK, "%s: act failed", label);
  MRL_CHECK(mrl_ppo_act(a, obs, n, starts, s2, 1, NULL, act2) == MRL_OK, "%s: act failed", label);
  MRL_CHECK(memcmp(act1, act2, sizeof act1) == 0 && memcmp(s1, s2, sizeof s1) == 0,
            "%s: greedy act from the same state is not repeatable", label);
  /* the actor computed through the public layer functions */
  if (!tower_step(a, &a->actor, 1, obs, n, starts, mine, logits)) {
    MRL_CHECK(0, "%s: actor forward failed", label);
    return;
  }
  for (i = 0; i < n; i++) {
    int best = 0;
    for (k = 1; k < A; k++)
      if (logits[i * A + k] > logits[i * A + best]) best = k;
    MRL_CHECK(act1[i] == (float)best, "%s: greedy action %g of obs %d, argmax of logits %d", label,
              act1[i], i, best);
  }
  for (i = 0; i < n; i++)
    MRL_CHECK(memcmp(s1 + i * S, mine + i * S, sizeof(float) * (size_t)a->actor.state_dim) == 0,
              "%s: actor state of env %d after act differs from the actor's own step", label, i);
  if (critic_state_dim(a)) {
    /* the critic's state advances too (mrl_ppo_value reads it later) */
    if (tower_step(a, &a->critic, 0, obs, n, starts, mine, values)) {
      for (i = 0; i < n; i++)
        MRL_CHECK(memcmp(s1 + i * S + a->actor.state_dim, mine + i * S + a->actor.state_dim,
                         sizeof(float) * (size_t)critic_state_dim(a)) == 0,
                  "%s: critic state of env %d after act differs from the critic's own step", label,
                  i);
    }
  }
  if (S) {
    int changed = 0;
    for (i = 0; i < n; i++)
      for (k = 0; k < S; k++) changed += s1[i * S + k] != state0[i * S + k];
    MRL_CHECK(changed >= n * S - 2, "%s: only %d of %d state floats changed", label, changed,
              n * S);
    changed = 0;
    for (i = 0; i < n; i++)
      for (k = 0; k < critic_state_dim(a); k++)
        changed += s1[i * S + a->actor.state_dim + k] != state0[i * S + a->actor.state_dim + k];
    MRL_CHECK(changed == n * critic_state_dim(a),
              "%s: %d of %d floats of the critic's state advanced", label, changed,
              n * critic_state_dim(a));
    MRL_CHECK(s1[n * S] == state0[n * S], "%s: act wrote past the state", label);
  }
}

static void act_episode_start(const char *label, mrl_ppo *a) {
  const int n = ACT_N, S = a->state_dim, O = a->obs_dim;
  float obs[ACT_N * ACT_MAX_OBS], garbage[ACT_N * ACT_MAX_STATE + 1];
  float zero[ACT_N * ACT_MAX_STATE + 1], act_g[ACT_N], act_z[ACT_N], val_g[ACT_N], val_z[ACT_N];
  float ones[ACT_N] = {1, 1, 1, 1, 1}, some[ACT_N] = {1, 0, 1, 0, 1};
  mrl_rng rng = mrl_rng_make(99);
  int i, differ = 0;
  if (!S) return;
  fill_uniform(obs, n * O, &rng, -1.0f, 1.0f);
  for (i = 0; i < n * S + 1; i++) garbage[i] = 3.0f;
  memset(zero, 0, sizeof zero);
  MRL_CHECK(mrl_ppo_value(a, obs, n, ones, garbage, val_g) == MRL_OK &&
                mrl_ppo_value(a, obs, n, NULL, zero, val_z) == MRL_OK,
            "%s: value failed", label);
  MRL_CHECK(memcmp(val_g, val_z, sizeof val_g) == 0,
            "%s: value with episode_start=1 from a garbage state differs from zero state", label);
  MRL_CHECK(garbage[0] == 3.0f && zero[0] == 0.0f, "%s: mrl_ppo_value changed the state", label);
  MRL_CHECK(mrl_ppo_act(a, obs, n, ones, garbage, 1, NULL, act_g) == MRL_OK &&
                mrl_ppo_act(a, obs, n, NULL, zero, 1, NULL, act_z) == MRL_OK,
            "%s: act failed", label);
  MRL_CHECK(memcmp(act_g, act_z, sizeof act_g) == 0 &&
                memcmp(garbage, zero, sizeof(float) * (size_t)(n * S)) == 0,
            "%s: act with episode_start=1 from a garbage state differs from zero state", label);
  /* only the flagged environments are reset */
  for (i = 0; i < n * S; i++) garbage[i] = 3.0f;
  memset(zero, 0, sizeof zero);
  mrl_ppo_act(a, obs, n, some, garbage, 1, NULL, act_g);
  mrl_ppo_act(a, obs, n, NULL, zero, 1, NULL, act_z);
  for (i = 0; i < n; i++) {
    int same = memcmp(garbage + i * S, zero + i * S, sizeof(float) * (size_t)S) == 0;
    if (some[i] != 0.0f)
      MRL_CHECK(same, "%s: env %d flagged but not reset", label, i);
    else
      differ += !same;
  }
  MRL_CHECK(differ == 2, "%s: %d unflagged envs kept their state, want 2", label, differ);
}

static void act_sampling(const char *label, mrl_ppo *a) {
  enum { N = 64 };
  const int S = a->state_dim, O = a->obs_dim, A = a->num_actions;
  float *obs = (float *)malloc(sizeof(float) * N * O);
  float *s1 = (float *)calloc((size_t)(N * S + 1), sizeof(float));
  float *s2 = (float *)calloc((size_t)(N * S + 1), sizeof(float));
  float act1[N], act2[N];
  mrl_rng r1 = mrl_rng_make(2024), r2 = mrl_rng_make(2024), own = a->rng;
  int i, counts[ACT_MAX_A] = {0}, used = 0;
  if (!obs || !s1 || !s2 || A > ACT_MAX_A) {
    free(obs);
    free(s1);
    free(s2);
    return;
  }
  for (i = 0; i < N * O; i++) obs[i] = 0.1f * (float)(i % 7) - 0.3f;
  MRL_CHECK(mrl_ppo_act(a, obs, N, NULL, s1, 0, &r1, act1) == MRL_OK &&
                mrl_ppo_act(a, obs, N, NULL, s2, 0, &r2, act2) == MRL_OK,
            "%s: sampling act failed", label);
  MRL_CHECK(memcmp(act1, act2, sizeof act1) == 0 && memcmp(&r1, &r2, sizeof r1) == 0,
            "%s: sampling with equally seeded rngs differs", label);
  MRL_CHECK(memcmp(&own, &a->rng, sizeof own) == 0,
            "%s: sampling with an explicit rng used the agent's", label);
  for (i = 0; i < N; i++) {
    int k = (int)act1[i];
    MRL_CHECK((float)k == act1[i] && k >= 0 && k < A, "%s: sampled action %g", label, act1[i]);
    if (k >= 0 && k < A) counts[k]++;
  }
  for (i = 0; i < A; i++) used += counts[i] > 0;
  MRL_CHECK(used >= 2, "%s: %d sampled actions all the same", label, N);
  MRL_CHECK(mrl_ppo_act(a, obs, N, NULL, s1, 0, NULL, act1) == MRL_OK &&
                memcmp(&own, &a->rng, sizeof own) != 0,
            "%s: sampling without an rng did not use the agent's", label);
  free(obs);
  free(s1);
  free(s2);
}

static void act_no_allocation(const char *label, mrl_ppo *a, int n, int calls) {
  const int S = a->state_dim, O = a->obs_dim;
  float *obs = (float *)malloc(sizeof(float) * (size_t)(n * O));
  float *state = (float *)calloc((size_t)(n * S + 1), sizeof(float));
  float *starts = (float *)calloc((size_t)n, sizeof(float));
  float *out = (float *)malloc(sizeof(float) * (size_t)n);
  mrl_rng rng = mrl_rng_make(5);
  long before;
  int i, ok = 1;
  if (!obs || !state || !starts || !out) {
    MRL_CHECK(0, "%s: test allocation failed", label);
  } else {
    fill_uniform(obs, n * O, &rng, -1.0f, 1.0f);
    for (i = 0; i < n; i += 3) starts[i] = 1.0f;
    ok &= mrl_ppo_act(a, obs, n, starts, state, 0, NULL, out) == MRL_OK; /* warm-up */
    before = test_alloc_calls;
    for (i = 0; i < calls; i++)
      ok &= mrl_ppo_act(a, obs, n, i % 5 ? NULL : starts, state, i & 1, (i & 2) ? &rng : NULL,
                        out) == MRL_OK;
    MRL_CHECK(ok, "%s: act failed", label);
    MRL_CHECK(test_alloc_calls == before, "%s: %d act calls with n=%d made %ld heap allocations",
              label, calls, n, test_alloc_calls - before);
    ok &= mrl_ppo_value(a, obs, n, starts, state, out) == MRL_OK; /* warm-up */
    before = test_alloc_calls;
    for (i = 0; i < calls; i++)
      ok &= mrl_ppo_value(a, obs, n, i % 5 ? NULL : starts, state, out) == MRL_OK;
    MRL_CHECK(ok, "%s: value failed", label);
    MRL_CHECK(test_alloc_calls == before, "%s: %d value calls with n=%d made %ld heap allocations",
              label, calls, n, test_alloc_calls - before);
  }
  free(obs);
  free(state);
  free(starts);
  free(out);
}

static void act_bad_arguments(const char *label, mrl_ppo *a) {
  float obs[ACT_MAX_OBS] = {0}, state[ACT_MAX_STATE + 1] = {0}, out[1];
  mrl_result r;
  r = mrl_ppo_act(a, obs, 0, NULL, state, 1, NULL, out);
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT, "%s: act n=0 gave %d", label, (int)r);
  r = mrl_ppo_act(a, obs, -3, NULL, state, 1, NULL, out);
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT, "%s: act n=-3 gave %d", label, (int)r);
  r = mrl_ppo_act(a, NULL, 1, NULL, state, 1, NULL, out);
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT, "%s: act obs=NULL gave %d", label, (int)r);
  r = mrl_ppo_act(a, obs, 1, NULL, state, 1, NULL, NULL);
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT, "%s: act actions=NULL gave %d", label, (int)r);
  r = mrl_ppo_value(a, obs, 0, NULL, state, out);
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT, "%s: value n=0 gave %d", label, (int)r);
  r = mrl_ppo_value(a, NULL, 1, NULL, state, out);
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT, "%s: value obs=NULL gave %d", label, (int)r);
  r = mrl_ppo_value(a, obs, 1, NULL, state, NULL);
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT, "%s: value values=NULL gave %d", label, (int)r);
  r = mrl_ppo_act(a, obs, 1, NULL, NULL, 1, NULL, out);
  if (a->state_dim) {
    MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT, "%s: act state=NULL gave %d", label, (int)r);
    r = mrl_ppo_value(a, obs, 1, NULL, NULL, out);
    MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT, "%s: value state=NULL gave %d", label, (int)r);
  } else {
    MRL_CHECK(r == MRL_OK, "%s: feedforward act with state=NULL gave %d", label, (int)r);
  }
}

static void act_case(const char *label, const char *id, mrl_ppo_config cfg) {
  mrl_vecenv env;
  mrl_ppo a;
  if (mrl_vecenv_init(&env, id, 4, 3) != MRL_OK) {
    MRL_CHECK(0, "%s: vecenv_init failed", label);
    return;
  }
  if (mrl_ppo_init(&a, &cfg, &env) != MRL_OK) {
    MRL_CHECK(0, "%s: ppo_init failed", label);
    mrl_vecenv_free(&env);
    return;
  }
  /* a little training so the logits are not the initial near-uniform ones */
  MRL_CHECK(mrl_ppo_train(&a, &env, 2 * 4 * cfg.num_steps, NULL, NULL) == MRL_OK,
            "%s: train failed", label);
  if (!cfg.normalize_obs && a.num_actions > 0) act_consistency(label, &a);
  act_episode_start(label, &a);
  if (a.num_actions > 0) act_sampling(label, &a); /* both read categorical logits */
  act_bad_arguments(label, &a);
  act_no_allocation(label, &a, 8, 1000);
  act_no_allocation(label, &a, 1, 1000);
  /* a batch large enough to outgrow the acting arena's first block */
  act_no_allocation(label, &a, 700, 20);
  mrl_ppo_free(&a);
  mrl_vecenv_free(&env);
}

static void test_act(void) {
  mrl_ppo_config c;
  act_case("act mlp CartPole-v1", "CartPole-v1", small_config(0, 0));
  act_case("act lstm separate TMaze-5", "TMaze-5", small_config(1, 0));
  act_case("act lstm shared TMaze-5", "TMaze-5", small_config(1, 1));
  c = small_config(1, 0);
  c.normalize_obs = 1;
  act_case("act lstm normalize_obs StatelessCartPole-v1", "StatelessCartPole-v1", c);
  /* box actions: Gaussian and tanh-squashed heads, feedforward and LSTM */
  act_case("act mlp Pendulum-v1", "Pendulum-v1", small_config(0, 0));
  c = small_config(1, 0);
  c.squash_actions = 1;
  act_case("act lstm squashed StatelessPendulum-v1", "StatelessPendulum-v1", c);
}

/* ------------------------------------------------------------------------ */
/* observation normaliser                                                   */
/* ------------------------------------------------------------------------ */

/* The running statistics start from count 1e-4, mean 0, var 1 (SB3's
 * RunningMeanStd): exactly the statistics of the data together with one
 * pseudo-observation of weight 1e-4, mean 0 and variance 1. The test
 * compares with that exact formula, computed in two passes:
 *   n = 1e-4 + N,  mean = sum(x) / n,
 *   var = (1e-4 * (1 + mean^2) + sum((x - mean)^2)) / n. */
static void test_obs_normalizer(void) {
  enum { D = 3, MAX_ROWS = 200 };
  static const int batches[] = {5, 17, 1, 40, 3};
  float data[MAX_ROWS * D], out[4 * D], in[4 * D];
  mrl_obs_normalizer nz;
  mrl_rng rng = mrl_rng_make(8);
  int rows = 0, b, r, i;
  if (mrl_obs_normalizer_init(&nz, D) != MRL_OK) {
    MRL_CHECK(0, "obs_normalizer_init failed");
    return;
  }
  MRL_CHECK(nz.dim == D && nz.count == 1e-4 && nz.clip == 10.0f && nz.mean[0] == 0.0 &&
                nz.var[0] == 1.0,
            "obs_normalizer_init: count %g clip %g mean %g var %g", nz.count, nz.clip, nz.mean[0],
            nz.var[0]);
  for (b = 0; b < (int)(sizeof batches / sizeof batches[0]); b++) {
    float *x = data + rows * D;
    for (r = 0; r < batches[b]; r++) {
      x[r * D + 0] = 3.0f + mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
      x[r * D + 1] = 100.0f * mrl_rng_normal(&rng);
      x[r * D + 2] = 2.5f; /* constant */
    }
    mrl_obs_normalizer_update(&nz, x, batches[b]);
    rows += batches[b];
  }
  for (i = 0; i < D; i++) {
    double n = 1e-4 + rows, sum = 0.0, ss = 0.0, mean, var;
    char what[64];
    for (r = 0; r < rows; r++) sum += data[r * D + i];
    mean = sum / n;
    for (r = 0; r < rows; r++) ss += (data[r * D + i] - mean) * (data[r * D + i] - mean);
    var = (1e-4 * (1.0 + mean * mean) + ss) / n;
    snprintf(what, sizeof what, "normaliser mean[%d]", i);
    MRL_CHECK_NEAR(nz.mean[i], mean, 1e-12, 1e-6, what);
    snprintf(what, sizeof what, "normaliser var[%d]", i);
    MRL_CHECK_NEAR(nz.var[i], var, 1e-12, 1e-6, what);
  }
  MRL_CHECK_NEAR(nz.count, 1e-4 + rows, 0.0, 1e-12, "normaliser count");
  /* apply: (x - mean) / sqrt(var + 1e-8), clipped at +-10 */
  in[0] = 3.2f;
  in[1] = 20.0f;
  in[2] = 2.5f;
  in[3] = -1e6f;
  in[4] = 1e6f;
  in[5] = 3.0f; /* constant dimension: a tiny variance blows this up */
  in[6] = 1e6f;
  in[7] = -1e6f;
  in[8] = 2.0f;
  in[9] = 2.9f;
  in[10] = -45.0f;
  in[11] = 2.5f + 1e-3f;
  mrl_obs_normalizer_apply(&nz, in, 4, out);
  for (r = 0; r < 4; r++)
    for (i = 0; i < D; i++) {
      double want = (in[r * D + i] - nz.mean[i]) / sqrt(nz.var[i] + 1e-8);
      char what[64];
      if (want > 10.0) want = 10.0;
      if (want < -10.0) want = -10.0;
      snprintf(what, sizeof what, "normaliser apply row %d dim %d", r, i);
      MRL_CHECK_NEAR(out[r * D + i], want, 1e-6, 1e-6, what);
    }
  MRL_CHECK(out[3] == -10.0f && out[4] == 10.0f && out[5] == 10.0f && out[6] == 10.0f &&
                out[7] == -10.0f && out[8] == -10.0f,
            "normaliser apply: not clipped at exactly +-10 (%g %g %g %g %g %g)", out[3], out[4],
            out[5], out[6], out[7], out[8]);
  MRL_CHECK(fabsf(out[0]) < 10.0f && fabsf(out[1]) < 10.0f, "normaliser apply: %g %g", out[0],
            out[1]);
  mrl_obs_normalizer_free(&nz);
  MRL_CHECK(nz.mean == NULL && nz.var == NULL, "obs_normalizer_free: pointers not cleared");
}

/* ------------------------------------------------------------------------ */
/* CSV logger and progress line                                             */
/* ------------------------------------------------------------------------ */

static mrl_train_progress sample_progress(int iteration, float success) {
  mrl_train_progress p;
  memset(&p, 0, sizeof p);
  p.algo = "ppo";
  p.env_id = "CartPole-v1";
  p.iteration = iteration;
  p.num_iterations = 3;
  p.env_steps = 512LL * iteration;
  p.seconds = 0.5 * iteration;
  p.steps_per_second = 1024.0;
  p.episodes = 10LL * iteration;
  p.mean_return = 21.5f;
  p.mean_length = 21.5f;
  p.success_rate = success;
  p.learning_rate = 2.5e-4f;
  mrl_progress_set(&p, "policy_loss", -0.01f);
  mrl_progress_set(&p, "value_loss", 3.0f);
  mrl_progress_set(&p, "entropy", 0.69f);
  mrl_progress_set(&p, "approx_kl", 0.001f);
  mrl_progress_set(&p, "clip_fraction", 0.05f);
  mrl_progress_set(&p, "explained_variance", 0.3f);
  return p;
}

/* Reads a text file into buf; returns the number of lines (0 on failure). */
static int read_lines(FILE *f, char *buf, size_t cap) {
  size_t len;
  int lines = 0;
  char *s;
  rewind(f);
  len = fread(buf, 1, cap - 1, f);
  buf[len] = '\0';
  for (s = buf; *s; s++) lines += *s == '\n';
  return lines;
}

static int count_char(const char *s, const char *end, char c) {
  int k = 0;
  for (; s < end && *s; s++) k += *s == c;
  return k;
}

static void test_csv_logger(void) {
  char path[128], buf[4096];
  mrl_csv_logger log;
  mrl_train_progress p;
  FILE *f;
  int i, lines;
  snprintf(path, sizeof path, "/tmp/memrl_test_algos_%ld.csv", (long)test_getpid());
  MRL_CHECK(mrl_csv_logger_open(&log, "/nonexistent-memrl-dir/x/log.csv") == MRL_ERR_IO,
            "csv_logger_open: an unwritable path must give MRL_ERR_IO");
  if (mrl_csv_logger_open(&log, path) != MRL_OK) {
    MRL_CHECK(0, "csv_logger_open(%s) failed", path);
    return;
  }
  for (i = 1; i <= 3; i++) {
    p = sample_progress(i, i == 2 ? 0.5f : -1.0f);
    MRL_CHECK(mrl_csv_logger_write(&p, &log) == 0, "csv_logger_write asked to stop");
  }
  mrl_csv_logger_close(&log);
  MRL_CHECK(log.file == NULL, "csv_logger_close: file not cleared");
  MRL_CHECK(mrl_csv_logger_write(&p, &log) == 0, "csv_logger_write on a closed logger");
  f = fopen(path, "r");
  MRL_CHECK(f != NULL, "csv: cannot reopen %s", path);
  if (f) {
    const char *line = buf, *next;
    int header_commas = -1;
    lines = read_lines(f, buf, sizeof buf);
    fclose(f);
    MRL_CHECK(lines == 4, "csv: %d lines, want a header and 3 rows", lines);
    MRL_CHECK(strncmp(buf, "algo,env,iteration,env_steps,", 29) == 0, "csv: header '%.40s'", buf);
    for (i = 0; i < lines && (next = strchr(line, '\n')) != NULL; i++, line = next + 1) {
      int commas = count_char(line, next, ',');
      if (i == 0) {
        header_commas = commas;
        continue;
      }
      MRL_CHECK(commas == header_commas, "csv row %d: %d fields, header %d", i, commas + 1,
                header_commas + 1);
    }
    /* 11 common columns and the 6 metrics */
    MRL_CHECK(header_commas == 16, "csv: %d columns, want 17", header_commas + 1);
    MRL_CHECK(strstr(buf, ",learning_rate,policy_loss,value_loss,entropy,approx_kl,clip_fraction,"
                          "explained_variance\n") != NULL,
              "csv: the header does not end with the metric names: '%.200s'", buf);
    line = strchr(buf, '\n');
    MRL_CHECK(line && strncmp(line + 1, "ppo,CartPole-v1,1,512,", 22) == 0,
              "csv: first row '%.30s'", line ? line + 1 : "");
  }
  remove(path);

  /* as the progress function of a training run: one row per iteration */
  {
    mrl_vecenv env;
    mrl_ppo a;
    mrl_ppo_config c = small_config(0, 0);
    if (mrl_vecenv_init(&env, "CartPole-v1", 2, 1) == MRL_OK) {
      if (mrl_ppo_init(&a, &c, &env) == MRL_OK) {
        if (mrl_csv_logger_open(&log, path) == MRL_OK) {
          MRL_CHECK(mrl_ppo_train(&a, &env, 3 * 2 * c.num_steps, mrl_csv_logger_write, &log) ==
                        MRL_OK,
                    "csv: training with the logger failed");
          mrl_csv_logger_close(&log);
          f = fopen(path, "r");
          if (f) {
            lines = read_lines(f, buf, sizeof buf);
            fclose(f);
            MRL_CHECK(lines == 4, "csv: training 3 iterations wrote %d lines, want 4", lines);
          }
          remove(path);
        }
        mrl_ppo_free(&a);
      }
      mrl_vecenv_free(&env);
    }
  }
}

static void test_progress_print(void) {
  char buf[1024];
  mrl_train_progress p = sample_progress(2, -1.0f);
  FILE *f = tmpfile();
  int lines;
  if (!f) {
    MRL_CHECK(0, "tmpfile failed");
    return;
  }
  MRL_CHECK(mrl_progress_print(&p, f) == 0, "progress_print asked to stop");
  lines = read_lines(f, buf, sizeof buf);
  MRL_CHECK(lines == 1 && buf[strlen(buf) - 1] == '\n', "progress_print: %d lines", lines);
  MRL_CHECK(strstr(buf, "ppo") && strstr(buf, "CartPole-v1") && strstr(buf, "2/3") &&
                strstr(buf, "success -"),
            "progress_print: '%s'", buf);
  fclose(f);
  f = tmpfile();
  if (!f) return;
  p = sample_progress(3, 0.25f);
  mrl_progress_print(&p, f);
  lines = read_lines(f, buf, sizeof buf);
  MRL_CHECK(lines == 1 && strstr(buf, "success 0.25") && strstr(buf, "3/3"),
            "progress_print with success: '%s'", buf);
  fclose(f);
}

/* Reward normalisation (SB3 VecNormalize's norm_reward), checked against an
 * independent computation: each environment's discounted return, pooled
 * moments of every return so far (with the running statistics' prior: mean
 * 0, variance 1, count 1e-4), reward / sqrt(var + 1e-8) clipped to +-10. */
static void test_reward_normalization(void) {
  enum { B = 4, T = 64 };
  mrl_ppo_config cfg = small_config(0, 0);
  mrl_vecenv env;
  mrl_ppo agent;
  double ret[B] = {0}, sum = 0.0, sumsq = 0.0, n = 1e-4, worst = 0.0;
  int t, b, ends = 0;
  cfg.num_steps = T;
  cfg.normalize_reward = 1;
  cfg.gamma = 0.9f;
  if (mrl_vecenv_init(&env, "CartPole-v1", B, 3) != MRL_OK) return;
  if (mrl_ppo_init(&agent, &cfg, &env) != MRL_OK) {
    MRL_CHECK(0, "reward normalisation: init failed");
    mrl_vecenv_free(&env);
    return;
  }
  MRL_CHECK(mrl_ppo_train(&agent, &env, (long long)T * B, NULL, NULL) == MRL_OK,
            "reward normalisation: train failed");
  sumsq = 1e-4; /* the prior's second moment: count 1e-4 x (variance 1 + mean 0^2) */
  for (t = 0; t < T; t++) {
    double mean, var;
    for (b = 0; b < B; b++) {
      ret[b] = ret[b] * 0.9 + 1.0; /* CartPole pays 1 every step */
      sum += ret[b];
      sumsq += ret[b] * ret[b];
      n += 1.0;
    }
    mean = sum / n;
    var = sumsq / n - mean * mean;
    for (b = 0; b < B; b++) {
      double want = 1.0 / sqrt(var + 1e-8), got = agent.rollout.rewards[t * B + b];
      if (want > 10.0) want = 10.0;
      if (fabs(got - want) > worst) worst = fabs(got - want);
      if (agent.rollout.terminated[t * B + b] != 0.0f ||
          agent.rollout.truncated[t * B + b] != 0.0f) {
        ret[b] = 0.0;
        ends++;
      }
    }
  }
  MRL_CHECK(worst < 1e-4, "reward normalisation: largest difference %g", worst);
  MRL_CHECK(ends > 0, "reward normalisation: no episode ended, the reset is untested");
  mrl_ppo_free(&agent);
  mrl_vecenv_free(&env);
}

int main(void) {
  test_config_default();
  test_init_rejects();
  test_smoke();
  test_determinism();
  test_act();
  test_obs_normalizer();
  test_reward_normalization();
  test_csv_logger();
  test_progress_print();
  return mrl_test_summary("test_algos");
}
