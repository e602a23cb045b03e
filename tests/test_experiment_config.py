"""ExperimentConfig: validation, JSON round trips, papermill-style flat parameters."""
from __future__ import annotations

import json

import pytest

from survmamba_lite.experiment.config import OPERATIONAL_FIELDS, ExperimentConfig, config_differences


def test_defaults_follow_the_paper():
    cfg = ExperimentConfig(model="survmamba", cohort_dir="c", out_dir="o")
    assert (cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.batch_size, cfg.n_bins) == ("radam", 2e-4, 5e-3, 1, 4)
    assert cfg.alpha == 0.0 and cfg.folds is None and cfg.device == "auto"
    assert cfg.modalities == ("wsi", "rna")
    assert ExperimentConfig(model="snn", cohort_dir="c", out_dir="o").modalities == ("rna",)
    assert ExperimentConfig(model="abmil", cohort_dir="c", out_dir="o").modalities == ("wsi",)


def test_json_round_trip_and_derived_block_ignored(tmp_path):
    cfg = ExperimentConfig(model="survmamba", cohort_dir="c", out_dir="o", folds=(1, 0),
                           model_options={"variant": "D", "bidirectional": False, "dim": 32}, max_patches=64)
    assert cfg.folds == (0, 1)                                     # sorted
    path = cfg.save(tmp_path / "config.json", derived={"cohort": "BLCA"})
    data = json.loads(path.read_text())
    assert data["derived"] == {"cohort": "BLCA"} and data["model_options"]["variant"] == "D"
    back = ExperimentConfig.load(path)
    assert back == cfg and back.to_dict() == cfg.to_dict()
    with pytest.raises(TypeError):
        back.model_options["dim"] = 8                              # frozen, options included
    with pytest.raises(ValueError, match="unknown field"):
        ExperimentConfig.from_dict({**cfg.to_dict(), "epoch": 3})


def test_from_params_splits_fields_and_model_options():
    cfg = ExperimentConfig.from_params(model="survmamba", cohort_dir="c", out_dir="o", epochs=3, folds=[2],
                                       variant="B", dim=16, bidirectional=None, seed=5)
    assert cfg.epochs == 3 and cfg.folds == (2,) and cfg.seed == 5
    assert dict(cfg.model_options) == {"variant": "B", "dim": 16}     # None = model default
    assert cfg.resolved_model_options()["bidirectional"] is True
    base = ExperimentConfig.from_params(model="snn", cohort_dir="c", out_dir="o", variant=None,
                                        model_options={"dim": 8})
    assert dict(base.model_options) == {"dim": 8}


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown model 'abmill'.*Did you mean 'abmil'"):
        ExperimentConfig(model="abmill", cohort_dir="c", out_dir="o")
    with pytest.raises(ValueError, match="'abmil' does not accept option 'bidirectional'.*accepted by: survmamba"):
        ExperimentConfig(model="abmil", cohort_dir="c", out_dir="o", model_options={"bidirectional": False})
    with pytest.raises(ValueError, match="did you mean 'd_state'"):
        ExperimentConfig(model="survmamba", cohort_dir="c", out_dir="o", model_options={"d_stat": 8})
    with pytest.raises(ValueError, match="alpha"):
        ExperimentConfig(model="snn", cohort_dir="c", out_dir="o", alpha=1.5)
    with pytest.raises(ValueError, match="device"):
        ExperimentConfig(model="snn", cohort_dir="c", out_dir="o", device="gpu")
    with pytest.raises(ValueError, match="folds"):
        ExperimentConfig(model="snn", cohort_dir="c", out_dir="o", folds=(0, 0))
    with pytest.raises(ValueError, match="epochs"):
        ExperimentConfig(model="snn", cohort_dir="c", out_dir="o", epochs=0)
    with pytest.raises(ValueError, match="optimizer"):
        ExperimentConfig(model="snn", cohort_dir="c", out_dir="o", optimizer="sgd")


def test_config_differences_ignore_operational_fields():
    a = ExperimentConfig(model="snn", cohort_dir="c", out_dir="o")
    b = a.replace(out_dir="elsewhere", device="cpu", num_workers=2, threads=1)
    assert set(OPERATIONAL_FIELDS) == {"out_dir", "device", "num_workers", "threads"}
    assert config_differences(a, b) == {}
    c = a.replace(lr=1e-3, model_options={"dim": 8})
    assert config_differences(a, c) == {"lr": (2e-4, 1e-3), "model_options": ({}, {"dim": 8})}


def test_radam_weight_decay_is_l2_and_radam_decoupled_shrinks_the_weights_directly():
    """With no loss gradient, ``radam`` (PyTorch's L2 form) moves a weight by the adaptive step,
    about ``lr`` per step once the variance is rectified, whatever ``weight_decay`` is;
    ``radam-decoupled`` (SurvPath's RAdam) multiplies it by ``1 - lr * weight_decay`` per step."""
    import torch

    from survmamba_lite.experiment import ExperimentConfig
    from survmamba_lite.experiment.step import make_optimizer

    lr, wd, steps = 2e-4, 5e-3, 200
    moved = {}
    for name in ("radam", "radam-decoupled"):
        w = torch.nn.Parameter(torch.full((4,), 0.05, dtype=torch.float64))
        opt = make_optimizer(ExperimentConfig(model="snn", cohort_dir=".", out_dir=".", optimizer=name, lr=lr,
                                              weight_decay=wd), [w])
        for _ in range(steps):
            opt.zero_grad()
            (0.0 * w).sum().backward()                       # the loss does not depend on w
            opt.step()
        moved[name] = 0.05 - float(w.detach()[0])
    assert moved["radam-decoupled"] == pytest.approx(0.05 * (1 - (1 - lr * wd) ** steps), rel=1e-9)
    assert moved["radam-decoupled"] < 1e-5                   # 200 steps: 0.05 shrinks by 5e-6
    assert moved["radam"] > 100 * moved["radam-decoupled"]   # the normalised L2 step: a fixed fraction of lr
    assert moved["radam"] > 0.1 * steps * lr
