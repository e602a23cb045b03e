"""The run directory of ``survmamba cv``: the cohort check, ``config.json``, the summary.

The layer below :mod:`~survmamba_lite.experiment.cv` and :mod:`~survmamba_lite.experiment.jobs`
(both use it; the layout is described in :mod:`~survmamba_lite.experiment.cv`).
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from survmamba_lite.data.features_h5 import read_features_h5
from survmamba_lite.data.layout import Cohort, load_cohort, make_folds, read_manifest
from survmamba_lite.errors import UserError
from survmamba_lite.experiment.config import OPERATIONAL_FIELDS, ExperimentConfig, config_differences
from survmamba_lite.experiment.inputs import check_inputs_unchanged, input_fingerprint, unchecked_note
from survmamba_lite.experiment.sampling import derive_seed
from survmamba_lite.experiment.runfiles import (CONFIG, METRICS, OOF, PREDICTIONS, SUMMARY, fold_dir, write_json)
from survmamba_lite.experiment.predfiles import read_predictions, write_predictions
from survmamba_lite.registry import accepted_options, get_model_spec, list_models
from survmamba_lite.survival import concordance_index
from survmamba_lite.utils.device import resolve_device
from survmamba_lite.utils.outputs import CV_RUN, MARKER, check_out_dir, claim_out_dir, clear_out_dir, foreign_files

__all__ = ["load_experiment_cohort", "check_model_fits_cohort", "check_folds_exist", "check_folds_have_deaths",
           "model_label",
           "cohort_wsi_dim", "derived_fields", "prepare_run_dir", "read_run_config", "summarise_run"]


def model_label(model: str, options: dict[str, Any]) -> str:
    """The row label of a run: the model's Table 1 name, plus its variant and direction
    when they differ from the model's defaults.

    >>> model_label("survmamba", {}), model_label("survmamba", {"variant": "C", "bidirectional": False})
    ('SurvMamba', 'SurvMamba (C, uni)')
    >>> model_label("abmil-kp", {"dim": 64})
    'ABMIL (KP)'
    """
    spec = get_model_spec(model)
    defaults = accepted_options(spec) or {}
    base = spec.table1_row or spec.name
    tags = []
    if "variant" in options and options["variant"] != defaults.get("variant"):
        tags.append(str(options["variant"]))
    if "bidirectional" in options and not options["bidirectional"] and defaults.get("bidirectional", True):
        tags.append("uni")
    return f"{base} ({', '.join(tags)})" if tags else base


def check_model_fits_cohort(model: str, cohort_modalities: list[str], where: str) -> None:
    """Raise a ValueError naming what is missing and which registered models fit the cohort."""
    spec = get_model_spec(model)
    missing = [m for m in spec.modalities if m not in cohort_modalities]
    if missing:
        names = {"wsi": "histology (wsi)", "rna": "transcriptomics (rna)"}
        fits = [s.name for s in list_models() if set(s.modalities) <= set(cohort_modalities)]
        raise ValueError(
            f"model {model!r} reads {' and '.join(names[m] for m in spec.modalities)}, but cohort {where} has "
            f"modalities {list(cohort_modalities)}: {', '.join(names[m] for m in missing)} missing. Models that fit "
            f"this cohort: {', '.join(fits) or 'none'}")


def _read_manifest_modalities(root: Path) -> list[str]:
    man = read_manifest(root)
    mods = man.get("modalities")
    if not isinstance(mods, list):
        raise ValueError(f"{root / 'manifest.yaml'}: no modalities list; run `survmamba validate {root}`")
    return mods


def load_experiment_cohort(config: ExperimentConfig) -> tuple[Cohort, str]:
    """Load and validate the cohort; make folds when it has none; apply ``max_cases``.

    Returns:
        the cohort (``folds`` possibly made or restricted) and a phrase saying where the folds came from.
    """
    root = Path(config.cohort_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such cohort folder (make one with `survmamba synth` or "
                                "`survmamba import-tcga`)")
    check_model_fits_cohort(config.model, _read_manifest_modalities(root), str(root))
    source = f"{root}/splits"
    cohort = load_cohort(root)
    if not cohort.folds:                             # validate_cohort accepts a cohort without splits/
        cohort = dataclasses.replace(cohort, folds=make_folds(cohort.clinical, k=config.n_folds, seed=config.seed))
        source = f"make_folds(k={config.n_folds}, seed={config.seed}) (the cohort has no splits/)"
    if config.max_cases is not None and config.max_cases < cohort.n_cases:
        rng = np.random.default_rng(derive_seed(config.seed, 0x5EED))
        keep = set(rng.choice(np.asarray(cohort.case_ids), size=config.max_cases, replace=False).tolist())
        folds = [([c for c in tr if c in keep], [c for c in va if c in keep]) for tr, va in cohort.folds]
        empty = [k for k, (_, va) in enumerate(folds) if not va]
        if empty:
            raise ValueError(f"max_cases={config.max_cases} leaves fold(s) {empty} without validation cases; "
                             "raise max_cases")
        cohort = dataclasses.replace(cohort, clinical=cohort.clinical.loc[[c for c in cohort.case_ids if c in keep]],
                                     folds=folds)
        source += f", restricted to a seeded subset of {config.max_cases} cases (max_cases)"
    check_folds_exist(config, cohort)
    check_folds_have_deaths(config, cohort, source)
    return cohort, source


def check_folds_exist(config: ExperimentConfig, cohort: Cohort) -> None:
    """Raise a ValueError when ``config.folds`` names a fold the cohort does not have."""
    if config.folds is not None:
        bad = [k for k in config.folds if k >= len(cohort.folds)]
        if bad:
            raise ValueError(f"fold(s) {bad} do not exist: cohort {cohort.name} has folds 0..{len(cohort.folds) - 1}")


def check_folds_have_deaths(config: ExperimentConfig, cohort: Cohort, source: str = "") -> None:
    """Raise a ValueError naming the first fold to run whose training cases hold fewer deaths than
    ``n_bins``: its time bins (quantiles of the training deaths) cannot be fitted. ``validate_cohort``
    checks the cohort's own folds for deaths; this catches folds made here or narrowed by ``max_cases``,
    and too many bins."""
    events = cohort.clinical["event"]
    for k in (config.folds if config.folds is not None else range(len(cohort.folds))):
        train = cohort.folds[k][0]
        deaths = sum(events.get(c) == 1 for c in train)
        if deaths >= config.n_bins:
            continue
        subset = "raise --max-cases" if config.max_cases is not None else "make folds stratified by event"
        if deaths == 0:
            raise ValueError(f"fold {k} ({source}): no death (event = 1) among its {len(train)} training cases, so "
                             f"its time bins (quantiles of the training deaths) cannot be fitted; {subset}")
        raise ValueError(f"fold {k} ({source}): {deaths} death(s) among its {len(train)} training cases cannot "
                         f"define --n-bins {config.n_bins} time bins (quantiles of the training deaths); give "
                         f"--n-bins {deaths} or fewer, or {subset}")


def cohort_wsi_dim(cohort: Cohort) -> int | None:
    """The patch-feature width ``F`` of the cohort (its manifest, else its first feature file); None without slides."""
    if "wsi" not in cohort.modalities:
        return None
    width = (cohort.manifest.get("features") or {}).get("width")
    if width:
        return int(width)
    for cid in cohort.case_ids:
        for sid in cohort.slide_ids(cid):
            return int(read_features_h5(cohort.feature_path(sid)).features.shape[1])
    return None


def derived_fields(config: ExperimentConfig, cohort: Cohort, folds_source: str, wsi_dim: int | None) -> dict[str, Any]:
    """The informational ``derived`` block of ``config.json``: cohort, sizes, model label, torch, input fingerprint."""
    spec = get_model_spec(config.model)
    opts = config.resolved_model_options()
    h = cohort.hierarchy
    return {
        "cohort": str(cohort.manifest.get("cohort", cohort.name)),
        "cohort_name": cohort.name,
        "cohort_source": cohort.manifest.get("source"),
        "n_cases": cohort.n_cases,
        "n_folds": len(cohort.folds),
        "folds_source": folds_source,
        "modalities": list(config.modalities),
        "model_label": model_label(config.model, dict(config.model_options)),
        "table1_row": spec.table1_row,
        "variant": opts.get("variant"),
        "bidirectional": opts.get("bidirectional"),
        "wsi_dim": wsi_dim,
        "n_genes": h.n_genes if h is not None and "rna" in config.modalities else None,
        "n_functions": h.n_functions if h is not None and "rna" in config.modalities else None,
        "n_processes": h.n_processes if h is not None and "rna" in config.modalities else None,
        "torch": torch.__version__,
        "inputs": input_fingerprint(cohort.root, config.modalities),
    }


def read_run_config(out_dir: str | Path) -> tuple[ExperimentConfig, dict]:
    """``config.json`` of a run directory: the config and its ``derived`` block."""
    path = Path(out_dir) / CONFIG
    config = ExperimentConfig.load(path)
    derived = json.loads(path.read_text(encoding="utf-8")).get("derived", {})
    return config, derived


def prepare_run_dir(config: ExperimentConfig, derived: dict, overwrite: bool,
                    log: Callable[[str], None] | None = None) -> Path:
    """Check ``--out`` (and, on resume, that config and inputs are unchanged), then claim it.

    A run whose cohort folder moved (``cohort_dir`` differs) resumes when the recorded input
    fingerprint matches the cohort at its new place (:mod:`~survmamba_lite.experiment.inputs`);
    ``config.json`` then names the new place. The recorded fingerprint is kept as it was, so
    an older run's unchecked inputs stay unchecked (``log`` gets a note naming them).
    """
    out = Path(config.out_dir)
    if not str(config.out_dir):
        raise UserError("out_dir is empty: give the run directory (--out RUN_DIR)")
    resolve_device(config.device)                         # a missing CUDA device: refused before writing
    legacy = (out / CONFIG).is_file() and not (out / MARKER).exists() and not foreign_files(out, CV_RUN)
    state = "ours" if legacy else check_out_dir(out, CV_RUN, overwrite=overwrite, resume=True)
    if state == "ours" and overwrite:
        clear_out_dir(out, CV_RUN)
    elif state == "ours" and (out / CONFIG).is_file():
        try:
            old, old_derived = read_run_config(out)
        except (ValueError, TypeError) as err:
            raise UserError(f"{out / CONFIG} cannot be read as an experiment config ({err}); nothing was changed. "
                            f"Restore it, or choose a new --out (--overwrite would delete the run's finished "
                            f"folds in {out})") from None
        recorded = old_derived.get("inputs")
        moved = recorded and old.cohort_dir != config.cohort_dir
        diff = config_differences(old, config, ignore=(*OPERATIONAL_FIELDS, "cohort_dir") if moved else
                                  OPERATIONAL_FIELDS)
        for key in ("cohort_name", "n_cases"):
            if old_derived.get(key) not in (None, derived[key]) and not (moved and key == "cohort_name"):
                diff[f"cohort {key}"] = (old_derived.get(key), derived[key])
        if list(diff) == ["cohort_dir"]:
            raise UserError(f"{out} was made from the cohort {old.cohort_dir}, not {config.cohort_dir}, and records no "
                            "fingerprint of its inputs (an older survmamba), so a moved cohort cannot be checked: "
                            f"give --cohort-dir {old.cohort_dir} (move it back), or choose a new --out")
        if diff:
            listed = "; ".join(f"{k}: {_shown(a)} in the run, {_shown(b)} now" for k, (a, b) in diff.items())
            raise UserError(f"{out} holds a run with a different configuration ({listed}). Resuming would mix "
                            "results: use a new --out, or --overwrite to delete that run's files and start again")
        unchecked = check_inputs_unchanged(recorded, derived["inputs"], out, cohort_dir=config.cohort_dir)
        if moved and log is not None:
            log(f"{out}: the cohort moved from {old.cohort_dir} to {config.cohort_dir}; its files match the run's "
                "fingerprints, so the run resumes from the new place")
        note = unchecked_note(out, unchecked, recorded)
        if note and log is not None:
            log(note)
        derived = {**derived, "inputs": recorded}
    claim_out_dir(out, CV_RUN)
    config.save(out / CONFIG, derived=derived)
    return out


def _shown(value: Any) -> str:
    """A config value in a message: text quoted, numbers and lists as written."""
    return repr(value) if isinstance(value, str) else json.dumps(value)


# --------------------------------------------------------------------------- summary
def _mean_std(values: list[float | None]) -> dict[str, Any]:
    v = [float(x) for x in values if x is not None]
    return {"mean": float(np.mean(v)) if v else None,
            "std": float(np.std(v, ddof=1)) if len(v) >= 2 else None,
            "n": len(v), "values": list(values)}


def summarise_run(out_dir: Path, config: ExperimentConfig, derived: dict, fold_ids: list[int]
                  ) -> tuple[dict, pd.DataFrame]:
    """Build ``summary.json`` and ``oof_predictions.csv`` from finished folds (and write them).

    ``std`` is the sample standard deviation over folds (``ddof=1``). ``oof_c_index`` is
    Harrell's C of all out-of-fold risks pooled (every fold's model scores its own
    validation cases; risks ``-sum_k S_k`` share the scale ``[-T, 0]``).
    """
    metrics, frames = [], []
    for k in fold_ids:
        folder = fold_dir(out_dir, k)
        metrics.append(json.loads((folder / METRICS).read_text(encoding="utf-8")))
        pred = read_predictions(folder / PREDICTIONS)
        pred.insert(0, "fold", k)
        frames.append(pred)
    oof = pd.concat(frames, ignore_index=True)
    s_cols = sorted((c for c in oof.columns if c.startswith("S_")), key=lambda c: int(c[2:]))
    oof = oof[[c for c in oof.columns if c not in s_cols] + s_cols]
    try:
        pooled = float(concordance_index(oof["time"].to_numpy(), oof["risk"].to_numpy(), oof["event"].to_numpy()))
    except ValueError:
        pooled = None
    summary = {
        "model": config.model, "label": derived.get("model_label"), "cohort": derived.get("cohort"),
        "cohort_name": derived.get("cohort_name"), "folds": fold_ids,
        "c_index": _mean_std([m["c_index"] for m in metrics]),
        "c_index_td": _mean_std([m["c_index_td"] for m in metrics]),
        "ibs": _mean_std([m["ibs"] for m in metrics]),
        "oof_c_index": pooled, "n_oof": int(len(oof)),
        "seconds_total": float(sum(m["seconds"] for m in metrics)),
        "cases_per_second": _mean_std([m.get("cases_per_second") for m in metrics])["mean"],
        "gpu_utilization": _mean_std([m.get("gpu_utilization") for m in metrics])["mean"],
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    write_predictions(out_dir / OOF, oof)
    write_json(out_dir / SUMMARY, summary)
    return summary, oof


# --------------------------------------------------------------------------- the run
