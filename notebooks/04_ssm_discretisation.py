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
# # State-space models: discretisation, recurrence and convolution
#
# :::{admonition} Learning objectives
# :class: tip
# After this chapter you can
# 1. derive the zero-order-hold discretisation (Eq. 2) from the continuous system (Eq. 1);
# 2. quantify the error of Mamba's simplified $\bar B = \Delta B$ and say why it does not matter in practice;
# 3. run a time-invariant SSM as a recurrence (Eq. 3) and as a convolution (Eq. 4), and explain what $\Delta$ does to the kernel.
# :::
#
# Every Mamba block in SurvMamba contains a linear state-space model (SSM). This chapter
# follows the paper's Eq. 1–4: the continuous system, its discretisation with a step
# $\Delta$, and the two equivalent ways of running the discrete system on a sequence, as a
# recurrence and as a convolution {cite}`gu2022s4`.
#
# ## The continuous system (Eq. 1)
#
# A scalar input $x(t)$ drives an $N$-dimensional state $h(t)$, read out linearly:
#
# $$
# h'(t) = A\,h(t) + B\,x(t), \qquad y(t) = C\,h(t),
# \qquad A \in \R^{N\times N},\ B, C \in \R^{N}.
# $$
#
# ## Zero-order hold (Eq. 2)
#
# Sequences are sampled: $x_t = x(t\Delta)$. If the input is held constant over each step
# (a {term}`zero-order hold`), the ODE can be solved exactly over one step, by *variation of
# constants*. Multiply $h' = Ah + Bx$ by $e^{-sA}$: since $\tfrac{d}{ds}e^{-sA} = -Ae^{-sA}$
# and $A$ commutes with $e^{-sA}$,
#
# $$
# \frac{d}{ds}\Big(e^{-sA}h(s)\Big) = e^{-sA}\big(h'(s) - Ah(s)\big) = e^{-sA}B\,x(s).
# $$
#
# Integrate over one step, from $s = t\Delta$ to $(t{+}1)\Delta$, and multiply by
# $e^{(t+1)\Delta A}$:
#
# $$
# h\big((t{+}1)\Delta\big) = e^{\Delta A}\,h(t\Delta) + \int_{t\Delta}^{(t+1)\Delta} e^{((t+1)\Delta - s)A}\,B\,x(s)\,ds .
# $$
#
# The first term is the state left to itself for a time $\Delta$; the second adds the input
# received during the step, each instant weighted by how long it has had to decay. With the
# input held at $x_{t+1}$ over the step, it leaves the integral, and the substitution
# $u = (t{+}1)\Delta - s$ gives
#
# $$
# h\big((t{+}1)\Delta\big) = e^{\Delta A} h(t\Delta) + \int_0^{\Delta} e^{uA}\,du\; B\,x_{t+1},
# $$
#
# and, when $A$ is invertible, $\int_0^\Delta e^{uA}du = A^{-1}(e^{\Delta A} - I)$ (differentiate
# $A^{-1}e^{uA}$ to check), so that the input term is $A^{-1}(e^{\Delta A} - I)B\,x_{t+1} =
# (\Delta A)^{-1}(e^{\Delta A} - I)\,\Delta B\,x_{t+1}$: the paper's Eq. 2,
#
# $$
# \bA = \exp(\Delta A), \qquad \bB = (\Delta A)^{-1}\big(\exp(\Delta A) - I\big)\,\Delta B .
# $$
#
# Mamba {cite}`gu2023mamba` keeps $\bA$ but replaces $\bB$ by the first-order term $\Delta B$.
# Expanding the series $\varphi_1(X) = X^{-1}(e^X - I) = I + X/2 + X^2/6 + \dots$,
#
# $$
# \bB_{\text{ZOH}} = \varphi_1(\Delta A)\,\Delta B = \Delta B + \tfrac12\Delta^2 A B + O(\Delta^3),
# $$
#
# so the simplified $\bB = \Delta B$ differs from the exact one by $O(\Delta^2)$ per step.

# %%
import numpy as np
import matplotlib.pyplot as plt
import scipy.linalg
import torch

