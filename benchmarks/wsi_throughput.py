"""Throughput of slide tiling and patch feature extraction on one slide.

Measured (each the median of ``--repeats`` runs after one warm-up):

``tiling``
    :func:`survmamba_lite.data.wsi.tile_slide` without writing files: thumbnail read,
    tissue mask, grid. Reported as seconds per slide and grid patches assessed per second.
``reading``
    :class:`~survmamba_lite.data.wsi.PatchDataset` over every kept patch: OpenSlide
    ``read_region`` + RGBA->RGB + resize to the encoder input (patches/s, one process).
``encoding``
    the frozen encoder alone on pre-read uint8 batches of ``--batch-size`` (patches/s).
``extraction``
    end to end, :func:`~survmamba_lite.data.wsi.extract_slide_features` writing the
    features file (patches/s).

Example::

    python benchmarks/wsi_throughput.py --slide ../shared/data/wsi/cmu-1-small-region.svs \\
        --device cpu --batch-size 32 --out benchmarks/results

Writes ``wsi_throughput_<device>.json`` (machine, versions, threads, load average at start
and end, every timing) into ``--out`` and prints a summary. On a shared CPU other processes
distort the numbers: check the recorded load average.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from survmamba_lite.data.wsi import (PatchDataset, build_encoder, extract_slide_features, resolve_device,
                                     tile_slide)

DEFAULT_SLIDE = Path(__file__).resolve().parents[2] / "shared" / "data" / "wsi" / "cmu-1-small-region.svs"


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slide", type=Path, default=DEFAULT_SLIDE, help="slide to measure on")
    ap.add_argument("--mpp", type=float, default=None, help="level-0 um/px, for slides without it")
    ap.add_argument("--encoder", default="efficientnet-lite0")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--num-workers", type=int, default=0, help="patch-reading processes for 'extraction'")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args(argv)
    if not args.slide.is_file():
        print(f"{args.slide}: no such slide; pass --slide", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    load_start = os.getloadavg()

    grid = tile_slide(args.slide, None, mpp=args.mpp, progress=False)
    n_grid = int(grid.extra["grid_patches"])
    t_tile = _median_time(lambda: tile_slide(args.slide, None, mpp=args.mpp, progress=False), args.repeats)

    encoder = build_encoder(args.encoder).to(device)
    ds = PatchDataset(grid.slide_path, grid.coords, grid.read_level, grid.read_size, encoder.input_size)
    t_read = _median_time(lambda: [ds[i] for i in range(len(ds))], args.repeats)
    images = torch.stack([ds[i] for i in range(len(ds))])
    ds.close()
    batches = [images[i:i + args.batch_size].to(device) for i in range(0, len(images), args.batch_size)]

    def encode_all():
        with torch.inference_mode():
            for b in batches:
                encoder(b)
        _sync(device)

    t_encode = _median_time(encode_all, args.repeats)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        coords = tile_slide(args.slide, tmp / "tiles", mpp=args.mpp, progress=False, overview=False).coords_path

        def extract():
            extract_slide_features(coords, tmp / "features", encoder=encoder, batch_size=args.batch_size,
                                   device=device, num_workers=args.num_workers, overwrite=True, progress=False)
            _sync(device)

        t_extract = _median_time(extract, args.repeats)

    p = grid.n_patches
    result = {
        "slide": args.slide.name,
        "slide_size_level0": [grid.slide_width, grid.slide_height],
        "mpp": grid.scale.mpp,
        "magnification": grid.scale.magnification,
        "patch_size_level0": grid.patch_size_level0,
        "grid_patches": n_grid,
        "kept_patches": p,
        "regions": grid.n_regions,
        "encoder": encoder.name,
        "feature_dim": encoder.feature_dim,
        "batch_size": args.batch_size,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "num_workers": args.num_workers,
        "repeats": args.repeats,
        "tiling_seconds": t_tile,
        "tiling_grid_patches_per_s": n_grid / t_tile,
        "tiling_level0_megapixels_per_s": grid.slide_width * grid.slide_height / 1e6 / t_tile,
        "reading_patches_per_s": p / t_read,
        "encoding_patches_per_s": p / t_encode,
        "extraction_patches_per_s": p / t_extract,
        "extraction_seconds": t_extract,
        "machine": {
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "load_average_start": load_start, "load_average_end": os.getloadavg(),
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"wsi_throughput_{device.type}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.slide.name}: {p} kept of {n_grid} grid patches, {grid.n_regions} regions")
    print(f"tiling     {t_tile:8.2f} s/slide  ({n_grid / t_tile:8.1f} grid patches/s)")
    print(f"reading    {p / t_read:8.1f} patches/s")
    print(f"encoding   {p / t_encode:8.1f} patches/s  ({encoder.name}, batch {args.batch_size}, {device})")
    print(f"extraction {p / t_extract:8.1f} patches/s  (end to end)")
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
