"""A stand-in of CTransPath's size, for timing feature extraction only.

CTransPath (the paper's patch encoder) is a Swin Transformer "tiny" (Swin-T): patch
embedding 4 x 4, widths 96-192-384-768, depths 2-2-6-2, 3-6-12-24 heads, windows of
7 x 7 tokens, shifted every other block, 768-d output after global average pooling.
Its weights come from the user (see :mod:`.encoders`). To measure how fast an encoder of
that size extracts features without them, :func:`swin_t_standin` builds the same
architecture with **random weights** and :func:`export_standin` writes it as TorchScript,
to be loaded like any user file (``--encoder torchscript --weights FILE``). Its features
carry no meaning; use it for timing, never for experiments.

The network follows the Swin paper (Liu et al., 2021): for a stage of width ``C`` on a
``H x W`` token grid, a block is

    x = x + proj(W-MSA(LN(x)))        (windows of 7 x 7 tokens, relative position bias,
    x = x + MLP(LN(x))                 shifted by 3 tokens with a mask in odd blocks)

and stages are joined by patch merging (concatenate 2 x 2 neighbours, LN, linear
``4C -> 2C``). CTransPath replaces the 4 x 4 patch embedding by a small convolution stem
and torchvision's and timm's Swin-T have 27.5 M parameters without their classifier; so
has this one (:data:`SWIN_T_PARAMETERS`, checked by the tests).

Shapes: ``B`` batch, ``H, W`` token grid, ``C`` width, ``nW`` windows per image,
``N = 49`` tokens per window, ``h`` heads.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["swin_t_standin", "export_standin", "SwinTStandIn", "SWIN_T_PARAMETERS", "STANDIN_NOTE"]

#: parameters of Swin-T without its classifier head (torchvision ``swin_t``: 28,288,354 with
#: the 768 x 1000 head and its bias)
SWIN_T_PARAMETERS = 28_288_354 - 768 * 1000 - 1000
#: what to say wherever the stand-in's numbers are shown
STANDIN_NOTE = "CTransPath-size stand-in: Swin-T architecture with random weights, for timing only"


def _window_partition(x: Tensor, w: int) -> Tensor:
    """``(B, H, W, C) -> (B, nW, w * w, C)``."""
    b, h, wd, c = x.shape
    x = x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, (h // w) * (wd // w), w * w, c)


def _window_merge(x: Tensor, w: int, h: int, wd: int) -> Tensor:
    """``(B, nW, w * w, C) -> (B, H, W, C)``."""
    b, _, _, c = x.shape
    x = x.view(b, h // w, wd // w, w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, wd, c)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative position bias.

    ``forward(x: (B, nW, N, C)) -> (B, nW, N, C)``; the bias (and, when shifted, the mask
    that keeps tokens from different sides of a roll apart) is added to the logits.
    """

    def __init__(self, dim: int, heads: int, window: int, grid: int, shift: int):
        super().__init__()
        self.heads, self.window = heads, window
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.randn((2 * window - 1) ** 2, heads) * 0.02)
        pos = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (pos[:, :, None] - pos[:, None, :]).permute(1, 2, 0) + window - 1     # (N, N, 2)
        self.register_buffer("relative_position_index", rel[..., 0] * (2 * window - 1) + rel[..., 1],
                             persistent=False)
        mask = torch.zeros(1, 1, 1, 1, 1)
        self.shifted = bool(shift)
        if shift:
            label = torch.zeros(grid, grid)
            cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
            for k, (ys, xs) in enumerate((a, b) for a in cuts for b in cuts):
                label[ys, xs] = k
            lab = _window_partition(label[None, :, :, None], window)[0, :, :, 0]    # (nW, N)
            mask = torch.where(lab[:, :, None] != lab[:, None, :], -100.0, 0.0)[None, :, None]  # (1, nW, 1, N, N)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        b, nw, n, c = x.shape
        qkv = self.qkv(x).view(b, nw, n, 3, self.heads, c // self.heads).permute(3, 0, 1, 4, 2, 5)
        q, k, v = qkv[0], qkv[1], qkv[2]                                              # (B, nW, h, N, c/h)
        bias = self.relative_position_bias_table[self.relative_position_index].permute(2, 0, 1)  # (h, N, N)
        if self.shifted:  # a mask per window: (B nW, h, N, N), as timm's Swin builds it
            bias = (bias[None, None] + self.mask).to(q.dtype).expand(b, nw, self.heads, n, n)
            bias = bias.reshape(b * nw, self.heads, n, n)
        else:             # one bias for all windows, broadcast: (1, h, N, N)
            bias = bias[None].to(q.dtype)
        out = F.scaled_dot_product_attention(q.reshape(b * nw, self.heads, n, -1), k.reshape(b * nw, self.heads, n, -1),
                                             v.reshape(b * nw, self.heads, n, -1), attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(b, nw, n, c))


class SwinBlock(nn.Module):
    """``x: (B, H, W, C) -> (B, H, W, C)``: (shifted) window attention and MLP, pre-norm residuals."""

    def __init__(self, dim: int, heads: int, grid: int, window: int = 7, shift: int = 0):
        super().__init__()
        window = min(window, grid)
        self.shift = shift if grid > window else 0
        self.window = window
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window, grid, self.shift)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        _, h, w, _ = x.shape
        y = self.norm1(x)
        if self.shift:
            y = torch.roll(y, (-self.shift, -self.shift), dims=(1, 2))
        y = _window_merge(self.attn(_window_partition(y, self.window)), self.window, h, w)
        if self.shift:
            y = torch.roll(y, (self.shift, self.shift), dims=(1, 2))
        x = x + y
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """``(B, H, W, C) -> (B, H/2, W/2, 2C)``: 2 x 2 neighbours concatenated, LN, linear."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class SwinTStandIn(nn.Module):
    """Swin-T: ``images: (B, 3, 224, 224)`` normalised floats -> ``(B, 768)`` pooled features."""

    def __init__(self, image_size: int = 224, embed: int = 96, depths=(2, 2, 6, 2), heads=(3, 6, 12, 24),
                 window: int = 7):
        super().__init__()
        if image_size % 32:
            raise ValueError(f"image_size must be a multiple of 32, got {image_size}")
        self.patch_embed = nn.Conv2d(3, embed, kernel_size=4, stride=4)
        self.embed_norm = nn.LayerNorm(embed)
        stages, grid, dim = [], image_size // 4, embed
        for i, (depth, h) in enumerate(zip(depths, heads)):
            blocks: list[nn.Module] = [SwinBlock(dim, h, grid, window, shift=0 if j % 2 == 0 else window // 2)
                                       for j in range(depth)]
            if i < len(depths) - 1:
                blocks.append(PatchMerging(dim))
                grid, dim = grid // 2, dim * 2
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(dim)
        self.feature_dim = dim

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x).permute(0, 2, 3, 1)                                   # (B, 56, 56, 96)
        x = self.stages(self.embed_norm(x))                                           # (B, 7, 7, 768)
        return self.norm(x).mean(dim=(1, 2))                                          # (B, 768)


def swin_t_standin(seed: int = 0, image_size: int = 224) -> SwinTStandIn:
    """The stand-in with random weights drawn from ``seed`` (truncated-normal-like, std 0.02
    for linear layers, as Swin initialises them), in eval mode.

    >>> m = swin_t_standin()
    >>> sum(p.numel() for p in m.parameters()) == SWIN_T_PARAMETERS, m.feature_dim
    (True, 768)
    """
    g = torch.Generator().manual_seed(seed)
    model = SwinTStandIn(image_size=image_size)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif "norm" in name:
                p.fill_(1.0)
            else:
                p.copy_((torch.randn(p.shape, generator=g) * 0.02).clamp_(-0.04, 0.04))
    return model.eval()


def export_standin(path: str | os.PathLike, *, seed: int = 0, image_size: int = 224,
                   model: SwinTStandIn | None = None) -> Path:
    """Write the stand-in (``model``, or a new one from ``seed``) as a traced TorchScript file
    (CPU, float32, any batch size).

    Load it with ``build_encoder("torchscript", path)`` (ImageNet normalisation, 224 px)
    or ``survmamba extract ... --encoder torchscript --weights PATH``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = (model if model is not None else swin_t_standin(seed, image_size)).eval()
    with warnings.catch_warnings(), torch.no_grad():  # TorchScript is deprecated in torch >= 2.10
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, torch.randn(2, 3, image_size, image_size), check_trace=False)
        traced.save(str(path))
    return path
