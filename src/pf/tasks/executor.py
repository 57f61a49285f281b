"""Run resolved Pfyfile tasks: bind values, walk statements, run ``needs``, skip what is fresh.

Strategy. The command line gives invocations (a task and its parameters) in order;
each one is run after everything it ``needs``, every task at most once per call.
With ``jobs > 1`` the tasks of one invocation's dependency graph whose own needs are
done run side by side on threads (each statement's processes run through the
sandbox, so a thread only waits); the invocations themselves stay in command-line
order. The first failure stops the run: nothing new starts, running tasks finish.

A task's values are layered (PFYFILE.md): process environment < file ``env`` <
header defaults < task ``env`` < command-line parameters. They are interpolated in
order as they are bound, and every one is exported to the task's commands, so
``shell`` lines (handed to bash unchanged) see them as variables while other verbs'
arguments get pf-level interpolation. Build helpers and system verbs are the plans
of :mod:`pf.tasks.helpers` and :mod:`pf.tasks.system`; ``compile`` calls a hook the
caller injects, because the engine sits above this layer (DESIGN.md).

Start-up matters (issue 3: an up-to-date no-op run within 80 ms), so this module
imports only pf.dsl and the standard library's light modules at load time; the verb
modules, the sandbox and Settings are imported when a statement first runs.
"""

from __future__ import annotations

import os
import sys
import time

from pf.dsl.ast import Env, For, If, Shell, ShellLang, Unrunnable, Verb
from pf.dsl.errors import DslError
from pf.dsl.interpolate import interpolate
from pf.dsl.lexer import sh_twin
from pf.dsl.model import display_name
from pf.errors import PfError, UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~5 ms)
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path
    from typing import TextIO

    from pf.config import Settings
    from pf.dsl.ast import Statement, Test
    from pf.dsl.model import Pfyfile, Task, TaskKey
    from pf.dsl.source import Span
    from pf.tasks.params import Invocation
    from pf.tasks.tools import Context, Plan, Step
    from pf.tasks.uptodate import State

    CompileHook = Callable[["CompileCall"], list[str]]
    # Rewrites one command (argv, cwd, env) before it runs: pf serve's lifetime wrapper.
    CommandWrapper = Callable[
        [Sequence[str], Path, Mapping[str, str]], tuple[Sequence[str], Mapping[str, str]]
    ]

#: Lines of a heredoc echoed before the rest is summarised.
ECHO_LINES = 4


def echo_lines(command: str) -> list[str]:
    """How ``command`` is shown before it runs: ``$ first line``, then ``> `` continuations."""
    lines = command.rstrip("\n").split("\n")
    shown = [f"$ {lines[0]}"] + [f"> {line}" for line in lines[1:ECHO_LINES]]
    if len(lines) > ECHO_LINES:
        shown.append(f"> ... ({len(lines) - ECHO_LINES} more lines)")
    return shown


class CompileCall:
    """What a ``compile`` line asks of the engine, globs expanded and values interpolated.

    ``sources`` are absolute paths; ``language`` is None to take each file's from its
    extension; ``out`` is the absolute output directory; ``options`` are the remaining
    ``key=value`` words (``opt_level``, ``exports``, ...) for the engine to validate;
    ``cwd`` is the task's working directory; ``jobs`` (``jobs=N``) bounds how many
    languages compile at once. The hook returns the lines to print.
    """

    __slots__ = ("cwd", "jobs", "language", "options", "out", "sources", "target")

    def __init__(
        self,
        sources: list[str],
        language: str | None,
        target: str,
        out: str,
        options: dict[str, str],
        cwd: str,
        jobs: int | None = None,
    ) -> None:
        self.sources = sources
        self.language = language
        self.target = target
        self.out = out
        self.options = options
        self.cwd = cwd
        self.jobs = jobs


