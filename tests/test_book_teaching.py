"""Every chapter teaches: it opens with 2-4 learning objectives and ends with a summary and
2-4 exercises, each with its solution in cells tagged `solution` (a Markdown cell with a
MyST dropdown, then the code), which the book shows behind one toggle; an exercise with a
code answer has a stub for the student edition and a check cell (tests/test_book_exercises.py
holds that contract)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("*.py"))


def teaching_problems(path: Path) -> list[str]:
    nb = jupytext.read(path)
    cells = nb.cells
    problems = []
    first_code = next((i for i, c in enumerate(cells) if c.cell_type == "code"), len(cells))
    opening = "\n".join(c.source for c in cells[:first_code] if c.cell_type == "markdown")
    m = re.search(r":::\{admonition\} Learning objectives\n(.*?)\n:::", opening, re.S)
    if not m:
        problems.append("no 'Learning objectives' admonition before the first code cell")
    else:
        n = len(re.findall(r"^\d+\. ", m.group(1), re.M))
        if not 2 <= n <= 4:
            problems.append(f"{n} learning objectives (2-4 expected)")
    text = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    if "## Summary" not in text or "## Exercises" not in text:
        problems.append("no '## Summary' or '## Exercises' section")
        return problems
    if text.index("## Summary") > text.index("## Exercises"):
        problems.append("the summary must come before the exercises")
    start = next(i for i, c in enumerate(cells) if c.cell_type == "markdown" and "## Exercises" in c.source)
    exercises = [i for i, c in enumerate(cells) if i >= start and c.cell_type == "markdown"
                 for _ in re.finditer(r"\*\*Exercise \d+", c.source)]
    if not 2 <= len(exercises) <= 4:
        problems.append(f"{len(exercises)} exercises (2-4 expected)")
    for i, c in enumerate(cells[start:], start):
        if c.cell_type == "code" and i > start and not ({"stub", "solution", "check"} & set(c.metadata.get("tags", []))):
            previous = next(cells[j] for j in range(i - 1, -1, -1) if cells[j].cell_type == "markdown")
            if "**Exercise" in previous.source and "shutil.rmtree" not in c.source:
                problems.append(f"cell {i}: a code cell after an exercise that is not its stub, solution or check")
        if c.cell_type == "markdown" and "**Exercise" in c.source and ":::{dropdown} Solution" in c.source:
            problems.append(f"cell {i}: the solution belongs in a Markdown cell of its own, tagged solution")
    return problems


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_has_objectives_summary_and_exercises(path: Path):
    problems = teaching_problems(path)
    assert not problems, f"{path.name}: " + "; ".join(problems)


def test_the_check_catches_a_chapter_without_exercises(tmp_path: Path):
    bare = tmp_path / "bare.py"
    bare.write_text('# %% [markdown]\n# # Title\n\n# %%\nx = 1\n\n# %% [markdown]\n# ## Summary\n#\n# done\n')
    problems = teaching_problems(bare)
    assert any("Learning objectives" in p for p in problems) and any("Exercises" in p for p in problems)
