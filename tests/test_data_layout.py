"""Cohort layout: validation passes on good folders and names file/column/case on bad ones."""
from __future__ import annotations

import shutil

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from survmamba_lite.data.layout import CohortError, load_cohort, make_folds, read_folds, validate_cohort
from survmamba_lite.data.synth import make_synthetic_cohort


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    return make_synthetic_cohort("BLCA", "tiny", seed=0, out=tmp_path_factory.mktemp("synth") / "blca")


@pytest.fixture
def root(synth_root, tmp_path):
    dst = tmp_path / "cohort"
    shutil.copytree(synth_root, dst)
    return dst


def _errors(root) -> str:
    with pytest.raises(CohortError) as info:
        validate_cohort(root)
    msg = str(info.value)
    print(msg)
    return msg


def test_validate_passes_on_synthetic(synth_root):
    report = validate_cohort(synth_root, deep=True)
    clin = pd.read_csv(synth_root / "clinical.csv")
    n_slides = sum(len(s.split(";")) for s in clin["slide_id"])
    assert (report.n_cases, report.n_folds, report.modalities) == (359, 5, ["wsi", "rna"])
    assert report.n_slides == n_slides == len(list((synth_root / "features").glob("*.h5")))
    assert report.feature_width == 32 and report.n_genes == 60
    assert report.hierarchy.n_functions == 10 and report.hierarchy.n_processes == 4


def test_load_cohort(synth_root):
    c = load_cohort(synth_root)
    rna_header = pd.read_csv(synth_root / "rna.csv", nrows=0).columns[1:].tolist()
    assert list(c.hierarchy.genes) == rna_header == list(c.rna.columns)
    assert list(c.rna.index) == c.case_ids and c.n_cases == 359
    assert c.folds == read_folds(synth_root)
    assert set(c.clinical["event"].unique()) <= {0, 1}
    multi = [cid for cid in c.case_ids if len(c.slide_ids(cid)) > 1]
    assert multi, "the synthetic cohort should hold some multi-slide cases"
    assert all(c.feature_path(s).is_file() for s in c.slide_ids(multi[0]))


def test_missing_clinical_column(root):
    clin = pd.read_csv(root / "clinical.csv").drop(columns=["event"])
    clin.to_csv(root / "clinical.csv", index=False)
    msg = _errors(root)
    assert "clinical.csv" in msg and "'event'" in msg and "event = 1 - censorship" in msg


def test_duplicated_case_id(root):
    clin = pd.read_csv(root / "clinical.csv")
    pd.concat([clin, clin.iloc[[3]]]).to_csv(root / "clinical.csv", index=False)
    msg = _errors(root)
    assert f"clinical.csv, column 'case_id', case {clin.case_id[3]}" in msg and "more than one row" in msg


def test_unknown_case_in_rna_and_missing_case(root):
    rna = pd.read_csv(root / "rna.csv")
    rna.loc[0, "case_id"] = "SYN-XXXX-9999"
    rna.to_csv(root / "rna.csv", index=False)
    msg = _errors(root)
    assert "rna.csv, case SYN-XXXX-9999: unknown case id" in msg
    assert "rna.csv, case SYN-BLCA-0001: case of clinical.csv has no expression row" in msg


def test_nan_and_inf_expression_named(root):
    rna = pd.read_csv(root / "rna.csv")
    rna.loc[5, "SYNG0007"] = np.nan
    rna.loc[9, "SYNG0011"] = np.inf
    rna.to_csv(root / "rna.csv", index=False)
    with pytest.raises(CohortError) as info:
        validate_cohort(root)
    where = {(p.column, p.case_id) for p in info.value.problems}
    assert where == {("SYNG0007", rna.case_id[5]), ("SYNG0011", rna.case_id[9])}
    assert "NaN/inf" in str(info.value)


@pytest.mark.parametrize("value", [2, -1, 0.5])
def test_event_not_binary(root, value):
    clin = pd.read_csv(root / "clinical.csv")
    clin["event"] = clin["event"].astype(float)
    clin.loc[7, "event"] = value
    clin.to_csv(root / "clinical.csv", index=False)
    with pytest.raises(CohortError) as info:
        validate_cohort(root)
    (p,) = info.value.problems
    assert (p.file, p.column, p.case_id) == ("clinical.csv", "event", clin.case_id[7])


@pytest.mark.parametrize("value", [-3.0, np.nan, np.inf])
def test_bad_survival_time(root, value):
    clin = pd.read_csv(root / "clinical.csv")
    clin.loc[2, "survival_months"] = value
    clin.to_csv(root / "clinical.csv", index=False)
    with pytest.raises(CohortError) as info:
        validate_cohort(root)
    (p,) = info.value.problems
    assert (p.column, p.case_id) == ("survival_months", clin.case_id[2])


def test_missing_feature_file_names_slide(root):
    clin = pd.read_csv(root / "clinical.csv")
    slide = clin.slide_id[4].split(";")[0]
    (root / "features" / f"{slide}.h5").unlink()
    msg = _errors(root)
    assert f"features/{slide}.h5, column 'slide_id', case {clin.case_id[4]}: missing feature file" in msg


def test_zero_patch_bag(root):
    clin = pd.read_csv(root / "clinical.csv")
    slide = clin.slide_id[0].split(";")[0]
    path = root / "features" / f"{slide}.h5"
    path.unlink()
    with h5py.File(path, "w") as f:  # a file as another tool could leave it: valid layout, no patches
        f.create_dataset("features", data=np.zeros((0, 32), np.float32))
        f.create_dataset("coords", data=np.zeros((0, 2), np.int64))
        f.create_dataset("region", data=np.zeros((0,), np.int64))
        for k, v in dict(slide_id=slide, patch_size=256, region_size=4096, magnification=20.0,
                         encoder="synthetic-tiny", format_version=1).items():
            f.attrs[k] = v
    msg = _errors(root)
    assert f"features/{slide}.h5" in msg and "zero patches" in msg and clin.case_id[0] in msg


