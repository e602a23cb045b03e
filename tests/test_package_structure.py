"""The package's shape: no module outside ``data/`` longer than 500 lines, no import cycles,
no import that runs up the floors of the house, no module that imports another's private names.

Imports are read from the source with :mod:`ast`, not by importing: **every** ``import``
and ``from ... import`` statement counts, at module level and inside functions alike (a
function-level import is still a dependency; it only runs later). An edge goes from a
module to the package module it names: ``from survmamba_lite.a.b import c`` is an edge to
``survmamba_lite.a.b.c`` when that is a module, else to ``survmamba_lite.a.b``; a package
(``__init__.py``) is a module like any other, so importing a name from ``survmamba_lite.a``
is an edge to ``survmamba_lite.a``. Imports under ``if TYPE_CHECKING:`` count too.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "survmamba_lite"
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    mods = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _edges(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    is_package = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:                                   # relative: from .x import y
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
        for t in targets:
            while t and t not in modules:                    # import a.b.c of a module a.b: edge to a.b
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _edges(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (``[a, b, ..., a]``) or None (iterative depth-first search)."""
    state: dict[str, int] = {}                               # 1 on the stack, 2 done
    for root in sorted(graph):
        if state.get(root):
            continue
        stack, path = [(root, iter(sorted(graph[root])))], [root]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(child) == 1:
                return path[path.index(child):] + [child]
            elif not state.get(child):
                state[child] = 1
                stack.append((child, iter(sorted(graph[child]))))
                path.append(child)
    return None


def test_the_graph_reader_sees_function_level_and_relative_imports():
    graph = import_graph()
    # a function-level import (registry entries are read in report.table3 inside the function)
    assert "survmamba_lite.model.config" in graph["survmamba_lite.experiment.report"]
    assert "survmamba_lite.survival.metrics" in graph["survmamba_lite.survival.brier"]        # from .metrics
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


#: the floors of the house, bottom first: a module imports from its own floor and the ones below
FLOORS = (
    ("errors", "version", "shapes", "utils"),       # the basement: nothing of the package above it
    ("ssm", "survival"),                            # selective scans; survival losses, labels and metrics
    ("data",),                                      # cohorts, bags, slides, genes
    ("registry",),                                  # what a model is (its inputs name data.bag's hierarchy)
    ("model", "baselines"),                         # SurvMamba and the Table 1 models
    ("experiment",),                                # training, runs, grids, reports
    ("interpret", "realdata"),                      # built on trained runs
    ("cli", "survmamba_lite"),                      # the front door and the package itself
)


def floor_of(module: str) -> int:
    part = module.split(".")[1] if "." in module else module
    for i, names in enumerate(FLOORS):
        if part in names:
            return i
    raise AssertionError(f"{module}: on no floor of FLOORS; add its subpackage there")


def test_no_import_runs_up_the_house():
    up = sorted(f"{a} -> {b}" for a, targets in import_graph().items() for b in targets if floor_of(b) > floor_of(a))
    assert not up, "imports that run up the floors (move the code down, or pass what it needs in): " + "; ".join(up)


def private_imports() -> list[str]:
    """``from survmamba_lite.x import _name`` of another module (dunder names such as ``__version__`` are public)."""
    modules, found = _modules(), []
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("survmamba_lite"):
                for alias in node.names:
                    private = alias.name.startswith("_") and not alias.name.startswith("__")
                    if private and node.module != name:
                        found.append(f"{name}: from {node.module} import {alias.name}")
    return found


def test_no_module_imports_another_modules_private_names():
    found = private_imports()
    assert not found, "make these names public (or move the code to their module): " + "; ".join(found)


def test_no_module_outside_data_is_longer_than_500_lines():
    too_long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
                if "data" not in p.relative_to(PACKAGE).parts[:1]
                and (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not too_long, f"split these modules by concern (at most {MAX_LINES} lines each): {too_long}"


def test_shape_glossary_has_one_meaning_per_letter_and_the_book_page_shows_it():
    from survmamba_lite.shapes import GLOSSARY

    letters = [row[0] for row in GLOSSARY]
    assert len(letters) == len(set(letters)) and {"B", "L", "D", "E", "N", "R", "P", "T", "Q"} <= set(letters)
    page = (PACKAGE.parent / "book" / "shapes.md").read_text(encoding="utf-8")
    shown = [line.split("|")[1].strip().strip("`") for line in page.splitlines() if line.startswith("| `")]
    assert shown == letters, "book/shapes.md is out of step with survmamba_lite/shapes.py; regenerate its table"


def test_ssm_code_uses_the_glossary_letters():
    """The clashes are gone: in the ssm code ``T`` (time bins) is not the chunk length (``Q``) and
    ``M`` (the paper's region count) is neither a sequence length (``L``) nor input channels (``U``)."""
    import re

    for path in (PACKAGE / "ssm").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        shapes = re.findall(r"\(([A-Za-z0-9_, .*|]+)\)", text)
        bad = [s for s in shapes if re.search(r"\b[TM]\b", s)]
        assert not bad, f"{path.name}: shape(s) {bad[:3]} use T or M; see survmamba_lite/shapes.py"
