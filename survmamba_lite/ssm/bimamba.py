"""The Bi-Mamba block (Algorithm 1) over batches of variable-length sequences.

Shape letters: the package glossary, :mod:`survmamba_lite.shapes`.

Algorithm 1, for one token sequence ``T_{l-1}: (B, L, D)``::

    T' = Norm(T_{l-1});  x = Linear^x(T');  z = Linear^z(T')              # (B, L, E)
    for o in {forward, backward}:
        x'_o  = SiLU(Conv1d_o(x))                                         # causal, depthwise
        B_o, C_o = Linear^B_o(x'_o), Linear^C_o(x'_o)                     # (B, L, N)
        Δ_o   = softplus(Linear^Δ_o(x'_o) + Parameter^Δ_o)                # (B, L, E)
        Y_o   = SSM(exp(Δ_o ⊗ A_o), Δ_o ⊗ B_o, C_o)(x'_o)                 # selective scan
    T_l = Linear^T(Y_fwd ⊙ SiLU(z) + Y_bwd ⊙ SiLU(z)) + T_{l-1}

The backward branch runs the same causal machinery on the *reversed* sequence and
reverses its output back. As in Mamba, each direction also has the skip ``D ⊙ x'``
(Algorithm 1 leaves it out; it is part of the Mamba block the paper builds on) and
``Linear^Δ`` is the low-rank ``dt_proj(x_proj(x'))`` with ``Parameter^Δ`` its bias.

Both directions in one scan. With ``fuse_directions`` (the default) the two branches'
inputs are stacked along the channel axis, ``[x, rev(x)]: (B, 2E, L)``, and run through one
depthwise convolution of ``2E`` channels, one batched projection to ``(Δ, B, C)`` per
direction and one selective scan with grouped ``B``/``C`` (``G = 2`` groups: channel ``e``
uses its direction's ``B``/``C``). The parameters stay those of the two
:class:`MambaBranch` modules, so the fused and the two-call paths compute the same function
(tested) and share checkpoints; the fused one launches about half as many GPU kernels.

The causal depthwise convolution with its SiLU runs as one fused kernel from the
``causal-conv1d`` package when it imports and the tensors are on CUDA
(:func:`causal_conv1d_silu`), else as ``torch.nn.functional.conv1d`` (tested equal).

Variable lengths. Groups (regions of a slide, processes of a transcriptome) share
one block and arrive as a padded batch with a mask whose real tokens form a
*prefix* of each row. The forward direction is causal, so trailing padding cannot
reach a real token. The backward direction must not simply flip the padded row: the
scan of a short group would then start on padding, and the padding's state would
leak into every real token. Instead each row is reversed *within its own length*
(``t -> n_b - 1 - t`` for ``t < n_b``), so padding stays at the end in both
directions. Outputs at padded positions are set to zero. Rows are never dropped or
trimmed by a data-dependent amount, so a forward pass needs no host synchronisation on
CUDA (a row of padding only is computed and zeroed). The prefix form of the mask is
checked on CPU tensors; on CUDA it is guaranteed where batches are built
(:func:`survmamba_lite.data.collate_bags`), since checking it there would stall the host.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from survmamba_lite.ssm.scan import selective_scan

__all__ = ["BiMamba", "MambaBranch", "bidirectional_scan", "reverse_within_length", "check_prefix_mask",
           "causal_conv1d_silu", "CONV_BACKENDS", "available_conv_backends"]

CONV_BACKENDS = ("auto", "torch", "causal_conv1d")
_conv_import: dict[str, object] = {}


def _causal_conv1d_fn():
    """Import ``causal_conv1d.causal_conv1d_fn`` once; return it or None."""
    if "fn" not in _conv_import:
        try:
            from causal_conv1d import causal_conv1d_fn
            _conv_import["fn"], _conv_import["error"] = causal_conv1d_fn, None
        except Exception as exc:  # ImportError, or a missing compiled extension
            _conv_import["fn"], _conv_import["error"] = None, f"{type(exc).__name__}: {exc}"
    return _conv_import["fn"]


def available_conv_backends(device: torch.device | str | None = None) -> list[str]:
    """Convolution backends that can run on ``device`` (default: CUDA if present, else CPU).

    >>> available_conv_backends("cpu")
    ['torch']
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    names = ["torch"]
    if torch.device(device).type == "cuda" and torch.cuda.is_available() and _causal_conv1d_fn() is not None:
        names.append("causal_conv1d")
    return names


