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
# # Real data: results
#
# :::{admonition} Learning objectives
# :class: tip
# After this chapter you can
# 1. say what the real-data rows are: the cohorts, splits, hierarchy, models and budgets, and the file each number is computed from;
# 2. read a row against the paper's Table 1 with its 95% interval, and say when a gap is within the noise of five folds;
# 3. recompute a row's numbers from its committed predictions, and measure how much choosing the best epoch on the validation fold adds (the optimism gap);
# 4. read the calibration of predicted survival curves (ICI, D-calibration) beside the c-index.
# :::
#
# Everything before this part of the book runs on synthetic cohorts. Here the package meets
# public {term}`TCGA` data: the transcriptomics tables that SurvPath and PORPOISE released with
# their 5-fold splits, grouped by the KEGG hierarchy, and two real H&E slides. The genomic models
# of the paper's Table 1 (SNN, SNNTrans), the genomic-only SurvMamba (its HIM over KEGG functions
# grouped by process, with bidirectional and with forward-only Mamba) and a ridge-penalised Cox
# model as a classical reference are cross-validated on the published folds, twice: at widths
# cut for a CPU, and at the paper's widths on a GPU.
#
# This chapter gives the numbers and what they stand on. Why many rows fall short of the paper
# is the subject of the next one, [Real data: diagnosis](20_real_data_diagnosis.py). Every number
# is read from the committed files in `results/real_data/`, made by
# `python -m survmamba_lite.realdata` (the commands are at the end). With `rerun = True` and the
# data present, the cheap parts (the two slides and the Cox reference) are recomputed here and
# compared with those files.

# %% tags=["parameters"]
data_root = None      # folder with tcga/, kegg/ and wsi/; None: ../shared/data next to the project
results_dir = None    # committed results; None: results/real_data in the project
rerun = False         # True: recompute the slides and the Cox reference (about a minute on a CPU)
seed = 0              # seed of the bootstrap intervals in a rerun

# %%
import json
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

project_root = next(p for p in (Path.cwd(), *Path.cwd().parents) if (p / "pyproject.toml").exists())
data_root = Path(data_root) if data_root is not None else project_root.parent / "shared" / "data"
results_dir = Path(results_dir) if results_dir is not None else project_root / "results" / "real_data"
pw_dir = results_dir / "paper_width"
have_data = (data_root / "tcga").is_dir() and (data_root / "wsi").is_dir()
print(f"seed: {seed}")


def shown(path):
    """A path as the page shows it: relative to the project (no machine-specific folders)."""
    return os.path.relpath(path, project_root)


print("results:", shown(results_dir))
if have_data:
    print("data_root:", shown(data_root), "(present; rerun =", rerun, ")")
else:
    print(f"data_root: {shown(data_root)} not found: this chapter shows the committed results only. "
          "To recompute them, get the public tables (see data_manifests/README.md) and run "
          "`python -m survmamba_lite.realdata --data-root DATA --work runs/real --out results/real_data`.")

# %% [markdown]
# ## What was run
#
# ### The cohorts
#
# Five public tables: COADREAD and BLCA from SurvPath's release of the Xena data, BLCA, LUAD and
# BRCA from PORPOISE's. Each keeps the 5-fold splits published with it: the folds of SurvPath
# and PORPOISE, not necessarily the paper's, which are not public. Functions are the KEGG
# pathway maps of the 352-pathway table that keep at least one measured gene, processes their
# KEGG level-2 classes (see the chapter on slides and genes). The counts come from the imports
# (`cohorts.json`):

# %%
cohort_info = json.loads((results_dir / "cohorts.json").read_text(encoding="utf-8"))
display(pd.DataFrame(cohort_info).T[["cohort", "source", "n_cases", "n_events", "n_genes", "n_functions",
                                     "n_processes", "n_dropped_at_import", "fold_n_val", "fold_n_val_events"]])
hierarchy = {}
for source in ("xena", "porpoise"):
    info = [c for c in cohort_info.values() if c["source"] == source]
    hierarchy[source] = (f"{'/'.join(map(str, sorted({c['n_functions'] for c in info})))} functions in "
                         f"{'/'.join(map(str, sorted({c['n_processes'] for c in info})))} processes "
                         f"({'/'.join(map(str, sorted({c['n_genes'] for c in info})))} genes)")
    print(f"{source}: {hierarchy[source]}")
min_deaths = {k: min(c["fold_n_val_events"]) for k, c in cohort_info.items()}
fewest_key = min(min_deaths, key=min_deaths.get)
fewest_info = cohort_info[fewest_key]
n_val = [n for c in cohort_info.values() for n in c["fold_n_val"]]
glue("n_cohorts", len(cohort_info), display=False)
glue("n_patients", sum(c["n_cases"] for c in cohort_info.values()), display=False)
glue("hierarchy_xena", hierarchy["xena"], display=False)
glue("hierarchy_porpoise", hierarchy["porpoise"], display=False)
glue("fewest_cohort", f"{fewest_info['cohort']} ({fewest_info['source']})", display=False)
glue("fewest_deaths", fewest_info["n_events"], display=False)
glue("fewest_cases", fewest_info["n_cases"], display=False)
glue("fewest_fold_deaths_min", min(fewest_info["fold_n_val_events"]), display=False)
glue("fewest_fold_deaths_max", max(fewest_info["fold_n_val_events"]), display=False)
glue("n_val_min", min(n_val), display=False)
glue("n_val_max", max(n_val), display=False)
print(f"fewest deaths: {fewest_info['cohort']} ({fewest_info['source']}), {fewest_info['n_events']} deaths in "
      f"{fewest_info['n_cases']} patients, {min(fewest_info['fold_n_val_events'])} to "
      f"{max(fewest_info['fold_n_val_events'])} per validation fold; validation patients per fold: "
      f"{min(n_val)} to {max(n_val)}")

