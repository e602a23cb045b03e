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
# # Training one cohort
#
# :::{admonition} Learning objectives
# :class: tip
# After this chapter you can
# 1. describe the cross-validation protocol of the paper's Tables 1 and 3 and what is fitted on the training fold only;
# 2. set up a run with one `ExperimentConfig` (or papermill parameters) and find its results on disk;
# 3. read loss curves and per-fold c-indices, and say why the last epoch, not the best, is evaluated.
# :::
#
# This chapter trains and evaluates one model on one {term}`cohort` with k-fold {term}`cross-validation`,
# the protocol of the paper's Tables 1 and 3: each fold's model is trained on the other
# folds' patients and scored (c-index) on its own. It is also the notebook that
# `make cohorts` runs with papermill, once per cohort, with the parameters of the next
# cell; in the book it runs on a synthetic cohort of the size of TCGA-BLCA with settings
# small enough for a laptop CPU.
#
# Everything the run depends on goes into one frozen `ExperimentConfig`, which is
# written as `config.json` next to the results; the command line
# (`survmamba cv ...`) builds the same object.

# %% tags=["parameters"]
cohort = "BLCA"            # BRCA, BLCA, COADREAD, UCEC or LUAD
data_root = None           # folder holding <cohort lower case>/ in the cohort layout (data_manifests/README.md);
                           # None: a synthetic cohort with as many patients as the TCGA cohort
synthetic_scale = "tiny"   # without data_root: tiny, course or paper (chapter "The synthetic cohorts")
model = "survmamba"        # a registry name (`survmamba models`)
variant = "F"              # SurvMamba ablation model of Table 3 (F: the full model); None for other models
bidirectional = True       # False: forward-only Mamba (Fig. 3)
folds = [0]                # fold indices to run; None for all folds
epochs = 3                 # the default is 20 (MCAT/SurvPath; the paper does not say)
dim = 32                   # model width D; the paper's is 512 (None: the model's default)
batch_size = 16            # the paper's is 1
max_patches = 64           # patches per patient drawn each epoch; None: all (the paper)
lr = 1e-3                  # the paper's is 2e-4 (too slow for a few epochs: see below)
device = "auto"            # auto, cpu, cuda or cuda:N
precision = "fp32"         # fp32, tf32 or bf16 (autocast; parameters, SSM state and loss stay float32)
cuda_graphs = False        # True: replay each training step from a CUDA graph (CUDA only, batch_size as given)
threads = 1                # torch CPU threads (None: torch's default)
seed = 0
out_dir = None             # run directory; None: a temporary folder removed at the end
jobs_per_gpu = None        # folds trained at once per GPU (or CPU workers) through Dask, as `survmamba grid` does;
                           # None: one after the other in this kernel
time_limit = None          # seconds: start no epoch that would end later (a rerun resumes); None: no limit

# %%
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

# tqdm's notebook progress bars need ipywidgets; the runs here print one line per fold instead
from survmamba_lite.data import make_synthetic_cohort
from survmamba_lite.experiment import ExperimentConfig
from survmamba_lite.experiment.cv import cv_result
from survmamba_lite.experiment.grid import run_grid
from survmamba_lite.experiment.jobs import JobOptions

print(f"seed: {seed}, cohort: {cohort}, model: {model}, variant: {variant}, bidirectional: {bidirectional}")

# %% [markdown]
# ## The cohort
#
# With `data_root`, the cohort is read from `data_root/<cohort>/` (e.g. `tcga_blca/`
# written by `survmamba import-tcga` and `survmamba extract`; see the
# [reproduction guide](../book/reproduce.md)). Without it, the package writes a synthetic
# cohort of the same number of patients, with censoring like the real cohort's and a planted
# multi-grained signal, in a few seconds: the chapter [The synthetic cohorts](08_synthetic_cohorts.py)
# says what it draws, which modality carries the signal, and what a model can reach on it.

# %%
# a temporary folder, or next to the run directory when out_dir is given (kept for `survmamba report`)
workdir = Path(tempfile.mkdtemp(prefix="survmamba_train_")) if out_dir is None else Path(out_dir).parent
if data_root is None:
    cohort_dir = workdir / f"synthetic_{cohort.lower()}_{synthetic_scale}_seed{seed}"
    if not (cohort_dir / "manifest.yaml").is_file():        # same seed, same files: reuse one made earlier
        make_synthetic_cohort(cohort, synthetic_scale, seed=seed, out=cohort_dir)
    print(f"no data_root: synthetic {cohort} cohort ({synthetic_scale} scale) in <work folder>/{cohort_dir.name}")
