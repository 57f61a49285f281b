"""Answering one file over HTTP: validators, 304, Range, encoding choice, and sending bytes.

Per request the work is one ``os.stat``, one dict lookup and one pass over the request
headers: the digest, the header lists of each representation and small bodies live in a
bounded LRU keyed by path and validated by (device, inode, size, mtime_ns). Bodies up to
``memory_file_max`` are sent from memory in one ASGI message; bigger files stream in 256
KiB chunks, read straight from the page cache when it holds them (RWF_NOWAIT) and on the
default executor when it does not. uvicorn 0.54 offers no zero-copy ASGI extension
(neither ``zerocopysend`` nor ``pathsend``). Measured on 2 cores (wrk -c64, 1 MiB wasm):
nginx 2,560-2,810 req/s; from memory 2,070-2,480; streamed 1,350-1,490; brotli 7,000+.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import stat
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import NamedTuple

from starlette.types import Receive, Scope, Send

from pf.server.static._compress import MAX_SIZE, MIN_SIZE, Sidecars, Variant
from pf.server.static._http import (
    Unsatisfiable,
    accepted_codings,
    etag_matches,
    http_date,
    is_compressible,
    media_type_for,
    parse_http_date,
    parse_range,
)

MiB = 1024 * 1024
CHUNK = 256 * 1024
IMMUTABLE = b"public, max-age=31536000, immutable"
REVALIDATE = b"no-cache"
# On every response, so the web demo may use SharedArrayBuffer (cross-origin isolation).
ISOLATION = [
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-embedder-policy", b"require-corp"),
    (b"x-content-type-options", b"nosniff"),
]
_NOWAIT: int = getattr(os, "RWF_NOWAIT", 0)
_HEX_DIGEST = re.compile(r"^[0-9a-f]{16,128}$")


class Options(NamedTuple):
    """How to present one file: given digest, immutable caching, media type."""

    digest: str | None = None
    immutable: bool = False
    media_type: str | None = None


@dataclass(slots=True)
class _Rep:
    """One representation (identity, br or gzip) with its precomputed response headers."""

    coding: str
    etag: str
    path: str
    size: int
    body: bytes | None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


@dataclass(slots=True)
class _Entry:
    key: tuple[int, int, int, int]
    path: str
    digest: str
    verify: bool
    mtime: int
    media_type: str
    compressible: bool
    last_modified: bytes
    cache_control: bytes
    identity: _Rep
    coded: dict[str, _Rep] = field(default_factory=dict)
    variants_known: bool = False
    etags: frozenset[str] = frozenset()

    @property
    def weight(self) -> int:
        held = [self.identity.body, *(rep.body for rep in self.coded.values())]
        return sum(len(body) for body in held if body is not None)

    def add(self, variant: Variant) -> None:
        tag = f'"{self.digest}-{variant.coding}"'
        rep = _Rep(variant.coding, tag, variant.path, variant.size, variant.body)
        rep.headers = self._headers(rep)
        self.coded[variant.coding] = rep
        self.etags = self.etags | {tag}

    def _headers(self, rep: _Rep) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"content-type", self.media_type.encode("latin-1")),
            (b"content-length", str(rep.size).encode()),
            (b"etag", rep.etag.encode("latin-1")),
            (b"last-modified", self.last_modified),
            (b"cache-control", self.cache_control),
        ]
        if rep.coding:
            headers.append((b"content-encoding", rep.coding.encode()))
        else:
            headers.append((b"accept-ranges", b"bytes"))
        if self.compressible:
            headers.append((b"vary", b"accept-encoding"))
        return headers + ISOLATION


def _sidecar_key(digest: str) -> str:
    return digest if _HEX_DIGEST.match(digest) else hashlib.sha256(digest.encode()).hexdigest()


def _read(
    path: str, options: Options, memory_file_max: int
) -> tuple[os.stat_result, str, bytes | None]:
    """Stat, hash (unless a digest is given) and maybe read a file, consistently; in a thread."""
    for _ in range(3):
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                raise IsADirectoryError(path)
            keep = before.st_size <= memory_file_max
            chunks: list[bytes] = []
            hasher = hashlib.sha256() if options.digest is None else None
            if keep or hasher is not None:
                while chunk := os.read(fd, MiB):
                    if hasher is not None:
                        hasher.update(chunk)
                    if keep:
                        chunks.append(chunk)
            after = os.fstat(fd)
        finally:
            os.close(fd)
        if (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns):
            digest = options.digest if hasher is None else hasher.hexdigest()
            assert digest is not None
            return after, digest, b"".join(chunks) if keep else None
    raise BlockingIOError(path)  # rewritten while read three times: try on the next request


def _read_variant(variant: Variant, memory_file_max: int) -> Variant | None:
    """The variant with its body if small; None if its file is gone or not what was stored."""
    try:
        if variant.size > memory_file_max:
            return variant if os.stat(variant.path).st_size == variant.size else None
        with open(variant.path, "rb") as source:
            body = source.read()
    except OSError:
        return None
    return (
        Variant(variant.coding, variant.path, variant.size, body)
        if len(body) == variant.size
        else None
    )


class FileServer:
    """Serves files by absolute path with validators, 304, Range and stored compressed variants.

    Used by :class:`Static` for its roots and by ``file_response`` for artifacts; paths
    reaching here are already checked to lie inside a served root (or come from the CAS).
    """

    def __init__(
        self,
        sidecars: Sidecars,
        *,
        memory_bytes: int = 64 * MiB,
        memory_file_max: int = 4 * MiB,
        max_entries: int = 4096,
    ) -> None:
        self.sidecars = sidecars
        self.memory_bytes = memory_bytes
        self.memory_file_max = memory_file_max
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, Options], _Entry] = OrderedDict()
        self._held = 0
        self._loading: dict[tuple[str, Options], asyncio.Future[_Entry | None]] = {}

    async def serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        path: str,
        options: Options,
        *,
        retry: bool = True,
    ) -> bool:
        """Answer the request with the file at ``path``; False if there is no regular file."""
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return False
        if not stat.S_ISREG(st.st_mode):
            return False
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        slot = (path, options)
        entry = self._entries.get(slot)
        if entry is None or entry.key != key:
            entry = await self._load(slot)
            if entry is None:
                return False
        else:
            self._entries.move_to_end(slot)

        inm = ims = rng = if_range = codings = None
        for name, value in scope["headers"]:
            if name == b"accept-encoding":
                codings = value
            elif name == b"range":
                rng = value
            elif name == b"if-none-match":
                inm = value
            elif name == b"if-modified-since":
                ims = value
            elif name == b"if-range":
                if_range = value
        head = scope["method"] == "HEAD"

        rep = entry.identity
        if entry.compressible and codings is not None and rng is None:
            for coding in accepted_codings(codings.decode("latin-1")):
                coded = entry.coded.get(coding)
                if coded is not None:
                    rep = coded
                    break
            if not entry.variants_known:
                self._ask_variants(entry)

        if inm is not None:
            tag = etag_matches(inm.decode("latin-1"), entry.etags)
            if tag is not None:
                await self._not_modified(send, entry, rep.etag if tag == "*" else tag)
                return True
        elif ims is not None:
            since = parse_http_date(ims.decode("latin-1"))
            if since is not None and entry.mtime <= since:
                await self._not_modified(send, entry, rep.etag)
                return True

        start, end, status, headers = 0, rep.size, 200, rep.headers
        if rng is not None and not head and self._range_applies(entry, if_range):
            try:
                wanted = parse_range(rng.decode("latin-1"), rep.size)
            except Unsatisfiable:
                await _unsatisfiable(send, scope["path"], rep.size)
                return True
            if wanted is not None:
                start, end = wanted
                status = 206
                headers = [
                    (b"content-length", str(end - start).encode())
                    if k == b"content-length"
                    else (k, v)
                    for k, v in rep.headers
                ]
                headers.append((b"content-range", f"bytes {start}-{end - 1}/{rep.size}".encode()))

        if head:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return True
        if rep.body is not None:
            body = rep.body if (start, end) == (0, rep.size) else rep.body[start:end]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return True
        if await self._stream(receive, send, entry, rep, status, headers, start, end):
            return True
        # The file changed or a variant was evicted between the lookup and the open: once more.
        return retry and await self.serve(scope, receive, send, path, options, retry=False)

    def _range_applies(self, entry: _Entry, if_range: bytes | None) -> bool:
        if if_range is None:
            return True
        value = if_range.decode("latin-1").strip()
        return value == entry.identity.etag or value.encode("latin-1") == entry.last_modified

    async def _stream(
        self,
        receive: Receive,
        send: Send,
        entry: _Entry,
        rep: _Rep,
        status: int,
        headers: list[tuple[bytes, bytes]],
        start: int,
        end: int,
    ) -> bool:
        try:
            fd = os.open(rep.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            fd = -1
        if fd < 0 or os.fstat(fd).st_size != (entry.key[2] if not rep.coding else rep.size):
            # The variant was evicted from the sidecar dir, or the file changed under us.
            if fd >= 0:
                os.close(fd)
            if rep.coding:
                self.sidecars.discard(entry.digest)
            self._forget(entry)
            return False
        loop = asyncio.get_running_loop()
        # uvicorn's send() is silent once the client has gone: watch receive() instead, so
        # a dropped download of a big file stops reading it.
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            offset = start
            while offset < end and not gone.done():
                size = min(CHUNK, end - offset)
                chunk: bytes | bytearray | None = _read_cached(fd, size, offset)
                if chunk is None:
                    chunk = await loop.run_in_executor(None, os.pread, fd, size, offset)
                if not chunk:
                    break  # truncated while sent: end the body early, the length tells the client
                offset += len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": offset < end})
            if offset < end or start == end:
                await send({"type": "http.response.body", "body": b""})
        finally:
            gone.cancel()
            os.close(fd)
        return True

    async def _not_modified(self, send: Send, entry: _Entry, etag: str) -> None:
        headers = [
            (b"etag", etag.encode("latin-1")),
            (b"last-modified", entry.last_modified),
            (b"cache-control", entry.cache_control),
        ]
        if entry.compressible:
            headers.append((b"vary", b"accept-encoding"))
        await _send_empty(send, 304, headers + ISOLATION)

    async def _load(self, slot: tuple[str, Options]) -> _Entry | None:
        """Build the entry once for all concurrent requests; a request that goes away does
        not cancel the work the others wait for."""
        task = self._loading.get(slot)
        if task is None:
            task = asyncio.ensure_future(self._build_and_remember(slot))
            self._loading[slot] = task
            task.add_done_callback(lambda _: self._loading.pop(slot, None))
        return await asyncio.shield(task)

    async def _build_and_remember(self, slot: tuple[str, Options]) -> _Entry | None:
        try:
            entry = await asyncio.get_running_loop().run_in_executor(None, self._build, slot)
        except OSError:
            return None
        self._remember(slot, entry)
        return entry

    def _build(self, slot: tuple[str, Options]) -> _Entry:
        """Everything about one file that does not depend on the request (runs in a thread)."""
        path, options = slot
        st, digest, body = _read(path, options, self.memory_file_max)
        media_type = options.media_type or media_type_for(path)
        compressible = is_compressible(media_type) and MIN_SIZE <= st.st_size <= MAX_SIZE
        mtime = int(st.st_mtime)
        entry = _Entry(
            key=(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns),
            path=path,
            digest=_sidecar_key(digest),
            verify=options.digest is None,
            mtime=mtime,
            media_type=media_type,
            compressible=compressible,
            last_modified=http_date(mtime).encode(),
            cache_control=IMMUTABLE if options.immutable else REVALIDATE,
            identity=_Rep("", f'"{digest}"', path, st.st_size, body),
        )
        entry.identity.headers = entry._headers(entry.identity)
        entry.etags = frozenset({entry.identity.etag})
        if compressible:
            found = self.sidecars.lookup(entry.digest)
            if found is not None:
                variants = [_read_variant(v, self.memory_file_max) for v in found]
                if all(v is not None for v in variants):
                    for variant in variants:
                        assert variant is not None
                        entry.add(variant)
                    entry.variants_known = True
                else:
                    self.sidecars.discard(entry.digest)  # made again on a later request
        else:
            entry.variants_known = True
        return entry

    def _ask_variants(self, entry: _Entry) -> None:
        text = entry.media_type.startswith(("text/", "image/svg", "application/json"))
        self.sidecars.submit(
            entry.digest, entry.path, verify=entry.verify, text=text, done=self._variants_made
        )

    def _variants_made(self, digest: str, variants: tuple[Variant, ...]) -> None:
        for slot, entry in list(self._entries.items()):
            if entry.digest == digest and not entry.variants_known:
                self._held -= entry.weight
                for variant in variants:
                    entry.add(variant)
                entry.variants_known = True
                self._held += entry.weight
                self._entries.move_to_end(slot)
        self._trim()

    def _remember(self, slot: tuple[str, Options], entry: _Entry) -> None:
        old = self._entries.pop(slot, None)
        if old is not None:
            self._held -= old.weight
        self._entries[slot] = entry
        self._held += entry.weight
        self._trim()

    def _forget(self, entry: _Entry) -> None:
        for slot, held in list(self._entries.items()):
            if held is entry:
                del self._entries[slot]
                self._held -= entry.weight

    def _trim(self) -> None:
        while self._entries and (
            self._held > self.memory_bytes or len(self._entries) > self.max_entries
        ):
            _, evicted = self._entries.popitem(last=False)
            self._held -= evicted.weight


def _read_cached(fd: int, size: int, offset: int) -> bytearray | None:
    """Read from the page cache without blocking (Linux RWF_NOWAIT); None if it would block.

    A thread hop per chunk halves the rate of a hot file (measured: ~1,050 vs ~1,800 req/s
    for 1 MiB in 256 KiB chunks), and a plain pread on the loop would stall it on a cold
    disk. The bytearray goes out as is: uvicorn writes any bytes-like body.
    """
    if not _NOWAIT:
        return None
    buf = bytearray(size)
    try:
        got = os.preadv(fd, [buf], offset, _NOWAIT)
    except OSError:  # EAGAIN: not in the page cache; EOPNOTSUPP: the filesystem cannot say
        return None
    if got <= 0:
        return None
    if got < size:
        del buf[got:]
    return buf


async def _disconnected(receive: Receive) -> None:
    with contextlib.suppress(Exception):  # whatever breaks receive() ends the watch, quietly
        while (await receive())["type"] != "http.disconnect":
            pass


async def _unsatisfiable(send: Send, url_path: str, size: int) -> None:
    """416 with ``Content-Range: bytes */size``; under /api with a JSON error body, as
    every /api answer is JSON (docs/server.md)."""
    headers = [(b"content-range", f"bytes */{size}".encode()), *ISOLATION]
    body = b""
    if url_path == "/api" or url_path.startswith("/api/"):
        message = f"Range not satisfiable: the file has {size} bytes"
        body = json.dumps({"error": message, "code": "range-not-satisfiable"}).encode()
        headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": 416, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_empty(send: Send, status: int, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
