"""A whole training step (forward, loss, backward, optimiser step) replayed as one CUDA graph.

Why. At the paper's batch size of one patient, a SurvMamba step launches about a thousand
small GPU kernels, and in eager PyTorch the host needs longer to launch them than the GPU
needs to run them (measured on an H200 at 4,096 patches: a 40 ms step with the GPU busy
13 ms). A CUDA graph records the kernels of one step once and replays them with a single
launch, so the step then costs what the GPU work costs.

How. A graph replays fixed kernels on fixed memory, so its inputs need fixed shapes.
:class:`GraphedTrainStep` pads each batch to a *bucket* (regions up to a multiple of
``region_multiple``, patches per region up to the next of ``patch_buckets``; padding is
masked, so real tokens get the same results, except in TransMIL's Nyström attention, which
sees a padded patient's extra grid cells as zero tokens, the kind it pads with itself) and
keeps one graph per bucket, recorded the first time the bucket is seen:

1. three eager warm-up steps on a side stream (cuBLAS and the allocator settle), after which
   the parameters, the optimiser state and the random-number state are put back exactly as
   they were, so the warm-up leaves no trace on training;
2. the step recorded under :func:`torch.cuda.graph` inside
   :func:`~survmamba_lite.model.him.static_shapes` (no shape read from a mask);
3. every later batch of that bucket: copy it into the graph's input tensors, replay.

All graphs share one memory pool (they are replayed one at a time). Requirements: the model
must not read tensors on the host during a step (SurvMamba does not on CUDA; see
:mod:`survmamba_lite.ssm.bimamba`), the optimiser must be built with ``capturable=True``
(:func:`capturable_optimizer`), and one optimiser step per batch (no gradient accumulation).
Dropout draws fresh numbers at every replay (PyTorch's graph-safe generator), so a graphed
run is a valid training run but not bit-identical to an eager one.

The checks that the loss would make on the host (``event`` in {0, 1}, ``time_bin`` in range)
are made here on the CPU batch before it is copied in.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from typing import Callable

import torch
from torch import Tensor, nn

from survmamba_lite.data.bag import SurvivalBatch
from survmamba_lite.model.him import static_shapes
from survmamba_lite.utils.precision import autocast

__all__ = ["GraphedTrainStep", "build_optimizer", "capturable_optimizer", "pad_batch", "bucket_size", "PATCH_BUCKETS"]

#: patches per region are padded up to the next of these (regions of 4096 px at 256 px hold 256)
PATCH_BUCKETS = (16, 32, 64, 96, 128, 192, 256, 384, 512, 768, 1024)

LossFn = Callable[[Tensor, SurvivalBatch], Tensor]


def bucket_size(n: int, buckets: tuple[int, ...] | None = None, multiple: int = 1) -> int:
    """The smallest bucket ``>= n``: the next entry of ``buckets``, else the next multiple.

    >>> bucket_size(100, PATCH_BUCKETS), bucket_size(5000, PATCH_BUCKETS, 256), bucket_size(17, None, 8)
    (128, 5120, 24)
    """
    if buckets:
        i = bisect.bisect_left(buckets, n)
        if i < len(buckets):
            return buckets[i]
    return -(-n // multiple) * multiple


def pad_batch(batch: SurvivalBatch, n_regions: int, n_patches: int) -> SurvivalBatch:
    """``batch`` with ``patches (B, R, P, F)`` and ``patch_mask`` zero padded to ``R = n_regions``,
    ``P = n_patches`` (each at least the batch's own). Padding is masked out, so a model's
    outputs for the batch do not change.

    >>> from survmamba_lite.data import PatientBag, collate_bags
    >>> b = collate_bags([PatientBag("a", torch.ones(3, 2), torch.tensor([0, 0, 1]), None, 1.0, 1, 0)])
    >>> p = pad_batch(b, 4, 8)
    >>> tuple(p.patches.shape), int(p.patch_mask.sum())
    ((1, 4, 8, 2), 3)
    """
    if batch.patches is None:
        return batch
    b, r, p, f = batch.patches.shape
    if n_regions < r or n_patches < p:
        raise ValueError(f"pad_batch: cannot pad ({r}, {p}) regions x patches down to ({n_regions}, {n_patches})")
    patches = batch.patches.new_zeros(b, n_regions, n_patches, f)
    mask = batch.patch_mask.new_zeros(b, n_regions, n_patches)
    patches[:, :r, :p] = batch.patches
    mask[:, :r, :p] = batch.patch_mask
    return replace(batch, patches=patches, patch_mask=mask)


def build_optimizer(name: str, params, *, capturable: bool = False, **kwargs) -> torch.optim.Optimizer:
    """The optimiser called ``name`` (one of ``experiment.OPTIMIZERS``) over ``params``.

    ``radam`` is PyTorch's RAdam, whose ``weight_decay`` is an L2 term added to the gradient
    (and so normalised by the adaptive step); ``radam-decoupled`` is the same RAdam with the
    decay applied to the weights directly, ``w <- w * (1 - lr * weight_decay)`` per step, as in
    the RAdam that SurvPath's code ships; ``adam``; ``adamw`` (decoupled). ``capturable=True``
    keeps the step count on the GPU, as a step replayed from a CUDA graph needs.

    >>> p = torch.nn.Parameter(torch.ones(3))
    >>> type(build_optimizer("radam-decoupled", [p], lr=1e-3)).__name__
    'RAdam'
    """
    table = {"radam": (torch.optim.RAdam, {}), "radam-decoupled": (torch.optim.RAdam, {"decoupled_weight_decay": True}),
             "adam": (torch.optim.Adam, {}), "adamw": (torch.optim.AdamW, {})}
    if name not in table:
        raise ValueError(f"optimizer must be one of {tuple(table)}, got {name!r}")
    cls, extra = table[name]
    return cls(params, **extra, **({"capturable": True} if capturable else {}), **kwargs)


def capturable_optimizer(name: str, params, **kwargs) -> torch.optim.Optimizer:
    """:func:`build_optimizer` with ``capturable=True`` (its step count lives on the GPU)."""
    return build_optimizer(name, params, capturable=True, **kwargs)


def _check_batch_on_host(batch: SurvivalBatch, n_bins: int | None) -> None:
    event, time_bin = batch.event.cpu(), batch.time_bin.cpu()
    bad = ~((event == 0) | (event == 1))
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise ValueError(f"case {batch.case_id[i]}: event must be 0 (censored) or 1 (death observed), "
                         f"got {float(event[i])}; convert TCGA's censorship once with event = 1 - censorship")
    if n_bins is not None:
        bad = (time_bin < 0) | (time_bin >= n_bins)
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise ValueError(f"case {batch.case_id[i]}: time_bin {int(time_bin[i])} is outside 0..{n_bins - 1}")


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    inputs: SurvivalBatch          # static input tensors, on the device
    loss: Tensor                   # static output: the step's loss (float32 scalar)


class GraphedTrainStep:
    """``step(batch) -> loss``: one optimiser step on ``batch``, replayed from a CUDA graph.

    Args:
        model: maps a :class:`SurvivalBatch` to hazard logits ``(B, T)``; on a CUDA device.
        optimizer: built with ``capturable=True`` over the model's parameters.
        loss_fn: ``loss_fn(logits, batch) -> scalar`` (float32 logits; add auxiliary losses here).
        precision: ``"fp32"``, ``"tf32"`` or ``"bf16"`` (the forward runs under its autocast).
        region_multiple: regions are padded up to a multiple of this.
        patch_buckets: patches per region are padded up to the next of these.
        n_bins: number of time bins (for the host-side check of ``time_bin``), or None.
        warmup: eager steps before a graph is recorded (their effect is undone).

    Calling it returns the step's loss as a device scalar, valid until the next call (read it
    or add it to a device accumulator, e.g. ``total += step(batch)``).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn,
                 precision: str = "fp32", region_multiple: int = 8,
                 patch_buckets: tuple[int, ...] = PATCH_BUCKETS, n_bins: int | None = None, warmup: int = 3):
        self.device = next(model.parameters()).device
        if self.device.type != "cuda":
            raise ValueError(f"GraphedTrainStep needs a model on CUDA, got {self.device}; train eagerly on the CPU")
        if not all(group.get("capturable", False) for group in optimizer.param_groups):
            raise ValueError("GraphedTrainStep needs an optimizer built with capturable=True "
                             "(see capturable_optimizer)")
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.precision, self.region_multiple, self.patch_buckets = precision, region_multiple, patch_buckets
        self.n_bins, self.warmup = n_bins, warmup
        self.graphs: dict[tuple, _Graph] = {}
        self.pool = torch.cuda.graph_pool_handle()
        self.params = [p for group in optimizer.param_groups for p in group["params"]]

    # ------------------------------------------------------------------ shapes
    def bucket(self, batch: SurvivalBatch) -> tuple[int, int] | None:
        """``(regions, patches per region)`` this batch is padded to, or None without slides."""
        if batch.patches is None:
            return None
        _, r, p, _ = batch.patches.shape
        return bucket_size(r, None, self.region_multiple), bucket_size(p, self.patch_buckets, 256)

    def _key(self, batch: SurvivalBatch, bucket) -> tuple:
        rna = None if batch.rna is None else tuple(batch.rna.shape)
        feat = None if batch.patches is None else batch.patches.shape[-1]
        return len(batch), bucket, feat, rna

    # ------------------------------------------------------------------ one step
    def _eager_step(self, batch: SurvivalBatch) -> Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.precision, self.device, cache_enabled=False):
            logits = self.model(batch)
        loss = self.loss_fn(logits.float(), batch)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def __call__(self, batch: SurvivalBatch, check_labels: bool = True) -> Tensor:
        """One step on ``batch`` (on the CPU, or already on the device).

        ``check_labels`` checks ``event`` and ``time_bin`` of a CPU batch on the host (a device
        batch is not read back: its builder must have checked them, e.g. once per cohort).
        """
        if check_labels and not batch.event.is_cuda:
            _check_batch_on_host(batch, self.n_bins)
        bucket = self.bucket(batch)
        if bucket is not None:
            batch = pad_batch(batch, *bucket)
            if not batch.patches.is_cuda:         # pinned: the copy below does not stall the host
                batch = replace(batch, patches=batch.patches.pin_memory(), patch_mask=batch.patch_mask.pin_memory())
        key = self._key(batch, bucket)
        graph = self.graphs.get(key)
        if graph is None:
            graph = self.graphs[key] = self._record(batch)
        _copy_into(graph.inputs, batch)
        graph.graph.replay()
        return graph.loss

    # ------------------------------------------------------------------ recording
    def _snapshot(self):
        params = [p.detach().clone() for p in self.params]
        state = {p: {k: v.clone() for k, v in s.items() if torch.is_tensor(v)} for p, s in self.optimizer.state.items()}
        rng = (torch.get_rng_state(), torch.cuda.get_rng_state(self.device))
        return params, state, rng

    @torch.no_grad()
    def _restore(self, snapshot) -> None:
        params, state, (cpu_rng, cuda_rng) = snapshot
        for p, saved in zip(self.params, params):
            p.copy_(saved)
        for p, s in self.optimizer.state.items():
            before = state.get(p)
            for k, v in s.items():
                if torch.is_tensor(v):
                    if before is None:       # the state was created by the warm-up: back to a fresh one
                        v.zero_()
                    else:
                        v.copy_(before[k])
        torch.set_rng_state(cpu_rng)
        torch.cuda.set_rng_state(cuda_rng, self.device)

    def _record(self, batch: SurvivalBatch) -> _Graph:
        inputs = _to_device_static(batch, self.device)
        snapshot = self._snapshot()
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side), static_shapes():
            for _ in range(self.warmup):
                self._eager_step(inputs)
        torch.cuda.current_stream(self.device).wait_stream(side)
        self._restore(snapshot)
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        with static_shapes(), torch.cuda.graph(graph, pool=self.pool):
            with autocast(self.precision, self.device, cache_enabled=False):   # no cached casts in a graph
                logits = self.model(inputs)
            loss = self.loss_fn(logits.float(), inputs)
            loss.backward()
            self.optimizer.step()
        return _Graph(graph, inputs, loss.detach())


def _to_device_static(batch: SurvivalBatch, device: torch.device) -> SurvivalBatch:
    def mv(x):
        return None if x is None else x.to(device, copy=True)
    return replace(batch, patches=mv(batch.patches), patch_mask=mv(batch.patch_mask), rna=mv(batch.rna),
                   time=mv(batch.time), event=mv(batch.event), time_bin=mv(batch.time_bin))


def _copy_into(static: SurvivalBatch, batch: SurvivalBatch) -> None:
    for name in ("patches", "patch_mask", "rna", "time", "event", "time_bin"):
        dst, src = getattr(static, name), getattr(batch, name)
        if dst is not None:
            dst.copy_(src, non_blocking=True)
    static.case_id = batch.case_id

