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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from survmamba_lite.data.bag import PatientBag, collate_bags
from survmamba_lite.data.dataset import CohortDataset, RNANormalizer
from survmamba_lite.data.features_h5 import read_features_h5
from survmamba_lite.data.layout import Cohort
from survmamba_lite.errors import UserError
from survmamba_lite.experiment.runfiles import CHECKPOINT
from survmamba_lite.interpret.attribution import function_scores, integrated_gradients
from survmamba_lite.interpret.rollout import hidden_attention_importance
from survmamba_lite.model.survmamba import SurvMamba
from survmamba_lite.utils.io import atomic_h5, atomic_path, atomic_write_text
from survmamba_lite.utils.outputs import EXPLAIN, check_out_dir, claim_out_dir, clear_out_dir

__all__ = ["Explainer", "CaseExplanation", "load_explainer", "explain_case", "write_explanation", "check_slide",
           "check_slide_geometry"]

TABLES = ("patches", "regions", "functions", "processes")


@dataclass
class Explainer:
    """A fold's model with what it needs to read a case.

    Attributes:
        run_dir: the run.
        fold: the fold whose model explains.
        model: that fold's model (eval mode, CPU).
        cohort: the cohort as the run read it (``max_cases`` applied, folds as trained).
        rna_normalizer: the fold's RNA z-score (fitted on its training cases), or None.
        label: the run's model label.
        subset_note: how the run restricted the cohort, for messages.
        notes: one-line notes for the user (inputs an older run did not fingerprint).
        max_patches: the run's ``max_patches`` (None: every patch); the run scored a case on a
            seeded subset of this many patches, explain reads all of them.
        seed: the run's seed (with the case id, it seeds that subset).
    """

    run_dir: Path
    fold: int
    model: SurvMamba
    cohort: Cohort
    rna_normalizer: RNANormalizer | None
    label: str
    subset_note: str = ""
    notes: list[str] = field(default_factory=list)
    max_patches: int | None = None
    seed: int = 0

    def validation_fold(self, case_id: str) -> int | None:
        """The fold whose validation set holds ``case_id`` (the fold that explains it out of fold)."""
        return next((k for k, (_, val) in enumerate(self.cohort.folds) if case_id in val), None)

    def in_training(self, case_id: str) -> bool:
        """Whether ``case_id`` was among the training cases of this explainer's fold."""
        return case_id in set(self.cohort.folds[self.fold][0])


@dataclass
class CaseExplanation:
    """The tables of one case (``patches``/``regions`` None without slides, ``functions``/``processes``
    None without RNA) and a summary."""

    patches: pd.DataFrame | None
    regions: pd.DataFrame | None
    functions: pd.DataFrame | None
    processes: pd.DataFrame | None
    summary: dict


def _folds_with_checkpoint(run: Path) -> list[int]:
    return sorted(int(p.parent.name.split("_")[1]) for p in run.glob(f"fold_*/{CHECKPOINT}")
                  if p.parent.name.split("_")[1].isdigit())


def _fold_with_checkpoint(run: Path, fold: int | None) -> int:
    if fold is not None:
        path = run / f"fold_{fold}" / CHECKPOINT
        if not path.is_file():
            have = [f"fold_{k}" for k in _folds_with_checkpoint(run)]
            raise UserError(f"{path}: no checkpoint for fold {fold}; folds with one: {have or 'none'}. Pass one of "
                            "them with --fold, or train the fold with `survmamba cv` (it keeps checkpoints; "
                            "`survmamba grid` deletes them unless --keep-checkpoints)")
        return fold
    found = _folds_with_checkpoint(run)
    if not found:
        raise UserError(f"{run}: no fold_*/checkpoint.pt; the run is unfinished or its checkpoints were deleted "
                        "(`survmamba grid` keeps them only with --keep-checkpoints): rerun `survmamba cv` with this "
                        "--out to train and keep them")
    return found[0]


def _check_case(run: Path, cohort: Cohort, case_id: str, subset_note: str) -> None:
    if case_id not in cohort.clinical.index:
        some = ", ".join(map(str, cohort.case_ids[:3]))
        raise UserError(f"--case {case_id}: not a case of run {run} ({cohort.root}/clinical.csv{subset_note}); "
                        f"case ids look like {some}")


