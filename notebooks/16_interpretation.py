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
# # What does SurvMamba look at?
#
# :::{admonition} Learning objectives
# :class: tip
# After this chapter you can
# 1. derive the hidden attention matrix of a selective scan from Eq. 3 and check that it reproduces the scan;
# 2. roll it out through HIM and IFM into patch, region, function and process importance, and compare it with integrated gradients;
# 3. test importance maps against a planted signal and against randomised weights, and say what a heatmap can and cannot tell.
# :::
#
# Multiple-instance survival models are usually shown with a heatmap: CLAM draws its
# attention over the slide, MCAT and SurvPath show co-attention between pathways and
# patches. SurvMamba has no attention layer and the paper shows no interpretation. A
# selective scan does mix tokens with data-dependent weights, though, and those weights
# can be written as a matrix, the "hidden attention" of Mamba models
# {cite}`ali2024hidden`. This chapter derives it, rolls it out through the model, compares it
# with a gradient attribution, and checks both on a synthetic cohort whose signal we planted.

# %% tags=["parameters"]
seed = 0              # seed of the synthetic cohort and of the tiny model
steps = 20            # full-batch Adam steps of the tiny model
ig_steps = 8          # integrated-gradients steps
data_root = None      # folder with wsi/ (see its README); None: ../shared/data next to the project
threads = None        # torch CPU threads (None: torch's default, all cores)

# %%
import os
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from survmamba_lite.data import collate_bags, load_cohort, make_synthetic_cohort
from survmamba_lite.interpret import bimamba_attention, scan_matrix
from survmamba_lite.interpret.attribution import integrated_gradients
from survmamba_lite.interpret.checks import (fit_full_batch, patient_maps, planted_overlap,
                                             randomisation_correlations, randomised_copy, region_truth)
from survmamba_lite.interpret.heatmap import draw_heatmap
from survmamba_lite.interpret.rollout import hidden_attention_importance
from survmamba_lite.ssm import BiMamba, selective_scan

torch.manual_seed(seed)
if threads:
    torch.set_num_threads(threads)
print(f"seed: {seed}")
project_root = next(p for p in (Path.cwd(), *Path.cwd().parents) if (p / "pyproject.toml").exists())
data_root = Path(data_root) if data_root is not None else project_root.parent / "shared" / "data"
workdir = Path(tempfile.mkdtemp(prefix="survmamba_interp_"))

# %% [markdown]
# ## From Eq. 3 to a matrix
#
# Eq. 3 is the recurrence $h_t = \bar A_t h_{t-1} + \bar B_t x_t$, $y_t = C_t h_t$, and in
# the selective scan $\bar A_t = \exp(\Delta_t A)$ and $\bar B_t = \Delta_t B_t$ depend on the
# token. Unrolling it from $h_{-1} = 0$,
#
# $$
# h_t = \sum_{s \le t} \Big(\prod_{k = s+1}^{t} \bar A_k\Big) \bar B_s x_s, \qquad
# y_t = \sum_{s \le t} \underbrace{C_t \Big(\prod_{k=s+1}^{t} \bar A_k\Big) \bar B_s}_{\alpha_{t,s}}\, x_s .
# $$
#
# With a diagonal $A$ the product is $\exp\big(A \sum_{k=s+1}^t \Delta_k\big)$, so for each
# channel
#
# $$
# \alpha_{t,s} = \sum_{n=1}^{N} C_{t,n} \exp\Big(A_n \sum_{k=s+1}^{t} \Delta_k\Big) \Delta_s B_{s,n}
# \quad (s \le t), \qquad \alpha_{t,s} = 0 \quad (s > t).
# $$
#
# Eq. 4 is the time-invariant special case: with constant $\Delta, B, C$ the entry depends on
# $t - s$ only, $\alpha_{t,s} = C \bar A^{t-s} \bar B = \bar K_{t-s}$, and $\alpha$ is the
# Toeplitz matrix of the convolution kernel. Selectivity makes the matrix data-dependent:
# each output is a weighted sum of earlier inputs, like a causal attention row, but the
# weights are neither positive nor normalised. Ten lines compute it; the package's
# `scan_matrix` computes the same in chunks of channels, and both reproduce the scan.

