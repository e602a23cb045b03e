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
# # Interaction Fusion Mamba (IFM) and adaptive fusion
#
# :::{admonition} Learning objectives
# :class: tip
# After this chapter you can
# 1. read Algorithm 2: each modality's scan output gated by the other modality's $\operatorname{SiLU}(z)$;
# 2. compare the two ways the package aligns sequences of different lengths (`pool`, `interpolate`);
# 3. write the adaptive fusion of Eq. 8 and check that the loss trains the blend weight $\alpha$.
# :::
#
# After HIM, each modality has fine tokens (patches; functions) and coarse tokens
# (regions; processes). IFM (Sec. 3.5, Algorithm 2) fuses histology ($a_1$) and genomics
# ($a_2$) at one granularity. Each modality runs its own selective scan, and each scan's
# output is *gated by the other modality*:
#
# $$
# \begin{aligned}
# x'_o &= \operatorname{SiLU}\big(\operatorname{Conv1d}_o(\operatorname{Linear}^x_o(\operatorname{Norm}_o(T^o)))\big), \quad
# Y_o = \operatorname{SSM}_o(x'_o), \qquad o \in \{a_1, a_2\}\\
# z_1 &= \operatorname{Linear}^z(\operatorname{Norm}_{a_1}(T^{a_1})), \qquad z_2 = \operatorname{Linear}^z(\operatorname{Norm}_{a_2}(T^{a_2}))\\
# Y^{a_1} &= Y_{a_1} \odot \operatorname{SiLU}(z_2), \qquad Y^{a_2} = Y_{a_2} \odot \operatorname{SiLU}(z_1)\\
# T_l &= \operatorname{Linear}^T\big(\operatorname{Cat}(Y^{a_1}, Y^{a_2})\big).
# \end{aligned}
# $$
#
# Three things in the paper need a decision before this can be coded (they are collected
# in [Errata and interpretation decisions](../book/errata.md)):
#
# 1. **Algorithm 2, line 5** applies the convolution to an `x` that is never defined. In
#    Algorithm 1 `x` is $\operatorname{Linear}^x$ of the normalised tokens; we do the same,
#    with one projection per modality.
# 2. **Eq. 7** writes the same inputs $[T^I, T^G]$ for $H_f$ and $H_c$. We read it as the
#    fine IFM taking HIM's fine outputs and the coarse IFM taking its coarse outputs.
# 3. **Lengths.** Algorithm 2 gates modality $a_1$ position by position with $z_2$, which
#    assumes both sequences have the same length $M$. They do not: thousands of patches
#    against hundreds of functions, tens of regions against tens of processes.

# %%
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from survmamba_lite.model.him import masked_mean
from survmamba_lite.model.ifm import InteractionFusionMamba, resample_to_length

SEED = 0
torch.manual_seed(SEED)
print(f"seed: {SEED}")

# %% [markdown]
# ## Two ways to align sequences of different lengths
#
# `SurvMambaConfig(ifm_align=...)` chooses between:
#
# `pool` (default)
# : each token of $a_1$ is gated by the *average* gate of $a_2$,
#   $\overline{g}_2 = \operatorname{mean}_t \operatorname{SiLU}(z_{2,t})$, and vice versa; the two
#   gated outputs are mean-pooled and concatenated. Order-free and cheap.
#
# `interpolate`
# : the gate and output of $a_2$ are resampled linearly from its length to the length of
#   $a_1$ (histology is the anchor) and used position by position, as Algorithm 2 is
#   written; the fused tokens are then mean-pooled.
#
# Each IFM returns one vector per patient, $(B, D)$, ready for Eq. 8.
#
# What `pool` makes of the interaction is worth writing out. Its fused vector is
#
# $$
# \operatorname{Linear}^T\Big(\operatorname{Cat}\big(\overline{Y}_{a_1} \odot \overline{g}_2,\ \overline{Y}_{a_2} \odot \overline{g}_1\big)\Big),
# \qquad \overline{Y}_{o} = \operatorname{mean}_t Y_{o,t},\quad \overline{g}_o = \operatorname{mean}_t \operatorname{SiLU}(z_{o,t}),
# $$
#
# since the mean over positions of $Y_{a_1,t} \odot \overline{g}_2$ is
# $\overline{Y}_{a_1} \odot \overline{g}_2$. Each modality's scan still reads its own
# tokens in order, but what crosses from one modality to the other is a single pooled gate
# vector per patient: the cross-modal interaction is the element-wise product of two
# pooled vectors, a multiplicative late fusion of the two modalities' summaries, and no
# token of one modality meets a particular token of the other. `interpolate` keeps a
# position-by-position product, at the price of pairing tokens by relative position, an
# order that a bag of patches does not have. The paper's Algorithm 2 does not say which
# it meant (its lengths are equal); [Errata](../book/errata.md) records the decision. The
# committed runs of this book were all made with the default, `pool`: the table below reads
# every committed SurvMamba run's `config.json`.

