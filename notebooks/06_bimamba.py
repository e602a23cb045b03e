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
# # The Bi-Mamba block (Algorithm 1) and the padding pitfall
#
# :::{admonition} Learning objectives
# :class: tip
# After this chapter you can
# 1. read Algorithm 1 line by line and count a Bi-Mamba block's parameters by hand;
# 2. show with a Jacobian what a forward-only and a bidirectional block let each token see;
# 3. explain why flipping a padded sequence leaks padding into real tokens, and how reversing within each row's length prevents it.
# :::
#
# A Mamba scan is causal: token $t$ sees tokens $1..t$. Patches of a region or functions of
# a process have no natural order, so SurvMamba follows Vision Mamba {cite}`zhu2024vim` and
# runs a second scan backwards. The paper's Algorithm 1, for a sequence
# $T_{l-1}: (B, M, D)$:
#
# $$
# \begin{aligned}
# T' &= \operatorname{Norm}(T_{l-1}), \quad x = \operatorname{Linear}^x(T'), \quad z = \operatorname{Linear}^z(T') && (B, M, E)\\
# x'_o &= \operatorname{SiLU}(\operatorname{Conv1d}_o(x)), \quad o \in \{\text{forward}, \text{backward}\}\\
# B_o, C_o &= \operatorname{Linear}^B_o(x'_o), \operatorname{Linear}^C_o(x'_o) && (B, M, N)\\
# \Delta_o &= \operatorname{softplus}(\operatorname{Linear}^\Delta_o(x'_o) + \text{Parameter}^\Delta_o) && (B, M, E)\\
# Y_o &= \operatorname{SSM}(\bar A_o, \bar B_o, C_o)(x'_o)\\
# T_l &= \operatorname{Linear}^T\big(Y_{\text{forward}} \odot \operatorname{SiLU}(z) + Y_{\text{backward}} \odot \operatorname{SiLU}(z)\big) + T_{l-1}.
# \end{aligned}
# $$
#
# The backward branch has its own convolution and SSM parameters, runs on the reversed
# sequence and has its output reversed back. Two details differ from the algorithm as
# printed, both taken from the Mamba block it is built on {cite}`gu2023mamba`: each branch
# also has the skip term $D \odot x'_o$, and $\operatorname{Linear}^\Delta$ is low rank.

# %%
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from survmamba_lite.ssm.bimamba import BiMamba, reverse_within_length
from survmamba_lite.utils.complexity import count_parameters

SEED = 0
torch.manual_seed(SEED)
print(f"seed: {SEED}")

# %% [markdown]
# ## Counting the parameters by hand
#
# With width $D$, expanded width $E = 2D$, state size $N$, convolution width $k = 4$ and
# $\Delta$-rank $R = \lceil E/32 \rceil$, one branch holds the depthwise convolution
# ($Ek + E$), $\operatorname{Linear}^{B,C,\Delta}$ as one projection $E \to R + 2N$, the
# $\Delta$ up-projection ($RE + E$), $A$ ($EN$) and $D$ ($E$). The block adds the norm ($2D$),
# $\operatorname{Linear}^{x,z}$ ($D \cdot 2E$) and $\operatorname{Linear}^T$ ($ED$).

