"""Reading patches in blocks: one OpenSlide read per block of neighbouring patches.

A block is a run of patches of one slide that share a region and a band of
``band_rows`` patch rows inside it (patches are stored region by region, row-major inside a
region, so a block is a contiguous range ``start:stop`` of the coords file). A reader
takes the block's bounding box with one ``read_region`` at the stored pyramid level,
composites it on white, cuts each patch out of it and resizes it to the encoder's input
(Pillow bilinear, as :class:`~survmamba_lite.data.wsi.extract.PatchDataset` does patch by
patch). Each JPEG tile of the slide is then decoded once per block instead of once per
patch that touches it, and OpenSlide's per-call overhead is paid once per block.

Exactness
    Cutting patch ``(x, y)`` out of a block read at ``(x0, y0)`` gives the same pixels as
    reading the patch alone when the level's pixels line up with level-0 pixels: the
    level's downsample ``d`` is an integer, ``read_size * d`` equals the level-0 patch
    side and every ``x - x0``, ``y - y0`` and ``x0 / d`` is a whole number of those. That
    holds for every slide read at level 0 (the usual case: 20x patches of 20x or 40x
    scans) and for exact pyramids (downsample 2, 4, ...). Aperio levels report e.g.
    ``d = 4.0003``; OpenSlide then places a patch read alone at a fractional level
    position, which a block read cannot reproduce, so such blocks are read patch by patch
    (same pixels as the one-process reader, no speed-up from blocks). Sparse blocks, whose
    bounding box holds more than ``max_waste`` times as many patch cells as patches, are
    read patch by patch too.

The :class:`BlockDataset` serves blocks of many slides to ``DataLoader`` worker
processes, each with its own OpenSlide handles (an LRU of a few open slides per process).
"""
from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from survmamba_lite.data.wsi.tiling import open_slide, rgba_to_rgb

__all__ = ["SlideSpec", "plan_blocks", "block_is_exact", "read_patch_block", "BlockDataset", "BlockItem"]


@dataclass(frozen=True)
class SlideSpec:
    """What a reader needs to cut one slide's patches.

    Attributes:
        path: the slide file.
        coords: ``(P, 2)`` int64 level-0 ``(x, y)`` of each patch.
        level: pyramid level to read from; ``read_size``: patch side in that level's px.
        patch_l0: patch side in level-0 px; ``out_size``: encoder input side ``S``.
    """

    path: str
    coords: np.ndarray
    level: int
    read_size: int
    patch_l0: int
    out_size: int


