"""Atomic file writes: the one helper every writer of the package goes through.

A file is written under a temporary name in its own folder and renamed into place
(``os.replace``, atomic on POSIX and Windows), so a reader, or a run killed half-way,
never sees a half-written file: the old content or the new, nothing in between. The
temporary name carries the process id, so two processes writing the same file do not
trample each other's temporary file.

>>> import tempfile
>>> p = Path(tempfile.mkdtemp()) / "a.txt"
>>> _ = atomic_write_text(p, "hello\\n")
>>> p.read_text(), sorted(q.name for q in p.parent.iterdir())
('hello\\n', ['a.txt'])
"""
from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "atomic_write_text", "atomic_write_bytes", "atomic_h5", "TMP_SUFFIX"]

#: suffix of temporary files (``<name>.<pid>.tmp``); a killed writer may leave one behind
TMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` when the block succeeds.

    Use it for writers that want a file name (``torch.save``, ``h5py.File``,
    ``DataFrame.to_csv``, ``Figure.savefig``). If the block raises, the temporary file is
    removed and ``path`` is left as it was. The parent folder is created.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "b.txt"
    >>> with atomic_path(p) as tmp:
    ...     _ = tmp.write_text("x")
    >>> p.read_text()
    'x'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if err.filename in (None, str(tmp)):       # a failed write (full disk, file-size limit) names the file
            raise OSError(err.errno, err.strerror or str(err), str(path)) from err
        raise
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see the module docstring); returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike) -> Iterator:
    """Yield an ``h5py.File`` built in memory; write it to ``path`` atomically when the block succeeds.

    HDF5 never writes to disk itself here: the finished file image is written by Python, so a
    full disk or a file-size limit is one ``OSError`` naming ``path`` (HDF5's own failed writes
    leave half-closed files behind and can crash the interpreter), and nothing is left behind.

    >>> import tempfile, numpy as np, h5py
    >>> p = Path(tempfile.mkdtemp()) / "c.h5"
    >>> with atomic_h5(p) as f:
    ...     _ = f.create_dataset("x", data=np.arange(3))
    >>> h5py.File(p, "r")["x"][()].tolist()
    [0, 1, 2]
    """
    import h5py

    f = h5py.File(f"{Path(path).name}.{os.getpid()}.in-memory", "w", driver="core", backing_store=False)
    try:
        yield f
        f.flush()
        image = f.id.get_file_image()
    finally:
        f.close()
    atomic_write_bytes(path, image)


#: the errors a full disk (or a file-size limit) raises, and what to do about each
FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def full_disk_advice(err: OSError) -> str | None:
    """What a full disk or a file-size limit means for the user (None for any other error).

    >>> full_disk_advice(OSError(errno.ENOSPC, "No space left on device"))
    'no space left on the device; free some space and rerun the same command to resume'
    >>> full_disk_advice(OSError(errno.ENOENT, "No such file")) is None
    True
    """
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return "no space left on the device; free some space and rerun the same command to resume"
    if err.errno == errno.EFBIG:
        return ("file too large for this file system or the file-size limit (ulimit -f); raise the "
                "limit or write elsewhere, then rerun the same command to resume")
    return None
