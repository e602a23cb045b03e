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
# # Your own cohort: CLAM or TRIDENT features, a clinical table, a run
#
# :::{admonition} Learning objectives
# :class: tip
# After this chapter you can
# 1. turn a folder of CLAM or TRIDENT patch features and a clinical table (yours, or the public
#    one that `survmamba fetch-tcga` checks against its pinned SHA-256) into a cohort folder
#    (`survmamba import-tcga`, `survmamba import-features`), and read the import's summary and
#    its refusals;
# 2. say where the coordinates, the patch size and the magnification of each tool's files are,
#    and compute a patch's region from its level-0 coordinates on a 20x or a 40x scan;
# 3. build the bag of a patient with several slides, all of them or the first;
# 4. hand the same features back to CLAM- or TRIDENT-based code (`survmamba export-features`) and go
#    on to the per-cohort papermill run and its report.
# :::
#
# Most people who rerun SurvMamba already have patch features: made with {term}`CLAM`
# {cite}`lu2021clam` or {term}`TRIDENT`, the tools whose files SurvPath {cite}`jaume2024survpath`,
# MCAT {cite}`chen2021mcat`, MOTCat {cite}`xu2023motcat` and MambaMIL read. This chapter walks the path from such a folder to a trained model. It runs on
# embedded data: a synthetic cohort (the chapter [Slides and genes](07_slides_and_genes.py)
# explains it) whose features are first written in CLAM's and TRIDENT's layouts, the way a
# lab's folders look, and the two real slides of the project's test data, tiled and encoded
# here. With real TCGA data the commands are the same; the [reproduction
# guide](../book/reproduce.md) lists them.

# %% tags=["parameters"]
data_root = None      # folder with wsi/ (the two real slides); None: $SURVMAMBA_DATA_ROOT or ../shared/data
n_cases = 40          # cases of the synthetic stand-in for a lab's cohort
seed = 0              # seed of the synthetic cohort and of the run
slide_encoder = "random-projection"   # encoder of the two real slides: the package's fixed random projection
                                      # (fast; checks the path only), or "efficientnet-lite0" (ImageNet features)

# %%
import contextlib
import io
import os
import shlex
import shutil
import tempfile
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from IPython.display import display

from survmamba_lite.cli import main as survmamba
from survmamba_lite.data.dataset import CohortDataset
from survmamba_lite.data.features_h5 import read_features_h5
from survmamba_lite.data.features_import import assign_regions, region_size_level0
from survmamba_lite.data.fetch import ChecksumError, fetch_tcga, read_public_inputs, sha256_file
from survmamba_lite.data.layout import load_cohort, make_folds, write_clinical, write_folds, write_manifest
from survmamba_lite.data.subset import subset_cohort
from survmamba_lite.data.synth import make_synthetic_cohort
from survmamba_lite.data.wsi import extract_slide_features, tile_slide
from survmamba_lite.realdata.catalogue import SLIDES

project_root = next(p for p in (Path.cwd(), *Path.cwd().parents) if (p / "pyproject.toml").exists())
data_root = Path(data_root) if data_root is not None else Path(
    os.environ.get("SURVMAMBA_DATA_ROOT", project_root.parent / "shared" / "data"))
work = Path(tempfile.mkdtemp(prefix="your_cohort_"))
print(f"seed: {seed}; work folder: <work>")


