# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-papermill,-execution,-ExecuteTime
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The selective scan: loop, parallel scan, fused kernel
#
# :::{admonition} Learning objectives
# :class: tip
# After this chapter you can
# 1. write the selective scan as a loop from its definition and explain what an input-dependent $\Delta_t$ lets a token do;
# 2. explain why a linear recurrence can be computed in $O(\log L)$ parallel rounds (associativity) and how a chunked scan does $O(L)$ work;
# 3. choose a scan backend and read a benchmark measured with warm-up and a fixed number of threads.
# :::
#
# In S4 the parameters $\bA, \bB, C$ are the same at every position, so the SSM is a
# convolution (previous chapter). Mamba {cite}`gu2023mamba` makes $\Delta$, $B$ and $C$
# functions of the input: each token decides how much of the past to keep ($\Delta$ small:
# keep the state; $\Delta$ large: overwrite it with the current input) and what to write and
# read. The system is no longer time-invariant, the convolution is gone, and what is left
# is a *scan*. Per batch element, channel $e$ (of $E$) and state $n$ (of $N$):
#
# $$
# h_t = \exp(\Delta_t A)\,h_{t-1} + \Delta_t B_t\,u_t, \qquad
# y_t = C_t \cdot h_t + D\,u_t, \qquad \Delta_t = \operatorname{softplus}(\delta_t + \delta_{\text{bias}}).
# $$
#
# This chapter writes the scan three ways: as a loop (the definition), as a parallel
# scan (what makes it fast), and through mamba-ssm's fused CUDA kernel (what the paper
# ran). The package's `selective_scan` puts them behind one signature with a `backend`
# argument.

# %%
import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

SEED = 0
torch.manual_seed(SEED)
print(f"seed: {SEED}, torch threads: {torch.get_num_threads()}")

# %% [markdown]
# ## The definition, as a loop
#
# Ten lines, shapes as in mamba-ssm: `u, delta: (B, E, L)`, `A: (E, N)`,
# `B, C: (B, N, L)` (input-dependent, shared by the channels), `D: (E,)`.

# %%
from survmamba_lite.ssm import available_backends, selective_scan


def scan_loop(u, delta, A, B, C, D):
    """h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t u_t ;  y_t = C_t·h_t + D u_t   (Δ already positive)."""
    h = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])                # (B, E, N)
    ys = []
    for t in range(u.shape[-1]):
        dA = torch.exp(delta[:, :, t, None] * A)                        # (B, E, N)
        dBu = delta[:, :, t, None] * B[:, None, :, t] * u[:, :, t, None]
        h = dA * h + dBu
        ys.append((h * C[:, None, :, t]).sum(-1) + D * u[:, :, t])      # (B, E)
    return torch.stack(ys, dim=-1)                                      # (B, E, L)


Bsz, E, N, L = 2, 8, 4, 50
u, dt = torch.randn(Bsz, E, L), torch.randn(Bsz, E, L)
A = -torch.rand(E, N) - 0.5
Bm, Cm, D = torch.randn(Bsz, N, L), torch.randn(Bsz, N, L), torch.randn(E)
delta = torch.nn.functional.softplus(dt)
y_loop = scan_loop(u, delta, A, Bm, Cm, D)
for backend in ("ref", "parallel"):
    y = selective_scan(u, dt, A, Bm, Cm, D=D, delta_softplus=True, backend=backend)
    print(f"{backend:>8}: max |y - y_loop| = {(y - y_loop).abs().max():.1e}")

# %% [markdown]
# Outputs are not enough: training needs gradients. The `parallel` backend has a
# hand-written backward pass (the adjoint recurrence run in reverse), so we compare its
# gradients with those autograd computes through the loop.

# %%
def grads(fn):
    inputs = [t.clone().requires_grad_() for t in (u, dt, A, Bm, Cm, D)]
    y = fn(*inputs)
    (y * torch.linspace(-1, 1, L)).sum().backward()     # a loss that weights every position
    return [t.grad for t in inputs]


