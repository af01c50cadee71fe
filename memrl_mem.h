/* memrl_mem.h - memory cores and rollout storage for agents that remember.
 *
 * Part of memrl. Needs memrl_nn.h (included here). libc and libm only.
 *
 * ENABLING
 *   In exactly one file: #define MEMRL_IMPLEMENTATION before including, or
 *   MEMRL_MEM_IMPLEMENTATION together with the macros of the headers below it.
 *
 * MEMORY CORES (one interface)
 *   A core maps an input x_t and its state m_{t-1} to an output y_t and state
 *   m_t. The state of one environment is a flat float vector of
 *   mrl_core_state_dim() floats, so rollout and replay buffers can store it
 *   (R2D2's stored state). One call covers both uses:
 *     acting    T = 1, B environments, state read and written in place;
 *     training  a time-major [T, B] sequence from a stored initial state, with
 *               episode_start flags that reset the state to zero before the
 *               step where a new episode begins, and gradients through time.
 *   Cores: MRL_CORE_NONE (y = x, no state: a feedforward agent) and
 *   MRL_CORE_LSTM (torch.nn.LSTM; state = [h, c]).
 *
 * ROLLOUT BUFFER
 *   mrl_rollout stores T steps of B environments (observations, actions,
 *   log-probabilities, values, rewards, terminated/truncated flags, episode
 *   starts) plus each environment's core state before the first step, and
 *   computes GAE(lambda) advantages and returns (Schulman et al. 2016). A
 *   truncated episode is bootstrapped from the value of its final observation
 *   (stored in final_values); a terminated one from zero.
 */
#ifndef MEMRL_MEM_H
#define MEMRL_MEM_H

#define MEMRL_MEM_VERSION_MAJOR 0
#define MEMRL_MEM_VERSION_MINOR 1
#define MEMRL_MEM_VERSION_PATCH 0

#include "memrl_nn.h"
#if MEMRL_NN_VERSION_MAJOR != MEMRL_MEM_VERSION_MAJOR ||                                           \
    MEMRL_NN_VERSION_MINOR != MEMRL_MEM_VERSION_MINOR
#error "memrl_mem.h needs the memrl_nn.h of the same version"
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mrl_core_kind { MRL_CORE_NONE, MRL_CORE_LSTM } mrl_core_kind;

typedef struct mrl_core_config {
  mrl_core_kind kind;
  int hidden_size;   /* LSTM: units */
  mrl_init init;     /* LSTM: default U(+-1/sqrt(H)), or orthogonal weights + zero biases */
  float forget_bias; /* LSTM: added to the forget gate's bias (0: PyTorch's init) */
} mrl_core_config;

MRL_DEF mrl_core_config mrl_core_config_default(void); /* none */
MRL_DEF mrl_core_config mrl_core_config_lstm(int hidden_size);

typedef struct mrl_core {
  mrl_core_kind kind;
  int input_dim, output_dim, state_dim;
  mrl_lstm_layer lstm;
} mrl_core;

MRL_DEF void mrl_core_init(mrl_core *core, mrl_params *p, const char *name, int input_dim,
                           const mrl_core_config *cfg);
MRL_DEF int mrl_core_state_dim(const mrl_core *core);
/* x [T*B, input_dim], row t*B+b. episode_start: NULL or [T*B] flags (1: the
 * state is zeroed before this step). state_in: the state of environment b at
 * state_in + b*stride (NULL: zeros); state_out, when not NULL, receives the
 * final state likewise (it may alias state_in). Returns y [T*B, output_dim]. */
MRL_DEF mrl_tensor *mrl_core_forward(const mrl_core *core, mrl_graph *g, mrl_tensor *x, int T,
                                     int B, const float *episode_start, const float *state_in,
                                     float *state_out, int stride);

typedef struct mrl_rollout {
  int num_steps, num_envs, obs_dim, action_dim, state_dim;
  float *obs;            /* [T, B, obs_dim] */
  float *actions;        /* [T, B, action_dim] */
  float *log_probs;      /* [T, B] */
  float *values;         /* [T, B] */
  float *rewards;        /* [T, B] */
  float *episode_starts; /* [T, B]: obs[t,b] is the first of an episode */
  float *terminated;     /* [T, B]: step t ended the episode in a terminal state */
  float *truncated;      /* [T, B]: step t ended it by a time limit */
  float *final_values;   /* [T, B]: value of the final observation where truncated */
  float *advantages;     /* [T, B] */
  float *returns;        /* [T, B] */
  float *initial_state;  /* [B, state_dim]: core state before step 0 */
} mrl_rollout;

