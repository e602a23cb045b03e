"""The real-data check: the Cox reference, the runner end to end, and the real TCGA imports."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifelines.utils import concordance_index as lifelines_cindex

from survmamba_lite import realdata as rd
from survmamba_lite.data.layout import load_cohort
from survmamba_lite.survival import concordance_index

DATA_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"


def _fold_arrays(cohort, k):
    genes = list(cohort.hierarchy.genes)
    tr_ids, va_ids = cohort.folds[k]
    tr, va = cohort.clinical.loc[tr_ids], cohort.clinical.loc[va_ids]
    return (cohort.rna.loc[tr_ids, genes].to_numpy(), tr, cohort.rna.loc[va_ids, genes].to_numpy(), va)


def test_cox_reference_beats_chance_and_agrees_with_lifelines(tiny_cohort):
    cohort = load_cohort(tiny_cohort)
    oof, cis = rd.run_cox_cv(tiny_cohort)
    pooled = concordance_index(oof["time"], oof["risk"], oof["event"])
    # the synthetic cohort plants a genomic log-hazard term: the held-out c-index must beat 0.5 clearly
    lo = rd.summarise_predictions(oof, cis, n_boot=200)["oof_ci95"][0]
    print(f"Cox reference on tiny synthetic COADREAD: folds {np.round(cis, 3)}, pooled {pooled:.3f}, CI low {lo:.3f}")
    assert len(cis) == len(cohort.folds) and len(oof) == cohort.n_cases
    assert np.mean(cis) > 0.55 and lo > 0.5

    x_tr, tr, x_va, va = _fold_arrays(cohort, 0)
    model = rd.PCACoxReference(n_components=32, penalizer=0.1).fit(x_tr, tr["survival_months"], tr["event"])
    risk = model.risk(x_va)
    ours = concordance_index(va["survival_months"], risk, va["event"])
    # lifelines takes predicted survival times: pass -risk
    theirs = lifelines_cindex(va["survival_months"], -risk, va["event"])
    # and lifelines' own scoring of its fitted model on the same (transformed) patients
    fitted = model.fitter_.score(model.frame(x_va, va["survival_months"], va["event"]),
                                 scoring_method="concordance_index")
    print(f"fold 0: ours {ours:.6f}, lifelines.utils {theirs:.6f}, CoxPHFitter.score {fitted:.6f}")
    assert ours == pytest.approx(theirs, abs=1e-12)
    assert ours == pytest.approx(fitted, abs=1e-12)
    assert ours == pytest.approx(cis[0], abs=1e-12)


def test_cox_reference_standardises_on_training_fold(tiny_cohort):
    cohort = load_cohort(tiny_cohort)
    x_tr, tr, x_va, _ = _fold_arrays(cohort, 1)
    a = rd.PCACoxReference(8).fit(x_tr, tr["survival_months"], tr["event"])
    # the fit does not depend on the order of the training patients (risks up to float noise)
    perm = np.random.default_rng(0).permutation(len(x_tr))
    b = rd.PCACoxReference(8).fit(x_tr[perm], tr["survival_months"].to_numpy()[perm], tr["event"].to_numpy()[perm])
    np.testing.assert_allclose(a.risk(x_va), b.risk(x_va), atol=1e-6)
    u = a.components(x_tr)
    np.testing.assert_allclose(u.mean(0), 0.0, atol=1e-8)          # centred and scaled on the training fold
    np.testing.assert_allclose(u.std(0), 1.0, atol=1e-8)
    assert a.risk(x_va).shape == (x_va.shape[0],)
    with pytest.raises(RuntimeError, match="fit"):
        rd.PCACoxReference().risk(x_va)
    with pytest.raises(ValueError, match="death"):
        rd.PCACoxReference().fit(x_tr[:5], tr["survival_months"][:5], np.zeros(5, int))


def test_fold_mean_bootstrap_matches_hand_computation():
    rng = np.random.default_rng(1)
    f = pd.DataFrame({"fold": np.repeat([0, 1, 2], 30), "time": rng.exponential(10, 90),
                      "event": rng.integers(0, 2, 90), "risk": rng.normal(size=90)})
    est, lo, hi = rd.fold_mean_bootstrap_ci(f, n_boot=300, seed=3)
    by_hand = np.mean([lifelines_cindex(g["time"], -g["risk"], g["event"]) for _, g in f.groupby("fold")])
    assert est == pytest.approx(by_hand, abs=1e-12)
    assert lo < est < hi
    assert rd.fold_mean_bootstrap_ci(f, n_boot=300, seed=3) == (est, lo, hi)


def test_feature_pca_rgb_against_numpy_pca():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 20)) @ rng.normal(size=(20, 20))
    rgb, ratio = rd.feature_pca_rgb(x)
    xc = x - x.mean(0)
    eig = np.sort(np.linalg.eigvalsh(xc.T @ xc))[::-1]
    np.testing.assert_allclose(ratio, eig[:3] / eig.sum(), rtol=1e-8)
    assert rgb.shape == (50, 3) and rgb.min() == 0.0 and rgb.max() == 1.0
    # each colour channel is an affine map of a principal-component score
    for k in range(3):
        v = np.linalg.svd(xc, full_matrices=False)[2][k]
        assert abs(np.corrcoef(rgb[:, k], xc @ v)[0, 1]) == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(ValueError, match="P >= 2"):
        rd.feature_pca_rgb(np.ones((1, 4)))


def test_runner_end_to_end_on_tiny_synthetic(small_rna_cohort, tmp_path):
    models = {"cox": rd.MODELS["cox"],
              "snn": rd.ModelRun("snn", "SNN", "snn", {"dim": 16}, "SNN"),
              "survmamba-rna-uni": rd.ModelRun("survmamba-rna-uni", "SurvMamba-RNA (C, uni)", "survmamba-rna",
                                               {"dim": 8, "d_state": 4, "bidirectional": False})}
    out = tmp_path / "out"
    table = rd.run_genomic_check({"coadread": small_rna_cohort}, out, rd.training_template(epochs=1, folds=[0, 1]),
                                 work=tmp_path / "work", models=list(models), model_table=models, n_boot=50,
                                 log=lambda m: None)
    assert list(table["model_key"]) == ["cox", "snn", "survmamba-rna-uni"]
    assert (out / "genomic_table.md").read_text().count("\n") == 2 + 3
    # the table is rebuilt from the run files alone, and the compact Markdown is the full one
    # without the per-fold and compute-time columns
    pd.testing.assert_frame_equal(rd.genomic_table(out), table)
    assert rd.genomic_table_markdown(table) == (out / "genomic_table.md").read_text()

    def cells(md):
        return [[c.strip() for c in line.strip().strip("|").split("|")] for line in md.splitlines()]

    full, compact = cells(rd.genomic_table_markdown(table)), cells(rd.genomic_table_markdown(table, compact=True))
    assert full[0][2] == "widths, epochs" and full[0][7] == "folds" and full[0][9] == "compute s"
    assert compact == [row[:7] + row[8:9] for row in full]
    assert [r[2] for r in full[2:]] == ["—", "CPU widths, 1", "CPU widths, 1"]
    for row in table.itertuples():
        run = json.loads((out / "runs" / f"coadread__{row.model_key}.json").read_text())
        folds = load_cohort(small_rna_cohort).folds
        assert len(run["fold_c_index"]) == 2 and run["n_cases"] == len(folds[0][1]) + len(folds[1][1])
        assert row.c_index_mean == pytest.approx(np.mean(run["fold_c_index"]))
        assert row.c_index_std == pytest.approx(np.std(run["fold_c_index"], ddof=1))
        assert row.oof_ci95_low <= row.oof_c_index <= row.oof_ci95_high
        assert pd.isna(row.paper_mean)                      # synthetic cohorts get no paper number
    # deep runs go through the experiments layer: its run directory holds the config it trained with
    config = json.loads((tmp_path / "work" / "runs" / "coadread" / "snn" / "config.json").read_text())
    assert (config["optimizer"], config["lr"], config["weight_decay"], config["batch_size"], config["epochs"]) == (
        "radam", 2e-4, 5e-3, 1, 1)
    # the experiments layer's own pooled c-index equals ours
    summary = json.loads((tmp_path / "work" / "runs" / "coadread" / "snn" / "summary.json").read_text())
    assert summary["oof_c_index"] == pytest.approx(table.set_index("model_key").loc["snn", "oof_c_index"], abs=1e-4)


def _run_file(out, cohort_key, cohort, model_key, label, cis, setting=None):
    rec = {"cohort_key": cohort_key, "cohort": cohort, "source": "xena", "model_key": model_key, "label": label,
           "fold_c_index": cis}
    if setting:
        rec["setting"] = setting
    (out / "runs").mkdir(parents=True, exist_ok=True)
    (out / "runs" / f"{cohort_key}__{model_key}.json").write_text(json.dumps(rec))


def test_paired_differences_t_interval_by_hand(tmp_path):
    from scipy import stats

    snn = [0.556, 0.548, 0.637, 0.535, 0.622]            # the device's paper-width SNN on Xena BLCA (issue 14)
    sm = [0.600, 0.530, 0.650, 0.560, 0.610]
    _run_file(tmp_path, "blca", "BLCA", "snn", "SNN", snn, "paper")
    _run_file(tmp_path, "blca", "BLCA", "survmamba-rna", "SurvMamba-RNA (C, bi)", sm, "paper")
    _run_file(tmp_path, "coadread", "COADREAD", "snn", "SNN", [0.6, 0.62, 0.61, 0.64, 0.6])   # no partner: no row
    table = rd.paired_differences(tmp_path)
    assert len(table) == 1
    row = table.iloc[0]
    d = np.array(sm) - np.array(snn)
    half = 2.7764451051977987 * d.std(ddof=1) / np.sqrt(5)                 # t_{0.975, 4}
    assert stats.t.ppf(0.975, 4) == pytest.approx(2.7764451051977987)
    assert row.mean_difference == pytest.approx(d.mean())
    assert (row.diff_ci_low, row.diff_ci_high) == pytest.approx((d.mean() - half, d.mean() + half))
    s_half = 2.7764451051977987 * np.std(snn, ddof=1) / np.sqrt(5)
    assert (row.snn_ci_low, row.snn_ci_high) == pytest.approx((np.mean(snn) - s_half, np.mean(snn) + s_half))
    # paper SNN on BLCA: 0.610; our mean 0.5796 +- 0.0567 -> inside
    assert row.paper_snn_mean == 0.61 and row.paper_snn_in_our_interval
    assert row.setting == "paper widths"
    md = rd.paired_differences_markdown(table)
    assert "yes" in md and "SurvMamba-RNA (C, bi) − SNN" in md


def test_inner_validation_reads_training_folds_only(small_rna_cohort, tmp_path):
    from survmamba_lite.realdata.inner import inner_validation, risk_spread

    cohort = load_cohort(small_rna_cohort)
    model = rd.ModelRun("snn", "SNN", "snn", {"dim": 16, "n_layers": 2}, "SNN")
    rec = inner_validation(small_rna_cohort, model, rd.training_template(epochs=1, folds=[0]), work=tmp_path,
                           log=lambda m: None)
    (f,) = rec["folds"]
    train_ids, val_ids = cohort.folds[0]
    split = json.loads((tmp_path / "snn" / "outer_0" / "split.json").read_text())
    assert set(split["train"]) | set(split["val"]) == set(train_ids)      # the inner split covers the training fold
    assert not (set(split["train"]) | set(split["val"])) & set(val_ids)   # and never touches its validation fold
    assert f["n_inner_val"] == len(split["val"]) and len(split["val"]) == pytest.approx(len(train_ids) / 5, abs=2)
    assert f["collapsed"] == (f["inner_val_risk"]["risk_std"] < 0.01)
    assert len(f["inner_val_c_index_by_epoch"]) == 1
    assert risk_spread([-1.0, -1.0 + 1e-4])["collapsed"]


def test_inner_validation_variant_and_probe(small_rna_cohort, tmp_path):
    """A training-setting variant trains in its own folder under its own label, and the probe
    reads the named parts of the trained model."""
    from survmamba_lite.realdata.inner import inner_validation

    model = rd.ModelRun("snntrans", "SNNTrans", "snntrans", {"dim": 8, "heads": 2, "fn_hidden": 4}, "SNNTrans")
    template = rd.training_template(epochs=1, folds=[0])
    rec = inner_validation(small_rna_cohort, model, template, work=tmp_path, log=lambda m: None,
                           overrides={"weight_decay": 0.0}, probe=["functions", "encoder.fc", "head"])
    assert rec["label"] == "SNNTrans (weight_decay=0)" and rec["overrides"] == {"weight_decay": 0.0}
    assert rec["settings"]["weight_decay"] == 0.0 and rec["settings"]["optimizer"] == "radam"
    assert (tmp_path / "snntrans__weight_decay-0" / "outer_0" / "DONE").is_file()      # never the reported run's folder
    assert not (tmp_path / "snntrans").exists()
    (f,) = rec["folds"]
    stages = f["stages"]["inner_val"]
    assert list(stages) == ["functions", "encoder.fc", "head"]
    assert 0 <= stages["encoder.fc"]["fraction_positive"] <= 1 and stages["head"]["param_rms"] > 0
    # the head's spread across patients is the spread of the logits, whose risk spread is recorded
    assert (stages["head"]["std_across_patients_max"] > 0) == (f["inner_val_risk"]["risk_std"] > 0)
    with pytest.raises(ValueError, match="not training settings"):
        inner_validation(small_rna_cohort, model, template, work=tmp_path, overrides={"wd": 0.0})


def test_stage_spread_is_zero_where_the_output_stops_depending_on_the_patient(small_rna_cohort):
    import torch

    from survmamba_lite.data.dataset import fold_datasets
    from survmamba_lite.experiment import ExperimentConfig
    from survmamba_lite.realdata.inner import stage_spread
    from survmamba_lite.registry import ModelInputs, build_model

    cohort = load_cohort(small_rna_cohort)
    config = ExperimentConfig(model="snntrans", cohort_dir=str(small_rna_cohort), out_dir="unused",
                              model_options={"dim": 8, "heads": 2, "fn_hidden": 4})
    train_ds, _, prep = fold_datasets(cohort, 0, binner_bins=4, modalities=config.modalities)
    torch.manual_seed(0)
    net = build_model("snntrans", ModelInputs(n_bins=prep.time_binner.n_bins_, hierarchy=cohort.hierarchy),
                      **config.model_options)
    with torch.no_grad():                       # the collapse seen on BRCA: the function tokens' output layer at 0
        net.functions.out.weight.zero_()
        net.functions.out.bias.zero_()
    res = stage_spread(net, train_ds, config, torch.device("cpu"), ["functions", "encoder.fc", "head"])
    assert res["functions"]["mean_abs"] == 0 and res["functions"]["std_across_patients_max"] == 0
    assert res["head"]["std_across_patients_max"] == 0            # nothing downstream can tell patients apart
    assert res["encoder.fc"]["param_rms"] == pytest.approx(float(torch.cat(
        [p.detach().reshape(-1) for p in net.encoder.fc.parameters()]).pow(2).mean().sqrt()))
    fresh = build_model("snntrans", ModelInputs(n_bins=prep.time_binner.n_bins_, hierarchy=cohort.hierarchy),
                        **config.model_options)
    assert stage_spread(fresh, train_ds, config, torch.device("cpu"), ["head"])["head"]["std_across_patients_max"] > 0


def test_inner_validation_script_merges_fold_records(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("inner_script", Path(__file__).resolve().parents[1] / "scripts"
                                                  / "inner_validation.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    fold = {"outer_fold": 0, "inner_val_c_index": 0.5, "inner_train_c_index": 0.5,
            "inner_val_risk": {"risk_std": 0.0}, "collapsed": True, "learned": False}
    base = {"model_key": "snntrans", "label": "SNNTrans", "overrides": {}, "settings": {"device": "cuda"},
            "wall_s": 10.0, "command": "python scripts/inner_validation.py fold ..."}
    paths = []
    for k in (1, 0):
        paths.append(tmp_path / f"f{k}.json")
        paths[-1].write_text(json.dumps({**base, "folds": [{**fold, "outer_fold": k}]}))
    script.main(["merge", "--out", str(tmp_path / "out"), "--cohort-key", "brca", *map(str, paths)])
    rec = json.loads((tmp_path / "out" / "inner" / "brca__snntrans.json").read_text())
    assert [f["outer_fold"] for f in rec["folds"]] == [0, 1] and rec["cohort"] == "BRCA"
    assert "| BRCA | SNNTrans |" in (tmp_path / "out" / "inner_validation.md").read_text()
    paths[1].write_text(json.dumps({**base, "overrides": {"weight_decay": 0.0}, "folds": [fold]}))
    with pytest.raises(SystemExit, match="another overrides"):
        script.main(["merge", "--out", str(tmp_path / "out"), "--cohort-key", "brca", *map(str, paths)])
    with pytest.raises(SystemExit, match="missing.json: no such fold record"):
        script.main(["merge", "--out", str(tmp_path / "out"), "--cohort-key", "brca", str(tmp_path / "missing.json")])
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SystemExit, match="bad.json: not a JSON fold record"):
        script.main(["merge", "--out", str(tmp_path / "out"), "--cohort-key", "brca", str(tmp_path / "bad.json")])
    with pytest.raises(SystemExit, match="nowhere: no such cohort folder"):
        script.main(["fold", "--cohort-dir", str(tmp_path / "nowhere"), "--model", "snn", "--fold", "0",
                     "--work", str(tmp_path / "w"), "--json", str(tmp_path / "j.json")])
    assert script.parse_sets(["weight_decay=0", "optimizer=adamw"]) == {"weight_decay": 0.0, "optimizer": "adamw"}


def test_with_width_keeps_settings_and_cuts_heads():
    small = rd.with_width(rd.PAPER_MODELS, 12)
    assert small["snn"].options == {"dim": 12} and small["cox"] is rd.PAPER_MODELS["cox"]
    assert small["snntrans"].options == {"dim": 12, "heads": 6}
    assert small["survmamba-rna-uni"].options == {"dim": 12, "bidirectional": False}
    assert rd.PAPER_MODELS["snn"].options == {}                             # SNN as its original: 4 x 256


def test_cohort_summary_counts(small_rna_cohort, tmp_path):
    info = rd.write_cohort_summaries({"coadread": small_rna_cohort}, tmp_path)["coadread"]
    clin = pd.read_csv(small_rna_cohort / "clinical.csv")
    folds = load_cohort(small_rna_cohort).folds
    assert (info["n_cases"], info["n_events"]) == (100, int(clin["event"].sum()))
    assert info["fold_n_val"] == [len(va) for _, va in folds] and sum(info["fold_n_val"]) == 100
    ev = clin.set_index("case_id")["event"]
    assert info["fold_n_val_events"] == [int(ev.loc[va].sum()) for _, va in folds]
    assert json.loads((tmp_path / "cohorts.json").read_text())["coadread"] == info


def test_unknown_model_is_a_clear_error(tiny_cohort, tmp_path):
    with pytest.raises(ValueError, match="unknown model"):
        rd.run_genomic_check({"coadread": tiny_cohort}, tmp_path, rd.training_template(), work=tmp_path,
                             models=["snnn"])


def _need_data():
    if not (DATA_ROOT / "tcga").is_dir():
        pytest.skip(f"real data not found at {DATA_ROOT} (the public TCGA tables; see data_manifests/README.md)")


@pytest.mark.realdata
def test_real_xena_blca_import(tmp_path):
    _need_data()
    root = rd.import_cohort(rd.COHORTS["blca"], DATA_ROOT, tmp_path)
    cohort = load_cohort(root)
    assert cohort.n_cases == 359                                  # the paper's BLCA count
    assert cohort.hierarchy.n_genes == 1577
    assert (cohort.hierarchy.n_functions, cohort.hierarchy.n_processes) == (333, 45)
    assert [len(va) for _, va in cohort.folds] == [70, 72, 75, 71, 71]
    assert sorted(c for _, va in cohort.folds for c in va) == sorted(cohort.case_ids)
    assert set(cohort.clinical["event"]) == {0, 1}
    clin = pd.read_csv(DATA_ROOT / "tcga/xena/blca/clinical.csv").drop_duplicates("case_id").set_index("case_id")
    np.testing.assert_array_equal(cohort.clinical["event"], 1 - clin.loc[cohort.case_ids, "censorship"])


@pytest.mark.realdata
@pytest.mark.slow
def test_the_committed_real_data_runs_reproduce_bit_for_bit(tmp_path):
    """The committed BLCA rows recomputed: SNN's fold 0 (3 epochs on the CPU, the reported
    settings) and the Cox reference's every number give exactly the committed values."""
    _need_data()
    results = Path(__file__).resolve().parents[1] / "results" / "real_data" / "runs"
    cohort = rd.import_cohort(rd.COHORTS["blca"], DATA_ROOT, tmp_path / "cohorts")
    _, cis, _ = rd.run_model_cv(cohort, rd.MODELS["snn"], rd.training_template(epochs=3, folds=[0]),
                                work=tmp_path / "runs")
    assert cis[0] == json.loads((results / "blca__snn.json").read_text())["fold_c_index"][0]
    rd.run_genomic_check({"blca": cohort}, tmp_path / "out", rd.training_template(), work=tmp_path, models=["cox"],
                         log=lambda m: None)
    new, old = (json.loads(p.read_text()) for p in (tmp_path / "out" / "runs" / "blca__cox.json",
                                                    results / "blca__cox.json"))
    for key in ("fold_c_index", "fold_mean_ci95", "oof_c_index", "oof_ci95"):
        assert new[key] == old[key], key


