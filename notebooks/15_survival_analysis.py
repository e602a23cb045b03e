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
# :::{admonition} Learning objectives
# :class: tip
# After this chapter you can
# 1. explain why Kaplan–Meier curves of a model must use out-of-fold predictions;
# 2. split patients at the median predicted risk, draw the two Kaplan–Meier curves and test them with the log-rank test;
# 3. read what a log-rank p-value and a c-index do and do not say about a model;
# 4. measure whether predicted survival curves are calibrated (D-calibration, the integrated calibration index).
# :::
#
# The paper's Fig. 4 splits the patients of each cohort into a low- and a high-risk group
# at the median predicted risk and compares the groups' Kaplan–Meier curves with a
# {term}`log-rank test`. The prediction for each patient must come from a model that did not see
# that patient: with k-fold cross-validation every patient is in exactly one validation
# fold, so pooling the validation predictions of all folds ({term}`out-of-fold <out-of-fold prediction>`) scores every
# patient once.
#
# By default this chapter reads the committed predictions of a paper-scale run:
# SurvMamba trained on the **synthetic** paper-scale BLCA cohort at the paper's width,
# {glue:text}`km_folds` folds × {glue:text}`km_epochs` epochs on a GPU
# ([The paper's grid at full scale](18_paper_scale.py) tells how).
# `cohort = "BRCA"` reads the committed BRCA-size run instead, `model` another run of the BLCA
# grid (`snn`, `abmil`, `mcat`, `motcat`, `survpath`, ...), and `run_dir` any finished
# `survmamba cv` run of your own, e.g. on a TCGA cohort. Only when the committed files are not
# in the checkout does the chapter train a quick five-fold run on a small synthetic cohort
# instead (one epoch at width 16: a model without skill, whose groups barely separate).

# %% tags=["parameters"]
run_dir = None            # a run directory of `survmamba cv` with all folds; None: the committed paper-scale run
cohort = "BLCA"           # the committed cohort read when run_dir is None: BLCA or BRCA
model = "survmamba"       # the committed run of this model (the BRCA-size grid has SurvMamba only)
seed = 0
dim = 16                  # this and below: the quick synthetic run, made only when the committed run is absent
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
from myst_nb import glue

from survmamba_lite.data import make_synthetic_cohort
from survmamba_lite.experiment import ExperimentConfig, run_cv
from survmamba_lite.experiment.report import extra_metrics, fig4_km, load_run
from survmamba_lite.survival import concordance_index, logrank_test, plot_km_by_risk, split_by_median_risk

print(f"seed: {seed}, run_dir: {run_dir}, cohort: {cohort}, model: {model}")

# %%
project_root = next(p for p in (Path.cwd(), *Path.cwd().parents) if (p / "pyproject.toml").exists())
COMMITTED = {"BLCA": Path("results/fullscale/paper/runs/blca_paper"),          # the paper-scale grid
             "BLCA_REPORT": Path("results/fullscale/paper/report"),
             "BRCA": Path("results/fullscale/survmamba_brca/runs/brca_paper")}   # the BRCA-size timing run
workdir = Path(tempfile.mkdtemp(prefix="survmamba_km_"))
committed_run = None
if run_dir is None:
    folder = COMMITTED.get(str(cohort).upper())
    candidate = None if folder is None else project_root / folder / model
    if candidate is not None and (candidate / "summary.json").is_file():
        run_dir = committed_run = candidate
        print(f"reading the committed paper-scale run {candidate.relative_to(project_root)}")
    else:
        where = f"{folder / model}: not in this checkout" if folder is not None else \
            f"no committed paper-scale run of cohort {cohort!r} (BLCA or BRCA)"
        print(f"{where}; training a quick five-fold run on the tiny synthetic {cohort} cohort instead "
              f"({epochs} epoch(s) at width {dim}: expect groups that barely separate)")
        cohort_dir = make_synthetic_cohort(cohort, "tiny", seed=seed, out=workdir / "cohort")
        config = ExperimentConfig.from_params(
            model=model, cohort_dir=str(cohort_dir), out_dir=str(workdir / "run"), dim=dim, epochs=epochs,
            max_patches=max_patches, batch_size=batch_size, lr=lr, threads=threads, seed=seed, device="cpu")
        run_dir = run_cv(config, progress=False,
                         log=lambda line: print(str(line).replace(str(workdir), "<work folder>"))).out_dir