# %%
# NBVAL_CHECK_OUTPUT
def alpha_loop(delta, A, B, C):
    """Hidden attention of one channel: delta (L,), A (N,), B and C (N, L)."""
    L = delta.shape[0]
    alpha = torch.zeros(L, L, dtype=delta.dtype)
    for t in range(L):
        for s in range(t + 1):
            decay = torch.exp(A * delta[s + 1:t + 1].sum())                  # prod_{k=s+1..t} exp(Δ_k A)
            alpha[t, s] = (C[:, t] * decay * delta[s] * B[:, s]).sum()
    return alpha


g = torch.Generator().manual_seed(seed)
L, E, N = 8, 3, 4
u = torch.randn(1, E, L, generator=g, dtype=torch.float64)
delta = torch.rand(1, E, L, generator=g, dtype=torch.float64)
A = -torch.rand(E, N, generator=g, dtype=torch.float64) * 2
B, C = torch.randn(1, N, L, generator=g, dtype=torch.float64), torch.randn(1, N, L, generator=g, dtype=torch.float64)
alpha = scan_matrix(delta, A, B, C)                                             # (1, E, L, L)
y_scan = selective_scan(u, delta, A, B, C, backend="ref")
print("loop == package:", torch.allclose(alpha_loop(delta[0, 0], A[0], B[0], C[0]), alpha[0, 0]))
print("alpha applied to the inputs == scan:", torch.allclose(torch.einsum("bets,bes->bet", alpha, u), y_scan,
                                                             atol=1e-12))

# %% [markdown]
# A Bi-Mamba block (Algorithm 1) adds the backward branch: run on the sequence reversed
# within its length, its matrix mapped back to the original positions is upper-triangular.
# The two branches read different inputs (each has its own causal convolution), so the
# block's SSM output is
# $(\alpha^{\rightarrow} + D^{\rightarrow}) u^{\rightarrow} + (\alpha^{\leftarrow} + D^{\leftarrow}) u^{\leftarrow}$,
# channel by channel, before the gate $\operatorname{SiLU}(z)$ and
# the output projection. `bimamba_attention` returns the matrices and their inputs;
# applied through gate, projection and residual they give the block's output (the tests do
# this in float64 for both scan backends, with padding, to $10^{-10}$).

# %%
block = BiMamba(dim=8, d_state=4, expand=2, scan_backend="ref").double().eval()
with torch.no_grad():
    for branch in (block.forward_branch, block.backward_branch):
        branch.dt_proj.bias.add_(1.5)                    # larger steps than at initialisation: visible decay
tokens = torch.randn(1, 12, 8, generator=g, dtype=torch.float64)
att = bimamba_attention(block, tokens)
with torch.no_grad():
    print(f"max |matrices -> block output - block(x)| = {(att.block_output(block, tokens) - block(tokens)).abs().max():.1e}")
mha = torch.nn.MultiheadAttention(8, num_heads=1, batch_first=True).double()
with torch.no_grad():
    _, softmax_att = mha(tokens, tokens, tokens, need_weights=True)

# %% mystnb={"figure": {"caption": "The hidden attention of a small Bi-Mamba block (random weights, 12 tokens): the forward branch (lower-triangular), the backward branch (upper-triangular) and the channel mean of their absolute values, next to the softmax attention of a one-head transformer layer on the same tokens. Rows are outputs, columns inputs.", "name": "fig-interp-matrices"}}
panels = [(att.mean(direction="forward")[0, 0], "forward branch (channel mean)", "RdBu_r"),
          (att.mean(direction="backward")[0, 0], "backward branch (channel mean)", "RdBu_r"),
          (att.mean(absolute=True)[0, 0], "both, mean |alpha|", "magma"),
          (softmax_att[0], "transformer softmax attention", "magma")]
