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
# # Survival analysis: Kaplan–Meier curves from out-of-fold predictions
#
# The paper's Fig. 4 splits the patients of each cohort into a low- and a high-risk group
# at the median predicted risk and compares the groups' Kaplan–Meier curves with a
# log-rank test. The prediction for each patient must come from a model that did not see
# that patient: with k-fold cross-validation every patient is in exactly one validation
# fold, so pooling the validation predictions of all folds ("out-of-fold") scores every
# patient once.
#
# Give `run_dir` a finished `survmamba cv` run (e.g. one of `make cohorts`); without it
# this chapter runs a quick five-fold cross-validation on a synthetic cohort first.

# %% tags=["parameters"]
run_dir = None            # a run directory of `survmamba cv` with all folds; None: a quick synthetic run
cohort = "BLCA"
model = "survmamba"
seed = 0
dim = 16
epochs = 1
max_patches = 32
batch_size = 32
lr = 2e-3
threads = 1

# %%
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from lifelines import KaplanMeierFitter
from lifelines.statistics import logrank_test as lifelines_logrank

from survmamba_lite.data import make_synthetic_cohort
from survmamba_lite.experiment import ExperimentConfig, run_cv
from survmamba_lite.experiment.report import extra_metrics, fig4_km, load_run
from survmamba_lite.survival import concordance_index, logrank_test, plot_km_by_risk, split_by_median_risk

print(f"seed: {seed}, run_dir: {run_dir}")

# %%
workdir = Path(tempfile.mkdtemp(prefix="survmamba_km_"))
if run_dir is None:
    cohort_dir = make_synthetic_cohort(cohort, "tiny", seed=seed, out=workdir / "cohort")
    config = ExperimentConfig.from_params(
        model=model, cohort_dir=str(cohort_dir), out_dir=str(workdir / "run"), dim=dim, epochs=epochs,
        max_patches=max_patches, batch_size=batch_size, lr=lr, threads=threads, seed=seed, device="cpu")
    run_dir = run_cv(config, progress=False, log=print).out_dir
run = load_run(run_dir)
oof = run.oof
print(f"{run.label} on {run.cohort}: {len(oof)} patients from folds {sorted(int(k) for k in oof['fold'].unique())}, "
      f"{int(oof['event'].sum())} deaths")
oof[["fold", "case_id", "time", "event", "time_bin", "risk"]].head()

# %% [markdown]
# `oof_predictions.csv` holds, for every patient, the fold whose model scored it, the
# follow-up, the event, and the model's survival curve $S_0, \dots, S_{T-1}$ over the time
# bins; the risk is $-\sum_k S_k$ (minus the expected number of bins survived). Every
# patient appears once:

# %%
# NBVAL_CHECK_OUTPUT
print("each patient scored exactly once:", oof["case_id"].is_unique)
print("risk = -sum_k S_k:", np.allclose(oof["risk"], -oof.filter(regex=r"^S_\d+$").sum(axis=1)))

# %% [markdown]
# ## The median split and the log-rank test
#
# Patients above the median out-of-fold risk form the high-risk group. The log-rank test
# compares the two groups' survival over the whole follow-up; the package's
# `logrank_test` is checked here against lifelines, and the Kaplan–Meier curve of each
# group against lifelines' `KaplanMeierFitter`.

# %%
t, e, risk = oof["time"].to_numpy(), oof["event"].to_numpy(), oof["risk"].to_numpy()
high = split_by_median_risk(risk)
ours = logrank_test(t, e, high)
ref = lifelines_logrank(t[high], t[~high], e[high], e[~high])
print(f"groups: {int((~high).sum())} low-risk, {int(high.sum())} high-risk")
print(f"log-rank: statistic {ours.statistic:.4f} (lifelines {ref.test_statistic:.4f}), "
      f"p = {ours.p_value:.3g} (lifelines {ref.p_value:.3g})")
print(f"pooled out-of-fold c-index: {concordance_index(t, risk, e):.3f}")

# %%
fig, ax = plt.subplots(figsize=(5.5, 4))
plot_km_by_risk(t, e, risk, ax=ax, title=f"{run.cohort}: {run.label}, out-of-fold median split")
ax.set_xlabel("months")
for group in (False, True):                                   # lifelines' estimate drawn over ours
    KaplanMeierFitter().fit(t[high == group], e[high == group]).survival_function_.plot(
        ax=ax, ls=":", color="black", lw=0.8, legend=False)
plt.show()

# %% [markdown]
# The dotted black lines (lifelines) lie on the package's curves. With the quick
# synthetic run of the book (one epoch, width 16) the two groups are barely separated; a
# model that ranks patients well pulls the curves apart and drives the p-value down, as
# the planted risk does in the [Survival chapter](07_survival.py).
#
# ## The same figure from the report
#
# `survmamba report RUN ... --out DIR` draws this figure for every model and cohort
# (`fig4_km_<model>.png`, one panel per cohort) and a table with the log-rank statistics,
# next to the other metrics: the pooled out-of-fold c-index with a bootstrap interval,
# the time-dependent c-index and the integrated Brier score.

# %%
km_table, km_files = fig4_km([run], workdir)
print("wrote", [p.name for p in km_files])
km_table

# %%
extra = extra_metrics([run], n_boot=200, seed=seed)
extra[["label", "cohort", "n_oof", "oof_c_index", "oof_c_index_low", "oof_c_index_high", "c_index_mean",
       "c_index_td_mean", "ibs_mean"]].round(3)

# %% [markdown]
# Two caveats the paper does not discuss. The out-of-fold risks come from five different
# models, whose scales need not agree; the risk $-\sum_k S_k$ at least lives on the same
# scale $[-T, 0]$ for all of them. And a median split of pooled predictions uses a
# threshold computed from all patients' predictions, including the ones being split; a
# stricter analysis fixes each fold's threshold on its training patients
# (`split_by_median_risk(risk, threshold=...)`).

# %%
shutil.rmtree(workdir)
