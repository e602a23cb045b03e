"""k-fold cross-validation with resume: :func:`run_cv` ``(config) -> CVResult``.

A run directory::

    RUN/
      config.json            the ExperimentConfig + a "derived" block (cohort, label, modalities, ...)
      splits/fold_{k}.csv    only when the cohort had no splits/ and make_folds made them
      fold_{k}/
        split.json           the fold's training and validation case ids
        preprocessing.json   time-bin edges and RNA normaliser fitted on the training ids
        checkpoint.pt        model + optimiser + completed epochs + history (every epoch, atomic)
        predictions.csv      case_id, time, event, time_bin, risk, S_0..S_{T-1} (validation cases)
        metrics.json         c_index, c_index_td, ibs, train/val curves, seconds, ...
        DONE                 written last
      summary.json           mean/std over folds, pooled out-of-fold c-index
      oof_predictions.csv    every fold's predictions, with a fold column

Running the same command again resumes: folds with ``DONE`` are read back, not
recomputed; an unfinished fold continues after the last epoch in its checkpoint. A
``config.json`` that differs from the new config (other than the operational fields
``out_dir, device, num_workers, threads``) is refused, and so is a run whose inputs
changed since it began (:mod:`~survmamba_lite.experiment.inputs`): use a new ``--out`` or
``--overwrite``. ``--overwrite`` deletes only the files ``survmamba cv`` writes, in a
folder marked as a run (:mod:`~survmamba_lite.utils.outputs`), and refuses when the folder
holds anything else.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from tqdm import tqdm

from survmamba_lite.experiment.config import ExperimentConfig
from survmamba_lite.experiment.predfiles import read_predictions
from survmamba_lite.experiment.jobs import JobOptions, cached_cohort, finish_run, job_is_done, prepare_run, run_jobs
from survmamba_lite.experiment.rundir import (CONFIG, OOF, SUMMARY, check_model_fits_cohort, load_experiment_cohort,
                                              model_label, read_run_config, summarise_run)
from survmamba_lite.experiment.trainer import METRICS, EpochCallback, train_fold

__all__ = ["CVResult", "run_cv", "cv_result", "load_experiment_cohort", "check_model_fits_cohort", "model_label",
           "read_run_config", "summarise_run", "CONFIG", "SUMMARY", "OOF"]


@dataclass
class CVResult:
    """What :func:`run_cv` produced (everything is also on disk under ``out_dir``).

    Attributes:
        out_dir: the run directory.
        config: the experiment.
        folds: per-fold metrics (``fold_{k}/metrics.json``), in fold order.
        summary: ``summary.json``.
        oof: ``oof_predictions.csv`` as a frame.
    """

    out_dir: Path
    config: ExperimentConfig
    folds: list[dict]
    summary: dict
    oof: pd.DataFrame


# --------------------------------------------------------------------------- labels and checks
def run_cv(config: ExperimentConfig, *, overwrite: bool = False, progress: bool = True,
           on_epoch_end: EpochCallback | None = None, log: Callable[[str], None] | None = None,
           features: str = "auto", workers: int = 1) -> CVResult:
    """Run (or resume) k-fold cross-validation as described in the module docstring.

    Args:
        config: the experiment.
        overwrite: delete an existing run in ``config.out_dir`` first.
        progress: tqdm bars and one-line messages.
        on_epoch_end: ``on_epoch_end(fold, epoch, history)`` after each epoch's checkpoint
            (folds run in this process; not with ``workers > 1``).
        log: message sink (default: ``print`` when ``progress``, else silent).
        features: where the patch features are kept (``auto``, ``gpu``, ``host`` or
            ``disk``; see :func:`~survmamba_lite.experiment.trainer.train_fold`).
        workers: folds trained at once, each in its own process
            (:func:`~survmamba_lite.experiment.jobs.run_jobs`; the results are the same).
    """
    log = log or (tqdm.write if progress else (lambda msg: None))
    if workers > 1 and on_epoch_end is not None:
        raise ValueError("run_cv: on_epoch_end needs the folds in this process (workers=1)")
    jobs = prepare_run(config, overwrite=overwrite)
    out = Path(config.out_dir)
    fold_ids = [job.fold for job in jobs]
    _, derived = read_run_config(out)
    log(f"{derived['model_label']} on {derived['cohort_name']}: folds {fold_ids}, {config.epochs} epochs, "
        f"seed {config.seed} -> {out}")
    for job in jobs:
        if job_is_done(job):
            log(f"fold {job.fold}: done earlier, read from {job.fold_dir}")
    if workers > 1:
        failed = [r for r in run_jobs(jobs, JobOptions(features=features), workers=workers) if r.status == "failed"]
        if failed:
            raise RuntimeError(f"{len(failed)} fold(s) failed; the first ({failed[0].job.name}):\n{failed[0].error}")
    else:
        cohort, _, wsi_dim = cached_cohort(config)
        old_threads = torch.get_num_threads()
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        try:
            for job in jobs:
                if not job_is_done(job):
                    train_fold(config, cohort, job.fold, job.fold_dir, wsi_dim=wsi_dim, progress=progress,
                               on_epoch_end=on_epoch_end, log=log, features=features)
        finally:
            torch.set_num_threads(old_threads)
    finish_run(config)
    result = cv_result(config)
    c = result.summary["c_index"]
    if c["mean"] is not None:
        log(f"c-index {c['mean']:.4f}" + (f" ± {c['std']:.4f}" if c["std"] is not None else "")
            + f" over {c['n']} fold(s); pooled out-of-fold {result.summary['oof_c_index']}")
    return result


def cv_result(config: ExperimentConfig) -> CVResult:
    """The :class:`CVResult` of a finished run, read from ``config.out_dir``."""
    out = Path(config.out_dir)
    if not (out / SUMMARY).is_file():
        raise ValueError(f"{out}: the run is unfinished (no {SUMMARY}); run it again to finish it")
    summary = json.loads((out / SUMMARY).read_text(encoding="utf-8"))
    oof = read_predictions(out / OOF)
    folds = [json.loads((out / f"fold_{k}" / METRICS).read_text(encoding="utf-8")) for k in summary["folds"]]
    return CVResult(out_dir=out, config=config, folds=folds, summary=summary, oof=oof)
