"""Jobs, the in-memory data path and the grid on a tiny synthetic cohort (CPU).

The claims under test: batches built on the device equal the reference path's; folds
trained concurrently in worker processes, on Dask or one by one give identical results;
a paused grid resumes to the results of an uninterrupted one; `survmamba report` reads a
grid folder."""
from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from survmamba_lite.data.bag import collate_bags
from survmamba_lite.data.dataset import fold_datasets
from survmamba_lite.data.layout import load_cohort
from survmamba_lite.experiment import ExperimentConfig, run_cv
from survmamba_lite.experiment.datapath import BatchBuilder, FeatureStore, region_layout
from survmamba_lite.experiment.grid import expand_run_dirs, grid_configs, model_slug, parse_model, run_grid
from survmamba_lite.experiment.jobs import JobOptions, prepare_run, run_jobs
from survmamba_lite.experiment.sampling import subsample_bag

TINY = dict(max_cases=24, epochs=2, folds=(0, 1), max_patches=12, threads=1)


def _fold_outputs(run_dir, folds=(0, 1)):
    """Everything a fold computed (not its timings)."""
    out = {}
    for k in folds:
        m = json.loads((run_dir / f"fold_{k}" / "metrics.json").read_text())
        pred = pd.read_csv(run_dir / f"fold_{k}" / "predictions.csv")
        out[k] = ({key: m[key] for key in ("c_index", "c_index_td", "ibs", "train_loss", "val_loss", "val_c_index")},
                  pred.to_dict("list"))
    return out


@pytest.fixture(scope="module")
def fold0(cohort_dir):
    cohort = load_cohort(cohort_dir)
    train, _, _ = fold_datasets(cohort, 0, binner_bins=4)
    return train, BatchBuilder(train, FeatureStore(cohort, torch.device("cpu")), torch.device("cpu"))


@pytest.mark.parametrize("batch_size,max_patches", [(1, None), (1, 7), (3, 5)])
def test_batches_built_in_memory_equal_the_reference_batches(fold0, batch_size, max_patches):
    train, builder = fold0
    g_ref, g_new = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for start in range(0, 9, batch_size):
        idx = list(range(start, start + batch_size))
        ref = collate_bags([subsample_bag(train[i], max_patches, g_ref) for i in idx])
        new = builder.batch(idx, max_patches, g_new)
        assert new.case_id == ref.case_id
        for name in ("patches", "patch_mask", "rna", "time", "event", "time_bin"):
            a, b = getattr(new, name), getattr(ref, name)
            assert a.dtype == b.dtype and a.shape == b.shape, name
            assert torch.equal(a, b), name


def test_region_layout_places_patches_as_group_patches():
    from survmamba_lite.data.bag import group_patches

    region = torch.tensor([4, 2, 2, 9, 4, 4, 2])
    feats = torch.arange(7.0).unsqueeze(1)
    order, r, p, n_r, n_p = region_layout(region)
    grid = torch.zeros(n_r, n_p, 1)
    grid[r, p] = feats[order]
    assert torch.equal(grid, group_patches(feats, region)[0])


def test_folds_in_worker_processes_equal_folds_one_by_one(cohort_dir, tmp_path):
    def config(out):
        return ExperimentConfig(model="survmamba", cohort_dir=str(cohort_dir), out_dir=str(out),
                                model_options={"dim": 8}, **{**TINY, "epochs": 1})
    serial = run_cv(config(tmp_path / "serial"), progress=False, features="disk")   # the reference data path
    jobs = prepare_run(config(tmp_path / "parallel"))
    results = run_jobs(jobs, JobOptions(), workers=2)
    assert sorted(r.status for r in results) == ["done", "done"]
    assert len({r.worker for r in results}) == 2                   # two processes trained at once
    assert _fold_outputs(tmp_path / "parallel") == _fold_outputs(serial.out_dir)
    summary = json.loads((tmp_path / "parallel" / "summary.json").read_text())
    assert summary["c_index"] == serial.summary["c_index"] and summary["cases_per_second"] > 0


def _grid(cohort_dir, out, epochs=2, **kw):
    configs = grid_configs([cohort_dir], ["abmil", "snn"], out, common_options={"dim": 8}, **{**TINY, "epochs": epochs})
    return configs, run_grid(configs, out, progress=False, **kw)


