"""Inner validation of a real-data run, one process per outer fold, then merged into the run folder.

The real-data command's ``--inner-val`` trains the inner splits of a (cohort, model) one outer
fold after another. On a GPU host the five outer folds can train at once, one process each
(the same results: each fold has its own seeded split and run folder):

    for k in 0 1 2 3 4; do
      python scripts/inner_validation.py fold --cohort-dir W/cohorts/brca --model snntrans --fold $k \\
          --work W/inner/brca --json W/inner_json/brca__snntrans__$k.json --device cuda --cuda-graphs \\
          --probe functions encoder.fc encoder.norm head &
    done; wait
    python scripts/inner_validation.py merge --out results/real_data/paper_width --cohort-key brca W/inner_json/brca__snntrans__*.json

``--set KEY=VALUE`` (repeatable) trains the same inner splits with another training setting,
e.g. ``--set weight_decay=0`` or ``--set optimizer=adamw``; the merged file is then
``inner/<cohort>__<model>__<setting-value>.json`` beside the reported settings' file, and the
table ``inner_validation.md`` lists it as a variant. Only the training folds are read.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from survmamba_lite.errors import UserError  # noqa: E402  (after the path line, as a script)


def _value(text: str):
    """``"0"`` -> 0.0, ``"adamw"`` -> ``"adamw"`` (numbers as floats, as the config's rates are)."""
    try:
        return float(text)
    except ValueError:
        return text


def parse_sets(items: list[str]) -> dict:
    """``["weight_decay=0", "optimizer=adamw"]`` -> ``{"weight_decay": 0.0, "optimizer": "adamw"}``.

    >>> parse_sets(["weight_decay=0", "optimizer=adamw"])
    {'weight_decay': 0.0, 'optimizer': 'adamw'}
    """
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE, e.g. --set weight_decay=0")
        out[key.strip()] = _value(value.strip())
    return out


def _read_record(path: str) -> dict:
    """A fold record written by ``fold``, or a one-line error naming the file."""
    try:
        rec = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SystemExit(f"merge: {path}: no such fold record; give the --json files that `fold` wrote") from None
    except json.JSONDecodeError as e:
        raise SystemExit(f"merge: {path}: not a JSON fold record ({e}); run `fold` for that fold again") from None
    if not isinstance(rec, dict) or not isinstance(rec.get("folds"), list) or "model_key" not in rec:
        raise SystemExit(f"merge: {path}: not a fold record of scripts/inner_validation.py (no model_key or folds)")
    return rec


def run_fold(args) -> None:
    from survmamba_lite.realdata import PAPER_MODELS
    from survmamba_lite.realdata.catalogue import with_width
    from survmamba_lite.realdata.inner import inner_validation
    from survmamba_lite.realdata.training import training_template

    table = with_width(PAPER_MODELS, args.dim) if args.dim else PAPER_MODELS
    if args.model not in table:
        raise SystemExit(f"--model {args.model!r}: not a real-data model; choose one of {sorted(table)}")
    t0 = time.time()
    template = training_template(epochs=args.epochs, seed=args.seed, folds=[args.fold], threads=1, device=args.device,
                                 precision=args.precision, cuda_graphs=args.cuda_graphs)
    rec = inner_validation(args.cohort_dir, table[args.model], template, work=args.work,
                           overrides=parse_sets(args.set) or None, probe=args.probe)
    rec["wall_s"] = round(time.time() - t0, 1)
    rec["command"] = " ".join(["python", "scripts/inner_validation.py", *sys.argv[1:]])
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(rec, indent=1) + "\n", encoding="utf-8")


def merge(args) -> None:
    from survmamba_lite.realdata import COHORTS
    from survmamba_lite.realdata.inner import INNER_DIR, inner_table, inner_table_markdown, variant_tag
    from survmamba_lite.utils.io import atomic_write_text

    parts = [_read_record(p) for p in args.json]
    if not parts:
        raise SystemExit("merge: no fold records given")
    first = parts[0]
    for p, part in zip(args.json, parts):
        for key in ("model_key", "label", "overrides", "settings"):
            if part.get(key) != first.get(key):
                raise SystemExit(f"merge: {p} has another {key} ({part.get(key)!r}) than {args.json[0]} "
                                 f"({first.get(key)!r}); merge the folds of one model and setting")
    folds = sorted((f for part in parts for f in part["folds"]), key=lambda f: f["outer_fold"])
    seen = [f["outer_fold"] for f in folds]
    if len(set(seen)) != len(seen):
        raise SystemExit(f"merge: outer folds {seen} repeat; give each fold's record once")
    rec = {**{k: v for k, v in first.items() if k not in ("folds", "wall_s", "command")}, "folds": folds,
           "cohort_key": args.cohort_key, "cohort": COHORTS[args.cohort_key].cohort if args.cohort_key in COHORTS
           else args.cohort_key, "setting": args.setting, "device": first["settings"]["device"],
           "wall_s": max((part["wall_s"] for part in parts if part.get("wall_s") is not None), default=None),
           "commands": [part.get("command") for part in parts]}
    tag = variant_tag(rec.get("overrides"))
    name = f"{args.cohort_key}__{rec['model_key']}" + (f"__{tag}" if tag else "")
    out = Path(args.out)
    (out / INNER_DIR).mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / INNER_DIR / f"{name}.json", json.dumps(rec, indent=1) + "\n")
    atomic_write_text(out / "inner_validation.md", inner_table_markdown(inner_table(out)))
    print(f"wrote {out / INNER_DIR / name}.json ({len(folds)} folds)")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fold", help="the inner validation of one outer fold")
    f.add_argument("--cohort-dir", required=True, help="an imported cohort folder (realdata's W/cohorts/<key>)")
    f.add_argument("--model", required=True, help="a real-data model key, e.g. snntrans or survmamba-rna")
    f.add_argument("--fold", type=int, required=True, help="the outer fold")
    f.add_argument("--work", required=True, help="scratch folder for the inner runs (resumes)")
    f.add_argument("--json", required=True, help="where the fold's record is written")
    f.add_argument("--epochs", type=int, default=20)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--dim", type=int, help="all widths at this value (a smoke run); default the paper's widths")
    f.add_argument("--device", default="cpu")
    f.add_argument("--precision", choices=("fp32", "tf32", "bf16"), default="fp32")
    f.add_argument("--cuda-graphs", action="store_true")
    f.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="another training setting for a variant, e.g. weight_decay=0 (repeatable)")
    f.add_argument("--probe", nargs="*", default=[], metavar="MODULE",
                   help="dotted submodule names whose spread across patients is recorded, e.g. encoder.fc")
    m = sub.add_parser("merge", help="merge fold records into OUT/inner/ and rewrite inner_validation.md")
    m.add_argument("--out", required=True, help="the real-data results folder, e.g. results/real_data/paper_width")
    m.add_argument("--cohort-key", required=True, help="the cohort's key, e.g. brca")
    m.add_argument("--setting", default="paper", help="the run setting (paper, cpu or smoke)")
    m.add_argument("json", nargs="+", help="fold records written by `fold`")
    args = p.parse_args(argv)
    try:
        run_fold(args) if args.cmd == "fold" else merge(args)
    except (UserError, ValueError, FileNotFoundError) as e:   # bad cohort folder, setting or model option
        raise SystemExit(f"inner_validation {args.cmd}: {e}") from None


if __name__ == "__main__":
    main()
