"""Which event bus a process uses: the in-process one, or one shared through Redis.

Imports engine.events and config.
"""

from __future__ import annotations

from pf.config import Settings
from pf.engine.events import EventBus


def bus_for(settings: Settings) -> EventBus:
    """The event bus of this process (every publisher and subscriber in it shares one)."""
    return EventBus(settings.ws_send_queue)