def test_grid_without_dask_and_on_a_local_dask_cluster_agree(cohort_dir, tmp_path, monkeypatch):
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "distributed", None)                   # as if dask were not installed
        configs, plain = _grid(cohort_dir, tmp_path / "plain", epochs=1)
    assert plain.engine == "serial" and plain.counts == {"done": 4}
    _, dask = _grid(cohort_dir, tmp_path / "dask", epochs=1, processes=False, workers=1)
    assert dask.engine.startswith("dask local") and dask.counts == {"done": 4}
    for c in configs:
        rel = c.out_dir.split("plain/", 1)[1]
        assert _fold_outputs(tmp_path / "plain" / rel) == _fold_outputs(tmp_path / "dask" / rel)
        assert (tmp_path / "dask" / rel / "summary.json").is_file()
    timing = pd.read_csv(tmp_path / "dask" / "timing.csv")
    assert len(timing) == 2 and (timing["folds_done"] == 2).all() and (timing["cases_per_second"] > 0).all()
    assert timing["gpu_utilization"].isna().all()                     # CPU: not measured
    lines = (tmp_path / "dask" / "jobs.jsonl").read_text().splitlines()
    assert len(lines) == 4 and {json.loads(x)["status"] for x in lines} == {"done"}
    # a second call has nothing to do
    _, again = _grid(cohort_dir, tmp_path / "dask", epochs=1, processes=False, workers=1)
    assert again.results == []


class _LateClock:
    """The trainer's clock, two hours ahead: after its first epoch every job meets the deadline."""

    def __getattr__(self, name):
        return getattr(time, name)

    def time(self):
        return time.time() + 7200


def test_paused_grid_resumes_to_the_uninterrupted_results(cohort_dir, tmp_path, monkeypatch):
    import survmamba_lite.experiment.trainer as trainer_mod

    monkeypatch.setitem(sys.modules, "distributed", None)
    configs, _ = _grid(cohort_dir, tmp_path / "full")
    ckpt = tmp_path / "ckpt"
    # a deadline in the past: no job starts
    _, first = _grid(cohort_dir, tmp_path / "paused", options=JobOptions(deadline=0.0))
    assert first.counts == {"paused": 4} and not list((tmp_path / "paused").rglob("metrics.json"))
    # each job trains its first epoch, then the deadline stops it
    with monkeypatch.context() as m:
        m.setattr(trainer_mod, "time", _LateClock())
        _, second = _grid(cohort_dir, tmp_path / "paused", options=JobOptions(
            checkpoint_root=str(ckpt), keep_checkpoint=False, deadline=time.time() + 3600))
    assert second.counts == {"paused": 4}
    saved = sorted(ckpt.rglob("checkpoint.pt"))
    assert len(saved) == 4 and not list((tmp_path / "paused").rglob("checkpoint.pt"))
    assert {torch.load(p, weights_only=True)["epoch"] for p in saved} == {1}
    _, third = _grid(cohort_dir, tmp_path / "paused", options=JobOptions(checkpoint_root=str(ckpt),
                                                                         keep_checkpoint=False))
    assert third.counts == {"done": 4}
    assert not list(ckpt.rglob("checkpoint.pt"))                      # deleted once the jobs finished
    for c in configs:
        rel = c.out_dir.split("full/", 1)[1]
        assert _fold_outputs(tmp_path / "paused" / rel) == _fold_outputs(tmp_path / "full" / rel)
    attempts = [json.loads(x)["status"] for x in (tmp_path / "paused" / "jobs.jsonl").read_text().splitlines()]
    assert attempts == ["paused"] * 8 + ["done"] * 4


def test_report_reads_a_grid_folder(cohort_dir, tmp_path, monkeypatch):
    from survmamba_lite.cli import main

    monkeypatch.setitem(sys.modules, "distributed", None)
    grid = tmp_path / "grid"
    rc = main(["grid", "--cohort-dirs", str(cohort_dir), "--models", "survmamba", "survmamba:bidirectional=false",
               "--dim", "8", "--epochs", "1", "--folds", "0", "1", "--max-cases", "24", "--max-patches", "12",
               "--threads", "1", "--quiet", "--out", str(grid)])
    assert rc == 0
    runs = expand_run_dirs([grid])
    assert [p.name for p in runs] == ["survmamba", "survmamba__bidirectional-false"]
    rc = main(["report", str(grid), "--out", str(tmp_path / "report"), "--n-boot", "10", "--n-perm", "0"])
    assert rc == 0
    table = pd.read_csv(tmp_path / "report" / "table1_cindex.csv")
    assert sorted(table["label"]) == ["SurvMamba", "SurvMamba (uni)"]
    assert (tmp_path / "report" / "fig3_bidirectional.png").is_file()


