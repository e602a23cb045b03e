"""``survmamba export-features``: a cohort's features in CLAM's or TRIDENT's layout.

So that the peers' own code (SurvPath, MCAT, MOTCat and MambaMIL load ``<slide_id>.pt`` per
slide; CLAM's ``h5_files/``; TRIDENT's ``features_<encoder>/``) runs on exactly the features a
cohort holds. The files look as those tools write them (:mod:`.features_sources`):

=========  ================================================================================
format     files under ``--out``
=========  ================================================================================
clam-h5    ``h5_files/<slide_id>.h5`` (features float32, coords int32, chunks of 32 rows,
           no attributes) and ``patches/<slide_id>.h5`` (coords int64 with ``patch_size``,
           ``patch_level`` 0, ``downsample`` (1, 1), ``level_dim``, ``name``, ...)
clam-pt    ``pt_files/<slide_id>.pt`` (a float32 tensor) and ``patches/<slide_id>.h5``
trident    ``<M>x_<ps>px_0px_overlap/patches/<slide_id>_patches.h5`` and
           ``<M>x_<ps>px_0px_overlap/features_<encoder>/<slide_id>.h5`` (chunks of 1 row, TRIDENT's
           coordinate attributes copied onto the features file)
=========  ================================================================================

plus ``slides.csv`` (``slide_id, case_id, magnification`` (level-0), ``patch_size_level0``,
``patch_magnification``, ``n_patches``, ``encoder``). CLAM's files do not record the scan
magnification; ``slides.csv`` is the table ``import-features --magnification`` reads, so
``import-features`` of an export gives back the cohort's features, coordinates and regions.
Slides follow the cohort's slide rule (:func:`~survmamba_lite.data.layout.bag_slide_ids`).
"""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from survmamba_lite.data.features_h5 import read_features_h5
from survmamba_lite.data.features_import import PAPER_MAGNIFICATION, PAPER_REGION_SIZE
from survmamba_lite.data.layout import load_cohort
from survmamba_lite.utils.io import atomic_path
from survmamba_lite.utils.outputs import OutputKind, check_out_dir, claim_out_dir, clear_out_dir

__all__ = ["EXPORT_FORMATS", "FEATURE_EXPORT", "ExportReport", "export_features", "level0_magnification",
           "write_clam_patches", "write_clam_h5", "write_clam_pt", "write_trident_coords", "write_trident_features"]

EXPORT_FORMATS = ("clam-h5", "clam-pt", "trident")
FEATURE_EXPORT = OutputKind("feature-export", "survmamba export-features", "a feature export folder", (
    "slides.csv", "h5_files/*.h5", "pt_files/*.pt", "patches/*.h5", "*x_*px_*px_overlap/patches/*_patches.h5",
    "*x_*px_*px_overlap/features_*/*.h5"))


def _num(v: float):
    """An integral magnification as int (as TRIDENT stores it), else float."""
    return int(round(v)) if abs(v - round(v)) < 1e-9 else float(v)


def level0_magnification(attrs: dict) -> float:
    """The scan (level-0) magnification of a features file, from its attributes.

    ``level0_magnification`` when stated (imports); else ``magnification * region_size /
    target_region_size`` (``survmamba extract``); else ``10 / mpp``; else ``magnification``.

    >>> level0_magnification({"magnification": 20.0, "region_size": 8192, "target_region_size": 4096})
    40.0
    >>> level0_magnification({"magnification": 20.0, "mpp": 0.5})
    20.0
    """
    if attrs.get("level0_magnification") is not None:
        return float(attrs["level0_magnification"])
    mag = float(attrs["magnification"])
    if attrs.get("target_region_size"):
        return mag * float(attrs["region_size"]) / float(attrs["target_region_size"])
    if attrs.get("target_patch_size"):
        return mag * float(attrs["patch_size"]) / float(attrs["target_patch_size"])
    if attrs.get("mpp"):
        return 10.0 / float(attrs["mpp"])
    return mag


# --------------------------------------------------------------------------- writers (the tools' layouts)
def _resizable(f: h5py.File, name: str, data: np.ndarray, rows: int) -> h5py.Dataset:
    """A dataset as CLAM's ``save_hdf5`` and TRIDENT's ``save_h5`` create it: chunks of ``rows`` rows,
    unlimited first dimension."""
    return f.create_dataset(name, data=data, maxshape=(None,) + data.shape[1:], chunks=(rows,) + data.shape[1:],
                            dtype=data.dtype)