fig, axes = plt.subplots(1, 4, figsize=(13, 3.4))
for ax, (m, title, cmap) in zip(axes, panels):
    m = m.detach().numpy()
    lim = np.abs(m).max()
    ax.imshow(m, cmap=cmap, vmin=-lim if cmap == "RdBu_r" else 0, vmax=lim)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("input token s")
axes[0].set_ylabel("output token t")
plt.tight_layout()
plt.show()

# %% [markdown]
# Two differences from softmax attention stand out. The scan's matrix decays away from the
# diagonal (the state forgets at the rate $\exp(\Delta A)$), and each direction sees one side
# only; the transformer's rows are probability vectors over all tokens.
#
# ## From blocks to patches, regions, functions and processes
#
# `hidden_attention_importance` rolls the matrices out through the model (the rule is in
# the docstring of `survmamba_lite.interpret.rollout`, attention rollout
# {cite}`abnar2020rollout` carried through HIM's levels). Each block contributes
# $\hat A = \tfrac12 I + \tfrac12 \operatorname{rownorm}(\bar M)$, with $\bar M$ the channel
# mean of $|\alpha + D|$ of both directions and the identity for the residual connection.
# Within a region the rollout over the region's patches gives $a_{rp}$; across regions
# the coarse Bi-Mamba and the coarse IFM give $c_r$; the fine IFM reads all patches in one
# scan and gives the fine path $f_{rp}$; Eq. 8 mixes the two:
# $I_{rp} = \alpha f_{rp} + (1-\alpha)\, c_r a_{rp}$, summing to one per modality. The same rule
# runs on functions grouped by process.
#
# The baseline is integrated gradients {cite}`sundararajan2017ig` of the risk
# $-\sum_k S_k$ from a zero input (for the z-scored genes: the training-fold mean
# expression), summed over each patch's features, and over each function's genes (a gene
# shared by $m$ functions gives each $1/m$).
#
# ## A patient whose signal we planted
#
# The synthetic cohorts ([The synthetic cohorts](08_synthetic_cohorts.py)) plant the hazard: tumour regions (their patches
# shifted along a tumour direction, with a cellularity score), the activity of the process
# "Cell growth and death", the private part of one "Signal transduction" function and an
# interaction of tumour fraction with "Immune system". The generator writes which regions are
# tumour (`synthetic_regions.csv`) and which process and function carry signal
# (`manifest.yaml`). A tiny SurvMamba (width 16) is trained with full-batch Adam on
# fold 0's training cases.

# %%
cohort = load_cohort(make_synthetic_cohort("BLCA", "tiny", seed=seed, out=workdir / "cohort"))
model, prep, val_ids = fit_full_batch(cohort, 0, steps=steps, lr=1e-2, dim=16, seed=seed)
maps = patient_maps(model, cohort, val_ids, prep.rna_normalizer, ig_steps=ig_steps)
table = planted_overlap(maps, cohort)
print(f"{len(val_ids)} validation cases; {int(table['regions_ig'].notna().sum())} have tumour and other regions")

# %% mystnb={"figure": {"caption": "One validation patient of the synthetic cohort: the hidden-attention rollout and integrated gradients (absolute, summed per patch) over its patches at their level-0 positions; tumour regions (planted signal) are outlined in red.", "name": "fig-interp-patient"}}
from matplotlib.patches import Rectangle

from survmamba_lite.data.features_h5 import read_features_h5