# %% [markdown]
# {glue:text}`n_cohorts` cohorts, {glue:text}`n_patients` patients in all. The paper reports 352
# functions in 42 processes; SurvPath's tables give {glue:text}`hierarchy_xena`, PORPOISE's
# {glue:text}`hierarchy_porpoise`: pathways without a measured gene are dropped, and the 352
# pathways span more level-2 classes than the paper lists. PORPOISE's BRCA table holds more
# cases than the paper's BRCA cohort (869; its case list is not public). A validation fold holds
# {glue:text}`n_val_min` to {glue:text}`n_val_max` patients; {glue:text}`fewest_cohort` has the
# fewest deaths, {glue:text}`fewest_deaths` in {glue:text}`fewest_cases` patients, only
# {glue:text}`fewest_fold_deaths_min` to {glue:text}`fewest_fold_deaths_max` in a validation
# fold. A c-index computed from a handful of deaths can swing by a tenth between two equally good
# models.
#
# ### The models and the two budgets
#
# Every setting was fixed before any validation fold was looked at, and is the same for every
# cohort: the optimiser, learning rate, weight decay and batch size of the paper, the
# discrete-time NLL over 4 quantile bins of the training deaths, a fixed number of epochs, and
# **the last epoch's model evaluated** (no early stopping, no model selection on the validation
# folds). Two budgets:
#
# * **CPU widths**: models cut down for a 2-core CPU (SNN 2 × 256, SNNTrans 64-d tokens with
#   exact attention, SurvMamba-RNA 32-d tokens and state size 8), a few epochs;
# * **paper widths**: SNN as its original defines it (PORPOISE's "small" SNN, 4 × 256 ELU +
#   AlphaDropout blocks), SNNTrans with 512-d tokens and 8 heads (TransMIL with Nyström
#   attention), SurvMamba-RNA with 512-d tokens and state size 16, on a GPU, for the number of
#   epochs of the methods in the paper's lineage;
# * the Cox reference is the same in both: gene z-scores and PCA fitted on the training fold,
#   the first 32 components, lifelines' `CoxPHFitter(penalizer=0.1, l1_ratio=0)`; nothing tuned.
#
# The table below is read from the run records (`runs/*.json`), not from this text: each deep
# row's training settings as it ran, one line per setting that the rows share.

# %%
from survmamba_lite.realdata import MODELS, PAPER_MODELS, PAPER_VARIANTS, genomic_table, genomic_table_markdown, run_records

runs = run_records(results_dir)
pw_runs = run_records(pw_dir) if (pw_dir / "runs").is_dir() else {}
settings_rows = []
for label, records in (("CPU widths", runs), ("paper widths", pw_runs)):
    for (ck, mk), rec in records.items():
        s = rec.get("settings", {})
        if "optimizer" not in s:                     # the Cox reference has no training loop
            continue
        settings_rows.append({"widths": label, "model": rec["label"],
                              "options": json.dumps(s.get("model_options_resolved") or s.get("model_options")),
                              **{k: s.get(k) for k in ("epochs", "optimizer", "lr", "weight_decay", "batch_size",
                                                       "n_bins", "seed", "device")}})
settings_table = pd.DataFrame(settings_rows).drop_duplicates().reset_index(drop=True)
display(settings_table)
epochs_of = {label: sorted(settings_table.loc[settings_table["widths"] == label, "epochs"].unique().tolist())
             for label in ("CPU widths", "paper widths")}
glue("cpu_epochs", "/".join(map(str, epochs_of["CPU widths"])) or "—", display=False)
glue("paper_epochs", "/".join(map(str, epochs_of["paper widths"])) or "—", display=False)
print("epochs:", epochs_of)

# %% [markdown]
# So the CPU rows trained for {glue:text}`cpu_epochs` epochs, the paper-width rows for
# {glue:text}`paper_epochs`. The CPU rows check that the pipeline runs on real data and lands in
# a plausible range; the paper-width rows are the ones to set beside the paper.
#
# ### What each row stands on
#
# Every row commits, beside its record, its **evidence** (`predictions/<cohort>__<model>.csv` and
# beside it): each patient's out-of-fold risk and predicted survival curve, each deep model's
# validation c-index after every epoch, and the time bins of each fold. The cell recomputes every
# row's fold and pooled c-index from its predictions; they must equal the record's to the last
# digit. Rows made before the evidence was kept have only their record ("record only" below):
# their c-indices stand as recorded, and they enter neither the optimism gap nor the calibration.

# %%
from survmamba_lite.realdata.evidence import evidence_status

status = {"CPU widths": evidence_status(results_dir, runs)}
if pw_runs:
    status["paper widths"] = evidence_status(pw_dir, pw_runs)
for label, st in status.items():
    assert st.loc[st["predictions"], "reproduces"].all(), st[st["reproduces"].eq(False)]
    n_ev = int(st["predictions"].sum())
    glue(f"rows_{label.split()[0].lower()}", len(st), display=False)
    glue(f"evidence_{label.split()[0].lower()}", n_ev, display=False)
    print(f"{label}: {n_ev} of {len(st)} rows commit their predictions, and each reproduces its fold and "
          "pooled c-index exactly")


