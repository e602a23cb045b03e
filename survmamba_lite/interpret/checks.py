r"""Checks of importance maps: model randomisation and the planted signal of synthetic cohorts.

**Model randomisation** (Adebayo et al., 2018). A map that explains the model must change
when the model's weights are replaced by random ones. :func:`randomised_copy` rebuilds the
model from its config with fresh initial weights; the check compares the trained map with
the randomised one by Spearman rank correlation (:func:`rank_correlation`), against the
trained map recomputed (1 for a deterministic method: the map is reproducible, so a low
correlation is the randomisation's doing, not noise).

**Planted signal** (synthetic cohorts of :mod:`survmamba_lite.data.synth`). Known truth:

* regions: ``synthetic_regions.csv`` flags the tumour regions of every slide; their
  patches carry the tumour direction and the cellularity score that enter the hazard
  (:func:`region_truth` puts the flags in the order in which the model sees the regions);
* processes: the planted process (``manifest.yaml``, ``synthetic.planted_process``, whose
  activity enters the hazard);
* functions: the functions of the planted process and the planted function
  (``synthetic.planted_function``, whose own part enters the hazard).

:func:`precision_at_k` is the share of the ``k`` top-ranked items that are planted; for a
random ranking its expectation (chance) is the planted share of the items.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from survmamba_lite.data.layout import Cohort
from survmamba_lite.data.synth import REGION_TRUTH

__all__ = ["rank_correlation", "randomised_copy", "precision_at_k", "region_truth", "planted_genomics"]


def rank_correlation(a, b) -> float:
    """Spearman correlation of two score vectors (flattened; NaN-free).

    >>> round(rank_correlation([1, 2, 3, 4], [10, 20, 40, 30]), 6)
    0.8
    """
    a = np.asarray(torch.as_tensor(a).detach().cpu(), dtype=np.float64).ravel()
    b = np.asarray(torch.as_tensor(b).detach().cpu(), dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"rank_correlation: maps of different sizes {a.shape} and {b.shape}")
    return float(spearmanr(a, b).statistic)


def randomised_copy(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """The same architecture with freshly initialised weights (``torch.manual_seed(seed)``).

    The model must have a ``config`` from which ``type(model)(config)`` builds it (SurvMamba).
    """
    if not hasattr(model, "config"):
        raise TypeError(f"{type(model).__name__} has no config to rebuild it from")
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        fresh = type(model)(model.config)
    finally:
        torch.random.set_rng_state(state)
    return fresh.to(next(model.parameters()).dtype).eval()


def precision_at_k(scores, planted, k: int) -> float:
    """Share of the ``k`` highest ``scores`` whose item is ``planted`` (ties broken by position).

    >>> precision_at_k([0.1, 0.9, 0.5, 0.2], [False, True, False, True], 2)
    0.5
    """
    s = np.asarray(scores, dtype=np.float64)
    p = np.asarray(planted, dtype=bool)
    if s.shape != p.shape:
        raise ValueError(f"precision_at_k: {s.shape[0]} scores but {p.shape[0]} planted flags")
    if not 1 <= k <= s.size:
        raise ValueError(f"precision_at_k: k must be in 1..{s.size}, got {k}")
    top = np.argsort(-s, kind="stable")[:k]
    return float(p[top].mean())


def region_truth(cohort: Cohort, case_id: str) -> np.ndarray:
    """Tumour flags ``(R,)`` of a synthetic case's regions, in the model's region order
    (slides in ``clinical.csv`` order, regions ascending within a slide)."""
    path = Path(cohort.root) / REGION_TRUTH
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no region record; the planted regions are known only for synthetic "
                                "cohorts made by `survmamba synth` (regenerate the cohort with this version)")
    table = _region_table(path)
    flags = []
    for sid in cohort.slide_ids(case_id):
        rows = table[table["slide_id"] == sid].sort_values("region")
        if rows.empty:
            raise KeyError(f"{path}: no rows for slide {sid} of case {case_id}")
        flags.append(rows["tumour"].to_numpy(dtype=bool))
    return np.concatenate(flags)


_TABLES: dict[tuple[str, float], pd.DataFrame] = {}


def _region_table(path: Path) -> pd.DataFrame:
    key = (str(path), path.stat().st_mtime)
    if key not in _TABLES:
        _TABLES[key] = pd.read_csv(path)
    return _TABLES[key]


def planted_genomics(cohort: Cohort) -> tuple[int, np.ndarray]:
    """The planted process index and the planted-function flags ``(Fn,)`` of a synthetic cohort
    (functions of the planted process, and the planted function)."""
    syn = cohort.manifest.get("synthetic")
    if not syn or "planted_process" not in syn:
        raise ValueError(f"{cohort.root}/manifest.yaml has no synthetic block with the planted process: "
                         "only cohorts made by `survmamba synth` have a known planted signal")
    h = cohort.hierarchy
    j = list(h.process_names).index(syn["planted_process"])
    flags = np.array([p == j for p in h.function_process])
    flags[list(h.function_ids).index(syn["planted_function"]["id"])] = True
    return j, flags
