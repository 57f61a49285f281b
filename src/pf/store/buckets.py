"""Token buckets in Redis, shared by every pf serve process that names the same Redis.

One hash per client, ``pf:rate:<client key>``, holds its tokens (``t``) and when they
were counted (``s``, Redis's own clock, so API machines whose clocks disagree still
count alike). One Lua script refills, takes a token and writes the bucket back: Redis
runs it atomically, so submissions to any process in any order draw from one bucket.
The key expires once the bucket would be full again, which is the same as no bucket:
an idle client costs Redis nothing. The arithmetic is server.ratelimit.Buckets'.

The ``limits`` library (the usual choice in Python) offers fixed and moving windows but
no token bucket, and a window cannot keep PF_RATE_BURST apart from PF_RATE_LIMIT.
Imports store.streams (the Redis client's options and errors) only.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio
import redis.asyncio.retry
from redis.backoff import NoBackoff

from pf.store.streams import options, translate

PREFIX = "pf:rate:"
# A submission waits on Redis at most this long before the caller falls back to its
# own buckets: the limit must never be what makes the API slow.
TIMEOUT = 0.5

# KEYS[1]: the bucket. ARGV: tokens a second, burst. Returns the milliseconds until a
# token is back (0: taken). Redis truncates a Lua number it returns to an integer, hence
# milliseconds, rounded up.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local found = redis.call('HMGET', KEYS[1], 't', 's')
local tokens = burst
if found[1] then
  tokens = math.min(burst, tonumber(found[1]) + (now - tonumber(found[2])) * rate)
end
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) / rate * 1000)
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 's', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return wait
"""


class SharedBuckets:
    """``await take(key)``: 0 when allowed, else the seconds until a token is back.
    Raises StreamsUnavailable when Redis does not answer, StreamsError when it refuses."""

    def __init__(self, url: str, per_minute: int, burst: int) -> None:
        self.url = url
        self.rate = per_minute / 60.0
        self.burst = burst
        settings = {**options(), "socket_connect_timeout": TIMEOUT}
        self._client = redis.asyncio.Redis.from_url(
            url,
            socket_timeout=TIMEOUT,
            retry=redis.asyncio.retry.Retry(NoBackoff(), 0),
            **settings,
        )
        self._take: Any = self._client.register_script(_TAKE)

    async def take(self, key: str) -> float:
        try:
            wait_ms = await self._take(keys=[PREFIX + key], args=[self.rate, self.burst])
        except redis.RedisError as error:
            raise translate(self.url, error) from error
        return int(wait_ms) / 1000.0

    async def close(self) -> None:
        await self._client.aclose()
