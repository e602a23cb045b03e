"""``survmamba fetch-tcga``: pinned public inputs, from a mirror or (simulated) from their releases."""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pytest
import yaml

from survmamba_lite.cli import main
from survmamba_lite.data import fetch
from survmamba_lite.data.fetch import ChecksumError, build_kegg352_table, fetch_tcga, read_public_inputs, sha256_file
from survmamba_lite.errors import UserError

# the real public data beside the project (../shared/data); SURVMAMBA_DATA_ROOT points elsewhere
DATA = Path(os.environ.get("SURVMAMBA_DATA_ROOT", Path(__file__).resolve().parents[2] / "shared" / "data"))
needs_data = pytest.mark.skipif(not (DATA / "tcga").is_dir(), reason=f"real data not found at {DATA} (see "
                                "data_manifests/public_inputs.yaml and `survmamba fetch-tcga`)")


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@needs_data
def test_pins_are_the_hashes_of_the_public_copies():
    entries = read_public_inputs()
    assert len({e.path for e in entries}) == len(entries) == 44
    for e in entries:
        if e.path == "kegg/KEGG_RNA_DNA.txt":                     # a source of the KEGG table, not kept there
            continue
        assert sha256_file(DATA / e.path) == e.sha256 and (DATA / e.path).stat().st_size == e.size, e.path


@needs_data
def test_fetch_from_the_real_mirror_gives_the_layout_realdata_reads(tmp_path):
    from survmamba_lite.realdata.catalogue import COHORTS, KEGG_TABLE, SLIDES

    report = fetch_tcga(["all"], tmp_path / "data", mirror=DATA)
    assert {r["status"] for r in report.rows} == {"copied"} and len(report.rows) == 43
    for c in COHORTS.values():
        for rel in c.files.values():
            assert (tmp_path / "data" / rel).exists(), rel
    assert (tmp_path / "data" / KEGG_TABLE).is_file()
    assert all((tmp_path / "data" / "wsi" / name).is_file() for name, _ in SLIDES)
    again = fetch_tcga(["blca"], tmp_path / "data", mirror=DATA)
    assert {r["status"] for r in again.rows} == {"present"}


# --------------------------------------------------------------------------- a small mirror the test controls
KEGG_LINES = 'hsa04110_Cell_cycle\tCell growth and death\tcg1/cg2\tCDK1/CDK2/TP53\n' \
             '"hsa00250_Alanine,_aspartate_and_glutamate_metabolism"\tAmino acid metabolism\tcg3\tGOT1/GOT2\n'
BRITE = {"name": "br08901", "children": [
    {"name": "Cellular Processes", "children": [{"name": "Cell growth and death", "children": [
        {"name": "04110  Cell cycle"}]}]},
    {"name": "Metabolism", "children": [{"name": "Amino acid metabolism", "children": [
        {"name": "00250  Alanine, aspartate and glutamate metabolism"}]}]}]}


def small_files(include_table: bool) -> dict[str, bytes]:
    """Stand-ins for coadread's Xena files and the KEGG files (a few bytes each)."""
    files = {f"tcga/xena/coadread/{n}": f"case_id,{n}\nTCGA-00-0001,1\n".encode()
             for n in ["rna_clean.csv", "clinical.csv"] + [f"splits/splits_{k}.csv" for k in range(5)]}
    files["kegg/br08901.json"] = json.dumps(BRITE).encode()
    files["kegg/KEGG_2021_Human.txt"] = b"Cell cycle\t\tCDK1\tCDK2\n"
    files["kegg/KEGG_RNA_DNA.txt"] = KEGG_LINES.encode()
    if include_table:
        files["kegg/kegg352_pathway_class_genes.tsv"] = b"pathway_id\tpathway_name\n"
    return files


