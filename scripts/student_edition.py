"""The student edition of the book's chapters, and the contract of their exercises.

Every chapter (``notebooks/*.py``, jupytext ``py:percent``) ends with exercises. One exercise
is a run of cells after the ``## Exercises`` heading:

* the **question**, a Markdown cell with ``**Exercise N (title).**``;
* for an exercise with a code answer, a **stub** cell (tags ``stub`` and ``remove-cell``):
  the names the answer must define, set to placeholders (``None``, or a function that
  returns ``None``), where the student writes the code;
* the **solution**: a Markdown cell tagged ``solution`` holding a ``:::{dropdown} Solution``,
  then, for a code answer, the reference code in cells tagged ``solution``;
* for a code answer, a **check** cell (tag ``check``): asserts, each with a message, that
  pass on the reference solution and fail, with their message, on the stub.

In the book the stub is removed from the page and the solution cells sit in one toggle
(``book/_ext/solutions.py``); the book's build runs stub, solution and check in order, so a
wrong solution fails the build. The student edition drops the solution cells, keeps stub
and check, and clears every output::

    python scripts/student_edition.py --out _build/student          # make student
    python scripts/student_edition.py --check notebooks/09_him.py   # run one chapter's contract
    python scripts/student_edition.py --out /tmp/student --run      # make student-check: run the edition

``--check`` runs the contract without executing whole chapters: for each exercise it
executes only the cells the exercise needs (the chapter's cells that define or change a
name the exercise's cells read, found from their syntax trees, plus every cell that
imports), then the stub and the check (which must raise ``AssertionError`` with a message)
and the solution and the check (which must pass). ``tests/test_book_exercises.py`` runs it
for every chapter.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import io
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
EXERCISE = re.compile(r"\*\*Exercise (\d+)\b")
STUDENT_NOTE = """\
:::{{note}}
**Student edition.** The solutions are not in this copy. Each exercise with a code answer
has a cell marked `# Your answer` where the names to define are set to placeholders:
replace them with your code, then run the check cell below it. The checks fail, with a
message, until the answer is right. (Chapter file: `notebooks/{name}`.)
:::"""


class ContractError(ValueError):
    """An exercise that breaks the stub / solution / check convention (the message says where)."""


@dataclass
class Exercise:
    """The cells of one exercise, as indices into the notebook's cells."""

    number: int
    question: int
    stubs: list[int] = field(default_factory=list)
    solution_text: list[int] = field(default_factory=list)
    solution_code: list[int] = field(default_factory=list)
    checks: list[int] = field(default_factory=list)

    @property
    def cells(self) -> list[int]:
        return sorted([self.question, *self.stubs, *self.solution_text, *self.solution_code, *self.checks])


def tags(cell) -> list[str]:
    return list(cell.metadata.get("tags", []))


def read_chapter(path: Path):
    """A chapter as an nbformat notebook (``.py`` through jupytext, ``.ipynb`` directly)."""
    import jupytext

    return jupytext.read(path)


def exercises_start(nb) -> int:
    for i, c in enumerate(nb.cells):
        if c.cell_type == "markdown" and re.search(r"^#+ Exercises\s*$", c.source, re.M):
            return i
    raise ContractError("no '## Exercises' heading")


