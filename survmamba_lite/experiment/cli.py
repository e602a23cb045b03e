"""``survmamba`` sub-commands of the experiment layer: models, cv, report.

::

    survmamba models
    survmamba cv --cohort-dir DIR --model survmamba [--variant F] [--unidirectional] [--epochs N]
                 [--folds 0 1] [--dim D] [--seed S] [--device auto] [--max-patches N] --out RUN [--overwrite]
    survmamba report RUN [RUN ...] --out DIR [--complexity] [--n-boot B] [--n-perm B] [--seed S]
    survmamba grid --cohort-dirs DIR [DIR ...] --models NAME[:KEY=VALUE,...] [...] [--folds K ...] [--epochs N]
                   [--set KEY=VALUE] [--max-cases N] [--jobs-per-gpu N] [--scheduler ADDRESS] --out DIR
"""
from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

from survmamba_lite.errors import UserError
from survmamba_lite.experiment.config import OPTIMIZERS, ConfigError, ExperimentConfig
from survmamba_lite.experiment.options import coerce_options, split_option
from survmamba_lite.utils.precision import PRECISIONS

__all__ = ["add_commands"]


def _cmd_models(args: argparse.Namespace) -> int:
    from survmamba_lite.registry import list_models

    specs = list_models()
    w_name = max(len(s.name) for s in specs)
    w_row = max(len(s.table1_row or "-") for s in specs)
    print(f"{'name':<{w_name}}  {'modalities':<10}  {'Table 1 row':<{w_row}}  description")
    for s in specs:
        print(f"{s.name:<{w_name}}  {'+'.join(s.modalities):<10}  {s.table1_row or '-':<{w_row}}  {s.description}")
    return 0


def _training_fields(args: argparse.Namespace) -> dict:
    """The config's training settings from the flags (named as its fields), checked by the config
    itself; only ``--dim``, a model option, is checked here."""
    if args.dim is not None and args.dim < 1:
        raise UserError(f"--dim {args.dim}: must be an integer >= 1")
    return ExperimentConfig.fields_in(args)


@contextlib.contextmanager
def _flags_named():
    """A number the config refuses is reported under its flag (``--n-folds 1: ...``)."""
    try:
        yield
    except ConfigError as err:
        raise UserError(err.as_flag()) from None


def _config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    from survmamba_lite.registry import accepted_options, get_model_spec, list_models

    fields = _training_fields(args)
    spec = get_model_spec(args.model)                       # unknown model: the registry's message
    allowed = accepted_options(spec)
    mamba_models = ", ".join(s.name for s in list_models()
                             if (accepted_options(s) or {}).get("variant") is not None)
    for flag, key, given in (("--variant", "variant", args.variant is not None),
                             ("--unidirectional", "bidirectional", args.unidirectional)):
        if given and allowed is not None and key not in allowed:
            raise UserError(f"{flag} applies to the SurvMamba models ({mamba_models}); model {args.model!r} has "
                            f"no {key!r} option. Its options: {', '.join(allowed) or 'none'}")
    options = coerce_options(args.model, args.set)
    for flag, key, value in (("--variant", "variant", args.variant),
                             ("--unidirectional", "bidirectional", False if args.unidirectional else None),
                             ("--dim", "dim", args.dim)):
        if value is None:
            continue
        if key in options and options[key] != value:
            raise UserError(f"{flag} and --set {key}={options[key]} disagree; give one of them")
        options[key] = value
    with _flags_named():
        return ExperimentConfig(model=args.model, cohort_dir=str(args.cohort_dir), out_dir=str(args.out),
                                model_options=options, **fields)


def _cmd_cv(args: argparse.Namespace) -> int:
    from survmamba_lite.experiment.cv import run_cv

    config = _config_from_args(args)
    t0 = time.perf_counter()
    result = run_cv(config, overwrite=args.overwrite, progress=not args.quiet)
    c = result.summary["c_index"]
    per_fold = ", ".join("n/a" if v is None else f"{v:.4f}" for v in c["values"])
    mean = "n/a" if c["mean"] is None else f"{c['mean']:.4f}" + ("" if c["std"] is None else f" ± {c['std']:.4f}")
    print(f"{result.summary['label']} on {result.summary['cohort_name']}: c-index {mean} (folds: {per_fold}); "
          f"wall time {time.perf_counter() - t0:.1f} s; results in {result.out_dir}")
    return 0


