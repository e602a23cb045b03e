r"""IPCW Brier score and integrated Brier score of predicted survival curves.

Inputs as in :mod:`~survmamba_lite.survival.metrics` (``time``, ``event``, ``surv: (n, n_times)``
on a grid ``times: (n_times,)``, the discrete-time placement of its module notes); the censoring
distribution :math:`\hat G` is the Kaplan-Meier estimate of the *training* patients'
censoring (:func:`censoring_km`), never of the evaluation set.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .metrics import _grid_input, _survival_inputs, _to_numpy

__all__ = ["censoring_km", "brier_score", "integrated_brier_score"]


class _StepFunction(NamedTuple):
    """Right-continuous step function: ``value[k]`` on ``[x[k], x[k+1])``, 1 before ``x[0]``."""

    x: np.ndarray
    value: np.ndarray

    def __call__(self, u: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(self.x, u, side="right") - 1
        return np.where(idx >= 0, self.value[np.maximum(idx, 0)], 1.0)

    def left(self, u: np.ndarray) -> np.ndarray:
        """The left limit ``f(u-)``: the value just before ``u`` (jumps at ``u`` excluded)."""
        idx = np.searchsorted(self.x, u, side="left") - 1
        return np.where(idx >= 0, self.value[np.maximum(idx, 0)], 1.0)


def censoring_km(train_time: Any, train_event: Any) -> _StepFunction:
    r"""Kaplan–Meier estimate :math:`\hat G(t) = P(C > t)` of the censoring distribution.

    The product-limit estimator with the roles swapped (a censoring is the "event"):
    :math:`\hat G(t) = \prod_{u_k \le t} (1 - c_k / (n_k - d_k))`, ``c_k`` censorings and
    ``d_k`` deaths at :math:`u_k`, ``n_k`` patients with follow-up :math:`\ge u_k`. At a
    time with both, the deaths come first and leave the censoring risk set (the same tie
    rule as the survival KM, where a patient censored at a death time was at risk for it;
    ``sksurv.nonparametric.kaplan_meier_estimator(..., reverse=True)``). Fit it on the
    **training** fold.

    >>> G = censoring_km([1, 2, 3, 4], [1, 0, 1, 0])
    >>> G(np.array([0.5, 2.0, 4.0]))
    array([1.        , 0.66666667, 0.        ])
    >>> G = censoring_km([1, 1, 2], [1, 0, 0])      # at t = 1 the death leaves first: G(1) = 1 - 1/2
    >>> G(np.array([1.0])), G.left(np.array([1.0]))
    (array([0.5]), array([1.]))
    """
    t, e = _survival_inputs(train_time, train_event, "censoring_km")
    u, inv = np.unique(t, return_inverse=True)
    n_cens = np.bincount(inv, weights=(~e).astype(float), minlength=u.size)
    n_death = np.bincount(inv, weights=e.astype(float), minlength=u.size)
    n_exit = np.bincount(inv, minlength=u.size)
    at_risk = t.size - np.concatenate([[0], np.cumsum(n_exit)[:-1]]) - n_death
    ratio = np.divide(n_cens, at_risk, out=np.zeros_like(n_cens), where=at_risk > 0)
    return _StepFunction(u, np.cumprod(1.0 - ratio))


def brier_score(
    surv: Any,
    times: Any,
    time: Any,
    event: Any,
    train_time: Any,
    train_event: Any,
    ipcw: str = "graf",
) -> np.ndarray:
    r"""Time-dependent Brier score with inverse-probability-of-censoring weights (Graf et al. 1999).

    .. math::

        BS(\tau) = \frac1n \sum_i \Big[
          \frac{\hat S_i(\tau)^2\ \mathbb 1[t_i \le \tau,\ \delta_i = 1]}{\hat G(t_i-)}
          + \frac{(1 - \hat S_i(\tau))^2\ \mathbb 1[t_i > \tau]}{\hat G(\tau)} \Big]

    :math:`\hat G` is the censoring Kaplan–Meier (:func:`censoring_km`) of the training fold.
    A death at :math:`t_i` is weighted by :math:`1/\hat G(t_i-)`, the probability of being
    uncensored *just before* :math:`t_i` (Graf et al., Eq. 6): a patient censored at the same
    time as the death was still under observation when it happened (censorings at a tied
    time are taken to follow the deaths). ``ipcw="right"`` uses :math:`\hat G(t_i)` instead,
    the convention of ``sksurv.metrics.brier_score``; the two differ only when a training
    censoring time equals a test death time. Patients censored before :math:`\tau`
    contribute 0 but still count in ``n``.

    Args:
        surv: ``(n, n_times)`` predicted survival of the test patients at ``times``.
        times: ``(n_times,)`` strictly increasing evaluation times.
        time, event: ``(n,)`` test follow-up and event indicator.
        train_time, train_event: ``(n_train,)`` training data for :math:`\hat G`.
        ipcw: ``"graf"`` (:math:`\hat G(t_i-)`, default) or ``"right"`` (:math:`\hat G(t_i)`).

    Returns:
        ``(n_times,)`` Brier scores.

    Raises:
        ValueError: when :math:`\hat G` is 0 or undefined where it is needed (evaluation
        times beyond the training follow-up); evaluate at earlier times.

    >>> brier_score([[1.0], [0.0]], [2.0], [1.0, 3.0], [1, 1], [1.0, 3.0], [1, 1])
    array([1.])
    """
    if ipcw not in ("graf", "right"):
        raise ValueError(f"brier_score: ipcw must be 'graf' (G(t_i-), Graf et al.) or 'right' (G(t_i)), got {ipcw!r}")
    t, e = _survival_inputs(time, event, "brier_score")
    s, g = _grid_input(surv, times, t.shape[0], "brier_score")
    cens = censoring_km(train_time, train_event)
    last = cens.x[-1]
    if g[-1] > last and cens.value[-1] > 0:
        raise ValueError(
            f"brier_score: evaluation time {g[-1]:g} lies beyond the longest training follow-up "
            f"({last:g}), where the censoring distribution is unknown; use times <= {last:g}"
        )
    g_tau = cens(g)  # (n_times,)
    case = e[:, None] & (t[:, None] <= g[None, :])  # (n, n_times)
    control = t[:, None] > g[None, :]  # (n, n_times)
    g_ti = cens.left(t) if ipcw == "graf" else cens(t)  # (n,)
    needed_ti = case.any(axis=1)
    if (g_tau[control.any(axis=0)] <= 0).any() or (g_ti[needed_ti] <= 0).any():
        raise ValueError(
            "brier_score: the training censoring survival G(t) is 0 at a needed time (every training "
            "patient still at risk was censored by then); evaluate at earlier times"
        )
    safe_ti = np.where(needed_ti, g_ti, 1.0)[:, None]
    safe_tau = np.where(g_tau > 0, g_tau, 1.0)[None, :]
    terms = np.where(case, s**2 / safe_ti, 0.0) + np.where(control, (1.0 - s) ** 2 / safe_tau, 0.0)
    return terms.mean(axis=0)


def integrated_brier_score(
    surv: Any,
    times: Any,
    time: Any,
    event: Any,
    train_time: Any,
    train_event: Any,
    ipcw: str = "graf",
) -> float:
    r"""Integrated Brier score :math:`\frac{1}{\tau_K - \tau_1}\int_{\tau_1}^{\tau_K} BS(\tau)\,d\tau`
    by the trapezoid rule over the evaluation grid (needs ``n_times >= 2``).

    Arguments as in :func:`brier_score`.

    >>> integrated_brier_score([[0.5, 0.5], [1.0, 1.0]], [2.0, 3.0], [1.0, 4.0], [1, 1], [1.0, 4.0], [1, 1])
    0.125
    """
    g = _to_numpy(times, "times").reshape(-1)
    if g.size < 2:
        raise ValueError("integrated_brier_score: needs at least two evaluation times")
    bs = brier_score(surv, g, time, event, train_time, train_event, ipcw=ipcw)
    area = float(np.sum(0.5 * (bs[1:] + bs[:-1]) * np.diff(g)))
    return area / float(g[-1] - g[0])
