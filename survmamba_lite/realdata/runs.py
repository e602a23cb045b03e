"""One (cohort, model) cross-validation of the real-data check and its summary record
(``runs/<cohort>__<model>.json``), and every model on every cohort (:func:`run_genomic_check`)."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from survmamba_lite.baselines.cox import run_cox_cv
from survmamba_lite.realdata.catalogue import DEFAULT_MODELS, MODELS, RUNS_DIR, SETTINGS, ModelRun, log
from survmamba_lite.realdata.evidence import write_row_evidence
from survmamba_lite.realdata.inner import INNER_DIR, inner_validation
from survmamba_lite.realdata.tables import run_file, write_genomic_table
from survmamba_lite.realdata.training import model_config
from survmamba_lite.survival import bootstrap_ci, concordance_index, fold_mean_bootstrap_ci
from survmamba_lite.utils.io import atomic_write_text

if TYPE_CHECKING:
    from survmamba_lite.experiment import ExperimentConfig

__all__ = ["summarise_predictions", "run_model_cv", "run_genomic_check"]


def summarise_predictions(frame: pd.DataFrame, fold_c_index: Sequence[float], *, n_boot: int = 1000,
                          seed: int = 0) -> dict[str, Any]:
    """Fold c-indices, mean ± sample std (``ddof=1``, as ``survmamba cv`` reports), the
    fold-mean bootstrap interval and the pooled out-of-fold c-index with its bootstrap
    interval (:func:`~survmamba_lite.survival.bootstrap_ci`, patients resampled)."""
    t, e, r = (frame["time"].to_numpy(float), frame["event"].to_numpy(int), frame["risk"].to_numpy(float))
    cis = [float(c) for c in fold_c_index]
    _, f_lo, f_hi = fold_mean_bootstrap_ci(frame, n_boot=n_boot, seed=seed)
    pooled = bootstrap_ci(concordance_index, t, r, e, n_boot=n_boot, seed=seed)
    return {
        "fold_c_index": cis, "c_index_mean": float(np.mean(cis)),
        "c_index_std": float(np.std(cis, ddof=1)) if len(cis) > 1 else None,
        "fold_mean_ci95": [f_lo, f_hi],
        "oof_c_index": float(pooled.estimate), "oof_ci95": [pooled.low, pooled.high],
        "n_boot": int(n_boot), "n_cases": int(len(frame)), "n_events": int(e.sum()),
    }


def run_model_cv(cohort_dir: str | os.PathLike, model: ModelRun, template: "ExperimentConfig", *,
                 work: str | os.PathLike, progress: bool = False,
                 fold_workers: int = 1) -> tuple[pd.DataFrame, list[float], dict]:
    """Cross-validate one model on one cohort folder.

    Registry models go through :func:`~survmamba_lite.experiment.run_cv` with ``template``
    (:func:`~survmamba_lite.realdata.training.training_template`: the paper's optimiser, the last
    epoch's model evaluated, no early stopping) made the model's
    (:func:`~survmamba_lite.realdata.training.model_config`); the run directory is
    ``work/<model.key>`` and resumes. ``"cox"`` is :func:`run_cox_cv` on the template's folds.
    ``fold_workers`` > 1 trains that many folds at once, each in its own process
    (:func:`~survmamba_lite.experiment.run_cv`'s ``workers``; the results are those of the
    folds one after another).

    Returns:
        out-of-fold predictions (``fold, case_id, time, event, risk``), fold c-indices and
        the settings that made them.
    """
    if model.registry == "cox":
        oof, cis = run_cox_cv(cohort_dir, folds=template.folds, **dict(model.options))
        return oof, cis, {"model": "cox", **dict(model.options), "l1_ratio": 0.0,
                          "normalisation": "per-gene z-score fitted on the training fold"}
    from survmamba_lite.experiment import run_cv

    config = model_config(template, model, cohort_dir, Path(work) / model.key)
    result = run_cv(config, progress=progress and fold_workers <= 1, workers=fold_workers)
    oof = result.oof[["fold", "case_id", "time", "event", "risk"]].copy()
    cis = [float(m["c_index"]) for m in result.folds]
    settings = config.to_dict()
    for k in ("cohort_dir", "out_dir"):
        settings.pop(k)
    settings["train_seconds"] = float(result.summary.get("seconds_total") or 0.0)
    settings["model_options_resolved"] = {k: v for k, v in config.resolved_model_options().items()
                                          if isinstance(v, (int, float, str, bool, type(None)))}
    return oof, cis, settings


def run_genomic_check(cohort_dirs: Mapping[str, str | os.PathLike], out: str | os.PathLike,
                      template: "ExperimentConfig", *, work: str | os.PathLike, models: Sequence[str] = DEFAULT_MODELS,
                      model_table: Mapping[str, ModelRun] = MODELS, n_boot: int = 1000, setting: str = "cpu",
                      inner_val: bool = False, progress: bool = False, fold_workers: int = 1,
                      log: Callable[[str], None] = log) -> pd.DataFrame:
    """Every model on every cohort folder; one ``runs/<cohort>__<model>.json`` each, then the table.

    Args:
        cohort_dirs: ``{cohort key: imported cohort folder}``, run in this order.
        out: result folder (``runs/``, ``genomic_table.csv``/``.md``).
        template: the deep models' training settings
            (:func:`~survmamba_lite.realdata.training.training_template`: epochs, folds, seed,
            threads, device, precision, CUDA graphs); its seed also seeds the bootstrap.
        work: scratch folder for the experiments' run directories.
        models: keys of ``model_table``.
        n_boot: bootstrap replicates of the intervals.
        setting: ``"cpu"``, ``"paper"`` or ``"smoke"`` (:data:`SETTINGS`), the width label of the rows.
        inner_val: also run :func:`~survmamba_lite.realdata.inner.inner_validation` for every
            deep model (``inner/<cohort>__<model>.json``; training folds only).
        progress: the trainer's progress bars.
        fold_workers: folds of a deep model trained at once, one process each (:func:`run_model_cv`).
        log: where one-line messages go.
    """
    from survmamba_lite.data.layout import load_cohort

    out, work = Path(out), Path(work)
    (out / RUNS_DIR).mkdir(parents=True, exist_ok=True)
    unknown = [m for m in models if m not in model_table]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {', '.join(model_table)}")
    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {sorted(SETTINGS)}, got {setting!r}")
    for cohort_key, cohort_dir in cohort_dirs.items():
        cohort = load_cohort(cohort_dir)
        name = str(cohort.manifest.get("cohort", cohort_key)).upper()
        for mkey in models:
            model = model_table[mkey]
            start = time.perf_counter()
            oof, cis, settings = run_model_cv(cohort_dir, model, template, work=work / "runs" / cohort_key,
                                              progress=progress, fold_workers=fold_workers)
            wall = time.perf_counter() - start
            summary = summarise_predictions(oof, cis, n_boot=n_boot, seed=template.seed)
            evidence = write_row_evidence(out, cohort_dir, cohort_key, mkey, oof, None if model.registry == "cox"
                                          else work / "runs" / cohort_key / model.key)
            record = {
                "cohort_key": cohort_key, "cohort": name, "source": cohort.manifest.get("source"),
                "model_key": mkey, "label": model.label, "paper_row": model.paper_row,
                "n_genes": cohort.hierarchy.n_genes, "n_functions": cohort.hierarchy.n_functions,
                "n_processes": cohort.hierarchy.n_processes,
                "epochs": None if model.registry == "cox" else template.epochs, "setting": setting, **summary,
                "wall_s": round(wall, 1), "compute_s": round(float(settings.get("train_seconds", wall)), 1),
                "settings": settings,
                "splits": "published 5-fold splits of the source release", "evidence": evidence,
            }
            atomic_write_text(run_file(out, cohort_key, mkey), json.dumps(record, indent=1) + "\n")
            log(f"[{cohort_key} / {model.label}] c-index {summary['c_index_mean']:.3f} ± "
                f"{summary['c_index_std'] or 0:.3f} (folds {' '.join(f'{c:.3f}' for c in cis)}; 95% CI of the mean "
                f"{summary['fold_mean_ci95'][0]:.3f}-{summary['fold_mean_ci95'][1]:.3f}; pooled OOF "
                f"{summary['oof_c_index']:.3f} [{summary['oof_ci95'][0]:.3f}, {summary['oof_ci95'][1]:.3f}]) "
                f"in {wall:.0f} s")
            write_genomic_table(out)                 # the table so far, rebuilt after every run
            if inner_val and model.registry != "cox":
                rec = inner_validation(cohort_dir, model, template, work=work / "inner" / cohort_key,
                                       progress=progress, log=log)
                rec.update({"cohort_key": cohort_key, "cohort": name, "setting": setting})
                (out / INNER_DIR).mkdir(exist_ok=True)
                atomic_write_text(out / INNER_DIR / f"{cohort_key}__{mkey}.json", json.dumps(rec, indent=1) + "\n")
                write_genomic_table(out)
    return write_genomic_table(out)
