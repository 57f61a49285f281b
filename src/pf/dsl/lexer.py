"""Logical lines and words: the lexical layer of the Pfyfile language.

Owns comment skipping, ``\\`` line continuation, and splitting a line into words
(quotes, escapes, ``key=value``, ``[a, b]`` lists) with exact positions.

Strategy: the Pfyfile language is line-oriented (one verb per line, ``shell``
takes the raw rest of its line), so the lexer hands the parser *logical lines*
rather than a token stream. A continued line is joined just's way — the
backslash, the newline and the next line's leading blanks are removed — and
keeps a segment map so that every position in the joined text maps back to its
physical line and column. The :class:`Reader` is a cursor that *is* the current
line, so thousands of lines cost no object each. Words are only cut where the
parser asks (never for ``shell``), with a fast path for lines without quotes,
escapes or brackets, which is nearly every line of a real Pfyfile.
"""

from __future__ import annotations

import itertools

from pf.dsl._record import new
from pf.dsl.errors import DslError, DslWarning
from pf.dsl.source import Source, Span

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterator


class Line:
    """One logical line: ``text`` (continuations joined) and where each part came from.

    ``verb`` is its first word, from ``start`` to ``verb_end``; ``rest`` is where
    the text after the verb begins and ``end`` where trailing blanks begin.
    ``segments`` is None for a single physical line, else a list of ``(text
    index, line, file offset, column index)`` where each physical line's part
    begins. Lines and words are plain slotted objects, not records: a Pfyfile has
    thousands of them, built once and read field by field, which slots do several
    times faster than tuple subclasses on CPython 3.11.
    """

    __slots__ = ("end", "lineno", "offset", "rest", "segments", "source", "start", "text", "verb")

    def __init__(
        self,
        source: Source,
        text: str,
        lineno: int,
        offset: int,
        segments: list[tuple[int, int, int, int]] | None,
        start: int,
        verb: str,
        rest: int,
        end: int,
    ) -> None:
        self.source = source
        self.text = text
        self.lineno = lineno
        self.offset = offset
        self.segments = segments
        self.start = start
        self.verb = verb
        self.rest = rest
        self.end = end

    def _key(self) -> tuple[object, ...]:
        return (self.source, self.text, self.lineno, self.offset, self.segments)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Line) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key()[1:4])

    def __repr__(self) -> str:
        return f"Line({self.source.path}:{self.lineno}: {self.text!r})"

    @property
    def verb_end(self) -> int:
        return self.start + len(self.verb)

    def span(self, start: int, end: int) -> Span:
        """The span of ``text[start:end]``, clipped to the physical line where it starts."""
        segments = self.segments
        if segments is None:
            return new(
                Span, (self.source, self.lineno, start + 1, self.offset + start, end - start)
            )
        k = len(segments) - 1
        while k > 0 and segments[k][0] > start:
            k -= 1
        at, lineno, offset, col = segments[k]
        limit = segments[k + 1][0] if k + 1 < len(segments) else len(self.text)
        return new(
            Span,
            (
                self.source,
                lineno,
                col + start - at + 1,
                offset + start - at,
                max(min(end, limit) - start, 0),
            ),
        )

    def verb_span(self) -> Span:
        """The span of the verb."""
        return self.span(self.start, self.start + len(self.verb))

    def statement_span(self) -> Span:
        """From the verb to the end of the text (clipped to the first physical line)."""
        return self.span(self.start, self.end)


