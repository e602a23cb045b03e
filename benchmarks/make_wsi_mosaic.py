"""A large whole-slide image for the extraction benchmark, assembled from real tissue.

The public test slides are small (32 and a few hundred tissue patches), so on them a
throughput figure measures start-up. This script writes a slide of TCGA diagnostic size:
a pyramidal, tiled, JPEG-compressed BigTIFF at 0.5 um/px (20x) that OpenSlide opens as
``generic-tiff`` (``openslide.mpp-x`` from the resolution tags), e.g. 50,000 x 40,000 px
with about 45 % tissue, i.e. over 10,000 tissue patches of 256 px.

How it is made
    1. *Tiles from real slides.* Each source slide is tiled at 256 px with the package's
       tissue detector (:func:`survmamba_lite.data.wsi.tile_slide`, the slide taken as
       0.5 um/px); 256-px tiles that are at least ``--min-tissue`` tissue are kept, with
       their 8 rotations and reflections, and tiles without tissue serve as glass.
    2. *Layout.* Random ellipses ("tissue pieces") are added on the 256-px tile grid until
       ``--tissue`` of the grid is covered; each covered tile gets a random tissue tile,
       every other tile a glass tile.
    3. *Level 0* is that mosaic. Its tiles are grid-aligned copies of pool tiles, so each
       distinct tile is JPEG-encoded once (Pillow, 4:2:0 YCbCr, quality ``--quality``; 70
       is what TCGA's Aperio scans use) and its bytes are written wherever it is placed.
    4. *Lower levels* (downsample 4, 16, 64, ... like Aperio's) are the exact box average
       of level 0, composed from each pool tile's own box average and encoded tile by tile.

The TIFF is written by :class:`PyramidTiffWriter`: BigTIFF, one IFD per level, tiles of
256 px, Compression 7 (JPEG, one complete JFIF stream per tile), Photometric YCbCr,
resolution in pixels per centimetre.

Example::

    python benchmarks/make_wsi_mosaic.py --out /tmp/mosaic.tiff --width 50000 --height 40000
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import struct
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

TILE = 256
DEFAULT_SLIDES = [Path(__file__).resolve().parents[2] / "shared" / "data" / "wsi" / name
                  for name in ("cmu-1-small-region.svs", "tcga-cr-7395-01a-01-ts1.svs")]

# TIFF tag types
_SHORT, _LONG, _RATIONAL, _ASCII, _LONG8 = 3, 4, 5, 2, 16


class PyramidTiffWriter:
    """Write a tiled, JPEG-compressed, pyramidal BigTIFF level by level.

    Level 0 must be written first; each :meth:`write_level` appends the level's tiles and
    its IFD and links it after the previous one. Tiles are complete JPEG (JFIF, YCbCr)
    streams of ``tile x tile`` px in row-major order; edge tiles are full-size (readers
    crop them to the image).

    >>> import tempfile, openslide
    >>> p = Path(tempfile.mkdtemp()) / "w.tiff"
    >>> t = encode_jpeg(np.full((TILE, TILE, 3), (200, 120, 160), np.uint8))
    >>> with PyramidTiffWriter(p, mpp=0.5) as w:
    ...     w.write_level(300, 200, [t, t])
    >>> s = openslide.OpenSlide(p); s.dimensions, s.properties["openslide.mpp-x"]
    ((300, 200), '0.5')
    """

    def __init__(self, path: str | os.PathLike, *, mpp: float, tile: int = TILE, description: str = ""):
        self.path, self.mpp, self.tile, self.description = Path(path), float(mpp), int(tile), description
        self._f = None
        self._next_ptr = 8  # where the offset of the next IFD goes (the header's, at first)
        self._level0: tuple[int, int] | None = None

    def __enter__(self) -> "PyramidTiffWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "wb")
        self._f.write(b"II" + struct.pack("<HHHQ", 43, 8, 0, 0))
        return self

    def __exit__(self, *exc) -> None:
        self._f.close()

    def _put(self, data: bytes) -> int:
        pos = self._f.tell()
        self._f.write(data)
        if self._f.tell() % 2:
            self._f.write(b"\0")
        return pos

    def write_level(self, width: int, height: int, tiles: Iterable[bytes]) -> None:
        """Append one level of ``width x height`` px from its JPEG tiles (row-major)."""
        f, t = self._f, self.tile
        n_expected = -(-width // t) * -(-height // t)
        offsets, counts = [], []
        for b in tiles:
            offsets.append(f.tell())
            counts.append(len(b))
            f.write(b)
        if len(offsets) != n_expected:
            raise ValueError(f"level {width} x {height} px needs {n_expected} tiles of {t} px, got {len(offsets)}")
        first = self._level0 is None
        if first:
            self._level0 = (width, height)
        downsample = self._level0[0] / width
        px_per_cm = 1e4 / (self.mpp * downsample)
        res = (int(round(px_per_cm * 1000)), 1000)
        entries: list[tuple[int, int, int, bytes]] = []  # tag, type, count, value bytes

        def add(tag, typ, values):
            fmt = {_SHORT: "H", _LONG: "I", _LONG8: "Q"}.get(typ)
            if typ == _RATIONAL:
                raw = struct.pack(f"<{2 * len(values)}I", *[v for pair in values for v in pair])
            elif typ == _ASCII:
                raw = values.encode("ascii", "replace") + b"\0"
            else:
                raw = struct.pack(f"<{len(values)}{fmt}", *values)
            count = len(raw) if typ == _ASCII else len(values)
            entries.append((tag, typ, count, raw))

        add(254, _LONG, [0 if first else 1])              # NewSubfileType: reduced-resolution image
        add(256, _LONG, [width])
        add(257, _LONG, [height])
        add(258, _SHORT, [8, 8, 8])                        # BitsPerSample
        add(259, _SHORT, [7])                              # Compression: JPEG
        add(262, _SHORT, [6])                              # Photometric: YCbCr
        if first and self.description:
            add(270, _ASCII, self.description)
        add(277, _SHORT, [3])                              # SamplesPerPixel
        add(282, _RATIONAL, [res])                         # XResolution
        add(283, _RATIONAL, [res])                         # YResolution
        add(284, _SHORT, [1])                              # PlanarConfiguration: chunky
        add(296, _SHORT, [3])                              # ResolutionUnit: centimetre
        add(322, _LONG, [t])                               # TileWidth
        add(323, _LONG, [t])                               # TileLength
        add(324, _LONG8, offsets)                          # TileOffsets
        add(325, _LONG8, counts)                           # TileByteCounts
        add(530, _SHORT, [2, 2])                           # YCbCrSubSampling (4:2:0, as Pillow encodes)
        # values longer than 8 bytes live outside the IFD
        placed = [(tag, typ, count, raw if len(raw) <= 8 else struct.pack("<Q", self._put(raw)))
                  for tag, typ, count, raw in entries]
        ifd = self._put(struct.pack("<Q", len(placed)) + b"".join(
            struct.pack("<HHQ", tag, typ, count) + raw.ljust(8, b"\0") for tag, typ, count, raw in placed))
        f.seek(self._next_ptr)
        f.write(struct.pack("<Q", ifd))
        f.seek(0, 2)
        self._next_ptr = ifd + 8 + 20 * len(placed)
        f.write(struct.pack("<Q", 0))


def encode_jpeg(tile: np.ndarray, quality: int = 70) -> bytes:
    """One ``(TILE, TILE, 3)`` uint8 tile as a JFIF stream (4:2:0 YCbCr)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(tile)).save(buf, format="JPEG", quality=quality, subsampling=2)
    return buf.getvalue()


