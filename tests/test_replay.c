/* Tests for memrl_mem.h's replay buffer (mrl_replay, the replay tag).
 *   1. n-step items by hand: a full window, a termination inside the window
 *      (discount 0 for every flushed item), a truncation (gamma^k and the
 *      final observation), n = 1.
 *   2. n-step items against a direct transcription of the definition, over
 *      several environments whose episodes end at different steps
 *      (terminations and truncations interleaved), with every item found
 *      and none extra.
 *   3. Wrap-around of the ring: the newest capacity items survive, in their
 *      slots.
 *   4. Prioritised sampling: weights against a direct computation of
 *      (N P(i))^-beta / max_j (N P(j))^-beta, new items at the largest
 *      priority seen, updated priorities (|delta| + eps)^alpha, and sampling
 *      frequencies proportional to priorities (chi-square).
 *   5. Uniform sampling: in range, weights 1, roughly uniform.
 *   6. Seeded determinism: the same seed draws the same indices, another
 *      seed other ones.
 *   7. Save/load through checkpoint extras: a loaded buffer continues (adds,
 *      samples, priorities) exactly as the original.
 *   8. Init errors name the field; sampling an empty buffer fails.
 *
 * Run from the repository root:  make build/test_replay && ./build/test_replay */
#define MEMRL_IMPLEMENTATION
#include "../memrl_mem.h"
#include "test.h"

#define O 2 /* observation floats in these tests */

/* Observation of env b at step t of the stream: unique, so items can be
 * matched to the step they came from. */
static void make_obs(float *o, int b, int t) {
  o[0] = (float)b;
  o[1] = (float)t;
}

/* The slot holding the item whose first step is (b, t), or -1. */
static int find_item(const mrl_replay *r, int b, int t) {
  int i;
  for (i = 0; i < (int)r->size; i++)
    if (r->obs[(size_t)i * O] == (float)b && r->obs[(size_t)i * O + 1] == (float)t) return i;
  return -1;
}

/* One environment, n = 3, gamma 0.5, rewards 1, 2, 4, 8; the episode ends
 * at step 3 (terminated or truncated), final observation (9, 9). */
static void test_by_hand(int terminated) {
  mrl_replay r;
  mrl_replay_config c = mrl_replay_config_default(16, 1, O, 1);
  float obs[O], next[O], fin[O] = {9.0f, 9.0f}, act, rew, term, trunc;
  const float R[4] = {3.0f, 6.0f, 8.0f, 8.0f}; /* 1 + 1 + 1, 2 + 2 + 2, 4 + 4, 8 */
  const float D_trunc[4] = {0.125f, 0.125f, 0.25f, 0.5f};
  int t;
  c.n_step = 3;
  c.gamma = 0.5f;
  MRL_CHECK(mrl_replay_init(&r, &c, NULL, 0) == MRL_OK, "replay init failed");
  for (t = 0; t < 4; t++) {
    make_obs(obs, 0, t);
    make_obs(next, 0, t == 3 ? 100 : t + 1); /* after the end: a reset observation */
    act = (float)(t % 2);
    rew = (float)(1 << t);
    term = (float)(terminated && t == 3);
    trunc = (float)(!terminated && t == 3);
    mrl_replay_add(&r, obs, &act, &rew, next, fin, &term, &trunc);
    if (t == 2) MRL_CHECK(r.size == 1, "after 3 steps: %lld items, want 1", r.size);
  }
  MRL_CHECK(r.size == 4, "after the episode end: %lld items, want 4", r.size);
  for (t = 0; t < 4; t++) {
    int i = find_item(&r, 0, t);
    float want_d = t == 0 ? 0.125f : (terminated ? 0.0f : D_trunc[t]);
    MRL_CHECK(i >= 0, "no item for step %d", t);
    if (i < 0) continue;
    MRL_CHECK(r.rewards[i] == R[t], "step %d: R %g, want %g", t, r.rewards[i], R[t]);
    MRL_CHECK(r.discounts[i] == want_d, "step %d (%s): discount %g, want %g", t,
              terminated ? "terminated" : "truncated", r.discounts[i], want_d);
    MRL_CHECK(r.actions[i] == (float)(t % 2), "step %d: action %g", t, r.actions[i]);
    if (t == 0)
      MRL_CHECK(r.next_obs[(size_t)i * O + 1] == 3.0f, "step 0: next_obs must be obs_3, got t=%g",
                r.next_obs[(size_t)i * O + 1]);
    else
      MRL_CHECK(r.next_obs[(size_t)i * O] == 9.0f && r.next_obs[(size_t)i * O + 1] == 9.0f,
                "step %d: next_obs must be the final observation, got (%g, %g)", t,
                r.next_obs[(size_t)i * O], r.next_obs[(size_t)i * O + 1]);
  }
  MRL_CHECK(r.pending[0] == 0, "the window must be empty after the end (%lld)", r.pending[0]);
  mrl_replay_free(&r);
}

