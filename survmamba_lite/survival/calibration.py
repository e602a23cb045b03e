r"""Calibration of predicted survival: D-calibration and the integrated calibration index.

A c-index says whether a model **orders** patients; calibration says whether its predicted
probabilities are **right**: of the patients given a 30 % chance of dying by two years, do
about 30 % die by then? Two standard measures:

**D-calibration** (Haider, Hoehn, Davis & Greiner, JMLR 2020). If the predicted curves are
right, a patient's predicted survival at their own event time, :math:`\hat S_i(t_i)`, is
uniformly distributed on [0, 1] (the probability integral transform). Cut [0, 1] into
``n_bins`` = 10 equal bins, count the patients in each and compare with ``n / 10`` by
Pearson's :math:`\chi^2` test with ``n_bins - 1`` degrees of freedom: a small p says the
curves are not calibrated. A censored patient's transform is only known to lie in
:math:`[0, s]` with :math:`s = \hat S_i(c_i)` at the censoring time; under calibration it is
uniform there, so the patient is spread over the bins (the paper's rule): the bin holding
``s`` gets :math:`(s - \ell)/s` (:math:`\ell` its lower edge), every bin wholly below ``s``
gets :math:`w/s` (:math:`w` the bin width), the bins above nothing; the weights add to 1.

**Integrated calibration index** (Austin, Harrell & van Klaveren, Stat. Med. 2020) at a
fixed horizon :math:`t_0`. With :math:`\hat F_i = 1 - \hat S_i(t_0)` the predicted risk of
dying by :math:`t_0`, fit a Cox model of the observed outcome on a restricted cubic spline
(3 knots, at the 10th, 50th and 90th percentiles) of :math:`\operatorname{cloglog}\hat F_i
= \log(-\log(1 - \hat F_i))`; its predicted risk at :math:`t_0` is the smoothed **observed**
risk :math:`\tilde F_i`. The calibration curve is :math:`\tilde F` against :math:`\hat F`; the
ICI is the mean of :math:`|\tilde F_i - \hat F_i|` over the patients, E50 and E90 its median
and 90th percentile, Emax its maximum. A perfectly calibrated model has ICI 0 (up to
estimation noise). When every patient has the same prediction (a collapsed model) the spline
cannot be fitted; the observed risk is then the Kaplan–Meier estimate at :math:`t_0` for all.

**Discrete-time curves.** Our models predict :math:`S_k = P(Y > k)` on ``T`` time bins
:math:`[e_k, e_{k+1})` (edges ``[0, e_1, .., e_{T-1}, inf]``): the survival at each bin end
:math:`e_{k+1}`, nothing inside a bin. How :math:`\hat S(t)` is read between the edges:

* at a fixed horizon (the ICI) **linearly between the bin ends**: the knots are
  :math:`(0, 1), (e_1, S_0), \dots, (e_{T-1}, S_{T-2})` (:func:`survival_at_horizon`); a
  horizon beyond the last finite edge is refused, since the last bin has no end;
* at a patient's own time (D-calibration) through the bins: a **death** in bin ``k`` has
  its transform somewhere in :math:`[S_k, S_{k-1}]` (:math:`S_{-1} = 1`), and it is spread
  uniformly over that interval (what a straight line between the bin's two edges gives for a
  death time spread evenly across the bin; it is exactly uniform on [0, 1] when the
  discrete model is right, the non-randomised transform of a discrete distribution of
  Czado, Gneiting & Held, Biometrics 2009); a **censored** patient in bin ``k`` is read at
  :math:`s = S_k`, the survival at the end of the bin holding its time, the reading of every
  time-dependent metric here (:mod:`~survmamba_lite.survival.metrics`) and of the training
  loss, which counts such a patient as having outlived bin ``k``
  (:func:`discrete_time_pit`).

Conventions as in :mod:`~survmamba_lite.survival.metrics`: ``time: (n,)``, ``event: (n,)``
1 = death, ``surv: (n, T)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["DCalibration", "d_calibration", "discrete_time_pit", "survival_at_horizon", "Calibration",
           "calibration_at", "rcs_basis"]


# --------------------------------------------------------------------------- inputs
def _vector(x: Any, name: str, fn: str, n: int | None = None) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    v = np.asarray(x, dtype=np.float64).reshape(-1)
    if n is not None and v.shape[0] != n:
        raise ValueError(f"{fn}: {name} has {v.shape[0]} values, expected {n} (one per patient)")
    if np.isnan(v).any():
        raise ValueError(f"{fn}: {name} is NaN at index {int(np.flatnonzero(np.isnan(v))[0])}")
    return v


def _events(event: Any, fn: str, n: int) -> np.ndarray:
    e = _vector(event, "event", fn, n)
    bad = ~((e == 0) | (e == 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{fn}: event must be 0 (censored) or 1 (death); event[{i}] = {e[i]}")
    return e.astype(bool)


def _probabilities(p: np.ndarray, name: str, fn: str) -> np.ndarray:
    if ((p < -1e-12) | (p > 1 + 1e-12)).any():
        i = int(np.flatnonzero((p < -1e-12) | (p > 1 + 1e-12))[0])
        raise ValueError(f"{fn}: {name}[{i}] = {p[i]} is not a probability in [0, 1]")
    return np.clip(p, 0.0, 1.0)


# --------------------------------------------------------------------------- D-calibration
@dataclass(frozen=True)
class DCalibration:
    """Result of :func:`d_calibration`.

    Attributes:
        counts: ``(n_bins,)`` patients per bin of the transform (fractional: censored patients
            and deaths known only to an interval are spread), bins ``[0, 0.1), .., [0.9, 1]``.
        statistic: Pearson's :math:`\\chi^2 = \\sum_b (O_b - n/B)^2 / (n/B)`.
        p_value: upper tail of :math:`\\chi^2_{B-1}`; small = not calibrated.
        n: patients.
        n_events: deaths among them.
    """

    counts: np.ndarray
    statistic: float
    p_value: float
    n: int
    n_events: int

    @property
    def proportions(self) -> np.ndarray:
        """``counts / n``: 1/``n_bins`` each for a calibrated model."""
        return self.counts / self.n


def _spread_interval(lo: np.ndarray, hi: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``(n, B)`` share of each interval ``[lo_i, hi_i]`` in each bin (uniform spreading);
    an interval of zero length puts its whole weight in the bin holding the point."""
    b = edges.size - 1
    out = np.zeros((lo.size, b))
    width = hi - lo
    wide = width > 0
    if wide.any():
        overlap = (np.minimum(hi[wide, None], edges[None, 1:]) - np.maximum(lo[wide, None], edges[None, :-1]))
        out[wide] = np.clip(overlap, 0.0, None) / width[wide, None]
    point = ~wide
    if point.any():
        idx = np.clip(np.searchsorted(edges, lo[point], side="right") - 1, 0, b - 1)     # 1.0 in the top bin
        out[np.flatnonzero(point), idx] = 1.0
    return out


