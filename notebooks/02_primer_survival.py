# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-papermill,-execution,-ExecuteTime
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Primer: survival analysis
#
# :::{admonition} Learning objectives
# :class: tip
# After this chapter you can
# 1. explain right censoring and why neither dropping nor ignoring censored patients works;
# 2. relate the hazard $h(t)$ and the survival function $S(t)$, in continuous and in discrete time;
# 3. compute a Kaplan–Meier curve and a log-rank test by hand, and check them against lifelines;
# 4. fit a Cox model, score a risk prediction with Harrell's concordance index, and score predicted survival curves for ranking, accuracy and calibration (D-calibration, the integrated calibration index).
# :::
#
# Everything SurvMamba predicts is scored with the tools of this chapter. They are shown
# here on a small simulated cohort whose true survival curve is known, so that every
# estimate can be compared with the truth, and every function of the package with an
# independent implementation in lifelines {cite}`davidson2019lifelines`. The data are
# **synthetic** throughout.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.statistics import logrank_test as lifelines_logrank
from lifelines.utils import concordance_index as lifelines_cindex

from survmamba_lite.survival import concordance_index, cox_ph_loss, kaplan_meier, logrank_test

SEED = 0
rng = np.random.default_rng(SEED)
print(f"seed: {SEED}")

# %% [markdown]
# ## Censoring
#
# A patient $i$ has a time of death $T_i$ and a time $C_i$ at which follow-up stops (end of
# the study, lost to follow-up). We observe only the earlier of the two and which one it
# was:
#
# $$
# t_i = \min(T_i, C_i), \qquad \delta_i = \mathbb 1[T_i \le C_i] \quad (\delta_i = 1:\ \text{death observed}).
# $$
#
# This is {term}`right censoring`: for $\delta_i = 0$ we know only that $T_i > t_i$. A simulated
# cohort of 300 patients with a binary covariate $x$ (say, a high-risk tumour subtype) and
# exponential death times with rate $\lambda_0 e^{\beta x}$, censored by a uniform follow-up:

# %%
n, lam0, beta_true = 300, 0.05, 0.8
x = rng.integers(0, 2, n)                                    # (n,) covariate
T = rng.exponential(1.0 / (lam0 * np.exp(beta_true * x)))   # (n,) death times, months
C = rng.uniform(0, 60, n)                                    # (n,) censoring times
time, event = np.minimum(T, C), (T <= C).astype(int)
print(f"{n} patients, {event.sum()} deaths, {1 - event.mean():.0%} censored")
print(f"true mean survival time {np.mean(T):.1f} months; mean of the observed times {time.mean():.1f}; "
      f"mean over the deaths only {time[event == 1].mean():.1f}")

# %% [markdown]
# Both naive summaries are far too low: the observed times of the censored patients are
# lower bounds, and the patients who die early are over-represented among the deaths.
# Survival analysis keeps every patient and uses each one's information exactly: alive
# at $t_i$, and dead at $t_i$ if $\delta_i = 1$.
#
# ## Hazard and survival
#
# The {term}`survival function` $S(t) = P(T > t)$ and the {term}`hazard`, the rate of death among those
# still alive,
#
# $$
# h(t) = \lim_{dt\to 0} \frac{P(t \le T < t + dt \mid T \ge t)}{dt}, \qquad
# S(t) = \exp\Big(-\int_0^t h(s)\,ds\Big),
# $$
#
# carry the same information. For the exponential model above, $h(t) = \lambda$ is constant
# and $S(t) = e^{-\lambda t}$. SurvMamba works in *discrete* time: follow-up is cut into $T$
# bins, and the model predicts the hazard of each bin, $h_k = P(Y = k \mid Y \ge k)$, so that
# $S_k = \prod_{j \le k} (1 - h_j)$ (chapter [Survival](11_survival.py) derives its loss).
#
# ## Kaplan–Meier
#
# Without a model, $S$ is estimated by the {term}`Kaplan–Meier <Kaplan–Meier estimator>` product {cite}`kaplan1958km`: at
# each distinct death time $t_{(j)}$, with $n_j$ patients still at risk and $d_j$ deaths,
#
# $$
# \hat S(t) = \prod_{j:\ t_{(j)} \le t} \Big(1 - \frac{d_j}{n_j}\Big).
# $$
#
# A censored patient counts in the risk sets up to their time and then leaves without
# a death. By hand, next to the package's `kaplan_meier` and lifelines:

# %%
def km_by_hand(t, e):
    """(distinct death times, S just after each) of the Kaplan-Meier estimate."""
    death_times = np.unique(t[e == 1])
    s, out = 1.0, []
    for tj in death_times:
        n_j = np.sum(t >= tj)
        d_j = np.sum((t == tj) & (e == 1))
        s *= 1 - d_j / n_j
        out.append(s)
    return death_times, np.array(out)


