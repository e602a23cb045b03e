"""The selective scan (Mamba's S6 layer, Eq. 3 with input-dependent parameters).

Shape letters: the package glossary, :mod:`survmamba_lite.shapes`.

One function, :func:`selective_scan`, with the signature and semantics of mamba-ssm's
``selective_scan_fn`` and three interchangeable backends:

``ref``
    the sequential recurrence as a plain loop over positions, written to be read;
``parallel``
    a chunked scan in pure PyTorch with a hand-written backward (CPU and CUDA), see
    :mod:`survmamba_lite.ssm.chunked_scan`;
``mamba_ssm``
    the fused CUDA kernel of the ``mamba-ssm`` package (optional; CUDA tensors only).

``auto`` picks ``mamba_ssm`` when it imports and the tensors are on CUDA (and not float64,
which the kernel does not take), otherwise ``parallel``, and logs its choice once on the
``survmamba_lite.ssm`` logger. Asking for a backend that cannot run is an error, never a
silent fallback.

The math, per batch ``b``, channel ``e`` (of ``E``) and state ``n`` (of ``N``):

.. math::

    \\Delta_t &= \\operatorname{softplus}(\\delta_t + \\delta_{bias})
        \\quad(\\text{softplus only if } \\texttt{delta_softplus})\\\\
    \\bar A_t &= \\exp(\\Delta_t A), \\qquad \\bar B_t u_t = \\Delta_t B_t u_t
        \\quad(\\text{Mamba's simplified } \\bar B = \\Delta B)\\\\
    h_t &= \\bar A_t h_{t-1} + \\bar B_t u_t, \\qquad h_{-1} = 0\\\\
    y_t &= \\big(C_t \\cdot h_t + D u_t\\big)\\,\\operatorname{silu}(z_t).

A step with ``Δ_t = 0`` is an exact identity (``Ā = 1``, ``B̄u = 0``) in every backend, so
padding can be neutralised by zeroing ``Δ`` there.
"""
from __future__ import annotations

import importlib
import logging

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from .chunked_scan import choose_chunk_size, chunked_scan

__all__ = ["selective_scan", "selective_scan_ref", "available_backends", "BACKENDS"]

logger = logging.getLogger("survmamba_lite.ssm")

BACKENDS = ("auto", "ref", "parallel", "mamba_ssm")

_logged_choices: set[tuple[str, str]] = set()
_mamba_import: dict[str, object] = {}


def _mamba_selective_scan_fn():
    """Import mamba-ssm's ``selective_scan_fn`` once; return it or the import error text."""
    if "fn" not in _mamba_import:
        try:
            module = importlib.import_module("mamba_ssm.ops.selective_scan_interface")
            _mamba_import["fn"] = module.selective_scan_fn
            _mamba_import["error"] = None
        except Exception as exc:  # ImportError, or a missing compiled extension
            _mamba_import["fn"] = None
            _mamba_import["error"] = f"{type(exc).__name__}: {exc}"
    return _mamba_import["fn"], _mamba_import["error"]


