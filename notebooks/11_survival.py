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
# # Survival: discrete-time likelihood, concordance and Kaplan–Meier
#
# :::{admonition} Learning objectives
# :class: tip
# After this chapter you can
# 1. derive the discrete-time negative log-likelihood for observed deaths and for censored patients;
# 2. explain what is wrong with the paper's Eq. 9 as printed;
# 3. fit time bins on the training fold only, turn hazards into a risk score, and score it with the c-index and Kaplan–Meier curves.
# :::
#
# SurvMamba's last layer emits one logit per time bin. This chapter derives the loss that
# trains it, corrects the paper's Eq. 9, and checks the package's survival functions
# against independent computations and against lifelines {cite}`davidson2019lifelines`.

# %% tags=["parameters"]
seed = 0          # seed of the synthetic cohort
n_bins = 4        # number of discrete time bins T

# %%
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from lifelines import KaplanMeierFitter
from lifelines.utils import concordance_index as lifelines_cindex

from survmamba_lite.data import load_cohort, make_synthetic_cohort
from survmamba_lite.survival import (TimeBinner, concordance_index, hazards_to_survival, logrank_test, nll_loss,
                                     plot_km_by_risk, risk_score)

torch.manual_seed(seed)
print(f"seed: {seed}, time bins: {n_bins}")

# %% [markdown]
# A synthetic BLCA-shaped cohort (359 patients, about 55 % censored) with a planted
# log-hazard `true_risk`, from the package's generator ([The synthetic cohorts](08_synthetic_cohorts.py)
# describes it):

# %%
workdir = Path(tempfile.mkdtemp(prefix="survmamba_surv_"))
cohort = load_cohort(make_synthetic_cohort("BLCA", "tiny", seed=seed, out=workdir / "blca"))
clin = cohort.clinical
truth = pd.read_csv(cohort.root / "synthetic_truth.csv", index_col="case_id").loc[clin.index]
time, event = clin["survival_months"].to_numpy(), clin["event"].to_numpy()
train_ids, test_ids = cohort.folds[0]
print(f"{len(clin)} patients, {event.sum()} deaths ({1 - event.mean():.0%} censored); "
      f"fold 0: {len(train_ids)} train / {len(test_ids)} test")

# %% [markdown]
# ## Time bins, fitted on the training fold
#
# Follow-up is cut into {term}`time bins` at quantiles of the *uncensored* times, so that each bin holds about
# the same number of deaths. The field's code fits these quantiles on the whole cohort
# before splitting it into folds, which lets the test patients' outcomes shape the
# training targets. `TimeBinner` is fitted on the training fold only; the outer edges are
# $0$ and $\infty$, so every test time still falls into a bin.

# %%
tr = clin.loc[train_ids]
binner = TimeBinner(n_bins).fit(tr["survival_months"], tr["event"])
leaky = TimeBinner(n_bins).fit(clin["survival_months"], clin["event"])
print("edges fitted on the training fold:", np.round(binner.edges_, 2))
print("edges fitted on all patients     :", np.round(leaky.edges_, 2), " (leaks the test fold)")
y = binner.transform(time)
print("patients per bin:", np.bincount(y, minlength=n_bins), " deaths per bin:", np.bincount(y[event == 1], minlength=n_bins))

# %% [markdown]
# ## The likelihood
#
# Let the model give, for patient $i$, the hazards $h_k = \sigma(x_k) = P(Y = k \mid Y \ge k)$ for
# bins $k = 0, \dots, T-1$, and the survival $S_k = P(Y > k) = \prod_{j \le k}(1 - h_j)$, with
# $S_{-1} = 1$. A patient whose follow-up ends in bin $y$ contributes
#
# * if the death was observed ($\delta = 1$): the probability of surviving bins
#   $0..y-1$ and dying in bin $y$, $P(Y = y) = S_{y-1}\,h_y$;
# * if censored ($\delta = 0$): the probability of surviving bin $y$,
#   $P(Y > y) = S_y$ (the convention of the field's code: a patient censored inside a bin
#   is credited with the whole bin).
#
# The negative log-likelihood {cite}`zadeh2021bias` is therefore
#
# $$
# \mathcal L = -\sum_i \Big[\delta_i\big(\log S_{i,y_i-1} + \log h_{i,y_i}\big) + (1-\delta_i)\log S_{i,y_i}\Big].
# $$
#
# A direct transcription with explicit products, next to the package's `nll_loss`
# (which works in log space with `logsigmoid` and needs no clamping):

