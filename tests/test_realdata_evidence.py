"""A real-data row commits its evidence: per-case out-of-fold predictions with survival curves,
per-epoch metrics and per-fold bin edges, from which its fold and pooled c-indices are recomputed
exactly; a variant row trains with its own settings."""
from __future__ import annotations

import json

import numpy as np
from lifelines.utils import concordance_index as lifelines_cindex


from survmamba_lite import realdata as rd
from survmamba_lite.data.layout import load_cohort
from survmamba_lite.realdata.evidence import check_row_evidence, evidence_paths, read_row_evidence
from survmamba_lite.survival import TimeBinner


def test_every_row_writes_predictions_epochs_and_fold_edges_that_reproduce_it(small_rna_cohort, tmp_path):  # noqa: F811
    variant = rd.ModelRun("snn-adamw", "SNN (adamw)", "snn", {"dim": 16}, None, {"optimizer": "adamw"})
    models = {"cox": rd.MODELS["cox"], "snn": rd.ModelRun("snn", "SNN", "snn", {"dim": 16}, "SNN"),
              "snn-adamw": variant}
    out = tmp_path / "out"
    rd.run_genomic_check({"coadread": small_rna_cohort}, out, rd.training_template(epochs=2, folds=[0, 1, 2]),
                         work=tmp_path / "work", models=list(models), model_table=models, n_boot=20,
                         log=lambda m: None)
    cohort = load_cohort(small_rna_cohort)
    for mkey in models:
        record = json.loads((out / "runs" / f"coadread__{mkey}.json").read_text())
        assert check_row_evidence(out, record) == []
        ev = read_row_evidence(out, "coadread", mkey)
        pred = ev["predictions"]
        assert record["evidence"]["predictions"] == f"predictions/coadread__{mkey}.csv"
        assert list(pred.columns[:6]) == ["fold", "case_id", "time", "event", "time_bin", "risk"]
        surv = pred[[f"S_{k}" for k in range(4)]].to_numpy()
        assert np.all(np.diff(surv, axis=1) <= 1e-12) and np.all((surv >= 0) & (surv <= 1))
        for k, g in pred.groupby("fold"):             # lifelines, independently, from the file
            assert lifelines_cindex(g["time"], -g["risk"], g["event"]) == record["fold_c_index"][k]
        assert lifelines_cindex(pred["time"], -pred["risk"], pred["event"]) == record["oof_c_index"]
        for meta in ev["folds"]:                      # bin edges of the fold's training patients
            tr = cohort.clinical.loc[cohort.folds[meta["fold"]][0]]
            edges = TimeBinner(4).fit(tr["survival_months"].to_numpy(), tr["event"].to_numpy()).inner_edges_
            assert meta["bin_inner_edges"] == edges.tolist()
            rows = pred[pred["fold"] == meta["fold"]]
            assert (rows["time_bin"].to_numpy() == np.searchsorted(edges, rows["time"], side="right")).all()
        if mkey == "cox":
            assert ev["epochs"] is None and not evidence_paths(out, "coadread", "cox")["epochs"].exists()
            continue
        epochs = ev["epochs"]
        assert epochs.groupby("fold")["epoch"].apply(list).to_dict() == {0: [1, 2], 1: [1, 2], 2: [1, 2]}
        last = epochs[epochs["epoch"] == 2].set_index("fold")["val_c_index"]
        assert [last[k] for k in (0, 1, 2)] == record["fold_c_index"]   # the reported model is the last epoch's
    config = json.loads((tmp_path / "work" / "runs" / "coadread" / "snn-adamw" / "config.json").read_text())
    assert config["optimizer"] == "adamw"
    assert json.loads((out / "runs" / "coadread__snn-adamw.json").read_text())["settings"]["optimizer"] == "adamw"


def test_cox_curve_is_lifelines_breslow_survival_at_the_bin_ends(tiny_cohort):  # noqa: F811
    from survmamba_lite.baselines.cox import cox_curve

    cohort = load_cohort(tiny_cohort)
    tr_ids, va_ids = cohort.folds[0]
    genes = list(cohort.hierarchy.genes)
    tr = cohort.clinical.loc[tr_ids]
    model = rd.PCACoxReference(8).fit(cohort.rna.loc[tr_ids, genes].to_numpy(), tr["survival_months"], tr["event"])
    x_va = cohort.rna.loc[va_ids, genes].to_numpy()
    binner = TimeBinner(4).fit(tr["survival_months"].to_numpy(), tr["event"].to_numpy())
    surv = cox_curve(model, x_va, binner.edges_, tr["survival_months"].to_numpy())
    # by hand: S(t | x) = S0(t) ** exp(x beta - mean x beta) from lifelines' baseline at each bin end
    ends = list(binner.inner_edges_) + [tr["survival_months"].max()]
    base = model.fitter_.baseline_survival_.iloc[:, 0]
    s0 = np.array([base[base.index <= t].iloc[-1] for t in ends])
    lp = model.frame(x_va).to_numpy() @ model.fitter_.params_.to_numpy()
    lp0 = model.fitter_._norm_mean.to_numpy() @ model.fitter_.params_.to_numpy()
    np.testing.assert_allclose(surv, s0[None, :] ** np.exp(lp - lp0)[:, None], rtol=1e-10)
    # a higher risk is a lower curve at every bin end
    order = np.argsort(model.risk(x_va))
    assert np.all(np.diff(surv[order], axis=0) <= 1e-12)


