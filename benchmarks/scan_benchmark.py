"""Time the selective-scan backends: forward, and forward + backward, separately.

Compared (all on the same inputs, ``delta`` already positive, no ``D``/``z``):

``loop``
    a plain per-step loop vectorised over ``E`` and ``N``: ``Ā`` and ``B̄u`` are precomputed
    outside the loop, then ``h = dA_t * h + dBu_t; y_t = (h * C_t).sum(-1)``. The steps are
    taken with ``unbind`` (indexing ``dA[:, :, t]`` inside the loop gives the same forward, but
    its backward copies a full-size gradient for every step, quadratic in ``L``);
``ref``, ``parallel``, ``mamba_ssm``
    :func:`survmamba_lite.ssm.selective_scan` with that backend (``mamba_ssm`` only where it
    imports and the device is CUDA).

Forward is timed under ``torch.no_grad()`` (inference); forward + backward with gradients
for ``u, delta, A, B, C``. Each number is the median of ``--repeats`` runs after warm-up runs,
with ``torch.cuda.synchronize()`` around every run on GPU.

Example::

    python benchmarks/scan_benchmark.py --device cpu --lengths 256 1024 4096 --out benchmarks/results

Writes ``scan_benchmark_<device>.json`` (machine, versions, threads, load average at start and
end, every timing, speed-ups) and ``scan_benchmark_<device>.csv`` into ``--out`` and prints a
table. On a shared CPU, other processes distort the numbers (the parallel backend's
multi-threaded operations suffer most, as each waits for the busy core): check the recorded
load average, or pass ``--threads 1`` for stable numbers.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from survmamba_lite.ssm import available_backends, selective_scan


def loop_scan(u, delta, A, B, C):
    """Per-step loop vectorised over E and N. u, delta: (B, E, L); A: (E, N); B, C: (B, N, L)."""
    dA = torch.exp(delta.unsqueeze(-1) * A.unsqueeze(1))  # (B, E, L, N)
    dBu = (delta * u).unsqueeze(-1) * B.transpose(1, 2).unsqueeze(1)  # (B, E, L, N)
    h = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    ys = []
    for dA_t, dBu_t, C_t in zip(dA.unbind(2), dBu.unbind(2), C.unbind(2)):
        h = dA_t * h + dBu_t
        ys.append((h * C_t.unsqueeze(1)).sum(-1))
    return torch.stack(ys, dim=-1)


def make_inputs(batch, E, N, L, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, E, L, generator=g)
    delta = torch.nn.functional.softplus(torch.randn(batch, E, L, generator=g) - 2.0)
    A = -torch.exp(torch.randn(E, N, generator=g) * 0.5)
    B = torch.randn(batch, N, L, generator=g)
    C = torch.randn(batch, N, L, generator=g)
    return [t.to(device) for t in (u, delta, A, B, C)]


def method_fn(name):
    if name == "loop":
        return loop_scan
    return lambda u, delta, A, B, C: selective_scan(u, delta, A, B, C, backend=name)


def timed(fn, device, warmup, repeats):
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def bench_one(name, inputs, device, warmup, repeats):
    fn = method_fn(name)

    def forward():
        with torch.no_grad():
            fn(*inputs)

    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    grad_out = torch.randn(inputs[0].shape, generator=torch.Generator().manual_seed(1)).to(device)

    def forward_backward():
        y = fn(*leaves)
        torch.autograd.grad(y, leaves, grad_out)

    fwd, fwd_all = timed(forward, device, warmup, repeats)
    fb, fb_all = timed(forward_backward, device, warmup, repeats)
    return {"forward_s": fwd, "forward_backward_s": fb, "forward_runs_s": fwd_all, "forward_backward_runs_s": fb_all}


def machine_info(device):
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "load_average_1_5_15min": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        info["cuda_device"] = torch.cuda.get_device_name(device)
        info["cuda_version"] = torch.version.cuda
    return info


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 4096, 16384])
    parser.add_argument("--E", type=int, default=128, help="expanded width (channels)")
    parser.add_argument("--N", type=int, default=16, help="state size")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=None,
                        help="subset of loop ref parallel mamba_ssm (default: all that run here)")
    parser.add_argument("--slow-max-length", type=int, default=None,
                        help="skip loop and ref above this length (they grow linearly with slow steps)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads for the run (default: torch's choice); 1 gives stable "
                             "numbers on a CPU shared with other jobs")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch.cuda.is_available() is False; use --device cpu")
    runnable = ["loop"] + available_backends(device)
    methods = args.methods or runnable
    missing = [m for m in methods if m not in runnable]
    if missing:
        parser.error(f"method(s) {missing} cannot run on {device.type}; available: {runnable}")

    info_start = machine_info(device)
    rows = []
    print(f"selective scan benchmark on {device} (torch {torch.__version__}, {torch.get_num_threads()} threads), "
          f"batch={args.batch} E={args.E} N={args.N}, median of {args.repeats}")
    for L in args.lengths:
        inputs = make_inputs(args.batch, args.E, args.N, L, device)
        for name in methods:
            if name in ("loop", "ref") and args.slow_max_length is not None and L > args.slow_max_length:
                continue
            result = bench_one(name, inputs, device, args.warmup, args.repeats)
            rows.append({"L": L, "method": name, **result})
            print(f"  L={L:6d} {name:10s} fwd {result['forward_s'] * 1e3:10.2f} ms   "
                  f"fwd+bwd {result['forward_backward_s'] * 1e3:10.2f} ms", flush=True)

    speedups = []
    for L in args.lengths:
        by = {r["method"]: r for r in rows if r["L"] == L}
        if "parallel" not in by:
            continue
        for base in ("loop", "ref", "mamba_ssm"):
            if base in by:
                speedups.append({
                    "L": L, "baseline": base,
                    "forward": by[base]["forward_s"] / by["parallel"]["forward_s"],
                    "forward_backward": by[base]["forward_backward_s"] / by["parallel"]["forward_backward_s"],
                })

    print("\nspeed-up of parallel over each baseline (baseline time / parallel time; <1 means slower)")
    print(f"{'L':>7} {'baseline':>10} {'forward':>9} {'fwd+bwd':>9}")
    for s in speedups:
        print(f"{s['L']:7d} {s['baseline']:>10} {s['forward']:8.1f}x {s['forward_backward']:8.1f}x")

    args.out.mkdir(parents=True, exist_ok=True)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    info_end = machine_info(device)
    payload = {"machine": info_start, "load_average_at_end": info_end["load_average_1_5_15min"], "config": config, "timings": rows, "speedups": speedups}
    json_path = args.out / f"scan_benchmark_{device.type}.json"
    json_path.write_text(json.dumps(payload, indent=2))
    csv_path = args.out / f"scan_benchmark_{device.type}.csv"
    with csv_path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["device", "L", "E", "N", "batch", "method", "forward_ms", "forward_backward_ms"])
        for r in rows:
            writer.writerow([device.type, r["L"], args.E, args.N, args.batch, r["method"],
                             f"{r['forward_s'] * 1e3:.3f}", f"{r['forward_backward_s'] * 1e3:.3f}"])
    print(f"\nwrote {json_path} and {csv_path}")


if __name__ == "__main__":
    main()
