"""``survmamba fetch-tcga``: the public inputs of the real-data check, pinned by SHA-256.

Every table the real-data check (``survmamba realdata``) and ``survmamba kegg`` read comes
from a public code release; ``data_manifests/public_inputs.yaml`` lists each file with its
repository, commit, path and SHA-256. :func:`fetch_tcga` downloads them (from
``https://raw.githubusercontent.com/<repo>/<commit>/<path>``) or copies them from a local
mirror, checks every hash, and writes them in the layout ``survmamba realdata --data-root``
reads::

    DIR/tcga/xena/{blca,coadread}/{rna_clean.csv, clinical.csv, splits/splits_{0..4}.csv}
    DIR/tcga/porpoise/{blca,brca,luad,ucec}/{tcga_<x>_all_clean.csv.zip, splits/splits_{0..4}.csv}
    DIR/kegg/{kegg352_pathway_class_genes.tsv, br08901.json, KEGG_2021_Human.txt}
    DIR/wsi/{cmu-1-small-region.svs, tcga-cr-7395-01a-01-ts1.svs}

A file is written under a temporary name while it is hashed and renamed into place only when
its hash is the pinned one; a mismatch names the file and both hashes and leaves nothing. A
file already present with the pinned hash is kept (a rerun resumes). The 352-pathway KEGG
table is built, not downloaded: :func:`build_kegg352_table` joins CancerMul's
``KEGG_RNA_DNA.txt`` with BRITE ``br08901`` and gives the pinned bytes.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import yaml

from survmamba_lite.errors import UserError
from survmamba_lite.utils.io import TMP_SUFFIX

__all__ = ["PUBLIC_INPUTS", "COHORT_GROUPS", "PublicFile", "FetchReport", "ChecksumError", "read_public_inputs",
           "fetch_tcga", "build_kegg352_table", "sha256_file", "read_checksums"]

PUBLIC_INPUTS = Path(__file__).resolve().parents[2] / "data_manifests" / "public_inputs.yaml"
#: ``--cohort`` names: the real-data check's cohort keys, plus PORPOISE's UCEC table
COHORT_GROUPS = ("blca", "coadread", "blca-porpoise", "luad", "brca", "ucec")
RAW_URL = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"
KEGG_TABLE = "kegg/kegg352_pathway_class_genes.tsv"
_CHUNK = 1 << 20


class ChecksumError(UserError):
    """A file whose SHA-256 is not the pinned one."""


@dataclass(frozen=True)
class PublicFile:
    """One pinned input.

    Attributes:
        path: where it goes under ``DIR`` (the layout of ``--data-root``).
        group: a cohort key, ``kegg``, ``kegg-source`` (an input of a built file only) or ``wsi``.
        sha256, size: the pinned hash and size in bytes.
        url: the release's URL (None for a built file).
        built_from: the inputs of a built file (``path`` s of other entries).
    """

    path: str
    group: str
    sha256: str
    size: int
    url: str | None = None
    built_from: tuple[str, ...] = ()


@dataclass
class FetchReport:
    """What :func:`fetch_tcga` did: one row per file (path, status, origin, bytes)."""

    out: Path
    rows: list[dict] = field(default_factory=list)

    def summary(self) -> str:
        n = {s: sum(r["status"] == s for r in self.rows) for s in ("downloaded", "copied", "built", "present")}
        size = sum(r["bytes"] for r in self.rows) / 1e6
        lines = [f"{self.out}: {len(self.rows)} file(s), {size:.1f} MB, every SHA-256 as pinned in "
                 f"data_manifests/public_inputs.yaml ({', '.join(f'{v} {k}' for k, v in n.items() if v)})"]
        lines += [f"  {r['status']:<10} {r['path']}" for r in self.rows]
        return "\n".join(lines)


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def read_public_inputs(path: str | os.PathLike = PUBLIC_INPUTS) -> list[PublicFile]:
    """The entries of ``data_manifests/public_inputs.yaml`` with their URLs."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: the list of pinned public inputs is missing; it ships with the project's source "
                        "(data_manifests/public_inputs.yaml): run from a checkout of the project")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    sources = data["sources"]
    out = []
    for e in data["files"]:
        url = None
        if "source" in e:
            s = sources[e["source"]]
            url = RAW_URL.format(repo=s["repo"], commit=s["commit"], path=e["source_path"])
        out.append(PublicFile(e["path"], e["group"], str(e["sha256"]), int(e["bytes"]), url,
                              tuple(e.get("built_from") or ())))
    return out


