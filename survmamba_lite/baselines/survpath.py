"""SurvPath (Jaume et al., "Modeling dense multimodal interactions between biological
pathways and histology for survival prediction", CVPR 2024).

Tokens: one per biological pathway (here: per genomic function, from per-function SNNs,
:class:`~survmamba_lite.model.encoders.FunctionEncoder`) and one per patch (a linear
projection of the patch features). A single multimodal transformer layer runs over the
concatenation ``X = [P; H]`` (``Np`` pathways, ``L`` patches) with the attention
restricted as in the paper: pathway queries attend to pathways *and* patches (one
softmax over both), patch queries attend to pathways only; there is no patch-to-patch
attention, so the cost is linear in the number of patches::

    P' = softmax(Q_P [K_P; K_H]^T / sqrt(d)) [V_P; V_H]
    H' = softmax(Q_H K_P^T / sqrt(d)) V_P

followed by a residual connection, a feed-forward layer and LayerNorm. The pathway
tokens and the (real) patch tokens are mean-pooled separately, concatenated, and an
MLP ``2D -> D/4 -> T`` gives the logits.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from survmamba_lite.baselines.common import flatten_bag, masked_mean, require_modalities
from survmamba_lite.baselines.genomic import check_rna_width
from survmamba_lite.data.bag import GenomicHierarchy, SurvivalBatch
from survmamba_lite.model.encoders import FunctionEncoder

__all__ = ["PathwayPatchAttention", "SurvPath"]


class PathwayPatchAttention(nn.Module):
    """SurvPath's restricted multimodal attention (no patch-to-patch block).

    ``p: (B, Np, D)``, ``h: (B, L, D)``, ``mask: (B, L)`` -> ``(p' (B, Np, D), h' (B, L, D))``.

    >>> att = PathwayPatchAttention(8, heads=2)
    >>> [t.shape for t in att(torch.randn(2, 3, 8), torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.bool))]
    [torch.Size([2, 3, 8]), torch.Size([2, 5, 8])]
    """

    def __init__(self, dim: int, heads: int = 1, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"PathwayPatchAttention: dim={dim} is not divisible by heads={heads}")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, p: Tensor, h: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        n_p = p.shape[1]
        q, k, v = rearrange(self.qkv(torch.cat([p, h], 1)), "b l (three h d) -> three b h l d",
                            three=3, h=self.heads)                                # (B, heads, Np+L, d) each
        drop = self.dropout if self.training else 0.0
        keys = torch.cat([mask.new_ones(mask.shape[0], n_p), mask], 1)[:, None, None, :]
        p_out = F.scaled_dot_product_attention(q[:, :, :n_p], k, v, attn_mask=keys, dropout_p=drop)
        h_out = F.scaled_dot_product_attention(q[:, :, n_p:], k[:, :, :n_p], v[:, :, :n_p], dropout_p=drop)
        merge = "b h l d -> b l (h d)"
        return self.out(rearrange(p_out, merge)), self.out(rearrange(h_out, merge))


class SurvPath(nn.Module):
    """SurvPath survival model (histology + transcriptomics).

    Args:
        n_bins: number of time bins ``T``.
        wsi_dim: patch-feature width ``F``.
        hierarchy: gene -> function hierarchy (one pathway token per function).
        dim: model width ``D``.
        heads: attention heads (1 in SurvPath).
        fn_hidden: hidden width of each per-pathway SNN.
        dropout: dropout rate.
    """

    modalities = ("wsi", "rna")

    def __init__(self, n_bins: int, wsi_dim: int, hierarchy: GenomicHierarchy, dim: int = 512, heads: int = 1,
                 fn_hidden: int = 64, dropout: float = 0.1):
        super().__init__()
        self.hierarchy = hierarchy
        self.pathways = FunctionEncoder(hierarchy, dim, hidden=fn_hidden, dropout=dropout)
        self.patches = nn.Linear(wsi_dim, dim)
        self.norm_in = nn.LayerNorm(dim)
        self.attn = PathwayPatchAttention(dim, heads, dropout)
        self.ffn = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(dim, dim))
        self.norm_out = nn.LayerNorm(dim)
        self.head = nn.Sequential(nn.Linear(2 * dim, max(dim // 4, 1)), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(max(dim // 4, 1), n_bins))

    def forward(self, batch: SurvivalBatch) -> Tensor:
        require_modalities(batch, self)
        check_rna_width(batch.rna, self.hierarchy, self)
        x, mask = flatten_bag(batch.patches, batch.patch_mask)
        p = self.pathways(batch.rna)                                              # (B, Np, D)
        h = self.patches(x)                                                       # (B, L, D)
        n_p = p.shape[1]
        tokens = torch.cat([p, h], 1)                                             # (B, Np+L, D)
        normed = self.norm_in(tokens)
        p_att, h_att = self.attn(normed[:, :n_p], normed[:, n_p:], mask)
        tokens = tokens + torch.cat([p_att, h_att], 1)
        tokens = self.norm_out(tokens + self.ffn(tokens))
        pooled = torch.cat([tokens[:, :n_p].mean(1), masked_mean(tokens[:, n_p:], mask)], -1)  # (B, 2D)
        return self.head(pooled)
