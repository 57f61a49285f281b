"""The original's WebSocket clients against a real server: one message per event.

A client that does not ask for batches (the original's pages) gets every event as its
own message of a documented type, on ``/ws`` and ``/`` alike; one that connects with
``?batch=1`` (pf's dashboard) gets batches. A per-event client that stops reading may
lose progress and log messages, never a lifecycle event: it gets them all, or it is
closed with 1008.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.server.conftest import Server, noisy_server, unique_c, wait_for
from tests.server.test_ws import _frame, _raw_websocket, initial

CLANG = "/usr/bin/clang-14"
Event = dict[str, Any]
LIFECYCLE = {"build_started", "build_completed", "build_failed", "build_cancelled"}
ENDS = LIFECYCLE - {"build_started"}
DOCUMENTED = LIFECYCLE | {"initial_status", "build_progress", "build_log"}


# PF_WS_BATCH_MS at its default, and so large that every burst falls in one window: a
# per-event client gets one message per event either way.
@pytest.fixture(scope="module", params=[None, "3000"], ids=["default-window", "3000ms-window"])
def server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Server]:
    env = {} if request.param is None else {"PF_WS_BATCH_MS": request.param}
    running = Server(tmp_path_factory.mktemp("legacy"), env=env).start()
    yield running
    running.stop()


def unique_wat(tag: str) -> dict[str, str]:
    """A WAT module no earlier build has seen, so it runs the assembler."""
    body = '(module (func (export "f") (result i32) i32.const 7))'
    return {"main.wat": f";; {tag} {uuid.uuid4()}\n{body}\n"}


def submit_wat_burst(http: httpx.Client, count: int) -> list[str]:
    """``count`` WAT builds posted back to back: new modules (cache misses) alternating
    with the bundled project's module (cache hits after its first build)."""
    ids = []
    for n in range(count):
        if n % 2:
            response = http.post("/api/build/wat", json={})
        else:
            response = http.post(
                "/api/compile", json={"language": "wat", "files": unique_wat(f"burst{n}")}
            )
        assert response.status_code in {200, 202}, response.text
        ids.append(response.json()["buildId"])
    return ids


def messages_until_done(ws: ClientConnection, build_ids: list[str]) -> list[Event]:
    """Every message (as sent: a batch stays a batch) until each build has finished."""
    waiting, seen = set(build_ids), []
    while waiting:
        message = json.loads(ws.recv(timeout=60))
        seen.append(message)
        for event in message["updates"] if message["type"] == "batch" else [message]:
            if event["type"] in ENDS:
                waiting.discard(event["buildId"])
    return seen