else:
    candidates = [Path(data_root) / cohort.lower(), Path(data_root) / f"tcga_{cohort.lower()}", Path(data_root)]
    found = [p for p in candidates if (p / "manifest.yaml").is_file()]
    if not found:
        raise FileNotFoundError(f"no cohort folder for {cohort} under {data_root}: looked for manifest.yaml in "
                                f"{', '.join(map(str, candidates))}. Build one with `survmamba import-tcga` "
                                "(see book/reproduce.md), or leave data_root=None for a synthetic cohort")
    cohort_dir = found[0]
    print(f"cohort folder: {cohort_dir}")

# %% [markdown]
# ## The configuration
#
# `ExperimentConfig.from_params` takes the flat namespace of the parameter cell: names of
# config fields set those fields, every other name is a model option (`variant`,
# `bidirectional`, `dim`); an option set to `None` keeps the model's default, so the same
# cell runs the baselines (`model="mcat"`, `variant=None`).

# %%
run_dir = Path(out_dir) if out_dir is not None else workdir / "run"
config = ExperimentConfig.from_params(
    model=model, cohort_dir=str(cohort_dir), out_dir=str(run_dir), folds=folds, epochs=epochs, lr=lr,
    batch_size=batch_size, max_patches=max_patches, device=device, threads=threads, seed=seed,
    precision=precision, cuda_graphs=cuda_graphs, variant=variant, bidirectional=bidirectional if variant is not None else None, dim=dim)
# the temporary work folder is shown as <work folder> (its name changes with every run)
pd.Series(config.to_dict(), name="value").to_frame().replace(str(workdir), "<work folder>", regex=True)

# %% [markdown]
# What is fixed by the paper (RAdam, weight decay $5 \times 10^{-3}$, the discrete-time
# NLL over $T = 4$ bins) is the config's default; what differs here is set in the
# parameter cell and shows up in `config.json`. Time bins and the RNA normalisation are
# fitted on each fold's training patients only.
#
# **Why a higher learning rate for short runs.** With RAdam at the paper's
# $2 \times 10^{-4}$ and batch size 1, a freshly initialised model first spends epochs
# fitting the baseline hazard, and until its weights have moved far enough it ranks
# patients the way its random initialisation does. On the course-scale synthetic BLCA, at
# batch size 1, ABMIL stayed below a random ranking for most of a long run at the paper's
# rate and was well above it after a dozen epochs at $10^{-3}$; that rate was then chosen on
# a separate pilot cohort (the measurements are in `results/course_blca/README.md`). The
# committed course-scale runs (`results/course_blca/`: course scale, five folds, eight
# epochs, $D = 32$, batch size 1, $10^{-3}$) use it, and full runs keep the paper's value.
#
# This page's own run is smaller still, so that the book builds in seconds: the *tiny*
# synthetic scale, one fold, three epochs, and batches of 16 patients, that is 16 times
# fewer optimiser steps per epoch than at batch size 1, with the same $10^{-3}$. It shows the
# pipeline working end to end, not a tuned model. The course setting is
# `-p synthetic_scale course -p batch_size 1 -p epochs 8 -p folds None` (about as long on
# a laptop as the course run's time in `results/course_blca/times.log`).
#
# ## Cross-validation
#
# `run_grid` (the engine of `survmamba cv` and `survmamba grid`) trains each fold as one job,
# several at once with `jobs_per_gpu`, writes a checkpoint every epoch (a killed run resumes
# where it stopped), predictions for the fold's validation patients and their metrics, and
# a timing table (wall time, cases per second, GPU use).

# %%
import time

deadline = None if time_limit is None else time.time() + time_limit
grid = run_grid([config], run_dir.parent, serial=jobs_per_gpu is None, jobs_per_gpu=jobs_per_gpu or 1,
                workers=jobs_per_gpu, options=JobOptions(deadline=deadline),
                log=lambda line: print(str(line).replace(str(workdir), "<work folder>")),
                spec={"cohort_dirs": [str(cohort_dir)], "models": [model], "notebook": "12_training"})
