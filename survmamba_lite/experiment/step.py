r"""One training step, eager or replayed from a CUDA graph: ``step(batch) -> loss``.

A :class:`TrainStep` does what training does with one batch: the forward pass under the
run's precision (:func:`~survmamba_lite.utils.precision.autocast`), the training loss in
float32 (:func:`training_loss`), the backward pass and, when due, the optimiser step. It
returns the loss as a device scalar, so the caller never waits for the GPU;
``step.start_epoch(n_batches)`` comes before an epoch's first batch (training mode,
gradients cleared). Two forms share that interface:

* :class:`EagerTrainStep`: plain PyTorch. With ``grad_accum = k`` the gradients of ``k``
  batches are summed (each loss divided by ``k``) before one optimiser step, and the last
  batch of an epoch always steps.
* :class:`GraphedTrainStep`: forward, loss, backward and optimiser step recorded once as
  a CUDA graph and replayed with one launch (below).

:func:`make_train_step` builds the form a config asks for, with its optimiser
(:func:`make_optimizer`, :func:`build_optimizer`).

**The training loss** is ``w * NLL(logits) + auxiliary`` (:func:`training_loss`, the NLL of
:func:`~survmamba_lite.survival.nll_loss`). Most models have no auxiliary term and
``w = 1``. A model whose :class:`~survmamba_lite.registry.ModelSpec` declares an
``auxiliary_loss`` implements the hook :class:`~survmamba_lite.registry.AuxiliaryLossModel`:
the step calls its ``forward_train(batch)``, which gives the logits and the auxiliary term
from one forward pass, and ``w`` is its ``survival_loss_weight`` (CLAM: ``0.7 * NLL + 0.3 *
instance loss``).

**CUDA graphs: why.** At the paper's batch size of one patient, a SurvMamba step launches
about a thousand small GPU kernels, and in eager PyTorch the host needs longer to launch
them than the GPU needs to run them (measured on an H200 at 4,096 patches: a 40 ms step
with the GPU busy 13 ms). A CUDA graph records the kernels of one step once and replays
them with a single launch, so the step then costs what the GPU work costs.

**CUDA graphs: how.** A graph replays fixed kernels on fixed memory, so its inputs need fixed
shapes. :class:`GraphedTrainStep` pads each batch to a *bucket* (regions up to a multiple of
``region_multiple``, patches per region up to the next of ``patch_buckets``; padding is
masked, so real tokens get the same results, except in TransMIL's Nyström attention, which
sees a padded patient's extra grid cells as zero tokens, the kind it pads with itself) and
keeps one graph per bucket, recorded the first time the bucket is seen:

1. three eager warm-up steps on a side stream (cuBLAS and the allocator settle), after which
   the parameters, the optimiser state and the random-number state are put back exactly as
   they were, so the warm-up leaves no trace on training;
2. the step recorded under :func:`torch.cuda.graph` with the model in
   :func:`~survmamba_lite.model.him.static_shapes` (no shape read from a mask);
3. every later batch of that bucket: copy it into the graph's input tensors, replay.

All graphs share one memory pool (they are replayed one at a time). Requirements: the model
must not read tensors on the host during a step (SurvMamba does not on CUDA; see
:mod:`survmamba_lite.ssm.bimamba`), the optimiser must be built with ``capturable=True``
(:func:`capturable_optimizer`), and one optimiser step per batch (no gradient accumulation).
Dropout draws fresh numbers at every replay (PyTorch's graph-safe generator), so a graphed
run is a valid training run but not bit-identical to an eager one. The label checks that the
loss would make on the host (:mod:`survmamba_lite.survival.labels`) are made on the CPU batch
before it is copied in.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from survmamba_lite.data.bag import SurvivalBatch
from survmamba_lite.experiment.config import ExperimentConfig
from survmamba_lite.model.him import static_shapes
from survmamba_lite.registry import AuxiliaryLossModel, get_model_spec
from survmamba_lite.survival import nll_loss
from survmamba_lite.survival.labels import check_events, check_time_bins
from survmamba_lite.utils.precision import autocast, check_precision

__all__ = ["TrainStep", "EagerTrainStep", "GraphedTrainStep", "make_train_step", "training_loss", "build_optimizer",
           "capturable_optimizer", "make_optimizer", "pad_batch", "bucket_size", "PATCH_BUCKETS"]

#: patches per region are padded up to the next of these (regions of 4096 px at 256 px hold 256)
PATCH_BUCKETS = (16, 32, 64, 96, 128, 192, 256, 384, 512, 768, 1024)


# --------------------------------------------------------------------------- optimiser and loss
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


def make_optimizer(config: ExperimentConfig, params) -> torch.optim.Optimizer:
    """``config.optimizer`` (:func:`build_optimizer`: RAdam as in the paper, RAdam with
    decoupled weight decay, Adam or AdamW) with ``config.lr`` and ``config.weight_decay``
    (``capturable=True`` when the steps are replayed from CUDA graphs)."""
    return build_optimizer(config.optimizer, params, capturable=bool(config.cuda_graphs), lr=config.lr,
                           weight_decay=config.weight_decay)


def training_loss(logits: Tensor, batch: SurvivalBatch, alpha: float, *, survival_weight: float = 1.0,
                  auxiliary: Tensor | None = None, check_labels: bool = True) -> Tensor:
    """The loss of one training batch: ``survival_weight * NLL(logits) + auxiliary``, in float32.

    Args:
        logits: ``(B, T)`` hazard logits (cast to float32 here).
        batch: the batch (``time_bin`` and ``event`` are read).
        alpha: the NLL's extra weight of uncensored patients (:func:`~survmamba_lite.survival.nll_loss`).
        survival_weight: weight of the NLL (1; the hook's ``survival_loss_weight``, CLAM's 0.7).
        auxiliary: the model's auxiliary loss from the same forward pass (a scalar), or None.
        check_labels: check the labels on the host (False where they were checked once).

    >>> b = SurvivalBatch(["a"], None, None, None, torch.ones(1), torch.ones(1), torch.zeros(1, dtype=torch.long))
    >>> float(training_loss(torch.zeros(1, 2), b, 0.0, survival_weight=0.5, auxiliary=torch.tensor(1.0)))
    1.3465735912322998
    """
    loss = float(survival_weight) * nll_loss(logits.float(), batch.time_bin, batch.event, alpha=alpha,
                                             check_labels=check_labels)
    if auxiliary is not None:
        loss = loss + auxiliary
    return loss


# --------------------------------------------------------------------------- the interface
class TrainStep:
    """``step(batch) -> loss``: one training step on ``batch`` (see the module docstring).

    Args:
        model: maps a :class:`SurvivalBatch` to hazard logits ``(B, T)``.
        optimizer: over the model's parameters.
        alpha: the NLL's extra weight of uncensored patients.
        precision: ``"fp32"``, ``"tf32"`` or ``"bf16"`` (the forward runs under its autocast).
        auxiliary: the model implements the auxiliary-loss hook its ModelSpec declares
            (:class:`~survmamba_lite.registry.AuxiliaryLossModel`).
        check_labels: check each batch's labels on the host (False where its builder checked them once).

    Calling it returns the step's loss as a detached device scalar, valid until the next call
    (read it, or copy it into a device buffer).
    """

    graphed = False

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None, *, alpha: float = 0.0,
                 precision: str = "fp32", auxiliary: bool = False, check_labels: bool = True):
        if auxiliary and not isinstance(model, AuxiliaryLossModel):
            raise TypeError(f"{type(model).__name__} has no auxiliary-loss hook (survival_loss_weight and "
                            "forward_train); train it with auxiliary=False")
        self.model, self.optimizer = model, optimizer
        self.alpha, self.precision = alpha, check_precision(precision)
        self.auxiliary, self.check_labels = auxiliary, check_labels
        self.device = next(model.parameters()).device

    def loss(self, batch: SurvivalBatch, *, check_labels: bool = True, cache_enabled: bool = True) -> Tensor:
        """Forward pass under the precision's autocast, then :func:`training_loss` (float32)."""
        with autocast(self.precision, self.device, cache_enabled=cache_enabled):
            if self.auxiliary:
                logits, extra = self.model.forward_train(batch)
            else:
                logits, extra = self.model(batch), None
        weight = self.model.survival_loss_weight if self.auxiliary else 1.0
        return training_loss(logits, batch, self.alpha, survival_weight=weight, auxiliary=extra,
                             check_labels=check_labels)

    def start_epoch(self, n_batches: int) -> None:
        """Before an epoch's first batch: training mode, gradients cleared; ``n_batches`` batches follow."""
        self.model.train()
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
        self.n_batches, self.done = n_batches, 0

    def __call__(self, batch: SurvivalBatch) -> Tensor:
        raise NotImplementedError


