"""What pf and the resident WAT assembler say to each other (pf.toolchains.wabt).

Over the assembler's stdin and stdout, each message is a frame: a 4-byte big-endian
length and that many bytes of payload (pf.sandbox.resident frames pf's side). A payload
is a 4-byte big-endian length, that much JSON metadata, then raw bytes: the source of a
request, the wasm of a reply. Kept apart from the assembler, which imports wasmtime, so
pf itself never loads wasmtime.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

from pf.errors import PfError

# A request's frame past this is refused: the source cap of pf serve is far below it.
DEFAULT_MAX_FRAME = 64 * 1024 * 1024

_LENGTH = struct.Struct(">I")


class ProtocolError(PfError):
    """A frame of the assembler's protocol that cannot be decoded."""

    code = "wabt-protocol"


@dataclass(frozen=True)
class Assembled:
    """One compile's outcome: the wasm, or wabt's text errors, or why it trapped."""

    wasm: bytes | None
    errors: str
    trap: str | None = None


@dataclass(frozen=True)
class Request:
    source: bytes
    name: str
    debug_names: bool
    memory_limit: int


def _pack(meta: dict[str, Any], data: bytes) -> bytes:
    head = json.dumps(meta, separators=(",", ":")).encode()
    return b"".join((_LENGTH.pack(len(head)), head, data))


def _unpack(payload: bytes, what: str) -> tuple[dict[str, Any], bytes]:
    if len(payload) < _LENGTH.size:
        raise ProtocolError(f"the {what} frame is truncated ({len(payload)} bytes)")
    (head_length,) = _LENGTH.unpack_from(payload)
    head_end = _LENGTH.size + head_length
    if head_end > len(payload):
        raise ProtocolError(f"the {what} frame's metadata runs past its end")
    try:
        meta = json.loads(payload[_LENGTH.size : head_end])
    except (ValueError, UnicodeDecodeError) as err:
        raise ProtocolError(f"the {what} frame's metadata is not JSON: {err}") from None
    if not isinstance(meta, dict):
        raise ProtocolError(f"the {what} frame's metadata is not a JSON object")
    return meta, payload[head_end:]


def _field(meta: dict[str, Any], key: str, kind: type, what: str) -> Any:
    value = meta.get(key)
    # bool is an int to isinstance: a flag is not a number, nor a number a flag.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(f"the {what} frame's {key!r} is not a {kind.__name__}")
    return value


def encode_request(source: bytes, name: str, debug_names: bool, memory_limit: int) -> bytes:
    """One request's payload."""
    meta = {"name": name, "debug_names": debug_names, "memory_limit": memory_limit}
    return _pack(meta, source)


def decode_request(payload: bytes) -> Request:
    """The request in one frame's payload; ProtocolError if malformed."""
    meta, source = _unpack(payload, "request")
    name = _field(meta, "name", str, "request")
    if "\0" in name:
        raise ProtocolError("the request frame's name holds a NUL character")
    limit = _field(meta, "memory_limit", int, "request")
    if limit <= 0:
        raise ProtocolError("the request frame's memory_limit is not positive")
    debug_names = _field(meta, "debug_names", bool, "request")
    return Request(source, name, debug_names, limit)


def encode_reply(assembled: Assembled) -> bytes:
    """One reply's payload."""
    meta = {"ok": assembled.wasm is not None, "errors": assembled.errors, "trap": assembled.trap}
    return _pack(meta, assembled.wasm or b"")


def decode_reply(payload: bytes) -> Assembled:
    """The outcome in one reply frame's payload; ProtocolError if malformed."""
    meta, data = _unpack(payload, "reply")
    ok = _field(meta, "ok", bool, "reply")
    errors = _field(meta, "errors", str, "reply")
    trap = meta.get("trap")
    if trap is not None and not isinstance(trap, str):
        raise ProtocolError("the reply frame's 'trap' is not a str")
    if not ok and data:
        raise ProtocolError("the reply frame holds a wasm but says it failed")
    return Assembled(data if ok else None, errors, trap)


def frame(payload: bytes) -> bytes:
    """``payload`` as it goes over a pipe."""
    return _LENGTH.pack(len(payload)) + payload


def read_frame(stream: BinaryIO, max_frame: int) -> bytes | None:
    """The next frame's payload, or None at a clean end of stream."""
    prefix = stream.read(_LENGTH.size)
    if not prefix:
        return None
    if len(prefix) < _LENGTH.size:
        raise ProtocolError("the stream ended inside a frame's length")
    (length,) = _LENGTH.unpack(prefix)
    if length > max_frame:
        raise ProtocolError(f"a frame of {length} bytes is over the limit of {max_frame}")
    payload = stream.read(length)
    if len(payload) < length:
        raise ProtocolError(f"the stream ended inside a frame ({len(payload)} of {length} bytes)")
    return payload