t_km, s_km = km_by_hand(time, event)
table = kaplan_meier(time, event)
s_pkg = np.interp(t_km, table["time"], table["survival"])          # both are step functions at the same times
s_ll = KaplanMeierFitter().fit(time, event).survival_function_at_times(t_km).to_numpy()
print(f"max |by hand - package| = {np.abs(s_km - s_pkg).max():.1e}, max |by hand - lifelines| = {np.abs(s_km - s_ll).max():.1e}")
assert np.allclose(s_km, s_ll, atol=1e-12) and np.allclose(s_km, s_pkg, atol=1e-12)

# %% mystnb={"figure": {"caption": "Kaplan\u2013Meier estimates of the two groups of the synthetic cohort (steps, with tick marks at censored times) against the true survival curves $e^{-\\lambda t}$ (dashed).", "name": "fig-primer-km"}}
fig, ax = plt.subplots(figsize=(5.5, 3.4))
grid = np.linspace(0, 60, 200)
for g, colour in ((0, "C0"), (1, "C3")):
    kmf = KaplanMeierFitter(label=f"x = {g}: Kaplan–Meier").fit(time[x == g], event[x == g])
    kmf.plot_survival_function(ax=ax, color=colour, ci_show=True, show_censors=True,
                               censor_styles={"ms": 4, "marker": "|"})
    ax.plot(grid, np.exp(-lam0 * np.exp(beta_true * g) * grid), "--", color=colour, lw=1,
            label=f"x = {g}: true S(t)")
ax.set_xlabel("months")                                   # after lifelines' plot, which sets "timeline"
ax.set_ylabel("survival probability S(t)")
ax.set_title("synthetic cohort: Kaplan–Meier vs truth", fontsize=9)
ax.legend(frameon=False, fontsize=7)
plt.show()

# %% [markdown]
# ## The log-rank test
#
# Do the two groups survive differently? At each death time the log-rank test
# {cite}`mantel1966logrank` compares the deaths $O_j$ observed in group 1 with the
# $E_j = d_j\, n_{1j}/n_j$ expected if both groups shared one hazard, and sums:
#
# $$
# Z = \frac{\sum_j (O_j - E_j)}{\sqrt{\sum_j V_j}}, \qquad
# V_j = \frac{d_j\, (n_{1j}/n_j)\,(1 - n_{1j}/n_j)\,(n_j - d_j)}{n_j - 1},
# $$
#
# with $Z^2 \sim \chi^2_1$ under the null hypothesis.

# %%
def logrank_by_hand(t, e, g):
    o_minus_e = var = 0.0
    for tj in np.unique(t[e == 1]):
        at_risk = t >= tj
        n_j, n1_j = at_risk.sum(), (at_risk & (g == 1)).sum()
        d_j = ((t == tj) & (e == 1)).sum()
        o_minus_e += ((t == tj) & (e == 1) & (g == 1)).sum() - d_j * n1_j / n_j
        if n_j > 1:
            var += d_j * (n1_j / n_j) * (1 - n1_j / n_j) * (n_j - d_j) / (n_j - 1)
    return o_minus_e ** 2 / var


chi2_hand = logrank_by_hand(time, event, x)
res_pkg = logrank_test(time, event, x)
res_ll = lifelines_logrank(time[x == 0], time[x == 1], event[x == 0], event[x == 1])
print(f"chi^2: by hand {chi2_hand:.6f}, package {res_pkg.statistic:.6f}, lifelines {res_ll.test_statistic:.6f}; "
      f"p = {res_pkg.p_value:.1e}")
assert abs(chi2_hand - res_ll.test_statistic) < 1e-8 and abs(res_pkg.statistic - res_ll.test_statistic) < 1e-8

# %% [markdown]
# ## The Cox model
#
# The Cox proportional-hazards model {cite}`cox1972regression` keeps the baseline hazard
# free and models only the ratio between patients: $h_i(t) = h_0(t)\,e^{\eta_i}$ with
# $\eta_i = \beta^\top x_i$. Its *partial likelihood* compares, at each death, the patient
# who died with everyone still at risk:
#
# $$
# -\log PL(\beta) = -\sum_{i:\,\delta_i = 1}\Big[\eta_i - \log \sum_{j:\ t_j \ge t_i} e^{\eta_j}\Big].
# $$
#
# The package's `cox_ph_loss` is this quantity (the loss of its Cox baselines); minimising
# it over $\beta$ must give lifelines' estimate:

# %%
t_t, e_t, x_t = (torch.as_tensor(v, dtype=torch.float64) for v in (time, event, x))
beta = torch.zeros(1, dtype=torch.float64, requires_grad=True)
opt = torch.optim.LBFGS([beta], max_iter=100, tolerance_grad=1e-12, line_search_fn="strong_wolfe")


