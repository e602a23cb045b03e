"""Shared test helpers: a tiny genomic hierarchy, tiny padded patient batches, the shared
synthetic cohorts, a hand-made cohort for the bad-input catalogue, and the quick flags of a
training command."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pytest
import torch

from survmamba_lite.data.bag import GenomicHierarchy, PatientBag, SurvivalBatch, collate_bags

TINY_WSI_DIM = 6
TINY_BINS = 4
#: the quickest training a command can do: one epoch of fold 0, 8-wide models, one thread, no bars
QUICK = ["--epochs", "1", "--folds", "0", "--dim", "8", "--threads", "1", "--quiet"]
#: the hand-made cohort of :func:`make_handmade_cohort`: cases, folds, feature width, genes
HANDMADE_CASES, HANDMADE_FOLDS, HANDMADE_WIDTH, HANDMADE_GENES = 18, 3, 4, [f"G{i}" for i in range(8)]


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


# --------------------------------------------------------------------------- shared cohorts (read only)
@pytest.fixture(scope="session")
def cohort_dir(tmp_path_factory) -> Path:
    """The tiny synthetic BLCA cohort (seed 0), both modalities, shared by the tests that train on it.
    Tests must not change it: copy it first (``shutil.copytree``)."""
    from survmamba_lite.data.synth import make_synthetic_cohort

    return make_synthetic_cohort("BLCA", "tiny", seed=0, out=tmp_path_factory.mktemp("cohort") / "blca")


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory) -> Path:
    """The tiny synthetic COADREAD cohort (seed 0), both modalities (read only)."""
    from survmamba_lite.data.synth import make_synthetic_cohort

    return make_synthetic_cohort("COADREAD", "tiny", 0, tmp_path_factory.mktemp("synth") / "coadread")


def make_small_rna_cohort(tiny: Path, root: Path) -> Path:
    """The first 100 cases of the cohort ``tiny``, RNA only, its folds restricted to them, in ``root``."""
    from survmamba_lite.data.layout import (load_cohort, read_manifest, write_clinical, write_folds, write_manifest,
                                            write_rna)

    cohort = load_cohort(tiny)
    keep = list(cohort.case_ids[:100])
    root.mkdir(parents=True)
    write_clinical(root, cohort.clinical.loc[keep].assign(slide_id=""))
    write_rna(root, cohort.rna.loc[keep])
    shutil.copy(tiny / "hierarchy.tsv", root / "hierarchy.tsv")
    write_folds(root, [([c for c in tr if c in keep], [c for c in va if c in keep]) for tr, va in cohort.folds])
    manifest = read_manifest(tiny)
    manifest.update(n_cases=len(keep), modalities=["rna"], features=None, name="synthetic-coadread-small")
    write_manifest(root, manifest)
    return root


@pytest.fixture(scope="session")
def small_rna_cohort(tiny_cohort, tmp_path_factory) -> Path:
    """The first 100 cases of :func:`tiny_cohort`, RNA only (the real-data check's shape; read only)."""
    return make_small_rna_cohort(tiny_cohort, tmp_path_factory.mktemp("small") / "coadread-small")


# --------------------------------------------------------------------------- a hand-made cohort
def handmade_slide(case: str) -> str:
    """The slide id of a case of the hand-made cohort."""
    return f"{case}-DX1"


def write_handmade_slide(root: Path, case: str, n_patches: int, width: int = HANDMADE_WIDTH, seed: int = 0) -> None:
    """``features/<slide>.h5`` of ``case``: ``n_patches`` random features of ``width``, in two regions."""
    from survmamba_lite.data.features_h5 import SlideFeatures, write_features_h5

    rng = np.random.default_rng(seed)
    write_features_h5(root / "features" / f"{handmade_slide(case)}.h5", SlideFeatures(
        rng.standard_normal((n_patches, width)).astype(np.float32),
        np.stack([np.arange(n_patches) * 256, np.zeros(n_patches)], 1).astype(np.int64),
        np.arange(n_patches) % 2, dict(slide_id=handmade_slide(case), patch_size=256, region_size=512,
                                       magnification=20.0, encoder="test")))


def make_handmade_cohort(root: Path) -> Path:
    """18 cases, 3 folds, 8 genes in 3 functions of 2 processes, 4-d features of 3-6 patches: every
    file written by hand, so a test can break any one of them."""
    from survmamba_lite.data.kegg import write_hierarchy_tsv
    from survmamba_lite.data.layout import FORMAT_VERSION, write_clinical, write_folds, write_manifest, write_rna

    n, k_folds, genes = HANDMADE_CASES, HANDMADE_FOLDS, HANDMADE_GENES
    rng = np.random.default_rng(0)
    cases = [f"TCGA-T{i:03d}" for i in range(n)]
    clin = pd.DataFrame({"case_id": cases, "slide_id": [handmade_slide(c) for c in cases],
                         "survival_months": np.round(rng.uniform(1, 100, n), 2),
                         "event": [int(i % 4 != 1) for i in range(n)]})
    write_clinical(root, clin)
    write_rna(root, pd.DataFrame(rng.normal(5, 1, (n, len(genes))), index=pd.Index(cases), columns=genes))
    write_hierarchy_tsv(pd.DataFrame({"function_id": ["f1", "f2", "f3"], "function_name": ["a", "b", "c"],
                                      "process": ["P", "P", "Q"], "genes": ["G0,G1,G2", "G2,G3,G4", "G5,G6,G7"]}),
                        root / "hierarchy.tsv")
    write_folds(root, [([c for j, c in enumerate(cases) if j % k_folds != k],
                        [c for j, c in enumerate(cases) if j % k_folds == k]) for k in range(k_folds)])
    for i, c in enumerate(cases):
        write_handmade_slide(root, c, 3 + i % 4, seed=i)
    write_manifest(root, {"format_version": FORMAT_VERSION, "name": "tiny-test", "cohort": "TEST", "source": "test",
                          "n_cases": n, "n_folds": k_folds, "modalities": ["wsi", "rna"],
                          "features": {"encoder": "test", "width": HANDMADE_WIDTH}, "rna": {"n_genes": len(genes)},
                          "hierarchy": {"min_genes": 1}})
    return root
