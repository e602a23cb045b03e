r"""The genomic hierarchy: genes -> functions (KEGG pathways) -> processes (KEGG classes).

The paper groups transcriptomics into ``J`` biological processes :math:`S_j`, each a set
of :math:`K_j` genomic functions :math:`F_{jk}`, each function a set of genes (Sec. 3.3).
We take a function to be a KEGG pathway map and its process to be the map's **level-2
class** in the KEGG BRITE hierarchy ``br08901`` (e.g. ``hsa04110 Cell cycle`` belongs to
"Cell growth and death", itself under the level-1 category "Cellular Processes").

On disk the hierarchy is one tab-separated file, ``hierarchy.tsv``:

=============  =====================================================================
column         meaning
=============  =====================================================================
function_id    unique id of the function (``hsa04110``)
function_name  readable name (``Cell cycle``)
process        process the function belongs to (KEGG level-2 class)
genes          member gene symbols, comma-separated
category       (optional) KEGG level-1 category, used by ``--exclude-categories``
=============  =====================================================================

The file keeps *every* function; :func:`build_genomic_hierarchy` intersects it with the
gene columns of an RNA table and keeps the functions with at least ``min_genes`` measured
genes, then the processes that still hold a function. Functions keep their file order and
processes the order of their first kept function.

Two ways to build the file:

* :func:`hierarchy_from_kegg_table`: a table with ``pathway_id, pathway_name,
  level1_category, level2_class, genes`` (the 352-pathway table has 45 level-2 classes).
* :func:`hierarchy_from_gmt_brite`: a GMT gene-set library (or Enrichr's variant: name,
  empty description, genes) whose set names are KEGG map names, joined with the BRITE
  ``br08901`` JSON by normalised name (:func:`normalize_pathway_name`).

>>> import pandas as pd
>>> table = pd.DataFrame({"function_id": ["f1", "f2", "f3"], "function_name": ["a", "b", "c"],
...     "process": ["P", "P", "Q"], "genes": ["A,B,X", "C", "Y,Z"]})
>>> h, stats = build_genomic_hierarchy(table, genes=["A", "B", "C", "D"], min_genes=1)
>>> h.function_ids, h.process_names, h.function_genes
(('f1', 'f2'), ('P',), ((0, 1), (2,)))
>>> stats.n_functions_file, stats.n_functions, stats.n_hierarchy_genes_missing
(3, 2, 3)
"""
from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from survmamba_lite.data.bag import GenomicHierarchy
from survmamba_lite.utils.io import atomic_path

__all__ = [
    "HIERARCHY_COLUMNS",
    "HierarchyStats",
    "GmtMatch",
    "RENAMED_MAPS",
    "read_hierarchy_tsv",
    "write_hierarchy_tsv",
    "hierarchy_from_kegg_table",
    "read_gmt",
    "read_brite_br08901",
    "normalize_pathway_name",
    "hierarchy_from_gmt_brite",
    "build_genomic_hierarchy",
    "hierarchy_file_stats",
]

HIERARCHY_COLUMNS = ("function_id", "function_name", "process", "genes")
KEGG_TABLE_COLUMNS = ("pathway_id", "pathway_name", "level1_category", "level2_class", "genes")


