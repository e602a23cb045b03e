"""Profile one training step of a model on CUDA: where the wall time goes, kernel by kernel.

    python benchmarks/profile_step.py --model survmamba --patches 4096 --precision bf16 --out benchmarks/results

Writes ``profile_<model>_<patches>_<precision>.txt``: the step's wall time, the GPU-busy time and
kernel count (as in ``complexity.py``), and torch.profiler's table of the operators with the
most GPU time and the most host time. Use it to see what bounds a step (host launches vs
kernels) before and after a change.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from complexity import N_BINS, parse_model

from survmamba_lite.experiment.table2 import synthetic_genes, synthetic_patient
from survmamba_lite.registry import ModelInputs, build_model
from survmamba_lite.survival import nll_loss
from survmamba_lite.experiment.complexity import busy_and_kernels
from survmamba_lite.utils.precision import PRECISIONS, autocast, set_matmul_precision


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="survmamba", help="registry name with options, e.g. survmamba:variant=C")
    p.add_argument("--patches", type=int, default=4096)
    p.add_argument("--patches-per-region", type=int, default=256)
    p.add_argument("--precision", default="fp32", choices=list(PRECISIONS))
    p.add_argument("--rows", type=int, default=25, help="operators listed per table")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        p.error("needs a CUDA device")
    hierarchy = synthetic_genes("paper")
    inputs = ModelInputs(n_bins=N_BINS, wsi_dim=768, hierarchy=hierarchy)
    batch = synthetic_patient(args.patches, max(1, args.patches // args.patches_per_region), 768, hierarchy.n_genes, "cuda")
    name, options = parse_model(args.model)
    torch.manual_seed(0)
    model = build_model(name, inputs, **options).cuda().train()
    opt = torch.optim.RAdam(model.parameters(), lr=2e-4, weight_decay=5e-3)
    set_matmul_precision(args.precision)

    def step():
        model.zero_grad(set_to_none=True)
        with autocast(args.precision, "cuda"):
            logits = model(batch)
        nll_loss(logits.float(), batch.time_bin, batch.event).backward()
        opt.step()

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    wall = sorted(times)[2]
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    busy, kernels = busy_and_kernels(prof)
    averages = prof.key_averages()
    text = [f"{args.model}, {args.patches} patches, {args.precision}, {torch.cuda.get_device_name(0)}, torch {torch.__version__}",
            f"step wall time (median of 5): {wall * 1e3:.2f} ms; GPU busy {busy * 1e3:.2f} ms "
            f"({busy / wall:.0%}); {kernels} kernels",
            "", "by GPU time:", averages.table(sort_by="self_cuda_time_total", row_limit=args.rows),
            "", "by host time:", averages.table(sort_by="self_cpu_time_total", row_limit=args.rows)]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"profile_{name}_{args.patches}_{args.precision}.txt"
    path.write_text("\n".join(text) + "\n")
    print("\n".join(text[:2]))
    print("wrote", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