# %%
# NBVAL_CHECK_OUTPUT
def bimamba_parameters(D, N, k=4, expand=2, bidirectional=True):
    E = expand * D
    R = -(-E // 32)
    branch = (E * k + E) + E * (R + 2 * N) + (R * E + E) + E * N + E
    return 2 * D + D * 2 * E + (2 if bidirectional else 1) * branch + E * D


for D, N in ((16, 4), (512, 16)):
    for bidi in (True, False):
        blk = BiMamba(dim=D, d_state=N, bidirectional=bidi)
        print(f"D={D:>3} N={N:>2} bidirectional={bidi!s:>5}: by hand {bimamba_parameters(D, N, bidirectional=bidi):>9,}"
              f"   count_parameters {count_parameters(blk):>9,}")

# %% [markdown]
# ## What each direction sees
#
# The Jacobian $\partial T_l[t] / \partial T_{l-1}[s]$ of a small block shows the receptive
# field: lower-triangular for the forward-only block, full for the bidirectional one (the
# diagonal includes the residual connection).

# %% mystnb={"figure": {"caption": "Receptive field of a Bi-Mamba block: the norm of $\\partial y_t/\\partial x_s$ (log scale) is lower-triangular for the forward-only block and full for the bidirectional one; the diagonal includes the residual connection.", "name": "fig-bimamba-jacobian"}}
L, D = 12, 8
x = torch.randn(1, L, D)
fig, axes = plt.subplots(1, 2, figsize=(7, 3.3))
for ax, bidi in zip(axes, (False, True)):
    torch.manual_seed(SEED)
    blk = BiMamba(dim=D, d_state=4, bidirectional=bidi, scan_backend="ref").eval()
    J = torch.autograd.functional.jacobian(lambda inp: blk(inp), x)      # (1, L, D, 1, L, D)
    influence = J[0, :, :, 0].pow(2).sum(dim=(1, 3)).sqrt()                # (L, L): ||∂y_t / ∂x_s||
    im = ax.imshow(influence.log10().clamp(min=-6), cmap="viridis", vmin=-6, vmax=1)
    ax.set_title("bidirectional" if bidi else "forward only", fontsize=9)
    ax.set_xlabel("input position s")
axes[0].set_ylabel("output position t")
plt.suptitle(r"$\log_{10}\|\partial y_t / \partial x_s\|$", fontsize=10)
fig.colorbar(im, ax=axes, shrink=0.85, label=r"$\log_{10}\|\partial y_t / \partial x_s\|$ (clipped at -6)")
plt.show()

# %% [markdown]
# ## Padding: why naive flipping is wrong
#
# The groups of a batch have different lengths: a region with 3 patches next to one with
# 200, a process with 2 functions next to one with 60. They are padded to a common length,
# with the real tokens first. A common way to write the backward branch is
# `branch(x.flip(1)).flip(1)` on the padded tensor. For a row with padding, the reversed
# sequence then *starts* with padding: the backward scan runs through the padding before
# it reaches the real tokens, and whatever the padding leaves in the state (and in the
# window of the causal convolution) leaks into every real output.
#
# The package reverses each row *within its own length*, $t \mapsto n_b - 1 - t$ for
# $t < n_b$, so padding stays at the end in both directions and the causal machinery never
# reaches it:

# %%
# NBVAL_CHECK_OUTPUT
x_demo = torch.tensor([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8]])
print("flip(1)              :", x_demo.flip(1).tolist())
print("reverse_within_length:", reverse_within_length(x_demo, torch.tensor([3, 5])).tolist())

# %% [markdown]
# To measure the leak we write the naive block next to the package's, with the same
# weights, and compare the outputs at the real tokens of a padded row with the outputs for
# the same tokens run alone without padding (relative to the size of the block's update
# $T_l - T_{l-1}$, since the residual connection passes the input through unchanged). We use a block whose LayerNorm bias and step
# sizes have moved away from their initial values, as they do during training (at
# initialisation the padded positions happen to project to exactly zero and the steps
# $\Delta$ are small, which hides most of the effect).

# %%
def naive_bimamba(blk, x, mask, mask_branches):
    """Algorithm 1 with the backward branch as flip -> branch -> flip on the padded tensor."""
    xs, z = blk.in_proj(blk.norm(x)).chunk(2, dim=-1)                       # (B, L, E) each
    valid = mask.to(x.dtype)
    y_f = blk.forward_branch(xs, valid if mask_branches else None)
    y_b = blk.backward_branch(xs.flip(1), valid.flip(1) if mask_branches else None).flip(1)
    return (blk.out_proj((y_f + y_b) * F.silu(z)) + x) * valid.unsqueeze(-1)


