"""Measure how long every chapter takes to run, into a committed table.

Each chapter (``notebooks/<chapter>.py``) is executed in a fresh kernel, as the book build
runs it (working directory ``notebooks/``, its default parameters) but on one CPU thread
(``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``; ``--threads`` changes it): on a machine shared with
other work, idle worker threads that wait by spinning would count as CPU time. Its outputs
are not stored. Per chapter the table records the wall time from the first code cell to the end
of the last, the CPU time the kernel used in that span (user plus system, its child
processes included: what the chapter costs, less sensitive than the wall time to other
work on a shared machine), the load average before and after, and when it ran::

    python scripts/chapter_times.py --out results/chapter_times/chapter_times.csv
    python scripts/chapter_times.py --out /tmp/times.csv notebooks/09_him.py     # some chapters
    python scripts/chapter_times.py --update --out results/chapter_times/chapter_times.csv notebooks/09_him.py

``--update`` keeps the other rows of the existing table, replaces (or adds) the rows of the
chapters measured, and drops the rows of chapters that no longer exist; each row keeps its own
``started_utc`` and load averages, so rows measured at different times say so.

The instructor's syllabus (``book/syllabus.md``) reads the table. A chapter that fails is
an error naming it, and nothing is written.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIELDS = ["chapter", "code_cells", "threads", "wall_seconds", "cpu_seconds", "load_before", "load_after", "started_utc"]


def _cpu(process) -> float:
    """User plus system seconds of a process and its children, alive or finished."""
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except Exception:              # noqa: BLE001 - a child that has just exited
            continue
        total += t.user + t.system + getattr(t, "children_user", 0.0) + getattr(t, "children_system", 0.0)
    return total


def time_chapter(path: Path, threads: int = 1, timeout: int = 900) -> dict:
    """Execute one chapter in a fresh kernel with ``threads`` CPU threads; its timing row."""
    import jupytext
    import psutil
    from nbclient import NotebookClient

    nb = jupytext.read(path)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    load_before = os.getloadavg()[0]
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):            # inherited by the kernel
        os.environ[var] = str(threads)
    with client.setup_kernel():
        kernel = psutil.Process(client.km.provisioner.pid)
        started = datetime.now(timezone.utc)
        cpu0, t0 = _cpu(kernel), time.perf_counter()
        code_cells = 0
        for index, cell in enumerate(nb.cells):
            if cell.cell_type == "code":
                client.execute_cell(cell, index)
                code_cells += 1
        wall, cpu = time.perf_counter() - t0, _cpu(kernel) - cpu0
    return {"chapter": path.stem, "code_cells": code_cells, "threads": threads, "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
            "started_utc": started.strftime("%Y-%m-%dT%H:%M:%SZ")}


def merge_rows(existing: list[dict], measured: list[dict], chapters: set[str]) -> list[dict]:
    """The rows of ``existing`` whose chapter is in ``chapters`` and was not measured again, with
    the ``measured`` rows, sorted by chapter.

    >>> old = [{"chapter": "a", "wall_seconds": 1}, {"chapter": "b", "wall_seconds": 2}, {"chapter": "gone"}]
    >>> [(r["chapter"], r.get("wall_seconds")) for r in merge_rows(old, [{"chapter": "b", "wall_seconds": 3}], {"a", "b"})]
    [('a', 1), ('b', 3)]
    """
    again = {r["chapter"] for r in measured}
    kept = [r for r in existing if r["chapter"] in chapters and r["chapter"] not in again]
    return sorted(kept + list(measured), key=lambda r: r["chapter"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", type=Path, help="chapters (default: notebooks/*.py)")
    parser.add_argument("--out", type=Path, required=True, help="the CSV to write")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of the kernel (default 1)")
    parser.add_argument("--update", action="store_true",
                        help="keep the other chapters' rows of an existing --out table, replace the measured ones "
                             "and drop chapters that no longer exist")
    args = parser.parse_args(argv)
    chapters = args.chapters or sorted((ROOT / "notebooks").glob("*.py"))
    rows = []
    for path in chapters:
        try:
            rows.append(time_chapter(path.resolve(), args.threads))
        except Exception as err:       # noqa: BLE001 - report which chapter, then stop
            print(f"error: {path.name} failed to run: {type(err).__name__}: {str(err)[:300]}", file=sys.stderr)
            return 1
        r = rows[-1]
        print(f"{r['chapter']}: {r['wall_seconds']} s wall, {r['cpu_seconds']} s CPU (load {r['load_before']} -> "
              f"{r['load_after']})", flush=True)
    if args.update and args.out.is_file():
        with args.out.open(newline="", encoding="utf-8") as f:
            existing = list(csv.DictReader(f))
        rows = merge_rows(existing, rows, {p.stem for p in (ROOT / "notebooks").glob("*.py")})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.out}: {len(rows)} chapters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
