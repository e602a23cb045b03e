"""Registry entries for SurvMamba (read by :mod:`survmamba_lite.registry`).

* ``survmamba``: histology + transcriptomics, the paper's model; ``variant`` A–F selects
  the Table 3 ablations and ``bidirectional=False`` the Fig. 3 unidirectional model.
* ``survmamba-rna``: genomic-only SurvMamba (HIM over KEGG functions grouped by process).
* ``survmamba-wsi``: histology-only SurvMamba (HIM over patches grouped by region).

The single-modality entries default to variant C (multi-grained HIM): IFM needs two modalities.
"""
from __future__ import annotations

import dataclasses
import inspect

from survmamba_lite.model.config import SurvMambaConfig
from survmamba_lite.model.survmamba import SurvMamba
from survmamba_lite.registry import ModelInputs, ModelSpec

__all__ = ["model_specs", "survmamba_factory"]

_DATA_FIELDS = ("n_bins", "wsi_dim", "hierarchy", "modalities")
_REFERENCE = ("Chen et al., SurvMamba: State space model with multi-grained multi-modal interaction for "
              "survival prediction, 2024")


def survmamba_factory(modalities: tuple[str, ...], default_variant: str):
    """A registry factory building :class:`SurvMamba` for ``modalities``; config fields are its options."""
    fields = [f for f in dataclasses.fields(SurvMambaConfig) if f.name not in _DATA_FIELDS]

    def factory(inputs: ModelInputs, **options) -> SurvMamba:
        options.setdefault("variant", default_variant)
        config = SurvMambaConfig(n_bins=inputs.n_bins, wsi_dim=inputs.wsi_dim if "wsi" in modalities else None,
                                 hierarchy=inputs.hierarchy if "rna" in modalities else None,
                                 modalities=modalities, **options)
        return SurvMamba(config)

    params = [inspect.Parameter("inputs", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=ModelInputs)]
    params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                 default=default_variant if f.name == "variant" else f.default) for f in fields]
    factory.__signature__ = inspect.Signature(params)
    factory.__doc__ = SurvMambaConfig.__doc__
    return factory


def model_specs() -> list[ModelSpec]:
    return [
        ModelSpec("survmamba", ("wsi", "rna"), survmamba_factory(("wsi", "rna"), "F"),
                  "HIM per modality, IFM at fine and coarse level, adaptive fusion (variants A-F)",
                  _REFERENCE, "SurvMamba"),
        ModelSpec("survmamba-rna", ("rna",), survmamba_factory(("rna",), "C"),
                  "genomic-only SurvMamba: HIM over KEGG functions grouped by process", _REFERENCE),
        ModelSpec("survmamba-wsi", ("wsi",), survmamba_factory(("wsi",), "C"),
                  "histology-only SurvMamba: HIM over patches grouped by region", _REFERENCE),
    ]
