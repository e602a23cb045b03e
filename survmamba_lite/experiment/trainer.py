r"""Training and evaluating one cross-validation fold, resumable epoch by epoch.

One fold (:func:`train_fold`):

1. preprocessing fitted on the fold's **training ids only**
   (:func:`~survmamba_lite.data.fold_datasets`: the ``TimeBinner`` quantiles of the
   training deaths and the per-gene RNA z-score);
2. the model built from the registry with ``ModelInputs(n_bins=binner.n_bins_, wsi_dim,
   hierarchy)`` after ``torch.manual_seed(fold seed)``;
3. ``epochs`` passes over the training patients in a seeded random order, one
   :class:`~survmamba_lite.experiment.step.TrainStep` per batch (eager, or replayed from a CUDA
   graph with ``cuda_graphs``): the forward pass under the config's ``precision``, the
   training loss in float32 (the NLL, plus the auxiliary term a model's ModelSpec declares,
   e.g. CLAM's instance loss: :func:`~survmamba_lite.experiment.step.training_loss`), and an
   optimiser step every ``grad_accum`` batches;
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

Evaluation (predictions, survival curves, metrics): :mod:`~survmamba_lite.experiment.evaluation`.
"""
from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from survmamba_lite.data.bag import collate_bags
from survmamba_lite.data.dataset import CohortDataset, fold_datasets
from survmamba_lite.data.layout import Cohort
from survmamba_lite.experiment.config import ExperimentConfig
from survmamba_lite.experiment.datapath import PLACEMENTS, BatchBuilder, feature_store
from survmamba_lite.experiment.evaluation import fold_metrics, predict
from survmamba_lite.experiment.gpustats import UtilizationSampler
from survmamba_lite.experiment.runfiles import (CHECKPOINT, DONE, METRICS, PREDICTIONS, PREPROCESSING, SPLIT, json_safe,
                                                write_json)
from survmamba_lite.experiment.sampling import bags_as_list, derive_seed, subsample_bag
from survmamba_lite.experiment.step import TrainStep, make_train_step
from survmamba_lite.experiment.predfiles import write_predictions
from survmamba_lite.registry import ModelInputs, build_model
from survmamba_lite.survival import TimeBinner
from survmamba_lite.utils.device import resolve_device
from survmamba_lite.utils.io import atomic_write_bytes, atomic_write_text
from survmamba_lite.utils.precision import set_matmul_precision

__all__ = ["train_fold", "FoldResult", "FoldData", "TrainingPaused", "FEATURES", "HISTORY"]

#: where a fold keeps the patch features: the datapath placements, or "disk" (the reference path)
FEATURES = PLACEMENTS + ("disk",)


class TrainingPaused(Exception):
    """:func:`train_fold` stopped at an epoch boundary because the next epoch would pass
    its ``deadline``; the checkpoint holds every finished epoch, so running it again resumes."""


#: called after each epoch's checkpoint is written: ``on_epoch_end(fold, epoch, history)``
EpochCallback = Callable[[int, int, dict], None]
#: what a fold records per epoch (``metrics.json`` and the checkpoint's ``history``)
HISTORY = ("train_loss", "val_loss", "val_c_index", "epoch_seconds", "train_seconds", "epoch_cases_per_second",
           "epoch_gpu_utilization")


@dataclass
class FoldData:
    """A fold's inputs: datasets (preprocessing fitted on ``train``), the fitted time binner, and
    the batch builders of the in-memory path (None on the reference path, ``placement`` "disk")."""

    train: CohortDataset
    val: CohortDataset
    binner: TimeBinner
    train_builder: BatchBuilder | None
    val_builder: BatchBuilder | None
    placement: str


@dataclass
class FoldResult:
    """What :func:`train_fold` gives back (its files hold the same).

    Attributes:
        model: the last epoch's model, in eval mode, on the fold's device.
        metrics: the fold's ``metrics.json``.
        predictions: the validation predictions (``predictions.csv``).
        train, val: the fold's datasets (preprocessing fitted on the training ids).
    """

    model: nn.Module
    metrics: dict[str, Any]
    predictions: pd.DataFrame
    train: CohortDataset
    val: CohortDataset

    @property
    def device(self) -> torch.device:
        """Where the model is."""
        return next(self.model.parameters()).device


