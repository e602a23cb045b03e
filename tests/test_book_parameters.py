"""Every chapter's `parameters` cell parses cleanly under papermill's inspection.

papermill (`papermill --help-notebook`, `-p name value`) reads the cell line by line; a
line with a second `=` (in its comment, say "(F = the full model)") is one it cannot parse:
it drops that parameter, and `papermill -p` then warns "Passed unknown parameter".
"""
from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
translators = pytest.importorskip("papermill.translators")

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("*.py"))


def parameters_cell(path: Path):
    nb = jupytext.read(path)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) <= 1, f"{path.name}: more than one cell tagged 'parameters'"
    return cells[0] if cells else None


def assigned_names(source: str) -> list[str]:
    return [t.id for node in ast.parse(source).body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)]


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_parameters_cell_parses_cleanly(path: Path, caplog):
    cell = parameters_cell(path)
    if cell is None:
        pytest.skip(f"{path.name} has no parameters cell")
    with caplog.at_level(logging.WARNING):
        inferred = [p.name for p in translators.PythonTranslator.inspect(cell)]
    unparsed = [r.getMessage() for r in caplog.records if "Unable to parse" in r.getMessage()]
    assert not unparsed, f"{path.name}: papermill cannot parse: {unparsed}"
    assert inferred == assigned_names(cell.source), (
        f"{path.name}: papermill sees {inferred}, the cell assigns {assigned_names(cell.source)}")


def test_the_check_catches_an_equals_sign_in_a_comment(caplog):
    cell = jupytext.reads('# %% tags=["parameters"]\na = 1  # (x = y); z\nb = 2\n', fmt="py:percent").cells[0]
    with caplog.at_level(logging.WARNING):
        inferred = [p.name for p in translators.PythonTranslator.inspect(cell)]
    assert inferred == ["b"] and assigned_names(cell.source) == ["a", "b"]
    assert any("Unable to parse" in r.getMessage() for r in caplog.records)
