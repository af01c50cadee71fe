/* memrl_envs.h - reinforcement-learning environments, vector env, registry.
 * Part of memrl (single-header C libraries for reinforcement learning with
 * memory). Stands alone: needs only libc and libm. Public domain / MIT, see
 * the end of the file.
 *
 * CONTENTS
 *   WHAT IT IS                            environments, vector env, registry
 *   INDEX OF ENVIRONMENTS                 every id with its observation and actions
 *   HOW TO USE                            the implementation macro and options
 *   QUICK START                           a vector env and a single env
 *   THE INTERFACE                         actions, errors, the time limit, user envs
 *   ENVIRONMENTS                          each environment's rules, in full
 *   VECTOR ENVIRONMENT                    lock-step stepping and same-step auto-reset
 *   WRAPPERS                              mrl_env_wrap_* and "|wrapper" ids
 *   PARAMETERS AND DOMAIN RANDOMISATION   physics constants as parameters
 *   SNAPSHOTS                             every env's state as bytes, for bitwise resume
 *   VERSION HISTORY
 *   LICENCE                               at the end of the file: public domain or MIT
 *   TAGS: each implementation section carries one tag, written >> and the
 *   name; `grep -n '[>]>vecenv' memrl_envs.h` finds that section and nothing else.
 *   The tags in file order:
 *     env cartpole tmaze task_helpers pendulum passive_tmaze memory_chain
 *     noisy_sequence meta_rl tree_mdp sfgrid catch visual_match popgym_common
 *     popgym_repeat popgym_autoencode popgym_count_recall popgym_higher_lower
 *     popgym_concentration popgym_battleship popgym_minesweeper popgym_bandit
 *     registry vecenv snapshot wrappers episode_stats
 *
 * WHAT IT IS
 *
 * Gymnasium-style environments for C and C++: reset(seed) and step(action)
 * returning reward, terminated and truncated separately; a synchronous
 * vector environment with same-step auto-reset; a small registry of
 * reference partially observable tasks; and an interface (a table of
 * function pointers) through which any simulator or game plugs in.
 *
 * INDEX OF ENVIRONMENTS
 *
 * Observations are float vectors; "one-hot k" is k floats with one 1.
 * Actions are discrete (an index in action[0]) or a box of floats. Each
 * family's rules are under ENVIRONMENTS; mrl_env_list enumerates them.
 *
 *   id                                          observation             actions
 *   classic control
 *   CartPole-v1                                 4 floats (full state)   discrete 2
 *       balance a pole on a cart (Gymnasium's physics)
 *   StatelessCartPole-v1                        2 floats [x, theta]     discrete 2
 *       CartPole-v1 with the velocities hidden (POPGym, SB3 NoVel)
 *   VelocityOnlyCartPole-v1                     2 floats                discrete 2
 *       CartPole-v1 with the positions hidden (POPGym)
 *   NoisyStatelessCartPole-v1[-<sigma>]         2 floats + noise        discrete 2
 *       StatelessCartPole-v1 plus N(0, sigma^2) observation noise (POPGym)
 *   Pendulum-v1                                 3 floats                box 1 in [-2, 2]
 *       swing a pendulum up and hold it (Gymnasium's physics)
 *   StatelessPendulum-v1                        2 floats [cos, sin]     box 1 in [-2, 2]
 *       Pendulum-v1 with the angular velocity hidden (POPGym)
 *   NoisyStatelessPendulum-v1[-<sigma>]         2 floats + noise        box 1 in [-2, 2]
 *       StatelessPendulum-v1 plus N(0, sigma^2) observation noise (POPGym)
 *   corridors and memory tasks
 *   TMaze-<L>[-<max_steps>]                     3 bits                  discrete 4
 *       Bakker's T-maze: a cue at the start names the goal arm L cells away
 *   PassiveTMaze-<L>                            2 floats                discrete 4
 *       Ni et al. 2023: the cue at t = 0, L corridor steps, then choose an arm
 *   MemoryChain-<memory_length>[-<num_bits>]    num_bits + 2 floats     discrete 2
 *       bsuite memory chain: recall the queried context bit at the end
 *   NoisySequence-<T>[-<N>]                     2 floats                discrete 2
 *       classify the sign of a noisy signal seen for N steps, answer at step T
 *   POPGym (Morad et al. 2023), each <Easy|Medium|Hard>-v0
 *   RepeatFirst                                 one-hot 4 (suit)        discrete 4
 *       name the suit of the first card of the stream
 *   RepeatPrevious                              one-hot 4 (suit)        discrete 4
 *       name the suit of the card k = 4/32/64 back
 *   Autoencode                                  2 flags + one-hot 4     discrete 4
 *       watch 1/2/3 decks of suits, then recite them in reverse
 *   CountRecall                                 two one-hots            discrete counts
 *       how often has the queried colour/suit/rank been dealt so far
 *   HigherLower                                 one-hot 13 (rank)       discrete 2
 *       will the next card rank higher or lower
 *   Concentration                               one-hot per card        discrete n cards
 *       flip face-down cards two at a time to find the pairs
 *   Battleship                                  2 floats [miss, hit]    discrete b*b
 *       sink 4 ships on an unseen 8/10/12 board from hit/miss replies
 *   MineSweeper                                 one-hot 3/7/10          discrete cells
 *       clear a hidden 4x4/6x6/8x8 minefield from neighbour counts
 *   MultiarmedBandit                            2 floats (payout)       discrete 10/20/30
 *       Bernoulli arms, the payout the only observation
 *   meta-RL, episodic control, successor features, pixels
 *   MetaBandit[-<arms>[-<horizon>]]             arms + 2 floats         discrete arms
 *       Bernoulli bandit with hidden p per arm (task hook); RL^2's inputs
 *   Semicircle[-<horizon>]                      2 floats (position)     box 2 in [-0.1, 0.1]
 *       point mass, sparse reward near a hidden goal on a semicircle (task hook)
 *   NumPad[-<n>[-<len>]]                        n*n floats (lights)     discrete n*n
 *       press a hidden sequence of tiles in order (task hook)
 *   TreeMDP-<B>-<D>[-<world>]                   D floats (the path)     discrete B
 *       episodic control: a depth-D tree, fixed hidden leaf rewards
 *   SFGrid                                      14 floats               discrete 4
 *       four rooms with objects; reward phi . w, w settable (successor features)
 *   Catch[-<rows>-<cols>]                       rows*cols pixels        discrete 3
 *       bsuite Catch: move the paddle under the falling ball (fully observed)
 *   PassiveVisualMatch[-<distractor_steps>]     6 planes of 7x11        discrete 4
 *       see a colour, eat apples, then touch the same colour (Hung et al. 2019)
 *   PassiveVisualMatchCrop[-<distractor_steps>] 6 planes of 5x5         discrete 4
 *       PassiveVisualMatch seen through the 5x5 window around the agent
 *
 * HOW TO USE
 *
 * In exactly one C or C++ file write
 *
 *     #define MEMRL_ENVS_IMPLEMENTATION   (or MEMRL_IMPLEMENTATION for all
 *     #include "memrl_envs.h"              memrl headers at once)
 *
 * and include the header without the macro everywhere else. Options, to be
 * defined before the include:
 *
 *     MRL_STATIC        make every function static (private to one file)
 *     MRL_MALLOC(sz), MRL_REALLOC(p, sz), MRL_FREE(p)
 *                       replace the allocator (all three or none)
 *     MRL_ASSERT(c)     replace assert()
 *     MRL_VECENV_OMP_MIN_ENVS  with -fopenmp, vectors of at least this many
 *                       environments (default 64) step them in parallel
 *
 * Memory is allocated only in mrl_env_make / mrl_env_create /
 * mrl_env_wrap_* / mrl_vecenv_init* (and, for a moment, in
 * mrl_vecenv_restore). Reset and step never allocate. There
 * is no global state: one object belongs to one thread at a time.
 *
 * QUICK START
 *
 *     mrl_vecenv v;
 *     mrl_episode_stats st;
 *     float actions[8];
 *     int t, i;
 *     if (mrl_vecenv_init(&v, "TMaze-10", 8, 42) != MRL_OK) return 1;
 *     mrl_episode_stats_init(&st);
 *     mrl_vecenv_reset(&v);
 *     for (t = 0; t < 10000; t++) {
 *       for (i = 0; i < v.num_envs; i++)
 *         actions[i] = (float)my_policy(v.obs + i * v.obs_dim);
 *       mrl_vecenv_step(&v, actions);   (auto-resets finished envs)
 *       mrl_episode_stats_add_vecenv(&st, &v);
 *     }
 *     printf("return %.2f success %.2f\n", mrl_episode_stats_mean_return(&st),
 *            mrl_episode_stats_success_rate(&st));
 *     mrl_vecenv_free(&v);
 *
 * A single environment:
 *
 *     mrl_env *env = mrl_env_make("CartPole-v1");
 *     float obs[4], a = 1.0f, r;
 *     int term, trunc;
 *     mrl_env_reset(env, 7, obs);
 *     do mrl_env_step(env, &a, obs, &r, &term, &trunc); while (!term && !trunc);
 *     mrl_env_free(env);
 *
 * THE INTERFACE
 *
 * - Actions are float arrays. A discrete action is its index in action[0]
 *   and must be finite, integral and in [0, n): otherwise step returns
 *   MRL_ERR_INVALID_ACTION and nothing changes. A box action must be
 *   finite (else MRL_ERR_INVALID_ACTION, nothing changes); components
 *   outside [action_low, action_high] are clipped to the bounds.
 * - step before the first reset, or after an episode ended (terminated or
 *   truncated) without a new reset, returns MRL_ERR_NOT_RESET and changes
 *   nothing.
 * - The time limit (Gymnasium's TimeLimit): when the step count of the
 *   episode reaches max_episode_steps and the step did not terminate,
 *   truncated is 1. Unlike Gymnasium's wrapper, terminated and truncated are
 *   never both 1 because of the limit: a terminal step is terminal.
 * - obs, reward, terminated and truncated may be NULL when not wanted.
 * - A user environment fills an mrl_env_vtable and calls mrl_env_create; the
 *   built-in ones go through the same wrapper, which does the action checks,
 *   the reset/done bookkeeping, the time limit and the episode statistics.
 *   If the user's own reset or step callback returns an error, that error
 *   is passed on and the environment needs a new reset. A user environment
 *   with physics can list its constants (num_params, param_name,
 *   get_param, set_param) and so be domain-randomised like CartPole.
 *
 * ENVIRONMENTS
 *
 * CartPole-v1
 *   Gymnasium's CartPole (gymnasium/envs/classic_control/cartpole.py),
 *   same constants, same equations, same order of floating-point
 *   operations, state kept in double as Gymnasium keeps it in float64.
 *   gravity 9.8, masscart 1.0, masspole 0.1, length 0.5 (half the pole),
 *   force_mag 10.0, tau 0.02 s, explicit Euler integration:
 *     temp     = (force + polemass_length * theta_dot^2 * sin) / total_mass
 *     thetaacc = (gravity * sin - cos * temp)
 *                / (length * (4/3 - masspole * cos^2 / total_mass))
 *     xacc     = temp - polemass_length * thetaacc * cos / total_mass
 *     x += tau * x_dot; x_dot += tau * xacc;
 *     theta += tau * theta_dot; theta_dot += tau * thetaacc
 *   with total_mass = masspole + masscart, polemass_length = masspole *
 *   length. Actions: 2 (0 push left, force -10; 1 push right, force +10).
 *   Observation (4 floats): [x, x_dot, theta, theta_dot], the double state
 *   rounded to float. Reward 1.0 on every step, the terminating one
 *   included. Terminated when x < -2.4 or x > 2.4 or |theta| > 12 * 2 * pi
 *   / 360 (12 degrees). Truncated at 500 steps. Reset: the four state
 *   variables, in the order above, are -0.05 + 0.1 * u with u =
 *   (double)mrl_rng_uniform(&r) and r = mrl_rng_make(seed), so uniform in
 *   [-0.05, 0.05) like Gymnasium (whose numpy generator gives other
 *   numbers for the same seed). Success: none (-1). The physics constants
 *   are parameters (see PARAMETERS AND DOMAIN RANDOMISATION).
 *   Render: "[<track>] x=<x> theta=<deg> deg\n": a 40-character track of
 *   '-' over [-2.4, 2.4] with the cart drawn as its pole, | upright (|theta|
 *   <= 0.05 rad), / leaning right, \ leaning left.
 *
 * StatelessCartPole-v1
 *   CartPole-v1 with the velocities hidden: observation [x, theta] (2
 *   floats) of exactly the same trajectory (POPGym's position-only
 *   CartPole, SB3's CartPoleNoVel). Everything else as CartPole-v1, render
 *   included.
 *
 * Pendulum-v1
 *   Gymnasium's Pendulum (gymnasium/envs/classic_control/pendulum.py), same
 *   constants and equations, state in double: g = 10.0, m = 1, l = 1, dt =
 *   0.05, max_speed 8, max_torque 2 (parameters, see PARAMETERS AND
 *   DOMAIN RANDOMISATION). One box action, the torque u, clipped to
 *   [-2, 2] (the wrapper clips, as Gymnasium's np.clip does). Step:
 *     costs    = angle_normalize(th)^2 + 0.1 * thdot^2 + 0.001 * u^2
 *     newthdot = thdot + (3 g / (2 l) * sin(th) + 3 / (m l^2) * u) * dt,
 *                then clipped to [-8, 8]
 *     th      += newthdot * dt;  thdot = newthdot;  reward = -costs
 *   with angle_normalize(x) = ((x + pi) mod 2 pi) - pi (floored modulo,
 *   as Python's %; th itself is never wrapped). Observation (3 floats):
 *   [cos th, sin th, thdot] rounded to float. Never terminates; truncated
 *   at 200 steps. Reset: th = -pi + 2 pi u1, thdot = -1 + 2 u2 (uniform in
 *   [-pi, pi) x [-1, 1) as Gymnasium), u = (double)mrl_rng_uniform(&r) in
 *   that order, r = mrl_rng_make(seed). Deviation: Gymnasium's clipped
 *   torque is a float32 scalar, so under NumPy 2's promotion rules (NEP 50)
 *   0.001 * u^2 and 3 / (m l^2) * u are float32 products (float64 under
 *   NumPy 1); we compute in double, so reward and state may differ from
 *   Gymnasium's in the last bits (float32 rounding of those two terms).
 *   Render: "pole <c> theta=<deg> deg thetadot=<v> torque=<u>\n" with c
 *   the normalised angle on an 8-point dial (^ upright, v hanging).
 *
 * StatelessPendulum-v1, NoisyStatelessPendulum-v1[-<sigma>]
 *   Pendulum-v1 with the angular velocity hidden: observation [cos th, sin
 *   th] (POPGym's PositionOnlyPendulum). The noisy one adds independent
 *   N(0, sigma^2) noise to both components of every observation (the reset
 *   one included) and clips them to [-1, 1], as POPGym's
 *   NoisyPositionOnlyPendulum. sigma is a decimal "<digits>[.<digits>]" in
 *   [0, 10], default 0.1 (POPGym Easy; Medium 0.2, Hard 0.3), e.g.
 *   NoisyStatelessPendulum-v1-0.3. The noise comes from its own generator
 *   (mrl_rng_seed(&n, seed, 0x6e6f697365)), so the dynamics, rewards and
 *   reset state are those of Pendulum-v1 with the same seed. Deviation
 *   from POPGym: its variants rescale the reward to [-1/T, 1/T] per step,
 *   with T = 200, 150, 100 steps for PositionOnlyPendulum Easy, Medium,
 *   Hard and T = 200 for every NoisyPositionOnlyPendulum (its levels differ
 *   in sigma only); we keep Gymnasium's reward and 200-step limit (rescale
 *   the reward yourself if you compare with POPGym scores).
 *   Render: as Pendulum-v1 (the true state).
 *
 * VelocityOnlyCartPole-v1, NoisyStatelessCartPole-v1[-<sigma>]
 *   CartPole-v1 (same dynamics, rewards, ends and 500-step limit) seen
 *   through [x_dot, theta_dot] (POPGym's VelocityOnlyCartPole), or through
 *   [x, theta] plus independent N(0, sigma^2) noise clipped to POPGym's
 *   observation box [+-4.8, +-0.4189] (2 x the thresholds; POPGym's
 *   NoisyPositionOnlyCartPole), sigma as for the pendulum (default 0.1).
 *   NoisyStatelessCartPole-v1-0 equals StatelessCartPole-v1. Deviations
 *   from POPGym: POPGym's VelocityOnlyCartPole returns the positions at
 *   reset (a bug); we return the velocities at reset too. POPGym rescales
 *   the reward to 1/T per step, with T = 200, 400, 600 steps for the
 *   PositionOnly and VelocityOnly Easy, Medium, Hard and T = 200 for every
 *   NoisyPositionOnlyCartPole (its levels differ in sigma only); we keep
 *   CartPole-v1's reward 1 and 500-step limit.
 *   Render: as CartPole-v1 (the true state).
 *
 * TMaze-<L>, TMaze-<L>-<max_steps>
 *   The long-term-dependency T-maze of B. Bakker, "Reinforcement Learning
 *   with Long Short-Term Memory", NIPS 14 (2001), section 4.1. L is an
 *   integer in [1, 100000] (decimal digits only); max_steps an integer in
 *   [0, 1000000000], 0 meaning no time limit.
 *   - Layout: the start S at x = 0, corridor cells x = 1 .. L-1, the
 *     T-junction at x = L (L steps east of the start), and two arms, North
 *     and South of the junction. The goal is in one arm, drawn uniformly
 *     (mrl_rng_below(&r, 2) with r = mrl_rng_make(seed); 0 North, 1 South)
 *     at every reset.
 *   - Actions: 4 (0 North, 1 East, 2 South, 3 West).
 *   - Observation: 3 bits. At the start the cue ("road sign"): 0,1,1 when
 *     the goal is North, 1,1,0 when it is South. In the corridor 1,0,1. At
 *     the junction 0,1,0. The observation returned with the terminal step
 *     (in an arm) is 0,0,0 (the paper does not define one; our choice).
 *   - Rewards: moving North or South from the junction enters that arm and
 *     ends the episode (terminated): +4 for the goal arm, -0.1 for the
 *     other. Any action that leaves the position unchanged (bumping a
 *     wall: North or South anywhere in the corridor or at the start, West
 *     at the start, East at the junction) gives -0.1 ("a reward of -.1 when
 *     it stands still"). Every other move gives 0.
 *   - Success (mrl_env_episode_success): 1 when the episode ended in the
 *     goal arm, else 0 (wrong arm or truncated).
 *   - Time limit: the paper ends an episode only in an arm; we found no
 *     per-episode step limit in it. Our default, TMaze-<L>, truncates after 10 * (L + 1)
 *     steps (our choice: ten times the shortest path); TMaze-<L>-<m> sets
 *     it to m.
 *   The optimal return is 4 (L + 1 steps); it needs the cue remembered for
 *   L steps. The paper gives the start observations only as "011 or 110";
 *   which one means North is the common reading of its implementations.
 *   Render: three rows of L + 1 characters (North arm, corridor, South
 *   arm): A agent, else at x = 0 the cue (^ goal North, v goal South),
 *   . corridor, G goal arm, o other arm.
 *
 * PassiveTMaze-<L>
 *   The passive T-maze of T. Ni, M. Ma, B. Eysenbach, P.-L. Bacon, "When
 *   do transformers shine in RL? Decoupling memory from credit
 *   assignment", NeurIPS 2023 (their TMazeClassicPassive with penalty
 *   -1/L, distract_reward 0, github.com/twni2016/Memory-RL). L is an
 *   integer in [1, 100000].
 *   - Layout: corridor cells (x, 0) for x = 0 .. L, the junction at x = L,
 *     arms (L, +1) and (L, -1). Start (0, 0). goal_y = +1 or -1, drawn
 *     uniformly at reset (mrl_rng_below(&r, 2) with r = mrl_rng_make(seed):
 *     1 gives +1).
 *   - Actions: 4, moves (dx, dy): 0 (+1, 0), 1 (0, +1), 2 (-1, 0), 3
 *     (0, -1); a move into a non-cell leaves the agent where it is.
 *   - Observation: 2 floats. At the reset only: [0, goal_y]. After that
 *     [0, 0] anywhere with x < L (the start included), [1, y] at x = L.
 *   - Episode: exactly L + 1 steps, the last one terminated (a finite
 *     horizon, as in the paper; no truncation). Reward on steps t = 1 .. L:
 *     -1/L when x < t after the move (behind the ideal path), else 0. On
 *     step L + 1: 1 when y = goal_y after the move, else 0 (no penalty).
 *   - Success: 1 when the episode ended in the goal arm.
 *   The optimal return is 1: L moves east, then into the goal arm. The
 *   cue must be remembered for L steps while the credit assignment stays
 *   short (the penalty teaches walking east).
 *   Render: three rows of L + 1 characters (arm y = +1, corridor, arm
 *   y = -1): S start, . corridor, G goal arm, o other arm, A agent.
 *
 * MemoryChain-<memory_length>[-<num_bits>]
 *   bsuite's memory chain (I. Osband et al., "Behaviour Suite for
 *   Reinforcement Learning", ICLR 2020; bsuite/environments/
 *   memory_chain.py). memory_length in [1, 100000], num_bits in [1, 1000]
 *   (default 1). bsuite's memory_len experiment is MemoryChain-<n>, n in
 *   1..10, 12, 14, 17, 20, 25, 30..100 by 10; memory_size is
 *   MemoryChain-2-<bits>, bits in 1..10, 12, 14, 17, 20, 25, 30, 40.
 *   - Reset: context bit i = mrl_rng_below(&r, 2) for i = 0 .. num_bits-1,
 *     then query = mrl_rng_below(&r, num_bits), r = mrl_rng_make(seed).
 *   - Observation at timestep k (num_bits + 2 floats, bsuite's layout):
 *     [1 - k / memory_length, query if k = memory_length - 1 else 0,
 *     2 context - 1 (each +-1) if k = 0 else 0 ...].
 *   - Actions 2. As in bsuite's code, reset returns the observation of
 *     k = 0 and each step returns the observation of the timestep k
 *     before its increment (so the context is seen at reset and after the
 *     first step). Steps 1 .. memory_length give reward 0; step
 *     memory_length + 1 is terminal with +1 when action = context[query],
 *     else -1. The decision is taken after seeing the query.
 *   - Success: 1 for a correct answer. The score rule is
 *     mrl_memory_chain_score (bsuite's memory_len/analysis.py).
 *   Render: "t=<steps taken>/<memory_length+1> query=<q> context=<+ or -
 *   per bit>\n".
 *
 * NoisySequence-<T>[-<N>]
 *   Noisy sequence classification with the signal and the noise on one
 *   channel (the latch task of Y. Bengio, P. Simard, P. Frasconi 1994
 *   and S. Hochreiter, J. Schmidhuber, "Long short-term memory", Neural
 *   Computation 1997, experiment 3b, as used with recurrent policy
 *   gradients), as an RL task. T in [2, 1000000] observations, N in
 *   [1, T - 1] signal steps (default 3, as in experiment 3).
 *   - Reset: r = mrl_rng_make(seed); class c = +1 if mrl_rng_below(&r, 2)
 *     else -1; the noise comes from r after that.
 *   - Observation k (k = 0 .. T-1; reset gives k = 0, step j gives k = j):
 *     [x_k, q_k] with x_k = c + n_k for k < N and x_k = n_k after, n_k ~
 *     N(0, 0.2) (variance 0.2, sigma = sqrt 0.2; sqrt(0.2) *
 *     mrl_rng_normal(&r)); q_k = 1 only on the last observation (the
 *     query), else 0.
 *   - Actions 2: 0 names class -1, 1 names class +1. Actions 1 .. T-1 are
 *     ignored (reward 0). Action T answers: reward +1 if right, -1 if
 *     wrong, terminated, terminal observation [0, 0].
 *   - Success: 1 for a right answer. T = 100 is hard for a plain LSTM.
 *   Render: "t=<k+1>/<T> class=<+1|-1> <signal + noise | noise | query:
 *   name the class>\n" for the current observation k.
 *
 * ---- meta-RL as task inference ----
 * J. Humplik, A. Galashov, L. Hasenclever, P. A. Ortega, Y. W. Teh, N.
 * Heess, "Meta reinforcement learning as task inference", arXiv 1905.06424
 * (2019). One episode is one task (a meta-RL trial): the task is drawn at
 * reset from the seed and stays hidden from the observation; mrl_env_task
 * returns it (the privileged information a belief network trains on). The
 * episodes end by the time limit (truncated). Our versions are small and
 * discrete where the paper's are MuJoCo bodies; the rules below are ours
 * where the paper gives none.
 *
 * MetaBandit[-<arms>[-<horizon>]]
 *   Bernoulli bandits: arms in [2, 10000] (default 20), horizon in [1,
 *   1e8] pulls (default 100). Reset: r = mrl_rng_make(seed); p_i =
 *   mrl_rng_uniform(&r) for each arm (uniform in [0, 1): the Bernoulli
 *   bandits of RL^2, Duan et al. 2016). Action: the arm. Reward 1 with probability
 *   p_arm (mrl_rng_uniform(&r) < p_arm, r continuing), else 0.
 *   Observation (arms + 2 floats): [one-hot of the last arm pulled, last
 *   reward, t / horizon], all zero at reset: the previous action and
 *   reward that RL^2 feeds its policy (beside the observation and a done
 *   flag, neither of which a bandit has), so the task can be inferred from
 *   the history, plus the elapsed fraction of the trial (our addition).
 *   Task: the arms' p (arms floats).
 *   Render: "t=<t>/<horizon> last arm=<a> reward=<r> best arm=<i>
 *   (p=<p_i>)\n".
 *
 * Semicircle[-<horizon>]
 *   A point mass in the plane (the semicircle task of the paper, after
 *   Gupta et al. 2018 and Rakelly et al. 2019). Start (0, 0). Reset: r =
 *   mrl_rng_make(seed), phi = pi * mrl_rng_uniform(&r), goal (cos phi,
 *   sin phi) on the upper unit semicircle. Action: a box of 2 floats in
 *   [-0.1, 0.1] (clipped), the displacement: position += action.
 *   Observation: the position (2 floats). Reward 1 - d on every step that
 *   ends at distance d <= 0.2 from the goal (d^2 <= 0.04 decides), else 0
 *   (sparse). Horizon in [1, 1e8] steps. Task: the goal (2 floats). Start,
 *   step bound, goals drawn uniformly on the unit semicircle, zone 0.2,
 *   reward and the default horizon 100 are those of variBAD's
 *   SparsePointEnv (Zintgraf et al. 2020), which takes actions in [-1, 1]
 *   and moves by 0.1 x action: multiply our action by 10 to compare
 *   policies. PEARL's sparse point robot (Rakelly et al. 2019), its
 *   origin, differs: goals from a fixed set of angles (linspace(0, pi,
 *   n_tasks)), unclipped actions, the dense reward -d returned by step
 *   (the sparse one in info) and 20-step episodes.
 *   Render: 11 rows of 21 cells over [-1.25, 1.25] x [-0.25, 1.25]: .
 *   empty, G goal, A agent.
 *
 * NumPad[-<n>[-<len>]]
 *   A discrete NumPad: an n x n pad of tiles (n in [2, 5], default 3),
 *   a hidden sequence of len distinct tiles (len in [1, n*n], default 3;
 *   the first len entries of a Fisher-Yates shuffle with mrl_rng_below,
 *   r = mrl_rng_make(seed)). Actions n*n: press tile a (row-major). The
 *   paper's agent walks onto the tiles of a physical pad; here a press is
 *   one action. Rules: pressing the next tile of the sequence lights it
 *   and gives +1; after the last one the lights go off and the same
 *   sequence can be pressed again; pressing a lit tile changes nothing
 *   (reward 0); pressing any other tile turns every light off (reward 0)
 *   and the sequence restarts from its first tile. Observation: the
 *   lights (n*n floats, 1 lit). 100 steps. Task: the sequence (len floats,
 *   tile indices).
 *   Render: n rows of n tiles (* lit, o dark), then "pressed <k>/<len>,
 *   completed <sequences done>\n".
 *
 * ---- episodic control, successor features ----
 *
 * TreeMDP-<B>-<D>[-<world>]
 *   A deterministic tree MDP for episodic control (C. Blundell et al.,
 *   "Model-Free Episodic Control", arXiv 1606.04460, 2016, after the
 *   tree-structured tasks of Lengyel and Dayan 2008 where episodic control
 *   beats slower learners). Branching B in [2, 64], depth D in [1, 62],
 *   B^D <= 2^62 leaves; world in [0, 1e9] (default 0) fixes the leaf
 *   rewards. Every episode starts at the root of the same tree (the reset
 *   seed is unused). Actions B: the child to enter. Observation (D floats):
 *   entry i is (a_i + 1) / B for the action a_i taken at depth i, 0 for
 *   the levels not reached yet, so every node has its own observation.
 *   Reward 0 inside; the step that reaches depth D is terminal with the
 *   leaf's reward R = (mrl_vecenv_episode_seed(world, 0, leaf) >> 40) *
 *   2^-24 in [0, 1), leaf = the actions read as a base-B number (first
 *   action most significant). Our construction: the paper gives no exact
 *   tree; one good leaf among B^D rewards remembering a single lucky
 *   episode, which is what episodic control does. No time limit.
 *   Render: "depth <d>/<D> path <a_0> <a_1> ...\n" ("(root)" for an empty
 *   path), ending in " leaf reward <R>" at a leaf.
 *
 * SFGrid
 *   A gridworld for successor features and generalised policy improvement
 *   (A. Barreto et al., "Successor Features for Transfer in Reinforcement
 *   Learning", NeurIPS 2017: four rooms, objects of three types, reward
 *   phi . w). Our discrete, fixed layout (11 x 11, '#' wall, S start, G
 *   goal, a/b/c objects, one of each type per room):
 *       ###########   #a..#b...c#   #...#.....#   #.b......a#
 *       #..c#.....#   ##.###.####   #b..#..c..#   #.......a.#
 *       #.a.#....G#   #S.c#b....#   ###########   (rows 0 .. 10)
 *   Actions 4: 0 north, 1 east, 2 south, 3 west; walls block. Entering a
 *   cell with an object picks it up (it is gone until the next reset).
 *   phi (4 floats) of a transition: [a picked, b picked, c picked, goal
 *   reached]; reward = phi . w. Reaching G terminates (success 1).
 *   Observation (14 floats): [row / 10, col / 10, present flag of each of
 *   the 12 objects in row-major map order]. 200 steps. Default w = (1, -1,
 *   0, 1); mrl_sfgrid_set_task changes w at run time (mrl_env_task reads
 *   it back), mrl_sfgrid_features reads phi of the last transition. The
 *   paper's version is continuous with objects that reappear; ours is the
 *   tabular analogue. The reset seed is unused (one fixed world).
 *   Render: the 11 map rows with A agent, the objects still present, #,
 *   G and . for floor.
 *
 * ---- pixels ----
 *
 * Catch[-<rows>-<cols>]
 *   bsuite's Catch (bsuite/environments/catch.py), default 10 rows x 5
 *   columns (rows in [2, 1000], cols in [1, 1000], both or neither). Reset:
 *   ball at row 0, column mrl_rng_below(&r, cols) (r = mrl_rng_make(seed));
 *   paddle at row rows-1, column cols/2. Actions 3: 0 left, 1 stay, 2
 *   right (bsuite's (-1, 0, 1)); the paddle is clipped to the board. Each
 *   step moves the paddle, then the ball one row down; when the ball
 *   reaches the paddle's row the step is terminal with +1 if the paddle is
 *   under it, else -1 (rows - 1 steps an episode). Observation: the board,
 *   rows x cols floats row-major, 1 at the ball and at the paddle, else 0.
 *   Success: caught. A fully observable pixel baseline.
 *   Render: rows of cols characters: . empty, o ball, = paddle, * ball on
 *   the paddle's row.
 *
 * PassiveVisualMatch[-<distractor_steps>]
 *   Passive Visual Match (C.-C. Hung et al., "Optimizing agent behavior
 *   over long time scales by transporting value", Nature Communications
 *   2019) on the 7 x 11 pycolab boards of the port Ni et al. 2023 use
 *   (github.com/twni2016/Memory-RL, envs/key_to_door: visual_match.py with
 *   its passive explore grid, common.py, objects.py), whose rules this
 *   follows step for step. Observation: 6 binary planes of 7 x 11
 *   ([plane][row][col], 462 floats): walls, agent, apples, colour 0, colour
 *   1, colour 2. Actions 4, pycolab's order: 0 north (up), 1 south (down),
 *   2 west (left), 3 east (right); into a wall: no move. Reset: r =
 *   mrl_rng_make(seed); target = mrl_rng_below(&r, 3); the colour's cell =
 *   mrl_rng_below(&r, 8); apples are drawn from r when phase 2 starts. A
 *   phase of n steps ends on its n-th step, which returns the first frame
 *   of the next phase (pycolab's Story).
 *   - Phase 1 (15 steps): the agent at (2, 5) in a box of its 8
 *     neighbours: one of them (row-major, centre left out) shows the target
 *     colour, the other 7 are walls; nothing else on the board. Colour and
 *     walls block, so the agent cannot move: seeing is enough. Reward 0.
 *   - Phase 2 (distractor_steps, in [0, 1000000], default 30 as in
 *     visual_match.py): a room framed by walls, agent at (5, 5), 10 apples
 *     on 10 of the 22 cells (r + c even, rows 1-5, columns 1-9, the start
 *     left out) drawn by a partial Fisher-Yates shuffle (cell i swapped with
 *     i + mrl_rng_below(&r, 22 - i), row-major list). Entering an apple's
 *     cell eats it: +1 (the adapters' default apple reward). An apple eaten
 *     on step f of the phase shows again from step f + 21 (the source's
 *     respawn_every = 20 on frames), even under the agent, which eats it on
 *     its next step if it stays (walks into a wall).
 *   - Phase 3 (15 steps): the reward room (rows "###########",
 *     "#         #" x 3, "####   ####", "   #   #   ", "   #####   "),
 *     agent at (5, 5), colours 0, 1, 2 at (1, 2), (1, 5), (1, 8). Entering
 *     a colour's cell gives +10 if it is the target (the source's
 *     final_reward), else 0, and all three vanish; the phase runs its 15
 *     steps either way, and its last step is terminal (15 + distractor_steps
 *     + 15 steps an episode).
 *   Success: the target colour entered. Differences from the source: the
 *   observation is the whole board as planes, where the source shows a
 *   5 x 5 RGB window around the agent (see PassiveVisualMatchCrop); the
 *   source maps the three colours to the doors by a
 *   shuffle drawn once per environment, here colour k is door k (the same
 *   task up to naming the colours); the apple reward is fixed at 1 (the
 *   source can draw it from a range); no 3D.
 *   In a vector env a step within a phase rewrites only the agent's move,
 *   the apples eaten or back and the vanishing colours (step_delta).
 *   Render: "phase <p>/3 step <t>/<phase length>\n", then the 7 x 11 board:
 *   # wall, . floor, A agent, @ apple, R G B colours 0 1 2.
 *
 * PassiveVisualMatchCrop[-<distractor_steps>]
 *   PassiveVisualMatch (same rules, seeds and render) seen as the source's
 *   agents see it: the 5 x 5 window centred on the agent (pycolab's
 *   ScrollingCropper with scroll margins 2 keeps it in the centre), cells
 *   beyond the board empty. Observation: the same 6 planes over the window
 *   ([plane][row][col], 150 floats). No step_delta: the window moves with
 *   the agent.
 *
 * ---- POPGym card and game tasks ----
 *
 * From S. Morad et al., "POPGym: Benchmarking Partially Observable
 * Reinforcement Learning", ICLR 2023, with the rules of its reference code
 * (github.com/proroklab/popgym, popgym/envs/<task>.py and popgym/core/deck.py).
 * Ids: <Name><Easy|Medium|Hard>-v0, e.g. RepeatFirstEasy-v0; POPGym's own
 * spelling popgym-RepeatFirstEasy-v0 is accepted too. Common to all:
 *   - Discrete observations are one-hot float vectors; a tuple of discrete
 *     values is the concatenation of their one-hot blocks, in the order
 *     listed. Multi-discrete actions (a board cell) are flattened to one
 *     index, row * width + column.
 *   - Decks: num_decks * 52 cards; card c has suit c % 4 (0 s, 1 d, 2 c, 3
 *     h), rank (c % 52) / 4 (0 ace .. 12 king) and colour c % 2, as POPGym's
 *     Deck lays them out. A reset with seed s shuffles with mrl_rng_make(s)
 *     (Fisher-Yates, mrl_rng_below) and deals in order; POPGym's numpy
 *     generator gives other decks for the same seed, the same distribution.
 *   - Rewards are scaled as POPGym scales them, so that an episode's return
 *     lies in [-1, 1] (Battleship excepted, see there).
 *   - Success: none (-1). MultiarmedBandit exposes its arm probabilities
 *     through mrl_env_task (privileged, never in the observation).
 *   - POPGym marks Battleship, MineSweeper, MultiarmedBandit and
 *     Concentration "obs_requires_prev_action": their observation alone
 *     does not say what was done. Wrap them with
 *     mrl_env_wrap_prev_action_reward (id suffix "|prev_action_reward"), as
 *     POPGym's PreviousAction wrapper does.
 *
 * RepeatFirst<Easy|Medium|Hard>-v0 (1, 8, 16 decks; n = 52 * decks)
 *   Obs: suit of the card just dealt (4). Actions: 4 suits. The first card
 *   comes with reset; every step deals the next one. Reward at every step:
 *   +1/(n-1) when the action is the suit of the FIRST card, else -1/(n-1).
 *   Terminated at step n-1 (the deck is empty), as POPGym's current code
 *   has it (a Gymnasium-era release returned truncated there; the first,
 *   gym-era releases ended with done). Older releases also added an
 *   is-start flag to the observation; the current one has none. Optimal
 *   return 1.
 *   Render (RepeatPrevious too): "card <i>/<n>  seen: ... <the last 8
 *   cards, rank and suit>  answer...: <suit>\n", the suit to name next.
 *
 * RepeatPrevious<Easy|Medium|Hard>-v0 (1, 2, 3 decks; k = 4, 32, 64)
 *   Obs and actions as RepeatFirst. With o_0 the reset observation and o_j
 *   the one after step j, step t (from 1) is scored when t >= k: +1/(n-k)
 *   when the action is the suit in o_{t-k}, else -1/(n-k); steps t < k
 *   give 0. So the answer is the suit shown k-1 observations before the
 *   latest one, as POPGym's code has it (hand[-k]: k = 1 would be the
 *   latest card; its docstring reads k = 0 as the latest, one off, and we
 *   follow the code). Terminated at step n-1, as RepeatFirst. Optimal
 *   return 1. Render: as RepeatFirst.
 *
 * Autoencode<Easy|Medium|Hard>-v0 (1, 2, 3 decks)
 *   Obs (6): [play, watch] mode flags, then the suit (4). Actions: 4 suits.
 *   Watch phase: the reset and the next n-1 steps show the n cards, in
 *   order, with the watch flag (actions ignored, reward 0); the last card
 *   comes with the play flag already set. Play phase: the next n steps must
 *   name the suits in REVERSE order: +1/n when right, else -1/n;
 *   terminated after the n-th answer (2n-1 steps in all). During play the
 *   suit block is all zeros (POPGym shows the constant suit of card 0: no
 *   information either way).
 *   Render: "watch: card <i>/<n> is <card>\n" or "play: <k>/<n> recited,
 *   next answer: suit <s>\n".
 *
 * CountRecall<Easy|Medium|Hard>-v0 (colours of 1 deck, suits of 2 decks,
 *   ranks of 4 decks: d = 2, 4, 13 values, n = 52, 104, 208 cards)
 *   Two decks shuffled independently: a value deck and a query deck. Obs
 *   (2d): the value card just dealt, then the query card just dealt (one
 *   card of each per step, one of each at reset). Actions: n/d + 1 counts
 *   0 .. n/d. Step: +1/(n-1) when the action equals how many value cards
 *   with the value of the current query have been dealt so far (the one in
 *   the current observation included), else -1/(n-1); then the next pair
 *   is dealt. Terminated at step n-1 (value deck empty). POPGym before its
 *   fix (proroklab/popgym issue #40, PR #41) had n/d actions, so the full
 *   count could not be answered; we have the fixed n/d + 1. POPGym's
 *   error_clamp argument is unused by its reward; so here.
 *   Render: "card <i>/<n>: dealt <kind> <v>, query <kind> <q> (answer <c>)
 *   counts: <count of each value>\n".
 *
 * HigherLower<Easy|Medium|Hard>-v0 (1, 2, 3 decks)
 *   Obs: rank of the current card (13). Actions: 0 "the next card ranks
 *   higher", 1 "lower". Step: the next card is dealt and shown; equal
 *   ranks give 0, a right guess +1/n, a wrong one -1/n. Terminated at step
 *   n-1 (deck empty). Card counting beats chance.
 *   Render: "card <i>/<n>: <card>  higher (0) or lower (1)?\n".
 *
 * Concentration<Easy|Medium|Hard>-v0 (Easy: colours of 1 deck, Medium:
 *   colours of 2 decks, Hard: ranks of 1 deck; d = 2, 2, 13 values)
 *   n cards lie face down. Obs (n * (d+1)): per table position a one-hot
 *   of d+1 symbols, the card's value when face up, symbol d when face
 *   down. Actions: n positions. A turn is two flips; the flipped cards show
 *   in the observation of the step that flips them. After the second flip:
 *   equal values at two different positions stay face up, reward 2/n;
 *   otherwise (the same position twice included) both turn face down,
 *   reward -2/L. Flipping a card that is already matched voids the turn:
 *   reward -(cards flipped this turn)/L (POPGym's fix of its PR #1).
 *   Terminated when all cards are face up; truncated after L = ceil(2n -
 *   n/(2n-1)) steps (104 or 208), the expected length of a perfect player.
 *   In a vector env a step rewrites only the (at most 3) positions that
 *   changed (step_delta).
 *   Render: rows of 13 positions: ? face down, the value (rank, or b / r
 *   for black / red) when matched, the card flipped in the open turn in
 *   brackets.
 *
 * Battleship<Easy|Medium|Hard>-v0 (board b = 8, 10, 12)
 *   Ships of 2, 3, 3 and 4 cells, placed one after another by POPGym's
 *   rejection rule: start cell uniform, axis and direction uniform, rejected
 *   when off the board or overlapping (ships may touch). Obs: [miss, hit]
 *   (2); the reset observation is "miss" as in POPGym. Actions: b*b cells.
 *   A shot at an unshot ship cell hits: +1/12; anything else (water, or a
 *   cell shot before) is a miss: -1/(b*b - 12). Terminated at the 12th
 *   hit, truncated after b*b shots. Best return 1; POPGym's scale puts the
 *   worst (all misses) at -b*b/(b*b-12), below -1; we keep its scale.
 *   Render: the board (X hit, o miss, # ship not hit yet, . water; the
 *   last shot in brackets), then "hits <h>/12\n".
 *
 * MineSweeper<Easy|Medium|Hard>-v0 (4x4 with 2 mines, 6x6 with 6, 8x8
 *   with 10; L = cells - mines)
 *   Mines at distinct uniform cells. Obs: one-hot of min(mines+1, 10)
 *   values (3, 7, 10): the number of mines in the 3x3 block around the
 *   clicked cell, the cell itself included (so a mine shows at least 1);
 *   0 at reset. Actions: the cells. A click on a mine: reward -0.5 - 1/L,
 *   terminated. On a cell viewed before: -0.5/(L-2). On a new clear cell:
 *   +1/L, and terminated when it was the last one. Truncated after L steps.
 *   POPGym's check (timestep == L before counting the step) lets an episode
 *   run L+1 steps; we stop at L, the length its reward scale is computed
 *   for, so the worst return is exactly -1.
 *   Render: the board (a viewed cell shows its count, . hidden, * mine;
 *   the last click in brackets), then "clear cells left <k>\n".
 *
 * MultiarmedBandit<Easy|Medium|Hard>-v0 (10, 20, 30 arms; T = 200, 400,
 *   600 steps)
 *   At reset each arm gets a payout probability uniform in [0, 1). Obs:
 *   [no payout, payout] (2), "no payout" at reset. Actions: the arms. Step:
 *   the pulled arm pays with its probability: +1/T, else -1/T. Truncated
 *   after T steps. mrl_env_task: the arm probabilities (task_dim = arms).
 *   Render: one line per arm, its probability and a bar of # (20 for 1),
 *   > marking the last pull with "paid" or "no".
 *
 * VECTOR ENVIRONMENT
 *
 * mrl_vecenv steps num_envs environments in lock step and keeps every
 * result as a structure of arrays. Gymnasium's "same-step" auto-reset: when
 * an environment's episode ends in a step, it is reset inside that step;
 * obs then holds the first observation of the new episode, final_obs the
 * last observation of the old one, and episode_return / episode_length /
 * episode_success describe the episode that ended. Where the episode goes
 * on those three are 0, 0 and -1 and final_obs is stale: the observation
 * that followed the action is obs where the episode goes on and final_obs
 * where it ended. Episode k (counting from 0) of environment i is reset
 * with the seed mrl_vecenv_episode_seed(seed, i, k), a splitmix64 mix of
 * the three, so a run is reproducible from its seed and episodes get
 * distinct seeds (up to 64-bit collisions). All actions are checked before
 * any environment steps: one invalid action leaves every environment
 * untouched. Built with -fopenmp, a vector of at least
 * MRL_VECENV_OMP_MIN_ENVS (64) environments steps them in parallel with
 * results identical to the serial loop, bit for bit (each environment only
 * touches its own slots). Should a user environment's step fail, the serial
 * loop stops there while the parallel one steps the others and returns the
 * error of the lowest index; either way the vector needs a reset.
 * obs is read-only to the user: an environment with a step_delta hook
 * (Concentration, PassiveVisualMatch) updates its row in place, writing
 * only what changed since the observation it left there. The vector uses
 * the hook only while the row holds that observation as far as it can tell
 * (it was the last buffer the environment wrote to); a user who writes
 * into obs sets obs_updates_in_place to 0 and every step writes the whole
 * row. The prev_action_reward, time_limit and domain_randomization
 * wrappers keep the hook of the environment they wrap; the others rewrite
 * every entry.
 *
 * WRAPPERS
 *
 * Each wrapper is an mrl_env around another (mrl_env_wrap_*), owns it, and
 * forwards render, task (mrl_env_task), success and parameters; the outer mrl_env does
 * its own action checks, step-before-reset refusal, time limit and episode
 * statistics (mrl_env_episode_return / _length / _success), so they hold
 * at every level. mrl_env_inner(env) returns the wrapped environment.
 *   prev_action_reward  [obs, previous action, previous reward]. Discrete:
 *                       one-hot of the action; box: the clipped action the
 *                       environment received. All zeros after a reset
 *                       (POPGym's PreviousAction puts the one-hot of its
 *                       null action 0 there and no reward; zeros keep "no
 *                       action yet" apart from action 0, as RL^2 agents do).
 *                       Battleship and MineSweeper act on a flattened cell,
 *                       so their previous action is a one-hot of b * b
 *                       cells where POPGym's flattened MultiDiscrete gives
 *                       a row one-hot and a column one-hot (2b floats).
 *   frame_stack:k       the k latest observations, oldest first, zeros
 *                       before the episode start.
 *   obs_noise:sigma     Gaussian noise of deviation sigma on every component.
 *   obs_mask:i,j,...    components i, j, ... always zero.
 *   obs_dropout:p       each component zeroed with probability p per step.
 *   reward_scale:c      every reward multiplied by c (finite).
 *   time_limit:m        truncation after m steps (0: none), replacing the
 *                       wrapped environment's own limit; rules that end an
 *                       episode by themselves (a deck runs out) still do.
 *   domain_randomization[:name=lo:hi,...]
 *                       physics parameters drawn per episode (see below).
 * The random wrappers draw from their own generator, seeded from the
 * episode seed at every reset: same seed, same noise.
 *
 * Ids: mrl_env_make (and so mrl_vecenv_init) accepts a registered id
 * followed by wrappers, innermost first, each "|name" or "|name:arg":
 *     "BattleshipEasy-v0|prev_action_reward"
 *     "CartPole-v1|obs_noise:0.1|frame_stack:4|time_limit:200"
 * The wrapped environment's mrl_env_id is the id in this form (numbers
 * printed back with %d or %.9g; domain_randomization bounds with the fewest
 * digits that read back exactly). A malformed part gives NULL.
 *
 * PARAMETERS AND DOMAIN RANDOMISATION
 *
 * Environments with physics expose their constants as named double
 * parameters (vtable hooks num_params / param_name / get_param /
 * set_param; mrl_env_num_params, mrl_env_param_name, mrl_env_param_index,
 * mrl_env_get_param, mrl_env_set_param). Defaults are Gymnasium's, so a
 * fresh environment is exactly the one described above.
 *   CartPole-v1, StatelessCartPole-v1, VelocityOnlyCartPole-v1,
 *   NoisyStatelessCartPole-v1[-<sigma>]: gravity 9.8, masscart 1.0,
 *     masspole 0.1, length 0.5 (half the pole), force_mag 10.0, tau 0.02;
 *     total_mass and polemass_length follow them. The termination
 *     thresholds stay fixed (they define the task, not the physics).
 *   Pendulum-v1, StatelessPendulum-v1, NoisyStatelessPendulum-v1[-<sigma>]:
 *     g 10.0, m 1.0, l 1.0, dt 0.05, max_speed 8.0, max_torque 2.0. The
 *     action space stays [-2, 2] (an agent's action space cannot change
 *     between episodes); the torque is then clipped to [-max_torque,
 *     max_torque] as Gymnasium's step clips it, so max_torque below 2
 *     weakens the motor and above 2 changes nothing.
 * Domains (set_param rejects anything else): masses, lengths, tau, dt and
 * max_speed > 0; gravity, force_mag and max_torque >= 0; always finite. A
 * new value acts from the next step on and stays across resets.
 *
 * mrl_env_wrap_domain_randomization(inner, ranges, count) (id suffix
 * "|domain_randomization:gravity=8:12,length=0.4:0.6") draws each listed
 * parameter uniformly from [lo, hi] at every reset, before resetting
 * inner: parameter i gets lo + (hi - lo) * u_i with u_i in [0, 1) (53 bits)
 * from mrl_rng_make(mix64(mix64(seed ^ "domain") + i)), a stream of its own, so
 * the initial state and the rest of the episode are those of inner with
 * the same seed, the same seed gives the same physics, and a seed keeps
 * its quantile u_i when a range changes. Automatic domain randomisation
 * (Akkaya et al. 2019) moves the bounds during training:
 * mrl_env_domain_randomization_set_range (or the vector version,
 * mrl_vecenv_domain_randomization_set_range) widens, narrows, adds or pins
 * (lo == hi, ADR's boundary evaluation) a range from the next reset on;
 * mrl_env_domain_randomization_get_range reads it. The performance
 * thresholds and step sizes of ADR are the training loop's to choose.
 * The physics of the episode is privileged information: mrl_env_task of
 * the wrapper (and of wrappers around it) is inner's task followed by
 * every parameter's current value, in index order. mrl_env_id keeps the
 * ranges the wrapper was made with. A sketch of ADR with one range:
 *
 *     double lo = 9.8, hi = 9.8;
 *     mrl_vecenv_init(&v, "CartPole-v1|domain_randomization:gravity=9.8:9.8",
 *                     64, seed);
 *     ... train; every K steps, when the mean return is high enough:
 *     lo = lo > 1.0 ? lo - 0.5 : lo;  hi += 0.5;
 *     mrl_vecenv_domain_randomization_set_range(&v, "gravity", lo, hi);
 *
 * SNAPSHOTS
 *
 * A checkpoint that resumes training bit for bit needs the environments
 * too. mrl_env_snapshot(env, buf, size) writes the complete state of an
 * environment as bytes and mrl_env_restore(env, buf, size) puts it back,
 * into the same object or into a freshly made one of the same id, in this
 * process or another; mrl_vecenv_snapshot / mrl_vecenv_restore do the same
 * for a vector. After a restore the run goes on exactly as it would have:
 * the same episodes, generators, positions, counters, statistics and
 * observations.
 *
 *     size_t n = mrl_vecenv_snapshot(&v, NULL, 0);   (0: not supported)
 *     unsigned char *b = malloc(n);
 *     mrl_vecenv_snapshot(&v, b, n);                 ... save b ...
 *     in the new process, a vector of the same id and size (any seed):
 *     mrl_vecenv_init(&v, id, num_envs, 0);
 *     if (mrl_vecenv_restore(&v, b, n) != MRL_OK) ...  (no reset after it)
 *
 * What a snapshot holds:
 *   - An environment: its id (a snapshot restores only into an environment
 *     with the same id, wrappers and their arguments included), the
 *     generic layer's episode state (running, steps, return, success of
 *     the last episode) and the environment's own state through its
 *     snapshot hook. Every built-in environment's state is plain data,
 *     copied as it is: positions, generators, decks, the hidden task, and
 *     also the physics parameters and SFGrid's task vector w, which are
 *     state because they change while a run goes on (domain randomisation
 *     draws the physics every episode; a user may set them): a restore
 *     brings back the values at the snapshot. A wrapper adds its own state
 *     (the generator of obs_noise / obs_dropout, the previous action, the
 *     stacked frames, domain randomisation's ranges, which ADR moves), then
 *     the wrapped environment's snapshot. What the id fixes (TMaze's
 *     length, a noise sigma, an obs mask, a time limit) is the same in both
 *     environments and stays.
 *   - A vector: every environment's snapshot, obs, final_obs, rewards,
 *     terminated, truncated, episode_return, episode_length,
 *     episode_success, seed, episodes_started, total_steps and ready.
 *     obs_updates_in_place is the caller's setting and stays.
 * The bytes start with a head (magic, version, length) and a 64-bit
 * FNV-1a checksum. Truncated or damaged bytes give MRL_ERR_CORRUPT, a
 * snapshot of another environment (another id, other dimensions, another
 * number of environments) MRL_ERR_INVALID_ARGUMENT, and nothing changes:
 * everything is checked before anything is written (a vector whose
 * environment's hook refuses its bytes puts back the environments it
 * restored already). The bytes are native (byte order, struct layout) and
 * hold no pointers: they are for the same build of the library on the same
 * kind of machine, which is what resuming a run needs.
 * After a restore the next step writes the whole observation (a
 * step_delta environment updates its row in place again from the step
 * after), with the same values as without the snapshot.
 * A user environment supports snapshots by filling the snapshot and
 * restore hooks of its table (both or neither); without them
 * mrl_env_snapshot returns 0, as do a wrapper around it and
 * mrl_vecenv_snapshot of a vector holding it, and restores return
 * MRL_ERR_INVALID_ARGUMENT.
 *
 * VERSION HISTORY
 *   0.1.0  first version: CartPole-v1, StatelessCartPole-v1, TMaze-<L>.
 *   next   Pendulum-v1 and the POPGym control POMDPs, PassiveTMaze,
 *          MemoryChain (+ mrl_memory_chain_score), NoisySequence,
 *          MetaBandit, Semicircle, NumPad, TreeMDP, SFGrid (+
 *          mrl_sfgrid_features / mrl_sfgrid_set_task), Catch,
 *          PassiveVisualMatch(Crop), the nine POPGym card and game tasks at
 *          three levels, wrappers and ids with "|wrapper" parts, physics
 *          parameters (mrl_env_*_param) and domain randomisation.
 *
 * LICENCE: public domain or MIT (choose either), the text at the end of
 * this file.
 */
