"""Recompute a finished run's metrics from its files, and repair runs whose files were rounded.

A run directory of ``survmamba cv`` holds, per fold, the validation predictions
(``fold_<k>/predictions.csv``), the bin edges fitted on the training fold
(``metrics.json``'s ``bin_inner_edges``, also in ``preprocessing.json``) and the training
ids (``split.json``); the training patients' times and events are the other folds'
validation rows of ``oof_predictions.csv``. That is all :func:`~survmamba_lite.experiment.evaluation.fold_metrics`
needs, so every reported number can be recomputed from the files alone
(:func:`recompute_run`), with the same function that computed it during training.

Runs trained before the predictions were written at full precision
(:mod:`~survmamba_lite.experiment.predfiles`) wrote them with 10 significant digits while
their metrics came from the unrounded values; where a model's risks differ only beyond the
tenth digit (a saturated SNN), the file and the metrics disagree. For those runs the files
are the evidence: :func:`regenerate_run_metrics` rewrites each fold's ``c_index``,
``c_index_td`` and ``ibs`` and the summary from the files, and leaves a note saying so. The
per-epoch record (``val_c_index``) stays as training wrote it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from survmamba_lite.errors import UserError
from survmamba_lite.experiment.predfiles import read_predictions
from survmamba_lite.experiment.evaluation import fold_metrics
from survmamba_lite.experiment.runfiles import METRICS, OOF, PREDICTIONS, SPLIT, SUMMARY, write_json
from survmamba_lite.survival import concordance_index

__all__ = ["fold_metrics_from_files", "recompute_run", "regenerate_run_metrics", "REGENERATED_NOTE", "METRIC_KEYS"]

#: the fold metrics that are recomputed from the files
METRIC_KEYS = ("c_index", "c_index_td", "ibs")
#: the note a regenerated fold's ``metrics.json`` carries
REGENERATED_NOTE = ("c_index, c_index_td and ibs recomputed from predictions.csv as written (10 significant "
                    "digits); val_c_index is the per-epoch record of training, from the unrounded predictions")


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path}: missing; the run's files are incomplete")
    return json.loads(path.read_text(encoding="utf-8"))


def fold_metrics_from_files(run_dir: str | os.PathLike, fold: int, oof: pd.DataFrame | None = None) -> dict[str, Any]:
    """``c_index``, ``c_index_td`` and ``ibs`` of fold ``fold`` of ``run_dir``, from its files only.

    Args:
        run_dir: a finished run directory.
        fold: the fold index.
        oof: the run's ``oof_predictions.csv`` (read when None): the training patients'
            times and events, for the censoring distribution of the IBS.
    """
    run_dir = Path(run_dir)
    fold_dir = run_dir / f"fold_{fold}"
    stored = _read_json(fold_dir / METRICS)
    pred = read_predictions(fold_dir / PREDICTIONS)
    train_ids = _read_json(fold_dir / SPLIT)["train"]
    oof = read_predictions(run_dir / OOF) if oof is None else oof
    known = oof.drop_duplicates("case_id").set_index("case_id")
    missing = [c for c in train_ids if c not in known.index]
    if missing:
        raise UserError(f"{run_dir / OOF}: training case {missing[0]} of fold {fold} ({len(missing)} in all) has no "
                        "row, so the fold's censoring distribution cannot be rebuilt from the run's files")
    edges = np.concatenate([[0.0], np.asarray(stored["bin_inner_edges"], dtype=np.float64), [np.inf]])
    tr = known.loc[train_ids]
    out = fold_metrics(pred, edges, tr["time"].to_numpy(np.float64), tr["event"].to_numpy(np.int64))
    return {k: out.get(k) for k in METRIC_KEYS}


def recompute_run(run_dir: str | os.PathLike) -> pd.DataFrame:
    """Stored against recomputed metrics of every fold of ``run_dir``, plus the pooled c-index.

    Returns:
        one row per (fold, metric): ``fold`` (``"pooled"`` for the out-of-fold c-index),
        ``metric``, ``stored``, ``recomputed``, ``equal`` (exact equality).
    """
    run_dir = Path(run_dir)
    summary = _read_json(run_dir / SUMMARY)
    oof = read_predictions(run_dir / OOF)
    rows = []
    for k in summary["folds"]:
        stored = _read_json(run_dir / f"fold_{k}" / METRICS)
        for key, value in fold_metrics_from_files(run_dir, k, oof).items():
            rows.append({"fold": str(k), "metric": key, "stored": stored.get(key), "recomputed": value})
    pooled = float(concordance_index(oof["time"], oof["risk"], oof["event"]))
    rows.append({"fold": "pooled", "metric": "oof_c_index", "stored": summary.get("oof_c_index"),
                 "recomputed": pooled})
    table = pd.DataFrame(rows)
    table["equal"] = [a == b for a, b in zip(table["stored"], table["recomputed"])]
    return table


def _mean_std(values: list) -> dict[str, Any]:
    v = [float(x) for x in values if x is not None]
    return {"mean": float(np.mean(v)) if v else None, "std": float(np.std(v, ddof=1)) if len(v) >= 2 else None,
            "n": len(v), "values": list(values)}


def regenerate_run_metrics(run_dir: str | os.PathLike) -> list[str]:
    """Rewrite the metrics of ``run_dir`` that disagree with its files (see the module docstring).

    Each fold whose stored ``c_index``, ``c_index_td`` or ``ibs`` differs from the value
    recomputed from its files gets the recomputed values and :data:`REGENERATED_NOTE` under
    ``metrics_note``; ``summary.json``'s means, standard deviations and pooled c-index are
    then rebuilt from the fold files. Nothing is written when every value already agrees.

    Returns:
        what changed, one line per fold and metric (empty when nothing did).
    """
    run_dir = Path(run_dir)
    table = recompute_run(run_dir)
    changed = table[~table["equal"]]
    if changed.empty:
        return []
    lines = [f"{run_dir} fold {r.fold}: {r.metric} {r.stored} -> {r.recomputed}" for r in changed.itertuples()]
    for k in sorted({r.fold for r in changed.itertuples() if r.fold != "pooled"}, key=int):
        path = run_dir / f"fold_{k}" / METRICS
        metrics = _read_json(path)
        for r in table[(table["fold"] == k)].itertuples():
            metrics[r.metric] = r.recomputed
        metrics["metrics_note"] = REGENERATED_NOTE
        write_json(path, metrics)
    summary = _read_json(run_dir / SUMMARY)
    folds = [_read_json(run_dir / f"fold_{k}" / METRICS) for k in summary["folds"]]
    for key in METRIC_KEYS:
        summary[key] = _mean_std([m.get(key) for m in folds])
    summary["oof_c_index"] = float(table.loc[table["fold"] == "pooled", "recomputed"].iloc[0])
    write_json(run_dir / SUMMARY, summary)
    return lines
