"""Table 2 and patch-count scaling: parameters, FLOPs, training-step time and peak memory.

Inputs are stated, not taken from a data set: one patient with ``--patches`` patch
tokens of width ``--wsi-dim`` spread over ``--regions`` regions, and a transcriptome
of the paper-scale synthetic KEGG-shaped hierarchy (1,577 genes, 352 functions,
45 processes). Every model is built from the registry with its defaults (width 512
unless a model's own paper says otherwise), so the comparison is like for like.

    python benchmarks/complexity.py --device cuda --out benchmarks/results
    python benchmarks/complexity.py --device cpu --patches 1024 --scaling 256 512 1024

Writes ``complexity_<device>.json``/``.csv`` (one row per model) and, with
``--scaling``, ``scaling_<device>.json``/``.csv`` (one row per model and patch count).
A model that runs out of memory gets ``oom`` in its row rather than stopping the run.
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

from survmamba_lite.data import PatientBag, collate_bags
from survmamba_lite.data.kegg import build_genomic_hierarchy
from survmamba_lite.data.synth import SCALES, synthetic_hierarchy
from survmamba_lite.registry import ModelInputs, build_model
from survmamba_lite.survival import nll_loss
from survmamba_lite.utils.complexity import measure_complexity

TABLE2_MODELS = ("transmil-kp", "mcat", "motcat", "survpath", "survmamba")
N_BINS = 4


def paper_hierarchy(seed: int = 0):
    table, genes, _ = synthetic_hierarchy(SCALES["paper"], seed)
    return build_genomic_hierarchy(table, genes)[0]


def make_batch(n_patches: int, n_regions: int, wsi_dim: int, n_genes: int, device: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    region = torch.arange(n_patches) % n_regions
    bag = PatientBag("benchmark", torch.randn(n_patches, wsi_dim, generator=g), region,
                     torch.randn(n_genes, generator=g), time=10.0, event=1, time_bin=1)
    return collate_bags([bag]).to(device)


def parse_model(spec: str) -> tuple[str, dict]:
    """``"survmamba:dim=128,expand=1"`` -> ``("survmamba", {"dim": 128, "expand": 1})``."""
    name, _, opts = spec.partition(":")
    options = {}
    for item in filter(None, opts.split(",")):
        key, _, value = item.partition("=")
        options[key] = json.loads(value) if value[:1].isdigit() or value in ("true", "false") else value
    return name, options


def measure(spec: str, inputs: ModelInputs, batch, device: str, repeats: int) -> dict:
    row = {"model": spec, "patches": int(batch.patch_mask.sum())}
    try:
        torch.manual_seed(0)
        name, options = parse_model(spec)
        model = build_model(name, inputs, **options).to(device)

        def loss(logits, b):
            return nll_loss(logits, b.time_bin, b.event)
        c = measure_complexity(model, batch, loss, repeats=repeats)
        row.update(c.to_dict())
        row["status"] = "ok"
    except torch.cuda.OutOfMemoryError:
        row["status"] = "oom"
    except RuntimeError as err:                      # CPU allocation failures
        if "memory" not in str(err).lower():
            raise
        row["status"] = "oom"
    finally:
        if device == "cuda":
            torch.cuda.empty_cache()
    print(json.dumps({k: row.get(k) for k in ("model", "patches", "params", "flops", "step_seconds",
                                              "peak_memory_bytes", "status")}), flush=True)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    p.add_argument("--models", nargs="+", default=list(TABLE2_MODELS),
                   help="registry names, optionally with options: survmamba:dim=128,expand=1")
    p.add_argument("--patches", type=int, default=4096, help="patch tokens of the Table 2 input")
    p.add_argument("--regions", type=int, default=16, help="regions they are spread over (4096 px / 256 px = 16x16 grid)")
    p.add_argument("--wsi-dim", type=int, default=768, help="patch-feature width F (CTransPath: 768)")
    p.add_argument("--scaling", type=int, nargs="*", default=[], help="patch counts for the scaling curves")
    p.add_argument("--patches-per-region", type=int, default=256, help="region size in the scaling runs")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but torch sees no CUDA device")

    hierarchy = paper_hierarchy()
    inputs = ModelInputs(n_bins=N_BINS, wsi_dim=args.wsi_dim, hierarchy=hierarchy)
    meta = {"device": args.device, "torch": torch.__version__, "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None,
            "cpu_threads": torch.get_num_threads(), "wsi_dim": args.wsi_dim, "n_genes": hierarchy.n_genes,
            "n_functions": hierarchy.n_functions, "n_processes": hierarchy.n_processes, "n_bins": N_BINS,
            "date": time.strftime("%Y-%m-%d"), "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:])}
    args.out.mkdir(parents=True, exist_ok=True)

    batch = make_batch(args.patches, args.regions, args.wsi_dim, hierarchy.n_genes, args.device)
    rows = [measure(m, inputs, batch, args.device, args.repeats) for m in args.models]
    (args.out / f"complexity_{args.device}.json").write_text(
        json.dumps({"meta": meta | {"patches": args.patches, "regions": args.regions}, "rows": rows}, indent=2))
    pd.DataFrame(rows).to_csv(args.out / f"complexity_{args.device}.csv", index=False)

    if args.scaling:
        srows = []
        for n in args.scaling:
            b = make_batch(n, max(1, n // args.patches_per_region), args.wsi_dim, hierarchy.n_genes, args.device)
            srows += [measure(m, inputs, b, args.device, args.repeats) for m in args.models]
        (args.out / f"scaling_{args.device}.json").write_text(json.dumps({"meta": meta, "rows": srows}, indent=2))
        pd.DataFrame(srows).to_csv(args.out / f"scaling_{args.device}.csv", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