#ifndef MEMRL_ENVS_H
#define MEMRL_ENVS_H

#define MEMRL_ENVS_VERSION_MAJOR 0
#define MEMRL_ENVS_VERSION_MINOR 1
#define MEMRL_ENVS_VERSION_PATCH 0

/* clang-format off */
/* ---- memrl common block -------------------------------------------------
 * The same text stands in memrl_tensor.h and memrl_envs.h so each header can
 * stand alone (tools/run_tests.sh checks that both copies are byte-identical,
 * from this line to the end marker); the guard makes the second copy a no-op. Everything here is
 * either a macro, a type or a static inline function, so including several
 * memrl headers (with or without their implementations, in any number of
 * translation units) never defines a symbol twice. */
#ifndef MRL_COMMON_INCLUDED
#define MRL_COMMON_INCLUDED
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef MRL_DEF
#if defined(MRL_STATIC) && (defined(__GNUC__) || defined(__clang__))
#define MRL_DEF static __attribute__((unused)) /* no warning for functions a program skips */
#elif defined(MRL_STATIC)
#define MRL_DEF static
#else
#define MRL_DEF extern
#endif
#endif

#if defined(MRL_MALLOC) && defined(MRL_FREE) && defined(MRL_REALLOC)
/* all three overridden: fine */
#elif !defined(MRL_MALLOC) && !defined(MRL_FREE) && !defined(MRL_REALLOC)
#define MRL_MALLOC(sz) malloc(sz)
#define MRL_REALLOC(p, sz) realloc(p, sz)
#define MRL_FREE(p) free(p)
#else
#error "memrl: define all of MRL_MALLOC, MRL_REALLOC and MRL_FREE, or none"
#endif

#ifndef MRL_ASSERT
#include <assert.h>
#define MRL_ASSERT(c) assert(c)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Recoverable failures. Programmer errors (wrong shapes) stop instead. */
typedef enum mrl_result {
  MRL_OK = 0,
  MRL_ERR_INVALID_ARGUMENT = -1,
  MRL_ERR_OUT_OF_MEMORY = -2,
  MRL_ERR_IO = -3,
  MRL_ERR_CORRUPT = -4,
  MRL_ERR_UNKNOWN_ENV = -5,
  MRL_ERR_INVALID_ACTION = -6,
  MRL_ERR_NOT_RESET = -7,
  MRL_ERR_NON_FINITE = -8
} mrl_result;

static inline const char *mrl_result_string(mrl_result r) {
  switch (r) {
  case MRL_OK:
    return "ok";
  case MRL_ERR_INVALID_ARGUMENT:
    return "invalid argument";
  case MRL_ERR_OUT_OF_MEMORY:
    return "out of memory";
  case MRL_ERR_IO:
    return "file input/output failed";
  case MRL_ERR_CORRUPT:
    return "corrupt or truncated data";
  case MRL_ERR_UNKNOWN_ENV:
    return "unknown environment id";
  case MRL_ERR_INVALID_ACTION:
    return "invalid action (out of range or not finite)";
  case MRL_ERR_NOT_RESET:
    return "step called before reset (or after the episode ended)";
  case MRL_ERR_NON_FINITE:
    return "a value that must be finite is NaN or infinite";
  }
  return "unknown error";
}

/* PCG32 (O'Neill 2014, pcg-random.org): 64-bit state, 32-bit output.
 * Small, fast, statistically strong; one per object, never global. */
typedef struct mrl_rng {
  uint64_t state;
  uint64_t inc; /* stream selector, always odd */
} mrl_rng;

static inline uint32_t mrl_rng_u32(mrl_rng *r) {
  uint64_t old = r->state;
  uint32_t xorshifted, rot;
  r->state = old * 6364136223846793005ULL + r->inc;
  xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
  rot = (uint32_t)(old >> 59u);
  return (xorshifted >> rot) | (xorshifted << ((32u - rot) & 31u));
}

/* Seeds with the reference PCG32 initialisation sequence. */
static inline void mrl_rng_seed(mrl_rng *r, uint64_t seed, uint64_t stream) {
  r->state = 0u;
  r->inc = (stream << 1u) | 1u;
  (void)mrl_rng_u32(r);
  r->state += seed;
  (void)mrl_rng_u32(r);
}

static inline mrl_rng mrl_rng_make(uint64_t seed) {
  mrl_rng r;
  mrl_rng_seed(&r, seed, 0xda3e39cb94b95bdbULL);
  return r;
}

/* Uniform float in [0, 1) with 24 random bits (every value exact in float). */
static inline float mrl_rng_uniform(mrl_rng *r) {
  return (float)(mrl_rng_u32(r) >> 8) * (1.0f / 16777216.0f);
}

/* Uniform float in [lo, hi). */
static inline float mrl_rng_uniform_range(mrl_rng *r, float lo, float hi) {
  return lo + (hi - lo) * mrl_rng_uniform(r);
}

/* Uniform integer in [0, n), unbiased (Lemire's rejection method). */
static inline uint32_t mrl_rng_below(mrl_rng *r, uint32_t n) {
  uint64_t m = (uint64_t)mrl_rng_u32(r) * n;
  uint32_t low = (uint32_t)m;
  if (low < n) {
    uint32_t threshold = (uint32_t)(-n) % n;
    while (low < threshold) {
      m = (uint64_t)mrl_rng_u32(r) * n;
      low = (uint32_t)m;
    }
  }
  return (uint32_t)(m >> 32);
}

/* Standard normal by Box-Muller (one value per call; simple and exact). */
static inline float mrl_rng_normal(mrl_rng *r) {
  double u1 = ((double)(mrl_rng_u32(r) >> 8) + 1.0) * (1.0 / 16777217.0);
  double u2 = (double)(mrl_rng_u32(r) >> 8) * (1.0 / 16777216.0);
  return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* Index drawn from unnormalised non-negative weights p[0..n). */
static inline int mrl_rng_categorical(mrl_rng *r, const float *p, int n) {
  double total = 0.0, u, acc = 0.0;
  int i;
  for (i = 0; i < n; i++)
    total += p[i];
  u = (double)mrl_rng_uniform(r) * total;
  for (i = 0; i < n; i++) {
    acc += p[i];
    if (u < acc)
      return i;
  }
  for (i = n - 1; i > 0 && p[i] <= 0.0f; i--) {
  }
  return i; /* rounding fell off the end: last index with mass */
}

/* a[0..n) permuted uniformly in place (Fisher-Yates from the top, one
 * mrl_rng_below(i + 1) per i = n-1 .. 1). */
static inline void mrl_rng_shuffle(mrl_rng *r, int *a, int n) {
  int i;
  for (i = n - 1; i > 0; i--) {
    int k = (int)mrl_rng_below(r, (uint32_t)(i + 1)), t = a[i];
    a[i] = a[k];
    a[k] = t;
  }
}

#ifdef __cplusplus
}
#endif
#endif /* MRL_COMMON_INCLUDED */
/* ---- end of memrl common block ------------------------------------------ */
/* clang-format on */

