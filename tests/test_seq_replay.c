/* mrl_seq_replay (R2D2's sequence replay, memrl_mem.h), one check per rule:
 *   1. replay = acting: every sequence ever stored, unrolled by the core from
 *      its stored state with its episode_start flags (burn-in included),
 *      gives at every acted entry the output the actor had at that step. So
 *      no burn-in carries memory across an episode start (Ray #15556), the
 *      stored state has the core's shape and the right values (Ray #26833,
 *      #44383), and the flags sit on the right entries (DI-engine #52), after
 *      every kind of wrap-around (the sequence ring, each environment's
 *      staging ring, sequences across episode ends, sequences starting at an
 *      episode start or at a bootstrap entry), for an LSTM (2 layers), a GRU
 *      and the feedforward core. A control unrolls without the flags and
 *      must see a difference (the check can fail).
 *   2. a stored state is zero when its first entry begins an episode, and
 *      the actor's state otherwise; bootstrap entries hold the final
 *      observation with valid 0, after the step that ended the episode.
 *   3. priorities mix as eta max|d| + (1 - eta) mean|d| over masked entries;
 *      the tree holds (p + eps)^alpha; importance weights (p / p_min)^-beta.
 *   4. sampling frequencies match the priorities (chi-square, seeded), a
 *      zero priority is never drawn, and the test rejects wrong priorities.
 *   5. seeded sampling repeats; init rejects configs that cannot work.
 * Run from the repository root:  cc -std=c99 -O2 tests/test_seq_replay.c -lm && ./a.out */
#define MEMRL_IMPLEMENTATION
#include "../memrl_mem.h"
#include "test.h"

enum { B = 3, O = 2, MAX_IDS = 40000 };

/* What the actor saw for every entry id: its output and the state before
 * acting (after, for bootstrap entries). */
typedef struct actor_log {
  float *y;     /* [MAX_IDS, Y] */
  float *state; /* [MAX_IDS, S] */
  int *valid;   /* [MAX_IDS] 1: an acted entry */
  int *start;   /* [MAX_IDS] */
  int Y, S;
} actor_log;

typedef struct coverage {
  int ring_wraps, staging_wraps, across_end, begins_at_start, begins_at_bootstrap, checked;
  int control_differs;
} coverage;

/* Unrolls slot k from its stored state and compares with the log. */
static void check_slot(const mrl_seq_replay *r, int k, const mrl_core *core, mrl_graph *g,
                       const actor_log *log, coverage *cov, const char *label) {
  int W = r->width, S = r->state_dim, t, pass, mismatches = 0;
  float obs[256 * O], starts[256], state[64], zeros[256];
  mrl_tensor *y;
  MRL_CHECK(W <= 256 && S <= 64, "%s: fixture too small", label);
  memcpy(obs, r->obs + (size_t)k * W * O, sizeof(float) * W * O);
  memcpy(starts, r->episode_starts + (size_t)k * W, sizeof(float) * W);
  memset(zeros, 0, sizeof zeros);
  /* 2. the stored state: zero at a start, else the actor's */
  {
    int id0 = (int)obs[0];
    const float *st = r->state + (size_t)k * S;
    if (starts[0] != 0.0f) {
      for (t = 0; t < S; t++) mismatches += st[t] != 0.0f;
      MRL_CHECK(mismatches == 0, "%s: slot %d begins an episode but its state is not zero", label,
                k);
      cov->begins_at_start++;
    } else if (id0 > 0) {
      MRL_CHECK(memcmp(st, log->state + (size_t)id0 * S, sizeof(float) * S) == 0,
                "%s: slot %d stored state differs from the actor's", label, k);
      if (!log->valid[id0]) cov->begins_at_bootstrap++;
    }
  }
  for (t = 1; t < W; t++) {
    int id = (int)obs[t * O];
    if (starts[t] != 0.0f && id > 0 && (int)obs[0] > 0) cov->across_end++;
  }
  for (pass = 0; pass < 2; pass++) { /* pass 1: the control, without the flags */
    int bad = 0;
    mrl_graph_reset(g);
    mrl_graph_set_no_grad(g, 1);
    memcpy(state, r->state + (size_t)k * S, sizeof(float) * S);
    y = mrl_core_forward(core, g, mrl_tensor_from2(g, obs, W, O), W, 1, pass ? zeros : starts,
                         S ? state : NULL, NULL, S);
    for (t = 0; t < W; t++) {
      int id = (int)obs[t * O], j;
      if (id <= 0 || !log->valid[id]) continue;
      for (j = 0; j < log->Y; j++)
        if (fabsf(y->data[t * log->Y + j] - log->y[(size_t)id * log->Y + j]) > 1e-5f) bad++;
    }
    if (pass == 0)
      MRL_CHECK(bad == 0, "%s: slot %d replays %d values unlike the actor", label, k, bad);
    else if (bad)
      cov->control_differs++;
  }
  cov->checked++;
}