@dataclass
class HierarchyStats:
    """What survived when a hierarchy file met an RNA gene list.

    Attributes:
        min_genes: a function is kept when at least this many of its genes are measured.
        n_functions_file / n_processes_file: counts in the file, before filtering.
        n_functions / n_processes: counts kept.
        n_genes_rna: gene columns of the RNA table.
        n_hierarchy_genes: distinct genes named by the file.
        n_hierarchy_genes_present: of those, measured in the RNA table.
        n_hierarchy_genes_missing: named by the file but absent from the RNA table.
        n_rna_genes_in_no_function: RNA genes that no kept function contains.
        dropped_functions: ids of functions with fewer than ``min_genes`` measured genes.
        dropped_processes: processes left without a function.
    """

    min_genes: int
    n_functions_file: int
    n_processes_file: int
    n_functions: int
    n_processes: int
    n_genes_rna: int
    n_hierarchy_genes: int
    n_hierarchy_genes_present: int
    n_hierarchy_genes_missing: int
    n_rna_genes_in_no_function: int
    dropped_functions: list[str] = field(default_factory=list)
    dropped_processes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        lines = [
            f"hierarchy file: {self.n_functions_file} functions in {self.n_processes_file} processes, "
            f"{self.n_hierarchy_genes} distinct genes",
            f"RNA table: {self.n_genes_rna} genes; {self.n_hierarchy_genes_present} of the hierarchy's genes "
            f"are measured, {self.n_hierarchy_genes_missing} are missing from the RNA table",
            f"kept with >= {self.min_genes} measured gene(s): {self.n_functions} functions in "
            f"{self.n_processes} processes ({len(self.dropped_functions)} functions and "
            f"{len(self.dropped_processes)} processes dropped)",
        ]
        if self.dropped_processes:
            lines.append("dropped processes: " + ", ".join(self.dropped_processes))
        return "\n".join(lines)


# --------------------------------------------------------------------------- file I/O
def _split_genes(cell: object) -> list[str]:
    if not isinstance(cell, str):
        return []
    out: list[str] = []
    for g in cell.split(","):
        g = g.strip()
        if g and g not in out:
            out.append(g)
    return out


def _check_hierarchy_frame(df: pd.DataFrame, where: str) -> pd.DataFrame:
    missing = [c for c in HIERARCHY_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}; a hierarchy file needs the tab-separated "
                         f"columns {list(HIERARCHY_COLUMNS)} (build one with `survmamba kegg`)")
    df = df.copy()
    for c in ("function_id", "function_name", "process"):
        df[c] = df[c].astype("string").str.strip()
        empty = df.index[df[c].isna() | (df[c] == "")].tolist()
        if empty:
            raise ValueError(f"{where}: column {c!r} is empty in row(s) {[i + 2 for i in empty[:10]]} "
                             "(file line numbers); fill it or delete those rows")
    dup = df.loc[df["function_id"].duplicated(keep=False), "function_id"].unique().tolist()
    if dup:
        raise ValueError(f"{where}: duplicated function_id {dup[:10]}; each function must appear once "
                         "(merge their gene lists or rename one)")
    no_genes = df.loc[df["genes"].map(lambda c: len(_split_genes(c)) == 0), "function_id"].tolist()
    if no_genes:
        raise ValueError(f"{where}: function(s) {no_genes[:10]} list no genes in column 'genes'; "
                         "give comma-separated gene symbols or delete those rows")
    df["function_id"] = df["function_id"].astype(str)
    df["function_name"] = df["function_name"].astype(str)
    df["process"] = df["process"].astype(str)
    df["genes"] = df["genes"].map(lambda c: ",".join(_split_genes(c)))
    return df.reset_index(drop=True)


def read_hierarchy_tsv(path: str | os.PathLike) -> pd.DataFrame:
    """Read and check ``hierarchy.tsv``; genes are returned comma-joined, deduplicated."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no hierarchy file; build one with `survmamba kegg --table ... --out {path}`")
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    return _check_hierarchy_frame(df, str(path))


def write_hierarchy_tsv(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a hierarchy frame (columns :data:`HIERARCHY_COLUMNS` [+ ``category``])."""
    path = Path(path)
    df = _check_hierarchy_frame(df, "hierarchy to write")
    cols = list(HIERARCHY_COLUMNS) + (["category"] if "category" in df.columns else [])
    with atomic_path(path) as tmp:
        df[cols].to_csv(tmp, sep="\t", index=False, lineterminator="\n")
    return path


def _exclude(df: pd.DataFrame, exclude_categories: Iterable[str], where: str) -> pd.DataFrame:
    exclude = [c for c in exclude_categories if c]
    if not exclude:
        return df
    known = set(df["category"])
    unknown = [c for c in exclude if c not in known]
    if unknown:
        raise ValueError(f"{where}: --exclude-categories {unknown} match no level-1 category; "
                         f"known categories are {sorted(known)}")
    return df[~df["category"].isin(exclude)].reset_index(drop=True)