def test_legacy_clients_get_one_message_per_event_and_batching_clients_get_batches(
    server: Server,
) -> None:
    with (
        connect(server.ws_url) as on_ws,
        connect(f"ws://127.0.0.1:{server.port}/") as on_root,
        connect(f"{server.ws_url}?batch=1") as batching,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        initial(on_ws), initial(on_root), initial(batching)
        ids = submit_wat_burst(http, 20)
        legacy = [messages_until_done(on_ws, ids), messages_until_done(on_root, ids)]
        batched = messages_until_done(batching, ids)
    for messages in legacy:
        assert {m["type"] for m in messages} <= DOCUMENTED  # never a batch
        for build_id in ids:
            mine = [m["type"] for m in messages if m.get("buildId") == build_id]
            assert mine[0] == "build_started" and mine[-1] == "build_completed", mine
            assert mine.count("build_started") == 1 and mine.count("build_completed") == 1
        completed = [m for m in messages if m["type"] == "build_completed"]
        assert {m["cached"] for m in completed} == {True, False}  # hits and misses
    # The same events reach the batching client, some of them grouped.
    assert any(m["type"] == "batch" for m in batched)
    unpacked = [e for m in batched for e in (m["updates"] if m["type"] == "batch" else [m])]
    lifecycle = sorted((e["buildId"], e["type"]) for e in unpacked if e["type"] in LIFECYCLE)
    assert lifecycle == sorted(
        (m["buildId"], m["type"]) for m in legacy[0] if m["type"] in LIFECYCLE
    )


def test_an_unknown_batch_value_is_refused(server: Server) -> None:
    with (
        connect(f"{server.ws_url}?batch=maybe") as ws,
        pytest.raises(ConnectionClosed) as closed,
    ):
        ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


CUT_OFF = 0  # the server closed and then cut off the connection before it was read


def read_until_done_or_closed(
    sock: socket.socket, build_ids: list[str]
) -> tuple[list[Event], int | None]:
    """Every message from a raw per-event client until each build has finished, or with
    the close code (CUT_OFF for a reset) when the server ended the connection first."""
    sock.settimeout(60)
    waiting, seen = set(build_ids), []
    while waiting:
        try:
            _, opcode, payload = _frame(sock)
        except (ConnectionResetError, AssertionError):
            return seen, CUT_OFF
        if opcode == 8:
            return seen, int.from_bytes(payload[:2], "big")
        assert opcode == 1, payload
        message = json.loads(payload)
        seen.append(message)
        if message["type"] in ENDS:
            waiting.discard(message["buildId"])
    return seen, None


def stalled_run(
    make_server: type[Server], tmp_path: Path, queue: int
) -> tuple[list[Event], int | None, list[str], str]:
    """A per-event client that reads nothing while noisy C builds and a burst of WAT
    builds run, then reads: its messages, its close code, the build ids, /metrics."""
    server = noisy_server(make_server, tmp_path, send_queue=queue)
    stalled = _raw_websocket(server.port, rcvbuf=4096)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            noisy = [
                http.post(
                    "/api/compile", json={"language": "c", "files": unique_c(f"noisy{i}")}
                ).json()["buildId"]
                for i in range(3)
            ]
            for build_id in noisy:
                assert wait_for(http, build_id)["status"] == "completed"
            # The client's transport is full now: these events wait in its queue.
            burst = submit_wat_burst(http, 20)
            for build_id in burst:
                assert wait_for(http, build_id)["status"] == "completed"
            metrics = http.get("/metrics").text
        messages, code = read_until_done_or_closed(stalled, noisy + burst)
    finally:
        stalled.close()
    return messages, code, noisy + burst, metrics


def test_a_slow_legacy_client_sheds_progress_and_logs_but_gets_every_lifecycle_event(
    make_server: type[Server], tmp_path: Path
) -> None:
    # 64 queued messages hold the 46 lifecycle events; the progress and log messages
    # around them are shed.
    messages, code, ids, metrics = stalled_run(make_server, tmp_path, queue=64)
    assert code is None
    assert {m["type"] for m in messages} <= DOCUMENTED
    for build_id in ids:
        mine = [m["type"] for m in messages if m.get("buildId") == build_id]
        lifecycle = [kind for kind in mine if kind in LIFECYCLE]
        assert lifecycle == ["build_started", "build_completed"], (build_id, mine)
    assert 'pf_ws_dropped_total{type="build_log"}' in metrics
    assert 'pf_ws_closed_total{reason="slow"}' not in metrics


def test_a_slow_legacy_client_whose_lifecycle_events_overflow_is_closed(
    make_server: type[Server], tmp_path: Path
) -> None:
    # 4 queued messages cannot hold the burst's lifecycle events: the client is closed
    # with 1008 (cut off if it does not read its close frame in time), not left to miss
    # them.
    messages, code, _, metrics = stalled_run(make_server, tmp_path, queue=4)
    assert code in {1008, CUT_OFF}
    assert 'pf_ws_closed_total{reason="slow"} 1.0' in metrics
    assert {m["type"] for m in messages} <= DOCUMENTED
    # What did arrive has no gap: every build that ended had its start arrive before.
    started = set()
    for message in messages:
        if message["type"] == "build_started":
            started.add(message["buildId"])
        elif message["type"] in ENDS:
            assert message["buildId"] in started