def find_exercises(nb, name: str = "chapter") -> list[Exercise]:
    """The exercises of a chapter, checked against the convention of the module docstring."""
    start = exercises_start(nb)
    found: list[Exercise] = []
    for i, c in enumerate(nb.cells[start:], start):
        t = tags(c)
        is_question = c.cell_type == "markdown" and "solution" not in t and EXERCISE.search(c.source)
        if is_question:
            numbers = EXERCISE.findall(c.source)
            if len(numbers) != 1:
                raise ContractError(f"{name}, cell {i}: one question per cell (found exercises {numbers})")
            found.append(Exercise(int(numbers[0]), i))
            continue
        if not found:
            if {"stub", "solution", "check"} & set(t):
                raise ContractError(f"{name}, cell {i}: a {t} cell before the first exercise")
            continue
        ex = found[-1]
        if "stub" in t:
            if c.cell_type != "code" or ex.solution_text or ex.solution_code or ex.checks:
                raise ContractError(f"{name}, exercise {ex.number}: the stub (cell {i}) must be a code cell "
                                    "right after the question")
            if "remove-cell" not in t:
                raise ContractError(f"{name}, cell {i}: a stub is removed from the book: tag it remove-cell too")
            ex.stubs.append(i)
        elif "solution" in t:
            if ex.checks:
                raise ContractError(f"{name}, exercise {ex.number}: solution cell {i} after its check")
            if c.cell_type == "markdown":
                if ex.solution_code:
                    raise ContractError(f"{name}, exercise {ex.number}: the solution's text (cell {i}) "
                                        "comes before its code")
                ex.solution_text.append(i)
            else:
                ex.solution_code.append(i)
        elif "check" in t:
            if c.cell_type != "code":
                raise ContractError(f"{name}, cell {i}: a check must be a code cell")
            ex.checks.append(i)
        elif c.cell_type == "code" and found and (not ex.checks and (ex.stubs or ex.solution_code)):
            raise ContractError(f"{name}, exercise {ex.number}: untagged code cell {i} inside the exercise")
    for k, ex in enumerate(found, 1):
        where = f"{name}, exercise {ex.number}"
        if ex.number != k:
            raise ContractError(f"{where}: exercises are numbered 1, 2, ... in order")
        if len(ex.solution_text) != 1 or ":::{dropdown} Solution" not in nb.cells[ex.solution_text[0]].source:
            raise ContractError(f"{where}: one Markdown cell tagged solution with a ':::{{dropdown}} Solution'")
        if ex.solution_code and not (ex.stubs and ex.checks):
            raise ContractError(f"{where}: a code answer needs a stub cell before it and a check cell after it")
        if (ex.stubs or ex.checks) and not ex.solution_code:
            raise ContractError(f"{where}: a stub or check without solution code")
        for j in ex.checks:
            bare = asserts_without_message(nb.cells[j].source)
            if not ast_asserts(nb.cells[j].source):
                raise ContractError(f"{where}: check cell {j} has no assert")
            if bare:
                raise ContractError(f"{where}: check cell {j} has asserts without a message (lines {bare})")
        missing = stub_gaps(nb, ex)
        if missing:
            raise ContractError(f"{where}: the check reads {missing}, which the solution defines but the "
                                "stub does not: define them in the stub")
    return found


# --------------------------------------------------------------------------- syntax of cells
def code_of(source: str) -> str:
    """A cell's Python, with IPython magics and shell lines commented out."""
    return "\n".join("# " + line if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def ast_asserts(source: str) -> list[ast.Assert]:
    return [n for n in ast.walk(ast.parse(code_of(source))) if isinstance(n, ast.Assert)]


def asserts_without_message(source: str) -> list[int]:
    return [n.lineno for n in ast_asserts(source) if n.msg is None]


@dataclass
class Names:
    """Global names a cell binds, reads, and changes in place (a method call, an item or attribute set)."""

    stores: set[str]
    loads: set[str]
    changes: set[str]
    imports: bool


def _root_name(node) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _targets(node) -> set[str]:
    """Names an assignment target binds (``a``, ``a, (b, c)``, ``*rest``; not ``a.x`` or ``a[0]``)."""
    if isinstance(node, ast.Name):
        return {node.id}
    if isinstance(node, (ast.Tuple, ast.List)):
        return set().union(*(_targets(e) for e in node.elts)) if node.elts else set()
    if isinstance(node, ast.Starred):
        return _targets(node.value)
    return set()


def _expr_reads(node, local: set[str]) -> set[str]:
    """Names an expression reads from outside: comprehension and lambda variables are its own."""
    if node is None:
        return set()
    if isinstance(node, ast.Name):
        return {node.id} if isinstance(node.ctx, ast.Load) and node.id not in local else set()
    if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
        reads, inner = set(), set(local)
        for gen in node.generators:
            reads |= _expr_reads(gen.iter, inner)
            inner |= _targets(gen.target)
            for cond in gen.ifs:
                reads |= _expr_reads(cond, inner)
        parts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        return reads | set().union(*(_expr_reads(x, inner) for x in parts))
    if isinstance(node, ast.Lambda):
        args = {a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)}
        defaults = set().union(set(), *(_expr_reads(d, local) for d in node.args.defaults + node.args.kw_defaults if d))
        return defaults | _expr_reads(node.body, local | args)
    return set().union(set(), *(_expr_reads(child, local) for child in ast.iter_child_nodes(node)))


