"""Bad input gets a 4xx JSON error naming the problem: never HTML, a traceback or a 5xx."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.server.conftest import Server


def _error(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert isinstance(body["error"], str) and "Traceback" not in body["error"]
    return str(body["error"])


def test_unknown_language_and_target_use_the_original_messages(client: httpx.Client) -> None:
    assert (
        _error(client.post("/api/build/cobol", json={}), 400)
        == "Unsupported language: cobol. Supported: rust, c, fortran, wat"
    )
    assert (
        _error(client.post("/api/build/c", json={"target": "exe"}), 400)
        == "Unsupported target: exe. Supported: wasm, llvm, asm"
    )
    assert "Unsupported target: exe" in _error(
        client.post("/api/build/all", json={"target": "exe"}), 400
    )


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"opt_level": "9"}, "'opt_level'"),
        ({"opt_level": "2; rm -rf /"}, "'opt_level'"),
        ({"passes": "default<O2> -o /etc/passwd"}, "'passes'"),
        ({"exports": ["add", "x y"]}, "'exports'"),
        ({"frobnicate": True}, "'frobnicate': unknown option"),
        ({"options": {"debug": "maybe"}}, "'debug'"),
        ({"opt_level": {"nested": 1}}, "'opt_level'"),
        ({"opt_level": [1, 2]}, "'opt_level'"),
    ],
)
def test_bad_options_are_refused_by_name(
    client: httpx.Client, body: dict[str, object], needle: str
) -> None:
    assert needle in _error(client.post("/api/build/c", json=body), 400)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"target": 3}, "'target' must be a string"),
        ({"project": ["polyglot"]}, "'project' must be a string"),
        ({"options": "fast"}, "'options' must be a JSON object"),
    ],
)
def test_wrong_types_are_named(client: httpx.Client, body: dict[str, object], needle: str) -> None:
    assert needle in _error(client.post("/api/build/c", json=body), 400)


@pytest.mark.parametrize(
    "raw",
    [b"{bad", b"[1, 2]", b'"text"', b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000],
    ids=["syntax", "array", "string", "not-utf8", "deeply-nested"],
)
def test_invalid_json_is_400(client: httpx.Client, raw: bytes) -> None:
    answer = client.post("/api/build/c", content=raw, headers={"Content-Type": "application/json"})
    _error(answer, 400)


def test_empty_body_means_defaults(client: httpx.Client) -> None:
    answer = client.post("/api/build/wat", headers={"Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text


def test_unknown_project_is_404(client: httpx.Client) -> None:
    message = _error(client.post("/api/build/c", json={"project": "nope"}), 404)
    assert "nope" in message and "polyglot" in message


def test_an_option_the_driver_cannot_honour_is_refused_before_queueing(
    client: httpx.Client,
) -> None:
    message = _error(client.post("/api/build/c", json={"parallel": True}), 400)
    assert "'parallel'" in message and "OpenMP" in message
    before = client.get("/api/metrics").json()["buildCount"]
    _error(client.post("/api/build/all", json={"parallel": "yes"}), 400)
    assert client.get("/api/metrics").json()["buildCount"] == before


def test_compile_body_validation(client: httpx.Client) -> None:
    assert "'language' is required" in _error(
        client.post("/api/compile", json={"files": {"a.c": ""}}), 400
    )
    assert "'files' must be a JSON object" in _error(
        client.post("/api/compile", json={"language": "c"}), 400
    )
    assert "at least one source" in _error(
        client.post("/api/compile", json={"language": "c", "files": {}}), 400
    )
    assert "must be a string of source text" in _error(
        client.post("/api/compile", json={"language": "c", "files": {"a.c": 1}}), 400
    )
    assert "Invalid source file name" in _error(
        client.post("/api/compile", json={"language": "c", "files": {"../x.c": "int x;"}}), 400
    )
    assert "unknown field 'project'" in _error(
        client.post("/api/compile", json={"language": "c", "files": {"a.c": ""}, "project": "x"}),
        400,
    )


def test_query_parameters_are_checked(client: httpx.Client) -> None:
    assert "'limit'" in _error(client.get("/api/status", params={"limit": "lots"}), 400)
    assert "'limit'" in _error(client.get("/api/status", params={"limit": "0"}), 400)
    assert "'status'" in _error(client.get("/api/status", params={"status": "odd"}), 400)


def test_oversize_body_is_413(
    make_server: type[Server], tmp_path_factory: pytest.TempPathFactory
) -> None:
    small = make_server(tmp_path_factory.mktemp("small"), env={"PF_MAX_BODY": "1024"}).start()
    with httpx.Client(base_url=small.url) as http:
        big = {"language": "c", "files": {"a.c": "x" * 4096}}
        assert "larger than 1024 bytes" in _error(http.post("/api/compile", json=big), 413)

        def chunks():  # no Content-Length: the limit holds while the body streams in
            for _ in range(8):
                yield b" " * 512

        answer = http.post(
            "/api/compile", content=chunks(), headers={"Content-Type": "application/json"}
        )
        _error(answer, 413)
        assert http.get("/api/health").status_code == 200


def test_a_lying_content_length_does_not_hang_or_crash(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            b"POST /api/build/c HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Content-Length: abc\r\n\r\n{}"
        )
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 400")
