#!/usr/bin/env python3
"""PyTorch twin of bench/bench_nn.c, of bench_attention.c's GTrXL acting
step and of bench_cores.c's memory cores: the same networks, shapes, losses and
optimiser, single-threaded, timed the same way (warm-up, then the best of
several rounds of the mean time per iteration, in CPU time of the process so
that other jobs on a shared machine do not count).

Prints one line per figure, "<name> <milliseconds>", which bench_nn and
bench_attention read from
build/bench_torch.txt (written by `make bench`):

    python3 tools/bench_torch.py > build/bench_torch.txt
    python3 tools/bench_torch.py cores   (only the memory cores' figures)
"""
import math
import os
import subprocess
import sys
import time

# One thread for real: Debian's torch runs its BLAS (OpenBLAS) on a thread
# pool of its own that torch.set_num_threads does not reach.
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"


def openblas_core():
    """The kernel set OpenBLAS picks here (asked in a child process: the choice
    is made when the library loads), or None without OpenBLAS."""
    code = ("import ctypes; f = ctypes.CDLL('libopenblas.so.0').openblas_get_corename; "
            "f.restype = ctypes.c_char_p; print(f().decode())")
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


# OpenBLAS 0.3.21 (Debian 12) does not know newer CPUs (e.g. Xeon model 207
# under KVM) and falls back to its SSE3 "Prescott" kernels, a fifth of its
# speed: give it the kernels the CPU's flags allow, so that PyTorch is
# measured at its best. Known CPUs keep OpenBLAS's own choice.
if "OPENBLAS_CORETYPE" not in os.environ and openblas_core() in ("Prescott", "Core2", "Nehalem"):
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        flags = ""
    if " avx512f" in flags:
        os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
    elif " avx2" in flags:
        os.environ["OPENBLAS_CORETYPE"] = "Haswell"
    if "OPENBLAS_CORETYPE" in os.environ:
        print("bench_torch: OpenBLAS falls back to generic kernels here; OPENBLAS_CORETYPE=%s"
              % os.environ["OPENBLAS_CORETYPE"], file=sys.stderr)

import torch  # noqa: E402 (after the environment it reads at import)

torch.set_num_threads(1)
torch.manual_seed(0)

ROUNDS = 7


