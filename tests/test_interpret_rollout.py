"""The rollout rule of survmamba_lite.interpret.rollout against an explicit product of dense
matrices, its sums, and the attribution baseline's completeness."""
from __future__ import annotations

import pytest
import torch

from conftest import build_tiny_hierarchy
from survmamba_lite.data import PatientBag, collate_bags
from survmamba_lite.interpret import block_mixing
from survmamba_lite.interpret.attribution import function_scores, integrated_gradients
from survmamba_lite.interpret.rollout import hidden_attention_importance, rollout_step
from survmamba_lite.model import SurvMamba, SurvMambaConfig

SIZES = (4, 2, 3)                                  # patches of the patient's three regions


def _model(variant: str, layers: int = 2, seed: int = 0) -> SurvMamba:
    torch.manual_seed(seed)
    cfg = SurvMambaConfig(n_bins=4, wsi_dim=6, hierarchy=build_tiny_hierarchy(), dim=8, d_state=4, d_conv=3,
                          variant=variant, n_fine_layers=layers, n_coarse_layers=layers, dropout=0.0,
                          scan_backend="ref", conv_backend="torch", recompute_tokens=None)
    model = SurvMamba(cfg).double().eval()
    with torch.no_grad():
        model.alpha_logit.fill_(0.4) if model.alpha_logit is not None else None
    return model


def _batch(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    region = torch.cat([torch.full((n,), r) for r, n in enumerate(SIZES)])
    bag = PatientBag("TCGA-XX-0001", torch.randn(len(region), 6, generator=g, dtype=torch.float64), region,
                     torch.randn(12, generator=g, dtype=torch.float64), 10.0, 1)
    return collate_bags([bag])


def _step(blk, x):
    """Row-stochastic block matrix on one unpadded sequence x: (1, n, D)."""
    m = block_mixing(blk, x)[0]
    m = m / m.sum(-1, keepdim=True)
    return 0.5 * torch.eye(len(m), dtype=m.dtype) + 0.5 * m


def _ifm(module, o, x):
    m = block_mixing(module.ssm[o], module.x_proj[o](module.norm[o](x)))[0]
    m = m / m.sum(-1, keepdim=True)
    return torch.full((len(m),), 1.0 / len(m), dtype=m.dtype) @ m


@torch.no_grad()
def test_rollout_equals_the_dense_product():
    """I = α v^T R_fine + (1 - α) u^T R_coarse P R_fine over the flattened patches, built region by
    region without padding, with dense block-diagonal matrices."""
    model = _model("F")
    batch = _batch()
    imp = hidden_attention_importance(model, batch, "wsi")
    tokens = model.encoders["wsi"](batch.patches)                      # (1, R, P, D)
    L = sum(SIZES)
    fine_out, r_fine = [], torch.eye(L, dtype=torch.float64)
    per_layer = [torch.zeros(L, L, dtype=torch.float64) for _ in model.him["wsi"].fine_blocks]
    start = 0
    for r, n in enumerate(SIZES):
        x = tokens[:, r, :n]
        for layer, blk in enumerate(model.him["wsi"].fine_blocks):
            per_layer[layer][start:start + n, start:start + n] = _step(blk, x)
            x = blk(x)
        fine_out.append(x)
        start += n
    for step in per_layer:
        r_fine = step @ r_fine
    pool = torch.zeros(len(SIZES), L, dtype=torch.float64)
    start = 0
    for r, n in enumerate(SIZES):
        pool[r, start:start + n] = 1.0 / n
        start += n
    coarse = torch.stack([f.mean(1)[0] for f in fine_out]).unsqueeze(0)      # (1, R, D)
    r_coarse = torch.eye(len(SIZES), dtype=torch.float64)
    for blk in model.him["wsi"].coarse_blocks:
        r_coarse = _step(blk, coarse) @ r_coarse
        coarse = blk(coarse)
    v = _ifm(model.fuse_fine, 0, torch.cat(fine_out, 1))
    u = _ifm(model.fuse_coarse, 0, coarse)
    alpha = float(model.alpha)
    expected = alpha * v @ r_fine + (1 - alpha) * u @ r_coarse @ pool @ r_fine
    got = imp.fine[imp.mask]
    print("max |rollout - dense product| =", (got - expected).abs().max().item())
    assert torch.allclose(got, expected, atol=1e-12)
    assert abs(imp.alpha - alpha) < 1e-12


@pytest.mark.parametrize("variant", ["A", "B", "C", "F"])
@pytest.mark.parametrize("modality", ["wsi", "rna"])
def test_importance_sums(variant, modality):
    model, batch = _model(variant, layers=1), _batch()
    imp = hidden_attention_importance(model, batch, modality)
    assert torch.all(imp.fine >= 0) and torch.all(imp.fine[~imp.mask] == 0)
    assert abs(imp.fine.sum().item() - 1) < 1e-12
    assert torch.allclose(imp.group, imp.fine.sum(-1))
    real = imp.mask.any(-1)
    assert torch.allclose(imp.within.sum(-1)[real], torch.ones(int(real.sum()), dtype=imp.within.dtype))
    if variant in ("C", "F"):
        assert imp.coarse is not None and abs(imp.coarse.sum().item() - 1) < 1e-12
    else:
        assert imp.coarse is None and imp.alpha == 1.0


def test_rollout_step_rows():
    step = rollout_step(torch.tensor([[[2.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]]),
                        torch.tensor([[1.0, 1.0, 0.0]]))
    assert step.tolist() == [[[1.0, 0.0, 0.0], [0.25, 0.75, 0.0], [0.0, 0.0, 0.0]]]


def test_one_patient_at_a_time():
    model = _model("C", layers=1)
    two = collate_bags([PatientBag(f"c{i}", torch.randn(3, 6, dtype=torch.float64), torch.tensor([0, 0, 1]),
                                   torch.randn(12, dtype=torch.float64), 1.0, 0) for i in range(2)])
    with pytest.raises(ValueError, match="one patient"):
        hidden_attention_importance(model, two, "wsi")


def test_integrated_gradients_completeness_and_gradient_x_input():
    model, batch = _model("F", layers=1), _batch()
    ig = integrated_gradients(model, batch, steps=64)
    gap = ig.completeness_gap.abs().item()
    print(f"IG completeness gap {gap:.2e}, risk change {(ig.risk - ig.risk_baseline).item():.4f}")
    assert gap < 1e-3 * max(1e-3, abs((ig.risk - ig.risk_baseline).item())) + 1e-6
    gxi = integrated_gradients(model, batch, steps=0)
    p = batch.patches.clone().requires_grad_(True)
    r = batch.rna.clone().requires_grad_(True)
    from dataclasses import replace
    from survmamba_lite.survival import risk_score
    grad_p, grad_r = torch.autograd.grad(risk_score(model(replace(batch, patches=p, rna=r))).sum(), [p, r])
    assert torch.allclose(gxi.patches, batch.patches * grad_p * batch.patch_mask.unsqueeze(-1))
    assert torch.allclose(gxi.rna, batch.rna * grad_r)


def test_function_scores_conserve_the_genes():
    h = build_tiny_hierarchy()
    genes = torch.randn(3, h.n_genes, dtype=torch.float64)
    f, p = function_scores(genes, h)
    assert torch.allclose(f.sum(-1), genes.sum(-1))            # every tiny-hierarchy gene is in a function
    assert torch.allclose(p.sum(-1), f.sum(-1)) and p.shape == (3, h.n_processes)
