"""Fingerprints of a run's inputs: a resumed run never mixes old and new data, and nothing
that reloads a trained model pairs its weights with other files.

``survmamba cv`` records :func:`input_fingerprint` of the cohort folder in the run's
``config.json`` (``derived.inputs``). Every consumer of the run checks it against the
cohort as it is now (:func:`check_inputs_unchanged`): ``survmamba cv`` before it resumes
(finished folds would otherwise be reused for data they were not trained on) and
``survmamba explain`` before it rebuilds a fold's model (the weights would otherwise be
read with another gene hierarchy, other functions or other features).

The fingerprint holds SHA-256 digests of every input that changes what is trained:

=====================  ================================================================
key                    what is digested
=====================  ================================================================
``manifest.yaml``      its bytes (modalities, ``hierarchy.min_genes``, feature width, ...)
``clinical.csv``       its bytes (times, events, slide ids)
``splits``             the fold files ``splits/fold_*.csv`` together, in fold order
``rna.csv``            its bytes (models that read transcriptomics)
``hierarchy.tsv``      its bytes (models that read transcriptomics)
``features``           the list of feature files: slide id and size of each
                       ``features/<slide_id>.h5`` that a bag holds (``clinical.csv``'s
                       slides under the manifest's ``features.slides`` rule)
``features_sampled``   each of those files' size, first and last 64 KiB (the HDF5 header
                       and attributes, the first patches' features, coordinates and
                       regions)
=====================  ================================================================

Paths are not part of it: a cohort folder moved or copied elsewhere has the same
fingerprint, and a run resumes (and explains) from its new place. Feature arrays are
sampled, not read whole (a paper-scale cohort holds tens of gigabytes): a slide
re-extracted with another encoder, precision or tiling changes its first patches and is
caught; an edit confined to the middle of a feature array is not.

**Older runs.** A run recorded before a key existed (``manifest.yaml`` and
``features_sampled`` were added later; the earliest runs record no fingerprint at all) is
checked on the keys it recorded; the others cannot be checked and are named in a note
(:func:`unchecked_note`), not refused, so committed runs stay readable.

>>> import tempfile
>>> from survmamba_lite.data.synth import make_synthetic_cohort
>>> root = make_synthetic_cohort("BLCA", "tiny", seed=0, out=Path(tempfile.mkdtemp()) / "blca")
>>> a = input_fingerprint(root, ("wsi", "rna"))
>>> sorted(a)
['clinical.csv', 'features', 'features_sampled', 'hierarchy.tsv', 'manifest.yaml', 'rna.csv', 'splits']
>>> _ = (root / "clinical.csv").write_text((root / "clinical.csv").read_text().replace(",1\\n", ",0\\n", 1))
>>> check_inputs_unchanged(a, input_fingerprint(root, ("wsi", "rna")), "RUN")
Traceback (most recent call last):
...
survmamba_lite.errors.UserError: RUN was made from other inputs: clinical.csv changed ...
>>> now = input_fingerprint(root, ("wsi", "rna"))
>>> older = {k: v for k, v in now.items() if k not in ("manifest.yaml", "features_sampled")}
>>> check_inputs_unchanged(older, now, "RUN")                  # an older record: the keys it lacks
['features_sampled', 'manifest.yaml']
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Sequence

import pandas as pd

from survmamba_lite.data.layout import bag_slide_ids, read_manifest
from survmamba_lite.errors import UserError

__all__ = ["input_fingerprint", "check_inputs_unchanged", "unchecked_note", "INPUT_KEYS"]

_FOLD_RE = re.compile(r"^fold_(\d+)\.csv$")
#: every key a fingerprint of this version may hold
INPUT_KEYS = ("manifest.yaml", "clinical.csv", "splits", "rna.csv", "hierarchy.tsv", "features", "features_sampled")
#: bytes read from each end of a feature file for ``features_sampled``
SAMPLE_BYTES = 64 * 1024
_WHAT = {"features": "the list of feature files (features/<slide_id>.h5 and their sizes)",
         "features_sampled": "the contents of the feature files (features/<slide_id>.h5)",
         "splits": "the fold files splits/fold_*.csv"}


def _sha256_files(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode() + b"\0")
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _sampled(path: Path, h) -> None:
    """Feed ``path``'s size and its first and last :data:`SAMPLE_BYTES` into ``h`` (-1 when absent)."""
    try:
        size = path.stat().st_size
    except OSError:
        h.update(b"-1\n")
        return
    h.update(f"{size}\n".encode())
    with open(path, "rb") as fh:
        h.update(fh.read(SAMPLE_BYTES))
        if size > 2 * SAMPLE_BYTES:
            fh.seek(size - SAMPLE_BYTES)
        h.update(fh.read())