@pytest.mark.realdata
def test_real_xena_coadread_import(tmp_path):
    _need_data()
    cohort = load_cohort(rd.import_cohort(rd.COHORTS["coadread"], DATA_ROOT, tmp_path))
    assert cohort.n_cases == 296                                  # the paper's COADREAD count
    assert [len(va) for _, va in cohort.folds] == [58, 71, 45, 67, 55]


def test_survmamba_realdata_is_the_same_command(tmp_path, capsys):
    """``survmamba realdata`` and ``python -m survmamba_lite.realdata`` share one parser and one error."""
    from survmamba_lite.cli import build_parser as survmamba_parser, main as survmamba_main
    from survmamba_lite.realdata.command import build_parser

    sub = next(a for a in survmamba_parser()._actions if getattr(a, "choices", None) and "realdata" in a.choices)
    ours = {a.dest: (a.option_strings, a.default, a.choices) for a in sub.choices["realdata"]._actions}
    alone = {a.dest: (a.option_strings, a.default, a.choices) for a in build_parser()._actions}
    assert ours == alone and "precision" in ours and "cuda_graphs" in ours
    missing = tmp_path / "nothing"
    args = ["--data-root", str(missing), "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o")]
    assert survmamba_main(["realdata", *args]) == 2
    assert f"survmamba realdata: error: {missing}: no such folder; give --data-root" in capsys.readouterr().err
    assert rd.main(args) == 2
    assert f"realdata: error: {missing}: no such folder" in capsys.readouterr().err