SEED = 0
torch.manual_seed(SEED)
rng = np.random.default_rng(SEED)
print(f"seed: {SEED}")
torch.set_default_dtype(torch.float64)   # this chapter compares formulas to ~1e-12

# %% [markdown]
# ## The test system: HiPPO-LegS
#
# Which $A$ and $B$? S4 {cite}`gu2022s4` starts from {term}`HiPPO` {cite}`gu2020hippo`, which asks
# for the state that *remembers the input's whole history* as well as $N$ numbers can: the
# coefficients of the best approximation of $x(s)$, $0 \le s \le t$, by the first $N$
# Legendre polynomials stretched over $[0, t]$ (the "scaled Legendre" measure, LegS). Keeping
# those coefficients up to date as $t$ grows turns out to be a linear ODE,
# $h'(t) = \tfrac1t\,(A h(t) + B x(t))$, with
#
# $$
# A_{nk} = -\begin{cases}\sqrt{(2n+1)(2k+1)} & n > k\\ n + 1 & n = k\\ 0 & n < k\end{cases},
# \qquad B_n = \sqrt{2n + 1}, \qquad n, k = 0, \dots, N-1 :
# $$
#
# lower-triangular, strongly non-normal, stable, with eigenvalues $-1, \dots, -N$. S4 keeps
# these matrices but drops the $\tfrac1t$: the time-invariant $h' = Ah + Bx$ forgets the
# distant past at a rate set by the step $\Delta$ instead of remembering all of it equally,
# and Mamba keeps only the diagonal, $A = -\operatorname{diag}(1, \dots, N)$ (the end of
# this chapter). We use the HiPPO-LegS matrices with $N = 8$ as the test system. The cell
# after the next checks what the state holds: running the LegS recurrence (the $\tfrac1t$
# form, discretised with the bilinear rule of Exercise 1 on 2,000 steps) over a signal, the
# final state's eight numbers rebuild the whole signal as
# $x(s) \approx \sum_n h_n \sqrt{2n+1}\,P_n(2s/t - 1)$, close to the best fit by eight
# Legendre polynomials.

# %%
N = 8
n = np.arange(N)
A_np = -np.where(n[:, None] > n[None, :], np.sqrt((2 * n[:, None] + 1) * (2 * n[None, :] + 1)), 0.0) \
       - np.diag(n + 1.0)
B_np = np.sqrt(2 * n + 1.0)
C_np = rng.standard_normal(N) / np.sqrt(N)
print("eigenvalues of A (real parts):", np.round(np.sort(np.linalg.eigvals(A_np).real), 3))

# %%
from numpy.polynomial import legendre

n_steps = 2000
s_grid = np.linspace(0.0, 1.0, n_steps)                                  # the history, t = 1 at the end
signal = np.sin(6 * s_grid) + 0.5 * s_grid
h_legs = np.zeros(N)
for k in range(1, n_steps + 1):                                        # h_k = h_{k-1} + (A h + B x) / k, bilinear
    h_legs = np.linalg.solve(np.eye(N) - A_np / (2 * k), (np.eye(N) + A_np / (2 * k)) @ h_legs + B_np * signal[k - 1] / k)
P_basis = np.stack([legendre.Legendre.basis(m)(2 * s_grid - 1) for m in range(N)], axis=1)   # (n_steps, N)
rebuilt = P_basis @ (h_legs * np.sqrt(2 * n + 1))
best = P_basis @ np.linalg.lstsq(P_basis, signal, rcond=None)[0]
rms = lambda v: float(np.sqrt(np.mean(v ** 2)))                      # noqa: E731
print(f"signal rebuilt from the {N} numbers of the LegS state: RMS error {rms(rebuilt - signal):.1e} "
      f"(best fit by {N} Legendre polynomials: {rms(best - signal):.1e}; the signal's RMS: {rms(signal):.2f})")
assert rms(rebuilt - signal) < 0.01 * rms(signal)

# %% [markdown]
# A ten-line ZOH written straight from Eq. 2 with SciPy's matrix exponential and a linear
# solve, next to the package's `zoh`, which avoids the inverse altogether (it reads both
# $\bA$ and $\bB$ off the exponential of one block matrix, so it also works for a singular
# $A$), and `simplified`, Mamba's version:

# %%
from survmamba_lite.ssm import simplified, zoh


def zoh_from_eq2(delta, A, B):
    """Eq. 2 literally: A_bar = expm(ΔA), B_bar = (ΔA)^{-1}(expm(ΔA) - I) ΔB."""
    A_bar = scipy.linalg.expm(delta * A)
    B_bar = np.linalg.solve(delta * A, (A_bar - np.eye(len(A))) @ (delta * B))
    return A_bar, B_bar


A, B, C = (torch.from_numpy(v) for v in (A_np, B_np, C_np))
for delta in (0.01, 0.1, 1.0):
    A_ref, B_ref = zoh_from_eq2(delta, A_np, B_np)
    A_bar, B_bar = zoh(delta, A, B)
    print(f"Δ = {delta:<5}  max|Ā - Ā_eq2| = {np.abs(A_bar.numpy() - A_ref).max():.1e}"
          f"   max|B̄ - B̄_eq2| = {np.abs(B_bar.numpy() - B_ref).max():.1e}")

# %% [markdown]
# ## How wrong is $\bar B = \Delta B$?
#
# The error of the simplified $\bB$ against the exact one, for a range of steps. The
# slope of 2 on the log–log plot is the $O(\Delta^2)$ of the series above; the ratio
# $\|\bB_{\text{simpl}} - \bB_{\text{ZOH}}\| / \|\tfrac12\Delta^2 AB\|$ tends to 1.

# %% mystnb={"figure": {"caption": "Error of the simplified $\\bar B = \\Delta B$ against the exact zero-order hold, as a function of the step $\\Delta$; the dashed line is the leading term $\\frac12\\Delta^2 AB$ (slope 2).", "name": "fig-ssm-error"}}
deltas = np.logspace(-4, 0.5, 30)
err = []
for d in deltas:
    _, B_exact = zoh(d, A, B)
    _, B_simple = simplified(d, A, B, diagonal=False)
    err.append(torch.linalg.norm(B_simple - B_exact).item())
err = np.array(err)
leading = np.array([np.linalg.norm(0.5 * d ** 2 * A_np @ B_np) for d in deltas])

fig, ax = plt.subplots(figsize=(5, 3.6))
ax.loglog(deltas, err, "o-", ms=3, label=r"$\|\bar B_{\rm simpl} - \bar B_{\rm ZOH}\|$")
ax.loglog(deltas, leading, "--", label=r"$\|\frac{1}{2}\Delta^2 A B\|$ (slope 2)")
ax.set_xlabel(r"step $\Delta$")
ax.set_ylabel("error")
ax.legend(frameon=False)
ax.set_title("Simplified discretisation: error vs step")
plt.show()
slope = np.polyfit(np.log(deltas[:10]), np.log(err[:10]), 1)[0]
print(f"fitted slope for small Δ: {slope:.3f};  error / leading term at Δ = 1e-4: {err[0] / leading[0]:.6f}")

# %% [markdown]
# In Mamba the steps are small at initialisation ($\Delta \in [10^{-3}, 10^{-1}]$) and
# learned afterwards, so the simplified $\bB$ is a reparametrisation rather than an
# approximation that matters: the network learns $B$ and $\Delta$ through it. Every
# backend of the selective scan in the next chapter uses $\bB = \Delta B$.
#
# ## The exact discretisation really is exact
#
# With the input held piecewise constant, the ZOH recurrence reproduces the continuous
# trajectory at the sampling instants for *any* step, while the simplified $\bB$ drifts
# when $\Delta$ is large. We integrate the ODE with a high-accuracy solver as the
# independent reference.

# %% mystnb={"figure": {"caption": "Output of the HiPPO-LegS system ($N = 8$) for a piecewise-constant input at $\\Delta = 0.25$: the ZOH recurrence lies on the ODE solution at every sampling instant, the simplified $\\bar B$ drifts.", "name": "fig-ssm-zoh-exact"}}
from scipy.integrate import solve_ivp

