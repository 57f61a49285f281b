"""What the rate limit costs a submission: this process's buckets beside Redis's.

Starts a private redis-server (tests/redisd.py) and takes tokens, one at a time as the
middleware does, from pf's per-process buckets (server/ratelimit.py) and from the shared
buckets in Redis (store/buckets.py, one Lua script a submission), over 1,000 clients with
a burst large enough that every take is allowed. Prints p50/p99 per take and takes per
second, side by side, then the same with Redis stopped (the middleware's fallback: one
failed try a second, the process's own bucket meanwhile).

Run: .venv/bin/python bench/ratelimit_bench.py (about 10 s).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.redisd import RedisServer  # noqa: E402

from pf.server.ratelimit import Buckets, RateLimit  # noqa: E402
from pf.store.buckets import SharedBuckets  # noqa: E402

TAKES = 20_000
CLIENTS = 1000
PER_MINUTE = 300
BURST = 1_000_000


def _figures(samples: list[float], elapsed: float) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p99 = ordered[int(len(ordered) * 0.99)]
    return statistics.median(ordered) * 1e6, p99 * 1e6, len(samples) / elapsed


async def _local() -> tuple[float, float, float]:
    buckets = Buckets(PER_MINUTE, BURST)
    samples = []
    started = time.perf_counter()
    for i in range(TAKES):
        before = time.perf_counter()
        buckets.take(f"addr:10.0.{i % CLIENTS // 256}.{i % 256}")
        samples.append(time.perf_counter() - before)
    return _figures(samples, time.perf_counter() - started)


async def _through(limit: RateLimit) -> tuple[float, float, float]:
    samples = []
    started = time.perf_counter()
    for i in range(TAKES):
        before = time.perf_counter()
        await limit._take(f"addr:10.0.{i % CLIENTS // 256}.{i % 256}")
        samples.append(time.perf_counter() - before)
    return _figures(samples, time.perf_counter() - started)


async def _app(scope: object, receive: object, send: object) -> None:
    return None


def main() -> None:
    server = RedisServer()
    server.start()
    try:
        url = f"redis://127.0.0.1:{server.port}/0"

        async def run() -> list[tuple[str, tuple[float, float, float]]]:
            shared = SharedBuckets(url, PER_MINUTE, BURST)
            limit = RateLimit(_app, PER_MINUTE, BURST, shared)
            try:
                rows = [("this process's buckets", await _local())]
                rows.append(("Redis (one Lua script)", await _through(limit)))
                server.stop()
                rows.append(("Redis stopped: fallback", await _through(limit)))
            finally:
                await shared.close()
            return rows

        rows = asyncio.run(run())
    finally:
        server.destroy()
    print(f"rate limit, one take per submission, {TAKES} takes over {CLIENTS} clients")
    print(f"{'buckets':<26}{'p50 µs':>10}{'p99 µs':>10}{'takes/s':>12}")
    for name, (p50, p99, rate) in rows:
        print(f"{name:<26}{p50:>10.1f}{p99:>10.1f}{rate:>12,.0f}")


if __name__ == "__main__":
    main()
