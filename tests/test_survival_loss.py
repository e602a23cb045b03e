"""Discrete-time NLL (corrected Eq. 9) and Cox partial likelihood against independent references."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from survmamba_lite.survival import (
    CoxPHLoss,
    NLLSurvLoss,
    cox_ph_loss,
    hazards_to_survival,
    nll_loss,
    risk_score,
)


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _prob_space_nll(logits: torch.Tensor, y: torch.Tensor, event: torch.Tensor, alpha: float) -> torch.Tensor:
    """MCAT-style reference: products of hazards in probability space, float64, per patient."""
    h = torch.sigmoid(logits.double())
    s = torch.cumprod(1 - h, dim=1)
    s_pad = torch.cat([torch.ones(len(y), 1, dtype=torch.float64), s], dim=1)
    yy = y.view(-1, 1)
    d = event.double().view(-1, 1)
    unc = -d * (torch.log(s_pad.gather(1, yy)) + torch.log(h.gather(1, yy)))
    cen = -(1 - d) * torch.log(s_pad.gather(1, yy + 1))
    return ((1 - alpha) * (unc + cen) + alpha * unc).view(-1)


def test_nll_matches_hand_computation():
    x = [[0.3, -1.2, 0.5], [1.0, 0.2, -0.7], [-0.4, 2.0, 0.1], [0.8, -0.3, 1.5]]
    y = [2, 1, 0, 0]
    e = [1, 0, 1, 0]
    h = [[_sig(v) for v in row] for row in x]
    # death in bin 2: P = (1-h0)(1-h1) h2
    p0 = (1 - h[0][0]) * (1 - h[0][1]) * h[0][2]
    # censored in bin 1: P = (1-h0)(1-h1)
    p1 = (1 - h[1][0]) * (1 - h[1][1])
    # death in bin 0: P = h0
    p2 = h[2][0]
    # censored in bin 0: P = 1-h0
    p3 = 1 - h[3][0]
    per = [-math.log(p0), -math.log(p1), -math.log(p2), -math.log(p3)]
    got = nll_loss(torch.tensor(x, dtype=torch.float64), torch.tensor(y), torch.tensor(e), reduction="none")
    print("max diff", float((got - torch.tensor(per, dtype=torch.float64)).abs().max()))
    assert torch.allclose(got, torch.tensor(per, dtype=torch.float64), atol=1e-12)
    mean = nll_loss(torch.tensor(x, dtype=torch.float64), torch.tensor(y), torch.tensor(e))
    assert mean.item() == pytest.approx(sum(per) / 4, abs=1e-12)
    # alpha = 0.3: (1-a)*(all) + a*(uncensored part); the uncensored part is only deaths' terms
    a = 0.3
    hand = [(1 - a) * per[0] + a * per[0], (1 - a) * per[1], (1 - a) * per[2] + a * per[2], (1 - a) * per[3]]
    got_a = nll_loss(torch.tensor(x, dtype=torch.float64), torch.tensor(y), torch.tensor(e), alpha=a,
                     reduction="none")
    assert torch.allclose(got_a, torch.tensor(hand, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("alpha", [0.0, 0.4, 1.0])
def test_nll_matches_probability_space_reference(seed, alpha):
    g = torch.Generator().manual_seed(seed)
    b, t = 64, 6
    logits = torch.randn(b, t, generator=g, dtype=torch.float64) * 2
    y = torch.randint(0, t, (b,), generator=g)
    e = torch.randint(0, 2, (b,), generator=g)
    got = nll_loss(logits, y, e, alpha=alpha, reduction="none")
    ref = _prob_space_nll(logits, y, e, alpha)
    print("max diff", float((got - ref).abs().max()))
    assert torch.allclose(got, ref, rtol=1e-10, atol=1e-10)


def test_nll_float32_close_to_float64():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(32, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (32,), generator=g)
    e = torch.randint(0, 2, (32,), generator=g).float()
    l64 = nll_loss(logits, y, e)
    l32 = nll_loss(logits.float(), y, e)
    assert l32.dtype == torch.float32
    assert abs(l32.item() - l64.item()) < 1e-5


def test_alpha_behaviour():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(20, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (20,), generator=g)
    all_cens = torch.zeros(20)
    all_dead = torch.ones(20)
    # alpha = 1 keeps only the uncensored part: a fully censored batch costs nothing
    assert nll_loss(logits, y, all_cens, alpha=1.0).item() == 0.0
    # with every death observed there is no censored part, so alpha does not matter
    assert nll_loss(logits, y, all_dead, alpha=0.0).item() == pytest.approx(nll_loss(logits, y, all_dead, alpha=0.7).item())
    # in general the loss is affine in alpha: L(a) = (1-a) L(0) + a L(1)
    e = torch.randint(0, 2, (20,), generator=g)
    l0, l1, la = (nll_loss(logits, y, e, alpha=a).item() for a in (0.0, 1.0, 0.25))
    assert la == pytest.approx(0.75 * l0 + 0.25 * l1, rel=1e-12)
    assert l1 < l0  # dropping the (positive) censored part lowers the loss
    with pytest.raises(ValueError, match="alpha"):
        nll_loss(logits, y, e, alpha=1.5)


def test_reductions_and_module():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(10, 3, generator=g)
    y = torch.randint(0, 3, (10,), generator=g)
    e = torch.randint(0, 2, (10,), generator=g)
    per = nll_loss(logits, y, e, reduction="none")
    assert per.shape == (10,)
    assert (per > 0).all()
    assert torch.allclose(nll_loss(logits, y, e, reduction="sum"), per.sum())
    assert torch.allclose(nll_loss(logits, y, e, reduction="mean"), per.mean())
    mod = NLLSurvLoss(alpha=0.2, reduction="sum")
    assert torch.allclose(mod(logits, y, e), nll_loss(logits, y, e, alpha=0.2, reduction="sum"))
    assert "alpha=0.2" in repr(mod)
    with pytest.raises(ValueError, match="reduction"):
        nll_loss(logits, y, e, reduction="max")


def test_event_dtypes_agree():
    logits = torch.randn(6, 3, generator=torch.Generator().manual_seed(6))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    e = [1, 0, 1, 1, 0, 0]
    ref = nll_loss(logits, y, torch.tensor(e, dtype=torch.float32))
    for ev in (torch.tensor(e), torch.tensor(e, dtype=torch.bool), torch.tensor(e, dtype=torch.float64)):
        assert torch.equal(nll_loss(logits, y, ev), ref)
    assert torch.equal(nll_loss(logits, y.int(), torch.tensor(e)), ref)


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 3, 1, 2, 3])
    e = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    for alpha in (0.0, 0.5):
        assert torch.autograd.gradcheck(lambda x: nll_loss(x, y, e, alpha=alpha), (logits,))
    assert torch.autograd.gradcheck(lambda x: nll_loss(x, y, e, reduction="none"), (logits,))


def test_gradient_has_the_right_sign():
    # a death in bin 1: raising h_1 and lowering h_0 both increase the likelihood
    logits = torch.zeros(1, 3, requires_grad=True)
    nll_loss(logits, torch.tensor([1]), torch.tensor([1])).backward()
    grad = logits.grad[0]
    assert grad[0] > 0 and grad[1] < 0 and grad[2] == 0  # later bins do not enter


def test_stable_for_extreme_logits():
    logits = torch.tensor([[200.0, -200.0, 50.0], [-300.0, 300.0, 0.0]], requires_grad=True)
    y = torch.tensor([2, 1])
    e = torch.tensor([1, 0])
    loss = nll_loss(logits, y, e, reduction="none")
    # patient 0: -log(1-h0) is ~200; -log(1-h1) ~ 0; -log h2 ~ 0
    assert loss[0].item() == pytest.approx(200.0, rel=1e-6)
    # patient 1 censored in bin 1: -log(1-h0) ~ 0, -log(1-h1) ~ 300
    assert loss[1].item() == pytest.approx(300.0, rel=1e-6)
    loss.sum().backward()
    assert torch.isfinite(logits.grad).all()


def test_input_validation_messages():
    logits = torch.zeros(3, 4)
    e = torch.tensor([1, 0, 1])
    with pytest.raises(ValueError, match=r"time_bin\[1\] = 4 is outside 0\.\.3.*T = 4"):
        nll_loss(logits, torch.tensor([0, 4, 1]), e)
    with pytest.raises(ValueError, match=r"time_bin\[2\] = -1"):
        nll_loss(logits, torch.tensor([0, 1, -1]), e)
    with pytest.raises(ValueError, match=r"event\[1\] = 2"):
        nll_loss(logits, torch.tensor([0, 1, 1]), torch.tensor([1, 2, 0]))
    with pytest.raises(ValueError, match=r"event\[0\] = 0.5"):
        nll_loss(logits, torch.tensor([0, 1, 1]), torch.tensor([0.5, 1.0, 0.0]))
    with pytest.raises(TypeError, match="integer"):
        nll_loss(logits, torch.tensor([0.0, 1.0, 1.0]), e)
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        nll_loss(torch.zeros(3), torch.tensor([0, 1, 1]), e)
    with pytest.raises(ValueError, match=r"time_bin must have shape"):
        nll_loss(logits, torch.tensor([0, 1]), e)


def test_survival_and_risk_score():
    g = torch.Generator().manual_seed(8)
    logits = torch.randn(7, 5, generator=g, dtype=torch.float64)
    s = hazards_to_survival(logits)
    ref = torch.cumprod(1 - torch.sigmoid(logits), dim=1)
    assert torch.allclose(s, ref, atol=1e-14)
    assert (s[:, 1:] <= s[:, :-1]).all()
    assert torch.allclose(risk_score(logits), -ref.sum(dim=1), atol=1e-14)
    # uniformly larger hazards -> higher risk
    assert (risk_score(logits + 1.0) > risk_score(logits)).all()


# ----------------------------------------------------------------------------- Cox


def _cox_loop(risk, time, event):
    """Breslow negative partial log-likelihood by an explicit double loop (sum over deaths)."""
    total = 0.0
    for i in range(len(time)):
        if event[i]:
            denom = sum(math.exp(risk[j]) for j in range(len(time)) if time[j] >= time[i])
            total -= risk[i] - math.log(denom)
    return total


@pytest.mark.parametrize("seed", [0, 1])
def test_cox_matches_loop_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = 40
    risk = rng.normal(size=n)
    time = rng.integers(1, 8, size=n).astype(float)  # many tied times
    event = (rng.random(n) < 0.6).astype(int)
    ref = _cox_loop(risk.tolist(), time.tolist(), event.tolist())
    got = cox_ph_loss(torch.tensor(risk), torch.tensor(time), torch.tensor(event), reduction="sum")
    assert got.item() == pytest.approx(ref, rel=1e-12)
    mean = cox_ph_loss(torch.tensor(risk), torch.tensor(time), torch.tensor(event))
    assert mean.item() == pytest.approx(ref / event.sum(), rel=1e-12)
    none = cox_ph_loss(torch.tensor(risk), torch.tensor(time), torch.tensor(event), reduction="none")
    assert none.sum().item() == pytest.approx(ref, rel=1e-12)
    assert (none[torch.tensor(event) == 0] == 0).all()
    assert torch.allclose(CoxPHLoss("sum")(torch.tensor(risk), torch.tensor(time), torch.tensor(event)), got)


def test_cox_without_events_is_zero():
    out = cox_ph_loss(torch.zeros(3, requires_grad=True), torch.tensor([1.0, 2.0, 3.0]), torch.zeros(3))
    assert out.item() == 0.0


def test_cox_fit_matches_lifelines():
    """Minimising the loss for a linear model recovers lifelines' CoxPHFitter (no ties: Breslow = Efron)."""
    from lifelines import CoxPHFitter

    rng = np.random.default_rng(0)
    n = 150
    x = rng.normal(size=(n, 2))
    beta_true = np.array([0.8, -0.5])
    t = rng.exponential(1.0 / np.exp(x @ beta_true))
    c = rng.exponential(2.0, size=n)
    time = np.minimum(t, c)
    event = (t <= c).astype(int)
    df = pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "T": time, "E": event})
    ref = CoxPHFitter(penalizer=0.0).fit(df, "T", "E").params_.to_numpy()

    beta = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    xt, tt, et = torch.tensor(x), torch.tensor(time), torch.tensor(event)
    opt = torch.optim.LBFGS([beta], lr=1.0, max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = cox_ph_loss(xt @ beta, tt, et, reduction="sum")
        loss.backward()
        return loss

    opt.step(closure)
    print("beta", beta.detach().numpy(), "lifelines", ref)
    assert np.allclose(beta.detach().numpy(), ref, atol=1e-5)


def test_cox_validation():
    with pytest.raises(ValueError, match=r"risk must have shape \(B,\)"):
        cox_ph_loss(torch.zeros(3, 1), torch.ones(3), torch.ones(3))
    with pytest.raises(ValueError, match=r"event\[2\] = 3"):
        cox_ph_loss(torch.zeros(3), torch.ones(3), torch.tensor([1, 0, 3]))