delta, L = 0.25, 24
x_seq = np.sin(np.arange(L) * 0.7) + 0.5 * (np.arange(L) > 12)


def ode(t, h):
    k = min(int(np.ceil(t / delta - 1e-12)), L) - 1        # input held over ((k)Δ, (k+1)Δ]
    return A_np @ h + B_np * x_seq[max(k, 0)]


sol = solve_ivp(ode, (0, L * delta), np.zeros(N), t_eval=np.arange(1, L + 1) * delta,
                rtol=1e-10, atol=1e-12, max_step=delta / 20)
y_true = C_np @ sol.y


def run(A_bar, B_bar):
    h, ys = np.zeros(N), []
    for x_t in x_seq:
        h = A_bar @ h + B_bar * x_t
        ys.append(C_np @ h)
    return np.array(ys)


y_zoh = run(*(v.numpy() for v in zoh(delta, A, B)))
y_simple = run(*(v.numpy() for v in simplified(delta, A, B, diagonal=False)))
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.plot(np.arange(1, L + 1) * delta, y_true, "k-", lw=2, alpha=0.4, label="ODE solution")
ax.plot(np.arange(1, L + 1) * delta, y_zoh, "o", ms=4, label="ZOH recurrence")
ax.plot(np.arange(1, L + 1) * delta, y_simple, "x", ms=5, label=r"simplified $\bar B = \Delta B$")
ax.set_xlabel("time")
ax.set_ylabel("y")
ax.legend(frameon=False, fontsize=8)
ax.set_title(f"Δ = {delta}")
plt.show()
print(f"max |y_ZOH - y_ODE| = {np.abs(y_zoh - y_true).max():.1e},  "
      f"max |y_simplified - y_ODE| = {np.abs(y_simple - y_true).max():.1e}")

# %% [markdown]
# ## Recurrence (Eq. 3) and convolution (Eq. 4)
#
# Unrolling $h_t = \bA h_{t-1} + \bB x_t$ from $h_{-1} = 0$ gives
# $y_t = \sum_{k=0}^{t} C\bA^{k}\bB\,x_{t-k}$: the output is the causal convolution of the
# input with the kernel
#
# $$
# \bK = (C\bB,\ C\bA\bB,\ \dots,\ C\bA^{L-1}\bB), \qquad y = x * \bK .
# $$
#
# The recurrence costs $O(L)$ sequential steps and suits generation one token at a
# time; the convolution is parallel over positions and suits training. Both need $\bA$,
# $\bB$ and $C$ to be the same at every step: a *time-invariant* system.

# %%
from survmamba_lite.ssm import ssm_convolution, ssm_kernel, ssm_recurrence

L = 64
x = torch.randn(3, L)                        # three input sequences
A_bar, B_bar = zoh(0.1, A, B)
K = ssm_kernel(A_bar, B_bar, C, L)
y_rec = ssm_recurrence(A_bar, B_bar, C, x)
y_conv = ssm_convolution(K, x)
# an independent third route: the convolution as a lower-triangular Toeplitz matrix
T = torch.from_numpy(scipy.linalg.toeplitz(K.numpy(), np.zeros(L)))
y_toeplitz = x @ T.T
print(f"max |recurrence - convolution| = {(y_rec - y_conv).abs().max():.1e}")
print(f"max |recurrence - Toeplitz|    = {(y_rec - y_toeplitz).abs().max():.1e}")

# %%
# NBVAL_CHECK_OUTPUT
print("recurrence == convolution (1e-10):", torch.allclose(y_rec, y_conv, atol=1e-10))
print("recurrence == Toeplitz    (1e-10):", torch.allclose(y_rec, y_toeplitz, atol=1e-10))

# %% [markdown]
# ## What the kernel looks like
#
# The step $\Delta$ sets the time scale of the kernel: a small step means a slowly decaying
# kernel (long memory measured in positions), a large step a quickly decaying one. This is
# the knob that Mamba makes input-dependent in the next chapter. (The kernels are divided
# by $\Delta$, since $\bB \approx \Delta B$ scales them.)

