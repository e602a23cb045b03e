"""The book's local Sphinx extensions (book/_ext/dedupe_scripts.py, book/_ext/offline_mathjax.py,
book/_ext/solutions.py)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

sphinx_assets = pytest.importorskip("sphinx.builders.html._assets")
ROOT = Path(__file__).resolve().parents[1]


def _load(name: str = "dedupe_scripts"):
    spec = importlib.util.spec_from_file_location(name, ROOT / "book" / "_ext" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_repeated_scripts_are_written_once_in_first_order():
    js = sphinx_assets._JavaScript
    thebe = 'const THEBE_JS_URL = "x"'
    scripts = [js("a.js"), js(None, body=thebe), js("b.js", priority=200), js("", body=thebe, priority=510),
               js("a.js"), js(None, body="let y = 1")]
    context = {"script_files": scripts}
    _load().dedupe_scripts(None, "page", "page.html", context, None)
    kept = context["script_files"]
    assert [(s.filename, s.attributes.get("body")) for s in kept] == [
        ("a.js", None), (None, thebe), ("b.js", None), (None, "let y = 1")]


def test_different_attributes_are_different_scripts():
    js = sphinx_assets._JavaScript
    scripts = [js("a.js"), js("a.js", **{"async": "async"})]
    context = {"script_files": list(scripts)}
    _load().dedupe_scripts(None, "page", "page.html", context, None)
    assert context["script_files"] == scripts


def test_the_book_loads_the_extension():
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert config["sphinx"]["local_extensions"] == {"dedupe_scripts": "book/_ext", "offline_mathjax": "book/_ext",
                                                    "solutions": "book/_ext"}


def test_thebe_assets_are_dropped_and_local_ones_kept():
    js, css = sphinx_assets._JavaScript, sphinx_assets._CascadingStyleSheet
    context = {"script_files": [js("a.js"), js(None, body='const THEBE_JS_URL = "https://cdn.example/thebe.js"'),
                                js("sphinx-thebe.js", **{"async": "async"}), js("mathjax/tex-chtml.js")],
               "css_files": [css("thebe.css"), css("b.css")]}
    _load("offline_mathjax").drop_thebe_and_check_remote(None, "page", "page.html", context, None)
    assert [s.filename for s in context["script_files"]] == ["a.js", "mathjax/tex-chtml.js"]
    assert [s.filename for s in context["css_files"]] == ["b.css"]


def test_a_script_from_another_site_fails_the_build():
    errors = pytest.importorskip("sphinx.errors")
    js = sphinx_assets._JavaScript
    context = {"script_files": [js("a.js"), js("https://cdn.example/lib.js")]}
    with pytest.raises(errors.ExtensionError, match="cdn.example/lib.js"):
        _load("offline_mathjax").drop_thebe_and_check_remote(None, "chapter", "page.html", context, None)


def test_mathjax_comes_from_the_pinned_npm_package():
    json = pytest.importorskip("json")
    package = json.loads((ROOT / "book" / "mathjax" / "package.json").read_text())
    lock = json.loads((ROOT / "book" / "mathjax" / "package-lock.json").read_text())
    version = package["dependencies"]["mathjax"]
    assert version.count(".") == 2 and version[0].isdigit(), "pin an exact MathJax version"
    assert lock["packages"]["node_modules/mathjax"]["version"] == version
    assert lock["packages"]["node_modules/mathjax"]["integrity"].startswith("sha512-")


def test_a_missing_npm_is_reported_with_the_fix(tmp_path, monkeypatch):
    errors = pytest.importorskip("sphinx.errors")
    module = _load("offline_mathjax")
    monkeypatch.setattr(module.shutil, "which", lambda name: None)
    with pytest.raises(errors.ExtensionError, match="apt-get install npm"):
        module.ensure_mathjax(tmp_path / "mathjax")


def test_an_installed_mathjax_is_reused(tmp_path):
    module = _load("offline_mathjax")
    target = tmp_path / "mathjax"
    es5 = module.mathjax_es5(target)
    es5.mkdir(parents=True)
    (es5 / "tex-chtml.js").write_text("// MathJax")
    (target / "package-lock.json").write_bytes((module.PACKAGE_DIR / "package-lock.json").read_bytes())
    assert module.ensure_mathjax(target, npm="/nonexistent/npm") == es5     # no install attempted


def _solution_doctree():
    """A section as myst-nb and sphinx-design leave it before their HTML transforms: a question,
    a "Solution" dropdown, two solution code cells, a check cell, then a solution cell after a paragraph."""
    from docutils import nodes
    from docutils.utils import new_document

    doc = new_document("test")
    section = nodes.section()
    doc += section
    section += nodes.paragraph(text="Exercise 1")
    dropdown = nodes.container(design_component="dropdown", has_title=True, opened=False)
    dropdown += nodes.rubric("Solution", "Solution")
    dropdown += nodes.paragraph(text="the answer in words")
    section += dropdown

    def cell(tag):
        c = nodes.container(nb_element="cell_code", classes=["cell", f"tag_{tag}"])
        c += nodes.container(nb_element="cell_code_source", classes=["cell_input"])
        c += nodes.container(nb_element="cell_code_output", classes=["cell_output"])
        return c

    section += [cell("solution"), cell("solution"), cell("check")]
    section += nodes.paragraph(text="Exercise 2")
    section += cell("solution")
    return doc, section, dropdown


def test_solution_cells_move_into_their_dropdown_or_are_hidden_whole():
    doc, section, dropdown = _solution_doctree()
    moved, hidden = _load("solutions").fold_solutions(doc)
    assert (moved, hidden) == (2, 1)
    inside = [c for c in dropdown.children if c.get("nb_element") == "cell_code"]
    assert len(inside) == 2 and all("tag_solution" in c["classes"] for c in inside)
    left = [c for c in section.children if c.get("nb_element") == "cell_code"]
    assert ["tag_check" in left[0]["classes"], "tag_solution" in left[1]["classes"]] == [True, True]
    assert left[1]["hide_mode"] == "all" and left[1]["prompt_show"] == "Show the solution"
    assert "hide_mode" not in left[0]                                  # the check stays in view


def test_a_dropdown_with_another_title_keeps_its_neighbours():
    from docutils import nodes

    doc, section, dropdown = _solution_doctree()
    dropdown.children[0].replace_self(nodes.rubric("Hint", "Hint"))
    moved, hidden = _load("solutions").fold_solutions(doc)
    assert (moved, hidden) == (0, 3)
