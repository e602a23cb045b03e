"""Prediction files reproduce their metrics exactly: every number a run stores is recomputed from its
CSV files (lifelines for the c-index, the trainer's own function for the others) to the last bit,
also when the risks differ only beyond the tenth digit (where 10-digit files made ties)."""
from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from lifelines.utils import concordance_index as lifelines_cindex

import survmamba_lite.experiment.evaluation as evaluation_mod
from survmamba_lite.data.synth import make_synthetic_cohort
from survmamba_lite.experiment import ExperimentConfig, run_cv
from survmamba_lite.experiment.predfiles import read_predictions, write_predictions
from survmamba_lite.experiment.recompute import recompute_run, regenerate_run_metrics


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory):
    return make_synthetic_cohort("BLCA", "tiny", seed=0, out=tmp_path_factory.mktemp("cohort") / "blca")


def test_written_predictions_read_back_bit_for_bit(tmp_path):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(2000) * 10.0 ** rng.integers(-12, 4, 2000),
                        -3.0 + rng.random(500) * 1e-12, [-2.9999999999999996, 1 - 2 ** -53, 5e-324]])
    frame = pd.DataFrame({"case_id": [f"{i:04d}" for i in range(x.size)], "risk": x})
    back = write_predictions(tmp_path / "p.csv", frame)
    assert np.array_equal(back["risk"].to_numpy(), x) and back["case_id"].tolist() == frame["case_id"].tolist()
    assert np.array_equal(read_predictions(tmp_path / "p.csv")["risk"].to_numpy(), x)
    # the reason for the round-trip parser: pandas' default one misses some of these values by one unit
    default = pd.read_csv(io.StringIO((tmp_path / "p.csv").read_text()))["risk"].to_numpy()
    assert (default != x).any()


def _saturating(original):
    """predictions_frame whose risks crowd within 1e-12 of -3, as a saturated SNN's do."""
    def frame(case_ids, time, event, time_bin, logits):
        out = original(case_ids, time, event, time_bin, logits)
        order = np.argsort(np.argsort(out["risk"].to_numpy()))
        out["risk"] = -3.0 + order * 3e-13                  # distinct in float64, equal at 10 digits
        return out
    return frame


def test_a_run_with_saturated_risks_reproduces_every_metric_from_its_files(cohort_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(evaluation_mod, "predictions_frame", _saturating(evaluation_mod.predictions_frame))
    cfg = ExperimentConfig(model="snn", cohort_dir=str(cohort_dir), out_dir=str(tmp_path / "run"),
                           model_options={"dim": 8}, max_cases=40, epochs=2, threads=1)
    res = run_cv(cfg, progress=False)
    table = recompute_run(tmp_path / "run")
    assert table["equal"].all(), table[~table["equal"]]
    assert regenerate_run_metrics(tmp_path / "run") == []           # nothing to repair
    for m in res.folds:
        pred = read_predictions(tmp_path / "run" / f"fold_{m['fold']}" / "predictions.csv")
        assert m["c_index"] == lifelines_cindex(pred["time"], -pred["risk"], pred["event"]) == m["val_c_index"][-1]
        rounded = pred.assign(risk=[float(f"{r:.10g}") for r in pred["risk"]])
        assert lifelines_cindex(rounded["time"], -rounded["risk"], rounded["event"]) == 0.5   # what %.10g gave
    oof = read_predictions(tmp_path / "run" / "oof_predictions.csv")
    assert res.summary["oof_c_index"] == lifelines_cindex(oof["time"], -oof["risk"], oof["event"])


def test_regenerating_a_rounded_run_takes_the_numbers_its_files_give(cohort_dir, tmp_path):
    cfg = ExperimentConfig(model="snn", cohort_dir=str(cohort_dir), out_dir=str(tmp_path / "run"),
                           model_options={"dim": 8}, max_cases=40, epochs=1, threads=1)
    run_cv(cfg, progress=False)
    run = tmp_path / "run"
    for k in range(5):                                  # the old writer: 10 significant digits, ties made
        path = run / f"fold_{k}" / "predictions.csv"
        pred = read_predictions(path)
        pred["risk"] = -3.0 + np.argsort(np.argsort(pred["risk"].to_numpy())) * 3e-13
        path.write_text(pred.to_csv(index=False, float_format="%.10g", lineterminator="\n"))
    lines = regenerate_run_metrics(run)
    assert any("c_index" in line for line in lines)
    assert recompute_run(run)["equal"].all()
    for k in range(5):
        metrics = json.loads((run / f"fold_{k}" / "metrics.json").read_text())
        assert metrics["c_index"] == 0.5 and "recomputed from predictions.csv" in metrics["metrics_note"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["c_index"]["values"] == [0.5] * 5 and summary["c_index"]["mean"] == 0.5