g_loop = grads(lambda u_, dt_, A_, B_, C_, D_: scan_loop(u_, torch.nn.functional.softplus(dt_), A_, B_, C_, D_))
g_par = grads(lambda *a: selective_scan(*a[:5], D=a[5], delta_softplus=True, backend="parallel"))
for name, a, b in zip(("u", "delta", "A", "B", "C", "D"), g_loop, g_par):
    print(f"d/d{name:<5} max |parallel - loop| = {(a - b).abs().max():.1e}")

# %%
# NBVAL_CHECK_OUTPUT
print("outputs agree (1e-5):", torch.allclose(selective_scan(u, dt, A, Bm, Cm, D=D, delta_softplus=True,
                                                                backend="parallel"), y_loop, atol=1e-5))
print("gradients agree (1e-4):", all(torch.allclose(a, b, atol=1e-4) for a, b in zip(g_loop, g_par)))

# %% [markdown]
# ### The backward pass, by hand
#
# Per channel and state the scan is $h_t = a_t h_{t-1} + b_t$ with $a_t = e^{\Delta_t A}$,
# $b_t = \Delta_t B_t u_t$, read out as $y_t = \sum_n C_t h_t + D u_t$. Given the gradient
# $\bar y_t = \partial\mathcal L/\partial y_t$ of a loss, the gradient with respect to a state,
# $g_t = \partial\mathcal L/\partial h_t$, collects the read-out at $t$ and everything $h_t$
# feeds through $h_{t+1} = a_{t+1}h_t + b_{t+1}$:
#
# $$
# g_t = C_t\,\bar y_t + a_{t+1}\,g_{t+1}, \qquad g_{L} = 0 ,
# $$
#
# the *adjoint* recurrence: the same scan, run from the end. The gradients of the step's
# inputs follow by the chain rule, $\partial\mathcal L/\partial b_t = g_t$ and
# $\partial\mathcal L/\partial a_t = g_t h_{t-1}$, hence
#
# $$
# \frac{\partial\mathcal L}{\partial \Delta_t} = \sum_n g_t\,\big(a_t h_{t-1} A + B_t u_t\big),\quad
# \frac{\partial\mathcal L}{\partial A} = \sum_t g_t\, a_t h_{t-1}\,\Delta_t,\quad
# \frac{\partial\mathcal L}{\partial B_t} = \sum_e g_t\,\Delta_t u_t,\quad
# \frac{\partial\mathcal L}{\partial C_t} = \sum_e \bar y_t\,h_t,
# $$
#
# and $\partial\mathcal L/\partial u_t = \sum_n g_t\Delta_t B_t + D\,\bar y_t$,
# $\partial\mathcal L/\partial D = \sum_t \bar y_t u_t$. Only the forward states $h_t$ are
# needed: no graph of $L$ autograd nodes. Written out, and checked against the
# autograd gradients `g_loop` of the loop above (with $\Delta_t = \operatorname{softplus}(\delta_t)$,
# whose derivative is the logistic function):

