"""Compiler stderr -> structured diagnostics, for clang/flang/wat2wasm and rustc formats.

Drivers run tools in a scratch directory holding the sources under the user's own names,
so the paths in messages are already the user's; ``mask_paths`` removes whatever absolute
scratch prefix a tool still prints.
"""

from __future__ import annotations

import re

from pf.errors import Diagnostic

# clang, flang-new, gcc, wat2wasm: "file:line:col: error: message" (col optional).
_GCC_STYLE = re.compile(
    r"^(?P<file>[^:\s][^:]*?):(?P<line>\d+):(?:(?P<col>\d+):)?\s*"
    r"(?P<severity>fatal error|error|warning|note|remark):\s*(?P<message>.*)$"
)
# Tool-level lines with no position: "clang: error: ...", "wasm-ld: error: ...".
_TOOL_STYLE = re.compile(
    r"^(?P<tool>[\w.+-]+):\s*(?P<severity>fatal error|error|warning):\s*(?P<message>.*)$"
)
# rustc: "error[E0308]: message" followed by " --> file:line:col".
_RUST_HEAD = re.compile(
    r"^(?P<severity>error|warning|note|help)(?:\[(?P<code>\w+)\])?:\s*(?P<message>.*)$"
)
_RUST_TALLY = re.compile(r"^(aborting due to|\d+ warnings? emitted)")
_RUSTC = "rustc"
_RUST_LOC = re.compile(r"^\s*-->\s*(?P<file>.+?):(?P<line>\d+):(?P<col>\d+)\s*$")


def _severity(text: str) -> str:
    return "error" if text == "fatal error" else text


def _file(name: str) -> str:
    return name.removeprefix("./")


def parse_gcc_style(stderr: str) -> list[Diagnostic]:
    """Diagnostics in the ``file:line:col: severity: message`` format."""
    found: list[Diagnostic] = []
    for raw in stderr.splitlines():
        line = raw.rstrip()
        match = _GCC_STYLE.match(line)
        if match:
            found.append(
                Diagnostic(
                    file=_file(match["file"]),
                    line=int(match["line"]),
                    col=int(match["col"] or 0),
                    severity=_severity(match["severity"]),
                    message=match["message"],
                )
            )
            continue
        match = _TOOL_STYLE.match(line)
        if match:
            found.append(
                Diagnostic(
                    file=match["tool"],
                    line=0,
                    col=0,
                    severity=_severity(match["severity"]),
                    message=match["message"],
                )
            )
    return found


def parse_rustc(stderr: str) -> list[Diagnostic]:
    """Diagnostics in rustc's human format (a header line, then `` --> file:line:col``).

    A message with no location (an unreadable crate root, a bad flag) is rustc's own,
    so it is filed under ``rustc``, as clang's are under ``clang``.
    """
    found: list[Diagnostic] = []
    pending: tuple[str, str] | None = None
    for raw in stderr.splitlines():
        line = raw.rstrip()
        head = _RUST_HEAD.match(line)
        if head:
            if pending and pending[0] in {"error", "warning"}:
                found.append(Diagnostic(_RUSTC, 0, 0, pending[0], pending[1]))
            message = head["message"]
            if head["code"]:
                message = f"{message} [{head['code']}]"
            pending = (head["severity"], message)
            continue
        loc = _RUST_LOC.match(line)
        if loc and pending:
            found.append(
                Diagnostic(
                    file=_file(loc["file"]),
                    line=int(loc["line"]),
                    col=int(loc["col"]),
                    severity=pending[0],
                    message=pending[1],
                )
            )
            pending = None
    if pending and pending[0] in {"error", "warning"}:
        found.append(Diagnostic(_RUSTC, 0, 0, pending[0], pending[1]))
    # Closing tallies ("aborting due to previous error", "2 warnings emitted") are
    # summaries, not diagnostics of their own.
    return [d for d in found if not _RUST_TALLY.match(d.message)]


def mask_paths(text: str, scratch: str) -> str:
    """Remove the scratch directory prefix so paths read as the user's file names."""
    prefix = scratch.rstrip("/") + "/"
    return text.replace(prefix, "").replace(scratch, ".")