def d_calibration(surv_at_time: Any, event: Any, *, surv_before: Any = None, n_bins: int = 10) -> DCalibration:
    r"""D-calibration (Haider et al., JMLR 2020) of predicted survival at each patient's own time.

    Args:
        surv_at_time: ``(n,)`` :math:`\hat S_i(t_i)`, the predicted survival at the patient's
            event or censoring time.
        event: ``(n,)`` 1 = death, 0 = censored.
        surv_before: ``(n,)`` or None. For a death known only to an interval of the curve
            (a discrete-time model, :func:`discrete_time_pit`): the survival at the start of
            that interval; the death is spread uniformly over
            ``[surv_at_time, surv_before]``. None: each death counts in the bin of its
            ``surv_at_time``.
        n_bins: equal bins of [0, 1] (the paper's 10).

    A censored patient with :math:`s = \hat S_i(c_i)` is spread over :math:`[0, s]` (module
    docstring); with :math:`s = 0` it counts in the lowest bin.

    >>> r = d_calibration([0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95], [1] * 10)
    >>> r.counts.tolist(), r.statistic, round(r.p_value, 6)
    ([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], 0.0, 1.0)
    >>> d_calibration([0.25], [0], n_bins=4).counts.tolist()        # spread over [0, 0.25]
    [1.0, 0.0, 0.0, 0.0]
    >>> d_calibration([0.5], [0], n_bins=4).counts.tolist()         # 0.25 / 0.5 in each of two bins
    [0.5, 0.5, 0.0, 0.0]
    """
    from scipy import stats

    fn = "d_calibration"
    if int(n_bins) < 2:
        raise ValueError(f"{fn}: n_bins must be >= 2, got {n_bins}")
    s = _probabilities(_vector(surv_at_time, "surv_at_time", fn), "surv_at_time", fn)
    n = s.size
    if n == 0:
        raise ValueError(f"{fn}: no patients")
    e = _events(event, fn, n)
    edges = np.linspace(0.0, 1.0, int(n_bins) + 1)
    weights = np.zeros((n, int(n_bins)))
    if e.any():
        hi = s[e] if surv_before is None else _probabilities(_vector(surv_before, "surv_before", fn, n)[e],
                                                             "surv_before", fn)
        if (hi < s[e] - 1e-12).any():
            i = int(np.flatnonzero(e)[np.flatnonzero(hi < s[e] - 1e-12)[0]])
            raise ValueError(f"{fn}: surv_before[{i}] = {hi[hi < s[e] - 1e-12][0]} is below surv_at_time[{i}] = "
                             f"{s[i]}; a survival curve cannot rise")
        weights[e] = _spread_interval(s[e], np.maximum(hi, s[e]), edges)
    if (~e).any():
        weights[~e] = _spread_interval(np.zeros((~e).sum()), s[~e], edges)
    counts = weights.sum(0)
    expected = n / int(n_bins)
    statistic = float(((counts - expected) ** 2 / expected).sum())
    return DCalibration(counts=counts, statistic=statistic, p_value=float(stats.chi2.sf(statistic, int(n_bins) - 1)),
                        n=int(n), n_events=int(e.sum()))


