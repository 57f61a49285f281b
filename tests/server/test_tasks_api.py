"""Pfyfile tasks over HTTP against a real server: list, run as jobs, live logs, cancel, restart.

The server's Pfyfile is written into its projects root (``pf serve --projects``), where
pf serve looks once PFY_FILE is unset. Each module server and each test's own server
has its own work directory, so the tests run in parallel.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect
from websockets.sync.connection import Connection

from tests.conftest import pids_with_word
from tests.server.conftest import Server, wait_for

PFYFILE = """\
# Tasks of the pf serve task API tests.
task hello
  describe Say hello
  shell echo hello from pf
end

task greet who="world" times="1" [alias hi]
  describe Greet someone, times= times
  shell i=1; while [ $i -le $times ]; do echo "hello $who $i"; i=$((i+1)); done
end

task ticks n="4" delay="0.4"
  describe Print n lines, delay seconds apart
  shell i=0; while [ $i -lt $n ]; do echo "tick $i"; i=$((i+1)); sleep $delay; done
end

task fail code="3"
  shell echo about to fail
  shell exit $code
  shell echo never printed
end

task hold marker
  describe Two shells holding a sleep each, the marker in their argv, one in the background
  shell bash -c 'sleep 60; :' $marker & bash -c 'sleep 60; :' $marker; wait
end

task chain
  needs hello
  shell echo after hello
end
"""

GROUP = """\
task build target="wasm"
  shell echo "web build for $target"
