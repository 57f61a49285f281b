"""Response files (``@file``) that pf writes for tools, each in the quoting its tool reads.

clang and lld read GNU-style response files: words split at blanks, with backslash and
both kinds of quote special, so every word is written double-quoted with ``\\`` and ``"``
escaped, and no word can split into two or become a flag. rustc reads one argument per
line, verbatim, so a line break cannot be quoted there and is refused.
Imports only ``pf.errors`` and ``names``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pf.errors import ConfigError
from pf.toolchains.names import shown


def gnu_quote(word: str) -> str:
    """``word`` as exactly one word of a GNU-style response file (LLVM's tokenizer)."""
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_gnu(path: Path, words: Iterable[str]) -> None:
    """A response file for clang or lld holding ``words``, one quoted word per line."""
    path.write_text("".join(f"{gnu_quote(word)}\n" for word in words), encoding="utf-8")


def write_lines(path: Path, arguments: Iterable[str]) -> None:
    """A response file for rustc holding ``arguments``, one per line as rustc reads them."""
    lines = list(arguments)
    for argument in lines:
        if "\n" in argument or "\r" in argument:
            raise ConfigError(
                f"rustc reads one argument per line of an @file, and {shown(argument)} holds "
                "a line break; use a scratch directory (PF_CACHE_DIR) without one"
            )
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
