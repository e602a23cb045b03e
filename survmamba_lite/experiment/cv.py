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
holds anything else. A run folder has one writer at a time (:mod:`~survmamba_lite.utils.lock`):
a second ``survmamba cv`` (or ``grid``) on the same folder is refused at once, naming the first.
A cohort folder that moved keeps its runs: they resume when its files match the recorded
fingerprints.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
from tqdm import tqdm

from survmamba_lite.experiment.config import ExperimentConfig
from survmamba_lite.experiment.predfiles import read_predictions
from survmamba_lite.experiment.jobs import JobOptions, job_is_done, prepare_run, run_jobs
from survmamba_lite.experiment.runfiles import CONFIG, METRICS, OOF, SUMMARY, fold_dir
from survmamba_lite.experiment.rundir import (check_model_fits_cohort, load_experiment_cohort,
                                              model_label, read_run_config, summarise_run)
from survmamba_lite.experiment.trainer import EpochCallback
from survmamba_lite.utils.lock import folder_lock

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
        workers: folds trained at once, each in its own process (the results are the same).

    The folds are jobs of :func:`~survmamba_lite.experiment.jobs.run_jobs`, the runner of
    ``survmamba grid``; with ``workers=1`` they run here, one after the other, and a failing
    fold raises its own error.
    """
    log = log or (tqdm.write if progress else (lambda msg: None))
    if workers > 1 and on_epoch_end is not None:
        raise ValueError("run_cv: on_epoch_end needs the folds in this process (workers=1)")
    with folder_lock(config.out_dir):               # one writer per run folder; a second is refused at once
        return _run_cv(config, overwrite=overwrite, progress=progress, on_epoch_end=on_epoch_end, log=log,
                       features=features, workers=workers)


def _run_cv(config: ExperimentConfig, *, overwrite: bool, progress: bool, on_epoch_end: EpochCallback | None,
            log: Callable[[str], None], features: str, workers: int) -> CVResult:
    jobs = prepare_run(config, overwrite=overwrite, log=log)
    out = Path(config.out_dir)
    fold_ids = [job.fold for job in jobs]
    _, derived = read_run_config(out)
    log(f"{derived['model_label']} on {derived['cohort_name']}: folds {fold_ids}, {config.epochs} epochs, "
        f"seed {config.seed} -> {out}")
    for job in jobs:
        if job_is_done(job):
            log(f"fold {job.fold}: done earlier, read from {job.fold_dir}")
    options = JobOptions(features=features, progress=progress and workers <= 1)
    results = run_jobs(jobs, options, workers=workers, log=log, on_epoch_end=on_epoch_end, reraise=workers <= 1)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise RuntimeError(f"{len(failed)} fold(s) failed; the first ({failed[0].job.name}):\n{failed[0].error}")
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
    folds = [json.loads((fold_dir(out, k) / METRICS).read_text(encoding="utf-8")) for k in summary["folds"]]
    return CVResult(out_dir=out, config=config, folds=folds, summary=summary, oof=oof)
