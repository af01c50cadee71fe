/* Tests of the POPGym tasks, the wrappers and the parallel vector step of
 * memrl_envs.h: every rule step by step, determinism under seeds, invalid
 * actions rejected with the state untouched, step before reset, rendering.
 * cc -std=c99 -O2 -Wall -Wextra -pedantic tests/test_envs_popgym.c -lm && ./a.out
 * (add -fopenmp to test the parallel vector step against the serial one) */
#define MEMRL_ENVS_IMPLEMENTATION
#include "../memrl_envs.h"
#include "test.h"

#include <string.h>

static const char *const popgym_names[9] = {"RepeatFirst", "RepeatPrevious", "Autoencode",
                                            "CountRecall", "HigherLower",    "Concentration",
                                            "Battleship",  "MineSweeper",    "MultiarmedBandit"};
static const char *const popgym_levels[3] = {"Easy", "Medium", "Hard"};

static mrl_env *make_level(const char *name, int level) {
  char id[64];
  snprintf(id, sizeof id, "%s%s-v0", name, popgym_levels[level]);
  return mrl_env_make(id);
}

/* index of the 1 in a one-hot block, -1 when the block is not one-hot */
static int hot(const float *x, int n) {
  int i, at = -1;
  for (i = 0; i < n; i++) {
    if (x[i] == 1.0f) {
      if (at >= 0) return -1;
      at = i;
    } else if (x[i] != 0.0f) {
      return -1;
    }
  }
  return at;
}

static int step_i(mrl_env *env, int a, float *obs, float *r, int *te, int *tr) {
  float af = (float)a;
  return mrl_env_step(env, &af, obs, r, te, tr) == MRL_OK;
}

/* ---- RepeatFirst ---------------------------------------------------------- */

static void test_repeat_first(void) {
  static const int decks[3] = {1, 8, 16};
  float obs[4], r;
  int level, te, tr;
  for (level = 0; level < 3; level++) {
    mrl_env *env = make_level("RepeatFirst", level);
    int n = 52 * decks[level], t, first, ok = 1, counts[4] = {0, 0, 0, 0};
    double ret = 0.0;
    MRL_CHECK(env && mrl_env_obs_dim(env) == 4 && mrl_env_num_actions(env) == 4,
              "RepeatFirst dims");
    if (!env) continue;
    MRL_CHECK(mrl_env_max_episode_steps(env) == n - 1, "RepeatFirst limit %d",
              mrl_env_max_episode_steps(env));
    mrl_env_reset(env, 11 + (uint64_t)level, obs);
    first = hot(obs, 4);
    MRL_CHECK(first >= 0, "first observation one-hot");
    counts[first]++;
    for (t = 1; t <= n - 1; t++) {
      /* answer right on even steps, wrong on odd ones */
      int a = t % 2 == 0 ? first : (first + 1) % 4;
      if (!step_i(env, a, obs, &r, &te, &tr)) ok = 0;
      if (r != (t % 2 == 0 ? 1.0f : -1.0f) / (float)(n - 1)) ok = 0;
      if (tr || te != (t == n - 1)) ok = 0;
      if (hot(obs, 4) < 0)
        ok = 0;
      else
        counts[hot(obs, 4)]++;
      ret += r;
    }
    MRL_CHECK(ok, "RepeatFirst rewards +-1/(n-1), terminated at step n-1 (deck empty)");
    MRL_CHECK(counts[0] == 13 * decks[level] && counts[1] == 13 * decks[level] &&
                  counts[2] == 13 * decks[level] && counts[3] == 13 * decks[level],
              "every card of the deck seen once (%d %d %d %d)", counts[0], counts[1], counts[2],
              counts[3]);
    MRL_CHECK_NEAR(ret, -1.0 / (n - 1) * ((n - 1) % 2), 1e-5, 0, "alternating return");
    MRL_CHECK(!step_i(env, 0, obs, &r, &te, &tr), "no step after the deck ran out");
    /* the optimal policy returns 1 */
    mrl_env_reset(env, 99, obs);
    first = hot(obs, 4);
    ret = 0.0;
    do {
      step_i(env, first, obs, &r, &te, &tr);
      ret += r;
    } while (!te && !tr);
    MRL_CHECK_NEAR(ret, 1.0, 1e-4, 0, "RepeatFirst optimal return");
    mrl_env_free(env);
  }
}

/* ---- RepeatPrevious ------------------------------------------------------- */

static void test_repeat_previous(void) {
  static const int decks[3] = {1, 2, 3}, ks[3] = {4, 32, 64};
  float obs[4], r;
  int level, te, tr, seen[3 * 52];
  for (level = 0; level < 3; level++) {
    mrl_env *env = make_level("RepeatPrevious", level);
    int n = 52 * decks[level], k = ks[level], t, ok = 1;
    double ret = 0.0;
    MRL_CHECK(env != NULL, "RepeatPrevious made");
    if (!env) continue;
    MRL_CHECK(mrl_env_max_episode_steps(env) == n - 1, "RepeatPrevious limit");
    mrl_env_reset(env, 5, obs);
    seen[0] = hot(obs, 4);
    for (t = 1; t <= n - 1; t++) {
      /* o_{t-k} is the target of step t; wrong answers on every fifth step */
      int target = t >= k ? seen[t - k] : 0, wrong = t % 5 == 0;
      float want = t < k ? 0.0f : (wrong ? -1.0f : 1.0f) / (float)(n - k);
      if (!step_i(env, wrong ? (target + 1) % 4 : target, obs, &r, &te, &tr)) ok = 0;
      if (r != want) ok = 0;
      if (tr || te != (t == n - 1)) ok = 0;
      seen[t] = hot(obs, 4);
      ret += r;
    }
    MRL_CHECK(ok, "RepeatPrevious k=%d: reward from step k on, target o_{t-k}, terminated at n-1",
              k);
    {
      int scored = n - k, wrongs = 0;
      for (t = k; t <= n - 1; t++) wrongs += t % 5 == 0;
      MRL_CHECK_NEAR(ret, (double)(scored - 2 * wrongs) / scored, 1e-4, 0, "RepeatPrevious return");
    }
    mrl_env_free(env);
  }
}

/* ---- Autoencode ----------------------------------------------------------- */

static void test_autoencode(void) {
  float obs[6], r;
  int level, te, tr, suits[3 * 52];
  for (level = 0; level < 3; level++) {
    mrl_env *env = make_level("Autoencode", level);
    int n = 52 * (level + 1), t, ok = 1, flags_ok = 1;
    double ret = 0.0;
    MRL_CHECK(env && mrl_env_obs_dim(env) == 6 && mrl_env_num_actions(env) == 4, "Autoencode dims");
    if (!env) continue;
    MRL_CHECK(mrl_env_max_episode_steps(env) == 2 * n - 1, "Autoencode limit");
    mrl_env_reset(env, 3, obs);
    if (!(obs[0] == 0.0f && obs[1] == 1.0f)) flags_ok = 0;
    suits[0] = hot(obs + 2, 4);
    for (t = 1; t <= n - 1; t++) { /* watch: actions ignored, reward 0 */
      step_i(env, t % 4, obs, &r, &te, &tr);
      if (r != 0.0f || te || tr) ok = 0;
      /* the last card comes with the play flag */
      if (obs[0] != (t == n - 1 ? 1.0f : 0.0f) || obs[1] != 1.0f - obs[0]) flags_ok = 0;
      suits[t] = hot(obs + 2, 4);
      if (suits[t] < 0) ok = 0;
    }
    for (t = 0; t < n; t++) { /* play: reverse order; every third answer wrong */
      int want = suits[n - 1 - t], wrong = t % 3 == 1;
      step_i(env, wrong ? (want + 2) % 4 : want, obs, &r, &te, &tr);
      if (r != (wrong ? -1.0f : 1.0f) / (float)n) ok = 0;
      if (te != (t == n - 1) || tr) ok = 0;
      if (!(obs[0] == 1.0f && obs[1] == 0.0f && hot(obs + 2, 4) == -1)) flags_ok = 0;
      ret += r;
    }
    MRL_CHECK(ok, "Autoencode rules (level %d)", level);
    MRL_CHECK(flags_ok, "Autoencode mode flags and blank cards in play");
    MRL_CHECK(mrl_env_episode_length(env) == 2 * n - 1, "Autoencode length %d",
              mrl_env_episode_length(env));
    {
      int wrongs = 0;
      for (t = 0; t < n; t++) wrongs += t % 3 == 1;
      MRL_CHECK_NEAR(ret, (double)(n - 2 * wrongs) / n, 1e-4, 0, "Autoencode return");
    }
    mrl_env_free(env);
  }
}