torch.manual_seed(SEED)
D, n_real = 16, 6
blk = BiMamba(dim=D, d_state=8, scan_backend="ref").eval()
with torch.no_grad():
    blk.norm.bias.normal_(0.0, 0.5)                                          # as after training
    for branch in (blk.forward_branch, blk.backward_branch):
        branch.dt_proj.bias.fill_(0.5)                                       # Δ ≈ softplus(0.5) ≈ 1
x_real = torch.randn(1, n_real, D)
rows = []
with torch.no_grad():
    alone = blk(x_real)                                                      # (1, n_real, D), no padding
    scale = (alone - x_real).abs().max().item()                              # size of the block's update
    for n_pad in (0, 1, 4, 16, 64):
        x_pad = torch.cat([x_real, torch.zeros(1, n_pad, D)], dim=1)
        mask = torch.arange(n_real + n_pad).unsqueeze(0) < n_real
        errs = [(out[:, :n_real] - alone).abs().max().item() / scale for out in (
            naive_bimamba(blk, x_pad, mask, mask_branches=False),
            naive_bimamba(blk, x_pad, mask, mask_branches=True),
            blk(x_pad, mask))]
        rows.append((n_pad, *errs))
print("error at the real tokens, relative to the block's update: max |out - out_alone| / max |out_alone - x|")
print(f"{'padding':>8} {'naive flip':>12} {'naive, masked':>14} {'within length':>14}")
for n_pad, a, b, c in rows:
    print(f"{n_pad:>8} {a:>12.2e} {b:>14.2e} {c:>14.2e}")

# %%
# NBVAL_CHECK_OUTPUT
print("naive flip leaks:", all(r[1] > 1e-3 for r in rows[1:]))
print("masking the branches is not enough:", all(r[2] > 1e-3 for r in rows[1:]))
print("reverse_within_length is exact (< 1e-6):", all(r[3] < 1e-6 for r in rows))

# %% [markdown]
# Masking the SSM input at padded positions (the middle column) removes the state that
# the padding itself would write, but not the leak through the convolution: after
# reversal the first real tokens' convolution window covers padded positions, whose
# projections $\operatorname{Linear}^x(\operatorname{Norm}(0))$ are not zero once the norm
# has a bias. Reversing within the length removes both paths. With it, a group's output
# does not depend on how much padding its batch needed, which is what lets HIM run the
# groups of many patients as one batch (next chapter). The tests of the package check
# this property for every block, with random lengths.

# %% [markdown]
# ## Summary
#
# * A Bi-Mamba block is a norm, the $x$/$z$ projections, two Mamba branches (forward and
#   backward, each with its own convolution and SSM) gated by $\operatorname{SiLU}(z)$, an
#   output projection and a residual connection.
# * The backward branch makes every token see the whole sequence, which suits unordered
#   patches and functions.
# * On a padded batch the backward branch must reverse each row within its own length;
#   naive flipping leaks padding through both the state and the causal convolution.
#
# ## Exercises

# %% [markdown]
# **Exercise 1 (parameters at the paper's width).** Use `bimamba_parameters` to find how
# many parameters the second direction adds to a block with $D = 512$, $N = 16$ (`extra`),
# and what share of the bidirectional block that is (`share`, a fraction).

# %% tags=["stub", "remove-cell"]
# Your answer
extra = None       # parameters of the backward branch at D = 512, N = 16
share = None       # extra / parameters of the bidirectional block

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# One branch at $E = 1024$, $R = 32$, $k = 4$ holds
# $(Ek + E) + E(R + 2N) + (RE + E) + EN + E$ parameters: the difference between the
# bidirectional and the forward-only count. The cell prints it and its share: a small part
# of the block; the second direction is cheap, the projections
# $\operatorname{Linear}^{x,z}$ and $\operatorname{Linear}^T$ dominate.
# :::

