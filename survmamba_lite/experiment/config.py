r"""The one frozen configuration of a cross-validation experiment.

Everything that changes a result lives in :class:`ExperimentConfig`; the command line
(``survmamba cv``), the notebooks and papermill parameter cells all build this same
object, and :func:`~survmamba_lite.experiment.cv.run_cv` writes it as ``config.json``
next to every result it produces.

Training follows the paper's Sec. 4.1 unless a field says otherwise: RAdam, learning
rate :math:`2\times10^{-4}`, weight decay :math:`5\times10^{-3}`, batch size 1, and the
discrete-time NLL of :func:`~survmamba_lite.survival.nll_loss` over ``n_bins = 4``
quantile bins of the training deaths.

Decisions the paper leaves open:

* ``alpha = 0.0``: the plain discrete-time likelihood. ``nll_loss`` weighs the loss as
  :math:`(1-\alpha)(u + c) + \alpha u` (``u`` the uncensored, ``c`` the censored part);
  MCAT's training script passes 0.0, its loss function's default is 0.4. Set 0.4 to
  up-weight observed deaths as that default does.
* ``epochs = 20`` (MCAT, MOTCat and SurvPath train for 20 epochs), no early stopping: the
  model of the **last** epoch is evaluated. Picking the epoch with the best validation
  c-index would tune on the folds that are then reported.
* ``grad_accum = 1``: one optimiser step per batch (MCAT accumulates 32 patients; set
  ``grad_accum=32`` for that).

Fields used only for quick CPU runs (courses, tests) and recorded like any other:

* ``max_cases``: keep a seeded random subset of this many cases (cross-validation folds
  restricted to it, so every kept case is still in exactly one validation fold).
* ``max_patches``: at most this many patches per patient bag (all slides of a case
  together; one slide per case is the norm). Training draws a fresh random subset every
  epoch (seeded per fold and epoch); evaluation uses one fixed subset per case, so
  predictions do not depend on the epoch or the fold. Patches keep their slide order.

Operational fields (:data:`OPERATIONAL_FIELDS`: ``out_dir``, ``device``,
``num_workers``, ``threads``) say where and how fast a run goes, not what it computes;
a run may be resumed with other values for them.

>>> cfg = ExperimentConfig.from_params(model="survmamba", cohort_dir="cohorts/blca", out_dir="runs/a",
...                                    variant="C", dim=64, epochs=5, folds=[0, 1])
>>> cfg.model_options["variant"], cfg.folds, cfg.modalities, cfg.lr
('C', (0, 1), ('wsi', 'rna'), 0.0002)
>>> ExperimentConfig.from_dict(cfg.to_dict()) == cfg
True
>>> try:
...     ExperimentConfig(model="abmil", cohort_dir="c", out_dir="o", model_options={"variant": "C"})
... except ValueError as err:
...     print(str(err).split(";")[0])
model 'abmil' does not accept option 'variant' (accepted by: survmamba, survmamba-rna, survmamba-wsi)
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from survmamba_lite.registry import accepted_options, get_model_spec, list_models
from survmamba_lite.utils.io import atomic_write_text
from survmamba_lite.utils.precision import check_precision

__all__ = ["ExperimentConfig", "ConfigError", "OPERATIONAL_FIELDS", "OPTIMIZERS", "config_differences"]

#: fields that do not change what a run computes (a run may resume with other values)
OPERATIONAL_FIELDS = ("out_dir", "device", "num_workers", "threads")
OPTIMIZERS = ("radam", "radam-decoupled", "adam", "adamw")
#: what every run names itself; the other fields are training settings (:meth:`ExperimentConfig.fields_in`)
RUN_FIELDS = ("model", "cohort_dir", "out_dir", "model_options")
#: integer fields and their least value (None allowed for the second group)
_INTEGERS = {"epochs": 1, "batch_size": 1, "grad_accum": 1, "n_bins": 1, "n_folds": 2, "num_workers": 0, "seed": 0}
_OPTIONAL_INTEGERS = {"max_patches": 1, "max_cases": 1, "threads": 1}


class ConfigError(ValueError):
    """A number the config may not hold: the ``field``, its ``value`` and the ``rule`` it breaks.

    The one place where the numbers of a run are checked; the command line names the flag
    instead of the field (:meth:`as_flag`).

    >>> err = ConfigError("n_folds", 1, "must be an integer >= 2")
    >>> str(err), err.as_flag()
    ('n_folds 1: must be an integer >= 2', '--n-folds 1: must be an integer >= 2')
    """

    def __init__(self, field: str, value: Any, rule: str):
        self.field, self.value, self.rule = field, value, rule
        shown = value if isinstance(value, (int, float)) and not isinstance(value, bool) else repr(value)
        self.shown = str(shown)
        super().__init__(f"{field} {shown}: {rule}")

    def as_flag(self) -> str:
        """The message with the command-line flag (``--n-folds``) in place of the field."""
        return f"--{self.field.replace('_', '-')} {self.shown}: {self.rule}"


def _options_error(model: str, unknown: list[str], allowed: dict[str, Any]) -> str:
    parts = []
    for key in unknown:
        takers = [s.name for s in list_models() if (opts := accepted_options(s)) is None or key in opts]
        close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        parts.append(f"option {key!r}{hint}" + (f" (accepted by: {', '.join(takers)})" if takers else ""))
    listed = ", ".join(f"{k}={v!r}" for k, v in allowed.items()) or "none"
    return f"model {model!r} does not accept {'; '.join(parts)}; options of {model!r} (defaults): {listed}"


def _fold_indices(folds: Any) -> tuple | None:
    """``folds`` as a tuple (checked later); text as papermill's ``-p folds "[0, 1]"`` passes it is read as
    a list ("[0, 1]", "0,1", "0 1" or "2"; "None" for every fold).

    >>> _fold_indices("[9]"), _fold_indices("0, 1"), _fold_indices(2), _fold_indices("None")
    ((9,), (0, 1), (2,), None)
    """
    if folds is None:
        return None
    if isinstance(folds, str):
        text = folds.strip()
        if text.lower() in ("none", "null", ""):
            return None
        parts = [p for p in re.split(r"[\s,]+", text.strip("[]() ")) if p]
        try:
            return tuple(int(p) for p in parts)
        except ValueError:
            raise ConfigError("folds", folds, "must be fold indices, e.g. [0, 1] (papermill: -p folds '[0, 1]' "
                                              "or -y 'folds: [0, 1]'); None runs every fold") from None
    if isinstance(folds, (int, float)) and not isinstance(folds, bool):
        return (folds,)
    try:
        return tuple(folds)
    except TypeError:
        raise ConfigError("folds", folds, "must be a list of fold indices, e.g. [0, 1]; None runs every fold") from None


@dataclass(frozen=True)
class ExperimentConfig:
    """Hyper-parameters and inputs of one k-fold cross-validation run (see the module docstring).

    Attributes:
        model: registry name (``survmamba list`` / ``survmamba models``).
        cohort_dir: cohort folder (``manifest.yaml``, ``clinical.csv``, ...).
        out_dir: run directory (``config.json``, ``fold_{k}/``, ``summary.json``).
        model_options: keyword options of the model's registry factory (``dim``,
            ``variant``, ``bidirectional``, ...); unknown ones are an error.
        folds: fold indices to run, None for every fold of the cohort.
        epochs: training epochs per fold (the last epoch's model is evaluated).
        optimizer: ``"radam"`` (paper; PyTorch's RAdam, ``weight_decay`` as an L2 term added
            to the gradient), ``"radam-decoupled"`` (RAdam whose weight decay shrinks the
            weights directly by ``lr * weight_decay`` per step, as the RAdam of SurvPath's code
            does), ``"adam"`` or ``"adamw"``.
        lr: learning rate.
        weight_decay: weight decay (L2 for ``radam``/``adam``, decoupled for ``radam-decoupled``
            and ``adamw``).
        batch_size: patients per batch (paper: 1; larger batches are zero padded).
        grad_accum: batches whose gradients are summed per optimiser step.
        n_bins: requested time bins ``T`` (fewer when tied quantiles merge).
        alpha: weight of the extra uncensored term of the NLL, in ``[0, 1]``.
        seed: master seed; fold ``k`` and epoch ``e`` derive theirs from it.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        max_patches: at most this many patches per patient bag, None for all.
        max_cases: keep a seeded subset of this many cases, None for all.
        n_folds: folds made with ``make_folds`` when the cohort has no ``splits/``.
        rna_log1p: apply ``log1p`` before the per-gene z-score (raw counts/TPM).
        num_workers: DataLoader worker processes reading slide features.
        threads: CPU threads for torch (None: torch's default). On a shared or small
            machine 1 thread per run is often fastest for these small models.
        precision: ``"fp32"``, ``"tf32"`` (float32 with TF32 tensor-core matrix products on
            CUDA) or ``"bf16"`` (bfloat16 autocast; parameters, optimiser, the SSM state and the
            loss stay float32); see :mod:`survmamba_lite.utils.precision`. Part of what a run
            computes: a run is not resumed under another precision.
        cuda_graphs: replay every training step from a CUDA graph
            (:class:`~survmamba_lite.experiment.step.GraphedTrainStep`: one graph per bucket of
            slide shapes, padding masked). Needs CUDA and ``grad_accum = 1``; the optimiser is
            built with ``capturable=True``. Dropout draws differ from an eager run, so this is part
            of what a run computes.
    """

    model: str
    cohort_dir: str
    out_dir: str
    model_options: Mapping[str, Any] = field(default_factory=dict)
    folds: tuple[int, ...] | None = None
    epochs: int = 20
    optimizer: str = "radam"
    lr: float = 2e-4
    weight_decay: float = 5e-3
    batch_size: int = 1
    grad_accum: int = 1
    n_bins: int = 4
    alpha: float = 0.0
    seed: int = 0
    device: str = "auto"
    max_patches: int | None = None
    max_cases: int | None = None
    n_folds: int = 5
    rna_log1p: bool = False
    num_workers: int = 0
    threads: int | None = None
    precision: str = "fp32"
    cuda_graphs: bool = False

    def __post_init__(self) -> None:
        spec = get_model_spec(self.model)           # unknown model: the registry's message
        options = dict(sorted(dict(self.model_options).items()))
        allowed = accepted_options(spec)
        if allowed is not None:
            unknown = sorted(set(options) - set(allowed))
            if unknown:
                raise ValueError(_options_error(self.model, unknown, allowed))
        object.__setattr__(self, "model_options", types.MappingProxyType(options))
        object.__setattr__(self, "cohort_dir", str(self.cohort_dir))
        object.__setattr__(self, "out_dir", str(self.out_dir))
        object.__setattr__(self, "folds", _fold_indices(self.folds))
        self._check_numbers()
        if self.folds is not None:
            object.__setattr__(self, "folds", tuple(sorted(int(f) for f in self.folds)))
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not (self.device in ("auto", "cpu", "cuda") or str(self.device).startswith("cuda:")):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        check_precision(self.precision)
        if self.cuda_graphs and self.grad_accum != 1:
            raise ValueError(f"cuda_graphs replays one optimiser step per batch; it needs grad_accum = 1, "
                             f"got {self.grad_accum}")
        if self.cuda_graphs and self.device == "cpu":
            raise ValueError("cuda_graphs needs a CUDA device; use device 'auto', 'cuda' or 'cuda:N'")
        if self.cuda_graphs and spec.no_cuda_graphs:
            raise ValueError(f"model {self.model!r} cannot be trained with cuda_graphs: {spec.no_cuda_graphs}; "
                             "drop --cuda-graphs for it")

    def _check_numbers(self) -> None:
        """Every number of the config (:class:`ConfigError` names the first one out of range)."""
        for name, low in {**_INTEGERS, **_OPTIONAL_INTEGERS}.items():
            v = getattr(self, name)
            if v is None and name in _OPTIONAL_INTEGERS:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v or v < low:
                raise ConfigError(name, v, f"must be an integer >= {low}")
        if self.folds is not None:
            folds = list(self.folds)
            if not folds or len(set(folds)) != len(folds):
                raise ConfigError("folds", folds, "must be distinct fold indices (None: every fold)")
            for k in folds:
                if isinstance(k, bool) or not isinstance(k, (int, float)) or int(k) != k or k < 0:
                    raise ConfigError("folds", k, "fold indices are integers from 0")
        for name in ("lr", "weight_decay", "alpha"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(name, v, "must be a finite number")
        if not self.lr > 0:
            raise ConfigError("lr", self.lr, "must be > 0")
        if not self.weight_decay >= 0:
            raise ConfigError("weight_decay", self.weight_decay, "must be >= 0")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError("alpha", self.alpha, "must lie in [0, 1]")

    # ------------------------------------------------------------------ derived
    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities the model reads (from the registry)."""
        return tuple(get_model_spec(self.model).modalities)

    def resolved_model_options(self) -> dict[str, Any]:
        """The model's options with the factory defaults filled in (what is actually built)."""
        allowed = accepted_options(get_model_spec(self.model)) or {}
        return {**allowed, **self.model_options}

    def replace(self, **changes: Any) -> "ExperimentConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of every field."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["model_options"] = dict(self.model_options)
        d["folds"] = None if self.folds is None else list(self.folds)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ExperimentConfig":
        """Inverse of :meth:`to_dict`; a ``config.json``'s informational ``derived`` block is ignored."""
        d = {k: v for k, v in d.items() if k != "derived"}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"ExperimentConfig: unknown field(s) {unknown}; valid fields: {sorted(names)}")
        return cls(**d)

    @classmethod
    def fields_in(cls, namespace: Any) -> dict[str, Any]:
        """The training settings an argparse namespace holds, by field name (its options are
        named as the fields: ``--weight-decay`` is ``weight_decay``): the one way from
        command-line flags to a config, which then checks them. ``model``, ``cohort_dir``,
        ``out_dir`` and ``model_options`` are left to the caller.

        >>> import argparse
        >>> ExperimentConfig.fields_in(argparse.Namespace(epochs=3, lr=1e-3, data_root="d"))
        {'epochs': 3, 'lr': 0.001}
        """
        return {f.name: getattr(namespace, f.name) for f in dataclasses.fields(cls)
                if f.name not in RUN_FIELDS and hasattr(namespace, f.name)}

    @classmethod
    def from_params(cls, **params: Any) -> "ExperimentConfig":
        """Build from one flat namespace, as a papermill parameter cell has it.

        Keys naming a config field set it; every other key is a model option
        (``variant="C"``, ``dim=64``, ``bidirectional=False``). A model option set to
        None is left at the model's default, so a notebook can declare ``variant = None``
        and still run a baseline. ``model_options={...}`` may also be passed whole.

        >>> ExperimentConfig.from_params(model="abmil", cohort_dir="c", out_dir="o", variant=None,
        ...                              dim=32).model_options
        mappingproxy({'dim': 32})
        """
        names = {f.name for f in dataclasses.fields(cls)}
        fields_ = {k: v for k, v in params.items() if k in names and k != "model_options"}
        options = dict(params.get("model_options") or {})
        options.update({k: v for k, v in params.items() if k not in names})
        options = {k: v for k, v in options.items() if v is not None}
        return cls(**fields_, model_options=options)

    def save(self, path: str | os.PathLike, derived: Mapping[str, Any] | None = None) -> Path:
        """Write ``path`` (JSON) atomically; ``derived`` adds an informational block
        (cohort name, modalities, ...) that :meth:`load` ignores."""
        path = Path(path)
        payload = self.to_dict()
        if derived is not None:
            payload["derived"] = dict(derived)
        return atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ExperimentConfig":
        """Read a ``config.json`` written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no config.json; is this a run directory of `survmamba cv`?")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
        return cls.from_dict(data)


def config_differences(old: ExperimentConfig, new: ExperimentConfig,
                       ignore: tuple[str, ...] = OPERATIONAL_FIELDS) -> dict[str, tuple[Any, Any]]:
    """Fields (other than ``ignore``) whose values differ: ``{name: (old, new)}``.

    >>> a = ExperimentConfig("snn", "c", "o", epochs=2)
    >>> config_differences(a, a.replace(epochs=3, device="cpu"))
    {'epochs': (2, 3)}
    """
    a, b = old.to_dict(), new.to_dict()
    return {k: (a[k], b[k]) for k in a if k not in ignore and a[k] != b[k]}
