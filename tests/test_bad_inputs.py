"""The catalogue of bad inputs and faults: every command refuses them cleanly.

Each case runs ``survmamba`` (in-process, through :func:`survmamba_lite.cli.main`) on a
tiny hand-made cohort and asserts three things: the exit code (2 for an error, 130 for
Ctrl-C), that stderr names the culprit (file, flag, case or fold) in one line without a
traceback, and that nothing outside the tool's own outputs changed (a snapshot of the
test's folder before and after, byte for byte).
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import (HANDMADE_CASES, HANDMADE_FOLDS, HANDMADE_WIDTH, QUICK, make_handmade_cohort,
                      write_handmade_slide)
from survmamba_lite.cli import build_parser, main
from survmamba_lite.data.layout import write_folds
from survmamba_lite.utils.outputs import MARKER
from survmamba_lite.version import __version__

N_CASES, N_FOLDS, WIDTH = HANDMADE_CASES, HANDMADE_FOLDS, HANDMADE_WIDTH


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict[str, Path]:
    """A tiny cohort, a finished ``snn`` run on it and a finished report (shared; tests copy them)."""
    d = tmp_path_factory.mktemp("bad_inputs")
    cohort = make_handmade_cohort(d / "cohort")
    run = d / "run"
    assert main(["cv", "--cohort-dir", str(cohort), "--model", "snn", "--out", str(run), *QUICK]) == 0
    rep = d / "rep"
    assert main(["report", str(run), "--out", str(rep), "--n-boot", "10", "--n-perm", "10"]) == 0
    sm = d / "sm"                     # a SurvMamba run (fold 0 only) for `explain`
    assert main(["cv", "--cohort-dir", str(cohort), "--model", "survmamba", "--out", str(sm), *QUICK,
                 "--max-patches", "4"]) == 0
    return {"cohort": cohort, "run": run, "report": rep, "sm": sm}


def _point_run_at(run: Path, cohort: Path) -> None:
    """A copied run's config names the shared cohort; point it at this test's copy."""
    cfg = json.loads((run / "config.json").read_text())
    cfg["cohort_dir"], cfg["out_dir"] = str(cohort), str(run)
    (run / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")


@pytest.fixture
def work(tmp_path, base) -> Path:
    """This test's folder: its own copies of the cohort and the runs."""
    shutil.copytree(base["cohort"], tmp_path / "cohort", symlinks=True)
    for name in ("run", "sm"):
        shutil.copytree(base[name], tmp_path / name)
        _point_run_at(tmp_path / name, tmp_path / "cohort")
    return tmp_path


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def refused(capsys, root: Path, argv: list[str], *needles: str, code: int = 2, allowed: str | None = None,
            one_line: bool = True) -> str:
    """Run ``survmamba argv``; check exit code, stderr and that ``root`` is unchanged (but for ``allowed``)."""
    capsys.readouterr()
    before = _snapshot(root)
    rc = main(argv)
    err = capsys.readouterr().err
    after = _snapshot(root)
    print(err)
    assert rc == code, err
    assert "Traceback" not in err
    if one_line:
        assert len(err.strip().splitlines()) == 1, err
    for n in needles:
        assert n in err, f"{n!r} not in {err!r}"
    if allowed is not None:
        before = {k: v for k, v in before.items() if not k.startswith(allowed)}
        after = {k: v for k, v in after.items() if not k.startswith(allowed)}
    assert before == after, f"changed: {sorted(set(before.items()) ^ set(after.items()))}"
    return err


def _cv(work: Path, *extra: str, model: str = "snn", out: str = "run2") -> list[str]:
    return ["cv", "--cohort-dir", str(work / "cohort"), "--model", model, "--out", str(work / out), *QUICK, *extra]


# --------------------------------------------------------------------------- data lost
def test_overwrite_refuses_a_folder_with_a_config_json_and_other_files(work, capsys):
    d = work / "mine"
    d.mkdir()
    (d / "config.json").write_text("{}")
    (d / "thesis.tex").write_text("years of work")
    refused(capsys, work, _cv(work, "--overwrite", out="mine"), str(d), "not a run directory", "nothing was deleted")


def test_overwrite_refuses_a_folder_with_only_an_empty_config_json(work, capsys):
    d = work / "mine"
    d.mkdir()
    (d / "config.json").write_text("")
    refused(capsys, work, _cv(work, "--overwrite", out="mine"), str(d), "nothing was deleted")


def test_a_foreign_folder_is_refused_without_recommending_overwrite(work, capsys):
    d = work / "mine"
    d.mkdir()
    (d / "data.csv").write_text("a,b\n")
    err = refused(capsys, work, _cv(work, out="mine"), str(d), "choose a new or empty --out")
    assert "--overwrite" not in err


def test_overwrite_deletes_nothing_when_our_run_holds_a_foreign_file(work, capsys):
    (work / "run" / "fold_0" / "notes.txt").write_text("keep me")
    refused(capsys, work, _cv(work, "--overwrite", out="run"), "fold_0/notes.txt", "nothing was deleted")


def test_an_unreadable_config_json_of_a_run_is_not_answered_with_overwrite(work, capsys):
    (work / "run" / "config.json").write_text("")
    err = refused(capsys, work, _cv(work, out="run"), str(work / "run" / "config.json"), "Restore it",
                  "would delete the run's finished folds")
    assert "use a new --out, or --overwrite" not in err


def test_overwrite_of_our_own_run_deletes_only_its_files(work, capsys):
    assert main(_cv(work, "--overwrite", "--epochs", "2", out="run")) == 0
    assert json.loads((work / "run" / "config.json").read_text())["epochs"] == 2
    assert (work / "run" / MARKER).is_file() and (work / "run" / "fold_0" / "DONE").is_file()


# --------------------------------------------------------------------------- typed --set
def test_set_bool_false_is_false(work, capsys):
    assert main(_cv(work, "--set", "bidirectional=False", "--max-patches", "4", model="survmamba-rna")) == 0
    cfg = json.loads((work / "run2" / "config.json").read_text())
    assert cfg["model_options"]["bidirectional"] is False and cfg["derived"]["bidirectional"] is False


@pytest.mark.parametrize("setting, needles", [
    ("bidirectional=maybe", ["bidirectional", "a boolean (true/false/1/0)"]),
    ("d_state=abc", ["d_state", "an integer"]),
    ("d_state=1.5", ["d_state", "an integer", "'1.5'"]),
    ("dropout=lots", ["dropout", "a number"]),
    ("epochs=3", ["'epochs' is a training setting", "--epochs 3"]),
])
def test_set_with_a_wrong_type(work, capsys, setting, needles):
    refused(capsys, work, _cv(work, "--set", setting, model="survmamba-rna"), f"--set {setting}", *needles)