def test_split_overlap_and_unknown(root):
    f0 = pd.read_csv(root / "splits" / "fold_0.csv", dtype=str, keep_default_na=False)
    moved = f0.train[0]
    f0.loc[0, "val"] = moved if f0.loc[0, "val"] == "" else f0.loc[0, "val"]
    f0.loc[len(f0)] = ["SYN-NOPE-0001", moved]
    f0.to_csv(root / "splits" / "fold_0.csv", index=False)
    with pytest.raises(CohortError) as info:
        validate_cohort(root)
    probs = info.value.problems
    msg = str(info.value)
    print(msg)
    assert any(p.file == "splits/fold_0.csv" and p.case_id == moved and "both train and val" in p.message
               for p in probs)
    assert any(p.case_id == "SYN-NOPE-0001" and p.column == "train" for p in probs)
    assert any(p.case_id == moved and "validation case of fold" in p.message for p in probs)


def test_validation_folds_overlapping_across_folds(root):
    f0 = pd.read_csv(root / "splits" / "fold_0.csv", dtype=str, keep_default_na=False)
    f1 = pd.read_csv(root / "splits" / "fold_1.csv", dtype=str, keep_default_na=False)
    case = f0.val[0]
    f1 = f1[f1.train != case]
    f1.loc[len(f1)] = ["", case]
    f1.to_csv(root / "splits" / "fold_1.csv", index=False)
    with pytest.raises(CohortError) as info:
        validate_cohort(root)
    (p,) = info.value.problems
    assert (p.file, p.case_id) == ("splits/fold_1.csv", case) and "fold 0" in p.message


def test_hierarchy_genes_missing_from_rna(root):
    h = pd.read_csv(root / "hierarchy.tsv", sep="\t")
    h.loc[0, "genes"] += ",NOTAGENE1,NOTAGENE2"
    h.loc[len(h)] = ["syn99999", "ghost", h.process[0], "GHOST1,GHOST2,GHOST3"]
    h.to_csv(root / "hierarchy.tsv", sep="\t", index=False)
    report = validate_cohort(root)
    print(report.summary())
    assert report.hierarchy.n_hierarchy_genes_missing == 5
    assert report.hierarchy.dropped_functions == ["syn99999"]
    assert report.hierarchy.n_functions == 10 and report.hierarchy.n_functions_file == 11
    assert any("5 of" in w and "hierarchy.tsv" in w for w in report.warnings)
    with pytest.raises(CohortError, match="no function keeps >= 100 gene"):
        validate_cohort(root, min_genes=100)


def test_hierarchy_with_no_measured_gene(root):
    h = pd.read_csv(root / "hierarchy.tsv", sep="\t")
    h["genes"] = "NOPE1,NOPE2"
    h.to_csv(root / "hierarchy.tsv", sep="\t", index=False)
    msg = _errors(root)
    assert "hierarchy.tsv" in msg and "no function keeps" in msg


def test_all_problems_listed_together(root):
    clin = pd.read_csv(root / "clinical.csv")
    clin.loc[1, "event"] = 3
    clin.to_csv(root / "clinical.csv", index=False)
    man = yaml.safe_load((root / "manifest.yaml").read_text())
    man["n_cases"] = 12
    (root / "manifest.yaml").write_text(yaml.safe_dump(man))
    with pytest.raises(CohortError) as info:
        validate_cohort(root)
    files = sorted(p.file for p in info.value.problems)
    assert files == ["clinical.csv", "manifest.yaml"]
    assert "n_cases is 12" in str(info.value)


def test_make_folds_properties():
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"case_id": [f"c{i:03d}" for i in range(203)],
                       "survival_months": rng.exponential(30, 203).round(1),
                       "event": (rng.random(203) < 0.4).astype(int)})
    folds = make_folds(df, k=5, seed=7)
    vals = [set(v) for _, v in folds]
    assert sum(len(v) for v in vals) == 203 and set().union(*vals) == set(df.case_id)
    for train, val in folds:
        assert not set(train) & set(val) and len(train) + len(val) == 203
    sizes = [len(v) for v in vals]
    assert max(sizes) - min(sizes) <= 1
    # stratification: per fold, deaths and each event x time-quartile stratum are balanced
    ev = dict(zip(df.case_id, df.event))
    deaths = [sum(ev[c] for c in v) for v in vals]
    print("fold sizes", sizes, "deaths per fold", deaths)
    assert max(deaths) - min(deaths) <= 4  # <= 1 per death stratum (4 time quartiles)
    early = set(df[df.event == 1].nsmallest(20, "survival_months").case_id)
    assert max(len(v & early) for v in vals) - min(len(v & early) for v in vals) <= 2
    assert make_folds(df, 5, 7) == folds and make_folds(df, 5, 8) != folds


def test_make_folds_bad_input():
    df = pd.DataFrame({"case_id": ["a", "b"], "survival_months": [1.0, 2.0], "event": [1, 0]})
    with pytest.raises(ValueError, match="cannot fill 5 folds"):
        make_folds(df, 5)
    with pytest.raises(ValueError, match="lacks column 'event'"):
        make_folds(df.drop(columns="event"), 2)
