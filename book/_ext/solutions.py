"""Sphinx extension: an exercise's solution behind one toggle, its code and output included.

A chapter's exercise (``scripts/student_edition.py`` states the convention) has a Markdown
cell tagged ``solution`` holding a ``:::{dropdown} Solution`` and, for a code answer, code
cells tagged ``solution``. myst-nb renders the dropdown and the code cells as siblings, so
the code and its printed answer would stand open under the question. This post-transform
moves every solution code cell that follows a "Solution" dropdown into it: one toggle
shows the text, the code and the output together. A solution code cell with no dropdown
before it is hidden whole instead (myst-nb's ``hide-cell`` mode: input and output behind
one toggle). It runs before sphinx-design turns dropdowns into ``<details>`` and before
myst-nb wraps hidden cells (both at priority 199).
"""
from __future__ import annotations

from typing import Any

from docutils import nodes
from sphinx.transforms.post_transforms import SphinxPostTransform

SOLUTION_CLASS = "tag_solution"
PROMPT_SHOW = "Show the solution"
PROMPT_HIDE = "Hide the solution"


def is_solution_cell(node: nodes.Node) -> bool:
    return (isinstance(node, nodes.container) and node.get("nb_element") == "cell_code"
            and SOLUTION_CLASS in node.get("classes", []))


def is_solution_dropdown(node: nodes.Node | None) -> bool:
    """A sphinx-design dropdown (before its HTML transform) titled "Solution"."""
    if not (isinstance(node, nodes.container) and node.get("design_component") == "dropdown"):
        return False
    title = node.children[0] if node.get("has_title") and node.children else None
    return isinstance(title, nodes.rubric) and title.astext().strip() == "Solution"


def previous_sibling(node: nodes.Node) -> nodes.Node | None:
    parent = node.parent
    if parent is None:
        return None
    index = parent.index(node)
    return parent[index - 1] if index > 0 else None


def fold_solutions(document: nodes.document) -> tuple[int, int]:
    """Move solution cells into the dropdown before them, or hide them whole; (moved, hidden)."""
    moved = hidden = 0
    for cell in list(document.findall(is_solution_cell)):
        before = previous_sibling(cell)
        if is_solution_dropdown(before):
            cell.parent.remove(cell)
            before.append(cell)
            moved += 1
        else:
            cell["hide_mode"] = "all"
            cell["prompt_show"], cell["prompt_hide"] = PROMPT_SHOW, PROMPT_HIDE
            hidden += 1
    return moved, hidden


class FoldSolutions(SphinxPostTransform):
    default_priority = 150
    formats = ("html",)

    def run(self, **kwargs: Any) -> None:
        fold_solutions(self.document)


def setup(app) -> dict:
    app.add_post_transform(FoldSolutions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
