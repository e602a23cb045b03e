"""Finished run directories of ``survmamba cv``, read and checked: :class:`Run`, :func:`load_run`.

A run directory holds ``config.json`` (with its ``derived`` block), ``summary.json``, one
``fold_<k>/metrics.json`` per fold and ``oof_predictions.csv``; :func:`check_run_files`
refuses a run whose files disagree (a truncated or edited file would otherwise give numbers
from the wrong patients).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from survmamba_lite.errors import UserError
from survmamba_lite.experiment.config import ExperimentConfig
from survmamba_lite.experiment.predfiles import read_predictions
from survmamba_lite.experiment.rundir import model_label, read_run_config
from survmamba_lite.experiment.runfiles import CONFIG, METRICS, OOF, SUMMARY, fold_dir

__all__ = ["Run", "load_run", "load_runs", "check_run_files"]


@dataclass
class Run:
    """A finished run directory.

    Attributes:
        path: the directory.
        config: its :class:`ExperimentConfig`.
        derived: the ``derived`` block of ``config.json``.
        summary: ``summary.json``.
        folds: each fold's ``metrics.json``, in fold order.
        oof: ``oof_predictions.csv``.
        label: row label (the model's label, made unique among the loaded runs).
    """

    path: Path
    config: ExperimentConfig
    derived: dict
    summary: dict
    folds: list[dict]
    oof: pd.DataFrame
    label: str = ""

    @property
    def cohort(self) -> str:
        return str(self.derived.get("cohort") or self.derived.get("cohort_name") or "cohort")

    @property
    def fold_c_index(self) -> list[float]:
        return [float(m["c_index"]) for m in self.folds if m.get("c_index") is not None]


def _read_json(path: Path, fix: str) -> dict:
    if not path.is_file():
        raise UserError(f"{path}: missing; {fix}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not valid JSON ({err}); {fix}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object; {fix}")
    return data


def check_run_files(path: Path, summary: dict, folds: list[dict], oof: pd.DataFrame) -> None:
    """Check a run's ``oof_predictions.csv`` and fold metrics against its ``summary.json``.

    A truncated or edited file would otherwise give numbers from the wrong patients
    without a word. Raises :class:`UserError` naming the file and the disagreement.
    """
    fix = f"rerun the same `survmamba cv` command with --out {path} to rebuild it from the fold files"
    missing = [c for c in ("fold", "case_id", "time", "event", "risk") if c not in oof.columns]
    if missing:
        raise UserError(f"{path / OOF}: missing column(s) {missing}; {fix}")
    n_oof = summary.get("n_oof")
    if n_oof is not None and len(oof) != n_oof:
        raise UserError(f"{path / OOF}: has {len(oof)} rows but {SUMMARY} says n_oof {n_oof} (truncated or "
                        f"edited?); {fix}")
    bad = oof[["time", "event", "risk"]].apply(pd.to_numeric, errors="coerce").isna().any(axis=1)
    if bad.any():
        raise UserError(f"{path / OOF}: row of case {oof.loc[bad, 'case_id'].iloc[0]} has an empty or non-numeric "
                        f"time, event or risk ({int(bad.sum())} such row(s)); {fix}")
    listed = [int(k) for k in summary.get("folds", [])]
    present = sorted(int(k) for k in pd.unique(oof["fold"]))
    if sorted(listed) != present:
        raise UserError(f"{path / OOF}: holds folds {present} but {SUMMARY} lists folds {sorted(listed)}; {fix}")
    counts = oof["fold"].value_counts()
    for k, m in zip(listed, folds):
        if m.get("n_val") is not None and int(counts.get(k, 0)) != int(m["n_val"]):
            raise UserError(f"{path / OOF}: fold {k} has {int(counts.get(k, 0))} rows but "
                            f"{path / f'fold_{k}' / METRICS} says n_val {m['n_val']}; {fix}")


def load_run(path: str | Path) -> Run:
    """Read a finished run directory (it must hold ``summary.json``) and check its files agree."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such folder, so no {CONFIG}; give a run directory (the --out of "
                                "`survmamba cv`)")
    if not (path / CONFIG).is_file():
        raise FileNotFoundError(f"{path}: no {CONFIG}; is this a run directory of `survmamba cv`?")
    config, derived = read_run_config(path)
    if not (path / SUMMARY).is_file():
        raise UserError(f"{path}: the run is unfinished (no {SUMMARY}); rerun the same `survmamba cv` command "
                        f"with --out {path} to finish it")
    fix = f"rerun the same `survmamba cv` command with --out {path} to rebuild it"
    summary = _read_json(path / SUMMARY, fix)
    if not isinstance(summary.get("folds"), list):
        raise UserError(f"{path / SUMMARY}: no list of folds; {fix}")
    folds = [_read_json(fold_dir(path, k) / METRICS, f"fold {k} is listed in {SUMMARY}; {fix}")
             for k in summary["folds"]]
    if not (path / OOF).is_file():
        raise UserError(f"{path / OOF}: missing; {fix}")
    try:
        oof = read_predictions(path / OOF)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise UserError(f"{path / OOF}: not a readable CSV ({err}); {fix}") from None
    check_run_files(path, summary, folds, oof)
    for k, m in zip(summary["folds"], folds):      # two writers once left a config.json of other settings
        if m.get("epochs") is not None and m["epochs"] != config.epochs:
            raise UserError(f"{fold_dir(path, k) / METRICS}: fold {k} was trained for {m['epochs']} epochs but "
                            f"{path / CONFIG} says {config.epochs}; the run's files disagree: rerun it into a new "
                            "--out")
    label = derived.get("model_label") or model_label(config.model, dict(config.model_options))
    return Run(path, config, derived, summary, folds, oof, label)


def load_runs(paths: Sequence[str | Path], log: Callable[[str], None] | None = None) -> list[Run]:
    """Load runs, each once (a run given twice, e.g. by itself and in its grid folder, is read once and
    ``log`` says so); two runs with the same label on the same cohort get the end of their path that
    tells them apart appended (``SNN [grid_a/runs/blca/snn]``), so every table cell is one run's."""
    unique: dict[Path, Path] = {}
    for p in map(Path, paths):
        key = p.resolve()
        if key in unique:
            if log is not None:
                log(f"note: {p} is given twice (also as {unique[key]}); it is reported once")
            continue
        unique[key] = p
    runs = [load_run(p) for p in unique.values()]
    seen: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        seen.setdefault((r.label, r.cohort), []).append(r)
    for group in seen.values():
        if len(group) > 1:
            parts = [r.path.resolve().parts for r in group]
            k = next(k for k in range(1, max(map(len, parts)) + 1) if len({p[-k:] for p in parts}) == len(parts))
            for r, p in zip(group, parts):
                r.label = f"{r.label} [{'/'.join(p[-k:])}]"
    return runs
