"""The Recorder on a real database: a row the store refuses (it would take its build's
record back) is not announced, so a build taken over by another worker ends once; and
the lines of a run that a later run superseded are neither stored nor announced."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import event

from pf.engine import events
from pf.engine.events import EventBus
from pf.engine.recorder import Recorder
from pf.store import BuildRecord, Store
from pf.store.logs import LogLine
from tests.statements import inserts_into


@contextlib.asynccontextmanager
async def _writing(url: str, **options: Any) -> AsyncIterator[tuple[Store, EventBus, Recorder]]:
    """A store, an event bus on the running loop and a Recorder writing to them; the
    Recorder stopped and the store closed after."""
    store = Store(url)
    store.open()
    bus = EventBus(maxsize=100)
    bus.attach(asyncio.get_running_loop())
    recorder = Recorder(store, bus, **options)
    recorder.start()
    try:
        yield store, bus, recorder
    finally:
        await asyncio.to_thread(recorder.stop)
        store.close()


def _published(sub: Any) -> list[events.Event]:
    """What the subscription holds now."""
    got = []
    while (event := sub.get_nowait()) is not None:
        got.append(event)
    return got


def _row(status: str, attempt: int) -> BuildRecord:
    return BuildRecord(
        id="b", kind="compile", language="c", target="wasm", status=status,
        created_at=1.0, attempt=attempt,
    )  # fmt: skip


def test_events_of_a_refused_row_are_not_published(tmp_path: Path) -> None:
    async def scenario() -> list[events.Event]:
        async with _writing(f"sqlite:///{tmp_path / 'pf.db'}") as (store, bus, recorder):
            sub = bus.subscribe()
            # Each run is another process's Recorder: its batches hold its rows only.
            store.write([_row("running", 1)])  # another worker took the build up again
            # The first run, still going, ends: refused, unannounced.
            recorder.record(_row("completed", 0), events.build_completed("b", False))
            assert await asyncio.to_thread(recorder.flush)
            recorder.record(_row("completed", 1), events.build_completed("b", True))
            assert await asyncio.to_thread(recorder.flush)
        return _published(sub)

    published = asyncio.run(scenario())
    assert published == [events.build_completed("b", True)]


def _line(seq: int, attempt: int) -> LogLine:
    return LogLine("b", seq, float(seq), "stdout", "info", f"run {attempt} line {seq}", attempt)


def test_lines_of_a_superseded_run_are_neither_stored_nor_announced(database_url: str) -> None:
    async def scenario() -> list[events.Event]:
        async with _writing(database_url) as (store, bus, recorder):
            sub = bus.subscribe()
            assert store.write([_row("running", 0)], [_line(0, 0), _line(1, 0)]) == {"b"}
            store.write([_row("queued", 1)])  # another worker takes the build up again
            # The first run's worker was only slow: what it prints now is refused.
            recorder.line(_line(2, 0))
            assert await asyncio.to_thread(recorder.flush)
            recorder.line(_line(2, 1))
            assert await asyncio.to_thread(recorder.flush)
            stored = store.logs("b")
        assert [line.text for line in stored] == [
            "run 0 line 0",
            "run 0 line 1",
            "run 1 line 2",
        ]
        return _published(sub)

    published = asyncio.run(scenario())
    assert published == [
        events.build_log("b", [{"stream": "stdout", "text": "run 1 line 2", "seq": 2}])
    ]


def test_settled_returns_once_the_row_is_in_the_store(tmp_path: Path) -> None:
    """A submission is answered after settled(): by then its record is in the database,
    though the writer batches (here a batch without an event would wait 60 s)."""

    async def scenario() -> tuple[BuildRecord | None, BuildRecord | None]:
        url = f"sqlite:///{tmp_path / 'pf.db'}"
        async with _writing(url, interval=60.0, progress_interval=60.0) as (store, _bus, recorder):
            recorder.record(_row("queued", 0))
            before = store.get("b")
            await asyncio.wait_for(recorder.settled(), timeout=10)
            return before, store.get("b")

    before, after = asyncio.run(scenario())
    assert before is None
    assert after is not None and after.status == "queued"


def test_settled_does_not_wait_for_a_stopped_writer(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = Store(f"sqlite:///{tmp_path / 'pf.db'}")
        store.open()
        recorder = Recorder(store, EventBus(maxsize=100))
        recorder.start()
        await asyncio.to_thread(recorder.stop)
        try:
            recorder.record(_row("queued", 0))
            await asyncio.wait_for(recorder.settled(), timeout=10)
        finally:
            store.close()

    asyncio.run(scenario())


def _build(build_id: str, status: str) -> BuildRecord:
    return BuildRecord(
        id=build_id, kind="compile", language="wat", target="wasm", status=status,
        created_at=1.0, started_at=2.0,
    )  # fmt: skip


def test_a_running_build_waits_out_its_neighbours_end_and_is_written_once(
    tmp_path: Path,
) -> None:
    """With builds ending in turn, one's end cuts a batch while the next has just started:
    the started build's row and progress wait for the next batch (here its own end), in
    order, and its running row is never written; a flush and a waiting submission keep
    nothing back."""

    async def scenario() -> None:
        async with _writing(
            f"sqlite:///{tmp_path / 'pf.db'}", interval=60.0, progress_interval=60.0
        ) as running:
            await _ends_in_turn(*running)

    asyncio.run(scenario())


async def _ends_in_turn(store: Store, bus: EventBus, recorder: Recorder) -> None:
    sub = bus.subscribe()
    progress = events.build_progress("next", "running", 10, "compile", None)
    with inserts_into(store, "builds") as seen:
        recorder.record(_build("next", "running"))
        recorder.record(_build("next", "running"), progress, urgent=False)
        recorder.line(LogLine("next", 0, 3.0, "stdout", "info", "compiling"))
        recorder.record(_build("first", "completed"), events.build_completed("first", False))
        assert await asyncio.wait_for(sub.get(), 10) == events.build_completed("first", False)
        assert store.get("first") is not None and store.get("next") is None
        recorder.record(_build("next", "completed"), events.build_completed("next", False))
        line = {"stream": "stdout", "text": "compiling", "seq": 0}
        for expected in (progress, events.build_log("next", [line])):
            assert await asyncio.wait_for(sub.get(), 10) == expected
        assert await asyncio.wait_for(sub.get(), 10) == events.build_completed("next", False)
        assert [entry.text for entry in store.logs("next")] == ["compiling"]
        assert [f"{p[0]}:{p[5]}" for _, p in seen] == ["first:completed", "next:completed"]

        recorder.record(_build("third", "running"))
        recorder.record(_build("fourth", "completed"), events.build_completed("fourth", False))
        assert await asyncio.to_thread(recorder.flush)
        running = store.get("third")
        assert running is not None and running.status == "running"

        recorder.record(_build("fifth", "running"))
        recorder.record(
            _build("sixth", "queued"), events.build_started("sixth", "wat", "wasm", None)
        )
        await asyncio.wait_for(recorder.settled(), timeout=10)
        assert store.get("fifth") is not None and store.get("sixth") is not None


def test_a_due_line_takes_its_builds_earlier_progress_along(tmp_path: Path) -> None:
    """A running build's progress may wait a minute here, its lines 10 ms: the line,
    once due, goes out with the progress queued before it, in order."""

    async def scenario() -> list[events.Event]:
        url = f"sqlite:///{tmp_path / 'pf.db'}"
        async with _writing(url, interval=0.01, progress_interval=60.0) as running:
            _store, bus, recorder = running
            sub = bus.subscribe()
            progress = events.build_progress("b", "running", 10, "compile", None)
            recorder.record(_build("b", "running"), progress, urgent=False)
            recorder.line(LogLine("b", 0, 3.0, "stdout", "info", "compiling"))
            return [await asyncio.wait_for(sub.get(), 10) for _ in range(2)]

    line = {"stream": "stdout", "text": "compiling", "seq": 0}
    assert asyncio.run(scenario()) == [
        events.build_progress("b", "running", 10, "compile", None),
        events.build_log("b", [line]),
    ]


def test_a_full_batch_of_lines_is_written_though_nothing_is_due(tmp_path: Path) -> None:
    """``max_lines`` lines of a running build are written at once, not kept back with
    the build until its items are due (the writer went round without writing meanwhile)."""

    async def scenario() -> tuple[list[str], list[events.Event]]:
        url = f"sqlite:///{tmp_path / 'pf.db'}"
        options = {"interval": 60.0, "progress_interval": 60.0, "max_lines": 3}
        async with _writing(url, **options) as (store, bus, recorder):
            sub = bus.subscribe()
            recorder.record(_build("b", "running"))
            for seq in range(3):
                recorder.line(LogLine("b", seq, 3.0, "stdout", "info", f"line {seq}"))
            published = [await asyncio.wait_for(sub.get(), 10)]
            return [line.text for line in store.logs("b")], published

    texts, published = asyncio.run(scenario())
    assert texts == ["line 0", "line 1", "line 2"]
    lines = [{"stream": "stdout", "text": f"line {seq}", "seq": seq} for seq in range(3)]
    assert published == [events.build_log("b", lines)]


def test_a_batch_comes_a_gather_after_the_last_and_an_idle_writer_writes_at_once(
    tmp_path: Path,
) -> None:
    """Submissions that come while the writer waits out its gather share one
    transaction; the first after a quiet spell waits for nothing."""

    async def scenario() -> tuple[float, float, int]:
        url = f"sqlite:///{tmp_path / 'pf.db'}"
        async with _writing(url, gather=1.0) as (store, _bus, recorder):
            commits: list[float] = []

            def committed(_conn: object) -> None:
                commits.append(time.monotonic())

            event.listen(store.db.engine, "commit", committed)
            try:
                started = time.monotonic()
                recorder.record(_build("a", "queued"), events.build_started("a", "c", "wasm", None))
                await asyncio.wait_for(recorder.settled(), 10)
                first = time.monotonic() - started
                for build_id in ("b", "c"):
                    recorder.record(
                        _build(build_id, "queued"),
                        events.build_started(build_id, "c", "wasm", None),
                    )
                await asyncio.wait_for(recorder.settled(), 10)
                second = time.monotonic() - started
                transactions = len(commits)
                assert {store.get(i) is not None for i in "abc"} == {True}
                return first, second, transactions
            finally:
                event.remove(store.db.engine, "commit", committed)

    first, second, transactions = asyncio.run(scenario())
    assert first < 0.9  # idle: written at once, not a gather later
    assert second >= 1.0  # a gather after the first batch, with both submissions
    assert transactions == 2
