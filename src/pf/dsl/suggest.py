"""Did-you-mean: the closest name by edit distance (at most 2), used by the DSL and the CLI.

Imports nothing; pure functions.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~5 ms)

if TYPE_CHECKING:
    from collections.abc import Iterable

MAX_DISTANCE = 2


def distance(a: str, b: str, limit: int = MAX_DISTANCE) -> int:
    """Levenshtein distance between ``a`` and ``b``, or ``limit + 1`` once it must exceed limit."""
    if a == b:
        return 0
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        best = i
        for j, cb in enumerate(b, 1):
            cost = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb))
            current.append(cost)
            best = min(best, cost)
        if best > limit:
            # Every later row is at least this large: stop early.
            return limit + 1
        previous = current
    return previous[-1]


def suggest(name: str, choices: Iterable[str]) -> str | None:
    """The choice closest to ``name`` within edit distance 2, or None.

    Ties go to the choice that comes first in sorted order, so the answer is stable.
    A name of one or two characters only matches at distance 1 (anything is two
    edits away from "ab").

    >>> suggest("shel", ["shell", "sync"])
    'shell'
    """
    limit = 1 if len(name) <= 2 else MAX_DISTANCE
    best: tuple[int, str] | None = None
    for choice in choices:
        d = distance(name, choice, limit)
        if d <= limit and (best is None or (d, choice) < best):
            best = (d, choice)
    return best[1] if best else None
