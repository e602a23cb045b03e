"""The grid folder of ``survmamba grid``: whose it is, and where a failed job's traceback goes.

A grid folder (layout in :mod:`~survmamba_lite.experiment.grid`) carries the marker of
:data:`~survmamba_lite.utils.outputs.GRID`. :func:`check_grid_dir` decides whether a
folder may be used as one before anything is written:

* ``exclusive=True`` (the ``grid`` command): the folder must be new, empty, a grid folder
  (marked, or an unmarked one written before markers, holding nothing but a grid's files),
  as ``cv`` and ``report`` require of theirs. A cohort folder, a run folder of ``cv`` or a
  folder holding the user's own files is refused, and nothing is written.
* ``exclusive=False`` (the library call :func:`~survmamba_lite.experiment.grid.run_grid`,
  which the training notebook points at a work folder that also holds its cohort and the
  notebook's own output): the folder may hold other files, but not another command's
  output (a cohort, a run), and not a file of the names the grid writes (``grid.json``,
  ``jobs.jsonl``, ``timing.csv``, ``timing.md``, ``logs/``) that the grid did not write.

Either way the grid never writes over a file it did not write.

A failed job's traceback is written to ``logs/<cohort>__<model>__fold_<k>.log``
(:func:`write_job_log`); the command prints one line per failed job.

>>> import tempfile
>>> mine = Path(tempfile.mkdtemp())
>>> _ = (mine / "timing.md").write_text("my notes")
>>> check_grid_dir(mine / "new", exclusive=True), check_grid_dir(mine, exclusive=False)
Traceback (most recent call last):
...
survmamba_lite.errors.UserError: --out ...: holds timing.md, which survmamba grid writes but did not write here ...
>>> job_log_path("grid", "runs/blca/snn", 2).as_posix()
'grid/logs/blca__snn__fold_2.log'
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Sequence

from survmamba_lite.errors import UserError
from survmamba_lite.experiment.runfiles import CONFIG, GRID, JOBS, SUMMARY, TIMING
from survmamba_lite.utils.io import atomic_write_text
from survmamba_lite.utils.outputs import GRID as GRID_KIND
from survmamba_lite.utils.outputs import MARKER, check_folder_creatable, check_out_dir, foreign_files, marker_kind

__all__ = ["check_grid_dir", "is_grid_description", "job_log_path", "write_job_log", "expand_run_dirs", "LOGS"]

#: the folder of failed jobs' tracebacks
LOGS = "logs"
_OWN_NAMES = (GRID, JOBS, TIMING, "timing.md", LOGS)


def is_grid_description(path: str | os.PathLike) -> bool:
    """Whether ``path/grid.json`` is a grid description written by ``survmamba grid`` (a JSON object
    whose ``runs`` lists run folders, each absent or holding a ``config.json``)."""
    path = Path(path)
    try:
        data = json.loads((path / GRID).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    runs = data.get("runs") if isinstance(data, dict) else None
    return isinstance(runs, list) and all(
        isinstance(r, str) and (not (path / r).exists() or (path / r / CONFIG).is_file()) for r in runs)


def check_grid_dir(out: str | os.PathLike, *, exclusive: bool, flag: str = "--out") -> str:
    """Check ``out`` as a grid folder (see the module docstring); ``"new"`` or ``"ours"``.

    Raises :class:`UserError` naming the folder, what is in the way and the fix.
    """
    out = Path(out)
    check_folder_creatable(out, flag)
    if not out.is_dir() or not any(out.iterdir()):
        return "new"
    kind = marker_kind(out)
    if kind == GRID_KIND.name:
        return "ours"
    legacy = kind is None and is_grid_description(out)
    if exclusive:
        if legacy and not foreign_files(out, GRID_KIND):
            return "ours"
        return check_out_dir(out, GRID_KIND, resume=True, flag=flag)        # refuses, naming the reason
    if kind is not None:
        raise UserError(f"{flag} {out}: folder holds the output of another survmamba command ({kind}), not of "
                        f"survmamba grid; choose a new or empty {flag} (nothing was written)")
    if legacy:
        return "ours"
    for name, what in ((CONFIG, "a run folder of `survmamba cv`"), ("manifest.yaml", "a cohort folder")):
        if (out / name).is_file():
            raise UserError(f"{flag} {out}: holds {name}, as {what} does; a grid writes its own folder: choose a "
                            f"new or empty {flag} (nothing was written)")
    mine = [n for n in _OWN_NAMES if (out / n).exists()]
    if mine:
        raise UserError(f"{flag} {out}: holds {', '.join(mine)}, which survmamba grid writes but did not write "
                        f"here (the folder has no {MARKER}); they are left alone: choose a new or empty {flag}")
    return "new"


def job_log_path(out: str | os.PathLike, run_rel: str, fold: int) -> Path:
    """``out/logs/<run folder relative to out, '/' as '__'>__fold_<k>.log``."""
    stem = "__".join(p for p in Path(run_rel).parts if p not in ("runs", "..", "."))
    return Path(out) / LOGS / f"{stem}__fold_{fold}.log"


def write_job_log(out: str | os.PathLike, run_rel: str, fold: int, text: str) -> Path:
    """Write a failed job's traceback (atomically); returns the file."""
    return atomic_write_text(job_log_path(out, run_rel, fold), text)


def expand_run_dirs(paths: Sequence[str | Path], log: Callable[[str], None] | None = None) -> list[Path]:
    """Run directories from run directories and grid folders (a grid gives its finished runs).

    A folder holding ``grid.json`` is replaced by the run directories it lists (relative
    to the grid folder) that hold a ``summary.json``; unfinished runs are named through
    ``log`` and left out.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if (p / GRID).is_file():
            runs = [p / r for r in json.loads((p / GRID).read_text(encoding="utf-8")).get("runs", [])]
            done = [d for d in runs if (d / SUMMARY).is_file()]
            if log is not None and len(done) < len(runs):
                log(f"{p}: {len(runs) - len(done)} unfinished run(s) left out: "
                    + ", ".join(os.path.relpath(d, p) for d in runs if d not in done))
            if not done:
                raise ValueError(f"{p}: the grid has no finished run yet; rerun the same `survmamba grid` command "
                                 "to finish it")
            out += [Path(os.path.normpath(d)) for d in done]
        else:
            out.append(p)
    return out
