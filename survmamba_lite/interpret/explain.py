"""``survmamba explain``: importance maps of one case from a finished ``survmamba cv`` run.

:func:`load_explainer` rebuilds a fold's model from ``RUN/config.json`` and
``RUN/fold_{k}/checkpoint.pt`` and the fold's preprocessing from
``RUN/fold_{k}/preprocessing.json`` (the RNA z-score fitted on that fold's training cases);
:func:`explain_case` scores one case with the hidden-attention rollout
(:mod:`~survmamba_lite.interpret.rollout`) and integrated gradients
(:mod:`~survmamba_lite.interpret.attribution`); :func:`write_explanation` writes::

    OUT/
      patches.csv      one row per patch: slide_id, patch (row in features/<slide_id>.h5),
                       region (the slide's region index), x, y (level-0 top-left), scores
      regions.csv      one row per region: slide_id, region, n_patches, x, y (top-left of its
                       first patch), scores and ranks
      functions.csv    one row per genomic function (KEGG pathway): process, scores, ranks
      processes.csv    one row per process (KEGG class), ranked
      explanation.h5   the same tables as HDF5 datasets (one group per table)
      summary.json     run, fold, case, risk, α, the rule and the baseline used
      heatmap.png      hidden-attention patch scores over the slide thumbnail (only with --slide)
      heatmap_ig.png   the same for |integrated gradients|

Cost. The rollout forms each block's ``L x L`` channel-mean matrix in memory-bounded pieces
(:func:`~survmamba_lite.interpret.hidden_attention.scan_matrix`), but its work grows as
``L^2 E N`` per block: fine (a region's patches) and coarse (the regions) levels are cheap,
while the fine IFM scans all patches of the slide at once, so a paper-scale slide of
thousands of patches with the full model (``D = 512``) takes minutes on a CPU.

Score columns: ``hidden_attention`` (the rollout share, non-negative, summing to 1 per
modality), ``ig`` (signed integrated gradients of the risk; positive raises it) and
``ig_abs``; ranks are 1 for the most important (``rank_hidden_attention``, ``rank_ig``
by ``ig_abs``).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch

from survmamba_lite.data.bag import collate_bags
from survmamba_lite.data.dataset import CohortDataset, RNANormalizer
from survmamba_lite.data.features_h5 import read_features_h5
from survmamba_lite.data.layout import Cohort
from survmamba_lite.errors import UserError
from survmamba_lite.interpret.attribution import function_scores, integrated_gradients
from survmamba_lite.interpret.rollout import hidden_attention_importance
from survmamba_lite.model.survmamba import SurvMamba
from survmamba_lite.utils.io import atomic_path, atomic_write_text
from survmamba_lite.utils.outputs import EXPLAIN, check_out_dir, claim_out_dir, clear_out_dir

__all__ = ["Explainer", "CaseExplanation", "load_explainer", "explain_case", "write_explanation", "check_slide"]

TABLES = ("patches", "regions", "functions", "processes")


@dataclass
class Explainer:
    """A fold's model with what it needs to read a case."""

    run_dir: Path
    fold: int
    model: SurvMamba
    cohort: Cohort
    rna_normalizer: RNANormalizer | None
    label: str
    subset_note: str = ""


@dataclass
class CaseExplanation:
    """The tables of one case (``patches``/``regions`` None without slides, ``functions``/``processes``
    None without RNA) and a summary."""

    patches: pd.DataFrame | None
    regions: pd.DataFrame | None
    functions: pd.DataFrame | None
    processes: pd.DataFrame | None
    summary: dict


def _fold_with_checkpoint(run: Path, fold: int | None) -> int:
    if fold is not None:
        path = run / f"fold_{fold}" / "checkpoint.pt"
        if not path.is_file():
            have = sorted(p.parent.name for p in run.glob("fold_*/checkpoint.pt"))
            raise UserError(f"{path}: no checkpoint for fold {fold}; folds with one: {have or 'none'}. Pass one of "
                            "them with --fold, or train the fold with `survmamba cv` (it keeps checkpoints; "
                            "`survmamba grid` deletes them unless --keep-checkpoints)")
        return fold
    found = sorted(int(p.parent.name.split("_")[1]) for p in run.glob("fold_*/checkpoint.pt"))
    if not found:
        raise UserError(f"{run}: no fold_*/checkpoint.pt; the run is unfinished or its checkpoints were deleted "
                        "(`survmamba grid` keeps them only with --keep-checkpoints): rerun `survmamba cv` with this "
                        "--out to train and keep them")
    return found[0]


