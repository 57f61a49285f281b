"""Shared mode for real: pf serve processes queue builds on Procrastinate in a private
PostgreSQL, pf worker processes run them, and what one worker built every process serves
(its artifacts, and its modules at the original's /wasm/ paths). Workers are SIGKILLed
mid-build and cancelled builds are aborted on whichever worker runs them."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from websockets.sync.client import ClientConnection, connect

from pf.engine.farm import retried_line
from pf.engine.manifests import measure
from pf.store import BuildRecord, Store
from tests.server.conftest import (
    Server,
    Worker,
    chatty_tool,
    download_artifacts,
    unique_c,
    wait_for,
)
from tests.toolchains.support import instantiate

DEADLINE = 60.0


class Farm:
    """pf serve and pf worker processes sharing one PostgreSQL and one Redis."""

    def __init__(self, tmp_path: Path, pg_url: str, redis_url: str) -> None:
        self.tmp_path = tmp_path
        self.env = {"PF_DATABASE_URL": pg_url, "PF_REDIS_URL": redis_url}
        self.pg_url = pg_url
        self.servers: list[Server] = []
        self.workers: list[Worker] = []

    def server(self, pfyfile: str | None = None, **env: str) -> Server:
        work = self.tmp_path / f"api{len(self.servers)}"
        work.mkdir()
        server = Server(work, env={**self.env, "PFY_FILE": "", **env})
        if pfyfile is not None:
            (server.projects / "Pfyfile.pf").write_text(pfyfile)
        self.servers.append(server)
        return server.start()

    def worker(self, concurrency: int = 1, **env: str) -> Worker:
        assert self.servers, "start a server first: workers build its projects"
        directory = self.tmp_path / f"worker{len(self.workers)}"
        worker = Worker(directory, self.servers[0].projects, {**self.env, **env})
        self.workers.append(worker)
        return worker.start(concurrency)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop(signal.SIGKILL)
        for server in self.servers:
            server.stop()


@pytest.fixture
def farm(tmp_path: Path, pg_url: str, redis_url: str) -> Iterator[Farm]:
    made = Farm(tmp_path, pg_url, redis_url)
    yield made
    made.stop()


def _job_attempts(pg_url: str, build_id: str) -> list[int]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT attempts FROM procrastinate_jobs WHERE lock = %s", (build_id,)
        ).fetchall()
    return [int(r[0]) for r in rows]


def _wait_status(http: httpx.Client, build_id: str, status: str, timeout: float) -> float:
    """Seconds until the build's record says ``status``."""
    started = time.monotonic()
    record = wait_for(http, build_id, timeout=timeout, until=(status,))
    assert record["status"] == status
    return time.monotonic() - started


def test_builds_of_every_language_run_on_two_workers_and_their_artifacts_run(
    farm: Farm, tmp_path: Path
) -> None:
    server = farm.server()
    farm.worker()
    farm.worker()
    with httpx.Client(base_url=server.url, timeout=60) as http:
        ready = http.get("/api/ready").json()
        assert ready["queue"]["workers"] == 2, ready
        body = http.post("/api/build/all", json={"target": "wasm"}).json()
        records = [wait_for(http, build_id, timeout=120) for build_id in body["buildIds"]]
        assert [r["status"] for r in records] == ["completed"] * 4, records
        # The API process built nothing: the bytes come from the shared cache.
        files = download_artifacts(http, records, tmp_path)
        logs = http.get(f"/api/logs/{records[0]['buildId']}").json()["logs"]
        assert any("built" in entry["message"] for entry in logs)
        metrics = http.get("/api/metrics").json()
        assert metrics["buildCount"] == 4 and metrics["activeBuilds"] == 0
    for language in ("rust", "c", "wat"):
        store, exports = instantiate(files[language])
        assert exports["add"](store, 40, 2) == 42, language
    assert measure(server.workdir / ".pf" / "cache") == (0, 0, 0), (
        "pf serve compiled in shared mode"
    )


def test_a_hit_made_by_one_worker_is_a_hit_for_another_with_its_own_cache(farm: Farm) -> None:
    server = farm.server()
    first = farm.worker()
    sources = unique_c("shared-hit")
    with httpx.Client(base_url=server.url, timeout=60) as http:
        built = http.post("/api/compile", json={"language": "c", "files": sources}).json()
        record = wait_for(http, built["buildId"])
        assert record["status"] == "completed" and record["cached"] is False
        first.stop()
        farm.worker()  # another cache directory, empty
        again = http.post("/api/compile", json={"language": "c", "files": sources}).json()
        hit = wait_for(http, again["buildId"])
        assert hit["status"] == "completed" and hit["cached"] is True, hit
        assert hit["artifacts"] == [
            {**a, "url": a["url"].replace(built["buildId"], again["buildId"])}
            for a in record["artifacts"]  # type: ignore[attr-defined]
        ]
        assert http.get("/api/metrics").json()["cacheHits"] == 1


