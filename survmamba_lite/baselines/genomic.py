"""Genomic (transcriptomics-only) baselines: SNN and SNNTrans.

* :class:`SNN` — self-normalising network (Klambauer et al., "Self-normalizing neural
  networks", NeurIPS 2017) on the concatenated RNA vector, as the survival baseline of
  MCAT and PORPOISE defines it (``SNN`` with ``model_size_omic="small"`` in
  mahmoodlab/MCAT ``models/model_genomic.py`` and mahmoodlab/PORPOISE
  ``models/model_genomic.py``): four blocks ``Linear -> ELU -> AlphaDropout(0.25)`` of width
  256 with SNN initialisation (:class:`~survmamba_lite.model.encoders.SNNBlock`), then
  ``Linear(256, T)``. That code uses ELU where Klambauer et al. use SELU; we follow the
  code (the baseline whose numbers the tables quote) and offer ``activation="selu"``.
* :class:`SNNTrans` — genes grouped by function (KEGG pathway) into tokens, each by its
  own small SNN (:class:`~survmamba_lite.model.encoders.FunctionEncoder`), then TransMIL
  over the function tokens.
"""
from __future__ import annotations

from torch import Tensor, nn

from survmamba_lite.baselines.common import require_modalities
from survmamba_lite.baselines.transmil import TransMILEncoder
from survmamba_lite.data.bag import GenomicHierarchy, SurvivalBatch
from survmamba_lite.model.encoders import FunctionEncoder, SNNBlock

__all__ = ["SNNEncoder", "SNN", "SNNTrans", "check_rna_width"]


def check_rna_width(rna: Tensor, hierarchy: GenomicHierarchy, model: nn.Module) -> None:
    """Raise a clear error when ``rna: (B, G)`` does not match the hierarchy's genes."""
    if rna.shape[-1] != hierarchy.n_genes:
        raise ValueError(f"{type(model).__name__}: the batch has RNA vectors of {rna.shape[-1]} genes but the "
                         f"model was built for a hierarchy of {hierarchy.n_genes}; build the model from the "
                         "same GenomicHierarchy that ordered the cohort's RNA table")


class SNNEncoder(nn.Module):
    """RNA vector -> embedding with ``n_layers`` SNN blocks of width ``D``: ``(B, G) -> (B, D)``."""

    def __init__(self, n_genes: int, dim: int, n_layers: int = 4, dropout: float = 0.25, activation: str = "elu"):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"SNNEncoder: n_layers must be >= 1, got {n_layers}")
        self.out_dim = dim
        self.net = nn.Sequential(SNNBlock(n_genes, dim, dropout, activation),
                                 *(SNNBlock(dim, dim, dropout, activation) for _ in range(n_layers - 1)))

    def forward(self, rna: Tensor) -> Tensor:
        return self.net(rna)


class SNN(nn.Module):
    """SNN survival model (transcriptomics only): :class:`SNNEncoder` then ``Linear(D, T)``.

    Follows ``SNN`` (``model_size_omic="small"``) of mahmoodlab/MCAT and mahmoodlab/PORPOISE
    ``models/model_genomic.py``: ``G -> 256 -> 256 -> 256 -> 256`` SNN blocks and a linear
    classifier, ``256 G + 3 * 256^2 + 4 * 256 + 257 T`` parameters.

    Args:
        n_bins: number of time bins ``T``.
        hierarchy: gives the gene order and count ``G`` of the RNA vector.
        dim: hidden width ``D`` (256 in the original).
        n_layers: number of SNN blocks (4 in the original "small" SNN).
        dropout: alpha-dropout rate (0.25).
        activation: ``"elu"`` (the original code) or ``"selu"`` (Klambauer et al.).
    """

    modalities = ("rna",)

    def __init__(self, n_bins: int, hierarchy: GenomicHierarchy, dim: int = 256, n_layers: int = 4,
                 dropout: float = 0.25, activation: str = "elu"):
        super().__init__()
        self.hierarchy = hierarchy
        self.encoder = SNNEncoder(hierarchy.n_genes, dim, n_layers, dropout, activation)
        self.head = nn.Linear(dim, n_bins)

    def forward(self, batch: SurvivalBatch) -> Tensor:
        require_modalities(batch, self)
        check_rna_width(batch.rna, self.hierarchy, self)
        return self.head(self.encoder(batch.rna))


class SNNTrans(nn.Module):
    """SNNTrans (transcriptomics only): per-function SNN tokens, then TransMIL.

    ``rna (B, G) -> FunctionEncoder -> (B, Fn, D) -> TransMILEncoder -> (B, D) -> Linear(D, T)``.
    The function tokens are laid on TransMIL's square grid in hierarchy order.

    Args:
        n_bins: number of time bins ``T``.
        hierarchy: gene -> function hierarchy.
        dim: model width ``D``.
        heads: TransMIL attention heads.
        fn_hidden: hidden width of each per-function network.
        dropout: alpha-dropout of the function networks.
        attn_dropout: TransMIL attention dropout.
        attention: TransMIL's ``"nystrom"`` attention (default) or ``"exact"``.
    """

    modalities = ("rna",)

    def __init__(self, n_bins: int, hierarchy: GenomicHierarchy, dim: int = 512, heads: int = 8,
                 fn_hidden: int = 64, dropout: float = 0.25, attn_dropout: float = 0.1, attention: str = "nystrom"):
        super().__init__()
        self.hierarchy = hierarchy
        self.functions = FunctionEncoder(hierarchy, dim, hidden=fn_hidden, dropout=dropout)
        self.encoder = TransMILEncoder(dim, dim, heads, attn_dropout, attention)
        self.head = nn.Linear(dim, n_bins)

    def forward(self, batch: SurvivalBatch) -> Tensor:
        require_modalities(batch, self)
        check_rna_width(batch.rna, self.hierarchy, self)
        tokens = self.functions(batch.rna)                                        # (B, Fn, D)
        mask = tokens.new_ones(tokens.shape[:2], dtype=bool)
        return self.head(self.encoder(tokens, mask))
