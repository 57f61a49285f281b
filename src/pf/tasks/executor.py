"""Run resolved Pfyfile tasks: bind values, run ``needs`` first, skip what is fresh.

Owns the order and parallelism of a call's tasks and their values; the statements of
one task's body are :mod:`pf.tasks.taskrun`'s, and what a run shows is
:mod:`pf.tasks.report`'s.

Strategy. The command line gives invocations (a task and its parameters) in order;
each one is run after everything it ``needs``, every task at most once per call.
With ``jobs > 1`` the tasks of one invocation's dependency graph whose own needs are
done run side by side on threads (each statement's processes run through the
sandbox, so a thread only waits); the invocations themselves stay in command-line
order. The first failure stops the run: nothing new starts, running tasks finish.

A task's values are layered (docs/pfyfile.md): process environment < file ``env`` <
header defaults < task ``env`` < command-line parameters. They are interpolated in
order as they are bound, and every one is exported to the task's commands, so
``shell`` lines (handed to bash unchanged) see them as variables while other verbs'
arguments get pf-level interpolation. Build helpers and system verbs are the plans
of :mod:`pf.tasks.helpers` and :mod:`pf.tasks.system`; ``compile`` calls a hook the
caller injects, because the engine sits above this layer (docs/architecture.md).

Start-up matters (an up-to-date no-op run has a budget of 80 ms), so this module
imports only pf.dsl and the standard library's light modules at load time; the verb
modules, the sandbox and Settings are imported when a statement first runs.
"""

from __future__ import annotations

import os
import time

from pf.dsl.interpolate import interpolate
from pf.dsl.lexer import sh_twin
from pf.dsl.model import display_name
from pf.tasks.hosts import hosts_for
from pf.tasks.report import Reporter, echo_lines
from pf.tasks.taskrun import CompileCall, Stop, TaskRun, sudo_options

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~5 ms)
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path

    from pf.config import Settings
    from pf.dsl.model import Pfyfile, Task, TaskKey
    from pf.dsl.source import Span
    from pf.errors import PfError
    from pf.tasks.params import Invocation
    from pf.tasks.uptodate import State

    CompileHook = Callable[[CompileCall], list[str]]
    # Rewrites one command (argv, cwd, env) before it runs: pf serve's lifetime wrapper.
    CommandWrapper = Callable[
        [Sequence[str], Path, Mapping[str, str]], tuple[Sequence[str], Mapping[str, str]]
    ]

#: The executor's interface: what callers build it with and get back from it.
__all__ = ["CompileCall", "Executor", "Failure", "Outcome", "Reporter", "echo_lines"]


class Failure:
    """Why a run stopped: the task, the statement's span, the exit code and any pf error."""

    __slots__ = ("code", "error", "span", "task")

    def __init__(self, task: str, span: Span | None, code: int, error: PfError | None) -> None:
        self.task = task
        self.span = span
        self.code = code
        self.error = error


class Outcome:
    """How a run ended: exit ``code``, tasks run / skipped / failed, seconds, the failure."""

    __slots__ = ("code", "failed", "failure", "ran", "seconds", "skipped")

    def __init__(self) -> None:
        self.code = 0
        self.ran: list[str] = []
        self.skipped: list[str] = []
        self.failed: list[str] = []
        self.seconds = 0.0
        self.failure: Failure | None = None


class _Node:
    """One task to run in this call, with its parameters and the nodes it needs."""

    __slots__ = ("deps", "name", "params", "status", "task")

    def __init__(self, task: Task, params: dict[str, str]) -> None:
        self.task = task
        self.params = params
        self.name = display_name(task.key)
        self.deps: list[_Node] = []
        self.status = "pending"  # -> running -> ok | skipped | failed