def stands_on(row):
    if not row["predictions"]:
        return "record only"
    return "predictions" + (", epochs" if row["epochs"] else "") + " (reproduce)"


keys = list(dict.fromkeys(k for st in status.values() for k in zip(st["cohort_key"], st["model_key"])))
names = {(r.cohort_key, r.model_key): (f"{r.cohort} ({r.source})", r.model)
         for st in status.values() for r in st.itertuples()}
evidence_grid = pd.DataFrame(
    [{"cohort": names[k][0], "model": names[k][1],
      **{label: (stands_on(st.set_index(["cohort_key", "model_key"]).loc[k])
                 if k in set(zip(st["cohort_key"], st["model_key"])) else "not run")
         for label, st in status.items()}} for k in keys]).set_index(["cohort", "model"])
display(evidence_grid)
if "paper widths" not in status:
    glue("rows_paper", 0, display=False)
    glue("evidence_paper", 0, display=False)

# %% [markdown]
# {glue:text}`evidence_cpu` of the {glue:text}`rows_cpu` CPU-width rows and
# {glue:text}`evidence_paper` of the {glue:text}`rows_paper` paper-width rows commit their
# predictions, and each of those reproduces its record exactly (the test suite repeats the check
# with lifelines' c-index).
#
# ## The rows against the paper
#
# The columns: the mean ± sample standard deviation of the five fold c-indices (as the paper
# reports), a 95% bootstrap interval of that mean (patients resampled within each validation
# fold), and the c-index of all out-of-fold predictions pooled, with its own bootstrap interval.
# The pooled value ranks patients scored by five different fold models against each other; when
# their risk scales differ it falls below the fold mean. The paper's Table 1 gives a number for
# SNN and SNNTrans only. First the CPU widths, then the paper's widths (each row's folds and
# compute time are in `genomic_table.md`):

# %%
table = genomic_table(results_dir)
pw = genomic_table(pw_dir) if pw_runs else None
tables = {"CPU widths": table} | ({"paper widths": pw} if pw is not None else {})
for label, frame in tables.items():
    print(f"{label}: {len(frame)} rows")
    display(Markdown(genomic_table_markdown(frame, compact=True)))
if pw is not None:
    wanted = [(ck, mk) for ck in dict.fromkeys(pw["cohort_key"]) for mk in PAPER_MODELS]
    done = set(zip(pw["cohort_key"], pw["model_key"]))
    print("not yet run at the paper's widths:", ", ".join(f"{ck}/{mk}" for ck, mk in wanted if (ck, mk) not in done)
          or "none")
    print("variant rows:", ", ".join(f"{ck}/{mk}" for ck, mk in done if mk in PAPER_VARIANTS) or "none")

# %% mystnb={"figure": {"caption": "Real TCGA transcriptomics (committed `results/real_data/`): each model's fold-mean c-index with its 95% bootstrap interval, at the CPU widths (grey) and at the paper's widths (blue), beside the paper's mean \u00b1 std where it reports one (red). A model missing from a budget has no marker there.", "name": "fig-real-cindex"}}
cohorts = list(dict.fromkeys(table["cohort_key"]))
every_row = pd.concat(tables.values(), ignore_index=True)
model_label = dict(zip(every_row["model_key"], every_row["model"]))           # variant rows included
models = [m for m in MODELS if m in model_label] + [m for m in model_label if m not in MODELS]
paper_of = every_row.dropna(subset=["paper_mean"]).drop_duplicates(["cohort_key", "model_key"]).set_index(
    ["cohort_key", "model_key"])[["paper_mean", "paper_std"]]
colours = {"CPU widths": "0.55", "paper widths": "C0"}
ncols = min(3, len(cohorts))
nrows = -(-len(cohorts) // ncols)
fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.4 * nrows), sharey=True, squeeze=False)
for ax, ck in zip(axes.flat, cohorts):
    for j, (label, frame) in enumerate(tables.items()):
        sub = frame[frame["cohort_key"] == ck].set_index("model_key")
        for i, mk in enumerate(models):
            if mk not in sub.index:
                continue
            r = sub.loc[mk]
            ax.errorbar(i - 0.2 + 0.2 * j, r["c_index_mean"],
                        yerr=[[r["c_index_mean"] - r["fold_mean_ci95_low"]], [r["fold_mean_ci95_high"] - r["c_index_mean"]]],
                        fmt="o", color=colours[label], capsize=3, label=f"ours, {label}")
    for i, mk in enumerate(models):
        if (ck, mk) in paper_of.index:
            p = paper_of.loc[(ck, mk)]
            ax.errorbar(i + 0.2, p["paper_mean"], yerr=p["paper_std"], fmt="s", color="C3", capsize=3,
                        label="paper: mean ± std")
    ax.axhline(0.5, color="k", lw=0.6, ls=":")
    ax.set_xticks(range(len(models)), [model_label[m].replace(" (", "\n(") for m in models], fontsize=6.5)
    ax.set_xlim(-0.5, len(models) - 0.5)
    first = table[table["cohort_key"] == ck].iloc[0]
    ax.set_title(f"{first['cohort']} ({first['source']})", fontsize=10)
