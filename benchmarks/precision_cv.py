"""Does bf16 change what SurvMamba learns? The same cross-validation in fp32 and in bf16.

    python benchmarks/precision_cv.py --cohort-dir cohorts/BLCA_paper --epochs 3 --out benchmarks/results/precision_cv

Runs ``survmamba cv`` for the given model once per precision (same seeds, folds and data;
the runs go concurrently, one process each), then compares the validation c-index fold by
fold. bf16 "matches fp32 within fold noise" when the mean paired difference is smaller than
the spread of the c-index across folds (its standard deviation in fp32) and the 95 %
t-interval of the paired difference contains 0. Writes ``precision_cv.json`` and ``.csv``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--cohort-dir", type=Path, required=True)
    p.add_argument("--model", default="survmamba")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--precisions", nargs=2, default=["fp32", "bf16"])
    p.add_argument("--device", default="cuda")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more `survmamba cv` arguments")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    procs, t0 = {}, time.perf_counter()
    for prec in args.precisions:
        cmd = [sys.executable, "-m", "survmamba_lite.cli", "cv", "--cohort-dir", str(args.cohort_dir),
               "--model", args.model, "--epochs", str(args.epochs), "--device", args.device,
               "--precision", prec, "--out", str(args.out / prec), "--quiet", *args.extra]
        log = (args.out / f"{prec}.log").open("w")
        procs[prec] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), cmd)
    for prec, (proc, cmd) in procs.items():
        if proc.wait() != 0:
            print(f"precision_cv: {' '.join(cmd)} exited with {proc.returncode}; see {args.out / (prec + '.log')}",
                  file=sys.stderr)
            return 2
    wall = time.perf_counter() - t0
    per_fold = {}
    for prec in args.precisions:
        for fold_dir in sorted((args.out / prec).glob("fold_*")):
            m = json.loads((fold_dir / "metrics.json").read_text())
            per_fold.setdefault(int(m["fold"]), {})[prec] = m["c_index"]
    frame = pd.DataFrame(per_fold).T.sort_index()
    frame.index.name = "fold"
    a, b = args.precisions
    diff = (frame[b] - frame[a]).to_numpy()
    n = len(diff)
    half = stats.t.ppf(0.975, n - 1) * diff.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")
    summary = {"model": args.model, "cohort_dir": str(args.cohort_dir), "epochs": args.epochs, "folds": n,
               "wall_seconds": wall, f"mean_{a}": float(frame[a].mean()), f"mean_{b}": float(frame[b].mean()),
               f"sd_{a}": float(frame[a].std(ddof=1)), "mean_diff": float(diff.mean()),
               "diff_ci95": [float(diff.mean() - half), float(diff.mean() + half)],
               "max_abs_diff": float(np.abs(diff).max())}
    summary["within_fold_noise"] = bool(abs(summary["mean_diff"]) < summary[f"sd_{a}"]
                                        and summary["diff_ci95"][0] <= 0 <= summary["diff_ci95"][1])
    frame.to_csv(args.out / "precision_cv.csv")
    (args.out / "precision_cv.json").write_text(json.dumps({"summary": summary, "per_fold": frame.reset_index()
                                                            .to_dict(orient="records")}, indent=2) + "\n")
    print(frame.round(4).to_string())
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
