"""Files exactly as CLAM (53e2409) and TRIDENT (a91fa84) write them, for the import tests.

Each writer follows the tool's own code path (the source file and what it does are named), so
a test that imports these files tests the real formats: dataset names and order, dtypes,
chunk shapes, resizable first dimension, attributes (TRIDENT's JSON dicts and 'None'
strings), empty slides.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import torch


def _save_hdf5(path, assets: dict, attrs: dict | None, mode: str, chunk_rows: int | None) -> None:
    """CLAM ``wsi_core/wsi_utils.save_hdf5`` (chunk_rows=1), CLAM ``utils/file_utils.save_hdf5`` (32) and
    TRIDENT ``trident/IO.save_h5`` (1): create a resizable dataset on first write, else resize and append."""
    with h5py.File(path, mode) as f:
        for key, val in assets.items():
            if key not in f:
                d = f.create_dataset(key, shape=val.shape, maxshape=(None,) + val.shape[1:],
                                     chunks=(chunk_rows,) + val.shape[1:], dtype=val.dtype)
                d[:] = val
                for k, v in ((attrs or {}).get(key) or {}).items():
                    if isinstance(v, dict):           # TRIDENT: dicts as JSON
                        v = json.dumps(v)
                    elif v is None:                   # TRIDENT: None as 'None'
                        v = "None"
                    d.attrs[k] = v
            else:
                d = f[key]
                d.resize(len(d) + val.shape[0], axis=0)
                d[-val.shape[0]:] = val


# --------------------------------------------------------------------------- CLAM
def clam_patches(patches_dir, name: str, coords: np.ndarray, *, patch_size=256, patch_level=0,
                 downsample=(1.0, 1.0), level_dim=(20000, 15000)) -> Path:
    """``create_patches_fp.py`` -> ``WholeSlideImage.process_contours``: ``patches/<name>.h5``; coordinates
    (int64 from ``np.arange``) written contour by contour, attributes from the first contour."""
    path = Path(patches_dir) / f"{name}.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    coords = np.asarray(coords, np.int64)
    attr = {"patch_size": patch_size, "patch_level": patch_level, "downsample": tuple(downsample),
            "downsampled_level_dim": tuple(np.array(level_dim)), "level_dim": tuple(level_dim), "name": name,
            "save_path": str(path.parent)}
    half = max(1, len(coords) // 2)
    _save_hdf5(path, {"coords": coords[:half]}, {"coords": attr}, "w", 1)
    if len(coords) > half:
        _save_hdf5(path, {"coords": coords[half:]}, None, "a", 1)
    return path


def clam_features(feat_dir, name: str, features: np.ndarray, coords: np.ndarray, *, batch_size=256) -> tuple[Path, Path]:
    """``extract_features_fp.py``: ``h5_files/<name>.h5`` batch by batch (features float32, coords int32,
    ``file_utils.save_hdf5`` chunks of 32, no attributes), then ``pt_files/<name>.pt`` = torch.save of
    the features read back."""
    feat_dir = Path(feat_dir)
    (feat_dir / "h5_files").mkdir(parents=True, exist_ok=True)
    (feat_dir / "pt_files").mkdir(parents=True, exist_ok=True)
    h5 = feat_dir / "h5_files" / f"{name}.h5"
    mode = "w"
    for s in range(0, len(features), batch_size):
        _save_hdf5(h5, {"features": features[s:s + batch_size].astype(np.float32),
                        "coords": np.asarray(coords[s:s + batch_size]).astype(np.int32)}, None, mode, 32)
        mode = "a"
    with h5py.File(h5, "r") as f:
        back = f["features"][:]
    pt = feat_dir / "pt_files" / f"{name}.pt"
    torch.save(torch.from_numpy(back), pt)
    return h5, pt


# --------------------------------------------------------------------------- TRIDENT
def trident_coords(job_dir, name: str, coords, *, patch_size=256, src_mag=20, target_mag=20, overlap=0,
                   width=20000, height=15000, legacy=False, extra: dict | None = None) -> Path:
    """``WSI.extract_tissue_coords`` -> ``IO.coords_to_h5``: ``<job>/<mag>x_<ps>px_<ov>px_overlap/patches/
    <name>_patches.h5``. ``legacy``: a release before 2025-08 (no level0_width/height; an empty slide
    saved as ``np.array([])``, shape (0,))."""
    save_coords = Path(job_dir) / f"{target_mag}x_{patch_size}px_{overlap}px_overlap"
    path = save_coords / "patches" / f"{name}_patches.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    if legacy:
        arr = np.array([tuple(c) for c in np.asarray(coords)])
    else:
        arr = np.asarray(coords, dtype=np.int64)
        if arr.size == 0:
            arr = arr.reshape(0, 2)
    attrs = {"patch_size": patch_size, "patch_size_level0": patch_size * src_mag // target_mag,
             "level0_magnification": src_mag, "target_magnification": target_mag, "overlap": overlap,
             "name": name, "savetodir": str(save_coords)}
    if not legacy:
        attrs.update(level0_width=width, level0_height=height)
    attrs.update(extra or {})
    _save_hdf5(path, {"coords": arr}, {"coords": attrs}, "w", 1)
    return path


def trident_features(coords_path, features: np.ndarray | None, *, encoder="uni_v1", embedding_dim=1024,
                     saveas="h5", enc_name_given=True) -> Path:
    """``WSI.extract_patch_features``: ``<coords dir>/features_<encoder>/<name>.<saveas>``. ``features`` in
    the encoder's precision (float16 for uni_v1); None: an empty slide (``(0, D)`` float32, or ``(0,)``
    when ``embedding_dim`` is None). The .pt option is ``torch.save`` of the NumPy array."""
    coords_path = Path(coords_path)
    with h5py.File(coords_path, "r") as f:
        coords_attrs = dict(f["coords"].attrs)      # IO.read_coords: numpy scalars, strings
        coords = f["coords"][:]
    name = coords_path.name[: -len("_patches.h5")]
    save_features = coords_path.parent.parent / f"features_{encoder}"
    os.makedirs(save_features, exist_ok=True)
    if features is None:
        coords = np.empty((0, 2), dtype=np.int64)
        features = (np.empty((0,), dtype=np.float32) if embedding_dim is None
                    else np.empty((0, int(embedding_dim)), dtype=np.float32))
    out = save_features / f"{name}.{saveas}"
    if saveas == "h5":
        _save_hdf5(out, {"features": features, "coords": coords},
                   {"features": {"name": name, "savetodir": str(save_features),
                                 "encoder": encoder if enc_name_given else None},
                    "coords": coords_attrs}, "w", 1)
    else:
        torch.save(features, out)
    return out


# --------------------------------------------------------------------------- data
def grid_coords(n: int, *, step=256, cols=20, x0=0, y0=0) -> np.ndarray:
    """``n`` patch corners on a grid of ``step`` level-0 pixels, ``cols`` per row, from ``(x0, y0)``."""
    i = np.arange(n)
    return np.stack([x0 + (i % cols) * step, y0 + (i // cols) * step], 1).astype(np.int64)


def features(n: int, d: int = 16, *, seed: int = 0, dtype=np.float16) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(dtype)


def write_clinical(cohort_dir, cases: dict[str, list[str]]) -> Path:
    """A minimal ``clinical.csv`` (case_id, slide_id joined by ';', survival_months, event)."""
    import pandas as pd

    cohort_dir = Path(cohort_dir)
    cohort_dir.mkdir(parents=True, exist_ok=True)
    rows = [{"case_id": c, "slide_id": ";".join(s), "survival_months": 5.0 + 3 * i, "event": i % 2}
            for i, (c, s) in enumerate(cases.items())]
    path = cohort_dir / "clinical.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path
