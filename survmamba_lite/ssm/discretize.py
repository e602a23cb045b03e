"""Discretisation of a continuous SSM (Eq. 1-2) and its recurrent and convolutional forms (Eq. 3-4).

The continuous system :math:`h'(t) = A h(t) + B x(t)`, :math:`y(t) = C h(t)` sampled with
step :math:`\\Delta` and the input held constant over each step (zero-order hold, ZOH) is
exactly

.. math::

    h_t = \\bar A h_{t-1} + \\bar B x_t, \\qquad
    \\bar A = e^{\\Delta A}, \\qquad
    \\bar B = \\int_0^{\\Delta} e^{sA}\\,ds\\; B = (\\Delta A)^{-1}(e^{\\Delta A} - I)\\,\\Delta B .

Mamba keeps :math:`\\bar A` exact but replaces :math:`\\bar B` by :math:`\\Delta B`. With
:math:`\\varphi_1(X) = X^{-1}(e^X - I) = I + X/2 + X^2/6 + \\dots`,

.. math::

    \\bar B_{ZOH} = \\varphi_1(\\Delta A)\\,\\Delta B = \\Delta B + \\tfrac{1}{2}\\Delta^2 A B + O(\\Delta^3),

so the simplified :math:`\\bar B = \\Delta B` is the first-order truncation: its error is
:math:`O(\\Delta^2)` per step and vanishes as :math:`\\Delta \\to 0`.

Shape letters (:mod:`survmamba_lite.shapes`): ``N`` state size, ``U`` input channels of ``B``, ``L``
sequence length.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["zoh", "zoh_diagonal", "simplified", "ssm_kernel", "ssm_recurrence", "ssm_convolution"]


def _as_tensor(delta, like: Tensor) -> Tensor:
    return torch.as_tensor(delta, dtype=like.dtype, device=like.device)


def zoh(delta, A: Tensor, B: Tensor) -> tuple[Tensor, Tensor]:
    """Exact zero-order hold for a general square ``A`` (Eq. 2), via one matrix exponential.

    :math:`\\bar B = (\\Delta A)^{-1}(e^{\\Delta A} - I)\\Delta B` is never formed with an
    inverse. The block matrix :math:`Z = \\begin{pmatrix}\\Delta A & \\Delta B\\\\ 0 & 0\\end{pmatrix}`
    has :math:`e^{Z} = \\begin{pmatrix}e^{\\Delta A} & \\varphi_1(\\Delta A)\\Delta B\\\\ 0 & I\\end{pmatrix}`
    (sum the series: the top-right block is :math:`\\sum_{k\\ge1} (\\Delta A)^{k-1}\\Delta B / k!`),
    so both :math:`\\bar A` and :math:`\\bar B` come from :func:`torch.linalg.matrix_exp`, also for
    a singular ``A`` (where the inverse formula does not exist but the integral does).

    Args:
        delta: step size, a number or a tensor of shape ``(...)`` (one step per batch element).
        A: ``(..., N, N)`` state matrix.
        B: ``(..., N, U)`` input matrix, or ``(..., N)`` for a single input.

    Returns:
        ``(A_bar, B_bar)`` with shapes ``(..., N, N)`` and the shape of ``B`` (broadcast).

    >>> A = torch.tensor([[0.0, 1.0], [0.0, 0.0]], dtype=torch.float64)  # singular
    >>> A_bar, B_bar = zoh(0.5, A, torch.tensor([0.0, 1.0], dtype=torch.float64))
    >>> A_bar.tolist(), [round(v, 12) for v in B_bar.tolist()]  # exact: [[1, Δ], [0, 1]], [Δ²/2, Δ]
    ([[1.0, 0.5], [0.0, 1.0]], [0.125, 0.5])
    """
    vector = B.dim() == A.dim() - 1
    if vector:
        B = B.unsqueeze(-1)
    d = _as_tensor(delta, A)[..., None, None]
    dA, dB = d * A, d * B
    batch = torch.broadcast_shapes(dA.shape[:-2], dB.shape[:-2])
    N, U = A.shape[-1], B.shape[-1]
    block = A.new_zeros(*batch, N + U, N + U)
    block[..., :N, :N] = dA
    block[..., :N, N:] = dB
    E = torch.linalg.matrix_exp(block)
    A_bar, B_bar = E[..., :N, :N], E[..., :N, N:]
    return A_bar, (B_bar.squeeze(-1) if vector else B_bar)


def _phi1(x: Tensor) -> Tensor:
    """:math:`\\varphi_1(x) = (e^x - 1)/x`, with the limit 1 at ``x = 0`` (series near 0)."""
    small = x.abs() < 1e-4
    x_safe = torch.where(small, torch.ones_like(x), x)
    return torch.where(small, 1 + x / 2 + x * x / 6, torch.expm1(x_safe) / x_safe)


def zoh_diagonal(delta, A: Tensor, B: Tensor) -> tuple[Tensor, Tensor]:
    """Exact zero-order hold for a diagonal ``A``, elementwise.

    .. math::

        \\bar A_n = e^{\\Delta A_n}, \\qquad
        \\bar B_n = \\frac{e^{\\Delta A_n} - 1}{\\Delta A_n}\\,\\Delta B_n
                 = \\frac{\\operatorname{expm1}(\\Delta A_n)}{A_n} B_n ,

    using ``expm1`` (no cancellation for small :math:`\\Delta A`) and the limit
    :math:`\\bar B_n = \\Delta B_n` at :math:`A_n = 0`.

    Args:
        delta: step size, a number or a tensor broadcasting against ``A`` and ``B``.
        A: ``(..., N)`` diagonal of the state matrix.
        B: ``(..., N)`` input vector.

    Returns:
        ``(A_bar, B_bar)``, both of the broadcast shape ``(..., N)``.

    >>> A_bar, B_bar = zoh_diagonal(0.1, torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 2.0]))
    >>> [round(v, 6) for v in B_bar.tolist()]  # (1 - e^-0.1) and Δ·B at A = 0
    [0.095163, 0.2]
    """
    d = _as_tensor(delta, A)
    dA = d * A
    return torch.exp(dA), _phi1(dA) * d * B


def simplified(delta, A: Tensor, B: Tensor, diagonal: bool = True) -> tuple[Tensor, Tensor]:
    """Mamba's discretisation: :math:`\\bar A = e^{\\Delta A}` (exact), :math:`\\bar B = \\Delta B`.

    :math:`\\bar B` is the first-order truncation of the ZOH series
    :math:`\\varphi_1(\\Delta A)\\Delta B = \\Delta B + \\tfrac12 \\Delta^2 A B + \\dots`, so it
    differs from :func:`zoh` by :math:`O(\\Delta^2)`. This is what every backend of
    :func:`survmamba_lite.ssm.selective_scan` uses (``deltaB_u = Δ B u``).

    Args:
        delta: step size, a number or a tensor broadcasting against ``A`` and ``B``
            (for ``diagonal=False`` a tensor of shape ``(...)``, one step per matrix).
        A: ``(..., N)`` diagonal entries, or ``(..., N, N)`` with ``diagonal=False``.
        B: ``(..., N)``, or ``(..., N, U)`` / ``(..., N)`` with ``diagonal=False``.
        diagonal: whether ``A`` is given by its diagonal.

    >>> A_bar, B_bar = simplified(0.1, torch.tensor([-1.0]), torch.tensor([1.0]))
    >>> round(A_bar.item(), 6), round(B_bar.item(), 6)
    (0.904837, 0.1)
    """
    d = _as_tensor(delta, A)
    if diagonal:
        return torch.exp(d * A), d * B
    dm = d[..., None, None]
    vector = B.dim() == A.dim() - 1
    B_bar = (dm * (B.unsqueeze(-1) if vector else B))
    return torch.linalg.matrix_exp(dm * A), (B_bar.squeeze(-1) if vector else B_bar)


def ssm_kernel(A_bar: Tensor, B_bar: Tensor, C: Tensor, L: int) -> Tensor:
    """The convolution kernel of Eq. 4, :math:`\\bar K_k = C \\bar A^k \\bar B`, ``k = 0..L-1``.

    Args:
        A_bar: ``(N, N)`` discrete state matrix.
        B_bar: ``(N,)`` discrete input vector (one input channel).
        C: ``(N,)`` output vector (one output channel).
        L: kernel length.

    Returns:
        ``K: (L,)``.

    >>> K = ssm_kernel(torch.eye(2) * 0.5, torch.ones(2), torch.ones(2), 3)
    >>> K.tolist()  # 2 · 0.5^k
    [2.0, 1.0, 0.5]
    """
    if L < 1:
        raise ValueError(f"ssm_kernel: L must be at least 1, got {L}")
    K = []
    v = B_bar  # Ā^k B̄
    for _ in range(L):
        K.append(C @ v)
        v = A_bar @ v
    return torch.stack(K)


def ssm_recurrence(A_bar: Tensor, B_bar: Tensor, C: Tensor, x: Tensor) -> Tensor:
    """The recurrent form of Eq. 3 for a time-invariant SSM, one step at a time.

    :math:`h_t = \\bar A h_{t-1} + \\bar B x_t`, :math:`y_t = C h_t`, :math:`h_{-1} = 0`.

    Args:
        A_bar: ``(N, N)``; B_bar: ``(N,)``; C: ``(N,)``.
        x: ``(..., L)`` scalar input sequences.

    Returns:
        ``y: (..., L)``.

    >>> ssm_recurrence(torch.eye(1) * 0.5, torch.ones(1), torch.ones(1), torch.tensor([1.0, 0.0, 0.0])).tolist()
    [1.0, 0.5, 0.25]
    """
    h = x.new_zeros(*x.shape[:-1], A_bar.shape[-1])  # (..., N)
    ys = []
    for x_t in x.unbind(-1):
        h = h @ A_bar.T + x_t.unsqueeze(-1) * B_bar
        ys.append(h @ C)
    return torch.stack(ys, dim=-1)


def ssm_convolution(K: Tensor, x: Tensor) -> Tensor:
    """The convolutional form of Eq. 4: the causal convolution :math:`y_t = \\sum_{k \\le t} \\bar K_k x_{t-k}`.

    Args:
        K: ``(L,)`` kernel from :func:`ssm_kernel`.
        x: ``(..., L)`` input sequences of the same length.

    Returns:
        ``y: (..., L)``.

    >>> ssm_convolution(torch.tensor([1.0, 0.5, 0.25]), torch.tensor([1.0, 1.0, 0.0])).tolist()
    [1.0, 1.5, 0.75]
    """
    L = x.shape[-1]
    if K.shape != (L,):
        raise ValueError(f"ssm_convolution: K must be (L,) = ({L},) like the input length, got {tuple(K.shape)}")
    xs = x.reshape(-1, 1, L)  # (batch, 1, L)
    y = F.conv1d(F.pad(xs, (L - 1, 0)), K.flip(0).view(1, 1, L))  # cross-correlation with flipped K
    return y.reshape(x.shape)
