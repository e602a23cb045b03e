"""The hidden-attention matrices reproduce the scan they are read from (CPU, float64).

Tolerance: 1e-10 absolute in float64 (the matrices and the scan sum the same terms in a
different order); the largest difference is printed."""
from __future__ import annotations

import pytest
import torch

from survmamba_lite.interpret import bimamba_attention, block_mixing, scan_matrix
from survmamba_lite.ssm import BiMamba, reverse_within_length, selective_scan, ssm_kernel
from survmamba_lite.ssm.bimamba import bidirectional_scan

TOL = 1e-10


def _block(backend: str, fuse: bool = True, bidirectional: bool = True, seed: int = 0) -> BiMamba:
    torch.manual_seed(seed)
    blk = BiMamba(dim=6, d_state=4, expand=2, d_conv=3, bidirectional=bidirectional, scan_backend=backend,
                  fuse_directions=fuse).double().eval()
    with torch.no_grad():                       # larger steps than the initialisation: long-range decay matters
        for br in (blk.forward_branch, blk.backward_branch):
            if br is not None:
                br.dt_proj.bias.add_(2.0)
                br.D.normal_()
    return blk


def _inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 7, 6, generator=g, dtype=torch.float64)
    lengths = torch.tensor([7, 4, 1])
    mask = torch.arange(7).unsqueeze(0) < lengths.unsqueeze(1)
    return x * mask.unsqueeze(-1), mask, lengths


def _report(name: str, a: torch.Tensor, b: torch.Tensor) -> float:
    diff = (a - b).abs().max().item()
    print(f"{name}: max |difference| = {diff:.3g} (scale {b.abs().max().item():.3g})")
    return diff


@pytest.mark.parametrize("backend", ["ref", "parallel"])
@pytest.mark.parametrize("fuse", [True, False])
def test_matrices_reproduce_the_block(backend, fuse):
    blk = _block(backend, fuse)
    x, mask, lengths = _inputs()
    att = bimamba_attention(blk, x, mask)
    valid = mask.double()
    with torch.no_grad():
        xs = blk.in_proj(blk.norm(x)).chunk(2, dim=-1)[0]
        y_fwd = blk.forward_branch(xs, valid) * valid.unsqueeze(-1)
        y_bwd = reverse_within_length(blk.backward_branch(reverse_within_length(xs, lengths), valid),
                                      lengths) * valid.unsqueeze(-1)
        y_fused = bidirectional_scan(blk.forward_branch, blk.backward_branch, xs, valid, lengths) * valid.unsqueeze(-1)
        out = blk(x, mask)
    # each direction separately: the matrix applied to that branch's scan inputs, plus its skip
    mine_f = torch.einsum("bets,bes->bte", att.forward, att.u_forward) + att.u_forward.transpose(1, 2) * att.d_forward
    mine_b = (torch.einsum("bets,bes->bte", att.backward, att.u_backward)
              + att.u_backward.transpose(1, 2) * att.d_backward)
    assert _report("forward", mine_f * valid.unsqueeze(-1), y_fwd) < TOL
    assert _report("backward", mine_b * valid.unsqueeze(-1), y_bwd) < TOL
    # both directions: the SSM output before gating, and the block output through gate, projection, residual
    assert _report("ssm output", att.ssm_output(), y_fused) < TOL
    assert _report("block output", att.block_output(blk, x), out) < TOL
    # causal structure: forward lower-, backward upper-triangular; padding rows/columns zero
    assert torch.all(att.forward.triu(1) == 0) and torch.all(att.backward.tril(-1) == 0)
    assert torch.all(att.forward[1, :, 4:] == 0) and torch.all(att.forward[1, :, :, 4:] == 0)


def test_padding_does_not_change_the_real_block():
    blk = _block("ref")
    x, mask, _ = _inputs()
    full = bimamba_attention(blk, x, mask)
    alone = bimamba_attention(blk, x[1:2, :4])                      # row 1 has 4 real tokens
    assert _report("padded vs alone (fwd)", full.forward[1, :, :4, :4], alone.forward[0]) < TOL
    assert _report("padded vs alone (bwd)", full.backward[1, :, :4, :4], alone.backward[0]) < TOL


