"""Bi-Mamba (Algorithm 1): padding never leaks, directions, and a plain re-implementation."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from survmamba_lite.ssm import selective_scan_ref
from survmamba_lite.ssm.bimamba import BiMamba, MambaBranch, check_prefix_mask, reverse_within_length

BACKENDS = ["ref", "parallel"]


def make_block(bidirectional=True, backend="parallel", dim=8, seed=0):
    torch.manual_seed(seed)
    return BiMamba(dim, d_state=4, expand=2, d_conv=3, bidirectional=bidirectional, scan_backend=backend).double().eval()


def branch_plain(br: MambaBranch, x: torch.Tensor) -> torch.Tensor:
    """Lines 7-13 of Algorithm 1 for one unpadded sequence x: (L, E), written out directly."""
    L = x.shape[0]
    w = br.conv.weight.squeeze(1)                                   # (E, d_conv)
    xp = F.pad(x.T, (br.d_conv - 1, 0))                             # (E, L + d_conv - 1), causal padding
    xc = torch.stack([(xp[:, t:t + br.d_conv] * w).sum(-1) for t in range(L)], -1) + br.conv.bias[:, None]
    xc = F.silu(xc)                                                 # (E, L)
    dt, B, C = (xc.T @ br.x_proj.weight.T).split([br.dt_rank, br.d_state, br.d_state], -1)
    delta = F.softplus(dt @ br.dt_proj.weight.T + br.dt_proj.bias).T          # (E, L)
    A = -torch.exp(br.A_log)
    h = torch.zeros_like(A)
    ys = []
    for t in range(L):                                              # Eq. 3 with Ā = exp(ΔA), B̄ = ΔB
        h = torch.exp(delta[:, t, None] * A) * h + delta[:, t, None] * B[t] * xc[:, t, None]
        ys.append(h @ C[t] + br.D * xc[:, t])
    return torch.stack(ys, 0)                                       # (L, E)


def bimamba_plain(blk: BiMamba, x: torch.Tensor) -> torch.Tensor:
    """Algorithm 1 for one unpadded sequence x: (L, D)."""
    xs, z = blk.in_proj(blk.norm(x)).chunk(2, -1)
    y = branch_plain(blk.forward_branch, xs)
    if blk.backward_branch is not None:
        y = y + branch_plain(blk.backward_branch, xs.flip(0)).flip(0)
    return blk.out_proj(y * F.silu(z)) + x


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_plain_algorithm_1(bidirectional, backend):
    blk = make_block(bidirectional, backend)
    x = torch.randn(7, 8, dtype=torch.float64)
    got = blk(x.unsqueeze(0)).squeeze(0)
    want = bimamba_plain(blk, x)
    assert torch.allclose(got, want, atol=1e-10), (got - want).abs().max()


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("backend", BACKENDS)
def test_group_alone_equals_group_in_padded_batch(bidirectional, backend):
    """A short group run alone gives the same tokens as in a batch with longer groups."""
    blk = make_block(bidirectional, backend)
    lengths = [3, 9, 1, 6]
    g = torch.Generator().manual_seed(1)
    groups = [torch.randn(n, 8, generator=g, dtype=torch.float64) for n in lengths]
    x = torch.zeros(len(lengths), max(lengths), 8, dtype=torch.float64)
    mask = torch.zeros(len(lengths), max(lengths), dtype=torch.bool)
    for i, grp in enumerate(groups):
        x[i, : len(grp)] = grp
        x[i, len(grp):] = 100.0 * torch.randn(max(lengths) - len(grp), 8, generator=g, dtype=torch.float64)
        mask[i, : len(grp)] = True
    batched = blk(x, mask)
    for i, grp in enumerate(groups):
        alone = blk(grp.unsqueeze(0)).squeeze(0)
        diff = (batched[i, : len(grp)] - alone).abs().max()
        assert diff < 1e-10, f"group {i} (length {len(grp)}): max diff {diff}"
        assert torch.all(batched[i, len(grp):] == 0)


def test_naive_flip_of_padded_rows_would_leak():
    """The pitfall the block avoids: flipping a padded row starts the backward scan on padding."""
    blk = make_block(True, "ref")
    grp = torch.randn(3, 8, dtype=torch.float64)
    x = torch.cat([grp, torch.randn(5, 8, dtype=torch.float64)]).unsqueeze(0)
    xs, _ = blk.in_proj(blk.norm(x)).chunk(2, -1)
    naive = blk.backward_branch(xs.flip(1)).flip(1)[0, :3]
    alone = blk.backward_branch(xs[:, :3].flip(1)).flip(1)[0]
    assert (naive - alone).abs().max() > 1e-3


def test_directions():
    """Forward-only output at t ignores later tokens; Bi-Mamba output depends on them."""
    x = torch.randn(1, 6, 8, dtype=torch.float64)
    x2 = x.clone()
    x2[0, 4:] += torch.randn(2, 8, dtype=torch.float64)  # not a constant shift: LayerNorm would remove it
    uni, bi = make_block(False), make_block(True)
    assert torch.allclose(uni(x)[0, :4], uni(x2)[0, :4], atol=1e-12)
    assert (bi(x)[0, :4] - bi(x2)[0, :4]).abs().max() > 1e-4


def test_reverse_within_length_is_an_involution():
    x = torch.randn(4, 7, 3)
    n = torch.tensor([0, 7, 3, 1])
    assert torch.equal(reverse_within_length(reverse_within_length(x, n), n), x)
    assert torch.equal(reverse_within_length(x, n)[1], x[1].flip(0))


def test_bad_mask_is_a_clear_error():
    with pytest.raises(ValueError, match="prefix"):
        check_prefix_mask(torch.tensor([[True, False, True]]))


def test_all_padding_rows_and_gradients():
    blk = make_block(True, "parallel")
    blk.train()
    x = torch.randn(3, 5, 8, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1, 0, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    out = blk(x, mask)
    assert torch.all(out[1] == 0)
    out.sum().backward()
    assert torch.all(x.grad[0, 2:] == 0) and torch.all(x.grad[1] == 0)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in blk.parameters())


def test_scan_reference_used_by_plain_twin_agrees():
    """The plain loop above and the package's reference scan agree on one branch (guards the twin),
    and the loop's recurrence (Eq. 3) is :func:`selective_scan_ref` on the same inputs."""
    blk = make_block(True, "ref")
    xs = torch.randn(1, 5, 16, dtype=torch.float64)
    assert torch.allclose(blk.forward_branch(xs)[0], branch_plain(blk.forward_branch, xs[0]), atol=1e-10)
    g = torch.Generator().manual_seed(1)
    E, N, L = 6, 4, 7
    u, delta = torch.randn(E, L, generator=g, dtype=torch.float64), torch.rand(E, L, generator=g, dtype=torch.float64)
    A = -torch.rand(E, N, generator=g, dtype=torch.float64)
    B, C = torch.randn(L, N, generator=g, dtype=torch.float64), torch.randn(L, N, generator=g, dtype=torch.float64)
    D = torch.randn(E, generator=g, dtype=torch.float64)
    h, ys = torch.zeros(E, N, dtype=torch.float64), []
    for t in range(L):                                              # the loop of branch_plain
        h = torch.exp(delta[:, t, None] * A) * h + delta[:, t, None] * B[t] * u[:, t, None]
        ys.append(h @ C[t] + D * u[:, t])
    ref = selective_scan_ref(u[None], delta[None], A, B.T[None], C.T[None], D=D)[0]        # (E, L)
    print(f"max |loop - selective_scan_ref| {(torch.stack(ys, -1) - ref).abs().max():.2e}")
    torch.testing.assert_close(torch.stack(ys, -1), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_directions_equal_two_calls_with_padding_and_gradients(backend):
    fused = make_block(backend=backend)
    plain = make_block(backend=backend)
    plain.fuse_directions = False
    plain.load_state_dict(fused.state_dict())
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 7, 8, dtype=torch.float64, generator=g)
    mask = torch.arange(7) < torch.tensor([[7], [4], [1]])
    xf, xp = x.clone().requires_grad_(), x.clone().requires_grad_()
    yf, yp = fused(xf, mask), plain(xp, mask)
    torch.testing.assert_close(yf, yp, rtol=1e-10, atol=1e-12)
    w = torch.randn(yf.shape, dtype=torch.float64, generator=g)
    (yf * w).sum().backward()
    (yp * w).sum().backward()
    torch.testing.assert_close(xf.grad, xp.grad, rtol=1e-10, atol=1e-12)
    for (name, pf), pp in zip(fused.named_parameters(), plain.parameters()):
        torch.testing.assert_close(pf.grad, pp.grad, rtol=1e-9, atol=1e-12, msg=name)