def discrete_time_pit(surv: Any, time_bin: Any, event: Any) -> tuple[np.ndarray, np.ndarray]:
    r"""The transform of discrete-time curves at each patient's own time (module docstring).

    Args:
        surv: ``(n, T)`` :math:`S_0..S_{T-1}` of each patient.
        time_bin: ``(n,)`` the bin ``k`` holding each patient's time (the fold's binner).
        event: ``(n,)`` 1 = death, 0 = censored.

    Returns:
        ``surv_at_time`` (:math:`S_k`) and ``surv_before`` (:math:`S_{k-1}`, 1 in the first
        bin; for a censored patient equal to ``surv_at_time``, unused), the arguments of
        :func:`d_calibration`.

    >>> discrete_time_pit([[0.9, 0.6, 0.2], [0.9, 0.6, 0.2]], [1, 0], [1, 0])
    (array([0.6, 0.9]), array([0.9, 0.9]))
    """
    fn = "discrete_time_pit"
    s = np.asarray(surv.detach().cpu().numpy() if hasattr(surv, "detach") else surv, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"{fn}: surv must have shape (n, T), got {s.shape}")
    k = _vector(time_bin, "time_bin", fn, s.shape[0])
    if (k != np.round(k)).any() or (k < 0).any() or (k >= s.shape[1]).any():
        i = int(np.flatnonzero((k != np.round(k)) | (k < 0) | (k >= s.shape[1]))[0])
        raise ValueError(f"{fn}: time_bin[{i}] = {k[i]} is not a bin 0..{s.shape[1] - 1}")
    k = k.astype(np.int64)
    e = _events(event, fn, s.shape[0])
    rows = np.arange(s.shape[0])
    at = s[rows, k]
    padded = np.concatenate([np.ones((s.shape[0], 1)), s], axis=1)
    before = np.where(e, padded[rows, k], at)
    return at, before


