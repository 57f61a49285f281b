"""pf-level interpolation for the arguments of non-shell verbs; a pure function.

``shell`` commands are never interpolated by pf: bash expands them. Every other
verb's arguments (and ``env`` values, ``if``/``for`` operands) go through
:func:`interpolate` when the executor binds values.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~5 ms)

if TYPE_CHECKING:
    from collections.abc import Mapping


def _is_name_start(c: str) -> bool:
    return c == "_" or ("a" <= c <= "z") or ("A" <= c <= "Z")


def _is_name_char(c: str) -> bool:
    return c == "_" or (c.isascii() and c.isalnum())


def interpolate(text: str, values: Mapping[str, str]) -> str:
    """Expand ``$name``, ``${name}``, ``${name:-default}`` and ``$$`` in ``text``.

    - Names are sh names: ``[A-Za-z_][A-Za-z0-9_]*``; ``$opt-level`` is ``$opt``
      followed by ``-level``, as in sh, unless ``opt-level`` itself is in
      ``values`` (a hyphenated parameter, as the original pf allowed): the
      longest such name is taken.
    - An unknown name expands to the empty string, as in sh.
    - ``${name:-default}`` gives ``default`` (itself interpolated) when ``name`` is
      unset or empty, as in sh.
    - ``$$`` is a literal ``$``; a ``$`` not followed by a name or ``{`` is kept.
    - Any other ``${...}`` form (``${x:+alt}``, ``${x/a/b}``) and an unclosed
      ``${`` are kept literally: those are bash features, and bash gets them only
      through ``shell``.

    >>> interpolate("-O${level:-2} $$HOME $name", {"name": "x"})
    '-O2 $HOME x'
    """
    at = text.find("$")
    if at == -1:
        return text
    out: list[str] = []
    start = 0
    n = len(text)
    while at != -1:
        out.append(text[start:at])
        nxt = text[at + 1] if at + 1 < n else ""
        if nxt == "$":
            out.append("$")
            start = at + 2
        elif nxt == "{":
            end, replacement = _braced(text, at, values)
            out.append(replacement)
            start = end
        elif nxt and _is_name_start(nxt):
            j = at + 2
            while j < n and _is_name_char(text[j]):
                j += 1
            if j < n and text[j] == "-":
                j = _hyphenated(text, at + 1, j, values)
            out.append(values.get(text[at + 1 : j], ""))
            start = j
        else:
            out.append("$")
            start = at + 1
        at = text.find("$", start)
    out.append(text[start:])
    return "".join(out)


def _hyphenated(text: str, begin: int, end: int, values: Mapping[str, str]) -> int:
    """Where the longest name of ``values`` read from ``begin`` ends, ``-`` allowed in it.

    ``text[begin:end]`` is an sh name followed by ``-``; ``end`` when no longer
    hyphenated name is a key of ``values``.
    """
    best = end
    n = len(text)
    j = end
    while j < n and text[j] == "-" and j + 1 < n and _is_name_char(text[j + 1]):
        j += 1
        while j < n and _is_name_char(text[j]):
            j += 1
        if text[begin:j] in values:
            best = j
    return best


def _braced(text: str, at: int, values: Mapping[str, str]) -> tuple[int, str]:
    """Expand the ``${...}`` at ``at``; returns (index after it, replacement)."""
    # Find the matching brace, allowing nested ${...} inside a default.
    depth = 0
    j = at + 1
    n = len(text)
    while j < n:
        c = text[j]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                break
        j += 1
    else:
        return n, text[at:]  # unclosed: keep literally
    inner = text[at + 2 : j]
    k = 0
    while k < len(inner) and _is_name_char(inner[k]):
        k += 1
    if k < len(inner) and inner[k] == "-":
        k = _hyphenated(inner, 0, k, values)
    name = inner[:k]
    if not name or not _is_name_start(name[0]):
        return j + 1, text[at : j + 1]
    rest = inner[k:]
    if not rest:
        return j + 1, values.get(name, "")
    if rest.startswith(":-"):
        value = values.get(name, "")
        return j + 1, value if value else interpolate(rest[2:], values)
    return j + 1, text[at : j + 1]
