"""Kaplan–Meier, log-rank and risk-group plots against hand computations and lifelines."""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from lifelines.statistics import logrank_test as lifelines_logrank  # noqa: E402
from lifelines.statistics import multivariate_logrank_test  # noqa: E402
from scipy.stats import chi2, norm  # noqa: E402

from survmamba_lite.survival import (  # noqa: E402
    kaplan_meier,
    logrank_test,
    plot_km_by_risk,
    split_by_median_risk,
)

TIME = [1, 2, 2, 3, 4, 5]
EVENT = [1, 1, 0, 1, 0, 1]


def test_km_matches_hand_product_limit():
    km = kaplan_meier(TIME, EVENT)
    # t=1: 6 at risk, 1 death -> 5/6; t=2: 5 at risk, 1 death (+1 censored) -> 5/6 * 4/5
    # t=3: 3 at risk, 1 death -> * 2/3; t=4: censoring only; t=5: 1 at risk, 1 death -> 0
    s1 = 5 / 6
    s2 = s1 * 4 / 5
    s3 = s2 * 2 / 3
    hand = {0.0: 1.0, 1.0: s1, 2.0: s2, 3.0: s3, 4.0: s3, 5.0: 0.0}
    assert km["time"].tolist() == list(hand)
    assert np.allclose(km["survival"], list(hand.values()), atol=1e-12)
    assert km["n_at_risk"].tolist() == [6, 6, 5, 3, 2, 1]
    assert km["n_events"].tolist() == [0, 1, 1, 1, 0, 1]
    assert list(km.columns[:4]) == ["time", "survival", "ci_lower", "ci_upper"]


def test_km_confidence_band_is_exponential_greenwood():
    km = kaplan_meier(TIME, EVENT, alpha=0.05)
    z = norm.ppf(0.975)
    # at t = 2: S = 4/6, Greenwood sum d/(n(n-d)) over t <= 2
    s = 4 / 6
    v = 1 / (6 * 5) + 1 / (5 * 4)
    c = z * math.sqrt(v) / math.log(s)
    lo, hi = s ** math.exp(-c), s ** math.exp(c)
    row = km[km["time"] == 2.0].iloc[0]
    assert row["ci_lower"] == pytest.approx(lo, rel=1e-9)
    assert row["ci_upper"] == pytest.approx(hi, rel=1e-9)
    assert (km["ci_lower"] <= km["survival"] + 1e-12).all() and (km["survival"] <= km["ci_upper"] + 1e-12).all()


def _logrank_by_hand(time, event, group):
    """Two-group log-rank chi-square: (O - E)^2 / V over the distinct death times."""
    time, event, group = map(np.asarray, (time, event, group))
    o_minus_e = var = 0.0
    for u in np.unique(time[event == 1]):
        at_risk = time >= u
        n, n1 = at_risk.sum(), (at_risk & group).sum()
        d = ((time == u) & (event == 1)).sum()
        d1 = ((time == u) & (event == 1) & group).sum()
        o_minus_e += d1 - d * n1 / n
        if n > 1:
            var += d * (n1 / n) * (1 - n1 / n) * (n - d) / (n - 1)
    stat = o_minus_e**2 / var
    return stat, chi2.sf(stat, 1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_logrank_matches_hand_formula_and_lifelines(seed):
    rng = np.random.default_rng(seed)
    n = 80
    group = rng.random(n) < 0.5
    time = np.round(rng.exponential(np.where(group, 5.0, 9.0)), 0) + 1  # ties
    event = (rng.random(n) < 0.7).astype(int)
    res = logrank_test(time, event, group)
    stat, p = _logrank_by_hand(time, event, group)
    ref = lifelines_logrank(time[group], time[~group], event[group], event[~group])
    print(f"seed={seed}: stat {res.statistic:.6f} hand {stat:.6f}; p {res.p_value:.6g} lifelines {ref.p_value:.6g}")
    assert res.statistic == pytest.approx(stat, rel=1e-9)
    assert res.p_value == pytest.approx(p, rel=1e-9)
    assert res.p_value == pytest.approx(ref.p_value, rel=1e-12)


def test_logrank_more_groups_and_errors():
    rng = np.random.default_rng(4)
    time = rng.exponential(size=60)
    event = np.ones(60, dtype=int)
    group = rng.integers(0, 3, size=60)
    res = logrank_test(time, event, group)
    ref = multivariate_logrank_test(time, group, event)
    assert res.p_value == pytest.approx(ref.p_value, rel=1e-12)
    with pytest.raises(ValueError, match="two groups"):
        logrank_test(time, event, np.zeros(60))
    with pytest.raises(ValueError, match="group has 59"):
        logrank_test(time, event, group[:-1])


def test_split_by_median_risk():
    risk = np.array([0.3, 0.1, 0.9, 0.5, 0.5, 0.7])
    high = split_by_median_risk(risk)  # median 0.5: ties go low
    assert high.tolist() == [False, False, True, False, False, True]
    assert split_by_median_risk(torch.tensor(risk), threshold=0.2).tolist() == [True, False, True, True, True, True]
    with pytest.raises(ValueError, match="NaN at index 1"):
        split_by_median_risk([0.1, float("nan")])


def test_plot_km_by_risk_draws_two_groups_with_p_value():
    rng = np.random.default_rng(0)
    n = 100
    risk = rng.normal(size=n)
    time = rng.exponential(np.exp(-risk))
    event = (rng.random(n) < 0.8).astype(int)
    ax = plot_km_by_risk(time, event, risk, title="synthetic")
    try:
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels == ["low risk (n=50)", "high risk (n=50)"]
        assert len(ax.get_lines()) == 2
        p = logrank_test(time, event, split_by_median_risk(risk)).p_value
        shown = f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"
        assert ax.get_title() == f"synthetic\nlog-rank p = {shown}"
    finally:
        plt.close(ax.figure)
    fig, ax2 = plt.subplots()
    try:
        assert plot_km_by_risk(time, event, risk, ax=ax2) is ax2
        with pytest.raises(ValueError, match="one group empty"):
            plot_km_by_risk(time, event, np.zeros(n), ax=ax2)
    finally:
        plt.close(fig)
