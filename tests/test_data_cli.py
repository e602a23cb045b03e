"""The data sub-commands through survmamba_lite.cli.main, the GDC list and the cohort manifests."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from survmamba_lite.cli import main
from survmamba_lite.data.gdc import GDC_MANIFEST_COLUMNS, build_gdc_manifest
from survmamba_lite.data.synth import COHORTS

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def _need(*paths: Path) -> None:
    for p in paths:
        if not p.exists():
            pytest.skip(f"real data not found at {p} (see ../shared/data/README.md)")


def test_synth_then_validate(tmp_path, capsys):
    out = tmp_path / "ucec"
    assert main(["synth", "--cohort", "ucec", "--scale", "tiny", "--seed", "5", "--out", str(out)]) == 0
    assert "480 cases" in capsys.readouterr().out
    assert main(["validate", str(out)]) == 0
    printed = capsys.readouterr().out
    print(printed)
    assert "OK" in printed and "480 cases, 5 folds" in printed
    man = yaml.safe_load((out / "manifest.yaml").read_text())
    assert man["created_by"] == f"survmamba synth --cohort UCEC --scale tiny --seed 5 --out {out}"
    clin = pd.read_csv(out / "clinical.csv")
    clin.loc[0, "event"] = 5
    clin.to_csv(out / "clinical.csv", index=False)
    assert main(["validate", str(out)]) == 2
    err = capsys.readouterr().err
    assert "clinical.csv, column 'event', case SYN-UCEC-0001" in err


def test_cli_user_errors(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "missing")]) == 2
    assert "no such cohort folder" in capsys.readouterr().err
    assert main(["kegg", "--out", str(tmp_path / "h.tsv")]) == 2
    assert "either --table" in capsys.readouterr().err
    assert main(["import-tcga", "--format", "xena", "--hierarchy", "h.tsv", "--out", str(tmp_path / "o")]) == 2
    assert "needs --rna" in capsys.readouterr().err


@pytest.mark.realdata
def test_kegg_and_import_commands(tmp_path, capsys):
    table = DATA / "kegg" / "kegg352_pathway_class_genes.tsv"
    xena = DATA / "tcga" / "xena" / "blca"
    _need(table, xena)
    h = tmp_path / "h.tsv"
    assert main(["kegg", "--table", str(table), "--rna", str(xena / "rna_clean.csv"), "--out", str(h)]) == 0
    out = capsys.readouterr().out
    print(out)
    assert "352 functions in 45 processes" in out and "333 functions in 45 processes" in out
    assert main(["kegg", "--gmt", str(DATA / "kegg" / "KEGG_2021_Human.txt"), "--brite",
                 str(DATA / "kegg" / "br08901.json"), "--exclude-categories", "Human Diseases",
                 "--out", str(tmp_path / "g.tsv")]) == 0
    assert "Human Diseases" not in set(pd.read_csv(tmp_path / "g.tsv", sep="\t").category)
    capsys.readouterr()
    assert main(["import-tcga", "--format", "xena", "--rna", str(xena / "rna_clean.csv"), "--clinical",
                 str(xena / "clinical.csv"), "--splits", str(xena / "splits"), "--hierarchy", str(h),
                 "--out", str(tmp_path / "blca")]) == 0
    out = capsys.readouterr().out
    print(out)
    assert "359 cases" in out and "TCGA-C4-A0F6" in out
    assert main(["validate", str(tmp_path / "blca")]) == 0
    assert main(["gdc-manifest", "--clinical", str(xena / "clinical.csv"), "--out", str(tmp_path / "s.tsv")]) == 0
    assert "423 slide file names" in capsys.readouterr().out


def test_gdc_manifest_two_steps(tmp_path):
    clin = pd.DataFrame({"case_id": ["TCGA-2F-A9KO", "TCGA-2F-A9KP"],
                         "slide_id": ["TCGA-2F-A9KO-01Z-00-DX1.195576CF-B739-4BD9-B15B-4A70AE287D3E",
                                      "TCGA-2F-A9KP-01Z-00-DX1.3CDF534E-958F-4467-AA7E-FD3C5A86AAAA;"
                                      "TCGA-2F-A9KP-01Z-00-DX2.718C82A3-252B-498E-BFBE-F4E4EB431BF5"]})
    clin.to_csv(tmp_path / "clinical.csv", index=False)
    res = build_gdc_manifest(tmp_path / "clinical.csv", tmp_path / "slides.tsv")
    print(res.summary())
    listed = pd.read_csv(tmp_path / "slides.tsv", sep="\t")
    assert listed.filename.str.endswith(".svs").all() and len(listed) == 3
    query = json.loads((tmp_path / "slides.tsv.query.json").read_text())
    assert query["filters"]["content"]["value"] == listed.filename.tolist() and query["return_type"] == "manifest"
    assert "not the GDC file id" in res.summary()
    # the API's answer (ids differ from the UUID in the names); one slide missing from it
    resp = pd.DataFrame({"id": ["aaaaaaaa-0000-0000-0000-000000000001", "aaaaaaaa-0000-0000-0000-000000000002"],
                         "filename": listed.filename[:2], "md5": ["m1", "m2"], "size": [10, 20],
                         "state": ["released", "released"]})
    resp.to_csv(tmp_path / "gdc.txt", sep="\t", index=False)
    res = build_gdc_manifest(tmp_path / "clinical.csv", tmp_path / "manifest.txt", tmp_path / "gdc.txt")
    print(res.summary())
    man = pd.read_csv(tmp_path / "manifest.txt", sep="\t")
    assert tuple(man.columns) == GDC_MANIFEST_COLUMNS and len(man) == 2
    assert res.missing == [listed.filename[2]]


def test_cohort_manifests_match_paper():
    d = ROOT / "data_manifests"
    assert (d / "README.md").is_file()
    for cohort, spec in COHORTS.items():
        m = yaml.safe_load((d / f"tcga_{cohort.lower()}.yaml").read_text())
        assert m["cohort"] == cohort and m["n_cases_paper"] == spec.n_cases
        assert tuple(m["projects"]) == spec.projects
        assert "DX" in m["slides"]["type"] and m["needs"] and m["public_tables"]