def available_backends(device: torch.device | str | None = None) -> list[str]:
    """Backends that can run on ``device`` (default: CUDA if present, else CPU).

    >>> available_backends("cpu")
    ['ref', 'parallel']
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    names = ["ref", "parallel"]
    if device.type == "cuda" and torch.cuda.is_available() and _mamba_selective_scan_fn()[0] is not None:
        names.append("mamba_ssm")
    return names


# --------------------------------------------------------------------------- validation
def _check_inputs(u, delta, A, B, C, D, z, delta_bias) -> None:
    def fail(msg: str):
        raise ValueError(f"selective_scan: {msg}")

    if u.dim() != 3:
        fail(f"u must be (B, E, L), got shape {tuple(u.shape)}")
    Bn, E, L = u.shape
    if L < 1:
        fail("u has length L = 0; pass at least one position")
    if delta.shape != u.shape:
        fail(f"delta must have the shape of u {tuple(u.shape)} = (B, E, L), got {tuple(delta.shape)}")
    if A.dim() != 2 or A.shape[0] != E:
        fail(f"A must be (E, N) = ({E}, N), got {tuple(A.shape)}")
    if A.is_complex():
        fail("complex A is not supported; pass a real A (Mamba's default, A = -exp(A_log))")
    N = A.shape[1]
    for name, X in (("B", B), ("C", C)):
        if X.dim() == 2:
            if tuple(X.shape) != (E, N):
                fail(f"time-invariant {name} must be (E, N) = ({E}, {N}), got {tuple(X.shape)}")
        elif X.dim() == 3:
            if tuple(X.shape) != (Bn, N, L):
                fail(f"input-dependent {name} must be (B, N, L) = ({Bn}, {N}, {L}), got {tuple(X.shape)}")
        elif X.dim() == 4:
            Gb = X.shape[1]
            if X.shape[0] != Bn or X.shape[2:] != (N, L) or Gb < 1 or E % Gb:
                fail(f"grouped {name} must be (B, Gb, N, L) = ({Bn}, Gb, {N}, {L}) with Gb dividing "
                     f"E = {E}, got {tuple(X.shape)}")
        else:
            fail(f"{name} must be (E, N), (B, N, L) or (B, Gb, N, L), got {tuple(X.shape)}")
        if X.is_complex():
            fail(f"complex {name} is not supported")
    for name, X, shape in (("D", D, (E,)), ("delta_bias", delta_bias, (E,)), ("z", z, tuple(u.shape))):
        if X is not None and tuple(X.shape) != shape:
            fail(f"{name} must have shape {shape}, got {tuple(X.shape)}")


def _compute_dtype(*tensors) -> torch.dtype:
    """float32 at least; float64 if any floating input is float64."""
    dtype = torch.float32
    for X in tensors:
        if X is not None and X.is_floating_point():
            dtype = torch.promote_types(dtype, X.dtype)
    return dtype


def _prepare_delta(delta: Tensor, delta_bias: Tensor | None, delta_softplus: bool, dtype) -> Tensor:
    delta = delta.to(dtype)
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype).unsqueeze(-1)
    if delta_softplus:
        delta = F.softplus(delta)
    return delta


def _per_channel(X: Tensor, E: int) -> Tensor:
    """Grouped ``(B, Gb, N, L)`` -> ``(B, E, N, L)``; channel ``e`` uses group ``e // (E/Gb)``."""
    return X.repeat_interleave(E // X.shape[1], dim=1)


def _finish(y: Tensor, u: Tensor, D, z, dtype_in) -> Tensor:
    if D is not None:
        y = y + u * D.to(y.dtype).unsqueeze(-1)
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    return y.to(dtype_in)


# --------------------------------------------------------------------------- ref
def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False):
    """The teaching version: the recurrence of Eq. 3 as a loop over the ``L`` positions.

    Same arguments and result as :func:`selective_scan`. Differentiable by autograd
    (also twice). Time and autograd graph grow linearly with ``L``.

    >>> g = torch.Generator().manual_seed(0)
    >>> u = torch.randn(1, 2, 3, generator=g)
    >>> delta, A = torch.zeros(1, 2, 3), -torch.ones(2, 4)
    >>> B, C = torch.randn(1, 4, 3, generator=g), torch.randn(1, 4, 3, generator=g)
    >>> y = selective_scan_ref(u, delta, A, B, C)  # Δ = 0: every step is the identity on h = 0
    >>> y.abs().max().item()
    0.0
    """
    _check_inputs(u, delta, A, B, C, D, z, delta_bias)
    dtype_in = u.dtype
    dtype = _compute_dtype(u, delta, A, B, C, D, z, delta_bias)
    Bn, E, L = u.shape
    uf = u.to(dtype)
    delta = _prepare_delta(delta, delta_bias, delta_softplus, dtype)  # (B, E, L)
    A, B, C = A.to(dtype), B.to(dtype), C.to(dtype)
    if B.dim() == 4:
        B = _per_channel(B, E)  # (B, E, N, L)
    if C.dim() == 4:
        C = _per_channel(C, E)

    deltaA = torch.exp(delta.unsqueeze(-1) * A.unsqueeze(1))  # (B, E, L, N): Ā_t = exp(Δ_t A)
    if B.dim() == 2:  # time-invariant (E, N)
        deltaB_u = (delta * uf).unsqueeze(-1) * B.unsqueeze(1)  # (B, E, L, N): B̄_t u_t = Δ_t B u_t
    elif B.dim() == 3:  # (B, N, L), shared by channels
        deltaB_u = (delta * uf).unsqueeze(-1) * rearrange(B, "b n l -> b 1 l n")
    else:  # (B, E, N, L)
        deltaB_u = (delta * uf).unsqueeze(-1) * rearrange(B, "b e n l -> b e l n")
    if C.dim() == 2:
        C_steps = [C.unsqueeze(0)] * L  # each (1, E, N)
    elif C.dim() == 3:
        C_steps = C.unsqueeze(1).unbind(-1)  # each (B, 1, N)
    else:
        C_steps = C.unbind(-1)  # each (B, E, N)

    h = uf.new_zeros(Bn, E, A.shape[1])  # (B, E, N)
    ys = []
    # unbind once (not deltaA[:, :, t] in the loop): one backward op instead of L full copies
    for dA_t, dBu_t, C_t in zip(deltaA.unbind(2), deltaB_u.unbind(2), C_steps):
        h = dA_t * h + dBu_t  # h_t = Ā_t h_{t-1} + B̄_t u_t
        ys.append((h * C_t).sum(-1))  # y_t = C_t · h_t, (B, E)
    y = torch.stack(ys, dim=-1)  # (B, E, L)
    out = _finish(y, uf, D, z, dtype_in)
    return (out, h) if return_last_state else out


