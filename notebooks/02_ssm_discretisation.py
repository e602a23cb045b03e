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
# (a *zero-order hold*), the ODE can be solved exactly over one step. Variation of
# constants gives
#
# $$
# h\big((t{+}1)\Delta\big) = e^{\Delta A} h(t\Delta) + \int_0^{\Delta} e^{sA}\,ds\; B\,x_{t+1},
# $$
#
# and, when $A$ is invertible, $\int_0^\Delta e^{sA}ds = A^{-1}(e^{\Delta A} - I)$, which is the
# paper's Eq. 2:
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
# As a test system we use the HiPPO-LegS matrix that S4 starts from {cite}`gu2022s4`
# (lower-triangular, strongly non-normal, stable, with eigenvalues $-1, \dots, -N$), with $N = 8$.

# %%
N = 8
n = np.arange(N)
A_np = -np.where(n[:, None] > n[None, :], np.sqrt((2 * n[:, None] + 1) * (2 * n[None, :] + 1)), 0.0) \
       - np.diag(n + 1.0)
B_np = np.sqrt(2 * n + 1.0)
C_np = rng.standard_normal(N) / np.sqrt(N)
print("eigenvalues of A (real parts):", np.round(np.sort(np.linalg.eigvals(A_np).real), 3))

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
#
# **Exercise 1 (the bilinear discretisation).** S4 {cite}`gu2022s4` also uses the bilinear
# (Tustin) rule $\bA = (I - \tfrac{\Delta}{2}A)^{-1}(I + \tfrac{\Delta}{2}A)$,
# $\bB = (I - \tfrac{\Delta}{2}A)^{-1}\Delta B$. Implement it and measure how fast
# $\|\bA_{\text{bilinear}} - e^{\Delta A}\|$ falls with $\Delta$. What is the order?
#
# :::{dropdown} Solution
# The bilinear rule is the (1,1) Padé approximant of $e^{X}$, exact up to $X^2/2$; the
# first wrong term is of order $\Delta^3$, so halving $\Delta$ divides the error by about 8:
# a log–log slope of 3. The cell below fits the slope.
# :::

# %% tags=["hide-input"]
def bilinear(delta, A, B):
    I = np.eye(len(A))
    inv = np.linalg.inv(I - delta / 2 * A)
    return inv @ (I + delta / 2 * A), inv @ (delta * B)


steps = np.logspace(-4, -2.5, 8)
err_bil = [np.linalg.norm(bilinear(d, A_np, B_np)[0] - scipy.linalg.expm(d * A_np)) for d in steps]
order = np.polyfit(np.log(steps), np.log(err_bil), 1)[0]
print(f"bilinear Ā: error slope {order:.2f} (third order)")
assert 2.8 < order < 3.2

# %% [markdown]
# **Exercise 2 (stability for any step).** The eigenvalues of this $A$ are $-1, \dots, -8$.
# Show that both the ZOH and the bilinear $\bA$ have all eigenvalues inside the unit circle
# for $\Delta \in \{0.01, 1, 100\}$, so the recurrence never blows up.
#
# :::{dropdown} Solution
# ZOH maps an eigenvalue $\lambda$ to $e^{\Delta\lambda}$, of modulus $e^{\Delta \operatorname{Re}\lambda} < 1$;
# the bilinear rule maps it to $(1 + \Delta\lambda/2)/(1 - \Delta\lambda/2)$, of modulus $< 1$
# whenever $\operatorname{Re}\lambda < 0$. Both hold for every $\Delta > 0$.
# :::

# %% tags=["hide-input"]
for d in (0.01, 1.0, 100.0):
    rho_zoh = np.abs(np.linalg.eigvals(scipy.linalg.expm(d * A_np))).max()
    rho_bil = np.abs(np.linalg.eigvals(bilinear(d, A_np, B_np)[0])).max()
    print(f"Δ = {d:>6}: spectral radius ZOH {rho_zoh:.4f}, bilinear {rho_bil:.4f}")
    assert rho_zoh < 1 and rho_bil < 1
