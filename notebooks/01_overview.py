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
# # Overview: from a slide and a transcriptome to a hazard
#
# :::{admonition} Learning objectives
# :class: tip
# After this chapter you can
# 1. name the two inputs of SurvMamba, their hierarchies (patch → region → slide, gene → function → process) and the output (one hazard per time bin);
# 2. follow one batch through the model and read the shape letters $B, R, P, F, G, D, T$;
# 3. build any of the paper's ablation models A–F from one configuration field.
# :::
#
# SurvMamba {cite}`chen2024survmamba` predicts how long a cancer patient survives from two
# inputs: a whole slide image (WSI) of the tumour, stained with haematoxylin and eosin,
# and the tumour's transcriptome (one expression value per gene). Each patient $i$ is a
# quadruple $X_i = (I_i, G_i, c_i, t_i)$: slide, genes, censoring status and follow-up
# time. The model outputs a *hazard* for each of $T$ discrete time bins, the probability
# of dying in that bin given survival up to it.
#
# Both inputs have a natural hierarchy, and the model is built around it:
#
# * a slide is cut into 4096 px **regions**, each region into 256 px **patches**; a frozen
#   pathology encoder turns every patch into a feature vector;
# * genes belong to **functions** (KEGG pathways {cite}`kanehisa2000kegg`), and functions
#   to **processes** (KEGG classes); a small network turns the genes of each function into
#   one token.
#
# Fine tokens (patches, functions) are read by a bidirectional Mamba within each group
# (region, process); pooled groups become coarse tokens (regions, processes) read by a
# second bidirectional Mamba. This is the Hierarchical Interaction Mamba (HIM). The
# Interaction Fusion Mamba (IFM) then mixes the two modalities at each granularity, and a
# learned weight $\alpha$ blends the fine and the coarse result (Eq. 8).

# %%
import matplotlib.pyplot as plt
import torch
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

SEED = 0
torch.manual_seed(SEED)
print(f"seed: {SEED}, torch {torch.__version__}")

# %% [markdown]
# ## The architecture in one figure
#
# The figure below is drawn from the description in the paper's Sec. 3 and Fig. 2, with
# the reading of the ambiguous parts that this project takes (see
# [Errata and interpretation decisions](../book/errata.md)): the fine IFM takes HIM's fine
# outputs, the coarse IFM its coarse outputs.

# %% mystnb={"figure": {"caption": "SurvMamba's data flow: histology (top) and transcriptomics (bottom) are encoded, read by HIM at a fine and a coarse level, fused by IFM at each level and blended with the learned weight $\\alpha$ (Eq. 8) into hazards for $T$ time bins.", "name": "fig-overview-flow"}}
COLORS = {"wsi": "#F4C7C3", "rna": "#C9DAF8", "him": "#FCE8B2", "ifm": "#D9EAD3", "out": "#E6E0F2"}


def box(ax, x, y, w, h, text, color, fontsize=7.5):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02", fc=color, ec="0.3", lw=0.8))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize)


def arrow(ax, x0, y0, x1, y1):
    ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=9, lw=0.8, color="0.25"))


fig, ax = plt.subplots(figsize=(11, 5.4))
ax.set_xlim(0, 10.8)
ax.set_ylim(0, 5.4)
ax.axis("off")
w, h = 1.64, 0.8
x_in, x_enc, x_fine, x_coarse, x_fuse, x_out = 0.02, 1.8, 3.58, 5.36, 7.3, 9.12
rows = {"wsi": 4.3, "rna": 0.2}
inputs = {"wsi": "slide → R regions\n(4096 px) → P patches\n(256 px)",
          "rna": "G genes → Fn functions\n(KEGG pathways)\n→ J processes"}
encoders = {"wsi": "frozen patch encoder\n+ projection F→D\n(B, R, P, D)",
            "rna": "per-function MLP,\ngrouped by process\n(B, J, K, D)"}
fine = {"wsi": "fine Bi-Mamba per\nregion (Eq. 5):\npatch tokens", "rna": "fine Bi-Mamba per\nprocess (Eq. 5):\nfunction tokens"}
coarse = {"wsi": "pool, coarse Bi-Mamba\n(Eq. 6):\nregion tokens", "rna": "pool, coarse Bi-Mamba\n(Eq. 6):\nprocess tokens"}
for m, y in rows.items():
    box(ax, x_in, y, w, h, inputs[m], COLORS[m])
    box(ax, x_enc, y, w, h, encoders[m], COLORS[m])
    box(ax, x_fine, y, w, h, fine[m], COLORS["him"])
    box(ax, x_coarse, y, w, h, coarse[m], COLORS["him"])
    for x0, x1 in ((x_in, x_enc), (x_enc, x_fine), (x_fine, x_coarse)):
        arrow(ax, x0 + w, y + h / 2, x1, y + h / 2)