def write_clam_patches(path: str | os.PathLike, coords: np.ndarray, patch_size: int, name: str, save_path: str,
                       level_dim: tuple[int, int]) -> Path:
    """CLAM's ``patches/<slide>.h5``: ``coords (N, 2)`` int64 and its attributes, read at level 0."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        d = _resizable(f, "coords", np.asarray(coords, np.int64), 1)
        d.attrs["patch_size"] = int(patch_size)
        d.attrs["patch_level"] = 0
        d.attrs["downsample"] = (1.0, 1.0)
        d.attrs["downsampled_level_dim"] = np.array(level_dim, dtype=np.int64)
        d.attrs["level_dim"] = tuple(int(v) for v in level_dim)
        d.attrs["name"] = name
        d.attrs["save_path"] = save_path
    return Path(path)


def write_clam_h5(path: str | os.PathLike, features: np.ndarray, coords: np.ndarray) -> Path:
    """CLAM's ``h5_files/<slide>.h5``: features float32 and coords int32, chunks of 32 rows, no attributes."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        _resizable(f, "features", np.asarray(features, np.float32), 32)
        _resizable(f, "coords", np.asarray(coords).astype(np.int32), 32)
    return Path(path)


def write_clam_pt(path: str | os.PathLike, features: np.ndarray) -> Path:
    """CLAM's ``pt_files/<slide>.pt``: the features as a float32 tensor."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(torch.from_numpy(np.ascontiguousarray(features, np.float32)), tmp)
    return Path(path)


def write_trident_coords(path: str | os.PathLike, coords: np.ndarray, attrs: dict) -> Path:
    """TRIDENT's ``patches/<slide>_patches.h5``: ``coords (N, 2)`` int64, chunks of 1 row, ``attrs`` on it
    (dicts as JSON, None as ``'None'``, as its ``save_h5`` does)."""
    import json

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        d = _resizable(f, "coords", np.asarray(coords, np.int64).reshape(-1, 2), 1)
        for k, v in attrs.items():
            d.attrs[k] = json.dumps(v) if isinstance(v, dict) else "None" if v is None else v
    return Path(path)


def write_trident_features(path: str | os.PathLike, features: np.ndarray, coords: np.ndarray, coords_attrs: dict,
                           name: str, savetodir: str, encoder: str | None) -> Path:
    """TRIDENT's ``features_<encoder>/<slide>.h5``: ``features`` then ``coords``, chunks of 1 row, attributes
    ``name, savetodir, encoder`` on features and the patch file's attributes on coords."""
    import json

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        d = _resizable(f, "features", np.asarray(features), 1)
        for k, v in (("name", name), ("savetodir", savetodir), ("encoder", encoder)):
            d.attrs[k] = "None" if v is None else v
        c = _resizable(f, "coords", np.asarray(coords, np.int64).reshape(-1, 2), 1)
        for k, v in coords_attrs.items():
            c.attrs[k] = json.dumps(v) if isinstance(v, dict) else "None" if v is None else v
    return Path(path)


# --------------------------------------------------------------------------- the export
@dataclass
class ExportReport:
    """What :func:`export_features` wrote.

    Attributes:
        features_dir: the folder to give ``import-features`` as SRC (or the peers' code).
        patches_dir: the patch files' folder.
        slides: the ``slides.csv`` table.
        import_command: the command that imports the export back.
    """

    out: Path
    fmt: str
    features_dir: Path
    patches_dir: Path
    slides: pd.DataFrame
    import_command: str

    def summary(self) -> str:
        s = self.slides
        return (f"wrote {len(s)} slide(s) ({int(s['n_patches'].sum())} patches) as {self.fmt} to {self.out}: "
                f"features in {self.features_dir}, coordinates in {self.patches_dir}, table slides.csv\n"
                f"import them back with: {self.import_command}")