# %%
import json
from pathlib import Path

from survmamba_lite import SurvMambaConfig

project_root = next(p for p in (Path.cwd(), *Path.cwd().parents) if (p / "pyproject.toml").exists())
default_align = SurvMambaConfig.__dataclass_fields__["ifm_align"].default
used = {}
for path in sorted((project_root / "results").glob("**/config.json")):
    cfg = json.loads(path.read_text(encoding="utf-8"))
    if cfg.get("model") == "survmamba":
        align = cfg.get("model_options", {}).get("ifm_align", default_align)
        used.setdefault(align, []).append(str(path.parent.relative_to(project_root / "results")))
for align, runs in used.items():
    print(f"ifm_align = {align!r} ({'the default' if align == default_align else 'set'}): {len(runs)} committed runs, "
          f"e.g. {', '.join(runs[:3])}")
assert set(used) == {"pool"}, used

# %% [markdown]
# Linear resampling maps endpoints to endpoints:

# %% mystnb={"figure": {"caption": "The `interpolate` alignment: a gate over 7 functions resampled linearly to 20 patch positions; the endpoints map to the endpoints.", "name": "fig-ifm-resample"}}
g_short = torch.tensor([[0.0, 1.0, 0.2, 0.8, 0.0, 0.5, 1.0]]).unsqueeze(-1)      # (1, 7, 1)
g_long = resample_to_length(g_short, torch.tensor([7]), torch.tensor([20]), 20)   # (1, 20, 1)
fig, ax = plt.subplots(figsize=(5.5, 2.6))
ax.plot(torch.linspace(0, 1, 7), g_short[0, :, 0], "o-", label="gate of $a_2$ (7 functions)")
ax.plot(torch.linspace(0, 1, 20), g_long[0, :, 0], ".", label="resampled to 20 patches")
ax.set_xlabel("relative position")
ax.set_ylabel("gate value")
ax.legend(frameon=False, fontsize=8)
plt.show()

# %% [markdown]
# ## The `pool` alignment by hand
#
# Written out with the module's own layers, for two patients whose modalities have
# different lengths (padding at the end, marked by the masks):

# %%
D, B = 16, 2
torch.manual_seed(SEED)
ifm = InteractionFusionMamba(dim=D, d_state=4, align="pool", scan_backend="ref").eval()
a1, a2 = torch.randn(B, 9, D), torch.randn(B, 5, D)             # e.g. 9 patches, 5 functions
m1 = torch.arange(9) < torch.tensor([[9], [6]])                 # (B, 9): patient 2 has 6 patches
m2 = torch.arange(5) < torch.tensor([[5], [3]])                 # (B, 5): and 3 functions


def ifm_pool_by_hand(ifm, a1, m1, a2, m2):
    ys, gates = [], []
    for o, (x, m) in enumerate(((a1, m1), (a2, m2))):
        t = ifm.norm[o](x)                                      # Norm_o
        ys.append(ifm.ssm[o](ifm.x_proj[o](t), m.float()))      # Y_o = SSM_o(SiLU(Conv1d_o(Linear^x_o(t))))
        gates.append(F.silu(ifm.z_proj(t)))                     # SiLU(z_o), shared Linear^z
    y1 = masked_mean(ys[0], m1, 1) * masked_mean(gates[1], m2, 1)   # mean_t Y_a1 ⊙ mean gate of a2
    y2 = masked_mean(ys[1], m2, 1) * masked_mean(gates[0], m1, 1)
    return ifm.out_proj(torch.cat([y1, y2], dim=-1))            # Linear^T(Cat(...)): (B, D)


with torch.no_grad():
    diff = (ifm(a1, m1, a2, m2) - ifm_pool_by_hand(ifm, a1, m1, a2, m2)).abs().max().item()
print(f"pool: max |module - by hand| = {diff:.1e}")

