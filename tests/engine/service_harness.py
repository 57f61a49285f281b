"""Shared by the build service tests: a projects root, a wat2wasm wrapper, a running service.

The wrapper stands in front of the real wat2wasm (pinned with PF_TOOL_WAT2WASM). It logs
each start, can print lines with pauses (to watch logs stream while it runs), and hangs
in a sleeping child while a flag file exists (to hold a worker busy, or to be
cancelled), writing the child's pid so a test can check that the whole process group
died, or kill just the child to let the compile go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from pf.config import load_settings
from pf.engine.events import Event, Subscription
from pf.engine.service import BuildService
from pf.store.record import BuildRecord

DEMO = Path(__file__).resolve().parents[2] / "demos" / "polyglot"
FINISHED = ("completed", "failed", "cancelled")
TERMINAL_EVENTS = ("build_completed", "build_failed", "build_cancelled")


def wat(n: int) -> str:
    """A distinct one-function module per ``n`` (distinct sources never share a cache entry)."""
    return f'(module (func (export "f{n}") (result i32) i32.const {n}))\n'


def make_projects(tmp_path: Path, languages: Iterable[str] = ("c", "wat")) -> Path:
    root = tmp_path / "projects"
    for language in languages:
        shutil.copytree(DEMO / language, root / "demo" / language)
    return root


@dataclass
class Wrapper:
    """A wat2wasm stand-in; ``hang`` holds every start until released or killed."""

    path: Path
    starts: Path
    pidfile: Path
    flag: Path

    def hang(self) -> None:
        self.flag.touch()

    def release(self) -> None:
        """Stop hanging: later starts compile at once, a hanging one wakes and compiles."""
        self.flag.unlink(missing_ok=True)
        if self.pidfile.exists():
            with contextlib.suppress(ValueError, ProcessLookupError):
                os.kill(int(self.pidfile.read_text()), signal.SIGKILL)
            self.pidfile.unlink()

    def start_count(self) -> int:
        return len(self.starts.read_text().splitlines()) if self.starts.exists() else 0

    def child_pid(self, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pidfile.exists() and self.pidfile.read_text().strip():
                return int(self.pidfile.read_text())
            time.sleep(0.02)
        raise AssertionError("the wrapped compiler never started")


def install_wrapper(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    lines: Iterable[str] = (),
    pause: float = 0.0,
) -> Wrapper:
    wrapper = Wrapper(
        tmp_path / "wat2wasm",
        tmp_path / "wat2wasm.starts",
        tmp_path / "wat2wasm.pid",
        tmp_path / "wat2wasm.hang",
    )
    chatter = "".join(f'echo "{line}"; sleep {pause}\n' for line in lines)
    wrapper.path.write_text(
        "#!/bin/bash\n"
        'if [ "$1" = --version ]; then exec /usr/bin/wat2wasm --version; fi\n'
        f'echo "$*" >> {wrapper.starts}\n'
        + chatter
        + f"if [ -f {wrapper.flag} ]; then sleep 300 & echo $! > {wrapper.pidfile}; wait; fi\n"
        + 'exec /usr/bin/wat2wasm "$@"\n'
    )
    wrapper.path.chmod(0o755)
    monkeypatch.setenv("PF_TOOL_WAT2WASM", str(wrapper.path))
    # A process per module, which the wrapper can hold, rather than the resident assembler.
    monkeypatch.setenv("PF_WAT_ASSEMBLER", "wat2wasm")
    # Unconfined: the wrapper keeps its starts, pid and hang flag outside the scratch dir.
    monkeypatch.setenv("PF_SANDBOX", "off")
    return wrapper


@asynccontextmanager
async def running(projects: Path, grace: float = 5.0) -> AsyncIterator[BuildService]:
    """A started service over ``projects`` with the settings of the environment now."""
    service = BuildService(load_settings(), None, projects)
    await service.start()
    try:
        yield service
    finally:
        await service.stop(grace)


async def wait_for(
    service: BuildService, build_id: str, statuses: Iterable[str] = FINISHED, timeout: float = 30
) -> BuildRecord:
    wanted = tuple(statuses)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = service.get(build_id)
        if (
            record is not None
            and record.status in wanted
            and (record.status != "cancelled" or record.ended_at is not None)
        ):
            return record
        await asyncio.sleep(0.01)
    raise AssertionError(f"{build_id} never reached {wanted}: {service.get(build_id)}")


async def events_until_end(sub: Subscription, build_id: str, timeout: float = 30) -> list[Event]:
    """The events of ``build_id`` up to and including its terminal event."""
    seen: list[Event] = []
    async with asyncio.timeout(timeout):
        while True:
            event = await sub.get()
            if event.get("buildId") != build_id:
                continue
            seen.append(event)
            if event["type"] in TERMINAL_EVENTS:
                return seen


def status_of(service: BuildService, build_id: str) -> str | None:
    record = service.get(build_id)
    return None if record is None else str(record.status)


def process_gone(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True
