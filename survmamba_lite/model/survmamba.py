"""SurvMamba (Fig. 2): encoders -> HIM per modality -> IFM per granularity -> adaptive fusion -> hazards.

Data flow for a batch (shape letters as in :mod:`survmamba_lite.shapes`)::

    patches (B, R, P, F) --PatchEncoder-->  (B, R, P, D) --HIM_I--> fine (B, Lp, D), coarse (B, R, D)
    rna (B, G) --FunctionEncoder--> (B, Fn, D) --group by process--> (B, J, K, D)
                                                 --HIM_G--> fine (B, Fn, D), coarse (B, J, D)
    H_f = IFM_f(fine_I, fine_G)        H_c = IFM_c(coarse_I, coarse_G)           (Eq. 7)
    H   = α H_f + (1 − α) H_c,  α = sigmoid(a) learned                          (Eq. 8)
    logits = Linear(Dropout(LayerNorm(H)))  -> (B, T) hazard logits

Where a level has no IFM (ablation models A–E) its fused vector is
``Linear([Pool(T^I), Pool(T^G)])`` (concatenation of the pooled modalities, as in
model A's description). With one modality the fused vector is ``Pool(T)``. Eq. 8
calls α a "learned hyper-parameter"; we keep it in (0, 1) as ``sigmoid(a)`` with
``a`` a learned scalar starting at 0 (α = 0.5).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from survmamba_lite.data.bag import SurvivalBatch
from survmamba_lite.model.config import SurvMambaConfig
from survmamba_lite.model.encoders import FunctionEncoder, PatchEncoder, function_group_index, gather_groups
from survmamba_lite.model.him import HierarchicalInteractionMamba, HIMOutput, masked_mean
from survmamba_lite.model.ifm import InteractionFusionMamba

__all__ = ["SurvMamba"]


class SurvMamba(nn.Module):
    """SurvMamba and its ablations, built from one :class:`SurvMambaConfig`.

    Forward ``batch: SurvivalBatch`` (``patches (B, R, P, F)`` + ``patch_mask (B, R, P)``
    and/or ``rna (B, G)``, as the config's modalities require) -> hazard logits ``(B, T)``.

    >>> from survmamba_lite.data import PatientBag, collate_bags
    >>> cfg = SurvMambaConfig(n_bins=4, wsi_dim=6, modalities=("wsi",), dim=8, d_state=4, variant="C",
    ...                       scan_backend="ref")
    >>> bags = [PatientBag("a", torch.randn(5, 6), torch.tensor([0, 0, 1, 1, 1]), None, 3.0, 1)]
    >>> SurvMamba(cfg)(collate_bags(bags)).shape
    torch.Size([1, 4])
    """

    def __init__(self, config: SurvMambaConfig):
        super().__init__()
        self.config = c = config
        self.modalities = c.modalities

        def him():
            return HierarchicalInteractionMamba(c.dim, c.d_state, c.expand, c.d_conv, c.n_fine_layers,
                                                c.n_coarse_layers, c.grouped, c.coarse, c.bidirectional,
                                                0.0, c.scan_backend, c.conv_backend, c.fuse_directions,
                                                c.recompute_tokens)
        self.encoders = nn.ModuleDict()
        self.him = nn.ModuleDict()
        if "wsi" in c.modalities:
            self.encoders["wsi"] = PatchEncoder(c.wsi_dim, c.dim, c.dropout)
            self.him["wsi"] = him()
        if "rna" in c.modalities:
            self.encoders["rna"] = FunctionEncoder(c.hierarchy, c.dim, c.genomic_hidden, c.dropout)
            self.him["rna"] = him()
            index, mask = function_group_index(c.hierarchy)                  # (J, K) each, built once
            self.register_buffer("function_index", index, persistent=False)
            self.register_buffer("function_mask", mask, persistent=False)
        two = len(c.modalities) == 2

        def fusion(use_ifm: bool) -> nn.Module | None:
            if use_ifm:
                return InteractionFusionMamba(c.dim, c.d_state, c.expand, c.d_conv, c.ifm_align, c.scan_backend,
                                              c.conv_backend, c.recompute_tokens)
            return nn.Linear(2 * c.dim, c.dim) if two else None
        self.fuse_fine = fusion(c.ifm_fine)
        self.fuse_coarse = fusion(c.ifm_coarse) if c.coarse else None
        self.alpha_logit = nn.Parameter(torch.zeros(())) if c.coarse else None
        self.head = nn.Sequential(nn.LayerNorm(c.dim), nn.Dropout(c.dropout), nn.Linear(c.dim, c.n_bins))

    @property
    def alpha(self) -> Tensor | None:
        """α of Eq. 8 (weight of the fine-grained feature), or None without a coarse level."""
        return None if self.alpha_logit is None else torch.sigmoid(self.alpha_logit)

    def encode(self, batch: SurvivalBatch) -> dict[str, HIMOutput]:
        """Run the encoders and HIM of each modality; returns one :class:`HIMOutput` per modality."""
        out = {}
        if "wsi" in self.modalities:
            if batch.patches is None:
                raise ValueError(f"SurvMamba with modality 'wsi' got a batch without slide features "
                                 f"(cases {batch.case_id[:5]}); add features/<slide_id>.h5 or use modalities=('rna',)")
            tokens = self.encoders["wsi"](batch.patches)                      # (B, R, P, D)
            out["wsi"] = self.him["wsi"](tokens, batch.patch_mask)
        if "rna" in self.modalities:
            if batch.rna is None:
                raise ValueError(f"SurvMamba with modality 'rna' got a batch without RNA (cases {batch.case_id[:5]})")
            tokens = self.encoders["rna"](batch.rna)                          # (B, Fn, D)
            mask = self.function_mask                                         # (J, K)
            grouped = gather_groups(tokens, self.function_index, mask)        # (B, J, K, D)
            out["rna"] = self.him["rna"](grouped, mask.expand(grouped.shape[0], -1, -1))
        return out

    def _fuse(self, module: nn.Module | None, seqs: list[tuple[Tensor, Tensor]]) -> Tensor:
        if isinstance(module, InteractionFusionMamba):
            (a1, m1), (a2, m2) = seqs
            return module(a1, m1, a2, m2)
        pooled = [masked_mean(x, m, 1) for x, m in seqs]                    # (B, D) per modality
        return pooled[0] if module is None else module(torch.cat(pooled, dim=-1))

    def features(self, batch: SurvivalBatch) -> Tensor:
        """The final multi-modal feature ``H`` of Eq. 8, ``(B, D)``."""
        enc = self.encode(batch)
        order = [m for m in ("wsi", "rna") if m in enc]                       # a1 = histology, a2 = genomics
        h_f = self._fuse(self.fuse_fine, [(enc[m].fine, enc[m].fine_mask) for m in order])
        if not self.config.coarse:
            return h_f
        h_c = self._fuse(self.fuse_coarse, [(enc[m].coarse, enc[m].coarse_mask) for m in order])
        alpha = self.alpha
        return alpha * h_f + (1 - alpha) * h_c

    def forward(self, batch: SurvivalBatch) -> Tensor:
        return self.head(self.features(batch))                                # (B, T)
