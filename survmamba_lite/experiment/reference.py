"""The random-risk reference of ``survmamba report``: does a model beat risks drawn at random?

A model's fold-mean c-index is set against the c-indices of risks permuted within each
validation fold (:func:`~survmamba_lite.survival.fold_permutation_cindex`), from the run's
out-of-fold predictions alone.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from survmamba_lite.experiment.runfiles import OOF
from survmamba_lite.experiment.runs import Run
from survmamba_lite.survival import fold_permutation_cindex

__all__ = ["random_risk_reference", "random_risk_markdown"]


def random_risk_reference(runs: Sequence[Run], n_perm: int = 1000, seed: int = 0,
                          level: float = 0.95) -> pd.DataFrame:
    r"""Per run (model × cohort): does the model beat risks drawn at random?

    Runs :func:`fold_permutation_cindex` on the run's out-of-fold predictions
    (``oof_predictions.csv``: time, event, risk and the validation fold of each patient)
    and reports the observed fold-mean c-index (Table 1's mean, recomputed from the saved
    risks), the null mean (0.5 in expectation), the central ``level`` interval of the null
    (percentiles :math:`(1-\text{level})/2` and :math:`(1+\text{level})/2`, ``numpy.quantile``
    linear rule) and the one-sided permutation p. A model "clearly beats random risk" on a
    cohort when its observed value lies above the interval (equivalently a small p). Each
    run uses ``default_rng(seed)`` afresh, so its numbers do not depend on the other runs.

    Returns:
        one row per run: label, model, cohort, n_folds, observed, null_mean, null_low,
        null_high, p_value, n_perm, seed, note (skipped folds), run_dir.
    """
    rows = []
    lo_q, hi_q = (1 - level) / 2, (1 + level) / 2
    for r in runs:
        missing = [c for c in ("fold", "time", "event", "risk") if c not in r.oof.columns]
        if missing:
            raise ValueError(f"{r.path / OOF}: missing column(s) {missing}; rerun `survmamba cv` with --out "
                             f"{r.path} to rebuild it")
        row: dict[str, Any] = {"label": r.label, "model": r.config.model, "cohort": r.cohort}
        try:
            res = fold_permutation_cindex(r.oof["time"], r.oof["risk"], r.oof["event"], r.oof["fold"],
                                          n_perm=n_perm, seed=seed)
        except ValueError as err:
            rows.append({**row, "n_folds": 0, "observed": None, "null_mean": None, "null_low": None,
                         "null_high": None, "p_value": None, "n_perm": n_perm, "seed": seed,
                         "note": f"{r.path / OOF}: {err}", "run_dir": str(r.path)})
            continue
        rows.append({**row, "n_folds": len(res.folds), "observed": res.observed, "null_mean": float(res.null.mean()),
                     "null_low": float(np.quantile(res.null, lo_q)), "null_high": float(np.quantile(res.null, hi_q)),
                     "p_value": res.p_value, "n_perm": n_perm, "seed": seed,
                     "note": f"folds without comparable pairs left out: {list(res.skipped)}" if res.skipped else "",
                     "run_dir": str(r.path)})
    return pd.DataFrame(rows)


def random_risk_markdown(df: pd.DataFrame, level: float) -> pd.DataFrame:
    """The report's Markdown view of :func:`random_risk_reference`'s table."""
    pct = int(round(level * 100))
    ok = df["observed"].notna()
    f3 = lambda v: f"{v:.3f}" if pd.notna(v) else ""                                     # noqa: E731
    return pd.DataFrame({
        "Model": df["label"], "Cohort": df["cohort"],
        "c-index (fold mean)": [f3(v) for v in df["observed"]],
        "random-risk mean": [f3(v) for v in df["null_mean"]],
        f"random-risk {pct}% interval": [f"[{lo:.3f}, {hi:.3f}]" if o else ""
                                          for lo, hi, o in zip(df["null_low"], df["null_high"], ok)],
        "p (one-sided)": [f"{p:.3g}" if pd.notna(p) else "" for p in df["p_value"]],
        "permutations": df["n_perm"], "folds": df["n_folds"]})
