"""Build events and live log lines in Redis Streams, shared by every pf process.

Layout. Lifecycle and progress events go to one stream, ``pf:events`` (ids chosen by
Redis, trimmed with ``MAXLEN ~ PF_EVENT_STREAM_MAX``). A build's ``build_log`` events go
to a stream of its own, ``pf:log:<buildId>``, trimmed with ``MAXLEN ~
PF_MAX_LOGS_PER_BUILD`` and given an EXPIRE of LOG_TTL seconds once the build ends.
Each log entry's id is ``<seq>-1`` where seq is the build's sequence number of the
entry's last line (the one the store keeps): the id says which lines an entry holds, a
reader resumes by the last id it saw, and an entry written twice (a retry after a broken
connection) is refused by Redis instead of being read twice. Every entry holds the
publishing process's id (``o``) and the event as JSON (``e``).

The one boundary where redis-py's exceptions become pf's: a Redis that does not answer is
StreamsUnavailable, anything else it refuses is StreamsError. Imports errors only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.retry
from redis.backoff import NoBackoff

from pf.errors import StoreError

EVENTS = "pf:events"
LOG_PREFIX = "pf:log:"
ENDS = frozenset({"build_completed", "build_failed", "build_cancelled"})
LOG_TTL = 600  # seconds a build's log stream outlives the build (its lines stay in the store)
CONNECT_TIMEOUT = 2.0
COMMAND_TIMEOUT = 5.0
MAX_BLOCK = 5.0  # longest wait of one read

_HINT = "check that Redis runs and PF_REDIS_URL points at it"


class StreamsError(StoreError):
    """Redis refused a command of the event streams."""

    code = "event-bus-error"


class StreamsUnavailable(StreamsError):
    """Redis does not answer (stopped, unreachable, restarting): retry later."""

    code = "event-bus-unavailable"


class Entry:
    """One stream entry: its id, the process that published it, and the event (decoded
    when first asked for: a reader skips its own process's entries undecoded)."""

    __slots__ = ("_event", "id", "origin", "raw")

    def __init__(self, entry_id: str, origin: str, raw: str) -> None:
        self.id = entry_id
        self.origin = origin
        self.raw = raw
        self._event: dict[str, Any] | None = None

    @property
    def event(self) -> dict[str, Any]:
        if self._event is None:
            self._event = json.loads(self.raw)
        return self._event


def log_key(build_id: str) -> str:
    return LOG_PREFIX + build_id


def build_of(key: str) -> str | None:
    """The build id of a log stream's key; None for the events stream."""
    return key[len(LOG_PREFIX) :] if key.startswith(LOG_PREFIX) else None


def log_id(seq: int) -> str:
    """The id of a log entry whose last line has sequence number ``seq``."""
    return f"{seq}-1"


def where(url: str) -> str:
    """``host:port/db`` of a Redis URL, without its password, for messages."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or ''}"


def translate(url: str, error: redis.RedisError) -> StreamsError:
    """redis-py's ``error`` as pf's: StreamsUnavailable when Redis does not answer."""
    if isinstance(error, redis.ConnectionError | redis.TimeoutError):
        return StreamsUnavailable(f"Redis at {where(url)} does not answer: {error}", hint=_HINT)
    return StreamsError(f"Redis at {where(url)} refused a command: {error}", hint=_HINT)


def options() -> dict[str, Any]:
    """What every pf client of Redis is made with (pass ``retry`` too, see below)."""
    # No retries inside redis-py (the ``retry`` each client is given): the bus decides
    # when to try again, and a command that hangs on a dead Redis would otherwise hold
    # the publisher for several timeouts.
    return {"decode_responses": True, "socket_connect_timeout": CONNECT_TIMEOUT}


def _entry(entry_id: str, fields: Mapping[str, str]) -> Entry:
    return Entry(entry_id, fields.get("o", ""), fields.get("e", "{}"))


def _entries(raw: Iterable[tuple[str, Mapping[str, str]]]) -> list[Entry]:
    return [_entry(entry_id, fields) for entry_id, fields in raw]


class StreamWriter:
    """Appends events to the streams (blocking: call it from a thread).

    writer = StreamWriter(url, events_max=10_000, log_max=20_000)
    writer.write([build_started(...), build_log(...)], origin="a1b2")
    """

    def __init__(self, url: str, events_max: int, log_max: int) -> None:
        self.url = url
        self.events_max = events_max
        self.log_max = log_max
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=COMMAND_TIMEOUT,
            retry=redis.retry.Retry(NoBackoff(), 0),
            **options(),
        )

    def write(self, events: Sequence[Mapping[str, Any]], origin: str) -> int:
        """Append ``events`` in order, in one round trip; returns how many log entries
        Redis refused as already written (ids not above the stream's last)."""
        pipe = self._client.pipeline(transaction=False)
        for event in events:
            fields: dict[Any, Any] = {"o": origin, "e": json.dumps(event, separators=(",", ":"))}
            build_id = event.get("buildId", "")
            if event["type"] == "build_log" and event["lines"]:
                seq = event["lines"][-1]["seq"]
                pipe.xadd(
                    log_key(build_id), fields, id=log_id(seq), maxlen=self.log_max, approximate=True
                )
                continue
            pipe.xadd(EVENTS, fields, maxlen=self.events_max, approximate=True)
            if event["type"] in ENDS:
                pipe.expire(log_key(build_id), LOG_TTL)
        try:
            results = pipe.execute(raise_on_error=False)
        except redis.RedisError as error:
            raise translate(self.url, error) from error
        repeated = 0
        for result in results:
            if isinstance(result, redis.ResponseError) and "equal or smaller" in str(result):
                repeated += 1
            elif isinstance(result, redis.ConnectionError | redis.TimeoutError):
                raise translate(self.url, result) from result
            elif isinstance(result, redis.RedisError):
                raise translate(self.url, result) from result
        return repeated

    def ping(self) -> bool:
        try:
            return bool(self._client.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        self._client.close()


class StreamReader:
    """Reads the streams by last id, on the event loop.

    reader = StreamReader(url)
    last = await reader.last_event_id()
    for key, entries in await reader.read({EVENTS: last}, count=500, block=1.0):
        ...
    """

    def __init__(self, url: str) -> None:
        self.url = url
        # The socket must outwait the longest block, or a quiet stream reads as a dead Redis.
        self._client = redis.asyncio.Redis.from_url(
            url,
            socket_timeout=COMMAND_TIMEOUT + MAX_BLOCK,
            retry=redis.asyncio.retry.Retry(NoBackoff(), 0),
            **options(),
        )

    async def last_event_id(self) -> str:
        """The id of the newest event (``0-0`` when there is none): read after it."""
        try:
            newest = await self._client.xrevrange(EVENTS, count=1)
        except redis.RedisError as error:
            raise translate(self.url, error) from error
        return str(newest[0][0]) if newest else "0-0"

    async def read(
        self, cursors: Mapping[str, str], count: int, block: float
    ) -> list[tuple[str, list[Entry]]]:
        """The entries after each stream's cursor (at most ``count`` per stream), waiting
        up to ``block`` seconds for one to arrive; [] when none did."""
        try:
            streams: dict[Any, Any] = dict(cursors)
            found: Any = await self._client.xread(
                streams, count=count, block=max(1, int(min(block, MAX_BLOCK) * 1000))
            )
        except redis.RedisError as error:
            raise translate(self.url, error) from error
        return [(str(key), _entries(raw)) for key, raw in found or []]

    async def log_after(self, build_id: str, after: str, count: int) -> list[Entry]:
        """A build's log entries after id ``after`` (at most ``count``), oldest first."""
        try:
            raw: Any = await self._client.xrange(log_key(build_id), f"({after}", "+", count=count)
        except redis.RedisError as error:
            raise translate(self.url, error) from error
        return _entries(raw)

    async def close(self) -> None:
        await self._client.aclose()
