"""``survmamba explain``: registered on the command line by :mod:`survmamba_lite.cli`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_commands"]


def _cmd_explain(args: argparse.Namespace) -> int:
    import torch

    from survmamba_lite.interpret.explain import check_slide, explain_case, load_explainer, write_explanation
    from survmamba_lite.utils.outputs import EXPLAIN, check_out_dir

    if args.ig_steps < 0:
        raise ValueError(f"--ig-steps {args.ig_steps}: must be >= 0 (0 gives gradient x input)")
    if args.slide is not None and not args.slide.is_file():
        raise FileNotFoundError(f"{args.slide}: no such slide file (--slide); give the slide of the case, "
                                "named <slide_id>.svs (or .tif, .ndpi, ...)")
    check_out_dir(args.out, EXPLAIN, overwrite=True)                # before any computation
    if args.threads:
        torch.set_num_threads(args.threads)
    ex = load_explainer(args.run, args.fold, case_id=args.case, cohort_dir=args.cohort_dir)
    for note in ex.notes:
        print(f"survmamba explain: {note}", file=sys.stderr)
    if args.slide is not None:
        check_slide(ex, args.case, args.slide)                    # before any computation
    exp = explain_case(ex, args.case, ig_steps=args.ig_steps)
    files = write_explanation(exp, args.out, slide=args.slide)
    how = ("the case was in its training set" if exp.summary["case_in_training"] else
           "out of fold: the case was in its validation set")
    print(f"{args.case}: fold {ex.fold} of {ex.label} ({how}), risk {exp.summary['risk']:.4f}; wrote "
          + ", ".join(p.name for p in files) + f" to {args.out}")
    if "run_patch_subset" in exp.summary:
        print(f"survmamba explain: note: {exp.summary['run_patch_subset']['note']}", file=sys.stderr)
    for name, frame in (("regions", exp.regions), ("processes", exp.processes)):
        if frame is not None:
            top = frame.sort_values("rank_hidden_attention").head(3)
            label = "region" if name == "regions" else "process"
            print(f"top {name} by hidden attention: " + "; ".join(
                f"{row[label]} ({row['hidden_attention']:.3f})" for _, row in top.iterrows()))
    return 0


def add_commands(subparsers) -> None:
    """Register ``explain``."""
    p = subparsers.add_parser(
        "explain", help="patch/region and function/process importance of one case of a SurvMamba run",
        description="Score one case with the hidden-attention rollout through HIM and IFM and with integrated "
                    "gradients, using the model of one fold of a `survmamba cv` run. Writes patches.csv, "
                    "regions.csv (level-0 slide coordinates), functions.csv, processes.csv, explanation.h5, "
                    "summary.json and, with --slide, heatmap.png and heatmap_ig.png over the slide thumbnail.")
    p.add_argument("--run", required=True, type=Path, help="run directory of `survmamba cv` (with checkpoints)")
    p.add_argument("--case", required=True, help="case id, as in the cohort's clinical.csv")
    p.add_argument("--fold", type=int, help="the fold whose model explains (default: the fold that validated the "
                   "case, whose model never saw it; summary.json records fold and case_in_training)")
    p.add_argument("--cohort-dir", type=Path, help="where the run's cohort is now, if it moved (default: the folder "
                   "recorded in the run); its files must match the run's fingerprints")
    p.add_argument("--slide", type=Path, help="the case's slide file (<slide_id>.svs, ...) for a heatmap")
    p.add_argument("--ig-steps", type=int, default=32, help="integrated-gradients steps (0: gradient x input)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--out", required=True, type=Path, help="output folder: new, empty or an earlier output of explain (whose files are replaced)")
    p.set_defaults(func=_cmd_explain)
