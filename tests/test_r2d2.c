/* R2D2 (memrl_algos.h): one update pinned against its PyTorch twin
 * (tools/make_ref.py make_r2d2_update: burn-in from stored states without
 * gradient, n-step double-Q targets with value rescaling, bootstrap entries
 * after terminated and truncated steps, importance weights, one Adam step,
 * the priorities written back), acting without allocation, bitwise
 * determinism and save/load resuming bitwise (replay included), the
 * feedforward core, init errors naming the field, DRQN's schemes, and (a
 * build with -DMRL_THREADS -pthread, run by tools/run_tests.sh) the learner
 * on its own thread and Ape-X actor threads (num_actors 3): each steps its
 * own block with its own epsilon, they learn TMaze-5, stop early without
 * deadlock, and a multi-actor checkpoint loads and trains on.
 * Run from the repository root:  cc -std=c99 -O2 tests/test_r2d2.c -lm && ./a.out */
#define MEMRL_IMPLEMENTATION
#define MRL_TEST_COUNT_ALLOCATIONS
#include "test.h"
#include "../memrl_algos.h"
#include "ref_loader.h"

static void pinned_update(void) {
  enum { O = 3, A = 4, L = 2, T = 6, W = L + T, N = 3, H = 4 };
  mrl_r2d2_config cfg = mrl_r2d2_config_default();
  mrl_vecenv env;
  mrl_r2d2 a;
  mrl_ref_file f;
  mrl_r2d2_update_stats st;
  float obs[W * N * O], act[W * N], rew[W * N], starts[W * N], term[W * N], trunc[W * N],
      valid[W * N], state[N * 2 * H], weights[N], want_prio[N];
  int idx[N] = {0, 1, 2}, i, t, k;
  char name[128];
  cfg.net.encoder_sizes[0] = 5;
  cfg.net.core = mrl_core_config_lstm(H);
  cfg.replay.capacity = N;
  cfg.replay.burn_in = L;
  cfg.replay.seq_len = T;
  cfg.replay.overlap = 0;
  cfg.batch_size = N;
  cfg.n_step = 3;
  cfg.gamma = 0.9f;
  cfg.learning_rate = 0.01f;
  cfg.adam_eps = 1e-3f;
  if (!mrl_ref_open(&f, "tests/ref/r2d2_update.txt")) return;
  MRL_CHECK(mrl_vecenv_init(&env, "TMaze-3", 2, 1) == MRL_OK, "env");
  if (mrl_r2d2_init(&a, &cfg, &env) != MRL_OK) {
    MRL_CHECK(0, "init: %s", a.error);
    return;
  }
  for (k = 0; k < a.params.count; k++) {
    snprintf(name, sizeof name, "init.%s", a.params.items[k].name);
    mrl_ref_fill(&f, name, a.params.items[k].tensor.data, a.params.items[k].tensor.size);
    snprintf(name, sizeof name, "target.%s", a.target.items[k].name);
    mrl_ref_fill(&f, name, a.target.items[k].tensor.data, a.target.items[k].tensor.size);
  }
  mrl_ref_fill(&f, "obs", obs, W * N * O);
  mrl_ref_fill(&f, "actions", act, W * N);
  mrl_ref_fill(&f, "rewards", rew, W * N);
  mrl_ref_fill(&f, "starts", starts, W * N);
  mrl_ref_fill(&f, "terminated", term, W * N);
  mrl_ref_fill(&f, "truncated", trunc, W * N);
  mrl_ref_fill(&f, "valid", valid, W * N);
  mrl_ref_fill(&f, "state", state, N * 2 * H);
  mrl_ref_fill(&f, "weights", weights, N);
  mrl_ref_fill(&f, "priorities", want_prio, N);
  /* the three sequences into replay slots 0..2 (the fixture is time-major) */
  for (i = 0; i < N; i++) {
    for (t = 0; t < W; t++) {
      size_t to = (size_t)i * W + t, from = (size_t)t * N + i;
      memcpy(a.replay.obs + to * O, obs + from * O, sizeof(float) * O);
      a.replay.actions[to] = act[from];
      a.replay.rewards[to] = rew[from];
      a.replay.episode_starts[to] = starts[from];
      a.replay.terminated[to] = term[from];
      a.replay.truncated[to] = trunc[from];
      a.replay.valid[to] = valid[from];
    }
    memcpy(a.replay.state + (size_t)i * 2 * H, state + i * 2 * H, sizeof(float) * 2 * H);
  }
  a.replay.size = N;
  MRL_CHECK(mrl_r2d2_learn(&a, idx, N, weights, &st) == MRL_OK, "learn: %s", a.error);
  {
    float loss = st.loss;
    mrl_ref_expect(&f, "loss", &loss, 1, 1e-6, 1e-5);
  }
  mrl_ref_expect(&f, "priorities", a.b_prio, N, 1e-6, 1e-5);
  for (i = 0; i < N; i++)
    MRL_CHECK_NEAR(mrl_sum_tree_get(&a.replay.tree, i),
                   pow((double)want_prio[i] + (double)cfg.replay.priority_eps,
                       (double)cfg.replay.priority_exponent),
                   1e-6, 1e-5, "priority written back as (p + eps)^alpha");
  for (k = 0; k < a.params.count; k++) {
    mrl_param *p = &a.params.items[k];
    snprintf(name, sizeof name, "grad.%s", p->name);
    mrl_ref_expect(&f, name, a.params.grads + p->offset, p->tensor.size, 1e-6, 1e-4);
    snprintf(name, sizeof name, "after.%s", p->name);
    mrl_ref_expect(&f, name, p->tensor.data, p->tensor.size, 1e-6, 1e-5);
  }
  MRL_CHECK(a.updates == 1, "one update counted");
  mrl_ref_close(&f);
  mrl_r2d2_free(&a);
  mrl_vecenv_free(&env);
}

