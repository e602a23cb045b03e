"""Token encoders shared by SurvMamba and the baselines.

Shape letters: the package glossary, :mod:`survmamba_lite.shapes`.

* :class:`PatchEncoder` — the trainable projection after the frozen pathology encoder
  ``f_I`` (paper: 768-d CTransPath embeddings projected to 512-d).
* :class:`FunctionEncoder` — the genomics encoder ``f_G`` (Sec. 3.3): one small
  feed-forward network per genomic function (KEGG pathway) that maps the expression
  of that function's genes to one token. The paper says "a two-layer feed-forward
  network producing 512-d tokens" without saying whether weights are shared; the
  functions have different gene sets, so the first layer is necessarily
  per-function. We use a per-function first layer (``K_f`` genes -> ``hidden``) and a
  second layer shared by all functions (``hidden -> D``), like the self-normalising
  pathway networks of SurvPath, which keeps the parameter count small.
* :func:`group_functions` — arranges function tokens by process: ``(B, Fn, D)`` ->
  ``(B, J, K, D)`` plus a mask, the genomic twin of :func:`~survmamba_lite.data.group_patches`.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from survmamba_lite.data.bag import GenomicHierarchy

__all__ = ["PatchEncoder", "FunctionEncoder", "group_functions", "function_group_index", "gather_groups",
           "ragged_memberships",
           "SNNBlock"]


class SNNBlock(nn.Sequential):
    """Linear -> ELU (or SELU) -> AlphaDropout: one block of a self-normalising network.

    ``activation="elu"`` (default) is the block of the survival literature's SNN baseline
    (``SNN_Block`` in mahmoodlab/MCAT ``models/model_utils.py`` and mahmoodlab/PORPOISE
    ``models/model_genomic.py``); ``"selu"`` is Klambauer et al.'s original self-normalising
    activation (NeurIPS 2017), for which AlphaDropout was designed. Weights follow the SNN
    initialisation (normal with std ``1/sqrt(fan_in)``, zero bias; ``init_max_weights`` there).

    ``x: (..., d_in)`` -> ``(..., d_out)``.
    """

    def __init__(self, d_in: int, d_out: int, dropout: float = 0.25, activation: str = "elu"):
        acts = {"elu": nn.ELU, "selu": nn.SELU}
        if activation not in acts:
            raise ValueError(f"SNNBlock: activation must be one of {sorted(acts)}, got {activation!r}")
        super().__init__(nn.Linear(d_in, d_out), acts[activation](), nn.AlphaDropout(dropout))
        nn.init.normal_(self[0].weight, std=1.0 / math.sqrt(d_in))
        nn.init.zeros_(self[0].bias)


class PatchEncoder(nn.Module):
    """Project frozen patch features to the model width.

    Args:
        d_in: width ``F`` of the frozen encoder's features.
        dim: model width ``D``.
        dropout: dropout after the activation.

    Input ``x: (..., F)``, output ``(..., D)``.
    """

    def __init__(self, d_in: int, dim: int, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, dim), nn.GELU(), nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class FunctionEncoder(nn.Module):
    """Genomics encoder ``f_G``: RNA vector -> one token per genomic function.

    For function ``f`` with gene index set ``I_f`` (``K_f = |I_f|`` genes)::

        token_f = W2 · ELU(W1_f · x[I_f] + b1_f) + b2        (W1_f: hidden x K_f)

    Implemented without a Python loop and without padding: the first-layer weights
    are stored *ragged*, one row per (function, gene) membership (``M = Σ_f K_f``
    rows), so the parameter count is exactly ``M·hidden + Fn·hidden`` for the first
    layer; each membership's contribution is summed into its function with
    ``index_add``.

    Args:
        hierarchy: gene -> function -> process hierarchy (only genes and functions are used).
        dim: output token width ``D``.
        hidden: width of the per-function hidden layer.
        dropout: alpha-dropout after the hidden layer.

    Input ``rna: (B, G)``; output ``(B, Fn, D)``.

    >>> h = GenomicHierarchy(("a", "b", "c"), ("f1", "f2"), ("one", "two"), ((0, 1), (1, 2)), (0, 0), ("p",))
    >>> enc = FunctionEncoder(h, dim=8, hidden=4)
    >>> enc(torch.randn(5, 3)).shape, enc.w1.numel()
    (torch.Size([5, 2, 8]), 16)
    """

    def __init__(self, hierarchy: GenomicHierarchy, dim: int, hidden: int = 64, dropout: float = 0.25):
        super().__init__()
        self.n_functions = hierarchy.n_functions
        pair_function, pair_gene, fan_in = ragged_memberships(hierarchy)
        self.register_buffer("pair_function", pair_function, persistent=False)               # (M,)
        self.register_buffer("pair_gene", pair_gene, persistent=False)                       # (M,)
        self.w1 = nn.Parameter(torch.randn(len(pair_gene), hidden) / fan_in.sqrt())          # (M, hidden)
        self.b1 = nn.Parameter(torch.zeros(hierarchy.n_functions, hidden))
        self.act = nn.ELU()
        self.drop = nn.AlphaDropout(dropout)
        self.out = nn.Linear(hidden, dim)

    def forward(self, rna: Tensor) -> Tensor:
        contrib = rna[:, self.pair_gene].unsqueeze(-1) * self.w1                   # (B, M, hidden)
        hid = self.b1.expand(rna.shape[0], -1, -1).index_add(1, self.pair_function, contrib)  # (B, Fn, hidden)
        return self.out(self.drop(self.act(hid)))                                   # (B, Fn, D)


def ragged_memberships(hierarchy: GenomicHierarchy) -> tuple[Tensor, Tensor, Tensor]:
    """One row per (function, gene) membership: the layout of ragged per-function layers.

    Returns ``pair_function (M,)`` and ``pair_gene (M,)`` long, and ``fan_in (M, 1)`` float, the
    number of genes of each row's function (``M = Σ_f K_f``).

    >>> h = GenomicHierarchy(("a", "b", "c"), ("f1", "f2"), ("one", "two"), ((0, 1), (2,)), (0, 0), ("p",))
    >>> [t.flatten().tolist() for t in ragged_memberships(h)]
    [[0, 0, 1], [0, 1, 2], [2.0, 2.0, 1.0]]
    """
    pair_function = torch.tensor([f for f, genes in enumerate(hierarchy.function_genes) for _ in genes],
                                 dtype=torch.long)
    pair_gene = torch.tensor([g for genes in hierarchy.function_genes for g in genes], dtype=torch.long)
    sizes = torch.tensor([len(g) for g in hierarchy.function_genes], dtype=torch.float32)
    return pair_function, pair_gene, sizes[pair_function].unsqueeze(-1)


def group_functions(tokens: Tensor, hierarchy: GenomicHierarchy) -> tuple[Tensor, Tensor]:
    """Arrange function tokens by biological process.

    Args:
        tokens: ``(B, Fn, D)`` function tokens in hierarchy function order.
        hierarchy: gives each function's process.

    Returns:
        ``grouped (B, J, K, D)`` zero padded and ``mask (J, K)`` bool (same for every
        patient, since the hierarchy is fixed).

    >>> h = GenomicHierarchy(("a",), ("f1", "f2", "f3"), ("1", "2", "3"), ((0,), (0,), (0,)), (1, 0, 1), ("p", "q"))
    >>> g, m = group_functions(torch.arange(3.).view(1, 3, 1), h)
    >>> g.squeeze(-1).tolist(), m.tolist()
    ([[[1.0, 0.0], [0.0, 2.0]]], [[True, False], [True, True]])
    """
    index, mask = function_group_index(hierarchy)
    mask = mask.to(tokens.device)
    return gather_groups(tokens, index.to(tokens.device), mask), mask


def gather_groups(tokens: Tensor, index: Tensor, mask: Tensor) -> Tensor:
    """``tokens: (B, Fn, D)`` -> ``(B, J, K, D)``: row ``(j, k)`` holds token ``index[j, k]`` where
    ``mask[j, k]``, zeros elsewhere (``index``, ``mask``: ``(J, K)`` from :func:`function_group_index`).

    ``index_select`` rather than advanced indexing: its backward is an ``index_add``, not a sort.
    """
    j, k = mask.shape
    grouped = tokens.index_select(1, index.flatten()).view(tokens.shape[0], j, k, tokens.shape[-1])
    return grouped * mask.unsqueeze(-1)


def function_group_index(hierarchy: GenomicHierarchy) -> tuple[Tensor, Tensor]:
    """Where each process's functions sit: ``index (J, K)`` long and ``mask (J, K)`` bool (CPU).

    ``tokens[:, index] * mask[..., None]`` is :func:`group_functions`; a model builds these once
    (as buffers) instead of once per forward pass.

    >>> h = GenomicHierarchy(("a",), ("f1", "f2", "f3"), ("1", "2", "3"), ((0,), (0,), (0,)), (1, 0, 1), ("p", "q"))
    >>> [t.tolist() for t in function_group_index(h)]
    [[[1, 0], [0, 2]], [[True, False], [True, True]]]
    """
    groups = hierarchy.process_functions
    k_max = max(len(g) for g in groups)
    index = torch.zeros(len(groups), k_max, dtype=torch.long)
    mask = torch.zeros(len(groups), k_max, dtype=torch.bool)
    for j, g in enumerate(groups):
        index[j, : len(g)] = torch.tensor(g, dtype=torch.long)
        mask[j, : len(g)] = True
    return index, mask
