"""Interaction Fusion Mamba (IFM, Sec. 3.5, Algorithm 2, Eq. 7).

Shape letters: the package glossary, :mod:`survmamba_lite.shapes`.

Algorithm 2 for modalities ``a1`` (histology) and ``a2`` (genomics)::

    for o in {a1, a2}:
        T^o  = Norm_o(T^o)
        x_o  = Linear^x_o(T^o)                  # line 5 uses an undefined x: this projection
        x'_o = SiLU(Conv1d_o(x_o));  Y_o = SSM_o(x'_o)   (Δ_o, B_o, C_o from x'_o as in Mamba)
    z1, z2 = Linear^z(T^a1), Linear^z(T^a2)     # one Linear^z shared by both, as written
    Y^a1 = Y_a1 ⊙ SiLU(z2);  Y^a2 = Y_a2 ⊙ SiLU(z1)     # each modality gated by the other
    T_l  = Linear^T(Cat(Y^a1, Y^a2))            # (B, M, 2E) -> (B, M, D)

The algorithm assumes both sequences have the same length ``M``. They do not:
patches (thousands) vs functions (hundreds) at the fine level, regions vs processes
at the coarse level. ``align`` chooses how the other modality is brought to the
positions of the one it gates:

* ``"pool"`` (default): the other modality is summarised by its masked mean, so each
  token of ``a1`` is gated by the average gate ``mean_t SiLU(z2_t)`` (and vice versa),
  and ``Cat`` joins the two pooled outputs. Order-free, cheap, no interpolation
  artefacts.
* ``"interpolate"``: the other modality's gate and output are linearly resampled,
  per patient, from its real length to the real length of ``a1`` (histology is the
  anchor), then used position by position as written in Algorithm 2, and the fused
  tokens are mean-pooled. This is the literal reading when lengths match.

Eq. 7 writes the same inputs ``[T^I, T^G]`` for ``H_f`` and ``H_c``; we read it as the
fine-grained IFM taking HIM's fine outputs (``T^{I'}``, ``T^{G'}``) and the
coarse-grained IFM its coarse outputs (``T^I``, ``T^G``). Each IFM returns one fused
vector per patient, ``(B, D)``, for the adaptive fusion of Eq. 8. The SSM in IFM
runs in one direction, as Algorithm 2 is written.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from survmamba_lite.model.him import masked_mean
from survmamba_lite.ssm.bimamba import MambaBranch, check_prefix_mask

__all__ = ["InteractionFusionMamba", "resample_to_length"]


def resample_to_length(x: Tensor, n_src: Tensor, n_dst: Tensor, length: int) -> Tensor:
    """Linearly resample each row's first ``n_src[b]`` positions onto ``n_dst[b]`` positions.

    Args:
        x: ``(B, L_src, D)`` sequences, real positions first.
        n_src: ``(B,)`` real lengths of ``x`` (>= 1).
        n_dst: ``(B,)`` target real lengths (>= 0, <= ``length``).
        length: padded output length ``L_dst``.

    Returns ``(B, L_dst, D)``, zero beyond ``n_dst[b]``. Endpoints map to endpoints.

    >>> x = torch.tensor([[0., 10., 0.]]).unsqueeze(-1)
    >>> resample_to_length(x, torch.tensor([2]), torch.tensor([3]), 4).squeeze(-1).tolist()
    [[0.0, 5.0, 10.0, 0.0]]
    """
    pos = torch.arange(length, device=x.device, dtype=x.dtype).unsqueeze(0)      # (1, L_dst)
    src_last = (n_src - 1).to(x.dtype).unsqueeze(1)                               # (B, 1)
    dst_last = (n_dst - 1).clamp_min(1).to(x.dtype).unsqueeze(1)
    t = (pos * src_last / dst_last).clamp(max=src_last)                           # source coordinate
    lo = t.floor().long()
    hi = torch.minimum(lo + 1, (n_src - 1).unsqueeze(1))
    w = (t - lo.to(x.dtype)).unsqueeze(-1)
    c = x.shape[-1]
    x_lo = torch.gather(x, 1, lo.unsqueeze(-1).expand(-1, -1, c))
    x_hi = torch.gather(x, 1, hi.unsqueeze(-1).expand(-1, -1, c))
    out = (1 - w) * x_lo + w * x_hi
    return out * (pos < n_dst.unsqueeze(1)).unsqueeze(-1).to(x.dtype)


class InteractionFusionMamba(nn.Module):
    """IFM: cross-gated selective scans of two modalities fused into one vector.

    Args:
        dim: token width ``D``.
        d_state, expand, d_conv: SSM sizes (``E = expand * D``).
        align: "pool" or "interpolate" (see the module docstring).
        scan_backend: selective-scan backend.
        conv_backend: causal-convolution backend.
        recompute_tokens: keep only the inputs for backward and recompute the rest there when
            the two sequences hold more tokens than this (None: never).

    Forward ``a1: (B, L1, D)``, ``m1: (B, L1)``, ``a2: (B, L2, D)``, ``m2: (B, L2)``
    (bool prefix masks) -> fused ``(B, D)``.
    """

    def __init__(self, dim: int, d_state: int = 16, expand: int = 2, d_conv: int = 4, align: str = "pool",
                 scan_backend: str = "auto", conv_backend: str = "auto", recompute_tokens: int | None = None):
        super().__init__()
        if align not in ("pool", "interpolate"):
            raise ValueError(f"align must be 'pool' or 'interpolate', got {align!r}")
        e = expand * dim
        self.align = align
        self.norm = nn.ModuleList([nn.LayerNorm(dim), nn.LayerNorm(dim)])
        self.x_proj = nn.ModuleList([nn.Linear(dim, e, bias=False), nn.Linear(dim, e, bias=False)])
        self.recompute_tokens = recompute_tokens
        self.ssm = nn.ModuleList([MambaBranch(e, d_state, d_conv, scan_backend=scan_backend, conv_backend=conv_backend)
                                  for _ in range(2)])
        self.z_proj = nn.Linear(dim, e, bias=False)                              # Linear^z, shared
        self.out_proj = nn.Linear(2 * e, dim)                                    # Linear^T

    def forward(self, a1: Tensor, m1: Tensor, a2: Tensor, m2: Tensor) -> Tensor:
        if m1.is_cuda:                  # checked where batches are built; no host sync on CUDA
            n1, n2 = m1.sum(-1), m2.sum(-1)
        else:
            n1, n2 = check_prefix_mask(m1), check_prefix_mask(m2)
            if bool((n1 == 0).any()) or bool((n2 == 0).any()):
                raise ValueError("IFM needs at least one real token of each modality for every patient")
        n_tokens = a1.shape[0] * (a1.shape[1] + a2.shape[1])
        if self.recompute_tokens is not None and n_tokens > self.recompute_tokens and torch.is_grad_enabled():
            return checkpoint(self._fuse, a1, m1, a2, m2, n1, n2, use_reentrant=False)
        return self._fuse(a1, m1, a2, m2, n1, n2)

    def _fuse(self, a1: Tensor, m1: Tensor, a2: Tensor, m2: Tensor, n1: Tensor, n2: Tensor) -> Tensor:
        ys, gates = [], []
        for o, (x, m) in enumerate(((a1, m1), (a2, m2))):
            t = self.norm[o](x)
            ys.append(self.ssm[o](self.x_proj[o](t), m.to(x.dtype)))          # Y_o: (B, L_o, E)
            gates.append(F.silu(self.z_proj(t)))                                # SiLU(z_o): (B, L_o, E)
        (y1, y2), (g1, g2) = ys, gates
        if self.align == "pool":
            g1_bar, g2_bar = masked_mean(g1, m1, 1), masked_mean(g2, m2, 1)    # (B, E)
            y1_bar = masked_mean(y1, m1, 1) * g2_bar                            # mean_t(Y_a1 ⊙ gate2)
            y2_bar = masked_mean(y2, m2, 1) * g1_bar
            return self.out_proj(torch.cat([y1_bar, y2_bar], dim=-1))          # (B, D)
        length = a1.shape[1]
        g2_on_1 = resample_to_length(g2, n2, n1, length)                        # (B, L1, E)
        y2_gated = y2 * resample_to_length(g1, n1, n2, a2.shape[1])            # Y_a2 ⊙ SiLU(z1 on a2)
        y2_on_1 = resample_to_length(y2_gated, n2, n1, length)
        fused = self.out_proj(torch.cat([y1 * g2_on_1, y2_on_1], dim=-1))      # (B, L1, D)
        return masked_mean(fused, m1, 1)
