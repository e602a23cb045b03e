"""Patch feature extraction: coords files + slides -> ``features/<slide_id>.h5``.

Two paths compute the same features:

* **streaming** (``workers >= 1``, the default): :func:`~.pipeline.run_pipeline` with
  ``workers`` reader processes that read blocks of neighbouring patches
  (:mod:`.blocks`), uint8 batches copied to the GPU without blocking, the encoder in the
  chosen precision, and a writer thread; several slides are in flight at once.
* **one process** (``workers = 0``): :class:`PatchDataset` reads each patch with its own
  ``read_region`` in the main process and :func:`encode_patches` encodes them in order.
  It is the reference the streaming path is tested against (same pixels; features equal
  up to the floating-point differences of other batch compositions).

For each patch of a ``<slide_id>.coords.h5`` (from :func:`~.tiling.tile_slide`) the
reader takes the pixels at the stored pyramid level (the coarsest level not coarser
than the target magnification) and size, composites RGBA on white, resizes once
(Pillow bilinear) to the encoder's input size and hands uint8 pixels to a
:class:`~.encoders.FrozenPatchEncoder` run in eval mode under ``torch.inference_mode``.
Features are written with :func:`survmamba_lite.data.features_h5.write_features_h5`
(atomically), so a crashed run never leaves a half-written file, and an existing file is
skipped unless ``overwrite`` is set: rerunning a batch resumes it (a finished slide is
not redone, an interrupted one is redone from the start).

Defaults come from the machine (:func:`resolve_settings`): reader processes from the
cores, batch size and precision from the device (``bf16`` on a GPU that has it).

``slide_id`` is the slide file name without its extension (see
:func:`~.tiling.slide_id_from_path`); a ``clinical.csv`` whose ``slide_id`` column
holds ``<name>.svs`` maps to ``features/<name>.h5`` by the same rule.
"""
from __future__ import annotations

import errno
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from survmamba_lite.data.features_h5 import SlideFeatures, write_features_h5
from survmamba_lite.data.wsi.blocks import default_workers, slide_spec
from survmamba_lite.data.wsi.encoders import FrozenPatchEncoder, build_encoder
from survmamba_lite.data.wsi.pipeline import (PRECISIONS, PipelineStats, SlideJob, default_batch_size,
                                              default_precision, precision_context, run_pipeline)
from survmamba_lite.data.wsi.tiling import (SlideError, TilingResult, open_slide, read_coords_h5, rgba_to_rgb,
                                           slide_quickhash)
from survmamba_lite.utils.device import resolve_device
from survmamba_lite.utils.io import TMP_SUFFIX

__all__ = ["PatchDataset", "ExtractionResult", "ExtractionRun", "ExtractSettings", "resolve_device",
           "resolve_settings", "locate_slide", "extract_slide_features", "extract_slides", "extract_many",
           "encode_patches", "failure_text"]

log = logging.getLogger(__name__)


class PatchDataset(Dataset):
    """Patches of one slide read through OpenSlide.

    Item ``i`` is ``(3, S, S)`` uint8 RGB: ``read_region(coords[i], level, (read_size,
    read_size))`` on white, resized to ``S = output_size``. The slide is opened lazily
    in each process, so the dataset works with ``DataLoader(num_workers > 0)``.

    Args:
        slide_path: the slide file.
        coords: ``(P, 2)`` level-0 ``(x, y)`` of each patch.
        level: pyramid level to read from.
        read_size: patch side in that level's pixels.
        output_size: side ``S`` of the returned patches.
    """

    def __init__(self, slide_path: str | os.PathLike, coords: np.ndarray, level: int, read_size: int,
                 output_size: int):
        self.slide_path = str(slide_path)
        self.coords = np.asarray(coords, np.int64)
        self.level, self.read_size, self.output_size = int(level), int(read_size), int(output_size)
        self._slide = None

    def __len__(self) -> int:
        return int(self.coords.shape[0])

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_slide"] = None  # OpenSlide handles are per process
        return state

    def __getitem__(self, i: int) -> torch.Tensor:
        if self._slide is None:
            self._slide = open_slide(self.slide_path)
        x, y = (int(v) for v in self.coords[i])
        try:
            tile = self._slide.read_region((x, y), self.level, (self.read_size, self.read_size))
        except Exception as err:  # openslide.OpenSlideError on a damaged tile
            raise SlideError(f"{self.slide_path}: reading the patch at level-0 ({x}, {y}) failed ({err}); "
                             "the file is probably corrupt") from err
        img = Image.fromarray(rgba_to_rgb(tile))
        if img.size != (self.output_size, self.output_size):
            img = img.resize((self.output_size, self.output_size), Image.Resampling.BILINEAR)
        return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()

    def close(self) -> None:
        if self._slide is not None:
            self._slide.close()
            self._slide = None