def read_checksums(path: str | os.PathLike) -> dict[str, str]:
    """A checksum override: a YAML mapping ``path: sha256`` (paths as in the layout, e.g. ``kegg/br08901.json``)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise UserError(f"--checksums {path}: not a readable YAML file ({err})") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) and len(v) == 64 for v in data.values()):
        raise UserError(f"--checksums {path}: expected a mapping of layout paths to 64-digit SHA-256 hex strings")
    return {str(k): v.lower() for k, v in data.items()}


# --------------------------------------------------------------------------- the KEGG table
def build_kegg352_table(kegg_rna_dna: str | os.PathLike, br08901: str | os.PathLike) -> bytes:
    r"""The 352-pathway table: ``pathway_id, pathway_name, level1_category, level2_class, n_genes, genes``.

    ``KEGG_RNA_DNA.txt`` (tab-separated, CSV-quoted): ``hsa<map>_<name>``, the KEGG level-2
    class, methylation probes, genes joined by ``/``. The pathway's name and its level-1
    category come from BRITE ``br08901`` (by map number), the class and genes from the file;
    genes are joined by ``,``. Lines end with ``\n``.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "k.txt").write_text('hsa04110_Cell_cycle\tCell growth and death\tcg1/cg2\tCDK1/CDK2\n')
    >>> _ = (d / "b.json").write_text(json.dumps({"name": "br08901", "children": [{"name": "Cellular Processes",
    ...     "children": [{"name": "Cell growth and death", "children": [{"name": "04110  Cell cycle"}]}]}]}))
    >>> for line in build_kegg352_table(d / "k.txt", d / "b.json").decode().splitlines():
    ...     print(" | ".join(line.split("\t")))
    pathway_id | pathway_name | level1_category | level2_class | n_genes | genes
    hsa04110 | Cell cycle | Cellular Processes | Cell growth and death | 2 | CDK1,CDK2
    """
    brite = json.loads(Path(br08901).read_text(encoding="utf-8"))
    maps = {}
    for category in brite["children"]:
        for cls in category.get("children", []):
            for m in cls.get("children", []):
                number, _, name = m["name"].partition("  ")
                maps[number.strip()] = (category["name"], name.strip())
    lines = ["\t".join(("pathway_id", "pathway_name", "level1_category", "level2_class", "n_genes", "genes"))]
    with open(kegg_rna_dna, encoding="utf-8", newline="") as fh:
        for row in csv.reader(fh, delimiter="\t"):
            if not row:
                continue
            pid, _, raw_name = row[0].partition("_")
            if pid[3:] not in maps:
                raise ValueError(f"{kegg_rna_dna}: pathway {pid} is not a map of {br08901}")
            category, name = maps[pid[3:]]
            genes = row[3].split("/")
            lines.append("\t".join((pid, name, category, row[1], str(len(genes)), ",".join(genes))))
    return ("\n".join(lines) + "\n").encode("utf-8")


# --------------------------------------------------------------------------- fetching
def _mismatch(entry: PublicFile, origin: str, got: str, expected: str) -> ChecksumError:
    return ChecksumError(f"{entry.path} ({origin}): SHA-256 {got}, expected {expected} "
                         "(data_manifests/public_inputs.yaml); the file differs from the pinned release (changed "
                         "upstream, corrupted, or another version): nothing was written for it")


def _write_verified(entry: PublicFile, dest: Path, chunks, origin: str, expected: str) -> int:
    """Stream ``chunks`` into a temporary file beside ``dest``; rename it into place if its hash is ``expected``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}{TMP_SUFFIX}")
    h, n = hashlib.sha256(), 0
    try:
        with open(tmp, "wb") as fh:
            for block in chunks:
                h.update(block)
                fh.write(block)
                n += len(block)
        if h.hexdigest() != expected:
            raise _mismatch(entry, origin, h.hexdigest(), expected)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return n


def _file_chunks(path: Path):
    with open(path, "rb") as fh:
        yield from iter(lambda: fh.read(_CHUNK), b"")


