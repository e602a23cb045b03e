"""Prediction files that reproduce their metrics: written at full precision, read back exactly.

Every number a run reports (fold c-index, pooled out-of-fold c-index, time-dependent
c-index, integrated Brier score) is computed from the predictions **as they are read back
from the file**, so recomputing it from ``predictions.csv`` or ``oof_predictions.csv`` gives
the stored value exactly:

* :func:`write_predictions` writes every float as its shortest round-trip decimal (Python's
  ``repr``: 17 significant digits at most) and returns the frame read back from the file
  text, which is what the caller computes its metrics from;
* :func:`read_predictions` reads with ``float_precision="round_trip"``: pandas' default
  parser can land one unit in the last place away from the written value (a risk of
  ``-2.9999999999999996`` read as ``-3.0`` turns a strict order into a tie). Python's
  ``float``, numpy's ``loadtxt`` and R's ``read.csv`` read these files exactly too.

Rounded predictions were the defect this replaces: with ``%.10g`` a saturated SNN's risks
``-3 + 1e-12`` and ``-3`` were written as the same number while its c-index had been computed
from the unrounded values, so the file said something else than the metrics.

>>> import tempfile
>>> frame = pd.DataFrame({"case_id": ["a", "b"], "time": [1.0, 2.0], "event": [1, 0],
...                       "risk": [-3.0 + 1e-12, -2.9999999999999996]})
>>> path = Path(tempfile.mkdtemp()) / "predictions.csv"
>>> back = write_predictions(path, frame)
>>> bool((back["risk"].to_numpy() == frame["risk"].to_numpy()).all()), bool(back["risk"].iloc[1] > -3.0)
(True, True)
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import pandas as pd

from survmamba_lite.utils.io import atomic_write_text

__all__ = ["write_predictions", "read_predictions", "predictions_text"]


def predictions_text(frame: pd.DataFrame) -> str:
    """``frame`` as CSV text with every float at full (round-trip) precision, no index."""
    return frame.to_csv(index=False, float_format=None, lineterminator="\n")


def _read(source) -> pd.DataFrame:
    return pd.read_csv(source, dtype={"case_id": str}, float_precision="round_trip")


def read_predictions(path: str | os.PathLike) -> pd.DataFrame:
    """A predictions CSV (``predictions.csv``, ``oof_predictions.csv``, a real-data row's file)
    read exactly: ``case_id`` as text, floats with the round-trip parser."""
    return _read(Path(path))


def write_predictions(path: str | os.PathLike, frame: pd.DataFrame) -> pd.DataFrame:
    """Write ``frame`` to ``path`` atomically at full precision; return the frame read back
    from the written text (equal to ``frame`` in every value; compute metrics from it)."""
    text = predictions_text(frame)
    atomic_write_text(path, text)
    return _read(io.StringIO(text))
