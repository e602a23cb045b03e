"""Calibration: D-calibration on cases worked by hand and on simulated calibrated/miscalibrated
models (continuous and discrete-time), and the integrated calibration index against lifelines'
``survival_probability_calibration``."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from survmamba_lite.survival.calibration import (calibration_at, d_calibration, discrete_time_pit, rcs_basis,
                                                  survival_at_horizon)


def test_d_calibration_by_hand_with_censored_patients():
    # 4 bins of width 0.25. death at S = 0.1 -> bin 0; death at 0.6 -> bin 2;
    # censored at s = 0.5: 0.25/0.5 to bins 0 and 1; censored at s = 0.8: 0.25/0.8 to bins 0-2, (0.8-0.75)/0.8 to bin 3
    r = d_calibration([0.1, 0.6, 0.5, 0.8], [1, 1, 0, 0], n_bins=4)
    np.testing.assert_allclose(r.counts, [1 + 0.5 + 0.3125, 0.5 + 0.3125, 1 + 0.3125, 0.0625], rtol=0, atol=1e-15)
    chi2 = 0.8125 ** 2 + 0.1875 ** 2 + 0.3125 ** 2 + 0.9375 ** 2      # expected 1 per bin
    assert r.statistic == pytest.approx(chi2, abs=1e-14)
    assert r.p_value == pytest.approx(stats.chi2.sf(chi2, 3), abs=1e-14)
    assert (r.n, r.n_events) == (4, 2) and r.counts.sum() == pytest.approx(4.0)
    # a death known only to [0.2, 0.6]: 0.05/0.4, 0.25/0.4, 0.1/0.4 in bins 0, 1, 2
    r = d_calibration([0.2], [1], surv_before=[0.6], n_bins=4)
    np.testing.assert_allclose(r.counts, [0.125, 0.625, 0.25, 0.0], atol=1e-15)
    # edge points: S = 1 in the top bin, a censored patient at S = 0 in the lowest
    assert d_calibration([1.0, 0.0], [1, 0], n_bins=4).counts.tolist() == [1.0, 0.0, 0.0, 1.0]


def test_d_calibration_refuses_bad_input():
    with pytest.raises(ValueError, match="event must be 0"):
        d_calibration([0.5], [2])
    with pytest.raises(ValueError, match="not a probability"):
        d_calibration([1.5], [1])
    with pytest.raises(ValueError, match="cannot rise"):
        d_calibration([0.5], [1], surv_before=[0.4])


def _exponential_cohort(n, seed, censor=True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    rate = 0.05 * np.exp(0.8 * x)
    death = rng.exponential(1 / rate)
    cens = rng.uniform(0, 60, n) if censor else np.full(n, np.inf)
    return rate, np.minimum(death, cens), (death <= cens).astype(int)


def test_d_calibration_accepts_the_true_curves_and_rejects_wrong_ones():
    rate, t, e = _exponential_cohort(3000, 0)
    right = d_calibration(np.exp(-rate * t), e)
    wrong = d_calibration(np.exp(-3 * rate * t), e)                 # hazards three times too high
    assert right.p_value > 0.01 and wrong.p_value < 1e-10
    np.testing.assert_allclose(right.proportions, 0.1, atol=0.02)


def test_discrete_time_transform_is_uniform_for_a_right_discrete_model_and_the_step_reading_is_not():
    rng = np.random.default_rng(1)
    n, T = 4000, 4
    hazards = 1 / (1 + np.exp(-(rng.normal(size=(n, 1)) + np.array([-1.0, -0.5, 0.0, 0.5]))))   # (n, T)
    surv = np.cumprod(1 - hazards, axis=1)
    u = rng.random((n, T))
    died = u < hazards
    first = np.where(died.any(1), died.argmax(1), T - 1)
    event = died.any(1).astype(int)
    cens_bin = rng.integers(0, T, n)                               # censored: taken to outlive its bin
    censored = (cens_bin < first) & (rng.random(n) < 0.3)
    k = np.where(censored, cens_bin, first)
    event = np.where(censored, 0, event)
    at, before = discrete_time_pit(surv, k, event)
    assert d_calibration(at, event, surv_before=before).p_value > 0.01
    assert d_calibration(at, event).p_value < 1e-10             # deaths read at the end of their bin
    at_w, before_w = discrete_time_pit(np.cumprod(1 - hazards ** 0.5, axis=1), k, event)   # hazards too high
    assert d_calibration(at_w, event, surv_before=before_w).p_value < 1e-10


def test_survival_at_horizon_reads_linearly_between_bin_ends():
    surv = np.array([[0.8, 0.4, 0.1], [0.5, 0.5, 0.5]])
    edges = [0.0, 10.0, 20.0, np.inf]
    np.testing.assert_allclose(survival_at_horizon(surv, edges, 10.0), [0.8, 0.5])
    np.testing.assert_allclose(survival_at_horizon(surv, edges, 20.0), [0.4, 0.5])
    np.testing.assert_allclose(survival_at_horizon(surv, edges, 12.5), [0.7, 0.5])
    np.testing.assert_allclose(survival_at_horizon(surv, edges, 0.0), [1.0, 1.0])
    with pytest.raises(ValueError, match="last finite bin edge"):
        survival_at_horizon(surv, edges, 25.0)


def test_rcs_basis_is_linear_beyond_the_outer_knots_and_smooth_at_the_knots():
    knots = np.array([-1.0, 0.5, 2.0])
    x = np.linspace(-3, 5, 801)
    b = rcs_basis(x, knots)[:, 1]
    second = np.diff(b, 2)
    assert np.allclose(second[x[1:-1] < -1], 0) and np.allclose(second[x[1:-1] > 2.01], 0, atol=1e-12)
    assert np.all(np.abs(np.diff(b, 1)[1:] - np.diff(b, 1)[:-1]) < 1e-3)     # continuous first derivative


class _Predictions:
    """The least a lifelines regression model must offer to survival_probability_calibration."""

    duration_col, event_col = "T", "E"

    def __init__(self, surv_t0):
        from lifelines.utils import CensoringType

        self._censoring_type = CensoringType.RIGHT
        self.surv_t0 = np.asarray(surv_t0)

    def predict_survival_function(self, df, times):
        return pd.DataFrame([self.surv_t0[df.index.to_numpy()]], index=list(times))


def _lifelines_ici(surv_t0, t, e, t0):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from lifelines.calibration import survival_probability_calibration

    df = pd.DataFrame({"T": t, "E": e})
    fig, ax = plt.subplots()
    try:
        _, ici, _ = survival_probability_calibration(_Predictions(surv_t0), df, t0, ax=ax)
    finally:
        plt.close(fig)
    return float(ici)


def test_ici_is_near_zero_for_true_curves_and_agrees_with_lifelines(capsys):
    rate, t, e = _exponential_cohort(1500, 2)
    t0 = 20.0
    right = calibration_at(np.exp(-rate * t0), t, e, t0)
    low = calibration_at(np.exp(-0.4 * rate * t0), t, e, t0)       # hazards 0.4 x: risks too low
    ll_right, ll_low = _lifelines_ici(np.exp(-rate * t0), t, e, t0), _lifelines_ici(np.exp(-0.4 * rate * t0), t, e, t0)
    capsys.readouterr()
    print(f"ICI ours {right.ici:.4f} / {low.ici:.4f}, lifelines {ll_right:.4f} / {ll_low:.4f}")
    assert right.method == "cox-rcs" and right.ici < 0.02 and ll_right < 0.02
    true_gap = np.mean(np.abs(np.exp(-0.4 * rate * t0) - np.exp(-rate * t0)))   # |F_pred - F_true| on average
    assert low.ici == pytest.approx(true_gap, abs=0.02) and ll_low == pytest.approx(true_gap, abs=0.02)
    assert low.ici == pytest.approx(ll_low, abs=0.015)
    assert low.predicted_mean < low.observed_km - 0.05             # calibration in the large: risks too low
    assert np.all(np.diff(low.curve["predicted"]) >= 0) and len(low.curve) == 1500


def test_ici_of_a_constant_prediction_is_its_distance_from_the_kaplan_meier_risk():
    from lifelines import KaplanMeierFitter

    rate, t, e = _exponential_cohort(400, 3)
    res = calibration_at(np.full(400, 0.7), t, e, 15.0)
    km = 1 - KaplanMeierFitter().fit(t, e).predict(15.0)
    assert res.method == "km" and res.observed_km == pytest.approx(km, abs=1e-12)
    assert res.ici == pytest.approx(abs(km - 0.3), abs=1e-12) == res.emax