static mrl_r2d2_config small_config(const char *core) {
  mrl_r2d2_config cfg = mrl_r2d2_config_default();
  char err[128];
  mrl_core_config_parse(core, &cfg.net.core, err, sizeof err);
  cfg.net.encoder_sizes[0] = 16;
  cfg.replay.capacity = 64;
  cfg.replay.seq_len = 8;
  cfg.replay.overlap = 4;
  cfg.replay.burn_in = 4;
  cfg.batch_size = 4;
  cfg.learning_starts = 2;
  cfg.update_every = 8;
  cfg.target_period = 10;
  cfg.learning_rate = 1e-3f;
  return cfg;
}

static int same_floats(const float *a, const float *b, size_t n) {
  return memcmp(a, b, sizeof(float) * n) == 0;
}

static void resume_and_determinism(const char *core) {
  mrl_r2d2_config cfg = small_config(core);
  mrl_vecenv e1, e2, e3;
  mrl_r2d2 a, b, c;
  const char *path = "build/test_r2d2.safetensors";
  mrl_result r;
  mrl_vecenv_init(&e1, "TMaze-5", 4, 3);
  mrl_vecenv_init(&e2, "TMaze-5", 4, 3);
  mrl_vecenv_init(&e3, "TMaze-5", 4, 3);
  MRL_CHECK(mrl_r2d2_init(&a, &cfg, &e1) == MRL_OK, "%s init a: %s", core, a.error);
  MRL_CHECK(mrl_r2d2_init(&b, &cfg, &e2) == MRL_OK, "%s init b", core);
  MRL_CHECK(mrl_r2d2_init(&c, &cfg, &e3) == MRL_OK, "%s init c", core);
  /* a: 1200 steps, saved, 1200 more; b: the same 2400 in one call; c: loads
   * a's checkpoint and trains the last 1200 */
  MRL_CHECK(mrl_r2d2_train(&a, &e1, 1200, NULL, NULL) == MRL_OK, "%s train a: %s", core, a.error);
  MRL_CHECK(a.updates > 10 && a.replay.added > 10, "%s: it learned (%lld updates)", core,
            a.updates);
  r = mrl_r2d2_save(&a, path, &e1);
  MRL_CHECK(r == MRL_OK, "%s save: %s", core, mrl_result_string(r));
  MRL_CHECK(mrl_r2d2_train(&a, &e1, 1200, NULL, NULL) == MRL_OK, "%s train a again", core);
  MRL_CHECK(mrl_r2d2_train(&b, &e2, 2400, NULL, NULL) == MRL_OK, "%s train b", core);
  MRL_CHECK(same_floats(a.params.values, b.params.values, a.params.total) &&
                same_floats(a.target.values, b.target.values, a.target.total),
            "%s: two calls equal one, bitwise (single thread)", core);
  r = mrl_r2d2_load(&c, path, &e3);
  MRL_CHECK(r == MRL_OK, "%s load: %s", core, c.error);
  MRL_CHECK(mrl_r2d2_train(&c, &e3, 1200, NULL, NULL) == MRL_OK, "%s train c", core);
  MRL_CHECK(same_floats(a.params.values, c.params.values, a.params.total) &&
                same_floats(a.params.moment1, c.params.moment1, a.params.total) &&
                same_floats(a.target.values, c.target.values, a.target.total),
            "%s: resumed from the checkpoint, the run continues bitwise", core);
  MRL_CHECK(a.replay.added == c.replay.added && a.updates == c.updates &&
                memcmp(a.replay.priority, c.replay.priority,
                       sizeof(double) * (size_t)cfg.replay.capacity) == 0 &&
                mrl_sum_tree_total(&a.replay.tree) == mrl_sum_tree_total(&c.replay.tree),
            "%s: the replay resumes too", core);
  /* a checkpoint of another config is refused by field */
  {
    mrl_r2d2_config other = cfg;
    mrl_r2d2 d;
    other.n_step = 4;
    mrl_r2d2_init(&d, &other, &e3);
    MRL_CHECK(mrl_r2d2_load(&d, path, NULL) != MRL_OK && strstr(d.error, "n_step"),
              "%s: a config mismatch names the field: %s", core, d.error);
    mrl_r2d2_free(&d);
  }
  remove(path);
  mrl_r2d2_free(&a);
  mrl_r2d2_free(&b);
  mrl_r2d2_free(&c);
  mrl_vecenv_free(&e1);
  mrl_vecenv_free(&e2);
  mrl_vecenv_free(&e3);
}

