"""Experiments: one frozen config, a resumable trainer, k-fold cross-validation and reports.

>>> from survmamba_lite.experiment import ExperimentConfig
>>> ExperimentConfig(model="snn", cohort_dir="cohort", out_dir="run").modalities
('rna',)
"""
from survmamba_lite.experiment.config import ExperimentConfig, config_differences
from survmamba_lite.experiment.cv import CVResult, model_label, run_cv

__all__ = ["ExperimentConfig", "config_differences", "CVResult", "run_cv", "model_label"]
