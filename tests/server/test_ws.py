"""The WebSocket API against a real server: initial status, events, logs, resuming,
batching, limits. The tests on ``chatty`` run in both modes: against one embedded server
and against the shared deployment, where the client's process, the submission's and
the worker running the build may all differ."""

from __future__ import annotations

import base64
import json
import os
import socket
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.server.conftest import (
    MODES,
    Server,
    chatty_tool,
    noisy_server,
    server_in_mode,
    unique_c,
    wait_for,
)

CLANG = "/usr/bin/clang-14"
Event = dict[str, Any]


def events(ws: ClientConnection, timeout: float) -> Iterator[tuple[float, Event, bool]]:
    """(arrival time, event, came in a batch) for every event until ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            raw = ws.recv(timeout=left)
        except TimeoutError:
            return
        now = time.monotonic()
        message = json.loads(raw)
        if message["type"] == "batch":
            for update in message["updates"]:
                yield now, update, True
        else:
            yield now, message, False


def until(
    ws: ClientConnection, build_id: str, last: str = "build_completed", timeout: float = 60
) -> list[tuple[float, Event, bool]]:
    """Every event received up to ``last`` for ``build_id``."""
    seen = []
    for when, event, batched in events(ws, timeout):
        seen.append((when, event, batched))
        if event.get("buildId") == build_id and event["type"] == last:
            return seen
    raise TimeoutError(f"no {last} for {build_id}; saw {[e['type'] for _, e, _ in seen]}")


def until_all(
    ws: ClientConnection, build_ids: list[str], timeout: float = 60
) -> list[tuple[float, Event, bool]]:
    """Every event received until each of ``build_ids`` has finished."""
    waiting, seen = set(build_ids), []
    ends = {"build_completed", "build_failed", "build_cancelled"}
    for when, event, batched in events(ws, timeout):
        seen.append((when, event, batched))
        if event["type"] in ends:
            waiting.discard(event.get("buildId", ""))
            if not waiting:
                return seen
    raise TimeoutError(f"builds {sorted(waiting)} did not finish")


def initial(ws: ClientConnection) -> Event:
    message = json.loads(ws.recv(timeout=10))
    assert message["type"] == "initial_status"
    return message


@pytest.fixture(scope="module", params=MODES)
def chatty(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """C compiles print 4 lines a quarter second apart before the compiler runs: on one
    embedded server, then on the shared deployment (2 API processes, 2 pf workers)."""
    yield from server_in_mode(request, tmp_path_factory, chatty=True)


def test_initial_status_on_ws_and_on_the_root_path(chatty: Server) -> None:
    with httpx.Client(base_url=chatty.url) as http:
        done = wait_for(http, http.post("/api/build/wat", json={}).json()["buildId"])
    for path in ("/ws", "/"):
        with connect(f"ws://127.0.0.1:{chatty.port}{path}") as ws:
            builds = initial(ws)["builds"]
            assert done["buildId"] in [b["buildId"] for b in builds]
            assert {"buildId", "status", "progress"} <= set(builds[0])


def test_event_order_and_log_lines_while_the_compiler_runs(chatty: Server) -> None:
    with connect(chatty.ws_url) as ws, httpx.Client(base_url=chatty.url) as http:
        initial(ws)
        build_id = http.post(
            "/api/compile", json={"language": "c", "files": unique_c("order")}
        ).json()["buildId"]
        seen = until(ws, build_id)
        mine = [(when, e) for when, e, _ in seen if e.get("buildId") == build_id]
        kinds = [e["type"] for _, e in mine]
        assert kinds[0] == "build_started" and kinds[-1] == "build_completed"
        assert "build_progress" in kinds and "build_log" in kinds
        started = mine[0][1]
        assert started == {
            "type": "build_started",
            "buildId": build_id,
            "language": "c",
            "target": "wasm",
            "project": None,
        }
        progress = [e["progress"] for _, e in mine if e["type"] == "build_progress"]
        assert progress == sorted(progress) and 0 < progress[-1] < 100
        assert {"status", "phase", "eta"} <= set(next(e for _, e in mine if "progress" in e))
        completed = mine[-1][1]
        assert completed["status"] == "completed" and completed["progress"] == 100
        assert completed["cached"] is False
        lines = [
            (when, line) for when, e in mine if e["type"] == "build_log" for line in e["lines"]
        ]
        texts = [line["text"] for _, line in lines]
        assert "progress line 0 of a chatty compiler wrapper" in texts
        assert all(line["stream"] in {"stdout", "stderr", "pf"} for _, line in lines)
        # Live: the first line arrived long before the end, while the build still ran.
        first_line = next(when for when, line in lines if line["text"].startswith("progress"))
        assert mine[-1][0] - first_line > 0.5


def test_first_log_line_arrives_while_the_build_is_running(chatty: Server) -> None:
    with connect(chatty.ws_url) as ws, httpx.Client(base_url=chatty.url) as http:
        initial(ws)
        build_id = http.post(
            "/api/compile", json={"language": "c", "files": unique_c("live")}
        ).json()["buildId"]
        status_at_first_line = None
        for _, event, _ in events(ws, 30):
            mine = event.get("buildId") == build_id
            if mine and event["type"] == "build_log" and status_at_first_line is None:
                status_at_first_line = http.get(f"/api/builds/{build_id}").json()["status"]
            if mine and event["type"] == "build_completed":
                break
        assert status_at_first_line == "running"


def test_a_client_that_reconnects_resumes_its_build_after_the_last_line_it_saw(
    chatty: Server,
) -> None:
    with httpx.Client(base_url=chatty.url) as http:
        with connect(chatty.ws_url) as first:
            initial(first)
            build_id = http.post(
                "/api/compile", json={"language": "c", "files": unique_c("resume")}
            ).json()["buildId"]
            seen: list[dict[str, Any]] = []
            for _, event, _ in events(first, 30):
                if event.get("buildId") == build_id and event["type"] == "build_log":
                    seen += event["lines"]
                if any(line["text"].startswith("progress line 1 ") for line in seen):
                    break
        # A new connection (in shared mode, likely to the other API process) while the
        # build still runs: the lines after the last one seen, then the live ones.
        with connect(chatty.ws_url) as again:
            initial(again)
            after = {build_id: seen[-1]["seq"]}
            again.send(json.dumps({"type": "subscribe", "buildIds": [build_id], "after": after}))
            rest = until(again, build_id)
        stored = http.get(f"/api/logs/{build_id}").json()["logs"]
    resumed = [
        line
        for _, e, _ in rest
        if e.get("buildId") == build_id and e["type"] == "build_log"
        for line in e["lines"]
    ]
    # Lines sent live before the subscription took effect come again: clients drop them.
    fresh = [line for line in resumed if line["seq"] > seen[-1]["seq"]]
    lines = seen + sorted({line["seq"]: line for line in fresh}.values(), key=lambda x: x["seq"])
    assert [line["seq"] for line in lines] == list(range(len(lines)))
    assert [line["text"] for line in lines] == [entry["message"] for entry in stored]
    assert "progress line 3 of a chatty compiler wrapper" in [line["text"] for line in fresh]


def test_a_burst_of_events_is_batched_for_a_client_that_asks(chatty: Server) -> None:
    with connect(f"{chatty.ws_url}?batch=1") as ws, httpx.Client(base_url=chatty.url) as http:
        initial(ws)
        ids = http.post("/api/build/all", json={"target": "llvm"}).json()["buildIds"]
        ids += http.post("/api/build/all", json={"target": "asm"}).json()["buildIds"]
        raw: list[Event] = []
        waiting = set(ids)
        deadline = time.monotonic() + 60
        while waiting and time.monotonic() < deadline:
            message = json.loads(ws.recv(timeout=deadline - time.monotonic()))
            raw.append(message)
            updates = message["updates"] if message["type"] == "batch" else [message]
            for event in updates:
                if event["type"] in {"build_completed", "build_failed"}:
                    waiting.discard(event["buildId"])
        assert not waiting
    batches = [m for m in raw if m["type"] == "batch"]
    assert batches, "a burst of events was sent one message per event"
    # A window holding a single event sends it as itself, never as a batch of one.
    assert all(len(m["updates"]) >= 2 for m in batches)
    assert any(m["type"] != "batch" for m in raw)


def test_subscribe_limits_build_logs_to_those_builds(chatty: Server) -> None:
    with (
        connect(chatty.ws_url) as narrow,
        connect(chatty.ws_url) as wide,
        httpx.Client(base_url=chatty.url) as http,
    ):
        initial(narrow), initial(wide)
        post = {"language": "c", "files": unique_c("mine")}
        mine = http.post("/api/compile", json=post).json()["buildId"]
        narrow.send(json.dumps({"type": "subscribe", "buildIds": [mine]}))
        early = []
        for item in events(narrow, 10):  # the reply: from now on the filter holds
            early.append(item)
            if item[1]["type"] == "subscribed":
                break
        other = http.post(
            "/api/compile", json={"language": "c", "files": unique_c("other")}
        ).json()["buildId"]
        seen_narrow = early + until_all(narrow, [mine, other])
        seen_wide = until_all(wide, [mine, other])
    reply = next(e for _, e, _ in seen_narrow if e["type"] == "subscribed")
    assert reply["buildIds"] == [mine]
    narrow_logs = {
        e["buildId"] for _, e, _ in seen_narrow[len(early) :] if e["type"] == "build_log"
    }
    wide_logs = {e["buildId"] for _, e, _ in seen_wide if e["type"] == "build_log"}
    assert narrow_logs == {mine}
    assert wide_logs == {mine, other}
    # Other events still reach the subscribed client.
    assert any(e["type"] == "build_completed" and e["buildId"] == other for _, e, _ in seen_narrow)


def test_client_messages_are_answered(chatty: Server) -> None:
    with connect(chatty.ws_url) as ws:
        initial(ws)
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=5)) == {"type": "pong"}
        ws.send("not json")
        assert json.loads(ws.recv(timeout=5))["type"] == "error"
        ws.send(json.dumps({"type": "subscribe", "buildIds": "x"}))
        assert "buildIds" in json.loads(ws.recv(timeout=5))["error"]
        ws.send(json.dumps({"type": "unsubscribe"}))
        assert json.loads(ws.recv(timeout=5)) == {"type": "subscribed", "buildIds": None}


def test_oversized_incoming_message_closes_with_1009(
    make_server: type[Server], tmp_path: Path
) -> None:
    server = make_server(tmp_path / "w", env={"PF_WS_MAX_SIZE": "1K"}).start()
    with connect(server.ws_url) as ws:
        initial(ws)
        ws.send("x" * 4096)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_connection_limit_closes_with_1008(make_server: type[Server], tmp_path: Path) -> None:
    server = make_server(tmp_path / "w", env={"PF_MAX_WS_CONNECTIONS": "2"}).start()
    with connect(server.ws_url) as one, connect(server.ws_url) as two:
        initial(one), initial(two)
        with connect(server.ws_url) as three, pytest.raises(ConnectionClosed) as closed:
            three.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert httpx.get(f"{server.url}/api/metrics").json()["wsConnections"] == 2
    with connect(server.ws_url) as again:  # room again once the others left
        initial(again)


def _raw_websocket(
    port: int, rcvbuf: int | None = None, extensions: str | None = None, path: str = "/ws"
) -> socket.socket:
    """A WebSocket handshake by hand: the client then never reads, or never pongs."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16))
    sock.sendall(
        f"GET {path} HTTP/1.1\r\n".encode()
        + b"Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: "
        + key
        + b"\r\nSec-WebSocket-Version: 13\r\n"
        + (f"Sec-WebSocket-Extensions: {extensions}\r\n".encode() if extensions else b"")
        + b"\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def test_a_batching_client_that_stops_reading_is_dropped_without_delaying_others(
    make_server: type[Server], tmp_path: Path
) -> None:
    server = noisy_server(make_server, tmp_path, send_queue=64)
    # A batching client: a per-event one would shed the log lines instead
    # (test_ws_legacy.py).
    stalled = _raw_websocket(server.port, rcvbuf=4096, path="/ws?batch=1")
    try:
        with connect(server.ws_url) as ws, httpx.Client(base_url=server.url) as http:
            initial(ws)
            noisy = [
                http.post(
                    "/api/compile", json={"language": "c", "files": unique_c(f"noisy{i}")}
                ).json()["buildId"]
                for i in range(3)
            ]
            until_all(ws, noisy)
            # The reader kept up all along; the stalled client was cut off.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if http.get("/api/metrics").json()["wsConnections"] == 1:
                    break
                time.sleep(0.05)
            assert http.get("/api/metrics").json()["wsConnections"] == 1
            assert 'pf_ws_closed_total{reason="slow"}' in http.get("/metrics").text
            # And a fresh event still reaches the healthy client (the reader above kept
            # up all along; how fast is the benchmark's to say, not a test's).
            quick = http.post("/api/build/wat", json={}).json()["buildId"]
            assert until(ws, quick, last="build_started", timeout=10)
    finally:
        stalled.close()


