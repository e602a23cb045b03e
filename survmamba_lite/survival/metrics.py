r"""Evaluation metrics: Harrell's C (the paper's metric) and Antolini's time-dependent C.

The IPCW Brier score is in :mod:`~survmamba_lite.survival.brier`, resampling intervals and
permutation tests in :mod:`~survmamba_lite.survival.resampling`; both read their inputs the
way this module does.

Conventions shared by every function here:

* ``time: (n,)`` follow-up times, ``event: (n,)`` 1 = death observed, 0 = censored;
* ``risk: (n,)`` higher = earlier death (e.g. :func:`~survmamba_lite.survival.risk_score`);
* ``surv: (n, n_times)`` predicted survival probabilities :math:`\hat S_i(\tau_k)` on a grid of
  ``n_times`` increasing times ``times: (n_times,)``, read as a right-continuous step function
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

from typing import Any

import numpy as np

from .labels import check_events

__all__ = [
    "concordance_index",
    "concordance_index_ref",
    "concordance_td",
    "survival_at",
    "bin_survival_grid",
    "bin_end_times",
    "comparable_pairs",
    "concordance_of_pairs",
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
    check_events(e, fn)
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


def comparable_pairs(t: np.ndarray, e: np.ndarray, first: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays ``(i, j)`` of the comparable pairs, ``i`` the one who died first (module rules).

    Args:
        t: ``(n,)`` follow-up times (validated, e.g. by :func:`concordance_index`).
        e: ``(n,)`` bool, True = death observed.
        first: candidate first members ``i`` (indices of deaths); None: every death.

    Builds a ``(len(first), n)`` mask: :func:`concordance_index_ref` calls it in chunks.

    >>> comparable_pairs(np.array([1.0, 2.0, 2.0]), np.array([True, True, False]))
    (array([0, 0, 1]), array([1, 2, 2]))
    """
    i = np.flatnonzero(e) if first is None else np.asarray(first)
    mask = (t[None, :] > t[i, None]) | ((t[None, :] == t[i, None]) & ~e[None, :])  # (c, n)
    rows, j = np.nonzero(mask)
    return i[rows], j


def _pair_counts(r: np.ndarray, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concordant and tied-risk counts over the pairs ``(i, j)`` of each row of ``r: (n_rows, n)``; ``(n_rows,)`` each."""
    ri, rj = r[:, i], r[:, j]                                                   # (n_rows, pairs)
    return (ri > rj).sum(axis=1), (ri == rj).sum(axis=1)


#: pair comparisons (rows x comparable pairs) :func:`concordance_of_pairs` holds in memory at once
_PAIR_CHUNK = 1 << 22


def concordance_of_pairs(risks: Any, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    r"""Harrell's C of each row of ``risks: (n_rows, n)`` over given comparable pairs ``(i, j)``; ``(n_rows,)``.

    The formula of :func:`concordance_index`, :math:`(\#\text{concordant} + \tfrac12\#\text{tied}) /
    \#\text{pairs}`, vectorised over rows: many risk vectors of the same patients (e.g. the
    permutations of :func:`~survmamba_lite.survival.resampling.fold_permutation_cindex`) share
    the pairs of :func:`comparable_pairs`, computed once.

    >>> t, e = np.array([1.0, 2.0, 3.0]), np.array([True, True, False])
    >>> concordance_of_pairs(np.array([[3.0, 2, 1], [1, 2, 3]]), *comparable_pairs(t, e))
    array([1., 0.])
    """
    r = np.atleast_2d(np.asarray(risks, dtype=np.float64))
    n_pairs = i.shape[0]
    if n_pairs == 0:
        raise _no_pairs_error("concordance_of_pairs")
    out = np.empty(r.shape[0])
    step = max(1, _PAIR_CHUNK // n_pairs)
    for s in range(0, r.shape[0], step):
        conc, tied = _pair_counts(r[s:s + step], i, j)
        out[s:s + step] = (conc + 0.5 * tied) / n_pairs
    return out


def concordance_index_ref(time: Any, risk: Any, event: Any, chunk: int = 1024) -> float:
    """Slow twin of :func:`concordance_index`: the comparable pairs listed, in chunks of deaths.

    ``O(n^2)`` time, ``O(chunk * n)`` memory; kept as the readable reference.

    >>> concordance_index_ref([1, 2, 3, 4, 5], [4, 1, 3, 2, 2], [1, 1, 0, 1, 1])
    0.5625
    """
    t, e = _survival_inputs(time, event, "concordance_index_ref")
    r = _risk_input(risk, t.shape[0], "concordance_index_ref")
    conc = tied = pairs = 0
    deaths = np.flatnonzero(e)
    for start in range(0, deaths.size, chunk):
        i, j = comparable_pairs(t, e, deaths[start:start + chunk])
        c, d = _pair_counts(r[None, :], i, j)
        pairs, conc, tied = pairs + i.size, conc + int(c[0]), tied + int(d[0])
    if pairs == 0:
        raise _no_pairs_error("concordance_index_ref")
    return (conc + 0.5 * tied) / pairs


# --------------------------------------------------------------------------- curves
def _grid_input(surv: Any, times: Any, n: int | None, fn: str) -> tuple[np.ndarray, np.ndarray]:
    s = _to_numpy(surv, "surv")
    g = _to_numpy(times, "times").reshape(-1)
    if s.ndim != 2 or s.shape[1] != g.shape[0]:
        raise ValueError(f"{fn}: surv must have shape (n, n_times) with n_times = len(times) = {g.shape[0]}, got {s.shape}")
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
        surv: ``(n, n_times)`` survival probabilities on the grid ``times``.
        times: ``(n_times,)`` strictly increasing grid.
        at: ``(n_at,)`` query times.

    Returns:
        ``(n, n_at)`` survival probabilities.

    >>> survival_at([[0.9, 0.5]], [1.0, 2.0], [0.5, 1.0, 1.5, 9.0])
    array([[1. , 0.9, 0.9, 0.5]])
    """
    s, g = _grid_input(surv, times, None, "survival_at")
    u = _to_numpy(at, "at").reshape(-1)
    idx = np.searchsorted(g, u, side="right") - 1  # (n_at,)
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
        surv: ``(n, n_times)`` predicted survival on the grid ``times``.
        times: ``(n_times,)`` strictly increasing grid (see :func:`survival_at`).

    >>> concordance_td([1, 2, 3], [1, 1, 0], [[0.2, 0.1, 0.0], [0.6, 0.3, 0.2], [0.9, 0.8, 0.7]], [1, 2, 3])
    1.0
    """
    if not 0.0 <= tie_score <= 1.0:
        raise ValueError(f"concordance_td: tie_score must lie in [0, 1], got {tie_score}")
    t, e = _survival_inputs(time, event, "concordance_td")
    s, g = _grid_input(surv, times, t.shape[0], "concordance_td")
    idx = np.searchsorted(g, t, side="right") - 1
    padded = np.concatenate([np.ones((s.shape[0], 1)), s], axis=1)  # (n, n_times + 1)
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
