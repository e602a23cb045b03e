r"""Tables and figures of the paper, rebuilt from run directories of ``survmamba cv``.

Every run directory describes itself (``config.json`` with its ``derived`` block: model,
label, variant, direction, cohort from the cohort's manifest), so :func:`make_report`
only needs the directories:

=====================  ==========================================================  ===========================
output                 content                                                     paper
=====================  ==========================================================  ===========================
``table1_cindex``      c-index mean ± std over folds, model × cohort, "Overall"     Table 1
                       = mean of the cohort means
``table3_ablation``    the same for SurvMamba variants A–F (bidirectional runs)     Table 3
``fig3_bidirectional`` box plots of fold c-indices, bi- vs unidirectional           Fig. 3
``fig4_km_<model>``    Kaplan–Meier curves of the low/high-risk halves (median of   Fig. 4
                       the out-of-fold risk), log-rank p
``table2_complexity``  parameters, forward FLOPs, step time, CUDA peak memory on a  Table 2
                       synthetic input of stated size (``--complexity``)
``metrics_extra``      pooled out-of-fold c-index with a percentile bootstrap CI,   beyond the paper
                       time-dependent c-index, integrated Brier score, log-rank p
``random_risk``        fold-mean c-index against its permutation null (risks        beyond the paper
                       shuffled within each fold): null mean, 95% interval, p
``optimism_gap``       last-epoch c-index (ours) beside the best epoch chosen on    beyond the paper
                       the same validation fold, paired difference, t-interval
                       (:mod:`~survmamba_lite.experiment.optimism`)
``calibration``        D-calibration and the integrated calibration index at the   beyond the paper
                       pooled bin ends (:mod:`~survmamba_lite.experiment.calibration_report`)
=====================  ==========================================================  ===========================

Tables are written as CSV (numbers) and Markdown (formatted); figures as PNG (and SVG
with ``svg=True``); ``report.md`` gathers everything. A number that stands on less than a
full run (folds with an undefined c-index, fewer folds, ``max_cases``/``max_patches``) is
marked in every table and explained under it (:mod:`~survmamba_lite.experiment.standing`;
the CSVs say it in ``stands_on``). A run given twice is read once. ``std`` is the sample standard
deviation over folds (``ddof=1``), as in ``summary.json``.

Run directories are read by :mod:`~survmamba_lite.experiment.runs`, Table 2 is measured by
:mod:`~survmamba_lite.experiment.table2` (the harness ``benchmarks/complexity.py`` uses too) and
the random-risk reference is :mod:`~survmamba_lite.experiment.reference` (on
:func:`~survmamba_lite.survival.fold_permutation_cindex`); their names stay importable from here.

Median split (Fig. 4): patients are pooled over folds (each scored by the model that did
not see it) and split at the median of those risks, as the paper describes. The
out-of-fold risks come from different fold models; the pooled c-index and its bootstrap
interval carry the same caveat (the per-fold mean ± std of Table 1 does not).
"""
from __future__ import annotations

import contextlib
import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from survmamba_lite.experiment.calibration_report import calibration_display, calibration_table
from survmamba_lite.experiment.optimism import optimism_display, optimism_gap
from survmamba_lite.experiment.reference import random_risk_markdown, random_risk_reference
from survmamba_lite.experiment.runs import Run, check_run_files, load_run, load_runs
from survmamba_lite.experiment.standing import NOT_AVAILABLE, Marks, mark_rows, notes_column, run_notes
from survmamba_lite.experiment.table2 import ComplexitySizes, complexity_table
from survmamba_lite.registry import list_models
from survmamba_lite.survival import (PermutationNull, bootstrap_ci, concordance_index, fold_permutation_cindex,
                                     logrank_test, plot_km_by_risk, split_by_median_risk)
from survmamba_lite.utils.lock import folder_lock
from survmamba_lite.utils.markdown import to_markdown
from survmamba_lite.utils.outputs import REPORT, check_out_dir, discard_dir, publish_dir, staging_dir

__all__ = ["Run", "load_run", "load_runs", "check_run_files", "is_table1_run", "table1", "table3", "fig3_bidirectional", "fig4_km", "extra_metrics",
           "PermutationNull", "fold_permutation_cindex", "random_risk_reference", "ComplexitySizes", "complexity_table", "make_report", "Report", "to_markdown", "PAPER_COHORTS"]

