"""Where a build's confined steps run: one interface over a cell and one bubblewrap per step.

A build opens a space (:func:`confined`), writes its inputs into ``space.path`` and runs
each step with ``space.run``; steps of one build share the directory (compile, then
link). Behind it is a cell when ``sandbox_cell_jobs`` is above 0 and pf-cell is built
(pf.sandbox.cells), else a fresh workspace whose every step starts its own bubblewrap,
or, with the sandbox off, a plain scratch directory. Knows nothing of builds.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from pf.config import Settings
from pf.sandbox import cells
from pf.sandbox.limits import Limits
from pf.sandbox.process import Completed, LineSink, run
from pf.sandbox.workspace import workspace
from pf.sandbox.wrappers import Confinement, compile_command, sandbox_uid


class Space(Protocol):
    """A build's writable directory and the way its confined steps run in it."""

    @property
    def path(self) -> Path: ...

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        limits: Limits,
        on_line: LineSink | None = None,
        cancel: threading.Event | None = None,
    ) -> Completed: ...


class _OneShot:
    """Each step wrapped by :func:`compile_command` (a bubblewrap of its own, or none)."""

    def __init__(self, path: Path, readonly: Sequence[Path], settings: Settings) -> None:
        self.path = path
        self.confinement = Confinement(path, tuple(readonly))
        self.settings = settings

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        limits: Limits,
        on_line: LineSink | None = None,
        cancel: threading.Event | None = None,
    ) -> Completed:
        command = compile_command(
            argv, env=env, confinement=self.confinement, settings=self.settings
        )
        return run(
            command.argv,
            cwd=self.path,
            env=command.env,
            limits=limits,
            on_line=on_line,
            cancel=cancel,
            user=command.user,
        )


@contextlib.contextmanager
def confined(
    settings: Settings,
    readonly: Sequence[Path],
    *,
    scratch: Callable[[], contextlib.AbstractContextManager[Path]],
    dispose: Callable[[Path], None],
    keep: Sequence[str] = (),
) -> Iterator[Space]:
    """A space for one build whose steps see ``readonly`` besides /usr.

    ``scratch`` makes the directory when the sandbox is off; ``dispose`` removes what
    the build leaves (it may do so later, on another thread). ``keep`` names
    directories of the workspace that every build makes: a cell keeps them for the next
    build, emptied, instead of removing them (a new directory costs a millisecond on
    some disks).
    """
    if settings.sandbox == "off":
        with scratch() as path:
            try:
                yield _OneShot(path, readonly, settings)
            finally:
                dispose(path)
        return
    cell = (
        cells.acquire(settings, readonly, dispose)
        if settings.sandbox_cell_jobs > 0 and cells.available()
        else None
    )
    if cell is not None:
        try:
            yield cell
        finally:
            cells.release(cell, dispose, keep)
        return
    with workspace(sandbox_uid(settings)) as path:
        try:
            yield _OneShot(path, readonly, settings)
        finally:
            dispose(path)