def closure():
    opt.zero_grad()
    loss = cox_ph_loss(beta * x_t, t_t, e_t, reduction="sum")
    loss.backward()
    return loss


opt.step(closure)
cph = CoxPHFitter().fit(pd.DataFrame({"time": time, "event": event, "x": x}), "time", "event")
beta_ll = float(cph.params_["x"])
print(f"beta: true {beta_true}, cox_ph_loss minimised {beta.item():.6f}, lifelines {beta_ll:.6f} "
      f"(hazard ratio {np.exp(beta_ll):.2f})")
assert abs(beta.item() - beta_ll) < 1e-4

# %% [markdown]
# ## Scoring a prediction: the concordance index
#
# A survival model outputs a *risk* $r_i$ per patient (higher = earlier death). Harrell's
# {term}`concordance index` {cite}`harrell1982cindex` is the fraction of *comparable* pairs that the
# risk orders correctly: a pair $(i, j)$ is comparable when the patient who left first,
# $i$, died ($\delta_i = 1$, $t_i < t_j$); it is concordant when $r_i > r_j$. Ties in the risk
# count one half. A random risk scores about 0.5, a perfect one 1. lifelines takes
# predicted *times*, hence the minus sign.

# %%
risk_cox = beta_ll * x + 0.01 * rng.standard_normal(n)       # the fitted Cox risk, ties broken
risk_random = rng.standard_normal(n)
for name, r in (("Cox risk", risk_cox), ("random", risk_random)):
    c_pkg, c_ll = concordance_index(time, r, event), lifelines_cindex(time, -r, event)
    print(f"{name:>9}: package {c_pkg:.6f}, lifelines {c_ll:.6f}")
    assert abs(c_pkg - c_ll) < 1e-12

# %% [markdown]
# SurvMamba's c-index in the paper's Table 1 is this number, computed on the held-out
# fold of each of five cross-validation folds. The last tool of the paper, the
# Kaplan–Meier curves of the patients split at the median predicted risk with a log-rank
# test between the two halves, combines the two previous sections.
#
# (primer-td-metrics)=
# ## Scoring survival curves: the time-dependent c-index and the integrated Brier score
#
# Harrell's c-index scores one number per patient. A survival model predicts a whole curve
# $\hat S_i(t)$ (SurvMamba: $S_k$ over its $T$ time bins), and two further metrics, which
# the training and results chapters report next to the c-index, score the curve.
#
# **The time-dependent c-index** of Antolini et al. {cite}`antolini2005td` compares two
# curves at the time that matters for the pair: for a comparable pair $(i, j)$ (patient
# $i$ died first, at $t_i$), it is concordant when the model gave $i$ the lower chance of
# being alive at $t_i$,
#
# $$
# C^{td} = \frac{\#\{\text{comparable } (i, j):\ \hat S_i(t_i) < \hat S_j(t_i)\} + \tfrac12\,\#\{\ldots:\ \hat S_i(t_i) = \hat S_j(t_i)\}}
#               {\#\{\text{comparable } (i, j)\}} .
# $$
#
# When no two curves cross (proportional hazards: every curve is a power of one
# baseline), ordering by $\hat S_i(t)$ is the same at every $t$ and $C^{td}$ is Harrell's
# c-index of any risk that orders the curves. When curves cross, no single risk number can
# rank patients both early and late, and $C^{td}$ reads each pair where it is decided.
# (Antolini counts a tie as discordant; the package counts it one half, like Harrell's C,
# so that a constant prediction scores 0.5.)
#
# **The Brier score** at a time $\tau$ is the mean squared error of the predicted
# probability of being alive at $\tau$, $\hat S_i(\tau)$, against the outcome
# $\mathbb 1[T_i > \tau]$. Censoring hides the outcome of patients censored before
# $\tau$; Graf et al. {cite}`graf1999brier` leave them out and reweight the others by the
# inverse probability of remaining uncensored (IPCW), with $\hat G(t) = P(C > t)$ the
# Kaplan–Meier estimate of the *censoring* distribution (censorings as the "events"):
#
# $$
# BS(\tau) = \frac1n\sum_{i=1}^n\left[
#   \frac{\hat S_i(\tau)^2\,\mathbb 1[t_i \le \tau,\ \delta_i = 1]}{\hat G(t_i^-)}
# + \frac{\big(1 - \hat S_i(\tau)\big)^2\,\mathbb 1[t_i > \tau]}{\hat G(\tau)}\right],
# \qquad
# IBS = \frac{1}{\tau_K - \tau_1}\int_{\tau_1}^{\tau_K} BS(\tau)\,d\tau .
# $$
#
# The weights make up, on average, for the patients censored before $\tau$. Lower is
# better; predicting $\hat S = 0.5$ for everyone scores 0.25 at every $\tau$, and the
# Kaplan–Meier curve of the whole cohort, the same for every patient, is the reference a
# model with covariates should beat. In cross-validation $\hat G$ is fitted on the
# training fold (the package's `censoring_km`), and the integral is the trapezoid rule over
# a grid of times inside the follow-up; for SurvMamba's discrete-time curves, the
# [Survival](11_survival.py) chapter and `survmamba_lite.survival.metrics` say at which
# times a bin's $S_k$ is read.
#
# By hand, on the cohort above, for three predictions: the true curves
# $S_i(t) = e^{-\lambda_0 e^{\beta x_i} t}$, the fitted Cox model's curves, and the
# Kaplan–Meier curve given to every patient. Here $\hat G$ is fitted on the whole cohort.