/* ---- CountRecall ---------------------------------------------------------- */

static void test_count_recall(void) {
  static const int decks[3] = {1, 2, 4}, distinct[3] = {2, 4, 13};
  float obs[26], r;
  int level, te, tr;
  for (level = 0; level < 3; level++) {
    mrl_env *env = make_level("CountRecall", level);
    int d = distinct[level], n = 52 * decks[level], t, ok = 1, max_used = 0, seed;
    double worst = 1.0;
    MRL_CHECK(env && mrl_env_obs_dim(env) == 2 * d && mrl_env_num_actions(env) == n / d + 1,
              "CountRecall dims");
    if (!env) continue;
    for (seed = 0; seed < 20; seed++) {
      int counts[13] = {0}, qcounts[13] = {0}, query;
      double ret = 0.0;
      mrl_env_reset(env, (uint64_t)seed, obs);
      counts[hot(obs, d)]++;
      query = hot(obs + d, d);
      qcounts[query]++;
      for (t = 1; t <= n - 1; t++) {
        int answer = counts[query], wrong = seed == 0 && t % 7 == 0;
        if (answer == n / d) max_used = 1;
        step_i(env, wrong ? (answer + 1) % (n / d + 1) : answer, obs, &r, &te, &tr);
        if (r != (wrong ? -1.0f : 1.0f) / (float)(n - 1)) ok = 0;
        if (te != (t == n - 1) || tr) ok = 0;
        if (hot(obs, d) < 0 || hot(obs + d, d) < 0) {
          ok = 0;
          break;
        }
        counts[hot(obs, d)]++;
        query = hot(obs + d, d);
        qcounts[query]++;
        ret += r;
      }
      for (t = 0; t < d; t++)
        if (counts[t] != n / d || qcounts[t] != n / d) ok = 0; /* two full decks dealt */
      if (seed > 0 && ret < worst) worst = ret;
    }
    MRL_CHECK(ok, "CountRecall rules (level %d)", level);
    MRL_CHECK_NEAR(worst, 1.0, 1e-4, 0, "CountRecall counting policy returns 1");
    MRL_CHECK(level == 2 || max_used, "the full count n/d was asked and is a valid action");
    mrl_env_free(env);
  }
}

/* ---- HigherLower ---------------------------------------------------------- */

static void test_higher_lower(void) {
  float obs[13], r;
  int level, te, tr;
  for (level = 0; level < 3; level++) {
    mrl_env *env = make_level("HigherLower", level);
    int n = 52 * (level + 1), t, ok = 1, cur, counts[13] = {0}, pushes = 0;
    MRL_CHECK(env && mrl_env_obs_dim(env) == 13 && mrl_env_num_actions(env) == 2,
              "HigherLower dims");
    if (!env) continue;
    mrl_env_reset(env, 8, obs);
    cur = hot(obs, 13);
    counts[cur]++;
    for (t = 1; t <= n - 1; t++) {
      int a = (t * 7) % 3 == 0, next;
      float want;
      step_i(env, a, obs, &r, &te, &tr);
      next = hot(obs, 13);
      if (next < 0) {
        ok = 0;
        break;
      }
      want = next == cur ? 0.0f : ((next > cur) == (a == 0) ? 1.0f : -1.0f) / (float)n;
      pushes += next == cur;
      if (r != want || te != (t == n - 1) || tr) ok = 0;
      counts[next]++;
      cur = next;
    }
    for (t = 0; t < 13; t++)
      if (counts[t] != 4 * (level + 1)) ok = 0;
    MRL_CHECK(ok, "HigherLower rules (level %d): 0 higher, 1 lower, 0 on a push", level);
    MRL_CHECK(pushes > 0, "a push happened (ranks repeat)");
    mrl_env_free(env);
  }
}

/* ---- Concentration -------------------------------------------------------- */

