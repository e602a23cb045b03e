r"""Kaplan–Meier curves, log-rank tests and risk-group plots (thin helpers over lifelines).

The paper's Fig. 4 splits patients at the median predicted risk into a low- and a
high-risk group, draws both Kaplan–Meier curves with confidence bands, and reports the
log-rank p-value. The product-limit estimator is

.. math:: \hat S(t) = \prod_{u_k \le t} \Big(1 - \frac{d_k}{n_k}\Big)

with :math:`d_k` deaths at time :math:`u_k` and :math:`n_k` patients still followed just
before :math:`u_k`; the bands are lifelines' exponential Greenwood intervals.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from lifelines import KaplanMeierFitter
from lifelines.statistics import logrank_test as _lifelines_logrank
from lifelines.statistics import multivariate_logrank_test

from .metrics import _risk_input, _survival_inputs

__all__ = ["kaplan_meier", "logrank_test", "LogRankResult", "split_by_median_risk", "plot_km_by_risk"]


def kaplan_meier(time: Any, event: Any, alpha: float = 0.05) -> pd.DataFrame:
    """Kaplan–Meier estimate as a tidy table.

    Args:
        time: ``(n,)`` follow-up times.
        event: ``(n,)`` 1 = death observed, 0 = censored.
        alpha: 1 - confidence level of the bands.

    Returns:
        DataFrame with columns ``time, survival, ci_lower, ci_upper, n_at_risk, n_events``,
        one row per distinct time (plus ``time = 0``), survival right-continuous.

    >>> kaplan_meier([1, 2, 2, 3], [1, 1, 0, 1])[["time", "survival"]].round(3).values.tolist()
    [[0.0, 1.0], [1.0, 0.75], [2.0, 0.5], [3.0, 0.0]]
    """
    t, e = _survival_inputs(time, event, "kaplan_meier")
    kmf = KaplanMeierFitter(alpha=alpha).fit(t, e.astype(int))
    ci = kmf.confidence_interval_survival_function_
    table = kmf.event_table
    return pd.DataFrame({
        "time": kmf.survival_function_.index.to_numpy(dtype=float),
        "survival": kmf.survival_function_.iloc[:, 0].to_numpy(),
        "ci_lower": ci.iloc[:, 0].to_numpy(),
        "ci_upper": ci.iloc[:, 1].to_numpy(),
        "n_at_risk": table["at_risk"].to_numpy(dtype=int),
        "n_events": table["observed"].to_numpy(dtype=int),
    })


class LogRankResult(NamedTuple):
    """Log-rank chi-square statistic and its p-value."""

    statistic: float
    p_value: float


def logrank_test(time: Any, event: Any, group: Any) -> LogRankResult:
    """Log-rank test of equal survival across groups.

    Two groups use ``lifelines.statistics.logrank_test``; more use its multivariate version.

    Args:
        time: ``(n,)`` follow-up times.
        event: ``(n,)`` 1 = death observed, 0 = censored.
        group: ``(n,)`` group labels (e.g. the boolean of :func:`split_by_median_risk`).

    >>> r = logrank_test([1, 2, 3, 2, 4, 5], [1, 1, 1, 1, 0, 1], [0, 0, 0, 1, 1, 1])
    >>> round(r.statistic, 4), round(r.p_value, 4)
    (2.2443, 0.1341)
    """
    t, e = _survival_inputs(time, event, "logrank_test")
    g = np.asarray(group.detach().cpu().numpy() if hasattr(group, "detach") else group).reshape(-1)
    if g.shape != t.shape:
        raise ValueError(f"logrank_test: group has {g.shape[0]} entries, time has {t.shape[0]}")
    labels = pd.unique(g)
    if labels.size < 2:
        raise ValueError(f"logrank_test: needs at least two groups, got only {labels.tolist()}")
    if labels.size == 2:
        a, b = g == labels[0], g == labels[1]
        res = _lifelines_logrank(t[a], t[b], e[a].astype(int), e[b].astype(int))
    else:
        res = multivariate_logrank_test(t, g, e.astype(int))
    return LogRankResult(float(res.test_statistic), float(res.p_value))


def split_by_median_risk(risk: Any, threshold: float | None = None) -> np.ndarray:
    """Boolean high-risk group: ``risk > threshold`` (default: the median of ``risk``).

    Patients exactly at the median fall in the low-risk group. Pass the median of the
    *training* risks as ``threshold`` to apply a cut-off fixed before seeing the test fold.

    >>> split_by_median_risk([0.1, 0.5, 0.9, 0.3]).tolist()
    [False, True, True, False]
    """
    r = _risk_input(risk, None, "split_by_median_risk")
    cut = float(np.median(r)) if threshold is None else float(threshold)
    return r > cut


def plot_km_by_risk(
    time: Any,
    event: Any,
    risk: Any,
    ax: Any = None,
    title: str | None = None,
    threshold: float | None = None,
    alpha: float = 0.05,
) -> Any:
    """Kaplan–Meier curves of the low- and high-risk groups (median split), as in Fig. 4.

    Each curve is drawn as a step with its confidence band; the legend shows the group
    sizes and the title the log-rank p-value.

    Args:
        time, event: ``(n,)`` follow-up and event indicator.
        risk: ``(n,)`` predicted risk (higher = earlier death).
        ax: matplotlib Axes to draw on (a new figure when None).
        title: prefix of the title (the p-value is appended).
        threshold: risk cut-off (default the median of ``risk``).
        alpha: 1 - confidence level of the bands.

    Returns:
        the matplotlib Axes (``ax.figure`` is the figure).
    """
    import matplotlib.pyplot as plt

    t, e = _survival_inputs(time, event, "plot_km_by_risk")
    high = split_by_median_risk(_risk_input(risk, t.shape[0], "plot_km_by_risk"), threshold)
    if high.all() or not high.any():
        raise ValueError("plot_km_by_risk: the split leaves one group empty (all risks equal?); "
                         "check the predictions or pass a threshold")
    test = logrank_test(t, e, high)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    for name, mask, color in (("low risk", ~high, "#E1A730"), ("high risk", high, "#2D6FB7")):
        km = kaplan_meier(t[mask], e[mask], alpha=alpha)
        ax.step(km["time"], km["survival"], where="post", color=color, label=f"{name} (n={int(mask.sum())})")
        ax.fill_between(km["time"], km["ci_lower"], km["ci_upper"], step="post", color=color, alpha=0.2, lw=0)
    ax.set_xlabel("time")
    ax.set_ylabel("survival probability")
    ax.set_ylim(0.0, 1.05)
    ax.legend(loc="lower left", frameon=False)
    p_text = f"log-rank p = {test.p_value:.2e}" if test.p_value < 1e-3 else f"log-rank p = {test.p_value:.3f}"
    ax.set_title(p_text if title is None else f"{title}\n{p_text}")
    return ax