PAPER_COHORTS = ("BRCA", "BLCA", "COADREAD", "UCEC", "LUAD")


def _model_order(runs: Sequence[Run]) -> list[str]:
    rank = {s.name: i for i, s in enumerate(list_models())}
    first: dict[str, tuple[int, str]] = {}
    for r in runs:
        first.setdefault(r.label, (rank.get(r.config.model, len(rank)), r.label))
    return [lab for lab, _ in sorted(first.items(), key=lambda kv: kv[1])]


def _cohort_order(cohorts: Sequence[str]) -> list[str]:
    known = [c for c in PAPER_COHORTS if c in cohorts]
    return known + sorted(set(cohorts) - set(known))


def _fmt(mean: float | None, std: float | None, digits: int = 3) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return ""
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    v = [float(x) for x in values if x is not None]
    if not v:
        return None, None
    return float(np.mean(v)), (float(np.std(v, ddof=1)) if len(v) >= 2 else None)


# --------------------------------------------------------------------------- Table 1 / Table 3
def is_table1_run(run: Run) -> bool:
    """Whether a run is one of Table 1's rows: every model but SurvMamba's ablations (Table 3's
    variants A–E) and its forward-only run (Fig. 3)."""
    return run.derived.get("bidirectional") in (True, None) and run.derived.get("variant") in (None, "F")


def table1(runs: Sequence[Run]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 1: c-index mean ± std over folds per model × cohort.

    Returns:
        ``long`` (one row per run: model, label, cohort, mean, std, n_folds, fold values)
        and ``wide`` (formatted; rows = labels, columns = cohorts + ``Overall``, the mean
        of the model's cohort means over the cohorts it was run on).
    """
    rows = []
    for r in runs:
        mean, std = _mean_std(r.fold_c_index)
        rows.append({"label": r.label, "model": r.config.model, "cohort": r.cohort, "mean": mean, "std": std,
                     "n_folds": len(r.fold_c_index), "fold_c_index": json.dumps(r.fold_c_index),
                     "run_dir": str(r.path), "stands_on": "; ".join(run_notes(r))})
    long = pd.DataFrame(rows)
    if long.empty:
        return long, pd.DataFrame()
    cohorts = _cohort_order(long["cohort"].unique().tolist())
    cell_run = {(r.label, r.cohort): r for r in runs}
    marks = Marks()
    wide_rows = []
    for label in _model_order(runs):
        sub = long[long["label"] == label].set_index("cohort")
        row = {"Model": label}
        for c in cohorts:
            row[c] = marks.cell(_fmt(sub.at[c, "mean"], sub.at[c, "std"]), cell_run[label, c]) if c in sub.index else ""
        means = [m for m in sub["mean"] if m is not None and not pd.isna(m)]
        row["Overall"] = (f"{np.mean(means):.3f}" if means else NOT_AVAILABLE) + marks.of(
            *(cell_run[label, c] for c in sub.index))
        wide_rows.append(row)
    wide = pd.DataFrame(wide_rows)
    wide.attrs["footnotes"] = marks.footnotes()
    return long, wide


def table3(runs: Sequence[Run]) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Table 3: SurvMamba variants A–F (bidirectional ``survmamba`` runs); None without such runs."""
    from survmamba_lite.model.config import VARIANTS

    sel = [r for r in runs if r.config.model == "survmamba" and r.derived.get("bidirectional", True)]
    if not sel:
        return None
    long, _ = table1(sel)
    long["variant"] = [r.derived.get("variant") or "F" for r in sel]
    long["row"] = [v + (" " + lab[lab.index(" ["):].strip() if " [" in lab else "")
                   for v, lab in zip(long["variant"], long["label"])]
    cohorts = _cohort_order(long["cohort"].unique().tolist())
    cell_run = {(row, c): r for r, row, c in zip(sel, long["row"], long["cohort"])}
    marks = Marks()
    mark = {True: "✓", False: ""}
    wide_rows = []
    for row_name in sorted(long["row"].unique()):
        sub = long[long["row"] == row_name].set_index("cohort")
        grouped, coarse, ifm_f, ifm_c = VARIANTS[sub["variant"].iloc[0]]
        row = {"Model": row_name, "HIM fine": mark[grouped], "HIM coarse": mark[coarse],
               "IFM fine": mark[ifm_f], "IFM coarse": mark[ifm_c]}
        for c in cohorts:
            row[c] = (marks.cell(_fmt(sub.at[c, "mean"], sub.at[c, "std"]), cell_run[row_name, c])
                      if c in sub.index else "")
        means = [m for m in sub["mean"] if m is not None and not pd.isna(m)]
        row["Overall"] = (f"{np.mean(means):.3f}" if means else NOT_AVAILABLE) + marks.of(
            *(cell_run[row_name, c] for c in sub.index))
        wide_rows.append(row)
    wide = pd.DataFrame(wide_rows)
    wide.attrs["footnotes"] = marks.footnotes()
    return long.drop(columns=["row"]), wide


# --------------------------------------------------------------------------- figures
def _figure(n_panels: int = 1, width: float = 5.0, height: float = 4.0):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * n_panels, height), layout="constrained")
    axes = fig.subplots(1, n_panels, squeeze=False)[0]
    return fig, axes


