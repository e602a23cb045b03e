r"""One unit of work for ``cv``, ``grid`` and papermill: a job is (cohort, experiment config, fold).

A :class:`Job` names one fold of one run directory (``config.out_dir``): ``survmamba cv``
runs a cohort's jobs in its own process, ``survmamba grid``
(:mod:`~survmamba_lite.experiment.grid`) maps the jobs of many cohorts and models onto
worker processes or Dask workers, and the training notebook calls the same functions. All
of them write the same fold folders (see :mod:`~survmamba_lite.experiment.cv`), so resume,
``survmamba report`` and the book read one layout.

* :func:`prepare_run` checks the cohort against the model, writes ``config.json`` (or
  checks that the existing one matches) and returns the run's jobs;
* :func:`run_job` trains one fold (in whatever process it runs: the cohort and its patch
  features are loaded once per process and kept, see
  :mod:`~survmamba_lite.experiment.datapath`) and returns a :class:`JobResult`;
* :func:`finish_run` writes ``summary.json`` and ``oof_predictions.csv`` once every fold
  of the run is done;
* :func:`run_jobs` runs jobs one after the other in this process, or concurrently in
  ``workers`` processes spread over the visible GPUs (each process pinned to one GPU
  through ``CUDA_VISIBLE_DEVICES``, each job still with batch size 1: concurrency never
  changes what a job computes).

Seeds come from the config and the fold alone (:func:`~survmamba_lite.experiment.sampling.derive_seed`),
so a job gives the same numbers whichever process runs it and whatever runs beside it
(on CPU bit for bit; ``tests/test_experiment_jobs.py``).
"""
from __future__ import annotations

import multiprocessing
import os
import socket
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from survmamba_lite.experiment.config import ExperimentConfig
from survmamba_lite.experiment.runfiles import CHECKPOINT, DONE, fold_dir
from survmamba_lite.experiment.trainer import FEATURES, EpochCallback, TrainingPaused, train_fold
from survmamba_lite.utils.device import torch_threads
from survmamba_lite.utils.io import FULL_DISK_ERRNOS, full_disk_advice

__all__ = ["Job", "JobOptions", "JobResult", "prepare_run", "run_job", "finish_run", "run_jobs", "job_is_done", "error_line",
           "cached_cohort", "jobs_of", "visible_gpus"]


@dataclass(frozen=True)
class Job:
    """Fold ``fold`` of the run ``config`` (its ``out_dir`` is the run directory)."""

    config: ExperimentConfig
    fold: int

    def __reduce__(self):               # the config's read-only options mapping does not pickle
        return _job_from_dict, (self.config.to_dict(), self.fold)

    @property
    def run_dir(self) -> Path:
        return Path(self.config.out_dir)

    @property
    def fold_dir(self) -> Path:
        return fold_dir(self.run_dir, self.fold)

    @property
    def name(self) -> str:
        """``<run directory>/fold_<k>``, for logs."""
        return f"{self.config.out_dir}/fold_{self.fold}"


def _job_from_dict(config: dict, fold: int) -> Job:
    return Job(ExperimentConfig.from_dict(config), fold)


@dataclass(frozen=True)
class JobOptions:
    """How jobs run (nothing here changes a result).

    Attributes:
        features: where patch features are kept (``auto``, ``gpu``, ``host``, ``disk``;
            see :func:`~survmamba_lite.experiment.trainer.train_fold`).
        checkpoint_root: keep checkpoints under ``<checkpoint_root>/<run dir name>/fold_<k>/``
            instead of in the fold folder (the run folders then hold results only).
        keep_checkpoint: keep a finished fold's checkpoint (False: deleted when the fold is done).
        deadline: ``time.time()`` after which no new epoch begins; an unfinished job pauses
            with its checkpoint and resumes in a later call.
        start_margin: no job starts later than ``deadline - start_margin`` seconds (room
            for a fresh job's first epoch, which always runs).
        progress: tqdm bars inside the job (off for workers).
    """

    features: str = "auto"
    checkpoint_root: str | None = None
    keep_checkpoint: bool = True
    deadline: float | None = None
    start_margin: float = 0.0
    progress: bool = False

    def __post_init__(self) -> None:
        if self.features not in FEATURES:
            raise ValueError(f"features must be one of {FEATURES}, got {self.features!r}")

    def checkpoint_path(self, job: Job) -> Path:
        if self.checkpoint_root is None:
            return job.fold_dir / CHECKPOINT
        run = job.run_dir
        return fold_dir(Path(self.checkpoint_root) / run.parent.name / run.name, job.fold) / CHECKPOINT