static void stream_case(const mrl_core_config *ccfg, const char *label) {
  mrl_params params;
  mrl_core core;
  mrl_graph g, ga;
  mrl_seq_replay r;
  mrl_seq_replay_config cfg = mrl_seq_replay_config_default();
  actor_log log;
  coverage cov;
  mrl_rng rng = mrl_rng_make(7);
  char err[MRL_ERROR_SIZE];
  float state[B * 64], before[B * 64], obs[B * O], final_obs[B * O], starts[B], actions[B],
      rewards[B], term[B], trunc[B];
  int left[B], b, step, next_id = 1, S, Y;
  memset(&cov, 0, sizeof cov);
  mrl_params_init(&params);
  if (mrl_core_init(&core, &params, "core", O, ccfg, err, sizeof err) != MRL_OK ||
      mrl_params_finalize(&params, 3) != MRL_OK) {
    MRL_CHECK(0, "%s: core: %s", label, err);
    return;
  }
  S = mrl_core_state_dim(&core);
  Y = core.output_dim;
  cfg.capacity = 7; /* small and odd: the ring wraps many times */
  cfg.seq_len = 12;
  cfg.overlap = 5;
  cfg.burn_in = 6;
  MRL_CHECK(mrl_seq_replay_init(&r, &cfg, B, O, 1, S) == MRL_OK, "%s: init", label);
  MRL_CHECK(r.state_dim == S && r.width == 18 && r.period == 7, "%s: sizes", label);
  mrl_graph_init(&g, 1 << 20);
  mrl_graph_init(&ga, 1 << 18);
  log.Y = Y;
  log.S = S;
  log.y = (float *)calloc((size_t)MAX_IDS * Y, sizeof(float));
  log.state = (float *)calloc((size_t)MAX_IDS * (S + 1), sizeof(float));
  log.valid = (int *)calloc(MAX_IDS, sizeof(int));
  log.start = (int *)calloc(MAX_IDS, sizeof(int));
  memset(state, 0, sizeof state);
  for (b = 0; b < B; b++) {
    starts[b] = 1.0f;
    left[b] = 1 + (int)mrl_rng_below(&rng, 20);
  }
  for (step = 0; step < 600 && next_id < MAX_IDS - 2 * B; step++) {
    mrl_tensor *y;
    int stored, k;
    long long size0 = r.added;
    for (b = 0; b < B; b++) {
      obs[b * O] = (float)next_id;
      obs[b * O + 1] = mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
      log.valid[next_id] = 1;
      log.start[next_id] = starts[b] != 0.0f;
      /* the state the replay should store: the actor's, zero at a start */
      if (S && starts[b] == 0.0f)
        memcpy(log.state + (size_t)next_id * S, state + b * S, sizeof(float) * S);
      next_id++;
    }
    memcpy(before, state, sizeof(float) * B * S);
    mrl_graph_reset(&ga);
    mrl_graph_set_no_grad(&ga, 1);
    y = mrl_core_forward(&core, &ga, mrl_tensor_from2(&ga, obs, B, O), 1, B, starts,
                         S ? state : NULL, S ? state : NULL, S);
    for (b = 0; b < B; b++) {
      memcpy(log.y + (size_t)obs[b * O] * Y, y->data + b * Y, sizeof(float) * Y);
      actions[b] = (float)mrl_rng_below(&rng, 3);
      rewards[b] = mrl_rng_uniform(&rng);
      term[b] = trunc[b] = 0.0f;
      if (--left[b] == 0) {
        if (mrl_rng_below(&rng, 2))
          term[b] = 1.0f;
        else
          trunc[b] = 1.0f;
        final_obs[b * O] = (float)next_id; /* the bootstrap entry's id */
        final_obs[b * O + 1] = mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
        log.valid[next_id] = 0;
        if (S) memcpy(log.state + (size_t)next_id * S, state + b * S, sizeof(float) * S);
        next_id++;
      }
    }
    stored = mrl_seq_replay_add(&r, obs, starts, S ? before : NULL, actions, rewards, term, trunc,
                                final_obs, S ? state : NULL);
    MRL_CHECK(r.added - size0 == stored, "%s: add returns the sequences stored", label);
    for (k = 0; k < stored; k++) {
      int slot = (int)((r.next - 1 - k + 2 * cfg.capacity) % cfg.capacity);
      check_slot(&r, slot, &core, &g, &log, &cov, label);
    }
    if (r.added > cfg.capacity && r.next == 0 && stored) cov.ring_wraps++;
    for (b = 0; b < B; b++) {
      if (r.st_count[b] > 2 * r.width) cov.staging_wraps++;
      starts[b] = term[b] != 0.0f || trunc[b] != 0.0f;
      if (starts[b] != 0.0f) left[b] = 1 + (int)mrl_rng_below(&rng, 20);
    }
  }
  /* 2. the bootstrap entries: after the step that ended an episode, valid 0 */
  {
    int k, t, W = r.width, ok = 1, seen = 0;
    for (k = 0; k < r.size; k++)
      for (t = 0; t + 1 < W; t++) {
        size_t i = (size_t)k * W + t;
        int ended = r.terminated[i] != 0.0f || r.truncated[i] != 0.0f;
        if (ended) {
          seen++;
          ok &= r.valid[i] == 1.0f && r.valid[i + 1] == 0.0f && r.episode_starts[i + 1] == 0.0f;
          if (t + 2 < W) ok &= r.episode_starts[i + 2] == 1.0f && r.valid[i + 2] == 1.0f;
        }
      }
    MRL_CHECK(ok && seen > 0, "%s: an episode end is followed by its bootstrap entry, then a start",
              label);
  }
  MRL_CHECK(cov.checked > 100, "%s: %d sequences checked", label, cov.checked);
  MRL_CHECK(cov.ring_wraps > 3 && cov.staging_wraps > 0 && cov.across_end > 10 &&
                cov.begins_at_start > 0 && cov.begins_at_bootstrap > 0,
            "%s: coverage ring %d staging %d across %d at-start %d at-bootstrap %d", label,
            cov.ring_wraps, cov.staging_wraps, cov.across_end, cov.begins_at_start,
            cov.begins_at_bootstrap);
  if (S > 0)
    MRL_CHECK(cov.control_differs > 10,
              "%s: the control (no episode_start flags) must differ; it did %d times", label,
              cov.control_differs);
  free(log.y);
  free(log.state);
  free(log.valid);
  free(log.start);
  mrl_seq_replay_free(&r);
  mrl_graph_free(&g);
  mrl_graph_free(&ga);
  mrl_core_free(&core);
  mrl_params_free(&params);
}

