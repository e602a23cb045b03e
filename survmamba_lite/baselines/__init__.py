"""The baselines of the paper's Table 1, written from their original papers.

Shape letters: the package glossary, :mod:`survmamba_lite.shapes`.

=================  ==========  =============================================================
registry name      modalities  model
=================  ==========  =============================================================
snn                rna         :class:`SNN` (Klambauer et al., 2017; MCAT/PORPOISE's 4 x 256)
snntrans           rna         :class:`SNNTrans` (per-function SNN tokens + TransMIL)
abmil              wsi         :class:`ABMIL` (Ilse et al., 2018)
clam-sb, clam-mb   wsi         :class:`CLAMSB`, :class:`CLAMMB` (Lu et al., 2021)
transmil           wsi         :class:`TransMIL` (Shao et al., 2021)
*-cat, *-kp        wsi, rna    :class:`ABMILFusion`, :class:`CLAMMBFusion`,
                               :class:`TransMILFusion` (late fusion, concat / Kronecker)
mcat               wsi, rna    :class:`MCAT` (Chen et al., 2021)
motcat             wsi, rna    :class:`MOTCat` (Xu & Chen, 2023)
survpath           wsi, rna    :class:`SurvPath` (Jaume et al., 2024)
=================  ==========  =============================================================

Every model maps a :class:`~survmamba_lite.data.SurvivalBatch` to hazard logits
``(B, T)``, declares the ``modalities`` it reads, and gives a patient the same output
alone or in a padded batch. Importing this package registers them (:func:`model_specs`, in
Table 1 order); build them by name with :func:`survmamba_lite.registry.build_model`.
"""
from __future__ import annotations

from survmamba_lite.baselines.coattention import MCAT, MOTCat, sinkhorn_log
from survmamba_lite.baselines.fusion import ABMILFusion, CLAMMBFusion, LateFusion, TransMILFusion
from survmamba_lite.baselines.genomic import SNN, SNNTrans
from survmamba_lite.baselines.mil import ABMIL, CLAMMB, CLAMSB
from survmamba_lite.baselines.survpath import SurvPath
from survmamba_lite.baselines.transmil import TransMIL
from survmamba_lite.registry import ModelSpec, factory_from_class, register_model

__all__ = ["SNN", "SNNTrans", "ABMIL", "CLAMSB", "CLAMMB", "TransMIL", "LateFusion", "ABMILFusion",
           "CLAMMBFusion", "TransMILFusion", "MCAT", "MOTCat", "SurvPath", "sinkhorn_log", "model_specs"]

_SNN = "Klambauer et al., Self-normalizing neural networks, NeurIPS 2017"
_ABMIL = "Ilse, Tomczak & Welling, Attention-based deep multiple instance learning, ICML 2018"
_CLAM = ("Lu et al., Data-efficient and weakly supervised computational pathology on whole-slide images, "
         "Nature Biomedical Engineering 2021")
_TRANSMIL = ("Shao et al., TransMIL: Transformer based correlated multiple instance learning for whole slide "
             "image classification, NeurIPS 2021")
_KP = ("Chen et al., Pathomic fusion: an integrated framework for fusing histopathology and genomic features "
       "for cancer diagnosis and prognosis, IEEE TMI 2020")

_CLAM_GRAPHS = ("its instance-clustering loss picks the classifier and the patients on the host from each "
                "patient's time bin and event, so one step's kernels depend on the labels")
_CLAM_INSTANCE = "0.3 x the instance-clustering loss of the same forward pass, the NLL weighted 0.7 (CLAM's bag_weight)"


def _late(mil_name: str, mil_ref: str, cls, fusion: str) -> ModelSpec:
    label = {"cat": "Cat", "kp": "KP"}[fusion]
    how = ("concatenation" if fusion == "cat"
           else "Pathomic Fusion's gated Kronecker product (each gated by the other, reduced, a 1 appended)")
    reference = f"{mil_ref}; {_SNN}" + ("" if fusion == "cat" else f"; {_KP}")
    return ModelSpec(
        f"{mil_name.lower()}-{fusion}", ("wsi", "rna"), factory_from_class(cls, fusion=fusion),
        f"{mil_name} slide embedding and SNN RNA embedding fused by {how}", reference,
        f"{mil_name} ({label})")


_SPECS = (
    ModelSpec("snn", ("rna",), factory_from_class(SNN),
              "self-normalising network on the concatenated RNA vector (4 x 256 ELU blocks, as in MCAT/PORPOISE)",
              _SNN, "SNN"),
    ModelSpec("snntrans", ("rna",), factory_from_class(SNNTrans),
              "per-function SNN tokens, then TransMIL over the function tokens", f"{_SNN}; {_TRANSMIL}",
              "SNNTrans"),
    ModelSpec("abmil", ("wsi",), factory_from_class(ABMIL),
              "gated-attention MIL pooling over all patches", _ABMIL, "ABMIL"),
    ModelSpec("clam-sb", ("wsi",), factory_from_class(CLAMSB),
              "CLAM, single attention branch; loss 0.7 bag + 0.3 instance clustering, one forward pass", _CLAM,
              "CLAM-SB", no_cuda_graphs=_CLAM_GRAPHS, auxiliary_loss=_CLAM_INSTANCE),
    ModelSpec("clam-mb", ("wsi",), factory_from_class(CLAMMB),
              "CLAM, one attention branch and classifier per time bin, with instance clustering loss",
              _CLAM, "CLAM-MB", no_cuda_graphs=_CLAM_GRAPHS, auxiliary_loss=_CLAM_INSTANCE),
    ModelSpec("transmil", ("wsi",), factory_from_class(TransMIL),
              "TransMIL: squared bag, class token, two Nystrom attention layers and the PPEG position encoding",
              _TRANSMIL, "TransMIL"),
    _late("ABMIL", _ABMIL, ABMILFusion, "cat"),
    _late("ABMIL", _ABMIL, ABMILFusion, "kp"),
    _late("CLAM-MB", _CLAM, CLAMMBFusion, "cat"),
    _late("CLAM-MB", _CLAM, CLAMMBFusion, "kp"),
    _late("TransMIL", _TRANSMIL, TransMILFusion, "cat"),
    _late("TransMIL", _TRANSMIL, TransMILFusion, "kp"),
    ModelSpec("mcat", ("wsi", "rna"), factory_from_class(MCAT),
              "genomic-guided co-attention over patches, per-modality transformers, attention pooling",
              "Chen et al., Multimodal co-attention transformer for survival prediction in gigapixel whole "
              "slide images, ICCV 2021", "MCAT"),
    ModelSpec("motcat", ("wsi", "rna"), factory_from_class(MOTCat),
              "MCAT with the co-attention replaced by an (unbalanced) entropic optimal-transport plan",
              "Xu & Chen, Multimodal optimal transport-based co-attention transformer with global structure "
              "consistency for survival prediction, ICCV 2023", "MOTCat"),
    ModelSpec("survpath", ("wsi", "rna"), factory_from_class(SurvPath),
              "pathway and patch tokens in one attention layer without patch-to-patch attention or residuals",
              "Jaume et al., Modeling dense multimodal interactions between biological pathways and histology "
              "for survival prediction, CVPR 2024", "SurvPath"),
)


def model_specs() -> list[ModelSpec]:
    """The baselines' registry entries, in the row order of Table 1."""
    return list(_SPECS)


for _spec in model_specs():           # importing this package registers the baselines, in Table 1 order
    register_model(_spec)
