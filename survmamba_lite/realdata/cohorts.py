"""Importing the public tables into cohort folders, and their counts (``cohorts.json``)."""
from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any, Mapping

from survmamba_lite.realdata.catalogue import COHORTS, KEGG_TABLE, RealCohort, log
from survmamba_lite.utils.io import atomic_write_text

__all__ = ["build_hierarchy", "import_cohort", "cohort_summary", "write_cohort_summaries"]


def build_hierarchy(data_root: str | os.PathLike, work: str | os.PathLike) -> Path:
    """``work/hierarchy.tsv`` from the 352-pathway KEGG table (process = KEGG level-2 class)."""
    from survmamba_lite.data.kegg import hierarchy_from_kegg_table, write_hierarchy_tsv

    path = Path(work) / "hierarchy.tsv"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_hierarchy_tsv(hierarchy_from_kegg_table(Path(data_root) / KEGG_TABLE), path)
    return path


def import_cohort(spec: RealCohort, data_root: str | os.PathLike, work: str | os.PathLike) -> Path:
    """Import one public table into ``work/<key>`` (kept when it is already there)."""
    from survmamba_lite.data.tcga import import_porpoise, import_xena

    root, out = Path(data_root), Path(work) / spec.key
    if (out / "manifest.yaml").is_file():
        return out
    missing = [str(root / p) for p in spec.files.values() if not (root / p).exists()]
    if missing:
        raise FileNotFoundError(f"cohort {spec.key}: missing {', '.join(missing)}; --data-root must hold the "
                                "folders tcga/ and kegg/ (see data_manifests/README.md)")
    hierarchy = build_hierarchy(root, work)
    f = {k: root / v for k, v in spec.files.items()}
    if spec.source == "xena":
        cmd = shlex.join(["survmamba", "import-tcga", "--format", "xena", "--rna", str(f["rna"]), "--clinical",
                          str(f["clinical"]), "--splits", str(f["splits"]), "--hierarchy", str(hierarchy),
                          "--cohort", spec.cohort, "--out", str(out)])
        report = import_xena(f["rna"], f["clinical"], out, hierarchy=hierarchy, splits=f["splits"],
                             cohort=spec.cohort, command=cmd)
    else:
        cmd = shlex.join(["survmamba", "import-tcga", "--format", "porpoise", "--table", str(f["table"]),
                          "--splits", str(f["splits"]), "--hierarchy", str(hierarchy), "--cohort", spec.cohort,
                          "--out", str(out)])
        report = import_porpoise(f["table"], out, hierarchy=hierarchy, splits=f["splits"], cohort=spec.cohort,
                                 command=cmd)
    log(f"[import {spec.key}] {cmd}\n" + report.summary().split("\n  dropped")[0]
         + f"\n  dropped {len(report.dropped)} case(s) (listed in {out / 'manifest.yaml'})")
    return out


def cohort_summary(cohort_dir: str | os.PathLike) -> dict[str, Any]:
    """Counts of an imported cohort: cases, deaths, genes, functions, processes, dropped
    cases, and per validation fold the number of cases and of deaths (a fold with few
    deaths has a noisy c-index)."""
    from survmamba_lite.data.layout import load_cohort

    cohort = load_cohort(cohort_dir)
    ev = cohort.clinical["event"]
    return {
        "cohort": str(cohort.manifest.get("cohort")), "source": cohort.manifest.get("source"),
        "n_cases": cohort.n_cases, "n_events": int(ev.sum()),
        "n_genes": cohort.hierarchy.n_genes, "n_functions": cohort.hierarchy.n_functions,
        "n_processes": cohort.hierarchy.n_processes,
        "n_dropped_at_import": len(cohort.manifest.get("dropped_cases") or []),
        "fold_n_val": [len(va) for _, va in cohort.folds],
        "fold_n_val_events": [int(ev.loc[va].sum()) for _, va in cohort.folds],
        "median_follow_up_months": round(float(cohort.clinical["survival_months"].median()), 2),
        "created_by": cohort.manifest.get("created_by"),
    }


def write_cohort_summaries(cohort_dirs: Mapping[str, str | os.PathLike], out: str | os.PathLike) -> dict:
    """Add the :func:`cohort_summary` of each cohort to ``out/cohorts.json`` (other keys kept)."""
    path = Path(out) / "cohorts.json"
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    data.update({k: cohort_summary(d) for k, d in cohort_dirs.items()})
    data = {k: data[k] for k in sorted(data, key=lambda k: list(COHORTS).index(k) if k in COHORTS else 99)}
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")
    return data