def run(command: str, lines: int | None = None) -> str:
    """Run a `survmamba ...` command line as typed in a shell; print what it prints (its first `lines`
    lines), with the temporary work folder shown as <work>; stop on an error."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = survmamba(shlex.split(command)[1:])
    text = out.getvalue().replace(str(work), "<work>")
    print("$", command.replace(str(work), "<work>"))
    print("\n".join(text.splitlines()[:lines]) if lines else text.rstrip())
    if code != 0:
        raise RuntimeError(f"survmamba {command.split()[1]} exited with {code}: {text.strip()}")
    return text


def tree(folder: Path, limit: int = 4) -> None:
    """The files under `folder`, a few per folder."""
    for d in sorted({p.parent for p in folder.rglob("*") if p.is_file()}):
        files = sorted(p.name for p in d.iterdir() if p.is_file() and not p.name.startswith("."))
        more = f" ... ({len(files)} files)" if len(files) > limit else ""
        print(f"{d.relative_to(folder.parent)}/: {', '.join(files[:limit])}{more}")


# %% [markdown]
# ## The stand-in for a lab's folders
#
# A synthetic cohort of the size of {term}`TCGA`-BLCA is cut to `n_cases` patients (some with two
# {term}`diagnostic slides <diagnostic slide>`, `...-DX1` and `...-DX2`, as many TCGA patients have). What a lab
# brings is then written the way the tools and the public tables write it:
#
# * the clinical and RNA tables in the layout of SurvPath's public release (one clinical
#   row per *slide*, and a {term}`censorship` column that is 1 for a censored patient),
# * the patch features as CLAM leaves them (`h5_files/` and `patches/`) and as TRIDENT
#   leaves them (`20x_256px_0px_overlap/features_<encoder>/` and `.../patches/`); both are
#   written by `survmamba export-features`, which follows the two tools' own writers.

# %%
full = load_cohort(make_synthetic_cohort("BLCA", "tiny", seed=seed, out=work / "synthetic"))
two = [c for c in full.case_ids if len(full.slide_ids(c)) == 2][:4]
keep = two + [c for c in full.case_ids if c not in two][: n_cases - len(two)]
source = load_cohort(subset_cohort(full.root, keep, work / "hidden", n_folds=5, seed=seed))

lab = work / "lab"
lab.mkdir()
rows = [{"case_id": c, "slide_id": f"{s}.svs", "survival_months": source.clinical.at[c, "survival_months"],
         "censorship": 1 - source.clinical.at[c, "event"]} for c in source.case_ids for s in source.slide_ids(c)]
pd.DataFrame(rows).to_csv(lab / "clinical.csv", index=False)
source.rna.to_csv(lab / "rna_clean.csv")
shutil.copy(source.root / "hierarchy.tsv", lab / "hierarchy.tsv")
run(f"survmamba export-features {source.root} --format clam-h5 --out {lab / 'clam'}")
run(f"survmamba export-features {source.root} --format trident --out {lab / 'trident'}")
tree(lab)

# %% [markdown]
# The two tools store the same things differently. CLAM's feature file holds float32
# features and **int32** coordinates (in {term}`level-0 pixels <level 0>`) and no attributes at all:
# the patch size and level are in the patching step's `patches/` file, and the scan's
# {term}`magnification` is nowhere. TRIDENT
# keeps everything in the feature file (coordinates with their attributes copied from the
# patching step, features in the encoder's precision: float16 for UNI and most recent
# encoders, float32 here because the export writes what the cohort holds), in chunks of one row.

# %%
sid = source.slide_ids(source.case_ids[0])[0]
files = {"CLAM h5_files": lab / "clam" / "h5_files" / f"{sid}.h5",
         "CLAM patches": lab / "clam" / "patches" / f"{sid}.h5",
         "TRIDENT features": next((lab / "trident").glob(f"*/features_*/{sid}.h5"))}
layout = []
for what, path in files.items():
    with h5py.File(path) as f:
        for name, d in f.items():
            layout.append({"file": what, "dataset": name, "dtype": str(d.dtype), "shape": d.shape,
                           "chunks": d.chunks, "attributes": ", ".join(sorted(d.attrs)) or "(none)"})
pd.DataFrame(layout)

# %% [markdown]
# ## Step 1: the cohort folder from the clinical and RNA tables
#
# `survmamba import-tcga --format xena` reads exactly this layout (it is the one SurvPath's
# public tables have): it converts `censorship` to `event = 1 - censorship` once, joins a
# patient's slide rows into one row with the slide ids separated by `;`, and writes the
# cohort folder, RNA-only for now. Without `--splits` it makes five stratified folds.

# %%
cohorts = work / "cohorts"
run(f"survmamba import-tcga --format xena --rna {lab / 'rna_clean.csv'} --clinical {lab / 'clinical.csv'} "
    f"--hierarchy {lab / 'hierarchy.tsv'} --cohort BLCA --out {cohorts / 'blca'}")
clinical = pd.read_csv(cohorts / "blca" / "clinical.csv")
clinical[clinical["slide_id"].str.contains(";")].head(2)

# %% [markdown]
# For a TCGA cohort these tables are public. `survmamba fetch-tcga --cohort blca --out DATA`
# downloads SurvPath's release of them (and the KEGG files; `--mirror DIR` copies them from
# a folder laid out the same way instead). Every file is pinned, with its repository, commit
# and SHA-256, in `data_manifests/public_inputs.yaml`: a file is written under a temporary
# name while it is hashed and put in place only when its hash is the pinned one, so
# `DATA/tcga/xena/blca/` holds exactly the release that the [real-data
# results](19_real_data_results.py) read. BLCA's pins:

# %%
pins = pd.DataFrame([{"path": e.path, "release": "/".join(e.url.split("/")[3:5]) + "@" + e.url.split("/")[5][:7],
                      "bytes": e.size, "sha256": e.sha256[:16] + "..."}
                     for e in read_public_inputs() if e.group == "blca"])
pins

# %% [markdown]
# ## Step 2: the features, from CLAM
#
# `survmamba import-features SRC --cohort-dir COHORT` writes `features/<slide_id>.h5` for
# every slide of the cohort's `clinical.csv` that has a file in `SRC`. For CLAM the patch
# geometry comes from `--patches-dir`, and the magnification of the scan must be given:
# one number, or a table of `slide_id, magnification` when 20x and 40x scans are mixed (as
# in TCGA). The export wrote such a table, `slides.csv`.
#
# Each patch is put into the region that holds its centre; a region is the paper's 4,096 px
# at 20x, which is **4,096 level-0 pixels on a 20x scan and 8,192 on a 40x scan** (the same
# tissue). CLAM's grid starts at each tissue contour's bounding box, not at `(0, 0)`, so a
# patch may start in one region and have its centre in the next: the centre decides. On a
# patch grid like CLAM's, 256 px patches of a 20x scan from a contour whose box starts at
# level-0 `(300, 700)`:

# %%
coords_20x = np.stack(np.meshgrid(300 + 256 * np.arange(40), 700 + 256 * np.arange(30), indexing="xy"),
                      axis=-1).reshape(-1, 2)                # (P, 2) level-0 top-left (x, y)
coords_40x = 2 * coords_20x                                  # the same tissue on a 40x scan
r0_20x = region_size_level0(20)                              # the region side in level-0 pixels
cell = (coords_20x + 256 // 2) // r0_20x                     # (P, 2): region column and row of each centre
region_20x = assign_regions(coords_20x, 256, r0_20x)         # (P,): numbered row-major, 0..R-1
straddle = int(((coords_20x // r0_20x) != cell).any(axis=1).sum())
print(f"{len(coords_20x)} patches in {region_20x.max() + 1} regions of {r0_20x} level-0 px; {straddle} patches "
      "start in one region and have their centre in another; most patches in a region:",
      np.bincount(region_20x).max())

# %% [markdown]
# The summary of an import lists every slide with its patches, regions, source file and
# format, and the slides of `clinical.csv` that had no file:

# %%
run(f"survmamba import-features {lab / 'clam' / 'h5_files'} --cohort-dir {cohorts / 'blca'} "
    f"--patches-dir {lab / 'clam' / 'patches'} --magnification {lab / 'clam' / 'slides.csv'} "
    "--encoder synthetic-tiny")
cohort = load_cohort(cohorts / "blca")

# %% [markdown]
# The features the cohort now holds are the ones the lab's files held, bit for bit, and
# the regions are those of the original cohort:

# %%
def same_features(a, b) -> bool:
    """Every bag slide of cohort `a` equals `b`'s: features, coordinates, regions."""
    for c in a.case_ids:
        for s in a.slide_ids(c):
            x, y = read_features_h5(a.feature_path(s)), read_features_h5(b.feature_path(s))
            if not (np.array_equal(x.features, y.features) and np.array_equal(x.coords, y.coords)
                    and np.array_equal(x.region, y.region)):
                return False
    return True