def _stmt_stores(stmt) -> set[str]:
    """Names a statement binds in its own scope (nested functions and comprehensions excluded)."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in stmt.names}
    if isinstance(stmt, ast.Assign):
        return set().union(*(_targets(t) for t in stmt.targets))
    if isinstance(stmt, (ast.AugAssign, ast.AnnAssign)):
        return _targets(stmt.target)
    if isinstance(stmt, (ast.For, ast.AsyncFor)):
        out = _targets(stmt.target)
    elif isinstance(stmt, (ast.With, ast.AsyncWith)):
        out = set().union(set(), *(_targets(i.optional_vars) for i in stmt.items if i.optional_vars))
    elif isinstance(stmt, ast.Try):
        out = {h.name for h in stmt.handlers if h.name}
    elif isinstance(stmt, ast.Delete):
        return set().union(*(_targets(t) for t in stmt.targets))
    else:
        out = set()
    for field_ in ("body", "orelse", "finalbody", "handlers"):
        for child in getattr(stmt, field_, []):
            if isinstance(child, ast.ExceptHandler):
                out |= set().union(set(), *(_stmt_stores(c) for c in child.body))
            else:
                out |= _stmt_stores(child)
    return out | {n.id for n in ast.walk(stmt) if isinstance(n, ast.NamedExpr) for n in [n.target]}


def _block_reads(stmts, bound: set[str]) -> set[str]:
    """Names a block reads before binding them itself, walking its statements in order."""
    reads: set[str] = set()
    for stmt in stmts:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = {a.arg for a in ast.walk(stmt.args) if isinstance(a, ast.arg)}
            inner = args | set().union(set(), *(_stmt_stores(c) for c in stmt.body))
            reads |= set().union(set(), *(_expr_reads(d, bound) for d in stmt.decorator_list + stmt.args.defaults
                                          + [k for k in stmt.args.kw_defaults if k]))
            reads |= _block_reads(stmt.body, bound | inner) - bound
        elif isinstance(stmt, ast.ClassDef):
            reads |= set().union(set(), *(_expr_reads(d, bound) for d in stmt.bases + stmt.decorator_list))
            reads |= _block_reads(stmt.body, set(bound))
        elif isinstance(stmt, (ast.For, ast.AsyncFor)):
            reads |= _expr_reads(stmt.iter, bound)
            bound |= _targets(stmt.target)
            reads |= _block_reads(stmt.body + stmt.orelse, bound)
        elif isinstance(stmt, (ast.While, ast.If)):
            reads |= _expr_reads(stmt.test, bound)
            reads |= _block_reads(stmt.body, bound) | _block_reads(stmt.orelse, bound)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            for item in stmt.items:
                reads |= _expr_reads(item.context_expr, bound)
                if item.optional_vars is not None:
                    bound |= _targets(item.optional_vars)
            reads |= _block_reads(stmt.body, bound)
        elif isinstance(stmt, ast.Try):
            reads |= _block_reads(stmt.body, bound)
            for h in stmt.handlers:
                reads |= _expr_reads(h.type, bound)
                reads |= _block_reads(h.body, bound | ({h.name} if h.name else set()))
            reads |= _block_reads(stmt.orelse, bound) | _block_reads(stmt.finalbody, bound)
        elif isinstance(stmt, ast.AugAssign):
            reads |= _expr_reads(stmt.value, bound) | (_targets(stmt.target) - bound)
            reads |= _expr_reads(stmt.target, bound) if not isinstance(stmt.target, ast.Name) else set()
        else:
            reads |= _expr_reads(stmt, bound)
        bound |= _stmt_stores(stmt)
    return reads


def cell_names(source: str) -> Names:
    tree = ast.parse(code_of(source))
    stores = set().union(set(), *(_stmt_stores(stmt) for stmt in tree.body))
    loads = _block_reads(tree.body, set())
    changes, imported = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                imported.add((a.asname or a.name).split(".")[0])
        elif isinstance(node, (ast.Attribute, ast.Subscript)) and isinstance(node.ctx, (ast.Store, ast.Del)):
            root = _root_name(node)
            if root:
                changes.add(root)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            root = _root_name(node.func.value)
            if root:
                changes.add(root)                      # x.append(...), model.eval(), rng.normal(...)
    return Names(stores, loads, changes - imported, bool(imported))


def _imported(source: str) -> set[str]:
    tree = ast.parse(code_of(source))
    return {(a.asname or a.name).split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
            for a in n.names}


def stub_gaps(nb, ex: Exercise) -> list[str]:
    """Names the check reads that the solution binds and the stub does not."""
    solution = set().union(*(cell_names(nb.cells[i].source).stores for i in ex.solution_code)) if ex.solution_code else set()
    stub = set().union(*(cell_names(nb.cells[i].source).stores for i in ex.stubs)) if ex.stubs else set()
    read = set().union(*(cell_names(nb.cells[i].source).loads for i in ex.checks)) if ex.checks else set()
    own = set().union(*(cell_names(nb.cells[i].source).stores for i in ex.checks)) if ex.checks else set()
    return sorted((read & solution) - stub - own)


def needed_cells(nb, upto: int, targets: list[int]) -> list[tuple[int, bool]]:
    """The code cells before ``upto`` that the cells ``targets`` need, in order, as ``(index, whole)``.

    Walking back from ``upto``, a cell is needed (``whole=True``) when it binds or changes a
    name that a needed cell (or a target) reads; its own reads are then needed too. A cell
    that changes a name in place (``rng.normal(...)``, ``model.load_state_dict(...)``) counts
    as one that binds it, so random streams and trained models are what the chapter made.
    Of a cell that is not needed but imports, only its top-level imports run (``whole=False``).
    """
    code = [c for c in nb.cells if c.cell_type == "code"]
    modules = set().union(*(_imported(c.source) for c in code))     # calls on a module change no chapter state
    wanted = set().union(*(cell_names(nb.cells[i].source).loads for i in targets))
    wanted |= set().union(*(cell_names(nb.cells[i].source).changes for i in targets))
    wanted -= modules
    keep = []
    for i in range(upto - 1, -1, -1):
        c = nb.cells[i]
        if c.cell_type != "code" or "stub" in tags(c):
            continue
        names = cell_names(c.source)
        if (names.stores - modules | names.changes - modules) & wanted:
            keep.append((i, True))
            wanted |= (names.loads | names.changes) - modules
        elif names.imports:
            keep.append((i, False))
    return sorted(keep)


def imports_only(source: str) -> str:
    """The top-level import statements of a cell."""
    tree = ast.parse(code_of(source))
    return "\n".join(ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)))


# --------------------------------------------------------------------------- the student edition
def student_notebook(nb, name: str):
    """A copy of ``nb`` without solution cells or outputs; stubs lose their ``remove-cell`` tag."""
    import nbformat

    find_exercises(nb, name)                                 # refuse a chapter that breaks the convention
    out = copy.deepcopy(nb)
    cells = []
    for c in out.cells:
        t = tags(c)
        if "solution" in t:
            continue
        if "stub" in t:
            c.metadata["tags"] = [x for x in t if x != "remove-cell"]
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
        c.metadata.pop("execution", None)
        cells.append(c)
    heading = next((k for k, c in enumerate(cells) if c.cell_type == "markdown"), 0)
    cells.insert(heading + 1, nbformat.v4.new_markdown_cell(STUDENT_NOTE.format(name=name)))
    out.cells = cells
    return out


def write_student_edition(out: Path, sources: list[Path]) -> list[Path]:
    """Write ``out/<chapter>.ipynb`` for every source and ``out/README.md``; returns the notebooks."""
    import jupytext
    import nbformat

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    written, rows = [], []
    for src in sources:
        nb = student_notebook(read_chapter(src), src.name)
        nb.metadata.pop("jupytext", None)                    # a plain notebook: no pairing with the key's .py
        path = out / f"{src.stem}.ipynb"
        nbformat.write(nb, path)
        written.append(path)
        n_ex = len(find_exercises(jupytext.read(src), src.name))
        n_code = sum(1 for e in find_exercises(jupytext.read(src), src.name) if e.solution_code)
        rows.append(f"| `{path.name}` | {n_ex} | {n_code} |")
    (out / "README.md").write_text(
        "# Student edition\n\n"
        "The book's chapters without their solutions (written by `make student` from `notebooks/*.py`).\n"
        "Open them with Jupyter from this folder inside a clone of the project, with the project's\n"
        "environment (`make venv`, then `.venv/bin/jupyter lab`): the chapters import `survmamba_lite` and\n"
        "read committed results from the project's folders. In each exercise with a code answer, replace\n"
        "the placeholders of the cell marked `# Your answer`, then run the check cell after it.\n\n"
        "| notebook | exercises | with a code answer and a check |\n|---|---|---|\n" + "\n".join(rows) + "\n",
        encoding="utf-8")
    return written


# --------------------------------------------------------------------------- running the contract
@dataclass
class Outcome:
    chapter: str
    exercise: int
    solution_passed: bool
    stub_message: str | None          # the AssertionError's message on the stub, None if it did not fail so
    problem: str | None               # what broke the contract, None when it holds
    cells_run: int
    seconds: float


def _run(source: str, ns: dict, label: str) -> None:
    exec(compile(code_of(source), label, "exec"), ns)    # noqa: S102 - the chapter's own code


@contextlib.contextmanager
def _chapter_environment(workdir: Path):
    """Run cells as the book does: cwd notebooks/, headless matplotlib, temporary files in a scratch folder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import torch

    old_cwd, old_tmp = Path.cwd(), tempfile.tempdir
    old_dtype, old_threads = torch.get_default_dtype(), torch.get_num_threads()   # chapters set both
    os.chdir(NOTEBOOKS)
    tempfile.tempdir = str(workdir)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        plt.close("all")
        os.chdir(old_cwd)
        tempfile.tempdir = old_tmp
        torch.set_default_dtype(old_dtype)
        torch.set_num_threads(old_threads)


