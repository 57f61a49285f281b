"""The admin's looks inside a running pf serve: a sampled profile (GET
/api/debug/profile), the allocation sites that grow (/api/debug/memory), and
pf serve --profile FILE for a whole run; a real server, real requests, real tokens."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import Server, wait_for
from tests.server.test_auth import bearer, make_token
from tests.tools import needs_tool

WAT = '(module (func (export "f") (result i32) i32.const {n}))\n'


@pytest.fixture(scope="module")
def guarded(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Server, dict[str, dict[str, str]]]]:
    server = Server(tmp_path_factory.mktemp("debug"), env={"PF_PROFILE_MAX_SECONDS": "3"})
    tokens = {scope: bearer(make_token(server, f"t-{scope}", scope)) for scope in ("read", "admin")}
    server.start()
    yield server, tokens
    server.stop()


def _busy(url: str, headers: dict[str, str], stop: threading.Event) -> None:
    """Requests to pf's own handlers for as long as the profile samples."""
    with httpx.Client(base_url=url, headers=headers, timeout=10) as http:
        while not stop.is_set():
            http.get("/api/status").raise_for_status()


def _profile(server: Server, headers: dict[str, str], **params: str) -> httpx.Response:
    stop = threading.Event()
    load = threading.Thread(target=_busy, args=(server.url, headers, stop))
    load.start()
    try:
        return httpx.get(
            f"{server.url}/api/debug/profile", params=params, headers=headers, timeout=30
        )
    finally:
        stop.set()
        load.join()


def test_only_an_admin_may_look_inside(guarded: tuple[Server, dict[str, dict[str, str]]]) -> None:
    server, tokens = guarded
    for method, path in (
        ("GET", "/api/debug/profile?seconds=0.1"),
        ("GET", "/api/debug/memory"),
        ("POST", "/api/debug/memory"),
        ("DELETE", "/api/debug/memory"),
    ):
        kw = {"json": {}} if method == "POST" else {}
        answer = httpx.request(method, f"{server.url}{path}", headers=tokens["read"], **kw)  # type: ignore[arg-type]
        assert answer.status_code == 403, answer.text
        assert answer.json()["code"] == "forbidden"


def test_a_profile_names_pf_s_own_functions(
    guarded: tuple[Server, dict[str, dict[str, str]]],
) -> None:
    server, tokens = guarded
    page = _profile(server, tokens["admin"], seconds="1")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    # pyinstrument's page carries the session as JSON: every request passed pf's
    # metrics middleware (RequestMetrics.__call__) while it sampled.
    assert "pf/server/middleware.py" in page.text
    speedscope = _profile(server, tokens["admin"], seconds="1", format="speedscope").json()
    frames = speedscope["shared"]["frames"]
    assert any(
        f["name"] == "__call__" and (f["file"] or "").endswith("pf/server/middleware.py")
        for f in frames
    ), frames


def test_a_profile_is_bounded_and_one_at_a_time(
    guarded: tuple[Server, dict[str, dict[str, str]]],
) -> None:
    server, tokens = guarded
    url = f"{server.url}/api/debug/profile"
    for seconds in ("0", "-1", "3.5", "nan", "inf", "soon"):
        answer = httpx.get(url, params={"seconds": seconds}, headers=tokens["admin"])
        assert answer.status_code == 400, (seconds, answer.text)
        assert "PF_PROFILE_MAX_SECONDS" in answer.json()["error"]
    # Two profiles asked for at once: whichever the server takes first holds the profiler
    # for its 3 s, and the other is refused (a loop of short profiles would race it).
    answers: list[httpx.Response] = []

    def ask() -> None:
        answers.append(httpx.get(url, params={"seconds": "3"}, headers=tokens["admin"], timeout=30))

    both = [threading.Thread(target=ask) for _ in range(2)]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join()
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text[:200] for a in answers]
    refused = next(a for a in answers if a.status_code == 409)
    assert refused.json()["code"] == "profile-running"


@needs_tool("wat2wasm")
def test_memory_shows_the_sites_that_grow(
    guarded: tuple[Server, dict[str, dict[str, str]]],
) -> None:
    server, tokens = guarded
    with httpx.Client(base_url=server.url, headers=tokens["admin"], timeout=30) as http:
        off = http.get("/api/debug/memory")
        assert off.status_code == 409 and off.json()["code"] == "tracemalloc-off", off.text
        started = http.post("/api/debug/memory", json={"frames": 1}).json()
        assert started["tracing"] is True and started["frames"] == 1
        first = http.get("/api/debug/memory", params={"top": "100"}).json()
        assert first["since"] is None and 0 < len(first["sites"]) <= 100
        # Builds the server keeps in memory (PF_MAX_BUILDS records): pf's own sites grow.
        for n in range(40):
            queued = http.post(
                "/api/compile", json={"language": "wat", "files": {"f.wat": WAT.format(n=n)}}
            )
            assert queued.status_code == 202, queued.text
            wait_for(http, queued.json()["buildId"])
        second = http.get("/api/debug/memory", params={"top": "100"}).json()
        assert second["since"] is not None and second["pid"] == first["pid"]
        grown = [
            site
            for site in second["sites"]
            if "/pf/" in site["file"] and (site["sizeGrowth"] or 0) > 0
        ]
        assert grown, json.dumps(second["sites"][:10], indent=1)
        stopped = http.delete("/api/debug/memory").json()
        assert stopped["tracing"] is False
        assert http.get("/api/debug/memory").status_code == 409


def test_serve_profile_writes_the_whole_run(tmp_path: Path) -> None:
    target = tmp_path / "run.html"
    server = Server(tmp_path / "serve", args=("--profile", str(target))).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for _ in range(50):
                http.get("/api/status").raise_for_status()
    finally:
        # uvicorn raises the signal again once it has drained.
        assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    text = target.read_text()
    # The start (the app's creation) and the requests served.
    assert "pf/server/app.py" in text and "pf/server/middleware.py" in text
    written = [e for e in server.log_lines() if e.get("message") == "profile written"]
    assert written and written[0]["path"] == str(target)
