"""Render a DslError as just and rustc do: message, location, source line, carets, hint.

Owns the text layout of DSL errors only; the CLI decides where it goes and
whether to colour it. Imports nothing outside pf.dsl.

    error: `include` is only allowed at the top level, not inside task `build`
     --> Pfyfile.pf:3:3
      |
    3 |   include other.pf
      |   ^^^^^^^
      = hint: move it above or below the task
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from pf.dsl.errors import DslError
    from pf.dsl.source import Span

TAB_WIDTH = 4

_RED = "\x1b[1;31m"
_YELLOW = "\x1b[1;33m"
_BLUE = "\x1b[1;34m"
_CYAN = "\x1b[1;36m"
_BOLD = "\x1b[1m"
_RESET = "\x1b[0m"


def _expand(text: str) -> str:
    # Tabs go to the next multiple of TAB_WIDTH so carets stay under the token.
    if "\t" not in text:
        return text
    out: list[str] = []
    width = 0
    for c in text:
        if c == "\t":
            pad = TAB_WIDTH - width % TAB_WIDTH
            out.append(" " * pad)
            width += pad
        else:
            out.append(c)
            width += 1
    return "".join(out)


def _snippet(span: Span, width: int, paint: dict[str, str]) -> list[str]:
    blue, red, reset = paint["blue"], paint["red"], paint["reset"]
    pad = " " * width
    line = span.source.line_text(span.line)
    start = min(max(span.col - 1, 0), len(line))
    end = min(start + max(span.length, 1), len(line))
    before = _expand(line[:start])
    # A span at the end of the line (a missing word) still gets one caret.
    carets = max(len(_expand(line[:end])) - len(before), 1)
    return [
        f"{pad}{blue}-->{reset} {span.path}:{span.line}:{span.col}",
        f"{pad} {blue}|{reset}",
        f"{blue}{span.line:>{width}} |{reset} {_expand(line)}",
        f"{pad} {blue}|{reset} {' ' * len(before)}{red}{'^' * carets}{reset}",
    ]


def render(error: DslError, colour: bool = False) -> str:
    """The error as a block of text (no trailing newline), with ANSI colour if asked."""
    paint = (
        {"red": _RED, "blue": _BLUE, "cyan": _CYAN, "bold": _BOLD, "reset": _RESET}
        if colour
        else dict.fromkeys(("red", "blue", "cyan", "bold", "reset"), "")
    )
    red, bold, reset = paint["red"], paint["bold"], paint["reset"]
    if error.severity == "warning":
        # The carets under a warning take its colour too.
        paint["red"] = red = _YELLOW if colour else ""
    lines = [f"{red}{error.severity}{reset}{bold}: {error.message}{reset}"]
    spans = [s for s in (error.span, *error.related) if s is not None]
    width = max((len(str(s.line)) for s in spans), default=1)
    if error.span is not None:
        lines += _snippet(error.span, width, paint)
    for span in error.related:
        lines.append(f"{paint['cyan']}note{reset}: {error.related_label}")
        lines += _snippet(span, width, paint)
    if error.hint:
        lines.append(f"{' ' * width} {paint['blue']}={reset} {bold}hint{reset}: {error.hint}")
    return "\n".join(lines)
