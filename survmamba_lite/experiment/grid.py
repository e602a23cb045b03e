r"""The cohort × model × fold grid: ``survmamba grid``, on Dask distributed or one job at a time.

::

    survmamba grid --cohort-dirs cohorts/blca cohorts/brca --models survmamba survmamba:variant=A snn abmil-kp \
        [--folds 0 1 ...] [--epochs 20] [--dim 512] [--set KEY=VALUE ...] [--max-cases N] \
        [--jobs-per-gpu 4] [--scheduler ADDRESS | --serial] --out runs/grid

Every (cohort, model, fold) is a :class:`~survmamba_lite.experiment.jobs.Job`; a model
may carry options after a colon (``survmamba:variant=A,bidirectional=false``). The grid's
folder::

    OUT/
      grid.json                      the grid's cohorts, models, common settings and run directories
      runs/<cohort>/<model>/         one run directory of `survmamba cv` per cohort and model
      jobs.jsonl                     one line per job attempt: status, start, end, worker, GPU, cases/s, ...
      timing.csv, timing.md          per run: wall time (while any of its jobs trained), fold seconds,
                                     cases/s, GPU utilisation, peak memory
      logs/<cohort>__<model>__fold_<k>.log   the traceback of a failed job (the command prints one line)

The folder must be new, empty or a grid folder, and has one writer at a time (it and its
runs are locked: :mod:`~survmamba_lite.experiment.gridfolder`, :mod:`~survmamba_lite.utils.lock`).

``survmamba report OUT`` reads every finished run of the grid (:func:`expand_run_dirs`).

**Where the jobs run.**

* Dask installed (the ``grid`` extra: ``pip install survmamba-lite[grid]``), no
  ``--scheduler``: a local cluster of this machine with **one worker process per GPU
  slot**: ``--jobs-per-gpu N`` processes per visible GPU, each pinned to its GPU through
  ``CUDA_VISIBLE_DEVICES`` (:func:`local_cluster`), each with one thread and the worker
  resource ``GPU_SLOT=1``; every job asks for one ``GPU_SLOT``, so every GPU of the host is
  used and never runs more than N jobs. Without a GPU, ``--workers N`` CPU processes.
* ``--scheduler ADDRESS``: an existing Dask cluster (``tcp://host:8786``). Jobs ask for
  ``GPU_SLOT=1`` when some worker declares that resource, else take one worker thread.
* Dask not installed, or ``--serial``: the same jobs one after the other in this process
  (the embedded default).

Jobs are handed to Dask in grid order (cohort, then model, then fold), no more at once than
there are slots, so the folds of a run start together and runs finish one after another.
Several jobs share a GPU as separate processes, each with batch size 1 as in the paper;
seeds depend on the config and fold only, so the results do not depend on where or beside
what a job ran.

**Resume.** Running the same command again skips finished jobs (``fold_k/DONE``); an
unfinished job continues after its last finished epoch (checkpoint of model, optimiser
and history, written atomically every epoch); the results are those of an uninterrupted
run. Checkpoints are deleted when a job finishes (``--keep-checkpoints`` keeps them) and
can live outside the run folders (``--checkpoint-dir``), so the grid folder stays small.
``--time-limit S`` starts no epoch that would end more than S seconds after the start
(the longest epoch so far is the estimate), so a run that must fit a time slot stops
cleanly and resumes next time.

**SLURM / PBS clusters** (dask-jobqueue, not a dependency of this package)::

    # on the login node, in the project's environment (pip install dask-jobqueue)
    python - <<'EOF'
    from dask_jobqueue import SLURMCluster          # PBSCluster for PBS/Torque: same arguments
    cluster = SLURMCluster(
        queue="gpu", cores=4, processes=4, memory="64GB", walltime="04:00:00",
        job_extra_directives=["--gres=gpu:1"],      # PBS: ["-l select=1:ngpus=1"]
        worker_extra_args=["--resources", "GPU_SLOT=1"],
        job_script_prologue=["source ~/envs/survmamba/bin/activate"])
    cluster.scale(jobs=4)                           # 4 SLURM jobs x 4 worker processes sharing their GPU
    print(cluster.scheduler_address)                # e.g. tcp://10.1.2.3:8786
    input("scheduler running; press Enter to stop")
    EOF
    # in another shell
    survmamba grid --scheduler tcp://10.1.2.3:8786 --cohort-dirs ... --models ... --out runs/grid

Each SLURM job gets one GPU and runs ``processes`` worker processes on it (all see the same
``CUDA_VISIBLE_DEVICES`` that SLURM sets), each declaring ``GPU_SLOT=1``: a job per
process, ``processes`` jobs per GPU. The run folders must be on a file system that the
workers and the submitting machine share.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from survmamba_lite.experiment.config import ExperimentConfig
from survmamba_lite.experiment.jobs import (Job, JobOptions, JobResult, visible_gpus, finish_run, job_is_done,
                                            prepare_run, run_job)
from survmamba_lite.experiment.gridfolder import check_grid_dir, expand_run_dirs, write_job_log
from survmamba_lite.experiment.runfiles import CONFIG, GRID, JOBS, METRICS, SUMMARY, TIMING, json_text, write_json
from survmamba_lite.utils.io import atomic_write_text
from survmamba_lite.utils.lock import folder_lock
from survmamba_lite.utils.outputs import GRID as GRID_KIND
from survmamba_lite.utils.outputs import claim_out_dir

__all__ = ["SLOT", "parse_model", "model_slug", "grid_configs", "local_cluster", "dask_available", "run_grid",
           "GridResult", "expand_run_dirs", "timing_table", "read_jobs", "GRID", "JOBS", "TIMING"]

#: the Dask worker resource of one concurrent training job on a GPU
SLOT = "GPU_SLOT"


# --------------------------------------------------------------------------- the grid's runs
def parse_model(text: str) -> tuple[str, dict[str, Any]]:
    """``name[:key=value,...]`` -> (registry name, options), each value converted to the
    type the model declares for it (:func:`~survmamba_lite.experiment.options.coerce_option`).

    >>> parse_model("survmamba:variant=A,bidirectional=false")
    ('survmamba', {'variant': 'A', 'bidirectional': False})
    >>> parse_model("snn")
    ('snn', {})
    """
    from survmamba_lite.experiment.options import coerce_option
    from survmamba_lite.registry import get_model_spec

    name, _, rest = text.partition(":")
    name = name.strip()
    get_model_spec(name)                                  # unknown model: the registry's message
    options: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"model {text!r}: expected NAME:KEY=VALUE[,KEY=VALUE...], got {part!r}")
        options[key.strip()] = coerce_option(name, key.strip(), value.strip())
    return name, options


def model_slug(name: str, options: dict[str, Any]) -> str:
    """The run folder name of a model with options.

    >>> model_slug("survmamba", {"variant": "A", "bidirectional": False})
    'survmamba__bidirectional-false__variant-a'
    """
    parts = [name] + [f"{k}-{json.dumps(v) if not isinstance(v, str) else v}" for k, v in sorted(options.items())]
    return re.sub(r"[^a-z0-9_.-]+", "-", "__".join(parts).lower())


def grid_configs(cohort_dirs: Sequence[str | Path], models: Sequence[str], out: str | Path,
                 common_options: dict[str, Any] | None = None, **fields: Any) -> list[ExperimentConfig]:
    """One :class:`ExperimentConfig` per cohort and model; ``out/runs/<cohort folder>/<model slug>``.

    Args:
        cohort_dirs: cohort folders (their folder names must differ).
        models: ``name[:key=value,...]``.
        out: the grid folder.
        common_options: model options for every model that accepts them (``dim``, ...);
            an option no model accepts is an error; text values are converted to each
            model's declared type (as ``--set`` gives them).
        fields: other config fields (``epochs``, ``folds``, ``seed``, ``max_cases``, ...).
    """
    from survmamba_lite.experiment.options import coerce_option
    from survmamba_lite.registry import accepted_options, get_model_spec

    names = [Path(c).name for c in cohort_dirs]
    if len(set(names)) != len(names):
        raise ValueError(f"cohort folders must have distinct names (runs go to runs/<name>/), got {names}")
    if not models:
        raise ValueError("give at least one model (--models NAME ...)")
    parsed = [parse_model(m) for m in models]
    common = dict(common_options or {})
    takers = {k: [n for n, _ in parsed if (a := accepted_options(get_model_spec(n))) is None or k in a]
              for k in common}
    unused = [k for k, t in takers.items() if not t]
    if unused:
        raise ValueError(f"option(s) {unused} are accepted by none of the models {[n for n, _ in parsed]}")
    slugs = [model_slug(n, o) for n, o in parsed]
    if len(set(slugs)) != len(slugs):
        raise ValueError(f"a model is listed twice: {models}")
    configs = []
    for cdir, cname in zip(cohort_dirs, names):
        for (name, options), slug in zip(parsed, slugs):
            allowed = accepted_options(get_model_spec(name))
            opts = {k: coerce_option(name, k, v) if isinstance(v, str) else v
                    for k, v in common.items() if allowed is None or k in allowed}
            opts.update(options)
            configs.append(ExperimentConfig(model=name, cohort_dir=str(cdir),
                                            out_dir=str(Path(out) / "runs" / cname / slug),
                                            model_options=opts, **fields))
    return configs


# --------------------------------------------------------------------------- Dask
def dask_available() -> bool:
    """True when ``distributed`` imports (the ``grid`` extra)."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def local_cluster(*, jobs_per_gpu: int = 4, workers: int | None = None, gpus: Sequence[str] | None = None,
                  processes: bool = True):
    """A Dask cluster on this machine with one single-threaded worker per GPU slot.

    With GPUs (``gpus``, default: the visible ones): ``jobs_per_gpu`` worker processes per
    GPU, named ``gpu<g>-<slot>``, each started with ``CUDA_VISIBLE_DEVICES=<g>`` and
    declaring ``GPU_SLOT=1``. Without GPUs: ``workers`` CPU workers (default 1). No memory
    limit (the feature stores are large by design) and no dashboard; it listens on
    127.0.0.1 only.

    Args:
        processes: False runs the workers as threads of this process (tests; CPU only).
    """
    from distributed import LocalCluster, Nanny, Scheduler, SpecCluster

    gpus = list(visible_gpus() if gpus is None else gpus)
    if jobs_per_gpu < 1:
        raise ValueError(f"jobs_per_gpu must be >= 1, got {jobs_per_gpu}")
    if not gpus or not processes:
        where = {"host": "127.0.0.1"} if processes else {}        # in-process workers talk over inproc://
        return LocalCluster(n_workers=workers or 1, threads_per_worker=1, processes=processes, memory_limit=0,
                            dashboard_address=None, resources={SLOT: 1}, silence_logs=logging.WARNING, **where)
    spec = {f"gpu{g}-{s}": {"cls": Nanny, "options": {"nthreads": 1, "memory_limit": 0, "resources": {SLOT: 1},
                                                      "env": {"CUDA_VISIBLE_DEVICES": str(g)},
                                                      "host": "127.0.0.1"}}
            for g in gpus for s in range(jobs_per_gpu)}
    return SpecCluster(workers=spec, scheduler={"cls": Scheduler, "options": {"dashboard": False,
                                                                              "host": "127.0.0.1", "port": 0}},
                       silence_logs=logging.WARNING, name="survmamba-grid")


