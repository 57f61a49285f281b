"""pf serve as a process: restarts keep history, signals stop it gracefully, logs are JSON."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from pf.cli.serve import command
from pf.errors import UsageError
from tests.server.conftest import Server, chatty_tool, unique_c, wait_for

CLANG = "/usr/bin/clang-14"
# After a graceful stop uvicorn re-raises the signal it caught, so the exit status says
# what stopped the process, as a shell and systemd expect.
GRACEFUL = (0, -signal.SIGTERM)


def test_restart_keeps_builds_and_logs(make_server: type[Server], tmp_path: Path) -> None:
    first = make_server(tmp_path / "w").start()
    with httpx.Client(base_url=first.url, timeout=60) as http:
        build_id = http.post("/api/build/c", json={}).json()["buildId"]
        before = wait_for(http, build_id)
        logs_before = http.get(f"/api/logs/{build_id}").json()
    assert first.stop() in GRACEFUL

    second = make_server(tmp_path / "w").start()
    with httpx.Client(base_url=second.url, timeout=60) as http:
        after = http.get(f"/api/builds/{build_id}").json()
        assert after == before
        assert http.get(f"/api/logs/{build_id}").json() == logs_before
        assert build_id in [b["buildId"] for b in http.get("/api/status").json()["builds"]]
        [artifact] = after["artifacts"]
        assert http.get(artifact["url"]).content[:4] == b"\0asm"


def test_a_crash_fails_running_builds_and_requeues_queued_ones(
    make_server: type[Server], tmp_path: Path
) -> None:
    slow = chatty_tool(tmp_path, CLANG, hold=3)
    env = {"PF_JOBS": "1", "PF_CCACHE": "0", "PF_TOOL_CLANG": str(slow), "PF_SANDBOX": "off"}
    crashing = make_server(tmp_path / "w", env=env).start()
    with httpx.Client(base_url=crashing.url, timeout=30) as http:
        post = {"language": "c", "files": unique_c("running")}
        running = http.post("/api/compile", json=post).json()["buildId"]
        wait_for(http, running, until=("running",))
        post = {"language": "c", "files": unique_c("queued")}
        queued = http.post("/api/compile", json=post).json()["buildId"]
        alive = _recorded(http, crashing.workdir / ".pf" / "pf.db", running, queued)
    crashing.stop(signal.SIGKILL)
    killed_at = datetime.now(UTC)

    restarted = make_server(tmp_path / "w", env={**env, "PF_TOOL_CLANG": CLANG}).start()
    with httpx.Client(base_url=restarted.url, timeout=60) as http:
        failed = http.get(f"/api/builds/{running}").json()
        assert failed["status"] == "failed" and failed["error"] == "interrupted by restart"
        # Where it had got to, and when it was last known alive (not the restart).
        assert alive["progress"] > 0 and alive["phase"] != "queued", alive
        assert (failed["progress"], failed["phase"]) == (alive["progress"], alive["phase"])
        started, ended = _time(failed["startTime"]), _time(failed["endTime"])
        assert started <= ended <= killed_at
        assert abs(failed["duration"] - (ended - started).total_seconds() * 1000) <= 1
        assert wait_for(http, queued)["status"] == "completed"


def _recorded(http: httpx.Client, db: Path, running: str, queued: str) -> dict[str, object]:
    """The running build as the API shows it, once the database holds the same progress
    and phase for it and holds the queued build (the writer flushes in batches)."""
    deadline = time.monotonic() + 30
    while True:
        alive: dict[str, object] = http.get(f"/api/builds/{running}").json()
        with contextlib.closing(sqlite3.connect(db)) as conn:
            query = "SELECT id, progress, phase FROM builds WHERE id IN (?, ?)"
            rows = {row[0]: row[1:] for row in conn.execute(query, (running, queued))}
        if queued in rows and rows.get(running) == (alive["progress"], alive["phase"]):
            return alive
        assert time.monotonic() < deadline, f"never recorded: {alive} {rows}"
        time.sleep(0.05)


def _time(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def test_sigterm_lets_running_builds_finish_within_the_grace_then_cancels(
    make_server: type[Server], tmp_path: Path
) -> None:
    slow = chatty_tool(tmp_path, CLANG, hold=30)
    env = {
        "PF_CCACHE": "0",
        "PF_TOOL_CLANG": str(slow),
        "PF_SANDBOX": "off",
        "PF_SHUTDOWN_GRACE": "1",
    }
    server = make_server(tmp_path / "w", env=env).start()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        post = {"language": "c", "files": unique_c("long")}
        build_id = http.post("/api/compile", json=post).json()["buildId"]
        wait_for(http, build_id, until=("running",))
    started = time.monotonic()
    assert server.stop(signal.SIGTERM) in GRACEFUL
    assert time.monotonic() - started < 15
    entries = server.log_lines()
    assert all("timestamp" in e and "level" in e and "message" in e for e in entries), entries
    messages = [str(e["message"]) for e in entries]
    assert "stopping the build service" in messages
    assert any(m.startswith("Finished server process") for m in messages)

    again = make_server(tmp_path / "w").start()
    with httpx.Client(base_url=again.url) as http:
        record = http.get(f"/api/builds/{build_id}").json()
    assert record["status"] == "cancelled", record


def test_cors_origins_names_the_allowed_origins(make_server: type[Server], tmp_path: Path) -> None:
    server = make_server(
        tmp_path / "w", env={"PF_CORS_ORIGINS": "https://a.example, https://b.example"}
    ).start()
    with httpx.Client(base_url=server.url) as http:
        allowed = http.get("/api/health", headers={"Origin": "https://b.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://b.example"
        assert allowed.headers["access-control-allow-credentials"] == "true"
        assert "Origin" in allowed.headers["vary"]
        other = http.get("/api/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_debug_level_logs_each_request_as_json(make_server: type[Server], tmp_path: Path) -> None:
    server = make_server(tmp_path / "w", env={"PF_LOG_LEVEL": "debug"}).start()
    httpx.get(f"{server.url}/api/health?probe=1")

    def logged() -> bool:
        access = [e for e in server.log_lines() if e.get("logger") == "uvicorn.access"]
        return any("/api/health?probe=1" in str(e["message"]) for e in access)

    deadline = time.monotonic() + 10
    while not logged():  # the log line is written after the response is sent
        assert time.monotonic() < deadline, "the request was never logged"
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--port", "70000"], "--port must be from 0 to 65535"),
        (["--backlog", "0"], "--backlog must be from 1 to"),
        (["--root", "/nonexistent/dir"], "is not a directory"),
        (["--ws-ping-interval", "-1"], "must be positive"),
        (["--bogus"], "unrecognized arguments"),
    ],
)
def test_bad_arguments_are_usage_errors(argv: list[str], needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        command(argv)


def test_a_port_in_use_is_a_clear_error(server: Server, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"cannot listen on 127\.0\.0\.1"):
        command(["--port", str(server.port), "--root", str(tmp_path), "--projects", str(tmp_path)])
