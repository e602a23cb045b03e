r"""Survival losses: the discrete-time negative log-likelihood and the Cox partial likelihood.

Shape letters: the package glossary, :mod:`survmamba_lite.shapes`.

Discrete-time survival (Zadeh & Schmid, 2021; the loss used by MCAT, MOTCat, SurvPath and,
through its Eq. 9, by SurvMamba). Follow-up is cut into ``T`` bins (see
:class:`~survmamba_lite.survival.TimeBinner`); the model emits one logit per bin and

.. math::

    h_k = \sigma(x_k) = P(Y = k \mid Y \ge k),\qquad
    S_k = P(Y > k) = \prod_{j \le k} (1 - h_j),\qquad S_{-1} = 1 .

For a patient whose follow-up ends in bin ``y``:

* death observed (``event = 1``): the death fell in bin ``y``, so the likelihood is
  :math:`P(Y = y) = h_y \prod_{j<y}(1-h_j) = h_y\,S_{y-1}`;
* censored (``event = 0``): the patient was alive when last seen in bin ``y``; the field's
  convention (MCAT's ``nll_loss``) credits the whole bin, :math:`P(Y > y) = S_y`.

Hence, with :math:`\delta` the event indicator,

.. math::

    -\log L = \underbrace{-\delta\,[\log S_{y-1} + \log h_y]}_{\text{uncensored part}}
              \;\underbrace{-\,(1-\delta)\,\log S_y}_{\text{censored part}} .

Erratum of the paper's Eq. 9. The paper writes (``c`` = censoring status)
``-Σ c log f_surv(t) + (1-c) log(1 - f_surv(t-1)) + (1-c) log(1 - f_hazard(t))`` and defines
``f_surv`` twice, first as ``P(T = t | T >= t)`` (that is the *hazard*) and then as the
product of ``1 - f_hazard``. Read literally, an observed death would be rewarded for
``1 - S(t-1)`` (having died *before* bin ``t``) and for ``1 - h(t)`` (*surviving* bin ``t``):
both factors are the complement of the right ones, and the minus sign/sum must cover every
term. The likelihood above (the one its reference [35] and the code of [34] use) is what
SurvMamba must have trained with: ``log S(t-1) + log h(t)`` for deaths, ``log S(t)`` for
censored patients.

Everything is computed in log space: :math:`\log h = \operatorname{logsigmoid}(x)`,
:math:`\log(1-h) = \operatorname{logsigmoid}(-x)`, :math:`\log S = \operatorname{cumsum}\log(1-h)`;
no ``eps`` clamps are needed and gradients stay finite for large logits.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .labels import check_events, check_time_bins

__all__ = [
    "nll_loss",
    "NLLSurvLoss",
    "hazards_to_survival",
    "risk_score",
    "cox_ph_loss",
    "CoxPHLoss",
]

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _capturing() -> bool:
    """True while a CUDA graph is being recorded on the current stream (no host reads allowed)."""
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


def _check_event(event: Tensor, n: int, fn: str) -> None:
    if event.ndim != 1 or event.shape[0] != n:
        raise ValueError(f"{fn}: event must have shape (B,) = ({n},), got {tuple(event.shape)}")
    if event.dtype == torch.bool:
        return
    if _capturing():     # a CUDA graph is being recorded: no host reads;
        return                                        # the graph's caller checks its inputs on the host
    check_events(event, fn)


def _check_logits(logits: Tensor, fn: str) -> None:
    if logits.ndim != 2:
        raise ValueError(f"{fn}: logits must have shape (B, T), got {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise TypeError(f"{fn}: logits must be a floating-point tensor, got {logits.dtype}")


def hazards_to_survival(logits: Tensor) -> Tensor:
    r"""Survival curve :math:`S_k = \prod_{j\le k} (1 - \sigma(x_j))` from hazard logits.

    Args:
        logits: ``(B, T)`` hazard logits :math:`x`.

    Returns:
        ``(B, T)`` survival probabilities, non-increasing along ``T``.

    >>> hazards_to_survival(torch.zeros(1, 3))
    tensor([[0.5000, 0.2500, 0.1250]])
    """
    _check_logits(logits, "hazards_to_survival")
    return torch.exp(torch.cumsum(F.logsigmoid(-logits), dim=1))


def risk_score(logits: Tensor) -> Tensor:
    r"""Scalar risk :math:`r = -\sum_k S_k` (higher = earlier death), as in MCAT/SurvPath.

    :math:`\sum_k S_k` is the expected number of bins survived (a discrete restricted mean
    survival time), so its negative ranks patients by risk.

    Args:
        logits: ``(B, T)`` hazard logits.

    Returns:
        ``(B,)`` risk scores in ``[-T, 0]``.

    >>> risk_score(torch.tensor([[0.0, 0.0], [5.0, 5.0]]))
    tensor([-0.7500, -0.0067])
    """
    return -hazards_to_survival(logits).sum(dim=1)


def nll_loss(
    logits: Tensor,
    time_bin: Tensor,
    event: Tensor,
    alpha: float = 0.0,
    reduction: str = "mean",
    check_labels: bool = True,
) -> Tensor:
    r"""Discrete-time survival negative log-likelihood (the corrected Eq. 9).

    .. math::

        u_i &= -\delta_i\,[\log S_{i,y_i-1} + \log h_{i,y_i}] \\
        c_i &= -(1-\delta_i)\,\log S_{i,y_i} \\
        \ell_i &= (1-\alpha)(u_i + c_i) + \alpha\,u_i

    (``alpha`` up-weights the uncensored part, as ``alpha_surv`` in MCAT.) See the module
    docstring for the derivation and the erratum of the paper's Eq. 9.

    Args:
        logits: ``(B, T)`` hazard logits (``h = sigmoid(logits)``).
        time_bin: ``(B,)`` integer bin of the follow-up time, in ``0..T-1``.
        event: ``(B,)`` 1 = death observed, 0 = censored (float, int or bool).
        alpha: weight in ``[0, 1]`` of the extra uncensored term.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per-patient ``(B,)``).
        check_labels: check on the host that every ``time_bin`` lies in ``0..T-1`` and every
            ``event`` is 0 or 1 (reads the device; False when the caller checked the labels
            once, e.g. a training loop that must not wait for the GPU every step).

    Returns:
        scalar, or ``(B,)`` for ``reduction="none"``.

    >>> logits = torch.zeros(2, 3)                  # every hazard 1/2
    >>> nll_loss(logits, torch.tensor([1, 1]), torch.tensor([1, 0]), reduction="none")
    tensor([1.3863, 1.3863])
    >>> # death in bin 1: -log(S_0 h_1) = -log(1/4); censored in bin 1: -log S_1 = -log(1/4)
    """
    _check_reduction(reduction)
    _check_logits(logits, "nll_loss")
    n, t = logits.shape
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"nll_loss: alpha must lie in [0, 1], got {alpha}")
    if time_bin.ndim != 1 or time_bin.shape[0] != n:
        raise ValueError(f"nll_loss: time_bin must have shape (B,) = ({n},), got {tuple(time_bin.shape)}")
    if time_bin.is_floating_point() or time_bin.dtype == torch.bool:
        raise TypeError(
            f"nll_loss: time_bin must be an integer tensor of bin indices, got {time_bin.dtype}; "
            "bin follow-up times with TimeBinner.transform first"
        )
    if check_labels and not _capturing():
        check_time_bins(time_bin, t, "nll_loss", hint=f" (logits have T = {t} bins); the model's number of bins "
                        "must equal TimeBinner.n_bins_")
    if check_labels:
        _check_event(event, n, "nll_loss")
    elif event.ndim != 1 or event.shape[0] != n:
        raise ValueError(f"nll_loss: event must have shape (B,) = ({n},), got {tuple(event.shape)}")

    log_h = F.logsigmoid(logits)  # (B, T)  log h_k
    log_s = torch.cumsum(F.logsigmoid(-logits), dim=1)  # (B, T)  log S_k
    log_s = F.pad(log_s, (1, 0), value=0.0)  # (B, T+1)  column k+1 holds log S_k; column 0 is log S_{-1} = 0
    y = time_bin.long().unsqueeze(1)  # (B, 1)
    log_s_prev = log_s.gather(1, y).squeeze(1)  # (B,)  log S_{y-1}
    log_s_y = log_s.gather(1, y + 1).squeeze(1)  # (B,)  log S_y
    log_h_y = log_h.gather(1, y).squeeze(1)  # (B,)  log h_y
    d = event.to(logits.dtype)
    uncensored = -d * (log_s_prev + log_h_y)
    censored = -(1.0 - d) * log_s_y
    loss = (1.0 - alpha) * (censored + uncensored) + alpha * uncensored
    return _reduce(loss, reduction)


class NLLSurvLoss(nn.Module):
    """Module wrapper of :func:`nll_loss`.

    >>> crit = NLLSurvLoss(alpha=0.0)
    >>> crit(torch.zeros(1, 2), torch.tensor([0]), torch.tensor([0.0]))
    tensor(0.6931)
    """

    def __init__(self, alpha: float = 0.0, reduction: str = "mean") -> None:
        super().__init__()
        _check_reduction(reduction)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"NLLSurvLoss: alpha must lie in [0, 1], got {alpha}")
        self.alpha = alpha
        self.reduction = reduction

    def forward(self, logits: Tensor, time_bin: Tensor, event: Tensor) -> Tensor:
        """``logits: (B, T)``, ``time_bin: (B,)``, ``event: (B,)``."""
        return nll_loss(logits, time_bin, event, alpha=self.alpha, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, reduction={self.reduction!r}"


def cox_ph_loss(risk: Tensor, time: Tensor, event: Tensor, reduction: str = "mean") -> Tensor:
    r"""Negative Cox partial log-likelihood with Breslow's handling of tied times.

    .. math::

        -\log PL = -\sum_{i:\,\delta_i = 1} \Big[\eta_i - \log \sum_{j:\,t_j \ge t_i} e^{\eta_j}\Big]

    Every patient still under follow-up at :math:`t_i` (tied deaths included) is in the risk
    set of a death at :math:`t_i` (Breslow). ``"mean"`` divides by the number of deaths; a
    batch without deaths gives 0 (it carries no partial-likelihood information).

    Args:
        risk: ``(B,)`` log relative hazard :math:`\eta` (higher = earlier death).
        time: ``(B,)`` follow-up times.
        event: ``(B,)`` 1 = death observed, 0 = censored.
        reduction: ``"mean"`` (per death), ``"sum"`` or ``"none"`` (``(B,)``, 0 for censored).

    >>> # two deaths (t=1, t=2), equal risks: -[0 - log 2] - [0 - log 1] = log 2
    >>> cox_ph_loss(torch.zeros(2), torch.tensor([1.0, 2.0]), torch.tensor([1, 1]), reduction="sum")
    tensor(0.6931)
    """
    _check_reduction(reduction)
    if risk.ndim != 1:
        raise ValueError(f"cox_ph_loss: risk must have shape (B,), got {tuple(risk.shape)}; "
                         "squeeze the model output's last dimension explicitly")
    n = risk.shape[0]
    if time.shape != (n,):
        raise ValueError(f"cox_ph_loss: time must have shape (B,) = ({n},), got {tuple(time.shape)}")
    _check_event(event, n, "cox_ph_loss")
    order = torch.argsort(time, descending=True)  # latest exit first
    t_desc = time[order]  # (B,)
    eta = risk[order]  # (B,)
    log_cum = torch.logcumsumexp(eta, dim=0)  # (B,)  log sum over the first p+1 (latest) patients
    # risk set of position p: every patient with t >= t_p, i.e. up to the last position tied with p
    neg_t = -t_desc.contiguous()  # ascending
    last = torch.searchsorted(neg_t, neg_t, right=True) - 1  # (B,)
    log_risk_set = log_cum[last]
    d = event.to(risk.dtype)[order]
    per_sorted = -d * (eta - log_risk_set)
    if reduction == "none":
        out = torch.empty_like(per_sorted)
        out[order] = per_sorted
        return out
    total = per_sorted.sum()
    if reduction == "sum":
        return total
    return total / d.sum().clamp(min=1.0)


class CoxPHLoss(nn.Module):
    """Module wrapper of :func:`cox_ph_loss`.

    >>> CoxPHLoss()(torch.zeros(2), torch.tensor([1.0, 2.0]), torch.tensor([1, 0]))
    tensor(0.6931)
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        _check_reduction(reduction)
        self.reduction = reduction

    def forward(self, risk: Tensor, time: Tensor, event: Tensor) -> Tensor:
        """``risk: (B,)``, ``time: (B,)``, ``event: (B,)``."""
        return cox_ph_loss(risk, time, event, reduction=self.reduction)