# %% tags=["solution"]
extra = bimamba_parameters(512, 16) - bimamba_parameters(512, 16, bidirectional=False)
share = extra / bimamba_parameters(512, 16)
print(f"backward branch: {extra:,} parameters, {share:.1%} of the block")

# %% tags=["check"]
full = count_parameters(BiMamba(dim=512, d_state=16))
forward_only = count_parameters(BiMamba(dim=512, d_state=16, bidirectional=False))
assert isinstance(extra, int), f"extra should be a whole number of parameters, not {extra!r}"
assert extra == full - forward_only, "extra is not what the backward branch adds to BiMamba(dim=512, d_state=16)"
assert isinstance(share, float) and abs(share - extra / full) < 1e-12, "share should be extra / (bidirectional block)"
print("extra and share checked against count_parameters")

# %% [markdown]
# **Exercise 2 (the convolution width).** In the padding experiment, masking the branches
# (middle column) leaves only the leak through the causal convolution of width $k = 4$.
# Predict from $k$ the number of padded positions from which that leak stops changing
# (`constant_from`), then measure it with `naive_bimamba` for 1 to 6 padded positions
# (`masked_err`, the six relative errors, as in the table above).

# %% tags=["stub", "remove-cell"]
# Your answer
constant_from = None   # padded positions from which the masked naive error no longer changes
masked_err = None      # list: the relative error of the masked naive block for 1, 2, ..., 6 padded positions

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# After the flip, the first real token's convolution window covers the $k - 1 = 3$
# positions before it. With fewer than 3 padded positions the window also reaches the
# zero left-padding of the convolution, so the leak changes from one padding length to the
# next (it need not grow: it mixes padding projections and zeros); from 3 on the window
# sees only padding, whose projection is the same vector whatever the padding length, and
# the masked state ignores the rest: the error is constant.
# :::

# %% tags=["solution"]
k = blk.forward_branch.d_conv
constant_from = k - 1
masked_err = []
with torch.no_grad():
    for n_pad in range(1, 7):
        x_pad = torch.cat([x_real, torch.zeros(1, n_pad, D)], dim=1)
        mask = torch.arange(n_real + n_pad).unsqueeze(0) < n_real
        out = naive_bimamba(blk, x_pad, mask, mask_branches=True)
        masked_err.append((out[:, :n_real] - alone).abs().max().item() / scale)
print(f"k = {k}; masked naive error for 1..6 padded positions:", [f"{e:.3e}" for e in masked_err])
assert all(abs(e - masked_err[k - 2]) < 1e-6 for e in masked_err[k - 2:]) and abs(masked_err[0] - masked_err[k - 2]) > 1e-4

# %% tags=["check"]
assert isinstance(masked_err, list) and len(masked_err) == 6, "masked_err should be a list of six errors (1..6 padded positions)"
with torch.no_grad():
    x_three = torch.cat([x_real, torch.zeros(1, 3, D)], dim=1)
    mask_three = torch.arange(n_real + 3).unsqueeze(0) < n_real
    err_three = (naive_bimamba(blk, x_three, mask_three, True)[:, :n_real] - alone).abs().max().item() / scale
assert abs(masked_err[2] - err_three) < 1e-9, "masked_err[2] is not the masked naive error with 3 padded positions"
assert isinstance(constant_from, int) and 1 <= constant_from <= 6, f"constant_from should be 1..6, not {constant_from!r}"
assert all(abs(e - masked_err[constant_from - 1]) < 1e-6 for e in masked_err[constant_from - 1:]), \
    f"the error still changes after {constant_from} padded positions"
assert constant_from == 1 or abs(masked_err[constant_from - 2] - masked_err[constant_from - 1]) > 1e-4, \
    f"the error is already constant before {constant_from} padded positions"
print("masked_err and constant_from checked")
