r"""Evaluating a trained model on a fold: predictions, survival curves and the fold's metrics.

:func:`predict` runs the model (eval mode) on every patient of a dataset, one at a time, with a
fixed patch subset per case; :func:`predictions_frame` turns hazard logits into the rows of
``predictions.csv``; :func:`fold_metrics` computes Harrell's and the time-dependent c-index and
the integrated Brier score.

Survival curves. The model's ``S_k = P(Y > k)`` is the probability of outliving bin ``k``
(:math:`[e_k, e_{k+1})`). Both time-dependent metrics read it in one way, the survival at
the end of the bin containing ``t`` (:mod:`survmamba_lite.survival.metrics`, "Discrete-time
curves"): the time-dependent concordance compares, for a death at :math:`t_i` in bin ``k``,
the patients' ``S_k``; the integrated Brier score evaluates ``S_0..S_{T-2}`` at the ends of
the finite bins (:func:`~survmamba_lite.survival.bin_end_times`; it needs ``T >= 3``) with
the IPCW weights of Graf et al. (:math:`\hat G(t_i-)` for a death).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from survmamba_lite.data.bag import collate_bags
from survmamba_lite.data.dataset import CohortDataset
from survmamba_lite.experiment.config import ExperimentConfig
from survmamba_lite.experiment.datapath import BatchBuilder
from survmamba_lite.experiment.sampling import bags_as_list, case_generator, subsample_bag
from survmamba_lite.survival import (bin_end_times, bin_survival_grid, concordance_index, concordance_td,
                                     hazards_to_survival, integrated_brier_score, nll_loss, risk_score, survival_at)
from survmamba_lite.utils.precision import autocast

__all__ = ["predict", "predictions_frame", "survival_columns", "fold_metrics"]


@torch.no_grad()
def predict(model: nn.Module, dataset: CohortDataset, config: ExperimentConfig, device: torch.device,
            progress: bool = False, builder: BatchBuilder | None = None) -> tuple[pd.DataFrame, float]:
    """Predictions of ``model`` (in eval mode) for every patient of ``dataset``, one at a time.

    Patch subsets (``max_patches``) are fixed per case: seeded by ``config.seed`` and the case id.

    Args:
        builder: the dataset's :class:`~survmamba_lite.experiment.datapath.BatchBuilder`
            (the in-memory path); None reads the slides through a DataLoader (the reference path).

    Returns:
        the :func:`predictions_frame` and the mean NLL over the patients.
    """
    model.eval()
    logits, losses = [], []
    if builder is None:
        loader = DataLoader(dataset, batch_size=1, shuffle=False, collate_fn=bags_as_list,
                            num_workers=config.num_workers)
        batches = (collate_bags([subsample_bag(bag, config.max_patches, case_generator(config.seed, bag.case_id))]
                                ).to(device) for (bag,) in loader)
    else:
        batches = (builder.batch([i], config.max_patches, case_generator(config.seed, cid))
                   for i, cid in enumerate(dataset.case_ids))
    for i, batch in enumerate(tqdm(batches, total=len(dataset), desc="  predict", leave=False,
                                   disable=not progress)):
        with autocast(config.precision, device):
            out = model(batch)
        out = out.float()                                                           # (1, T)
        logits.append(out)
        if dataset.time_bin[i] >= 0:
            losses.append(nll_loss(out, batch.time_bin, batch.event, alpha=config.alpha,
                                   check_labels=builder is None))
    logits_t = torch.cat(logits).cpu()                                              # (n, T): one copy
    frame = predictions_frame(dataset.case_ids, dataset.time, dataset.event, dataset.time_bin, logits_t)
    mean_loss = float(np.mean(torch.stack(losses).cpu().double().numpy())) if losses else float("nan")
    return frame, mean_loss


def predictions_frame(case_ids: Sequence[str], time: Any, event: Any, time_bin: Any, logits: torch.Tensor
                      ) -> pd.DataFrame:
    """One row per patient: ``case_id, time, event, time_bin, risk, S_0..S_{T-1}``.

    ``risk = -sum_k S_k`` (:func:`~survmamba_lite.survival.risk_score`), higher = earlier death.

    Args:
        logits: ``(n, T)`` hazard logits.

    >>> predictions_frame(["a"], [3.0], [1], [0], torch.zeros(1, 2)).round(3).values.tolist()
    [['a', 3.0, 1, 0, -0.75, 0.5, 0.25]]
    """
    logits = logits.detach().double()              # curves and risks in float64 from the model's logits
    surv = hazards_to_survival(logits).numpy()                                      # (n, T)
    frame = pd.DataFrame({"case_id": list(case_ids), "time": np.asarray(time, dtype=np.float64),
                          "event": np.asarray(event, dtype=np.int64),
                          "time_bin": np.asarray(time_bin, dtype=np.int64),
                          "risk": risk_score(logits).numpy()})
    for k in range(surv.shape[1]):
        frame[f"S_{k}"] = surv[:, k]
    return frame


def survival_columns(frame: pd.DataFrame) -> list[str]:
    """The ``S_k`` columns of a predictions frame, in bin order (all-NaN columns dropped)."""
    cols = sorted((c for c in frame.columns if c.startswith("S_") and c[2:].isdigit()), key=lambda c: int(c[2:]))
    return [c for c in cols if frame[c].notna().any()]


def _safe(fn: Callable[[], float]) -> tuple[float | None, str | None]:
    try:
        return float(fn()), None
    except (ValueError, ZeroDivisionError) as err:
        return None, str(err)


def fold_metrics(pred: pd.DataFrame, edges: np.ndarray, train_time: Any, train_event: Any) -> dict[str, Any]:
    """Harrell's c-index, Antolini's time-dependent c-index and the IBS of one fold.

    Args:
        pred: the fold's :func:`predictions_frame` (validation patients).
        edges: ``(T + 1,)`` bin edges ``[0, e_1, .., e_{T-1}, inf]`` of the fold's binner.
        train_time, train_event: training data (censoring distribution of the IBS).

    A metric that cannot be computed (no comparable pair; ``T < 3`` or a censoring
    distribution of 0 for the IBS) is None with the reason under ``<name>_note``.
    """
    surv = pred[survival_columns(pred)].to_numpy(dtype=np.float64)                  # (n, T)
    t, e = pred["time"].to_numpy(dtype=np.float64), pred["event"].to_numpy(dtype=np.int64)
    out: dict[str, Any] = {}
    out["c_index"], note = _safe(lambda: concordance_index(t, pred["risk"].to_numpy(), e))
    if note:
        out["c_index_note"] = note
    # S_k is read for every t in bin k (the survival at the end of the bin containing t)
    out["c_index_td"], note = _safe(lambda: concordance_td(t, e, surv, bin_survival_grid(edges)))
    if note:
        out["c_index_td_note"] = note
    if surv.shape[1] < 3:
        out["ibs"], out["ibs_note"] = None, f"needs at least 3 time bins (2 finite edges), got {surv.shape[1]}"
    else:
        def ibs() -> float:
            taus = bin_end_times(edges)                                             # (T-1,) ends of finite bins
            return integrated_brier_score(survival_at(surv, bin_survival_grid(edges), taus), taus, t, e,
                                          train_time, train_event)
        out["ibs"], note = _safe(ibs)
        if note:
            out["ibs_note"] = note
    return out