@torch.inference_mode()
def encode_patches(encoder: FrozenPatchEncoder, dataset: Dataset, *, batch_size: int = 64,
                   device: str | torch.device = "auto", precision: str = "fp32", progress: bool = True,
                   label: str = "") -> np.ndarray:
    """Run ``encoder`` over every item of ``dataset`` in order, in this process (the
    one-process path; its items are ``(3, S, S)`` uint8 patches).

    Returns:
        ``(P, F)`` float32 features, row ``i`` for item ``i``.
    """
    from tqdm import tqdm

    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    dev = resolve_device(device)
    encoder = encoder.to(dev).eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    out = []
    with tqdm(total=len(dataset), desc=f"extract {label}".strip(), unit=" patches", disable=not progress) as bar:
        for images in loader:
            with precision_context(dev, precision):
                out.append(encoder(images.to(dev)).float().cpu())
            bar.update(images.shape[0])
    if not out:
        return np.zeros((0, encoder.feature_dim), np.float32)
    return torch.cat(out).numpy().astype(np.float32, copy=False)


@dataclass(frozen=True)
class ExtractionResult:
    """Outcome of one slide: ``skipped`` when the features file already existed.

    ``seconds``: from the slide's first patches being read to its file written (slides of
    a streaming run overlap, so these do not add up to the run's wall time).
    """

    slide_id: str
    features_path: Path
    n_patches: int
    feature_dim: int | None
    skipped: bool
    seconds: float
    device: str

    @property
    def patches_per_second(self) -> float:
        return self.n_patches / self.seconds if self.seconds > 0 else float("nan")


@dataclass(frozen=True)
class ExtractSettings:
    """How a run extracts: device, reader processes (0: the one-process path), batch size,
    precision (:data:`~.pipeline.PRECISIONS`)."""

    device: torch.device
    workers: int
    batch_size: int
    precision: str
    cuda_graphs: bool = False


def resolve_settings(device: str | torch.device = "auto", workers: int | None = None,
                     batch_size: int | None = None, precision: str | None = None,
                     cuda_graphs: bool = False) -> ExtractSettings:
    """Fill the unset settings from the machine.

    ``workers``: all cores but two next to a GPU, a quarter of them on a CPU
    (:func:`~.blocks.default_workers`); ``batch_size``: 256 on a GPU (64 under 16 GB), 32 on
    a CPU; ``precision``: ``bf16`` on a GPU that has it, ``fp32`` on a CPU. ``cuda_graphs``
    (off unless asked for) holds only on CUDA.

    >>> s = resolve_settings("cpu")
    >>> s.device.type, s.workers >= 1, s.batch_size, s.precision, s.cuda_graphs
    ('cpu', True, 32, 'fp32', False)
    """
    dev = resolve_device(device)
    s = ExtractSettings(dev, default_workers(dev.type) if workers is None else int(workers),
                        default_batch_size(dev) if batch_size is None else int(batch_size),
                        default_precision(dev) if precision is None else str(precision),
                        bool(cuda_graphs) and dev.type == "cuda")
    if s.workers < 0:
        raise ValueError(f"--workers {s.workers}: must be >= 0 (0 reads the patches in the main process)")
    if s.batch_size < 1:
        raise ValueError(f"--batch-size {s.batch_size}: must be >= 1")
    if s.precision not in PRECISIONS:
        raise ValueError(f"--precision {s.precision!r}: choose one of {list(PRECISIONS)}")
    with precision_context(dev, s.precision):  # refuses fp16/tf32 on a CPU, here rather than mid-run
        pass
    return s