class Reader(Line):
    """Reads logical lines (comments and blanks skipped) and raw lines (heredocs).

    The reader is a cursor: it *is* the current logical line, so reading one
    allocates nothing (a Pfyfile has thousands and the parser keeps almost none).
    :meth:`advance` moves to the next line and returns its verb; :meth:`line`
    copies the current line for a node that keeps it; :meth:`next` does both.
    """

    __slots__ = ("_lines", "_offset", "warnings")

    def __init__(self, source: Source, warnings: list[DslError] | None = None) -> None:
        super().__init__(source, "", 0, 0, None, 0, "", 0, 0)
        #: Where a comment line inside a ``\\`` continuation was dropped.
        self.warnings: list[DslError] = [] if warnings is None else warnings
        # One iterator of (line number, text) for the whole file: advancing it costs
        # no index bookkeeping, and enumerate reuses its pair when nobody keeps it.
        self._lines: Iterator[tuple[int, str]] = enumerate(source.text.split("\n"), 1)
        self._offset = 0

    def indented(self, margin: int) -> list[str]:
        """The physical lines after this one indented deeper than ``margin`` columns.

        Blank lines inside belong to the block; the first line at ``margin`` or
        less ends it and is read next. Trailing blank lines are left out. The
        lines are as written (a ``shell |`` block keeps its comments and ``\\``).
        """
        out: list[str] = []
        for lineno, text in self._lines:
            body = text[:-1] if text[-1:] == "\r" else text
            stripped = body.lstrip()
            if stripped and len(body) - len(stripped) <= margin:
                # Not ours: hand it back to the next read, offset untouched.
                self._lines = itertools.chain(((lineno, text),), self._lines)
                break
            self._offset += len(text) + 1
            out.append(body)
        while out and not out[-1].strip():
            out.pop()
        return out

    def raw(self) -> tuple[str, int, int] | None:
        """The next physical line as written: ``(text, line number, offset)``."""
        for lineno, text in self._lines:
            offset = self._offset
            self._offset += len(text) + 1
            return (text[:-1] if text[-1:] == "\r" else text), lineno, offset
        return None

    def line(self) -> Line:
        """A copy of the current line, for a node that keeps it."""
        return Line(
            self.source,
            self.text,
            self.lineno,
            self.offset,
            self.segments,
            self.start,
            self.verb,
            self.rest,
            self.end,
        )

    def next(self) -> Line | None:
        """The next logical line that is not blank and not a ``#`` comment."""
        return None if self.advance() is None else self.line()

    def advance(self) -> str | None:
        """Move to the next logical line; its verb, or None at the end of the text."""
        offset = self._offset
        for lineno, text in self._lines:
            here = offset
            offset += len(text) + 1
            # One split finds blank lines, comments and the verb: no lstrip copy per line.
            parts = text.split(None, 1)
            if not parts or parts[0][0] == "#":
                continue
            last = text[-1]
            segments = None
            if last in "\r\\":  # rare: a CRLF line, or one continued with `\`
                self._offset = offset
                found = self._join(text, lineno, here)
                offset = self._offset
                if found is None:
                    continue
                text, parts, segments = found
                last = text[-1]
            self._offset = offset
            verb = parts[0]
            self.text = text
            self.lineno = lineno
            self.offset = here
            self.segments = segments
            # The first occurrence of the verb is where it stands: only blanks precede it.
            self.start = text.find(verb)
            self.verb = verb
            size = len(text)
            self.rest = size - len(parts[1]) if len(parts) == 2 else size
            self.end = len(text.rstrip()) if last in " \t" else size
            return verb
        self._offset = offset
        return None

    def _join(
        self, text: str, lineno: int, offset: int
    ) -> tuple[str, list[str], list[tuple[int, int, int, int]] | None] | None:
        """Finish a logical line whose first part ``text`` ends in CR or ``\\``.

        Returns its text, that text split at its first blank, and its segments (None
        when it is one physical line); None when it holds only blanks.
        """
        if text[-1] == "\r":
            text = text[:-1]
            if not text.strip():
                return None
        if text[-1:] != "\\":
            return text, text.split(None, 1), None
        segments = [(0, lineno, offset, 0)]
        text = text[:-1]
        for at, part in self._lines:
            part_offset = self._offset
            self._offset += len(part) + 1
            if part[-1:] == "\r":
                part = part[:-1]
            body = part.lstrip()
            lead = len(part) - len(body)
            if body[:1] == "#":
                # The original pf dropped a comment between continued lines; bash would
                # end the command there. Dropped, and the continuation goes on.
                span = new(Span, (self.source, at, lead + 1, part_offset + lead, len(body)))
                self.warnings.append(DslWarning(span, "comment-in-continuation"))
                continue
            segments.append((len(text), at, part_offset + lead, lead))
            if body.endswith("\\"):
                text += body[:-1]
                continue
            text += body
            break
        parts = text.split(None, 1)
        if not parts:  # a lone `\` continued into nothing
            return None
        return text, parts, segments