#ifdef __cplusplus
extern "C" {
#endif

/* ---- single environments ------------------------------------------------ */

typedef struct mrl_env mrl_env;

/* Makes a built-in environment (any id of a family in mrl_env_list, e.g.
 * "CartPole-v1", "TMaze-20"), optionally wrapped: "<id>|<wrapper>[:<arg>]..."
 * such as "BattleshipEasy-v0|prev_action_reward|frame_stack:4" (see
 * WRAPPERS at the top). NULL for an unknown or malformed id (or NULL), or
 * when out of memory. */
MRL_DEF mrl_env *mrl_env_make(const char *id);
MRL_DEF void mrl_env_free(mrl_env *env); /* NULL is fine */

/* Every getter answers a NULL env with "nothing": id NULL, dimensions and
 * counts 0, episode_success -1, self NULL (no environment, no crash). */
MRL_DEF const char *mrl_env_id(const mrl_env *env);
MRL_DEF int mrl_env_obs_dim(const mrl_env *env);
MRL_DEF int mrl_env_num_actions(const mrl_env *env);       /* discrete: n, box: 0 */
MRL_DEF int mrl_env_action_dim(const mrl_env *env);        /* box: length, discrete: 1 */
MRL_DEF int mrl_env_max_episode_steps(const mrl_env *env); /* 0: no time limit */
/* Box actions: the bounds, [action_dim] each (-inf/+inf where unbounded);
 * NULL for discrete actions. */
MRL_DEF const float *mrl_env_action_low(const mrl_env *env);
MRL_DEF const float *mrl_env_action_high(const mrl_env *env);

/* Starts an episode. obs: [obs_dim], may be NULL. */
MRL_DEF mrl_result mrl_env_reset(mrl_env *env, uint64_t seed, float *obs);

/* One step. action: [action_dim]. Outputs may be NULL. On an error nothing
 * changes (MRL_ERR_INVALID_ACTION, MRL_ERR_NOT_RESET). */
MRL_DEF mrl_result mrl_env_step(mrl_env *env, const float *action, float *obs, float *reward,
                                int *terminated, int *truncated);

/* -1 where the environment has no notion of success; else 1 or 0 for the
 * last finished episode (0 before any episode finished). */
MRL_DEF int mrl_env_episode_success(const mrl_env *env);

/* Return and length of the running episode, or of the one that just ended
 * until the next reset. */
MRL_DEF float mrl_env_episode_return(const mrl_env *env);
MRL_DEF int mrl_env_episode_length(const mrl_env *env);

/* User environments: fill a table and wrap the object in an mrl_env. */
typedef struct mrl_env_vtable {
  const char *id;                        /* copied; may be NULL ("custom") */
  int obs_dim;                           /* >= 1 */
  int num_actions;                       /* discrete: number of actions (>= 1); box: 0 */
  int action_dim;                        /* discrete: 1; box: >= 1 */
  const float *action_low, *action_high; /* box only, [action_dim] each, copied; may be NULL */
  mrl_result (*reset)(void *self, uint64_t seed, float *obs);
  /* Receives a checked action (discrete: an integral value in [0, n); box:
   * finite and clipped). obs, reward, terminated, truncated never NULL. */
  mrl_result (*step)(void *self, const float *action, float *obs, float *reward, int *terminated,
                     int *truncated);
  void (*destroy)(void *self);              /* may be NULL; called by mrl_env_free */
  int (*episode_success)(const void *self); /* may be NULL -> -1; asked when an episode ends */
  int max_episode_steps; /* 0: none; otherwise the wrapper truncates (Gymnasium TimeLimit) */
  /* may be NULL: writes a text picture of the state (snprintf semantics:
   * returns the length it needed, writes at most size bytes with the NUL) */
  int (*render)(const void *self, char *buf, size_t size);
  /* may be NULL (task_dim 0): privileged task description (meta-RL arm
   * probabilities, hidden goal, ...), never part of the observation */
  int task_dim;
  void (*task)(const void *self, float *out); /* out: [task_dim] */
  /* may be 0 / NULL (num_params 0): named real parameters of the simulation
   * (physics constants), index in [0, num_params); all three hooks or none.
   * set_param gets a finite value and returns MRL_ERR_INVALID_ARGUMENT,
   * changing nothing, when the value is outside the parameter's domain (an
   * interval); a new value acts from the next step on. */
  int num_params;
  const char *(*param_name)(const void *self, int index);
  double (*get_param)(const void *self, int index);
  mrl_result (*set_param)(void *self, int index, double value);
  /* may be NULL: step for a caller whose obs buffer still holds, untouched,
   * the observation this environment wrote there last (by reset or step),
   * so only the entries that change need writing. Vector envs call it; an
   * environment with a large, mostly unchanging observation (a card table,
   * a board) saves most of its step this way. */
  mrl_result (*step_delta)(void *self, const float *action, float *obs, float *reward,
                           int *terminated, int *truncated);
  /* may be NULL (both or neither; NULL: mrl_env_snapshot returns 0): the
   * complete state of self as bytes, for checkpoints that resume a run
   * bitwise (see "Snapshots" at the top). snapshot returns the bytes it
   * needs (> 0) and writes them only when size >= that (buf may be NULL
   * with size 0). restore gets exactly what a snapshot of an environment of
   * the same id wrote and returns MRL_ERR_CORRUPT (or another error) for
   * anything else, changing nothing. Never write pointers. */
  size_t (*snapshot)(const void *self, void *buf, size_t size);
  mrl_result (*restore)(void *self, const void *buf, size_t size);
} mrl_env_vtable;

/* Generic wrapper: validation, step-before-reset, time limit, episode
 * statistics. The table is copied. NULL when the table is malformed (no
 * reset or step, bad dimensions) or out of memory; then destroy is NOT
 * called and self stays the caller's. On success mrl_env_free destroys self. */
MRL_DEF mrl_env *mrl_env_create(const mrl_env_vtable *vt, void *self);

/* The self pointer given to mrl_env_create. */
MRL_DEF void *mrl_env_self(const mrl_env *env);

/* Text picture of the current state for a terminal (snprintf semantics:
 * returns the length needed, writes at most size bytes including the NUL;
 * buf may be NULL when size is 0). -1 when the environment has no renderer. */
MRL_DEF int mrl_env_render(const mrl_env *env, char *buf, size_t size);

/* Privileged task description (meta-RL: what a belief network learns to
 * infer), [mrl_env_task_dim] floats of the current episode. 0 / nothing
 * for environments without one. */
MRL_DEF int mrl_env_task_dim(const mrl_env *env);
MRL_DEF void mrl_env_task(const mrl_env *env, float *out);

/* ---- parameters (physics constants) ------------------------------------- */
/* Environments with physics expose their constants as named parameters
 * (CartPole: gravity, masscart, masspole, length, force_mag, tau;
 * Pendulum: g, m, l, dt, max_speed, max_torque; their POMDP variants the
 * same). The defaults are Gymnasium's. A new value acts from the next step
 * on and stays until changed again (resets keep it). Wrappers forward them
 * to the environment they wrap. */

MRL_DEF int mrl_env_num_params(const mrl_env *env); /* 0 when none (or env NULL) */
/* Name of parameter index; NULL when index is out of range. */
MRL_DEF const char *mrl_env_param_name(const mrl_env *env, int index);
/* Index of the parameter called name; -1 when there is none. */
MRL_DEF int mrl_env_param_index(const mrl_env *env, const char *name);
/* MRL_ERR_INVALID_ARGUMENT for an unknown name (or NULL arguments). */
MRL_DEF mrl_result mrl_env_get_param(const mrl_env *env, const char *name, double *value);
/* MRL_ERR_INVALID_ARGUMENT, nothing changed, for an unknown name or a value
 * that is not finite or outside the parameter's domain (masses, lengths and
 * time steps > 0; gravity, force_mag and max_torque >= 0). */
MRL_DEF mrl_result mrl_env_set_param(mrl_env *env, const char *name, double value);

/* ---- registry ------------------------------------------------------------ */

typedef struct mrl_env_info {
  const char *pattern;              /* e.g. "TMaze-<L>[-<max_steps>]" */
  const char *description;          /* one line */
  mrl_env *(*make)(const char *id); /* NULL when id is not of this family or malformed */
} mrl_env_info;

/* The built-in families of ids, in a fixed order: returns how many there
 * are and, when 0 <= index < that count, writes family `index` to *out. */
MRL_DEF int mrl_env_list(int index, mrl_env_info *out);

/* ---- task helpers -------------------------------------------------------- */

/* bsuite's score of the memory_len / memory_size experiments (see
 * MemoryChain in the Environments section): setting i ran episodes[i]
 * episodes (bsuite: 10000) of which perfect[i] were answered correctly; a
 * setting counts as learned when its regret ratio 2 (episodes - perfect) /
 * episodes is below 0.75 (accuracy above 62.5%). Returns the fraction of
 * learned settings, 0 for no settings. */
MRL_DEF float mrl_memory_chain_score(const long long *episodes, const long long *perfect,
                                     int num_settings);

/* Successor features (SFGrid): writes phi of the last transition (4
 * floats: objects of type a, b, c picked up, goal reached; zeros after a
 * reset) and returns 4; returns 0 and writes nothing when env is not an
 * SFGrid. phi may be NULL to ask the dimension. */
MRL_DEF int mrl_sfgrid_features(const mrl_env *env, float *phi);

/* Sets the task vector w (4 finite floats) of an SFGrid: from the next step
 * on, reward = phi . w. MRL_ERR_INVALID_ARGUMENT when env is not an SFGrid
 * or w is NULL or not finite (nothing changes then). */
MRL_DEF mrl_result mrl_sfgrid_set_task(mrl_env *env, const float *w);

/* ---- vector environment ------------------------------------------------- */

typedef struct mrl_vecenv {
  int num_envs, obs_dim, num_actions, action_dim;
  mrl_env **envs;
  float *obs;       /* [num_envs*obs_dim]: observation to act on (first obs of the new episode
                       after an auto-reset) */
  float *final_obs; /* [num_envs*obs_dim]: last observation of an episode that ended this step
                       (valid where terminated || truncated; elsewhere stale) */
  float *rewards;   /* [num_envs] */
  int *terminated, *truncated; /* [num_envs] */
  float *episode_return;       /* [num_envs]: of the episode that ended this step, else 0 */
  int *episode_length;         /* [num_envs]: of the episode that ended this step, else 0 */
  int *episode_success;       /* [num_envs]: -1/0/1 for the episode that ended this step, else -1 */
  uint64_t seed;              /* base seed of every episode seed */
  uint64_t *episodes_started; /* [num_envs]: episodes begun so far by each env */
  long long total_steps;      /* vector steps taken (times num_envs = env steps) */
  int ready;                  /* 1 after mrl_vecenv_reset, 0 before or after a failed step */
  /* 1 (the default): an environment may update its row of obs in place,
     writing only what changed since its last observation (step_delta), so
     treat obs as read-only. Set 0 if you write into obs. */
  int obs_updates_in_place;
  /* Why the last failed init, reset or step failed, when the vector can
     tell more than its mrl_result (which environment, which step, which
     value); "" otherwise. Set by a failure, kept until the next one. */
  char error[256];
} mrl_vecenv;

/* num_envs copies of a built-in environment. MRL_ERR_UNKNOWN_ENV for a bad
 * id. The vector is not reset yet: call mrl_vecenv_reset. */
MRL_DEF mrl_result mrl_vecenv_init(mrl_vecenv *v, const char *id, int num_envs, uint64_t seed);

/* A vector over the given environments (all must share obs_dim,
 * num_actions and action_dim). envs (the array) stays the caller's; the
 * environments it points to belong to the vector on success, and stay the
 * caller's on failure. The same environment given twice (also as the inner
 * environment of a wrapper in the list) is MRL_ERR_INVALID_ARGUMENT, with
 * v->error naming both indices: the vector would step it twice and free it
 * twice. */
MRL_DEF mrl_result mrl_vecenv_init_envs(mrl_vecenv *v, mrl_env **envs, int num_envs, uint64_t seed);
MRL_DEF void mrl_vecenv_free(mrl_vecenv *v); /* also fine on a zeroed or failed vector */

/* Starts a new episode in every environment (the next episode index of
 * each, so a second reset gives new episodes). An observation that is NaN
 * or infinite is MRL_ERR_NON_FINITE, as in mrl_vecenv_step. */
MRL_DEF mrl_result mrl_vecenv_reset(mrl_vecenv *v);

/* Sets a new base seed and restarts the episode counters: the next
 * mrl_vecenv_reset replays the episodes of a fresh vector with this seed. */
MRL_DEF void mrl_vecenv_reseed(mrl_vecenv *v, uint64_t seed);

/* Built with -fopenmp, mrl_vecenv_step steps the environments of a vector
 * of at least this many in parallel (same results, bit for bit). Define it
 * before the implementation to change it. */
#ifndef MRL_VECENV_OMP_MIN_ENVS
#define MRL_VECENV_OMP_MIN_ENVS 64
#endif

/* One step of every environment, auto-resetting the ones that end.
 * actions: [num_envs*action_dim]. All actions are checked first; an invalid
 * one returns MRL_ERR_INVALID_ACTION with every environment untouched.
 * Every reward and observation an environment returns (by step or by the
 * auto-reset) is checked: a NaN or infinity returns MRL_ERR_NON_FINITE, the
 * vector needs a reset, and v->error says which environment, which step and
 * which value, e.g. "mrl_vecenv_step: environment 3 (Custom-v0) returned a
 * non-finite reward nan at step 500 of its episode (vector step 1234)".
 * One exception keeps step_delta worth having: a step that updates a row in
 * place (step_delta) has its reward checked, while its observation is
 * checked whenever the row is written whole (every reset and plain step);
 * an environment that supplies step_delta vouches for the entries it
 * writes in place. The check costs about 3 ns per environment step plus
 * 0.13 ns per observation float (one core, bench_envs: CartPole 2.7e7 ->
 * 2.45e7 vector steps/s, RepeatPreviousEasy 5.7e7 -> 4.8e7), far below
 * what any agent spends per step. */
MRL_DEF mrl_result mrl_vecenv_step(mrl_vecenv *v, const float *actions);

/* Seed of episode `episode` of environment `env_index` (splitmix64 mix). */
MRL_DEF uint64_t mrl_vecenv_episode_seed(uint64_t seed, int env_index, uint64_t episode);

/* ---- snapshots ----------------------------------------------------------- */
/* The complete state of an environment (or of a vector) as bytes, so that
 * a run saved, loaded into a fresh process and continued reproduces the
 * uninterrupted run bit for bit (see "Snapshots" at the top). The bytes are
 * for the same build of the library on the same kind of machine; they hold
 * no pointers. */

/* Writes env's state to buf when size is at least the snapshot's length and
 * returns that length (snprintf-like: buf may be NULL with size 0 to ask).
 * 0 when env is NULL or does not support snapshots (a user environment
 * without the snapshot / restore hooks, or a wrapper around one). */
MRL_DEF size_t mrl_env_snapshot(const mrl_env *env, void *buf, size_t size);

/* Restores a snapshot of an environment made with the same id (the same
 * wrappers included). MRL_ERR_CORRUPT for truncated or damaged bytes,
 * MRL_ERR_INVALID_ARGUMENT for a snapshot of another environment (or when
 * env does not support snapshots); then nothing changes. The next step
 * writes the whole observation (no step_delta until then). */
MRL_DEF mrl_result mrl_env_restore(mrl_env *env, const void *buf, size_t size);

/* The same for a vector: every environment's snapshot and the vector's own
 * arrays and counters (obs, final_obs, rewards, flags, episode results,
 * seed, episodes_started, total_steps, ready); obs_updates_in_place stays
 * the caller's. 0 when v is NULL or any environment does not support
 * snapshots. */
MRL_DEF size_t mrl_vecenv_snapshot(const mrl_vecenv *v, void *buf, size_t size);
/* Errors as mrl_env_restore, MRL_ERR_OUT_OF_MEMORY when it cannot allocate
 * its temporary copy of the current state (it restores every environment
 * or none). */
MRL_DEF mrl_result mrl_vecenv_restore(mrl_vecenv *v, const void *buf, size_t size);

/* ---- wrappers ------------------------------------------------------------ */
/* Each returns a new mrl_env around inner that owns inner from then on
 * (mrl_env_free frees both), forwards render, task and success, and keeps
 * inner's action space and time limit. On failure (bad argument, out of
 * memory) they return NULL and inner stays the caller's, untouched.
 * mrl_env_make builds them from an id too: "<id>|<wrapper>[:<arg>]|..."
 * (see WRAPPERS at the top). */

/* Observation [inner obs, previous action, previous reward]: the action as
 * a one-hot of num_actions floats (discrete) or the action_dim floats the
 * environment received, clipped (box); zeros (and reward 0) after reset.
 * obs_dim: inner + num_actions (or action_dim) + 1. */
MRL_DEF mrl_env *mrl_env_wrap_prev_action_reward(mrl_env *inner);

/* The k >= 1 most recent inner observations, oldest first; slots before the
 * episode start are zeros. obs_dim: k * inner. */
MRL_DEF mrl_env *mrl_env_wrap_frame_stack(mrl_env *inner, int k);

/* Adds sigma * N(0, 1) to every observation component (sigma >= 0, finite).
 * The noise generator is seeded from the episode seed at every reset. */
MRL_DEF mrl_env *mrl_env_wrap_obs_noise(mrl_env *inner, float sigma);

/* Sets the observation components at indices[0 .. count) to zero (each in
 * [0, obs_dim); repeats are fine). */
MRL_DEF mrl_env *mrl_env_wrap_obs_mask(mrl_env *inner, const int *indices, int count);

/* Sets each observation component to zero with probability p in [0, 1],
 * independently at every step; seeded from the episode seed. */
MRL_DEF mrl_env *mrl_env_wrap_obs_dropout(mrl_env *inner, float p);

/* Multiplies every reward by scale (finite; Gymnasium's TransformReward with
 * r -> scale r): the same task on another reward scale, as PopArt's tests
 * want. Episode returns (mrl_env_episode_return) are then scaled too. */
MRL_DEF mrl_env *mrl_env_wrap_reward_scale(mrl_env *inner, float scale);

/* Replaces inner's time limit: truncated after max_episode_steps steps (0:
 * no limit). An environment that ends by its own rules (a deck runs out)
 * still ends there. */
MRL_DEF mrl_env *mrl_env_wrap_time_limit(mrl_env *inner, int max_episode_steps);

/* Domain randomisation (J. Tobin et al. 2017; automatic domain
 * randomisation, OpenAI, I. Akkaya et al., "Solving Rubik's Cube with a
 * Robot Hand", arXiv 1910.07113, 2019): at every reset each listed
 * parameter of inner is drawn uniformly from its range [lo, hi], then inner
 * is reset. The draw of parameter i is lo + (hi - lo) * u_i, where u_i in
 * [0, 1) depends only on the episode seed and i, so the same seed gives the
 * same physics, and widening a range moves the values continuously. Every
 * name must be a parameter of inner and [lo, hi] (lo <= hi, finite) inside
 * its domain; count may be 0 (ranges added later). Parameters not listed
 * keep their values. Task (mrl_env_task): inner's task followed by the
 * current value of every parameter of inner in index order (privileged
 * information: the physics of the episode), task_dim = inner's +
 * mrl_env_num_params(inner). NULL when inner has no parameters or a range
 * is invalid. Id suffix "|domain_randomization:<name>=<lo>:<hi>,...". */
typedef struct mrl_param_range {
  const char *name; /* a parameter of the wrapped environment */
  double lo, hi;    /* lo <= hi */
} mrl_param_range;
MRL_DEF mrl_env *mrl_env_wrap_domain_randomization(mrl_env *inner, const mrl_param_range *ranges,
                                                   int count);

/* Sets (adds, widens or narrows) the range of parameter name from the next
 * reset on: ADR moves each bound outwards while the agent does well at it.
 * env is the randomising wrapper or any wrapper around it. lo == hi pins
 * the parameter (ADR's boundary evaluation). MRL_ERR_INVALID_ARGUMENT,
 * nothing changed, when env has no randomising wrapper, the name is not a
 * parameter, lo > hi, or either bound is outside the parameter's domain
 * (checked by setting it and restoring the current value). */
MRL_DEF mrl_result mrl_env_domain_randomization_set_range(mrl_env *env, const char *name, double lo,
                                                          double hi);
/* The range of name; MRL_ERR_INVALID_ARGUMENT when it is not randomised. */
MRL_DEF mrl_result mrl_env_domain_randomization_get_range(const mrl_env *env, const char *name,
                                                          double *lo, double *hi);
/* Sets the range in every environment of a vector (all checked first: on
 * an error none changes). */
MRL_DEF mrl_result mrl_vecenv_domain_randomization_set_range(mrl_vecenv *v, const char *name,
                                                             double lo, double hi);

/* The environment a wrapper wraps; NULL when env is not a wrapper. */
MRL_DEF mrl_env *mrl_env_inner(const mrl_env *env);

/* ---- episode statistics ------------------------------------------------- */

#define MRL_EPISODE_STATS_WINDOW 100

/* Caller-owned ring over the last 100 finished episodes. */
typedef struct mrl_episode_stats {
  float returns[MRL_EPISODE_STATS_WINDOW];
  float lengths[MRL_EPISODE_STATS_WINDOW];
  int success[MRL_EPISODE_STATS_WINDOW]; /* -1: no success information */
  int count;                             /* entries in the window (<= 100) */
  int next;                              /* slot the next episode goes to */
  long long total_episodes;
} mrl_episode_stats;

MRL_DEF void mrl_episode_stats_init(mrl_episode_stats *s);
MRL_DEF void mrl_episode_stats_add(mrl_episode_stats *s, float ret, int len, int success);
/* Adds every episode that ended in the last mrl_vecenv_step. */
MRL_DEF void mrl_episode_stats_add_vecenv(mrl_episode_stats *s, const mrl_vecenv *v);
MRL_DEF float mrl_episode_stats_mean_return(const mrl_episode_stats *s); /* 0 when empty */
MRL_DEF float mrl_episode_stats_mean_length(const mrl_episode_stats *s); /* 0 when empty */
/* Fraction of successes among the episodes in the window that report
 * success (0 or 1); -1 when none does. */
MRL_DEF float mrl_episode_stats_success_rate(const mrl_episode_stats *s);

#ifdef __cplusplus
}
#endif
#endif /* MEMRL_ENVS_H */

/* ======================================================================== */
/*                              IMPLEMENTATION                              */
/* ======================================================================== */
#if (defined(MEMRL_ENVS_IMPLEMENTATION) || defined(MEMRL_IMPLEMENTATION)) &&                       \
    !defined(MEMRL_ENVS_IMPLEMENTATION_DONE)
#define MEMRL_ENVS_IMPLEMENTATION_DONE
#include <stdarg.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the generic wrapper ------------------------------------------------ >>env */

struct mrl_env {
  mrl_env_vtable vt; /* copy; vt.id and the bounds point into this allocation */
  void *self;
  float *act_buf; /* [action_dim]: the clipped box action */
  float *obs_buf; /* [obs_dim]: where obs goes when the caller passes NULL */
  int running;    /* 1 between a reset and the end of its episode */
  int ep_length;  /* steps of the running (or just finished) episode */
  double ep_return;
  int last_success; /* of the last finished episode */
  /* the buffer the last observation went to (NULL after a failed call): a
   * step into the same buffer may be a step_delta */
  const float *obs_last;
};

static size_t mrl__align8(size_t n) {
  return (n + 7u) & ~(size_t)7u;
}

MRL_DEF mrl_env *mrl_env_create(const mrl_env_vtable *vt, void *self) {
  size_t head, nfl, idlen, total;
  const char *id;
  mrl_env *env;
  float *fl;
  int box, i;
  if (!vt || !vt->reset || !vt->step || vt->obs_dim < 1 || vt->num_actions < 0 ||
      vt->max_episode_steps < 0 || vt->task_dim < 0 || (vt->task_dim > 0) != (vt->task != NULL))
    return NULL;
  if (vt->num_params < 0 ||
      (vt->num_params > 0 && (!vt->param_name || !vt->get_param || !vt->set_param)))
    return NULL;
  if ((vt->snapshot != NULL) != (vt->restore != NULL)) return NULL;
  box = vt->num_actions == 0;
  if (box ? vt->action_dim < 1 : vt->action_dim != 1) return NULL;
  id = vt->id ? vt->id : "custom";
  idlen = strlen(id) + 1;
  head = mrl__align8(sizeof(mrl_env));
  /* floats: low, high, act_buf (box only), obs_buf */
  nfl = (size_t)(box ? 3 * vt->action_dim : 0) + (size_t)vt->obs_dim;
  total = head + nfl * sizeof(float) + idlen;
  env = (mrl_env *)MRL_MALLOC(total);
  if (!env) return NULL;
  memset(env, 0, total);
  env->vt = *vt;
  env->self = self;
  fl = (float *)(void *)((char *)env + head);
  if (box) {
    float *lo = fl, *hi = fl + vt->action_dim;
    for (i = 0; i < vt->action_dim; i++) {
      lo[i] = vt->action_low ? vt->action_low[i] : -HUGE_VALF;
      hi[i] = vt->action_high ? vt->action_high[i] : HUGE_VALF;
    }
    env->vt.action_low = lo;
    env->vt.action_high = hi;
    env->act_buf = fl + 2 * vt->action_dim;
    fl += 3 * vt->action_dim;
  } else {
    env->vt.action_low = env->vt.action_high = NULL;
  }
  env->obs_buf = fl;
  fl += vt->obs_dim;
  memcpy((char *)fl, id, idlen);
  env->vt.id = (const char *)fl;
  env->last_success = vt->episode_success ? 0 : -1;
  return env;
}

MRL_DEF void mrl_env_free(mrl_env *env) {
  if (!env) return;
  if (env->vt.destroy) env->vt.destroy(env->self);
  MRL_FREE(env);
}

MRL_DEF const char *mrl_env_id(const mrl_env *env) {
  return env ? env->vt.id : NULL;
}
MRL_DEF int mrl_env_obs_dim(const mrl_env *env) {
  return env ? env->vt.obs_dim : 0;
}
MRL_DEF int mrl_env_num_actions(const mrl_env *env) {
  return env ? env->vt.num_actions : 0;
}
MRL_DEF int mrl_env_action_dim(const mrl_env *env) {
  return env ? env->vt.action_dim : 0;
}
MRL_DEF const float *mrl_env_action_low(const mrl_env *env) {
  return env->vt.action_low;
}
MRL_DEF const float *mrl_env_action_high(const mrl_env *env) {
  return env->vt.action_high;
}
MRL_DEF int mrl_env_max_episode_steps(const mrl_env *env) {
  return env ? env->vt.max_episode_steps : 0;
}
MRL_DEF int mrl_env_episode_success(const mrl_env *env) {
  return env ? env->last_success : -1;
}
MRL_DEF float mrl_env_episode_return(const mrl_env *env) {
  return env ? (float)env->ep_return : 0.0f;
}
MRL_DEF int mrl_env_episode_length(const mrl_env *env) {
  return env ? env->ep_length : 0;
}
MRL_DEF void *mrl_env_self(const mrl_env *env) {
  return env ? env->self : NULL;
}
MRL_DEF int mrl_env_render(const mrl_env *env, char *buf, size_t size) {
  if (!env || !env->vt.render) return -1;
  return env->vt.render(env->self, buf, size);
}
MRL_DEF int mrl_env_task_dim(const mrl_env *env) {
  return env && env->vt.task ? env->vt.task_dim : 0;
}
MRL_DEF void mrl_env_task(const mrl_env *env, float *out) {
  if (env && env->vt.task) env->vt.task(env->self, out);
}

MRL_DEF int mrl_env_num_params(const mrl_env *env) {
  return env && env->vt.set_param ? env->vt.num_params : 0;
}
MRL_DEF const char *mrl_env_param_name(const mrl_env *env, int index) {
  if (index < 0 || index >= mrl_env_num_params(env)) return NULL;
  return env->vt.param_name(env->self, index);
}
MRL_DEF int mrl_env_param_index(const mrl_env *env, const char *name) {
  int i, n = mrl_env_num_params(env);
  if (!name) return -1;
  for (i = 0; i < n; i++) {
    const char *s = env->vt.param_name(env->self, i);
    if (s && strcmp(s, name) == 0) return i;
  }
  return -1;
}
MRL_DEF mrl_result mrl_env_get_param(const mrl_env *env, const char *name, double *value) {
  int i = mrl_env_param_index(env, name);
  if (i < 0 || !value) return MRL_ERR_INVALID_ARGUMENT;
  *value = env->vt.get_param(env->self, i);
  return MRL_OK;
}
MRL_DEF mrl_result mrl_env_set_param(mrl_env *env, const char *name, double value) {
  int i = mrl_env_param_index(env, name);
  if (i < 0 || !(value - value == 0.0)) return MRL_ERR_INVALID_ARGUMENT;
  return env->vt.set_param(env->self, i, value);
}

MRL_DEF mrl_result mrl_env_reset(mrl_env *env, uint64_t seed, float *obs) {
  mrl_result r;
  if (!env) return MRL_ERR_INVALID_ARGUMENT;
  if (!obs) obs = env->obs_buf;
  r = env->vt.reset(env->self, seed, obs);
  env->running = r == MRL_OK;
  env->obs_last = r == MRL_OK ? obs : NULL;
  env->ep_length = 0;
  env->ep_return = 0.0;
  return r;
}

/* Checks an action without touching the environment. For a box action the
 * clipped copy goes to env->act_buf; *use is what the step callback gets. */
static mrl_result mrl__env_check(mrl_env *env, const float *action, const float **use) {
  int n = env->vt.num_actions, i;
  if (!action) return MRL_ERR_INVALID_ACTION;
  if (n > 0) {
    float a = action[0];
    /* false for NaN; infinities fail the range test */
    if (!(a >= 0.0f && a < (float)n)) return MRL_ERR_INVALID_ACTION;
    if ((float)(int)a != a) return MRL_ERR_INVALID_ACTION;
    *use = action;
    return MRL_OK;
  }
  for (i = 0; i < env->vt.action_dim; i++) {
    float a = action[i];
    if (a - a != 0.0f) return MRL_ERR_INVALID_ACTION; /* NaN or infinite */
  }
  for (i = 0; i < env->vt.action_dim; i++) {
    float a = action[i];
    if (a < env->vt.action_low[i]) a = env->vt.action_low[i];
    if (a > env->vt.action_high[i]) a = env->vt.action_high[i];
    env->act_buf[i] = a;
  }
  *use = env->act_buf;
  return MRL_OK;
}

/* Steps with an already checked action. delta: the caller keeps obs
 * untouched between calls (see step_delta). */
static mrl_result mrl__env_step_checked(mrl_env *env, const float *use, float *obs, float *reward,
                                        int *terminated, int *truncated, int delta) {
  float rew = 0.0f;
  int term = 0, trunc = 0;
  mrl_result r;
  if (!obs) obs = env->obs_buf;
  if (delta && env->vt.step_delta && env->obs_last == obs)
    r = env->vt.step_delta(env->self, use, obs, &rew, &term, &trunc);
  else
    r = env->vt.step(env->self, use, obs, &rew, &term, &trunc);
  if (r != MRL_OK) {
    env->running = 0;
    env->obs_last = NULL;
    return r;
  }
  env->obs_last = obs;
  term = term != 0;
  trunc = trunc != 0;
  env->ep_length++;
  env->ep_return += (double)rew;
  if (term)
    trunc = 0;
  else if (env->vt.max_episode_steps > 0 && env->ep_length >= env->vt.max_episode_steps)
    trunc = 1;
  if (term || trunc) {
    env->running = 0;
    env->last_success = env->vt.episode_success ? env->vt.episode_success(env->self) : -1;
  }
  if (reward) *reward = rew;
  if (terminated) *terminated = term;
  if (truncated) *truncated = trunc;
  return MRL_OK;
}

/* mrl_env_step; delta as in mrl__env_step_checked. */
static mrl_result mrl__env_step(mrl_env *env, const float *action, float *obs, float *reward,
                                int *terminated, int *truncated, int delta) {
  const float *use = NULL;
  mrl_result r;
  if (!env) return MRL_ERR_INVALID_ARGUMENT;
  if (!env->running) return MRL_ERR_NOT_RESET;
  r = mrl__env_check(env, action, &use);
  if (r != MRL_OK) return r;
  return mrl__env_step_checked(env, use, obs, reward, terminated, truncated, delta);
}

MRL_DEF mrl_result mrl_env_step(mrl_env *env, const float *action, float *obs, float *reward,
                                int *terminated, int *truncated) {
  return mrl__env_step(env, action, obs, reward, terminated, truncated, 0);
}

/* ---- CartPole-v1 / StatelessCartPole-v1 --------------------------------- >>cartpole */
/* Constants and operation order as in Gymnasium's cartpole.py. The physics
 * constants are parameters (mrl_env_set_param); these are their defaults. */
#define MRL__CP_GRAVITY 9.8
#define MRL__CP_MASSCART 1.0
#define MRL__CP_MASSPOLE 0.1
#define MRL__CP_LENGTH 0.5
#define MRL__CP_FORCE_MAG 10.0
#define MRL__CP_TAU 0.02
#define MRL__CP_THETA_THRESHOLD (12.0 * 2.0 * 3.141592653589793 / 360.0)
#define MRL__CP_X_THRESHOLD 2.4
#define MRL__CP_NUM_PARAMS 6

typedef struct mrl__cartpole {
  double x, x_dot, theta, theta_dot;
  int stateless;
  /* parameters, in the order of mrl__cartpole_param_name */
  double p[MRL__CP_NUM_PARAMS];       /* gravity, masscart, masspole, length, force_mag, tau */
  double total_mass, polemass_length; /* derived, as Gymnasium derives them */
} mrl__cartpole;

static void mrl__cartpole_derive(mrl__cartpole *c) {
  c->total_mass = c->p[2] + c->p[1]; /* masspole + masscart */
  c->polemass_length = c->p[2] * c->p[3];
}

static void mrl__cartpole_defaults(mrl__cartpole *c) {
  c->p[0] = MRL__CP_GRAVITY;
  c->p[1] = MRL__CP_MASSCART;
  c->p[2] = MRL__CP_MASSPOLE;
  c->p[3] = MRL__CP_LENGTH;
  c->p[4] = MRL__CP_FORCE_MAG;
  c->p[5] = MRL__CP_TAU;
  mrl__cartpole_derive(c);
}

static void mrl__cartpole_obs(const mrl__cartpole *c, float *obs) {
  if (c->stateless) {
    obs[0] = (float)c->x;
    obs[1] = (float)c->theta;
  } else {
    obs[0] = (float)c->x;
    obs[1] = (float)c->x_dot;
    obs[2] = (float)c->theta;
    obs[3] = (float)c->theta_dot;
  }
}

static mrl_result mrl__cartpole_reset(void *self, uint64_t seed, float *obs) {
  mrl__cartpole *c = (mrl__cartpole *)self;
  mrl_rng r = mrl_rng_make(seed);
  c->x = -0.05 + 0.1 * (double)mrl_rng_uniform(&r);
  c->x_dot = -0.05 + 0.1 * (double)mrl_rng_uniform(&r);
  c->theta = -0.05 + 0.1 * (double)mrl_rng_uniform(&r);
  c->theta_dot = -0.05 + 0.1 * (double)mrl_rng_uniform(&r);
  mrl__cartpole_obs(c, obs);
  return MRL_OK;
}

static mrl_result mrl__cartpole_step(void *self, const float *action, float *obs, float *reward,
                                     int *terminated, int *truncated) {
  mrl__cartpole *c = (mrl__cartpole *)self;
  double force = action[0] == 1.0f ? c->p[4] : -c->p[4];
  double costheta = cos(c->theta), sintheta = sin(c->theta);
  double temp, thetaacc, xacc, tau = c->p[5];
  temp = (force + c->polemass_length * (c->theta_dot * c->theta_dot) * sintheta) / c->total_mass;
  thetaacc = (c->p[0] * sintheta - costheta * temp) /
             (c->p[3] * (4.0 / 3.0 - c->p[2] * (costheta * costheta) / c->total_mass));
  xacc = temp - c->polemass_length * thetaacc * costheta / c->total_mass;
  c->x = c->x + tau * c->x_dot;
  c->x_dot = c->x_dot + tau * xacc;
  c->theta = c->theta + tau * c->theta_dot;
  c->theta_dot = c->theta_dot + tau * thetaacc;
  mrl__cartpole_obs(c, obs);
  *terminated = c->x < -MRL__CP_X_THRESHOLD || c->x > MRL__CP_X_THRESHOLD ||
                c->theta < -MRL__CP_THETA_THRESHOLD || c->theta > MRL__CP_THETA_THRESHOLD;
  *truncated = 0;
  *reward = 1.0f;
  return MRL_OK;
}

/* ---- TMaze-<L> (Bakker 2001) -------------------------------------------- >>tmaze */

typedef struct mrl__tmaze {
  int length; /* L: the junction is at x = L */
  int x;      /* 0 .. L */
  int goal;   /* 0 North, 1 South */
  int success;
} mrl__tmaze;

static void mrl__tmaze_obs(const mrl__tmaze *t, float *obs) {
  if (t->x == 0) {
    obs[0] = t->goal ? 1.0f : 0.0f; /* North: 0,1,1   South: 1,1,0 */
    obs[1] = 1.0f;
    obs[2] = t->goal ? 0.0f : 1.0f;
  } else if (t->x < t->length) {
    obs[0] = 1.0f;
    obs[1] = 0.0f;
    obs[2] = 1.0f;
  } else {
    obs[0] = 0.0f;
    obs[1] = 1.0f;
    obs[2] = 0.0f;
  }
}

static mrl_result mrl__tmaze_reset(void *self, uint64_t seed, float *obs) {
  mrl__tmaze *t = (mrl__tmaze *)self;
  mrl_rng r = mrl_rng_make(seed);
  t->goal = (int)mrl_rng_below(&r, 2u);
  t->x = 0;
  t->success = 0;
  mrl__tmaze_obs(t, obs);
  return MRL_OK;
}

static mrl_result mrl__tmaze_step(void *self, const float *action, float *obs, float *reward,
                                  int *terminated, int *truncated) {
  mrl__tmaze *t = (mrl__tmaze *)self;
  int a = (int)action[0]; /* 0 N, 1 E, 2 S, 3 W */
  *truncated = 0;
  *terminated = 0;
  *reward = 0.0f;
  if (t->x == t->length && (a == 0 || a == 2)) {
    t->success = (a == 0) == (t->goal == 0);
    *reward = t->success ? 4.0f : -0.1f;
    *terminated = 1;
    obs[0] = obs[1] = obs[2] = 0.0f;
    return MRL_OK;
  }
  if (a == 1 && t->x < t->length)
    t->x++;
  else if (a == 3 && t->x > 0)
    t->x--;
  else
    *reward = -0.1f; /* stood still: bumped into a wall */
  mrl__tmaze_obs(t, obs);
  return MRL_OK;
}

static int mrl__tmaze_success(const void *self) {
  return ((const mrl__tmaze *)self)->success;
}

/* Built-in states are one zeroed block of plain data (no pointers) behind a
 * hidden header that holds its size, so one pair of snapshot hooks serves
 * them all (mrl__env_state, mrl__plain_snapshot). */
#define MRL__STATE_HEAD 16 /* keeps the block as aligned as malloc's */

static void mrl__free_self(void *self) {
  if (self) MRL_FREE((char *)self - MRL__STATE_HEAD);
}

/* Parses decimal digits at *s into *out (at most cap). 0 on no digits or
 * a value above cap. */
static int mrl__parse_uint(const char **s, long *out, long cap) {
  const char *p = *s;
  long v = 0;
  if (*p < '0' || *p > '9') return 0;
  while (*p >= '0' && *p <= '9') {
    long d = *p - '0';
    if (d > cap || v > (cap - d) / 10) return 0; /* v * 10 + d would pass cap (no overflow) */
    v = v * 10 + d;
    p++;
  }
  *s = p;
  *out = v;
  return 1;
}

/* Allocates a zeroed environment state (free it with mrl__free_self); NULL
 * when out of memory. */
static void *mrl__env_state(size_t bytes) {
  char *p = (char *)MRL_MALLOC(MRL__STATE_HEAD + bytes);
  if (!p) return NULL;
  memset(p, 0, MRL__STATE_HEAD + bytes);
  memcpy(p, &bytes, sizeof bytes);
  return p + MRL__STATE_HEAD;
}

static size_t mrl__state_bytes(const void *self) {
  size_t bytes;
  memcpy(&bytes, (const char *)self - MRL__STATE_HEAD, sizeof bytes);
  return bytes;
}

/* Snapshot hooks of every built-in environment: the state block as it is.
 * It includes the physics parameters and SFGrid's task w (state that
 * domain randomisation or the user changes while a run goes on) and the
 * values the id fixes (the same in any environment of that id). */
static size_t mrl__plain_snapshot(const void *self, void *buf, size_t size) {
  size_t n = mrl__state_bytes(self);
  if (buf && size >= n) memcpy(buf, self, n);
  return n;
}

static mrl_result mrl__plain_restore(void *self, const void *buf, size_t size) {
  if (!buf || size != mrl__state_bytes(self)) return MRL_ERR_CORRUPT;
  memcpy(self, buf, size);
  return MRL_OK;
}

/* A vtable for a built-in environment: id, discrete action, state freed by
 * mrl_env_free. */
static mrl_env_vtable mrl__env_vtable(const char *id, int obs_dim, int num_actions) {
  mrl_env_vtable vt;
  memset(&vt, 0, sizeof vt);
  vt.id = id;
  vt.obs_dim = obs_dim;
  vt.num_actions = num_actions;
  vt.action_dim = 1;
  vt.destroy = mrl__free_self;
  vt.snapshot = mrl__plain_snapshot;
  vt.restore = mrl__plain_restore;
  return vt;
}

/* Wraps a built-in state; frees it when the wrapper cannot be made. */
static mrl_env *mrl__env_finish(const mrl_env_vtable *vt, void *self) {
  mrl_env *env;
  if (!self) return NULL;
  env = mrl_env_create(vt, self);
  if (!env) mrl__free_self(self);
  return env;
}

/* Parameters of CartPole and of its POMDP variants (whose state struct
 * starts with an mrl__cartpole, so self may point to either). Names come
 * from a switch: a static table of pointers would be writable data. */
static const char *mrl__cartpole_param_name(const void *self, int index) {
  (void)self;
  switch (index) {
  case 0: return "gravity";
  case 1: return "masscart";
  case 2: return "masspole";
  case 3: return "length";
  case 4: return "force_mag";
  case 5: return "tau";
  }
  return NULL;
}

static double mrl__cartpole_get_param(const void *self, int index) {
  return ((const mrl__cartpole *)self)->p[index];
}

/* Domains: gravity and force_mag >= 0, the masses, length and tau > 0, all
 * finite. */
static mrl_result mrl__cartpole_set_param(void *self, int index, double value) {
  mrl__cartpole *c = (mrl__cartpole *)self;
  if (!(value - value == 0.0)) return MRL_ERR_INVALID_ARGUMENT; /* NaN or infinite */
  if (index == 0 || index == 4 ? value < 0.0 : value <= 0.0) return MRL_ERR_INVALID_ARGUMENT;
  c->p[index] = value;
  mrl__cartpole_derive(c);
  return MRL_OK;
}