@dataclass
class ExtractionRun:
    """A run over many slides: per-slide ``results`` (done and skipped), ``failures``
    ``(coords_path, message)``, the run's ``settings`` and, for the streaming path, where its
    time went (``stats``)."""

    results: list[ExtractionResult] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    settings: ExtractSettings | None = None
    stats: PipelineStats | None = None
    seconds: float = 0.0


def locate_slide(grid: TilingResult, slide_path: str | os.PathLike | None = None,
                 slide_dir: str | os.PathLike | None = None) -> Path:
    """The slide file for a coords file: ``slide_path`` if given, else the path recorded at
    tiling time, else a file of the same name in ``slide_dir``."""
    tried = []
    candidates = [Path(slide_path)] if slide_path is not None else []
    if slide_path is None:
        if slide_dir is not None:
            candidates.append(Path(slide_dir) / Path(grid.slide_path).name)
        candidates.append(Path(grid.slide_path))
    for c in candidates:
        if c.is_file():
            return c
        tried.append(str(c))
    raise FileNotFoundError(f"slide {grid.slide_id!r} (coords {grid.coords_path}): no slide file at "
                            f"{', '.join(tried)}; pass --slide PATH or --slide-dir DIR")


def remove_stale_temporaries(out_path: Path) -> list[Path]:
    """Delete ``<out_path>.<pid>.tmp`` files left by writers that were killed (their process
    is gone); a file being written by a live process is left alone."""
    removed = []
    pattern = re.compile(re.escape(out_path.name) + r"\.(\d+)" + re.escape(TMP_SUFFIX) + "$")
    for tmp in out_path.parent.glob(f"{out_path.name}.*{TMP_SUFFIX}"):
        m = pattern.match(tmp.name)
        if not m:
            continue
        pid = int(m.group(1))
        try:
            os.kill(pid, 0)
            alive = pid != os.getpid()
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
        if not alive:
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
            log.info("%s: removed the temporary file of an interrupted run", tmp)
    return removed


def _prepare(coords_path: str | os.PathLike, out_dir: Path, enc: FrozenPatchEncoder, slide_path, slide_dir
             ) -> tuple[TilingResult, SlideJob]:
    """Read a coords file, find and check its slide, and describe the job (no pixels read)."""
    grid = read_coords_h5(coords_path)
    out_path = out_dir / f"{grid.slide_id}.h5"
    slide_file = locate_slide(grid, slide_path, slide_dir)
    slide = open_slide(slide_file)
    try:
        dims, n_levels, quick = slide.dimensions, slide.level_count, slide_quickhash(slide)
    finally:
        slide.close()
    if tuple(dims) != (grid.slide_width, grid.slide_height) or grid.read_level >= n_levels:
        raise SlideError(f"{slide_file}: is {dims[0]} x {dims[1]} px with {n_levels} levels, but {coords_path} was "
                         f"made for a {grid.slide_width} x {grid.slide_height} px slide read at level "
                         f"{grid.read_level}; tile this slide again")
    recorded = grid.extra.get("slide_quickhash")
    if recorded and quick and recorded != quick:
        raise SlideError(f"{slide_file}: is not the file {coords_path} was tiled from: same size, other pixels (its "
                         f"OpenSlide quick hash differs from the one recorded at tiling), so another slide of that "
                         f"name or a corrupt or re-exported copy; give the slide {grid.slide_id} was tiled from "
                         f"(--slide/--slide-dir), or tile this file again")
    attrs = dict(
        slide_id=grid.slide_id, patch_size=grid.patch_size_level0, region_size=grid.region_size_level0,
        magnification=grid.scale.magnification, encoder=enc.name, mpp=grid.scale.mpp,
        mpp_source=grid.scale.mpp_source, target_patch_size=grid.patch_size, target_region_size=grid.region_size,
        read_level=grid.read_level, read_size=grid.read_size, encoder_input_size=enc.input_size,
        normalisation=enc.normalisation, feature_dim=int(enc.feature_dim), slide_path=str(slide_file),
        coords_file=str(Path(coords_path).resolve()), source="survmamba extract",
        slide_width=int(dims[0]), slide_height=int(dims[1]), **({"slide_quickhash": quick} if quick else {}),
    )

    def write(features: np.ndarray) -> None:
        write_features_h5(out_path, SlideFeatures(features, grid.coords, grid.region, attrs))

    spec = slide_spec(slide_file, grid.coords, grid.read_level, grid.read_size, grid.patch_size_level0,
                      enc.input_size)
    return grid, SlideJob(grid.slide_id, out_path, spec, np.asarray(grid.region, np.int64),
                          grid.region_size_level0, write)