for ax in axes.flat[len(cohorts):]:
    ax.axis("off")
for ax in axes[:, 0]:
    ax.set_ylabel("c-index")
handles, labels = axes.flat[0].get_legend_handles_labels()
unique = dict(zip(labels, handles))
axes.flat[0].legend(unique.values(), unique.keys(), fontsize=7, loc="lower left")
fig.tight_layout()
plt.show()

# %% [markdown]
# Row by row, for every row with a number in the paper: our fold mean and interval beside the
# paper's mean, the gap, and whether the paper's mean lies inside our interval. The stated target
# of the paper-width SNN rows was the paper's mean within ±0.03.

# %%
def against_paper(frame, label):
    """The rows of a genomic table with a paper number: ours, the paper's, the gap, inside our interval."""
    rows = frame[frame["paper_mean"].notna()]
    return pd.DataFrame({
        "widths": label, "cohort": rows["cohort"] + " (" + rows["source"] + ")", "model": rows["model"],
        "ours": rows["c_index_mean"], "95% CI low": rows["fold_mean_ci95_low"], "95% CI high": rows["fold_mean_ci95_high"],
        "paper": rows["paper_mean"], "ours - paper": rows["c_index_mean"] - rows["paper_mean"],
        "paper inside ours": (rows["fold_mean_ci95_low"] <= rows["paper_mean"]) & (rows["paper_mean"] <= rows["fold_mean_ci95_high"]),
        "within ±0.03": (rows["c_index_mean"] - rows["paper_mean"]).abs() <= 0.03})


comparison = pd.concat([against_paper(f, label) for label, f in tables.items()], ignore_index=True)
display(comparison.round(3).set_index(["widths", "cohort", "model"]))
for label in ("CPU widths", "paper widths"):
    c = comparison[comparison["widths"] == label]
    tag = label.split()[0].lower()
    glue(f"paper_rows_{tag}", len(c), display=False)
    glue(f"paper_inside_{tag}", int(c["paper inside ours"].sum()), display=False)
    glue(f"paper_within_{tag}", int(c["within ±0.03"].sum()), display=False)
    glue(f"paper_below_{tag}", int((c["ours - paper"] < 0).sum()), display=False)
    print(f"{label}: paper's mean inside our interval on {int(c['paper inside ours'].sum())} of {len(c)} rows, "
          f"ours within ±0.03 on {int(c['within ±0.03'].sum())}, ours below the paper on {int((c['ours - paper'] < 0).sum())}")
pw_snn = comparison[(comparison["widths"] == "paper widths") & (comparison["model"] == "SNN")]
snn_within = ", ".join(pw_snn.loc[pw_snn["within ±0.03"], "cohort"]) or "no cohort"
glue("pw_snn_within", snn_within, display=False)
glue("pw_snn_rows", len(pw_snn), display=False)
print(f"paper widths: SNN within ±0.03 of the paper on {snn_within} (of {len(pw_snn)})")

# %% [markdown]
# At the CPU widths the paper's mean lies inside our 95% interval on {glue:text}`paper_inside_cpu`
# of {glue:text}`paper_rows_cpu` rows, and our mean is within ±0.03 of it on
# {glue:text}`paper_within_cpu`; at the paper's widths the counts are
# {glue:text}`paper_inside_paper`, {glue:text}`paper_within_paper` of
# {glue:text}`paper_rows_paper`. Our mean is below the paper's on {glue:text}`paper_below_cpu`
# of the CPU-width and {glue:text}`paper_below_paper` of the paper-width rows. SNN at the
# paper's widths meets the ±0.03 target on {glue:text}`pw_snn_within` (of
# {glue:text}`pw_snn_rows` cohorts). A paper mean inside our interval means that five folds cannot
# tell the two apart, not that they agree; the [diagnosis](20_real_data_diagnosis.py) takes the
# shortfalls one by one.

# %% [markdown]
# ### How wide the intervals are, and which row leads
#
# The cell gives the spread that any comparison here has to beat, and, per cohort and budget,
# the row with the highest fold mean beside the Cox reference.

# %%
for label, frame in tables.items():
    widths = frame["fold_mean_ci95_high"] - frame["fold_mean_ci95_low"]
    tag = label.split()[0].lower()
    glue(f"ci_width_median_{tag}", float(widths.median()), display=False)
    glue(f"ci_width_max_{tag}", float(widths.max()), display=False)
    glue(f"fold_std_median_{tag}", float(frame["c_index_std"].median()), display=False)
    glue(f"pooled_below_{tag}", int((frame["oof_c_index"] < frame["c_index_mean"]).sum()), display=False)
    print(f"{label}: 95% interval of the fold mean {widths.min():.3f} to {widths.max():.3f} wide (median "
          f"{widths.median():.3f}); fold-to-fold std {frame['c_index_std'].min():.3f} to {frame['c_index_std'].max():.3f} "
          f"(median {frame['c_index_std'].median():.3f}); pooled c-index below the fold mean "
          f"on {int((frame['oof_c_index'] < frame['c_index_mean']).sum())} of {len(frame)} rows")
leaders = []
for label, frame in tables.items():
    for ck, sub in frame.groupby("cohort_key", sort=False):
        best = sub.loc[sub["c_index_mean"].idxmax()]
        cox = sub.loc[sub["model_key"] == "cox", "c_index_mean"]
        leaders.append({"widths": label, "cohort": f"{best['cohort']} ({best['source']})", "highest fold mean": best["model"],
                        "its c-index": best["c_index_mean"], "Cox reference": cox.iloc[0] if len(cox) else np.nan})
