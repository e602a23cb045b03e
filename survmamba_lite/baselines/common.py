"""Building blocks shared by the baselines of Table 1.

* :func:`flatten_bag` — histology tokens of a slide as one flat bag, real patches first
  (the MIL baselines ignore the region grouping of :class:`~survmamba_lite.data.SurvivalBatch`).
* :func:`masked_mean` and :class:`Attention` — padding-aware pooling and softmax attention.
* :class:`GatedAttentionPool` — the gated attention pooling of Ilse et al. (2018).
* :class:`TransformerLayer` — a post-norm transformer encoder layer (as in MCAT).
* :class:`KroneckerFusion` — the plain Kronecker product of two embeddings (each with a 1 appended).
* :class:`GatedKroneckerFusion` — Pathomic Fusion's gated Kronecker fusion (Chen et al., 2020),
  the "KP"/"bilinear" fusion of the Table 1 late-fusion rows, MCAT and MOTCat.
* :class:`GroupSNN` — one two-block self-normalising network per gene group (the per-signature
  / per-pathway networks of MCAT, MOTCat and SurvPath).
* :func:`process_level_hierarchy` — one genomic token per biological process instead of per
  function; :func:`gene_family_hierarchy` and :func:`read_gene_families` — one token per gene
  family (MCAT's six families: tumour suppressors, oncogenes, protein kinases, cell
  differentiation markers, transcription factors, cytokines and growth factors).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from survmamba_lite.data.bag import GenomicHierarchy, SurvivalBatch
from survmamba_lite.model.encoders import ragged_memberships
from survmamba_lite.model.him import compact
from survmamba_lite.model.him import masked_mean as _masked_mean

__all__ = ["flatten_bag", "FUSIONS", "FUSION_ALIASES", "fusion_name", "require_modalities", "masked_mean", "Attention", "GatedAttentionPool",
           "TransformerLayer", "KroneckerFusion", "GatedKroneckerFusion", "GroupSNN", "process_level_hierarchy",
           "gene_family_hierarchy", "read_gene_families"]


#: the bag-level fusions of the baselines: ``"cat"`` (concatenation) and ``"kp"`` (gated Kronecker product)
FUSIONS = ("cat", "kp")
#: earlier spellings still accepted (a saved config that says ``"concat"`` builds the ``"cat"`` model)
FUSION_ALIASES = {"concat": "cat"}


def fusion_name(fusion: str, who: str) -> str:
    """The one spelling of a fusion: ``"cat"`` or ``"kp"`` (``"concat"`` is read as ``"cat"``).

    >>> fusion_name("concat", "MCAT"), fusion_name("kp", "MCAT")
    ('cat', 'kp')
    """
    name = FUSION_ALIASES.get(fusion, fusion)
    if name not in FUSIONS:
        raise ValueError(f"{who}: unknown fusion {fusion!r}; choose one of {FUSIONS} "
                         f"(accepted older spelling: {', '.join(f'{k!r} = {v!r}' for k, v in FUSION_ALIASES.items())})")
    return name


def require_modalities(batch: SurvivalBatch, model: nn.Module) -> None:
    """Raise a clear error when ``batch`` lacks a modality that ``model.modalities`` names."""
    name = type(model).__name__
    if "wsi" in model.modalities and batch.patches is None:
        raise ValueError(f"{name} needs histology ('wsi') but the batch has no patches; build the "
                         "cohort with slide features (features/<slide_id>.h5) for every patient")
    if "rna" in model.modalities and batch.rna is None:
        raise ValueError(f"{name} needs transcriptomics ('rna') but the batch has no RNA vectors; "
                         "build the cohort with its RNA table and genomic hierarchy")


def flatten_bag(patches: Tensor, patch_mask: Tensor, static: bool = False) -> tuple[Tensor, Tensor]:
    """Flatten region-grouped patches into one bag per patient, real patches first.

    The order of real patches is kept (region by region), padding moves to the end and
    the bag is cut to the largest number of real patches in the batch, so a patient's
    bag is the same tensor whatever the other patients in the batch look like.

    Args:
        patches: ``(B, R, P, F)`` zero-padded patch tokens.
        patch_mask: ``(B, R, P)`` bool, True at real patches.
        static: keep every ``R·P`` position (the model's ``static_shapes``, for CUDA graphs).

    Returns:
        ``x (B, L, F)`` with zeros at padding and ``mask (B, L)``, ``L`` = max real patches.

    >>> p = torch.arange(8.).view(1, 2, 2, 2); m = torch.tensor([[[False, True], [True, False]]])
    >>> x, mask = flatten_bag(p, m)
    >>> x.tolist(), mask.tolist()
    ([[[2.0, 3.0], [4.0, 5.0]]], [[True, True]])
    """
    return compact(patches, patch_mask, static)          # the same algorithm as HIM's


def masked_mean(x: Tensor, mask: Tensor | None) -> Tensor:
    """Mean over dim 1 of ``x: (B, L, D)`` counting only ``mask: (B, L)`` positions -> ``(B, D)``.

    >>> masked_mean(torch.tensor([[[1.], [3.], [100.]]]), torch.tensor([[True, True, False]])).tolist()
    [[2.0]]
    """
    return x.mean(1) if mask is None else _masked_mean(x, mask, dim=1)


class Attention(nn.Module):
    """Multi-head softmax attention with a key mask.

    ``softmax(Q K^T / sqrt(d_head) + log m) V`` with ``Q = W_q x_q``, ``K = W_k x_kv``,
    ``V = W_v x_kv``; keys where ``m = 0`` get zero weight.

    Args:
        dim: token width ``D`` (divisible by ``heads``).
        heads: number of heads.
        dropout: dropout on the attention weights (training only).

    Initialisation (``init``): ``"linear"`` leaves each projection at ``nn.Linear``'s default
    (uniform biases of scale ``1/sqrt(D)``); ``"mha"`` is ``nn.MultiheadAttention``'s: the
    joint in-projection ``[W_q; W_k; W_v]`` (a ``(3D, D)`` matrix) Xavier-uniform, the
    in-projection and output biases zero (``W_o`` keeps ``nn.Linear``'s default). With ``"mha"``
    the layer has no input-independent output at initialisation, which matters when its
    input is small: MOTCat's co-attended tokens have a norm ~1/100 of a patch token's (45 tokens), and
    ``nn.Linear``'s biases then give every token and every patient nearly the same output.

    ``x_q: (B, Lq, D)``, ``x_kv: (B, Lk, D)``, ``key_mask: (B, Lk)`` bool or None -> ``(B, Lq, D)``.

    >>> Attention(8, heads=2)(torch.randn(3, 4, 8), torch.randn(3, 5, 8)).shape
    torch.Size([3, 4, 8])
    >>> float(Attention(8, heads=2, init="mha")(torch.zeros(1, 2, 8), torch.zeros(1, 3, 8)).detach().abs().max())
    0.0
    """

    INITS = ("linear", "mha")

    def __init__(self, dim: int, heads: int = 8, dropout: float = 0.0, init: str = "linear"):
        super().__init__()
        if dim % heads:
            raise ValueError(f"Attention: dim={dim} is not divisible by heads={heads}; choose heads dividing dim")
        if init not in self.INITS:
            raise ValueError(f"Attention: init must be one of {self.INITS}, got {init!r}")
        self.heads, self.dropout = heads, dropout
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        if init == "mha":
            self.reset_like_multihead_attention()

    @torch.no_grad()
    def reset_like_multihead_attention(self) -> None:
        """``nn.MultiheadAttention._reset_parameters``: Xavier-uniform ``[W_q; W_k; W_v]``, zero biases."""
        dim = self.q.in_features
        w_in = nn.init.xavier_uniform_(torch.empty(3 * dim, dim))                 # fans of the (3D, D) matrix
        self.q.weight.copy_(w_in[:dim])
        self.kv.weight.copy_(w_in[dim:])
        for bias in (self.q.bias, self.kv.bias, self.out.bias):
            bias.zero_()

    def forward(self, x_q: Tensor, x_kv: Tensor, key_mask: Tensor | None = None) -> Tensor:
        q = rearrange(self.q(x_q), "b l (h d) -> b h l d", h=self.heads)
        k, v = rearrange(self.kv(x_kv), "b l (two h d) -> two b h l d", two=2, h=self.heads)
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]      # (B, 1, 1, Lk)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(rearrange(o, "b h l d -> b l (h d)"))


class GatedAttentionPool(nn.Module):
    """Gated attention pooling (Ilse, Tomczak & Welling, ICML 2018, Eq. 9).

    For instance embeddings ``h_k`` and each branch ``c``::

        a_ck = softmax_k( w_c^T (tanh(V h_k) * sigmoid(U h_k)) ),    z_c = sum_k a_ck h_k

    Padding instances get zero weight. ``n_branches > 1`` gives the multi-branch
    attention of CLAM-MB (one attention distribution per class). The layers are those of
    ``Attn_Net_Gated`` (mahmoodlab/CLAM ``models/model_clam.py``, mahmoodlab/MCAT
    ``models/model_utils.py``), ``w`` with its bias (which cancels in the softmax).

    Args:
        dim: instance width ``D``.
        hidden: width of the gating layers ``V`` and ``U``.
        n_branches: number of attention branches.
        dropout: dropout after ``tanh`` and ``sigmoid`` (as in CLAM).

    ``h: (B, L, D)``, ``mask: (B, L)`` -> pooled ``(B, n_branches, D)`` and weights ``(B, n_branches, L)``.

    >>> z, a = GatedAttentionPool(4, 3, n_branches=2)(torch.randn(1, 5, 4), torch.ones(1, 5, dtype=torch.bool))
    >>> z.shape, torch.allclose(a.sum(-1), torch.ones(1, 2))
    (torch.Size([1, 2, 4]), True)
    """

    def __init__(self, dim: int, hidden: int, n_branches: int = 1, dropout: float = 0.0):
        super().__init__()
        self.v = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Dropout(dropout))
        self.u = nn.Sequential(nn.Linear(dim, hidden), nn.Sigmoid(), nn.Dropout(dropout))
        self.w = nn.Linear(hidden, n_branches)

    def forward(self, h: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        scores = self.w(self.v(h) * self.u(h)).transpose(1, 2)                   # (B, C, L)
        if mask is not None:
            scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        a = scores.softmax(-1)
        return a @ h, a                                                           # (B, C, D), (B, C, L)


class TransformerLayer(nn.Module):
    """Post-norm transformer encoder layer (Vaswani et al., 2017; MCAT's set encoders).

    ``x <- LN(x + Attn(x, x)); x <- LN(x + FFN(x))`` with a ReLU feed-forward of width ``ff``:
    ``nn.TransformerEncoderLayer(D, heads, ff, dropout, activation="relu")`` of MCAT and
    MOTCat, initialised as it is (the attention as ``nn.MultiheadAttention``, ``init="mha"``;
    the feed-forward and LayerNorm at their defaults, LayerNorm ``eps = 1e-5``).

    ``x: (B, L, D)``, ``mask: (B, L)`` or None -> ``(B, L, D)``.
    """

    def __init__(self, dim: int, heads: int = 8, ff: int | None = None, dropout: float = 0.1):
        super().__init__()
        ff = ff or 2 * dim
        self.attn = Attention(dim, heads, dropout, init="mha")
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ff, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        x = self.norm1(x + self.drop(self.attn(x, x, mask)))
        return self.norm2(x + self.drop(self.ffn(x)))


class KroneckerFusion(nn.Module):
    """Plain Kronecker-product fusion of two embeddings (the core of Pathomic Fusion, Chen et al. 2020).

    A constant 1 is appended to each embedding so that the product keeps the unimodal
    terms, and the flattened outer product is projected::

        z = ReLU(W vec([a; 1] (x) [b; 1]) + c)        ((d_a + 1)(d_b + 1) -> d_out)

    Without the gates of :class:`GatedKroneckerFusion` (which uses this product inside).

    ``a: (B, d_a)``, ``b: (B, d_b)`` -> ``(B, d_out)``.

    >>> fuse = KroneckerFusion(2, 3, 5)
    >>> fuse.fc[0].in_features, fuse(torch.randn(4, 2), torch.randn(4, 3)).shape
    (12, torch.Size([4, 5]))
    """

    def __init__(self, d_a: int, d_b: int, d_out: int, dropout: float = 0.25):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear((d_a + 1) * (d_b + 1), d_out), nn.ReLU(), nn.Dropout(dropout))

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        one = a.new_ones(a.shape[0], 1)
        a1, b1 = torch.cat([a, one], -1), torch.cat([b, one], -1)                 # (B, d_a+1), (B, d_b+1)
        outer = a1.unsqueeze(2) * b1.unsqueeze(1)                                 # (B, d_a+1, d_b+1)
        return self.fc(outer.flatten(1))


class GatedKroneckerFusion(nn.Module):
    """Pathomic Fusion's gated Kronecker fusion (Chen et al., IEEE TMI 2020).

    Follows ``BilinearFusion`` of mahmoodlab/PathomicFusion ``fusion.py`` as the Table 1
    baselines use it (mahmoodlab/MCAT and mahmoodlab/PORPOISE ``models/model_utils.py`` /
    ``models/model_porpoise.py``, ``fusion="bilinear"``: ``skip=0, use_bilinear=0``, both gates
    on, each modality reduced by ``scale_dim = 8``, i.e. 256 -> 32). For modality ``a`` (and
    symmetrically ``b``)::

        h_a = ReLU(W_h a)                          (d_a -> r_a)
        z_a = W_z [a; b]                           (d_a + d_b -> r_a), the gate's score
        o_a = Drop(ReLU(W_o (sigmoid(z_a) * h_a)))  (r_a -> r_a)
        z   = Drop(ReLU(W_2 Drop(ReLU(W_1 Drop(vec([o_a; 1] (x) [o_b; 1]))))))
                                                   ((r_a+1)(r_b+1) -> hidden -> d_out)

    ``gated=False`` drops the gates (``o_a = Drop(ReLU(W_o h_a))``, Pathomic Fusion's
    ``gate1=0``), the plain product of reduced embeddings.

    Args:
        d_a, d_b: input widths.
        r_a, r_b: reduced widths before the product (32 = 256 / 8 in the original).
        d_out: output width (``mmhid``, 256).
        hidden: width after the product (256 in the original).
        dropout: dropout rate (0.25).
        gated: use the gates.

    ``a: (B, d_a)``, ``b: (B, d_b)`` -> ``(B, d_out)``.

    >>> GatedKroneckerFusion(256, 256, 32, 32, 256)(torch.randn(2, 256), torch.randn(2, 256)).shape
    torch.Size([2, 256])
    """

    def __init__(self, d_a: int, d_b: int, r_a: int, r_b: int, d_out: int, hidden: int = 256,
                 dropout: float = 0.25, gated: bool = True):
        super().__init__()
        self.gated = gated
        self.h_a = nn.Sequential(nn.Linear(d_a, r_a), nn.ReLU())
        self.h_b = nn.Sequential(nn.Linear(d_b, r_b), nn.ReLU())
        if gated:
            self.z_a = nn.Linear(d_a + d_b, r_a)
            self.z_b = nn.Linear(d_a + d_b, r_b)
        self.o_a = nn.Sequential(nn.Linear(r_a, r_a), nn.ReLU(), nn.Dropout(dropout))
        self.o_b = nn.Sequential(nn.Linear(r_b, r_b), nn.ReLU(), nn.Dropout(dropout))
        self.post_drop = nn.Dropout(dropout)
        self.encoder1 = nn.Sequential(nn.Linear((r_a + 1) * (r_b + 1), hidden), nn.ReLU(), nn.Dropout(dropout))
        self.encoder2 = nn.Sequential(nn.Linear(hidden, d_out), nn.ReLU(), nn.Dropout(dropout))

    def gates(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        """The gate values ``sigmoid(z_a), sigmoid(z_b)``: ``(B, r_a)``, ``(B, r_b)``."""
        ab = torch.cat([a, b], -1)
        return torch.sigmoid(self.z_a(ab)), torch.sigmoid(self.z_b(ab))

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        h_a, h_b = self.h_a(a), self.h_b(b)                                        # (B, r_a), (B, r_b)
        if self.gated:
            g_a, g_b = self.gates(a, b)
            h_a, h_b = g_a * h_a, g_b * h_b
        one = a.new_ones(a.shape[0], 1)
        o_a = torch.cat([self.o_a(h_a), one], -1)                                  # (B, r_a + 1)
        o_b = torch.cat([self.o_b(h_b), one], -1)                                  # (B, r_b + 1)
        outer = (o_a.unsqueeze(2) * o_b.unsqueeze(1)).flatten(1)                   # (B, (r_a+1)(r_b+1))
        return self.encoder2(self.encoder1(self.post_drop(outer)))


class GroupSNN(nn.Module):
    """One two-block self-normalising network per gene group: RNA vector -> one token per group.

    For group ``f`` with gene index set ``I_f`` (``K_f`` genes)::

        token_f = SNNBlock_f2(SNNBlock_f1(x[I_f]))     (K_f -> hidden -> D; ELU, AlphaDropout)

    the per-signature networks ``sig_networks`` of MCAT and MOTCat (mahmoodlab/MCAT
    ``models/model_coattn.py``, Innse/MOTCat ``models/model_motcat.py``: hidden ``[256, 256]``)
    and the per-pathway networks of SurvPath (mahmoodlab/SurvPath ``models/model_SurvPath.py``,
    ``init_per_path_model``). Unlike :class:`~survmamba_lite.model.encoders.FunctionEncoder`
    (one block, a shared second layer) each group has both layers of its own:
    ``sum_f (K_f H + H + H D + D)`` parameters. The first layer is stored ragged (one row
    per (group, gene) membership), the second as a ``(Fn, H, D)`` tensor; no Python loop.

    Args:
        hierarchy: its functions are the groups.
        dim: token width ``D``.
        hidden: hidden width ``H``.
        dropout: alpha-dropout after each block (0.25).

    ``rna: (B, G)`` -> ``(B, Fn, D)``.

    >>> h = GenomicHierarchy(("a", "b", "c"), ("f1", "f2"), ("one", "two"), ((0, 1), (1, 2)), (0, 0), ("p",))
    >>> net = GroupSNN(h, dim=8, hidden=4)
    >>> net(torch.randn(5, 3)).shape, sum(p.numel() for p in net.parameters()) == 2 * (2 * 4 + 4 + 4 * 8 + 8)
    (torch.Size([5, 2, 8]), True)
    """

    def __init__(self, hierarchy: GenomicHierarchy, dim: int, hidden: int = 256, dropout: float = 0.25):
        super().__init__()
        pair_function, pair_gene, fan_in = ragged_memberships(hierarchy)
        self.register_buffer("pair_function", pair_function, persistent=False)               # (n_member,)
        self.register_buffer("pair_gene", pair_gene, persistent=False)                       # (n_member,)
        n_f = hierarchy.n_functions
        self.w1 = nn.Parameter(torch.randn(len(pair_gene), hidden) / fan_in.sqrt())          # (n_member, H)
        self.b1 = nn.Parameter(torch.zeros(n_f, hidden))                                      # (Fn, H)
        self.w2 = nn.Parameter(torch.randn(n_f, hidden, dim) / math.sqrt(hidden))            # (Fn, H, D)
        self.b2 = nn.Parameter(torch.zeros(n_f, dim))                                         # (Fn, D)
        self.act = nn.ELU()
        self.drop = nn.AlphaDropout(dropout)

    def forward(self, rna: Tensor) -> Tensor:
        contrib = rna[:, self.pair_gene].unsqueeze(-1) * self.w1                   # (B, n_member, H)
        hid = self.b1.expand(rna.shape[0], -1, -1).index_add(1, self.pair_function, contrib)  # (B, Fn, H)
        hid = self.drop(self.act(hid))
        out = torch.einsum("bfh,fhd->bfd", hid, self.w2) + self.b2                 # (B, Fn, D)
        return self.drop(self.act(out))


def process_level_hierarchy(hierarchy: GenomicHierarchy) -> GenomicHierarchy:
    """A hierarchy whose "functions" are the processes: one gene group per process.

    Each process becomes a single group holding the union of its functions' genes
    (in ascending gene order); feeding it to :class:`GroupSNN` or
    :class:`~survmamba_lite.model.encoders.FunctionEncoder` gives one token per process.

    >>> h = GenomicHierarchy(("a", "b", "c"), ("f1", "f2", "f3"), ("1", "2", "3"),
    ...     ((0,), (1, 2), (2,)), (0, 1, 0), ("p", "q"))
    >>> p = process_level_hierarchy(h)
    >>> p.function_ids, p.function_genes, p.n_processes
    (('p', 'q'), ((0, 2), (1, 2)), 2)
    """
    groups = tuple(tuple(sorted({g for f in fs for g in hierarchy.function_genes[f]}))
                   for fs in hierarchy.process_functions)
    return GenomicHierarchy(
        genes=hierarchy.genes,
        function_ids=hierarchy.process_names,
        function_names=hierarchy.process_names,
        function_genes=groups,
        function_process=tuple(range(hierarchy.n_processes)),
        process_names=hierarchy.process_names,
    )


def read_gene_families(path: str | Path) -> dict[str, list[str]]:
    """Gene families from a table laid out as MCAT's ``signatures.csv``: one column per family,
    gene symbols down the column (shorter columns padded with blanks).

    Returns ``{family: [gene, ...]}`` in column order.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"gene-family table {path} not found; give a CSV with one column per family and "
                                "gene symbols down each column (MCAT's datasets_csv_sig/signatures.csv layout)")
    table = pd.read_csv(path, dtype=str)
    families = {str(c): [g.strip() for g in table[c].dropna() if g.strip()] for c in table.columns}
    empty = [c for c, genes in families.items() if not genes]
    if empty:
        raise ValueError(f"{path}: family column(s) {empty} list no genes; remove them or fill them")
    return families


def gene_family_hierarchy(hierarchy: GenomicHierarchy, families: Mapping[str, Sequence[str]]) -> GenomicHierarchy:
    """A hierarchy whose "functions" are gene families: one gene group (token) per family.

    Genes are matched by symbol against ``hierarchy.genes`` (the RNA vector's genes); genes
    of a family absent from the RNA table are skipped, as MCAT does when it intersects the
    signatures with the cohort's columns.

    >>> h = GenomicHierarchy(("TP53", "MYC", "EGFR"), ("f",), ("f",), ((0, 1, 2),), (0,), ("p",))
    >>> gene_family_hierarchy(h, {"Tumor Suppressor Genes": ["TP53", "RB1"], "Oncogenes": ["MYC", "EGFR"]}).function_genes
    ((0,), (1, 2))
    """
    index = {g: i for i, g in enumerate(hierarchy.genes)}
    groups, names = [], []
    for name, genes in families.items():
        members = tuple(sorted({index[g] for g in genes if g in index}))
        if not members:
            raise ValueError(f"gene family {name!r}: none of its {len(genes)} genes is in the cohort's RNA table "
                             f"({hierarchy.n_genes} genes, e.g. {list(hierarchy.genes[:3])}); check the gene symbols")
        groups.append(members)
        names.append(str(name))
    return GenomicHierarchy(genes=hierarchy.genes, function_ids=tuple(names), function_names=tuple(names),
                            function_genes=tuple(groups), function_process=tuple(range(len(names))),
                            process_names=tuple(names))
