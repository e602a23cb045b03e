r"""Training and evaluating one cross-validation fold, resumable epoch by epoch.

One fold (:func:`train_fold`):

1. preprocessing fitted on the fold's **training ids only**
   (:func:`~survmamba_lite.data.fold_datasets`: the ``TimeBinner`` quantiles of the
   training deaths and the per-gene RNA z-score);
2. the model built from the registry with ``ModelInputs(n_bins=binner.n_bins_, wsi_dim,
   hierarchy)`` after ``torch.manual_seed(fold seed)``;
3. ``epochs`` passes over the training patients in a seeded random order; per batch the
   loss is :func:`~survmamba_lite.survival.nll_loss` times the model's
   ``survival_loss_weight`` (1 unless set; CLAM's ``bag_weight`` 0.7) plus the model's
   ``auxiliary_loss(batch)`` when it has one (CLAM's 0.3 x instance clustering loss from
   the same forward pass), divided by
   ``grad_accum``; the optimiser steps every ``grad_accum`` batches;
   The forward pass runs under the config's ``precision``
   (:func:`~survmamba_lite.utils.precision.autocast`); the loss is computed in float32.
4. after every epoch: the validation c-index and loss (for the record: no early
   stopping, the last epoch's model is the fold's model) and an atomic
   ``checkpoint.pt`` (model, optimiser, completed epochs, history);
5. at the end ``predictions.csv``, ``metrics.json`` and the ``DONE`` marker (and, with
   ``keep_checkpoint=False``, the checkpoint is deleted: a finished fold needs none).

Data path. By default (``features="auto"``) the cohort's patch features are read once per
process into memory (on the GPU when they fit) and batches are built on the device
(:mod:`~survmamba_lite.experiment.datapath`); ``features="disk"`` is the reference path
(slides read per access in DataLoader workers, ``collate_bags`` on the host). Both give
the same batches. The training loop does not wait for the device: each step's loss is
copied into a device buffer that is read once per epoch (the epoch's mean loss and the
check that every loss was finite, which names the first bad step's cases).

Throughput. Every epoch records its training seconds (``train_seconds``), training cases
per second (``epoch_cases_per_second``) and the mean GPU utilisation during it
(``epoch_gpu_utilization``, %) (:class:`~survmamba_lite.experiment.gpustats.UtilizationSampler`;
None on CPU); ``metrics.json`` adds the fold's means, its peak CUDA memory and where
the features were kept.

Seeds. Every random draw of epoch ``e`` of fold ``k`` comes from seeds derived from
``(config.seed, k, e)`` by :func:`derive_seed` (patient order, patch subsets, dropout
via ``torch.manual_seed``), never from a generator carried over from earlier epochs.
So a run resumed from the checkpoint of epoch ``e`` continues exactly as the
uninterrupted run would, and a CPU run is reproducible bit for bit.

Survival curves. The model's ``S_k = P(Y > k)`` is the probability of outliving bin ``k``
(:math:`[e_k, e_{k+1})`). Both time-dependent metrics read it in one way, the survival at
the end of the bin containing ``t`` (:mod:`survmamba_lite.survival.metrics`, "Discrete-time
curves"): the time-dependent concordance compares, for a death at :math:`t_i` in bin ``k``,
the patients' ``S_k``; the integrated Brier score evaluates ``S_0..S_{T-2}`` at the ends of
the finite bins (:func:`~survmamba_lite.survival.bin_end_times`; it needs ``T >= 3``) with
the IPCW weights of Graf et al. (:math:`\hat G(t_i-)` for a death).
"""
from __future__ import annotations

import json
import math
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from survmamba_lite.data.bag import PatientBag, collate_bags
from survmamba_lite.data.dataset import CohortDataset, fold_datasets
from survmamba_lite.data.layout import Cohort
from survmamba_lite.experiment.config import ExperimentConfig
from survmamba_lite.experiment.datapath import PLACEMENTS, BatchBuilder, feature_store
from survmamba_lite.experiment.gpustats import UtilizationSampler
from survmamba_lite.experiment.predfiles import write_predictions
from survmamba_lite.registry import ModelInputs, build_model
from survmamba_lite.survival import (bin_end_times, bin_survival_grid, concordance_index, concordance_td,
                                     hazards_to_survival, integrated_brier_score, nll_loss, risk_score, survival_at)
