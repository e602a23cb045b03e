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
import os
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "atomic_write_text", "atomic_write_bytes", "TMP_SUFFIX"]

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