print("CLAM import equals the source cohort:", same_features(source, cohort))  # NBVAL_CHECK_OUTPUT

# %% [markdown]
# The import does not guess what no file says. Without `--magnification` it refuses, with
# one line per slide, and writes nothing: CLAM's files hold the coordinates and the patch
# level's size and downsample but nothing about the scan's resolution, and TCGA mixes 20x
# and 40x scans, whose regions differ by a factor of two in level-0 pixels.

# %%
shutil.copytree(cohorts / "blca", work / "blca_nomag", ignore=shutil.ignore_patterns("features"))
try:
    run(f"survmamba import-features {lab / 'clam' / 'h5_files'} --cohort-dir {work / 'blca_nomag'} "
        f"--patches-dir {lab / 'clam' / 'patches'}", lines=3)
except RuntimeError as err:
    print("...", str(err).split(":")[0])
print("features written:", (work / "blca_nomag" / "features").exists())  # NBVAL_CHECK_OUTPUT

# %% [markdown]
# ## The same, from TRIDENT
#
# TRIDENT's files carry the level-0 magnification and the patch size, so nothing else is
# needed; `--format auto` (the default) recognises them by their `patch_size_level0`
# attribute. Features stored as float16 are widened to float32 exactly. Here the import goes
# into a second cohort folder (a copy of the RNA-only one); into the same folder it would
# need `--overwrite`, which replaces only the feature files survmamba wrote.

