"""Resuming a build's log over the WebSocket of one embedded pf serve (SQLite, no Redis),
and a pf serve whose Redis is down when it starts."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from websockets.sync.client import connect

from tests.redisd import RedisServer
from tests.server.conftest import Server, chatty_tool, wait_for, wait_ready
from tests.server.test_shared_events import (
    CLANG,
    DEADLINE,
    _lines,
    _resume,
    _stored,
    _submit,
    _until_end,
    _until_seq,
)


def test_a_client_resumes_a_busy_build_from_the_stored_log(
    make_server: type[Server], tmp_path: Path
) -> None:
    wrapper = chatty_tool(tmp_path, CLANG, lines=2000, delay=0.001)
    server = make_server(
        tmp_path / "w",
        env={"PF_TOOL_CLANG": str(wrapper), "PF_SANDBOX": "off", "PF_CCACHE": "0"},
    ).start()
    with connect(server.ws_url) as first:
        assert json.loads(first.recv(timeout=10))["type"] == "initial_status"
        build_id = _submit(server, "embedded")
        before = _lines(_until_seq(first, build_id, 100))
    last = before[-1][0]
    # Back at once, while lines pour in: some come live while the stored ones are sent.
    with connect(f"{server.ws_url}?batch=1") as again:
        _resume(again, build_id, last)
        after = _until_end(again, build_id)
    lines = before + _lines(after)
    assert [seq for seq, _ in lines] == list(range(len(lines)))
    assert [text for _, text in lines] == _stored(server, build_id)
    assert len(lines) > 2000

    # A build that ended long ago resumes from its stored log too, and only it.
    with connect(server.ws_url) as late:
        assert json.loads(late.recv(timeout=10))["type"] == "initial_status"
        late.send(json.dumps({"type": "subscribe", "buildIds": [], "after": {build_id: 1999}}))
        assert json.loads(late.recv(timeout=10))["type"] == "subscribed"
        rest = _until_seq(late, build_id, len(lines) - 1)
    assert {event["type"] for event in rest} == {"build_log"}
    assert [seq for seq, _ in _lines(rest)] == list(range(2000, len(lines)))


def test_pf_serve_starts_with_redis_down_and_says_so_until_it_answers(
    make_server: type[Server], tmp_path: Path, redis_server: RedisServer, redis_url: str
) -> None:
    redis_server.stop()
    try:
        server = make_server(
            tmp_path / "w", env={"PF_REDIS_URL": redis_url, "PF_SANDBOX": "off"}
        ).start()
        with httpx.Client(base_url=server.url, timeout=30) as http:
            down = wait_ready(http, False, DEADLINE)
            assert down["events"] == "unavailable"
            assert "event bus" in str(down["reason"]) and "does not answer" in str(down["reason"])
            # Builds still run, and this server's clients still see them.
            with connect(server.ws_url) as ws:
                assert json.loads(ws.recv(timeout=10))["type"] == "initial_status"
                build_id = _submit(server, "no-redis")
                assert _until_end(ws, build_id)[-1]["type"] == "build_completed"
            redis_server.start()
            assert wait_ready(http, True, DEADLINE)["events"] == "ok"
            assert wait_for(http, build_id)["status"] == "completed"
    finally:
        if redis_server.process is None:
            redis_server.start()