# %%
def scan_backward(u, delta, A, B, C, D, y_bar):
    """Gradients of sum(y_bar * y) for the scan of scan_loop, by the adjoint recurrence (Δ already positive)."""
    a = torch.exp(delta[..., None] * A[None, :, None, :])                        # (B, E, L, N)
    b = (delta * u)[..., None] * B.transpose(1, 2)[:, None]                      # (B, E, L, N)
    h = torch.zeros_like(a)                                                      # forward states h_t
    for t in range(u.shape[-1]):
        h[:, :, t] = a[:, :, t] * (h[:, :, t - 1] if t else 0.0) + b[:, :, t]
    h_prev = torch.cat([torch.zeros_like(h[:, :, :1]), h[:, :, :-1]], dim=2)    # h_{t-1}
    Ct = C.transpose(1, 2)[:, None]                                              # (B, 1, L, N)
    g = torch.zeros_like(a)
    g_next = torch.zeros_like(a[:, :, 0])
    for t in reversed(range(u.shape[-1])):                                       # g_t = C_t ȳ_t + a_{t+1} g_{t+1}
        g[:, :, t] = Ct[:, :, t] * y_bar[..., t, None] + g_next
        g_next = a[:, :, t] * g[:, :, t]
    d_a = g * h_prev                                                             # dL/da_t
    d_delta = (d_a * a * A[None, :, None, :]).sum(-1) + (g * B.transpose(1, 2)[:, None]).sum(-1) * u
    d_A = (d_a * a * delta[..., None]).sum(dim=(0, 2))
    d_B = (g * (delta * u)[..., None]).sum(1).transpose(1, 2)
    d_C = (y_bar[..., None] * h).sum(1).transpose(1, 2)
    d_u = (g * B.transpose(1, 2)[:, None]).sum(-1) * delta + D[:, None] * y_bar
    d_D = (y_bar * u).sum(dim=(0, 2))
    return d_u, d_delta, d_A, d_B, d_C, d_D


y_bar = torch.linspace(-1, 1, L).expand(Bsz, E, L)                               # the loss of grads() above
d_u, d_delta, d_A, d_B, d_C, d_D = scan_backward(u, delta, A, Bm, Cm, D, y_bar)
by_hand = (d_u, d_delta * torch.sigmoid(dt), d_A, d_B, d_C, d_D)                 # dΔ/dδ = sigmoid(δ)
for name, a_, b_ in zip(("u", "delta", "A", "B", "C", "D"), by_hand, g_loop):
    print(f"d/d{name:<5} max |by hand - autograd| = {(a_ - b_).abs().max():.1e}")
assert all(torch.allclose(a_, b_, atol=1e-4) for a_, b_ in zip(by_hand, g_loop))

# %% [markdown]
# ## Why a linear recurrence can run in parallel
#
# Per channel and state, the scan is $h_t = a_t h_{t-1} + b_t$ with $a_t = e^{\Delta_t A}$ and
# $b_t = \Delta_t B_t u_t$. Write one step as the pair $(a_t, b_t)$, the affine map
# $h \mapsto a_t h + b_t$. Doing step 1 then step 2 is again affine:
#
# $$
# (a_1, b_1) \bullet (a_2, b_2) = (a_2 a_1,\ a_2 b_1 + b_2),
# $$
#
# and composition of maps is *associative*. Any associative operator can be scanned in
# $O(\log L)$ parallel rounds {cite}`blelloch1990prefix`: in round $k$, every position combines
# with the one $2^k$ places earlier (Hillis–Steele doubling). A direct transcription:

# %%
def scan_doubling(a, b):
    """All prefixes of h_t = a_t h_{t-1} + b_t (h_{-1} = 0) in ceil(log2 L) rounds; a, b: (..., L)."""
    a, b = a.clone(), b.clone()
    shift = 1
    while shift < a.shape[-1]:
        # combine (a, b) at t with the prefix ending at t - shift (identity (1, 0) before the start)
        a_prev = torch.nn.functional.pad(a[..., :-shift], (shift, 0), value=1.0)
        b_prev = torch.nn.functional.pad(b[..., :-shift], (shift, 0), value=0.0)
        a, b = a * a_prev, a * b_prev + b
        shift *= 2
    return b                                             # h_t


a_t = torch.exp(delta[..., None] * A[None, :, None, :])                       # (B, E, L, N)
b_t = (delta * u)[..., None] * Bm.transpose(1, 2)[:, None]                    # (B, E, L, N)
h_par = scan_doubling(a_t.movedim(2, -1), b_t.movedim(2, -1)).movedim(-1, 2)  # (B, E, L, N)
y_dbl = (h_par * Cm.transpose(1, 2)[:, None]).sum(-1) + D[:, None] * u
print(f"doubling scan: {int(np.ceil(np.log2(L)))} rounds, max |y - y_loop| = {(y_dbl - y_loop).abs().max():.1e}")