def check_chapter(path: Path, quiet: bool = True) -> list[Outcome]:
    """Run every code exercise of a chapter: stub then check must fail with a message, solution then check pass.

    The cells the exercises need (:func:`needed_cells`) run once, then the exercises in
    order, as in the chapter. For exercise ``k`` the stub and the check run in a copy of the
    namespace where the stubs of exercises ``1..k`` have run, as in the student edition
    with no exercise done; then stub, solution and check run in the chapter's namespace, as
    in the book (where the stub is removed from the page but runs).
    """
    from IPython.display import display

    nb = read_chapter(path)
    exercises = [ex for ex in find_exercises(nb, path.name) if ex.solution_code]
    if not exercises:
        return []
    targets = [i for ex in exercises for i in ex.stubs + ex.solution_code + ex.checks]
    prefix = needed_cells(nb, exercises[0].question, targets)
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="survmamba_exercise_") as scratch, _chapter_environment(Path(scratch)):
        ns: dict = {"__name__": "__main__", "display": display}
        out = io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(out if quiet else sys.stdout):
            for i, whole in prefix:
                _run(nb.cells[i].source if whole else imports_only(nb.cells[i].source), ns, f"<{path.name} cell {i}>")
            # cells between the exercises that are not part of one (none, by the convention) are skipped
            stubs_so_far: list[int] = []
            for ex in exercises:
                problem, stub_message, passed = None, None, False
                stubs_so_far += ex.stubs
                stub_ns = dict(ns)
                try:
                    for i in stubs_so_far:
                        _run(nb.cells[i].source, stub_ns, f"<{path.name} stub {i}>")
                    for i in ex.checks:
                        _run(nb.cells[i].source, stub_ns, f"<{path.name} check {i}>")
                    problem = "the check passed on the stub"
                except AssertionError as err:
                    stub_message = str(err)
                    if not stub_message.strip():
                        problem = "the check failed on the stub without a message"
                except Exception as err:               # noqa: BLE001 - any other exception breaks the contract
                    problem = f"the check crashed on the stub: {type(err).__name__}: {err}"
                try:                                   # as in the book: stub, solution, check
                    for i in ex.stubs + ex.solution_code + ex.checks:
                        _run(nb.cells[i].source, ns, f"<{path.name} cell {i}>")
                    passed = True
                except Exception as err:               # noqa: BLE001
                    problem = "; ".join(filter(None, [problem, f"the solution failed: {type(err).__name__}: {err}"]))
                outcomes.append(Outcome(path.stem, ex.number, passed, stub_message, problem, len(prefix),
                                        time.perf_counter() - t0))
                t0 = time.perf_counter()
    return outcomes


