"""Whole-slide tiling: tissue mask -> grid of regions -> patches, as level-0 coordinates.

The paper (Sec. 3.2) cuts each slide into regions of 4096 x 4096 pixels at 20x and each
region into 256 x 256 patches; a patch is a fine-grained token, a region a coarse one.
This module computes that geometry for one slide and writes it to
``<out>/<slide_id>.coords.h5``; :mod:`survmamba_lite.data.wsi.extract` then reads the
patches and encodes them.

Resolution (MPP handling)
    Magnification ``M`` and pixel size are tied by the usual convention
    ``mpp = 10 / M`` micrometres per pixel (20x ~ 0.5 um/px, 40x ~ 0.25 um/px). The
    level-0 pixel size of a slide comes, in this order of precedence, from

    1. the user (``mpp=`` or ``base_magnification=``; explicit always wins),
    2. the slide's ``openslide.mpp-x`` property,
    3. the slide's ``openslide.objective-power`` property (``mpp = 10 / power``).

    A slide with none of them is an error that names the slide and the two options.
    One target pixel covers ``d = target_mpp / mpp`` level-0 pixels. Scanners report
    nominal resolutions slightly off (0.499 or 0.2520 um/px), so ``d`` within
    ``snap_tolerance`` (2.5 %) of an integer is snapped to it: a 0.499 um/px slide gives
    256 level-0 pixel patches at 20x, a 0.252 um/px slide 512, instead of 257 and 508.

Tissue detection
    On a thumbnail with ``mask_resolution`` (8) pixels per patch side, a pixel is tissue
    when its HSV saturation ``S = (max - min) / max`` is at least an Otsu threshold on
    ``S`` (clamped into ``[min_saturation, max_saturation]`` = [0.05, 0.25], so an
    all-background slide does not get a noise-level cut and an all-tissue slide does
    not get a cut between haematoxylin and eosin) and its grey level is at most
    ``max_grey`` (235; glass is bright). Then a binary closing (disk of radius 2 px)
    bridges gaps, an opening (3 x 3 square) removes specks, and connected components
    smaller than a quarter of a patch are dropped. A patch's tissue fraction is the
    mean of the mask over its footprint (exact: patch borders fall on thumbnail pixel
    borders).

Grid
    Regions start at level-0 ``(0, 0)`` with stride ``region_size_level0 = n *
    patch_size_level0`` where ``n = region_size // patch_size`` (so the patch grid is
    aligned to the region grid); patches must lie entirely inside the slide, so the
    last region of a row or column may be partial, and a slide smaller than one
    region yields one partial region. Patches with tissue fraction >= ``threshold`` are
    kept; regions without a kept patch are dropped and the rest renumbered ``0..R-1``
    in row-major order; patches are ordered by region, then row-major inside it.
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import h5py
import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from survmamba_lite.utils.io import atomic_h5, atomic_path

__all__ = [
    "SlideError", "EmptyTissueError", "SlideScale", "TilingResult", "TissueParams",
    "open_slide", "slide_id_from_path", "resolve_scale", "choose_level", "otsu_threshold",
    "rgba_to_rgb", "read_thumbnail", "tissue_mask", "patch_tissue_fraction", "grid_patches",
    "tile_slide", "write_coords_h5", "read_coords_h5", "COORDS_SUFFIX",
]

log = logging.getLogger(__name__)

COORDS_SUFFIX = ".coords.h5"
COORDS_FORMAT = "survmamba-coords"
COORDS_VERSION = 1
#: suffixes removed from a slide file name to form its ``slide_id``
SLIDE_SUFFIXES = (".ome.tiff", ".ome.tif", ".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn",
                  ".mrxs", ".svslide", ".bif", ".dcm", ".qptiff")


class SlideError(ValueError):
    """A slide that cannot be read or tiled; the message names the file and the fix."""


class EmptyTissueError(SlideError):
    """No patch of the slide reaches the tissue threshold."""


def slide_id_from_path(path: str | os.PathLike) -> str:
    """The ``slide_id`` of a slide file: its name without the slide extension.

    TCGA tables (``clinical.csv``) list ``slide_id`` with the extension, e.g.
    ``TCGA-2F-A9KO-01Z-00-DX1.195576CF-....svs``; its features live in
    ``features/TCGA-2F-A9KO-01Z-00-DX1.195576CF-....h5`` (the same rule applied to
    that column gives the file stem).

    >>> slide_id_from_path("/data/TCGA-2F-A9KO-01Z-00-DX1.195576CF-B739.svs")
    'TCGA-2F-A9KO-01Z-00-DX1.195576CF-B739'
    >>> slide_id_from_path("scan.ome.tiff"), slide_id_from_path("noext")
    ('scan', 'noext')
    """
    name = Path(path).name
    low = name.lower()
    for suffix in SLIDE_SUFFIXES:
        if low.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def open_slide(path: str | os.PathLike):
    """Open ``path`` with OpenSlide, turning its errors into messages that name the file."""
    import openslide

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such slide file; check the path")
    if path.is_dir():
        raise SlideError(f"{path}: is a folder, not a slide file")
    try:
        return openslide.OpenSlide(str(path))
    except openslide.OpenSlideUnsupportedFormatError as err:
        raise SlideError(
            f"{path}: not a whole-slide format OpenSlide can read (Aperio .svs, Hamamatsu .ndpi, "
            "Leica .scn, MIRAX .mrxs, Philips TIFF, Ventana .bif, DICOM, tiled pyramidal TIFF ...); "
            "convert it to a tiled pyramidal TIFF (e.g. `vips tiffsave in out.tif --tile --pyramid`)"
            f" [{type(err).__name__}]") from err
    except openslide.OpenSlideError as err:
        raise SlideError(f"{path}: OpenSlide could not read the file ({err}); it is probably corrupt "
                         "or truncated: download or export it again") from err


def slide_quickhash(slide) -> str | None:
    """OpenSlide's ``openslide.quickhash-1`` of an open slide (a digest of its smallest level and
    properties: two files of the same size and different pixels differ); None when the format has none."""
    value = slide.properties.get("openslide.quickhash-1")
    return str(value) if value else None


# --------------------------------------------------------------------------- resolution
@dataclass(frozen=True)
class SlideScale:
    """How target-magnification pixels map onto the slide's level-0 pixels.

    Attributes:
        mpp: level-0 micrometres per pixel used for the slide.
        mpp_source: where ``mpp`` came from: ``user-mpp``, ``user-base-magnification``,
            ``openslide.mpp-x`` or ``openslide.objective-power``.
        magnification: the target magnification (e.g. 20.0).
        downsample: level-0 pixels per target pixel, ``10 / magnification / mpp``,
            snapped to an integer when within the tolerance.
    """

    mpp: float
    mpp_source: str
    magnification: float
    downsample: float

    @property
    def target_mpp(self) -> float:
        return 10.0 / self.magnification

    @property
    def base_magnification(self) -> float:
        return 10.0 / self.mpp

    def level0(self, size: int) -> int:
        """Level-0 pixels covered by ``size`` target pixels (rounded)."""
        return max(1, int(round(size * self.downsample)))


def resolve_scale(properties: Mapping[str, str], slide_label: str, *, magnification: float = 20.0,
                  mpp: float | None = None, base_magnification: float | None = None,
                  snap_tolerance: float = 0.025) -> SlideScale:
    """Find the slide's level-0 pixel size and the downsample to the target magnification.

    Args:
        properties: the slide's OpenSlide properties (``slide.properties``).
        slide_label: how to name the slide in errors (its path).
        magnification: target magnification ``M``; target pixel size ``10 / M`` um.
        mpp: level-0 um/px given by the user (overrides the slide's metadata).
        base_magnification: level-0 magnification given by the user (``mpp = 10 / it``).
        snap_tolerance: relative distance to an integer under which the downsample
            ``d = (10 / M) / mpp`` is snapped to that integer.

    >>> s = resolve_scale({"openslide.mpp-x": "0.499"}, "a.svs", magnification=20)
    >>> s.downsample, s.level0(256), s.mpp_source
    (1.0, 256, 'openslide.mpp-x')
    >>> resolve_scale({"openslide.objective-power": "40"}, "b.svs").level0(256)
    512
    >>> resolve_scale({}, "c.svs", mpp=0.3).downsample  # 0.5 / 0.3, not near an integer
    1.6666666666666667
    """
    if magnification is None or not magnification > 0:
        raise ValueError(f"{slide_label}: magnification must be > 0, got {magnification}")
    if mpp is not None and base_magnification is not None:
        raise ValueError(f"{slide_label}: give either --mpp or --base-magnification, not both")
    slide_mpp = _float_property(properties, "openslide.mpp-x")
    slide_power = _float_property(properties, "openslide.objective-power")
    if mpp is not None:
        if not mpp > 0:
            raise ValueError(f"{slide_label}: --mpp must be > 0 um/px, got {mpp}")
        value, source = float(mpp), "user-mpp"
    elif base_magnification is not None:
        if not base_magnification > 0:
            raise ValueError(f"{slide_label}: --base-magnification must be > 0, got {base_magnification}")
        value, source = 10.0 / float(base_magnification), "user-base-magnification"
    elif slide_mpp is not None:
        value, source = slide_mpp, "openslide.mpp-x"
        mpp_y = _float_property(properties, "openslide.mpp-y")
        if mpp_y is not None and abs(mpp_y - slide_mpp) > 0.01 * slide_mpp:
            log.warning("%s: non-square pixels (mpp-x %.4g, mpp-y %.4g); using mpp-x", slide_label, slide_mpp, mpp_y)
    elif slide_power is not None:
        value, source = 10.0 / slide_power, "openslide.objective-power"
    else:
        raise SlideError(
            f"{slide_label}: the slide records neither its pixel size (openslide.mpp-x) nor its objective "
            "power (openslide.objective-power); pass --mpp (level-0 micrometres per pixel, e.g. 0.25 for a "
            "40x scan, 0.5 for 20x) or --base-magnification (e.g. 40) — Python: mpp= or base_magnification=")
    if source.startswith("user") and slide_mpp is not None and abs(value - slide_mpp) > 0.05 * slide_mpp:
        log.warning("%s: the given resolution %.4g um/px overrides the slide's own %.4g um/px",
                    slide_label, value, slide_mpp)
    d = (10.0 / magnification) / value
    nearest = round(d)
    if nearest >= 1 and abs(d - nearest) <= snap_tolerance * d:
        d = float(nearest)
    if d < 1.0:
        raise SlideError(
            f"{slide_label}: level 0 has {value:.4g} um/px (~{10 / value:.3g}x), coarser than the requested "
            f"{magnification:g}x ({10 / magnification:.4g} um/px); choose --magnification {10 / value:.3g} or lower")
    return SlideScale(mpp=value, mpp_source=source, magnification=float(magnification), downsample=float(d))


def _float_property(properties: Mapping[str, str], key: str) -> float | None:
    raw = properties.get(key)
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if value > 0 and math.isfinite(value) else None


def choose_level(level_downsamples: Sequence[float], downsample: float, *, tolerance: float = 0.01) -> int:
    """The coarsest pyramid level whose downsample does not exceed ``downsample``.

    Reading from it and shrinking keeps full detail; ``tolerance`` accepts a level that
    is a hair coarser (Aperio levels report e.g. 4.0003 for a nominal 4).

    >>> choose_level([1.0, 4.0003, 16.001], 4.0), choose_level([1.0, 4.0, 16.0], 3.9)
    (1, 0)
    >>> choose_level([1.0, 2.0005], 32.0)
    1
    """
    best = 0
    for i, ds in enumerate(level_downsamples):
        if ds <= downsample * (1.0 + tolerance) and ds >= level_downsamples[best]:
            best = i
    return best


# --------------------------------------------------------------------------- thumbnail + mask
def rgba_to_rgb(image: Image.Image | np.ndarray) -> np.ndarray:
    """Composite an RGBA image on white: ``rgb * a + 255 * (1 - a)`` with ``a`` in [0, 1].

    OpenSlide returns transparent pixels outside the scanned area; on white they read
    as glass (background), never as dark tissue. Computed in integers as
    ``(rgb a + 255 (255 - a) + 127) // 255`` (alpha ``a`` in 0..255), which rounds exactly
    like the real-valued formula (its value is never half-way between two integers); an
    image that is opaque everywhere is returned as its RGB channels.

    >>> px = np.array([[[200, 100, 0, 255], [0, 0, 0, 0], [100, 100, 100, 128]]], np.uint8)
    >>> rgba_to_rgb(px).tolist()
    [[[200, 100, 0], [255, 255, 255], [177, 177, 177]]]
    """
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 3:
        return arr.astype(np.uint8, copy=False)
    if arr.ndim != 3 or arr.shape[2] != 4:
        raise ValueError(f"expected an (h, w, 3|4) image, got shape {arr.shape}")
    alpha = arr[..., 3:4]
    if alpha.min() == 255:
        return np.ascontiguousarray(arr[..., :3])
    a = alpha.astype(np.uint32)
    return ((arr[..., :3].astype(np.uint32) * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def read_thumbnail(slide, downsample: float, *, chunk: int = 2048, threads: int | None = None,
                   progress: bool = False, label: str = "") -> np.ndarray:
    """Read the whole slide at ``downsample`` level-0 pixels per output pixel.

    Reads from the best pyramid level (the coarsest not coarser than ``downsample``) in
    chunks of at most ``chunk`` level pixels a side (bounded memory even for single-level
    slides), several chunks at once on ``threads`` threads (OpenSlide handles are
    thread-safe; default: up to 8, one per core), and area-averages each chunk onto its
    exact box of output pixels.

    Returns:
        ``(ceil(H0 / downsample), ceil(W0 / downsample), 3)`` uint8 RGB on white.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    w0, h0 = slide.dimensions
    tw, th = max(1, math.ceil(w0 / downsample)), max(1, math.ceil(h0 / downsample))
    level = choose_level(slide.level_downsamples, downsample)
    lds = float(slide.level_downsamples[level])
    ratio = downsample / lds  # level pixels per output pixel
    step = max(1, int(chunk // max(ratio, 1.0)))
    out = np.empty((th, tw, 3), np.uint8)
    boxes = [(tx, ty) for ty in range(0, th, step) for tx in range(0, tw, step)]

    def read_box(box: tuple[int, int]) -> None:
        tx0, ty0 = box
        tx1, ty1 = min(tx0 + step, tw), min(ty0 + step, th)
        lx0, ly0, lx1, ly1 = tx0 * ratio, ty0 * ratio, tx1 * ratio, ty1 * ratio
        ix0, iy0 = int(math.floor(lx0)), int(math.floor(ly0))
        ix1, iy1 = max(ix0 + 1, int(math.ceil(lx1))), max(iy0 + 1, int(math.ceil(ly1)))
        try:
            tile = slide.read_region((int(round(ix0 * lds)), int(round(iy0 * lds))), level, (ix1 - ix0, iy1 - iy0))
        except Exception as err:  # openslide.OpenSlideError: a damaged tile
            raise SlideError(f"{label}: reading level {level} at ({ix0}, {iy0}) failed ({err}); "
                             "the file is probably corrupt") from err
        rgb = Image.fromarray(rgba_to_rgb(tile))
        region = (lx0 - ix0, ly0 - iy0, lx1 - ix0, ly1 - iy0)
        out[ty0:ty1, tx0:tx1] = np.asarray(rgb.resize((tx1 - tx0, ty1 - ty0), Image.Resampling.BOX, box=region))

    n_threads = max(1, min(len(boxes), threads or min(8, os.cpu_count() or 1)))
    with ThreadPoolExecutor(n_threads) as pool, \
            tqdm(total=len(boxes), desc=f"thumbnail {label}".strip(), unit="chunk", disable=not progress,
                 leave=False) as bar:
        for _ in pool.map(read_box, boxes):
            bar.update()
    return out


def otsu_threshold(values: np.ndarray, *, bins: int = 256, value_range: tuple[float, float] = (0.0, 1.0)) -> float:
    """Otsu's threshold: the cut maximising the between-class variance of a histogram.

    For a cut after bin ``k``: ``w0 = sum_{i<=k} p_i``, ``w1 = 1 - w0``,
    ``mu0, mu1`` the class means; ``sigma_b^2 = w0 w1 (mu0 - mu1)^2``. Returns the upper
    edge of the best bin, i.e. class 1 is ``values > t`` (up to bin width). A constant
    input has no between-class variance; the range midpoint is returned.

    >>> x = np.r_[np.full(50, 0.1), np.full(30, 0.7)]
    >>> 0.1 < otsu_threshold(x) < 0.7
    True
    """
    hist, edges = np.histogram(np.asarray(values, np.float64).ravel(), bins=bins, range=value_range)
    total = hist.sum()
    if total == 0:
        return float(sum(value_range) / 2)
    p = hist / total
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)[:-1]
    m0 = np.cumsum(p * centres)[:-1]
    mu_t = (p * centres).sum()
    w1 = 1.0 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu_t * w0 - m0) ** 2 / (w0 * w1)
    between = np.where((w0 > 0) & (w1 > 0), between, -1.0)
    if between.max() <= 0:
        return float(sum(value_range) / 2)
    k = int(np.argmax(between))
    return float(edges[k + 1])


def _disk(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return (xx ** 2 + yy ** 2) <= radius ** 2


@dataclass(frozen=True)
class TissueParams:
    """Parameters of :func:`tissue_mask` (see the module docstring for the method)."""

    min_saturation: float = 0.05
    max_saturation: float = 0.25
    max_grey: float = 235.0
    closing_radius: int = 2
    opening_radius: int = 1
    min_component_px: int = 16


def tissue_mask(rgb: np.ndarray, params: TissueParams = TissueParams()) -> tuple[np.ndarray, float]:
    """Tissue mask of an RGB thumbnail: Otsu on saturation, a grey ceiling, morphology.

    Args:
        rgb: ``(h, w, 3)`` uint8 thumbnail (background white).
        params: thresholds and morphology radii.

    Returns:
        ``(mask (h, w) bool, saturation_threshold)``.

    >>> img = np.full((40, 40, 3), 245, np.uint8); img[10:30, 5:25] = (170, 70, 150)
    >>> mask, cut = tissue_mask(img)
    >>> int(mask.sum()), bool(mask[20, 15]), bool(mask[2, 35])
    (400, True, False)
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"tissue_mask expects an (h, w, 3) RGB image, got shape {rgb.shape}")
    f = rgb.astype(np.float32)
    mx, mn = f.max(axis=2), f.min(axis=2)
    sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1.0), 0.0)
    grey = f.mean(axis=2)
    cut = float(np.clip(otsu_threshold(sat), params.min_saturation, params.max_saturation))
    mask = (sat >= cut) & (grey <= params.max_grey)
    pad = max(params.closing_radius, params.opening_radius) + 1
    m = np.pad(mask, pad, mode="constant")
    if params.closing_radius > 0:
        m = ndimage.binary_closing(m, structure=_disk(params.closing_radius))
    if params.opening_radius > 0:
        side = 2 * params.opening_radius + 1
        m = ndimage.binary_opening(m, structure=np.ones((side, side), bool))
    m = m[pad:-pad, pad:-pad]
    if params.min_component_px > 1 and m.any():
        labels, n = ndimage.label(m)
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        keep = sizes >= params.min_component_px
        keep[0] = False
        m = keep[labels]
    return m, cut


def patch_tissue_fraction(mask: np.ndarray, n_rows: int, n_cols: int, k: int) -> np.ndarray:
    """Mean of ``mask`` over each ``k x k`` block: the tissue fraction of each patch.

    Args:
        mask: ``(h, w)`` bool with ``h >= n_rows * k`` and ``w >= n_cols * k``.
        n_rows, n_cols: the patch grid; patch ``(i, j)`` covers mask rows
            ``[i k, (i + 1) k)`` and columns ``[j k, (j + 1) k)``.

    Returns:
        ``(n_rows, n_cols)`` float32 fractions in [0, 1].

    >>> m = np.zeros((4, 6), bool); m[:2, :3] = True
    >>> patch_tissue_fraction(m, 2, 3, 2).tolist()
    [[1.0, 0.5, 0.0], [0.0, 0.0, 0.0]]
    """
    if n_rows == 0 or n_cols == 0:
        return np.zeros((n_rows, n_cols), np.float32)
    block = np.asarray(mask[: n_rows * k, : n_cols * k], np.float32)
    return block.reshape(n_rows, k, n_cols, k).mean(axis=(1, 3))


def grid_patches(fraction: np.ndarray, patch_l0: int, patches_per_region: int,
                 threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep patches with tissue fraction >= ``threshold`` and number their regions.

    Args:
        fraction: ``(n_rows, n_cols)`` tissue fraction of each grid patch.
        patch_l0: patch side in level-0 pixels.
        patches_per_region: ``n``; region ``(i // n, j // n)`` holds patch ``(i, j)``.
        threshold: minimum tissue fraction.

    Returns:
        ``coords (P, 2)`` int64 level-0 ``(x, y)``, ``region (P,)`` int64 in
        ``0..R-1`` (row-major over kept regions, patches grouped by region and
        row-major inside), ``tissue (P,)`` float32.

    >>> frac = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.9]])
    >>> c, r, t = grid_patches(frac, 10, 2, 0.5)
    >>> c.tolist(), r.tolist()
    ([[0, 0], [20, 10]], [0, 1])
    """
    rows, cols = np.nonzero(fraction >= threshold)
    if rows.size == 0:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    n = patches_per_region
    n_region_cols = -(-fraction.shape[1] // n)
    raw_region = (rows // n) * n_region_cols + cols // n
    order = np.lexsort((cols, rows, raw_region))  # region, then row-major inside it
    rows, cols, raw_region = rows[order], cols[order], raw_region[order]
    _, region = np.unique(raw_region, return_inverse=True)  # renumber 0..R-1, order kept
    coords = np.stack([cols * patch_l0, rows * patch_l0], axis=1).astype(np.int64)
    return coords, region.astype(np.int64), fraction[rows, cols].astype(np.float32)


# --------------------------------------------------------------------------- result + io
@dataclass
class TilingResult:
    """One slide's patch grid (what ``<slide_id>.coords.h5`` holds).

    Attributes:
        slide_id: file name without the slide extension.
        slide_path: absolute path of the slide when tiled.
        coords: ``(P, 2)`` int64 top-left ``(x, y)`` of each patch, level-0 pixels.
        region: ``(P,)`` int64 region index ``0..R-1``.
        tissue: ``(P,)`` float32 tissue fraction of each patch.
        scale: the resolution mapping used.
        patch_size, region_size: sizes in target-magnification pixels (256, 4096).
        patch_size_level0, region_size_level0: the same in level-0 pixels.
        read_level, read_size: pyramid level and square size (in that level's pixels)
            to read one patch from.
        slide_width, slide_height: level-0 dimensions.
        tissue_threshold: the kept-patch threshold.
        mask: ``(h, w)`` bool tissue mask at ``mask_downsample`` level-0 px per pixel
            (only on a fresh tiling; not stored in the file).
        coords_path, overview_path: files written (None when not written).
        timings: seconds spent on each step of a fresh tiling (``thumbnail``, ``mask``,
            ``grid``, ``write``, ``overview``); not stored in the file.
    """

    slide_id: str
    slide_path: str
    coords: np.ndarray
    region: np.ndarray
    tissue: np.ndarray
    scale: SlideScale
    patch_size: int
    region_size: int
    patch_size_level0: int
    region_size_level0: int
    read_level: int
    read_size: int
    slide_width: int
    slide_height: int
    tissue_threshold: float
    extra: dict = field(default_factory=dict)
    mask: np.ndarray | None = None
    mask_downsample: float | None = None
    coords_path: Path | None = None
    overview_path: Path | None = None
    timings: dict = field(default_factory=dict)

    @property
    def n_patches(self) -> int:
        return int(self.coords.shape[0])

    @property
    def n_regions(self) -> int:
        return int(self.region.max()) + 1 if self.region.size else 0

    def attrs(self) -> dict:
        """File attributes (level-0 sizes under the names features files use)."""
        a = dict(
            format=COORDS_FORMAT, format_version=COORDS_VERSION, slide_id=self.slide_id,
            slide_path=self.slide_path, patch_size=self.patch_size_level0,
            region_size=self.region_size_level0, target_patch_size=self.patch_size,
            target_region_size=self.region_size, magnification=self.scale.magnification,
            mpp=self.scale.mpp, mpp_source=self.scale.mpp_source, target_mpp=self.scale.target_mpp,
            downsample=self.scale.downsample, read_level=self.read_level, read_size=self.read_size,
            slide_width=self.slide_width, slide_height=self.slide_height,
            tissue_threshold=self.tissue_threshold, n_patches=self.n_patches, n_regions=self.n_regions,
        )
        a.update(self.extra)
        return a


def write_coords_h5(path: str | os.PathLike, result: TilingResult) -> Path:
    """Write ``coords (P, 2)``, ``region (P,)``, ``tissue (P,)`` and attributes atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_h5(path) as f:              # in memory, then written whole: a full disk fails cleanly
        f.create_dataset("coords", data=np.asarray(result.coords, np.int64))
        f.create_dataset("region", data=np.asarray(result.region, np.int64))
        f.create_dataset("tissue", data=np.asarray(result.tissue, np.float32))
        for k, v in result.attrs().items():
            f.attrs[k] = v
    return path


def read_coords_h5(path: str | os.PathLike) -> TilingResult:
    """Read a ``<slide_id>.coords.h5`` written by :func:`tile_slide`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such coordinates file; run `survmamba tile` on the slide first")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not a readable HDF5 file ({err}); delete it and tile the slide again") from err
    with f:
        a = {k: (v.decode() if isinstance(v, bytes) else v.item() if isinstance(v, np.generic) else v)
             for k, v in f.attrs.items()}
        if a.get("format") != COORDS_FORMAT or not all(k in f for k in ("coords", "region")):
            raise ValueError(f"{path}: not a coordinates file written by `survmamba tile` "
                             "(expects datasets coords, region and attribute format='survmamba-coords')")
        coords, region = f["coords"][()], f["region"][()]
        tissue = f["tissue"][()] if "tissue" in f else np.ones(len(coords), np.float32)
    known = {"format", "format_version", "slide_id", "slide_path", "patch_size", "region_size",
             "target_patch_size", "target_region_size", "magnification", "mpp", "mpp_source", "target_mpp",
             "downsample", "read_level", "read_size", "slide_width", "slide_height", "tissue_threshold",
             "n_patches", "n_regions"}
    scale = SlideScale(mpp=float(a["mpp"]), mpp_source=str(a["mpp_source"]),
                       magnification=float(a["magnification"]), downsample=float(a["downsample"]))
    return TilingResult(
        slide_id=str(a["slide_id"]), slide_path=str(a["slide_path"]), coords=coords, region=region,
        tissue=tissue, scale=scale, patch_size=int(a["target_patch_size"]),
        region_size=int(a["target_region_size"]), patch_size_level0=int(a["patch_size"]),
        region_size_level0=int(a["region_size"]), read_level=int(a["read_level"]),
        read_size=int(a["read_size"]), slide_width=int(a["slide_width"]), slide_height=int(a["slide_height"]),
        tissue_threshold=float(a["tissue_threshold"]),
        extra={k: v for k, v in a.items() if k not in known}, coords_path=path)


# --------------------------------------------------------------------------- overview picture
def draw_overview(slide, result: TilingResult, path: str | os.PathLike, *, max_side: int = 1024,
                  progress: bool = False, thumbnail: np.ndarray | None = None,
                  thumbnail_downsample: float | None = None) -> Path:
    """PNG of the slide with the tissue mask tinted green, kept patches outlined in
    blue and the grid cells of kept regions (clipped to the slide) outlined and
    numbered in red.

    ``thumbnail`` (``(h, w, 3)`` uint8 at ``thumbnail_downsample`` level-0 px per pixel, e.g.
    the one the tissue mask was computed on) is shrunk instead of reading the slide again
    when it is at least as detailed as the overview."""
    w0, h0 = slide.dimensions
    ds = max(w0, h0) / max_side if max(w0, h0) > max_side else 1.0
    if thumbnail is not None and thumbnail_downsample is not None and thumbnail_downsample <= ds:
        size = (max(1, math.ceil(w0 / ds)), max(1, math.ceil(h0 / ds)))
        base = Image.fromarray(thumbnail).resize(size, Image.Resampling.BOX)
    else:
        base = Image.fromarray(read_thumbnail(slide, ds, progress=progress, label=result.slide_id))
    if result.mask is not None:
        mask = Image.fromarray(result.mask.astype(np.uint8) * 255).resize(base.size, Image.Resampling.NEAREST)
        tint = Image.new("RGB", base.size, (0, 170, 60))
        base = Image.composite(Image.blend(base, tint, 0.3), base, mask)
    draw = ImageDraw.Draw(base)
    s = 1.0 / ds
    p = result.patch_size_level0
    for x, y in result.coords:
        draw.rectangle([x * s, y * s, (x + p) * s - 1, (y + p) * s - 1], outline=(30, 60, 200), width=1)
    r0 = result.region_size_level0
    for r in range(result.n_regions):
        x0, y0 = (result.coords[result.region == r][0] // r0) * r0  # the region's grid cell,
        x1, y1 = min(x0 + r0, w0), min(y0 + r0, h0)                 # clipped to the slide
        draw.rectangle([x0 * s, y0 * s, x1 * s - 1, y1 * s - 1], outline=(220, 20, 20), width=3)
        draw.text((x0 * s + 5, y0 * s + 4), str(r), fill=(220, 20, 20))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        base.save(tmp, format="PNG")
    return path


# --------------------------------------------------------------------------- main entry
def tile_slide(path: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
               region_size: int = 4096, patch_size: int = 256, magnification: float = 20.0,
               mpp: float | None = None, base_magnification: float | None = None,
               tissue_threshold: float = 0.5, mask_resolution: int = 8,
               tissue_params: TissueParams = TissueParams(), snap_tolerance: float = 0.025,
               overview: bool = True, overview_size: int = 1024, progress: bool = True) -> TilingResult:
    """Tile one slide: tissue mask, region grid, patches; write coords (and overview PNG).

    Args:
        path: the slide file (anything OpenSlide opens).
        out_dir: where ``<slide_id>.coords.h5`` and ``<slide_id>.overview.png`` go; None
            computes without writing.
        region_size, patch_size: sizes in pixels at ``magnification`` (``region_size``
            must be a multiple of ``patch_size``).
        magnification: target magnification (20 -> ~0.5 um/px).
        mpp, base_magnification: the slide's level-0 resolution, when its metadata
            lacks it or is wrong (explicit values win).
        tissue_threshold: keep patches whose tissue fraction is >= this (0..1).
        mask_resolution: tissue-mask pixels per patch side.
        tissue_params: tissue detector parameters (:class:`TissueParams`).
        snap_tolerance: see :func:`resolve_scale`.
        overview, overview_size: write the PNG, its longest side in pixels.
        progress: show tqdm progress bars.

    Returns:
        the :class:`TilingResult`; ``coords_path``/``overview_path`` set when written.

    Raises:
        FileNotFoundError: no such file. SlideError: unreadable or unsupported file,
        missing resolution. EmptyTissueError: no patch reaches the threshold.
    """
    if patch_size <= 0 or region_size <= 0:
        raise ValueError(f"patch size and region size must be positive, got {patch_size} and {region_size}")
    if region_size % patch_size:
        raise ValueError(f"--region-size {region_size} must be a multiple of --patch-size {patch_size} "
                         "(regions are made of whole patches)")
    if not 0.0 <= tissue_threshold <= 1.0:
        raise ValueError(f"--tissue-threshold must be in [0, 1], got {tissue_threshold}")
    if mask_resolution < 1:
        raise ValueError(f"mask_resolution must be >= 1 pixel per patch side, got {mask_resolution}")
    path = Path(path).expanduser().resolve()
    slide = open_slide(path)
    try:
        slide_id = slide_id_from_path(path)
        scale = resolve_scale(slide.properties, str(path), magnification=magnification, mpp=mpp,
                              base_magnification=base_magnification, snap_tolerance=snap_tolerance)
        p0 = scale.level0(patch_size)
        n = region_size // patch_size
        w0, h0 = slide.dimensions
        n_rows, n_cols = h0 // p0, w0 // p0
        if n_rows == 0 or n_cols == 0:
            raise EmptyTissueError(f"{path}: the slide ({w0} x {h0} level-0 px) is smaller than one patch "
                                   f"({p0} level-0 px at {magnification:g}x); use a smaller --patch-size")
        mask_ds = p0 / mask_resolution
        clock = [time.perf_counter()]
        timings = {}

        def lap(name: str) -> None:
            clock.append(time.perf_counter())
            timings[name] = clock[-1] - clock[-2]

        thumb = read_thumbnail(slide, mask_ds, progress=progress, label=slide_id)
        lap("thumbnail")
        mask, sat_cut = tissue_mask(thumb, tissue_params)
        lap("mask")
        fraction = patch_tissue_fraction(mask, n_rows, n_cols, mask_resolution)
        coords, region, tissue = grid_patches(fraction, p0, n, tissue_threshold)
        if coords.shape[0] == 0:
            raise EmptyTissueError(
                f"{path}: no patch has a tissue fraction >= {tissue_threshold:g} (best patch: "
                f"{float(fraction.max()):.2f}, tissue pixels: {mask.mean():.1%} of the thumbnail); "
                "lower --tissue-threshold, or check that the slide is not blank")
        level = choose_level(slide.level_downsamples, scale.downsample)
        read_size = max(1, int(round(p0 / float(slide.level_downsamples[level]))))
        result = TilingResult(
            slide_id=slide_id, slide_path=str(path), coords=coords, region=region, tissue=tissue,
            scale=scale, patch_size=patch_size, region_size=region_size, patch_size_level0=p0,
            region_size_level0=n * p0, read_level=level, read_size=read_size, slide_width=w0,
            slide_height=h0, tissue_threshold=float(tissue_threshold),
            extra=dict(read_downsample=float(slide.level_downsamples[level]), mask_resolution=mask_resolution,
                       mask_downsample=mask_ds, saturation_threshold=sat_cut,
                       tissue_method="otsu-saturation+grey-ceiling+closing/opening",
                       grid_patches=int(n_rows * n_cols), level_count=int(slide.level_count),
                       **({"slide_quickhash": q} if (q := slide_quickhash(slide)) else {})),
            mask=mask, mask_downsample=mask_ds, timings=timings)
        lap("grid")
        if out_dir is not None:
            out_dir = Path(out_dir)
            result.coords_path = write_coords_h5(out_dir / f"{slide_id}{COORDS_SUFFIX}", result)
            lap("write")
            if overview:
                result.overview_path = draw_overview(slide, result, out_dir / f"{slide_id}.overview.png",
                                                     max_side=overview_size, progress=progress,
                                                     thumbnail=thumb, thumbnail_downsample=mask_ds)
                lap("overview")
        log.info("%s: %d patches in %d regions (patch %d level-0 px, level %d, read %d px)", slide_id,
                 result.n_patches, result.n_regions, p0, level, read_size)
        return result
    finally:
        slide.close()
