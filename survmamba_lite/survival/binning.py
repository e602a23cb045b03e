r"""Discretising follow-up time into the ``T`` bins of the discrete-time survival model.

The field's convention (MCAT, MOTCat, SurvPath): bin edges at the quantiles of the
*uncensored* follow-up times, so each bin holds about the same number of deaths, and the
outermost edges opened up so every time gets a bin. Bins are left-closed,
:math:`[e_k, e_{k+1})`, as ``pandas.cut(..., right=False)`` in that code.

Leakage warning. That code fits the quantiles on the *whole cohort* before splitting into
folds, so the bin edges (and through them the training targets) depend on the test
patients' outcomes. :class:`TimeBinner` is fitted on the training fold only; test times
outside the training range still fall into the first or last bin because the outer edges
are 0 and :math:`+\infty`.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from .labels import check_events

__all__ = ["TimeBinner"]


def _as_float_array(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"TimeBinner: {name} must have shape (n,), got {a.shape}")
    return a


class TimeBinner:
    r"""Quantile bins of the uncensored training times, fitted on the training fold only.

    ``fit`` computes the inner edges

    .. math:: e_k = Q_{k/T}\big(\{t_i : \delta_i = 1,\ i \in \text{train}\}\big),\quad k = 1..T-1

    (linear interpolation, as ``numpy.quantile``/``pandas.qcut``) and sets
    :math:`e_0 = 0`, :math:`e_T = +\infty`. ``transform`` maps ``t`` to the ``k`` with
    :math:`e_k \le t < e_{k+1}`.

    When many deaths share a time, neighbouring quantiles can coincide. With
    ``on_ties="merge"`` (default) duplicate edges (and an edge at 0) are dropped with a
    warning, so fewer bins are fitted: read :attr:`n_bins_` and size the model's output
    with it. With ``on_ties="raise"`` this is an error.

    Args:
        n_bins: requested number of bins ``T``.
        on_ties: ``"merge"`` or ``"raise"``.

    Attributes:
        inner_edges_: ``(n_bins_ - 1,)`` finite inner edges.
        n_bins_: number of bins actually fitted.

    >>> b = TimeBinner(n_bins=2).fit([1.0, 2.0, 3.0, 10.0], [1, 1, 1, 0])
    >>> b.edges_
    array([ 0.,  2., inf])
    >>> b.transform([0.5, 2.0, 50.0])
    array([0, 1, 1])
    """

    def __init__(self, n_bins: int = 4, on_ties: str = "merge") -> None:
        if int(n_bins) != n_bins or n_bins < 1:
            raise ValueError(f"TimeBinner: n_bins must be a positive integer, got {n_bins!r}")
        if on_ties not in ("merge", "raise"):
            raise ValueError(f"TimeBinner: on_ties must be 'merge' or 'raise', got {on_ties!r}")
        self.n_bins = int(n_bins)
        self.on_ties = on_ties
        self.inner_edges_: np.ndarray | None = None

    # ------------------------------------------------------------------ fitting
    def fit(self, time: Any, event: Any) -> "TimeBinner":
        """Fit the edges on training data.

        Args:
            time: ``(n,)`` training follow-up times (>= 0).
            event: ``(n,)`` 1 = death observed, 0 = censored.
        """
        t = _as_float_array(time, "time")
        e = _as_float_array(event, "event")
        if t.shape != e.shape:
            raise ValueError(f"TimeBinner.fit: time and event lengths differ ({t.size} vs {e.size})")
        self._check_times(t, "fit")
        check_events(e, "TimeBinner.fit")
        deaths = t[e == 1.0]
        if deaths.size < self.n_bins:
            raise ValueError(
                f"TimeBinner.fit: {deaths.size} uncensored training times cannot define {self.n_bins} "
                "quantile bins; use fewer bins or a larger training fold"
            )
        probs = np.arange(1, self.n_bins) / self.n_bins
        inner = np.quantile(deaths, probs)
        merged = np.unique(inner[inner > 0.0])
        if merged.size < inner.size:
            msg = (f"TimeBinner.fit: tied death times make quantile edges coincide ({np.round(inner, 4).tolist()}); "
                   f"{self.n_bins} bins collapse to {merged.size + 1}")
            if self.on_ties == "raise":
                raise ValueError(msg + ". Use fewer bins, or on_ties='merge' to drop the duplicate edges")
            warnings.warn(msg + "; size the model's output with n_bins_", RuntimeWarning, stacklevel=2)
        self.inner_edges_ = merged
        return self

    def transform(self, time: Any) -> Any:
        """Bin index of each time: ``(n,)`` int64 (a ``torch.long`` tensor for tensor input)."""
        if self.inner_edges_ is None:
            raise RuntimeError("TimeBinner.transform called before fit: call fit(train_time, train_event) "
                               "on the training fold first (or load with TimeBinner.from_dict)")
        is_tensor = isinstance(time, torch.Tensor)
        t = _as_float_array(time, "time")
        self._check_times(t, "transform")
        bins = np.searchsorted(self.inner_edges_, t, side="right").astype(np.int64)
        if is_tensor:
            return torch.from_numpy(bins).to(time.device)
        return bins

    def fit_transform(self, time: Any, event: Any) -> Any:
        """``fit(time, event).transform(time)``."""
        return self.fit(time, event).transform(time)

    @staticmethod
    def _check_times(t: np.ndarray, where: str) -> None:
        bad = np.isnan(t) | (t < 0) | np.isinf(t)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"TimeBinner.{where}: follow-up times must be finite and >= 0; time[{i}] = {t[i]}")

    # ------------------------------------------------------------------ attributes
    @property
    def n_bins_(self) -> int:
        """Number of fitted bins (``n_bins`` unless tied quantiles were merged)."""
        self._require_fit("n_bins_")
        return int(self.inner_edges_.size + 1)

    @property
    def edges_(self) -> np.ndarray:
        """``(n_bins_ + 1,)`` edges ``[0, e_1, ..., e_{T-1}, inf]``."""
        self._require_fit("edges_")
        return np.concatenate([[0.0], self.inner_edges_, [np.inf]])

    def _require_fit(self, what: str) -> None:
        if self.inner_edges_ is None:
            raise RuntimeError(f"TimeBinner.{what} is defined after fit; call fit(train_time, train_event) first")

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        """JSON-safe description (finite inner edges only), to save next to results.

        >>> TimeBinner.from_dict(TimeBinner(2).fit([1.0, 3.0], [1, 1]).to_dict()).edges_
        array([ 0.,  2., inf])
        """
        self._require_fit("to_dict")
        return {
            "n_bins": self.n_bins,
            "on_ties": self.on_ties,
            "n_bins_fitted": self.n_bins_,
            "inner_edges": [float(x) for x in self.inner_edges_],
            "interval": "left-closed [e_k, e_k+1), e_0 = 0, e_T = inf",
        }

    @classmethod
    def from_dict(cls, d: dict) -> "TimeBinner":
        """Rebuild a fitted binner from :meth:`to_dict` output."""
        try:
            obj = cls(n_bins=d["n_bins"], on_ties=d.get("on_ties", "merge"))
            inner = np.asarray(d["inner_edges"], dtype=np.float64)
        except KeyError as err:
            raise ValueError(f"TimeBinner.from_dict: missing key {err}; expected the output of to_dict()") from None
        if inner.ndim != 1 or np.any(np.diff(inner) <= 0) or (inner.size and inner[0] <= 0):
            raise ValueError("TimeBinner.from_dict: inner_edges must be positive and strictly increasing")
        obj.inner_edges_ = inner
        return obj

    def __repr__(self) -> str:
        fitted = "unfitted" if self.inner_edges_ is None else f"edges={np.round(self.edges_, 3).tolist()}"
        return f"TimeBinner(n_bins={self.n_bins}, {fitted})"