/* n = 1: each step is its own item, bootstrapped with gamma (0 at a termination). */
static void test_one_step(void) {
  mrl_replay r;
  mrl_replay_config c = mrl_replay_config_default(8, 1, O, 1);
  float obs[O], next[O], fin[O] = {7.0f, 7.0f}, act = 1.0f, rew = 2.5f, term = 0.0f, trunc = 0.0f;
  MRL_CHECK(mrl_replay_init(&r, &c, NULL, 0) == MRL_OK, "replay init failed");
  make_obs(obs, 0, 0);
  make_obs(next, 0, 1);
  mrl_replay_add(&r, obs, &act, &rew, next, fin, &term, &trunc);
  MRL_CHECK(r.size == 1 && r.rewards[0] == 2.5f && r.discounts[0] == 0.99f && r.next_obs[1] == 1.0f,
            "n = 1: item (R %g, discount %g, next t %g)", r.rewards[0], r.discounts[0],
            r.next_obs[1]);
  term = 1.0f;
  make_obs(obs, 0, 1);
  mrl_replay_add(&r, obs, &act, &rew, next, fin, &term, &trunc);
  MRL_CHECK(r.size == 2 && r.discounts[1] == 0.0f && r.next_obs[2] == 7.0f,
            "n = 1 terminated: discount %g, next %g", r.discounts[1], r.next_obs[2]);
  mrl_replay_free(&r);
}

/* B environments, n-step, episodes ending at pseudo-random steps: every item
 * against the definition (computed here from the whole stream). */