def failure_text(err: BaseException) -> str:
    """A slide's failure in one line; a failed write names its file and the fix.

    >>> failure_text(OSError(28, "No space left on device", "features/S1.h5"))
    'features/S1.h5: No space left on device; free some space (or raise the file-size limit) and rerun to resume'
    """
    if isinstance(err, OSError) and err.filename and err.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return f"{err.filename}: {err.strerror}; free some space (or raise the file-size limit) and rerun to resume"
    if isinstance(err, OSError) and err.filename and not isinstance(err, FileNotFoundError):
        return f"{err.filename}: {err.strerror or err}"
    return str(err)


def extract_slides(coords_paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                   encoder: str | FrozenPatchEncoder = "efficientnet-lite0", weights: str | os.PathLike | None = None,
                   slide_path: str | os.PathLike | None = None, slide_dir: str | os.PathLike | None = None,
                   device: str | torch.device = "auto", workers: int | None = None, batch_size: int | None = None,
                   precision: str | None = None, overwrite: bool = False, progress: bool = True,
                   band_rows: int = 4, raise_errors: bool = False, cuda_graphs: bool = False) -> ExtractionRun:
    """Encode every patch of many tiled slides into ``out_dir/<slide_id>.h5``.

    Args:
        coords_paths: ``<slide_id>.coords.h5`` files written by ``survmamba tile``.
        out_dir: the features folder.
        encoder: a name for :func:`~.encoders.build_encoder` or a built encoder.
        weights: weights file for a named encoder.
        slide_path, slide_dir: where the slide is, when it moved since tiling
            (``slide_path`` for a single coords file).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        workers: reader processes; 0 reads in this process (the one-process path);
            None: from the machine (:func:`resolve_settings`).
        batch_size: patches per encoder call (None: from the device).
        precision: ``fp32``, ``tf32``, ``bf16`` or ``fp16`` (None: from the device).
        overwrite: re-extract slides whose features file exists (else they are skipped).
        progress: a progress bar in patches/s.
        band_rows: patch rows per block read (streaming path).
        raise_errors: raise the first slide's error instead of listing it in ``failures``.
        cuda_graphs: on CUDA, the streaming path replays the encoder from CUDA graphs
            (:class:`~.pipeline._GraphedEncoder`: fewer kernel launches from the host; off by
            default, see :func:`~.pipeline.run_pipeline`).

    Returns:
        an :class:`ExtractionRun`. A slide that cannot be read is listed in ``failures`` and
        the others go on. Each file holds ``features (P, F)``, ``coords (P, 2)``, ``region (P,)``
        and attributes ``slide_id``, ``patch_size``/``region_size`` (level-0 px),
        ``magnification``, ``encoder``, ``mpp``, ``normalisation``, ...
    """
    start = time.perf_counter()
    settings = resolve_settings(device, workers, batch_size, precision, cuda_graphs)
    enc = build_encoder(encoder, weights) if isinstance(encoder, str) else encoder
    out_dir = Path(out_dir)
    run = ExtractionRun(settings=settings)
    jobs: list[SlideJob] = []
    coords_of: dict[str, str] = {}
    position: dict[str, int] = {}
    for i, cp in enumerate(coords_paths):
        try:
            grid = read_coords_h5(cp)
            position.setdefault(grid.slide_id, i)
            out_path = out_dir / f"{grid.slide_id}.h5"
            if out_path.exists() and not overwrite:
                log.info("%s: %s exists, skipped (use --overwrite to redo it)", grid.slide_id, out_path)
                run.results.append(ExtractionResult(grid.slide_id, out_path, grid.n_patches, None, True, 0.0, ""))
                continue
            if grid.slide_id in coords_of:
                raise ValueError(f"{cp}: slide {grid.slide_id!r} is also listed by {coords_of[grid.slide_id]}; "
                                 "both would write the same features file")
            _, job = _prepare(cp, out_dir, enc, slide_path, slide_dir)
        except (SlideError, FileNotFoundError, ValueError) as err:
            if raise_errors:
                raise
            run.failures.append((str(cp), failure_text(err)))
            log.info("%s", err)      # in run.failures: the caller reports it, once
            continue
        coords_of[job.slide_id] = str(cp)
        remove_stale_temporaries(job.out_path)
        jobs.append(job)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = str(settings.device)
    if settings.workers == 0:
        for job in jobs:
            t0 = time.perf_counter()
            ds = PatchDataset(job.spec.path, job.spec.coords, job.spec.level, job.spec.read_size, enc.input_size)
            try:
                feats = encode_patches(enc, ds, batch_size=settings.batch_size, device=settings.device,
                                       precision=settings.precision, progress=progress, label=job.slide_id)
                job.write(feats)
            except (SlideError, OSError, ValueError) as err:
                if raise_errors:
                    raise
                run.failures.append((coords_of[job.slide_id], failure_text(err)))
                log.info("%s", err)
                continue
            finally:
                ds.close()
            run.results.append(ExtractionResult(job.slide_id, job.out_path, job.n_patches, enc.feature_dim, False,
                                                time.perf_counter() - t0, dev))
    elif jobs:
        def done(job: SlideJob, seconds: float) -> None:
            run.results.append(ExtractionResult(job.slide_id, job.out_path, job.n_patches, enc.feature_dim, False,
                                                seconds, dev))

        def failed(job: SlideJob, message: str) -> None:
            run.failures.append((coords_of[job.slide_id], message))

        run.stats = run_pipeline(jobs, enc, device=settings.device, workers=settings.workers,
                                 batch_size=settings.batch_size, precision=settings.precision, band_rows=band_rows,
                                 progress=progress, cuda_graphs=settings.cuda_graphs, on_done=done, on_fail=failed)
    if raise_errors and run.failures:
        raise SlideError(run.failures[0][1])
    run.results.sort(key=lambda r: position[r.slide_id])
    for r in run.results:
        if not r.skipped:
            log.info("%s: %d patches -> %s (%.1f patches/s on %s)", r.slide_id, r.n_patches, r.features_path,
                     r.patches_per_second, dev)
    run.seconds = time.perf_counter() - start
    return run


def extract_slide_features(coords_path: str | os.PathLike, out_dir: str | os.PathLike, **kwargs) -> ExtractionResult:
    """Encode every patch of one tiled slide into ``out_dir/<slide_id>.h5``.

    Takes the keyword arguments of :func:`extract_slides`; a slide that cannot be read or
    checked raises (``FileNotFoundError``, :class:`~.tiling.SlideError`, ``ValueError``)
    instead of being listed.

    Returns:
        the slide's :class:`ExtractionResult`.
    """
    return extract_slides([coords_path], out_dir, raise_errors=True, **kwargs).results[0]


def extract_many(coords_paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike, **kwargs
                 ) -> tuple[list[ExtractionResult], list[tuple[str, str]]]:
    """:func:`extract_slides` returning ``(results, failures)`` with ``failures`` a list of
    ``(coords_path, message)``: a slide that fails is reported and the others continue."""
    run = extract_slides(coords_paths, out_dir, **kwargs)
    return run.results, run.failures