def _url_chunks(url: str, timeout: float):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            yield from iter(lambda: resp.read(_CHUNK), b"")
    except (urllib.error.URLError, OSError) as err:
        raise UserError(f"could not download {url} ({err}); check the internet connection, or copy the files "
                        "from a folder laid out the same way with --mirror DIR") from None


def fetch_tcga(cohorts: Sequence[str], out: str | os.PathLike, *, mirror: str | os.PathLike | None = None,
               checksums: Mapping[str, str] | None = None, include_wsi: bool = True, overwrite: bool = False,
               inputs: str | os.PathLike = PUBLIC_INPUTS, timeout: float = 60.0,
               log: Callable[[str], None] | None = None) -> FetchReport:
    """Fetch the pinned public inputs of ``cohorts`` (plus the KEGG files, and the two slides) into ``out``.

    Args:
        cohorts: keys of :data:`COHORT_GROUPS` (``all`` for every one).
        out: the data root to fill (``survmamba realdata --data-root``).
        mirror: copy from this folder (laid out like ``out``) instead of downloading.
        checksums: ``{path: sha256}`` replacing pinned hashes (a mirror of other versions).
        include_wsi: also the two real slides of the slide check.
        overwrite: replace a present file whose hash differs (else that is an error).
        inputs: the list of pinned files (``data_manifests/public_inputs.yaml``).
        timeout: seconds to wait for a server.
        log: called with one line per file.
    """
    wanted = list(COHORT_GROUPS) if "all" in cohorts else list(dict.fromkeys(cohorts))
    bad = [c for c in wanted if c not in COHORT_GROUPS]
    if bad:
        raise UserError(f"--cohort {bad[0]}: unknown; choose from {', '.join(COHORT_GROUPS)} or all")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file; give a folder")
    mirror = Path(mirror) if mirror is not None else None
    if mirror is not None and not mirror.is_dir():
        raise UserError(f"--mirror {mirror}: no such folder")
    overrides = dict(checksums or {})
    entries = read_public_inputs(inputs)
    unknown = [p for p in overrides if p not in {e.path for e in entries}]
    if unknown:
        raise UserError(f"checksum override for {unknown[0]}, which is not a pinned input; paths look like "
                        f"{entries[0].path}")
    # the KEGG table is built from its sources (group kegg-source), unless a mirror holds the table itself
    build_table = mirror is None or not (mirror / KEGG_TABLE).is_file()
    groups = set(wanted) | {"kegg"} | ({"kegg-source"} if build_table else set()) | ({"wsi"} if include_wsi else set())
    chosen = [e for e in entries if e.group in groups]
    chosen.sort(key=lambda e: bool(e.built_from))                # built files after their inputs
    report = FetchReport(out)
    for e in chosen:
        expected = overrides.get(e.path, e.sha256).lower()
        dest = out / e.path
        if dest.is_file():
            got = sha256_file(dest)
            if got == expected:
                report.rows.append({"path": e.path, "status": "present", "origin": str(dest), "bytes": e.size})
                continue
            if not overwrite:
                raise ChecksumError(f"{dest}: present with SHA-256 {got}, expected {expected} "
                                    "(data_manifests/public_inputs.yaml); delete it or add --overwrite")
        if e.built_from and build_table:
            missing = [p for p in e.built_from if not (out / p).is_file()]
            if missing:
                raise UserError(f"{e.path}: is built from {', '.join(e.built_from)}, but {missing[0]} is missing "
                                f"in {out}")
            data = build_kegg352_table(*(out / p for p in e.built_from))
            origin, status = "built from " + " + ".join(e.built_from), "built"
            n = _write_verified(e, dest, [data], origin, expected)
        elif mirror is not None:
            src = mirror / e.path
            if not src.is_file():
                raise UserError(f"--mirror {mirror}: has no {e.path}; a mirror is laid out like the data root "
                                "(tcga/, kegg/, wsi/; see data_manifests/public_inputs.yaml)")
            origin, status = str(src), "copied"
            n = _write_verified(e, dest, _file_chunks(src), origin, expected)
        else:
            origin, status = e.url, "downloaded"
            n = _write_verified(e, dest, _url_chunks(e.url, timeout), origin, expected)
        report.rows.append({"path": e.path, "status": status, "origin": origin, "bytes": n})
        if log is not None:
            log(f"{status:<10} {e.path}")
    return report