class Reporter:
    """Where the executor's output goes: echoed commands, live output lines, skips.

    Thread-safe: each line is written whole and flushed at once, so output is live
    and tasks running in parallel never cut into each other's lines. With ``prefix``
    (several tasks at once) every line starts with ``[task]``. The CLI subclasses it
    to add colour through :meth:`paint`.
    """

    def __init__(self, prefix: bool = False, attach: bool = False) -> None:
        import threading  # cheap, and only this object needs a lock at start-up

        self.prefix = prefix
        # Commands write to pf's own stdout/stderr and read its stdin, as make and just
        # run them (the CLI, one task at a time): :meth:`line` then sees only pf's own.
        self.attach = attach
        self._lock = threading.Lock()

    def paint(self, text: str, colour: str, stream: TextIO) -> str:
        """``text`` in ``colour`` when ``stream`` is a terminal; plain here."""
        return text

    def _write(self, stream: TextIO, task: str, text: str) -> None:
        head = f"[{task}] " if self.prefix else ""
        with self._lock:
            stream.write(f"{head}{text}\n")
            stream.flush()

    def echo(self, task: str, command: str) -> None:
        """Show ``command`` before it runs: ``$ command`` on stderr, continuation lines ``>``."""
        err = sys.stderr
        for line in echo_lines(command):
            self._write(err, task, self.paint(line, "cmd", err))

    def line(self, task: str, stream: str, text: str) -> None:
        """One line of a command's output, as it arrives."""
        self._write(sys.stderr if stream == "stderr" else sys.stdout, task, text)

    def skipped(self, task: str) -> None:
        err = sys.stderr
        self._write(err, task, self.paint(f"pf: `{task}` is up to date", "skip", err))


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


class _Stop(Exception):
    """A statement failed: unwinds the task's blocks to the executor."""

    def __init__(self, span: Span | None, code: int, error: PfError | None = None) -> None:
        super().__init__(code)
        self.span = span
        self.code = code
        self.error = error


