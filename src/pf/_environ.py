"""The process environment as pf's start path sees it, without loading Settings.

:mod:`pf.config` owns every setting, but importing it costs 20-40 ms (dataclasses,
typing, pathlib): more than ``pf list`` may take in all (its budget: <= 60 ms and
<= 2.5x a bare interpreter). So the two things the task runner needs before it knows
whether anything will run are read here instead: the Pfyfile named by ``PFY_FILE``
(the variable ``Settings.pfy_file`` reads too, for code that has Settings) and the
environment tasks inherit at the lowest precedence. Imports nothing from pf.
"""

from __future__ import annotations

import os
import sys

#: The variable naming the Pfyfile to use instead of searching (as in the original pf).
PFY_FILE = "PFY_FILE"


def pfy_file() -> str | None:
    """The path ``PFY_FILE`` names, or None when it is unset or empty."""
    return os.environ.get(PFY_FILE) or None


def environ() -> dict[str, str]:
    """A copy of the process environment: the bottom layer of every task's values.

    The directory of the running pf's interpreter leads PATH, so a task that calls ``pf``
    (``pf serve`` in web-dev) gets this pf, as make's ``$(MAKE)`` is the running make,
    even when pf was started by path from a virtualenv that is not on PATH.
    """
    env = dict(os.environ)
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = os.pathsep.join(p for p in (bindir, env.get("PATH")) if p)
    return env
