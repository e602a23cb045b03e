"""Whole-slide images: tissue detection and tiling (:mod:`.tiling`), frozen patch encoders
(:mod:`.encoders`), feature extraction into ``features/<slide_id>.h5`` (:mod:`.extract`) and
synthetic pyramidal TIFF slides for tests and laptops (:mod:`.synthetic`).

Command line: ``survmamba tile`` and ``survmamba extract`` (:mod:`.cli`).
"""
from survmamba_lite.data.wsi.encoders import FrozenPatchEncoder, build_encoder, list_encoders
from survmamba_lite.data.wsi.extract import (ExtractionResult, PatchDataset, extract_many, extract_slide_features,
                                             resolve_device)
from survmamba_lite.data.wsi.synthetic import Ellipse, write_synthetic_slide
from survmamba_lite.data.wsi.tiling import (EmptyTissueError, SlideError, SlideScale, TilingResult, TissueParams,
                                            open_slide, read_coords_h5, resolve_scale, slide_id_from_path,
                                            tile_slide, tissue_mask)

__all__ = [
    "tile_slide", "TilingResult", "SlideScale", "TissueParams", "resolve_scale", "tissue_mask", "read_coords_h5",
    "open_slide", "slide_id_from_path", "SlideError", "EmptyTissueError",
    "FrozenPatchEncoder", "build_encoder", "list_encoders",
    "extract_slide_features", "extract_many", "ExtractionResult", "PatchDataset", "resolve_device",
    "write_synthetic_slide", "Ellipse",
]
