"""The training settings of the real-data check's deep models: one config template that every
run varies (:func:`training_template`, :func:`model_config`)."""
from __future__ import annotations

import dataclasses
import os
from typing import Any

from survmamba_lite.experiment.config import ExperimentConfig
from survmamba_lite.realdata.catalogue import ModelRun

__all__ = ["training_template", "model_config"]


def training_template(**fields: Any) -> ExperimentConfig:
    """The training settings of the real-data check's deep models: one
    :class:`~survmamba_lite.experiment.ExperimentConfig` that every run varies with
    :func:`dataclasses.replace` (its ``model``, ``cohort_dir``, ``out_dir`` and
    ``model_options``; the ``"snn"`` here only stands in for them).

    The paper's optimiser (RAdam, lr 2e-4, weight decay 5e-3), batch size 1, 4 time bins and
    the last epoch's model evaluated are the config's defaults; the check's own defaults are
    3 epochs, one torch thread and the CPU. ``fields`` (``epochs``, ``seed``, ``folds``,
    ``threads``, ``device``, ``precision``, ``cuda_graphs``, ...) replace them.

    >>> t = training_template(epochs=20)
    >>> t.epochs, t.optimizer, t.lr, t.weight_decay, t.n_bins, t.threads, t.device
    (20, 'radam', 0.0002, 0.005, 4, 1, 'cpu')
    """
    return ExperimentConfig(model="snn", cohort_dir="", out_dir="", **{"epochs": 3, "threads": 1, "device": "cpu",
                                                                       **fields})


def model_config(template: ExperimentConfig, model: ModelRun, cohort_dir: str | os.PathLike,
                 out_dir: str | os.PathLike) -> ExperimentConfig:
    """``template`` for one model and cohort: its registry name and options, the cohort, the run
    directory, and a variant row's own training settings (``model.training``, e.g.
    ``{"optimizer": "radam-decoupled"}``)."""
    return dataclasses.replace(template, model=model.registry, cohort_dir=str(cohort_dir), out_dir=str(out_dir),
                               model_options=dict(model.options), **dict(model.training))
