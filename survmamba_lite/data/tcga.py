"""Import the two public TCGA table formats into the cohort layout.

``xena`` (SurvPath's release): ``rna_clean.csv`` (first column the case id, one column
per gene, log2 expression), ``clinical.csv`` (``case_id, slide_id, survival_months,
censorship, ...``, one row per *slide*) and ``splits/splits_{k}.csv`` (columns ``train,
val``).

``porpoise`` (PORPOISE's release): one ``tcga_<x>_all_clean.csv[.zip]`` with ``case_id,
slide_id, survival_months, censorship`` and ``<gene>_rnaseq`` (plus ``_mut``/``_cnv``)
columns, one row per slide; and its ``splits`` folder.

What the import does, once and here only:

* ``event = 1 - censorship`` (``censorship = 1`` means alive at last follow-up);
* one row per case: slide rows are collapsed, slide ids (file names without ``.svs``)
  joined by ``;``; rows of a case must agree on time and censorship;
* PORPOISE ``<gene>_rnaseq`` columns become gene columns ``<gene>``;
* the cohort is the cases present in the clinical table, the RNA table and (when given)
  the splits; every case left out is printed with the reason;
* with ``features_dir``, each slide's ``<slide_id>.h5`` is linked into ``features/``;
  without it the cohort is genomic-only (``modalities: [rna]``).
"""
from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from survmamba_lite.data.kegg import build_genomic_hierarchy, read_hierarchy_tsv, write_hierarchy_tsv
from survmamba_lite.data.layout import (FEATURES_DIR, FORMAT_VERSION, CohortError, validate_cohort, write_clinical,
                                        write_folds, write_manifest, write_rna)
from survmamba_lite.data.wsi.tiling import slide_id_from_path
from survmamba_lite.errors import UserError
from survmamba_lite.survival.labels import CENSORSHIP_RULE, event_from_censorship, valid_event
from survmamba_lite.utils.outputs import COHORT, check_out_dir, discard_dir, publish_dir, staging_dir

__all__ = ["ImportReport", "import_xena", "import_porpoise", "read_source_splits", "slide_stem"]

_SPLIT_RE = re.compile(r"^splits_(\d+)\.csv$")


def slide_stem(name: str) -> str:
    """Slide file name without its extension (the layout's ``slide_id``); one rule for the
    whole project, :func:`survmamba_lite.data.wsi.tiling.slide_id_from_path`.

    >>> slide_stem("TCGA-2F-A9KO-01Z-00-DX1.195576CF-B739-4BD9-B15B-4A70AE287D3E.svs")
    'TCGA-2F-A9KO-01Z-00-DX1.195576CF-B739-4BD9-B15B-4A70AE287D3E'
    """
    return slide_id_from_path(str(name).strip())


