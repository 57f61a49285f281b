"""Terminal output: colour when writing to a terminal, plain text otherwise."""

from __future__ import annotations

import os
import sys

from pf.errors import CompileFailed, PfError

TYPE_CHECKING = False  # `typing` costs 13 ms at start-up; names for the type checker only
if TYPE_CHECKING:
    from typing import TextIO

_CODES = {"red": "31", "yellow": "33", "green": "32", "cyan": "36", "bold": "1", "dim": "2"}


def _colour_enabled(stream: TextIO) -> bool:
    # NO_COLOR (no-color.org) wins; otherwise colour only on a terminal.
    return "NO_COLOR" not in os.environ and stream.isatty()


def style(text: str, colour: str, stream: TextIO = sys.stdout) -> str:
    if not _colour_enabled(stream):
        return text
    return f"\x1b[{_CODES[colour]}m{text}\x1b[0m"


def show_error(error: PfError, stream: TextIO = sys.stderr) -> None:
    """Render a PfError for a person: message, diagnostics or compiler output, hint.

    A Pfyfile error is rendered with its source line and a caret (pf.dsl.render).
    """
    from pf.dsl.errors import DslError  # cheap: pf.dsl.errors imports only pf.errors

    if isinstance(error, DslError):
        from pf.dsl.render import render

        print(render(error, _colour_enabled(stream)), file=stream)
        return
    print(f"{style('error', 'red', stream)}: {error.message}", file=stream)
    if isinstance(error, CompileFailed):
        for diagnostic in error.diagnostics:
            colour = "red" if diagnostic.severity == "error" else "yellow"
            print(f"  {style(str(diagnostic), colour, stream)}", file=stream)
        if not error.diagnostics and error.log:
            for line in error.log.splitlines():
                print(f"  {line}", file=stream)
    if error.hint:
        print(f"{style('hint', 'cyan', stream)}: {error.hint}", file=stream)