static void test_concentration(void) {
  static const int decks[3] = {1, 2, 1}, distinct[3] = {2, 2, 13};
  static float obs[104 * 3 + 52 * 14];
  float r;
  int level, te, tr;
  for (level = 0; level < 3; level++) {
    mrl_env *env = make_level("Concentration", level);
    int n = 52 * decks[level], d = distinct[level], w = d + 1, L, p, ok = 1, steps = 0;
    int known[104], matched[104], pairs = 0;
    double ret = 0.0;
    MRL_CHECK(env && mrl_env_obs_dim(env) == n * w && mrl_env_num_actions(env) == n,
              "Concentration dims");
    if (!env) continue;
    L = mrl_env_max_episode_steps(env);
    MRL_CHECK(L == (n == 52 ? 104 : 208), "Concentration episode length %d", L);
    mrl_env_reset(env, 21, obs);
    for (p = 0; p < n; p++) {
      if (hot(obs + p * w, w) != d) ok = 0; /* all face down */
      known[p] = -1;
      matched[p] = 0;
    }
    MRL_CHECK(ok, "Concentration starts face down");
    /* flipping a matched card voids the turn: tested after the first match */
    /* a perfect-memory player: flip the next unknown card, then its known twin or
     * the next unknown card */
    for (;;) {
      int a = -1, b = -1, q, va, vb;
      for (p = 0; p < n && a < 0; p++) /* a known pair first */
        for (q = p + 1; q < n && a < 0; q++)
          if (!matched[p] && !matched[q] && known[p] >= 0 && known[p] == known[q]) {
            a = p;
            b = q;
          }
      if (a >= 0) {
        step_i(env, a, obs, &r, &te, &tr);
        step_i(env, b, obs, &r, &te, &tr);
        steps += 2;
        if (r != 2.0f / (float)n) ok = 0;
        matched[a] = matched[b] = 1;
        pairs++;
        ret += r;
        if (te || tr) break;
        continue;
      }
      for (p = 0; p < n && a < 0; p++)
        if (!matched[p] && known[p] < 0) a = p;
      if (a < 0) break;
      step_i(env, a, obs, &r, &te, &tr);
      steps++;
      va = hot(obs + a * w, w);
      if (r != 0.0f || va < 0 || va == d || te || tr) ok = 0;
      known[a] = va;
      for (q = 0; q < n && b < 0; q++)
        if (q != a && !matched[q] && known[q] == va) b = q;
      for (q = 0; q < n && b < 0; q++)
        if (q != a && !matched[q] && known[q] < 0) b = q;
      if (b < 0) break;
      step_i(env, b, obs, &r, &te, &tr);
      steps++;
      vb = hot(obs + b * w, w);
      known[b] = vb;
      if (hot(obs + a * w, w) != va) ok = 0; /* both flipped cards visible */
      if (va == vb) {
        if (r != 2.0f / (float)n) ok = 0;
        matched[a] = matched[b] = 1;
        pairs++;
        if (pairs == 1) { /* flip a matched card: -1/L, then the turn restarts */
          float r2;
          step_i(env, a, obs, &r2, &te, &tr);
          steps++;
          if (r2 != -1.0f / (float)L) ok = 0;
          ret += r2;
        }
      } else {
        if (r != -2.0f / (float)L) ok = 0;
      }
      ret += r;
      if (te || tr) break;
    }
    MRL_CHECK(ok, "Concentration rules (level %d)", level);
    MRL_CHECK((te && !tr && pairs == n / 2) || (tr && !te && pairs < n / 2 && steps == L),
              "all pairs found -> terminated, else truncated (%d pairs, %d steps)", pairs, steps);
    MRL_CHECK(level == 2 || te, "perfect memory clears the colour decks in time");
    MRL_CHECK(ret <= 1.0 + 1e-5 && ret > 0.0, "Concentration return %g", ret);
    /* a mismatch is turned face down again on the next flip; the same card twice fails */
    mrl_env_reset(env, 22, obs);
    step_i(env, 0, obs, &r, &te, &tr);
    step_i(env, 0, obs, &r, &te, &tr);
    MRL_CHECK(r == -2.0f / (float)L, "flipping one card twice is a failed turn");
    step_i(env, 1, obs, &r, &te, &tr);
    MRL_CHECK(hot(obs, w) == d && hot(obs + w, w) >= 0 && hot(obs + w, w) < d,
              "only the card flipped this turn is face up");
    /* truncation: flip the same card over and over */
    mrl_env_reset(env, 23, obs);
    for (p = 1; p <= L; p++) {
      step_i(env, 5, obs, &r, &te, &tr);
      if (te || tr != (p == L)) ok = 0;
    }
    MRL_CHECK(ok && mrl_env_episode_return(env) >= -1.0f - 1e-5f,
              "truncated after %d steps, return %g >= -1", L, mrl_env_episode_return(env));
    mrl_env_free(env);
  }
  /* random play against a reference of the visible set: matched cards plus
   * the cards flipped this turn, every cell of every observation checked */
  for (level = 0; level < 3; level++) {
    mrl_env *env = make_level("Concentration", level);
    int n = 52 * decks[level], d = distinct[level], w = d + 1, L = mrl_env_max_episode_steps(env);
    int matched[104], turn[2], nturn = 0, p, t, ok = 1, rewards_ok = 1, episodes = 0;
    mrl_rng rng = mrl_rng_make(5);
    mrl_env_reset(env, 50, obs);
    memset(matched, 0, sizeof matched);
    for (t = 0; t < 3000; t++) {
      /* mostly fresh cards, sometimes matched ones or the same one twice */
      int a = (int)mrl_rng_below(&rng, (uint32_t)n);
      float want;
      if (t % 17 == 0 && nturn == 1) a = turn[0];
      step_i(env, a, obs, &r, &te, &tr);
      turn[nturn++] = a;
      for (p = 0; p < n; p++) {
        int vis = matched[p] || turn[0] == p || (nturn == 2 && turn[1] == p),
            h = hot(obs + p * w, w);
        if (h < 0 || (vis ? h == d : h != d)) ok = 0;
      }
      if (matched[turn[0]] || (nturn == 2 && matched[turn[1]])) {
        want = -(float)nturn / (float)L;
        nturn = 0;
      } else if (nturn == 2) {
        int same = turn[0] != turn[1] && hot(obs + turn[0] * w, w) == hot(obs + turn[1] * w, w);
        want = same ? 2.0f / (float)n : -2.0f / (float)L;
        if (same) matched[turn[0]] = matched[turn[1]] = 1;
        nturn = 0;
      } else {
        want = 0.0f;
      }
      if (r != want) rewards_ok = 0;
      if (te || tr) {
        episodes++;
        mrl_env_reset(env, 60 + (uint64_t)t, obs);
        memset(matched, 0, sizeof matched);
        nturn = 0;
      }
    }
    MRL_CHECK(ok,
              "Concentration level %d: every observation shows exactly the matched cards and "
              "this turn's",
              level);
    MRL_CHECK(rewards_ok && episodes > 5,
              "Concentration level %d: rewards of random play (%d "
              "episodes)",
              level, episodes);
    mrl_env_free(env);
  }
  {
    mrl_env *env = mrl_env_make("ConcentrationEasy-v0");
    char buf[2048];
    mrl_env_reset(env, 1, obs);
    step_i(env, 0, obs, &r, &te, &tr);
    mrl_env_render(env, buf, sizeof buf);
    MRL_CHECK(buf[0] == '[' && strchr(buf, '?') != NULL, "Concentration render:\n%s", buf);
    mrl_env_free(env);
  }
}

/* ---- Battleship ----------------------------------------------------------- */

static void test_battleship(void) {
  float obs[2], r;
  int level, te, tr;
  for (level = 0; level < 3; level++) {
    mrl_env *env = make_level("Battleship", level);
    int b = 8 + 2 * level, cells = b * b, i, ok = 1, ships = 0, hits = 0;
    char buf[4096], layout[144];
    const char *p;
    MRL_CHECK(env && mrl_env_obs_dim(env) == 2 && mrl_env_num_actions(env) == cells,
              "Battleship dims");
    if (!env) continue;
    MRL_CHECK(mrl_env_max_episode_steps(env) == cells, "Battleship limit");
    mrl_env_reset(env, 31, obs);
    MRL_CHECK(obs[0] == 1.0f && obs[1] == 0.0f, "first observation: miss");
    /* the render shows the fleet: '#' cells */
    mrl_env_render(env, buf, sizeof buf);
    for (p = buf, i = 0; *p && i < cells; p++)
      if (*p == '#' || *p == '.') layout[i++] = *p;
    for (i = 0; i < cells; i++) ships += layout[i] == '#';
    MRL_CHECK(ships == 12, "12 ship cells (2+3+3+4), got %d", ships);
    for (i = 0; i < cells; i++) {
      int hit = layout[i] == '#';
      step_i(env, i, obs, &r, &te, &tr);
      hits += hit;
      if (obs[1] != (float)hit || obs[0] != (float)!hit) ok = 0;
      if (r != (hit ? 1.0f / 12.0f : -1.0f / (float)(cells - 12))) ok = 0;
      if (te != (hits == 12) || tr) ok = 0;
      if (te) break;
    }
    MRL_CHECK(ok && te, "Battleship: sweep hits the rendered fleet and ends at the 12th hit");
    /* a repeated shot on a hit cell is a miss; truncation after b*b shots */
    mrl_env_reset(env, 32, obs);
    mrl_env_render(env, buf, sizeof buf);
    for (p = buf, i = 0; *p && i < cells; p++)
      if (*p == '#' || *p == '.') layout[i++] = *p;
    for (i = 0; layout[i] != '#'; i++) {
    }
    for (hits = 1; hits <= cells; hits++) {
      step_i(env, i, obs, &r, &te, &tr);
      if (hits > 1 && (obs[1] != 0.0f || r != -1.0f / (float)(cells - 12))) ok = 0;
      if (te || tr != (hits == cells)) ok = 0;
    }
    MRL_CHECK(ok, "repeated shots miss; truncated after %d shots", cells);
    MRL_CHECK_NEAR(mrl_env_episode_return(env), 1.0 / 12 - (cells - 1.0) / (cells - 12), 1e-4, 0,
                   "Battleship worst-case return (POPGym's scale)");
    mrl_env_free(env);
  }
}

/* ---- MineSweeper ---------------------------------------------------------- */

static int read_mines(mrl_env *env, int n, char *layout) {
  char buf[1024];
  const char *p;
  int i = 0;
  mrl_env_render(env, buf, sizeof buf);
  for (p = buf; *p && i < n; p++)
    if (*p == '*' || *p == '.') layout[i++] = *p;
  return i;
}

