"""Tokens and scopes against a real pf serve: tokens made with the real ``pf token`` CLI on
the server's own SQLite file, every route's scope checked from the app's route list."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.routing import Route, WebSocketRoute
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from pf.config import load_settings
from pf.engine.service import BuildService
from pf.server.app import create_app
from tests.server.conftest import Server, unique_c, wait_for

PFYFILE = """\
task hello
  shell echo hello from pf
end

task listing
  describe List the web root (a file-server-like task: its directory is fixed)
  shell ls ../web
end
"""

# Every route of the app and the scope it needs (None: open). A route added to the app
# and missing here fails test_the_table_covers_every_route until it is placed.
EXPECTED: dict[tuple[str, str], str | None] = {
    ("GET", "/api/health"): None,
    ("GET", "/api/ready"): None,
    ("GET", "/api/session"): None,
    ("POST", "/api/session"): None,
    ("DELETE", "/api/session"): None,
    ("GET", "/openapi.json"): None,
    ("GET", "/dashboard"): None,
    ("GET", "/playground"): None,
    ("GET", "/api/status"): "read",
    ("GET", "/api/system"): "read",
    ("GET", "/api/projects"): "read",
    ("GET", "/api/modules"): "read",
    ("GET", "/api/logs/{build_id}"): "read",
    ("GET", "/api/builds/{build_id}"): "read",
    ("GET", "/api/builds/{build_id}/artifacts/{path:path}"): "read",
    ("GET", "/api/metrics"): "read",
    ("GET", "/metrics"): "read",
    ("GET", "/wasm/{folder}/{name:path}"): "read",
    ("GET", "/asm/{folder}/{name:path}"): "read",
    ("GET", "/llvm/{folder}/{name:path}"): "read",
    ("WS", "/ws"): "read",
    ("WS", "/"): "read",
    ("POST", "/api/build/all"): "build",
    ("POST", "/api/build/{language}"): "build",
    ("POST", "/api/compile"): "build",
    ("DELETE", "/api/builds/{build_id}"): "build",
    ("GET", "/api/tasks"): "admin",
    ("POST", "/api/tasks/{name}"): "admin",
    ("GET", "/api/debug/profile"): "admin",
    ("GET", "/api/debug/memory"): "admin",
    ("POST", "/api/debug/memory"): "admin",
    ("DELETE", "/api/debug/memory"): "admin",
}
LOWER = {"build": "read", "admin": "build"}
CLANG = "/usr/bin/clang-14"
HIDDEN = {"/api", "/api/{rest:path}"}  # the JSON 404 for every other /api path


def app_routes() -> set[tuple[str, str]]:
    settings = load_settings()
    app = create_app(settings, BuildService(settings, None, Path.cwd()))
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, WebSocketRoute):
            found.add(("WS", route.path))
        elif isinstance(route, Route) and route.path not in HIDDEN:
            found |= {(m, route.path) for m in route.methods or () if m != "HEAD"}
    return found


def make_token(server: Server, name: str, scope: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "pf", "token", "create", name, "--scope", scope],
        cwd=server.workdir,
        env=server.env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def pf_token(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pf", "token", *args],
        cwd=server.workdir,
        env=server.env(),
        capture_output=True,
        text=True,
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def until_status(http: httpx.Client, path: str, status: int, **kw: object) -> httpx.Response:
    """Poll until ``path`` answers ``status``: tokens take effect within about a second."""
    deadline = time.monotonic() + 10
    while True:
        answer = http.get(path, **kw)  # type: ignore[arg-type]
        if answer.status_code == status or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)


def wait_for_tokens(http: httpx.Client, *tokens: str) -> None:
    """Until the server knows ``tokens``: first that some token exists (a request without
    one is 401; while none exists every request passes, with or without a token), then
    that each of these is one it has read."""
    assert until_status(http, "/api/status", 401).status_code == 401
    for token in tokens:
        assert until_status(http, "/api/status", 200, headers=bearer(token)).status_code == 200


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    """A server with a Pfyfile, one built artifact, and a token per scope."""
    running = Server(tmp_path_factory.mktemp("auth"), env={"PFY_FILE": ""})
    (running.projects / "Pfyfile.pf").write_text(PFYFILE)
    running.start()
    with httpx.Client(base_url=running.url, timeout=60) as http:
        built = http.post("/api/build/wat", json={}).json()["buildId"]
        assert wait_for(http, built)["status"] == "completed"
    tokens = {
        scope: make_token(running, f"t-{scope}", scope) for scope in ("read", "build", "admin")
    }
    with httpx.Client(base_url=running.url) as http:
        wait_for_tokens(http, *tokens.values())
    yield running, tokens
    running.stop()


def test_a_token_looks_like_pf_and_43_urlsafe_characters(
    guarded: tuple[Server, dict[str, str]],
) -> None:
    for token in guarded[1].values():
        assert re.fullmatch(r"pf_[A-Za-z0-9_-]{43}", token)


def test_the_table_covers_every_route() -> None:
    assert app_routes() == set(EXPECTED)


def _concrete(path: str, build: dict[str, object]) -> str:
    artifact = str(build["artifacts"][0]["url"]).rpartition("/")[2]  # type: ignore[index]
    return (
        path.replace("{build_id}", str(build["buildId"]))
        .replace("{path:path}", artifact)
        .replace("{language}", "wat")
        .replace("{name:path}", "nothing.wasm")
        .replace("{name}", "hello")
    )


@pytest.mark.parametrize(("method", "path"), sorted(k for k, v in EXPECTED.items() if v))
def test_every_protected_route_needs_its_scope(
    guarded: tuple[Server, dict[str, str]], method: str, path: str
) -> None:
    server, tokens = guarded
    needed = EXPECTED[(method, path)]
    assert needed is not None
    with httpx.Client(base_url=server.url, timeout=60) as http:
        build = http.get("/api/status", headers=bearer(tokens["read"])).json()["builds"][-1]
        url = _concrete(path, build)
        if method == "WS":
            ws = f"ws://127.0.0.1:{server.port}{url}"
            with pytest.raises(InvalidStatus) as refused:
                connect(ws).close()
            assert refused.value.response.status_code == 401
            with connect(ws, additional_headers=bearer(tokens[needed])) as socket:
                assert '"initial_status"' in str(socket.recv(timeout=10))
            return
        body: dict[str, object] = {"json": {}}
        if path == "/api/compile":
            body = {"json": {"language": "wat", "files": {"a.wat": "(module)"}}}
        elif path == "/api/tasks/{name}":
            body = {"json": {"params": {}}}
        if path == "/api/debug/profile":
            url += "?seconds=0.1"
        if (method, path) == ("GET", "/api/debug/memory"):
            # Traced, so that it answers 200 as the others do (a DELETE may have stopped it).
            http.post(url, json={}, headers=bearer(tokens["admin"])).raise_for_status()
        if method == "DELETE" and path.startswith("/api/builds/"):
            # A build of this token's own, still queued or running or not.
            own = http.post("/api/build/wat", json={}, headers=bearer(tokens[needed]))
            url = f"/api/builds/{own.json()['buildId']}"
            body = {}
        kw = body if method == "POST" else {}
        anonymous = http.request(method, url, **kw)  # type: ignore[arg-type]
        assert anonymous.status_code == 401, anonymous.text
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert anonymous.json() == {
            "error": "authentication required: send Authorization: Bearer <token> "
            "(make one with: pf token create NAME --scope read)",
            "code": "unauthorized",
        }
        wrong = http.request(method, url, headers=bearer("pf_" + "x" * 43), **kw)  # type: ignore[arg-type]
        assert wrong.status_code == 401
        if needed in LOWER:
            lower = LOWER[needed]
            small = http.request(method, url, headers=bearer(tokens[lower]), **kw)  # type: ignore[arg-type]
            assert small.status_code == 403, small.text
            assert small.json()["code"] == "forbidden"
            assert small.json()["error"].endswith(
                f"needs scope '{needed}'; token 't-{lower}' has '{lower}'"
            )
        right = http.request(method, url, headers=bearer(tokens[needed]), **kw)  # type: ignore[arg-type]
        # 409: a DELETE of a build that already ended; 404: /wasm/ of a file never built.
        assert right.status_code not in (401, 403), right.text
        assert right.status_code < 300 or (method, right.status_code) in {
            ("DELETE", 409),
            ("GET", 404),
        }
        if method == "GET" and not path.startswith(("/wasm/", "/asm/", "/llvm/")):
            assert right.status_code == 200
        admin = http.request(method, url, headers=bearer(tokens["admin"]), **kw)  # type: ignore[arg-type]
        assert admin.status_code not in (401, 403)


@pytest.mark.parametrize("path", ["/api/health", "/api/ready", "/openapi.json", "/", "/dashboard"])
def test_open_paths_need_no_token(guarded: tuple[Server, dict[str, str]], path: str) -> None:
    answer = httpx.get(guarded[0].url + path, timeout=30)
    assert answer.status_code == 200


def test_open_on_loopback_while_no_token_exists(make_server: type[Server], tmp_path: Path) -> None:
    server = make_server(tmp_path / "open").start()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get("/api/session").json() == {
            "authRequired": False,
            "authenticated": False,
            "name": None,
            "scope": None,
        }
        assert http.get("/api/status").status_code == 200
        assert http.get("/api/tasks").status_code in (200, 503)  # open: admin's routes too
        queued = http.post("/api/build/wat", json={}).json()["buildId"]
        # Anonymous acts as admin: it may cancel (or find ended) any build.
        assert http.delete(f"/api/builds/{queued}").status_code in (200, 409)
        token = make_token(server, "late", "read")
        # The first token closes the open server within about a second.
        assert until_status(http, "/api/status", 401).status_code == 401
        assert http.get("/api/session").json()["authRequired"] is True
        assert http.get("/api/status", headers=bearer(token)).status_code == 200


def test_revoke_takes_effect(guarded: tuple[Server, dict[str, str]]) -> None:
    server, _ = guarded
    token = make_token(server, "short-lived", "read")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert until_status(http, "/api/status", 200, headers=bearer(token)).status_code == 200
        assert pf_token(server, "revoke", "short-lived").returncode == 0
        assert until_status(http, "/api/status", 401, headers=bearer(token)).status_code == 401
    listed = pf_token(server, "list").stdout
    assert "short-lived" not in listed
    assert "t-read" in listed and "read" in listed


def test_the_database_holds_only_the_tokens_hashes(guarded: tuple[Server, dict[str, str]]) -> None:
    server, tokens = guarded
    stored = b"".join(path.read_bytes() for path in (server.workdir / ".pf").glob("pf.db*"))
    assert b"t-admin" in stored  # the table is there, and readable
    for token in tokens.values():
        assert token.encode() not in stored
        assert token[3:].encode() not in stored
    assert all(token not in server.log_path.read_text() for token in tokens.values())
    assert all(token not in pf_token(server, "list").stdout for token in tokens.values())


def test_session_cookie_signs_in_and_out(guarded: tuple[Server, dict[str, str]]) -> None:
    server, tokens = guarded
    with httpx.Client(base_url=server.url, timeout=30) as http:
        bad = http.post("/api/session", json={"token": "pf_nope"})
        assert bad.status_code == 401 and bad.json()["code"] == "unauthorized"
        assert http.post("/api/session", json={"nope": 1}).status_code == 400
        signed = http.post("/api/session", json={"token": tokens["build"]})
        assert signed.status_code == 200, signed.text
        assert signed.json()["name"] == "t-build" and signed.json()["scope"] == "build"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", signed.json()["expires"])
        cookie = signed.headers["set-cookie"]
        value = re.match(r"pf_session=([A-Za-z0-9_-]{43}); ", cookie)
        assert value is not None
        flags = [part.strip() for part in cookie.split(";")[1:]]
        assert set(flags) == {"HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"}
        jar = {"Cookie": f"pf_session={value.group(1)}"}
        assert http.get("/api/session", headers=jar).json() == {
            "authRequired": True,
            "authenticated": True,
            "name": "t-build",
            "scope": "build",
        }
        assert http.get("/api/status", headers=jar).status_code == 200
        assert http.post("/api/compile", json={"language": "wat"}, headers=jar).status_code != 401
        assert http.get("/api/tasks", headers=jar).status_code == 403
        with connect(f"ws://127.0.0.1:{server.port}/ws", additional_headers=jar) as socket:
            assert '"initial_status"' in str(socket.recv(timeout=10))
        out = http.delete("/api/session", headers=jar)
        assert out.json() == {"signedOut": True}
        assert out.headers["set-cookie"].startswith("pf_session=; ")
        assert "Max-Age=0" in out.headers["set-cookie"]
        # The old cookie is dead, here and in the database (a restart would not revive it).
        assert http.get("/api/status", headers=jar).status_code == 401
        stored = b"".join(p.read_bytes() for p in (server.workdir / ".pf").glob("pf.db*"))
        assert value.group(1).encode() not in stored


def test_websocket_needs_a_token_or_cookie(guarded: tuple[Server, dict[str, str]]) -> None:
    server = guarded[0]
    with pytest.raises(InvalidStatus) as refused:
        connect(server.ws_url, additional_headers=bearer("pf_wrong")).close()
    assert refused.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as refused:
        connect(server.ws_url, additional_headers={"Cookie": "pf_session=forged"}).close()
    assert refused.value.response.status_code == 401


def test_a_build_token_cancels_its_own_builds_only(held_server: Server) -> None:
    alice, bob = make_token(held_server, "alice", "build"), make_token(held_server, "bob", "build")
    admin = make_token(held_server, "root", "admin")
    with (
        httpx.Client(base_url=held_server.url, timeout=30) as http,
        httpx.Client(base_url=held_server.url, timeout=30, headers=bearer(admin)) as root,
    ):
        wait_for_tokens(http, alice, bob, admin)

        def compile_c(token: str, tag: str) -> str:
            answer = http.post(
                "/api/compile",
                json={"language": "c", "files": unique_c(tag)},
                headers=bearer(token),
            )
            assert answer.status_code == 202, answer.text
            return str(answer.json()["buildId"])

        running = compile_c(alice, "running")
        wait_for(root, running, until=("running",))
        mine, other = compile_c(alice, "mine"), compile_c(alice, "other")
        refused = http.delete(f"/api/builds/{other}", headers=bearer(bob))
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "forbidden"
        assert "cancels only its own builds" in refused.json()["error"]
        assert http.get(f"/api/builds/{other}", headers=bearer(bob)).json()["status"] == "queued"
        assert http.delete(f"/api/builds/{mine}", headers=bearer(alice)).json()["status"] == (
            "cancelled"
        )
        assert http.delete(f"/api/builds/{other}", headers=bearer(admin)).status_code == 200
        assert http.delete(f"/api/builds/{running}", headers=bearer(admin)).status_code == 200


def test_task_parameters_are_the_declared_ones(
    guarded: tuple[Server, dict[str, str]], tmp_path: Path
) -> None:
    server, tokens = guarded
    secret = tmp_path / "secret-dir" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("TOP-SECRET-a7f3c9\n")
    with httpx.Client(base_url=server.url, timeout=30, headers=bearer(tokens["admin"])) as http:
        for params in ({"dir": "/"}, {"dir": str(secret.parent)}, {"PATH": "/tmp"}):
            answer = http.post("/api/tasks/listing", json={"params": params})
            assert answer.status_code == 400, answer.text
            assert f"has no parameter `{next(iter(params))}`" in answer.json()["error"]
        # Nor can anything below admin run a task at all.
        for scope in ("read", "build"):
            answer = http.post(
                "/api/tasks/listing", json={"params": {}}, headers=bearer(tokens[scope])
            )
            assert answer.status_code == 403
        ran = http.post("/api/tasks/listing", json={"params": {}}).json()
        assert wait_for(http, ran["buildId"])["status"] == "completed"
        logs = http.get(f"/api/logs/{ran['buildId']}").text
        assert "index.html" in logs
        everything = logs + http.get("/api/status").text
    assert "TOP-SECRET" not in everything
    stored = b"".join(p.read_bytes() for p in (server.workdir / ".pf").glob("pf.db*"))
    assert b"TOP-SECRET" not in stored
    assert "TOP-SECRET" not in server.log_path.read_text()


def test_a_non_loopback_bind_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    server = Server(tmp_path / "exposed")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pf",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--root",
            str(server.web),
            "--projects",
            str(server.projects),
        ],
        cwd=server.workdir,
        env=server.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "pf token create NAME --scope admin" in done.stderr
    assert "refusing to serve 0.0.0.0 without authentication" in done.stderr


def test_insecure_no_auth_starts_with_a_warning(make_server: type[Server], tmp_path: Path) -> None:
    server = make_server(
        tmp_path / "insecure", args=("--host", "0.0.0.0", "--insecure-no-auth")
    ).start()
    warnings = [
        line for line in server.log_lines() if "--insecure-no-auth" in str(line.get("message"))
    ]
    assert warnings and warnings[0]["level"] == "warning"
    assert httpx.get(f"{server.url}/api/status", timeout=30).status_code == 200