/* Sets the parameter hooks of a CartPole-family table. */
static void mrl__cartpole_vtable_params(mrl_env_vtable *vt) {
  vt->num_params = MRL__CP_NUM_PARAMS;
  vt->param_name = mrl__cartpole_param_name;
  vt->get_param = mrl__cartpole_get_param;
  vt->set_param = mrl__cartpole_set_param;
}

static int mrl__cartpole_render(const void *self, char *buf, size_t size) {
  const mrl__cartpole *c = (const mrl__cartpole *)self;
  char track[41];
  int i, pos = (int)floor((c->x + MRL__CP_X_THRESHOLD) / (2.0 * MRL__CP_X_THRESHOLD) * 40.0);
  for (i = 0; i < 40; i++) track[i] = '-';
  track[40] = '\0';
  if (pos >= 0 && pos < 40) track[pos] = c->theta < -0.05 ? '\\' : c->theta > 0.05 ? '/' : '|';
  return snprintf(buf, size, "[%s] x=%+.3f theta=%+.1f deg\n", track, c->x,
                  c->theta * 180.0 / 3.141592653589793);
}

static mrl_env *mrl__cartpole_make(const char *id) {
  int stateless = strcmp(id, "StatelessCartPole-v1") == 0;
  mrl_env_vtable vt;
  mrl__cartpole *c;
  if (!stateless && strcmp(id, "CartPole-v1") != 0) return NULL;
  vt = mrl__env_vtable(id, stateless ? 2 : 4, 2);
  vt.reset = mrl__cartpole_reset;
  vt.step = mrl__cartpole_step;
  vt.render = mrl__cartpole_render;
  vt.max_episode_steps = 500;
  mrl__cartpole_vtable_params(&vt);
  c = (mrl__cartpole *)mrl__env_state(sizeof(mrl__cartpole));
  if (c) {
    c->stateless = stateless;
    mrl__cartpole_defaults(c);
  }
  return mrl__env_finish(&vt, c);
}

static int mrl__tmaze_render(const void *self, char *buf, size_t size) {
  const mrl__tmaze *t = (const mrl__tmaze *)self;
  /* three rows: North arm, corridor, South arm; G marks the goal arm */
  size_t at = 0;
  int row, x;
  for (row = 0; row < 3; row++) {
    for (x = 0; x <= t->length; x++) {
      char ch = ' ';
      if (row == 1)
        ch = x == t->x ? 'A' : x == 0 ? (t->goal ? 'v' : '^') : '.';
      else if (x == t->length)
        ch = (row == 0) == (t->goal == 0) ? 'G' : 'o';
      if (at + 1 < size) buf[at] = ch;
      at++;
    }
    if (at + 1 < size) buf[at] = '\n';
    at++;
  }
  if (size > 0) buf[at < size ? at : size - 1] = '\0';
  return (int)at;
}

static mrl_env *mrl__tmaze_make(const char *id) {
  const char *p = id + 6;
  long len, max_steps;
  mrl_env_vtable vt;
  mrl__tmaze *t;
  if (strncmp(id, "TMaze-", 6) != 0) return NULL;
  if (!mrl__parse_uint(&p, &len, 100000L) || len < 1) return NULL;
  max_steps = 10 * (len + 1);
  if (*p == '-') {
    p++;
    if (!mrl__parse_uint(&p, &max_steps, 1000000000L)) return NULL;
  }
  if (*p != '\0') return NULL;
  vt = mrl__env_vtable(id, 3, 4);
  vt.reset = mrl__tmaze_reset;
  vt.step = mrl__tmaze_step;
  vt.render = mrl__tmaze_render;
  vt.episode_success = mrl__tmaze_success;
  vt.max_episode_steps = (int)max_steps;
  t = (mrl__tmaze *)mrl__env_state(sizeof(mrl__tmaze));
  if (t) t->length = (int)len;
  return mrl__env_finish(&vt, t);
}

/* ---- shared helpers of the task sections below -------------------------- >>task_helpers */

/* Parses a decimal number "<digits>[.<digits>]" at *s into *out (at most
 * cap, at most 9 fraction digits). 0 on a malformed number. */
static int mrl__parse_decimal(const char **s, double *out, double cap) {
  const char *p = *s;
  long ip;
  double v, scale = 0.1;
  int nfrac = 0;
  if (!mrl__parse_uint(&p, &ip, 1000000000L)) return 0;
  v = (double)ip;
  if (*p == '.') {
    p++;
    while (*p >= '0' && *p <= '9') {
      if (++nfrac > 9) return 0;
      v += scale * (double)(*p - '0');
      scale *= 0.1;
      p++;
    }
    if (nfrac == 0) return 0;
  }
  if (v > cap) return 0;
  *s = p;
  *out = v;
  return 1;
}

/* Appends text to a render buffer with snprintf semantics (at counts the
 * length needed so far). */
static void mrl__put(char *buf, size_t size, size_t *at, const char *text) {
  for (; *text; text++) {
    if (*at + 1 < size) buf[*at] = *text;
    (*at)++;
  }
  if (size > 0) buf[*at < size ? *at : size - 1] = '\0';
}

static void mrl__putc(char *buf, size_t size, size_t *at, char ch) {
  char s[2];
  s[0] = ch;
  s[1] = '\0';
  mrl__put(buf, size, at, s);
}

/* ---- Pendulum-v1 and the POPGym POMDP variants of CartPole / Pendulum ---- >>pendulum */
/* Constants and operation order as in Gymnasium's pendulum.py. */
#define MRL__PD_MAX_SPEED 8.0
#define MRL__PD_MAX_TORQUE 2.0
#define MRL__PD_DT 0.05
#define MRL__PD_G 10.0
#define MRL__PD_M 1.0
#define MRL__PD_L 1.0
#define MRL__PI 3.141592653589793

#define MRL__PD_NUM_PARAMS 6

typedef struct mrl__pendulum {
  double th, thdot, last_u;
  double p[MRL__PD_NUM_PARAMS]; /* g, m, l, dt, max_speed, max_torque (parameters) */
  int position_only;            /* observation [cos, sin] */
  double sigma;                 /* observation noise (0: none) */
  mrl_rng noise;
} mrl__pendulum;

/* Gymnasium's angle_normalize: ((x + pi) mod 2 pi) - pi, with Python's
 * floored modulo (result in [0, 2 pi)). */
static double mrl__angle_normalize(double x) {
  double m = fmod(x + MRL__PI, 2.0 * MRL__PI);
  if (m < 0.0) m += 2.0 * MRL__PI;
  return m - MRL__PI;
}

/* Adds N(0, sigma) to obs[0..n) and clips to [-hi, hi]. */
static void mrl__obs_noise(mrl_rng *r, double sigma, float *obs, const float *hi, int n) {
  int i;
  if (sigma <= 0.0) return;
  for (i = 0; i < n; i++) {
    float v = obs[i] + (float)(sigma * (double)mrl_rng_normal(r));
    obs[i] = v < -hi[i] ? -hi[i] : v > hi[i] ? hi[i] : v;
  }
}

static void mrl__pendulum_obs(mrl__pendulum *p, float *obs) {
  static const float hi[2] = {1.0f, 1.0f};
  obs[0] = (float)cos(p->th);
  obs[1] = (float)sin(p->th);
  if (!p->position_only) obs[2] = (float)p->thdot;
  mrl__obs_noise(&p->noise, p->sigma, obs, hi, 2);
}

static mrl_result mrl__pendulum_reset(void *self, uint64_t seed, float *obs) {
  mrl__pendulum *p = (mrl__pendulum *)self;
  mrl_rng r = mrl_rng_make(seed);
  p->th = -MRL__PI + 2.0 * MRL__PI * (double)mrl_rng_uniform(&r);
  p->thdot = -1.0 + 2.0 * (double)mrl_rng_uniform(&r);
  p->last_u = 0.0;
  mrl_rng_seed(&p->noise, seed, 0x6e6f697365ULL); /* own stream: same start as noiseless */
  mrl__pendulum_obs(p, obs);
  return MRL_OK;
}

static mrl_result mrl__pendulum_step(void *self, const float *action, float *obs, float *reward,
                                     int *terminated, int *truncated) {
  mrl__pendulum *p = (mrl__pendulum *)self;
  double g = p->p[0], m = p->p[1], l = p->p[2], dt = p->p[3], max_speed = p->p[4];
  double u = (double)action[0]; /* already clipped to [-2, 2] by the wrapper */
  double costs, an = mrl__angle_normalize(p->th), newthdot;
  if (u > p->p[5]) u = p->p[5]; /* Gymnasium's clip to max_torque (a no-op at 2) */
  if (u < -p->p[5]) u = -p->p[5];
  costs = an * an + 0.1 * (p->thdot * p->thdot) + 0.001 * (u * u);
  newthdot = p->thdot + (3.0 * g / (2.0 * l) * sin(p->th) + 3.0 / (m * (l * l)) * u) * dt;
  if (newthdot < -max_speed) newthdot = -max_speed;
  if (newthdot > max_speed) newthdot = max_speed;
  p->th = p->th + newthdot * dt;
  p->thdot = newthdot;
  p->last_u = u;
  mrl__pendulum_obs(p, obs);
  *reward = (float)-costs;
  *terminated = 0;
  *truncated = 0;
  return MRL_OK;
}

static int mrl__pendulum_render(const void *self, char *buf, size_t size) {
  const mrl__pendulum *p = (const mrl__pendulum *)self;
  /* an 8-point dial of the pole: ^ upright, v hanging */
  static const char dial[8] = {'^', '/', '>', '\\', 'v', '/', '<', '\\'};
  double a = mrl__angle_normalize(p->th);
  int k = (int)floor((a + MRL__PI) / (2.0 * MRL__PI) * 8.0 + 0.5 + 4.0) % 8;
  return snprintf(buf, size, "pole %c theta=%+.1f deg thetadot=%+.3f torque=%+.3f\n", dial[k],
                  a * 180.0 / MRL__PI, p->thdot, p->last_u);
}

static const char *mrl__pendulum_param_name(const void *self, int index) {
  (void)self;
  switch (index) {
  case 0: return "g";
  case 1: return "m";
  case 2: return "l";
  case 3: return "dt";
  case 4: return "max_speed";
  case 5: return "max_torque";
  }
  return NULL;
}

static double mrl__pendulum_get_param(const void *self, int index) {
  return ((const mrl__pendulum *)self)->p[index];
}

/* Domains: g >= 0, m, l, dt, max_speed > 0, max_torque >= 0, all finite. */
static mrl_result mrl__pendulum_set_param(void *self, int index, double value) {
  mrl__pendulum *p = (mrl__pendulum *)self;
  if (!(value - value == 0.0)) return MRL_ERR_INVALID_ARGUMENT; /* NaN or infinite */
  if (index == 0 || index == 5 ? value < 0.0 : value <= 0.0) return MRL_ERR_INVALID_ARGUMENT;
  p->p[index] = value;
  return MRL_OK;
}

/* Parses "<name>" or, where noisy, "<name>[-<sigma>]" (sigma in [0, 10],
 * default 0.1). 1 when id matches. */
static int mrl__parse_noisy_id(const char *id, const char *name, int noisy, double *sigma) {
  size_t n = strlen(name);
  const char *p = id + n;
  double s = noisy ? 0.1 : 0.0;
  if (strncmp(id, name, n) != 0) return 0;
  if (*p == '-' && noisy) {
    p++;
    if (!mrl__parse_decimal(&p, &s, 10.0)) return 0;
  }
  if (*p != '\0') return 0;
  *sigma = s;
  return 1;
}

static mrl_env *mrl__pendulum_make(const char *id) {
  static const float lo = -(float)MRL__PD_MAX_TORQUE, hi = (float)MRL__PD_MAX_TORQUE;
  int position_only = 0;
  double sigma = 0.0;
  mrl_env_vtable vt;
  mrl__pendulum *p;
  if (strcmp(id, "StatelessPendulum-v1") == 0)
    position_only = 1;
  else if (mrl__parse_noisy_id(id, "NoisyStatelessPendulum-v1", 1, &sigma))
    position_only = 1;
  else if (strcmp(id, "Pendulum-v1") != 0)
    return NULL;
  vt = mrl__env_vtable(id, position_only ? 2 : 3, 0);
  vt.action_low = &lo;
  vt.action_high = &hi;
  vt.reset = mrl__pendulum_reset;
  vt.step = mrl__pendulum_step;
  vt.render = mrl__pendulum_render;
  vt.max_episode_steps = 200;
  vt.num_params = MRL__PD_NUM_PARAMS;
  vt.param_name = mrl__pendulum_param_name;
  vt.get_param = mrl__pendulum_get_param;
  vt.set_param = mrl__pendulum_set_param;
  p = (mrl__pendulum *)mrl__env_state(sizeof(mrl__pendulum));
  if (p) {
    p->p[0] = MRL__PD_G;
    p->p[1] = MRL__PD_M;
    p->p[2] = MRL__PD_L;
    p->p[3] = MRL__PD_DT;
    p->p[4] = MRL__PD_MAX_SPEED;
    p->p[5] = MRL__PD_MAX_TORQUE;
    p->position_only = position_only;
    p->sigma = sigma;
  }
  return mrl__env_finish(&vt, p);
}

/* CartPole POMDPs: the CartPole-v1 state and step above, observed through a
 * projection and optional noise. */
typedef struct mrl__cartpole_pomdp {
  mrl__cartpole cp; /* stateless = 0: the full state goes to a scratch obs */
  int velocity_only;
  double sigma;
  mrl_rng noise;
} mrl__cartpole_pomdp;

static void mrl__cartpole_pomdp_obs(mrl__cartpole_pomdp *c, const float *full, float *obs) {
  /* POPGym's position-only observation space: +-2 x_threshold, +-2 theta_threshold */
  static const float hi[2] = {(float)(2.0 * MRL__CP_X_THRESHOLD),
                              (float)(2.0 * MRL__CP_THETA_THRESHOLD)};
  obs[0] = c->velocity_only ? full[1] : full[0];
  obs[1] = c->velocity_only ? full[3] : full[2];
  mrl__obs_noise(&c->noise, c->sigma, obs, hi, 2);
}

static mrl_result mrl__cartpole_pomdp_reset(void *self, uint64_t seed, float *obs) {
  mrl__cartpole_pomdp *c = (mrl__cartpole_pomdp *)self;
  float full[4];
  mrl__cartpole_reset(&c->cp, seed, full);
  mrl_rng_seed(&c->noise, seed, 0x6e6f697365ULL);
  mrl__cartpole_pomdp_obs(c, full, obs);
  return MRL_OK;
}

static mrl_result mrl__cartpole_pomdp_step(void *self, const float *action, float *obs,
                                           float *reward, int *terminated, int *truncated) {
  mrl__cartpole_pomdp *c = (mrl__cartpole_pomdp *)self;
  float full[4];
  mrl__cartpole_step(&c->cp, action, full, reward, terminated, truncated);
  mrl__cartpole_pomdp_obs(c, full, obs);
  return MRL_OK;
}

static int mrl__cartpole_pomdp_render(const void *self, char *buf, size_t size) {
  return mrl__cartpole_render(&((const mrl__cartpole_pomdp *)self)->cp, buf, size);
}

static mrl_env *mrl__cartpole_pomdp_make(const char *id) {
  int velocity_only = 0;
  double sigma = 0.0;
  mrl_env_vtable vt;
  mrl__cartpole_pomdp *c;
  if (strcmp(id, "VelocityOnlyCartPole-v1") == 0)
    velocity_only = 1;
  else if (!mrl__parse_noisy_id(id, "NoisyStatelessCartPole-v1", 1, &sigma))
    return NULL;
  vt = mrl__env_vtable(id, 2, 2);
  vt.reset = mrl__cartpole_pomdp_reset;
  vt.step = mrl__cartpole_pomdp_step;
  vt.render = mrl__cartpole_pomdp_render;
  vt.max_episode_steps = 500;
  mrl__cartpole_vtable_params(&vt); /* self points to the mrl__cartpole at its start */
  c = (mrl__cartpole_pomdp *)mrl__env_state(sizeof(mrl__cartpole_pomdp));
  if (c) {
    mrl__cartpole_defaults(&c->cp);
    c->velocity_only = velocity_only;
    c->sigma = sigma;
  }
  return mrl__env_finish(&vt, c);
}

/* ---- PassiveTMaze-<L> (Ni et al. 2023) ---------------------------------- >>passive_tmaze */

typedef struct mrl__ptmaze {
  int length;  /* L: corridor cells x = 0 .. L, junction at x = L */
  int x, y, t; /* y: +1 up arm, 0 corridor, -1 down arm */
  int goal_y;  /* +1 or -1 */
  int success;
  float penalty; /* -1 / L */
} mrl__ptmaze;

static void mrl__ptmaze_obs(const mrl__ptmaze *m, float *obs) {
  obs[0] = m->x == m->length ? 1.0f : 0.0f;
  obs[1] = m->x == m->length ? (float)m->y : (m->t == 0 ? (float)m->goal_y : 0.0f);
}

static mrl_result mrl__ptmaze_reset(void *self, uint64_t seed, float *obs) {
  mrl__ptmaze *m = (mrl__ptmaze *)self;
  mrl_rng r = mrl_rng_make(seed);
  m->goal_y = mrl_rng_below(&r, 2u) ? 1 : -1;
  m->x = m->y = m->t = 0;
  m->success = 0;
  mrl__ptmaze_obs(m, obs);
  return MRL_OK;
}

static mrl_result mrl__ptmaze_step(void *self, const float *action, float *obs, float *reward,
                                   int *terminated, int *truncated) {
  static const int dx[4] = {1, 0, -1, 0}, dy[4] = {0, 1, 0, -1};
  mrl__ptmaze *m = (mrl__ptmaze *)self;
  int a = (int)action[0], nx, ny;
  m->t++;
  nx = m->x + dx[a];
  ny = m->y + dy[a];
  /* free cells: the corridor (x, 0), 0 <= x <= L, and the arms (L, +-1) */
  if (nx >= 0 && nx <= m->length && (ny == 0 || (nx == m->length && ny >= -1 && ny <= 1))) {
    m->x = nx;
    m->y = ny;
  }
  *truncated = 0;
  *terminated = m->t >= m->length + 1;
  if (*terminated) {
    m->success = m->y == m->goal_y;
    *reward = m->success ? 1.0f : 0.0f;
  } else {
    *reward = m->x < m->t ? m->penalty : 0.0f; /* behind the ideal x = t */
  }
  mrl__ptmaze_obs(m, obs);
  return MRL_OK;
}

static int mrl__ptmaze_success(const void *self) {
  return ((const mrl__ptmaze *)self)->success;
}

static int mrl__ptmaze_render(const void *self, char *buf, size_t size) {
  const mrl__ptmaze *m = (const mrl__ptmaze *)self;
  size_t at = 0;
  int row, x;
  if (size > 0) buf[0] = '\0';
  for (row = 1; row >= -1; row--) {
    for (x = 0; x <= m->length; x++) {
      char ch = ' ';
      if (x == m->x && row == m->y)
        ch = 'A';
      else if (row == 0)
        ch = x == 0 ? 'S' : '.';
      else if (x == m->length)
        ch = row == m->goal_y ? 'G' : 'o';
      mrl__putc(buf, size, &at, ch);
    }
    mrl__putc(buf, size, &at, '\n');
  }
  return (int)at;
}

static mrl_env *mrl__ptmaze_make(const char *id) {
  const char *p = id + 13;
  long len;
  mrl_env_vtable vt;
  mrl__ptmaze *m;
  if (strncmp(id, "PassiveTMaze-", 13) != 0) return NULL;
  if (!mrl__parse_uint(&p, &len, 100000L) || len < 1 || *p != '\0') return NULL;
  vt = mrl__env_vtable(id, 2, 4);
  vt.reset = mrl__ptmaze_reset;
  vt.step = mrl__ptmaze_step;
  vt.render = mrl__ptmaze_render;
  vt.episode_success = mrl__ptmaze_success;
  m = (mrl__ptmaze *)mrl__env_state(sizeof(mrl__ptmaze));
  if (m) {
    m->length = (int)len;
    m->penalty = (float)(-1.0 / (double)len);
  }
  return mrl__env_finish(&vt, m);
}

/* ---- MemoryChain-<memory_length>[-<num_bits>] (bsuite) ------------------ >>memory_chain */

typedef struct mrl__mchain {
  int length, bits, t, query, success;
  unsigned char context[1]; /* [bits], allocated with the struct */
} mrl__mchain;

/* bsuite's _get_observation at timestep t: [time left, query, context]. */
static void mrl__mchain_obs(const mrl__mchain *m, int t, float *obs) {
  int i;
  obs[0] = (float)(1.0 - (double)t / (double)m->length);
  obs[1] = t == m->length - 1 ? (float)m->query : 0.0f;
  for (i = 0; i < m->bits; i++) obs[2 + i] = t == 0 ? (m->context[i] ? 1.0f : -1.0f) : 0.0f;
}

static mrl_result mrl__mchain_reset(void *self, uint64_t seed, float *obs) {
  mrl__mchain *m = (mrl__mchain *)self;
  mrl_rng r = mrl_rng_make(seed);
  int i;
  for (i = 0; i < m->bits; i++) m->context[i] = (unsigned char)mrl_rng_below(&r, 2u);
  m->query = (int)mrl_rng_below(&r, (uint32_t)m->bits);
  m->t = 0;
  m->success = 0;
  mrl__mchain_obs(m, 0, obs);
  return MRL_OK;
}

static mrl_result mrl__mchain_step(void *self, const float *action, float *obs, float *reward,
                                   int *terminated, int *truncated) {
  mrl__mchain *m = (mrl__mchain *)self;
  /* as bsuite: the observation returned is that of the timestep before the
   * increment; the action counts only on step memory_length + 1 */
  mrl__mchain_obs(m, m->t, obs);
  m->t++;
  *truncated = 0;
  *terminated = m->t > m->length;
  *reward = 0.0f;
  if (*terminated) {
    m->success = (int)action[0] == (int)m->context[m->query];
    *reward = m->success ? 1.0f : -1.0f;
  }
  return MRL_OK;
}

static int mrl__mchain_success(const void *self) {
  return ((const mrl__mchain *)self)->success;
}

static int mrl__mchain_render(const void *self, char *buf, size_t size) {
  const mrl__mchain *m = (const mrl__mchain *)self;
  size_t at = 0;
  int i;
  char head[96];
  if (size > 0) buf[0] = '\0';
  snprintf(head, sizeof head, "t=%d/%d query=%d context=", m->t, m->length + 1, m->query);
  mrl__put(buf, size, &at, head);
  for (i = 0; i < m->bits; i++) mrl__putc(buf, size, &at, m->context[i] ? '+' : '-');
  mrl__putc(buf, size, &at, '\n');
  return (int)at;
}

static mrl_env *mrl__mchain_make(const char *id) {
  const char *p = id + 12;
  long len, bits = 1;
  mrl_env_vtable vt;
  mrl__mchain *m;
  if (strncmp(id, "MemoryChain-", 12) != 0) return NULL;
  if (!mrl__parse_uint(&p, &len, 100000L) || len < 1) return NULL;
  if (*p == '-') {
    p++;
    if (!mrl__parse_uint(&p, &bits, 1000L) || bits < 1) return NULL;
  }
  if (*p != '\0') return NULL;
  vt = mrl__env_vtable(id, (int)bits + 2, 2);
  vt.reset = mrl__mchain_reset;
  vt.step = mrl__mchain_step;
  vt.render = mrl__mchain_render;
  vt.episode_success = mrl__mchain_success;
  m = (mrl__mchain *)mrl__env_state(sizeof(mrl__mchain) + (size_t)bits);
  if (m) {
    m->length = (int)len;
    m->bits = (int)bits;
  }
  return mrl__env_finish(&vt, m);
}

MRL_DEF float mrl_memory_chain_score(const long long *episodes, const long long *perfect,
                                     int num_settings) {
  int i, learned = 0;
  if (!episodes || !perfect || num_settings < 1) return 0.0f;
  for (i = 0; i < num_settings; i++) {
    /* regret ratio over the episodes, per episode: (1 - accuracy) / 0.5 */
    double ratio =
        episodes[i] > 0 ? 2.0 * (double)(episodes[i] - perfect[i]) / (double)episodes[i] : 2.0;
    if (ratio < 0.75) learned++;
  }
  return (float)learned / (float)num_settings;
}

/* ---- NoisySequence-<T>[-<N>] ------------------------------------------- >>noisy_sequence */

typedef struct mrl__noisyseq {
  int length, signal, t, cls, success; /* cls: -1 or +1 */
  mrl_rng rng;
} mrl__noisyseq;

#define MRL__NS_SIGMA 0.44721359549995794 /* sqrt(0.2): noise variance 0.2 */

/* Observation t (0-based) of the episode: [x_t, query flag]. */
static void mrl__noisyseq_obs(mrl__noisyseq *s, float *obs) {
  double x = MRL__NS_SIGMA * (double)mrl_rng_normal(&s->rng);
  if (s->t < s->signal) x += (double)s->cls;
  obs[0] = (float)x;
  obs[1] = s->t == s->length - 1 ? 1.0f : 0.0f;
}

static mrl_result mrl__noisyseq_reset(void *self, uint64_t seed, float *obs) {
  mrl__noisyseq *s = (mrl__noisyseq *)self;
  s->rng = mrl_rng_make(seed);
  s->cls = mrl_rng_below(&s->rng, 2u) ? 1 : -1;
  s->t = 0;
  s->success = 0;
  mrl__noisyseq_obs(s, obs);
  return MRL_OK;
}

static mrl_result mrl__noisyseq_step(void *self, const float *action, float *obs, float *reward,
                                     int *terminated, int *truncated) {
  mrl__noisyseq *s = (mrl__noisyseq *)self;
  *truncated = 0;
  *reward = 0.0f;
  *terminated = 0;
  if (s->t == s->length - 1) { /* the query: action 0 names class -1, 1 class +1 */
    s->success = ((int)action[0] == 1) == (s->cls == 1);
    *reward = s->success ? 1.0f : -1.0f;
    *terminated = 1;
    obs[0] = obs[1] = 0.0f;
    return MRL_OK;
  }
  s->t++;
  mrl__noisyseq_obs(s, obs);
  return MRL_OK;
}

static int mrl__noisyseq_success(const void *self) {
  return ((const mrl__noisyseq *)self)->success;
}

static int mrl__noisyseq_render(const void *self, char *buf, size_t size) {
  const mrl__noisyseq *s = (const mrl__noisyseq *)self;
  return snprintf(buf, size, "t=%d/%d class=%+d %s\n", s->t + 1, s->length, s->cls,
                  s->t == s->length - 1 ? "query: name the class"
                  : s->t < s->signal    ? "signal + noise"
                                        : "noise");
}

static mrl_env *mrl__noisyseq_make(const char *id) {
  const char *p = id + 14;
  long len, sig = 3;
  mrl_env_vtable vt;
  mrl__noisyseq *s;
  if (strncmp(id, "NoisySequence-", 14) != 0) return NULL;
  if (!mrl__parse_uint(&p, &len, 1000000L) || len < 2) return NULL;
  if (*p == '-') {
    p++;
    if (!mrl__parse_uint(&p, &sig, 1000000L) || sig < 1) return NULL;
  }
  if (*p != '\0' || sig > len - 1) return NULL;
  vt = mrl__env_vtable(id, 2, 2);
  vt.reset = mrl__noisyseq_reset;
  vt.step = mrl__noisyseq_step;
  vt.render = mrl__noisyseq_render;
  vt.episode_success = mrl__noisyseq_success;
  s = (mrl__noisyseq *)mrl__env_state(sizeof(mrl__noisyseq));
  if (s) {
    s->length = (int)len;
    s->signal = (int)sig;
  }
  return mrl__env_finish(&vt, s);
}

/* ---- meta-RL as task inference (Humplik et al. 2019) -------------------- >>meta_rl */

/* Parses "<name>", "<name>-<a>" or "<name>-<a>-<b>" (each optional number
 * keeps its default when absent). 1 when id matches. */
static int mrl__parse_id2(const char *id, const char *name, long *a, long cap_a, long *b,
                          long cap_b) {
  size_t n = strlen(name);
  const char *p = id + n;
  long va = *a, vb = *b;
  if (strncmp(id, name, n) != 0) return 0;
  if (*p == '-') {
    p++;
    if (!mrl__parse_uint(&p, &va, cap_a)) return 0;
    if (*p == '-') {
      p++;
      if (!mrl__parse_uint(&p, &vb, cap_b)) return 0;
    }
  }
  if (*p != '\0') return 0;
  *a = va;
  *b = vb;
  return 1;
}

typedef struct mrl__mbandit {
  int arms, horizon, t, last_arm;
  float last_reward;
  mrl_rng rng;
  float p[1]; /* [arms], allocated with the struct */
} mrl__mbandit;

static void mrl__mbandit_obs(const mrl__mbandit *b, float *obs) {
  int i;
  for (i = 0; i < b->arms; i++) obs[i] = i == b->last_arm ? 1.0f : 0.0f;
  obs[b->arms] = b->last_reward;
  obs[b->arms + 1] = (float)b->t / (float)b->horizon;
}

static mrl_result mrl__mbandit_reset(void *self, uint64_t seed, float *obs) {
  mrl__mbandit *b = (mrl__mbandit *)self;
  int i;
  b->rng = mrl_rng_make(seed);
  for (i = 0; i < b->arms; i++) b->p[i] = mrl_rng_uniform(&b->rng);
  b->t = 0;
  b->last_arm = -1;
  b->last_reward = 0.0f;
  mrl__mbandit_obs(b, obs);
  return MRL_OK;
}

static mrl_result mrl__mbandit_step(void *self, const float *action, float *obs, float *reward,
                                    int *terminated, int *truncated) {
  mrl__mbandit *b = (mrl__mbandit *)self;
  int a = (int)action[0];
  b->last_reward = mrl_rng_uniform(&b->rng) < b->p[a] ? 1.0f : 0.0f;
  b->last_arm = a;
  b->t++;
  mrl__mbandit_obs(b, obs);
  *reward = b->last_reward;
  *terminated = 0;
  *truncated = 0; /* the wrapper's time limit (horizon) ends the episode */
  return MRL_OK;
}

static void mrl__mbandit_task(const void *self, float *out) {
  const mrl__mbandit *b = (const mrl__mbandit *)self;
  memcpy(out, b->p, (size_t)b->arms * sizeof(float));
}

static int mrl__mbandit_render(const void *self, char *buf, size_t size) {
  const mrl__mbandit *b = (const mrl__mbandit *)self;
  int i, best = 0;
  for (i = 1; i < b->arms; i++)
    if (b->p[i] > b->p[best]) best = i;
  return snprintf(buf, size, "t=%d/%d last arm=%d reward=%g best arm=%d (p=%.3f)\n", b->t,
                  b->horizon, b->last_arm, (double)b->last_reward, best, (double)b->p[best]);
}

static mrl_env *mrl__mbandit_make(const char *id) {
  long arms = 20, horizon = 100;
  mrl_env_vtable vt;
  mrl__mbandit *b;
  if (!mrl__parse_id2(id, "MetaBandit", &arms, 10000L, &horizon, 100000000L)) return NULL;
  if (arms < 2 || horizon < 1) return NULL;
  vt = mrl__env_vtable(id, (int)arms + 2, (int)arms);
  vt.reset = mrl__mbandit_reset;
  vt.step = mrl__mbandit_step;
  vt.render = mrl__mbandit_render;
  vt.task_dim = (int)arms;
  vt.task = mrl__mbandit_task;
  vt.max_episode_steps = (int)horizon;
  b = (mrl__mbandit *)mrl__env_state(sizeof(mrl__mbandit) + (size_t)arms * sizeof(float));
  if (b) {
    b->arms = (int)arms;
    b->horizon = (int)horizon;
  }
  return mrl__env_finish(&vt, b);
}

/* Semicircle: a point mass, a hidden goal on the unit upper semicircle. */
#define MRL__SC_STEP 0.1
#define MRL__SC_RADIUS 0.2

typedef struct mrl__semicircle {
  double x, y, gx, gy;
  int inside; /* within the goal radius after the last step */
} mrl__semicircle;

static mrl_result mrl__semicircle_reset(void *self, uint64_t seed, float *obs) {
  mrl__semicircle *s = (mrl__semicircle *)self;
  mrl_rng r = mrl_rng_make(seed);
  double phi = MRL__PI * (double)mrl_rng_uniform(&r);
  s->gx = cos(phi);
  s->gy = sin(phi);
  s->x = s->y = 0.0;
  s->inside = 0;
  obs[0] = obs[1] = 0.0f;
  return MRL_OK;
}

static mrl_result mrl__semicircle_step(void *self, const float *action, float *obs, float *reward,
                                       int *terminated, int *truncated) {
  mrl__semicircle *s = (mrl__semicircle *)self;
  double dx, dy;
  s->x += (double)action[0]; /* clipped to [-0.1, 0.1] by the wrapper */
  s->y += (double)action[1];
  dx = s->x - s->gx;
  dy = s->y - s->gy;
  s->inside = dx * dx + dy * dy <= MRL__SC_RADIUS * MRL__SC_RADIUS;
  obs[0] = (float)s->x;
  obs[1] = (float)s->y;
  *reward = s->inside ? (float)(1.0 - sqrt(dx * dx + dy * dy)) : 0.0f;
  *terminated = 0;
  *truncated = 0;
  return MRL_OK;
}

static void mrl__semicircle_task(const void *self, float *out) {
  const mrl__semicircle *s = (const mrl__semicircle *)self;
  out[0] = (float)s->gx;
  out[1] = (float)s->gy;
}

static int mrl__semicircle_render(const void *self, char *buf, size_t size) {
  const mrl__semicircle *s = (const mrl__semicircle *)self;
  /* 21 x 11 picture of [-1.25, 1.25] x [-0.25, 1.25]: A agent, G goal */
  size_t at = 0;
  int row, col;
  if (size > 0) buf[0] = '\0';
  for (row = 0; row < 11; row++) {
    for (col = 0; col < 21; col++) {
      double cx = -1.25 + (col + 0.5) * (2.5 / 21.0), cy = 1.25 - (row + 0.5) * (1.5 / 11.0);
      double hw = 1.25 / 21.0, hh = 0.75 / 11.0;
      char ch = '.';
      if (fabs(s->gx - cx) <= hw && fabs(s->gy - cy) <= hh) ch = 'G';
      if (fabs(s->x - cx) <= hw && fabs(s->y - cy) <= hh) ch = 'A';
      mrl__putc(buf, size, &at, ch);
    }
    mrl__putc(buf, size, &at, '\n');
  }
  return (int)at;
}

static mrl_env *mrl__semicircle_make(const char *id) {
  static const float lo[2] = {-(float)MRL__SC_STEP, -(float)MRL__SC_STEP};
  static const float hi[2] = {(float)MRL__SC_STEP, (float)MRL__SC_STEP};
  long horizon = 100, unused = 0;
  mrl_env_vtable vt;
  if (!mrl__parse_id2(id, "Semicircle", &horizon, 100000000L, &unused, 0L)) return NULL;
  if (horizon < 1 || (strlen(id) > 11 && strchr(id + 11, '-'))) return NULL; /* one number */
  vt = mrl__env_vtable(id, 2, 0);
  vt.action_dim = 2;
  vt.action_low = lo;
  vt.action_high = hi;
  vt.reset = mrl__semicircle_reset;
  vt.step = mrl__semicircle_step;
  vt.render = mrl__semicircle_render;
  vt.task_dim = 2;
  vt.task = mrl__semicircle_task;
  vt.max_episode_steps = (int)horizon;
  return mrl__env_finish(&vt, mrl__env_state(sizeof(mrl__semicircle)));
}