class Word:
    """One word of a line: its unquoted ``text``, position, and ``key=`` / list parts.

    ``key`` is set for ``key=value`` (an unquoted sh-like name before the first
    ``=``); ``text`` is then the value. ``items`` is set when the value is a list
    ``[a, "b c"]``. ``bare`` means no quote or escape was involved.
    """

    __slots__ = ("bare", "end", "items", "key", "start", "text")

    def __init__(
        self,
        text: str,
        start: int,
        end: int,
        key: str | None,
        items: tuple[str, ...] | None,
        bare: bool,
    ) -> None:
        self.text = text
        self.start = start
        self.end = end
        self.key = key
        self.items = items
        self.bare = bare

    def _key(self) -> tuple[object, ...]:
        return (self.text, self.start, self.end, self.key, self.items, self.bare)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Word) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Word{self._key()!r}"


_KEYS: dict[str, bool] = {}  # the same few keys recur on every task: remember answers


def is_key(text: str) -> bool:
    """A ``key=`` name: a letter or ``_``, then letters, digits, ``_``, ``-``, ``.``."""
    known = _KEYS.get(text)
    if known is None:
        known = (
            bool(text)
            and text.isascii()
            and (text[0].isalpha() or text[0] == "_")
            and text.replace("_", "a").replace("-", "a").replace(".", "a").isalnum()
        )
        if len(_KEYS) < 4096:
            _KEYS[text] = known
    return known


def is_name(text: str) -> bool:
    """An sh name: ``[A-Za-z_][A-Za-z0-9_]*`` (parameters, env keys, loop variables)."""
    return (
        bool(text)
        and text.isascii()
        and (text[0].isalpha() or text[0] == "_")
        and text.replace("_", "a").isalnum()
    )


def is_param_name(text: str) -> bool:
    """A parameter name: an sh name, or sh names joined by ``-`` (``remote-addr``).

    The original pf took hyphenated names; shell lines see them through their sh
    twin (:func:`sh_twin`).
    """
    return is_name(text) or ("-" in text and all(is_name(part) for part in text.split("-")))


def sh_twin(name: str) -> str:
    """``remote_addr`` for ``remote-addr``: the name bash sees a hyphenated parameter by."""
    return name.replace("-", "_")


def words(
    line: Line, start: int, stop: int | None = None, *, keys: bool = True, lists: bool = True
) -> list[Word]:
    """Split ``line.text[start:stop]`` into words at blanks; ``keys``/``lists`` enable those forms.

    Blanks are spaces and tabs only. Words are cut by ``str.split``; a word whose
    quotes open and close inside it (``k="v"``) is unquoted on the spot; only a
    word with escapes, a list or a quoted blank is scanned character by character.
    """
    out: list[Word] = []
    at: int | None = start
    while at is not None:
        at = _split(line, at, len(line.text) if stop is None else stop, keys, lists, out)
    return out


