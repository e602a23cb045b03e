"""The model registry: every model of the comparison by name, built from what the data says.

A model is registered as a :class:`ModelSpec` whose ``factory(inputs, **options)`` builds
it from :class:`ModelInputs` (time-bin count, patch-feature width, genomic hierarchy —
everything a model needs to know about the cohort) plus keyword options (``dim``,
``dropout``, ...). The accepted options are read from the factory's signature, so a
misspelt option is an error that lists the valid ones, not a silently ignored value.

Registration is explicit: a model package calls :func:`register_model` for each of its
specs when it is imported, and this module imports nothing above it. Importing
``survmamba_lite`` imports the two model packages, in Table 1 order:

* ``survmamba_lite.baselines`` — the baselines of Table 1;
* ``survmamba_lite.model.registry_entries`` — SurvMamba and its variants.

So every model is registered as soon as any part of the package is imported; a new model
package registers itself the same way and is imported from ``survmamba_lite/__init__.py``.
Every factory is made by :func:`factory_from_class` (the one way from a constructor or a
config dataclass to a factory).

>>> from survmamba_lite.data.bag import GenomicHierarchy
>>> h = GenomicHierarchy(("a", "b"), ("f1",), ("one",), ((0, 1),), (0,), ("p",))
>>> model = build_model("snn", ModelInputs(n_bins=4, hierarchy=h), dim=8)
>>> model.modalities, get_model_spec("snn").table1_row
(('rna',), 'SNN')
"""
from __future__ import annotations

import difflib
import inspect
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

from torch import Tensor, nn

from survmamba_lite.data.bag import GenomicHierarchy

__all__ = ["ModelInputs", "ModelSpec", "AuxiliaryLossModel", "register_model", "get_model_spec", "list_models",
           "build_model", "accepted_options", "factory_from_class"]

MODALITIES = ("wsi", "rna")
_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class ModelInputs:
    """What the cohort tells a model.

    Attributes:
        n_bins: number of discrete time bins ``T`` (hazard logits per patient).
        wsi_dim: patch-feature width ``F`` of the slide features, None without slides.
        hierarchy: gene -> function -> process hierarchy of the RNA vectors, None without RNA.
    """

    n_bins: int
    wsi_dim: int | None = None
    hierarchy: GenomicHierarchy | None = None

    def __post_init__(self) -> None:
        if int(self.n_bins) < 1:
            raise ValueError(f"ModelInputs: n_bins must be a positive number of time bins, got {self.n_bins}")
        if self.wsi_dim is not None and int(self.wsi_dim) < 1:
            raise ValueError(f"ModelInputs: wsi_dim must be the positive patch-feature width F, got {self.wsi_dim}")


@runtime_checkable
class AuxiliaryLossModel(Protocol):
    """The auxiliary-loss hook: a model whose training loss adds a term of its own to the NLL.

    Its :class:`ModelSpec` names the term (``auxiliary_loss``), and the training step then
    calls :meth:`forward_train` instead of the model itself: one forward pass gives the
    logits and the term, and the loss is ``survival_loss_weight * NLL(logits) + auxiliary``
    (:func:`~survmamba_lite.experiment.step.training_loss`). CLAM's instance-clustering loss
    is one (``0.7 * NLL + 0.3 * instance loss``).
    """

    @property
    def survival_loss_weight(self) -> float:
        """Weight of the survival NLL in the training loss."""

    def forward_train(self, batch: Any) -> tuple[Tensor, Tensor]:
        """``batch`` -> hazard logits ``(B, T)`` and the auxiliary loss (a scalar, already weighted)."""