static void test_minesweeper(void) {
  static const int sides[3] = {4, 6, 8}, mines[3] = {2, 6, 10};
  float obs[10], r;
  int level, te, tr;
  for (level = 0; level < 3; level++) {
    mrl_env *env = make_level("MineSweeper", level);
    int s = sides[level], n = s * s, m = mines[level], L = n - m, od = m + 1 < 10 ? m + 1 : 10;
    int i, j, ok = 1, count[64], nmines = 0, views = 0, mine_cell = -1, clear_cell = -1;
    char layout[64];
    double ret = 0.0;
    MRL_CHECK(env && mrl_env_obs_dim(env) == od && mrl_env_num_actions(env) == n,
              "MineSweeper dims");
    if (!env) continue;
    MRL_CHECK(mrl_env_max_episode_steps(env) == L, "MineSweeper limit %d",
              mrl_env_max_episode_steps(env));
    mrl_env_reset(env, 41, obs);
    MRL_CHECK(hot(obs, od) == 0, "first observation 0");
    MRL_CHECK(read_mines(env, n, layout) == n, "render shows the grid");
    for (i = 0; i < n; i++) nmines += layout[i] == '*';
    MRL_CHECK(nmines == m, "%d mines, got %d", m, nmines);
    for (i = 0; i < n; i++) { /* the 3x3 block count, the cell itself included */
      int y = i / s, x = i % s, dy, dx;
      count[i] = 0;
      for (dy = -1; dy <= 1; dy++)
        for (dx = -1; dx <= 1; dx++)
          if (y + dy >= 0 && y + dy < s && x + dx >= 0 && x + dx < s)
            count[i] += layout[(y + dy) * s + x + dx] == '*';
      if (layout[i] == '*' && mine_cell < 0) mine_cell = i;
      if (layout[i] != '*' && clear_cell < 0) clear_cell = i;
    }
    for (i = 0; i < n; i++) { /* click every clear cell: +1/L each, win at the last */
      if (layout[i] == '*') continue;
      step_i(env, i, obs, &r, &te, &tr);
      views++;
      ret += r;
      if (hot(obs, od) != count[i] || r != 1.0f / (float)L) ok = 0;
      if (te != (views == L) || tr) ok = 0;
    }
    MRL_CHECK(ok && te, "MineSweeper: clicking every clear cell wins");
    MRL_CHECK_NEAR(ret, 1.0, 1e-4, 0, "MineSweeper best return");
    /* worst case: view one, L-2 repeats, then a mine: exactly -1, terminated at step L */
    mrl_env_reset(env, 41, obs);
    step_i(env, clear_cell, obs, &r, &te, &tr);
    ret = r;
    for (j = 0; j < L - 2; j++) {
      step_i(env, clear_cell, obs, &r, &te, &tr);
      ret += r;
      if (r != -0.5f / (float)(L - 2) || te || tr || hot(obs, od) != count[clear_cell]) ok = 0;
    }
    step_i(env, mine_cell, obs, &r, &te, &tr);
    ret += r;
    MRL_CHECK(ok && te && !tr && r == -0.5f - 1.0f / (float)L, "a mine ends the episode");
    MRL_CHECK(hot(obs, od) == count[mine_cell], "a mine shows its block count (itself included)");
    MRL_CHECK_NEAR(ret, -1.0, 1e-4, 0, "MineSweeper worst return");
    /* repeats only: truncated after L steps (POPGym's check allows L + 1) */
    mrl_env_reset(env, 41, obs);
    for (j = 1; j <= L; j++) {
      step_i(env, clear_cell, obs, &r, &te, &tr);
      if (te || tr != (j == L)) ok = 0;
    }
    MRL_CHECK(ok, "MineSweeper truncated after %d steps", L);
    mrl_env_free(env);
  }
}

/* ---- MultiarmedBandit ----------------------------------------------------- */

static void test_bandit(void) {
  float obs[2], r, p[30];
  int level, te, tr;
  for (level = 0; level < 3; level++) {
    mrl_env *env = make_level("MultiarmedBandit", level);
    int k = 10 * (level + 1), T = 200 * (level + 1), t, ok = 1, ep, pays = 0, pulls = 0;
    double expect = 0.0;
    MRL_CHECK(env && mrl_env_obs_dim(env) == 2 && mrl_env_num_actions(env) == k &&
                  mrl_env_task_dim(env) == k,
              "MultiarmedBandit dims");
    if (!env) continue;
    MRL_CHECK(mrl_env_max_episode_steps(env) == T, "bandit horizon");
    for (ep = 0; ep < 10; ep++) {
      mrl_env_reset(env, (uint64_t)ep, obs);
      if (obs[0] != 1.0f || obs[1] != 0.0f) ok = 0;
      mrl_env_task(env, p);
      for (t = 0; t < k; t++)
        if (!(p[t] >= 0.0f && p[t] < 1.0f)) ok = 0;
      for (t = 1; t <= T; t++) {
        int a = (t * 3 + ep) % k, pay;
        step_i(env, a, obs, &r, &te, &tr);
        pay = hot(obs, 2);
        if (pay < 0 || r != (pay ? 1.0f : -1.0f) / (float)T) ok = 0;
        if (te || tr != (t == T)) ok = 0;
        pays += pay;
        pulls++;
        expect += p[a];
      }
    }
    MRL_CHECK(ok, "MultiarmedBandit rules (level %d)", level);
    /* payouts follow the task's probabilities: binomial, 5 standard deviations */
    MRL_CHECK(fabs(pays - expect) < 5.0 * sqrt(pulls * 0.25), "payouts %d, expected %.1f", pays,
              expect);
    mrl_env_free(env);
  }
}

/* ---- every POPGym id: determinism, invalid actions, reset, render --------- */