# --------------------------------------------------------------------------- parallel
# einops axes: b batch (B), e channels (E), n state (N), l sequence (L), c chunks (nC), q chunk length (Q)
def _to_chunks(X: Tensor, Q: int, nC: int) -> Tensor:
    """``(B, E, L)`` -> ``(Q, B, E, nC)``, zero-padded at the end to ``nC*Q`` positions."""
    L = X.shape[-1]
    X = F.pad(X, (0, nC * Q - L))
    return rearrange(X, "b e (c q) -> q b e c", c=nC, q=Q).contiguous()


def _bc_to_chunks(X: Tensor, E: int, Q: int, nC: int) -> Tensor:
    """B or C into the layout of :func:`chunked_scan`."""
    if X.dim() == 2:  # (E, N) -> (1, 1, E, 1, N)
        return X[None, None, :, None, :]
    if X.dim() == 3:  # (B, N, L) -> (Q, B, 1, nC, N)
        X = X.unsqueeze(1)
    elif X.shape[1] != E:  # grouped (B, Gb, N, L) -> (B, E, N, L)
        X = _per_channel(X, E)
    L = X.shape[-1]
    X = F.pad(X, (0, nC * Q - L))  # (B, E|1, N, nC*Q)
    return rearrange(X, "b e n (c q) -> q b e c n", c=nC, q=Q).contiguous()


