"""suggest(): did-you-mean within edit distance 2."""

from __future__ import annotations

import pytest

from pf.dsl import suggest
from pf.dsl.suggest import distance


@pytest.mark.parametrize(
    ("name", "choices", "result"),
    [
        ("shel", ["shell", "sync"], "shell"),
        ("biuld", ["build", "test"], "build"),
        ("bulid-c", ["build-c", "build-rust"], "build-c"),
        ("xyz", ["build", "test"], None),
        ("ab", ["cd", "ac"], "ac"),  # short names: distance 1 only
        ("ab", ["cd"], None),
        ("test", ["test", "tests"], "test"),
        ("tst", ["test", "tsx"], "test"),  # tie at distance 1: sorted order
        ("", ["a"], "a"),
        ("anything", [], None),
    ],
)
def test_suggest(name: str, choices: list[str], result: str | None) -> None:
    assert suggest(name, choices) == result


@pytest.mark.parametrize(
    ("a", "b", "d"),
    [("", "", 0), ("a", "", 1), ("kitten", "sitting", 3), ("abc", "abc", 0), ("abcdef", "a", 4)],
)
def test_distance(a: str, b: str, d: int) -> None:
    # Past the limit the answer is limit + 1: the search stops early.
    assert distance(a, b, limit=3) == d
