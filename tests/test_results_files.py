"""The committed result folders that the book renders are complete (and tracked by git)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tracked(folder: Path) -> set[str]:
    try:
        out = subprocess.run(["git", "ls-files", str(folder.relative_to(ROOT))], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return {line.strip() for line in out.splitlines() if line.strip()}


def test_real_data_runs_match_the_table_and_are_tracked():
    folder = ROOT / "results" / "real_data"
    table = pd.read_csv(folder / "genomic_table.csv")
    tracked = _tracked(folder)
    for row in table.itertuples():
        rel = f"results/real_data/runs/{row.cohort_key}__{row.model_key}.json"
        assert rel in tracked, f"{rel} is missing or not tracked by git (check .gitignore)"
        run = json.loads((ROOT / rel).read_text(encoding="utf-8"))
        assert [round(c, 3) for c in run["fold_c_index"]] == [float(v) for v in str(row.fold_c_index).split()], rel


def test_course_runs_match_the_report_and_are_tracked():
    folder = ROOT / "results" / "course_blca"
    tracked = _tracked(folder)
    runs = sorted(p for p in (folder / "runs").iterdir() if p.is_dir())
    assert [p.name for p in runs] == ["abmil", "snn", "survmamba", "survmamba_uni", "transmil"]
    table = pd.read_csv(folder / "table1_cindex.csv")
    for run in runs:
        for name in ("config.json", "summary.json"):
            rel = f"results/course_blca/runs/{run.name}/{name}"
            assert rel in tracked, f"{rel} is missing or not tracked by git (check .gitignore)"
        summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
        row = table[table["label"] == summary["label"]]
        assert len(row) == 1, summary["label"]
        assert abs(float(row["mean"].iloc[0]) - summary["c_index"]["mean"]) < 1e-6


# --------------------------------------------------------------------------- numbers recomputed from the files
def _lifelines_c(frame: pd.DataFrame) -> float:
    from lifelines.utils import concordance_index

    return float(concordance_index(frame["time"], -frame["risk"], frame["event"]))


def _committed_run_dirs() -> list[Path]:
    return sorted(p.parent for p in (ROOT / "results").glob("**/summary.json")
                  if (p.parent / "oof_predictions.csv").is_file())


def test_every_committed_run_reproduces_its_fold_and_pooled_c_index_with_lifelines():
    """Every run directory under results/ with its predictions: each fold's c-index and the pooled
    out-of-fold c-index, recomputed by lifelines from the CSV files, equal the stored numbers exactly."""
    from survmamba_lite.experiment.predfiles import read_predictions

    runs = _committed_run_dirs()
    assert len(runs) >= 20, [str(p) for p in runs]
    n_folds = 0
    for run in runs:
        rel = run.relative_to(ROOT)
        summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
        oof = read_predictions(run / "oof_predictions.csv")
        for k, stored in zip(summary["folds"], summary["c_index"]["values"]):
            metrics = json.loads((run / f"fold_{k}" / "metrics.json").read_text(encoding="utf-8"))
            pred = read_predictions(run / f"fold_{k}" / "predictions.csv")
            c = _lifelines_c(pred)
            assert c == metrics["c_index"] == stored, f"{rel} fold {k}: files give {c}, metrics.json says " \
                                                      f"{metrics['c_index']}, summary.json {stored}"
            assert pred["case_id"].tolist() == oof.loc[oof["fold"] == k, "case_id"].tolist(), f"{rel} fold {k}"
            n_folds += 1
        assert _lifelines_c(oof) == summary["oof_c_index"], f"{rel}: pooled c-index"
    assert n_folds >= 100


def test_every_real_data_row_with_evidence_reproduces_its_c_indices_with_lifelines():
    """Each committed real-data row (CPU and paper widths) whose record names its evidence: the
    predictions file is tracked, each fold's c-index and the pooled one, recomputed by lifelines,
    equal the record's exactly, and the per-epoch record's last epoch is the reported fold value.
    A row without evidence is one made before the evidence was kept (its record names none)."""
    from survmamba_lite.experiment.predfiles import read_predictions

    n_rows = 0
    for folder in (ROOT / "results" / "real_data", ROOT / "results" / "real_data" / "paper_width"):
        tracked = _tracked(folder)
        for path in sorted((folder / "runs").glob("*.json")):
            rec = json.loads(path.read_text(encoding="utf-8"))
            rel = path.relative_to(ROOT)
            if "evidence" not in rec:
                assert not (folder / "predictions" / f"{path.stem}.csv").exists(), f"{rel}: evidence not named"
                continue
            pred_rel = f"{folder.relative_to(ROOT)}/{rec['evidence']['predictions']}"
            assert pred_rel in tracked, f"{pred_rel} is missing or not tracked by git"
            pred = read_predictions(ROOT / pred_rel)
            folds = [_lifelines_c(g) for _, g in pred.groupby("fold", sort=False)]
            assert folds == rec["fold_c_index"], f"{rel}: files give {folds}"
            assert _lifelines_c(pred) == rec["oof_c_index"], f"{rel}: pooled c-index"
            if "epochs" in rec["evidence"]:
                epochs = read_predictions(ROOT / f"{folder.relative_to(ROOT)}/{rec['evidence']['epochs']}")
                last = epochs.sort_values("epoch").groupby("fold", sort=False)["val_c_index"].last()
                assert [last[k] for k in dict.fromkeys(pred["fold"])] == rec["fold_c_index"], f"{rel}: epochs"
            n_rows += 1
    cpu = len(list((ROOT / "results" / "real_data" / "runs").glob("*.json")))
    assert n_rows >= cpu, f"only {n_rows} rows commit their evidence; every CPU-width row must ({cpu})"
