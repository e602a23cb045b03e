"""The on-disk cohort layout: one folder per cohort, checked by :func:`validate_cohort`.

::

    COHORT/
      manifest.yaml          what the folder holds (see data_manifests/README.md)
      clinical.csv           case_id, slide_id, survival_months, event   (one row per case)
      rna.csv                case_id, <gene>, <gene>, ...                 (if modality rna)
      hierarchy.tsv          function_id, function_name, process, genes   (if modality rna)
      splits/fold_{k}.csv    columns train, val of case ids, k = 0..n_folds-1
      features/<slide_id>.h5 patch tokens of one slide (features_h5.py)  (if modality wsi)
      synthetic_truth.csv    planted log-hazard (synthetic cohorts only)

``event = 1`` means the death was observed. ``slide_id`` is the slide's file name without
extension; several slides of a case are joined by ``;`` in the order their regions enter the
bag (slide 1's regions, then slide 2's, region indices offset). Which of them a bag holds is
the manifest's slide rule (:func:`bag_slide_ids`): ``features.slides`` is ``all`` (default) or
``first`` (the first listed only, e.g. the DX1 slide), and ``features.missing`` lists slides of
``clinical.csv`` that have no feature file (left out of the bags; written by
``survmamba import-features``). A problem found anywhere is collected, and
:class:`CohortError` lists all of them, each with its file, column, case id and the fix.

>>> import tempfile
>>> from survmamba_lite.data.synth import make_synthetic_cohort
>>> root = make_synthetic_cohort("BLCA", "tiny", seed=0, out=Path(tempfile.mkdtemp()) / "blca")
>>> report = validate_cohort(root)
>>> report.n_cases, report.n_folds, report.modalities
(359, 5, ['wsi', 'rna'])
>>> cohort = load_cohort(root)
>>> len(cohort.folds[0][1]) + len(cohort.folds[0][0]) == cohort.n_cases
True
"""
from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import yaml

from survmamba_lite.data.bag import GenomicHierarchy
from survmamba_lite.data.features_h5 import read_features_h5, read_features_shape
from survmamba_lite.data.kegg import HierarchyStats, build_genomic_hierarchy, read_hierarchy_tsv
from survmamba_lite.survival.labels import CENSORSHIP_FIX, CENSORSHIP_RULE, EVENT_CODING, invalid_events
from survmamba_lite.utils.io import atomic_path, atomic_write_text

__all__ = [
    "FORMAT_VERSION",
    "MODALITIES",
    "Problem",
    "CohortError",
    "ValidationReport",
    "Cohort",
    "validate_cohort",
    "load_cohort",
    "make_folds",
    "write_clinical",
    "write_rna",
    "write_folds",
    "read_folds",
    "write_manifest",
    "read_manifest",
    "split_slide_ids",
    "bag_slide_ids",
    "SLIDE_RULES",
]

FORMAT_VERSION = 1
MODALITIES = ("wsi", "rna")
CLINICAL, RNA, HIERARCHY, MANIFEST = "clinical.csv", "rna.csv", "hierarchy.tsv", "manifest.yaml"
SPLITS_DIR, FEATURES_DIR, TRUTH = "splits", "features", "synthetic_truth.csv"
CLINICAL_COLUMNS = ("case_id", "slide_id", "survival_months", "event")
MANIFEST_KEYS = ("format_version", "name", "cohort", "source", "n_cases", "n_folds", "modalities")
SLIDE_RULES = ("all", "first")
_FOLD_RE = re.compile(r"^fold_(\d+)\.csv$")
_MAX_LISTED = 10


@dataclass
class Problem:
    """One thing wrong with a cohort folder."""

    file: str
    message: str
    fix: str
    column: str | None = None
    case_id: str | None = None

    def __str__(self) -> str:
        where = self.file + (f", column {self.column!r}" if self.column else "")
        where += f", case {self.case_id}" if self.case_id else ""
        return f"{where}: {self.message}. Fix: {self.fix}"


class CohortError(ValueError):
    """Raised by :func:`validate_cohort`; :attr:`problems` lists every problem found."""

    def __init__(self, root: str | os.PathLike, problems: Sequence[Problem]):
        self.root = str(root)
        self.problems = list(problems)
        body = "\n".join(f"  {i + 1}. {p}" for i, p in enumerate(self.problems))
        super().__init__(f"cohort {self.root} has {len(self.problems)} problem(s):\n{body}")


