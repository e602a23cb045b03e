"""A small cohort cut from a synthetic one, with several two-slide cases, for fast data tests."""
from __future__ import annotations

import shutil
from pathlib import Path

from survmamba_lite.data.layout import load_cohort
from survmamba_lite.data.subset import subset_cohort


def synthetic_subset(out: Path, *, cohort: str = "BLCA", seed: int = 3, n_cases: int = 30, n_two_slide: int = 4,
                     n_folds: int = 3) -> Path:
    """``n_cases`` cases of ``make_synthetic_cohort(cohort, "tiny", seed)`` (the first ``n_two_slide``
    cases with two slides, then the first others), written as a cohort folder at ``out``."""
    from survmamba_lite.data.synth import make_synthetic_cohort

    out = Path(out)
    full = load_cohort(make_synthetic_cohort(cohort, "tiny", seed=seed, out=out.parent / f".{out.name}-full"))
    two = [c for c in full.case_ids if len(full.slide_ids(c)) == 2][:n_two_slide]
    keep = two + [c for c in full.case_ids if c not in two][: n_cases - len(two)]
    subset_cohort(full.root, keep, out, n_folds=n_folds)
    shutil.rmtree(full.root)
    return out
