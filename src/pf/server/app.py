"""The ASGI application of pf serve: routes, middleware, error handlers and lifespan.

``create_app`` wires the pieces and owns their order: the REST routes of api.py, the
OpenAPI document, Prometheus metrics and the WebSocket endpoints first, then a JSON
404 for any other ``/api/...`` path, and the static files (with their SPA fallback)
mounted last, so they only ever see non-API paths. Every request passes the metrics,
then guard.py (Host, body type, CORS, WebSocket Origin), then auth.py (token scopes).
The lifespan starts the build service, the token cache and the WebSocket hub, and on
shutdown stops the hub, then lets running builds finish within PF_SHUTDOWN_GRACE
before the service cancels them.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.types import ASGIApp

from pf.server import api
from pf.server.auth import Authenticate, Credentials, is_private
from pf.server.errors import HANDLERS
from pf.server.guard import Guard, check_origins
from pf.server.metrics import prometheus
from pf.server.middleware import RequestMetrics, RequestStats
from pf.server.openapi import openapi
from pf.server.ratelimit import RateLimit
from pf.server.ws import Hub
from pf.store.tokens import TokenStore

if TYPE_CHECKING:
    from pf.config import Settings
    from pf.engine.service import BuildService

log = logging.getLogger("pf.server")

# pf's own pages (dashboard, playground) and their scripts: package data, served at /_pf/
# by the static app of run.py, the pages themselves at short URLs.
WEB_DIR = Path(__file__).resolve().parent / "web"
PAGES = {"/dashboard": "dashboard.html", "/playground": "playground.html"}


async def _page(request: Request) -> Response:
    from pf.server.static import file_response

    return await file_response(request, WEB_DIR / PAGES[request.url.path])


def create_app(
    settings: Settings,
    service: BuildService,
    static_app: ASGIApp | None = None,
    *,
    root_dir: Path | None = None,
    bound_host: str = "127.0.0.1",
    insecure_no_auth: bool = False,
) -> Starlette:
    """The pf serve application over ``service``; ``static_app`` serves every non-API path.

    ``bound_host`` is the address pf serve listens on: a Host header may name it, and
    while no token exists the API is open only on loopback without a reverse proxy in
    front (PF_TRUSTED_PROXIES), or with ``insecure_no_auth``.
    """
    check_origins(settings.cors_origins)  # now, not at the first request
    hub = Hub(service, settings)
    stats = RequestStats()
    credentials = Credentials(TokenStore(service.store.db), settings.session_ttl)
    open_when_no_token = insecure_no_auth or is_private(bound_host, bool(settings.trusted_proxies))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await service.start()
        await credentials.start()
        hub.start()
        # Everything alive now (modules, tables, the app) lives as long as the process:
        # out of the collector's sight, full collections stay short (p99 latency).
        gc.freeze()
        log.info("build service started")
        try:
            yield
        finally:
            await hub.stop()
            await credentials.stop()
            log.info("stopping the build service", extra={"grace": settings.shutdown_grace})
            await service.stop(settings.shutdown_grace)

    routes: list[BaseRoute] = [
        *api.ROUTES,
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
        *(Route(path, _page, methods=["GET", "HEAD"]) for path in PAGES),
        WebSocketRoute("/ws", hub.endpoint),
        WebSocketRoute("/", hub.endpoint),  # the original's clients connect to the root
        # Every method (TRACE, PROPFIND, ...): none may fall through to the static files.
        Route("/api", api.UnknownApi()),
        Route("/api/{rest:path}", api.UnknownApi()),
    ]
    if static_app is not None:
        routes.append(Mount("/", app=static_app))
    middleware: list[Middleware] = [
        Middleware(RequestMetrics, stats=stats),
        Middleware(
            Guard,
            bound_host=bound_host,
            allowed_hosts=settings.allowed_hosts,
            cors_origins=settings.cors_origins,
        ),
        Middleware(Authenticate, credentials=credentials, open_when_no_token=open_when_no_token),
        Middleware(RateLimit, per_minute=settings.rate_limit, burst=settings.rate_burst),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers=HANDLERS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.service = service
    app.state.hub = hub
    app.state.credentials = credentials
    app.state.open_when_no_token = open_when_no_token
    app.state.static = static_app  # file_response() serves artifacts through its file cache
    app.state.request_stats = stats
    app.state.system_cache = api.SystemCache()
    app.state.list_cache = api.ListCache()
    app.state.root_dir = root_dir or Path.cwd()
    return app
