r"""Gradient attributions on patch features and genes: the baseline for the hidden-attention maps.

Integrated gradients (Sundararajan, Taly and Yan, 2017) of the risk
:math:`r(x) = -\sum_k S_k(x)` (:func:`~survmamba_lite.survival.risk_score`) along the
straight path from a baseline :math:`x'` to the input, both modalities together:

.. math::

    \mathrm{IG}_i = (x_i - x'_i) \int_0^1 \frac{\partial r}{\partial x_i}\big(x' + \beta (x - x')\big)\, d\beta
    \approx (x_i - x'_i) \frac{1}{m} \sum_{j=1}^{m} \frac{\partial r}{\partial x_i}
    \Big(x' + \tfrac{j - 1/2}{m} (x - x')\Big),

a midpoint rule with ``m`` steps (default 32). Completeness,
:math:`\sum_i \mathrm{IG}_i = r(x) - r(x')`, holds up to the quadrature error and is
reported (:attr:`Attribution.completeness_gap`). With ``steps=0`` the method is
gradient × (input − baseline) at the input.

The baseline is zero in the model's input space: for genes the z-scores are fitted on the
training fold, so zero is the training-mean expression of every gene; for patch
features zero is the origin of the frozen encoder's space (for the synthetic features,
which are centred, close to an average patch; for a real encoder a choice, stated here,
not a neutral "no tissue").

Scores. A patch's score is the sum of its features' attributions, a region's the sum over
its patches (signed: positive raises the risk). A gene shared by ``m_g`` functions
gives each of them ``1/m_g`` of its attribution; a function's score is the sum over its
genes, a process's the sum over its functions (so function and process scores add up to
the genes' total). Importance, as ranked and compared with the hidden attention, is the
absolute score.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from survmamba_lite.data.bag import GenomicHierarchy, SurvivalBatch
from survmamba_lite.survival import risk_score

__all__ = ["Attribution", "integrated_gradients", "function_scores"]


@dataclass
class Attribution:
    """Attributions of one batch.

    Attributes:
        patches: ``(B, R, P, F)`` per feature, zero at padding, or None without slides.
        rna: ``(B, G)`` per gene, or None without RNA.
        risk: ``(B,)`` the risk at the input.
        risk_baseline: ``(B,)`` the risk at the baseline.
        steps: integration steps (0: gradient × input).
    """

    patches: Tensor | None
    rna: Tensor | None
    risk: Tensor
    risk_baseline: Tensor
    steps: int

    @property
    def patch_scores(self) -> Tensor:
        """``(B, R, P)`` signed patch scores (sum over features)."""
        return self.patches.sum(-1)

    @property
    def completeness_gap(self) -> Tensor:
        """``(B,)``: sum of all attributions minus ``r(x) - r(x')``."""
        total = torch.zeros_like(self.risk)
        if self.patches is not None:
            total = total + self.patches.flatten(1).sum(1)
        if self.rna is not None:
            total = total + self.rna.sum(1)
        return total - (self.risk - self.risk_baseline)


def _with_inputs(batch: SurvivalBatch, patches: Tensor | None, rna: Tensor | None) -> SurvivalBatch:
    return dataclasses.replace(batch, patches=patches, rna=rna)


def integrated_gradients(model: torch.nn.Module, batch: SurvivalBatch, steps: int = 32) -> Attribution:
    """Integrated gradients of the risk on patch features and genes (zero baseline).

    Args:
        model: any model of the package taking a :class:`SurvivalBatch` (put in eval mode here).
        batch: the patients; padded patches stay zero on the whole path.
        steps: midpoint steps ``m``; 0 gives gradient × input.

    >>> from survmamba_lite.data import PatientBag, collate_bags
    >>> from survmamba_lite.model import SurvMamba, SurvMambaConfig
    >>> _ = torch.manual_seed(0)
    >>> cfg = SurvMambaConfig(n_bins=4, wsi_dim=6, modalities=("wsi",), dim=8, d_state=4, variant="C",
    ...                       scan_backend="ref")
    >>> bag = collate_bags([PatientBag("a", torch.randn(5, 6), torch.tensor([0, 0, 1, 1, 1]), None, 3.0, 1)])
    >>> att = integrated_gradients(SurvMamba(cfg), bag, steps=64)
    >>> att.patch_scores.shape, bool(att.completeness_gap.abs().max() < 1e-3)
    (torch.Size([1, 2, 3]), True)
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    model.eval()
    x_p, x_r = batch.patches, batch.rna
    if x_p is None and x_r is None:
        raise ValueError(f"cases {batch.case_id[:5]}: the batch holds neither slide features nor RNA")
    with torch.no_grad():
        risk = risk_score(model(batch).double())
        risk0 = risk_score(model(_with_inputs(
            batch, None if x_p is None else torch.zeros_like(x_p), None if x_r is None else torch.zeros_like(x_r)
        )).double())
    betas = [1.0] if steps == 0 else [(j + 0.5) / steps for j in range(steps)]
    g_p = None if x_p is None else torch.zeros_like(x_p)
    g_r = None if x_r is None else torch.zeros_like(x_r)
    for beta in betas:
        p = None if x_p is None else (beta * x_p).detach().requires_grad_(True)
        r = None if x_r is None else (beta * x_r).detach().requires_grad_(True)
        out = risk_score(model(_with_inputs(batch, p, r))).sum()
        grads = torch.autograd.grad(out, [t for t in (p, r) if t is not None])
        grads = list(grads)
        if p is not None:
            g_p += grads.pop(0)
        if r is not None:
            g_r += grads.pop(0)
    n = len(betas)
    patches = None if x_p is None else (x_p * g_p / n) * batch.patch_mask.unsqueeze(-1)
    rna = None if x_r is None else x_r * g_r / n
    return Attribution(patches, rna, risk, risk0, steps)


def function_scores(gene_scores: Tensor, hierarchy: GenomicHierarchy) -> tuple[Tensor, Tensor]:
    """Gene scores ``(..., G)`` -> function scores ``(..., Fn)`` and process scores ``(..., J)``.

    A gene in ``m_g`` functions gives each ``1/m_g`` of its score; genes in no function are left out.

    >>> h = GenomicHierarchy(("a", "b", "c"), ("f1", "f2"), ("one", "two"), ((0, 1), (1, 2)), (0, 1), ("p", "q"))
    >>> f, p = function_scores(torch.tensor([1.0, 2.0, 4.0]), h)
    >>> f.tolist(), p.tolist()
    ([2.0, 5.0], [2.0, 5.0])
    """
    membership = torch.zeros(hierarchy.n_functions, hierarchy.n_genes, dtype=gene_scores.dtype)
    for f, genes in enumerate(hierarchy.function_genes):
        membership[f, list(genes)] = 1.0
    share = membership / membership.sum(0, keepdim=True).clamp_min(1.0)              # (Fn, G)
    functions = gene_scores @ share.T                                                # (..., Fn)
    process = torch.zeros(hierarchy.n_processes, hierarchy.n_functions, dtype=gene_scores.dtype)
    process[list(hierarchy.function_process), torch.arange(hierarchy.n_functions)] = 1.0
    return functions, functions @ process.T
