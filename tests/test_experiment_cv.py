"""Trainer and k-fold cross-validation on a tiny synthetic cohort: every model trains,
results are consistent with independent references, a killed run resumes to the same
numbers, and nothing about the validation fold leaks into training."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from lifelines.utils import concordance_index as lifelines_cindex

import survmamba_lite.experiment.trainer as trainer_mod
from survmamba_lite.experiment import ExperimentConfig, run_cv
from survmamba_lite.registry import list_models

SMALL = dict(max_cases=24, epochs=1, folds=(0,))


def _config(cohort_dir, out, model="survmamba", **kw):
    options = kw.pop("model_options", {"dim": 8})
    kw.setdefault("threads", 1)        # small models: one thread is faster than two contended ones
    return ExperimentConfig(model=model, cohort_dir=str(cohort_dir), out_dir=str(out), model_options=options, **kw)


def _s_cols(frame):
    return [c for c in frame.columns if c.startswith("S_")]


@pytest.mark.parametrize("name", [s.name for s in list_models()])
def test_every_registered_model_trains_through_the_trainer(cohort_dir, tmp_path, name):
    cfg = _config(cohort_dir, tmp_path / name, model=name, model_options={"dim": 8}, max_patches=12, **SMALL)
    res = run_cv(cfg, progress=False)
    fold = tmp_path / name / "fold_0"
    assert (fold / "DONE").is_file() and (fold / "checkpoint.pt").is_file()
    pred = pd.read_csv(fold / "predictions.csv")
    metrics = json.loads((fold / "metrics.json").read_text())
    assert len(pred) == metrics["n_val"] > 0 and len(_s_cols(pred)) == metrics["n_bins"]
    surv = pred[_s_cols(pred)].to_numpy()
    assert np.all(np.diff(surv, axis=1) <= 1e-12) and np.all((surv > 0) & (surv <= 1))
    np.testing.assert_allclose(pred["risk"], -surv.sum(1), rtol=1e-9)
    assert len(metrics["train_loss"]) == 1 and np.isfinite(metrics["train_loss"][0])
    if metrics["c_index"] is not None:     # independent reference: lifelines ranks by predicted survival
        ref = lifelines_cindex(pred["time"], -pred["risk"], pred["event"])
        assert metrics["c_index"] == pytest.approx(ref, abs=1e-12)
    state = torch.load(fold / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1 and state["fold"] == 0
    assert res.summary["label"] and res.summary["n_oof"] == len(pred)


def test_auxiliary_loss_is_added_for_clam(cohort_dir, tmp_path, monkeypatch):
    from survmamba_lite.baselines.mil import CLAMSB

    calls = []
    original = CLAMSB.forward_train

    def counting(self, batch):
        logits, aux = original(self, batch)
        calls.append(float(aux.detach()))
        return logits, aux

    monkeypatch.setattr(CLAMSB, "forward_train", counting)
    res = run_cv(_config(cohort_dir, tmp_path / "clam", model="clam-sb", **SMALL), progress=False)
    assert len(calls) == res.folds[0]["n_train"]              # once per training batch (batch size 1)
    assert any(c > 0 for c in calls)


def test_cv_end_to_end_summary_matches_folds(cohort_dir, tmp_path):
    cfg = _config(cohort_dir, tmp_path / "run", max_cases=40, epochs=2, folds=(0, 1), max_patches=16)
    res = run_cv(cfg, progress=False)
    out = tmp_path / "run"
    for name in ("config.json", "summary.json", "oof_predictions.csv"):
        assert (out / name).is_file()
    c = [json.loads((out / f"fold_{k}" / "metrics.json").read_text())["c_index"] for k in (0, 1)]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["c_index"]["values"] == c
    assert summary["c_index"]["mean"] == pytest.approx(np.mean(c))
    assert summary["c_index"]["std"] == pytest.approx(np.std(c, ddof=1))
    oof = pd.read_csv(out / "oof_predictions.csv")
    assert oof["case_id"].is_unique and len(oof) == sum(f["n_val"] for f in res.folds)
    assert summary["oof_c_index"] == pytest.approx(lifelines_cindex(oof["time"], -oof["risk"], oof["event"]))
    derived = json.loads((out / "config.json").read_text())["derived"]
    assert derived["cohort"] == "BLCA" and derived["variant"] == "F" and derived["bidirectional"] is True
    assert derived["model_label"] == "SurvMamba" and derived["n_cases"] == 40
    for m in res.folds:
        assert len(m["val_c_index"]) == len(m["train_loss"]) == 2
        assert m["c_index"] == m["val_c_index"][-1]           # the last epoch's model is reported


class _Stop(Exception):
    pass


def test_killed_run_resumes_to_identical_results(cohort_dir, tmp_path, monkeypatch):
    kw = dict(max_cases=40, epochs=2, folds=(0, 1), max_patches=16)
    full = run_cv(_config(cohort_dir, tmp_path / "full", **kw), progress=False)

    def kill(fold, epoch, history):
        if fold == 1 and epoch == 0:
            raise _Stop

    cfg = _config(cohort_dir, tmp_path / "killed", **kw)
    with pytest.raises(_Stop):
        run_cv(cfg, progress=False, on_epoch_end=kill)
    killed = tmp_path / "killed"
    assert (killed / "fold_0" / "DONE").is_file() and not (killed / "fold_1" / "DONE").exists()
    assert torch.load(killed / "fold_1" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    stamp = (killed / "fold_0" / "metrics.json").stat().st_mtime_ns

    builds, epochs_run = [], []
    original = trainer_mod.build_model
    monkeypatch.setattr(trainer_mod, "build_model", lambda *a, **k: builds.append(a[0]) or original(*a, **k))
    resumed = run_cv(cfg, progress=False, on_epoch_end=lambda f, e, h: epochs_run.append((f, e)))
    assert builds == ["survmamba"]                              # fold 0 not rebuilt, fold 1 once
    assert epochs_run == [(1, 1)]                               # fold 1 continued after its epoch 0
    assert (killed / "fold_0" / "metrics.json").stat().st_mtime_ns == stamp
    for k in (0, 1):
        a = (tmp_path / "full" / f"fold_{k}" / "predictions.csv").read_text()
        b = (killed / f"fold_{k}" / "predictions.csv").read_text()
        assert a == b, f"fold {k}: predictions differ after resume"
        assert full.folds[k]["train_loss"] == resumed.folds[k]["train_loss"]
    assert full.summary["c_index"] == resumed.summary["c_index"]

    builds.clear()
    again = run_cv(cfg, progress=False)                        # a finished run is only read back
    assert builds == [] and again.summary["c_index"] == full.summary["c_index"]


def test_refuses_to_resume_with_a_different_config(cohort_dir, tmp_path):
    cfg = _config(cohort_dir, tmp_path / "run", model="snn", **SMALL)
    run_cv(cfg, progress=False)
    with pytest.raises(ValueError, match=r"different configuration \(epochs: 1 in the run, 2 now.*--overwrite"):
        run_cv(cfg.replace(epochs=2), progress=False)
    with pytest.raises(ValueError, match="model_options"):
        run_cv(cfg.replace(model_options={"dim": 16}), progress=False)
    run_cv(cfg.replace(device="cpu", threads=1), progress=False)     # operational fields may change
    res = run_cv(cfg.replace(epochs=2), progress=False, overwrite=True)
    assert len(res.folds[0]["train_loss"]) == 2
    other = tmp_path / "not_a_run"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a run directory"):
        run_cv(cfg.replace(out_dir=str(other)), progress=False, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"


def _perturbed_copy(src, dst, ids):
    shutil.copytree(src, dst)
    clin = pd.read_csv(dst / "clinical.csv", dtype=str, keep_default_na=False)
    m = clin["case_id"].isin(ids)
    clin.loc[m, "survival_months"] = [f"{3 * float(t) + 7:.2f}" for t in clin.loc[m, "survival_months"]]
    clin.to_csv(dst / "clinical.csv", index=False, lineterminator="\n")
    rna = pd.read_csv(dst / "rna.csv", dtype=str, keep_default_na=False)
    genes = [c for c in rna.columns if c != "case_id"]
    rna.loc[rna["case_id"].isin(ids), genes] = "0.5"
    rna.to_csv(dst / "rna.csv", index=False, lineterminator="\n")


def test_no_leakage_from_the_validation_fold(cohort_dir, tmp_path):
    from survmamba_lite.data.layout import read_folds

    _, val_ids = read_folds(cohort_dir)[0]
    changed = tmp_path / "changed"
    _perturbed_copy(cohort_dir, changed, val_ids)
    kw = dict(epochs=2, folds=(0,), max_cases=60, max_patches=16, model_options={"dim": 8})
    a = run_cv(_config(cohort_dir, tmp_path / "a", model="survmamba", **kw), progress=False)
    b = run_cv(_config(changed, tmp_path / "b", model="survmamba", **kw), progress=False)
    prep_a = json.loads((tmp_path / "a" / "fold_0" / "preprocessing.json").read_text())
    prep_b = json.loads((tmp_path / "b" / "fold_0" / "preprocessing.json").read_text())
    assert prep_a == prep_b                                      # binner and normaliser: training ids only
    assert a.folds[0]["train_loss"] == b.folds[0]["train_loss"]  # the training trajectory is unchanged
    pa = pd.read_csv(tmp_path / "a" / "fold_0" / "predictions.csv")
    pb = pd.read_csv(tmp_path / "b" / "fold_0" / "predictions.csv")
    assert not np.allclose(pa["time"], pb["time"]) and not np.allclose(pa["risk"], pb["risk"])
    # independent reference for what was fitted: hand-computed from the training rows
    split = json.loads((tmp_path / "a" / "fold_0" / "split.json").read_text())
    train_ids = split["train"]
    assert len(train_ids) == a.folds[0]["n_train"] and not set(train_ids) & set(val_ids)
    assert set(split["val"]) <= set(val_ids)
    clin = pd.read_csv(cohort_dir / "clinical.csv", dtype={"case_id": str}).set_index("case_id").loc[train_ids]
    deaths = clin.loc[clin["event"] == 1, "survival_months"].to_numpy()
    np.testing.assert_allclose(prep_a["time_binner"]["inner_edges"], np.quantile(deaths, [0.25, 0.5, 0.75]))
    rna = pd.read_csv(cohort_dir / "rna.csv", dtype={"case_id": str}).set_index("case_id").loc[train_ids]
    np.testing.assert_allclose(prep_a["rna_normalizer"]["mean"], rna.mean(0).to_numpy(), rtol=1e-12)


def test_cohort_without_splits_gets_make_folds(cohort_dir, tmp_path):
    from survmamba_lite.data.layout import make_folds, read_folds

    root = tmp_path / "nosplits"
    shutil.copytree(cohort_dir, root)
    shutil.rmtree(root / "splits")
    res = run_cv(_config(root, tmp_path / "run", model="snn", n_folds=3, **SMALL), progress=False)
    derived = json.loads((tmp_path / "run" / "config.json").read_text())["derived"]
    assert "make_folds(k=3, seed=0)" in derived["folds_source"] and derived["n_folds"] == 3
    written = read_folds(tmp_path / "run")
    assert len(written) == 3 and res.folds[0]["n_val"] == len(written[0][1])
    clin = pd.read_csv(root / "clinical.csv", dtype={"case_id": str})
    full = make_folds(clin, k=3, seed=0)
    assert set(written[0][1]) <= set(full[0][1])


def test_model_that_needs_a_missing_modality_is_refused(cohort_dir, tmp_path):
    root = tmp_path / "rna_only"
    shutil.copytree(cohort_dir, root)
    man = yaml.safe_load((root / "manifest.yaml").read_text())
    man["modalities"] = ["rna"]
    (root / "manifest.yaml").write_text(yaml.safe_dump(man))
    with pytest.raises(ValueError, match=r"reads histology \(wsi\).*histology \(wsi\) missing.*fit this cohort: "
                                         r"snn, snntrans, survmamba-rna"):
        run_cv(_config(root, tmp_path / "run", model="abmil", **SMALL), progress=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match=r"fold\(s\) \[7\] do not exist"):
        run_cv(_config(cohort_dir, tmp_path / "r2", model="snn", max_cases=24, folds=(7,)), progress=False)
