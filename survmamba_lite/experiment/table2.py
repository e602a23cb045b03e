"""The Table 2 measurement harness: one synthetic patient, one training step, per model.

Used by the report (``survmamba report --complexity``, :func:`complexity_table`) and by
``benchmarks/complexity.py`` (the patch-count grid, precisions, CUDA graphs), so both
measure the same thing:

* **input** (:func:`synthetic_patient`, :func:`synthetic_genes`): one patient with
  ``n_patches`` patch tokens of width ``F`` spread round-robin over ``n_regions`` regions and
  a transcriptome of a synthetic KEGG-shaped hierarchy (``paper``: 1,577 genes, 352
  functions, 45 processes), all drawn from ``torch.Generator().manual_seed(seed)``;
* **model**: built from the registry after ``torch.manual_seed(0)``;
* **training step**: the trainer's own :class:`~survmamba_lite.experiment.step.TrainStep`:
  forward under the precision's autocast, the model's *full* training loss in float32
  (:func:`~survmamba_lite.experiment.step.training_loss`: the NLL plus the auxiliary term
  its ModelSpec declares, e.g. CLAM's 0.7 x NLL + 0.3 x instance loss), backward and a
  RAdam step (lr 2e-4, weight decay 5e-3, as in training; ``optimizer=False`` leaves the
  step out);
* **numbers** (:func:`~survmamba_lite.experiment.complexity.measure_complexity`): parameters,
  forward FLOPs (matmul + analytic scan, of the pass training runs), the median step time
  after one warm-up step, peak CUDA memory.

>>> inputs, batch = complexity_inputs(ComplexitySizes(patches=8, regions=2, wsi_dim=4, genes_scale="tiny"), "cpu")
>>> tuple(batch.patches.shape), inputs.n_bins
((1, 2, 4, 4), 4)
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import pandas as pd
import torch

from survmamba_lite.data.bag import GenomicHierarchy, PatientBag, SurvivalBatch, collate_bags
from survmamba_lite.experiment.complexity import Complexity, count_flops, measure_complexity
from survmamba_lite.experiment.step import EagerTrainStep, GraphedTrainStep, build_optimizer
from survmamba_lite.registry import ModelInputs, build_model, get_model_spec
from survmamba_lite.utils.device import resolve_device

__all__ = ["ComplexitySizes", "synthetic_genes", "synthetic_patient", "complexity_inputs", "measure_model",
           "complexity_table"]


@dataclass(frozen=True)
class ComplexitySizes:
    """The stated input of the complexity table.

    Attributes:
        patches: patch tokens of the one patient (paper setting: 4096).
        regions: regions they are spread over (a 4096 px region holds 16 x 16 = 256 patches,
            so 4096 patches = 16 full regions).
        wsi_dim: patch-feature width ``F`` (CTransPath: 768).
        genes_scale: synthetic KEGG-shaped hierarchy (``paper``: 1,577 genes, 352
            functions, 45 processes; ``course``; ``tiny``).
        n_bins: time bins ``T``.
        repeats: timed training steps (median reported).
    """

    patches: int = 4096
    regions: int = 16
    wsi_dim: int = 768
    genes_scale: str = "paper"
    n_bins: int = 4
    repeats: int = 3


def synthetic_genes(scale: str = "paper", seed: int = 0) -> GenomicHierarchy:
    """The genomic hierarchy of a synthetic KEGG-shaped table (:data:`~survmamba_lite.data.synth.SCALES`)."""
    from survmamba_lite.data.kegg import build_genomic_hierarchy
    from survmamba_lite.data.synth import SCALES, synthetic_hierarchy

    if scale not in SCALES:
        raise ValueError(f"genes_scale must be one of {list(SCALES)}, got {scale!r}")
    table, genes, _ = synthetic_hierarchy(SCALES[scale], seed)
    return build_genomic_hierarchy(table, genes)[0]


def synthetic_patient(n_patches: int, n_regions: int, wsi_dim: int, n_genes: int, device: Any = "cpu",
                      seed: int = 0) -> SurvivalBatch:
    """A batch of one patient: ``n_patches`` patches of width ``F`` in ``n_regions`` regions (patch ``p``
    in region ``p mod n_regions``; ``patches: (1, R, P, F)`` padded), ``rna: (1, n_genes)``, a death in bin 1."""
    g = torch.Generator().manual_seed(seed)
    region = torch.arange(n_patches) % n_regions
    bag = PatientBag("complexity", torch.randn(n_patches, wsi_dim, generator=g), region,
                     torch.randn(n_genes, generator=g), time=10.0, event=1, time_bin=1)
    return collate_bags([bag]).to(device)


def complexity_inputs(sizes: ComplexitySizes, device: Any) -> tuple[ModelInputs, SurvivalBatch]:
    """:class:`ModelInputs` and the one-patient batch of ``sizes``."""
    hierarchy = synthetic_genes(sizes.genes_scale)
    batch = synthetic_patient(sizes.patches, sizes.regions, sizes.wsi_dim, hierarchy.n_genes, device)
    return ModelInputs(n_bins=sizes.n_bins, wsi_dim=sizes.wsi_dim, hierarchy=hierarchy), batch


def measure_model(name: str, options: dict, inputs: ModelInputs, batch: SurvivalBatch, *, repeats: int = 3,
                  precision: str = "fp32", optimizer: bool = True, cuda_graphs: bool = False, profile: bool = False,
                  flops: dict[str, int] | None = None, slow_seconds: float | None = None) -> Complexity:
    """Build registry model ``name`` with ``options`` and measure its training step on ``batch``.

    Args:
        repeats: timed steps after the warm-up step.
        precision: ``fp32``, ``tf32`` or ``bf16``.
        optimizer: include the RAdam step (always included with ``cuda_graphs``, which replays it).
        cuda_graphs: replay the step from a CUDA graph
            (:class:`~survmamba_lite.experiment.step.GraphedTrainStep`).
        profile: on CUDA, the GPU-busy fraction and kernel count of one more step.
        flops: precomputed :func:`~survmamba_lite.experiment.complexity.count_flops` of this model and batch.
        slow_seconds: when given, one untimed step first; a model whose first step takes
            longer is timed once instead of ``repeats`` times.
    """
    device = batch.time_bin.device
    torch.manual_seed(0)
    model = build_model(name, inputs, **options).to(device)
    auxiliary = get_model_spec(name).auxiliary_loss is not None     # the trainer's loss: NLL + auxiliary term
    flops = flops or count_flops(model, batch, forward=model.forward_train if auxiliary else None)
    opt = (build_optimizer("radam", model.parameters(), capturable=cuda_graphs, lr=2e-4, weight_decay=5e-3)
           if optimizer or cuda_graphs else None)
    kind = GraphedTrainStep if cuda_graphs else EagerTrainStep
    step = kind(model, opt, alpha=0.0, precision=precision, auxiliary=auxiliary, check_labels=False)
    if slow_seconds is not None:
        t0 = time.perf_counter()
        measure_complexity(model, batch, repeats=0, flops=flops, step=step)
        if time.perf_counter() - t0 > slow_seconds:
            repeats = 1
    return measure_complexity(model, batch, repeats=repeats, profile=profile, flops=flops, step=step)


def complexity_table(models: Sequence[tuple[str, str, dict]], sizes: ComplexitySizes = ComplexitySizes(),
                     device: str = "auto") -> pd.DataFrame:
    """Table 2 for ``models`` = ``[(label, registry name, options), ...]`` on one synthetic patient.

    Columns: label, model, params, FLOPs (forward; matmul + analytic scan), training step
    seconds (median; forward, full training loss, backward, RAdam step), peak CUDA memory in
    MiB (blank on CPU), device and the input sizes.
    """
    dev = resolve_device(device)
    inputs, batch = complexity_inputs(sizes, dev)
    rows = []
    for label, name, options in models:
        c = measure_model(name, options, inputs, batch, repeats=sizes.repeats)
        rows.append({"label": label, "model": name, "params": c.params, "flops": c.flops,
                     "flops_matmul": c.flops_matmul, "flops_scan": c.flops_scan, "step_seconds": c.step_seconds,
                     "peak_memory_mib": None if c.peak_memory_bytes is None else c.peak_memory_bytes / 2 ** 20,
                     "device": c.device, "patches": sizes.patches, "regions": sizes.regions,
                     "wsi_dim": sizes.wsi_dim, "n_genes": inputs.hierarchy.n_genes})
    return pd.DataFrame(rows)