def test_unidirectional_block():
    blk = _block("parallel", bidirectional=False)
    x, mask, _ = _inputs()
    att = bimamba_attention(blk, x, mask)
    assert att.backward is None
    with torch.no_grad():
        out = blk(x, mask)
    assert _report("unidirectional block output", att.block_output(blk, x), out) < TOL


def test_grouped_scan_matrix_against_selective_scan():
    """Grouped B/C (the fused bidirectional layout, G = 2) and the D skip."""
    g = torch.Generator().manual_seed(3)
    b, e, n, length = 2, 6, 3, 9
    u = torch.randn(b, e, length, generator=g, dtype=torch.float64)
    delta = torch.rand(b, e, length, generator=g, dtype=torch.float64)
    A = -torch.rand(e, n, generator=g, dtype=torch.float64) * 2
    B = torch.randn(b, 2, n, length, generator=g, dtype=torch.float64)
    C = torch.randn(b, 2, n, length, generator=g, dtype=torch.float64)
    D = torch.randn(e, generator=g, dtype=torch.float64)
    y = selective_scan(u, delta, A, B, C, D=D, backend="ref")
    m = scan_matrix(delta, A, B, C, D, chunk=4)                     # chunks cut across the groups
    assert _report("grouped scan", torch.einsum("bets,bes->bet", m, u), y) < TOL
    assert _report("mean", scan_matrix(delta, A, B, C, D, "mean", 4), m.mean(1)) < TOL
    assert _report("abs mean", scan_matrix(delta, A, B, C, D, "abs_mean", 5), m.abs().mean(1)) < TOL
    # a small memory budget splits channels and output rows: same matrices
    assert _report("split rows", scan_matrix(delta, A, B, C, D, budget=50), m) < TOL
    assert _report("split rows, abs mean", scan_matrix(delta, A, B, C, D, "abs_mean", budget=200),
                   m.abs().mean(1)) < TOL


def test_time_invariant_matrix_is_the_convolution_kernel():
    """Constant Δ, B, C: α_{t,s} = C Ā^{t-s} B̄, the kernel of Eq. 4, in a Toeplitz matrix."""
    n, length, dt = 3, 6, 0.3
    A = -torch.tensor([[0.5, 1.0, 2.0]], dtype=torch.float64)
    Bv, Cv = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64), torch.tensor([0.3, 1.0, -1.0], dtype=torch.float64)
    m = scan_matrix(torch.full((1, 1, length), dt, dtype=torch.float64), A,
                    Bv.view(1, n, 1).expand(1, n, length), Cv.view(1, n, 1).expand(1, n, length))[0, 0]
    K = ssm_kernel(torch.diag(torch.exp(dt * A[0])), dt * Bv, Cv, length)
    toeplitz = torch.stack([torch.cat([K[:t + 1].flip(0), K.new_zeros(length - t - 1)]) for t in range(length)])
    assert _report("Toeplitz", m, toeplitz) < TOL


def test_channel_groups_and_mixing():
    blk = _block("ref")
    x, mask, _ = _inputs()
    att = bimamba_attention(blk, x, mask)
    e = att.forward.shape[1]
    per_channel = att.mean(groups=e)
    assert torch.equal(per_channel, att.forward + att.backward)
    halves = att.mean(groups=2, absolute=True, direction="forward")
    assert halves.shape == (3, 2, 7, 7)
    assert torch.allclose(halves.mean(1), att.mean(absolute=True, direction="forward")[:, 0])
    with pytest.raises(ValueError, match="divide"):
        att.mean(groups=5)
    eye = torch.eye(7, dtype=torch.float64)
    expected = ((att.forward + att.d_forward.view(1, -1, 1, 1) * eye).abs().mean(1)
                + (att.backward + att.d_backward.view(1, -1, 1, 1) * eye).abs().mean(1))
    v = mask.double()
    expected = expected * v.unsqueeze(-1) * v.unsqueeze(-2)
    assert _report("mixing", block_mixing(blk, x, mask, chunk=5), expected) < TOL
