"""``survmamba`` sub-commands of the data layer: validate, synth, kegg, import-tcga, gdc-manifest."""
from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

import pandas as pd

__all__ = ["add_commands"]


def _cmd_validate(args: argparse.Namespace) -> int:
    from survmamba_lite.data.layout import validate_cohort

    report = validate_cohort(args.dir, deep=args.deep, min_genes=args.min_genes)
    print(report.summary())
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from survmamba_lite.data.synth import make_synthetic_cohort

    t0 = time.perf_counter()
    cmd = shlex.join(["survmamba", "synth", "--cohort", args.cohort, "--scale", args.scale,
                      "--seed", str(args.seed), "--out", str(args.out)])
    root = make_synthetic_cohort(args.cohort, args.scale, args.seed, args.out, n_folds=args.folds, command=cmd)
    clin = pd.read_csv(root / "clinical.csv")
    print(f"wrote {root}: synthetic {args.cohort.upper()} ({args.scale}, seed {args.seed}), {len(clin)} cases, "
          f"{1 - clin['event'].mean():.1%} censored, in {time.perf_counter() - t0:.1f} s")
    return 0


def _cmd_kegg(args: argparse.Namespace) -> int:
    from survmamba_lite.data.kegg import (build_genomic_hierarchy, hierarchy_file_stats, hierarchy_from_gmt_brite,
                                          hierarchy_from_kegg_table, write_hierarchy_tsv)
    from survmamba_lite.cli import UserError

    if bool(args.table) == bool(args.gmt):
        raise UserError("give either --table T or --gmt G --brite J")
    if args.table:
        df = hierarchy_from_kegg_table(args.table, args.exclude_categories)
    else:
        if not args.brite:
            raise UserError("--gmt needs --brite (the KEGG br08901 JSON) to find each pathway's class")
        df, match = hierarchy_from_gmt_brite(args.gmt, args.brite, exclude_categories=args.exclude_categories)
        print(match.summary())
    write_hierarchy_tsv(df, args.out)
    s = hierarchy_file_stats(df)
    print(f"wrote {args.out}: {s['n_functions']} functions in {s['n_processes']} processes "
          f"(process = KEGG level-2 class), {s['n_genes']} distinct genes")
    if args.rna:
        rna_path = Path(args.rna)
        if not rna_path.is_file():
            raise FileNotFoundError(f"{rna_path}: no such RNA table")
        header = pd.read_csv(rna_path, nrows=0).columns
        genes = [g[: -len("_rnaseq")] if g.endswith("_rnaseq") else g for g in header[1:]]
        _, stats = build_genomic_hierarchy(df, genes, args.min_genes)
        print(stats.summary())
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from survmamba_lite.cli import UserError
    from survmamba_lite.data.tcga import import_porpoise, import_xena

    common = dict(hierarchy=args.hierarchy, splits=args.splits, cohort=args.cohort, features_dir=args.features,
                  min_genes=args.min_genes, link=not args.copy_features)
    if args.format == "xena":
        if not (args.rna and args.clinical):
            raise UserError("--format xena needs --rna rna_clean.csv and --clinical clinical.csv")
        report = import_xena(args.rna, args.clinical, args.out, duplicate_rna=args.duplicate_rna, **common)
    else:
        if not args.table:
            raise UserError("--format porpoise needs --table tcga_<x>_all_clean.csv.zip")
        report = import_porpoise(args.table, args.out, **common)
    print(report.summary())
    return 0


def _cmd_gdc(args: argparse.Namespace) -> int:
    from survmamba_lite.data.gdc import build_gdc_manifest

    print(build_gdc_manifest(args.clinical, args.out, args.gdc_files).summary())
    return 0


def add_commands(subparsers) -> None:
    """Register the data-layer sub-commands on ``survmamba``'s sub-parser set."""
    p = subparsers.add_parser("validate", help="check a cohort folder and list every problem")
    p.add_argument("dir", help="cohort folder (with manifest.yaml)")
    p.add_argument("--deep", action="store_true", help="read every slide's full feature array")
    p.add_argument("--min-genes", type=int, default=None, help="function filter (default: the manifest's)")
    p.set_defaults(func=_cmd_validate)

    from survmamba_lite.data.synth import COHORTS, SCALES

    p = subparsers.add_parser("synth", help="write a synthetic cohort with a planted hazard")
    p.add_argument("--cohort", required=True, type=str.upper, choices=sorted(COHORTS))
    p.add_argument("--scale", default="tiny", choices=list(SCALES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=_cmd_synth)

    p = subparsers.add_parser("kegg", help="build hierarchy.tsv (function -> process) from KEGG files")
    p.add_argument("--table", help="KEGG table: pathway_id, pathway_name, level1_category, level2_class, genes")
    p.add_argument("--gmt", help="GMT (or Enrichr) gene-set library named by KEGG pathway")
    p.add_argument("--brite", help="KEGG BRITE br08901 JSON (with --gmt)")
    p.add_argument("--rna", help="RNA table whose gene columns the hierarchy is checked against")
    p.add_argument("--min-genes", type=int, default=1, help="keep functions with at least this many measured genes")
    p.add_argument("--exclude-categories", nargs="*", default=[], metavar="CATEGORY",
                   help='KEGG level-1 categories to leave out, e.g. "Human Diseases"')
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=_cmd_kegg)

    p = subparsers.add_parser("import-tcga", help="import Xena (SurvPath) or PORPOISE tables into a cohort folder")
    p.add_argument("--format", required=True, choices=["xena", "porpoise"])
    p.add_argument("--rna", help="xena: rna_clean.csv")
    p.add_argument("--clinical", help="xena: clinical.csv")
    p.add_argument("--table", help="porpoise: tcga_<x>_all_clean.csv[.zip]")
    p.add_argument("--splits", help="folder of splits_<k>.csv (columns train, val); default: make 5 folds")
    p.add_argument("--hierarchy", required=True, help="hierarchy.tsv (from `survmamba kegg`)")
    p.add_argument("--features", help="folder of <slide_id>.h5 feature files; without it the cohort is RNA-only")
    p.add_argument("--copy-features", action="store_true", help="copy feature files instead of symlinking")
    p.add_argument("--cohort", help="cohort name (default: from the file or folder name)")
    p.add_argument("--min-genes", type=int, default=1)
    p.add_argument("--duplicate-rna", default="first", choices=["first", "mean", "drop", "error"],
                   help="xena: what to do with a case that has several expression rows")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=_cmd_import)

    p = subparsers.add_parser("gdc-manifest", help="list a clinical table's slides for the GDC Data Transfer Tool")
    p.add_argument("--clinical", required=True, help="clinical table with case_id, slide_id")
    p.add_argument("--gdc-files", help="GDC API response (manifest or files TSV) to turn the list into a "
                                       "gdc-client manifest")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=_cmd_gdc)
