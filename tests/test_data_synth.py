"""Synthetic cohorts: paper patient counts, determinism, realistic censoring, learnable signal."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import yaml
from lifelines import CoxPHFitter
from lifelines.utils import concordance_index

from survmamba_lite.data.features_h5 import read_features_h5
from survmamba_lite.data.layout import load_cohort, validate_cohort
from survmamba_lite.data.synth import COHORTS, KEGG_CLASS_COUNTS, SCALES, make_synthetic_cohort, synthetic_hierarchy

PAPER_COUNTS = {"BRCA": 869, "BLCA": 359, "COADREAD": 296, "UCEC": 480, "LUAD": 453}


@pytest.fixture(scope="module")
def blca(tmp_path_factory):
    t0 = time.perf_counter()
    root = make_synthetic_cohort("BLCA", "tiny", seed=0, out=tmp_path_factory.mktemp("s") / "a")
    print(f"BLCA tiny generated in {time.perf_counter() - t0:.2f} s")
    return root


def test_deterministic_per_seed(blca, tmp_path):
    again = make_synthetic_cohort("BLCA", "tiny", seed=0, out=tmp_path / "b")
    for name in ["clinical.csv", "rna.csv", "hierarchy.tsv", "synthetic_truth.csv"] + \
            [f"splits/fold_{k}.csv" for k in range(5)]:
        assert (blca / name).read_bytes() == (again / name).read_bytes(), name
    m1, m2 = (yaml.safe_load((r / "manifest.yaml").read_text()) for r in (blca, again))
    m1.pop("created_by"), m2.pop("created_by")
    assert m1 == m2
    files = sorted(p.name for p in (blca / "features").glob("*.h5"))
    assert files == sorted(p.name for p in (again / "features").glob("*.h5"))
    for name in files[:: max(1, len(files) // 25)]:
        a, b = read_features_h5(blca / "features" / name), read_features_h5(again / "features" / name)
        np.testing.assert_array_equal(a.features, b.features)
        np.testing.assert_array_equal(a.region, b.region)
        np.testing.assert_array_equal(a.coords, b.coords)
    other = make_synthetic_cohort("BLCA", "tiny", seed=1, out=tmp_path / "c")
    assert (other / "clinical.csv").read_bytes() != (blca / "clinical.csv").read_bytes()


@pytest.mark.parametrize("cohort", sorted(PAPER_COUNTS))
def test_patient_counts_and_censoring_all_cohorts(cohort, tmp_path):
    t0 = time.perf_counter()
    root = make_synthetic_cohort(cohort, "tiny", seed=2, out=tmp_path / cohort)
    dt = time.perf_counter() - t0
    clin = pd.read_csv(root / "clinical.csv")
    cens = 1 - clin.event.mean()
    print(f"{cohort}: {len(clin)} cases, {cens:.1%} censored, times {clin.survival_months.min():.2f}-"
          f"{clin.survival_months.max():.1f} months, median {clin.survival_months.median():.1f}, {dt:.2f} s")
    assert len(clin) == PAPER_COUNTS[cohort] == COHORTS[cohort].n_cases
    assert clin.case_id.is_unique
    assert 0.30 <= cens <= 0.70
    assert abs(cens - COHORTS[cohort].censored) <= 0.01
    assert clin.survival_months.between(0.01, 200).all()


def test_bag_sizes_follow_scale(blca):
    c = load_cohort(blca, validate=False)
    sc = SCALES["tiny"]
    for cid in c.case_ids[:60]:
        regions, per_region = 0, []
        for s in c.slide_ids(cid):
            sf = read_features_h5(c.feature_path(s))
            assert sf.features.shape[1] == sc.feature_dim
            counts = np.bincount(sf.region)
            regions += counts.size
            per_region += counts.tolist()
            assert len(np.unique(sf.coords, axis=0)) == len(sf.coords)  # no patch drawn twice
        assert sc.regions[0] <= regions <= sc.regions[1]
        assert all(sc.patches[0] <= p <= sc.patches[1] for p in per_region)


def test_course_scale_sizes(tmp_path):
    t0 = time.perf_counter()
    root = make_synthetic_cohort("COADREAD", "course", seed=0, out=tmp_path / "c")
    print(f"COADREAD course generated in {time.perf_counter() - t0:.2f} s")
    report = validate_cohort(root)
    assert (report.n_cases, report.feature_width, report.n_genes) == (296, 64, 400)
    assert (report.hierarchy.n_functions, report.hierarchy.n_processes) == (48, 8)


def test_paper_scale_hierarchy_mimics_kegg():
    table, genes, member = synthetic_hierarchy(SCALES["paper"], seed=0)
    assert len(table) == 352 and table.process.nunique() == 45 and len(genes) == 1577
    counts = table.groupby("process", sort=False).size()
    assert dict(counts) == dict(KEGG_CLASS_COUNTS)
    sizes = member.sum(1)
    assert sizes.min() >= 5 and sizes.max() <= 150 and sizes.std() > 10  # functions of varying size
    assert (member.sum(0) > 1).sum() > 100  # genes shared between functions


def test_oracle_and_components(blca):
    clin = pd.read_csv(blca / "clinical.csv")
    truth = pd.read_csv(blca / "synthetic_truth.csv")
    assert list(truth.case_id) == list(clin.case_id)
    beta = yaml.safe_load((blca / "manifest.yaml").read_text())["synthetic"]["beta"]
    recomposed = sum(beta[k] * truth[k] for k in beta)
    np.testing.assert_allclose(recomposed, truth.true_risk, atol=1e-4)
    oracle = concordance_index(clin.survival_months, -truth.true_risk, clin.event)
    print(f"oracle c-index (true_risk) = {oracle:.3f}")
    assert oracle > 0.70
    # every planted term carries signal on its own
    for k in beta:
        ci = concordance_index(clin.survival_months, -truth[k], clin.event)
        print(f"  {k}: c-index {ci:.3f}")
        assert ci > 0.53


def test_planted_process_is_in_the_expression(blca):
    c = load_cohort(blca, validate=False)
    truth = pd.read_csv(blca / "synthetic_truth.csv").set_index("case_id")
    h = c.hierarchy
    j = h.process_names.index("Cell growth and death")
    genes = sorted({g for f in h.process_functions[j] for g in h.function_genes[f]})
    z = (c.rna - c.rna.mean()) / c.rna.std()
    score = z.iloc[:, genes].mean(1)
    r = np.corrcoef(score, truth.loc[c.case_ids, "g_process"])[0, 1]
    print(f"corr(mean z of the planted process's genes, g_process) = {r:.3f}")
    assert r > 0.5


def test_simple_cox_on_summaries_beats_chance(tmp_path):
    root = make_synthetic_cohort("BRCA", "tiny", seed=0, out=tmp_path / "brca")
    c = load_cohort(root, validate=False)
    rows = []
    for cid in c.case_ids:
        feats = np.concatenate([read_features_h5(c.feature_path(s)).features for s in c.slide_ids(cid)])
        rows.append(feats.mean(0))
    x = pd.DataFrame(np.hstack([np.array(rows), c.rna.to_numpy()]), index=c.case_ids)
    x = (x - x.mean()) / x.std()
    x.columns = [f"x{i}" for i in range(x.shape[1])]
    train, val = c.folds[0]
    df = x.assign(T=c.clinical.survival_months, E=c.clinical.event)
    cph = CoxPHFitter(penalizer=0.3).fit(df.loc[train], "T", "E")
    risk = cph.predict_partial_hazard(df.loc[val])
    ci = concordance_index(df.loc[val, "T"], -risk, df.loc[val, "E"])
    print(f"penalised Cox on mean patch features + RNA, fold 0 validation c-index = {ci:.3f}")
    assert ci > 0.6


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown cohort 'GBM'"):
        make_synthetic_cohort("GBM", "tiny", 0, tmp_path / "x")
    with pytest.raises(ValueError, match="unknown scale 'huge'"):
        make_synthetic_cohort("BLCA", "huge", 0, tmp_path / "x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        make_synthetic_cohort("BLCA", "tiny", 0, tmp_path / "full")
