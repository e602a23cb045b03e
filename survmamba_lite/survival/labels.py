"""Survival labels in one place: the event coding, TCGA's censorship, and the checks.

The package codes a patient's outcome as ``event = 1`` when the death was observed and
``event = 0`` when the patient was censored (alive when last seen). TCGA's tables (the
SurvPath and PORPOISE releases) store the opposite, ``censorship = 1`` for alive;
:func:`event_from_censorship` converts it once, where such a table is read
(:mod:`survmamba_lite.data.tcga`). Everything after that reads ``event``.

The checks give one message wherever labels enter: the clinical table, a patient bag, the
time binner, the losses, the metrics and a training step replayed from a CUDA graph.

>>> event_from_censorship(np.array([1, 0, 0]))
array([0, 1, 1])
>>> check_events([1, 0, 2], "concordance_index")
Traceback (most recent call last):
    ...
ValueError: concordance_index: event must be 0 (censored) or 1 (death observed); event[2] = 2. Convert TCGA's `censorship` once with event = 1 - censorship.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

__all__ = ["EVENT_CODING", "CENSORSHIP_RULE", "CENSORSHIP_FIX", "event_from_censorship", "valid_event",
           "invalid_events", "check_events", "check_time_bins"]

#: what an event value may be
EVENT_CODING = "0 (censored) or 1 (death observed)"
#: the one conversion of TCGA's censorship column
CENSORSHIP_RULE = "event = 1 - censorship"
#: how to fix a table that holds TCGA's censorship where an event is expected
CENSORSHIP_FIX = f"convert TCGA's `censorship` once with {CENSORSHIP_RULE}"


def event_from_censorship(censorship: Any) -> Any:
    """``event = 1 - censorship``: TCGA's ``censorship = 1`` (alive at last follow-up) becomes
    ``event = 0``. Scalars, arrays, columns and tensors alike.

    >>> event_from_censorship(1), event_from_censorship(0.0)
    (0, 1.0)
    """
    return 1 - censorship


def valid_event(value: Any) -> bool:
    """True when a single event value is 0 or 1 (``True``/``False`` count as 1/0).

    >>> valid_event(1), valid_event(0.0), valid_event(2), valid_event(float("nan"))
    (True, True, False, False)
    """
    return value in (0, 1)


def invalid_events(event: Any) -> Any:
    """Boolean mask of the values of ``event: (n,)`` that are neither 0 nor 1 (NaN included);
    a boolean ``event`` is never invalid. A tensor gives a tensor (on its device), anything
    else a NumPy array.

    >>> invalid_events([0, 1, 0.5]).tolist()
    [False, False, True]
    """
    if isinstance(event, torch.Tensor):
        if event.dtype == torch.bool:
            return torch.zeros_like(event)
        return ~((event == 0) | (event == 1))
    e = np.asarray(event)
    if e.dtype == bool:
        return np.zeros(e.shape, dtype=bool)
    return ~((e == 0) | (e == 1))


def _value(x: Any) -> str:
    x = x.item() if isinstance(x, (torch.Tensor, np.generic)) else x
    return f"{x:g}" if isinstance(x, (int, float)) and not isinstance(x, bool) else repr(x)


def check_events(event: Any, where: str, case_ids: Sequence[str] | None = None) -> None:
    """Raise a ValueError naming the first event value of ``event: (n,)`` that is not 0 or 1.

    Args:
        event: ``(n,)`` event indicators (list, array, column or tensor; a tensor is read on the host).
        where: what is checking, the start of the message (a function, a file).
        case_ids: ``(n,)`` case ids; the message then names the case instead of the position.
    """
    bad = invalid_events(event)
    if not bool(bad.any()):
        return
    flat = bad.reshape(-1)
    i = int(flat.nonzero()[0][0]) if isinstance(flat, torch.Tensor) else int(np.flatnonzero(flat)[0])
    value = event.reshape(-1)[i] if isinstance(event, torch.Tensor) else np.asarray(event).reshape(-1)[i]
    position = f"event[{i}]" if case_ids is None else f"case {case_ids[i]}'s event"
    raise ValueError(f"{where}: event must be {EVENT_CODING}; {position} = {_value(value)}. "
                     f"{CENSORSHIP_FIX[0].upper()}{CENSORSHIP_FIX[1:]}.")


def check_time_bins(time_bin: Any, n_bins: int, where: str, case_ids: Sequence[str] | None = None,
                    hint: str = "") -> None:
    """Raise a ValueError naming the first of ``time_bin: (n,)`` outside ``0..n_bins-1``.

    >>> check_time_bins([0, 3], 3, "nll_loss", hint=" (logits have T = 3 bins)")
    Traceback (most recent call last):
        ...
    ValueError: nll_loss: time_bin[1] = 3 is outside 0..2 (logits have T = 3 bins)
    """
    if isinstance(time_bin, torch.Tensor):
        bad = (time_bin < 0) | (time_bin >= n_bins)
        if not bool(bad.any()):
            return
        i = int(bad.reshape(-1).nonzero()[0, 0])
        value = int(time_bin.reshape(-1)[i])
    else:
        tb = np.asarray(time_bin).reshape(-1)
        bad = (tb < 0) | (tb >= n_bins)
        if not bad.any():
            return
        i = int(np.flatnonzero(bad)[0])
        value = int(tb[i])
    position = f"time_bin[{i}]" if case_ids is None else f"case {case_ids[i]}'s time_bin"
    raise ValueError(f"{where}: {position} = {value} is outside 0..{n_bins - 1}{hint}")