mixed = [m for m in maps if 0 < region_truth(cohort, m["case_id"]).sum() < len(region_truth(cohort, m["case_id"]))]
shown = max(mixed, key=lambda m: len(m["ha_patches"]))
case = shown["case_id"]
flags = region_truth(cohort, case)
sf = read_features_h5(cohort.feature_path(cohort.slide_ids(case)[0]))
order = np.concatenate([np.flatnonzero(sf.region == r) for r in np.unique(sf.region)])   # the model's patch order
n = len(order)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
for ax, key, title in zip(axes, ("ha_patches", "ig_patches"), ("hidden-attention rollout", "|integrated gradients|")):
    xy = sf.coords[order] / 256
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=shown[key][:n], s=60, marker="s", cmap="magma")
    for r in np.unique(sf.region):
        if flags[r]:
            pts = sf.coords[sf.region == r] / 256
            ax.add_patch(Rectangle(pts.min(0) - 0.6, *(pts.max(0) - pts.min(0) + 1.2), fill=False, ec="red", lw=1.5))
    ax.set_title(f"{case}: {title}", fontsize=9)
    ax.invert_yaxis()
    ax.set_aspect("equal")
    plt.colorbar(sc, ax=ax, fraction=0.03)
plt.tight_layout()
plt.show()

# %% [markdown]
# The overlap with the planted signal, over all validation patients: precision at $k$ of
# each map (regions: is the top region a tumour region; patches: $k$ = the number of tumour
# patches; processes: is the top process the planted one; functions: $k$ = the number of
# planted functions), next to the chance level (the planted share of the items).

# %%
mean = table.drop(columns="case_id").mean()
overview = pd.DataFrame({
    "hidden attention": [mean[f"{k}_ha"] for k in ("regions", "patches", "processes", "functions")],
    "integrated gradients": [mean[f"{k}_ig"] for k in ("regions", "patches", "processes", "functions")],
    "chance": [mean[f"{k}_chance"] for k in ("regions", "patches", "processes", "functions")]},
    index=["regions (p@1)", "patches (p@k)", "processes (p@1)", "functions (p@k)"]).round(3)
overview

# %% [markdown]
# Integrated gradients find the tumour regions far above chance; the hidden-attention
# rollout hardly does. At the process level the rollout seems perfect, but look at why: a
# process's importance is the sum over its functions, the fine IFM spreads its attention
# over all functions, so processes with more functions get more, and in this tiny hierarchy
# the planted process is one of the two largest. The next check exposes such structure.
#
# ## The randomisation check
#
# A map that explains the model must change when the model does. Adebayo et al.
# {cite}`adebayo2018sanity` replace the trained weights with random ones and compare the
# maps; we report the Spearman correlation of each trained map with the randomised model's
# map, and with itself computed again (1: the maps are deterministic, so a low correlation
# is the randomisation's doing).

# %%
cases = val_ids[:12]
again = patient_maps(model, cohort, cases, prep.rna_normalizer, ig_steps=ig_steps)
rand_model = randomised_copy(model, seed=seed + 7)
rand = patient_maps(rand_model, cohort, val_ids, prep.rna_normalizer, ig_steps=ig_steps)
rho = randomisation_correlations(maps[:12], rand[:12], again).groupby("map")[["rho_randomised", "rho_again"]].mean()
rho.round(2)

# %% [markdown]
# Integrated gradients pass: with random weights their maps are unrelated to the trained
# ones. The hidden-attention rollout largely survives randomisation: most of it is
# structure (the decay of the scan, the residual half of every step, group sizes and
# positions), not what the model learned. On the planted regions the randomised model's
# rollout does about as well as the trained one's:

# %%
rand_table = planted_overlap(rand, cohort)
print(f"region precision@1, hidden attention: trained {mean['regions_ha']:.3f}, "
      f"randomised {rand_table['regions_ha'].mean():.3f}, chance {mean['regions_chance']:.3f}")
print(f"region precision@1, integrated gradients: trained {mean['regions_ig']:.3f}, "
      f"randomised {rand_table['regions_ig'].mean():.3f}")

# %% [markdown]
# ## A real slide
#
# The data chapter tiled the public CMU-1 H&E region. No SurvMamba here was trained on real
# slides, so the map below comes from a histology-only SurvMamba with **random weights** on
# features from a fixed random projection (`random-projection`, the package's test
# encoder). It shows the method's prior on this slide's geometry: which patches the
# rollout favours before anything has been learned. A map of the same kind from a trained
# model would have to be read against this one. `survmamba explain --run RUN --case CASE
# --slide SLIDE --out DIR` draws the same figure for a case of a trained run.