#define REF_B 3
#define REF_T 40
static void test_against_definition(int n) {
  mrl_replay r;
  mrl_replay_config c = mrl_replay_config_default(1000, REF_B, O, 1);
  float rewards[REF_T][REF_B], term[REF_T][REF_B], trunc[REF_T][REF_B];
  float obs[REF_B * O], next[REF_B * O], fin[REF_B * O], act[REF_B];
  mrl_rng rng = mrl_rng_make(77);
  int t, b, expected = 0, found = 0;
  c.n_step = n;
  c.gamma = 0.9f;
  MRL_CHECK(mrl_replay_init(&r, &c, NULL, 0) == MRL_OK, "replay init failed");
  for (t = 0; t < REF_T; t++) {
    for (b = 0; b < REF_B; b++) {
      float u = mrl_rng_uniform(&rng);
      rewards[t][b] = mrl_rng_uniform_range(&rng, -1.0f, 1.0f);
      term[t][b] = (float)(u < 0.08f);
      trunc[t][b] = (float)(u >= 0.08f && u < 0.14f);
      make_obs(obs + b * O, b, t);
      make_obs(next + b * O, b, t + 1);
      /* the final observation of an ended episode is not the next one */
      fin[b * O] = (float)b;
      fin[b * O + 1] = 1000.0f + (float)t;
      act[b] = (float)((t + b) % 3);
    }
    {
      float rw[REF_B], tm[REF_B], tr[REF_B];
      for (b = 0; b < REF_B; b++) {
        rw[b] = rewards[t][b];
        tm[b] = term[t][b];
        tr[b] = trunc[t][b];
      }
      mrl_replay_add(&r, obs, act, rw, next, fin, tm, tr);
    }
  }
  /* the definition: step t of env b starts an item once k = n steps follow
   * in its episode (or its episode ended within them) */
  for (b = 0; b < REF_B; b++)
    for (t = 0; t < REF_T; t++) {
      double R = 0.0, g = 1.0;
      int k, end = -1, i;
      float want_next1, want_d;
      for (k = 0; k < n && t + k < REF_T; k++) {
        R += g * rewards[t + k][b];
        g *= 0.9;
        if (term[t + k][b] != 0.0f || trunc[t + k][b] != 0.0f) {
          end = t + k;
          k++;
          break;
        }
      }
      if (end < 0 && k < n) continue; /* still pending at the end of the stream */
      expected++;
      if (end >= 0) {
        want_next1 = 1000.0f + (float)end;
        want_d = term[end][b] != 0.0f ? 0.0f : (float)g;
      } else {
        want_next1 = (float)(t + n);
        want_d = (float)g;
      }
      i = find_item(&r, b, t);
      if (i < 0) {
        MRL_CHECK(0, "n=%d: no item for env %d step %d", n, b, t);
        continue;
      }
      found++;
      MRL_CHECK(fabs(r.rewards[i] - R) <= 1e-5 * (1.0 + fabs(R)),
                "n=%d env %d step %d: R %g, want %g", n, b, t, r.rewards[i], R);
      MRL_CHECK(fabsf(r.discounts[i] - want_d) <= 1e-6f,
                "n=%d env %d step %d: discount %g, want %g", n, b, t, r.discounts[i], want_d);
      MRL_CHECK(r.next_obs[(size_t)i * O] == (float)b &&
                    r.next_obs[(size_t)i * O + 1] == want_next1,
                "n=%d env %d step %d: next_obs (%g, %g), want (%d, %g)", n, b, t,
                r.next_obs[(size_t)i * O], r.next_obs[(size_t)i * O + 1], b, want_next1);
      MRL_CHECK(r.actions[i] == (float)((t + b) % 3), "n=%d env %d step %d: action %g", n, b, t,
                r.actions[i]);
    }
  MRL_CHECK(r.size == expected && found == expected,
            "n=%d: %lld items stored, %d expected, %d found", n, r.size, expected, found);
  mrl_replay_free(&r);
}

/* A ring of 4 after 10 one-step items: the last 4, each in slot index % 4. */
static void test_wrap_around(void) {
  mrl_replay r;
  mrl_replay_config c = mrl_replay_config_default(4, 1, O, 1);
  float obs[O], next[O], act = 0.0f, rew, z = 0.0f;
  int t, i;
  MRL_CHECK(mrl_replay_init(&r, &c, NULL, 0) == MRL_OK, "replay init failed");
  for (t = 0; t < 10; t++) {
    make_obs(obs, 0, t);
    make_obs(next, 0, t + 1);
    rew = (float)t;
    mrl_replay_add(&r, obs, &act, &rew, next, NULL, &z, &z);
  }
  MRL_CHECK(r.size == 4 && r.next == 2 && r.added == 10, "ring: size %lld next %lld added %lld",
            r.size, r.next, r.added);
  for (i = 0; i < 4; i++) {
    int want = i < 2 ? 8 + i : 4 + i; /* slots 0,1 hold items 8,9; slots 2,3 items 6,7 */
    MRL_CHECK(r.obs[(size_t)i * O + 1] == (float)want && r.rewards[i] == (float)want,
              "slot %d holds step %g (reward %g), want %d", i, r.obs[(size_t)i * O + 1],
              r.rewards[i], want);
  }
  mrl_replay_free(&r);
}

/* Adds `count` one-step items to a 1-env buffer. */
static void fill_items(mrl_replay *r, int count, int t0) {
  float obs[O], next[O], act = 1.0f, rew, z = 0.0f;
  int t;
  for (t = t0; t < t0 + count; t++) {
    make_obs(obs, 0, t);
    make_obs(next, 0, t + 1);
    rew = 0.5f * (float)t;
    mrl_replay_add(r, obs, &act, &rew, next, NULL, &z, &z);
  }
}

