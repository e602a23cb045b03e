"""The evidence of a real-data row: its per-case out-of-fold predictions and per-epoch record.

Beside ``runs/<cohort>__<model>.json`` (the summary), every row writes under ``predictions/``:

``<cohort>__<model>.csv``
    one line per patient, scored by the fold model that did not train on it: ``fold, case_id,
    time, event, time_bin, risk, S_0..S_{T-1}`` (the survival curve on the fold's ``T`` time
    bins; for the Cox reference its Breslow curve at the bin ends,
    :func:`~survmamba_lite.baselines.cox.cox_curve`), every float at full precision
    (:mod:`~survmamba_lite.experiment.predfiles`), so that the row's fold c-indices and pooled
    c-index are recomputed from it exactly;
``<cohort>__<model>.epochs.csv``
    deep models only: one line per (fold, epoch) with ``train_loss, val_loss, val_c_index``
    (the validation fold's c-index after that epoch; the reported model is the last epoch's)
    and the epoch's seconds;
``<cohort>__<model>.folds.json``
    per fold: the time-bin edges fitted on its training patients, its sizes and metrics.

:func:`check_row_evidence` recomputes a row's c-indices from the CSV and compares them with the
run record.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from survmamba_lite.experiment.predfiles import read_predictions, write_predictions
from survmamba_lite.utils.io import atomic_write_text

__all__ = ["PREDICTIONS_DIR", "evidence_paths", "has_evidence", "write_row_evidence", "read_row_evidence",
           "check_row_evidence", "evidence_status", "risk_spread_by_fold", "EPOCH_COLUMNS"]

PREDICTIONS_DIR = "predictions"
#: the per-epoch record of a deep model's folds (``metrics.json``'s history lists)
EPOCH_COLUMNS = ("train_loss", "val_loss", "val_c_index", "epoch_seconds", "train_seconds")


def evidence_paths(out: str | os.PathLike, cohort_key: str, model_key: str) -> dict[str, Path]:
    """The three evidence files of a row under ``out/predictions/``."""
    base = Path(out) / PREDICTIONS_DIR / f"{cohort_key}__{model_key}"
    return {"predictions": base.with_name(base.name + ".csv"), "epochs": base.with_name(base.name + ".epochs.csv"),
            "folds": base.with_name(base.name + ".folds.json")}


def has_evidence(out: str | os.PathLike, cohort_key: str, model_key: str) -> bool:
    """Whether the row commits its per-case predictions (rows made before the evidence was kept do not)."""
    return evidence_paths(out, cohort_key, model_key)["predictions"].is_file()


def _fold_edges(cohort_dir: str | os.PathLike, folds: list[int], n_bins: int) -> dict[int, list[float]]:
    """The inner time-bin edges of each fold, fitted on its training patients (as the trainer does)."""
    from survmamba_lite.data.layout import load_cohort
    from survmamba_lite.survival import TimeBinner

    cohort = load_cohort(cohort_dir)
    out = {}
    for k in folds:
        tr = cohort.clinical.loc[cohort.folds[k][0]]
        out[k] = TimeBinner(n_bins).fit(tr["survival_months"].to_numpy(), tr["event"].to_numpy()).inner_edges_.tolist()
    return out


def write_row_evidence(out: str | os.PathLike, cohort_dir: str | os.PathLike, cohort_key: str, model_key: str,
                       oof: pd.DataFrame, run_dir: str | os.PathLike | None) -> dict[str, str]:
    """Write a row's evidence files (module docstring); returns their paths relative to ``out``.

    Args:
        out: the result folder (``runs/`` and ``predictions/`` live in it).
        cohort_dir: the imported cohort folder (the folds' training patients, for the bin edges).
        cohort_key, model_key: the row.
        oof: the out-of-fold predictions the row's summary was computed from (``fold, case_id,
            time, event, risk``; the Cox reference's also carry ``time_bin`` and ``S_k``).
        run_dir: the deep model's ``survmamba cv`` run directory (its ``oof_predictions.csv``
            and fold ``metrics.json``); None for the Cox reference.
    """
    from survmamba_lite.experiment.runfiles import METRICS, OOF, SUMMARY

    out = Path(out)
    paths = evidence_paths(out, cohort_key, model_key)
    folds_meta: list[dict[str, Any]] = []
    if run_dir is None:
        full = oof.copy()
        n_bins = len([c for c in full.columns if c.startswith("S_")])
        metrics = {}
    else:
        run_dir = Path(run_dir)
        full = read_predictions(run_dir / OOF)
        summary = json.loads((run_dir / SUMMARY).read_text(encoding="utf-8"))
        metrics = {k: json.loads((run_dir / f"fold_{k}" / METRICS).read_text(encoding="utf-8"))
                   for k in summary["folds"]}
        n_bins = int(next(iter(metrics.values()))["n_bins"])
    key = ["fold", "case_id", "time", "event", "risk"]
    if not full[key].reset_index(drop=True).equals(oof[key].reset_index(drop=True)):
        raise ValueError(f"{cohort_key}/{model_key}: the run's out-of-fold predictions differ from those the row "
                         "was summarised from; rerun the row")
    fold_ids = [int(k) for k in dict.fromkeys(full["fold"])]
    edges = _fold_edges(cohort_dir, fold_ids, n_bins)
    epochs = []
    for k in fold_ids:
        rows = full[full["fold"] == k]
        meta: dict[str, Any] = {"fold": k, "n_val": int(len(rows)), "n_val_events": int(rows["event"].sum()),
                                "bin_inner_edges": edges[k]}
        m = metrics.get(k)
        if m is not None:
            if not np.allclose(m["bin_inner_edges"], edges[k], rtol=0, atol=0):
                raise ValueError(f"{run_dir}/fold_{k}: bin edges {m['bin_inner_edges']} differ from the cohort's "
                                 f"training fold ({edges[k]}); the run was made on another cohort folder")
            meta.update({name: m.get(name) for name in ("n_train", "c_index", "c_index_td", "ibs", "epochs",
                                                         "device", "seconds")})
            hist = {c: list(m.get(c) or []) for c in EPOCH_COLUMNS}
            for e in range(len(hist["train_loss"])):
                epochs.append({"fold": k, "epoch": e + 1,
                               **{c: hist[c][e] if e < len(hist[c]) else None for c in EPOCH_COLUMNS}})
        folds_meta.append(meta)
    paths["predictions"].parent.mkdir(parents=True, exist_ok=True)
    write_predictions(paths["predictions"], full)
    written = {"predictions": paths["predictions"], "folds": paths["folds"]}
    if epochs:
        write_predictions(paths["epochs"], pd.DataFrame(epochs))
        written["epochs"] = paths["epochs"]
    atomic_write_text(paths["folds"], json.dumps(folds_meta, indent=1) + "\n")
    return {k: str(p.relative_to(out)) for k, p in written.items()}


def read_row_evidence(out: str | os.PathLike, cohort_key: str, model_key: str) -> dict[str, Any]:
    """A row's evidence: ``predictions`` (frame), ``epochs`` (frame or None), ``folds`` (list)."""
    paths = evidence_paths(out, cohort_key, model_key)
    if not paths["predictions"].is_file():
        raise FileNotFoundError(f"{paths['predictions']}: no per-case predictions for {cohort_key}/{model_key}; "
                                "rerun the row (python -m survmamba_lite.realdata ...)")
    return {"predictions": read_predictions(paths["predictions"]),
            "epochs": read_predictions(paths["epochs"]) if paths["epochs"].is_file() else None,
            "folds": json.loads(paths["folds"].read_text(encoding="utf-8")) if paths["folds"].is_file() else None}


