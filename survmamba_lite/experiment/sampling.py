"""Seeded draws of a run: every random number comes from ``(seed, fold, epoch, ...)``.

:func:`derive_seed` turns integer keys into a seed (a run's folds, epochs and their patient
orders, patch subsets and dropout; see :mod:`~survmamba_lite.experiment.trainer`), so a
resumed or relocated job draws what an uninterrupted one would. :func:`subsample_bag` is the
reference draw of a patient's patch subset (``max_patches``), which the in-memory batch
builder (:mod:`~survmamba_lite.experiment.datapath`) reproduces exactly.
"""
from __future__ import annotations

import zlib

import numpy as np
import torch

from survmamba_lite.data.bag import PatientBag

__all__ = ["derive_seed", "case_generator", "subsample_bag", "bags_as_list"]


def derive_seed(*keys: int) -> int:
    """A 32-bit seed derived from integer keys (``numpy.random.SeedSequence``).

    >>> derive_seed(0, 1) == derive_seed(0, 1) != derive_seed(0, 2)
    True
    """
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


def case_generator(seed: int, case_id: str) -> torch.Generator:
    """The generator of one case's fixed draws (its evaluation patch subset): seeded by ``seed``
    and the case id, so a case gets the same subset in every epoch, fold and process.

    >>> int(torch.randint(100, (1,), generator=case_generator(0, "TCGA-A"))) == int(
    ...     torch.randint(100, (1,), generator=case_generator(0, "TCGA-A")))
    True
    """
    return torch.Generator().manual_seed(derive_seed(seed, zlib.crc32(case_id.encode("utf-8"))))


def subsample_bag(bag: PatientBag, max_patches: int | None, generator: torch.Generator) -> PatientBag:
    """At most ``max_patches`` patches of ``bag``, drawn without replacement, kept in slide order.

    >>> bag = PatientBag("c", torch.arange(10.).unsqueeze(1), torch.arange(10) // 5, None, 1.0, 1)
    >>> small = subsample_bag(bag, 4, torch.Generator().manual_seed(0))
    >>> small.features.shape, bool((small.features.squeeze(1).diff() > 0).all())
    (torch.Size([4, 1]), True)
    """
    if max_patches is None or bag.features is None or bag.features.shape[0] <= max_patches:
        return bag
    keep = torch.randperm(bag.features.shape[0], generator=generator)[:max_patches].sort().values
    return PatientBag(bag.case_id, bag.features[keep], bag.region[keep], bag.rna, bag.time, bag.event, bag.time_bin)


def bags_as_list(bags: list[PatientBag]) -> list[PatientBag]:
    """A DataLoader's ``collate_fn`` that keeps the bags as they are (they are collated after subsampling)."""
    return bags
