"""Static files and content-addressed artifacts for pf serve; no business logic.

Owns everything between a file on disk and its bytes on the wire (docs/server.md,
"Static files"): the web demo and dashboard under ``/``, built artifacts under ``/wasm``,
and the bytes of ``/api/builds/{id}/artifacts/{path}`` through :func:`file_response`.
Strong ETags (the sha256 of the content, cached by inode, size and mtime), Last-Modified,
304, single Range requests, immutable caching for content-addressed and hashed names,
brotli/gzip made once per digest in a bounded sidecar directory, COOP/COEP on every
response, the SPA fallback, and no way out of the served roots.

    _http.py      header logic: media types, Accept-Encoding q-values, Range, validators
    _compress.py  the sidecar directory of compressed variants and its producer thread
    _files.py     FileServer: one file -> one response, from a bounded LRU of entries
    _app.py       Static: URL -> file inside a root, path safety, SPA fallback

Imports starlette, brotli and pf.config only; the API layer imports this, not the reverse.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from pf.server.static._app import Static
from pf.server.static._files import FileServer, Options
from pf.server.static._http import media_type_for

__all__ = ["FileServer", "Static", "file_response"]

_default: FileServer | None = None


class _FileAnswer(Response):
    """A Response whose headers and body are decided when it is sent (conditional, Range)."""

    def __init__(self, files: FileServer, path: str, options: Options) -> None:
        self.status_code = 200
        self.background = None
        self.raw_headers = []
        self._files = files
        self._path = path
        self._options = options

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not await self._files.serve(scope, receive, send, self._path, self._options):
            body = b'{"error":"Artifact not found"}'
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
            await send({"type": "http.response.start", "status": 404, "headers": headers})
            await send({"type": "http.response.body", "body": body})


def _files_for(request: Request) -> FileServer:
    """The FileServer of ``app.state.static``, else of the latest Static, else a default."""
    static = getattr(request.app.state, "static", None) or Static.latest
    if isinstance(static, Static):
        return static.files
    global _default
    if _default is None:
        from pf.config import load_settings

        _default = Static([], cache_dir=load_settings().cache_dir).files
    return _default


async def file_response(
    request: Request,
    path: Path | str,
    *,
    etag: str | None = None,
    immutable: bool = False,
    media_type: str | None = None,
    name: str | None = None,
) -> Response:
    """A response for one file with validators, 304, Range and stored compressed variants.

    ``etag`` is the content digest when the caller knows it (CAS artifacts): the file is
    then never hashed. ``immutable`` adds ``Cache-Control: public, max-age=31536000,
    immutable``. The media type comes from ``media_type``, else from ``name`` (a CAS blob
    has no extension), else from ``path``. For example::

        return await file_response(request, artifact.path, etag=artifact.digest,
                                   immutable=True, name=artifact.name)
    """
    if media_type is None and name is not None:
        media_type = media_type_for(name)
    options = Options(digest=etag, immutable=immutable, media_type=media_type)
    return _FileAnswer(_files_for(request), os.fspath(path), options)
