"""The command-line front: sub-commands gathered from every subsystem, user errors without tracebacks."""
from __future__ import annotations

import pytest

from survmamba_lite import cli


def test_help_lists_the_data_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("synth", "validate", "kegg", "import-tcga", "tile", "extract"):
        assert command in out


def test_a_missing_subsystem_package_is_skipped(monkeypatch):
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("survmamba_lite.data.cli", "survmamba_lite.not_here.cli"))
    parser = cli.build_parser()
    assert "synth" in parser.format_help()


def test_a_broken_subsystem_is_not_hidden(monkeypatch, tmp_path):
    """A subsystem whose own import fails (a missing dependency) raises instead of vanishing."""
    (tmp_path / "survmamba_broken_cli.py").write_text("import survmamba_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("survmamba_broken_cli",))
    with pytest.raises(ModuleNotFoundError, match="survmamba_no_such_dependency"):
        cli.build_parser()


def test_user_error_exits_2_with_message(tmp_path, capsys):
    code = cli.main(["validate", str(tmp_path / "no_such_cohort")])
    assert code == 2
    err = capsys.readouterr().err
    assert "survmamba validate: error:" in err and "no_such_cohort" in err
