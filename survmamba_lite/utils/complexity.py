"""Parameter, FLOP, memory and step-time counting for any model (Table 2).

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

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from survmamba_lite.ssm.bimamba import BiMamba, MambaBranch

__all__ = ["count_parameters", "count_flops", "Complexity", "measure_complexity", "SCAN_FLOPS_PER_ELEMENT"]

SCAN_FLOPS_PER_ELEMENT = 9


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters.

    >>> count_parameters(nn.Linear(768, 512, bias=False))
    393216
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_flops(model: nn.Module, *args, **kwargs) -> dict[str, int]:
    """FLOPs of one forward pass ``model(*args, **kwargs)``.

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
            model(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    matmul = int(counter.get_total_flops())
    return {"matmul": matmul, "scan": int(scan[0]), "total": matmul + int(scan[0])}


@dataclass
class Complexity:
    """One row of a Table-2-style comparison."""

    params: int
    flops: int
    flops_matmul: int
    flops_scan: int
    step_seconds: float
    peak_memory_bytes: int | None
    device: str

    def to_dict(self) -> dict:
        return asdict(self)


def measure_complexity(model: nn.Module, batch, loss_fn=None, repeats: int = 3) -> Complexity:
    """Parameters, forward FLOPs, median training-step time and peak memory for ``batch``.

    Args:
        model: maps ``batch`` to hazard logits ``(B, T)``.
        batch: a :class:`~survmamba_lite.data.SurvivalBatch` on the model's device.
        loss_fn: ``loss_fn(logits, batch) -> scalar``; default: the mean of the logits.
        repeats: timed steps (after one warm-up step).

    Peak memory is measured on CUDA only (``None`` on CPU).
    """
    device = next(model.parameters()).device
    flops = count_flops(model, batch)
    loss_fn = loss_fn or (lambda logits, b: logits.mean())
    model.train()

    def step():
        model.zero_grad(set_to_none=True)
        loss_fn(model(batch), batch).backward()

    step()
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    peak = int(torch.cuda.max_memory_allocated(device)) if cuda else None
    return Complexity(params=count_parameters(model), flops=flops["total"], flops_matmul=flops["matmul"],
                      flops_scan=flops["scan"], step_seconds=sorted(times)[len(times) // 2],
                      peak_memory_bytes=peak, device=str(device))
