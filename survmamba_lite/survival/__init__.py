"""Survival analysis: discrete-time NLL and Cox losses, time binning, metrics, calibration
(D-calibration, integrated calibration index), resampling statistics (bootstrap, permutation), KM/log-rank.

>>> import torch
>>> from survmamba_lite.survival import TimeBinner, nll_loss, risk_score, concordance_index
>>> binner = TimeBinner(n_bins=2).fit([3.0, 5.0, 8.0, 9.0], [1, 1, 1, 0])
>>> y = torch.as_tensor(binner.transform([3.0, 5.0, 8.0, 9.0]))
>>> logits = torch.tensor([[2.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [-2.0, 0.0]])
>>> loss = nll_loss(logits, y, torch.tensor([1, 1, 1, 0]))
>>> concordance_index([3.0, 5.0, 8.0, 9.0], risk_score(logits), [1, 1, 1, 0])
1.0
"""
from .binning import TimeBinner
from .calibration import Calibration, DCalibration, calibration_at, d_calibration, discrete_time_pit, survival_at_horizon
from .brier import brier_score, censoring_km, integrated_brier_score
from .labels import CENSORSHIP_RULE, check_events, check_time_bins, event_from_censorship
from .km import LogRankResult, kaplan_meier, logrank_test, plot_km_by_risk, split_by_median_risk
from .loss import CoxPHLoss, NLLSurvLoss, cox_ph_loss, hazards_to_survival, nll_loss, risk_score
from .metrics import (
    bin_end_times,
    bin_survival_grid,
    comparable_pairs,
    concordance_index,
    concordance_index_ref,
    concordance_of_pairs,
    concordance_td,
    survival_at,
)
from .resampling import (
    BootstrapCI,
    PermutationNull,
    bootstrap_ci,
    fold_mean_bootstrap_ci,
    fold_permutation_cindex,
    t_interval,
)

__all__ = [
    "TimeBinner",
    "nll_loss",
    "NLLSurvLoss",
    "hazards_to_survival",
    "risk_score",
    "cox_ph_loss",
    "CoxPHLoss",
    "concordance_index",
    "concordance_index_ref",
    "concordance_td",
    "survival_at",
    "bin_survival_grid",
    "bin_end_times",
    "censoring_km",
    "brier_score",
    "integrated_brier_score",
    "comparable_pairs",
    "concordance_of_pairs",
    "bootstrap_ci",
    "BootstrapCI",
    "fold_mean_bootstrap_ci",
    "t_interval",
    "fold_permutation_cindex",
    "PermutationNull",
    "kaplan_meier",
    "logrank_test",
    "LogRankResult",
    "split_by_median_risk",
    "plot_km_by_risk",
    "event_from_censorship",
    "check_events",
    "check_time_bins",
    "CENSORSHIP_RULE",
    "d_calibration",
    "DCalibration",
    "discrete_time_pit",
    "survival_at_horizon",
    "calibration_at",
    "Calibration",
]
