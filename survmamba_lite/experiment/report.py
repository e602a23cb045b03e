r"""Tables and figures of the paper, rebuilt from run directories of ``survmamba cv``.

Every run directory describes itself (``config.json`` with its ``derived`` block: model,
label, variant, direction, cohort from the cohort's manifest), so :func:`make_report`
only needs the directories:

=====================  ==========================================================  ===========================
output                 content                                                     paper
=====================  ==========================================================  ===========================
``table1_cindex``      c-index mean ± std over folds, model × cohort, "Overall"     Table 1
                       = mean of the cohort means
``table3_ablation``    the same for SurvMamba variants A–F (bidirectional runs)     Table 3
``fig3_bidirectional`` box plots of fold c-indices, bi- vs unidirectional           Fig. 3
``fig4_km_<model>``    Kaplan–Meier curves of the low/high-risk halves (median of   Fig. 4
                       the out-of-fold risk), log-rank p
``table2_complexity``  parameters, forward FLOPs, step time, CUDA peak memory on a  Table 2
                       synthetic input of stated size (``--complexity``)
``metrics_extra``      pooled out-of-fold c-index with a percentile bootstrap CI,   beyond the paper
                       time-dependent c-index, integrated Brier score, log-rank p
``random_risk``        fold-mean c-index against its permutation null (risks        beyond the paper
                       shuffled within each fold): null mean, 95% interval, p
=====================  ==========================================================  ===========================

Tables are written as CSV (numbers) and Markdown (formatted); figures as PNG (and SVG
with ``svg=True``); ``report.md`` gathers everything. ``std`` is the sample standard
deviation over folds (``ddof=1``), as in ``summary.json``.

Median split (Fig. 4): patients are pooled over folds (each scored by the model that did
not see it) and split at the median of those risks, as the paper describes. The
out-of-fold risks come from different fold models; the pooled c-index and its bootstrap
interval carry the same caveat (the per-fold mean ± std of Table 1 does not).
"""
from __future__ import annotations

import contextlib
import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from survmamba_lite.data.bag import PatientBag, collate_bags
from survmamba_lite.errors import UserError
from survmamba_lite.experiment.config import ExperimentConfig
from survmamba_lite.experiment.cv import CONFIG, OOF, SUMMARY, model_label, read_run_config
from survmamba_lite.experiment.trainer import METRICS, resolve_device
from survmamba_lite.registry import ModelInputs, build_model, list_models
from survmamba_lite.survival import (bootstrap_ci, concordance_index, logrank_test, nll_loss, plot_km_by_risk,
                                     split_by_median_risk)
from survmamba_lite.utils.outputs import REPORT, check_out_dir, discard_dir, publish_dir, staging_dir

__all__ = ["Run", "load_run", "load_runs", "check_run_files", "table1", "table3", "fig3_bidirectional", "fig4_km", "extra_metrics",
           "PermutationNull", "fold_permutation_cindex", "random_risk_reference", "ComplexitySizes", "complexity_table", "make_report", "Report", "to_markdown", "PAPER_COHORTS"]

PAPER_COHORTS = ("BRCA", "BLCA", "COADREAD", "UCEC", "LUAD")


