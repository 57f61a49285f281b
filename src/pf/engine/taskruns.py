"""Pfyfile tasks as jobs of pf serve: which Pfyfile, its task list, validated calls, one run.

Which Pfyfile (first found): the file ``PFY_FILE`` names (relative to the server's
working directory); else ``Pfyfile.pf`` in the projects root (``pf serve --projects``);
else the nearest ``Pfyfile.pf`` from the server's working directory upward, as ``pf``
itself finds one. None found means no tasks (an empty list; every run is a 404). It is
parsed again only when one of its files (or its directory, where a new
``Pfyfile.<group>.pf`` may appear) changed, so an edit shows up without a restart. A
Pfyfile that does not parse is the server's configuration problem, not the client's:
PfyfileInvalid (HTTP 503) carries the rendered ``file:line:col`` message.

A call names a task as ``name`` (main scope) or ``group:name``; aliases work too. An
unknown name is a 404 with "did you mean"; a parameter the task does not declare is a
400 (unlike the CLI, which passes it on as a variable: over HTTP a typo or an
undeclared ``sudo=true`` must not reach the commands). A run is the executor of
pf.tasks on a worker thread, its reporter writing every echoed command (``$ cmd``,
stream ``pf``) and output line into the job's log, its ``compile`` lines going through
the service's action cache, and the job's cancel Event killing the running command's
process group. Each command is wrapped so that it dies with the server, grandchildren
included (pf.sandbox's task wrapper: a pid namespace of its own under bubblewrap, or a
marker that the next start's reaping finds when the sandbox is off); a task is the
operator's own command, so it keeps the host's filesystem. Imports pf.tasks, pf.dsl,
engine.taskcompile, pf.sandbox, config and errors.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pf._environ import environ
from pf.config import Settings
from pf.dsl import DslError, Pfyfile, Task, display_name, parse_file, render, suggest
from pf.engine.cache import ActionCache
from pf.engine.taskcompile import bind_hook
from pf.errors import NotFound, PfError, RequestError
from pf.sandbox import task_command
from pf.tasks.executor import Executor, Outcome, Reporter, echo_lines
from pf.tasks.params import Invocation

PFYFILE = "Pfyfile.pf"

LineSink = Callable[[str, str], None]


class PfyfileInvalid(PfError):
    """The server's Pfyfile cannot be read or parsed (HTTP 503: ours, not the client's)."""

    code = "pfyfile-invalid"
    http_status = 503

    def __init__(self, message: str) -> None:
        super().__init__(
            message, hint="fix the Pfyfile: pf serve reads it again on the next request"
        )


class TaskNotFound(NotFound):
    code = "unknown-task"


class InvalidParameter(RequestError):
    code = "invalid-parameter"


class TaskFailed(PfError):
    """A task run ended with a non-zero exit code (its ``returncode``)."""

    code = "task-failed"

    def __init__(self, message: str, returncode: int) -> None:
        super().__init__(message)
        self.returncode = returncode


@dataclass(frozen=True)
class TaskCall:
    """A resolved task of a parsed Pfyfile and the parameters it is called with."""

    pfyfile: Pfyfile
    task: Task
    params: Mapping[str, str]

    @property
    def name(self) -> str:
        """``build`` or ``web:build-rust``: how the task is named in ids and records."""
        return display_name(self.task.key)


def _stamp(paths: list[str]) -> tuple[tuple[str, int, int], ...]:
    out = []
    for path in paths:
        try:
            found = os.stat(path)
        except OSError:
            out.append((path, -1, -1))
        else:
            out.append((path, found.st_mtime_ns, found.st_size))
    return tuple(out)


class Pfyfiles:
    """The server's Pfyfile: found, parsed, and kept until one of its files changes."""

    def __init__(self, settings: Settings, projects_root: Path, cwd: Path | None = None) -> None:
        self.settings = settings
        self.projects_root = projects_root
        self.cwd = cwd or Path.cwd()
        self._lock = threading.Lock()
        self._parsed: tuple[str, tuple[tuple[str, int, int], ...], Pfyfile] | None = None

    def locate(self) -> Path | None:
        """The Pfyfile in force (see the module docstring), or None when there is none."""
        named = self.settings.pfy_file
        if named is not None:
            path = named if named.is_absolute() else self.cwd / named
            if not path.is_file():
                raise PfyfileInvalid(f"PFY_FILE names {path}, which is not a file")
            return path
        beside = self.projects_root / PFYFILE
        if beside.is_file():
            return beside
        for directory in (self.cwd, *self.cwd.parents):
            candidate = directory / PFYFILE
            if candidate.is_file():
                return candidate
        return None

    def load(self) -> Pfyfile | None:
        """The parsed Pfyfile, or None without one; PfyfileInvalid when it does not parse."""
        path = self.locate()
        if path is None:
            return None
        key = str(path)
        with self._lock:
            parsed = self._parsed
            if parsed is not None and parsed[0] == key and parsed[1] == _stamp(_watched(parsed[2])):
                return parsed[2]
            try:
                pfyfile = parse_file(path)
            except DslError as error:
                raise PfyfileInvalid(render(error)) from error
            self._parsed = (key, _stamp(_watched(pfyfile)), pfyfile)
            return pfyfile

    def listing(self) -> dict[str, Any]:
        """``{pfyfile, tasks: [{id, name, group, description, params, aliases}], errors}``."""
        pfyfile = self.load()
        if pfyfile is None:
            return {"pfyfile": None, "tasks": [], "errors": []}
        return {
            "pfyfile": pfyfile.path,
            "tasks": [_entry(t) for t in pfyfile.tasks.values()],
            # A sibling Pfyfile that does not parse is left out; its error is said here.
            "errors": [render(error) for error in pfyfile.errors.values()],
        }

    def call(self, name: str, params: Mapping[str, str]) -> TaskCall:
        """The task ``name`` (``task`` or ``group:task``) with checked ``params``."""
        pfyfile = self.load()
        if pfyfile is None:
            raise TaskNotFound(
                f"unknown task `{name}`: pf serve has no Pfyfile",
                hint=f"put a {PFYFILE} in the projects root, or name one with PFY_FILE",
            )
        group, colon, _ = name.rpartition(":")
        broken = _broken_group(pfyfile, group) if colon else None
        if broken is not None:
            raise PfyfileInvalid(render(broken))
        task = _resolve(pfyfile, name)
        return TaskCall(pfyfile, task, _check_params(task, params))