def causal_conv1d_silu(x: Tensor, weight: Tensor, bias: Tensor | None, backend: str = "auto") -> Tensor:
    """``SiLU(causal depthwise Conv1d(x))``: position ``t`` sees ``x[t-W+1 .. t]`` of its channel.

    Args:
        x: ``(B, E, L)`` sequences, channels first.
        weight: ``(E, 1, W)`` (``nn.Conv1d`` layout) or ``(E, W)`` depthwise kernels.
        bias: ``(E,)`` or None.
        backend: ``"torch"`` (``F.conv1d`` with left padding ``W - 1``, any device),
            ``"causal_conv1d"`` (the fused CUDA kernel of the causal-conv1d package) or
            ``"auto"`` (the fused kernel on CUDA when it imports and takes the dtype and width,
            else ``"torch"``).

    Returns ``(B, C, L)``. Under autocast both paths compute in the autocast dtype.

    >>> x = torch.arange(4.).view(1, 1, 4)
    >>> y = causal_conv1d_silu(x, torch.ones(1, 1, 2), None, "torch")  # silu(x[t-1] + x[t])
    >>> torch.allclose(y, torch.nn.functional.silu(torch.tensor([[[0., 1., 3., 5.]]])))
    True
    """
    if backend not in CONV_BACKENDS:
        raise ValueError(f"conv backend must be one of {', '.join(CONV_BACKENDS)}, got {backend!r}")
    weight = weight.reshape(weight.shape[0], weight.shape[-1])                      # (C, W)
    fn = _causal_conv1d_fn() if backend != "torch" and x.is_cuda else None
    if backend == "causal_conv1d" and fn is None:
        raise RuntimeError("causal_conv1d_silu: backend='causal_conv1d' needs CUDA tensors and the causal-conv1d "
                           f"package with its compiled extension ({_conv_import.get('error') or 'tensors on CPU'}); "
                           "run `make gpu-setup` on a CUDA machine, or use backend='torch' or 'auto'")
    dtype = torch.get_autocast_dtype("cuda") if x.is_cuda and torch.is_autocast_enabled("cuda") else x.dtype
    fused_ok = weight.shape[-1] in (2, 3, 4) and dtype in (torch.float32, torch.float16, torch.bfloat16)
    if backend == "causal_conv1d" and fn is not None and not fused_ok:
        raise RuntimeError(f"causal_conv1d_silu: the causal-conv1d kernel takes widths 2-4 in float32, float16 or "
                           f"bfloat16, got width {weight.shape[-1]} in {dtype}; use backend='torch' or 'auto'")
    if fn is not None and fused_ok:
        with torch.autocast("cuda", enabled=False):
            return fn(x.to(dtype).contiguous(), weight.to(dtype), None if bias is None else bias.to(dtype),
                      activation="silu")
    L, W = x.shape[-1], weight.shape[-1]
    return F.silu(F.conv1d(x, weight.unsqueeze(1), bias, padding=W - 1, groups=x.shape[1])[..., :L])


def check_prefix_mask(mask: Tensor) -> Tensor:
    """Validate a prefix mask and return the lengths.

    Args:
        mask: ``(B, L)`` bool, True at real tokens, which must come first in each row.

    Returns:
        ``lengths: (B,)`` long.

    >>> check_prefix_mask(torch.tensor([[True, True, False], [True, False, False]])).tolist()
    [2, 1]
    """
    lengths = mask.sum(-1)
    prefix = torch.arange(mask.shape[-1], device=mask.device) < lengths.unsqueeze(-1)
    if not torch.equal(prefix, mask):
        raise ValueError("mask must mark a prefix of each row as real (real tokens first, padding last); "
                         "build groups with survmamba_lite.data.group_patches / group_functions")
    return lengths