# --------------------------------------------------------------------------- runs
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
    folds = [_read_json(path / f"fold_{k}" / METRICS, f"fold {k} is listed in {SUMMARY}; {fix}")
             for k in summary["folds"]]
    if not (path / OOF).is_file():
        raise UserError(f"{path / OOF}: missing; {fix}")
    try:
        oof = pd.read_csv(path / OOF, dtype={"case_id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise UserError(f"{path / OOF}: not a readable CSV ({err}); {fix}") from None
    check_run_files(path, summary, folds, oof)
    label = derived.get("model_label") or model_label(config.model, dict(config.model_options))
    return Run(path, config, derived, summary, folds, oof, label)


def load_runs(paths: Sequence[str | Path]) -> list[Run]:
    """Load runs; two runs with the same label on the same cohort get their directory name appended."""
    runs = [load_run(p) for p in paths]
    seen: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        seen.setdefault((r.label, r.cohort), []).append(r)
    for group in seen.values():
        if len(group) > 1:
            for r in group:
                r.label = f"{r.label} [{r.path.name}]"
    return runs


def _model_order(runs: Sequence[Run]) -> list[str]:
    rank = {s.name: i for i, s in enumerate(list_models())}
    first: dict[str, tuple[int, str]] = {}
    for r in runs:
        first.setdefault(r.label, (rank.get(r.config.model, len(rank)), r.label))
    return [lab for lab, _ in sorted(first.items(), key=lambda kv: kv[1])]


def _cohort_order(cohorts: Sequence[str]) -> list[str]:
    known = [c for c in PAPER_COHORTS if c in cohorts]
    return known + sorted(set(cohorts) - set(known))


def _fmt(mean: float | None, std: float | None, digits: int = 3) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return ""
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def to_markdown(df: pd.DataFrame, index: bool = False) -> str:
    """A pipe table (no extra dependency).

    >>> print(to_markdown(pd.DataFrame({"a": [1], "b": ["x"]})))
    | a | b |
    |---|---|
    | 1 | x |
    """
    frame = df.reset_index() if index else df
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join("" if (isinstance(v, float) and math.isnan(v)) else str(v) for v in row) + " |")
    return "\n".join(lines)


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    v = [float(x) for x in values if x is not None]
    if not v:
        return None, None
    return float(np.mean(v)), (float(np.std(v, ddof=1)) if len(v) >= 2 else None)


# --------------------------------------------------------------------------- Table 1 / Table 3
def table1(runs: Sequence[Run]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 1: c-index mean ± std over folds per model × cohort.

    Returns:
        ``long`` (one row per run: model, label, cohort, mean, std, n_folds, fold values)
        and ``wide`` (formatted; rows = labels, columns = cohorts + ``Overall``, the mean
        of the model's cohort means over the cohorts it was run on).
    """
    rows = []
    for r in runs:
        mean, std = _mean_std(r.fold_c_index)
        rows.append({"label": r.label, "model": r.config.model, "cohort": r.cohort, "mean": mean, "std": std,
                     "n_folds": len(r.fold_c_index), "fold_c_index": json.dumps(r.fold_c_index),
                     "run_dir": str(r.path)})
    long = pd.DataFrame(rows)
    if long.empty:
        return long, pd.DataFrame()
    cohorts = _cohort_order(long["cohort"].unique().tolist())
    wide_rows = []
    for label in _model_order(runs):
        sub = long[long["label"] == label].set_index("cohort")
        row = {"Model": label}
        for c in cohorts:
            row[c] = _fmt(sub.at[c, "mean"], sub.at[c, "std"]) if c in sub.index else ""
        means = [m for m in sub["mean"] if m is not None and not pd.isna(m)]
        row["Overall"] = f"{np.mean(means):.3f}" if means else ""
        wide_rows.append(row)
    return long, pd.DataFrame(wide_rows)


def table3(runs: Sequence[Run]) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Table 3: SurvMamba variants A–F (bidirectional ``survmamba`` runs); None without such runs."""
    from survmamba_lite.model.config import VARIANTS

    sel = [r for r in runs if r.config.model == "survmamba" and r.derived.get("bidirectional", True)]
    if not sel:
        return None
    long, _ = table1(sel)
    long["variant"] = [r.derived.get("variant") or "F" for r in sel]
    long["row"] = [v + (" " + lab[lab.index(" ["):].strip() if " [" in lab else "")
                   for v, lab in zip(long["variant"], long["label"])]
    cohorts = _cohort_order(long["cohort"].unique().tolist())
    mark = {True: "✓", False: ""}
    wide_rows = []
    for row_name in sorted(long["row"].unique()):
        sub = long[long["row"] == row_name].set_index("cohort")
        grouped, coarse, ifm_f, ifm_c = VARIANTS[sub["variant"].iloc[0]]
        row = {"Model": row_name, "HIM fine": mark[grouped], "HIM coarse": mark[coarse],
               "IFM fine": mark[ifm_f], "IFM coarse": mark[ifm_c]}
        for c in cohorts:
            row[c] = _fmt(sub.at[c, "mean"], sub.at[c, "std"]) if c in sub.index else ""
        means = [m for m in sub["mean"] if m is not None and not pd.isna(m)]
        row["Overall"] = f"{np.mean(means):.3f}" if means else ""
        wide_rows.append(row)
    return long.drop(columns=["row"]), pd.DataFrame(wide_rows)


# --------------------------------------------------------------------------- figures
def _figure(n_panels: int = 1, width: float = 5.0, height: float = 4.0):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * n_panels, height), layout="constrained")
    axes = fig.subplots(1, n_panels, squeeze=False)[0]
    return fig, axes


def _save(fig, out: Path, stem: str, svg: bool) -> list[Path]:
    paths = [out / f"{stem}.png"]
    fig.savefig(paths[0], dpi=150)
    if svg:
        paths.append(out / f"{stem}.svg")
        fig.savefig(paths[1])
    return paths


def fig3_bidirectional(runs: Sequence[Run], out: Path, svg: bool = False) -> tuple[pd.DataFrame, list[Path]] | None:
    """Fig. 3: fold c-indices of bidirectional vs unidirectional SurvMamba, per cohort.

    Uses ``survmamba`` runs; a cohort enters when it has runs of both directions (of
    the same variant). None when no cohort has both.
    """
    import seaborn as sns

    rows = []
    sm = [r for r in runs if r.config.model == "survmamba" and r.derived.get("bidirectional") is not None]
    for r in sm:
        partners = [o for o in sm if o.cohort == r.cohort and o.derived.get("variant") == r.derived.get("variant")
                    and o.derived.get("bidirectional") != r.derived.get("bidirectional")]
        if not partners:
            continue
        direction = "bidirectional" if r.derived["bidirectional"] else "unidirectional"
        rows += [{"cohort": r.cohort, "variant": r.derived.get("variant"), "direction": direction, "fold": m["fold"],
                  "c_index": m["c_index"], "run_dir": str(r.path)} for m in r.folds if m.get("c_index") is not None]
    if not rows:
        return None
    data = pd.DataFrame(rows)
    order = _cohort_order(data["cohort"].unique().tolist())
    fig, (ax,) = _figure(1, width=max(4.0, 1.6 * len(order) + 2), height=4.0)
    hue_order = ["bidirectional", "unidirectional"]
    with warnings.catch_warnings():       # seaborn 0.13 passes matplotlib's deprecated `vert` to bxp
        warnings.filterwarnings("ignore", message=".*vert: bool.*")
        sns.boxplot(data=data, x="cohort", y="c_index", hue="direction", order=order, hue_order=hue_order, ax=ax,
                    palette=["#2D6FB7", "#E1A730"], showfliers=False)
    sns.stripplot(data=data, x="cohort", y="c_index", hue="direction", order=order, hue_order=hue_order, ax=ax,
                  dodge=True, palette=["black", "black"], size=3, legend=False)
    ax.set_xlabel("")
    ax.set_ylabel("c-index (folds)")
    ax.set_title("SurvMamba: bidirectional vs\nunidirectional Mamba")
    return data, _save(fig, out, "fig3_bidirectional", svg)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def fig4_km(runs: Sequence[Run], out: Path, svg: bool = False) -> tuple[pd.DataFrame, list[Path]]:
    """Fig. 4: per model, one Kaplan–Meier panel per cohort (median split of the out-of-fold risk).

    Returns the log-rank table (label, cohort, group sizes, statistic, p) and the files.
    """
    rows, paths = [], []
    for label in _model_order(runs):
        cohorts = _cohort_order([r.cohort for r in runs])
        mine = sorted((r for r in runs if r.label == label), key=lambda r: cohorts.index(r.cohort))
        fig, axes = _figure(len(mine), width=4.2, height=3.8)
        for ax, r in zip(axes, mine):
            t, e, risk = (r.oof[c].to_numpy() for c in ("time", "event", "risk"))
            high = split_by_median_risk(risk)
            row = {"label": label, "cohort": r.cohort, "n_low": int((~high).sum()), "n_high": int(high.sum()),
                   "logrank_statistic": None, "logrank_p": None, "note": ""}
            try:
                test = logrank_test(t, e, high)
                row["logrank_statistic"], row["logrank_p"] = test.statistic, test.p_value
                plot_km_by_risk(t, e, risk, ax=ax, title=f"{r.cohort}: {label}")
                ax.set_xlabel("time (months)")
            except ValueError as err:
                row["note"] = str(err)
                ax.set_title(f"{r.cohort}: {label}\n(no split: {err})", fontsize=8)
            rows.append(row)
        paths += _save(fig, out, f"fig4_km_{_slug(label)}", svg)
    return pd.DataFrame(rows), paths


# --------------------------------------------------------------------------- beyond the paper
def extra_metrics(runs: Sequence[Run], n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Per run: pooled out-of-fold c-index with a percentile bootstrap CI (over patients),
    fold mean ± std of the time-dependent c-index and the integrated Brier score."""
    rows = []
    for r in runs:
        t, e, risk = (r.oof[c].to_numpy() for c in ("time", "event", "risk"))
        row: dict[str, Any] = {"label": r.label, "model": r.config.model, "cohort": r.cohort, "n_oof": len(r.oof)}
        try:
            ci = bootstrap_ci(lambda tt, rr, ee: concordance_index(tt, rr, ee), t, risk, e, n_boot=n_boot,
                              seed=seed, level=level)
            row.update(oof_c_index=ci.estimate, oof_c_index_low=ci.low, oof_c_index_high=ci.high)
        except ValueError as err:
            row.update(oof_c_index=None, oof_c_index_low=None, oof_c_index_high=None, note=str(err))
        for key in ("c_index", "c_index_td", "ibs"):
            m, s = _mean_std([f.get(key) for f in r.folds])
            row[f"{key}_mean"], row[f"{key}_std"] = m, s
        rows.append(row)
    return pd.DataFrame(rows)


def _extra_markdown(df: pd.DataFrame, level: float) -> pd.DataFrame:
    pct = int(round(level * 100))
    out = pd.DataFrame({"Model": df["label"], "Cohort": df["cohort"]})
    out["c-index (folds)"] = [_fmt(m, s) for m, s in zip(df["c_index_mean"], df["c_index_std"])]
    out[f"pooled OOF c-index [{pct}% CI]"] = [
        "" if pd.isna(m) else f"{m:.3f} [{lo:.3f}, {hi:.3f}]"
        for m, lo, hi in zip(df["oof_c_index"], df["oof_c_index_low"], df["oof_c_index_high"])]
    out["td c-index"] = [_fmt(m, s) for m, s in zip(df["c_index_td_mean"], df["c_index_td_std"])]
    out["IBS"] = [_fmt(m, s) for m, s in zip(df["ibs_mean"], df["ibs_std"])]
    if "logrank_p" in df:
        out["log-rank p"] = ["" if pd.isna(p) else f"{p:.2e}" for p in df["logrank_p"]]
    return out


# --------------------------------------------------------------------------- random-risk reference
_PAIR_CHUNK = 1 << 22      # comparisons (permutations x comparable pairs) held in memory at once
_TIE_TOL = 1e-12           # null fold-means within this of the observed one count as ">="


@dataclass(frozen=True)
class PermutationNull:
    r"""Result of :func:`fold_permutation_cindex`.

    Attributes:
        observed: mean over the used folds of the fold's Harrell C.
        null: ``(n_perm,)`` the same mean with the risks shuffled within each fold.
        p_value: one-sided permutation p, :math:`(1 + \#\{b: \bar C^{(b)} \ge \bar C_\text{obs}\}) / (1 + B)`.
        folds: fold ids that entered the mean, ascending.
        skipped: fold ids left out (no comparable pair: too small or fully censored).
    """

    observed: float
    null: np.ndarray
    p_value: float
    folds: tuple
    skipped: tuple


def _comparable_pairs(t: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays ``(i, j)`` of the comparable pairs, ``i`` the one who died first (lifelines rules).

    ``t: (n,)``, ``e: (n,)`` bool; builds an ``(n, n)`` mask, fine for validation folds.
    """
    mask = e[:, None] & ((t[None, :] > t[:, None]) | ((t[None, :] == t[:, None]) & ~e[None, :]))  # (n, n)
    return np.nonzero(mask)


def _batched_cindex(risks: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Harrell's C of each row of ``risks: (M, n)`` over the comparable pairs ``(i, j)``; ``(M,)``."""
    n_pairs = i.shape[0]
    out = np.empty(risks.shape[0])
    step = max(1, _PAIR_CHUNK // max(1, n_pairs))
    for s in range(0, risks.shape[0], step):
        ri, rj = risks[s:s + step, i], risks[s:s + step, j]                     # (m, pairs)
        conc = (ri > rj).sum(axis=1)
        tied = (ri == rj).sum(axis=1)
        out[s:s + step] = (conc + 0.5 * tied) / n_pairs                         # the formula of concordance_index
    return out


def fold_permutation_cindex(time: Any, risk: Any, event: Any, fold: Any, n_perm: int = 1000,
                            seed: int = 0) -> PermutationNull:
    r"""Permutation null of the fold-mean Harrell C when the risks carry no information.

    With folds :math:`f = 1..k` and :math:`C_f(r)` Harrell's C of the risks ``r`` on fold
    ``f`` (:func:`~survmamba_lite.survival.concordance_index`), the statistic is
    :math:`\bar C(r) = \frac1k \sum_f C_f(r)`, the number Table 1 reports. Replicate
    ``b`` draws an independent uniform permutation :math:`\pi_f^{(b)}` of the risks inside
    each fold, so times, events, censoring, fold sizes and the multiset of risk values
    (ties included) stay exactly as observed; only the link between a patient and a risk
    is broken:

    .. math::

        \bar C^{(b)} = \frac1k \sum_f C_f\!\big(r \circ \pi_f^{(b)}\big), \qquad
        p = \frac{1 + \#\{b : \bar C^{(b)} \ge \bar C_\text{obs}\}}{1 + B}.

    Under the null every comparable pair is concordant or discordant with equal chance
    (a tied pair counts ½ either way), so :math:`E[\bar C^{(b)}] = 0.5` exactly; the
    spread of :math:`\bar C^{(b)}` is what a random risk reaches on folds this size. The
    p-value is the usual one-sided Monte-Carlo permutation p (never 0; its smallest value
    is :math:`1 / (1 + B)`). Values within ``1e-12`` of the observed mean count as ``>=``
    (float rounding of equal fractions).

    Folds without a comparable pair are left out of the mean (listed in ``skipped``).
    Random stream: ``numpy.random.default_rng(seed)``; for each fold in ascending fold
    id, one ``rng.permuted`` call on ``n_perm`` copies of the fold's risks (row ``b`` is
    replicate ``b``). The null C's are counted on the fold's comparable pairs, vectorised
    over replicates; the observed C is :func:`concordance_index`'s and equals the
    identity permutation's.

    Args:
        time: ``(n,)`` follow-up times.
        risk: ``(n,)`` predicted risk (higher = earlier death).
        event: ``(n,)`` 1 = death observed, 0 = censored.
        fold: ``(n,)`` validation fold of each patient.
        n_perm: replicates ``B`` (>= 1).
        seed: seed of the permutations.

    >>> t = np.arange(1.0, 21.0); e = np.ones(20); fold = np.repeat([0, 1], 10)
    >>> perfect = fold_permutation_cindex(t, -t, e, fold, n_perm=999)
    >>> perfect.observed, perfect.p_value, round(float(perfect.null.mean()), 2)
    (1.0, 0.001, 0.5)
    >>> fold_permutation_cindex(t, t, e, fold, n_perm=999).p_value      # reversed ranking
    1.0
    """
    t_all, e_all = (np.asarray(x, dtype=np.float64).reshape(-1) for x in (time, event))
    r_all = np.asarray(risk, dtype=np.float64).reshape(-1)
    f_all = np.asarray(fold).reshape(-1)
    if not (t_all.shape == e_all.shape == r_all.shape == f_all.shape):
        raise ValueError(f"fold_permutation_cindex: time, risk, event and fold must have the same length, got "
                         f"{t_all.shape[0]}, {r_all.shape[0]}, {e_all.shape[0]} and {f_all.shape[0]}")
    if int(n_perm) < 1:
        raise ValueError(f"fold_permutation_cindex: n_perm must be >= 1, got {n_perm}")
    n_perm = int(n_perm)
    rng = np.random.default_rng(seed)
    observed_sum, null_sum = 0.0, np.zeros(n_perm)
    used, skipped = [], []
    for k in np.unique(f_all):
        sel = f_all == k
        t, r, e = t_all[sel], r_all[sel], e_all[sel]
        try:
            c_obs = concordance_index(t, r, e)             # validates the inputs too (NaN, event 0/1)
        except ValueError as err:
            if "no comparable pairs" not in str(err):
                raise ValueError(f"fold {k}: {err}") from err
            skipped.append(k.item() if hasattr(k, "item") else k)
            continue
        i, j = _comparable_pairs(t, e.astype(bool))
        shuffled = rng.permuted(np.tile(r, (n_perm, 1)), axis=1)                # (n_perm, n_fold)
        observed_sum += c_obs
        null_sum += _batched_cindex(shuffled, i, j)
        used.append(k.item() if hasattr(k, "item") else k)
    if not used:
        raise ValueError("fold_permutation_cindex: no fold has a comparable pair (each needs an observed death "
                         "that ends before another patient's follow-up)")
    observed = observed_sum / len(used)
    null = null_sum / len(used)
    p = (1 + int((null >= observed - _TIE_TOL).sum())) / (1 + n_perm)
    return PermutationNull(float(observed), null, float(p), tuple(used), tuple(skipped))


def random_risk_reference(runs: Sequence[Run], n_perm: int = 1000, seed: int = 0,
                          level: float = 0.95) -> pd.DataFrame:
    r"""Per run (model × cohort): does the model beat risks drawn at random?

    Runs :func:`fold_permutation_cindex` on the run's out-of-fold predictions
    (``oof_predictions.csv``: time, event, risk and the validation fold of each patient)
    and reports the observed fold-mean c-index (Table 1's mean, recomputed from the saved
    risks), the null mean (0.5 in expectation), the central ``level`` interval of the null
    (percentiles :math:`(1-\text{level})/2` and :math:`(1+\text{level})/2`, ``numpy.quantile``
    linear rule) and the one-sided permutation p. A model "clearly beats random risk" on a
    cohort when its observed value lies above the interval (equivalently a small p). Each
    run uses ``default_rng(seed)`` afresh, so its numbers do not depend on the other runs.

    Returns:
        one row per run: label, model, cohort, n_folds, observed, null_mean, null_low,
        null_high, p_value, n_perm, seed, note (skipped folds), run_dir.
    """
    rows = []
    lo_q, hi_q = (1 - level) / 2, (1 + level) / 2
    for r in runs:
        missing = [c for c in ("fold", "time", "event", "risk") if c not in r.oof.columns]
        if missing:
            raise ValueError(f"{r.path / OOF}: missing column(s) {missing}; rerun `survmamba cv` with --out "
                             f"{r.path} to rebuild it")
        row: dict[str, Any] = {"label": r.label, "model": r.config.model, "cohort": r.cohort}
        try:
            res = fold_permutation_cindex(r.oof["time"], r.oof["risk"], r.oof["event"], r.oof["fold"],
                                          n_perm=n_perm, seed=seed)
        except ValueError as err:
            rows.append({**row, "n_folds": 0, "observed": None, "null_mean": None, "null_low": None,
                         "null_high": None, "p_value": None, "n_perm": n_perm, "seed": seed,
                         "note": f"{r.path / OOF}: {err}", "run_dir": str(r.path)})
            continue
        rows.append({**row, "n_folds": len(res.folds), "observed": res.observed, "null_mean": float(res.null.mean()),
                     "null_low": float(np.quantile(res.null, lo_q)), "null_high": float(np.quantile(res.null, hi_q)),
                     "p_value": res.p_value, "n_perm": n_perm, "seed": seed,
                     "note": f"folds without comparable pairs left out: {list(res.skipped)}" if res.skipped else "",
                     "run_dir": str(r.path)})
    return pd.DataFrame(rows)


def _random_risk_markdown(df: pd.DataFrame, level: float) -> pd.DataFrame:
    pct = int(round(level * 100))
    ok = df["observed"].notna()
    f3 = lambda v: f"{v:.3f}" if pd.notna(v) else ""                                     # noqa: E731
    return pd.DataFrame({
        "Model": df["label"], "Cohort": df["cohort"],
        "c-index (fold mean)": [f3(v) for v in df["observed"]],
        "random-risk mean": [f3(v) for v in df["null_mean"]],
        f"random-risk {pct}% interval": [f"[{lo:.3f}, {hi:.3f}]" if o else ""
                                          for lo, hi, o in zip(df["null_low"], df["null_high"], ok)],
        "p (one-sided)": [f"{p:.3g}" if pd.notna(p) else "" for p in df["p_value"]],
        "permutations": df["n_perm"], "folds": df["n_folds"]})


# --------------------------------------------------------------------------- Table 2
@dataclass(frozen=True)
class ComplexitySizes:
    """The stated input of the complexity table.

    Attributes:
        patches: patch tokens of the one patient (paper setting: 4096).
        regions: regions they are spread over (a 4096 px region holds 16 x 16 = 256 patches,
            so 4096 patches = 16 full regions).
        wsi_dim: patch-feature width ``F`` (CTransPath: 768).
        genes_scale: synthetic KEGG-shaped hierarchy (``paper``: 1,577 genes, 352
            functions, 45 processes; ``course``; ``tiny``).
        n_bins: time bins ``T``.
        repeats: timed training steps (median reported).
    """

    patches: int = 4096
    regions: int = 16
    wsi_dim: int = 768
    genes_scale: str = "paper"
    n_bins: int = 4
    repeats: int = 3


def _complexity_inputs(sizes: ComplexitySizes, device: torch.device):
    from survmamba_lite.data.kegg import build_genomic_hierarchy
    from survmamba_lite.data.synth import SCALES, synthetic_hierarchy

    if sizes.genes_scale not in SCALES:
        raise ValueError(f"genes_scale must be one of {list(SCALES)}, got {sizes.genes_scale!r}")
    table, genes, _ = synthetic_hierarchy(SCALES[sizes.genes_scale], 0)
    hierarchy = build_genomic_hierarchy(table, genes)[0]
    g = torch.Generator().manual_seed(0)
    region = torch.arange(sizes.patches) % sizes.regions
    bag = PatientBag("complexity", torch.randn(sizes.patches, sizes.wsi_dim, generator=g), region,
                     torch.randn(hierarchy.n_genes, generator=g), time=10.0, event=1, time_bin=1)
    return ModelInputs(n_bins=sizes.n_bins, wsi_dim=sizes.wsi_dim, hierarchy=hierarchy), collate_bags([bag]).to(device)


def complexity_table(models: Sequence[tuple[str, str, dict]], sizes: ComplexitySizes = ComplexitySizes(),
                     device: str = "auto") -> pd.DataFrame:
    """Table 2 for ``models`` = ``[(label, registry name, options), ...]`` on one synthetic patient.

    Columns: label, model, params, FLOPs (forward; matmul + analytic scan), training step
    seconds (median), peak CUDA memory in MiB (blank on CPU), device and the input sizes.
    """
    from survmamba_lite.utils.complexity import measure_complexity

    dev = resolve_device(device)
    inputs, batch = _complexity_inputs(sizes, dev)
    rows = []
    for label, name, options in models:
        torch.manual_seed(0)
        model = build_model(name, inputs, **options).to(dev)

        def loss(logits, b):
            out = nll_loss(logits.float(), b.time_bin, b.event)
            return out + model.auxiliary_loss(b) if callable(getattr(model, "auxiliary_loss", None)) else out
        c = measure_complexity(model, batch, loss, repeats=sizes.repeats)
        rows.append({"label": label, "model": name, "params": c.params, "flops": c.flops,
                     "flops_matmul": c.flops_matmul, "flops_scan": c.flops_scan, "step_seconds": c.step_seconds,
                     "peak_memory_mib": None if c.peak_memory_bytes is None else c.peak_memory_bytes / 2 ** 20,
                     "device": c.device, "patches": sizes.patches, "regions": sizes.regions,
                     "wsi_dim": sizes.wsi_dim, "n_genes": inputs.hierarchy.n_genes})
        del model
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- everything
@dataclass
class Report:
    """What :func:`make_report` wrote: ``tables`` (name -> frame) and ``files``."""

    out_dir: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    markdown: str = ""


def _write_table(rep: Report, name: str, long: pd.DataFrame, wide: pd.DataFrame | None, title: str) -> str:
    long.to_csv(rep.out_dir / f"{name}.csv", index=False, lineterminator="\n")
    shown = wide if wide is not None else long
    md = f"## {title}\n\n{to_markdown(shown)}\n"
    (rep.out_dir / f"{name}.md").write_text(md, encoding="utf-8")
    rep.tables[name] = long
    if wide is not None:
        rep.tables[f"{name}_wide"] = wide
    rep.files += [rep.out_dir / f"{name}.csv", rep.out_dir / f"{name}.md"]
    return md


def make_report(run_dirs: Sequence[str | Path], out_dir: str | Path, *, complexity: bool = False,
                sizes: ComplexitySizes = ComplexitySizes(), device: str = "auto", svg: bool = False,
                n_boot: int = 1000, n_perm: int = 1000, seed: int = 0, overwrite: bool = False) -> Report:
    """Build every table and figure from finished run directories into ``out_dir``.

    ``out_dir`` must be new or empty, or (with ``overwrite``) an earlier report folder
    holding only the report's own files; the report is written into a staging folder and
    renamed into place, so ``out_dir`` holds a whole report or the previous one.

    Args:
        run_dirs: run directories of ``survmamba cv``.
        out_dir: where the files go (created).
        complexity: also measure Table 2 for the runs' models (with their options).
        sizes: the input of the complexity table.
        device: device of the complexity measurements.
        svg: also write SVG figures.
        n_boot: bootstrap replicates of the pooled c-index interval.
        n_perm: permutations of the random-risk reference (``random_risk``, see
            :func:`random_risk_reference`); 0 leaves it out.
        seed: seed of the bootstrap and of the permutations.
        overwrite: replace an earlier report in ``out_dir`` (only its own files).
    """
    if not run_dirs:
        raise ValueError("make_report: give at least one run directory")
    if n_perm < 0:
        raise ValueError(f"make_report: n_perm must be >= 0 (0 leaves the random-risk reference out), got {n_perm}")
    final = Path(out_dir)
    state = check_out_dir(final, REPORT, overwrite=overwrite)      # before anything is read or written
    runs = load_runs(run_dirs)
    stage = staging_dir(final, REPORT)                             # written whole, then renamed onto out_dir
    try:
        rep = _write_report(runs, stage, complexity=complexity, sizes=sizes, device=device, svg=svg,
                            n_boot=n_boot, n_perm=n_perm, seed=seed)
    except BaseException:
        with contextlib.suppress(Exception):
            discard_dir(stage, REPORT)
        raise
    if state == "ours":
        discard_dir(final, REPORT)
    publish_dir(stage, final)
    rep.out_dir, rep.files = final, [final / p.relative_to(stage) for p in rep.files]
    return rep


def _write_report(runs: list[Run], out: Path, *, complexity: bool, sizes: ComplexitySizes, device: str, svg: bool,
                  n_boot: int, n_perm: int, seed: int) -> Report:
    rep = Report(out)
    sections = ["# Report\n", "Runs: " + ", ".join(f"`{r.path}`" for r in runs) + "\n"]

    long, wide = table1(runs)
    sections.append(_write_table(rep, "table1_cindex", long, wide,
                                 "Table 1: c-index (mean ± std over folds)"))
    t3 = table3(runs)
    if t3 is not None:
        sections.append(_write_table(rep, "table3_ablation", t3[0], t3[1],
                                     "Table 3: SurvMamba components (c-index, mean ± std over folds)"))
    km, km_files = fig4_km(runs, rep.out_dir, svg)
    rep.files += km_files
    f3 = fig3_bidirectional(runs, rep.out_dir, svg)
    extra = extra_metrics(runs, n_boot=n_boot, seed=seed)
    extra = extra.merge(km[["label", "cohort", "logrank_p"]], on=["label", "cohort"], how="left")
    sections.append(_write_table(rep, "metrics_extra", extra, _extra_markdown(extra, 0.95),
                                 f"Beyond the paper: pooled out-of-fold c-index ({n_boot} bootstrap replicates), "
                                 "time-dependent c-index, integrated Brier score, log-rank p of the median split"))
    if n_perm > 0:
        rr = random_risk_reference(runs, n_perm=n_perm, seed=seed)
        sections.append(_write_table(rep, "random_risk", rr, _random_risk_markdown(rr, 0.95),
                                     f"Random-risk reference: fold-mean c-index against {n_perm} random risks "
                                     f"(risks shuffled within each validation fold, seed {seed}); "
                                     "one-sided permutation p"))
    if complexity:
        seen: dict[str, tuple[str, str, dict]] = {}
        for r in runs:
            base = r.label.split(" [")[0]
            seen.setdefault(base, (base, r.config.model, dict(r.config.model_options)))
        ct = complexity_table(list(seen.values()), sizes, device)
        overall = {row["Model"].split(" [")[0]: row["Overall"] for _, row in wide.iterrows()}
        ct["overall_c_index"] = [overall.get(lab, "") for lab in ct["label"]]
        shown = pd.DataFrame({
            "Model": ct["label"], "Params": [f"{p / 1e3:.2f}K" for p in ct["params"]],
            "FLOPs": [f"{f / 1e9:.3f}G" for f in ct["flops"]],
            "step (s)": [f"{s:.4f}" for s in ct["step_seconds"]],
            "peak memory (MiB)": ["" if m is None or pd.isna(m) else f"{m:.1f}" for m in ct["peak_memory_mib"]],
            "c-index (Overall)": ct["overall_c_index"]})
        sections.append(_write_table(
            rep, "table2_complexity", ct, shown,
            f"Table 2: complexity on one synthetic patient ({sizes.patches} patches in {sizes.regions} regions, "
            f"F = {sizes.wsi_dim}, {int(ct['n_genes'].iloc[0])} genes; device {ct['device'].iloc[0]})"))
    figs = ["## Figures\n"]
    if f3 is not None:
        f3[0].to_csv(rep.out_dir / "fig3_bidirectional.csv", index=False, lineterminator="\n")
        rep.files += f3[1] + [rep.out_dir / "fig3_bidirectional.csv"]
        figs.append("![Fig. 3](fig3_bidirectional.png)\n")
    else:
        figs.append("Fig. 3 needs bidirectional and unidirectional `survmamba` runs on the same cohort.\n")
    km.to_csv(rep.out_dir / "fig4_km_logrank.csv", index=False, lineterminator="\n")
    rep.files.append(rep.out_dir / "fig4_km_logrank.csv")
    figs += [f"![Fig. 4]({p.name})\n" for p in km_files if p.suffix == ".png"]
    sections.append("\n".join(figs))
    rep.markdown = "\n".join(sections)
    (rep.out_dir / "report.md").write_text(rep.markdown, encoding="utf-8")
    rep.files.append(rep.out_dir / "report.md")
    return rep