if grid.counts.get("failed") or grid.counts.get("paused"):
    raise RuntimeError(f"jobs {grid.counts}: see the messages above; run the notebook again to resume")
result = cv_result(config)
print(f"results in {run_dir.name}/: " + ", ".join(sorted(p.name for p in result.out_dir.iterdir())))
grid.timing[["label", "folds_done", "epochs", "wall_seconds", "fold_seconds", "cases_per_second",
             "gpu_utilization", "device", "features"]].round(2)

# %% [markdown]
# ## Loss curves
#
# Training and validation loss (the NLL per patient) and the validation c-index after
# every epoch. The validation curves are for looking, not for choosing: the model of the
# *last* epoch is the one evaluated (choosing the best epoch on the validation fold would
# tune on the fold that is then reported).

# %% mystnb={"figure": {"caption": "Training and validation loss (NLL per patient, left) and validation c-index (right) after every epoch. In the book the cohort is synthetic (the size of TCGA-BLCA, width 32, three epochs); with `data_root` it is the real cohort.", "name": "fig-training-curves"}}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
for m in result.folds:
    ep = np.arange(1, len(m["train_loss"]) + 1)
    axes[0].plot(ep, m["train_loss"], "o-", label=f"fold {m['fold']} train")
    axes[0].plot(ep, m["val_loss"], "s--", label=f"fold {m['fold']} validation")
    axes[1].plot(ep, m["val_c_index"], "o-", label=f"fold {m['fold']}")
