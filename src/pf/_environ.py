"""The process environment as pf's start path sees it, without loading Settings.

:mod:`pf.config` owns every setting, but importing it costs 20-40 ms (dataclasses,
typing, pathlib): more than ``pf list`` may take in all (issue 3: <= 60 ms and
<= 2.5x a bare interpreter). So the two things the task runner needs before it knows
whether anything will run are read here instead: the Pfyfile named by ``PFY_FILE``
(the variable ``Settings.pfy_file`` reads too, for code that has Settings) and the
environment tasks inherit at the lowest precedence. Imports nothing from pf.
"""

from __future__ import annotations

import os

#: The variable naming the Pfyfile to use instead of searching (as in the original pf).
PFY_FILE = "PFY_FILE"


def pfy_file() -> str | None:
    """The path ``PFY_FILE`` names, or None when it is unset or empty."""
    return os.environ.get(PFY_FILE) or None


def environ() -> dict[str, str]:
    """A copy of the process environment: the bottom layer of every task's values."""
    return dict(os.environ)