/* NumPad: press the tiles of a hidden sequence in order. */
#define MRL__NP_MAX 25 /* tiles of the largest pad, 5 x 5 */

typedef struct mrl__numpad {
  int n, len, k; /* pad side, sequence length, tiles pressed right so far */
  int seq[MRL__NP_MAX];
  int lit[MRL__NP_MAX];
  int completed; /* sequences completed this episode */
} mrl__numpad;

static void mrl__numpad_obs(const mrl__numpad *p, float *obs) {
  int i;
  for (i = 0; i < p->n * p->n; i++) obs[i] = (float)p->lit[i];
}

static mrl_result mrl__numpad_reset(void *self, uint64_t seed, float *obs) {
  mrl__numpad *p = (mrl__numpad *)self;
  mrl_rng r = mrl_rng_make(seed);
  int order[MRL__NP_MAX], i, tiles = p->n * p->n;
  /* a uniform sequence of distinct tiles: the first len of a Fisher-Yates
   * shuffle */
  for (i = 0; i < tiles; i++) order[i] = i;
  for (i = 0; i < p->len; i++) {
    int j = i + (int)mrl_rng_below(&r, (uint32_t)(tiles - i)), tmp = order[i];
    order[i] = order[j];
    order[j] = tmp;
    p->seq[i] = order[i];
  }
  memset(p->lit, 0, sizeof p->lit);
  p->k = 0;
  p->completed = 0;
  mrl__numpad_obs(p, obs);
  return MRL_OK;
}

static mrl_result mrl__numpad_step(void *self, const float *action, float *obs, float *reward,
                                   int *terminated, int *truncated) {
  mrl__numpad *p = (mrl__numpad *)self;
  int a = (int)action[0];
  *reward = 0.0f;
  if (p->lit[a]) {
    /* pressing a lit tile changes nothing */
  } else if (a == p->seq[p->k]) {
    p->lit[a] = 1;
    p->k++;
    *reward = 1.0f;
    if (p->k == p->len) { /* done: lights off, the same sequence again */
      p->completed++;
      p->k = 0;
      memset(p->lit, 0, sizeof p->lit);
    }
  } else { /* a wrong tile: the lights go off */
    p->k = 0;
    memset(p->lit, 0, sizeof p->lit);
  }
  mrl__numpad_obs(p, obs);
  *terminated = 0;
  *truncated = 0;
  return MRL_OK;
}

static void mrl__numpad_task(const void *self, float *out) {
  const mrl__numpad *p = (const mrl__numpad *)self;
  int i;
  for (i = 0; i < p->len; i++) out[i] = (float)p->seq[i];
}

static int mrl__numpad_render(const void *self, char *buf, size_t size) {
  const mrl__numpad *p = (const mrl__numpad *)self;
  size_t at = 0;
  int i;
  char line[64];
  if (size > 0) buf[0] = '\0';
  for (i = 0; i < p->n * p->n; i++) {
    mrl__putc(buf, size, &at, p->lit[i] ? '*' : 'o');
    if (i % p->n == p->n - 1) mrl__putc(buf, size, &at, '\n');
  }
  snprintf(line, sizeof line, "pressed %d/%d, completed %d\n", p->k, p->len, p->completed);
  mrl__put(buf, size, &at, line);
  return (int)at;
}

static mrl_env *mrl__numpad_make(const char *id) {
  long n = 3, len = 3;
  mrl_env_vtable vt;
  mrl__numpad *p;
  if (!mrl__parse_id2(id, "NumPad", &n, 5L, &len, 25L)) return NULL;
  if (n < 2 || len < 1 || len > n * n) return NULL;
  vt = mrl__env_vtable(id, (int)(n * n), (int)(n * n));
  vt.reset = mrl__numpad_reset;
  vt.step = mrl__numpad_step;
  vt.render = mrl__numpad_render;
  vt.task_dim = (int)len;
  vt.task = mrl__numpad_task;
  vt.max_episode_steps = 100;
  p = (mrl__numpad *)mrl__env_state(sizeof(mrl__numpad));
  if (p) {
    p->n = (int)n;
    p->len = (int)len;
  }
  return mrl__env_finish(&vt, p);
}

/* ---- TreeMDP-<B>-<D>[-<world>] (episodic control) ----------------------- >>tree_mdp */

typedef struct mrl__tree {
  int branching, depth, d; /* d: depth of the current node */
  uint64_t world, node;    /* node: index within its level, base-B digits = path */
  int path[64];
} mrl__tree;

/* The documented leaf reward: 24 bits of a splitmix64 hash of (world,
 * leaf), in [0, 1). */
static float mrl__tree_leaf_reward(uint64_t world, uint64_t leaf) {
  return (float)(mrl_vecenv_episode_seed(world, 0, leaf) >> 40) * (1.0f / 16777216.0f);
}

static void mrl__tree_obs(const mrl__tree *t, float *obs) {
  int i;
  for (i = 0; i < t->depth; i++)
    obs[i] = i < t->d ? (float)(t->path[i] + 1) / (float)t->branching : 0.0f;
}

static mrl_result mrl__tree_reset(void *self, uint64_t seed, float *obs) {
  mrl__tree *t = (mrl__tree *)self;
  (void)seed; /* every episode starts at the root of the same tree */
  t->d = 0;
  t->node = 0;
  mrl__tree_obs(t, obs);
  return MRL_OK;
}

static mrl_result mrl__tree_step(void *self, const float *action, float *obs, float *reward,
                                 int *terminated, int *truncated) {
  mrl__tree *t = (mrl__tree *)self;
  int a = (int)action[0];
  t->path[t->d++] = a;
  t->node = t->node * (uint64_t)t->branching + (uint64_t)a;
  *terminated = t->d == t->depth;
  *reward = *terminated ? mrl__tree_leaf_reward(t->world, t->node) : 0.0f;
  *truncated = 0;
  mrl__tree_obs(t, obs);
  return MRL_OK;
}

static int mrl__tree_render(const void *self, char *buf, size_t size) {
  const mrl__tree *t = (const mrl__tree *)self;
  size_t at = 0;
  int i;
  char num[32];
  if (size > 0) buf[0] = '\0';
  snprintf(num, sizeof num, "depth %d/%d path", t->d, t->depth);
  mrl__put(buf, size, &at, num);
  if (t->d == 0) mrl__put(buf, size, &at, " (root)");
  for (i = 0; i < t->d; i++) {
    snprintf(num, sizeof num, " %d", t->path[i]);
    mrl__put(buf, size, &at, num);
  }
  if (t->d == t->depth) {
    snprintf(num, sizeof num, " leaf reward %.4f",
             (double)mrl__tree_leaf_reward(t->world, t->node));
    mrl__put(buf, size, &at, num);
  }
  mrl__putc(buf, size, &at, '\n');
  return (int)at;
}

static mrl_env *mrl__tree_make(const char *id) {
  const char *p = id + 8;
  long b, d, world = 0;
  double leaves;
  mrl_env_vtable vt;
  mrl__tree *t;
  if (strncmp(id, "TreeMDP-", 8) != 0) return NULL;
  if (!mrl__parse_uint(&p, &b, 64L) || b < 2 || *p++ != '-') return NULL;
  if (!mrl__parse_uint(&p, &d, 62L) || d < 1) return NULL;
  if (*p == '-') {
    p++;
    if (!mrl__parse_uint(&p, &world, 1000000000L)) return NULL;
  }
  if (*p != '\0') return NULL;
  leaves = pow((double)b, (double)d);
  if (leaves > 4611686018427387904.0) return NULL; /* 2^62 leaves at most */
  vt = mrl__env_vtable(id, (int)d, (int)b);
  vt.reset = mrl__tree_reset;
  vt.step = mrl__tree_step;
  vt.render = mrl__tree_render;
  t = (mrl__tree *)mrl__env_state(sizeof(mrl__tree));
  if (t) {
    t->branching = (int)b;
    t->depth = (int)d;
    t->world = (uint64_t)world;
  }
  return mrl__env_finish(&vt, t);
}

/* ---- SFGrid (successor features and GPI, Barreto et al. 2017) ------------ >>sfgrid */

#define MRL__SF_H 11
#define MRL__SF_W 11
#define MRL__SF_OBJECTS 12
#define MRL__SF_FEATURES 4 /* object types a, b, c and the goal */

/* Four rooms; a, b, c objects (one of each per room), S start, G goal. */
static const char mrl__sf_map[MRL__SF_H][MRL__SF_W + 1] = {
    "###########", "#a..#b...c#", "#...#.....#", "#.b......a#", "#..c#.....#", "##.###.####",
    "#b..#..c..#", "#.......a.#", "#.a.#....G#", "#S.c#b....#", "###########"};

typedef struct mrl__sfgrid {
  int r, c, reached;
  int obj_r[MRL__SF_OBJECTS], obj_c[MRL__SF_OBJECTS], obj_type[MRL__SF_OBJECTS];
  int present[MRL__SF_OBJECTS];
  float phi[MRL__SF_FEATURES]; /* features of the last transition */
  float w[MRL__SF_FEATURES];
} mrl__sfgrid;

static void mrl__sfgrid_obs(const mrl__sfgrid *s, float *obs) {
  int i;
  obs[0] = (float)s->r / (float)(MRL__SF_H - 1);
  obs[1] = (float)s->c / (float)(MRL__SF_W - 1);
  for (i = 0; i < MRL__SF_OBJECTS; i++) obs[2 + i] = (float)s->present[i];
}

static mrl_result mrl__sfgrid_reset(void *self, uint64_t seed, float *obs) {
  mrl__sfgrid *s = (mrl__sfgrid *)self;
  int r, c, k = 0;
  (void)seed; /* the layout is fixed; every episode is the same start */
  for (r = 0; r < MRL__SF_H; r++)
    for (c = 0; c < MRL__SF_W; c++) {
      char ch = mrl__sf_map[r][c];
      if (ch == 'S') {
        s->r = r;
        s->c = c;
      } else if (ch >= 'a' && ch <= 'c') {
        s->obj_r[k] = r;
        s->obj_c[k] = c;
        s->obj_type[k] = ch - 'a';
        s->present[k++] = 1;
      }
    }
  s->reached = 0;
  memset(s->phi, 0, sizeof s->phi);
  mrl__sfgrid_obs(s, obs);
  return MRL_OK;
}

static mrl_result mrl__sfgrid_step(void *self, const float *action, float *obs, float *reward,
                                   int *terminated, int *truncated) {
  static const int dr[4] = {-1, 0, 1, 0}, dc[4] = {0, 1, 0, -1};
  mrl__sfgrid *s = (mrl__sfgrid *)self;
  int a = (int)action[0], nr = s->r + dr[a], nc = s->c + dc[a], i;
  float rew = 0.0f;
  memset(s->phi, 0, sizeof s->phi);
  if (mrl__sf_map[nr][nc] != '#') {
    s->r = nr;
    s->c = nc;
  }
  for (i = 0; i < MRL__SF_OBJECTS; i++)
    if (s->present[i] && s->obj_r[i] == s->r && s->obj_c[i] == s->c) {
      s->present[i] = 0;
      s->phi[s->obj_type[i]] = 1.0f;
    }
  if (mrl__sf_map[s->r][s->c] == 'G') {
    s->phi[3] = 1.0f;
    s->reached = 1;
  }
  for (i = 0; i < MRL__SF_FEATURES; i++) rew += s->phi[i] * s->w[i];
  *reward = rew;
  *terminated = s->reached;
  *truncated = 0;
  mrl__sfgrid_obs(s, obs);
  return MRL_OK;
}

static int mrl__sfgrid_success(const void *self) {
  return ((const mrl__sfgrid *)self)->reached;
}

static void mrl__sfgrid_task(const void *self, float *out) {
  memcpy(out, ((const mrl__sfgrid *)self)->w, sizeof(float) * MRL__SF_FEATURES);
}

static int mrl__sfgrid_render(const void *self, char *buf, size_t size) {
  const mrl__sfgrid *s = (const mrl__sfgrid *)self;
  size_t at = 0;
  int r, c, i;
  if (size > 0) buf[0] = '\0';
  for (r = 0; r < MRL__SF_H; r++) {
    for (c = 0; c < MRL__SF_W; c++) {
      char ch = mrl__sf_map[r][c];
      if (ch != '#' && ch != 'G') ch = '.';
      for (i = 0; i < MRL__SF_OBJECTS; i++)
        if (s->present[i] && s->obj_r[i] == r && s->obj_c[i] == c)
          ch = (char)('a' + s->obj_type[i]);
      if (r == s->r && c == s->c) ch = 'A';
      mrl__putc(buf, size, &at, ch);
    }
    mrl__putc(buf, size, &at, '\n');
  }
  return (int)at;
}

static mrl_env *mrl__sfgrid_make(const char *id) {
  mrl_env_vtable vt;
  mrl__sfgrid *s;
  if (strcmp(id, "SFGrid") != 0) return NULL;
  vt = mrl__env_vtable(id, 2 + MRL__SF_OBJECTS, 4);
  vt.reset = mrl__sfgrid_reset;
  vt.step = mrl__sfgrid_step;
  vt.render = mrl__sfgrid_render;
  vt.episode_success = mrl__sfgrid_success;
  vt.task_dim = MRL__SF_FEATURES;
  vt.task = mrl__sfgrid_task;
  vt.max_episode_steps = 200;
  s = (mrl__sfgrid *)mrl__env_state(sizeof(mrl__sfgrid));
  if (s) {
    s->w[0] = 1.0f; /* default task w = (1, -1, 0, 1) */
    s->w[1] = -1.0f;
    s->w[2] = 0.0f;
    s->w[3] = 1.0f;
  }
  return mrl__env_finish(&vt, s);
}

MRL_DEF int mrl_sfgrid_features(const mrl_env *env, float *phi) {
  if (!env || env->vt.step != mrl__sfgrid_step) return 0;
  if (phi) memcpy(phi, ((const mrl__sfgrid *)env->self)->phi, sizeof(float) * MRL__SF_FEATURES);
  return MRL__SF_FEATURES;
}

MRL_DEF mrl_result mrl_sfgrid_set_task(mrl_env *env, const float *w) {
  int i;
  if (!env || env->vt.step != mrl__sfgrid_step || !w) return MRL_ERR_INVALID_ARGUMENT;
  for (i = 0; i < MRL__SF_FEATURES; i++)
    if (w[i] - w[i] != 0.0f) return MRL_ERR_INVALID_ARGUMENT; /* NaN or infinite */
  memcpy(((mrl__sfgrid *)env->self)->w, w, sizeof(float) * MRL__SF_FEATURES);
  return MRL_OK;
}

/* ---- Catch (bsuite) ------------------------------------------------------ >>catch */

typedef struct mrl__catch {
  int rows, cols, ball_x, ball_y, paddle_x, success;
} mrl__catch;

static void mrl__catch_obs(const mrl__catch *c, float *obs) {
  memset(obs, 0, (size_t)(c->rows * c->cols) * sizeof(float));
  obs[c->ball_y * c->cols + c->ball_x] = 1.0f;
  obs[(c->rows - 1) * c->cols + c->paddle_x] = 1.0f;
}

static mrl_result mrl__catch_reset(void *self, uint64_t seed, float *obs) {
  mrl__catch *c = (mrl__catch *)self;
  mrl_rng r = mrl_rng_make(seed);
  c->ball_x = (int)mrl_rng_below(&r, (uint32_t)c->cols);
  c->ball_y = 0;
  c->paddle_x = c->cols / 2;
  c->success = 0;
  mrl__catch_obs(c, obs);
  return MRL_OK;
}

static mrl_result mrl__catch_step(void *self, const float *action, float *obs, float *reward,
                                  int *terminated, int *truncated) {
  mrl__catch *c = (mrl__catch *)self;
  int x = c->paddle_x + (int)action[0] - 1; /* 0 left, 1 stay, 2 right */
  c->paddle_x = x < 0 ? 0 : x > c->cols - 1 ? c->cols - 1 : x;
  c->ball_y++;
  *terminated = c->ball_y == c->rows - 1;
  *reward = 0.0f;
  if (*terminated) {
    c->success = c->paddle_x == c->ball_x;
    *reward = c->success ? 1.0f : -1.0f;
  }
  *truncated = 0;
  mrl__catch_obs(c, obs);
  return MRL_OK;
}

static int mrl__catch_success(const void *self) {
  return ((const mrl__catch *)self)->success;
}

static int mrl__catch_render(const void *self, char *buf, size_t size) {
  const mrl__catch *c = (const mrl__catch *)self;
  size_t at = 0;
  int r, x;
  if (size > 0) buf[0] = '\0';
  for (r = 0; r < c->rows; r++) {
    for (x = 0; x < c->cols; x++) {
      char ch = '.';
      if (r == c->rows - 1 && x == c->paddle_x) ch = '=';
      if (r == c->ball_y && x == c->ball_x) ch = r == c->rows - 1 ? '*' : 'o';
      mrl__putc(buf, size, &at, ch);
    }
    mrl__putc(buf, size, &at, '\n');
  }
  return (int)at;
}

static mrl_env *mrl__catch_make(const char *id) {
  long rows = 10, cols = 5;
  mrl_env_vtable vt;
  mrl__catch *c;
  if (!mrl__parse_id2(id, "Catch", &rows, 1000L, &cols, 1000L)) return NULL;
  if (strcmp(id, "Catch") != 0 && strchr(id + 6, '-') == NULL) return NULL; /* both or none */
  if (rows < 2 || cols < 1) return NULL;
  vt = mrl__env_vtable(id, (int)(rows * cols), 3);
  vt.reset = mrl__catch_reset;
  vt.step = mrl__catch_step;
  vt.render = mrl__catch_render;
  vt.episode_success = mrl__catch_success;
  c = (mrl__catch *)mrl__env_state(sizeof(mrl__catch));
  if (c) {
    c->rows = (int)rows;
    c->cols = (int)cols;
  }
  return mrl__env_finish(&vt, c);
}

/* ---- PassiveVisualMatch[-<distractor_steps>] (Hung et al. 2019) ---------- >>visual_match */
/* Rules of the pycolab port of Ni et al. 2023 (visual_match.py with its
 * passive explore grid, common.py, objects.py) on pycolab's frame counting:
 * a phase starts at frame 0, each step is one frame, a phase of n steps
 * ends on its frame n and the step returns the next phase's first frame. */

#define MRL__VM_H 7
#define MRL__VM_W 11
#define MRL__VM_PLANE (MRL__VM_H * MRL__VM_W)
#define MRL__VM_VIEW 5 /* side of the cropped view */
#define MRL__VM_C 6    /* planes: wall, agent, apple, colour 0, colour 1, colour 2 */
#define MRL__VM_APPLES 10
#define MRL__VM_APPLE_CELLS 22
#define MRL__VM_EXPLORE_STEPS 15
#define MRL__VM_REWARD_STEPS 15
#define MRL__VM_RESPAWN 20 /* an apple eaten on frame f is back on frame f + 21 */
#define MRL__VM_FINAL_REWARD 10.0f

enum { MRL__VM_EXPLORE, MRL__VM_DISTRACTOR, MRL__VM_REWARD };

static const char mrl__vm_apple_room[MRL__VM_H][MRL__VM_W + 1] = {
    "###########", "#         #", "#         #", "#         #",
    "#         #", "#         #", "###########"};
static const char mrl__vm_reward_room[MRL__VM_H][MRL__VM_W + 1] = {
    "###########", "#         #", "#         #", "#         #",
    "####   ####", "   #   #   ", "   #####   "};

typedef struct mrl__vmatch {
  int distractor;          /* steps of the distractor phase */
  int crop;                /* observe the 5 x 5 window around the agent */
  int phase, t;            /* MRL__VM_*; t: steps taken in the phase */
  int r, c;                /* the agent */
  int target, target_cell; /* colour 0..2; its cell of the box, 0..7 */
  int apple_cell[MRL__VM_APPLES], eaten_at[MRL__VM_APPLES]; /* eaten_at -1: shown */
  int doors_shown, success;
  mrl_rng rng;
} mrl__vmatch;

/* What lies at (r, c) in the current phase, agent and apples aside: '#' a
 * wall, ' ' floor, '0' + k colour k. */
static char mrl__vm_cell(const mrl__vmatch *m, int r, int c) {
  if (m->phase == MRL__VM_EXPLORE) {
    int k;
    if (r < 1 || r > 3 || c < 4 || c > 6 || (r == 2 && c == 5)) return ' ';
    k = (r - 1) * 3 + (c - 4); /* the box's cells, row-major, centre left out */
    if (k > 4) k--;
    return k == m->target_cell ? (char)('0' + m->target) : '#';
  }
  if (m->phase == MRL__VM_DISTRACTOR) return mrl__vm_apple_room[r][c];
  if (m->doors_shown && r == 1 && (c == 2 || c == 5 || c == 8)) return (char)('0' + (c - 2) / 3);
  return mrl__vm_reward_room[r][c];
}

/* Cell index of colour k's door in the reward room: (1, 2 + 3k). */
static int mrl__vm_door_at(int k) {
  return MRL__VM_W + 2 + 3 * k;
}

/* Sets the plane of what (mrl__vm_cell's code) at cell index at, for
 * planes of plane floats. */
static void mrl__vm_paint(float *obs, int plane, int at, char what) {
  if (what == '#') obs[at] = 1.0f;
  if (what >= '0' && what <= '2') obs[(3 + what - '0') * plane + at] = 1.0f;
}

static void mrl__vmatch_obs(const mrl__vmatch *m, float *obs) {
  int r, c, i;
  memset(obs, 0, sizeof(float) * (size_t)(MRL__VM_C * MRL__VM_PLANE));
  if (m->phase == MRL__VM_EXPLORE) {
    for (r = 1; r <= 3; r++) /* the box; the rest of the board is floor */
      for (c = 4; c <= 6; c++)
        mrl__vm_paint(obs, MRL__VM_PLANE, r * MRL__VM_W + c, mrl__vm_cell(m, r, c));
  } else {
    const char(*room)[MRL__VM_W + 1] =
        m->phase == MRL__VM_DISTRACTOR ? mrl__vm_apple_room : mrl__vm_reward_room;
    for (r = 0; r < MRL__VM_H; r++)
      for (c = 0; c < MRL__VM_W; c++) obs[r * MRL__VM_W + c] = room[r][c] == '#' ? 1.0f : 0.0f;
    if (m->doors_shown)
      for (i = 0; i < 3; i++) obs[(3 + i) * MRL__VM_PLANE + mrl__vm_door_at(i)] = 1.0f;
  }
  obs[MRL__VM_PLANE + m->r * MRL__VM_W + m->c] = 1.0f;
  if (m->phase == MRL__VM_DISTRACTOR)
    for (i = 0; i < MRL__VM_APPLES; i++)
      if (m->eaten_at[i] < 0) obs[2 * MRL__VM_PLANE + m->apple_cell[i]] = 1.0f;
}

/* The observation: the whole board, or with crop the 5 x 5 window centred
 * on the agent (pycolab's ScrollingCropper with scroll margins 2 keeps the
 * agent in the centre), off-board cells empty. */
static void mrl__vmatch_view(const mrl__vmatch *m, float *obs) {
  const int half = MRL__VM_VIEW / 2, plane = MRL__VM_VIEW * MRL__VM_VIEW;
  int r, c, i;
  if (!m->crop) {
    mrl__vmatch_obs(m, obs);
    return;
  }
  memset(obs, 0, sizeof(float) * (size_t)(MRL__VM_C * plane));
  for (r = 0; r < MRL__VM_VIEW; r++)
    for (c = 0; c < MRL__VM_VIEW; c++) {
      int br = m->r - half + r, bc = m->c - half + c;
      if (br >= 0 && br < MRL__VM_H && bc >= 0 && bc < MRL__VM_W)
        mrl__vm_paint(obs, plane, r * MRL__VM_VIEW + c, mrl__vm_cell(m, br, bc));
    }
  obs[plane + half * MRL__VM_VIEW + half] = 1.0f;
  if (m->phase == MRL__VM_DISTRACTOR)
    for (i = 0; i < MRL__VM_APPLES; i++) {
      int dr = m->apple_cell[i] / MRL__VM_W - m->r, dc = m->apple_cell[i] % MRL__VM_W - m->c;
      if (m->eaten_at[i] < 0 && dr >= -half && dr <= half && dc >= -half && dc <= half)
        obs[2 * plane + (dr + half) * MRL__VM_VIEW + dc + half] = 1.0f;
    }
}

static void mrl__vmatch_enter(mrl__vmatch *m, int phase) {
  m->phase = phase;
  m->t = 0;
  m->r = phase == MRL__VM_EXPLORE ? 2 : 5;
  m->c = 5;
  if (phase == MRL__VM_DISTRACTOR) {
    /* 10 of the 22 apple cells of the source's grid: the checkerboard cells
     * (r + c even) of the room but the agent's start */
    int cells[MRL__VM_APPLE_CELLS], n = 0, r, c, i;
    for (r = 1; r <= 5; r++)
      for (c = 1; c <= 9; c++)
        if ((r + c) % 2 == 0 && !(r == 5 && c == 5)) cells[n++] = r * MRL__VM_W + c;
    for (i = 0; i < MRL__VM_APPLES; i++) { /* a partial Fisher-Yates shuffle */
      int j = i + (int)mrl_rng_below(&m->rng, (uint32_t)(n - i)), tmp = cells[i];
      cells[i] = cells[j];
      cells[j] = tmp;
      m->apple_cell[i] = cells[i];
      m->eaten_at[i] = -1;
    }
  }
  m->doors_shown = phase == MRL__VM_REWARD;
}

static mrl_result mrl__vmatch_reset(void *self, uint64_t seed, float *obs) {
  mrl__vmatch *m = (mrl__vmatch *)self;
  m->rng = mrl_rng_make(seed);
  m->target = (int)mrl_rng_below(&m->rng, 3u);
  m->target_cell = (int)mrl_rng_below(&m->rng, 8u);
  m->success = 0;
  mrl__vmatch_enter(m, MRL__VM_EXPLORE);
  mrl__vmatch_view(m, obs);
  return MRL_OK;
}

/* delta: obs holds the observation of the previous step (step_delta); within
 * a phase only the agent's move, the apples eaten or back and the doors
 * vanishing are written. */
static mrl_result mrl__vmatch_step_any(void *self, const float *action, float *obs, float *reward,
                                       int *terminated, int *truncated, int delta) {
  static const int dr[4] = {-1, 1, 0, 0}, dc[4] = {0, 0, -1, 1}; /* N S W E */
  mrl__vmatch *m = (mrl__vmatch *)self;
  int a = (int)action[0], nr = m->r + dr[a], nc = m->c + dc[a], i, k;
  int phase = m->phase, r0 = m->r, c0 = m->c, doors = m->doors_shown;
  int shown[MRL__VM_APPLES];
  char into;
  for (i = 0; i < MRL__VM_APPLES; i++) shown[i] = m->eaten_at[i] < 0;
  *reward = 0.0f;
  *terminated = 0;
  *truncated = 0;
  m->t++;
  into = nr < 0 || nr >= MRL__VM_H || nc < 0 || nc >= MRL__VM_W ? '#' : mrl__vm_cell(m, nr, nc);
  if (into == ' ' || (into != '#' && m->phase == MRL__VM_REWARD)) { /* colours block the box */
    m->r = nr;
    m->c = nc;
  }
  if (m->phase == MRL__VM_DISTRACTOR) {
    for (i = 0; i < MRL__VM_APPLES; i++) /* eat, then the drape's respawn */
      if (m->eaten_at[i] < 0 && m->apple_cell[i] == m->r * MRL__VM_W + m->c) {
        *reward += 1.0f;
        m->eaten_at[i] = m->t;
      }
    for (i = 0; i < MRL__VM_APPLES; i++)
      if (m->eaten_at[i] >= 0 && m->t > m->eaten_at[i] + MRL__VM_RESPAWN) m->eaten_at[i] = -1;
  } else if (m->phase == MRL__VM_REWARD && into >= '0' && into <= '2') {
    m->success = into - '0' == m->target; /* touching any colour removes all three */
    *reward = m->success ? MRL__VM_FINAL_REWARD : 0.0f;
    m->doors_shown = 0;
  }
  if (m->phase == MRL__VM_EXPLORE && m->t == MRL__VM_EXPLORE_STEPS)
    mrl__vmatch_enter(m, m->distractor > 0 ? MRL__VM_DISTRACTOR : MRL__VM_REWARD);
  else if (m->phase == MRL__VM_DISTRACTOR && m->t == m->distractor)
    mrl__vmatch_enter(m, MRL__VM_REWARD);
  else if (m->phase == MRL__VM_REWARD && m->t == MRL__VM_REWARD_STEPS)
    *terminated = 1;
  if (!delta || m->phase != phase) { /* crop has no step_delta */
    mrl__vmatch_view(m, obs);
    return MRL_OK;
  }
  obs[MRL__VM_PLANE + r0 * MRL__VM_W + c0] = 0.0f;
  obs[MRL__VM_PLANE + m->r * MRL__VM_W + m->c] = 1.0f;
  for (i = 0; i < MRL__VM_APPLES; i++)
    if (shown[i] != (m->eaten_at[i] < 0))
      obs[2 * MRL__VM_PLANE + m->apple_cell[i]] = shown[i] ? 0.0f : 1.0f;
  if (doors && !m->doors_shown)
    for (k = 0; k < 3; k++) obs[(3 + k) * MRL__VM_PLANE + mrl__vm_door_at(k)] = 0.0f;
  return MRL_OK;
}

static mrl_result mrl__vmatch_step(void *self, const float *action, float *obs, float *reward,
                                   int *terminated, int *truncated) {
  return mrl__vmatch_step_any(self, action, obs, reward, terminated, truncated, 0);
}

static mrl_result mrl__vmatch_step_delta(void *self, const float *action, float *obs, float *reward,
                                         int *terminated, int *truncated) {
  return mrl__vmatch_step_any(self, action, obs, reward, terminated, truncated, 1);
}

static int mrl__vmatch_success(const void *self) {
  return ((const mrl__vmatch *)self)->success;
}

static int mrl__vmatch_render(const void *self, char *buf, size_t size) {
  const mrl__vmatch *m = (const mrl__vmatch *)self;
  const int len[3] = {MRL__VM_EXPLORE_STEPS, m->distractor, MRL__VM_REWARD_STEPS};
  size_t at = 0;
  int r, c, i;
  char head[64];
  if (size > 0) buf[0] = '\0';
  snprintf(head, sizeof head, "phase %d/3 step %d/%d\n", m->phase + 1, m->t, len[m->phase]);
  mrl__put(buf, size, &at, head);
  for (r = 0; r < MRL__VM_H; r++) {
    for (c = 0; c < MRL__VM_W; c++) {
      char what = mrl__vm_cell(m, r, c), ch = what == ' '   ? '.'
                                              : what == '#' ? '#'
                                                            : "RGB"[what - '0'];
      if (m->phase == MRL__VM_DISTRACTOR)
        for (i = 0; i < MRL__VM_APPLES; i++)
          if (m->eaten_at[i] < 0 && m->apple_cell[i] == r * MRL__VM_W + c) ch = '@';
      if (r == m->r && c == m->c) ch = 'A';
      mrl__putc(buf, size, &at, ch);
    }
    mrl__putc(buf, size, &at, '\n');
  }
  return (int)at;
}

/* ---- POPGym (Morad et al. 2023): shared pieces ---------------------------- >>popgym_common */
/* Facts follow POPGym's source (github.com/proroklab/popgym, popgym/envs and
 * popgym/core/deck.py); the rules and every deviation are in the doc block. */

#define MRL__POPGYM_MAX_CARDS (16 * 52) /* RepeatFirstHard */

/* Card c of a POPGym deck of num_decks * 52 cards, laid out as POPGym's Deck
 * lays them out: suit c % 4 (s, d, c, h), rank (c % 52) / 4 (A .. K), colour
 * c % 2. */
static int mrl__card_suit(int c) {
  return c & 3;
}
static int mrl__card_rank(int c) {
  return (c % 52) >> 2;
}
static int mrl__card_color(int c) {
  return c & 1;
}
static char mrl__card_suit_char(int c) {
  return "sdch"[c & 3];
}
static char mrl__card_rank_char(int c) {
  return "A23456789TJQK"[(c % 52) >> 2];
}

/* cards[0..n) = a uniform permutation of 0..n-1 (Fisher-Yates); dealt in
 * index order. */
static void mrl__deck_shuffle(uint16_t *cards, int n, mrl_rng *r) {
  int i;
  for (i = 0; i < n; i++) cards[i] = (uint16_t)i;
  for (i = n - 1; i > 0; i--) {
    int j = (int)mrl_rng_below(r, (uint32_t)(i + 1));
    uint16_t t = cards[i];
    cards[i] = cards[j];
    cards[j] = t;
  }
}

static void mrl__one_hot(float *out, int n, int index) {
  int i;
  for (i = 0; i < n; i++) out[i] = 0.0f;
  if (index >= 0 && index < n) out[index] = 1.0f;
}

/* Difficulty of a POPGym id "[popgym-]<name><Easy|Medium|Hard>-v0": 0, 1, 2,
 * or -1 when id is not of this family. */
static int mrl__popgym_level(const char *id, const char *name) {
  static const char levels[3][8] = {"Easy", "Medium", "Hard"};
  size_t n = strlen(name);
  int k;
  if (strncmp(id, "popgym-", 7) == 0) id += 7;
  if (strncmp(id, name, n) != 0) return -1;
  id += n;
  for (k = 0; k < 3; k++) {
    size_t m = strlen(levels[k]);
    if (strncmp(id, levels[k], m) == 0 && strcmp(id + m, "-v0") == 0) return k;
  }
  return -1;
}

/* Appends printf output to buf at *at (snprintf semantics over the whole). */
static void mrl__render_put(char *buf, size_t size, size_t *at, const char *fmt, ...) {
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(*at < size ? buf + *at : NULL, *at < size ? size - *at : 0, fmt, ap);
  va_end(ap);
  if (n > 0) *at += (size_t)n;
}

/* ---- POPGym RepeatFirst / RepeatPrevious ---------------------------------- >>popgym_repeat */

typedef struct mrl__repeat {
  int num_cards; /* 52 * decks */
  int k;         /* RepeatPrevious: the target is the k-th most recent card; 0: RepeatFirst */
  int t;         /* steps taken; cards dealt = t + 1 */
  uint16_t cards[MRL__POPGYM_MAX_CARDS];
} mrl__repeat;

static mrl_result mrl__repeat_reset(void *self, uint64_t seed, float *obs) {
  mrl__repeat *s = (mrl__repeat *)self;
  mrl_rng r = mrl_rng_make(seed);
  mrl__deck_shuffle(s->cards, s->num_cards, &r);
  s->t = 0;
  mrl__one_hot(obs, 4, mrl__card_suit(s->cards[0]));
  return MRL_OK;
}