# %%
from survmamba_lite.survival import concordance_td, integrated_brier_score

taus = np.linspace(2.0, 48.0, 24)                                  # (n_times,) Brier grid, months
every_time = np.unique(time)                                       # C^td reads each curve at every death time


def predicted_curves(grid):
    """(n, len(grid)) survival curves of the three predictions on a time grid."""
    km_all = KaplanMeierFitter().fit(time, event).survival_function_at_times(grid).to_numpy()
    return {"true curves": np.exp(-lam0 * np.exp(beta_true * x)[:, None] * grid[None, :]),
            "Cox model": cph.predict_survival_function(pd.DataFrame({"x": x}), times=grid).to_numpy().T,
            "Kaplan–Meier for all": np.tile(km_all, (n, 1))}


censoring = KaplanMeierFitter().fit(time, 1 - event)                 # G(t) = P(C > t): censorings are the events
G = lambda u: censoring.survival_function_at_times(u).to_numpy()     # noqa: E731 (no ties here: G(t-) = G(t))


def ctd_by_hand(t, e, surv, grid):
    """Antolini's C^td, surv read as a step function on grid (1 before grid[0])."""
    at = lambda i, ti: 1.0 if ti < grid[0] else surv[i, np.searchsorted(grid, ti, side="right") - 1]  # noqa: E731
    conc = pairs = 0.0
    for i in np.flatnonzero(e):
        for j in np.flatnonzero(t > t[i]):
            pairs += 1
            si, sj = at(i, t[i]), at(j, t[i])
            conc += 1.0 if si < sj else 0.5 if si == sj else 0.0
    return conc / pairs


def ibs_by_hand(t, e, surv, grid):
    bs = [np.mean(np.where((t <= tau) & (e == 1), surv[:, k] ** 2 / G(t), 0.0)
                  + np.where(t > tau, (1 - surv[:, k]) ** 2 / G(tau), 0.0)) for k, tau in enumerate(grid)]
    return np.trapezoid(bs, grid) / (grid[-1] - grid[0]), np.array(bs)


rows = []
on_taus, on_times = predicted_curves(taus), predicted_curves(every_time)
for name in on_taus:
    ibs_hand, bs = ibs_by_hand(time, event, on_taus[name], taus)
    rows.append({"prediction": name, "C^td by hand": ctd_by_hand(time, event, on_times[name], every_time),
                 "C^td package": concordance_td(time, event, on_times[name], every_time),
                 "IBS by hand": ibs_hand,
                 "IBS package": integrated_brier_score(on_taus[name], taus, time, event, time, event)})
    assert abs(rows[-1]["C^td by hand"] - rows[-1]["C^td package"]) < 1e-12
    assert abs(rows[-1]["IBS by hand"] - rows[-1]["IBS package"]) < 1e-12
scores = pd.DataFrame(rows).set_index("prediction")
print(f"Harrell's c-index of the risk x: {concordance_index(time, x, event):.4f}")
scores.round(4)

# %% [markdown]
# The true curves never cross and are ordered by $x$ alone, so their $C^{td}$ is Harrell's
# c-index of the binary risk $x$ (printed above the table); the Kaplan–Meier curve, the same
# for everyone, ranks no pair and scores exactly 0.5. The integrated Brier score separates
# what the c-index cannot: the Cox model's curves (fitted to these same patients) score
# about as well as the true curves, and both score below the Kaplan–Meier curve that
# ignores $x$.

# %%
assert abs(scores.loc["true curves", "C^td package"] - concordance_index(time, x, event)) < 1e-12
assert scores.loc["Kaplan–Meier for all", "C^td package"] == 0.5
assert max(scores.loc[["Cox model", "true curves"], "IBS package"]) < scores.loc["Kaplan–Meier for all", "IBS package"]

