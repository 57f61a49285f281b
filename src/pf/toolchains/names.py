"""The rules for names a request brings: source file names and exported symbol names.

A request's names reach tool argv, response files and the scratch directory, so each
is checked here, once, before any driver plans with it. A file name is refused (never
silently rewritten) with a RequestError naming the rule it breaks; a symbol name that is
not an identifier is refused by the caller with the wording its context needs.
Imports only ``pf.errors``.
"""

from __future__ import annotations

import re
import unicodedata

from pf.errors import RequestError

# Directories of the scratch dir that pf writes: intermediates and results.
OBJ_DIR = "obj"
OUT_DIR = "out"
RESERVED_DIRS: tuple[str, ...] = (OBJ_DIR, OUT_DIR)
# NAME_MAX of Linux file systems.
MAX_PART_BYTES = 255
# Far below PATH_MAX (4096), which must also hold the scratch dir's own path.
MAX_NAME_BYTES = 1024
MAX_DEPTH = 16
# Derived file names (``obj/0_<stem>.o``, ``lib<crate>.a``, ``<stem>.wasm.ll``) add a
# prefix and a suffix to a stem: bounding the stem keeps them within MAX_PART_BYTES.
MAX_STEM_BYTES = 200

# The identifier grammar of every language pf exports functions from: a C identifier
# (ASCII, as clang's wasm symbols and the `exports` option take them), which is also
# what Fortran BIND(C) labels must be and what Rust allows for `#[no_mangle]` (ASCII
# only). Rust's `#[export_name = "..."]` and C `__asm__("...")` labels can be any
# string; those are held to this grammar too.
SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Line and paragraph separators end a line in logs and line-based formats; bidirectional
# embeddings, overrides and isolates make a name display as another one.
_INVISIBLE = frozenset("\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_SHOWN = 60


def shown(name: str) -> str:
    """``repr(name)``, cut short when huge, for a message."""
    if len(name) <= _SHOWN:
        return repr(name)
    return f"{name[:_SHOWN]!r}... ({len(name)} characters)"


def is_symbol(name: str) -> bool:
    """Whether ``name`` is an identifier every pf language and tool reads as one word."""
    return SYMBOL.fullmatch(name) is not None


def bounded(text: str, limit: int = MAX_STEM_BYTES) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, at a character boundary."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", errors="ignore")


def check_source_name(name: str) -> None:
    """Refuse a source file name that a tool could read as anything but that file.

    The name must be a relative POSIX path of at most MAX_DEPTH parts and MAX_NAME_BYTES
    UTF-8 bytes, already in Unicode NFC, without control characters or backslashes, with
    no part empty, ``.``, ``..``, longer than MAX_PART_BYTES bytes or starting with ``-``
    or ``@`` (an option or a response file to most tools), and outside the directories
    pf writes (RESERVED_DIRS).
    """
    rule = _broken_rule(name)
    if rule is not None:
        raise RequestError(f"Invalid source file name {shown(name)}: {rule}")


def _broken_rule(name: str) -> str | None:
    if not name:
        return "the name is empty"
    if any("\ud800" <= char <= "\udfff" for char in name):
        return "it is not valid Unicode (it holds a lone surrogate)"
    if any(unicodedata.category(char) == "Cc" for char in name):
        return "it holds a control character (NUL, C0, DEL or C1)"
    if any(char in _INVISIBLE for char in name):
        return "it holds a line separator or a bidirectional control character"
    if "\\" in name:
        return "it holds a backslash; separate directories with '/'"
    if not unicodedata.is_normalized("NFC", name):
        nfc = unicodedata.normalize("NFC", name)
        return f"it is not in Unicode NFC form; send it composed, as {shown(nfc)}"
    if name.startswith("/"):
        return "it is absolute; use a path relative to the project"
    size = len(name.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        return f"it is {size} bytes long in UTF-8; the limit is {MAX_NAME_BYTES}"
    parts = name.split("/")
    if len(parts) > MAX_DEPTH:
        return f"it is {len(parts)} directories deep; the limit is {MAX_DEPTH}"
    for part in parts:
        if not part:
            return "it has an empty path segment ('//' or a '/' at an end)"
        if part in {".", ".."}:
            return f"it has a {part!r} path segment; use a plain relative path"
        if part[0] in "-@":
            return (
                f"the part {shown(part)} starts with {part[0]!r}, which tools read as "
                "an option or a response file"
            )
        part_size = len(part.encode("utf-8"))
        if part_size > MAX_PART_BYTES:
            return (
                f"the part {shown(part)} is {part_size} bytes long in UTF-8; "
                f"the limit is {MAX_PART_BYTES}"
            )
    if parts[0] in RESERVED_DIRS:
        return f"{parts[0]}/ is where pf writes its own files; put sources elsewhere"
    return None