def reverse_within_length(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each row's first ``lengths[b]`` positions, leaving padding in place.

    Args:
        x: ``(B, L, ...)`` sequences.
        lengths: ``(B,)`` number of real tokens in each row.

    The map is its own inverse.

    >>> x = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
    >>> reverse_within_length(x, torch.tensor([3, 2])).tolist()
    [[3, 2, 1, 0], [5, 4, 0, 0]]
    """
    pos = torch.arange(x.shape[1], device=x.device).unsqueeze(0)     # (1, L)
    n = lengths.to(x.device).unsqueeze(1)                             # (B, 1)
    index = torch.where(pos < n, n - 1 - pos, pos)                    # (B, L)
    index = index.view(*index.shape, *([1] * (x.ndim - 2))).expand_as(x)
    return torch.gather(x, 1, index)


class MambaBranch(nn.Module):
    """One direction of Algorithm 1 (lines 7–13): causal conv, SiLU, selective SSM.

    Args:
        d_inner: expanded width ``E``.
        d_state: state size ``N``.
        d_conv: causal depthwise convolution width.
        dt_rank: rank of the ``Δ`` projection.
        dt_min, dt_max: range of the initial step sizes (Mamba's initialisation).
        scan_backend: ``selective_scan`` backend.
        conv_backend: :func:`causal_conv1d_silu` backend.
    """

    def __init__(self, d_inner: int, d_state: int = 16, d_conv: int = 4, dt_rank: int | None = None,
                 dt_min: float = 1e-3, dt_max: float = 1e-1, scan_backend: str = "auto", conv_backend: str = "auto"):
        super().__init__()
        if conv_backend not in CONV_BACKENDS:
            raise ValueError(f"conv_backend must be one of {', '.join(CONV_BACKENDS)}, got {conv_backend!r}")
        self.d_inner, self.d_state, self.d_conv = d_inner, d_state, d_conv
        self.dt_rank = dt_rank or max(1, math.ceil(d_inner / 32))
        self.scan_backend, self.conv_backend = scan_backend, conv_backend
        self.conv = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, d_inner, bias=True)
        # Mamba's initialisation: dt spread log-uniformly in [dt_min, dt_max] through the bias
        dt = torch.exp(torch.rand(d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))     # inverse softplus
        nn.init.uniform_(self.dt_proj.weight, -self.dt_rank ** -0.5, self.dt_rank ** -0.5)
        # S4D-real initialisation A = -(1..N), stored as log(-A) so A stays negative
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(d_inner, 1))
        self.D = nn.Parameter(torch.ones(d_inner))

    def forward(self, x: Tensor, valid: Tensor | None = None) -> Tensor:
        """Args:
            x: ``(B, L, E)`` projected tokens, real tokens first in each row.
            valid: ``(B, L)`` float/bool mask of real tokens, or None.

        Returns ``y: (B, L, E)`` (the un-gated SSM output, ``D`` skip included).
        """
        xc = causal_conv1d_silu(x.transpose(1, 2), self.conv.weight, self.conv.bias, self.conv_backend)  # (B, E, L)
        if valid is not None:
            xc = xc * valid.unsqueeze(1)
        bcd = self.x_proj(xc.transpose(1, 2))                              # (B, L, R_dt + 2N)
        dt, B, C = bcd.split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = self.dt_proj.weight @ dt.transpose(1, 2)                   # (B, E, L), bias in the scan
        A = -torch.exp(self.A_log.float())                                 # (E, N)
        y = selective_scan(xc, delta, A, B.transpose(1, 2).contiguous(), C.transpose(1, 2).contiguous(),
                           D=self.D.float(), delta_bias=self.dt_proj.bias.float(), delta_softplus=True,
                           backend=self.scan_backend)
        return y.transpose(1, 2)                                           # (B, L, E)


def bidirectional_scan(fwd: MambaBranch, bwd: MambaBranch, x: Tensor, valid: Tensor, lengths: Tensor) -> Tensor:
    """``fwd(x) + rev(bwd(rev(x)))`` with both branches in one convolution and one scan call.

    Args:
        fwd, bwd: the two branches (same sizes; their parameters are used as they are).
        x: ``(B, L, E)`` projected tokens, real tokens first in each row.
        valid: ``(B, L)`` float mask of real tokens.
        lengths: ``(B,)`` real lengths (``rev`` reverses within them).

    Returns ``(B, L, E)``: the sum of the two directions' un-gated SSM outputs.
    """
    b, length, e = x.shape
    r, n = fwd.dt_rank, fwd.d_state
    u = torch.cat([x, reverse_within_length(x, lengths)], dim=-1).transpose(1, 2)      # (B, 2E, L)
    weight = torch.cat([fwd.conv.weight, bwd.conv.weight])                            # (2E, 1, W)
    bias = torch.cat([fwd.conv.bias, bwd.conv.bias])
    xc = causal_conv1d_silu(u, weight, bias, fwd.conv_backend) * valid.unsqueeze(1)   # (B, 2E, L)
    w_x = torch.stack([fwd.x_proj.weight, bwd.x_proj.weight])                         # (2, R+2N, E)
    bcd = torch.einsum("bgel,gke->bgkl", xc.view(b, 2, e, length), w_x)                # (B, 2, R+2N, L)
    dt, B, C = bcd.split([r, n, n], dim=2)
    w_dt = torch.stack([fwd.dt_proj.weight, bwd.dt_proj.weight])                      # (2, E, R)
    delta = torch.einsum("ger,bgrl->bgel", w_dt, dt).reshape(b, 2 * e, length)        # (B, 2E, L)
    A = -torch.exp(torch.cat([fwd.A_log, bwd.A_log]).float())                         # (2E, N)
    y = selective_scan(xc, delta, A, B.contiguous(), C.contiguous(),                  # B, C: (B, G=2, N, L)
                       D=torch.cat([fwd.D, bwd.D]).float(),
                       delta_bias=torch.cat([fwd.dt_proj.bias, bwd.dt_proj.bias]).float(),
                       delta_softplus=True, backend=fwd.scan_backend)                 # (B, 2E, L)
    y_f, y_b = y.transpose(1, 2).split(e, dim=-1)                                     # (B, L, E) each
    return y_f + reverse_within_length(y_b, lengths)


class BiMamba(nn.Module):
    """Bi-Mamba block of Algorithm 1 with a residual connection.

    Args:
        dim: token width ``D``.
        d_state: SSM state size ``N``.
        expand: ``E = expand * D``.
        d_conv: causal convolution width.
        bidirectional: False gives the unidirectional variant (Fig. 3 ablation).
        dropout: dropout on the block output before the residual.
        scan_backend: ``selective_scan`` backend ("auto", "parallel", "ref", "mamba_ssm").
        conv_backend: causal convolution backend ("auto", "torch", "causal_conv1d").
        fuse_directions: run both directions in one convolution and one scan call
            (:func:`bidirectional_scan`); False runs the two branches one after the other.

    Forward ``x: (B, L, D)``, ``mask: (B, L)`` bool (prefix of real tokens) or None;
    returns ``(B, L, D)`` with zeros at padded positions.

    >>> blk = BiMamba(dim=8, d_state=4, scan_backend="ref").eval()
    >>> x = torch.randn(2, 5, 8); m = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]).bool()
    >>> torch.allclose(blk(x, m)[0, :3], blk(x[:1, :3]).squeeze(0), atol=1e-6)
    True
    """

    def __init__(self, dim: int, d_state: int = 16, expand: int = 2, d_conv: int = 4,
                 bidirectional: bool = True, dropout: float = 0.0, scan_backend: str = "auto",
                 conv_backend: str = "auto", fuse_directions: bool = True):
        super().__init__()
        d_inner = expand * dim
        self.bidirectional, self.fuse_directions = bidirectional, fuse_directions
        self.norm = nn.LayerNorm(dim)
        self.in_proj = nn.Linear(dim, 2 * d_inner, bias=False)            # Linear^x and Linear^z
        self.forward_branch = MambaBranch(d_inner, d_state, d_conv, scan_backend=scan_backend,
                                          conv_backend=conv_backend)
        self.backward_branch = (MambaBranch(d_inner, d_state, d_conv, scan_backend=scan_backend,
                                            conv_backend=conv_backend) if bidirectional else None)
        self.out_proj = nn.Linear(d_inner, dim, bias=False)                # Linear^T
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        if mask.is_cuda:
            lengths = mask.sum(-1)                                         # prefix form: see the module doc
        else:
            lengths = check_prefix_mask(mask)
        valid = mask.to(x.dtype)                                           # (B, L)
        xz = self.in_proj(self.norm(x))                                    # (B, L, 2E)
        xs, z = xz.chunk(2, dim=-1)                                        # (B, L, E) each
        if self.backward_branch is None:
            y = self.forward_branch(xs, valid)
        elif self.fuse_directions:
            y = bidirectional_scan(self.forward_branch, self.backward_branch, xs, valid, lengths)
        else:
            y = self.forward_branch(xs, valid)
            y_b = self.backward_branch(reverse_within_length(xs, lengths), valid)
            y = y + reverse_within_length(y_b, lengths)
        # Y_fwd ⊙ SiLU(z) + Y_bwd ⊙ SiLU(z) = (Y_fwd + Y_bwd) ⊙ SiLU(z)
        h = self.drop(self.out_proj(y * F.silu(z))) + x                   # (B, L, D)
        return h * valid.unsqueeze(-1)