# %%
slide_path = data_root / "wsi" / "cmu-1-small-region.svs"
if not slide_path.exists():
    print(f"no real slide at {Path(os.path.relpath(slide_path, project_root))}: skipping this section "
          "(see the README of the shared data folder)")
else:
    from survmamba_lite.data import PatientBag
    from survmamba_lite.data.wsi.tiling import open_slide, tile_slide, write_coords_h5
    from survmamba_lite.data.wsi.extract import extract_slide_features
    from survmamba_lite.registry import ModelInputs, build_model

    grid = tile_slide(slide_path, None, region_size=1024, patch_size=256, overview=False, progress=False)
    coords_h5 = write_coords_h5(workdir / f"{grid.slide_id}.coords.h5", grid)
    extract_slide_features(coords_h5, workdir / "features", encoder="random-projection", slide_path=slide_path,
                           device="cpu", progress=False)
    real = read_features_h5(workdir / "features" / f"{grid.slide_id}.h5")
    torch.manual_seed(seed)
    wsi_model = build_model("survmamba-wsi", ModelInputs(n_bins=4, wsi_dim=real.features.shape[1]), dim=16,
                            d_state=4, dropout=0.0).eval()
    bag = collate_bags([PatientBag("CMU-1", torch.from_numpy(real.features), torch.from_numpy(real.region),
                                   None, 1.0, 0)])
    imp = hidden_attention_importance(wsi_model, bag, "wsi")
    ig_real = integrated_gradients(wsi_model, bag, steps=ig_steps).patch_scores[0]
    order = np.concatenate([np.flatnonzero(real.region == r) for r in np.unique(real.region)])
    real_ha, real_ig = np.empty(len(order)), np.empty(len(order))
    real_ha[order], real_ig[order] = imp.fine[imp.mask].numpy(), ig_real[imp.mask].abs().numpy()
    print(f"{grid.n_regions} regions, {grid.n_patches} patches; rank correlation of the two maps: "
          f"{pd.Series(real_ha).corr(pd.Series(real_ig), method='spearman'):.2f}")

# %% mystnb={"figure": {"caption": "The real CMU-1 slide with the patch maps of a histology-only SurvMamba with random weights: the hidden-attention rollout (left) and |integrated gradients| (right). No model here was trained on real slides: these maps show the methods' priors on the slide's geometry, not anything about the tissue.", "name": "fig-interp-real-slide"}}
if slide_path.exists():
    slide = open_slide(slide_path)
    w0, h0 = slide.dimensions
    thumb = np.asarray(slide.get_thumbnail((800, int(800 * h0 / w0))).convert("RGB"))
    slide.close()
    fig, axes = plt.subplots(1, 2, figsize=(11, 6.5))
    for ax, scores, title in ((axes[0], real_ha, "hidden-attention rollout"), (axes[1], real_ig, "|integrated gradients|")):
        im = draw_heatmap(ax, thumb, real.coords, scores, int(real.attrs["patch_size"]), w0 / thumb.shape[1],
                          title=f"{slide_path.name}: {title} (random weights)")
        plt.colorbar(im, ax=ax, fraction=0.03)
    plt.tight_layout()
    plt.show()
else:                                                     # keep the figure (and its caption) with the message
    fig, ax = plt.subplots(figsize=(6, 1.2))
    ax.text(0.5, 0.5, "no real slide in the shared data folder: section skipped", ha="center", va="center")
    ax.axis("off")
    plt.show()

