"""Tiny CPU runs give bit for bit the predictions, weights and metrics recorded in
``tests/fixtures/tiny_runs_86d72b4.json``.

The fixture was written by this module's procedure (:func:`record`) with the code of commit
86d72b4, before the training step, the run folders and the configuration of the upper
floors were restructured: a refactoring must leave every number of a run unchanged. It
covers the model kinds whose training goes through different code (SurvMamba on both
modalities; CLAM-SB with its auxiliary instance loss; TransMIL with a padded batch of 2;
ABMIL-KP on the reference path that reads features from disk, with gradient accumulation;
SNN alone on RNA with AdamW, ``alpha = 0.4`` and 3 bins), the command line
(flags -> config -> run) and the real-data route (``run_genomic_check`` -> cross-validation
and inner validation). Per fold it compares the trained weights (a SHA-256 of the state
dict), the validation predictions recomputed at full precision from the checkpoint, and
``metrics.json`` (c-indices, IBS, losses per epoch, bin edges, seed).

A deliberate change of behaviour rewrites the fixture:
``python tests/test_behaviour_unchanged.py`` (and says so in its commit). Rewritten twice since
86d72b4: when prediction files went to full precision (the real-data records gained their
``evidence`` entry and the inner validation's risk spreads, read from ``predictions.csv``, moved
in the tenth digit; every weight, prediction and metric stayed equal), and when the comparison
became one across machines (below), on a machine where the code of that rewrite (78af2a9) and
the code of this one give records equal bit for bit.

**Across machines.** On one machine the runs repeat bit for bit. Another CPU (AVX2 against
AVX-512 kernels, another BLAS code path) rounds float32 differently, and two epochs carry that
rounding into every weight: a fixture written on one machine and read on another differed by
at most a few 1e-7 (relative) in every number and in every weight. So numbers are compared to
``REL_TOL`` (relative) and the weights by a fingerprint (per tensor, its L2 norm and the sum of
its absolute values, in float64) to the same tolerance; integers, strings and case ids exactly.
A change of behaviour (another seed, order, learning rate, loss or initialisation) moves
these numbers by 1e-3 or more.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "tiny_runs_86d72b4.json"
COMMON = dict(max_cases=24, threads=1, seed=0)
#: name -> (ExperimentConfig fields, where the features are kept)
CASES = {
    "survmamba": (dict(model="survmamba", model_options={"dim": 8}, folds=(0, 1), epochs=2, max_patches=12), "auto"),
    "clam-sb": (dict(model="clam-sb", model_options={"dim": 8}, folds=(0,), epochs=2, max_patches=12), "auto"),
    "transmil": (dict(model="transmil", model_options={"dim": 8, "heads": 2}, folds=(1,), epochs=1, batch_size=2,
                      max_patches=12), "auto"),
    "abmil-kp-disk": (dict(model="abmil-kp", model_options={"dim": 8}, folds=(0,), epochs=2, grad_accum=2,
                           max_patches=12), "disk"),
    "snn": (dict(model="snn", model_options={"dim": 8, "n_layers": 2}, folds=(0,), epochs=2, alpha=0.4,
                 optimizer="adamw", n_bins=3), "auto"),
}
CLI_FLAGS = ["--model", "snn", "--epochs", "2", "--folds", "1", "--max-cases", "24", "--dim", "8", "--set",
             "n_layers=2", "--threads", "1", "--lr", "1e-3", "--weight-decay", "0.01", "--n-bins", "3", "--alpha",
             "0.2", "--seed", "3", "--optimizer", "radam-decoupled", "--quiet"]
METRIC_KEYS = ("c_index", "c_index_td", "ibs", "n_train", "n_val", "n_bins", "bin_inner_edges", "seed", "train_loss",
               "val_loss", "val_c_index")
#: wall-clock fields of the real-data records (not results)
TIMES = {"wall_s", "compute_s", "seconds", "train_seconds"}
#: relative tolerance of every float (a CPU's float32 rounding, see the module's docstring)
REL_TOL = 1e-5
#: absolute floor for floats near zero (risks, means)
ABS_TOL = 1e-8


def weights_fingerprint(checkpoint: Path) -> dict[str, list]:
    """Per model tensor of a fold checkpoint (names sorted): its shape, L2 norm and sum of |w| (float64)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["model"]
    out = {}
    for name in sorted(state):
        w = state[name].detach().to(torch.float64)
        out[name] = [list(w.shape), float(w.norm()), float(w.abs().sum())]
    return out