axes[0].set_ylabel("NLL per patient")
axes[1].set_ylabel("validation c-index")
axes[1].axhline(0.5, color="grey", lw=0.8, ls=":")
for ax in axes:
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))     # whole epochs only
    ax.legend(frameon=False, fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Fold results
#
# Per fold: Harrell's c-index (the paper's metric), the time-dependent c-index and the
# integrated Brier score on the validation patients (both defined in the
# {ref}`survival primer <primer-td-metrics>`), and the training time.

# %% mystnb={"figure": {"caption": "Harrell's c-index of each fold's model on its validation patients; the dotted line is a random ranking (0.5). The title names the cohort (synthetic in the book).", "name": "fig-training-folds"}}
per_fold = pd.DataFrame([{k: m.get(k) for k in ("fold", "n_train", "n_val", "n_val_events", "c_index",
                                                "c_index_td", "ibs", "seconds")} for m in result.folds])
fig, ax = plt.subplots(figsize=(max(3.5, 1.2 * len(per_fold) + 1.5), 3.2))
ax.bar(per_fold["fold"].astype(str), per_fold["c_index"], color="#2D6FB7")
ax.axhline(0.5, color="grey", lw=0.8, ls=":")
ax.set_xlabel("fold")
ax.set_ylabel("c-index")
ax.set_ylim(0.3, 0.9)
ax.set_title(f"{result.summary['label']} on {result.summary['cohort_name']}")
plt.tight_layout()
plt.show()

# %%
per_fold.round(3)

# %%
c = result.summary["c_index"]
print(f"c-index over {c['n']} fold(s): mean {c['mean']:.3f}" + (f" ± {c['std']:.3f}" if c["std"] is not None else ""))
print(f"pooled out-of-fold c-index: {result.summary['oof_c_index']:.3f}")

# %% [markdown]
# With the book's settings (a width of 32, three epochs, one fold) the numbers say little
# about the model: the point is the pipeline. What a model could reach is known on a
# synthetic cohort: the generator writes each patient's planted log-hazard
# (`synthetic_truth.csv`), and its own c-index on the same validation patients is the
# ceiling set by the noise of the survival times. The chapter
# [The synthetic cohorts](08_synthetic_cohorts.py) measures this and simpler references (a
# penalised Cox model on the RNA, on mean patch features) on all five folds at the course
# scale.

# %%
truth_file = cohort_dir / "synthetic_truth.csv"
if truth_file.is_file():
    truth = pd.read_csv(truth_file).set_index("case_id")
    from survmamba_lite.survival import concordance_index

    rows = []
    for m in result.folds:
        pred = pd.read_csv(run_dir / f"fold_{m['fold']}" / "predictions.csv").set_index("case_id")
        rows.append({"fold": m["fold"], "model": m["c_index"],
                     "planted log-hazard": concordance_index(pred["time"], truth.loc[pred.index, "true_risk"], pred["event"])})
    print("c-index on the validation patients (the planted log-hazard is the ceiling):")
    display(pd.DataFrame(rows).set_index("fold").round(3))
else:
    print("a real cohort: no planted log-hazard to compare with")

# %% [markdown]
# To reproduce the paper's protocol, run all five folds with its settings, e.g. on a GPU:
#
# ```bash
# papermill notebooks/12_training.ipynb runs/papermill/BLCA/12_training.ipynb \
#     -p data_root /data/cohorts -p cohort BLCA -p folds None -p epochs 20 -p dim 512 \
#     -p batch_size 1 -p max_patches None -p lr 0.0002 -p threads None \
#     -p out_dir runs/papermill/BLCA/run
# ```
#
# or `make cohorts` for all five cohorts (see the [reproduction guide](../book/reproduce.md)).

# %% [markdown]
# ## Summary
#
# * One `ExperimentConfig` describes a run; it is written as `config.json` with the results,
#   and the same parameters drive the notebook (papermill), the command line and `make cohorts`.
# * Each fold's model is trained on the other folds and scored on its own; time bins and RNA
#   normalisation are fitted on the training patients of the fold.
# * The model of the last epoch is evaluated; validation curves are for looking, not choosing.
#
# ## Exercises

# %% [markdown]
# **Exercise 1 (who is in a fold).** From fold 0's record `result.folds[0]`, compute the
# number of patients in the cohort (`n_cohort`, training plus validation) and the share of
# them in the validation set (`val_share`). Why is it about a fifth?

# %% tags=["stub", "remove-cell"]
# Your answer
n_cohort = None    # fold 0's training plus validation patients
val_share = None   # fold 0's validation patients / n_cohort

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# Five folds partition the patients: each is validated once and trained on four times, so
# `n_train + n_val` is the cohort size and `n_val` about 20 % of it.
# :::

# %% tags=["solution"]
m0 = result.folds[0]
n_cohort = m0["n_train"] + m0["n_val"]
val_share = m0["n_val"] / n_cohort
print(f"fold {m0['fold']}: {m0['n_train']} train + {m0['n_val']} validation = {n_cohort} patients "
      f"({val_share:.0%} validation)")

# %% tags=["check"]
n_patients = len(pd.read_csv(cohort_dir / "clinical.csv"))
assert isinstance(n_cohort, int) and n_cohort == n_patients, \
    f"n_cohort should be the number of patients of the cohort (clinical.csv), not {n_cohort!r}"
assert isinstance(val_share, float) and abs(val_share * n_cohort - result.folds[0]["n_val"]) < 1e-9, \
    "val_share should be fold 0's validation patients divided by n_cohort"
assert 0.15 < val_share < 0.25, "five folds: the validation share should be near a fifth"
print("n_cohort and val_share checked")

# %% [markdown]
# **Exercise 2 (the evaluated model).** Which epoch's model (counting from 1) produced fold
# 0's reported c-index? Store it as `evaluated_epoch` and check it against the curve
# `result.folds[0]["val_c_index"]`.

# %% tags=["stub", "remove-cell"]
# Your answer
evaluated_epoch = None     # 1, 2, ...: the epoch whose model gave the reported c-index

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# The last one: the reported c-index is the last point of the validation c-index curve,
# not its maximum (choosing the maximum would tune on the reported fold).
# :::

# %% tags=["solution"]
curve = result.folds[0]["val_c_index"]
evaluated_epoch = len(curve)
print(f"reported c-index {result.folds[0]['c_index']:.4f}; curve: {np.round(curve, 4).tolist()}")

# %% tags=["check"]
curve_ = result.folds[0]["val_c_index"]
assert isinstance(evaluated_epoch, int) and 1 <= evaluated_epoch <= len(curve_), \
    f"evaluated_epoch should be an epoch number from 1 to {len(curve_)}, not {evaluated_epoch!r}"
assert abs(result.folds[0]["c_index"] - curve_[evaluated_epoch - 1]) < 1e-9, \
    f"the reported c-index is not the validation c-index after epoch {evaluated_epoch}"
assert evaluated_epoch == config.epochs, "which epoch's weights does the run keep when it ends?"
print("evaluated_epoch checked")

# %%
if out_dir is None:
    shutil.rmtree(workdir)                      # the synthetic cohort and the run were temporary
else:
    print(f"kept {run_dir}")