static mrl_result mrl__repeat_step(void *self, const float *action, float *obs, float *reward,
                                   int *terminated, int *truncated) {
  mrl__repeat *s = (mrl__repeat *)self;
  int a = (int)action[0], t = ++s->t; /* hand before this deal: cards[0 .. t-1] */
  *reward = 0.0f;
  if (s->k == 0) {
    float scale = 1.0f / (float)(s->num_cards - 1);
    *reward = a == mrl__card_suit(s->cards[0]) ? scale : -scale;
  } else if (t >= s->k) {
    float scale = 1.0f / (float)(s->num_cards - s->k);
    *reward = a == mrl__card_suit(s->cards[t - s->k]) ? scale : -scale;
  }
  mrl__one_hot(obs, 4, mrl__card_suit(s->cards[t]));
  *terminated = t >= s->num_cards - 1; /* the deck is empty */
  *truncated = 0;
  return MRL_OK;
}

static int mrl__repeat_render(const void *self, char *buf, size_t size) {
  const mrl__repeat *s = (const mrl__repeat *)self;
  size_t at = 0;
  int i, from = s->t - 7 < 0 ? 0 : s->t - 7;
  if (size > 0) buf[0] = '\0';
  mrl__render_put(buf, size, &at, "card %d/%d  seen:", s->t + 1, s->num_cards);
  if (from > 0) mrl__render_put(buf, size, &at, " ...");
  for (i = from; i <= s->t; i++)
    mrl__render_put(buf, size, &at, " %c%c", mrl__card_rank_char(s->cards[i]),
                    mrl__card_suit_char(s->cards[i]));
  if (s->k == 0)
    mrl__render_put(buf, size, &at, "  answer: suit of the first card (%c)\n",
                    mrl__card_suit_char(s->cards[0]));
  else if (s->t + 1 >= s->k)
    mrl__render_put(buf, size, &at, "  answer next: suit of card %d (%c)\n", s->t + 2 - s->k,
                    mrl__card_suit_char(s->cards[s->t + 1 - s->k]));
  else
    mrl__render_put(buf, size, &at, "  answer next: any (not scored)\n");
  return (int)at;
}

static mrl_env *mrl__repeat_make(const char *id) {
  static const int first_decks[3] = {1, 8, 16};
  static const int prev_decks[3] = {1, 2, 3}, prev_k[3] = {4, 32, 64};
  int level = mrl__popgym_level(id, "RepeatFirst"), k = 0, decks;
  mrl_env_vtable vt;
  mrl__repeat *s;
  if (level >= 0) {
    decks = first_decks[level];
  } else {
    level = mrl__popgym_level(id, "RepeatPrevious");
    if (level < 0) return NULL;
    decks = prev_decks[level];
    k = prev_k[level];
  }
  vt = mrl__env_vtable(id, 4, 4);
  vt.reset = mrl__repeat_reset;
  vt.step = mrl__repeat_step;
  vt.render = mrl__repeat_render;
  vt.max_episode_steps = 52 * decks - 1;
  s = (mrl__repeat *)mrl__env_state(sizeof(mrl__repeat));
  if (s) {
    s->num_cards = 52 * decks;
    s->k = k;
  }
  return mrl__env_finish(&vt, s);
}

/* ---- POPGym Autoencode --------------------------------------------------- >>popgym_autoencode */

typedef struct mrl__autoencode {
  int num_cards;
  int dealt;   /* cards shown so far (watch phase) */
  int recited; /* answers given so far (play phase) */
  uint16_t cards[3 * 52];
} mrl__autoencode;

static mrl_result mrl__autoencode_reset(void *self, uint64_t seed, float *obs) {
  mrl__autoencode *s = (mrl__autoencode *)self;
  mrl_rng r = mrl_rng_make(seed);
  mrl__deck_shuffle(s->cards, s->num_cards, &r);
  s->dealt = 1;
  s->recited = 0;
  obs[0] = 0.0f; /* play */
  obs[1] = 1.0f; /* watch */
  mrl__one_hot(obs + 2, 4, mrl__card_suit(s->cards[0]));
  return MRL_OK;
}

static mrl_result mrl__autoencode_step(void *self, const float *action, float *obs, float *reward,
                                       int *terminated, int *truncated) {
  mrl__autoencode *s = (mrl__autoencode *)self;
  *truncated = 0;
  *terminated = 0;
  *reward = 0.0f;
  if (s->dealt < s->num_cards) { /* watch: the action is ignored */
    int c = s->cards[s->dealt++];
    int play = s->dealt == s->num_cards; /* the last card comes with the play flag */
    obs[0] = play ? 1.0f : 0.0f;
    obs[1] = play ? 0.0f : 1.0f;
    mrl__one_hot(obs + 2, 4, mrl__card_suit(c));
  } else { /* play: recite in reverse order */
    float scale = 1.0f / (float)s->num_cards;
    int c = s->cards[s->num_cards - 1 - s->recited++];
    *reward = (int)action[0] == mrl__card_suit(c) ? scale : -scale;
    *terminated = s->recited == s->num_cards;
    obs[0] = 1.0f;
    obs[1] = 0.0f;
    mrl__one_hot(obs + 2, 4, -1);
  }
  return MRL_OK;
}

static int mrl__autoencode_render(const void *self, char *buf, size_t size) {
  const mrl__autoencode *s = (const mrl__autoencode *)self;
  size_t at = 0;
  if (size > 0) buf[0] = '\0';
  if (s->dealt < s->num_cards)
    mrl__render_put(buf, size, &at, "watch: card %d/%d is %c%c\n", s->dealt, s->num_cards,
                    mrl__card_rank_char(s->cards[s->dealt - 1]),
                    mrl__card_suit_char(s->cards[s->dealt - 1]));
  else if (s->recited < s->num_cards)
    mrl__render_put(buf, size, &at, "play: %d/%d recited, next answer: suit %c\n", s->recited,
                    s->num_cards, mrl__card_suit_char(s->cards[s->num_cards - 1 - s->recited]));
  else
    mrl__render_put(buf, size, &at, "play: all %d cards recited\n", s->num_cards);
  return (int)at;
}

static mrl_env *mrl__autoencode_make(const char *id) {
  int level = mrl__popgym_level(id, "Autoencode");
  mrl_env_vtable vt;
  mrl__autoencode *s;
  if (level < 0) return NULL;
  vt = mrl__env_vtable(id, 6, 4);
  vt.reset = mrl__autoencode_reset;
  vt.step = mrl__autoencode_step;
  vt.render = mrl__autoencode_render;
  vt.max_episode_steps = 2 * 52 * (level + 1) - 1;
  s = (mrl__autoencode *)mrl__env_state(sizeof(mrl__autoencode));
  if (s) s->num_cards = 52 * (level + 1);
  return mrl__env_finish(&vt, s);
}

/* ---- POPGym CountRecall ------------------------------------------------ >>popgym_count_recall */

typedef struct mrl__count_recall {
  int num_cards, kind, distinct; /* kind 0 colours (2), 1 suits (4), 2 ranks (13) */
  int t;                         /* steps taken; cards dealt from each deck = t + 1 */
  int value, query;              /* of the current observation */
  int counts[13];                /* values dealt so far, per value */
  uint16_t values[4 * 52], queries[4 * 52];
} mrl__count_recall;

static int mrl__count_recall_of(const mrl__count_recall *s, int c) {
  return s->kind == 0 ? mrl__card_color(c) : s->kind == 1 ? mrl__card_suit(c) : mrl__card_rank(c);
}

static void mrl__count_recall_deal(mrl__count_recall *s, float *obs) {
  s->value = mrl__count_recall_of(s, s->values[s->t]);
  s->query = mrl__count_recall_of(s, s->queries[s->t]);
  s->counts[s->value]++;
  mrl__one_hot(obs, s->distinct, s->value);
  mrl__one_hot(obs + s->distinct, s->distinct, s->query);
}

static mrl_result mrl__count_recall_reset(void *self, uint64_t seed, float *obs) {
  mrl__count_recall *s = (mrl__count_recall *)self;
  mrl_rng r = mrl_rng_make(seed);
  mrl__deck_shuffle(s->values, s->num_cards, &r);
  mrl__deck_shuffle(s->queries, s->num_cards, &r);
  memset(s->counts, 0, sizeof s->counts);
  s->t = 0;
  mrl__count_recall_deal(s, obs);
  return MRL_OK;
}

static mrl_result mrl__count_recall_step(void *self, const float *action, float *obs, float *reward,
                                         int *terminated, int *truncated) {
  mrl__count_recall *s = (mrl__count_recall *)self;
  float scale = 1.0f / (float)(s->num_cards - 1);
  int answer = s->counts[s->query]; /* before the next card is counted */
  *reward = (int)action[0] == answer ? scale : -scale;
  s->t++;
  mrl__count_recall_deal(s, obs);
  *terminated = s->t == s->num_cards - 1; /* the value deck is empty */
  *truncated = 0;
  return MRL_OK;
}

static int mrl__count_recall_render(const void *self, char *buf, size_t size) {
  static const char kinds[3][8] = {"colour", "suit", "rank"};
  const mrl__count_recall *s = (const mrl__count_recall *)self;
  size_t at = 0;
  int i;
  if (size > 0) buf[0] = '\0';
  mrl__render_put(
      buf, size, &at, "card %d/%d: dealt %s %d, query %s %d (answer %d)  counts:", s->t + 1,
      s->num_cards, kinds[s->kind], s->value, kinds[s->kind], s->query, s->counts[s->query]);
  for (i = 0; i < s->distinct; i++) mrl__render_put(buf, size, &at, " %d", s->counts[i]);
  mrl__render_put(buf, size, &at, "\n");
  return (int)at;
}

static mrl_env *mrl__count_recall_make(const char *id) {
  static const int decks[3] = {1, 2, 4}, distinct[3] = {2, 4, 13};
  int level = mrl__popgym_level(id, "CountRecall"), n;
  mrl_env_vtable vt;
  mrl__count_recall *s;
  if (level < 0) return NULL;
  n = 52 * decks[level];
  /* counts run from 0 to n / distinct: one action more than POPGym before its fix (PR #41) */
  vt = mrl__env_vtable(id, 2 * distinct[level], n / distinct[level] + 1);
  vt.reset = mrl__count_recall_reset;
  vt.step = mrl__count_recall_step;
  vt.render = mrl__count_recall_render;
  vt.max_episode_steps = n - 1;
  s = (mrl__count_recall *)mrl__env_state(sizeof(mrl__count_recall));
  if (s) {
    s->num_cards = n;
    s->kind = level;
    s->distinct = distinct[level];
  }
  return mrl__env_finish(&vt, s);
}

/* ---- POPGym HigherLower ------------------------------------------------ >>popgym_higher_lower */

typedef struct mrl__higher_lower {
  int num_cards;
  int t; /* steps taken; the current card is cards[t] */
  uint16_t cards[3 * 52];
} mrl__higher_lower;

static mrl_result mrl__higher_lower_reset(void *self, uint64_t seed, float *obs) {
  mrl__higher_lower *s = (mrl__higher_lower *)self;
  mrl_rng r = mrl_rng_make(seed);
  mrl__deck_shuffle(s->cards, s->num_cards, &r);
  s->t = 0;
  mrl__one_hot(obs, 13, mrl__card_rank(s->cards[0]));
  return MRL_OK;
}

static mrl_result mrl__higher_lower_step(void *self, const float *action, float *obs, float *reward,
                                         int *terminated, int *truncated) {
  mrl__higher_lower *s = (mrl__higher_lower *)self;
  int cur = mrl__card_rank(s->cards[s->t]), next = mrl__card_rank(s->cards[s->t + 1]);
  int higher = (int)action[0] == 0;
  float scale = 1.0f / (float)s->num_cards;
  s->t++;
  *reward = next == cur ? 0.0f : (next > cur) == higher ? scale : -scale;
  mrl__one_hot(obs, 13, next);
  *terminated = s->t == s->num_cards - 1; /* the deck is empty */
  *truncated = 0;
  return MRL_OK;
}

static int mrl__higher_lower_render(const void *self, char *buf, size_t size) {
  const mrl__higher_lower *s = (const mrl__higher_lower *)self;
  size_t at = 0;
  int c = s->cards[s->t];
  if (size > 0) buf[0] = '\0';
  mrl__render_put(buf, size, &at, "card %d/%d: %c%c  higher (0) or lower (1)?\n", s->t + 1,
                  s->num_cards, mrl__card_rank_char(c), mrl__card_suit_char(c));
  return (int)at;
}

static mrl_env *mrl__higher_lower_make(const char *id) {
  int level = mrl__popgym_level(id, "HigherLower");
  mrl_env_vtable vt;
  mrl__higher_lower *s;
  if (level < 0) return NULL;
  vt = mrl__env_vtable(id, 13, 2);
  vt.reset = mrl__higher_lower_reset;
  vt.step = mrl__higher_lower_step;
  vt.render = mrl__higher_lower_render;
  vt.max_episode_steps = 52 * (level + 1) - 1;
  s = (mrl__higher_lower *)mrl__env_state(sizeof(mrl__higher_lower));
  if (s) s->num_cards = 52 * (level + 1);
  return mrl__env_finish(&vt, s);
}

/* ---- POPGym Concentration --------------------------------------------- >>popgym_concentration */

typedef struct mrl__concentration {
  int num_cards, ranks; /* ranks: match ranks (13 values), else colours (2) */
  int distinct;         /* values; the face-down symbol is `distinct` */
  int episode_length;   /* ceil(2n - n / (2n - 1)) */
  int face_up_count;    /* cards matched so far */
  int in_play[2], n_in_play;
  int shown[2], n_shown;     /* flipped in the last step: face down again once the turn is over */
  int changed[4], n_changed; /* positions whose symbol the last step may have changed */
  uint16_t cards[2 * 52];    /* card at each table position */
  uint8_t value[2 * 52];     /* its colour or rank */
  uint8_t face_up[2 * 52];   /* 1: matched, stays up */
  uint8_t symbol[2 * 52];    /* what each position shows: its value, or `distinct` face down */
} mrl__concentration;

/* The one-hot of symbol k in a block of w <= 14 is the w floats starting at
 * 13 - k: one copy per position. */
static const float mrl__one_hot14[27] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
                                         0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};

static void mrl__concentration_cell(const mrl__concentration *s, int p, float *obs) {
  if (s->ranks)
    memcpy(obs + 14 * p, mrl__one_hot14 + 13 - s->symbol[p], 14 * sizeof(float));
  else
    memcpy(obs + 3 * p, mrl__one_hot14 + 13 - s->symbol[p], 3 * sizeof(float));
}

static void mrl__concentration_show(mrl__concentration *s, int p, int up) {
  s->symbol[p] = (uint8_t)(up ? s->value[p] : s->distinct);
  s->changed[s->n_changed++] = p;
}

static mrl_result mrl__concentration_reset(void *self, uint64_t seed, float *obs) {
  mrl__concentration *s = (mrl__concentration *)self;
  mrl_rng r = mrl_rng_make(seed);
  int p;
  mrl__deck_shuffle(s->cards, s->num_cards, &r);
  memset(s->face_up, 0, sizeof s->face_up);
  for (p = 0; p < s->num_cards; p++) {
    int c = s->cards[p];
    s->value[p] = (uint8_t)(s->ranks ? mrl__card_rank(c) : mrl__card_color(c));
    s->symbol[p] = (uint8_t)s->distinct; /* face down */
    mrl__concentration_cell(s, p, obs);
  }
  s->face_up_count = 0;
  s->n_in_play = 0;
  s->n_shown = 0;
  return MRL_OK;
}

/* One flip: the rules, without the observation. */
static void mrl__concentration_flip(mrl__concentration *s, int a, float *reward, int *terminated,
                                    int *truncated) {
  float fail = -1.0f / (float)s->episode_length;
  int i;
  s->n_changed = 0;
  for (i = 0; i < s->n_shown; i++) { /* the last turn's cards go face down */
    int p = s->shown[i];
    if (!s->face_up[p] && !(s->n_in_play == 1 && s->in_play[0] == p))
      mrl__concentration_show(s, p, 0);
  }
  s->in_play[s->n_in_play++] = a;
  mrl__concentration_show(s, a, 1); /* the flipped card(s) face up in this observation */
  s->n_shown = s->n_in_play;
  s->shown[0] = s->in_play[0];
  s->shown[1] = s->in_play[s->n_in_play - 1];
  *reward = 0.0f;
  *terminated = 0;
  *truncated = 0;
  if (s->face_up[s->in_play[0]] || (s->n_in_play == 2 && s->face_up[s->in_play[1]])) {
    *reward = fail * (float)s->n_in_play; /* flipped a matched card: the turn is void */
    s->n_in_play = 0;
  } else if (s->n_in_play == 2) {
    int p = s->in_play[0], q = s->in_play[1];
    if (p != q && s->value[p] == s->value[q]) {
      *reward = 2.0f / (float)s->num_cards;
      s->face_up[p] = s->face_up[q] = 1;
      s->face_up_count += 2;
      *terminated = s->face_up_count == s->num_cards;
    } else {
      *reward = 2.0f * fail;
    }
    s->n_in_play = 0;
  }
}

static mrl_result mrl__concentration_step(void *self, const float *action, float *obs,
                                          float *reward, int *terminated, int *truncated) {
  mrl__concentration *s = (mrl__concentration *)self;
  int p;
  mrl__concentration_flip(s, (int)action[0], reward, terminated, truncated);
  for (p = 0; p < s->num_cards; p++) mrl__concentration_cell(s, p, obs);
  return MRL_OK;
}

/* The observation left in obs differs at most in the flipped positions. */
static mrl_result mrl__concentration_step_delta(void *self, const float *action, float *obs,
                                                float *reward, int *terminated, int *truncated) {
  mrl__concentration *s = (mrl__concentration *)self;
  int i;
  mrl__concentration_flip(s, (int)action[0], reward, terminated, truncated);
  for (i = 0; i < s->n_changed; i++) mrl__concentration_cell(s, s->changed[i], obs);
  return MRL_OK;
}

static int mrl__concentration_render(const void *self, char *buf, size_t size) {
  const mrl__concentration *s = (const mrl__concentration *)self;
  size_t at = 0;
  int p;
  if (size > 0) buf[0] = '\0';
  /* rows of 13: matched cards show their value (rank, or b / r), face-down
   * ones '?', the card flipped this turn in brackets */
  for (p = 0; p < s->num_cards; p++) {
    int c = s->cards[p], flipped = s->n_in_play > 0 && s->in_play[0] == p;
    char v = s->ranks ? mrl__card_rank_char(c) : (mrl__card_color(c) ? 'r' : 'b');
    if (flipped)
      mrl__render_put(buf, size, &at, "[%c]", v);
    else
      mrl__render_put(buf, size, &at, " %c ", s->face_up[p] ? v : '?');
    if (p % 13 == 12) mrl__render_put(buf, size, &at, "\n");
  }
  return (int)at;
}

/* PassiveVisualMatch[-<d>] and PassiveVisualMatchCrop[-<d>]. */
static mrl_env *mrl__vmatch_make_named(const char *id, const char *name, int crop) {
  long d = 30, unused = 0;
  size_t n = strlen(name);
  int view = crop ? MRL__VM_VIEW * MRL__VM_VIEW : MRL__VM_PLANE;
  mrl_env_vtable vt;
  mrl__vmatch *m;
  if (!mrl__parse_id2(id, name, &d, 1000000L, &unused, 0L)) return NULL;
  if (strlen(id) > n + 1 && strchr(id + n + 1, '-')) return NULL; /* one number */
  vt = mrl__env_vtable(id, MRL__VM_C * view, 4);
  vt.reset = mrl__vmatch_reset;
  vt.step = mrl__vmatch_step;
  if (!crop) vt.step_delta = mrl__vmatch_step_delta; /* a cropped view shifts as the agent moves */
  vt.render = mrl__vmatch_render;
  vt.episode_success = mrl__vmatch_success;
  m = (mrl__vmatch *)mrl__env_state(sizeof(mrl__vmatch));
  if (m) {
    m->distractor = (int)d;
    m->crop = crop;
  }
  return mrl__env_finish(&vt, m);
}

static mrl_env *mrl__vmatch_make(const char *id) {
  return mrl__vmatch_make_named(id, "PassiveVisualMatch", 0);
}

static mrl_env *mrl__vmatch_crop_make(const char *id) {
  return mrl__vmatch_make_named(id, "PassiveVisualMatchCrop", 1);
}

static mrl_env *mrl__concentration_make(const char *id) {
  static const int decks[3] = {1, 2, 1}, ranks[3] = {0, 0, 1};
  int level = mrl__popgym_level(id, "Concentration"), n;
  mrl_env_vtable vt;
  mrl__concentration *s;
  if (level < 0) return NULL;
  n = 52 * decks[level];
  vt = mrl__env_vtable(id, n * (ranks[level] ? 14 : 3), n);
  vt.reset = mrl__concentration_reset;
  vt.step = mrl__concentration_step;
  vt.step_delta = mrl__concentration_step_delta;
  vt.render = mrl__concentration_render;
  vt.max_episode_steps = (int)ceil(2.0 * n - (double)n / (2.0 * n - 1.0));
  s = (mrl__concentration *)mrl__env_state(sizeof(mrl__concentration));
  if (s) {
    s->num_cards = n;
    s->ranks = ranks[level];
    s->distinct = ranks[level] ? 13 : 2;
    s->episode_length = vt.max_episode_steps;
  }
  return mrl__env_finish(&vt, s);
}

/* ---- POPGym Battleship --------------------------------------------------- >>popgym_battleship */

#define MRL__BATTLESHIP_HITS 12 /* ships of 2, 3, 3 and 4 cells */

typedef struct mrl__battleship {
  int size; /* board side: 8, 10, 12 */
  int hits, last_hit, last_action;
  uint8_t ship[12 * 12], guessed[12 * 12];
} mrl__battleship;

static mrl_result mrl__battleship_reset(void *self, uint64_t seed, float *obs) {
  static const int ships[4] = {2, 3, 3, 4};
  mrl__battleship *s = (mrl__battleship *)self;
  mrl_rng r = mrl_rng_make(seed);
  int b = s->size, k;
  memset(s->ship, 0, sizeof s->ship);
  memset(s->guessed, 0, sizeof s->guessed);
  for (k = 0; k < 4; k++) {
    for (;;) { /* POPGym's rejection sampling: random start, axis and sign */
      int start[2], end[2], axis, lo0, lo1, hi0, hi1, i, j, free_cells = 1;
      start[0] = end[0] = (int)mrl_rng_below(&r, (uint32_t)b);
      start[1] = end[1] = (int)mrl_rng_below(&r, (uint32_t)b);
      axis = (int)mrl_rng_below(&r, 2u);
      end[axis] += mrl_rng_below(&r, 2u) ? -(ships[k] - 1) : ships[k] - 1;
      if (end[axis] < 0 || end[axis] >= b) continue;
      lo0 = start[0] < end[0] ? start[0] : end[0];
      hi0 = start[0] < end[0] ? end[0] : start[0];
      lo1 = start[1] < end[1] ? start[1] : end[1];
      hi1 = start[1] < end[1] ? end[1] : start[1];
      for (i = lo0; i <= hi0; i++)
        for (j = lo1; j <= hi1; j++)
          if (s->ship[i * b + j]) free_cells = 0;
      if (!free_cells) continue;
      for (i = lo0; i <= hi0; i++)
        for (j = lo1; j <= hi1; j++) s->ship[i * b + j] = 1;
      break;
    }
  }
  s->hits = 0;
  s->last_hit = 0;
  s->last_action = -1;
  obs[0] = 1.0f; /* POPGym's first observation is 0: "miss" */
  obs[1] = 0.0f;
  return MRL_OK;
}

static mrl_result mrl__battleship_step(void *self, const float *action, float *obs, float *reward,
                                       int *terminated, int *truncated) {
  mrl__battleship *s = (mrl__battleship *)self;
  int a = (int)action[0], cells = s->size * s->size;
  int hit = s->ship[a] && !s->guessed[a];
  s->guessed[a] = 1;
  s->hits += hit;
  s->last_hit = hit;
  s->last_action = a;
  *reward = hit ? 1.0f / MRL__BATTLESHIP_HITS : -1.0f / (float)(cells - MRL__BATTLESHIP_HITS);
  *terminated = s->hits == MRL__BATTLESHIP_HITS;
  *truncated = 0; /* the wrapper's limit: size * size steps */
  obs[0] = hit ? 0.0f : 1.0f;
  obs[1] = hit ? 1.0f : 0.0f;
  return MRL_OK;
}

static int mrl__battleship_render(const void *self, char *buf, size_t size) {
  const mrl__battleship *s = (const mrl__battleship *)self;
  size_t at = 0;
  int i, b = s->size;
  if (size > 0) buf[0] = '\0';
  /* X hit ship, o missed shot, # ship not hit yet, . water; last shot in brackets */
  for (i = 0; i < b * b; i++) {
    char ch = s->guessed[i] ? (s->ship[i] ? 'X' : 'o') : (s->ship[i] ? '#' : '.');
    mrl__render_put(buf, size, &at, i == s->last_action ? "[%c]" : " %c ", ch);
    if (i % b == b - 1) mrl__render_put(buf, size, &at, "\n");
  }
  mrl__render_put(buf, size, &at, "hits %d/%d\n", s->hits, MRL__BATTLESHIP_HITS);
  return (int)at;
}

static mrl_env *mrl__battleship_make(const char *id) {
  int level = mrl__popgym_level(id, "Battleship"), b;
  mrl_env_vtable vt;
  mrl__battleship *s;
  if (level < 0) return NULL;
  b = 8 + 2 * level;
  vt = mrl__env_vtable(id, 2, b * b);
  vt.reset = mrl__battleship_reset;
  vt.step = mrl__battleship_step;
  vt.render = mrl__battleship_render;
  vt.max_episode_steps = b * b;
  s = (mrl__battleship *)mrl__env_state(sizeof(mrl__battleship));
  if (s) s->size = b;
  return mrl__env_finish(&vt, s);
}

/* ---- POPGym MineSweeper ------------------------------------------------- >>popgym_minesweeper */

typedef struct mrl__minesweeper {
  int side, mines, obs_dim; /* obs_dim = min(mines + 1, 10) */
  int clear_left;           /* clear cells not viewed yet */
  int last_action;
  uint8_t grid[8 * 8];     /* 0 clear, 1 mine, 2 viewed (POPGym's HiddenSquare) */
  uint8_t neighbor[8 * 8]; /* mines in the 3 x 3 block around the cell, itself included */
} mrl__minesweeper;

static mrl_result mrl__minesweeper_reset(void *self, uint64_t seed, float *obs) {
  mrl__minesweeper *s = (mrl__minesweeper *)self;
  mrl_rng r = mrl_rng_make(seed);
  int n = s->side * s->side, cells[64], i, y, x;
  for (i = 0; i < n; i++) cells[i] = i;
  memset(s->grid, 0, sizeof s->grid);
  memset(s->neighbor, 0, sizeof s->neighbor);
  for (i = 0; i < s->mines; i++) { /* partial Fisher-Yates: mines distinct cells */
    int k = i + (int)mrl_rng_below(&r, (uint32_t)(n - i)), t = cells[i], m;
    int y0, y1, x0, x1;
    cells[i] = cells[k];
    cells[k] = t;
    m = cells[i];
    s->grid[m] = 1;
    /* count it in the 3x3 block around it (its own cell included) */
    y0 = m / s->side - 1 < 0 ? 0 : m / s->side - 1;
    y1 = m / s->side + 1 >= s->side ? s->side - 1 : m / s->side + 1;
    x0 = m % s->side - 1 < 0 ? 0 : m % s->side - 1;
    x1 = m % s->side + 1 >= s->side ? s->side - 1 : m % s->side + 1;
    for (y = y0; y <= y1; y++)
      for (x = x0; x <= x1; x++) s->neighbor[y * s->side + x]++;
  }
  s->clear_left = n - s->mines;
  s->last_action = -1;
  mrl__one_hot(obs, s->obs_dim, 0);
  return MRL_OK;
}

static mrl_result mrl__minesweeper_step(void *self, const float *action, float *obs, float *reward,
                                        int *terminated, int *truncated) {
  mrl__minesweeper *s = (mrl__minesweeper *)self;
  int a = (int)action[0], length = s->side * s->side - s->mines;
  float success = 1.0f / (float)length;
  *terminated = 0;
  *truncated = 0; /* the wrapper's limit: length steps */
  if (s->grid[a] == 1) {
    *terminated = 1;
    *reward = -0.5f - success;
  } else if (s->grid[a] == 2) {
    *reward = -0.5f / (float)(length - 2);
  } else {
    s->grid[a] = 2;
    s->clear_left--;
    *reward = success;
  }
  if (s->clear_left == 0) *terminated = 1;
  s->last_action = a;
  mrl__one_hot(obs, s->obs_dim, s->neighbor[a]);
  return MRL_OK;
}

static int mrl__minesweeper_render(const void *self, char *buf, size_t size) {
  const mrl__minesweeper *s = (const mrl__minesweeper *)self;
  size_t at = 0;
  int i, n = s->side * s->side;
  if (size > 0) buf[0] = '\0';
  /* viewed cells show their count, hidden ones '.', mines '*' (the player
   * never sees them); the last click in brackets */
  for (i = 0; i < n; i++) {
    char ch = s->grid[i] == 2 ? (char)('0' + s->neighbor[i]) : s->grid[i] == 1 ? '*' : '.';
    mrl__render_put(buf, size, &at, i == s->last_action ? "[%c]" : " %c ", ch);
    if (i % s->side == s->side - 1) mrl__render_put(buf, size, &at, "\n");
  }
  mrl__render_put(buf, size, &at, "clear cells left %d\n", s->clear_left);
  return (int)at;
}

static mrl_env *mrl__minesweeper_make(const char *id) {
  static const int sides[3] = {4, 6, 8}, mines[3] = {2, 6, 10};
  int level = mrl__popgym_level(id, "MineSweeper"), obs_dim;
  mrl_env_vtable vt;
  mrl__minesweeper *s;
  if (level < 0) return NULL;
  obs_dim = mines[level] + 1 < 10 ? mines[level] + 1 : 10;
  vt = mrl__env_vtable(id, obs_dim, sides[level] * sides[level]);
  vt.reset = mrl__minesweeper_reset;
  vt.step = mrl__minesweeper_step;
  vt.render = mrl__minesweeper_render;
  vt.max_episode_steps = sides[level] * sides[level] - mines[level];
  s = (mrl__minesweeper *)mrl__env_state(sizeof(mrl__minesweeper));
  if (s) {
    s->side = sides[level];
    s->mines = mines[level];
    s->obs_dim = obs_dim;
  }
  return mrl__env_finish(&vt, s);
}

/* ---- POPGym MultiarmedBandit ---------------------------------------------- >>popgym_bandit */

typedef struct mrl__bandit {
  int arms, length;
  int last_action, last_payout;
  mrl_rng rng; /* payouts, seeded at reset */
  float p[30]; /* payout probability of each arm */
} mrl__bandit;

static mrl_result mrl__bandit_reset(void *self, uint64_t seed, float *obs) {
  mrl__bandit *s = (mrl__bandit *)self;
  int i;
  s->rng = mrl_rng_make(seed);
  for (i = 0; i < s->arms; i++) s->p[i] = mrl_rng_uniform(&s->rng);
  s->last_action = -1;
  s->last_payout = 0;
  obs[0] = 1.0f; /* POPGym's first observation is 0: "no payout" */
  obs[1] = 0.0f;
  return MRL_OK;
}

static mrl_result mrl__bandit_step(void *self, const float *action, float *obs, float *reward,
                                   int *terminated, int *truncated) {
  mrl__bandit *s = (mrl__bandit *)self;
  int a = (int)action[0], pay = mrl_rng_uniform(&s->rng) < s->p[a];
  s->last_action = a;
  s->last_payout = pay;
  *reward = (float)(2 * pay - 1) / (float)s->length; /* +-1/T, without a branch */
  *terminated = 0;
  *truncated = 0; /* the wrapper's limit: length steps */
  obs[0] = (float)(1 - pay);
  obs[1] = (float)pay;
  return MRL_OK;
}

static void mrl__bandit_task(const void *self, float *out) {
  const mrl__bandit *s = (const mrl__bandit *)self;
  memcpy(out, s->p, (size_t)s->arms * sizeof(float));
}

static int mrl__bandit_render(const void *self, char *buf, size_t size) {
  const mrl__bandit *s = (const mrl__bandit *)self;
  size_t at = 0;
  int i;
  if (size > 0) buf[0] = '\0';
  for (i = 0; i < s->arms; i++) {
    int bar = (int)(s->p[i] * 20.0f), j;
    mrl__render_put(buf, size, &at, "%c%2d %.2f ", i == s->last_action ? '>' : ' ', i, s->p[i]);
    for (j = 0; j < bar; j++) mrl__render_put(buf, size, &at, "#");
    if (i == s->last_action) mrl__render_put(buf, size, &at, s->last_payout ? "  paid" : "  no");
    mrl__render_put(buf, size, &at, "\n");
  }
  return (int)at;
}

static mrl_env *mrl__bandit_make(const char *id) {
  int level = mrl__popgym_level(id, "MultiarmedBandit");
  mrl_env_vtable vt;
  mrl__bandit *s;
  if (level < 0) return NULL;
  vt = mrl__env_vtable(id, 2, 10 * (level + 1));
  vt.reset = mrl__bandit_reset;
  vt.step = mrl__bandit_step;
  vt.render = mrl__bandit_render;
  vt.task_dim = 10 * (level + 1);
  vt.task = mrl__bandit_task;
  vt.max_episode_steps = 200 * (level + 1);
  s = (mrl__bandit *)mrl__env_state(sizeof(mrl__bandit));
  if (s) {
    s->arms = 10 * (level + 1);
    s->length = 200 * (level + 1);
  }
  return mrl__env_finish(&vt, s);
}

/* ---- registry ------------------------------------------------------------ >>registry */
/* One line per family; mrl_env_make asks each in order. The table is built
 * on the stack at each call: a static table of function pointers would land
 * in relocated, writable data, and the library keeps no writable globals. */
