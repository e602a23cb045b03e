"""Building blocks shared by the baselines of Table 1.

* :func:`flatten_bag` — histology tokens of a slide as one flat bag, real patches first
  (the MIL baselines ignore the region grouping of :class:`~survmamba_lite.data.SurvivalBatch`).
* :func:`masked_mean` and :class:`Attention` — padding-aware pooling and softmax attention.
* :class:`GatedAttentionPool` — the gated attention pooling of Ilse et al. (2018).
* :class:`TransformerLayer` — a post-norm transformer encoder layer (as in MCAT).
* :class:`KroneckerFusion` — the Kronecker-product fusion of Pathomic Fusion (Chen et al., 2020).
* :func:`process_level_hierarchy` — one genomic token per biological process instead of per
  function (the coarse genomic groups used by MCAT and MOTCat here).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from survmamba_lite.data.bag import GenomicHierarchy, SurvivalBatch
from survmamba_lite.model.him import masked_mean as _masked_mean

__all__ = ["flatten_bag", "require_modalities", "masked_mean", "Attention", "GatedAttentionPool",
           "TransformerLayer", "KroneckerFusion", "process_level_hierarchy"]


def require_modalities(batch: SurvivalBatch, model: nn.Module) -> None:
    """Raise a clear error when ``batch`` lacks a modality that ``model.modalities`` names."""
    name = type(model).__name__
    if "wsi" in model.modalities and batch.patches is None:
        raise ValueError(f"{name} needs histology ('wsi') but the batch has no patches; build the "
                         "cohort with slide features (features/<slide_id>.h5) for every patient")
    if "rna" in model.modalities and batch.rna is None:
        raise ValueError(f"{name} needs transcriptomics ('rna') but the batch has no RNA vectors; "
                         "build the cohort with its RNA table and genomic hierarchy")


def flatten_bag(patches: Tensor, patch_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Flatten region-grouped patches into one bag per patient, real patches first.

    The order of real patches is kept (region by region), padding moves to the end and
    the bag is cut to the largest number of real patches in the batch, so a patient's
    bag is the same tensor whatever the other patients in the batch look like.

    Args:
        patches: ``(B, R, P, F)`` zero-padded patch tokens.
        patch_mask: ``(B, R, P)`` bool, True at real patches.

    Returns:
        ``x (B, L, F)`` with zeros at padding and ``mask (B, L)``, ``L`` = max real patches.

    >>> p = torch.arange(8.).view(1, 2, 2, 2); m = torch.tensor([[[False, True], [True, False]]])
    >>> x, mask = flatten_bag(p, m)
    >>> x.tolist(), mask.tolist()
    ([[[2.0, 3.0], [4.0, 5.0]]], [[True, True]])
    """
    b, r, p, f = patches.shape
    x = patches.reshape(b, r * p, f)
    mask = patch_mask.reshape(b, r * p)
    n_max = int(mask.sum(1).max())
    order = torch.argsort((~mask).to(torch.uint8), dim=1, stable=True)[:, :n_max]   # real first
    x = torch.gather(x, 1, order.unsqueeze(-1).expand(-1, -1, f))                  # (B, L, F)
    mask = torch.gather(mask, 1, order)                                            # (B, L)
    return x * mask.unsqueeze(-1), mask


def masked_mean(x: Tensor, mask: Tensor | None) -> Tensor:
    """Mean over dim 1 of ``x: (B, L, D)`` counting only ``mask: (B, L)`` positions -> ``(B, D)``.

    >>> masked_mean(torch.tensor([[[1.], [3.], [100.]]]), torch.tensor([[True, True, False]])).tolist()
    [[2.0]]
    """
    return x.mean(1) if mask is None else _masked_mean(x, mask, dim=1)


class Attention(nn.Module):
    """Multi-head softmax attention with a key mask.

    ``softmax(Q K^T / sqrt(d_head) + log m) V`` with ``Q = W_q x_q``, ``K = W_k x_kv``,
    ``V = W_v x_kv``; keys where ``m = 0`` get zero weight.

    Args:
        dim: token width ``D`` (divisible by ``heads``).
        heads: number of heads.
        dropout: dropout on the attention weights (training only).

    ``x_q: (B, Lq, D)``, ``x_kv: (B, Lk, D)``, ``key_mask: (B, Lk)`` bool or None -> ``(B, Lq, D)``.

    >>> Attention(8, heads=2)(torch.randn(3, 4, 8), torch.randn(3, 5, 8)).shape
    torch.Size([3, 4, 8])
    """

    def __init__(self, dim: int, heads: int = 8, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"Attention: dim={dim} is not divisible by heads={heads}; choose heads dividing dim")
        self.heads, self.dropout = heads, dropout
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x_q: Tensor, x_kv: Tensor, key_mask: Tensor | None = None) -> Tensor:
        q = rearrange(self.q(x_q), "b l (h d) -> b h l d", h=self.heads)
        k, v = rearrange(self.kv(x_kv), "b l (two h d) -> two b h l d", two=2, h=self.heads)
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]      # (B, 1, 1, Lk)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(rearrange(o, "b h l d -> b l (h d)"))


