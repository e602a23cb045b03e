"""``survmamba tile`` and ``survmamba extract``: slides -> coords -> ``features/<slide_id>.h5``.

Typical use::

    survmamba tile slides/*.svs --out tiles/                 # tiles/<slide_id>.coords.h5 + .overview.png
    survmamba extract tiles/ --out features/                 # features/<slide_id>.h5 (EfficientNet-Lite0)
    survmamba extract tiles/ --out features/ --encoder ctranspath --weights ctranspath.torchscript.pt

Both commands skip slides whose output exists (rerun to resume; ``--overwrite`` redoes them;
a slide interrupted half-way has no output and is redone) and carry on past a failing slide,
listing the failures at the end. ``extract`` reads with ``--workers`` processes, encodes
``--batch-size`` patches at a time in ``--precision``; all three default to what the machine
has (see ``survmamba extract --help``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from survmamba_lite.errors import UserError
from survmamba_lite.utils.outputs import FEATURES, TILES, check_incremental_dir

__all__ = ["add_commands", "run_tile", "run_extract"]


def add_commands(subparsers) -> None:
    """Register ``tile`` and ``extract`` on the ``survmamba`` sub-command parser."""
    from survmamba_lite.data.wsi.encoders import NORMALISATIONS, list_encoders
    from survmamba_lite.data.wsi.pipeline import PRECISIONS

    t = subparsers.add_parser(
        "tile", help="tissue detection and region/patch grid of whole-slide images",
        description="Detect tissue, lay a grid of regions (default 4096 px at 20x) made of patches (256 px) "
                    "and write DIR/<slide_id>.coords.h5 (level-0 patch coordinates and region ids) plus "
                    "DIR/<slide_id>.overview.png.")
    t.add_argument("slides", nargs="+", metavar="SLIDE", help="slide files (.svs, .ndpi, tiled TIFF, ...)")
    t.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    t.add_argument("--region-size", type=int, default=4096, help="region side in pixels at --magnification")
    t.add_argument("--patch-size", type=int, default=256, help="patch side in pixels at --magnification")
    t.add_argument("--magnification", type=float, default=20.0,
                   help="target magnification (20 = 0.5 um/px)")
    res = t.add_mutually_exclusive_group()
    res.add_argument("--mpp", type=float, default=None,
                     help="level-0 micrometres per pixel of the slide(s), for slides without this metadata "
                          "(overrides it when present)")
    res.add_argument("--base-magnification", type=float, default=None,
                     help="level-0 magnification of the slide(s) (e.g. 40), instead of --mpp")
    t.add_argument("--tissue-threshold", type=float, default=0.5,
                   help="keep patches whose tissue fraction is at least this (0..1)")
    t.add_argument("--mask-resolution", type=int, default=8, help="tissue-mask pixels per patch side")
    t.add_argument("--no-overview", action="store_true", help="do not write the overview PNG")
    t.add_argument("--overwrite", action="store_true", help="redo slides whose coords file exists")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=run_tile)

    e = subparsers.add_parser(
        "extract", help="encode tiled patches with a frozen encoder into features/<slide_id>.h5",
        description="Read the patches listed in coords files through OpenSlide, encode them with a frozen "
                    "encoder and write FEATURES_DIR/<slide_id>.h5 (features (P, F), coords (P, 2), region (P,)).")
    e.add_argument("coords", nargs="+", metavar="COORDS_H5",
                   help="<slide_id>.coords.h5 files from `survmamba tile`, or folders holding them")
    e.add_argument("--out", required=True, type=Path, metavar="FEATURES_DIR", help="features folder")
    where = e.add_mutually_exclusive_group()
    where.add_argument("--slide", type=Path, default=None,
                       help="the slide file (one coords file only; default: the path recorded by `tile`)")
    where.add_argument("--slide-dir", type=Path, default=None,
                       help="folder to look for slides in when they moved since tiling")
    e.add_argument("--encoder", default="efficientnet-lite0", choices=list_encoders(),
                   help="patch encoder (random-projection is for tests only)")
    e.add_argument("--weights", type=Path, default=None,
                   help="model file: required for ctranspath/torchscript (TorchScript), optional "
                        "state dict for efficientnet-lite0")
    e.add_argument("--input-size", type=int, default=None, help="encoder input side (torchscript only; default 224)")
    e.add_argument("--normalisation", choices=sorted(NORMALISATIONS), default=None,
                   help="override the encoder's input normalisation")
    e.add_argument("--workers", "--num-workers", dest="workers", type=int, default=None, metavar="W",
                   help="reader processes, each reading blocks of patches with its own slide handle; 0 reads "
                        "patch by patch in the main process (default: all cores but two with a GPU, a quarter "
                        "of them on a CPU)")
    e.add_argument("--batch-size", type=int, default=None,
                   help="patches per encoder call (default: 256 on a GPU, 64 under 16 GB, 32 on a CPU)")
    e.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="encoder precision: fp32, tf32 (CUDA), bf16 or fp16 (CUDA) autocast (default: bf16 on a "
                        "GPU that has it, fp32 on a CPU)")
    e.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=False,
                   help="on a GPU, replay the encoder from CUDA graphs: far fewer kernel launches from the "
                        "host, for when launching rather than reading bounds the run (default off)")
    e.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    e.add_argument("--overwrite", action="store_true", help="redo slides whose features file exists")
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    e.set_defaults(func=run_extract)


def _fail_summary(failures: list[tuple[str, str]], total: int):
    lines = "\n".join(f"  {msg}" for _, msg in failures)
    return UserError(f"{len(failures)} of {total} slides failed (the others are done):\n{lines}")


def run_tile(args: argparse.Namespace) -> int:
    from survmamba_lite.data.wsi.tiling import COORDS_SUFFIX, EmptyTissueError, SlideError, slide_id_from_path, \
        tile_slide

    for flag, value, low in (("--region-size", args.region_size, 1), ("--patch-size", args.patch_size, 1),
                             ("--mask-resolution", args.mask_resolution, 1)):
        if value < low:
            raise UserError(f"{flag} {value}: must be an integer >= {low}")
    if args.region_size % args.patch_size:
        raise UserError(f"--region-size {args.region_size} is not a multiple of --patch-size {args.patch_size}")
    if not 0.0 <= args.tissue_threshold <= 1.0:
        raise UserError(f"--tissue-threshold {args.tissue_threshold}: must lie in [0, 1]")
    for flag, value in (("--magnification", args.magnification), ("--mpp", args.mpp),
                        ("--base-magnification", args.base_magnification)):
        if value is not None and not value > 0:
            raise UserError(f"{flag} {value}: must be > 0")
    first: dict[str, str] = {}
    for slide in args.slides:
        sid = slide_id_from_path(slide)
        if sid in first:
            if Path(first[sid]).resolve() == Path(slide).resolve():
                raise UserError(f"{slide}: given twice; give each slide once")
            raise UserError(f"{slide} and {first[sid]}: both have slide id {sid!r} (the file name without its "
                            f"extension), so both would write {args.out / (sid + COORDS_SUFFIX)}; tile them in "
                            "separate calls with different --out folders, or rename one")
        first[sid] = slide
    check_incremental_dir(args.out, TILES)
    failures = []
    for slide in args.slides:
        target = args.out / f"{slide_id_from_path(slide)}{COORDS_SUFFIX}"
        if target.exists() and not args.overwrite:
            print(f"{slide}: {target} exists, skipped (--overwrite to redo)")
            continue
        try:
            r = tile_slide(slide, args.out, region_size=args.region_size, patch_size=args.patch_size,
                           magnification=args.magnification, mpp=args.mpp,
                           base_magnification=args.base_magnification, tissue_threshold=args.tissue_threshold,
                           mask_resolution=args.mask_resolution, overview=not args.no_overview,
                           progress=not args.quiet)
        except (SlideError, EmptyTissueError, FileNotFoundError) as err:
            if len(args.slides) == 1:
                raise
            failures.append((slide, str(err)))
            print(f"error: {err}", file=sys.stderr)
            continue
        print(f"{r.slide_id}: {r.n_patches} patches in {r.n_regions} regions (patch {r.patch_size_level0} "
              f"level-0 px = {r.patch_size} px at {r.scale.magnification:g}x; mpp {r.scale.mpp:.4g} from "
              f"{r.scale.mpp_source}; read level {r.read_level}, {r.read_size} px) -> {r.coords_path}")
    if failures:
        raise _fail_summary(failures, len(args.slides))
    return 0


def _expand_coords(items: list[str]) -> list[Path]:
    from survmamba_lite.data.wsi.tiling import COORDS_SUFFIX

    paths = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(p.glob(f"*{COORDS_SUFFIX}"))
            if not found:
                raise FileNotFoundError(f"{p}: folder holds no *{COORDS_SUFFIX} files; run `survmamba tile` first")
            paths.extend(found)
        else:
            paths.append(p)
    return paths


def run_extract(args: argparse.Namespace) -> int:
    from survmamba_lite.data.wsi.encoders import build_encoder
    from survmamba_lite.data.wsi.extract import extract_slides, resolve_settings

    for flag, value, low in (("--batch-size", args.batch_size, 1), ("--workers", args.workers, 0),
                             ("--input-size", args.input_size, 1)):
        if value is not None and value < low:
            raise UserError(f"{flag} {value}: must be an integer >= {low}")
    check_incremental_dir(args.out, FEATURES)
    coords = _expand_coords(args.coords)
    if args.slide is not None and len(coords) != 1:
        raise UserError(f"--slide names one slide but {len(coords)} coords files were given; "
                        "use --slide-dir for many slides")
    settings = resolve_settings(args.device, args.workers, args.batch_size, args.precision, args.cuda_graphs)
    encoder = build_encoder(args.encoder, args.weights, input_size=args.input_size,
                            normalisation=args.normalisation)
    readers = f"{settings.workers} reader processes" if settings.workers else "patches read in this process"
    print(f"encoder {encoder.name}: input {encoder.input_size} px, {encoder.normalisation} normalisation, "
          f"{encoder.feature_dim}-d features; device {settings.device}, {readers}, batch {settings.batch_size}, "
          f"{settings.precision}{', CUDA graphs' if settings.cuda_graphs and settings.workers else ''}")
    run = extract_slides(
        coords, args.out, encoder=encoder, slide_path=args.slide, slide_dir=args.slide_dir, device=settings.device,
        workers=settings.workers, batch_size=settings.batch_size, precision=settings.precision,
        overwrite=args.overwrite, progress=not args.quiet, cuda_graphs=settings.cuda_graphs)
    for r in run.results:
        if r.skipped:
            print(f"{r.slide_id}: {r.features_path} exists, skipped (--overwrite to redo)")
        else:
            print(f"{r.slide_id}: {r.n_patches} x {r.feature_dim} features in {r.seconds:.1f} s "
                  f"({r.patches_per_second:.1f} patches/s) -> {r.features_path}")
    done = sum(r.n_patches for r in run.results if not r.skipped)
    if done:
        print(f"{done} patches in {run.seconds:.1f} s ({done / max(run.seconds, 1e-9):.1f} patches/s end to end)")
    if run.failures:
        if len(coords) == 1:
            raise UserError(run.failures[0][1])
        raise _fail_summary(run.failures, len(coords))
    return 0
