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
# # Hierarchical Interaction Mamba (HIM)
#
# :::{admonition} Learning objectives
# :class: tip
# After this chapter you can
# 1. state Eq. 5–6 of HIM: Bi-Mamba inside each group, pooling, Bi-Mamba over the groups;
# 2. explain how the package runs the groups of many patients as one batch and check it against a loop;
# 3. say what grouping changes: what each token sees, and how many sequential scan steps are needed.
# :::
#
# HIM reads one modality at two granularities (Sec. 3.4). With the fine tokens of group
# $s$ (the patches of region $m$, or the functions of process $j$) written $T_s$:
#
# $$
# T'_s = \text{Bi-Mamba}_{\text{fine}}(T_s) \quad \text{for every group, shared weights (Eq. 5)},
# $$
#
# $$
# T = \text{Bi-Mamba}_{\text{coarse}}\big([\operatorname{Pool}(T'_1), \dots, \operatorname{Pool}(T'_S)]\big) \quad \text{(Eq. 6)}.
# $$
#
# The fine level models local context (patches next to each other, functions of one
# process), the coarse level global context (regions of a slide, processes of a cell). The
# paper does not say which pooling it uses; the package uses the mean over a group's real
# tokens, which adds no parameters. This chapter runs HIM on a synthetic patient, checks
# the batched implementation against a plain loop over patients and groups, and looks at
# what grouping buys.

# %%
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from survmamba_lite.data import collate_bags, fold_datasets, load_cohort, make_synthetic_cohort

SEED = 0
torch.manual_seed(SEED)
print(f"seed: {SEED}")

# %% [markdown]
# ## Groups in a synthetic cohort
#
# The package generates TCGA-shaped synthetic cohorts with a known (planted) hazard. At the
# `tiny` scale a slide has 2–4 regions of 4–16 patches and the transcriptome has 10
# functions in 4 processes; the generator and its parameters are documented in
# `survmamba_lite.data.synth`.

# %%
workdir = Path(tempfile.mkdtemp(prefix="survmamba_him_"))
cohort = load_cohort(make_synthetic_cohort("BLCA", "tiny", seed=SEED, out=workdir / "blca"))
train, val, prep = fold_datasets(cohort, fold=0, binner_bins=4)
print(cohort)
h = cohort.hierarchy
print(f"genes G = {h.n_genes}, functions Fn = {h.n_functions}, processes J = {h.n_processes}")
print("functions per process K_j:", [len(f) for f in h.process_functions])

bags = [train[i] for i in range(4)]
batch = collate_bags(bags)
print("patches (B, R, P, F):", tuple(batch.patches.shape))
print("real patches per region:\n", batch.patch_mask.sum(-1).numpy())

# %% [markdown]
# Patients differ in the number of regions, regions in the number of patches. The
# package flattens the groups of a batch into one batch of `B·R` sequences, each padded at
# the end, so a single Bi-Mamba call processes every region of every patient; the
# previous chapter showed that padding at the end cannot leak into real tokens.
#
# ## HIM as a loop, and the package's batched HIM
#
# The loop below is Eq. 5–6 taken literally: one Bi-Mamba call per group on its real
# tokens only, the mean of each group, one Bi-Mamba call per patient over its groups. It
# uses the blocks (and so the weights) of the package's module, so the two must agree.

# %%
from survmamba_lite.model.encoders import PatchEncoder
from survmamba_lite.model.him import HierarchicalInteractionMamba

D = 16
torch.manual_seed(SEED)
encoder = PatchEncoder(d_in=batch.patches.shape[-1], dim=D, dropout=0.0).eval()
him = HierarchicalInteractionMamba(dim=D, d_state=4, scan_backend="ref").eval()


def him_loop(tokens, mask):
    """Eq. 5-6, one patient and one group at a time. tokens: (B, R, P, D), mask: (B, R, P)."""
    fine_out, coarse_out = [], []
    for b in range(tokens.shape[0]):
        pooled, fine_b = [], []
        for s in range(tokens.shape[1]):
            n = int(mask[b, s].sum())
            if n == 0:
                continue
            t_s = tokens[b, s, :n].unsqueeze(0)                     # (1, n, D): the group alone
            for blk in him.fine_blocks:
                t_s = blk(t_s)
            fine_b.append(t_s[0])
            pooled.append(t_s[0].mean(0))                           # Pool(T'_s): (D,)
        t = torch.stack(pooled).unsqueeze(0)                        # (1, S_b, D)
        for blk in him.coarse_blocks:
            t = blk(t)
        fine_out.append(torch.cat(fine_b))
        coarse_out.append(t[0])
    return fine_out, coarse_out