@dataclass(frozen=True)
class ModelSpec:
    """A registered model.

    Attributes:
        name: registry name, lower case with hyphens (``"abmil-kp"``).
        modalities: the modalities the model reads, a subset of ``("wsi", "rna")``.
        factory: ``factory(inputs: ModelInputs, **options) -> nn.Module``.
        description: one line on the architecture.
        reference: the paper the model comes from.
        table1_row: the row label in the paper's Table 1 (e.g. ``"ABMIL (KP)"``), or None.
        no_cuda_graphs: why a training step of the model cannot be replayed from a CUDA graph
            (``--cuda-graphs``), or None when it can.
        auxiliary_loss: the term the model adds to its training loss, when it has one (the
            model then implements :class:`AuxiliaryLossModel`), or None: the loss is the NLL.
    """

    name: str
    modalities: tuple[str, ...]
    factory: Callable[..., nn.Module]
    description: str
    reference: str
    table1_row: str | None = None
    no_cuda_graphs: str | None = None
    auxiliary_loss: str | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"ModelSpec: name {self.name!r} must be lower case letters/digits joined by hyphens")
        bad = [m for m in self.modalities if m not in MODALITIES]
        if bad or not self.modalities:
            raise ValueError(f"ModelSpec {self.name!r}: modalities must be a non-empty subset of {MODALITIES}, "
                             f"got {self.modalities}")


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` to the registry; a second, different spec under the same name is an error."""
    old = _REGISTRY.get(spec.name)
    if old is not None and old != spec:
        raise ValueError(f"register_model: a model named {spec.name!r} is already registered "
                         f"({old.description}); choose another name")
    _REGISTRY[spec.name] = spec
    return spec


def list_models() -> list[ModelSpec]:
    """All registered models, in registration order (baselines in Table 1 order first)."""
    return list(_REGISTRY.values())


def get_model_spec(name: str) -> ModelSpec:
    """The spec registered under ``name``; an unknown name lists the valid ones and close matches."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(str(name).lower(), list(_REGISTRY), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown model {name!r}.{hint} Registered models: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def accepted_options(spec: ModelSpec) -> dict[str, object] | None:
    """Keyword options of ``spec.factory`` with their defaults (None when it takes any ``**options``)."""
    params = list(inspect.signature(spec.factory).parameters.values())[1:]       # first one is `inputs`
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name: p.default for p in params
            if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)}


def build_model(name: str, inputs: ModelInputs, **options) -> nn.Module:
    """Build the model registered as ``name`` for a cohort described by ``inputs``.

    Raises ValueError for an unknown name, for inputs lacking a modality the model
    reads, and for options the model does not accept.
    """
    spec = get_model_spec(name)
    if "wsi" in spec.modalities and inputs.wsi_dim is None:
        raise ValueError(
            f"model {name!r} reads histology but ModelInputs.wsi_dim is None; pass the patch-feature width F "
            "of the cohort's slide features (the `features` dataset of features/<slide_id>.h5, e.g. 768 "
            "for CTransPath)")
    if "rna" in spec.modalities and inputs.hierarchy is None:
        raise ValueError(
            f"model {name!r} reads transcriptomics but ModelInputs.hierarchy is None; build the "
            "GenomicHierarchy from the cohort's RNA table (e.g. rna_clean.csv, one gene per column) and "
            "the KEGG pathway table (e.g. kegg/kegg352_pathway_class_genes.tsv) and pass it")
    allowed = accepted_options(spec)
    if allowed is not None:
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            hints = []
            for u in unknown:
                close = difflib.get_close_matches(u, list(allowed), n=1, cutoff=0.6)
                hints.append(f"{u!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            listed = ", ".join(f"{k}={v!r}" for k, v in allowed.items()) or "none"
            raise ValueError(f"model {name!r} does not accept option(s) {', '.join(hints)}; "
                             f"accepted options (defaults): {listed}")
    model = spec.factory(inputs, **options)
    if tuple(model.modalities) != tuple(spec.modalities):
        raise TypeError(f"model {name!r}: the built {type(model).__name__} reads {tuple(model.modalities)} "
                        f"but its spec declares {spec.modalities}; fix the ModelSpec")
    if (spec.auxiliary_loss is not None) != isinstance(model, AuxiliaryLossModel):
        raise TypeError(f"model {name!r}: the ModelSpec's auxiliary_loss is {spec.auxiliary_loss!r} but the built "
                        f"{type(model).__name__} {'lacks' if spec.auxiliary_loss else 'has'} the hook "
                        "(survival_loss_weight and forward_train); fix the ModelSpec or the model")
    return model


def factory_from_class(cls: Callable[..., Any], *, then: Callable[[Any], nn.Module] | None = None,
                       defaults: Mapping[str, Any] | None = None, **fixed) -> Callable[..., nn.Module]:
    """A registry factory for a model class (or a config class) whose constructor names its data needs.

    Constructor parameters named like :class:`ModelInputs` fields (``n_bins``,
    ``wsi_dim``, ``hierarchy``) are filled from the inputs, ``fixed`` keyword values are
    bound, and the remaining parameters become the factory's keyword options (its
    signature says so, which :func:`accepted_options` reads), with ``defaults`` replacing
    the constructor's defaults. When ``modalities`` is among ``fixed``, the input of a
    modality it leaves out is passed as None (a genomic-only model gets no ``wsi_dim``).
    With ``then``, the factory returns ``then(cls(...))``: a config dataclass and the model
    built from it (SurvMamba: ``factory_from_class(SurvMambaConfig, then=SurvMamba, ...)``).

    >>> import torch
    >>> class Toy(nn.Module):
    ...     modalities = ("rna",)
    ...     def __init__(self, n_bins, hierarchy, dim=8, kind="a"):
    ...         super().__init__(); self.dim, self.kind = dim, kind
    >>> f = factory_from_class(Toy, kind="b", defaults={"dim": 4})
    >>> list(inspect.signature(f).parameters), f(ModelInputs(3)).kind, f(ModelInputs(3)).dim
    (['inputs', 'dim'], 'b', 4)
    """
    fields = ("n_bins", "wsi_dim", "hierarchy")
    needs = {"wsi_dim": "wsi", "hierarchy": "rna"}
    defaults = dict(defaults or {})
    params = list(inspect.signature(cls).parameters.values())
    data = [p.name for p in params if p.name in fields]
    options = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=inspect.Parameter.empty,
                         default=defaults.get(p.name, p.default))
               for p in params if p.name not in fields and p.name not in fixed]
    unknown = sorted(set(defaults) - {p.name for p in options})
    if unknown:
        raise TypeError(f"factory_from_class({getattr(cls, '__name__', cls)}): defaults for unknown option(s) {unknown}")
    modalities = fixed.get("modalities")

    def factory(inputs: ModelInputs, **opts) -> nn.Module:
        given = {k: (None if modalities is not None and k in needs and needs[k] not in modalities
                     else getattr(inputs, k)) for k in data}
        built = cls(**given, **fixed, **{**defaults, **opts})
        return then(built) if then is not None else built

    factory.__signature__ = inspect.Signature(
        [inspect.Parameter("inputs", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=ModelInputs)] + options)
    name = (then or cls).__name__
    factory.__name__ = factory.__qualname__ = f"build_{name}"
    factory.__doc__ = cls.__doc__
    return factory
