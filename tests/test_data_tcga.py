"""TCGA table import (Xena / PORPOISE) into the cohort layout."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from survmamba_lite.data.features_h5 import SlideFeatures, write_features_h5
from survmamba_lite.data.kegg import hierarchy_from_kegg_table, write_hierarchy_tsv
from survmamba_lite.data.layout import load_cohort, validate_cohort
from survmamba_lite.data.tcga import import_porpoise, import_xena, read_source_splits

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TCGA = DATA / "tcga"
KEGG_TABLE = DATA / "kegg" / "kegg352_pathway_class_genes.tsv"


def _need(*paths: Path) -> None:
    for p in paths:
        if not p.exists():
            pytest.skip(f"real data not found at {p} (see ../shared/data/README.md)")


@pytest.fixture(scope="module")
def kegg_tsv(tmp_path_factory):
    _need(KEGG_TABLE)
    return write_hierarchy_tsv(hierarchy_from_kegg_table(KEGG_TABLE), tmp_path_factory.mktemp("k") / "h.tsv")


# --------------------------------------------------------------------------- small hand-made tables
@pytest.fixture
def xena_files(tmp_path):
    """5 clinical cases (one with 2 slides, one without survival), RNA for 4 + one extra, 2 folds."""
    d = tmp_path / "src"
    (d / "splits").mkdir(parents=True)
    pd.DataFrame({
        "case_id": ["TCGA-AA-0001", "TCGA-AA-0001", "TCGA-AA-0002", "TCGA-AA-0003", "TCGA-AA-0004", "TCGA-AA-0005"],
        "slide_id": ["TCGA-AA-0001-01Z-00-DX1.A.svs", "TCGA-AA-0001-01Z-00-DX2.B.svs", "TCGA-AA-0002-01Z-00-DX1.C.svs",
                     "TCGA-AA-0003-01Z-00-DX1.D.svs", "TCGA-AA-0004-01Z-00-DX1.E.svs", "TCGA-AA-0005-01Z-00-DX1.F.svs"],
        "survival_months": [10.0, 10.0, 20.5, np.nan, 5.0, 7.0],
        "censorship": [1, 1, 0, 0, 1, 0],
    }).to_csv(d / "clinical.csv")
    genes = ["TP53", "CDK1", "ATG5"]
    rna = pd.DataFrame(np.arange(15, dtype=float).reshape(5, 3), columns=genes,
                       index=["TCGA-AA-0001", "TCGA-AA-0002", "TCGA-AA-0003", "TCGA-AA-0005", "TCGA-ZZ-9999"])
    rna.to_csv(d / "rna_clean.csv")
    pd.DataFrame({"train": ["TCGA-AA-0001", "TCGA-AA-0002", "TCGA-AA-0003"],
                  "val": ["TCGA-AA-0005", "TCGA-AA-0004", None]}).to_csv(d / "splits" / "splits_0.csv")
    pd.DataFrame({"train": ["TCGA-AA-0005", "TCGA-AA-0004", "TCGA-AA-0003"],
                  "val": ["TCGA-AA-0001", "TCGA-AA-0002", "TCGA-QQ-0000"]}).to_csv(d / "splits" / "splits_1.csv")
    pd.DataFrame({"function_id": ["hsa1", "hsa2"], "function_name": ["a", "b"], "process": ["P", "Q"],
                  "genes": ["TP53,CDK1,MISSING", "ATG5"]}).to_csv(d / "h.tsv", sep="\t", index=False)
    return d


def test_import_xena_small(xena_files, tmp_path, capsys):
    d = xena_files
    rep = import_xena(d / "rna_clean.csv", d / "clinical.csv", tmp_path / "out", hierarchy=d / "h.tsv",
                      splits=d / "splits", cohort="TEST")
    print(rep.summary())
    reasons = dict(rep.dropped)
    assert set(reasons) == {"TCGA-AA-0003", "TCGA-AA-0004", "TCGA-ZZ-9999", "TCGA-QQ-0000"}
    assert "missing survival" in reasons["TCGA-AA-0003"]
    assert "not in the RNA table" in reasons["TCGA-AA-0004"]
    assert "in the RNA table" in reasons["TCGA-ZZ-9999"] and "not in" in reasons["TCGA-ZZ-9999"]
    assert "in a split but not in" in reasons["TCGA-QQ-0000"]
    clin = pd.read_csv(tmp_path / "out" / "clinical.csv", dtype=str)
    assert clin.case_id.tolist() == ["TCGA-AA-0001", "TCGA-AA-0002", "TCGA-AA-0005"]
    assert clin.event.tolist() == ["0", "1", "1"]  # event = 1 - censorship
    assert clin.slide_id[0] == "TCGA-AA-0001-01Z-00-DX1.A;TCGA-AA-0001-01Z-00-DX2.B"
    assert rep.modalities == ["rna"] and rep.fold_sizes == [(2, 1), (1, 2)]
    report = validate_cohort(tmp_path / "out")
    assert report.hierarchy.n_hierarchy_genes_missing == 1


def test_import_xena_with_features(xena_files, tmp_path):
    feats = tmp_path / "feats"
    for s in ["TCGA-AA-0001-01Z-00-DX1.A", "TCGA-AA-0002-01Z-00-DX1.C", "TCGA-AA-0005-01Z-00-DX1.F"]:
        write_features_h5(feats / f"{s}.h5", SlideFeatures(
            np.ones((3, 5), np.float32), np.zeros((3, 2), np.int64), np.array([0, 0, 1]),
            dict(slide_id=s, patch_size=256, region_size=4096, magnification=20.0, encoder="toy")))
    rep = import_xena(xena_files / "rna_clean.csv", xena_files / "clinical.csv", tmp_path / "out",
                      hierarchy=xena_files / "h.tsv", splits=xena_files / "splits", features_dir=feats)
    print(rep.summary())
    assert rep.modalities == ["wsi", "rna"] and rep.n_slides == 3
    assert any("DX2.B" in n for n in rep.notes)  # the missing second slide of case 0001 is reported
    c = load_cohort(tmp_path / "out")
    assert c.slide_ids("TCGA-AA-0001") == ["TCGA-AA-0001-01Z-00-DX1.A"]
    assert c.manifest["features"]["width"] == 5


def test_import_disagreeing_slide_rows_and_duplicates(xena_files, tmp_path):
    clin = pd.read_csv(xena_files / "clinical.csv", index_col=0)
    clin.loc[1, "survival_months"] = 11.0
    clin.to_csv(xena_files / "clinical.csv")
    rna = pd.read_csv(xena_files / "rna_clean.csv", index_col=0)
    pd.concat([rna, rna.iloc[[1]] + 1]).to_csv(xena_files / "rna_clean.csv")
    with pytest.raises(ValueError, match=r"several expression rows: \['TCGA-AA-0002'\]"):
        import_xena(xena_files / "rna_clean.csv", xena_files / "clinical.csv", tmp_path / "o1",
                    hierarchy=xena_files / "h.tsv", duplicate_rna="error")
    rep = import_xena(xena_files / "rna_clean.csv", xena_files / "clinical.csv", tmp_path / "o2",
                      hierarchy=xena_files / "h.tsv", splits=xena_files / "splits", duplicate_rna="mean")
    assert "disagree on survival" in dict(rep.dropped)["TCGA-AA-0001"]
    out = pd.read_csv(tmp_path / "o2" / "rna.csv", index_col=0)
    assert out.loc["TCGA-AA-0002"].tolist() == [3.5, 4.5, 5.5]


def test_porpoise_without_rna_is_refused(tmp_path):
    t = pd.DataFrame({"case_id": ["a"], "slide_id": ["a.svs"], "survival_months": [1.0], "censorship": [0],
                      "TP53_mut": [1], "MYC_cnv": [0]})
    t.to_csv(tmp_path / "tcga_ucec_all_clean.csv")
    with pytest.raises(ValueError, match="no RNA-seq.*_cnv, _mut"):
        import_porpoise(tmp_path / "tcga_ucec_all_clean.csv", tmp_path / "out", hierarchy=tmp_path / "h.tsv")


# --------------------------------------------------------------------------- real tables
@pytest.mark.realdata
@pytest.mark.parametrize("cohort,expected", [("blca", 359), ("coadread", 296)])
def test_import_xena_real(cohort, expected, kegg_tsv, tmp_path):
    src = TCGA / "xena" / cohort
    _need(src / "rna_clean.csv")
    rep = import_xena(src / "rna_clean.csv", src / "clinical.csv", tmp_path / cohort, hierarchy=kegg_tsv,
                      splits=src / "splits")
    print(rep.summary())
    splits = read_source_splits(src / "splits")
    clin_src = pd.read_csv(src / "clinical.csv")
    rna_ids = set(pd.read_csv(src / "rna_clean.csv", usecols=[0]).iloc[:, 0])
    # independent expectation: cases in the splits with clinical data and RNA
    in_split = {c for tr, va in splits for c in tr + va}
    want = in_split & set(clin_src.case_id) & rna_ids
    assert rep.n_cases == len(want) == expected
    for k, (tr, va) in enumerate(splits):
        assert rep.fold_sizes[k] == (len(set(tr) & want), len(set(va) & want))
    report = validate_cohort(tmp_path / cohort)
    c = load_cohort(tmp_path / cohort)
    assert set(c.case_ids) == want and report.n_genes == 1577
    first = clin_src.drop_duplicates("case_id").set_index("case_id")
    ev = (1 - first.loc[c.case_ids, "censorship"]).astype(int)
    assert (c.clinical["event"] == ev).all()
    assert c.hierarchy.n_functions == 333 and c.hierarchy.n_processes == 45


@pytest.mark.realdata
def test_import_porpoise_real(kegg_tsv, tmp_path):
    src = TCGA / "porpoise" / "luad"
    table = src / "tcga_luad_all_clean.csv.zip"
    _need(table)
    rep = import_porpoise(table, tmp_path / "luad", hierarchy=kegg_tsv, splits=src / "splits")
    print(rep.summary())
    assert rep.n_cases == 453 and rep.n_genes == 1555 and not rep.dropped
    c = load_cohort(tmp_path / "luad")
    assert not any(g.endswith("_rnaseq") for g in c.rna.columns)
    raw = pd.read_csv(table, usecols=["case_id", "TP53_rnaseq"]).drop_duplicates("case_id").set_index("case_id")
    np.testing.assert_allclose(c.rna["TP53"], raw.loc[c.case_ids, "TP53_rnaseq"], rtol=1e-5)


@pytest.mark.realdata
def test_import_porpoise_ucec_real_has_no_rna(kegg_tsv, tmp_path):
    table = TCGA / "porpoise" / "ucec" / "tcga_ucec_all_clean.csv.zip"
    _need(table)
    with pytest.raises(ValueError, match="no RNA-seq"):
        import_porpoise(table, tmp_path / "ucec", hierarchy=kegg_tsv)
