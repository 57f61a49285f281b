"""The Redis-backed event bus: two buses on one real Redis stand for two pf processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pf.config import Settings
from pf.engine import events
from pf.engine.bus import bus_for
from pf.engine.events import Event, EventBus, Subscription
from pf.engine.recorder import Recorder
from pf.engine.redisbus import RedisBus
from pf.store.history import Store
from pf.store.logs import LogLine
from pf.store.record import BuildRecord
from tests.redisd import RedisServer

DEADLINE = 30.0


def _settings(redis_url: str, **values: Any) -> Settings:
    return Settings(redis_url=redis_url, **values)


def _row(build_id: str, status: str, cached: bool = False) -> BuildRecord:
    return BuildRecord(
        id=build_id, kind="compile", language="c", target="wasm", status=status,
        created_at=time.time(), cached=cached,
    )  # fmt: skip


def _line(build_id: str, seq: int) -> LogLine:
    return LogLine(build_id, seq, time.time(), "stdout", "info", f"line {seq}")


async def _until_end(sub: Subscription, build_id: str) -> list[Event]:
    """This build's events up to its build_completed (failing after DEADLINE)."""
    seen: list[Event] = []
    async with asyncio.timeout(DEADLINE):
        while True:
            event = await sub.get()
            if event.get("buildId") != build_id:
                continue
            seen.append(event)
            if event["type"] == "build_completed":
                return seen


async def _until_line(sub: Subscription, build_id: str, seq: int) -> list[Event]:
    seen: list[Event] = []
    async with asyncio.timeout(DEADLINE):
        while True:
            event = await sub.get()
            if event.get("buildId") == build_id:
                seen.append(event)
                if event["type"] == "build_log" and event["lines"][-1]["seq"] >= seq:
                    return seen


def _seqs(seen: list[Event]) -> list[int]:
    return [line["seq"] for e in seen if e["type"] == "build_log" for line in e["lines"]]


@asynccontextmanager
async def _process(settings: Settings, store: Store) -> AsyncIterator[tuple[RedisBus, Recorder]]:
    """What one pf process has: its bus and its writer thread, on one store."""
    bus = bus_for(settings, store)
    assert isinstance(bus, RedisBus)
    bus.attach(asyncio.get_running_loop())
    recorder = Recorder(store, bus)
    recorder.start()
    try:
        yield bus, recorder
    finally:
        await asyncio.to_thread(recorder.stop)
        bus.close()
        bus.detach()


def _store(tmp_path: Path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'pf.db'}")
    store.open()
    return store


def test_without_redis_the_bus_is_the_in_process_one() -> None:
    assert type(bus_for(Settings())) is EventBus


def test_a_build_in_one_process_reaches_the_subscribers_of_another_in_order(
    redis_url: str, tmp_path: Path
) -> None:
    store = _store(tmp_path)

    async def scenario() -> None:
        settings = _settings(redis_url)
        async with _process(settings, store) as (a, recorder), _process(settings, store) as (b, _):
            on_a, on_b = a.subscribe(), b.subscribe()
            await _wait(lambda: b._events_id is not None)
            recorder.record(_row("x1", "running"), events.build_started("x1", "c", "wasm", None))
            for seq in range(300):
                recorder.line(_line("x1", seq))
                if seq % 50 == 0:
                    recorder.event(events.build_progress("x1", "running", seq // 5, None, None))
            recorder.record(_row("x1", "completed"), events.build_completed("x1", False))
            there = await _until_end(on_b, "x1")
            here = await _until_end(on_a, "x1")
            assert there[0]["type"] == "build_started"
            assert _seqs(there) == list(range(300))
            assert [e for e in there if e["type"] != "build_log"] == [
                e for e in here if e["type"] != "build_log"
            ]
            # What a process publishes reaches its own subscribers once, not again
            # through Redis.
            assert _seqs(here) == list(range(300))
            assert on_a.get_nowait() is None
            assert a.problem() is None and b.problem() is None

    asyncio.run(scenario())
    store.close()


def test_a_redis_restart_mid_build_loses_no_line_and_no_end(
    redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> None:
    store = _store(tmp_path)

    async def scenario() -> None:
        # A small outbox: what waits for Redis overflows, and those lines exist only in
        # the store.
        small = _settings(redis_url, event_stream_max=5)
        async with _process(small, store) as (a, recorder), _process(small, store) as (b, _):
            on_b = b.subscribe()
            await _wait(lambda: b._events_id is not None)
            recorder.record(_row("x2", "running"), events.build_started("x2", "c", "wasm", None))
            for seq in range(20):
                recorder.line(_line("x2", seq))
            assert recorder.flush()
            before = await _until_line(on_b, "x2", 19)

            redis_server.stop()
            for seq in range(20, 60):
                recorder.line(_line("x2", seq))
                assert recorder.flush()  # one event each: more than the outbox keeps
            await _wait(lambda: a.problem() is not None)
            assert a.lost > 0
            redis_server.start()

            for seq in range(60, 70):
                recorder.line(_line("x2", seq))
            recorder.record(_row("x2", "completed"), events.build_completed("x2", False))
            after = await _until_end(on_b, "x2")
            assert _seqs(before + after) == list(range(70))
            assert [e["type"] for e in after].count("build_completed") == 1
            await _wait(lambda: a.problem() is None and b.problem() is None)

    asyncio.run(scenario())
    store.close()


def test_a_build_that_ends_while_redis_is_down_ends_for_the_other_process_too(
    redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> None:
    store = _store(tmp_path)

    async def scenario() -> None:
        settings = _settings(redis_url)
        async with _process(settings, store) as (a, recorder):
            async with _process(settings, store) as (b, _):
                on_b = b.subscribe()
                await _wait(lambda: b._events_id is not None)
                recorder.record(
                    _row("x3", "running"), events.build_started("x3", "c", "wasm", None)
                )
                recorder.line(_line("x3", 0))
                before = await _until_line(on_b, "x3", 0)
                redis_server.stop()
                recorder.line(_line("x3", 1))
                recorder.record(_row("x3", "completed", True), events.build_completed("x3", True))
                assert recorder.flush()
                # a stops for good before Redis is back: its end event never reaches
                # Redis, and b learns of it from the store.
                await asyncio.to_thread(recorder.stop)
                a.close()
                redis_server.start()
                after = await _until_end(on_b, "x3")
                assert _seqs(before + after) == [0, 1]
                assert after[-1] == events.build_completed("x3", True)

    asyncio.run(scenario())
    store.close()


def test_redis_down_at_start_is_reported_and_nothing_piles_up(
    redis_server: RedisServer, redis_url: str
) -> None:
    redis_server.stop()

    async def scenario() -> None:
        bus = RedisBus(_settings(redis_url, event_stream_max=10))
        bus.attach(asyncio.get_running_loop())
        local = bus.subscribe()
        try:
            for i in range(100):
                bus.publish(events.build_progress(f"y{i}", "running", 1, None, None))
            reason = await asyncio.to_thread(bus.problem)
            assert reason is not None and "does not answer" in reason
            assert bus.lost >= 90
            # This process's subscribers still get its events.
            assert (await local.get())["buildId"] == "y0"
        finally:
            bus.close()

    try:
        asyncio.run(scenario())
    finally:
        redis_server.start()


async def _wait(done: Any) -> None:
    """Poll ``done()`` on the loop until true, for at most DEADLINE."""
    async with asyncio.timeout(DEADLINE):
        while not done():
            await asyncio.sleep(0.01)