class Executor:
    """Runs invocations of one Pfyfile's tasks.

    ``environ`` is the process environment tasks start from; ``compile`` is the
    engine hook for ``compile`` lines (None: such a line is an error); ``jobs`` bounds
    the tasks run at once; ``force`` ignores up-to-date checks; ``settings`` returns
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
        except _Stop as stop:
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
        run = _TaskRun(self, node.name, values, set(node.params), _sudo(task, node.params))
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


class _TaskRun:
    """One execution of one task's body: its live values, scratch directory and output."""

    def __init__(
        self,
        executor: Executor,
        name: str,
        values: dict[str, str],
        fixed: set[str],
        sudo: tuple[str, ...] | None = None,
    ) -> None:
        self.executor = executor
        self.name = name
        self.values = values
        # `sudo=true [sudo_user=U]`: every command of the task runs through sudo.
        self.sudo = sudo
        # Command-line parameters win over the task's own `env` lines (PFYFILE.md).
        self.fixed = fixed
        self.reporter = executor.reporter
        # Attached only where nothing else runs at once and nobody may cancel the run.
        self.attached = (
            executor.reporter.attach and not executor.reporter.prefix and executor.cancel is None
        )
        self._scratch: str | None = None

    def close(self) -> None:
        if self._scratch is not None:
            import shutil

            shutil.rmtree(self._scratch, ignore_errors=True)

    # ------------------------------------------------------------------ helpers

    def scratch(self) -> Path:
        from pathlib import Path

        if self._scratch is None:
            import tempfile

            self._scratch = tempfile.mkdtemp(prefix="pf-task-")
        return Path(self._scratch)

    def context(self) -> Context:
        from pathlib import Path

        from pf.tasks.tools import Context

        env = dict(self.values)
        # Programs that buffer when writing to a pipe (Python) would hold their output
        # back until they exit; task output is meant to be live (issue 3).
        env.setdefault("PYTHONUNBUFFERED", "1")
        return Context(
            Path(self.executor.root),
            env,
            self.executor.settings(),
            privileged=self.sudo is not None or os.geteuid() == 0,
        )

    def _on_line(self, stream: str, text: str) -> None:
        self.reporter.line(self.name, stream, text)

    def _on_step(self, step: Step) -> None:
        from pf.tasks.tools import Say, WriteFile

        if not isinstance(step, Say | WriteFile):
            self.reporter.echo(self.name, step.describe())

    def run_plan(self, plan: Plan, span: Span, echo_steps: bool) -> None:
        from pf.tasks.tools import run_plan

        result = run_plan(
            self.elevate(plan),
            on_line=self._on_line,
            on_step=self._on_step if echo_steps else None,
            cancel=self.executor.cancel,
            attached=self.attached,
        )
        if not result.ok:
            raise _Stop(span, result.code)

    def elevate(self, plan: Plan) -> Plan:
        """``plan`` with each command run through ``sudo -E [-u USER] --`` when asked for,
        then through the executor's ``wrap``.

        In-process steps (``directory``, ``copy``, polyglot sources) are pf's own and
        run as pf's user. Nothing changes for root without ``sudo_user``.
        """
        wrap = self.executor.wrap
        sudo_wanted = self.sudo is not None and (bool(self.sudo) or os.geteuid() != 0)
        if not sudo_wanted and wrap is None:
            return plan
        from dataclasses import replace

        from pf.tasks.tools import Plan, Run, Tool, find_tool

        prefix: tuple[str, ...] = ()
        if sudo_wanted:
            sudo = find_tool(Tool.apt("sudo"), self.context(), "sudo=true")
            prefix = (sudo, "-E", *(self.sudo or ()), "--")
        steps = []
        for step in plan.steps:
            if isinstance(step, Run):
                step = replace(step, argv=prefix + step.argv)
                if wrap is not None:
                    argv, env = wrap(step.argv, step.cwd, step.env)
                    step = replace(step, argv=tuple(argv), env=env)
            steps.append(step)
        return Plan(tuple(steps))

    def text(self, raw: str) -> str:
        return interpolate(raw, self.values)

    # ------------------------------------------------------------------ statements

    def block(self, statements: Sequence[Statement]) -> None:
        cancel = self.executor.cancel
        for statement in statements:
            if cancel is not None and cancel.is_set():
                # Checked per statement too: `env`, `if` and in-process verbs start no
                # process for the sandbox to kill.
                from pf.tasks.tools import CANCELLED_CODE

                raise _Stop(statement.span, CANCELLED_CODE)
            try:
                self.statement(statement)
            except PfError as error:
                raise _Stop(statement.span, error.exit_code, error) from error

    def statement(self, statement: Statement) -> None:
        if isinstance(statement, Shell):
            self.shell(statement)
        elif isinstance(statement, Env):
            for key, raw in statement.pairs:
                if key not in self.fixed:
                    self.values[key] = self.text(raw)
        elif isinstance(statement, If):
            self.block(statement.body if self.test(statement.test) else statement.orelse)
        elif isinstance(statement, For):
            self.loop(statement)
        elif isinstance(statement, Verb):
            self.verb(statement)
        elif isinstance(statement, ShellLang):
            pass  # the parser already applied it to every later `shell` line
        elif isinstance(statement, Unrunnable):
            # Loaded with a warning; running it is an error at its line, never a guess.
            raise DslError(statement.span, statement.kind, dict(statement.facts))
        else:  # pragma: no cover - the Statement union is closed
            raise AssertionError(f"unknown statement {statement!r}")

    def shell(self, stmt: Shell) -> None:
        from pf.tasks.polyglot import bash_plan, file_plan, is_default, shell_plan

        ctx = self.context()
        lang = stmt.lang
        if lang is not None and "$" in lang:
            lang = self.language(lang, stmt.span)
        tag = "" if is_default(lang) else f"[lang:{lang}] "
        if stmt.file is not None:
            path = self.text(stmt.file)
            args = [self.text(a) for a in stmt.args]
            lang = _language_of_file(path) if lang is None or not tag else lang
            import shlex

            # As written: the tag only if there was one, arguments quoted as a shell would.
            given = f" -- {shlex.join(args)}" if args else ""
            self.reporter.echo(self.name, f"{tag}@{path}{given}")
            plan = file_plan(lang, path, args, ctx=ctx, scratch=self.scratch())
        else:
            if stmt.heredoc:
                self.reporter.echo(self.name, f"{tag}<<heredoc\n{stmt.code}")
            else:
                self.reporter.echo(self.name, tag + stmt.code)
            if tag:
                plan = shell_plan(stmt.code, lang=lang, ctx=ctx, scratch=self.scratch())
            else:
                plan = bash_plan(stmt.code, ctx)  # unchanged to bash; no scratch needed
        self.run_plan(plan, stmt.span, echo_steps=False)

    def language(self, written: str, span: Span) -> str:
        """The language ``[lang:$var]`` names here; an unknown one is an error at its line."""
        from pf.dsl.verbs import LANGUAGE_NAMES, language_facts

        name = self.text(written).strip()
        if name.lower() not in LANGUAGE_NAMES:
            raise DslError(span, "unknown-language", language_facts(name or written))
        return name.lower()

    def test(self, test: Test) -> bool:
        if test.op == "cmd":
            from pf.tasks.polyglot import bash_plan
            from pf.tasks.tools import run_plan

            self.reporter.echo(self.name, test.left)
            plan = self.elevate(bash_plan(test.left, self.context()))
            result = run_plan(
                plan,
                on_line=self._on_line,
                cancel=self.executor.cancel,
                attached=self.attached,
            )
            return result.ok
        left = self.text(test.left)
        if test.op == "set":
            return left != ""
        right = self.text(test.right or "")
        return (left == right) if test.op == "==" else (left != right)

    def loop(self, loop: For) -> None:
        if loop.items is not None:
            items = [self.text(item) for item in loop.items]
        else:
            # `for x in $list`: the value split on commas and blanks.
            items = self.text(loop.source or "").replace(",", " ").split()
        had = loop.var in self.values
        before = self.values.get(loop.var)
        try:
            for item in items:
                self.values[loop.var] = item
                self.block(loop.body)
        finally:
            if had and before is not None:
                self.values[loop.var] = before
            else:
                self.values.pop(loop.var, None)

    def words(self, verb: Verb) -> list[str]:
        # Options first: the planners split them out again wherever they stand, and
        # `just` wants its NAME=VALUE overrides before the recipe.
        out = []
        for key, value in verb.kwargs.items():
            if isinstance(value, tuple):
                items = ", ".join(_quote_item(self.text(v)) for v in value)
                out.append(f"{key}=[{items}]")
            else:
                out.append(f"{key}={self.text(value)}")
        return out + [self.text(arg) for arg in verb.args]

    def verb(self, verb: Verb) -> None:
        if verb.name == "compile":
            self.compile(verb)
            return
        from pf.tasks import HELPER_VERBS, SYSTEM_VERBS

        planner = HELPER_VERBS.get(verb.name) or SYSTEM_VERBS.get(verb.name)
        if planner is None:  # pragma: no cover - the parser only builds known verbs
            raise UsageError(f"`{verb.name}` cannot run here")
        plan = planner(self.words(verb), self.context())
        self.run_plan(plan, verb.span, echo_steps=True)

    def compile(self, verb: Verb) -> None:
        hook = self.executor.compile
        if hook is None:
            raise UsageError("`compile` is not available here: pf was started without the engine")
        root = self.executor.root
        options = {
            k: ",".join(self.text(i) for i in v) if isinstance(v, tuple) else self.text(v)
            for k, v in verb.kwargs.items()
        }
        patterns = [self.text(a) for a in verb.args]
        shown = " ".join([*patterns, *(f"{k}={v}" for k, v in options.items())])
        self.reporter.echo(self.name, f"compile {shown}")
        sources = _expand_sources(patterns, root)
        target = options.pop("target", "") or "wasm"
        out = os.path.join(root, options.pop("out", "") or ".")
        language = options.pop("language", "") or options.pop("lang", "") or None
        jobs_text = options.pop("jobs", "")
        jobs = int(jobs_text) if jobs_text.isdigit() and int(jobs_text) > 0 else None
        call = CompileCall(sources, language, target, out, options, root, jobs)
        for line in hook(call):
            self.reporter.line(self.name, "stdout", line)


