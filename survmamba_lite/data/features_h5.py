"""Read and write one slide's patch features: ``features/<slide_id>.h5``.

Every writer (synthetic cohorts, ``survmamba extract``) and every reader (datasets,
notebooks) goes through these two functions, so the format lives in one place.

Datasets:
    ``features``: ``(P, F)`` float32 patch tokens from a frozen encoder.
    ``coords``:   ``(P, 2)`` int64 top-left ``(x, y)`` of each patch in level-0 pixels.
    ``region``:   ``(P,)`` int64 region index of each patch (``0..R-1``).
Attributes (on the file):
    ``slide_id`` (str), ``patch_size`` (int, level-0 pixels), ``region_size`` (int,
    level-0 pixels), ``magnification`` (float, the magnification the patches
    represent, e.g. 20.0), ``encoder`` (str), ``format_version`` (int).
Extra attributes (e.g. ``mpp``, ``source``) are kept as given.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from survmamba_lite.utils.io import atomic_h5

__all__ = ["SlideFeatures", "write_features_h5", "read_features_h5", "read_features_shape", "FORMAT_VERSION",
           "REQUIRED_ATTRS"]

FORMAT_VERSION = 1
REQUIRED_ATTRS = ("slide_id", "patch_size", "region_size", "magnification", "encoder")


@dataclass
class SlideFeatures:
    """One slide's bag of patch tokens, as stored in ``features/<slide_id>.h5``.

    Attributes:
        features: ``(P, F)`` float32 patch tokens.
        coords: ``(P, 2)`` int64 ``(x, y)`` level-0 pixel coordinates of each patch.
        region: ``(P,)`` int64 region index of each patch.
        attrs: file attributes; must include :data:`REQUIRED_ATTRS`.
    """

    features: np.ndarray
    coords: np.ndarray
    region: np.ndarray
    attrs: dict = field(default_factory=dict)

    @property
    def slide_id(self) -> str:
        return str(self.attrs["slide_id"])

    @property
    def n_regions(self) -> int:
        return int(np.unique(self.region).size)


def _check(sf: SlideFeatures, where: str) -> None:
    p = sf.features.shape[0] if sf.features.ndim == 2 else -1
    if sf.features.ndim != 2:
        raise ValueError(f"{where}: 'features' must be (P, F), got shape {sf.features.shape}")
    if p == 0:
        raise ValueError(f"{where}: the slide has zero patches (empty tissue?); "
                         "re-tile with a lower tissue threshold or drop the slide")
    if sf.coords.shape != (p, 2):
        raise ValueError(f"{where}: 'coords' must be (P, 2) = ({p}, 2), got {sf.coords.shape}")
    if sf.region.shape != (p,):
        raise ValueError(f"{where}: 'region' must be (P,) = ({p},), got {sf.region.shape}")
    if not np.isfinite(sf.features).all():
        bad = int((~np.isfinite(sf.features)).any(1).sum())
        raise ValueError(f"{where}: 'features' holds NaN/inf in {bad} patches; re-extract the slide")
    if sf.region.size and sf.region.min() < 0:
        raise ValueError(f"{where}: 'region' has negative indices")
    missing = [a for a in REQUIRED_ATTRS if a not in sf.attrs]
    if missing:
        raise ValueError(f"{where}: missing attributes {missing}; required are {list(REQUIRED_ATTRS)}")


def write_features_h5(path: str | os.PathLike, sf: SlideFeatures) -> Path:
    """Validate and write ``sf`` to ``path`` atomically (a temp file renamed into place).

    >>> import tempfile
    >>> sf = SlideFeatures(np.ones((3, 4), np.float32), np.zeros((3, 2), np.int64),
    ...     np.array([0, 0, 1]), dict(slide_id="s1", patch_size=256, region_size=4096,
    ...     magnification=20.0, encoder="synthetic"))
    >>> p = write_features_h5(Path(tempfile.mkdtemp()) / "s1.h5", sf)
    >>> back = read_features_h5(p)
    >>> back.features.shape, back.n_regions, back.attrs["encoder"]
    ((3, 4), 2, 'synthetic')
    """
    path = Path(path)
    _check(sf, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_h5(path) as f:              # in memory, then written whole: a full disk fails cleanly
        f.create_dataset("features", data=np.asarray(sf.features, dtype=np.float32))
        f.create_dataset("coords", data=np.asarray(sf.coords, dtype=np.int64))
        f.create_dataset("region", data=np.asarray(sf.region, dtype=np.int64))
        for k, v in sf.attrs.items():
            f.attrs[k] = v
        f.attrs["format_version"] = FORMAT_VERSION
    return path


def read_features_h5(path: str | os.PathLike, *, load_features: bool = True) -> SlideFeatures:
    """Read and validate a features file written by :func:`write_features_h5`.

    Args:
        path: the ``.h5`` file.
        load_features: when False, ``features`` is an empty ``(P, 0)`` array (cheap
            inspection of coords, regions and attributes).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such features file; run `survmamba extract` for this slide "
                                "or check slide_id in clinical.csv")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not a readable HDF5 file ({err}); delete it and re-extract the slide") from err
    with f:
        missing = [k for k in ("features", "coords", "region") if k not in f]
        if missing:
            raise ValueError(f"{path}: missing datasets {missing}; expected features (P, F), coords (P, 2), region (P,)")
        attrs = {k: (v.decode() if isinstance(v, bytes) else v.item() if isinstance(v, np.generic) else v)
                 for k, v in f.attrs.items()}
        coords = f["coords"][()]
        region = f["region"][()]
        if load_features:
            feats = f["features"][()]
        else:
            feats = np.zeros((f["features"].shape[0], 0), np.float32)
    sf = SlideFeatures(feats, coords, region, attrs)
    if load_features:
        _check(sf, str(path))
    return sf


def read_features_shape(path: str | os.PathLike) -> tuple[int, int]:
    """``(P, F)`` of a features file's ``features`` dataset, read from its header only (no array data).

    >>> import tempfile
    >>> sf = SlideFeatures(np.ones((3, 4), np.float32), np.zeros((3, 2), np.int64), np.array([0, 0, 1]),
    ...     dict(slide_id="s1", patch_size=256, region_size=4096, magnification=20.0, encoder="synthetic"))
    >>> read_features_shape(write_features_h5(Path(tempfile.mkdtemp()) / "s1.h5", sf))
    (3, 4)
    """
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not a readable HDF5 file ({err}); delete it and re-extract the slide") from err
    with f:
        if "features" not in f:
            raise ValueError(f"{path}: no 'features' dataset; expected features (P, F), coords (P, 2), region (P,)")
        shape = f["features"].shape
    if len(shape) != 2:
        raise ValueError(f"{path}: 'features' must be (P, F), got shape {shape}")
    return int(shape[0]), int(shape[1])
