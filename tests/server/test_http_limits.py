"""HTTP limits of pf serve, over real sockets: header count and size (431), a deadline for
a request's headers (slowloris), idle connections closed, a cap on connections; and how
answers leave a connection: whole, in order, what one turn of the loop wrote in one
send, before the connection closes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
import uvloop
from websockets.sync.client import connect

from tests.server.conftest import Server

DEADLINE = 15.0  # how long a condition may take on a loaded machine before the test fails


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"PF_HEADER_TIMEOUT": "1", "PF_KEEPALIVE_TIMEOUT": "1"}
    running = Server(tmp_path_factory.mktemp("strict"), env=env).start()
    yield running
    running.stop()


def _open(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    else:
        raise AssertionError("the server never closed the connection")
    return b"".join(chunks)


def _response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def _request(extra: bytes) -> bytes:
    return b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + b"\r\n"


def _assert_431(raw: bytes) -> None:
    status, headers, body = _response(raw)
    assert status == 431
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert json.loads(body)["code"] == "headers-too-large"


def test_too_many_headers_get_431(strict: Server) -> None:
    headers = b"".join(b"X-H%d: v\r\n" % n for n in range(200))
    with _open(strict) as sock:
        sock.sendall(_request(headers))
        _assert_431(_read_all(sock))


@pytest.mark.parametrize("size", [64 * 1024, 4 * 1024 * 1024])
def test_one_huge_header_gets_431(strict: Server, size: int) -> None:
    with _open(strict) as sock:
        try:
            sock.sendall(_request(b"X-Big: " + b"a" * size + b"\r\n"))
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the whole header was sent: the answer is still there
        _assert_431(_read_all(sock))


def test_a_huge_request_line_gets_431(strict: Server) -> None:
    with _open(strict) as sock:
        sock.sendall(b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        _assert_431(_read_all(sock))


def test_a_header_sent_a_byte_at_a_time_is_cut_off(strict: Server) -> None:
    """Slowloris: each byte comes before any idle timeout, but the whole head never does."""
    with _open(strict) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        deadline = time.monotonic() + DEADLINE
        closed = False
        while time.monotonic() < deadline and not closed:
            try:
                sock.sendall(b"a")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            sock.settimeout(0.3)
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                closed = True
                break
            if not answer or answer.startswith(b"HTTP/1.1 408 "):
                closed = True
        assert closed, "a client that never finished its headers kept its connection"


def test_an_idle_connection_is_closed(strict: Server) -> None:
    with _open(strict) as sock:
        sock.sendall(_request(b""))
        raw = _read_all_or_first(sock)
        assert _response(raw)[0] == 200
        # Keep-alive: the connection stays open after the response, until it is idle.
        assert _read_all(sock) == b""
    with _open(strict) as sock:  # a connection that never sends anything
        assert _read_all(sock) == b""


def _read_all_or_first(sock: socket.socket) -> bytes:
    """One whole response on a keep-alive connection (head, then content-length bytes)."""
    sock.settimeout(DEADLINE)
    raw = b""
    while b"\r\n\r\n" not in raw:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection before answering"
        raw += chunk
    _, headers, body = _response(raw)
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection mid-response"
        body += chunk
        raw += chunk
    return raw


def test_normal_requests_and_websockets_are_unaffected(strict: Server) -> None:
    headers = {f"x-ok-{n}": "v" * 100 for n in range(50)}
    with httpx.Client(base_url=strict.url, timeout=DEADLINE) as http:
        for _ in range(3):  # on one keep-alive connection
            assert http.get("/api/health", headers=headers).status_code == 200
        answer = http.post("/api/build/wat", json={"target": "wasm"})
        assert answer.status_code == 200
    with connect(strict.ws_url) as ws:
        assert json.loads(ws.recv(timeout=DEADLINE))["type"] == "initial_status"


def test_connections_past_the_cap_are_refused(
    make_server: type[Server], tmp_path_factory: pytest.TempPathFactory
) -> None:
    server = make_server(
        tmp_path_factory.mktemp("capped"),
        env={"PF_MAX_CONNECTIONS": "4", "PF_KEEPALIVE_TIMEOUT": "60"},
    ).start()
    idle = [_open(server) for _ in range(3)]
    try:
        for sock in idle:  # answered, so accepted: each holds a connection, idle now
            sock.sendall(_request(b""))
            assert _response(_read_all_or_first(sock))[0] == 200
        with _open(server) as sock:  # the fourth: at the cap, as uvicorn counts
            sock.sendall(_request(b""))
            assert _response(_read_all_or_first(sock))[0] == 503
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + DEADLINE
    while True:
        status = httpx.get(f"{server.url}/api/health", timeout=DEADLINE).status_code
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert status == 200


def _responses(raw: bytes) -> list[tuple[int, bytes]]:
    """Status and body of each response in ``raw``, in order (bodies by content-length)."""
    found = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        length = int(headers["content-length"])
        found.append((int(lines[0].split()[1]), rest[:length]))
        raw = rest[length:]
    return found


def test_pipelined_requests_are_answered_whole_and_in_order(strict: Server) -> None:
    # Written in one turn of the server's loop, three answers leave together; the last
    # asks to close, and the close must not overtake what is still to be sent.
    with _open(strict) as sock:
        sock.sendall(
            _request(b"")
            + b"GET /api/no-such-path HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            + _request(b"Connection: close\r\n")
        )
        answers = _responses(_read_all(sock))
    assert [status for status, _ in answers] == [200, 404, 200]
    assert json.loads(answers[0][1])["status"] == json.loads(answers[2][1])["status"] == "ok"
    assert "error" in json.loads(answers[1][1])


def test_a_connections_writes_in_one_turn_leave_together_and_before_its_close() -> None:
    from pf.server.run import _Corked

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        theirs.setblocking(False)
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
        corked = _Corked(transport, loop)
        corked.write(b"HTTP/1.1 200 OK\r\n\r\n")
        corked.write(b"body")
        with pytest.raises(BlockingIOError):
            theirs.recv(100)  # held until the loop's turn ends
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert theirs.recv(100) == b"HTTP/1.1 200 OK\r\n\r\nbody"
        big = b"x" * _Corked.FLUSH_AT
        corked.write(b"head")
        corked.write(big)  # past the bound: sent now, under the transport's flow control
        received = theirs.recv(1 << 20)  # before the loop turns
        assert received.startswith(b"head")
        deadline = loop.time() + DEADLINE
        while len(received) < len(big) + 4 and loop.time() < deadline:
            await asyncio.sleep(0.001)
            with contextlib.suppress(BlockingIOError):
                received += theirs.recv(1 << 20)
        assert received == b"head" + big
        corked.write(b"last")
        corked.close()  # sent first, then closed
        await asyncio.sleep(0.05)
        assert theirs.recv(100) == b"last"
        assert theirs.recv(100) == b""
        corked.write(b"after the close")  # dropped, as the transport would
        await asyncio.sleep(0)
        theirs.close()

    # pf serve's loop is uvloop's, whose transports send at once when they can.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())
