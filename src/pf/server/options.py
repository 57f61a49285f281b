"""What ``pf serve`` was asked for on its command line, apart from settings.

Light on purpose: the CLI builds it before the server stack is imported (the supervisor
of several API processes must set things up before prometheus_client loads).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["ServeOptions"]


@dataclass(frozen=True)
class ServeOptions:
    """What ``pf serve`` was asked for on its command line."""

    host: str
    port: int
    root: Path
    projects: Path
    ws_ping_interval: float
    ws_ping_timeout: float
