"""Genomic-guided co-attention models: MCAT and MOTCat.

* :class:`MCAT` — Chen et al., "Multimodal co-attention transformer for survival
  prediction in gigapixel whole slide images", ICCV 2021; follows ``MCAT_Surv`` in
  mahmoodlab/MCAT ``models/model_coattn.py``.
* :class:`MOTCat` — Xu & Chen, "Multimodal optimal transport-based co-attention
  transformer with global structure consistency for survival prediction", ICCV 2023;
  follows ``MOTCAT_Surv`` and ``OT_Attn_assem`` in Innse/MOTCat ``models/model_motcat.py``.

Shared pipeline (``N`` genomic tokens, ``L`` patches, ``D = 256``)::

    H = Drop(ReLU(W_h x))                    patch tokens        (B, L, D)
    G = per-group SNN(rna)                   genomic tokens      (B, N, D)   (two SNN blocks each)
    H^ = CoAttn(G, H)                        genomic-guided WSI  (B, N, D)
    H^ <- Transformer_path(H^),  G <- Transformer_omic(G)      (2 post-norm layers, 8 heads, FF 2D;
                                                               nn.TransformerEncoderLayer and its init)
    h = rho(GatedAttnPool(H^)),  g = rho(GatedAttnPool(G))     (B, D) each
    z = fusion(h, g)   (concat: ReLU(W2 ReLU(W1 [h; g])); or the gated Kronecker fusion)
    logits = Linear(D, T)(z)

MCAT's co-attention is single-head softmax attention with the genomic tokens as queries
and the patches as keys and values (``nn.MultiheadAttention(256, 1)``):
``H^ = W_o softmax(W_q G (W_k H)^T / sqrt(D)) W_v H``. MOTCat replaces it by an
entropic unbalanced optimal-transport plan between the patches and the genomic tokens
(:func:`sinkhorn_log`), ``H^ = pi^T H`` with no projection.

Genomic tokens (``genomic_tokens``): MCAT and MOTCat make one token per gene *family*
(six families: tumour suppressors, oncogenes, protein kinases, cell differentiation
markers, transcription factors, cytokines and growth factors; their
``datasets_csv_sig/signatures.csv``): ``genomic_tokens="family"`` with ``gene_families``
(a path to such a table or a mapping family -> gene symbols) gives those. The family
table is not shipped with this package, so the default is ``"process"``: one token per
KEGG process (~45 groups, the union of the process's pathway genes), the closest
few-group granularity the cohort's own hierarchy offers; ``"function"`` gives one token
per pathway (~350).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from pathlib import Path
from typing import Mapping, Sequence

from survmamba_lite.baselines.common import (Attention, GatedAttentionPool, GatedKroneckerFusion, GroupSNN,
                                             TransformerLayer, flatten_bag, fusion_name, gene_family_hierarchy,
                                             process_level_hierarchy, read_gene_families, require_modalities)
from survmamba_lite.baselines.genomic import check_rna_width
from survmamba_lite.data.bag import GenomicHierarchy, SurvivalBatch

__all__ = ["sinkhorn_log", "MCAT", "MOTCat"]

GENOMIC_TOKENS = ("family", "process", "function")


def genomic_groups(hierarchy: GenomicHierarchy, genomic_tokens: str,
                   gene_families: str | Path | Mapping[str, Sequence[str]] | None, who: str) -> GenomicHierarchy:
    """The gene groups (one genomic token each) for ``genomic_tokens`` = family / process / function."""
    if genomic_tokens not in GENOMIC_TOKENS:
        raise ValueError(f"{who}: genomic_tokens must be one of {GENOMIC_TOKENS}, got {genomic_tokens!r}")
    if genomic_tokens == "family":
        if gene_families is None:
            raise ValueError(f"{who}: genomic_tokens='family' needs gene_families, a CSV with one column per gene "
                             "family (MCAT's datasets_csv_sig/signatures.csv layout) or a mapping family -> genes")
        families = gene_families if isinstance(gene_families, Mapping) else read_gene_families(gene_families)
        return gene_family_hierarchy(hierarchy, families)
    return process_level_hierarchy(hierarchy) if genomic_tokens == "process" else hierarchy


def sinkhorn_log(cost: Tensor, a: Tensor, b: Tensor, eps: float, tau: float | None = None,
                 n_iters: int = 100) -> Tensor:
    """Entropic (optionally unbalanced) optimal-transport plan, log-domain Sinkhorn iterations.

    Solves, for each batch element::

        min_pi  <C, pi> + eps KL(pi | a b^T) + tau KL(pi 1 | a) + tau KL(pi^T 1 | b)

    (``tau = None``: balanced, the marginals are constraints). With dual potentials
    ``f, g`` the plan is ``pi_ij = a_i b_j exp((f_i + g_j - C_ij) / eps)`` and the
    iterations are (Séjourné et al., 2019; ``lam = tau / (tau + eps)``, 1 if balanced)::

        f_i = -lam eps log sum_j b_j exp((g_j - C_ij) / eps)
        g_j = -lam eps log sum_i a_i exp((f_i - C_ij) / eps)

    Zero masses are allowed (padding): those rows/columns of the plan are exactly zero.

    Args:
        cost: ``(B, Gt, L)`` cost matrix ``C``.
        a: ``(B, Gt)`` non-negative source masses.
        b: ``(B, L)`` non-negative target masses.
        eps: entropic regularisation.
        tau: marginal relaxation weight, or None for balanced OT.
        n_iters: number of (f, g) updates.

    Returns:
        the plan ``(B, Gt, L)``.

    >>> pi = sinkhorn_log(torch.rand(1, 3, 4), torch.full((1, 3), 1 / 3), torch.full((1, 4), 1 / 4), 0.1)
    >>> [round(v, 4) for v in pi.sum(1).flatten().tolist()]
    [0.25, 0.25, 0.25, 0.25]
    """
    lam = 1.0 if tau is None else tau / (tau + eps)
    log_a = a.log().unsqueeze(2)                                                  # (B, N, 1), -inf at 0
    log_b = b.log().unsqueeze(1)                                                  # (B, 1, L)
    f = torch.zeros_like(a)
    g = torch.zeros_like(b)
    for _ in range(n_iters):
        f = -lam * eps * torch.logsumexp((g.unsqueeze(1) - cost) / eps + log_b, dim=2)
        g = -lam * eps * torch.logsumexp((f.unsqueeze(2) - cost) / eps + log_a, dim=1)
    return torch.exp((f.unsqueeze(2) + g.unsqueeze(1) - cost) / eps + log_a + log_b)


class _CoAttentionSurvival(nn.Module):
    """The pipeline shared by MCAT and MOTCat; subclasses define :meth:`coattend`."""

    modalities = ("wsi", "rna")
    static_shapes = False            # set by model.him.static_shapes (CUDA graphs)

    def __init__(self, n_bins: int, wsi_dim: int, hierarchy: GenomicHierarchy, dim: int, heads: int,
                 n_layers: int, genomic_tokens: str, gene_families, fusion: str, fusion_dim: int, fn_hidden: int,
                 dropout: float):
        super().__init__()
        fusion = fusion_name(fusion, type(self).__name__)
        self.hierarchy, self.fusion = hierarchy, fusion
        self.groups = genomic_groups(hierarchy, genomic_tokens, gene_families, type(self).__name__)
        self.genomic = GroupSNN(self.groups, dim, hidden=fn_hidden)
        self.patches = nn.Sequential(nn.Linear(wsi_dim, dim), nn.ReLU(), nn.Dropout(dropout))
        self.path_layers = nn.ModuleList(TransformerLayer(dim, heads, 2 * dim, dropout) for _ in range(n_layers))
        self.omic_layers = nn.ModuleList(TransformerLayer(dim, heads, 2 * dim, dropout) for _ in range(n_layers))
        self.path_pool = GatedAttentionPool(dim, dim, dropout=dropout)
        self.omic_pool = GatedAttentionPool(dim, dim, dropout=dropout)
        self.path_rho = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout))
        self.omic_rho = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout))
        if fusion == "cat":
            self.fuse = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU())
        else:   # MCAT's "bilinear": BilinearFusion(dim1=256, dim2=256, scale_dim1=8, scale_dim2=8, mmhid=256)
            self.fuse_kp = GatedKroneckerFusion(dim, dim, fusion_dim, fusion_dim, dim, hidden=256, dropout=dropout)
        self.head = nn.Linear(dim, n_bins)

    def coattend(self, g: Tensor, h: Tensor, mask: Tensor) -> Tensor:
        """``g: (B, Gt, D)``, ``h: (B, L, D)``, ``mask: (B, L)`` -> ``(B, Gt, D)``."""
        raise NotImplementedError

    def forward(self, batch: SurvivalBatch) -> Tensor:
        require_modalities(batch, self)
        check_rna_width(batch.rna, self.hierarchy, self)
        x, mask = flatten_bag(batch.patches, batch.patch_mask, self.static_shapes)
        h = self.patches(x)                                                       # (B, L, D)
        g = self.genomic(batch.rna)                                               # (B, Gt, D)
        hc = self.coattend(g, h, mask)                                            # (B, Gt, D)
        for layer in self.path_layers:
            hc = layer(hc)
        for layer in self.omic_layers:
            g = layer(g)
        e_path = self.path_rho(self.path_pool(hc)[0][:, 0])                       # (B, D)
        e_omic = self.omic_rho(self.omic_pool(g)[0][:, 0])                        # (B, D)
        if self.fusion == "cat":
            z = self.fuse(torch.cat([e_path, e_omic], -1))
        else:
            z = self.fuse_kp(e_path, e_omic)
        return self.head(z)


class MCAT(_CoAttentionSurvival):
    """MCAT: genomic-guided co-attention (softmax attention, genomic queries over patches).

    Args:
        n_bins: number of time bins ``T``.
        wsi_dim: patch-feature width ``F``.
        hierarchy: gene -> function -> process hierarchy.
        dim: model width ``D``.
        heads: heads of the per-modality transformers (the co-attention has one head, as in MCAT).
        n_layers: transformer layers per modality (2 in MCAT).
        genomic_tokens: ``"family"`` (MCAT's, needs ``gene_families``), ``"process"`` (default)
            or ``"function"``, see the module notes.
        gene_families: path to a gene-family table or a mapping family -> gene symbols.
        fusion: ``"cat"`` (concatenation, MCAT's default; ``"concat"`` is accepted as its old spelling) or ``"kp"`` (gated Kronecker fusion, MCAT's "bilinear").
        fusion_dim: width of each modality before the Kronecker product (``kp`` only; 256 / 8 = 32).
        fn_hidden: hidden width of each genomic group's SNN (256).
        dropout: dropout rate (0.25).
    """

    def __init__(self, n_bins: int, wsi_dim: int, hierarchy: GenomicHierarchy, dim: int = 256, heads: int = 8,
                 n_layers: int = 2, genomic_tokens: str = "process",
                 gene_families: str | Path | Mapping[str, Sequence[str]] | None = None, fusion: str = "cat",
                 fusion_dim: int = 32, fn_hidden: int = 256, dropout: float = 0.25):
        super().__init__(n_bins, wsi_dim, hierarchy, dim, heads, n_layers, genomic_tokens, gene_families, fusion,
                         fusion_dim, fn_hidden, dropout)
        self.coattn = Attention(dim, heads=1, init="mha")          # nn.MultiheadAttention(256, 1)

    def coattend(self, g: Tensor, h: Tensor, mask: Tensor) -> Tensor:
        return self.coattn(g, h, mask)


class MOTCat(_CoAttentionSurvival):
    """MOTCat: optimal-transport co-attention between the patches and the genomic tokens.

    As ``OT_Attn_assem`` (Innse/MOTCat ``models/model_motcat.py``, ``impl="pot-uot-l2"``):
    both token sets are first shifted per token by their minimum feature,
    ``normalize_feature(x) = x - min_d x_d`` (every token then has minimum 0), the cost is
    the squared Euclidean distance of the shifted tokens scaled by its maximum over the
    patient's real pairs, ``C_ij = |g~_i - h~_j|^2 / max C``, and the plan ``pi`` (uniform
    marginals ``1/N`` over genomic tokens and ``1/n`` over the patient's ``n`` real patches;
    unbalanced with ``ot_tau`` as in MOTCat, balanced if ``ot_tau`` is None) transports
    patches to genomic tokens. The co-attended tokens are ``H^ = pi^T H`` (in MOTCat's
    orientation, ``(Gt, L) @ (L, D)`` here): the *unshifted* patch tokens weighted by the
    plan, without rescaling, so a genomic token's row carries the mass ``~1/N`` the plan
    gives it. As with the external OT solver of the original, the plan is by default a
    constant for back-propagation (gradients reach the patches through ``pi^T H``);
    ``differentiable_plan=True`` back-propagates through the iterations. MOTCat's
    approximation of the plan by averaging over random mini-batches of patches (to save
    memory on very large bags) is not used: the plan is computed over the whole bag.

    Scale. With ``N`` genomic tokens the rows of ``H^`` have norm ~``(plan mass) / N`` of the
    bag's mean token: with 45 process tokens ~1/150 of a patch token's (6 families: ~1/22).
    The path transformer starts as ``nn.TransformerEncoderLayer`` does, with zero attention
    biases (:class:`~survmamba_lite.baselines.common.TransformerLayer`), so such small tokens
    still reach it; with biased projections a constant swamped them and the histology branch
    did not learn. The entropic term is ``eps KL(pi | a b^T)`` (POT's ``reg_type="kl"``, its
    default since 0.9.5); the POT of MOTCat's time used the all-ones reference
    (``K = exp(-M / eps)``), whose plan, for uniform marginals, is ours times
    ``(N n)^((1 - lam) / (1 + lam))`` (``lam = tau / (tau + eps)``: ~3 at 45 tokens and 5,000 patches).

    Args:
        ot_reg: entropic regularisation ``eps`` (0.1 in MOTCat).
        ot_tau: marginal relaxation ``tau`` (0.5 in MOTCat), None for balanced OT.
        ot_iters: Sinkhorn iterations.
        differentiable_plan: back-propagate through the Sinkhorn iterations.
        Other arguments as :class:`MCAT`.
    """

    def __init__(self, n_bins: int, wsi_dim: int, hierarchy: GenomicHierarchy, dim: int = 256, heads: int = 8,
                 n_layers: int = 2, genomic_tokens: str = "process",
                 gene_families: str | Path | Mapping[str, Sequence[str]] | None = None, fusion: str = "cat",
                 fusion_dim: int = 32, fn_hidden: int = 256, dropout: float = 0.25, ot_reg: float = 0.1,
                 ot_tau: float | None = 0.5, ot_iters: int = 100, differentiable_plan: bool = False):
        super().__init__(n_bins, wsi_dim, hierarchy, dim, heads, n_layers, genomic_tokens, gene_families, fusion,
                         fusion_dim, fn_hidden, dropout)
        self.ot_reg, self.ot_tau, self.ot_iters = ot_reg, ot_tau, ot_iters
        self.differentiable_plan = differentiable_plan

    @staticmethod
    def normalize_feature(x: Tensor) -> Tensor:
        """MOTCat's per-token shift ``x - min_d x_d``: ``(..., D) -> (..., D)``, every token's minimum is 0."""
        return x - x.amin(-1, keepdim=True)

    def transport_plan(self, g: Tensor, h: Tensor, mask: Tensor) -> Tensor:
        """``g: (B, Gt, D)``, ``h: (B, L, D)``, ``mask: (B, L)`` -> plan ``(B, Gt, L)``, at least float32.

        Computed in float32 whatever the autocast: the cost ``|g|^2 + |h|^2 - 2 g.h`` cancels,
        and in bf16 it is mostly rounding noise, from which Sinkhorn makes an arbitrary plan.
        """
        with torch.set_grad_enabled(self.differentiable_plan and torch.is_grad_enabled()), \
                torch.autocast(g.device.type, enabled=False):
            wide = torch.promote_types(g.dtype, torch.float32)         # float64 stays float64
            g, h = g.to(wide), h.to(wide)
            if not self.differentiable_plan:
                g, h = g.detach(), h.detach()
            g, h = self.normalize_feature(g), self.normalize_feature(h)
            cost = ((g * g).sum(-1, keepdim=True) + (h * h).sum(-1).unsqueeze(1)
                    - 2 * g @ h.transpose(1, 2)).clamp_min(0.0)                   # (B, N, L) = |g_i - h_j|^2
            keep = mask.unsqueeze(1)
            scale = cost.masked_fill(~keep, 0.0).amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
            cost = torch.where(keep, cost / scale, torch.zeros_like(cost))
            a = g.new_full(g.shape[:2], 1.0 / g.shape[1])                         # (B, N)
            b = mask.to(h.dtype) / mask.sum(1, keepdim=True).to(h.dtype)          # (B, L), 0 at padding
            return sinkhorn_log(cost, a, b, self.ot_reg, self.ot_tau, self.ot_iters)

    def coattend(self, g: Tensor, h: Tensor, mask: Tensor) -> Tensor:
        return self.transport_plan(g, h, mask).to(h.dtype) @ h                    # (B, Gt, D) = pi^T H