y_ifm_f, y_ifm_c = 2.85, 1.55
box(ax, x_fine, y_ifm_f, w, h, "IFM fine (Alg. 2)\n→ $H_f$", COLORS["ifm"])
box(ax, x_coarse, y_ifm_c, w, h, "IFM coarse (Alg. 2)\n→ $H_c$", COLORS["ifm"])
arrow(ax, x_fine + w / 2, rows["wsi"], x_fine + w / 2, y_ifm_f + h)          # fine tokens -> IFM fine
arrow(ax, x_fine + w / 2, rows["rna"] + h, x_fine + w / 2, y_ifm_f)
arrow(ax, x_coarse + w / 2, rows["wsi"], x_coarse + w / 2, y_ifm_c + h)      # coarse tokens -> IFM coarse
arrow(ax, x_coarse + w / 2, rows["rna"] + h, x_coarse + w / 2, y_ifm_c)
box(ax, x_fuse, 2.2, w, h, "$H = \\alpha H_f + (1-\\alpha) H_c$\n(Eq. 8)", COLORS["out"])
arrow(ax, x_fine + w, y_ifm_f + h / 2, x_fuse, 2.2 + 0.6)
arrow(ax, x_coarse + w, y_ifm_c + h / 2, x_fuse, 2.2 + 0.2)
box(ax, x_out, 2.2, w, h, "hazards $h_1, …, h_T$\nNLL loss (Eq. 9)\nrisk, c-index", COLORS["out"])
arrow(ax, x_fuse + w, 2.6, x_out, 2.6)
ax.text(x_fine, 5.25, "HIM, one per modality", fontsize=9, weight="bold", ha="left")
ax.text(x_in, 5.25, "histology", fontsize=9, weight="bold")
ax.text(x_in, 1.1, "transcriptomics", fontsize=9, weight="bold")
ax.set_title("SurvMamba: data flow (shape letters as in the Notation table)", fontsize=10)
plt.show()

# %% [markdown]
# ## The same flow, in code
#
# `SurvMamba` is one `torch.nn.Module` built from one frozen `SurvMambaConfig`. We build a
# deliberately tiny one (width $D=16$) on a toy hierarchy of 12 genes, 5 functions and 2
# processes, and follow one batch of two patients through it. The shapes printed here are
# the arrows of the figure.

# %%
from survmamba_lite import SurvMamba, SurvMambaConfig
from survmamba_lite.data import GenomicHierarchy, PatientBag, collate_bags
from survmamba_lite.utils.complexity import count_parameters

hierarchy = GenomicHierarchy(
    genes=tuple(f"g{i}" for i in range(12)),
    function_ids=("f0", "f1", "f2", "f3", "f4"),
    function_names=("cell cycle", "apoptosis", "p53 signalling", "glycolysis", "TCA cycle"),
    function_genes=((0, 1, 2), (2, 3, 4, 5), (5, 6), (7, 8, 9, 10), (10, 11)),
    function_process=(0, 0, 0, 1, 1),
    process_names=("Cell growth and death", "Carbohydrate metabolism"),
)
g = torch.Generator().manual_seed(SEED)
bags = [
    # patient a: 7 patches in 3 regions; patient b: 4 patches in 2 regions
    PatientBag("a", torch.randn(7, 32, generator=g), torch.tensor([0, 0, 0, 1, 1, 2, 2]),
               torch.randn(12, generator=g), time=14.0, event=1, time_bin=1),
    PatientBag("b", torch.randn(4, 32, generator=g), torch.tensor([5, 5, 9, 9]),
               torch.randn(12, generator=g), time=40.0, event=0, time_bin=3),
]
batch = collate_bags(bags)
print("patches   (B, R, P, F):", tuple(batch.patches.shape))
print("patch_mask (B, R, P)  :", tuple(batch.patch_mask.shape), "real patches:", batch.patch_mask.sum(dim=(1, 2)).tolist())
print("rna       (B, G)      :", tuple(batch.rna.shape))

# %% [markdown]
# Patients differ in the number of regions and of patches per region; `collate_bags`
# pads them into one rectangular tensor and keeps an explicit mask, so that no model has
# to guess which positions are padding.

# %%
# NBVAL_CHECK_OUTPUT
config = SurvMambaConfig(n_bins=4, wsi_dim=32, hierarchy=hierarchy, dim=16, d_state=4, variant="F",
                         dropout=0.0, scan_backend="ref")
model = SurvMamba(config).eval()
with torch.no_grad():
    enc = model.encode(batch)
    for m, out in enc.items():
        print(f"{m}: fine {tuple(out.fine.shape)}, coarse {tuple(out.coarse.shape)}")
    H = model.features(batch)
    logits = model(batch)
