"""Sphinx extension: the book's mathematics and scripts served by the book itself.

* MathJax comes from the npm package ``mathjax`` at the version pinned in
  ``book/mathjax/package.json`` (with its ``package-lock.json``). The first build installs
  it with ``npm ci`` into ``_build/mathjax/`` (later builds reuse it while the lock file is
  unchanged); its ``es5/`` folder is copied into the site as ``_static/mathjax/`` and
  ``mathjax_path`` points there, so equations render without the internet.
* Jupyter Book adds sphinx-thebe to every book; its scripts point at a CDN although no page
  of this book uses live code. ``html-page-context`` drops every script and style sheet
  whose name or inline code mentions thebe (and ``doctree-resolved`` the thebe configuration
  block it appends to each page), and fails the build if a page would still load a script or
  style sheet from another site.

Needs Node.js's ``npm`` (Debian: ``apt-get install npm``) at the first build.
"""
from __future__ import annotations

import filecmp
import shutil
import subprocess
from pathlib import Path
from typing import Any

from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
PACKAGE_DIR = HERE.parent / "mathjax"            # package.json + package-lock.json
MATHJAX_URL_PATH = "mathjax/tex-chtml.js"        # relative to _static/


def install_dir(srcdir: Path) -> Path:
    """Where ``npm ci`` installs MathJax: ``<book root>/_build/mathjax``."""
    return Path(srcdir) / "_build" / "mathjax"


def mathjax_es5(target: Path) -> Path:
    return target / "node_modules" / "mathjax" / "es5"


def ensure_mathjax(target: Path, npm: str | None = None) -> Path:
    """Install the pinned MathJax into `target` unless it is there from the same lock file.

    Returns the package's ``es5`` folder. Raises ExtensionError naming the fix when npm
    is missing or the install fails.
    """
    lock = PACKAGE_DIR / "package-lock.json"
    es5 = mathjax_es5(target)
    installed_lock = target / "package-lock.json"
    if (es5 / "tex-chtml.js").is_file() and installed_lock.is_file() and filecmp.cmp(lock, installed_lock, shallow=False):
        return es5
    npm = npm or shutil.which("npm")
    if npm is None:
        raise ExtensionError("the book serves MathJax itself and installs it with npm, which is missing: "
                             "install Node.js and npm (Debian: apt-get install npm), then build again")
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy2(PACKAGE_DIR / name, target / name)
    logger.info(f"installing MathJax from {PACKAGE_DIR / 'package.json'} into {target} (npm ci)")
    proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=target,
                          capture_output=True, text=True)
    if proc.returncode != 0 or not (es5 / "tex-chtml.js").is_file():
        raise ExtensionError(f"`npm ci` in {target} failed (exit {proc.returncode}); the book needs the npm "
                             f"package mathjax pinned in {PACKAGE_DIR}: {proc.stderr[-1500:]}")
    return es5


def _config_inited(app, config) -> None:
    if config.mathjax_path and "://" in config.mathjax_path:
        logger.info(f"mathjax_path {config.mathjax_path} replaced by the book's own copy")
    config.mathjax_path = MATHJAX_URL_PATH


def _builder_inited(app) -> None:
    if app.builder.format != "html":
        return
    app.env.offline_mathjax_es5 = str(ensure_mathjax(install_dir(app.srcdir)))


def _build_finished(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    es5 = Path(getattr(app.env, "offline_mathjax_es5", "") or mathjax_es5(install_dir(app.srcdir)))
    dest = Path(app.outdir) / "_static" / "mathjax"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(es5, dest)
    licence = es5.parent / "LICENSE"
    if licence.is_file():
        shutil.copy2(licence, dest / "LICENSE")


def _asset_text(asset: Any) -> str:
    filename = getattr(asset, "filename", asset) or ""
    attributes = getattr(asset, "attributes", {}) or {}
    return " ".join([str(filename), *(str(v) for v in attributes.values())])


def is_remote(asset: Any) -> bool:
    filename = str(getattr(asset, "filename", asset) or "")
    return "://" in filename or filename.startswith("//")


def drop_thebe_and_check_remote(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Drop thebe's scripts and style sheets; fail on any other asset loaded from another site."""
    for key in ("script_files", "css_files"):
        assets = context.get(key)
        if not assets:
            continue
        kept = [a for a in assets if "thebe" not in _asset_text(a).lower()]
        remote = [str(getattr(a, "filename", a)) for a in kept if is_remote(a)]
        if remote:
            raise ExtensionError(f"page {pagename} would load {remote} from another site; the book must work "
                                 "offline: serve the file from the book instead")
        context[key] = kept


def drop_thebe_nodes(app, doctree, docname: str) -> None:
    """Remove the ``text/x-thebe-config`` block and ``kernelName`` script sphinx-thebe appends to pages."""
    from docutils import nodes
    for node in list(doctree.findall(nodes.raw)):
        text = node.astext()
        if "x-thebe-config" in text or "kernelName =" in text:
            node.parent.remove(node)


def setup(app) -> dict:
    app.connect("doctree-resolved", drop_thebe_nodes, priority=900)
    app.connect("config-inited", _config_inited, priority=900)
    app.connect("builder-inited", _builder_inited)
    app.connect("html-page-context", drop_thebe_and_check_remote, priority=800)
    app.connect("build-finished", _build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
