"""WebSocket events through plain ASGI ``websocket.send`` (ws.AsgiWire): pf's app under
stock uvicorn, configured through its public options only, has no ``pf.wire`` and still
gives every client its initial status, answers, and every event of a real build."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from websockets.sync.client import connect

from pf.config import load_settings
from pf.engine.service import BuildService
from pf.server.app import create_app
from pf.server.run import bind
from pf.store import Store
from tests.server.test_ws import initial, until

DEADLINE = 30.0
WAT = '(module (func (export "answer") (result i32) i32.const 42))\n'


@pytest.fixture
def stock_uvicorn(tmp_path: Path) -> Iterator[str]:
    """pf's app under uvicorn's own HTTP and WebSocket protocols; yields host:port."""
    settings = load_settings(overrides={"database_url": f"sqlite:///{tmp_path / 'pf.db'}"})
    store = Store.for_settings(settings)
    store.open()
    projects = tmp_path / "projects"
    projects.mkdir()
    app = create_app(settings, BuildService(settings, store, projects))
    config = uvicorn.Config(app, ws="websockets-sansio", log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    sock = bind("127.0.0.1", 0, 16)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + DEADLINE
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    host, port = sock.getsockname()[:2]
    try:
        yield f"{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(DEADLINE)
        sock.close()
        store.close()


def test_events_reach_clients_through_plain_asgi(stock_uvicorn: str) -> None:
    with (
        connect(f"ws://{stock_uvicorn}/ws") as single,
        connect(f"ws://{stock_uvicorn}/ws?batch=1") as batching,
    ):
        for ws in (single, batching):
            assert initial(ws)["builds"] == []
        single.send(json.dumps({"type": "ping"}))
        assert json.loads(single.recv(timeout=DEADLINE)) == {"type": "pong"}
        answer = httpx.post(
            f"http://{stock_uvicorn}/api/compile",
            json={"language": "wat", "files": {"main.wat": WAT}},
        )
        assert answer.status_code == 202, answer.text
        build_id = answer.json()["buildId"]
        for ws in (single, batching):
            seen = [event for _, event, _ in until(ws, build_id, timeout=DEADLINE)]
            kinds = [e["type"] for e in seen if e.get("buildId") == build_id]
            assert kinds[0] == "build_started" and kinds[-1] == "build_completed", kinds
        assert httpx.get(f"http://{stock_uvicorn}/api/metrics").json()["wsConnections"] == 2