from survmamba_lite.utils.io import atomic_path, atomic_write_text
from survmamba_lite.utils.cuda_graphs import GraphedTrainStep
from survmamba_lite.utils.device import resolve_device
from survmamba_lite.utils.precision import autocast, set_matmul_precision

__all__ = ["derive_seed", "resolve_device", "subsample_bag", "make_optimizer", "predict", "predictions_frame",
           "fold_metrics", "training_loss", "train_fold", "atomic_write_text", "CHECKPOINT", "PREDICTIONS", "METRICS",
           "DONE", "PREPROCESSING", "SPLIT", "FEATURES", "TrainingPaused"]

CHECKPOINT, PREDICTIONS, METRICS, DONE, PREPROCESSING, SPLIT = (
    "checkpoint.pt", "predictions.csv", "metrics.json", "DONE", "preprocessing.json", "split.json")

#: where a fold keeps the patch features: the datapath placements, or "disk" (the reference path)
FEATURES = PLACEMENTS + ("disk",)


class TrainingPaused(Exception):
    """:func:`train_fold` stopped at an epoch boundary because the next epoch would pass
    its ``deadline``; the checkpoint holds every finished epoch, so running it again resumes."""


#: called after each epoch's checkpoint is written: ``on_epoch_end(fold, epoch, history)``
EpochCallback = Callable[[int, int, dict], None]


# --------------------------------------------------------------------------- small helpers
def derive_seed(*keys: int) -> int:
    """A 32-bit seed derived from integer keys (``numpy.random.SeedSequence``).

    >>> derive_seed(0, 1) == derive_seed(0, 1) != derive_seed(0, 2)
    True
    """
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


def _case_key(case_id: str) -> int:
    return zlib.crc32(case_id.encode("utf-8"))