def _run_on_dask(client, jobs: list[Job], options: JobOptions, collect: Callable[[JobResult], None],
                 log: Callable[[str], None], poll_seconds: float = 5.0) -> None:
    from distributed import wait

    def cluster() -> tuple[int, int, int]:
        """Workers, GPU slots and worker threads of the cluster now."""
        info = list(client.scheduler_info()["workers"].values())
        return (len(info), sum(w.get("resources", {}).get(SLOT, 0) for w in info),
                sum(w.get("nthreads", 1) for w in info))

    n_workers, slots, _ = cluster()
    resources = {SLOT: 1} if slots else None
    log(f"dask: {n_workers} worker(s) at {client.scheduler.address}"
        + (f", {slots:g} {SLOT}(s)" if slots else f", no {SLOT} resource: one job per worker thread"))

    def submit(i: int):
        job = jobs[i]
        return client.submit(run_job, job, options, key=f"job-{i}-{Path(job.config.out_dir).name}-{job.fold}",
                             pure=False, resources=resources, priority=len(jobs) - i)

    # Jobs are handed to Dask in grid order, no more at once than can run (the GPU slots, or the
    # worker threads, looked at again every few seconds, so workers that join an adaptive cluster
    # get work): a worker would otherwise queue jobs of later runs and start them before earlier
    # runs' jobs, and a call cut short by --time-limit would leave many runs half done instead of few.
    nxt, running = 0, set()
    while nxt < len(jobs) or running:
        _, slots, threads = cluster()
        room = max(int(slots if resources else threads), 1) - len(running)
        for _ in range(min(room, len(jobs) - nxt)):
            running.add(submit(nxt))
            nxt += 1
        try:
            finished, _ = wait(list(running), timeout=poll_seconds, return_when="FIRST_COMPLETED")
        except TimeoutError:                                  # nothing finished: look at the workers again
            continue
        for fut in sorted(finished, key=lambda f: f.key):
            running.discard(fut)
            collect(fut.result())


