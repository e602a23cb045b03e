"""Slide download lists for the GDC Data Transfer Tool (``gdc-client``).

``gdc-client download -m MANIFEST`` reads a tab-separated manifest with the columns
``id, filename, md5, size, state``, where ``id`` is the GDC *file* UUID.

A TCGA diagnostic slide is named ``<barcode>.<uuid>.svs``, e.g.
``TCGA-2F-A9KO-01Z-00-DX1.195576CF-B739-4BD9-B15B-4A70AE287D3E.svs``. The UUID in the
name identifies the slide image as submitted; it is **not** the GDC file id (the GDC
gave files new ids in later data releases; for example the open-data bucket serves
``TCGA-05-4395-01Z-00-DX1.20205276-...svs`` under file id ``2aa283f3-...``). A clinical
table therefore gives file *names*, and the ids, checksums and sizes have to come from
the GDC API. :func:`build_gdc_manifest` does the offline part:

1. it writes ``OUT`` listing the slide file names (``filename, case_id, slide_id,
   name_uuid``) and ``OUT.query.json``, the request body for the GDC ``files`` endpoint
   that returns the real manifest;
2. given that response (``--gdc-files``), it checks every slide was found and writes
   ``OUT`` as a ``gdc-client`` manifest (``id, filename, md5, size, state``).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from survmamba_lite.data.layout import split_slide_ids
from survmamba_lite.utils.io import atomic_path, atomic_write_text

__all__ = ["GDC_FILES_ENDPOINT", "GDC_MANIFEST_COLUMNS", "slide_file_table", "gdc_files_query",
           "build_gdc_manifest", "GdcManifestResult"]

GDC_FILES_ENDPOINT = "https://api.gdc.cancer.gov/files"
GDC_MANIFEST_COLUMNS = ("id", "filename", "md5", "size", "state")
_NAME_RE = re.compile(r"^(?P<barcode>TCGA-[^.]+)\.(?P<uuid>[0-9A-Fa-f-]{36})\.svs$")


def slide_file_table(clinical: pd.DataFrame) -> pd.DataFrame:
    """``case_id, slide_id, filename, name_uuid`` for every slide of a clinical table.

    Accepts this project's ``clinical.csv`` (slide ids without extension, ``;``-joined)
    and the TCGA tables (one ``...svs`` per row).

    >>> t = slide_file_table(pd.DataFrame({"case_id": ["TCGA-2F-A9KO"],
    ...     "slide_id": ["TCGA-2F-A9KO-01Z-00-DX1.195576CF-B739-4BD9-B15B-4A70AE287D3E"]}))
    >>> t.loc[0, "filename"], t.loc[0, "name_uuid"]
    ('TCGA-2F-A9KO-01Z-00-DX1.195576CF-B739-4BD9-B15B-4A70AE287D3E.svs', '195576cf-b739-4bd9-b15b-4a70ae287d3e')
    """
    for c in ("case_id", "slide_id"):
        if c not in clinical.columns:
            raise ValueError(f"clinical table lacks column {c!r}; gdc-manifest needs case_id and slide_id")
    rows = []
    for case, cell in zip(clinical["case_id"].astype(str), clinical["slide_id"]):
        for s in split_slide_ids(cell):
            name = s if s.lower().endswith(".svs") else f"{s}.svs"
            m = _NAME_RE.match(name)
            rows.append((case, name[:-4], name, m.group("uuid").lower() if m else ""))
    df = pd.DataFrame(rows, columns=["case_id", "slide_id", "filename", "name_uuid"])
    return df.drop_duplicates("filename").reset_index(drop=True)


def gdc_files_query(filenames: list[str]) -> dict:
    """Body of a ``POST`` to :data:`GDC_FILES_ENDPOINT` returning a manifest for ``filenames``."""
    return {
        "filters": {"op": "in", "content": {"field": "file_name", "value": list(filenames)}},
        "fields": "file_id,file_name,md5sum,file_size,state",
        "return_type": "manifest",
        "size": max(len(filenames), 1),
    }


@dataclass
class GdcManifestResult:
    out: Path
    n_slides: int
    resolved: bool
    query: Path | None = None
    missing: list[str] = field(default_factory=list)
    names_without_uuid: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.resolved:
            s = f"wrote {self.out}: gdc-client manifest for {self.n_slides} slides"
            if self.missing:
                s += f"; {len(self.missing)} slide(s) not in the GDC response: {self.missing[:10]}"
            return s + f"\ndownload with: gdc-client download -m {self.out} -d SLIDE_DIR"
        lines = [
            f"wrote {self.out}: {self.n_slides} slide file names (not yet a gdc-client manifest: file ids, md5 "
            "and sizes come from the GDC API; the UUID inside a TCGA slide name is not the GDC file id)",
            f"wrote {self.query}: the GDC API request. Resolve it where the internet is reachable:",
            f"  curl -s -X POST -H 'Content-Type: application/json' -d @{self.query} {GDC_FILES_ENDPOINT} "
            "> gdc_files.txt",
            f"  survmamba gdc-manifest --clinical CLINICAL --gdc-files gdc_files.txt --out {self.out}",
        ]
        if self.names_without_uuid:
            lines.append(f"note: {len(self.names_without_uuid)} slide names are not TCGA '<barcode>.<uuid>.svs' names: "
                         f"{self.names_without_uuid[:5]}")
        return "\n".join(lines)


def _read_gdc_files(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such GDC response file")
    df = pd.read_csv(path, sep="\t", dtype=str)
    rename = {"file_id": "id", "file_name": "filename", "md5sum": "md5", "file_size": "size"}
    df = df.rename(columns=rename)
    missing = [c for c in GDC_MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected a GDC manifest (id, filename, md5, size, "
                         "state) or a GDC files table (file_id, file_name, md5sum, file_size, state)")
    return df[list(GDC_MANIFEST_COLUMNS)]


def build_gdc_manifest(clinical: str | os.PathLike, out: str | os.PathLike,
                       gdc_files: str | os.PathLike | None = None) -> GdcManifestResult:
    """Write the slide list and GDC query (or, with ``gdc_files``, the gdc-client manifest)."""
    clinical, out = Path(clinical), Path(out)
    if not clinical.is_file():
        raise FileNotFoundError(f"{clinical}: no such clinical table")
    table = slide_file_table(pd.read_csv(clinical, dtype=str, keep_default_na=False))
    if table.empty:
        raise ValueError(f"{clinical}: no slide ids in column slide_id; nothing to download")
    out.parent.mkdir(parents=True, exist_ok=True)
    if gdc_files is None:
        with atomic_path(out) as tmp:
            table[["filename", "case_id", "slide_id", "name_uuid"]].to_csv(tmp, sep="\t", index=False,
                                                                          lineterminator="\n")
        query = out.with_name(out.name + ".query.json")
        atomic_write_text(query, json.dumps(gdc_files_query(table["filename"].tolist()), indent=1) + "\n")
        return GdcManifestResult(out, len(table), False, query,
                                 names_without_uuid=table.loc[table["name_uuid"] == "", "filename"].tolist())
    resp = _read_gdc_files(Path(gdc_files))
    merged = table.merge(resp, on="filename", how="left")
    missing = merged.loc[merged["id"].isna(), "filename"].tolist()
    found = merged.dropna(subset=["id"])
    with atomic_path(out) as tmp:
        found[list(GDC_MANIFEST_COLUMNS)].to_csv(tmp, sep="\t", index=False, lineterminator="\n")
    return GdcManifestResult(out, len(found), True, missing=missing)
