r"""``calibration.csv`` of ``survmamba report``: D-calibration and the integrated calibration index
of each run's out-of-fold survival curves (:mod:`survmamba_lite.survival.calibration`).

Every patient is scored by the fold model that did not train on it, with that fold's time
bins. Both measures pool the folds' patients:

* D-calibration: each patient's transform from its own fold's curve and bin
  (:func:`~survmamba_lite.survival.discrete_time_pit`), 10 bins, :math:`\chi^2_9`;
* the ICI at fixed horizons: each patient's :math:`\hat S(t_0)` read from its own fold's curve
  linearly between that fold's bin ends (:func:`~survmamba_lite.survival.survival_at_horizon`).
  The default horizons are the bin ends themselves, pooled: the median over the folds of each
  finite edge :math:`e_1, \dots, e_{T-1}` (for 4 bins the quartiles of the training deaths),
  the last one no later than the earliest fold's last finite edge, so every fold can be read
  there without extrapolation.

One row per run and horizon; the D-calibration columns are the run's and repeat on its rows.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from survmamba_lite.survival.calibration import calibration_at, d_calibration, discrete_time_pit, survival_at_horizon

__all__ = ["default_horizons", "oof_calibration", "calibration_table", "calibration_display", "COLUMNS"]

COLUMNS = ("model", "cohort", "horizon", "n", "n_events", "predicted_risk", "observed_risk_km", "ici", "e50", "e90",
           "emax", "method", "d_calibration_chi2", "d_calibration_p", "note")


def _surv_columns(frame: pd.DataFrame) -> list[str]:
    return sorted((c for c in frame.columns if c.startswith("S_") and c[2:].isdigit()), key=lambda c: int(c[2:]))


def default_horizons(edges_by_fold: Mapping[int, Sequence[float]]) -> list[float]:
    """The pooled bin ends of the folds (module docstring).

    >>> default_horizons({0: [5.0, 10.0, 20.0], 1: [6.0, 12.0, 18.0], 2: [4.0, 11.0, 25.0]})
    [5.0, 11.0, 18.0]
    """
    inner = np.array([list(e) for e in edges_by_fold.values()], dtype=np.float64)       # (folds, T - 1)
    med = np.median(inner, axis=0)
    return [float(h) for h in np.minimum(med, inner[:, -1].min())]


def oof_calibration(oof: pd.DataFrame, edges_by_fold: Mapping[int, Sequence[float]], *, model: str, cohort: str,
                    horizons: Sequence[float] | None = None, **extra: Any) -> tuple[list[dict], dict[float, pd.DataFrame]]:
    """Calibration rows of one run's out-of-fold predictions.

    Args:
        oof: ``fold, time, event, time_bin, S_0..S_{T-1}`` (the run's ``oof_predictions.csv``
            or a real-data row's predictions file).
        edges_by_fold: ``{fold: inner bin edges [e_1, .., e_{T-1}]}`` fitted on each training fold.
        model, cohort: the row's labels.
        horizons: the times :math:`t_0` of the ICI (default :func:`default_horizons`).

    Returns:
        the rows (:data:`COLUMNS`) and each horizon's calibration curve (``predicted``,
        ``observed`` per patient, sorted).
    """
    cols = _surv_columns(oof)
    sizes = {k: len(e) + 1 for k, e in edges_by_fold.items()}
    base = {"model": model, "cohort": cohort, **extra}
    if len(set(sizes.values())) != 1 or next(iter(sizes.values())) != len(cols):
        note = f"folds have different numbers of time bins ({sizes}); not pooled"
        return [{**base, "note": note}], {}
    missing = sorted(set(int(k) for k in oof["fold"]) - set(edges_by_fold))
    if missing:
        raise ValueError(f"{model} / {cohort}: no bin edges for fold(s) {missing}")
    surv = oof[cols].to_numpy(np.float64)
    t, e = oof["time"].to_numpy(np.float64), oof["event"].to_numpy(np.int64)
    at, before = discrete_time_pit(surv, oof["time_bin"].to_numpy(), e)
    dcal = d_calibration(at, e, surv_before=before)
    rows, curves = [], {}
    for h in (default_horizons(edges_by_fold) if horizons is None else horizons):
        s_h = np.empty(len(oof))
        for k, edges in edges_by_fold.items():
            mask = (oof["fold"] == k).to_numpy()
            s_h[mask] = survival_at_horizon(surv[mask], np.concatenate([[0.0], edges, [np.inf]]), float(h))
        row = {**base, "horizon": float(h), "n": int(len(oof)), "n_events": int(e.sum()),
               "d_calibration_chi2": dcal.statistic, "d_calibration_p": dcal.p_value, "note": ""}
        try:
            cal = calibration_at(s_h, t, e, float(h))
        except ValueError as err:
            rows.append({**row, "note": str(err)})
            continue
        row.update(predicted_risk=cal.predicted_mean, observed_risk_km=cal.observed_km, ici=cal.ici, e50=cal.e50,
                   e90=cal.e90, emax=cal.emax, method=cal.method)
        rows.append(row)
        curves[float(h)] = cal.curve
    return rows, curves


def calibration_table(runs: Sequence, horizons: Sequence[float] | None = None) -> pd.DataFrame:
    """:data:`COLUMNS` (and ``run_dir``) for finished ``survmamba cv`` runs
    (:class:`~survmamba_lite.experiment.runs.Run`: ``oof`` and each fold's ``bin_inner_edges``)."""
    rows: list[dict] = []
    for r in runs:
        edges = {int(m["fold"]): m["bin_inner_edges"] for m in r.folds}
        if "time_bin" not in r.oof.columns or not _surv_columns(r.oof):
            rows.append({"model": r.label, "cohort": r.cohort, "note": "no survival curves in the predictions",
                         "run_dir": str(r.path)})
            continue
        rows += oof_calibration(r.oof, edges, model=r.label, cohort=r.cohort, horizons=horizons,
                                run_dir=str(r.path))[0]
    return pd.DataFrame(rows, columns=list(COLUMNS) + ["run_dir"])


def calibration_display(table: pd.DataFrame) -> pd.DataFrame:
    """The calibration table formatted for reading: per run and horizon the ICI and E90, predicted
    and observed risk, and the run's D-calibration."""
    def f(v, fmt=".3f"):
        return "" if v is None or pd.isna(v) else format(v, fmt)

    return pd.DataFrame({
        "Model": table["model"], "Cohort": table["cohort"], "horizon": [f(v, ".1f") for v in table["horizon"]],
        "predicted risk": [f(v) for v in table["predicted_risk"]],
        "observed risk (KM)": [f(v) for v in table["observed_risk_km"]],
        "ICI": [f(v) for v in table["ici"]], "E90": [f(v) for v in table["e90"]],
        "D-calibration χ² (p)": ["" if pd.isna(c) else f"{c:.1f} ({p:.2g})"
                                 for c, p in zip(table["d_calibration_chi2"], table["d_calibration_p"])],
        "note": table["note"].fillna("")})
