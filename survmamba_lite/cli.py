"""The ``survmamba`` command line: a thin front over the functions the notebooks use.

Each subsystem registers its own sub-commands through an ``add_commands(subparsers)``
function in its ``cli`` module; this file only gathers them.
"""
from __future__ import annotations

import argparse
import importlib
import sys

#: modules that contribute sub-commands, in the order ``survmamba --help`` lists them
COMMAND_MODULES = (
    "survmamba_lite.data.cli",
    "survmamba_lite.data.wsi.cli",
    "survmamba_lite.experiment.cli",
)


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="survmamba",
        description="SurvMamba companion: data preparation, training and reports.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            # that subsystem (or its package) is not part of this installation
            if err.name == name or name.startswith(f"{err.name}."):
                continue
            raise
        module.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except (UserError, FileNotFoundError, ValueError) as err:
        print(f"survmamba {args.command}: error: {err}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
