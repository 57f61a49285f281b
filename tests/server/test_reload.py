"""pf serve --reload: a real server in a temporary project, restarted by a real edit of
its Pfyfile, serving the edited tasks from a new process."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx

from tests.conftest import alive
from tests.server.conftest import Server

DEADLINE = 60.0
PFYFILE = "task hello\n  shell echo hello\nend\n"


def _listening(server: Server) -> list[int]:
    return [
        int(str(e["port"])) for e in server.log_lines() if e.get("message") == "pf serve listening"
    ]


def _answer(port: int, path: str) -> httpx.Response:
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10)
        except httpx.TransportError:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def _tasks(port: int) -> set[str]:
    return {task["name"] for task in _answer(port, "/api/tasks").json()["tasks"]}


def test_an_edited_pfyfile_restarts_the_server(tmp_path: Path) -> None:
    server = Server(tmp_path / "serve", env={"PFY_FILE": ""}, args=("--reload",))
    pfyfile = server.projects / "Pfyfile.pf"
    pfyfile.write_text(PFYFILE)
    server.start()
    try:
        assert _tasks(server.port) == {"hello"}
        first = _answer(server.port, "/api/system").json()["pid"]
        pfyfile.write_text(PFYFILE + "task goodbye\n  shell echo goodbye\nend\n")
        deadline = time.monotonic() + DEADLINE
        while len(_listening(server)) < 2:
            assert time.monotonic() < deadline, server.log_path.read_text()
            time.sleep(0.1)
        port = _listening(server)[-1]
        assert _tasks(port) == {"hello", "goodbye"}
        second = _answer(port, "/api/system").json()["pid"]
        assert second != first
        restarts = [
            e for e in server.log_lines() if e.get("message") == "pf serve --reload: restarting"
        ]
        assert restarts and str(pfyfile) in restarts[0]["changed"]  # type: ignore[operator]
        assert not alive(first), "the first pf serve still runs after the restart"
    finally:
        server.stop(signal.SIGTERM)
    assert not alive(second), "pf serve outlived pf serve --reload"
