r"""From a loaded :class:`~survmamba_lite.data.layout.Cohort` to :class:`PatientBag` s.

* :class:`RNANormalizer`: per-gene z-score (optionally after ``log1p``), fitted on the
  training fold only:

  .. math:: \tilde x_{ig} = \frac{x_{ig} - \mu_g}{s_g},\quad
            \mu_g = \frac{1}{|\mathcal T|}\sum_{i \in \mathcal T} x_{ig},\quad
            s_g = \sqrt{\tfrac{1}{|\mathcal T|}\textstyle\sum_{i\in\mathcal T}(x_{ig}-\mu_g)^2}

  (genes constant on the training fold get :math:`s_g = 1`).
* :class:`CohortDataset`: a map-style dataset; ``ds[i]`` reads the case's slides lazily
  from ``features/<slide_id>.h5`` (several slides are concatenated, region indices of
  later slides offset so regions stay distinct) and returns a :class:`PatientBag`.
  Batch with :func:`~survmamba_lite.data.bag.collate_bags`.
* :func:`fold_datasets`: the normaliser and the time binner fitted on a fold's training
  ids, and the two datasets of that fold.

>>> import tempfile
>>> from pathlib import Path
>>> from survmamba_lite.data.synth import make_synthetic_cohort
>>> from survmamba_lite.data.layout import load_cohort
>>> from survmamba_lite.data.bag import collate_bags
>>> cohort = load_cohort(make_synthetic_cohort("BLCA", "tiny", 0, Path(tempfile.mkdtemp()) / "b"))
>>> train, val, fitted = fold_datasets(cohort, fold=0, binner_bins=4)
>>> batch = collate_bags([val[0], val[1]])
>>> batch.rna.shape[1] == cohort.hierarchy.n_genes, batch.patches.shape[-1], len(train) + len(val)
(True, 32, 359)
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from survmamba_lite.data.bag import PatientBag
from survmamba_lite.data.features_h5 import read_features_h5
from survmamba_lite.data.layout import Cohort

__all__ = ["RNANormalizer", "CohortDataset", "FoldPreprocessing", "fold_datasets"]


class RNANormalizer:
    """Per-gene z-score fitted on training expression only.

    Args:
        log1p: apply ``log1p`` before the z-score (for raw, non-negative counts/TPM).
        eps: a gene whose training standard deviation is below ``eps`` gets scale 1.

    Attributes:
        mean_, std_: ``(G,)`` fitted statistics; ``genes_``: gene names when fitted on a
        DataFrame (then :meth:`transform` checks the columns).

    >>> norm = RNANormalizer().fit(np.array([[1.0, 5.0], [3.0, 5.0]]))
    >>> norm.transform(np.array([[2.0, 5.0], [5.0, 6.0]])).tolist()
    [[0.0, 0.0], [3.0, 1.0]]
    """

    def __init__(self, log1p: bool = False, eps: float = 1e-8) -> None:
        self.log1p = bool(log1p)
        self.eps = float(eps)
        self.mean_: np.ndarray | None = None
        self.std_: np.ndarray | None = None
        self.genes_: list[str] | None = None

    def _prep(self, x: Any, where: str) -> np.ndarray:
        if isinstance(x, pd.DataFrame):
            if self.genes_ is not None and list(x.columns) != self.genes_:
                raise ValueError(f"RNANormalizer.{where}: gene columns differ from those it was fitted on "
                                 f"({x.shape[1]} vs {len(self.genes_)} genes); reorder the columns to match")
            x = x.to_numpy(dtype=np.float64)
        elif isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy().astype(np.float64)
        a = np.asarray(x, dtype=np.float64)
        if a.ndim != 2:
            raise ValueError(f"RNANormalizer.{where}: expected (cases, genes), got shape {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"RNANormalizer.{where}: expression holds NaN/inf; run `survmamba validate` to find them")
        if self.log1p:
            if (a < 0).any():
                raise ValueError(f"RNANormalizer.{where}: log1p needs non-negative expression, found {a.min():.3g}; "
                                 "the data look log-transformed already: use log1p=False")
            a = np.log1p(a)
        return a

    def fit(self, train_rna: Any) -> "RNANormalizer":
        """Fit on ``(n_train, G)`` training expression (array, tensor or DataFrame)."""
        if isinstance(train_rna, pd.DataFrame):
            self.genes_ = [str(c) for c in train_rna.columns]
        a = self._prep(train_rna, "fit")
        if a.shape[0] < 2:
            raise ValueError("RNANormalizer.fit: need at least 2 training cases")
        self.mean_ = a.mean(0)
        std = a.std(0)
        self.std_ = np.where(std < self.eps, 1.0, std)
        return self

    def transform(self, rna: Any) -> np.ndarray:
        """``(n, G)`` -> ``(n, G)`` float32 z-scores."""
        if self.mean_ is None:
            raise RuntimeError("RNANormalizer.transform called before fit; fit it on the training fold first")
        a = self._prep(rna, "transform")
        if a.shape[1] != self.mean_.size:
            raise ValueError(f"RNANormalizer.transform: {a.shape[1]} genes, fitted on {self.mean_.size}")
        return ((a - self.mean_) / self.std_).astype(np.float32)

    def to_dict(self) -> dict:
        if self.mean_ is None:
            raise RuntimeError("RNANormalizer.to_dict: not fitted")
        return {"log1p": self.log1p, "eps": self.eps, "mean": self.mean_.tolist(), "std": self.std_.tolist(),
                "genes": self.genes_}

    @classmethod
    def from_dict(cls, d: dict) -> "RNANormalizer":
        """Rebuild from :meth:`to_dict`.

        >>> n = RNANormalizer().fit(np.array([[0.0], [2.0]]))
        >>> RNANormalizer.from_dict(n.to_dict()).transform(np.array([[3.0]])).tolist()
        [[2.0]]
        """
        obj = cls(log1p=d.get("log1p", False), eps=d.get("eps", 1e-8))
        obj.mean_ = np.asarray(d["mean"], dtype=np.float64)
        obj.std_ = np.asarray(d["std"], dtype=np.float64)
        obj.genes_ = d.get("genes")
        return obj


class CohortDataset(Dataset):
    """Patients of a cohort as :class:`PatientBag` s.

    Args:
        cohort: a loaded cohort.
        case_ids: the cases of this dataset (e.g. a fold's training ids), in order.
        modalities: ``("wsi", "rna")``, ``("wsi",)`` or ``("rna",)``.
        rna_normalizer: a *fitted* :class:`RNANormalizer`; without it raw expression is used.
        time_binner: a *fitted* ``TimeBinner``; without it ``time_bin`` is -1.
        feature_cache: how many slides' features to keep in memory (LRU); 0 reads every
            access from disk.
    """

    def __init__(self, cohort: Cohort, case_ids: Sequence[str], modalities: Sequence[str] = ("wsi", "rna"),
                 rna_normalizer: RNANormalizer | None = None, time_binner: Any = None,
                 feature_cache: int = 0) -> None:
        self.cohort = cohort
        self.case_ids = [str(c) for c in case_ids]
        self.modalities = tuple(modalities)
        bad = [m for m in self.modalities if m not in ("wsi", "rna")]
        if bad or not self.modalities:
            raise ValueError(f"CohortDataset: modalities must be drawn from ('wsi', 'rna'), got {modalities!r}")
        lacking = [m for m in self.modalities if m not in cohort.modalities]
        if lacking:
            raise ValueError(f"CohortDataset: cohort {cohort.name} has modalities {cohort.modalities}, not {lacking}; "
                             f"use modalities={tuple(m for m in self.modalities if m in cohort.modalities)}")
        unknown = [c for c in self.case_ids if c not in cohort.clinical.index]
        if unknown:
            raise KeyError(f"CohortDataset: case ids not in {cohort.root}/clinical.csv: {unknown[:10]}")
        if "wsi" in self.modalities:
            no_slide = [c for c in self.case_ids if not cohort.slide_ids(c)]
            if no_slide:
                raise ValueError(f"CohortDataset: cases without a slide: {no_slide[:10]}; drop them or use "
                                 "modalities=('rna',)")
        clin = cohort.clinical.loc[self.case_ids]
        self.time = clin["survival_months"].to_numpy(dtype=np.float64)
        self.event = clin["event"].to_numpy(dtype=np.int64)
        self.time_bin = (np.full(len(self.case_ids), -1, dtype=np.int64) if time_binner is None
                         else np.asarray(time_binner.transform(self.time), dtype=np.int64))
        self.rna: np.ndarray | None = None
        if "rna" in self.modalities:
            raw = cohort.rna.loc[self.case_ids, list(cohort.hierarchy.genes)]
            self.rna = (rna_normalizer.transform(raw) if rna_normalizer is not None
                        else raw.to_numpy(dtype=np.float32))
        self.feature_cache = int(feature_cache)
        self._cache: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.case_ids)

    def _slide(self, slide_id: str) -> tuple[np.ndarray, np.ndarray]:
        if slide_id in self._cache:
            self._cache.move_to_end(slide_id)
            return self._cache[slide_id]
        sf = read_features_h5(self.cohort.feature_path(slide_id))
        item = (sf.features, sf.region)
        if self.feature_cache > 0:
            self._cache[slide_id] = item
            while len(self._cache) > self.feature_cache:
                self._cache.popitem(last=False)
        return item

    def load_wsi(self, case_id: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``features (n, F)`` float32 and ``region (n,)`` long of all slides of a case."""
        feats, regions, offset = [], [], 0
        for sid in self.cohort.slide_ids(case_id):
            f, r = self._slide(sid)
            _, r = np.unique(r, return_inverse=True)        # regions 0..R_s-1 within the slide
            feats.append(f)
            regions.append(r.astype(np.int64) + offset)
            offset += int(r.max()) + 1
        widths = {f.shape[1] for f in feats}
        if len(widths) > 1:
            raise ValueError(f"case {case_id}: slides have different feature widths {sorted(widths)}; "
                             "extract all slides with the same encoder")
        return torch.from_numpy(np.concatenate(feats)), torch.from_numpy(np.concatenate(regions))

    def __getitem__(self, i: int) -> PatientBag:
        cid = self.case_ids[i]
        features = region = rna = None
        if "wsi" in self.modalities:
            features, region = self.load_wsi(cid)
        if self.rna is not None:
            rna = torch.from_numpy(self.rna[i].copy())
        return PatientBag(case_id=cid, features=features, region=region, rna=rna, time=float(self.time[i]),
                          event=int(self.event[i]), time_bin=int(self.time_bin[i]))

    def __repr__(self) -> str:
        return f"CohortDataset({self.cohort.name!r}, n={len(self)}, modalities={self.modalities})"


@dataclass
class FoldPreprocessing:
    """What :func:`fold_datasets` fitted on a fold's training ids."""

    fold: int
    train_ids: list[str]
    rna_normalizer: RNANormalizer | None
    time_binner: Any

    def to_dict(self) -> dict:
        return {"fold": self.fold, "n_train": len(self.train_ids),
                "rna_normalizer": None if self.rna_normalizer is None else self.rna_normalizer.to_dict(),
                "time_binner": self.time_binner.to_dict()}


def fold_datasets(cohort: Cohort, fold: int, binner_bins: int = 4, modalities: Sequence[str] | None = None,
                  log1p: bool = False, feature_cache: int = 0
                  ) -> tuple[CohortDataset, CohortDataset, FoldPreprocessing]:
    """Train and validation datasets of one fold, preprocessing fitted on the train ids only.

    Args:
        cohort: a loaded cohort.
        fold: index into ``cohort.folds``.
        binner_bins: number of time bins ``T`` (quantiles of the training deaths).
        modalities: default: all the cohort has.
        log1p: passed to :class:`RNANormalizer`.
        feature_cache: passed to :class:`CohortDataset`.
    """
    from survmamba_lite.survival.binning import TimeBinner

    if not 0 <= fold < len(cohort.folds):
        raise ValueError(f"fold {fold} does not exist; cohort {cohort.name} has folds 0..{len(cohort.folds) - 1}")
    modalities = tuple(modalities) if modalities is not None else tuple(cohort.modalities)
    train_ids, val_ids = cohort.folds[fold]
    clin = cohort.clinical.loc[train_ids]
    binner = TimeBinner(binner_bins).fit(clin["survival_months"].to_numpy(), clin["event"].to_numpy())
    norm = None
    if "rna" in modalities:
        norm = RNANormalizer(log1p=log1p).fit(cohort.rna.loc[train_ids, list(cohort.hierarchy.genes)])
    kw = dict(modalities=modalities, rna_normalizer=norm, time_binner=binner, feature_cache=feature_cache)
    return (CohortDataset(cohort, train_ids, **kw), CohortDataset(cohort, val_ids, **kw),
            FoldPreprocessing(fold, list(train_ids), norm, binner))
