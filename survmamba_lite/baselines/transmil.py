"""TransMIL (Shao et al., "TransMIL: Transformer based correlated multiple instance
learning for whole slide image classification", NeurIPS 2021).

Follows ``TransMIL`` in szc19990412/TransMIL ``models/TransMIL.py``, whose attention is
``NystromAttention`` of the ``nystrom-attention`` package (lucidrains/nystrom-attention
``nystrom_attention/nystrom_attention.py``), written here in PyTorch
(:class:`NystromAttention`). For a bag of ``n`` instance tokens:

1. ``h = ReLU(W x)`` (``F -> D``, ``D = 512``).
2. *Squaring*: ``s = ceil(sqrt(n))``; the first ``s^2 - n`` tokens are repeated at the
   end so that the sequence fills an ``s x s`` grid; a learnable class token is prepended.
3. Transformer layer ``x <- x + NystromMSA(LN(x))`` (8 heads of width ``D/8``, ``D/2``
   landmarks, 6 pseudo-inverse iterations, the residual depth-wise convolution of the
   values with kernel 33 along the sequence, dropout 0.1 after the output projection).
4. PPEG (pyramid position encoding generator): the ``s^2`` tokens are laid out on the
   ``s x s`` grid and ``x <- x + DWConv7(x) + DWConv5(x) + DWConv3(x)`` (depth-wise
   convolutions, zero padding); the class token is left as is.
5. A second transformer layer, LayerNorm, and the class token is the bag embedding.

``attention="exact"`` replaces the Nyström approximation (and its value convolution) by
exact softmax attention, of which Nyström attention is an approximation: the variant this
package used before, kept to measure what the approximation changes.

Batches are handled exactly: every patient is squared to its own ``s_b x s_b`` grid,
placed in the top-left corner of a shared ``Sq x Sq`` grid (``Sq = max s_b``) whose other
cells are zero. Nyström attention mixes tokens through landmarks (segment means) and a
convolution along the sequence, so it runs on each patient's own sequence (class token
and its ``s_b^2`` cells in row-major order, exactly the original's sequence); exact
attention masks the other cells. Because the PPEG convolutions pad with zeros, a patient
gives the same output alone or in a padded batch.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


import torch.nn.functional as F
from einops import rearrange

from survmamba_lite.baselines.common import Attention, flatten_bag, require_modalities
from survmamba_lite.data.bag import SurvivalBatch

__all__ = ["square_bag", "PPEG", "moore_penrose_pinv", "NystromAttention", "TransMILEncoder", "TransMIL"]

ATTENTIONS = ("nystrom", "exact")


def square_bag(h: Tensor, mask: Tensor, static: bool = False) -> tuple[Tensor, Tensor]:
    """Lay each patient's tokens on its own square grid, padding by repetition.

    Patient ``b`` has ``n_b`` real tokens (first in ``h``) and side ``s_b = ceil(sqrt(n_b))``;
    slot ``i < s_b^2`` holds token ``i mod n_b`` at grid cell ``(i // s_b, i % s_b)`` of a
    shared ``Sq x Sq`` grid, ``Sq = max_b s_b``. With ``static`` (a step captured as a CUDA
    graph, :func:`~survmamba_lite.model.him.static_shapes`) the mask is not read on the host
    and ``Sq = ceil(sqrt(L))`` comes from the padded length instead: the same grid when no
    patient is padded (genomic tokens: every patient has all ``L``), and otherwise a larger
    grid whose extra cells are masked zeros.

    Args:
        h: ``(B, L, D)`` tokens, real ones first.
        mask: ``(B, L)`` bool, True at real tokens.
        static: the grid size from ``L``, not from the mask.

    Returns:
        ``grid (B, Sq*Sq, D)`` (row-major, zero outside each patient's square) and
        ``grid_mask (B, Sq*Sq)``.

    >>> g, m = square_bag(torch.arange(3.).view(1, 3, 1), torch.ones(1, 3, dtype=torch.bool))
    >>> g.flatten().tolist(), m.flatten().tolist()
    ([0.0, 1.0, 2.0, 0.0], [True, True, True, True])
    """
    n = mask.sum(1, keepdim=True)                                                 # (B, 1)
    side = torch.ceil(torch.sqrt(n.to(torch.float64))).long()                     # (B, 1)
    s_max = math.ceil(math.sqrt(h.shape[1])) if static else int(side.max())
    cell = torch.arange(s_max * s_max, device=h.device).unsqueeze(0)              # (1, Sq*Sq)
    row, col = cell // s_max, cell % s_max
    grid_mask = (row < side) & (col < side)                                       # (B, Sq*Sq)
    slot = row * side + col                                                       # slot in the patient's square
    src = torch.where(grid_mask, slot % n, torch.zeros_like(slot))                # token repeated when slot >= n
    grid = torch.gather(h, 1, src.unsqueeze(-1).expand(-1, -1, h.shape[-1]))      # (B, Sq*Sq, D)
    return grid * grid_mask.unsqueeze(-1), grid_mask


class PPEG(nn.Module):
    """Pyramid position encoding generator: ``x + DWConv7(x) + DWConv5(x) + DWConv3(x)`` on the grid.

    ``grid: (B, Sq*Sq, D)`` row-major, zero outside the real cells -> ``(B, Sq*Sq, D)``.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(dim, dim, k, padding=k // 2, groups=dim) for k in (7, 5, 3))

    def forward(self, grid: Tensor) -> Tensor:
        b, n, d = grid.shape
        side = int(round(n ** 0.5))
        img = grid.transpose(1, 2).reshape(b, d, side, side)                      # (B, D, Sq, Sq)
        out = img + sum(conv(img) for conv in self.convs)
        return out.flatten(2).transpose(1, 2)                                     # (B, Sq*Sq, D)


def moore_penrose_pinv(x: Tensor, iters: int = 6) -> Tensor:
    """Iterative Moore-Penrose pseudo-inverse of Nyströmformer (Xiong et al., 2021, Eq. 16).

    ``z_0 = x^T / (max_j sum_i |x_ij| * max_i sum_j |x_ij|)`` (the maxima over the whole
    tensor, all heads), then ``z <- z (13 I - x z (15 I - x z (7 I - x z))) / 4``.

    ``x: (..., m, m)`` -> ``(..., m, m)``.

    >>> a = torch.softmax(torch.randn(1, 4, 4, dtype=torch.float64), -1)
    >>> torch.allclose(moore_penrose_pinv(a, 30), torch.linalg.inv(a), atol=1e-6)
    True
    """
    absx = x.abs()
    z = x.transpose(-1, -2) / (absx.sum(-1).max() * absx.sum(-2).max())
    eye = torch.eye(x.shape[-1], device=x.device, dtype=x.dtype)
    for _ in range(iters):
        xz = x @ z
        z = 0.25 * z @ (13 * eye - xz @ (15 * eye - xz @ (7 * eye - xz)))
    return z


class NystromAttention(nn.Module):
    """Nyström self-attention with a residual depth-wise convolution of the values.

    For one sequence of ``n`` tokens (zero tokens are prepended to a multiple of ``m``
    landmarks; with ``to_qkv`` unbiased they have zero query, key and value, as in the
    original), per head with ``q`` scaled by ``d^-1/2``::

        q~, k~ = means of q, k over m consecutive segments             (m, d)
        out    = softmax(q k~^T) pinv(softmax(q~ k~^T)) softmax(q~ k^T) v  +  Conv_33(v)
        y      = Drop(W_o out)                                          (heads * d -> D)

    ``Conv_33`` is a depth-wise (per head) convolution along the sequence, kernel 33, no
    bias. With ``n <= m`` every token is its own landmark and the first three factors are
    exact softmax attention.

    Args:
        dim: token width ``D``.
        heads: heads (8 in TransMIL).
        dim_head: head width (``D / 8`` in TransMIL).
        landmarks: ``m`` (``D / 2`` in TransMIL).
        pinv_iters: pseudo-inverse iterations (6).
        kernel: residual convolution kernel (33).
        dropout: dropout after the output projection (0.1).

    ``x: (1, n, D)`` (one sequence, no padding) -> ``(1, n, D)``.
    """

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64, landmarks: int = 256, pinv_iters: int = 6,
                 kernel: int = 33, dropout: float = 0.1):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.landmarks, self.pinv_iters, self.scale = heads, landmarks, pinv_iters, dim_head ** -0.5
        self.to_qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))
        self.res_conv = nn.Conv2d(heads, heads, (kernel, 1), padding=(kernel // 2, 0), groups=heads, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        n, m = x.shape[1], self.landmarks
        pad = (-n) % m
        x = F.pad(x, (0, 0, pad, 0))                                              # zeros in front: (B, n', D)
        q, k, v = rearrange(self.to_qkv(x), "b l (three h d) -> three b h l d", three=3, h=self.heads)
        q = q * self.scale
        seg = x.shape[1] // m
        q_l = rearrange(q, "b h (m s) d -> b h m s d", s=seg).mean(3)             # (B, heads, m, d)
        k_l = rearrange(k, "b h (m s) d -> b h m s d", s=seg).mean(3)
        attn1 = (q @ k_l.transpose(-1, -2)).softmax(-1)                           # (B, heads, n', m)
        attn2 = (q_l @ k_l.transpose(-1, -2)).softmax(-1)                         # (B, heads, m, m)
        attn3 = (q_l @ k.transpose(-1, -2)).softmax(-1)                           # (B, heads, m, n')
        out = (attn1 @ moore_penrose_pinv(attn2, self.pinv_iters)) @ (attn3 @ v)  # (B, heads, n', d)
        out = out + self.res_conv(v)
        out = self.to_out(rearrange(out, "b h l d -> b l (h d)"))
        return out[:, -n:]


class _TransLayer(nn.Module):
    """Pre-norm self-attention with residual: ``x + MSA(LN(x))`` (Nyström or exact)."""

    def __init__(self, dim: int, heads: int, dropout: float, attention: str):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attention = attention
        if attention == "nystrom":
            self.attn = NystromAttention(dim, heads, dim // heads, max(dim // 2, 1), dropout=dropout)
        else:
            self.attn = Attention(dim, heads, dropout)

    def forward(self, x: Tensor, mask: Tensor, static: bool = False) -> Tensor:
        y = self.norm(x)
        if self.attention == "exact":
            return x + self.attn(y, y, mask)
        out = torch.zeros_like(y)
        if static:
            # a step captured as a CUDA graph reads no mask on the host: each patient's sequence
            # at its full grid length, cells outside its square as zero tokens (the kind of token
            # Nystrom attention itself pads with); identical when no cell is outside (genomic tokens)
            y = y * mask.unsqueeze(-1).to(y.dtype)
            for b in range(y.shape[0]):
                out[b] = self.attn(y[b:b + 1])[0].to(out.dtype)
            return x + out * mask.unsqueeze(-1).to(out.dtype)
        for b in range(y.shape[0]):                        # each patient's own sequence, in grid order
            keep = mask[b]
            out[b, keep] = self.attn(y[b, keep].unsqueeze(0))[0].to(out.dtype)
        return x + out


class TransMILEncoder(nn.Module):
    """TransMIL over a bag of tokens -> class-token embedding.

    Args:
        d_in: input token width.
        dim: model width ``D`` (divisible by ``heads``).
        heads: attention heads (8 in TransMIL).
        dropout: attention dropout (0.1 in TransMIL).
        attention: ``"nystrom"`` (TransMIL's) or ``"exact"`` softmax attention.

    ``x: (B, L, d_in)`` with real tokens first, ``mask: (B, L)`` -> ``(B, D)``. With
    :attr:`static_shapes` set (:func:`~survmamba_lite.model.him.static_shapes`) no shape is read
    from the mask.

    >>> enc = TransMILEncoder(3, 8, heads=2).eval()
    >>> enc(torch.randn(2, 5, 3), torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]).bool()).shape
    torch.Size([2, 8])
    """

    static_shapes = False

    def __init__(self, d_in: int, dim: int, heads: int = 8, dropout: float = 0.1, attention: str = "nystrom"):
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"TransMIL: attention must be one of {ATTENTIONS}, got {attention!r}")
        if dim % heads:
            raise ValueError(f"TransMIL: dim={dim} is not divisible by heads={heads}; choose heads dividing dim")
        self.out_dim = dim
        self.fc = nn.Sequential(nn.Linear(d_in, dim), nn.ReLU())
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.layer1 = _TransLayer(dim, heads, dropout, attention)
        self.ppeg = PPEG(dim)
        self.layer2 = _TransLayer(dim, heads, dropout, attention)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        static = self.static_shapes
        grid, grid_mask = square_bag(self.fc(x), mask, static)                    # (B, Sq*Sq, D)
        keep = torch.cat([grid_mask.new_ones(grid.shape[0], 1), grid_mask], 1)    # (B, 1+Sq*Sq)
        z = torch.cat([self.cls_token.expand(grid.shape[0], -1, -1).to(grid.dtype), grid], 1)
        z = self.layer1(z, keep, static)
        grid = self.ppeg(z[:, 1:] * grid_mask.unsqueeze(-1))                      # re-zero outside squares
        z = self.layer2(torch.cat([z[:, :1], grid], 1), keep, static)
        return self.norm(z[:, 0])                                                 # (B, D)


class TransMIL(nn.Module):
    """TransMIL survival model (histology only): :class:`TransMILEncoder` over all patches, ``Linear(D, T)``.

    Args:
        n_bins: number of time bins ``T``.
        wsi_dim: patch-feature width ``F``.
        dim: model width ``D`` (512 in the paper's setting).
        heads: attention heads.
        dropout: attention dropout.
        attention: ``"nystrom"`` (TransMIL's, default) or ``"exact"``.
    """

    modalities = ("wsi",)
    static_shapes = False            # set by model.him.static_shapes (CUDA graphs)

    def __init__(self, n_bins: int, wsi_dim: int, dim: int = 512, heads: int = 8, dropout: float = 0.1,
                 attention: str = "nystrom"):
        super().__init__()
        self.encoder = TransMILEncoder(wsi_dim, dim, heads, dropout, attention)
        self.head = nn.Linear(dim, n_bins)

    def forward(self, batch: SurvivalBatch) -> Tensor:
        require_modalities(batch, self)
        return self.head(self.encoder(*flatten_bag(batch.patches, batch.patch_mask, self.static_shapes)))
