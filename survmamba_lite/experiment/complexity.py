"""FLOP, memory and step-time counting for any model (Table 2); parameters in
:func:`~survmamba_lite.utils.complexity.count_parameters`.

FLOPs come from :class:`torch.utils.flop_counter.FlopCounterMode`, which counts
matrix products and convolutions (2 FLOPs per multiply-add) but not element-wise
work. The selective scan is element-wise, so it is added analytically: per SSM call
``9·B·L·E·N`` FLOPs (Mamba's own estimate: discretising ``Ā``, ``B̄x``, the state
update and the read-out ``C·h``), collected by forward hooks on every
:class:`~survmamba_lite.ssm.bimamba.MambaBranch`. Softmax and other element-wise work
of attention baselines is likewise not counted, which slightly favours them.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from survmamba_lite.experiment.step import TrainStep
from survmamba_lite.ssm.bimamba import BiMamba, MambaBranch
from survmamba_lite.utils.complexity import count_parameters
from survmamba_lite.utils.precision import autocast, set_matmul_precision

__all__ = ["count_parameters", "count_flops", "Complexity", "measure_complexity", "busy_and_kernels",
           "SCAN_FLOPS_PER_ELEMENT"]

SCAN_FLOPS_PER_ELEMENT = 9


def count_flops(model: nn.Module, *args, forward: Callable[..., Any] | None = None, **kwargs) -> dict[str, int]:
    """FLOPs of one forward pass ``model(*args, **kwargs)``, or of ``forward(*args, **kwargs)``
    (e.g. ``model.forward_train``: the pass training runs, auxiliary loss included).

    Returns ``{"matmul": ..., "scan": ..., "total": ...}``.

    >>> count_flops(nn.Linear(4, 3, bias=False), torch.randn(2, 4))
    {'matmul': 48, 'scan': 0, 'total': 48}
    """
    scan = [0]

    def hook(module: MambaBranch, inputs, output):
        b, length, e = output.shape
        scan[0] += SCAN_FLOPS_PER_ELEMENT * b * length * e * module.d_state

    def fused_hook(module: BiMamba, inputs, output):    # both directions in one call: no branch hook fires
        if module.backward_branch is not None and module.fuse_directions:
            b, length, _ = output.shape
            br = module.forward_branch
            scan[0] += 2 * SCAN_FLOPS_PER_ELEMENT * b * length * br.d_inner * br.d_state

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, MambaBranch)]
    handles += [m.register_forward_hook(fused_hook) for m in model.modules() if isinstance(m, BiMamba)]
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            (forward or model)(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    matmul = int(counter.get_total_flops())
    return {"matmul": matmul, "scan": int(scan[0]), "total": matmul + int(scan[0])}


@dataclass
class Complexity:
    """One row of a Table-2-style comparison.

    ``gpu_busy_fraction`` is the share of a training step's wall time during which the GPU
    runs a kernel or a copy (from one profiled step; None on CPU or without profiling),
    ``kernels`` the number of GPU kernels that step launches, ``train_tflops`` the achieved
    rate ``3 * flops / step_seconds`` (a training step costs about three forward passes;
    element-wise work is not counted, see the module docstring).
    """

    params: int
    flops: int
    flops_matmul: int
    flops_scan: int
    step_seconds: float
    peak_memory_bytes: int | None
    device: str
    precision: str = "fp32"
    cuda_graphs: bool = False
    gpu_busy_fraction: float | None = None
    kernels: int | None = None
    train_tflops: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def busy_and_kernels(prof) -> tuple[float, int]:
    """GPU-busy seconds (union of kernel and copy intervals) and the kernel count of a profile."""
    from torch.autograd import DeviceType

    spans, kernels = [], 0
    for evt in prof.events():
        if evt.device_type != DeviceType.CUDA:
            continue
        spans.append((evt.time_range.start, evt.time_range.end))
        name = evt.name.lower()
        kernels += not (name.startswith("memcpy") or name.startswith("memset"))
    busy, end = 0.0, float("-inf")
    for a, b in sorted(spans):                                  # union of intervals, in microseconds
        if b <= end:
            continue
        busy += b - max(a, end)
        end = b
    return busy * 1e-6, kernels


def measure_complexity(model: nn.Module, batch, loss_fn=None, repeats: int = 3, precision: str = "fp32",
                       optimizer: torch.optim.Optimizer | None = None, profile: bool = False,
                       flops: dict[str, int] | None = None, step: TrainStep | None = None) -> Complexity:
    """Parameters, forward FLOPs, median training-step time and peak memory for ``batch``.

    Args:
        model: maps ``batch`` to hazard logits ``(B, T)``.
        batch: a :class:`~survmamba_lite.data.SurvivalBatch` on the model's device.
        loss_fn: ``loss_fn(logits, batch) -> scalar``; default: the mean of the logits.
        repeats: timed steps (after one warm-up step); 0 reports the warm-up step's time.
        precision: ``"fp32"``, ``"tf32"`` or ``"bf16"`` (:mod:`survmamba_lite.utils.precision`);
            the loss is computed in float32.
        optimizer: when given, a step includes ``optimizer.step()`` (as in training).
        profile: on CUDA, profile one more step with ``torch.profiler`` for the GPU-busy
            fraction and the kernel count.
        flops: precomputed :func:`count_flops` of this model and batch (they do not depend on
            the precision), to skip counting again.
        step: the training step to time (a :class:`~survmamba_lite.experiment.step.TrainStep` of
            ``model``: eager, or replayed from a CUDA graph, whose warm-up step records the
            graph); it replaces ``loss_fn``, ``precision`` and ``optimizer``.

    Peak memory is measured on CUDA only (``None`` on CPU).
    """
    device = next(model.parameters()).device
    precision = step.precision if step is not None else precision
    set_matmul_precision(precision)
    flops = flops or count_flops(model, batch)
    loss_fn = loss_fn or (lambda logits, b: logits.mean())
    model.train()

    def run_step():
        if step is not None:
            step(batch)
            return
        model.zero_grad(set_to_none=True)
        with autocast(precision, device):
            logits = model(batch)
        loss_fn(logits.float(), batch).backward()
        if optimizer is not None:
            optimizer.step()

    cuda = device.type == "cuda"
    t0 = time.perf_counter()
    run_step()
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    warmup = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run_step()
        if cuda:
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    peak = int(torch.cuda.max_memory_allocated(device)) if cuda else None
    median = sorted(times)[len(times) // 2] if times else warmup           # repeats=0: the warm-up step
    busy = kernels = None
    if profile and cuda:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            run_step()
            torch.cuda.synchronize(device)
        busy_seconds, kernels = busy_and_kernels(prof)
        busy = min(1.0, busy_seconds / median)
    return Complexity(params=count_parameters(model), flops=flops["total"], flops_matmul=flops["matmul"],
                      flops_scan=flops["scan"], step_seconds=median, peak_memory_bytes=peak, device=str(device),
                      precision=precision, cuda_graphs=step is not None and step.graphed, gpu_busy_fraction=busy,
                      kernels=kernels,
                      train_tflops=3 * flops["total"] / median / 1e12)