static void test_priorities(void) {
  float td[6] = {0.5f, -3.0f, 1.0f, 9.0f, 2.0f, 0.1f}, mask[6] = {1, 1, 1, 0, 1, 0};
  float p, want, pr[3] = {0.5f, 2.0f, 0.0f}, w[3];
  int idx[3] = {0, 1, 2}, i;
  mrl_seq_replay r;
  mrl_seq_replay_config cfg = mrl_seq_replay_config_default();
  mrl_rng rng = mrl_rng_make(1);
  /* masked: |d| in {0.5, 3, 1, 2}: 0.9 * 3 + 0.1 * 1.625 */
  p = mrl_seq_replay_priority(td, mask, 6, 1, 0.9f);
  want = 0.9f * 3.0f + 0.1f * (6.5f / 4.0f);
  MRL_CHECK_NEAR(p, want, 1e-6, 1e-6, "eta max + (1 - eta) mean");
  p = mrl_seq_replay_priority(td, NULL, 3, 2, 0.5f); /* stride 2: 0.5, 1, 2 */
  MRL_CHECK_NEAR(p, 0.5 * 2.0 + 0.5 * (3.5 / 3.0), 1e-6, 1e-6, "stride, no mask");
  MRL_CHECK(mrl_seq_replay_priority(td, mask + 3, 1, 1, 0.9f) == 0.0f, "no entry: 0");
  cfg.capacity = 3;
  cfg.seq_len = 2;
  cfg.overlap = 0;
  cfg.burn_in = 0;
  MRL_CHECK(mrl_seq_replay_init(&r, &cfg, 1, 1, 1, 0) == MRL_OK, "init");
  {
    float o = 0, a = 0, rw = 0, st = 1, z = 0;
    for (i = 0; i < 6; i++) mrl_seq_replay_add(&r, &o, &st, NULL, &a, &rw, &z, &z, NULL, NULL);
  }
  MRL_CHECK(r.size == 3, "three sequences stored (%lld)", r.size);
  for (i = 0; i < 3; i++)
    MRL_CHECK(mrl_sum_tree_get(&r.tree, i) == 1.0, "a new sequence gets the max priority (1)");
  mrl_seq_replay_update_priorities(&r, idx, 3, pr);
  for (i = 0; i < 3; i++)
    MRL_CHECK_NEAR(mrl_sum_tree_get(&r.tree, i), pow(pr[i] + (double)1e-6f, (double)0.9f), 1e-12,
                   1e-9, "tree holds (p + eps)^alpha");
  MRL_CHECK(mrl_seq_replay_sample(&r, 3, &rng, idx, w) == MRL_OK, "sample");
  {
    double pmin = 1e30, wmax = 0.0;
    for (i = 0; i < 3; i++) {
      double pi = pow(pr[idx[i]] + (double)1e-6f, (double)0.9f);
      if (pi < pmin) pmin = pi;
    }
    for (i = 0; i < 3; i++) {
      double pi = pow(pr[idx[i]] + (double)1e-6f, (double)0.9f);
      MRL_CHECK_NEAR(w[i], pow(pi / pmin, -(double)0.6f), 1e-7, 1e-5,
                     "weight (p / p_min in the batch)^-beta");
      if (w[i] > wmax) wmax = w[i];
    }
    MRL_CHECK(wmax == 1.0, "the batch's largest weight is 1");
  }
  MRL_CHECK_NEAR(r.max_priority, pow(2.0 + (double)1e-6f, (double)0.9f), 1e-12, 1e-9,
                 "max priority: the largest seen");
  pr[0] = 10.0f;
  mrl_seq_replay_update_priorities(&r, idx, 1, pr);
  MRL_CHECK_NEAR(r.max_priority, pow(10.0 + (double)1e-6f, (double)0.9f), 1e-12, 1e-9,
                 "max priority rises");
  mrl_seq_replay_free(&r);
}