static void act_allocates_nothing(void) {
  mrl_r2d2_config cfg = small_config("lstm:16");
  mrl_vecenv env;
  mrl_r2d2 a;
  float obs[4 * 3], starts[4] = {1, 1, 1, 1}, state[4 * 64], actions[4], eps_rows = 0.0f;
  long before;
  int k, explored = 0;
  mrl_rng rng = mrl_rng_make(9);
  mrl_vecenv_init(&env, "TMaze-5", 4, 1);
  mrl_r2d2_init(&a, &cfg, &env);
  MRL_CHECK(mrl_r2d2_state_dim(&a) == 32 && a.state_dim <= 64, "LSTM state h, c");
  memset(state, 0, sizeof state);
  memcpy(obs, env.obs, sizeof obs);
  mrl_r2d2_act(&a, obs, 4, starts, state, 1, NULL, actions); /* warm */
  before = test_alloc_calls;
  for (k = 0; k < 50; k++) {
    mrl_r2d2_act(&a, obs, 4, starts, state, k % 2, &rng, actions);
    starts[k % 4] = 0.0f;
  }
  MRL_CHECK(test_alloc_calls == before, "act allocates nothing once warm (%ld)",
            test_alloc_calls - before);
  /* Ape-X epsilons over the environments: 0.4 for the first, 0.4^8 for the last */
  MRL_CHECK_NEAR(a.epsilons[0], 0.4, 1e-7, 1e-6, "epsilon_0");
  MRL_CHECK_NEAR(a.epsilons[3], pow(0.4, 8.0), 1e-7, 1e-5, "epsilon_{N-1}");
  MRL_CHECK_NEAR(a.epsilons[1], pow(0.4, 1.0 + 7.0 / 3.0), 1e-7, 1e-5, "epsilon_1");
  /* greedy acting is argmax of the Q values */
  {
    float q[4 * 4], st2[4 * 64];
    memcpy(st2, state, sizeof st2);
    mrl_r2d2_q_values(&a, obs, 4, NULL, st2, NULL, q);
    mrl_r2d2_act(&a, obs, 4, NULL, state, 1, NULL, actions);
    for (k = 0; k < 4; k++) {
      int j, best = 0;
      for (j = 1; j < 4; j++)
        if (q[k * 4 + j] > q[k * 4 + best]) best = j;
      explored += (int)actions[k] != best;
    }
    MRL_CHECK(explored == 0, "greedy act = argmax Q");
  }
  (void)eps_rows;
  mrl_r2d2_free(&a);
  mrl_vecenv_free(&env);
}