# %% [markdown]
# ## When the lengths match, `interpolate` is Algorithm 2 as printed
#
# With equal lengths the resampling is the identity, and the `interpolate` alignment must
# reduce to Algorithm 2 taken literally (followed by the mean over positions):

# %%
torch.manual_seed(SEED)
ifm_i = InteractionFusionMamba(dim=D, d_state=4, align="interpolate", scan_backend="ref").eval()
M = 7
b1, b2 = torch.randn(B, M, D), torch.randn(B, M, D)
full = torch.ones(B, M, dtype=torch.bool)


def algorithm2_literal(ifm, t1, t2):
    t1n, t2n = ifm.norm[0](t1), ifm.norm[1](t2)
    y1 = ifm.ssm[0](ifm.x_proj[0](t1n))                         # (B, M, E)
    y2 = ifm.ssm[1](ifm.x_proj[1](t2n))
    z1, z2 = ifm.z_proj(t1n), ifm.z_proj(t2n)                   # lines 13-14
    fused = ifm.out_proj(torch.cat([y1 * F.silu(z2), y2 * F.silu(z1)], dim=-1))   # lines 15-17: (B, M, D)
    return fused.mean(1)


with torch.no_grad():
    diff_i = (ifm_i(b1, full, b2, full) - algorithm2_literal(ifm_i, b1, b2)).abs().max().item()
print(f"interpolate, equal lengths: max |module - literal Algorithm 2| = {diff_i:.1e}")

# %%
# NBVAL_CHECK_OUTPUT
print("pool == by hand (1e-6):", diff < 1e-6)
print("interpolate == Algorithm 2 at equal lengths (1e-6):", diff_i < 1e-6)

# %% [markdown]
# Which alignment works better is an empirical question; both are options of the config
# so that they can be compared on the same folds.
#
# ## Adaptive fusion (Eq. 8)
#
# The fine and the coarse fused vectors are blended with a learned weight,
#
# $$
# H = \alpha H_f + (1 - \alpha) H_c .
# $$
#
# The paper calls $\alpha$ a "learned hyper-parameter" without saying how it is kept
# meaningful. The package stores a free scalar $a$ and uses $\alpha = \sigma(a) \in (0, 1)$,
# starting at $a = 0$ ($\alpha = 1/2$), so that the blend stays a convex combination while
# it is trained. We check, on a tiny SurvMamba, that the model's feature is exactly this
# blend of the two IFM outputs computed from HIM's fine and coarse tokens (our reading of
# Eq. 7), and that the loss reaches $a$ through the gradient.

# %%
from survmamba_lite import SurvMamba, SurvMambaConfig
from survmamba_lite.data import GenomicHierarchy, PatientBag, collate_bags
from survmamba_lite.survival import nll_loss

hierarchy = GenomicHierarchy(tuple(f"g{i}" for i in range(8)), ("f0", "f1", "f2", "f3"), ("a", "b", "c", "d"),
                             ((0, 1, 2), (2, 3), (4, 5, 6), (6, 7)), (0, 0, 1, 1), ("p0", "p1"))
g = torch.Generator().manual_seed(SEED)
bags = [PatientBag(f"p{i}", torch.randn(n, 12, generator=g), torch.arange(n) // 3, torch.randn(8, generator=g),
                   time=10.0 + i, event=i % 2, time_bin=i % 4) for i, n in enumerate((7, 4, 9))]
batch = collate_bags(bags)
torch.manual_seed(SEED)
model = SurvMamba(SurvMambaConfig(n_bins=4, wsi_dim=12, hierarchy=hierarchy, dim=D, d_state=4, variant="F",
                                  dropout=0.0, scan_backend="ref")).eval()
enc = model.encode(batch)
H_f = model.fuse_fine(enc["wsi"].fine, enc["wsi"].fine_mask, enc["rna"].fine, enc["rna"].fine_mask)
H_c = model.fuse_coarse(enc["wsi"].coarse, enc["wsi"].coarse_mask, enc["rna"].coarse, enc["rna"].coarse_mask)
alpha = torch.sigmoid(model.alpha_logit)
H = model.features(batch)
loss = nll_loss(model.head(H), batch.time_bin, batch.event)
loss.backward()
print(f"alpha = {alpha.item():.3f};  max |H - (α H_f + (1-α) H_c)| = {(H - (alpha * H_f + (1 - alpha) * H_c)).abs().max():.1e}")
print(f"d loss / d a = {model.alpha_logit.grad.item():+.4f}")

