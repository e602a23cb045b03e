"""The book's local Sphinx extension (book/_ext/dedupe_scripts.py)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

sphinx_assets = pytest.importorskip("sphinx.builders.html._assets")
ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("dedupe_scripts", ROOT / "book" / "_ext" / "dedupe_scripts.py")
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
    assert config["sphinx"]["local_extensions"] == {"dedupe_scripts": "book/_ext"}
