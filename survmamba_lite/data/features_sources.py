"""Patch-feature files written by CLAM and TRIDENT: what they hold and how to read them.

Most users of survival MIL models extract their patch features with CLAM
(``create_patches_fp.py`` + ``extract_features_fp.py``) or TRIDENT (``run_batch_of_slides.py``).
This module reads one slide of either into plain arrays; :mod:`.features_import` turns them
into ``features/<slide_id>.h5``. The formats, as those tools write them (read from their
sources):

CLAM, patching: ``patches/<slide_id>.h5``
    ``coords (N, 2)`` int64, level-0 top-left ``(x, y)``, chunks ``(1, 2)``, maxshape
    ``(None, 2)``; attributes on ``coords``: ``patch_size`` (pixels *at* ``patch_level``),
    ``patch_level``, ``downsample`` (float pair, the level's downsample), ``downsampled_level_dim``,
    ``level_dim``, ``name`` (slide file name without extension), ``save_path``. The level-0
    footprint of a patch is ``patch_size * int(downsample)``. A slide without tissue gets no file.
CLAM, features: ``h5_files/<slide_id>.h5`` and ``pt_files/<slide_id>.pt``
    ``features (N, D)`` float32 and ``coords (N, 2)`` **int32** (the patch file's coordinates,
    same order), both chunks ``(32, ...)`` and maxshape ``(None, ...)``, **no attributes**; the
    ``.pt`` file is the same features as a float32 ``torch.Tensor``, without coordinates.
TRIDENT, patching: ``<job>/<mag>x_<ps>px_<ov>px_overlap/patches/<slide_id>_patches.h5``
    ``coords (N, 2)`` int64 level-0 top-left, chunks ``(1, 2)``; attributes ``patch_size``
    (pixels at the target magnification), ``patch_size_level0`` (``patch_size * level0_mag //
    target_mag``), ``level0_magnification``, ``target_magnification``, ``overlap``, ``name``,
    ``savetodir`` and, since August 2025, ``level0_width``, ``level0_height``. Dictionaries are
    stored as JSON strings and ``None`` as the string ``'None'``. An empty slide gets
    ``coords (0, 2)`` (older releases: an empty ``(0,)`` array).
TRIDENT, features: ``<coords dir>/features_<encoder>/<slide_id>.h5`` (or ``.pt``)
    ``features (N, D)`` in the encoder's precision (float16 for UNI, Virchow, GigaPath, ...;
    float32 for CONCH, CTransPath, ...), chunks ``(1, D)``, attributes ``name``, ``savetodir``,
    ``encoder`` (``'None'`` when the model has no name); ``coords`` with the patch file's
    attributes copied. An empty slide: ``features (0, D)``, or ``(0,)`` when the encoder does not
    state its width. The ``.pt`` option holds a pickled NumPy array, without coordinates (they
    are in ``../patches/``).

Telling them apart: a TRIDENT ``coords`` dataset carries ``patch_size_level0`` or
``level0_magnification``; CLAM's carries neither.

``.pt`` files are pickles. They are loaded with ``torch.load(weights_only=True)``, allowing
only the NumPy names an array needs, so a file that holds anything else is refused rather
than run.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

__all__ = ["SourceSlide", "SlideProblem", "RawSlide", "decode_attrs", "is_trident_attrs", "load_pt_array", "read_dataset",
           "locate_sources", "read_source_slide", "TRIDENT_KEYS"]

#: coordinate attributes only TRIDENT writes
TRIDENT_KEYS = ("patch_size_level0", "level0_magnification")
_NUMPY_PICKLE_NAMES = ("numpy._core.multiarray._reconstruct", "numpy.core.multiarray._reconstruct", "numpy.ndarray",
                       "numpy.dtype", "builtins.bytes")


class SlideProblem(ValueError):
    """One slide that cannot be imported: ``str()`` is one line naming the slide and the fix."""

    def __init__(self, slide_id: str, message: str, fix: str):
        self.slide_id, self.message, self.fix = slide_id, message, fix
        super().__init__(f"slide {slide_id}: {message}; {fix}")


@dataclass
class SourceSlide:
    """Where one slide's features (and coordinates) are.

    Attributes:
        slide_id: the slide id of ``clinical.csv``.
        path: the features file (``.h5`` or ``.pt``).
        coords_path: the patch file (CLAM ``patches/<id>.h5``, TRIDENT ``<id>_patches.h5``)
            when one was found, else None.
        fmt: ``"clam"`` or ``"trident"``.
    """

    slide_id: str
    path: Path
    coords_path: Path | None
    fmt: str

    @property
    def label(self) -> str:
        """``clam-h5``, ``clam-pt``, ``trident-h5`` or ``trident-pt``."""
        return f"{self.fmt}-{self.path.suffix.lstrip('.')}"


@dataclass
class RawSlide:
    """One slide as read from its source files, before any conversion.

    Attributes:
        features: ``(P, F)`` as stored (float16 or float32), or ``(0, F)`` / ``(0,)`` if empty.
        coords: ``(P, 2)`` int64 level-0 top-left ``(x, y)``.
        patch_size_level0: the patch side in level-0 pixels, or None when no file states it.
        level0_magnification: the scan magnification, or None when no file states it.
        patch_magnification: the magnification the patch pixels were read at, or None.
        patch_downsample: level-0 pixels per patch pixel where a CLAM patch file states it
            (``int(downsample)`` of its ``patch_level``), else 1.
        encoder: the encoder's name, or None.
        attrs: the source attributes (decoded), for the record.
    """

    features: np.ndarray
    coords: np.ndarray
    patch_size_level0: int | None
    level0_magnification: float | None
    patch_magnification: float | None
    encoder: str | None
    attrs: dict = field(default_factory=dict)
    patch_downsample: int = 1


# --------------------------------------------------------------------------- attributes
def _decode(value):
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return [_decode(v) for v in value.tolist()] if value.dtype.kind in "OS" else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str):
        if value == "None":
            return None
        if value[:1] in "{[":
            try:
                return json.loads(value)
            except ValueError:
                return value
    return value


def decode_attrs(attrs) -> dict:
    """HDF5 attributes as plain Python values: bytes -> str, NumPy -> Python, TRIDENT's
    ``'None'`` -> None and its JSON-encoded dicts -> dict.

    >>> decode_attrs({"a": np.int64(3), "b": "None", "c": '{"x": 1}', "d": np.array([1.0, 2.0])})
    {'a': 3, 'b': None, 'c': {'x': 1}, 'd': [1.0, 2.0]}
    """
    return {str(k): _decode(v) for k, v in dict(attrs).items()}


def is_trident_attrs(attrs: dict) -> bool:
    """True when coordinate attributes carry TRIDENT's keys (``patch_size_level0`` / ``level0_magnification``)."""
    return any(k in attrs for k in TRIDENT_KEYS)


