r"""``survmamba import-features``: CLAM or TRIDENT patch features into a cohort's ``features/``.

For every slide of the cohort's ``clinical.csv`` that has a file in ``SRC`` (CLAM's
``h5_files/`` or ``pt_files/``, TRIDENT's ``features_<encoder>/``; formats in
:mod:`.features_sources`), :func:`import_features` writes ``features/<slide_id>.h5``
(:mod:`.features_h5`): features as float32 (TRIDENT's float16 widened exactly), level-0
coordinates as int64, and the region of every patch.

Regions
    The paper's region is 4,096 px at 20x (about 2 mm). On a slide scanned at level-0
    magnification :math:`M_0` that is :math:`R_0 = 4096 \cdot M_0 / 20` level-0 pixels:
    4,096 at 20x, **8,192 at 40x** (the same tissue; the patches keep the size their tool
    gave them). Regions tile the slide from level-0 ``(0, 0)``; a patch belongs to the
    region holding its centre,

    .. math:: r_x = \lfloor (x + p_0/2) / R_0 \rfloor,\quad r_y = \lfloor (y + p_0/2) / R_0 \rfloor,

    with :math:`p_0` the patch side in level-0 pixels, and regions are numbered
    ``0..R-1`` row-major (by :math:`r_y`, then :math:`r_x`). For a grid aligned at
    ``(0, 0)`` (ours, TRIDENT's) the centre and the top-left corner give the same region;
    CLAM's grid starts at each tissue contour's bounding box, so a patch may straddle two
    regions and the centre decides.

Where the geometry comes from
    TRIDENT's files state :math:`M_0` (``level0_magnification``) and :math:`p_0`
    (``patch_size_level0``); CLAM's ``patches/`` files state :math:`p_0` (``patch_size *
    int(downsample)``) but never :math:`M_0`. ``--magnification`` (one number, or a CSV of
    ``slide_id, magnification`` for cohorts that mix 20x and 40x scans) and
    ``--patch-size-level0`` say it where no file does; a flag that contradicts a file is refused.
    The magnification the patch pixels stand for (recorded as the features file's
    ``magnification``) is TRIDENT's ``target_magnification``, else the table's optional
    ``patch_magnification`` column, else :math:`M_0` / CLAM's level downsample.

Slides per case
    ``clinical.csv`` joins a case's slides with ``;``. ``slides="all"`` imports them all (the
    bag holds the regions of slide 1, then slide 2, ...); ``slides="first"`` only the first
    listed (e.g. keep the ``DX1`` slide). The rule, and the slides that had no file or no
    patch, are recorded in ``manifest.yaml`` (``features.slides``, ``features.missing``) and
    honoured by :meth:`~survmamba_lite.data.layout.Cohort.slide_ids`.

Nothing is half-written: slides are written to a staging folder that replaces ``features/``
only when every slide passed. A slide that cannot be imported is one line naming the slide
and the fix, and all of them are listed at once.

>>> assign_regions(np.array([[0, 0], [3840, 0], [4096, 0], [0, 8192]]), 256, 4096).tolist()
[0, 0, 1, 2]
>>> region_size_level0(40.0), region_size_level0(20.0)
(8192, 4096)
"""
from __future__ import annotations

import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from survmamba_lite.data.features_h5 import SlideFeatures, write_features_h5
from survmamba_lite.data.features_sources import (RawSlide, SlideProblem, SourceSlide, locate_sources,
                                                  read_source_slide)
from survmamba_lite.data.layout import (CLINICAL, FEATURES_DIR, MANIFEST, SPLITS_DIR, make_folds, read_folds,
                                        read_manifest, split_slide_ids, validate_cohort, write_folds,
                                        write_manifest)
from survmamba_lite.errors import UserError
from survmamba_lite.utils.outputs import COHORT, MARKER, OutputKind, discard_dir, marker_kind, staging_dir

__all__ = ["IMPORTED_FEATURES", "ImportedSlide", "ImportReport", "import_features", "assign_regions",
           "region_size_level0", "read_magnification_table", "PAPER_REGION_SIZE", "PAPER_MAGNIFICATION",
           "SLIDE_RULES"]

PAPER_REGION_SIZE, PAPER_MAGNIFICATION = 4096, 20.0
SLIDE_RULES = ("all", "first")
FORMATS = ("auto", "clam", "trident")
#: a cohort's features/ written by import-features (its marker, where the cohort folder has none)
IMPORTED_FEATURES = OutputKind("imported-features", "survmamba import-features", "a features folder", ("*.h5",))
_MAX_LINES = 25


