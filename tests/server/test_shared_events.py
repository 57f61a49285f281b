"""Two pf serve processes sharing one PostgreSQL and one Redis: a WebSocket client on
either sees every event and log line of a build running on the other, in order, resumes
after a reconnect with no gap and no duplicate, and rides out a Redis restart."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.redisd import RedisServer
from tests.server.conftest import Server, chatty_tool, unique_c, wait_for, wait_ready

CLANG = "/usr/bin/clang-14"
DEADLINE = 60.0
Event = dict[str, Any]


def _pair(
    make_server: type[Server], tmp_path: Path, pg_url: str, redis_url: str, lines: int, delay: float
) -> tuple[Server, Server]:
    """Servers A and B on one database and one Redis; C compiles print ``lines`` lines,
    ``delay`` seconds apart, and run where they were submitted (PF_LOCAL_BUILDS)."""
    wrapper = chatty_tool(tmp_path, CLANG, lines=lines, delay=delay)
    env = {
        "PF_DATABASE_URL": pg_url,
        "PF_REDIS_URL": redis_url,
        "PF_LOCAL_BUILDS": "1",
        "PF_TOOL_CLANG": str(wrapper),
        "PF_SANDBOX": "off",
        "PF_CCACHE": "0",
        "PF_WS_BATCH_MS": "20",
    }
    a = make_server(tmp_path / "a", env=env).start()
    b = make_server(tmp_path / "b", env=env).start()
    return a, b


def _receive(ws: ClientConnection, deadline: float) -> Iterator[Event]:
    """Events as they come (batches unpacked), until ``deadline``."""
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = json.loads(ws.recv(timeout=left))
        except TimeoutError:
            return
        yield from message["updates"] if message["type"] == "batch" else [message]


def _until_end(ws: ClientConnection, build_id: str) -> list[Event]:
    """This build's events up to its build_completed."""
    seen = []
    for event in _receive(ws, time.monotonic() + DEADLINE):
        if event.get("buildId") == build_id:
            seen.append(event)
            if event["type"] == "build_completed":
                return seen
    raise TimeoutError(f"no build_completed for {build_id}: {[e['type'] for e in seen]}")


def _until_seq(ws: ClientConnection, build_id: str, seq: int) -> list[Event]:
    """This build's events up to the one holding line ``seq``."""
    seen = []
    for event in _receive(ws, time.monotonic() + DEADLINE):
        if event.get("buildId") == build_id:
            seen.append(event)
            if event["type"] == "build_log" and event["lines"][-1]["seq"] >= seq:
                return seen
    raise TimeoutError(f"line {seq} of {build_id} never came")


def _resume(ws: ClientConnection, build_id: str, last: int) -> None:
    """Ask for a build's lines after ``last`` on a new connection. Lines that come before
    the answer were sent before the subscription took effect: the resume sends them again,
    so a client drops them (the build must still be running: its end would be lost too)."""
    assert json.loads(ws.recv(timeout=10))["type"] == "initial_status"
    ws.send(json.dumps({"type": "subscribe", "buildIds": [build_id], "after": {build_id: last}}))
    for event in _receive(ws, time.monotonic() + DEADLINE):
        if event["type"] == "subscribed":
            assert build_id in event["buildIds"]
            return
        assert event["type"] in ("build_log", "build_progress"), event
    raise TimeoutError("no answer to the subscription")


def _lines(seen: list[Event]) -> list[tuple[int, str]]:
    return [
        (line["seq"], line["text"]) for e in seen if e["type"] == "build_log" for line in e["lines"]
    ]


def _submit(server: Server, tag: str) -> str:
    answer = httpx.post(
        f"{server.url}/api/compile", json={"language": "c", "files": unique_c(tag)}, timeout=30
    )
    assert answer.status_code == 202, answer.text
    build_id: str = answer.json()["buildId"]
    return build_id


def _stored(server: Server, build_id: str) -> list[str]:
    answer = httpx.get(f"{server.url}/api/logs/{build_id}", timeout=30)
    assert answer.status_code == 200, answer.text
    return [entry["message"] for entry in answer.json()["logs"]]


@pytest.fixture
def quick(
    make_server: type[Server], tmp_path: Path, pg_url: str, redis_url: str
) -> tuple[Server, Server]:
    return _pair(make_server, tmp_path, pg_url, redis_url, lines=400, delay=0)


@pytest.fixture
def slow(
    make_server: type[Server], tmp_path: Path, pg_url: str, redis_url: str
) -> tuple[Server, Server]:
    return _pair(make_server, tmp_path, pg_url, redis_url, lines=100, delay=0.05)