def _save(fig, out: Path, stem: str, svg: bool) -> list[Path]:
    paths = [out / f"{stem}.png"]
    fig.savefig(paths[0], dpi=150)
    if svg:
        paths.append(out / f"{stem}.svg")
        fig.savefig(paths[1])
    return paths


def fig3_bidirectional(runs: Sequence[Run], out: Path, svg: bool = False) -> tuple[pd.DataFrame, list[Path]] | None:
    """Fig. 3: fold c-indices of bidirectional vs unidirectional SurvMamba, per cohort.

    Uses ``survmamba`` runs; a cohort enters when it has runs of both directions (of
    the same variant). None when no cohort has both.
    """
    import seaborn as sns

    rows = []
    sm = [r for r in runs if r.config.model == "survmamba" and r.derived.get("bidirectional") is not None]
    for r in sm:
        partners = [o for o in sm if o.cohort == r.cohort and o.derived.get("variant") == r.derived.get("variant")
                    and o.derived.get("bidirectional") != r.derived.get("bidirectional")]
        if not partners:
            continue
        direction = "bidirectional" if r.derived["bidirectional"] else "unidirectional"
        rows += [{"cohort": r.cohort, "variant": r.derived.get("variant"), "direction": direction, "fold": m["fold"],
                  "c_index": m["c_index"], "run_dir": str(r.path)} for m in r.folds if m.get("c_index") is not None]
    if not rows:
        return None
    data = pd.DataFrame(rows)
    order = _cohort_order(data["cohort"].unique().tolist())
    fig, (ax,) = _figure(1, width=max(4.0, 1.6 * len(order) + 2), height=4.0)
    hue_order = ["bidirectional", "unidirectional"]
    with warnings.catch_warnings():       # seaborn 0.13 passes matplotlib's deprecated `vert` to bxp
        warnings.filterwarnings("ignore", message=".*vert: bool.*")
        sns.boxplot(data=data, x="cohort", y="c_index", hue="direction", order=order, hue_order=hue_order, ax=ax,
                    palette=["#2D6FB7", "#E1A730"], showfliers=False)
    sns.stripplot(data=data, x="cohort", y="c_index", hue="direction", order=order, hue_order=hue_order, ax=ax,
                  dodge=True, palette=["black", "black"], size=3, legend=False)
    ax.set_xlabel("")
    ax.set_ylabel("c-index (folds)")
    ax.set_title("SurvMamba: bidirectional vs\nunidirectional Mamba")
    return data, _save(fig, out, "fig3_bidirectional", svg)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def fig4_km(runs: Sequence[Run], out: Path, svg: bool = False) -> tuple[pd.DataFrame, list[Path]]:
    """Fig. 4: per model, one Kaplan–Meier panel per cohort (median split of the out-of-fold risk).

    Returns the log-rank table (label, cohort, group sizes, statistic, p) and the files.
    """
    rows, paths = [], []
    for label in _model_order(runs):
        cohorts = _cohort_order([r.cohort for r in runs])
        mine = sorted((r for r in runs if r.label == label), key=lambda r: cohorts.index(r.cohort))
        fig, axes = _figure(len(mine), width=4.2, height=3.8)
        for ax, r in zip(axes, mine):
            t, e, risk = (r.oof[c].to_numpy() for c in ("time", "event", "risk"))
            high = split_by_median_risk(risk)
            row = {"label": label, "cohort": r.cohort, "n_low": int((~high).sum()), "n_high": int(high.sum()),
                   "logrank_statistic": None, "logrank_p": None, "note": ""}
            try:
                test = logrank_test(t, e, high)
                row["logrank_statistic"], row["logrank_p"] = test.statistic, test.p_value
                plot_km_by_risk(t, e, risk, ax=ax, title=f"{r.cohort}: {label}")
                ax.set_xlabel("time (months)")
            except ValueError as err:
                row["note"] = str(err)
                ax.set_title(f"{r.cohort}: {label}\n(no split: {err})", fontsize=8)
            rows.append(row)
        paths += _save(fig, out, f"fig4_km_{_slug(label)}", svg)
    return pd.DataFrame(rows), paths