def _cmd_grid(args: argparse.Namespace) -> int:
    from survmamba_lite.experiment.grid import grid_configs, run_grid
    from survmamba_lite.experiment.jobs import JobOptions

    fields = _training_fields(args)
    common: dict[str, object] = {}
    for key, value in args.set or []:
        if key in common:
            raise UserError(f"--set {key}=...: given twice; give each option once")
        common[key] = value                       # text: typed per model by grid_configs
    if args.dim is not None:
        if "dim" in common:
            raise UserError("--dim and --set dim=... both given; give one of them")
        common["dim"] = args.dim
    if args.jobs_per_gpu < 1 or (args.workers is not None and args.workers < 1):
        raise UserError("--jobs-per-gpu and --workers must be >= 1")
    with _flags_named():
        configs = grid_configs(args.cohort_dirs, args.models, args.out, common_options=common, **fields)
    t0 = time.time()
    deadline = None if args.time_limit is None else t0 + args.time_limit
    options = JobOptions(features=args.features, checkpoint_root=None if args.checkpoint_dir is None
                         else str(args.checkpoint_dir), keep_checkpoint=args.keep_checkpoints, deadline=deadline,
                         start_margin=args.start_margin)
    spec = {"cohort_dirs": [str(c) for c in args.cohort_dirs], "models": list(args.models), "common_options": common,
            **{k: (list(v) if isinstance(v, tuple) else v) for k, v in fields.items()}}
    result = run_grid(configs, args.out, options=options, scheduler=args.scheduler, serial=args.serial,
                      jobs_per_gpu=args.jobs_per_gpu, workers=args.workers, overwrite=args.overwrite,
                      progress=not args.quiet, spec=spec, exclusive=True)
    counts = ", ".join(f"{n} {k}" for k, n in sorted(result.counts.items())) or "nothing to do"
    print(f"grid ({result.engine}): {counts}; wall time {time.time() - t0:.1f} s; timing in "
          f"{result.out_dir / 'timing.md'}")
    failed = [r for r in result.results if r.status == "failed"]
    if failed:
        first = failed[0]
        print(f"survmamba grid: {len(failed)} job(s) failed, the first {first.job.name}: "
              f"{first.extra.get('message', 'see its log')}; tracebacks in {result.out_dir / 'logs'}; fix the cause "
              "and rerun the same command (finished jobs are kept)")
        return 1
    return 3 if result.counts.get("paused") else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from survmamba_lite.experiment.report import make_report
    from survmamba_lite.experiment.table2 import ComplexitySizes
    from survmamba_lite.utils.device import torch_threads

    for flag, value, low in (("--n-boot", args.n_boot, 1), ("--n-perm", args.n_perm, 0), ("--patches", args.patches, 1),
                             ("--regions", args.regions, 1), ("--wsi-dim", args.wsi_dim, 1),
                             ("--repeats", args.repeats, 1), ("--threads", args.threads, 1), ("--seed", args.seed, 0)):
        if value is not None and value < low:
            raise UserError(f"{flag} {value}: must be an integer >= {low}")
    if args.regions > args.patches:
        raise UserError(f"--regions {args.regions} is more than --patches {args.patches}; every region needs a patch")
    sizes = ComplexitySizes(patches=args.patches, regions=args.regions, wsi_dim=args.wsi_dim,
                            genes_scale=args.genes_scale, repeats=args.repeats)
    with torch_threads(args.threads):
        rep = make_report(args.runs, args.out, complexity=args.complexity, sizes=sizes, device=args.device,
                          svg=args.svg, n_boot=args.n_boot, n_perm=args.n_perm, seed=args.seed,
                          overwrite=args.overwrite)
    print(rep.markdown)
    print(f"wrote {len(rep.files)} files to {rep.out_dir}")
    return 0


