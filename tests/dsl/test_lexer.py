"""Lexer: logical lines (comments, continuation, CRLF) and words with exact positions."""

from __future__ import annotations

import pytest

from pf.dsl.lexer import Line, Reader, words
from pf.dsl.source import Source


def lines(text: str) -> list[Line]:
    reader = Reader(Source("P", text))
    out = []
    while (line := reader.next()) is not None:
        out.append(line)
    return out


def test_logical_lines_skip_comments_and_blanks() -> None:
    got = [
        (ln.text, ln.lineno, ln.offset, ln.verb, ln.rest)
        for ln in lines("# c\n\n  task a\n   \t\n  # c2\nend\n")
    ]
    assert got == [("  task a", 3, 5, "task", 7), ("end", 6, 26, "end", 3)]


def test_continuation_joins_and_maps_back() -> None:
    [line] = lines("shell a \\\n    b\\\n  c\n")
    assert line.text == "shell a bc"
    # `b` sits on line 2, column 5; `c` on line 3, column 3.
    b, c = line.text.index("b"), line.text.index("c")
    assert (line.span(b, b + 1).line, line.span(b, b + 1).col) == (2, 5)
    assert (line.span(c, c + 1).line, line.span(c, c + 1).col) == (3, 3)
    assert line.span(c, c + 1).offset == len("shell a \\\n    b\\\n  ")
    # A span is clipped to the physical line it starts on.
    assert line.span(0, len(line.text)).length == len("shell a ")


def test_comment_line_does_not_continue_and_crlf_is_stripped() -> None:
    got = [ln.text for ln in lines("# comment \\\ntask a\r\n  x \\\r\n  y\r\n")]
    assert got == ["task a", "  x y"]


def test_raw_lines_are_verbatim() -> None:
    reader = Reader(Source("P", "a\n  # b \\\n"))
    assert reader.next() is not None
    assert reader.raw() == ("  # b \\", 2, 2)
    assert reader.raw() == ("", 3, 10)
    assert reader.raw() is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a b\tc", [("a", None, 0, 1), ("b", None, 2, 3), ("c", None, 4, 5)]),
        ("k=v x=", [("v", "k", 0, 3), ("", "x", 4, 6)]),
        ("=v 1k=2 a.b-c=3", [("=v", None, 0, 2), ("1k=2", None, 3, 7), ("3", "a.b-c", 8, 15)]),
        ("k=\"a b\" 'c d'", [("a b", "k", 0, 7), ("c d", None, 8, 13)]),
        ('"k=v"', [("k=v", None, 0, 5)]),
        ('k="v"w', [("vw", "k", 0, 6)]),
        (
            "a\\ b \"q\\\"x\" 's\\'t'",
            [("a b", None, 0, 4), ('q"x', None, 5, 11), ("s't", None, 12, 18)],
        ),
        ('"\\n\\t\\$"', [("\n\t\\$", None, 0, 8)]),
        (
            'x=[a, "b, c" ,d,] [] y=[""]',
            [
                ("", "x", 0, 17),
                ("", None, 18, 20),
                ("", "y", 21, 27),
            ],
        ),
    ],
)
def test_words(text: str, expected: list[tuple[str, str | None, int, int]]) -> None:
    [line] = lines("verb " + text)
    got = [(w.text, w.key, w.start - 5, w.end - 5) for w in words(line, 5)]
    assert got == expected


def test_list_items() -> None:
    [line] = lines('v x=[a, "b, c" ,d,] [] y=[""]')
    got = [w.items for w in words(line, 2)]
    assert got == [("a", "b, c", "d"), (), ("",)]


def test_words_without_keys_or_lists() -> None:
    [line] = lines("v a=b [c]")
    got = [(w.text, w.key, w.items) for w in words(line, 2, keys=False, lists=False)]
    assert got == [("a=b", None, None), ("[c]", None, None)]