/* Pearson's statistic of counts against expected frequencies p/sum(p). */
static double chi_square(const long *count, const double *p, int n, long draws) {
  double total = 0.0, chi = 0.0;
  int i;
  for (i = 0; i < n; i++) total += p[i];
  for (i = 0; i < n; i++) {
    double e = draws * p[i] / total;
    if (e > 0.0) chi += (count[i] - e) * (count[i] - e) / e;
  }
  return chi;
}

static void test_sampling_frequencies(void) {
  enum { N = 10, BATCH = 32, ROUNDS = 4000 };
  double p[N] = {1, 2, 3, 4, 5, 0, 7, 8, 0.5, 12}, uniform[N];
  long count[N];
  int idx[BATCH], i, k;
  mrl_sum_tree t;
  mrl_rng rng = mrl_rng_make(2024);
  double chi, chi_wrong;
  MRL_CHECK(mrl_sum_tree_init(&t, N) == MRL_OK, "tree");
  for (i = 0; i < N; i++) mrl_sum_tree_set(&t, i, p[i]);
  memset(count, 0, sizeof count);
  for (k = 0; k < ROUNDS; k++) {
    mrl_sum_tree_sample(&t, BATCH, &rng, idx);
    for (i = 0; i < BATCH; i++) count[idx[i]]++;
  }
  MRL_CHECK(count[5] == 0, "a zero priority is never drawn (%ld)", count[5]);
  chi = chi_square(count, p, N, (long)ROUNDS * BATCH);
  /* 9 categories with mass: 8 degrees of freedom, 0.999 quantile 26.12 */
  MRL_CHECK(chi < 26.12, "sum tree frequencies match priorities: chi2 %g (8 df)", chi);
  for (i = 0; i < N; i++) uniform[i] = p[i] > 0.0 ? 1.0 : 0.0;
  chi_wrong = chi_square(count, uniform, N, (long)ROUNDS * BATCH);
  MRL_CHECK(chi_wrong > 1000.0, "the statistic rejects wrong priorities: chi2 %g", chi_wrong);
  mrl_sum_tree_free(&t);
  /* the replay's draws follow (p + eps)^alpha */
  {
    mrl_seq_replay r;
    mrl_seq_replay_config cfg = mrl_seq_replay_config_default();
    float o = 0, a = 0, rw = 0, st = 1, z = 0, pr[N];
    int all[N];
    double q[N];
    cfg.capacity = N;
    cfg.seq_len = 2;
    cfg.overlap = 0;
    cfg.burn_in = 0;
    mrl_seq_replay_init(&r, &cfg, 1, 1, 1, 0);
    for (i = 0; i < 2 * N; i++) mrl_seq_replay_add(&r, &o, &st, NULL, &a, &rw, &z, &z, NULL, NULL);
    for (i = 0; i < N; i++) {
      all[i] = i;
      pr[i] = (float)p[i];
      q[i] = pow(p[i] + (double)1e-6f, (double)0.9f);
    }
    mrl_seq_replay_update_priorities(&r, all, N, pr);
    memset(count, 0, sizeof count);
    for (k = 0; k < ROUNDS; k++) {
      mrl_seq_replay_sample(&r, BATCH, &rng, idx, NULL);
      for (i = 0; i < BATCH; i++) count[idx[i]]++;
    }
    q[5] = 0.0; /* its expected count is ~0: leave the category out */
    chi = chi_square(count, q, N, (long)ROUNDS * BATCH - count[5]);
    MRL_CHECK(chi < 26.12, "replay frequencies match (p + eps)^0.9: chi2 %g", chi);
    chi_wrong = chi_square(count, p, N, (long)ROUNDS * BATCH);
    MRL_CHECK(chi_wrong > 50.0, "and not p itself (alpha matters): chi2 %g", chi_wrong);
    mrl_seq_replay_free(&r);
  }
}

