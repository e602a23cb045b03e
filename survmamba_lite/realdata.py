r"""Real-data check: the genomic rows of Table 1 on public TCGA tables, and real slides
through the slide pipeline.

What :func:`main` (``python -m survmamba_lite.realdata``) does, start to end:

1. **Import** the public tables with the project's own import code
   (:func:`~survmamba_lite.data.tcga.import_xena`,
   :func:`~survmamba_lite.data.tcga.import_porpoise`) and the KEGG hierarchy built from
   ``kegg/kegg352_pathway_class_genes.tsv``
   (:func:`~survmamba_lite.data.kegg.hierarchy_from_kegg_table`), each cohort with the
   5-fold splits published with its table (:data:`COHORTS`).
2. **Cross-validate** on those folds the deep genomic models through the experiments layer
   (:func:`~survmamba_lite.experiment.run_cv`: SNN, SNNTrans, genomic-only SurvMamba with
   bidirectional and with forward-only Mamba), and the penalised Cox reference
   :class:`PCACoxReference` fitted here, on the same folds and the same fold-fitted gene
   z-scores.
3. **Summarise** each (cohort, model) run in ``runs/<cohort>__<model>.json``: the five
   fold c-indices, their mean and sample standard deviation, a 95% bootstrap interval of
   the fold mean (patients resampled within each validation fold) and the pooled
   out-of-fold c-index with its 95% bootstrap interval; then rebuild
   ``genomic_table.csv``/``.md`` from every run file, with the paper's Table 1 numbers
   (:data:`PAPER_TABLE1`) beside ours.
4. **Slides**: tile the two real slides, extract EfficientNet-Lite0 features and draw the
   patch grid and a feature map (the first three principal components of the 1280-d
   patch features as RGB, :func:`feature_pca_rgb`) into ``slides.json`` and PNGs.

The Cox reference, decided before any fold was looked at: per-gene z-score fitted on the
training fold, PCA fitted on the training fold, the first ``n_components = 32``
components (each scaled to unit training variance), and lifelines' ``CoxPHFitter`` with a
fixed ridge penalty ``penalizer = 0.1`` (``l1_ratio = 0``). No value was tuned.

>>> from survmamba_lite.realdata import COHORTS, PAPER_TABLE1
>>> [c.key for c in COHORTS.values()]
['coadread', 'blca', 'blca-porpoise', 'luad', 'brca']
>>> PAPER_TABLE1["SNN"]["BLCA"]
(0.61, 0.038)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from survmamba_lite.survival import bootstrap_ci, concordance_index
from survmamba_lite.utils.io import atomic_write_text

__all__ = ["RealCohort", "COHORTS", "DEFAULT_COHORTS", "ModelRun", "MODELS", "PAPER_MODELS", "DEFAULT_MODELS",
           "PAPER_TABLE1", "SLIDES", "PCACoxReference", "import_cohort", "build_hierarchy", "run_cox_cv",
           "run_model_cv", "summarise_predictions", "fold_mean_bootstrap_ci", "genomic_table", "write_genomic_table",
           "run_genomic_check", "paired_differences", "paired_differences_markdown", "with_width", "SETTINGS",
           "cohort_summary", "write_cohort_summaries", "feature_pca_rgb", "draw_feature_map", "run_slide_check", "main"]

KEGG_TABLE = "kegg/kegg352_pathway_class_genes.tsv"
RUNS_DIR = "runs"


# --------------------------------------------------------------------------- cohorts and the paper
@dataclass(frozen=True)
class RealCohort:
    """One public TCGA table and its published 5-fold splits (paths relative to the data root).

    Attributes:
        key: name on the command line (``--cohorts``).
        cohort: TCGA cohort as the paper names it (``BLCA``).
        source: ``"xena"`` (SurvPath's release) or ``"porpoise"`` (PORPOISE's release).
        files: ``rna``, ``clinical`` (xena) or ``table`` (porpoise), and ``splits``.
    """

    key: str
    cohort: str
    source: str
    files: Mapping[str, str]


def _xena(key: str) -> RealCohort:
    base = f"tcga/xena/{key}"
    return RealCohort(key, key.upper(), "xena",
                      {"rna": f"{base}/rna_clean.csv", "clinical": f"{base}/clinical.csv", "splits": f"{base}/splits"})


def _porpoise(key: str, name: str) -> RealCohort:
    base = f"tcga/porpoise/{name}"
    return RealCohort(key, name.upper(), "porpoise",
                      {"table": f"{base}/tcga_{name}_all_clean.csv.zip", "splits": f"{base}/splits"})


#: the cohorts, smallest first (the order a full run takes them in)
COHORTS: dict[str, RealCohort] = {c.key: c for c in (
    _xena("coadread"), _xena("blca"), _porpoise("blca-porpoise", "blca"), _porpoise("luad", "luad"),
    _porpoise("brca", "brca"))}
#: what a plain run does: the two cohorts of SurvPath's Xena release (paper numbers for SNN and SNNTrans)
DEFAULT_COHORTS = ("coadread", "blca")

#: Table 1 of the paper, genomic rows: model -> cohort -> (mean, std) of the five fold c-indices
PAPER_TABLE1: dict[str, dict[str, tuple[float, float]]] = {
    "SNN": {"BRCA": (0.606, 0.011), "BLCA": (0.610, 0.038), "COADREAD": (0.617, 0.025), "UCEC": (0.610, 0.032),
            "LUAD": (0.589, 0.031)},
    "SNNTrans": {"BRCA": (0.621, 0.032), "BLCA": (0.611, 0.010), "COADREAD": (0.635, 0.044),
                 "UCEC": (0.592, 0.017), "LUAD": (0.602, 0.044)},
}


@dataclass(frozen=True)
class ModelRun:
    """A model of the genomic table: a registry model with fixed options, or the Cox reference.

    Attributes:
        key: name on the command line and in file names.
        label: row label of the table.
        registry: registry name, or ``"cox"`` for :class:`PCACoxReference`.
        options: registry options (or ``PCACoxReference`` arguments).
        paper_row: the Table 1 row this run reproduces, or None.
    """

    key: str
    label: str
    registry: str
    options: Mapping[str, Any] = field(default_factory=dict)
    paper_row: str | None = None


#: the CPU settings (fixed before any run; see results/real_data/README.md), spelled out so
#: that they still build the models of the recorded CPU-width rows: SNN with 2 x 256 blocks
#: and SNNTrans with exact attention (the registry defaults are now the originals' 4 x 256
#: SNN and TransMIL's Nystrom attention).
MODELS: dict[str, ModelRun] = {m.key: m for m in (
    ModelRun("cox", "Cox (PCA-32, ridge 0.1)", "cox", {"n_components": 32, "penalizer": 0.1}),
    ModelRun("snn", "SNN", "snn", {"dim": 256, "n_layers": 2}, "SNN"),
    ModelRun("snntrans", "SNNTrans", "snntrans", {"dim": 64, "heads": 4, "attention": "exact"}, "SNNTrans"),
    ModelRun("survmamba-rna", "SurvMamba-RNA (C, bi)", "survmamba-rna", {"dim": 32, "d_state": 8}),
    ModelRun("survmamba-rna-uni", "SurvMamba-RNA (C, uni)", "survmamba-rna",
             {"dim": 32, "d_state": 8, "bidirectional": False}),
)}
#: the paper's widths (512-d tokens, state size 16), for a GPU: ``--paper-dims``. SNN is the
#: baseline as its original defines it (MCAT/PORPOISE "small" SNN: 4 x 256 ELU blocks, the
#: registry default), not a 512-wide variant. Fixed before any validation fold was seen.
PAPER_MODELS: dict[str, ModelRun] = {
    "cox": MODELS["cox"],
    "snn": ModelRun("snn", "SNN", "snn", {}, "SNN"),
    "snntrans": ModelRun("snntrans", "SNNTrans", "snntrans", {"dim": 512, "heads": 8}, "SNNTrans"),
    "survmamba-rna": ModelRun("survmamba-rna", "SurvMamba-RNA (C, bi)", "survmamba-rna", {"dim": 512}),
    "survmamba-rna-uni": ModelRun("survmamba-rna-uni", "SurvMamba-RNA (C, uni)", "survmamba-rna",
                                  {"dim": 512, "bidirectional": False}),
}
DEFAULT_MODELS = tuple(MODELS)
#: the label of each width setting, written into every run file and the table
SETTINGS = {"cpu": "CPU widths", "paper": "paper widths", "smoke": "smoke test (--dim)"}
#: where ``--paper-dims`` runs go by default, beside the CPU-width rows in ``results/real_data``
PAPER_WIDTH_DIR = "paper_width"

#: the real slides: file under ``wsi/`` and the resolution arguments it needs
SLIDES: tuple[tuple[str, dict[str, float]], ...] = (
    ("cmu-1-small-region.svs", {}),                                # 0.499 um/px in its metadata
    ("tcga-cr-7395-01a-01-ts1.svs", {"base_magnification": 20.0}),  # no mpp metadata: say 20x
)


def _log(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------- the Cox reference
class PCACoxReference:
    r"""Ridge-penalised Cox model on the leading principal components of the gene z-scores.

    Fitted on training patients only:

    1. per-gene z-score :math:`z_{ig} = (x_{ig} - \mu_g)/s_g` with training mean and
       standard deviation (:class:`~survmamba_lite.data.dataset.RNANormalizer`; genes
       constant on the training fold get :math:`s_g = 1`);
    2. PCA of the training z-scores, :math:`Z - \bar z = U S V^\top`, keep the first
       :math:`m` = ``n_components`` right singular vectors :math:`V_m` and scale each score
       to unit training variance: :math:`u_i = (z_i - \bar z) V_m / \sigma`;
    3. Cox partial likelihood with a ridge penalty, fitted by lifelines
       (``CoxPHFitter(penalizer=λ, l1_ratio=0)``):

       .. math:: \hat\beta = \arg\max_\beta\ \frac1n \sum_{i:\,e_i=1}\Big(u_i^\top\beta
                 - \log\sum_{j:\,t_j\ge t_i} e^{u_j^\top\beta}\Big) - \frac{\lambda}{2}\lVert\beta\rVert^2

    The risk of a patient is the linear predictor :math:`u^\top\hat\beta` (higher = earlier
    death), a monotone transform of lifelines' partial hazard, so c-indices agree.

    Args:
        n_components: PCA components kept (clipped to ``n_train - 1`` and ``G``).
        penalizer: ridge strength ``λ`` passed to lifelines.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(120, 40)); t = np.exp(-x[:, 0] + rng.normal(size=120) * 0.3)
    >>> cox = PCACoxReference(n_components=8).fit(x, t, np.ones(120, int))
    >>> concordance_index(t, cox.risk(x), np.ones(120)) > 0.6
    True
    """

    def __init__(self, n_components: int = 32, penalizer: float = 0.1) -> None:
        if int(n_components) < 1:
            raise ValueError(f"PCACoxReference: n_components must be >= 1, got {n_components}")
        if penalizer < 0:
            raise ValueError(f"PCACoxReference: penalizer must be >= 0, got {penalizer}")
        self.n_components = int(n_components)
        self.penalizer = float(penalizer)
        self.basis_: np.ndarray | None = None

    def components(self, x: np.ndarray) -> np.ndarray:
        """``(n, G)`` expression -> ``(n, m)`` unit-variance PCA scores (fitted transform)."""
        if self.basis_ is None:
            raise RuntimeError("PCACoxReference: call fit(x_train, time, event) first")
        z = self.normalizer_.transform(np.asarray(x, dtype=np.float64)).astype(np.float64)
        return (z - self.center_) @ self.basis_ / self.scale_

    def frame(self, x: np.ndarray, time: Any = None, event: Any = None) -> pd.DataFrame:
        """The lifelines input frame: PCA scores ``pc1..pcm`` (+ ``time``, ``event`` when given)."""
        u = self.components(x)
        df = pd.DataFrame(u, columns=[f"pc{k + 1}" for k in range(u.shape[1])])
        if time is not None:
            df["time"] = np.asarray(time, dtype=np.float64)
            df["event"] = np.asarray(event, dtype=np.int64)
        return df

    def fit(self, x: np.ndarray, time: Any, event: Any) -> "PCACoxReference":
        """Fit on training expression ``x: (n, G)``, follow-up ``time: (n,)``, ``event: (n,)`` (1 = death)."""
        from lifelines import CoxPHFitter

        from survmamba_lite.data.dataset import RNANormalizer

        x = np.asarray(x, dtype=np.float64)
        t, e = np.asarray(time, dtype=np.float64), np.asarray(event, dtype=np.int64)
        if x.ndim != 2 or x.shape[0] != t.shape[0] or t.shape != e.shape:
            raise ValueError(f"PCACoxReference.fit: expected x (n, G), time (n,), event (n,); got {x.shape}, "
                             f"{t.shape}, {e.shape}")
        if e.sum() < 2:
            raise ValueError(f"PCACoxReference.fit: {int(e.sum())} death(s) among {len(e)} training patients; "
                             "a Cox model needs observed deaths")
        self.normalizer_ = RNANormalizer().fit(x)
        z = self.normalizer_.transform(x).astype(np.float64)
        self.center_ = z.mean(0)
        _, s, vt = np.linalg.svd(z - self.center_, full_matrices=False)
        m = min(self.n_components, x.shape[0] - 1, x.shape[1], int((s > 1e-8 * s[0]).sum()))
        self.basis_ = vt[:m].T                                             # (G, m)
        scores = (z - self.center_) @ self.basis_
        self.scale_ = scores.std(0)
        df = self.frame(x, t, e)
        self.fitter_ = CoxPHFitter(penalizer=self.penalizer, l1_ratio=0.0).fit(df, "time", "event")
        self.beta_ = self.fitter_.params_.to_numpy()
        return self

    def risk(self, x: np.ndarray) -> np.ndarray:
        """``(n,)`` linear predictor ``u^T beta`` of expression ``x: (n, G)``."""
        return self.components(x) @ self.beta_


def run_cox_cv(cohort_dir: str | os.PathLike, *, n_components: int = 32, penalizer: float = 0.1,
               folds: Sequence[int] | None = None) -> tuple[pd.DataFrame, list[float]]:
    """:class:`PCACoxReference` on every fold of a cohort folder.

    Returns:
        out-of-fold predictions (``fold, case_id, time, event, risk``) and the fold c-indices.
    """
    from survmamba_lite.data.layout import load_cohort

    cohort = load_cohort(cohort_dir)
    genes = list(cohort.hierarchy.genes)
    fold_ids = list(range(len(cohort.folds))) if folds is None else list(folds)
    frames, cis = [], []
    for k in fold_ids:
        train_ids, val_ids = cohort.folds[k]
        tr, va = cohort.clinical.loc[train_ids], cohort.clinical.loc[val_ids]
        model = PCACoxReference(n_components, penalizer).fit(
            cohort.rna.loc[train_ids, genes].to_numpy(), tr["survival_months"], tr["event"])
        risk = model.risk(cohort.rna.loc[val_ids, genes].to_numpy())
        frames.append(pd.DataFrame({"fold": k, "case_id": list(val_ids),
                                    "time": va["survival_months"].to_numpy(dtype=float),
                                    "event": va["event"].to_numpy(dtype=int), "risk": risk}))
        cis.append(float(concordance_index(frames[-1]["time"], risk, frames[-1]["event"])))
    return pd.concat(frames, ignore_index=True), cis


# --------------------------------------------------------------------------- imports
def build_hierarchy(data_root: str | os.PathLike, work: str | os.PathLike) -> Path:
    """``work/hierarchy.tsv`` from the 352-pathway KEGG table (process = KEGG level-2 class)."""
    from survmamba_lite.data.kegg import hierarchy_from_kegg_table, write_hierarchy_tsv

    path = Path(work) / "hierarchy.tsv"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_hierarchy_tsv(hierarchy_from_kegg_table(Path(data_root) / KEGG_TABLE), path)
    return path


def import_cohort(spec: RealCohort, data_root: str | os.PathLike, work: str | os.PathLike) -> Path:
    """Import one public table into ``work/<key>`` (kept when it is already there)."""
    from survmamba_lite.data.tcga import import_porpoise, import_xena

    root, out = Path(data_root), Path(work) / spec.key
    if (out / "manifest.yaml").is_file():
        return out
    missing = [str(root / p) for p in spec.files.values() if not (root / p).exists()]
    if missing:
        raise FileNotFoundError(f"cohort {spec.key}: missing {', '.join(missing)}; --data-root must hold the "
                                "folders tcga/ and kegg/ (see data_manifests/README.md)")
    hierarchy = build_hierarchy(root, work)
    f = {k: root / v for k, v in spec.files.items()}
    if spec.source == "xena":
        cmd = shlex.join(["survmamba", "import-tcga", "--format", "xena", "--rna", str(f["rna"]), "--clinical",
                          str(f["clinical"]), "--splits", str(f["splits"]), "--hierarchy", str(hierarchy),
                          "--cohort", spec.cohort, "--out", str(out)])
        report = import_xena(f["rna"], f["clinical"], out, hierarchy=hierarchy, splits=f["splits"],
                             cohort=spec.cohort, command=cmd)
    else:
        cmd = shlex.join(["survmamba", "import-tcga", "--format", "porpoise", "--table", str(f["table"]),
                          "--splits", str(f["splits"]), "--hierarchy", str(hierarchy), "--cohort", spec.cohort,
                          "--out", str(out)])
        report = import_porpoise(f["table"], out, hierarchy=hierarchy, splits=f["splits"], cohort=spec.cohort,
                                 command=cmd)
    _log(f"[import {spec.key}] {cmd}\n" + report.summary().split("\n  dropped")[0]
         + f"\n  dropped {len(report.dropped)} case(s) (listed in {out / 'manifest.yaml'})")
    return out


def cohort_summary(cohort_dir: str | os.PathLike) -> dict[str, Any]:
    """Counts of an imported cohort: cases, deaths, genes, functions, processes, dropped
    cases, and per validation fold the number of cases and of deaths (a fold with few
    deaths has a noisy c-index)."""
    from survmamba_lite.data.layout import load_cohort

    cohort = load_cohort(cohort_dir)
    ev = cohort.clinical["event"]
    return {
        "cohort": str(cohort.manifest.get("cohort")), "source": cohort.manifest.get("source"),
        "n_cases": cohort.n_cases, "n_events": int(ev.sum()),
        "n_genes": cohort.hierarchy.n_genes, "n_functions": cohort.hierarchy.n_functions,
        "n_processes": cohort.hierarchy.n_processes,
        "n_dropped_at_import": len(cohort.manifest.get("dropped_cases") or []),
        "fold_n_val": [len(va) for _, va in cohort.folds],
        "fold_n_val_events": [int(ev.loc[va].sum()) for _, va in cohort.folds],
        "median_follow_up_months": round(float(cohort.clinical["survival_months"].median()), 2),
        "created_by": cohort.manifest.get("created_by"),
    }


def write_cohort_summaries(cohort_dirs: Mapping[str, str | os.PathLike], out: str | os.PathLike) -> dict:
    """Add the :func:`cohort_summary` of each cohort to ``out/cohorts.json`` (other keys kept)."""
    path = Path(out) / "cohorts.json"
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    data.update({k: cohort_summary(d) for k, d in cohort_dirs.items()})
    data = {k: data[k] for k in sorted(data, key=lambda k: list(COHORTS).index(k) if k in COHORTS else 99)}
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")
    return data


# --------------------------------------------------------------------------- summaries
def fold_mean_bootstrap_ci(frame: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0,
                           level: float = 0.95) -> tuple[float, float, float]:
    """Percentile bootstrap interval of the **mean of the fold c-indices**.

    Each replicate resamples the patients of every validation fold with replacement
    (separately per fold, so fold sizes stay fixed), recomputes each fold's c-index and
    averages them. A replicate where a fold has no comparable pair is skipped.

    Args:
        frame: out-of-fold predictions with columns ``fold, time, event, risk``.

    Returns:
        ``(estimate, low, high)``; the estimate is the plain mean of the fold c-indices.

    >>> f = pd.DataFrame({"fold": [0] * 4 + [1] * 4, "time": [1, 2, 3, 4] * 2, "event": [1] * 8,
    ...                   "risk": [4, 3, 2, 1, 1, 2, 3, 4]})
    >>> fold_mean_bootstrap_ci(f, n_boot=50)[0]
    0.5
    """
    groups = [(g["time"].to_numpy(float), g["event"].to_numpy(int), g["risk"].to_numpy(float))
              for _, g in frame.groupby("fold", sort=True)]
    estimate = float(np.mean([concordance_index(t, r, e) for t, e, r in groups]))
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n_boot):
        vals = []
        for t, e, r in groups:
            idx = rng.integers(0, len(t), size=len(t))
            try:
                vals.append(concordance_index(t[idx], r[idx], e[idx]))
            except ValueError:
                break
        if len(vals) == len(groups):
            stats.append(np.mean(vals))
    if not stats:
        raise ValueError("fold_mean_bootstrap_ci: no bootstrap replicate had comparable pairs in every fold")
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(stats, [tail, 1.0 - tail])
    return estimate, float(low), float(high)


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


# --------------------------------------------------------------------------- one (cohort, model) run
def run_model_cv(cohort_dir: str | os.PathLike, model: ModelRun, *, work: str | os.PathLike, epochs: int,
                 seed: int = 0, folds: Sequence[int] | None = None, threads: int | None = 1,
                 device: str = "cpu", progress: bool = False, precision: str = "fp32",
                 cuda_graphs: bool = False) -> tuple[pd.DataFrame, list[float], dict]:
    """Cross-validate one model on one cohort folder.

    Registry models go through :func:`~survmamba_lite.experiment.run_cv` with the paper's
    optimiser (RAdam, lr 2e-4, weight decay 5e-3, batch size 1, 4 time bins), the last
    epoch's model evaluated (no early stopping); the run directory is
    ``work/<model.key>`` and resumes. ``"cox"`` is :func:`run_cox_cv`. ``precision`` and
    ``cuda_graphs`` are the trainer's speed settings (``ExperimentConfig``); graphs replay the
    same step and change no hyper-parameter.

    Returns:
        out-of-fold predictions (``fold, case_id, time, event, risk``), fold c-indices and
        the settings that made them.
    """
    if model.registry == "cox":
        oof, cis = run_cox_cv(cohort_dir, folds=folds, **dict(model.options))
        return oof, cis, {"model": "cox", **dict(model.options), "l1_ratio": 0.0,
                          "normalisation": "per-gene z-score fitted on the training fold"}
    from survmamba_lite.experiment import ExperimentConfig, run_cv

    config = ExperimentConfig(model=model.registry, cohort_dir=str(cohort_dir),
                              out_dir=str(Path(work) / model.key), model_options=dict(model.options),
                              folds=None if folds is None else tuple(folds), epochs=int(epochs),
                              optimizer="radam", lr=2e-4, weight_decay=5e-3, batch_size=1, grad_accum=1,
                              n_bins=4, alpha=0.0, seed=seed, device=device, threads=threads,
                              precision=precision, cuda_graphs=bool(cuda_graphs))
    result = run_cv(config, progress=progress)
    oof = result.oof[["fold", "case_id", "time", "event", "risk"]].copy()
    cis = [float(m["c_index"]) for m in result.folds]
    settings = config.to_dict()
    for k in ("cohort_dir", "out_dir"):
        settings.pop(k)
    settings["train_seconds"] = float(result.summary.get("seconds_total") or 0.0)
    settings["model_options_resolved"] = {k: v for k, v in config.resolved_model_options().items()
                                          if isinstance(v, (int, float, str, bool, type(None)))}
    return oof, cis, settings


def _run_file(out: Path, cohort_key: str, model_key: str) -> Path:
    return out / RUNS_DIR / f"{cohort_key}__{model_key}.json"


def genomic_table(out: str | os.PathLike) -> pd.DataFrame:
    """One row per ``runs/*.json`` under ``out`` (cohort, then model order), at full precision,
    with the paper's Table 1 numbers beside ours."""
    out = Path(out)
    rows = []
    for path in sorted((out / RUNS_DIR).glob("*.json")):
        r = json.loads(path.read_text(encoding="utf-8"))
        paper = (PAPER_TABLE1.get(r.get("paper_row") or "", {}).get(r["cohort"])
                 if r["source"] in ("xena", "porpoise") else None)
        rows.append({
            "cohort": r["cohort"], "source": r["source"], "cohort_key": r["cohort_key"], "model": r["label"],
            "model_key": r["model_key"], "n_cases": r["n_cases"], "n_events": r["n_events"],
            "n_genes": r["n_genes"], "n_functions": r["n_functions"], "n_processes": r["n_processes"],
            "epochs": r.get("epochs"), "setting": SETTINGS[r.get("setting", "cpu")],
            "fold_c_index": " ".join(f"{c:.3f}" for c in r["fold_c_index"]),
            "c_index_mean": r["c_index_mean"], "c_index_std": r["c_index_std"],
            "fold_mean_ci95_low": r["fold_mean_ci95"][0], "fold_mean_ci95_high": r["fold_mean_ci95"][1],
            "oof_c_index": r["oof_c_index"], "oof_ci95_low": r["oof_ci95"][0], "oof_ci95_high": r["oof_ci95"][1],
            "paper_mean": paper[0] if paper else None, "paper_std": paper[1] if paper else None,
            "compute_s": r.get("compute_s", r["wall_s"]), "wall_s": r["wall_s"],
        })
    table = pd.DataFrame(rows)
    if table.empty:
        raise FileNotFoundError(f"{out / RUNS_DIR}: no run files; run `python -m survmamba_lite.realdata` first")
    order_c = {k: i for i, k in enumerate(COHORTS)}
    order_m = {k: i for i, k in enumerate(MODELS)}
    table = table.sort_values(by=["cohort_key", "model_key"],
                              key=lambda s: s.map(order_c if s.name == "cohort_key" else order_m).fillna(99))
    return table.reset_index(drop=True)


def write_genomic_table(out: str | os.PathLike) -> pd.DataFrame:
    """Rebuild ``genomic_table.csv`` and ``genomic_table.md`` from every ``runs/*.json``
    under ``out`` (:func:`genomic_table`)."""
    out = Path(out)
    table = genomic_table(out)
    atomic_write_text(out / "genomic_table.csv", table.to_csv(index=False, float_format="%.4f", lineterminator="\n"))
    atomic_write_text(out / "genomic_table.md", genomic_table_markdown(table))
    paired = paired_differences(out)
    if not paired.empty:
        atomic_write_text(out / "paired_differences.csv",
                          paired.to_csv(index=False, float_format="%.4f", lineterminator="\n"))
        atomic_write_text(out / "paired_differences.md", paired_differences_markdown(paired))
    from survmamba_lite.realdata_inner import INNER_DIR, inner_table, inner_table_markdown

    if (out / INNER_DIR).is_dir():
        atomic_write_text(out / "inner_validation.md", inner_table_markdown(inner_table(out)))
    return table


#: the comparisons of :func:`paired_differences`: (model, reference) run keys
PAIRED = (("survmamba-rna", "snn"), ("survmamba-rna-uni", "snn"))


def _t_interval(x: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    from scipy import stats

    n = x.size
    if n < 2:
        return float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return float(x.mean() - half), float(x.mean() + half)


def paired_differences(out: str | os.PathLike, *, level: float = 0.95) -> pd.DataFrame:
    r"""Per cohort, genomic SurvMamba minus SNN over the paired folds, with a t-interval.

    For each cohort with both runs (same published folds), :math:`d_k = C_k^{model} - C_k^{SNN}`
    for the folds ``k`` both have; the interval is Student's
    :math:`ar d \pm t_{0.975,\,n-1}\, s_d / \sqrt n` (``n = 5`` folds: ``t = 2.776``). The
    folds share their training patients, so the interval treats the fold differences as
    independent, which they are not quite (it is the usual, somewhat narrow, CV interval).
    Beside it: our SNN's fold mean with the same t-interval, the paper's SNN mean
    (:data:`PAPER_TABLE1`), and whether the paper's mean lies inside our interval.

    Returns:
        one row per (cohort, comparison); empty when no cohort has both runs.
    """
    out = Path(out)
    runs = {}
    for path in sorted((out / RUNS_DIR).glob("*.json")):
        r = json.loads(path.read_text(encoding="utf-8"))
        runs[(r["cohort_key"], r["model_key"])] = r
    rows = []
    for cohort_key in [k for k in COHORTS if any(c == k for c, _ in runs)]:
        for model_key, ref_key in PAIRED:
            a, b = runs.get((cohort_key, model_key)), runs.get((cohort_key, ref_key))
            if a is None or b is None or len(a["fold_c_index"]) != len(b["fold_c_index"]):
                continue
            ca, cb = np.asarray(a["fold_c_index"]), np.asarray(b["fold_c_index"])
            d = ca - cb
            lo, hi = _t_interval(d, level)
            s_lo, s_hi = _t_interval(cb, level)
            paper = PAPER_TABLE1["SNN"].get(b["cohort"]) if b["source"] in ("xena", "porpoise") else None
            rows.append({
                "cohort": b["cohort"], "source": b["source"], "cohort_key": cohort_key,
                "setting": SETTINGS[b.get("setting", "cpu")], "model": a["label"], "reference": b["label"],
                "n_folds": int(d.size), "fold_differences": " ".join(f"{v:+.3f}" for v in d),
                "mean_difference": float(d.mean()), "diff_ci_low": lo, "diff_ci_high": hi,
                "snn_mean": float(cb.mean()), "snn_ci_low": s_lo, "snn_ci_high": s_hi,
                "paper_snn_mean": paper[0] if paper else None,
                "paper_snn_in_our_interval": None if paper is None or math.isnan(s_lo)
                else bool(s_lo <= paper[0] <= s_hi),
            })
    return pd.DataFrame(rows)


def paired_differences_markdown(table: pd.DataFrame) -> str:
    """:func:`paired_differences` as Markdown."""
    from survmamba_lite.experiment.report import to_markdown

    def yes_no(v):
        return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else ("yes" if v else "no")

    def interval(lo, hi, fmt):
        return "[—]" if math.isnan(lo) else f"[{lo:{fmt}}, {hi:{fmt}}]"

    cells = pd.DataFrame([{
        "cohort (source)": f"{r.cohort} ({r.source})", "widths": r.setting, "difference": f"{r.model} − {r.reference}",
        "per fold": r.fold_differences,
        "mean [95% t-interval]": f"{r.mean_difference:+.3f} {interval(r.diff_ci_low, r.diff_ci_high, '+.3f')}",
        "our SNN mean [95% t-interval]": f"{r.snn_mean:.3f} {interval(r.snn_ci_low, r.snn_ci_high, '.3f')}",
        "paper SNN": "—" if r.paper_snn_mean is None or (isinstance(r.paper_snn_mean, float)
                                                       and math.isnan(r.paper_snn_mean)) else f"{r.paper_snn_mean:.3f}",
        "paper SNN inside ours": yes_no(r.paper_snn_in_our_interval),
    } for r in table.itertuples(index=False)])
    return to_markdown(cells) + "\n"


def with_width(model_table: Mapping[str, ModelRun], dim: int) -> dict[str, ModelRun]:
    """``model_table`` with every deep model's width set to ``dim`` (heads cut to divide it): a
    quick smoke test of a setting's code path, never a reported result.

    >>> with_width(PAPER_MODELS, 16)["snntrans"].options
    {'dim': 16, 'heads': 8}
    """
    if dim < 2:
        raise ValueError(f"with_width: dim must be >= 2, got {dim}")
    out = {}
    for key, m in model_table.items():
        if m.registry == "cox":
            out[key] = m
            continue
        options = {**dict(m.options), "dim": dim}
        if "heads" in options:
            options["heads"] = max(h for h in range(1, options["heads"] + 1) if dim % h == 0)
        out[key] = dataclasses.replace(m, options=options)
    return out


def genomic_table_markdown(table: pd.DataFrame, *, compact: bool = False) -> str:
    """The table as Markdown: ours (mean ± std, 95% intervals, folds) and the paper's.

    Args:
        table: :func:`genomic_table`'s frame (full precision: the CSV's 4 decimals can round
            differently at the third).
        compact: leave out each fold's c-index and the compute seconds (a table that fits a page).
    """
    from survmamba_lite.experiment.report import to_markdown

    def pm(m, s):
        return "—" if m is None or (isinstance(m, float) and math.isnan(m)) else (
            f"{m:.3f}" + ("" if s is None or (isinstance(s, float) and math.isnan(s)) else f" ± {s:.3f}"))

    columns = {
        "cohort (source)": lambda r: f"{r.cohort} ({r.source})",
        "model": lambda r: r.model,
        "widths, epochs": lambda r: "—" if r.epochs is None or (isinstance(r.epochs, float) and math.isnan(r.epochs))
        else f"{r.setting}, {int(r.epochs)}",
        "cases (deaths)": lambda r: f"{r.n_cases} ({r.n_events})",
        "c-index, ours: mean ± std": lambda r: pm(r.c_index_mean, r.c_index_std),
        "95% CI of the mean": lambda r: f"[{r.fold_mean_ci95_low:.3f}, {r.fold_mean_ci95_high:.3f}]",
        "pooled OOF c-index [95% CI]": lambda r: f"{r.oof_c_index:.3f} [{r.oof_ci95_low:.3f}, {r.oof_ci95_high:.3f}]",
        "folds": lambda r: r.fold_c_index,
        "paper (Table 1)": lambda r: pm(r.paper_mean, r.paper_std),
        "compute s": lambda r: f"{r.compute_s:.0f}",
    }
    if compact:
        del columns["folds"], columns["compute s"]
    cells = pd.DataFrame([{name: cell(r) for name, cell in columns.items()} for r in table.itertuples(index=False)],
                         columns=list(columns))
    return to_markdown(cells) + "\n"


def run_genomic_check(cohort_dirs: Mapping[str, str | os.PathLike], out: str | os.PathLike, *,
                      work: str | os.PathLike, models: Sequence[str] = DEFAULT_MODELS, epochs: int = 3,
                      model_table: Mapping[str, ModelRun] = MODELS, folds: Sequence[int] | None = None,
                      seed: int = 0, threads: int | None = 1, device: str = "cpu", n_boot: int = 1000,
                      setting: str = "cpu", inner_val: bool = False, progress: bool = False,
                      precision: str = "fp32", cuda_graphs: bool = False,
                      log: Callable[[str], None] = _log) -> pd.DataFrame:
    """Every model on every cohort folder; one ``runs/<cohort>__<model>.json`` each, then the table.

    Args:
        cohort_dirs: ``{cohort key: imported cohort folder}``, run in this order.
        out: result folder (``runs/``, ``genomic_table.csv``/``.md``).
        work: scratch folder for the experiments' run directories.
        models: keys of ``model_table``.
        epochs: training epochs of the deep models.
        folds: fold indices (None: all).
        setting: ``"cpu"``, ``"paper"`` or ``"smoke"`` (:data:`SETTINGS`), the width label of the rows.
        inner_val: also run :func:`~survmamba_lite.realdata_inner.inner_validation` for every
            deep model (``inner/<cohort>__<model>.json``; training folds only).
        precision, cuda_graphs: the trainer's speed settings (:func:`run_model_cv`).
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
            oof, cis, settings = run_model_cv(cohort_dir, model, work=work / "runs" / cohort_key, epochs=epochs,
                                              seed=seed, folds=folds, threads=threads, device=device,
                                              progress=progress, precision=precision, cuda_graphs=cuda_graphs)
            wall = time.perf_counter() - start
            summary = summarise_predictions(oof, cis, n_boot=n_boot, seed=seed)
            record = {
                "cohort_key": cohort_key, "cohort": name, "source": cohort.manifest.get("source"),
                "model_key": mkey, "label": model.label, "paper_row": model.paper_row,
                "n_genes": cohort.hierarchy.n_genes, "n_functions": cohort.hierarchy.n_functions,
                "n_processes": cohort.hierarchy.n_processes,
                "epochs": None if model.registry == "cox" else int(epochs), "setting": setting, **summary,
                "wall_s": round(wall, 1), "compute_s": round(float(settings.get("train_seconds", wall)), 1),
                "settings": settings,
                "splits": "published 5-fold splits of the source release",
            }
            atomic_write_text(_run_file(out, cohort_key, mkey), json.dumps(record, indent=1) + "\n")
            log(f"[{cohort_key} / {model.label}] c-index {summary['c_index_mean']:.3f} ± "
                f"{summary['c_index_std'] or 0:.3f} (folds {' '.join(f'{c:.3f}' for c in cis)}; 95% CI of the mean "
                f"{summary['fold_mean_ci95'][0]:.3f}-{summary['fold_mean_ci95'][1]:.3f}; pooled OOF "
                f"{summary['oof_c_index']:.3f} [{summary['oof_ci95'][0]:.3f}, {summary['oof_ci95'][1]:.3f}]) "
                f"in {wall:.0f} s")
            write_genomic_table(out)                 # the table so far, rebuilt after every run
            if inner_val and model.registry != "cox":
                from survmamba_lite.realdata_inner import INNER_DIR, inner_validation

                rec = inner_validation(cohort_dir, model, work=work / "inner" / cohort_key, epochs=epochs, seed=seed,
                                       folds=folds, threads=threads, device=device, progress=progress, log=log,
                                       precision=precision, cuda_graphs=cuda_graphs)
                rec.update({"cohort_key": cohort_key, "cohort": name, "setting": setting})
                (out / INNER_DIR).mkdir(exist_ok=True)
                atomic_write_text(out / INNER_DIR / f"{cohort_key}__{mkey}.json", json.dumps(rec, indent=1) + "\n")
                write_genomic_table(out)
    return write_genomic_table(out)


# --------------------------------------------------------------------------- slides
def feature_pca_rgb(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colours of patches: the first three principal components of their features as RGB.

    Each component is centred, projected and min-max scaled to ``[0, 1]`` over the slide.

    Args:
        features: ``(P, F)`` patch features, ``P >= 2``.

    Returns:
        ``colours (P, 3)`` in ``[0, 1]`` and the explained-variance ratio of the three components.

    >>> f = np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 1, 0]])
    >>> rgb, ratio = feature_pca_rgb(f)
    >>> rgb.shape, float(rgb[:, 0].min()), float(rgb[:, 0].max()), bool(ratio.sum() <= 1.0 + 1e-9)
    ((4, 3), 0.0, 1.0, True)
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"feature_pca_rgb: expected (P, F) features with P >= 2, got shape {x.shape}")
    xc = x - x.mean(0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    k = min(3, vt.shape[0])
    proj = xc @ vt[:k].T
    proj = proj * np.sign(proj[np.abs(proj).argmax(0), range(k)])       # fix the sign: largest entry positive
    lo, hi = proj.min(0), proj.max(0)
    rgb = np.zeros((x.shape[0], 3))
    rgb[:, :k] = (proj - lo) / np.where(hi > lo, hi - lo, 1.0)
    total = float((s ** 2).sum())
    ratio = np.zeros(3)
    ratio[:k] = (s[:k] ** 2) / total if total > 0 else 0.0
    return rgb, ratio


def _save_small_png(image, path: Path, max_bytes: int = 300_000) -> Path:
    """Save a PIL image as a palette PNG, shrinking it until it is at most ``max_bytes``."""
    from PIL import Image

    img = image.convert("RGB")
    while True:
        img.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        if path.stat().st_size <= max_bytes or max(img.size) < 256:
            return path
        img = img.resize((int(img.width * 0.8), int(img.height * 0.8)), Image.Resampling.LANCZOS)


def draw_feature_map(slide_path: str | os.PathLike, coords: np.ndarray, patch_size_level0: int,
                     colours: np.ndarray, path: str | os.PathLike, *, max_side: int = 768,
                     opacity: float = 0.75) -> Path:
    """Draw each patch's colour (``colours (P, 3)`` in ``[0, 1]``) over the slide thumbnail at
    its position (``coords (P, 2)``, level-0 top-left ``x, y``) and save a PNG."""
    from PIL import Image, ImageDraw

    from survmamba_lite.data.wsi.tiling import open_slide, read_thumbnail

    slide = open_slide(slide_path)
    try:
        w0, h0 = slide.dimensions
        ds = max(w0, h0) / max_side if max(w0, h0) > max_side else 1.0
        base = Image.fromarray(read_thumbnail(slide, ds)).convert("RGBA")
    finally:
        slide.close()
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    s, p = 1.0 / ds, int(patch_size_level0)
    alpha = int(round(255 * opacity))
    for (x, y), c in zip(np.asarray(coords), np.asarray(colours)):
        rgb = tuple(int(round(255 * v)) for v in c)
        draw.rectangle([x * s, y * s, (x + p) * s - 1, (y + p) * s - 1], fill=rgb + (alpha,))
    out = Image.alpha_composite(base, layer)
    return _save_small_png(out, Path(path))


def run_slide_check(data_root: str | os.PathLike, work: str | os.PathLike, out: str | os.PathLike, *,
                    encoder: str = "efficientnet-lite0", device: str = "cpu",
                    log: Callable[[str], None] = _log) -> list[dict]:
    """Tile and encode the real slides of :data:`SLIDES`; write overview and feature-map PNGs
    and ``slides.json`` (patch counts, resolution, timings, throughput) under ``out``."""
    from PIL import Image

    from survmamba_lite.data.features_h5 import read_features_h5
    from survmamba_lite.data.wsi.extract import extract_slide_features
    from survmamba_lite.data.wsi.tiling import tile_slide

    root, work, out = Path(data_root), Path(work) / "wsi", Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for name, kwargs in SLIDES:
        slide = root / "wsi" / name
        if not slide.is_file():
            raise FileNotFoundError(f"{slide}: no such slide; --data-root must hold wsi/{name}")
        start = time.perf_counter()
        grid = tile_slide(slide, work / "tiles", overview=True, overview_size=768, progress=False, **kwargs)
        tile_s = time.perf_counter() - start
        _save_small_png(Image.open(grid.overview_path), out / f"slide_{grid.slide_id}_overview.png")
        res = extract_slide_features(grid.coords_path, work / "features", encoder=encoder, device=device,
                                     overwrite=True, progress=False)
        sf = read_features_h5(res.features_path)
        rgb, ratio = feature_pca_rgb(sf.features)
        draw_feature_map(slide, sf.coords, grid.patch_size_level0, rgb, out / f"slide_{grid.slide_id}_features.png")
        rec = {
            "slide": name, "slide_id": grid.slide_id, "width": grid.slide_width, "height": grid.slide_height,
            "mpp": grid.scale.mpp, "mpp_source": grid.scale.mpp_source, "tiling_args": kwargs,
            "magnification": grid.scale.magnification, "patch_size_level0": grid.patch_size_level0,
            "region_size_level0": grid.region_size_level0, "grid_patches": int(grid.extra["grid_patches"]),
            "n_patches": grid.n_patches, "n_regions": grid.n_regions,
            "patches_per_region": np.bincount(grid.region).tolist(),
            "encoder": encoder, "feature_dim": int(sf.features.shape[1]), "device": res.device,
            "tile_seconds": round(tile_s, 2), "extract_seconds": round(res.seconds, 2),
            "patches_per_second": round(res.patches_per_second, 2),
            "pca_explained_variance_ratio": [round(float(v), 4) for v in ratio],
            "overview_png": f"slide_{grid.slide_id}_overview.png", "features_png": f"slide_{grid.slide_id}_features.png",
        }
        records.append(rec)
        log(f"[slide {grid.slide_id}] {grid.n_patches} patches in {grid.n_regions} region(s) of "
            f"{grid.slide_width}x{grid.slide_height} px (mpp {grid.scale.mpp:.3g} from {grid.scale.mpp_source}); "
            f"tiled in {tile_s:.1f} s, {encoder} {sf.features.shape[1]}-d features at "
            f"{res.patches_per_second:.1f} patches/s on {res.device}; PCA-3 explains "
            f"{ratio.sum():.1%} of the feature variance")
    (out / "slides.json").write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
    return records


# --------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m survmamba_lite.realdata",
        description="Real-data check: Table 1's genomic rows on public TCGA tables with their published splits, "
                    "and the real slides through tiling and feature extraction.")
    p.add_argument("--data-root", required=True, type=Path, help="folder with tcga/, kegg/ and wsi/")
    p.add_argument("--work", required=True, type=Path, help="scratch folder (imports, run directories, features)")
    p.add_argument("--out", required=True, type=Path, help="result folder (small CSV/JSON/PNG files)")
    p.add_argument("--cohorts", nargs="+", default=list(DEFAULT_COHORTS), choices=list(COHORTS),
                   help=f"cohorts, run in the order given (default: {' '.join(DEFAULT_COHORTS)})")
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), choices=list(MODELS),
                   help="models (default: all)")
    p.add_argument("--epochs", type=int, default=3, help="training epochs of the deep models (default 3)")
    p.add_argument("--paper-dims", action="store_true",
                   help="the paper's widths (512-d tokens, state size 16; SNN as its original, 4 x 256) instead of "
                        "the CPU settings; give a --out of its own (results/real_data/paper_width)")
    p.add_argument("--folds", nargs="+", type=int, default=None, help="fold indices (default: all five)")
    p.add_argument("--dim", type=int, default=None,
                   help="override every deep model's width: a smoke test of the code path, not a result")
    p.add_argument("--inner-val", action="store_true",
                   help="also train each deep model on an inner split of every training fold to diagnose a "
                        "constant-risk collapse (training folds only; writes inner/ and inner_validation.md)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per run (default 1)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates of the intervals")
    p.add_argument("--no-slides", action="store_true", help="skip the slide check")
    p.add_argument("--no-genomic", action="store_true", help="skip the genomic table (slides only)")
    p.add_argument("--progress", action="store_true", help="show the trainer's progress bars")
    p.add_argument("--precision", choices=("fp32", "tf32", "bf16"), default="fp32",
                   help="the deep models' training precision (default fp32)")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="replay each training step as one CUDA graph (CUDA only; same step, less launch time)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.data_root.is_dir():
        print(f"realdata: error: {args.data_root}: no such folder; give --data-root the folder holding tcga/, "
              "kegg/ and wsi/", file=sys.stderr)
        return 2
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    if not args.no_slides:
        t0 = time.perf_counter()
        run_slide_check(args.data_root, args.work, args.out, device=args.device)
        timings["slides_s"] = round(time.perf_counter() - t0, 1)
    if not args.no_genomic:
        t0 = time.perf_counter()
        dirs = {k: import_cohort(COHORTS[k], args.data_root, args.work / "cohorts") for k in args.cohorts}
        write_cohort_summaries(dirs, args.out)
        timings["import_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        model_table = PAPER_MODELS if args.paper_dims else MODELS
        if args.dim is not None:
            model_table = with_width(model_table, args.dim)
        table = run_genomic_check(dirs, args.out, work=args.work, models=args.models, epochs=args.epochs,
                                  model_table=model_table, folds=args.folds, seed=args.seed,
                                  threads=args.threads, device=args.device, n_boot=args.n_boot,
                                  setting="smoke" if args.dim is not None else "paper" if args.paper_dims else "cpu",
                                  inner_val=args.inner_val, progress=args.progress,
                                  precision=args.precision, cuda_graphs=args.cuda_graphs)
        timings["genomic_s"] = round(time.perf_counter() - t0, 1)
        _log(genomic_table_markdown(table))
    timings["total_s"] = round(time.perf_counter() - start, 1)
    command = shlex.join(["python", "-m", "survmamba_lite.realdata"] + list(sys.argv[1:] if argv is None else argv))
    log_path = args.out / "commands.jsonl"
    with log_path.open("a", encoding="utf-8") as f:
        f.write(json.dumps({"command": command, "finished": time.strftime("%Y-%m-%d %H:%M:%S"), **timings}) + "\n")
    _log(f"done in {timings['total_s']:.0f} s ({timings}); command logged in {log_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
