"""Exception handlers: every error the server answers is JSON ``{"error": message, ...}``.

A PfError keeps its own status (``http_status``), ``code``, ``hint`` and compiler
``diagnostics``; Starlette's HTTPException (404 for an unknown path, 405) becomes the
same shape; anything else is our bug: logged with its traceback, answered 500 with no
detail. The error only the HTTP layer can raise (body too large) lives here too.
Imports pf.errors only.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pf.errors import PfError

log = logging.getLogger("pf.server")


class PayloadTooLarge(PfError):
    """A request body above PF_MAX_BODY (HTTP 413)."""

    code = "payload-too-large"
    http_status = 413

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"request body is larger than {limit} bytes",
            hint="raise PF_MAX_BODY to accept larger requests",
        )


def error_body(message: str, code: str | None = None, hint: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": message}
    if code:
        body["code"] = code
    if hint:
        body["hint"] = hint
    return body


def pf_error_response(exc: PfError) -> JSONResponse:
    """The JSON answer for a PfError, with Retry-After when the error says when to retry."""
    body = error_body(exc.message, exc.code, exc.hint)
    details = exc.to_dict()
    if "diagnostics" in details:
        body["diagnostics"] = details["diagnostics"]
    headers = {}
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int | float) and not isinstance(retry_after, bool):
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return JSONResponse(body, status_code=exc.http_status, headers=headers)


async def _pf_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PfError)
    if exc.http_status >= 500:
        log.warning("request failed", extra={"path": request.url.path, "error": exc.message})
    return pf_error_response(exc)


_HTTP_CODES = {404: "not-found", 405: "method-not-allowed"}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code)
    message = "Not found" if exc.status_code == 404 else str(exc.detail)
    return JSONResponse(error_body(message, code), status_code=exc.status_code, headers=exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    # Starlette re-raises after answering, so uvicorn logs the traceback (once); the
    # client gets no detail of our internals.
    body = error_body(
        "internal server error", "internal-error", "this is a bug in pf, please report it"
    )
    return JSONResponse(body, status_code=500)


HANDLERS = {PfError: _pf_error, HTTPException: _http_error, Exception: _server_error}