run = load_run(run_dir)
oof = run.oof
source = "synthetic " if run.derived.get("cohort_source") == "synthetic" else ""   # titles say where the data came from
n_train = [int(len(oof) - (oof["fold"] == int(k)).sum()) for k in run.summary["folds"]]
print(f"{run.label} on {source}{run.cohort} ({run.derived.get('cohort_name', '')}): {len(oof)} patients from folds "
      f"{sorted(int(k) for k in oof['fold'].unique())}, {int(oof['event'].sum())} deaths; "
      f"{run.config.epochs} epochs on {min(n_train)}-{max(n_train)} training patients per fold")
glue("km_n", len(oof), display=False)
glue("km_deaths", int(oof["event"].sum()), display=False)
glue("km_folds", len(run.summary["folds"]), display=False)
glue("km_epochs", int(run.config.epochs), display=False)
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
c_pooled = concordance_index(t, risk, e)
print(f"groups: {int((~high).sum())} low-risk, {int(high.sum())} high-risk")
print(f"log-rank: statistic {ours.statistic:.4f} (lifelines {ref.test_statistic:.4f}), "
      f"p = {ours.p_value:.3g} (lifelines {ref.p_value:.3g})")
print(f"pooled out-of-fold c-index: {c_pooled:.3f}")
assert abs(ours.statistic - ref.test_statistic) < 1e-9
deaths_by_group = {g: int(e[high == g].sum()) for g in (False, True)}
glue("km_n_low", int((~high).sum()), display=False)
glue("km_n_high", int(high.sum()), display=False)
glue("km_deaths_low", deaths_by_group[False], display=False)
glue("km_deaths_high", deaths_by_group[True], display=False)
glue("km_logrank_stat", float(ours.statistic), display=False)
glue("km_logrank_p", float(ours.p_value), display=False)
glue("km_c_index", float(c_pooled), display=False)
glue("km_discordant", float(1 - c_pooled), display=False)

# %% mystnb={"figure": {"caption": "Kaplan\u2013Meier curves of the patients above and below the median out-of-fold risk, with the log-rank p-value in the title; dotted black: lifelines' estimate of the same curves. In the book: SurvMamba at the paper's width on the synthetic paper-scale BLCA cohort, read from the committed predictions.", "name": "fig-km-oof"}}
fig, ax = plt.subplots(figsize=(5.5, 4))
plot_km_by_risk(t, e, risk, ax=ax, title=f"{source}{run.cohort}: {run.label}, out-of-fold median split")
for group in (False, True):                                   # lifelines' estimate drawn over ours
    KaplanMeierFitter().fit(t[high == group], e[high == group]).survival_function_.plot(
        ax=ax, ls=":", color="black", lw=0.8, legend=False)
ax.set_xlabel("months")                                       # after lifelines' plot, which sets "timeline"
ax.set_ylabel("survival probability")
plt.show()

# %% [markdown]
# The dotted black lines (lifelines) lie on the package's curves. In the book's run the
# {glue:text}`km_n_high` patients above the median had {glue:text}`km_deaths_high` of the
# {glue:text}`km_deaths` deaths and the {glue:text}`km_n_low` below it
# {glue:text}`km_deaths_low`: the log-rank statistic is {glue:text}`km_logrank_stat:.1f` on one
# degree of freedom, p = {glue:text}`km_logrank_p:.1e`, and the pooled out-of-fold c-index
# {glue:text}`km_c_index:.3f`. A p-value that small says that the two halves differ, not that
# the model ranks every patient well: that c-index still puts a share
# {glue:text}`km_discordant:.2f` of the comparable pairs in the wrong order (ties counted as
# half), and with {glue:text}`km_n` patients a modest separation of two halves is already
# significant. A model without skill leaves the two curves together (Exercise 1 draws random
# halves); the [Survival chapter](11_survival.py) draws the same split by the planted
# log-hazard of a synthetic cohort, the ranking a model would have to learn.