@dataclass
class ValidationReport:
    """What :func:`validate_cohort` found in a valid cohort folder."""

    root: str
    name: str
    n_cases: int
    n_folds: int
    modalities: list[str]
    n_slides: int = 0
    feature_width: int | None = None
    n_genes: int = 0
    hierarchy: HierarchyStats | None = None
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"cohort {self.name} at {self.root}: OK",
                 f"  {self.n_cases} cases, {self.n_folds} folds, modalities {self.modalities}"]
        if "wsi" in self.modalities:
            lines.append(f"  {self.n_slides} slides with features of width {self.feature_width}")
        if self.hierarchy is not None:
            h = self.hierarchy
            lines.append(f"  {self.n_genes} genes; hierarchy {h.n_functions} functions in {h.n_processes} "
                         f"processes (of {h.n_functions_file} / {h.n_processes_file} in the file, "
                         f"min_genes={h.min_genes}); {h.n_hierarchy_genes_missing} hierarchy genes not measured")
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


@dataclass
class Cohort:
    """A loaded cohort folder.

    Attributes:
        root: the folder.
        manifest: ``manifest.yaml`` as a dict.
        clinical: one row per case, index ``case_id``; columns ``slide_id`` (str, ``;``
            joined, empty without slide), ``survival_months`` (float), ``event`` (int).
        rna: ``(cases, G)`` float frame indexed by ``case_id`` (columns = genes), or None.
        hierarchy: :class:`GenomicHierarchy` over ``rna``'s gene columns, or None.
        hierarchy_stats: what the gene filter kept.
        folds: ``[(train_ids, val_ids), ...]`` per fold.
    """

    root: Path
    manifest: dict
    clinical: pd.DataFrame
    rna: pd.DataFrame | None
    hierarchy: GenomicHierarchy | None
    hierarchy_stats: HierarchyStats | None
    folds: list[tuple[list[str], list[str]]]

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", self.root.name))

    @property
    def case_ids(self) -> list[str]:
        return list(self.clinical.index)

    @property
    def n_cases(self) -> int:
        return len(self.clinical)

    @property
    def modalities(self) -> list[str]:
        return list(self.manifest["modalities"])

    @property
    def features_dir(self) -> Path:
        return self.root / FEATURES_DIR

    def slide_ids(self, case_id: str) -> list[str]:
        """Slide ids of one case in its bag, in bag order (``[]`` without a slide); see :func:`bag_slide_ids`."""
        return bag_slide_ids(self.clinical.at[case_id, "slide_id"], self.manifest)

    def feature_path(self, slide_id: str) -> Path:
        return self.features_dir / f"{slide_id}.h5"

    def __repr__(self) -> str:
        return (f"Cohort({self.name!r}, n_cases={self.n_cases}, folds={len(self.folds)}, "
                f"modalities={self.modalities})")


# --------------------------------------------------------------------------- helpers
def split_slide_ids(cell: object) -> list[str]:
    """``"a;b"`` -> ``["a", "b"]``; empty or NaN -> ``[]``.

    >>> split_slide_ids("s1; s2"), split_slide_ids(float("nan"))
    (['s1', 's2'], [])
    """
    if not isinstance(cell, str):
        return []
    return [s.strip() for s in cell.split(";") if s.strip()]


def bag_slide_ids(cell: object, manifest: dict | None = None) -> list[str]:
    """The slides of a ``clinical.csv`` ``slide_id`` cell that a case's bag holds, in bag order.

    The manifest's ``features.slides`` rule (``all``, the default, or ``first``) picks them,
    then slides listed in ``features.missing`` (no feature file) are left out.

    >>> man = {"features": {"slides": "all", "missing": ["b"]}}
    >>> bag_slide_ids("a;b;c", man), bag_slide_ids("a;b;c", {"features": {"slides": "first"}})
    (['a', 'c'], ['a'])
    """
    slides = split_slide_ids(cell)
    feats = (manifest or {}).get("features") or {}
    if feats.get("slides", "all") == "first":
        slides = slides[:1]
    missing = set(feats.get("missing") or [])
    return [s for s in slides if s not in missing]


def _plain(value: object) -> object:
    """A NumPy scalar as the Python number it holds (messages show ``-3.5``, not ``np.float64(-3.5)``)."""
    return value.item() if isinstance(value, np.generic) else value