@dataclass
class JobResult:
    """What became of a job.

    Attributes:
        job: the job.
        status: ``"done"`` (trained now), ``"skipped"`` (done earlier), ``"paused"`` (the
            deadline came first; resumable) or ``"failed"`` (``error`` holds the traceback).
        seconds: wall time of this attempt.
        started, ended: ``time.time()`` at its start and end.
        metrics: the fold's ``metrics.json`` when done.
        worker: ``host:pid`` of the process that ran it; ``gpu``: its ``CUDA_VISIBLE_DEVICES``.
    """

    job: Job
    status: str
    seconds: float
    started: float
    ended: float
    metrics: dict | None = None
    error: str | None = None
    worker: str = ""
    gpu: str | None = None
    extra: dict = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """One JSON-safe line for ``jobs.jsonl``."""
        m = self.metrics or {}
        return {"run_dir": str(self.job.run_dir), "model": self.job.config.model, "fold": self.job.fold,
                "cohort_dir": self.job.config.cohort_dir, "status": self.status, "seconds": round(self.seconds, 3),
                "started": round(self.started, 3), "ended": round(self.ended, 3), "worker": self.worker,
                "gpu": self.gpu, "c_index": m.get("c_index"), "cases_per_second": m.get("cases_per_second"),
                "gpu_utilization": m.get("gpu_utilization"), "peak_memory_mib": m.get("peak_memory_mib"),
                "features": m.get("features"), "error": None if self.error is None else self.error[-2000:]}


def job_is_done(job: Job) -> bool:
    """True when the fold folder holds its ``DONE`` marker."""
    return (job.fold_dir / DONE).is_file()


# --------------------------------------------------------------------------- per-process cohort cache
_COHORTS: dict[tuple, tuple] = {}


def cached_cohort(config: ExperimentConfig):
    """``(cohort, folds_source, wsi_dim)`` of the config, loaded once per process (the last 4 kept)."""
    from survmamba_lite.experiment.rundir import (check_folds_exist, check_folds_have_deaths,
                                                  check_model_fits_cohort, cohort_wsi_dim, load_experiment_cohort)

    root = Path(config.cohort_dir).resolve()
    stamps = tuple(p.stat().st_mtime_ns if p.exists() else None
                   for p in (root / "manifest.yaml", root / "clinical.csv", root / "splits", root / "rna.csv",
                             root / "hierarchy.tsv", root / "features"))
    key = (str(root), stamps, config.max_cases, config.seed, config.n_folds)   # what the loaded cohort depends on
    if key not in _COHORTS:
        cohort, source = load_experiment_cohort(config)
        while len(_COHORTS) >= 4:
            _COHORTS.pop(next(iter(_COHORTS)))
        _COHORTS[key] = (cohort, source, cohort_wsi_dim(cohort))
    else:            # the same cohort object for every model, so its feature store is read once per process
        cohort = _COHORTS[key][0]
        check_model_fits_cohort(config.model, list(cohort.modalities), str(root))
        check_folds_exist(config, cohort)
        check_folds_have_deaths(config, cohort, _COHORTS[key][1])
    return _COHORTS[key]


