r"""Inner validation of the real-data runs: diagnose a constant-risk collapse from the
training folds only.

A model whose predicted risk hardly varies between patients has a c-index near 0.5 on
any set, and below 0.5 by chance. Whether that comes from the model not learning at all
(an optimisation defect), from learning only the training patients (overfitting) or from
a signal too weak for the setting can be told apart **without the outer validation fold**:

1. for outer fold ``k`` the training ids are split again (:func:`~survmamba_lite.data.make_folds`,
   stratified by event and follow-up, ``inner_k = 5``: 80% inner-train, 20% inner-validation,
   seeded by ``(seed, k)``); the outer validation ids are never read;
2. the model is trained on inner-train with exactly the settings of the reported run
   (:func:`~survmamba_lite.experiment.trainer.train_fold`: same config, same epochs), its
   inner-validation c-index recorded after every epoch;
3. the last epoch's model predicts inner-train and inner-validation; recorded are both
   c-indices and the spread of the predicted risk ``r = -sum_k S_k`` (in time bins): its
   standard deviation and range over patients.

The rule, fixed before any run: a fold **collapsed** when the standard deviation of the
inner-validation risk is below :data:`COLLAPSE_RISK_STD` (0.01 bins, i.e. the expected
number of bins survived differs by about 1% of a bin between typical patients). A collapsed
fold whose inner-*train* c-index is also near 0.5 (below :data:`LEARNED_TRAIN_C` = 0.6)
did not learn; one with a high inner-train c-index fits its training patients with an
almost constant risk elsewhere.

Two further tools tell *where* a collapse comes from, still on the training folds only:
``probe`` records, for named parts of the trained model, how much their output varies between
patients and how large their parameters are (:func:`stage_spread`), and ``overrides`` trains
the same inner splits with other training settings (e.g. ``{"weight_decay": 0.0}``), recorded
as a variant of the model (:func:`variant_suffix`, :func:`variant_tag`).
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["COLLAPSE_RISK_STD", "LEARNED_TRAIN_C", "risk_spread", "stage_spread", "variant_suffix", "variant_tag",
           "inner_validation", "inner_table", "inner_table_markdown", "INNER_DIR"]

#: standard deviation of the risk (in time bins) below which predictions count as constant
COLLAPSE_RISK_STD = 0.01
#: inner-train c-index from which a model counts as having learned its training patients
LEARNED_TRAIN_C = 0.6
INNER_DIR = "inner"


def risk_spread(risk: Any) -> dict[str, float]:
    """Spread of predicted risks ``(n,)``: standard deviation, range and the collapse flag.

    >>> risk_spread([-2.0, -2.0, -2.0])["collapsed"], risk_spread([-1.0, -2.0, -3.0])["risk_std"]
    (True, 1.0)
    """
    r = np.asarray(risk, dtype=np.float64)
    std = float(r.std(ddof=1)) if r.size > 1 else 0.0
    return {"risk_std": std, "risk_range": float(r.max() - r.min()) if r.size else 0.0,
            "risk_mean": float(r.mean()) if r.size else float("nan"), "collapsed": bool(std < COLLAPSE_RISK_STD)}


def variant_suffix(overrides: Mapping[str, Any] | None) -> str:
    """The label suffix and file tag of a training-setting variant (empty for the reported settings).

    >>> variant_suffix({"weight_decay": 0.0}), variant_suffix({"optimizer": "adamw", "weight_decay": 0.005})
    ('weight_decay=0', 'optimizer=adamw, weight_decay=0.005')
    >>> variant_suffix(None)
    ''
    """
    if not overrides:
        return ""
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(overrides.items()))


def variant_tag(overrides: Mapping[str, Any] | None) -> str:
    """:func:`variant_suffix` as a file-name part: the variant's work folder and record file.

    >>> variant_tag({"optimizer": "adamw", "weight_decay": 0.005}), variant_tag({})
    ('optimizer-adamw__weight_decay-0.005', '')
    """
    return variant_suffix(overrides).replace(", ", "__").replace("=", "-")


def stage_spread(net, dataset, config, device, stages: Sequence[str]) -> dict[str, Any]:
    """How much named parts of a trained model vary between patients (eval mode, one patient at a time).

    For each dotted submodule name in ``stages`` (e.g. ``"functions"``, ``"encoder.fc"``): its
    output over the patients of ``dataset`` flattened to ``(n, ...)``; recorded are the standard
    deviation across patients (mean and max over the output's elements), the mean absolute
    value, the fraction of positive elements, and the root mean square of the submodule's
    parameters. An output that no longer depends on the patient has a standard deviation of 0.

    Args:
        net: the trained model (on ``device``).
        dataset: a :class:`~survmamba_lite.data.dataset.CohortDataset` of the patients to read.
        config: the run's :class:`~survmamba_lite.experiment.ExperimentConfig` (precision, patches).
        device: the torch device.
        stages: dotted submodule names of ``net``.
    """
    import torch

    from survmamba_lite.experiment.evaluation import predict

    seen: dict[str, list] = {name: [] for name in stages}
    hooks = [net.get_submodule(name).register_forward_hook(
        lambda _m, _i, out, name=name: seen[name].append(out.detach().float().cpu())) for name in stages]
    try:
        predict(net, dataset, config, device)
    finally:
        for h in hooks:
            h.remove()
    res = {}
    for name, outs in seen.items():
        x = torch.cat([o.reshape(o.shape[0], -1) for o in outs], 0)              # (n, elements)
        params = [p.detach().float().reshape(-1) for p in net.get_submodule(name).parameters()]
        flat = torch.cat(params) if params else torch.zeros(0)
        std = x.std(0) if x.shape[0] > 1 else torch.zeros(x.shape[1])
        res[name] = {"std_across_patients_mean": float(std.mean()), "std_across_patients_max": float(std.max()),
                     "mean_abs": float(x.abs().mean()), "fraction_positive": float((x > 0).float().mean()),
                     "param_rms": float(flat.pow(2).mean().sqrt()) if flat.numel() else None}
    return res


def _c_index(frame: pd.DataFrame) -> float | None:
    from survmamba_lite.survival import concordance_index

    try:
        return float(concordance_index(frame["time"], frame["risk"], frame["event"]))
    except ValueError:
        return None


def inner_validation(cohort_dir: str | os.PathLike, model, template, *, work: str | os.PathLike, inner_k: int = 5,
                     progress: bool = False, overrides: Mapping[str, Any] | None = None, probe: Sequence[str] = (),
                     log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train ``model`` (a :class:`~survmamba_lite.realdata.ModelRun` of a registry model) on an
    inner split of each outer fold's training patients and report the collapse diagnosis.

    Args:
        cohort_dir: imported cohort folder.
        model: the run's model (same options as the reported run).
        template: the reported run's training settings
            (:func:`~survmamba_lite.realdata.training.training_template`); its ``folds`` are the outer folds
            (None: all), the rest trains every inner split.
        work: scratch folder; ``work/<model.key>/outer_<k>`` holds each inner run (resumes); a
            variant's runs are in ``work/<model.key>__<setting-value...>/``.
        inner_k: the inner split holds out ``1 / inner_k`` of the training patients.
        progress: the trainer's progress bars.
        overrides: training settings (fields of :class:`~survmamba_lite.experiment.ExperimentConfig`,
            e.g. ``{"weight_decay": 0.0}``) that replace the reported run's; None keeps them. The
            record's label then names the variant and ``overrides`` holds it.
        probe: dotted submodule names of the model whose spread across patients is recorded
            after training, on inner-train and inner-validation (:func:`stage_spread`).
        log: where one-line messages go.

    Returns:
        ``{"model_key", "label", "overrides", "settings", "folds": [per outer fold: sizes, per-epoch
        inner-val c-index, inner-train and inner-val c-index and risk spread, collapsed, learned,
        and with ``probe`` the stages' spread]}``.
    """
    from survmamba_lite.data import load_cohort
    from survmamba_lite.realdata.training import model_config
    from survmamba_lite.utils.device import torch_threads

    if model.registry == "cox":
        raise ValueError("inner_validation: the Cox reference has no training epochs to diagnose; pass a deep model")
    cohort = load_cohort(cohort_dir)
    fold_ids = list(range(len(cohort.folds))) if template.folds is None else list(template.folds)
    tag = variant_tag(overrides)
    base = Path(work) / (f"{model.key}__{tag}" if tag else model.key)       # a variant never resumes the reported run
    config = dataclasses.replace(model_config(template, model, cohort_dir, base), folds=(0,))
    if overrides:
        unknown = sorted(set(overrides) - set(config.to_dict()))
        if unknown:
            raise ValueError(f"inner_validation: overrides {unknown} are not training settings; use fields of "
                             f"ExperimentConfig such as weight_decay, lr or optimizer")
        config = dataclasses.replace(config, **dict(overrides))
    with torch_threads(template.threads):
        out_folds = [_inner_fold(cohort, k, config, base / f"outer_{k}", inner_k=inner_k, split_seed=template.seed,
                                 progress=progress, probe=probe, log=log, key=model.key) for k in fold_ids]
    settings = {k: v for k, v in config.to_dict().items() if k not in ("cohort_dir", "out_dir")}
    suffix = variant_suffix(overrides)
    return {"model_key": model.key, "label": f"{model.label} ({suffix})" if suffix else model.label,
            "overrides": dict(overrides or {}), "inner_k": inner_k, "collapse_risk_std": COLLAPSE_RISK_STD,
            "learned_train_c": LEARNED_TRAIN_C, "settings": settings, "folds": out_folds}


def _inner_fold(cohort, k: int, config, fold_dir: Path, *, inner_k: int, split_seed: int, progress: bool,
                probe: Sequence[str], log: Callable[[str], None], key: str) -> dict[str, Any]:
    """Train on the inner split of outer fold ``k``'s training ids (seeded by the reported run's seed and
    ``k``) and diagnose it: one record."""
    from survmamba_lite.data import make_folds
    from survmamba_lite.experiment.evaluation import predict
    from survmamba_lite.experiment.predfiles import read_predictions
    from survmamba_lite.experiment.runfiles import PREDICTIONS
    from survmamba_lite.experiment.trainer import train_fold

    train_ids, _ = cohort.folds[k]                         # the outer validation ids are not read
    inner = make_folds(cohort.clinical.loc[train_ids], k=inner_k, seed=split_seed + 1000 * (k + 1))[0]
    sub = dataclasses.replace(cohort, folds=[inner])
    t0 = time.perf_counter()
    fold = train_fold(config, sub, 0, fold_dir, wsi_dim=None, progress=progress, log=log)
    val_pred = read_predictions(fold_dir / PREDICTIONS)      # as written (full precision), read back exactly
    train_pred, _ = predict(fold.model, fold.train, config, fold.device)
    val_spread, train_spread = risk_spread(val_pred["risk"]), risk_spread(train_pred["risk"])
    train_c = _c_index(train_pred)
    rec = {
        "outer_fold": k, "n_inner_train": len(inner[0]), "n_inner_val": len(inner[1]),
        "n_inner_val_events": int(val_pred["event"].sum()),
        "inner_val_c_index_by_epoch": fold.metrics.get("val_c_index"),
        "train_loss_by_epoch": fold.metrics.get("train_loss"), "inner_val_c_index": _c_index(val_pred),
        "inner_train_c_index": train_c, "inner_val_risk": val_spread, "inner_train_risk": train_spread,
        "collapsed": val_spread["collapsed"], "learned": None if train_c is None else bool(train_c >= LEARNED_TRAIN_C),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if probe:
        rec["stages"] = {"inner_train": stage_spread(fold.model, fold.train, config, fold.device, probe),
                         "inner_val": stage_spread(fold.model, fold.val, config, fold.device, probe)}
    log(f"[inner {key} outer fold {k}] inner-val c {rec['inner_val_c_index']}, inner-train c "
        f"{train_c}, risk std {val_spread['risk_std']:.4g} bins -> "
        f"{'collapsed' if rec['collapsed'] else 'not collapsed'}")
    return rec


def inner_table(out: str | os.PathLike) -> pd.DataFrame:
    """One row per (cohort, model, outer fold) from ``out/inner/*.json``."""
    from survmamba_lite.realdata.catalogue import COHORTS, MODELS

    records = [json.loads(p.read_text(encoding="utf-8")) for p in (Path(out) / INNER_DIR).glob("*.json")]
    order_c, order_m = list(COHORTS), list(MODELS)
    records.sort(key=lambda r: (order_c.index(r["cohort_key"]) if r["cohort_key"] in order_c else 99,
                                order_m.index(r["model_key"]) if r["model_key"] in order_m else 99,
                                bool(r.get("overrides")), r["label"]))          # the reported settings first
    rows = []
    for r in records:
        for f in r["folds"]:
            rows.append({"cohort_key": r["cohort_key"], "cohort": r["cohort"], "model": r["label"],
                         "outer_fold": f["outer_fold"], "inner_val_c_index": f["inner_val_c_index"],
                         "inner_train_c_index": f["inner_train_c_index"],
                         "inner_val_risk_std": f["inner_val_risk"]["risk_std"], "collapsed": f["collapsed"],
                         "learned": f["learned"]})
    return pd.DataFrame(rows)


def inner_table_markdown(table: pd.DataFrame) -> str:
    """The inner-validation diagnosis as Markdown (one row per cohort and model, folds joined)."""
    from survmamba_lite.utils.markdown import to_markdown

    if table.empty:
        return "(no inner-validation runs)\n"

    def fmt(v):
        return "—" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.3f}"

    rows = []
    for (cohort, model), g in table.groupby(["cohort", "model"], sort=False):
        rows.append({"cohort": cohort, "model": model,
                     "inner-val c-index by fold": " ".join(fmt(v) for v in g["inner_val_c_index"]),
                     "inner-train c-index by fold": " ".join(fmt(v) for v in g["inner_train_c_index"]),
                     "risk std (bins) by fold": " ".join(f"{v:.3g}" for v in g["inner_val_risk_std"]),
                     "collapsed folds": f"{int(g['collapsed'].sum())} / {len(g)}"})
    return to_markdown(pd.DataFrame(rows)) + "\n"
