#!/usr/bin/env python3
"""PyTorch twin of bench/bench_nn.c (and of bench_attention.c's GTrXL acting
step): the same networks, shapes, losses and
optimiser, single-threaded, timed the same way (warm-up, then the best of
several rounds of the mean time per iteration, in CPU time of the process so
that other jobs on a shared machine do not count).

Prints one line per figure, "<name> <milliseconds>", which bench_nn and
bench_attention read from
build/bench_torch.txt (written by `make bench`):

    python3 tools/bench_torch.py > build/bench_torch.txt
"""
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


def gtrxl_act(M):
    # One GTrXL acting step (E 64, 4 heads, 2 layers, FF 256, memory M, batch
    # 1, no-grad), the way a cached-key/value PyTorch implementation steps:
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
        P["k"] = torch.rand(H, M, D) - 0.5  # cached keys and values, a full window
        P["v"] = torch.rand(H, M, D) - 0.5
        layers.append(P)

    def gate(P, pre, x, y):
        wy = lin(y, P[pre + "W"])
        ux = lin(x, P[pre + "U"][:2 * E])
        r = torch.sigmoid(wy[:, :E] + ux[:, :E])
        z = torch.sigmoid(wy[:, E:2 * E] + ux[:, E:] - P[pre + "b"])
        h = torch.tanh(wy[:, 2 * E:] + lin(r * x, P[pre + "U"][2 * E:]))
        return x + z * (h - x)

    x0 = torch.rand(1, E) - 0.5

    def act():
        with torch.no_grad():
            x = x0
            for P in layers:
                n1 = torch.nn.functional.layer_norm(x, (E,), P["n1w"], P["n1b"])
                q, k, v = lin(n1, P["w_in"]).view(3, H, 1, D).unbind(0)
                P["k"] = keys = torch.cat([P["k"], k], 1)  # [H, M+1, D]
                P["v"] = vals = torch.cat([P["v"], v], 1)
                s = torch.matmul(q + P["rw"][:, None], keys.transpose(1, 2))
                s = s + torch.matmul(q + P["rr"][:, None], P["rk"])
                a = torch.softmax(s * (1.0 / D ** 0.5), -1)
                c = torch.matmul(a, vals).reshape(1, E)
                P["k"], P["v"] = keys[:, 1:], vals[:, 1:]
                y = gate(P, "g1", x, torch.relu(lin(c, P["w_o"])))
                n2 = torch.nn.functional.layer_norm(y, (E,), P["n2w"], P["n2b"])
                f = lin(torch.relu(lin(n2, P["l1w"], P["l1b"])), P["l2w"], P["l2b"])
                x = gate(P, "g2", y, torch.relu(f))
            return x

    return best_ms(act, 2000)


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
    figures = [
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
    ]
    for name, ms in figures:
        print("%s %.6f" % (name, ms))


if __name__ == "__main__":
    main()