def _read_frames(sock: socket.socket, until: bytes, timeout: float = 60) -> list[Event]:
    """Every message from a raw socket (uncompressed) until one holding ``until``."""
    sock.settimeout(timeout)
    messages = []
    while True:
        _, opcode, payload = _frame(sock)
        assert opcode == 1, payload
        message = json.loads(payload)
        messages.extend(message["updates"] if message["type"] == "batch" else [message])
        if until in payload:
            return messages


def test_a_client_that_reads_late_gets_every_message_in_order(
    make_server: type[Server], tmp_path: Path
) -> None:
    # 3 MB of log lines per clang run while the client reads nothing: more than the socket buffers
    # usually take for a peer with a small receive window, less than the 4 MiB a client
    # may have queued besides.
    wrapper = chatty_tool(tmp_path, CLANG, lines=3000, width=1000)
    server = make_server(
        tmp_path / "w",
        env={
            "PF_TOOL_CLANG": str(wrapper),
            "PF_SANDBOX": "off",
            "PF_CCACHE": "0",
            "PF_MAX_LOG_SIZE": "16M",
        },
    ).start()
    late = _raw_websocket(server.port, rcvbuf=4096)
    try:
        with httpx.Client(base_url=server.url) as http:
            build = http.post("/api/compile", json={"language": "c", "files": unique_c("late")})
            build_id = build.json()["buildId"]
            assert wait_for(http, build_id)["status"] == "completed"
            assert http.get("/api/metrics").json()["wsConnections"] == 1  # not dropped
        messages = _read_frames(late, b'"build_completed"')
    finally:
        late.close()
    assert messages[0]["type"] == "initial_status"
    mine = [m for m in messages if m.get("buildId") == build_id]
    assert next(m["type"] for m in mine if m["type"] != "build_log") == "build_started"
    assert mine[-1]["type"] == "build_completed"
    texts = [line["text"] for m in mine if m["type"] == "build_log" for line in m["lines"]]
    numbered = [t.split()[2] for t in texts if t.startswith("progress line ")]
    runs = len(numbered) // 3000  # once per clang step of the build
    assert runs >= 1 and numbered == [str(n) for n in range(3000)] * runs