def hierarchy_from_kegg_table(path: str | os.PathLike, exclude_categories: Iterable[str] = ()) -> pd.DataFrame:
    """Hierarchy frame from a KEGG table (``pathway_id, pathway_name, level1_category,
    level2_class, genes``; tab- or comma-separated). Process = level-2 class."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such KEGG table")
    sep = "\t" if path.suffix.lower() in (".tsv", ".txt", ".tab") else ","
    t = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    missing = [c for c in KEGG_TABLE_COLUMNS if c not in t.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; a KEGG table needs {list(KEGG_TABLE_COLUMNS)}")
    df = pd.DataFrame({
        "function_id": t["pathway_id"], "function_name": t["pathway_name"],
        "process": t["level2_class"], "genes": t["genes"], "category": t["level1_category"],
    })
    df = _check_hierarchy_frame(df, str(path))
    return _exclude(df, exclude_categories, str(path))


# --------------------------------------------------------------------------- GMT + BRITE
def read_gmt(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read a GMT gene-set file: ``name<TAB>description<TAB>gene<TAB>gene...`` per line.

    Enrichr's libraries use the same layout with an empty description. Genes may carry a
    weight after a comma (``TP53,1.0``), which is dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such GMT file")
    sets: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.rstrip("\n\r").split("\t")
            if not parts[0].strip():
                continue
            if len(parts) < 3:
                raise ValueError(f"{path}:{lineno}: expected name, description and genes separated by tabs")
            name = parts[0].strip()
            genes: list[str] = []
            for g in parts[2:]:
                g = g.split(",")[0].strip()
                if g and g not in genes:
                    genes.append(g)
            if name in sets:
                raise ValueError(f"{path}:{lineno}: gene set {name!r} appears twice")
            sets[name] = genes
    if not sets:
        raise ValueError(f"{path}: no gene sets found")
    return sets


_MAP_RE = re.compile(r"^\s*(\d{5})\s+(.*?)\s*(\[.*\])?\s*$")


def read_brite_br08901(path: str | os.PathLike) -> pd.DataFrame:
    """Flatten the KEGG BRITE ``br08901`` JSON into ``map_id, map_name, category, class``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such BRITE JSON (KEGG br08901)")
    with open(path, encoding="utf-8") as fh:
        root = json.load(fh)
    rows = []
    for cat in root.get("children", []):
        for cls in cat.get("children", []):
            for m in cls.get("children", []):
                match = _MAP_RE.match(m["name"])
                if match:
                    rows.append((match.group(1), match.group(2), cat["name"], cls["name"]))
    if not rows:
        raise ValueError(f"{path}: no pathway maps found; expected the br08901 JSON "
                         "(category -> class -> '00010  Map name')")
    return pd.DataFrame(rows, columns=["map_id", "map_name", "category", "class"])


def normalize_pathway_name(name: str) -> str:
    """Lower-case, organism suffix and punctuation removed, so GMT and BRITE names meet.

    >>> normalize_pathway_name("Glycolysis / Gluconeogenesis - Homo sapiens (human)")
    'glycolysis gluconeogenesis'
    >>> normalize_pathway_name("Th1 and Th2 cell differentiation")
    'th1 and th2 cell differentiation'
    """
    s = re.sub(r"\s+-\s+homo sapiens \(human\)\s*$", "", name.strip(), flags=re.I)
    s = s.lower().replace("β", "beta").replace("α", "alpha").replace("γ", "gamma").replace("κ", "kappa")
    s = re.sub(r"[^a-z0-9]+", " ", s)
    return " ".join(s.split())


#: KEGG maps renamed after the GMT libraries in circulation were made (same map id).
RENAMED_MAPS = {
    "porphyrin and chlorophyll metabolism": "00860",  # now "Porphyrin metabolism"
    "rna transport": "03013",  # now "Nucleocytoplasmic transport"
}