def _selective_scan_parallel(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state,
                             chunk_size=None, carry=None):
    dtype_in = u.dtype
    dtype = _compute_dtype(u, delta, A, B, C, D, z, delta_bias)
    Bn, E, L = u.shape
    uf = u.to(dtype)
    delta = _prepare_delta(delta, delta_bias, delta_softplus, dtype)
    Q = chunk_size or choose_chunk_size(L, u.device)
    nC = -(-L // Q)
    if carry is None:
        carry = "doubling" if u.is_cuda else "loop"
    d = _to_chunks(delta, Q, nC)  # (Q, B, E, nC); padded steps have Δ = 0: identity
    du = _to_chunks(delta * uf, Q, nC)
    Bk = _bc_to_chunks(B.to(dtype), E, Q, nC)
    Ck = _bc_to_chunks(C.to(dtype), E, Q, nC)
    y, last = chunked_scan(d, du, A.to(dtype), Bk, Ck, carry)
    y = rearrange(y, "q b e c -> b e (c q)")[..., :L]  # (B, E, L)
    out = _finish(y, uf, D, z, dtype_in)
    return (out, last) if return_last_state else out


# --------------------------------------------------------------------------- mamba_ssm
def _selective_scan_mamba(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state):
    fn, error = _mamba_selective_scan_fn()
    if fn is None:
        raise RuntimeError(
            "selective_scan: backend='mamba_ssm' needs the mamba-ssm package with its compiled CUDA "
            f"extension, but importing it failed ({error}). Install it on a CUDA machine with "
            "`pip install mamba-ssm==2.3.2.post1 --no-build-isolation` (see the project README), or "
            "use backend='parallel' (pure PyTorch, any device) or backend='auto'."
        )
    off_cuda = [name for name, X in (("u", u), ("delta", delta), ("A", A), ("B", B), ("C", C)) if not X.is_cuda]
    if off_cuda:
        raise RuntimeError(
            f"selective_scan: backend='mamba_ssm' runs only on CUDA tensors, but {', '.join(off_cuda)} "
            f"{'is' if len(off_cuda) == 1 else 'are'} on {u.device if not u.is_cuda else 'the CPU'}. Move the "
            "tensors with .to('cuda'), or use backend='parallel' (any device) or backend='auto'."
        )
    if _compute_dtype(u, delta, A, B, C, D, z, delta_bias) == torch.float64:
        raise RuntimeError(
            "selective_scan: backend='mamba_ssm' does not take float64 tensors (its kernel runs in "
            "float32); cast to float32, or use backend='parallel' for float64."
        )
    # The kernel takes u, delta, z and input-dependent B, C in one dtype ("input type": float32,
    # bfloat16 or float16) and A, D, delta_bias in float32; its state and sums are float32.
    # Under autocast (precision "bf16") the projections that produce u, delta, B, C come out in
    # bfloat16 while others may be float32, so everything is cast to one input type here.
    in_dtype = _kernel_input_dtype(u, delta)
    u, delta = u.to(in_dtype), delta.to(in_dtype)
    z = z.to(in_dtype) if z is not None else None
    B = B.to(in_dtype) if B.dim() >= 3 else B.float()
    C = C.to(in_dtype) if C.dim() >= 3 else C.float()
    A = A.float()
    D = D.float() if D is not None else None
    delta_bias = delta_bias.float() if delta_bias is not None else None
    if return_last_state:
        # Measured on an H200 with mamba-ssm 2.3.2.post1: with time-invariant B or C of shape
        # (E, N) the kernel's y is right but its last_state is not (off by ~10 against `ref`).
        # Writing them in the grouped time-varying form (B, Gb=E, N, L), which means the same
        # thing, gives the kernel the layout whose last_state it reports correctly.
        Bn, E, L = u.shape
        B = B.reshape(1, E, -1, 1).expand(Bn, E, B.shape[-1], L).contiguous() if B.dim() == 2 else B
        C = C.reshape(1, E, -1, 1).expand(Bn, E, C.shape[-1], L).contiguous() if C.dim() == 2 else C
    with torch.autocast("cuda", enabled=False):
        return fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)


def _kernel_input_dtype(u: Tensor, delta: Tensor) -> torch.dtype:
    """The one dtype the fused kernel gets for ``u``/``delta``/``z``/``B``/``C``.

    bfloat16 or float16 when ``u`` or ``delta`` already is, or when CUDA autocast is on
    (its dtype); float32 otherwise.
    """
    for X in (u, delta):
        if X.dtype in (torch.bfloat16, torch.float16):
            return X.dtype
    if torch.is_autocast_enabled("cuda"):
        return torch.get_autocast_dtype("cuda")
    return torch.float32