/* Chains (DRQN's sequential updates): through the ring's wrap-arounds,
 * the sequence after k in its stream (mrl_seq_replay_next) is from the same
 * environment and begins with k's last entry (overlap 1), every held
 * sequence but each stream's newest has one, and overwritten ones have none. */
static void test_chains(void) {
  mrl_seq_replay r;
  mrl_seq_replay_config cfg = mrl_seq_replay_config_default();
  mrl_rng rng = mrl_rng_make(12);
  float obs[2], starts[2] = {1, 1}, act[2] = {0, 0}, rew[2] = {0, 0}, term[2], trunc[2], fin[2];
  int left[2] = {3, 9}, b, step, ok = 1, open = 0, slot;
  long long k;
  cfg.capacity = 23;
  cfg.seq_len = 5;
  cfg.overlap = 1;
  cfg.burn_in = 0;
  MRL_CHECK(mrl_seq_replay_init(&r, &cfg, 2, 1, 1, 0) == MRL_OK, "init chains");
  for (step = 0; step < 300; step++) {
    for (b = 0; b < 2; b++) {
      obs[b] = (float)(b * 10000 + step);
      fin[b] = obs[b] + 0.5f;
      term[b] = trunc[b] = 0.0f;
      if (--left[b] == 0) {
        term[b] = 1.0f;
        left[b] = 1 + (int)mrl_rng_below(&rng, 12);
      }
    }
    mrl_seq_replay_add(&r, obs, starts, NULL, act, rew, term, trunc, fin, NULL);
    for (b = 0; b < 2; b++) starts[b] = term[b];
    for (k = r.added - r.size; k < r.added; k++) {
      long long n = mrl_seq_replay_next(&r, k);
      slot = (int)(k % cfg.capacity);
      ok &= mrl_seq_replay_number(&r, slot) == k;
      if (n < 0) {
        open++;
        continue;
      }
      ok &= n > k && n < r.added;
      ok &= r.obs[(size_t)slot * r.width + (size_t)r.width - 1] ==
            r.obs[(size_t)(n % cfg.capacity) * r.width];
      ok &= (int)(r.obs[(size_t)slot * r.width] / 10000.0f) ==
            (int)(r.obs[(size_t)(n % cfg.capacity) * r.width] / 10000.0f);
    }
    ok &= open <= 2;
    open = 0;
    ok &= r.added <= cfg.capacity || mrl_seq_replay_next(&r, r.added - r.size - 1) == -1;
  }
  MRL_CHECK(r.added > 3 * cfg.capacity, "the ring wrapped (%lld sequences)", r.added);
  MRL_CHECK(ok, "each held sequence links to the next of its stream, which starts where it ends");
  mrl_seq_replay_free(&r);
}