def _json_safe(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def subsample_bag(bag: PatientBag, max_patches: int | None, generator: torch.Generator) -> PatientBag:
    """At most ``max_patches`` patches of ``bag``, drawn without replacement, kept in slide order.

    >>> bag = PatientBag("c", torch.arange(10.).unsqueeze(1), torch.arange(10) // 5, None, 1.0, 1)
    >>> small = subsample_bag(bag, 4, torch.Generator().manual_seed(0))
    >>> small.features.shape, bool((small.features.squeeze(1).diff() > 0).all())
    (torch.Size([4, 1]), True)
    """
    if max_patches is None or bag.features is None or bag.features.shape[0] <= max_patches:
        return bag
    keep = torch.randperm(bag.features.shape[0], generator=generator)[:max_patches].sort().values
    return PatientBag(bag.case_id, bag.features[keep], bag.region[keep], bag.rna, bag.time, bag.event, bag.time_bin)


def make_optimizer(config: ExperimentConfig, params) -> torch.optim.Optimizer:
    """``config.optimizer`` (:func:`~survmamba_lite.utils.cuda_graphs.build_optimizer`: RAdam as in
    the paper, RAdam with decoupled weight decay, Adam or AdamW) with ``config.lr`` and
    ``config.weight_decay`` (``capturable=True`` when the steps are replayed from CUDA graphs)."""
    from survmamba_lite.utils.cuda_graphs import build_optimizer

    return build_optimizer(config.optimizer, params, capturable=bool(config.cuda_graphs), lr=config.lr,
                           weight_decay=config.weight_decay)


def _as_list(bags: list[PatientBag]) -> list[PatientBag]:
    return bags


# --------------------------------------------------------------------------- evaluation
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
        loader = DataLoader(dataset, batch_size=1, shuffle=False, collate_fn=_as_list,
                            num_workers=config.num_workers)
        batches = (collate_bags([subsample_bag(bag, config.max_patches, _case_generator(config, bag.case_id))]
                                ).to(device) for (bag,) in loader)
    else:
        batches = (builder.batch([i], config.max_patches, _case_generator(config, cid))
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


def _case_generator(config: ExperimentConfig, case_id: str) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(config.seed, _case_key(case_id)))


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


def training_loss(model: nn.Module, logits: torch.Tensor, batch, alpha: float,
                  check_labels: bool = True) -> torch.Tensor:
    """The loss of one training batch: ``w * NLL(logits) + model.auxiliary_loss(batch)``.

    ``w`` is the model's ``survival_loss_weight`` (1 when it has none) and the auxiliary
    loss is added when the model has one: for CLAM ``0.7 * NLL + 0.3 * instance loss``, the
    instance loss coming from the same forward pass that gave ``logits: (B, T)``.
    ``check_labels=False``: the batch's labels were checked on the host (see :func:`nll_loss`).
    """
    loss = float(getattr(model, "survival_loss_weight", 1.0)) * nll_loss(logits.float(), batch.time_bin,
                                                                        batch.event, alpha=alpha,
                                                                        check_labels=check_labels)
    if callable(getattr(model, "auxiliary_loss", None)):
        loss = loss + model.auxiliary_loss(batch)
    return loss


# --------------------------------------------------------------------------- one fold
def _load_checkpoint(path: Path, fold: int, n_bins: int) -> dict | None:
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("fold") != fold or state.get("n_bins") != n_bins:
        raise ValueError(f"{path}: checkpoint of fold {state.get('fold')} with {state.get('n_bins')} bins does not "
                         f"match fold {fold} with {n_bins} bins; delete it (the fold restarts) or use a new --out")
    return state


def _save_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _train_batches(train_ds: CohortDataset, order: list[int], config: ExperimentConfig, device: torch.device,
                   builder: BatchBuilder | None, patch_gen: torch.Generator):
    """The epoch's batches in ``order``: built on the device, or through the reference path."""
    if builder is None:
        loader = DataLoader(train_ds, batch_size=config.batch_size, sampler=order, collate_fn=_as_list,
                            num_workers=config.num_workers)
        for bags in loader:
            yield collate_bags([subsample_bag(b, config.max_patches, patch_gen) for b in bags]).to(device)
    else:
        # the one draw from torch's global generator that a DataLoader iterator makes (its base seed),
        # so the random stream of the model (dropout) is the reference path's and earlier runs reproduce
        torch.empty((), dtype=torch.int64).random_()
        for a in range(0, len(order), config.batch_size):
            yield builder.batch(order[a:a + config.batch_size], config.max_patches, patch_gen)


def _mean(values: list) -> float | None:
    v = [float(x) for x in values if x is not None]
    return sum(v) / len(v) if v else None


def train_fold(config: ExperimentConfig, cohort: Cohort, fold: int, fold_dir: Path, *, wsi_dim: int | None,
               progress: bool = True, on_epoch_end: EpochCallback | None = None,
               log: Callable[[str], None] = print, features: str = "auto", checkpoint_path: Path | None = None,
               keep_checkpoint: bool = True, deadline: float | None = None) -> dict[str, Any]:
    """Train (or resume) fold ``fold`` and write its results into ``fold_dir``.

    Args:
        config: the experiment.
        cohort: the loaded cohort (its ``folds`` already restricted by ``max_cases``).
        fold: fold index.
        fold_dir: ``<out_dir>/fold_{fold}``; an existing checkpoint is resumed.
        wsi_dim: patch-feature width ``F`` (None when the model reads no slides).
        progress: tqdm bars over epochs and batches.
        on_epoch_end: ``on_epoch_end(fold, epoch, history)`` after each checkpoint.
        log: where one-line messages go.
        features: ``"auto"``, ``"gpu"``, ``"host"`` (features in memory, see
            :mod:`~survmamba_lite.experiment.datapath`) or ``"disk"`` (the reference path).
        checkpoint_path: where the checkpoint lives (default ``fold_dir/checkpoint.pt``);
            elsewhere keeps the run folder small while a fold is unfinished.
        keep_checkpoint: False deletes the checkpoint once the fold is done.
        deadline: a ``time.time()``: no epoch starts that is predicted to end after it
            (predicted to last as long as the longest so far; the first epoch of a fresh
            fold always runs): :class:`TrainingPaused` is raised, and a later call resumes.
            None: no limit.

    Returns:
        the fold's metrics (also written to ``metrics.json``).
    """
    if features not in FEATURES:
        raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
    fold_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = Path(checkpoint_path) if checkpoint_path is not None else fold_dir / CHECKPOINT
    device = resolve_device(config.device)
    set_matmul_precision(config.precision)
    fold_seed = derive_seed(config.seed, fold)
    train_ds, val_ds, prep = fold_datasets(cohort, fold, binner_bins=config.n_bins, modalities=config.modalities,
                                           log1p=config.rna_log1p)
    binner = prep.time_binner
    n_bins = binner.n_bins_
    atomic_write_text(fold_dir / PREPROCESSING, json.dumps(_json_safe(prep.to_dict()), indent=1) + "\n")
    atomic_write_text(fold_dir / SPLIT, json.dumps({"train": train_ds.case_ids, "val": val_ds.case_ids}) + "\n")

    placement, train_b, val_b = "disk", None, None
    if features != "disk":
        store = feature_store(cohort, device, features) if "wsi" in config.modalities else None
        placement = store.placement if store is not None else "none (no slides)"
        train_b, val_b = BatchBuilder(train_ds, store, device), BatchBuilder(val_ds, store, device)

    torch.manual_seed(fold_seed)
    inputs = ModelInputs(n_bins=n_bins, wsi_dim=wsi_dim if "wsi" in config.modalities else None,
                         hierarchy=cohort.hierarchy if "rna" in config.modalities else None)
    model = build_model(config.model, inputs, **config.model_options).to(device)
    optimizer = make_optimizer(config, model.parameters())
    graphed = None
    if config.cuda_graphs:
        if device.type != "cuda":
            raise ValueError(f"cuda_graphs needs a CUDA device, but this fold runs on {device}; drop --cuda-graphs")
        graphed = GraphedTrainStep(
            model, optimizer, lambda logits, b: training_loss(model, logits, b, alpha=config.alpha, check_labels=False),
            config.precision, n_bins=n_bins)
    history: dict[str, list] = {"train_loss": [], "val_loss": [], "val_c_index": [], "epoch_seconds": [],
                                "train_seconds": [], "epoch_cases_per_second": [], "epoch_gpu_utilization": []}
    start_epoch, seconds = 0, 0.0
    state = _load_checkpoint(ckpt_path, fold, n_bins)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, seconds = int(state["epoch"]), float(state["seconds"])
        history.update(state["history"])
        for key in history:               # a checkpoint written before a key was recorded
            history[key] = list(history[key]) + [None] * (start_epoch - len(history[key]))
        log(f"fold {fold}: resuming after epoch {start_epoch} of {config.epochs}")
    else:
        log(f"fold {fold}: {len(train_ds)} training / {len(val_ds)} validation cases, {n_bins} time bins, "
            f"seed {fold_seed}, device {device}, features {placement}")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    last_pred: pd.DataFrame | None = None
    sampler = UtilizationSampler(device).start()
    bar = tqdm(total=config.epochs, initial=start_epoch, desc=f"fold {fold}", disable=not progress, leave=True)
    try:
        for epoch in range(start_epoch, config.epochs):
            longest = max((x for x in history["epoch_seconds"] if x is not None), default=None)
            if deadline is not None and longest is not None and time.time() + longest > deadline:
                raise TrainingPaused(f"fold {fold}: paused after epoch {epoch} of {config.epochs} (deadline)")
            t0 = time.perf_counter()
            sampler.take()
            torch.manual_seed(derive_seed(config.seed, fold, epoch, 0))
            order = np.random.default_rng(derive_seed(config.seed, fold, epoch, 1)).permutation(len(train_ds)).tolist()
            patch_gen = torch.Generator().manual_seed(derive_seed(config.seed, fold, epoch, 2))
            n_batches = -(-len(order) // config.batch_size)
            step_loss = torch.zeros(n_batches, dtype=torch.float32, device=device)       # read once per epoch
            model.train()
            optimizer.zero_grad(set_to_none=True)
            batch_cases: list[list[str]] = []
            batches = _train_batches(train_ds, order, config, device, train_b, patch_gen)
            for i, batch in enumerate(tqdm(batches, total=n_batches, desc=f"  epoch {epoch + 1}", leave=False,
                                           disable=not progress)):
                if graphed is not None:                  # forward, loss, backward and step in one replay
                    step_loss[i] = graphed(batch, check_labels=train_b is None)
                    batch_cases.append(batch.case_id)
                    continue
                with autocast(config.precision, device):
                    logits = model(batch)
                loss = training_loss(model, logits, batch, alpha=config.alpha,       # loss in float32
                                     check_labels=train_b is None)    # BatchBuilder checked them once
                (loss / config.grad_accum).backward()
                step_loss[i] = loss.detach()
                batch_cases.append(batch.case_id)
                if (i + 1) % config.grad_accum == 0 or i + 1 == n_batches:
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
            losses = step_loss.cpu().tolist()                                            # the epoch's one sync
            bad = [i for i, x in enumerate(losses) if not math.isfinite(x)]
            if bad:
                raise FloatingPointError(f"fold {fold}, epoch {epoch + 1}: the loss is {losses[bad[0]]} on cases "
                                         f"{batch_cases[bad[0]]} (step {bad[0] + 1} of {n_batches}); lower the "
                                         "learning rate or check these cases' inputs")
            train_seconds = time.perf_counter() - t0
            util = sampler.take()
            last_pred, val_loss = predict(model, val_ds, config, device, builder=val_b)
            val_c = fold_metrics(last_pred, binner.edges_, train_ds.time, train_ds.event)["c_index"]
            dt = time.perf_counter() - t0
            seconds += dt
            total = 0.0
            for x in losses:                                 # float64, in step order
                total += x
            history["train_loss"].append(total / max(n_batches, 1))
            history["val_loss"].append(val_loss)
            history["val_c_index"].append(val_c)
            history["epoch_seconds"].append(dt)
            history["train_seconds"].append(train_seconds)
            history["epoch_cases_per_second"].append(len(order) / train_seconds)
            history["epoch_gpu_utilization"].append(util)
            _save_checkpoint(ckpt_path, {
                "fold": fold, "epoch": epoch + 1, "n_bins": n_bins, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "history": history, "seconds": seconds})
            bar.update(1)
            bar.set_postfix(loss=f"{history['train_loss'][-1]:.4f}",
                            val_c=f"{val_c:.3f}" if val_c is not None else "n/a",
                            cases_s=f"{history['epoch_cases_per_second'][-1]:.1f}")
            if on_epoch_end is not None:
                on_epoch_end(fold, epoch, history)
    finally:
        sampler.stop()
        bar.close()

    if last_pred is None:        # every epoch was done before this call (stopped before DONE)
        last_pred, _ = predict(model, val_ds, config, device, builder=val_b)
    last_pred = write_predictions(fold_dir / PREDICTIONS, last_pred)   # metrics below: from the file's values
    train_s = [x for x in history["train_seconds"] if x is not None]
    metrics = {
        "fold": fold, **fold_metrics(last_pred, binner.edges_, train_ds.time, train_ds.event),
        "n_train": len(train_ds), "n_val": len(val_ds), "n_val_events": int(val_ds.event.sum()),
        "n_bins": n_bins, "bin_inner_edges": binner.inner_edges_.tolist(), "epochs": config.epochs, "seed": fold_seed,
        "device": str(device), "seconds": seconds,
        "cases_per_second": len(train_ds) * len(train_s) / sum(train_s) if train_s and sum(train_s) > 0 else None,
        "gpu_utilization": _mean(history["epoch_gpu_utilization"]), "gpu_utilization_note": sampler.note,
        "peak_memory_mib": (torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else None),
        "features": placement, **history,
    }
    atomic_write_text(fold_dir / METRICS, json.dumps(_json_safe(metrics), indent=1) + "\n")
    atomic_write_text(fold_dir / DONE, f"fold {fold} finished at {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    if not keep_checkpoint:
        ckpt_path.unlink(missing_ok=True)
    c = metrics["c_index"]
    log(f"fold {fold}: c-index {c:.4f}" if c is not None else f"fold {fold}: c-index n/a ({metrics['c_index_note']})")
    return _json_safe(metrics)
