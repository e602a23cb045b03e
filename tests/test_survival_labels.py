"""One normaliser of survival labels: every entry point refuses a bad event with the same message."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from survmamba_lite.data.bag import PatientBag
from survmamba_lite.survival import TimeBinner, concordance_index, cox_ph_loss, nll_loss
from survmamba_lite.survival.labels import (CENSORSHIP_RULE, check_events, check_time_bins, event_from_censorship,
                                            invalid_events)

MESSAGE = r"event must be 0 \(censored\) or 1 \(death observed\); .* = 2\. Convert TCGA's `censorship` once with"


def test_the_conversion_and_the_mask():
    assert event_from_censorship(np.array([1, 0])).tolist() == [0, 1]
    assert event_from_censorship(torch.tensor([1.0, 0.0])).tolist() == [0.0, 1.0]
    assert CENSORSHIP_RULE == "event = 1 - censorship"
    assert invalid_events([0, 1, 2, float("nan")]).tolist() == [False, False, True, True]
    assert not invalid_events(torch.tensor([True, False])).any()          # a boolean event is always valid


@pytest.mark.parametrize("entry", ["binner", "nll", "cox", "cindex", "bag"])
def test_every_entry_point_gives_the_one_message(entry):
    event = [1, 0, 2]
    calls = {
        "binner": lambda: TimeBinner(2).fit([1.0, 2.0, 3.0], event),
        "nll": lambda: nll_loss(torch.zeros(3, 2), torch.tensor([0, 1, 1]), torch.tensor(event)),
        "cox": lambda: cox_ph_loss(torch.zeros(3), torch.tensor([1.0, 2.0, 3.0]), torch.tensor(event)),
        "cindex": lambda: concordance_index([1.0, 2.0, 3.0], [0.1, 0.2, 0.3], event),
        "bag": lambda: PatientBag("TCGA-A", None, None, torch.zeros(2), 1.0, 2),
    }
    with pytest.raises(ValueError, match=MESSAGE):
        calls[entry]()


def test_case_ids_are_named_and_time_bins_checked():
    with pytest.raises(ValueError, match=r"BatchBuilder: .*; case b's event = 0\.5"):
        check_events(np.array([1.0, 0.5]), "BatchBuilder", case_ids=["a", "b"])
    with pytest.raises(ValueError, match=r"step: case b's time_bin = 4 is outside 0\.\.3"):
        check_time_bins(torch.tensor([0, 4]), 4, "step", case_ids=["a", "b"])
    check_time_bins(np.array([0, 3]), 4, "step")
