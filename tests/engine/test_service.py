"""The build service with real compilers and a real SQLite file: submissions, events, logs.

Lifecycle (queue bound, cancellation, restart, retention) is in test_service_lifecycle.py.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from pathlib import Path

import pytest

from pf.errors import (
    InvalidOption,
    NotFound,
    RequestError,
    ServiceUnavailable,
    UnsupportedLanguage,
    UnsupportedTarget,
)
from pf.store import Store
from tests.engine.service_harness import (
    events_until_end,
    install_wrapper,
    make_projects,
    running,
    status_of,
    wait_for,
    wat,
)


@pytest.fixture
def projects(tmp_path: Path) -> Path:
    return make_projects(tmp_path)


def test_a_project_build_completes_with_its_record_artifact_and_module(projects: Path) -> None:
    async def scenario() -> None:
        async with running(projects) as service:
            queued = service.submit_build("wat", "wasm", None, {"opt_level": "s"})
            assert queued.status == "queued" and queued.project == "demo"
            assert re.fullmatch(r"wat-wasm-\d{13}-[0-9a-f]{10}", queued.id)
            record = await wait_for(service, queued.id)
            assert record.status == "completed", record
            assert record.progress == 100 and record.cached is False
            assert record.started_at is not None and record.ended_at is not None
            assert record.started_at <= record.ended_at
            assert record.duration_ms is not None and record.duration_ms >= 0
            assert record.error is None
            assert set(record.timings) == {"queued", "compile", "store"}
            assert record.options["opt_level"] == "s"
            (artifact,) = record.artifacts
            assert artifact["name"] == "add.wasm" and len(artifact["digest"]) == 64
            found = service.artifact(queued.id, "add.wasm")
            assert found is not None and found.path.read_bytes()[:4] == b"\0asm"
            assert found.size == artifact["size"]
            assert service.artifact(queued.id, "nope.wasm") is None
            assert service.module_file("wasm/wat/add.wasm") == found
            assert service.module_file("wat/add.wasm") is None
            (module,) = service.modules()
            assert module["language"] == "wat"
            assert module["files"][0]["name"] == "add.wasm"
            assert service.projects() == [
                {"name": "demo", "path": str(projects / "demo"), "languages": ["c", "wat"]}
            ]

    asyncio.run(scenario())


def test_build_all_builds_every_language_of_the_project(projects: Path) -> None:
    async def scenario() -> None:
        async with running(projects) as service:
            records, _skipped = service.submit_all("wasm", "demo", {})
            assert [r.language for r in records] == ["c", "wat"]
            done = [await wait_for(service, r.id) for r in records]
            assert [r.status for r in done] == ["completed", "completed"]
            assert {m["language"] for m in service.modules()} == {"c", "wat"}

    asyncio.run(scenario())


def test_identical_builds_hit_the_cache_without_running_the_compiler(
    projects: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrapper = install_wrapper(tmp_path, monkeypatch)

    async def scenario() -> None:
        async with running(projects) as service:
            first = await wait_for(service, service.submit_build("wat", "wasm", "demo", {}).id)
            starts = wrapper.start_count()
            second = await wait_for(service, service.submit_build("wat", "wasm", "demo", {}).id)
            assert (first.cached, second.cached) == (False, True)
            assert wrapper.start_count() == starts
            assert second.artifacts == first.artifacts
            logs = service.logs(second.id)
            assert logs is not None and logs[0]["message"].startswith("cache hit")
            metrics = service.metrics()
            assert (metrics["cacheHits"], metrics["cacheMisses"]) == (1, 1)

    asyncio.run(scenario())


def test_200_concurrent_submissions_get_200_unique_ids(projects: Path) -> None:
    async def scenario() -> None:
        async with running(projects) as service:
            ids: list[str] = []
            lock = threading.Lock()
            barrier = threading.Barrier(8)

            def submit() -> None:
                barrier.wait()
                for _ in range(25):
                    record = service.submit_compile("wat", "wasm", {"m.wat": wat(1)}, {})
                    with lock:
                        ids.append(record.id)

            threads = [threading.Thread(target=submit) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert len(ids) == len(set(ids)) == 200
            assert all(i.startswith("wat-wasm-") for i in ids)
            for build_id in ids:
                assert (await wait_for(service, build_id)).status == "completed"
            assert len(service.list_builds(limit=500)) == 200

    asyncio.run(scenario())


def test_events_of_one_build_come_in_order(
    projects: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_wrapper(tmp_path, monkeypatch, lines=("assembling", "almost there"))

    async def scenario() -> None:
        async with running(projects) as service:
            sub = service.subscribe()
            build_id = service.submit_compile("wat", "wasm", {"m.wat": wat(2)}, {}).id
            seen = await events_until_end(sub, build_id)
            kinds = [e["type"] for e in seen]
            assert kinds[0] == "build_started" and kinds[-1] == "build_completed"
            first_log = kinds.index("build_log")
            assert "build_progress" in kinds[1:first_log]
            lines = [line for e in seen if e["type"] == "build_log" for line in e["lines"]]
            assert [line["text"] for line in lines if line["stream"] == "stdout"] == [
                "assembling",
                "almost there",
            ]
            progress = [e["progress"] for e in seen if e["type"] == "build_progress"]
            assert progress == [10]  # one phase, the assembler's; then the end
            assert seen[-1] == {
                "type": "build_completed",
                "buildId": build_id,
                "status": "completed",
                "progress": 100,
                "cached": False,
            }
            stored = [(e["stream"], e["message"]) for e in service.logs(build_id) or []]
            assert [(line["stream"], line["text"]) for line in lines] == stored

    asyncio.run(scenario())


def test_log_lines_arrive_while_the_compiler_still_runs(
    projects: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_wrapper(tmp_path, monkeypatch, lines=("step one", "step two"), pause=0.6)

    async def scenario() -> None:
        async with running(projects) as service:
            sub = service.subscribe()
            build_id = service.submit_compile("wat", "wasm", {"m.wat": wat(3)}, {}).id
            arrivals: dict[str, float] = {}
            status_at_first_line = None
            async with asyncio.timeout(30):
                while "end" not in arrivals:
                    event = await sub.get()
                    if event.get("buildId") != build_id:
                        continue
                    if event["type"] == "build_log":
                        for line in event["lines"]:
                            arrivals.setdefault(line["text"], time.monotonic())
                        if status_at_first_line is None:
                            status_at_first_line = status_of(service, build_id)
                    if event["type"] == "build_completed":
                        arrivals["end"] = time.monotonic()
            assert status_at_first_line == "running"
            assert arrivals["step two"] - arrivals["step one"] > 0.4
            assert arrivals["end"] - arrivals["step one"] > 0.8

    asyncio.run(scenario())


def test_a_compile_error_fails_the_build_with_diagnostics(projects: Path) -> None:
    async def scenario() -> None:
        async with running(projects) as service:
            sub = service.subscribe()
            broken = "int add(int a, int b) { return a + }\n"
            build_id = service.submit_compile("c", "wasm", {"add.c": broken}, {}).id
            seen = await events_until_end(sub, build_id)
            record = await wait_for(service, build_id)
            assert record.status == "failed" and "exited with code" in record.error
            assert seen[-1] == {
                "type": "build_failed",
                "buildId": build_id,
                "status": "failed",
                "error": record.error,
            }
            diagnostic = record.diagnostics[0]
            assert (diagnostic["file"], diagnostic["line"], diagnostic["severity"]) == (
                "add.c",
                1,
                "error",
            )
            logs = service.logs(build_id) or []
            assert any(e["stderr"] and "error" in e["stderr"] for e in logs)
            assert logs[-2]["level"] == "error" and logs[-2]["message"].startswith("error:")

    asyncio.run(scenario())


def test_bad_submissions_are_refused_before_anything_is_queued(projects: Path) -> None:
    async def scenario() -> None:
        async with running(projects) as service:
            with pytest.raises(UnsupportedLanguage, match="Unsupported language: cobol"):
                service.submit_build("cobol", "wasm", None, {})
            with pytest.raises(UnsupportedTarget, match="Unsupported target: exe"):
                service.submit_build("c", "exe", None, {})
            with pytest.raises(UnsupportedTarget):
                service.submit_all("exe", None, {})
            with pytest.raises(InvalidOption, match=r"'opt_level'.*Allowed: 0, 1, 2, 3, s, z"):
                service.submit_build("c", "wasm", None, {"opt_level": "9; rm -rf /"})
            with pytest.raises(InvalidOption, match="unknown option"):
                service.submit_compile("wat", "wasm", {"m.wat": wat(1)}, {"cflags": "-x"})
            with pytest.raises(InvalidOption, match="parallel"):  # the driver's own check
                service.submit_build("wat", "wasm", None, {"parallel": True})
            with pytest.raises(NotFound, match="Project not found: nope") as missing:
                service.submit_build("c", "wasm", "nope", {})
            assert missing.value.http_status == 404
            with pytest.raises(RequestError, match="no rust sources"):
                service.submit_build("rust", "wasm", "demo", {})
            with pytest.raises(RequestError, match="Invalid source file name"):
                service.submit_compile("wat", "wasm", {"../x.wat": wat(1)}, {})
            with pytest.raises(RequestError, match="at least one source"):
                service.submit_compile("wat", "wasm", {}, {})
            assert service.list_builds() == [] and service.queue_depth == 0

    asyncio.run(scenario())


def test_a_service_that_is_not_started_refuses_work(projects: Path, tmp_path: Path) -> None:
    from pf.config import load_settings
    from pf.engine.service import BuildService

    service = BuildService(load_settings(), Store(f"sqlite:///{tmp_path / 'x.db'}"), projects)
    with pytest.raises(ServiceUnavailable, match="not running") as refused:
        service.submit_build("wat", "wasm", None, {})
    assert refused.value.http_status == 503 and refused.value.retry_after > 0
    assert service.get("wat-wasm-1-x") is None


def test_list_builds_filters_and_reads_past_memory(
    projects: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PF_MAX_BUILDS", "2")

    async def scenario() -> None:
        async with running(projects) as service:
            ids = []
            for n in range(4):
                record = service.submit_compile("wat", "wasm", {"m.wat": wat(n)}, {})
                ids.append(record.id)
                await wait_for(service, record.id)
            failed = service.submit_compile("c", "wasm", {"x.c": "nope"}, {}).id
            await wait_for(service, failed)
            assert len(service.recent) == 2
            newest_first = [r.id for r in service.list_builds()]
            assert newest_first == [failed, *reversed(ids)]
            assert [r.id for r in service.list_builds(limit=2)] == [failed, ids[3]]
            assert [r.id for r in service.list_builds(status="failed")] == [failed]
            assert [r.id for r in service.list_builds(language="wat")][-1] == ids[0]
            old = service.get(ids[0])  # evicted from memory: read from the store
            assert old is not None and old.status == "completed" and old.artifacts
            assert service.artifact(ids[0], "m.wasm") is not None

    asyncio.run(scenario())