def test_set_without_equals_sign(work, capsys):
    with pytest.raises(SystemExit) as exc:
        main(_cv(work, "--set", "d_state"))
    assert exc.value.code == 2 and "KEY=VALUE" in capsys.readouterr().err


def test_set_disagreeing_with_its_flag(work, capsys):
    refused(capsys, work, _cv(work, "--set", "bidirectional=true", "--unidirectional", model="survmamba-rna"),
            "--unidirectional and --set bidirectional=True disagree")


# --------------------------------------------------------------------------- stale inputs
def _start_run(work: Path, model: str = "snn") -> list[str]:
    argv = _cv(work, model=model)
    assert main(argv) == 0
    return argv


def test_resume_refuses_a_changed_clinical_table(work, capsys):
    argv = _start_run(work)
    clin = pd.read_csv(work / "cohort" / "clinical.csv", dtype=str)
    clin["event"] = (1 - clin["event"].astype(int)).astype(str)
    clin["survival_months"] = (2 * clin["survival_months"].astype(float)).astype(str)
    clin.to_csv(work / "cohort" / "clinical.csv", index=False)
    refused(capsys, work, argv, "clinical.csv changed", str(work / "run2"), "choose a new --out")


def test_resume_refuses_changed_splits(work, capsys):
    argv = _start_run(work)
    cases = [f"TCGA-T{i:03d}" for i in range(N_CASES)]          # the same folds, numbered differently
    write_folds(work / "cohort", [([c for j, c in enumerate(cases) if j % N_FOLDS != (k + 1) % N_FOLDS],
                                   [c for j, c in enumerate(cases) if j % N_FOLDS == (k + 1) % N_FOLDS])
                                  for k in range(N_FOLDS)])
    refused(capsys, work, argv, "splits/fold_*.csv changed")


def test_resume_refuses_a_changed_rna_table(work, capsys):
    argv = _start_run(work)
    rna = pd.read_csv(work / "cohort" / "rna.csv")
    rna["G0"] = rna["G0"] + 1
    rna.to_csv(work / "cohort" / "rna.csv", index=False)
    refused(capsys, work, argv, "rna.csv changed")


def test_resume_refuses_a_changed_feature_file_list(work, capsys):
    argv = _start_run(work, model="abmil")
    write_handmade_slide(work / "cohort", "TCGA-T004", 9, seed=99)        # re-extracted: another patch count
    refused(capsys, work, argv, "the list of feature files", "changed")


# --------------------------------------------------------------------------- report
def test_report_refuses_a_truncated_oof_file(work, capsys):
    oof = work / "run" / "oof_predictions.csv"
    oof.write_text("".join(oof.read_text().splitlines(keepends=True)[:4]))
    refused(capsys, work, ["report", str(work / "run"), "--out", str(work / "rep")],
            "oof_predictions.csv: has 3 rows but summary.json says n_oof 6", "rerun the same `survmamba cv`")


def test_report_refuses_a_run_with_a_missing_fold_metrics_file(work, capsys):
    (work / "run" / "fold_0" / "metrics.json").unlink()
    refused(capsys, work, ["report", str(work / "run"), "--out", str(work / "rep")],
            "fold_0/metrics.json: missing", "fold 0")


def test_report_refuses_an_unfinished_run(work, capsys):
    (work / "run" / "summary.json").unlink()
    refused(capsys, work, ["report", str(work / "run"), "--out", str(work / "rep")],
            "unfinished (no summary.json)", f"--out {work / 'run'}")


def test_report_refuses_a_non_empty_out(work, capsys):
    (work / "rep").mkdir()
    (work / "rep" / "slides.pptx").write_text("x")
    refused(capsys, work, ["report", str(work / "run"), "--out", str(work / "rep")], f"--out {work / 'rep'}",
            "not empty", "nothing was deleted")


def test_report_over_an_earlier_report_needs_overwrite(work, base, capsys):
    shutil.copytree(base["report"], work / "rep")
    argv = ["report", str(work / "run"), "--out", str(work / "rep"), "--n-boot", "10", "--n-perm", "10"]
    refused(capsys, work, argv, "holds an earlier output of survmamba report", "--overwrite")
    assert main([*argv, "--overwrite"]) == 0 and (work / "rep" / "report.md").is_file()
    assert not list(work.glob(".*.partial"))


# --------------------------------------------------------------------------- import-tcga
def _xena(work: Path, overlap: str) -> list[str]:
    src = work / "xena"
    (src / "splits").mkdir(parents=True)
    clin = pd.read_csv(work / "cohort" / "clinical.csv")
    clin["censorship"] = 1 - clin.pop("event")
    clin.to_csv(src / "clinical.csv", index=False)
    shutil.copy(work / "cohort" / "rna.csv", src / "rna_clean.csv")
    cases = clin["case_id"].tolist()
    for k in range(2):
        val = cases[k::2] + ([cases[0]] if overlap == "val-val" and k == 1 else [])
        train = [c for c in cases if c not in val]
        if overlap == "train-val" and k == 1:
            train.append(val[0])
        n = max(len(train), len(val))
        pd.DataFrame({"train": train + [""] * (n - len(train)), "val": val + [""] * (n - len(val))}).to_csv(
            src / "splits" / f"splits_{k}.csv", index=False)
    return ["import-tcga", "--format", "xena", "--rna", str(src / "rna_clean.csv"), "--clinical",
            str(src / "clinical.csv"), "--splits", str(src / "splits"), "--hierarchy",
            str(work / "cohort" / "hierarchy.tsv"), "--out", str(work / "imported")]


def test_import_refuses_a_case_in_train_and_val(work, capsys):
    refused(capsys, work, _xena(work, "train-val"), "splits_1.csv (fold 1)", "both train and val", "TCGA-T001")


def test_import_refuses_overlapping_validation_folds(work, capsys):
    refused(capsys, work, _xena(work, "val-val"), "splits_1.csv (fold 1)", "case TCGA-T000",
            "also a validation case of fold 0")


def test_import_checks_its_arguments_first(work, capsys):
    argv = _xena(work, "none")
    argv[argv.index("--hierarchy") + 1] = str(work / "no_such.tsv")
    refused(capsys, work, argv, "--hierarchy", "no_such.tsv")


def test_import_refuses_a_non_empty_out(work, capsys):
    argv = _xena(work, "none")
    (work / "imported").mkdir()
    (work / "imported" / "x.txt").write_text("x")
    refused(capsys, work, argv, f"--out {work / 'imported'}", "not empty")


def test_import_writes_a_cohort_that_validates(work, capsys):
    assert main(_xena(work, "none")) == 0
    assert main(["validate", "--cohort-dir", str(work / "imported")]) == 0
    assert not list(work.glob(".*.partial"))