class Executor:
    """Runs invocations of one Pfyfile's tasks.

    ``environ`` is the process environment tasks start from; ``compile`` is the
    engine hook for ``compile`` lines (None: such a line is an error); ``jobs`` bounds
    the tasks run at once; ``force`` ignores up-to-date checks; ``fail_fast`` stops a
    task's other hosts when one fails (tasks sent to remote hosts with ``hosts=``, run by
    :mod:`pf.tasks.fanout`); ``settings`` returns
    pf's Settings (loaded on first use: most tasks never need them). Setting the
    ``cancel`` Event kills the running command's process group and stops the run
    (the run fails with that command's signal exit code, or 130 between commands).
    ``wrap`` rewrites every command before it runs (pf serve ties its task runs to its
    own life this way); None runs them as they are.

    >>> Executor(pfyfile, environ=dict(os.environ)).run([Invocation(task, {})]).code
    0
    """

    def __init__(
        self,
        pfyfile: Pfyfile,
        *,
        environ: Mapping[str, str],
        reporter: Reporter | None = None,
        compile: CompileHook | None = None,
        jobs: int = 1,
        force: bool = False,
        fail_fast: bool = False,
        settings: Callable[[], Settings] | None = None,
        cancel: threading.Event | None = None,
        wrap: CommandWrapper | None = None,
    ) -> None:
        self.pfyfile = pfyfile
        self.wrap = wrap
        self.cancel = cancel
        self.environ = dict(environ)
        self.reporter = reporter or Reporter(prefix=jobs > 1)
        self.compile = compile
        self.jobs = max(jobs, 1)
        self.force = force
        # On several remote hosts: the first failing host stops the others.
        self.fail_fast = fail_fast
        self._settings_factory = settings
        self._settings: Settings | None = None
        self.root = os.path.dirname(os.path.abspath(pfyfile.path))
        self._nodes: dict[tuple[TaskKey, tuple[tuple[str, str], ...]], _Node] = {}
        self._latest: dict[TaskKey, _Node] = {}
        self._state: State | None = None
        self._file_env: dict[str | None, dict[str, str]] = {}
        import threading  # already loaded by the reporter; guards outcome and node states

        self._lock = threading.Lock()

    # ------------------------------------------------------------------ planning

    def _node(self, task: Task, params: dict[str, str]) -> _Node:
        key = (task.key, tuple(sorted(params.items())))
        node = self._nodes.get(key)
        if node is None:
            node = self._nodes[key] = _Node(task, params)
            for dep in task.needs:
                # A task needed by another runs once: with the parameters it was last
                # given on this command line, else with its defaults.
                found = self._latest.get(dep)
                node.deps.append(found or self._node(self.pfyfile.tasks[dep], {}))
        self._latest[task.key] = node
        return node

    @staticmethod
    def _order(root: _Node) -> list[_Node]:
        """``root`` and everything it needs that has not run, dependencies first."""
        out: list[_Node] = []
        seen: set[int] = set()
        stack: list[tuple[_Node, int]] = [(root, 0)]
        while stack:
            node, at = stack.pop()
            if at == 0 and (id(node) in seen or node.status != "pending"):
                continue
            if at < len(node.deps):
                stack.append((node, at + 1))
                stack.append((node.deps[at], 0))
                continue
            if id(node) not in seen:
                seen.add(id(node))
                out.append(node)
        return out

    # ------------------------------------------------------------------ running

    def run(self, invocations: Sequence[Invocation]) -> Outcome:
        """Run ``invocations`` in order; stops at the first failure."""
        outcome = Outcome()
        started = time.monotonic()
        try:
            for invocation in invocations:
                node = self._node(invocation.task, dict(invocation.params))
                order = self._order(node)
                if self.jobs > 1 and len(order) > 1:
                    self._run_parallel(order, outcome)
                else:
                    for item in order:
                        self._run_node(item, outcome)
                        if outcome.failure is not None:
                            break
                if outcome.failure is not None:
                    break
        finally:
            outcome.seconds = time.monotonic() - started
        return outcome

    def _run_parallel(self, order: list[_Node], outcome: Outcome) -> None:
        import threading

        changed = threading.Condition()
        pending = list(order)
        running = 0

        def work(node: _Node) -> None:
            nonlocal running
            try:
                self._run_node(node, outcome)
            finally:
                with changed:
                    running -= 1
                    changed.notify_all()

        with changed:
            while True:
                if outcome.failure is None:
                    for node in list(pending):
                        if running >= self.jobs:
                            break
                        if all(d.status in ("ok", "skipped") for d in node.deps):
                            pending.remove(node)
                            node.status = "running"
                            running += 1
                            threading.Thread(target=work, args=(node,), daemon=True).start()
                if running == 0:
                    return
                changed.wait()

    def _run_node(self, node: _Node, outcome: Outcome) -> None:
        node.status = "running"
        try:
            status = self._execute(node)
        except Stop as stop:
            with self._lock:  # parallel tasks may fail at once: the first one is reported
                node.status = "failed"
                outcome.failed.append(node.name)
                if outcome.failure is None:
                    outcome.failure = Failure(node.name, stop.span, stop.code, stop.error)
                    outcome.code = stop.code
            return
        with self._lock:
            node.status = status
            (outcome.skipped if status == "skipped" else outcome.ran).append(node.name)

    # ------------------------------------------------------------------ one task

    def file_env(self, group: str | None, task: Task) -> dict[str, str]:
        """The file-level ``env`` for ``task``'s scope, interpolated in order."""
        cached = self._file_env.get(group)
        if cached is None:
            values = dict(self.environ)
            cached = {}
            for key, raw in self.pfyfile.env_for(task).items():
                cached[key] = values[key] = interpolate(raw, values)
            self._file_env[group] = cached
        return cached

    def bind(self, task: Task, params: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
        """All values of ``task`` before its body runs, and the subset that is not environment.

        Command-line ``params`` are set first so that a default may refer to them;
        then each header default not given, in header order, interpolated.
        """
        file_env = self.file_env(task.group, task)
        values = {**self.environ, **file_env, **params}
        own = {**file_env, **params}
        for param in task.params:
            name = param.name
            if name not in params and param.default is not None:
                values[name] = own[name] = interpolate(param.default, values)
            if "-" in name and name in values:
                # Bash cannot name `remote-addr`: its shell lines read `remote_addr`.
                values[sh_twin(name)] = values[name]
        return values, own

    def _execute(self, node: _Node) -> str:
        task = node.task
        values, own = self.bind(task, node.params)
        digest: str | None = None
        if task.sources or task.generates:
            from pf.tasks import uptodate  # glob, hashlib, json: only for such tasks

            sources = [interpolate(p, values) for p in task.sources]
            generates = [interpolate(p, values) for p in task.generates]
            files = uptodate.expand(sources, self.root)
            digest = uptodate.fingerprint(task, own, files, self.root)
            state = self._state_store()
            if (
                not self.force
                and state.fresh(node.name, digest)
                and uptodate.outputs_exist(generates, self.root)
            ):
                self.reporter.skipped(node.name)
                return "skipped"
        hosts = hosts_for(self.pfyfile, task, node.params)
        if hosts is not None:
            from pf.tasks.fanout import run_on_hosts

            run_on_hosts(self, node.name, task, values, node.params, hosts)
        else:
            run = TaskRun(
                self, node.name, values, set(node.params), sudo_options(task, node.params)
            )
            try:
                run.block(task.body)
            finally:
                run.close()
        if digest is not None:
            self._state_store().record(node.name, digest)
        return "ok"

    def _state_store(self) -> State:
        if self._state is None:
            from pf.tasks.uptodate import State

            self._state = State(self.root)
        return self._state

    def settings(self) -> Settings:
        """pf's Settings, loaded the first time a verb needs them."""
        if self._settings is None:
            if self._settings_factory is not None:
                self._settings = self._settings_factory()
            else:
                from pf.config import load_settings

                self._settings = load_settings()
        return self._settings
