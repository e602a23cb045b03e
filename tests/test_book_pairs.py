"""The book's chapters: every notebooks/*.py is paired with an .ipynb holding the same cells,
every chapter is in _toc.yml, and cells that nbval compares have stored outputs.

Fix a failure with `make notebooks` (jupytext --sync, then execute the .ipynb).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext", reason="the book's packages are not installed (make book installs them)")
yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("*.py"))
NBVAL_MARK = "# NBVAL_CHECK_OUTPUT"


def cell_signature(nb) -> list[tuple[str, str, tuple[str, ...]]]:
    """(type, source without trailing blank lines, tags) of every cell."""
    return [(c.cell_type, c.source.rstrip(), tuple(c.metadata.get("tags", ()))) for c in nb.cells]


def pair_differences(py_path: Path, ipynb_path: Path) -> list[str]:
    """Human-readable differences between the cells of a .py source and its .ipynb twin."""
    a = cell_signature(jupytext.read(py_path))
    b = cell_signature(jupytext.read(ipynb_path))
    problems = []
    if len(a) != len(b):
        problems.append(f"{py_path.name} has {len(a)} cells, {ipynb_path.name} has {len(b)}")
    for i, (ca, cb) in enumerate(zip(a, b)):
        if ca != cb:
            first = (ca[1] or cb[1]).splitlines()[0][:60] if (ca[1] or cb[1]) else ""
            problems.append(f"cell {i} ({ca[0]}, starting {first!r}) differs")
    return problems


def test_there_are_chapters():
    assert SOURCES, f"no py:percent chapters in {NOTEBOOKS}"


@pytest.mark.parametrize("py_path", SOURCES, ids=lambda p: p.stem)
def test_pair_in_sync(py_path: Path):
    ipynb_path = py_path.with_suffix(".ipynb")
    assert ipynb_path.exists(), f"{ipynb_path.name} is missing: run `make notebooks`"
    problems = pair_differences(py_path, ipynb_path)
    assert not problems, f"{py_path.name} and {ipynb_path.name} are out of sync (run `make notebooks`): " \
                         + "; ".join(problems[:5])


def test_no_orphan_ipynb():
    orphans = [p.name for p in NOTEBOOKS.glob("*.ipynb") if not p.with_suffix(".py").exists()]
    assert not orphans, f"notebooks without a py:percent source: {orphans}"


def test_pair_check_detects_an_edit(tmp_path: Path):
    """The comparison itself: a one-character edit of the .py is reported."""
    src = SOURCES[0]
    py, nb = tmp_path / src.name, tmp_path / src.with_suffix(".ipynb").name
    py.write_text(src.read_text())
    nb.write_text(src.with_suffix(".ipynb").read_text())
    assert pair_differences(py, nb) == []
    py.write_text(src.read_text().replace('print(f"seed: {', 'print(f"seed:  {', 1))
    assert pair_differences(py, nb), "an edited .py was not detected as out of sync"


@pytest.mark.parametrize("py_path", SOURCES, ids=lambda p: p.stem)
def test_checked_cells_have_stored_outputs(py_path: Path):
    ipynb_path = py_path.with_suffix(".ipynb")
    if not ipynb_path.exists():
        pytest.fail(f"{ipynb_path.name} is missing: run `make notebooks`")
    nb = jupytext.read(ipynb_path)
    empty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and NBVAL_MARK in c.source and not c.get("outputs")]
    assert not empty, f"{ipynb_path.name}: cells {empty} are marked {NBVAL_MARK} but have no stored output; " \
                      "run `make notebooks` to execute and store them"


def figure_cells_with_several_displays(nb) -> list[str]:
    """Code cells with a MyST-NB figure caption (``mystnb: figure``) that store more than one
    displayed output: each display becomes a figure with the same target name, which the book
    build (``-W``) refuses as a duplicate. Display a table in a cell of its own."""
    bad = []
    for i, c in enumerate(nb.cells):
        if c.cell_type != "code" or "figure" not in c.metadata.get("mystnb", {}):
            continue
        shown = [o for o in c.get("outputs", []) if o.get("output_type") in ("display_data", "execute_result")]
        if len(shown) > 1:
            bad.append(f"cell {i} ({c.metadata['mystnb']['figure'].get('name')}): {len(shown)} displays")
    return bad


@pytest.mark.parametrize("py_path", SOURCES, ids=lambda p: p.stem)
def test_a_figure_cell_displays_one_thing(py_path: Path):
    nb = jupytext.read(py_path.with_suffix(".ipynb"))
    bad = figure_cells_with_several_displays(nb)
    assert not bad, f"{py_path.with_suffix('.ipynb').name}: {bad}; move the other displays to a cell of their own"


def test_the_figure_check_finds_a_table_beside_a_figure():
    import nbformat

    cell = nbformat.v4.new_code_cell("plt.show()\ntable", metadata={"mystnb": {"figure": {"name": "fig-x"}}})
    cell.outputs = [nbformat.v4.new_output("display_data", {"image/png": ""}),
                    nbformat.v4.new_output("execute_result", {"text/plain": "table"}, execution_count=1)]
    nb = nbformat.v4.new_notebook(cells=[cell])
    assert figure_cells_with_several_displays(nb) == ["cell 0 (fig-x): 2 displays"]
    cell.outputs = cell.outputs[:1]
    assert figure_cells_with_several_displays(nb) == []


def _toc_files(entries) -> list[str]:
    out = []
    for e in entries or []:
        if "file" in e:
            out.append(e["file"])
        out += _toc_files(e.get("chapters")) + _toc_files(e.get("sections"))
    return out


def test_toc_lists_every_chapter_and_nothing_missing():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = {toc["root"], *_toc_files(toc.get("chapters"))}
    for part in toc.get("parts", []):
        files.update(_toc_files(part.get("chapters")))
    missing = [f for f in files if not any((ROOT / f).with_suffix(s).exists() for s in (".md", ".py"))]
    assert not missing, f"_toc.yml names files that do not exist: {sorted(missing)}"
    unlisted = [p.name for p in SOURCES if f"notebooks/{p.stem}" not in files]
    assert not unlisted, f"chapters not in _toc.yml: {unlisted}"


@pytest.mark.parametrize("py_path", SOURCES, ids=lambda p: p.stem)
def test_chapter_prints_its_seed(py_path: Path):
    text = py_path.read_text()
    assert "print(f\"seed: {" in text, f"{py_path.name} must print the seed it uses"


def test_chapter_files_are_numbered_in_reading_order():
    """The toc lists the chapters 01, 02, ... in that order: a file's number is its place in the book
    (that every chapter is in the toc is the test above)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [f for part in toc["parts"] for f in _toc_files(part["chapters"]) if f.startswith("notebooks/")]
    numbers = []
    for f in files:
        m = re.match(r"notebooks/(\d\d)_", f)
        assert m, f"{f}: a chapter's file name starts with its two-digit place in the book (e.g. notebooks/07_...)"
        numbers.append(int(m.group(1)))
    assert numbers == list(range(1, len(files) + 1)), f"chapters out of reading order: {files}"