def export_features(cohort_dir: str | os.PathLike, fmt: str, out: str | os.PathLike, *,
                    overwrite: bool = False) -> ExportReport:
    """Write every bag slide of a cohort in ``fmt`` (``clam-h5``, ``clam-pt`` or ``trident``) under ``out``.

    ``out`` must be new or empty, or an earlier export (replaced with ``overwrite``).
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"--format {fmt}: choose one of {', '.join(EXPORT_FORMATS)}")
    cohort = load_cohort(cohort_dir)
    if "wsi" not in cohort.modalities:
        raise ValueError(f"{cohort.root}: the cohort has no slide features (modalities {cohort.modalities}); "
                         "import or extract them first")
    out = Path(out)
    if check_out_dir(out, FEATURE_EXPORT, overwrite=overwrite) == "ours":
        clear_out_dir(out, FEATURE_EXPORT)
    claim_out_dir(out, FEATURE_EXPORT)
    rows = []
    features_dir = patches_dir = out
    for cid in cohort.case_ids:
        for sid in cohort.slide_ids(cid):
            sf = read_features_h5(cohort.feature_path(sid))
            a = sf.attrs
            l0, p0, pmag = level0_magnification(a), int(a["patch_size"]), float(a["magnification"])
            ps = int(round(p0 * pmag / l0))
            extent = (sf.coords.max(0) + p0).tolist()
            width, height = int(a.get("slide_width", extent[0])), int(a.get("slide_height", extent[1]))
            encoder = str(a.get("encoder", "unknown"))
            if fmt.startswith("clam"):
                patches_dir = out / "patches"
                write_clam_patches(patches_dir / f"{sid}.h5", sf.coords, p0, sid, str(patches_dir.resolve()),
                                   (width, height))
                if fmt == "clam-h5":
                    features_dir = out / "h5_files"
                    write_clam_h5(features_dir / f"{sid}.h5", sf.features, sf.coords)
                else:
                    features_dir = out / "pt_files"
                    write_clam_pt(features_dir / f"{sid}.pt", sf.features)
            else:
                job = out / f"{_num(pmag)}x_{ps}px_0px_overlap"
                patches_dir, features_dir = job / "patches", job / f"features_{encoder}"
                cattrs = {"patch_size": ps, "patch_size_level0": ps * _num(l0) // _num(pmag),
                          "level0_magnification": _num(l0), "target_magnification": _num(pmag), "overlap": 0,
                          "name": sid, "savetodir": str(job.resolve()), "level0_width": width,
                          "level0_height": height}
                if cattrs["patch_size_level0"] != p0:
                    raise ValueError(f"{cohort.feature_path(sid)}: patch size {p0} level-0 px at {l0:g}x cannot be "
                                     f"written as TRIDENT's patch_size * level0 // target = {cattrs['patch_size_level0']}; "
                                     "export it as clam-h5")
                write_trident_coords(patches_dir / f"{sid}_patches.h5", sf.coords, cattrs)
                write_trident_features(features_dir / f"{sid}.h5", sf.features, sf.coords, cattrs, sid,
                                       str(features_dir.resolve()), encoder)
            rows.append({"slide_id": sid, "case_id": cid, "magnification": l0, "patch_size_level0": p0,
                         "patch_magnification": pmag, "n_patches": int(sf.features.shape[0]), "encoder": encoder,
                         "region_size_20x": int(round(int(a["region_size"]) * PAPER_MAGNIFICATION / l0))})
    slides = pd.DataFrame(rows)
    with atomic_path(out / "slides.csv") as tmp:
        slides.to_csv(tmp, index=False, lineterminator="\n")
    cmd = ["survmamba", "import-features", str(features_dir), "--cohort-dir", "COHORT"]
    if fmt.startswith("clam"):
        encs = sorted(set(slides["encoder"]))
        cmd += ["--patches-dir", str(patches_dir), "--magnification", str(out / "slides.csv")]
        cmd += ["--encoder", encs[0]] if len(encs) == 1 else []
    sizes = sorted(set(slides["region_size_20x"]))
    if sizes != [PAPER_REGION_SIZE]:
        cmd += ["--region-size", str(sizes[0])]
    if (cohort.manifest.get("features") or {}).get("slides", "all") == "first":
        cmd += ["--slides", "first"]
    return ExportReport(out, fmt, features_dir, patches_dir, slides, shlex.join(cmd))
