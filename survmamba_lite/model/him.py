"""Hierarchical Interaction Mamba (HIM, Sec. 3.4, Eq. 5–6) and masked sequence helpers.

Shape letters: the package glossary, :mod:`survmamba_lite.shapes`.

For one modality with fine tokens grouped as ``(B, S, K, D)`` (S groups: regions or
processes; K fine tokens per group: patches or functions)::

    T'_s = Bi-Mamba_fine(T_s)                       for every group s, shared weights  (Eq. 5)
    T    = Bi-Mamba_coarse([Pool(T'_1), ..., Pool(T'_S)])                              (Eq. 6)

``Pool`` is the masked mean over a group's real tokens (the paper does not say
which pooling; the mean keeps HIM free of extra parameters). Groups are processed as
one batch of variable-length sequences (``B·S`` rows), so a region of 3 patches and
one of 200 cost one call and never see each other's padding.

With ``grouped=False`` (ablation model A) all fine tokens of a patient form one long
sequence and there is no coarse level.

Memory. With ``recompute_tokens`` set, a fine level holding more tokens than that keeps
only its inputs for the backward pass and recomputes its activations there
(``torch.utils.checkpoint``), in independent slices of whole groups of at most
``recompute_tokens`` tokens each: groups do not see each other at the fine level, so the
slices give exactly the unsliced result, and the activation memory of the fine level is
that of one slice, whatever the slide size. Below the threshold nothing changes (small
slides are launch-bound, where recomputation would only cost time).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor, nn

from torch.utils.checkpoint import checkpoint

from survmamba_lite.ssm.bimamba import BiMamba

__all__ = ["HierarchicalInteractionMamba", "HIMOutput", "masked_mean", "compact", "static_shapes"]


def masked_mean(x: Tensor, mask: Tensor, dim: int) -> Tensor:
    """Mean of ``x`` over ``dim`` counting only positions where ``mask`` is True.

    Args:
        x: ``(..., L, ..., D)`` values.
        mask: bool, ``x``'s shape without the last dimension.
        dim: the dimension to reduce (of ``x``; must not be the last).

    Rows without any real position give zeros.

    >>> masked_mean(torch.tensor([[1., 2., 9.]]).unsqueeze(-1), torch.tensor([[True, True, False]]), 1)
    tensor([[1.5000]])
    """
    w = mask.to(x.dtype).unsqueeze(-1)
    return (x * w).sum(dim) / w.sum(dim).clamp_min(1.0)


@contextlib.contextmanager
def static_shapes(model: nn.Module) -> Iterator[nn.Module]:
    """Within this context ``model``'s tensor shapes depend only on input shapes, never on mask values.

    Like ``model.train()``, it sets an attribute on every submodule that declares one: each
    module with a class attribute ``static_shapes`` (HIM, TransMIL's encoder, the models that
    flatten a slide bag) gets ``static_shapes = True`` and passes it on, as an argument, to
    :func:`compact` and its kind, which then keep the padded length instead of trimming to
    the longest patient. The previous values come back on exit. A training step captured as
    a CUDA graph (:class:`~survmamba_lite.experiment.step.GraphedTrainStep`) records under
    it: no shape may be read from a mask there. Results at real tokens are the same (trailing
    padding never reaches a real token).

    >>> him = HierarchicalInteractionMamba(4, grouped=False, coarse=False)
    >>> with static_shapes(him):
    ...     him.static_shapes
    True
    >>> him.static_shapes
    False
    """
    modules = [m for m in model.modules() if hasattr(type(m), "static_shapes")]
    before = [m.static_shapes for m in modules]
    try:
        for m in modules:
            m.static_shapes = True
        yield model
    finally:
        for m, value in zip(modules, before):
            m.static_shapes = value


def compact(x: Tensor, mask: Tensor, static: bool = False) -> tuple[Tensor, Tensor]:
    """Flatten grouped tokens and move each patient's real tokens to the front.

    Args:
        x: ``(B, S, K, D)`` grouped tokens.
        mask: ``(B, S, K)`` bool.
        static: keep all ``S·K`` positions (padding last), so that the result's shape does not
            depend on the mask and no host synchronisation is needed (CUDA graphs; see
            :func:`static_shapes`).

    Returns:
        ``flat (B, L, D)`` with ``L`` the largest number of real tokens of a patient
        (``S·K`` when ``static``), real tokens in group order first, and ``flat_mask (B, L)``
        (a prefix mask).

    >>> x = torch.arange(8.).view(1, 2, 4, 1); m = torch.tensor([[[1, 1, 0, 0], [1, 0, 0, 0]]]).bool()
    >>> f, fm = compact(x, m)
    >>> f.squeeze(-1).tolist(), fm.tolist()
    ([[0.0, 1.0, 4.0]], [[True, True, True]])
    >>> compact(x, m, static=True)[1].tolist()
    [[True, True, True, False, False, False, False, False]]
    """
    b, s, k, d = x.shape
    flat, fmask = x.reshape(b, s * k, d), mask.reshape(b, s * k)
    order = torch.argsort((~fmask).to(torch.int8), dim=1, stable=True)   # real first, order kept
    if not static:                        # trim to the longest patient (reads the mask on the host)
        order = order[:, :int(fmask.sum(1).max())]
    flat = torch.gather(flat, 1, order.unsqueeze(-1).expand(-1, -1, d))
    fmask = torch.gather(fmask, 1, order)
    return flat * fmask.unsqueeze(-1), fmask


@dataclass
class HIMOutput:
    """What HIM gives for one modality.

    Attributes:
        fine: ``(B, L, D)`` enhanced fine tokens, flattened with real tokens first.
        fine_mask: ``(B, L)`` bool.
        coarse: ``(B, S, D)`` enhanced coarse tokens, or None without the coarse level.
        coarse_mask: ``(B, S)`` bool, or None.
    """

    fine: Tensor
    fine_mask: Tensor
    coarse: Tensor | None = None
    coarse_mask: Tensor | None = None


class HierarchicalInteractionMamba(nn.Module):
    """HIM for one modality.

    Args:
        dim: token width ``D``.
        d_state, expand, d_conv: Bi-Mamba sizes.
        n_fine_layers, n_coarse_layers: Bi-Mamba blocks per level.
        grouped: run the fine level per group (Eq. 5); False = one long sequence (model A).
        coarse: add the coarse level (Eq. 6).
        bidirectional: Bi-Mamba or forward-only Mamba.
        dropout: dropout inside the blocks.
        scan_backend: selective-scan backend.
        conv_backend: causal-convolution backend of the blocks.
        fuse_directions: both scan directions in one call (see :class:`BiMamba`).
        recompute_tokens: recompute the fine level in backward, in slices of at most this many
            tokens, when it holds more (None: never; see the module docstring).

    Attributes:
        static_shapes: keep padded lengths instead of trimming to the longest patient (set by
            :func:`static_shapes` where a step is captured as a CUDA graph).

    Forward ``tokens: (B, S, K, D)`` and ``mask: (B, S, K)`` bool (real tokens first in
    each group, real groups first in each patient) -> :class:`HIMOutput`.
    """

    static_shapes = False

    def __init__(self, dim: int, d_state: int = 16, expand: int = 2, d_conv: int = 4, n_fine_layers: int = 1,
                 n_coarse_layers: int = 1, grouped: bool = True, coarse: bool = True, bidirectional: bool = True,
                 dropout: float = 0.0, scan_backend: str = "auto", conv_backend: str = "auto",
                 fuse_directions: bool = True, recompute_tokens: int | None = None):
        super().__init__()
        if coarse and not grouped:
            raise ValueError("the coarse level pools groups, so it needs grouped=True")
        if recompute_tokens is not None and recompute_tokens < 1:
            raise ValueError(f"recompute_tokens must be >= 1 or None, got {recompute_tokens}")
        self.grouped, self.coarse, self.recompute_tokens = grouped, coarse, recompute_tokens

        def blocks(n):
            return nn.ModuleList(BiMamba(dim, d_state, expand, d_conv, bidirectional, dropout, scan_backend,
                                         conv_backend, fuse_directions) for _ in range(n))
        self.fine_blocks = blocks(n_fine_layers)
        self.coarse_blocks = blocks(n_coarse_layers) if coarse else None

    def _recompute(self, n_tokens: int) -> bool:
        return self.recompute_tokens is not None and n_tokens > self.recompute_tokens and torch.is_grad_enabled()

    def forward(self, tokens: Tensor, mask: Tensor) -> HIMOutput:
        b, s, k, d = tokens.shape
        if self.grouped:
            x, m = tokens.reshape(b * s, k, d), mask.reshape(b * s, k)       # groups as a batch
            if self._recompute(b * s * k):
                rows = max(1, self.recompute_tokens // k)                     # whole groups per slice
                x = torch.cat([checkpoint(_run_blocks, self.fine_blocks, xs, ms, use_reentrant=False)
                               for xs, ms in zip(x.split(rows), m.split(rows))])
            else:
                x = _run_blocks(self.fine_blocks, x, m)
            fine_grouped = x.view(b, s, k, d)                                 # T'_s
            fine, fine_mask = compact(fine_grouped, mask, self.static_shapes)
        else:
            fine, fine_mask = compact(tokens, mask, self.static_shapes)      # one sequence (model A)
            if self._recompute(fine.shape[0] * fine.shape[1]):
                fine = checkpoint(_run_blocks, self.fine_blocks, fine, fine_mask, use_reentrant=False)
            else:
                fine = _run_blocks(self.fine_blocks, fine, fine_mask)
            return HIMOutput(fine, fine_mask)
        if not self.coarse:
            return HIMOutput(fine, fine_mask)
        group_mask = mask.any(-1)                                             # (B, S)
        coarse = masked_mean(fine_grouped, mask, dim=2)                       # Pool(T'_s): (B, S, D)
        for blk in self.coarse_blocks:
            coarse = blk(coarse, group_mask)                                  # T
        return HIMOutput(fine, fine_mask, coarse, group_mask)


def _run_blocks(blocks: nn.ModuleList, x: Tensor, mask: Tensor) -> Tensor:
    """Apply ``blocks`` in turn to ``x: (B, L, D)`` with prefix mask ``mask: (B, L)``."""
    for blk in blocks:
        x = blk(x, mask)
    return x
