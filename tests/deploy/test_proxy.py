"""The shipped deploy/nginx/pf.conf in front of a real pf serve: Debian's nginx with a
self-signed certificate on a free loopback port (tests/nginx.py renders the file with only
its ports, certificate and upstream replaced). HTTP/2 for pages and the API (curl),
pf's caching headers and compressed variants passed through, live build events over a
WebSocket through the proxy, nginx refusing a body over PF_MAX_BODY in pf's JSON form
while passing one of exactly that size, and the client's own X-Forwarded-For replaced."""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.nginx import Proxy
from tests.server.conftest import Server, chatty_tool, unique_c
from tests.tools import needs_tool

pytestmark = needs_tool("/usr/sbin/nginx", "curl", "openssl")

CLANG = "/usr/bin/clang-14"
MAX_BODY = 4 * 1024 * 1024  # pf's default PF_MAX_BODY, and the shipped client_max_body_size


class Stack:
    def __init__(self, server: Server, proxy: Proxy) -> None:
        self.server = server
        self.proxy = proxy

    def curl(self, path: str, *args: str) -> subprocess.CompletedProcess[str]:
        """curl over HTTP/2 (verifying the certificate); stdout ends with the version and
        status of the answer."""
        return subprocess.run(
            [
                *("curl", "--http2", "--silent", "--show-error", "--cacert", str(self.proxy.cert)),
                *("--write-out", "\n%{http_version} %{http_code}", *args),
                f"{self.proxy.url}{path}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )

    def https(self) -> httpx.Client:
        return httpx.Client(base_url=self.proxy.url, verify=self.tls(), timeout=60)

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.proxy.cert))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """pf serve (its C compiles print a line every quarter second) behind nginx, which is
    the one trusted proxy; open without a token so the test needs none."""
    work = tmp_path_factory.mktemp("proxied")
    server = Server(
        work / "server",
        env={
            "PF_TRUSTED_PROXIES": "127.0.0.1",
            "PF_LOG_LEVEL": "debug",  # uvicorn's access log: the client pf believes
            "PF_TOOL_CLANG": str(chatty_tool(work, CLANG, lines=4, delay=0.25)),
            "PF_SANDBOX": "off",
            "PF_CCACHE": "0",
            "PF_SHUTDOWN_GRACE": "1",
        },
        args=("--insecure-no-auth",),
    )
    # A script big enough that pf keeps brotli and gzip variants of it.
    (server.web / "app.js").write_text("console.log('pf behind nginx');\n" * 2000)
    server.start()
    try:
        with Proxy(f"127.0.0.1:{server.port}") as proxy:
            yield Stack(server, proxy)
    finally:
        server.stop()


def test_http2_for_a_page_and_an_api_call(stack: Stack) -> None:
    page = stack.curl("/")
    assert page.stdout.endswith("\n2 200")
    assert "<title>pf demo</title>" in page.stdout
    health = stack.curl("/api/health")
    assert health.stdout.endswith("\n2 200")
    assert json.loads(health.stdout.rsplit("\n", 1)[0])["status"] == "ok"


def test_plain_http_is_redirected_to_https(stack: Stack) -> None:
    answer = httpx.get(f"http://127.0.0.1:{stack.proxy.http_port}/playground?x=1", timeout=30)
    assert answer.status_code == 308
    assert answer.headers["location"] == "https://127.0.0.1/playground?x=1"


def test_caching_headers_and_compression_are_pf_s(stack: Stack) -> None:
    wanted = ("etag", "cache-control", "content-encoding", "vary", "content-length")
    headers = {"Accept-Encoding": "br"}
    # pf makes the variants in the background after the first request for the file.
    deadline = time.monotonic() + 30
    while True:
        direct = httpx.get(f"{stack.server.url}/app.js", headers=headers, timeout=30)
        if "content-encoding" in direct.headers or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    with stack.https() as http:
        proxied = http.get("/app.js", headers=headers)
        assert proxied.status_code == direct.status_code == 200
        assert direct.headers["content-encoding"] == "br"
        assert {h: proxied.headers.get(h) for h in wanted} == {
            h: direct.headers.get(h) for h in wanted
        }
        assert proxied.content == direct.content
        again = http.get("/app.js", headers={**headers, "If-None-Match": direct.headers["etag"]})
        assert again.status_code == 304


def test_a_websocket_through_the_proxy_receives_live_build_events(stack: Stack) -> None:
    ws_url = stack.proxy.url.replace("https://", "wss://") + "/ws"
    with connect(ws_url, ssl=stack.tls(), open_timeout=30) as ws, stack.https() as http:
        assert json.loads(ws.recv(timeout=30))["type"] == "initial_status"
        submitted = http.post("/api/compile", json={"language": "c", "files": unique_c("ngx")})
        assert submitted.status_code == 202, submitted.text
        build_id = submitted.json()["buildId"]
        arrivals: list[tuple[float, dict[str, object]]] = []
        deadline = time.monotonic() + 60
        while not any(e["type"] == "build_completed" for _, e in arrivals):
            assert time.monotonic() < deadline, [e["type"] for _, e in arrivals]
            message = json.loads(ws.recv(timeout=deadline - time.monotonic()))
            for event in message["updates"] if message["type"] == "batch" else [message]:
                if event.get("buildId") == build_id:
                    arrivals.append((time.monotonic(), event))
    kinds = [event["type"] for _, event in arrivals]
    assert kinds[0] == "build_started" and kinds[-1] == "build_completed"
    first_line = next(when for when, event in arrivals if event["type"] == "build_log")
    # Live, not buffered by the proxy: the wrapper's first line came a second before the
    # end (it prints four lines a quarter second apart before the compiler runs).
    assert arrivals[-1][0] - first_line > 0.5


def _access(stack: Stack, marker: str) -> list[str]:
    return [
        str(line["message"])
        for line in stack.server.log_lines()
        if line.get("logger") == "uvicorn.access" and marker in str(line.get("message"))
    ]


def test_a_body_over_pf_s_limit_is_refused_by_nginx(stack: Stack, tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    marker = uuid.uuid4().hex
    answers = {}
    for size in (MAX_BODY, MAX_BODY + 1):
        body.write_bytes(b" " * size)
        done = stack.curl(
            f"/api/session?probe={marker}-{size}",
            *("--header", "Content-Type: application/json", "--data-binary", f"@{body}"),
        )
        text, _, status = done.stdout.rpartition("\n")
        answers[size] = (status, json.loads(text))
    # Exactly the limit reaches pf, which reads it all (blank is not JSON: 400).
    assert answers[MAX_BODY][0] == "2 400"
    assert answers[MAX_BODY][1]["code"] == "invalid-body"
    assert _access(stack, f"{marker}-{MAX_BODY} ")
    # One byte more: nginx answers 413, in pf's error form, and pf never sees it.
    assert answers[MAX_BODY + 1][0] == "2 413"
    assert answers[MAX_BODY + 1][1]["code"] == "payload-too-large"
    assert str(MAX_BODY) in answers[MAX_BODY + 1][1]["error"]
    assert not _access(stack, f"{marker}-{MAX_BODY + 1} ")


def test_a_client_s_own_forwarded_for_is_replaced(stack: Stack) -> None:
    marker = uuid.uuid4().hex
    with stack.https() as http:
        answer = http.get(
            f"/api/health?probe={marker}", headers={"X-Forwarded-For": "198.51.100.9"}
        )
        assert answer.status_code == 200
    [line] = _access(stack, marker)
    assert line.startswith("127.0.0.1:")  # the address nginx saw, not the one claimed