def fold_record(config, k: int) -> dict:
    """The fold's metrics, weights and full-precision validation predictions."""
    from survmamba_lite.data.dataset import fold_datasets
    from survmamba_lite.experiment.jobs import cached_cohort
    from survmamba_lite.experiment.evaluation import predict
    from survmamba_lite.registry import ModelInputs, build_model

    fold_dir = Path(config.out_dir) / f"fold_{k}"
    metrics = json.loads((fold_dir / "metrics.json").read_text(encoding="utf-8"))
    cohort, _, wsi_dim = cached_cohort(config)
    _, val_ds, prep = fold_datasets(cohort, k, binner_bins=config.n_bins, modalities=config.modalities,
                                    log1p=config.rna_log1p)
    inputs = ModelInputs(n_bins=prep.time_binner.n_bins_, wsi_dim=wsi_dim if "wsi" in config.modalities else None,
                         hierarchy=cohort.hierarchy if "rna" in config.modalities else None)
    model = build_model(config.model, inputs, **config.model_options)
    model.load_state_dict(torch.load(fold_dir / "checkpoint.pt", map_location="cpu", weights_only=True)["model"])
    frame, val_loss = predict(model, val_ds, config, torch.device("cpu"))
    return {"metrics": {key: metrics[key] for key in METRIC_KEYS},
            "weights": weights_fingerprint(fold_dir / "checkpoint.pt"),
            "case_id": frame["case_id"].tolist(), "risk": frame["risk"].tolist(),
            "survival": frame[[c for c in frame.columns if c.startswith("S_")]].to_numpy().tolist(),
            "predict_loss": val_loss}


def _settings(config) -> dict:
    return {k: v for k, v in config.to_dict().items() if k not in ("cohort_dir", "out_dir")}


def record_runs(cohort_dir: Path, tmp: Path) -> dict:
    from survmamba_lite.experiment import ExperimentConfig, run_cv

    out = {}
    for name, (fields, features) in CASES.items():
        config = ExperimentConfig(cohort_dir=str(cohort_dir), out_dir=str(tmp / "runs" / name), **COMMON, **fields)
        res = run_cv(config, progress=False, features=features)
        out[name] = {"config": _settings(config), "features": features,
                     "folds": {str(k): fold_record(config, k) for k in config.folds},
                     "summary_c_index": res.summary["c_index"]["values"], "oof_c_index": res.summary["oof_c_index"]}
    return out


def record_cli(cohort_dir: Path, tmp: Path) -> dict:
    from survmamba_lite.cli import main
    from survmamba_lite.experiment import ExperimentConfig

    assert main(["cv", "--cohort-dir", str(cohort_dir), "--out", str(tmp / "cli"), *CLI_FLAGS]) == 0
    config = ExperimentConfig.load(tmp / "cli" / "config.json")
    return {"config": _settings(config), "folds": {"1": fold_record(config, 1)}}


def _without_times(x):
    if isinstance(x, dict):
        return {k: _without_times(v) for k, v in x.items() if k not in TIMES}
    if isinstance(x, list):
        return [_without_times(v) for v in x]
    return x


