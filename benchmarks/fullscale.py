"""Paper-scale experiments on the synthetic BLCA (and a BRCA-size timing run), resumable across calls.

Modes (``--mode``):

``paper``
    5 folds x 20 epochs at the paper's widths (each model's defaults: D = 512) on the
    paper-scale synthetic BLCA (359 cases, 8-40 regions of 32-256 patches, 768-d features,
    1,577 genes): SurvMamba (variant F, bidirectional and forward-only), the Table 3 variants
    A-E, and the Table 1 models SNN, ABMIL, TransMIL, ABMIL (KP), TransMIL (KP), MCAT,
    MOTCat and SurvPath: 15 runs, 75 jobs. When every run is done, ``survmamba report``
    writes Table 1, Table 3, Fig. 3 and Fig. 4 next to the grid.
``survmamba-blca``
    only SurvMamba (F, bidirectional) 5 x 20 on the paper-scale BLCA: the 8-minute target.
``survmamba-brca``
    the same on a BRCA-size synthetic cohort (869 cases): the 20-minute target.
``scaling``
    SurvMamba (F, bidirectional) on two paper-scale synthetic BLCA cohorts of the same size
    (seeds 0 and 1): ten jobs of about equal length, for the one-GPU against two-GPU
    comparison (run it once with ``CUDA_VISIBLE_DEVICES=0`` and once with ``0,1``, with as
    many ``--jobs-per-gpu`` as one cohort has folds, so one GPU needs two waves and two GPUs one).

Everything goes through ``survmamba grid``'s engine (:func:`survmamba_lite.experiment.grid.run_grid`):
``--jobs-per-gpu`` worker processes per GPU on a local Dask cluster (one by one without
Dask), each job with batch size 1. The grid folder (``--out``) holds only small files
(configs, per-epoch metrics, predictions, summaries, ``jobs.jsonl``, ``timing.md``); epoch
checkpoints of unfinished jobs go to ``--checkpoint-dir`` and are deleted when a job ends.
``--time-limit`` stops cleanly (no epoch starts that would end after it; no job starts in
the last ``--start-margin`` seconds), so the command fits a time slot; running it again
resumes: finished jobs are skipped, and jobs whose checkpoints survived continue from their
last epoch (jobs whose checkpoints are gone start again). Exit status 3 means "paused, run
again". A checkpoint of SurvMamba at D = 512 (model and optimiser) is about 165 MB, so on a
machine that does not keep its disk between calls, plan calls in which the jobs that start
also finish (``--models`` picks a subset of the mode's models for one call; the jobs of a
run start together, run after run).

The cohort is written once to ``--cohort-root`` (about 38 s and 3.7 GB for BLCA on the
H200 machine) and reused while it exists. ``--pack FILE.tar.gz`` writes the grid folder (no
checkpoints) into one archive to carry it back.

Example (one H200)::

    python benchmarks/fullscale.py --mode survmamba-blca --out results/fullscale/survmamba_blca \\
        --cohort-root runs/cohorts --checkpoint-dir runs/fullscale_ckpt --jobs-per-gpu 5 --time-limit 540 \\
        --cuda-graphs --precision bf16

The wall time of each run (the time during which any of its jobs trained, summed over
calls) and its throughput are in ``OUT/timing.csv``; the script prints them, and
``OUT/calls.jsonl`` records each call's grid time and job counts.

Dask is optional (without it the jobs run one by one). On a machine without internet,
install the ``grid`` extra from wheels: dask and distributed (same version), tornado,
tblib, zict, partd and locket (click, cloudpickle, fsspec, jinja2, msgpack, psutil, pyyaml,
sortedcontainers and toolz are common in GPU images).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))  # workers

PAPER_MODELS = (
    ["survmamba", "survmamba:bidirectional=false"]
    + [f"survmamba:variant={v}" for v in "ABCDE"]
    + ["snn", "abmil", "transmil", "abmil-kp", "transmil-kp", "mcat", "motcat", "survpath"])
#: mode -> (cohorts as (synthetic cohort, seed), models)
MODES = {
    "paper": ([("BLCA", 0)], PAPER_MODELS),
    "survmamba-blca": ([("BLCA", 0)], ["survmamba"]),
    "survmamba-brca": ([("BRCA", 0)], ["survmamba"]),
    "scaling": ([("BLCA", 0), ("BLCA", 1)], ["survmamba"]),
}


#: the issue's targets: (what, grid folder under the results root, at most this many seconds)
TIME_TARGETS = (
    ("SurvMamba F, 5 folds x 20 epochs, BLCA-size (359 cases), one GPU", "survmamba_blca", 8 * 60.0),
    ("SurvMamba F, 5 folds x 20 epochs, BRCA-size (869 cases), one GPU", "survmamba_brca", 20 * 60.0),
)
#: grid folders of the same grid on one GPU and on two, and the least speed-up asked for
SCALING = ("scaling_gpus_0", "scaling_gpus_0_1", 1.8)


def targets(root: Path):
    """A table (pandas DataFrame) of the measured value of each target, from the grid folders under
    ``root`` (``results/fullscale``).

    A time target reads the wall seconds of the SurvMamba run with 5 finished folds in
    ``<folder>/timing.csv``; the BLCA-size one falls back to the ``paper`` grid, whose SurvMamba
    run had the GPU to itself. The scaling target divides the grid seconds of the one-GPU call by
    those of the two-GPU call (``calls.jsonl``). A target whose folders are missing is "not run".
    """
    import pandas as pd

    rows = []
    for what, folder, limit in TIME_TARGETS:
        found = None
        for name in (folder, "paper") if folder == "survmamba_blca" else (folder,):
            path = root / name / "timing.csv"
            if path.is_file():
                t = pd.read_csv(path)
                hit = t[(t["label"] == "SurvMamba") & (t["folds_done"] == 5)]
                if len(hit):
                    found = (float(hit["wall_seconds"].iloc[0]), f"{name}/timing.csv")
                    break
        rows.append({"target": what, "asked": f"<= {limit:.0f} s",
                     "measured": "not run" if found is None else f"{found[0]:.1f} s",
                     "met": None if found is None else found[0] <= limit,
                     "source": None if found is None else found[1]})
    one, two, least = SCALING
    seconds = []
    for name in (one, two):
        path = root / name / "calls.jsonl"
        calls = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x] if path.is_file() else []
        done = [c for c in calls if c.get("counts", {}).get("done") and not c.get("counts", {}).get("paused")]
        seconds.append(done[-1]["grid_seconds"] if done else None)
    speedup = seconds[0] / seconds[1] if None not in seconds else None
    rows.append({"target": "the same grid on 2 GPUs against 1 (speed-up)", "asked": f">= {least}x",
                 "measured": "not run" if speedup is None else f"{speedup:.2f}x ({seconds[0]:.0f} s / {seconds[1]:.0f} s)",
                 "met": None if speedup is None else speedup >= least,
                 "source": None if speedup is None else f"{one}/calls.jsonl, {two}/calls.jsonl"})
    return pd.DataFrame(rows)


def cohort_folder(root: Path, name: str, scale: str, seed: int) -> Path:
    """Where a mode's synthetic cohort lives: ``<root>/blca_paper`` for seed 0 (the folder name
    is the cohort's name in the grid's ``runs/``), ``<root>/blca_paper_seed1`` for seed 1.

    >>> cohort_folder(Path("c"), "BLCA", "paper", 1).as_posix()
    'c/blca_paper_seed1'
    """
    return root / (f"{name.lower()}_{scale}" + (f"_seed{seed}" if seed else ""))


def _check_fresh(out: Path, checkpoints: Path) -> None:
    """``--fresh`` deletes only what this script wrote: a grid folder (with ``grid.json``) and a
    folder of checkpoints (``*.pt`` files and their temporary ``*.tmp`` copies); anything else
    stops the script, nothing deleted."""
    from survmamba_lite.experiment.grid import GRID

    if out.exists() and any(out.iterdir()) and not (out / GRID).is_file():
        sys.exit(f"fullscale.py: --fresh would delete {out}, which is not a grid folder (no {GRID}); "
                 "choose a new --out (nothing was deleted)")
    other = [p for p in checkpoints.rglob("*") if p.is_file() and not p.name.endswith((".pt", ".tmp"))] \
        if checkpoints.is_dir() else []
    if other:
        sys.exit(f"fullscale.py: --fresh would delete {checkpoints}, which holds files other than checkpoints "
                 f"({other[0]}, ...); choose a new --checkpoint-dir (nothing was deleted)")


def _start_mps(folder: Path) -> bool:
    """Start an MPS control daemon whose pipes live in ``folder`` (this call's workers inherit
    the environment), and stop it when the script ends. No device setting is changed.

    MPS clients number the GPUs as the daemon sees them, from 0, so a ``CUDA_VISIBLE_DEVICES``
    naming other GPUs (``1``, or SLURM's ``2,3``) is renumbered ``0..n-1`` for this process
    and its workers. Returns whether a daemon was started."""
    import atexit
    import subprocess

    exe = shutil.which("nvidia-cuda-mps-control")
    if exe is None:
        print("--mps: nvidia-cuda-mps-control not found; the jobs take turns on the GPU", flush=True)
        return False
    env = {"CUDA_MPS_PIPE_DIRECTORY": str(folder / "pipe"), "CUDA_MPS_LOG_DIRECTORY": str(folder / "log")}
    for v in env.values():
        Path(v).mkdir(parents=True, exist_ok=True)
    os.environ.update(env)
    subprocess.run([exe, "-d"], check=True)
    # otherwise a worker pinned to GPU "1" under a daemon that sees only GPU 1 finds no GPU at all
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [g.strip() for g in visible.split(",") if g.strip()]
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(len(ids)))
        print(f"--mps: GPUs {','.join(ids)} are numbered {os.environ['CUDA_VISIBLE_DEVICES']} for the jobs", flush=True)

    def stop() -> None:
        # `quit` returns only once every client has gone, and this process may be one (it asked
        # CUDA how many GPUs there are): send it without waiting, the daemon ends after us
        ctl = subprocess.Popen([exe], stdin=subprocess.PIPE, start_new_session=True)
        ctl.stdin.write(b"quit\n")
        ctl.stdin.close()
    atexit.register(stop)
    print(f"--mps: MPS daemon started (pipes in {env['CUDA_MPS_PIPE_DIRECTORY']})", flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--mode", choices=sorted(MODES), default="paper")
    p.add_argument("--out", type=Path, required=True, help="grid folder (small files only)")
    p.add_argument("--cohort-root", type=Path, default=ROOT / "runs" / "cohorts",
                   help="where the synthetic cohorts are written (reused when present)")
    p.add_argument("--checkpoint-dir", type=Path, default=ROOT / "runs" / "fullscale_ckpt")
    p.add_argument("--scale", default="paper", choices=["tiny", "course", "paper"],
                   help="synthetic scale (paper; tiny/course only to try the script on a CPU)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--folds", type=int, nargs="+", help="default: all 5")
    p.add_argument("--models", nargs="+", help="replace the mode's models (NAME[:KEY=VALUE,...])")
    p.add_argument("--dim", type=int, help="model width (default: each model's own, the paper's)")
    p.add_argument("--max-cases", type=int, help="a subset of cases (only to try the script)")
    p.add_argument("--jobs-per-gpu", type=int, default=5)
    p.add_argument("--workers", type=int, help="CPU workers when no GPU is visible")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads per job")
    p.add_argument("--serial", action="store_true", help="one job at a time, no Dask")
    p.add_argument("--time-limit", type=float, help="seconds from the start (see the module docstring)")
    p.add_argument("--start-margin", type=float, default=60.0)
    p.add_argument("--fresh", action="store_true", help="delete --out and the checkpoints first (timing runs)")
    p.add_argument("--no-report", action="store_true", help="no `survmamba report` at the end")
    p.add_argument("--pack", type=Path, help="write the grid folder (no checkpoints) into this .tar.gz")
    p.add_argument("--precision", choices=("fp32", "tf32", "bf16"), default="fp32",
                   help="training precision of every job (default fp32, the paper's)")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="replay each training step as one CUDA graph (the same step, fewer launches)")
    p.add_argument("--mps", action="store_true",
                   help="start NVIDIA's multi-process service for this call when nvidia-cuda-mps-control "
                        "exists (the jobs' kernels then run at once instead of in turns); stopped at the end")
    args = p.parse_args(argv)
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES")       # as named here, before MPS renumbers them
    mps = _start_mps(args.checkpoint_dir.parent / "mps") if args.mps else False

    t0 = time.time()
    from survmamba_lite.data.synth import make_synthetic_cohort
    from survmamba_lite.experiment.grid import grid_configs, run_grid
    from survmamba_lite.experiment.jobs import JobOptions

    cohorts, models = MODES[args.mode]
    models = args.models or models
    if args.fresh:
        _check_fresh(args.out, args.checkpoint_dir)
        shutil.rmtree(args.out, ignore_errors=True)
        shutil.rmtree(args.checkpoint_dir, ignore_errors=True)
    cohort_dirs = [cohort_folder(args.cohort_root, name, args.scale, seed) for name, seed in cohorts]
    for (name, seed), cohort_dir in zip(cohorts, cohort_dirs):
        if not (cohort_dir / "manifest.yaml").is_file():
            t = time.time()
            shutil.rmtree(cohort_dir, ignore_errors=True)             # a partial folder of a killed call
            make_synthetic_cohort(name, args.scale, seed=seed, out=cohort_dir)
            print(f"made {cohort_dir} in {time.time() - t:.1f} s", flush=True)
    common = {} if args.dim is None else {"dim": args.dim}
    fields = dict(epochs=args.epochs, folds=tuple(args.folds) if args.folds else None, threads=args.threads,
                  max_cases=args.max_cases, precision=args.precision, cuda_graphs=args.cuda_graphs)
    configs = grid_configs(cohort_dirs, models, args.out, common_options=common, **fields)
    deadline = None if args.time_limit is None else t0 + args.time_limit
    options = JobOptions(checkpoint_root=str(args.checkpoint_dir), keep_checkpoint=False, deadline=deadline,
                         start_margin=args.start_margin)
    spec = {"script": "benchmarks/fullscale.py", "mode": args.mode, "argv": sys.argv[1:], "cohorts": [n for n, _ in cohorts],
            "seeds": [sd for _, sd in cohorts],
            "scale": args.scale, "models": models, "common_options": common,
            **{k: (list(v) if isinstance(v, tuple) else v) for k, v in fields.items()}}
    t_grid = time.time()
    result = run_grid(configs, args.out, options=options, serial=args.serial, jobs_per_gpu=args.jobs_per_gpu,
                      workers=args.workers, spec=spec)
    grid_seconds = time.time() - t_grid
    counts = result.counts
    print(f"\n{args.mode}: {counts or 'nothing to do'} in {grid_seconds:.1f} s ({result.engine})")
    shown = result.timing.drop(columns=["run_dir"])
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    with open(args.out / "calls.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"started": round(t0, 1), "grid_seconds": round(grid_seconds, 1), "counts": counts,
                             "engine": result.engine, "argv": sys.argv[1:], "host": os.uname().nodename,
                             "gpus": gpus, "mps": mps}) + "\n")
    finished = all((Path(c.out_dir) / "summary.json").is_file() for c in configs)
    if finished and not args.no_report and len(configs) > 1:
        from survmamba_lite.experiment.report import make_report

        rep = make_report([args.out], args.out / "report", svg=False, overwrite=True)
        print(f"report: {len(rep.files)} files in {rep.out_dir}")
    if args.pack:
        args.pack.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(args.pack, "w:gz") as tar:
            tar.add(args.out, arcname=args.out.name,
                    filter=lambda ti: None if ti.name.endswith((".pt", ".pt.tmp")) else ti)
        print(f"packed {args.out} into {args.pack} ({args.pack.stat().st_size / 2 ** 20:.1f} MiB)")
    if counts.get("failed"):
        return 1
    return 0 if finished else 3


if __name__ == "__main__":
    sys.exit(main())
