#!/usr/bin/env bash
# The GPU efficiency benchmarks of the book's efficiency chapter, on one CUDA device.
#
#   bash benchmarks/gpu_benchmarks.sh OUT_DIR [SIZES...]        (default sizes: 4096 16384 65536 131072)
#   PRECISIONS="fp32 tf32 bf16" bash benchmarks/gpu_benchmarks.sh OUT_DIR 8192 32768
#
# 1. every Table 2 model (and SurvMamba with recomputation from 4,096 tokens) with eager steps;
# 2. SurvMamba and SurvPath with steps replayed from CUDA graphs, each model in its own process
#    (a model whose step cannot be recorded leaves the CUDA context unusable for the rest);
# 3. merge into OUT_DIR/complexity_cuda.csv (+ .json), appending to rows already there.
# Needs `make gpu-setup` first for the fused kernels (otherwise SurvMamba runs the PyTorch scan).
set -euo pipefail
out=${1:?usage: gpu_benchmarks.sh OUT_DIR [SIZES...]}; shift
sizes=${*:-4096 16384 65536 131072}
precisions=${PRECISIONS:-fp32 bf16}
here=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH="$here/..:$here${PYTHONPATH:+:$PYTHONPATH}"
parts=${PARTS_DIR:-$(mktemp -d)}; mkdir -p "$parts"
python3 "$here/complexity.py" --device cuda --sizes $sizes --precision $precisions --cuda-graphs off \
    --models transmil-kp mcat motcat survpath survmamba survmamba:recompute_tokens=4096 --out "$parts" --tag _eager
for m in survmamba survpath; do
    python3 "$here/complexity.py" --device cuda --sizes $sizes --precision $precisions --cuda-graphs on \
        --models "$m" --out "$parts" --tag "_graphs_$m" || echo "gpu_benchmarks: $m with CUDA graphs exited with $?" >&2
done
python3 - "$out" "$parts" <<'PY'
import json, sys
from pathlib import Path
import pandas as pd
out, parts = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
runs = [json.loads(p.read_text()) for p in sorted(parts.glob("complexity_cuda_*.json"))]
rows = [r for run in runs for r in run["rows"]]
meta = runs[0]["meta"] | {"commands": [run["meta"]["command"] for run in runs]}
old = out / "complexity_cuda.json"
if old.is_file():                                     # append to an earlier run of this script
    prev = json.loads(old.read_text())
    if "commands" in prev.get("meta", {}):
        meta["commands"] = prev["meta"]["commands"] + meta["commands"]
        keys = {(r["model"], r["patches"], r["precision"], r.get("cuda_graphs", False)) for r in rows}
        rows = [r for r in prev["rows"] if (r["model"], r["patches"], r["precision"], r.get("cuda_graphs", False))
                not in keys] + rows
old.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
frame = pd.DataFrame(rows).sort_values(["patches", "precision", "cuda_graphs", "model"])
frame.to_csv(out / "complexity_cuda.csv", index=False)
print(frame[["model", "patches", "precision", "cuda_graphs", "step_seconds", "peak_memory_bytes",
             "gpu_busy_fraction", "kernels", "status"]].to_string(index=False))
PY