@dataclass
class TilePool:
    """Source tiles: ``tiles (U, TILE, TILE, 3)`` uint8, the first ``n_glass`` of them glass."""

    tiles: np.ndarray
    n_glass: int
    sources: list[str]

    @property
    def n_tissue(self) -> int:
        return int(self.tiles.shape[0]) - self.n_glass


def dihedral(tiles: np.ndarray) -> np.ndarray:
    """The 8 rotations and reflections of each tile: ``(U, S, S, 3) -> (8 U, S, S, 3)``.

    >>> dihedral(np.arange(4).reshape(1, 2, 2, 1)).shape
    (8, 2, 2, 1)
    """
    rots = [np.rot90(tiles, k, axes=(1, 2)) for k in range(4)]
    return np.concatenate(rots + [r[:, :, ::-1] for r in rots])


def collect_tiles(slides: Sequence[Path], *, min_tissue: float = 0.9, max_glass: int = 64,
                  seed: int = 0) -> TilePool:
    """Tissue and glass tiles of ``TILE`` px from real slides (each taken as 0.5 um/px)."""
    from survmamba_lite.data.wsi import open_slide, tile_slide
    from survmamba_lite.data.wsi.tiling import patch_tissue_fraction, rgba_to_rgb

    tissue, glass = [], []
    for path in slides:
        grid = tile_slide(path, None, patch_size=TILE, region_size=TILE, mpp=0.5, tissue_threshold=min_tissue,
                          overview=False, progress=False)
        n_rows, n_cols = grid.slide_height // TILE, grid.slide_width // TILE
        frac = patch_tissue_fraction(grid.mask, n_rows, n_cols, int(grid.extra["mask_resolution"]))
        slide = open_slide(path)
        try:  # the source slides are small: read level 0 once
            image = rgba_to_rgb(slide.read_region((0, 0), 0, (n_cols * TILE, n_rows * TILE)))
        finally:
            slide.close()
        tiles = image.reshape(n_rows, TILE, n_cols, TILE, 3).swapaxes(1, 2)  # (rows, cols, TILE, TILE, 3)
        tissue.extend(tiles[int(y) // TILE, int(x) // TILE] for x, y in grid.coords)
        glass.extend(t for t in tiles[frac == 0] if t.mean() > 220)
    if not tissue:
        raise SystemExit(f"no tile of {[str(s) for s in slides]} is {min_tissue:.0%} tissue; lower --min-tissue")
    rng = np.random.default_rng(seed)
    if len(glass) > max_glass:
        glass = [glass[i] for i in sorted(rng.choice(len(glass), max_glass, replace=False))]
    if not glass:  # no background on the sources: near-white noise
        glass = [np.clip(rng.normal(242, 3, (TILE, TILE, 3)), 0, 255).astype(np.uint8) for _ in range(4)]
    g, t = dihedral(np.stack(glass)), dihedral(np.stack(tissue))
    return TilePool(np.concatenate([g, t]), len(g), [Path(s).name for s in slides])


def plan_layout(n_rows: int, n_cols: int, tissue: float, rng: np.random.Generator) -> np.ndarray:
    """Tissue pieces on the tile grid: random ellipses added until ``tissue`` of it is covered.

    Returns:
        ``(n_rows, n_cols)`` bool, True where a tile is tissue.

    >>> m = plan_layout(40, 50, 0.4, np.random.default_rng(0))
    >>> m.shape, 0.4 <= m.mean() < 0.55
    ((40, 50), True)
    """
    if not 0.0 < tissue < 0.9:
        raise ValueError(f"--tissue {tissue}: must lie in (0, 0.9)")
    yy, xx = np.mgrid[0:n_rows, 0:n_cols]
    mask = np.zeros((n_rows, n_cols), bool)
    while mask.mean() < tissue:
        cy, cx = rng.uniform(0.1, 0.9) * n_rows, rng.uniform(0.1, 0.9) * n_cols
        ry, rx = rng.uniform(0.08, 0.22) * n_rows, rng.uniform(0.08, 0.22) * n_cols
        mask |= ((yy + 0.5 - cy) / ry) ** 2 + ((xx + 0.5 - cx) / rx) ** 2 <= 1.0
    return mask


def box_pieces(tiles: np.ndarray, factor: int) -> np.ndarray:
    """Box average of each tile over ``factor x factor`` blocks, rounded: ``(U, S/f, S/f, 3)`` uint8.

    >>> box_pieces(np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1), 2)[0, ..., 0].tolist()
    [[2, 4], [10, 12]]
    """
    u, s = tiles.shape[0], tiles.shape[1] // factor
    out = np.empty((u, s, s, 3), np.uint8)
    for i in range(0, u, 256):  # bounded memory
        block = tiles[i:i + 256].reshape(-1, s, factor, s, factor, 3).astype(np.float32)
        out[i:i + 256] = np.rint(block.mean(axis=(2, 4)))
    return out


def level_tiles(index: np.ndarray, pieces: np.ndarray, width: int, height: int, quality: int,
                pool: ThreadPoolExecutor) -> Iterable[bytes]:
    """JPEG tiles (row-major) of a reduced level whose pixels are ``pieces[index]`` mosaics.

    Args:
        index: ``(n_rows, n_cols)`` pool index of each level-0 tile.
        pieces: ``(U, s, s, 3)`` each pool tile reduced to ``s`` px (``s`` divides ``TILE``).
        width, height: the level's size in pixels.
    """
    s = pieces.shape[1]
    per_tile = TILE // s  # level-0 tiles per level tile side
    n_tc, n_tr = -(-width // TILE), -(-height // TILE)
    for tr in range(n_tr):
        band_idx = index[tr * per_tile:(tr + 1) * per_tile]
        band = pieces[band_idx]                                        # (r, n_cols, s, s, 3)
        r, c = band_idx.shape
        band = band.transpose(0, 2, 1, 3, 4).reshape(r * s, c * s, 3)
        canvas = np.full((TILE, n_tc * TILE, 3), 255, np.uint8)
        h, w = min(TILE, band.shape[0]), min(n_tc * TILE, band.shape[1])
        canvas[:h, :w] = band[:h, :w]
        yield from pool.map(lambda j: encode_jpeg(canvas[:, j * TILE:(j + 1) * TILE], quality), range(n_tc))


def write_mosaic(out: str | os.PathLike, *, width: int, height: int, slides: Sequence[Path] = DEFAULT_SLIDES,
                 tissue: float = 0.45, quality: int = 70, level_factor: int = 4, min_level_side: int = 512,
                 min_tissue: float = 0.9, seed: int = 0, threads: int | None = None) -> dict:
    """Write the mosaic slide to ``out``; returns what was made (sizes, levels, tile counts, seconds)."""
    start = time.perf_counter()
    if width < TILE or height < TILE:
        raise ValueError(f"--width/--height must be at least {TILE} px")
    missing = [str(s) for s in slides if not Path(s).is_file()]
    if missing:
        raise FileNotFoundError(f"source slides not found: {missing}; pass --slides")
    rng = np.random.default_rng(seed)
    pool_tiles = collect_tiles([Path(s) for s in slides], min_tissue=min_tissue, seed=seed)
    n_cols, n_rows = -(-width // TILE), -(-height // TILE)
    is_tissue = plan_layout(n_rows, n_cols, tissue, rng)
    index = np.where(is_tissue, pool_tiles.n_glass + rng.integers(0, pool_tiles.n_tissue, is_tissue.shape),
                     rng.integers(0, pool_tiles.n_glass, is_tissue.shape))
    # tiles reaching into the right/bottom margin beyond the image: their visible part is what counts
    visible = np.zeros_like(is_tissue)
    visible[: height // TILE, : width // TILE] = True
    levels = [1]
    while max(width, height) / (levels[-1] * level_factor) >= min_level_side and levels[-1] * level_factor <= TILE:
        levels.append(levels[-1] * level_factor)
    description = (f"survmamba benchmark mosaic {width}x{height} px, {0.5} um/px (20x), JPEG Q={quality} "
                   f"tiles of {TILE} px; tissue tiles from {', '.join(pool_tiles.sources)}; seed {seed}")
    with ThreadPoolExecutor(threads or os.cpu_count() or 1) as pool:
        encoded = list(pool.map(lambda t: encode_jpeg(t, quality), pool_tiles.tiles))
        with PyramidTiffWriter(out, mpp=0.5, description=description) as w:
            w.write_level(width, height, (encoded[i] for i in index.ravel()))
            for ds in levels[1:]:
                pieces = box_pieces(pool_tiles.tiles, ds)
                lw, lh = math.ceil(width / ds), math.ceil(height / ds)
                w.write_level(lw, lh, level_tiles(index, pieces, lw, lh, quality, pool))
    return dict(file=Path(out).name, width=width, height=height, mpp=0.5, magnification=20.0, tile=TILE,
                quality=quality, level_downsamples=levels, tissue_fraction_planned=float(is_tissue.mean()),
                tissue_tiles_full=int((is_tissue & visible).sum()), grid_tiles=int(visible.sum()),
                pool_tissue_tiles=pool_tiles.n_tissue, pool_glass_tiles=pool_tiles.n_glass,
                sources=pool_tiles.sources, seed=seed, file_bytes=Path(out).stat().st_size,
                seconds=time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="output .tiff")
    ap.add_argument("--width", type=int, default=50_000, help="level-0 width in px")
    ap.add_argument("--height", type=int, default=40_000, help="level-0 height in px")
    ap.add_argument("--slides", type=Path, nargs="+", default=DEFAULT_SLIDES, help="real slides to take tissue from")
    ap.add_argument("--tissue", type=float, default=0.45, help="fraction of the tile grid covered by tissue")
    ap.add_argument("--min-tissue", type=float, default=0.9, help="tissue fraction of a source tile to use it")
    ap.add_argument("--quality", type=int, default=70, help="JPEG quality of the tiles")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="JPEG encoding threads (default: all cores)")
    args = ap.parse_args(argv)
    try:
        info = write_mosaic(args.out, width=args.width, height=args.height, slides=args.slides, tissue=args.tissue,
                            quality=args.quality, min_tissue=args.min_tissue, seed=args.seed, threads=args.threads)
    except (FileNotFoundError, ValueError) as err:
        print(f"make_wsi_mosaic: {err}", file=sys.stderr)
        return 2
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