/* episode_aligned: every sequence begins an
 * episode, none is cut elsewhere, and each episode long enough gets one. */
static void test_episode_aligned(void) {
  mrl_seq_replay r;
  mrl_seq_replay_config cfg = mrl_seq_replay_config_default();
  mrl_rng rng = mrl_rng_make(11);
  float obs[2], starts[2] = {1, 1}, act[2] = {0, 0}, rew[2] = {0, 0}, term[2], trunc[2], fin[2];
  int left[2] = {3, 9}, b, step, ok = 1, stored = 0, k;
  long long episodes = 0;
  cfg.capacity = 1000;
  cfg.seq_len = 6;
  cfg.overlap = 0;
  cfg.burn_in = 0;
  cfg.episode_aligned = 1;
  MRL_CHECK(mrl_seq_replay_init(&r, &cfg, 2, 1, 1, 0) == MRL_OK, "init aligned");
  for (step = 0; step < 300; step++) {
    for (b = 0; b < 2; b++) {
      obs[b] = (float)step;
      fin[b] = -1.0f;
      term[b] = trunc[b] = 0.0f;
      if (--left[b] == 0) {
        term[b] = 1.0f;
        left[b] = 1 + (int)mrl_rng_below(&rng, 12);
      }
      episodes += starts[b] != 0.0f;
    }
    stored += mrl_seq_replay_add(&r, obs, starts, NULL, act, rew, term, trunc, fin, NULL);
    for (b = 0; b < 2; b++) starts[b] = term[b];
  }
  for (k = 0; k < r.size; k++)
    ok &= r.episode_starts[(size_t)k * r.width] == 1.0f && r.valid[(size_t)k * r.width] == 1.0f;
  MRL_CHECK(ok, "every aligned sequence begins an episode");
  /* every episode begun early enough for width entries to follow */
  MRL_CHECK(stored >= episodes - 4 && stored <= episodes, "one sequence per episode: %d of %lld",
            stored, episodes);
  mrl_seq_replay_free(&r);
}