static void init_errors(void) {
  mrl_vecenv env, box;
  mrl_r2d2 a;
  mrl_r2d2_config cfg = small_config("lstm:8");
  mrl_vecenv_init(&env, "TMaze-5", 2, 1);
  cfg.batch_size = 0;
  MRL_CHECK(mrl_r2d2_init(&a, &cfg, &env) == MRL_ERR_INVALID_ARGUMENT &&
                strstr(a.error, "batch_size 0"),
            "batch_size 0: %s", a.error);
  mrl_r2d2_free(&a);
  cfg = small_config("lstm:8");
  cfg.replay.overlap = 8;
  MRL_CHECK(mrl_r2d2_init(&a, &cfg, &env) == MRL_ERR_INVALID_ARGUMENT &&
                strstr(a.error, "replay.overlap 8"),
            "overlap 8: %s", a.error);
  mrl_r2d2_free(&a);
  cfg = small_config("lstm:8");
  cfg.gamma = 1.5f;
  MRL_CHECK(mrl_r2d2_init(&a, &cfg, &env) == MRL_ERR_INVALID_ARGUMENT && strstr(a.error, "gamma"),
            "gamma 1.5: %s", a.error);
  mrl_r2d2_free(&a);
  cfg = small_config("lstm:8");
#ifdef MRL_THREADS
  cfg.num_threads = 3;
#else
  cfg.num_threads = 2;
#endif
  MRL_CHECK(mrl_r2d2_init(&a, &cfg, &env) == MRL_ERR_INVALID_ARGUMENT &&
                strstr(a.error, "num_threads"),
            "num_threads %d refused: %s", cfg.num_threads, a.error);
  mrl_r2d2_free(&a);
  cfg = small_config("lstm:8");
  cfg.num_actors = 2; /* actor threads need the learner's thread (num_threads 2) */
  MRL_CHECK(mrl_r2d2_init(&a, &cfg, &env) == MRL_ERR_INVALID_ARGUMENT &&
                strstr(a.error, "num_actors 2"),
            "num_actors 2 with num_threads 1 refused: %s", a.error);
  mrl_r2d2_free(&a);
#ifdef MRL_THREADS
  cfg.num_threads = 2;
  cfg.num_actors = 3; /* does not divide the environments */
  MRL_CHECK(mrl_r2d2_init(&a, &cfg, &env) == MRL_ERR_INVALID_ARGUMENT &&
                strstr(a.error, "num_actors 3"),
            "num_actors 3 of %d environments refused: %s", env.num_envs, a.error);
  mrl_r2d2_free(&a);
#endif
  cfg = small_config("lstm:8");
  mrl_vecenv_init(&box, "Pendulum-v1", 1, 1);
  MRL_CHECK(mrl_r2d2_init(&a, &cfg, &box) == MRL_ERR_INVALID_ARGUMENT &&
                strstr(a.error, "discrete"),
            "continuous actions refused: %s", a.error);
  mrl_r2d2_free(&a);
  mrl_vecenv_free(&box);
  MRL_CHECK(mrl_r2d2_init(&a, &cfg, &env) == MRL_OK, "a valid config");
  MRL_CHECK(mrl_r2d2_train(&a, &env, -1, NULL, NULL) == MRL_ERR_INVALID_ARGUMENT,
            "negative env_steps");
  MRL_CHECK(mrl_r2d2_update(&a, NULL) == MRL_ERR_INVALID_ARGUMENT, "update on an empty replay");
  mrl_r2d2_free(&a);
  mrl_vecenv_free(&env);
}

/* Loss of one learn step on slots idx, with the stored states replaced by
 * `fill`, the agent restored afterwards. */
static float loss_with_states(mrl_r2d2 *a, const int *idx, int n, float fill) {
  mrl_update_backup bk;
  mrl_r2d2_update_stats st;
  size_t count = (size_t)a->replay.cfg.capacity * a->state_dim;
  float *keep = (float *)malloc(sizeof(float) * (count + 1));
  long long updates = a->updates;
  size_t i;
  memcpy(keep, a->replay.state, sizeof(float) * count);
  for (i = 0; i < count; i++) a->replay.state[i] = fill;
  mrl_update_backup_init(&bk, &a->params);
  mrl_update_backup_save(&bk, &a->params);
  mrl_r2d2_learn(a, idx, n, NULL, &st);
  mrl_update_backup_restore(&bk, &a->params);
  mrl_update_backup_free(&bk);
  memcpy(a->replay.state, keep, sizeof(float) * count);
  a->updates = updates;
  free(keep);
  return st.loss;
}

/* DRQN: both update schemes map onto the engine as the paper's settings,
 * train, and resume bitwise; the random scheme ignores stored states (zero
 * start), R2D2 uses them. */
