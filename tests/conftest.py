"""Shared test helpers: a tiny genomic hierarchy and tiny padded patient batches."""
from __future__ import annotations

import os
from typing import Sequence

import pytest
import torch

from survmamba_lite.data.bag import GenomicHierarchy, PatientBag, SurvivalBatch, collate_bags

TINY_WSI_DIM = 6
TINY_BINS = 4


def pytest_configure(config):
    """One torch thread per xdist worker: ``-n 2`` on 2 cores runs two single-threaded workers
    instead of two workers each spawning a thread per core (oversubscription slows both)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


def build_tiny_hierarchy() -> GenomicHierarchy:
    """12 genes, 5 functions of different sizes (overlapping), 2 processes (3 + 2 functions)."""
    return GenomicHierarchy(
        genes=tuple(f"g{i}" for i in range(12)),
        function_ids=tuple(f"hsa{i:05d}" for i in range(5)),
        function_names=("cell cycle", "apoptosis", "p53 signalling", "glycolysis", "TCA cycle"),
        function_genes=((0, 1, 2), (2, 3, 4, 5), (5, 6), (7, 8, 9, 10), (10, 11)),
        function_process=(0, 0, 0, 1, 1),
        process_names=("cellular processes", "metabolism"),
    )


def build_tiny_bags(shapes: Sequence[tuple[int, int]], *, n_genes: int = 12, wsi_dim: int = TINY_WSI_DIM,
                    seed: int = 0, rna: bool = True, wsi: bool = True) -> list[PatientBag]:
    """One patient per ``(regions, patches)`` pair: ``patches`` patches spread over ``regions``
    regions (region ids shuffled and non-contiguous), random features and RNA, alternating events."""
    g = torch.Generator().manual_seed(seed)
    bags = []
    for i, (n_regions, n_patches) in enumerate(shapes):
        region_ids = torch.randperm(3 * n_regions, generator=g)[:n_regions]
        region = region_ids[torch.arange(n_patches) % n_regions]
        region = region[torch.randperm(n_patches, generator=g)]
        bags.append(PatientBag(
            case_id=f"TCGA-XX-{i:04d}",
            features=torch.randn(n_patches, wsi_dim, generator=g) if wsi else None,
            region=region if wsi else None,
            rna=torch.randn(n_genes, generator=g) if rna else None,
            time=float(5 + 7 * i), event=(i + 1) % 2, time_bin=i % TINY_BINS))
    return bags


@pytest.fixture
def tiny_hierarchy() -> GenomicHierarchy:
    return build_tiny_hierarchy()


@pytest.fixture
def tiny_batch() -> SurvivalBatch:
    """B=2 patients with both modalities: 3 regions / 11 patches and 2 regions / 4 patches."""
    return collate_bags(build_tiny_bags([(3, 11), (2, 4)]))
