r"""The fast data path of training: patient features read once, batches built on the device.

The reference path of the data layer reads a patient's slides from
``features/<slide_id>.h5`` at every access (:class:`~survmamba_lite.data.CohortDataset`),
groups the patches by region on the host (:func:`~survmamba_lite.data.bag.collate_bags`)
and copies the padded batch to the device. At paper scale a patient holds ~3,500 patches
of 768 floats (10 MB), so every step paid for a disk read, a host-side scatter and a
10 MB copy, and the GPU waited.

Here:

* :class:`FeatureStore` reads **every slide of a cohort once per process** into one
  ``(n_patches, F)`` tensor: on the GPU when it fits (``placement="auto"``: at most
  ``gpu_fraction`` of the free GPU memory), else in pinned host memory (plain host
  memory on a CPU-only machine). Cohorts that fit in neither train through the reference
  path (``features="disk"`` of :func:`~survmamba_lite.experiment.trainer.train_fold`:
  lazy reads in DataLoader workers). :func:`feature_store` caches the last cohort's store per process,
  so the folds and models of a cohort that one worker process trains share it.
* :class:`BatchBuilder` builds a :class:`~survmamba_lite.data.bag.SurvivalBatch`
  directly on the device for a list of a fold dataset's patients: the patch subset
  (``max_patches``) and the region layout are computed on the host from the small
  region-index vectors, the features are gathered and scattered on the device, and the
  index vectors travel through pinned memory without a host synchronisation. The fold's
  RNA vectors, events and time bins sit on the device for the whole fold; the events are
  checked once on the host (the time bins come from the fold's fitted binner), so the
  training loss skips its per-step label checks (``nll_loss(..., check_labels=False)``).

The batches are **the same tensors** the reference path makes (same values, dtypes and
layout; the patch subsets consume the same random draws as
:func:`~survmamba_lite.experiment.sampling.subsample_bag`), so training results do not
depend on the path; ``tests/test_experiment_jobs.py`` checks this against
``collate_bags`` on a synthetic cohort.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from survmamba_lite.data.bag import SurvivalBatch
from survmamba_lite.data.dataset import CohortDataset
from survmamba_lite.data.features_h5 import read_features_h5
from survmamba_lite.data.layout import Cohort
from survmamba_lite.survival.labels import check_events

__all__ = ["PLACEMENTS", "FeatureStore", "feature_store", "clear_feature_stores", "BatchBuilder",
           "region_layout"]

#: where :class:`FeatureStore` keeps the features
PLACEMENTS = ("auto", "gpu", "host")


def region_layout(region: Tensor) -> tuple[Tensor, Tensor, Tensor, int, int]:
    """Where each patch of a flat bag goes in the ``(R, P)`` grid of :func:`~survmamba_lite.data.bag.group_patches`.

    Args:
        region: ``(n,)`` long, region index of each patch (host tensor).

    Returns:
        ``order (n,)`` (source patch of each placed item), ``r (n,)`` and ``p (n,)``
        (its region and position), ``R`` and ``P``: ``patches[r, p] = features[order]``
        is ``group_patches(features, region)[0]``.

    >>> order, r, p, n_r, n_p = region_layout(torch.tensor([3, 1, 3, 3, 1]))
    >>> order.tolist(), r.tolist(), p.tolist(), n_r, n_p
    ([1, 4, 0, 2, 3], [0, 0, 1, 1, 1], [0, 1, 0, 1, 2], 2, 3)
    """
    _, inverse, counts = torch.unique(region, return_inverse=True, return_counts=True)
    order = torch.argsort(inverse, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    r = inverse[order]
    p = torch.arange(region.numel()) - starts[r]
    return order, r, p, int(counts.numel()), int(counts.max())


class FeatureStore:
    """Every slide's patch features of a cohort in one ``(n_patches, F)`` float32 tensor.

    Args:
        cohort: a loaded cohort with slides.
        device: the training device.
        placement: ``"auto"``, ``"gpu"`` or ``"host"`` (see the module docstring).
        gpu_fraction: ``auto`` puts the features on the GPU when they take at most this
            fraction of its free memory (several training processes share a GPU).

    Attributes:
        placement: where the features ended up (``"gpu"`` or ``"host"``).
        nbytes: bytes of the feature tensor.
        features: the ``(n_patches, F)`` tensor.
    """

    def __init__(self, cohort: Cohort, device: torch.device, placement: str = "auto",
                 gpu_fraction: float = 0.25) -> None:
        if placement not in PLACEMENTS:
            raise ValueError(f"feature placement must be one of {PLACEMENTS}, got {placement!r}")
        if placement == "gpu" and device.type != "cuda":
            raise ValueError(f"feature placement 'gpu' needs a CUDA training device, got {device}; use 'auto' or 'host'")
        self.cohort, self.device = cohort, device
        self._cases: dict[str, tuple[Tensor, Tensor]] = {}
        slides = [sid for cid in cohort.case_ids for sid in cohort.slide_ids(cid)]
        slides = list(dict.fromkeys(slides))
        heads = {sid: read_features_h5(cohort.feature_path(sid), load_features=False) for sid in slides}
        n_total = sum(int(h.region.shape[0]) for h in heads.values())
        width = self._width(slides)
        self.nbytes = n_total * width * 4
        if placement == "auto":
            placement = "host"
            if device.type == "cuda":
                free, _ = torch.cuda.mem_get_info(device)
                placement = "gpu" if self.nbytes <= gpu_fraction * free else "host"
        self.placement = placement
        if placement == "gpu":
            self.features = torch.empty((n_total, width), dtype=torch.float32, device=device)
        else:
            pin = torch.cuda.is_available() and device.type == "cuda"
            self.features = torch.empty((n_total, width), dtype=torch.float32, pin_memory=pin)
        self._rows: dict[str, tuple[int, int]] = {}
        self._region: dict[str, np.ndarray] = {}
        start = 0
        for sid in slides:
            sf = read_features_h5(cohort.feature_path(sid))
            if sf.features.shape[1] != width:
                raise ValueError(f"{cohort.feature_path(sid)}: feature width {sf.features.shape[1]}, other slides "
                                 f"of cohort {cohort.name} have {width}; extract all slides with the same encoder")
            stop = start + sf.features.shape[0]
            self.features[start:stop].copy_(torch.from_numpy(np.ascontiguousarray(sf.features, dtype=np.float32)))
            _, local = np.unique(sf.region, return_inverse=True)       # regions 0..R_s-1 within the slide
            self._rows[sid], self._region[sid] = (start, stop), local.astype(np.int64).reshape(-1)
            start = stop

    def _width(self, slides: Sequence[str]) -> int:
        width = (self.cohort.manifest.get("features") or {}).get("width")
        if width:
            return int(width)
        return int(read_features_h5(self.cohort.feature_path(slides[0])).features.shape[1])

    def case(self, case_id: str) -> tuple[Tensor, Tensor]:
        """``rows (n,)`` into :attr:`features` and ``region (n,)`` of all slides of a case (host tensors).

        Region indices of later slides are offset, as :meth:`CohortDataset.load_wsi` does.
        """
        if case_id not in self._cases:
            rows, regions, offset = [], [], 0
            for sid in self.cohort.slide_ids(case_id):
                a, b = self._rows[sid]
                rows.append(np.arange(a, b, dtype=np.int64))
                regions.append(self._region[sid] + offset)
                offset += int(self._region[sid].max()) + 1
            self._cases[case_id] = (torch.from_numpy(np.concatenate(rows)), torch.from_numpy(np.concatenate(regions)))
        return self._cases[case_id]

    def __repr__(self) -> str:
        return (f"FeatureStore({self.cohort.name!r}, placement={self.placement!r}, "
                f"{self.nbytes / 2 ** 30:.2f} GiB)")


_STORES: dict[tuple, FeatureStore] = {}


def feature_store(cohort: Cohort, device: torch.device, placement: str = "auto",
                  gpu_fraction: float = 0.25) -> FeatureStore:
    """The process's :class:`FeatureStore` of ``cohort`` (read on first use; one cohort kept at a time)."""
    key = (id(cohort), str(device), placement)
    if key not in _STORES or _STORES[key].cohort is not cohort:
        _STORES.clear()                     # free the previous cohort before reading the next
        _STORES[key] = FeatureStore(cohort, device, placement, gpu_fraction)
    return _STORES[key]


