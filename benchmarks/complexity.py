"""Table 2 and the patch-count grid: parameters, FLOPs, training-step time, memory, GPU use.

Inputs are stated, not taken from a data set: one patient with a given number of patch
tokens of width ``--wsi-dim`` in regions of ``--patches-per-region`` patches (a 4096 px
region cut into 256 px patches: 256), and a transcriptome of the paper-scale synthetic
KEGG-shaped hierarchy (1,577 genes, 352 functions, 45 processes). Every model is built
from the registry with its defaults (width 512 unless a model's own paper says
otherwise), so the comparison is like for like, and every model of a row group runs in the
same precision.

A training step is what training does per patient, measured by the one Table 2 harness
(:func:`survmamba_lite.experiment.table2.measure_model`, which the report uses too): forward
under the precision's autocast, each model's full training loss in float32 (the trainer's
``training_loss``: weighted NLL plus CLAM's instance loss where a model has one), backward, and
a RAdam step (``--no-optimizer`` leaves the step out). Per row:

* ``step_seconds``: the median of ``--repeats`` timed steps after one warm-up step;
* ``peak_memory_bytes``: ``torch.cuda.max_memory_allocated`` over those steps;
* ``gpu_busy_fraction``, ``kernels``: from one more step under ``torch.profiler``: the
  time the GPU spent in kernels and copies over the median step time, and the number of
  kernels launched;
* ``flops`` (one forward pass) and ``train_tflops = 3 * flops / step_seconds``;
* ``cuda_graphs``: whether the step was replayed from a CUDA graph (``--cuda-graphs on``;
  :class:`~survmamba_lite.experiment.step.GraphedTrainStep`, for every model alike; a
  model whose step cannot be recorded gets the reason in ``status``).

    python benchmarks/complexity.py --device cuda --precision fp32 tf32 bf16 \
        --sizes 4096 16384 65536 131072 --out benchmarks/results
    python benchmarks/complexity.py --device cpu --sizes 1024 --models survmamba survpath

Writes ``complexity_<device>.csv`` and ``.json`` (one row per model, size and precision;
the JSON adds the machine and the command). A model that runs out of memory gets ``oom``
in its row rather than stopping the run; a row whose first step takes longer than
``--slow-seconds`` is timed once.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from survmamba_lite.experiment.table2 import measure_model, synthetic_genes, synthetic_patient
from survmamba_lite.registry import ModelInputs
from survmamba_lite.ssm import available_backends
from survmamba_lite.ssm.bimamba import available_conv_backends
from survmamba_lite.utils.precision import PRECISIONS

TABLE2_MODELS = ("transmil-kp", "mcat", "motcat", "survpath", "survmamba")
N_BINS = 4


def parse_model(spec: str) -> tuple[str, dict]:
    """``"survmamba:dim=128,expand=1"`` -> ``("survmamba", {"dim": 128, "expand": 1})``."""
    name, _, opts = spec.partition(":")
    options = {}
    for item in filter(None, opts.split(",")):
        key, _, value = item.partition("=")
        options[key] = json.loads(value) if value[:1].isdigit() or value in ("true", "false") else value
    return name, options


def measure(spec: str, inputs: ModelInputs, batch, device: str, repeats: int, precision: str,
            optimizer: bool, flops_cache: dict, slow_seconds: float, cuda_graphs: bool = False) -> dict:
    row = {"model": spec, "patches": int(batch.patch_mask.sum()), "precision": precision, "cuda_graphs": cuda_graphs}
    try:
        name, options = parse_model(spec)
        key = (spec, row["patches"])                 # FLOPs do not depend on the precision: counted once
        c = measure_model(name, options, inputs, batch, repeats=repeats, precision=precision, optimizer=optimizer,
                          cuda_graphs=cuda_graphs, profile=device == "cuda", flops=flops_cache.get(key),
                          slow_seconds=slow_seconds)
        flops_cache[key] = {"total": c.flops, "matmul": c.flops_matmul, "scan": c.flops_scan}
        row.update(c.to_dict())
        row["status"] = "ok"
    except torch.cuda.OutOfMemoryError:
        row["status"] = "oom"
    except Exception as err:                         # e.g. a model that reads the host inside a graph
        if not cuda_graphs:
            raise
        row["status"] = f"graph capture failed: {type(err).__name__}: {str(err).splitlines()[0][:200]}"
    except RuntimeError as err:                      # CPU allocation failures
        if "memory" not in str(err).lower():
            raise
        row["status"] = "oom"
    finally:
        if device == "cuda":
            torch.cuda.empty_cache()
    print(json.dumps({k: row.get(k) for k in ("model", "patches", "precision", "cuda_graphs", "step_seconds", "peak_memory_bytes",
                                              "gpu_busy_fraction", "kernels", "train_tflops", "status")}),
          flush=True)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    p.add_argument("--models", nargs="+", default=list(TABLE2_MODELS),
                   help="registry names, optionally with options: survmamba:dim=128,expand=1")
    p.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192, 16384, 32768, 65536, 131072],
                   help="patch counts per slide")
    p.add_argument("--precision", nargs="+", default=["fp32"], choices=list(PRECISIONS),
                   help="precisions; every model runs in each")
    p.add_argument("--patches-per-region", type=int, default=256, help="region size (4096 px / 256 px = 16x16)")
    p.add_argument("--wsi-dim", type=int, default=768, help="patch-feature width F (CTransPath: 768)")
    p.add_argument("--repeats", type=int, default=5, help="timed steps per row")
    p.add_argument("--slow-seconds", type=float, default=2.0, help="time a row once when its first step is slower")
    p.add_argument("--no-optimizer", action="store_true", help="leave the RAdam step out of a training step")
    p.add_argument("--cuda-graphs", nargs="+", default=["off"], choices=["off", "on"],
                   help="eager steps (off) and/or steps replayed from a CUDA graph (on; GraphedTrainStep)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--tag", default="", help="suffix of the output names (complexity_<device><tag>.csv)")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but torch sees no CUDA device")

    hierarchy = synthetic_genes("paper")
    inputs = ModelInputs(n_bins=N_BINS, wsi_dim=args.wsi_dim, hierarchy=hierarchy)
    meta = {"device": args.device, "torch": torch.__version__, "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None,
            "cpu_threads": torch.get_num_threads(), "wsi_dim": args.wsi_dim, "n_genes": hierarchy.n_genes,
            "n_functions": hierarchy.n_functions, "n_processes": hierarchy.n_processes, "n_bins": N_BINS,
            "patches_per_region": args.patches_per_region, "optimizer_step": not args.no_optimizer,
            "scan_backends": available_backends(args.device), "conv_backends": available_conv_backends(args.device),
            "date": time.strftime("%Y-%m-%d"), "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:])}
    print(json.dumps(meta), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)

    rows, flops_cache = [], {}
    for n in args.sizes:
        batch = synthetic_patient(n, max(1, n // args.patches_per_region), args.wsi_dim, hierarchy.n_genes, args.device)
        for precision in args.precision:
            for graphs in args.cuda_graphs:
                rows += [measure(m, inputs, batch, args.device, args.repeats, precision, not args.no_optimizer,
                                 flops_cache, args.slow_seconds, graphs == "on") for m in args.models]
        del batch
    stem = f"complexity_{args.device}{args.tag}"
    (args.out / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    pd.DataFrame(rows).to_csv(args.out / f"{stem}.csv", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
