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
# # Primer: multiple-instance learning on slides
#
# :::{admonition} Learning objectives
# :class: tip
# After this chapter you can
# 1. describe a whole slide as a *bag* of patch features with one label for the bag;
# 2. write mean pooling and gated attention pooling, and say why attention helps when few patches matter;
# 3. run the package's ABMIL, TransMIL and MCAT baselines from the model registry, and tell which of them
#    depend on the order of the patches;
# 4. explain genomic-guided co-attention, the interaction that SurvMamba's IFM replaces.
# :::
#
# A {term}`whole-slide image` has $10^4$–$10^5$ patches of $256 \times 256$ pixels, and the survival
# label belongs to the patient, not to any patch. Multiple-instance learning (MIL) handles
# exactly this: a {term}`bag` of instances $\{x_1, \dots, x_L\}$ with one label. Every slide model
# of the paper's Table 1, SurvMamba included, is a MIL model; they differ in how they pool
# the patches into one vector. The bags here are **synthetic**.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from survmamba_lite.baselines.common import Attention, GatedAttentionPool, flatten_bag
from survmamba_lite.data import GenomicHierarchy, PatientBag, collate_bags
from survmamba_lite.registry import ModelInputs, build_model, get_model_spec

SEED = 0
torch.manual_seed(SEED)
print(f"seed: {SEED}")

# %% [markdown]
# ## Bags, and what pooling does to a rare signal
#
# A frozen encoder turns each patch into a feature vector $x_k \in \R^F$
# ([Slides and genes](07_slides_and_genes.py)). A MIL model embeds each instance,
# $h_k = \phi(x_k)$, pools the bag into one vector $z$, and predicts from $z$:
#
# $$
# z_{\text{mean}} = \frac1L\sum_{k=1}^{L} h_k, \qquad
# z_{\text{attn}} = \sum_{k=1}^{L} a_k h_k,\quad
# a_k = \frac{\exp\big(w^\top(\tanh(V h_k) \odot \sigma(U h_k))\big)}{\sum_{j}\exp\big(w^\top(\tanh(V h_j) \odot \sigma(U h_j))\big)} .
# $$
#
# The second is the gated attention of ABMIL {cite}`ilse2018abmil`. Both are invariant to the
# order of the instances. Suppose the outcome depends on a few "key" patches (a small
# invasive focus in a large slide). Under mean pooling their contribution shrinks as
# $1/L$; attention can keep it whatever the bag size. Below, one key instance in bags of
# growing size, with an attention whose score singles out the key direction:

# %%
F_dim = 8
key = torch.zeros(F_dim)
key[0] = 1.0                                                   # the key instances point along e_0
pool = GatedAttentionPool(F_dim, 4).eval()
with torch.no_grad():                                         # attention that scores the e_0 component
    pool.v[0].weight.zero_(); pool.v[0].weight[:, 0] = 3.0; pool.v[0].bias.zero_()
    pool.u[0].weight.zero_(); pool.u[0].bias.fill_(5.0)
    pool.w.weight.fill_(5.0)
sizes = [4, 16, 64, 256, 1024]
signal_mean, signal_attn = [], []
g = torch.Generator().manual_seed(SEED)
for L in sizes:
    bag = 0.3 * torch.randn(1, L, F_dim, generator=g)
    bag[0, :, 0] = 0.0
    bag[0, 0] += 3 * key                                      # one key instance
    with torch.no_grad():
        z_attn, a = pool(bag)
    signal_mean.append(bag.mean(1)[0, 0].item())
    signal_attn.append(z_attn[0, 0, 0].item())
print("bag sizes        :", sizes)
print("key signal, mean :", np.round(signal_mean, 4))
print("key signal, attn :", np.round(signal_attn, 4))

# %% mystnb={"figure": {"caption": "Synthetic bags with one key instance: the key component of the pooled vector under mean pooling falls as $1/L$, under gated attention it stays.", "name": "fig-primer-mil-pooling"}}
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.loglog(sizes, signal_mean, "o-", label="mean pooling")
ax.loglog(sizes, signal_attn, "s-", label="gated attention pooling")
ax.set_xlabel("instances in the bag L")
ax.set_ylabel("key component of z")
ax.set_title("synthetic bags, one key instance", fontsize=9)
ax.legend(frameon=False, fontsize=8)
plt.show()

# %% [markdown]
# ## The package's baselines, from the registry
#
# Every model of the comparison is built by name from what the data says (time bins,
# feature width, gene hierarchy). A tiny batch of three synthetic patients with 2–3
# regions of patches each, a 12-dimensional patch feature and 8 genes in 4 functions:

# %%
hierarchy = GenomicHierarchy(tuple(f"g{i}" for i in range(8)), ("f0", "f1", "f2", "f3"), ("a", "b", "c", "d"),
                             ((0, 1, 2), (2, 3), (4, 5, 6), (6, 7)), (0, 0, 1, 1), ("p0", "p1"))
g = torch.Generator().manual_seed(SEED)
bags = [PatientBag(f"p{i}", torch.randn(n, 12, generator=g), torch.arange(n) // 3, torch.randn(8, generator=g),
                   time=10.0 + i, event=i % 2, time_bin=i % 4) for i, n in enumerate((7, 4, 9))]
batch = collate_bags(bags)
inputs = ModelInputs(n_bins=4, wsi_dim=12, hierarchy=hierarchy)
models = {}
for name in ("abmil", "transmil", "mcat"):
    spec = get_model_spec(name)
    torch.manual_seed(SEED)
    models[name] = build_model(name, inputs, dim=16, dropout=0.0).eval()
    with torch.no_grad():
        logits = models[name](batch)
    print(f"{name:>8} ({', '.join(spec.modalities)}): logits {tuple(logits.shape)}  - {spec.description}")

# %% [markdown]
# **ABMIL** flattens the regions into one bag (`flatten_bag`) and applies the gated
# attention above. **TransMIL** {cite}`shao2021transmil` lets the instances attend to each other
# first: it squares the bag into a grid, adds a class token and two self-attention layers
# with a convolutional position encoding (PPEG) between them, and predicts from the class
# token. Exact self-attention over all pairs of patches costs $O(L^2)$; TransMIL uses the
# Nyström approximation, which attends through a few landmark tokens at a cost linear in
# $L$ (the efficiency chapter measures costs). Its PPEG makes it depend on the patch
# *order*, which ABMIL does not:

# %%
def shuffled(batch, seed):
    """The same patients with the patches of each region in another order."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for b in bags:
        perm = torch.randperm(len(b.features), generator=gen)
        out.append(PatientBag(b.case_id, b.features[perm], b.region[perm], b.rna, time=b.time, event=b.event,
                              time_bin=b.time_bin))
    return collate_bags(out)


with torch.no_grad():
    change = {name: (m(shuffled(batch, 1)) - m(batch)).abs().max().item() for name, m in models.items()}
print("max |logits(shuffled patches) - logits|:", {k: f"{v:.1e}" for k, v in change.items()})
assert change["abmil"] < 1e-5 and change["transmil"] > 1e-4

# %% [markdown]
# ## Co-attention: genes choose the patches
#
# MCAT {cite}`chen2021mcat` makes the two modalities interact *before* pooling. Genomic
# tokens $G \in \R^{N\times D}$ (one per gene group) are the queries, the patch tokens
# $H \in \R^{L\times D}$ the keys and values:
#
# $$
# \hat H = \operatorname{softmax}\!\Big(\frac{W_q G\,(W_k H)^\top}{\sqrt D}\Big) W_v H \in \R^{N \times D},
# $$
#
# so each gene group gathers the patches relevant to it, and the bag of $L$ patches becomes
# $N$ tokens. The attention matrix has $N \times L$ entries. SurvMamba's IFM
# ([Interaction Fusion Mamba](10_ifm_fusion.py)) replaces this quadratic interaction by
# gating one modality's scan output with the other's. The co-attention by hand, next to
# the module inside the package's MCAT:

# %%
mcat = models["mcat"]
with torch.no_grad():
    x, mask = flatten_bag(batch.patches, batch.patch_mask)          # (B, L, F), (B, L)
    h = mcat.patches(x)                                              # (B, L, D)
    G = mcat.genomic(batch.rna)                                      # (B, N, D)
    att = mcat.coattn
    q = att.q(G)
    k, v = att.kv(h).chunk(2, dim=-1)
    scores = (q @ k.transpose(1, 2)) / q.shape[-1] ** 0.5            # (B, N, L)
    weights = scores.masked_fill(~mask[:, None, :], float("-inf")).softmax(-1)
    H_hat = att.out(weights @ v)                                     # (B, N, D)
    diff = (H_hat - mcat.coattend(G, h, mask)).abs().max().item()
print(f"genomic tokens N = {G.shape[1]}, patches L = {h.shape[1]}; attention {tuple(weights.shape)}; "
      f"max |by hand - MCAT| = {diff:.1e}")
assert diff < 1e-5 and torch.allclose(weights.sum(-1), torch.ones(weights.shape[:2]))

# %% [markdown]
# ## Summary
#
# * A slide is a bag of patch features with one label; MIL models differ in how they pool it.
# * Mean pooling dilutes rare informative patches as $1/L$; gated attention (ABMIL) learns
#   which patches to weight. Both ignore patch order; TransMIL's self-attention and position
#   encoding do not.
# * Co-attention (MCAT) lets genomic tokens select patches, at a cost of $N \times L$ scores.
#   SurvMamba instead groups patches by region and genes by process and scans them with
#   Mamba (next chapters).
#
# ## Exercises

# %% [markdown]
# **Exercise 1 (mean pooling is attention).** Which attention scores make gated attention
# pooling equal to mean pooling? Make a `GatedAttentionPool(F_dim, 4)` called `mean_pool` pool a
# bag as its mean by setting its weights (no new class), and check it on random bags.

# %% tags=["stub", "remove-cell"]
# Your answer
mean_pool = None   # a GatedAttentionPool(F_dim, 4) whose pooling is the mean of the bag

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# Equal scores for all instances give $a_k = 1/L$. Setting $w = 0$ makes every score zero.
# :::

# %% tags=["solution"]
mean_pool = GatedAttentionPool(F_dim, 4)
with torch.no_grad():
    mean_pool.w.weight.zero_()
print("w = 0: every attention score is 0, every weight 1/L")

# %% tags=["check"]
assert isinstance(mean_pool, GatedAttentionPool), f"mean_pool should be a GatedAttentionPool, not {mean_pool!r}"
bag_ = torch.randn(3, 10, F_dim)
with torch.no_grad():
    z_, a_ = mean_pool(bag_)
assert torch.allclose(z_[:, 0], bag_.mean(1), atol=1e-6), "mean_pool does not return the mean of the bag"
assert torch.allclose(a_, torch.full_like(a_, 0.1)), "the attention weights of a 10-instance bag should all be 1/10"
print("attention pooling == mean pooling")

# %% [markdown]
# **Exercise 2 (padding gets no weight).** Bags of different sizes are padded to a common
# length. Show that ABMIL's logits for a patient do not change when another, larger
# patient joins the batch: compute patient 1's logits alone (`alone`, from
# `collate_bags([bags[1]])`) and in the batch (`together`, its row of the batch's logits).

# %% tags=["stub", "remove-cell"]
# Your answer
alone = None       # (1, T) ABMIL logits of bags[1] on its own
together = None    # (1, T) its row of the logits of the whole batch

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# The padded positions get score $-\infty$, hence weight $0$, and `flatten_bag` puts real
# patches first; the cell compares a patient alone with the same patient in the batch.
# :::

# %% tags=["solution"]
with torch.no_grad():
    alone = models["abmil"](collate_bags([bags[1]]))
    together = models["abmil"](batch)[1:2]
print(f"max |alone - in the batch| = {(alone - together).abs().max().item():.1e}")

# %% tags=["check"]
assert isinstance(alone, torch.Tensor) and isinstance(together, torch.Tensor), "alone and together should be logits (tensors)"
with torch.no_grad():
    ref_ = models["abmil"](collate_bags([bags[1]]))
assert alone.shape == together.shape == ref_.shape, f"both should have the shape {tuple(ref_.shape)} of one patient's logits"
assert torch.allclose(alone, ref_), "alone should be ABMIL's logits of collate_bags([bags[1]])"
assert torch.allclose(alone, together, atol=1e-5), "the patient's logits change in the batch: padding leaks"
print("padding gets no weight")

# %% [markdown]
# **Exercise 3 (the cost of co-attention).** At the paper's scale a slide has about
# $L = 10^4$ patches and MCAT uses $N = 6$ genomic tokens. How many attention scores does
# the co-attention compute per slide (`n_coattention`), and how many would full
# self-attention over the patches (TransMIL, without its Nyström approximation) compute
# (`n_selfattention`)?

# %% tags=["stub", "remove-cell"]
# Your answer
n_coattention = None   # attention scores of co-attention from N genomic tokens to L patches
n_selfattention = None # attention scores of full self-attention over L patches

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# Co-attention: one score per (genomic token, patch) pair, $NL = 6 \times 10^4$.
# Self-attention: one per pair of patches, $L^2 = 10^8$: more than a thousand times more,
# which is why TransMIL approximates it and why linear-time scans are attractive.
# :::

# %% tags=["solution"]
L_slide, N_tokens = 10_000, 6
n_coattention = N_tokens * L_slide
n_selfattention = L_slide ** 2
print(f"co-attention {n_coattention:,} scores; self-attention {n_selfattention:,} ({n_selfattention / n_coattention:.0f} x)")

# %% tags=["check"]
assert isinstance(n_coattention, int) and isinstance(n_selfattention, int), "the counts should be whole numbers"
scores_ = torch.zeros(6, 10_000)                                        # one score per (token, patch)
assert n_coattention == scores_.numel(), "co-attention: each of the N genomic tokens scores every patch"
assert n_selfattention == 10_000 * 10_000, "self-attention: every patch scores every patch"
print("the counts checked")