static void test_popgym_common(void) {
  static float o1[1024], o2[1024];
  int name, level;
  for (name = 0; name < 9; name++)
    for (level = 0; level < 3; level++) {
      mrl_env *a = make_level(popgym_names[name], level),
              *b = make_level(popgym_names[name], level);
      mrl_rng rng = mrl_rng_make(7);
      char ra[8192], rb[8192], id[64], small[6];
      int n, t, same = 1, differ = 0, od, len, episodes = 0, in_range = 1;
      float bad[5];
      snprintf(id, sizeof id, "%s%s-v0", popgym_names[name], popgym_levels[level]);
      MRL_CHECK(a && b, "%s made", id);
      if (!a || !b) {
        mrl_env_free(a);
        mrl_env_free(b);
        continue;
      }
      MRL_CHECK(strcmp(mrl_env_id(a), id) == 0, "id %s", mrl_env_id(a));
      od = mrl_env_obs_dim(a);
      n = mrl_env_num_actions(a);
      MRL_CHECK(od <= 1024 && n > 0 && mrl_env_action_dim(a) == 1, "%s dims", id);
      /* step before reset */
      {
        float z = 0.0f;
        MRL_CHECK(mrl_env_step(a, &z, o1, NULL, NULL, NULL) == MRL_ERR_NOT_RESET,
                  "%s: step before reset rejected", id);
      }
      /* same seed, same actions: bitwise the same trajectory */
      mrl_env_reset(a, 1234, o1);
      mrl_env_reset(b, 1234, o2);
      for (t = 0; t < 400; t++) {
        float act = (float)mrl_rng_below(&rng, (uint32_t)n), r1, r2;
        int te1, tr1, te2, tr2;
        mrl_env_step(a, &act, o1, &r1, &te1, &tr1);
        mrl_env_step(b, &act, o2, &r2, &te2, &tr2);
        if (memcmp(o1, o2, (size_t)od * sizeof(float)) != 0 || r1 != r2 || te1 != te2 || tr1 != tr2)
          same = 0;
        if (te1 || tr1) {
          float ret = mrl_env_episode_return(a);
          /* Battleship's worst case is below -1 by POPGym's scale */
          if (ret > 1.0f + 1e-4f || (name != 6 && ret < -1.0f - 1e-4f)) in_range = 0;
          episodes++;
          mrl_env_reset(a, (uint64_t)t, o1);
          mrl_env_reset(b, (uint64_t)t, o2);
        }
      }
      MRL_CHECK(same, "%s: deterministic under a seed", id);
      MRL_CHECK(in_range, "%s: episode returns within [-1, 1] (%d episodes)", id, episodes);
      /* different seeds give different episodes */
      for (t = 0; t < 8 && !differ; t++) {
        float act, r1 = 0, r2 = 0;
        int k;
        mrl_env_reset(a, 100 + (uint64_t)t, o1);
        mrl_env_reset(b, 200 + (uint64_t)t, o2);
        for (k = 0; k < 30; k++) {
          act = (float)((k * 7) % n);
          mrl_env_step(a, &act, o1, &r1, NULL, NULL);
          mrl_env_step(b, &act, o2, &r2, NULL, NULL);
          if (memcmp(o1, o2, (size_t)od * sizeof(float)) != 0 || r1 != r2) differ = 1;
        }
      }
      MRL_CHECK(differ, "%s: seeds matter", id);
      /* invalid actions: rejected, nothing changes */
      mrl_env_reset(a, 77, o1);
      mrl_env_reset(b, 77, o2);
      for (t = 0; t < 3; t++) {
        float act = (float)(t % n);
        mrl_env_step(a, &act, o1, NULL, NULL, NULL);
        mrl_env_step(b, &act, o2, NULL, NULL, NULL);
      }
      bad[0] = -1.0f;
      bad[1] = (float)n;
      bad[2] = 0.5f;
      bad[3] = NAN;
      bad[4] = INFINITY;
      mrl_env_render(a, ra, sizeof ra);
      for (t = 0; t < 5; t++)
        MRL_CHECK(mrl_env_step(a, &bad[t], o1, NULL, NULL, NULL) == MRL_ERR_INVALID_ACTION,
                  "%s: action %g rejected", id, bad[t]);
      mrl_env_render(a, rb, sizeof rb);
      MRL_CHECK(strcmp(ra, rb) == 0, "%s: state untouched by invalid actions", id);
      same = mrl_env_episode_length(a) == mrl_env_episode_length(b);
      for (t = 0; t < 20; t++) {
        float act = (float)((t * 5) % n), r1, r2;
        int te1, te2, tr1, tr2;
        mrl_env_step(a, &act, o1, &r1, &te1, &tr1);
        mrl_env_step(b, &act, o2, &r2, &te2, &tr2);
        if (memcmp(o1, o2, (size_t)od * sizeof(float)) != 0 || r1 != r2 || te1 != te2) same = 0;
        if (te1 || tr1) break;
      }
      MRL_CHECK(same, "%s: continues exactly like a twin that saw no invalid action", id);
      /* render: snprintf semantics */
      len = mrl_env_render(a, NULL, 0);
      MRL_CHECK(len > 0 && len < (int)sizeof ra && mrl_env_render(a, ra, sizeof ra) == len &&
                    (int)strlen(ra) == len,
                "%s: render length %d", id, len);
      MRL_CHECK(mrl_env_render(a, small, sizeof small) == len && strlen(small) == sizeof small - 1,
                "%s: render truncates to the buffer", id);
      /* the popgym- prefix of POPGym's own ids works too */
      {
        char pid[80];
        mrl_env *c;
        snprintf(pid, sizeof pid, "popgym-%s", id);
        c = mrl_env_make(pid);
        MRL_CHECK(c && mrl_env_obs_dim(c) == od, "%s made", pid);
        mrl_env_free(c);
      }
      mrl_env_free(a);
      mrl_env_free(b);
    }
  /* malformed ids */
  MRL_CHECK(mrl_env_make("RepeatFirstEasy") == NULL, "no version");
  MRL_CHECK(mrl_env_make("RepeatFirstEasy-v1") == NULL, "wrong version");
  MRL_CHECK(mrl_env_make("RepeatFirst-v0") == NULL, "no level");
  MRL_CHECK(mrl_env_make("RepeatFirstEasy-v0x") == NULL, "trailing text");
  MRL_CHECK(mrl_env_make("repeatfirsteasy-v0") == NULL, "case matters");
}

static void test_render_samples(void) {
  const char *ids[4] = {"RepeatPreviousEasy-v0", "MineSweeperEasy-v0", "BattleshipEasy-v0",
                        "MultiarmedBanditEasy-v0"};
  int i;
  for (i = 0; i < 4; i++) {
    mrl_env *env = mrl_env_make(ids[i]);
    char buf[2048];
    float a = 1.0f;
    mrl_env_reset(env, 5, NULL);
    mrl_env_step(env, &a, NULL, NULL, NULL, NULL);
    mrl_env_render(env, buf, sizeof buf);
    MRL_CHECK(strlen(buf) > 10, "%s render:\n%s", ids[i], buf);
    if (i == 1) MRL_CHECK(strstr(buf, "[") != NULL, "MineSweeper marks the last click");
    if (i == 3) MRL_CHECK(strchr(buf, '>') != NULL, "bandit marks the last arm");
    mrl_env_free(env);
  }
}

/* ---- wrappers ------------------------------------------------------------- */

/* A box environment from user code: obs = [position], action in [-1, 1]^2,
 * reward = a0 + a1, ten steps. */
typedef struct box_env {
  float pos;
  int t;
} box_env;

static mrl_result box_reset(void *self, uint64_t seed, float *obs) {
  box_env *b = (box_env *)self;
  b->pos = (float)(seed % 7);
  b->t = 0;
  obs[0] = b->pos;
  return MRL_OK;
}

static mrl_result box_step(void *self, const float *action, float *obs, float *reward,
                           int *terminated, int *truncated) {
  box_env *b = (box_env *)self;
  b->pos += action[0];
  obs[0] = b->pos;
  *reward = action[0] + action[1];
  *terminated = ++b->t == 10;
  *truncated = 0;
  return MRL_OK;
}

static mrl_env *make_box(box_env *state) {
  static const float lo[2] = {-1.0f, -1.0f}, hi[2] = {1.0f, 1.0f};
  mrl_env_vtable vt;
  memset(&vt, 0, sizeof vt);
  vt.id = "Box";
  vt.obs_dim = 1;
  vt.action_dim = 2;
  vt.action_low = lo;
  vt.action_high = hi;
  vt.reset = box_reset;
  vt.step = box_step;
  return mrl_env_create(&vt, state);
}