# %%
shutil.copytree(cohorts / "blca", work / "blca_trident", ignore=shutil.ignore_patterns("features"))
trident_src = next((lab / "trident").glob("*/features_*"))
run(f"survmamba import-features {trident_src} --cohort-dir {work / 'blca_trident'} --overwrite")
print("TRIDENT import equals the source cohort:",  # NBVAL_CHECK_OUTPUT
      same_features(source, load_cohort(work / "blca_trident")))

# %% [markdown]
# A bad file stops the import before anything is written, with one line per slide that
# names the fix. Here one slide's coordinates lose their last row (as when a patching run
# and a feature run of different dates are mixed):

# %%
broken = work / "broken"
shutil.copytree(trident_src, broken)
bad = sorted(broken.glob("*.h5"))[0]
with h5py.File(bad, "a") as f:
    coords, attrs = f["coords"][:-1], dict(f["coords"].attrs)
    del f["coords"]
    f.create_dataset("coords", data=coords).attrs.update(attrs)
try:
    run(f"survmamba import-features {broken} --cohort-dir {work / 'blca_trident'} --overwrite")
except RuntimeError as err:
    print(str(err).split(":")[0])

# %% [markdown]
# How long does this take for a real cohort? `benchmarks/import_features.py` imports 200
# TRIDENT slides of 5,000 patches with 1,024 float16 features each (the size of a TCGA cohort
# encoded with UNI) on this project's shared 2-core machine; its committed result:

# %%
bench = pd.read_json(project_root / "benchmarks" / "results" / "import_features_cpu.json", typ="series")
runs = pd.DataFrame(bench["runs"]).set_index("cache")
print(f"{bench['cohort']['slides']} slides, {runs.loc['cold', 'patches']:,} patches, "
      f"{bench['cohort']['source_bytes'] / 1e9:.1f} GB of float16 in, {bench['cohort']['written_bytes'] / 1e9:.1f} GB "
      "of float32 out")
runs[["seconds", "read_mb_s", "write_mb_s", "patches_per_s"]].assign(
    load_average=[round(v[0], 1) for v in runs["load_average_before"]],
    disk_write_mb_s=bench["disk_sequential"]["write_mb_s"])

# %% [markdown]
# "cold" is with the source files dropped from the page cache first, "warm" a second import;
# `disk_write_mb_s` is the disk's own sequential write speed (with `fsync`), the bound for
# writing the float32 features; the load average says how busy the shared machine was.
#
# ## Several slides per patient
#
# `clinical.csv` joins a patient's slides with `;`. The bag holds them all by default:
# the regions of slide 1, then those of slide 2, with the region indices of the second
# slide offset so that no two regions share an index (the model's HIM scans regions, so a
# region must not mix slides). `--slides first` keeps only the first listed slide (for
# TCGA, usually DX1); the rule is written to `manifest.yaml` and every reader of the cohort
# follows it.

# %%
case = two[0]
bag = CohortDataset(cohort, [case], ("wsi",))[0]
per_slide = []
start = 0
for s in cohort.slide_ids(case):
    n = read_features_h5(cohort.feature_path(s)).features.shape[0]
    regions = bag.region[start:start + n]
    per_slide.append({"slide": s, "patches": n, "bag rows": f"{start}..{start + n - 1}",
                      "regions in the bag": f"{int(regions.min())}..{int(regions.max())}"})
    start += n
pd.DataFrame(per_slide)