# --------------------------------------------------------------------------- a run's jobs
def prepare_run(config: ExperimentConfig, *, overwrite: bool = False,
                log: Callable[[str], None] | None = None) -> list[Job]:
    """Check the cohort and the model, write (or check) the run directory; the run's jobs.

    Raises a ValueError when ``config.out_dir`` holds a run of another configuration (see
    :mod:`~survmamba_lite.experiment.cv`).
    """
    from survmamba_lite.data.layout import write_folds
    from survmamba_lite.experiment.rundir import derived_fields, prepare_run_dir

    cohort, source, wsi_dim = cached_cohort(config)
    out = prepare_run_dir(config, derived_fields(config, cohort, source, wsi_dim), overwrite, log=log)
    if "make_folds" in source:
        write_folds(out, cohort.folds)
    folds = list(config.folds) if config.folds is not None else list(range(len(cohort.folds)))
    return [Job(config, k) for k in folds]


def _check_pinned_gpu(gpu: str | None, device: str) -> None:
    """A worker pinned to a GPU that CUDA cannot see would train on the CPU (``device='auto'``)
    unnoticed, for hours: refuse it, naming the GPU. ``CUDA_VISIBLE_DEVICES`` empty or starting
    with a negative id (``-1``, the usual way to hide every GPU) asks for no GPU and passes."""
    first = (gpu or "").split(",")[0].strip()
    if not first or first.startswith("-"):
        return
    if device != "cpu" and torch.backends.cuda.is_built() and not torch.cuda.is_available():
        raise RuntimeError(
            f"this worker was given GPU {gpu!r} (CUDA_VISIBLE_DEVICES) but CUDA sees no device there, so the "
            "fold would train on the CPU. Name GPUs as this machine numbers them (nvidia-smi -L); under NVIDIA "
            "MPS, as the MPS daemon numbers them: from 0 among the GPUs visible to the daemon")


def run_job(job: Job, options: JobOptions = JobOptions(), *, log: Callable[[str], None] | None = None,
            on_epoch_end: EpochCallback | None = None, reraise: bool = False) -> JobResult:
    """Train one fold (or skip it when done).

    A failed fold gives status ``failed`` with its traceback, so the other jobs go on; with
    ``reraise`` its exception is raised instead (a caller that runs one run's folds in turn and
    reports the first error as it is). ``on_epoch_end(fold, epoch, history)`` follows every epoch.
    """
    log = log or (lambda msg: None)
    started = time.time()
    who = f"{socket.gethostname()}:{os.getpid()}"
    gpu = os.environ.get("CUDA_VISIBLE_DEVICES")

    def result(status: str, metrics=None, error=None) -> JobResult:
        end = time.time()
        return JobResult(job, status, end - started, started, end, metrics, error, who, gpu)

    if job_is_done(job):
        return result("skipped")
    if options.deadline is not None and started >= options.deadline - options.start_margin:
        return result("paused")
    config = job.config
    try:
        with torch_threads(config.threads):
            _check_pinned_gpu(gpu, config.device)
            cohort, _, wsi_dim = cached_cohort(config)
            fold = train_fold(config, cohort, job.fold, job.fold_dir, wsi_dim=wsi_dim, progress=options.progress,
                              on_epoch_end=on_epoch_end, log=log, features=options.features,
                              checkpoint_path=options.checkpoint_path(job), keep_checkpoint=options.keep_checkpoint,
                              deadline=options.deadline)
        return result("done", fold.metrics)
    except TrainingPaused as err:
        log(str(err))
        return result("paused")
    except Exception as err:         # the job failed; the others go on and the caller reports it
        if reraise:
            raise
        failed = result("failed", error=traceback.format_exc())
        failed.extra["message"] = error_line(err)
        return failed