leaders = pd.DataFrame(leaders)
display(leaders.round(3).set_index(["widths", "cohort"]))
cox_leads = leaders[leaders["highest fold mean"].str.startswith("Cox")]
glue("cox_leads", len(cox_leads), display=False)
glue("leader_cells", len(leaders), display=False)

# %% [markdown]
# The 95% intervals of the fold mean have a median width of {glue:text}`ci_width_median_cpu:.3f`
# at the CPU widths and {glue:text}`ci_width_median_paper:.3f` at the paper's (up to
# {glue:text}`ci_width_max_paper:.3f`); the median fold-to-fold standard deviation is
# {glue:text}`fold_std_median_cpu:.3f` and {glue:text}`fold_std_median_paper:.3f`. (A row whose
# folds all score exactly 0.5 has an interval of width zero: the diagnosis reads such rows.)
# Differences of a few hundredths between two rows, or between a row and the paper, are within
# sampling error at these cohort sizes. The untuned linear reference leads its cohort in
# {glue:text}`cox_leads` of the {glue:text}`leader_cells` cohort-budget pairs. The pooled
# c-index lies below the fold mean on {glue:text}`pooled_below_cpu` CPU-width and
# {glue:text}`pooled_below_paper` paper-width rows: where it does, the five fold models' risks are
# not on one scale, which says nothing against each model's ranking of its own fold.

# %% [markdown]
# ## The epoch a number comes from: the optimism gap
#
# Our rows report the **last** epoch's model. Much code of this field keeps instead the epoch
# whose validation c-index is highest and reports that value, chosen on the very patients it is
# scored on (the [baselines chapter](14_baselines.py) measures it on the paper-scale grid). Every
# row that commits its per-epoch record gives both numbers from the same training: the tables
# below (`optimism_gap.csv` in each result folder) put the last epoch's fold-mean c-index beside
# the best epoch's, with their paired difference and its 95% t-interval. Rows without a per-epoch
# record (the Cox reference has no epochs; some rows have only their record) are named under
# each table.

# %%
from survmamba_lite.experiment.optimism import optimism_display

gaps = {}
for label, folder in (("CPU widths", results_dir), ("paper widths", pw_dir)):
    tag = label.split()[0].lower()
    path = folder / "optimism_gap.csv"
    st = status.get(label)
    if path.is_file():
        gaps[label] = g = pd.read_csv(path)
        print(label)
        shown_gap = optimism_display(g)
        shown_gap["Cohort"] = g["cohort"] + " (" + g["source"] + ")"          # BLCA comes from two releases
        display(Markdown(shown_gap.to_markdown(index=False)))
        sentence = (f"the best epoch adds {g['difference'].min():+.3f} to {g['difference'].max():+.3f} (mean "
                    f"{g['difference'].mean():+.3f}) over {len(g)} rows, and {int(g['folds_improved'].sum())} of "
                    f"{int(g['n_folds'].sum())} folds gain")
    else:
        sentence = "no row commits its per-epoch record yet"
    if st is not None:
        lacking = st[~st["epochs"] & (st["model_key"] != "cox")]
        print(f"{label}: {sentence}; deep rows without a per-epoch record: "
              + (", ".join(f"{r.cohort_key}/{r.model_key}" for r in lacking.itertuples()) or "none"))
    glue(f"optimism_{tag}", sentence, display=False)

# %% [markdown]
# At the CPU widths {glue:text}`optimism_cpu`; at the paper's widths {glue:text}`optimism_paper`.
# The gap is never negative: it is what a best-epoch protocol would add to the number a paper
# reports with no change to the model. With few epochs there are few evaluations to choose from;
# with many, the choice can matter as much as a change of model. The
# [diagnosis](20_real_data_diagnosis.py) sets it against each row's shortfall from the paper.
#
# ## Calibration: are the predicted curves right?
#
# A c-index only ranks patients. Whether the predicted survival probabilities are right is
# calibration (the [Kaplan–Meier chapter](15_survival_analysis.py) defines both measures):
# the **integrated calibration index** (ICI, the mean distance between predicted and observed
# risk at a horizon; 0 is perfect) at each pooled bin end, and **D-calibration** (whether each
# patient's predicted survival at their own time is uniform; a small p-value rejects
# calibration). `calibration.csv` holds them for every row with predictions; the cell shows one
# line per row.

# %%
cal_rows = []
for label, folder in (("CPU widths", results_dir), ("paper widths", pw_dir)):
    path = folder / "calibration.csv"
    if not path.is_file():
        print(f"{label}: no row commits its predictions yet")
        continue
    cal = pd.read_csv(path)
    for (ck, mk), g in cal.groupby(["cohort_key", "model_key"], sort=False):
        g = g.sort_values("horizon")
        cal_rows.append({"widths": label, "cohort": f"{g['cohort'].iloc[0]} ({g['source'].iloc[0]})",
                         "model": g["model"].iloc[0],
                         "horizons (months)": " ".join(f"{h:.1f}" for h in g["horizon"]),
                         "predicted risk": " ".join(f"{v:.3f}" for v in g["predicted_risk"]),
                         "observed risk (KM)": " ".join(f"{v:.3f}" for v in g["observed_risk_km"]),
                         "ICI": " ".join(f"{v:.3f}" for v in g["ici"]), "mean ICI": g["ici"].mean(),
                         "D-calibration p": g["d_calibration_p"].iloc[0]})
