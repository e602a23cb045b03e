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


def test_every_subsystem_is_imported_by_name_and_gives_its_commands():
    """The front door imports each sub-command module explicitly (the import graph sees them), and
    each contributes its commands, in the order of COMMAND_MODULES."""
    from test_package_structure import import_graph

    names = [m.__name__ for m in cli.COMMAND_MODULES]
    assert names == ["survmamba_lite.data.cli", "survmamba_lite.data.wsi.cli", "survmamba_lite.experiment.cli",
                     "survmamba_lite.realdata.command", "survmamba_lite.interpret.cli"]
    assert set(names) <= import_graph()["survmamba_lite.cli"]
    commands = next(a for a in cli.build_parser()._actions if getattr(a, "choices", None)).choices
    for command in ("synth", "tile", "cv", "grid", "report", "realdata", "explain"):
        assert command in commands


def test_user_error_exits_2_with_message(tmp_path, capsys):
    code = cli.main(["validate", str(tmp_path / "no_such_cohort")])
    assert code == 2
    err = capsys.readouterr().err
    assert "survmamba validate: error:" in err and "no_such_cohort" in err