# %% [markdown]
# ## What such maps can and cannot tell
#
# * A map says which inputs a computation draws on (rollout) or how the output moves when
#   inputs move towards a baseline (gradients). It does not say that the tissue or pathway
#   causes the outcome, nor that the model is right: a model that learned a scanner artefact
#   gets a crisp map of the artefact.
# * Maps need controls. Here the planted signal and the randomised model are the controls:
#   integrated gradients pass both on this cohort, the hidden-attention rollout passes
#   neither. That is a statement about this rule on this model, not about hidden attention
#   in general: the raw matrices reproduce the scan exactly, but how much of a token reaches
#   the output depends on the values, gates and projections that rollout ignores.
# * Integrated gradients depend on the baseline (here zero, the training mean for genes)
#   and on the risk summary ($-\sum_k S_k$); another baseline gives another map.
# * A heatmap on a real slide from a model not trained on real slides shows only the
#   method's prior. Maps of a trained model are evidence to look at with a pathologist,
#   per patient, next to the same controls, not a discovery by themselves.
#
# ## Summary
#
# * The selective scan's output is $y_t = \sum_{s \le t} \alpha_{t,s} x_s + D x_t$ with
#   $\alpha_{t,s} = C_t \prod_{k=s+1}^t \bar A_k \bar B_s$; Eq. 4's kernel is its
#   time-invariant case. `bimamba_attention` gives both directions of a Bi-Mamba block and
#   reproduces its output.
# * Rolled out through HIM's two levels, IFM and Eq. 8, the matrices give patch, region,
#   function and process importance that sum to one per modality.
# * On a synthetic cohort, integrated gradients find the planted tumour regions well above
#   chance and change completely under weight randomisation; the rollout does neither.
#
# ## Exercises

# %% [markdown]
# **Exercise 1 (the Toeplitz case).** Take constant $\Delta = 0.3$, $B$ and $C$ over $L = 6$
# steps, with `A1`, `b1`, `c1` below. Compute the scan's hidden attention with `scan_matrix`
# (`m1`, a $6 \times 6$ matrix) and build the Toeplitz matrix of Eq. 4's kernel
# $\bar K_k = C \bar A^k \bar B$ (`survmamba_lite.ssm.ssm_kernel`) as `toeplitz`. Why are
# they equal?

# %% tags=["stub", "remove-cell"]
# Your answer
from survmamba_lite.ssm import ssm_kernel

A1 = -torch.tensor([[0.5, 1.0, 2.0]], dtype=torch.float64)           # (E=1, N=3)
b1, c1 = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64), torch.tensor([0.3, 1.0, -1.0], dtype=torch.float64)
m1 = None          # (6, 6) scan_matrix of the constant-parameter scan
toeplitz = None    # (6, 6) lower-triangular Toeplitz matrix of the kernel K_0..K_5

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# With constant parameters $\sum_{k=s+1}^t \Delta_k = (t - s)\Delta$, so
# $\alpha_{t,s} = C \exp(A\Delta)^{t-s} \Delta B = \bar K_{t-s}$.
# :::

# %% tags=["solution"]
m1 = scan_matrix(torch.full((1, 1, 6), 0.3, dtype=torch.float64), A1, b1.view(1, 3, 1).expand(1, 3, 6),
                 c1.view(1, 3, 1).expand(1, 3, 6))[0, 0]
K = ssm_kernel(torch.diag(torch.exp(0.3 * A1[0])), 0.3 * b1, c1, 6)
toeplitz = torch.stack([torch.cat([K[:t + 1].flip(0), K.new_zeros(5 - t)]) for t in range(6)])
print("max |scan_matrix - Toeplitz| =", (m1 - toeplitz).abs().max().item())

# %% tags=["check"]
assert isinstance(m1, torch.Tensor) and tuple(m1.shape) == (6, 6), "m1 should be the (6, 6) scan_matrix"
assert isinstance(toeplitz, torch.Tensor) and tuple(toeplitz.shape) == (6, 6), "toeplitz should be a (6, 6) tensor"
K_ = ssm_kernel(torch.diag(torch.exp(0.3 * A1[0])), 0.3 * b1, c1, 6)
assert all(torch.isclose(toeplitz[t, s], K_[t - s]) for t in range(6) for s in range(t + 1)), \
    "toeplitz[t, s] should be the kernel's K[t - s] on and below the diagonal"