def _broken_group(pfyfile: Pfyfile, group: str) -> DslError | None:
    """The error of the group's file when it was left out for not parsing."""
    wanted = f"Pfyfile.{group}.pf"
    for path, error in pfyfile.errors.items():
        if os.path.basename(path) == wanted:
            return error
    return None


def _watched(pfyfile: Pfyfile) -> list[str]:
    # Its directory too: a new Pfyfile.<group>.pf beside it changes the task list.
    return [*pfyfile.files, os.path.dirname(os.path.abspath(pfyfile.path))]


def _entry(task: Task) -> dict[str, Any]:
    return {
        "id": display_name(task.key),
        "name": task.name,
        "group": task.group,
        "description": task.describe,
        "params": [{"name": p.name, "default": p.default} for p in task.params],
        "aliases": list(task.aliases),
    }


def _resolve(pfyfile: Pfyfile, name: str) -> Task:
    group, colon, bare = name.rpartition(":")
    task = pfyfile.find(group if colon else None, bare)
    if task is not None:
        return task
    every = [display_name(key) for key in (*pfyfile.tasks, *pfyfile.aliases)]
    guess = suggest(name, every)
    if guess is None and not colon:
        # `build-rust` for the task of that name in a group: name the group's.
        owners = [g for g in pfyfile.groups if pfyfile.find(g, name) is not None]
        guess = f"{owners[0]}:{name}" if owners else None
    if guess is not None:
        raise TaskNotFound(
            f"unknown task `{name}`: did you mean `{guess}`?",
            hint="GET /api/tasks lists the tasks; a group's task is named group:task",
        )
    raise TaskNotFound(f"unknown task `{name}`", hint="GET /api/tasks lists the tasks")


def _check_params(task: Task, params: Mapping[str, str]) -> dict[str, str]:
    declared = [p.name for p in task.params]
    shown = display_name(task.key)
    for key, value in params.items():
        if key not in declared:
            guess = suggest(key, declared)
            about = (
                f"did you mean `{guess}`?"
                if guess
                else (f"its parameters: {', '.join(declared)}" if declared else "it takes none")
            )
            raise InvalidParameter(f"task `{shown}` has no parameter `{key}`: {about}")
        if "\0" in value:
            raise InvalidParameter(f"parameter `{key}` of task `{shown}` holds a NUL character")
    return dict(params)


def _tied(
    settings: Settings,
) -> Callable[[Sequence[str], Path, Mapping[str, str]], tuple[Sequence[str], Mapping[str, str]]]:
    """The wrapper that ties each command of a run to the server's life (pf.sandbox)."""

    def wrap(
        argv: Sequence[str], cwd: Path, env: Mapping[str, str]
    ) -> tuple[Sequence[str], Mapping[str, str]]:
        command = task_command(argv, cwd=cwd, env=env, settings=settings)
        return command.argv, command.env

    return wrap


class LogReporter(Reporter):
    """The executor's output as log lines: echoed commands on stream ``pf``, output as is."""

    def __init__(self, sink: LineSink) -> None:
        super().__init__(prefix=False)
        self.sink = sink

    def echo(self, task: str, command: str) -> None:
        for line in echo_lines(command):
            self.sink("pf", line)

    def line(self, task: str, stream: str, text: str) -> None:
        self.sink(stream, text)

    def skipped(self, task: str) -> None:
        self.sink("pf", f"pf: `{task}` is up to date")


def execute(
    call: TaskCall,
    settings: Settings,
    cache: ActionCache | None,
    cancel: threading.Event,
    sink: LineSink,
) -> Outcome:
    """Run ``call`` (and what it needs) to its end, its output going to ``sink``."""
    executor = Executor(
        call.pfyfile,
        environ=environ(),
        reporter=LogReporter(sink),
        compile=bind_hook(settings, cache, cancel, sink),
        settings=lambda: settings,
        cancel=cancel,
        wrap=_tied(settings),
    )
    return executor.run([Invocation(call.task, dict(call.params))])


def failure(call: TaskCall, outcome: Outcome) -> TaskFailed:
    """Why a run failed, in one line with its exit code and the Pfyfile line that failed."""
    found = outcome.failure
    if found is None:
        return TaskFailed(f"tasks failed: {', '.join(outcome.failed)}", outcome.code)
    where = ""
    if found.span is not None:
        # Relative to the Pfyfile's directory, as the task's commands see their paths.
        root = os.path.dirname(os.path.abspath(call.pfyfile.path))
        path = os.path.relpath(os.path.abspath(found.span.path), root)
        where = f" ({path}:{found.span.line}:{found.span.col})"
    if found.error is not None:
        text = f"task `{found.task}` failed{where}: {found.error.message} (exit code {found.code})"
    else:
        text = f"task `{found.task}` failed{where}: a command exited with code {found.code}"
    return TaskFailed(text, found.code)