def test_fold_workers_give_the_folds_of_one_after_another(cohort_dir, tmp_path):
    """--fold-workers trains a model's folds in parallel processes: the same fold c-indices and
    out-of-fold risks as one fold after the other (same seeds)."""
    from survmamba_lite.realdata.catalogue import ModelRun
    from survmamba_lite.realdata.runs import run_model_cv

    model = ModelRun("snn", "SNN", "snn", {"dim": 16, "n_layers": 2}, "SNN")
    template = rd.training_template(epochs=2, folds=[0, 1])
    serial = run_model_cv(cohort_dir, model, template, work=tmp_path / "one")
    parallel = run_model_cv(cohort_dir, model, template, work=tmp_path / "two", fold_workers=2)
    assert serial[1] == parallel[1] and len(serial[1]) == 2
    pd.testing.assert_frame_equal(serial[0].reset_index(drop=True), parallel[0].reset_index(drop=True))


def test_fold_workers_below_one_is_one_line_and_writes_nothing(tmp_path, capsys):
    args = ["--data-root", str(tmp_path), "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o"),
            "--fold-workers", "0"]
    assert rd.main(args) == 2
    assert "realdata: error: --fold-workers 0: must be an integer >= 1" in capsys.readouterr().err
    assert not (tmp_path / "w").exists() and not (tmp_path / "o").exists()
