"""Fingerprints of a run's inputs, so a resumed run never mixes old and new data.

``survmamba cv`` records :func:`input_fingerprint` of the cohort folder in the run's
``config.json`` (``derived.inputs``). Rerunning the command resumes the run only when the
fingerprint is unchanged (:func:`check_inputs_unchanged`); otherwise finished folds would
be reused for data they were not trained on.

The fingerprint holds SHA-256 digests of the bytes of ``clinical.csv``, the fold files
``splits/fold_*.csv`` (together, in fold order), ``rna.csv`` and ``hierarchy.tsv`` (when
the model reads transcriptomics) and of the list of feature files (slide id and size
of each ``features/<slide_id>.h5`` named in ``clinical.csv``, when the model reads
slides). Feature arrays themselves are not read: a re-extracted slide of another size
changes the list; one re-extracted in place to the same size does not.

>>> import tempfile
>>> from survmamba_lite.data.synth import make_synthetic_cohort
>>> root = make_synthetic_cohort("BLCA", "tiny", seed=0, out=Path(tempfile.mkdtemp()) / "blca")
>>> a = input_fingerprint(root, ("wsi", "rna"))
>>> sorted(a)
['clinical.csv', 'features', 'hierarchy.tsv', 'rna.csv', 'splits']
>>> _ = (root / "clinical.csv").write_text((root / "clinical.csv").read_text().replace(",1\\n", ",0\\n", 1))
>>> check_inputs_unchanged(a, input_fingerprint(root, ("wsi", "rna")), "RUN")
Traceback (most recent call last):
...
survmamba_lite.errors.UserError: RUN was made from other inputs: clinical.csv changed ...
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Sequence

import pandas as pd

from survmamba_lite.errors import UserError

__all__ = ["input_fingerprint", "check_inputs_unchanged"]

_FOLD_RE = re.compile(r"^fold_(\d+)\.csv$")


def _sha256_files(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode() + b"\0")
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def input_fingerprint(cohort_dir: str | os.PathLike, modalities: Sequence[str]) -> dict[str, str | None]:
    """SHA-256 digests of the cohort files a run with ``modalities`` depends on (see the module docstring).

    A file that is absent is recorded as None (e.g. ``splits`` of a cohort without folds).
    """
    root = Path(cohort_dir)
    out: dict[str, str | None] = {"clinical.csv": _sha256_files([root / "clinical.csv"])}
    d = root / "splits"
    folds = sorted(((int(m.group(1)), p) for p in d.glob("fold_*.csv") if (m := _FOLD_RE.match(p.name))),
                   key=lambda t: t[0]) if d.is_dir() else []
    out["splits"] = _sha256_files([p for _, p in folds]) if folds else None
    if "rna" in modalities:
        for name in ("rna.csv", "hierarchy.tsv"):
            out[name] = _sha256_files([root / name]) if (root / name).is_file() else None
    if "wsi" in modalities:
        clin = pd.read_csv(root / "clinical.csv", dtype=str, keep_default_na=False, usecols=["slide_id"])
        h = hashlib.sha256()
        for cell in clin["slide_id"]:
            for sid in (s.strip() for s in cell.split(";") if s.strip()):
                p = root / "features" / f"{sid}.h5"
                h.update(f"{sid}\0{p.stat().st_size if p.is_file() else -1}\n".encode())
        out["features"] = h.hexdigest()
    return out


def check_inputs_unchanged(recorded: dict | None, current: dict, run_dir: str | os.PathLike) -> None:
    """Raise :class:`UserError` naming the changed inputs when ``recorded`` differs from ``current``.

    ``recorded`` None (a run made before fingerprints were recorded) is accepted.
    """
    if not recorded:
        return
    changed = [k for k in sorted(set(recorded) | set(current)) if recorded.get(k) != current.get(k)]
    if changed:
        what = {"features": "the list of feature files (features/<slide_id>.h5 and their sizes)",
                "splits": "the fold files splits/fold_*.csv"}
        listed = ", ".join(what.get(k, k) for k in changed)
        raise UserError(f"{run_dir} was made from other inputs: {listed} changed since the run began. Resuming "
                        f"would reuse results computed on the old data: choose a new --out, or add --overwrite to "
                        f"delete that run's files and start again")