def test_a_running_build_is_cancelled_on_the_worker_that_runs_it(
    farm: Farm, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    held = chatty_tool(tmp_path, "/usr/bin/clang-14", hold=60, pidfile=pids)
    env = {"PF_TOOL_CLANG": str(held), "PF_SANDBOX": "off", "PF_CCACHE": "0"}
    server = farm.server(**env)
    farm.worker(**env)
    other = farm.server(**env)  # the cancel goes through another API process
    with httpx.Client(base_url=server.url, timeout=60) as http:
        build_id = http.post(
            "/api/compile", json={"language": "c", "files": unique_c("cancel")}
        ).json()["buildId"]
        _wait_status(http, build_id, "running", DEADLINE)
        deadline = time.monotonic() + DEADLINE
        while not pids.exists() or not pids.read_text().strip():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        asked = time.monotonic()
        answer = httpx.delete(f"{other.url}/api/builds/{build_id}", timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "cancelled"
        record = wait_for(http, build_id, timeout=DEADLINE)
        assert record["status"] == "cancelled", record
        assert time.monotonic() - asked < 10
        sleeper = int(pids.read_text().split()[1])
        deadline = time.monotonic() + DEADLINE
        while Path(f"/proc/{sleeper}").exists() and b"Z" not in _state(sleeper):
            assert time.monotonic() < deadline, "the compiler was not killed"
            time.sleep(0.05)
        assert http.delete(f"/api/builds/{build_id}").status_code == 409


def _state(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().split(b") ")[1][:1]
    except (OSError, IndexError):
        return b"Z"


def test_a_queued_build_is_cancelled_before_any_worker_takes_it(farm: Farm) -> None:
    server = farm.server()
    with httpx.Client(base_url=server.url, timeout=60) as http:
        build_id = http.post(
            "/api/compile", json={"language": "c", "files": unique_c("queued")}
        ).json()["buildId"]
        answer = http.delete(f"/api/builds/{build_id}")
        assert answer.status_code == 200 and answer.json()["status"] == "cancelled"
        farm.worker()
        record = wait_for(http, build_id)
        assert record["status"] == "cancelled"
        assert http.get("/api/ready").json()["queue"]["queued"] == 0


def test_the_same_action_through_two_api_processes_runs_once(farm: Farm, tmp_path: Path) -> None:
    slow = chatty_tool(tmp_path, "/usr/bin/clang-14", hold=2)
    env = {"PF_TOOL_CLANG": str(slow), "PF_SANDBOX": "off", "PF_CCACHE": "0"}
    one, two = farm.server(**env), farm.server(**env)
    farm.worker(**env)
    farm.worker(**env)
    sources = unique_c("twice")
    ids = []
    for server in (one, two):
        answer = httpx.post(
            f"{server.url}/api/compile", json={"language": "c", "files": sources}, timeout=30
        )
        ids.append(answer.json()["buildId"])
    with httpx.Client(base_url=one.url, timeout=60) as http:
        records = [wait_for(http, build_id) for build_id in ids]
    assert [r["status"] for r in records] == ["completed", "completed"]
    assert sorted(bool(r["cached"]) for r in records) == [False, True], records


def test_a_task_run_goes_to_a_worker_too(farm: Farm) -> None:
    server = farm.server(pfyfile='task greet who="world"\n  shell echo "hello $who"\nend\n')
    farm.worker()
    with httpx.Client(base_url=server.url, timeout=60) as http:
        answer = http.post("/api/tasks/greet", json={"params": {"who": "farm"}})
        assert answer.status_code == 202, answer.text
        record = wait_for(http, answer.json()["buildId"])
        assert record["status"] == "completed", record
        logs = [e["message"] for e in http.get(f"/api/logs/{record['buildId']}").json()["logs"]]
        assert "hello farm" in logs


def test_a_build_recorded_by_a_pf_serve_that_died_before_queueing_it_still_runs(
    farm: Farm,
) -> None:
    server = farm.server()
    # What a pf serve killed between recording a build and queueing it leaves behind.
    store = Store(farm.pg_url)
    store.open()
    try:
        store.write(
            [
                BuildRecord(
                    id="c-wasm-orphan",
                    kind="compile",
                    language="c",
                    target="wasm",
                    status="queued",
                    created_at=time.time() - 3600,
                    sources=unique_c("orphan"),
                )
            ]
        )
    finally:
        store.close()
    farm.worker(PF_WORKER_HEARTBEAT="0.5")
    with httpx.Client(base_url=server.url, timeout=60) as http:
        record = wait_for(http, "c-wasm-orphan", timeout=DEADLINE)
    assert record["status"] == "completed", record


def test_a_task_run_whose_worker_is_killed_fails_rather_than_running_twice(
    farm: Farm,
) -> None:
    server = farm.server(pfyfile="task slow\n  shell echo started; sleep 60\nend\n")
    doomed = farm.worker()
    with httpx.Client(base_url=server.url, timeout=60) as http:
        build_id = http.post("/api/tasks/slow", json={}).json()["buildId"]
        _wait_status(http, build_id, "running", DEADLINE)
        farm.worker()
        assert doomed.proc is not None
        doomed.proc.send_signal(signal.SIGKILL)
        doomed.proc.wait()
        record = wait_for(http, build_id, timeout=DEADLINE)
    assert record["status"] == "failed", record
    assert "interrupted: the pf worker running this task stopped" in str(record["error"])


def _pinned_clients(url: str, processes: int = 2) -> dict[int, httpx.Client]:
    """One client per API process behind ``url``, each held on one kept-alive connection
    to its process (/api/system says which answered)."""
    pinned: dict[int, httpx.Client] = {}
    deadline = time.monotonic() + DEADLINE
    while len(pinned) < processes:
        assert time.monotonic() < deadline, f"only {sorted(pinned)} answered"
        http = httpx.Client(base_url=url, timeout=30, limits=httpx.Limits(max_connections=1))
        pid = http.get("/api/system").json()["pid"]
        if pid in pinned:
            http.close()
        else:
            pinned[pid] = http
    return pinned


def _eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_every_api_process_serves_and_lists_the_modules_workers_built(shared_api: Server) -> None:
    pinned = _pinned_clients(shared_api.url)
    try:
        some = next(iter(pinned.values()))
        digests = []
        for opt_level in ("0", "2"):
            answer = some.post("/api/build/c", json={"target": "wasm", "opt_level": opt_level})
            record = wait_for(some, answer.json()["buildId"])
            assert record["status"] == "completed", record
            [artifact] = record["artifacts"]  # type: ignore[misc]
            digests.append(artifact["digest"])
            for pid, http in pinned.items():
                # At once: a client that saw the build complete fetches its module.
                served = http.get("/wasm/c/math.wasm")
                assert http.get("/api/system").json()["pid"] == pid  # the same process
                assert served.status_code == 200, (pid, served.text)
                assert served.content.startswith(b"\0asm")
                if served.headers["etag"] != f'"{artifact["digest"]}"':
                    # Another process's completion reaches this one through Redis within
                    # milliseconds; until then it serves the build before.
                    _eventually(
                        lambda http=http, digest=artifact["digest"]: (
                            http.get("/wasm/c/math.wasm").headers["etag"] == f'"{digest}"'
                        ),
                        f"process {pid} never served the new module",
                    )

                def listed(http: httpx.Client = http, build_id: object = record["buildId"]) -> bool:
                    modules = http.get("/api/modules").json()["modules"]
                    files = [f for m in modules if m["language"] == "c" for f in m["files"]]
                    return any(f["name"] == "math.wasm" and f["buildId"] == build_id for f in files)

                _eventually(listed, f"process {pid} does not list the module")
        assert digests[0] != digests[1]
    finally:
        for http in pinned.values():
            http.close()


def test_a_worker_killed_mid_build_is_replaced_and_the_build_completes_once(
    farm: Farm, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    slow = chatty_tool(tmp_path, "/usr/bin/clang-14", lines=3, hold=3, pidfile=pids)
    env = {"PF_TOOL_CLANG": str(slow), "PF_SANDBOX": "off", "PF_CCACHE": "0"}
    server = farm.server(**env)
    doomed = farm.worker(**env)
    with httpx.Client(base_url=server.url, timeout=60) as http, connect(server.ws_url) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "initial_status"
        build_id = http.post(
            "/api/compile", json={"language": "c", "files": unique_c("killed")}
        ).json()["buildId"]
        # Killed while the compiler holds, after it printed its lines.
        deadline = time.monotonic() + DEADLINE
        while not pids.exists() or not pids.read_text().strip():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        farm.worker(**env)
        assert doomed.proc is not None
        doomed.proc.send_signal(signal.SIGKILL)
        doomed.proc.wait()
        killed_at = time.monotonic()
        record = wait_for(http, build_id, timeout=DEADLINE)
        recovered = time.monotonic() - killed_at
        assert record["status"] == "completed", record
        assert recovered < DEADLINE
        assert _job_attempts(farm.pg_url, build_id) in ([], [1])
        [artifact] = record["artifacts"]  # type: ignore[misc]
        assert http.get(artifact["url"]).status_code == 200
        live = [
            line
            for event in _events_until_end(ws, build_id)
            if event["type"] == "build_log"
            for line in event["lines"]
        ]
        stored = http.get(f"/api/logs/{build_id}").json()["logs"]
    # One record of it, ended once.
    with psycopg.connect(farm.pg_url) as conn:
        rows = conn.execute("SELECT status, attempt FROM builds WHERE id = %s", (build_id,))
        assert rows.fetchall() == [("completed", 1)]
    # Its log: the lost attempt's lines, one separator, then the attempt that counts.
    texts = [entry["message"] for entry in stored]
    assert texts.count(retried_line(1)) == 1, texts
    separator = texts.index(retried_line(1))
    assert stored[separator]["level"] == "warn" and stored[separator]["stream"] == "pf"
    printed = [f"progress line {n} of a chatty compiler wrapper" for n in range(3)]
    for attempt in (texts[:separator], texts[separator + 1 :]):
        progress = [t for t in attempt if t.startswith("progress")]
        steps = len(progress) // len(printed)  # once per clang step the attempt reached
        assert steps >= 1 and progress == printed * steps, texts
    # The live view is the stored log: the same lines, numbered once, in the same order.
    assert [line["text"] for line in live] == texts
    assert [line["seq"] for line in live] == list(range(len(texts)))


def _events_until_end(ws: ClientConnection, build_id: str) -> list[dict[str, Any]]:
    seen = []
    deadline = time.monotonic() + DEADLINE
    while True:
        message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        for event in message["updates"] if message["type"] == "batch" else [message]:
            if event.get("buildId") == build_id:
                seen.append(event)
                if event["type"] in {"build_completed", "build_failed", "build_cancelled"}:
                    return seen


def test_a_worker_that_was_only_stopped_cannot_mix_its_lines_into_the_new_attempt(
    farm: Farm, tmp_path: Path
) -> None:
    # Ten lines 0.3 s apart: the stopped worker's compiler goes on printing into its pipe,
    # and the worker reads those lines once it runs again. The other worker's compiler
    # ends its lines with a dot (and, another binary, makes another action: it never
    # waits for the stopped worker's single-flight lock).
    def env(width: int) -> dict[str, str]:
        chatty = chatty_tool(tmp_path, "/usr/bin/clang-14", lines=10, delay=0.3, width=width)
        return {
            "PF_TOOL_CLANG": str(chatty),
            "PF_SANDBOX": "off",
            "PF_CCACHE": "0",
            "PF_WORKER_HEARTBEAT": "0.5",
            "PF_WORKER_STALLED_AFTER": "2",
        }

    server = farm.server(**env(0))
    stopped = farm.worker(**env(0))
    assert stopped.proc is not None
    with httpx.Client(base_url=server.url, timeout=60) as http:
        build_id = http.post(
            "/api/compile", json={"language": "c", "files": unique_c("stopped")}
        ).json()["buildId"]

        def messages() -> list[str]:
            logs = http.get(f"/api/logs/{build_id}").json()["logs"]
            return [entry["message"] for entry in logs]

        def until_logged(text: str) -> None:
            deadline = time.monotonic() + DEADLINE
            while not any(m.startswith(text) for m in messages()):
                assert time.monotonic() < deadline, f"never logged {text!r}: {messages()}"
                time.sleep(0.05)

        until_logged("progress line 0 ")
        stopped.proc.send_signal(signal.SIGSTOP)
        try:
            other = farm.worker(**env(1))
            until_logged(retried_line(1))
        finally:
            stopped.proc.send_signal(signal.SIGCONT)
        record = wait_for(http, build_id, timeout=DEADLINE)
        assert record["status"] == "completed", record
        other.stop()
        # The stopped worker (concurrency 1) takes this build only once it has finished
        # the one it lost, its lines and rows recorded or refused; or it exits, as
        # Procrastinate's worker may once it finds its job taken over, after the same.
        after = http.post(
            "/api/compile", json={"language": "c", "files": unique_c("after")}
        ).json()["buildId"]
        deadline = time.monotonic() + DEADLINE
        while stopped.proc.poll() is None:
            if http.get(f"/api/builds/{after}").json()["status"] == "completed":
                break
            assert time.monotonic() < deadline, "the stopped worker neither ran on nor exited"
            time.sleep(0.05)
        final = messages()
    assert final.count(retried_line(1)) == 1, final
    separator = final.index(retried_line(1))
    printed = [f"progress line {n} of a chatty compiler wrapper" for n in range(10)]
    # The stopped worker's: what it printed before it was stopped, then nothing: the
    # lines it read once it ran again belong to a superseded attempt.
    lost = [m for m in final if m.startswith("progress") and not m.endswith(".")]
    assert lost and lost == printed[: len(lost)] and len(lost) < 10, final
    assert not any(m in lost for m in final[separator:]), final
    # The new attempt's, all after the separator.
    again = [m for m in final if m.startswith("progress") and m.endswith(".")]
    assert again and again == [m + "." for m in printed] * (len(again) // 10), final
    assert all(m in final[separator:] for m in again)