# --------------------------------------------------------------------------- horizons
def survival_at_horizon(surv: Any, edges: Any, t0: float) -> np.ndarray:
    r"""Discrete-time curves read at a time ``t0``, linearly between the bin ends (module docstring).

    Args:
        surv: ``(n, T)`` :math:`S_0..S_{T-1}`.
        edges: ``(T + 1,)`` bin edges ``[0, e_1, .., e_{T-1}, inf]``.
        t0: the horizon, ``0 <= t0 <= e_{T-1}``.

    Returns:
        ``(n,)`` :math:`\hat S_i(t_0)`.

    >>> survival_at_horizon([[0.8, 0.4, 0.1]], [0.0, 10.0, 20.0, np.inf], 15.0)
    array([0.6])
    >>> survival_at_horizon([[0.8, 0.4, 0.1]], [0.0, 10.0, 20.0, np.inf], 5.0)
    array([0.9])
    """
    s = np.asarray(surv, dtype=np.float64)
    e = np.asarray(edges, dtype=np.float64).reshape(-1)
    if s.ndim != 2 or e.size != s.shape[1] + 1:
        raise ValueError(f"survival_at_horizon: surv (n, T) needs T + 1 edges; got surv {s.shape} and "
                         f"{e.size} edges")
    ends = e[1:-1]                                                          # (T - 1,) finite bin ends
    if not 0.0 <= t0 <= ends[-1]:
        raise ValueError(f"survival_at_horizon: horizon {t0} lies outside [0, {ends[-1]}], the last finite bin "
                         "edge of this fold; a discrete-time curve has no end to its last bin. Choose a "
                         "horizon inside the binned range")
    knots = np.concatenate([[0.0], ends])
    values = np.concatenate([np.ones((s.shape[0], 1)), s[:, :-1]], axis=1)   # (n, T): 1, S_0 .. S_{T-2}
    j = int(np.clip(np.searchsorted(knots, t0, side="right") - 1, 0, knots.size - 2))
    w = (t0 - knots[j]) / (knots[j + 1] - knots[j])
    return values[:, j] + w * (values[:, j + 1] - values[:, j])