# %%
shutil.copytree(cohorts / "blca", work / "blca_first", ignore=shutil.ignore_patterns("features"))
text = run(f"survmamba import-features {trident_src} --cohort-dir {work / 'blca_first'} --slides first", lines=4)
print("...", *[line for line in text.splitlines() if "belong to no slide" in line], sep="\n")  # the summary's end
first = load_cohort(work / "blca_first")
print("rule:", first.manifest["features"]["slides"], "| slides of", case, "in the bag:",  # NBVAL_CHECK_OUTPUT
      len(first.slide_ids(case)), "of", len(cohort.slide_ids(case)))

# %% [markdown]
# ## Back to CLAM's and TRIDENT's layouts
#
# `survmamba export-features` writes a cohort's features as CLAM's `h5_files/` or
# `pt_files/` (the `<slide_id>.pt` files SurvPath, MOTCat and MambaMIL load) or as
# TRIDENT's folder, so the peers' own code runs on exactly the features the comparison
# used. Imported back, an export gives the cohort again; that is how the first section made
# the lab's folders.

# %%
run(f"survmamba export-features {cohorts / 'blca'} --format clam-pt --out {work / 'for_survpath'}")
tree(work / "for_survpath", limit=2)

# %% [markdown]
# ## The two real slides: tiled, encoded, exported, imported
#
# The project's test data hold two real {term}`H&E` slides (an Aperio scan at 20x with its pixel
# size in the metadata, and a TCGA {term}`frozen section` without it, read as 20x). They are tiled
# into 4,096 px regions of 256 px patches and every patch is read and encoded. What matters
# here is the path, not the features, so the default encoder is the package's fixed random
# projection, which keeps this page fast on a CPU; `slide_encoder = "efficientnet-lite0"`
# gives ImageNet features (the [real-data results](19_real_data_results.py) show them; the
# paper's CTransPath needs weights users bring, see the reproduction guide). The two slides
# then form a two-patient cohort (their survival values here are placeholders, two deaths: a
# training fold without a death is refused, since the time bins are fitted on the deaths), which is
# exported to TRIDENT's and CLAM's layouts and imported back.

# %%
slides = [(data_root / "wsi" / name, kwargs) for name, kwargs in SLIDES]
have_slides = all(path.is_file() for path, _ in slides)
if not have_slides:
    print(f"the real slides are not at {os.path.relpath(data_root, project_root)}/wsi: this part is skipped "
          "(get them with `survmamba fetch-tcga --cohort blca --out DATA`, see data_manifests/README.md)")
else:
    real = work / "real"
    grids, ids = [], []
    for path, kwargs in slides:
        grid = tile_slide(path, work / "tiles", overview=False, progress=False, **kwargs)
        extract_slide_features(grid.coords_path, real / "features", encoder=slide_encoder, device="cpu",
                               progress=False)
        grids.append(grid)
        ids.append(grid.slide_id)
    table = pd.DataFrame({"case_id": ["REAL-1", "REAL-2"], "slide_id": ids, "survival_months": [12.0, 30.0],
                          "event": [1, 1]})
    write_clinical(real, table)
    write_folds(real, make_folds(table, k=2, seed=seed))
    write_manifest(real, {"format_version": 1, "name": "two-real-slides", "cohort": "REAL", "source": "slides",
                          "n_cases": 2, "n_folds": 2, "modalities": ["wsi"],
                          "features": {"encoder": slide_encoder, "n_slides": 2,
                                       "width": read_features_h5(real / "features" / f"{ids[0]}.h5").features.shape[1]}})
    display(pd.DataFrame([{"slide": g.slide_id, "mpp": round(g.scale.mpp, 3), "from": g.scale.mpp_source,
                           "patch (level 0)": g.patch_size_level0, "region (level 0)": g.region_size_level0,
                           "patches": g.n_patches, "regions": g.n_regions} for g in grids]))

# %%
if have_slides:
    back = {}
    for fmt in ("trident", "clam-h5"):
        run(f"survmamba export-features {real} --format {fmt} --out {work / ('real_' + fmt)}")
        dest = work / f"real_back_{fmt}"
        shutil.copytree(real, dest, ignore=shutil.ignore_patterns("features"))
        if fmt == "trident":
            run(f"survmamba import-features {next((work / 'real_trident').glob('*/features_*'))} --cohort-dir {dest}")
        else:
            out = work / "real_clam-h5"
            run(f"survmamba import-features {out / 'h5_files'} --cohort-dir {dest} --patches-dir {out / 'patches'} "
                f"--magnification {out / 'slides.csv'} --encoder {slide_encoder}")
        back[fmt] = same_features(load_cohort(real), load_cohort(dest))
    same_regions = all(np.array_equal(read_features_h5(dest / "features" / f"{g.slide_id}.h5").region, g.region)
                       for g in grids)
    print("real slides, import(export) equals the cohort:", back, "| regions equal the tiler's:", same_regions)

