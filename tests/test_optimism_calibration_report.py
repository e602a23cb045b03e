"""The optimism gap and the calibration table of ``survmamba report``, checked by hand and on a
committed paper-scale run."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from survmamba_lite.experiment.calibration_report import calibration_table, default_horizons, oof_calibration
from survmamba_lite.experiment.optimism import (evidence_optimism, fold_optimism, optimism_gap, optimism_summary)
from survmamba_lite.experiment.report import make_report
from survmamba_lite.survival import d_calibration

ROOT = Path(__file__).resolve().parents[1]
SNN = ROOT / "results" / "fullscale" / "paper" / "runs" / "blca_paper" / "snn"


def test_fold_optimism_takes_the_first_best_epoch_and_the_reported_last_value():
    assert fold_optimism([0.5, 0.7, 0.7, 0.6], 0.6) == (0.7, 2)
    assert fold_optimism([0.5, None, 0.55], 0.55) == (0.55, 3)
    assert fold_optimism([0.9, 0.5], 0.4) == (0.9, 1)              # the record's last value is replaced
    with pytest.raises(ValueError, match="no per-epoch"):
        fold_optimism([], 0.5)


def test_optimism_summary_by_hand():
    per_fold = {0: ([0.5, 0.6, 0.55], 0.55), 1: ([0.6, 0.58, 0.62], 0.62), 2: ([0.7, 0.6, 0.5], 0.5)}
    row = optimism_summary("M", "C", per_fold)
    diff = np.array([0.05, 0.0, 0.2])
    half = stats.t.ppf(0.975, 2) * diff.std(ddof=1) / np.sqrt(3)
    assert row["last_epoch_c_index"] == pytest.approx(np.mean([0.55, 0.62, 0.5]))
    assert row["best_epoch_c_index"] == pytest.approx(np.mean([0.6, 0.62, 0.7]))
    assert row["difference"] == pytest.approx(diff.mean())
    assert (row["difference_ci_low"], row["difference_ci_high"]) == pytest.approx((diff.mean() - half,
                                                                                   diff.mean() + half))
    assert row["folds_improved"] == 2 and json.loads(row["fold_best_epoch"]) == [2, 3, 1]
    assert row["mean_best_epoch"] == pytest.approx(2.0) and row["epochs"] == 3


def test_real_data_rows_give_the_same_row_from_their_epochs_file():
    epochs = pd.DataFrame({"fold": [0, 0, 1, 1], "epoch": [1, 2, 1, 2], "val_c_index": [0.7, 0.6, 0.5, 0.55]})
    record = {"cohort_key": "blca", "cohort": "BLCA", "model_key": "snn", "label": "SNN", "fold_c_index": [0.6, 0.55]}
    row = evidence_optimism(record, epochs)
    assert (row["model"], row["cohort"], row["model_key"]) == ("SNN", "BLCA", "snn")
    assert row["difference"] == pytest.approx(0.05) and row["folds_improved"] == 1
    with pytest.raises(ValueError, match="fold c-indices"):
        evidence_optimism({**record, "fold_c_index": [0.6]}, epochs)


def test_calibration_of_out_of_fold_curves_by_hand():
    rng = np.random.default_rng(0)
    n = 300
    surv = np.sort(rng.uniform(0.05, 1, (n, 3)), axis=1)[:, ::-1]
    oof = pd.DataFrame({"fold": np.repeat([0, 1, 2], 100), "time": rng.uniform(1, 40, n),
                        "event": rng.integers(0, 2, n), "S_0": surv[:, 0], "S_1": surv[:, 1], "S_2": surv[:, 2]})
    edges = {0: [10.0, 20.0], 1: [12.0, 22.0], 2: [9.0, 18.0]}
    oof["time_bin"] = [int(np.searchsorted(edges[k], t, side="right")) for k, t in zip(oof["fold"], oof["time"])]
    rows, curves = oof_calibration(oof, edges, model="M", cohort="C")
    assert [r["horizon"] for r in rows] == default_horizons(edges) == [10.0, 18.0]
    # D-calibration by hand: deaths over [S_k, S_{k-1}], censored at S_k
    padded = np.concatenate([np.ones((n, 1)), surv], axis=1)
    k = oof["time_bin"].to_numpy()
    at, before = surv[np.arange(n), k], np.where(oof["event"] == 1, padded[np.arange(n), k], surv[np.arange(n), k])
    assert rows[0]["d_calibration_chi2"] == pytest.approx(d_calibration(at, oof["event"], surv_before=before).statistic)
    # at horizon 10 fold 0 is read at its first bin end (S_0), fold 1 between 0 and 12, fold 2 between 9 and 18
    pred = np.sort(np.concatenate([1 - surv[:100, 0], 1 - (1 - 10 / 12 * (1 - surv[100:200, 0])),
                                   1 - (surv[200:, 0] + (10 - 9) / 9 * (surv[200:, 1] - surv[200:, 0]))]))
    np.testing.assert_allclose(curves[10.0]["predicted"].to_numpy(), pred, rtol=1e-12)
    bad = oof_calibration(oof, {0: [10.0], 1: [12.0, 22.0], 2: [9.0, 18.0]}, model="M", cohort="C")[0]
    assert "different numbers of time bins" in bad[0]["note"]


def test_report_writes_the_optimism_and_calibration_tables_of_a_committed_run(tmp_path):
    rep = make_report([SNN], tmp_path / "rep", n_boot=20, n_perm=0)
    og = pd.read_csv(tmp_path / "rep" / "optimism_gap.csv")
    assert list(og.columns[:5]) == ["model", "cohort", "last_epoch_c_index", "best_epoch_c_index", "difference"]
    folds = [json.loads((SNN / f"fold_{k}" / "metrics.json").read_text()) for k in range(5)]
    last = [m["c_index"] for m in folds]
    best = [max(m["val_c_index"][:-1] + [m["c_index"]]) for m in folds]
    assert og.loc[0, "last_epoch_c_index"] == pytest.approx(np.mean(last), abs=1e-15)
    assert og.loc[0, "best_epoch_c_index"] == pytest.approx(np.mean(best), abs=1e-15)
    assert og.loc[0, "last_epoch_c_index"] == pytest.approx(rep.tables["table1_cindex"].loc[0, "mean"], abs=1e-15)
    cal = pd.read_csv(tmp_path / "rep" / "calibration.csv")
    edges = {k: m["bin_inner_edges"] for k, m in enumerate(folds)}
    assert cal["horizon"].tolist() == pytest.approx(default_horizons(edges))
    assert (cal["method"] == "cox-rcs").all() and cal["ici"].between(0, 1).all()
    assert "## Optimism gap" in (tmp_path / "rep" / "report.md").read_text()
    runs = [SimpleNamespace(label="SNN", cohort="BLCA", path=SNN, folds=folds,
                            oof=pd.read_csv(SNN / "oof_predictions.csv", float_precision="round_trip"))]
    pd.testing.assert_frame_equal(calibration_table(runs), cal.drop(columns="stands_on").assign(note=cal["note"].fillna("")),
                                  check_dtype=False, rtol=1e-12)
    assert optimism_gap(runs)["difference"].tolist() == pytest.approx(og["difference"].tolist(), abs=1e-15)