def plan_blocks(coords: np.ndarray, region: np.ndarray, region_l0: int, patch_l0: int,
                band_rows: int = 4) -> np.ndarray:
    """Split one slide's patches into blocks: same region, same band of ``band_rows`` rows.

    Args:
        coords: ``(P, 2)`` level-0 ``(x, y)``, ordered by region, row-major inside one.
        region: ``(P,)`` region index of each patch.
        region_l0, patch_l0: region and patch side in level-0 px.
        band_rows: patch rows per block.

    Returns:
        ``(n_blocks, 2)`` int64 ``[start, stop)`` ranges covering ``0..P`` in order.

    >>> c = np.array([[0, 0], [256, 0], [0, 256], [0, 512], [1024, 0]])
    >>> plan_blocks(c, np.array([0, 0, 0, 0, 1]), 1024, 256, band_rows=2).tolist()
    [[0, 3], [3, 4], [4, 5]]
    """
    coords = np.asarray(coords, np.int64)
    if coords.shape[0] == 0:
        return np.zeros((0, 2), np.int64)
    if band_rows < 1:
        raise ValueError(f"band_rows must be >= 1, got {band_rows}")
    band = (coords[:, 1] % region_l0) // patch_l0 // band_rows
    key = np.stack([np.asarray(region, np.int64), coords[:, 1] // region_l0, coords[:, 0] // region_l0, band], 1)
    change = np.nonzero((np.diff(key, axis=0) != 0).any(axis=1))[0] + 1
    starts = np.r_[0, change]
    stops = np.r_[change, coords.shape[0]]
    return np.stack([starts, stops], 1).astype(np.int64)


def block_is_exact(coords: np.ndarray, level_downsample: float, read_size: int, patch_l0: int) -> bool:
    """Whether cutting these patches from one block read equals reading each alone (module doc).

    >>> c = np.array([[512, 0], [1024, 512]])
    >>> block_is_exact(c, 1.0, 512, 512), block_is_exact(c, 4.0, 128, 512), block_is_exact(c, 4.0003, 128, 512)
    (True, True, False)
    """
    d = int(round(level_downsample))
    if d < 1 or abs(level_downsample - d) > 1e-9 or read_size * d != patch_l0:
        return False
    c = np.asarray(coords, np.int64)
    origin = c.min(axis=0)
    return bool((origin % d == 0).all() and ((c - origin) % patch_l0 == 0).all())


def _resize(rgb: np.ndarray, size: int) -> np.ndarray:
    if rgb.shape[0] == size and rgb.shape[1] == size:
        return rgb
    img = Image.fromarray(np.ascontiguousarray(rgb))
    return np.asarray(img.resize((size, size), Image.Resampling.BILINEAR))


def read_patch_block(slide, spec: SlideSpec, start: int, stop: int, *, max_waste: float = 4.0) -> np.ndarray:
    """Patches ``start:stop`` of ``spec`` as ``(n, S, S, 3)`` uint8 RGB (``S = out_size``).

    Pixel for pixel what :class:`~survmamba_lite.data.wsi.extract.PatchDataset` returns
    for each patch (transposed to channels-last), read with one ``read_region`` when the
    block is exact and dense enough, patch by patch otherwise (module doc).

    Args:
        slide: an open OpenSlide handle of ``spec.path``.
        spec: the slide's reading geometry and coords.
        start, stop: the block's range of patch indices.
        max_waste: read patch by patch when the bounding box holds more than this many
            patch cells per patch.
    """
    coords = spec.coords[start:stop]
    n, rs, p0, s = coords.shape[0], spec.read_size, spec.patch_l0, spec.out_size
    out = np.empty((n, s, s, 3), np.uint8)
    ds = float(slide.level_downsamples[spec.level])
    origin = coords.min(axis=0) if n else np.zeros(2, np.int64)
    cells = ((coords.max(axis=0) - origin) // p0 + 1) if n else np.zeros(2, np.int64)
    if n > 1 and block_is_exact(coords, ds, rs, p0) and cells.prod() <= max_waste * n:
        block = rgba_to_rgb(slide.read_region((int(origin[0]), int(origin[1])), spec.level,
                                              (int(cells[0]) * rs, int(cells[1]) * rs)))
        offsets = (coords - origin) // p0 * rs  # (n, 2) level px of each patch in the block
        for i, (ox, oy) in enumerate(offsets):
            out[i] = _resize(block[oy:oy + rs, ox:ox + rs], s)
        return out
    for i, (x, y) in enumerate(coords):
        out[i] = _resize(rgba_to_rgb(slide.read_region((int(x), int(y)), spec.level, (rs, rs))), s)
    return out


@dataclass
class BlockItem:
    """One block as served by :class:`BlockDataset`.

    ``pixels: (n, S, S, 3)`` uint8 (``None`` when reading failed, with ``error`` set).
    """

    job: int
    start: int
    stop: int
    pixels: torch.Tensor | None
    error: str = ""

    def pin_memory(self, device=None) -> "BlockItem":
        """Page-locked copy of the pixels (called by the ``DataLoader``'s pinning thread)."""
        if self.pixels is not None:
            self.pixels = self.pixels.pin_memory()
        return self


def _collate_item(item: BlockItem) -> BlockItem:
    return item


class BlockDataset(Dataset):
    """Blocks of many slides; item ``i`` reads block ``blocks[i] = (job, start, stop)``.

    Meant for ``DataLoader(..., batch_size=None, collate_fn=BlockDataset.collate)`` with
    worker processes: each process opens its own OpenSlide handles lazily and keeps the
    ``max_open`` most recently used ones. A block that cannot be read comes back with its
    ``error`` set instead of raising, so one damaged slide does not stop the others.
    """

    collate = staticmethod(_collate_item)

    def __init__(self, slides: list[SlideSpec], blocks: np.ndarray, *, max_open: int = 4):
        self.slides = slides
        self.blocks = np.asarray(blocks, np.int64).reshape(-1, 3)
        self.max_open = int(max_open)
        self._open: OrderedDict[str, object] = OrderedDict()

    def __len__(self) -> int:
        return int(self.blocks.shape[0])

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_open"] = OrderedDict()  # OpenSlide handles are per process
        return state

    def _handle(self, path: str):
        if path in self._open:
            self._open.move_to_end(path)
            return self._open[path]
        while len(self._open) >= self.max_open:
            self._open.popitem(last=False)[1].close()
        handle = self._open[path] = open_slide(path)
        return handle

    def __getitem__(self, i: int) -> BlockItem:
        job, start, stop = (int(v) for v in self.blocks[i])
        spec = self.slides[job]
        try:
            pixels = read_patch_block(self._handle(spec.path), spec, start, stop)
        except Exception as err:  # a damaged tile, a vanished file: reported per slide
            x, y = spec.coords[start]
            return BlockItem(job, start, stop, None, f"{spec.path}: reading patches {start}..{stop - 1} (first at "
                                                     f"level-0 ({x}, {y})) failed: {err}; the file is probably corrupt")
        return BlockItem(job, start, stop, torch.from_numpy(pixels))

    def close(self) -> None:
        while self._open:
            self._open.popitem()[1].close()


def default_workers(device_type: str) -> int:
    """Reader processes to use by default: all cores but two next to a GPU (the main process
    feeds the GPU, a thread pins memory), a quarter of them on a CPU (the encoder needs the
    rest); at least one.

    >>> default_workers("cpu") >= 1 and default_workers("cuda") >= 1
    True
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores - 2) if device_type == "cuda" else max(1, cores // 4)


def slide_spec(path: str | os.PathLike, coords: np.ndarray, level: int, read_size: int, patch_l0: int,
               out_size: int) -> SlideSpec:
    """A :class:`SlideSpec` with the path as a string and coords as int64."""
    return SlideSpec(str(Path(path)), np.asarray(coords, np.int64), int(level), int(read_size), int(patch_l0),
                     int(out_size))