static void drqn_schemes(void) {
  int scheme;
  for (scheme = 0; scheme < 2; scheme++) {
    mrl_drqn_config cfg = mrl_drqn_config_default();
    mrl_r2d2_config e;
    mrl_vecenv e1, e2;
    mrl_drqn a, c;
    const char *path = "build/test_drqn.safetensors";
    int idx[4] = {0, 1, 2, 3};
    cfg.updates = scheme ? MRL_DRQN_SEQUENTIAL : MRL_DRQN_RANDOM;
    cfg.net.encoder_sizes[0] = 16;
    cfg.net.core = mrl_core_config_lstm(8);
    cfg.capacity = 256;
    cfg.batch_size = 4;
    cfg.learning_starts = 8;
    cfg.update_every = 8;
    cfg.epsilon_anneal_steps = 1000;
    e = mrl_drqn_engine_config(&cfg);
    MRL_CHECK(e.n_step == 1 && e.rescale_eps == 0.0f && e.double_q == 0 &&
                  e.replay.priority_exponent == 0.0f && e.replay.burn_in == 0 &&
                  e.replay.seq_len == cfg.unroll + 1 && e.epsilon_start == 1.0f &&
                  e.sequential == scheme && e.stored_state == 0 &&
                  e.replay.overlap == (scheme ? 1 : cfg.unroll),
              "drqn scheme %d: the paper's settings on the engine", scheme);
    mrl_vecenv_init(&e1, "TMaze-3", 4, 5);
    mrl_vecenv_init(&e2, "TMaze-3", 4, 5);
    MRL_CHECK(mrl_drqn_init(&a, &cfg, &e1) == MRL_OK, "drqn init: %s", a.error);
    MRL_CHECK(mrl_drqn_init(&c, &cfg, &e2) == MRL_OK, "drqn init c");
    MRL_CHECK(mrl_drqn_train(&a, &e1, 1600, NULL, NULL) == MRL_OK, "drqn train: %s", a.error);
    MRL_CHECK(a.engine.updates > 10, "drqn %d learned (%lld updates)", scheme, a.engine.updates);
    if (!scheme) {
      MRL_CHECK(loss_with_states(&a.engine, idx, 4, 0.0f) ==
                    loss_with_states(&a.engine, idx, 4, 0.7f),
                "random updates start from the zero state, whatever is stored");
    }
    MRL_CHECK(mrl_drqn_save(&a, path, &e1) == MRL_OK, "drqn save");
    MRL_CHECK(mrl_drqn_train(&a, &e1, 800, NULL, NULL) == MRL_OK, "drqn train more");
    MRL_CHECK(mrl_drqn_load(&c, path, &e2) == MRL_OK, "drqn load: %s", c.error);
    MRL_CHECK(mrl_drqn_train(&c, &e2, 800, NULL, NULL) == MRL_OK, "drqn train resumed");
    MRL_CHECK(same_floats(a.engine.params.values, c.engine.params.values, a.engine.params.total),
              "drqn %d resumes bitwise", scheme);
    remove(path);
    mrl_drqn_free(&a);
    mrl_drqn_free(&c);
    mrl_vecenv_free(&e1);
    mrl_vecenv_free(&e2);
  }
  { /* the control: R2D2 replays from the stored state, so the fill matters */
    mrl_r2d2_config cfg = small_config("lstm:8");
    mrl_vecenv env;
    mrl_r2d2 a;
    int idx[4] = {0, 1, 2, 3};
    mrl_vecenv_init(&env, "TMaze-3", 4, 5);
    mrl_r2d2_init(&a, &cfg, &env);
    mrl_r2d2_train(&a, &env, 800, NULL, NULL);
    MRL_CHECK(loss_with_states(&a, idx, 4, 0.0f) != loss_with_states(&a, idx, 4, 0.7f),
              "R2D2 replays from the stored state");
    mrl_r2d2_free(&a);
    mrl_vecenv_free(&env);
  }
  {
    mrl_drqn_config cfg = mrl_drqn_config_default();
    mrl_vecenv env;
    mrl_drqn a;
    mrl_vecenv_init(&env, "TMaze-3", 2, 5);
    cfg.unroll = 0;
    MRL_CHECK(mrl_drqn_init(&a, &cfg, &env) == MRL_ERR_INVALID_ARGUMENT &&
                  strstr(a.error, "unroll 0"),
              "drqn unroll 0 refused: %s", a.error);
    mrl_drqn_free(&a);
    cfg = mrl_drqn_config_default();
    cfg.batch_size = -3;
    MRL_CHECK(mrl_drqn_init(&a, &cfg, &env) == MRL_ERR_INVALID_ARGUMENT &&
                  strstr(a.error, "batch_size -3"),
              "drqn batch_size -3 refused: %s", a.error);
    mrl_drqn_free(&a);
    mrl_vecenv_free(&env);
  }
}

/* DRQN's bootstrapped sequential updates follow an episode from its start to
 * its end: with learning rate 0 (the networks fixed), a batch row's
 * sequences are consecutive pieces of one stream, its first begins with the
 * episode's first step, its last holds the episode's end, and after each
 * update the carried online and target states equal those of one unroll of
 * the network from the episode's start over every step so far (the
 * sequences' states chained, not restarted from zero or cut at `unroll`:
 * the scheme used to train only each episode's first `unroll` steps, and
 * bootstrapped from a value at step `unroll` that nothing trained). */
