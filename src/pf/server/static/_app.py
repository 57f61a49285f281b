"""The static-files ASGI app: URL -> file inside a served root, SPA fallback, plain errors.

Path safety is decided here, once, before any file is touched: uvicorn has already
percent-decoded the path once, so a decoded path still holding ``%2e``, ``%2f``, ``%5c``
or ``%00`` was encoded twice and is refused (400), as are ``.``/``..`` segments,
backslashes, NUL, control characters and ``//`` (an absolute path smuggled in). What
remains is joined under the root and resolved with ``realpath``; a result outside the
root (a symlink leading out) is refused (404, no SPA fallback). Dotfiles are not served
(``.git``, ``.env``), except ``.well-known``.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from starlette.types import Receive, Scope, Send

from pf.server.static._compress import Sidecars
from pf.server.static._files import ISOLATION, FileServer, Options
from pf.server.static._http import is_hashed_name

MiB = 1024 * 1024
RESOLVE_TTL = 2.0  # seconds a URL -> real path answer is reused (symlink swaps show up after it)
RESOLVE_MAX = 4096
_DOUBLE_ENCODED = re.compile(r"%(?:2e|2f|5c|00)", re.IGNORECASE)
_PLAIN = Options()
_HASHED = Options(immutable=True)
_BAD = object()  # a malformed or traversing path: 400
_REFUSED = object()  # a dotfile, or a symlink leading out of the root: 404 without fallback


class Static:
    """ASGI app serving files under URL prefixes, with an optional single-page-app index.

    ``roots`` pairs a URL prefix with a directory; the longest matching prefix is tried
    first and the next matching one if the file is missing there. For example::

        Static([("/wasm", build_dir), ("/", web_dir)], spa_index=web_dir / "index.html",
               cache_dir=settings.cache_dir)

    Unknown ``/api/...`` paths get a JSON 404 here too, never the SPA index. The latest
    Static built in a process is what ``file_response`` uses unless ``app.state.static``
    names one.
    """

    latest: ClassVar[Static | None] = None

    def __init__(
        self,
        roots: Sequence[tuple[str, Path]],
        *,
        spa_index: Path | None = None,
        cache_dir: Path,
        memory_bytes: int = 64 * MiB,
        memory_file_max: int = 4 * MiB,
        sidecar_bytes: int = 512 * MiB,
        sidecar_files: int = 20_000,
    ) -> None:
        self.roots = sorted(
            ((prefix.rstrip("/"), os.path.realpath(root)) for prefix, root in roots),
            key=lambda pair: len(pair[0]),
            reverse=True,
        )
        self.spa_index = os.path.realpath(spa_index) if spa_index is not None else None
        sidecars = Sidecars(
            cache_dir / "compressed",
            max_bytes=sidecar_bytes,
            max_files=sidecar_files,
            memory_file_max=memory_file_max,
        )
        self.files = FileServer(
            sidecars, memory_bytes=memory_bytes, memory_file_max=memory_file_max
        )
        self._resolved: OrderedDict[str, tuple[float, object]] = OrderedDict()
        Static.latest = self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1000})
            return
        path = _route_path(scope)
        if path == "/api" or path.startswith("/api/"):
            await _send_text(
                send, 404, json.dumps({"error": f"Not found: {path}"}), "application/json"
            )
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _send_text(send, 405, "Method Not Allowed", extra=[(b"allow", b"GET, HEAD")])
            return
        found = self._resolve(path)
        if found is _BAD:
            await _send_text(send, 400, "Bad Request")
            return
        if found is _REFUSED:
            await _send_text(send, 404, "Not Found")
            return
        if isinstance(found, tuple):
            real, options = found
            if await self.files.serve(scope, receive, send, real, options):
                return
        if self.spa_index is not None and "." not in path.rsplit("/", 1)[-1]:
            if await self.files.serve(scope, receive, send, self.spa_index, _PLAIN):
                return
        await _send_text(send, 404, "Not Found")

    def _resolve(self, path: str) -> object:
        """(real path, Options) for a URL path; None if absent; _BAD or _REFUSED."""
        now = time.monotonic()
        cached = self._resolved.get(path)
        if cached is not None and cached[0] > now:
            return cached[1]
        if "\\" in path or "//" in path or not path.isprintable() or _DOUBLE_ENCODED.search(path):
            return _BAD
        segments = [s for s in path.split("/") if s]
        if any(s in (".", "..") for s in segments):
            return _BAD
        found: object = _REFUSED
        if not any(s.startswith(".") and s != ".well-known" for s in segments):
            found = self._locate(path, segments)
        if isinstance(found, str):
            found = (found, _HASHED if is_hashed_name(found) else _PLAIN)
        if len(self._resolved) >= RESOLVE_MAX:
            self._resolved.popitem(last=False)
        self._resolved[path] = (now + RESOLVE_TTL, found)
        return found

    def _locate(self, path: str, segments: list[str]) -> object:
        """The real path of the first root's file; _REFUSED if one leads outside its root."""
        refused = False
        for prefix, root in self.roots:
            if prefix and path != prefix and not path.startswith(prefix + "/"):
                continue
            skip = len([s for s in prefix.split("/") if s])
            candidate = os.path.realpath(os.path.join(root, *segments[skip:]))
            if os.path.isdir(candidate):
                candidate = os.path.realpath(os.path.join(candidate, "index.html"))
            if candidate != root and not candidate.startswith(root.rstrip("/") + "/"):
                refused = True  # a symlink on the way leads out of the root
                continue
            if os.path.isfile(candidate):
                return candidate
        return _REFUSED if refused else None


def _route_path(scope: Scope) -> str:
    """The path below the mount point (as starlette's get_route_path)."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if (
        root_path
        and path.startswith(root_path)
        and path[len(root_path) : len(root_path) + 1] in ("/", "")
    ):
        return path[len(root_path) :] or "/"
    return path


async def _send_text(
    send: Send,
    status: int,
    text: str,
    media_type: str = "text/plain; charset=utf-8",
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = text.encode()
    headers = [
        (b"content-type", media_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *(extra or []),
        *ISOLATION,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    """Lets the app run alone under uvicorn (tests, benchmarks): nothing to start or stop."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
