"""The build service's queue, cancellation, restarts and retention, with real compilers.

A wrapper around wat2wasm (service_harness.install_wrapper) holds builds running for as
long as a test needs, so "running" and "queued" are states the test arranges, not races.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.engine import make_url

from pf.config import load_settings
from pf.engine.retention import prune_history
from pf.engine.service import SHUTDOWN_REASON, BuildFinished, WriterBehind
from pf.errors import QueueFull
from pf.store import Store
from tests.engine.service_harness import (
    events_until_end,
    install_wrapper,
    make_projects,
    process_gone,
    running,
    status_of,
    wait_for,
    wat,
)


@pytest.fixture
def projects(tmp_path: Path) -> Path:
    return make_projects(tmp_path, languages=("wat",))


@pytest.fixture
def one_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PF_JOBS", "1")


def test_the_queue_is_bounded_and_a_queued_build_can_be_cancelled(
    projects: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_worker: None
) -> None:
    monkeypatch.setenv("PF_MAX_QUEUE", "3")
    wrapper = install_wrapper(tmp_path, monkeypatch)
    wrapper.hang()

    async def scenario() -> None:
        async with running(projects, grace=0.1) as service:
            busy = service.submit_compile("wat", "wasm", {"m.wat": wat(10)}, {}).id
            await asyncio.to_thread(wrapper.child_pid)
            await wait_for(service, busy, ("running",))
            queued = [
                service.submit_compile("wat", "wasm", {"m.wat": wat(n)}, {}).id
                for n in (11, 12, 13)
            ]
            assert service.queue_depth == 3 and service.active_builds == 1
            with pytest.raises(QueueFull) as full:
                service.submit_compile("wat", "wasm", {"m.wat": wat(14)}, {})
            assert full.value.http_status == 503 and full.value.retry_after >= 1
            assert "queue is full (3 builds waiting)" in full.value.message
            with pytest.raises(QueueFull):
                service.submit_all("wasm", None, {})
            assert len(service.list_builds()) == 4  # nothing of the refused ones recorded

            sub = service.subscribe()
            cancelled = service.cancel(queued[0])
            assert cancelled.status == "cancelled" and cancelled.ended_at is not None
            seen = await events_until_end(sub, queued[0])
            assert seen[-1] == {"type": "build_cancelled", "buildId": queued[0]}
            assert "build_progress" not in [e["type"] for e in seen]
            assert service.queue_depth == 2
            service.submit_compile("wat", "wasm", {"m.wat": wat(15)}, {})  # room again

            starts = wrapper.start_count()
            wrapper.release()
            service.cancel(busy)
            for build_id in queued[1:]:
                assert (await wait_for(service, build_id)).status == "completed"
            assert wrapper.start_count() >= starts + 2
            assert status_of(service, queued[0]) == "cancelled"
            with pytest.raises(BuildFinished, match="already finished \\(completed\\)") as late:
                service.cancel(queued[1])
            assert late.value.http_status == 409
            assert status_of(service, queued[1]) == "completed"
            # Only its cache lookup needed its plan, and only its compile the action that
            # lookup keyed: no ended build keeps either in memory, whether it completed or
            # was cancelled (running, or waiting for a worker).
            ended = [service._job(build_id) for build_id in (busy, *queued)]
            assert all(job is not None and job.finished for job in ended)
            assert not any(job.plan or job.action for job in ended if job is not None)

    asyncio.run(scenario())


def test_cancelling_a_running_build_kills_its_process_group(
    projects: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrapper = install_wrapper(tmp_path, monkeypatch)
    wrapper.hang()

    async def scenario() -> None:
        async with running(projects) as service:
            sub = service.subscribe()
            build_id = service.submit_compile("wat", "wasm", {"m.wat": wat(20)}, {}).id
            pid = await asyncio.to_thread(wrapper.child_pid)
            # Shown running once it has run a moment (engine.buildproc's PHASE_HOLD).
            await wait_for(service, build_id, ("running",))
            assert service.cancel(build_id).status == "cancelled"
            seen = await events_until_end(sub, build_id)
            assert seen[-1] == {"type": "build_cancelled", "buildId": build_id}
            record = await wait_for(service, build_id)
            assert record.status == "cancelled" and record.error is None
            assert record.ended_at is not None and record.artifacts == ()
            assert process_gone(pid)
            with pytest.raises(Exception, match="Build not found"):
                service.cancel("wat-wasm-0-nothing")

    asyncio.run(scenario())


def test_a_build_waiting_in_the_build_process_is_queued_and_cancelled_at_once(
    projects: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_worker: None
) -> None:
    wrapper = install_wrapper(tmp_path, monkeypatch)
    wrapper.hang()

    async def scenario() -> None:
        async with running(projects) as service:
            busy = service.submit_compile("wat", "wasm", {"m.wat": wat(30)}, {}).id
            await asyncio.to_thread(wrapper.child_pid)
            await wait_for(service, busy, ("running",))
            sub = service.subscribe()
            waiting = service.submit_compile("wat", "wasm", {"m.wat": wat(31)}, {}).id
            # Handed to the build process, not started there.
            deadline = time.monotonic() + 20
            while len(service.scheduler.running_jobs()) < 2:
                assert time.monotonic() < deadline, "the second build was never handed over"
                await asyncio.sleep(0.01)
            assert status_of(service, waiting) == "queued"
            assert (service.active_builds, service.queued_builds) == (1, 1)
            cancelled = service.cancel(waiting)
            assert cancelled.status == "cancelled" and cancelled.ended_at is not None
            seen = await events_until_end(sub, waiting)
            assert [e["type"] for e in seen] == ["build_started", "build_cancelled"]
            wrapper.release()
            assert (await wait_for(service, busy)).status == "completed"
            assert wrapper.start_count() == 1  # the cancelled one never ran
            assert status_of(service, waiting) == "cancelled"

    asyncio.run(scenario())


def test_a_cache_hit_is_answered_while_misses_wait(
    projects: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_worker: None
) -> None:
    monkeypatch.setenv("PF_MAX_BUILDS", "1")  # finished builds evicted; running ones never
    wrapper = install_wrapper(tmp_path, monkeypatch)

    async def scenario() -> None:
        async with running(projects, grace=0.1) as service:
            warm = service.submit_compile("wat", "wasm", {"m.wat": wat(30)}, {}).id
            await wait_for(service, warm)
            wrapper.hang()
            busy = service.submit_compile("wat", "wasm", {"m.wat": wat(31)}, {}).id
            await asyncio.to_thread(wrapper.child_pid)
            await wait_for(service, busy, ("running",))
            waiting = service.submit_compile("wat", "wasm", {"m.wat": wat(32)}, {}).id
            sub = service.subscribe()
            started = time.monotonic()
            hit = service.submit_compile("wat", "wasm", {"m.wat": wat(30)}, {})
            assert hit.eta is not None  # from the earlier build of wat -> wasm
            record = await wait_for(service, hit.id, timeout=5)
            assert record.cached is True and time.monotonic() - started < 2
            assert [e["type"] for e in await events_until_end(sub, hit.id)] == [
                "build_started",
                "build_log",
                "build_completed",
            ]
            assert status_of(service, busy) == "running"
            assert status_of(service, waiting) == "queued"
            assert [j.id for j in service.recent.newest_first()] == [hit.id]
            service.cancel(waiting)
            wrapper.release()
            assert (await wait_for(service, busy)).status == "completed"
            hits = REGISTRY.get_sample_value("pf_cache_requests_total", {"result": "hit"})
            built = REGISTRY.get_sample_value(
                "pf_builds_total", {"language": "wat", "target": "wasm", "status": "completed"}
            )
            assert hits is not None and hits >= 1 and built is not None and built >= 3

    asyncio.run(scenario())


def test_a_cache_hit_is_answered_by_its_submission_once_the_queue_is_half_full(
    projects: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_worker: None
) -> None:
    monkeypatch.setenv("PF_MAX_QUEUE", "4")
    wrapper = install_wrapper(tmp_path, monkeypatch)

    async def scenario() -> None:
        async with running(projects, grace=0.1) as service:
            warm = service.submit_compile("wat", "wasm", {"m.wat": wat(40)}, {}).id
            await wait_for(service, warm)
            early = service.submit_compile("wat", "wasm", {"m.wat": wat(40)}, {})
            assert early.status == "queued"  # room in the queue: a triage thread answers
            await wait_for(service, early.id)
            wrapper.hang()
            busy = service.submit_compile("wat", "wasm", {"m.wat": wat(41)}, {}).id
            # Until its step reaches the API, the hanging compile counts as waiting.
            await wait_for(service, busy, ("running",))
            waiting = [
                service.submit_compile("wat", "wasm", {"m.wat": wat(n)}, {}).id for n in (42, 43)
            ]
            hit = service.submit_compile("wat", "wasm", {"m.wat": wat(40)}, {})
            assert (hit.status, hit.cached) == ("completed", True)
            # A miss looked up the same way waits in the queue as any other.
            miss = service.submit_compile("wat", "wasm", {"m.wat": wat(44)}, {}).id
            last = service.submit_compile("wat", "wasm", {"m.wat": wat(45)}, {}).id
            assert [status_of(service, b) for b in (*waiting, miss, last)] == ["queued"] * 4
            # The queue is full: a hit is still answered, a miss is refused.
            full = service.submit_compile("wat", "wasm", {"m.wat": wat(40)}, {})
            assert (full.status, full.cached) == ("completed", True)
            with pytest.raises(QueueFull):
                service.submit_compile("wat", "wasm", {"m.wat": wat(46)}, {})
            wrapper.release()
            for build in (busy, *waiting, miss, last):
                assert (await wait_for(service, build)).status == "completed"

    asyncio.run(scenario())


def test_log_caps_keep_the_first_lines_and_one_marker(
    projects: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PF_MAX_LOGS_PER_BUILD", "5")
    install_wrapper(tmp_path, monkeypatch, lines=[f"chatter {i}" for i in range(40)])

    async def scenario() -> None:
        async with running(projects) as service:
            sub = service.subscribe()
            build_id = service.submit_compile("wat", "wasm", {"m.wat": wat(40)}, {}).id
            seen = await events_until_end(sub, build_id)
            assert (await wait_for(service, build_id)).status == "completed"
            logs = service.logs(build_id) or []
            assert [e["message"] for e in logs[:5]] == [f"chatter {i}" for i in range(5)]
            assert len(logs) == 6 and logs[5]["stream"] == "pf"
            assert logs[5]["message"].startswith("[log truncated: more than 5 lines")
            published = [line for e in seen if e["type"] == "build_log" for line in e["lines"]]
            assert [line["text"] for line in published] == [e["message"] for e in logs]

    asyncio.run(scenario())


def test_history_retention_deletes_the_oldest_builds_and_their_logs(
    projects: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PF_MAX_HISTORY", "3")

    async def scenario() -> None:
        async with running(projects) as service:
            ids = []
            for n in range(5):
                build_id = service.submit_compile("wat", "wasm", {"m.wat": wat(50 + n)}, {})
                ids.append(build_id.id)
                await wait_for(service, ids[-1])
            service.recorder.flush()
            assert prune_history(service.store, service.settings) == 2
            assert service.store.count() == 3
            assert service.store.get(ids[0]) is None and service.store.logs(ids[0]) == []
            assert service.store.logs(ids[4]) != []

    asyncio.run(scenario())


@pytest.mark.parametrize("compiles", [True, False], ids=["used", "never-used"])
def test_the_build_process_starts_with_the_service_and_ends_with_it(
    projects: Path, one_worker: None, compiles: bool
) -> None:
    async def scenario() -> int:
        async with running(projects) as service:
            assert service.build_process is not None
            pid = service.build_process.pid
            # Before any compile: the first one must not wait for it to import pf.
            assert pid is not None and not process_gone(pid)
            if compiles:
                built = service.submit_compile("wat", "wasm", {"m.wat": wat(70)}, {}).id
                assert (await wait_for(service, built)).status == "completed"
                assert service.build_process.pid == pid
        return pid

    # Ended at the stop, whether it was handed a compile (told to end) or not (killed).
    assert process_gone(asyncio.run(scenario()))


def test_a_graceful_stop_cancels_running_builds_and_keeps_queued_ones(
    projects: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_worker: None
) -> None:
    wrapper = install_wrapper(tmp_path, monkeypatch)
    wrapper.hang()

    async def first_life() -> tuple[str, str, int]:
        async with running(projects, grace=0.2) as service:
            busy = service.submit_compile("wat", "wasm", {"m.wat": wat(60)}, {}).id
            pid = await asyncio.to_thread(wrapper.child_pid)
            waiting = service.submit_build("wat", "wasm", "demo", {}).id
        return busy, waiting, pid

    busy, waiting, pid = asyncio.run(first_life())
    assert process_gone(pid)
    wrapper.release()

    async def second_life() -> None:
        async with running(projects) as service:
            stopped = service.get(busy)
            assert stopped is not None
            assert (stopped.status, stopped.error) == ("cancelled", SHUTDOWN_REASON)
            resumed = await wait_for(service, waiting)
            assert resumed.status == "completed" and resumed.project == "demo"

    asyncio.run(second_life())


_CRASHING_SERVER = """
import asyncio, json, sys, time
from pathlib import Path
from pf.config import load_settings
from pf.engine.service import BuildService

