"""Late fusion of a MIL slide embedding with an SNN genomic embedding (Cat and KP rows of Table 1).

``e_wsi = MIL(slide)`` (ABMIL, CLAM-MB or TransMIL bag embedding) and ``e_rna = SNN(rna)``
(:class:`~survmamba_lite.baselines.genomic.SNNEncoder`) are fused once, at the bag level:

* ``cat``: ``z = ReLU(W [e_wsi; e_rna])`` (``-> D``);
* ``kp``: both are reduced to ``fusion_dim`` (``ReLU(Linear)``, 32 by default), then
  Kronecker-product fusion as in Pathomic Fusion
  (:class:`~survmamba_lite.baselines.common.KroneckerFusion`, ``33 * 33 -> D``).

The hazard logits are ``Linear(D, T)(z)``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from survmamba_lite.baselines.common import KroneckerFusion, flatten_bag, require_modalities
from survmamba_lite.baselines.genomic import SNNEncoder, check_rna_width
from survmamba_lite.baselines.mil import ABMILEncoder, CLAMEncoder
from survmamba_lite.baselines.transmil import TransMILEncoder
from survmamba_lite.data.bag import GenomicHierarchy, SurvivalBatch

__all__ = ["LateFusion", "ABMILFusion", "CLAMMBFusion", "TransMILFusion"]

FUSIONS = ("cat", "kp")


class LateFusion(nn.Module):
    """Bag-level fusion of a slide encoder and an SNN genomic encoder.

    Args:
        n_bins: number of time bins ``T``.
        hierarchy: gives the gene count of the RNA vector.
        wsi_encoder: module mapping ``(x (B, L, F), mask (B, L))`` to ``(B, out_dim)``.
        fusion: ``"cat"`` or ``"kp"``.
        dim: model width ``D`` of the SNN and the fused layer.
        fusion_dim: width of each modality before the Kronecker product (``kp`` only).
        dropout: dropout rate.
    """

    modalities = ("wsi", "rna")

    def __init__(self, n_bins: int, hierarchy: GenomicHierarchy, wsi_encoder: nn.Module, fusion: str,
                 dim: int, fusion_dim: int, dropout: float):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"late fusion: unknown fusion {fusion!r}; choose one of {FUSIONS}")
        self.hierarchy, self.fusion = hierarchy, fusion
        self.wsi_encoder = wsi_encoder
        self.rna_encoder = SNNEncoder(hierarchy.n_genes, dim, dropout=dropout)
        d_wsi = wsi_encoder.out_dim
        if fusion == "cat":
            self.fuse = nn.Sequential(nn.Linear(d_wsi + dim, dim), nn.ReLU(), nn.Dropout(dropout))
        else:
            self.reduce_wsi = nn.Sequential(nn.Linear(d_wsi, fusion_dim), nn.ReLU())
            self.reduce_rna = nn.Sequential(nn.Linear(dim, fusion_dim), nn.ReLU())
            self.kron = KroneckerFusion(fusion_dim, fusion_dim, dim, dropout)
        self.head = nn.Linear(dim, n_bins)

    def forward(self, batch: SurvivalBatch) -> Tensor:
        require_modalities(batch, self)
        check_rna_width(batch.rna, self.hierarchy, self)
        e_wsi = self.wsi_encoder(*flatten_bag(batch.patches, batch.patch_mask))    # (B, d_wsi)
        e_rna = self.rna_encoder(batch.rna)                                        # (B, D)
        if self.fusion == "cat":
            z = self.fuse(torch.cat([e_wsi, e_rna], -1))
        else:
            z = self.kron(self.reduce_wsi(e_wsi), self.reduce_rna(e_rna))
        return self.head(z)


class ABMILFusion(LateFusion):
    """ABMIL (Cat) / ABMIL (KP): :class:`~survmamba_lite.baselines.mil.ABMILEncoder` + SNN, late fusion."""

    def __init__(self, n_bins: int, wsi_dim: int, hierarchy: GenomicHierarchy, fusion: str, dim: int = 512,
                 fusion_dim: int = 32, dropout: float = 0.25):
        super().__init__(n_bins, hierarchy, ABMILEncoder(wsi_dim, dim, dropout), fusion, dim, fusion_dim, dropout)


class CLAMMBFusion(LateFusion):
    """CLAM-MB (Cat) / CLAM-MB (KP): CLAM's multi-branch attention + SNN, late fusion.

    Without per-class bag classifiers the branches are no longer tied to classes; the
    slide embedding is the concatenation of the ``n_branches`` pooled vectors
    (``n_branches * D``), ``n_branches`` defaulting to ``T`` as in the unimodal CLAM-MB.
    """

    def __init__(self, n_bins: int, wsi_dim: int, hierarchy: GenomicHierarchy, fusion: str, dim: int = 512,
                 fusion_dim: int = 32, n_branches: int | None = None, dropout: float = 0.25):
        encoder = CLAMEncoder(wsi_dim, dim, n_branches or n_bins, dropout)
        super().__init__(n_bins, hierarchy, encoder, fusion, dim, fusion_dim, dropout)


class TransMILFusion(LateFusion):
    """TransMIL (Cat) / TransMIL (KP): :class:`~survmamba_lite.baselines.transmil.TransMILEncoder` + SNN."""

    def __init__(self, n_bins: int, wsi_dim: int, hierarchy: GenomicHierarchy, fusion: str, dim: int = 512,
                 fusion_dim: int = 32, heads: int = 8, dropout: float = 0.25, attn_dropout: float = 0.1):
        encoder = TransMILEncoder(wsi_dim, dim, heads, attn_dropout)
        super().__init__(n_bins, hierarchy, encoder, fusion, dim, fusion_dim, dropout)
