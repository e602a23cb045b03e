"""Slide previews: patch features as colours over the slide thumbnail.

* :func:`feature_pca_rgb`: the first three principal components of the patch features as RGB;
* :func:`draw_feature_map`: those colours drawn at each patch's position over the thumbnail;
* :func:`save_small_png`: a palette PNG shrunk until it fits a size budget (result folders
  keep small files).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["feature_pca_rgb", "draw_feature_map", "save_small_png"]


def feature_pca_rgb(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colours of patches: the first three principal components of their features as RGB.

    Each component is centred, projected and min-max scaled to ``[0, 1]`` over the slide.

    Args:
        features: ``(P, F)`` patch features, ``P >= 2``.

    Returns:
        ``colours (P, 3)`` in ``[0, 1]`` and the explained-variance ratio of the three components.

    >>> f = np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 1, 0]])
    >>> rgb, ratio = feature_pca_rgb(f)
    >>> rgb.shape, float(rgb[:, 0].min()), float(rgb[:, 0].max()), bool(ratio.sum() <= 1.0 + 1e-9)
    ((4, 3), 0.0, 1.0, True)
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"feature_pca_rgb: expected (P, F) features with P >= 2, got shape {x.shape}")
    xc = x - x.mean(0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    k = min(3, vt.shape[0])
    proj = xc @ vt[:k].T
    proj = proj * np.sign(proj[np.abs(proj).argmax(0), range(k)])       # fix the sign: largest entry positive
    lo, hi = proj.min(0), proj.max(0)
    rgb = np.zeros((x.shape[0], 3))
    rgb[:, :k] = (proj - lo) / np.where(hi > lo, hi - lo, 1.0)
    total = float((s ** 2).sum())
    ratio = np.zeros(3)
    ratio[:k] = (s[:k] ** 2) / total if total > 0 else 0.0
    return rgb, ratio


def save_small_png(image, path: Path, max_bytes: int = 300_000) -> Path:
    """Save a PIL image as a palette PNG, shrinking it until it is at most ``max_bytes``."""
    from PIL import Image

    img = image.convert("RGB")
    while True:
        img.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        if path.stat().st_size <= max_bytes or max(img.size) < 256:
            return path
        img = img.resize((int(img.width * 0.8), int(img.height * 0.8)), Image.Resampling.LANCZOS)


def draw_feature_map(slide_path: str | os.PathLike, coords: np.ndarray, patch_size_level0: int,
                     colours: np.ndarray, path: str | os.PathLike, *, max_side: int = 768,
                     opacity: float = 0.75) -> Path:
    """Draw each patch's colour (``colours (P, 3)`` in ``[0, 1]``) over the slide thumbnail at
    its position (``coords (P, 2)``, level-0 top-left ``x, y``) and save a PNG."""
    from PIL import Image, ImageDraw

    from survmamba_lite.data.wsi.tiling import open_slide, read_thumbnail

    slide = open_slide(slide_path)
    try:
        w0, h0 = slide.dimensions
        ds = max(w0, h0) / max_side if max(w0, h0) > max_side else 1.0
        base = Image.fromarray(read_thumbnail(slide, ds)).convert("RGBA")
    finally:
        slide.close()
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    s, p = 1.0 / ds, int(patch_size_level0)
    alpha = int(round(255 * opacity))
    for (x, y), c in zip(np.asarray(coords), np.asarray(colours)):
        rgb = tuple(int(round(255 * v)) for v in c)
        draw.rectangle([x * s, y * s, (x + p) * s - 1, (y + p) * s - 1], fill=rgb + (alpha,))
    out = Image.alpha_composite(base, layer)
    return save_small_png(out, Path(path))