# --------------------------------------------------------------------------- small helpers
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
    buffer = io.BytesIO()                # serialised in memory, written by Python: a full disk is an OSError
    torch.save(state, buffer)            # naming the file (torch's own writer raises "enforce fail ...")
    atomic_write_bytes(path, buffer.getvalue())


def _train_batches(train_ds: CohortDataset, order: list[int], config: ExperimentConfig, device: torch.device,
                   builder: BatchBuilder | None, patch_gen: torch.Generator):
    """The epoch's batches in ``order``: built on the device, or through the reference path."""
    if builder is None:
        loader = DataLoader(train_ds, batch_size=config.batch_size, sampler=order, collate_fn=bags_as_list,
                            num_workers=config.num_workers)
        for bags in loader:
            yield collate_bags([subsample_bag(b, config.max_patches, patch_gen) for b in bags]).to(device)
    else:
        # the one draw from torch's global generator that a DataLoader iterator makes (its base seed),
        # so the random stream of the model (dropout) is the reference path's and earlier runs reproduce
        torch.empty((), dtype=torch.int64).random_()
        for a in range(0, len(order), config.batch_size):
            yield builder.batch(order[a:a + config.batch_size], config.max_patches, patch_gen)


def _fold_data(config: ExperimentConfig, cohort: Cohort, fold: int, fold_dir: Path, features: str,
               device: torch.device) -> FoldData:
    """The fold's datasets (preprocessing fitted on its training ids, written to ``fold_dir``) and builders."""
    if features not in FEATURES:
        raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
    fold_dir.mkdir(parents=True, exist_ok=True)
    train_ds, val_ds, prep = fold_datasets(cohort, fold, binner_bins=config.n_bins, modalities=config.modalities,
                                           log1p=config.rna_log1p)
    write_json(fold_dir / PREPROCESSING, prep.to_dict())
    write_json(fold_dir / SPLIT, {"train": train_ds.case_ids, "val": val_ds.case_ids}, indent=None)
    placement, train_b, val_b = "disk", None, None
    if features != "disk":
        store = feature_store(cohort, device, features) if "wsi" in config.modalities else None
        placement = store.placement if store is not None else "none (no slides)"
        train_b, val_b = BatchBuilder(train_ds, store, device), BatchBuilder(val_ds, store, device)
    return FoldData(train_ds, val_ds, prep.time_binner, train_b, val_b, placement)


def _train_step(config: ExperimentConfig, cohort: Cohort, data: FoldData, wsi_dim: int | None, device: torch.device,
                seed: int) -> TrainStep:
    """The fold's model (built from the registry after ``torch.manual_seed(seed)``) and its training step."""
    set_matmul_precision(config.precision)
    torch.manual_seed(seed)
    inputs = ModelInputs(n_bins=data.binner.n_bins_, wsi_dim=wsi_dim if "wsi" in config.modalities else None,
                         hierarchy=cohort.hierarchy if "rna" in config.modalities else None)
    model = build_model(config.model, inputs, **config.model_options).to(device)
    return make_train_step(config, model, n_bins=data.binner.n_bins_, check_labels=data.train_builder is None)


def _resume(path: Path, fold: int, n_bins: int, step: TrainStep) -> tuple[int, float, dict[str, list]]:
    """Completed epochs, seconds and history from the checkpoint (model and optimiser loaded), or a fresh start."""
    history: dict[str, list] = {key: [] for key in HISTORY}
    state = _load_checkpoint(path, fold, n_bins)
    if state is None:
        return 0, 0.0, history
    step.model.load_state_dict(state["model"])
    step.optimizer.load_state_dict(state["optimizer"])
    start = int(state["epoch"])
    history.update(state["history"])
    for key in history:               # a checkpoint written before a key was recorded
        history[key] = list(history[key]) + [None] * (start - len(history[key]))
    return start, float(state["seconds"]), history


def _check_deadline(deadline: float | None, history: dict, fold: int, epoch: int, epochs: int) -> None:
    """Raise :class:`TrainingPaused` when the next epoch, lasting as long as the longest so far,
    would end after ``deadline``."""
    longest = max((x for x in history["epoch_seconds"] if x is not None), default=None)
    if deadline is not None and longest is not None and time.time() + longest > deadline:
        raise TrainingPaused(f"fold {fold}: paused after epoch {epoch} of {epochs} (deadline)")


