"""Metrics against independent references: lifelines' c-index, explicit loops, hand formulas."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from lifelines import KaplanMeierFitter
from lifelines.utils import concordance_index as lifelines_ci

from survmamba_lite.survival import (
    bootstrap_ci,
    brier_score,
    censoring_km,
    concordance_index,
    concordance_index_ref,
    concordance_td,
    integrated_brier_score,
    bin_end_times,
    bin_survival_grid,
    survival_at,
)


def _tied_data(seed: int, n: int, n_times: int = 6, n_risks: int = 4, p_event: float = 0.5):
    rng = np.random.default_rng(seed)
    time = rng.integers(0, n_times, size=n).astype(float)
    risk = rng.integers(0, n_risks, size=n).astype(float)
    event = (rng.random(n) < p_event).astype(int)
    return time, risk, event


# ----------------------------------------------------------------------------- Harrell's C


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("n", [5, 37, 400])
def test_cindex_matches_lifelines_with_many_ties(seed, n):
    time, risk, event = _tied_data(seed, n)
    try:
        ref = lifelines_ci(time, -risk, event)
    except ZeroDivisionError:
        with pytest.raises(ValueError, match="no comparable pairs"):
            concordance_index(time, risk, event)
        return
    got = concordance_index(time, risk, event)
    slow = concordance_index_ref(time, risk, event)
    print(f"seed={seed} n={n}: ours {got:.12f} lifelines {ref:.12f} ref {slow:.12f}")
    assert got == pytest.approx(ref, abs=1e-12)
    assert slow == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_cindex_matches_lifelines_continuous(seed):
    rng = np.random.default_rng(100 + seed)
    n = 500
    risk = rng.normal(size=n)
    time = rng.exponential(np.exp(-risk))
    event = (rng.random(n) < 0.4).astype(int)
    assert concordance_index(time, risk, event) == pytest.approx(lifelines_ci(time, -risk, event), abs=1e-12)
    # without ties in risk, reversing the risk reverses the ordering
    assert concordance_index(time, -risk, event) == pytest.approx(1 - concordance_index(time, risk, event), abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3), st.booleans()), min_size=2, max_size=25))
def test_cindex_property_vs_lifelines(rows):
    time = np.array([r[0] for r in rows], dtype=float)
    risk = np.array([r[1] for r in rows], dtype=float)
    event = np.array([r[2] for r in rows], dtype=int)
    try:
        ref = lifelines_ci(time, -risk, event)
    except ZeroDivisionError:
        with pytest.raises(ValueError):
            concordance_index(time, risk, event)
        return
    assert concordance_index(time, risk, event) == pytest.approx(ref, abs=1e-12)


def test_cindex_hand_example():
    # deaths at 1 (risk 4), 2 (risk 1), 4 (risk 2), 5 (risk 2); patient censored at 3 (risk 3)
    # comparable pairs (first died): (1,2),(1,3),(1,4),(1,5): 4 concordant
    #   (2,3),(2,4),(2,5): risk 1 vs 3, 2, 2 -> 0 concordant; (4,5): tied risk -> 0.5
    # C = (4 + 0.5) / 8
    c = concordance_index([1, 2, 3, 4, 5], [4, 1, 3, 2, 2], [1, 1, 0, 1, 1])
    assert c == pytest.approx(4.5 / 8)


def test_cindex_tied_time_rules():
    # same time: death + censored is comparable (censored outlives), death + death is not
    assert concordance_index([2, 2], [1.0, 0.0], [1, 0]) == 1.0
    assert concordance_index([2, 2], [0.0, 1.0], [1, 0]) == 0.0
    with pytest.raises(ValueError, match="no comparable pairs"):
        concordance_index([2, 2], [0.0, 1.0], [1, 1])
    with pytest.raises(ValueError, match="no comparable pairs"):
        concordance_index([1, 2, 3], [0.0, 1.0, 2.0], [0, 0, 0])


def test_cindex_accepts_torch_and_rejects_nan():
    time, risk, event = _tied_data(1, 50)
    ref = concordance_index(time, risk, event)
    assert concordance_index(torch.tensor(time), torch.tensor(risk, dtype=torch.float32), torch.tensor(event)) == ref
    assert concordance_index(time, risk.reshape(-1, 1), event.astype(bool)) == ref
    bad = risk.copy()
    bad[7] = np.nan
    with pytest.raises(ValueError, match=r"NaN at index 7"):
        concordance_index(time, bad, event)
    with pytest.raises(ValueError, match=r"event\[0\] = 2"):
        concordance_index(time, risk, np.full(50, 2))
    with pytest.raises(ValueError, match="same length"):
        concordance_index(time, risk, event[:-1])


def test_cindex_large_n_finishes():
    rng = np.random.default_rng(0)
    n = 10_000
    risk = rng.normal(size=n)
    time = np.round(rng.exponential(np.exp(-risk)), 2)  # ties in time
    event = (rng.random(n) < 0.3).astype(int)
    got = concordance_index(time, np.round(risk, 1), event)  # ties in risk
    assert got == pytest.approx(lifelines_ci(time, -np.round(risk, 1), event), abs=1e-12)
    assert 0.6 < got < 0.8


# ----------------------------------------------------------------------------- curves


def test_survival_at_step_semantics():
    surv = np.array([[0.9, 0.6, 0.2], [0.8, 0.8, 0.5]])
    grid = [1.0, 2.0, 4.0]
    got = survival_at(surv, grid, [0.0, 1.0, 1.99, 2.0, 3.0, 4.0, 100.0])
    assert got.tolist() == [[1.0, 0.9, 0.9, 0.6, 0.6, 0.2, 0.2], [1.0, 0.8, 0.8, 0.8, 0.8, 0.5, 0.5]]
    with pytest.raises(ValueError, match="strictly increasing"):
        survival_at(surv, [1.0, 1.0, 2.0], [1.0])


def _ctd_loop(time, event, surv, grid, tie_score):
    def s_at(i, u):
        k = [j for j, g in enumerate(grid) if g <= u]
        return 1.0 if not k else surv[i][k[-1]]

    num = den = 0.0
    n = len(time)
    for i in range(n):
        if not event[i]:
            continue
        for j in range(n):
            if time[i] < time[j] or (time[i] == time[j] and not event[j]):
                den += 1
                a, b = s_at(i, time[i]), s_at(j, time[i])
                num += 1.0 if a < b else (tie_score if a == b else 0.0)
    return num / den


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_concordance_td_matches_loop_with_crossing_curves(seed):
    rng = np.random.default_rng(seed)
    n, k = 40, 5
    time = rng.integers(0, 7, size=n).astype(float)
    event = (rng.random(n) < 0.6).astype(int)
    grid = np.array([0.5, 2.0, 3.0, 4.5, 6.0])
    # random non-increasing curves that cross each other; rounding creates ties
    surv = np.round(np.sort(rng.random((n, k)), axis=1)[:, ::-1], 1)
    for tie in (0.5, 0.0):
        got = concordance_td(time, event, surv, grid, tie_score=tie, chunk=7)
        ref = _ctd_loop(time.tolist(), event.tolist(), surv.tolist(), grid.tolist(), tie)
        assert got == pytest.approx(ref, abs=1e-12)


def test_concordance_td_equals_harrell_for_proportional_curves():
    rng = np.random.default_rng(5)
    n = 300
    risk = rng.normal(size=n)
    time = rng.exponential(np.exp(-risk))
    event = (rng.random(n) < 0.5).astype(int)
    grid = np.unique(time)  # every death time is a grid point, so S_i(t_i) is read exactly
    surv = np.exp(-np.exp(risk)[:, None] * grid[None, :])  # S_i(t) = exp(-e^{r_i} t): never cross
    assert (surv > 0).all()
    harrell = concordance_index(time, risk, event)
    assert concordance_td(time, event, surv, grid) == pytest.approx(harrell, abs=1e-12)


# ----------------------------------------------------------------------------- Brier / IPCW


def _km_censoring_loop(t_train, e_train, u, left=False):
    """Product-limit estimate of P(C > u) (``left``: P(C >= u), the limit just before u), as a plain loop."""
    g = 1.0
    for v in sorted(set(t_train)):
        if v > u or (left and v == u):
            break
        deaths = sum(1 for x, e in zip(t_train, e_train) if x == v and e)     # deaths leave first
        at_risk = sum(1 for x in t_train if x >= v) - deaths
        cens = sum(1 for x, e in zip(t_train, e_train) if x == v and not e)
        g *= 1.0 - cens / at_risk
    return g


def _brier_loop(surv, grid, time, event, t_train, e_train):
    out = []
    for k, tau in enumerate(grid):
        total = 0.0
        for i in range(len(time)):
            if time[i] <= tau and event[i]:
                total += surv[i][k] ** 2 / _km_censoring_loop(t_train, e_train, time[i], left=True)
            elif time[i] > tau:
                total += (1.0 - surv[i][k]) ** 2 / _km_censoring_loop(t_train, e_train, tau)
        out.append(total / len(time))
    return out


def _brier_data(seed):
    rng = np.random.default_rng(seed)
    n_tr, n_te = 120, 60
    t_tr = np.round(rng.exponential(5.0, size=n_tr), 1)
    e_tr = (rng.random(n_tr) < 0.6).astype(int)
    t_te = np.round(rng.exponential(5.0, size=n_te), 1)
    e_te = (rng.random(n_te) < 0.6).astype(int)
    grid = np.quantile(t_te[e_te == 1], [0.1, 0.3, 0.5, 0.7, 0.8])
    grid = grid[grid < t_tr.max()]
    scale = rng.uniform(2.0, 10.0, size=n_te)
    surv = np.exp(-grid[None, :] / scale[:, None])
    return surv, grid, t_te, e_te, t_tr, e_tr


def test_censoring_km_matches_lifelines_and_scikit_survival():
    """lifelines' reverse KM keeps the deaths of a tied time in the censoring risk set, so it agrees
    with ours where no death ties a censoring; scikit-survival's reverse KM (deaths first) agrees always."""
    from sksurv.nonparametric import kaplan_meier_estimator

    _, _, _, _, t_tr, e_tr = _brier_data(0)
    g = censoring_km(t_tr, e_tr)
    query = np.linspace(0, t_tr.max(), 50)
    times, prob = kaplan_meier_estimator(e_tr.astype(bool), t_tr, reverse=True)
    ref = np.concatenate([[1.0], prob])[np.searchsorted(times, query, side="right")]
    np.testing.assert_allclose(g(query), ref, atol=1e-12)
    untied = ~np.isin(t_tr, t_tr[e_tr == 1]) | (e_tr == 1)          # drop censorings tied with a death
    t_u, e_u = t_tr[untied], e_tr[untied]
    kmf = KaplanMeierFitter().fit(t_u, 1 - e_u)
    np.testing.assert_allclose(censoring_km(t_u, e_u)(query), kmf.survival_function_at_times(query).to_numpy(),
                               atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_brier_and_ibs_match_explicit_loop(seed):
    surv, grid, t_te, e_te, t_tr, e_tr = _brier_data(seed)
    got = brier_score(surv, grid, t_te, e_te, t_tr, e_tr)
    ref = _brier_loop(surv.tolist(), grid.tolist(), t_te.tolist(), e_te.tolist(), t_tr.tolist(), e_tr.tolist())
    print("brier", got, "max diff", np.abs(got - ref).max())
    assert np.allclose(got, ref, atol=1e-12)
    ibs = integrated_brier_score(surv, grid, t_te, e_te, t_tr, e_tr)
    ref_ibs = sum((ref[k] + ref[k + 1]) / 2 * (grid[k + 1] - grid[k]) for k in range(len(grid) - 1))
    assert ibs == pytest.approx(ref_ibs / (grid[-1] - grid[0]), abs=1e-12)


def test_brier_without_censoring_is_mean_squared_error():
    rng = np.random.default_rng(3)
    time = rng.exponential(size=30)
    surv = rng.random((30, 2))
    grid = np.array([0.5, 1.0])
    ones = np.ones(30, dtype=int)
    got = brier_score(surv, grid, time, ones, time, ones)
    ref = ((surv - (time[:, None] > grid[None, :])) ** 2).mean(axis=0)
    assert np.allclose(got, ref, atol=1e-14)


def test_brier_refuses_times_where_censoring_survival_is_unknown_or_zero():
    surv, grid, t_te, e_te, t_tr, e_tr = _brier_data(0)
    last = np.argmax(t_tr)
    far = np.array([grid[0], t_tr.max() + 1.0])
    half = np.full((t_te.size, 2), 0.5)
    e_dead = e_tr.copy()
    e_dead[last] = 1  # G stays > 0 after the last training time: it is unknown beyond it
    with pytest.raises(ValueError, match="beyond the longest training follow-up"):
        brier_score(half, far, t_te, e_te, t_tr, e_dead)
    e_cens = e_tr.copy()
    e_cens[last] = 0  # the last training patient is censored alone: G drops to 0
    assert censoring_km(t_tr, e_cens)(np.array([t_tr.max()]))[0] == 0.0
    with pytest.raises(ValueError, match="G\\(t\\) is 0"):
        brier_score(half, far, t_te, e_te, t_tr, e_cens)
    with pytest.raises(ValueError, match="at least two"):
        integrated_brier_score(surv[:, :1], grid[:1], t_te, e_te, t_tr, e_tr)


# ----------------------------------------------------------------------------- bootstrap


def test_bootstrap_deterministic_and_matches_manual_resampling():
    time, risk, event = _tied_data(2, 120, n_times=30, n_risks=50)
    a = bootstrap_ci(concordance_index, time, risk, event, n_boot=200, seed=11)
    b = bootstrap_ci(concordance_index, time, risk, event, n_boot=200, seed=11)
    c = bootstrap_ci(concordance_index, time, risk, event, n_boot=200, seed=12)
    assert a == b
    assert a != c
    assert a.estimate == concordance_index(time, risk, event)
    assert a.low <= a.estimate <= a.high
    # independent twin: explicit resampling loop with the same generator
    rng = np.random.default_rng(11)
    reps = []
    for _ in range(200):
        idx = rng.integers(0, 120, size=120)
        reps.append(lifelines_ci(time[idx], -risk[idx], event[idx]))
    assert a.low == pytest.approx(np.percentile(reps, 2.5), abs=1e-12)
    assert a.high == pytest.approx(np.percentile(reps, 97.5), abs=1e-12)


def test_bootstrap_mean_interval_close_to_normal_theory():
    x = np.random.default_rng(0).normal(size=400)
    est, low, high = bootstrap_ci(np.mean, x, n_boot=1000, seed=0)
    half = 1.96 * x.std(ddof=1) / np.sqrt(x.size)
    assert est == pytest.approx(x.mean())
    assert (high - low) / 2 == pytest.approx(half, rel=0.15)


def test_bootstrap_rows_of_curves_stay_aligned_and_torch_input():
    surv, grid, t_te, e_te, t_tr, e_tr = _brier_data(1)

    def ibs(s, t, e):
        return integrated_brier_score(s, grid, t, e, t_tr, e_tr)

    res = bootstrap_ci(ibs, torch.tensor(surv), torch.tensor(t_te), torch.tensor(e_te), n_boot=50, seed=0)
    assert res.estimate == pytest.approx(integrated_brier_score(surv, grid, t_te, e_te, t_tr, e_tr))
    assert res.low <= res.high


def test_bootstrap_skips_undefined_replicates_with_warning():
    time = np.array([1.0, 2.0, 3.0, 4.0])
    risk = np.array([3.0, 2.0, 1.0, 0.0])
    event = np.array([1, 0, 0, 0])  # only one death: many replicates have no comparable pair
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = bootstrap_ci(concordance_index, time, risk, event, n_boot=100, seed=0)
    assert any("skipped" in str(w.message) for w in rec)
    assert res.estimate == 1.0
    with pytest.raises(ValueError, match="first dimension"):
        bootstrap_ci(concordance_index, time, risk[:3], event, n_boot=10, seed=0)


# ----------------------------------------------------------------------------- against scikit-survival

def _tied_censored_case():
    """Training and test folds with tied deaths, tied censorings and deaths tied with censorings."""
    t_tr = np.array([1, 2, 2, 2, 3, 4, 4, 5, 5, 6, 7, 8, 8, 9, 10, 12], dtype=float)
    e_tr = np.array([1, 1, 0, 0, 1, 0, 1, 1, 1, 0, 1, 0, 0, 1, 1, 0])
    t_te = np.array([1, 2, 2, 3, 4, 4, 5, 6, 7, 8, 8, 9, 11], dtype=float)
    e_te = np.array([0, 1, 1, 1, 1, 0, 0, 1, 0, 1, 1, 0, 1])
    rng = np.random.default_rng(7)
    grid = np.array([2.0, 4.0, 5.0, 8.0, 9.0])
    surv = np.sort(rng.uniform(0.05, 1.0, size=(t_te.size, grid.size)), axis=1)[:, ::-1].copy()
    return surv, grid, t_te, e_te, t_tr, e_tr


def test_brier_matches_scikit_survival_with_ties_and_censoring():
    """sksurv weights a death by G(t_i); with ipcw="right" we agree to rounding. Graf's G(t_i-) then
    differs exactly at the deaths whose time is also a training censoring time (2, 4 and 8 here)."""
    from sksurv.metrics import brier_score as sk_brier
    from sksurv.metrics import integrated_brier_score as sk_ibs
    from sksurv.util import Surv

    surv, grid, t_te, e_te, t_tr, e_tr = _tied_censored_case()
    y_tr, y_te = Surv.from_arrays(e_tr.astype(bool), t_tr), Surv.from_arrays(e_te.astype(bool), t_te)
    _, ref = sk_brier(y_tr, y_te, surv, grid)
    right = brier_score(surv, grid, t_te, e_te, t_tr, e_tr, ipcw="right")
    print("sksurv", ref, "ours (right)", right)
    np.testing.assert_allclose(right, ref, rtol=0, atol=1e-12)
    assert integrated_brier_score(surv, grid, t_te, e_te, t_tr, e_tr, ipcw="right") == pytest.approx(
        sk_ibs(y_tr, y_te, surv, grid), abs=1e-12)
    # Graf: the same censoring KM (scikit-survival's, deaths first at ties) just before t_i
    from sksurv.nonparametric import CensoringDistributionEstimator
    cens = CensoringDistributionEstimator().fit(y_tr)
    g_left = cens.predict_proba(np.nextafter(t_te, -np.inf))
    g_tau = cens.predict_proba(grid)
    case = (e_te[:, None] == 1) & (t_te[:, None] <= grid[None, :])
    control = t_te[:, None] > grid[None, :]
    expected = (np.where(case, surv ** 2 / g_left[:, None], 0) + np.where(control, (1 - surv) ** 2 / g_tau, 0)).mean(0)
    graf = brier_score(surv, grid, t_te, e_te, t_tr, e_tr)
    print("graf", graf, "sksurv G(t-) by hand", expected)
    np.testing.assert_allclose(graf, expected, rtol=0, atol=1e-12)
    tied = np.isin(t_te[e_te == 1], t_tr[e_tr == 0])
    assert tied.any() and not np.allclose(graf, ref)        # the case exercises the difference
    with pytest.raises(ValueError, match="ipcw must be"):
        brier_score(surv, grid, t_te, e_te, t_tr, e_tr, ipcw="left")


def test_censoring_km_left_limit_matches_scikit_survival():
    from sksurv.nonparametric import CensoringDistributionEstimator
    from sksurv.util import Surv

    _, _, _, _, t_tr, e_tr = _tied_censored_case()
    cens = CensoringDistributionEstimator().fit(Surv.from_arrays(e_tr.astype(bool), t_tr))
    q = np.unique(np.concatenate([t_tr, t_tr + 0.5, [0.0]]))
    g = censoring_km(t_tr, e_tr)
    np.testing.assert_allclose(g(q), cens.predict_proba(q), atol=1e-12)
    np.testing.assert_allclose(g.left(q), cens.predict_proba(np.nextafter(q, -np.inf)), atol=1e-12)


def test_concordance_td_of_proportional_curves_matches_scikit_survival_harrell():
    """For curves that never cross, Antolini's C with ties scored 1/2 is Harrell's C (sksurv's estimate)."""
    from sksurv.metrics import concordance_index_censored

    _, _, t_te, e_te, _, _ = _tied_censored_case()
    rng = np.random.default_rng(3)
    risk = rng.integers(0, 5, size=t_te.size).astype(float)          # tied risks as well
    edges = np.array([0.0, 2.0, 5.0, 8.0, np.inf])
    surv = np.exp(-np.exp(risk)[:, None] * np.arange(1, 5)[None, :] / 10)    # (n, T) non-crossing
    ref = concordance_index_censored(e_te.astype(bool), t_te, risk)[0]
    got = concordance_td(t_te, e_te, surv, bin_survival_grid(edges))
    print(f"C_td {got:.6f}  sksurv Harrell {ref:.6f}")
    assert got == pytest.approx(ref, abs=1e-12)


def test_one_curve_placement_for_both_metrics():
    """A death in bin k is scored with S_k by the time-dependent C, and the Brier score at the end of
    bin k compares S_k with 'alive at the end of bin k' (a perfect step prediction scores 0)."""
    edges = np.array([0.0, 2.0, 5.0, np.inf])
    grid, taus = bin_survival_grid(edges), bin_end_times(edges)
    surv = np.array([[0.9, 0.6, 0.2]])
    assert survival_at(surv, grid, [0.0, 1.99, 2.0, 4.99, 5.0]).tolist() == [[0.9, 0.9, 0.6, 0.6, 0.2]]
    np.testing.assert_array_equal(survival_at(surv, grid, taus), [[0.9, 0.6]])
    # patients dying in bins 0, 1, 2 exactly at the left edge of the next: the truth at the bin ends is a step
    time = np.array([1.0, 2.0, 5.0, 9.0])
    event = np.ones(4, dtype=int)
    perfect = (time[:, None] > taus[None, :]).astype(float)      # alive at the end of bin k  <=>  t >= e_{k+1}
    np.testing.assert_array_equal(perfect, [[0, 0], [1, 0], [1, 1], [1, 1]])
    assert integrated_brier_score(perfect, taus, time, event, time, event) == 0.0


def test_pair_kernel_agrees_with_concordance_index():
    """The batched kernel of the permutation null (:func:`concordance_of_pairs` over
    :func:`comparable_pairs`) gives exactly :func:`concordance_index` for every row, ties included."""
    from survmamba_lite.survival import comparable_pairs, concordance_of_pairs

    rng = np.random.default_rng(7)
    for n in (2, 7, 60, 250):
        t = np.round(rng.exponential(5.0, n))                              # tied times
        e = rng.random(n) < 0.6
        e[0], t[0] = True, 0.0                                              # at least one comparable pair
        risks = np.round(rng.normal(size=(40, n)), 1)                       # tied risks
        i, j = comparable_pairs(t, e)
        fast = concordance_of_pairs(risks, i, j)
        direct = np.array([concordance_index(t, r, e) for r in risks])
        print(f"n {n}: {i.size} pairs, max |pairs - concordance_index| {np.abs(fast - direct).max():.1e}")
        np.testing.assert_array_equal(fast, direct)
    with pytest.raises(ValueError, match="no comparable pairs"):
        concordance_of_pairs(np.ones((1, 2)), *comparable_pairs(np.array([1.0, 2.0]), np.array([False, False])))
