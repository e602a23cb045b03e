"""Output folders: refuse what is not ours, and delete only what we wrote.

Every command that writes a folder (``cv``, ``report``, ``synth``, ``import-tcga``)
leaves a marker file :data:`MARKER` in it, written by the tool itself, that says which
command wrote the folder. The files a command writes are fixed by its :class:`OutputKind`
(name patterns defined here, in code: editing the marker cannot widen them).

* A new or empty ``--out`` is used as it is.
* A non-empty ``--out`` without the marker, or with another command's marker, is refused
  (nothing is deleted).
* ``--overwrite`` on a folder with the right marker deletes the files that match the
  command's patterns, and refuses (deleting nothing) when the folder holds any other
  file: those were not written by survmamba.

>>> import tempfile
>>> d = Path(tempfile.mkdtemp()) / "rep"
>>> check_out_dir(d, REPORT)
'new'
>>> claim_out_dir(d, REPORT); _ = (d / "report.md").write_text("x")
>>> check_out_dir(d, REPORT, overwrite=True)
'ours'
>>> _ = (d / "notes.txt").write_text("mine")
>>> try:
...     check_out_dir(d, REPORT, overwrite=True)
... except UserError as err:
...     print(str(err).split(";")[0])
--out ...rep: holds 1 file(s) that survmamba report did not write (notes.txt)
"""
from __future__ import annotations

import fnmatch
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from survmamba_lite.errors import UserError
from survmamba_lite.utils.io import TMP_SUFFIX, atomic_write_text

__all__ = ["MARKER", "OutputKind", "marker_kind", "CV_RUN", "GRID", "REPORT", "COHORT", "TILES", "FEATURES", "EXPLAIN", "check_incremental_dir", "check_out_dir", "claim_out_dir",
           "clear_out_dir", "check_out_file", "check_folder_creatable", "foreign_files", "staging_dir", "publish_dir", "discard_dir"]

MARKER = ".survmamba-outputs.json"


@dataclass(frozen=True)
class OutputKind:
    """The files one command writes into its output folder.

    Attributes:
        name: kind recorded in the marker (``cv-run``, ``report``, ``cohort``).
        command: the command(s) that write it, for messages.
        what: what such a folder is, for messages (``a run directory``).
        patterns: ``fnmatch`` patterns of the relative paths (``/``-separated) it writes;
            a temporary ``<name>.<pid>.tmp`` of any of them is covered too.
    """

    name: str
    command: str
    what: str
    patterns: tuple[str, ...]

    def owns(self, rel: str) -> bool:
        if rel == MARKER:
            return True
        if rel.endswith(TMP_SUFFIX):            # <file>.tmp or <file>.<pid>.tmp
            stem = rel[: -len(TMP_SUFFIX)]
            base, _, pid = stem.rpartition(".")
            rel = base if pid.isdigit() else stem
        return any(fnmatch.fnmatchcase(rel, p) for p in self.patterns)


_FOLD_FILES = ("split.json", "preprocessing.json", "checkpoint*.pt", "predictions.csv", "metrics.json", "DONE")
CV_RUN = OutputKind("cv-run", "survmamba cv", "a run directory", (
    "config.json", "summary.json", "oof_predictions.csv", "splits/fold_*.csv",
    *(f"fold_*/{f}" for f in _FOLD_FILES)))
REPORT = OutputKind("report", "survmamba report", "a report folder", (
    "report.md", "table1_cindex.*", "table2_complexity.*", "table3_ablation.*", "metrics_extra.*",
    "random_risk.*", "optimism_gap.*", "calibration.*", "fig3_bidirectional.*", "fig4_km_*.png", "fig4_km_*.svg",
    "fig4_km_logrank.csv"))
TILES = OutputKind("tiles", "survmamba tile", "a tiles folder", ("*.coords.h5", "*.overview.png"))
FEATURES = OutputKind("features", "survmamba extract", "a features folder", ("*.h5",))
COHORT = OutputKind("cohort", "survmamba synth / import-tcga", "a cohort folder", (
    "manifest.yaml", "clinical.csv", "rna.csv", "hierarchy.tsv", "splits/fold_*.csv", "features/*.h5",
    "synthetic_truth.csv", "synthetic_regions.csv"))
