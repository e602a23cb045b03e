"""The instructor's guide (book/instructors.md): its cheat-sheet names real package objects,
covers every equation and algorithm of the paper, its chapter map covers the table of
contents, and its run times come from the build (myst-nb's execution table), not from text."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "book" / "instructors.md"
NAME = re.compile(r"`(survmamba_lite(?:\.\w+)+)`")


def resolve(dotted: str):
    """Import the longest importable module prefix of `dotted`, then follow attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def cheat_sheet() -> str:
    text = GUIDE.read_text(encoding="utf-8")
    return text[text.index("## Cheat-sheet"):]


def test_every_name_in_the_cheat_sheet_exists():
    names = sorted(set(NAME.findall(cheat_sheet())))
    assert len(names) >= 30, names
    missing = []
    for name in names:
        try:
            resolve(name)
        except (ImportError, AttributeError) as err:
            missing.append(f"{name}: {err}")
    assert not missing, f"cheat-sheet names that do not exist: {missing}"


def test_the_name_check_catches_a_wrong_name():
    with pytest.raises(AttributeError):
        resolve("survmamba_lite.survival.no_such_function")


def test_every_equation_and_algorithm_is_mapped():
    rows = [line for line in cheat_sheet().splitlines() if line.startswith("| ") and "survmamba_lite" in line]
    first_cells = " ".join(line.split("|")[1] for line in rows)
    equations = set()
    for m in re.finditer(r"Eq\. (\d+)(?:–(\d+))?", first_cells):
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        equations.update(range(lo, hi + 1))
    assert equations >= set(range(1, 10)), f"equations without a row: {sorted(set(range(1, 10)) - equations)}"
    assert "Algorithm 1" in first_cells and "Algorithm 2" in first_cells
    for item in ("Table 1", "Table 2", "Table 3", "Fig. 3", "Fig. 4"):
        assert item in first_cells, item


def test_chapter_map_covers_the_toc_and_run_times_are_measured():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    chapters = [c["file"] for part in toc["parts"] for c in part["chapters"] if c["file"].startswith("notebooks/")]
    text = GUIDE.read_text(encoding="utf-8")
    chapter_map = text[text.index("## Chapter map"):text.index("## Run time")]
    unmapped = [c for c in chapters if f"../{c}.py" not in chapter_map]
    assert not unmapped, f"chapters missing from the chapter map: {unmapped}"
    run_times = text[text.index("## Run time"):text.index("## Settings")]
    assert "{nb-exec-table}" in run_times, "run times must come from the build's execution table"
    assert not re.search(r"\d+(\.\d+)?\s*(s|min|seconds|minutes)\b", run_times.replace("2-core", "")), \
        "run times must be measured at build time, not typed into the page"
    assert "book/instructors" in [c["file"] for part in toc["parts"] for c in part["chapters"]]


def chapter_map() -> tuple[dict[str, str], dict[str, set[str]]]:
    """(title -> chapter stem, stem -> stems it needs first) from the guide's chapter map."""
    text = GUIDE.read_text(encoding="utf-8")
    rows = text[text.index("## Chapter map"):text.index("Three paths")]
    titles, needs_text = {}, {}
    for m in re.finditer(r"^\| \[([^\]]+)\]\(\.\./notebooks/(\w+)\.py\) \|[^|]*\| ([^|]*) \|$", rows, re.M):
        titles[m.group(1)] = m.group(2)
        needs_text[m.group(2)] = [n.strip() for n in m.group(3).split(",")]
    needs = {stem: {titles[n] for n in ns if n in titles} for stem, ns in needs_text.items()}
    return titles, needs


def order_problems(sequence: list[str], needs: dict[str, set[str]]) -> list[str]:
    seen, problems = set(), []
    for stem in sequence:
        missing = needs.get(stem, set()) - seen
        if missing:
            problems.append(f"{stem} before {sorted(missing)}")
        seen.add(stem)
    return problems


def test_the_chapter_map_parses_and_names_every_chapter():
    titles, needs = chapter_map()
    stems = {p.stem for p in (ROOT / "notebooks").glob("*.py")}
    assert set(titles.values()) == stems, stems ^ set(titles.values())
    assert needs["09_him"] >= {"06_bimamba", "07_slides_and_genes"}


def test_the_three_paths_follow_the_prerequisites():
    titles, needs = chapter_map()
    text = GUIDE.read_text(encoding="utf-8")
    table = text[text.index("Three paths"):text.index("## Run time")]
    paths = {m.group(1): [t.strip() for t in m.group(2).split(",")]
             for m in re.finditer(r"^\| (survival analysis|sequence models|computational pathology) \| (.*) \|$", table, re.M)}
    assert len(paths) == 3, paths
    for name, path in paths.items():
        unknown = [t for t in path if t not in titles]
        assert not unknown, f"{name}: not chapter titles of the map: {unknown}"
        problems = order_problems([titles[t] for t in path], needs)
        assert not problems, f"the {name} path reads " + "; ".join(problems)


def test_the_order_check_catches_a_missing_prerequisite():
    _, needs = chapter_map()
    assert order_problems(["09_him"], needs)


def test_the_syllabus_plans_follow_the_prerequisites():
    _, needs = chapter_map()
    plans = yaml.safe_load((ROOT / "book" / "syllabus.yml").read_text(encoding="utf-8"))
    stems = {p.stem for p in (ROOT / "notebooks").glob("*.py")}
    for name, sessions in plans.items():
        sequence = [c for s in sessions for c in s["chapters"]]
        assert set(sequence) <= stems and len(sequence) == len(set(sequence)), (name, sequence)
        problems = order_problems(sequence, needs)
        assert not problems, f"{name}: " + "; ".join(problems)
        for s in sessions:
            for run in s.get("homework", []):
                assert (ROOT / "results" / "course_blca" / "runs" / run / "summary.json").is_file(), run
    assert set(c for s in plans["three_weeks"] for c in s["chapters"]) == stems, "the three-week plan misses chapters"
