"""Reports from saved runs: the numbers in the tables are those of the runs' metrics.json,
checked against independent computations (numpy, lifelines)."""
from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pandas as pd
import pytest
from lifelines.statistics import logrank_test as lifelines_logrank
from lifelines.utils import concordance_index as lifelines_cindex

from survmamba_lite.data.synth import make_synthetic_cohort
from survmamba_lite.experiment import ExperimentConfig, run_cv
from survmamba_lite.experiment.report import (ComplexitySizes, fold_permutation_cindex, is_table1_run, load_runs,
                                              make_report, random_risk_reference)
from survmamba_lite.registry import ModelInputs, build_model
from survmamba_lite.survival import concordance_index_ref

RUNS = {
    "bi": ("survmamba", {"dim": 8}),
    "uni": ("survmamba", {"dim": 8, "bidirectional": False}),
    "varC": ("survmamba", {"dim": 8, "variant": "C"}),
    "snn": ("snn", {"dim": 8}),
}
N_PERM = 300
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
    return make_report(list(runs.values()), out, complexity=True, sizes=SIZES, device="cpu", n_boot=200, svg=True,
                       n_perm=N_PERM)


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


def _mark(wide: pd.DataFrame, key: str, labels: dict) -> str:
    """The footnote mark of a cell (`` ²``), checked to be explained under the table."""
    mark = wide.at[labels[key], "LUAD"].rsplit(" ", 1)[1]
    assert any(line.startswith(f"{mark} {labels[key]} on LUAD") and "of the cohort's 5 folds run" in line
               for line in wide.attrs["footnotes"].splitlines())
    return f" {mark}"


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
        # quick runs (2 of 5 folds, max_cases): every cell is marked, the note under the table says why
        assert wide.at[labels[key], "LUAD"] == f"{np.mean(c):.3f} ± {np.std(c, ddof=1):.3f}" + _mark(wide, key, labels)
        assert wide.at[labels[key], "Overall"] == f"{np.mean(c):.3f}" + _mark(wide, key, labels)
    assert list(wide.index[:1]) == ["SNN"]                      # registry (Table 1) order
    assert "| SurvMamba (uni) | " in (report.out_dir / "table1_cindex.md").read_text()


def test_table3_and_fig3(runs, report):
    t3 = report.tables["table3_ablation_wide"].set_index("Model")
    assert list(t3.index) == ["C", "F"]                         # the unidirectional run is not an ablation row
    assert t3.at["C", "HIM coarse"] == "✓" and t3.at["C", "IFM fine"] == "" and t3.at["F", "IFM coarse"] == "✓"
    c = _fold_c(runs["varC"])
    assert t3.at["C", "LUAD"].split(" ")[:3] == f"{np.mean(c):.3f} ± {np.std(c, ddof=1):.3f}".split(" ")
    f3 = pd.read_csv(report.out_dir / "fig3_bidirectional.csv")
    assert sorted(f3["direction"].unique()) == ["bidirectional", "unidirectional"]
    assert sorted(f3.loc[f3["direction"] == "unidirectional", "c_index"]) == sorted(_fold_c(runs["uni"]))


def test_table1_runs_leave_out_the_ablations_and_the_forward_only_run(runs):
    table1_rows = {key for key, path in runs.items() if is_table1_run(load_runs([path])[0])}
    assert table1_rows == {"bi", "snn"}


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


# --------------------------------------------------------------------------- random-risk reference
# two folds of 5 patients: censoring, a death/censoring tie at t = 4 and tied risks in fold 1
TINY = pd.DataFrame({"fold": [0] * 5 + [1] * 5,
                     "time": [2.0, 3.0, 4.0, 4.0, 7.0, 1.0, 2.5, 3.0, 6.0, 8.0],
                     "event": [1, 0, 1, 0, 1, 1, 1, 0, 1, 0],
                     "risk": [0.9, 0.1, 0.5, 0.7, 0.2, 0.3, 0.8, 0.3, 0.4, 0.1]})


def _exact_fold_null(frame):
    """C of every one of the 5! permutations of the fold's risks (slow reference c-index)."""
    t, e, r = (frame[c].to_numpy() for c in ("time", "event", "risk"))
    return np.array([concordance_index_ref(t, r[list(p)], e) for p in itertools.permutations(range(len(r)))])


