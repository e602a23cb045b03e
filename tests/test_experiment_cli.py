"""The `survmamba models | cv | report` commands: output and error messages."""
from __future__ import annotations

import shutil

import pytest
import yaml

from conftest import QUICK as SHARED_QUICK
from survmamba_lite.cli import main
from survmamba_lite.registry import list_models

QUICK = [*SHARED_QUICK, "--max-cases", "24"]


def test_models_lists_the_registry(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for spec in list_models():
        line = next(ln for ln in out.splitlines() if ln.split()[0] == spec.name)
        assert "+".join(spec.modalities) in line and (spec.table1_row or "-") in line and spec.description in line


@pytest.mark.parametrize("argv, message", [
    (["--model", "abmill"], "unknown model 'abmill'. Did you mean 'abmil'"),
    (["--model", "abmil", "--variant", "C"], "--variant applies to the SurvMamba models (survmamba, survmamba-rna, "
                                             "survmamba-wsi); model 'abmil' has no 'variant' option"),
    (["--model", "snn", "--unidirectional"], "--unidirectional applies to the SurvMamba models"),
    (["--model", "snn", "--set", "heads=4"], "model 'snn' does not accept option 'heads'"),
])
def test_cv_errors(cohort_dir, tmp_path, capsys, argv, message):
    rc = main(["cv", "--cohort-dir", str(cohort_dir), "--out", str(tmp_path / "run"), *argv, *QUICK])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_cv_refuses_a_model_whose_modality_the_cohort_lacks(cohort_dir, tmp_path, capsys):
    root = tmp_path / "rna_only"
    shutil.copytree(cohort_dir, root)
    man = yaml.safe_load((root / "manifest.yaml").read_text())
    man["modalities"] = ["rna"]
    (root / "manifest.yaml").write_text(yaml.safe_dump(man))
    rc = main(["cv", "--cohort-dir", str(root), "--model", "survmamba", "--out", str(tmp_path / "run"), *QUICK])
    err = capsys.readouterr().err
    assert rc == 2
    assert "histology (wsi) missing" in err and "fit this cohort: snn, snntrans, survmamba-rna" in err


def test_cv_then_report(cohort_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["cv", "--cohort-dir", str(cohort_dir), "--model", "snn", "--out", str(run), *QUICK]) == 0
    out = capsys.readouterr().out
    assert "SNN on synthetic-blca-tiny-seed0: c-index" in out and (run / "fold_0" / "DONE").is_file()
    # same command with another epoch count: refused, pointing to --out / --overwrite
    argv = ["cv", "--cohort-dir", str(cohort_dir), "--model", "snn", "--out", str(run), *QUICK]
    argv[argv.index("--epochs") + 1] = "2"
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "epochs: 1 in the run, 2 now" in err and "--overwrite" in err
    assert main(["report", str(run), "--out", str(tmp_path / "rep"), "--n-boot", "50"]) == 0
    out = capsys.readouterr().out
    assert "## Table 1" in out and "| SNN | " in out and (tmp_path / "rep" / "fig4_km_snn.png").is_file()
    assert main(["report", str(tmp_path / "nothing"), "--out", str(tmp_path / "rep2")]) == 2
    assert "no config.json" in capsys.readouterr().err
