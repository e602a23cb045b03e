"""environment.yml (GPU users), pyproject.toml (CPU .venv) and the lock constraints.txt agree on
packages and pins, and every install goes through the lock."""
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


def _environment_pip_lines() -> list[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    return next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)


def _lock() -> dict[str, str]:
    """constraints.txt as {normalised name: version}; every line must be an exact pin."""
    out = {}
    for n, line in enumerate((ROOT / "constraints.txt").read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][A-Za-z0-9.]*)", line)
        assert m, f"constraints.txt:{n}: {line!r} is not a plain 'name==version' pin (no ranges, URLs or +local labels)"
        assert _norm(m[1]) not in out, f"constraints.txt:{n}: {m[1]} is pinned twice"
        out[_norm(m[1])] = m[2]
    return out


def _environment_pip_requirements() -> dict[str, Requirement]:
    out = {}
    for line in _environment_pip_lines():
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


def test_every_package_the_project_names_is_locked_within_its_range():
    """constraints.txt holds an exact release of every package pyproject.toml names (the GPU kernels,
    which the CPU lock cannot install, excepted), inside pyproject's range."""
    lock = _lock()
    gpu = {_norm(Requirement(r).name) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())
           ["project"]["optional-dependencies"]["gpu"]}
    for name, req in sorted(_pyproject_requirements().items()):
        if name in gpu:
            assert name not in lock, f"{name} is built per GPU (make gpu-setup); keep it out of constraints.txt"
            continue
        assert name in lock, f"{name} is not in constraints.txt: run `make lock` (Makefile) and commit the result"
        assert req.specifier.contains(lock[name], prereleases=True), \
            f"constraints.txt pins {name}=={lock[name]}, outside pyproject.toml's {req.specifier}"
    assert lock["torch"] == "2.13.0"


def test_environment_yml_installs_through_the_lock():
    lines = [line.split("#")[0].strip() for line in _environment_pip_lines()]
    assert "-c constraints.txt" in lines, "environment.yml's pip section must start from '-c constraints.txt'"
    lock = _lock()
    for name, req in _environment_pip_requirements().items():
        pins = [s.version for s in req.specifier if s.operator == "=="]
        if pins and name in lock:
            assert pins == [lock[name]], f"{name}: environment.yml pins {pins[0]}, constraints.txt {lock[name]}"


def test_make_venv_installs_through_the_lock():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^LOCK\s*:=\s*constraints\.txt$", makefile, re.M)
    recipe = makefile[makefile.index("$(STAMP):"):makefile.index("venv: $(STAMP)")]
    installs = [line for line in recipe.splitlines() if "pip install" in line]
    assert installs and all("-c $(LOCK)" in line for line in installs), \
        f"every pip install of `make venv` must pass -c $(LOCK): {installs}"
    assert re.search(r"^\$\(STAMP\):.*\$\(LOCK\)", makefile, re.M), "the .venv must be rebuilt when the lock changes"
    assert re.search(r"^lock:", makefile, re.M), "`make lock` refreshes constraints.txt"