def _listed(items: Sequence[object]) -> str:
    items = list(items)
    head = ", ".join(map(str, items[:_MAX_LISTED]))
    return head + (f" and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


def _read_csv(path: Path, problems: list[Problem], what: str) -> pd.DataFrame | None:
    if not path.is_file():
        problems.append(Problem(path.name, f"missing ({what})", f"write {path.name} into the cohort folder "
                                "(see data_manifests/README.md for its columns)"))
        return None
    try:
        return pd.read_csv(path, dtype={"case_id": str, "slide_id": str, "train": str, "val": str},
                           keep_default_na=True)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        problems.append(Problem(path.name, f"not a readable CSV ({err})", "rewrite the file as comma-separated text"))
        return None


# --------------------------------------------------------------------------- writers
def write_manifest(root: str | os.PathLike, manifest: dict) -> Path:
    """Write ``manifest.yaml`` (keys kept in the given order)."""
    path = Path(root) / MANIFEST
    atomic_write_text(path, yaml.safe_dump(manifest, sort_keys=False, default_flow_style=None, width=100))
    return path


def read_manifest(root: str | os.PathLike) -> dict:
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no manifest; is {root} a cohort folder? "
                                "(create one with `survmamba synth` or `survmamba import-tcga`)")
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a YAML mapping, got {type(data).__name__}")
    return data


def write_clinical(root: str | os.PathLike, clinical: pd.DataFrame) -> Path:
    """Write ``clinical.csv`` from a frame with :data:`CLINICAL_COLUMNS` (+ extra columns kept)."""
    df = clinical.reset_index() if clinical.index.name == "case_id" else clinical
    cols = list(CLINICAL_COLUMNS) + [c for c in df.columns if c not in CLINICAL_COLUMNS]
    out = df[cols].copy()
    out["slide_id"] = out["slide_id"].fillna("")
    out["event"] = out["event"].astype(int)
    path = Path(root) / CLINICAL
    with atomic_path(path) as tmp:
        out.to_csv(tmp, index=False, float_format="%.6g", lineterminator="\n")
    return path


def write_rna(root: str | os.PathLike, rna: pd.DataFrame, float_format: str = "%.5g") -> Path:
    """Write ``rna.csv``: ``rna`` indexed by case id, one column per gene."""
    path = Path(root) / RNA
    out = rna.copy()
    out.index.name = "case_id"
    with atomic_path(path) as tmp:
        out.to_csv(tmp, float_format=float_format, lineterminator="\n")
    return path


def write_folds(root: str | os.PathLike, folds: Sequence[tuple[Sequence[str], Sequence[str]]]) -> list[Path]:
    """Write ``splits/fold_{k}.csv`` (columns ``train, val``; the shorter one padded empty)."""
    d = Path(root) / SPLITS_DIR
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob("fold_*.csv"):
        old.unlink()
    paths = []
    for k, (train, val) in enumerate(folds):
        n = max(len(train), len(val))
        df = pd.DataFrame({"train": list(train) + [""] * (n - len(train)),
                           "val": list(val) + [""] * (n - len(val))})
        p = d / f"fold_{k}.csv"
        with atomic_path(p) as tmp:
            df.to_csv(tmp, index=False, lineterminator="\n")
        paths.append(p)
    return paths


def read_folds(root: str | os.PathLike) -> list[tuple[list[str], list[str]]]:
    """Read ``splits/fold_{k}.csv`` in fold order (no validation; see :func:`validate_cohort`)."""
    d = Path(root) / SPLITS_DIR
    files = sorted((int(m.group(1)), p) for p in d.glob("fold_*.csv") if (m := _FOLD_RE.match(p.name)))
    out = []
    for _, p in files:
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
        out.append(([s.strip() for s in df.get("train", []) if s.strip()],     # as validate_cohort reads them
                    [s.strip() for s in df.get("val", []) if s.strip()]))
    return out


