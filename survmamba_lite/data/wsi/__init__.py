"""Whole-slide images: tissue detection and tiling (:mod:`.tiling`), frozen patch encoders
(:mod:`.encoders`, and a CTransPath-size stand-in for timing in :mod:`.standin`), feature
extraction into ``features/<slide_id>.h5`` (:mod:`.extract`; the parallel streaming path in
:mod:`.pipeline`, block reads in :mod:`.blocks`) and synthetic pyramidal TIFF slides for
tests and laptops (:mod:`.synthetic`).

Command line: ``survmamba tile`` and ``survmamba extract`` (:mod:`.cli`).
"""
from survmamba_lite.data.wsi.encoders import FrozenPatchEncoder, build_encoder, list_encoders
from survmamba_lite.data.wsi.extract import (ExtractionResult, ExtractionRun, PatchDataset, extract_many,
                                             extract_slide_features, extract_slides, resolve_device, resolve_settings)
from survmamba_lite.data.wsi.synthetic import Ellipse, write_synthetic_slide
from survmamba_lite.data.wsi.tiling import (EmptyTissueError, SlideError, SlideScale, TilingResult, TissueParams,
                                            open_slide, read_coords_h5, resolve_scale, slide_id_from_path,
                                            tile_slide, tissue_mask)

__all__ = [
    "tile_slide", "TilingResult", "SlideScale", "TissueParams", "resolve_scale", "tissue_mask", "read_coords_h5",
    "open_slide", "slide_id_from_path", "SlideError", "EmptyTissueError",
    "FrozenPatchEncoder", "build_encoder", "list_encoders",
    "extract_slide_features", "extract_slides", "extract_many", "ExtractionResult", "ExtractionRun", "PatchDataset",
    "resolve_device", "resolve_settings",
    "write_synthetic_slide", "Ellipse",
]
