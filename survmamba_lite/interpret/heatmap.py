"""Patch scores drawn over a slide thumbnail (read with OpenSlide through the tiling helpers).

Coordinates are the top-left corners of the patches in level-0 pixels, as stored in
``features/<slide_id>.h5`` and written by ``survmamba explain``; each patch is painted as a
square of its level-0 side, scaled to the thumbnail.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["score_image", "draw_heatmap", "slide_heatmap"]


def score_image(coords: np.ndarray, scores: np.ndarray, patch_size: int, shape: tuple[int, int],
                scale: float) -> np.ndarray:
    """Paint ``scores`` onto a ``shape = (H, W)`` grid (NaN where no patch lies).

    Args:
        coords: ``(P, 2)`` level-0 ``(x, y)`` of each patch.
        scores: ``(P,)`` values.
        patch_size: the patch side in level-0 pixels.
        shape: the thumbnail's ``(H, W)``.
        scale: level-0 pixels per thumbnail pixel.

    >>> img = score_image(np.array([[0, 0], [4, 0]]), np.array([1.0, 2.0]), 4, (2, 4), 2.0)
    >>> img.tolist()
    [[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0]]
    """
    img = np.full(shape, np.nan)
    side = max(1, int(round(patch_size / scale)))
    for (x, y), s in zip(np.asarray(coords), np.asarray(scores, dtype=np.float64)):
        c0, r0 = int(x / scale), int(y / scale)
        if r0 >= shape[0] or c0 >= shape[1]:
            continue
        img[r0:r0 + side, c0:c0 + side] = s
    return img


def draw_heatmap(ax, thumbnail: np.ndarray, coords: np.ndarray, scores: np.ndarray, patch_size: int,
                 scale: float, *, title: str = "", cmap: str = "magma", alpha: float = 0.55):
    """Draw ``thumbnail`` with the patch scores on top (``ax``: a matplotlib axis); returns the image."""
    img = score_image(coords, scores, patch_size, thumbnail.shape[:2], scale)
    ax.imshow(thumbnail)
    im = ax.imshow(np.ma.masked_invalid(img), cmap=cmap, alpha=alpha, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return im


def slide_heatmap(slide_path: str | os.PathLike, coords: np.ndarray, scores: np.ndarray, patch_size: int,
                  out: str | os.PathLike, *, title: str = "", max_side: int = 1024) -> Path:
    """Write a PNG of the slide's thumbnail (longest side ``max_side``) with the patch scores.

    Returns the PNG path. Raises a :class:`~survmamba_lite.data.wsi.tiling.SlideError` naming the
    slide when OpenSlide cannot read it.
    """
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from survmamba_lite.data.wsi.tiling import open_slide, read_thumbnail

    slide = open_slide(slide_path)
    try:
        w0, h0 = slide.dimensions
        scale = max(1.0, max(w0, h0) / max_side)                      # level-0 pixels per thumbnail pixel
        thumb = read_thumbnail(slide, scale, label=Path(slide_path).name)
    finally:
        slide.close()
    fig, ax = plt.subplots(figsize=(8, 8 * thumb.shape[0] / thumb.shape[1] + 0.6))
    im = draw_heatmap(ax, thumb, coords, scores, patch_size, scale, title=title)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01)
    out = Path(out)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out
