"""The build queue over HTTP: unique ids under load, the bound (503 + Retry-After), cancellation."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import alive
from tests.server.conftest import Server, chatty_tool, unique_c, wait_for

CLANG = "/usr/bin/clang-14"


def test_200_concurrent_submissions_get_200_unique_ids(
    make_server: type[Server], tmp_path: Path
) -> None:
    # One client sending 200 at once: past the default burst of the per-client rate limit.
    server = make_server(tmp_path / "serve", env={"PF_RATE_LIMIT": "0"}).start()

    async def submit_all() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as http:
            return await asyncio.gather(
                *(http.post("/api/build/wat", json={"target": "wasm"}) for _ in range(200))
            )

    answers = asyncio.run(submit_all())
    assert [a.status_code for a in answers] == [200] * 200
    ids = [a.json()["buildId"] for a in answers]
    assert len(set(ids)) == 200
    assert all(i.startswith("wat-wasm-") for i in ids)


def _pids(pidfile: Path, timeout: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pidfile.exists() and pidfile.read_text().split():
            return [int(p) for p in pidfile.read_text().split()]
        time.sleep(0.05)
    raise TimeoutError("the compiler wrapper never started")


@pytest.fixture
def slow_server(make_server: type[Server], tmp_path: Path) -> tuple[Server, Path]:
    """One build at a time, two may wait, and every C compile holds for 30 s."""
    pidfile = tmp_path / "pids"
    wrapper = chatty_tool(tmp_path, CLANG, hold=30, pidfile=pidfile)
    server = make_server(
        tmp_path / "work",
        env={
            "PF_JOBS": "1",
            "PF_MAX_QUEUE": "2",
            "PF_CCACHE": "0",
            "PF_SHUTDOWN_GRACE": "1",
            "PF_TOOL_CLANG": str(wrapper),
            "PF_SANDBOX": "off",
        },
    )
    return server.start(), pidfile


def test_queue_bound_answers_503_with_retry_after_and_cancel_works(
    slow_server: tuple[Server, Path],
) -> None:
    server, pidfile = slow_server
    with httpx.Client(base_url=server.url, timeout=30) as http:

        def compile_c(tag: str) -> httpx.Response:
            return http.post("/api/compile", json={"language": "c", "files": unique_c(tag)})

        # A WAT build (no clang involved) whose outputs are in the cache from now on.
        first = http.post("/api/build/wat", json={}).json()["buildId"]
        assert wait_for(http, first)["status"] == "completed"

        running = compile_c("running").json()["buildId"]
        wait_for(http, running, until=("running",))
        wrapper_pid, sleep_pid = _pids(pidfile)
        queued = [compile_c(f"queued-{i}").json()["buildId"] for i in range(2)]
        assert [http.get(f"/api/builds/{b}").json()["status"] for b in queued] == ["queued"] * 2

        refused = compile_c("refused")
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["code"] == "queue-full"
        assert "queue is full" in refused.json()["error"]
        all_refused = http.post("/api/build/all", json={})
        assert all_refused.status_code == 503 and "retry-after" in all_refused.headers

        # A hit needs no place in the queue: answered even though the queue is full.
        hit = http.post("/api/build/wat", json={})
        assert hit.status_code == 200, hit.text
        assert hit.json()["status"] == "completed"
        record = http.get(f"/api/builds/{hit.json()['buildId']}").json()
        assert record["status"] == "completed" and record["cached"] is True

        # A queued build is cancelled at once; it never starts.
        dropped = http.delete(f"/api/builds/{queued[0]}").json()
        assert dropped["status"] == "cancelled"
        # A running one: its whole process group (the wrapper and its child) dies.
        http.delete(f"/api/builds/{running}")
        record = wait_for(http, running, timeout=15)
        assert record["status"] == "cancelled", record
        deadline = time.monotonic() + 10
        while (alive(wrapper_pid) or alive(sleep_pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(wrapper_pid) and not alive(sleep_pid)
        # The freed worker takes the next queued build.
        wait_for(http, queued[1], until=("running",), timeout=15)
        http.delete(f"/api/builds/{queued[1]}")
        assert wait_for(http, queued[1], timeout=15)["status"] == "cancelled"
