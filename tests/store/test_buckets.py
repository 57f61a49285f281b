"""Token buckets in a real Redis: one bucket per client however many callers draw from
it, refilled by Redis's clock, expiring once full, and a Redis that does not answer is
StreamsUnavailable (the rate limit then falls back to its own buckets)."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from pf.store.buckets import PREFIX, SharedBuckets
from pf.store.streams import StreamsUnavailable
from tests.pg import free_port


def test_callers_share_one_bucket_per_client(redis_url: str) -> None:
    async def scenario() -> tuple[list[float], list[float], float]:
        # Two clients of Redis, as two API processes hold: one burst between them.
        first = SharedBuckets(redis_url, per_minute=1, burst=3)
        second = SharedBuckets(redis_url, per_minute=1, burst=3)
        try:
            waits = [await bucket.take("alice") for bucket in (first, second, first, second)]
            concurrent = await asyncio.gather(*(first.take("bob") for _ in range(10)))
            other = await second.take("carol")
        finally:
            await first.close()
            await second.close()
        return waits, list(concurrent), other

    waits, concurrent, other = asyncio.run(scenario())
    assert waits[:3] == [0, 0, 0]
    # One token a minute: the fourth waits for most of a minute.
    assert 55 < waits[3] <= 60
    assert sorted(w == 0 for w in concurrent) == [False] * 7 + [True] * 3
    assert other == 0


def test_a_bucket_refills_at_the_rate_and_expires_once_full(redis_url: str) -> None:
    async def scenario() -> tuple[float, float, float]:
        # 600 a minute is a token every 0.1 s; a burst of 2 is full again 0.2 s after.
        buckets = SharedBuckets(redis_url, per_minute=600, burst=2)
        try:
            assert [await buckets.take("dave") for _ in range(2)] == [0, 0]
            empty = await buckets.take("dave")
            deadline = time.monotonic() + 10
            while (again := await buckets.take("dave")) > 0:
                assert time.monotonic() < deadline
                await asyncio.sleep(again)
            return empty, again, buckets.rate
        finally:
            await buckets.close()

    empty, again, rate = asyncio.run(scenario())
    assert 0 < empty <= 1 / rate + 0.001 and again == 0
    ttl = redis.Redis.from_url(redis_url).pttl(PREFIX + "dave")
    # Past the time to refill (0.2 s) plus a second of slack, the key is gone.
    assert 0 < ttl <= 1200


def test_a_redis_that_does_not_answer_is_unavailable() -> None:
    async def scenario() -> None:
        buckets = SharedBuckets(f"redis://127.0.0.1:{free_port()}/0", per_minute=60, burst=5)
        try:
            with pytest.raises(StreamsUnavailable, match="does not answer"):
                await buckets.take("erin")
        finally:
            await buckets.close()

    asyncio.run(scenario())
