"""Selective scan on CUDA: parallel (GPU) vs ref (CPU), and mamba-ssm's kernel vs parallel.

Skipped without CUDA; the mamba-ssm comparisons are skipped when ``mamba_ssm`` does not import.
"""
from __future__ import annotations

import pytest
import torch

from survmamba_lite.ssm import available_backends, selective_scan
from survmamba_lite.ssm import scan as scan_module

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def mamba_importable() -> bool:
    return scan_module._mamba_selective_scan_fn()[0] is not None


needs_mamba = pytest.mark.skipif(
    not torch.cuda.is_available() or not mamba_importable(),
    reason="mamba_ssm (with its compiled CUDA extension) is not importable",
)


def make_inputs(Bn, E, N, L, seed, device, dtype, bc="variable"):
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    B, C = (r(Bn, N, L), r(Bn, N, L)) if bc == "variable" else (r(E, N), r(E, N))
    x = {"u": r(Bn, E, L), "delta": r(Bn, E, L), "A": -torch.rand(E, N, generator=g, dtype=torch.float64) * 2 - 0.05,
         "B": B, "C": C, "D": r(E), "z": r(Bn, E, L), "delta_bias": r(E) * 0.5}
    return {k: v.to(device=device, dtype=dtype).requires_grad_() for k, v in x.items()}


def outputs_and_grads(backend, x, last=True, last_grad=True):
    out = selective_scan(*[x[k] for k in NAMES], delta_softplus=True, return_last_state=last, backend=backend)
    outs = out if isinstance(out, tuple) else (out,)
    g = torch.Generator().manual_seed(1)
    weights = [torch.randn(o.shape, generator=g, dtype=torch.float64).to(o.device) for o in outs]
    used = outs if last_grad else outs[:1]
    loss = sum((o.double() * w).sum() for o, w in zip(used, weights))
    grads = torch.autograd.grad(loss, [x[k] for k in NAMES])
    return [o.detach().cpu().double() for o in outs], {k: g.cpu().double() for k, g in zip(NAMES, grads)}


def assert_close(name, actual, expected, atol, rtol):
    diff = (actual - expected).abs()
    assert torch.isfinite(actual).all(), f"{name}: non-finite values"
    assert (diff <= atol + rtol * expected.abs()).all(), f"{name}: max abs diff {diff.max().item():.3e}"


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-3)])
@pytest.mark.parametrize("L", [1, 100, 2049])
@pytest.mark.parametrize("bc", ["variable", "fixed"])
def test_parallel_cuda_matches_ref_cpu(dtype, tol, L, bc):
    x_gpu = make_inputs(2, 16, 8, L, seed=L, device="cuda", dtype=dtype, bc=bc)
    x_cpu = make_inputs(2, 16, 8, L, seed=L, device="cpu", dtype=torch.float64, bc=bc)
    out_p, g_p = outputs_and_grads("parallel", x_gpu)
    out_r, g_r = outputs_and_grads("ref", x_cpu)
    for name, a, b in zip(("y", "last_state"), out_p, out_r):
        assert_close(name, a, b, tol, tol)
    for k in NAMES:
        assert_close(f"grad {k}", g_p[k], g_r[k], tol, tol)


def test_auto_backend_on_cuda():
    x = make_inputs(1, 4, 4, 10, seed=0, device="cuda", dtype=torch.float32)
    expected = "mamba_ssm" if mamba_importable() else "parallel"
    assert expected in available_backends("cuda")
    y_auto = selective_scan(*[x[k] for k in NAMES], delta_softplus=True, backend="auto")
    y_expected = selective_scan(*[x[k] for k in NAMES], delta_softplus=True, backend=expected)
    assert torch.equal(y_auto, y_expected)


@needs_mamba
@pytest.mark.parametrize("L", [1, 64, 1000, 4096])
@pytest.mark.parametrize("bc", ["variable", "fixed"])
def test_mamba_ssm_matches_parallel(L, bc):
    """mamba-ssm's fused kernel vs the parallel backend in float32 (outputs and gradients;
    mamba-ssm does not back-propagate through last_state, so that gradient is left out)."""
    x = make_inputs(2, 32, 16, L, seed=L, device="cuda", dtype=torch.float32, bc=bc)
    out_m, g_m = outputs_and_grads("mamba_ssm", x, last_grad=False)
    out_p, g_p = outputs_and_grads("parallel", x, last_grad=False)
    for name, a, b in zip(("y", "last_state"), out_m, out_p):
        assert_close(name, a, b, 1e-3, 1e-3)
    for k in NAMES:
        scale = g_p[k].abs().max().item() + 1.0
        assert_close(f"grad {k}", g_m[k], g_p[k], 2e-3 * scale, 2e-3)


@needs_mamba
def test_mamba_ssm_rejects_float64_clearly():
    x = make_inputs(1, 4, 4, 10, seed=0, device="cuda", dtype=torch.float64)
    with pytest.raises(RuntimeError, match="float64"):
        selective_scan(*[x[k] for k in NAMES], backend="mamba_ssm")


@needs_mamba
def test_mamba_ssm_zero_delta_is_identity_step():
    """Δ = 0 steps leave the state unchanged in the fused kernel too (as in ref and parallel)."""
    x = make_inputs(2, 8, 4, 50, seed=3, device="cuda", dtype=torch.float32)
    with torch.no_grad():
        x["delta"].abs_()
        x["delta"][..., 10:20] = 0.0
    args = [x["u"], x["delta"], x["A"], x["B"], x["C"]]
    y_m, last_m = selective_scan(*args, return_last_state=True, backend="mamba_ssm")
    y_p, last_p = selective_scan(*args, return_last_state=True, backend="parallel")
    assert_close("y", y_m.detach().cpu().double(), y_p.detach().cpu().double(), 1e-4, 1e-4)
    assert_close("last_state", last_m.cpu().double(), last_p.detach().cpu().double(), 1e-4, 1e-4)
    _, h9 = selective_scan(*[a[..., :10] for a in (x["u"], x["delta"])], x["A"], x["B"][..., :10],
                           x["C"][..., :10], return_last_state=True, backend="mamba_ssm")
    expected = torch.einsum("ben,bn->be", h9, x["C"][..., 15].float())
    assert_close("y at a zero step", y_m[..., 15].detach().cpu().double(), expected.detach().cpu().double(), 1e-4, 1e-4)