# %% [markdown]
# (primer-calibration)=
# ## Are the probabilities right? D-calibration and the integrated calibration index
#
# The c-index and $C^{td}$ use only the order of the patients, and the Brier score mixes
# ranking and probability into one number. **Calibration** asks about the probabilities
# alone: of the patients given a 30 % risk of dying by two years, do about 30 % die by then?
# The package implements two standard measures (`survmamba_lite.survival.calibration`).
#
# **D-calibration** (distributional calibration) of Haider et al. {cite}`haider2020isd` tests
# the whole curve at once. If $\hat S_i$ is patient $i$'s true survival function, then
# $U_i = \hat S_i(T_i)$, the predicted survival at the patient's own death time, is uniform on
# $[0, 1]$ (the probability integral transform: $P(\hat S_i(T_i) \le u) = u$). Cut $[0, 1]$
# into $B = 10$ equal bins; a death counts in the bin of $\hat S_i(t_i)$. A patient censored at
# $c_i$ is only known to have $U_i \le s_i = \hat S_i(c_i)$, and under calibration $U_i$ is then
# uniform on $[0, s_i]$: the patient is spread over the bins, each bin $[\ell, \ell + w)$
# receiving its overlap with $[0, s_i]$ divided by $s_i$. With $O_b$ the (fractional) count of
# bin $b$,
#
# $$
# \chi^2 = \sum_{b=1}^{B} \frac{(O_b - n/B)^2}{n/B} \;\sim\; \chi^2_{B-1}
# \quad\text{if the curves are calibrated;}
# $$
#
# a small p-value says they are not, and the bar chart of the $O_b / n$ says how: too many
# patients in the top bins means deaths that the curves called unlikely (too little risk),
# too many in the bottom bins the opposite.
#
# **The integrated calibration index** (ICI) of Austin, Harrell & van Klaveren
# {cite}`austin2020ici` looks at one horizon $t_0$. With $\hat F_i = 1 - \hat S_i(t_0)$ the
# predicted risk of dying by $t_0$, a Cox model of the observed $(t_i, \delta_i)$ on a
# restricted cubic spline (3 knots, at the 10th, 50th and 90th percentiles) of
# $\operatorname{cloglog} \hat F_i = \log(-\log(1 - \hat F_i))$ estimates the **observed** risk
# $\tilde F_i$ of patients who were given $\hat F_i$ (a smoothed calibration curve, $\tilde F$
# against $\hat F$). Then
#
# $$
# \mathrm{ICI}(t_0) = \frac1n \sum_{i=1}^n \big|\tilde F_i - \hat F_i\big| ,
# $$
#
# with E50 and E90 the median and 90th percentile of the same differences. Calibration in the
# large compares the mean $\hat F_i$ with the Kaplan–Meier risk $1 - \hat S_{KM}(t_0)$. When
# every patient has the same prediction the spline cannot be fitted, and the observed risk is
# the Kaplan–Meier risk for all. (How discrete-time curves such as SurvMamba's are read at a
# patient's own time and at a horizon: the [Kaplan–Meier chapter](15_survival_analysis.py)
# and the module's docstring.)
#
# Worked on a simulated cohort whose truth is known: a second cohort like the one above, of
# {glue:text}`cal_n` patients, with a continuous covariate $u_i \sim N(0, 1)$ in place of the
# binary $x$, so that every patient has a prediction of their own (a smooth calibration
# curve needs more than two distinct predictions). Four predictions: the true curves
# $S_i(t) = e^{-\lambda_i t}$ with $\lambda_i = \lambda_0 e^{\beta u_i}$, the same curves with
# three times the true hazard (too much risk), with a third of it (too little), and the
# Kaplan–Meier curve of the whole cohort given to every patient. D-calibration first, by hand
# next to `d_calibration`:

# %%
from survmamba_lite.survival import calibration_at, d_calibration
from survmamba_lite.survival.calibration import rcs_basis

rng_cal = np.random.default_rng(SEED + 1)
u_cal = rng_cal.standard_normal(n)                                     # (n,) a continuous covariate
rate = lam0 * np.exp(beta_true * u_cal)                                # (n,) the true hazards
T_cal, C_cal = rng_cal.exponential(1.0 / rate), rng_cal.uniform(0, 60, n)
time_c, event_c = np.minimum(T_cal, C_cal), (T_cal <= C_cal).astype(int)
print(f"{n} patients, {event_c.sum()} deaths, {1 - event_c.mean():.0%} censored")
km_fit = KaplanMeierFitter().fit(time_c, event_c)
km_at = lambda u: km_fit.survival_function_at_times(u).to_numpy()      # noqa: E731 (the pooled Kaplan-Meier curve)
curves = {"true curves": lambda u: np.exp(-rate * u),                  # each maps times (n,) to S_i(t_i)
          "3 x the true hazard": lambda u: np.exp(-3 * rate * u),
          "1/3 of the true hazard": lambda u: np.exp(-rate * u / 3),
          "Kaplan–Meier for all": lambda u: km_at(u) * np.ones(n)}


