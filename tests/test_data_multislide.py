"""Several slides per patient: the layout's slide rule, the bag (slide 1's regions, then slide 2's), every
registry model and `explain` on a two-slide case."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from small_cohorts import synthetic_subset
from survmamba_lite.cli import main
from survmamba_lite.data.bag import collate_bags
from survmamba_lite.data.dataset import CohortDataset, fold_datasets
from survmamba_lite.data.features_h5 import read_features_h5
from survmamba_lite.data.layout import CohortError, load_cohort, validate_cohort, write_manifest
from survmamba_lite.registry import ModelInputs, accepted_options, build_model, list_models

TINY = {"dim": 16, "heads": 2, "fusion_dim": 4, "fn_hidden": 8, "ot_iters": 20, "k_sample": 2, "d_state": 4,
        "genomic_hidden": 8}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = synthetic_subset(tmp_path_factory.mktemp("multi") / "blca")
    cohort = load_cohort(root)
    two = next(c for c in cohort.case_ids if len(cohort.slide_ids(c)) == 2)
    one = next(c for c in cohort.case_ids if len(cohort.slide_ids(c)) == 1)
    return cohort, two, one


def dataset(cohort, cases, modalities):
    """The cases with the fold-0 preprocessing (z-scored RNA, time bins fitted on fold 0's training cases)."""
    _, _, fitted = fold_datasets(cohort, fold=0, binner_bins=4)
    return CohortDataset(cohort, cases, modalities, rna_normalizer=fitted.rna_normalizer,
                         time_binner=fitted.time_binner)


def test_bag_holds_slide_one_then_slide_two(small):
    cohort, two, _ = small
    s1, s2 = (read_features_h5(cohort.feature_path(s)) for s in cohort.slide_ids(two))
    bag = CohortDataset(cohort, [two], ("wsi",))[0]
    n1 = len(s1.features)
    assert torch.equal(bag.features[:n1], torch.from_numpy(s1.features))
    assert torch.equal(bag.features[n1:], torch.from_numpy(s2.features))
    r1, r2 = bag.region[:n1].numpy(), bag.region[n1:].numpy()
    assert np.array_equal(np.unique(r1), np.arange(s1.n_regions))
    assert np.array_equal(np.unique(r2), s1.n_regions + np.arange(s2.n_regions))     # offset, distinct


def test_rule_first_and_missing_slides_in_the_manifest(small, tmp_path):
    import shutil

    cohort, two, _ = small
    root = tmp_path / "c"
    shutil.copytree(cohort.root, root)
    man = yaml.safe_load((root / "manifest.yaml").read_text())
    first, second = load_cohort(root).slide_ids(two)
    write_manifest(root, dict(man, features=dict(man["features"], slides="first")))
    assert load_cohort(root).slide_ids(two) == [first]
    (root / "features" / f"{second}.h5").unlink()                   # not needed under the rule "first"
    assert validate_cohort(root).n_cases == cohort.n_cases
    write_manifest(root, dict(man, features=dict(man["features"], missing=[second])))
    assert load_cohort(root).slide_ids(two) == [first]
    write_manifest(root, dict(man, features=dict(man["features"], slides="dx1", missing=[first, second, "nope"])))
    with pytest.raises(CohortError) as err:
        validate_cohort(root)
    text = str(err.value)
    assert "features.slides is 'dx1'" in text and "features.missing names slide nope" in text
    assert f"case {two}: none of the case's slides" in text


@pytest.mark.parametrize("name", [s.name for s in list_models()])
def test_every_model_on_a_two_slide_bag(small, name):
    cohort, two, one = small
    spec = next(s for s in list_models() if s.name == name)
    options = {k: v for k, v in TINY.items() if k in accepted_options(spec)}
    torch.manual_seed(0)
    model = build_model(name, ModelInputs(n_bins=4, wsi_dim=32, hierarchy=cohort.hierarchy), **options)
    ds = dataset(cohort, [two, one], spec.modalities)
    batch = collate_bags([ds[0], ds[1]])
    if "wsi" in spec.modalities:
        n_regions = sum(read_features_h5(cohort.feature_path(s)).n_regions for s in cohort.slide_ids(two))
        assert int(batch.region_mask[0].sum()) == n_regions
    model.train()
    logits = model(batch)
    assert logits.shape == (2, 4) and torch.isfinite(logits).all()
    loss = logits.logsumexp(-1).sum() + (model.auxiliary_loss(batch) if hasattr(model, "auxiliary_loss") else 0)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    if "wsi" in spec.modalities:                                     # the second slide changes the prediction
        model.eval()
        full = dataset(cohort, [two], spec.modalities)[0]
        n1 = len(read_features_h5(cohort.feature_path(cohort.slide_ids(two)[0])).features)
        first_only = type(full)(full.case_id, full.features[:n1], full.region[:n1], full.rna, full.time, full.event,
                                full.time_bin)
        with torch.no_grad():
            assert not torch.allclose(model(collate_bags([full])), model(collate_bags([first_only])))


def test_explain_a_two_slide_case(small, tmp_path):
    from survmamba_lite.experiment import ExperimentConfig, run_cv

    cohort, two, _ = small
    cfg = ExperimentConfig.from_params(model="survmamba", cohort_dir=str(cohort.root), out_dir=str(tmp_path / "run"),
                                       dim=8, d_state=4, epochs=1, folds=(0,), seed=0, device="cpu", threads=1,
                                       batch_size=8)
    run_cv(cfg, progress=False, log=lambda line: None)
    assert main(["explain", "--run", str(tmp_path / "run"), "--case", two, "--ig-steps", "2",
                 "--out", str(tmp_path / "e")]) == 0
    patches = pd.read_csv(tmp_path / "e" / "patches.csv")
    slides = cohort.slide_ids(two)
    assert list(dict.fromkeys(patches["slide_id"])) == slides
    n_regions = [read_features_h5(cohort.feature_path(s)).n_regions for s in slides]
    regions = pd.read_csv(tmp_path / "e" / "regions.csv")
    assert len(regions) == sum(n_regions) and regions["model_region"].is_unique
    by_slide = regions.groupby("slide_id", sort=False)["model_region"].agg(["min", "max"])
    assert by_slide.loc[slides[1], "min"] == by_slide.loc[slides[0], "max"] + 1
    assert abs(patches["hidden_attention"].sum() - 1) < 1e-5
    for sid, rows in patches.groupby("slide_id"):
        sf = read_features_h5(cohort.feature_path(sid))
        assert np.array_equal(rows[["x", "y"]].to_numpy(), sf.coords[rows["patch"].to_numpy()])


def test_subset_cohort(small, tmp_path):
    from survmamba_lite.data.subset import subset_cohort
    from survmamba_lite.errors import UserError

    cohort, two, one = small
    # two deaths besides, so that each of the two folds trains on a death (validate requires it)
    dead = [c for c in cohort.case_ids if c not in (two, one) and cohort.clinical.loc[c, "event"] == 1][:2]
    keep = [two, one, *dead]
    sub = load_cohort(subset_cohort(cohort.root, keep, tmp_path / "two", n_folds=2))
    assert sub.case_ids == keep and sub.slide_ids(two) == cohort.slide_ids(two)
    n_slides = sum(len(cohort.slide_ids(c)) for c in keep)
    assert sub.manifest["features"]["n_slides"] == n_slides and len(sub.folds) == 2
    assert sorted(p.stem for p in (sub.root / "features").glob("*.h5")) == sorted(
        s for c in keep for s in cohort.slide_ids(c))
    with pytest.raises(UserError, match="case nope is not in its clinical.csv"):
        subset_cohort(cohort.root, [two, "nope"], tmp_path / "bad", n_folds=2)
    with pytest.raises(UserError, match="holds an earlier output"):
        subset_cohort(cohort.root, keep, tmp_path / "two", n_folds=2)