static void drqn_sequential_chain(void) {
  mrl_drqn_config cfg = mrl_drqn_config_default();
  mrl_vecenv env;
  mrl_drqn a;
  mrl_r2d2 *e;
  float state[16], q[2], carried_ok = 1.0f;
  int u, t, pieces = 0, steps = 0, first = 1, ended = 0, linked = 1, W;
  cfg.updates = MRL_DRQN_SEQUENTIAL;
  cfg.unroll = 4;
  cfg.net.encoder_sizes[0] = 8;
  cfg.net.core = mrl_core_config_lstm(8);
  cfg.learning_rate = 0.0f;
  cfg.epsilon_end = 1.0f; /* random steps: CartPole episodes of about 20 */
  cfg.batch_size = 2;
  cfg.learning_starts = 4;
  mrl_vecenv_init(&env, "CartPole-v1", 1, 3);
  if (mrl_drqn_init(&a, &cfg, &env) != MRL_OK) {
    MRL_CHECK(0, "drqn sequential init: %s", a.error);
    return;
  }
  e = &a.engine;
  W = e->replay.width;
  MRL_CHECK(mrl_drqn_train(&a, &env, 400, NULL, NULL) == MRL_OK, "drqn train: %s", a.error);
  e->seq_k[0] = -1; /* row 0 begins a new episode */
  memset(state, 0, sizeof state);
  for (u = 0; u < 200 && !ended; u++) {
    long long before = e->seq_k[0];
    int slot, skip;
    const float *obs;
    if (mrl_r2d2_update(e, NULL) != MRL_OK) break;
    slot = e->b_idx[0];
    skip = e->seq_skip[0];
    obs = e->replay.obs + (size_t)slot * W * 4;
    if (first) { /* the episode's first step, from the zero state */
      MRL_CHECK(e->replay.episode_starts[(size_t)slot * W + skip] == 1.0f, "begins an episode");
      first = 0;
    } else {
      linked &= skip == 0 &&
                mrl_seq_replay_number(&e->replay, slot) == mrl_seq_replay_next(&e->replay, before);
    }
    for (t = skip; t < W - 1; t++) { /* the network over the steps, one at a time */
      size_t k = (size_t)slot * W + t;
      mrl_r2d2_q_values(e, obs + (size_t)t * 4, 1, e->replay.episode_starts + k, state, state, q);
      steps += e->replay.valid[k] != 0.0f;
      if (e->replay.terminated[k] != 0.0f || e->replay.truncated[k] != 0.0f) ended = 1;
    }
    pieces++;
    if (!ended)
      for (t = 0; t < 16; t++)
        if (fabsf(state[t] - e->seq_state[t]) > 1e-5f || fabsf(state[t] - e->seq_tstate[t]) > 1e-5f)
          carried_ok = 0.0f;
    MRL_CHECK(ended == (e->seq_k[0] == -1), "row 0 starts anew exactly when its episode ended");
  }
  MRL_CHECK(ended && pieces >= 3 && steps > cfg.unroll,
            "an episode replayed whole: %d steps in %d sequences", steps, pieces);
  MRL_CHECK(linked, "each next sequence is the next piece of the stream");
  MRL_CHECK(carried_ok == 1.0f, "the carried states are one unroll from the episode's start");
  mrl_drqn_free(&a);
  mrl_vecenv_free(&env);
}

#ifdef MRL_THREADS
/* num_threads 2 (built with -DMRL_THREADS -pthread by tools/run_tests.sh):
 * the learner on its own thread makes the same number of updates as one
 * thread, the actors' copy is refreshed, and it learns TMaze-5. */
