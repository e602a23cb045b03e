"""``survmamba`` sub-commands of the data layer: validate, synth, kegg, import-tcga, gdc-manifest,
import-features, export-features, fetch-tcga.

Every command checks all its arguments and its ``--out`` before it writes anything, and
writes its files atomically (a cohort folder is written whole, then renamed into place).
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import pandas as pd

from survmamba_lite.errors import UserError

__all__ = ["add_commands"]


def _need_file(path: str | Path | None, flag: str, what: str) -> Path | None:
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{flag} {p}: no such file ({what})" + ("; it is a folder" if p.is_dir() else ""))
    return p


def _need_dir(path: str | Path | None, flag: str, what: str) -> Path | None:
    if path is None:
        return None
    p = Path(path)
    if not p.is_dir():
        raise UserError(f"{flag} {p}: no such folder ({what})")
    return p


def _positive(value: int, flag: str) -> None:
    if value is not None and value < 1:
        raise UserError(f"{flag} {value}: must be an integer >= 1")


def _cmd_validate(args: argparse.Namespace) -> int:
    from survmamba_lite.data.layout import validate_cohort

    if args.dir is not None and args.cohort_dir is not None and Path(args.dir) != Path(args.cohort_dir):
        raise UserError(f"two cohort folders given ({args.dir} and --cohort-dir {args.cohort_dir}); give one")
    root = args.cohort_dir if args.cohort_dir is not None else args.dir
    if root is None:
        raise UserError("give the cohort folder: survmamba validate --cohort-dir DIR (or survmamba validate DIR)")
    _positive(args.min_genes, "--min-genes")
    report = validate_cohort(root, deep=args.deep, min_genes=args.min_genes)
    print(report.summary())
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from survmamba_lite.data.synth import make_synthetic_cohort

    if args.folds_deprecated is not None:
        print("survmamba synth: note: --folds is deprecated here, use --n-folds (the number of folds; "
              "`cv --folds` selects fold indices)", file=sys.stderr)
        if args.n_folds_given is not None and args.n_folds_given != args.folds_deprecated:
            raise UserError(f"--folds {args.folds_deprecated} and --n-folds {args.n_folds_given} disagree; give "
                            "--n-folds only")
    n_folds = next((v for v in (args.n_folds_given, args.folds_deprecated) if v is not None), 5)
    t0 = time.perf_counter()
    cmd = shlex.join(["survmamba", "synth", "--cohort", args.cohort, "--scale", args.scale, "--seed", str(args.seed)]
                     + (["--n-folds", str(n_folds)] if n_folds != 5 else []) + ["--out", str(args.out)])
    root = make_synthetic_cohort(args.cohort, args.scale, args.seed, args.out, n_folds=n_folds, command=cmd)
    clin = pd.read_csv(root / "clinical.csv")
    print(f"wrote {root}: synthetic {args.cohort.upper()} ({args.scale}, seed {args.seed}), {len(clin)} cases, "
          f"{1 - clin['event'].mean():.1%} censored, {n_folds} folds, in {time.perf_counter() - t0:.1f} s")
    return 0


def _cmd_kegg(args: argparse.Namespace) -> int:
    from survmamba_lite.data.kegg import (HIERARCHY_COLUMNS, build_genomic_hierarchy, hierarchy_file_stats,
                                          hierarchy_from_gmt_brite, hierarchy_from_kegg_table, write_hierarchy_tsv)
    from survmamba_lite.utils.outputs import check_out_file

    # every argument first: nothing is written before all of them are good
    if bool(args.table) == bool(args.gmt):
        raise UserError("give either --table T or --gmt G --brite J")
    if args.gmt and not args.brite:
        raise UserError("--gmt needs --brite (the KEGG br08901 JSON) to find each pathway's class")
    _need_file(args.table, "--table", "KEGG pathway table")
    _need_file(args.gmt, "--gmt", "GMT gene-set library")
    _need_file(args.brite, "--brite", "KEGG BRITE br08901 JSON")
    rna_path = _need_file(args.rna, "--rna", "RNA table whose gene columns the hierarchy is checked against")
    _positive(args.min_genes, "--min-genes")
    check_out_file(args.out, overwrite=args.overwrite, header=HIERARCHY_COLUMNS)
    if args.table:
        df = hierarchy_from_kegg_table(args.table, args.exclude_categories)
    else:
        df, match = hierarchy_from_gmt_brite(args.gmt, args.brite, exclude_categories=args.exclude_categories)
        print(match.summary())
    stats = None
    if rna_path is not None:
        try:
            header = pd.read_csv(rna_path, nrows=0).columns
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            raise UserError(f"--rna {rna_path}: not a readable CSV ({err}); give the RNA table (case id, then one "
                            "column per gene)") from None
        genes = [g[: -len("_rnaseq")] if g.endswith("_rnaseq") else g for g in header[1:]]
        try:
            _, stats = build_genomic_hierarchy(df, genes, args.min_genes)
        except ValueError as err:
            raise UserError(f"--rna {rna_path}: {err}; nothing was written") from None
    write_hierarchy_tsv(df, args.out)
    s = hierarchy_file_stats(df)
    print(f"wrote {args.out}: {s['n_functions']} functions in {s['n_processes']} processes "
          f"(process = KEGG level-2 class), {s['n_genes']} distinct genes")
    if stats is not None:
        print(stats.summary())
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from survmamba_lite.data.tcga import import_porpoise, import_xena
    from survmamba_lite.utils.outputs import COHORT, check_out_dir

    if args.format == "xena":
        if not (args.rna and args.clinical):
            raise UserError("--format xena needs --rna rna_clean.csv and --clinical clinical.csv")
        if args.table:
            raise UserError("--table is for --format porpoise; --format xena reads --rna and --clinical")
        _need_file(args.rna, "--rna", "Xena rna_clean.csv")
        _need_file(args.clinical, "--clinical", "Xena clinical.csv")
    else:
        if not args.table:
            raise UserError("--format porpoise needs --table tcga_<x>_all_clean.csv.zip")
        if args.rna or args.clinical:
            raise UserError("--rna and --clinical are for --format xena; --format porpoise reads one --table")
        _need_file(args.table, "--table", "PORPOISE tcga_<x>_all_clean.csv[.zip]")
    _need_file(args.hierarchy, "--hierarchy", "hierarchy.tsv from `survmamba kegg`")
    _need_dir(args.splits, "--splits", "folder of splits_<k>.csv")
    _need_dir(args.features, "--features", "folder of <slide_id>.h5 feature files")
    _positive(args.min_genes, "--min-genes")
    check_out_dir(args.out, COHORT)
    common = dict(hierarchy=args.hierarchy, splits=args.splits, cohort=args.cohort, features_dir=args.features,
                  min_genes=args.min_genes, link=not args.copy_features)
    if args.format == "xena":
        report = import_xena(args.rna, args.clinical, args.out, duplicate_rna=args.duplicate_rna, **common)
    else:
        report = import_porpoise(args.table, args.out, **common)
    print(report.summary())
    return 0


def _cmd_gdc(args: argparse.Namespace) -> int:
    from survmamba_lite.data.gdc import build_gdc_manifest
    from survmamba_lite.utils.outputs import check_out_file

    _need_file(args.clinical, "--clinical", "clinical table with case_id, slide_id")
    _need_file(args.gdc_files, "--gdc-files", "GDC API response")
    out = Path(args.out)
    if args.gdc_files:
        check_out_file(out, overwrite=args.overwrite, header=("id", "filename", "md5"))
    else:
        check_out_file(out, overwrite=args.overwrite, header=("filename", "case_id", "slide_id"))
        query = out.with_name(out.name + ".query.json")
        if query.exists() and not args.overwrite:
            raise UserError(f"--out {out}: its GDC request {query} exists; add --overwrite to replace both or "
                            "choose another --out")
    print(build_gdc_manifest(args.clinical, args.out, args.gdc_files).summary())
    return 0


def _cmd_import_features(args: argparse.Namespace) -> int:
    from survmamba_lite.data.features_import import import_features, read_magnification_table

    mag, pmag = args.magnification, None
    if mag is not None:
        try:
            mag = float(mag)
        except ValueError:
            mag, pmag = read_magnification_table(_need_file(mag, "--magnification", "a number, or a CSV of "
                                                                                   "slide_id, magnification"))
    report = import_features(args.src, args.cohort_dir, fmt=args.format, patches_dir=args.patches_dir,
                             patch_size_level0=args.patch_size_level0, magnification=mag, patch_magnification=pmag,
                             slides=args.slides,
                             strict=args.strict, overwrite=args.overwrite, encoder=args.encoder,
                             region_size=args.region_size, command=shlex.join(["survmamba"] + sys.argv[1:]))
    print(report.summary())
    return 0


def _cmd_export_features(args: argparse.Namespace) -> int:
    from survmamba_lite.data.features_export import export_features

    _need_dir(args.cohort, "COHORT", "cohort folder")
    print(export_features(args.cohort, args.format, args.out, overwrite=args.overwrite).summary())
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    from survmamba_lite.data.fetch import fetch_tcga, read_checksums

    checksums = read_checksums(_need_file(args.checksums, "--checksums", "YAML of path: sha256")) \
        if args.checksums else None
    report = fetch_tcga(args.cohort, args.out, mirror=_need_dir(args.mirror, "--mirror", "a folder laid out like "
                                                                "the data root"),
                        checksums=checksums, include_wsi=not args.no_wsi, overwrite=args.overwrite,
                        log=lambda line: print(line, flush=True))
    print(report.summary().splitlines()[0])
    keys = [c for c in (["blca", "coadread", "blca-porpoise", "luad", "brca"] if "all" in args.cohort else args.cohort)
            if c != "ucec"]
    if keys:
        print(f"next: survmamba realdata --data-root {args.out} --cohorts {' '.join(keys)} --work WORK --out RESULTS"
              + (" --no-slides" if args.no_wsi else ""))
    return 0


def add_commands(subparsers) -> None:
    """Register the data-layer sub-commands on ``survmamba``'s sub-parser set."""
    p = subparsers.add_parser("validate", help="check a cohort folder and list every problem",
                              description="Check a cohort folder (manifest.yaml, clinical.csv, rna.csv, "
                                          "hierarchy.tsv, splits/, features/) and list every problem with its "
                                          "file, column, case and fix. Each feature file's width is read from "
                                          "its header.")
    p.add_argument("dir", nargs="?", default=None, metavar="DIR",
                   help="cohort folder (older spelling of --cohort-dir)")
    p.add_argument("--cohort-dir", type=Path, default=None, help="cohort folder (with manifest.yaml)")
    p.add_argument("--deep", action="store_true",
                   help="also read every slide's full feature array (NaN/inf check on every slide)")
    p.add_argument("--min-genes", type=int, default=None,
                   help="keep functions with at least this many measured genes (default: the manifest's)")
    p.set_defaults(func=_cmd_validate)

    from survmamba_lite.data.synth import COHORTS, SCALES

    p = subparsers.add_parser("synth", help="write a synthetic cohort with a planted hazard",
                              description="Write a synthetic cohort folder with the paper's patient count and a "
                                          "planted multi-grained, multi-modal hazard. The folder is written whole "
                                          "or not at all.")
    p.add_argument("--cohort", required=True, type=str.upper, choices=sorted(COHORTS), help="paper cohort")
    p.add_argument("--scale", default="tiny", choices=list(SCALES), help="bag sizes, feature width, gene counts")
    p.add_argument("--seed", type=int, default=0, help="seed: same seed, same files")
    p.add_argument("--n-folds", type=int, default=None, dest="n_folds_given", metavar="N",
                   help="number of cross-validation folds written to splits/ (default: 5)")
    p.add_argument("--folds", type=int, dest="folds_deprecated", default=None, metavar="N",
                   help="deprecated spelling of --n-folds (in `cv`, --folds selects fold indices)")
    p.add_argument("--out", required=True, type=Path, help="cohort folder to create (absent or empty)")
    p.set_defaults(func=_cmd_synth)

    p = subparsers.add_parser("kegg", help="build hierarchy.tsv (function -> process) from KEGG files")
    p.add_argument("--table", help="KEGG table: pathway_id, pathway_name, level1_category, level2_class, genes")
    p.add_argument("--gmt", help="GMT (or Enrichr) gene-set library named by KEGG pathway")
    p.add_argument("--brite", help="KEGG BRITE br08901 JSON (with --gmt)")
    p.add_argument("--rna", help="RNA table whose gene columns the hierarchy is checked against")
    p.add_argument("--min-genes", type=int, default=1, help="keep functions with at least this many measured genes")
    p.add_argument("--exclude-categories", nargs="*", default=[], metavar="CATEGORY",
                   help='KEGG level-1 categories to leave out, e.g. "Human Diseases"')
    p.add_argument("--out", required=True, type=Path, help="hierarchy.tsv to write (refused if it exists)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing hierarchy file at --out")
    p.set_defaults(func=_cmd_kegg)

    p = subparsers.add_parser("import-tcga", help="import Xena (SurvPath) or PORPOISE tables into a cohort folder",
                              description="Import public TCGA tables into a cohort folder. Splits whose train and "
                                          "val overlap are refused; the cohort is written whole or not at all.")
    p.add_argument("--format", required=True, choices=["xena", "porpoise"], help="source table format")
    p.add_argument("--rna", help="xena: rna_clean.csv")
    p.add_argument("--clinical", help="xena: clinical.csv")
    p.add_argument("--table", help="porpoise: tcga_<x>_all_clean.csv[.zip]")
    p.add_argument("--splits", help="folder of splits_<k>.csv (columns train, val); default: make 5 folds")
    p.add_argument("--hierarchy", required=True, help="hierarchy.tsv (from `survmamba kegg`)")
    p.add_argument("--features", help="folder of <slide_id>.h5 feature files; without it the cohort is RNA-only")
    p.add_argument("--copy-features", action="store_true", help="copy feature files instead of symlinking")
    p.add_argument("--cohort", help="cohort name (default: from the file or folder name)")
    p.add_argument("--min-genes", type=int, default=1, help="keep functions with at least this many measured genes")
    p.add_argument("--duplicate-rna", default="first", choices=["first", "mean", "drop", "error"],
                   help="xena: what to do with a case that has several expression rows")
    p.add_argument("--out", required=True, type=Path, help="cohort folder to create (absent or empty)")
    p.set_defaults(func=_cmd_import)

    p = subparsers.add_parser("gdc-manifest", help="list a clinical table's slides for the GDC Data Transfer Tool")
    p.add_argument("--clinical", required=True, help="clinical table with case_id, slide_id")
    p.add_argument("--gdc-files", help="GDC API response (manifest or files TSV) to turn the list into a "
                                       "gdc-client manifest")
    p.add_argument("--out", required=True, type=Path, help="list or manifest to write (refused if it exists)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing list or manifest at --out")
    p.set_defaults(func=_cmd_gdc)

    p = subparsers.add_parser(
        "import-features", help="import CLAM or TRIDENT patch features into a cohort's features/",
        description="Write COHORT/features/<slide_id>.h5 for every slide of COHORT/clinical.csv found in SRC "
                    "(CLAM's h5_files/ or pt_files/, TRIDENT's features_<encoder>/): float32 features, level-0 "
                    "coordinates and the region of every patch (4096 px at 20x = 8192 level-0 px at 40x). "
                    "Nothing is written unless every slide passes; slides without a file are listed.")
    p.add_argument("src", type=Path, metavar="SRC", help="folder of per-slide feature files (.h5 or .pt)")
    p.add_argument("--cohort-dir", required=True, type=Path, help="cohort folder holding clinical.csv")
    p.add_argument("--format", default="auto", choices=["auto", "clam", "trident"],
                   help="source format; auto: TRIDENT when the coordinates carry patch_size_level0 / "
                        "level0_magnification, else CLAM")
    p.add_argument("--patches-dir", type=Path, default=None,
                   help="the patching step's folder (CLAM patches/, TRIDENT patches/), for coordinates and patch "
                        "size where SRC lacks them (TRIDENT default: SRC/../patches)")
    p.add_argument("--patch-size-level0", type=int, default=None, metavar="N",
                   help="patch side in level-0 pixels, where no file states it")
    p.add_argument("--magnification", default=None, metavar="M",
                   help="level-0 (scan) magnification where no file states it (CLAM): a number (20, 40) or a CSV "
                        "with columns slide_id, magnification [, patch_magnification] (an export's slides.csv)")
    p.add_argument("--slides", default="all", choices=["all", "first"],
                   help="all slides of a case (joined by ';' in slide_id), or the first listed; recorded in the "
                        "manifest")
    p.add_argument("--encoder", default=None, help="the patch encoder's name, for CLAM files (which do not record it)")
    p.add_argument("--region-size", type=int, default=4096, help="region side in pixels at 20x (the paper's 4096)")
    p.add_argument("--strict", action="store_true",
                   help="slides of clinical.csv without a source file (or without a patch) are an error")
    p.add_argument("--overwrite", action="store_true", help="replace an existing features/ (survmamba's files only)")
    p.set_defaults(func=_cmd_import_features)

    p = subparsers.add_parser(
        "export-features", help="write a cohort's features in CLAM's or TRIDENT's layout",
        description="Write every slide of the cohort's bags as CLAM h5_files/ or pt_files/ (with patches/) or as "
                    "TRIDENT's features_<encoder>/ (with patches/), plus slides.csv, so the peers' own code runs on "
                    "the same features. `survmamba import-features` reads them back.")
    p.add_argument("cohort", type=Path, metavar="COHORT", help="cohort folder")
    p.add_argument("--format", required=True, choices=["clam-h5", "clam-pt", "trident"], help="layout to write")
    p.add_argument("--out", required=True, type=Path, help="folder to write (new or empty, or an earlier export)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier export at --out")
    p.set_defaults(func=_cmd_export_features)

    from survmamba_lite.data.fetch import COHORT_GROUPS

    p = subparsers.add_parser(
        "fetch-tcga", help="download the public TCGA tables, splits and KEGG files, checked by SHA-256",
        description="Download every public input of the real-data check (SurvPath's Xena tables and splits, "
                    "PORPOISE's tables and splits, the KEGG files of `survmamba kegg`, the two test slides) from "
                    "their public releases, each checked against its SHA-256 in data_manifests/public_inputs.yaml, "
                    "into the layout `survmamba realdata --data-root DIR` reads. Files already present with the "
                    "pinned hash are kept.")
    p.add_argument("--cohort", nargs="+", required=True, choices=list(COHORT_GROUPS) + ["all"], metavar="NAME",
                   help=f"cohort table(s): {', '.join(COHORT_GROUPS)} or all (the KEGG files come with any)")
    p.add_argument("--out", required=True, type=Path, help="data root to fill (tcga/, kegg/, wsi/)")
    p.add_argument("--mirror", type=Path, default=None,
                   help="copy from this folder, laid out like the data root, instead of downloading")
    p.add_argument("--checksums", default=None,
                   help="YAML of path: sha256 replacing pinned hashes (files of another version; at your own risk)")
    p.add_argument("--no-wsi", action="store_true", help="skip the two slides of the slide check")
    p.add_argument("--overwrite", action="store_true", help="replace a present file whose hash differs")
    p.set_defaults(func=_cmd_fetch)