def test_permutation_p_matches_exhaustive_enumeration():
    folds = [TINY[TINY["fold"] == k] for k in (0, 1)]
    exact = [_exact_fold_null(f) for f in folds]
    null_exact = (exact[0][:, None] + exact[1][None, :]).ravel() / 2       # all 120 x 120 joint permutations
    observed = np.mean([concordance_index_ref(f["time"], f["risk"], f["event"]) for f in folds])
    p_exact = float(np.mean(null_exact >= observed - 1e-12))
    assert null_exact.mean() == pytest.approx(0.5, abs=1e-12)              # E[C] = 1/2 exactly under the null
    res = fold_permutation_cindex(TINY["time"], TINY["risk"], TINY["event"], TINY["fold"], n_perm=20000, seed=5)
    print(f"observed {res.observed:.4f}; exact p {p_exact:.4f}, Monte-Carlo p {res.p_value:.4f}; "
          f"null mean {res.null.mean():.4f}")
    assert res.observed == pytest.approx(observed, abs=1e-12) and res.folds == (0, 1) and res.skipped == ()
    assert 0.02 < p_exact < 0.98                                           # a case where p is not trivially 0 or 1
    assert abs(res.p_value - p_exact) < 0.015                              # ~4 Monte-Carlo standard errors
    assert np.isin(np.round(res.null, 10), np.round(null_exact, 10)).all()  # every replicate is a reachable value
    assert res.null.mean() == pytest.approx(0.5, abs=0.01)


def test_null_equals_slow_twin_with_same_seed():
    n_perm, seed = 200, 3
    res = fold_permutation_cindex(TINY["time"], TINY["risk"], TINY["event"], TINY["fold"], n_perm=n_perm, seed=seed)
    rng = np.random.default_rng(seed)                                      # the documented stream, replayed
    null = np.zeros(n_perm)
    for k in (0, 1):
        f = TINY[TINY["fold"] == k]
        perms = rng.permuted(np.tile(f["risk"].to_numpy(), (n_perm, 1)), axis=1)
        null += [concordance_index_ref(f["time"], p, f["event"]) for p in perms]
    null /= 2
    print(f"max |fast - slow| {np.abs(res.null - null).max():.2e}")
    np.testing.assert_allclose(res.null, null, rtol=0, atol=1e-12)
    assert res.p_value == (1 + int((null >= res.observed - 1e-12).sum())) / (1 + n_perm)
    again = fold_permutation_cindex(TINY["time"], TINY["risk"], TINY["event"], TINY["fold"], n_perm=n_perm, seed=seed)
    np.testing.assert_array_equal(again.null, res.null)                    # deterministic
    other = fold_permutation_cindex(TINY["time"], TINY["risk"], TINY["event"], TINY["fold"], n_perm=n_perm, seed=4)
    assert not np.array_equal(other.null, res.null)


