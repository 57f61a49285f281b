"""pf.dsl: Pfyfile text -> resolved model, with errors that point at file:line:col.

Phases, one module each: :mod:`~pf.dsl.source` (Source, Span),
:mod:`~pf.dsl.lexer` (logical lines, words), :mod:`~pf.dsl.parser` (one file ->
:mod:`~pf.dsl.ast`), :mod:`~pf.dsl.analyzer` (includes, groups, names, cycles ->
:mod:`~pf.dsl.model`), plus :mod:`~pf.dsl.errors` (DslError and its one table
of wording), :mod:`~pf.dsl.render`, :mod:`~pf.dsl.suggest` and
:mod:`~pf.dsl.interpolate`. Imports only pf.errors from the rest of pf and
nothing of processes; start-up cost is kept small because ``pf list`` pays it.
"""

from __future__ import annotations

import os

from pf.dsl.analyzer import analyze as _analyze
from pf.dsl.ast import (
    Env,
    For,
    If,
    Meta,
    Param,
    Shell,
    ShellLang,
    Statement,
    Test,
    Unrunnable,
    Value,
    Verb,
)
from pf.dsl.dump import dump
from pf.dsl.errors import DslError, DslWarning
from pf.dsl.interpolate import interpolate
from pf.dsl.model import Pfyfile, Task, TaskKey, display_name
from pf.dsl.render import render
from pf.dsl.source import Source, Span
from pf.dsl.suggest import suggest
from pf.dsl.verbs import TASK_VERBS


def parse_file(
    path: str | os.PathLike[str], *, siblings: bool = True, keep_going: bool = False
) -> Pfyfile:
    """Read the Pfyfile at ``path`` with its includes and group files, resolved.

    ``siblings`` also loads the ``Pfyfile.<group>.pf`` files beside it as groups;
    a group file that cannot be loaded is left out, its error in
    ``Pfyfile.errors``. ``keep_going`` leaves out a main file that cannot be
    parsed the same way, so that its groups still load. Raises :class:`DslError`
    for anything else wrong (an unreadable main file, a name clash or a cycle
    across files). Tolerated constructs are in ``Pfyfile.warnings``.
    """
    return _analyze(os.fspath(path), None, siblings=siblings, keep_going=keep_going)


def parse_text(
    text: str, path: str | os.PathLike[str] = "Pfyfile.pf", *, siblings: bool = False
) -> Pfyfile:
    """Like :func:`parse_file` for ``text`` given as the contents of ``path``.

    Includes are still read from disk, relative to ``path``; sibling group files
    are not looked for unless ``siblings`` is true.
    """
    return _analyze(os.fspath(path), text, siblings=siblings)


__all__ = [
    "TASK_VERBS",
    "DslError",
    "DslWarning",
    "Env",
    "For",
    "If",
    "Meta",
    "Param",
    "Pfyfile",
    "Shell",
    "ShellLang",
    "Source",
    "Span",
    "Statement",
    "Task",
    "TaskKey",
    "Test",
    "Unrunnable",
    "Value",
    "Verb",
    "display_name",
    "dump",
    "interpolate",
    "parse_file",
    "parse_text",
    "render",
    "suggest",
]