# --------------------------------------------------------------------------- dispatch
def _resolve_backend(backend: str, u: Tensor, dtype: torch.dtype) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"selective_scan: unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    if not u.is_cuda:
        chosen, why = "parallel", f"tensors on {u.device.type}"
    elif dtype == torch.float64:
        chosen, why = "parallel", "float64 (the mamba_ssm kernel takes float32)"
    elif _mamba_selective_scan_fn()[0] is None:
        chosen, why = "parallel", "mamba_ssm not importable"
    else:
        chosen, why = "mamba_ssm", "CUDA tensors and mamba_ssm importable"
    if (chosen, why) not in _logged_choices:
        _logged_choices.add((chosen, why))
        logger.info("selective_scan backend='auto' -> %r (%s)", chosen, why)
    return chosen


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False, backend="auto"):
    """Mamba's selective scan; the signature and semantics of mamba-ssm's ``selective_scan_fn``.

    .. math::

        h_t = \\exp(\\Delta_t A)\\, h_{t-1} + \\Delta_t B_t u_t, \\qquad
        y_t = \\big(C_t \\cdot h_t + D u_t\\big)\\, \\operatorname{silu}(z_t),

    with ``Δ = softplus(delta + delta_bias)`` (softplus only when ``delta_softplus``).

    Args:
        u: ``(B, E, L)`` input sequence.
        delta: ``(B, E, L)`` step sizes before bias and softplus.
        A: ``(E, N)`` real state matrix (diagonal per channel; negative for a stable SSM).
        B: ``(B, N, L)`` input-dependent (shared by the ``E`` channels), ``(B, Gb, N, L)``
            grouped (channel ``e`` uses group ``e // (E/Gb)``) or ``(E, N)`` time-invariant.
        C: like ``B``.
        D: ``(E,)`` skip connection, or ``None``.
        z: ``(B, E, L)`` gate, or ``None``.
        delta_bias: ``(E,)`` added to ``delta`` before the softplus, or ``None``.
        delta_softplus: apply softplus to ``delta + delta_bias``.
        return_last_state: also return the state after the last position.
        backend: ``"auto"``, ``"ref"``, ``"parallel"`` or ``"mamba_ssm"`` (see the module doc).

    Returns:
        ``y: (B, E, L)`` in the dtype of ``u``; with ``return_last_state`` the pair
        ``(y, last_state)`` where ``last_state: (B, E, N)`` is in the compute dtype (float32,
        or float64 for float64 inputs), as in mamba-ssm. mamba-ssm does not propagate
        gradients through ``last_state``; ``ref`` and ``parallel`` do.

    Computation runs in float32 at least (float64 stays float64), also under autocast: the
    ``ref`` and ``parallel`` backends upcast bfloat16 inputs and return ``y`` in ``u``'s dtype;
    ``mamba_ssm`` casts ``u``, ``delta``, ``z`` and input-dependent ``B``/``C`` to one input
    dtype (bfloat16 under bf16 autocast) and keeps ``A``, ``D``, ``delta_bias``, the state and
    its sums in float32, as its kernel requires. The ``parallel`` backend
    is once differentiable (no double backward); use ``ref`` for higher derivatives.

    >>> g = torch.Generator().manual_seed(0)
    >>> u, delta = torch.randn(2, 4, 9, generator=g), torch.randn(2, 4, 9, generator=g)
    >>> A = -torch.rand(4, 3, generator=g)
    >>> B, C = torch.randn(2, 3, 9, generator=g), torch.randn(2, 3, 9, generator=g)
    >>> y_ref = selective_scan(u, delta, A, B, C, delta_softplus=True, backend="ref")
    >>> y_par = selective_scan(u, delta, A, B, C, delta_softplus=True, backend="parallel")
    >>> tuple(y_par.shape), torch.allclose(y_ref, y_par, atol=1e-5)
    ((2, 4, 9), True)
    """
    _check_inputs(u, delta, A, B, C, D, z, delta_bias)
    chosen = _resolve_backend(backend, u, _compute_dtype(u, delta, A, B, C, D, z, delta_bias))
    args = (u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    if chosen == "mamba_ssm":
        return _selective_scan_mamba(*args)
    # the PyTorch backends compute in float32 (at least) whatever autocast would pick for their
    # products: A, the state and the sums stay float32 under precision "bf16"
    with torch.autocast(u.device.type, enabled=False):
        if chosen == "ref":
            return selective_scan_ref(*args)
        return _selective_scan_parallel(*args)