MRL_DEF mrl_result mrl_rollout_init(mrl_rollout *r, int num_steps, int num_envs, int obs_dim,
                                    int action_dim, int state_dim);
MRL_DEF void mrl_rollout_free(mrl_rollout *r);
/* last_values [B]: value of the observation after the last step (used where
 * step T-1 did not end the episode). */
MRL_DEF void mrl_rollout_compute_gae(mrl_rollout *r, const float *last_values, float gamma,
                                     float gae_lambda);

#ifdef __cplusplus
}
#endif
#endif /* MEMRL_MEM_H */

/* ======================================================================== */
#if (defined(MEMRL_MEM_IMPLEMENTATION) || defined(MEMRL_IMPLEMENTATION)) &&                        \
    !defined(MEMRL_MEM_IMPLEMENTED)
#define MEMRL_MEM_IMPLEMENTED

#ifdef __cplusplus
extern "C" {
#endif

MRL_DEF mrl_core_config mrl_core_config_default(void) {
  mrl_core_config c;
  c.kind = MRL_CORE_NONE;
  c.hidden_size = 0;
  c.init = mrl_init_default();
  c.forget_bias = 0.0f;
  return c;
}

MRL_DEF mrl_core_config mrl_core_config_lstm(int hidden_size) {
  mrl_core_config c = mrl_core_config_default();
  c.kind = MRL_CORE_LSTM;
  c.hidden_size = hidden_size;
  return c;
}

MRL_DEF void mrl_core_init(mrl_core *core, mrl_params *p, const char *name, int input_dim,
                           const mrl_core_config *cfg) {
  memset(core, 0, sizeof *core);
  core->kind = cfg->kind;
  core->input_dim = input_dim;
  switch (cfg->kind) {
  case MRL_CORE_NONE:
    core->output_dim = input_dim;
    core->state_dim = 0;
    break;
  case MRL_CORE_LSTM:
    MRL_ASSERT(cfg->hidden_size > 0);
    mrl_lstm_layer_init(&core->lstm, p, name, input_dim, cfg->hidden_size, cfg->init,
                        cfg->forget_bias);
    core->output_dim = cfg->hidden_size;
    core->state_dim = 2 * cfg->hidden_size;
    break;
  }
}

MRL_DEF int mrl_core_state_dim(const mrl_core *core) {
  return core->state_dim;
}

MRL_DEF mrl_tensor *mrl_core_forward(const mrl_core *core, mrl_graph *g, mrl_tensor *x, int T,
                                     int B, const float *episode_start, const float *state_in,
                                     float *state_out, int stride) {
  if (!x) return NULL;
  MRL_SHAPE_CHECK(x->ndim == 2 && x->shape[0] == T * B && x->shape[1] == core->input_dim,
                  "core_forward", "x must be [T*B, input_dim]", x, NULL);
  switch (core->kind) {
  case MRL_CORE_NONE: return x;
  case MRL_CORE_LSTM: {
    int H = core->output_dim, b, j;
    mrl_tensor *h0 = mrl_tensor_new2(g, B, H, 0), *c0 = mrl_tensor_new2(g, B, H, 0), *y, *hT, *cT;
    if (!h0 || !c0) return NULL;
    for (b = 0; b < B; b++)
      for (j = 0; j < H; j++) {
        h0->data[b * H + j] = state_in ? state_in[(size_t)b * stride + j] : 0.0f;
        c0->data[b * H + j] = state_in ? state_in[(size_t)b * stride + H + j] : 0.0f;
      }
    y = mrl_lstm_sequence(&core->lstm, g, x, T, B, h0, c0, episode_start, &hT, &cT);
    if (y && state_out)
      for (b = 0; b < B; b++)
        for (j = 0; j < H; j++) {
          state_out[(size_t)b * stride + j] = hT->data[b * H + j];
          state_out[(size_t)b * stride + H + j] = cT->data[b * H + j];
        }
    return y;
  }
  }
  return NULL;
}

/* count floats, zeroed (at least one, so a zero-sized field is still valid) */
static float *mrl__floats_zeroed(size_t count) {
  float *p = (float *)MRL_MALLOC(sizeof(float) * (count ? count : 1));
  if (p) memset(p, 0, sizeof(float) * (count ? count : 1));
  return p;
}

MRL_DEF mrl_result mrl_rollout_init(mrl_rollout *r, int num_steps, int num_envs, int obs_dim,
                                    int action_dim, int state_dim) {
  size_t tb = (size_t)num_steps * num_envs;
  memset(r, 0, sizeof *r);
  if (num_steps < 1 || num_envs < 1 || obs_dim < 1 || action_dim < 1 || state_dim < 0)
    return MRL_ERR_INVALID_ARGUMENT;
  r->num_steps = num_steps;
  r->num_envs = num_envs;
  r->obs_dim = obs_dim;
  r->action_dim = action_dim;
  r->state_dim = state_dim;
  r->obs = mrl__floats_zeroed(tb * obs_dim);
  r->actions = mrl__floats_zeroed(tb * action_dim);
  r->log_probs = mrl__floats_zeroed(tb);
  r->values = mrl__floats_zeroed(tb);
  r->rewards = mrl__floats_zeroed(tb);
  r->episode_starts = mrl__floats_zeroed(tb);
  r->terminated = mrl__floats_zeroed(tb);
  r->truncated = mrl__floats_zeroed(tb);
  r->final_values = mrl__floats_zeroed(tb);
  r->advantages = mrl__floats_zeroed(tb);
  r->returns = mrl__floats_zeroed(tb);
  r->initial_state = mrl__floats_zeroed((size_t)num_envs * state_dim);
  if (!r->obs || !r->actions || !r->log_probs || !r->values || !r->rewards || !r->episode_starts ||
      !r->terminated || !r->truncated || !r->final_values || !r->advantages || !r->returns ||
      !r->initial_state) {
    mrl_rollout_free(r);
    return MRL_ERR_OUT_OF_MEMORY;
  }
  return MRL_OK;
}

MRL_DEF void mrl_rollout_free(mrl_rollout *r) {
  MRL_FREE(r->obs);
  MRL_FREE(r->actions);
  MRL_FREE(r->log_probs);
  MRL_FREE(r->values);
  MRL_FREE(r->rewards);
  MRL_FREE(r->episode_starts);
  MRL_FREE(r->terminated);
  MRL_FREE(r->truncated);
  MRL_FREE(r->final_values);
  MRL_FREE(r->advantages);
  MRL_FREE(r->returns);
  MRL_FREE(r->initial_state);
  memset(r, 0, sizeof *r);
}

MRL_DEF void mrl_rollout_compute_gae(mrl_rollout *r, const float *last_values, float gamma,
                                     float gae_lambda) {
  int T = r->num_steps, B = r->num_envs, t, b;
  for (b = 0; b < B; b++) {
    float running = 0.0f;
    for (t = T - 1; t >= 0; t--) {
      size_t i = (size_t)t * B + b;
      int ended = r->terminated[i] != 0.0f || r->truncated[i] != 0.0f;
      float next_value;
      if (r->terminated[i] != 0.0f)
        next_value = 0.0f;
      else if (r->truncated[i] != 0.0f)
        next_value = r->final_values[i];
      else
        next_value = t == T - 1 ? last_values[b] : r->values[i + B];
      /* delta_t = r_t + gamma V(s_{t+1}) - V(s_t); the sum stops at episode ends */
      running = r->rewards[i] + gamma * next_value - r->values[i] +
                (ended ? 0.0f : gamma * gae_lambda * running);
      r->advantages[i] = running;
      r->returns[i] = running + r->values[i];
    }
  }
}

#ifdef __cplusplus
}
#endif
#endif /* MEMRL_MEM_IMPLEMENTATION */

/*
---- memrl licence: the text of LICENSE (tools/run_tests.sh checks every copy) ----
This software is available under two licences; choose whichever you prefer.

------------------------------------------------------------------------------
ALTERNATIVE A - MIT License

Copyright (c) 2026 the memrl authors

Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.

------------------------------------------------------------------------------
ALTERNATIVE B - Public Domain (www.unlicense.org)

This is free and unencumbered software released into the public domain.
Anyone is free to copy, modify, publish, use, compile, sell, or distribute this
software, either in source code form or as a compiled binary, for any purpose,
commercial or non-commercial, and by any means.
---- end of memrl licence ----
*/
