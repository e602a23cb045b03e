"""Slide tiling: resolution mapping, tissue detection, region/patch grid, files, errors, CLI."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from survmamba_lite.cli import main as survmamba_main
from survmamba_lite.data.wsi.synthetic import Ellipse, ellipse_fraction, write_synthetic_slide
from survmamba_lite.data.wsi.tiling import (EmptyTissueError, SlideError, choose_level, otsu_threshold,
                                            patch_tissue_fraction, read_coords_h5, resolve_scale,
                                            slide_id_from_path, tile_slide)

WSI_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "wsi"
CMU = WSI_DIR / "cmu-1-small-region.svs"
TCGA = WSI_DIR / "tcga-cr-7395-01a-01-ts1.svs"

BLOBS = [Ellipse(1300, 1000, 700, 550), Ellipse(4100, 2300, 450, 380)]


def need_real_slides():
    if not (CMU.is_file() and TCGA.is_file()):
        pytest.skip(f"real slides not found under {WSI_DIR} (public OpenSlide/TCGA test slides)")


@pytest.fixture(scope="module")
def slide_05(tmp_path_factory) -> Path:
    """5000 x 3000 px at 0.5 um/px (20x), two tissue blobs, 3 pyramid levels."""
    return write_synthetic_slide(tmp_path_factory.mktemp("syn") / "syn-20x.tiff", width=5000, height=3000,
                                 mpp=0.5, blobs=BLOBS, levels=3)


@pytest.fixture(scope="module")
def tiled_05(slide_05, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiles")
    return tile_slide(slide_05, out, region_size=1024, patch_size=256, progress=False)


# --------------------------------------------------------------------------- pure functions
def _otsu_bruteforce(values: np.ndarray, edges: np.ndarray) -> float:
    """Slow twin: for each candidate cut compute the two classes' variance directly."""
    best, best_t = -1.0, None
    for t in edges[1:-1]:
        lo, hi = values[values < t], values[values >= t]
        if lo.size == 0 or hi.size == 0:
            continue
        w0, w1 = lo.size / values.size, hi.size / values.size
        between = w0 * w1 * (lo.mean() - hi.mean()) ** 2
        if between > best + 1e-12:
            best, best_t = between, t
    return float(best_t)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_otsu_matches_bruteforce(seed):
    rng = np.random.default_rng(seed)
    # values on bin centres so histogram and raw-value computations agree exactly
    centres = (np.arange(64) + 0.5) / 64
    values = np.r_[rng.choice(centres[:20], 400), rng.choice(centres[30:], 250 + 50 * seed)]
    t = otsu_threshold(values, bins=64)
    ref = _otsu_bruteforce(values, np.linspace(0, 1, 65))
    print(f"otsu {t:.5f} brute force {ref:.5f}")
    assert t == pytest.approx(ref, abs=1e-9)


def test_otsu_constant_input_has_no_cut():
    assert otsu_threshold(np.full(100, 0.02)) == 0.5


def test_resolve_scale_sources_and_snapping():
    s = resolve_scale({"openslide.mpp-x": "0.499", "openslide.objective-power": "20"}, "a.svs")
    assert (s.mpp_source, s.downsample, s.level0(256), s.level0(4096)) == ("openslide.mpp-x", 1.0, 256, 4096)
    s = resolve_scale({"openslide.mpp-x": "0.2520"}, "b.svs")  # a 40x Aperio scan
    assert s.level0(256) == 512
    s = resolve_scale({"openslide.objective-power": "40"}, "c.svs")
    assert (s.mpp, s.mpp_source, s.level0(256)) == (0.25, "openslide.objective-power", 512)
    s = resolve_scale({"openslide.mpp-x": "0.25"}, "d.svs", magnification=10)
    assert s.level0(256) == 1024
    s = resolve_scale({}, "e.svs", mpp=0.3)  # 0.5 / 0.3 = 1.667: no integer nearby, kept
    assert s.level0(256) == round(256 * 0.5 / 0.3) == 427
    s = resolve_scale({"openslide.mpp-x": "0.25"}, "f.svs", base_magnification=20)  # explicit wins
    assert (s.mpp, s.mpp_source, s.downsample) == (0.5, "user-base-magnification", 1.0)


