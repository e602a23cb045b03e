r"""Token importance of one patient through HIM and IFM: hidden-attention rollout.

The rule (attention rollout of Abnar and Zuidema, 2020, carried through SurvMamba's levels).
Every Bi-Mamba block ``l`` gives the channel-averaged absolute hidden attention
:math:`\bar M^{(l)}` (:func:`~survmamba_lite.interpret.hidden_attention.block_mixing`, skip
``D`` on the diagonal). Normalising its rows and adding the block's residual connection
gives a row-stochastic matrix

.. math::

    \hat A^{(l)} = \tfrac12 I + \tfrac12 \operatorname{rownorm}(\bar M^{(l)}), \qquad
    R = \hat A^{(n)} \cdots \hat A^{(1)}

over the real tokens of a sequence (``R[t, s]``: share of output ``t`` traced to input
``s``). A mean over positions weights every output by ``1/n``, so the importance of the
inputs to a pooled vector is ``w^T R`` with ``w`` uniform. For one modality of a patient
(regions ``r`` of patches ``p``, or processes of functions):

* **fine level, within each region**: :math:`a_r = w_r^\top R_r` over the region's
  patches (Eq. 5; the region token of Eq. 6 is the mean of the fine outputs);
* **coarse level, across regions**: :math:`c = u_c^\top R_c` over the regions, with
  :math:`u_c` the rollout of the coarse IFM's scan (row-normalised, no residual: IFM has
  none) or uniform where the level is fused by a linear layer or not fused;
* **fine path**: the fine IFM's scan reads all patches of the slide as one sequence; its
  rollout :math:`v` over them is carried back through each region's :math:`R_r`:
  :math:`f_{rp} = \sum_k v_{rk} R_r[k, p]`;
* **output**: Eq. 8 mixes the two paths with :math:`\alpha`, so patch ``p`` of region ``r`` gets

  .. math:: I_{rp} = \alpha f_{rp} + (1 - \alpha)\, c_r\, a_{rp}, \qquad
            I_r = \sum_p I_{rp},

  and :math:`\sum_{r,p} I_{rp} = 1` for each modality. Without a coarse level
  (variants A, B) :math:`\alpha = 1`; without grouping (variant A) the fine level is one
  sequence of all patches and a region's importance is the sum over its patches.

What the rule leaves out, as rollout does in transformers: the causal convolution before
each scan (a token's input already holds its ``W - 1`` predecessors), the gates
``SiLU(z)`` (including IFM's cross-modal gate), the encoders and the head. IFM's output is
read as the mean of each modality's own scan outputs, which is what ``ifm_align="pool"``
computes; with ``"interpolate"`` the resampling of one modality onto the other's positions
is not followed. The two
modalities are normalised separately: the rule says where each modality looks, not how
much each modality weighs. Tested against an explicit product of dense matrices.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from survmamba_lite.data.bag import SurvivalBatch
from survmamba_lite.interpret.hidden_attention import block_mixing
from survmamba_lite.model.him import compact, masked_mean
from survmamba_lite.model.ifm import InteractionFusionMamba
from survmamba_lite.model.survmamba import SurvMamba

__all__ = ["rollout_step", "ModalityImportance", "hidden_attention_importance", "modality_tokens"]


def _rownorm(m: Tensor) -> Tensor:
    return m / m.sum(-1, keepdim=True).clamp_min(torch.finfo(m.dtype).tiny)


def rollout_step(mixing: Tensor, valid: Tensor, residual: bool = True) -> Tensor:
    r"""One block's row-stochastic matrix :math:`\tfrac12 I + \tfrac12\operatorname{rownorm}(\bar M)`.

    Args:
        mixing: ``(B, L, L)`` non-negative mixing matrices (zero at padding).
        valid: ``(B, L)`` float mask of real tokens.
        residual: add the identity half (the block's residual connection); False for IFM.

    Returns ``(B, L, L)``; rows of real tokens sum to one, padded rows and columns are zero.

    >>> rollout_step(torch.tensor([[[1., 3.], [0., 2.]]]), torch.ones(1, 2)).tolist()
    [[[0.625, 0.375], [0.0, 1.0]]]
    """
    step = _rownorm(mixing)
    if residual:
        eye = torch.diag_embed(valid)
        step = 0.5 * eye + 0.5 * step
    return step * valid.unsqueeze(-1) * valid.unsqueeze(-2)


def _pool_weights(valid: Tensor) -> Tensor:
    """``(B, L)`` -> uniform weights ``1/n`` over the real tokens of each row."""
    return valid / valid.sum(-1, keepdim=True).clamp_min(1.0)


def _fusion_rollout(module, o: int, tokens: Tensor, mask: Tensor) -> Tensor:
    """Importance ``(B, L)`` of the tokens of modality ``o`` for a fusion module's pooled output."""
    valid = mask.to(tokens.dtype)
    w = _pool_weights(valid)
    if not isinstance(module, InteractionFusionMamba):
        return w                                        # Linear([Pool(T^I), Pool(T^G)]) or Pool(T)
    x = module.x_proj[o](module.norm[o](tokens))
    step = rollout_step(block_mixing(module.ssm[o], x, mask), valid, residual=False)
    return torch.einsum("bt,bts->bs", w, step)


@dataclass
class ModalityImportance:
    """Importance of one modality's tokens for one patient (see the module docstring).

    Attributes:
        fine: ``(S, K)`` :math:`I_{rp}` per group and position (zero at padding); sums to 1.
        group: ``(S,)`` :math:`I_r`, the sum of :attr:`fine` over each group.
        within: ``(S, K)`` :math:`a_{rp}`, the fine-level rollout of each group (rows sum to 1).
        coarse: ``(S,)`` :math:`c_r`, the coarse-level rollout over the groups, or None.
        fine_path: ``(S, K)`` :math:`f_{rp}`, the fine IFM path.
        alpha: the weight of the fine path (α of Eq. 8; 1 without a coarse level).
        mask: ``(S, K)`` bool, real tokens.
    """

    fine: Tensor
    group: Tensor
    within: Tensor
    coarse: Tensor | None
    fine_path: Tensor
    alpha: float
    mask: Tensor


def modality_tokens(model: SurvMamba, batch: SurvivalBatch, modality: str) -> tuple[Tensor, Tensor]:
    """The encoded tokens grouped for HIM: ``(B, S, K, D)`` and their mask ``(B, S, K)``."""
    if modality == "wsi":
        return model.encoders["wsi"](batch.patches), batch.patch_mask
    tokens = model.encoders["rna"](batch.rna)                                        # (B, Fn, D)
    mask = model.function_mask                                                       # (J, K)
    grouped = tokens.index_select(1, model.function_index.flatten()).view(
        tokens.shape[0], *mask.shape, tokens.shape[-1]) * mask.unsqueeze(-1)
    return grouped, mask.expand(grouped.shape[0], -1, -1)


def _fine_level(blocks, x: Tensor, m: Tensor) -> tuple[Tensor, Tensor]:
    """Run ``blocks`` on ``x: (S, K, D)`` with ``m: (S, K)``; return outputs and the rollout ``(S, K, K)``."""
    valid = m.to(x.dtype)
    roll = torch.diag_embed(valid)
    for blk in blocks:
        step = rollout_step(block_mixing(blk, x, m), valid)
        roll = step @ roll
        x = blk(x, m)
    return x, roll


@torch.no_grad()
def hidden_attention_importance(model: SurvMamba, batch: SurvivalBatch, modality: str) -> ModalityImportance:
    """Hidden-attention rollout of one patient's ``modality`` (``"wsi"`` or ``"rna"``).

    Args:
        model: a :class:`~survmamba_lite.model.SurvMamba` (put in eval mode here).
        batch: one patient (``len(batch) == 1``) with the inputs the model reads.
        modality: which modality's tokens to score.

    Returns a :class:`ModalityImportance` whose groups are regions (``wsi``) or processes
    (``rna``) in the batch's order, and fine tokens patches or functions.
    """
    if len(batch) != 1:
        raise ValueError(f"hidden_attention_importance explains one patient at a time, got a batch of {len(batch)}")
    if modality not in model.modalities:
        raise ValueError(f"the model reads {list(model.modalities)}, not {modality!r}")
    model.eval()
    cfg = model.config
    him = model.him[modality]
    o = [m for m in ("wsi", "rna") if m in model.modalities].index(modality)
    tokens, mask = modality_tokens(model, batch, modality)                           # (1, S, K, D), (1, S, K)
    _, s, k, d = tokens.shape
    if not cfg.grouped:                                   # model A: one sequence of all tokens, in group order
        flat, fmask = compact(tokens, mask)                                          # (1, L, D)
        out, roll = _fine_level(him.fine_blocks, flat, fmask)
        v = _fusion_rollout(model.fuse_fine, o, out, fmask)
        per_token = torch.einsum("bt,bts->bs", v, roll)[0]                           # (L,)
        fine = torch.zeros(s, k, dtype=tokens.dtype)
        fine[mask[0]] = per_token[: int(mask.sum())]
        return ModalityImportance(fine, fine.sum(-1), fine / fine.sum(-1, keepdim=True).clamp_min(1e-30),
                                  None, fine, 1.0, mask[0])
    x, m = tokens.reshape(s, k, d), mask.reshape(s, k)
    out, roll = _fine_level(him.fine_blocks, x, m)                                   # (S, K, D), (S, K, K)
    valid = m.to(tokens.dtype)
    within = torch.einsum("sk,skp->sp", _pool_weights(valid), roll)                  # a_r: (S, K)
    fine_grouped = out.view(1, s, k, d)
    flat, fmask = compact(fine_grouped, mask)                                        # real tokens, group order
    v_flat = _fusion_rollout(model.fuse_fine, o, flat, fmask)[0]                     # (L,)
    v = torch.zeros(s, k, dtype=tokens.dtype)
    v[m] = v_flat[: int(m.sum())]
    fine_path = torch.einsum("sk,skp->sp", v, roll)                                  # f_rp
    if not cfg.coarse:
        return ModalityImportance(fine_path, fine_path.sum(-1), within, None, fine_path, 1.0, m)
    group_mask = mask.any(-1)                                                        # (1, S)
    gvalid = group_mask.to(tokens.dtype)
    coarse = masked_mean(fine_grouped, mask, dim=2)                                  # (1, S, D)
    croll = torch.diag_embed(gvalid)
    for blk in him.coarse_blocks:
        croll = rollout_step(block_mixing(blk, coarse, group_mask), gvalid) @ croll
        coarse = blk(coarse, group_mask)
    u = _fusion_rollout(model.fuse_coarse, o, coarse, group_mask)                    # (1, S)
    c = torch.einsum("bt,bts->bs", u, croll)[0]                                      # c_r: (S,)
    alpha = float(model.alpha)
    fine = alpha * fine_path + (1 - alpha) * c.unsqueeze(-1) * within
    return ModalityImportance(fine, fine.sum(-1), within, c, fine_path, alpha, m)