def _out_of_fold(run: Path, cohort: Cohort, case_id: str) -> int:
    """The fold that validated ``case_id`` (its model never saw the case), which must have a checkpoint."""
    k = next((k for k, (_, val) in enumerate(cohort.folds) if case_id in val), None)
    if k is None:
        raise UserError(f"--case {case_id}: is in no validation fold of run {run}, so no fold's model explains it "
                        "out of fold; pass --fold K to explain it with fold K's model (it trained on the case)")
    if not (run / f"fold_{k}" / CHECKPOINT).is_file():
        _fold_with_checkpoint(run, None)                      # no checkpoint at all: that message
        have = [f"fold_{j}" for j in _folds_with_checkpoint(run)]
        raise UserError(f"--case {case_id}: was validated in fold {k}, whose model has no checkpoint in "
                        f"{run}/fold_{k} (folds with one: {have or 'none'}); train fold {k} with `survmamba cv "
                        f"--folds {k}` and this --out, or pass --fold K to explain the case with a model that "
                        "trained on it (summary.json then says case_in_training: true)")
    return k


def load_explainer(run_dir: str | os.PathLike, fold: int | None = None, *, case_id: str | None = None,
                   cohort_dir: str | os.PathLike | None = None) -> Explainer:
    """Rebuild a fold's model of the run in ``run_dir``, after checking the cohort against the run.

    Args:
        run_dir: a run directory of ``survmamba cv``.
        fold: the fold whose model explains; None: the fold that validated ``case_id`` (out of
            fold), or without ``case_id`` the first fold with a checkpoint.
        case_id: the case to be explained (chooses the fold; checked to be a case of the run).
        cohort_dir: where the cohort is now (default: where the run read it). Its files must
            match the run's recorded fingerprints (:mod:`~survmamba_lite.experiment.inputs`);
            changed inputs are refused, so the weights are never read with other files.
    """
    from survmamba_lite.experiment.cv import load_experiment_cohort, read_run_config
    from survmamba_lite.experiment.inputs import check_inputs_unchanged, input_fingerprint, unchecked_note
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
    if fold is not None:
        _fold_with_checkpoint(run, fold)
    root = Path(cohort_dir) if cohort_dir is not None else Path(config.cohort_dir)
    if not root.is_dir():
        if cohort_dir is not None:
            raise UserError(f"--cohort-dir {root}: no such folder; give the folder of the cohort run {run} was "
                            "trained on")
        raise UserError(f"{run}: its cohort {root} (recorded in config.json) is not there; if it moved, pass "
                        "--cohort-dir with its new place (its files are checked against the run's fingerprints)")
    recorded = derived.get("inputs")
    unchecked = check_inputs_unchanged(recorded, input_fingerprint(root, config.modalities), run,
                                       consumer="explain", cohort_dir=root)
    notes = [n for n in [unchecked_note(run, unchecked, recorded)] if n]
    config = config.replace(cohort_dir=str(root))
    cohort, _ = load_experiment_cohort(config)
    subset = f", restricted to a seeded subset of {config.max_cases} cases by max_cases" if config.max_cases else ""
    if case_id is not None:
        _check_case(run, cohort, case_id, subset)
    k = _out_of_fold(run, cohort, case_id) if fold is None and case_id is not None else _fold_with_checkpoint(run, fold)
    ckpt_path = run / f"fold_{k}" / CHECKPOINT
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    prep_path = run / f"fold_{k}" / "preprocessing.json"
    if not prep_path.is_file():
        raise UserError(f"{prep_path}: missing; the fold's preprocessing is needed to read its cases: rerun "
                        "`survmamba cv` with this --out")
    prep = json.loads(prep_path.read_text(encoding="utf-8"))
    inputs = ModelInputs(n_bins=int(ckpt["n_bins"]),
                         wsi_dim=derived.get("wsi_dim") if "wsi" in config.modalities else None,
                         hierarchy=cohort.hierarchy if "rna" in config.modalities else None)
    model = build_model(config.model, inputs, **{**config.model_options, "scan_backend": "parallel",
                                                  "conv_backend": "torch"})
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:          # an older run (no manifest fingerprint) read with another manifest
        last = str(err).strip().splitlines()[-1].strip()
        raise UserError(f"{ckpt_path}: the weights do not fit the model built from {root} ({last}); the cohort's "
                        "manifest.yaml or hierarchy.tsv is not the one the run was trained on: restore them, or "
                        "train a new run") from None
    norm = prep.get("rna_normalizer")
    label = derived.get("model_label", config.model)
    return Explainer(run, k, model.float().eval(), cohort, None if norm is None else RNANormalizer.from_dict(norm),
                     label, subset, notes, max_patches=config.max_patches, seed=config.seed)


def _case_bag(ex: Explainer, case_id: str) -> PatientBag:
    if case_id not in ex.cohort.clinical.index:
        some = ", ".join(map(str, ex.cohort.case_ids[:3]))
        raise UserError(f"--case {case_id}: not a case of run {ex.run_dir} ({ex.cohort.root}/clinical.csv"
                        f"{ex.subset_note}); case ids look like {some}")
    if "wsi" in ex.model.modalities and not ex.cohort.slide_ids(case_id):
        raise UserError(f"--case {case_id}: has no slide in {ex.cohort.root}/clinical.csv, but the model of "
                        f"{ex.run_dir} reads slides; choose a case with a slide_id")
    return CohortDataset(ex.cohort, [case_id], ex.model.modalities, rna_normalizer=ex.rna_normalizer)[0]