def run_edition(notebooks: list[Path], timeout: int = 900) -> list[str]:
    """Execute student notebooks top to bottom (errors allowed); the problems found.

    In the student edition every check cell must fail with an ``AssertionError`` carrying a
    message, and no other cell may fail: that is what a student who has done nothing sees.
    """
    import nbclient
    import nbformat

    problems = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                                resources={"metadata": {"path": str(path.parent)}}).execute()
        for i, c in enumerate(nb.cells):
            if c.cell_type != "code":
                continue
            errors = [o for o in c.outputs if o.output_type == "error"]
            is_check = "check" in c.metadata.get("tags", [])
            if is_check and not errors:
                problems.append(f"{path.name}, cell {i}: a check passed with the stub in place")
            for o in errors:
                if not is_check:
                    problems.append(f"{path.name}, cell {i}: {o.ename}: {o.evalue[:120]} (not a check cell)")
                elif o.ename != "AssertionError" or not o.evalue.strip():
                    problems.append(f"{path.name}, cell {i}: the check crashed ({o.ename}: {o.evalue[:120]})")
        print(f"{path.name}: ran", flush=True)
    return problems


def reading_order(sources: list[Path]) -> list[Path]:
    """``sources`` in the order of the book's table of contents (chapters not in it last)."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [c["file"] for part in toc.get("parts", []) for c in part.get("chapters", [])]
    rank = {Path(f).name: k for k, f in enumerate(files)}
    return sorted(sources, key=lambda p: (rank.get(p.stem, len(rank)), p.stem))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the student edition here (e.g. _build/student)")
    parser.add_argument("--check", nargs="*", type=Path, metavar="CHAPTER",
                        help="run the exercise contract of these chapters (none given: all)")
    parser.add_argument("--run", action="store_true",
                        help="with --out: then execute every student notebook top to bottom and check that each "
                             "check cell, and only check cells, fails with an AssertionError and its message")
    parser.add_argument("sources", nargs="*", type=Path, help="chapters (default: notebooks/*.py)")
    args = parser.parse_args(argv)
    sources = args.sources or reading_order(sorted(NOTEBOOKS.glob("*.py")))
    if args.out is None and args.check is None:
        parser.error("give --out DIR, --check [CHAPTER ...], or both")
    try:
        if args.out is not None:
            written = write_student_edition(args.out, sources)
            print(f"student edition: {len(written)} chapters in {args.out}/ (solutions removed, outputs cleared)")
            if args.run:
                problems = run_edition(written)
                for problem in problems:
                    print("FAILED:", problem)
                if problems:
                    return 1
                print(f"every check of the {len(written)} student notebooks fails with its message, nothing else fails")
        if args.check is not None:
            bad = 0
            for path in args.check or sources:
                for o in check_chapter(path):
                    status = "ok" if o.problem is None else f"FAILED: {o.problem}"
                    print(f"{o.chapter} exercise {o.exercise}: {status} ({o.cells_run} cells, {o.seconds:.1f} s); "
                          f"stub -> {o.stub_message!r}")
                    bad += o.problem is not None
            if bad:
                print(f"{bad} exercise(s) break the contract")
                return 1
    except ContractError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
