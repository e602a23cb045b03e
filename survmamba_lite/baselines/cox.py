r"""The penalised Cox reference of the real-data genomic table: PCA of the gene z-scores, ridge Cox.

The Cox reference, decided before any fold was looked at: per-gene z-score fitted on the
training fold, PCA fitted on the training fold, the first ``n_components = 32``
components (each scaled to unit training variance), and lifelines' ``CoxPHFitter`` with a
fixed ridge penalty ``penalizer = 0.1`` (``l1_ratio = 0``). No value was tuned.

It is a reference row beside the deep models, not a registry model (it is fitted in closed
form by lifelines, not trained by the experiment loop).
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import pandas as pd

from survmamba_lite.survival import concordance_index

__all__ = ["PCACoxReference", "run_cox_cv", "cox_curve"]


class PCACoxReference:
    r"""Ridge-penalised Cox model on the leading principal components of the gene z-scores.

    Fitted on training patients only:

    1. per-gene z-score :math:`z_{ig} = (x_{ig} - \mu_g)/s_g` with training mean and
       standard deviation (:class:`~survmamba_lite.data.dataset.RNANormalizer`; genes
       constant on the training fold get :math:`s_g = 1`);
    2. PCA of the training z-scores, :math:`Z - \bar z = U S V^\top`, keep the first
       :math:`m` = ``n_components`` right singular vectors :math:`V_m` and scale each score
       to unit training variance: :math:`u_i = (z_i - \bar z) V_m / \sigma`;
    3. Cox partial likelihood with a ridge penalty, fitted by lifelines
       (``CoxPHFitter(penalizer=λ, l1_ratio=0)``):

       .. math:: \hat\beta = \arg\max_\beta\ \frac1n \sum_{i:\,e_i=1}\Big(u_i^\top\beta
                 - \log\sum_{j:\,t_j\ge t_i} e^{u_j^\top\beta}\Big) - \frac{\lambda}{2}\lVert\beta\rVert^2

    The risk of a patient is the linear predictor :math:`u^\top\hat\beta` (higher = earlier
    death), a monotone transform of lifelines' partial hazard, so c-indices agree.

    Args:
        n_components: PCA components kept (clipped to ``n_train - 1`` and ``G``).
        penalizer: ridge strength ``λ`` passed to lifelines.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(120, 40)); t = np.exp(-x[:, 0] + rng.normal(size=120) * 0.3)
    >>> cox = PCACoxReference(n_components=8).fit(x, t, np.ones(120, int))
    >>> concordance_index(t, cox.risk(x), np.ones(120)) > 0.6
    True
    """

    def __init__(self, n_components: int = 32, penalizer: float = 0.1) -> None:
        if int(n_components) < 1:
            raise ValueError(f"PCACoxReference: n_components must be >= 1, got {n_components}")
        if penalizer < 0:
            raise ValueError(f"PCACoxReference: penalizer must be >= 0, got {penalizer}")
        self.n_components = int(n_components)
        self.penalizer = float(penalizer)
        self.basis_: np.ndarray | None = None

    def components(self, x: np.ndarray) -> np.ndarray:
        """``(n, G)`` expression -> ``(n, m)`` unit-variance PCA scores (fitted transform)."""
        if self.basis_ is None:
            raise RuntimeError("PCACoxReference: call fit(x_train, time, event) first")
        z = self.normalizer_.transform(np.asarray(x, dtype=np.float64)).astype(np.float64)
        return (z - self.center_) @ self.basis_ / self.scale_

    def frame(self, x: np.ndarray, time: Any = None, event: Any = None) -> pd.DataFrame:
        """The lifelines input frame: PCA scores ``pc1..pcm`` (+ ``time``, ``event`` when given)."""
        u = self.components(x)
        df = pd.DataFrame(u, columns=[f"pc{k + 1}" for k in range(u.shape[1])])
        if time is not None:
            df["time"] = np.asarray(time, dtype=np.float64)
            df["event"] = np.asarray(event, dtype=np.int64)
        return df

    def fit(self, x: np.ndarray, time: Any, event: Any) -> "PCACoxReference":
        """Fit on training expression ``x: (n, G)``, follow-up ``time: (n,)``, ``event: (n,)`` (1 = death)."""
        from lifelines import CoxPHFitter

        from survmamba_lite.data.dataset import RNANormalizer

        x = np.asarray(x, dtype=np.float64)
        t, e = np.asarray(time, dtype=np.float64), np.asarray(event, dtype=np.int64)
        if x.ndim != 2 or x.shape[0] != t.shape[0] or t.shape != e.shape:
            raise ValueError(f"PCACoxReference.fit: expected x (n, G), time (n,), event (n,); got {x.shape}, "
                             f"{t.shape}, {e.shape}")
        if e.sum() < 2:
            raise ValueError(f"PCACoxReference.fit: {int(e.sum())} death(s) among {len(e)} training patients; "
                             "a Cox model needs observed deaths")
        self.normalizer_ = RNANormalizer().fit(x)
        z = self.normalizer_.transform(x).astype(np.float64)
        self.center_ = z.mean(0)
        _, s, vt = np.linalg.svd(z - self.center_, full_matrices=False)
        m = min(self.n_components, x.shape[0] - 1, x.shape[1], int((s > 1e-8 * s[0]).sum()))
        self.basis_ = vt[:m].T                                             # (G, m)
        scores = (z - self.center_) @ self.basis_
        self.scale_ = scores.std(0)
        df = self.frame(x, t, e)
        self.fitter_ = CoxPHFitter(penalizer=self.penalizer, l1_ratio=0.0).fit(df, "time", "event")
        self.beta_ = self.fitter_.params_.to_numpy()
        return self

    def risk(self, x: np.ndarray) -> np.ndarray:
        """``(n,)`` linear predictor ``u^T beta`` of expression ``x: (n, G)``."""
        return self.components(x) @ self.beta_


def cox_curve(model: PCACoxReference, x: np.ndarray, edges: np.ndarray, train_time: Any) -> np.ndarray:
    """``(n, T)`` survival of a fitted :class:`PCACoxReference` placed on discrete time bins, the
    layout of the deep models' ``S_0..S_{T-1}``: ``S_k`` is lifelines' Breslow survival at the end
    of bin ``k``, the inner edge ``e_{k+1}`` (``edges: (T + 1,)`` = ``[0, e_1, .., e_{T-1}, inf]``),
    and the last, unbounded bin takes the survival at the last training time (where the Breslow
    estimate ends)."""
    ends = np.append(np.asarray(edges, dtype=np.float64)[1:-1], float(np.max(train_time)))
    surv = model.fitter_.predict_survival_function(model.frame(x), times=ends)       # (T, n)
    return surv.to_numpy(dtype=np.float64).T


def run_cox_cv(cohort_dir: str | os.PathLike, *, n_components: int = 32, penalizer: float = 0.1,
               folds: Sequence[int] | None = None, n_bins: int = 4) -> tuple[pd.DataFrame, list[float]]:
    """:class:`PCACoxReference` on every fold of a cohort folder.

    Returns:
        out-of-fold predictions (``fold, case_id, time, event, time_bin, risk, S_0..S_{T-1}``: the
        survival curve on the ``n_bins`` quantile bins of the fold's training deaths, as the deep
        models are binned; :func:`cox_curve`) and the fold c-indices (of ``risk``, the linear predictor).
    """
    from survmamba_lite.data.layout import load_cohort
    from survmamba_lite.survival import TimeBinner

    cohort = load_cohort(cohort_dir)
    genes = list(cohort.hierarchy.genes)
    fold_ids = list(range(len(cohort.folds))) if folds is None else list(folds)
    frames, cis = [], []
    for k in fold_ids:
        train_ids, val_ids = cohort.folds[k]
        tr, va = cohort.clinical.loc[train_ids], cohort.clinical.loc[val_ids]
        model = PCACoxReference(n_components, penalizer).fit(
            cohort.rna.loc[train_ids, genes].to_numpy(), tr["survival_months"], tr["event"])
        x_val = cohort.rna.loc[val_ids, genes].to_numpy()
        risk = model.risk(x_val)
        binner = TimeBinner(n_bins).fit(tr["survival_months"].to_numpy(), tr["event"].to_numpy())
        frame = pd.DataFrame({"fold": k, "case_id": list(val_ids), "time": va["survival_months"].to_numpy(dtype=float),
                              "event": va["event"].to_numpy(dtype=int),
                              "time_bin": binner.transform(va["survival_months"].to_numpy(dtype=float)),
                              "risk": risk})
        surv = cox_curve(model, x_val, binner.edges_, tr["survival_months"].to_numpy(dtype=float))
        for j in range(surv.shape[1]):
            frame[f"S_{j}"] = surv[:, j]
        frames.append(frame)
        cis.append(float(concordance_index(frames[-1]["time"], risk, frames[-1]["event"])))
    return pd.concat(frames, ignore_index=True), cis