assert torch.count_nonzero(torch.triu(toeplitz, diagonal=1)) == 0, "toeplitz should be zero above the diagonal"
assert torch.allclose(m1, toeplitz), "scan_matrix and the Toeplitz matrix differ: check m1's arguments (Δ = 0.3, L = 6)"
print("scan_matrix is the Toeplitz matrix of the kernel")

# %% [markdown]
# **Exercise 2 (gradient × input).** Integrated gradients with `steps=0` is gradient ×
# input. Does it find the planted regions as well as 8-step integrated gradients on the
# validation patients? Compute the mean region precision@1 of gradient × input
# (`patient_maps(..., ig_steps=0)`, then `planted_overlap`, column `regions_ig`) as
# `gxi_precision`.

# %% tags=["stub", "remove-cell"]
# Your answer
gxi_precision = None   # mean region precision@1 of gradient x input over the validation patients

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# Compute the maps with `ig_steps=0` and the same overlap; the cell prints both region
# precisions and the chance level: gradient × input is also above chance.
# :::

# %% tags=["solution"]
gxi = planted_overlap(patient_maps(model, cohort, val_ids, prep.rna_normalizer, ig_steps=0), cohort)
gxi_precision = float(gxi["regions_ig"].mean())
print(f"region precision@1: gradient x input {gxi_precision:.3f}, "
      f"integrated gradients {mean['regions_ig']:.3f}, chance {mean['regions_chance']:.3f}")
assert gxi_precision > mean["regions_chance"]                          # above chance, as the solution says

# %% tags=["check"]
assert isinstance(gxi_precision, float) and 0 <= gxi_precision <= 1, \
    f"gxi_precision should be a precision (a float in [0, 1]), not {gxi_precision!r}"
again_ = planted_overlap(patient_maps(model, cohort, val_ids, prep.rna_normalizer, ig_steps=0), cohort)
assert abs(gxi_precision - again_["regions_ig"].mean()) < 1e-9, \
    "gxi_precision is not the mean regions_ig of planted_overlap with ig_steps=0"
print("gxi_precision checked")

# %% [markdown]
# **Exercise 3 (where the structure comes from).** The rollout of the randomised model
# still favours some patches. Which ones? Compute the Spearman correlation `rho_size`
# between the first validation patient's randomised rollout (`rand[0]["ha_patches"]`) and
# one over the number of patches of each patch's region (`rand[0]["patch_region"]`).

# %% tags=["stub", "remove-cell"]
# Your answer
rho_size = None    # Spearman correlation of rand[0]'s rollout with 1 / (patches of the patch's region)

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# The coarse path gives each region a share $c_r$ close to uniform and spreads it over the
# region's patches, so patches of small regions get more: the correlation with $1/n_r$ is
# strongly positive (the cell prints it).
# :::

# %% tags=["solution"]
r0 = rand[0]
sizes = np.bincount(r0["patch_region"])
inverse_size = 1.0 / sizes[r0["patch_region"]]
rho_size = float(pd.Series(r0["ha_patches"]).corr(pd.Series(inverse_size), method="spearman"))
print(f"randomised rollout vs 1 / region size: Spearman {rho_size:.2f}")
assert rho_size > 0.5                                                  # strongly positive

# %% tags=["check"]
assert isinstance(rho_size, float) and -1 <= rho_size <= 1, f"rho_size should be a correlation, not {rho_size!r}"
region_ = np.asarray(rand[0]["patch_region"])
expected_rho = pd.Series(rand[0]["ha_patches"]).rank().corr(pd.Series(1.0 / np.bincount(region_)[region_]).rank())
assert abs(rho_size - expected_rho) < 1e-9, "rho_size is not the Spearman correlation with 1 / region size"
print("rho_size checked")

# %%
shutil.rmtree(workdir, ignore_errors=True)
