"""Sanity checks of the importance maps on a tiny model trained on a tiny synthetic cohort (CPU):
the planted-signal overlap (precision at k against the regions and pathways the generator
planted, with chance levels) and the model-randomisation check (Adebayo et al., 2018).

Measured when the thresholds were chosen (BLCA tiny, seed 0, fold 0: 72 validation cases, 38 of
them with tumour and other regions; validation c-index 0.63): region precision@1 0.895 for
integrated gradients and 0.605 for the hidden-attention rollout, chance 0.555; with training
seed 1 instead of 0, 0.737 and 0.579. The tests print their numbers."""
from __future__ import annotations

import pytest
import torch

from survmamba_lite.data import load_cohort, make_synthetic_cohort
from survmamba_lite.interpret.checks import (fit_full_batch, patient_maps, planted_overlap,
                                             randomisation_correlations, randomised_copy)

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """20 full-batch Adam steps (lr 0.01, width 16, seed 0) on fold 0's 287 training cases."""
    torch.set_num_threads(1)
    cohort = load_cohort(make_synthetic_cohort("BLCA", "tiny", seed=0, out=tmp_path_factory.mktemp("p") / "c"))
    model, prep, val = fit_full_batch(cohort, 0, steps=20, lr=1e-2, dim=16, seed=0)
    maps = patient_maps(model, cohort, val, prep.rna_normalizer, ig_steps=8)
    return model, cohort, prep, val, maps


def test_planted_signal_overlap(trained):
    model, cohort, prep, val, maps = trained
    table = planted_overlap(maps, cohort)
    mean = table.drop(columns="case_id").mean()
    n_mixed = int(table["regions_ig"].notna().sum())
    print(f"{len(table)} validation cases, {n_mixed} with tumour and other regions")
    print(mean.round(3).to_string())
    # the gradient baseline finds the planted tumour regions: precision@1 well above chance
    assert mean["regions_chance"] < 0.6
    assert mean["regions_ig"] >= 0.75, mean["regions_ig"]
    assert mean["regions_ig"] - mean["regions_chance"] >= 0.2


def test_model_randomisation(trained):
    model, cohort, prep, val, maps = trained
    cases = val[:24]
    torch.manual_seed(1234)                                          # a different seed of nothing random
    again = patient_maps(model, cohort, cases, prep.rna_normalizer, ig_steps=8)
    rand = patient_maps(randomised_copy(model, seed=7), cohort, val, prep.rna_normalizer, ig_steps=8)
    rho = randomisation_correlations(maps[:24], rand[:24], again).groupby("map")[["rho_randomised", "rho_again"]].mean()
    print(rho.round(3).to_string())
    assert (rho["rho_again"] > 0.999).all()                          # the maps are reproducible
    # integrated gradients: randomising the weights destroys the patch and gene maps
    assert rho.loc["ig_patches", "rho_randomised"] < 0.5
    assert rho.loc["ig_functions", "rho_randomised"] < 0.5
    # the planted-signal threshold fails for the randomised model: it is not met by chance
    rand_regions = planted_overlap(rand, cohort)["regions_ig"].mean()
    print(f"randomised model: region precision@1 of integrated gradients {rand_regions:.3f}")
    assert rand_regions < 0.75