# %% [markdown]
# ## Step 3: the run and its report
#
# The cohort folder is now complete (`survmamba validate` lists any problem). The per-cohort
# run is the [training chapter](12_training.py) executed with papermill; its `data_root`
# is the folder that holds `blca/`. For the paper's settings on a GPU:
#
# ```bash
# papermill notebooks/12_training.ipynb runs/papermill/BLCA/12_training.ipynb --cwd notebooks \
#     -p cohort BLCA -p data_root $PWD/cohorts -p folds None -p epochs 20 -p dim 512 \
#     -p batch_size 1 -p max_patches None -p lr 0.0002 -p threads None \
#     -p out_dir $PWD/runs/papermill/BLCA/run
# survmamba report runs/papermill/BLCA/run --out runs/papermill/report
# ```
#
# Here, to show the files it leads to, the same engine runs one fold for one epoch at a
# tiny width on this 40-patient cohort (`survmamba cv`, which the notebook calls through
# the same function), and `survmamba report` turns the run into its tables. A result of
# one epoch on 32 synthetic patients says nothing about the model; the point is the path.

# %%
run(f"survmamba validate {cohorts / 'blca'}")
run(f"survmamba cv --cohort-dir {cohorts / 'blca'} --model survmamba --dim 16 --set d_state=4 --epochs 1 "
    f"--folds 0 --batch-size 8 --max-patches 32 --lr 0.001 --seed {seed} --device cpu --threads 1 --quiet "
    f"--out {work / 'runs' / 'blca_survmamba'}")
# with 8 validation patients some bootstrap resamples hold no comparable pair: the report skips them and says so
warnings.filterwarnings("ignore", message="bootstrap_ci: skipped")
run(f"survmamba report {work / 'runs' / 'blca_survmamba'} --out {work / 'report'} --n-boot 200 --n-perm 200",
    lines=10)
print("report files:", ", ".join(sorted(p.name for p in (work / "report").iterdir() if not p.name.startswith("."))))

# %% [markdown]
# ## Summary
#
# * `survmamba import-tcga` makes the cohort folder from the clinical and RNA tables;
#   `survmamba fetch-tcga` downloads the public ones and writes only files whose SHA-256 is
#   the one pinned in `data_manifests/public_inputs.yaml`.
# * `survmamba import-features` adds the features of CLAM (`h5_files/` or `pt_files/`, with
#   `--patches-dir` and `--magnification`) or TRIDENT (`features_<encoder>/`, nothing else
#   needed), checks every slide and lists those without a file. What no file states it does
#   not guess, and a bad slide stops the import before anything is written.
# * Regions are the paper's 4,096 px at 20x, 8,192 level-0 pixels on a 40x scan: the same
#   tissue. A patch belongs to the region that holds its centre.
# * A patient's slides are joined by `;`; the bag holds all of them (slide 1's regions
#   first, slide 2's numbered after them) or, with `--slides first`, the first.
# * `survmamba export-features` hands the same features to CLAM- or TRIDENT-based code.
#
# ## Exercises

# %% [markdown]
# **Exercise 1 (the same tissue at 40x).** The tissue of the patch grid above, scanned at
# 40x, has the level-0 coordinates `coords_40x` (twice `coords_20x`), and its patches, 256 px
# at 20x, are read from that scan. Compute the patch side `p0_40x` and the region side
# `r0_40x` in level-0 pixels, and the region of every patch, `region_40x` (an array with one
# index per patch, numbered as `assign_regions` numbers them). Are they the regions of the
# 20x scan?