with torch.no_grad():
    tokens = encoder(batch.patches)                                 # (B, R, P, D)
    out = him(tokens, batch.patch_mask)
    fine_ref, coarse_ref = him_loop(tokens, batch.patch_mask)
err_fine = max((out.fine[b, : len(f)] - f).abs().max().item() for b, f in enumerate(fine_ref))
err_coarse = max((out.coarse[b, : len(c)] - c).abs().max().item() for b, c in enumerate(coarse_ref))
print("fine (B, L, D):", tuple(out.fine.shape), " coarse (B, R, D):", tuple(out.coarse.shape))
print(f"max |batched - loop|: fine {err_fine:.1e}, coarse {err_coarse:.1e}")

# %%
# NBVAL_CHECK_OUTPUT
print("batched HIM == loop over groups (1e-5):", err_fine < 1e-5 and err_coarse < 1e-5)

# %% [markdown]
# ## What grouping changes
#
# Ablation model A of Table 3 feeds all fine tokens of a patient to one Bi-Mamba as a
# single long sequence; model B runs Bi-Mamba inside each group; model C adds the coarse
# level. Two things change. *What a token sees*: within a group, a patch's context is its
# region; the coarse level then mixes regions. *How long each scan is*: a scan over all
# patches of a slide takes as many sequential steps as there are patches, a scan per
# region as many as the largest region (all regions run side by side), plus one scan over
# the regions.
#
# At the paper's scale a slide has tens of regions of up to $16 \times 16 = 256$ patches,
# thousands of patches in all. The numbers of this synthetic batch:

# %%
per_patient = batch.patch_mask.sum(dim=(1, 2)).tolist()
steps_grouped = int(batch.patch_mask.sum(-1).max()) + int(batch.region_mask.sum(-1).max())
print("patches per patient:", per_patient)
print("sequential scan steps, one long sequence (model A):", max(per_patient))
print("sequential scan steps, grouped (fine + coarse, model C):", steps_grouped)

# %% [markdown]
# The same module serves the genomic side, with functions grouped by process: the
# grouping there is fixed by the hierarchy, the same for every patient.

# %% mystnb={"figure": {"caption": "Functions per process in the synthetic hierarchy: each row is a process (a group of the coarse level), black cells are real function tokens, white cells padding.", "name": "fig-him-groups"}}
from survmamba_lite.model.encoders import FunctionEncoder, group_functions

torch.manual_seed(SEED)
f_enc = FunctionEncoder(h, dim=D, hidden=8, dropout=0.0).eval()
him_rna = HierarchicalInteractionMamba(dim=D, d_state=4, scan_backend="ref").eval()
with torch.no_grad():
    fn_tokens = f_enc(batch.rna)                                     # (B, Fn, D)
    grouped, gmask = group_functions(fn_tokens, h)                   # (B, J, K, D), (J, K)
    out_rna = him_rna(grouped, gmask.expand(len(bags), -1, -1))
print("function tokens (B, Fn, D):", tuple(fn_tokens.shape), "-> grouped (B, J, K, D):", tuple(grouped.shape))
print("HIM rna: fine", tuple(out_rna.fine.shape), " coarse", tuple(out_rna.coarse.shape))

fig, ax = plt.subplots(figsize=(6, 2.2))
ax.imshow(gmask.numpy(), cmap="Greys", aspect="auto")
ax.set_yticks(range(h.n_processes), [p[:32] for p in h.process_names], fontsize=7)
ax.set_xlabel("function slot k within the process")
ax.set_title("functions per process (black = real token)", fontsize=9)
plt.show()

# %% [markdown]
# ## Summary
#
# * HIM reads fine tokens with a Bi-Mamba *within* each group (patches of a region,
#   functions of a process), mean-pools each group into a coarse token, and reads the
#   coarse tokens with a second Bi-Mamba.
# * The package flattens all groups of a batch into one batch of padded sequences; because
#   padding cannot leak (previous chapter), this equals the loop over groups.
# * Grouping limits each scan to a group's length and gives the model a second granularity.
#
# ## Exercises

# %% [markdown]
# **Exercise 1 (permuting regions).** Reverse the order of the real regions of the patient
# with the most regions. Which HIM outputs change: the fine tokens (beyond being listed in
# the new order), the coarse tokens, or both? Answer with `changes = {"fine": ..., "coarse": ...}`
# (booleans), and check your answer with `him_loop`.

