"""Reports from saved runs: the numbers in the tables are those of the runs' metrics.json,
checked against independent computations (numpy, lifelines)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from lifelines.statistics import logrank_test as lifelines_logrank
from lifelines.utils import concordance_index as lifelines_cindex

from survmamba_lite.data.synth import make_synthetic_cohort
from survmamba_lite.experiment import ExperimentConfig, run_cv
from survmamba_lite.experiment.report import ComplexitySizes, load_runs, make_report
from survmamba_lite.registry import ModelInputs, build_model

RUNS = {
    "bi": ("survmamba", {"dim": 8}),
    "uni": ("survmamba", {"dim": 8, "bidirectional": False}),
    "varC": ("survmamba", {"dim": 8, "variant": "C"}),
    "snn": ("snn", {"dim": 8}),
}
SIZES = ComplexitySizes(patches=64, regions=4, wsi_dim=32, genes_scale="tiny", repeats=1)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    cohort = make_synthetic_cohort("LUAD", "tiny", seed=1, out=base / "luad")
    dirs = {}
    for key, (model, options) in RUNS.items():
        cfg = ExperimentConfig(model=model, cohort_dir=str(cohort), out_dir=str(base / key), model_options=options,
                               epochs=1, folds=(0, 1), max_cases=40, max_patches=12, threads=1)
        run_cv(cfg, progress=False)
        dirs[key] = base / key
    return dirs


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    return make_report(list(runs.values()), out, complexity=True, sizes=SIZES, device="cpu", n_boot=200, svg=True)


def _fold_c(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    return [json.loads((run_dir / f"fold_{k}" / "metrics.json").read_text())["c_index"] for k in summary["folds"]]


def test_files_are_written(report):
    out = report.out_dir
    for name in ("table1_cindex.csv", "table1_cindex.md", "table3_ablation.csv", "table3_ablation.md",
                 "metrics_extra.csv", "metrics_extra.md", "table2_complexity.csv", "table2_complexity.md",
                 "fig3_bidirectional.png", "fig3_bidirectional.svg", "fig3_bidirectional.csv",
                 "fig4_km_logrank.csv", "report.md"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert {p.name for p in out.glob("fig4_km_*.png")} == {
        "fig4_km_survmamba.png", "fig4_km_survmamba_uni.png", "fig4_km_survmamba_c.png", "fig4_km_snn.png"}


def test_table1_numbers_equal_the_runs_metrics(runs, report):
    long = pd.read_csv(report.out_dir / "table1_cindex.csv")
    wide = report.tables["table1_cindex_wide"].set_index("Model")
    labels = {"bi": "SurvMamba", "uni": "SurvMamba (uni)", "varC": "SurvMamba (C)", "snn": "SNN"}
    for key, run_dir in runs.items():
        c = _fold_c(run_dir)
        row = long[long["run_dir"] == str(run_dir)].iloc[0]
        assert row["label"] == labels[key] and row["cohort"] == "LUAD" and row["n_folds"] == 2
        assert row["mean"] == pytest.approx(np.mean(c), abs=1e-12)
        assert row["std"] == pytest.approx(np.std(c, ddof=1), abs=1e-12)
        assert wide.at[labels[key], "LUAD"] == f"{np.mean(c):.3f} ± {np.std(c, ddof=1):.3f}"
        assert wide.at[labels[key], "Overall"] == f"{np.mean(c):.3f}"
    assert list(wide.index[:1]) == ["SNN"]                      # registry (Table 1) order
    assert "| SurvMamba (uni) | " in (report.out_dir / "table1_cindex.md").read_text()


def test_table3_and_fig3(runs, report):
    t3 = report.tables["table3_ablation_wide"].set_index("Model")
    assert list(t3.index) == ["C", "F"]                         # the unidirectional run is not an ablation row
    assert t3.at["C", "HIM coarse"] == "✓" and t3.at["C", "IFM fine"] == "" and t3.at["F", "IFM coarse"] == "✓"
    c = _fold_c(runs["varC"])
    assert t3.at["C", "LUAD"] == f"{np.mean(c):.3f} ± {np.std(c, ddof=1):.3f}"
    f3 = pd.read_csv(report.out_dir / "fig3_bidirectional.csv")
    assert sorted(f3["direction"].unique()) == ["bidirectional", "unidirectional"]
    assert sorted(f3.loc[f3["direction"] == "unidirectional", "c_index"]) == sorted(_fold_c(runs["uni"]))


def test_km_and_extra_metrics_against_lifelines(runs, report):
    km = pd.read_csv(report.out_dir / "fig4_km_logrank.csv").set_index("label")
    extra = pd.read_csv(report.out_dir / "metrics_extra.csv").set_index("label")
    oof = pd.read_csv(runs["bi"] / "oof_predictions.csv")
    high = oof["risk"] > oof["risk"].median()
    ref = lifelines_logrank(oof["time"][high], oof["time"][~high], oof["event"][high], oof["event"][~high])
    assert km.at["SurvMamba", "logrank_p"] == pytest.approx(ref.p_value, rel=1e-9)
    assert km.at["SurvMamba", "n_high"] == int(high.sum())
    est = lifelines_cindex(oof["time"], -oof["risk"], oof["event"])
    row = extra.loc["SurvMamba"]
    assert row["oof_c_index"] == pytest.approx(est, abs=1e-12)
    assert row["oof_c_index_low"] <= est <= row["oof_c_index_high"]
    td = [json.loads((runs["bi"] / f"fold_{k}" / "metrics.json").read_text())["c_index_td"] for k in (0, 1)]
    assert row["c_index_td_mean"] == pytest.approx(np.mean(td), abs=1e-12)
    assert row["logrank_p"] == pytest.approx(ref.p_value, rel=1e-9)


def test_complexity_table_counts_parameters_of_the_trained_configuration(report):
    from survmamba_lite.data.kegg import build_genomic_hierarchy
    from survmamba_lite.data.synth import SCALES, synthetic_hierarchy

    ct = pd.read_csv(report.out_dir / "table2_complexity.csv").set_index("label")
    table, genes, _ = synthetic_hierarchy(SCALES["tiny"], 0)
    inputs = ModelInputs(4, 32, build_genomic_hierarchy(table, genes)[0])
    for label, model, options in (("SurvMamba", "survmamba", {"dim": 8}), ("SNN", "snn", {"dim": 8}),
                                  ("SurvMamba (C)", "survmamba", {"dim": 8, "variant": "C"})):
        expected = sum(p.numel() for p in build_model(model, inputs, **options).parameters() if p.requires_grad)
        assert ct.at[label, "params"] == expected
        assert ct.at[label, "flops"] > 0 and ct.at[label, "step_seconds"] > 0
    assert ct["peak_memory_mib"].isna().all() and (ct["patches"] == 64).all()   # CPU: memory left blank


def test_duplicate_labels_are_told_apart_and_unfinished_runs_refused(runs, tmp_path):
    import shutil

    copy = tmp_path / "snn_again"
    shutil.copytree(runs["snn"], copy)
    labels = sorted(r.label for r in load_runs([runs["snn"], copy]))
    assert labels == ["SNN [snn]", "SNN [snn_again]"]
    (copy / "summary.json").unlink()
    with pytest.raises(ValueError, match="unfinished.*rerun the same `survmamba cv` command"):
        make_report([copy], tmp_path / "rep")
