"""survmamba_lite: selective state-space models for multi-modal survival prediction.

>>> from survmamba_lite import SurvMamba, SurvMambaConfig
"""
from survmamba_lite.model import SurvMamba, SurvMambaConfig

__version__ = "0.1.0"
__all__ = ["SurvMamba", "SurvMambaConfig", "__version__"]
