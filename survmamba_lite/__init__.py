"""survmamba_lite: selective state-space models for multi-modal survival prediction.

Importing the package registers every model of the comparison (:mod:`survmamba_lite.registry`):
the Table 1 baselines first, then SurvMamba, each package by a plain import.

>>> from survmamba_lite import SurvMamba, SurvMambaConfig
>>> from survmamba_lite.registry import list_models
>>> [s.name for s in list_models()][:2], [s.name for s in list_models()][-3:]
(['snn', 'snntrans'], ['survmamba', 'survmamba-rna', 'survmamba-wsi'])
"""
import survmamba_lite.baselines  # noqa: F401  (registers the baselines of Table 1)
import survmamba_lite.model.registry_entries  # noqa: F401  (registers SurvMamba, after the baselines)
from survmamba_lite.model import SurvMamba, SurvMambaConfig
from survmamba_lite.version import __version__
__all__ = ["SurvMamba", "SurvMambaConfig", "__version__"]