calibration = pd.DataFrame(cal_rows, columns=["widths", "cohort", "model", "horizons (months)", "predicted risk",
                                             "observed risk (KM)", "ICI", "mean ICI", "D-calibration p"])
shown_cal = calibration.assign(**{"mean ICI": calibration["mean ICI"].round(3),
                                  "D-calibration p": calibration["D-calibration p"].map(lambda p: f"{p:.2g}")})
display(shown_cal.set_index(["widths", "cohort", "model"]))
calibrated = calibration.assign(ok=calibration["D-calibration p"] >= 0.05)
by_model = calibrated.groupby(["widths", "model"], sort=False).agg(rows=("ok", "size"), d_calibrated=("ok", "sum"),
                                                                     median_ici=("mean ICI", "median"))
display(by_model.round(3))
for label in ("CPU widths", "paper widths"):
    c = calibrated[calibrated["widths"] == label]
    tag = label.split()[0].lower()
    glue(f"cal_rows_{tag}", len(c), display=False)
    glue(f"cal_ok_{tag}", int(c["ok"].sum()), display=False)
    best = by_model.loc[label]["median_ici"].idxmin() if len(c) else "—"
    worst = by_model.loc[label]["median_ici"].idxmax() if len(c) else "—"
    glue(f"cal_best_{tag}", best, display=False)
    glue(f"cal_worst_{tag}", worst, display=False)

# %% mystnb={"figure": {"caption": "Calibration of the committed real-data rows: predicted against observed (Kaplan\u2013Meier) risk of death at each pooled bin end, one marker per row and horizon, per budget. On the diagonal a model's probabilities are right on average.", "name": "fig-real-calibration"}}
cal_all = {label: pd.read_csv(folder / "calibration.csv")
           for label, folder in (("CPU widths", results_dir), ("paper widths", pw_dir)) if (folder / "calibration.csv").is_file()}
fig, axes = plt.subplots(1, max(len(cal_all), 1), figsize=(4.2 * max(len(cal_all), 1), 3.8), squeeze=False, sharey=True)
marker_of = {m.label: mk for m, mk in zip(MODELS.values(), "osD^v")}
for ax, (label, cal) in zip(axes[0], cal_all.items()):
    for i, (model, g) in enumerate(cal.groupby("model", sort=False)):
        ax.scatter(g["observed_risk_km"], g["predicted_risk"], s=18, marker=marker_of.get(model, "x"),
                   color=f"C{list(marker_of).index(model) if model in marker_of else 9}", label=model)
    top = float(max(cal["observed_risk_km"].max(), cal["predicted_risk"].max())) * 1.05
    ax.plot([0, top], [0, top], color="k", lw=0.6, ls=":")
    ax.set_xlabel("observed risk (Kaplan–Meier)")
    ax.set_title(label, fontsize=10)
    ax.legend(fontsize=6.5, loc="upper left")
axes[0, 0].set_ylabel("mean predicted risk")
fig.tight_layout()
plt.show()

# %% [markdown]
# D-calibration is not rejected at the 5% level on {glue:text}`cal_ok_cpu` of the
# {glue:text}`cal_rows_cpu` CPU-width rows with predictions and on {glue:text}`cal_ok_paper` of
# the {glue:text}`cal_rows_paper` paper-width rows. At the CPU widths the smallest median ICI is
# that of {glue:text}`cal_best_cpu` and the largest that of {glue:text}`cal_worst_cpu`; at the
# paper's widths, of {glue:text}`cal_best_paper` and of {glue:text}`cal_worst_paper`. Ranking and calibration
# are different properties: a model can rank patients as well as another and still predict risks
# that are systematically too low, which matters as soon as a curve is read as a probability.

# %% [markdown]
# ## Real slides through the pipeline
#
# Two public slides go through `survmamba tile` (tissue mask, 4096-px regions of 256-px
# patches at 20x) and `survmamba extract` with the ImageNet EfficientNet-Lite0 encoder
# (1280-d features; the paper's CTransPath needs weights the user supplies). The TCGA
# frozen section has no resolution in its metadata, so it is tiled with
# `--base-magnification 20`. The feature map colours each patch by the first three
# principal components of its features (red, green, blue = PC1, PC2, PC3, each scaled to
# the slide's range): patches that look alike to the encoder get similar colours.

# %% mystnb={"figure": {"caption": "Two public slides through the pipeline (committed `results/real_data/`): tissue, kept patches and regions (left), and each patch coloured by the first three principal components of its EfficientNet-Lite0 features (right).", "name": "fig-real-slides"}}
slides_file = results_dir / "slides.json"
slides = json.loads(slides_file.read_text(encoding="utf-8")) if slides_file.is_file() else []
if not slides:
    print(f"{shown(slides_file)} not found: no slide was run into this folder")
for s in slides:
    print(f"{s['slide_id']}: {s['width']}x{s['height']} px, mpp {s['mpp']:.3g} ({s['mpp_source']}); "
          f"{s['n_patches']} of {s['grid_patches']} grid patches kept in {s['n_regions']} region(s) "
          f"{s['patches_per_region']}; {s['feature_dim']}-d {s['encoder']} features at "
          f"{s['patches_per_second']:.1f} patches/s on {s['device']}; PC1-3 explain "
          f"{100 * sum(s['pca_explained_variance_ratio']):.1f}% of the variance")