def check_row_evidence(out: str | os.PathLike, record: dict) -> list[str]:
    """Recompute a row's fold c-indices and pooled c-index from its predictions file and compare
    them with its run record exactly; returns the disagreements (empty: the file reproduces the row)."""
    from survmamba_lite.survival import concordance_index

    ev = read_row_evidence(out, record["cohort_key"], record["model_key"])
    pred = ev["predictions"]
    problems = []
    folds = [int(k) for k in dict.fromkeys(pred["fold"])]
    fold_c = [float(concordance_index(g["time"], g["risk"], g["event"])) for _, g in pred.groupby("fold", sort=False)]
    if fold_c != [float(c) for c in record["fold_c_index"]]:
        problems.append(f"fold c-indices {fold_c} (folds {folds}) against {record['fold_c_index']}")
    pooled = float(concordance_index(pred["time"], pred["risk"], pred["event"]))
    if pooled != record["oof_c_index"]:
        problems.append(f"pooled c-index {pooled} against {record['oof_c_index']}")
    if len(pred) != record["n_cases"] or int(pred["event"].sum()) != record["n_events"]:
        problems.append(f"{len(pred)} cases ({int(pred['event'].sum())} deaths) against {record['n_cases']} "
                        f"({record['n_events']})")
    return problems


def evidence_status(out: str | os.PathLike, records: dict) -> pd.DataFrame:
    """What each row of ``out`` stands on: one line per run record with ``cohort_key``, ``model_key``,
    ``cohort``, ``source``, ``model``, whether its ``predictions``, ``epochs`` and ``folds`` files are
    committed, and ``reproduces``: True when the predictions give the record's fold and pooled c-indices
    exactly (:func:`check_row_evidence`), False when they do not, None without predictions.

    Args:
        out: the result folder.
        records: its run records by ``(cohort_key, model_key)``
            (:func:`~survmamba_lite.realdata.tables.run_records`).
    """
    rows = []
    for (ck, mk), rec in records.items():
        paths = evidence_paths(out, ck, mk)
        have = {name: p.is_file() for name, p in paths.items()}
        rows.append({"cohort_key": ck, "model_key": mk, "cohort": rec["cohort"], "source": rec["source"],
                     "model": rec["label"], **have,
                     "reproduces": (check_row_evidence(out, rec) == []) if have["predictions"] else None})
    return pd.DataFrame(rows, columns=["cohort_key", "model_key", "cohort", "source", "model", "predictions", "epochs",
                                       "folds", "reproduces"])