# %% [markdown]
# Doubling does $O(L \log L)$ work and forms products of many $a_t$; the package's
# `parallel` backend is a *chunked* scan that does $O(L)$ work instead:
#
# 1. cut the sequence into $n_C = \lceil L/Q \rceil$ chunks of $Q$ steps and run the recurrence
#    inside every chunk at once, from a zero state (each of the $Q$ steps is one vectorised
#    operation over all chunks); this gives each chunk's local end state $h^{\text{loc}}_c$;
# 2. carry the state across chunk boundaries, $H_c = P_{c-1} H_{c-1} + h^{\text{loc}}_{c-1}$
#    with $H_0 = 0$ and the chunk decay $P_c = \prod_{t\in c} a_t = \exp(A\sum_{t\in c}\Delta_t)$
#    (a short loop over the $n_C$ chunks on CPU, a doubling scan over chunks on GPU);
# 3. sweep each chunk again from its true entering state $H_c$, now keeping every $h_t$.
#
# This is right because the recurrence is linear: the state at step $t$ of chunk $c$ is
# what the chunk adds from a zero start plus the entering state decayed over the steps so
# far, and phase 3 computes exactly that. Written out for the scalar recurrences of the
# previous cell, with $Q = 8$:

# %%
def scan_chunked(a, b, Q):
    """All h_t of h_t = a_t h_{t-1} + b_t (h_{-1} = 0) over the last axis, in chunks of Q steps."""
    L_ = a.shape[-1]
    nC = -(-L_ // Q)                                                   # ceil(L / Q)
    pad = nC * Q - L_                                                  # identity steps a = 1, b = 0 at the end
    a_c = torch.nn.functional.pad(a, (0, pad), value=1.0).unflatten(-1, (nC, Q))    # (..., nC, Q)
    b_c = torch.nn.functional.pad(b, (0, pad), value=0.0).unflatten(-1, (nC, Q))
    h_loc = torch.zeros_like(a_c[..., 0])                              # phase 1: every chunk from zero, Q steps
    for t in range(Q):
        h_loc = a_c[..., t] * h_loc + b_c[..., t]
    decay = a_c.prod(-1)                                               # P_c
    entering = torch.zeros_like(h_loc)                                 # phase 2: carry over nC chunks
    for c in range(1, nC):
        entering[..., c] = decay[..., c - 1] * entering[..., c - 1] + h_loc[..., c - 1]
    h, out = entering, torch.empty_like(a_c)                           # phase 3: Q steps from the true states
    for t in range(Q):
        h = a_c[..., t] * h + b_c[..., t]
        out[..., t] = h
    return out.flatten(-2)[..., :L_]


Q = 8
h_chunk = scan_chunked(a_t.movedim(2, -1), b_t.movedim(2, -1), Q).movedim(-1, 2)     # (B, E, L, N)
print(f"chunked scan, Q = {Q}: {Q} + {-(-L // Q) - 1} + {Q} sequential steps instead of {L}; "
      f"max |h_chunked - h_doubling| = {(h_chunk - h_par).abs().max():.1e}")
assert torch.allclose(h_chunk, h_par, atol=1e-5)

# %% [markdown]
# Only decays $e^{\Delta A} \le 1$ are ever formed, so nothing overflows for long sequences.
# mamba-ssm's kernel goes one step further: it fuses discretisation, scan and read-out in
# one CUDA kernel that keeps the $(E, N)$ states in fast on-chip memory and never writes the
# $(B, E, L, N)$ tensor of states to GPU memory ("hardware-aware" in the paper's words).
#
# ## Backends on this machine
#
# `backend="auto"` picks `mamba_ssm` on CUDA tensors when the package imports, and
# `parallel` otherwise. Asking for a backend that cannot run is an error with an
# explanation, never a silent fallback:

# %%
print("available backends here:", available_backends())
try:
    selective_scan(u, dt, A, Bm, Cm, backend="mamba_ssm")
except RuntimeError as err:
    print("backend='mamba_ssm' ->", str(err)[:160], "...")

# %% [markdown]
# ## Timing, measured while this page was built
#
# A small comparison on the machine that built the book (CPU, small sizes so that the
# build stays fast; forward pass only). Every function runs twice untimed first (the first
# calls allocate memory and pick kernels), then five timed runs give the median; torch is
# held to one thread, so that the numbers do not depend on how many cores the build
# happened to get. On a shared machine they stay noisy; the committed benchmark below,
# run on an idle machine with larger sizes, is the reference.

# %% mystnb={"figure": {"caption": "Forward time of the selective scan measured while this page was built (one thread, median of five runs after two warm-up runs). Noisy on a shared machine: the committed benchmark below is the reference.", "name": "fig-scan-live"}}
def median_time(fn, repeats=5, warmup=2):
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return float(np.median(runs))


E_t, N_t = 32, 8
lengths = [64, 256, 1024]
timings = {"loop (this page)": [], "ref": [], "parallel": []}
threads_before = torch.get_num_threads()
torch.set_num_threads(1)                                   # fixed threads: comparable across machines
with torch.no_grad():
    for Lt in lengths:
        g = torch.Generator().manual_seed(SEED)
        args = (torch.randn(1, E_t, Lt, generator=g), torch.rand(1, E_t, Lt, generator=g) * 0.1,
                -torch.rand(E_t, N_t, generator=g), torch.randn(1, N_t, Lt, generator=g),
                torch.randn(1, N_t, Lt, generator=g))
        timings["loop (this page)"].append(median_time(lambda: scan_loop(*args, torch.zeros(E_t))))
        for backend in ("ref", "parallel"):
            timings[backend].append(median_time(lambda: selective_scan(*args, backend=backend)))
torch.set_num_threads(threads_before)

fig, ax = plt.subplots(figsize=(5, 3.4))
for name, ts in timings.items():
    ax.loglog(lengths, ts, "o-", label=name)
ax.set_xlabel("sequence length L")
ax.set_ylabel("forward time [s]")
ax.set_title(f"selective scan on this CPU, 1 thread (E={E_t}, N={N_t}, B=1)", fontsize=9)
ax.legend(frameon=False)
plt.show()
for name, ts in timings.items():
    print(f"{name:>17}: " + ", ".join(f"L={Lt}: {t * 1e3:.2f} ms" for Lt, t in zip(lengths, ts)))

# %% [markdown]
# ## The committed benchmark
#
# `benchmarks/scan_benchmark.py` times the backends more carefully (forward, and forward
# plus backward; `E = 128`, `N = 16`; several lengths) and writes
# `benchmarks/results/scan_benchmark_<device>.json` with the machine, versions and load
# average. This page shows those files when they are present in the repository.

# %% mystnb={"figure": {"caption": "The committed benchmark (`benchmarks/results/scan_benchmark_<device>.json`, also as `.csv`): forward plus backward time of each backend against the sequence length, $E = 128$, $N = 16$, on an idle machine.", "name": "fig-scan-benchmark"}}
project_root = next(p for p in (Path.cwd(), *Path.cwd().parents) if (p / "pyproject.toml").exists())
results_dir = project_root / "benchmarks" / "results"
found = {dev: results_dir / f"scan_benchmark_{dev}.json" for dev in ("cpu", "cuda")}
found = {dev: p for dev, p in found.items() if p.exists()}
if not found:
    print(f"No benchmark results in {results_dir.resolve()}: run `make bench` (CPU) or "
          "`python benchmarks/scan_benchmark.py --device cuda --out benchmarks/results` on a GPU.")
else:
    fig, axes = plt.subplots(1, len(found), figsize=(5.2 * len(found), 3.6), squeeze=False)
    for ax, (dev, path) in zip(axes[0], found.items()):
        res = json.loads(path.read_text())
        m, cfg = res["machine"], res["config"]
        methods = sorted({t["method"] for t in res["timings"]})
        for method in methods:
            rows = sorted((t["L"], t["forward_backward_s"]) for t in res["timings"] if t["method"] == method)
            ax.loglog([r[0] for r in rows], [r[1] for r in rows], "o-", label=method)
        where = m.get("cuda_device") or f"{m['cpu_count']}-core CPU, {m['torch_threads']} thread(s)"
        ax.set_title(f"{dev}: {where}\ntorch {m['torch']}, E={cfg['E']}, N={cfg['N']}", fontsize=9)
        ax.set_xlabel("sequence length L")
        ax.set_ylabel("forward + backward [s]")
        ax.legend(frameon=False, fontsize=8)
        print(f"{path.name}: methods {methods}, lengths {cfg['lengths']}")
        if "mamba_ssm" not in methods:
            print(f"  (no mamba_ssm timings in {path.name}: the fused kernel was not installed on that machine)")
    plt.tight_layout()
    plt.show()

# %% [markdown]
# The loop costs $L$ sequential small operations, each with interpreter and kernel-launch
# overhead; the chunked scan replaces them by about $2Q + L/Q$ larger operations. On a GPU,
# where every operation is a kernel launch, the gap grows to two or three orders of
# magnitude for long sequences.
#
# SurvMamba's sequences are the patches of one region (at most
# $(4096/256)^2 = 256$), the regions of one slide, the functions of one process and the
# processes of one transcriptome: short sequences, many of them. The package runs all the
# groups of a batch as one batch of scans (next chapters), which matters more here than
# the length of any one scan.

# %%
csv_path = results_dir / "scan_benchmark_cpu.csv"
if csv_path.exists():
    import pandas as pd

    bench = pd.read_csv(csv_path)
    longest = bench[bench["L"] == bench["L"].max()].set_index("method")["forward_backward_ms"]
    print(f"{csv_path.name}, L = {bench['L'].max()}: " + ", ".join(f"{m} {v:.0f} ms" for m, v in longest.items()))
    print(f"parallel is {longest['loop'] / longest['parallel']:.1f}x faster than the loop there")

# %% [markdown]
# ## Summary
#
# * The selective scan is a linear recurrence whose coefficients depend on the input:
#   a large $\Delta_t$ overwrites the state with the current token, a small one keeps it.
# * Steps compose associatively, $(a_1, b_1)\bullet(a_2, b_2) = (a_2a_1, a_2b_1 + b_2)$, so the
#   scan runs in $O(\log L)$ parallel rounds; the package's chunked `parallel` backend does
#   $O(L)$ work and has its own backward pass.
# * Timings need warm-up runs and a fixed number of threads; the committed benchmark is
#   the reference for comparing backends.
#
# ## Exercises

# %% [markdown]
# **Exercise 1 (associativity).** Write `combine(p, q)`, the pair of "step $p$, then step
# $q$" for pairs $p = (a_1, b_1)$, $q = (a_2, b_2)$ of tensors. Check numerically that
# $\big((a_1,b_1)\bullet(a_2,b_2)\big)\bullet(a_3,b_3) = (a_1,b_1)\bullet\big((a_2,b_2)\bullet(a_3,b_3)\big)$,
# and that applying the combined pair to $h_0$ gives the three steps of the recurrence.

# %% tags=["stub", "remove-cell"]
# Your answer
def combine(p, q):
    """The pair (a, b) of the affine map h -> q(p(h)), for p = (a1, b1), q = (a2, b2)."""
    return None

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# Both sides equal $(a_3a_2a_1,\ a_3a_2b_1 + a_3b_2 + b_3)$; applied to $h_0$ this is
# $a_3(a_2(a_1h_0 + b_1) + b_2) + b_3$.
# :::

# %% tags=["solution"]
def combine(p, q):                  # noqa: F811 (replaces the stub)
    return q[0] * p[0], q[0] * p[1] + q[1]


g = torch.Generator().manual_seed(SEED)
p1, p2, p3 = [(torch.rand(5, generator=g), torch.randn(5, generator=g)) for _ in range(3)]
left, right = combine(combine(p1, p2), p3), combine(p1, combine(p2, p3))
h0 = torch.randn(5, generator=g)
print("max |left - right| =", max((a_ - b_).abs().max().item() for a_, b_ in zip(left, right)))

# %% tags=["check"]
gen = torch.Generator().manual_seed(1)
q1, q2, q3 = [(torch.rand(5, generator=gen), torch.randn(5, generator=gen)) for _ in range(3)]
h_start = torch.randn(5, generator=gen)
pair = combine(q1, q2)
assert isinstance(pair, tuple) and len(pair) == 2, f"combine should return a pair (a, b), not {pair!r}"
assert torch.allclose(pair[0] * h_start + pair[1], q2[0] * (q1[0] * h_start + q1[1]) + q2[1]), \
    "combine(p, q) applied to h should be step p, then step q"
l3, r3 = combine(combine(q1, q2), q3), combine(q1, combine(q2, q3))
assert all(torch.allclose(x_, y_) for x_, y_ in zip(l3, r3)), "(p • q) • r differs from p • (q • r)"
three = q3[0] * (q2[0] * (q1[0] * h_start + q1[1]) + q2[1]) + q3[1]
assert torch.allclose(l3[0] * h_start + l3[1], three), "the combined pair is not the three recurrence steps"
print("associative, and equal to three recurrence steps")

# %% [markdown]
# **Exercise 2 (selection: forgetting on demand).** Build steps `delta_reset` of shape
# `(1, E, L)`, 0.1 everywhere except a very large step, $\Delta_s = 50$, at position
# $s = 20$. With `scan_loop`, run two inputs that differ only before $s$ and store the
# largest change of the outputs at positions $s$ and after as `max_change_after`. Why does
# it vanish?

# %% tags=["stub", "remove-cell"]
# Your answer
s = 20
delta_reset = None         # (1, E, L) steps: 0.1, and 50 at position s
max_change_after = None    # max |y1 - y2| over positions >= s

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# With $A < 0$, $\exp(\Delta_s A) \approx 0$: the state is reset at $s$ and rewritten from $u_s$
# alone, so changing $u_{<s}$ changes nothing after $s$. This is how a token can tell the
# model to "start over", which a time-invariant SSM cannot.
# :::

# %% tags=["solution"]
s = 20
delta_reset = torch.full((1, E, L), 0.1)
delta_reset[..., s] = 50.0
u1 = torch.randn(1, E, L)
u2 = u1.clone()
u2[..., :s] = torch.randn(1, E, s)                    # other inputs before s
y1, y2 = (scan_loop(uu, delta_reset, A, Bm[:1], Cm[:1], D) for uu in (u1, u2))
max_change_after = (y1 - y2)[..., s:].abs().max().item()
print(f"max |Δy| before s: {(y1 - y2)[..., :s].abs().max().item():.2e}, at s and after: {max_change_after:.2e}")

# %% tags=["check"]
assert isinstance(delta_reset, torch.Tensor) and tuple(delta_reset.shape) == (1, E, L), \
    "delta_reset should be a tensor of shape (1, E, L)"
assert (delta_reset[..., s] == 50).all() and (delta_reset[..., :s] == 0.1).all(), \
    "delta_reset: 0.1 before s and 50 at s"
v1 = torch.randn(1, E, L)
v2 = torch.cat([torch.randn(1, E, s), v1[..., s:]], dim=-1)
w1, w2 = (scan_loop(vv, delta_reset, A, Bm[:1], Cm[:1], D) for vv in (v1, v2))
assert (w1 - w2)[..., s:].abs().max() < 1e-6 < (w1 - w2)[..., :s].abs().max(), "the step at s did not reset the state"
assert isinstance(max_change_after, float) and max_change_after < 1e-6, \
    f"max_change_after should be the largest |y1 - y2| at positions >= s (a float, about 0), not {max_change_after!r}"
print("the state is reset at s")