# %%
if committed_run is not None and str(cohort).upper() == "BLCA":    # the same split in the grid's report
    committed = pd.read_csv(project_root / COMMITTED["BLCA_REPORT"] / "fig4_km_logrank.csv")
    row = committed[committed["label"] == run.label].iloc[0]
    print(f"report's fig4_km_logrank.csv for {run.label}: statistic {row['logrank_statistic']:.4f}, "
          f"p = {row['logrank_p']:.3g}, groups {row['n_low']} / {row['n_high']}")
    assert abs(row["logrank_statistic"] - ours.statistic) < 1e-9 and row["n_high"] == int(high.sum())
    assert ours.p_value < 1e-3, "the text above calls this p-value small"
else:
    print("not the committed BLCA run: no committed report to compare with")

# %% [markdown]
# ## The same figure from the report
#
# `survmamba report RUN ... --out DIR` draws this figure for every model and cohort
# (`fig4_km_<model>.png`, one panel per cohort) and a table with the log-rank statistics,
# next to the other metrics: the pooled out-of-fold c-index with a bootstrap interval,
# the time-dependent c-index and the integrated Brier score (both defined in the
# {ref}`survival primer <primer-td-metrics>`).

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

# %% [markdown]
# ## Are the predicted curves right? Calibration
#
# The c-index and the log-rank test only use the **order** of the patients. A model also
# predicts probabilities: its curve says, for instance, that a patient has a 20 % risk of
# dying within a year. Whether such numbers are right is **calibration**, and none of the
# paper's tables measures it. The {ref}`survival primer <primer-calibration>` defines the two
# standard measures that `survmamba_lite.survival` implements and works them on curves whose
# truth is known: {term}`D-calibration` (are the predicted survival probabilities at the
# patients' own times spread evenly over $[0, 1]$?) and the
# {term}`integrated calibration index` (how far, at a fixed horizon, the predicted risk lies
# from the observed risk of patients with that prediction).
#
# Our models predict a discrete-time curve: $S_k$, the probability of outliving bin $k$, known
# only at the bins' ends. At a fixed horizon the curve is read **linearly between the bin
# ends** (the knots $(0, 1), (e_1, S_0), \dots$). At a patient's own time a death in bin $k$ is
# only known to have its transform in $[S_k, S_{k-1}]$, and is spread evenly over that
# interval (exactly uniform when the model is right); a censored patient in bin $k$ is read at
# $S_k$, as the loss reads it (it counts such a patient as having outlived bin $k$). A small
# example worked by hand, with four bins of width 0.25:

# %%
from survmamba_lite.survival import d_calibration, discrete_time_pit

# a death read at S = 0.1 (bin 0), a death at 0.6 (bin 2), censored at s = 0.5 (half in bins 0 and 1),
# censored at s = 0.8 (0.25/0.8 in each of bins 0-2, the remaining 0.05/0.8 in bin 3)
demo = d_calibration([0.1, 0.6, 0.5, 0.8], [1, 1, 0, 0], n_bins=4)
print("counts per bin:", demo.counts.tolist(), " expected:", [demo.n / 4] * 4)
print(f"chi2 = {demo.statistic:.4f} on 3 degrees of freedom, p = {demo.p_value:.3f}")
# a discrete-time curve: the death in bin 1 is known to lie in [S_1, S_0] = [0.6, 0.9]
print("discrete-time transform (S_k, S_k-1):", discrete_time_pit([[0.9, 0.6, 0.2]], [1], [1]))

# %% [markdown]
# ### On the committed paper-scale predictions
#
# The grid of [The paper's grid at full scale](18_paper_scale.py) commits every patient's
# out-of-fold survival curve (synthetic BLCA cohort, {glue:text}`cal_n` patients,
# {glue:text}`cal_folds` folds × {glue:text}`cal_epochs` epochs). Below: SurvMamba and SNN,
# and MCAT for comparison. Each patient's curve is its own fold model's, read with that
# fold's bin edges; the horizons are the folds' bin ends, pooled (the median over the folds of
# each finite edge, so the quartiles of the training deaths).

# %%
from survmamba_lite.experiment.calibration_report import oof_calibration

