"""Registry entries for SurvMamba, registered when this module is imported (``import survmamba_lite``
does it, after the baselines; see :mod:`survmamba_lite.registry`).

* ``survmamba``: histology + transcriptomics, the paper's model; ``variant`` A–F selects
  the Table 3 ablations and ``bidirectional=False`` the Fig. 3 unidirectional model.
* ``survmamba-rna``: genomic-only SurvMamba (HIM over KEGG functions grouped by process).
* ``survmamba-wsi``: histology-only SurvMamba (HIM over patches grouped by region).

The single-modality entries default to variant C (multi-grained HIM): IFM needs two modalities.
Every field of :class:`~survmamba_lite.model.config.SurvMambaConfig` except the data ones is an
option (:func:`~survmamba_lite.registry.factory_from_class`).
"""
from __future__ import annotations

from survmamba_lite.model.config import SurvMambaConfig
from survmamba_lite.model.survmamba import SurvMamba
from survmamba_lite.registry import ModelSpec, factory_from_class, register_model

__all__ = ["model_specs", "survmamba_factory"]

_REFERENCE = ("Chen et al., SurvMamba: State space model with multi-grained multi-modal interaction for "
              "survival prediction, 2024")


def survmamba_factory(modalities: tuple[str, ...], default_variant: str):
    """A registry factory building :class:`SurvMamba` for ``modalities``; config fields are its options."""
    return factory_from_class(SurvMambaConfig, then=SurvMamba, defaults={"variant": default_variant},
                              modalities=modalities)


def model_specs() -> list[ModelSpec]:
    """SurvMamba's registry entries, in listing order."""
    return [
        ModelSpec("survmamba", ("wsi", "rna"), survmamba_factory(("wsi", "rna"), "F"),
                  "HIM per modality, IFM at fine and coarse level, adaptive fusion (variants A-F)",
                  _REFERENCE, "SurvMamba"),
        ModelSpec("survmamba-rna", ("rna",), survmamba_factory(("rna",), "C"),
                  "genomic-only SurvMamba: HIM over KEGG functions grouped by process", _REFERENCE),
        ModelSpec("survmamba-wsi", ("wsi",), survmamba_factory(("wsi",), "C"),
                  "histology-only SurvMamba: HIM over patches grouped by region", _REFERENCE),
    ]


for _spec in model_specs():
    register_model(_spec)