@dataclass
class GmtMatch:
    """How GMT set names met BRITE map names.

    Attributes:
        exact: names equal after :func:`normalize_pathway_name`.
        other: ``(gmt name, BRITE name, how)`` for the other matches; ``how`` is
            ``"prefix"`` (the GMT name is the BRITE name without its `` - variant``
            suffix; for several variants the ``animal`` one is taken), ``"renamed"``
            (:data:`RENAMED_MAPS`) or ``"fuzzy"`` (close spelling).
        unmatched: GMT names left out, with the reason.
    """

    exact: int
    other: list[tuple[str, str, str]]
    unmatched: list[str]

    def summary(self) -> str:
        lines = [f"{self.exact} gene sets matched a BRITE map name exactly, {len(self.other)} otherwise, "
                 f"{len(self.unmatched)} unmatched"]
        lines += [f"  {how}: {a!r} -> {b!r}" for a, b, how in self.other]
        lines += [f"  unmatched: {u}" for u in self.unmatched]
        return "\n".join(lines)


def hierarchy_from_gmt_brite(gmt: str | os.PathLike, brite: str | os.PathLike, *,
                             exclude_categories: Iterable[str] = (), fuzzy_cutoff: float = 0.92,
                             organism: str = "hsa") -> tuple[pd.DataFrame, GmtMatch]:
    """Hierarchy frame from a GMT library whose set names are KEGG map names + br08901.

    Matching, in order: equal normalised names (:func:`normalize_pathway_name`); the
    GMT name equal to a BRITE name without its `` - variant`` suffix (``Autophagy`` ->
    ``Autophagy - animal``; when several variants remain and one is ``animal`` it is
    taken, otherwise the name is reported as ambiguous); a known rename
    (:data:`RENAMED_MAPS`); the closest BRITE name by :func:`difflib.get_close_matches`
    with ratio >= ``fuzzy_cutoff``. Every non-exact match and every name left out is
    listed in the returned :class:`GmtMatch`.
    """
    sets = read_gmt(gmt)
    br = read_brite_br08901(brite).drop_duplicates("map_id").reset_index(drop=True)
    names = list(br["map_name"])
    by_norm: dict[str, int] = {}
    by_stem: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        by_norm.setdefault(normalize_pathway_name(name), i)
        if " - " in name:
            by_stem.setdefault(normalize_pathway_name(name.split(" - ")[0]), []).append(i)
    by_id = {m: i for i, m in enumerate(br["map_id"])}
    norms = list(by_norm)
    rows, other, unmatched, exact, used = [], [], [], 0, {}
    for name, genes in sets.items():
        key = normalize_pathway_name(name)
        i, how = None, None
        if key in by_norm:
            i, exact = by_norm[key], exact + 1
        elif key in by_stem:
            cands = by_stem[key]
            animal = [c for c in cands if names[c].lower().endswith("- animal")]
            if len(cands) == 1 or len(animal) == 1:
                i, how = (cands[0] if len(cands) == 1 else animal[0]), "prefix"
            else:
                unmatched.append(f"{name} (ambiguous: {[names[c] for c in cands]})")
                continue
        elif key in RENAMED_MAPS and RENAMED_MAPS[key] in by_id:
            i, how = by_id[RENAMED_MAPS[key]], "renamed"
        else:
            close = difflib.get_close_matches(key, norms, n=1, cutoff=fuzzy_cutoff)
            if not close:
                unmatched.append(f"{name} (no BRITE map of that name)")
                continue
            i, how = by_norm[close[0]], "fuzzy"
        if how:
            other.append((name, names[i], how))
        fid = f"{organism}{br['map_id'].iat[i]}"
        if fid in used:
            unmatched.append(f"{name} (same map as {used[fid]!r})")
            continue
        used[fid] = name
        rows.append((fid, name, br["class"].iat[i], ",".join(genes), br["category"].iat[i]))
    if not rows:
        raise ValueError(f"{gmt}: no gene-set name matched a map name of {brite}; is this a KEGG library?")
    df = pd.DataFrame(rows, columns=list(HIERARCHY_COLUMNS) + ["category"])
    df = _check_hierarchy_frame(df, str(gmt))
    return _exclude(df, exclude_categories, str(gmt)), GmtMatch(exact, other, unmatched)