def risk_spread_by_fold(out: str | os.PathLike, cohort_key: str, model_key: str) -> np.ndarray | None:
    """Sample standard deviation (ddof 1) of the predicted risk across each validation fold's patients,
    in fold order, from the row's predictions; None for a row without them. A spread near zero means
    the fold's model gives every patient nearly the same survival curve (a constant-risk collapse)."""
    if not has_evidence(out, cohort_key, model_key):
        return None
    pred = read_row_evidence(out, cohort_key, model_key)["predictions"]
    return pred.groupby("fold", sort=False)["risk"].std(ddof=1).to_numpy()


def evidence_tables(out: str | os.PathLike, records: dict) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The optimism gap and the calibration of every row of ``out`` that committed its evidence.

    Args:
        out: the result folder.
        records: its run records by ``(cohort_key, model_key)``
            (:func:`~survmamba_lite.realdata.tables.run_records`).

    Returns:
        ``optimism`` (:mod:`~survmamba_lite.experiment.optimism`'s columns plus ``cohort_key``,
        ``model_key``, ``source``, ``setting``; deep models only, from the epochs files),
        ``calibration`` (:mod:`~survmamba_lite.experiment.calibration_report`'s columns plus the
        same keys) and the rows without evidence (``<cohort>__<model>``).
    """
    from survmamba_lite.experiment.calibration_report import oof_calibration
    from survmamba_lite.experiment.optimism import evidence_optimism

    opt_rows, cal_rows, missing = [], [], []
    for (ck, mk), rec in records.items():
        if not has_evidence(out, ck, mk):
            missing.append(f"{ck}__{mk}")
            continue
        ev = read_row_evidence(out, ck, mk)
        keys = {"cohort_key": ck, "model_key": mk, "source": rec.get("source"), "setting": rec.get("setting", "cpu")}
        if ev["epochs"] is not None:
            opt_rows.append({**evidence_optimism(rec, ev["epochs"]), **keys})
        edges = {int(f["fold"]): f["bin_inner_edges"] for f in ev["folds"] or []}
        if edges:
            cal_rows += oof_calibration(ev["predictions"], edges, model=rec["label"], cohort=rec["cohort"],
                                        **keys)[0]
    return pd.DataFrame(opt_rows), pd.DataFrame(cal_rows), missing


def write_evidence_tables(out: str | os.PathLike, records: dict) -> list[str]:
    """Write ``optimism_gap.csv``/``.md`` and ``calibration.csv``/``.md`` of :func:`evidence_tables`
    into ``out`` (each only when some row has the evidence); returns the rows without evidence."""
    from survmamba_lite.experiment.calibration_report import calibration_display
    from survmamba_lite.experiment.optimism import optimism_display
    from survmamba_lite.utils.markdown import to_markdown

    out = Path(out)
    optimism, calibration, missing = evidence_tables(out, records)
    note = (f"\nRows without per-case predictions (not in this table): {', '.join(missing)}.\n" if missing else "")
    for name, table, display in (("optimism_gap", optimism, optimism_display),
                                 ("calibration", calibration, calibration_display)):
        if table.empty:
            continue
        atomic_write_text(out / f"{name}.csv", table.to_csv(index=False, lineterminator="\n"))
        shown = display(table)
        shown["Cohort"] = table["cohort"] + " (" + table["source"].fillna("") + ")"
        shown.insert(2, "widths", table["setting"].map(lambda s: {"cpu": "CPU", "paper": "paper"}.get(s, s)))
        atomic_write_text(out / f"{name}.md", to_markdown(shown) + "\n" + note)
    return missing