# %%
def nll_by_hand(logits, y, delta):
    total = 0.0
    for x_i, y_i, d_i in zip(logits.tolist(), y.tolist(), delta.tolist()):
        h = [1 / (1 + np.exp(-v)) for v in x_i]
        S = np.cumprod([1 - hk for hk in h])                     # S_0 .. S_{T-1}
        S_prev = 1.0 if y_i == 0 else S[y_i - 1]
        total -= np.log(S_prev * h[y_i]) if d_i == 1 else np.log(S[y_i])
    return total / len(y)


g = torch.Generator().manual_seed(seed)
logits = torch.randn(len(time), n_bins, generator=g, dtype=torch.float64)
loss = nll_loss(logits, torch.as_tensor(y), torch.as_tensor(event))
print(f"nll_loss = {loss.item():.10f}, by hand = {nll_by_hand(logits, y, event):.10f}")

# %% [markdown]
# ## Erratum: the paper's Eq. 9
#
# The paper writes, with $c$ the censoring status,
#
# $$
# L_{\text{surv}} = -\sum_i c^i \log f^i_{\text{surv}}(t) + (1-c^i)\log\big(1 - f^i_{\text{surv}}(t-1)\big)
# + (1-c^i)\log\big(1 - f^i_{\text{hazard}}(t)\big),
# $$
#
# and then defines $f_{\text{surv}}$ twice: first as $P(T = t \mid T \ge t)$, which is the
# hazard, then as $\prod_{k \le t}(1 - f_{\text{hazard}}(k))$, the survival. Read literally, an
# observed death ($c = 0$) is rewarded for $1 - S(t-1)$, having died *before* its bin, and for
# $1 - h(t)$, *surviving* its bin: both factors are the complements of the right ones, and
# the minus sign covers only the first term. The likelihood above is what its reference
# {cite}`zadeh2021bias` and the code it follows {cite}`xu2023motcat` use. For one observed
# death in bin 2, the literal reading pushes the hazard of the death bin the wrong way:

# %% mystnb={"figure": {"caption": "Loss of one observed death in bin 2 as a function of that bin's hazard: the corrected likelihood falls as the hazard rises, the paper's Eq. 9 read literally pushes it the wrong way.", "name": "fig-survival-eq9"}}
x_grid = torch.linspace(-6, 6, 121, dtype=torch.float64)
lg = torch.zeros(len(x_grid), n_bins, dtype=torch.float64)
lg[:, 2] = x_grid                                                 # vary the logit of the death bin
y_d, d_d = torch.full((len(x_grid),), 2), torch.ones(len(x_grid))
correct = nll_loss(lg, y_d, d_d, reduction="none")
log_h, log_1mh = F.logsigmoid(lg), F.logsigmoid(-lg)
S = torch.exp(torch.cumsum(log_1mh, 1))
literal = -(torch.log1p(-S[:, 1]) + log_1mh[:, 2])                # -(log(1 - S(t-1)) + log(1 - h(t))), c = 0
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.plot(torch.sigmoid(x_grid), correct, label="corrected (used here)")
ax.plot(torch.sigmoid(x_grid), literal, "--", label="Eq. 9 read literally")
ax.set_xlabel("hazard of the death bin $h_2$")
ax.set_ylabel("loss of one observed death")
ax.legend(frameon=False)
plt.show()

# %% [markdown]
# ## A check with a known answer: the life table
#
# If every patient gets the same logits, the log-likelihood separates by bin:
# $\sum_k d_k \log h_k + (n_k - d_k)\log(1 - h_k)$, with $n_k$ the patients whose follow-up
# reaches bin $k$ and $d_k$ the deaths in bin $k$. Its maximum is $\hat h_k = d_k / n_k$, and
# $\prod_{j\le k}(1 - \hat h_j)$ is the Kaplan–Meier estimate {cite}`kaplan1958km` on the binned
# times. We minimise `nll_loss` numerically and compare with both.