static void test_prioritized(void) {
  enum { N = 8, S = 64, DRAWS = 40000 };
  mrl_replay r;
  mrl_replay_config c = mrl_replay_config_default(N, 1, O, 1);
  int idx[S], all[N], i, *hits, count[N];
  float td[N], w[S];
  double p[N], total = 0.0, maxw = 0.0, chi2 = 0.0;
  const float beta = 0.7f;
  c.prioritized = 1;
  c.alpha = 0.6f;
  c.priority_eps = 1e-3f;
  MRL_CHECK(mrl_replay_init(&r, &c, NULL, 0) == MRL_OK, "replay init failed");
  fill_items(&r, N, 0);
  for (i = 0; i < N; i++)
    MRL_CHECK(r.priorities[i] == 1.0 && mrl_sum_tree_get(&r.tree, i) == 1.0,
              "a new item's priority must be 1 at first (item %d: %g)", i, r.priorities[i]);
  for (i = 0; i < N; i++) {
    all[i] = i;
    td[i] = (i % 2 ? -1.0f : 1.0f) * (0.1f + 0.7f * (float)i);
  }
  mrl_replay_update_priorities(&r, all, td, N);
  for (i = 0; i < N; i++) {
    p[i] = pow(fabs((double)td[i]) + (double)c.priority_eps, (double)c.alpha);
    total += p[i];
    MRL_CHECK(fabs(r.priorities[i] - p[i]) <= 1e-12 * p[i] &&
                  fabs(mrl_sum_tree_get(&r.tree, i) - p[i]) <= 1e-12 * p[i],
              "item %d: priority %.12g, want (|%g| + eps)^alpha = %.12g", i, r.priorities[i], td[i],
              p[i]);
  }
  MRL_CHECK(fabs(r.max_priority - p[N - 1]) <= 1e-12 * p[N - 1],
            "max priority %g, want the largest seen %g", r.max_priority, p[N - 1]);
  /* the weights: the definition, directly */
  for (i = 0; i < N; i++) maxw = fmax(maxw, pow(N * p[i] / total, -(double)beta));
  MRL_CHECK(mrl_replay_sample(&r, S, beta, idx, w) == MRL_OK, "prioritised sample failed");
  for (i = 0; i < S; i++) {
    double want = pow(N * p[idx[i]] / total, -(double)beta) / maxw;
    MRL_CHECK(fabs(w[i] - want) <= 1e-5 * want, "weight of item %d: %.8g, want %.8g", idx[i], w[i],
              want);
  }
  /* frequencies follow p_i / sum p (chi-square, 7 degrees of freedom: 99.9% quantile 24.3) */
  hits = (int *)malloc(sizeof(int) * DRAWS);
  memset(count, 0, sizeof count);
  MRL_CHECK(hits && mrl_replay_sample(&r, DRAWS, beta, hits, NULL) == MRL_OK, "large sample");
  for (i = 0; hits && i < DRAWS; i++) count[hits[i]]++;
  for (i = 0; i < N; i++) {
    double e = DRAWS * p[i] / total;
    chi2 += (count[i] - e) * (count[i] - e) / e;
  }
  MRL_CHECK(chi2 < 24.3, "sampling frequencies do not follow the priorities (chi2 %.2f)", chi2);
  free(hits);
  /* a new item gets the largest priority seen, even after a lower update */
  td[0] = 0.0f;
  mrl_replay_update_priorities(&r, all, td, 1);
  fill_items(&r, 1, 100); /* overwrites slot 0 */
  MRL_CHECK(r.priorities[0] == r.max_priority && r.max_priority == p[N - 1],
            "a new item gets max priority %g, has %g", r.max_priority, r.priorities[0]);
  mrl_replay_free(&r);
}