# %% mystnb={"figure": {"caption": "Convolution kernels $\\bar K_k/\\Delta$ of the same system for three steps: a small $\\Delta$ gives a slowly decaying kernel (long memory), a large one a short memory.", "name": "fig-ssm-kernels"}}
fig, ax = plt.subplots(figsize=(6, 3.2))
for d in (0.02, 0.1, 0.5):
    K_d = ssm_kernel(*zoh(d, A, B), C, 128)
    ax.plot(K_d.numpy() / d, label=f"Δ = {d}")
ax.set_xlabel("lag k")
ax.set_ylabel(r"$\bar K_k / \Delta$")
ax.legend(frameon=False, fontsize=8)
ax.set_title("SSM convolution kernels (HiPPO-LegS A, N = 8)")
plt.show()

# %% [markdown]
# ## Diagonal state matrices
#
# Mamba uses a diagonal $A$ per channel (S4D-real initialisation
# $A = -\operatorname{diag}(1, \dots, N)$ {cite}`gu2022s4d`). Then everything is elementwise:
# $\bA_n = e^{\Delta A_n}$ and $\bB_n = \operatorname{expm1}(\Delta A_n)/A_n \cdot B_n$.
# The package's `zoh_diagonal` agrees with the general `zoh` on a diagonal matrix:

# %%
# NBVAL_CHECK_OUTPUT
from survmamba_lite.ssm import zoh_diagonal

a = -torch.arange(1.0, N + 1)
b = torch.randn(N)
Ad, Bd = zoh_diagonal(0.3, a, b)
Ag, Bg = zoh(0.3, torch.diag(a), b)
print("diagonal ZOH == general ZOH:", torch.allclose(torch.diag(Ad), Ag, atol=1e-12),
      torch.allclose(Bd, Bg, atol=1e-12))

# %%
torch.set_default_dtype(torch.float32)

# %% [markdown]
# ## Summary
#
# * Zero-order hold solves the linear ODE exactly over a step with a constant input:
#   $\bA = e^{\Delta A}$, $\bB = (\Delta A)^{-1}(e^{\Delta A} - I)\Delta B$ (Eq. 2).
# * Mamba's $\bB = \Delta B$ is off by $O(\Delta^2)$ per step; since $B$ and $\Delta$ are
#   learned, it is a reparametrisation rather than an error.
# * A time-invariant SSM is both a recurrence ($O(L)$ sequential steps) and a causal
#   convolution with the kernel $\bK$ (parallel); $\Delta$ sets the kernel's time scale.
#
# ## Exercises

# %% [markdown]
# **Exercise 1 (the bilinear discretisation).** S4 {cite}`gu2022s4` also uses the bilinear
# (Tustin) rule $\bA = (I - \tfrac{\Delta}{2}A)^{-1}(I + \tfrac{\Delta}{2}A)$,
# $\bB = (I - \tfrac{\Delta}{2}A)^{-1}\Delta B$. Implement it as `bilinear(delta, A, B)`
# (NumPy arrays in, `(A_bar, B_bar)` out), measure how fast
# $\|\bA_{\text{bilinear}} - e^{\Delta A}\|$ falls with $\Delta$ for `A_np`, and store the
# fitted log–log slope as `order`. What is the order, and why?

# %% tags=["stub", "remove-cell"]
# Your answer
def bilinear(delta, A, B):
    """(A_bar, B_bar) of the bilinear rule for step delta, A: (N, N), B: (N,)."""
    return None, None


order = None       # the log-log slope of ||A_bar_bilinear - expm(delta A)|| against delta, small delta

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# The bilinear rule is the (1,1) Padé approximant of $e^{X}$, exact up to $X^2/2$; the
# first wrong term is of order $\Delta^3$, so halving $\Delta$ divides the error by about 8:
# a log–log slope of 3.
# :::

# %% tags=["solution"]
def bilinear(delta, A, B):                  # noqa: F811 (replaces the stub)
    I = np.eye(len(A))
    inv = np.linalg.inv(I - delta / 2 * A)
    return inv @ (I + delta / 2 * A), inv @ (delta * B)