async def main():
    service = BuildService(load_settings(), None, Path(sys.argv[1]))
    await service.start()
    done = service.submit_compile("wat", "wasm", {"ok.wat": sys.argv[2]}, {}).id
    while service.get(done).status != "completed":
        await asyncio.sleep(0.01)
    Path(sys.argv[5]).touch()  # from now on the wrapper hangs
    busy = service.submit_compile("wat", "wasm", {"m.wat": sys.argv[3]}, {}).id
    while not Path(sys.argv[6]).exists():  # the wrapper hangs in busy's compile
        await asyncio.sleep(0.01)
    while service.get(busy).status != "running":  # shown so once it ran a moment
        await asyncio.sleep(0.01)
    queued = service.submit_compile("wat", "wasm", {"q.wat": sys.argv[4]}, {}).id
    await asyncio.to_thread(service.recorder.flush)
    print(json.dumps([done, busy, queued]), flush=True)
    await asyncio.sleep(300)

asyncio.run(main())
"""


def test_after_a_crash_history_survives_running_builds_fail_and_queued_ones_run(
    projects: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_worker: None
) -> None:
    wrapper = install_wrapper(tmp_path, monkeypatch)
    argv = [sys.executable, "-c", _CRASHING_SERVER, str(projects), wat(70), wat(71), wat(72)]
    child = subprocess.Popen(
        [*argv, str(wrapper.flag), str(wrapper.pidfile)],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        assert child.stdout is not None
        done, busy, queued = json.loads(child.stdout.readline())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        wrapper.release()  # the orphaned compiler lives on in its own session
    before = Store.for_settings(load_settings())
    before.open()
    logs_before = before.logs(done)
    before.close()
    assert logs_before

    async def after() -> None:
        async with running(projects) as service:
            record = service.get(done)
            assert record is not None and record.status == "completed"
            assert [e["message"] for e in service.logs(done) or []] == [
                line.text for line in logs_before
            ]
            interrupted = service.get(busy)
            assert interrupted is not None
            assert (interrupted.status, interrupted.error) == (
                "failed",
                "interrupted by restart",
            )
            resumed = await wait_for(service, queued)
            assert resumed.status == "completed", (resumed, service.logs(queued))
            assert resumed.artifacts[0]["name"] == "q.wasm"

    asyncio.run(after())


def test_a_writer_held_up_by_a_locked_database_bounds_what_is_accepted(
    projects: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PF_MAX_QUEUE", "2")  # the writer may fall 16 items behind

    async def scenario() -> None:
        async with running(projects) as service:
            first = service.submit_compile("wat", "wasm", {"m.wat": wat(1)}, {}).id
            assert (await wait_for(service, first)).status == "completed"
            database = Path(make_url(service.store.url).database or "")
            # Another process's exclusive transaction: the writer waits on it, as on a
            # database that is locked or too slow, while cache hits keep arriving.
            locker = sqlite3.connect(database, isolation_level=None)
            locker.execute("BEGIN EXCLUSIVE")
            try:
                with pytest.raises(WriterBehind) as behind:
                    for _ in range(200):
                        service.submit_compile("wat", "wasm", {"m.wat": wat(1)}, {})
                        await asyncio.sleep(0.01)
                assert behind.value.http_status == 503 and behind.value.retry_after == 1
                assert 16 <= service.recorder.backlog < 200
                assert "records wait for the database" in behind.value.message
            finally:
                locker.execute("ROLLBACK")
                locker.close()
            assert await asyncio.to_thread(service.recorder.flush)
            again = service.submit_compile("wat", "wasm", {"m.wat": wat(1)}, {}).id
            assert (await wait_for(service, again)).cached is True

    asyncio.run(scenario())
