"""X-Forwarded-For and X-Forwarded-Proto count only from PF_TRUSTED_PROXIES, over real
sockets: a client that is not the proxy cannot pick the address its rate limit and access
log go by, nor the scheme its session cookie is marked for. Every 127.x.y.z is loopback,
so the proxy connects from 127.0.0.1 and a stranger from 127.0.0.2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.server.conftest import Server
from tests.server.test_auth import make_token, wait_for_tokens

# One submission a client, and nothing refills while a test runs.
LIMITED = {"PF_RATE_LIMIT": "1", "PF_RATE_BURST": "1", "PF_LOG_LEVEL": "debug"}
PROXY, STRANGER = "127.0.0.1", "127.0.0.2"


def _client(server: Server, address: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=server.url, transport=transport, timeout=30)


def _submit(http: httpx.Client, forwarded_for: str) -> int:
    """A submission (rate-limited, then refused as invalid: no build runs); its status."""
    return http.post(
        "/api/compile", json={}, headers={"X-Forwarded-For": forwarded_for}
    ).status_code


def _access_lines(server: Server) -> list[str]:
    return [
        str(line["message"])
        for line in server.log_lines()
        if line.get("logger") == "uvicorn.access" and "/api/compile" in str(line.get("message"))
    ]


def test_forwarded_for_is_believed_from_the_trusted_proxy_only(
    make_server: type[Server], tmp_path: Path
) -> None:
    server = make_server(
        tmp_path / "work",
        env={**LIMITED, "PF_TRUSTED_PROXIES": PROXY},
        args=("--insecure-no-auth",),
    ).start()
    with _client(server, PROXY) as proxy, _client(server, STRANGER) as stranger:
        # Through the proxy, each forwarded address is a client of its own.
        assert _submit(proxy, "203.0.113.1") == 400
        assert _submit(proxy, "203.0.113.1") == 429
        assert _submit(proxy, "203.0.113.2") == 400
        # The stranger's header names a new address each time, and is not believed: both
        # requests are the stranger's own, and the second finds its bucket empty.
        assert _submit(stranger, "198.51.100.1") == 400
        assert _submit(stranger, "198.51.100.2") == 429
    lines = _access_lines(server)
    assert len(lines) == 5, lines
    assert [line.split(" ")[0].rsplit(":", 1)[0] for line in lines] == [
        "203.0.113.1",
        "203.0.113.1",
        "203.0.113.2",
        STRANGER,
        STRANGER,
    ]


def test_without_trusted_proxies_nobody_is_believed(
    make_server: type[Server], tmp_path: Path
) -> None:
    server = make_server(tmp_path / "work", env=LIMITED).start()
    with _client(server, PROXY) as http:
        assert _submit(http, "203.0.113.1") == 400
        assert _submit(http, "203.0.113.2") == 429
    assert all(line.startswith(f"{PROXY}:") for line in _access_lines(server))


def _serve(server: Server) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", "pf", "serve", "--port", "0"),
            *("--root", str(server.web), "--projects", str(server.projects)),
        ],
        cwd=server.workdir,
        env=server.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_behind_a_proxy_a_token_is_needed_and_the_forwarded_scheme_marks_cookies(
    make_server: type[Server], tmp_path: Path
) -> None:
    server = make_server(tmp_path / "work", env={"PF_TRUSTED_PROXIES": PROXY})
    # On loopback, but anyone can reach it through the proxy: not open without a token.
    refused = _serve(server)
    assert refused.returncode != 0
    assert "behind the reverse proxies of PF_TRUSTED_PROXIES" in refused.stderr
    assert "pf token create NAME --scope admin" in refused.stderr
    token = make_token(server, "browser", "read")
    server.start()
    https = {"X-Forwarded-Proto": "https"}
    with _client(server, PROXY) as proxy, _client(server, STRANGER) as stranger:
        wait_for_tokens(proxy, token)
        secure = proxy.post("/api/session", json={"token": token}, headers=https)
        assert secure.status_code == 200, secure.text
        assert "Secure" in secure.headers["set-cookie"].split("; ")
        # A stranger's claim of HTTPS is not believed: its cookie is not marked Secure.
        plain = stranger.post("/api/session", json={"token": token}, headers=https)
        assert plain.status_code == 200, plain.text
        assert "Secure" not in plain.headers["set-cookie"].split("; ")
