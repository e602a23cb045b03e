"""SurvMamba on CUDA: same logits and gradients as on CPU, and with mamba-ssm's fused kernel.

Skipped without CUDA; the mamba-ssm comparison is skipped when ``mamba_ssm`` does not import.
"""
from __future__ import annotations

import pytest
import torch

from survmamba_lite import SurvMamba, SurvMambaConfig
from survmamba_lite.data import collate_bags
from survmamba_lite.ssm import available_backends
from survmamba_lite.survival import nll_loss

from conftest import TINY_BINS, TINY_WSI_DIM, build_tiny_bags, build_tiny_hierarchy

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def logits_and_grads(backend: str, device: str, dtype=torch.float32, variant="F"):
    torch.manual_seed(0)
    cfg = SurvMambaConfig(n_bins=TINY_BINS, wsi_dim=TINY_WSI_DIM, hierarchy=build_tiny_hierarchy(), dim=16,
                          d_state=8, dropout=0.0, variant=variant, scan_backend=backend)
    model = SurvMamba(cfg).to(device=device, dtype=dtype).eval()
    bags = build_tiny_bags([(5, 300), (3, 40), (1, 7)])
    for b in bags:
        b.features, b.rna = b.features.to(dtype), b.rna.to(dtype)
    batch = collate_bags(bags).to(device)
    logits = model(batch)
    nll_loss(logits, batch.time_bin, batch.event).backward()
    grads = {n: p.grad.detach().double().cpu() for n, p in model.named_parameters()}
    return logits.detach().double().cpu(), grads


@pytest.mark.parametrize("variant", ["A", "C", "F"])
def test_cuda_parallel_equals_cpu_ref(variant):
    lc, gc = logits_and_grads("ref", "cpu", torch.float64, variant)
    lg, gg = logits_and_grads("parallel", "cuda", torch.float64, variant)
    assert (lc - lg).abs().max() < 1e-9
    for n in gc:
        assert (gc[n] - gg[n]).abs().max() < 1e-8, n


@pytest.mark.skipif(not torch.cuda.is_available() or "mamba_ssm" not in available_backends("cuda"),
                    reason="mamba_ssm (with its compiled CUDA extension) is not importable")
def test_mamba_ssm_backend_equals_parallel_in_the_full_model():
    lp, gp = logits_and_grads("parallel", "cuda")
    lm, gm = logits_and_grads("mamba_ssm", "cuda")
    diff = (lp - lm).abs().max()
    print(f"max |logits parallel - mamba_ssm| = {diff:.3e}")
    assert diff < 1e-4
    for n in gp:
        scale = gp[n].abs().max().clamp_min(1e-3)
        assert (gp[n] - gm[n]).abs().max() / scale < 1e-3, n