def write_mirror(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_small_mirror_with_overridden_checksums(tmp_path):
    files = small_files(include_table=True)
    files.pop("kegg/KEGG_RNA_DNA.txt")                 # the mirror holds the table: its sources are not needed
    mirror = write_mirror(tmp_path / "mirror", files)
    sums = {rel: sha(b) for rel, b in files.items()}
    report = fetch_tcga(["coadread"], tmp_path / "out", mirror=mirror, checksums=sums, include_wsi=False)
    assert sorted(r["path"] for r in report.rows) == sorted(files)
    assert all((tmp_path / "out" / rel).read_bytes() == b for rel, b in files.items())
    # a mirror file that differs from its checksum: named with both hashes, nothing written for it
    bad = "tcga/xena/coadread/splits/splits_3.csv"
    (mirror / bad).write_bytes(b"changed\n")
    (tmp_path / "out" / bad).unlink()
    with pytest.raises(ChecksumError) as err:
        fetch_tcga(["coadread"], tmp_path / "out", mirror=mirror, checksums=sums, include_wsi=False)
    msg = str(err.value)
    assert msg.startswith(f"{bad} ({mirror / bad}): SHA-256 {sha(b'changed' + bytes([10]))}, expected {sums[bad]}")
    assert not (tmp_path / "out" / bad).exists() and not list((tmp_path / "out" / bad).parent.glob("*.tmp"))
    # a present file with another hash: refused, or replaced with overwrite
    (mirror / bad).write_bytes(files[bad])
    (tmp_path / "out" / "kegg/br08901.json").write_text("{}")
    with pytest.raises(ChecksumError, match="br08901.json: present with SHA-256 .*delete it or add --overwrite"):
        fetch_tcga(["coadread"], tmp_path / "out", mirror=mirror, checksums=sums, include_wsi=False)
    fetch_tcga(["coadread"], tmp_path / "out", mirror=mirror, checksums=sums, include_wsi=False, overwrite=True)
    assert (tmp_path / "out" / "kegg/br08901.json").read_bytes() == files["kegg/br08901.json"]


def test_pinned_checksums_refuse_other_files(tmp_path):
    files = small_files(include_table=True)
    mirror = write_mirror(tmp_path / "mirror", files)
    with pytest.raises(ChecksumError, match=r"tcga/xena/coadread/rna_clean.csv .*SHA-256 [0-9a-f]{64}, expected f0788c6b"):
        fetch_tcga(["coadread"], tmp_path / "out", mirror=mirror, include_wsi=False)
    with pytest.raises(UserError, match="has no tcga/porpoise/luad"):
        fetch_tcga(["luad"], tmp_path / "out2", mirror=mirror, include_wsi=False, checksums={})


def test_download_path_builds_the_kegg_table(tmp_path, monkeypatch):
    """The network path with urlopen served from memory: the release URLs, streaming, the built table."""
    files = small_files(include_table=False)
    by_url, served = {}, []
    for e in read_public_inputs():
        if e.path in files:
            by_url[e.url] = files[e.path]

    def fake_urlopen(url, timeout):
        served.append(url)
        return io.BytesIO(by_url[url])

    monkeypatch.setattr(fetch.urllib.request, "urlopen", fake_urlopen)
    table = build_kegg352_table(write_mirror(tmp_path / "src", files) / "kegg/KEGG_RNA_DNA.txt",
                                tmp_path / "src" / "kegg/br08901.json")
    assert table.decode().splitlines()[2] == ("hsa00250\tAlanine, aspartate and glutamate metabolism\tMetabolism\t"
                                              "Amino acid metabolism\t2\tGOT1,GOT2")
    sums = {rel: sha(b) for rel, b in files.items()} | {"kegg/kegg352_pathway_class_genes.tsv": sha(table)}
    report = fetch_tcga(["coadread"], tmp_path / "out", checksums=sums, include_wsi=False)
    status = {r["path"]: r["status"] for r in report.rows}
    assert status["kegg/kegg352_pathway_class_genes.tsv"] == "built" and set(status.values()) == {"downloaded", "built"}
    assert "https://raw.githubusercontent.com/mahmoodlab/SurvPath/3f73ddd6705ec67d643020c5bb04fb13f9f382cc/" \
           "datasets_csv/metadata/tcga_coadread.csv" in served
    assert (tmp_path / "out" / "kegg/kegg352_pathway_class_genes.tsv").read_bytes() == table


def test_command_line(tmp_path, capsys):
    files = small_files(include_table=True)
    mirror = write_mirror(tmp_path / "mirror", files)
    sums = tmp_path / "sums.yaml"
    sums.write_text(yaml.safe_dump({rel: sha(b) for rel, b in files.items() if rel != "kegg/KEGG_RNA_DNA.txt"}))
    assert main(["fetch-tcga", "--cohort", "coadread", "--mirror", str(mirror), "--out", str(tmp_path / "o"),
                 "--checksums", str(sums), "--no-wsi"]) == 0
    out = capsys.readouterr().out
    assert "every SHA-256 as pinned" in out
    assert f"next: survmamba realdata --data-root {tmp_path / 'o'} --cohorts coadread" in out
    assert main(["fetch-tcga", "--cohort", "coadread", "--mirror", str(mirror), "--out", str(tmp_path / "p"),
                 "--no-wsi"]) == 2
    assert "SHA-256" in capsys.readouterr().err
