"""Throughput of slide tiling and patch feature extraction.

For every slide (``--slides``), and every encoder, reader-process count and precision of
the grid, one row of:

``tiling_seconds``
    :func:`survmamba_lite.data.wsi.tile_slide` writing the coords file and the overview
    (thumbnail from a low-resolution level, tissue mask, grid), after one warm-up.
``reading_patches_per_s``
    the ``W`` reader processes alone: blocks of patches read, cut and resized to uint8
    (:class:`~survmamba_lite.data.wsi.blocks.BlockDataset` in a ``DataLoader``), nothing
    encoded; ``W = 0``: :class:`~survmamba_lite.data.wsi.PatchDataset`, one ``read_region``
    per patch in the main process.
``encoding_patches_per_s``
    the encoder alone on uint8 batches already on the device (normalisation included).
``extraction_patches_per_s``
    end to end, :func:`~survmamba_lite.data.wsi.extract_slides` from the coords file to the
    features file written (reader start-up included), after a warm-up extraction of another
    slide with the same encoder and precision.
``gpu_busy_fraction``
    GPU time of the encoder (CUDA events around each batch) over the extraction's wall time;
    ``nvml_gpu_utilization`` is the driver's own busy figure sampled every 0.1 s (when
    ``pynvml`` is installed).
``stages``, ``bound_by``
    where the extraction's time went (waiting for blocks, GPU time of copies and encoder,
    writing) and the stage that bounds it. For a streaming run on a GPU it is read from where
    the main process spent its time
    (:func:`~survmamba_lite.data.wsi.pipeline.streaming_bound`): ``encoder`` when the GPU is busy
    at least 70% of the wall time, else ``decode`` (waiting for the readers' blocks) or
    ``launch`` (the host's own time in the encoder call: launching kernels), whichever took
    longer. Elsewhere it is the slowest of decode (the readers' rate), transfer (patches per
    second of host-to-device copy time), encoder (the encoder's rate) and write (patches per
    second of writing time).
``cuda_graphs``
    whether the encoder was replayed from CUDA graphs (``--cuda-graphs on off`` measures both
    on the headline rows: the largest slide, the most readers, the first precision).

The grid: every ``--encoders`` x ``--workers`` at the first ``--precisions``; the other
precisions at the largest worker count only; slides of at most ``--one-process-max-patches``
patches also through the one-process path (``workers = 0``). ``--tiling-only`` slides are tiled, not
extracted. ``standin`` as an encoder is the CTransPath-size stand-in (Swin-T with random
weights, exported to TorchScript and loaded with ``--encoder torchscript``): for timing
only. ``--profile DIR`` writes a torch.profiler table of one extraction per encoder (the
largest slide, the first precision, the most readers).

Example (the book's CPU file, on the two public slides)::

    python benchmarks/wsi_throughput.py --slides ../shared/data/wsi/*.svs --device cpu \\
        --encoders efficientnet-lite0 standin --workers 0 1 --precisions fp32 --out benchmarks/results

Writes ``wsi_throughput_<device>.json`` as ``{"meta": ..., "tiling": [...], "rows": [...]}``.
On a shared CPU other processes distort the numbers: check the recorded load average.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from survmamba_lite.data.wsi import PatchDataset, build_encoder, extract_slides, resolve_device, tile_slide
from survmamba_lite.data.wsi.blocks import BlockDataset, plan_blocks, read_patch_block, slide_spec
from survmamba_lite.data.wsi.pipeline import precision_context, streaming_bound
from survmamba_lite.data.wsi.standin import STANDIN_NOTE, export_standin
from survmamba_lite.data.wsi.tiling import SlideError

STANDIN = "standin"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def tile(path: Path, out: Path, repeats: int) -> tuple[object, dict]:
    """Tile ``path`` (once to warm up, then ``repeats`` times); slides without a resolution are
    taken as 20x. Returns the grid and its tiling record."""
    kwargs = {}
    try:
        tile_slide(path, out, progress=False, **kwargs)
    except SlideError as err:
        if "--base-magnification" not in str(err):
            raise
        kwargs = dict(base_magnification=20.0)
        tile_slide(path, out, progress=False, **kwargs)
    times, grid = [], None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        grid = tile_slide(path, out, progress=False, **kwargs)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    record = dict(slide=path.name, slide_size_level0=[grid.slide_width, grid.slide_height], mpp=grid.scale.mpp,
                  mpp_source=grid.scale.mpp_source, magnification=grid.scale.magnification,
                  patch_size_level0=grid.patch_size_level0, grid_patches=int(grid.extra["grid_patches"]),
                  kept_patches=grid.n_patches, regions=grid.n_regions, read_level=grid.read_level,
                  tiling_seconds=seconds, tiling_runs=times,
                  tiling_stages={k: round(v, 4) for k, v in grid.timings.items()},  # of the last run
                  tiling_level0_megapixels_per_s=grid.slide_width * grid.slide_height / 1e6 / seconds)
    import openslide

    with openslide.OpenSlide(str(path)) as s:
        record["level_count"] = s.level_count
        record["level_downsamples"] = [round(float(d), 3) for d in s.level_downsamples]
    return grid, record


def reading_rate(grid, workers: int, size: int) -> float:
    """Patches per second read, cut and resized by ``workers`` processes (0: one process, per patch)."""
    if workers == 0:
        ds = PatchDataset(grid.slide_path, grid.coords, grid.read_level, grid.read_size, size)
        start = time.perf_counter()
        for i in range(len(ds)):
            ds[i]
        seconds = time.perf_counter() - start
        ds.close()
        return grid.n_patches / seconds
    spec = slide_spec(grid.slide_path, grid.coords, grid.read_level, grid.read_size, grid.patch_size_level0, size)
    ranges = plan_blocks(grid.coords, grid.region, grid.region_size_level0, grid.patch_size_level0)
    blocks = np.concatenate([np.zeros((len(ranges), 1), np.int64), ranges], axis=1)
    loader = DataLoader(BlockDataset([spec], blocks), batch_size=None, num_workers=workers,
                        collate_fn=BlockDataset.collate, prefetch_factor=4, in_order=False)
    start = time.perf_counter()
    n = 0
    for item in loader:
        if item.error:
            raise SlideError(item.error)
        n += item.stop - item.start
    return n / (time.perf_counter() - start)


def sample_patches(grid, size: int, max_patches: int) -> torch.Tensor:
    """Up to ``max_patches`` real patches of the slide, ``(n, S, S, 3)`` uint8, read in blocks."""
    import openslide

    n = min(grid.n_patches, max_patches)
    spec = slide_spec(grid.slide_path, grid.coords[:n], grid.read_level, grid.read_size, grid.patch_size_level0, size)
    with openslide.OpenSlide(grid.slide_path) as slide:
        parts = [read_patch_block(slide, spec, int(a), int(b)) for a, b in
                 plan_blocks(spec.coords, grid.region[:n], grid.region_size_level0, grid.patch_size_level0)]
    return torch.from_numpy(np.concatenate(parts))


@torch.inference_mode()
def encoding_rate(encoder, images: torch.Tensor, device: torch.device, precision: str, batch_size: int,
                  min_patches: int = 256) -> float:
    """Patches per second of the encoder alone on real patches (``(n, S, S, 3)`` uint8) already on
    the device, normalisation included; median of 3 passes (of at least ``min_patches``) after a
    warm-up."""
    reps = max(1, -(-min_patches // len(images)))
    images = images.repeat(reps, 1, 1, 1).to(device)
    batches = [images[i:i + batch_size].permute(0, 3, 1, 2) for i in range(0, len(images), batch_size)]
    encoder = encoder.to(device).eval()

    def run() -> None:
        with precision_context(device, precision):
            for b in batches:
                encoder(b)
        _sync(device)

    run()  # warm-up (cuDNN autotuning, lazy initialisation)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return len(images) / statistics.median(times)


class NvmlSampler:
    """Mean GPU utilisation reported by the driver while active (None without pynvml)."""

    def __init__(self, device: torch.device):
        self.values: list[float] = []
        self._stop = threading.Event()
        self._handle = None
        if device.type != "cuda":
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
        except Exception:  # no pynvml or no driver access: leave it out
            self._handle = None

    def __enter__(self) -> "NvmlSampler":
        if self._handle is not None:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            self.values.append(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu / 100.0)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._handle is not None:
            self._thread.join()

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.values)) if self.values else None


def bound_stage(rates: dict[str, float | None]) -> str:
    """The slowest stage (lowest patches/s) among those measured.

    >>> bound_stage({"decode": 900.0, "transfer": 20000.0, "encoder": 3000.0, "write": None})
    'decode'
    """
    known = {k: v for k, v in rates.items() if v is not None and np.isfinite(v)}
    return min(known, key=known.get) if known else "unknown"


def extraction_row(grid, tiling: dict, encoder, label: str, device: torch.device, workers: int, precision: str,
                   batch_size: int, work: Path, reading: float, encoding: float, profile_to: Path | None,
                   cuda_graphs: bool = False) -> dict:
    """One end-to-end extraction of ``grid``'s slide, timed, with its stage breakdown."""
    out = work / "features"
    shutil.rmtree(out, ignore_errors=True)
    profiler = None
    if profile_to is not None:
        acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA]
                                                         if device.type == "cuda" else [])
        profiler = torch.profiler.profile(activities=acts)
        profiler.__enter__()
    with NvmlSampler(device) as nvml:
        run = extract_slides([grid.coords_path], out, encoder=encoder, device=device, workers=workers,
                             batch_size=batch_size, precision=precision, overwrite=True, progress=False,
                             cuda_graphs=cuda_graphs)
    if profiler is not None:
        profiler.__exit__(None, None, None)
        profile_to.parent.mkdir(parents=True, exist_ok=True)
        head = (f"# torch.profiler, one extraction: {grid.slide_id}, {label}, {workers} readers, {precision}, "
                f"batch {batch_size}, {device}, CUDA graphs {'on' if cuda_graphs else 'off'} "
                "(profiled: slower than the timed run)\n")
        tables = []
        for sort in (["device_time_total", "cuda_time_total"] if device.type == "cuda" else []) + ["cpu_time_total"]:
            try:
                tables.append(f"## sorted by {sort}\n" + profiler.key_averages().table(sort_by=sort, row_limit=30))
            except Exception as err:  # a sort key this torch does not know
                tables.append(f"## sorted by {sort}: not available ({err})")
        profile_to.write_text(head + "\n\n".join(tables) + "\n")
    if run.failures:
        raise SlideError(run.failures[0][1])
    p = grid.n_patches
    stats = run.stats.as_dict() if run.stats is not None else None
    gpu_busy = None
    transfer = write = None
    if run.stats is not None:
        if device.type == "cuda":
            gpu_busy = run.stats.encode_gpu_seconds / run.seconds
            transfer = p / run.stats.copy_gpu_seconds if run.stats.copy_gpu_seconds > 0 else None
        write = p / run.stats.write_seconds if run.stats.write_seconds > 0 else None
    rates = {"decode": reading, "transfer": transfer, "encoder": encoding, "write": write}
    graphed = bool(run.settings.cuda_graphs and workers)
    bound = streaming_bound(stats) if stats is not None and device.type == "cuda" else bound_stage(rates)
    return dict(
        slide=tiling["slide"], slide_size_level0=tiling["slide_size_level0"], kept_patches=p,
        regions=tiling["regions"], encoder=label, encoder_name=encoder.name, standin=label == STANDIN,
        feature_dim=encoder.feature_dim, workers=workers, precision=precision, batch_size=batch_size,
        device=str(device), tiling_seconds=tiling["tiling_seconds"], reading_patches_per_s=reading,
        encoding_patches_per_s=encoding, extraction_patches_per_s=p / run.seconds, extraction_seconds=run.seconds,
        gpu_busy_fraction=gpu_busy, nvml_gpu_utilization=nvml.mean, stages=stats,
        stage_patches_per_s=rates, bound_by=bound, cuda_graphs=graphed,
        path="streaming" if workers else "one process")