@dataclass
class ImportedSlide:
    """One row of the summary table."""

    slide_id: str
    case_id: str
    patches: int
    regions: int
    source: str
    format: str
    magnification: float
    patch_size_level0: int


@dataclass
class ImportReport:
    """What :func:`import_features` did.

    Attributes:
        slides: the imported slides (summary table rows).
        missing: ``(case_id, slide_id)`` of slides with no file in the source folder.
        empty: ``(case_id, slide_id)`` of slides whose file holds no patch.
        cases_without_slides: cases left with no imported slide.
        unknown_files: feature files in the source folder that belong to no slide of clinical.csv.
        notes: other things worth knowing (patch magnifications, new splits, ...).
    """

    cohort_dir: Path
    source_dir: Path
    rule: str
    width: int
    encoder: str
    slides: list[ImportedSlide]
    missing: list[tuple[str, str]] = field(default_factory=list)
    empty: list[tuple[str, str]] = field(default_factory=list)
    cases_without_slides: list[str] = field(default_factory=list)
    unknown_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    validation: str = ""

    def table(self) -> pd.DataFrame:
        """The summary table: slide, case, patches, regions, source file, format, magnification."""
        return pd.DataFrame([s.__dict__ for s in self.slides],
                            columns=["slide_id", "case_id", "patches", "regions", "source", "format",
                                     "magnification", "patch_size_level0"])

    def summary(self, max_rows: int = 40) -> str:
        """The summary: totals, the table (its first ``max_rows // 2`` rows and last 5 when longer than
        ``max_rows``), slides without a file or a patch, cases left without a slide, notes."""
        t = self.table()
        lines = [f"imported {len(t)} slide(s) into {self.cohort_dir / FEATURES_DIR} (slides: {self.rule}; "
                 f"features {self.width}-d from {self.encoder}; {int(t['patches'].sum()) if len(t) else 0} patches "
                 f"in {int(t['regions'].sum()) if len(t) else 0} regions)"]
        if len(t):
            show = t.rename(columns={"slide_id": "slide", "magnification": "mag", "patch_size_level0": "patch_l0"})
            show = show.assign(source=[Path(s).name for s in show["source"]])
            if len(show) > max_rows:
                head, tail = show.head(max_rows // 2).to_string(index=False), show.tail(5).to_string(index=False)
                lines += [head, f"... ({len(show) - max_rows // 2 - 5} more slides)",
                          "\n".join(tail.splitlines()[1:])]
            else:
                lines.append(show.to_string(index=False))
        for what, items in (("no source file", self.missing), ("no patch (empty slide)", self.empty)):
            if items:
                listed = ", ".join(f"{s} (case {c})" for c, s in items[:_MAX_LINES])
                more = f" and {len(items) - _MAX_LINES} more" if len(items) > _MAX_LINES else ""
                lines.append(f"{len(items)} slide(s) of clinical.csv with {what}, left out of the bags: {listed}{more}")
        if self.cases_without_slides:
            c = self.cases_without_slides
            lines.append(f"warning: {len(c)} case(s) have no imported slide: {', '.join(c[:_MAX_LINES])}"
                         f"{' ...' if len(c) > _MAX_LINES else ''}; give their feature files and rerun with "
                         "--overwrite, or drop the cases from clinical.csv and splits/")
        if self.unknown_files:
            u = self.unknown_files
            lines.append(f"{len(u)} file(s) in {self.source_dir} belong to no slide of clinical.csv (e.g. "
                         f"{', '.join(u[:3])})")
        lines += [f"note: {n}" for n in self.notes]
        if self.validation:
            lines.append(self.validation)
        return "\n".join(lines)


# --------------------------------------------------------------------------- geometry
def region_size_level0(level0_magnification: float, region_size: int = PAPER_REGION_SIZE,
                       region_magnification: float = PAPER_MAGNIFICATION) -> int:
    """Level-0 side of a region of ``region_size`` px at ``region_magnification``: ``round(region_size * M0 / M)``."""
    return int(round(region_size * float(level0_magnification) / float(region_magnification)))


def assign_regions(coords: np.ndarray, patch_size_level0: int, region_size_l0: int) -> np.ndarray:
    """Region of every patch: the ``region_size_l0`` grid cell holding its centre, numbered row-major.

    Args:
        coords: ``(P, 2)`` level-0 top-left ``(x, y)``.
        patch_size_level0: patch side ``p0`` in level-0 pixels.
        region_size_l0: region side ``R0`` in level-0 pixels.

    Returns:
        ``(P,)`` int64 region index in ``0..R-1``, ordered by region row, then column.
    """
    centre = np.asarray(coords, np.int64) + int(patch_size_level0) // 2
    cell = centre // int(region_size_l0)                        # (P, 2) = (r_x, r_y)
    if cell.shape[0] == 0:
        return np.zeros(0, np.int64)
    key = cell[:, 1] * (int(cell[:, 0].max()) + 1) + cell[:, 0]  # row-major over (r_y, r_x)
    _, region = np.unique(key, return_inverse=True)
    return region.reshape(-1).astype(np.int64)


def read_magnification_table(path: str | os.PathLike) -> tuple[dict[str, float], dict[str, float]]:
    """``({slide_id: level-0 magnification}, {slide_id: patch magnification})`` from a CSV with columns
    ``slide_id, magnification`` and optionally ``patch_magnification`` (the magnification the patch
    pixels stand for, e.g. 20 for 512-px reads of a 40x scan; ``slides.csv`` of an export has both)."""
    from survmamba_lite.data.wsi.tiling import slide_id_from_path

    path = Path(path)
    try:
        df = pd.read_csv(path, dtype={"slide_id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise UserError(f"--magnification {path}: not a readable CSV ({err}); give a number or a CSV with columns "
                        "slide_id, magnification") from None
    if not {"slide_id", "magnification"} <= set(df.columns):
        raise UserError(f"--magnification {path}: columns {list(df.columns)[:5]}; the table needs slide_id and "
                        "magnification (the level-0 magnification of each slide, e.g. 20 or 40)")
    mag = pd.to_numeric(df["magnification"], errors="coerce")
    bad = df.loc[~(mag > 0), "slide_id"].tolist()
    if bad:
        raise UserError(f"--magnification {path}: slide {bad[0]} has magnification {df.loc[~(mag > 0), 'magnification'].iloc[0]!r}; "
                        "give a positive number for every slide")
    ids = [slide_id_from_path(str(s).strip()) for s in df["slide_id"]]
    pmag = {}
    if "patch_magnification" in df.columns:
        pm = pd.to_numeric(df["patch_magnification"], errors="coerce")
        pmag = {s: float(m) for s, m in zip(ids, pm) if m > 0}
    return dict(zip(ids, map(float, mag))), pmag


# --------------------------------------------------------------------------- one slide
def _geometry(raw: RawSlide, sid: str, magnification, patch_size: int | None,
              patch_magnification: Mapping[str, float] | None = None) -> tuple[float, int, float]:
    """``(level-0 magnification, patch side in level-0 px, patch magnification)`` of one slide."""
    given = magnification.get(sid) if isinstance(magnification, Mapping) else magnification
    l0 = raw.level0_magnification
    if l0 is not None and given is not None and abs(float(given) - l0) > 1e-6:
        raise SlideProblem(sid, f"--magnification says {float(given):g}x but its file says level-0 magnification "
                                f"{l0:g}x", "drop --magnification for slides whose files state it")
    l0 = l0 if l0 is not None else (None if given is None else float(given))
    if l0 is None:
        raise SlideProblem(sid, "the level-0 (scan) magnification is unknown (CLAM's files do not store it)",
                           "give --magnification 20 or 40, or a CSV of slide_id, magnification")
    p0 = raw.patch_size_level0
    if p0 is not None and patch_size is not None and int(patch_size) != p0:
        raise SlideProblem(sid, f"--patch-size-level0 says {patch_size} but its patch file says {p0}",
                           "drop --patch-size-level0 where --patches-dir gives the patch files")
    p0 = p0 if p0 is not None else patch_size
    if p0 is None:
        raise SlideProblem(sid, "the patch size is unknown (CLAM's h5_files and .pt files do not store it)",
                           "give --patches-dir (CLAM's patches/ folder) or --patch-size-level0 N")
    given_p = (patch_magnification or {}).get(sid)
    pmag = raw.patch_magnification
    if pmag is not None and given_p is not None and abs(given_p - pmag) > 1e-6:
        raise SlideProblem(sid, f"the magnification table says patch magnification {given_p:g}x but its file says "
                                f"{pmag:g}x", "drop the patch_magnification column for slides whose files state it")
    if pmag is None:
        pmag = given_p if given_p is not None else l0 / raw.patch_downsample
    return l0, int(p0), float(pmag)


def _check_values(raw: RawSlide, sid: str, where: Path) -> None:
    finite = np.isfinite(raw.features)
    if not finite.all():
        bad = int((~finite).any(axis=1).sum())
        raise SlideProblem(sid, f"{where}: {bad} of {raw.features.shape[0]} feature rows hold NaN or Inf"
                                + (" (float16 overflow?)" if raw.features.dtype == np.float16 else ""),
                           "re-extract this slide (in float32)")
    c = raw.coords
    key = c[:, 1] * (int(c[:, 0].max()) + 1) + c[:, 0]
    uniq, counts = np.unique(key, return_counts=True)
    if uniq.size != key.size:
        first = int(np.flatnonzero(np.isin(key, uniq[counts > 1]))[0])
        raise SlideProblem(sid, f"{where}: {key.size - uniq.size} patch(es) repeat another patch's coordinates "
                                f"(e.g. ({c[first, 0]}, {c[first, 1]}))",
                           "the file holds two runs appended to each other: re-extract this slide into a new file")


# --------------------------------------------------------------------------- cohort folder
def _check_features_dir(root: Path, overwrite: bool) -> bool:
    """Refuse an existing ``features/`` unless ``overwrite`` and it is survmamba's; True when it holds files."""
    d = root / FEATURES_DIR
    if d.exists() and not d.is_dir():
        raise UserError(f"{d}: is a file, not the cohort's features folder; move it away")
    files = [p for p in d.rglob("*") if p.is_file() or p.is_symlink()] if d.is_dir() else []
    files = [p for p in files if p.name != MARKER]
    if not files:
        return False
    if not overwrite:
        raise UserError(f"{d}: holds {len(files)} feature file(s) already; add --overwrite to replace them (only "
                        "survmamba's .h5 files are deleted) or import into another cohort folder")
    ours = marker_kind(d) == IMPORTED_FEATURES.name or marker_kind(root) == COHORT.name
    if not ours:
        raise UserError(f"{d}: was not written by survmamba (neither it nor {root} has a {MARKER}); --overwrite "
                        "deletes only survmamba's files, so nothing was deleted: move the folder away")
    foreign = sorted(p.relative_to(d).as_posix() for p in files if not IMPORTED_FEATURES.owns(p.relative_to(d).as_posix()))
    if foreign:
        raise UserError(f"{d}: holds {len(foreign)} file(s) that survmamba did not write ({', '.join(foreign[:5])}); "
                        "--overwrite deletes only survmamba's .h5 files, so nothing was deleted: move them away")
    return True


def _read_clinical(root: Path) -> pd.DataFrame:
    path = root / CLINICAL
    if not path.is_file():
        raise UserError(f"{path}: no clinical.csv in the cohort folder; write it first (columns case_id, slide_id, "
                        "survival_months, event; see data_manifests/README.md) or make the cohort with "
                        "`survmamba import-tcga`")
    try:
        df = pd.read_csv(path, dtype={"case_id": str, "slide_id": str}, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not a readable CSV ({err}); rewrite it as comma-separated text") from None
    missing = [c for c in ("case_id", "slide_id") if c not in df.columns]
    if missing:
        raise UserError(f"{path}: no column(s) {missing}; clinical.csv needs case_id and slide_id (slides of a case "
                        "joined by ';')")
    return df


def _slides_by_case(clinical: pd.DataFrame, rule: str) -> list[tuple[str, str]]:
    pairs = []
    for cid, cell in zip(clinical["case_id"].astype(str).str.strip(), clinical["slide_id"]):
        slides = split_slide_ids(cell)
        pairs += [(cid, s) for s in (slides[:1] if rule == "first" else slides)]
    return pairs


def _update_manifest(root: Path, clinical: pd.DataFrame, features: dict, command: str | None,
                     notes: list[str]) -> None:
    if (root / MANIFEST).is_file():
        man = read_manifest(root)
        mods = [m for m in ("wsi", "rna") if m == "wsi" or m in (man.get("modalities") or [])]
        man["modalities"] = mods
        man["features"] = features
        if command:
            man["features_imported_by"] = command
    else:
        folds = read_folds(root) if (root / SPLITS_DIR).is_dir() else []
        if not folds:
            try:
                folds = make_folds(clinical, k=min(5, len(clinical)), seed=0)
            except ValueError as err:
                raise UserError(f"{root / CLINICAL}: cannot make cross-validation folds ({err}); write "
                                "splits/fold_{k}.csv yourself (columns train, val)") from None
            write_folds(root, folds)
            notes.append(f"no manifest.yaml and no splits/: wrote {len(folds)} stratified folds to {root / SPLITS_DIR} "
                         "(make_folds, seed 0; fewer than 5 only for fewer than 5 cases)")
        ev = pd.to_numeric(clinical.get("event", pd.Series(dtype=float)), errors="coerce")
        man = {"format_version": 1, "name": root.name, "cohort": root.name.upper(), "source": "import-features",
               "n_cases": int(len(clinical)), "n_folds": len(folds), "modalities": ["wsi"], "features": features,
               "event_definition": "event = 1 death observed, 0 censored",
               "censored_fraction": None if ev.isna().all() else round(float(1 - ev.mean()), 3)}
        if command:
            man["created_by"] = command
        notes.append(f"wrote {root / MANIFEST} (modalities [wsi])")
    write_manifest(root, man)


# --------------------------------------------------------------------------- the import
def import_features(src: str | os.PathLike, cohort_dir: str | os.PathLike, *, fmt: str = "auto",
                    patches_dir: str | os.PathLike | None = None, patch_size_level0: int | None = None,
                    magnification: float | Mapping[str, float] | None = None,
                    patch_magnification: Mapping[str, float] | None = None, slides: str = "all",
                    strict: bool = False, overwrite: bool = False, encoder: str | None = None,
                    region_size: int = PAPER_REGION_SIZE, command: str | None = None) -> ImportReport:
    """Write ``cohort_dir/features/<slide_id>.h5`` for every slide of its ``clinical.csv`` found in ``src``.

    Args:
        src: CLAM's ``h5_files/`` or ``pt_files/``, or TRIDENT's ``features_<encoder>/``.
        cohort_dir: the cohort folder (holds ``clinical.csv``; ``manifest.yaml`` is updated,
            or written with modality ``wsi`` and 5 folds when absent).
        fmt: ``auto`` (TRIDENT when the coordinates carry its attributes, else CLAM), ``clam``, ``trident``.
        patches_dir: the patching step's folder (CLAM ``patches/``; TRIDENT's default: ``src/../patches``).
        patch_size_level0: patch side in level-0 pixels, where no file states it.
        magnification: level-0 magnification (one number or ``{slide_id: M0}``), where no file states it.
        patch_magnification: ``{slide_id: M}``, the magnification the patch pixels stand for, where no
            file states it (default: ``M0 / downsample`` of CLAM's patch level).
        slides: ``all`` slides of a case, or the ``first`` listed.
        strict: slides without a source file, or without a patch, are an error.
        overwrite: replace an existing ``features/`` (survmamba's .h5 files only).
        encoder: the encoder's name, for CLAM files (which do not record it).
        region_size: region side in pixels at 20x (the paper's 4,096).
        command: the command line, recorded in the manifest.
    """
    src, root = Path(src), Path(cohort_dir)
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    if slides not in SLIDE_RULES:
        raise UserError(f"--slides {slides}: choose all or first")
    if not src.is_dir():
        raise UserError(f"{src}: no such folder; give SRC as CLAM's h5_files/ or pt_files/, or TRIDENT's "
                        "features_<encoder>/")
    for sub in ("h5_files", "pt_files"):
        if (src / sub).is_dir() and not any(src.glob("*.h5")) and not any(src.glob("*.pt")):
            raise UserError(f"{src}: looks like CLAM's feature folder; give SRC as {src / sub}")
    feats = sorted(p.name for p in src.glob("features_*") if p.is_dir()) + sorted(
        p.relative_to(src).as_posix() for p in src.glob("*/features_*") if p.is_dir())
    if feats and not any(src.glob("*.h5")) and not any(src.glob("*.pt")):
        raise UserError(f"{src}: looks like a TRIDENT job folder; give SRC as one of its features_<encoder>/ "
                        f"folders ({', '.join(feats[:3])})")
    if patches_dir is not None and not Path(patches_dir).is_dir():
        raise UserError(f"--patches-dir {patches_dir}: no such folder")
    if not root.is_dir():
        raise UserError(f"{root}: no such cohort folder; create it with clinical.csv first")
    if root.resolve() in (src.resolve(), *src.resolve().parents):
        raise UserError(f"{src}: lies inside the cohort folder {root}; keep the source features outside it")
    for flag, v in (("--patch-size-level0", patch_size_level0), ("--region-size", region_size)):
        if v is not None and int(v) < 1:
            raise UserError(f"{flag} {v}: must be a positive number of pixels")
    if isinstance(magnification, (int, float)) and not magnification > 0:
        raise UserError(f"--magnification {magnification}: must be a positive number (e.g. 20 or 40)")
    had_features = _check_features_dir(root, overwrite)
    clinical = _read_clinical(root)
    pairs = _slides_by_case(clinical, slides)
    if not pairs:
        raise UserError(f"{root / CLINICAL}: lists no slide in column slide_id; fill it with the slide ids "
                        "(file names without extension)")
    case_of = {s: c for c, s in pairs}
    try:
        found, unknown = locate_sources(src, [s for _, s in pairs], fmt, patches_dir)
    except SlideProblem as err:
        raise UserError(str(err)) from None
    missing = [(c, s) for c, s in pairs if s not in found]
    if strict and missing:
        raise UserError(_problem_text(f"{len(missing)} slide(s) of {root / CLINICAL} have no file in {src} "
                                      "(--strict)", [f"slide {s} (case {c}): no {s}.h5 or {s}.pt in {src}; give its "
                                                     "features, or drop it from clinical.csv" for c, s in missing]))
    stage = staging_dir(root / FEATURES_DIR, IMPORTED_FEATURES)
    try:
        report = _import_into(stage, root, src, found, case_of, pairs, missing, unknown, magnification,
                              patch_magnification, patch_size_level0, encoder, region_size, slides, strict)
        if marker_kind(root) == COHORT.name:
            (stage / MARKER).unlink()                 # the cohort's own marker covers features/
        if had_features:
            _clear_features(root / FEATURES_DIR)
        elif (root / FEATURES_DIR).exists():
            shutil.rmtree(root / FEATURES_DIR)        # empty (or marker only)
        os.replace(stage, root / FEATURES_DIR)
    except BaseException:
        if stage.exists():
            discard_dir(stage, IMPORTED_FEATURES, flag="staging folder")
        raise
    features = {"encoder": report.encoder, "width": report.width, "n_slides": len(report.slides),
                "slides": slides, "region_size": int(region_size), "region_magnification": PAPER_MAGNIFICATION,
                "source": str(src.resolve()), "source_format": sorted({s.format for s in report.slides}),
                "missing": sorted(s for _, s in report.missing + report.empty)}
    _update_manifest(root, clinical, features, command, report.notes)
    try:
        validate_cohort(root)
        report.validation = f"cohort {root}: validates"
    except ValueError as err:
        report.validation = f"cohort {root}: does not validate yet: {str(err).splitlines()[0]} (run `survmamba " \
                            f"validate {root}` for the list)"
    return report


def _problem_text(head: str, lines: list[str]) -> str:
    body = lines[:_MAX_LINES] + ([f"... and {len(lines) - _MAX_LINES} more"] if len(lines) > _MAX_LINES else [])
    return head + "; nothing was written:\n" + "\n".join(f"  {line}" for line in body)


def _clear_features(d: Path) -> None:
    for p in sorted(d.rglob("*"), key=lambda q: -len(q.parts)):
        if p.is_dir() and not p.is_symlink():
            p.rmdir()
        else:
            p.unlink()
    d.rmdir()


def _import_into(stage: Path, root: Path, src: Path, found: dict[str, SourceSlide], case_of: dict[str, str],
                 pairs, missing, unknown, magnification, patch_magnification, patch_size, encoder, region_size,
                 rule, strict) -> ImportReport:
    problems: list[SlideProblem] = []
    rows: list[ImportedSlide] = []
    empty: list[tuple[str, str]] = []
    widths: dict[str, int] = {}
    encoders: dict[str, str] = {}
    patch_mags: Counter = Counter()
    default_encoder = encoder or (src.name[len("features_"):] if src.name.startswith("features_") else None)
    for cid, sid in pairs:
        source = found.get(sid)
        if source is None:
            continue
        try:
            raw = read_source_slide(source)
            if raw.features.shape[0] == 0:
                empty.append((cid, sid))
                continue
            widths[sid] = int(raw.features.shape[1])     # recorded before the other checks: the majority is fair
            encoders[sid] = raw.encoder or default_encoder or "unknown"
            l0, p0, pmag = _geometry(raw, sid, magnification, patch_size, patch_magnification)
            _check_values(raw, sid, source.path)
        except SlideProblem as err:
            problems.append(err)
            continue
        r0 = region_size_level0(l0, region_size)
        region = assign_regions(raw.coords, p0, r0)
        name = encoders[sid]
        patch_mags[(round(pmag, 3), int(round(p0 * pmag / l0)))] += 1
        attrs = {"slide_id": sid, "patch_size": p0, "region_size": r0, "magnification": pmag, "encoder": name,
                 "level0_magnification": l0, "mpp": 10.0 / l0, "target_patch_size": int(round(p0 * pmag / l0)),
                 "target_region_size": int(round(r0 * pmag / l0)), "source": "survmamba import-features",
                 "source_format": source.label, "source_file": str(source.path.resolve()),
                 "source_dtype": str(raw.features.dtype)}
        if source.coords_path is not None:
            attrs["source_coords_file"] = str(source.coords_path.resolve())
        write_features_h5(stage / f"{sid}.h5", SlideFeatures(raw.features.astype(np.float32, copy=False),
                                                              raw.coords, region, attrs))
        rows.append(ImportedSlide(sid, cid, int(raw.features.shape[0]), int(region.max()) + 1, str(source.path),
                                  source.label, l0, p0))
    if widths:
        width, n = Counter(widths.values()).most_common(1)[0]
        example = next(s for s, w in widths.items() if w == width)
        failed = {p.slide_id for p in problems}
        problems += [SlideProblem(s, f"feature width {w} differs from the other slides' {width} (e.g. {example})",
                                  "extract all slides with the same encoder")
                     for s, w in widths.items() if w != width and s not in failed]
        enc, _ = Counter(encoders.values()).most_common(1)[0]
        problems += [SlideProblem(s, f"encoder {e!r} differs from the other slides' {enc!r}",
                                  "extract all slides with the same encoder")
                     for s, e in encoders.items() if e != enc and widths[s] == width]
    if strict and empty:
        problems += [SlideProblem(s, f"its file holds no patch (case {c}; --strict)",
                                  "re-tile it with a lower tissue threshold, or drop it from clinical.csv")
                     for c, s in empty]
    if problems:
        raise UserError(_problem_text(f"{len(problems)} slide(s) cannot be imported from {src}",
                                      [str(p) for p in problems]))
    if not rows:
        if unknown and all(u.endswith("_patches") for u in unknown):
            raise UserError(f"{src}: holds TRIDENT's patch files (<slide_id>_patches.h5), not features; give SRC as "
                            f"a features_<encoder>/ folder beside it ({', '.join(p.name for p in src.parent.glob('features_*')) or 'none found'})")
        raise UserError(f"{src}: none of the {len(pairs)} slide(s) of {root / CLINICAL} has a feature file with "
                        f"patches here (files look like {unknown[:2] or 'nothing'}); check that the file names are "
                        "the slide ids of clinical.csv (file name without extension)")
    left = {s for _, s in missing} | {s for _, s in empty}
    imported_cases = {case_of[r.slide_id] for r in rows}
    cases = list(dict.fromkeys(c for c, _ in pairs))
    notes = []
    for (pmag, size), n in sorted(patch_mags.items()):
        if (pmag, size) != (PAPER_MAGNIFICATION, 256):
            notes.append(f"{n} slide(s) have patches of {size} px at {pmag:g}x, not the paper's 256 px at 20x; their "
                         f"regions ({region_size} px at 20x) hold up to {int((region_size * pmag / 20 / size) ** 2)} "
                         "patches")
    return ImportReport(cohort_dir=root, source_dir=src, rule=rule, width=width, encoder=enc, slides=rows,
                        missing=[(c, s) for c, s in missing], empty=empty,
                        cases_without_slides=[c for c in cases if c not in imported_cases and
                                              all(s in left for cc, s in pairs if cc == c)],
                        unknown_files=unknown, notes=notes)