def make_folds(clinical: pd.DataFrame, k: int = 5, seed: int = 0, n_time_bins: int = 4
               ) -> list[tuple[list[str], list[str]]]:
    """``k`` cross-validation folds stratified by event and time quantile.

    Strata are ``event x time quantile`` (``n_time_bins`` quantile bins of the follow-up
    time within each event group). Each stratum is shuffled with ``seed`` and dealt to the
    folds in turn, continuing the turn across strata, so fold sizes differ by at most one
    and every fold gets a share of early/late deaths and censorings. Every case is in
    exactly one validation fold.

    Args:
        clinical: frame with ``case_id`` (column or index), ``survival_months``, ``event``.
        k: number of folds (>= 2).
        seed: shuffling seed.

    Returns:
        ``[(train_ids, val_ids), ...]``, ids in ``clinical`` order.

    >>> df = pd.DataFrame({"case_id": [f"c{i}" for i in range(10)],
    ...                    "survival_months": range(10), "event": [0, 1] * 5})
    >>> folds = make_folds(df, k=5, seed=0)
    >>> sorted(len(v) for _, v in folds), sorted(c for _, v in folds for c in v) == sorted(df.case_id)
    ([2, 2, 2, 2, 2], True)
    """
    if int(k) != k or k < 2:
        raise ValueError(f"make_folds: k must be an integer >= 2, got {k!r}")
    df = clinical.reset_index() if "case_id" not in clinical.columns else clinical
    for c in ("case_id", "survival_months", "event"):
        if c not in df.columns:
            raise ValueError(f"make_folds: clinical table lacks column {c!r}")
    if len(df) < k:
        raise ValueError(f"make_folds: {len(df)} cases cannot fill {k} folds")
    ids = df["case_id"].astype(str).to_numpy()
    time = df["survival_months"].to_numpy(dtype=float)
    event = df["event"].to_numpy(dtype=int)
    stratum = np.zeros(len(df), dtype=np.int64)
    for e in (0, 1):
        m = event == e
        if m.sum() == 0:
            continue
        ranks = pd.Series(time[m]).rank(method="first").to_numpy()
        q = np.minimum(((ranks - 1) * n_time_bins / m.sum()).astype(int), n_time_bins - 1)
        stratum[m] = e * n_time_bins + q
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(df), dtype=np.int64)
    turn = 0
    for s in np.unique(stratum):
        members = np.flatnonzero(stratum == s)
        members = members[rng.permutation(members.size)]
        fold_of[members] = (turn + np.arange(members.size)) % k
        turn = (turn + members.size) % k
    return [(ids[fold_of != f].tolist(), ids[fold_of == f].tolist()) for f in range(k)]


# --------------------------------------------------------------------------- validation
def _check_manifest(root: Path, problems: list[Problem]) -> dict:
    try:
        man = read_manifest(root)
    except (FileNotFoundError, ValueError, yaml.YAMLError) as err:
        problems.append(Problem(MANIFEST, str(err), "write manifest.yaml (see data_manifests/README.md)"))
        return {}
    missing = [k for k in MANIFEST_KEYS if k not in man]
    if missing:
        problems.append(Problem(MANIFEST, f"missing key(s) {missing}", f"add them; required keys are {list(MANIFEST_KEYS)}"))
    if man.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
        problems.append(Problem(MANIFEST, f"format_version {man.get('format_version')!r} is not {FORMAT_VERSION}",
                                "rebuild the cohort with this version of survmamba"))
    feats = man.get("features")
    if isinstance(feats, dict):
        if feats.get("slides", "all") not in SLIDE_RULES:
            problems.append(Problem(MANIFEST, f"features.slides is {feats.get('slides')!r}",
                                    f"write one of {list(SLIDE_RULES)} (all slides of a case, or the first listed)",
                                    column="features.slides"))
            feats["slides"] = "all"
        if not isinstance(feats.get("missing") or [], list):
            problems.append(Problem(MANIFEST, f"features.missing is {feats.get('missing')!r}, not a list of slide ids",
                                    "write a YAML list (or remove the key)", column="features.missing"))
            feats["missing"] = []
    mods = man.get("modalities", [])
    if not isinstance(mods, list) or not mods or any(m not in MODALITIES for m in mods):
        problems.append(Problem(MANIFEST, f"modalities {mods!r} is not a non-empty list drawn from {list(MODALITIES)}",
                                "write e.g. `modalities: [wsi, rna]`", column="modalities"))
        man["modalities"] = [m for m in mods if m in MODALITIES] if isinstance(mods, list) else []
    return man