if slides:
    fig, axes = plt.subplots(len(slides), 2, figsize=(9, 4.0 * len(slides)), dpi=60, squeeze=False)
    for row, s in zip(axes, slides):
        for ax, key, title in zip(row, ("overview_png", "features_png"), ("tissue, patches, regions", "feature map (PCA → RGB)")):
            ax.imshow(plt.imread(results_dir / s[key]))
            ax.set_title(f"{s['slide_id']}: {title}", fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    plt.show()

# %% [markdown]
# ## Rerunning the cheap parts
#
# With `rerun = True` (and the data present) the two slides and the Cox reference on the
# two Xena cohorts are recomputed into a temporary folder. The Cox model is deterministic,
# so its fold c-indices must equal the committed ones; the slide patch counts too.

# %%
if rerun and have_data:
    from survmamba_lite.realdata import COHORTS, import_cohort, run_genomic_check, run_slide_check, training_template

    work = Path(tempfile.mkdtemp(prefix="survmamba_real_"))
    fresh_slides = run_slide_check(data_root, work, work / "out")
    for old, new in zip(slides, fresh_slides):
        assert old["n_patches"] == new["n_patches"], (old["slide_id"], old["n_patches"], new["n_patches"])
    dirs = {k: import_cohort(COHORTS[k], data_root, work / "cohorts") for k in ("coadread", "blca")}
    fresh = run_genomic_check(dirs, work / "out", training_template(seed=seed), work=work, models=["cox"])
    for r in fresh.itertuples():
        old = runs[(r.cohort_key, "cox")]["fold_c_index"]
        new = [float(v) for v in r.fold_c_index.split()]
        print(f"{r.cohort}: committed folds {np.round(old, 3)}, recomputed {new}")
        assert np.allclose(np.round(old, 3), new, atol=1e-3)
elif rerun:
    print(f"rerun=True but {shown(data_root)} is absent: nothing recomputed.")
else:
    print("rerun=False: showing the committed results (set rerun=True to recompute the cheap parts).")

# %% [markdown]
# ## The commands that made these files
#
# The rows at the CPU widths, all five cohorts and models, one command per cohort on a
# 2-core CPU (each row writes its run record and its evidence; `genomic_table.*`,
# `paired_differences.*`, `optimism_gap.*` and `calibration.*` are rebuilt after every row):
#
# ```bash
# for c in coadread blca blca-porpoise luad brca; do
#   nice python -m survmamba_lite.realdata --data-root /path/to/data --work /tmp/real/work \
#       --out results/real_data --epochs 3 --cohorts $c --no-slides --threads 1 --device cpu
# done
# python -m survmamba_lite.realdata --data-root /path/to/data --work /tmp/real/slides \
#     --out results/real_data --no-genomic          # the two slides
# ```
#
# The "compute s" column of `genomic_table.md` is the training and evaluation time the
# experiments layer measured per fold, summed, on that shared machine.
#
# On a GPU, `--device cuda --paper-dims --epochs 20` runs the paper's widths. The paper-width
# rows and the variant rows are made by a resumable driver around it, in calls of a few minutes
# (the data, the wheels that the GPU image lacks and the mamba-ssm sources in the folder
# `CARRY`): every training step is replayed as a CUDA graph, SurvMamba-RNA's scan and
# convolution run in the mamba-ssm and causal-conv1d kernels, and the folds of a row train at
# once in their own processes on a GPU shared through CUDA MPS; a fold's settings and seed do
# not depend on the call that trained it. The returned rows are checked (each recomputed from
# its predictions) and copied into the results:
#
# ```bash
# CARRY=/path/with/deps+sdist+realdata bash scripts/realdata_device.sh start
# OUT=/tmp/back bash scripts/realdata_device.sh poll 530     # results.tgz, state.tgz, progress.txt, logs.tgz
# python scripts/realdata_ingest.py /tmp/back/results.tgz --out results/real_data/paper_width
# ```
#
# The exact command of each paper-width run is in `paper_width/commands.jsonl`. Every run of
# the CPU rows appends its command line and wall times to `commands.jsonl` (in
# `results/real_data/`); a summary of it:

# %%
log_file = results_dir / "commands.jsonl"
if log_file.is_file():
    records = [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines() if line.strip()]

    def option(cmd, name):
        """The values after `name` on a command line, up to the next option."""
        words, values = cmd.split(), []
        for w in (words[words.index(name) + 1:] if name in words else []):
            if w.startswith("--"):
                break
            values.append(w)
        return " ".join(values)

    summary = pd.DataFrame([{"finished": r.get("finished", ""),
                             "cohorts": option(r["command"], "--cohorts") or "(default)",
                             "models": option(r["command"], "--models") or "(all)",
                             "epochs": option(r["command"], "--epochs") or "(default)",
                             "slides": "no" if "--no-slides" in r["command"] else "yes",
                             **{k: v for k, v in r.items() if k.endswith("_s")}} for r in records])
    print(f"{len(records)} logged runs in {shown(log_file)}")
    display(summary)
else:
    print(f"{shown(log_file)} not found: no finished run has logged its command yet")

# %% [markdown]
# ## Summary
#
# * The package's import code, KEGG hierarchy and experiments layer run on
#   {glue:text}`n_cohorts` public TCGA transcriptomics cohorts with their published folds, at
#   widths cut for a CPU ({glue:text}`cpu_epochs` epochs) and at the paper's widths
#   ({glue:text}`paper_epochs` epochs). Rows that commit their per-case predictions
#   ({glue:text}`evidence_cpu` of {glue:text}`rows_cpu` and {glue:text}`evidence_paper` of
#   {glue:text}`rows_paper`) are recomputed from them exactly; the others stand on their record.
# * Against the paper's Table 1, the paper's mean lies inside our 95% interval on
#   {glue:text}`paper_inside_paper` of {glue:text}`paper_rows_paper` paper-width rows, and our
#   mean is below the paper's on {glue:text}`paper_below_paper` of them; intervals with a median
#   width of {glue:text}`ci_width_median_paper:.2f` mean that only large gaps can be shown.
# * The optimism gap, what choosing the best epoch on the validation fold would add: at the
#   paper's widths {glue:text}`optimism_paper`.
# * Calibration is a property of its own: D-calibration holds on {glue:text}`cal_ok_paper` of
#   {glue:text}`cal_rows_paper` paper-width rows with predictions.
# * Real slides go through tiling and feature extraction; the feature map shows which patches
#   the encoder sees as alike.

# %% [markdown]
# ## Exercises

# %% [markdown]
# **Exercise 1 (how noisy is a fold?).** For every cohort, take the Cox reference's five
# fold c-indices at the CPU widths (`runs[(cohort, "cox")]["fold_c_index"]`). Which cohort has
# the largest spread (`widest`, the standard deviation over the folds), and which has the fewest
# deaths in one validation fold (`fewest`, from `cohort_info[cohort]["fold_n_val_events"]`)? Use
# the cohort keys of `cohorts`.

# %% tags=["stub", "remove-cell"]
# Your answer
widest = None      # the cohort key whose Cox fold c-indices spread the most
fewest = None      # the cohort key with the fewest deaths in one validation fold

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# The same cohort on both counts (the cell prints both tables): the one whose validation folds
# hold the fewest deaths has the most variable fold c-index. A c-index on a handful of deaths
# compares few pairs.
# :::

# %% tags=["solution"]
spread = {ck: float(np.std(runs[(ck, "cox")]["fold_c_index"], ddof=1)) for ck in cohorts if (ck, "cox") in runs}
deaths = {ck: min(cohort_info[ck]["fold_n_val_events"]) for ck in spread}
print("Cox fold std:", {k: round(v, 3) for k, v in spread.items()})
print("fewest deaths in a validation fold:", deaths)
widest = max(spread, key=spread.get)
fewest = min(deaths, key=deaths.get)
print(f"widest: {widest}, fewest: {fewest}")

# %% tags=["check"]
assert widest in cohorts and fewest in cohorts, f"widest and fewest should be cohort keys of {cohorts}, not {widest!r}, {fewest!r}"
sd_ = {ck: np.std(runs[(ck, "cox")]["fold_c_index"], ddof=1) for ck in cohorts if (ck, "cox") in runs}
assert sd_[widest] == max(sd_.values()), "widest: the largest standard deviation of the Cox fold c-indices"
low_ = {ck: min(cohort_info[ck]["fold_n_val_events"]) for ck in sd_}
assert low_[fewest] == min(low_.values()), "fewest: the smallest number of deaths in one validation fold"
print("widest and fewest checked")

# %% [markdown]
# **Exercise 2 (the optimism gap from the epochs file).** Take the CPU-width row
# `row = ("brca", "snntrans")`. Read its per-epoch record with
# `read_row_evidence(results_dir, *row)["epochs"]` (one line per fold and epoch, with the
# validation fold's `val_c_index`). Compute `last_mean`, the mean over the folds of the last
# epoch's c-index (the reported number), and `best_mean`, the mean over the folds of the best
# epoch's, chosen per fold on that same validation c-index.

# %% tags=["stub", "remove-cell"]
# Your answer
row = ("brca", "snntrans")
last_mean = None   # mean over the folds of the last epoch's validation c-index
best_mean = None   # mean over the folds of the highest validation c-index over the epochs

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# Group the epochs by fold; the last epoch's value is the reported one, the maximum is what a
# best-epoch protocol would report. Their difference is the row's optimism gap in
# `optimism_gap.csv`.
# :::

# %% tags=["solution"]
from survmamba_lite.realdata.evidence import read_row_evidence

row = ("brca", "snntrans")
epochs = read_row_evidence(results_dir, *row)["epochs"].sort_values(["fold", "epoch"])
per_fold = epochs.groupby("fold")["val_c_index"]
last_mean = float(per_fold.last().mean())
best_mean = float(per_fold.max().mean())
print(f"{row}: last epoch {last_mean:.3f}, best epoch {best_mean:.3f}, gap {best_mean - last_mean:+.3f}")

# %% tags=["check"]
assert isinstance(last_mean, float) and isinstance(best_mean, float), "last_mean and best_mean should be numbers"
gap_ = pd.read_csv(results_dir / "optimism_gap.csv").set_index(["cohort_key", "model_key"]).loc[row]
assert abs(last_mean - gap_["last_epoch_c_index"]) < 1e-9, "last_mean: the mean over the folds of the last epoch's c-index"
assert abs(best_mean - gap_["best_epoch_c_index"]) < 1e-9, "best_mean: the mean over the folds of each fold's best epoch"
print("last_mean and best_mean checked against optimism_gap.csv")