static void test_wrap_prev_action_reward(void) {
  mrl_env *bare = mrl_env_make("RepeatFirstEasy-v0");
  mrl_env *w = mrl_env_wrap_prev_action_reward(mrl_env_make("RepeatFirstEasy-v0"));
  float ob[4], ow[9], rb, rw;
  int t, ok = 1, te, tr;
  MRL_CHECK(w && mrl_env_obs_dim(w) == 9 && mrl_env_num_actions(w) == 4, "prev action dims");
  MRL_CHECK(w && strcmp(mrl_env_id(w), "RepeatFirstEasy-v0|prev_action_reward") == 0, "id %s",
            w ? mrl_env_id(w) : "");
  if (!w || !bare) return;
  MRL_CHECK(mrl_env_max_episode_steps(w) == 51, "time limit kept");
  mrl_env_reset(bare, 9, ob);
  mrl_env_reset(w, 9, ow);
  MRL_CHECK(memcmp(ob, ow, sizeof ob) == 0 && hot(ow + 4, 5) == -1, "reset: zeros appended");
  for (t = 0; t < 60; t++) {
    int a = (t * 3) % 4;
    int sb = step_i(bare, a, ob, &rb, &te, &tr), sw = step_i(w, a, ow, &rw, &te, &tr);
    if (sb != sw) ok = 0;
    if (!sw) break;
    if (memcmp(ob, ow, sizeof ob) != 0 || hot(ow + 4, 4) != a || ow[8] != rw || rw != rb) ok = 0;
  }
  MRL_CHECK(ok && t == 51, "one-hot previous action and reward appended (%d steps)", t);
  MRL_CHECK(mrl_env_episode_return(w) == mrl_env_episode_return(bare), "episode return");
  mrl_env_free(bare);
  mrl_env_free(w);
  { /* box actions: the clipped action */
    box_env st;
    mrl_env *inner = make_box(&st), *bw;
    float obs[4], a[2] = {3.0f, -0.25f}, r;
    bw = mrl_env_wrap_prev_action_reward(inner);
    MRL_CHECK(bw && mrl_env_obs_dim(bw) == 4 && mrl_env_num_actions(bw) == 0 &&
                  mrl_env_action_dim(bw) == 2,
              "box prev action dims");
    if (!bw) return;
    mrl_env_reset(bw, 3, obs);
    MRL_CHECK(obs[0] == 3.0f && obs[1] == 0.0f && obs[2] == 0.0f && obs[3] == 0.0f, "box reset");
    mrl_env_step(bw, a, obs, &r, NULL, NULL);
    MRL_CHECK(obs[0] == 4.0f && obs[1] == 1.0f && obs[2] == -0.25f && obs[3] == 0.75f && r == 0.75f,
              "box: clipped action and reward appended (%g %g %g %g)", obs[0], obs[1], obs[2],
              obs[3]);
    a[0] = NAN;
    MRL_CHECK(mrl_env_step(bw, a, obs, &r, NULL, NULL) == MRL_ERR_INVALID_ACTION && st.t == 1,
              "non-finite box action rejected, inner untouched");
    mrl_env_free(bw);
  }
}

static void test_wrap_frame_stack(void) {
  mrl_env *bare = mrl_env_make("TMaze-4");
  mrl_env *w = mrl_env_wrap_frame_stack(mrl_env_make("TMaze-4"), 3);
  float hist[64][3], ow[9], r;
  int t, j, ok = 1, te, tr, n = 0;
  MRL_CHECK(w && mrl_env_obs_dim(w) == 9 && mrl_env_num_actions(w) == 4, "frame stack dims");
  if (!w || !bare) return;
  MRL_CHECK(strcmp(mrl_env_id(w), "TMaze-4|frame_stack:3") == 0, "frame stack id");
  MRL_CHECK(mrl_env_wrap_frame_stack(bare, 0) == NULL, "k = 0 refused");
  mrl_env_reset(bare, 5, hist[n++]);
  mrl_env_reset(w, 5, ow);
  for (t = 0; t < 20; t++) {
    int a = t < 4 ? 1 : 3 - (t % 2) * 2; /* east 4 times, then west/east */
    float want[9];
    if (t > 0) {
      step_i(bare, a, hist[n++], &r, &te, &tr);
      step_i(w, a, ow, &r, &te, &tr);
    }
    for (j = 0; j < 3; j++) {
      int src = n - 3 + j;
      want[3 * j] = src >= 0 ? hist[src][0] : 0.0f;
      want[3 * j + 1] = src >= 0 ? hist[src][1] : 0.0f;
      want[3 * j + 2] = src >= 0 ? hist[src][2] : 0.0f;
    }
    if (memcmp(want, ow, sizeof want) != 0) ok = 0;
  }
  MRL_CHECK(ok, "frame stack: the 3 latest observations, zeros before the start");
  mrl_env_reset(w, 6, ow);
  MRL_CHECK(ow[0] == 0.0f && ow[3] == 0.0f && ow[5] == 0.0f && ow[7] == 1.0f,
            "a reset clears the stack");
  mrl_env_free(bare);
  mrl_env_free(w);
}

static void test_wrap_noise_mask_dropout(void) {
  static float ob[156], ow[156], ow2[156];
  mrl_env *bare = mrl_env_make("ConcentrationEasy-v0");
  mrl_env *w = mrl_env_wrap_obs_noise(mrl_env_make("ConcentrationEasy-v0"), 0.5f);
  mrl_env *w2 = mrl_env_make("ConcentrationEasy-v0|obs_noise:0.5");
  double sum = 0.0, sq = 0.0;
  long cnt = 0;
  int t, i, same = 1;
  float a;
  MRL_CHECK(w && w2 && bare, "noise wrappers made");
  if (!w || !w2 || !bare) return;
  MRL_CHECK(strcmp(mrl_env_id(w), "ConcentrationEasy-v0|obs_noise:0.5") == 0, "noise id %s",
            mrl_env_id(w));
  mrl_env_reset(bare, 3, ob);
  mrl_env_reset(w, 3, ow);
  mrl_env_reset(w2, 3, ow2);
  for (t = 0; t < 50; t++) {
    for (i = 0; i < 156; i++) {
      double e = (double)ow[i] - (double)ob[i];
      sum += e;
      sq += e * e;
      cnt++;
    }
    if (memcmp(ow, ow2, sizeof ow) != 0) same = 0;
    a = (float)(t % 52);
    mrl_env_step(bare, &a, ob, NULL, NULL, NULL);
    mrl_env_step(w, &a, ow, NULL, NULL, NULL);
    mrl_env_step(w2, &a, ow2, NULL, NULL, NULL);
  }
  MRL_CHECK(fabs(sum / cnt) < 0.02 && fabs(sqrt(sq / cnt) - 0.5) < 0.02,
            "noise mean %g, deviation %g (want 0, 0.5)", sum / cnt, sqrt(sq / cnt));
  MRL_CHECK(same, "noise: same seed, same noise (made by id or by function)");
  mrl_env_reset(w, 4, ow);
  mrl_env_reset(w2, 5, ow2);
  MRL_CHECK(memcmp(ow, ow2, sizeof ow) != 0, "another seed, other noise");
  mrl_env_free(w);
  mrl_env_free(w2);
  { /* mask */
    int idx[3] = {0, 2, 2};
    mrl_env *m = mrl_env_wrap_obs_mask(mrl_env_make("ConcentrationEasy-v0"), idx, 3), *inner;
    int bad[1] = {156}, ok = 1;
    MRL_CHECK(m && strcmp(mrl_env_id(m), "ConcentrationEasy-v0|obs_mask:0,2,2") == 0, "mask id");
    inner = mrl_env_make("ConcentrationEasy-v0");
    MRL_CHECK(mrl_env_wrap_obs_mask(inner, bad, 1) == NULL, "mask index out of range refused");
    MRL_CHECK(mrl_env_reset(inner, 1, NULL) == MRL_OK, "inner still the caller's after a refusal");
    mrl_env_free(inner);
    mrl_env_reset(bare, 8, ob);
    mrl_env_reset(m, 8, ow);
    for (t = 0; t < 30; t++) {
      for (i = 0; i < 156; i++)
        if (ow[i] != (i == 0 || i == 2 ? 0.0f : ob[i])) ok = 0;
      a = 0.0f; /* card 0 face up on odd steps: index 0 or 1 hot */
      mrl_env_step(bare, &a, ob, NULL, NULL, NULL);
      mrl_env_step(m, &a, ow, NULL, NULL, NULL);
    }
    MRL_CHECK(ok, "masked components are zero, the rest untouched");
    mrl_env_free(m);
  }
  { /* dropout */
    mrl_env *d = mrl_env_wrap_obs_dropout(mrl_env_make("ConcentrationEasy-v0"), 0.25f);
    mrl_env *d0 = mrl_env_make("ConcentrationEasy-v0|obs_dropout:0");
    long ones = 0, dropped = 0;
    int ok = 1;
    MRL_CHECK(d && d0, "dropout made");
    if (!d || !d0) return;
    MRL_CHECK(mrl_env_wrap_obs_dropout(bare, 1.5f) == NULL, "p > 1 refused");
    mrl_env_reset(bare, 2, ob);
    mrl_env_reset(d, 2, ow);
    mrl_env_reset(d0, 2, ow2);
    for (t = 0; t < 100; t++) {
      for (i = 0; i < 156; i++) {
        if (ow[i] != 0.0f && ow[i] != ob[i]) ok = 0;
        if (ob[i] != 0.0f) {
          ones++;
          dropped += ow[i] == 0.0f;
        }
      }
      if (memcmp(ob, ow2, sizeof ob) != 0) ok = 0;
      a = (float)((t * 11) % 52);
      mrl_env_step(bare, &a, ob, NULL, NULL, NULL);
      mrl_env_step(d, &a, ow, NULL, NULL, NULL);
      mrl_env_step(d0, &a, ow2, NULL, NULL, NULL);
    }
    MRL_CHECK(ok, "dropout only zeroes; p = 0 changes nothing");
    MRL_CHECK(fabs((double)dropped / ones - 0.25) < 0.03, "dropped %ld of %ld", dropped, ones);
    mrl_env_free(d);
    mrl_env_free(d0);
  }
  mrl_env_free(bare);
}

