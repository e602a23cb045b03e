"""SurvPath (Jaume et al., "Modeling dense multimodal interactions between biological
pathways and histology for survival prediction", CVPR 2024).

Follows ``SurvPath`` in mahmoodlab/SurvPath ``models/model_SurvPath.py`` with its
``MMAttentionLayer`` / ``FeedForward`` from ``models/layers/cross_attention.py``.

Tokens: one per biological pathway (here: per genomic function), each from its own
two-block SNN (:class:`~survmamba_lite.baselines.common.GroupSNN`, ``K_f -> 256 -> 256``),
and one per patch, a linear projection ``F -> D`` (``D = 256``). A single layer runs over
``X = [P; H]`` (``Np`` pathways, ``L`` patches), with LayerNorm, then a single-head
attention of head width ``D/2`` whose pattern has no patch-to-patch block: pathway
queries attend to pathways *and* patches (one softmax over both), patch queries attend to
pathways only, so the cost is linear in the number of patches::

    Q, K, V = LN(X) W_qkv                      (D -> 3 * D/2, no bias)
    P' = softmax(Q_P [K_P; K_H]^T / sqrt(D/2)) [V_P; V_H]
    H' = softmax(Q_H K_P^T / sqrt(D/2)) V_P

There is **no residual connection and no output projection**: a patch token's output is
only a mix of pathway values. Then a feed-forward net applied to its own LayerNorm,
again without a residual, and a LayerNorm: ``Y = LN(FFN(LN(X')))`` (``D/2 -> D/2 -> D/2``,
GELU). The pathway tokens and the (real) patch tokens are mean-pooled separately,
concatenated (``D``) and ``Linear(D, D/4) -> ReLU -> Linear(D/4, T)`` gives the logits.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from survmamba_lite.baselines.common import GroupSNN, flatten_bag, masked_mean, require_modalities
from survmamba_lite.baselines.genomic import check_rna_width
from survmamba_lite.data.bag import GenomicHierarchy, SurvivalBatch

__all__ = ["PathwayPatchAttention", "SurvPath"]


class PathwayPatchAttention(nn.Module):
    """SurvPath's restricted multimodal attention (``MMAttention`` with ``residual=False``).

    ``to_qkv: Linear(D, 3 * heads * dim_head, bias=False)``, no output projection, so the
    output width is ``heads * dim_head`` (``D/2`` in SurvPath: one head of width ``D/2``).

    Args:
        dim: token width ``D``.
        heads: attention heads (1 in SurvPath).
        dim_head: width of a head (``D // 2`` when None, as in SurvPath).

    ``p: (B, Np, D)``, ``h: (B, L, D)``, ``mask: (B, L)`` -> ``(p' (B, Np, E), h' (B, L, E))``,
    ``E = heads * dim_head``.

    >>> att = PathwayPatchAttention(8, heads=2)
    >>> [t.shape for t in att(torch.randn(2, 3, 8), torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.bool))]
    [torch.Size([2, 3, 8]), torch.Size([2, 5, 8])]
    """

    def __init__(self, dim: int, heads: int = 1, dim_head: int | None = None):
        super().__init__()
        dim_head = dim_head or dim // 2
        if dim_head < 1:
            raise ValueError(f"PathwayPatchAttention: dim={dim} gives a head width of {dim_head}; use dim >= 2")
        self.heads, self.out_dim = heads, heads * dim_head
        self.qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)

    def forward(self, p: Tensor, h: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        n_p = p.shape[1]
        q, k, v = rearrange(self.qkv(torch.cat([p, h], 1)), "b l (three h d) -> three b h l d",
                            three=3, h=self.heads)                                # (B, heads, Np+L, d) each
        keys = torch.cat([mask.new_ones(mask.shape[0], n_p), mask], 1)[:, None, None, :]
        p_out = F.scaled_dot_product_attention(q[:, :, :n_p], k, v, attn_mask=keys)
        h_out = F.scaled_dot_product_attention(q[:, :, n_p:], k[:, :, :n_p], v[:, :, :n_p])
        merge = "b h l d -> b l (h d)"
        return rearrange(p_out, merge), rearrange(h_out, merge)


class SurvPath(nn.Module):
    """SurvPath survival model (histology + transcriptomics), as in mahmoodlab/SurvPath.

    Args:
        n_bins: number of time bins ``T``.
        wsi_dim: patch-feature width ``F``.
        hierarchy: gene -> function hierarchy (one pathway token per function).
        dim: model width ``D`` (``wsi_projection_dim = 256`` in SurvPath).
        heads: attention heads (1 in SurvPath).
        fn_hidden: hidden width of each pathway's SNN (256 in SurvPath).
        dropout: dropout of the feed-forward net (0.1); the pathway SNNs use alpha-dropout 0.25.

    ``forward(batch)`` -> hazard logits ``(B, T)``.
    """

    modalities = ("wsi", "rna")
    static_shapes = False            # set by model.him.static_shapes (CUDA graphs)

    def __init__(self, n_bins: int, wsi_dim: int, hierarchy: GenomicHierarchy, dim: int = 256, heads: int = 1,
                 fn_hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        if dim % 4:
            raise ValueError(f"SurvPath: dim={dim} must be divisible by 4 (head width D/2, classifier D/4)")
        self.hierarchy = hierarchy
        self.pathways = GroupSNN(hierarchy, dim, hidden=fn_hidden)
        self.patches = nn.Linear(wsi_dim, dim)
        self.norm_in = nn.LayerNorm(dim)
        self.attn = PathwayPatchAttention(dim, heads, dim // (2 * heads))
        e = self.attn.out_dim
        self.ffn = nn.Sequential(nn.LayerNorm(e), nn.Linear(e, e), nn.GELU(), nn.Dropout(dropout), nn.Linear(e, e))
        self.norm_out = nn.LayerNorm(e)
        self.head = nn.Sequential(nn.Linear(2 * e, dim // 4), nn.ReLU(), nn.Linear(dim // 4, n_bins))

    def forward(self, batch: SurvivalBatch) -> Tensor:
        require_modalities(batch, self)
        check_rna_width(batch.rna, self.hierarchy, self)
        x, mask = flatten_bag(batch.patches, batch.patch_mask, self.static_shapes)
        p = self.pathways(batch.rna)                                              # (B, Np, D)
        h = self.patches(x)                                                       # (B, L, D)
        n_p = p.shape[1]
        normed = self.norm_in(torch.cat([p, h], 1))                               # (B, Np+L, D)
        p_att, h_att = self.attn(normed[:, :n_p], normed[:, n_p:], mask)          # (B, Np, E), (B, L, E)
        tokens = self.norm_out(self.ffn(torch.cat([p_att, h_att], 1)))            # (B, Np+L, E), no residual
        pooled = torch.cat([tokens[:, :n_p].mean(1), masked_mean(tokens[:, n_p:], mask)], -1)  # (B, 2E = D)
        return self.head(pooled)