# --------------------------------------------------------------------------- unwritable --out
@pytest.mark.parametrize("command", ["cv", "synth", "report", "kegg", "tile", "extract", "import-tcga"])
def test_out_below_a_file(work, capsys, command):
    blocker = work / "a_file"
    blocker.write_text("x")
    out = str(blocker / "sub")
    argv = {
        "cv": _cv(work),
        "synth": ["synth", "--cohort", "BLCA", "--out", out],
        "report": ["report", str(work / "run"), "--out", out],
        "kegg": ["kegg", "--table", str(work / "cohort" / "hierarchy.tsv"), "--out", out + "/h.tsv"],
        "tile": ["tile", str(work / "no_slide.svs"), "--out", out],
        "extract": ["extract", str(work / "tiles"), "--out", out],
        "import-tcga": None,
    }[command]
    if command == "cv":
        argv[argv.index("--out") + 1] = out
    if command == "import-tcga":
        argv = _xena(work, "none")
        argv[argv.index("--out") + 1] = out
    refused(capsys, work, argv, "is a file, not a folder", str(blocker))


def test_permission_error_names_the_flag_and_leaves_nothing(work, capsys, monkeypatch):
    import survmamba_lite.data.synth as synth

    def no_permission(root, *args):
        raise PermissionError(13, "Permission denied", str(work / "syn" / "clinical.csv"))
    monkeypatch.setattr(synth, "_write_cohort", no_permission)
    refused(capsys, work, ["synth", "--cohort", "BLCA", "--out", str(work / "syn")], "permission denied",
            str(work / "syn" / "clinical.csv"), "(given as --out)")
    assert not list(work.glob(".*.partial"))


# --------------------------------------------------------------------------- Ctrl-C, --debug, internal errors
def test_ctrl_c_during_cv_exits_130_and_the_rerun_resumes(work, capsys, monkeypatch):
    import survmamba_lite.experiment.jobs as jobs          # cv runs its folds through the job runner

    real = jobs.train_fold

    def interrupted(config, cohort, k, fold_dir, **kw):
        def stop(*_):
            raise KeyboardInterrupt
        return real(config, cohort, k, fold_dir, **{**kw, "on_epoch_end": stop})
    monkeypatch.setattr(jobs, "train_fold", interrupted)
    argv = _cv(work, "--epochs", "2")
    refused(capsys, work, argv, "interrupted (Ctrl-C); rerun the same command to resume", code=130,
            allowed="run2")
    assert (work / "run2" / "fold_0" / "checkpoint.pt").is_file() and not (work / "run2" / "fold_0" / "DONE").exists()
    monkeypatch.setattr(jobs, "train_fold", real)
    assert main(argv) == 0 and (work / "run2" / "fold_0" / "DONE").is_file()


def test_debug_shows_the_traceback(work):
    with pytest.raises(FileNotFoundError, match="no such cohort folder"):
        main(["validate", str(work / "missing"), "--debug"])


def test_an_unexpected_exception_is_one_line_pointing_to_debug(work, capsys, monkeypatch):
    import survmamba_lite.data.layout as layout

    def broken(*a, **k):
        raise RuntimeError("boom")
    monkeypatch.setattr(layout, "validate_cohort", broken)
    refused(capsys, work, ["validate", "--cohort-dir", str(work / "cohort")], "unexpected RuntimeError: boom",
            "--debug")


# --------------------------------------------------------------------------- feature widths
@pytest.mark.parametrize("manifest_width", [True, False])
def test_validate_finds_a_feature_file_of_another_width(work, capsys, manifest_width):
    import yaml

    if not manifest_width:
        man = yaml.safe_load((work / "cohort" / "manifest.yaml").read_text())
        del man["features"]["width"]
        (work / "cohort" / "manifest.yaml").write_text(yaml.safe_dump(man))
    write_handmade_slide(work / "cohort", "TCGA-T007", 5, width=WIDTH + 3)
    err = refused(capsys, work, ["validate", str(work / "cohort")], one_line=False)
    assert "features/TCGA-T007-DX1.h5, case TCGA-T007: feature width 7 differs" in err
    assert ("manifest's features.width 4" if manifest_width else "other slides' 4 (e.g. features/TCGA-T000") in err


def test_cv_refuses_a_feature_file_of_another_width_before_training(work, capsys):
    write_handmade_slide(work / "cohort", "TCGA-T011", 5, width=WIDTH + 1)
    err = refused(capsys, work, _cv(work, model="abmil"), one_line=False)
    assert "features/TCGA-T011-DX1.h5" in err and not (work / "run2").exists()


# --------------------------------------------------------------------------- arguments checked before writing
@pytest.mark.parametrize("flag, value, needle", [("--n-folds", "1", "--n-folds 1"), ("--seed", "-1", "--seed -1"),
                                                 ("--folds", "0", "--n-folds 0")])
def test_synth_checks_its_arguments_before_writing(work, capsys, flag, value, needle):
    out = work / "syn"
    refused(capsys, work, ["synth", "--cohort", "BLCA", flag, value, "--out", str(out)], needle, one_line=False)
    assert not out.exists()


def test_synth_refuses_a_non_empty_out(work, capsys):
    refused(capsys, work, ["synth", "--cohort", "BLCA", "--out", str(work / "cohort")], f"--out {work / 'cohort'}",
            "not empty")


def _kegg_table(work: Path, genes: str = "G0,G1,G2") -> Path:
    p = work / "kegg.tsv"
    pd.DataFrame({"pathway_id": ["hsa1"], "pathway_name": ["a"], "level1_category": ["C"], "level2_class": ["P"],
                  "genes": [genes]}).to_csv(p, sep="\t", index=False)
    return p


def test_kegg_rna_without_a_shared_gene_writes_nothing(work, capsys):
    table = _kegg_table(work, "X1,X2")
    refused(capsys, work, ["kegg", "--table", str(table), "--rna", str(work / "cohort" / "rna.csv"), "--out",
                           str(work / "h.tsv")], f"--rna {work / 'cohort' / 'rna.csv'}", "nothing was written")


def test_kegg_missing_rna_file(work, capsys):
    refused(capsys, work, ["kegg", "--table", str(_kegg_table(work)), "--rna", str(work / "rna.csv"), "--out",
                           str(work / "h.tsv")], f"--rna {work / 'rna.csv'}: no such file")


def test_kegg_refuses_an_existing_out_and_overwrites_only_a_hierarchy(work, capsys):
    table = _kegg_table(work)
    refused(capsys, work, ["kegg", "--table", str(table), "--out", str(work / "cohort" / "clinical.csv")],
            "file exists; add --overwrite")
    refused(capsys, work, ["kegg", "--table", str(table), "--out", str(work / "cohort" / "clinical.csv"),
                           "--overwrite"], "not a file this command writes", "nothing was replaced")
    assert main(["kegg", "--table", str(table), "--out", str(work / "cohort" / "hierarchy.tsv"), "--overwrite"]) == 0


