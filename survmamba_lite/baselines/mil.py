"""Attention-based multiple-instance learning over all patches of a slide: ABMIL and CLAM.

Both read the slide as one flat bag (regions flattened, padding masked) and pool it with
the gated attention of Ilse et al.; they differ in what follows the pooling.

* :class:`ABMIL` — Ilse, Tomczak & Welling, "Attention-based deep multiple instance
  learning", ICML 2018: ``Linear(F, D) -> ReLU`` instance embedding, gated attention
  pooling, a ``Linear(D, D) -> ReLU`` bag layer and the survival classifier ``D -> T``
  (the survival form used by PORPOISE/MCAT's "AMIL", mahmoodlab/PORPOISE
  ``models/model_porpoise.py``).
* :class:`CLAMSB` / :class:`CLAMMB` — Lu et al., "Data-efficient and weakly supervised
  computational pathology on whole-slide images", Nature BME 2021: the same gated
  attention, single-branch (SB: one attention map, one bag classifier) or
  multi-branch (MB: one attention map and one ``D -> 1`` classifier per class; here
  the classes are the ``T`` time bins), plus the instance-level clustering loss
  (:meth:`CLAMSB.forward_train`), weighted ``0.7 * bag + 0.3 * instance`` as in CLAM.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from survmamba_lite.baselines.common import GatedAttentionPool, flatten_bag, require_modalities
from survmamba_lite.data.bag import SurvivalBatch

__all__ = ["ABMILEncoder", "ABMIL", "CLAMEncoder", "CLAMSB", "CLAMMB"]


class ABMILEncoder(nn.Module):
    """Slide bag -> bag embedding with gated attention (Ilse et al., 2018).

    ``h_k = ReLU(W x_k)``; ``z = sum_k a_k h_k`` (gated attention); ``e = ReLU(W_rho z)``.

    Args:
        wsi_dim: patch-feature width ``F``.
        dim: model width ``D``.
        dropout: dropout after the instance and bag layers.

    ``x: (B, L, F)``, ``mask: (B, L)`` -> ``(B, D)``.
    """

    def __init__(self, wsi_dim: int, dim: int, dropout: float = 0.25):
        super().__init__()
        self.out_dim = dim
        self.instance = nn.Sequential(nn.Linear(wsi_dim, dim), nn.ReLU(), nn.Dropout(dropout))
        self.pool = GatedAttentionPool(dim, dim // 2, n_branches=1, dropout=dropout)
        self.rho = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        z, _ = self.pool(self.instance(x), mask)                                  # (B, 1, D)
        return self.rho(z[:, 0])


class ABMIL(nn.Module):
    """ABMIL survival model (histology only): :class:`ABMILEncoder` then ``Linear(D, T)``.

    Args:
        n_bins: number of time bins ``T``.
        wsi_dim: patch-feature width ``F``.
        dim: model width ``D`` (512 in the paper's setting).
        dropout: dropout rate.

    ``forward(batch)`` -> hazard logits ``(B, T)``.
    """

    modalities = ("wsi",)
    static_shapes = False            # set by model.him.static_shapes (CUDA graphs)

    def __init__(self, n_bins: int, wsi_dim: int, dim: int = 512, dropout: float = 0.25):
        super().__init__()
        self.encoder = ABMILEncoder(wsi_dim, dim, dropout)
        self.head = nn.Linear(dim, n_bins)

    def forward(self, batch: SurvivalBatch) -> Tensor:
        require_modalities(batch, self)
        return self.head(self.encoder(*flatten_bag(batch.patches, batch.patch_mask, self.static_shapes)))


class CLAMEncoder(nn.Module):
    """CLAM's attention network: ``Linear(F, D) -> ReLU`` then gated attention with ``C`` branches
    (1, or ``T`` for CLAM-MB: one per time bin).

    ``x: (B, L, F)``, ``mask: (B, L)`` -> instance embeddings ``h (B, L, D)``, pooled
    ``(B, C, D)`` and attention ``(B, C, L)`` (``C`` = 1 or ``T``). :attr:`out_dim` is ``C * D`` (the branches
    concatenated, the bag embedding handed to late fusion).
    """

    def __init__(self, wsi_dim: int, dim: int, n_branches: int, dropout: float = 0.25):
        super().__init__()
        self.out_dim = n_branches * dim
        self.instance = nn.Sequential(nn.Linear(wsi_dim, dim), nn.ReLU(), nn.Dropout(dropout))
        self.pool = GatedAttentionPool(dim, dim // 2, n_branches=n_branches, dropout=dropout)

    def attend(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h = self.instance(x)
        z, a = self.pool(h, mask)
        return h, z, a

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return self.attend(x, mask)[1].flatten(1)                                 # (B, C*D)


class CLAMSB(nn.Module):
    """CLAM, single attention branch (Lu et al., 2021), as a survival model.

    Follows ``CLAM_SB`` (mahmoodlab/CLAM ``models/model_clam.py``: ``F -> 512`` instance
    layer, ``Attn_Net_Gated(512, 256)``, bag classifier ``Linear(512, T)``, one
    ``Linear(512, 2)`` instance classifier per class) and its training loss
    (``train_loop_clam`` in ``utils/core_utils.py``)::

        loss = bag_weight * L_bag + (1 - bag_weight) * L_instance       (bag_weight = 0.7)

    with ``L_bag`` the survival NLL here. Both terms come from **one** forward pass:
    :meth:`forward_train` returns the bag logits and ``(1 - bag_weight) * L_instance`` computed
    from the same instance embeddings and attention, and the training step multiplies the
    survival loss by :attr:`survival_loss_weight` (``= bag_weight``) and adds it (the
    auxiliary-loss hook that the model's :class:`~survmamba_lite.registry.ModelSpec` declares,
    :class:`~survmamba_lite.registry.AuxiliaryLossModel`). :meth:`forward` gives the logits alone.

    Instance-level clustering (CLAM's ``inst_eval``, not subtyping): the class ``y`` of a bag
    has an instance classifier ``Linear(D, 2)``; the ``k`` patches with the highest attention
    (of the branch belonging to ``y``) are pseudo-labelled positive and the ``k`` lowest
    negative, and the classifier of ``y`` is trained on them with cross-entropy. For
    survival the class of a patient is its time bin, which is only the true class when the
    death was observed, so only patients with ``event = 1`` contribute (CLAM has no
    censoring); the instance loss is zero for a batch without an observed death.

    Args:
        n_bins: number of time bins ``T`` (the classes).
        wsi_dim: patch-feature width ``F``.
        dim: model width ``D`` (512 in CLAM's "small" size).
        dropout: dropout rate.
        k_sample: patches per pseudo-label (8 in CLAM; reduced to half the bag for small bags).
        bag_weight: weight of the bag (survival) loss; the instance loss gets ``1 - bag_weight``.
    """

    modalities = ("wsi",)
    n_branches_per_class = False

    def __init__(self, n_bins: int, wsi_dim: int, dim: int = 512, dropout: float = 0.25,
                 k_sample: int = 8, bag_weight: float = 0.7):
        super().__init__()
        if not 0.0 <= bag_weight <= 1.0:
            raise ValueError(f"{type(self).__name__}: bag_weight must lie in [0, 1], got {bag_weight}")
        self.k_sample, self.bag_weight = k_sample, bag_weight
        self.encoder = CLAMEncoder(wsi_dim, dim, n_bins if self.n_branches_per_class else 1, dropout)
        self.instance_classifiers = nn.ModuleList(nn.Linear(dim, 2) for _ in range(n_bins))
        self._build_head(n_bins, dim)

    @property
    def survival_loss_weight(self) -> float:
        """Weight of the survival (bag) loss in training: CLAM's ``bag_weight``."""
        return self.bag_weight

    def _build_head(self, n_bins: int, dim: int) -> None:
        self.head = nn.Linear(dim, n_bins)

    def _bag_logits(self, z: Tensor) -> Tensor:
        return self.head(z[:, 0])                                                 # (B, T)

    def forward(self, batch: SurvivalBatch) -> Tensor:
        """Hazard logits ``(B, T)``."""
        require_modalities(batch, self)
        _, z, _ = self.encoder.attend(*flatten_bag(batch.patches, batch.patch_mask))
        return self._bag_logits(z)

    def forward_train(self, batch: SurvivalBatch) -> tuple[Tensor, Tensor]:
        """Hazard logits ``(B, T)`` and the auxiliary loss ``(1 - bag_weight) * instance_loss``
        (a scalar) of the same forward pass; the training loss adds the latter to
        ``bag_weight * NLL(logits)``."""
        require_modalities(batch, self)
        x, mask = flatten_bag(batch.patches, batch.patch_mask)
        h, z, a = self.encoder.attend(x, mask)                                    # (B,L,D), (B,C,D), (B,C,L)
        instance = self._instance_loss(batch, h, a, mask)
        return self._bag_logits(z), (1.0 - self.bag_weight) * instance

    def _instance_loss(self, batch: SurvivalBatch, h: Tensor, a: Tensor, mask: Tensor) -> Tensor:
        losses = []
        for i in torch.nonzero(batch.event > 0).flatten().tolist():
            y = int(batch.time_bin[i])
            if not 0 <= y < len(self.instance_classifiers):
                raise ValueError(f"CLAM instance loss: case {batch.case_id[i]} has time_bin {y}; "
                                 "fit a TimeBinner and set time_bin before training")
            n = int(mask[i].sum())
            k = min(self.k_sample, n // 2)
            if k == 0:
                continue
            branch = y if self.n_branches_per_class else 0
            order = torch.argsort(a[i, branch, :n], descending=True)
            picked = torch.cat([order[:k], order[-k:]])                           # top-k then bottom-k
            target = torch.cat([torch.ones(k), torch.zeros(k)]).long().to(h.device)
            losses.append(F.cross_entropy(self.instance_classifiers[y](h[i, picked]), target))
        if not losses:
            return h.sum() * 0.0
        return torch.stack(losses).mean()

    def instance_loss(self, batch: SurvivalBatch) -> Tensor:
        """Unweighted mean instance-clustering loss over patients with an observed death, from
        a forward pass of the encoder (inspection; training reads it from :meth:`forward_train`)."""
        require_modalities(batch, self)
        x, mask = flatten_bag(batch.patches, batch.patch_mask)
        h, _, a = self.encoder.attend(x, mask)
        return self._instance_loss(batch, h, a, mask)


class CLAMMB(CLAMSB):
    """CLAM, multiple attention branches (Lu et al., 2021), as a survival model.

    One gated-attention branch per class (time bin ``t``) pools its own embedding
    ``z_t``, and a per-class ``D -> 1`` classifier gives logit ``t = w_t . z_t + b_t``.
    The instance loss uses the attention of the true class's branch. Follows ``CLAM_MB`` in
    mahmoodlab/CLAM ``models/model_clam.py``. Arguments as :class:`CLAMSB`.
    """

    n_branches_per_class = True

    def _build_head(self, n_bins: int, dim: int) -> None:
        self.head_weight = nn.Parameter(torch.randn(n_bins, dim) / dim ** 0.5)
        self.head_bias = nn.Parameter(torch.zeros(n_bins))

    def _bag_logits(self, z: Tensor) -> Tensor:
        return (z * self.head_weight).sum(-1) + self.head_bias                    # (B, T)