grid_runs = project_root / COMMITTED["BLCA"]
names = [n for n in ("survmamba", "snn", "mcat") if (grid_runs / n / "summary.json").is_file()]
if len(names) < 3:
    print(f"{COMMITTED['BLCA']}: the committed runs of SurvMamba, SNN and MCAT are not all in this checkout; "
          "the calibration of the paper-scale grid is skipped")
chosen = {name: load_run(grid_runs / name) for name in names} if len(names) == 3 else {}
cal_rows, cal_curves, pits = {}, {}, {}
for name, r in chosen.items():
    edges = {int(m["fold"]): m["bin_inner_edges"] for m in r.folds}
    rows, curves = oof_calibration(r.oof, edges, model=r.label, cohort=r.cohort)
    cal_rows[name], cal_curves[name] = pd.DataFrame(rows), curves
    surv = r.oof.filter(regex=r"^S_\d+$").to_numpy()
    at, before = discrete_time_pit(surv, r.oof["time_bin"], r.oof["event"])
    pits[name] = d_calibration(at, r.oof["event"], surv_before=before)
    print(f"{r.label:10s} D-calibration chi2 {pits[name].statistic:6.1f}, p = {pits[name].p_value:.2g}; "
          f"share of patients in the top bin (predicted survival 0.9-1 at their time) "
          f"{pits[name].proportions[-1]:.2f} (0.10 if calibrated)")
if chosen:
    sm = chosen["survmamba"]
    glue("cal_n", len(sm.oof), display=False)
    glue("cal_folds", len(sm.summary["folds"]), display=False)
    glue("cal_epochs", int(sm.config.epochs), display=False)
    train_sizes = [len(sm.oof) - int((sm.oof["fold"] == int(k)).sum()) for k in sm.summary["folds"]]
    glue("cal_train_min", min(train_sizes), display=False)
    glue("cal_train_max", max(train_sizes), display=False)
    for name, res in pits.items():
        glue(f"cal_dcal_p_{name}", res.p_value, display=False)
        glue(f"cal_top_share_{name}", float(res.proportions[-1]), display=False)

# %% mystnb={"figure": {"caption": "D-calibration of the committed paper-scale predictions (synthetic BLCA, out-of-fold): the share of patients in each tenth of the predicted survival at their own time (deaths spread over their bin's interval, censored patients over [0, S]); a calibrated model gives the dotted line.", "name": "fig-survival-dcal"}}
if pits:
    fig, axes = plt.subplots(1, len(pits), figsize=(3.3 * len(pits), 2.8), sharey=True)
    for ax, (name, res) in zip(axes, pits.items()):
        ax.bar(np.arange(10) / 10 + 0.05, res.proportions, width=0.09, color="#2D6FB7")
        ax.axhline(0.1, color="k", ls=":", lw=0.8)
        ax.set_title(f"{chosen[name].label}: p = {res.p_value:.1g}", fontsize=9)
        ax.set_xlabel("predicted survival at own time")
    axes[0].set_ylabel("share of patients")
    fig.tight_layout()
    plt.show()