def best_ms(fn, iters):
    for _ in range(max(3, iters // 10)):  # warm-up
        fn()
    best = float("inf")
    for _ in range(ROUNDS):
        t0 = time.process_time()
        for _ in range(iters):
            fn()
        best = min(best, (time.process_time() - t0) / iters)
    return best * 1e3


def rnn_train(kind):
    # input 8 -> hidden 64, T = 32, batch 16; loss mean(y^2); Adam
    T, B, I, H = 32, 16, 8, 64
    net = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(I, H)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(T, B, I) * 2 - 1
    h0 = torch.zeros(1, B, H)
    state = (h0, torch.zeros(1, B, H)) if kind == "lstm" else h0

    def step():
        opt.zero_grad()
        y, _ = net(x, state)
        loss = (y * y).mean()
        loss.backward()
        opt.step()

    return best_ms(step, 40)


def lstm_wide(H):
    # input 64 -> hidden H, T = 32, batch 16: forward, loss mean(y^2),
    # backward, no optimiser (bench_nn's nn_lstm_H<n>_fb)
    T, B, I = 32, 16, 64
    net = torch.nn.LSTM(I, H)
    x = torch.rand(T, B, I) * 0.2 - 0.1
    state = (torch.zeros(1, B, H), torch.zeros(1, B, H))

    def step():
        net.zero_grad()
        y, _ = net(x, state)
        (y * y).mean().backward()

    return best_ms(step, 5 if H > 256 else 10)


def mlp():
    return torch.nn.Sequential(
        torch.nn.Linear(4, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(),
        torch.nn.Linear(64, 3))


def mlp_train():
    # MLP 4-64-64-3 (tanh), batch 128, MSE loss, Adam
    net = mlp()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(128, 4) * 2 - 1
    target = torch.rand(128, 3) * 2 - 1

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(net(x), target)
        loss.backward()
        opt.step()

    return best_ms(step, 400)


def mlp_act():
    net = mlp()
    x = torch.rand(1, 4)

    def act():
        with torch.no_grad():
            net(x)

    return best_ms(act, 4000)


def cell_act(kind):
    I, H = 8, 64
    x = torch.rand(1, I)
    h = torch.zeros(1, H)
    if kind == "lstm":
        cell = torch.nn.LSTMCell(I, H)
        state = [(h, torch.zeros(1, H))]

        def act():
            with torch.no_grad():
                state[0] = cell(x, state[0])
    else:
        cell = torch.nn.GRUCell(I, H)
        state = [h]

        def act():
            with torch.no_grad():
                state[0] = cell(x, state[0])

    return best_ms(act, 4000)


def transformer2_train():
    # two pre-LN blocks (E 64, 4 heads, FF 256, ReLU, no dropout), batch-first
    # [16, 32, 64], causal mask, loss mean(y^2), Adam
    B, T, E = 16, 32, 64
    layers = torch.nn.ModuleList([
        torch.nn.TransformerEncoderLayer(E, 4, 256, dropout=0.0, activation="relu",
                                         batch_first=True, norm_first=True) for _ in range(2)])
    opt = torch.optim.Adam(layers.parameters(), lr=1e-3)
    x = torch.rand(B, T, E) * 2 - 1
    mask = torch.triu(torch.full((T, T), float("-inf")), diagonal=1)

    def step():
        opt.zero_grad()
        h = x
        for layer in layers:
            h = layer(h, src_mask=mask)
        loss = (h * h).mean()
        loss.backward()
        opt.step()

    return best_ms(step, 20)


def gtrxl_act(M, B=1, iters=2000):
    # One GTrXL acting step (E 64, 4 heads, 2 layers, FF 256, memory M, batch
    # B, no-grad), the way a cached-key/value PyTorch implementation steps:
    # per layer the new row's q, k, v only, the keys and values of the last M
    # steps kept in tensors (window shifted by cat), the position term
    # W_R R_d for every distance computed once; Transformer-XL relative
    # scores, GTrXL's gates and ReLUs as memrl_nn.h's mrl_gtrxl_forward.
    E, H, F, L = 64, 4, 256, 2
    D = E // H
    lin = torch.nn.functional.linear
    half = torch.arange(E // 2, dtype=torch.float64)
    freq = torch.pow(10000.0, -2.0 * half / E)
    dist = torch.arange(M, -1, -1, dtype=torch.float64)  # slot j: distance M - j
    ang = dist[:, None] * freq[None, :]
    R = torch.cat([torch.sin(ang), torch.cos(ang)], 1).float()  # [M+1, E]

    def u(*shape):
        return torch.rand(*shape) * 0.2 - 0.1

    layers = []
    for _ in range(L):
        P = dict(w_in=u(3 * E, E), w_r=u(E, E), rw=u(H, D), rr=u(H, D), w_o=u(E, E),
                 n1w=torch.ones(E), n1b=torch.zeros(E), n2w=torch.ones(E), n2b=torch.zeros(E),
                 l1w=u(F, E), l1b=u(F), l2w=u(E, F), l2b=u(E),
                 g1W=u(3 * E, E), g1U=u(3 * E, E), g1b=torch.full((E,), 2.0),
                 g2W=u(3 * E, E), g2U=u(3 * E, E), g2b=torch.full((E,), 2.0))
        P["rk"] = lin(R, P["w_r"]).view(M + 1, H, D).permute(1, 2, 0)  # [H, D, M+1]
        P["k"] = torch.rand(B, H, M, D) - 0.5  # cached keys and values, a full window
        P["v"] = torch.rand(B, H, M, D) - 0.5
        layers.append(P)

    def gate(P, pre, x, y):
        wy = lin(y, P[pre + "W"])
        ux = lin(x, P[pre + "U"][:2 * E])
        r = torch.sigmoid(wy[:, :E] + ux[:, :E])
        z = torch.sigmoid(wy[:, E:2 * E] + ux[:, E:] - P[pre + "b"])
        h = torch.tanh(wy[:, 2 * E:] + lin(r * x, P[pre + "U"][2 * E:]))
        return x + z * (h - x)

    x0 = torch.rand(B, E) - 0.5

    def act():
        with torch.no_grad():
            x = x0
            for P in layers:
                n1 = torch.nn.functional.layer_norm(x, (E,), P["n1w"], P["n1b"])
                q, k, v = lin(n1, P["w_in"]).view(B, 3, H, 1, D).unbind(1)
                P["k"] = keys = torch.cat([P["k"], k], 2)  # [B, H, M+1, D]
                P["v"] = vals = torch.cat([P["v"], v], 2)
                s = torch.matmul(q + P["rw"][:, None], keys.transpose(2, 3))
                s = s + torch.matmul(q + P["rr"][:, None], P["rk"])
                a = torch.softmax(s * (1.0 / D ** 0.5), -1)
                c = torch.matmul(a, vals).reshape(B, E)
                P["k"], P["v"] = keys[:, :, 1:], vals[:, :, 1:]
                y = gate(P, "g1", x, torch.relu(lin(c, P["w_o"])))
                n2 = torch.nn.functional.layer_norm(y, (E,), P["n2w"], P["n2b"])
                f = lin(torch.relu(lin(n2, P["l1w"], P["l1b"])), P["l2w"], P["l2b"])
                x = gate(P, "g2", y, torch.relu(f))
            return x

    return best_ms(act, iters)


# ---- memory cores (bench/bench_cores.c): input 64, B = 16 environments ----
# acting: one step T = 1, no-grad, the state carried; training: a [T 32, B 16]
# sequence from a stored state (the state after one sequence from zeros) with
# the episode starts of bench_cores.c, loss sum(y), backward into the
# parameters and into x (as behind an encoder), Adam. The per-step resets are
# a Python loop over steps, as CleanRL's recurrent agents write them.
CT, CB, CIN = 32, 16, 64


def core_best(fn):
    """best_ms with the iterations set from a first timing (rounds of ~50 ms)."""
    fn()
    t0 = time.process_time()
    fn()
    fn()
    one = (time.process_time() - t0) / 2
    return best_ms(fn, max(1, int(0.05 / one)) if one > 0 else 1000)


def core_starts():
    s = torch.zeros(CT, CB)
    for t in range(CT):
        for b in range(CB):
            s[t, b] = float((t * 7 + b * 5) % 24 == 3)
    return s


def core_input():
    return (torch.rand(CT, CB, CIN) * 2 - 1).requires_grad_(True)


def core_train_step(params, x, forward):
    opt = torch.optim.Adam(params, lr=1e-3)

    def step():
        opt.zero_grad()
        x.grad = None
        loss = forward().sum()
        loss.backward()
        opt.step()

    return step


def core_rnn(kind, H, L):
    """LSTM / GRU / Elman (tanh), L layers; figures: act and train as a loop of
    torch.nn.LSTMCell / GRUCell / RNNCell over steps and layers (the resets
    applied between steps; about 10% faster than calling torch.nn.LSTM once
    per step), and train as one fused torch.nn.LSTM / GRU / RNN call without
    resets."""
    lstm = kind == "lstm"
    Cell = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell, "rnn": torch.nn.RNNCell}[kind]
    cells = torch.nn.ModuleList([Cell(CIN if l == 0 else H, H) for l in range(L)])
    mod = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[kind](CIN, H, L)
    x = core_input()
    keep = (1 - core_starts())[:, :, None]  # [T, B, 1]

    def step(inp, state, k):
        out = []
        for l, cell in enumerate(cells):
            s = state[l]
            if k is not None:
                s = (s[0] * k, s[1] * k) if lstm else s * k
            s = cell(inp, s)
            inp = s[0] if lstm else s
            out.append(s)
        return inp, out

    z = torch.zeros(CB, H)
    stored = [(z, z) if lstm else z for _ in range(L)]
    with torch.no_grad():
        for t in range(CT):
            _, stored = step(x[t], stored, None)

    def loop():
        state, ys = stored, []
        for t in range(CT):
            y, state = step(x[t], state, keep[t])
            ys.append(y)
        return torch.stack(ys)

    xa = torch.rand(CB, CIN) * 2 - 1
    carried = [stored]

    def act():
        with torch.no_grad():
            _, carried[0] = step(xa, carried[0], None)

    zl = torch.zeros(L, CB, H)
    with torch.no_grad():
        _, fused_stored = mod(x, (zl, zl) if lstm else zl)
    return (core_best(act), core_best(core_train_step(cells.parameters(), x, loop)),
            core_best(core_train_step(mod.parameters(), x, lambda: mod(x, fused_stored)[0])))


def core_amrl(H):
    """AMRL-Avg (Beck et al. 2020) as memrl_mem.h >>amrl: an LSTM (a loop of
    torch.nn.LSTMCell, as the LSTM twin), its first
    half averaged over the episode with the straight-through gradient
    (S + (S/n - S).detach()), output [second half, average]."""
    K = H // 2
    lstm = torch.nn.LSTMCell(CIN, H)
    x = core_input()
    keep = (1 - core_starts())[:, :, None]  # [T, B, 1]
    ones = torch.ones(CB, 1)

    def seq(xs, state, keeps):
        h, c, S, n = state
        ys = []
        for t in range(xs.shape[0]):
            if keeps is not None:
                k = keeps[t]
                h, c, S, n = h * k, c * k, S * k, n * k
            h, c = lstm(xs[t], (h, c))
            n = n + 1
            S = S + h[:, :K]
            ys.append(torch.cat([h[:, K:], S + (S / n - S).detach()], 1))
        return torch.cat(ys), (h, c, S, n)

    z = torch.zeros(CB, H)
    with torch.no_grad():
        _, stored = seq(x, (z, z, torch.zeros(CB, K), 0 * ones), None)
    xa = torch.rand(1, CB, CIN) * 2 - 1
    carried = [stored]

    def act():
        with torch.no_grad():
            _, carried[0] = seq(xa, carried[0], None)

    return core_best(act), core_best(
        core_train_step(lstm.parameters(), x, lambda: seq(x, stored, keep)[0]))


def core_fwp(d, NH):
    """The delta-rule fast weight programmer (Schlag et al. 2021) as memrl_mem.h
    >>fwp: one bias-free projection to q, k, v, beta; phi = sum-normalised
    ELU + 1; W += beta (v - W k) k^T per head; y = W q."""
    hd = NH * d
    P = torch.nn.Linear(CIN, NH * (3 * d + 1), bias=False)
    x = core_input()
    keep = (1 - core_starts())[:, :, None, None, None]  # [T, B, 1, 1, 1]

    def phi(z):
        e = torch.nn.functional.elu(z) + 1.0
        return e / e.sum(-1, keepdim=True)

    def seq(xs, W, keeps):
        T = xs.shape[0]
        z = P(xs)
        q = phi(z[..., :hd].reshape(T, CB, NH, d, 1))
        k = phi(z[..., hd:2 * hd].reshape(T, CB, NH, 1, d))
        v = z[..., 2 * hd:3 * hd].reshape(T, CB, NH, d, 1)
        beta = torch.sigmoid(z[..., 3 * hd:]).reshape(T, CB, NH, 1, 1)
        ys = []
        for t in range(T):
            if keeps is not None:
                W = W * keeps[t]
            kt = k[t]
            W = W + (beta[t] * (v[t] - torch.matmul(W, kt.transpose(2, 3)))) * kt
            ys.append(torch.matmul(W, q[t]).reshape(CB, hd))
        return torch.cat(ys), W

    with torch.no_grad():
        _, stored = seq(x, torch.zeros(CB, NH, d, d), None)
    xa = torch.rand(1, CB, CIN) * 2 - 1
    carried = [stored]

    def act():
        with torch.no_grad():
            _, carried[0] = seq(xa, carried[0], None)

    return core_best(act), core_best(
        core_train_step(P.parameters(), x, lambda: seq(x, stored, keep)[0]))


def core_dnc(N, W, R, H=64):
    """The DNC of memrl_mem.h >>dnc (no links): tools/make_ref.py's twin
    dnc_sequence, which also multiplies the state by the keep mask every step."""
    from make_ref import dnc_sequence
    I = R * W + R + 3 * W + 1 + R + 2
    k = 1 / H ** 0.5
    P = {"w_ih": torch.empty(4 * H, CIN + R * W).uniform_(-k, k),
         "w_hh": torch.empty(4 * H, H).uniform_(-k, k),
         "b_ih": torch.empty(4 * H).uniform_(-k, k),
         "b_hh": torch.empty(4 * H).uniform_(-k, k),
         "w_if": torch.empty(I, H).uniform_(-k, k),
         "b_if": torch.empty(I).uniform_(-k, k)}
    for t in P.values():
        t.requires_grad_(True)
    S = N * W + N + R * N + N + R * W + 2 * H
    x = core_input()
    starts = core_starts()
    with torch.no_grad():
        _, stored = dnc_sequence(x, torch.zeros(CT, CB), torch.zeros(CB, S), P, N, W, R, H, 0)
    xa = torch.rand(1, CB, CIN) * 2 - 1
    no_starts = torch.zeros(1, CB)
    carried = [stored]

    def act():
        with torch.no_grad():
            _, carried[0] = dnc_sequence(xa, no_starts, carried[0], P, N, W, R, H, 0)

    return core_best(act), core_best(core_train_step(
        list(P.values()), x, lambda: dnc_sequence(x, starts, stored, P, N, W, R, H, 0)[0]))


def core_ftw(Fh=64, S=64, tau=10, init_scale=0.1, min_scale=1e-4):
    """FTW's two-timescale core as memrl_mem.h >>ftw (latent Z = Fh), batched
    over the environments: slow LSTMCell (computed, with the prior, only at
    steps where some environment ticks, then selected per environment), fast
    LSTMCell on [x, h_slow, prior mean and scale, z_{t-1}], Gaussian heads with
    softplus scales, z = posterior mean; the per-step KL(posterior || prior) is
    computed (as the C core does) but, as mrl_core_forward's output, not in the
    loss."""
    Z = Fh
    slow = torch.nn.LSTMCell(Fh, S)
    fast = torch.nn.LSTMCell(CIN + S + 3 * Z, Fh)
    prior = torch.nn.Linear(S, 2 * Z)
    post = torch.nn.Linear(Fh, 2 * Z)
    mods = torch.nn.ModuleList([slow, fast, prior, post])
    x = core_input()
    keep = (1 - core_starts())[:, :, None]
    c = init_scale / math.log(2.0)

    def gauss(lin, h):
        out = lin(h)
        return out[:, :Z], torch.nn.functional.softplus(out[:, Z:]) * c + min_scale

    def seq(xs, state, keeps):
        hs, cs, hf, cf, zp, n = state
        mu_q, sg_q = gauss(prior, hs)
        ys = []
        for t in range(xs.shape[0]):
            if keeps is not None:
                k = keeps[t]
                hs, cs, hf, cf, zp, n = hs * k, cs * k, hf * k, cf * k, zp * k, n * k
            tick = n == 0
            if bool(tick.any()):  # an episode start sets n = 0, so it ticks too
                hs2, cs2 = slow(hf, (hs, cs))
                hs, cs = torch.where(tick, hs2, hs), torch.where(tick, cs2, cs)
                mu_q, sg_q = gauss(prior, hs)
            hf, cf = fast(torch.cat([xs[t], hs, mu_q, sg_q, zp], 1), (hf, cf))
            mu_p, sg_p = gauss(post, hf)
            kl = (torch.log(sg_q / sg_p) + (sg_p * sg_p + (mu_p - mu_q) ** 2) / (2 * sg_q * sg_q)
                  - 0.5).sum(1)
            zp = mu_p
            ys.append(zp)
            n = torch.remainder(n + 1, tau)
        return torch.cat(ys), (hs, cs, hf, cf, zp, n), kl

    zs, zf = torch.zeros(CB, S), torch.zeros(CB, Fh)
    with torch.no_grad():
        _, stored, _ = seq(x, (zs, zs, zf, zf, torch.zeros(CB, Z), torch.zeros(CB, 1)), None)
    xa = torch.rand(1, CB, CIN) * 2 - 1
    carried = [stored]

    def act():
        with torch.no_grad():
            _, carried[0], _ = seq(xa, carried[0], None)

    return core_best(act), core_best(
        core_train_step(mods.parameters(), x, lambda: seq(x, stored, keep)[0]))


def hcam_twin(E, C, K, N, heads):
    """HCAM (Lampinen et al. 2021) as memrl_mem.h >>hcam, batched over the
    environments: h = W_in x + b, q = LayerNorm(h) appended to the partial
    chunk (a full one goes into the ring of N chunks with its mean as summary),
    logits (W_q q).(W_k s_j) / sqrt(E) over the N chunks and the partial one
    (invalid ones -1e6), top-k, softmax over the k, one batched
    torch.nn.MultiheadAttention over the k chunks' rows (+ sinusoid positions,
    rows past a partial chunk's fill masked), y = h + sum_i w_i r_i. Returns
    the modules and seq(x [T, B, CIN], state, starts or None) -> y, state."""
    F = torch.nn.functional
    inp = torch.nn.Linear(CIN, E)
    norm = torch.nn.LayerNorm(E)
    wq = torch.nn.Linear(E, E, bias=False)
    wk = torch.nn.Linear(E, E, bias=False)
    mha = torch.nn.MultiheadAttention(E, heads, batch_first=True)
    mods = torch.nn.ModuleList([inp, norm, wq, wk, mha])
    inv = 1e4 ** (-torch.arange(0, E, 2, dtype=torch.float64) / E)
    ang = torch.arange(C - 1, -1, -1.0, dtype=torch.float64)[:, None] * inv[None, :]
    pe = torch.cat([ang.sin(), ang.cos()], 1).float()  # [C, E]
    rows = torch.arange(C)
    slots = torch.arange(N)
    bidx = torch.arange(CB)[:, None]

    def seq(xs, state, st):
        chunks, sums, part, fill, nvalid, nxt = state
        hs = inp(xs)
        ys = []
        for t in range(xs.shape[0]):
            if st is not None:
                k = (1 - st[t])
                part, fill = part * k[:, None, None], fill * k.long()
                nvalid, nxt = nvalid * k.long(), nxt * k.long()
            h = hs[t]
            q = norm(h)
            at = (rows[None, :] == fill[:, None]).float()[:, :, None]  # [B, C, 1]
            part = part * (1 - at) + at * q[:, None, :]
            fill = fill + 1
            full = fill == C
            if bool(full.any()):
                put = (full[:, None] & (slots[None, :] == nxt[:, None])).float()  # [B, N]
                chunks = chunks * (1 - put[:, :, None, None]) + put[:, :, None, None] * part[:, None]
                sums = sums * (1 - put[:, :, None]) + put[:, :, None] * part.mean(1)[:, None]
                nvalid = torch.where(full, torch.clamp(nvalid + 1, max=N), nvalid)
                nxt = torch.where(full, (nxt + 1) % N, nxt)
                part = part * (~full).float()[:, None, None]
                fill = torch.where(full, torch.zeros_like(fill), fill)
            fm = torch.clamp(fill, min=1).float()[:, None]
            psum = (part * (rows[None, :] < fill[:, None]).float()[:, :, None]).sum(1) / fm
            cand_s = torch.cat([sums, psum[:, None]], 1)  # [B, N+1, E]
            valid = torch.cat([slots[None, :] < nvalid[:, None], (fill > 0)[:, None]], 1)
            logits = (wk(cand_s) @ wq(q)[:, :, None])[:, :, 0] / E ** 0.5
            logits = torch.where(valid, logits, torch.full_like(logits, -1e6))
            vals, idx = torch.topk(logits, K, dim=1)
            w = torch.softmax(vals, 1)
            mem = torch.cat([chunks, part[:, None]], 1)[bidx, idx] + pe  # [B, K, C, E]
            pad = (idx[:, :, None] == N) & (rows[None, None, :] >= fill[:, None, None]) & \
                (fill[:, None, None] > 0)
            r, _ = mha(q[:, None, None, :].expand(CB, K, 1, E).reshape(CB * K, 1, E),
                       mem.reshape(CB * K, C, E), mem.reshape(CB * K, C, E),
                       key_padding_mask=pad.reshape(CB * K, C), need_weights=False)
            ys.append(h + (w[:, :, None] * r.reshape(CB, K, E)).sum(1))
        return torch.stack(ys), (chunks, sums, part, fill, nvalid, nxt)

    return mods, seq


def core_hcam(E=64, C=8, K=2, N=16, heads=1):
    """HCAM's figures (hcam_twin)."""
    mods, seq = hcam_twin(E, C, K, N, heads)
    x = core_input()
    starts = core_starts()
    zero = torch.zeros(CB, dtype=torch.long)
    state0 = (torch.zeros(CB, N, C, E), torch.zeros(CB, N, E), torch.zeros(CB, C, E), zero, zero,
              zero)
    with torch.no_grad():
        _, stored = seq(x, state0, None)
    xa = torch.rand(1, CB, CIN) * 2 - 1
    carried = [stored]

    def act():
        with torch.no_grad():
            _, carried[0] = seq(xa, carried[0], None)

    return core_best(act), core_best(
        core_train_step(mods.parameters(), x, lambda: seq(x, stored, starts)[0]))


def core_gtrxl_train(M=64, E=64, H=4, F=256, L=2):
    """GTrXL training segment: tools/make_ref.py's gtrxl_layer_eq (Parisotto et
    al. 2019 with Transformer-XL relative attention, as mrl_gtrxl), L layers,
    each over a stored memory of M rows of its inputs, half of them valid,
    masked at the episode starts (the mask built once, outside the timing)."""
    from make_ref import attn_allowed, gtrxl_layer_eq, gtrxl_layer_params
    layers = [gtrxl_layer_params("l%d." % l, E, H, F) for l in range(L)]
    mems = [torch.rand(CB, M, E) - 0.5 for _ in range(L)]
    allowed = attn_allowed(CB, CT, M, core_starts().t(), [CT] * CB)
    x = core_input()

    def forward():
        h = x.transpose(0, 1)  # [B, T, E]
        for l in range(L):
            h = gtrxl_layer_eq(h, mems[l], layers[l], "l%d." % l, H, allowed)
        return h.transpose(0, 1)

    params = [t for P in layers for t in P.values()]
    return core_best(core_train_step(params, x, forward))


def core_figures():
    figures = []
    for spec, kind, H, L in (("lstm:128", "lstm", 128, 1), ("gru:128", "gru", 128, 1),
                             ("elman:128", "rnn", 128, 1), ("elman:128:2", "rnn", 128, 2)):
        act, train, fused = core_rnn(kind, H, L)
        figures += [("core_%s_act" % spec, act), ("core_%s_train" % spec, train),
                    ("core_%s_train_fused_noreset" % spec, fused)]
    g_act = gtrxl_act(64, CB, 200)
    figures += [("core_gtrxl:64_act", g_act), ("core_gtrxl:64_train", core_gtrxl_train())]
    for spec, fn in (("amrl:128", lambda: core_amrl(128)), ("fwp:32:4", lambda: core_fwp(32, 4)),
                     ("dnc:16:16:4", lambda: core_dnc(16, 16, 4)),
                     ("hcam:64:8:2", lambda: core_hcam(64, 8, 2, 16, 1)),
                     ("ftw:64:64:10", lambda: core_ftw(64, 64, 10))):
        act, train = fn()
        figures += [("core_%s_act" % spec, act), ("core_%s_train" % spec, train)]
    return figures


def gtrxl_train():
    # GTrXL (Parisotto et al. 2019) as bench_nn's nn_gtrxl_train: 2 layers,
    # E 64, 4 heads, FF 256, memory 64 (all valid), segment T 32 x B 16;
    # forward, mean(y^2), backward (no optimiser), with the layer written
    # for the reference fixtures (tools/make_ref.py: gtrxl_layer_eq)
    import make_ref
    B, T, M, E, H, F = 16, 32, 64, 64, 4, 256
    params = []
    for k in range(2):
        P = make_ref.gtrxl_layer_params("l%d." % k, E, H, F)
        for t in P.values():
            t.requires_grad_(True)
        params.append(P)
    x = torch.rand(B, T, E) - 0.5
    mems = [torch.rand(B, M, E) - 0.5 for _ in range(2)]
    allowed = make_ref.attn_allowed(B, T, M, torch.zeros(B, T), [M] * B)

    def step():
        for P in params:
            for t in P.values():
                t.grad = None
        h = x
        for k in range(2):
            h = make_ref.gtrxl_layer_eq(h, mems[k], params[k], "l%d." % k, H, allowed)
        loss = (h * h).mean()
        loss.backward()

    return best_ms(step, 10)


def main():
    # "python3 tools/bench_torch.py cores": only the memory cores' figures
    only_cores = len(sys.argv) > 1 and sys.argv[1] == "cores"
    figures = [] if only_cores else [
        ("nn_lstm_train", rnn_train("lstm")),
        ("nn_gru_train", rnn_train("gru")),
        ("nn_mlp_train", mlp_train()),
        ("nn_mlp_act", mlp_act()),
        ("nn_lstm_act", cell_act("lstm")),
        ("nn_gru_act", cell_act("gru")),
        ("nn_transformer2_train", transformer2_train()),
        ("gtrxl_act_M64", gtrxl_act(64)),
        ("gtrxl_act_M256", gtrxl_act(256)),
        ("nn_gtrxl_train", gtrxl_train()),
        ("nn_lstm_H256_fb", lstm_wide(256)),
        ("nn_lstm_H512_fb", lstm_wide(512)),
    ]
    figures += core_figures()  # after the figures above: bench_nn reads the first 16 lines
    for name, ms in figures:
        print("%s %.6f" % (name, ms))


if __name__ == "__main__":
    main()
