"""What run folders hold: the file names, and their JSON and CSV written one way.

One module names every file of a run directory (``survmamba cv``; layout in
:mod:`~survmamba_lite.experiment.cv`) and of a grid folder (``survmamba grid``; layout in
:mod:`~survmamba_lite.experiment.grid`), so the trainer, the job runner, the summaries and
the report agree on them. JSON is written through :func:`json_safe` (NaN and infinities
become ``null``, NumPy scalars plain numbers) and atomically; prediction tables are written
and read by :mod:`~survmamba_lite.experiment.predfiles` (full precision, read back exactly).

>>> json_text({"c": float("nan"), "n": np.int64(3)})
'{\\n "c": null,\\n "n": 3\\n}\\n'
>>> fold_dir("runs/a", 2).as_posix()
'runs/a/fold_2'
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from survmamba_lite.utils.io import atomic_write_text

__all__ = ["CONFIG", "SUMMARY", "OOF", "CHECKPOINT", "PREDICTIONS", "METRICS", "DONE", "PREPROCESSING", "SPLIT",
           "GRID", "JOBS", "TIMING", "fold_dir", "json_safe", "json_text", "write_json"]

#: a run directory: the config (with its derived block), the summary over folds, the pooled out-of-fold predictions
CONFIG, SUMMARY, OOF = "config.json", "summary.json", "oof_predictions.csv"
#: a fold folder ``fold_{k}``: checkpoint, validation predictions, metrics, the last file written, and what
#: was fitted on the training ids and which ids those were
CHECKPOINT, PREDICTIONS, METRICS, DONE, PREPROCESSING, SPLIT = (
    "checkpoint.pt", "predictions.csv", "metrics.json", "DONE", "preprocessing.json", "split.json")
#: a grid folder: its description, one line per job attempt, the timing table
GRID, JOBS, TIMING = "grid.json", "jobs.jsonl", "timing.csv"


def fold_dir(run_dir: str | os.PathLike, fold: int) -> Path:
    """The folder of fold ``fold`` in a run directory."""
    return Path(run_dir) / f"fold_{fold}"


def json_safe(x: Any) -> Any:
    """``x`` with NaN/inf as None, NumPy scalars as Python numbers and tuples as lists (recursively).

    >>> json_safe({"a": (np.float32(0.5), float("inf"))})
    {'a': [0.5, None]}
    """
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def json_text(obj: Any, indent: int | None = 1) -> str:
    """``obj`` as the JSON text of a run file (:func:`json_safe`, one trailing newline)."""
    return json.dumps(json_safe(obj), indent=indent) + "\n"


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 1) -> Path:
    """Write ``obj`` to ``path`` atomically as :func:`json_text`."""
    return atomic_write_text(Path(path), json_text(obj, indent))
