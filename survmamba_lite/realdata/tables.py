"""The real-data tables, rebuilt from the run files: ``genomic_table.csv``/``.md`` (ours beside
the paper's Table 1) and ``paired_differences.csv``/``.md`` (genomic SurvMamba minus SNN over
the paired folds)."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from survmamba_lite.realdata.catalogue import COHORTS, MODELS, PAPER_TABLE1, RUNS_DIR, SETTINGS
from survmamba_lite.realdata.inner import INNER_DIR, inner_table, inner_table_markdown
from survmamba_lite.survival import t_interval
from survmamba_lite.utils.io import atomic_write_text
from survmamba_lite.utils.markdown import to_markdown

__all__ = ["genomic_table", "write_genomic_table", "genomic_table_markdown", "PAIRED", "paired_differences",
           "paired_differences_markdown", "run_file", "run_records"]


def run_file(out: Path, cohort_key: str, model_key: str) -> Path:
    """``out/runs/<cohort>__<model>.json``: the record of one (cohort, model) run."""
    return out / RUNS_DIR / f"{cohort_key}__{model_key}.json"


def run_records(out: str | os.PathLike) -> dict[tuple[str, str], dict]:
    """Every ``runs/*.json`` under ``out`` (in file-name order), keyed by ``(cohort_key, model_key)``."""
    records = {}
    for path in sorted((Path(out) / RUNS_DIR).glob("*.json")):
        r = json.loads(path.read_text(encoding="utf-8"))
        records[(r["cohort_key"], r["model_key"])] = r
    return records


def genomic_table(out: str | os.PathLike) -> pd.DataFrame:
    """One row per ``runs/*.json`` under ``out`` (cohort, then model order), at full precision,
    with the paper's Table 1 numbers beside ours."""
    out = Path(out)
    rows = []
    for r in run_records(out).values():
        paper = (PAPER_TABLE1.get(r.get("paper_row") or "", {}).get(r["cohort"])
                 if r["source"] in ("xena", "porpoise") else None)
        rows.append({
            "cohort": r["cohort"], "source": r["source"], "cohort_key": r["cohort_key"], "model": r["label"],
            "model_key": r["model_key"], "n_cases": r["n_cases"], "n_events": r["n_events"],
            "n_genes": r["n_genes"], "n_functions": r["n_functions"], "n_processes": r["n_processes"],
            "epochs": r.get("epochs"), "setting": SETTINGS[r.get("setting", "cpu")],
            "fold_c_index": " ".join(f"{c:.3f}" for c in r["fold_c_index"]),
            "c_index_mean": r["c_index_mean"], "c_index_std": r["c_index_std"],
            "fold_mean_ci95_low": r["fold_mean_ci95"][0], "fold_mean_ci95_high": r["fold_mean_ci95"][1],
            "oof_c_index": r["oof_c_index"], "oof_ci95_low": r["oof_ci95"][0], "oof_ci95_high": r["oof_ci95"][1],
            "paper_mean": paper[0] if paper else None, "paper_std": paper[1] if paper else None,
            "compute_s": r.get("compute_s", r["wall_s"]), "wall_s": r["wall_s"],
        })
    table = pd.DataFrame(rows)
    if table.empty:
        raise FileNotFoundError(f"{out / RUNS_DIR}: no run files; run `python -m survmamba_lite.realdata` first")
    order_c = {k: i for i, k in enumerate(COHORTS)}
    order_m = {k: i for i, k in enumerate(MODELS)}
    table = table.sort_values(by=["cohort_key", "model_key"],
                              key=lambda s: s.map(order_c if s.name == "cohort_key" else order_m).fillna(99))
    return table.reset_index(drop=True)


def write_genomic_table(out: str | os.PathLike) -> pd.DataFrame:
    """Rebuild ``genomic_table.csv`` and ``genomic_table.md`` from every ``runs/*.json``
    under ``out`` (:func:`genomic_table`)."""
    out = Path(out)
    table = genomic_table(out)
    atomic_write_text(out / "genomic_table.csv", table.to_csv(index=False, float_format="%.4f", lineterminator="\n"))
    atomic_write_text(out / "genomic_table.md", genomic_table_markdown(table))
    paired = paired_differences(out)
    if not paired.empty:
        atomic_write_text(out / "paired_differences.csv",
                          paired.to_csv(index=False, float_format="%.4f", lineterminator="\n"))
        atomic_write_text(out / "paired_differences.md", paired_differences_markdown(paired))
    if (out / INNER_DIR).is_dir():
        atomic_write_text(out / "inner_validation.md", inner_table_markdown(inner_table(out)))
    from survmamba_lite.realdata.evidence import write_evidence_tables

    write_evidence_tables(out, run_records(out))    # optimism gap and calibration of the rows with evidence
    return table


#: the comparisons of :func:`paired_differences`: (model, reference) run keys
PAIRED = (("survmamba-rna", "snn"), ("survmamba-rna-uni", "snn"))


def paired_differences(out: str | os.PathLike, *, level: float = 0.95) -> pd.DataFrame:
    r"""Per cohort, genomic SurvMamba minus SNN over the paired folds, with a t-interval.

    For each cohort with both runs (same published folds), :math:`d_k = C_k^{model} - C_k^{SNN}`
    for the folds ``k`` both have; the interval is Student's
    :math:`ar d \pm t_{0.975,\,n-1}\, s_d / \sqrt n` (``n = 5`` folds: ``t = 2.776``). The
    folds share their training patients, so the interval treats the fold differences as
    independent, which they are not quite (it is the usual, somewhat narrow, CV interval).
    Beside it: our SNN's fold mean with the same t-interval, the paper's SNN mean
    (:data:`PAPER_TABLE1`), and whether the paper's mean lies inside our interval.

    Returns:
        one row per (cohort, comparison); empty when no cohort has both runs.
    """
    runs = run_records(out)
    rows = []
    for cohort_key in [k for k in COHORTS if any(c == k for c, _ in runs)]:
        for model_key, ref_key in PAIRED:
            a, b = runs.get((cohort_key, model_key)), runs.get((cohort_key, ref_key))
            if a is None or b is None or len(a["fold_c_index"]) != len(b["fold_c_index"]):
                continue
            ca, cb = np.asarray(a["fold_c_index"]), np.asarray(b["fold_c_index"])
            d = ca - cb
            lo, hi = t_interval(d, level)
            s_lo, s_hi = t_interval(cb, level)
            paper = PAPER_TABLE1["SNN"].get(b["cohort"]) if b["source"] in ("xena", "porpoise") else None
            rows.append({
                "cohort": b["cohort"], "source": b["source"], "cohort_key": cohort_key,
                "setting": SETTINGS[b.get("setting", "cpu")], "model": a["label"], "reference": b["label"],
                "n_folds": int(d.size), "fold_differences": " ".join(f"{v:+.3f}" for v in d),
                "mean_difference": float(d.mean()), "diff_ci_low": lo, "diff_ci_high": hi,
                "snn_mean": float(cb.mean()), "snn_ci_low": s_lo, "snn_ci_high": s_hi,
                "paper_snn_mean": paper[0] if paper else None,
                "paper_snn_in_our_interval": None if paper is None or math.isnan(s_lo)
                else bool(s_lo <= paper[0] <= s_hi),
            })
    return pd.DataFrame(rows)


def paired_differences_markdown(table: pd.DataFrame) -> str:
    """:func:`paired_differences` as Markdown."""
    def yes_no(v):
        return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else ("yes" if v else "no")

    def interval(lo, hi, fmt):
        return "[—]" if math.isnan(lo) else f"[{lo:{fmt}}, {hi:{fmt}}]"

    cells = pd.DataFrame([{
        "cohort (source)": f"{r.cohort} ({r.source})", "widths": r.setting, "difference": f"{r.model} − {r.reference}",
        "per fold": r.fold_differences,
        "mean [95% t-interval]": f"{r.mean_difference:+.3f} {interval(r.diff_ci_low, r.diff_ci_high, '+.3f')}",
        "our SNN mean [95% t-interval]": f"{r.snn_mean:.3f} {interval(r.snn_ci_low, r.snn_ci_high, '.3f')}",
        "paper SNN": "—" if r.paper_snn_mean is None or (isinstance(r.paper_snn_mean, float)
                                                       and math.isnan(r.paper_snn_mean)) else f"{r.paper_snn_mean:.3f}",
        "paper SNN inside ours": yes_no(r.paper_snn_in_our_interval),
    } for r in table.itertuples(index=False)])
    return to_markdown(cells) + "\n"


def genomic_table_markdown(table: pd.DataFrame, *, compact: bool = False) -> str:
    """The table as Markdown: ours (mean ± std, 95% intervals, folds) and the paper's.

    Args:
        table: :func:`genomic_table`'s frame (full precision: the CSV's 4 decimals can round
            differently at the third).
        compact: leave out each fold's c-index and the compute seconds (a table that fits a page).
    """
    def pm(m, s):
        return "—" if m is None or (isinstance(m, float) and math.isnan(m)) else (
            f"{m:.3f}" + ("" if s is None or (isinstance(s, float) and math.isnan(s)) else f" ± {s:.3f}"))

    columns = {
        "cohort (source)": lambda r: f"{r.cohort} ({r.source})",
        "model": lambda r: r.model,
        "widths, epochs": lambda r: "—" if r.epochs is None or (isinstance(r.epochs, float) and math.isnan(r.epochs))
        else f"{r.setting}, {int(r.epochs)}",
        "cases (deaths)": lambda r: f"{r.n_cases} ({r.n_events})",
        "c-index, ours: mean ± std": lambda r: pm(r.c_index_mean, r.c_index_std),
        "95% CI of the mean": lambda r: f"[{r.fold_mean_ci95_low:.3f}, {r.fold_mean_ci95_high:.3f}]",
        "pooled OOF c-index [95% CI]": lambda r: f"{r.oof_c_index:.3f} [{r.oof_ci95_low:.3f}, {r.oof_ci95_high:.3f}]",
        "folds": lambda r: r.fold_c_index,
        "paper (Table 1)": lambda r: pm(r.paper_mean, r.paper_std),
        "compute s": lambda r: f"{r.compute_s:.0f}",
    }
    if compact:
        del columns["folds"], columns["compute s"]
    cells = pd.DataFrame([{name: cell(r) for name, cell in columns.items()} for r in table.itertuples(index=False)],
                         columns=list(columns))
    return to_markdown(cells) + "\n"
