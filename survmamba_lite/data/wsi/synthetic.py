"""Synthetic whole-slide images: pyramidal tiled TIFFs that OpenSlide opens as ``generic-tiff``.

Tests, CI and laptop notebooks use them where no real slide is at hand. The image is
near-white glass with elliptic "tissue" blobs of pink stroma dotted with purple nuclei;
the blob geometry is returned so a test can compare a tissue detector against it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["Ellipse", "write_synthetic_slide", "ellipse_fraction"]


@dataclass(frozen=True)
class Ellipse:
    """A tissue blob: centre ``(cx, cy)`` and half-axes ``(rx, ry)`` in level-0 pixels."""

    cx: float
    cy: float
    rx: float
    ry: float

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return ((x - self.cx) / self.rx) ** 2 + ((y - self.cy) / self.ry) ** 2 <= 1.0


def ellipse_fraction(blobs: Sequence[Ellipse], x0: int, y0: int, size: int, samples: int = 16) -> float:
    """Fraction of the square ``[x0, x0 + size)^2`` inside any blob (``samples^2`` point grid).

    >>> ellipse_fraction([Ellipse(0, 0, 1000, 1000)], 0, 0, 100)
    1.0
    >>> ellipse_fraction([Ellipse(0, 0, 1000, 1000)], 2000, 0, 100)
    0.0
    """
    t = (np.arange(samples) + 0.5) / samples * size
    xx, yy = np.meshgrid(x0 + t, y0 + t)
    inside = np.zeros_like(xx, dtype=bool)
    for b in blobs:
        inside |= b.contains(xx, yy)
    return float(inside.mean())


def write_synthetic_slide(path: str | os.PathLike, *, width: int = 3000, height: int = 2000,
                          mpp: float | None = 0.5, blobs: Sequence[Ellipse] | None = None, levels: int = 3,
                          tile: int = 256, seed: int = 0) -> Path:
    """Write a pyramidal tiled RGB TIFF (uncompressed); each level halves the previous one.

    Args:
        path: output ``.tif``/``.tiff`` file.
        width, height: level-0 size in pixels.
        mpp: level-0 micrometres per pixel stored in the resolution tags (OpenSlide
            reports it as ``openslide.mpp-x``); None writes no resolution.
        blobs: tissue ellipses; default one centred blob; ``[]`` gives a blank slide.
        levels: pyramid levels (smaller ones are dropped once under one tile).
        tile: TIFF tile side.
        seed: noise seed (the image is a deterministic function of the arguments).

    >>> import tempfile, openslide
    >>> p = write_synthetic_slide(Path(tempfile.mkdtemp()) / "s.tiff", width=600, height=400, levels=2)
    >>> s = openslide.OpenSlide(p); s.dimensions, s.level_count, s.properties["openslide.mpp-x"]
    ((600, 400), 2, '0.5')
    """
    import tifffile

    if blobs is None:
        blobs = [Ellipse(width * 0.45, height * 0.5, width * 0.25, height * 0.3)]
    rng = np.random.default_rng(seed)
    # textures of a prime side, repeated: cheap to make, never aligned with a patch grid
    side = 509
    glass = np.clip(rng.normal(242, 3, (side, side, 3)), 0, 255)
    stroma = np.array([225, 120, 175]) + rng.normal(0, 12, (side, side, 3))
    nuclei = rng.random((side, side)) < 0.08
    stroma[nuclei] = np.array([110, 60, 150]) + rng.normal(0, 10, (int(nuclei.sum()), 3))
    glass, stroma = (np.clip(t, 0, 255).astype(np.uint8) for t in (glass, stroma))
    reps = (-(-height // side), -(-width // side), 1)
    img = np.tile(glass, reps)[:height, :width]
    tissue = np.tile(stroma, reps)[:height, :width]
    xs = np.arange(width, dtype=np.float32)
    for y0 in range(0, height, 512):  # in bands, to bound memory
        y1 = min(y0 + 512, height)
        yy = np.arange(y0, y1, dtype=np.float32)[:, None]
        inside = np.zeros((y1 - y0, width), bool)
        for b in blobs:
            inside |= b.contains(xs[None, :], yy)
        img[y0:y1][inside] = tissue[y0:y1][inside]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tifffile.TiffWriter(path) as tw:
        level = img
        for i in range(levels):
            if i > 0 and min(level.shape[:2]) < tile // 2:
                break
            kwargs = {}
            if mpp is not None:
                px_per_cm = 1e4 / (mpp * 2 ** i)
                kwargs = dict(resolution=(px_per_cm, px_per_cm), resolutionunit="CENTIMETER")
            tw.write(level, tile=(tile, tile), photometric="rgb", compression=None,
                     subfiletype=0 if i == 0 else 1, **kwargs)
            h, w = level.shape[0] // 2 * 2, level.shape[1] // 2 * 2
            sums = sum(level[dy:h:2, dx:w:2].astype(np.uint16) for dy in (0, 1) for dx in (0, 1))
            level = ((sums + 2) // 4).astype(np.uint8)  # 2 x 2 mean, rounded
    return path
