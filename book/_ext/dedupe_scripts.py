"""Sphinx extension: write each ``<script>`` of a page once.

Jupyter Book 1.x registers some extensions' inline scripts twice (sphinx-thebe's
``const THEBE_JS_URL = ...`` among them); the second ``const`` declaration throws a
``SyntaxError`` in the browser on every page. This drops repeated scripts, keeping the
first copy, compared by source file and attributes (inline code included); an inline
script's missing file name is ``None`` or ``""`` depending on how it was registered.
"""
from __future__ import annotations

from typing import Any


def _key(script: Any) -> tuple:
    filename = getattr(script, "filename", script)
    attributes = getattr(script, "attributes", {}) or {}
    # an inline script is registered with filename None by one path and "" by another
    return (str(filename) if filename else "", tuple(sorted((k, str(v)) for k, v in attributes.items())))


def dedupe_scripts(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def setup(app) -> dict:
    app.connect("html-page-context", dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