static void test_seeded_and_errors(void) {
  mrl_seq_replay r;
  mrl_seq_replay_config cfg = mrl_seq_replay_config_default(), bad;
  float o = 0, a = 0, rw = 0, st = 1, z = 0, w1[8], w2[8];
  int i1[8], i2[8], i, same = 1;
  mrl_rng r1 = mrl_rng_make(5), r2 = mrl_rng_make(5);
  MRL_CHECK(cfg.seq_len == 80 && cfg.overlap == 40 && cfg.burn_in == 40 &&
                cfg.priority_exponent == 0.9f && cfg.importance_exponent == 0.6f && cfg.eta == 0.9f,
            "the paper's defaults");
  cfg.capacity = 16;
  cfg.seq_len = 2;
  cfg.overlap = 0;
  cfg.burn_in = 0;
  mrl_seq_replay_init(&r, &cfg, 1, 1, 1, 0);
  MRL_CHECK(mrl_seq_replay_sample(&r, 4, &r1, i1, NULL) == MRL_ERR_INVALID_ARGUMENT,
            "sampling an empty replay fails");
  for (i = 0; i < 32; i++) mrl_seq_replay_add(&r, &o, &st, NULL, &a, &rw, &z, &z, NULL, NULL);
  for (i = 0; i < 16; i++) {
    float p = (float)(i % 5);
    mrl_seq_replay_update_priorities(&r, &i, 1, &p);
  }
  mrl_seq_replay_sample(&r, 8, &r1, i1, w1);
  mrl_seq_replay_sample(&r, 8, &r2, i2, w2);
  for (i = 0; i < 8; i++) same &= i1[i] == i2[i] && w1[i] == w2[i];
  MRL_CHECK(same, "the same seed draws the same sequences and weights");
  mrl_seq_replay_free(&r);
  bad = cfg;
  bad.overlap = 2;
  MRL_CHECK(mrl_seq_replay_init(&r, &bad, 1, 1, 1, 0) == MRL_ERR_INVALID_ARGUMENT,
            "overlap >= seq_len refused");
  mrl_seq_replay_free(&r);
  bad = cfg;
  bad.capacity = 0;
  MRL_CHECK(mrl_seq_replay_init(&r, &bad, 1, 1, 1, 0) == MRL_ERR_INVALID_ARGUMENT,
            "capacity 0 refused");
  bad = cfg;
  bad.eta = 1.5f;
  MRL_CHECK(mrl_seq_replay_init(&r, &bad, 1, 1, 1, 0) == MRL_ERR_INVALID_ARGUMENT,
            "eta 1.5 refused");
  MRL_CHECK(mrl_seq_replay_init(&r, &cfg, 1, 1, 1, -1) == MRL_ERR_INVALID_ARGUMENT,
            "state_dim -1 refused");
  mrl_seq_replay_free(&r);
}

/* mrl_seq_replay_add_envs: blocks of environments added one after the other
 * (as R2D2's actor threads add theirs) make the replay one whole add makes,
 * bitwise; blocks in another order store the same number of sequences. */
