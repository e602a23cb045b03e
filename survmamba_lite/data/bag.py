"""The patient bag: the one data contract between the data layer and every model.

Shape letters are those of the package glossary, :mod:`survmamba_lite.shapes` (letter,
meaning, paper symbol): here ``B`` patients, ``R`` regions (the paper's M), ``P`` patches per
region (the paper's N), ``F`` patch-feature width, ``G`` genes, ``Fn`` functions, ``J``
processes, ``K`` functions per process, ``T`` time bins.

A patient is a :class:`PatientBag`: histology tokens as a flat list of patches with
their region index (as stored in ``features/<slide_id>.h5``), and one RNA vector in
the gene order of a :class:`GenomicHierarchy`. :func:`collate_bags` pads a list of
patients into a :class:`SurvivalBatch` with explicit masks, so no model has to guess
which positions are padding.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import Tensor

from survmamba_lite.survival.labels import check_events

__all__ = ["GenomicHierarchy", "PatientBag", "SurvivalBatch", "collate_bags", "group_patches"]


@dataclass(frozen=True)
class GenomicHierarchy:
    """Genes -> genomic functions (KEGG pathways) -> biological processes (KEGG classes).

    The paper's transcriptomic hierarchy (Sec. 3.3): ``G = {S_1..S_J}``, process
    ``S_j = {F_j1..F_jKj}``, each function a set of genes. The RNA vector of every
    patient is ordered as :attr:`genes`; :attr:`function_genes` indexes into it.

    Attributes:
        genes: the ``G`` gene symbols, in the column order of the RNA vector.
        function_ids: ``Fn`` function identifiers (e.g. ``hsa04110``).
        function_names: ``Fn`` human-readable function names.
        function_genes: for each function, the indices (into :attr:`genes`) of its genes.
        function_process: for each function, the index (into :attr:`process_names`) of
            its process.
        process_names: the ``J`` process names.

    >>> h = GenomicHierarchy(genes=("A", "B", "C"), function_ids=("f1", "f2"),
    ...     function_names=("one", "two"), function_genes=((0, 1), (2,)),
    ...     function_process=(0, 0), process_names=("p",))
    >>> h.n_genes, h.n_functions, h.n_processes, h.process_functions
    (3, 2, 1, ((0, 1),))
    """

    genes: tuple[str, ...]
    function_ids: tuple[str, ...]
    function_names: tuple[str, ...]
    function_genes: tuple[tuple[int, ...], ...]
    function_process: tuple[int, ...]
    process_names: tuple[str, ...]

    def __post_init__(self) -> None:
        n_f = len(self.function_ids)
        if not (len(self.function_names) == len(self.function_genes) == len(self.function_process) == n_f):
            raise ValueError(
                "GenomicHierarchy: function_ids, function_names, function_genes and "
                f"function_process must have one entry per function (got {n_f}, "
                f"{len(self.function_names)}, {len(self.function_genes)}, {len(self.function_process)})"
            )
        for fid, idx in zip(self.function_ids, self.function_genes):
            if len(idx) == 0:
                raise ValueError(f"GenomicHierarchy: function {fid!r} has no genes; drop it before building")
            if min(idx) < 0 or max(idx) >= len(self.genes):
                raise ValueError(f"GenomicHierarchy: function {fid!r} indexes a gene outside 0..{len(self.genes) - 1}")
        for fid, p in zip(self.function_ids, self.function_process):
            if not 0 <= p < len(self.process_names):
                raise ValueError(f"GenomicHierarchy: function {fid!r} points to process {p}, "
                                 f"but there are {len(self.process_names)} processes")
        empty = sorted(set(range(len(self.process_names))) - set(self.function_process))
        if empty:
            raise ValueError(f"GenomicHierarchy: processes {[self.process_names[j] for j in empty]} have no function")

    @property
    def n_genes(self) -> int:
        return len(self.genes)

    @property
    def n_functions(self) -> int:
        return len(self.function_ids)

    @property
    def n_processes(self) -> int:
        return len(self.process_names)

    @property
    def process_functions(self) -> tuple[tuple[int, ...], ...]:
        """For each process, the indices of its functions (in function order)."""
        out: list[list[int]] = [[] for _ in self.process_names]
        for f, p in enumerate(self.function_process):
            out[p].append(f)
        return tuple(tuple(x) for x in out)

    def to_dict(self) -> dict:
        return {k: list(map(list, v)) if k == "function_genes" else list(v)
                for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "GenomicHierarchy":
        return cls(
            genes=tuple(d["genes"]),
            function_ids=tuple(d["function_ids"]),
            function_names=tuple(d["function_names"]),
            function_genes=tuple(tuple(int(i) for i in g) for g in d["function_genes"]),
            function_process=tuple(int(p) for p in d["function_process"]),
            process_names=tuple(d["process_names"]),
        )


@dataclass
class PatientBag:
    """One patient, as the data layer hands it to a model.

    Attributes:
        case_id: the patient's id (TCGA case id, e.g. ``TCGA-2F-A9KO``).
        features: ``(n, F)`` histology patch tokens, or ``None`` without a slide.
        region: ``(n,)`` long, region index of each patch (``0..R-1``), or ``None``.
        rna: ``(G,)`` expression in :attr:`GenomicHierarchy.genes` order, or ``None``.
        time: survival or follow-up time in months.
        event: 1 if the death was observed, 0 if censored.
        time_bin: index of the discrete time bin (from a fitted ``TimeBinner``), -1 if unset.
    """

    case_id: str
    features: Tensor | None
    region: Tensor | None
    rna: Tensor | None
    time: float
    event: int
    time_bin: int = -1

    def __post_init__(self) -> None:
        if (self.features is None) != (self.region is None):
            raise ValueError(f"case {self.case_id}: features and region must both be given or both be None")
        if self.features is not None:
            if self.features.ndim != 2 or self.region.shape != self.features.shape[:1]:
                raise ValueError(
                    f"case {self.case_id}: expected features (n, F) and region (n,), got "
                    f"{tuple(self.features.shape)} and {tuple(self.region.shape)}")
            if self.features.shape[0] == 0:
                raise ValueError(f"case {self.case_id}: the slide bag has zero patches; "
                                 "re-tile the slide or drop the case from clinical.csv")
        check_events([self.event], "PatientBag", case_ids=[self.case_id])


@dataclass
class SurvivalBatch:
    """A padded batch of patients.

    Attributes:
        case_id: ``B`` case ids.
        patches: ``(B, R, P, F)`` histology tokens grouped by region, zero padded, or ``None``.
        patch_mask: ``(B, R, P)`` bool, True at real patches, or ``None``.
        rna: ``(B, G)`` expression vectors, or ``None``.
        time: ``(B,)`` float months.
        event: ``(B,)`` float, 1 = death observed.
        time_bin: ``(B,)`` long.
    """

    case_id: list[str]
    patches: Tensor | None
    patch_mask: Tensor | None
    rna: Tensor | None
    time: Tensor
    event: Tensor
    time_bin: Tensor
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.case_id)

    @property
    def region_mask(self) -> Tensor | None:
        """``(B, R)`` bool, True at regions holding at least one real patch."""
        return None if self.patch_mask is None else self.patch_mask.any(-1)

    def to(self, device: torch.device | str) -> "SurvivalBatch":
        def mv(x):
            return None if x is None else x.to(device)
        return SurvivalBatch(self.case_id, mv(self.patches), mv(self.patch_mask), mv(self.rna),
                             mv(self.time), mv(self.event), mv(self.time_bin), dict(self.extra))


def group_patches(features: Tensor, region: Tensor) -> tuple[Tensor, Tensor]:
    """Group one slide's flat patch list by region.

    Args:
        features: ``(n, F)`` patch tokens.
        region: ``(n,)`` region index of each patch; indices need not be contiguous.

    Returns:
        ``patches (R, P, F)`` zero padded and ``mask (R, P)``, regions in ascending index
        order and patches in their original order within each region.

    >>> f = torch.arange(5.).unsqueeze(-1); r = torch.tensor([3, 1, 3, 3, 1])
    >>> p, m = group_patches(f, r)
    >>> p.squeeze(-1).tolist(), m.tolist()
    ([[1.0, 4.0, 0.0], [0.0, 2.0, 3.0]], [[True, True, False], [True, True, True]])
    """
    _, inverse, counts = torch.unique(region, return_inverse=True, return_counts=True)
    n_r, n_p = counts.numel(), int(counts.max())
    order = torch.argsort(inverse, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(region.numel()) - starts[inverse[order]]  # position within region
    patches = features.new_zeros(n_r, n_p, features.shape[-1])
    mask = torch.zeros(n_r, n_p, dtype=torch.bool)
    patches[inverse[order], rank] = features[order]
    mask[inverse[order], rank] = True
    return patches, mask


def collate_bags(bags: Sequence[PatientBag]) -> SurvivalBatch:
    """Pad a list of :class:`PatientBag` into a :class:`SurvivalBatch`.

    Patients may differ in number of regions and patches per region; either all
    patients have a slide or none has, and likewise for RNA.

    >>> b1 = PatientBag("a", torch.ones(3, 2), torch.tensor([0, 0, 1]), torch.ones(4), 10.0, 1, 2)
    >>> b2 = PatientBag("b", torch.ones(1, 2), torch.tensor([0]), torch.zeros(4), 5.0, 0, 1)
    >>> batch = collate_bags([b1, b2])
    >>> tuple(batch.patches.shape), batch.patch_mask.sum().item(), tuple(batch.rna.shape)
    ((2, 2, 2, 2), 4, (2, 4))
    """
    if len(bags) == 0:
        raise ValueError("collate_bags: empty list of patients")
    has_wsi = {b.features is not None for b in bags}
    has_rna = {b.rna is not None for b in bags}
    if len(has_wsi) > 1 or len(has_rna) > 1:
        missing = [b.case_id for b in bags if b.features is None or b.rna is None]
        raise ValueError(f"collate_bags: patients differ in available modalities (cases {missing}); "
                         "filter the cohort so every patient has the modalities the model needs")
    patches = patch_mask = rna = None
    if has_wsi.pop():
        grouped = [group_patches(b.features, b.region) for b in bags]
        n_r = max(p.shape[0] for p, _ in grouped)
        n_p = max(p.shape[1] for p, _ in grouped)
        n_f = grouped[0][0].shape[-1]
        patches = grouped[0][0].new_zeros(len(bags), n_r, n_p, n_f)
        patch_mask = torch.zeros(len(bags), n_r, n_p, dtype=torch.bool)
        for i, (p, m) in enumerate(grouped):
            patches[i, : p.shape[0], : p.shape[1]] = p
            patch_mask[i, : m.shape[0], : m.shape[1]] = m
    if has_rna.pop():
        rna = torch.stack([b.rna for b in bags])
    return SurvivalBatch(
        case_id=[b.case_id for b in bags],
        patches=patches,
        patch_mask=patch_mask,
        rna=rna,
        time=torch.tensor([float(b.time) for b in bags]),
        event=torch.tensor([float(b.event) for b in bags]),
        time_bin=torch.tensor([int(b.time_bin) for b in bags], dtype=torch.long),
    )