def error_line(err: BaseException) -> str:
    """One line saying what went wrong (a file error names its file; other errors their first line).

    >>> error_line(FileNotFoundError(2, "No such file or directory", "cohorts/blca/clinical.csv"))
    'cohorts/blca/clinical.csv: No such file or directory'
    >>> error_line(RuntimeError("CUDA out of memory.\\nTried to allocate 2 GiB"))
    'RuntimeError: CUDA out of memory.'
    >>> error_line(OSError(28, "No space left on device", "g/runs/blca/snn/fold_0/checkpoint.pt"))
    'g/runs/blca/snn/fold_0/checkpoint.pt: no space left on the device; free some space and rerun the same command to resume'
    """
    if isinstance(err, OSError) and err.filename and err.errno in FULL_DISK_ERRNOS:
        return f"{err.filename}: {full_disk_advice(err)}"       # as every other command words it
    if isinstance(err, OSError) and err.filename:
        return f"{err.filename}: {err.strerror or err}"
    first = (str(err).strip().splitlines() or [""])[0]
    return first if isinstance(err, (ValueError, OSError)) else f"{type(err).__name__}: {first}"


def finish_run(config: ExperimentConfig) -> dict | None:
    """``summary.json`` and ``oof_predictions.csv`` of a run whose folds are all done; None otherwise."""
    from survmamba_lite.experiment.rundir import read_run_config, summarise_run

    out = Path(config.out_dir)
    _, derived = read_run_config(out)
    folds = list(config.folds) if config.folds is not None else list(range(int(derived["n_folds"])))
    if not all(job_is_done(Job(config, k)) for k in folds):
        return None
    return summarise_run(out, config, derived, folds)[0]


# --------------------------------------------------------------------------- running many jobs
def _pin_worker(slots) -> None:
    """Process-pool initializer: take a GPU id from the queue and make it the only visible GPU."""
    gpu = slots.get()
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)


def visible_gpus() -> list[str]:
    """The GPU ids this process may use: ``CUDA_VISIBLE_DEVICES`` when set, else CUDA's count."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip()]
    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def run_jobs(jobs: Sequence[Job], options: JobOptions = JobOptions(), *, workers: int = 1,
             on_result: Callable[[JobResult], None] | None = None, log: Callable[[str], None] | None = None,
             on_epoch_end: EpochCallback | None = None, reraise: bool = False) -> list[JobResult]:
    """Run ``jobs``: one after the other here (``workers=1``), or in ``workers`` processes.

    With several workers and GPUs visible, worker ``i`` sees only GPU ``i mod n_gpus``
    (``CUDA_VISIBLE_DEVICES``), so ``workers = jobs per GPU x GPUs`` fills every GPU
    evenly. Processes are started with ``spawn`` (CUDA cannot be forked). Finished runs
    are summarised as their last job ends.

    Args:
        jobs: the jobs, in the order they should start.
        options: how they run.
        workers: concurrent jobs.
        on_result: called in this process with each :class:`JobResult` as it arrives.
        log: one-line messages of serial jobs.
        on_epoch_end, reraise: of :func:`run_job`, for serial jobs (``workers=1``).
    """
    results: list[JobResult] = []
    pending = {}
    for job in jobs:
        pending.setdefault(job.config.out_dir, set()).add(job.fold)

    def collect(res: JobResult) -> None:
        results.append(res)
        left = pending[res.job.config.out_dir]
        left.discard(res.job.fold)
        if not left:
            finish_run(res.job.config)          # only when every fold of the run is done
        if on_result is not None:
            on_result(res)

    if workers <= 1:
        for job in jobs:
            collect(run_job(job, options, log=log, on_epoch_end=on_epoch_end, reraise=reraise))
        return results
    ctx = multiprocessing.get_context("spawn")
    slots = ctx.Queue()
    gpus = visible_gpus()
    for i in range(workers):
        slots.put(gpus[i % len(gpus)] if gpus else None)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_pin_worker,
                             initargs=(slots,)) as pool:
        futures = [pool.submit(run_job, job, options) for job in jobs]
        for fut in as_completed(futures):
            collect(fut.result())
    return results


def jobs_of(configs: Iterable[ExperimentConfig], *, overwrite: bool = False) -> list[Job]:
    """Every job of several runs (each prepared with :func:`prepare_run`), run by run."""
    return [job for config in configs for job in prepare_run(config, overwrite=overwrite)]