static void test_add_envs(void) {
  enum { B = 3, O = 2, S = 2 };
  mrl_seq_replay whole, blocks, reversed;
  mrl_seq_replay_config cfg = mrl_seq_replay_config_default();
  mrl_rng rng = mrl_rng_make(5);
  float obs[B * O], starts[B], act[B], rew[B], term[B], trunc[B], fin[B * O], st[B * S], nx[B * S];
  int step, b, k, n1 = 0, n2 = 0, n3 = 0, same;
  size_t W;
  cfg.capacity = 50;
  cfg.seq_len = 6;
  cfg.overlap = 2;
  cfg.burn_in = 3;
  MRL_CHECK(mrl_seq_replay_init(&whole, &cfg, B, O, 1, S) == MRL_OK &&
                mrl_seq_replay_init(&blocks, &cfg, B, O, 1, S) == MRL_OK &&
                mrl_seq_replay_init(&reversed, &cfg, B, O, 1, S) == MRL_OK,
            "init three replays");
  for (b = 0; b < B; b++) starts[b] = 1.0f;
  for (step = 0; step < 120; step++) {
    for (b = 0; b < B; b++) {
      for (k = 0; k < O; k++) {
        obs[b * O + k] = mrl_rng_uniform(&rng);
        fin[b * O + k] = mrl_rng_uniform(&rng);
      }
      for (k = 0; k < S; k++) {
        st[b * S + k] = mrl_rng_uniform(&rng);
        nx[b * S + k] = mrl_rng_uniform(&rng);
      }
      act[b] = (float)mrl_rng_below(&rng, 3);
      rew[b] = mrl_rng_uniform(&rng);
      term[b] = mrl_rng_below(&rng, 9) == 0;
      trunc[b] = !term[b] && mrl_rng_below(&rng, 13) == 0;
    }
    n1 += mrl_seq_replay_add(&whole, obs, starts, st, act, rew, term, trunc, fin, nx);
    n2 += mrl_seq_replay_add_envs(&blocks, 0, 1, obs, starts, st, act, rew, term, trunc, fin, nx);
    n2 += mrl_seq_replay_add_envs(&blocks, 1, 2, obs + O, starts + 1, st + S, act + 1, rew + 1,
                                  term + 1, trunc + 1, fin + O, nx + S);
    n3 += mrl_seq_replay_add_envs(&reversed, 2, 1, obs + 2 * O, starts + 2, st + 2 * S, act + 2,
                                  rew + 2, term + 2, trunc + 2, fin + 2 * O, nx + 2 * S);
    n3 += mrl_seq_replay_add_envs(&reversed, 0, 2, obs, starts, st, act, rew, term, trunc, fin, nx);
    for (b = 0; b < B; b++) starts[b] = term[b] != 0.0f || trunc[b] != 0.0f;
  }
  W = (size_t)whole.width * (size_t)cfg.capacity;
  same = n1 == n2 && whole.size == blocks.size && whole.next == blocks.next &&
         !memcmp(whole.obs, blocks.obs, sizeof(float) * W * O) &&
         !memcmp(whole.actions, blocks.actions, sizeof(float) * W) &&
         !memcmp(whole.rewards, blocks.rewards, sizeof(float) * W) &&
         !memcmp(whole.episode_starts, blocks.episode_starts, sizeof(float) * W) &&
         !memcmp(whole.terminated, blocks.terminated, sizeof(float) * W) &&
         !memcmp(whole.truncated, blocks.truncated, sizeof(float) * W) &&
         !memcmp(whole.valid, blocks.valid, sizeof(float) * W) &&
         !memcmp(whole.state, blocks.state, sizeof(float) * (size_t)cfg.capacity * S);
  MRL_CHECK(n1 > cfg.capacity && same, "blocks in order = one whole add, bitwise (%d sequences)",
            n1);
  MRL_CHECK(n3 == n1 && reversed.size == whole.size,
            "blocks in another order store as many sequences (%d, %d)", n3, n1);
  mrl_seq_replay_free(&whole);
  mrl_seq_replay_free(&blocks);
  mrl_seq_replay_free(&reversed);
}

int main(void) {
  mrl_core_config lstm = mrl_core_config_lstm(5), gru = mrl_core_config_gru(4);
  mrl_core_config none = mrl_core_config_default();
  lstm.num_layers = 2;
  stream_case(&lstm, "lstm x2");
  stream_case(&gru, "gru");
  stream_case(&none, "none");
  test_priorities();
  test_sampling_frequencies();
  test_seeded_and_errors();
  test_episode_aligned();
  test_chains();
  test_add_envs();
  return mrl_test_summary("test_seq_replay");
}
