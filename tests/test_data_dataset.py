"""CohortDataset, RNANormalizer and fold_datasets: bags, collation, no leakage from validation ids."""
from __future__ import annotations

import copy
import shutil

import h5py
import numpy as np
import pytest
import torch

from survmamba_lite.data.bag import collate_bags
from survmamba_lite.data.dataset import CohortDataset, RNANormalizer, fold_datasets
from survmamba_lite.data.features_h5 import read_features_h5
from survmamba_lite.data.layout import load_cohort
from survmamba_lite.data.synth import make_synthetic_cohort


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_synthetic_cohort("LUAD", "tiny", seed=4, out=tmp_path_factory.mktemp("d") / "luad")


@pytest.fixture(scope="module")
def cohort(root):
    return load_cohort(root)


def test_bags_collate(cohort):
    train, val, fitted = fold_datasets(cohort, fold=1, binner_bins=4)
    assert len(train) + len(val) == cohort.n_cases and not set(train.case_ids) & set(val.case_ids)
    bags = [val[i] for i in range(6)]
    batch = collate_bags(bags)
    assert batch.patches.shape[0] == 6 and batch.patches.shape[-1] == 32
    assert batch.rna.shape == (6, cohort.hierarchy.n_genes) and batch.rna.dtype == torch.float32
    assert batch.time_bin.min() >= 0 and batch.time_bin.max() < fitted.time_binner.n_bins_
    assert int(batch.patch_mask.sum()) == sum(b.features.shape[0] for b in bags)
    loader = torch.utils.data.DataLoader(train, batch_size=4, collate_fn=collate_bags)
    first = next(iter(loader))
    assert first.case_id == train.case_ids[:4]


def test_multi_slide_regions_stay_distinct(cohort):
    case = next(c for c in cohort.case_ids if len(cohort.slide_ids(c)) == 2)
    ds = CohortDataset(cohort, [case], modalities=("wsi",))
    bag = ds[0]
    parts = [read_features_h5(cohort.feature_path(s)) for s in cohort.slide_ids(case)]
    n_regions = sum(p.n_regions for p in parts)
    assert torch.equal(bag.features, torch.from_numpy(np.concatenate([p.features for p in parts])))
    assert bag.region.unique().numel() == n_regions
    assert bag.region[: len(parts[0].region)].max() < bag.region[len(parts[0].region):].min()
    assert bag.rna is None


def test_rna_only_and_normalizer_reference(cohort):
    train_ids, val_ids = cohort.folds[0]
    norm = RNANormalizer().fit(cohort.rna.loc[train_ids])
    x = cohort.rna.loc[train_ids].to_numpy()
    np.testing.assert_allclose(norm.mean_, x.mean(0))
    np.testing.assert_allclose(norm.std_, x.std(0))
    ds = CohortDataset(cohort, val_ids, modalities=("rna",), rna_normalizer=norm)
    b = ds[3]
    assert b.features is None and b.region is None and b.time_bin == -1
    want = (cohort.rna.loc[val_ids[3]].to_numpy() - x.mean(0)) / x.std(0)
    np.testing.assert_allclose(b.rna.numpy(), want, rtol=1e-5, atol=1e-5)
    back = RNANormalizer.from_dict(norm.to_dict())
    np.testing.assert_array_equal(back.transform(cohort.rna.loc[val_ids]), norm.transform(cohort.rna.loc[val_ids]))


def test_fitted_objects_ignore_validation_data(cohort):
    _, _, fitted = fold_datasets(cohort, fold=2)
    val_ids = cohort.folds[2][1]
    perturbed = copy.copy(cohort)
    perturbed.rna = cohort.rna.copy()
    perturbed.clinical = cohort.clinical.copy()
    perturbed.rna.loc[val_ids] = perturbed.rna.loc[val_ids] * 100 + 7
    perturbed.clinical.loc[val_ids, "survival_months"] = 0.5
    perturbed.clinical.loc[val_ids, "event"] = 1
    _, val_p, fitted_p = fold_datasets(perturbed, fold=2)
    np.testing.assert_array_equal(fitted.rna_normalizer.mean_, fitted_p.rna_normalizer.mean_)
    np.testing.assert_array_equal(fitted.rna_normalizer.std_, fitted_p.rna_normalizer.std_)
    np.testing.assert_array_equal(fitted.time_binner.edges_, fitted_p.time_binner.edges_)
    assert val_p[0].time == 0.5  # the validation data did change
    # ...while perturbing a training case does change them
    train_id = cohort.folds[2][0][0]
    perturbed.rna.loc[train_id] = perturbed.rna.loc[train_id] + 50
    _, _, fitted_t = fold_datasets(perturbed, fold=2)
    assert not np.array_equal(fitted.rna_normalizer.mean_, fitted_t.rna_normalizer.mean_)


def test_feature_cache_is_bounded(cohort):
    ds = CohortDataset(cohort, cohort.case_ids[:5], modalities=("wsi",), feature_cache=2)
    first = ds[0].features
    for i in range(5):
        ds[i]
    assert len(ds._cache) == 2
    assert torch.equal(ds[0].features, first)


def test_dataset_errors(cohort, root, tmp_path):
    with pytest.raises(KeyError, match="NOPE"):
        CohortDataset(cohort, ["NOPE"])
    with pytest.raises(ValueError, match="modalities"):
        CohortDataset(cohort, cohort.case_ids[:2], modalities=("ct",))
    with pytest.raises(ValueError, match="fold 9 does not exist"):
        fold_datasets(cohort, 9)
    rna_only = copy.copy(cohort)
    rna_only.manifest = dict(cohort.manifest, modalities=["rna"])
    with pytest.raises(ValueError, match=r"not \['wsi'\]"):
        CohortDataset(rna_only, cohort.case_ids[:2])
    with pytest.raises(ValueError, match="non-negative"):
        RNANormalizer(log1p=True).fit(np.array([[-1.0], [2.0]]))
    # a zero-patch file left by another tool: the read fails naming the file
    dst = tmp_path / "c"
    shutil.copytree(root, dst)
    c2 = load_cohort(dst, validate=False)
    case = c2.case_ids[0]
    slide = c2.slide_ids(case)[0]
    with h5py.File(c2.feature_path(slide), "w") as f:
        f.create_dataset("features", data=np.zeros((0, 32), np.float32))
        f.create_dataset("coords", data=np.zeros((0, 2), np.int64))
        f.create_dataset("region", data=np.zeros((0,), np.int64))
        for k in ("slide_id", "patch_size", "region_size", "magnification", "encoder"):
            f.attrs[k] = 1
    with pytest.raises(ValueError, match=f"{slide}.h5: the slide has zero patches"):
        CohortDataset(c2, [case], modalities=("wsi",))[0]