static void test_uniform(void) {
  enum { N = 5, DRAWS = 20000 };
  mrl_replay r;
  mrl_replay_config c = mrl_replay_config_default(16, 1, O, 1);
  int *idx = (int *)malloc(sizeof(int) * DRAWS), count[N], i, ok = 1;
  float *w = (float *)malloc(sizeof(float) * DRAWS);
  double chi2 = 0.0;
  MRL_CHECK(mrl_replay_init(&r, &c, NULL, 0) == MRL_OK, "replay init failed");
  fill_items(&r, N, 0);
  memset(count, 0, sizeof count);
  MRL_CHECK(mrl_replay_sample(&r, DRAWS, 0.4f, idx, w) == MRL_OK, "uniform sample failed");
  for (i = 0; i < DRAWS; i++) {
    if (idx[i] < 0 || idx[i] >= N || w[i] != 1.0f) ok = 0;
    if (idx[i] >= 0 && idx[i] < N) count[idx[i]]++;
  }
  MRL_CHECK(ok, "uniform: an index outside the stored items or a weight != 1");
  for (i = 0; i < N; i++)
    chi2 += (count[i] - DRAWS / N) * (count[i] - DRAWS / N) / (double)(DRAWS / N);
  MRL_CHECK(chi2 < 18.5, "uniform sampling is not uniform (chi2 %.2f, 4 dof)", chi2);
  mrl_replay_free(&r);
  free(idx);
  free(w);
}

static void test_seeded(void) {
  mrl_replay a, b, d;
  mrl_replay_config c = mrl_replay_config_default(32, 1, O, 1);
  int ia[64], ib[64], id[64], k;
  for (k = 0; k < 2; k++) {
    c.prioritized = k;
    c.seed = 5;
    mrl_replay_init(&a, &c, NULL, 0);
    mrl_replay_init(&b, &c, NULL, 0);
    c.seed = 6;
    mrl_replay_init(&d, &c, NULL, 0);
    fill_items(&a, 20, 0);
    fill_items(&b, 20, 0);
    fill_items(&d, 20, 0);
    mrl_replay_sample(&a, 64, 0.5f, ia, NULL);
    mrl_replay_sample(&b, 64, 0.5f, ib, NULL);
    mrl_replay_sample(&d, 64, 0.5f, id, NULL);
    MRL_CHECK(memcmp(ia, ib, sizeof ia) == 0, "%s: the same seed drew other indices",
              k ? "prioritised" : "uniform");
    MRL_CHECK(memcmp(ia, id, sizeof ia) != 0, "%s: another seed drew the same indices",
              k ? "prioritised" : "uniform");
    mrl_replay_free(&a);
    mrl_replay_free(&b);
    mrl_replay_free(&d);
  }
}

/* Save a half-filled buffer (pending windows included) with a checkpoint,
 * load it into a fresh one, then drive both identically. */
