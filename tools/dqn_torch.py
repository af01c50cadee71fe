#!/usr/bin/env python3
"""PyTorch twin of memrl's DQN on CartPole-v1, for bench/bench_dqn.c (make bench-dqn).

The algorithm and hyperparameters of CleanRL's dqn.py (lr 2.5e-4 Adam, buffer
10000, gamma 0.99, hard target copy every 500 steps, batch 128, epsilon 1 ->
0.05 over half of total_steps, learning starts after 10000 steps, one update
every 10 steps, MLP 120-84 ReLU, MSE loss), one environment, single-threaded.
Gymnasium is not installed here, so CartPole-v1 is written below in NumPy from
Gymnasium's documented rules (Barto, Sutton and Anderson's cart-pole: Euler
steps of 0.02 s, force +-10 N, termination at |x| > 2.4 or |theta| > 12
degrees, reward 1 per step, truncation after 500 steps, reset uniform in
+-0.05), and the replay buffer is a NumPy ring (Stable-Baselines3's
ReplayBuffer with handle_timeout_termination=False, as CleanRL uses it).

Runs until the mean return of the last 100 training episodes reaches the
goal (checked every 1000 steps, as the C side checks it) or total_steps
pass, then prints one line:

    torch_dqn steps=<n> wall=<s> cpu=<s> return=<mean of last 100> reached=<0|1>

Usage: python3 tools/dqn_torch.py [total_steps=500000] [seed=1] [goal=475]
"""
import math
import os
import random
import sys
import time

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


class CartPole:
    """CartPole-v1 as Gymnasium documents it (float64 state, float32 obs)."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.state = None
        self.steps = 0

    def reset(self):
        self.state = self.rng.uniform(-0.05, 0.05, size=4)
        self.steps = 0
        return self.state.astype(np.float32)

    def step(self, action):
        gravity, masscart, masspole, half_length = 9.8, 1.0, 0.1, 0.5
        total_mass = masscart + masspole
        polemass_length = masspole * half_length
        x, x_dot, theta, theta_dot = self.state
        force = 10.0 if action == 1 else -10.0
        cos, sin = math.cos(theta), math.sin(theta)
        temp = (force + polemass_length * theta_dot * theta_dot * sin) / total_mass
        thetaacc = (gravity * sin - cos * temp) / (
            half_length * (4.0 / 3.0 - masspole * cos * cos / total_mass))
        xacc = temp - polemass_length * thetaacc * cos / total_mass
        tau = 0.02
        x = x + tau * x_dot
        x_dot = x_dot + tau * xacc
        theta = theta + tau * theta_dot
        theta_dot = theta_dot + tau * thetaacc
        self.state = np.array([x, x_dot, theta, theta_dot])
        self.steps += 1
        terminated = bool(x < -2.4 or x > 2.4 or theta < -12 * 2 * math.pi / 360
                          or theta > 12 * 2 * math.pi / 360)
        truncated = self.steps >= 500 and not terminated
        return self.state.astype(np.float32), 1.0, terminated, truncated


class QNetwork(nn.Module):
    def __init__(self, obs_dim, num_actions):
        super().__init__()
        self.network = nn.Sequential(nn.Linear(obs_dim, 120), nn.ReLU(), nn.Linear(120, 84),
                                     nn.ReLU(), nn.Linear(84, num_actions))

    def forward(self, x):
        return self.network(x)


def linear_schedule(start_e, end_e, duration, t):
    slope = (end_e - start_e) / duration
    return max(slope * t + start_e, end_e)


def main():
    total_steps = int(sys.argv[1]) if len(sys.argv) > 1 else 500000
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    goal = float(sys.argv[3]) if len(sys.argv) > 3 else 475.0
    lr, buffer_size, gamma, target_freq, batch = 2.5e-4, 10000, 0.99, 500, 128
    start_e, end_e, fraction, learning_starts, train_freq = 1.0, 0.05, 0.5, 10000, 10
    torch.set_num_threads(1)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    env = CartPole(seed)
    q_network = QNetwork(4, 2)
    optimizer = torch.optim.Adam(q_network.parameters(), lr=lr)
    target_network = QNetwork(4, 2)
    target_network.load_state_dict(q_network.state_dict())
    b_obs = np.zeros((buffer_size, 4), np.float32)
    b_next = np.zeros((buffer_size, 4), np.float32)
    b_act = np.zeros(buffer_size, np.int64)
    b_rew = np.zeros(buffer_size, np.float32)
    b_done = np.zeros(buffer_size, np.float32)
    pos, full = 0, False
    returns, ep_return = [], 0.0
    obs = env.reset()
    reached, step = 0, 0
    for step in range(total_steps):
        epsilon = linear_schedule(start_e, end_e, fraction * total_steps, step)
        if random.random() < epsilon:
            action = random.randrange(2)
        else:
            with torch.no_grad():
                action = int(torch.argmax(q_network(torch.from_numpy(obs).unsqueeze(0)), 1))
        next_obs, reward, terminated, truncated = env.step(action)
        ep_return += reward
        b_obs[pos], b_next[pos], b_act[pos] = obs, next_obs, action
        b_rew[pos], b_done[pos] = reward, float(terminated)
        pos = (pos + 1) % buffer_size
        full = full or pos == 0
        if terminated or truncated:
            returns.append(ep_return)
            ep_return = 0.0
            obs = env.reset()
        else:
            obs = next_obs
        if step > learning_starts:
            if step % train_freq == 0:
                idx = np.random.randint(0, buffer_size if full else pos, size=batch)
                with torch.no_grad():
                    target_max, _ = target_network(torch.from_numpy(b_next[idx])).max(dim=1)
                    td_target = torch.from_numpy(b_rew[idx]) + gamma * target_max * (
                        1 - torch.from_numpy(b_done[idx]))
                old_val = q_network(torch.from_numpy(b_obs[idx])).gather(
                    1, torch.from_numpy(b_act[idx]).unsqueeze(1)).squeeze()
                loss = F.mse_loss(td_target, old_val)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            if step % target_freq == 0:
                target_network.load_state_dict(q_network.state_dict())
        if (step + 1) % 1000 == 0 and len(returns) >= 1 and np.mean(returns[-100:]) >= goal:
            reached = 1
            break
    mean = float(np.mean(returns[-100:])) if returns else 0.0
    print("torch_dqn steps=%d wall=%.3f cpu=%.3f return=%.2f reached=%d" % (
        step + 1, time.perf_counter() - wall0, time.process_time() - cpu0, mean, reached))


if __name__ == "__main__":
    main()
