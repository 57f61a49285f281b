"""The Redis Streams of shared events, against the tests' private Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis

from pf.engine import events
from pf.store.streams import (
    EVENTS,
    LOG_TTL,
    StreamReader,
    StreamsUnavailable,
    StreamWriter,
    log_key,
)
from tests.redisd import RedisServer


def _lines(first: int, count: int) -> list[dict[str, Any]]:
    return [
        {"stream": "stdout", "text": f"line {i}", "seq": i} for i in range(first, first + count)
    ]


def test_events_and_each_builds_lines_go_to_their_own_streams(redis_url: str) -> None:
    writer = StreamWriter(redis_url, events_max=100, log_max=100)
    started = events.build_started("b1", "c", "wasm", None)
    first = events.build_log("b1", _lines(0, 3))
    second = events.build_log("b1", _lines(3, 2))
    done = events.build_completed("b1", False)
    assert writer.write([started, first, second, done], origin="me") == 0

    async def read() -> None:
        reader = StreamReader(redis_url)
        try:
            found = dict(await reader.read({EVENTS: "0-0", log_key("b1"): "0-0"}, 10, 0.1))
            assert [e.event for e in found[EVENTS]] == [started, done]
            assert {e.origin for e in found[EVENTS]} == {"me"}
            # A log entry's id is the seq of its last line: readers resume by it.
            assert [(e.id, e.event) for e in found[log_key("b1")]] == [
                ("2-1", first),
                ("4-1", second),
            ]
            after = await reader.log_after("b1", "2-1", 10)
            assert [e.event for e in after] == [second]
            assert await reader.last_event_id() == found[EVENTS][-1].id
            # Nothing new: the read waits out its block and finds nothing.
            newest = found[EVENTS][-1].id
            assert await reader.read({EVENTS: newest, log_key("b1"): "4-1"}, 10, 0.05) == []
        finally:
            await reader.close()

    asyncio.run(read())
    direct = redis.Redis.from_url(redis_url)
    # The build ended: its log stream goes away after a while (its lines are in the store).
    assert 0 < direct.ttl(log_key("b1")) <= LOG_TTL
    assert direct.ttl(EVENTS) == -1


def test_a_log_entry_written_again_is_refused_not_repeated(redis_url: str) -> None:
    writer = StreamWriter(redis_url, events_max=100, log_max=100)
    entry = events.build_log("b2", _lines(0, 2))
    assert writer.write([entry], origin="me") == 0
    # A retry after a broken connection sends the batch again.
    assert writer.write([entry, events.build_log("b2", _lines(2, 1))], origin="me") == 1
    direct = redis.Redis.from_url(redis_url, decode_responses=True)
    assert [entry_id for entry_id, _ in direct.xrange(log_key("b2"))] == ["1-1", "2-1"]


def test_streams_are_trimmed_to_their_caps(redis_url: str) -> None:
    writer = StreamWriter(redis_url, events_max=10, log_max=10)
    progress = [events.build_progress("b3", "running", i % 100, None, None) for i in range(600)]
    writer.write(progress, origin="me")
    writer.write([events.build_log("b3", _lines(i, 1)) for i in range(600)], origin="me")
    direct = redis.Redis.from_url(redis_url)
    # MAXLEN ~ trims whole nodes of 100 entries: within a node of the cap.
    assert direct.xlen(EVENTS) <= 10 + 100
    assert direct.xlen(log_key("b3")) <= 10 + 100


def test_a_stopped_redis_is_unavailable_to_writers_and_readers(
    redis_server: RedisServer, redis_url: str
) -> None:
    writer = StreamWriter(redis_url, events_max=10, log_max=10)
    assert writer.ping()
    redis_server.stop()
    try:
        assert not writer.ping()
        with pytest.raises(StreamsUnavailable, match="does not answer"):
            writer.write([events.build_cancelled("b4")], origin="me")

        async def read() -> None:
            reader = StreamReader(redis_url)
            try:
                with pytest.raises(StreamsUnavailable):
                    await reader.read({EVENTS: "0-0"}, 10, 0.1)
            finally:
                await reader.close()

        asyncio.run(read())
    finally:
        redis_server.start()
    # The same writer works again once Redis is back.
    writer.write([events.build_cancelled("b4")], origin="me")