# %% tags=["stub", "remove-cell"]
# Your answer
p0_40x = None        # patch side in level-0 pixels of the 40x scan
r0_40x = None        # region side (the paper's 4,096 px at 20x) in level-0 pixels of the 40x scan
region_40x = None    # (P,) region index of each patch of coords_40x

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# A 40x scan has twice as many pixels per millimetre as a 20x one: a patch is
# $256 \cdot 40 / 20 = 512$ level-0 pixels and a region $4096 \cdot 40 / 20 = 8192$
# (`region_size_level0(40)`). Centres and region sides both double, so every patch falls in
# the region it had on the 20x scan: the paper's region is a piece of tissue (about 2 mm), not
# a number of pixels. Taking 4,096 level-0 pixels on a 40x scan would make regions of a
# quarter of the tissue, and a cohort that mixes 20x and 40x scans would mix two region sizes.
# :::

# %% tags=["solution"]
p0_40x = 256 * 40 // 20
r0_40x = region_size_level0(40)
region_40x = assign_regions(coords_40x, p0_40x, r0_40x)
print(f"40x: patches of {p0_40x} and regions of {r0_40x} level-0 px; {region_40x.max() + 1} regions; "
      f"the regions of the 20x scan: {np.array_equal(region_40x, region_20x)}")

# %% tags=["check"]
assert p0_40x == 512, f"p0_40x: 256 px at 20x are how many pixels of a 40x scan? (not {p0_40x!r})"
assert r0_40x == region_size_level0(40), f"r0_40x: 4,096 px at 20x are how many pixels of a 40x scan? (not {r0_40x!r})"
assert isinstance(region_40x, np.ndarray) and region_40x.shape == (len(coords_40x),), \
    "region_40x should be an array with one region index per patch"
assert np.array_equal(region_40x, assign_regions(coords_40x, 512, region_size_level0(40))), \
    "region_40x: the region that holds each patch's centre, numbered row-major"
assert np.array_equal(region_40x, region_20x), "the same tissue should fall in the same regions at 40x and 20x"
print("regions at 40x checked")

# %% [markdown]
# **Exercise 2 (a bag by hand).** Build the region index of the bag of patient `case` (two
# slides), `bag_region`, from the slides' feature files (`read_features_h5(...).region`) in bag
# order (`cohort.slide_ids(case)`), the way `CohortDataset` does: each slide's regions
# numbered from 0, the second slide's after the first slide's last. Why must the two slides
# share no region index?

# %% tags=["stub", "remove-cell"]
# Your answer
bag_region = None    # (n,) region index of every patch of case's bag, slide 1's patches first

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# Read the slides in bag order and add to each slide's region indices the number of regions
# of the slides before it. HIM scans the patches of each region, then the regions: a region
# index shared by two slides would make one "region" of tissue from two slides, with patches
# that were never neighbours.
# :::

# %% tags=["solution"]
parts, offset = [], 0
for slide in cohort.slide_ids(case):
    _, r = np.unique(read_features_h5(cohort.feature_path(slide)).region, return_inverse=True)   # 0..R_s-1
    parts.append(r.reshape(-1) + offset)
    offset += int(r.max()) + 1
bag_region = np.concatenate(parts)
print(f"{case}: {len(bag_region)} patches in {bag_region.max() + 1} regions, "
      f"{' + '.join(str(len(part)) for part in parts)} patches from its slides")

# %% tags=["check"]
assert isinstance(bag_region, np.ndarray), "bag_region should be a numpy array of region indices"
bag_ = CohortDataset(cohort, [case], ("wsi",))[0]
assert np.array_equal(bag_region, bag_.region.numpy()), \
    "bag_region is not the bag's region index: slide 1's regions from 0, then slide 2's after them"
n1_ = read_features_h5(cohort.feature_path(cohort.slide_ids(case)[0])).features.shape[0]
assert not set(bag_region[:n1_]) & set(bag_region[n1_:]), "the two slides share a region index"
print("bag checked")

# %% [markdown]
# **Exercise 3 (a table that is not the release).** A colleague hands you BLCA's tables:
# here, the lab's `rna_clean.csv` and `clinical.csv`. Lay them out as a mirror of the data
# root (`MIRROR/tcga/xena/blca/`), fetch BLCA from it with `fetch_tcga(["blca"], OUT,
# mirror=MIRROR, include_wsi=False)` (what `survmamba fetch-tcga --mirror` runs), and store
# the message of its refusal as `refusal` and the files then under `OUT` as `written`. What
# does the message name, and why is a copy with other bytes refused?