steps = np.logspace(-4, -2.5, 8)
err_bil = [np.linalg.norm(bilinear(d, A_np, B_np)[0] - scipy.linalg.expm(d * A_np)) for d in steps]
order = float(np.polyfit(np.log(steps), np.log(err_bil), 1)[0])
print(f"bilinear Ā: error slope {order:.2f}")
assert 2.8 < order < 3.2                                              # third order, as the solution says

# %% tags=["check"]
A_b, B_b = bilinear(0.1, A_np, B_np)
assert isinstance(A_b, np.ndarray) and A_b.shape == A_np.shape, "bilinear should return (A_bar, B_bar) with A_bar (N, N)"
left = np.eye(N) - 0.05 * A_np
assert np.allclose(left @ A_b, np.eye(N) + 0.05 * A_np), "A_bar should solve (I - Δ/2 A) A_bar = I + Δ/2 A"
assert np.allclose(left @ B_b, 0.1 * B_np), "B_bar should solve (I - Δ/2 A) B_bar = Δ B"
probe = np.array([1e-4, 1e-3])
probe_err = [np.linalg.norm(bilinear(d, A_np, B_np)[0] - scipy.linalg.expm(d * A_np)) for d in probe]
assert isinstance(order, float), f"order should be a number (the fitted slope), not {order!r}"
assert abs(order - np.diff(np.log(probe_err))[0] / np.diff(np.log(probe))[0]) < 0.1, \
    "order is not the log-log slope of the error of A_bar for small steps"
print("bilinear rule checked; order is the measured slope")

# %% [markdown]
# **Exercise 2 (stability for any step).** The eigenvalues of this $A$ are $-1, \dots, -8$.
# Compute the spectral radius (the largest eigenvalue modulus) of the ZOH and of the
# bilinear $\bA$ for $\Delta \in \{0.01, 1, 100\}$ as dicts `rho_zoh` and `rho_bil` from
# $\Delta$ to the radius. Why are they all below 1, so that the recurrence never blows up?

# %% tags=["stub", "remove-cell"]
# Your answer
rho_zoh = {}       # {delta: spectral radius of expm(delta A)} for delta in 0.01, 1.0, 100.0
rho_bil = {}       # the same for the bilinear A_bar

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# ZOH maps an eigenvalue $\lambda$ to $e^{\Delta\lambda}$, of modulus $e^{\Delta \operatorname{Re}\lambda} < 1$;
# the bilinear rule maps it to $(1 + \Delta\lambda/2)/(1 - \Delta\lambda/2)$, of modulus $< 1$
# whenever $\operatorname{Re}\lambda < 0$. Both hold for every $\Delta > 0$.
# :::

# %% tags=["solution"]
rho_zoh = {d: float(np.abs(np.linalg.eigvals(scipy.linalg.expm(d * A_np))).max()) for d in (0.01, 1.0, 100.0)}
rho_bil = {d: float(np.abs(np.linalg.eigvals(bilinear(d, A_np, B_np)[0])).max()) for d in (0.01, 1.0, 100.0)}
for d in rho_zoh:
    print(f"Δ = {d:>6}: spectral radius ZOH {rho_zoh[d]:.4f}, bilinear {rho_bil[d]:.4f}")

# %% tags=["check"]
assert set(rho_zoh) == set(rho_bil) == {0.01, 1.0, 100.0}, "rho_zoh and rho_bil need the keys 0.01, 1.0 and 100.0"
lam = -np.arange(1.0, N + 1)                                         # the eigenvalues of A_np
for d in (0.01, 1.0, 100.0):
    assert abs(rho_zoh[d] - np.abs(np.exp(d * lam)).max()) < 1e-6, f"rho_zoh[{d}] is not the spectral radius of expm(ΔA)"
    assert abs(rho_bil[d] - np.abs((1 + d * lam / 2) / (1 - d * lam / 2)).max()) < 1e-6, \
        f"rho_bil[{d}] is not the spectral radius of the bilinear A_bar"
    assert rho_zoh[d] < 1 and rho_bil[d] < 1, f"a radius of 1 or more at Δ = {d}"
print("all spectral radii below 1")
