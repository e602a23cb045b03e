"""Typed model options from text: ``--set KEY=VALUE`` read against the option's declared type.

A model's options and their defaults come from its registry factory's signature
(:func:`~survmamba_lite.registry.accepted_options`); the type of the default is the
option's declared type. Text is converted to it strictly, so a wrong value is an error
naming the option and the type, never a silently different model:

=========  ===================================================================
type       accepted text
=========  ===================================================================
bool       ``true``/``false``/``1``/``0`` in any case
int        an integer (``8``; not ``1.5`` or ``abc``)
float      a finite number (``0.25``, ``1e-3``)
str        any text (the model checks its choices, e.g. ``variant``)
None       (an option whose default is None) ``none``/``null``, else an integer
=========  ===================================================================

>>> coerce_option("survmamba", "bidirectional", "False"), coerce_option("survmamba", "d_state", "8")
(False, 8)
>>> coerce_option("survmamba", "d_state", "1.5")
Traceback (most recent call last):
...
survmamba_lite.errors.UserError: --set d_state=1.5: option 'd_state' of model 'survmamba' is an integer (default 16); got '1.5'
"""
from __future__ import annotations

import argparse
import math

from survmamba_lite.errors import UserError

__all__ = ["split_option", "coerce_option", "coerce_options"]

_TRUE, _FALSE = ("true", "1"), ("false", "0")
_TYPE_NAMES = {bool: "a boolean (true/false/1/0)", int: "an integer", float: "a number", str: "text"}


def split_option(text: str) -> tuple[str, str]:
    """``"KEY=VALUE"`` -> ``(KEY, VALUE)`` as text (argparse ``type=``; the value is typed later).

    >>> split_option("ifm_align=interpolate")
    ('ifm_align', 'interpolate')
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. d_state=8), got {text!r}")
    return key.strip(), value.strip()


def _convert(kind: type, value: str) -> object:
    if kind is bool:
        low = value.lower()
        if low in _TRUE or low in _FALSE:
            return low in _TRUE
        raise ValueError
    if kind is int:
        return int(value)
    if kind is float:
        out = float(value)
        if not math.isfinite(out):
            raise ValueError
        return out
    return value


def coerce_option(model: str, key: str, value: str) -> object:
    """``value`` (text) converted to the declared type of option ``key`` of ``model``.

    Raises:
        UserError: unknown key (with the model's options), or a value of the wrong type.
    """
    from survmamba_lite.experiment.config import ExperimentConfig
    from survmamba_lite.registry import accepted_options, get_model_spec

    allowed = accepted_options(get_model_spec(model))
    if allowed is not None and key not in allowed:
        import dataclasses

        if key in {f.name for f in dataclasses.fields(ExperimentConfig)}:
            raise UserError(f"--set {key}={value}: {key!r} is a training setting, not a model option; use "
                            f"--{key.replace('_', '-')} {value}")
        return value             # the config lists the model's options in its error
    default = None if allowed is None else allowed[key]
    if default is None:
        if value.lower() in ("none", "null"):
            return None
        try:
            return int(value)
        except ValueError:
            raise UserError(f"--set {key}={value}: option {key!r} of model {model!r} is an integer or none "
                            f"(default none); got {value!r}") from None
    kind = type(default)
    try:
        return _convert(kind, value)
    except ValueError:
        raise UserError(f"--set {key}={value}: option {key!r} of model {model!r} is "
                        f"{_TYPE_NAMES.get(kind, kind.__name__)} (default {default!r}); got {value!r}") from None


def coerce_options(model: str, pairs: list[tuple[str, str]] | None) -> dict[str, object]:
    """Every ``(key, text)`` of repeated ``--set`` typed by :func:`coerce_option`; a key given twice is an error."""
    out: dict[str, object] = {}
    for key, value in pairs or []:
        if key in out:
            raise UserError(f"--set {key}=...: given twice; give each option once")
        out[key] = coerce_option(model, key, value)
    return out