# --------------------------------------------------------------------------- ICI
def rcs_basis(x: Any, knots: Any) -> np.ndarray:
    r"""Restricted cubic spline basis of Harrell (``Hmisc::rcspline.eval``, ``norm = 2``).

    ``(n, K - 1)``: ``x`` itself and, for :math:`j = 1..K-2`,
    :math:`\big[(x - t_j)_+^3 - (x - t_{K-1})_+^3 \frac{t_K - t_j}{t_K - t_{K-1}} + (x - t_K)_+^3
    \frac{t_{K-1} - t_j}{t_K - t_{K-1}}\big] / (t_K - t_1)^2`; linear beyond the outer knots.

    >>> b = rcs_basis([0.0, 1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0])
    >>> b[:, 1].tolist()        # 0 up to the first knot, (2 - 1)**3 / 4 at 2, linear beyond the last knot
    [0.0, 0.0, 0.25, 1.5, 3.0]
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    t = np.asarray(knots, dtype=np.float64)
    k = t.size
    cols = [x]
    norm = (t[-1] - t[0]) ** 2
    for j in range(k - 2):
        cols.append((np.clip(x - t[j], 0, None) ** 3
                     - np.clip(x - t[-2], 0, None) ** 3 * (t[-1] - t[j]) / (t[-1] - t[-2])
                     + np.clip(x - t[-1], 0, None) ** 3 * (t[-2] - t[j]) / (t[-1] - t[-2])) / norm)
    return np.stack(cols, axis=1)


@dataclass(frozen=True)
class Calibration:
    """Result of :func:`calibration_at`.

    Attributes:
        horizon: :math:`t_0`.
        ici, e50, e90, emax: mean, median, 90th percentile and maximum of
            :math:`|\\tilde F_i - \\hat F_i|` over the patients.
        predicted_mean: mean predicted risk :math:`\\hat F` by :math:`t_0`.
        observed_km: Kaplan–Meier risk by :math:`t_0` (calibration in the large: compare
            with ``predicted_mean``).
        curve: one row per patient, sorted by prediction: ``predicted`` :math:`\\hat F_i`,
            ``observed`` :math:`\\tilde F_i`.
        n, n_events: patients and deaths.
        method: ``"cox-rcs"`` (the spline fit) or ``"km"`` (constant predictions).
    """

    horizon: float
    ici: float
    e50: float
    e90: float
    emax: float
    predicted_mean: float
    observed_km: float
    curve: pd.DataFrame
    n: int
    n_events: int
    method: str


def _km_risk(t: np.ndarray, e: np.ndarray, t0: float) -> float:
    from survmamba_lite.survival.km import kaplan_meier

    km = kaplan_meier(t, e)
    below = km[km["time"] <= t0]
    return float(1.0 - (below["survival"].iloc[-1] if len(below) else 1.0))


def calibration_at(surv_at_horizon: Any, time: Any, event: Any, horizon: float, *, n_knots: int = 3,
                   penalizer: float = 0.0) -> Calibration:
    r"""Smoothed calibration curve and integrated calibration index at ``horizon`` (Austin et al. 2020).

    Args:
        surv_at_horizon: ``(n,)`` predicted :math:`\hat S_i(t_0)` (for discrete-time curves
            :func:`survival_at_horizon`).
        time, event: ``(n,)`` follow-up and 1 = death.
        horizon: :math:`t_0`, in the units of ``time``.
        n_knots: knots of the restricted cubic spline of the complementary log-log of the
            predicted risk (Austin et al.: 3, at the 10th, 50th and 90th percentiles).
        penalizer: ridge penalty of lifelines' ``CoxPHFitter`` (0: the plain Cox fit).

    Predicted risks are clipped to ``[1e-10, 1 - 1e-10]`` before the log-log transform.
    """
    from lifelines import CoxPHFitter

    fn = "calibration_at"
    s = _probabilities(_vector(surv_at_horizon, "surv_at_horizon", fn), "surv_at_horizon", fn)
    n = s.size
    t = _vector(time, "time", fn, n)
    e = _events(event, fn, n)
    if e.sum() < 2:
        raise ValueError(f"{fn}: {int(e.sum())} death(s); a calibration curve needs observed deaths")
    pred = np.clip(1.0 - s, 1e-10, 1 - 1e-10)
    x = np.log(-np.log(1.0 - pred))
    km = _km_risk(t, e, float(horizon))
    knots = np.unique(np.quantile(x, np.linspace(0.1, 0.9, n_knots) if n_knots > 2 else [0.1, 0.9]))
    if np.ptp(x) < 1e-10:
        observed, method = np.full(n, km), "km"
    else:
        basis = rcs_basis(x, knots) if knots.size >= 3 else x[:, None]
        cols = [f"x{j}" for j in range(basis.shape[1])]
        df = pd.DataFrame(basis, columns=cols).assign(time=t, event=e.astype(int))
        cph = CoxPHFitter(penalizer=penalizer).fit(df, "time", "event")
        observed = 1.0 - cph.predict_survival_function(df[cols], times=[float(horizon)]).to_numpy().reshape(-1)
        method = "cox-rcs"
    diff = np.abs(observed - pred)
    order = np.argsort(pred, kind="stable")
    return Calibration(horizon=float(horizon), ici=float(diff.mean()), e50=float(np.median(diff)),
                       e90=float(np.quantile(diff, 0.9)), emax=float(diff.max()), predicted_mean=float(pred.mean()),
                       observed_km=km, curve=pd.DataFrame({"predicted": pred[order], "observed": observed[order]}),
                       n=int(n), n_events=int(e.sum()), method=method)
