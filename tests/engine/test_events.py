"""The in-process event bus: order, fan-out, publishing from threads, dropping slow subscribers."""

from __future__ import annotations

import asyncio
import threading

import pytest

from pf.engine import events
from pf.engine.events import EventBus, SubscriptionClosed


def _event(n: int) -> events.Event:
    return events.build_cancelled(f"b{n}")


async def _drain(sub: events.Subscription, count: int) -> list[events.Event]:
    return [await asyncio.wait_for(sub.get(), 5) for _ in range(count)]


def test_every_subscriber_gets_every_event_in_order() -> None:
    async def scenario() -> None:
        bus = EventBus(maxsize=100)
        bus.attach(asyncio.get_running_loop())
        first, second = bus.subscribe(), bus.subscribe()
        for n in range(10):
            bus.publish(_event(n))
        expected = [_event(n) for n in range(10)]
        assert await _drain(first, 10) == expected
        assert await _drain(second, 10) == expected
        assert first.get_nowait() is None

    asyncio.run(scenario())


def test_events_published_from_threads_keep_each_threads_order() -> None:
    async def scenario() -> None:
        bus = EventBus(maxsize=10_000)
        bus.attach(asyncio.get_running_loop())
        sub = bus.subscribe()

        def publish(thread: int) -> None:
            for n in range(500):
                bus.publish({"type": "t", "thread": thread, "n": n})

        threads = [threading.Thread(target=publish, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        got = await _drain(sub, 2000)
        for thread in threads:
            thread.join()
        for t in range(4):
            assert [e["n"] for e in got if e["thread"] == t] == list(range(500))

    asyncio.run(scenario())


def test_a_full_subscriber_is_dropped_without_blocking_publish_or_others() -> None:
    async def scenario() -> None:
        bus = EventBus(maxsize=5)
        bus.attach(asyncio.get_running_loop())
        slow, fast = bus.subscribe(), bus.subscribe()
        for n in range(4):
            bus.publish(_event(n))
        assert await _drain(fast, 4) == [_event(n) for n in range(4)]
        for n in range(4, 8):
            bus.publish(_event(n))  # slow now holds 8 > 5: dropped
        assert await _drain(fast, 4) == [_event(n) for n in range(4, 8)]
        assert slow.overflowed and slow.closed
        assert bus.subscribers == 1 and bus.dropped == 1
        with pytest.raises(SubscriptionClosed, match="overflowed"):
            await asyncio.wait_for(slow.get(), 5)
        bus.publish(_event(9))
        assert await _drain(fast, 1) == [_event(9)]

    asyncio.run(scenario())


def test_closing_the_bus_ends_every_iteration() -> None:
    async def scenario() -> None:
        bus = EventBus(maxsize=10)
        bus.attach(asyncio.get_running_loop())
        sub = bus.subscribe()
        seen: list[events.Event] = []

        async def consume() -> None:
            async for event in sub:
                seen.append(event)

        task = asyncio.create_task(consume())
        bus.publish(_event(1))
        async with asyncio.timeout(5):
            while not seen:  # the event reached the iteration before the bus closes
                await asyncio.sleep(0)
        bus.close()
        await asyncio.wait_for(task, 5)
        assert seen == [_event(1)] and not sub.overflowed

    asyncio.run(scenario())


def test_a_closed_subscription_receives_nothing_more() -> None:
    async def scenario() -> None:
        bus = EventBus(maxsize=10)
        bus.attach(asyncio.get_running_loop())
        sub = bus.subscribe()
        witness = bus.subscribe()
        sub.close()
        bus.publish(_event(1))
        await witness.get()  # the event has been handed to every subscriber there was
        witness.close()
        assert sub.get_nowait() is None and bus.subscribers == 0
        with pytest.raises(SubscriptionClosed, match="closed"):
            await sub.get()

    asyncio.run(scenario())


def test_publishing_without_a_loop_is_a_no_op() -> None:
    EventBus(maxsize=1).publish(_event(1))


def test_event_shapes_match_api_md() -> None:
    assert events.build_started("b", "c", "wasm", "demo") == {
        "type": "build_started",
        "buildId": "b",
        "language": "c",
        "target": "wasm",
        "project": "demo",
    }
    assert events.build_progress("b", "running", 10, "compile", 1.5) == {
        "type": "build_progress",
        "buildId": "b",
        "status": "running",
        "progress": 10,
        "phase": "compile",
        "eta": 1.5,
    }
    assert events.build_log("b", [{"stream": "stdout", "text": "hi"}]) == {
        "type": "build_log",
        "buildId": "b",
        "lines": [{"stream": "stdout", "text": "hi"}],
    }
    assert events.build_completed("b", True) == {
        "type": "build_completed",
        "buildId": "b",
        "status": "completed",
        "progress": 100,
        "cached": True,
    }
    assert events.build_failed("b", "boom") == {
        "type": "build_failed",
        "buildId": "b",
        "status": "failed",
        "error": "boom",
    }
    assert events.build_cancelled("b") == {"type": "build_cancelled", "buildId": "b"}
