"""What each number of a report stands on: the marks and notes of ``survmamba report``'s tables.

A table cell of a run is marked (``0.600 ± 0.094 ¹``) when the number stands on less than a
full run, and the note under the table says what (:func:`run_notes`):

* folds whose c-index is undefined (a validation fold without a comparable pair, e.g. no
  death): the mean is over the other folds; when every fold is undefined the cell reads
  ``n/a``;
* fewer folds than the cohort has (``--folds``);
* a subset of the cohort (``max_cases``) or of each patient's patches (``max_patches``).

Each table numbers its marked runs ¹, ², ... (:class:`Marks`); the long CSV tables carry
the same text in a ``notes`` column.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:                                  # pragma: no cover
    import pandas as pd

    from survmamba_lite.experiment.runs import Run

__all__ = ["run_notes", "Marks", "mark_rows", "notes_column", "NOT_AVAILABLE"]

#: a cell whose number is undefined (every fold's c-index undefined)
NOT_AVAILABLE = "n/a"
_SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def run_notes(run: "Run") -> list[str]:
    """What a run's numbers stand on, when less than every fold of the whole cohort (see the module docstring)."""
    notes = []
    ran = [m.get("fold") for m in run.folds]
    undefined = [m.get("fold") for m in run.folds if m.get("c_index") is None]
    if undefined:
        why = sorted({str(m["c_index_note"]).split(" (")[0].removeprefix("concordance_index: ")
                      for m in run.folds if m.get("c_index") is None and m.get("c_index_note")})
        because = f" ({'; '.join(why)})" if why else ""
        if len(undefined) == len(ran):
            notes.append(f"c-index undefined in every fold{because}, so no mean")
        else:
            notes.append(f"c-index undefined in fold(s) {undefined}{because}: the mean is over {len(ran) - len(undefined)} "
                         f"of {len(ran)} folds")
    n_folds = run.derived.get("n_folds")
    if n_folds and len(ran) < int(n_folds):
        notes.append(f"{len(ran)} of the cohort's {int(n_folds)} folds run ({ran})")
    if run.config.max_cases is not None:
        notes.append(f"a seeded subset of {run.config.max_cases} cases (max_cases), not the whole cohort")
    if run.config.max_patches is not None:
        notes.append(f"at most {run.config.max_patches} patches per patient (max_patches)")
    return notes


class Marks:
    """The footnote marks of one table: every run with notes gets the next number.

    >>> from types import SimpleNamespace as NS
    >>> run = NS(label="SNN", cohort="BLCA", path="runs/snn", folds=[{"fold": 0, "c_index": 0.6}],
    ...          derived={"n_folds": 5}, config=NS(max_cases=30, max_patches=None))
    >>> marks = Marks()
    >>> marks.of(run), marks.of(run)
    (' ¹', ' ¹')
    >>> print(marks.footnotes())
    ¹ SNN on BLCA (runs/snn): 1 of the cohort's 5 folds run ([0]); a seeded subset of 30 cases (max_cases), not the whole cohort
    """

    def __init__(self) -> None:
        self._marks: dict[str, tuple[str, str]] = {}

    def of(self, *runs: "Run") -> str:
        """`` ¹²``: the marks of ``runs`` (empty when none has a note), to append to a cell."""
        found = []
        for run in runs:
            key = str(run.path)
            if key not in self._marks:
                notes = run_notes(run)
                if not notes:
                    continue
                mark = str(len(self._marks) + 1).translate(_SUPERSCRIPTS)
                self._marks[key] = (mark, f"{mark} {run.label} on {run.cohort} ({run.path}): {'; '.join(notes)}")
            found.append(self._marks[key][0])
        return (" " + "".join(sorted(set(found), key=found.index))) if found else ""

    def cell(self, text: str, run: "Run") -> str:
        """A run's cell: ``text`` (``n/a`` when empty: the number is undefined) and the run's marks."""
        return (text or NOT_AVAILABLE) + self.of(run)

    def footnotes(self) -> str:
        """The notes under the table, one line per marked run ("" when none)."""
        return "\n".join(text for _, text in self._marks.values())


def notes_column(runs: list["Run"]) -> list[str]:
    """The ``notes`` column of a long table: one text per run ("" for a full run)."""
    return ["; ".join(run_notes(r)) for r in runs]


def mark_rows(shown: "pd.DataFrame", runs: Sequence["Run"]) -> "pd.DataFrame":
    """Mark the ``Model`` cell of a table with one row per run (in ``runs`` order); the notes go to
    ``shown.attrs["footnotes"]``, which the report prints under the table."""
    marks = Marks()
    shown["Model"] = [f"{label}{marks.of(r)}" for label, r in zip(shown["Model"], runs)]
    shown.attrs["footnotes"] = marks.footnotes()
    return shown