def load_explainer(run_dir: str | os.PathLike, fold: int | None = None) -> Explainer:
    """Rebuild fold ``fold`` (default: the first with a checkpoint) of the run in ``run_dir``."""
    from survmamba_lite.experiment.cv import load_experiment_cohort, read_run_config
    from survmamba_lite.registry import ModelInputs, build_model

    run = Path(run_dir)
    if not (run / "config.json").is_file():
        raise UserError(f"{run}/config.json: not found; --run must be a run directory written by `survmamba cv "
                        "--out RUN_DIR`")
    config, derived = read_run_config(run)
    from survmamba_lite.model.registry_entries import model_specs
    survmamba = sorted(spec.name for spec in model_specs())
    if config.model not in survmamba:
        raise UserError(f"{run}: a run of {config.model!r}; explain reads SurvMamba runs (models "
                        f"{', '.join(survmamba)}), whose hidden attention it rolls out")
    k = _fold_with_checkpoint(run, fold)
    ckpt = torch.load(run / f"fold_{k}" / "checkpoint.pt", map_location="cpu", weights_only=True)
    prep_path = run / f"fold_{k}" / "preprocessing.json"
    if not prep_path.is_file():
        raise UserError(f"{prep_path}: missing; the fold's preprocessing is needed to read its cases: rerun "
                        "`survmamba cv` with this --out")
    prep = json.loads(prep_path.read_text(encoding="utf-8"))
    cohort, _ = load_experiment_cohort(config)
    inputs = ModelInputs(n_bins=int(ckpt["n_bins"]),
                         wsi_dim=derived.get("wsi_dim") if "wsi" in config.modalities else None,
                         hierarchy=cohort.hierarchy if "rna" in config.modalities else None)
    model = build_model(config.model, inputs, **{**config.model_options, "scan_backend": "parallel",
                                                  "conv_backend": "torch"})
    model.load_state_dict(ckpt["model"])
    norm = prep.get("rna_normalizer")
    label = derived.get("model_label", config.model)
    subset = f", restricted to a seeded subset of {config.max_cases} cases by max_cases" if config.max_cases else ""
    return Explainer(run, k, model.float().eval(), cohort, None if norm is None else RNANormalizer.from_dict(norm),
                     label, subset)


def _case_batch(ex: Explainer, case_id: str):
    if case_id not in ex.cohort.clinical.index:
        some = ", ".join(map(str, ex.cohort.case_ids[:3]))
        raise UserError(f"--case {case_id}: not a case of run {ex.run_dir} ({ex.cohort.root}/clinical.csv"
                        f"{ex.subset_note}); case ids look like {some}")
    if "wsi" in ex.model.modalities and not ex.cohort.slide_ids(case_id):
        raise UserError(f"--case {case_id}: has no slide in {ex.cohort.root}/clinical.csv, but the model of "
                        f"{ex.run_dir} reads slides; choose a case with a slide_id")
    ds = CohortDataset(ex.cohort, [case_id], ex.model.modalities, rna_normalizer=ex.rna_normalizer)
    return collate_bags([ds[0]])


def _ranks(frame: pd.DataFrame) -> pd.DataFrame:
    frame["rank_hidden_attention"] = frame["hidden_attention"].rank(ascending=False, method="first").astype(int)
    frame["rank_ig"] = frame["ig_abs"].rank(ascending=False, method="first").astype(int)
    return frame


