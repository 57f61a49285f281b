"""``/api/session``: the dashboard signs in with a token and gets an HttpOnly cookie.

``POST`` ``{"token": ...}`` answers ``{name, scope, expires}`` and sets ``pf_session``
(HttpOnly, SameSite=Strict, Path=/, Max-Age=PF_SESSION_TTL, Secure over https); the
cookie then authenticates like the token, WebSocket handshakes included. ``DELETE``
signs out. ``GET`` says whether the API wants authentication and who the caller is, so a
page knows to show its sign-in form. All three are open: they are how one gets in.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from pf.engine.jobs import iso_time
from pf.server import schemas
from pf.server.auth import SESSION_COOKIE, Credentials, Principal, Unauthorized
from pf.server.errors import pf_error_response


def _credentials(request: Request) -> Credentials:
    credentials: Credentials = request.app.state.credentials
    return credentials


def _cookie(request: Request, value: str, max_age: int) -> str:
    secure = "; Secure" if request.url.scheme in ("https", "wss") else ""
    return f"{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"


def _caller(request: Request) -> Principal | None:
    return _credentials(request).identify(request.scope["headers"])


async def session_state(request: Request) -> Response:
    credentials = _credentials(request)
    principal = _caller(request)
    return JSONResponse(
        {
            "authRequired": credentials.required or not request.app.state.open_when_no_token,
            "authenticated": principal is not None,
            "name": principal.name if principal else None,
            "scope": principal.scope if principal else None,
        }
    )


async def sign_in(request: Request) -> Response:
    body = await schemas.read_json(request, request.app.state.settings.max_body)
    if not isinstance(body, dict) or set(body) != {"token"} or not isinstance(body["token"], str):
        raise schemas.InvalidBody('the body must be {"token": "<token>"}')
    token: str = body["token"]
    credentials = _credentials(request)
    session = await credentials.sign_in(token)
    if session is None:
        answer = pf_error_response(Unauthorized("unknown or revoked token"))
        answer.headers["WWW-Authenticate"] = "Bearer"
        return answer
    principal, expires, secret = session
    answer = JSONResponse(
        {"name": principal.name, "scope": principal.scope, "expires": iso_time(expires)}
    )
    answer.headers["Set-Cookie"] = _cookie(request, secret, int(credentials.session_ttl))
    answer.headers["Cache-Control"] = "no-store"
    return answer


async def sign_out(request: Request) -> Response:
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        await _credentials(request).sign_out(secret.encode("latin-1"))
    answer = JSONResponse({"signedOut": True})
    answer.headers["Set-Cookie"] = _cookie(request, "", 0)
    return answer


ROUTES: list[BaseRoute] = [
    Route("/api/session", session_state, methods=["GET"]),
    Route("/api/session", sign_in, methods=["POST"]),
    Route("/api/session", sign_out, methods=["DELETE"]),
]
