"""Patch feature extraction: coords file + slide -> ``features/<slide_id>.h5``.

For each patch of a ``<slide_id>.coords.h5`` (from :func:`~.tiling.tile_slide`) the
reader takes ``read_region`` at the stored pyramid level (the coarsest level not
coarser than the target magnification) and size, composites RGBA on white, resizes once
(bilinear, antialiased) to the encoder's input size and hands uint8 pixels to a
:class:`~.encoders.FrozenPatchEncoder` run in eval mode under ``torch.inference_mode``.
Features are written with :func:`survmamba_lite.data.features_h5.write_features_h5`
(atomically), so a crashed run never leaves a half-written file, and an existing file is
skipped unless ``overwrite`` is set: rerunning a batch resumes it.

``slide_id`` is the slide file name without its extension (see
:func:`~.tiling.slide_id_from_path`); a ``clinical.csv`` whose ``slide_id`` column
holds ``<name>.svs`` maps to ``features/<name>.h5`` by the same rule.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from survmamba_lite.data.features_h5 import SlideFeatures, write_features_h5
from survmamba_lite.data.wsi.encoders import FrozenPatchEncoder, build_encoder
from survmamba_lite.data.wsi.tiling import SlideError, TilingResult, open_slide, read_coords_h5, rgba_to_rgb
from survmamba_lite.utils.device import resolve_device

__all__ = ["PatchDataset", "ExtractionResult", "resolve_device", "locate_slide", "extract_slide_features",
           "extract_many", "encode_patches"]

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
                   device: str | torch.device = "auto", num_workers: int = 0, progress: bool = True,
                   label: str = "") -> np.ndarray:
    """Run ``encoder`` over every item of ``dataset`` in order.

    Returns:
        ``(P, F)`` float32 features, row ``i`` for item ``i``.
    """
    from tqdm import tqdm

    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    dev = resolve_device(device)
    encoder = encoder.to(dev).eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=dev.type == "cuda", persistent_workers=False)
    out = []
    with tqdm(total=len(dataset), desc=f"extract {label}".strip(), unit="patch", disable=not progress) as bar:
        for images in loader:
            out.append(encoder(images.to(dev, non_blocking=True)).cpu())
            bar.update(images.shape[0])
    if not out:
        return np.zeros((0, encoder.feature_dim), np.float32)
    return torch.cat(out).numpy().astype(np.float32, copy=False)


@dataclass(frozen=True)
class ExtractionResult:
    """Outcome of one slide: ``skipped`` when the features file already existed."""

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


def extract_slide_features(coords_path: str | os.PathLike, out_dir: str | os.PathLike, *,
                           encoder: str | FrozenPatchEncoder = "efficientnet-lite0",
                           weights: str | os.PathLike | None = None, slide_path: str | os.PathLike | None = None,
                           slide_dir: str | os.PathLike | None = None, batch_size: int = 64,
                           device: str | torch.device = "auto", num_workers: int = 0, overwrite: bool = False,
                           progress: bool = True) -> ExtractionResult:
    """Encode every patch of one tiled slide into ``out_dir/<slide_id>.h5``.

    Args:
        coords_path: a ``<slide_id>.coords.h5`` written by ``survmamba tile``.
        out_dir: the features folder.
        encoder: a name for :func:`~.encoders.build_encoder` or a built encoder (build
            it once when extracting many slides).
        weights: weights file for a named encoder.
        slide_path, slide_dir: where the slide is, when it moved since tiling.
        batch_size, num_workers: DataLoader settings (workers read patches in parallel).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        overwrite: re-extract even if the features file exists.
        progress: tqdm progress bar.

    Returns:
        an :class:`ExtractionResult`. The file holds ``features (P, F)``, ``coords (P, 2)``,
        ``region (P,)`` and attributes ``slide_id``, ``patch_size``/``region_size``
        (level-0 px), ``magnification``, ``encoder``, ``mpp``, ``normalisation``, ...
    """
    grid = read_coords_h5(coords_path)
    out_path = Path(out_dir) / f"{grid.slide_id}.h5"
    if out_path.exists() and not overwrite:
        log.info("%s: %s exists, skipped (use --overwrite to redo it)", grid.slide_id, out_path)
        return ExtractionResult(grid.slide_id, out_path, grid.n_patches, None, True, 0.0, "")
    slide_file = locate_slide(grid, slide_path, slide_dir)
    slide = open_slide(slide_file)
    try:
        dims, n_levels = slide.dimensions, slide.level_count
    finally:
        slide.close()
    if tuple(dims) != (grid.slide_width, grid.slide_height) or grid.read_level >= n_levels:
        raise SlideError(f"{slide_file}: is {dims[0]} x {dims[1]} px with {n_levels} levels, but {coords_path} was "
                         f"made for a {grid.slide_width} x {grid.slide_height} px slide read at level "
                         f"{grid.read_level}; tile this slide again")
    enc = build_encoder(encoder, weights) if isinstance(encoder, str) else encoder
    dev = resolve_device(device)
    dataset = PatchDataset(slide_file, grid.coords, grid.read_level, grid.read_size, enc.input_size)
    start = time.perf_counter()
    try:
        feats = encode_patches(enc, dataset, batch_size=batch_size, device=dev, num_workers=num_workers,
                               progress=progress, label=grid.slide_id)
    finally:
        dataset.close()
    seconds = time.perf_counter() - start
    attrs = dict(
        slide_id=grid.slide_id, patch_size=grid.patch_size_level0, region_size=grid.region_size_level0,
        magnification=grid.scale.magnification, encoder=enc.name, mpp=grid.scale.mpp,
        mpp_source=grid.scale.mpp_source, target_patch_size=grid.patch_size, target_region_size=grid.region_size,
        read_level=grid.read_level, read_size=grid.read_size, encoder_input_size=enc.input_size,
        normalisation=enc.normalisation, feature_dim=int(feats.shape[1]), slide_path=str(slide_file),
        coords_file=str(Path(coords_path).resolve()), source="survmamba extract",
    )
    write_features_h5(out_path, SlideFeatures(feats, grid.coords, grid.region, attrs))
    log.info("%s: %d patches -> %s (%.1f patches/s on %s)", grid.slide_id, len(feats), out_path,
             len(feats) / max(seconds, 1e-9), dev)
    return ExtractionResult(grid.slide_id, out_path, int(feats.shape[0]), int(feats.shape[1]), False, seconds,
                            str(dev))


def extract_many(coords_paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                 encoder: str | FrozenPatchEncoder = "efficientnet-lite0", weights=None, **kwargs
                 ) -> tuple[list[ExtractionResult], list[tuple[str, str]]]:
    """:func:`extract_slide_features` over many coords files with one encoder.

    The encoder is built once (a bad encoder or weights file raises at once); a slide that
    fails is reported and the others continue.

    Returns:
        ``(results, failures)`` with ``failures`` a list of ``(coords_path, message)``.
    """
    enc = build_encoder(encoder, weights) if isinstance(encoder, str) else encoder
    results, failures = [], []
    for cp in coords_paths:
        try:
            results.append(extract_slide_features(cp, out_dir, encoder=enc, **kwargs))
        except (SlideError, FileNotFoundError, ValueError) as err:
            failures.append((str(cp), str(err)))
            log.error("%s", err)
    return results, failures
