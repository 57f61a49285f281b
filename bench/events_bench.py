"""Events through Redis beside the in-process bus: delivery latency and log-line throughput.

Starts a private redis-server (tests/redisd.py) and, in this one process, two buses on
it that stand for two pf processes (A publishes, B subscribes; both share this
process's GIL, so the cross-bus figures include that contention). Prints:

- local delivery, publish (from a thread, as the writer thread does) -> a subscriber of
  the same bus, p50/p99: the in-process EventBus and a RedisBus side by side (the
  RedisBus must cost its own process's clients nothing);
- A -> B through Redis, p50/p99, at 200 events/s;
- 20,000 log lines in build_log events of 100 lines, A -> B: lines per second.

Run: .venv/bin/python bench/events_bench.py (about 15 s).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.redisd import RedisServer  # noqa: E402

from pf.config import Settings  # noqa: E402
from pf.engine import events  # noqa: E402
from pf.engine.events import Bus, EventBus, Subscription  # noqa: E402
from pf.engine.redisbus import RedisBus  # noqa: E402

EVENTS = 2000
RATE = 200.0
LINES = 20_000
PER_EVENT = 100


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ms(samples: list[float]) -> str:
    p50, p99 = statistics.median(samples) * 1000, _percentile(samples, 0.99) * 1000
    return f"p50 {p50:7.2f} ms   p99 {p99:7.2f} ms"


def _paced(bus: Bus, count: int, rate: float) -> threading.Thread:
    """Publish ``count`` progress events from a thread, ``rate`` per second, each
    stamped with its publish time."""

    def run() -> None:
        start = time.perf_counter()
        for i in range(count):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            event = events.build_progress(f"bench-{i % 10}", "running", 50, None, None)
            event["eta"] = time.perf_counter()
            bus.publish(event)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


async def _latencies(sub: Subscription, count: int) -> list[float]:
    samples = []
    async with asyncio.timeout(60):
        while len(samples) < count:
            event = await sub.get()
            if event["type"] == "build_progress":
                samples.append(time.perf_counter() - event["eta"])
    return samples


async def _local(bus: Bus) -> list[float]:
    bus.attach(asyncio.get_running_loop())
    sub = bus.subscribe()
    thread = _paced(bus, EVENTS, RATE * 5)
    samples = await _latencies(sub, EVENTS)
    thread.join()
    return samples


async def _across(a: RedisBus, b: RedisBus) -> list[float]:
    loop = asyncio.get_running_loop()
    a.attach(loop)
    b.attach(loop)
    sub = b.subscribe()
    async with asyncio.timeout(10):
        while b._events_id is None:
            await asyncio.sleep(0.01)
    thread = _paced(a, EVENTS // 2, RATE)
    samples = await _latencies(sub, EVENTS // 2)
    thread.join()
    return samples


async def _throughput(a: RedisBus, b: RedisBus) -> float:
    sub = b.subscribe()
    build = "bench-lines"
    a.publish(events.build_started(build, "c", "wasm", None))
    start = time.perf_counter()
    for first in range(0, LINES, PER_EVENT):
        lines: list[dict[str, Any]] = [
            {"stream": "stdout", "text": f"line {seq} of a busy compiler", "seq": seq}
            for seq in range(first, first + PER_EVENT)
        ]
        a.publish(events.build_log(build, lines))
    a.publish(events.build_completed(build, False))
    seen = 0
    async with asyncio.timeout(120):
        while True:
            event = await sub.get()
            if event.get("buildId") != build:
                continue
            if event["type"] == "build_log":
                seen += len(event["lines"])
            if event["type"] == "build_completed":
                break
    assert seen == LINES, seen
    return LINES / (time.perf_counter() - start)


def main() -> None:
    server = RedisServer()
    server.start()
    try:
        settings = Settings(redis_url=server.url())
        embedded = asyncio.run(_local(EventBus(settings.ws_send_queue)))
        alone = RedisBus(settings)
        try:
            shared = asyncio.run(_local(alone))
        finally:
            alone.close()

        async def two() -> tuple[list[float], float]:
            a, b = RedisBus(settings), RedisBus(settings)
            try:
                return await _across(a, b), await _throughput(a, b)
            finally:
                a.close()
                b.close()

        across, rate = asyncio.run(two())
    finally:
        server.destroy()
    print(f"local delivery, in-process EventBus   {_ms(embedded)}")
    print(f"local delivery, RedisBus              {_ms(shared)}")
    print(f"A -> B through Redis at {RATE:.0f}/s       {_ms(across)}")
    print(f"log lines A -> B through Redis        {rate:9,.0f} lines/s")


if __name__ == "__main__":
    main()