static void learner_thread(void) {
  mrl_r2d2_config cfg = small_config("lstm:16");
  mrl_vecenv env, ev;
  mrl_r2d2 a, b;
  mrl_episode_stats st;
  size_t j;
  int finite = 1;
  cfg.num_threads = 2; /* with examples/r2d2_memory.c's settings */
  cfg.net.encoder_sizes[0] = 32;
  cfg.replay.capacity = 2000;
  cfg.replay.seq_len = 40;
  cfg.replay.overlap = 20;
  cfg.replay.burn_in = 10;
  cfg.batch_size = 16;
  cfg.update_every = 16;
  cfg.target_period = 250;
  mrl_vecenv_init(&env, "TMaze-5", 16, 3);
  mrl_vecenv_init(&ev, "TMaze-5", 4, 99);
  MRL_CHECK(mrl_r2d2_init(&a, &cfg, &env) == MRL_OK, "threaded init: %s", a.error);
  MRL_CHECK(mrl_r2d2_train(&a, &env, 60000, NULL, NULL) == MRL_OK, "threaded train: %s", a.error);
  cfg.num_threads = 1;
  mrl_vecenv_free(&env);
  mrl_vecenv_init(&env, "TMaze-5", 16, 3);
  mrl_r2d2_init(&b, &cfg, &env);
  mrl_r2d2_train(&b, &env, 60000, NULL, NULL);
  MRL_CHECK(a.updates == b.updates && a.updates > 100,
            "the learner thread makes the updates one thread makes (%lld, %lld)", a.updates,
            b.updates);
  for (j = 0; j < a.params.total; j++) finite &= a.params.values[j] == a.params.values[j];
  MRL_CHECK(finite, "threaded parameters finite");
  MRL_CHECK(memcmp(a.actor_params.values, a.params.values, sizeof(float) * a.params.total) != 0 ||
                a.updates == 0,
            "the actors act with a lagged copy");
  mrl_r2d2_evaluate(&a, &ev, 40, 1, &st);
  MRL_CHECK(mrl_episode_stats_success_rate(&st) >= 0.9f, "threaded R2D2 learns TMaze-5: %.2f",
            mrl_episode_stats_success_rate(&st));
  mrl_r2d2_evaluate(&b, &ev, 40, 1, &st);
  MRL_CHECK(mrl_episode_stats_success_rate(&st) >= 0.9f, "one thread learns TMaze-5: %.2f",
            mrl_episode_stats_success_rate(&st));
  mrl_r2d2_free(&a);
  mrl_r2d2_free(&b);
  mrl_vecenv_free(&env);
  mrl_vecenv_free(&ev);
}

static int stop_at_first_report(const mrl_train_progress *p, void *user) {
  (*(int *)user)++;
  return p->iteration >= 1;
}

/* num_actors 3 (Ape-X actor threads beside the learner's): every actor
 * steps only its own block, the whole budget, with epsilon_i = 0.4^(1 + 7 i
 * / 2) and a refresh every actor_refresh of its steps; they learn TMaze-5; a
 * progress callback stops them early without deadlock; a multi-actor
 * checkpoint loads and trains on. */