def _check_clinical(root: Path, man: dict, problems: list[Problem]) -> pd.DataFrame | None:
    df = _read_csv(root / CLINICAL, problems, "one row per case")
    if df is None:
        return None
    missing = [c for c in CLINICAL_COLUMNS if c not in df.columns]
    if missing:
        problems.append(Problem(CLINICAL, f"missing column(s) {missing}",
                                f"clinical.csv needs columns {list(CLINICAL_COLUMNS)} ({CENSORSHIP_RULE})",
                                column=",".join(missing)))
        if "case_id" not in df.columns:
            return None
    blank = df.index[df["case_id"].isna() | (df["case_id"].astype(str).str.strip() == "")].tolist()
    if blank:
        problems.append(Problem(CLINICAL, f"empty case_id in data row(s) {_listed([i + 1 for i in blank])}",
                                "give every row a case id", column="case_id"))
    df = df.drop(index=blank)
    df["case_id"] = df["case_id"].astype(str).str.strip()
    dup = df.loc[df["case_id"].duplicated(), "case_id"].unique().tolist()
    for c in dup[:_MAX_LISTED]:
        problems.append(Problem(CLINICAL, "case id appears in more than one row", "keep one row per case and join "
                                "its slides with ';' in slide_id", column="case_id", case_id=c))
    if len(dup) > _MAX_LISTED:
        problems.append(Problem(CLINICAL, f"{len(dup) - _MAX_LISTED} more duplicated case ids", "as above", column="case_id"))
    df = df.drop_duplicates("case_id").set_index("case_id")
    if "survival_months" in df.columns:
        t = pd.to_numeric(df["survival_months"], errors="coerce")
        bad = t.index[~np.isfinite(t.to_numpy(dtype=float)) | (t.to_numpy(dtype=float) < 0)].tolist()
        for c in bad[:_MAX_LISTED]:
            problems.append(Problem(CLINICAL, f"survival_months is {_plain(df.at[c, 'survival_months'])!r}; it must be a "
                                    "finite number >= 0", "fix the follow-up time or drop the case",
                                    column="survival_months", case_id=c))
        if len(bad) > _MAX_LISTED:
            problems.append(Problem(CLINICAL, f"{len(bad) - _MAX_LISTED} more cases with invalid survival_months",
                                    "as above", column="survival_months"))
        df["survival_months"] = t
    if "event" in df.columns:
        e = pd.to_numeric(df["event"], errors="coerce")
        bad = e.index[invalid_events(e.to_numpy())].tolist()
        for c in bad[:_MAX_LISTED]:
            problems.append(Problem(CLINICAL, f"event is {_plain(df.at[c, 'event'])!r}; it must be {EVENT_CODING}",
                                    CENSORSHIP_FIX, column="event", case_id=c))
        if len(bad) > _MAX_LISTED:
            problems.append(Problem(CLINICAL, f"{len(bad) - _MAX_LISTED} more cases with invalid event",
                                    "as above", column="event"))
        df["event"] = e.fillna(-1).astype(int)
        if len(df) and not bad and not (df["event"] == 1).any():
            problems.append(Problem(CLINICAL, f"every one of the {len(df)} cases is censored (no event = 1)",
                                    f"survival models learn from observed deaths: check the event coding "
                                    f"({EVENT_CODING}); {CENSORSHIP_FIX}", column="event"))
    if "slide_id" in df.columns:
        df["slide_id"] = df["slide_id"].fillna("").astype(str)
        owner: dict[str, str] = {}
        for c, cell in df["slide_id"].items():
            for s in split_slide_ids(cell):
                if s in owner and owner[s] != c:
                    problems.append(Problem(CLINICAL, f"slide {s} is also listed for case {owner[s]}",
                                            "a slide belongs to one case; remove the wrong entry",
                                            column="slide_id", case_id=c))
                owner[s] = c
        if "wsi" in man.get("modalities", []):
            none = [c for c, cell in df["slide_id"].items() if not split_slide_ids(cell)]
            for c in none[:_MAX_LISTED]:
                problems.append(Problem(CLINICAL, "no slide_id although the manifest lists modality wsi",
                                        "add the case's slide ids or drop the case", column="slide_id", case_id=c))
    if "n_cases" in man and man["n_cases"] != len(df):
        problems.append(Problem(MANIFEST, f"n_cases is {man['n_cases']} but clinical.csv has {len(df)} cases",
                                "set n_cases to the number of rows of clinical.csv", column="n_cases"))
    return df