def test_features_are_read_once_per_process_for_every_model_of_a_cohort(cohort_dir, tmp_path, monkeypatch):
    from survmamba_lite.experiment import datapath

    monkeypatch.setitem(sys.modules, "distributed", None)
    reads = []
    original = datapath.FeatureStore.__init__

    def counting(self, *args, **kw):
        reads.append(1)
        original(self, *args, **kw)
    monkeypatch.setattr(datapath.FeatureStore, "__init__", counting)
    datapath.clear_feature_stores()
    configs = grid_configs([cohort_dir], ["abmil", "survmamba:variant=A"], tmp_path, common_options={"dim": 8},
                           **{**TINY, "epochs": 1})
    assert run_grid(configs, tmp_path, progress=False).counts == {"done": 4}
    assert len(reads) == 1


def test_grid_model_specs_and_their_errors(cohort_dir, tmp_path):
    assert parse_model("survmamba:variant=B, bidirectional=false") == ("survmamba", {"variant": "B",
                                                                                      "bidirectional": False})
    assert model_slug("snn", {}) == "snn"
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_model("survmamba:variantA")
    with pytest.raises(ValueError, match="accepted by none"):
        grid_configs([cohort_dir], ["snn"], tmp_path, common_options={"variant": "A"})
    with pytest.raises(ValueError, match="listed twice"):
        grid_configs([cohort_dir], ["snn", "snn"], tmp_path)
    configs = grid_configs([cohort_dir], ["survmamba:variant=A", "abmil"], tmp_path,
                           common_options={"variant": "C", "dim": 8})
    assert dict(configs[0].model_options) == {"dim": 8, "variant": "A"}    # the model's own option wins
    assert dict(configs[1].model_options) == {"dim": 8}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("placement", ["gpu", "host"])
