r"""Resampling statistics of survival predictions: bootstrap intervals and permutation tests.

* :func:`bootstrap_ci`: percentile bootstrap interval of any metric over patients;
* :func:`fold_mean_bootstrap_ci`: the same for the **mean of the fold c-indices** (patients
  resampled within each validation fold);
* :func:`t_interval`: Student's interval of a mean (e.g. of paired fold differences);
* :func:`fold_permutation_cindex`: the permutation null of the fold-mean c-index (risks
  shuffled within each fold), the "random-risk reference" of the report.

Inputs as in :mod:`~survmamba_lite.survival.metrics` (``time``, ``event`` with 1 = death,
``risk`` higher = earlier death). Every function takes an explicit ``seed``.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import numpy as np
import pandas as pd

from .metrics import _to_numpy, comparable_pairs, concordance_index, concordance_of_pairs

__all__ = ["BootstrapCI", "bootstrap_ci", "fold_mean_bootstrap_ci", "t_interval", "PermutationNull",
           "fold_permutation_cindex"]


# --------------------------------------------------------------------------- bootstrap
class BootstrapCI(NamedTuple):
    """Point estimate on the full data and a percentile interval."""

    estimate: float
    low: float
    high: float


def bootstrap_ci(
    metric_fn: Callable[..., float],
    *arrays: Any,
    n_boot: int = 1000,
    seed: int,
    level: float = 0.95,
) -> BootstrapCI:
    r"""Percentile bootstrap interval of ``metric_fn(*arrays)`` over patients.

    Each replicate draws ``n`` patient indices with replacement (``numpy.random.default_rng(seed)``)
    and indexes every array along axis 0 (so ``(n,)`` vectors and ``(n, n_times)`` curves stay
    aligned). Replicates on which the metric raises ``ValueError``/``ZeroDivisionError``
    (e.g. no comparable pair) are skipped with a warning. The result is deterministic given
    ``seed``.

    Args:
        metric_fn: called as ``metric_fn(*resampled_arrays)``, returns a float.
        *arrays: arrays with the same first dimension ``n`` (numpy or torch).
        n_boot: number of replicates.
        seed: seed of the resampling generator (required, so runs are reproducible).
        level: coverage of the interval, e.g. 0.95.

    Returns:
        ``BootstrapCI(estimate, low, high)``.

    >>> est, lo, hi = bootstrap_ci(np.mean, np.arange(10.0), n_boot=200, seed=0)
    >>> est, lo <= est <= hi
    (4.5, True)
    """
    if not arrays:
        raise ValueError("bootstrap_ci: pass at least one array to resample")
    if not 0.0 < level < 1.0:
        raise ValueError(f"bootstrap_ci: level must lie in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"bootstrap_ci: n_boot must be >= 1, got {n_boot}")
    data = [_to_numpy(a, f"arrays[{k}]", dtype=None) for k, a in enumerate(arrays)]
    n = data[0].shape[0]
    for k, a in enumerate(data):
        if a.ndim == 0 or a.shape[0] != n:
            raise ValueError(f"bootstrap_ci: arrays[{k}] has first dimension {a.shape[:1]}, expected {n}")
    estimate = float(metric_fn(*data))
    if math.isnan(estimate):
        raise ValueError("bootstrap_ci: the metric is NaN on the full data")
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, size=n)
        try:
            stats.append(float(metric_fn(*[a[idx] for a in data])))
        except (ValueError, ZeroDivisionError):
            continue
    skipped = n_boot - len(stats)
    if not stats:
        raise ValueError("bootstrap_ci: the metric failed on every bootstrap replicate; check the inputs")
    if skipped:
        warnings.warn(f"bootstrap_ci: skipped {skipped} of {n_boot} replicates where the metric was undefined",
                      RuntimeWarning, stacklevel=2)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(np.asarray(stats), [tail, 1.0 - tail])
    return BootstrapCI(estimate, float(low), float(high))


def fold_mean_bootstrap_ci(frame: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0,
                           level: float = 0.95) -> tuple[float, float, float]:
    """Percentile bootstrap interval of the **mean of the fold c-indices**.

    Each replicate resamples the patients of every validation fold with replacement
    (separately per fold, so fold sizes stay fixed), recomputes each fold's c-index and
    averages them. A replicate where a fold has no comparable pair is skipped.

    Args:
        frame: out-of-fold predictions with columns ``fold, time, event, risk``.

    Returns:
        ``(estimate, low, high)``; the estimate is the plain mean of the fold c-indices.

    >>> f = pd.DataFrame({"fold": [0] * 4 + [1] * 4, "time": [1, 2, 3, 4] * 2, "event": [1] * 8,
    ...                   "risk": [4, 3, 2, 1, 1, 2, 3, 4]})
    >>> fold_mean_bootstrap_ci(f, n_boot=50)[0]
    0.5
    """
    groups = [(g["time"].to_numpy(float), g["event"].to_numpy(int), g["risk"].to_numpy(float))
              for _, g in frame.groupby("fold", sort=True)]
    estimate = float(np.mean([concordance_index(t, r, e) for t, e, r in groups]))
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n_boot):
        vals = []
        for t, e, r in groups:
            idx = rng.integers(0, len(t), size=len(t))
            try:
                vals.append(concordance_index(t[idx], r[idx], e[idx]))
            except ValueError:
                break
        if len(vals) == len(groups):
            stats.append(np.mean(vals))
    if not stats:
        raise ValueError("fold_mean_bootstrap_ci: no bootstrap replicate had comparable pairs in every fold")
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(stats, [tail, 1.0 - tail])
    return estimate, float(low), float(high)


def t_interval(x: Any, level: float = 0.95) -> tuple[float, float]:
    r"""Student's t-interval of the mean of ``x: (n,)``: :math:`\bar x \pm t_{(1+\text{level})/2,\,n-1}\, s / \sqrt n`.

    ``(nan, nan)`` for fewer than two values.

    >>> lo, hi = t_interval([1.0, 2.0, 3.0])
    >>> round(lo, 3), round(hi, 3)
    (-0.484, 4.484)
    """
    from scipy import stats

    x = np.asarray(x, dtype=np.float64)
    n = x.size
    if n < 2:
        return float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return float(x.mean() - half), float(x.mean() + half)


# --------------------------------------------------------------------------- permutation null
_TIE_TOL = 1e-12           # null fold-means within this of the observed one count as ">="


@dataclass(frozen=True)
class PermutationNull:
    r"""Result of :func:`fold_permutation_cindex`.

    Attributes:
        observed: mean over the used folds of the fold's Harrell C.
        null: ``(n_perm,)`` the same mean with the risks shuffled within each fold.
        p_value: one-sided permutation p, :math:`(1 + \#\{b: \bar C^{(b)} \ge \bar C_\text{obs}\}) / (1 + B)`.
        folds: fold ids that entered the mean, ascending.
        skipped: fold ids left out (no comparable pair: too small or fully censored).
    """

    observed: float
    null: np.ndarray
    p_value: float
    folds: tuple
    skipped: tuple


def fold_permutation_cindex(time: Any, risk: Any, event: Any, fold: Any, n_perm: int = 1000,
                            seed: int = 0) -> PermutationNull:
    r"""Permutation null of the fold-mean Harrell C when the risks carry no information.

    With folds :math:`f = 1..k` and :math:`C_f(r)` Harrell's C of the risks ``r`` on fold
    ``f`` (:func:`~survmamba_lite.survival.concordance_index`), the statistic is
    :math:`\bar C(r) = \frac1k \sum_f C_f(r)`, the number Table 1 reports. Replicate
    ``b`` draws an independent uniform permutation :math:`\pi_f^{(b)}` of the risks inside
    each fold, so times, events, censoring, fold sizes and the multiset of risk values
    (ties included) stay exactly as observed; only the link between a patient and a risk
    is broken:

    .. math::

        \bar C^{(b)} = \frac1k \sum_f C_f\!\big(r \circ \pi_f^{(b)}\big), \qquad
        p = \frac{1 + \#\{b : \bar C^{(b)} \ge \bar C_\text{obs}\}}{1 + B}.

    Under the null every comparable pair is concordant or discordant with equal chance
    (a tied pair counts ½ either way), so :math:`E[\bar C^{(b)}] = 0.5` exactly; the
    spread of :math:`\bar C^{(b)}` is what a random risk reaches on folds this size. The
    p-value is the usual one-sided Monte-Carlo permutation p (never 0; its smallest value
    is :math:`1 / (1 + B)`). Values within ``1e-12`` of the observed mean count as ``>=``
    (float rounding of equal fractions).

    Folds without a comparable pair are left out of the mean (listed in ``skipped``).
    Random stream: ``numpy.random.default_rng(seed)``; for each fold in ascending fold
    id, one ``rng.permuted`` call on ``n_perm`` copies of the fold's risks (row ``b`` is
    replicate ``b``). The null C's are counted on the fold's comparable pairs, vectorised
    over replicates (:func:`~survmamba_lite.survival.metrics.concordance_of_pairs`, the kernel of
    :func:`~survmamba_lite.survival.concordance_index_ref`); the observed C is
    :func:`concordance_index`'s and equals the identity permutation's.

    Args:
        time: ``(n,)`` follow-up times.
        risk: ``(n,)`` predicted risk (higher = earlier death).
        event: ``(n,)`` 1 = death observed, 0 = censored.
        fold: ``(n,)`` validation fold of each patient.
        n_perm: replicates ``B`` (>= 1).
        seed: seed of the permutations.

    >>> t = np.arange(1.0, 21.0); e = np.ones(20); fold = np.repeat([0, 1], 10)
    >>> perfect = fold_permutation_cindex(t, -t, e, fold, n_perm=999)
    >>> perfect.observed, perfect.p_value, round(float(perfect.null.mean()), 2)
    (1.0, 0.001, 0.5)
    >>> fold_permutation_cindex(t, t, e, fold, n_perm=999).p_value      # reversed ranking
    1.0
    """
    t_all, e_all = (np.asarray(x, dtype=np.float64).reshape(-1) for x in (time, event))
    r_all = np.asarray(risk, dtype=np.float64).reshape(-1)
    f_all = np.asarray(fold).reshape(-1)
    if not (t_all.shape == e_all.shape == r_all.shape == f_all.shape):
        raise ValueError(f"fold_permutation_cindex: time, risk, event and fold must have the same length, got "
                         f"{t_all.shape[0]}, {r_all.shape[0]}, {e_all.shape[0]} and {f_all.shape[0]}")
    if int(n_perm) < 1:
        raise ValueError(f"fold_permutation_cindex: n_perm must be >= 1, got {n_perm}")
    n_perm = int(n_perm)
    rng = np.random.default_rng(seed)
    observed_sum, null_sum = 0.0, np.zeros(n_perm)
    used, skipped = [], []
    for k in np.unique(f_all):
        sel = f_all == k
        t, r, e = t_all[sel], r_all[sel], e_all[sel]
        try:
            c_obs = concordance_index(t, r, e)             # validates the inputs too (NaN, event 0/1)
        except ValueError as err:
            if "no comparable pairs" not in str(err):
                raise ValueError(f"fold {k}: {err}") from err
            skipped.append(k.item() if hasattr(k, "item") else k)
            continue
        i, j = comparable_pairs(t, e.astype(bool))
        shuffled = rng.permuted(np.tile(r, (n_perm, 1)), axis=1)                # (n_perm, n_fold)
        observed_sum += c_obs
        null_sum += concordance_of_pairs(shuffled, i, j)
        used.append(k.item() if hasattr(k, "item") else k)
    if not used:
        raise ValueError("fold_permutation_cindex: no fold has a comparable pair (each needs an observed death "
                         "that ends before another patient's follow-up)")
    observed = observed_sum / len(used)
    null = null_sum / len(used)
    p = (1 + int((null >= observed - _TIE_TOL).sum())) / (1 + n_perm)
    return PermutationNull(float(observed), null, float(p), tuple(used), tuple(skipped))
