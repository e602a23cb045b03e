"""Speed of ``survmamba import-features`` on a generated TRIDENT cohort.

The cohort: ``--slides`` slides (200) of ``--patches`` patches (5,000) with ``--dim`` (1,024)
float16 features each, written exactly as TRIDENT writes them (``features_uni_v1/<slide>.h5``
with chunks of one row and the coordinate attributes; ``tests/clam_trident_fixtures.py``
mirrors its writer), one slide per case except every tenth case, which has two. Then
:func:`survmamba_lite.data.features_import.import_features` is timed end to end: every file
read, float16 -> float32, checks, regions, ``features/<slide>.h5`` written, manifest and
folds written, the cohort validated.

Two timings: **cold**, after the source files were flushed and dropped from the page cache
(``posix_fadvise(DONTNEED)`` per file: no root needed, only this benchmark's files are
affected), and **warm**, a second import with the sources still cached. Reported: seconds,
MB/s of source read (float16 bytes) and of features written (float32), patches per second,
and, as the disk's own speed for comparison, a sequential write + cold read of 1 GiB in the
same folder. The machine is shared: the load average at start and end is recorded.

Example::

    python benchmarks/import_features.py --work /tmp/import_bench --out benchmarks/results

writes ``import_features_cpu.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import clam_trident_fixtures as fx  # noqa: E402  (TRIDENT's writer, as the tests use it)

from survmamba_lite.data.features_import import import_features  # noqa: E402


def _drop_cache(paths) -> None:
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _disk_speed(folder: Path, size: int = 1 << 30) -> dict:
    """Sequential write (with fsync) and cold read of ``size`` bytes in ``folder``: MB/s."""
    path = folder / "disk_speed.bin"
    block = np.random.default_rng(0).bytes(8 << 20)
    start = time.perf_counter()
    with open(path, "wb") as fh:
        for _ in range(size // len(block)):
            fh.write(block)
        fh.flush()
        os.fsync(fh.fileno())
    write_s = time.perf_counter() - start
    _drop_cache([path])
    start = time.perf_counter()
    with open(path, "rb") as fh:
        while fh.read(8 << 20):
            pass
    read_s = time.perf_counter() - start
    path.unlink()
    return {"bytes": size, "write_mb_s": round(size / write_s / 1e6, 1), "read_mb_s": round(size / read_s / 1e6, 1)}


def generate(work: Path, n_slides: int, n_patches: int, dim: int, seed: int = 0) -> tuple[Path, Path, list[Path]]:
    """The TRIDENT job folder and a cohort folder holding only clinical.csv."""
    rng = np.random.default_rng(seed)
    job = work / "trident_job"
    cases, files = {}, []
    for k in range(n_slides):
        case = f"TCGA-BM-{k // 2:04d}" if k % 20 < 2 else f"TCGA-BM-{k:04d}"      # every tenth case: two slides
        sid = f"{case}-01Z-00-DX{len(cases.get(case, [])) + 1}"
        cases.setdefault(case, []).append(sid)
        cols = 100
        coords = np.stack([(np.arange(n_patches) % cols) * 512, (np.arange(n_patches) // cols) * 512], 1)
        cp = fx.trident_coords(job, sid, coords, patch_size=256, src_mag=40, target_mag=20)
        feats = rng.standard_normal((n_patches, dim), dtype=np.float32).astype(np.float16)
        files.append(fx.trident_features(cp, feats, encoder="uni_v1"))
    cohort = work / "cohort"
    fx.write_clinical(cohort, cases)
    return job / "20x_256px_0px_overlap" / "features_uni_v1", cohort, files


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--slides", type=int, default=200)
    p.add_argument("--patches", type=int, default=5000)
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--work", type=Path, default=Path("/tmp/survmamba_import_bench"))
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    p.add_argument("--keep", action="store_true", help="keep the generated files")
    args = p.parse_args(argv)
    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    src, cohort, files = generate(args.work, args.slides, args.patches, args.dim)
    gen_s = time.perf_counter() - t0
    in_bytes = sum(f.stat().st_size for f in files)
    disk = _disk_speed(args.work)
    runs = []
    for label in ("cold", "warm"):
        if (cohort / "features").exists():
            shutil.rmtree(cohort / "features")
            for name in ("manifest.yaml",):
                (cohort / name).unlink(missing_ok=True)
            shutil.rmtree(cohort / "splits", ignore_errors=True)
        if label == "cold":
            _drop_cache(files)
        load = os.getloadavg()
        start, cpu0 = time.perf_counter(), time.process_time()
        report = import_features(src, cohort)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
        out_bytes = sum(p.stat().st_size for p in (cohort / "features").glob("*.h5"))
        n = int(report.table()["patches"].sum())
        runs.append({"cache": label, "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
                     "read_mb_s": round(in_bytes / seconds / 1e6, 1), "write_mb_s": round(out_bytes / seconds / 1e6, 1),
                     "patches_per_s": round(n / seconds), "slides": len(report.slides), "patches": n,
                     "validation": report.validation.split(": ", 1)[-1], "load_average_before": list(load)})
        print(f"{label}: {len(report.slides)} slides, {n:,} patches in {seconds:.1f} s "
              f"({in_bytes / seconds / 1e6:.0f} MB/s read, {out_bytes / seconds / 1e6:.0f} MB/s written)", flush=True)
    result = {
        "benchmark": "import-features, TRIDENT layout (features_uni_v1/*.h5, float16, chunks of one row)",
        "command": " ".join([Path(sys.executable).name, "benchmarks/import_features.py"] + (argv or sys.argv[1:])),
        "cohort": {"slides": args.slides, "patches_per_slide": args.patches, "dim": args.dim, "dtype": "float16",
                   "level0_magnification": 40, "source_bytes": in_bytes, "written_bytes": out_bytes,
                   "generation_seconds": round(gen_s, 1)},
        "target_seconds": 60,
        "runs": runs,
        "disk_sequential": disk,
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(), "numpy": np.__version__,
                    "h5py": __import__("h5py").__version__, "hdf5": __import__("h5py").version.hdf5_version},
        "load_average_start": list(load_start), "load_average_end": list(os.getloadavg()),
        "note": "the machine is shared by several users; the load average is the 1, 5 and 15 minute average",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "import_features_cpu.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")
    if not args.keep:
        shutil.rmtree(args.work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