def test_resolve_scale_errors_name_slide_and_options():
    with pytest.raises(SlideError, match=r"x\.svs.*--mpp.*--base-magnification"):
        resolve_scale({"openslide.vendor": "aperio"}, "x.svs")
    with pytest.raises(SlideError, match=r"y\.svs.*coarser.*--magnification 10"):
        resolve_scale({"openslide.mpp-x": "1.0"}, "y.svs", magnification=20)
    with pytest.raises(ValueError, match="not both"):
        resolve_scale({}, "z.svs", mpp=0.5, base_magnification=20)


def test_choose_level_upsamples_at_most_one_percent():
    lds = [1.0, 4.0003, 16.001, 32.01]
    wanted = (1.0, 2.0, 3.9, 3.99, 4.0, 15.0, 16.0, 100.0)
    assert [choose_level(lds, d) for d in wanted] == [0, 0, 0, 1, 1, 1, 2, 3]


def test_patch_tissue_fraction_against_loop():
    rng = np.random.default_rng(0)
    mask = rng.random((37, 53)) < 0.4
    k = 4
    frac = patch_tissue_fraction(mask, 37 // k, 53 // k, k)
    ref = np.array([[mask[i * k:(i + 1) * k, j * k:(j + 1) * k].mean() for j in range(53 // k)]
                    for i in range(37 // k)])
    np.testing.assert_allclose(frac, ref)


def test_slide_id_strips_only_the_extension():
    assert slide_id_from_path("/x/TCGA-2F-A9KO-01Z-00-DX1.195576CF-B739-4BD9.svs") == \
        "TCGA-2F-A9KO-01Z-00-DX1.195576CF-B739-4BD9"
    assert slide_id_from_path("a.b.TIFF") == "a.b"


# --------------------------------------------------------------------------- synthetic slides
def test_grid_inside_bounds_and_aligned(tiled_05):
    r = tiled_05
    p0, r0 = r.patch_size_level0, r.region_size_level0
    assert (p0, r0, r.read_level, r.read_size) == (256, 1024, 0, 256)
    x, y = r.coords[:, 0], r.coords[:, 1]
    assert (x >= 0).all() and (y >= 0).all()
    assert (x + p0 <= 5000).all() and (y + p0 <= 3000).all()
    assert (x % p0 == 0).all() and (y % p0 == 0).all()
    assert len(np.unique(r.coords, axis=0)) == r.n_patches


def test_regions_contiguous_and_patches_grouped(tiled_05):
    r = tiled_05
    r0 = r.region_size_level0
    assert np.array_equal(np.unique(r.region), np.arange(r.n_regions))
    assert (np.diff(r.region) >= 0).all(), "patches must be grouped by region"
    cells = r.coords // r0  # (P, 2) region grid cell of each patch
    per_region = [np.unique(cells[r.region == k], axis=0) for k in range(r.n_regions)]
    assert all(len(c) == 1 for c in per_region), "a region mixes patches from two grid cells"
    firsts = np.array([c[0] for c in per_region])
    assert len(np.unique(firsts, axis=0)) == r.n_regions
    order = np.lexsort((firsts[:, 0], firsts[:, 1]))  # row-major: by y cell, then x cell
    assert np.array_equal(order, np.arange(r.n_regions))
    # independent count: the cells that hold a kept patch
    assert r.n_regions == len({(int(a), int(b)) for a, b in cells})


def test_tissue_detection_matches_drawn_blobs(tiled_05):
    r = tiled_05
    p0 = r.patch_size_level0
    kept = {(int(x), int(y)) for x, y in r.coords}
    n_checked = 0
    for y in range(0, 3000 - p0 + 1, p0):
        for x in range(0, 5000 - p0 + 1, p0):
            truth = ellipse_fraction(BLOBS, x, y, p0)
            if truth >= 0.65:
                assert (x, y) in kept, f"patch ({x}, {y}) is {truth:.0%} tissue but was dropped"
                n_checked += 1
            elif truth <= 0.35:
                assert (x, y) not in kept, f"patch ({x}, {y}) is {truth:.0%} tissue but was kept"
    assert n_checked > 15
    # the tissue fraction stored per patch follows the geometry
    truth = np.array([ellipse_fraction(BLOBS, x, y, p0) for x, y in r.coords])
    assert np.abs(truth - r.tissue).max() < 0.3
    assert (r.tissue >= 0.5).all()


def test_coords_file_and_overview(tiled_05):
    r = tiled_05
    back = read_coords_h5(r.coords_path)
    np.testing.assert_array_equal(back.coords, r.coords)
    np.testing.assert_array_equal(back.region, r.region)
    assert back.patch_size_level0 == 256 and back.region_size_level0 == 1024
    assert back.scale == r.scale and back.read_level == r.read_level and back.read_size == r.read_size
    assert back.slide_path == r.slide_path and back.slide_id == "syn-20x"
    png = np.asarray(Image.open(r.overview_path).convert("RGB"))
    assert png.shape[:2] == (615, 1024)  # ceil(3000 / (5000 / 1024)) x 1024
    red = (png[..., 0] > 200) & (png[..., 1] < 60) & (png[..., 2] < 60)
    assert red.sum() > 100, "region grid not drawn"


def test_other_magnification_rescales(tmp_path):
    """0.25 um/px (40x) slide at 20x: patches span 512 level-0 px, read from level 1 at 256 px."""
    slide = write_synthetic_slide(tmp_path / "s40.tiff", width=4000, height=2600, mpp=0.25,
                                  blobs=[Ellipse(2000, 1300, 1500, 1000)], levels=3)
    r = tile_slide(slide, tmp_path / "out", region_size=2048, patch_size=256, progress=False)
    assert (r.patch_size_level0, r.region_size_level0, r.read_level, r.read_size) == (512, 4096, 1, 256)
    assert (r.coords % 512 == 0).all() and (r.coords[:, 0] + 512 <= 4000).all()
    assert (r.coords[:, 1] + 512 <= 2600).all()
    # 10x on the same slide: 1024 level-0 px, read from level 2
    r10 = tile_slide(slide, None, region_size=1024, patch_size=256, magnification=10, progress=False)
    assert (r10.patch_size_level0, r10.read_level, r10.read_size) == (1024, 2, 256)


def test_slide_smaller_than_one_region(tmp_path):
    slide = write_synthetic_slide(tmp_path / "small.tiff", width=1100, height=700, mpp=0.5,
                                  blobs=[Ellipse(550, 350, 600, 400)], levels=2)
    r = tile_slide(slide, tmp_path, progress=False)  # 4096-px regions on a 1100 x 700 slide
    assert r.n_regions == 1 and (r.region == 0).all()
    assert r.n_patches == (1100 // 256) * (700 // 256) == 8
    assert (r.coords[:, 0] + 256 <= 1100).all() and (r.coords[:, 1] + 256 <= 700).all()


def test_threshold_zero_keeps_every_grid_patch(slide_05):
    r = tile_slide(slide_05, None, region_size=1024, tissue_threshold=0.0, progress=False)
    assert r.n_patches == (5000 // 256) * (3000 // 256)
    assert r.n_regions == 5 * 3  # ceil(5000 / 1024) x ceil(3000 / 1024)


def test_blank_slide_is_empty_tissue_error(tmp_path):
    slide = write_synthetic_slide(tmp_path / "blank.tiff", width=1200, height=900, blobs=[], levels=2)
    with pytest.raises(EmptyTissueError, match=r"blank\.tiff.*--tissue-threshold"):
        tile_slide(slide, tmp_path, progress=False)


def test_slide_without_mpp_needs_an_option(tmp_path):
    slide = write_synthetic_slide(tmp_path / "nompp.tiff", width=1200, height=900, mpp=None, levels=2)
    with pytest.raises(SlideError, match=r"nompp\.tiff.*--mpp.*--base-magnification"):
        tile_slide(slide, tmp_path, progress=False)
    r = tile_slide(slide, tmp_path, mpp=0.5, progress=False)
    assert r.scale.mpp_source == "user-mpp" and r.n_patches > 0


def test_corrupt_unsupported_and_missing_files(tmp_path):
    corrupt = tmp_path / "broken.svs"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(SlideError, match=r"broken\.svs"):
        tile_slide(corrupt, tmp_path, progress=False)
    text = tmp_path / "notes.txt"
    text.write_text("not a slide\n")
    with pytest.raises(SlideError, match=r"notes\.txt.*not a whole-slide format"):
        tile_slide(text, tmp_path, progress=False)
    truncated = tmp_path / "cut.tiff"
    full = write_synthetic_slide(tmp_path / "full.tiff", width=800, height=600, levels=1).read_bytes()
    truncated.write_bytes(full[: len(full) // 3])
    with pytest.raises(SlideError, match=r"cut\.tiff"):
        tile_slide(truncated, tmp_path, progress=False)
    with pytest.raises(FileNotFoundError, match=r"nothere\.svs"):
        tile_slide(tmp_path / "nothere.svs", tmp_path, progress=False)


def test_bad_geometry_arguments(slide_05):
    with pytest.raises(ValueError, match="multiple of --patch-size"):
        tile_slide(slide_05, None, region_size=1000, patch_size=256, progress=False)
    with pytest.raises(ValueError, match="tissue-threshold"):
        tile_slide(slide_05, None, tissue_threshold=1.5, progress=False)


def test_cli_tile_writes_resumes_and_reports(slide_05, tmp_path, capsys):
    out = tmp_path / "tiles"
    assert survmamba_main(["tile", str(slide_05), "--out", str(out), "--region-size", "1024", "--quiet"]) == 0
    assert (out / "syn-20x.coords.h5").is_file() and (out / "syn-20x.overview.png").is_file()
    assert "patches in" in capsys.readouterr().out
    assert survmamba_main(["tile", str(slide_05), "--out", str(out), "--quiet"]) == 0
    assert "skipped" in capsys.readouterr().out
    bad = tmp_path / "bad.svs"
    bad.write_bytes(b"\0" * 1000)
    assert survmamba_main(["tile", str(bad), "--out", str(out), "--quiet"]) == 2
    assert "bad.svs" in capsys.readouterr().err
    # many slides: the good one is done, the bad one listed, exit status 2
    assert survmamba_main(["tile", str(bad), str(slide_05), "--out", str(tmp_path / "t2"),
                           "--region-size", "1024", "--quiet"]) == 2
    assert (tmp_path / "t2" / "syn-20x.coords.h5").is_file()
    assert "1 of 2 slides failed" in capsys.readouterr().err


# --------------------------------------------------------------------------- real slides
@pytest.mark.realdata
def test_real_cmu_slide(tmp_path):
    need_real_slides()
    r = tile_slide(CMU, tmp_path, progress=False)
    print(f"cmu: {r.n_patches} patches, {r.n_regions} regions, saturation cut {r.extra['saturation_threshold']:.3f}")
    assert (r.slide_width, r.slide_height) == (2220, 2967)
    assert r.scale.mpp == pytest.approx(0.499) and r.scale.mpp_source == "openslide.mpp-x"
    assert (r.patch_size_level0, r.read_level, r.read_size) == (256, 0, 256)
    assert r.n_regions == 1  # the slide is smaller than one 4096-px region
    assert 20 <= r.n_patches <= (2220 // 256) * (2967 // 256)
    assert (r.coords[:, 0] + 256 <= 2220).all() and (r.coords[:, 1] + 256 <= 2967).all()
    assert r.overview_path.is_file()


@pytest.mark.realdata
def test_real_tcga_slide_without_mpp(tmp_path):
    need_real_slides()
    with pytest.raises(SlideError, match=r"tcga-cr-7395-01a-01-ts1\.svs.*--mpp.*--base-magnification"):
        tile_slide(TCGA, tmp_path, progress=False)
    r = tile_slide(TCGA, tmp_path, base_magnification=40, region_size=1024, progress=False)
    print(f"tcga at 40x base: {r.n_patches} patches, {r.n_regions} regions")
    # 20x from a 40x base: 512-px level-0 patches read at level 1 (downsample 2.0005)
    assert (r.patch_size_level0, r.read_level, r.read_size) == (512, 1, 256)
    assert (r.coords[:, 0] + 512 <= 4443).all() and (r.coords[:, 1] + 512 <= 3567).all()
    assert r.n_patches > 20 and r.n_regions >= 2