def _add_training_options(p: argparse.ArgumentParser) -> None:
    """The training options that `cv` and `grid` share (fields of ExperimentConfig)."""
    p.add_argument("--epochs", type=int, default=20, help="training epochs per fold (the last epoch is evaluated)")
    p.add_argument("--folds", type=int, nargs="+", metavar="K", help="fold indices to run (default: all)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="radam",
                   help="radam (the paper's; PyTorch's RAdam, weight decay as an L2 term in the gradient), "
                        "radam-decoupled (weight decay applied to the weights, as SurvPath's RAdam), adam or adamw")
    p.add_argument("--lr", type=float, default=2e-4, help="learning rate")
    p.add_argument("--weight-decay", type=float, default=5e-3, help="weight decay (see --optimizer)")
    p.add_argument("--batch-size", type=int, default=1, help="patients per batch")
    p.add_argument("--grad-accum", type=int, default=1, help="batches per optimiser step")
    p.add_argument("--n-bins", type=int, default=4, help="time bins (quantiles of the training deaths)")
    p.add_argument("--alpha", type=float, default=0.0, help="extra weight of uncensored patients in the NLL")
    p.add_argument("--seed", type=int, default=0, help="master seed of folds, epochs and patch subsets")


def add_commands(subparsers) -> None:
    """Register ``models``, ``cv`` and ``report`` on ``survmamba``'s sub-parser set."""
    p = subparsers.add_parser("models", help="list the registered models (name, modalities, Table 1 row)")
    p.set_defaults(func=_cmd_models)

    from survmamba_lite.model.config import VARIANTS

    p = subparsers.add_parser("cv", help="k-fold cross-validation of one model on one cohort (resumable)",
                              description="Train and evaluate a model on every fold of a cohort. Rerunning the "
                                          "same command resumes a killed run; a run whose configuration or "
                                          "inputs (clinical, splits, RNA, feature files) changed is refused.")
    p.add_argument("--cohort-dir", required=True, type=Path, help="cohort folder (manifest.yaml, clinical.csv, ...)")
    p.add_argument("--model", required=True, help="registry name (see `survmamba models`)")
    p.add_argument("--variant", choices=sorted(VARIANTS),
                   help="SurvMamba ablation model of Table 3 (F = SurvMamba; default: the model's)")
    p.add_argument("--unidirectional", action="store_true", help="SurvMamba with forward-only Mamba (Fig. 3)")
    p.add_argument("--dim", type=int, help="model width D (default: the model's, 512 for most)")
    p.add_argument("--set", type=split_option, action="append", metavar="KEY=VALUE",
                   help="any other model option, typed as the option's default (bool: true/false/1/0), e.g. "
                        "--set d_state=8 (repeatable)")
    _add_training_options(p)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--max-patches", type=int, help="at most N patches per patient (quick CPU runs; default: all)")
    p.add_argument("--max-cases", type=int, help="a seeded subset of N cases (quick CPU runs; default: all)")
    p.add_argument("--n-folds", type=int, default=5, help="folds to make when the cohort has no splits/")
    p.add_argument("--rna-log1p", action="store_true", help="log1p before the per-gene z-score (raw counts/TPM)")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader workers reading slide features")
    p.add_argument("--threads", type=int,
                   help="torch CPU threads (default: torch's; 1 is often fastest on a shared machine)")
    p.add_argument("--precision", default="fp32", choices=list(PRECISIONS),
                   help="fp32; tf32 (TF32 tensor-core matmuls on CUDA); bf16 (bfloat16 autocast, float32 "
                        "parameters, SSM state and loss)")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="replay each training step from a CUDA graph (CUDA only, --grad-accum 1); several "
                        "times faster for launch-bound models such as SurvMamba at batch size 1")
    p.add_argument("--out", required=True, type=Path, help="run directory (new, empty, or a run to resume)")
    p.add_argument("--overwrite", action="store_true",
                   help="delete the earlier run in --out first (only the files survmamba cv wrote; refused when "
                        "the folder holds anything else)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_cv)

    p = subparsers.add_parser(
        "grid", help="every fold of several models on several cohorts, concurrently (Dask) and resumably",
        description="Train and evaluate every (cohort, model, fold) job, several at once per GPU through Dask "
                    "(or one by one without it). Rerunning the same command resumes. The grid folder holds one "
                    "run directory per cohort and model (read by `survmamba report OUT`), jobs.jsonl and "
                    "timing.md. See the module docstring of survmamba_lite.experiment.grid for SLURM/PBS.",
        epilog="Exit status: 0 all done, 1 a job failed, 3 jobs paused by --time-limit (rerun to resume).")
    p.add_argument("--cohort-dirs", required=True, nargs="+", type=Path, metavar="DIR", help="cohort folders")
    p.add_argument("--models", required=True, nargs="+", metavar="NAME[:KEY=VALUE,...]",
                   help="registry names, each with its own options, e.g. survmamba:variant=A "
                        "survmamba:bidirectional=false snn")
    p.add_argument("--dim", type=int, help="model width D of every model (default: each model's, 512 for most)")
    p.add_argument("--set", type=split_option, action="append", metavar="KEY=VALUE",
                   help="a model option for every model that accepts it (repeatable)")
    _add_training_options(p)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (workers see only their GPU)")
    p.add_argument("--max-patches", type=int, help="at most N patches per patient (quick CPU runs)")
    p.add_argument("--max-cases", type=int, help="a seeded subset of N cases (quick CPU runs)")
    p.add_argument("--n-folds", type=int, default=5, help="folds to make when a cohort has no splits/")
    p.add_argument("--rna-log1p", action="store_true", help="log1p before the per-gene z-score (raw counts/TPM)")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader workers (with --features disk)")
    p.add_argument("--threads", type=int, help="torch CPU threads per job (1-2 with several jobs per GPU)")
    p.add_argument("--precision", default="fp32", choices=list(PRECISIONS),
                   help="arithmetic of the forward pass, as in `survmamba cv`")
    p.add_argument("--cuda-graphs", action="store_true", help="training steps replayed from CUDA graphs, as in "
                   "`survmamba cv`")
    p.add_argument("--jobs-per-gpu", type=int, default=4, help="concurrent jobs (worker processes) per GPU")
    p.add_argument("--workers", type=int, help="concurrent jobs without a GPU (default 1)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--serial", action="store_true", help="no Dask: the jobs one after the other in this process")
    p.add_argument("--features", default="auto", choices=["auto", "gpu", "host", "disk"],
                   help="patch features in memory (auto: on the GPU when they fit) or read per step (disk)")
    p.add_argument("--checkpoint-dir", type=Path, help="keep epoch checkpoints here instead of in the run folders")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep finished jobs' checkpoints")
    p.add_argument("--time-limit", type=float, metavar="SECONDS",
                   help="start no epoch predicted to end later than this after the start; exit 3 if jobs paused")
    p.add_argument("--start-margin", type=float, default=0.0, metavar="SECONDS",
                   help="with --time-limit: start no job in the last SECONDS (a fresh job's first epoch always runs)")
    p.add_argument("--out", required=True, type=Path, help="grid folder")
    p.add_argument("--overwrite", action="store_true", help="delete the runs' existing results first")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_grid)

    p = subparsers.add_parser("report", help="tables and figures (Tables 1-3, Figs. 3-4) from run directories",
                              description="Tables and figures from finished run directories of `survmamba cv`. "
                                          "Each run's files are checked against its summary.json first.")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run directories of `survmamba cv`, or grid folders of `survmamba grid`")
    p.add_argument("--out", required=True, type=Path, help="report folder (new or empty)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier report in --out (only the files survmamba report wrote)")
    p.add_argument("--complexity", action="store_true", help="also measure Table 2 (params, FLOPs, step time)")
    p.add_argument("--patches", type=int, default=4096, help="complexity input: patch tokens")
    p.add_argument("--regions", type=int, default=16, help="complexity input: regions")
    p.add_argument("--wsi-dim", type=int, default=768, help="complexity input: patch-feature width F")
    p.add_argument("--genes-scale", default="paper", choices=["tiny", "course", "paper"],
                   help="complexity input: synthetic KEGG-shaped hierarchy (paper: 1577 genes)")
    p.add_argument("--repeats", type=int, default=3, help="complexity: timed steps")
    p.add_argument("--device", default="auto", help="complexity device")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--svg", action="store_true", help="also write SVG figures")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates")
    p.add_argument("--n-perm", type=int, default=1000,
                   help="permutations of the random-risk reference (risks shuffled within folds); 0: leave it out")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and the permutations")
    p.set_defaults(func=_cmd_report)
