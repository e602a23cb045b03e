"""The one exception type for mistakes in the user's input.

A :class:`UserError` is printed by the ``survmamba`` command line as one line on stderr
(``survmamba COMMAND: error: MESSAGE``) with exit code 2 and no traceback. Its message
names the file, flag, case or fold at fault and says how to fix it. Library functions
raise ``ValueError`` or ``FileNotFoundError`` with messages of the same kind; the command
line treats those alike.

>>> str(UserError("--out runs/a: folder is not empty; choose a new --out"))
'--out runs/a: folder is not empty; choose a new --out'
"""
from __future__ import annotations

__all__ = ["UserError"]


class UserError(ValueError):
    """An error caused by the user's input; printed without a traceback.

    A ``ValueError`` (a value the user gave is wrong), so code that catches
    ``ValueError`` from the library keeps working.
    """