def _run_subset(ex: Explainer, bag: PatientBag) -> dict | None:
    """The risk the run gave the case of ``bag`` on its seeded patch subset (``max_patches``), when that
    subset is not the whole slide; explain reads every patch, so its risk is another number then."""
    from survmamba_lite.experiment.sampling import case_generator, subsample_bag
    from survmamba_lite.survival import risk_score

    if ex.max_patches is None or "wsi" not in ex.model.modalities:
        return None
    n = int(bag.features.shape[0])
    if n <= ex.max_patches:
        return None
    sub = subsample_bag(bag, ex.max_patches, case_generator(ex.seed, bag.case_id))
    with torch.no_grad():
        risk = float(risk_score(ex.model(collate_bags([sub])).double())[0])
    return {"max_patches": ex.max_patches, "n_patches": n, "risk_on_run_subset": risk,
            "note": f"the run scored this case on a seeded subset of {ex.max_patches} of its {n} patches "
                    f"(max_patches; risk {risk:.4f} there, as in its predictions); these tables and 'risk' "
                    "read every patch"}


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
    bag = _case_bag(ex, case_id)
    batch = collate_bags([bag])
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
        "run": str(ex.run_dir), "fold": ex.fold, "case_in_training": ex.in_training(case_id),
        "validation_fold": ex.validation_fold(case_id), "model": ex.label, "case_id": case_id,
        "modalities": list(ex.model.modalities), "risk": float(att.risk[0]), "risk_at_baseline":
        float(att.risk_baseline[0]), "ig_completeness_gap": float(att.completeness_gap[0]), "alpha": alpha,
        "hidden_attention": "rollout of channel-mean |hidden attention| through HIM and IFM "
                            "(survmamba_lite.interpret.rollout); sums to 1 per modality",
        "ig": f"integrated gradients of the risk -sum_k S_k, {ig_steps} midpoint steps, zero baseline "
              "(z-scored genes: the training-fold mean; patch features: the origin of the encoder space)",
    }
    run_subset = _run_subset(ex, bag)
    if run_subset is not None:
        summary["run_patch_subset"] = run_subset
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
    for name in TABLES:
        frame = getattr(exp, name)
        if frame is not None:
            with atomic_path(out / f"{name}.csv") as t:
                frame.to_csv(t, index=False, float_format="%.8g", lineterminator="\n")
            written.append(out / f"{name}.csv")
    with atomic_h5(out / "explanation.h5") as h5:          # in memory, then written whole
        for name in TABLES:
            frame = getattr(exp, name)
            if frame is None:
                continue
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
    if slides:
        check_slide_geometry(slide, ex.cohort.feature_path(sid))
    return sid


def check_slide_geometry(slide: str | os.PathLike, features: str | os.PathLike) -> None:
    """Refuse a slide file that is not the one ``features`` was extracted from: another size than
    the one recorded by ``survmamba extract`` (``slide_width``, ``slide_height``), another OpenSlide
    quick hash (``slide_quickhash``), or too small for the patches' level-0 coordinates."""
    from survmamba_lite.data.wsi.tiling import open_slide, slide_quickhash

    sf = read_features_h5(features, load_features=False)
    handle = open_slide(slide)
    try:
        w, h = (int(v) for v in handle.dimensions)
        quick = slide_quickhash(handle)
    finally:
        handle.close()
    fix = "give the slide file these features were extracted from"
    rec_w, rec_h = sf.attrs.get("slide_width"), sf.attrs.get("slide_height")
    if rec_w is not None and rec_h is not None and (int(rec_w), int(rec_h)) != (w, h):
        raise UserError(f"--slide {slide}: is {w} x {h} px, but {features} was extracted from a {int(rec_w)} x "
                        f"{int(rec_h)} px slide; {fix}")
    rec_q = sf.attrs.get("slide_quickhash")
    if rec_q and quick and rec_q != quick:
        raise UserError(f"--slide {slide}: its OpenSlide quick hash differs from the one {features} recorded (same "
                        f"name, other pixels); {fix}")
    size = int(sf.attrs.get("patch_size", 0))
    off = np.flatnonzero((sf.coords[:, 0] + size > w) | (sf.coords[:, 1] + size > h))
    if off.size:
        x, y = (int(v) for v in sf.coords[off[0]])
        raise UserError(f"--slide {slide}: is {w} x {h} px, but {off.size} of {len(sf.coords)} patches of {features} "
                        f"lie outside it (e.g. the {size} px patch at level-0 ({x}, {y})); {fix}")


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
