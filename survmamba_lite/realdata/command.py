"""The command line of the real-data check: ``python -m survmamba_lite.realdata`` and
``survmamba realdata`` (the same parser)."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Sequence

from survmamba_lite.errors import UserError
from survmamba_lite.realdata.catalogue import (COHORTS, DEFAULT_COHORTS, DEFAULT_MODELS, MODELS, PAPER_MODELS,
                                               PAPER_VARIANTS, log, with_width)
from survmamba_lite.realdata.cohorts import import_cohort, write_cohort_summaries
from survmamba_lite.realdata.runs import run_genomic_check
from survmamba_lite.realdata.training import training_template
from survmamba_lite.realdata.slides import run_slide_check
from survmamba_lite.realdata.tables import genomic_table_markdown

__all__ = ["build_parser", "add_arguments", "add_commands", "main", "run"]


DESCRIPTION = ("Real-data check: Table 1's genomic rows on public TCGA tables with their published splits, "
               "and the real slides through tiling and feature extraction.")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m survmamba_lite.realdata`` (``survmamba realdata`` has the same options)."""
    p = argparse.ArgumentParser(prog="python -m survmamba_lite.realdata", description=DESCRIPTION)
    add_arguments(p)
    return p


def add_commands(subparsers) -> None:
    """``survmamba realdata``: the same options as ``python -m survmamba_lite.realdata``."""
    p = subparsers.add_parser("realdata", help="Table 1's genomic rows on public TCGA tables, and real slides",
                              description=DESCRIPTION)
    add_arguments(p)
    p.set_defaults(func=lambda args: run(args, shlex.join(["survmamba"] + sys.argv[1:])))


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of the real-data check."""
    p.add_argument("--data-root", required=True, type=Path, help="folder with tcga/, kegg/ and wsi/")
    p.add_argument("--work", required=True, type=Path, help="scratch folder (imports, run directories, features)")
    p.add_argument("--out", required=True, type=Path, help="result folder (small CSV/JSON/PNG files)")
    p.add_argument("--cohorts", nargs="+", default=list(DEFAULT_COHORTS), choices=list(COHORTS),
                   help=f"cohorts, run in the order given (default: {' '.join(DEFAULT_COHORTS)})")
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), choices=list(MODELS) + list(PAPER_VARIANTS),
                   help="models (default: all); with --paper-dims also the variant rows "
                        f"({', '.join(PAPER_VARIANTS)})")
    p.add_argument("--epochs", type=int, default=3, help="training epochs of the deep models (default 3)")
    p.add_argument("--paper-dims", action="store_true",
                   help="the paper's widths (512-d tokens, state size 16; SNN as its original, 4 x 256) instead of "
                        "the CPU settings; give a --out of its own (results/real_data/paper_width)")
    p.add_argument("--folds", nargs="+", type=int, default=None, help="fold indices (default: all five)")
    p.add_argument("--dim", type=int, default=None,
                   help="override every deep model's width: a smoke test of the code path, not a result")
    p.add_argument("--inner-val", action="store_true",
                   help="also train each deep model on an inner split of every training fold to diagnose a "
                        "constant-risk collapse (training folds only; writes inner/ and inner_validation.md)")
    p.add_argument("--seed", type=int, default=0, help="seed of the training runs and of the bootstrap intervals")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per run (default 1)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates of the intervals")
    p.add_argument("--no-slides", action="store_true", help="skip the slide check")
    p.add_argument("--no-genomic", action="store_true", help="skip the genomic table (slides only)")
    p.add_argument("--progress", action="store_true", help="show the trainer's progress bars")
    p.add_argument("--precision", choices=("fp32", "tf32", "bf16"), default="fp32",
                   help="the deep models' training precision (default fp32)")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="replay each training step as one CUDA graph (CUDA only; same step, less launch time)")
    p.add_argument("--fold-workers", type=int, default=1,
                   help="folds of a deep model trained at once, one process each (default 1; same results)")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m survmamba_lite.realdata``; returns the exit code."""
    args = build_parser().parse_args(argv)
    command = shlex.join(["python", "-m", "survmamba_lite.realdata"] + list(sys.argv[1:] if argv is None else argv))
    try:
        return run(args, command)
    except UserError as err:
        print(f"realdata: error: {err}", file=sys.stderr)
        return 2


def _template(args: argparse.Namespace):
    """The deep models' training settings, built once from the flags (``--epochs``, ``--folds``,
    ``--seed``, ``--threads``, ``--device``, ``--precision``, ``--cuda-graphs``) and checked by the config."""
    from survmamba_lite.experiment.config import ConfigError, ExperimentConfig

    try:
        return training_template(**ExperimentConfig.fields_in(args))
    except ConfigError as err:
        raise UserError(err.as_flag()) from None


def run(args: argparse.Namespace, command: str) -> int:
    """Run the check the parsed ``args`` ask for; ``command`` is logged in ``commands.jsonl``."""
    if not args.data_root.is_dir():
        raise UserError(f"{args.data_root}: no such folder; give --data-root the folder holding tcga/, kegg/ and wsi/")
    if args.fold_workers < 1:
        raise UserError(f"--fold-workers {args.fold_workers}: must be an integer >= 1")
    variants = [m for m in args.models if m in PAPER_VARIANTS]
    if variants and not args.paper_dims:
        raise UserError(f"--models {' '.join(variants)}: variant rows are defined at the paper's widths; add --paper-dims")
    template = _template(args)
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    if not args.no_slides:
        t0 = time.perf_counter()
        run_slide_check(args.data_root, args.work, args.out, device=args.device)
        timings["slides_s"] = round(time.perf_counter() - t0, 1)
    if not args.no_genomic:
        t0 = time.perf_counter()
        dirs = {k: import_cohort(COHORTS[k], args.data_root, args.work / "cohorts") for k in args.cohorts}
        write_cohort_summaries(dirs, args.out)
        timings["import_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        model_table = {**PAPER_MODELS, **PAPER_VARIANTS} if args.paper_dims else MODELS
        if args.dim is not None:
            model_table = with_width(model_table, args.dim)
        table = run_genomic_check(dirs, args.out, template, work=args.work, models=args.models,
                                  model_table=model_table, n_boot=args.n_boot,
                                  setting="smoke" if args.dim is not None else "paper" if args.paper_dims else "cpu",
                                  inner_val=args.inner_val, progress=args.progress, fold_workers=args.fold_workers)
        timings["genomic_s"] = round(time.perf_counter() - t0, 1)
        log(genomic_table_markdown(table))
    timings["total_s"] = round(time.perf_counter() - start, 1)
    log_path = args.out / "commands.jsonl"
    with log_path.open("a", encoding="utf-8") as f:
        f.write(json.dumps({"command": command, "finished": time.strftime("%Y-%m-%d %H:%M:%S"), **timings}) + "\n")
    log(f"done in {timings['total_s']:.0f} s ({timings}); command logged in {log_path}")
    return 0
