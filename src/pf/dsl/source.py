"""Source text and Span: where in which file a piece of a Pfyfile sits.

Owns position bookkeeping only; imports nothing outside pf.dsl. Lines and columns are
1-based and count characters (a tab is one column; the renderer expands it).
"""

from __future__ import annotations

from pf.dsl._record import Record, fields, new


class Source:
    """The text of one Pfyfile and its path, with line lookup for error rendering."""

    __slots__ = ("_starts", "path", "text")

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text
        self._starts: list[int] | None = None

    def line_text(self, line: int) -> str:
        """Physical line ``line`` (1-based) without its newline; "" past the end."""
        starts = self._starts
        if starts is None:
            # Computed only when an error is rendered: parsing never needs it.
            starts = [0]
            text = self.text
            at = text.find("\n")
            while at != -1:
                starts.append(at + 1)
                at = text.find("\n", at + 1)
            self._starts = starts
        if line < 1 or line > len(starts):
            return ""
        begin = starts[line - 1]
        end = starts[line] - 1 if line < len(starts) else len(self.text)
        return self.text[begin:end].rstrip("\r")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Source):
            return NotImplemented
        return self is other or (self.path == other.path and self.text == other.text)

    def __hash__(self) -> int:
        return hash(self.path)

    def __repr__(self) -> str:
        return f"Source({self.path!r})"


class Span(Record):
    """A run of characters in a Source: ``line``/``col`` 1-based, ``offset`` 0-based, ``length``.

    A span never crosses a newline: a token continued with ``\\`` onto the next line
    is clipped to its first line, which is where the caret goes.
    """

    __slots__ = ()
    source: Source
    line: int
    col: int
    offset: int
    length: int

    def __new__(cls, source: Source, line: int, col: int, offset: int, length: int) -> Span:
        return new(cls, (source, line, col, offset, length))

    @property
    def path(self) -> str:
        """Path of the file this span points into."""
        return self.source.path

    def __repr__(self) -> str:
        return f"Span({self.source.path}:{self.line}:{self.col}+{self.length})"

    def __str__(self) -> str:
        return f"{self.source.path}:{self.line}:{self.col}"


fields(Span, "source", "line", "col", "offset", "length")