def test_a_client_of_one_server_sees_a_build_of_the_other_whole_and_in_order(
    quick: tuple[Server, Server],
) -> None:
    a, b = quick
    with connect(b.ws_url) as on_b, connect(f"{a.ws_url}?batch=1") as on_a:
        for ws in (on_b, on_a):
            assert json.loads(ws.recv(timeout=10))["type"] == "initial_status"
        build_id = _submit(a, "across")
        there = _until_end(on_b, build_id)
        here = _until_end(on_a, build_id)
    assert there[0] == {
        "type": "build_started",
        "buildId": build_id,
        "language": "c",
        "target": "wasm",
        "project": None,
    }
    lines = _lines(there)
    assert [seq for seq, _ in lines] == list(range(len(lines)))
    # Every line the build stored, in its order, and the same as its own server's client.
    assert [text for _, text in lines] == _stored(a, build_id) == _stored(b, build_id)
    assert _lines(here) == lines
    assert [e["type"] for e in there if e["type"] != "build_log"] == [
        e["type"] for e in here if e["type"] != "build_log"
    ]
    assert there[-1]["type"] == "build_completed"
    for server in (a, b):
        with httpx.Client(base_url=server.url, timeout=30) as http:
            assert wait_ready(http, True)["events"] == "ok"


def test_a_client_that_reconnects_resumes_after_the_last_line_it_saw(
    slow: tuple[Server, Server],
) -> None:
    a, b = slow
    with connect(b.ws_url) as first:
        assert json.loads(first.recv(timeout=10))["type"] == "initial_status"
        build_id = _submit(a, "resume")
        first.send(json.dumps({"type": "subscribe", "buildIds": [build_id]}))
        before = _lines(_until_seq(first, build_id, 10))
    last = before[-1][0]
    # Lines go on while nobody listens.
    deadline = time.monotonic() + DEADLINE
    while len(_stored(a, build_id)) < last + 10:
        assert time.monotonic() < deadline, "the build stopped logging"
        time.sleep(0.05)
    # The client comes back to the other server, naming the last line it saw.
    with connect(a.ws_url) as again:
        _resume(again, build_id, last)
        after = _until_end(again, build_id)
    lines = before + _lines(after)
    assert [seq for seq, _ in lines] == list(range(len(lines)))
    assert [text for _, text in lines] == _stored(b, build_id)
    with httpx.Client(base_url=a.url, timeout=30) as http:
        assert wait_for(http, build_id)["status"] == "completed"


def test_a_resume_message_is_checked(quick: tuple[Server, Server]) -> None:
    _, b = quick
    with connect(b.ws_url) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "initial_status"
        for after in ({"x": "3"}, {"x": -2}, {"x": True}, ["x"]):
            ws.send(json.dumps({"type": "subscribe", "buildIds": [], "after": after}))
            reply = json.loads(ws.recv(timeout=10))
            assert reply["type"] == "error" and "after" in reply["error"]
        # A build nobody knows has no lines to resume: the subscription is all.
        ws.send(json.dumps({"type": "subscribe", "buildIds": [], "after": {"nope": -1}}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "subscribed", "buildIds": ["nope"]}
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "pong"}


def test_a_redis_restart_mid_build_loses_no_build_and_no_line(
    slow: tuple[Server, Server], redis_server: RedisServer, pg_url: str
) -> None:
    a, b = slow
    with connect(b.ws_url) as on_b:
        assert json.loads(on_b.recv(timeout=10))["type"] == "initial_status"
        build_id = _submit(a, "restart")
        before = _until_seq(on_b, build_id, 5)
        redis_server.stop()
        with httpx.Client(base_url=a.url, timeout=30) as http:
            down = wait_ready(http, False, DEADLINE)
            assert down["events"] == "unavailable"
            assert "event bus" in str(down["reason"])
            redis_server.start()
            after = _until_end(on_b, build_id)
            assert wait_ready(http, True, DEADLINE)["events"] == "ok"
            record = wait_for(http, build_id)
    assert record["status"] == "completed"
    seen = before + after
    assert [e["type"] for e in seen].count("build_completed") == 1
    lines = _lines(seen)
    assert [seq for seq, _ in lines] == list(range(len(lines)))
    assert [text for _, text in lines] == _stored(b, build_id)
    # Recorded once, on the shared database.
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT status FROM builds WHERE id = %s", (build_id,)).fetchall()
    assert rows == [("completed",)]