static void test_wrap_time_limit(void) {
  float obs[64], r, a = 0.0f; /* North in the corridor: bump, stay */
  int t, te, tr, ok = 1;
  mrl_env *w = mrl_env_wrap_time_limit(mrl_env_make("TMaze-5"), 7);
  mrl_env *longer = mrl_env_make("TMaze-5|time_limit:100");
  mrl_env *none = mrl_env_make("TMaze-5|time_limit:0");
  mrl_env *deck = mrl_env_make("RepeatFirstEasy-v0|time_limit:100");
  MRL_CHECK(w && longer && none && deck, "time limits made");
  if (!w || !longer || !none || !deck) return;
  MRL_CHECK(mrl_env_max_episode_steps(w) == 7 && mrl_env_max_episode_steps(longer) == 100 &&
                mrl_env_max_episode_steps(none) == 0,
            "limits reported");
  mrl_env_reset(w, 1, obs);
  for (t = 1; t <= 7; t++) {
    mrl_env_step(w, &a, obs, &r, &te, &tr);
    if (te || tr != (t == 7)) ok = 0;
  }
  MRL_CHECK(ok && mrl_env_episode_success(w) == 0, "truncated at 7, no success");
  MRL_CHECK(mrl_env_step(w, &a, obs, &r, &te, &tr) == MRL_ERR_NOT_RESET, "no step after the end");
  mrl_env_reset(longer, 1, obs);
  for (t = 1; t <= 100; t++) {
    mrl_env_step(longer, &a, obs, &r, &te, &tr);
    if (te || tr != (t == 100)) ok = 0;
  }
  MRL_CHECK(ok, "a longer limit replaces TMaze's 60");
  {
    mrl_env *deep = mrl_env_make("TMaze-5|frame_stack:2|obs_dropout:0|time_limit:100");
    MRL_CHECK(deep != NULL, "deep time limit made");
    if (deep) {
      mrl_env_reset(deep, 1, obs);
      for (t = 1; t <= 100; t++) {
        mrl_env_step(deep, &a, obs, &r, &te, &tr);
        if (te || tr != (t == 100)) ok = 0;
      }
      MRL_CHECK(ok, "the limit replaces every level's below it");
      mrl_env_free(deep);
    }
  }
  mrl_env_reset(none, 1, obs);
  for (t = 1; t <= 1000; t++) {
    mrl_env_step(none, &a, obs, &r, &te, &tr);
    if (te || tr) ok = 0;
  }
  MRL_CHECK(ok, "time_limit:0 removes the limit");
  mrl_env_reset(deck, 1, obs);
  for (t = 1; t <= 51; t++) {
    mrl_env_step(deck, &a, obs, &r, &te, &tr);
    if (tr || te != (t == 51)) ok = 0;
  }
  MRL_CHECK(ok, "a deck still runs out at 51 (terminated)");
  /* success forwarded through wrappers: walk to the goal */
  {
    mrl_env *s = mrl_env_make("TMaze-3|frame_stack:2|prev_action_reward|time_limit:50");
    float o[32], act;
    int goal_north;
    MRL_CHECK(s && mrl_env_obs_dim(s) == 6 + 4 + 1, "stacked id made");
    if (s) {
      MRL_CHECK(strcmp(mrl_env_id(s), "TMaze-3|frame_stack:2|prev_action_reward|time_limit:50") ==
                    0,
                "round-trip id");
      MRL_CHECK(mrl_env_episode_success(s) == 0, "success known before the first episode");
      mrl_env_reset(s, 10, o);
      goal_north = o[3] == 0.0f; /* the cue in the newest frame: 0,1,1 North */
      act = 1.0f;
      for (t = 0; t < 3; t++) mrl_env_step(s, &act, o, &r, &te, &tr);
      act = goal_north ? 0.0f : 2.0f;
      mrl_env_step(s, &act, o, &r, &te, &tr);
      MRL_CHECK(te && r == 4.0f && mrl_env_episode_success(s) == 1 &&
                    mrl_env_episode_return(s) == 4.0f,
                "goal reached through three wrappers: success 1");
      MRL_CHECK(mrl_env_inner(s) != NULL && mrl_env_inner(mrl_env_inner(mrl_env_inner(s))) &&
                    mrl_env_inner(mrl_env_inner(mrl_env_inner(mrl_env_inner(s)))) == NULL,
                "mrl_env_inner walks down to the T-maze");
      mrl_env_free(s);
    }
  }
  mrl_env_free(w);
  mrl_env_free(longer);
  mrl_env_free(none);
  mrl_env_free(deck);
}

static void test_wrap_forwarding(void) {
  mrl_env *bare = mrl_env_make("MultiarmedBanditMedium-v0");
  mrl_env *w = mrl_env_make("MultiarmedBanditMedium-v0|prev_action_reward|frame_stack:2");
  float pb[20], pw[20], obs[64], bad = 20.0f;
  char rb[2048], rw[2048];
  MRL_CHECK(w && mrl_env_task_dim(w) == 20 && mrl_env_obs_dim(w) == 2 * (2 + 20 + 1),
            "forwarded task dim");
  if (!w || !bare) return;
  MRL_CHECK(mrl_env_step(w, &bad, obs, NULL, NULL, NULL) == MRL_ERR_NOT_RESET,
            "wrapper: step before reset");
  mrl_env_reset(bare, 17, NULL);
  mrl_env_reset(w, 17, obs);
  mrl_env_task(bare, pb);
  mrl_env_task(w, pw);
  MRL_CHECK(memcmp(pb, pw, sizeof pb) == 0, "task forwarded");
  MRL_CHECK(mrl_env_step(w, &bad, obs, NULL, NULL, NULL) == MRL_ERR_INVALID_ACTION,
            "wrapper: invalid action rejected");
  MRL_CHECK(mrl_env_render(bare, rb, sizeof rb) == mrl_env_render(w, rw, sizeof rw) &&
                strcmp(rb, rw) == 0,
            "render forwarded");
  MRL_CHECK(mrl_env_episode_success(w) == -1, "no success notion forwarded as -1");
  mrl_env_free(bare);
  mrl_env_free(w);
  /* malformed ids */
  {
    const char *bad_ids[] = {"TMaze-5|",
                             "|frame_stack:2",
                             "TMaze-5|frame_stack:0",
                             "TMaze-5|frame_stack",
                             "TMaze-5|frame_stack:2x",
                             "TMaze-5|bogus",
                             "TMaze-5|prev_action_reward:1",
                             "TMaze-5|obs_noise:-1",
                             "TMaze-5|obs_noise:nan",
                             "TMaze-5|obs_noise:",
                             "TMaze-5|obs_dropout:2",
                             "TMaze-5|obs_mask:3",
                             "TMaze-5|obs_mask:0,",
                             "TMaze-5|obs_mask:,0",
                             "TMaze-5|time_limit:-3",
                             "NoSuchEnv|frame_stack:2"};
    int i;
    for (i = 0; i < (int)(sizeof bad_ids / sizeof bad_ids[0]); i++) {
      mrl_env *e = mrl_env_make(bad_ids[i]);
      MRL_CHECK(e == NULL, "malformed id \"%s\" refused", bad_ids[i]);
      mrl_env_free(e);
    }
  }
  MRL_CHECK(mrl_env_wrap_frame_stack(NULL, 2) == NULL &&
                mrl_env_wrap_prev_action_reward(NULL) == NULL,
            "NULL inner refused");
}

