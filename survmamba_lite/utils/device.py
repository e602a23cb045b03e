"""Choosing the torch device (the one :func:`resolve_device` of the package) and torch's CPU threads.

Every command that takes ``--device`` (training, the report's complexity table, feature
extraction, the real-data check) turns it into a :class:`torch.device` here, so ``auto``
and a missing GPU mean the same thing everywhere: ``auto`` picks CUDA when torch sees a
GPU (and says so in the log), otherwise the CPU; asking for CUDA without one is an error,
never a silent fallback.

>>> resolve_device("cpu")
device(type='cpu')
>>> resolve_device(torch.device("cpu"))
device(type='cpu')
"""
from __future__ import annotations

import contextlib
import logging
from typing import Iterator

import torch

__all__ = ["resolve_device", "torch_threads"]

log = logging.getLogger(__name__)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; asking for CUDA without it is an error.

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a :class:`torch.device`
            (returned as it is).

    Raises:
        ValueError: CUDA asked for but torch sees no CUDA device.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        chosen = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        log.info("device auto -> %s", chosen)
        return chosen
    chosen = torch.device(device)
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available on this machine (torch sees no "
                         "CUDA device); use --device cpu or auto")
    return chosen


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Torch's CPU threads set to ``n`` inside the block (None: left as they are), restored after.

    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