# %%
y_t, e_t = torch.as_tensor(y), torch.as_tensor(event)
shared = torch.zeros(n_bins, dtype=torch.float64, requires_grad=True)
opt = torch.optim.LBFGS([shared], max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-14,
                        line_search_fn="strong_wolfe")


def closure():
    opt.zero_grad()
    value = nll_loss(shared.expand(len(y_t), -1), y_t, e_t, reduction="sum")
    value.backward()
    return value


opt.step(closure)
h_fit = torch.sigmoid(shared).detach().numpy()
n_k = np.array([(y >= k).sum() for k in range(n_bins)])
d_k = np.array([((y == k) & (event == 1)).sum() for k in range(n_bins)])
km = KaplanMeierFitter().fit(y, event)                             # KM on the bin indices
S_km = km.survival_function_at_times(np.arange(n_bins)).to_numpy()
print("fitted hazards :", np.round(h_fit, 6))
print("d_k / n_k      :", np.round(d_k / n_k, 6))
print("S from the fit :", np.round(np.cumprod(1 - h_fit), 6))
print("lifelines KM   :", np.round(S_km, 6))

# %%
# NBVAL_CHECK_OUTPUT
print("MLE == life table (1e-6):", np.allclose(h_fit, d_k / n_k, atol=1e-6))
print("survival == Kaplan-Meier (1e-6):", np.allclose(np.cumprod(1 - h_fit), S_km, atol=1e-6))

# %% [markdown]
# ## From hazards to a risk score, and the concordance index
#
# A patient's risk is $r = -\sum_k S_k$, minus the expected number of bins survived. The
# paper's metric is Harrell's concordance index {cite}`harrell1982cindex`: among the
# *comparable* pairs (the patient who left first died), the fraction ordered correctly by
# the risk, ties counting one half. Ten lines by hand, the package's $O(n \log^2 n)$
# version, and lifelines (which takes predicted survival times, hence $-r$):

# %%
def cindex_by_hand(t, r, e):
    num = den = 0.0
    for i in range(len(t)):
        for j in range(len(t)):
            if e[i] == 1 and (t[i] < t[j] or (t[i] == t[j] and e[j] == 0)):   # i left first, by death
                den += 1
                num += 1.0 if r[i] > r[j] else 0.5 if r[i] == r[j] else 0.0
    return num / den


risk_true = truth["true_risk"].to_numpy()
risk_model = risk_score(logits).numpy()        # random logits: concordance near 1/2
for name, r in (("planted log-hazard", risk_true), ("random logits", risk_model)):
    print(f"{name:>18}: by hand {cindex_by_hand(time, r, event):.6f}   package {concordance_index(time, r, event):.6f}"
          f"   lifelines {lifelines_cindex(time, -r, event):.6f}")

# %% [markdown]
# Even the planted log-hazard does not reach a concordance of 1: the generator adds an
# unobserved frailty and Weibull noise to every patient, so this number is a ceiling for
# any model trained on this cohort.
#
# ## Kaplan–Meier curves and the log-rank test
#
# The paper's Fig. 4 splits patients at the median predicted risk and compares the two
# groups' Kaplan–Meier curves with a log-rank test {cite}`mantel1966logrank`. Here the
# split uses the *planted* log-hazard of the synthetic cohort (not a trained model's
# prediction), which shows what a perfect risk ranking looks like on this data.

# %% mystnb={"figure": {"caption": "Kaplan\u2013Meier curves of the synthetic BLCA cohort split at the median of the planted log-hazard (not a model's prediction), with the log-rank p-value: what a perfect risk ranking looks like on these data.", "name": "fig-survival-km-planted"}}
ax = plot_km_by_risk(time, event, risk_true, title="synthetic BLCA, split at the median planted risk")
ax.set_xlabel("months")
plt.show()
test = logrank_test(time, event, risk_true > np.median(risk_true))
print(f"log-rank statistic {test.statistic:.2f}, p = {test.p_value:.2e}")

