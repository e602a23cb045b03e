"""TransMIL (Shao et al., "TransMIL: Transformer based correlated multiple instance
learning for whole slide image classification", NeurIPS 2021).

Architecture, for a bag of ``n`` instance tokens:

1. ``h = ReLU(W x)`` (``F -> D``).
2. *Squaring*: ``s = ceil(sqrt(n))``; the first ``s^2 - n`` tokens are repeated at the
   end so that the sequence fills an ``s x s`` grid; a learnable class token is prepended.
3. Transformer layer ``x <- x + MSA(LN(x))``.
4. PPEG (pyramid position encoding generator): the ``s^2`` tokens are laid out on the
   ``s x s`` grid and ``x <- x + DWConv7(x) + DWConv5(x) + DWConv3(x)`` (depth-wise
   convolutions, zero padding); the class token is left as is.
5. A second transformer layer, LayerNorm, and the class token is the bag embedding.

Differences from the original, on purpose: the original approximates self-attention
with Nyström attention (landmarks, pseudo-inverse) to handle long bags; here exact
softmax attention (``torch.nn.functional.scaled_dot_product_attention``) is used, of
which Nyström attention is an approximation. Batches are handled exactly: every
patient is squared to its own ``s_b x s_b`` grid, placed in the top-left corner of a
shared ``S x S`` grid (``S = max s_b``) whose other cells are zero and masked out of
attention. Because the convolutions pad with zeros, a patient gives the same output
alone or in a padded batch.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from survmamba_lite.baselines.common import Attention, flatten_bag, require_modalities
from survmamba_lite.data.bag import SurvivalBatch

__all__ = ["square_bag", "PPEG", "TransMILEncoder", "TransMIL"]


def square_bag(h: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Lay each patient's tokens on its own square grid, padding by repetition.

    Patient ``b`` has ``n_b`` real tokens (first in ``h``) and side ``s_b = ceil(sqrt(n_b))``;
    slot ``i < s_b^2`` holds token ``i mod n_b`` at grid cell ``(i // s_b, i % s_b)`` of a
    shared ``S x S`` grid, ``S = max_b s_b``.

    Args:
        h: ``(B, L, D)`` tokens, real ones first.
        mask: ``(B, L)`` bool, True at real tokens.

    Returns:
        ``grid (B, S*S, D)`` (row-major, zero outside each patient's square) and
        ``grid_mask (B, S*S)``.

    >>> g, m = square_bag(torch.arange(3.).view(1, 3, 1), torch.ones(1, 3, dtype=torch.bool))
    >>> g.flatten().tolist(), m.flatten().tolist()
    ([0.0, 1.0, 2.0, 0.0], [True, True, True, True])
    """
    n = mask.sum(1, keepdim=True)                                                 # (B, 1)
    side = torch.ceil(torch.sqrt(n.to(torch.float64))).long()                     # (B, 1)
    s_max = int(side.max())
    cell = torch.arange(s_max * s_max, device=h.device).unsqueeze(0)              # (1, S*S)
    row, col = cell // s_max, cell % s_max
    grid_mask = (row < side) & (col < side)                                       # (B, S*S)
    slot = row * side + col                                                       # slot in the patient's square
    src = torch.where(grid_mask, slot % n, torch.zeros_like(slot))                # token repeated when slot >= n
    grid = torch.gather(h, 1, src.unsqueeze(-1).expand(-1, -1, h.shape[-1]))      # (B, S*S, D)
    return grid * grid_mask.unsqueeze(-1), grid_mask


class PPEG(nn.Module):
    """Pyramid position encoding generator: ``x + DWConv7(x) + DWConv5(x) + DWConv3(x)`` on the grid.

    ``grid: (B, S*S, D)`` row-major, zero outside the real cells -> ``(B, S*S, D)``.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(dim, dim, k, padding=k // 2, groups=dim) for k in (7, 5, 3))

    def forward(self, grid: Tensor) -> Tensor:
        b, n, d = grid.shape
        side = int(round(n ** 0.5))
        img = grid.transpose(1, 2).reshape(b, d, side, side)                      # (B, D, S, S)
        out = img + sum(conv(img) for conv in self.convs)
        return out.flatten(2).transpose(1, 2)                                     # (B, S*S, D)


class _TransLayer(nn.Module):
    """Pre-norm self-attention with residual: ``x + MSA(LN(x))``."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        y = self.norm(x)
        return x + self.attn(y, y, mask)


class TransMILEncoder(nn.Module):
    """TransMIL over a bag of tokens -> class-token embedding.

    Args:
        d_in: input token width.
        dim: model width ``D`` (divisible by ``heads``).
        heads: attention heads (8 in TransMIL).
        dropout: attention dropout (0.1 in TransMIL).

    ``x: (B, L, d_in)`` with real tokens first, ``mask: (B, L)`` -> ``(B, D)``.

    >>> enc = TransMILEncoder(3, 8, heads=2).eval()
    >>> enc(torch.randn(2, 5, 3), torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]).bool()).shape
    torch.Size([2, 8])
    """

    def __init__(self, d_in: int, dim: int, heads: int = 8, dropout: float = 0.1):
        super().__init__()
        self.out_dim = dim
        self.fc = nn.Sequential(nn.Linear(d_in, dim), nn.ReLU())
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.layer1 = _TransLayer(dim, heads, dropout)
        self.ppeg = PPEG(dim)
        self.layer2 = _TransLayer(dim, heads, dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        grid, grid_mask = square_bag(self.fc(x), mask)                            # (B, S*S, D)
        keep = torch.cat([grid_mask.new_ones(grid.shape[0], 1), grid_mask], 1)    # (B, 1+S*S)
        z = torch.cat([self.cls_token.expand(grid.shape[0], -1, -1).to(grid.dtype), grid], 1)
        z = self.layer1(z, keep)
        grid = self.ppeg(z[:, 1:] * grid_mask.unsqueeze(-1))                      # re-zero outside squares
        z = self.layer2(torch.cat([z[:, :1], grid], 1), keep)
        return self.norm(z[:, 0])                                                 # (B, D)


class TransMIL(nn.Module):
    """TransMIL survival model (histology only): :class:`TransMILEncoder` over all patches, ``Linear(D, T)``.

    Args:
        n_bins: number of time bins ``T``.
        wsi_dim: patch-feature width ``F``.
        dim: model width ``D`` (512 in the paper's setting).
        heads: attention heads.
        dropout: attention dropout.
    """

    modalities = ("wsi",)

    def __init__(self, n_bins: int, wsi_dim: int, dim: int = 512, heads: int = 8, dropout: float = 0.1):
        super().__init__()
        self.encoder = TransMILEncoder(wsi_dim, dim, heads, dropout)
        self.head = nn.Linear(dim, n_bins)

    def forward(self, batch: SurvivalBatch) -> Tensor:
        require_modalities(batch, self)
        return self.head(self.encoder(*flatten_bag(batch.patches, batch.patch_mask)))