/* ---- vector env over wrapped ids; parallel == serial ---------------------- */

static void test_vecenv(void) {
  const char *ids[4] = {"ConcentrationHard-v0|prev_action_reward", "BattleshipMedium-v0",
                        "TMaze-6|obs_noise:0.1|frame_stack:2",
                        "CartPole-v1|domain_randomization:gravity=5:15,length=0.3:0.7"};
  int e;
  for (e = 0; e < 4; e++) {
    mrl_vecenv v1, v2;
    mrl_env *envs[70];
    mrl_rng rng = mrl_rng_make(3);
    static float actions[70];
    int i, t, same = 1, ends = 0;
    /* v1 through mrl_vecenv_init (parallel when built with -fopenmp: 70 >= 64);
     * v2 the same envs stepped one by one by hand */
    MRL_CHECK(mrl_vecenv_init(&v1, ids[e], 70, 99) == MRL_OK, "vecenv %s", ids[e]);
    for (i = 0; i < 70; i++) envs[i] = mrl_env_make(ids[e]);
    MRL_CHECK(mrl_vecenv_init_envs(&v2, envs, 70, 99) == MRL_OK, "vecenv of envs");
    mrl_vecenv_reset(&v1);
    mrl_vecenv_reset(&v2);
    for (t = 0; t < 300; t++) {
      for (i = 0; i < 70; i++) actions[i] = (float)mrl_rng_below(&rng, (uint32_t)v1.num_actions);
      mrl_vecenv_step(&v1, actions);
      for (i = 0; i < 70; i++) { /* serial by hand through a one-env step each */
        mrl_env *en = v2.envs[i];
        float *o = v2.obs + (size_t)i * v2.obs_dim;
        mrl_env_step(en, actions + i, o, v2.rewards + i, v2.terminated + i, v2.truncated + i);
        if (v2.terminated[i] || v2.truncated[i]) {
          memcpy(v2.final_obs + (size_t)i * v2.obs_dim, o, (size_t)v2.obs_dim * sizeof(float));
          mrl_env_reset(en, mrl_vecenv_episode_seed(99, i, v2.episodes_started[i]++), o);
          ends++;
        }
      }
      if (memcmp(v1.obs, v2.obs, (size_t)(70 * v1.obs_dim) * sizeof(float)) != 0 ||
          memcmp(v1.rewards, v2.rewards, 70 * sizeof(float)) != 0 ||
          memcmp(v1.terminated, v2.terminated, 70 * sizeof(int)) != 0 ||
          memcmp(v1.truncated, v2.truncated, 70 * sizeof(int)) != 0)
        same = 0;
      for (i = 0; i < 70; i++)
        if ((v1.terminated[i] || v1.truncated[i]) &&
            memcmp(v1.final_obs + (size_t)i * v1.obs_dim, v2.final_obs + (size_t)i * v1.obs_dim,
                   (size_t)v1.obs_dim * sizeof(float)) != 0)
          same = 0;
    }
    MRL_CHECK(same && ends > 0, "%s: vector step equals stepping one by one (%d episodes ended)",
              ids[e], ends);
    mrl_vecenv_free(&v1);
    mrl_vecenv_free(&v2);
  }
}

/* A user environment that fails (MRL_ERR_IO) at step `fail_at` when its
 * seed is odd; the vector must pass the error on and ask for a reset. */
typedef struct failing_env {
  int t, odd;
} failing_env;

static mrl_result failing_reset(void *self, uint64_t seed, float *obs) {
  failing_env *f = (failing_env *)self;
  f->t = 0;
  f->odd = (int)(seed & 1u);
  obs[0] = 0.0f;
  return MRL_OK;
}

static mrl_result failing_step(void *self, const float *action, float *obs, float *reward,
                               int *terminated, int *truncated) {
  failing_env *f = (failing_env *)self;
  (void)action;
  if (++f->t == 3 && f->odd) return MRL_ERR_IO;
  obs[0] = (float)f->t;
  *reward = 1.0f;
  *terminated = *truncated = 0;
  return MRL_OK;
}

static void test_vecenv_error(void) {
  static failing_env states[70];
  mrl_env *envs[70];
  mrl_vecenv v;
  float actions[70];
  int i, made = 1, odd = 0;
  mrl_result r = MRL_OK;
  for (i = 0; i < 70; i++) {
    mrl_env_vtable vt;
    memset(&vt, 0, sizeof vt);
    vt.obs_dim = 1;
    vt.num_actions = 2;
    vt.action_dim = 1;
    vt.reset = failing_reset;
    vt.step = failing_step;
    envs[i] = mrl_env_create(&vt, &states[i]);
    if (!envs[i]) made = 0;
    actions[i] = 1.0f;
  }
  MRL_CHECK(made && mrl_vecenv_init_envs(&v, envs, 70, 4) == MRL_OK, "failing vector made");
  if (!made) return;
  mrl_vecenv_reset(&v);
  for (i = 0; i < 70; i++) odd += states[i].odd;
  MRL_CHECK(odd > 0, "some environments fail");
  for (i = 0; i < 3 && r == MRL_OK; i++) r = mrl_vecenv_step(&v, actions);
  MRL_CHECK(r == MRL_ERR_IO && i == 3 && v.ready == 0, "the user's error comes back (%d at %d)",
            (int)r, i);
  MRL_CHECK(mrl_vecenv_step(&v, actions) == MRL_ERR_NOT_RESET, "then the vector needs a reset");
  MRL_CHECK(mrl_vecenv_reset(&v) == MRL_OK && mrl_vecenv_step(&v, actions) == MRL_OK,
            "and works again after one");
  mrl_vecenv_free(&v);
}

int main(void) {
  test_repeat_first();
  test_repeat_previous();
  test_autoencode();
  test_count_recall();
  test_higher_lower();
  test_concentration();
  test_battleship();
  test_minesweeper();
  test_bandit();
  test_popgym_common();
  test_render_samples();
  test_wrap_prev_action_reward();
  test_wrap_frame_stack();
  test_wrap_noise_mask_dropout();
  test_wrap_time_limit();
  test_wrap_forwarding();
  test_vecenv();
  test_vecenv_error();
#ifdef _OPENMP
  printf("(built with OpenMP: the vector steps ran in parallel)\n");
#endif
  return mrl_test_summary("test_envs_popgym");
}