def _check_rna(root: Path, man: dict, clinical: pd.DataFrame | None, problems: list[Problem]) -> pd.DataFrame | None:
    path = root / RNA
    if not path.is_file():
        problems.append(Problem(RNA, "missing although the manifest lists modality rna",
                                "write rna.csv (case_id + one column per gene) or remove rna from modalities"))
        return None
    try:
        raw = pd.read_csv(path, dtype={"case_id": str})
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        problems.append(Problem(RNA, f"not a readable CSV ({err})", "rewrite it as comma-separated text"))
        return None
    if "case_id" not in raw.columns:
        problems.append(Problem(RNA, f"no case_id column (first columns: {list(raw.columns[:3])})",
                                "name the first column case_id", column="case_id"))
        return None
    genes = [c for c in raw.columns if c != "case_id"]
    with open(path, newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    dup_g = sorted({g for g in header if header.count(g) > 1})
    if dup_g:
        problems.append(Problem(RNA, f"gene columns appear twice ({_listed(dup_g)})", "keep one column per gene"))
    if not genes:
        problems.append(Problem(RNA, "no gene columns", "add one column per gene"))
        return None
    raw["case_id"] = raw["case_id"].astype(str).str.strip()
    dup = raw.loc[raw["case_id"].duplicated(), "case_id"].unique().tolist()
    for c in dup[:_MAX_LISTED]:
        problems.append(Problem(RNA, "case id appears in more than one row", "keep one expression profile per case",
                                column="case_id", case_id=c))
    rna = raw.drop_duplicates("case_id").set_index("case_id")
    non_num = [g for g in genes if not pd.api.types.is_numeric_dtype(rna[g])]
    for g in non_num[:_MAX_LISTED]:
        bad = rna.index[pd.to_numeric(rna[g], errors="coerce").isna() & rna[g].notna()].tolist()
        problems.append(Problem(RNA, f"non-numeric values (e.g. {rna.at[bad[0], g]!r})" if bad else "non-numeric values",
                                "write expression as numbers", column=g, case_id=bad[0] if bad else None))
    rna = rna.apply(pd.to_numeric, errors="coerce")
    values = rna.to_numpy(dtype=float)
    bad_r, bad_c = np.nonzero(~np.isfinite(values))
    for r, c in list(zip(bad_r, bad_c))[:_MAX_LISTED]:
        problems.append(Problem(RNA, f"expression is {values[r, c]} (NaN/inf)",
                                "impute or drop the gene/case before building the cohort",
                                column=str(rna.columns[c]), case_id=str(rna.index[r])))
    if len(bad_r) > _MAX_LISTED:
        problems.append(Problem(RNA, f"{len(bad_r) - _MAX_LISTED} more NaN/inf values in "
                                f"{len(set(bad_c))} genes and {len(set(bad_r))} cases", "as above"))
    if clinical is not None:
        missing = [c for c in clinical.index if c not in rna.index]
        for c in missing[:_MAX_LISTED]:
            problems.append(Problem(RNA, "case of clinical.csv has no expression row",
                                    "add its row to rna.csv or drop the case from clinical.csv", case_id=c))
        if len(missing) > _MAX_LISTED:
            problems.append(Problem(RNA, f"{len(missing) - _MAX_LISTED} more clinical cases without expression", "as above"))
        unknown = [c for c in rna.index if c not in clinical.index]
        for c in unknown[:_MAX_LISTED]:
            problems.append(Problem(RNA, "unknown case id (not in clinical.csv)",
                                    "remove the row or add the case to clinical.csv", case_id=c))
        if len(unknown) > _MAX_LISTED:
            problems.append(Problem(RNA, f"{len(unknown) - _MAX_LISTED} more unknown case ids", "as above"))
    rna_meta = man.get("rna") or {}
    if rna_meta.get("n_genes") not in (None, len(genes)):
        problems.append(Problem(MANIFEST, f"rna.n_genes is {rna_meta['n_genes']} but rna.csv has {len(genes)} genes",
                                "set rna.n_genes to the number of gene columns", column="rna.n_genes"))
    return rna


def _check_hierarchy(root: Path, man: dict, rna: pd.DataFrame | None, min_genes: int | None,
                     problems: list[Problem], warnings: list[str]):
    path = root / HIERARCHY
    try:
        table = read_hierarchy_tsv(path)
    except (FileNotFoundError, ValueError) as err:
        problems.append(Problem(HIERARCHY, str(err).replace(f"{path}: ", ""),
                                "build it with `survmamba kegg --table ... --rna rna.csv --out hierarchy.tsv`"))
        return None, None
    if rna is None:
        return None, None
    if min_genes is None:
        min_genes = int((man.get("hierarchy") or {}).get("min_genes", 1))
    try:
        h, stats = build_genomic_hierarchy(table, list(rna.columns), min_genes)
    except ValueError as err:
        problems.append(Problem(HIERARCHY, str(err), "match gene symbols between hierarchy.tsv and rna.csv"))
        return None, None
    if stats.n_hierarchy_genes_missing:
        warnings.append(f"{stats.n_hierarchy_genes_missing} of {stats.n_hierarchy_genes} genes named in hierarchy.tsv "
                        f"are not columns of rna.csv; {len(stats.dropped_functions)} functions have fewer than "
                        f"{min_genes} measured gene(s) and are left out")
    return h, stats


def _check_splits(root: Path, man: dict, clinical: pd.DataFrame | None, problems: list[Problem],
                  warnings: list[str]) -> list[tuple[list[str], list[str]]]:
    d = root / SPLITS_DIR
    files = sorted((int(m.group(1)), p) for p in d.glob("*.csv") if (m := _FOLD_RE.match(p.name))) if d.is_dir() else []
    if not files:
        warnings.append("no splits/fold_{k}.csv: `survmamba cv` makes stratified folds itself (--n-folds, seeded by "
                        "--seed) and writes them to the run folder's splits/; copy those here to use the same folds "
                        "in every run")
        return []
    ks = [k for k, _ in files]
    if ks != list(range(len(ks))):
        problems.append(Problem(f"{SPLITS_DIR}/", f"fold files are numbered {ks}; expected 0..{len(ks) - 1}",
                                "rename them fold_0.csv, fold_1.csv, ..."))
    if "n_folds" in man and man["n_folds"] != len(files):
        problems.append(Problem(MANIFEST, f"n_folds is {man['n_folds']} but splits/ holds {len(files)} fold files",
                                "set n_folds to the number of fold files", column="n_folds"))
    folds = []
    known = set(clinical.index) if clinical is not None else None
    val_owner: dict[str, int] = {}
    for k, p in files:
        name = f"{SPLITS_DIR}/{p.name}"
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
        missing = [c for c in ("train", "val") if c not in df.columns]
        if missing:
            problems.append(Problem(name, f"missing column(s) {missing}", "a fold file has columns train, val of case ids",
                                    column=",".join(missing)))
            continue
        train = [s.strip() for s in df["train"] if s.strip()]
        val = [s.strip() for s in df["val"] if s.strip()]
        for col, ids in (("train", train), ("val", val)):
            dup = sorted({c for c in ids if ids.count(c) > 1}) if len(set(ids)) != len(ids) else []
            for c in dup[:_MAX_LISTED]:
                problems.append(Problem(name, "case listed twice", "list each case once", column=col, case_id=c))
            if known is not None:
                unknown = [c for c in ids if c not in known]
                for c in unknown[:_MAX_LISTED]:
                    problems.append(Problem(name, "unknown case id (not in clinical.csv)",
                                            "drop it from the split or add the case", column=col, case_id=c))
                if len(unknown) > _MAX_LISTED:
                    problems.append(Problem(name, f"{len(unknown) - _MAX_LISTED} more unknown case ids", "as above", column=col))
        both = sorted(set(train) & set(val))
        for c in both[:_MAX_LISTED]:
            problems.append(Problem(name, "case is in both train and val of the same fold",
                                    "remove it from one of the two columns", column="train,val", case_id=c))
        if len(both) > _MAX_LISTED:
            problems.append(Problem(name, f"{len(both) - _MAX_LISTED} more cases in both train and val", "as above"))
        for c in val:
            if c in val_owner:
                problems.append(Problem(name, f"case is also a validation case of fold {val_owner[c]}; validation "
                                        "folds of k-fold cross-validation must not overlap",
                                        "assign each case to one validation fold (make_folds)", column="val", case_id=c))
            val_owner.setdefault(c, k)
        if not val:
            problems.append(Problem(name, "empty validation set", "give the fold validation cases", column="val"))
        deaths = clinical is not None and "event" in clinical.columns and (clinical["event"] == 1).any()
        if deaths and train and not any(clinical.at[c, "event"] == 1 for c in train if c in clinical.index):
            problems.append(Problem(name, f"no death (event = 1) among the {len(train)} training cases",
                                    "the time bins are fitted on the training deaths: move cases with event = 1 "
                                    "into this fold's training set (make_folds stratifies by event)",
                                    column="train"))
        folds.append((train, val))
    if known is not None and val_owner:
        never = [c for c in known if c not in val_owner]
        if never:
            warnings.append(f"{len(never)} case(s) are in no validation fold: {_listed(never)}")
    return folds


def _check_features(root: Path, man: dict, clinical: pd.DataFrame | None, deep: bool,
                    problems: list[Problem]) -> tuple[int, int | None]:
    if clinical is None or "slide_id" not in clinical.columns:
        return 0, None
    d = root / FEATURES_DIR
    expected = (man.get("features") or {}).get("width")
    width, width_from, n_slides, first = None, "", 0, True
    listed = {s for cell in clinical["slide_id"] for s in split_slide_ids(cell)}
    unknown = [s for s in ((man.get("features") or {}).get("missing") or []) if s not in listed]
    for s in unknown[:_MAX_LISTED]:
        problems.append(Problem(MANIFEST, f"features.missing names slide {s}, which clinical.csv does not list",
                                "remove it from features.missing", column="features.missing"))
    for case, cell in clinical["slide_id"].items():
        slides = bag_slide_ids(cell, man)
        if not slides and split_slide_ids(cell):
            problems.append(Problem(CLINICAL, f"none of the case's slides ({cell}) has features (manifest "
                                    "features.missing / features.slides)", "give their feature files (survmamba "
                                    "import-features or extract) or drop the case from clinical.csv and splits/",
                                    column="slide_id", case_id=case))
        for s in slides:
            n_slides += 1
            path = d / f"{s}.h5"
            rel = f"{FEATURES_DIR}/{s}.h5"
            if not path.is_file():
                problems.append(Problem(rel, f"missing feature file for slide {s}",
                                        "run `survmamba extract` for the slide, or remove the slide from slide_id",
                                        column="slide_id", case_id=case))
                continue
            try:
                read_features_h5(path, load_features=deep or first)       # datasets, attributes, NaN (deep)
                n, w = read_features_shape(path)             # from the header: every slide's width is checked
            except (ValueError, OSError) as err:
                problems.append(Problem(rel, str(err).replace(str(path) + ": ", ""),
                                        "re-extract the slide", case_id=case))
                continue
            if n == 0:
                problems.append(Problem(rel, "zero patches (an empty bag)", "re-tile the slide with a lower tissue "
                                        "threshold or remove it from slide_id", case_id=case))
                continue
            if width is None:
                width, width_from = w, rel
            if expected is not None and w != expected:
                problems.append(Problem(rel, f"feature width {w} differs from the manifest's features.width "
                                        f"{expected}", "extract all slides with the same encoder (or correct "
                                        "features.width in manifest.yaml)", case_id=case))
            elif w != width:
                problems.append(Problem(rel, f"feature width {w} differs from the other slides' {width} (e.g. "
                                        f"{width_from})", "extract all slides with the same encoder",
                                        case_id=case))
            first = False
    return n_slides, width if width is not None else expected


def validate_cohort(root: str | os.PathLike, *, deep: bool = False, min_genes: int | None = None) -> ValidationReport:
    """Check a cohort folder; raise :class:`CohortError` listing every problem.

    Args:
        root: the cohort folder.
        deep: read every slide's full feature array (NaN/inf check on every slide).
            Without it, coordinates, regions and the feature width (from the file's
            header) are read for every slide and the full array for the first one only.
        min_genes: function filter (default: ``manifest.hierarchy.min_genes`` or 1).

    Returns:
        a :class:`ValidationReport` (with non-fatal warnings) when nothing is wrong.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such cohort folder")
    problems: list[Problem] = []
    warnings: list[str] = []
    man = _check_manifest(root, problems)
    mods = man.get("modalities", [])
    clinical = _check_clinical(root, man, problems)
    rna = hier = stats = None
    if "rna" in mods:
        rna = _check_rna(root, man, clinical, problems)
        hier, stats = _check_hierarchy(root, man, rna, min_genes, problems, warnings)
    folds = _check_splits(root, man, clinical, problems, warnings)
    n_slides, width = (_check_features(root, man, clinical, deep, problems) if "wsi" in mods else (0, None))
    if problems:
        raise CohortError(root, problems)
    return ValidationReport(root=str(root), name=str(man.get("name", root.name)), n_cases=len(clinical),
                            n_folds=len(folds), modalities=list(mods), n_slides=n_slides, feature_width=width,
                            n_genes=0 if rna is None else rna.shape[1], hierarchy=stats, warnings=warnings)


def load_cohort(root: str | os.PathLike, *, validate: bool = True, min_genes: int | None = None) -> Cohort:
    """Load a cohort folder (validated first unless ``validate=False``)."""
    root = Path(root)
    if validate:
        validate_cohort(root, min_genes=min_genes)
    man = read_manifest(root)
    clinical = pd.read_csv(root / CLINICAL, dtype={"case_id": str, "slide_id": str}, keep_default_na=False)
    clinical["case_id"] = clinical["case_id"].str.strip()
    clinical = clinical.set_index("case_id")
    clinical["survival_months"] = clinical["survival_months"].astype(float)
    clinical["event"] = clinical["event"].astype(int)
    rna = hierarchy = stats = None
    if "rna" in man["modalities"]:
        rna = pd.read_csv(root / RNA, dtype={"case_id": str})
        rna["case_id"] = rna["case_id"].str.strip()                     # as validate_cohort reads them
        rna = rna.set_index("case_id").astype(np.float64)
        rna = rna.loc[clinical.index]
        if min_genes is None:
            min_genes = int((man.get("hierarchy") or {}).get("min_genes", 1))
        hierarchy, stats = build_genomic_hierarchy(read_hierarchy_tsv(root / HIERARCHY), list(rna.columns), min_genes)
    return Cohort(root=root, manifest=man, clinical=clinical, rna=rna, hierarchy=hierarchy,
                  hierarchy_stats=stats, folds=read_folds(root))
