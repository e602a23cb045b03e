"""Counting a model's parameters (Table 2's first column; FLOPs and step times in
:mod:`survmamba_lite.experiment.complexity`).
"""
from __future__ import annotations

from torch import nn

__all__ = ["count_parameters"]


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters.

    >>> count_parameters(nn.Linear(768, 512, bias=False))
    393216
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