def test_compressing_and_plain_clients_get_the_same_message(chatty: Server) -> None:
    # initial_status with a few builds is over 1 KiB: compressed for a client that
    # negotiated permessage-deflate, plain for one that did not, same text for both.
    with httpx.Client(base_url=chatty.url) as http:
        for _ in range(3):
            wait_for(http, http.post("/api/build/wat", json={}).json()["buildId"])
    deflating = _raw_websocket(chatty.port, extensions="permessage-deflate")
    plain = _raw_websocket(chatty.port)
    try:
        deflating.settimeout(10)
        plain.settimeout(10)
        compressed, _, payload = _frame(deflating)
        uncompressed, _, text = _frame(plain)
    finally:
        deflating.close()
        plain.close()
    assert compressed and not uncompressed
    assert len(text) > 1024
    inflated = _inflated(payload)
    assert json.loads(inflated) == json.loads(text)


def test_heartbeat_closes_a_peer_that_never_answers_pings(
    make_server: type[Server], tmp_path: Path
) -> None:
    server = make_server(
        tmp_path / "w", args=("--ws-ping-interval", "0.3", "--ws-ping-timeout", "0.3")
    ).start()
    dead = _raw_websocket(server.port)
    dead.settimeout(10)
    started = time.monotonic()
    try:
        received = b""
        while chunk := dead.recv(65536):
            received += chunk
    finally:
        dead.close()
    assert time.monotonic() - started < 5
    assert b"\x89" in received  # it was pinged before being closed
    # A client that answers pings stays: answered three times (each ping comes after the
    # last one's timeout has passed), it is still served.
    alive = _raw_websocket(server.port)
    alive.settimeout(10)
    try:
        pings = 0
        while pings < 3:
            _, opcode, payload = _frame(alive)
            assert opcode != 0x8, "closed although it answered every ping"
            if opcode == 0x9:
                _send_control(alive, 0xA, payload)
                pings += 1
        _send_text(alive, json.dumps({"type": "ping"}))
        while (answer := _frame(alive))[1] != 0x1:
            assert answer[1] != 0x8, "closed although it answered every ping"
        assert json.loads(answer[2]) == {"type": "pong"}
    finally:
        alive.close()