def _slide_tables(ex: Explainer, case_id: str, ha, ig_scores: np.ndarray):
    """Patch and region frames in slide coordinates. ``ig_scores``: ``(R, P)`` signed patch IG."""
    rows, offset = [], 0
    for sid in ex.cohort.slide_ids(case_id):
        sf = read_features_h5(ex.cohort.feature_path(sid))
        regions, inverse = np.unique(sf.region, return_inverse=True)
        for r_local, r_slide in enumerate(regions):
            idx = np.flatnonzero(inverse == r_local)                   # the model's patch order in the region
            for p, i in enumerate(idx):
                rows.append((case_id, sid, int(i), int(r_slide), int(sf.coords[i, 0]), int(sf.coords[i, 1]),
                             offset + r_local, p, int(sf.attrs.get("patch_size", 0))))
        offset += len(regions)
    patches = pd.DataFrame(rows, columns=["case_id", "slide_id", "patch", "region", "x", "y", "model_region",
                                          "model_position", "patch_size"])
    r, p = patches["model_region"].to_numpy(), patches["model_position"].to_numpy()
    patches["hidden_attention"] = ha.fine.numpy()[r, p]
    patches["within_region"] = ha.within.numpy()[r, p]
    patches["ig"] = ig_scores[r, p]
    patches["ig_abs"] = np.abs(patches["ig"])
    regions = patches.groupby(["case_id", "slide_id", "region", "model_region"], sort=False).agg(
        n_patches=("patch", "size"), x=("x", "min"), y=("y", "min"), hidden_attention=("hidden_attention", "sum"),
        ig=("ig", "sum")).reset_index()
    regions["coarse_rollout"] = np.nan if ha.coarse is None else ha.coarse.numpy()[regions["model_region"]]
    regions["ig_abs"] = regions["ig"].abs()
    return _ranks(patches).drop(columns=["model_position"]), _ranks(regions)


def _genomic_tables(ex: Explainer, ha, gene_ig: torch.Tensor):
    h = ex.cohort.hierarchy
    model = ex.model
    f_ha = torch.zeros(h.n_functions, dtype=torch.float64)
    f_ha[model.function_index[ha.mask]] = ha.fine[ha.mask].double()
    f_ig, p_ig = function_scores(gene_ig.double(), h)
    functions = pd.DataFrame({"function_id": h.function_ids, "function_name": h.function_names,
                              "process": [h.process_names[j] for j in h.function_process],
                              "n_genes": [len(g) for g in h.function_genes], "hidden_attention": f_ha.numpy(),
                              "ig": f_ig.numpy()})
    functions["ig_abs"] = functions["ig"].abs()
    processes = pd.DataFrame({"process": h.process_names, "n_functions": [len(f) for f in h.process_functions],
                              "hidden_attention": ha.group.double().numpy(), "ig": p_ig.numpy()})
    processes["ig_abs"] = processes["ig"].abs()
    return (_ranks(functions).sort_values("rank_hidden_attention"),
            _ranks(processes).sort_values("rank_hidden_attention"))


def explain_case(ex: Explainer, case_id: str, ig_steps: int = 32) -> CaseExplanation:
    """Hidden-attention rollout and integrated gradients of one case (see the module docstring)."""
    batch = _case_batch(ex, case_id)
    att = integrated_gradients(ex.model, batch, steps=ig_steps)
    patches = regions = functions = processes = None
    alpha = None
    if "wsi" in ex.model.modalities:
        ha = hidden_attention_importance(ex.model, batch, "wsi")
        alpha = ha.alpha
        patches, regions = _slide_tables(ex, case_id, ha, att.patch_scores[0].double().numpy())
    if "rna" in ex.model.modalities:
        hg = hidden_attention_importance(ex.model, batch, "rna")
        alpha = hg.alpha
        functions, processes = _genomic_tables(ex, hg, att.rna[0])
    summary = {
        "run": str(ex.run_dir), "fold": ex.fold, "model": ex.label, "case_id": case_id,
        "modalities": list(ex.model.modalities), "risk": float(att.risk[0]), "risk_at_baseline":
        float(att.risk_baseline[0]), "ig_completeness_gap": float(att.completeness_gap[0]), "alpha": alpha,
        "hidden_attention": "rollout of channel-mean |hidden attention| through HIM and IFM "
                            "(survmamba_lite.interpret.rollout); sums to 1 per modality",
        "ig": f"integrated gradients of the risk -sum_k S_k, {ig_steps} midpoint steps, zero baseline "
              "(z-scored genes: the training-fold mean; patch features: the origin of the encoder space)",
    }
    return CaseExplanation(patches, regions, functions, processes, summary)


