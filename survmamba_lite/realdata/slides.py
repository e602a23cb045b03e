"""The real slides through the slide pipeline: tiling, EfficientNet-Lite0 features, previews."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from survmamba_lite.realdata.catalogue import SLIDES, log

__all__ = ["run_slide_check"]


def run_slide_check(data_root: str | os.PathLike, work: str | os.PathLike, out: str | os.PathLike, *,
                    encoder: str = "efficientnet-lite0", device: str = "cpu",
                    log: Callable[[str], None] = log) -> list[dict]:
    """Tile and encode the real slides of :data:`SLIDES`; write overview and feature-map PNGs
    and ``slides.json`` (patch counts, resolution, timings, throughput) under ``out``."""
    from PIL import Image

    from survmamba_lite.data.features_h5 import read_features_h5
    from survmamba_lite.data.wsi.preview import draw_feature_map, feature_pca_rgb, save_small_png
    from survmamba_lite.data.wsi.extract import extract_slide_features
    from survmamba_lite.data.wsi.tiling import tile_slide

    root, work, out = Path(data_root), Path(work) / "wsi", Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for name, kwargs in SLIDES:
        slide = root / "wsi" / name
        if not slide.is_file():
            raise FileNotFoundError(f"{slide}: no such slide; --data-root must hold wsi/{name}")
        start = time.perf_counter()
        grid = tile_slide(slide, work / "tiles", overview=True, overview_size=768, progress=False, **kwargs)
        tile_s = time.perf_counter() - start
        save_small_png(Image.open(grid.overview_path), out / f"slide_{grid.slide_id}_overview.png")
        res = extract_slide_features(grid.coords_path, work / "features", encoder=encoder, device=device,
                                     overwrite=True, progress=False)
        sf = read_features_h5(res.features_path)
        rgb, ratio = feature_pca_rgb(sf.features)
        draw_feature_map(slide, sf.coords, grid.patch_size_level0, rgb, out / f"slide_{grid.slide_id}_features.png")
        rec = {
            "slide": name, "slide_id": grid.slide_id, "width": grid.slide_width, "height": grid.slide_height,
            "mpp": grid.scale.mpp, "mpp_source": grid.scale.mpp_source, "tiling_args": kwargs,
            "magnification": grid.scale.magnification, "patch_size_level0": grid.patch_size_level0,
            "region_size_level0": grid.region_size_level0, "grid_patches": int(grid.extra["grid_patches"]),
            "n_patches": grid.n_patches, "n_regions": grid.n_regions,
            "patches_per_region": np.bincount(grid.region).tolist(),
            "encoder": encoder, "feature_dim": int(sf.features.shape[1]), "device": res.device,
            "tile_seconds": round(tile_s, 2), "extract_seconds": round(res.seconds, 2),
            "patches_per_second": round(res.patches_per_second, 2),
            "pca_explained_variance_ratio": [round(float(v), 4) for v in ratio],
            "overview_png": f"slide_{grid.slide_id}_overview.png", "features_png": f"slide_{grid.slide_id}_features.png",
        }
        records.append(rec)
        log(f"[slide {grid.slide_id}] {grid.n_patches} patches in {grid.n_regions} region(s) of "
            f"{grid.slide_width}x{grid.slide_height} px (mpp {grid.scale.mpp:.3g} from {grid.scale.mpp_source}); "
            f"tiled in {tile_s:.1f} s, {encoder} {sf.features.shape[1]}-d features at "
            f"{res.patches_per_second:.1f} patches/s on {res.device}; PCA-3 explains "
            f"{ratio.sum():.1%} of the feature variance")
    (out / "slides.json").write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
    return records