MRL_DEF int mrl_env_list(int index, mrl_env_info *out) {
  const mrl_env_info registry[] = {
      /* classic control */
      {"CartPole-v1", "Gymnasium CartPole: balance a pole on a cart (4 floats, 2 actions)",
       mrl__cartpole_make},
      {"StatelessCartPole-v1", "CartPole-v1 with positions only [x, theta] (POPGym, SB3 NoVel)",
       mrl__cartpole_make},
      {"Pendulum-v1", "Gymnasium Pendulum: swing up and hold (3 floats, 1 torque in [-2, 2])",
       mrl__pendulum_make},
      {"StatelessPendulum-v1", "Pendulum-v1 with the angle only [cos, sin] (POPGym position-only)",
       mrl__pendulum_make},
      {"NoisyStatelessPendulum-v1[-<sigma>]",
       "StatelessPendulum-v1 plus N(0, sigma) observation noise (default 0.1; POPGym)",
       mrl__pendulum_make},
      {"VelocityOnlyCartPole-v1", "CartPole-v1 with velocities only [x_dot, theta_dot] (POPGym)",
       mrl__cartpole_pomdp_make},
      {"NoisyStatelessCartPole-v1[-<sigma>]",
       "StatelessCartPole-v1 plus N(0, sigma) observation noise (default 0.1; POPGym)",
       mrl__cartpole_pomdp_make},

      /* corridors and memory tasks */
      {"TMaze-<L>[-<max_steps>]",
       "Bakker's T-maze: a cue at the start names the goal arm L cells away", mrl__tmaze_make},
      {"PassiveTMaze-<L>",
       "Passive T-maze of Ni et al. 2023: cue at t=0, L steps of corridor, choose at t=L+1",
       mrl__ptmaze_make},
      {"MemoryChain-<memory_length>[-<num_bits>]",
       "bsuite memory chain (memory_len: MemoryChain-<n>; memory_size: MemoryChain-2-<bits>)",
       mrl__mchain_make},
      {"NoisySequence-<T>[-<N>]",
       "noisy sequence classification: class +-1 plus noise for N steps, answer at step T",
       mrl__noisyseq_make},

      /* POPGym */
      {"RepeatFirst<Easy|Medium|Hard>-v0",
       "POPGym: name the suit of the first card of a 1/8/16-deck stream", mrl__repeat_make},
      {"RepeatPrevious<Easy|Medium|Hard>-v0",
       "POPGym: name the suit of the card k = 4/32/64 back (the latest is 1 back)",
       mrl__repeat_make},
      {"Autoencode<Easy|Medium|Hard>-v0",
       "POPGym: watch 1/2/3 decks of suits, then recite them in reverse", mrl__autoencode_make},
      {"CountRecall<Easy|Medium|Hard>-v0",
       "POPGym: answer how often the queried colour/suit/rank has been dealt",
       mrl__count_recall_make},
      {"HigherLower<Easy|Medium|Hard>-v0",
       "POPGym: guess whether the next card ranks higher or lower (card counting)",
       mrl__higher_lower_make},
      {"Concentration<Easy|Medium|Hard>-v0",
       "POPGym: flip face-down cards two at a time to find matching pairs",
       mrl__concentration_make},
      {"Battleship<Easy|Medium|Hard>-v0",
       "POPGym: sink 4 ships on an unseen 8/10/12 board from hit/miss replies",
       mrl__battleship_make},
      {"MineSweeper<Easy|Medium|Hard>-v0",
       "POPGym: clear a hidden 4x4/6x6/8x8 minefield from neighbour counts", mrl__minesweeper_make},
      {"MultiarmedBandit<Easy|Medium|Hard>-v0",
       "POPGym: 10/20/30 Bernoulli arms over 200/400/600 pulls (obs: payout only)",
       mrl__bandit_make},

      /* meta-RL, episodic control, successor features, pixels */
      {"MetaBandit[-<arms>[-<horizon>]]",
       "Bernoulli bandits, p ~ U[0,1] per arm hidden (task hook); default 20 arms, 100 pulls",
       mrl__mbandit_make},
      {"Semicircle[-<horizon>]",
       "point mass, sparse reward near a hidden goal on the unit semicircle (task hook)",
       mrl__semicircle_make},
      {"NumPad[-<n>[-<len>]]",
       "press a hidden sequence of len tiles of an n x n pad in order (task hook); 3x3, 3",
       mrl__numpad_make},
      {"TreeMDP-<B>-<D>[-<world>]",
       "episodic control: a depth-D tree of branching B, fixed hidden leaf rewards in [0, 1)",
       mrl__tree_make},
      {"SFGrid", "four rooms, 3 object types and a goal; reward phi . w with w settable",
       mrl__sfgrid_make},
      {"Catch[-<rows>-<cols>]",
       "bsuite Catch: move the paddle under the falling ball (10x5 pixels)", mrl__catch_make},
      {"PassiveVisualMatch[-<distractor_steps>]",
       "see a colour, eat apples, then touch the same colour (6x7x11 pixel planes)",
       mrl__vmatch_make},
      {"PassiveVisualMatchCrop[-<distractor_steps>]",
       "PassiveVisualMatch seen through the 5x5 window around the agent (6x5x5 planes)",
       mrl__vmatch_crop_make},
  };
  int count = (int)(sizeof registry / sizeof registry[0]);
  if (out && index >= 0 && index < count) *out = registry[index];
  return count;
}

static mrl_env *mrl__env_make_wrapped(const char *id); /* wrappers section */

MRL_DEF mrl_env *mrl_env_make(const char *id) {
  mrl_env_info info;
  int i;
  if (!id) return NULL;
  if (strchr(id, '|')) return mrl__env_make_wrapped(id);
  for (i = 0; i < mrl_env_list(i, &info); i++) {
    mrl_env *env = info.make(id);
    if (env) return env;
  }
  return NULL;
}

/* ---- vector environment ------------------------------------------------- >>vecenv */