def _split(
    line: Line, start: int, stop: int, keys: bool, lists: bool, out: list[Word]
) -> int | None:
    """Append the words from ``start``; stop after a scanned word and return where it ended."""
    rest = line.text[start:stop]
    if "\t" in rest:
        rest = rest.replace("\t", " ")  # same length: positions hold
    append = out.append
    at = start
    keys = keys and "=" in rest
    if not ('"' in rest or "'" in rest or "\\" in rest or (lists and "[" in rest)):
        # The common case, kept free of per-word checks it does not need.
        for part in rest.split(" "):
            if not part:
                at += 1
                continue
            end = at + len(part)
            eq = part.find("=") if keys else -1
            if eq > 0 and (_KEYS.get(part[:eq]) or is_key(part[:eq])):
                append(Word(part[eq + 1 :], at, end, part[:eq], None, True))
            else:
                append(Word(part, at, end, None, None, True))
            at = end + 1
        return None
    for part in rest.split(" "):
        if not part:
            at += 1
            continue
        end = at + len(part)
        eq = part.find("=") if keys else -1
        key = part[:eq] if eq > 0 and (_KEYS.get(part[:eq]) or is_key(part[:eq])) else None
        dq = '"' in part
        sq = "'" in part
        if (
            "\\" in part
            or (dq and (sq or part.count('"') != 2))
            or (sq and part.count("'") != 2)
            or (lists and (part[0] == "[" or (key is not None and part[eq + 1 : eq + 2] == "[")))
            or (key is not None and (dq or sq) and part.find('"' if dq else "'") < eq)
        ):
            # An escape, a list, or a string that runs past a blank: scan it.
            word, after = _word(line, at, keys, lists)
            append(word)
            return after
        if dq or sq:
            # The quotes open and close inside this word (`k="v"`): drop them.
            value = (part[eq + 1 :] if key is not None else part).replace('"' if dq else "'", "")
            append(Word(value, at, end, key, None, False))
        elif key is not None:
            append(Word(part[eq + 1 :], at, end, key, None, True))
        else:
            append(Word(part, at, end, None, None, True))
        at = end + 1
    return None


_STOP = " \t\"'\\="


def _word(line: Line, i: int, keys: bool, lists: bool) -> tuple[Word, int]:
    """Scan the word at ``i`` that has quotes, escapes or a list; the index after it."""
    text = line.text
    n = len(text)
    begin = i
    buf: list[str] = []
    key: str | None = None
    items: tuple[str, ...] | None = None
    bare = True
    while i < n:
        c = text[i]
        if c == " " or c == "\t":
            break
        if c == '"' or c == "'":
            bare = False
            close = text.find(c, i + 1)
            if close != -1 and text.find("\\", i + 1, close) == -1:
                buf.append(text[i + 1 : close])  # no escapes inside: take it whole
                i = close + 1
            else:
                i = _quoted(line, i, buf)
        elif c == "[" and lists and not buf and items is None:
            items, i = _list(line, i)
            break  # a list ends its word
        elif c == "\\" and i + 1 < n:
            bare = False
            nxt = text[i + 1]
            buf.append(nxt if nxt in " \t\"'\\[" else c + nxt)
            i += 2
        elif c == "=" and keys and key is None and bare and is_key("".join(buf)):
            key = "".join(buf)
            buf = []
            i += 1
        else:
            j = i + 1
            while j < n and text[j] not in _STOP:
                j += 1
            buf.append(text[i:j])
            i = j
    return Word("".join(buf), begin, i, key, items, bare), i


def _quoted(line: Line, i: int, buf: list[str]) -> int:
    """Append the unescaped contents of the string at ``i`` to buf; index after it."""
    text = line.text
    quote = text[i]
    j = i + 1
    n = len(text)
    while j < n:
        c = text[j]
        if c == quote:
            return j + 1
        if c == "\\" and j + 1 < n:
            nxt = text[j + 1]
            if nxt == quote or nxt == "\\":
                buf.append(nxt)
            elif quote == '"' and nxt == "n":
                buf.append("\n")
            elif quote == '"' and nxt == "t":
                buf.append("\t")
            else:
                buf.append(c + nxt)
            j += 2
            continue
        buf.append(c)
        j += 1
    raise DslError(line.span(i, i + 1), "unterminated-string", {"quote": f"`{quote}`"})


def _list(line: Line, i: int) -> tuple[tuple[str, ...], int]:
    """Parse ``[a, "b c"]`` at ``i``: its items and the index after ``]``."""
    text = line.text
    n = len(text)
    items: list[str] = []
    buf: list[str] = []
    seen = False  # whether the current item has any content (so "" is an item)
    j = i + 1
    while j < n:
        c = text[j]
        if c == '"' or c == "'":
            j = _quoted(line, j, buf)
            seen = True
        elif c == "," or c == "]":
            item = "".join(buf).strip()
            if item or seen:
                items.append(item)
            buf = []
            seen = False
            j += 1
            if c == "]":
                return tuple(items), j
        else:
            buf.append(c)
            j += 1
    raise DslError(line.span(i, i + 1), "unterminated-list")
