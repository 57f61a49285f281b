"""Which event bus a process uses: the in-process one, or one shared through Redis.

Imports engine.events, config and store; engine.redisbus (and redis-py) only when
PF_REDIS_URL is set.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from pf.config import Settings
from pf.engine.events import Bus, EventBus

if TYPE_CHECKING:
    from pf.store.history import Store


def bus_for(
    settings: Settings,
    store: Store | None = None,
    completed: Callable[[str], Awaitable[None]] | None = None,
) -> Bus:
    """The event bus of this process (every publisher and subscriber in it shares one).

    With PF_REDIS_URL, events from every process sharing that Redis reach the
    subscribers here; ``store`` (the build database) then fills in the log lines Redis
    lost while it was down, and ``completed`` is awaited with the id of each build
    another process completed before its ``build_completed`` reaches them.
    """
    if settings.redis_url:
        from pf.engine.redisbus import RedisBus  # redis-py loads only when Redis is used

        return RedisBus(settings, store, completed)
    return EventBus(settings.ws_send_queue)
