"""Markdown pipe tables of result frames (no extra dependency).

>>> import pandas as pd
>>> print(to_markdown(pd.DataFrame({"a": [1], "b": ["x"]})))
| a | b |
|---|---|
| 1 | x |
"""
from __future__ import annotations

import math

import pandas as pd

__all__ = ["to_markdown"]


def to_markdown(df: pd.DataFrame, index: bool = False) -> str:
    """A pipe table of ``df``; NaN cells are left empty (with ``index``, the index is the first column)."""
    frame = df.reset_index() if index else df
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join("" if (isinstance(v, float) and math.isnan(v)) else str(v) for v in row) + " |")
    return "\n".join(lines)