static void test_save_load(void) {
  const char *path = "build/test_replay.safetensors";
  mrl_replay a, b;
  mrl_replay_config c = mrl_replay_config_default(16, 2, O, 1);
  mrl_params p;
  mrl_checkpoint_extra x[MRL_REPLAY_EXTRAS];
  mrl_checkpoint_options opt = mrl_checkpoint_options_default();
  mrl_checkpoint ck;
  float obs[2 * O], next[2 * O], act[2] = {1, 0}, rew[2], term[2] = {0, 0}, trunc[2] = {0, 0};
  int shape[1] = {3}, t, n, i, ia[32], ib[32], all[16];
  float wa[32], wb[32], td[16];
  mrl_result res = MRL_OK;
  c.n_step = 3;
  c.prioritized = 1;
  mrl_replay_init(&a, &c, NULL, 0);
  mrl_replay_init(&b, &c, NULL, 0);
  for (t = 0; t < 30; t++) { /* wraps the ring, leaves windows pending */
    for (i = 0; i < 2; i++) {
      make_obs(obs + i * O, i, t);
      make_obs(next + i * O, i, t + 1);
      rew[i] = (float)(t * 2 + i);
    }
    term[0] = (float)(t == 11);
    trunc[1] = (float)(t == 17);
    mrl_replay_add(&a, obs, act, rew, next, next, term, trunc);
    if (t == 20) {
      for (i = 0; i < 16; i++) {
        all[i] = i;
        td[i] = 0.3f * (float)i - 2.0f;
      }
      mrl_replay_update_priorities(&a, all, td, 16);
    }
  }
  mrl_params_init(&p);
  mrl_params_add(&p, "w", 1, shape, mrl_init_default());
  mrl_params_finalize(&p, 1);
  n = mrl_replay_extras(&a, x);
  opt.extras = x;
  opt.num_extras = n;
  MRL_CHECK(n >= 6 && mrl_checkpoint_save(&p, path, &opt) == MRL_OK, "saving the replay failed");
  mrl_replay_extras(&b, x);
  if (mrl_checkpoint_open(&ck, path) == MRL_OK) {
    for (i = 0; i < n && res == MRL_OK; i++) {
      const mrl_checkpoint_tensor *tt = mrl_checkpoint_find(&ck, x[i].name);
      res =
          tt ? mrl_checkpoint_read(tt, x[i].dtype, (void *)(uintptr_t)x[i].data, (size_t)x[i].count)
             : MRL_ERR_INVALID_ARGUMENT;
    }
    mrl_checkpoint_close(&ck);
  } else {
    res = MRL_ERR_IO;
  }
  MRL_CHECK(res == MRL_OK, "loading the replay failed (%s)", mrl_result_string(res));
  mrl_replay_loaded(&b);
  MRL_CHECK(a.size == b.size && a.next == b.next && a.added == b.added &&
                memcmp(a.obs, b.obs, sizeof(float) * a.floats) == 0 &&
                memcmp(a.pending, b.pending, sizeof(long long) * 4) == 0 &&
                mrl_sum_tree_total(&a.tree) == mrl_sum_tree_total(&b.tree),
            "the loaded buffer differs");
  for (t = 30; t < 40; t++) { /* both continue identically */
    for (i = 0; i < 2; i++) {
      make_obs(obs + i * O, i, t);
      make_obs(next + i * O, i, t + 1);
      rew[i] = (float)t;
    }
    term[0] = (float)(t == 33);
    trunc[1] = 0.0f;
    mrl_replay_add(&a, obs, act, rew, next, next, term, trunc);
    mrl_replay_add(&b, obs, act, rew, next, next, term, trunc);
  }
  mrl_replay_sample(&a, 32, 0.6f, ia, wa);
  mrl_replay_sample(&b, 32, 0.6f, ib, wb);
  MRL_CHECK(memcmp(ia, ib, sizeof ia) == 0 && memcmp(wa, wb, sizeof wa) == 0 &&
                memcmp(a.obs, b.obs, sizeof(float) * a.floats) == 0,
            "a loaded buffer does not continue like the original");
  mrl_params_free(&p);
  mrl_replay_free(&a);
  mrl_replay_free(&b);
  remove(path);
}

static void test_errors(void) {
  mrl_replay r;
  mrl_replay_config c = mrl_replay_config_default(0, 1, O, 1);
  char err[256] = "";
  int idx[1];
  MRL_CHECK(mrl_replay_init(&r, &c, err, sizeof err) == MRL_ERR_INVALID_ARGUMENT &&
                strstr(err, "capacity 0"),
            "capacity 0 accepted or not named (%s)", err);
  mrl_replay_free(&r);
  c = mrl_replay_config_default(8, 1, O, 1);
  c.gamma = 1.5f;
  MRL_CHECK(mrl_replay_init(&r, &c, err, sizeof err) == MRL_ERR_INVALID_ARGUMENT &&
                strstr(err, "gamma 1.5"),
            "gamma 1.5 accepted or not named (%s)", err);
  c = mrl_replay_config_default(8, 1, O, 1);
  c.prioritized = 1;
  c.priority_eps = 0.0f;
  MRL_CHECK(mrl_replay_init(&r, &c, err, sizeof err) == MRL_ERR_INVALID_ARGUMENT &&
                strstr(err, "priority_eps 0"),
            "priority_eps 0 accepted or not named (%s)", err);
  c = mrl_replay_config_default(8, 1, O, 1);
  MRL_CHECK(mrl_replay_init(&r, &c, NULL, 0) == MRL_OK, "init failed");
  MRL_CHECK(mrl_replay_sample(&r, 1, 0.4f, idx, NULL) == MRL_ERR_INVALID_ARGUMENT,
            "sampling an empty buffer must fail");
  mrl_replay_free(&r);
}

int main(void) {
  test_by_hand(1);
  test_by_hand(0);
  test_one_step();
  test_against_definition(1);
  test_against_definition(3);
  test_against_definition(5);
  test_wrap_around();
  test_prioritized();
  test_uniform();
  test_seeded();
  test_save_load();
  test_errors();
  return mrl_test_summary("test_replay");
}