end
"""


# An empty PFY_FILE reads as unset: the servers find their Pfyfile in the projects root
# whatever the caller's environment holds.
NO_PFY_FILE = {"PFY_FILE": ""}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("tasks")
    running = Server(work, env=NO_PFY_FILE)
    (running.projects / "Pfyfile.pf").write_text(PFYFILE)
    (running.projects / "Pfyfile.web.pf").write_text(GROUP)
    running.start()
    yield running
    running.stop()


def _run(client: httpx.Client, name: str, **params: Any) -> dict[str, Any]:
    response = client.post(f"/api/tasks/{name}", json={"params": params})
    assert response.status_code == 202, response.text
    record: dict[str, Any] = response.json()
    return record


def _messages(client: httpx.Client, build_id: str) -> list[tuple[str, str]]:
    logs = client.get(f"/api/logs/{build_id}").json()["logs"]
    return [(entry["stream"], entry["message"]) for entry in logs]


def test_list_has_every_task_with_params_aliases_and_groups(client: httpx.Client) -> None:
    body = client.get("/api/tasks").json()
    assert body["pfyfile"].endswith("projects/Pfyfile.pf")
    by_id = {task["id"]: task for task in body["tasks"]}
    assert list(by_id) == ["hello", "greet", "ticks", "fail", "hold", "chain", "web:build"]
    assert by_id["greet"] == {
        "id": "greet",
        "name": "greet",
        "group": None,
        "description": "Greet someone, times= times",
        "params": [{"name": "who", "default": "world"}, {"name": "times", "default": "1"}],
        "aliases": ["hi"],
    }
    assert by_id["hold"]["params"] == [{"name": "marker", "default": None}]
    assert by_id["web:build"]["group"] == "web"
    assert by_id["web:build"]["name"] == "build"


def test_run_is_a_job_with_record_logs_and_echoed_commands(client: httpx.Client) -> None:
    queued = _run(client, "greet", who="pf", times=2)
    assert queued["kind"] == "task"
    assert queued["status"] == "queued"
    assert queued["buildId"].startswith("task-greet-")
    assert queued["task"] == "greet"
    assert queued["params"] == {"who": "pf", "times": "2"}
    record = wait_for(client, queued["buildId"], timeout=30)
    assert record["status"] == "completed", record
    assert record["progress"] == 100
    assert record["error"] is None
    messages = _messages(client, queued["buildId"])
    assert messages[0][0] == "pf"
    assert messages[0][1].startswith("$ i=1; while")
    assert ("stdout", "hello pf 1") in messages
    assert ("stdout", "hello pf 2") in messages
    # In /api/status as any build.
    ids = [b["buildId"] for b in client.get("/api/status").json()["builds"]]
    assert queued["buildId"] in ids


def test_defaults_aliases_groups_and_needs(client: httpx.Client) -> None:
    by_alias = _run(client, "hi")
    group = _run(client, "web:build", target="llvm")
    chain = _run(client, "chain")
    assert wait_for(client, by_alias["buildId"])["status"] == "completed"
    assert ("stdout", "hello world 1") in _messages(client, by_alias["buildId"])
    assert group["buildId"].startswith("task-web:build-")
    assert wait_for(client, group["buildId"])["status"] == "completed"
    assert ("stdout", "web build for llvm") in _messages(client, group["buildId"])
    assert wait_for(client, chain["buildId"])["status"] == "completed"
    out = [text for stream, text in _messages(client, chain["buildId"]) if stream == "stdout"]
    assert out == ["hello from pf", "after hello"]


def test_failing_task_fails_with_its_exit_code(client: httpx.Client) -> None:
    queued = _run(client, "fail", code=7)
    record = wait_for(client, queued["buildId"])
    assert record["status"] == "failed"
    error = str(record["error"])
    assert "exited with code 7" in error
    line = PFYFILE.splitlines().index("  shell exit $code") + 1
    assert f"(Pfyfile.pf:{line}:3)" in error  # the line that failed, from its dir
    messages = _messages(client, queued["buildId"])
    assert ("stdout", "about to fail") in messages
    assert ("pf", "$ exit $code") in messages
    assert all(text != "never printed" for _, text in messages)


def test_unknown_task_is_404_with_a_suggestion(client: httpx.Client) -> None:
    response = client.post("/api/tasks/gret", json={})
    assert response.status_code == 404
    assert "did you mean `greet`?" in response.json()["error"]
    grouped = client.post("/api/tasks/build", json={})  # only group web has it
    assert grouped.status_code == 404
    assert "did you mean `web:build`?" in grouped.json()["error"]
    assert client.post("/api/tasks/nothing-like-it", json={}).status_code == 404


def test_bad_params_and_bodies_are_400(client: httpx.Client) -> None:
    unknown = client.post("/api/tasks/greet", json={"params": {"whom": "x"}})
    assert unknown.status_code == 400
    assert "no parameter `whom`: did you mean `who`?" in unknown.json()["error"]
    assert client.post("/api/tasks/hello", json={"params": {"x": "1"}}).status_code == 400
    assert client.post("/api/tasks/greet", json={"params": {"who": [1]}}).status_code == 400
    assert client.post("/api/tasks/greet", json={"force": True}).status_code == 400
    nope = client.post(
        "/api/tasks/greet", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert nope.status_code == 400
    nul = client.post("/api/tasks/greet", json={"params": {"who": "a\u0000b"}})
    assert nul.status_code == 400


def _events(ws: Connection, build_id: str, timeout: float) -> list[tuple[float, Any]]:
    """(arrival time, event) of ``build_id`` until it ends."""
    seen: list[tuple[float, Any]] = []
    deadline = time.monotonic() + timeout
    ends = {"build_completed", "build_failed", "build_cancelled"}
    while time.monotonic() < deadline:
        message = json.loads(ws.recv(timeout=deadline - time.monotonic()))
        now = time.monotonic()
        updates = message["updates"] if message["type"] == "batch" else [message]
        for event in updates:
            if event.get("buildId") == build_id:
                seen.append((now, event))
                if event["type"] in ends:
                    return seen
    raise TimeoutError(f"{build_id} did not end; saw {[e['type'] for _, e in seen]}")


def test_output_lines_arrive_over_websocket_while_the_task_runs(
    server: Server, client: httpx.Client
) -> None:
    with connect(server.ws_url, open_timeout=10) as ws:
        initial = json.loads(ws.recv(timeout=10))
        assert initial["type"] == "initial_status"
        queued = _run(client, "ticks", n=4, delay=0.4)
        seen = _events(ws, queued["buildId"], timeout=30)
    types = [event["type"] for _, event in seen]
    assert types[0] == "build_started"
    assert types[-1] == "build_completed"
    started = seen[0][1]
    assert started["language"] == "task" and started["target"] == "ticks"
    lines = [
        (when, line["text"])
        for when, event in seen
        if event["type"] == "build_log"
        for line in event["lines"]
    ]
    texts = [text for _, text in lines]
    assert texts == ["$ " + PFYFILE.split("task ticks")[1].split("shell ")[1].split("\n")[0]] + [
        f"tick {i}" for i in range(4)
    ]
    first_tick = next(when for when, text in lines if text == "tick 0")
    ended = seen[-1][0]
    # Three more ticks 0.4 s apart came after the first: it was sent while the task ran.
    assert ended - first_tick > 0.8


def test_cancel_kills_the_running_commands_process_group(client: httpx.Client) -> None:
    marker = f"pf-hold-{uuid.uuid4().hex}"
    queued = _run(client, "hold", marker=marker)
    deadline = time.monotonic() + 20
    while len(pids_with_word(marker)) < 2:
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.05)
    assert client.get(f"/api/builds/{queued['buildId']}").json()["status"] == "running"
    response = client.delete(f"/api/builds/{queued['buildId']}")
    assert response.status_code == 200
    record = wait_for(client, queued["buildId"], timeout=20)
    assert record["status"] == "cancelled"
    deadline = time.monotonic() + 10
    while pids_with_word(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pids_with_word(marker) == []


def test_missing_and_broken_pfyfile_then_restart_keeps_and_resumes_task_runs(
    make_server: type[Server], tmp_path: Path
) -> None:
    # One worker, so a second run waits behind a long one; a short grace at the stop.
    env = {**NO_PFY_FILE, "PF_JOBS": "1", "PF_SHUTDOWN_GRACE": "0.5"}
    server = make_server(tmp_path / "work", env=env)
    pfyfile = server.projects / "Pfyfile.pf"
    assert not pfyfile.exists()
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/api/tasks").json() == {"pfyfile": None, "tasks": [], "errors": []}
        missing = client.post("/api/tasks/hello", json={})
        assert missing.status_code == 404
        assert "no Pfyfile" in missing.json()["error"]

        pfyfile.write_text("task hello\n  include x.pf\nend\n")
        broken = client.get("/api/tasks")
        assert broken.status_code == 503
        error = broken.json()["error"]
        assert "`include` is only allowed at the top level" in error
        assert f"{pfyfile}:2:3" in error
        assert client.post("/api/tasks/hello", json={}).status_code == 503

        pfyfile.write_text(PFYFILE)  # read again on the next request
        queued = _run(client, "hello")
        record = wait_for(client, queued["buildId"])
        assert record["status"] == "completed"
        logs = _messages(client, queued["buildId"])
        # Running at the stop: cancelled after the grace. Queued behind it: runs again.
        held = _run(client, "hold", marker=f"pf-hold-{uuid.uuid4().hex}")
        wait_for(client, held["buildId"], until=("running",))
        waiting = _run(client, "greet", who="again")
        assert client.get(f"/api/builds/{waiting['buildId']}").json()["status"] == "queued"
    server.stop()

    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        again = client.get(f"/api/builds/{queued['buildId']}").json()
        assert again["kind"] == "task"
        assert again["task"] == "hello"
        assert again["status"] == "completed"
        assert _messages(client, queued["buildId"]) == logs
        ids = [b["buildId"] for b in client.get("/api/status").json()["builds"]]
        assert queued["buildId"] in ids
        stopped = client.get(f"/api/builds/{held['buildId']}").json()
        assert stopped["status"] == "cancelled"
        assert stopped["error"] == "cancelled: pf serve shut down"
        resumed = wait_for(client, waiting["buildId"])
        assert resumed["status"] == "completed"
        assert ("stdout", "hello again 1") in _messages(client, waiting["buildId"])
    with connect(server.ws_url, open_timeout=10) as ws:
        initial = json.loads(ws.recv(timeout=10))
    assert queued["buildId"] in [b["buildId"] for b in initial["builds"]]


def test_a_broken_group_file_is_left_out_and_said_while_the_rest_runs(
    make_server: type[Server], tmp_path: Path
) -> None:
    server = make_server(tmp_path / "work", env=NO_PFY_FILE)
    (server.projects / "Pfyfile.pf").write_text("task hello\n  shell echo hello\nend\n")
    (server.projects / "Pfyfile.web.pf").write_text("task build\n  shell echo $(\nend\nend\n")
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        listing = client.get("/api/tasks").json()
        assert [t["id"] for t in listing["tasks"]] == ["hello"]
        [error] = listing["errors"]
        assert "Pfyfile.web.pf:4:1" in error
        broken = client.post("/api/tasks/web:build", json={})
        assert broken.status_code == 503
        assert "Pfyfile.web.pf:4:1" in broken.json()["error"]
        record = wait_for(client, _run(client, "hello")["buildId"])
        assert record["status"] == "completed"