def _positive(value, what: str, slide_id: str, where: Path) -> float | None:
    if value is None:
        return None
    try:
        v = float(value[0] if isinstance(value, list) else value)
    except (TypeError, ValueError):
        raise SlideProblem(slide_id, f"{where} has {what} {value!r}, not a number",
                           "re-run the patching of this slide") from None
    if not np.isfinite(v) or v <= 0:
        raise SlideProblem(slide_id, f"{where} has {what} {value!r}", "re-run the patching of this slide")
    return v


# --------------------------------------------------------------------------- reading chunked datasets
def read_dataset(dset: h5py.Dataset) -> np.ndarray:
    """``dset[()]``, fast for TRIDENT's one-row chunks.

    TRIDENT stores features in chunks of one row: HDF5 then looks up every chunk on its
    own (5,000 lookups for 5,000 patches). For an uncompressed dataset chunked by whole rows,
    the chunks' file offsets are listed once (``H5Dchunk_iter``), the byte span that holds them
    is read in one go and the rows are gathered in their logical order. Anything else
    (compression, filters, partial listings, an HDF5 without ``chunk_iter``) takes ``dset[()]``.
    """
    shape, chunks = dset.shape, dset.chunks
    if (chunks is None or len(shape) < 1 or shape[0] < 64 or tuple(chunks[1:]) != tuple(shape[1:])
            or dset.compression is not None or dset.fletcher32 or dset.scaleoffset is not None
            or dset.file.userblock_size or dset.file.driver != "sec2"):
        return dset[()]
    infos: list[tuple[int, int, int, int]] = []
    try:
        dset.id.chunk_iter(lambda si: infos.append((si.chunk_offset[0], si.byte_offset, si.size, si.filter_mask)))
    except (AttributeError, RuntimeError, ValueError):
        return dset[()]
    rows = chunks[0]
    n_chunks = -(-shape[0] // rows)
    nbytes = rows * int(np.prod(shape[1:], dtype=np.int64)) * dset.dtype.itemsize
    if len(infos) != n_chunks or any(m != 0 or size != nbytes for _, _, size, m in infos):
        return dset[()]
    infos.sort()
    first = min(o for _, o, _, _ in infos)
    last = max(o for _, o, _, _ in infos) + nbytes
    with open(dset.file.filename, "rb") as fh:
        fh.seek(first)
        span = fh.read(last - first)
    if len(span) != last - first:
        return dset[()]
    buf = np.frombuffer(span, dtype=np.uint8)
    start = np.array([o for _, o, _, _ in infos], dtype=np.int64) - first     # chunks in logical order
    runs = np.split(np.arange(n_chunks), np.flatnonzero(np.diff(start) != nbytes) + 1)  # stored back to back
    gathered = np.concatenate([buf[start[r[0]]:start[r[0]] + len(r) * nbytes] for r in runs])
    out = gathered.view(dset.dtype).reshape((n_chunks * rows,) + tuple(shape[1:]))
    return out[: shape[0]]


# --------------------------------------------------------------------------- .pt files
def load_pt_array(path: str | os.PathLike) -> np.ndarray:
    """The array of a ``.pt`` feature file: a torch tensor (CLAM) or a pickled NumPy array (TRIDENT).

    Loaded with ``weights_only=True``; the NumPy names an array's pickle needs are allowed, nothing else.
    """
    import torch

    path = Path(path)
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception as err:                              # a corrupt or non-torch file
        raise ValueError(f"{path}: not a readable torch file ({err})") from None
    other = [n for n in names if n not in _NUMPY_PICKLE_NAMES and not n.startswith("numpy.dtypes.")]
    if other:
        raise ValueError(f"{path}: holds Python objects other than a tensor or a NumPy array ({', '.join(other)}); "
                         "not loaded, for safety (a .pt file is a pickle)")
    allowed = []
    for name in names:
        module, _, attr = name.rpartition(".")
        try:
            obj = getattr(__import__(module, fromlist=[attr]), attr)
        except (ImportError, AttributeError):
            obj = None
        if name.startswith("numpy.core.") and obj is None:
            from numpy._core import multiarray
            obj = getattr(multiarray, attr)
        if obj is not None:
            allowed.append((obj, name))
    for t in (np.float16, np.float32, np.float64, np.int32, np.int64):   # the dtype classes an array names
        cls = type(np.dtype(t))
        allowed.append((cls, f"numpy.dtypes.{cls.__name__}"))
    with torch.serialization.safe_globals(allowed):
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(data, torch.Tensor):
        return data.numpy() if data.dtype != torch.bfloat16 else data.float().numpy()
    if isinstance(data, np.ndarray):
        return data
    raise ValueError(f"{path}: holds a {type(data).__name__}, not a features tensor or array")


# --------------------------------------------------------------------------- locating files
def _pt_format(src: Path, coords_path: Path | None) -> str | None:
    """A ``.pt`` file's tool, from its folder's name (``pt_files``, ``features_<encoder>``) or its patch file."""
    if src.name == "pt_files":
        return "clam"
    if src.name.startswith("features_"):
        return "trident"
    if coords_path is not None:
        try:
            with h5py.File(coords_path, "r") as f:
                attrs = dict(f["coords"].attrs) if "coords" in f else {}
        except OSError:
            return None
        if is_trident_attrs(attrs):
            return "trident"
        if "patch_level" in attrs:
            return "clam"
    return None


def _h5_format(path: Path) -> str:
    try:
        with h5py.File(path, "r") as f:
            attrs = dict(f["coords"].attrs) if "coords" in f else {}
    except OSError:
        return "clam"                                      # unreadable: reported when it is read
    return "trident" if is_trident_attrs(attrs) else "clam"


def locate_sources(src: str | os.PathLike, slide_ids, fmt: str = "auto", patches_dir: str | os.PathLike | None = None
                   ) -> tuple[dict[str, SourceSlide], list[str]]:
    """Find each slide's feature file in ``src`` (and its patch file).

    Args:
        src: CLAM's ``h5_files/`` or ``pt_files/``, or TRIDENT's ``features_<encoder>/``.
        slide_ids: the slide ids wanted.
        fmt: ``auto``, ``clam`` or ``trident``.
        patches_dir: CLAM's ``patches/`` or TRIDENT's ``patches/``; TRIDENT's default is
            ``src/../patches`` (where TRIDENT puts it).

    Returns:
        ``({slide_id: SourceSlide}, unknown_stems)``: the slides found, and the names of
        feature files in ``src`` that belong to none of ``slide_ids``.
    """
    src = Path(src)
    files = {}
    for p in sorted(src.iterdir()):
        if p.is_file() and p.suffix in (".h5", ".pt") and not p.name.startswith("."):
            files.setdefault(p.stem, {})[p.suffix] = p
    pdir = Path(patches_dir) if patches_dir is not None else None
    default_pdir = src.parent / "patches"
    found: dict[str, SourceSlide] = {}
    wanted = list(dict.fromkeys(slide_ids))
    for sid in wanted:
        entry = files.get(sid)
        if not entry:
            continue
        path = entry.get(".h5", entry.get(".pt"))
        coords_path = None
        for d in ([pdir] if pdir is not None else [default_pdir]):
            for name in (f"{sid}_patches.h5", f"{sid}.h5"):
                if (d / name).is_file() and (d / name).resolve() != path.resolve():
                    coords_path = d / name
                    break
            if coords_path is not None:
                break
        if fmt != "auto":
            kind = fmt
        elif path.suffix == ".h5":
            kind = _h5_format(path)
        else:
            kind = _pt_format(src, coords_path)
            if kind is None:
                raise SlideProblem(sid, f"{path} holds no coordinates and its format cannot be told from its folder "
                                        "name", "give --format clam (pt_files/) or --format trident (features_<encoder>/)"
                                        " and --patches-dir")
        found[sid] = SourceSlide(sid, path, coords_path, kind)
    unknown = sorted(set(files) - set(wanted))
    return found, unknown


# --------------------------------------------------------------------------- reading one slide
def _read_coords_file(source: SourceSlide) -> tuple[np.ndarray, dict]:
    path = source.coords_path
    try:
        with h5py.File(path, "r") as f:
            if "coords" not in f:
                raise SlideProblem(source.slide_id, f"{path} has no 'coords' dataset",
                                   "give --patches-dir the folder of the patching step's .h5 files")
            return np.asarray(f["coords"][()]), decode_attrs(f["coords"].attrs)
    except OSError as err:
        raise SlideProblem(source.slide_id, f"{path} is not a readable HDF5 file ({err})",
                           "re-run the patching of this slide") from None


def _as_coords(coords: np.ndarray, n: int, source: SourceSlide, where: Path) -> np.ndarray:
    if coords.size == 0 and n == 0:
        return np.zeros((0, 2), np.int64)
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise SlideProblem(source.slide_id, f"{where}: 'coords' has shape {coords.shape}, not (N, 2)",
                           "re-run the patching of this slide")
    if coords.dtype.kind not in "iu" and not (coords.dtype.kind == "f" and np.all(coords == np.round(coords))):
        raise SlideProblem(source.slide_id, f"{where}: 'coords' are not whole pixel numbers ({coords.dtype})",
                           "re-run the patching of this slide")
    out = coords.astype(np.int64)
    if out.size and out.min() < 0:
        raise SlideProblem(source.slide_id, f"{where}: negative coordinates (min {out.min()})",
                           "re-run the patching of this slide")
    return out


def read_source_slide(source: SourceSlide) -> RawSlide:
    """Read one slide's features, coordinates and patch geometry from its CLAM or TRIDENT files.

    Raises:
        SlideProblem: a file is missing, unreadable or says another slide's name, or the
            features and coordinates disagree in length.
    """
    sid, path = source.slide_id, source.path
    feat_attrs: dict = {}
    coords_attrs: dict = {}
    coords = None
    if path.suffix == ".h5":
        try:
            with h5py.File(path, "r") as f:
                if "features" not in f:
                    raise SlideProblem(sid, f"{path} has no 'features' dataset (datasets: {sorted(f)})",
                                       "give the feature folder (CLAM h5_files/, TRIDENT features_<encoder>/), "
                                       "not the patch folder")
                features = read_dataset(f["features"])
                feat_attrs = decode_attrs(f["features"].attrs)
                if "coords" in f:
                    coords = np.asarray(f["coords"][()])
                    coords_attrs = decode_attrs(f["coords"].attrs)
        except OSError as err:
            raise SlideProblem(sid, f"{path} is not a readable HDF5 file ({err})", "re-extract this slide") from None
    else:
        try:
            features = load_pt_array(path)
        except ValueError as err:
            raise SlideProblem(sid, str(err), "re-extract this slide") from None
    where = path
    if source.fmt == "trident" and coords is not None and not is_trident_attrs(coords_attrs) and source.coords_path:
        coords = None                                      # attributes lost: take the patch file's
    if coords is None or (source.fmt == "clam" and source.coords_path is not None):
        if source.coords_path is None:
            if coords is None:
                hint = ("TRIDENT keeps them in ../patches/<slide_id>_patches.h5" if source.fmt == "trident" else
                        "CLAM keeps them in patches/<slide_id>.h5 of the patching step")
                raise SlideProblem(sid, f"{path} holds no coordinates and no patch file was found",
                                   f"give --patches-dir ({hint})")
        else:
            patch_coords, coords_attrs_file = _read_coords_file(source)
            if coords is not None and source.fmt == "clam":
                if patch_coords.shape != coords.shape or not np.array_equal(patch_coords.astype(np.int64),
                                                                            coords.astype(np.int64)):
                    raise SlideProblem(sid, f"the coordinates of {path} differ from those of {source.coords_path}",
                                       "give the patches/ folder of the run that made these features")
            coords, coords_attrs, where = patch_coords, coords_attrs_file, source.coords_path
    # slide name recorded in the files
    for attrs, what in ((feat_attrs, path), (coords_attrs, where)):
        name = attrs.get("name")
        if isinstance(name, str) and name and name != sid:
            raise SlideProblem(sid, f"{what} says it holds slide {name!r} (attribute 'name')",
                               f"rename the file after its slide ({name}) or correct slide_id in clinical.csv")
    if source.fmt == "trident" and not is_trident_attrs(coords_attrs):
        raise SlideProblem(sid, f"{where} is not a TRIDENT file (its coords carry no patch_size_level0 or "
                                "level0_magnification)", "use --format clam (or auto)")
    if source.fmt == "clam" and is_trident_attrs(coords_attrs):
        raise SlideProblem(sid, f"{where} carries TRIDENT's attributes (patch_size_level0)",
                           "use --format trident (or auto)")
    features = np.asarray(features)
    empty = features.shape[0] == 0 if features.ndim >= 1 else False
    if not empty and features.ndim != 2:
        raise SlideProblem(sid, f"{path}: features have shape {features.shape}, not (N, D)", "re-extract this slide")
    if features.dtype.kind != "f":
        raise SlideProblem(sid, f"{path}: features are {features.dtype}, not floating point", "re-extract this slide")
    n = features.shape[0]
    coords = _as_coords(np.asarray(coords), n, source, where)
    if coords.shape[0] != n:
        raise SlideProblem(sid, f"{coords.shape[0]} coordinates ({where}) but {n} feature rows ({path})",
                           "the two files come from different runs: re-extract the features from this patch file")
    # geometry
    p0 = l0 = pmag = None
    down = 1
    if source.fmt == "trident":
        p0 = _positive(coords_attrs.get("patch_size_level0"), "patch_size_level0", sid, where)
        l0 = _positive(coords_attrs.get("level0_magnification"), "level0_magnification", sid, where)
        pmag = _positive(coords_attrs.get("target_magnification"), "target_magnification", sid, where)
    elif coords_attrs:
        size = _positive(coords_attrs.get("patch_size"), "patch_size", sid, where)
        down = int(_positive(coords_attrs.get("downsample", 1.0), "downsample", sid, where))
        if size is not None:
            p0 = size * down                               # CLAM: patch_size * int(downsample)
    encoder = feat_attrs.get("encoder") if source.fmt == "trident" else None
    attrs = {f"coords.{k}": v for k, v in coords_attrs.items()}
    attrs.update({f"features.{k}": v for k, v in feat_attrs.items()})
    return RawSlide(features=features, coords=coords, patch_size_level0=None if p0 is None else int(round(p0)),
                    level0_magnification=l0, patch_magnification=pmag,
                    encoder=encoder if isinstance(encoder, str) else None, attrs=attrs, patch_downsample=max(down, 1))
