"""The Bi-Mamba block (Algorithm 1) over batches of variable-length sequences.

Algorithm 1, for one token sequence ``T_{l-1}: (B, M, D)``::

    T' = Norm(T_{l-1});  x = Linear^x(T');  z = Linear^z(T')              # (B, M, E)
    for o in {forward, backward}:
        x'_o  = SiLU(Conv1d_o(x))                                         # causal, depthwise
        B_o, C_o = Linear^B_o(x'_o), Linear^C_o(x'_o)                     # (B, M, N)
        Δ_o   = softplus(Linear^Δ_o(x'_o) + Parameter^Δ_o)                # (B, M, E)
        Y_o   = SSM(exp(Δ_o ⊗ A_o), Δ_o ⊗ B_o, C_o)(x'_o)                 # selective scan
    T_l = Linear^T(Y_fwd ⊙ SiLU(z) + Y_bwd ⊙ SiLU(z)) + T_{l-1}

The backward branch runs the same causal machinery on the *reversed* sequence and
reverses its output back. As in Mamba, each direction also has the skip ``D ⊙ x'``
(Algorithm 1 leaves it out; it is part of the Mamba block the paper builds on) and
``Linear^Δ`` is the low-rank ``dt_proj(x_proj(x'))`` with ``Parameter^Δ`` its bias.

Variable lengths. Groups (regions of a slide, processes of a transcriptome) share
one block and arrive as a padded batch with a mask whose real tokens form a
*prefix* of each row. The forward direction is causal, so trailing padding cannot
reach a real token. The backward direction must not simply flip the padded row: the
scan of a short group would then start on padding, and the padding's state would
leak into every real token. Instead each row is reversed *within its own length*
(``t -> n_b - 1 - t`` for ``t < n_b``), so padding stays at the end in both
directions. Outputs at padded positions are set to zero.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from survmamba_lite.ssm.scan import selective_scan

__all__ = ["BiMamba", "MambaBranch", "reverse_within_length", "check_prefix_mask"]


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
    """

    def __init__(self, d_inner: int, d_state: int = 16, d_conv: int = 4, dt_rank: int | None = None,
                 dt_min: float = 1e-3, dt_max: float = 1e-1, scan_backend: str = "auto"):
        super().__init__()
        self.d_inner, self.d_state, self.d_conv = d_inner, d_state, d_conv
        self.dt_rank = dt_rank or max(1, math.ceil(d_inner / 32))
        self.scan_backend = scan_backend
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
        L = x.shape[1]
        xc = F.silu(self.conv(x.transpose(1, 2))[..., :L])               # (B, E, L), causal
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

    Forward ``x: (B, L, D)``, ``mask: (B, L)`` bool (prefix of real tokens) or None;
    returns ``(B, L, D)`` with zeros at padded positions.

    >>> blk = BiMamba(dim=8, d_state=4, scan_backend="ref").eval()
    >>> x = torch.randn(2, 5, 8); m = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]).bool()
    >>> torch.allclose(blk(x, m)[0, :3], blk(x[:1, :3]).squeeze(0), atol=1e-6)
    True
    """

    def __init__(self, dim: int, d_state: int = 16, expand: int = 2, d_conv: int = 4,
                 bidirectional: bool = True, dropout: float = 0.0, scan_backend: str = "auto"):
        super().__init__()
        d_inner = expand * dim
        self.bidirectional = bidirectional
        self.norm = nn.LayerNorm(dim)
        self.in_proj = nn.Linear(dim, 2 * d_inner, bias=False)            # Linear^x and Linear^z
        self.forward_branch = MambaBranch(d_inner, d_state, d_conv, scan_backend=scan_backend)
        self.backward_branch = (MambaBranch(d_inner, d_state, d_conv, scan_backend=scan_backend)
                                if bidirectional else None)
        self.out_proj = nn.Linear(d_inner, dim, bias=False)                # Linear^T
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        lengths = check_prefix_mask(mask)
        out = torch.zeros_like(x)
        rows = lengths > 0                                                 # skip all-padding rows
        if not bool(rows.any()):
            return out
        n_max = int(lengths.max())
        xr, lr, valid = x[rows, :n_max], lengths[rows], mask[rows, :n_max].to(x.dtype)
        xz = self.in_proj(self.norm(xr))                                   # (B', L', 2E)
        xs, z = xz.chunk(2, dim=-1)                                        # (B', L', E) each
        y = self.forward_branch(xs, valid)
        if self.backward_branch is not None:
            y_b = self.backward_branch(reverse_within_length(xs, lr), valid)
            y = y + reverse_within_length(y_b, lr)
        # Y_fwd ⊙ SiLU(z) + Y_bwd ⊙ SiLU(z) = (Y_fwd + Y_bwd) ⊙ SiLU(z)
        h = self.drop(self.out_proj(y * F.silu(z))) + xr                  # (B', L', D)
        out[rows, :n_max] = h * valid.unsqueeze(-1)
        return out
