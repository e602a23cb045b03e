r"""Evaluation metrics: Harrell's C (the paper's metric), Antolini's time-dependent C,
IPCW Brier score / integrated Brier score, and percentile bootstrap intervals.

Conventions shared by every function here:

* ``time: (n,)`` follow-up times, ``event: (n,)`` 1 = death observed, 0 = censored;
* ``risk: (n,)`` higher = earlier death (e.g. :func:`~survmamba_lite.survival.risk_score`);
* ``surv: (n, K)`` predicted survival probabilities :math:`\hat S_i(\tau_k)` on a grid of
  ``K`` increasing times ``times: (K,)``, read as a right-continuous step function
  (:math:`\hat S_i(t) = \hat S_i(\tau_k)` for the last :math:`\tau_k \le t`, 1 before
  :math:`\tau_0`);
* numpy arrays, pandas Series, lists and torch tensors are all accepted.

Discrete-time curves (one placement for every time-dependent metric). A model with time
bins :math:`[e_k, e_{k+1})` (edges ``(T + 1,)`` = ``[0, e_1, .., e_{T-1}, inf]``) predicts
:math:`S_k = P(Y > k)`, the probability of outliving bin ``k``. Every time-dependent metric
reads it the same way: **at any time t the curve is the survival at the end of the bin
containing t**, :math:`\hat S(t) = S_{k(t)}` with :math:`k(t)` the binner's bin of ``t``. On
the grid of this module that is the step function with knots at the left edges
(:func:`bin_survival_grid`: ``times = e_0..e_{T-1}``, values ``S_0..S_{T-1}``). A
discrete-time model says nothing about times inside a bin, and the end of the bin is the
only time inside it where :math:`S_k` is the model's exact survival: so the time-dependent
C reads :math:`S_{k(t_i)}` at a death in bin :math:`k(t_i)`, and the Brier score is evaluated
at the last time inside each finite bin (:func:`bin_end_times`), where the truth
:math:`\mathbb 1[t_i > \tau]` and the prediction :math:`S_k` refer to the same event
"alive at the end of bin k".

Comparable pairs (Harrell; identical to ``lifelines.utils.concordance_index``): a pair
``(i, j)`` is comparable when the patient ``i`` who left first died, i.e.
:math:`\delta_i = 1` and :math:`t_i < t_j`, or :math:`t_i = t_j` with ``j`` censored (a
censored patient is taken to outlive a death at the same time). Two deaths at the same time
and any pair whose earlier member is censored are not comparable.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable, NamedTuple

import numpy as np

__all__ = [
    "concordance_index",
    "concordance_index_ref",
    "concordance_td",
    "survival_at",
    "bin_survival_grid",
    "bin_end_times",
    "censoring_km",
    "brier_score",
    "integrated_brier_score",
    "bootstrap_ci",
    "BootstrapCI",
]


# --------------------------------------------------------------------------- inputs
def _to_numpy(x: Any, name: str, dtype: Any = np.float64) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _survival_inputs(time: Any, event: Any, fn: str, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    t = _to_numpy(time, "time")
    if t.ndim != 1:
        raise ValueError(f"{fn}: time must have shape (n,), got {t.shape}")
    e = _to_numpy(event, "event").reshape(-1)
    if t.shape != e.shape:
        raise ValueError(f"{fn}: time and event must have the same length, got {t.shape[0]} and {e.shape[0]}")
    if n is not None and t.shape[0] != n:
        raise ValueError(f"{fn}: expected {n} patients in time/event, got {t.shape[0]}")
    if np.isnan(t).any():
        raise ValueError(f"{fn}: time contains NaN at index {int(np.flatnonzero(np.isnan(t))[0])}; drop or fix that patient")
    if (t < 0).any():
        raise ValueError(f"{fn}: time must be >= 0; time[{int(np.flatnonzero(t < 0)[0])}] is negative")
    bad = ~((e == 0) | (e == 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{fn}: event must be 0 (censored) or 1 (death); event[{i}] = {e[i]}. "
            "Convert TCGA `censorship` once with event = 1 - censorship."
        )
    return t, e.astype(bool)


def _risk_input(risk: Any, n: int | None, fn: str) -> np.ndarray:
    r = _to_numpy(risk, "risk")
    if r.ndim == 2 and 1 in r.shape:
        r = r.reshape(-1)
    if n is None:
        n = r.shape[0] if r.ndim == 1 else -1
    if r.shape != (n,):
        raise ValueError(f"{fn}: risk must have shape (n,) = ({n},), got {r.shape}")
    if np.isnan(r).any():
        raise ValueError(f"{fn}: risk contains NaN at index {int(np.flatnonzero(np.isnan(r))[0])}; "
                         "the model produced NaN for that patient (check inputs and training)")
    return r


# --------------------------------------------------------------------------- Harrell's C
def _count_earlier_greater(v: np.ndarray, w: np.ndarray) -> int:
    r""":math:`\sum_p \#\{q < p : w_q,\ v_q > v_p\}` for integer ranks ``v`` in ``0..M-1``.

    Bottom-up merge counting: at level ``s`` the sequence is cut into blocks of ``s`` items;
    every item of a right block is compared with the flagged items of its left sibling
    through one global ``searchsorted`` (block-pair id * M + rank keeps pairs apart).
    ``O(n log^2 n)`` and fully vectorised.
    """
    n = v.shape[0]
    m = int(v.max()) + 1 if n else 1
    pos = np.arange(n)
    total = 0
    s = 1
    while s < n:
        block = pos // s
        pair = block // 2
        left = (block % 2) == 0
        keys = np.sort(pair[left & w] * m + v[left & w])
        right = ~left
        pr, vr = pair[right], v[right]
        hi = np.searchsorted(keys, (pr + 1) * m, side="left")
        lo = np.searchsorted(keys, pr * m + vr, side="right")
        total += int((hi - lo).sum())
        s *= 2
    return total


def _concordance_counts(t: np.ndarray, r: np.ndarray, e: np.ndarray) -> tuple[int, int, int]:
    """(concordant, tied-risk, comparable) pair counts under the lifelines rules."""
    _, t_rank = np.unique(t, return_inverse=True)
    # order key: a death j precedes patient i (pair comparable) iff key_j < key_i
    key = 2 * t_rank.astype(np.int64) + (~e).astype(np.int64)
    _, r_rank = np.unique(r, return_inverse=True)
    r_rank = r_rank.astype(np.int64)
    death_keys = np.sort(key[e])
    comparable = int(np.searchsorted(death_keys, key, side="left").sum())
    # concordant: earlier death with higher risk. Within one key, sort risk ascending so
    # equal-key items never count each other.
    order = np.lexsort((r_rank, key))
    concordant = _count_earlier_greater(r_rank[order], e[order])
    # discordant: earlier death with lower risk (ranks flipped, within-key order descending)
    flipped = r_rank.max() - r_rank if r_rank.size else r_rank
    order = np.lexsort((flipped, key))
    discordant = _count_earlier_greater(flipped[order], e[order])
    return concordant, comparable - concordant - discordant, comparable


def _no_pairs_error(fn: str) -> ValueError:
    return ValueError(
        f"{fn}: no comparable pairs (needs at least one observed death that ends before another "
        "patient's follow-up); the evaluation set is too small or fully censored"
    )


def concordance_index(time: Any, risk: Any, event: Any) -> float:
    r"""Harrell's concordance index; higher ``risk`` = earlier death.

    .. math::

        C = \frac{\#\{\text{comparable } (i,j):\ r_i > r_j\} + \tfrac12\,\#\{\text{comparable } (i,j):\ r_i = r_j\}}
                 {\#\{\text{comparable } (i, j)\}}

    with ``i`` the member of the pair who died first (comparable pairs in the module
    docstring). The result equals ``lifelines.utils.concordance_index(time, -risk, event)``
    (lifelines takes predicted *survival times*, hence the sign), tie rules included.
    Runs in ``O(n log^2 n)`` with vectorised numpy; n = 10,000 takes milliseconds.

    Args:
        time: ``(n,)`` follow-up times.
        risk: ``(n,)`` predicted risk.
        event: ``(n,)`` 1 = death observed, 0 = censored.

    Raises:
        ValueError: NaN in ``risk`` or ``time``, ``event`` not 0/1, or no comparable pair.

    >>> concordance_index([1, 2, 3, 4, 5], [4, 1, 3, 2, 2], [1, 1, 0, 1, 1])
    0.5625
    """
    t, e = _survival_inputs(time, event, "concordance_index")
    r = _risk_input(risk, t.shape[0], "concordance_index")
    conc, tied, pairs = _concordance_counts(t, r, e)
    if pairs == 0:
        raise _no_pairs_error("concordance_index")
    return (conc + 0.5 * tied) / pairs


def concordance_index_ref(time: Any, risk: Any, event: Any, chunk: int = 1024) -> float:
    """Slow twin of :func:`concordance_index`: the comparable-pair matrix, built in chunks.

    ``O(n^2)`` time, ``O(chunk * n)`` memory; kept as the readable reference.

    >>> concordance_index_ref([1, 2, 3, 4, 5], [4, 1, 3, 2, 2], [1, 1, 0, 1, 1])
    0.5625
    """
    t, e = _survival_inputs(time, event, "concordance_index_ref")
    r = _risk_input(risk, t.shape[0], "concordance_index_ref")
    conc = tied = pairs = 0
    deaths = np.flatnonzero(e)
    for start in range(0, deaths.size, chunk):
        i = deaths[start:start + chunk, None]  # (c, 1) the patient who died first
        comparable = (t[None, :] > t[i]) | ((t[None, :] == t[i]) & ~e[None, :])  # (c, n)
        pairs += int(comparable.sum())
        conc += int((comparable & (r[i] > r[None, :])).sum())
        tied += int((comparable & (r[i] == r[None, :])).sum())
    if pairs == 0:
        raise _no_pairs_error("concordance_index_ref")
    return (conc + 0.5 * tied) / pairs


# --------------------------------------------------------------------------- curves
def _grid_input(surv: Any, times: Any, n: int | None, fn: str) -> tuple[np.ndarray, np.ndarray]:
    s = _to_numpy(surv, "surv")
    g = _to_numpy(times, "times").reshape(-1)
    if s.ndim != 2 or s.shape[1] != g.shape[0]:
        raise ValueError(f"{fn}: surv must have shape (n, K) with K = len(times) = {g.shape[0]}, got {s.shape}")
    if n is not None and s.shape[0] != n:
        raise ValueError(f"{fn}: surv has {s.shape[0]} rows but there are {n} patients")
    if g.size == 0 or np.any(np.diff(g) <= 0) or np.isnan(g).any():
        raise ValueError(f"{fn}: times must be non-empty and strictly increasing")
    if np.isnan(s).any():
        row = int(np.flatnonzero(np.isnan(s).any(axis=1))[0])
        raise ValueError(f"{fn}: surv contains NaN in row {row}")
    return s, g


def survival_at(surv: Any, times: Any, at: Any) -> np.ndarray:
    r"""Evaluate step survival curves at arbitrary times.

    :math:`\hat S_i(u) = \hat S_i(\tau_k)` for the last grid time :math:`\tau_k \le u`, and 1
    for :math:`u < \tau_0`.

    Args:
        surv: ``(n, K)`` survival probabilities on the grid ``times``.
        times: ``(K,)`` strictly increasing grid.
        at: ``(M,)`` query times.

    Returns:
        ``(n, M)`` survival probabilities.

    >>> survival_at([[0.9, 0.5]], [1.0, 2.0], [0.5, 1.0, 1.5, 9.0])
    array([[1. , 0.9, 0.9, 0.5]])
    """
    s, g = _grid_input(surv, times, None, "survival_at")
    u = _to_numpy(at, "at").reshape(-1)
    idx = np.searchsorted(g, u, side="right") - 1  # (M,)
    padded = np.concatenate([np.ones((s.shape[0], 1)), s], axis=1)  # column 0 is S = 1
    return padded[:, idx + 1]


def bin_survival_grid(edges: Any) -> np.ndarray:
    r"""Knots at which discrete-time curves ``S_0..S_{T-1}`` are read: the bins' left edges.

    With these knots :func:`survival_at` returns :math:`S_{k(t)}` for a time ``t`` in bin
    ``k`` (the survival at the end of the bin containing ``t``, module notes).

    Args:
        edges: ``(T + 1,)`` bin edges ``[0, e_1, .., e_{T-1}, inf]``.

    Returns:
        ``(T,)`` knots ``e_0..e_{T-1}``.

    >>> edges = np.array([0.0, 2.0, 5.0, np.inf])
    >>> survival_at([[0.9, 0.6, 0.2]], bin_survival_grid(edges), [0.0, 1.9, 2.0, 7.0]).tolist()
    [[0.9, 0.9, 0.6, 0.2]]
    """
    e = _to_numpy(edges, "edges").reshape(-1)
    if e.size < 2 or np.any(np.diff(e) <= 0) or e[0] != 0.0 or not np.isinf(e[-1]):
        raise ValueError(f"bin_survival_grid: edges must be increasing from 0 to inf (the binner's edges_), got {e}")
    return e[:-1]


def bin_end_times(edges: Any) -> np.ndarray:
    r"""The last time inside each finite bin, ``nextafter(e_{k+1}, 0)`` for ``k = 0..T-2``.

    Bins are half open, :math:`[e_k, e_{k+1})`, so the end of bin ``k`` is the largest float
    below :math:`e_{k+1}`. There the curve read by :func:`bin_survival_grid` is :math:`S_k`
    and the truth :math:`\mathbb 1[t > \tau]` is :math:`\mathbb 1[t \ge e_{k+1}]`, "alive at
    the end of bin k": the Brier score's evaluation times.

    >>> taus = bin_end_times(np.array([0.0, 2.0, 5.0, np.inf]))
    >>> bool(np.all(taus < [2.0, 5.0])), np.allclose(taus, [2.0, 5.0])
    (True, True)
    """
    grid = bin_survival_grid(edges)
    return np.nextafter(grid[1:], -np.inf)


def concordance_td(time: Any, event: Any, surv: Any, times: Any, tie_score: float = 0.5, chunk: int = 512) -> float:
    r"""Antolini's time-dependent concordance from predicted survival curves.

    .. math::

        C^{td} = \frac{\sum_{(i,j)\ \mathrm{comparable}} \mathbb 1[\hat S_i(t_i) < \hat S_j(t_i)]
                       + \mathrm{tie\_score}\cdot\mathbb 1[\hat S_i(t_i) = \hat S_j(t_i)]}
                      {\#\{\text{comparable } (i,j)\}}

    Both curves are read at the death time :math:`t_i` of the patient who died first, so
    crossing curves are handled. For curves that never cross (e.g. proportional hazards)
    :math:`C^{td}` equals Harrell's C of any risk that orders them. Antolini et al. (2005)
    score tied predictions 0 (``tie_score=0``); the default 0.5 matches Harrell's C so a
    constant prediction scores 0.5.

    Args:
        time: ``(n,)`` follow-up times.
        event: ``(n,)`` 1 = death observed, 0 = censored.
        surv: ``(n, K)`` predicted survival on the grid ``times``.
        times: ``(K,)`` strictly increasing grid (see :func:`survival_at`).

    >>> concordance_td([1, 2, 3], [1, 1, 0], [[0.2, 0.1, 0.0], [0.6, 0.3, 0.2], [0.9, 0.8, 0.7]], [1, 2, 3])
    1.0
    """
    if not 0.0 <= tie_score <= 1.0:
        raise ValueError(f"concordance_td: tie_score must lie in [0, 1], got {tie_score}")
    t, e = _survival_inputs(time, event, "concordance_td")
    s, g = _grid_input(surv, times, t.shape[0], "concordance_td")
    idx = np.searchsorted(g, t, side="right") - 1
    padded = np.concatenate([np.ones((s.shape[0], 1)), s], axis=1)  # (n, K+1)
    deaths = np.flatnonzero(e)
    conc = 0.0
    pairs = 0
    for start in range(0, deaths.size, chunk):
        i = deaths[start:start + chunk]  # (c,)
        at_ti = padded[:, idx[i] + 1]  # (n, c)  S_j(t_i) for every j
        own = at_ti[i, np.arange(i.size)]  # (c,)  S_i(t_i)
        comparable = (t[:, None] > t[None, i]) | ((t[:, None] == t[None, i]) & ~e[:, None])  # (n, c)
        pairs += int(comparable.sum())
        conc += float((comparable & (own[None, :] < at_ti)).sum())
        conc += tie_score * float((comparable & (own[None, :] == at_ti)).sum())
    if pairs == 0:
        raise _no_pairs_error("concordance_td")
    return conc / pairs


# --------------------------------------------------------------------------- Brier / IPCW
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
        surv: ``(n, K)`` predicted survival of the test patients at ``times``.
        times: ``(K,)`` strictly increasing evaluation times.
        time, event: ``(n,)`` test follow-up and event indicator.
        train_time, train_event: ``(n_train,)`` training data for :math:`\hat G`.
        ipcw: ``"graf"`` (:math:`\hat G(t_i-)`, default) or ``"right"`` (:math:`\hat G(t_i)`).

    Returns:
        ``(K,)`` Brier scores.

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
    g_tau = cens(g)  # (K,)
    case = e[:, None] & (t[:, None] <= g[None, :])  # (n, K)
    control = t[:, None] > g[None, :]  # (n, K)
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
    by the trapezoid rule over the evaluation grid (needs ``K >= 2``).

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
    and indexes every array along axis 0 (so ``(n,)`` vectors and ``(n, K)`` curves stay
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