print("H (B, D):", tuple(H.shape), "  hazard logits (B, T):", tuple(logits.shape))
print("alpha at initialisation:", round(model.alpha.item(), 3))
print("trainable parameters:", count_parameters(model))

# %% [markdown]
# The fine outputs are flattened per patient with the real tokens first (7 and 4 patches;
# 5 functions), the coarse outputs hold one token per region (3) or process (2).
#
# ## Ablations are configurations, not copies
#
# The paper's Table 3 compares six models A–F. Here each is a value of one config field;
# the same class builds all of them.

# %%
# NBVAL_CHECK_OUTPUT
from survmamba_lite.model import VARIANTS

print("variant  grouped fine  coarse level  IFM fine  IFM coarse  parameters")
for v in VARIANTS:
    c = config.replace(variant=v)
    flags = "  ".join(f"{'yes' if f else 'no':>10}" for f in (c.grouped, c.coarse, c.ifm_fine, c.ifm_coarse))
    print(f"{v:>7}  {flags}  {count_parameters(SurvMamba(c)):>10}")

# %% [markdown]
# The rest of the book opens these boxes one at a time, starting with the state-space
# model inside every Mamba block.

# %% [markdown]
# ## Summary
#
# * A patient is a slide (a bag of patches grouped by region) and a transcriptome (genes
#   grouped by function and process), plus a follow-up time and a censoring status.
# * `collate_bags` pads patients into rectangular tensors with explicit masks; the model
#   returns one hazard logit per time bin, `(B, T)`.
# * The ablations of Table 3 are values of `SurvMambaConfig.variant`, not separate models.
#
# ## Exercises

# %% [markdown]
# **Exercise 1 (shapes).** Add a third patient `c` with 5 patches, all in one region, to the
# batch. Write down the shape of `batch.patches` you expect (`predicted_shape`, a tuple
# `(B, R, P, F)`) before you build the new batch `batch3` with `collate_bags`.

# %% tags=["stub", "remove-cell"]
# Your answer
predicted_shape = None     # (B, R, P, F) of batch3.patches, written down before running collate_bags
batch3 = None              # collate_bags of patients a, b and c

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# $R$ is the largest number of regions (3, patient a), $P$ the largest region (5 patches,
# patient c), $F = 32$: `(3, 3, 5, 32)`.
# :::

# %% tags=["solution"]
predicted_shape = (3, 3, 5, 32)
bag_c = PatientBag("c", torch.randn(5, 32, generator=g), torch.zeros(5, dtype=torch.long),
                   torch.randn(12, generator=g), time=3.0, event=1, time_bin=0)
batch3 = collate_bags([*bags, bag_c])
print("patches (B, R, P, F) with patient c:", tuple(batch3.patches.shape))

# %% tags=["check"]
assert isinstance(predicted_shape, tuple) and len(predicted_shape) == 4, \
    f"predicted_shape should be a tuple (B, R, P, F), not {predicted_shape!r}"
assert batch3 is not None and batch3.patches.shape[0] == 3, "batch3 should hold three patients: a, b and c"
assert int(batch3.patch_mask[2].sum()) == 5 and int(batch3.region_mask[2].sum()) == 1, \
    "patient c should have 5 patches in a single region"
assert tuple(batch3.patches.shape) == predicted_shape, \
    f"the prediction {predicted_shape} is not the shape of batch3.patches: R and P are maxima over the patients"
print("your prediction is the shape of batch3.patches")

# %% [markdown]
# **Exercise 2 (the blend weight).** The model stores a free number $a$ (`model.alpha_logit`)
# and uses $\alpha = \sigma(a)$. Which $a$ makes the fine level count for 90 %
# ($\alpha = 0.9$)? Compute it as `a`, set `model.alpha_logit` to it and check `model.alpha`.

# %% tags=["stub", "remove-cell"]
# Your answer: a, and model.alpha_logit set to it
a = None

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# $\sigma(a) = 0.9 \iff a = \log(0.9 / 0.1) = \log 9 \approx 2.197$.
# :::

# %% tags=["solution"]
import math

a = math.log(0.9 / 0.1)
with torch.no_grad():
    model.alpha_logit.fill_(a)
print(f"a = log 9 = {a:.3f} -> alpha = {model.alpha.item():.3f}")

# %% tags=["check"]
import math

assert isinstance(a, float), f"a should be a number, not {a!r}"
assert abs(1 / (1 + math.e ** -a) - 0.9) < 1e-9, f"sigma({a:.4f}) is not 0.9"
assert abs(model.alpha.item() - 0.9) < 1e-6, \
    f"model.alpha is {model.alpha.item():.4f}: set model.alpha_logit to a (inside torch.no_grad())"
print("alpha = 0.9")
