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


def patient_maps(model, cohort: Cohort, case_ids, rna_normalizer=None, ig_steps: int = 8) -> list[dict]:
    """Importance maps of each case, both methods: a list of dicts with ``case_id`` and
    ``{ha,ig}_{patches,regions,functions,processes}`` as numpy arrays (absolute IG scores;
    patches flattened in the model's order), for the modalities the model reads.

    Integrated gradients run on all cases as one batch (``ig_steps`` midpoint steps, zero
    baseline); the hidden-attention rollout one case at a time.
    """
    from survmamba_lite.data.bag import collate_bags
    from survmamba_lite.data.dataset import CohortDataset
    from survmamba_lite.interpret.attribution import function_scores, integrated_gradients
    from survmamba_lite.interpret.rollout import hidden_attention_importance

    model.eval()
    ds = CohortDataset(cohort, list(case_ids), model.modalities, rna_normalizer=rna_normalizer)
    bags = [ds[i] for i in range(len(ds))]
    ig = integrated_gradients(model, collate_bags(bags), steps=ig_steps)
    out = []
    for i, bag in enumerate(bags):
        batch = collate_bags([bag])
        row: dict = {"case_id": bag.case_id}
        if "wsi" in model.modalities:
            ha = hidden_attention_importance(model, batch, "wsi")
            n_r, n_p = ha.mask.shape
            scores = ig.patch_scores[i, :n_r, :n_p].double()
            row.update(ha_patches=ha.fine[ha.mask].numpy(), ha_regions=ha.group.numpy(),
                       ig_patches=scores[ha.mask].abs().numpy(), ig_regions=scores.sum(-1).abs().numpy(),
                       patch_region=np.repeat(np.arange(n_r), ha.mask.sum(-1).numpy()))
        if "rna" in model.modalities:
            hg = hidden_attention_importance(model, batch, "rna")
            f_ha = torch.zeros(cohort.hierarchy.n_functions, dtype=torch.float64)
            f_ha[model.function_index[hg.mask]] = hg.fine[hg.mask].double()
            f_ig, p_ig = function_scores(ig.rna[i].double(), cohort.hierarchy)
            row.update(ha_functions=f_ha.numpy(), ha_processes=hg.group.double().numpy(),
                       ig_functions=f_ig.abs().numpy(), ig_processes=p_ig.abs().numpy())
        out.append(row)
    return out


def planted_overlap(maps: list[dict], cohort: Cohort) -> pd.DataFrame:
    """Precision at k of each method against the planted signal, one row per case.

    Columns (NaN where a case cannot be scored): ``regions_{ha,ig}`` precision at 1 of the
    regions and ``regions_chance`` the tumour share of the case's regions (only cases with
    both tumour and other regions); ``patches_{ha,ig}`` precision at ``k`` = the number of
    tumour patches, ``patches_chance`` their share; ``processes_{ha,ig}`` precision at 1
    (chance ``1/J``); ``functions_{ha,ig}`` precision at ``k`` = the number of planted
    functions (chance: their share of the functions).
    """
    rows = []
    for m in maps:
        row: dict = {"case_id": m["case_id"]}
        if "ha_regions" in m:
            flags = region_truth(cohort, m["case_id"])
            if 0 < flags.sum() < flags.size:
                patch_flags = flags[m["patch_region"]]
                k = int(patch_flags.sum())
                for method in ("ha", "ig"):
                    row[f"regions_{method}"] = precision_at_k(m[f"{method}_regions"], flags, 1)
                    row[f"patches_{method}"] = precision_at_k(m[f"{method}_patches"], patch_flags, k)
                row["regions_chance"], row["patches_chance"] = flags.mean(), patch_flags.mean()
        if "ha_functions" in m:
            j, fflags = planted_genomics(cohort)
            pflags = np.arange(cohort.hierarchy.n_processes) == j
            for method in ("ha", "ig"):
                row[f"processes_{method}"] = precision_at_k(m[f"{method}_processes"], pflags, 1)
                row[f"functions_{method}"] = precision_at_k(m[f"{method}_functions"], fflags, int(fflags.sum()))
            row["processes_chance"], row["functions_chance"] = pflags.mean(), fflags.mean()
        rows.append(row)
    return pd.DataFrame(rows)


def randomisation_correlations(trained: list[dict], randomised: list[dict], again: list[dict]) -> pd.DataFrame:
    """Per case and map, the Spearman correlation of the trained map with the randomised model's
    map (``rho_randomised``) and with the trained map computed again (``rho_again``)."""
    rows = []
    for a, b, c in zip(trained, randomised, again):
        for key in a:
            if key.startswith(("ha_", "ig_")) and len(a[key]) > 2:
                rows.append({"case_id": a["case_id"], "map": key, "rho_randomised": rank_correlation(a[key], b[key]),
                             "rho_again": rank_correlation(a[key], c[key])})
    return pd.DataFrame(rows)


def fit_full_batch(cohort: Cohort, fold: int = 0, *, model: str = "survmamba", steps: int = 20, lr: float = 1e-2,
                   dim: int = 16, d_state: int = 4, seed: int = 0, n_bins: int = 4):
    """A tiny model for the planted-signal check: ``steps`` full-batch Adam steps of the NLL loss
    on the fold's training cases (preprocessing fitted on them), in seconds on a CPU.

    Returns ``(model, preprocessing, validation case ids)``; the model is in eval mode. The
    scan runs on the ``ref`` backend (groups of a tiny cohort are at most 16 tokens long, where
    the sequential loop is the fastest on a CPU) and nothing is recomputed in the backward pass.
    """
    from survmamba_lite.data.bag import collate_bags
    from survmamba_lite.data.dataset import fold_datasets
    from survmamba_lite.registry import ModelInputs, build_model, get_model_spec
    from survmamba_lite.survival import nll_loss

    modalities = get_model_spec(model).modalities
    train, val, prep = fold_datasets(cohort, fold, binner_bins=n_bins, modalities=modalities)
    batch = collate_bags([train[i] for i in range(len(train))])
    wsi_dim = batch.patches.shape[-1] if batch.patches is not None else None
    torch.manual_seed(seed)
    net = build_model(model, ModelInputs(n_bins=prep.time_binner.n_bins_, wsi_dim=wsi_dim,
                                         hierarchy=cohort.hierarchy if "rna" in modalities else None),
                      dim=dim, d_state=d_state, dropout=0.0, scan_backend="ref", recompute_tokens=None)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    for _ in range(steps):
        loss = nll_loss(net(batch), batch.time_bin, batch.event)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval(), prep, list(val.case_ids)