def _frame(sock: socket.socket) -> tuple[bool, int, bytes]:
    """One server frame: (compressed, opcode, payload)."""

    def exactly(count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = sock.recv(count - len(data))
            assert chunk, "connection closed"
            data += chunk
        return data

    first, second = exactly(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(exactly(2), "big")
    elif length == 127:
        length = int.from_bytes(exactly(8), "big")
    return bool(first & 0x40), first & 0x0F, exactly(length)


def _inflated(payload: bytes) -> bytes:
    """A permessage-deflate message's text (the server keeps no context between them)."""
    return zlib.decompressobj(wbits=-15).decompress(payload + b"\x00\x00\xff\xff")


def _reply(sock: socket.socket, kind: str) -> tuple[bool, int, bytes]:
    """The next frame whose message is of ``kind``, past the events of builds that earlier
    tests on this module's server may still be sending."""
    while True:
        compressed, opcode, payload = _frame(sock)
        if json.loads(_inflated(payload) if compressed else payload)["type"] == kind:
            return compressed, opcode, payload


def _send_control(sock: socket.socket, opcode: int, payload: bytes) -> None:
    """A masked control frame (a pong) from the client; control payloads are < 126 bytes."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)


def _send_text(sock: socket.socket, text: str) -> None:
    payload, mask = text.encode(), os.urandom(4)
    header = bytes([0x81])
    if len(payload) < 126:
        header += bytes([0x80 | len(payload)])
    else:
        header += bytes([0x80 | 126]) + len(payload).to_bytes(2, "big")
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(header + mask + masked)


def test_messages_above_1_kib_are_compressed_and_small_ones_are_not(chatty: Server) -> None:
    sock = _raw_websocket(chatty.port, extensions="permessage-deflate; client_max_window_bits")
    try:
        sock.settimeout(10)
        _reply(sock, "initial_status")  # whatever its size
        _send_text(sock, json.dumps({"type": "ping"}))
        compressed, opcode, payload = _reply(sock, "pong")
        assert (compressed, opcode, payload) == (False, 1, b'{"type":"pong"}')
        many = [f"c-wasm-{n:013d}-{n:010x}" for n in range(100)]
        _send_text(sock, json.dumps({"type": "subscribe", "buildIds": many}))
        compressed, opcode, payload = _reply(sock, "subscribed")
        assert compressed and opcode == 1
        text = _inflated(payload)
        assert json.loads(text)["buildIds"] == sorted(many)
        assert len(payload) < len(text) // 2
    finally:
        sock.close()