def test_batches_built_on_the_gpu_equal_the_reference_batches(cohort_dir, placement):
    cohort = load_cohort(cohort_dir)
    train, _, _ = fold_datasets(cohort, 0, binner_bins=4)
    dev = torch.device("cuda")
    store = FeatureStore(cohort, dev, placement)
    assert store.placement == placement and store.features.is_pinned() == (placement == "host")
    builder = BatchBuilder(train, store, dev)
    g_ref, g_new = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for idx in ([0], [1, 2, 3], [4]):
        ref = collate_bags([subsample_bag(train[i], 9, g_ref) for i in idx]).to(dev)
        new = builder.batch(idx, 9, g_new)
        for name in ("patches", "patch_mask", "rna", "time", "event", "time_bin"):
            a, b = getattr(new, name), getattr(ref, name)
            assert a.device.type == "cuda" and a.dtype == b.dtype and torch.equal(a, b), name


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_building_a_batch_does_not_wait_for_the_gpu(cohort_dir):
    cohort = load_cohort(cohort_dir)
    train, _, _ = fold_datasets(cohort, 0, binner_bins=4)
    dev = torch.device("cuda")
    builder = BatchBuilder(train, FeatureStore(cohort, dev, "gpu"), dev)
    builder.batch([0], 9, torch.Generator().manual_seed(0))          # warm-up (pinned-memory pool)
    torch.cuda.set_sync_debug_mode("error")
    try:
        builder.batch([1, 2], 9, torch.Generator().manual_seed(0))
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_a_grid_built_over_several_calls_keeps_every_run_and_its_timing_when_moved(cohort_dir, tmp_path, monkeypatch):
    """Two calls with different models into one grid folder: grid.json, the timing table and
    the report see both runs; after the folder moves, the wall times are still found (also for
    jobs.jsonl lines that hold absolute paths, as older grids wrote them)."""
    import shutil

    from survmamba_lite.experiment.grid import timing_table

    monkeypatch.setitem(sys.modules, "distributed", None)
    out = tmp_path / "grid"
    for model in ("snn", "abmil"):
        configs = grid_configs([cohort_dir], [model], out, common_options={"dim": 8}, **{**TINY, "epochs": 1})
        result = run_grid(configs, out, progress=False)
        assert result.counts == {"done": 2}
    runs = json.loads((out / "grid.json").read_text())["runs"]
    assert [Path(r).name for r in runs] == ["snn", "abmil"]
    assert list(result.timing["label"]) == ["SNN", "ABMIL"] and result.timing["wall_seconds"].notna().all()
    assert [p.name for p in expand_run_dirs([out])] == ["snn", "abmil"]
    # older jobs.jsonl lines: absolute paths where the grid used to be
    lines = [json.loads(x) for x in (out / "jobs.jsonl").read_text().splitlines()]
    assert all(not Path(x["run_dir"]).is_absolute() for x in lines)
    lines[0]["run_dir"] = str(Path("/elsewhere/old_grid") / lines[0]["run_dir"])
    (out / "jobs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    moved = tmp_path / "results" / "grid"
    shutil.copytree(out, moved)
    shutil.rmtree(out)
    table = timing_table(moved)
    assert list(table["run_dir"]) == runs and table["wall_seconds"].notna().all()
    assert (table["folds_done"] == 2).all()


def test_dask_starts_the_jobs_in_grid_order(cohort_dir, tmp_path):
    """Jobs are handed to Dask no faster than slots free up, so they start run after run."""
    configs = grid_configs([cohort_dir], ["snn", "abmil", "snn:dim=4"], tmp_path / "g", common_options={"dim": 8},
                           **{**TINY, "epochs": 1})
    result = run_grid(configs, tmp_path / "g", progress=False, processes=False, workers=2)
    assert result.counts == {"done": 6}
    lines = [json.loads(x) for x in (tmp_path / "g" / "jobs.jsonl").read_text().splitlines()]
    order = {(str(Path(c.out_dir).relative_to(tmp_path / "g")), k): i for i, c in enumerate(configs) for k in (0, 1)}
    started = sorted(lines, key=lambda x: x["started"])
    assert [order[(x["run_dir"], x["fold"])] for x in started] == [0, 0, 1, 1, 2, 2]        # run index


_ACTIVE, _LOCK = {"now": 0, "peak": 0}, threading.Lock()


def _slow_job(job, options):
    """Stands in for run_job: counts how many run at once (in-process workers share this module)."""
    with _LOCK:
        _ACTIVE["now"] += 1
        _ACTIVE["peak"] = max(_ACTIVE["peak"], _ACTIVE["now"])
    time.sleep(0.3)
    with _LOCK:
        _ACTIVE["now"] -= 1
    return job


def test_dask_dispatch_keeps_polling_while_jobs_run(monkeypatch):
    """With a poll shorter than a job, the dispatch loop wakes up with nothing finished, looks at
    the workers again, and still runs every job once, never more at once than the slots."""
    from types import SimpleNamespace

    from distributed import Client, LocalCluster

    import survmamba_lite.experiment.grid as grid_mod

    monkeypatch.setattr(grid_mod, "run_job", _slow_job)
    done = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None,
                      resources={grid_mod.SLOT: 1}) as cluster, Client(cluster) as client:
        jobs = [SimpleNamespace(config=SimpleNamespace(out_dir=f"runs/c/m{i}"), fold=0) for i in range(5)]
        grid_mod._run_on_dask(client, jobs, JobOptions(), done.append, lambda msg: None, poll_seconds=0.05)
    assert sorted(j.config.out_dir for j in done) == [f"runs/c/m{i}" for i in range(5)]
    assert _ACTIVE["peak"] == 2


def test_a_worker_pinned_to_a_gpu_that_cuda_cannot_see_fails_instead_of_training_on_the_cpu(
        cohort_dir, tmp_path, monkeypatch):
    """Under MPS a worker pinned to GPU "1" can find no GPU at all; with device 'auto' its fold
    would then train on the CPU for hours. It fails at once, naming the GPU; device 'cpu' still runs."""
    from survmamba_lite.experiment.jobs import run_job

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def job(device, out):
        return prepare_run(ExperimentConfig(model="snn", cohort_dir=str(cohort_dir), out_dir=str(out), device=device,
                                            model_options={"dim": 8}, **{**TINY, "epochs": 1, "folds": (0,)}))[0]
    failed = run_job(job("auto", tmp_path / "auto"))
    assert failed.status == "failed" and "given GPU '1'" in failed.error and "MPS" in failed.error
    assert not (tmp_path / "auto" / "fold_0" / "metrics.json").exists()
    assert run_job(job("cpu", tmp_path / "cpu")).status == "done"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")                 # every GPU hidden on purpose: the CPU it is
    assert run_job(job("auto", tmp_path / "hidden")).status == "done"
