"""Run a plan's Assemble step: one module through a resident assembler, confined.

The assembler (pf.toolchains.wabt: wabt built to WebAssembly, run by wasmtime) stays up
in a resident sandboxed process (pf.sandbox.resident) and assembles one module per
request in a fresh wasm instance, so a module costs no process start. pf reads the
source from the scratch dir, sends it, and writes the wasm it gets back; what the
assembler says about the source comes back as the text wat2wasm would print on stderr.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from pathlib import Path

import pf
from pf.config import Settings
from pf.errors import BuildCancelled, BuildTimeout, CompileFailed
from pf.sandbox import LineSink, call_resident
from pf.toolchains import Assemble, ToolInfo
from pf.toolchains.assembly import Assembled, ProtocolError, decode_reply, encode_request

# The reply carries the module (or the assembler's errors) and a little framing.
_REPLY_SLACK = 64 * 1024


# A few realpath calls per build otherwise; one tool, so a handful of entries at most.
@functools.lru_cache(maxsize=16)
def _visible(tool: str) -> tuple[Path, ...]:
    """What the resident must see besides /usr: pf's Python environment (the assembler
    is pf's own module, run by it), the assembler's directory (the wasm beside it) and
    pf's package, which an editable install keeps outside the environment."""
    found: dict[Path, None] = {}
    for path in (
        Path(sys.prefix),
        Path(tool).parent,
        Path(pf.__file__).parent.parent,
    ):
        real = Path(os.path.realpath(path))
        if not any(known == real or known in real.parents for known in found):
            found.setdefault(real)
    return tuple(found)


def assemble(
    step: Assemble,
    tool: ToolInfo,
    source: bytes,
    settings: Settings,
    *,
    what: str,
    on_line: LineSink,
    cancel: threading.Event | None,
) -> Assembled:
    """Assemble ``source``, the bytes of ``step.source``.

    Returns the wasm, or (``wasm`` None) what the assembler said about the source, as
    wat2wasm prints it on stderr; each line of that is also passed to ``on_line``.
    Raises CompileFailed when the assembler itself failed or trapped, BuildTimeout and
    BuildCancelled as a step would.
    """
    # The resident's whole address space is capped at max_memory too: half of it for
    # the module's wasm memory leaves the process room to fail that compile cleanly.
    request = encode_request(
        source, step.source, debug_names=step.debug_names, memory_limit=settings.max_memory // 2
    )
    reply = call_resident(
        settings,
        (tool.path,),
        _visible(tool.path),
        request,
        timeout=settings.build_timeout,
        max_reply=settings.max_file_size + _REPLY_SLACK,
        cancel=cancel,
    )
    if reply.cancelled:
        raise BuildCancelled(what)
    if reply.timed_out:
        raise BuildTimeout(f"{step.label} ({step.tool})", settings.build_timeout)
    if reply.failure is not None or reply.payload is None:
        raise CompileFailed(
            f"{step.label} failed: the WAT assembler stopped: {reply.failure}",
            hint="this is a bug in pf or its set-up, please report it",
        )
    try:
        assembled = decode_reply(reply.payload)
    except ProtocolError as err:
        raise CompileFailed(
            f"{step.label} failed: the WAT assembler's answer is broken: {err.message}",
            hint="this is a bug in pf, please report it",
        ) from None
    for line in assembled.errors.splitlines():
        on_line("stderr", line)
    if assembled.trap is not None:
        raise CompileFailed(f"{step.label} failed: {assembled.trap}")
    return assembled
