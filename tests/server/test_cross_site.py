"""Other web sites against a real pf serve: CORS, body types a page can send without a
preflight, DNS rebinding (the Host header) and WebSocket Origins.

The server here is open (loopback, no token): exactly the one a page in the user's
browser could reach at http://127.0.0.1, so it must refuse cross-site requests itself.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.server.conftest import Server

LISTED = "https://app.example.com"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(
        tmp_path_factory.mktemp("xsite"),
        env={
            "PF_CORS_ORIGINS": f"{LISTED}, https://other.example.com",
            "PF_ALLOWED_HOSTS": "pf.internal",
        },
    ).start()
    yield running
    running.stop()


def test_an_unlisted_origin_gets_no_cors_headers(client: httpx.Client) -> None:
    for origin in ("https://evil.example", "null", "http://127.0.0.1.evil.example"):
        answer = client.get("/api/status", headers={"Origin": origin})
        assert answer.status_code == 200
        assert "access-control-allow-origin" not in answer.headers
        assert "access-control-allow-credentials" not in answer.headers
        preflight = client.options(
            "/api/build/c",
            headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in preflight.headers


def test_a_listed_origin_is_echoed_with_credentials(client: httpx.Client) -> None:
    answer = client.get("/api/status", headers={"Origin": LISTED})
    assert answer.headers["access-control-allow-origin"] == LISTED
    assert answer.headers["access-control-allow-credentials"] == "true"
    assert answer.headers["vary"] == "Origin"
    preflight = client.options(
        "/api/build/c",
        headers={
            "Origin": LISTED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, authorization",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == LISTED
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "Authorization" in preflight.headers["access-control-allow-headers"]
    assert "access-control-allow-origin" not in client.get("/api/status").headers


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonp",
        "application/json-patch+json",
        "application/json; charset=latin-1",
        "application/json; boundary=x",
        "text/json",
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/build/c"),
        ("POST", "/api/build/all"),
        ("POST", "/api/compile"),
        ("POST", "/api/tasks/hello"),
        ("POST", "/api/session"),
    ],
)
def test_a_body_that_is_not_json_is_415(
    client: httpx.Client, content_type: str | None, method: str, path: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    answer = client.request(method, path, content=b'{"target": "wasm"}', headers=headers)
    assert answer.status_code == 415, answer.text
    assert answer.json()["code"] == "unsupported-media-type"
    assert "application/json" in answer.json()["error"]


def test_a_post_without_body_or_type_is_415_and_nothing_runs(client: httpx.Client) -> None:
    before = len(client.get("/api/status").json()["builds"])
    assert client.post("/api/build/all").status_code == 415
    assert len(client.get("/api/status").json()["builds"]) == before


@pytest.mark.parametrize("content_type", ["application/json", "Application/JSON; Charset=UTF-8"])
def test_json_is_accepted(client: httpx.Client, content_type: str) -> None:
    answer = client.post("/api/build/wat", content=b"{}", headers={"Content-Type": content_type})
    assert answer.status_code == 200, answer.text


def test_a_delete_without_body_needs_no_type(client: httpx.Client) -> None:
    assert client.delete("/api/builds/nope").status_code == 404


@pytest.mark.parametrize(("method", "path"), [("PUT", "/api/status"), ("PATCH", "/api/builds/x")])
def test_methods_no_route_takes_are_405_whatever_the_body(
    client: httpx.Client, method: str, path: str
) -> None:
    # A page on another site cannot send these without a preflight, which CORS refuses.
    answer = client.request(method, path, content=b"x", headers={"Content-Type": "text/plain"})
    assert answer.status_code == 405 and "Allow" in answer.headers


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "127.0.0.1.evil.example",
        "localhost.evil.example:80",
        "evil.example@127.0.0.1",
        "127.0.0.1:abc",
        "[::1",
        "",
    ],
)
def test_a_foreign_host_is_400(server: Server, host: str) -> None:
    for path in ("/api/health", "/api/status", "/", "/dashboard"):
        answer = httpx.get(f"{server.url}{path}", headers={"Host": host}, timeout=30)
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["code"] == "bad-host"


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost:9", "LOCALHOST", "[::1]:8080", "pf.internal:443"]
)
def test_local_names_and_allowed_hosts_are_served(server: Server, host: str) -> None:
    answer = httpx.get(f"{server.url}/api/health", headers={"Host": host}, timeout=30)
    assert answer.status_code == 200


def test_a_request_without_host_is_400(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /api/status HTTP/1.0\r\n\r\n")
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 400")
    assert b'"bad-host"' in reply


def test_websocket_origins(server: Server) -> None:
    for origin in (None, f"http://127.0.0.1:{server.port}", "http://localhost:1", LISTED):
        headers = {"Origin": origin} if origin else {}
        with connect(server.ws_url, additional_headers=headers) as ws:
            assert '"initial_status"' in str(ws.recv(timeout=10))
    for origin in ("https://evil.example", "null", "http://127.0.0.1.evil.example"):
        with pytest.raises(InvalidStatus) as refused:
            connect(server.ws_url, additional_headers={"Origin": origin}).close()
        assert refused.value.response.status_code == 403
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: evil.example\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 400"), reply


def test_cors_origins_cannot_be_a_wildcard(make_server: type[Server], tmp_path: Path) -> None:
    with pytest.raises(RuntimeError) as failed:
        make_server(tmp_path / "wild", env={"PF_CORS_ORIGINS": "*"}).start()
    assert "PF_CORS_ORIGINS cannot be '*'" in str(failed.value)