GRID = OutputKind("grid", "survmamba grid", "a grid folder", (
    "grid.json", "jobs.jsonl", "timing.csv", "timing.md", "logs/*.log", f"runs/*/*/{MARKER}",
    *(f"runs/*/*/{p}" for p in CV_RUN.patterns)))
EXPLAIN = OutputKind("explain", "survmamba explain", "an explanation folder", (
    "patches.csv", "regions.csv", "functions.csv", "processes.csv", "explanation.h5", "summary.json",
    "heatmap.png", "heatmap_ig.png"))


def _files(root: Path) -> list[str]:
    out = []
    for dirpath, _, names in os.walk(root):
        for n in names:
            out.append((Path(dirpath) / n).relative_to(root).as_posix())
    return sorted(out)


def marker_kind(root: Path) -> str | None:
    """The kind of output (``OutputKind.name``) the marker in ``root`` records; None without a readable
    marker written by survmamba."""
    try:
        data = json.loads((root / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("kind") if isinstance(data, dict) and data.get("written_by") == "survmamba" else None


def foreign_files(root: str | os.PathLike, kind: OutputKind) -> list[str]:
    """Files under ``root`` that ``kind`` does not write (relative paths)."""
    return [f for f in _files(Path(root)) if not kind.owns(f)]


def _listed(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def check_folder_creatable(path: str | os.PathLike, flag: str = "--out") -> None:
    """``path`` must be a folder, or creatable: its nearest existing ancestor a writable folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path}: exists and is a file, not a folder; choose another {flag}")
    parent = path
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise UserError(f"{flag} {path}: {parent} is a file, not a folder, so {path} cannot be created; "
                        f"choose another {flag}")
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path}: no permission to write in {parent}; choose a writable {flag}")


def check_out_dir(path: str | os.PathLike, kind: OutputKind, *, overwrite: bool = False, resume: bool = False,
                  flag: str = "--out") -> str:
    """Check an output folder before anything is written; raise :class:`UserError` when it cannot be used.

    Returns:
        ``"new"`` (absent or empty) or ``"ours"`` (holds ``kind``'s marker; allowed only
        with ``resume`` or ``overwrite``; with ``overwrite`` also only ``kind``'s files).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path}: exists and is a file, not a folder; choose another {flag}")
    if not path.exists():
        check_folder_creatable(path, flag)
        return "new"
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path}: no permission to write in this folder; choose a writable {flag}")
    if not any(path.iterdir()):
        return "new"
    found = marker_kind(path)
    if found is None:
        raise UserError(f"{flag} {path}: folder is not empty and is not {kind.what} written by {kind.command} (it "
                        f"has no {MARKER}); choose a new or empty {flag} (nothing was deleted)")
    if found != kind.name:
        raise UserError(f"{flag} {path}: folder holds the output of another survmamba command ({found}), not of "
                        f"{kind.command}; choose a new or empty {flag} (nothing was deleted)")
    if overwrite:
        foreign = foreign_files(path, kind)
        if foreign:
            raise UserError(f"{flag} {path}: holds {len(foreign)} file(s) that {kind.command} did not write "
                            f"({_listed(foreign)}); --overwrite deletes only survmamba's own files, so nothing was "
                            f"deleted: move those files away or choose a new {flag}")
        return "ours"
    if resume:
        return "ours"
    raise UserError(f"{flag} {path}: holds an earlier output of {kind.command}; add --overwrite to replace it "
                    f"(only its own files are deleted) or choose a new {flag}")


def claim_out_dir(path: str | os.PathLike, kind: OutputKind) -> None:
    """Create the folder (and parents) and write the marker, unless it is already there."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if marker_kind(path) != kind.name:
        from survmamba_lite.version import __version__

        atomic_write_text(path / MARKER, json.dumps({
            "written_by": "survmamba", "kind": kind.name, "command": kind.command, "version": __version__,
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "note": "survmamba --overwrite deletes only files of this folder that match these patterns",
            "patterns": list(kind.patterns)}, indent=1) + "\n")


def clear_out_dir(path: str | os.PathLike, kind: OutputKind, flag: str = "--out") -> int:
    """Delete ``kind``'s files under ``path`` (checked first: nothing else may be there).

    Empty sub-folders left behind are removed; the folder and its marker stay.
    Returns the number of files deleted.
    """
    path = Path(path)
    check_out_dir(path, kind, overwrite=True, flag=flag)
    n = 0
    for rel in _files(path):
        if rel != MARKER:
            (path / rel).unlink()
            n += 1
    for dirpath, _dirnames, _filenames in sorted(os.walk(path, topdown=False), key=lambda t: -len(t[0])):
        if Path(dirpath) != path and not os.listdir(dirpath):
            os.rmdir(dirpath)
    return n


def check_incremental_dir(path: str | os.PathLike, kind: OutputKind, flag: str = "--out") -> None:
    """Check a folder that a command fills file by file and resumes (``tile``, ``extract``).

    It may be new, empty or hold files of the kind the command writes (an earlier call's,
    which are skipped); a folder holding anything else is refused.
    """
    path = Path(path)
    check_folder_creatable(path, flag)
    if path.is_dir():
        foreign = [f for f in foreign_files(path, kind) if "/" not in f]
        if foreign:
            raise UserError(f"{flag} {path}: folder holds {len(foreign)} file(s) that {kind.command} does not write "
                            f"({_listed(foreign)}); choose a new or empty {flag}, or a folder of earlier "
                            f"{kind.command} output")


def check_out_file(path: str | os.PathLike, *, overwrite: bool, header: tuple[str, ...] | None = None,
                   sep: str = "\t", flag: str = "--out") -> None:
    """Check a single output file before anything is written.

    An existing file is refused unless ``overwrite``; with ``overwrite`` it is replaced
    only when its first line holds the column names ``header`` that this command writes
    (so ``--overwrite`` never replaces a file of another kind).
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a folder; give a file name")
    if not path.exists():
        check_folder_creatable(path.parent, flag)
        return
    if not overwrite:
        raise UserError(f"{flag} {path}: file exists; add --overwrite to replace it or choose another {flag}")
    if header is not None:
        try:
            with open(path, encoding="utf-8") as fh:
                first = fh.readline().rstrip("\n").split(sep)
        except (OSError, UnicodeDecodeError):
            first = []
        if any(h not in first for h in header):
            raise UserError(f"{flag} {path}: exists and is not a file this command writes (its first line lacks "
                            f"the columns {list(header)}); nothing was replaced: choose another {flag}")
    if not os.access(path, os.W_OK):
        raise UserError(f"{flag} {path}: no permission to replace this file; choose another {flag}")


def staging_dir(path: str | os.PathLike, kind: OutputKind) -> Path:
    """A fresh, marked staging folder ``.<name>.partial`` beside ``path``, to be renamed onto
    ``path`` by :func:`publish_dir` when every file is written.

    A staging folder left by a killed earlier call is removed first (only when it holds
    nothing but ``kind``'s files; otherwise it is refused).
    """
    path = Path(path).resolve()
    stage = path.parent / f".{path.name}.partial"
    if stage.exists():
        discard_dir(stage, kind, flag="staging folder")
    claim_out_dir(stage, kind)
    return stage


def publish_dir(stage: Path, path: str | os.PathLike) -> Path:
    """Rename the finished staging folder onto ``path`` (absent or empty): all or nothing."""
    path = Path(path)
    os.replace(stage, path)
    return path


def discard_dir(path: str | os.PathLike, kind: OutputKind, flag: str = "--out") -> None:
    """Delete a folder written by ``kind`` (its files, its marker, then the emptied folders).

    Refuses, deleting nothing, when it holds files ``kind`` does not write or has no marker.
    """
    path = Path(path)
    if any(path.iterdir()) and marker_kind(path) != kind.name:
        raise UserError(f"{flag} {path}: exists and is not {kind.what} written by {kind.command}; move it away "
                        "(nothing was deleted)")
    foreign = foreign_files(path, kind)
    if foreign:
        raise UserError(f"{flag} {path}: holds {len(foreign)} file(s) that {kind.command} did not write "
                        f"({_listed(foreign)}); move them away (nothing was deleted)")
    for rel in _files(path):
        if rel != MARKER:
            (path / rel).unlink()
    (path / MARKER).unlink(missing_ok=True)
    for dirpath, _, _ in sorted(os.walk(path, topdown=False), key=lambda t: -len(t[0])):
        if not os.listdir(dirpath):
            os.rmdir(dirpath)