# --------------------------------------------------------------------------- the grid
@dataclass
class GridResult:
    """What :func:`run_grid` did: ``results`` of this call's jobs, the ``timing`` table, the engine used."""

    out_dir: Path
    results: list[JobResult]
    timing: pd.DataFrame
    engine: str

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out


def run_grid(configs: Sequence[ExperimentConfig], out: str | Path, *, options: JobOptions = JobOptions(),
             scheduler: str | None = None, serial: bool = False, jobs_per_gpu: int = 4, workers: int | None = None,
             processes: bool = True, overwrite: bool = False, progress: bool = True,
             log: Callable[[str], None] | None = None, spec: dict | None = None,
             exclusive: bool = False) -> GridResult:
    """Run (or resume) every fold of every config; see the module docstring.

    Args:
        configs: the runs (:func:`grid_configs`); their ``out_dir`` lie under ``out/runs``.
        out: the grid folder.
        options: how jobs run (features, checkpoints, deadline).
        scheduler: address of an existing Dask scheduler; None: a :func:`local_cluster`.
        serial: run the jobs one after the other in this process (also without Dask).
        jobs_per_gpu, workers, processes: of the local cluster.
        overwrite: delete the runs' existing results first.
        progress: a progress bar over the jobs and one line per finished job.
        log: message sink (default: tqdm.write when ``progress``).
        spec: the grid's description for ``grid.json``.
        exclusive: ``out`` must be new, empty or a grid folder (the ``grid`` command); without
            it, ``out`` may hold other files (:func:`~survmamba_lite.experiment.gridfolder.check_grid_dir`).

    The grid folder and every run folder are locked while the grid runs
    (:func:`~survmamba_lite.utils.lock.folder_lock`): a second writer is refused at once.
    """
    failure_log = log or (tqdm.write if progress else print)    # a failed job is reported even when quiet
    log = log or (tqdm.write if progress else (lambda msg: None))
    out = Path(out)
    check_grid_dir(out, exclusive=exclusive)                  # before anything is written
    with contextlib.ExitStack() as held:
        held.enter_context(folder_lock(out))
        check_grid_dir(out, exclusive=exclusive)              # again, now that no one else writes
        for folder in dict.fromkeys(c.out_dir for c in configs):
            held.enter_context(folder_lock(folder))           # and no `survmamba cv` in a run of the grid
        claim_out_dir(out, GRID_KIND)
        return _run_grid(configs, out, options=options, scheduler=scheduler, serial=serial,
                         jobs_per_gpu=jobs_per_gpu, workers=workers, processes=processes, overwrite=overwrite,
                         progress=progress, log=log, spec=spec, failure_log=failure_log)


