"""environment.yml (GPU users) and pyproject.toml (CPU .venv) agree on packages and pins."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject_requirements() -> dict[str, Requirement]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"])
    for extra in meta.get("optional-dependencies", {}).values():
        reqs += extra
    return {_norm(Requirement(r).name): Requirement(r) for r in reqs}


def _environment_pip_requirements() -> dict[str, Requirement]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    out = {}
    for line in pip:
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            r = Requirement(line)
            out[_norm(r.name)] = r
    return out


def test_every_pyproject_package_is_in_environment_yml():
    py, env = _pyproject_requirements(), _environment_pip_requirements()
    missing = sorted(set(py) - set(env))
    assert not missing, f"add to environment.yml's pip section: {missing}"
    extra = sorted(set(env) - set(py))
    assert not extra, f"environment.yml names packages pyproject.toml does not: {extra}"


def test_pins_agree_where_both_pin():
    py, env = _pyproject_requirements(), _environment_pip_requirements()
    for name in sorted(set(py) & set(env)):
        a, b = str(py[name].specifier), str(env[name].specifier)
        if "==" in a or "==" in b:
            assert a == b, f"{name}: pyproject.toml says {a!r}, environment.yml says {b!r}"


def test_torch_is_pinned_exactly():
    assert str(_pyproject_requirements()["torch"].specifier) == "==2.13.0"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make book" in readme
    assert re.search(r"^make test$", ci, re.M), ".ci/run must call exactly the README's test command"
