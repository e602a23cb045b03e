"""A cohort folder holding some of another cohort's cases: a quick first run, a teaching cohort.

:func:`subset_cohort` copies the chosen cases' rows of ``clinical.csv`` and ``rna.csv``, the
hierarchy, and the feature files of their bag slides, and makes new folds for them
(:func:`~survmamba_lite.data.layout.make_folds`: the source's folds would be unbalanced on a
subset). The folder is written whole, then renamed into place.

>>> import tempfile
>>> from survmamba_lite.data.synth import make_synthetic_cohort
>>> from survmamba_lite.data.layout import load_cohort
>>> tmp = Path(tempfile.mkdtemp())
>>> full = load_cohort(make_synthetic_cohort("LUAD", "tiny", seed=0, out=tmp / "luad"))
>>> small = load_cohort(subset_cohort(full.root, full.case_ids[:20], tmp / "luad20", n_folds=4))
>>> small.n_cases, len(small.folds), small.manifest["subset_of"]["n_cases"]
(20, 4, 453)
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Sequence

import pandas as pd

from survmamba_lite.data.layout import (CLINICAL, FEATURES_DIR, HIERARCHY, RNA, load_cohort, make_folds,
                                        write_folds, write_manifest)
from survmamba_lite.errors import UserError
from survmamba_lite.utils.outputs import COHORT, check_out_dir, discard_dir, publish_dir, staging_dir

__all__ = ["subset_cohort"]


def subset_cohort(src: str | os.PathLike, case_ids: Sequence[str], out: str | os.PathLike, *, n_folds: int = 5,
                  seed: int = 0) -> Path:
    """Write a cohort folder at ``out`` with the cases ``case_ids`` of the cohort ``src``.

    Args:
        src: a valid cohort folder.
        case_ids: the cases to keep (in this order).
        out: the folder to create (absent or empty).
        n_folds, seed: the new cross-validation folds (stratified by event and time).

    Returns:
        ``out``.
    """
    cohort = load_cohort(src)
    ids = list(dict.fromkeys(str(c) for c in case_ids))
    unknown = [c for c in ids if c not in cohort.clinical.index]
    if unknown:
        raise UserError(f"subset of {cohort.root}: case {unknown[0]} is not in its clinical.csv ({len(unknown)} "
                        "unknown case id(s))")
    if len(ids) < n_folds:
        raise UserError(f"subset of {cohort.root}: {len(ids)} case(s) cannot fill {n_folds} folds; keep more cases "
                        "or ask for fewer folds")
    final = Path(out)
    check_out_dir(final, COHORT)
    root = staging_dir(final, COHORT)
    try:
        clinical = cohort.clinical.loc[ids].reset_index()
        clinical.to_csv(root / CLINICAL, index=False, lineterminator="\n")
        if cohort.rna is not None:
            raw = pd.read_csv(cohort.root / RNA, dtype={"case_id": str}).set_index("case_id")
            raw.loc[ids].to_csv(root / RNA, lineterminator="\n")
        if (cohort.root / HIERARCHY).is_file():
            shutil.copy(cohort.root / HIERARCHY, root / HIERARCHY)
        folds = make_folds(clinical, k=n_folds, seed=seed)
        write_folds(root, folds)
        slides = [s for c in ids for s in cohort.slide_ids(c)]
        if "wsi" in cohort.modalities:
            (root / FEATURES_DIR).mkdir()
            for s in slides:
                shutil.copy(cohort.feature_path(s), root / FEATURES_DIR / f"{s}.h5")
        man = dict(cohort.manifest, n_cases=len(ids), n_folds=len(folds))
        if man.get("features"):
            listed = {s for c in ids for s in str(cohort.clinical.at[c, "slide_id"]).split(";")}
            man["features"] = dict(man["features"], n_slides=len(slides),
                                   **({"missing": sorted(set(man["features"].get("missing") or []) & listed)}
                                      if "missing" in man["features"] else {}))
        man["subset_of"] = {"cohort": str(cohort.root.resolve()), "n_cases": cohort.n_cases, "seed": seed}
        man.pop("dropped_cases", None)
        write_manifest(root, man)
        for extra in ("synthetic_truth.csv", "synthetic_regions.csv"):     # synthetic cohorts: the planted truth
            if (cohort.root / extra).is_file():
                table = pd.read_csv(cohort.root / extra, dtype={"case_id": str})
                table[table["case_id"].isin(ids)].to_csv(root / extra, index=False, lineterminator="\n")
        publish_dir(root, final)
    except BaseException:
        if root.exists():
            discard_dir(root, COHORT)
        raise
    return final