# %% [markdown]
# ## Summary
#
# * IFM runs one Mamba scan per modality and gates each one's output with the *other*
#   modality's $\operatorname{SiLU}(z)$: the interaction of Algorithm 2.
# * Sequences of different lengths are aligned by pooling the gate (`pool`, the default) or by
#   resampling it to the histology length (`interpolate`, Algorithm 2 as printed when the
#   lengths match).
# * Eq. 8 blends the fine and the coarse fused vectors with $\alpha = \sigma(a)$, trained with the rest.
#
# ## Exercises

# %% [markdown]
# **Exercise 1 (padding does not matter).** Append five more padded positions to $a_2$
# (zeros, masked out) as `a2_long` with its mask `m2_long`, and measure how much the
# `pool` IFM's output changes (`change`, the largest absolute difference). Why?

# %% tags=["stub", "remove-cell"]
# Your answer
a2_long = None     # (B, 5 + 5, D): a2 with five more padded positions
m2_long = None     # (B, 5 + 5) its mask
change = None      # max |ifm(a1, m1, a2_long, m2_long) - ifm(a1, m1, a2, m2)|

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# The scans read padding only after the real tokens (it is at the end), and every mean is a
# masked mean, so the real tokens' results are unchanged.
# :::

# %% tags=["solution"]
a2_long = torch.cat([a2, torch.zeros(B, 5, D)], dim=1)
m2_long = torch.cat([m2, torch.zeros(B, 5, dtype=torch.bool)], dim=1)
with torch.no_grad():
    change = (ifm(a1, m1, a2_long, m2_long) - ifm(a1, m1, a2, m2)).abs().max().item()
print(f"max |output with 5 more padded positions - output| = {change:.1e}")
assert change < 1e-6

# %% tags=["check"]
assert isinstance(a2_long, torch.Tensor) and tuple(a2_long.shape) == (B, a2.shape[1] + 5, D), \
    "a2_long should be a2 with five more positions: shape (B, 10, D)"
assert torch.equal(a2_long[:, : a2.shape[1]], a2), "a2_long should start with a2 unchanged"
assert isinstance(m2_long, torch.Tensor) and torch.equal(m2_long[:, : a2.shape[1]], m2) and not m2_long[:, a2.shape[1]:].any(), \
    "m2_long should be m2 followed by five False (padded) positions"
with torch.no_grad():
    measured = (ifm(a1, m1, a2_long, m2_long) - ifm(a1, m1, a2, m2)).abs().max().item()
assert isinstance(change, float) and abs(change - measured) < 1e-9, "change should be the largest |difference| of the two outputs"
print("a2_long, m2_long and change checked")

# %% [markdown]
# **Exercise 2 (the gradient of the blend).** Derive $\partial\mathcal L/\partial a$ for
# $H = \sigma(a) H_f + (1 - \sigma(a)) H_c$ and evaluate your formula as `predicted`, from the
# gradient of the loss with respect to $H$ (recompute $H$ and the loss, then use
# `torch.autograd.grad`), to compare with the gradient printed above.

# %% tags=["stub", "remove-cell"]
# Your answer
predicted = None   # dL/da from your formula (a float)

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# $\partial H/\partial a = \sigma(a)(1 - \sigma(a))(H_f - H_c)$, so
# $\partial\mathcal L/\partial a = \alpha(1-\alpha)\sum_{b,d}\frac{\partial \mathcal L}{\partial H_{bd}}(H_f - H_c)_{bd}$:
# the blend moves towards the level whose features lower the loss.
# :::

# %% tags=["solution"]
H2 = model.features(batch)
loss2 = nll_loss(model.head(H2), batch.time_bin, batch.event)
(grad_H,) = torch.autograd.grad(loss2, H2)
a_val = alpha.item()
predicted = (a_val * (1 - a_val) * (grad_H * (H_f - H_c).detach()).sum()).item()
print(f"dL/da by hand {predicted:+.6f}, autograd {model.alpha_logit.grad.item():+.6f}")

# %% tags=["check"]
assert isinstance(predicted, float), f"predicted should be a number, not {predicted!r}"
assert abs(predicted - model.alpha_logit.grad.item()) < 1e-6, \
    f"your dL/da = {predicted:+.6f} differs from autograd's: check the factor dσ/da = σ(a)(1 - σ(a))"
print("dL/da by hand == autograd")