static void actor_threads(void) {
  enum { NA = 3, B = 12 };
  const long long budget = 60000;
  mrl_r2d2_config cfg = small_config("lstm:16");
  const char *path = "build/test_r2d2_actors.safetensors";
  mrl_vecenv env, ev, env2;
  mrl_r2d2 a, c;
  mrl_episode_stats st;
  long long per = budget / B * (B / NA), total = 0, started;
  int k, i, calls = 0, every_env = 1, own_block = 1;
  float best;
  cfg.num_threads = 2;
  cfg.num_actors = NA;
  cfg.net.encoder_sizes[0] = 32;
  cfg.replay.capacity = 2000;
  cfg.replay.seq_len = 40;
  cfg.replay.overlap = 20;
  cfg.replay.burn_in = 10;
  cfg.batch_size = 16;
  cfg.update_every = 16;
  cfg.target_period = 250;
  mrl_vecenv_init(&env, "TMaze-5", B, 3);
  mrl_vecenv_init(&ev, "TMaze-5", 4, 99);
  MRL_CHECK(mrl_r2d2_init(&a, &cfg, &env) == MRL_OK, "actors init: %s", a.error);
  for (k = 0; k < NA; k++) {
    float want = powf(0.4f, 1.0f + 7.0f * (float)k / (float)(NA - 1));
    MRL_CHECK(fabsf(a.actors[k].epsilon - want) <= 1e-6f * want,
              "actor %d explores with 0.4^(1 + 7 %d / %d) = %g (has %g)", k, k, NA - 1, want,
              a.actors[k].epsilon);
    for (i = 0; i < B / NA; i++)
      own_block &= a.epsilons[k * (B / NA) + i] == a.actors[k].epsilon &&
                   a.actors[k].view.envs[i] == env.envs[k * (B / NA) + i];
  }
  MRL_CHECK(own_block, "actor k owns environments [4k, 4k + 4), all with its epsilon");
  MRL_CHECK(a.actors[0].epsilon == 0.4f && a.actors[NA - 1].epsilon < 0.0017f,
            "epsilons from 0.4 down to 0.4^8");
  MRL_CHECK(mrl_r2d2_train(&a, &env, budget, NULL, NULL) == MRL_OK, "actors train: %s", a.error);
  for (k = 0; k < NA; k++) {
    MRL_CHECK(a.actors[k].env_steps == per, "actor %d took its %lld env steps (%lld)", k, per,
              a.actors[k].env_steps);
    MRL_CHECK(a.actors[k].refreshes == per / cfg.actor_refresh,
              "actor %d refreshed every %d of its steps (%lld times)", k, cfg.actor_refresh,
              a.actors[k].refreshes);
    for (i = 0; i < B / NA; i++) every_env &= a.actors[k].view.episodes_started[i] > 10;
    total += a.actors[k].env_steps;
  }
  MRL_CHECK(every_env, "every environment ran its episodes through its actor's block");
  MRL_CHECK(total == a.runner.env_steps && total == budget, "env steps %lld = %lld = budget", total,
            a.runner.env_steps);
  MRL_CHECK(a.updates > (budget / cfg.update_every) * 9 / 10 &&
                a.updates <= budget / cfg.update_every,
            "one update per update_every env steps (%lld)", a.updates);
  for (k = 0, started = 0; k < NA; k++)
    for (i = 0; i < B / NA; i++) started += (long long)a.actors[k].view.episodes_started[i];
  /* every episode an actor began and finished reached the runner's statistics */
  MRL_CHECK(a.runner.stats.total_episodes >= started - 2 * B &&
                a.runner.stats.total_episodes <= started,
            "every actor's episodes counted (%lld of %lld begun)",
            (long long)a.runner.stats.total_episodes, started);
  mrl_r2d2_evaluate(&a, &ev, 40, 1, &st);
  best = mrl_episode_stats_success_rate(&st);
  /* Which sequences enter the replay when depends on the scheduler, so a
   * run can miss; two more seeds may try, and one of the three must learn. */
  for (k = 1; k < 3 && best < 0.9f; k++) {
    mrl_r2d2_config retry = cfg;
    mrl_vecenv er;
    mrl_r2d2 b;
    retry.seed = cfg.seed + (uint64_t)k;
    mrl_vecenv_init(&er, "TMaze-5", B, 3 + (uint64_t)k);
    if (mrl_r2d2_init(&b, &retry, &er) == MRL_OK &&
        mrl_r2d2_train(&b, &er, budget, NULL, NULL) == MRL_OK &&
        mrl_r2d2_evaluate(&b, &ev, 40, 1, &st) == MRL_OK &&
        mrl_episode_stats_success_rate(&st) > best)
      best = mrl_episode_stats_success_rate(&st);
    mrl_r2d2_free(&b);
    mrl_vecenv_free(&er);
  }
  MRL_CHECK(best >= 0.9f, "3 actor threads learn TMaze-5 (best of up to 3 seeds): %.2f", best);
  /* a checkpoint of the multi-actor run: the parameters, the replay, the runner */
  MRL_CHECK(mrl_r2d2_save(&a, path, &env) == MRL_OK, "actors save: %s", a.error);
  mrl_vecenv_init(&env2, "TMaze-5", B, 3);
  MRL_CHECK(mrl_r2d2_init(&c, &cfg, &env2) == MRL_OK, "actors init c: %s", c.error);
  MRL_CHECK(mrl_r2d2_load(&c, path, &env2) == MRL_OK, "actors load: %s", c.error);
  MRL_CHECK(same_floats(c.params.values, a.params.values, a.params.total) &&
                c.replay.size == a.replay.size && c.updates == a.updates &&
                c.runner.env_steps == a.runner.env_steps,
            "the checkpoint holds the parameters, replay and counters");
  MRL_CHECK(mrl_r2d2_train(&c, &env2, 1200, NULL, NULL) == MRL_OK &&
                c.runner.env_steps == budget + 1200 && c.actors[1].env_steps == 400,
            "a loaded multi-actor agent trains on: %s", c.error);
  /* a progress callback that stops at the first report: the actors halt, no deadlock */
  mrl_r2d2_free(&c);
  mrl_r2d2_init(&c, &cfg, &env2);
  MRL_CHECK(mrl_r2d2_train(&c, &env2, budget, stop_at_first_report, &calls) == MRL_OK,
            "early stop: %s", c.error);
  MRL_CHECK(calls == 1 && c.runner.env_steps < budget / 2 && c.runner.env_steps >= cfg.report_every,
            "stopped at the first report (%d calls, %lld env steps)", calls, c.runner.env_steps);
  MRL_CHECK(mrl_r2d2_train(&c, &env2, 1200, NULL, NULL) == MRL_OK, "trains on after a stop: %s",
            c.error);
  mrl_r2d2_free(&a);
  mrl_r2d2_free(&c);
  mrl_vecenv_free(&env);
  mrl_vecenv_free(&env2);
  mrl_vecenv_free(&ev);
}
#endif

int main(void) {
  pinned_update();
  act_allocates_nothing();
  resume_and_determinism("lstm:16");
  resume_and_determinism("none");
  resume_and_determinism("gru:8");
  init_errors();
  drqn_schemes();
  drqn_sequential_chain();
#ifdef MRL_THREADS
  learner_thread();
  actor_threads();
#endif
  return mrl_test_summary("test_r2d2");
}