def write_explanation(exp: CaseExplanation, out: str | os.PathLike, slide: str | os.PathLike | None = None
                      ) -> list[Path]:
    """Write the tables (CSV and HDF5), the summary and, with ``slide``, the heatmap; returns the files.

    ``out`` must be new, empty or an earlier output of ``survmamba explain`` (whose files are
    then replaced); a folder holding anything else is refused and nothing is deleted.
    """
    out = Path(out)
    if check_out_dir(out, EXPLAIN, overwrite=True) == "ours":
        clear_out_dir(out, EXPLAIN)
    claim_out_dir(out, EXPLAIN)
    written = []
    with atomic_path(out / "explanation.h5") as tmp, h5py.File(tmp, "w") as h5:
        for name in TABLES:
            frame = getattr(exp, name)
            if frame is None:
                continue
            with atomic_path(out / f"{name}.csv") as t:
                frame.to_csv(t, index=False, float_format="%.8g", lineterminator="\n")
            written.append(out / f"{name}.csv")
            group = h5.create_group(name)
            for col in frame.columns:
                values = frame[col].to_numpy()
                group.create_dataset(col, data=values.astype("S") if values.dtype == object else values)
    written.append(out / "explanation.h5")
    if slide is not None:
        png = _heatmap(exp, Path(slide), out / "heatmap.png")
        written += [png, png.with_name("heatmap_ig.png")]
    atomic_write_text(out / "summary.json", json.dumps(exp.summary, indent=1) + "\n")
    return written + [out / "summary.json"]


def check_slide(ex: Explainer, case_id: str, slide: str | os.PathLike) -> str:
    """The slide id of ``slide`` if it is a slide of ``case_id`` and the model reads slides; else a
    :class:`UserError` saying what to pass instead. Checked before any computation."""
    from survmamba_lite.data.wsi.tiling import slide_id_from_path

    if "wsi" not in ex.model.modalities:
        raise UserError(f"--slide {slide}: the model of run {ex.run_dir} reads no slides "
                        f"(modalities {list(ex.model.modalities)}); drop --slide")
    sid = slide_id_from_path(slide)
    slides = ex.cohort.slide_ids(case_id) if case_id in ex.cohort.clinical.index else []
    if slides and sid not in slides:
        raise UserError(f"--slide {slide}: its slide id {sid!r} is not a slide of case {case_id} "
                        f"({', '.join(slides)}); give the file of one of them (named <slide_id>.svs/.tif/...)")
    return sid


def _heatmap(exp: CaseExplanation, slide: Path, png: Path) -> Path:
    from survmamba_lite.data.wsi.tiling import slide_id_from_path
    from survmamba_lite.interpret.heatmap import slide_heatmap

    if exp.patches is None:
        raise UserError(f"--slide {slide}: the model of run {exp.summary['run']} reads no slides "
                        f"(modalities {exp.summary['modalities']}); drop --slide")
    sid = slide_id_from_path(slide)
    slides = list(dict.fromkeys(exp.patches["slide_id"]))
    if sid not in slides:
        raise UserError(f"--slide {slide}: its slide id {sid!r} is not a slide of case {exp.summary['case_id']} "
                        f"({', '.join(slides)}); give the file of one of them (named <slide_id>.svs/.tif/...)")
    rows = exp.patches[exp.patches["slide_id"] == sid]
    exp.summary["heatmap"] = {"slide": str(slide), "patches": int(len(rows)),
                              "files": {png.name: "hidden_attention", png.with_name("heatmap_ig.png").name: "ig_abs"}}
    xy, size = rows[["x", "y"]].to_numpy(), int(rows["patch_size"].iloc[0])
    slide_heatmap(slide, xy, rows["ig_abs"].to_numpy(), size, png.with_name("heatmap_ig.png"),
                  title=f"{exp.summary['case_id']} ({sid}): |integrated gradients|, {exp.summary['model']}")
    return slide_heatmap(slide, xy, rows["hidden_attention"].to_numpy(), size, png,
                         title=f"{exp.summary['case_id']} ({sid}): hidden-attention rollout, {exp.summary['model']}")