# %% mystnb={"figure": {"caption": "Smoothed calibration curves of the same predictions at the middle horizon (the median of the folds' second bin edge): observed risk of death by then (Cox model on a spline of the predicted risk) against the predicted risk; ticks: the patients' predictions. A calibrated model lies on the diagonal.", "name": "fig-survival-calibration-curves"}}
if cal_curves:
    fig, axes = plt.subplots(1, len(cal_curves), figsize=(3.3 * len(cal_curves), 3.1), sharey=True)
    for ax, (name, curves) in zip(axes, cal_curves.items()):
        horizon = sorted(curves)[len(curves) // 2]
        cu = curves[horizon]
        ax.plot(cu["predicted"], cu["observed"], color="C3")
        ax.plot([0, 1], [0, 1], color="k", ls=":", lw=0.8)
        ax.plot(cu["predicted"], np.full(len(cu), -0.02), "|", color="0.5", ms=4)
        row = cal_rows[name].set_index("horizon").loc[horizon]
        ax.set_title(f"{chosen[name].label}, {horizon:.1f} months: ICI {row['ici']:.3f}", fontsize=9)
        ax.set_xlabel("predicted risk")
        ax.set_xlim(-0.03, 1.0)
    axes[0].set_ylabel("observed risk (smoothed)")
    fig.tight_layout()
    plt.show()

# %%
if cal_rows:
    shown = pd.concat(cal_rows.values())[["model", "horizon", "predicted_risk", "observed_risk_km", "ici", "e50",
                                          "e90"]]
    display(shown.round(3).set_index(["model", "horizon"]))
    for name, rows in cal_rows.items():
        low = bool((rows["predicted_risk"] < rows["observed_risk_km"]).all())
        first = sorted(cal_curves[name])[0]
        median_first = float(cal_curves[name][first]["predicted"].median())
        print(f"{chosen[name].label:10s} ICI {rows['ici'].min():.3f}-{rows['ici'].max():.3f} over the horizons; mean "
              f"predicted risk {'below' if low else 'not below'} the Kaplan-Meier risk at every horizon; median "
              f"predicted risk by {first:.1f} months {median_first:.1e} "
              f"(Kaplan-Meier {rows['observed_risk_km'].iloc[0]:.3f})")
        glue(f"cal_ici_min_{name}", float(rows["ici"].min()), display=False)
        glue(f"cal_ici_max_{name}", float(rows["ici"].max()), display=False)
        glue(f"cal_median_first_{name}", median_first, display=False)
        assert low, f"{name}: the text below says the mean predicted risk is below the Kaplan-Meier risk everywhere"
    first_rows = pd.concat(cal_rows.values()).sort_values("horizon").groupby("model").first()
    glue("cal_first_horizon", float(first_rows["horizon"].iloc[0]), display=False)
    glue("cal_km_first", float(first_rows["observed_risk_km"].iloc[0]), display=False)
    committed = pd.read_csv(project_root / COMMITTED["BLCA_REPORT"] / "calibration.csv")
    mine = pd.concat(cal_rows.values())
    print("the same numbers as the report's calibration.csv:",
          np.allclose(committed.set_index(["model", "horizon"]).loc[list(zip(mine["model"], mine["horizon"])), "ici"],
                      mine["ici"], rtol=1e-9))
    random_risk = pd.read_csv(project_root / COMMITTED["BLCA_REPORT"] / "random_risk.csv")
    random_risk = random_risk[random_risk["run_dir"].map(lambda d: Path(d).name).isin(chosen)]
    print("random-risk p of the three (report's random_risk.csv):",
          dict(zip(random_risk["label"], random_risk["p_value"].round(3))))
    glue("cal_random_p_max", float(random_risk["p_value"].max()), display=False)

# %% [markdown]
# What the numbers say. All three models rank patients better than random risk (the
# permutation p of the report is at most {glue:text}`cal_random_p_max:.3f` for the three; the
# [baselines chapter](14_baselines.py) explains the reference), and all three predict too
# little risk on average (the mean predicted risk is below the Kaplan–Meier risk at every
# horizon). SurvMamba and SNN give most patients a near-certain survival to the first horizon,
# {glue:text}`cal_first_horizon:.1f` months, where the Kaplan–Meier risk is
# {glue:text}`cal_km_first:.2f`: their median predicted risk by then is
# {glue:text}`cal_median_first_survmamba:.0e` and {glue:text}`cal_median_first_snn:.0e` (where
# `calibration_at` clips predicted risks before their log-log transform). Their
# curves are far from calibrated (D-calibration p = {glue:text}`cal_dcal_p_survmamba:.0e` and
# {glue:text}`cal_dcal_p_snn:.0e`, with {glue:text}`cal_top_share_survmamba:.2f` and
# {glue:text}`cal_top_share_snn:.2f` of the patients in the top tenth instead of 0.10; an ICI
# rising to {glue:text}`cal_ici_max_survmamba:.2f` and {glue:text}`cal_ici_max_snn:.2f` at the
# later horizons): trained for {glue:text}`cal_epochs` epochs on
# {glue:text}`cal_train_min`–{glue:text}`cal_train_max` patients per fold they fit their
# training patients closely, and push most predicted hazards towards 0 or 1, so the survival
# at a patient's own time piles up near the ends of $[0, 1]$ instead of spreading evenly.
# MCAT's curves are much closer (ICI {glue:text}`cal_ici_min_mcat:.3f` to
# {glue:text}`cal_ici_max_mcat:.3f`), though still miscalibrated in the large (D-calibration
# p = {glue:text}`cal_dcal_p_mcat:.2f`). A model can thus win on the c-index and still hand a
# clinician the wrong probabilities; a paper that reports survival curves should report their
# calibration too. (The cohort is synthetic: these are properties of the models under this
# protocol, not of patients.) `survmamba report` writes these numbers for every run
# (`calibration.csv`).

# %% [markdown]
# ## Summary
#
# * Out-of-fold predictions score every patient once, with a model that did not see them;
#   the median split, the Kaplan–Meier curves and the log-rank test are computed on them.
# * The package's log-rank test and Kaplan–Meier curves agree with lifelines.
# * A log-rank p-value measures the separation of two halves; the c-index measures the
#   ranking of all comparable pairs. Neither says how well calibrated the survival curves are
#   (the integrated Brier score does).
# * {term}`D-calibration` and the {term}`integrated calibration index` measure whether the
#   predicted probabilities are right; on the paper-scale grid the models that rank patients
#   well predict far too little early risk.
#
# ## Exercises

# %% [markdown]
# **Exercise 1 (the null distribution of the log-rank test).** Split the same patients into
# two random halves 200 times (`logrank_test(t, e, group)` with a random boolean `group`
# that is true for half of them). Store the share of splits with $p < 0.05$ as
# `share_significant`. What does it say about a single p-value?

# %% tags=["stub", "remove-cell"]
# Your answer
share_significant = None   # share of 200 random half-splits with log-rank p < 0.05

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# About 5 % of random splits reach $p < 0.05$: that is what the test promises under the null.
# A model's split is one draw; its p-value is meaningful only because the split was fixed
# before looking at the outcomes.
# :::

# %% tags=["solution"]
rng = np.random.default_rng(seed)
p_random = np.array([logrank_test(t, e, rng.permutation(len(t)) < len(t) // 2).p_value for _ in range(200)])
share_significant = float(np.mean(p_random < 0.05))
print(f"random halves: {share_significant:.1%} of 200 splits have p < 0.05")
assert 0.0 < share_significant < 0.12                                  # about 5 %

# %% tags=["check"]
assert isinstance(share_significant, float) and 0 <= share_significant <= 1, \
    f"share_significant should be a share (a float in [0, 1]), not {share_significant!r}"
assert abs(share_significant * 200 - round(share_significant * 200)) < 1e-9, "a share of 200 splits: k / 200"
rng_check = np.random.default_rng(seed + 1)
own = np.mean([logrank_test(t, e, rng_check.permutation(len(t)) < len(t) // 2).p_value < 0.05 for _ in range(200)])
assert abs(share_significant - own) < 0.08, \
    "share_significant is far from what 200 random half-splits give here: are the groups random halves?"
print("share_significant checked")

# %% [markdown]
# **Exercise 2 (only the order matters).** Compute the c-index of the risk (`c_raw`), of
# $e^{r}$ (`c_exp`) and of the risks' ranks (`c_rank`). Why are they equal?

# %% tags=["stub", "remove-cell"]
# Your answer
c_raw = None       # c-index of risk
c_exp = None       # c-index of exp(risk)
c_rank = None      # c-index of the ranks of risk

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# The c-index compares risks pairwise, so any strictly increasing transformation keeps
# every comparison. The median split also depends only on the order, as long as the
# transformation creates no ties.
# :::

# %% tags=["solution"]
c_raw = concordance_index(t, risk, e)
c_exp = concordance_index(t, np.exp(risk), e)
c_rank = concordance_index(t, pd.Series(risk).rank().to_numpy(), e)
print(f"c-index: risk {c_raw:.6f}, exp(risk) {c_exp:.6f}, ranks {c_rank:.6f}")

# %% tags=["check"]
assert all(isinstance(v, float) for v in (c_raw, c_exp, c_rank)), "c_raw, c_exp and c_rank should be c-indices (floats)"
assert abs(c_raw - concordance_index(t, risk, e)) < 1e-12, "c_raw is not the c-index of risk"
assert abs(c_exp - c_raw) < 1e-12 and abs(c_rank - c_raw) < 1e-12, "the three c-indices should be equal"
print("the same c-index for the risk, its exponential and its ranks")

# %%
shutil.rmtree(workdir)