def test_gdc_manifest_refuses_an_existing_out(work, capsys):
    refused(capsys, work, ["gdc-manifest", "--clinical", str(work / "cohort" / "clinical.csv"), "--out",
                           str(work / "cohort" / "rna.csv")], f"--out {work / 'cohort' / 'rna.csv'}", "file exists")


@pytest.mark.parametrize("extra, needles", [
    (["--folds", "7"], ["fold(s) [7] do not exist", "folds 0..2"]),
    (["--epochs", "0"], ["--epochs 0: must be an integer >= 1"]),
    (["--alpha", "1.5"], ["--alpha 1.5: must lie in [0, 1]"]),
    (["--model", "snnn"], ["unknown model 'snnn'"]),
    (["--lr", "inf"], ["--lr inf: must be a finite number"]),
    (["--weight-decay", "nan"], ["--weight-decay nan: must be a finite number"]),
    (["--seed", "-5"], ["--seed -5: must be an integer >= 0"]),
])
def test_cv_argument_errors(work, capsys, extra, needles):
    refused(capsys, work, _cv(work, *extra), *needles)
    assert not (work / "run2").exists()


def test_cv_missing_cohort_folder(work, capsys):
    argv = _cv(work)
    argv[argv.index("--cohort-dir") + 1] = str(work / "nope")
    refused(capsys, work, argv, f"{work / 'nope'}: no such cohort folder")


def test_report_numeric_arguments(work, capsys):
    refused(capsys, work, ["report", str(work / "run"), "--out", str(work / "rep"), "--n-boot", "0"],
            "--n-boot 0: must be an integer >= 1")
    refused(capsys, work, ["report", str(work / "run"), "--out", str(work / "rep"), "--seed", "-5"],
            "--seed -5: must be an integer >= 0")


def test_grid_names_the_flag_of_a_bad_number(work, capsys):
    refused(capsys, work, _grid(work, "--lr", "inf"), "--lr inf: must be a finite number")


@pytest.mark.parametrize("text, folds", [("[9]", (9,)), ("[0, 2]", (0, 2)), ("1", (1,)), ("None", None)])
def test_papermill_text_folds_are_read_as_a_list(work, text, folds):
    """papermill's ``-p folds "[9]"`` hands the notebook the text "[9]"."""
    from survmamba_lite.experiment import ExperimentConfig
    from survmamba_lite.experiment.rundir import load_experiment_cohort

    config = ExperimentConfig.from_params(model="snn", cohort_dir=str(work / "cohort"), out_dir=str(work / "o"),
                                          folds=text)
    assert config.folds == folds
    if folds == (9,):
        with pytest.raises(ValueError, match=r"fold\(s\) \[9\] do not exist: cohort tiny-test has folds 0..2"):
            load_experiment_cohort(config)


def test_papermill_folds_that_are_not_indices(work):
    from survmamba_lite.experiment import ExperimentConfig
    from survmamba_lite.experiment.config import ConfigError

    with pytest.raises(ConfigError, match=r"folds '\[a\]': must be fold indices, e.g. \[0, 1\] \(papermill"):
        ExperimentConfig.from_params(model="snn", cohort_dir="c", out_dir="o", folds="[a]")


def test_validate_with_two_different_folders(work, capsys):
    refused(capsys, work, ["validate", str(work / "cohort"), "--cohort-dir", str(work / "run")],
            "two cohort folders given")


# --------------------------------------------------------------------------- consistency of the command line
def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"survmamba {__version__}"


def _subparsers():
    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


def test_every_option_has_help_and_shows_its_default():
    for name, sub in _subparsers().items():
        for action in sub._actions:
            if action.dest == "help":
                continue
            assert action.help, f"survmamba {name} {action.option_strings or action.dest}: no help text"
        text = sub.format_help()
        if name == "cv":
            assert "(default: 20)" in text and "(default: 0.0002)" in text


def test_quiet_wherever_there_is_a_progress_bar():
    subs = _subparsers()
    for name in ("cv", "tile", "extract"):
        assert "--quiet" in subs[name].format_help(), name


def test_deprecated_spellings_still_work(work, capsys):
    assert main(["validate", str(work / "cohort")]) == 0
    assert main(["validate", "--cohort-dir", str(work / "cohort")]) == 0


