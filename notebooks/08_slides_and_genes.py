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
# # From slides to patches, from genes to processes
#
# :::{admonition} Learning objectives
# :class: tip
# After this chapter you can
# 1. cut a slide into regions and patches with `tile_slide` and relate the region index to HIM's groups;
# 2. build the gene → function → process hierarchy from a KEGG table and restrict it to the measured genes;
# 3. say which files the feature extraction writes and what the model reads from them.
# :::
#
# SurvMamba's tokens come from two hierarchies (Sec. 3.3). A slide is cut into
# $4096 \times 4096$ px {term}`regions <region>` at 20x, each region into $256 \times 256$ px {term}`patches <patch>`; a
# frozen encoder turns each patch into a vector. Genes are grouped into functions
# ({term}`KEGG pathway` maps) and functions into processes ({term}`KEGG classes <KEGG class>`)
# {cite}`kanehisa2000kegg`. This chapter builds both hierarchies with the package, on
# real public data when it is available (`data_root`) and on synthetic stand-ins
# otherwise.

# %% tags=["parameters"]
data_root = None      # folder with wsi/ and kegg/ (see its README); None: ../shared/data next to the project
seed = 0              # seed of the synthetic stand-ins
region_size = 1024    # region side in 20x pixels (the paper: 4096; smaller here so a small slide has several)

# %%
import os
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

print(f"seed: {seed}")
project_root = next(p for p in (Path.cwd(), *Path.cwd().parents) if (p / "pyproject.toml").exists())
data_root = Path(data_root) if data_root is not None else project_root.parent / "shared" / "data"
shown_root = Path(os.path.relpath(data_root, project_root))          # no machine-specific folders on the page
print("data_root:", shown_root if data_root.exists() else f"{shown_root} (not found)")
workdir = Path(tempfile.mkdtemp(prefix="survmamba_data_"))

# %% [markdown]
# ## A slide: tissue, regions, patches
#
# `tile_slide` reads the slide's resolution from its metadata, detects tissue on a
# thumbnail (HSV saturation above an Otsu threshold, bright glass excluded
# {cite}`otsu1979threshold`), lays the region grid from the slide's corner, cuts each
# region into patches and keeps the patches that are at least half tissue. Slides are read
# with OpenSlide {cite}`goode2013openslide`.

# %%
from survmamba_lite.data.wsi import open_slide, tile_slide, write_synthetic_slide

slide_path = data_root / "wsi" / "cmu-1-small-region.svs"
if slide_path.exists():
    print(f"using the real H&E slide {slide_path.name}")
else:
    slide_path = write_synthetic_slide(workdir / "synthetic.tiff", width=3000, height=2000, seed=seed)
    print(f"no real slide under {shown_root / 'wsi'}: using a synthetic slide instead ({slide_path.name})")
grid = tile_slide(slide_path, None, region_size=region_size, patch_size=256, overview=False, progress=False)
print(f"{grid.slide_width} x {grid.slide_height} px at {grid.scale.mpp} um/px ({grid.scale.mpp_source}); "
      f"{grid.n_regions} regions, {grid.n_patches} patches of {grid.patch_size_level0} px")
print("patches per region:", np.bincount(grid.region).tolist())

# %% mystnb={"figure": {"caption": "Tiling a slide (the public CMU-1 H&E region when the shared data folder is present, a synthetic slide otherwise; the file name is in the left panel's title): the thumbnail, and the regions (red) with the kept tissue patches (blue).", "name": "fig-data-tiling"}}
slide = open_slide(slide_path)
scale = max(grid.slide_width, grid.slide_height) / 800
thumb = np.asarray(slide.get_thumbnail((int(grid.slide_width / scale), int(grid.slide_height / scale))).convert("RGB"))
fig, axes = plt.subplots(1, 2, figsize=(10, 5.5))
axes[0].imshow(thumb)
axes[0].set_title(f"{slide_path.name}", fontsize=9)
axes[1].imshow(thumb, alpha=0.6)
p, r0 = grid.patch_size_level0, grid.region_size_level0
for (x, y) in grid.coords:
    axes[1].add_patch(Rectangle((x / scale, y / scale), p / scale, p / scale, fill=False, ec="#2D6FB7", lw=0.6))
