"""Make-style dependency files: what a compile read beyond the request's own inputs.

Compilers write them as ``target: dep dep \\`` lines (clang ``-MD -MF``, rustc
``--emit=dep-info``): a backslash before a newline continues the line, ``\\ `` and
``\\#`` escape a space and a hash inside a path, ``$$`` is a dollar, and rustc adds
``# env-dep:`` comment lines. ``external`` keeps the dependencies a cached result must
be checked against: files outside the scratch dir and outside the system and toolchain
directories, whose contents the toolchain's version (in the action key) already stands
for, as ccache's ``system_headers`` sloppiness.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

SYSTEM_PREFIXES = ("/usr/", "/lib/", "/lib64/")


# A word runs to the next unescaped blank; the escapes are undone after.
_WORD = re.compile(r"(?:[^ \t\\]+|\\[ \t#:]|\\)+")
_ESCAPE = re.compile(r"\\([ \t#:])|\$\$")


def parse(text: str) -> list[str]:
    """Every prerequisite named in ``text``, in order, once each."""
    seen: dict[str, None] = {}
    for line in text.replace("\\\r\n", " ").replace("\\\n", " ").splitlines():
        if line.lstrip().startswith("#"):
            continue
        words = _WORD.findall(line) if "\\" in line else line.split()
        # The target list ends at the first word that ends in an unescaped colon.
        for index, word in enumerate(words):
            if word.endswith(":") and not word.endswith("\\:"):
                for dep in words[index + 1 :]:
                    seen.setdefault(
                        _ESCAPE.sub(_unescape, dep) if "\\" in dep or "$" in dep else dep
                    )
                break
    return list(seen)


def _unescape(match: re.Match[str]) -> str:
    return match.group(1) or "$"


def toolchain_prefixes(tool_paths: Iterable[str]) -> tuple[str, ...]:
    """The installation prefix of each tool that lives in a ``bin`` directory."""
    prefixes = set()
    for path in tool_paths:
        for candidate in (path, os.path.realpath(path)):
            bin_dir = os.path.dirname(candidate)
            if os.path.basename(bin_dir) == "bin":
                prefixes.add(os.path.dirname(bin_dir).rstrip("/") + "/")
    # "/" would be the prefix of a tool in /bin, and would exclude everything.
    prefixes.discard("/")
    return tuple(sorted(prefixes))


def external(scratch: Path, depfiles: Iterable[str], excluded: tuple[str, ...]) -> list[Path]:
    """Absolute paths of the dependencies listed in ``depfiles`` (relative to ``scratch``)
    that lie outside ``scratch`` and outside every prefix in ``excluded``."""
    root = os.path.realpath(scratch)
    inside = (root.rstrip("/") + "/", str(scratch).rstrip("/") + "/")
    found: dict[str, None] = {}
    for depfile in depfiles:
        text = (scratch / depfile).read_text(encoding="utf-8", errors="surrogateescape")
        for dep in parse(text):
            path = os.path.normpath(os.path.join(root, dep))
            if path.startswith(inside) or path.startswith(excluded):
                continue
            found.setdefault(path)
    return [Path(p) for p in found]