# %% tags=["stub", "remove-cell"]
# Your answer
changes = {"fine": None, "coarse": None}     # True where the outputs change beyond their order

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# Each region is read alone at the fine level, so every region's fine tokens are the same,
# only listed in the new order. The coarse Bi-Mamba reads the regions as a sequence, and its
# two directions have different weights, so the coarse tokens change, not merely their order.
# :::

# %% tags=["solution"]
b = int(batch.region_mask.sum(-1).argmax())                      # the patient with most regions
n_r = int(batch.region_mask[b].sum())
perm = torch.cat([torch.arange(n_r).flip(0), torch.arange(n_r, tokens.shape[1])])
with torch.no_grad():
    fine_p, coarse_p = him_loop(tokens[:, perm], batch.patch_mask[:, perm])
sizes = batch.patch_mask[b].sum(-1)[:n_r].int().tolist()
orig = torch.split(fine_ref[b], sizes)
permuted = torch.split(fine_p[b], [sizes[i] for i in perm[:n_r].tolist()])
fine_same = all(torch.allclose(permuted[k], orig[perm[k]], atol=1e-6) for k in range(n_r))
coarse_change = (coarse_p[b].flip(0) - coarse_ref[b]).abs().max().item()
changes = {"fine": not fine_same, "coarse": coarse_change > 1e-4}
print(f"patient {b}, {n_r} regions reversed: fine tokens unchanged: {fine_same}; "
      f"coarse tokens (reordered back) change by up to {coarse_change:.2e}")

# %% tags=["check"]
assert set(changes) == {"fine", "coarse"} and all(isinstance(v, bool) for v in changes.values()), \
    f"changes should map 'fine' and 'coarse' to True or False, not {changes!r}"
pb = int(batch.region_mask.sum(-1).argmax())
nr = int(batch.region_mask[pb].sum())
order = torch.cat([torch.arange(nr).flip(0), torch.arange(nr, tokens.shape[1])])
with torch.no_grad():
    fine_q, coarse_q = him_loop(tokens[:, order], batch.patch_mask[:, order])
sz = batch.patch_mask[pb].sum(-1)[:nr].int().tolist()
fine_moved = not all(torch.allclose(a_, b_, atol=1e-6) for a_, b_ in zip(
    torch.split(fine_q[pb], sz[::-1]), torch.split(fine_ref[pb], sz)[::-1]))
coarse_moved = (coarse_q[pb].flip(0) - coarse_ref[pb]).abs().max().item() > 1e-4
assert changes["fine"] == fine_moved, "changes['fine'] does not match him_loop: compare each region's fine tokens"
assert changes["coarse"] == coarse_moved, "changes['coarse'] does not match him_loop: compare the coarse tokens reordered back"
print("your answer matches him_loop")

# %% [markdown]
# **Exercise 2 (sequential steps at the paper's scale).** A slide has 40 regions of
# $16 \times 16$ patches. How many sequential scan steps does model A (one sequence of all
# patches) need (`steps_a`), and how many does grouped HIM need (`steps_c`: the longest
# region, all regions side by side, then the coarse scan over the regions)?

# %% tags=["stub", "remove-cell"]
# Your answer
steps_a = None     # sequential steps of one scan over all patches (model A)
steps_c = None     # sequential steps of grouped HIM: fine scans side by side, then the coarse scan

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# Model A: $40 \cdot 256 = 10{,}240$ steps. Grouped: $256$ (all regions side by side) $+ 40$
# (the coarse scan) $= 296$; the cell prints the ratio.
# :::

# %% tags=["solution"]
n_regions, per_region = 40, 16 * 16
steps_a, steps_c = n_regions * per_region, per_region + n_regions
print(f"model A: {steps_a:,} sequential steps; grouped HIM: {steps_c} ({steps_a / steps_c:.0f}x fewer)")

# %% tags=["check"]
slide_mask = torch.ones(40, 16 * 16, dtype=torch.bool)                 # (R, P): 40 full regions
assert isinstance(steps_a, int) and isinstance(steps_c, int), "steps_a and steps_c should be whole numbers"
assert steps_a == int(slide_mask.sum()), "steps_a: model A scans every patch of the slide in one sequence"
assert steps_c == int(slide_mask.sum(-1).max()) + slide_mask.shape[0], \
    "steps_c: the longest region's fine scan plus one coarse step per region"
print("steps_a and steps_c checked")

# %%
shutil.rmtree(workdir)                                              # the synthetic cohort was temporary