for r in range(grid.n_regions):
    x0, y0 = (grid.coords[grid.region == r][0] // r0) * r0
    w, h = min(r0, grid.slide_width - x0), min(r0, grid.slide_height - y0)
    axes[1].add_patch(Rectangle((x0 / scale, y0 / scale), w / scale, h / scale, fill=False, ec="#D62728", lw=1.6))
    axes[1].text(x0 / scale + 6, y0 / scale + 20, f"R{r}", color="#D62728", fontsize=9, weight="bold")
axes[1].set_title(f"regions ({region_size} px, red) and kept patches (256 px, blue)", fontsize=9)
for ax in axes:
    ax.axis("off")
plt.show()
slide.close()

# %% [markdown]
# The coordinates (and the region of each patch) are what `survmamba tile` writes to
# `<slide_id>.coords.h5`; `survmamba extract` then reads each patch and runs the frozen
# encoder, writing `features/<slide_id>.h5` with `features (P, F)`, `coords (P, 2)` and
# `region (P,)`. The paper's encoder, CTransPath {cite}`wang2022ctranspath`, needs a weight
# file that the user supplies; an ImageNet EfficientNet-Lite0 {cite}`tan2019efficientnet`
# works offline. The region index is all the model needs to group patches
# (`collate_bags`, chapter on HIM).
#
# ## Genes, functions, processes
#
# The package reads a KEGG table (one row per pathway map: its level-1 category, level-2
# class and member genes) into a hierarchy frame; a function is a pathway map and its
# process the map's level-2 class.

# %%
from survmamba_lite.data.kegg import build_genomic_hierarchy, hierarchy_from_kegg_table

kegg_path = data_root / "kegg" / "kegg352_pathway_class_genes.tsv"
if kegg_path.exists():
    table = hierarchy_from_kegg_table(kegg_path)
    print(f"using the KEGG table {kegg_path.name}")
else:
    from survmamba_lite.data.synth import SCALES, synthetic_hierarchy

    table, _, _ = synthetic_hierarchy(SCALES["paper"], seed)
    print(f"no KEGG table under {shown_root / 'kegg'}: using the synthetic paper-scale hierarchy instead")
n_genes = len({g for genes in table["genes"] for g in genes.split(",") if g})
print(f"{len(table)} functions in {table['process'].nunique()} processes, {n_genes} distinct genes")

# %% mystnb={"figure": {"caption": "Functions (KEGG pathway maps) per process (KEGG level-2 class), coloured by level-1 category; the synthetic paper-scale hierarchy stands in when the KEGG table is absent.", "name": "fig-data-kegg"}}
counts = table.groupby("process", sort=False).size().sort_values()
category = table.groupby("process", sort=False)["category"].first() if "category" in table else None
fig, ax = plt.subplots(figsize=(7, 8))
colors = None
if category is not None:
    cats = sorted(category.unique())
    palette = dict(zip(cats, plt.cm.tab10.colors))
    colors = [palette[category[p]] for p in counts.index]
    for c in cats:
        ax.barh([], [], color=palette[c], label=c)
    ax.legend(frameon=False, fontsize=7, loc="lower right", title="KEGG level-1 category", title_fontsize=7)
ax.barh(range(len(counts)), counts.to_numpy(), color=colors)
ax.set_yticks(range(len(counts)), counts.index, fontsize=6.5)
ax.set_xlabel("functions (pathway maps) in the process")
ax.set_ylabel("process (KEGG level-2 class)")
ax.set_title(f"{len(table)} functions in {len(counts)} processes", fontsize=9)
plt.tight_layout()
plt.show()

# %% [markdown]
# The paper reports 42 processes; the public hierarchy puts these 352 maps in 45 classes
# (see [Errata](../book/errata.md)). The model only sees the part of the hierarchy that
# the RNA table measures: `build_genomic_hierarchy` intersects the functions' gene sets
# with the RNA columns and keeps the functions with enough measured genes.

# %%
rna_path = data_root / "tcga" / "xena" / "blca" / "rna_clean.csv"
if rna_path.exists():
    genes = [c for c in open(rna_path).readline().strip().split(",")[1:]]
    print(f"RNA columns from {rna_path.relative_to(data_root)}: {len(genes)} genes")
else:
    rng = np.random.default_rng(seed)
    all_genes = sorted({g for gs in table["genes"] for g in gs.split(",") if g})
    genes = list(rng.choice(all_genes, size=min(1577, len(all_genes)), replace=False))
    print(f"no TCGA RNA table under {shown_root}: using {len(genes)} genes drawn at random from the hierarchy")
for min_genes in (1, 5):
    h, stats = build_genomic_hierarchy(table, genes, min_genes=min_genes)
    print(f"min_genes={min_genes}: {h.n_functions} functions in {h.n_processes} processes, "
          f"{len({g for f in h.function_genes for g in f})} of {h.n_genes} genes used")

# %% [markdown]
# ## Summary
#
# * `tile_slide` keeps tissue patches of 256 px and records each patch's region; the region
#   index is all HIM needs to group patches.
# * The genomic hierarchy is a KEGG table (pathway maps in classes) intersected with the
#   genes the RNA table measures; `min_genes` drops functions with too few measured genes.
#
# ## Exercises

# %% [markdown]
# **Exercise 1 (patches per region).** How many 256-px patches can a region hold at the
# paper's region size (4096 px, `capacity_paper`) and at this page's `region_size`
# (`capacity_here`)? Check that no region of the tiled slide holds more.

# %% tags=["stub", "remove-cell"]
# Your answer
capacity_paper = None      # patches that fit in a 4096-px region
capacity_here = None       # patches that fit in a region of region_size px

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# A region of side $s$ holds $(s/256)^2$ patches: $(4096/256)^2 = 256$ at the paper's size and
# $(1024/256)^2 = 16$ at this page's default; regions at the slide's edge or with little
# tissue hold fewer.
# :::

# %% tags=["solution"]
capacity_paper = (4096 // 256) ** 2
capacity_here = (region_size // 256) ** 2
print(f"capacity: paper {capacity_paper}, here {capacity_here}; fullest region here: {np.bincount(grid.region).max()}")

# %% tags=["check"]
assert isinstance(capacity_paper, int) and isinstance(capacity_here, int), "the capacities should be whole numbers"
assert capacity_paper * 256 ** 2 == 4096 ** 2, "capacity_paper: how many 256 x 256 squares tile a 4096 x 4096 region?"
assert capacity_here * 256 ** 2 == region_size ** 2, f"capacity_here: the same for a {region_size}-px region"
assert np.bincount(grid.region).max() <= capacity_here, "a region of the tiled slide holds more patches than fit"
print("no region holds more patches than fit")

# %% [markdown]
# **Exercise 2 (what `min_genes` keeps).** After `build_genomic_hierarchy(..., min_genes=5)`,
# how many measured genes does the smallest function have? Store it as `smallest`, from the
# hierarchy `h` built last above.

# %% tags=["stub", "remove-cell"]
# Your answer
smallest = None            # measured genes of the smallest function of h

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# At least 5: every function with fewer measured genes was dropped. The processes left are
# those with at least one function remaining.
# :::

# %% tags=["solution"]
smallest = min(len(f) for f in h.function_genes)
print(f"min_genes=5: smallest function has {smallest} measured genes; {h.n_processes} processes remain")
assert smallest >= 5

# %% tags=["check"]
assert isinstance(smallest, int), f"smallest should be a whole number of genes, not {smallest!r}"
assert smallest == min(map(len, h.function_genes)), "smallest is not the gene count of h's smallest function"
print("smallest checked")

# %%
shutil.rmtree(workdir)