def dcal_by_hand(s, e, n_bins=10):
    """(n_bins,) counts of the transform s = S_i(t_i): deaths in their bin, censored spread over [0, s]."""
    counts = np.zeros(n_bins)
    for s_i, e_i in zip(s, e):
        if e_i == 1:
            counts[min(int(s_i * n_bins), n_bins - 1)] += 1
        else:
            lower = np.arange(n_bins) / n_bins                          # each bin's lower edge
            counts += np.clip(np.minimum(lower + 1 / n_bins, s_i) - lower, 0, None) / s_i
    expected = len(s) / n_bins
    return counts, float(((counts - expected) ** 2 / expected).sum())


dcal = {}
for name, curve in curves.items():
    s_own = curve(time_c)                                              # (n,) S_i(t_i)
    counts, chi2 = dcal_by_hand(s_own, event_c)
    dcal[name] = d_calibration(s_own, event_c)
    assert np.allclose(counts, dcal[name].counts) and abs(chi2 - dcal[name].statistic) < 1e-9
    print(f"{name:>22}: chi2 {dcal[name].statistic:7.1f}, p = {dcal[name].p_value:.2g}; share per tenth "
          f"{np.round(dcal[name].proportions, 2).tolist()}")

# %% [markdown]
# Then the ICI at $t_0 = 24$ months: the smoothed observed risk by hand (the spline basis of
# the package's `rcs_basis`, a Cox model from lifelines, its survival at $t_0$), next to
# `calibration_at`:

# %%
t0 = 24.0


def ici_by_hand(s_t0):
    """ICI at t0 of predicted survival s_t0 (n,): Cox model on a 3-knot spline of cloglog(risk)."""
    risk_hat = np.clip(1 - s_t0, 1e-10, 1 - 1e-10)
    z = np.log(-np.log(1 - risk_hat))                                  # complementary log-log
    basis = rcs_basis(z, np.quantile(z, [0.1, 0.5, 0.9]))              # (n, 2): z and one cubic term
    frame = pd.DataFrame(basis, columns=["z", "z3"]).assign(time=time_c, event=event_c)
    fit = CoxPHFitter().fit(frame, "time", "event")
    observed = 1 - fit.predict_survival_function(frame[["z", "z3"]], times=[t0]).to_numpy().ravel()
    return float(np.mean(np.abs(observed - risk_hat)))


cal_rows = []
for name, curve in curves.items():
    s_t0 = curve(np.full(n, t0))                                       # (n,) S_i(t0)
    cal = calibration_at(s_t0, time_c, event_c, t0)
    if cal.method == "cox-rcs":                                        # a constant prediction has no spline
        assert abs(ici_by_hand(s_t0) - cal.ici) < 1e-9
    cal_rows.append({"prediction": name, "D-calibration chi2": dcal[name].statistic,
                     "D-calibration p": dcal[name].p_value, "ICI (24 months)": cal.ici, "E90": cal.e90,
                     "mean predicted risk": cal.predicted_mean, "Kaplan–Meier risk": cal.observed_km,
                     "c-index": concordance_index(time_c, 1 - s_t0, event_c), "how": cal.method})
calibration_scores = pd.DataFrame(cal_rows).set_index("prediction")
calibration_scores.round(4)

# %%
from myst_nb import glue

cs = calibration_scores
glue("cal_n", n, display=False)
glue("cal_true_p", float(cs.loc["true curves", "D-calibration p"]), display=False)
glue("cal_true_ici", float(cs.loc["true curves", "ICI (24 months)"]), display=False)
glue("cal_x3_p", float(cs.loc["3 x the true hazard", "D-calibration p"]), display=False)
glue("cal_x3_ici", float(cs.loc["3 x the true hazard", "ICI (24 months)"]), display=False)
glue("cal_x3_risk", float(cs.loc["3 x the true hazard", "mean predicted risk"]), display=False)
glue("cal_third_risk", float(cs.loc["1/3 of the true hazard", "mean predicted risk"]), display=False)
glue("cal_km_risk", float(cs.loc["true curves", "Kaplan–Meier risk"]), display=False)
glue("cal_kmall_p", float(cs.loc["Kaplan–Meier for all", "D-calibration p"]), display=False)
glue("cal_kmall_ici", float(cs.loc["Kaplan–Meier for all", "ICI (24 months)"]), display=False)
glue("cal_true_c", float(cs.loc["true curves", "c-index"]), display=False)
assert cs.loc["true curves", "D-calibration p"] > 0.05 and cs.loc["Kaplan–Meier for all", "D-calibration p"] > 0.05
assert max(cs.loc[["3 x the true hazard", "1/3 of the true hazard"], "D-calibration p"]) < 1e-3
assert cs.loc["true curves", "ICI (24 months)"] < cs.loc["3 x the true hazard", "ICI (24 months)"]
assert cs.loc["true curves", "c-index"] == cs.loc["3 x the true hazard", "c-index"] == cs.loc["1/3 of the true hazard", "c-index"]
assert cs.loc["Kaplan–Meier for all", "c-index"] == 0.5
print("D-calibration by hand == d_calibration; ICI by hand == calibration_at (spline fits)")

