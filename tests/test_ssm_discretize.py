"""Discretisation (Eq. 2) against scipy, the diagonal fast path, Mamba's simplified B̄, and the
recurrent (Eq. 3) vs convolutional (Eq. 4) forms."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import torch

from survmamba_lite.ssm import (selective_scan, simplified, ssm_convolution, ssm_kernel, ssm_recurrence, zoh,
                                zoh_diagonal)


def maxdiff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def random_system(N=4, M=2, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(N, N)) - 1.5 * np.eye(N)  # general, non-diagonal, non-symmetric
    B = rng.normal(size=(N, M))
    return A, B


@pytest.mark.parametrize("delta", [1e-3, 0.1, 0.7, 2.0])
def test_zoh_matches_scipy_expm_and_inverse_formula(delta):
    A, B = random_system()
    A_bar, B_bar = zoh(delta, torch.from_numpy(A), torch.from_numpy(B))
    expected_A = scipy.linalg.expm(delta * A)
    expected_B = np.linalg.solve(delta * A, (expected_A - np.eye(4)) @ (delta * B))  # (ΔA)^-1 (e^ΔA - I) ΔB
    assert maxdiff(A_bar, expected_A) < 1e-12, f"A_bar max abs diff {maxdiff(A_bar, expected_A):.3e}"
    assert maxdiff(B_bar, expected_B) < 1e-10, f"B_bar max abs diff {maxdiff(B_bar, expected_B):.3e}"


def test_zoh_singular_A_matches_integral():
    """Singular A: the inverse formula is undefined, B̄ = ∫_0^Δ e^{sA} ds B still exists."""
    A = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.3, 0.0, -1.0]])
    B = np.array([0.5, 1.0, -2.0])
    delta = 0.8
    assert abs(np.linalg.det(A)) < 1e-14
    A_bar, B_bar = zoh(delta, torch.from_numpy(A), torch.from_numpy(B))
    integral, _ = scipy.integrate.quad_vec(lambda s: scipy.linalg.expm(s * A) @ B, 0.0, delta, epsabs=1e-13)
    assert maxdiff(A_bar, scipy.linalg.expm(delta * A)) < 1e-12
    assert maxdiff(B_bar, integral) < 1e-10, f"B_bar max abs diff {maxdiff(B_bar, integral):.3e}"


def test_zoh_batched_steps():
    A, B = random_system(N=3, M=1, seed=1)
    deltas = torch.tensor([0.05, 0.5, 1.5], dtype=torch.float64)
    A_bar, B_bar = zoh(deltas, torch.from_numpy(A), torch.from_numpy(B[:, 0]))
    assert A_bar.shape == (3, 3, 3) and B_bar.shape == (3, 3)
    for i, d in enumerate(deltas.tolist()):
        A1, B1 = zoh(d, torch.from_numpy(A), torch.from_numpy(B[:, 0]))
        assert maxdiff(A_bar[i], A1) < 1e-14 and maxdiff(B_bar[i], B1) < 1e-14


@pytest.mark.parametrize("delta", [1e-6, 0.01, 0.3, 3.0])
def test_zoh_diagonal_matches_zoh(delta):
    a = np.array([-2.0, -0.5, 0.0, -1e-7, 0.7])  # includes A = 0 and a tiny entry
    b = np.array([1.0, -1.0, 2.0, 0.3, 0.5])
    A_bar, B_bar = zoh_diagonal(delta, torch.from_numpy(a), torch.from_numpy(b))
    A_full, B_full = zoh(delta, torch.diag(torch.from_numpy(a)), torch.from_numpy(b))
    # torch.linalg.matrix_exp (Padé/Taylor) is accurate to a few 1e-12 here; the elementwise path is exact
    assert maxdiff(A_bar, torch.diagonal(A_full)) < 1e-11
    assert maxdiff(B_bar, B_full) < 1e-11, f"B_bar max abs diff {maxdiff(B_bar, B_full):.3e}"


def test_zoh_diagonal_gradient_is_finite_at_zero():
    A = torch.tensor([0.0, -1e-6, -1.0], dtype=torch.float64, requires_grad=True)
    _, B_bar = zoh_diagonal(0.5, A, torch.ones(3, dtype=torch.float64))
    (grad,) = torch.autograd.grad(B_bar.sum(), A)
    assert torch.isfinite(grad).all()
    assert abs(grad[0].item() - 0.5 ** 2 / 2) < 1e-9  # d/dA [φ1(ΔA)Δ] at A = 0 is Δ²/2


def test_simplified_converges_to_zoh_quadratically():
    """Ā is exact; B̄ = ΔB differs from ZOH by ½Δ²AB + O(Δ³)."""
    A, B = random_system(N=3, M=1, seed=2)
    A_t, B_t = torch.from_numpy(A), torch.from_numpy(B)
    errors = []
    for delta in (0.1, 0.05, 0.025, 0.0125):
        A_s, B_s = simplified(delta, A_t, B_t, diagonal=False)
        A_z, B_z = zoh(delta, A_t, B_t)
        assert maxdiff(A_s, A_z) < 1e-12
        err = maxdiff(B_s, B_z)
        leading = maxdiff(B_z - B_s, 0.5 * delta ** 2 * A @ B)
        assert leading < delta ** 3, f"B̄ error is not ½Δ²AB + O(Δ³) at Δ={delta}"
        errors.append(err)
    ratios = [errors[i + 1] / errors[i] for i in range(len(errors) - 1)]
    assert all(0.22 < r < 0.28 for r in ratios), f"halving Δ should quarter the error, got ratios {ratios}"


def test_simplified_diagonal_matches_matrix_form():
    a = torch.tensor([-1.0, -0.2, -3.0], dtype=torch.float64)
    b = torch.tensor([0.5, 1.0, -1.0], dtype=torch.float64)
    A_d, B_d = simplified(0.3, a, b)
    A_m, B_m = simplified(0.3, torch.diag(a), b, diagonal=False)
    assert maxdiff(A_d, torch.diagonal(A_m)) < 1e-14 and maxdiff(B_d, B_m) < 1e-15


def test_kernel_matches_matrix_powers():
    A, B = random_system(N=4, M=1, seed=3)
    A_bar, B_bar = zoh(0.2, torch.from_numpy(A), torch.from_numpy(B[:, 0]))
    C = torch.randn(4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    K = ssm_kernel(A_bar, B_bar, C, 12)
    expected = [C.numpy() @ np.linalg.matrix_power(A_bar.numpy(), k) @ B_bar.numpy() for k in range(12)]
    assert maxdiff(K, expected) < 1e-13


@pytest.mark.parametrize("L", [1, 5, 64])
def test_recurrence_equals_convolution(L):
    """Eq. 3 (recurrence) and Eq. 4 (convolution with K̄) give the same output."""
    A, B = random_system(N=4, M=1, seed=4)
    A_bar, B_bar = zoh(0.1, torch.from_numpy(A), torch.from_numpy(B[:, 0]))
    g = torch.Generator().manual_seed(L)
    C = torch.randn(4, dtype=torch.float64, generator=g)
    x = torch.randn(3, L, dtype=torch.float64, generator=g)
    y_rec = ssm_recurrence(A_bar, B_bar, C, x)
    y_conv = ssm_convolution(ssm_kernel(A_bar, B_bar, C, L), x)
    assert maxdiff(y_rec, y_conv) < 1e-12, f"max abs diff {maxdiff(y_rec, y_conv):.3e}"


def test_selective_scan_reduces_to_time_invariant_ssm():
    """Constant Δ and time-invariant B, C: every channel of the selective scan is the
    recurrence of Eq. 3 with Mamba's simplified discretisation of its diagonal A."""
    g = torch.Generator().manual_seed(5)
    E, N, L, delta = 3, 4, 20, 0.3
    A = -torch.rand(E, N, generator=g, dtype=torch.float64) - 0.1
    B = torch.randn(E, N, generator=g, dtype=torch.float64)
    C = torch.randn(E, N, generator=g, dtype=torch.float64)
    u = torch.randn(2, E, L, generator=g, dtype=torch.float64)
    for backend in ("ref", "parallel"):
        y = selective_scan(u, torch.full_like(u, delta), A, B, C, backend=backend)
        for e in range(E):
            A_bar, B_bar = simplified(delta, torch.diag(A[e]), B[e], diagonal=False)
            expected = ssm_recurrence(A_bar, B_bar, C[e], u[:, e])
            assert maxdiff(y[:, e], expected) < 1e-12, f"{backend} channel {e}"


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="K must be"):
        ssm_convolution(torch.ones(3), torch.ones(4))
    with pytest.raises(ValueError, match="L must be"):
        ssm_kernel(torch.eye(2), torch.ones(2), torch.ones(2), 0)