# %% tags=["stub", "remove-cell"]
# Your answer
refusal = None       # the message of the error fetch_tcga raises
written = None       # the files under OUT afterwards (paths relative to OUT)

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# The first file, `rna_clean.csv`, is refused with its path, its SHA-256 and the pinned one,
# and nothing is written for it. Other bytes are another version of the table (another
# release, a re-export, an edit): other patients, genes or splits, so other numbers than the
# ones compared with the paper. A deliberate other version is fetched with `--checksums FILE`,
# a YAML file of the hashes to accept instead: the choice is explicit and written down.
# :::

# %% tags=["solution"]
mirror = work / "mirror"
(mirror / "tcga" / "xena" / "blca").mkdir(parents=True)
for name in ("rna_clean.csv", "clinical.csv"):
    shutil.copy(lab / name, mirror / "tcga" / "xena" / "blca" / name)
fetched = work / "fetched"
try:
    fetch_tcga(["blca"], fetched, mirror=mirror, include_wsi=False)
    refusal = ""
except ChecksumError as err:
    refusal = str(err)
written = sorted(p.relative_to(fetched).as_posix() for p in fetched.rglob("*") if p.is_file())
print(refusal.replace(str(work), "<work>"))
print("files written:", written)

# %% tags=["check"]
assert isinstance(refusal, str) and refusal, "refusal should be the message of the ChecksumError fetch_tcga raises"
pin_ = next(e.sha256 for e in read_public_inputs() if e.path == "tcga/xena/blca/rna_clean.csv")
assert "tcga/xena/blca/rna_clean.csv" in refusal and pin_ in refusal, "the refusal should name the file and its pinned SHA-256"
assert sha256_file(lab / "rna_clean.csv") in refusal, "the refusal should name the SHA-256 of the copy it was given"
assert written == [], f"written: fetch-tcga writes a file only when its hash is the pinned one, not {written!r}"
print("refusal checked")

# %% [markdown]
# **Exercise 4 (a slide without a file).** Copy the TRIDENT folder `trident_src`, delete the
# file of the second slide of patient `case`, and import the copy into a fresh copy of the
# RNA-only cohort (`cohorts / "blca"` without its `features/`): first with `--strict`, then
# without. Store the message of the `--strict` refusal as `strict_refusal`, the manifest's
# `features.missing` as `missing` and the slides of `case`'s bag as `bag_slides`.

# %% tags=["stub", "remove-cell"]
# Your answer
strict_refusal = None    # the message of the import with --strict
missing = None           # features.missing of manifest.yaml after the import without --strict
bag_slides = None        # the slides of case's bag after it

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# With `--strict` a slide of `clinical.csv` without a file stops the import, which names the
# slide and its case and writes nothing. Without it the summary lists the slide as having no
# source file, `features.missing` records it, and the patient's bag holds the first slide
# only (`Cohort.slide_ids` reads the manifest); a patient left with no slide at all would be
# a warning. `--strict` is for a cohort that must be complete, e.g. one compared with a paper.
# :::

# %% tags=["solution"]
partial_src = work / "partial_src"
shutil.copytree(trident_src, partial_src)
(partial_src / f"{cohort.slide_ids(case)[1]}.h5").unlink()
partial = work / "blca_partial"
shutil.copytree(cohorts / "blca", partial, ignore=shutil.ignore_patterns("features"))
try:
    run(f"survmamba import-features {partial_src} --cohort-dir {partial} --strict")
except RuntimeError as err:
    strict_refusal = str(err)
summary = run(f"survmamba import-features {partial_src} --cohort-dir {partial}", lines=1)
print(next(line for line in summary.splitlines() if "no source file" in line))
missing = load_cohort(partial).manifest["features"]["missing"]
bag_slides = load_cohort(partial).slide_ids(case)
print("features.missing:", missing, "| bag of", case, ":", bag_slides)

# %% tags=["check"]
dx1_, dx2_ = cohort.slide_ids(case)
assert isinstance(strict_refusal, str) and dx2_ in strict_refusal, \
    "strict_refusal should be the message of the --strict import, which names the slide without a file"
assert "nothing was written" in strict_refusal, "the --strict import should refuse before writing anything"
assert missing == [dx2_], f"missing: the manifest's features.missing lists the slide without a file ({dx2_})"
assert bag_slides == [dx1_], f"bag_slides: the bag keeps the slide that has a file ({dx1_})"
print("import of a partial folder checked")

# %%
shutil.rmtree(work)