def _train_epoch(step: TrainStep, data: FoldData, config: ExperimentConfig, fold: int, epoch: int,
                 progress: bool) -> list[float]:
    """One pass over the training patients in the epoch's seeded order; the steps' losses, read once.

    Raises a FloatingPointError naming the cases of the first step whose loss is not finite.
    """
    torch.manual_seed(derive_seed(config.seed, fold, epoch, 0))
    order = np.random.default_rng(derive_seed(config.seed, fold, epoch, 1)).permutation(len(data.train)).tolist()
    patch_gen = torch.Generator().manual_seed(derive_seed(config.seed, fold, epoch, 2))
    n_batches = -(-len(order) // config.batch_size)
    step_loss = torch.zeros(n_batches, dtype=torch.float32, device=step.device)     # read once per epoch
    step.start_epoch(n_batches)
    cases: list[list[str]] = []
    batches = _train_batches(data.train, order, config, step.device, data.train_builder, patch_gen)
    for i, batch in enumerate(tqdm(batches, total=n_batches, desc=f"  epoch {epoch + 1}", leave=False,
                                   disable=not progress)):
        step_loss[i] = step(batch)
        cases.append(batch.case_id)
    losses = step_loss.cpu().tolist()                                                # the epoch's one sync
    bad = [i for i, x in enumerate(losses) if not math.isfinite(x)]
    if bad:
        raise FloatingPointError(f"fold {fold}, epoch {epoch + 1}: the loss is {losses[bad[0]]} on cases "
                                 f"{cases[bad[0]]} (step {bad[0] + 1} of {n_batches}); lower the "
                                 "learning rate or check these cases' inputs")
    return losses


def _epoch(step: TrainStep, data: FoldData, config: ExperimentConfig, fold: int, epoch: int,
           sampler: UtilizationSampler, progress: bool) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Train one epoch and evaluate it: the validation predictions and the epoch's :data:`HISTORY` entries."""
    t0 = time.perf_counter()
    sampler.take()
    losses = _train_epoch(step, data, config, fold, epoch, progress)
    train_seconds, utilization = time.perf_counter() - t0, sampler.take()
    pred, val_loss = predict(step.model, data.val, config, step.device, builder=data.val_builder)
    val_c = fold_metrics(pred, data.binner.edges_, data.train.time, data.train.event)["c_index"]
    seconds = time.perf_counter() - t0
    total = 0.0
    for x in losses:                                 # float64, in step order
        total += x
    return pred, dict(zip(HISTORY, (total / max(len(losses), 1), val_loss, val_c, seconds, train_seconds,
                                    len(data.train) / train_seconds, utilization)))


def _postfix(record: dict[str, Any]) -> dict[str, str]:
    """The progress bar's summary of an epoch."""
    val_c = record["val_c_index"]
    return {"loss": f"{record['train_loss']:.4f}", "val_c": "n/a" if val_c is None else f"{val_c:.3f}",
            "cases_s": f"{record['epoch_cases_per_second']:.1f}"}


def _finish(fold: int, fold_dir: Path, data: FoldData, pred: pd.DataFrame, history: dict, *,
            config: ExperimentConfig, seed: int, device: torch.device, seconds: float,
            utilization_note: str | None, delete: Path | None,
            log: Callable[[str], None]) -> tuple[dict[str, Any], pd.DataFrame]:
    """Write ``predictions.csv``, ``metrics.json`` (metrics, sizes, bins, timing, the epochs'
    history) and ``DONE`` of a finished fold, delete the checkpoint ``delete``; the metrics and
    the predictions as read back from the file (the metrics are computed from those, so that
    they recompute exactly from the file: :mod:`~survmamba_lite.experiment.predfiles`)."""
    pred = write_predictions(fold_dir / PREDICTIONS, pred)
    train_s = [x for x in history["train_seconds"] if x is not None]
    metrics = json_safe({
        "fold": fold, **fold_metrics(pred, data.binner.edges_, data.train.time, data.train.event),
        "n_train": len(data.train), "n_val": len(data.val), "n_val_events": int(data.val.event.sum()),
        "n_bins": data.binner.n_bins_, "bin_inner_edges": data.binner.inner_edges_.tolist(), "epochs": config.epochs,
        "seed": seed, "device": str(device), "seconds": seconds,
        "cases_per_second": len(data.train) * len(train_s) / sum(train_s) if train_s and sum(train_s) > 0 else None,
        "gpu_utilization": _mean(history["epoch_gpu_utilization"]), "gpu_utilization_note": utilization_note,
        "peak_memory_mib": (torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else None),
        "features": data.placement, **history,
    })
    write_json(fold_dir / METRICS, metrics)
    atomic_write_text(fold_dir / DONE, f"fold {fold} finished at {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    if delete is not None:
        delete.unlink(missing_ok=True)
    c = metrics["c_index"]
    log(f"fold {fold}: c-index {c:.4f}" if c is not None else f"fold {fold}: c-index n/a ({metrics['c_index_note']})")
    return metrics, pred


def _mean(values: list) -> float | None:
    v = [float(x) for x in values if x is not None]
    return sum(v) / len(v) if v else None


def train_fold(config: ExperimentConfig, cohort: Cohort, fold: int, fold_dir: Path, *, wsi_dim: int | None,
               progress: bool = True, on_epoch_end: EpochCallback | None = None,
               log: Callable[[str], None] = print, features: str = "auto", checkpoint_path: Path | None = None,
               keep_checkpoint: bool = True, deadline: float | None = None) -> FoldResult:
    """Train (or resume) fold ``fold`` and write its results into ``fold_dir`` (module docstring).

    Args:
        config, cohort: the experiment and the loaded cohort (``folds`` restricted by ``max_cases``).
        fold, fold_dir: the fold index and ``<out_dir>/fold_{fold}`` (an existing checkpoint is resumed).
        wsi_dim: patch-feature width ``F`` (None when the model reads no slides).
        progress, log: tqdm bars over epochs and batches; where one-line messages go.
        on_epoch_end: ``on_epoch_end(fold, epoch, history)`` after each checkpoint.
        features: ``"auto"``, ``"gpu"``, ``"host"`` (in memory, :mod:`~survmamba_lite.experiment.datapath`)
            or ``"disk"`` (the reference path).
        checkpoint_path: where the checkpoint lives (default ``fold_dir/checkpoint.pt``).
        keep_checkpoint: False deletes the checkpoint once the fold is done.
        deadline: a ``time.time()``: no epoch starts that would end after it (lasting as long as the
            longest so far; a fresh fold's first always runs): :class:`TrainingPaused`; None: no limit.

    Returns:
        the trained model with the fold's metrics (also written to ``metrics.json``) and predictions.
    """
    ckpt_path = Path(checkpoint_path) if checkpoint_path is not None else fold_dir / CHECKPOINT
    device, seed = resolve_device(config.device), derive_seed(config.seed, fold)
    data = _fold_data(config, cohort, fold, fold_dir, features, device)
    step = _train_step(config, cohort, data, wsi_dim, device, seed)
    model, n_bins = step.model, data.binner.n_bins_
    start, seconds, history = _resume(ckpt_path, fold, n_bins, step)
    log(f"fold {fold}: resuming after epoch {start} of {config.epochs}" if start else
        f"fold {fold}: {len(data.train)} training / {len(data.val)} validation cases, {n_bins} time bins, "
        f"seed {seed}, device {device}, features {data.placement}")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    pred, sampler = None, UtilizationSampler(device).start()
    bar = tqdm(total=config.epochs, initial=start, desc=f"fold {fold}", disable=not progress, leave=True)
    try:
        for epoch in range(start, config.epochs):
            _check_deadline(deadline, history, fold, epoch, config.epochs)
            pred, record = _epoch(step, data, config, fold, epoch, sampler, progress)
            seconds += record["epoch_seconds"]
            for key, value in record.items():
                history[key].append(value)
            _save_checkpoint(ckpt_path, {"fold": fold, "epoch": epoch + 1, "n_bins": n_bins,
                                         "model": model.state_dict(), "optimizer": step.optimizer.state_dict(),
                                         "history": history, "seconds": seconds})
            bar.update(1)
            bar.set_postfix(_postfix(record))
            if on_epoch_end is not None:
                on_epoch_end(fold, epoch, history)
    finally:
        sampler.stop()
        bar.close()
    if pred is None:        # every epoch was done before this call (stopped before DONE)
        pred, _ = predict(model, data.val, config, device, builder=data.val_builder)
    metrics, pred = _finish(fold, fold_dir, data, pred, history, config=config, seed=seed, device=device, seconds=seconds,
                      utilization_note=sampler.note, delete=None if keep_checkpoint else ckpt_path, log=log)
    return FoldResult(model, metrics, pred, data.train, data.val)