def _five_folds(seed, n=350):
    rng = np.random.default_rng(seed)
    time = rng.permutation(np.arange(1.0, n + 1))                          # distinct times
    event = (rng.random(n) < 0.5).astype(float)
    return time, event, np.repeat(np.arange(5), n // 5)


def test_true_ordering_gets_the_smallest_p_and_reversed_ordering_p_one():
    time, event, fold = _five_folds(0)
    n_perm = 500
    best = fold_permutation_cindex(time, -time, event, fold, n_perm=n_perm, seed=0)
    worst = fold_permutation_cindex(time, time, event, fold, n_perm=n_perm, seed=0)
    print(f"true ordering: C {best.observed:.3f} p {best.p_value:.5f}; reversed: C {worst.observed:.3f} "
          f"p {worst.p_value:.5f}")
    assert best.observed == 1.0 and best.p_value == 1 / (1 + n_perm)
    assert worst.observed == 0.0 and worst.p_value == 1.0


def test_null_of_random_risks_is_centred_on_one_half():
    time, event, fold = _five_folds(1)
    risk = np.random.default_rng(2).normal(size=time.shape[0])
    res = fold_permutation_cindex(time, risk, event, fold, n_perm=1000, seed=0)
    lo, hi = np.quantile(res.null, [0.025, 0.975])
    print(f"null mean {res.null.mean():.4f} [{lo:.4f}, {hi:.4f}]; random model C {res.observed:.4f} "
          f"p {res.p_value:.3f}")
    assert abs(res.null.mean() - 0.5) < 0.02
    assert lo < 0.5 < hi and hi - lo < 0.2
    assert 0.01 < res.p_value < 0.99                                       # a random model is not flagged


def test_folds_without_pairs_are_left_out_and_bad_input_named():
    frame = pd.concat([TINY, pd.DataFrame({"fold": [2, 2], "time": [1.0, 2.0], "event": [0, 0], "risk": [1.0, 0.0]})])
    res = fold_permutation_cindex(frame["time"], frame["risk"], frame["event"], frame["fold"], n_perm=50, seed=0)
    ref = fold_permutation_cindex(TINY["time"], TINY["risk"], TINY["event"], TINY["fold"], n_perm=50, seed=0)
    assert res.skipped == (2,) and res.folds == (0, 1)
    np.testing.assert_array_equal(res.null, ref.null)                      # the skipped fold draws nothing
    with pytest.raises(ValueError, match="same length"):
        fold_permutation_cindex(TINY["time"], TINY["risk"][:4], TINY["event"], TINY["fold"])
    with pytest.raises(ValueError, match="fold 1: .*risk contains NaN"):
        fold_permutation_cindex(TINY["time"], TINY["risk"].where(TINY.index != 7), TINY["event"], TINY["fold"])


def test_report_random_risk_table(runs, report):
    rr = pd.read_csv(report.out_dir / "random_risk.csv").set_index("run_dir")
    md = (report.out_dir / "random_risk.md").read_text()
    loaded = {str(r.path): r for r in load_runs(list(runs.values()))}
    for run_dir in runs.values():
        row = rr.loc[str(run_dir)]
        c = _fold_c(run_dir)
        assert row["observed"] == pytest.approx(np.mean(c), abs=1e-9)     # Table 1's mean, from the saved risks
        assert row["n_folds"] == 2 and row["n_perm"] == N_PERM and row["seed"] == 0
        assert row["null_low"] <= row["null_mean"] <= row["null_high"] and abs(row["null_mean"] - 0.5) < 0.05
        assert 1 / (1 + N_PERM) <= row["p_value"] <= 1
        oof = pd.read_csv(run_dir / "oof_predictions.csv")
        direct = fold_permutation_cindex(oof["time"], oof["risk"], oof["event"], oof["fold"], n_perm=N_PERM, seed=0)
        assert row["p_value"] == pytest.approx(direct.p_value, abs=1e-12)
        assert row["null_high"] == pytest.approx(np.quantile(direct.null, 0.975), abs=1e-12)
        assert re.search(rf"\| {re.escape(loaded[str(run_dir)].label)} [¹²³⁴] \| LUAD \| {row['observed']:.3f} \|", md)
    assert "Random-risk reference" in md and "Random-risk reference" in (report.out_dir / "report.md").read_text()
    assert report.out_dir / "random_risk.csv" in report.files
    again = random_risk_reference(load_runs([runs["snn"]]), n_perm=N_PERM, seed=0)
    mem = report.tables["random_risk"].set_index("run_dir")
    assert again["p_value"].iloc[0] == mem.at[str(runs["snn"]), "p_value"]   # per-run stream: order-independent
    np.testing.assert_allclose(rr["p_value"], mem.loc[rr.index, "p_value"], rtol=1e-12)


def test_report_without_random_risk(runs, tmp_path):
    rep = make_report([runs["snn"]], tmp_path / "rep", n_boot=20, n_perm=0)
    assert not (rep.out_dir / "random_risk.csv").exists() and not (rep.out_dir / "random_risk.md").exists()
    assert "random_risk" not in rep.tables and "Random-risk" not in (rep.out_dir / "report.md").read_text()
    with pytest.raises(ValueError, match="n_perm must be >= 0"):
        make_report([runs["snn"]], tmp_path / "rep2", n_perm=-1)


def test_table2_harness_measures_the_full_training_loss(monkeypatch):
    """The one Table 2 harness (report and benchmarks/complexity.py) steps on the trainer's
    loss: CLAM's 0.7 x NLL + 0.3 x instance loss, not the NLL alone."""
    from survmamba_lite.experiment import step as step_mod
    from survmamba_lite.experiment import table2
    from survmamba_lite.survival import nll_loss

    seen = []
    original = step_mod.training_loss

    def spy(logits, batch, alpha, **kw):
        loss = original(logits, batch, alpha, **kw)
        seen.append((float(loss.detach()), float(nll_loss(logits.detach().float(), batch.time_bin, batch.event)),
                     float(kw["survival_weight"])))
        return loss

    monkeypatch.setattr(step_mod, "training_loss", spy)
    inputs, batch = table2.complexity_inputs(ComplexitySizes(patches=32, regions=2, wsi_dim=8, genes_scale="tiny"),
                                             "cpu")
    c = table2.measure_model("clam-sb", {"dim": 8, "k_sample": 2}, inputs, batch, repeats=1)
    assert c.params > 0 and c.step_seconds > 0 and len(seen) >= 2          # warm-up + timed step
    total, nll, weight = seen[0]
    print(f"step loss {total:.4f} = {weight} x NLL {nll:.4f} + instance part {total - weight * nll:.4f}")
    assert total != pytest.approx(nll, rel=1e-4)                           # not the plain NLL
    assert weight == 0.7 and total - weight * nll > 1e-4                  # the instance loss (a CE) is in it
