"""The exercises' contract and the student edition (scripts/student_edition.py).

Every chapter's exercises follow one convention: a question, for a code answer a stub
(tags ``stub``, ``remove-cell``), the solution (a Markdown cell and code cells tagged
``solution``) and a check cell (``check``) whose asserts all carry a message. For every
code exercise, the check must fail with its message on the stub (as the student edition
has it) and pass on the reference solution (as the book runs it). The checks run only the
cells each chapter's exercises need, not whole chapters; the chapters whose exercises need
a trained model or a measurement (listed in ``SLOW``) are marked slow. ``make book`` runs
every chapter with its solutions, so every solution is also checked there.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("*.py"))
#: chapters whose exercises need a trained model, a timing run or many models built (seconds on a 2-core CPU)
SLOW = {
    "17_efficiency": "measures five models on a CPU first",
    "12_training": "trains a model by cross-validation first",
    "16_interpretation": "trains a model and computes integrated gradients first",
}


def _module():
    spec = importlib.util.spec_from_file_location("student_edition", ROOT / "scripts" / "student_edition.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("student_edition", module)
    spec.loader.exec_module(module)
    return module


se = _module()


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_exercises_follow_the_convention(path: Path):
    exercises = se.find_exercises(se.read_chapter(path), path.name)     # raises ContractError with the place
    assert exercises, f"{path.name} has no exercises"
    assert any(ex.solution_code for ex in exercises), f"{path.name}: no exercise with a code answer and a check"


def test_every_slow_chapter_exists():
    assert set(SLOW) <= {p.stem for p in CHAPTERS}, sorted(set(SLOW) - {p.stem for p in CHAPTERS})


@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.slow) if p.stem in SLOW else p for p in CHAPTERS],
                         ids=[p.stem for p in CHAPTERS])
def test_checks_fail_on_the_stub_and_pass_on_the_solution(path: Path):
    outcomes = se.check_chapter(path)
    broken = [f"exercise {o.exercise}: {o.problem}" for o in outcomes if o.problem]
    assert not broken, f"{path.name}: " + "; ".join(broken)
    for o in outcomes:
        assert o.solution_passed and o.stub_message, o


# --------------------------------------------------------------------------- the student edition
def test_the_student_edition_has_no_solution_and_keeps_stubs_and_checks(tmp_path: Path):
    written = se.write_student_edition(tmp_path / "student", CHAPTERS)
    assert sorted(p.stem for p in written) == sorted(p.stem for p in CHAPTERS)
    assert (tmp_path / "student" / "README.md").is_file()
    for path in written:
        nb = nbformat.read(path, as_version=4)
        key = se.read_chapter(ROOT / "notebooks" / f"{path.stem}.py")
        exercises = se.find_exercises(key, path.name)
        tags = [t for c in nb.cells for t in c.metadata.get("tags", [])]
        assert "solution" not in tags, f"{path.name}: a solution cell is left"
        assert "remove-cell" not in [t for c in nb.cells if "stub" in c.metadata.get("tags", [])
                                     for t in c.metadata["tags"]], f"{path.name}: a stub still hidden"
        assert tags.count("stub") == sum(len(e.stubs) for e in exercises)
        assert tags.count("check") == sum(len(e.checks) for e in exercises)
        assert not any(":::{dropdown} Solution" in c.source for c in nb.cells), f"{path.name}: solution text left"
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{path.name}: outputs left"
        assert "Student edition" in nb.cells[1].source
        key_solutions = {c.source for c in key.cells if "solution" in c.metadata.get("tags", [])}
        assert not key_solutions & {c.source for c in nb.cells}, f"{path.name}: a solution's text is in the edition"


def test_make_student_writes_the_edition(tmp_path: Path):
    out = tmp_path / "edition"
    assert se.main(["--out", str(out), str(CHAPTERS[0])]) == 0
    assert (out / f"{CHAPTERS[0].stem}.ipynb").is_file()
    book_mk = (ROOT / "book.mk").read_text()
    assert "student:" in book_mk and "scripts/student_edition.py" in book_mk and "_build/student" in book_mk


# --------------------------------------------------------------------------- the contract can fail
HEADER = '# %% [markdown]\n# # T\n\n# %%\nimport math\nx = 2\n\n# %% [markdown]\n# ## Exercises\n\n'
QUESTION = '# %% [markdown]\n# **Exercise 1 (square).** Square x as `y`.\n\n'
STUB = '# %% tags=["stub", "remove-cell"]\ny = None\n\n'
SOLUTION_TEXT = '# %% [markdown] tags=["solution"]\n# :::{dropdown} Solution\n# x * x.\n# :::\n\n'
SOLUTION = '# %% tags=["solution"]\ny = x * x\n\n'
CHECK = '# %% tags=["check"]\nassert isinstance(y, int), "y should be a number"\nassert y == math.pow(x, 2), "y is not x squared"\n'


def _chapter(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "toy.py"
    path.write_text(text)
    return path


def test_a_good_toy_exercise_holds(tmp_path: Path):
    (o,) = se.check_chapter(_chapter(tmp_path, HEADER + QUESTION + STUB + SOLUTION_TEXT + SOLUTION + CHECK))
    assert o.problem is None and o.solution_passed and o.stub_message == "y should be a number"


@pytest.mark.parametrize("stub, solution, check, problem", [
    ('y = 4', SOLUTION, CHECK, "passed on the stub"),                                        # the stub is an answer
    (STUB, SOLUTION, CHECK.replace('isinstance(y, int)', 'y + 0 == 4'), "crashed on the stub"),   # TypeError on None
    (STUB, '# %% tags=["solution"]\ny = x + x + 1\n\n', CHECK, "the solution failed"),        # a wrong solution
])
def test_the_contract_catches_a_broken_exercise(tmp_path: Path, stub, solution, check, problem):
    if not stub.startswith("# %%"):
        stub = '# %% tags=["stub", "remove-cell"]\n' + stub + '\n\n'
    (o,) = se.check_chapter(_chapter(tmp_path, HEADER + QUESTION + stub + SOLUTION_TEXT + solution + check))
    assert o.problem and problem in o.problem, o


@pytest.mark.parametrize("text, message", [
    (HEADER + QUESTION + STUB + SOLUTION_TEXT + SOLUTION + CHECK.replace(', "y is not x squared"', ''), "without a message"),
    (HEADER + QUESTION + SOLUTION_TEXT + SOLUTION + CHECK, "needs a stub"),
    (HEADER + QUESTION + STUB + SOLUTION_TEXT + SOLUTION, "needs a stub cell before it and a check"),
    (HEADER + QUESTION + STUB.replace(', "remove-cell"', '') + SOLUTION_TEXT + SOLUTION + CHECK, "remove-cell"),
    (HEADER + QUESTION + '# %% tags=["stub", "remove-cell"]\nz = None\n\n' + SOLUTION_TEXT + SOLUTION + CHECK,
     "the stub does not"),
    (HEADER + QUESTION + STUB + SOLUTION + CHECK, "Solution"),
])
def test_the_convention_is_enforced(tmp_path: Path, text: str, message: str):
    with pytest.raises(se.ContractError, match=message):
        se.find_exercises(jupytext.reads(text, fmt="py:percent"), "toy.py")


def test_the_slice_runs_only_what_an_exercise_needs():
    nb = jupytext.reads(
        "# %%\nimport math\n\n# %%\nslow = sum(range(10 ** 9))\n\n# %%\nrng = [1]\n\n# %%\nrng.append(2)\n\n"
        "# %%\nx = len(rng)\n\n# %% [markdown]\n# **Exercise 1 (x).** Use x.\n\n# %%\ny = x + math.pi\n", fmt="py:percent")
    kept = se.needed_cells(nb, 5, [6])
    assert kept == [(0, False), (2, True), (3, True), (4, True)], kept       # the import, rng and what changed it, x


def test_the_student_edition_is_valid_nbformat(tmp_path: Path):
    (path,) = se.write_student_edition(tmp_path / "s", [ROOT / "notebooks" / "02_primer_survival.py"])
    nbformat.validate(nbformat.read(path, as_version=4))
    assert json.loads(path.read_text())["nbformat"] == 4


def test_running_the_student_edition_finds_a_check_that_passes_on_its_stub(tmp_path: Path, monkeypatch):
    """`make student-check` on two toy chapters: one that holds, one whose stub is already an answer."""
    monkeypatch.setenv("JUPYTER_PATH", str(Path(sys.prefix) / "share" / "jupyter"))   # this environment's kernel
    good = _chapter(tmp_path, HEADER + QUESTION + STUB + SOLUTION_TEXT + SOLUTION + CHECK)
    bad = tmp_path / "bad.py"
    bad.write_text(HEADER + QUESTION + STUB.replace("y = None", "y = 4") + SOLUTION_TEXT + SOLUTION + CHECK)
    written = se.write_student_edition(tmp_path / "edition", [good, bad])
    problems = se.run_edition(written)
    assert problems == ["bad.ipynb, cell 6: a check passed with the stub in place"], problems