def record_realdata(rna_cohort: Path, tmp: Path) -> dict:
    from survmamba_lite.realdata import ModelRun
    from survmamba_lite.realdata.runs import run_genomic_check
    from survmamba_lite.realdata.training import training_template

    models = {"snn": ModelRun("snn", "SNN", "snn", {"dim": 16, "n_layers": 2}, "SNN"),
              "snntrans": ModelRun("snntrans", "SNNTrans", "snntrans", {"dim": 8, "heads": 2, "fn_hidden": 4},
                                   "SNNTrans")}
    out_dir, work = tmp / "rd_out", tmp / "rd_work"
    template = training_template(epochs=2, folds=[0, 1], seed=0, threads=1, device="cpu")
    run_genomic_check({"coadread": rna_cohort}, out_dir, template, work=work, models=["snn", "snntrans"],
                      model_table=models, n_boot=50, setting="cpu", inner_val=True, log=lambda m: None)
    rec = {}
    for p in sorted((out_dir / "runs").glob("*.json")) + sorted((out_dir / "inner").glob("*.json")):
        rec[f"{p.parent.name}/{p.name}"] = _without_times(json.loads(p.read_text(encoding="utf-8")))
    for m in models:
        for k in (0, 1):
            rec[f"weights/{m}/fold_{k}"] = weights_fingerprint(work / "runs" / "coadread" / m / f"fold_{k}" / "checkpoint.pt")
        rec[f"weights/inner/{m}/outer_0"] = weights_fingerprint(work / "inner" / "coadread" / m / "outer_0" / "checkpoint.pt")
    return rec


def record(tmp: Path) -> dict:
    """Every run of the fixture, made in ``tmp`` (on the cohorts of ``conftest.py``)."""
    from conftest import make_small_rna_cohort
    from survmamba_lite.data.synth import make_synthetic_cohort

    cohort_dir = make_synthetic_cohort("BLCA", "tiny", seed=0, out=tmp / "blca")
    coadread = make_synthetic_cohort("COADREAD", "tiny", 0, tmp / "coadread")
    return {"runs": record_runs(cohort_dir, tmp), "cli": record_cli(cohort_dir, tmp),
            "realdata": record_realdata(make_small_rna_cohort(coadread, tmp / "coadread-small"), tmp)}


# --------------------------------------------------------------------------- the tests
@pytest.fixture(scope="module")
def before() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def _same(now, then, where: str) -> None:
    """Equality (floats to REL_TOL, everything else exactly), naming the first place that differs."""
    if isinstance(then, dict):
        assert isinstance(now, dict) and set(now) == set(then), f"{where}: keys {sorted(now)} != {sorted(then)}"
        for k in then:
            _same(now[k], then[k], f"{where}.{k}")
    elif isinstance(then, list):
        assert isinstance(now, list) and len(now) == len(then), f"{where}: length {len(now)} != {len(then)}"
        for i, (a, b) in enumerate(zip(now, then)):
            _same(a, b, f"{where}[{i}]")
    elif isinstance(then, float) and not isinstance(now, bool) and isinstance(now, (int, float)):
        assert math.isclose(now, then, rel_tol=REL_TOL, abs_tol=ABS_TOL), \
            f"{where}: {now!r} now, {then!r} before (relative difference {abs(now - then) / max(abs(then), 1e-300):.1e})"
    else:
        assert now == then and type(now) is type(then), f"{where}: {now!r} now, {then!r} before"


def test_model_kinds_train_to_the_same_bits(before, cohort_dir, tmp_path):
    _same(json.loads(json.dumps(record_runs(cohort_dir, tmp_path))), before["runs"], "runs")


def test_the_command_line_trains_to_the_same_bits(before, cohort_dir, tmp_path):
    _same(json.loads(json.dumps(record_cli(cohort_dir, tmp_path))), before["cli"], "cli")


def test_the_real_data_route_gives_the_same_records(before, small_rna_cohort, tmp_path):
    _same(json.loads(json.dumps(record_realdata(small_rna_cohort, tmp_path))), before["realdata"], "realdata")


if __name__ == "__main__":                 # rewrite the fixture (a deliberate change of behaviour)
    import tempfile

    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as d:
        FIXTURE.write_text(json.dumps(record(Path(d)), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {FIXTURE}")