class EagerTrainStep(TrainStep):
    """The step in plain PyTorch (arguments as :class:`TrainStep`).

    Args:
        grad_accum: batches whose gradients are summed per optimiser step (each loss divided
            by it); the last batch of an epoch always steps.

    ``optimizer=None`` leaves the optimiser step out (forward, loss and backward only; the
    gradients are cleared after each step), as a measurement may ask for.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None, *, grad_accum: int = 1, **kwargs):
        super().__init__(model, optimizer, **kwargs)
        self.grad_accum, self.n_batches, self.done = grad_accum, None, 0

    def __call__(self, batch: SurvivalBatch) -> Tensor:
        loss = self.loss(batch, check_labels=self.check_labels)
        (loss / self.grad_accum).backward()
        self.done += 1
        if self.optimizer is None:
            self.model.zero_grad(set_to_none=True)
        elif self.done % self.grad_accum == 0 or self.done == self.n_batches:
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()


def make_train_step(config: ExperimentConfig, model: nn.Module, *, n_bins: int, check_labels: bool) -> TrainStep:
    """The training step of ``config`` for ``model`` (on its device), with its optimiser.

    Graphed when ``config.cuda_graphs`` (which needs the model on CUDA), else eager with
    ``config.grad_accum``; the loss has ``config.alpha`` and the model's auxiliary term when
    its :class:`~survmamba_lite.registry.ModelSpec` declares one.
    """
    optimizer = make_optimizer(config, model.parameters())
    common: dict[str, Any] = dict(alpha=config.alpha, precision=config.precision, check_labels=check_labels,
                                  auxiliary=get_model_spec(config.model).auxiliary_loss is not None)
    if not config.cuda_graphs:
        return EagerTrainStep(model, optimizer, grad_accum=config.grad_accum, **common)
    device = next(model.parameters()).device
    if device.type != "cuda":
        raise ValueError(f"cuda_graphs needs a CUDA device, but this fold runs on {device}; drop --cuda-graphs")
    return GraphedTrainStep(model, optimizer, n_bins=n_bins, **common)


# --------------------------------------------------------------------------- CUDA graphs
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


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    inputs: SurvivalBatch          # static input tensors, on the device
    loss: Tensor                   # static output: the step's loss (float32 scalar)


class GraphedTrainStep(TrainStep):
    """The step replayed from a CUDA graph, one graph per bucket of shapes (module docstring).

    Arguments as :class:`TrainStep`, and:

    Args:
        region_multiple: regions are padded up to a multiple of this.
        patch_buckets: patches per region are padded up to the next of these.
        n_bins: number of time bins (for the host-side check of ``time_bin``), or None.
        warmup: eager steps before a graph is recorded (their effect is undone).

    The model must be on a CUDA device and the optimiser built with ``capturable=True``.
    A batch may come on the CPU (its labels are then checked on the host when ``check_labels``)
    or already on the device (its builder must have checked them, e.g. once per cohort).
    """

    graphed = True

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, *, region_multiple: int = 8,
                 patch_buckets: tuple[int, ...] = PATCH_BUCKETS, n_bins: int | None = None, warmup: int = 3,
                 **kwargs):
        super().__init__(model, optimizer, **kwargs)
        if self.device.type != "cuda":
            raise ValueError(f"GraphedTrainStep needs a model on CUDA, got {self.device}; train eagerly on the CPU")
        if optimizer is None or not all(group.get("capturable", False) for group in optimizer.param_groups):
            raise ValueError("GraphedTrainStep needs an optimizer built with capturable=True "
                             "(see capturable_optimizer)")
        self.region_multiple, self.patch_buckets = region_multiple, patch_buckets
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
        loss = self.loss(batch, check_labels=False, cache_enabled=False)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def __call__(self, batch: SurvivalBatch) -> Tensor:
        """One step on ``batch`` (on the CPU, or already on the device)."""
        if self.check_labels and not batch.event.is_cuda:
            check_events(batch.event, "GraphedTrainStep", case_ids=batch.case_id)
            if self.n_bins is not None:
                check_time_bins(batch.time_bin, self.n_bins, "GraphedTrainStep", case_ids=batch.case_id)
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
        with torch.cuda.stream(side), static_shapes(self.model):
            for _ in range(self.warmup):
                self._eager_step(inputs)
        torch.cuda.current_stream(self.device).wait_stream(side)
        self._restore(snapshot)
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        with static_shapes(self.model), torch.cuda.graph(graph, pool=self.pool):
            loss = self.loss(inputs, check_labels=False, cache_enabled=False)   # no cached casts in a graph
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
