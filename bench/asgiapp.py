"""pf serve's application for ASGI servers started from their own command line, and pf
serve's own uvicorn set-up with the ``pf.wire`` extension hidden (procs_bench.py compares
them):

  granian --interface asgi --factory asgiapp:app      pf's app under another server
  python asgiapp.py PORT                              pf serve's uvicorn and protocols,
                                                      WebSocket events through plain
                                                      ASGI websocket.send

The web root and projects come from PF_BENCH_ROOT and PF_BENCH_PROJECTS; the settings
from PF_* as for pf serve. Bench only: pf serve itself wires the app in server/run.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from pf.config import load_settings
from pf.engine.service import BuildService
from pf.server.app import create_app
from pf.server.options import ServeOptions
from pf.server.run import bind, static_app, uvicorn_config
from pf.server.ws import WIRE
from pf.store import Store


def app() -> Starlette:
    settings = load_settings()
    root = Path(os.environ["PF_BENCH_ROOT"])
    store = Store.for_settings(settings)
    store.open()
    service = BuildService(settings, store, Path(os.environ["PF_BENCH_PROJECTS"]))
    return create_app(settings, service, static_app(root, settings), root_dir=root)


def without_wire(inner: ASGIApp) -> ASGIApp:
    """``inner`` as a server without pf serve's protocol would run it."""

    async def hidden(scope: Scope, receive: Receive, send: Send) -> None:
        extensions = scope.get("extensions")
        if extensions and WIRE in extensions:
            scope = {**scope, "extensions": {k: v for k, v in extensions.items() if k != WIRE}}
        await inner(scope, receive, send)

    return hidden


def main(port: int) -> None:
    settings = load_settings()
    options = ServeOptions(
        host="127.0.0.1",
        port=port,
        root=Path(os.environ["PF_BENCH_ROOT"]),
        projects=Path(os.environ["PF_BENCH_PROJECTS"]),
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
    )
    config = uvicorn_config(settings, options, without_wire(app()))
    uvicorn.Server(config).run(sockets=[bind(options.host, port, settings.backlog)])


if __name__ == "__main__":
    main(int(sys.argv[1]))
