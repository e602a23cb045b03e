"""Late fusion of a MIL slide embedding with an SNN genomic embedding (Cat and KP rows of Table 1).

``e_wsi = MIL(slide)`` (ABMIL, CLAM-MB or TransMIL bag embedding) and ``e_rna = SNN(rna)``
(:class:`~survmamba_lite.baselines.genomic.SNNEncoder`, two blocks as the genomic branch of
``PorpoiseMMF`` in mahmoodlab/PORPOISE ``models/model_porpoise.py``) are fused once, at the
bag level:

* ``cat``: ``z = ReLU(W [e_wsi; e_rna])`` (``-> D``);
* ``kp``: Pathomic Fusion's gated Kronecker fusion
  (:class:`~survmamba_lite.baselines.common.GatedKroneckerFusion`, as ``BilinearFusion`` of
  mahmoodlab/PathomicFusion ``fusion.py`` used by PORPOISE's ``fusion="bilinear"``): each
  embedding is gated by the other and reduced to ``fusion_dim`` (32), the Kronecker product
  of the two (each with a 1 appended, ``33 * 33``) goes through ``-> 256 -> D``;
  ``kp_gates=False`` drops the gates.

The hazard logits are ``Linear(D, T)(z)``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from survmamba_lite.baselines.common import FUSIONS, GatedKroneckerFusion, flatten_bag, fusion_name, require_modalities
from survmamba_lite.baselines.genomic import SNNEncoder, check_rna_width
from survmamba_lite.baselines.mil import ABMILEncoder, CLAMEncoder
from survmamba_lite.baselines.transmil import TransMILEncoder
from survmamba_lite.data.bag import GenomicHierarchy, SurvivalBatch

__all__ = ["LateFusion", "ABMILFusion", "CLAMMBFusion", "TransMILFusion", "FUSIONS"]


class LateFusion(nn.Module):
    """Bag-level fusion of a slide encoder and an SNN genomic encoder.

    Args:
        n_bins: number of time bins ``T``.
        hierarchy: gives the gene count of the RNA vector.
        wsi_encoder: module mapping ``(x (B, L, F), mask (B, L))`` to ``(B, out_dim)``.
        fusion: ``"cat"`` or ``"kp"`` (:data:`~survmamba_lite.baselines.common.FUSIONS`;
            ``"concat"`` is read as ``"cat"``).
        dim: model width ``D`` of the SNN and the fused layer.
        fusion_dim: width of each modality before the Kronecker product (``kp`` only).
        dropout: dropout rate.
        kp_gates: gate each modality by the other before the product (``kp`` only; Pathomic Fusion).
    """

    modalities = ("wsi", "rna")
    static_shapes = False            # set by model.him.static_shapes (CUDA graphs)

    def __init__(self, n_bins: int, hierarchy: GenomicHierarchy, wsi_encoder: nn.Module, fusion: str,
                 dim: int, fusion_dim: int, dropout: float, kp_gates: bool = True):
        super().__init__()
        fusion = fusion_name(fusion, "late fusion")
        self.hierarchy, self.fusion = hierarchy, fusion
        self.wsi_encoder = wsi_encoder
        self.rna_encoder = SNNEncoder(hierarchy.n_genes, dim, n_layers=2, dropout=dropout)
        d_wsi = wsi_encoder.out_dim
        if fusion == "cat":
            self.fuse = nn.Sequential(nn.Linear(d_wsi + dim, dim), nn.ReLU(), nn.Dropout(dropout))
        else:
            self.kron = GatedKroneckerFusion(d_wsi, dim, fusion_dim, fusion_dim, dim, hidden=256, dropout=dropout,
                                             gated=kp_gates)
        self.head = nn.Linear(dim, n_bins)

    def forward(self, batch: SurvivalBatch) -> Tensor:
        require_modalities(batch, self)
        check_rna_width(batch.rna, self.hierarchy, self)
        x, mask = flatten_bag(batch.patches, batch.patch_mask, self.static_shapes)
        e_wsi = self.wsi_encoder(x, mask)                                          # (B, d_wsi)
        e_rna = self.rna_encoder(batch.rna)                                        # (B, D)
        if self.fusion == "cat":
            z = self.fuse(torch.cat([e_wsi, e_rna], -1))
        else:
            z = self.kron(e_wsi, e_rna)
        return self.head(z)


class ABMILFusion(LateFusion):
    """ABMIL (Cat) / ABMIL (KP): :class:`~survmamba_lite.baselines.mil.ABMILEncoder` + SNN, late fusion."""

    def __init__(self, n_bins: int, wsi_dim: int, hierarchy: GenomicHierarchy, fusion: str, dim: int = 512,
                 fusion_dim: int = 32, dropout: float = 0.25, kp_gates: bool = True):
        super().__init__(n_bins, hierarchy, ABMILEncoder(wsi_dim, dim, dropout), fusion, dim, fusion_dim, dropout,
                         kp_gates)


class CLAMMBFusion(LateFusion):
    """CLAM-MB (Cat) / CLAM-MB (KP): CLAM's multi-branch attention + SNN, late fusion.

    Without per-class bag classifiers the branches are no longer tied to classes; the
    slide embedding is the concatenation of the ``n_branches`` pooled vectors
    (``n_branches * D``), ``n_branches`` defaulting to ``T`` as in the unimodal CLAM-MB.
    """

    def __init__(self, n_bins: int, wsi_dim: int, hierarchy: GenomicHierarchy, fusion: str, dim: int = 512,
                 fusion_dim: int = 32, n_branches: int | None = None, dropout: float = 0.25, kp_gates: bool = True):
        encoder = CLAMEncoder(wsi_dim, dim, n_branches or n_bins, dropout)
        super().__init__(n_bins, hierarchy, encoder, fusion, dim, fusion_dim, dropout, kp_gates)


class TransMILFusion(LateFusion):
    """TransMIL (Cat) / TransMIL (KP): :class:`~survmamba_lite.baselines.transmil.TransMILEncoder` + SNN."""

    def __init__(self, n_bins: int, wsi_dim: int, hierarchy: GenomicHierarchy, fusion: str, dim: int = 512,
                 fusion_dim: int = 32, heads: int = 8, dropout: float = 0.25, attn_dropout: float = 0.1,
                 kp_gates: bool = True):
        encoder = TransMILEncoder(wsi_dim, dim, heads, attn_dropout)
        super().__init__(n_bins, hierarchy, encoder, fusion, dim, fusion_dim, dropout, kp_gates)