def _run_grid(configs: Sequence[ExperimentConfig], out: Path, *, options: JobOptions, scheduler: str | None,
              serial: bool, jobs_per_gpu: int, workers: int | None, processes: bool, overwrite: bool,
              progress: bool, log: Callable[[str], None], spec: dict | None,
              failure_log: Callable[[str], None]) -> GridResult:
    runs = [os.path.relpath(c.out_dir, out) for c in configs]
    if (out / GRID).is_file():              # a grid built over several calls keeps every call's runs
        earlier = json.loads((out / GRID).read_text(encoding="utf-8")).get("runs", [])
        runs = list(dict.fromkeys([*earlier, *runs]))
    write_json(out / GRID, {**(spec or {}), "runs": runs})
    jobs = [job for config in configs for job in prepare_run(config, overwrite=overwrite, log=log)]
    todo = [j for j in jobs if not job_is_done(j)]
    log(f"grid: {len(configs)} run(s), {len(jobs)} job(s), {len(jobs) - len(todo)} done earlier")
    for config in configs:          # runs finished in an earlier call but not summarised (stopped in between)
        if not (Path(config.out_dir) / SUMMARY).is_file():
            finish_run(config)
    results: list[JobResult] = []
    left: dict[str, set[int]] = {}
    for j in todo:
        left.setdefault(j.config.out_dir, set()).add(j.fold)
    bar = tqdm(total=len(todo), desc="grid jobs", unit="job", disable=not progress, file=sys.stdout)

    def collect(res: JobResult) -> None:
        results.append(res)
        record = {**res.record(), "run_dir": os.path.relpath(res.job.config.out_dir, out)}  # the grid can move
        try:
            with open(out / JOBS, "a", encoding="utf-8") as fh:
                fh.write(json_text(record, indent=None))
        except OSError as err:                            # a full disk: name the file
            raise OSError(err.errno, err.strerror, str(out / JOBS)) from err
        runs_left = left[res.job.config.out_dir]
        runs_left.discard(res.job.fold)
        if not runs_left:
            finish_run(res.job.config)
        m = res.metrics or {}
        c = m.get("c_index")
        extra = (f", c-index {c:.4f}" if c is not None else "") + (
            f", {m['cases_per_second']:.1f} cases/s" if m.get("cases_per_second") else "")
        if res.error:                 # one line here; the traceback in the job's log file
            path = write_job_log(out, record["run_dir"], res.job.fold, res.error)
            res.extra["log"] = str(path)
            extra = f": {res.extra.get('message') or 'failed'} (traceback in {path})"
        (failure_log if res.error else log)(f"{res.status:7s} {res.job.name} in {res.seconds:.1f} s{extra}")
        bar.update(1)

    engine = "serial"
    try:
        if not todo:
            pass
        elif serial or (scheduler is None and not dask_available()):
            if not serial:
                log("grid: dask is not installed (pip install 'survmamba-lite[grid]'); running the jobs one by one")
            for job in todo:
                collect(run_job(job, options, log=log))
        else:
            from distributed import Client

            if scheduler is not None:
                engine = f"dask {scheduler}"
                with Client(scheduler) as client:
                    _run_on_dask(client, todo, options, collect, log)
            else:
                with local_cluster(jobs_per_gpu=jobs_per_gpu, workers=workers, processes=processes) as cluster, \
                        Client(cluster) as client:
                    engine = f"dask local ({len(cluster.workers)} workers)"
                    _run_on_dask(client, todo, options, collect, log)
    finally:
        bar.close()
    timing = timing_table(out)
    return GridResult(out, results, timing, engine)


