"""The ``survmamba`` command line: a thin front over the functions the notebooks use.

Each subsystem registers its own sub-commands through an ``add_commands(subparsers)``
function in its ``cli`` module; this file imports those modules by name (:data:`COMMAND_MODULES`,
so a missing one fails at once and the import graph shows the front door), gathers their
commands and holds the one error boundary of the command line (:func:`main`):

* every failure is one message on stderr, ``survmamba COMMAND: error: ...``, naming the
  file, flag, case or fold at fault and the fix, and exit code 2 (argparse's own usage
  errors also exit 2);
* Ctrl-C exits with 130 and "rerun the same command to resume" (outputs are written
  atomically, so nothing half-written is left);
* a warning is one line too (``survmamba COMMAND: warning: ...``, without Python's source line);
* ``--debug`` (anywhere on the line) lets the exception through, with its traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from survmamba_lite.data import cli as data_cli
from survmamba_lite.data.wsi import cli as wsi_cli
from survmamba_lite.errors import UserError
from survmamba_lite.experiment import cli as experiment_cli
from survmamba_lite.interpret import cli as interpret_cli
from survmamba_lite.realdata import command as realdata_command
from survmamba_lite.utils.io import full_disk_advice
from survmamba_lite.version import __version__

__all__ = ["main", "build_parser", "describe_error", "UserError", "EXIT_ERROR", "EXIT_INTERRUPTED"]

#: modules that contribute sub-commands, in the order ``survmamba --help`` lists them
COMMAND_MODULES = (data_cli, wsi_cli, experiment_cli, realdata_command, interpret_cli)
EXIT_ERROR, EXIT_INTERRUPTED = 2, 130
_POSITIONALS = {"dir": "the cohort folder argument", "runs": "a RUN_DIR argument", "slides": "a SLIDE argument",
                "coords": "a COORDS_H5 argument"}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every option's default; keeps the descriptions' line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_ = action.help or ""
        if action.default in (None, False, [], argparse.SUPPRESS) or "%(default)" in help_:
            return help_
        return super()._get_help_string(action)


class _SubParser(argparse.ArgumentParser):
    """Every sub-command parser shows defaults (one formatter for the whole command line)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="survmamba", formatter_class=HelpFormatter,
        description="SurvMamba companion: data preparation, training and reports.",
        epilog="Every command refuses bad input with one line on stderr and exit code 2; "
               "Ctrl-C exits with 130 (rerun the same command to resume).")
    parser.add_argument("--version", action="version", version=f"survmamba {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (may also follow the command's options)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_SubParser)
    sub.required = True
    for module in COMMAND_MODULES:
        module.add_commands(sub)
    return parser


# --------------------------------------------------------------------------- error messages
def _flag_of(path: str, args: argparse.Namespace | None) -> str:
    """`` (--out)`` when ``path`` is, or lies under, the value of an option of ``args``."""
    if args is None or not path:
        return ""
    target = os.path.abspath(path)
    best = ("", -1)
    for name, value in vars(args).items():
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if not isinstance(v, (str, Path)) or not str(v):
                continue
            given = os.path.abspath(str(v))
            if (target == given or target.startswith(given.rstrip(os.sep) + os.sep)) and len(given) > best[1]:
                best = (name, len(given))
    name = best[0]
    if not name:
        return ""
    if name in _POSITIONALS:
        return f" (given as {_POSITIONALS[name]})"
    return f" (given as --{name.replace('_', '-')})"


def describe_error(err: BaseException, args: argparse.Namespace | None = None) -> str:
    """The one-line (for validation reports: first-line-first) message of an error."""
    if isinstance(err, OSError) and not isinstance(err, UserError) and (err.filename or err.errno):
        path = str(err.filename or "")
        where = f"{path}{_flag_of(path, args)}: " if path else ""
        if isinstance(err, FileNotFoundError):
            text = str(err)
            if path and text.startswith(path):       # our own messages already name the file and the fix
                return text
            return f"{where}no such file or folder; check the path"
        if isinstance(err, PermissionError):
            return f"{where}permission denied; choose a path you may write to (or fix its permissions)"
        if isinstance(err, NotADirectoryError):
            return f"{where}a part of this path is a file, not a folder; choose another path"
        if isinstance(err, IsADirectoryError):
            return f"{where}is a folder where a file was expected; give a file name"
        advice = full_disk_advice(err)
        if advice:
            return f"{where}{advice}"
        return f"{where}{err.strerror or err}"
    if isinstance(err, (UserError, ValueError, FileNotFoundError)):
        return str(err)
    return (f"unexpected {type(err).__name__}: {err}. This is a bug or an input survmamba does not check yet; "
            "rerun with --debug for the traceback and report it")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    args = parser.parse_args(argv)
    shown = warnings.showwarning
    if not debug:                                     # a warning is one line too, without its source line
        warnings.showwarning = lambda message, category, *_, **__: print(
            f"survmamba {args.command}: warning: {message}", file=sys.stderr)
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"survmamba {args.command}: interrupted (Ctrl-C); rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:                          # the one error boundary of the command line
        if debug:
            raise
        print(f"survmamba {args.command}: error: {describe_error(err, args)}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        warnings.showwarning = shown
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