def _ingest_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "realdata_ingest.py"
    spec = importlib.util.spec_from_file_location("realdata_ingest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ingest_checks_each_row_then_copies_its_evidence_and_rebuilds_the_tables(small_rna_cohort, tmp_path):  # noqa: F811
    import tarfile

    models = {"cox": rd.MODELS["cox"], "snn": rd.ModelRun("snn", "SNN", "snn", {"dim": 16}, "SNN")}
    device = tmp_path / "w" / "out" / "coadread__snn"            # the device script's layout: out/<row>/
    rd.run_genomic_check({"coadread": small_rna_cohort}, device, rd.training_template(epochs=1, folds=[0, 1]),
                         work=tmp_path / "w", models=list(models), model_table=models, n_boot=20,
                         log=lambda m: None)
    (device / "commands.jsonl").write_text('{"command": "python -m survmamba_lite.realdata ..."}\n')
    archive = tmp_path / "results.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "w" / "out", arcname="out")
    ingest = _ingest_module()
    out = tmp_path / "results"
    assert ingest.main([str(archive), "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["coadread__cox.json", "coadread__snn.json"]
    assert (out / "predictions" / "coadread__snn.epochs.csv").is_file() and (out / "genomic_table.md").is_file()
    assert (out / "commands.jsonl").read_text().count("\n") == 1
    assert ingest.main([str(archive), "--out", str(out)]) == 0     # twice: the same files, one command line
    assert (out / "commands.jsonl").read_text().count("\n") == 1
    # a record that its predictions do not reproduce: nothing is written
    rec_path = device / "runs" / "coadread__snn.json"
    rec = json.loads(rec_path.read_text())
    rec["fold_c_index"][0] += 1e-9
    rec_path.write_text(json.dumps(rec))
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "w" / "out", arcname="out")
    before = (out / "runs" / "coadread__snn.json").read_text()
    try:
        ingest.main([str(archive), "--out", str(out)])
        raise AssertionError("the ingest accepted a row its predictions do not reproduce")
    except SystemExit as err:
        assert "fold c-indices" in str(err)
    assert (out / "runs" / "coadread__snn.json").read_text() == before


def test_a_variant_row_needs_the_paper_widths(tmp_path, capsys):
    assert rd.main(["--data-root", str(tmp_path), "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o"),
                    "--models", "snntrans-radam-decoupled", "--no-slides"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "add --paper-dims" in err[0]
    assert not (tmp_path / "w").exists() and not (tmp_path / "o").exists()


def test_evidence_status_and_risk_spread_read_the_committed_rows(tmp_path):
    """A copy of two committed paper-width rows of BRCA: SNN with its evidence, SNNTrans made before
    the evidence was kept. The status says which has what; a record its predictions no longer give
    is flagged; the risk spread per fold is the predictions' own."""
    import shutil
    from pathlib import Path

    from survmamba_lite.realdata.evidence import evidence_status, has_evidence, risk_spread_by_fold

    src = Path(__file__).resolve().parents[1] / "results" / "real_data" / "paper_width"
    out = tmp_path / "pw"
    (out / "runs").mkdir(parents=True)
    (out / "predictions").mkdir()
    for row in ("brca__snn", "brca__snntrans"):
        shutil.copy(src / "runs" / f"{row}.json", out / "runs")
    for path in (src / "predictions").glob("brca__snn.*"):
        shutil.copy(path, out / "predictions")
    status = evidence_status(out, rd.run_records(out)).set_index("model_key")
    assert status.loc["snn", ["predictions", "epochs", "folds"]].tolist() == [True, True, True]
    assert status.loc["snn", "reproduces"] is True
    assert status.loc["snntrans", ["predictions", "epochs", "folds"]].tolist() == [False, False, False]
    assert status.loc["snntrans", "reproduces"] is None
    assert has_evidence(out, "brca", "snn") and not has_evidence(out, "brca", "snntrans")
    assert risk_spread_by_fold(out, "brca", "snntrans") is None
    pred = read_row_evidence(out, "brca", "snn")["predictions"]
    spread = risk_spread_by_fold(out, "brca", "snn")
    assert len(spread) == pred["fold"].nunique() == 5
    assert np.isclose(spread[0], np.std(pred.loc[pred["fold"] == 0, "risk"].to_numpy(), ddof=1), rtol=1e-12, atol=0)
    rec = json.loads((out / "runs" / "brca__snn.json").read_text())
    rec["oof_c_index"] += 1e-9
    (out / "runs" / "brca__snn.json").write_text(json.dumps(rec))
    assert evidence_status(out, rd.run_records(out)).set_index("model_key").loc["snn", "reproduces"] is False