def input_fingerprint(cohort_dir: str | os.PathLike, modalities: Sequence[str]) -> dict[str, str | None]:
    """SHA-256 digests of the cohort files a run with ``modalities`` depends on (see the module docstring).

    A file that is absent is recorded as None (e.g. ``splits`` of a cohort without folds).
    """
    root = Path(cohort_dir)
    out: dict[str, str | None] = {
        "manifest.yaml": _sha256_files([root / "manifest.yaml"]) if (root / "manifest.yaml").is_file() else None,
        "clinical.csv": _sha256_files([root / "clinical.csv"])}
    d = root / "splits"
    folds = sorted(((int(m.group(1)), p) for p in d.glob("fold_*.csv") if (m := _FOLD_RE.match(p.name))),
                   key=lambda t: t[0]) if d.is_dir() else []
    out["splits"] = _sha256_files([p for _, p in folds]) if folds else None
    if "rna" in modalities:
        for name in ("rna.csv", "hierarchy.tsv"):
            out[name] = _sha256_files([root / name]) if (root / name).is_file() else None
    if "wsi" in modalities:
        clin = pd.read_csv(root / "clinical.csv", dtype=str, keep_default_na=False, usecols=["slide_id"])
        manifest = read_manifest(root) if (root / "manifest.yaml").is_file() else None
        listed, sampled = hashlib.sha256(), hashlib.sha256()
        for cell in clin["slide_id"]:
            for sid in bag_slide_ids(cell, manifest):  # the slides the bags hold (the manifest's slide rule)
                p = root / "features" / f"{sid}.h5"
                listed.update(f"{sid}\0{p.stat().st_size if p.is_file() else -1}\n".encode())
                sampled.update(f"{sid}\0".encode())
                _sampled(p, sampled)
        out["features"] = listed.hexdigest()
        out["features_sampled"] = sampled.hexdigest()
    return out


def check_inputs_unchanged(recorded: dict | None, current: dict, run_dir: str | os.PathLike, *,
                           consumer: str = "resume", cohort_dir: str | os.PathLike | None = None) -> list[str]:
    """Raise :class:`UserError` naming the changed inputs when ``recorded`` differs from ``current``.

    Only the keys ``recorded`` holds are compared (an older run: see the module docstring);
    ``recorded`` None (a run made before fingerprints were recorded) checks nothing.

    Args:
        recorded: ``derived.inputs`` of the run's ``config.json``.
        current: :func:`input_fingerprint` of the cohort now.
        run_dir: the run, for the message.
        consumer: ``"resume"`` (``survmamba cv``: the fix is a new ``--out`` or ``--overwrite``)
            or ``"explain"`` (the fix is the cohort the run was trained on).
        cohort_dir: the cohort folder read now, for the message.

    Returns:
        the keys of ``current`` that ``recorded`` lacks (unchecked; see :func:`unchecked_note`).
    """
    if not recorded:
        return sorted(current)
    changed = [k for k in sorted(recorded) if recorded.get(k) != current.get(k)]
    if changed:
        listed = ", ".join(_WHAT.get(k, k) for k in changed)
        where = f" in {cohort_dir}" if cohort_dir is not None else ""
        if consumer == "explain":
            raise UserError(f"{run_dir} was trained on other inputs: {listed} changed{where} since the run was "
                            f"trained. Its weights would be read with the new files: restore the cohort as it was "
                            f"(or pass --cohort-dir with the cohort it was trained on), or train a new run")
        raise UserError(f"{run_dir} was made from other inputs: {listed} changed{where} since the run began. "
                        f"Resuming would reuse results computed on the old data: choose a new --out, or add "
                        f"--overwrite to delete that run's files and start again")
    return sorted(k for k in current if k not in recorded)


def unchecked_note(run_dir: str | os.PathLike, unchecked: Sequence[str], recorded: dict | None) -> str | None:
    """The one-line note on inputs an older run did not record (None when every input was checked).

    >>> unchecked_note("RUN", ["manifest.yaml"], {"clinical.csv": "..."})
    'note: RUN was recorded by an older survmamba without a fingerprint of manifest.yaml; that input is not checked (the others are)'
    >>> unchecked_note("RUN", ["clinical.csv"], None)
    'note: RUN records no fingerprint of its inputs (made by an older survmamba); they are not checked'
    """
    if not unchecked:
        return None
    if not recorded:
        return f"note: {run_dir} records no fingerprint of its inputs (made by an older survmamba); they are not checked"
    what = ", ".join(unchecked)
    return (f"note: {run_dir} was recorded by an older survmamba without a fingerprint of {what}; "
            f"{'that input is' if len(unchecked) == 1 else 'those inputs are'} not checked (the others are)")