@dataclass
class ImportReport:
    """What an import kept and dropped."""

    root: Path
    n_cases: int
    n_slides: int
    n_genes: int
    modalities: list[str]
    dropped: list[tuple[str, str]] = field(default_factory=list)
    fold_sizes: list[tuple[int, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    hierarchy_summary: str = ""

    def summary(self) -> str:
        lines = [f"wrote {self.root}: {self.n_cases} cases, {self.n_slides} slides, {self.n_genes} genes, "
                 f"modalities {self.modalities}"]
        lines += [f"  fold {k}: {tr} train / {va} val" for k, (tr, va) in enumerate(self.fold_sizes)]
        lines += [f"  note: {n}" for n in self.notes]
        if self.hierarchy_summary:
            lines += ["  " + s for s in self.hierarchy_summary.splitlines()]
        lines.append(f"  dropped {len(self.dropped)} case(s)" + (":" if self.dropped else ""))
        lines += [f"    {c}: {why}" for c, why in self.dropped]
        return "\n".join(lines)


# --------------------------------------------------------------------------- readers
def _read_table(path: str | os.PathLike, what: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what}")
    return pd.read_csv(path, low_memory=False, dtype={"case_id": str, "slide_id": str})


def read_source_splits(splits_dir: str | os.PathLike) -> list[tuple[list[str], list[str]]]:
    """Read SurvPath/PORPOISE ``splits_{k}.csv`` (columns ``train, val``) in fold order."""
    d = Path(splits_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: no such splits folder (expected splits_0.csv ... with columns train, val)")
    files = sorted((int(m.group(1)), p) for p in d.iterdir() if (m := _SPLIT_RE.match(p.name)))
    if not files:
        raise FileNotFoundError(f"{d}: no splits_<k>.csv files")
    folds = []
    val_owner: dict[str, int] = {}
    for k, p in files:
        df = pd.read_csv(p, dtype=str)
        missing = [c for c in ("train", "val") if c not in df.columns]
        if missing:
            raise ValueError(f"{p}: missing column(s) {missing}; expected columns train, val of case ids")
        train = [s.strip() for s in df["train"].dropna() if s.strip()]
        val = [s.strip() for s in df["val"].dropna() if s.strip()]
        both = sorted(set(train) & set(val))
        if both:
            raise UserError(f"{p} (fold {k}): {len(both)} case(s) are in both train and val, e.g. case {both[0]}; "
                            "a validation case must not be trained on: fix the split file (nothing was written)")
        again = [c for c in val if c in val_owner]
        if again:
            raise UserError(f"{p} (fold {k}): case {again[0]} is also a validation case of fold "
                            f"{val_owner[again[0]]} ({len(again)} such case(s)); validation folds of k-fold "
                            "cross-validation must not overlap: fix the split files (nothing was written)")
        val_owner.update((c, k) for c in val)
        folds.append((train, val))
    return folds


def _collapse_clinical(df: pd.DataFrame, where: str, time_col: str, cens_col: str,
                       dropped: list[tuple[str, str]]) -> pd.DataFrame:
    """Slide rows -> one row per case; event = 1 - censorship (the one conversion)."""
    for c in ("case_id", "slide_id", time_col, cens_col):
        if c not in df.columns:
            raise ValueError(f"{where}: missing column {c!r}; found {list(df.columns[:12])}")
    df = df.copy()
    df["case_id"] = df["case_id"].astype(str).str.strip()
    t = pd.to_numeric(df[time_col], errors="coerce")
    cens = pd.to_numeric(df[cens_col], errors="coerce")
    rows = []
    for cid, idx in df.groupby("case_id", sort=False).groups.items():
        tt, cc = t.loc[idx].dropna().unique(), cens.loc[idx].dropna().unique()
        if len(tt) == 0 or len(cc) == 0:
            dropped.append((cid, f"missing survival ({time_col}={list(t.loc[idx])}, {cens_col}={list(cens.loc[idx])}) "
                                 f"in {where}"))
            continue
        if len(tt) > 1 or len(cc) > 1:
            dropped.append((cid, f"its slide rows disagree on survival ({time_col} {list(tt)}, {cens_col} {list(cc)}) "
                                 f"in {where}"))
            continue
        if tt[0] < 0 or not valid_event(cc[0]):
            dropped.append((cid, f"invalid survival ({time_col}={tt[0]}, {cens_col}={cc[0]}) in {where}"))
            continue
        slides = list(dict.fromkeys(slide_stem(s) for s in df.loc[idx, "slide_id"].dropna() if str(s).strip()))
        rows.append((cid, ";".join(slides), float(tt[0]), int(event_from_censorship(cc[0]))))
    return pd.DataFrame(rows, columns=["case_id", "slide_id", "survival_months", "event"]).set_index("case_id")


def _dedupe_rna(rna: pd.DataFrame, policy: str, where: str, notes: list[str],
                dropped: list[tuple[str, str]]) -> pd.DataFrame:
    dup = rna.index[rna.index.duplicated()].unique().tolist()
    if not dup:
        return rna
    if policy == "error":
        raise ValueError(f"{where}: case ids with several expression rows: {dup}; choose --duplicate-rna "
                         "first|mean|drop")
    if policy == "first":
        notes.append(f"{where}: {len(dup)} case(s) have several expression rows; kept the first row of each: {dup}")
        return rna[~rna.index.duplicated(keep="first")]
    if policy == "mean":
        notes.append(f"{where}: {len(dup)} case(s) have several expression rows; averaged them: {dup}")
        return rna.groupby(level=0, sort=False).mean()
    if policy == "drop":
        dropped.extend((c, f"several differing expression rows in {where} (--duplicate-rna drop)") for c in dup)
        return rna[~rna.index.isin(dup)]
    raise ValueError(f"unknown duplicate-rna policy {policy!r}; choose first, mean, drop or error")


# --------------------------------------------------------------------------- assembly
def _assemble(out: Path, *, cohort: str, source: str, clinical: pd.DataFrame, rna: pd.DataFrame,
              folds: list[tuple[list[str], list[str]]] | None, hierarchy: str | os.PathLike,
              features_dir: str | os.PathLike | None, min_genes: int, dropped: list[tuple[str, str]],
              notes: list[str], command: str, rna_where: str, clin_where: str, link: bool) -> ImportReport:
    final = Path(out)
    check_out_dir(final, COHORT)
    table = read_hierarchy_tsv(hierarchy)
    bad = rna.columns[~np.isfinite(rna.to_numpy(dtype=float)).all(0)].tolist()
    if bad:
        raise ValueError(f"{rna_where}: genes with NaN/inf expression: {bad[:10]}; impute or remove them first")

    in_split: set[str] | None = None
    if folds is not None:
        in_split = {c for tr, va in folds for c in tr + va}
    already = {c for c, _ in dropped}
    for c in clinical.index:
        if c in already:
            continue
        if c not in rna.index:
            dropped.append((c, f"in {clin_where} but not in the RNA table {rna_where}"))
        elif in_split is not None and c not in in_split:
            dropped.append((c, "in the clinical and RNA tables but in no split"))
    for c in rna.index:
        if c not in clinical.index and c not in already:
            dropped.append((c, f"in the RNA table {rna_where} but not in {clin_where}"))
    if in_split is not None:
        for c in sorted(in_split):
            if c not in clinical.index and c not in already:
                dropped.append((c, f"in a split but not in {clin_where}"))
    keep = [c for c in clinical.index if c in rna.index and (in_split is None or c in in_split)]
    if not keep:
        raise ValueError(f"no case is present in {clin_where}, {rna_where}" + (" and the splits" if folds else "")
                         + "; check that the case ids use the same form (e.g. TCGA-XX-XXXX)")
    clin = clinical.loc[keep].copy()
    rna = rna.loc[keep]

    out = staging_dir(final, COHORT)          # written whole, checked, then renamed onto `final`
    try:
        report = _write_cohort(out, final, cohort=cohort, source=source, clin=clin, rna=rna, folds=folds,
                               table=table, features_dir=features_dir, min_genes=min_genes, dropped=dropped,
                               notes=notes, command=command, link=link)
        try:
            validate_cohort(out)
        except CohortError as err:
            raise UserError(f"the imported cohort would not pass `survmamba validate`, so nothing was written to "
                            f"{final}: {err}") from None
    except BaseException:
        with contextlib.suppress(Exception):
            discard_dir(out, COHORT)
        raise
    publish_dir(out, final)
    report.root = final
    return report


def _write_cohort(out: Path, final: Path, *, cohort: str, source: str, clin: pd.DataFrame, rna: pd.DataFrame,
                  folds: list[tuple[list[str], list[str]]] | None, table: pd.DataFrame,
                  features_dir: str | os.PathLike | None, min_genes: int, dropped: list[tuple[str, str]],
                  notes: list[str], command: str, link: bool) -> ImportReport:
    modalities = ["rna"]
    n_slides = 0
    width = encoder = None
    if features_dir is not None:
        from survmamba_lite.data.features_h5 import read_features_h5

        src = Path(features_dir)
        if not src.is_dir():
            raise FileNotFoundError(f"{src}: no such features folder")
        (out / FEATURES_DIR).mkdir(parents=True, exist_ok=True)
        for cid in list(clin.index):
            slides = [s for s in clin.at[cid, "slide_id"].split(";") if s]
            present = [s for s in slides if (src / f"{s}.h5").is_file()]
            missing = [s for s in slides if s not in present]
            if missing and present:
                notes.append(f"case {cid}: no feature file for slide(s) {missing}; using {present}")
            if not present:
                dropped.append((cid, f"no feature file in {src} for its slide(s) {slides or '(none listed)'}"))
                clin = clin.drop(index=cid)
                continue
            clin.at[cid, "slide_id"] = ";".join(present)
            for s in present:
                target = out / FEATURES_DIR / f"{s}.h5"
                if link:
                    os.symlink((src / f"{s}.h5").resolve(), target)
                else:
                    shutil.copy2(src / f"{s}.h5", target)
                n_slides += 1
                if width is None:
                    sf = read_features_h5(target)
                    width, encoder = int(sf.features.shape[1]), str(sf.attrs.get("encoder", "unknown"))
        rna = rna.loc[clin.index]
        modalities = ["wsi", "rna"]
    else:
        notes.append("no --features folder: the cohort is genomic-only (modalities: [rna])")
        n_slides = sum(len([s for s in v.split(";") if s]) for v in clin["slide_id"])

    kept = set(clin.index)
    out_folds: list[tuple[list[str], list[str]]] = []
    if folds is not None:
        out_folds = [([c for c in tr if c in kept], [c for c in va if c in kept]) for tr, va in folds]
    else:
        from survmamba_lite.data.layout import make_folds

        out_folds = make_folds(clin.reset_index(), 5, 0)
        notes.append("no --splits: wrote 5 stratified folds (make_folds, seed 0)")

    write_clinical(out, clin.reset_index())
    write_rna(out, rna, float_format="%.6g")
    write_hierarchy_tsv(table, out / "hierarchy.tsv")
    write_folds(out, out_folds)
    _, stats = build_genomic_hierarchy(table, list(rna.columns), min_genes)
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": f"tcga-{cohort.lower()}-{source}",
        "cohort": cohort.upper(),
        "source": source,
        "n_cases": int(len(clin)),
        "n_folds": len(out_folds),
        "modalities": modalities,
        "features": None if "wsi" not in modalities else {"encoder": encoder, "width": width, "n_slides": n_slides},
        "rna": {"n_genes": int(rna.shape[1]), "units": "as in the source table"},
        "hierarchy": {"min_genes": int(min_genes), "n_functions_file": stats.n_functions_file,
                      "n_processes_file": stats.n_processes_file, "n_functions": stats.n_functions,
                      "n_processes": stats.n_processes, "n_hierarchy_genes_missing": stats.n_hierarchy_genes_missing,
                      "mapping": "function = KEGG pathway, process = KEGG BRITE level-2 class"},
        "event_definition": f"{CENSORSHIP_RULE} (1: death observed)",
        "censored_fraction": round(float(1 - clin["event"].mean()), 4),
        "dropped_cases": [{"case_id": c, "reason": r} for c, r in dropped],
        "created_by": command,
    }
    write_manifest(out, manifest)
    return ImportReport(root=out, n_cases=len(clin), n_slides=n_slides, n_genes=int(rna.shape[1]),
                        modalities=modalities, dropped=dropped, notes=notes,
                        fold_sizes=[(len(tr), len(va)) for tr, va in out_folds], hierarchy_summary=stats.summary())


def import_xena(rna: str | os.PathLike, clinical: str | os.PathLike, out: str | os.PathLike, *,
                hierarchy: str | os.PathLike, splits: str | os.PathLike | None = None, cohort: str | None = None,
                features_dir: str | os.PathLike | None = None, min_genes: int = 1, duplicate_rna: str = "first",
                time_column: str = "survival_months", censorship_column: str = "censorship", link: bool = True,
                command: str | None = None) -> ImportReport:
    """Import SurvPath's Xena tables (see the module docstring)."""
    dropped: list[tuple[str, str]] = []
    notes: list[str] = []
    rna_df = _read_table(rna, "RNA table")
    first = rna_df.columns[0]
    rna_df = rna_df.rename(columns={first: "case_id"})
    rna_df["case_id"] = rna_df["case_id"].astype(str).str.strip()
    rna_df = rna_df.set_index("case_id")
    non_num = [c for c in rna_df.columns if not pd.api.types.is_numeric_dtype(rna_df[c])]
    if non_num:
        raise ValueError(f"{rna}: non-numeric gene columns {non_num[:10]}; the first column must be the case id and "
                         "every other column a gene")
    rna_df = _dedupe_rna(rna_df, duplicate_rna, str(rna), notes, dropped)
    clin = _collapse_clinical(_read_table(clinical, "clinical table"), str(clinical), time_column,
                              censorship_column, dropped)
    folds = read_source_splits(splits) if splits is not None else None
    cohort = cohort or Path(clinical).resolve().parent.name
    command = command or shlex.join(["survmamba", "import-tcga", "--format", "xena", "--rna", str(rna), "--clinical",
                                     str(clinical)] + (["--splits", str(splits)] if splits else [])
                                    + ["--hierarchy", str(hierarchy), "--out", str(out)])
    return _assemble(Path(out), cohort=cohort, source="xena", clinical=clin, rna=rna_df, folds=folds,
                     hierarchy=hierarchy, features_dir=features_dir, min_genes=min_genes, dropped=dropped,
                     notes=notes, command=command, rna_where=str(rna), clin_where=str(clinical), link=link)


def import_porpoise(table: str | os.PathLike, out: str | os.PathLike, *, hierarchy: str | os.PathLike,
                    splits: str | os.PathLike | None = None, cohort: str | None = None,
                    features_dir: str | os.PathLike | None = None, min_genes: int = 1,
                    time_column: str = "survival_months", censorship_column: str = "censorship", link: bool = True,
                    command: str | None = None) -> ImportReport:
    """Import a PORPOISE ``tcga_*_all_clean.csv[.zip]`` table (see the module docstring)."""
    dropped: list[tuple[str, str]] = []
    notes: list[str] = []
    df = _read_table(table, "PORPOISE table")
    gene_cols = [c for c in df.columns if c.endswith("_rnaseq")]
    if not gene_cols:
        kinds = sorted({c.rsplit("_", 1)[-1] for c in df.columns if c.endswith(("_mut", "_cnv"))})
        raise ValueError(f"{table}: no '<gene>_rnaseq' columns, so this cohort has no RNA-seq "
                         f"(it holds {', '.join('_' + k for k in kinds) or 'no molecular'} columns). SurvMamba needs "
                         "transcriptomics: use a table with RNA-seq (e.g. the Xena format) for this cohort")
    if "case_id" not in df.columns:
        raise ValueError(f"{table}: missing column 'case_id'")
    df["case_id"] = df["case_id"].astype(str).str.strip()
    rna_rows = df[["case_id"] + gene_cols].copy()
    rna_rows.columns = ["case_id"] + [c[: -len("_rnaseq")] for c in gene_cols]
    rna_rows = rna_rows.set_index("case_id").apply(pd.to_numeric, errors="coerce")
    disagree = [c for c, g in rna_rows.groupby(level=0) if len(g) > 1 and not np.allclose(
        g.to_numpy(dtype=float), g.to_numpy(dtype=float)[:1], equal_nan=True)]
    rna_rows = rna_rows[~rna_rows.index.duplicated(keep="first")]
    if disagree:
        notes.append(f"{table}: {len(disagree)} case(s) have differing RNA on their slide rows; kept the first row: "
                     f"{disagree[:10]}")
    clin = _collapse_clinical(df, str(table), time_column, censorship_column, dropped)
    folds = read_source_splits(splits) if splits is not None else None
    if cohort is None:
        m = re.match(r"tcga_([a-z]+)_", Path(table).name.lower())
        cohort = m.group(1) if m else Path(table).resolve().parent.name
    command = command or shlex.join(["survmamba", "import-tcga", "--format", "porpoise", "--table", str(table)]
                                    + (["--splits", str(splits)] if splits else [])
                                    + ["--hierarchy", str(hierarchy), "--out", str(out)])
    return _assemble(Path(out), cohort=cohort, source="porpoise", clinical=clin, rna=rna_rows, folds=folds,
                     hierarchy=hierarchy, features_dir=features_dir, min_genes=min_genes, dropped=dropped,
                     notes=notes, command=command, rna_where=str(table), clin_where=str(table), link=link)
