"""Ingest the real-data rows a device call returned (``results.tgz`` of scripts/realdata_device.sh).

    python scripts/realdata_ingest.py results.tgz --out results/real_data/paper_width

For every finished row in the archive (``out/<row>/runs/<row>.json`` with its ``predictions/``):
the row's fold and pooled c-indices are recomputed from its predictions file and must equal its
record (:func:`survmamba_lite.realdata.evidence.check_row_evidence`); then the record and its
evidence files replace the row's in ``--out`` (``runs/`` and ``predictions/``), the command lines
are appended to ``--out/commands.jsonl`` (each line once) and the tables are rebuilt
(``realdata.write_genomic_table``). Nothing is written when any row fails its check. Rows of a
smoke test (``--dim``) are refused unless ``--allow-smoke`` (a test of this script).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

from survmamba_lite.realdata import write_genomic_table
from survmamba_lite.realdata.evidence import PREDICTIONS_DIR, check_row_evidence, evidence_paths


def ingest(archive: Path, out: Path, allow_smoke: bool = False) -> list[str]:
    """Check and copy every finished row of ``archive`` into ``out``; returns the rows ingested."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        records = sorted(tmp.glob("out/*/runs/*.json"))
        if not records:
            raise SystemExit(f"{archive}: no finished row (out/<row>/runs/*.json); nothing ingested")
        rows, problems = [], []
        for path in records:
            rec = json.loads(path.read_text(encoding="utf-8"))
            row_dir = path.parent.parent
            if rec.get("setting") == "smoke" and not allow_smoke:
                problems.append(f"{path.relative_to(tmp)}: a smoke-test row (--dim); not a result")
                continue
            bad = check_row_evidence(row_dir, rec)
            if bad:
                problems.append(f"{path.relative_to(tmp)}: " + "; ".join(bad))
            rows.append((row_dir, rec))
        if problems:
            raise SystemExit("nothing ingested:\n  " + "\n  ".join(problems))
        (out / "runs").mkdir(parents=True, exist_ok=True)
        (out / PREDICTIONS_DIR).mkdir(exist_ok=True)
        done = []
        for row_dir, rec in rows:
            ck, mk = rec["cohort_key"], rec["model_key"]
            shutil.copy2(row_dir / "runs" / f"{ck}__{mk}.json", out / "runs" / f"{ck}__{mk}.json")
            for name, src in evidence_paths(row_dir, ck, mk).items():
                dst = evidence_paths(out, ck, mk)[name]
                if src.is_file():
                    shutil.copy2(src, dst)
                else:
                    dst.unlink(missing_ok=True)
            done.append(f"{ck}__{mk}")
        log = out / "commands.jsonl"
        seen = set(log.read_text(encoding="utf-8").splitlines()) if log.is_file() else set()
        with log.open("a", encoding="utf-8") as f:
            for cmd in sorted(tmp.glob("out/*/commands.jsonl")):
                for line in cmd.read_text(encoding="utf-8").splitlines():
                    if line.strip() and line not in seen:
                        f.write(line + "\n")
                        seen.add(line)
        write_genomic_table(out)
    return done


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("archive", type=Path, help="results.tgz returned by scripts/realdata_device.sh poll")
    p.add_argument("--out", type=Path, default=Path("results/real_data/paper_width"), help="the result folder")
    p.add_argument("--allow-smoke", action="store_true", help="accept smoke-test rows (a test of this script)")
    args = p.parse_args(argv)
    if not args.archive.is_file():
        print(f"{args.archive}: no such file", file=sys.stderr)
        return 2
    done = ingest(args.archive, args.out, args.allow_smoke)
    print(f"ingested {len(done)} row(s) into {args.out}: {' '.join(done)}")
    missing = [p.stem for p in sorted((args.out / "runs").glob("*.json"))
               if not evidence_paths(args.out, *p.stem.split("__", 1))["predictions"].is_file()]
    print(f"rows still without per-case predictions: {' '.join(missing) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