# %% [markdown]
# ## Summary
#
# * An observed death in bin $y$ contributes $\log S_{y-1} + \log h_y$, a censored patient
#   $\log S_y$; the package's `nll_loss` computes this in log space.
# * The paper's Eq. 9 as printed swaps the survival and the hazard and rewards the wrong
#   events; the implementation follows its reference.
# * Time bins are fitted on the training fold; the risk $-\sum_k S_k$ is scored with Harrell's
#   c-index and with Kaplan–Meier curves of the two halves split at the median risk.
#
# ## Exercises

# %% [markdown]
# **Exercise 1 (the censored term).** A patient is censored in bin $y$. Derive their
# contribution to the likelihood from $h_k = P(Y = k \mid Y \ge k)$, and write it as
# `censored_loss(x_one, y_c)`: the negative log-likelihood of one patient with hazard logits
# `x_one: (1, T)` censored in bin `y_c`. The check compares it with `nll_loss` for every bin.

# %% tags=["stub", "remove-cell"]
# Your answer
def censored_loss(x_one, y_c):
    """-log-likelihood of one patient censored in bin y_c, hazard logits x_one: (1, T)."""
    return None

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# Censoring in bin $y$ means the patient survived bins $0, \dots, y$ (the convention above), so
# the contribution is $P(Y > y) = \prod_{j \le y}(1 - h_j) = S_y$, and the loss is
# $-\sum_{j\le y}\log(1 - h_j)$. The hazard of bins after $y$ does not enter: nothing is known
# about them.
# :::

# %% tags=["solution"]
def censored_loss(x_one, y_c):                  # noqa: F811 (replaces the stub)
    return -torch.log1p(-torch.sigmoid(x_one[0, : y_c + 1])).sum()


print("censored in bin y: loss = -sum_{j<=y} log(1 - h_j)")

# %% tags=["check"]
x_probe = torch.randn(1, n_bins, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
for y_c in range(n_bins):
    mine = censored_loss(x_probe, y_c)
    assert isinstance(mine, torch.Tensor), f"censored_loss should return a tensor, not {mine!r}"
    package = nll_loss(x_probe, torch.tensor([y_c]), torch.tensor([0]), reduction="sum")
    assert torch.allclose(mine, package), f"censored in bin {y_c}: your loss {mine.item():.4f} is not nll_loss's"
print("censored_loss == nll_loss for every bin")

# %% [markdown]
# **Exercise 2 (risk is monotone in every hazard).** Show that raising any bin's hazard logit
# raises the risk $r = -\sum_k S_k$, for any logits. Check the sign of
# $\partial r / \partial x_j$ on 50 random patients: store the gradient of the summed risk with
# respect to their logits `x_many: (50, T)` as `grad_risk`.

# %% tags=["stub", "remove-cell"]
# Your answer
x_many = None      # (50, T) random hazard logits
grad_risk = None   # (50, T): d (sum of risk_score) / d x_many

# %% [markdown] tags=["solution"]
# :::{dropdown} Solution
# $S_k = \prod_{j\le k}(1-h_j)$ falls when any $h_j$ with $j \le k$ rises, so every
# $\partial r / \partial x_j = -\sum_{k \ge j}\partial S_k/\partial x_j > 0$.
# :::

# %% tags=["solution"]
x_many = torch.randn(50, n_bins, dtype=torch.float64, requires_grad=True)
risk_score(x_many).sum().backward()
grad_risk = x_many.grad
print(f"smallest d risk / d logit over 50 random patients: {grad_risk.min().item():.2e}")

# %% tags=["check"]
assert isinstance(grad_risk, torch.Tensor) and tuple(grad_risk.shape) == (50, n_bins), \
    "grad_risk should be a (50, T) tensor of gradients"
x_again = x_many.detach().clone().requires_grad_(True)
(expected,) = torch.autograd.grad(risk_score(x_again).sum(), x_again)
assert torch.allclose(grad_risk, expected), "grad_risk is not the gradient of risk_score(x_many).sum()"
assert (grad_risk > 0).all(), "a non-positive gradient: the risk should rise with every hazard logit"
print("every d risk / d logit is positive")

# %%
shutil.rmtree(workdir)                                              # the synthetic cohort was temporary
