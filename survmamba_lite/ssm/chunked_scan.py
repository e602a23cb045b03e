"""The ``parallel`` backend: a chunked selective scan in pure PyTorch (CPU and CUDA).

Shape letters: the package glossary, :mod:`survmamba_lite.shapes`.

The selective SSM of Mamba is, per batch ``b``, channel ``e`` and state ``n``, the scalar
linear recurrence

.. math::

    h_t = a_t h_{t-1} + x_t, \\qquad a_t = \\exp(\\Delta_t A), \\qquad x_t = \\Delta_t B_t u_t,
    \\qquad y_t = \\sum_n C_t h_t .

Positions are cut into ``nC`` chunks of ``Q`` consecutive steps (the sequence is padded at
the end with identity steps ``Δ = 0``, i.e. ``a = 1`` and ``x = 0``). Three phases:

1. *local sweep*: for ``t = 0..Q-1`` run the recurrence from a zero state inside every
   chunk at once (each step is one vectorised operation over all chunks), giving the state
   each chunk would reach on its own;
2. *carry*: the state entering chunk ``c`` is
   :math:`H_c = P_{c-1} H_{c-1} + h^{loc}_{c-1}` with the chunk decay
   :math:`P_c = \\exp(A \\sum_{t \\in c} \\Delta_t) \\le 1`; a short loop over chunks (CPU) or a
   log-depth doubling scan (CUDA);
3. *true sweep*: the local sweep again, started from :math:`H_c`, now producing ``y``.

Only decays :math:`\\exp(\\Delta A)` with a non-positive exponent (for ``Δ ≥ 0``) are ever
formed, so long sequences and large ``Δ`` stay finite: nothing like
:math:`\\exp(-A \\sum \\Delta)` appears. The backward pass is the adjoint recurrence run in
reverse with the same chunking,

.. math::

    g_t = C_t\\,\\bar y_t + a_{t+1} g_{t+1}, \\qquad
    \\bar x_t = g_t, \\qquad \\overline{(\\Delta_t A)} = g_t\\, a_t\\, h_{t-1},

written by hand (the forward keeps only the states of the true sweep), so no autograd
graph with ``O(L)`` nodes is built. All sweeps work in place on chunk-sized buffers, which
keeps the working set in cache on CPU and the kernel count at ``O(Q + log nC)`` on GPU.

This module works in an internal chunked layout; :func:`survmamba_lite.ssm.selective_scan`
is the public entry point.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["chunked_scan", "choose_chunk_size", "carry_scan"]


def choose_chunk_size(L: int, device: torch.device) -> int:
    """Chunk length ``Q`` used by :func:`chunked_scan` for a sequence of length ``L``.

    On CPU ``Q ≈ sqrt(L)`` (a power of two) balances the ``Q`` steps of each sweep against
    the ``L / Q`` chunks of the carry loop. On CUDA every operation is a kernel launch and the
    carry is a log-depth scan, so chunks are as short as possible while the doubling scan
    over at most 2048 chunks stays cheap in memory traffic: ``Q`` is the smallest power of
    two with ``L / Q <= 2048`` (measured on an H200 with ``E=128, N=16``: at ``L=4096``,
    ``Q=2`` takes 1.8 ms forward vs 3.8 ms for ``Q=16`` and 11 ms for ``Q=64``).

    >>> choose_chunk_size(4096, torch.device("cpu")), choose_chunk_size(1, torch.device("cpu"))
    (64, 1)
    >>> choose_chunk_size(4096, torch.device("cuda")), choose_chunk_size(300, torch.device("cuda"))
    (2, 1)
    """
    if L <= 1:
        return 1
    if device.type == "cuda":
        return 2 ** max(0, math.ceil(math.log2(L / 2048)))
    return min(L, 2 ** round(math.log2(math.sqrt(L))))


def carry_scan(dec: Tensor, loc: Tensor, init: Tensor | None = None, method: str = "loop") -> tuple[Tensor, Tensor]:
    """States entering each chunk of the first-order recurrence ``S_{c+1} = dec_c S_c + loc_c``.

    Args:
        dec: ``(..., nC, N)`` per-chunk decays (products of ``a_t`` over the chunk, in [0, 1]).
        loc: ``(..., nC, N)`` per-chunk local end states (the chunk run from a zero state).
        init: ``(..., N)`` state entering chunk 0, or ``None`` for zeros.
        method: ``"loop"`` (a sequential loop over chunks) or ``"doubling"`` (a
            Hillis–Steele scan: ``ceil(log2 nC)`` vectorised steps, for GPUs).

    Returns:
        ``(entering, final)``: ``(..., nC, N)`` state entering every chunk and ``(..., N)``
        the state after the last chunk.

    >>> dec = torch.tensor([[0.5], [0.5], [1.0]]); loc = torch.tensor([[1.0], [2.0], [3.0]])
    >>> ent, fin = carry_scan(dec, loc)
    >>> ent.flatten().tolist(), fin.tolist()
    ([0.0, 1.0, 2.5], [5.5])
    >>> torch.equal(carry_scan(dec, loc, method="doubling")[0], ent)
    True
    """
    nC = dec.shape[-2]
    zero = torch.zeros_like(loc.select(-2, 0))
    start = zero if init is None else init
    if method == "loop":
        entering = torch.empty_like(loc)
        state = start
        for c in range(nC):
            entering.select(-2, c).copy_(state)
            state = torch.addcmul(loc.select(-2, c), dec.select(-2, c), state)
        return entering, state
    if method != "doubling":
        raise ValueError(f"carry_scan: method must be 'loop' or 'doubling', got {method!r}")
    # inclusive scan of the affine maps S -> dec*S + loc, composed left to right
    a, b = dec.clone(), loc.clone()
    k = 1
    while k < nC:
        b_new = b.clone()
        b_new[..., k:, :].addcmul_(a[..., k:, :], b[..., :-k, :])
        a_new = a.clone()
        a_new[..., k:, :].mul_(a[..., :-k, :])
        a, b = a_new, b_new
        k *= 2
    after = b if init is None else torch.addcmul(b, a, init.unsqueeze(-2))  # state after each chunk
    entering = torch.cat([start.unsqueeze(-2), after[..., :-1, :]], dim=-2)
    return entering, after.select(-2, nC - 1).clone()


def _step(X: Tensor, t: int) -> Tensor:
    """Slice step ``t`` of a chunked B or C tensor; time-invariant ones have one step."""
    return X[t] if X.shape[0] > 1 else X[0]


class _ChunkedScan(torch.autograd.Function):
    """Core scan in the chunked layout (see :func:`chunked_scan` for the shapes)."""

    @staticmethod
    def forward(ctx, d: Tensor, du: Tensor, A: Tensor, Bk: Tensor, Ck: Tensor, carry: str):
        Q, Bn, E, nC = d.shape
        N = A.shape[1]
        A3 = A.unsqueeze(1)  # (E, 1, N)
        a = d.new_empty(Bn, E, nC, N)  # step decay buffer, reused every step

        def decay(t: int) -> Tensor:
            torch.mul(d[t].unsqueeze(-1), A3, out=a)
            return a.exp_()

        # phase 1 -- local sweep: state each chunk reaches from zero
        if nC > 1:
            h = d.new_zeros(Bn, E, nC, N)
            for t in range(Q):
                h.mul_(decay(t)).addcmul_(du[t].unsqueeze(-1), _step(Bk, t))
            dec = torch.exp(d.sum(0).unsqueeze(-1) * A3)  # (B, E, nC, N) chunk decays
            # phase 2 -- carry across chunks
            h_in, _ = carry_scan(dec, h, method=carry)
        else:
            h_in = d.new_zeros(Bn, E, nC, N)

        # phase 3 -- true sweep from the carried states, producing y
        keep = any(ctx.needs_input_grad[:5])
        states = d.new_empty(Q, Bn, E, nC, N) if keep else None
        y = d.new_empty(Q, Bn, E, nC)
        tmp = torch.empty_like(a)
        h = h_in if keep else h_in.clone()
        for t in range(Q):
            decay(t)
            if keep:
                torch.mul(a, h, out=states[t])
                h = states[t]
            else:
                h.mul_(a)
            h.addcmul_(du[t].unsqueeze(-1), _step(Bk, t))
            torch.mul(h, _step(Ck, t), out=tmp)
            torch.sum(tmp, dim=-1, out=y[t])
        last = h[:, :, nC - 1].clone()  # (B, E, N)
        if keep:
            ctx.save_for_backward(d, du, A, Bk, Ck, h_in, states)
        ctx.carry = carry
        return y, last

    @staticmethod
    @once_differentiable
    def backward(ctx, dy: Tensor, dlast: Tensor):
        d, du, A, Bk, Ck, h_in, states = ctx.saved_tensors
        Q, Bn, E, nC = d.shape
        N = A.shape[1]
        A3 = A.unsqueeze(1)
        a = d.new_empty(Bn, E, nC, N)

        def decay(t: int) -> Tensor:
            torch.mul(d[t].unsqueeze(-1), A3, out=a)
            return a.exp_()

        # adjoint entering each chunk from its right, q = a_{first} * g_{first} of the next chunk
        if nC > 1:
            q = d.new_zeros(Bn, E, nC, N)
            for t in reversed(range(Q)):  # local reverse sweep
                q.addcmul_(_step(Ck, t), dy[t].unsqueeze(-1)).mul_(decay(t))
            dec = torch.exp(d.sum(0).unsqueeze(-1) * A3)
            k_rev, _ = carry_scan(dec.flip(2), q.flip(2), init=dlast, method=ctx.carry)
            q = k_rev.flip(2).contiguous()
        else:
            q = dlast.unsqueeze(2).clone()

        d_d = torch.empty_like(d)
        d_du = torch.empty_like(du)
        d_B = torch.zeros_like(Bk)
        d_C = torch.zeros_like(Ck)
        d_A = torch.zeros_like(a)
        g = torch.empty_like(a)
        tmp = torch.empty_like(a)
        for t in reversed(range(Q)):  # true reverse sweep
            B_t, C_t, dy_t = _step(Bk, t), _step(Ck, t), dy[t].unsqueeze(-1)
            torch.addcmul(q, C_t, dy_t, out=g)  # g_t = C_t dy_t + a_{t+1} g_{t+1}
            _step(d_C, t).add_(torch.mul(states[t], dy_t, out=tmp).sum_to_size(C_t.shape))
            _step(d_B, t).add_(torch.mul(g, du[t].unsqueeze(-1), out=tmp).sum_to_size(B_t.shape))
            torch.sum(torch.mul(g, B_t, out=tmp), dim=-1, out=d_du[t])
            torch.mul(g, decay(t), out=q)  # next step's a_t g_t
            h_prev = states[t - 1] if t > 0 else h_in
            torch.mul(q, h_prev, out=tmp)  # dL/d(Δ_t A) = g_t a_t h_{t-1}
            d_A.addcmul_(tmp, d[t].unsqueeze(-1))
            torch.sum(tmp.mul_(A3), dim=-1, out=d_d[t])
        return d_d, d_du, d_A.sum(dim=(0, 2)), d_B, d_C, None


def chunked_scan(d: Tensor, du: Tensor, A: Tensor, Bk: Tensor, Ck: Tensor, carry: str = "loop") -> tuple[Tensor, Tensor]:
    """Run the chunked scan on tensors already in the chunked layout.

    Args:
        d: ``(Q, B, E, nC)`` step sizes ``Δ`` (step ``t`` of chunk ``c`` is position ``c*Q + t``).
        du: ``(Q, B, E, nC)`` the products ``Δ u``.
        A: ``(E, N)`` real state matrix (diagonal, one row per channel).
        Bk: ``(Q, B, 1, nC, N)`` input-dependent B shared by channels, ``(Q, B, E, nC, N)``
            one per channel, or ``(1, 1, E, 1, N)`` time-invariant.
        Ck: like ``Bk``.
        carry: ``"loop"`` or ``"doubling"`` (see :func:`carry_scan`).

    Returns:
        ``(y, last)``: ``y: (Q, B, E, nC)`` and the state after the final step ``(B, E, N)``.

    >>> g = torch.Generator().manual_seed(0)
    >>> d = torch.rand(2, 1, 3, 4, generator=g); du = torch.randn(2, 1, 3, 4, generator=g)
    >>> A = -torch.rand(3, 5, generator=g); Bk = torch.randn(2, 1, 1, 4, 5, generator=g)
    >>> y, last = chunked_scan(d, du, A, Bk, Bk)
    >>> tuple(y.shape), tuple(last.shape)
    ((2, 1, 3, 4), (1, 3, 5))
    """
    return _ChunkedScan.apply(d, du, A, Bk, Ck, carry)