def _sudo(task: Task, params: Mapping[str, str]) -> tuple[str, ...] | None:
    """sudo's user options for ``sudo=true [sudo_user=U]`` on the command line, else None.

    The original pf's host options; a task that declares such a parameter keeps it.
    """
    declared = {p.name for p in task.params}
    user = params.get("sudo_user") if "sudo_user" not in declared else None
    wanted = params.get("sudo", "").strip().lower() in ("1", "true", "yes", "on")
    if "sudo" in declared or not (wanted or user):
        return None
    return ("-u", user) if user else ()


def _quote_item(text: str) -> str:
    return f'"{text}"' if ("," in text or " " in text) and '"' not in text else text


def _language_of_file(path: str) -> str:
    """The polyglot language for ``shell @file`` without a tag: by suffix, else bash."""
    from pf.tasks.polyglot import LANGUAGES

    suffix = os.path.splitext(path)[1].lower()
    for lang in LANGUAGES:
        if lang.suffix == suffix and lang.name != "sh":
            return lang.name
    return "bash"


def _expand_sources(patterns: list[str], root: str) -> list[str]:
    """Absolute paths of the files ``compile``'s patterns name, in pattern then name order."""
    import glob

    out: list[str] = []
    for pattern in patterns:
        if any(c in pattern for c in "*?["):
            found = sorted(glob.glob(pattern, root_dir=root, recursive=True))
            if not found:
                raise UsageError(
                    f"compile: no file matches `{pattern}`",
                    hint=f"patterns are relative to {root}",
                )
        else:
            found = [pattern]
        for name in found:
            path = os.path.normpath(os.path.join(root, name))
            if not os.path.isfile(path):
                raise UsageError(f"compile: `{name}` is not a file", hint=f"looked in {root}")
            if path not in out:
                out.append(path)
    return out
