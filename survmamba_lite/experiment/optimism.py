r"""The optimism gap: the last epoch's c-index (our protocol) beside the best epoch's, chosen on
the same validation fold.

Our protocol trains a fixed number of epochs and reports the last epoch's model. Much code of
this field instead keeps the epoch whose validation c-index is highest and reports that
c-index, measured on the very fold that chose it (selection and evaluation on the same
patients). Every fold records its validation c-index after each epoch (``metrics.json``'s
``val_c_index``; a real-data row's ``predictions/<row>.epochs.csv``), so both numbers come from
the same training run:

* ``last_epoch_c_index``: the fold's reported c-index (the last epoch's model; recomputed
  from its predictions file, :mod:`~survmamba_lite.experiment.recompute`);
* ``best_epoch_c_index``: the highest validation c-index over the epochs, the last epoch
  counted with its reported value; the first epoch reaching it is the ``best_epoch``.

Their difference is never negative. Its mean over the folds, with a Student t-interval of
the paired fold differences, is how much a best-epoch protocol would add to the number a paper
reports, with no change to the model: an optimism, since the selection has seen the patients
it is scored on.
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from survmamba_lite.survival import t_interval

__all__ = ["fold_optimism", "optimism_summary", "run_optimism", "optimism_gap", "optimism_display",
           "evidence_optimism", "COLUMNS"]

#: the columns of ``optimism_gap.csv``, in order
COLUMNS = ("model", "cohort", "last_epoch_c_index", "best_epoch_c_index", "difference", "difference_ci_low",
           "difference_ci_high", "n_folds", "folds_improved", "mean_best_epoch", "epochs", "fold_last", "fold_best",
           "fold_best_epoch")


def fold_optimism(val_c_index: Sequence[float | None], last: float) -> tuple[float, int]:
    """Best validation c-index over the epochs of one fold and the first epoch (1-based) reaching it.

    Args:
        val_c_index: the validation c-index after each epoch (None where undefined).
        last: the fold's reported c-index, used for the last epoch.

    >>> fold_optimism([0.55, 0.62, 0.60], 0.60)
    (0.62, 2)
    >>> fold_optimism([0.55, 0.58, 0.6001], 0.60)        # the last epoch counts with its reported value
    (0.6, 3)
    """
    values = [None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v) for v in val_c_index]
    if not values:
        raise ValueError("fold_optimism: no per-epoch validation c-index")
    values[-1] = float(last)
    best = max(v for v in values if v is not None)
    return best, next(i + 1 for i, v in enumerate(values) if v == best)


def optimism_summary(model: str, cohort: str, per_fold: Mapping[int, tuple[Sequence[float | None], float]],
                     **extra: Any) -> dict[str, Any]:
    """One row of the optimism table from ``{fold: (val_c_index by epoch, reported c-index)}``."""
    folds = sorted(per_fold)
    last = np.array([float(per_fold[k][1]) for k in folds])
    best, epoch = zip(*(fold_optimism(*per_fold[k]) for k in folds))
    best = np.array(best)
    diff = best - last
    lo, hi = t_interval(diff)
    return {"model": model, "cohort": cohort, "last_epoch_c_index": float(last.mean()),
            "best_epoch_c_index": float(best.mean()), "difference": float(diff.mean()),
            "difference_ci_low": lo, "difference_ci_high": hi, "n_folds": len(folds),
            "folds_improved": int((diff > 0).sum()), "mean_best_epoch": float(np.mean(epoch)),
            "epochs": int(max(len(per_fold[k][0]) for k in folds)), "fold_last": json.dumps(last.tolist()),
            "fold_best": json.dumps(best.tolist()), "fold_best_epoch": json.dumps(list(epoch)), **extra}


def run_optimism(run) -> dict[str, Any]:
    """The optimism row of a finished ``survmamba cv`` run (:class:`~survmamba_lite.experiment.runs.Run`)."""
    per_fold = {int(m["fold"]): (m.get("val_c_index") or [], m["c_index"]) for m in run.folds
                if m.get("c_index") is not None and m.get("val_c_index")}
    if not per_fold and run.folds and all(m.get("c_index") is None for m in run.folds):
        # every fold's c-index undefined: a row of n/a, which the report marks and explains
        return {"model": run.label, "cohort": run.cohort, "n_folds": 0, "folds_improved": 0,
                "epochs": max(len(m.get("val_c_index") or []) for m in run.folds), "run_dir": str(run.path)}
    if not per_fold:
        raise ValueError(f"{run.path}: no fold has a per-epoch validation c-index")
    return optimism_summary(run.label, run.cohort, per_fold, run_dir=str(run.path))


def evidence_optimism(record: Mapping[str, Any], epochs: pd.DataFrame, label: str | None = None) -> dict[str, Any]:
    """The optimism row of a real-data row from its run record and ``predictions/<row>.epochs.csv``.

    The reported c-index of fold ``k`` is the record's ``fold_c_index[k]`` (folds in the order of
    the epochs file)."""
    folds = [int(k) for k in dict.fromkeys(epochs["fold"])]
    if len(folds) != len(record["fold_c_index"]):
        raise ValueError(f"{record['cohort_key']}/{record['model_key']}: the epochs file has folds {folds} but the "
                         f"record {len(record['fold_c_index'])} fold c-indices")
    per_fold = {k: (epochs.loc[epochs["fold"] == k].sort_values("epoch")["val_c_index"].tolist(), c)
                for k, c in zip(folds, record["fold_c_index"])}
    name = label or record.get("label") or record["model_key"]
    return optimism_summary(name, record.get("cohort", record["cohort_key"]), per_fold,
                            cohort_key=record["cohort_key"], model_key=record["model_key"])


def optimism_gap(runs: Sequence) -> pd.DataFrame:
    """:data:`COLUMNS` (and ``run_dir``) for each run that recorded a per-epoch validation c-index; a
    run whose every fold c-index is undefined has a row without numbers (NaN, shown ``n/a``)."""
    rows = []
    for r in runs:
        try:
            rows.append(run_optimism(r))
        except ValueError:
            continue
    return pd.DataFrame(rows, columns=list(COLUMNS) + ["run_dir"])


def optimism_display(table: pd.DataFrame) -> pd.DataFrame:
    """The optimism table formatted for reading: last and best epoch, the gap with its 95% t-interval
    (``n/a`` where a run has no fold with a defined c-index)."""
    na = "n/a"
    return pd.DataFrame({
        "Model": table["model"], "Cohort": table["cohort"],
        "last epoch (ours)": [na if pd.isna(v) else f"{v:.3f}" for v in table["last_epoch_c_index"]],
        "best epoch, same fold": [na if pd.isna(v) else f"{v:.3f}" for v in table["best_epoch_c_index"]],
        "difference [95% t]": [na if pd.isna(d) else f"+{d:.3f} [{lo:+.3f}, {hi:+.3f}]" if np.isfinite(lo)
                               else f"+{d:.3f}" for d, lo, hi in zip(table["difference"], table["difference_ci_low"],
                                                                     table["difference_ci_high"])],
        "folds improved": [f"{a} / {b}" for a, b in zip(table["folds_improved"], table["n_folds"])],
        "mean best epoch": [na if pd.isna(v) else f"{v:.1f} of {e}"
                            for v, e in zip(table["mean_best_epoch"], table["epochs"])]})
