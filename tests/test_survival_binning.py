"""TimeBinner: quantiles of uncensored *training* times, pandas as the reference."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from survmamba_lite.survival import TimeBinner


def _cohort(seed: int, n: int = 200):
    rng = np.random.default_rng(seed)
    time = rng.exponential(30.0, size=n)
    event = (rng.random(n) < 0.4).astype(int)
    return time, event


@pytest.mark.parametrize("n_bins", [2, 4, 6])
def test_edges_match_pandas_qcut_on_uncensored(n_bins):
    time, event = _cohort(0)
    binner = TimeBinner(n_bins).fit(time, event)
    _, q_bins = pd.qcut(pd.Series(time[event == 1]), q=n_bins, retbins=True, labels=False)
    assert np.allclose(binner.edges_[1:-1], q_bins[1:-1], rtol=0, atol=1e-12)
    assert binner.edges_[0] == 0.0 and np.isinf(binner.edges_[-1])
    assert np.all(np.diff(binner.edges_) > 0)
    assert binner.n_bins_ == n_bins


def test_transform_matches_left_closed_pandas_cut():
    time, event = _cohort(1)
    binner = TimeBinner(4).fit(time, event)
    ref = pd.cut(time, bins=binner.edges_, right=False, labels=False)
    assert np.array_equal(binner.transform(time), np.asarray(ref, dtype=np.int64))
    # a time exactly on an inner edge opens the upper bin
    e1 = binner.edges_[1]
    assert binner.transform([np.nextafter(e1, 0), e1]).tolist() == [0, 1]


def test_deaths_spread_evenly_over_bins():
    time, event = _cohort(2, n=401)
    y = TimeBinner(4).fit_transform(time, event)
    per_bin = np.bincount(y[event == 1], minlength=4)
    assert per_bin.sum() == (event == 1).sum()
    assert per_bin.max() - per_bin.min() <= 1


def test_fitted_on_training_data_only():
    time, event = _cohort(3, n=300)
    rng = np.random.default_rng(0)
    train = rng.permutation(300)[:200]
    test = np.setdiff1d(np.arange(300), train)
    edges = TimeBinner(4).fit(time[train], event[train]).edges_
    # change the test fold's outcomes arbitrarily: the training fit cannot move
    for k in range(3):
        t2, e2 = time.copy(), event.copy()
        t2[test] = rng.exponential(100.0 * (k + 1), size=test.size)
        e2[test] = 1
        assert np.array_equal(TimeBinner(4).fit(t2[train], e2[train]).edges_, edges)
    # the field's whole-cohort fit does depend on the test outcomes (the leak this avoids)
    whole = TimeBinner(4).fit(t2, e2).edges_
    assert not np.allclose(whole, edges)
    # censored training times never enter the quantiles either
    t3 = time[train].copy()
    t3[event[train] == 0] *= 7.0
    assert np.array_equal(TimeBinner(4).fit(t3, event[train]).edges_, edges)


def test_every_time_gets_a_bin_including_outside_training_range():
    time, event = _cohort(4)
    binner = TimeBinner(4).fit(time[:100], event[:100])
    out = binner.transform([0.0, 1e-9, time.max() * 10, 1e9])
    assert out.tolist() == [0, 0, 3, 3]
    y = binner.transform(time)
    assert y.dtype == np.int64 and y.min() >= 0 and y.max() <= 3


def test_torch_in_long_tensor_out():
    time, event = _cohort(5)
    binner = TimeBinner(4).fit(torch.tensor(time), torch.tensor(event))
    y = binner.transform(torch.tensor(time, dtype=torch.float32))
    assert isinstance(y, torch.Tensor) and y.dtype == torch.long
    assert y.tolist() == binner.transform(time.astype(np.float32)).tolist()


def test_errors():
    with pytest.raises(RuntimeError, match="before fit"):
        TimeBinner(4).transform([1.0])
    with pytest.raises(RuntimeError, match="after fit"):
        _ = TimeBinner(4).edges_
    with pytest.raises(ValueError, match="3 uncensored training times cannot define 4"):
        TimeBinner(4).fit([1.0, 2.0, 3.0, 4.0, 5.0], [1, 1, 1, 0, 0])
    with pytest.raises(ValueError, match=r"time\[1\] = -1"):
        TimeBinner(2).fit([1.0, -1.0, 3.0], [1, 1, 1])
    with pytest.raises(ValueError, match=r"event\[2\] = 2"):
        TimeBinner(2).fit([1.0, 2.0, 3.0], [1, 1, 2])
    binner = TimeBinner(2).fit([1.0, 2.0, 3.0], [1, 1, 1])
    with pytest.raises(ValueError, match=r"time\[0\] = nan"):
        binner.transform([np.nan])
    with pytest.raises(ValueError, match="positive integer"):
        TimeBinner(0)


def test_tied_quantiles_merge_with_warning_or_raise():
    time = np.array([5.0] * 8 + [1.0, 9.0, 12.0, 20.0])
    event = np.ones(12, dtype=int)
    with pytest.warns(RuntimeWarning, match="collapse"):
        binner = TimeBinner(4).fit(time, event)
    assert binner.n_bins_ < 4
    assert np.all(np.diff(binner.edges_) > 0)
    assert binner.transform(time).max() == binner.n_bins_ - 1
    with pytest.raises(ValueError, match="fewer bins"):
        TimeBinner(4, on_ties="raise").fit(time, event)
    # no warning when the quantiles are distinct
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TimeBinner(4).fit(*_cohort(6))


def test_to_dict_roundtrip_through_json():
    time, event = _cohort(7)
    binner = TimeBinner(4).fit(time, event)
    d = json.loads(json.dumps(binner.to_dict()))
    again = TimeBinner.from_dict(d)
    assert np.array_equal(again.edges_, binner.edges_)
    assert np.array_equal(again.transform(time), binner.transform(time))
    assert "edges=" in repr(again)
    with pytest.raises(ValueError, match="missing key"):
        TimeBinner.from_dict({"n_bins": 4})


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.0, 1000.0, allow_nan=False), min_size=4, max_size=60), st.integers(1, 4))
def test_property_bins_monotone_and_cover(times, n_bins):
    t = np.array(times)
    e = np.ones_like(t, dtype=int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        binner = TimeBinner(n_bins).fit(t, e)
    edges = binner.edges_
    assert np.all(np.diff(edges) > 0)
    y = binner.transform(t)
    assert y.min() >= 0 and y.max() < binner.n_bins_
    # monotone: a later time never gets an earlier bin
    order = np.argsort(t, kind="stable")
    assert np.all(np.diff(y[order]) >= 0)
    # each time lies in its bin [e_k, e_k+1)
    assert np.all((edges[y] <= t) & (t < edges[y + 1]))