# --------------------------------------------------------------------------- records
def read_jobs(out: str | Path) -> pd.DataFrame:
    """A grid folder's ``jobs.jsonl``: one row per job attempt (``run_dir``, ``fold``, ``status``,
    ``started``, ``ended``, and when recorded ``seconds``, ``gpu``, ``worker``, ``c_index``,
    ``cases_per_second``, ...); no rows when the grid has not run a job yet."""
    path = Path(out) / JOBS
    if not path.is_file():
        return pd.DataFrame(columns=["run_dir", "fold", "status", "started", "ended"])
    return pd.DataFrame([json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line])


def _busy_seconds(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of ``(start, end)`` intervals.

    >>> _busy_seconds([(0, 10), (5, 12), (20, 25)])
    17.0
    """
    total, end = 0.0, -np.inf
    for a, b in sorted(intervals):
        if b > end:
            total += b - max(a, end)
            end = b
    return float(total)


def _run_key(path: str, out: Path) -> str:
    """A run's path relative to its grid folder, from what ``jobs.jsonl`` holds: the relative
    path, or (lines written before the grid folder moved) an absolute path ending in
    ``runs/<cohort>/<model>``, the layout :func:`grid_configs` gives every grid."""
    p = Path(path)
    if not p.is_absolute():
        return os.path.normpath(p)
    try:
        return os.path.normpath(p.relative_to(out.resolve()))
    except ValueError:
        return os.path.join(*p.parts[-3:]) if len(p.parts) >= 3 and p.parts[-3] == "runs" else str(p)


def timing_table(out: str | Path, run_dirs: Sequence[str | Path] | None = None) -> pd.DataFrame:
    """Per run: folds done, wall seconds (the time during which at least one of its jobs
    was training, over every call: a run resumed across calls does not count the time
    between them), summed fold seconds, training cases/s, GPU utilisation, peak memory.
    Written as ``timing.csv`` and ``timing.md``.

    Args:
        out: the grid folder.
        run_dirs: the runs to list (default: every run of ``grid.json``, in its order).
    """
    from survmamba_lite.utils.markdown import to_markdown

    out = Path(out)
    if run_dirs is None:
        grid = out / GRID
        rel = json.loads(grid.read_text(encoding="utf-8")).get("runs", []) if grid.is_file() else []
        run_dirs = [out / r for r in rel]
    attempts = read_jobs(out)
    attempts["key"] = [_run_key(r, out) for r in attempts["run_dir"]]
    rows = []
    for run in map(Path, run_dirs):
        if not (run / CONFIG).is_file():          # listed by grid.json but deleted since
            continue
        config = json.loads((run / CONFIG).read_text(encoding="utf-8"))
        derived = config.get("derived", {})
        metrics = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(run.glob(f"fold_*/{METRICS}"))]
        key = _run_key(str(run.resolve()), out)
        mine = attempts[(attempts["key"] == key) & attempts["status"].isin(["done", "paused"])]
        wall = _busy_seconds(list(zip(mine["started"], mine["ended"]))) if len(mine) else None
        if not metrics and wall is not None and wall < 1.0:   # only paused before its first epoch
            wall = None

        def mean(key: str) -> float | None:
            v = [m.get(key) for m in metrics if m.get(key) is not None]
            return float(np.mean(v)) if v else None
        peak = [m.get("peak_memory_mib") for m in metrics if m.get("peak_memory_mib") is not None]
        rows.append({"cohort": derived.get("cohort_name"), "label": derived.get("model_label"),
                     "run_dir": os.path.relpath(run, out), "folds_done": len(metrics),
                     "epochs": config.get("epochs"),
                     "wall_seconds": wall, "fold_seconds": float(sum(m["seconds"] for m in metrics)),
                     "cases_per_second": mean("cases_per_second"), "gpu_utilization": mean("gpu_utilization"),
                     "peak_memory_mib": max(peak) if peak else None,
                     "device": metrics[0].get("device") if metrics else None,
                     "features": metrics[0].get("features") if metrics else None})
    table = pd.DataFrame(rows, columns=["cohort", "label", "run_dir", "folds_done", "epochs", "wall_seconds",
                                        "fold_seconds", "cases_per_second", "gpu_utilization", "peak_memory_mib",
                                        "device", "features"])
    atomic_write_text(out / TIMING, table.to_csv(index=False, lineterminator="\n", float_format="%.4g"))
    shown = table.drop(columns=["run_dir"]).copy()
    for col in ("wall_seconds", "fold_seconds", "cases_per_second", "gpu_utilization", "peak_memory_mib"):
        shown[col] = [("" if v is None or pd.isna(v) else f"{v:.1f}") for v in shown[col]]
    atomic_write_text(out / "timing.md", to_markdown(shown) + "\n")
    return table