def test_cv_on_a_missing_cuda_device_writes_nothing(work, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    refused(capsys, work, _cv(work, "--device", "cuda"), "device 'cuda'", "--device cpu")
    assert not (work / "run2").exists()


@pytest.mark.parametrize("command", ["tile", "extract"])
def test_tile_and_extract_refuse_a_folder_of_other_files(work, capsys, command):
    src = str(work / "no_slide.svs") if command == "tile" else str(work / "tiles")
    refused(capsys, work, [command, src, "--out", str(work / "cohort")], f"--out {work / 'cohort'}",
            "clinical.csv", "choose a new or empty --out")


# --------------------------------------------------------------------------- provenance of a run's inputs
def _set_min_genes(cohort: Path, value: int) -> None:
    import yaml

    man = yaml.safe_load((cohort / "manifest.yaml").read_text())
    man["hierarchy"]["min_genes"] = value
    (cohort / "manifest.yaml").write_text(yaml.safe_dump(man, sort_keys=False))


def _drop_recorded(run: Path, *keys: str) -> None:
    """Make ``run`` look like one recorded by an older survmamba (without these fingerprint keys)."""
    cfg = json.loads((run / "config.json").read_text())
    if keys:
        for k in keys:
            cfg["derived"]["inputs"].pop(k, None)
    else:
        cfg["derived"].pop("inputs")
    (run / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")


def test_resume_refuses_a_changed_manifest(work, capsys):
    argv = _start_run(work)
    _set_min_genes(work / "cohort", 2)           # f1..f3 keep 3 genes each: the same shape, another manifest
    refused(capsys, work, argv, "manifest.yaml changed", str(work / "run2"))


def test_a_moved_identical_cohort_resumes(work, capsys):
    argv = _start_run(work)
    done = (work / "run2" / "fold_0" / "metrics.json").read_bytes()
    shutil.move(work / "cohort", work / "moved")
    argv[argv.index("--cohort-dir") + 1] = str(work / "moved")
    assert main([*argv[:-1]]) == 0                                     # without --quiet: the move is reported
    out = capsys.readouterr().out
    assert "the cohort moved from" in out and "fold 0: done earlier" in out
    assert (work / "run2" / "fold_0" / "metrics.json").read_bytes() == done
    assert json.loads((work / "run2" / "config.json").read_text())["cohort_dir"] == str(work / "moved")


def test_a_moved_cohort_of_a_run_without_fingerprints_is_not_answered_with_overwrite(work, capsys):
    argv = _start_run(work)
    _drop_recorded(work / "run2")
    shutil.move(work / "cohort", work / "moved")
    argv[argv.index("--cohort-dir") + 1] = str(work / "moved")
    err = refused(capsys, work, argv, "records no fingerprint", f"--cohort-dir {work / 'cohort'}")
    assert "--overwrite" not in err


def test_an_older_run_is_checked_on_the_inputs_it_recorded(work, capsys):
    argv = _start_run(work)
    _drop_recorded(work / "run2", "manifest.yaml", "features_sampled")
    _set_min_genes(work / "cohort", 2)
    assert main(argv[:-1]) == 0                                        # the manifest is not checked: resumes
    assert "without a fingerprint of manifest.yaml" in capsys.readouterr().out
    (work / "cohort" / "rna.csv").write_text((work / "cohort" / "rna.csv").read_text().replace("5.", "6.", 1))
    refused(capsys, work, argv, "rna.csv changed")                     # what it recorded still is


def _explain(work: Path, *extra: str, case: str = "TCGA-T000", run: str = "sm") -> list[str]:
    return ["explain", "--run", str(work / run), "--case", case, "--ig-steps", "0", "--threads", "1",
            "--out", str(work / "e"), *extra]


def test_explain_refuses_an_edited_hierarchy(work, capsys):
    h = work / "cohort" / "hierarchy.tsv"
    h.write_text(h.read_text().replace("G0,G1,G2", "G0,G1,G3"))        # same shape, other genes
    refused(capsys, work, _explain(work), "hierarchy.tsv changed", str(work / "sm"), "--cohort-dir")


def test_explain_refuses_a_changed_manifest(work, capsys):
    _set_min_genes(work / "cohort", 2)
    refused(capsys, work, _explain(work), "manifest.yaml changed", str(work / "sm"))


def test_explain_finds_a_moved_cohort_with_cohort_dir(work, capsys):
    shutil.move(work / "cohort", work / "moved")
    refused(capsys, work, _explain(work), str(work / "cohort"), "is not there", "--cohort-dir")
    assert main(_explain(work, "--cohort-dir", str(work / "moved"))) == 0
    summary = json.loads((work / "e" / "summary.json").read_text())
    assert summary["fold"] == 0 and summary["case_in_training"] is False


def test_explain_of_an_older_run_names_what_it_cannot_check(work, capsys):
    _drop_recorded(work / "sm", "manifest.yaml", "features_sampled")
    capsys.readouterr()
    assert main(_explain(work)) == 0
    err = capsys.readouterr().err
    assert "without a fingerprint of features_sampled, manifest.yaml" in err and "not checked" in err


def test_explain_of_a_run_whose_weights_do_not_fit_is_one_line(work, capsys):
    _drop_recorded(work / "sm", "manifest.yaml", "features_sampled", "hierarchy.tsv")    # nothing to catch it
    h = work / "cohort" / "hierarchy.tsv"
    h.write_text(h.read_text().replace("G5,G6,G7", "G5,G6,G7,G0"))                    # a larger function
    err = refused(capsys, work, _explain(work), "the weights do not fit the model", "manifest.yaml or hierarchy.tsv",
                  one_line=False)
    assert len([line for line in err.splitlines() if "error" in line]) == 1


def test_explain_uses_the_fold_that_validated_the_case(work, capsys):
    # TCGA-T000 is a validation case of fold 0 (the only fold trained); TCGA-T001 of fold 1
    assert main(_explain(work)) == 0
    s = json.loads((work / "e" / "summary.json").read_text())
    assert (s["fold"], s["case_in_training"], s["validation_fold"]) == (0, False, 0)
    refused(capsys, work, _explain(work, case="TCGA-T001"), "TCGA-T001: was validated in fold 1",
            "no checkpoint", "--fold K")
    assert main(_explain(work, "--fold", "0", case="TCGA-T001")) == 0
    s = json.loads((work / "e" / "summary.json").read_text())
    assert (s["fold"], s["case_in_training"], s["validation_fold"]) == (0, True, 1)
    assert "the case was in its training set" in capsys.readouterr().out


def test_explain_refuses_a_slide_smaller_than_its_coordinates(work, capsys):
    from survmamba_lite.data.wsi import write_synthetic_slide

    slide = write_synthetic_slide(work / "TCGA-T000-DX1.tiff", width=600, height=200, levels=1, seed=0)
    refused(capsys, work, _explain(work, "--slide", str(slide)), f"--slide {slide}", "is 600 x 200 px",
            "3 of 3 patches", "TCGA-T000-DX1.h5 lie outside it")


# --------------------------------------------------------------------------- slides, coordinates and features agree
_TILE = ["--quiet", "--patch-size", "128", "--region-size", "256", "--tissue-threshold", "0.1"]


def _two_slides_named_alike(work: Path) -> tuple[Path, Path]:
    """Two synthetic slides of one size and one name (``S1``), different pixels."""
    from survmamba_lite.data.wsi import write_synthetic_slide

    return tuple(write_synthetic_slide(work / d / "S1.tiff", width=1200, height=800, levels=2, seed=i)
                 for i, d in enumerate(("a", "b")))


def test_tile_refuses_two_slides_with_one_slide_id(work, capsys):
    a, b = _two_slides_named_alike(work)
    refused(capsys, work, ["tile", str(a), str(b), "--out", str(work / "tiles"), *_TILE], str(a), str(b),
            "both have slide id 'S1'", "separate calls")
    refused(capsys, work, ["tile", str(a), str(a), "--out", str(work / "tiles"), *_TILE], "given twice")


def test_extract_refuses_another_slide_of_the_same_size_once(work, capsys):
    a, b = _two_slides_named_alike(work)
    assert main(["tile", str(a), "--out", str(work / "tiles"), *_TILE]) == 0
    coords = work / "tiles" / "S1.coords.h5"
    for workers in ("0", "1"):
        refused(capsys, work, ["extract", str(coords), "--slide", str(b), "--out", str(work / "feats"), "--encoder",
                               "random-projection", "--workers", workers, "--device", "cpu", "--quiet"],
                str(b), f"is not the file {coords} was tiled from", "other pixels", "quick hash", allowed="feats")
        assert not list((work / "feats").glob("*.h5"))


# --------------------------------------------------------------------------- one writer per folder
_HOLD = ("import sys, time, contextlib\nfrom survmamba_lite.utils.lock import folder_lock\n"
         "with contextlib.ExitStack() as held:\n    for folder in sys.argv[1:]:\n"
         "        held.enter_context(folder_lock(folder))\n    print('held', flush=True)\n    time.sleep(300)\n")


def _holder(*folders: Path):
    """A real process holding the locks of ``folders`` until it is killed."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", _HOLD, *map(str, folders)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _grid(work: Path, *extra: str, out: str = "g") -> list[str]:
    return ["grid", "--cohort-dirs", str(work / "cohort"), "--models", "snn", *QUICK, "--serial",
            "--out", str(work / out), *extra]


def test_a_second_writer_is_refused_and_a_dead_writers_lock_is_taken_over(work, capsys):
    """One real process holds four folders: cv's, report's, a grid's, and a run inside another grid (as a
    `survmamba cv` in it would); each command is refused at once; once the holder is killed, its lock
    files stay behind (stale) and each command takes them over."""
    from survmamba_lite.utils.lock import lock_path

    assert main(_grid(work, out="g2")) == 0
    cases = [(_cv(work), work / "run2"), (_grid(work), work / "g"),
             (_grid(work, out="g2"), work / "g2" / "runs" / "cohort" / "snn"),
             (["report", str(work / "run"), "--out", str(work / "rep2"), "--n-boot", "10", "--n-perm", "0"],
              work / "rep2")]
    holder = _holder(*(folder for _, folder in cases))
    try:
        for argv, folder in cases:
            refused(capsys, work, argv, f"{folder}: another survmamba process is writing this folder",
                    f"pid {holder.pid} on", "started 20", "nothing was written")
    finally:
        holder.kill()
        holder.wait()
    for argv, folder in cases:
        assert lock_path(folder).is_file()                  # left by the killed holder: stale, taken over
        assert main(argv) == 0, argv
        assert not lock_path(folder).exists()


@pytest.mark.slow
def test_two_cv_processes_started_together_leave_one_consistent_run(work):
    """The case that once gave a config.json of 2 epochs over folds trained for 3: two real processes."""
    import subprocess
    import sys

    def start(epochs: str):
        return subprocess.Popen([sys.executable, "-m", "survmamba_lite.cli", *_cv(work, "--epochs", epochs)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs = [start("2"), start("3")]
    results = [(p.wait(), p.stderr.read()) for p in procs]
    assert sorted(rc for rc, _ in results) == [0, 2], results
    loser = next(err for rc, err in results if rc == 2)
    assert "another survmamba process is writing" in loser or "different configuration" in loser, loser
    epochs = json.loads((work / "run2" / "config.json").read_text())["epochs"]
    assert json.loads((work / "run2" / "fold_0" / "metrics.json").read_text())["epochs"] == epochs


# --------------------------------------------------------------------------- grid folders
def test_grid_leaves_a_folder_of_the_users_files_alone(work, capsys):
    mine = work / "mine"
    mine.mkdir()
    for name in ("timing.md", "timing.csv", "grid.json"):
        (mine / name).write_text("my own notes\n")
    refused(capsys, work, _grid(work, out="mine"), f"--out {mine}", "not a grid folder", "nothing was deleted")


@pytest.mark.parametrize("folder, needle", [("cohort", "is not a grid folder"),
                                            ("run", "another survmamba command (cv-run)")])
def test_grid_refuses_a_cohort_or_run_folder(work, capsys, folder, needle):
    refused(capsys, work, _grid(work, out=folder), f"--out {work / folder}", needle)


def test_run_grid_in_a_shared_folder_writes_over_no_file_of_the_user(work):
    from survmamba_lite.errors import UserError
    from survmamba_lite.experiment.grid import grid_configs, run_grid

    shared = work / "shared"
    shared.mkdir()
    (shared / "notes.txt").write_text("a notebook's own file\n")
    configs = grid_configs([work / "cohort"], ["snn"], shared, epochs=1, folds=[0], threads=1,
                           common_options={"dim": 8})
    assert run_grid(configs, shared, serial=True, progress=False).counts == {"done": 1}
    (work / "other").mkdir()
    (work / "other" / "timing.md").write_text("mine\n")
    with pytest.raises(UserError, match="holds timing.md, which survmamba grid writes but did not write here"):
        run_grid(configs, work / "other", serial=True, progress=False)
    assert (work / "other" / "timing.md").read_text() == "mine\n"


def test_a_failed_grid_job_is_one_line_with_its_traceback_in_a_log(work, capsys, monkeypatch):
    """The cohort folder is renamed while the grid runs: its first job finishes, the others fail."""
    import survmamba_lite.experiment.jobs as jobs

    real = jobs.train_fold

    def renaming(*a, **k):
        if (work / "cohort").exists():
            shutil.move(work / "cohort", work / "renamed")
        return real(*a, **k)
    monkeypatch.setattr(jobs, "train_fold", renaming)
    capsys.readouterr()
    assert main(_grid(work, "--folds", "0", "1")) == 1
    out = capsys.readouterr().out
    assert "Traceback" not in out
    failed = [line for line in out.splitlines() if line.startswith("failed")]
    assert len(failed) == 1 and f"{work / 'cohort'}: no such cohort folder" in failed[0], out
    logs = sorted((work / "g" / "logs").glob("*.log"))
    assert [p.name for p in logs] == ["cohort__snn__fold_1.log"] and "Traceback" in logs[0].read_text()
    assert "1 job(s) failed, the first" in out and "tracebacks in" in out


# --------------------------------------------------------------------------- inputs that contradict themselves or cannot train
def _edit_clinical(work: Path, **columns) -> None:
    clin = pd.read_csv(work / "cohort" / "clinical.csv")
    for name, value in columns.items():
        clin[name] = value(clin) if callable(value) else value
    clin.to_csv(work / "cohort" / "clinical.csv", index=False)


def test_ids_with_surrounding_spaces_are_stripped_in_validate_and_cv(work, capsys):
    for name in ("splits/fold_0.csv", "rna.csv"):
        f = work / "cohort" / name
        f.write_text(f.read_text().replace("TCGA-T001", " TCGA-T001 ", 1))
    assert main(["validate", str(work / "cohort")]) == 0
    assert main(_cv(work)) == 0
    assert "TCGA-T001" in json.loads((work / "run2" / "fold_0" / "split.json").read_text())["train"]


def test_an_all_censored_cohort_is_refused_up_front(work, capsys):
    _edit_clinical(work, event=0)
    for argv in (["validate", str(work / "cohort")], _cv(work)):
        err = refused(capsys, work, argv, one_line=False)
        assert "clinical.csv, column 'event': every one of the 18 cases is censored" in err and "Fix:" in err
        assert "fewer bins" not in err and "splits/fold_" not in err
    assert not (work / "run2").exists()


def test_a_fold_without_training_deaths_is_named(work, capsys):
    _edit_clinical(work, event=lambda c: [int(i % N_FOLDS == 1) for i in range(len(c))])    # deaths in fold 1's val
    err = refused(capsys, work, ["validate", str(work / "cohort")], one_line=False)
    assert "splits/fold_1.csv, column 'train': no death (event = 1) among the 12 training cases" in err
    assert "fold_0.csv" not in err


def test_cv_names_a_made_fold_without_training_deaths(work, capsys):
    from survmamba_lite.experiment import ExperimentConfig
    from survmamba_lite.experiment.rundir import load_experiment_cohort

    _edit_clinical(work, event=lambda c: [int(i == 1) for i in range(len(c))])     # one death, in fold 1's val
    shutil.rmtree(work / "cohort" / "splits")                                      # folds made by cv
    with pytest.raises(ValueError, match=r"fold \d \(make_folds.*no death \(event = 1\) among its"):
        load_experiment_cohort(ExperimentConfig("snn", str(work / "cohort"), str(work / "x"), n_folds=3, n_bins=1))
    refused(capsys, work, _cv(work, "--n-folds", "3"), "fold 0 (make_folds(k=3, seed=0)", "1 death(s) among its 12",
            "--n-bins 4 time bins", "give --n-bins 1 or fewer")


def test_validate_without_splits_says_that_cv_makes_them(work, capsys):
    shutil.rmtree(work / "cohort" / "splits")
    assert main(["validate", str(work / "cohort")]) == 0
    out = capsys.readouterr().out
    assert "warning: no splits/fold_{k}.csv: `survmamba cv` makes stratified folds itself" in out
    assert "make_folds()" not in out
    assert main(_cv(work)) == 0 and (work / "run2" / "splits" / "fold_0.csv").is_file()


def test_messages_show_plain_numbers(work, capsys):
    _edit_clinical(work, survival_months=lambda c: c["survival_months"].where(c.index != 3, -3.5))
    err = refused(capsys, work, ["validate", str(work / "cohort")], one_line=False)
    assert "case TCGA-T003: survival_months is -3.5; it must be a finite number >= 0" in err and "np." not in err


def test_warnings_are_one_line_without_source(work, capsys):
    _edit_clinical(work, survival_months=lambda c: c["survival_months"].where(c.index > 9, 0.0))   # deaths tied at 0
    capsys.readouterr()
    assert main(_cv(work)) == 0
    err = capsys.readouterr().err
    assert err and all(line.startswith("survmamba cv: warning: ") for line in err.strip().splitlines()), err
    assert "TimeBinner.fit: tied death times" in err


# --------------------------------------------------------------------------- a full disk
_FULL = """import contextlib, io, json, resource, signal, sys
from survmamba_lite.cli import main
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)          # a write past the limit fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000))
results = []
for argv in json.loads(sys.argv[1]):
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        results.append((argv[0], main(argv), err.getvalue(), out.getvalue()))
print(json.dumps(results))
"""


def test_a_full_disk_fails_cleanly_everywhere(work):
    """Every writer under a 4000-byte file-size limit (a real failed write, in a real process): one line
    naming the file, exit 2, no crash, no temporary or staging file left behind. ``grid`` goes on past a
    failed job: exit 1 and the job's one line, with its traceback in the job's log."""
    import subprocess
    import sys

    from survmamba_lite.data.wsi import write_synthetic_slide

    slide = write_synthetic_slide(work / "S1.tiff", width=1200, height=800, levels=2, seed=0)
    assert main(["tile", str(slide), "--out", str(work / "tiles"), *_TILE]) == 0
    commands = [
        _cv(work, out="full_cv"),
        ["synth", "--cohort", "BLCA", "--out", str(work / "full_synth")],
        _explain(work)[:-1] + [str(work / "full_explain")],
        ["tile", str(slide), "--out", str(work / "full_tiles"), *_TILE],
        ["extract", str(work / "tiles"), "--out", str(work / "full_features"), "--encoder", "random-projection",
         "--workers", "0", "--device", "cpu", "--quiet"],
        ["report", str(work / "run"), "--out", str(work / "full_report"), "--n-boot", "10", "--n-perm", "0"],
        _grid(work, out="full_grid"),
    ]
    proc = subprocess.run([sys.executable, "-c", _FULL, json.dumps(commands)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]                 # no segmentation fault, no HDF5 trace
    assert "Exception ignored" not in proc.stderr
    results = json.loads(proc.stdout)
    assert [r[0] for r in results] == [c[0] for c in commands]
    for command, rc, err, out in results:
        if command == "grid":
            failed = [line for line in out.splitlines() if line.startswith(("failed ", "survmamba grid: "))]
            assert rc == 1 and len(failed) == 2 and not err, (command, out, err)
            assert all("file too large for this file system" in line and str(work / "full_grid") in line
                       for line in failed), out
            assert "Traceback" in (work / "full_grid" / "logs" / "cohort__snn__fold_0.log").read_text()
            continue
        assert rc == 2 and len(err.strip().splitlines()) == 1, (command, err)
        assert "file too large" in err.lower() and str(work) in err, (command, err)
    left = [p.relative_to(work).as_posix() for p in work.rglob("*")
            if p.name.endswith((".tmp", ".partial", ".lock"))]
    assert not left, left


def _no_space_left(monkeypatch, suffix: str = "") -> list[Path]:
    """Make the atomic writer's writes (``Path.write_bytes``/``write_text`` of its temporary file) of
    files named ``*<suffix>`` fail as a full disk does: a part of the data reaches the file, then
    ``write(2)`` fails with ENOSPC (an ``OSError`` without a file name). Returns the files whose write
    failed."""
    import errno
    import os

    failed: list[Path] = []
    real = {"write_bytes": Path.write_bytes, "write_text": Path.write_text}

    def write(self, data, *args, **kwargs):
        if not self.name.removesuffix(f".{os.getpid()}.tmp").endswith(suffix):
            return real["write_text" if isinstance(data, str) else "write_bytes"](self, data, *args, **kwargs)
        failed.append(Path(self))
        with open(self, "wb") as f:
            f.write((data.encode() if isinstance(data, str) else bytes(data))[:64])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_bytes", write)
    monkeypatch.setattr(Path, "write_text", write)
    return failed


@pytest.mark.parametrize("writer", ["text", "bytes", "h5"])
def test_no_space_left_names_the_file_and_leaves_nothing_behind(tmp_path, monkeypatch, writer):
    """ENOSPC in the atomic writer: one ``OSError`` naming the file (not its temporary name), said as a
    full disk; the temporary file is removed and an earlier file of that name is kept as it was."""
    import errno

    import numpy as np

    from survmamba_lite.cli import describe_error
    from survmamba_lite.utils.io import atomic_h5, atomic_write_bytes, atomic_write_text

    target = tmp_path / "out" / f"table.{writer}"
    atomic_write_text(target, "the earlier file\n")
    failed = _no_space_left(monkeypatch)
    with pytest.raises(OSError) as info:
        if writer == "text":
            atomic_write_text(target, "x" * 10_000)
        elif writer == "bytes":
            atomic_write_bytes(target, b"x" * 10_000)
        else:
            with atomic_h5(target) as f:
                f.create_dataset("x", data=np.arange(10_000))
    assert len(failed) == 1 and failed[0] != target and failed[0].parent == target.parent   # its temporary file
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    message = describe_error(info.value)
    assert message == f"{target}: no space left on the device; free some space and rerun the same command to resume"
    monkeypatch.undo()
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]      # no temporary file left
    assert target.read_text() == "the earlier file\n"


@pytest.mark.parametrize("command, suffix", [("synth", ".h5"), ("cv", "checkpoint.pt"), ("cv", "")])
def test_a_command_on_a_full_disk_says_so_in_one_line(work, monkeypatch, capsys, command, suffix):
    """ENOSPC when a command writes a file (synth: its first HDF5 file; cv: the checkpoint, or its first
    file): exit 2, one line naming the file being written (synth writes into its staging folder
    ``.<out>.partial``, renamed onto --out when whole) and saying the disk is full; no temporary file,
    staging folder or lock left behind."""
    import os

    out = work / f"full_{command}"
    argv = ["synth", "--cohort", "BLCA", "--out", str(out)] if command == "synth" else _cv(work, out=out.name)
    capsys.readouterr()
    failed = _no_space_left(monkeypatch, suffix)
    rc = main(argv)
    err = capsys.readouterr().err
    monkeypatch.undo()
    assert failed and failed[0].name.endswith(f".{os.getpid()}.tmp")
    named = str(failed[0]).removesuffix(f".{os.getpid()}.tmp")                 # the file, not its temporary name
    assert out.name in named and named.endswith(suffix), named
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith(f"survmamba {command}: error: {named}"), err
    assert err.endswith(": no space left on the device; free some space and rerun the same command to resume\n"), err
    left = [p.relative_to(work).as_posix() for p in work.rglob("*") if p.name.endswith((".tmp", ".partial", ".lock"))]
    assert not left, left


# --------------------------------------------------------------------------- what a report's numbers stand on
def test_report_says_what_each_number_stands_on(work, capsys):
    _edit_clinical(work, event=lambda c: [int(i % 4 != 1 and i % N_FOLDS != 1) for i in range(len(c))])
    every_fold = [a for a in QUICK if a not in ("--folds", "0")]
    cv = ["cv", "--cohort-dir", str(work / "cohort"), "--model", "snn"]
    assert main([*cv, "--out", str(work / "all"), *every_fold]) == 0       # fold 1 validates no death
    assert main([*cv, "--out", str(work / "f1"), *every_fold, "--folds", "1"]) == 0
    assert main([*cv, "--out", str(work / "sub"), *every_fold, "--max-cases", "12", "--n-bins", "2"]) == 0
    assert main(["report", str(work / "all"), str(work / "f1"), str(work / "sub"), "--out", str(work / "rep"),
                 "--n-boot", "10", "--n-perm", "10"]) == 0
    for name in ("table1_cindex", "metrics_extra", "random_risk", "optimism_gap", "calibration"):
        md = (work / "rep" / f"{name}.md").read_text()
        notes = [line for line in md.splitlines() if line[:1] and line[:1] in "¹²³"]
        assert len(notes) == 3, md
        assert any("c-index undefined in fold(s) [1]" in n and "the mean is over 2 of 3 folds" in n for n in notes)
        assert any("c-index undefined in every fold" in n and "1 of the cohort's 3 folds run ([1])" in n
                   for n in notes)
        assert any("a seeded subset of 12 cases (max_cases)" in n for n in notes)
        stands_on = pd.read_csv(work / "rep" / f"{name}.csv")["stands_on"]
        assert stands_on.notna().all()
    table1 = (work / "rep" / "table1_cindex.md").read_text()
    assert "| n/a " in table1                                     # every fold undefined: said, not left blank
    # the run of every fold undefined stays in the optimism gap table, as n/a with its mark
    og = pd.read_csv(work / "rep" / "optimism_gap.csv")
    assert len(og) == 3
    mark = next(n[0] for n in (work / "rep" / "optimism_gap.md").read_text().splitlines()
                if n[:1] in ("¹", "²", "³") and "c-index undefined in every fold" in n)
    row = og.index[og["stands_on"].str.contains("c-index undefined in every fold")][0]
    assert og.loc[row, ["last_epoch_c_index", "difference"]].isna().all() and og.loc[row, "n_folds"] == 0
    shown = [line for line in (work / "rep" / "optimism_gap.md").read_text().splitlines() if line.startswith("| SNN")]
    assert len(shown) == 3 and any(f"{mark} |" in line and "| n/a " in line for line in shown)
    for name in ("optimism_gap", "calibration"):                  # every run's rows carry its mark
        rows = [line for line in (work / "rep" / f"{name}.md").read_text().splitlines() if line.startswith("| SNN")]
        assert rows and all(any(m + " |" in line.split("|")[1] + "|" for m in "¹²³") for line in rows), rows


def test_report_reads_a_run_given_twice_once(work, capsys):
    assert main(["report", str(work / "run"), str(work / "run"), "--out", str(work / "rep"), "--n-boot", "10",
                 "--n-perm", "0"]) == 0
    assert "is given twice" in capsys.readouterr().out
    assert len(pd.read_csv(work / "rep" / "table1_cindex.csv")) == 1


def test_report_tells_runs_in_folders_of_one_name_apart(work, capsys):
    shutil.copytree(work / "run", work / "other" / "run")
    assert main(["report", str(work / "run"), str(work / "other" / "run"), "--out", str(work / "rep"),
                 "--n-boot", "10", "--n-perm", "0"]) == 0
    labels = sorted(pd.read_csv(work / "rep" / "table1_cindex.csv")["label"])
    assert labels == ["SNN [other/run]", f"SNN [{work.name}/run]"]


def test_report_of_two_grid_folders(work, capsys):
    for out in ("g1", "g2"):
        assert main(_grid(work, out=out)) == 0
    assert main(["report", str(work / "g1"), str(work / "g2"), "--out", str(work / "rep"), "--n-boot", "10",
                 "--n-perm", "0"]) == 0
    labels = sorted(pd.read_csv(work / "rep" / "table1_cindex.csv")["label"])
    assert labels == ["SNN [g1/runs/cohort/snn]", "SNN [g2/runs/cohort/snn]"]


def test_report_refuses_a_run_whose_config_and_folds_disagree(work, capsys):
    """What two writers of one folder once left behind: config.json of 2 epochs over folds trained for 1."""
    cfg = json.loads((work / "run" / "config.json").read_text())
    cfg["epochs"] = 2
    (work / "run" / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    refused(capsys, work, ["report", str(work / "run"), "--out", str(work / "rep")],
            "fold_0/metrics.json: fold 0 was trained for 1 epochs but", "config.json says 2")
