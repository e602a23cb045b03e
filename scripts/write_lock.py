"""Write constraints.txt, the exact versions every install of the project uses (`make lock`).

Usage: ``python scripts/write_lock.py VENV_PYTHON OUT``. Reads what is installed in the
environment of ``VENV_PYTHON`` (``pip freeze --all``, the project itself left out) and writes
one ``name==version`` line per package, sorted, under a header that says when, with which
Python and on which platform it was resolved. Local version labels are dropped (``torch``'s
CPU build reports ``2.13.0+cpu``; ``torch==2.13.0`` admits it and the CUDA build alike, so
the same lock serves the CPU ``.venv`` and the GPU ``environment.yml``). A requirement that
is not a plain release from a package index (a path or URL) is refused: a lock must be
installable from PyPI alone.
"""
from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

PROJECT = "survmamba-lite"


def frozen(python: str) -> list[str]:
    out = subprocess.run([python, "-m", "pip", "freeze", "--all", "--exclude-editable"],
                         check=True, capture_output=True, text=True).stdout
    lines = []
    for line in out.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        if not sep or "@" in line or "://" in line:
            raise SystemExit(f"write_lock.py: {line!r} is not a release from a package index; "
                             "install it from PyPI before locking")
        if re.sub(r"[-_.]+", "-", name).lower() == PROJECT:
            continue
        lines.append(f"{name}=={version.split('+')[0]}")
    return sorted(lines, key=str.lower)


def describe(python: str) -> str:
    return subprocess.run([python, "-c", "import platform, sys; print(sys.version.split()[0], platform.machine(),"
                           " platform.system())"], check=True, capture_output=True, text=True).stdout.strip()


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit("usage: python scripts/write_lock.py VENV_PYTHON OUT")
    python, out = argv
    header = [
        "# Exact versions of every package the project installs: pip constraints used by `make venv`",
        "# (so `make test` and `make book`) and by environment.yml. Refresh on purpose with `make lock`,",
        "# then run `make test` on a fresh .venv before committing it.",
        f"# Resolved {dt.date.today().isoformat()} with Python {describe(python)} from pyproject.toml.",
    ]
    Path(out).write_text("\n".join(header + frozen(python)) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