# %% [markdown]
# The true curves pass D-calibration (p = {glue:text}`cal_true_p:.2f`) and have an ICI of
# {glue:text}`cal_true_ici:.3f` at 24 months, the estimation noise of {glue:text}`cal_n` patients. Three times
# the hazard predicts a mean risk by 24 months of {glue:text}`cal_x3_risk:.2f` against a
# Kaplan–Meier risk of {glue:text}`cal_km_risk:.2f`; a third of it predicts
# {glue:text}`cal_third_risk:.2f`; both fail D-calibration by far (p below $10^{-3}$; the
# three-fold hazard has p = {glue:text}`cal_x3_p:.0e` and an ICI of
# {glue:text}`cal_x3_ici:.2f`). All three have the **same** c-index
# ({glue:text}`cal_true_c:.3f`), since scaling every hazard by one factor keeps the order of the
# patients: ranking says nothing about calibration. The converse holds too: the Kaplan–Meier
# curve given to everyone passes D-calibration (p = {glue:text}`cal_kmall_p:.2f`) and has ICI
# {glue:text}`cal_kmall_ici:.3f` (its prediction is the observed risk by construction), with a
# c-index of exactly 0.5. A useful model needs both, which is why the
# [Kaplan–Meier chapter](15_survival_analysis.py) reports calibration next to the c-index.

# %% [markdown]
# ## Summary
#
# * Censored patients carry information ("alive at $t_i$"); Kaplan–Meier, the log-rank
#   test, the Cox partial likelihood and the c-index all use it through *risk sets*, the
#   patients still under follow-up at a time.
# * $S$ and $h$ determine each other; SurvMamba predicts discrete-time hazards $h_k$ and
#   derives $S_k = \prod_{j\le k}(1 - h_j)$.
# * The package's `kaplan_meier`, `logrank_test`, `cox_ph_loss` and `concordance_index` agree with
#   lifelines on this cohort to rounding error.
# * Curves are scored by the time-dependent c-index (ranking, read at each death time) and
#   the integrated Brier score (squared error of the predicted probabilities, weighted for
#   censoring); both agree with the by-hand versions above.
# * Calibration asks whether the predicted probabilities are right: {term}`D-calibration`
#   tests the predicted survival at the patients' own times for uniformity, the
#   {term}`integrated calibration index` measures the distance between predicted and
#   observed risk at a horizon. A model can rank well and be miscalibrated, or be calibrated
#   and rank no better than chance.
#
# ## Exercises

# %% [markdown]
# **Exercise 1 (Kaplan–Meier by hand).** Six patients have times $(2, 3, 3, 5, 8, 9)$ and
# events $(1, 1, 0, 1, 0, 1)$. Compute $\hat S(t)$ at $t = 2, 3, 5, 9$ on paper and write
# the four values into `S_hand` (a dict from time to $\hat S$); the check compares them with
# `kaplan_meier`.

# %% tags=["stub", "remove-cell"]
# Your answer: S_hand[t] is the Kaplan-Meier estimate at t (fractions like 5 / 6 are fine)
S_hand = {2: None, 3: None, 5: None, 9: None}

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# At $t = 2$: 6 at risk, 1 death, $\hat S = 5/6$. At $t = 3$: 5 at risk, 1 death (the
# censored patient at 3 is still at risk), $\hat S = 5/6 \cdot 4/5 = 2/3$. At $t = 5$: 3 at
# risk, 1 death, $\hat S = 2/3 \cdot 2/3 = 4/9$. At $t = 9$: 1 at risk, 1 death, $\hat S = 0$.
# :::

# %% tags=["solution"]
S_hand = {2: 5 / 6, 3: 5 / 6 * 4 / 5, 5: 2 / 3 * 2 / 3, 9: 1 / 1 * 0.0}

