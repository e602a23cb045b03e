r"""The hidden attention of a selective scan and of a Bi-Mamba block (Ali, Zimerman and Wolf, 2024).

Unrolling the recurrence of Eq. 3 with the input-dependent parameters of the selective
scan (:mod:`survmamba_lite.ssm.scan`), for channel ``e`` with
:math:`\bar A_k = \exp(\Delta_k A)` and Mamba's :math:`\bar B_s = \Delta_s B_s`:

.. math::

    h_t = \sum_{s \le t} \Big(\prod_{k=s+1}^{t} \bar A_k\Big) \bar B_s u_s, \qquad
    y_t = C_t h_t + D u_t = \sum_{s \le t} \alpha_{t,s}\, u_s + D u_t,

    \alpha_{t,s} = \sum_{n=1}^{N} C_{t,n}\,
        \exp\Big(A_n \sum_{k=s+1}^{t} \Delta_k\Big)\, \Delta_s B_{s,n}
        \quad (s \le t), \qquad \alpha_{t,s} = 0 \quad (s > t).

So each output of a channel is a weighted sum of that channel's inputs, with the
lower-triangular, data-dependent matrix :math:`\alpha` playing the part of a causal
attention matrix (Eq. 4's convolution kernel :math:`C \bar A^{t-s} \bar B` is its
time-invariant special case, a Toeplitz matrix). Unlike softmax attention its rows do not
sum to one and its entries may be negative.

The Bi-Mamba block (:class:`~survmamba_lite.ssm.BiMamba`) runs a second branch on the
sequence reversed within each row's length; mapped back to the original positions its
matrix is upper-triangular. The two branches read different inputs (each has its own
causal convolution), so the block's SSM output is

.. math::

    y = (\alpha^{\rightarrow} + \operatorname{diag} D^{\rightarrow})\, u^{\rightarrow}
      + (\alpha^{\leftarrow} + \operatorname{diag} D^{\leftarrow})\, u^{\leftarrow},
    \qquad u^{o} = \operatorname{SiLU}(\operatorname{Conv1d}_o(x)),

channel by channel, and the block's output is ``Linear^T(y ⊙ SiLU(z)) + x``.
:meth:`BlockAttention.ssm_output` and :meth:`BlockAttention.block_output` apply the
matrices and are tested equal to the scan (both backends, fused and two-call paths, with
padding). The matrices start after the causal convolution: ``u_s`` already mixes tokens
``s-W+1..s`` through a non-linear SiLU, which no matrix can express exactly.

Parameters are taken exactly as :class:`~survmamba_lite.ssm.MambaBranch` passes them to the
scan, including its float32 casts of ``A``, ``D`` and the ``Δ`` bias.

Shape letters: ``B`` batch, ``L`` length, ``E`` channels, ``N`` state size, ``G`` channel groups.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from survmamba_lite.ssm.bimamba import BiMamba, MambaBranch, causal_conv1d_silu, check_prefix_mask
from survmamba_lite.ssm.bimamba import reverse_within_length

__all__ = ["scan_matrix", "BranchInputs", "branch_inputs", "BlockAttention", "bimamba_attention",
           "block_mixing", "reverse_matrix_within_length"]


def scan_matrix(delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None = None,
                reduce: str | None = None, chunk: int = 64, budget: int = 2 ** 26) -> Tensor:
    r"""The hidden-attention matrices :math:`\alpha_{t,s}` of a selective scan.

    Args:
        delta: ``(B, E, L)`` step sizes :math:`\Delta` (after bias and softplus).
        A: ``(E, N)`` diagonal state matrices (negative).
        B, C: ``(B, N, L)`` shared by all channels, or ``(B, G, N, L)`` grouped (channel ``e``
            uses group ``e // (E / G)``), as in :func:`~survmamba_lite.ssm.selective_scan`.
        D: ``(E,)`` skip added on the diagonal, or None.
        reduce: None returns every channel's matrix; ``"mean"`` the channel mean and
            ``"abs_mean"`` the channel mean of absolute values, computed ``chunk`` channels
            at a time so that ``(B, E, L, L)`` is never held.
        chunk: channels per step (fewer when ``budget`` asks for it).
        budget: at most this many elements in the ``(B, e, T, L, N)`` decay tensor of one step
            (channels and output rows are split to fit; memory, not the result, depends on it).
            The work is :math:`O(B E L^2 N)` whatever the split.

    Returns:
        ``(B, E, L, L)`` (``reduce=None``) or ``(B, L, L)``; row ``t`` is output position
        ``t``, column ``s`` input position ``s``; zero above the diagonal.

    >>> delta = torch.full((1, 1, 3), 0.5); A = -torch.ones(1, 1)
    >>> B = torch.ones(1, 1, 3); C = torch.ones(1, 1, 3)
    >>> scan_matrix(delta, A, B, C)[0, 0]          # 0.5 * exp(-0.5 (t - s)) below the diagonal
    tensor([[0.5000, 0.0000, 0.0000],
            [0.3033, 0.5000, 0.0000],
            [0.1839, 0.3033, 0.5000]])
    """
    if reduce not in (None, "mean", "abs_mean"):
        raise ValueError(f"reduce must be None, 'mean' or 'abs_mean', got {reduce!r}")
    b, e, length = delta.shape
    if B.dim() == 3:
        B, C = B.unsqueeze(1), C.unsqueeze(1)                                    # (B, 1, N, L)
    n = A.shape[1]
    per_group = e // B.shape[1]
    chunk = max(1, min(chunk, e, budget // max(1, b * length * length * n)))
    rows = max(1, min(length, budget // max(1, b * chunk * length * n)))      # output rows per step
    t_idx = torch.arange(length, device=delta.device)
    dtype = torch.promote_types(delta.dtype, B.dtype)
    out = delta.new_zeros((b, length, length) if reduce else (b, e, length, length), dtype=dtype)
    for e0 in range(0, e, chunk):
        e1 = min(e, e0 + chunk)
        g = torch.arange(e0, e1, device=delta.device) // per_group
        Bc, Cc = B[:, g], C[:, g]                                                # (B, e, N, L)
        d = delta[:, e0:e1]                                                      # (B, e, L)
        cum = torch.cumsum(d, -1).unsqueeze(-1) * A[e0:e1].unsqueeze(1)          # (B, e, L, N): A Σ_{k<=t} Δ_k
        bd = Bc * d.unsqueeze(2)                                                 # Δ_s B_s: (B, e, N, L)
        for t0 in range(0, length, rows):
            t1 = min(length, t0 + rows)
            causal = t_idx[t0:t1].unsqueeze(1) >= t_idx.unsqueeze(0)             # (T, L): s <= t
            decay = cum[:, :, t0:t1].unsqueeze(3) - cum.unsqueeze(2)             # (B, e, T, L, N)
            decay = decay.masked_fill(~causal.view(1, 1, t1 - t0, length, 1), float("-inf")).exp()
            m = torch.einsum("bcnt,bctsn,bcns->bcts", Cc[..., t0:t1], decay, bd)  # (B, e, T, L)
            if D is not None:
                diag = torch.arange(t0, t1, device=delta.device)
                m[:, :, diag - t0, diag] += D[e0:e1].to(m.dtype).view(1, -1, 1)
            if reduce is None:
                out[:, e0:e1, t0:t1] = m
            else:
                out[:, t0:t1] += (m.abs() if reduce == "abs_mean" else m).sum(1)
    return out if reduce is None else out / e


@dataclass
class BranchInputs:
    """What one :class:`~survmamba_lite.ssm.MambaBranch` hands its scan.

    Attributes:
        u: ``(B, E, L)`` scan inputs ``SiLU(Conv1d(x))`` (zeros at padding).
        delta: ``(B, E, L)`` step sizes after bias and softplus.
        A: ``(E, N)``.
        B, C: ``(B, N, L)``.
        D: ``(E,)`` skip.
    """

    u: Tensor
    delta: Tensor
    A: Tensor
    B: Tensor
    C: Tensor
    D: Tensor


def branch_inputs(branch: MambaBranch, x: Tensor, valid: Tensor | None = None) -> BranchInputs:
    """The scan inputs of ``branch`` for ``x: (B, L, E)`` (``valid: (B, L)`` or None), computed
    with the branch's own parameters as :meth:`MambaBranch.forward` does."""
    dtype = x.dtype
    u = causal_conv1d_silu(x.transpose(1, 2), branch.conv.weight, branch.conv.bias, "torch")   # (B, E, L)
    if valid is not None:
        u = u * valid.to(dtype).unsqueeze(1)
    dt, B, C = branch.x_proj(u.transpose(1, 2)).split([branch.dt_rank, branch.d_state, branch.d_state], -1)
    delta = branch.dt_proj.weight @ dt.transpose(1, 2)                                          # (B, E, L)
    delta = F.softplus(delta.to(dtype) + branch.dt_proj.bias.float().to(dtype).unsqueeze(-1))
    A = -torch.exp(branch.A_log.float()).to(dtype)                                              # as the branch
    return BranchInputs(u, delta, A, B.transpose(1, 2), C.transpose(1, 2), branch.D.float().to(dtype))


def reverse_matrix_within_length(m: Tensor, lengths: Tensor) -> Tensor:
    """Map matrices of within-length reversed sequences back to the original positions.

    ``m: (B, ..., L, L)`` -> ``out[b, ..., t, s] = m[b, ..., π(t), π(s)]`` with ``π`` the
    reversal of the first ``lengths[b]`` positions (padding stays in place).
    """
    b, length = m.shape[0], m.shape[-1]
    pos = torch.arange(length, device=m.device).unsqueeze(0)
    n = lengths.to(m.device).unsqueeze(1)
    perm = torch.where(pos < n, n - 1 - pos, pos)                                   # (B, L)
    view = (b,) + (1,) * (m.dim() - 3)
    rows = perm.view(*view, length, 1).expand(m.shape)
    out = torch.gather(m, -2, rows)
    cols = perm.view(*view, 1, length).expand(m.shape)
    return torch.gather(out, -1, cols)


@dataclass
class BlockAttention:
    """The hidden attention of one Bi-Mamba block for one batch.

    Attributes:
        forward: ``(B, E, L, L)`` forward-branch matrices (lower-triangular, ``D`` not included).
        backward: ``(B, E, L, L)`` backward-branch matrices in the original positions
            (upper-triangular), or None for a unidirectional block.
        u_forward, u_backward: ``(B, E, L)`` the branches' scan inputs, original positions.
        d_forward, d_backward: ``(E,)`` the branches' skips.
        gate: ``(B, L, E)`` ``SiLU(z)``.
        valid: ``(B, L)`` float mask of real tokens.
    """

    forward: Tensor
    backward: Tensor | None
    u_forward: Tensor
    u_backward: Tensor | None
    d_forward: Tensor
    d_backward: Tensor | None
    gate: Tensor
    valid: Tensor

    def ssm_output(self) -> Tensor:
        """``y: (B, L, E)``, the matrices applied to the inputs plus the skips (zero at padding):
        the block's SSM output before the gate ``SiLU(z)`` and the output projection."""
        y = torch.einsum("bets,bes->bte", self.forward, self.u_forward) + (self.u_forward.transpose(1, 2)
                                                                             * self.d_forward)
        if self.backward is not None:
            y = y + torch.einsum("bets,bes->bte", self.backward, self.u_backward) \
                + self.u_backward.transpose(1, 2) * self.d_backward
        return y * self.valid.unsqueeze(-1)

    def block_output(self, block: BiMamba, x: Tensor) -> Tensor:
        """``Linear^T(y ⊙ SiLU(z)) + x`` at real tokens, zeros at padding: the block's output
        (in eval mode; dropout is not applied). ``x: (B, L, D)`` -> ``(B, L, D)``."""
        return (block.out_proj(self.ssm_output() * self.gate) + x) * self.valid.unsqueeze(-1)

    def mean(self, groups: int = 1, absolute: bool = False, direction: str = "both") -> Tensor:
        """Channel-averaged matrices ``(B, G, L, L)``: the mean over each of ``groups`` contiguous
        channel groups (``groups = 1``: all channels; ``groups = E``: every channel).

        Args:
            groups: number of channel groups ``G`` (must divide ``E``).
            absolute: average absolute values (signs of different channels do not cancel).
            direction: ``"forward"``, ``"backward"`` or ``"both"`` (their sum).
        """
        mats = {"forward": [self.forward], "backward": [self.backward],
                "both": [self.forward] + ([self.backward] if self.backward is not None else [])}[direction]
        if any(m is None for m in mats):
            raise ValueError("this block is unidirectional: it has no backward matrix")
        e = mats[0].shape[1]
        if groups < 1 or e % groups:
            raise ValueError(f"groups must divide the {e} channels, got {groups}")
        total = sum(m.abs() if absolute else m for m in mats)                      # (B, E, L, L)
        b, _, length, _ = total.shape
        return total.view(b, groups, e // groups, length, length).mean(2)


def _prefix(mask: Tensor | None, x: Tensor) -> tuple[Tensor, Tensor]:
    if mask is None:
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    return mask.to(x.dtype), check_prefix_mask(mask.cpu()).to(x.device)


def _zero_padding(m: Tensor, valid: Tensor) -> Tensor:
    v = valid.view(valid.shape[0], *([1] * (m.dim() - 3)), valid.shape[1])
    return m * v.unsqueeze(-1) * v.unsqueeze(-2)


@torch.no_grad()
def bimamba_attention(block: BiMamba, x: Tensor, mask: Tensor | None = None) -> BlockAttention:
    """The hidden attention of ``block`` at input ``x: (B, L, D)`` with prefix ``mask: (B, L)``.

    Rows and columns of padded positions are zero.

    >>> from survmamba_lite.ssm import BiMamba
    >>> blk = BiMamba(dim=4, d_state=2, expand=2, scan_backend="ref").eval()
    >>> x = torch.randn(1, 5, 4)
    >>> att = bimamba_attention(blk, x)
    >>> tuple(att.forward.shape), bool(torch.allclose(att.block_output(blk, x), blk(x), atol=1e-5))
    ((1, 8, 5, 5), True)
    """
    valid, lengths = _prefix(mask, x)
    xs, z = block.in_proj(block.norm(x)).chunk(2, dim=-1)                           # (B, L, E) each
    f = branch_inputs(block.forward_branch, xs, valid)
    fwd = _zero_padding(scan_matrix(f.delta, f.A, f.B, f.C), valid)
    bwd = u_b = d_b = None
    if block.backward_branch is not None:
        r = branch_inputs(block.backward_branch, reverse_within_length(xs, lengths), valid)
        bwd = _zero_padding(reverse_matrix_within_length(scan_matrix(r.delta, r.A, r.B, r.C), lengths), valid)
        u_b = reverse_within_length(r.u.transpose(1, 2), lengths).transpose(1, 2)
        d_b = r.D
    return BlockAttention(fwd, bwd, f.u, u_b, f.D, d_b, F.silu(z), valid)


@torch.no_grad()
def block_mixing(block: BiMamba | MambaBranch, x: Tensor, mask: Tensor | None = None, chunk: int = 64) -> Tensor:
    r"""How much each output token draws on each input token, averaged over channels: ``(B, L, L)``.

    For a Bi-Mamba block :math:`\bar M = \frac1E \sum_e \big(|\alpha^{\rightarrow}_e + D^{\rightarrow}_e I|
    + |\alpha^{\leftarrow}_e + D^{\leftarrow}_e I|\big)`; for a single :class:`MambaBranch`
    (IFM's one-directional scan, whose input ``x: (B, L, E)`` is already projected) the first
    term alone. Absolute values, so channels of opposite sign do not cancel; the skips count
    as the token's attention to itself. Computed ``chunk`` channels at a time; padded rows
    and columns are zero.
    """
    valid, lengths = _prefix(mask, x)
    if isinstance(block, MambaBranch):
        f = branch_inputs(block, x, valid)
        return _zero_padding(scan_matrix(f.delta, f.A, f.B, f.C, f.D, "abs_mean", chunk), valid)
    xs = block.in_proj(block.norm(x)).chunk(2, dim=-1)[0]
    f = branch_inputs(block.forward_branch, xs, valid)
    m = scan_matrix(f.delta, f.A, f.B, f.C, f.D, "abs_mean", chunk)
    if block.backward_branch is not None:
        r = branch_inputs(block.backward_branch, reverse_within_length(xs, lengths), valid)
        m = m + reverse_matrix_within_length(scan_matrix(r.delta, r.A, r.B, r.C, r.D, "abs_mean", chunk), lengths)
    return _zero_padding(m, valid)
