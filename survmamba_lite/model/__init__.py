"""SurvMamba: encoders, HIM (Eq. 5–6), IFM (Algorithm 2, Eq. 7), adaptive fusion (Eq. 8).

Shape letters: the package glossary, :mod:`survmamba_lite.shapes`.
"""
from survmamba_lite.model.config import IFM_ALIGNMENTS, VARIANTS, SurvMambaConfig
from survmamba_lite.model.him import HierarchicalInteractionMamba
from survmamba_lite.model.ifm import InteractionFusionMamba
from survmamba_lite.model.survmamba import SurvMamba

__all__ = ["SurvMamba", "SurvMambaConfig", "VARIANTS", "IFM_ALIGNMENTS", "HierarchicalInteractionMamba",
           "InteractionFusionMamba"]