# %% tags=["check"]
toy = kaplan_meier([2, 3, 3, 5, 8, 9], [1, 1, 0, 1, 0, 1]).set_index("time")["survival"]
assert set(S_hand) == {2, 3, 5, 9}, f"S_hand needs the times 2, 3, 5 and 9 as keys, has {sorted(S_hand)}"
for t_, s_ in S_hand.items():
    assert isinstance(s_, (int, float)), f"S_hand[{t_}] should be a number, not {s_!r}"
    assert abs(toy.loc[t_] - s_) < 1e-9, f"S_hand[{t_}] = {s_:.4f} is not the Kaplan-Meier estimate: " \
                                         "count who is still at risk just before t (censored at t counts)"
print("Kaplan–Meier by hand == kaplan_meier at t = 2, 3, 5, 9")

# %% [markdown]
# **Exercise 2 (two wrong ways to handle censoring).** Estimate $S(24)$ for the simulated
# cohort of this chapter (a) by dropping the censored patients (`s_drop`), (b) by treating
# them as deaths at their censoring time (`s_dead`). Compare both with Kaplan–Meier and
# with the truth $P(T > 24)$ of the simulation, and say which of the two is further from
# the truth here (`worse = "drop"` or `"dead"`). Why are both biased the same way?

# %% tags=["stub", "remove-cell"]
# Your answer
s_drop = None      # (a) S(24) with the censored patients dropped
s_dead = None      # (b) S(24) with every censored patient counted as a death
worse = None       # "drop" or "dead": which of the two is further from the truth

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# Both are biased low. Dropping the censored patients keeps only the deaths, and the
# patients censored are those still alive at their censoring time, so long survivors are
# under-represented; counting them as deaths ends every censored survival early. Which one
# is worse depends on when censoring happens: with this cohort's uniform follow-up over 60
# months, many patients are censored after 24 months and counting them as deaths does not
# touch them, while dropping removes them all: here dropping is the worse of the two (the
# cell prints the four numbers). Kaplan–Meier is close to the truth.
# :::

# %% tags=["solution"]
s_drop = np.mean(time[event == 1] > 24)
s_dead = np.mean(time > 24)                                 # censored before 24 counted as dead
s_km24 = KaplanMeierFitter().fit(time, event).survival_function_at_times(24).item()
s_true = np.mean(T > 24)
worse = "drop" if abs(s_drop - s_true) > abs(s_dead - s_true) else "dead"
print(f"S(24): dropped {s_drop:.3f}, as deaths {s_dead:.3f}, Kaplan–Meier {s_km24:.3f}, truth {s_true:.3f}")
assert s_drop < s_true and s_dead < s_true and worse == "drop"               # what the solution says

# %% tags=["check"]
for name_, v_ in (("s_drop", s_drop), ("s_dead", s_dead)):
    assert isinstance(v_, float) and 0 <= v_ <= 1, f"{name_} should be a probability (a float in [0, 1]), not {v_!r}"
assert abs(s_drop * event.sum() - ((time > 24) & (event == 1)).sum()) < 1e-6, \
    "s_drop: the share of the observed deaths that happened after 24 months"
assert abs(s_dead * n - (time > 24).sum()) < 1e-6, "s_dead: the share of all patients whose observed time exceeds 24"
truth_ = np.mean(T > 24)
assert worse == ("drop" if abs(s_drop - truth_) > abs(s_dead - truth_) else "dead"), \
    "worse: compare |s_drop - truth| with |s_dead - truth|, where truth = np.mean(T > 24)"
print("s_drop, s_dead and worse agree with the simulation")

# %% [markdown]
# **Exercise 3 (the c-index of a reversed risk).** Show that when no two risks are tied,
# reversing a risk ($r \to -r$) turns a c-index $c$ into $1 - c$. Check it on `risk_cox`:
# set `c_fwd` and `c_rev` to the c-indices of `risk_cox` and of `-risk_cox`.

# %% tags=["stub", "remove-cell"]
# Your answer
c_fwd = None       # the c-index of risk_cox
c_rev = None       # the c-index of -risk_cox

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# Every comparable pair is concordant under $r$ exactly when it is discordant under $-r$;
# without ties there are no half-counts, so the fractions add to one.
# :::

# %% tags=["solution"]
c_fwd = concordance_index(time, risk_cox, event)
c_rev = concordance_index(time, -risk_cox, event)
print(f"c = {c_fwd:.4f}, c(-r) = {c_rev:.4f}, sum = {c_fwd + c_rev:.12f}")

# %% tags=["check"]
assert isinstance(c_fwd, float) and isinstance(c_rev, float), "c_fwd and c_rev should be c-indices (floats)"
assert abs(c_fwd - lifelines_cindex(time, -risk_cox, event)) < 1e-12, "c_fwd is not the c-index of risk_cox"
assert abs(c_fwd + c_rev - 1) < 1e-12, f"c_fwd + c_rev = {c_fwd + c_rev:.6f}, not 1"
print("c(r) + c(-r) = 1")