def machine(device: torch.device) -> dict:
    import openslide

    info = dict(cpu_count=os.cpu_count(), cores_available=len(os.sched_getaffinity(0)),
                torch=torch.__version__, cuda=torch.version.cuda, python=platform.python_version(),
                platform=platform.platform(), openslide=openslide.__library_version__,
                openslide_python=openslide.__version__, torch_threads=torch.get_num_threads())
    try:
        info["cpu_model"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                                 if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu_model"] = platform.processor()
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2 ** 30, 1))
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slides", type=Path, nargs="+", required=True, help="slides to tile and extract")
    ap.add_argument("--tiling-only", type=Path, nargs="*", default=[], help="slides to tile only")
    ap.add_argument("--slide-info", type=Path, nargs="*", default=[],
                    help="JSON records of how benchmark slides were made (make_wsi_mosaic.py), kept in meta")
    ap.add_argument("--encoders", nargs="+", default=["efficientnet-lite0", STANDIN])
    ap.add_argument("--workers", type=int, nargs="+", default=None,
                    help="reader-process counts (default: the machine's default only)")
    ap.add_argument("--precisions", nargs="+", default=None, help="default: the device's default only")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the device's default")
    ap.add_argument("--cuda-graphs", nargs="+", choices=["on", "off"], default=["off"],
                    help="encoder replayed from CUDA graphs; the headline rows get every choice given, the "
                         "others the first")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--encode-patches", type=int, default=1024, help="patches timed in the encoder-alone test")
    ap.add_argument("--encode-min-patches", type=int, default=256,
                    help="the encoder-alone test repeats a small slide's patches up to this many")
    ap.add_argument("--one-process-max-patches", type=int, default=0,
                    help="slides with at most this many patches also get a one-process row (workers 0)")
    ap.add_argument("--tiling-repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--profile", type=Path, default=None, metavar="DIR", help="write torch.profiler tables here")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args(argv)
    missing = [str(s) for s in [*args.slides, *args.tiling_only] if not s.is_file()]
    if missing:
        print(f"wsi_throughput: no such slide(s): {missing}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    from survmamba_lite.data.wsi.extract import resolve_settings

    device = resolve_device(args.device)
    defaults = resolve_settings(device)
    workers = args.workers if args.workers is not None else [defaults.workers]
    precisions = args.precisions or [defaults.precision]
    batch_size = args.batch_size or defaults.batch_size
    load_start = os.getloadavg()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    work = Path(tempfile.mkdtemp(prefix="wsi_throughput_"))
    try:
        tiling, grids = [], []
        for path in [*args.slides, *args.tiling_only]:
            grid, record = tile(path, work / "tiles", args.tiling_repeats)
            record["extracted"] = path in args.slides
            tiling.append(record)
            if path in args.slides:
                grids.append((grid, record))
            print(f"tiling {path.name}: {record['slide_size_level0'][0]} x {record['slide_size_level0'][1]} px, "
                  f"{record['kept_patches']} patches, {record['tiling_seconds']:.2f} s {record['tiling_stages']}",
                  flush=True)
        encoders = {}
        for name in args.encoders:
            if name == STANDIN:
                path = export_standin(work / "swin_t_standin_random.torchscript.pt")
                encoders[name] = build_encoder("torchscript", path)
            else:
                encoders[name] = build_encoder(name)
        reading: dict[tuple[str, int], float] = {}
        samples: dict[tuple[str, int], torch.Tensor] = {}
        rows: list[dict] = []
        largest = max(grids, key=lambda g: g[0].n_patches)[0]
        smallest = min(grids, key=lambda g: g[0].n_patches)[0]
        graph_modes = [m == "on" for m in args.cuda_graphs] if device.type == "cuda" else [False]

        def headline(grid, w, precision) -> bool:
            return grid is largest and w == max(workers) and precision == precisions[0]

        plan = []  # (label, precision, grid, record, workers, CUDA graphs), the headline rows first
        for label in encoders:
            for precision in precisions:
                for grid, record in grids:
                    counts = set(workers) | ({0} if grid.n_patches <= args.one_process_max_patches else set())
                    plan += [(label, precision, grid, record, w, g) for w in sorted(counts)
                             if precision == precisions[0] or w == max(workers)
                             for g in (graph_modes if headline(grid, w, precision) and w else graph_modes[:1])]
        plan.sort(key=lambda r: not headline(r[2], r[4], r[1]))
        warmed, encoding = set(), {}
        for label, precision, grid, record, w, graphs in plan:
            enc = encoders[label]
            if (label, precision) not in warmed:  # the smallest slide through this encoder and precision first
                extract_slides([smallest.coords_path], work / "warm", encoder=enc, device=device,
                               workers=max(workers), batch_size=batch_size, precision=precision, overwrite=True,
                               progress=False)
                warmed.add((label, precision))
            key = (grid.slide_id, w)
            if key not in reading:
                reading[key] = reading_rate(grid, w, enc.input_size)
            ekey = (grid.slide_id, label, precision)
            if ekey not in encoding:
                sk = (grid.slide_id, enc.input_size)
                if sk not in samples:
                    samples[sk] = sample_patches(grid, enc.input_size, args.encode_patches)
                encoding[ekey] = encoding_rate(enc, samples[sk], device, precision, batch_size,
                                               args.encode_min_patches)
            row = extraction_row(grid, record, enc, label, device, w, precision, batch_size, work, reading[key],
                                 encoding[ekey], None, cuda_graphs=graphs)
            rows.append(row)
            write_results(args, argv, device, defaults, load_start, started, tiling, rows)
            busy = row["gpu_busy_fraction"]
            print(f"{grid.slide_id:>36} {label:>18} W={w:<2} {precision} graphs={row['cuda_graphs']}: read "
                  f"{row['reading_patches_per_s']:8.1f}  encode {row['encoding_patches_per_s']:8.1f}  "
                  f"end-to-end {row['extraction_patches_per_s']:8.1f} patches/s  GPU busy "
                  f"{'-' if busy is None else f'{busy:.3f}'}  bound by {row['bound_by']}", flush=True)
            if args.profile is not None and headline(grid, w, precision):
                suffix = "_graphs" if graphs else ""
                extraction_row(grid, record, enc, label, device, w, precision, batch_size, work, reading[key],
                               encoding[ekey], args.profile / f"wsi_extract_{label}_{precision}{suffix}_{device.type}.txt",
                               cuda_graphs=graphs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_results(args, argv, device, defaults, load_start, started, tiling, rows)
    return 0


def write_results(args, argv, device, defaults, load_start, started, tiling, rows) -> Path:
    """Write ``wsi_throughput_<device>.json`` (called after every row, so a cut run keeps its rows)."""
    meta = dict(
        command="python benchmarks/wsi_throughput.py " + " ".join(sys.argv[1:] if argv is None else argv),
        started=started, device=str(device), device_name=torch.cuda.get_device_name(device)
        if device.type == "cuda" else machine(device).get("cpu_model"), machine=machine(device),
        defaults=dict(workers=defaults.workers, batch_size=defaults.batch_size, precision=defaults.precision),
        standin=STANDIN_NOTE, load_average_start=load_start, load_average_end=os.getloadavg(),
        slide_info=[json.loads(p.read_text()) for p in args.slide_info],
        grid="every encoder x workers at the first precision; other precisions at the largest worker count; "
             "every --cuda-graphs choice on the largest slide at the most readers and the first precision",
    )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"wsi_throughput_{device.type}.json"
    path.write_text(json.dumps({"meta": meta, "tiling": tiling, "rows": rows}, indent=2) + "\n")
    print(f"-> {path}", flush=True)
    return path


if __name__ == "__main__":
    sys.exit(main())