class GatedAttentionPool(nn.Module):
    """Gated attention pooling (Ilse, Tomczak & Welling, ICML 2018, Eq. 9).

    For instance embeddings ``h_k`` and each branch ``c``::

        a_ck = softmax_k( w_c^T (tanh(V h_k) * sigmoid(U h_k)) ),    z_c = sum_k a_ck h_k

    Padding instances get zero weight. ``n_branches > 1`` gives the multi-branch
    attention of CLAM-MB (one attention distribution per class).

    Args:
        dim: instance width ``D``.
        hidden: width of the gating layers ``V`` and ``U``.
        n_branches: number of attention branches.
        dropout: dropout after ``tanh`` and ``sigmoid`` (as in CLAM).

    ``h: (B, L, D)``, ``mask: (B, L)`` -> pooled ``(B, n_branches, D)`` and weights ``(B, n_branches, L)``.

    >>> z, a = GatedAttentionPool(4, 3, n_branches=2)(torch.randn(1, 5, 4), torch.ones(1, 5, dtype=torch.bool))
    >>> z.shape, torch.allclose(a.sum(-1), torch.ones(1, 2))
    (torch.Size([1, 2, 4]), True)
    """

    def __init__(self, dim: int, hidden: int, n_branches: int = 1, dropout: float = 0.0):
        super().__init__()
        self.v = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Dropout(dropout))
        self.u = nn.Sequential(nn.Linear(dim, hidden), nn.Sigmoid(), nn.Dropout(dropout))
        self.w = nn.Linear(hidden, n_branches, bias=False)   # a bias would cancel in the softmax

    def forward(self, h: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        scores = self.w(self.v(h) * self.u(h)).transpose(1, 2)                   # (B, C, L)
        if mask is not None:
            scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        a = scores.softmax(-1)
        return a @ h, a                                                           # (B, C, D), (B, C, L)


class TransformerLayer(nn.Module):
    """Post-norm transformer encoder layer (Vaswani et al., 2017; MCAT's set encoders).

    ``x <- LN(x + Attn(x, x)); x <- LN(x + FFN(x))`` with a ReLU feed-forward of width ``ff``.

    ``x: (B, L, D)``, ``mask: (B, L)`` or None -> ``(B, L, D)``.
    """

    def __init__(self, dim: int, heads: int = 8, ff: int | None = None, dropout: float = 0.1):
        super().__init__()
        ff = ff or 2 * dim
        self.attn = Attention(dim, heads, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ff, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        x = self.norm1(x + self.drop(self.attn(x, x, mask)))
        return self.norm2(x + self.drop(self.ffn(x)))


class KroneckerFusion(nn.Module):
    """Kronecker-product fusion of two embeddings (Pathomic Fusion, Chen et al., IEEE TMI 2020).

    Each embedding is reduced to a small width, a constant 1 is appended so that the
    product keeps the unimodal terms, and the flattened outer product is projected::

        z = ReLU(W vec([a; 1] (x) [b; 1]) + c)        ((d_a + 1)(d_b + 1) -> d_out)

    Pathomic Fusion also gates each modality before the product; the late-fusion
    baselines of the comparison use the product itself, which is what is kept here.

    ``a: (B, d_a)``, ``b: (B, d_b)`` -> ``(B, d_out)``.

    >>> fuse = KroneckerFusion(2, 3, 5)
    >>> fuse.fc[0].in_features, fuse(torch.randn(4, 2), torch.randn(4, 3)).shape
    (12, torch.Size([4, 5]))
    """

    def __init__(self, d_a: int, d_b: int, d_out: int, dropout: float = 0.25):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear((d_a + 1) * (d_b + 1), d_out), nn.ReLU(), nn.Dropout(dropout))

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        one = a.new_ones(a.shape[0], 1)
        a1, b1 = torch.cat([a, one], -1), torch.cat([b, one], -1)                 # (B, d_a+1), (B, d_b+1)
        outer = a1.unsqueeze(2) * b1.unsqueeze(1)                                 # (B, d_a+1, d_b+1)
        return self.fc(outer.flatten(1))


def process_level_hierarchy(hierarchy: GenomicHierarchy) -> GenomicHierarchy:
    """A hierarchy whose "functions" are the processes: one gene group per process.

    Each process becomes a single group holding the union of its functions' genes
    (in ascending gene order); feeding it to
    :class:`~survmamba_lite.model.encoders.FunctionEncoder` gives one token per process.

    >>> h = GenomicHierarchy(("a", "b", "c"), ("f1", "f2", "f3"), ("1", "2", "3"),
    ...     ((0,), (1, 2), (2,)), (0, 1, 0), ("p", "q"))
    >>> p = process_level_hierarchy(h)
    >>> p.function_ids, p.function_genes, p.n_processes
    (('p', 'q'), ((0, 2), (1, 2)), 2)
    """
    groups = tuple(tuple(sorted({g for f in fs for g in hierarchy.function_genes[f]}))
                   for fs in hierarchy.process_functions)
    return GenomicHierarchy(
        genes=hierarchy.genes,
        function_ids=hierarchy.process_names,
        function_names=hierarchy.process_names,
        function_genes=groups,
        function_process=tuple(range(hierarchy.n_processes)),
        process_names=hierarchy.process_names,
    )
