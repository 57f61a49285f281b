"""Resource limits for one sandboxed subprocess, with the defaults pf uses."""

from __future__ import annotations

from dataclasses import dataclass

from pf.config import (
    DEFAULT_BUILD_TIMEOUT,
    DEFAULT_MAX_BUFFER,
    DEFAULT_MAX_FILE_SIZE,
    DEFAULT_MAX_MEMORY,
    DEFAULT_MAX_PROCS,
    Settings,
)


@dataclass(frozen=True)
class Limits:
    """What one subprocess may use: wall time, output, CPU, memory, file size, open files,
    processes.

    None means no limit (task commands such as a dev server run as long as the user wants).
    """

    timeout: float | None = DEFAULT_BUILD_TIMEOUT
    max_output: int = DEFAULT_MAX_BUFFER
    memory: int | None = DEFAULT_MAX_MEMORY
    file_size: int | None = DEFAULT_MAX_FILE_SIZE
    processes: int | None = DEFAULT_MAX_PROCS
    # Unlimited unless asked for: task commands (watchers, bundlers) keep pf's own limit.
    open_files: int | None = None

    @property
    def cpu_seconds(self) -> int | None:
        # CPU time is a backstop behind the wall-clock timeout: a compiler may use
        # several threads, so allow a few times the wall budget.
        return None if self.timeout is None else int(self.timeout * 4) + 1

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            timeout=settings.build_timeout,
            max_output=settings.max_buffer,
            memory=settings.max_memory,
            file_size=settings.max_file_size,
            processes=settings.max_procs,
            open_files=settings.max_open_files,
        )


DEFAULT_LIMITS = Limits()
