"""The one frozen configuration of :class:`~survmamba_lite.model.SurvMamba`.

The ablation models A–F of Table 3 and the unidirectional switch of Fig. 3 are
fields of this config, not copies of the model:

=======  ===========  =============  ==========  ============
variant  HIM fine     HIM coarse     IFM fine    IFM coarse
=======  ===========  =============  ==========  ============
A        (one long sequence per modality, no groups)
B        ✓
C        ✓            ✓
D        ✓            ✓              ✓
E        ✓            ✓                          ✓
F        ✓            ✓              ✓           ✓   (SurvMamba)
=======  ===========  =============  ==========  ============
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from survmamba_lite.data.bag import GenomicHierarchy

__all__ = ["SurvMambaConfig", "VARIANTS", "IFM_ALIGNMENTS"]

#: variant -> (grouped fine tokens, coarse level, IFM at fine level, IFM at coarse level)
VARIANTS: dict[str, tuple[bool, bool, bool, bool]] = {
    "A": (False, False, False, False),
    "B": (True, False, False, False),
    "C": (True, True, False, False),
    "D": (True, True, True, False),
    "E": (True, True, False, True),
    "F": (True, True, True, True),
}

IFM_ALIGNMENTS = ("pool", "interpolate")
MODALITIES = ("wsi", "rna")


@dataclass(frozen=True)
class SurvMambaConfig:
    """Hyper-parameters of SurvMamba.

    Attributes:
        n_bins: ``T``, number of discrete time bins (hazard outputs).
        wsi_dim: ``F``, width of the frozen patch features (768 for CTransPath); None without slides.
        hierarchy: the genomic hierarchy; None without RNA.
        modalities: subset of ``("wsi", "rna")`` the model uses.
        dim: ``D``, token width (paper: 512).
        d_state: ``N``, SSM state size.
        expand: ``E = expand * D``.
        d_conv: causal convolution width.
        n_fine_layers / n_coarse_layers: Bi-Mamba blocks at each HIM level.
        variant: ablation model of Table 3, "A".."F" ("F" is SurvMamba).
        bidirectional: Bi-Mamba (True) or forward-only Mamba (False) in HIM (Fig. 3).
        ifm_align: how IFM aligns two sequences of different lengths, see
            :class:`~survmamba_lite.model.ifm.InteractionFusionMamba`: "pool" or "interpolate".
        genomic_hidden: hidden width of the per-function genomics encoder.
        dropout: dropout in encoders and before the head.
        scan_backend: selective-scan backend ("auto", "parallel", "ref", "mamba_ssm").
        conv_backend: causal depthwise convolution backend ("auto": causal-conv1d's fused
            kernel on CUDA when installed, else "torch"; or "torch", "causal_conv1d").
        fuse_directions: run both Bi-Mamba directions in one convolution and one scan call
            (same function as two calls, fewer GPU kernels).
        recompute_tokens: recompute HIM's fine level and IFM in the backward pass, in slices of
            whole groups of at most this many tokens, when they hold more (None: never).
            Same results, activation memory bounded per slice instead of per slide.

    >>> c = SurvMambaConfig(n_bins=4, wsi_dim=32, hierarchy=None, modalities=("wsi",), variant="C")
    >>> c.grouped, c.coarse, c.ifm_fine, c.ifm_coarse
    (True, True, False, False)
    """

    n_bins: int = 4
    wsi_dim: int | None = 768
    hierarchy: GenomicHierarchy | None = None
    modalities: tuple[str, ...] = MODALITIES
    dim: int = 512
    d_state: int = 16
    expand: int = 2
    d_conv: int = 4
    n_fine_layers: int = 1
    n_coarse_layers: int = 1
    variant: str = "F"
    bidirectional: bool = True
    ifm_align: str = "pool"
    genomic_hidden: int = 64
    dropout: float = 0.1
    scan_backend: str = "auto"
    conv_backend: str = "auto"
    fuse_directions: bool = True
    recompute_tokens: int | None = 16384

    def __post_init__(self) -> None:
        object.__setattr__(self, "modalities", tuple(self.modalities))
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {sorted(VARIANTS)} (Table 3), got {self.variant!r}")
        if self.ifm_align not in IFM_ALIGNMENTS:
            raise ValueError(f"ifm_align must be one of {IFM_ALIGNMENTS}, got {self.ifm_align!r}")
        if not self.modalities or set(self.modalities) - set(MODALITIES):
            raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}, got {self.modalities}")
        if "wsi" in self.modalities and not self.wsi_dim:
            raise ValueError("modality 'wsi' needs wsi_dim (the patch-feature width F of features/<slide_id>.h5)")
        if "rna" in self.modalities and self.hierarchy is None:
            raise ValueError("modality 'rna' needs a GenomicHierarchy (hierarchy.tsv matched to rna.csv)")
        if len(self.modalities) == 1 and (self.ifm_fine or self.ifm_coarse):
            raise ValueError(f"variant {self.variant} uses IFM, which fuses two modalities; with only "
                             f"{self.modalities[0]!r} use variant A, B or C")
        for name in ("n_bins", "dim", "d_state", "expand", "d_conv", "n_fine_layers", "n_coarse_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def grouped(self) -> bool:
        return VARIANTS[self.variant][0]

    @property
    def coarse(self) -> bool:
        return VARIANTS[self.variant][1]

    @property
    def ifm_fine(self) -> bool:
        return VARIANTS[self.variant][2]

    @property
    def ifm_coarse(self) -> bool:
        return VARIANTS[self.variant][3]

    def replace(self, **changes) -> "SurvMambaConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["hierarchy"] = None if self.hierarchy is None else self.hierarchy.to_dict()
        d["modalities"] = list(self.modalities)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SurvMambaConfig":
        d = dict(d)
        if d.get("hierarchy") is not None:
            d["hierarchy"] = GenomicHierarchy.from_dict(d["hierarchy"])
        return cls(**d)
