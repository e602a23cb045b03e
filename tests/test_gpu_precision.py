"""GPU precision and fused paths: bf16 autocast vs fp32, causal-conv1d vs nn.Conv1d, one-call Bi-Mamba.

Stated tolerances (bf16 keeps 8 mantissa bits, so relative errors of ~1e-2 per operation are
expected; float32 paths must agree to ~1e-5):

* whole model, bf16 autocast vs fp32, same weights and input: logits within 5 % of the logits'
  range, every parameter gradient with cosine similarity >= 0.98 to the fp32 gradient and a
  norm within 20 % (parameters whose fp32 gradient is ~0 are skipped);
* causal-conv1d vs ``F.conv1d`` in float32: 1e-5 (outputs and gradients);
* Bi-Mamba in one scan call vs two calls on CUDA in float32: 1e-4 relative.

Skipped without CUDA; the mamba-ssm and causal-conv1d checks are skipped when they do not import
(``make gpu-setup`` builds them).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from survmamba_lite import SurvMamba, SurvMambaConfig
from survmamba_lite.data import collate_bags
from survmamba_lite.ssm import available_backends
from survmamba_lite.ssm.bimamba import BiMamba, available_conv_backends, causal_conv1d_silu
from survmamba_lite.survival import nll_loss
from survmamba_lite.utils.precision import autocast

from conftest import TINY_BINS, TINY_WSI_DIM, build_tiny_bags, build_tiny_hierarchy

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

SCAN_BACKENDS = ["parallel", "mamba_ssm"]


def scan_backend_available(name: str) -> bool:
    return torch.cuda.is_available() and name in available_backends("cuda")


def run_model(precision: str, backend: str, variant: str = "F", conv: str = "auto", recompute=None):
    torch.manual_seed(0)
    cfg = SurvMambaConfig(n_bins=TINY_BINS, wsi_dim=TINY_WSI_DIM, hierarchy=build_tiny_hierarchy(), dim=64,
                          d_state=16, dropout=0.0, variant=variant, scan_backend=backend, conv_backend=conv,
                          recompute_tokens=recompute)
    model = SurvMamba(cfg).cuda().train()
    batch = collate_bags(build_tiny_bags([(6, 300), (3, 40), (1, 7)])).to("cuda")
    with autocast(precision, "cuda"):
        logits = model(batch)
    nll_loss(logits.float(), batch.time_bin, batch.event).backward()
    grads = {n: p.grad.detach().double().cpu() for n, p in model.named_parameters()}
    return logits.detach().double().cpu(), grads


@pytest.mark.parametrize("backend", SCAN_BACKENDS)
@pytest.mark.parametrize("variant", ["A", "F"])
def test_bf16_model_matches_fp32_within_stated_tolerance(backend, variant):
    if not scan_backend_available(backend):
        pytest.skip(f"{backend} not available on CUDA")
    l32, g32 = run_model("fp32", backend, variant)
    l16, g16 = run_model("bf16", backend, variant)
    spread = (l32.max() - l32.min()).clamp_min(1e-3)
    err = (l16 - l32).abs().max() / spread
    print(f"{backend} {variant}: max |logits bf16 - fp32| / range = {err:.3e}")
    assert err < 0.05
    checked = 0
    for name, g in g32.items():
        if g.norm() < 1e-6:
            continue
        h = g16[name]
        cos = float((g * h).sum() / (g.norm() * h.norm()).clamp_min(1e-30))
        ratio = float(h.norm() / g.norm())
        assert cos >= 0.98 and 0.8 <= ratio <= 1.2, f"{name}: cosine {cos:.4f}, norm ratio {ratio:.3f}"
        checked += 1
    assert checked > 20


@pytest.mark.skipif(not torch.cuda.is_available() or "causal_conv1d" not in available_conv_backends("cuda"),
                    reason="causal-conv1d (with its compiled CUDA extension) is not importable")
@pytest.mark.parametrize("width", [2, 3, 4])
def test_causal_conv1d_equals_torch_conv(width):
    torch.manual_seed(0)
    x = torch.randn(3, 64, 257, device="cuda", requires_grad=True)
    w = torch.randn(64, 1, width, device="cuda", requires_grad=True)
    b = torch.randn(64, device="cuda", requires_grad=True)
    outs, grads = [], []
    for backend in ("torch", "causal_conv1d"):
        y = causal_conv1d_silu(x, w, b, backend)
        g = torch.autograd.grad((y * torch.linspace(-1, 1, 257, device="cuda")).sum(), [x, w, b])
        outs.append(y.detach())
        grads.append(g)
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-5)
    for a, e in zip(grads[1], grads[0]):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-4)
    ref = F.silu(F.conv1d(x, w, b, padding=width - 1, groups=64)[..., :257])
    torch.testing.assert_close(outs[0], ref.detach())


@pytest.mark.parametrize("backend", SCAN_BACKENDS)
def test_one_scan_call_equals_two_on_cuda(backend):
    if not scan_backend_available(backend):
        pytest.skip(f"{backend} not available on CUDA")
    torch.manual_seed(0)
    fused = BiMamba(64, d_state=16, scan_backend=backend).cuda()
    plain = BiMamba(64, d_state=16, scan_backend=backend, fuse_directions=False).cuda()
    plain.load_state_dict(fused.state_dict())
    x = torch.randn(5, 130, 64, device="cuda")
    mask = torch.arange(130, device="cuda") < torch.tensor([[130], [77], [1], [0], [129]], device="cuda")
    xf, xp = x.clone().requires_grad_(), x.clone().requires_grad_()
    yf, yp = fused(xf, mask), plain(xp, mask)
    torch.testing.assert_close(yf, yp, rtol=1e-4, atol=1e-5)
    yf.square().sum().backward()
    yp.square().sum().backward()
    torch.testing.assert_close(xf.grad, xp.grad, rtol=1e-3, atol=1e-4)
    assert torch.equal(yf[3], torch.zeros_like(yf[3]))                    # a row of padding only


def test_recompute_on_cuda_equals_plain():
    backend = "mamba_ssm" if scan_backend_available("mamba_ssm") else "parallel"
    l1, g1 = run_model("fp32", backend, "F", recompute=None)
    l2, g2 = run_model("fp32", backend, "F", recompute=256)
    torch.testing.assert_close(l2, l1, rtol=1e-5, atol=1e-6)
    for name, g in g1.items():
        torch.testing.assert_close(g2[name], g, rtol=1e-3, atol=1e-5, msg=lambda m: f"{name}: {m}")