# --------------------------------------------------------------------------- building
def hierarchy_file_stats(df: pd.DataFrame) -> dict:
    """Counts of a hierarchy frame before any filtering."""
    genes = {g for cell in df["genes"] for g in _split_genes(cell)}
    return {"n_functions": int(len(df)), "n_processes": int(df["process"].nunique()), "n_genes": len(genes)}


def build_genomic_hierarchy(table: pd.DataFrame, genes: Sequence[str], min_genes: int = 1
                            ) -> tuple[GenomicHierarchy, HierarchyStats]:
    """Intersect a hierarchy frame with the RNA gene columns.

    Args:
        table: hierarchy frame (:func:`read_hierarchy_tsv`).
        genes: the ``G`` gene columns of the RNA table, in order; the hierarchy's
            :attr:`GenomicHierarchy.genes` is exactly this tuple.
        min_genes: keep a function when at least this many of its genes are in ``genes``.

    Returns:
        the :class:`GenomicHierarchy` and :class:`HierarchyStats`.
    """
    if int(min_genes) != min_genes or min_genes < 1:
        raise ValueError(f"min_genes must be a positive integer, got {min_genes!r}")
    table = _check_hierarchy_frame(table, "hierarchy")
    genes = tuple(str(g) for g in genes)
    if len(set(genes)) != len(genes):
        dup = sorted({g for g in genes if genes.count(g) > 1})
        raise ValueError(f"RNA gene columns are duplicated: {dup[:10]}; keep one column per gene")
    index = {g: i for i, g in enumerate(genes)}
    all_h_genes: set[str] = set()
    kept_rows, dropped = [], []
    for row in table.itertuples(index=False):
        members = _split_genes(row.genes)
        all_h_genes.update(members)
        present = tuple(index[g] for g in members if g in index)
        if len(present) >= min_genes:
            kept_rows.append((row.function_id, row.function_name, row.process, present))
        else:
            dropped.append(row.function_id)
    processes_file = list(dict.fromkeys(table["process"]))
    processes = list(dict.fromkeys(r[2] for r in kept_rows))
    if not kept_rows:
        raise ValueError(f"no function keeps >= {min_genes} gene(s) measured in the RNA table "
                         f"({len(all_h_genes & set(genes))} of {len(all_h_genes)} hierarchy genes are measured); "
                         "check that gene symbols match (e.g. strip '_rnaseq' suffixes) or lower --min-genes")
    p_index = {p: j for j, p in enumerate(processes)}
    hierarchy = GenomicHierarchy(
        genes=genes,
        function_ids=tuple(r[0] for r in kept_rows),
        function_names=tuple(r[1] for r in kept_rows),
        function_genes=tuple(r[3] for r in kept_rows),
        function_process=tuple(p_index[r[2]] for r in kept_rows),
        process_names=tuple(processes),
    )
    covered = {i for r in kept_rows for i in r[3]}
    present = all_h_genes & set(genes)
    stats = HierarchyStats(
        min_genes=int(min_genes),
        n_functions_file=len(table), n_processes_file=len(processes_file),
        n_functions=hierarchy.n_functions, n_processes=hierarchy.n_processes,
        n_genes_rna=len(genes), n_hierarchy_genes=len(all_h_genes),
        n_hierarchy_genes_present=len(present), n_hierarchy_genes_missing=len(all_h_genes - present),
        n_rna_genes_in_no_function=len(genes) - len(covered),
        dropped_functions=dropped, dropped_processes=[p for p in processes_file if p not in p_index],
    )
    return hierarchy, stats
