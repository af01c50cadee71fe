/* PPO's pinned update (llm.c's test_gpt2.c idea): one update on fixed data
 * must match a PyTorch twin of the same update (tools/make_ref.py,
 * make_ppo_update -> tests/ref/ppo_update.txt): GAE's advantages and
 * returns, the losses, the clipped gradients and the parameters after Adam,
 * for discrete and continuous actions, feedforward and LSTM agents.
 *
 * The agent is built for a stand-in environment of the fixture's spaces
 * (3 observation floats; 3 discrete actions or 2 box actions), its
 * parameters are overwritten with the twin's (in declaration order, shapes
 * checked), the rollout is filled with the fixture's and mrl_ppo_update runs
 * one epoch of one minibatch.
 *
 * Run from the repository root:  cc -std=c99 -O2 tests/test_ppo_update.c -lm && ./a.out */
#define MEMRL_IMPLEMENTATION
#include "../memrl_algos.h"
#include "ref_loader.h"

enum { T = 5, B = 4, OBS = MRL_REF_OBS, HIDDEN = 8, LSTM = 6 };

static void expect_scalar(const mrl_ref_file *f, const char *c, const char *what, double got,
                          double atol, double rtol) {
  char name[64];
  float want;
  snprintf(name, sizeof name, "%s_%s", c, what);
  if (mrl_ref_fill(f, name, &want, 1)) MRL_CHECK_NEAR(got, want, atol, rtol, name);
}

static void pinned_case(const mrl_ref_file *f, const char *c, int lstm, int box) {
  mrl_vecenv env;
  mrl_ppo a;
  mrl_ppo_config cfg = mrl_ppo_config_default();
  mrl_ppo_update_stats st;
  mrl_rollout *ro;
  float last_values[B], init_state[B * 4 * LSTM + 1];
  char name[64];
  int k, n = T * B;
  if (!mrl_ref_fixed_vecenv(&env, B, box)) {
    MRL_CHECK(0, "%s: stand-in env", c);
    return;
  }
  cfg.num_steps = T;
  cfg.num_minibatches = 1;
  cfg.update_epochs = 1;
  cfg.net.encoder_sizes[0] = cfg.net.encoder_sizes[1] = HIDDEN;
  if (lstm) cfg.net.core = mrl_core_config_lstm(LSTM);
  if (mrl_ppo_init(&a, &cfg, &env) != MRL_OK) {
    MRL_CHECK(0, "%s: init: %s", c, a.error);
    mrl_vecenv_free(&env);
    return;
  }
  ro = &a.rollout;
  if (mrl_ref_load_params(f, c, &a.params)) {
    const int R = a.raw_dim;
#define FILL(field, count)                                                                         \
  do {                                                                                             \
    snprintf(name, sizeof name, "%s_%s", c, #field);                                               \
    mrl_ref_fill(f, name, ro->field, count);                                                       \
  } while (0)
    FILL(obs, n * OBS);
    FILL(actions, n * R);
    FILL(log_probs, n);
    FILL(values, n);
    FILL(rewards, n);
    FILL(terminated, n);
    FILL(truncated, n);
    FILL(final_values, n);
    FILL(episode_starts, n);
#undef FILL
    snprintf(name, sizeof name, "%s_initial_state", c);
    mrl_ref_fill(f, name, init_state, lstm ? B * a.state_dim : 1);
    memcpy(ro->initial_state, init_state, sizeof(float) * (size_t)B * a.state_dim);
    snprintf(name, sizeof name, "%s_last_values", c);
    mrl_ref_fill(f, name, last_values, B);
    mrl_rollout_compute_gae(ro, last_values, cfg.gamma, cfg.gae_lambda);
    snprintf(name, sizeof name, "%s_advantages", c);
    mrl_ref_expect(f, name, ro->advantages, n, 1e-5, 1e-5);
    snprintf(name, sizeof name, "%s_returns", c);
    mrl_ref_expect(f, name, ro->returns, n, 1e-5, 1e-5);
    MRL_CHECK(mrl_ppo_update(&a, cfg.learning_rate, cfg.clip_coef, &st) == MRL_OK && st.count == 1,
              "%s: update failed (%s)", c, a.error);
    expect_scalar(f, c, "policy_loss", st.policy_loss, 1e-6, 1e-4);
    expect_scalar(f, c, "value_loss", st.value_loss, 1e-6, 1e-5);
    expect_scalar(f, c, "entropy", st.entropy, 1e-6, 1e-5);
    expect_scalar(f, c, "approx_kl", st.approx_kl, 1e-7, 1e-4);
    expect_scalar(f, c, "clip_fraction", st.clip_fraction, 1e-6, 0.0);
    for (k = 0; k < a.params.count; k++) {
      mrl_tensor *t = &a.params.items[k].tensor;
      snprintf(name, sizeof name, "%s_g%d", c, k);
      mrl_ref_expect(f, name, t->grad, t->size, 2e-6, 1e-4);
      snprintf(name, sizeof name, "%s_u%d", c, k);
      mrl_ref_expect(f, name, t->data, t->size, 1e-6, 1e-5);
    }
  }
  mrl_ppo_free(&a);
  mrl_vecenv_free(&env);
}

int main(void) {
  mrl_ref_file f;
  if (mrl_ref_open(&f, "tests/ref/ppo_update.txt")) {
    pinned_case(&f, "ff", 0, 0);
    pinned_case(&f, "lstm", 1, 0);
    pinned_case(&f, "cont", 0, 1);
    pinned_case(&f, "cont_lstm", 1, 1);
    mrl_ref_close(&f);
  }
  return mrl_test_summary("test_ppo_update");
}