# --------------------------------------------------------------------------- beyond the paper
def extra_metrics(runs: Sequence[Run], n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Per run: pooled out-of-fold c-index with a percentile bootstrap CI (over patients),
    fold mean ± std of the time-dependent c-index and the integrated Brier score."""
    rows = []
    for r in runs:
        t, e, risk = (r.oof[c].to_numpy() for c in ("time", "event", "risk"))
        row: dict[str, Any] = {"label": r.label, "model": r.config.model, "cohort": r.cohort, "n_oof": len(r.oof)}
        try:
            ci = bootstrap_ci(lambda tt, rr, ee: concordance_index(tt, rr, ee), t, risk, e, n_boot=n_boot,
                              seed=seed, level=level)
            row.update(oof_c_index=ci.estimate, oof_c_index_low=ci.low, oof_c_index_high=ci.high)
        except ValueError as err:
            row.update(oof_c_index=None, oof_c_index_low=None, oof_c_index_high=None, note=str(err))
        for key in ("c_index", "c_index_td", "ibs"):
            m, s = _mean_std([f.get(key) for f in r.folds])
            row[f"{key}_mean"], row[f"{key}_std"] = m, s
        rows.append(row)
    return pd.DataFrame(rows)


def _extra_markdown(df: pd.DataFrame, level: float) -> pd.DataFrame:
    pct = int(round(level * 100))
    out = pd.DataFrame({"Model": df["label"], "Cohort": df["cohort"]})
    out["c-index (folds)"] = [_fmt(m, s) for m, s in zip(df["c_index_mean"], df["c_index_std"])]
    out[f"pooled OOF c-index [{pct}% CI]"] = [
        "" if pd.isna(m) else f"{m:.3f} [{lo:.3f}, {hi:.3f}]"
        for m, lo, hi in zip(df["oof_c_index"], df["oof_c_index_low"], df["oof_c_index_high"])]
    out["td c-index"] = [_fmt(m, s) for m, s in zip(df["c_index_td_mean"], df["c_index_td_std"])]
    out["IBS"] = [_fmt(m, s) for m, s in zip(df["ibs_mean"], df["ibs_std"])]
    if "logrank_p" in df:
        out["log-rank p"] = ["" if pd.isna(p) else f"{p:.2e}" for p in df["logrank_p"]]
    return out


# --------------------------------------------------------------------------- everything
@dataclass
class Report:
    """What :func:`make_report` wrote: ``tables`` (name -> frame) and ``files``."""

    out_dir: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    markdown: str = ""


def _write_table(rep: Report, name: str, long: pd.DataFrame, wide: pd.DataFrame | None, title: str) -> str:
    long.to_csv(rep.out_dir / f"{name}.csv", index=False, lineterminator="\n")
    shown = wide if wide is not None else long
    md = f"## {title}\n\n{to_markdown(shown)}\n"
    if shown.attrs.get("footnotes"):                   # what the marked numbers stand on
        md += "\n" + shown.attrs["footnotes"].replace("\n", "  \n") + "\n"
    (rep.out_dir / f"{name}.md").write_text(md, encoding="utf-8")
    rep.tables[name] = long
    if wide is not None:
        rep.tables[f"{name}_wide"] = wide
    rep.files += [rep.out_dir / f"{name}.csv", rep.out_dir / f"{name}.md"]
    return md


def _write_marked_table(rep: Report, name: str, long: pd.DataFrame, display, row_runs: list[Run], title: str) -> str:
    """:func:`_write_table` of a table whose row ``i`` belongs to ``row_runs[i]``: the CSV says what each
    row stands on (``stands_on``), the Markdown (``display(long)``) marks its cells and adds the notes."""
    long["stands_on"] = notes_column(row_runs)
    return _write_table(rep, name, long, mark_rows(display(long), row_runs), title)


def make_report(run_dirs: Sequence[str | Path], out_dir: str | Path, *, complexity: bool = False,
                sizes: ComplexitySizes = ComplexitySizes(), device: str = "auto", svg: bool = False,
                n_boot: int = 1000, n_perm: int = 1000, seed: int = 0, overwrite: bool = False) -> Report:
    """Build every table and figure from finished run directories into ``out_dir``.

    ``out_dir`` must be new or empty, or (with ``overwrite``) an earlier report folder
    holding only the report's own files; the report is written into a staging folder and
    renamed into place, so ``out_dir`` holds a whole report or the previous one.

    Args:
        run_dirs: run directories of ``survmamba cv``, or grid folders of ``survmamba grid``
            (each gives its finished runs).
        out_dir: where the files go (created).
        complexity: also measure Table 2 for the runs' models (with their options).
        sizes: the input of the complexity table.
        device: device of the complexity measurements.
        svg: also write SVG figures.
        n_boot: bootstrap replicates of the pooled c-index interval.
        n_perm: permutations of the random-risk reference (``random_risk``, see
            :func:`random_risk_reference`); 0 leaves it out.
        seed: seed of the bootstrap and of the permutations.
        overwrite: replace an earlier report in ``out_dir`` (only its own files).
    """
    if not run_dirs:
        raise ValueError("make_report: give at least one run directory")
    if n_perm < 0:
        raise ValueError(f"make_report: n_perm must be >= 0 (0 leaves the random-risk reference out), got {n_perm}")
    final = Path(out_dir)
    check_out_dir(final, REPORT, overwrite=overwrite)              # before anything is read or written
    with folder_lock(final):                                       # one writer per report folder
        return _make_report(run_dirs, final, complexity=complexity, sizes=sizes, device=device, svg=svg,
                            n_boot=n_boot, n_perm=n_perm, seed=seed, overwrite=overwrite)


def _make_report(run_dirs: Sequence[str | Path], final: Path, *, complexity: bool, sizes: ComplexitySizes,
                 device: str, svg: bool, n_boot: int, n_perm: int, seed: int, overwrite: bool) -> Report:
    state = check_out_dir(final, REPORT, overwrite=overwrite)      # again, now that no one else writes
    from survmamba_lite.experiment.grid import expand_run_dirs

    runs = load_runs(expand_run_dirs(run_dirs, log=print), log=print)
    stage = staging_dir(final, REPORT)                             # written whole, then renamed onto out_dir
    try:
        rep = _write_report(runs, stage, complexity=complexity, sizes=sizes, device=device, svg=svg,
                            n_boot=n_boot, n_perm=n_perm, seed=seed)
    except BaseException as err:
        with contextlib.suppress(Exception):
            discard_dir(stage, REPORT)
        if isinstance(err, OSError) and not err.filename:      # a failed write (full disk) names the report folder
            raise OSError(err.errno, err.strerror or str(err), str(final)) from err
        raise
    if state == "ours":
        discard_dir(final, REPORT)
    publish_dir(stage, final)
    rep.out_dir, rep.files = final, [final / p.relative_to(stage) for p in rep.files]
    return rep


def _write_report(runs: list[Run], out: Path, *, complexity: bool, sizes: ComplexitySizes, device: str, svg: bool,
                  n_boot: int, n_perm: int, seed: int) -> Report:
    rep = Report(out)
    sections = ["# Report\n", "Runs: " + ", ".join(f"`{r.path}`" for r in runs) + "\n"]

    long, wide = table1(runs)
    sections.append(_write_table(rep, "table1_cindex", long, wide,
                                 "Table 1: c-index (mean ± std over folds)"))
    t3 = table3(runs)
    if t3 is not None:
        sections.append(_write_table(rep, "table3_ablation", t3[0], t3[1],
                                     "Table 3: SurvMamba components (c-index, mean ± std over folds)"))
    km, km_files = fig4_km(runs, rep.out_dir, svg)
    rep.files += km_files
    f3 = fig3_bidirectional(runs, rep.out_dir, svg)
    extra = extra_metrics(runs, n_boot=n_boot, seed=seed)
    extra = extra.merge(km[["label", "cohort", "logrank_p"]], on=["label", "cohort"], how="left")
    sections.append(_write_marked_table(
        rep, "metrics_extra", extra, lambda t: _extra_markdown(t, 0.95), runs,
        f"Beyond the paper: pooled out-of-fold c-index ({n_boot} bootstrap replicates), "
        "time-dependent c-index, integrated Brier score, log-rank p of the median split"))
    if n_perm > 0:
        rr = random_risk_reference(runs, n_perm=n_perm, seed=seed)
        sections.append(_write_marked_table(
            rep, "random_risk", rr, lambda t: random_risk_markdown(t, 0.95), runs,
            f"Random-risk reference: fold-mean c-index against {n_perm} random risks "
            f"(risks shuffled within each validation fold, seed {seed}); one-sided permutation p"))
    by_dir = {str(r.path): r for r in runs}                      # the run of a table row (its run_dir)
    og = optimism_gap(runs)
    sections.append(_write_marked_table(
        rep, "optimism_gap", og, optimism_display, [by_dir[d] for d in og["run_dir"]],
        "Optimism gap: the last epoch's c-index (reported) beside the best epoch's, chosen "
        "on the same validation fold (fold means; difference with a 95% t-interval)"))
    cal = calibration_table(runs)                                # one row per run and horizon
    sections.append(_write_marked_table(
        rep, "calibration", cal, calibration_display, [by_dir[d] for d in cal["run_dir"]],
        "Calibration of the out-of-fold survival curves: integrated calibration index at "
        "the pooled bin ends and D-calibration (10 bins)"))
    if complexity:
        seen: dict[str, tuple[str, str, dict]] = {}
        for r in runs:
            base = r.label.split(" [")[0]
            seen.setdefault(base, (base, r.config.model, dict(r.config.model_options)))
        ct = complexity_table(list(seen.values()), sizes, device)
        overall = {row["Model"].split(" [")[0]: row["Overall"] for _, row in wide.iterrows()}
        ct["overall_c_index"] = [overall.get(lab, "") for lab in ct["label"]]
        shown = pd.DataFrame({
            "Model": ct["label"], "Params": [f"{p / 1e3:.2f}K" for p in ct["params"]],
            "FLOPs": [f"{f / 1e9:.3f}G" for f in ct["flops"]],
            "step (s)": [f"{s:.4f}" for s in ct["step_seconds"]],
            "peak memory (MiB)": ["" if m is None or pd.isna(m) else f"{m:.1f}" for m in ct["peak_memory_mib"]],
            "c-index (Overall)": ct["overall_c_index"]})
        shown.attrs["footnotes"] = wide.attrs.get("footnotes", "")          # Table 1's marks and notes
        sections.append(_write_table(
            rep, "table2_complexity", ct, shown,
            f"Table 2: complexity on one synthetic patient ({sizes.patches} patches in {sizes.regions} regions, "
            f"F = {sizes.wsi_dim}, {int(ct['n_genes'].iloc[0])} genes; device {ct['device'].iloc[0]})"))
    figs = ["## Figures\n"]
    if f3 is not None:
        f3[0].to_csv(rep.out_dir / "fig3_bidirectional.csv", index=False, lineterminator="\n")
        rep.files += f3[1] + [rep.out_dir / "fig3_bidirectional.csv"]
        figs.append("![Fig. 3](fig3_bidirectional.png)\n")
    else:
        figs.append("Fig. 3 needs bidirectional and unidirectional `survmamba` runs on the same cohort.\n")
    km.to_csv(rep.out_dir / "fig4_km_logrank.csv", index=False, lineterminator="\n")
    rep.files.append(rep.out_dir / "fig4_km_logrank.csv")
    figs += [f"![Fig. 4]({p.name})\n" for p in km_files if p.suffix == ".png"]
    sections.append("\n".join(figs))
    rep.markdown = "\n".join(sections)
    (rep.out_dir / "report.md").write_text(rep.markdown, encoding="utf-8")
    rep.files.append(rep.out_dir / "report.md")
    return rep
