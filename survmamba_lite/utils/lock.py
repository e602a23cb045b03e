"""One writer per output folder: an advisory lock file beside the folder.

``survmamba cv``, ``grid`` and ``report`` hold :func:`folder_lock` on their output folder
while they write it. A second process asking for the same folder is refused at once
(:class:`FolderLocked`, a :class:`~survmamba_lite.errors.UserError` naming the holder's
pid, host, start time and command line); it never waits and never writes.

The lock is the file ``.<folder name>.lock`` beside the folder (the folder itself may not
exist yet, and ``report`` replaces its folder whole), locked with ``flock``. The kernel
releases a ``flock`` when its process ends, however it ends, so a lock file left by a
process that was killed (SIGKILL, power loss) holds no lock: the next writer takes it
over, and the holder's record in it says whose it was. A process that ends normally
deletes the file. On file systems without ``flock`` the record alone decides: a holder on
this host whose pid is no longer running is stale.

>>> import tempfile
>>> out = Path(tempfile.mkdtemp()) / "run"
>>> with folder_lock(out) as taken:
...     print(lock_path(out).name, taken.previous)
.run.lock None
>>> lock_path(out).exists()
False
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from survmamba_lite.errors import UserError
from survmamba_lite.utils.outputs import check_folder_creatable

try:                                            # POSIX; elsewhere only the holder's record decides
    import fcntl
except ImportError:                             # pragma: no cover
    fcntl = None

__all__ = ["FolderLocked", "Lock", "folder_lock", "lock_path", "read_holder"]


class FolderLocked(UserError):
    """Another process is writing the folder (its holder record is :attr:`holder`)."""

    def __init__(self, message: str, holder: dict | None):
        super().__init__(message)
        self.holder = holder


@dataclass
class Lock:
    """A held lock: its file, and the record of a stale holder it took over (None if none)."""

    path: Path
    previous: dict | None


def lock_path(folder: str | os.PathLike) -> Path:
    """The lock file of ``folder``: ``.<name>.lock`` beside it (the folder's real path)."""
    folder = Path(os.path.realpath(folder))
    return folder.parent / f".{folder.name}.lock"


def read_holder(path: str | os.PathLike) -> dict | None:
    """The holder record in a lock file (None when absent, empty or unreadable)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _describe(holder: dict | None) -> str:
    if not holder:
        return "a process that is starting"
    return (f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}: "
            f"{holder.get('command', '?')}")


def _alive(holder: dict | None) -> bool:
    """Whether the holder's process still runs (only knowable on this host)."""
    if not holder or holder.get("host") != socket.gethostname():
        return bool(holder)
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, KeyError, TypeError):
        return True
    return int(holder["pid"]) != os.getpid()


def _record() -> str:
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                       "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                       "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "python"})


def _refuse(folder: Path, flag: str, holder: dict | None) -> FolderLocked:
    return FolderLocked(f"{flag} {folder}: another survmamba process is writing this folder ({_describe(holder)}); "
                        f"wait until it ends, or choose another {flag} (nothing was written)", holder)


def _acquire(path: Path, folder: Path, flag: str) -> tuple[int, dict | None]:
    """Open and lock ``path``; the fd and the record of the stale holder it replaces."""
    for _ in range(100):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = None
                    for _ in range(20):                   # the holder may be writing its record right now
                        holder = read_holder(path)
                        if holder:
                            break
                        time.sleep(0.01)
                    raise _refuse(folder, flag, holder) from None
                except OSError as err:                    # no flock here (some network file systems)
                    if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                        raise
                    if _alive(read_holder(path)):
                        raise _refuse(folder, flag, read_holder(path)) from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if not same:                                  # the file was deleted by its holder as we opened it
                os.close(fd)
                continue
            previous = read_holder(path)
            os.ftruncate(fd, 0)
            os.write(fd, _record().encode())
            os.fsync(fd)
            return fd, previous
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
    raise OSError(errno.EAGAIN, f"could not take the lock {path}; try again", str(path))


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, *, flag: str = "--out") -> Iterator[Lock]:
    """Hold the lock of ``folder`` for the block (see the module docstring).

    Args:
        folder: the output folder (it need not exist; its parent is created).
        flag: the command-line flag that named it, for the message.

    Raises:
        FolderLocked: another running process holds it.
    """
    folder = Path(folder)
    check_folder_creatable(folder, flag)            # a folder below a file, no permission: that message first
    path = lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, previous = _acquire(path, folder, flag)
    try:
        yield Lock(path, previous)
    finally:
        with contextlib.suppress(OSError):
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                path.unlink()
        os.close(fd)