static uint64_t mrl__mix64(uint64_t z) { /* splitmix64 finaliser (Steele et al. 2014) */
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

MRL_DEF uint64_t mrl_vecenv_episode_seed(uint64_t seed, int env_index, uint64_t episode) {
  uint64_t h = mrl__mix64(seed);
  h = mrl__mix64(h ^ (uint64_t)(uint32_t)env_index);
  return mrl__mix64(h ^ episode);
}

/* An environment and every environment it wraps, tagged with the index of
 * the list entry it belongs to. */
typedef struct mrl__vecenv_owned {
  uintptr_t env;
  int index;
} mrl__vecenv_owned;

static int mrl__vecenv_cmp_owned(const void *a, const void *b) {
  const mrl__vecenv_owned *x = (const mrl__vecenv_owned *)a, *y = (const mrl__vecenv_owned *)b;
  if (x->env != y->env) return x->env < y->env ? -1 : 1;
  return x->index < y->index ? -1 : x->index > y->index;
}

/* The vector steps and frees each environment it owns once: no environment
 * may appear twice, directly or inside a wrapper (sorting: n log n). */
static mrl_result mrl__vecenv_check_distinct(mrl_vecenv *v, mrl_env **envs, int num_envs) {
  mrl__vecenv_owned *all;
  size_t total = 0, k = 0;
  int i;
  for (i = 0; i < num_envs; i++) {
    const mrl_env *e;
    for (e = envs[i]; e; e = mrl_env_inner(e)) total++;
  }
  all = (mrl__vecenv_owned *)MRL_MALLOC(total * sizeof *all);
  if (!all) return MRL_ERR_OUT_OF_MEMORY;
  for (i = 0; i < num_envs; i++) {
    const mrl_env *e;
    for (e = envs[i]; e; e = mrl_env_inner(e)) {
      all[k].env = (uintptr_t)(const void *)e;
      all[k++].index = i;
    }
  }
  qsort(all, total, sizeof *all, mrl__vecenv_cmp_owned);
  for (k = 1; k < total; k++)
    if (all[k].env == all[k - 1].env) {
      snprintf(v->error, sizeof v->error,
               "mrl_vecenv_init_envs: envs[%d] and envs[%d] are (or wrap) the same environment "
               "(%s); each must be its own mrl_env",
               all[k - 1].index, all[k].index, mrl_env_id((const mrl_env *)all[k].env));
      MRL_FREE(all);
      return MRL_ERR_INVALID_ARGUMENT;
    }
  MRL_FREE(all);
  return MRL_OK;
}

MRL_DEF mrl_result mrl_vecenv_init_envs(mrl_vecenv *v, mrl_env **envs, int num_envs,
                                        uint64_t seed) {
  size_t n, od, sz;
  char *p;
  int i;
  if (!v) return MRL_ERR_INVALID_ARGUMENT;
  memset(v, 0, sizeof *v);
  if (!envs || num_envs < 1) return MRL_ERR_INVALID_ARGUMENT;
  for (i = 0; i < num_envs; i++) {
    if (!envs[i]) {
      snprintf(v->error, sizeof v->error, "mrl_vecenv_init_envs: envs[%d] is NULL", i);
      return MRL_ERR_INVALID_ARGUMENT;
    }
    if (envs[i]->vt.obs_dim != envs[0]->vt.obs_dim ||
        envs[i]->vt.num_actions != envs[0]->vt.num_actions ||
        envs[i]->vt.action_dim != envs[0]->vt.action_dim) {
      snprintf(v->error, sizeof v->error,
               "mrl_vecenv_init_envs: envs[%d] (%s) differs from envs[0] (%s) in obs_dim, "
               "num_actions or action_dim",
               i, envs[i]->vt.id, envs[0]->vt.id);
      return MRL_ERR_INVALID_ARGUMENT;
    }
  }
  {
    mrl_result r = mrl__vecenv_check_distinct(v, envs, num_envs);
    if (r != MRL_OK) return r;
  }
  n = (size_t)num_envs;
  od = (size_t)envs[0]->vt.obs_dim;
  /* one block, widest members first so every array is aligned */
  sz = n * sizeof(uint64_t) + n * sizeof(mrl_env *) + (2 * n * od + 2 * n) * sizeof(float) +
       4 * n * sizeof(int);
  p = (char *)MRL_MALLOC(sz);
  if (!p) return MRL_ERR_OUT_OF_MEMORY;
  memset(p, 0, sz);
  v->episodes_started = (uint64_t *)(void *)p;
  p += n * sizeof(uint64_t);
  v->envs = (mrl_env **)(void *)p;
  p += n * sizeof(mrl_env *);
  v->obs = (float *)(void *)p;
  v->final_obs = v->obs + n * od;
  v->rewards = v->final_obs + n * od;
  v->episode_return = v->rewards + n;
  p = (char *)(v->episode_return + n);
  v->terminated = (int *)(void *)p;
  v->truncated = v->terminated + n;
  v->episode_length = v->truncated + n;
  v->episode_success = v->episode_length + n;
  for (i = 0; i < num_envs; i++) {
    v->envs[i] = envs[i];
    v->episode_success[i] = -1;
  }
  v->num_envs = num_envs;
  v->obs_dim = envs[0]->vt.obs_dim;
  v->num_actions = envs[0]->vt.num_actions;
  v->action_dim = envs[0]->vt.action_dim;
  v->seed = seed;
  v->obs_updates_in_place = 1;
  return MRL_OK;
}

MRL_DEF mrl_result mrl_vecenv_init(mrl_vecenv *v, const char *id, int num_envs, uint64_t seed) {
  mrl_env *stack_envs[16];
  mrl_env **envs = stack_envs;
  mrl_result r = MRL_OK;
  int i, made = 0;
  if (!v) return MRL_ERR_INVALID_ARGUMENT;
  memset(v, 0, sizeof *v);
  if (num_envs < 1) return MRL_ERR_INVALID_ARGUMENT;
  if (num_envs > 16) {
    envs = (mrl_env **)MRL_MALLOC((size_t)num_envs * sizeof(mrl_env *));
    if (!envs) return MRL_ERR_OUT_OF_MEMORY;
  }
  for (i = 0; i < num_envs; i++) {
    envs[i] = mrl_env_make(id);
    if (!envs[i]) {
      /* an id that works once and fails later is memory running out */
      r = i == 0 ? MRL_ERR_UNKNOWN_ENV : MRL_ERR_OUT_OF_MEMORY;
      break;
    }
    made++;
  }
  if (r == MRL_OK) r = mrl_vecenv_init_envs(v, envs, num_envs, seed);
  if (r != MRL_OK)
    for (i = 0; i < made; i++) mrl_env_free(envs[i]);
  if (envs != stack_envs) MRL_FREE(envs);
  return r;
}

MRL_DEF void mrl_vecenv_free(mrl_vecenv *v) {
  int i;
  if (!v) return;
  if (v->envs) {
    for (i = 0; i < v->num_envs; i++) mrl_env_free(v->envs[i]);
    MRL_FREE(v->episodes_started); /* the start of the one block */
  }
  memset(v, 0, sizeof *v);
}

/* Bit 31 of the result is set when x[0..n) holds a NaN or infinity, or
 * when `also` does. Branch-free over the bits: the exponent field is all
 * ones exactly for those, and adding one to it then carries into bit 31.
 * One 32-bit load per float: the environment has just stored them one by
 * one, and a wider load would miss store-to-load forwarding. */
static inline uint32_t mrl__non_finite_bits(const float *x, size_t n, float also) {
  uint32_t a0, a1 = 0, a2 = 0, a3 = 0, w[4];
  size_t i = 0;
  memcpy(w, &also, 4);
  a0 = (w[0] & 0x7f800000u) + 0x00800000u;
#if (defined(__GNUC__) || defined(__clang__)) && !defined(MRL_NO_VECTOR_EXTENSIONS)
  if (n >= 32) { /* wide rows (boards, card tables): four floats per operation */
    typedef uint32_t mrl__u32x4 __attribute__((vector_size(16)));
    const mrl__u32x4 e = {0x7f800000u, 0x7f800000u, 0x7f800000u, 0x7f800000u};
    const mrl__u32x4 one = {0x00800000u, 0x00800000u, 0x00800000u, 0x00800000u};
    mrl__u32x4 v0 = {0, 0, 0, 0}, v1 = v0, x0, x1;
    for (; i + 8 <= n; i += 8) {
      memcpy(&x0, x + i, 16);
      memcpy(&x1, x + i + 4, 16);
      v0 |= (x0 & e) + one;
      v1 |= (x1 & e) + one;
    }
    v0 |= v1;
    a0 |= v0[0] | v0[1] | v0[2] | v0[3];
  }
#endif
  for (; i + 4 <= n; i += 4) {
    memcpy(&w[0], x + i, 4); /* four loads, not one wide one (see above) */
    memcpy(&w[1], x + i + 1, 4);
    memcpy(&w[2], x + i + 2, 4);
    memcpy(&w[3], x + i + 3, 4);
    a0 |= (w[0] & 0x7f800000u) + 0x00800000u;
    a1 |= (w[1] & 0x7f800000u) + 0x00800000u;
    a2 |= (w[2] & 0x7f800000u) + 0x00800000u;
    a3 |= (w[3] & 0x7f800000u) + 0x00800000u;
  }
  for (; i < n; i++) {
    memcpy(w, x + i, 4);
    a0 |= (w[0] & 0x7f800000u) + 0x00800000u;
  }
  return (a0 | a1 | a2 | a3) & 0x80000000u;
}

static int mrl__all_finite(const float *x, size_t n) {
  return mrl__non_finite_bits(x, n, 0.0f) == 0;
}

static mrl_result mrl__vecenv_reset_one(mrl_vecenv *v, int i) {
  uint64_t s = mrl_vecenv_episode_seed(v->seed, i, v->episodes_started[i]++);
  float *o = v->obs + (size_t)i * (size_t)v->obs_dim;
  mrl_result r = mrl_env_reset(v->envs[i], s, o);
  if (r == MRL_OK && !mrl__all_finite(o, (size_t)v->obs_dim)) {
    v->envs[i]->running = 0; /* a reset is needed before the next step */
    return MRL_ERR_NON_FINITE;
  }
  return r;
}

/* v->error for environment i that returned a non-finite value in `call`:
 * its reward (after a step) or an observation entry. */
static void mrl__vecenv_non_finite_error(mrl_vecenv *v, int i, const char *call) {
  const mrl_env *e = v->envs[i];
  const float *o = v->obs + (size_t)i * (size_t)v->obs_dim;
  char what[64], when[96];
  int j = 0;
  /* ep_length is 0 only when the failing call was a reset (the auto-reset
   * after an episode ended, or mrl_vecenv_reset) */
  if (e->ep_length > 0 && !mrl__all_finite(v->rewards + i, 1)) {
    snprintf(what, sizeof what, "reward %g", (double)v->rewards[i]);
  } else {
    while (j < v->obs_dim - 1 && mrl__all_finite(o + j, 1)) j++;
    snprintf(what, sizeof what, "observation (obs[%d] = %g)", j, (double)o[j]);
  }
  if (e->ep_length > 0)
    snprintf(when, sizeof when, "at step %d of its episode", e->ep_length);
  else
    snprintf(when, sizeof when, "at the reset of its episode %llu",
             (unsigned long long)(v->episodes_started[i] - 1u));
  snprintf(v->error, sizeof v->error,
           "%s: environment %d (%s) returned a non-finite %s %s (vector step %lld)", call, i,
           mrl_env_id(e), what, when, v->total_steps);
}

MRL_DEF mrl_result mrl_vecenv_reset(mrl_vecenv *v) {
  int i;
  if (!v || !v->envs) return MRL_ERR_INVALID_ARGUMENT;
  v->ready = 0;
  for (i = 0; i < v->num_envs; i++) {
    mrl_result r = mrl__vecenv_reset_one(v, i);
    if (r == MRL_ERR_NON_FINITE) mrl__vecenv_non_finite_error(v, i, "mrl_vecenv_reset");
    if (r != MRL_OK) return r;
    v->rewards[i] = 0.0f;
    v->terminated[i] = v->truncated[i] = 0;
    v->episode_return[i] = 0.0f;
    v->episode_length[i] = 0;
    v->episode_success[i] = -1;
  }
  v->ready = 1;
  return MRL_OK;
}

MRL_DEF void mrl_vecenv_reseed(mrl_vecenv *v, uint64_t seed) {
  int i;
  v->seed = seed;
  for (i = 0; i < v->num_envs; i++) v->episodes_started[i] = 0;
  v->ready = 0;
}

/* Steps environment i with its checked action, auto-resetting it. */
static mrl_result mrl__vecenv_step_one(mrl_vecenv *v, const float *actions, int i) {
  const size_t od = (size_t)v->obs_dim, ad = (size_t)v->action_dim;
  mrl_env *e = v->envs[i];
  float *o = v->obs + (size_t)i * od;
  const float *use = e->vt.num_actions > 0 ? actions + (size_t)i * ad : e->act_buf;
  /* a step_delta step writes only what changed, in O(changes): the row's
   * other entries were checked when written, and reading them all here
   * would cost more than the step (Concentration: 5x slower); so such a
   * step checks its reward only (see mrl_vecenv_step) */
  const int delta = v->obs_updates_in_place && e->vt.step_delta && e->obs_last == o;
  mrl_result r = mrl__env_step_checked(e, use, o, v->rewards + i, v->terminated + i,
                                       v->truncated + i, v->obs_updates_in_place);
  if (r != MRL_OK) return r;
  if (mrl__non_finite_bits(o, delta ? 0 : od, v->rewards[i])) {
    e->running = 0;
    e->obs_last = NULL;
    return MRL_ERR_NON_FINITE;
  }
  if (v->terminated[i] | v->truncated[i]) {
    memcpy(v->final_obs + (size_t)i * od, o, od * sizeof(float));
    v->episode_return[i] = (float)e->ep_return;
    v->episode_length[i] = e->ep_length;
    v->episode_success[i] = e->last_success;
    return mrl__vecenv_reset_one(v, i);
  }
  v->episode_return[i] = 0.0f;
  v->episode_length[i] = 0;
  v->episode_success[i] = -1;
  return MRL_OK;
}

MRL_DEF mrl_result mrl_vecenv_step(mrl_vecenv *v, const float *actions) {
  const size_t ad = (size_t)v->action_dim;
  int i;
  if (!v->envs) return MRL_ERR_INVALID_ARGUMENT;
  if (!v->ready) return MRL_ERR_NOT_RESET;
  if (!actions) return MRL_ERR_INVALID_ACTION;
  /* check everything before anything moves */
  if (v->num_actions > 0) { /* discrete: one tight pass over the actions */
    const float n = (float)v->num_actions;
    for (i = 0; i < v->num_envs; i++) {
      float a = actions[i];
      if (!(a >= 0.0f && a < n) || (float)(int)a != a) return MRL_ERR_INVALID_ACTION;
    }
    for (i = 0; i < v->num_envs; i++)
      if (!v->envs[i]->running) return MRL_ERR_NOT_RESET;
  } else {
    for (i = 0; i < v->num_envs; i++) {
      const float *use;
      mrl_result r;
      if (!v->envs[i]->running) return MRL_ERR_NOT_RESET;
      r = mrl__env_check(v->envs[i], actions + (size_t)i * ad, &use);
      if (r != MRL_OK) return r;
    }
  }
#ifdef _OPENMP
  if (v->num_envs >= MRL_VECENV_OMP_MIN_ENVS) {
    /* every environment touches only its own slots: the same results as the
     * serial loop, bit for bit; on an error the lowest index's is returned */
    mrl_result err = MRL_OK;
    int err_at = v->num_envs;
#pragma omp parallel for schedule(static)
    for (i = 0; i < v->num_envs; i++) {
      mrl_result r = mrl__vecenv_step_one(v, actions, i);
      if (r != MRL_OK) {
#pragma omp critical(mrl__vecenv_step_error)
        {
          if (i < err_at) {
            err_at = i;
            err = r;
          }
        }
      }
    }
    if (err != MRL_OK) {
      v->ready = 0;
      if (err == MRL_ERR_NON_FINITE) mrl__vecenv_non_finite_error(v, err_at, "mrl_vecenv_step");
      return err;
    }
    v->total_steps++;
    return MRL_OK;
  }
#endif
  for (i = 0; i < v->num_envs; i++) {
    mrl_result r = mrl__vecenv_step_one(v, actions, i);
    if (r != MRL_OK) {
      v->ready = 0;
      if (r == MRL_ERR_NON_FINITE) mrl__vecenv_non_finite_error(v, i, "mrl_vecenv_step");
      return r;
    }
  }
  v->total_steps++;
  return MRL_OK;
}

/* ---- snapshots ----------------------------------------------------------- >>snapshot */
/* Layout (native byte order, no padding, every field copied with memcpy):
 *   environment: "MRLENV01", u32 version, u32 id length, u64 total bytes,
 *     u64 checksum of the bytes after this 32-byte head, the id, i32
 *     obs_dim, num_actions, action_dim, running, ep_length, last_success,
 *     f64 ep_return, u64 payload length, the payload (the snapshot hook's
 *     bytes; a wrapper's hold the wrapped environment's snapshot).
 *   vector: "MRLVEC01", u32 version, u32 num_envs, u64 total, u64 checksum,
 *     i32 obs_dim, num_actions, action_dim, ready, u64 seed, i64
 *     total_steps, the arrays episodes_started, obs, final_obs, rewards,
 *     episode_return, terminated, truncated, episode_length,
 *     episode_success, then per environment u64 length and its snapshot.
 * The checksum (FNV-1a, 64 bits) catches damaged bytes; a buffer crafted to
 * pass it is trusted, as a checkpoint is. */

#define MRL__SNAP_VERSION 1u
#define MRL__SNAP_HEAD 32u

typedef struct mrl__snap_w { /* writer; counts only while buf is NULL */
  unsigned char *buf;
  size_t at;
} mrl__snap_w;

static void mrl__snap_put(mrl__snap_w *w, const void *p, size_t n) {
  if (w->buf && n) memcpy(w->buf + w->at, p, n);
  w->at += n;
}
static void mrl__snap_i32(mrl__snap_w *w, int v) {
  int32_t x = (int32_t)v;
  mrl__snap_put(w, &x, sizeof x);
}
static void mrl__snap_u64(mrl__snap_w *w, uint64_t v) {
  mrl__snap_put(w, &v, sizeof v);
}

typedef struct mrl__snap_r { /* reader; bad once it would read past the end */
  const unsigned char *buf;
  size_t size, at;
  int bad;
} mrl__snap_r;

static const unsigned char *mrl__snap_take(mrl__snap_r *r, size_t n) {
  const unsigned char *p = r->buf + r->at;
  if (r->bad || n > r->size - r->at) {
    r->bad = 1;
    return NULL;
  }
  r->at += n;
  return p;
}
static void mrl__snap_get(mrl__snap_r *r, void *p, size_t n) {
  const unsigned char *q = mrl__snap_take(r, n);
  if (q)
    memcpy(p, q, n);
  else
    memset(p, 0, n);
}
static int mrl__snap_get_i32(mrl__snap_r *r) {
  int32_t x;
  mrl__snap_get(r, &x, sizeof x);
  return (int)x;
}
static uint64_t mrl__snap_get_u64(mrl__snap_r *r) {
  uint64_t x;
  mrl__snap_get(r, &x, sizeof x);
  return x;
}

static uint64_t mrl__fnv1a(const unsigned char *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  size_t i;
  for (i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

/* The 32-byte head: magic, version, count, total and the checksum of what
 * follows (the body must be written already). */
static void mrl__snap_head(unsigned char *buf, const char *magic, uint32_t count, size_t total) {
  uint32_t version = MRL__SNAP_VERSION;
  uint64_t t = (uint64_t)total, sum = mrl__fnv1a(buf + MRL__SNAP_HEAD, total - MRL__SNAP_HEAD);
  memcpy(buf, magic, 8);
  memcpy(buf + 8, &version, 4);
  memcpy(buf + 12, &count, 4);
  memcpy(buf + 16, &t, 8);
  memcpy(buf + 24, &sum, 8);
}

/* Checks a head: MRL_ERR_CORRUPT for a wrong magic or version, a total
 * beyond size, or a checksum that does not match. */
static mrl_result mrl__snap_check_head(const void *buf, size_t size, const char *magic,
                                       uint32_t *count, size_t *total) {
  const unsigned char *b = (const unsigned char *)buf;
  uint32_t version;
  uint64_t t, sum;
  if (!buf || size < MRL__SNAP_HEAD || memcmp(b, magic, 8) != 0) return MRL_ERR_CORRUPT;
  memcpy(&version, b + 8, 4);
  memcpy(count, b + 12, 4);
  memcpy(&t, b + 16, 8);
  memcpy(&sum, b + 24, 8);
  if (version != MRL__SNAP_VERSION || t < MRL__SNAP_HEAD || t > (uint64_t)size)
    return MRL_ERR_CORRUPT;
  if (mrl__fnv1a(b + MRL__SNAP_HEAD, (size_t)t - MRL__SNAP_HEAD) != sum) return MRL_ERR_CORRUPT;
  *total = (size_t)t;
  return MRL_OK;
}

static int mrl__env_can_snapshot(const mrl_env *env) {
  return env && env->vt.snapshot && env->vt.restore;
}

MRL_DEF size_t mrl_env_snapshot(const mrl_env *env, void *buf, size_t size) {
  size_t idlen, payload, total;
  mrl__snap_w w;
  if (!mrl__env_can_snapshot(env)) return 0;
  payload = env->vt.snapshot(env->self, NULL, 0);
  if (payload == 0) return 0; /* a hook that cannot now (a wrapper around a user env) */
  idlen = strlen(env->vt.id);
  total = MRL__SNAP_HEAD + idlen + 6 * 4 + 8 + 8 + payload;
  if (!buf || size < total) return total;
  w.buf = (unsigned char *)buf;
  w.at = MRL__SNAP_HEAD;
  mrl__snap_put(&w, env->vt.id, idlen);
  mrl__snap_i32(&w, env->vt.obs_dim);
  mrl__snap_i32(&w, env->vt.num_actions);
  mrl__snap_i32(&w, env->vt.action_dim);
  mrl__snap_i32(&w, env->running);
  mrl__snap_i32(&w, env->ep_length);
  mrl__snap_i32(&w, env->last_success);
  mrl__snap_put(&w, &env->ep_return, sizeof env->ep_return);
  mrl__snap_u64(&w, (uint64_t)payload);
  if (env->vt.snapshot(env->self, w.buf + w.at, payload) != payload) {
    /* a hook whose size changed between the calls: write nothing usable */
    memset(buf, 0, MRL__SNAP_HEAD);
    return total;
  }
  mrl__snap_head(w.buf, "MRLENV01", (uint32_t)idlen, total);
  return total;
}

/* What a snapshot of env holds beside the hook's payload. */
typedef struct mrl__env_snap {
  int running, ep_length, last_success;
  double ep_return;
  const unsigned char *payload;
  size_t payload_len, total;
} mrl__env_snap;

/* Checks everything of an environment snapshot but the hook's payload. */
static mrl_result mrl__env_snap_read(const mrl_env *env, const void *buf, size_t size,
                                     mrl__env_snap *s) {
  mrl__snap_r r;
  const unsigned char *id;
  uint32_t idlen;
  uint64_t payload;
  int dims[3];
  mrl_result res = mrl__snap_check_head(buf, size, "MRLENV01", &idlen, &s->total);
  if (res != MRL_OK) return res;
  r.buf = (const unsigned char *)buf;
  r.size = s->total;
  r.at = MRL__SNAP_HEAD;
  r.bad = 0;
  id = mrl__snap_take(&r, idlen);
  dims[0] = mrl__snap_get_i32(&r);
  dims[1] = mrl__snap_get_i32(&r);
  dims[2] = mrl__snap_get_i32(&r);
  s->running = mrl__snap_get_i32(&r);
  s->ep_length = mrl__snap_get_i32(&r);
  s->last_success = mrl__snap_get_i32(&r);
  mrl__snap_get(&r, &s->ep_return, sizeof s->ep_return);
  payload = mrl__snap_get_u64(&r);
  if (r.bad || payload != (uint64_t)(r.size - r.at)) return MRL_ERR_CORRUPT;
  if (idlen != strlen(env->vt.id) || memcmp(id, env->vt.id, idlen) != 0 ||
      dims[0] != env->vt.obs_dim || dims[1] != env->vt.num_actions || dims[2] != env->vt.action_dim)
    return MRL_ERR_INVALID_ARGUMENT; /* another environment's */
  if ((s->running != 0 && s->running != 1) || s->ep_length < 0 || s->last_success < -1 ||
      s->last_success > 1)
    return MRL_ERR_CORRUPT;
  s->payload = r.buf + r.at;
  s->payload_len = (size_t)payload;
  return MRL_OK;
}

MRL_DEF mrl_result mrl_env_restore(mrl_env *env, const void *buf, size_t size) {
  mrl__env_snap s;
  mrl_result r;
  if (!mrl__env_can_snapshot(env)) return MRL_ERR_INVALID_ARGUMENT;
  r = mrl__env_snap_read(env, buf, size, &s);
  if (r != MRL_OK) return r;
  r = env->vt.restore(env->self, s.payload, s.payload_len);
  if (r != MRL_OK) return r;
  env->running = s.running;
  env->ep_length = s.ep_length;
  env->ep_return = s.ep_return;
  env->last_success = s.last_success;
  env->obs_last = NULL; /* the caller's buffer is unknown: the next step writes it all */
  return MRL_OK;
}

/* Bytes of the vector's arrays in a snapshot. */
static size_t mrl__vecenv_arrays_bytes(size_t n, size_t od) {
  return n * sizeof(uint64_t) + (2 * n * od + 2 * n) * sizeof(float) + 4 * n * sizeof(int);
}

MRL_DEF size_t mrl_vecenv_snapshot(const mrl_vecenv *v, void *buf, size_t size) {
  size_t n, od, total, i;
  mrl__snap_w w;
  if (!v || !v->envs) return 0;
  n = (size_t)v->num_envs;
  od = (size_t)v->obs_dim;
  total = MRL__SNAP_HEAD + 4 * 4 + 8 + sizeof(long long) + mrl__vecenv_arrays_bytes(n, od);
  for (i = 0; i < n; i++) {
    size_t e = mrl_env_snapshot(v->envs[i], NULL, 0);
    if (e == 0) return 0;
    total += 8 + e;
  }
  if (!buf || size < total) return total;
  w.buf = (unsigned char *)buf;
  w.at = MRL__SNAP_HEAD;
  mrl__snap_i32(&w, v->obs_dim);
  mrl__snap_i32(&w, v->num_actions);
  mrl__snap_i32(&w, v->action_dim);
  mrl__snap_i32(&w, v->ready);
  mrl__snap_u64(&w, v->seed);
  mrl__snap_put(&w, &v->total_steps, sizeof(long long));
  mrl__snap_put(&w, v->episodes_started, n * sizeof(uint64_t));
  mrl__snap_put(&w, v->obs, n * od * sizeof(float));
  mrl__snap_put(&w, v->final_obs, n * od * sizeof(float));
  mrl__snap_put(&w, v->rewards, n * sizeof(float));
  mrl__snap_put(&w, v->episode_return, n * sizeof(float));
  mrl__snap_put(&w, v->terminated, n * sizeof(int));
  mrl__snap_put(&w, v->truncated, n * sizeof(int));
  mrl__snap_put(&w, v->episode_length, n * sizeof(int));
  mrl__snap_put(&w, v->episode_success, n * sizeof(int));
  for (i = 0; i < n; i++) {
    size_t e = mrl_env_snapshot(v->envs[i], NULL, 0);
    mrl__snap_u64(&w, (uint64_t)e);
    if (w.at + e > total || mrl_env_snapshot(v->envs[i], w.buf + w.at, e) != e) {
      memset(buf, 0, MRL__SNAP_HEAD); /* a hook whose size changed: nothing usable */
      return total;
    }
    w.at += e;
  }
  mrl__snap_head(w.buf, "MRLVEC01", (uint32_t)n, total);
  return total;
}

MRL_DEF mrl_result mrl_vecenv_restore(mrl_vecenv *v, const void *buf, size_t size) {
  mrl__snap_r r;
  size_t n, od, total, i, backup_len = 0, at;
  const unsigned char *arrays, *envs_at;
  unsigned char *backup;
  uint32_t count;
  int dims[4], k;
  uint64_t seed;
  long long total_steps;
  mrl_result res;
  if (!v || !v->envs) return MRL_ERR_INVALID_ARGUMENT;
  for (k = 0; k < v->num_envs; k++)
    if (!mrl__env_can_snapshot(v->envs[k])) return MRL_ERR_INVALID_ARGUMENT;
  res = mrl__snap_check_head(buf, size, "MRLVEC01", &count, &total);
  if (res != MRL_OK) return res;
  n = (size_t)v->num_envs;
  od = (size_t)v->obs_dim;
  r.buf = (const unsigned char *)buf;
  r.size = total;
  r.at = MRL__SNAP_HEAD;
  r.bad = 0;
  for (k = 0; k < 4; k++) dims[k] = mrl__snap_get_i32(&r);
  seed = mrl__snap_get_u64(&r);
  mrl__snap_get(&r, &total_steps, sizeof total_steps);
  if (r.bad) return MRL_ERR_CORRUPT;
  if (count != (uint32_t)n || dims[0] != v->obs_dim || dims[1] != v->num_actions ||
      dims[2] != v->action_dim)
    return MRL_ERR_INVALID_ARGUMENT;
  if ((dims[3] != 0 && dims[3] != 1) || total_steps < 0) return MRL_ERR_CORRUPT;
  arrays = mrl__snap_take(&r, mrl__vecenv_arrays_bytes(n, od));
  if (!arrays) return MRL_ERR_CORRUPT;
  { /* flags 0/1, success -1/0/1, lengths >= 0 */
    const unsigned char *ints = arrays + mrl__vecenv_arrays_bytes(n, od) - 4 * n * sizeof(int);
    for (i = 0; i < n; i++) {
      int term, trunc, len, succ;
      memcpy(&term, ints + sizeof(int) * i, sizeof(int));
      memcpy(&trunc, ints + sizeof(int) * (n + i), sizeof(int));
      memcpy(&len, ints + sizeof(int) * (2 * n + i), sizeof(int));
      memcpy(&succ, ints + sizeof(int) * (3 * n + i), sizeof(int));
      if ((term != 0 && term != 1) || (trunc != 0 && trunc != 1) || len < 0 || succ < -1 ||
          succ > 1)
        return MRL_ERR_CORRUPT;
    }
  }
  /* every environment's snapshot checked before any changes */
  envs_at = r.buf + r.at;
  for (i = 0; i < n; i++) {
    mrl__env_snap s;
    uint64_t e = mrl__snap_get_u64(&r);
    const unsigned char *p =
        r.bad || e > (uint64_t)(r.size - r.at) ? NULL : mrl__snap_take(&r, (size_t)e);
    if (!p) return MRL_ERR_CORRUPT;
    res = mrl__env_snap_read(v->envs[i], p, (size_t)e, &s);
    if (res != MRL_OK) return res;
    if (s.total != (size_t)e) return MRL_ERR_CORRUPT;
  }
  if (r.at != r.size) return MRL_ERR_CORRUPT;
  /* a hook may still refuse its payload: keep the current state to go back to */
  for (i = 0; i < n; i++) backup_len += 8 + mrl_env_snapshot(v->envs[i], NULL, 0);
  backup = (unsigned char *)MRL_MALLOC(backup_len);
  if (!backup) return MRL_ERR_OUT_OF_MEMORY;
  for (i = 0, at = 0; i < n; i++) {
    size_t e = mrl_env_snapshot(v->envs[i], NULL, 0);
    memcpy(backup + at, &e, sizeof e);
    (void)mrl_env_snapshot(v->envs[i], backup + at + 8, e);
    at += 8 + e;
  }
  r.at = (size_t)(envs_at - r.buf);
  for (i = 0; i < n; i++) {
    size_t e = (size_t)mrl__snap_get_u64(&r);
    res = mrl_env_restore(v->envs[i], mrl__snap_take(&r, e), e);
    if (res != MRL_OK) {
      size_t j;
      for (j = 0, at = 0; j < i; j++) {
        size_t b;
        memcpy(&b, backup + at, sizeof b);
        (void)mrl_env_restore(v->envs[j], backup + at + 8, b);
        at += 8 + b;
      }
      MRL_FREE(backup);
      return res;
    }
  }
  MRL_FREE(backup);
  v->ready = dims[3];
  v->seed = seed;
  v->total_steps = total_steps;
  r.buf = arrays; /* the arrays again, in the order written */
  r.size = mrl__vecenv_arrays_bytes(n, od);
  r.at = 0;
  mrl__snap_get(&r, v->episodes_started, n * sizeof(uint64_t));
  mrl__snap_get(&r, v->obs, n * od * sizeof(float));
  mrl__snap_get(&r, v->final_obs, n * od * sizeof(float));
  mrl__snap_get(&r, v->rewards, n * sizeof(float));
  mrl__snap_get(&r, v->episode_return, n * sizeof(float));
  mrl__snap_get(&r, v->terminated, n * sizeof(int));
  mrl__snap_get(&r, v->truncated, n * sizeof(int));
  mrl__snap_get(&r, v->episode_length, n * sizeof(int));
  mrl__snap_get(&r, v->episode_success, n * sizeof(int));
  return MRL_OK;
}

/* ---- wrappers ------------------------------------------------------------ >>wrappers */

enum {
  MRL__WRAP_PREV_ACTION_REWARD,
  MRL__WRAP_FRAME_STACK,
  MRL__WRAP_OBS_NOISE,
  MRL__WRAP_OBS_MASK,
  MRL__WRAP_OBS_DROPOUT,
  MRL__WRAP_TIME_LIMIT,
  MRL__WRAP_DOMAIN_RANDOMIZATION,
  MRL__WRAP_REWARD_SCALE
};

typedef struct mrl__wrap {
  mrl_env *inner;
  int kind;
  int inner_dim; /* inner obs_dim */
  int k;         /* frame stack depth */
  float param;   /* sigma, p or the reward scale */
  mrl_rng rng;
  float *frames;   /* frame stack: [k * inner_dim], oldest first */
  uint8_t *masked; /* obs mask: [inner_dim]; domain randomisation: [num_params], 1 = randomised */
  double *range;   /* domain randomisation: [2 * num_params], lo and hi of each parameter */
  int num_params;  /* of inner */
  int inner_task_dim;
  int last_action; /* previous action: its discrete index, -1 after a reset */
} mrl__wrap;

/* u_i of the domain randomisation: uniform in [0, 1) with 53 bits, from the
 * episode seed and the parameter index only. */
static double mrl__dr_uniform(uint64_t seed, int index) {
  mrl_rng r = mrl_rng_make(mrl__mix64(mrl__mix64(seed ^ 0x646f6d61696eULL) + (uint64_t)index));
  uint32_t a = mrl_rng_u32(&r) >> 5, b = mrl_rng_u32(&r) >> 6;
  return ((double)a * 67108864.0 + (double)b) * (1.0 / 9007199254740992.0);
}

static void mrl__wrap_obs(mrl__wrap *w, float *obs) {
  int i;
  if (w->kind == MRL__WRAP_OBS_NOISE) {
    for (i = 0; i < w->inner_dim; i++) obs[i] += w->param * mrl_rng_normal(&w->rng);
  } else if (w->kind == MRL__WRAP_OBS_MASK) {
    for (i = 0; i < w->inner_dim; i++)
      if (w->masked[i]) obs[i] = 0.0f;
  } else if (w->kind == MRL__WRAP_OBS_DROPOUT) {
    for (i = 0; i < w->inner_dim; i++)
      if (mrl_rng_uniform(&w->rng) < w->param) obs[i] = 0.0f;
  }
}

static mrl_result mrl__wrap_reset(void *self, uint64_t seed, float *obs) {
  mrl__wrap *w = (mrl__wrap *)self;
  mrl_env *in = w->inner;
  size_t d = (size_t)w->inner_dim;
  mrl_result r;
  /* a stream of its own, not the one the environment draws from */
  w->rng = mrl_rng_make(mrl__mix64(seed ^ 0x77726170706572ULL));
  if (w->kind == MRL__WRAP_DOMAIN_RANDOMIZATION) {
    int i;
    for (i = 0; i < w->num_params; i++) {
      double lo = w->range[2 * i], hi = w->range[2 * i + 1], v;
      if (!w->masked[i]) continue;
      v = lo + (hi - lo) * mrl__dr_uniform(seed, i);
      if (v > hi) v = hi; /* rounding */
      r = in->vt.set_param(in->self, i, v);
      if (r != MRL_OK) return r; /* only a user hook that narrowed its domain */
    }
  }
  if (w->kind == MRL__WRAP_FRAME_STACK) {
    memset(w->frames, 0, (size_t)(w->k - 1) * d * sizeof(float));
    r = mrl_env_reset(in, seed, w->frames + (size_t)(w->k - 1) * d);
    if (r == MRL_OK) memcpy(obs, w->frames, (size_t)w->k * d * sizeof(float));
    return r;
  }
  r = mrl_env_reset(in, seed, obs);
  if (r != MRL_OK) return r;
  if (w->kind == MRL__WRAP_PREV_ACTION_REWARD) {
    int extra = (in->vt.num_actions > 0 ? in->vt.num_actions : in->vt.action_dim) + 1;
    memset(obs + d, 0, (size_t)extra * sizeof(float));
    w->last_action = -1;
  }
  mrl__wrap_obs(w, obs);
  return MRL_OK;
}

/* delta: obs still holds this wrapper's last observation (step_delta). */
static mrl_result mrl__wrap_step_any(void *self, const float *action, float *obs, float *reward,
                                     int *terminated, int *truncated, int delta) {
  mrl__wrap *w = (mrl__wrap *)self;
  mrl_env *in = w->inner;
  size_t d = (size_t)w->inner_dim;
  mrl_result r;
  if (w->kind == MRL__WRAP_FRAME_STACK) {
    float *last = w->frames + (size_t)(w->k - 1) * d;
    memmove(w->frames, w->frames + d, (size_t)(w->k - 1) * d * sizeof(float));
    r = mrl_env_step(in, action, last, reward, terminated, truncated);
    if (r == MRL_OK) memcpy(obs, w->frames, (size_t)w->k * d * sizeof(float));
    return r;
  }
  /* the inner observation goes to obs[0 .. inner_dim): where this wrapper
   * leaves it untouched, the inner environment may update it in place */
  r = mrl__env_step(in, action, obs, reward, terminated, truncated, delta);
  if (r != MRL_OK) return r;
  if (w->kind == MRL__WRAP_REWARD_SCALE) *reward *= w->param;
  if (w->kind == MRL__WRAP_PREV_ACTION_REWARD) {
    float *a = obs + d;
    int n = in->vt.num_actions, i;
    if (n > 0) {
      if (!delta)
        for (i = 0; i < n; i++) a[i] = 0.0f;
      else if (w->last_action >= 0) /* the rest of the one-hot is still 0 */
        a[w->last_action] = 0.0f;
      w->last_action = (int)action[0];
      a[w->last_action] = 1.0f;
      a[n] = *reward;
    } else {
      for (i = 0; i < in->vt.action_dim; i++) a[i] = action[i]; /* already clipped */
      a[in->vt.action_dim] = *reward;
    }
  }
  mrl__wrap_obs(w, obs);
  return MRL_OK;
}

static mrl_result mrl__wrap_step(void *self, const float *action, float *obs, float *reward,
                                 int *terminated, int *truncated) {
  return mrl__wrap_step_any(self, action, obs, reward, terminated, truncated, 0);
}

/* Only for the wrappers that pass the inner observation through unchanged
 * (and write their own entries in full). */
static mrl_result mrl__wrap_step_delta(void *self, const float *action, float *obs, float *reward,
                                       int *terminated, int *truncated) {
  return mrl__wrap_step_any(self, action, obs, reward, terminated, truncated, 1);
}

static void mrl__wrap_destroy(void *self) {
  mrl__wrap *w = (mrl__wrap *)self;
  mrl_env_free(w->inner);
  MRL_FREE(w);
}

/* success as the wrapped environment sees its current episode (it may still
 * be running when this wrapper's time limit ends the episode) */
static int mrl__wrap_success(const void *self) {
  const mrl_env *in = ((const mrl__wrap *)self)->inner;
  return in->vt.episode_success(in->self);
}
static int mrl__wrap_render(const void *self, char *buf, size_t size) {
  return mrl_env_render(((const mrl__wrap *)self)->inner, buf, size);
}
static void mrl__wrap_task(const void *self, float *out) {
  const mrl__wrap *w = (const mrl__wrap *)self;
  mrl_env_task(w->inner, out);
  if (w->kind == MRL__WRAP_DOMAIN_RANDOMIZATION) {
    int i;
    for (i = 0; i < w->num_params; i++)
      out[w->inner_task_dim + i] = (float)w->inner->vt.get_param(w->inner->self, i);
  }
}
static const char *mrl__wrap_param_name(const void *self, int index) {
  return mrl_env_param_name(((const mrl__wrap *)self)->inner, index);
}
static double mrl__wrap_get_param(const void *self, int index) {
  const mrl_env *in = ((const mrl__wrap *)self)->inner;
  return in->vt.get_param(in->self, index);
}
static mrl_result mrl__wrap_set_param(void *self, int index, double value) {
  mrl_env *in = ((mrl__wrap *)self)->inner;
  return in->vt.set_param(in->self, index, value);
}

/* Snapshot of a wrapper: its own state (generator, previous action, stacked
 * frames, randomised ranges), then the wrapped environment's snapshot. The
 * mask, sigma and p are fixed by the id and not written. */
static size_t mrl__wrap_own_bytes(const mrl__wrap *w) {
  size_t n = 5 * sizeof(int32_t) + sizeof(mrl_rng);
  if (w->kind == MRL__WRAP_FRAME_STACK) n += (size_t)w->k * (size_t)w->inner_dim * sizeof(float);
  if (w->kind == MRL__WRAP_DOMAIN_RANDOMIZATION)
    n += (size_t)w->num_params * (2 * sizeof(double) + 1);
  return n;
}

static size_t mrl__wrap_snapshot(const void *self, void *buf, size_t size) {
  const mrl__wrap *w = (const mrl__wrap *)self;
  size_t own = mrl__wrap_own_bytes(w), inner = mrl_env_snapshot(w->inner, NULL, 0), total;
  mrl__snap_w s;
  if (inner == 0) return 0;
  total = own + 8 + inner;
  if (!buf || size < total) return total;
  s.buf = (unsigned char *)buf;
  s.at = 0;
  mrl__snap_i32(&s, w->kind);
  mrl__snap_i32(&s, w->inner_dim);
  mrl__snap_i32(&s, w->k);
  mrl__snap_i32(&s, w->num_params);
  mrl__snap_i32(&s, w->last_action);
  mrl__snap_put(&s, &w->rng, sizeof w->rng);
  if (w->kind == MRL__WRAP_FRAME_STACK)
    mrl__snap_put(&s, w->frames, (size_t)w->k * (size_t)w->inner_dim * sizeof(float));
  if (w->kind == MRL__WRAP_DOMAIN_RANDOMIZATION) {
    mrl__snap_put(&s, w->range, (size_t)w->num_params * 2 * sizeof(double));
    mrl__snap_put(&s, w->masked, (size_t)w->num_params);
  }
  mrl__snap_u64(&s, (uint64_t)inner);
  if (mrl_env_snapshot(w->inner, s.buf + s.at, inner) != inner) return 0;
  return total;
}

static mrl_result mrl__wrap_restore(void *self, const void *buf, size_t size) {
  mrl__wrap *w = (mrl__wrap *)self;
  mrl__snap_r r;
  const unsigned char *frames = NULL, *range = NULL, *masked = NULL, *inner;
  int kind, inner_dim, k, np, last_action, i, n = w->inner->vt.num_actions;
  uint64_t inner_len;
  mrl_rng rng;
  mrl_result res;
  if (!buf) return MRL_ERR_CORRUPT;
  r.buf = (const unsigned char *)buf;
  r.size = size;
  r.at = 0;
  r.bad = 0;
  kind = mrl__snap_get_i32(&r);
  inner_dim = mrl__snap_get_i32(&r);
  k = mrl__snap_get_i32(&r);
  np = mrl__snap_get_i32(&r);
  last_action = mrl__snap_get_i32(&r);
  mrl__snap_get(&r, &rng, sizeof rng);
  if (r.bad) return MRL_ERR_CORRUPT;
  if (kind != w->kind || inner_dim != w->inner_dim || k != w->k || np != w->num_params)
    return MRL_ERR_INVALID_ARGUMENT;
  if (last_action < -1 || last_action >= (n > 0 ? n : 1)) return MRL_ERR_CORRUPT;
  if (kind == MRL__WRAP_FRAME_STACK)
    frames = mrl__snap_take(&r, (size_t)k * (size_t)inner_dim * sizeof(float));
  if (kind == MRL__WRAP_DOMAIN_RANDOMIZATION) {
    range = mrl__snap_take(&r, (size_t)np * 2 * sizeof(double));
    masked = mrl__snap_take(&r, (size_t)np);
  }
  inner_len = mrl__snap_get_u64(&r);
  if (r.bad || inner_len != (uint64_t)(r.size - r.at)) return MRL_ERR_CORRUPT;
  inner = r.buf + r.at;
  for (i = 0; masked && i < np; i++) { /* ranges as set_range accepts them */
    double lo, hi;
    memcpy(&lo, range + 2 * sizeof(double) * (size_t)i, sizeof lo);
    memcpy(&hi, range + 2 * sizeof(double) * (size_t)i + sizeof lo, sizeof hi);
    if (masked[i] > 1 || (masked[i] && !(lo - lo == 0.0 && hi - hi == 0.0 && lo <= hi)))
      return MRL_ERR_CORRUPT;
  }
  res = mrl_env_restore(w->inner, inner, (size_t)inner_len);
  if (res != MRL_OK) return res;
  w->last_action = last_action;
  w->rng = rng;
  if (frames) memcpy(w->frames, frames, (size_t)k * (size_t)inner_dim * sizeof(float));
  if (range) {
    memcpy(w->range, range, (size_t)np * 2 * sizeof(double));
    memcpy(w->masked, masked, (size_t)np);
  }
  return MRL_OK;
}

/* Builds the wrapper: obs_dim and the id suffix given; extra_floats and
 * extra_bytes of scratch after the struct. */
static mrl_env *mrl__wrap_new(mrl_env *inner, int kind, int obs_dim, const char *suffix,
                              size_t extra_floats, size_t extra_bytes, mrl__wrap **out) {
  mrl_env_vtable vt;
  mrl__wrap *w;
  mrl_env *env;
  size_t idlen, head = mrl__align8(sizeof(mrl__wrap));
  char *id;
  if (!inner || obs_dim < 1) return NULL;
  idlen = strlen(inner->vt.id) + strlen(suffix) + 1;
  w = (mrl__wrap *)MRL_MALLOC(head + extra_floats * sizeof(float) + extra_bytes);
  id = (char *)MRL_MALLOC(idlen);
  if (!w || !id) {
    MRL_FREE(w);
    MRL_FREE(id);
    return NULL;
  }
  memset(w, 0, head + extra_floats * sizeof(float) + extra_bytes);
  w->inner = inner;
  w->kind = kind;
  w->inner_dim = inner->vt.obs_dim;
  w->frames = (float *)(void *)((char *)w + head);
  w->masked = (uint8_t *)(w->frames + extra_floats);
  memcpy(id, inner->vt.id, strlen(inner->vt.id));
  memcpy(id + strlen(inner->vt.id), suffix, strlen(suffix) + 1);
  /* from the inner table only what the wrapper keeps as it is: the action
   * space, its bounds (copied by create) and the time limit; every hook is
   * the wrapper's own or none (never the inner one's, which takes the inner
   * self) */
  memset(&vt, 0, sizeof vt);
  vt.num_actions = inner->vt.num_actions;
  vt.action_dim = inner->vt.action_dim;
  vt.action_low = inner->vt.action_low;
  vt.action_high = inner->vt.action_high;
  vt.max_episode_steps = inner->vt.max_episode_steps;
  vt.id = id;
  vt.obs_dim = obs_dim;
  vt.reset = mrl__wrap_reset;
  vt.step = mrl__wrap_step;
  if (inner->vt.step_delta &&
      (kind == MRL__WRAP_PREV_ACTION_REWARD || kind == MRL__WRAP_TIME_LIMIT ||
       kind == MRL__WRAP_DOMAIN_RANDOMIZATION || kind == MRL__WRAP_REWARD_SCALE))
    vt.step_delta = mrl__wrap_step_delta;
  vt.destroy = mrl__wrap_destroy;
  vt.episode_success = inner->vt.episode_success ? mrl__wrap_success : NULL;
  vt.render = inner->vt.render ? mrl__wrap_render : NULL;
  vt.task = inner->vt.task ? mrl__wrap_task : NULL;
  vt.task_dim = inner->vt.task ? inner->vt.task_dim : 0;
  w->num_params = mrl_env_num_params(inner);
  w->inner_task_dim = vt.task_dim;
  vt.num_params = w->num_params;
  vt.param_name = w->num_params ? mrl__wrap_param_name : NULL;
  vt.get_param = w->num_params ? mrl__wrap_get_param : NULL;
  vt.set_param = w->num_params ? mrl__wrap_set_param : NULL;
  if (kind == MRL__WRAP_DOMAIN_RANDOMIZATION) { /* the physics of the episode */
    vt.task = mrl__wrap_task;
    vt.task_dim += w->num_params;
  }
  if (mrl__env_can_snapshot(inner)) {
    vt.snapshot = mrl__wrap_snapshot;
    vt.restore = mrl__wrap_restore;
  }
  env = mrl_env_create(&vt, w);
  MRL_FREE(id);
  if (!env) {
    MRL_FREE(w);
    return NULL;
  }
  *out = w;
  return env;
}

MRL_DEF mrl_env *mrl_env_inner(const mrl_env *env) {
  return env && env->vt.destroy == mrl__wrap_destroy ? ((mrl__wrap *)env->self)->inner : NULL;
}

MRL_DEF mrl_env *mrl_env_wrap_prev_action_reward(mrl_env *inner) {
  mrl__wrap *w;
  int extra;
  if (!inner) return NULL;
  extra = (inner->vt.num_actions > 0 ? inner->vt.num_actions : inner->vt.action_dim) + 1;
  return mrl__wrap_new(inner, MRL__WRAP_PREV_ACTION_REWARD, inner->vt.obs_dim + extra,
                       "|prev_action_reward", 0, 0, &w);
}

MRL_DEF mrl_env *mrl_env_wrap_frame_stack(mrl_env *inner, int k) {
  char suffix[32];
  mrl__wrap *w;
  mrl_env *env;
  if (!inner || k < 1 || k > 1000000 || inner->vt.obs_dim > 2147483647 / k) return NULL;
  snprintf(suffix, sizeof suffix, "|frame_stack:%d", k);
  env = mrl__wrap_new(inner, MRL__WRAP_FRAME_STACK, k * inner->vt.obs_dim, suffix,
                      (size_t)k * (size_t)inner->vt.obs_dim, 0, &w);
  if (env) w->k = k;
  return env;
}

MRL_DEF mrl_env *mrl_env_wrap_obs_noise(mrl_env *inner, float sigma) {
  char suffix[48];
  mrl__wrap *w;
  mrl_env *env;
  if (!inner || !(sigma >= 0.0f && sigma <= 3.4e38f)) return NULL;
  snprintf(suffix, sizeof suffix, "|obs_noise:%.9g", (double)sigma);
  env = mrl__wrap_new(inner, MRL__WRAP_OBS_NOISE, inner->vt.obs_dim, suffix, 0, 0, &w);
  if (env) w->param = sigma;
  return env;
}

MRL_DEF mrl_env *mrl_env_wrap_obs_dropout(mrl_env *inner, float p) {
  char suffix[48];
  mrl__wrap *w;
  mrl_env *env;
  if (!inner || !(p >= 0.0f && p <= 1.0f)) return NULL;
  snprintf(suffix, sizeof suffix, "|obs_dropout:%.9g", (double)p);
  env = mrl__wrap_new(inner, MRL__WRAP_OBS_DROPOUT, inner->vt.obs_dim, suffix, 0, 0, &w);
  if (env) w->param = p;
  return env;
}

MRL_DEF mrl_env *mrl_env_wrap_obs_mask(mrl_env *inner, const int *indices, int count) {
  char *suffix;
  mrl__wrap *w;
  mrl_env *env;
  size_t at;
  int i;
  if (!inner || count < 0 || (count > 0 && !indices)) return NULL;
  for (i = 0; i < count; i++)
    if (indices[i] < 0 || indices[i] >= inner->vt.obs_dim) return NULL;
  suffix = (char *)MRL_MALLOC((size_t)count * 12 + 16);
  if (!suffix) return NULL;
  at = (size_t)sprintf(suffix, "|obs_mask:");
  for (i = 0; i < count; i++) at += (size_t)sprintf(suffix + at, i ? ",%d" : "%d", indices[i]);
  env = mrl__wrap_new(inner, MRL__WRAP_OBS_MASK, inner->vt.obs_dim, suffix, 0,
                      (size_t)inner->vt.obs_dim, &w);
  MRL_FREE(suffix);
  if (env)
    for (i = 0; i < count; i++) w->masked[indices[i]] = 1;
  return env;
}

MRL_DEF mrl_env *mrl_env_wrap_time_limit(mrl_env *inner, int max_episode_steps) {
  char suffix[32];
  mrl__wrap *w;
  mrl_env *env;
  if (!inner || max_episode_steps < 0) return NULL;
  snprintf(suffix, sizeof suffix, "|time_limit:%d", max_episode_steps);
  env = mrl__wrap_new(inner, MRL__WRAP_TIME_LIMIT, inner->vt.obs_dim, suffix, 0, 0, &w);
  if (env) {
    mrl_env *e;
    env->vt.max_episode_steps = max_episode_steps;
    for (e = inner; e; e = mrl_env_inner(e)) e->vt.max_episode_steps = 0; /* replaced, all levels */
  }
  return env;
}

MRL_DEF mrl_env *mrl_env_wrap_reward_scale(mrl_env *inner, float scale) {
  char suffix[48];
  mrl__wrap *w;
  mrl_env *env;
  if (!inner || !(scale - scale == 0.0f)) return NULL;
  snprintf(suffix, sizeof suffix, "|reward_scale:%.9g", (double)scale);
  env = mrl__wrap_new(inner, MRL__WRAP_REWARD_SCALE, inner->vt.obs_dim, suffix, 0, 0, &w);
  if (env) w->param = scale;
  return env;
}

/* Prints a double so that strtod reads it back exactly, as short as that
 * allows. */
static void mrl__put_double(char *buf, size_t size, double v) {
  int prec;
  for (prec = 6; prec < 17; prec++) {
    snprintf(buf, size, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) return;
  }
  snprintf(buf, size, "%.17g", v);
}

/* The domain-randomising wrapper at env or below it; NULL when none. */
static mrl__wrap *mrl__dr_find(const mrl_env *env) {
  for (; env; env = mrl_env_inner(env)) {
    mrl__wrap *w = mrl_env_inner(env) ? (mrl__wrap *)env->self : NULL;
    if (w && w->kind == MRL__WRAP_DOMAIN_RANDOMIZATION) return w;
  }
  return NULL;
}

/* Checks a range of parameter index of in without changing anything: both
 * bounds are set and the current value restored. */
static mrl_result mrl__dr_check(mrl_env *in, int index, double lo, double hi) {
  double cur;
  mrl_result r;
  if (index < 0 || !(lo - lo == 0.0) || !(hi - hi == 0.0) || lo > hi)
    return MRL_ERR_INVALID_ARGUMENT;
  cur = in->vt.get_param(in->self, index);
  r = in->vt.set_param(in->self, index, lo);
  if (r == MRL_OK) r = in->vt.set_param(in->self, index, hi);
  (void)in->vt.set_param(in->self, index, cur);
  return r == MRL_OK ? MRL_OK : MRL_ERR_INVALID_ARGUMENT;
}

MRL_DEF mrl_env *mrl_env_wrap_domain_randomization(mrl_env *inner, const mrl_param_range *ranges,
                                                   int count) {
  char *suffix;
  mrl__wrap *w;
  mrl_env *env;
  size_t at, cap;
  int i, np = mrl_env_num_params(inner);
  if (!inner || np < 1 || count < 0 || (count > 0 && !ranges)) return NULL;
  for (i = 0; i < count; i++) {
    int idx = mrl_env_param_index(inner, ranges[i].name);
    if (idx < 0 || strlen(ranges[i].name) > 200 ||
        mrl__dr_check(inner, idx, ranges[i].lo, ranges[i].hi) != MRL_OK)
      return NULL;
  }
  cap = (size_t)count * 260 + 32;
  suffix = (char *)MRL_MALLOC(cap);
  if (!suffix) return NULL;
  at = (size_t)sprintf(suffix, "|domain_randomization");
  for (i = 0; i < count; i++) {
    char lo[32], hi[32];
    mrl__put_double(lo, sizeof lo, ranges[i].lo);
    mrl__put_double(hi, sizeof hi, ranges[i].hi);
    at += (size_t)sprintf(suffix + at, "%c%s=%s:%s", i ? ',' : ':', ranges[i].name, lo, hi);
  }
  /* scratch: [2 * np] doubles (as 4 * np floats, 8-aligned) and [np] flags */
  env = mrl__wrap_new(inner, MRL__WRAP_DOMAIN_RANDOMIZATION, inner->vt.obs_dim, suffix,
                      (size_t)np * 4, (size_t)np, &w);
  MRL_FREE(suffix);
  if (env) {
    w->range = (double *)(void *)w->frames;
    for (i = 0; i < count; i++) {
      int idx = mrl_env_param_index(inner, ranges[i].name);
      w->range[2 * idx] = ranges[i].lo;
      w->range[2 * idx + 1] = ranges[i].hi;
      w->masked[idx] = 1;
    }
  }
  return env;
}

MRL_DEF mrl_result mrl_env_domain_randomization_set_range(mrl_env *env, const char *name, double lo,
                                                          double hi) {
  mrl__wrap *w = mrl__dr_find(env);
  int idx;
  if (!w) return MRL_ERR_INVALID_ARGUMENT;
  idx = mrl_env_param_index(w->inner, name);
  if (mrl__dr_check(w->inner, idx, lo, hi) != MRL_OK) return MRL_ERR_INVALID_ARGUMENT;
  w->range[2 * idx] = lo;
  w->range[2 * idx + 1] = hi;
  w->masked[idx] = 1;
  return MRL_OK;
}

MRL_DEF mrl_result mrl_env_domain_randomization_get_range(const mrl_env *env, const char *name,
                                                          double *lo, double *hi) {
  mrl__wrap *w = mrl__dr_find(env);
  int idx = w ? mrl_env_param_index(w->inner, name) : -1;
  if (idx < 0 || !w->masked[idx]) return MRL_ERR_INVALID_ARGUMENT;
  if (lo) *lo = w->range[2 * idx];
  if (hi) *hi = w->range[2 * idx + 1];
  return MRL_OK;
}

MRL_DEF mrl_result mrl_vecenv_domain_randomization_set_range(mrl_vecenv *v, const char *name,
                                                             double lo, double hi) {
  int i;
  if (!v || !v->envs) return MRL_ERR_INVALID_ARGUMENT;
  for (i = 0; i < v->num_envs; i++) {
    mrl__wrap *w = mrl__dr_find(v->envs[i]);
    if (!w || mrl__dr_check(w->inner, mrl_env_param_index(w->inner, name), lo, hi) != MRL_OK)
      return MRL_ERR_INVALID_ARGUMENT;
  }
  for (i = 0; i < v->num_envs; i++)
    (void)mrl_env_domain_randomization_set_range(v->envs[i], name, lo, hi);
  return MRL_OK;
}

/* "<id>|<wrapper>[:<arg>]|...": the base from the registry, then each
 * wrapper in order. NULL on any malformed part. */
static mrl_env *mrl__env_make_wrapped(const char *id) {
  const char *bar = strchr(id, '|');
  size_t n = (size_t)(bar - id);
  char base[256];
  mrl_env *env;
  if (n == 0 || n >= sizeof base) return NULL;
  memcpy(base, id, n);
  base[n] = '\0';
  env = mrl_env_make(base);
  while (env && *bar == '|') {
    const char *name = bar + 1, *colon, *end;
    mrl_env *next = NULL;
    size_t len;
    bar = strchr(name, '|');
    if (!bar) bar = name + strlen(name);
    colon = (const char *)memchr(name, ':', (size_t)(bar - name));
    len = (size_t)((colon ? colon : bar) - name);
    end = colon ? colon + 1 : bar;
#define MRL__IS(s) (len == sizeof(s) - 1 && strncmp(name, s, len) == 0)
    if (MRL__IS("prev_action_reward") && !colon) {
      next = mrl_env_wrap_prev_action_reward(env);
    } else if ((MRL__IS("frame_stack") || MRL__IS("time_limit")) && colon) {
      long v;
      const char *p = end;
      if (mrl__parse_uint(&p, &v, 1000000000L) && p == bar)
        next = MRL__IS("frame_stack") ? mrl_env_wrap_frame_stack(env, (int)v)
                                      : mrl_env_wrap_time_limit(env, (int)v);
    } else if ((MRL__IS("obs_noise") || MRL__IS("obs_dropout")) && colon) {
      char *p;
      double v = strtod(end, &p);
      if (p == bar && p != end && v == v && v <= 3.4e38)
        next = MRL__IS("obs_noise") ? mrl_env_wrap_obs_noise(env, (float)v)
                                    : mrl_env_wrap_obs_dropout(env, (float)v);
    } else if (MRL__IS("reward_scale") && colon) {
      char *p;
      double v = strtod(end, &p);
      if (p == bar && p != end && v - v == 0.0 && fabs(v) <= 3.4e38)
        next = mrl_env_wrap_reward_scale(env, (float)v);
    } else if (MRL__IS("obs_mask") && colon) {
      int idx[64], count = 0, ok = 1;
      const char *p = end;
      while (ok && p < bar) {
        long v;
        if (count == 64 || !mrl__parse_uint(&p, &v, 1000000000L))
          ok = 0;
        else
          idx[count++] = (int)v;
        if (ok && p < bar && *p++ != ',') ok = 0;
        if (ok && p == bar && p[-1] == ',') ok = 0;
      }
      if (ok && count > 0) next = mrl_env_wrap_obs_mask(env, idx, count);
    } else if (MRL__IS("domain_randomization")) {
      /* [:<name>=<lo>:<hi>[,...]] */
      mrl_param_range rg[16];
      char names[16][64];
      int count = 0, ok = 1;
      const char *p = end;
      while (ok && colon && p < bar) {
        const char *eq = p;
        char *q;
        while (eq < bar && *eq != '=') eq++;
        if (count == 16 || eq == bar || eq == p || (size_t)(eq - p) >= sizeof names[0]) {
          ok = 0;
          break;
        }
        memcpy(names[count], p, (size_t)(eq - p));
        names[count][eq - p] = '\0';
        rg[count].name = names[count];
        rg[count].lo = strtod(eq + 1, &q);
        if (q == eq + 1 || q >= bar || *q != ':') {
          ok = 0;
          break;
        }
        p = q + 1;
        rg[count].hi = strtod(p, &q);
        if (q == p || q > bar || (q < bar && *q != ',') || (*q == ',' && q + 1 == bar)) {
          ok = 0;
          break;
        }
        count++;
        p = q < bar ? q + 1 : q;
      }
      if (colon && count == 0) ok = 0;
      if (ok) next = mrl_env_wrap_domain_randomization(env, rg, count);
    }
#undef MRL__IS
    if (!next) mrl_env_free(env);
    env = next;
  }
  return env;
}

/* ---- episode statistics ------------------------------------------------- >>episode_stats */

MRL_DEF void mrl_episode_stats_init(mrl_episode_stats *s) {
  memset(s, 0, sizeof *s);
}

MRL_DEF void mrl_episode_stats_add(mrl_episode_stats *s, float ret, int len, int success) {
  s->returns[s->next] = ret;
  s->lengths[s->next] = (float)len;
  s->success[s->next] = success < 0 ? -1 : success != 0;
  s->next = (s->next + 1) % MRL_EPISODE_STATS_WINDOW;
  if (s->count < MRL_EPISODE_STATS_WINDOW) s->count++;
  s->total_episodes++;
}

MRL_DEF void mrl_episode_stats_add_vecenv(mrl_episode_stats *s, const mrl_vecenv *v) {
  int i;
  for (i = 0; i < v->num_envs; i++)
    if (v->terminated[i] || v->truncated[i])
      mrl_episode_stats_add(s, v->episode_return[i], v->episode_length[i], v->episode_success[i]);
}

/* Sums run over the ring in slot order: the same episodes give the same mean. */
MRL_DEF float mrl_episode_stats_mean_return(const mrl_episode_stats *s) {
  double sum = 0.0;
  int i;
  if (s->count == 0) return 0.0f;
  for (i = 0; i < s->count; i++) sum += (double)s->returns[i];
  return (float)(sum / s->count);
}

MRL_DEF float mrl_episode_stats_mean_length(const mrl_episode_stats *s) {
  double sum = 0.0;
  int i;
  if (s->count == 0) return 0.0f;
  for (i = 0; i < s->count; i++) sum += (double)s->lengths[i];
  return (float)(sum / s->count);
}

MRL_DEF float mrl_episode_stats_success_rate(const mrl_episode_stats *s) {
  int i, n = 0, k = 0;
  for (i = 0; i < s->count; i++) {
    if (s->success[i] < 0) continue;
    n++;
    k += s->success[i];
  }
  return n ? (float)k / (float)n : -1.0f;
}

#ifdef __cplusplus
}
#endif
#endif /* MEMRL_ENVS_IMPLEMENTATION */

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