def test_causal_conv_helper_equals_nn_conv1d():
    from survmamba_lite.ssm.bimamba import causal_conv1d_silu

    torch.manual_seed(0)
    conv = torch.nn.Conv1d(6, 6, 4, groups=6, padding=3).double()
    x = torch.randn(2, 6, 11, dtype=torch.float64)
    expected = F.silu(conv(x)[..., :11])
    torch.testing.assert_close(causal_conv1d_silu(x, conv.weight, conv.bias, "torch"), expected)
    torch.testing.assert_close(causal_conv1d_silu(x, conv.weight, conv.bias, "auto"), expected)  # CPU: torch
    with pytest.raises(RuntimeError, match="causal-conv1d"):
        causal_conv1d_silu(x, conv.weight, conv.bias, "causal_conv1d")
    with pytest.raises(ValueError, match="conv backend"):
        causal_conv1d_silu(x, conv.weight, conv.bias, "cudnn")


@pytest.mark.parametrize("backend", BACKENDS)
def test_bf16_autocast_keeps_the_scan_in_float32(backend):
    """Under bf16 autocast the projections run in bfloat16 but the scan upcasts: the output stays
    close to float32 (bf16 has an 8-bit mantissa) and the residual stream stays float32."""
    torch.manual_seed(0)
    blk = BiMamba(16, d_state=4, scan_backend=backend).eval()
    x = torch.randn(2, 9, 16)
    mask = torch.arange(9) < torch.tensor([[9], [5]])
    y32 = blk(x, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y16 = blk(x, mask)
    assert y16.dtype == torch.float32
    err = (y16 - y32).abs().max() / y32.abs().max()
    assert 0 < err < 3e-2, float(err)
    assert torch.equal(y16[1, 5:], torch.zeros(4, 16))