def clear_feature_stores() -> None:
    """Drop the cached stores of this process (tests, or to free memory)."""
    _STORES.clear()


def _to_device(x: Tensor, device: torch.device) -> Tensor:
    """A host tensor on ``device`` without waiting for the device (through pinned memory)."""
    if device.type != "cuda":
        return x
    return x.pin_memory().to(device, non_blocking=True)


@dataclass
class BatchBuilder:
    """Batches of one fold dataset, built on ``device`` (see the module docstring).

    Args:
        dataset: the fold's training or validation :class:`CohortDataset` (fitted
            normaliser and binner; its RNA vectors and labels are moved to the device once).
        store: the cohort's :class:`FeatureStore`, None when the model reads no slides.
        device: the training device.
    """

    dataset: CohortDataset
    store: FeatureStore | None
    device: torch.device

    def __post_init__(self) -> None:
        ds, dev = self.dataset, self.device
        if "wsi" in ds.modalities and self.store is None:
            raise ValueError("BatchBuilder: the dataset reads slides but no FeatureStore was given")
        check_events(ds.event, "BatchBuilder", case_ids=ds.case_ids)  # once, so the loss need not read the device
        self._rna = None if ds.rna is None else torch.from_numpy(ds.rna).to(dev)                  # (n, G)
        self._time = torch.tensor(ds.time.tolist(), dtype=torch.float32).to(dev)                  # (n,)
        self._event = torch.tensor([float(e) for e in ds.event], dtype=torch.float32).to(dev)     # (n,)
        self._time_bin = torch.from_numpy(ds.time_bin.astype(np.int64)).to(dev)                  # (n,)

    def __len__(self) -> int:
        return len(self.dataset)

    def batch(self, indices: Sequence[int], max_patches: int | None = None,
              generator: torch.Generator | None = None) -> SurvivalBatch:
        """The :class:`SurvivalBatch` of patients ``indices`` of the dataset, on the device.

        Args:
            indices: positions in the dataset, in batch order.
            max_patches: at most this many patches per patient, drawn with ``generator``
                exactly as :func:`~survmamba_lite.experiment.sampling.subsample_bag` draws them.
            generator: CPU generator of the patch subsets (needed with ``max_patches``).
        """
        ds, dev = self.dataset, self.device
        idx = _to_device(torch.tensor(list(indices), dtype=torch.long), dev)                     # (B,)
        patches = mask = None
        if "wsi" in ds.modalities:
            parts = []
            for i in indices:
                cid = ds.case_ids[i]
                rows, region = self.store.case(cid)
                n = rows.numel()
                if max_patches is not None and n > max_patches:
                    keep = torch.randperm(n, generator=generator)[:max_patches].sort().values
                    rows, region = rows[keep], region[keep]
                order, r, p, n_r, n_p = region_layout(region)
                parts.append((cid, rows[order], r, p, n_r, n_p))
            n_b = len(parts)
            n_r, n_p = max(x[4] for x in parts), max(x[5] for x in parts)
            rows_all = _to_device(torch.cat([x[1] for x in parts]), self.store.features.device)
            values = self.store.features.index_select(0, rows_all)                               # (n, F)
            values = _to_device(values, dev) if values.device.type != dev.type else values
            b_all = torch.cat([torch.full((x[1].numel(),), k, dtype=torch.long) for k, x in enumerate(parts)])
            where = _to_device(torch.stack([b_all, torch.cat([x[2] for x in parts]),
                                            torch.cat([x[3] for x in parts])]), dev)             # (3, n)
            patches = torch.zeros((n_b, n_r, n_p, values.shape[1]), dtype=torch.float32, device=dev)       # (B, R, P, F)
            mask = torch.zeros((n_b, n_r, n_p), dtype=torch.bool, device=dev)                    # (B, R, P)
            flat = (where[0] * n_r + where[1]) * n_p + where[2]                                  # (n,)
            # index_copy_/index_fill_ rather than advanced-index assignment, which reads back on CUDA
            patches.view(-1, values.shape[1]).index_copy_(0, flat, values.to(patches.dtype))
            mask.view(-1).index_fill_(0, flat, True)
        rna = None if self._rna is None else self._rna.index_select(0, idx)                        # (B, G)
        return SurvivalBatch(case_id=[ds.case_ids[i] for i in indices], patches=patches, patch_mask=mask, rna=rna,
                             time=self._time.index_select(0, idx), event=self._event.index_select(0, idx),
                             time_bin=self._time_bin.index_select(0, idx))
