"""Numeric precision of training and evaluation: ``fp32``, ``tf32`` and ``bf16``.

``fp32``
    every operation in float32 (matrix products as full-precision FP32 on CUDA).
``tf32``
    parameters and activations in float32, but CUDA matrix products and convolutions may
    use TensorFloat-32 tensor cores (10-bit mantissa inputs, float32 accumulation).
    On the CPU it is the same as ``fp32``.
``bf16``
    automatic mixed precision: inside :func:`autocast` matrix products, convolutions and
    the selective scan's inputs run in bfloat16 while parameters, optimiser state,
    LayerNorm, the SSM's ``A``, its state and accumulation, and the loss stay float32
    (the scan backends cast what they need; see :func:`survmamba_lite.ssm.selective_scan`).
    bfloat16 has float32's exponent range, so no loss scaling is needed.

The setting is part of what a run computes (bf16 changes the numbers slightly), so it is
recorded with the experiment, not treated as an operational detail.

>>> with autocast("bf16", "cpu"):
...     torch.ones(2, 3) @ torch.ones(3, 2)
tensor([[3., 3.],
        [3., 3.]], dtype=torch.bfloat16)
>>> with autocast("fp32", "cpu"):
...     (torch.ones(2, 3) @ torch.ones(3, 2)).dtype
torch.float32
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

__all__ = ["PRECISIONS", "autocast", "check_precision", "set_matmul_precision"]

PRECISIONS = ("fp32", "tf32", "bf16")


def check_precision(precision: str) -> str:
    """Return ``precision`` if it is one of :data:`PRECISIONS`, else raise a ValueError naming them."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def set_matmul_precision(precision: str) -> None:
    """Allow (``tf32``, ``bf16``) or forbid (``fp32``) TF32 tensor cores for float32 CUDA matmuls.

    Process-wide (torch's own switches). Under ``bf16`` the float32 products that autocast
    leaves in float32 may use TF32 too.
    """
    allow = check_precision(precision) != "fp32"
    torch.backends.cuda.matmul.allow_tf32 = allow
    torch.backends.cudnn.allow_tf32 = allow


@contextlib.contextmanager
def autocast(precision: str, device: torch.device | str, cache_enabled: bool = True) -> Iterator[None]:
    """The autocast region for ``precision`` on ``device`` (a no-op for ``fp32`` and ``tf32``).

    Args:
        precision: one of :data:`PRECISIONS`.
        device: where the model runs (``"cpu"``, ``"cuda"``, ``torch.device``).
        cache_enabled: autocast's cache of cast weights (off where a CUDA graph is recorded).
    """
    check_precision(precision)
    device_type = torch.device(device).type
    if precision == "bf16":
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16, cache_enabled=cache_enabled):
            yield
    else:
        yield
