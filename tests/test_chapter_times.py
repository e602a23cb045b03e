"""scripts/chapter_times.py --update: the measured chapters' rows replace theirs in the committed
table, the other rows stay as measured, and rows of chapters that no longer exist are dropped."""
from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("chapter_times", ROOT / "scripts" / "chapter_times.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_update_replaces_the_measured_rows_and_drops_chapters_that_are_gone(tmp_path, monkeypatch):
    ct = _module()
    out = tmp_path / "times.csv"
    old = {"code_cells": 1, "threads": 1, "wall_seconds": 9.0, "cpu_seconds": 9.0, "load_before": 1.0,
           "load_after": 1.0, "started_utc": "2026-01-01T00:00:00Z"}
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=ct.FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows([{"chapter": c, **old} for c in ("01_overview", "04_ssm_discretisation", "no_such_chapter")])
    fresh = {**old, "wall_seconds": 1.5, "cpu_seconds": 1.2, "started_utc": "2026-02-02T00:00:00Z"}
    monkeypatch.setattr(ct, "time_chapter", lambda path, threads: {"chapter": path.stem, **fresh})
    assert ct.main(["--update", "--out", str(out), str(ROOT / "notebooks" / "04_ssm_discretisation.py")]) == 0
    with out.open(newline="", encoding="utf-8") as f:
        rows = {r["chapter"]: r for r in csv.DictReader(f)}
    assert list(rows) == ["01_overview", "04_ssm_discretisation"]
    assert rows["01_overview"]["started_utc"] == "2026-01-01T00:00:00Z"
    assert rows["04_ssm_discretisation"]["wall_seconds"] == "1.5"
    # without --update the file holds the measured chapters only
    assert ct.main(["--out", str(out), str(ROOT / "notebooks" / "01_overview.py")]) == 0
    with out.open(newline="", encoding="utf-8") as f:
        assert [r["chapter"] for r in csv.DictReader(f)] == ["01_overview"]
