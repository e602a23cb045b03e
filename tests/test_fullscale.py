"""benchmarks/fullscale.py: the paper-scale script, tried at tiny scale on a CPU, and its targets table."""
from __future__ import annotations

import json
import os
import sys
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fullscale():
    loader = spec_from_file_location("fullscale_script", ROOT / "benchmarks" / "fullscale.py")
    module = module_from_spec(loader)
    loader.loader.exec_module(module)
    return module


def test_a_grid_in_several_calls_then_nothing_to_do(fullscale, tmp_path, monkeypatch):
    """Two calls with different models build one grid (the paper mode's runs in several time
    slots); a third call finds nothing to do; --fresh refuses a folder that is not a grid."""
    monkeypatch.setitem(sys.modules, "distributed", None)          # the jobs one by one, in this process
    out, cohorts, ckpt = tmp_path / "grid", tmp_path / "cohorts", tmp_path / "ckpt"
    common = ["--mode", "paper", "--scale", "tiny", "--epochs", "1", "--folds", "0", "--max-cases", "24",
              "--threads", "1", "--no-report", "--out", str(out), "--cohort-root", str(cohorts),
              "--checkpoint-dir", str(ckpt)]
    assert fullscale.main(common + ["--models", "snn"]) == 0
    assert fullscale.main(common + ["--models", "snn:dim=8"]) == 0
    runs = json.loads((out / "grid.json").read_text())["runs"]
    assert runs == ["runs/blca_tiny/snn", "runs/blca_tiny/snn__dim-8"]
    timing = pd.read_csv(out / "timing.csv")
    assert list(timing["folds_done"]) == [1, 1] and timing["wall_seconds"].notna().all()
    assert fullscale.main(common + ["--models", "snn"]) == 0
    calls = [json.loads(x) for x in (out / "calls.jsonl").read_text().splitlines()]
    assert [c["counts"] for c in calls] == [{"done": 1}, {"done": 1}, {}]

    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(SystemExit, match="not a grid folder"):
        fullscale.main(common[:-6] + ["--out", str(other), "--cohort-root", str(cohorts),
                                      "--checkpoint-dir", str(ckpt), "--models", "snn", "--fresh"])
    assert (other / "notes.txt").read_text() == "keep me"


def test_the_scaling_mode_runs_one_model_on_two_cohorts_of_the_same_size(fullscale, tmp_path, monkeypatch):
    """The two-GPU comparison needs jobs of equal length: SurvMamba on two synthetic cohorts
    made alike (seeds 0 and 1), so the grid holds twice one cohort's folds."""
    monkeypatch.setitem(sys.modules, "distributed", None)
    out, cohorts = tmp_path / "grid", tmp_path / "cohorts"
    argv = ["--mode", "scaling", "--scale", "tiny", "--epochs", "1", "--folds", "0", "--max-cases", "16",
            "--threads", "1", "--no-report", "--out", str(out), "--cohort-root", str(cohorts),
            "--checkpoint-dir", str(tmp_path / "ckpt"), "--dim", "8"]
    assert fullscale.main(argv) == 0
    assert json.loads((out / "grid.json").read_text())["runs"] == [
        "runs/blca_tiny/survmamba", "runs/blca_tiny_seed1/survmamba"]
    made = [sorted(p.name for p in (cohorts / c).iterdir()) for c in ("blca_tiny", "blca_tiny_seed1")]
    assert made[0] == made[1] and "manifest.yaml" in made[0]
    first, second = (pd.read_csv(cohorts / c / "clinical.csv") for c in ("blca_tiny", "blca_tiny_seed1"))
    assert len(first) == len(second) and not first["survival_months"].equals(second["survival_months"])   # alike, not the same
    calls = [json.loads(x) for x in (out / "calls.jsonl").read_text().splitlines()]
    assert calls[-1]["counts"] == {"done": 2}


def _timing(folder: Path, wall: float, folds: int = 5) -> None:
    folder.mkdir(parents=True)
    pd.DataFrame([{"cohort": "c", "label": "SurvMamba", "run_dir": "runs/c/survmamba", "folds_done": folds,
                   "epochs": 20, "wall_seconds": wall}]).to_csv(folder / "timing.csv", index=False)


def _calls(folder: Path, *calls: tuple[float, dict]) -> None:
    folder.mkdir(parents=True)
    (folder / "calls.jsonl").write_text("".join(json.dumps({"grid_seconds": s, "counts": c}) + "\n" for s, c in calls))


def test_targets_read_the_grid_folders(fullscale, tmp_path):
    table = fullscale.targets(tmp_path).set_index("target")
    assert (table["measured"] == "not run").all() and table["met"].isna().all()

    _timing(tmp_path / "paper", 290.0)                         # the BLCA target falls back to the paper grid
    _timing(tmp_path / "survmamba_brca", 1500.0)
    _calls(tmp_path / "scaling_gpus_0", (50.0, {"done": 3, "paused": 7}), (400.0, {"done": 10}))
    _calls(tmp_path / "scaling_gpus_0_1", (210.0, {"done": 10}))
    table = fullscale.targets(tmp_path)
    assert list(table["met"]) == [True, False, True]
    assert table["source"][0] == "paper/timing.csv" and table["measured"][1] == "1500.0 s"
    assert table["measured"][2].startswith("1.90x (400 s / 210 s)")

    _timing(tmp_path / "survmamba_blca", 500.0)                # its own timing run wins over the paper grid
    table = fullscale.targets(tmp_path)
    assert not table["met"][0] and table["source"][0] == "survmamba_blca/timing.csv"
    _timing(tmp_path / "unfinished" / "survmamba_brca", 100.0, folds=3)
    assert fullscale.targets(tmp_path / "unfinished")["measured"][1] == "not run"   # 3 of 5 folds: no measure


@pytest.mark.parametrize(("named", "numbered"), [("1", "0"), ("2,3", "0,1"), ("0,1", "0,1")])
def test_mps_numbers_the_named_gpus_from_zero_for_the_jobs(fullscale, tmp_path, monkeypatch, named, numbered):
    """MPS clients see the daemon's GPUs as 0..n-1: a grid started with CUDA_VISIBLE_DEVICES=1
    (or SLURM's 2,3) under --mps must pin its workers to 0 (0,1), else every job finds no GPU
    (measured on a 2-GPU host: 30 of 30 jobs on GPU 1 failed with "this fold runs on cpu")."""
    log = tmp_path / "mps_calls.txt"
    exe = tmp_path / "bin" / "nvidia-cuda-mps-control"
    exe.parent.mkdir()
    exe.write_text(f'#!/bin/sh\necho "$CUDA_VISIBLE_DEVICES $*" >> {log}\ncat > /dev/null\n')
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{exe.parent}:/usr/bin:/bin")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", named)
    for var in ("CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_LOG_DIRECTORY"):
        monkeypatch.delenv(var, raising=False)
    stops = []
    monkeypatch.setattr("atexit.register", stops.append)
    assert fullscale._start_mps(tmp_path / "mps") is True
    assert log.read_text() == f"{named} -d\n"                     # the daemon itself sees the named GPUs
    assert os.environ["CUDA_VISIBLE_DEVICES"] == numbered          # its clients, numbered from 0
    assert os.environ["CUDA_MPS_PIPE_DIRECTORY"] == str(tmp_path / "mps" / "pipe")
    assert len(stops) == 1


def test_without_the_mps_program_nothing_is_renumbered(fullscale, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert fullscale._start_mps(tmp_path / "mps") is False
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
