"""One run of one task's body: its live values, its statements, its scratch folder.

:class:`TaskRun` walks a task's statements in order: ``env`` updates the values,
``if``/``for`` choose and repeat, ``shell`` and the verbs become plans of
:mod:`pf.tasks.polyglot`, :mod:`pf.tasks.helpers` and :mod:`pf.tasks.system` run
through the sandbox, ``compile`` goes to the engine's hook (:class:`CompileCall`), and
a line loaded only with a warning (:class:`pf.dsl.ast.Unrunnable`) stops the run at
its position. The first failure raises :class:`Stop`, which the executor reports.
Like the executor, this module imports only pf.dsl and light standard modules at
load time.
"""

from __future__ import annotations

import os

from pf.dsl.ast import Env, For, If, Shell, ShellLang, Unrunnable, Verb
from pf.dsl.errors import DslError
from pf.dsl.interpolate import interpolate
from pf.errors import PfError, UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~5 ms)
if TYPE_CHECKING:
    import threading
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from pf.dsl.ast import Statement, Test
    from pf.dsl.model import Task
    from pf.dsl.source import Span
    from pf.tasks.executor import Executor
    from pf.tasks.remote import Session
    from pf.tasks.report import Reporter
    from pf.tasks.tools import Context, Plan, Step


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


class Stop(Exception):
    """A statement failed: unwinds the task's blocks to the executor."""

    def __init__(self, span: Span | None, code: int, error: PfError | None = None) -> None:
        super().__init__(code)
        self.span = span
        self.code = code
        self.error = error


class TaskRun:
    """One execution of one task's body: its live values, scratch directory and output."""

    def __init__(
        self,
        executor: Executor,
        name: str,
        values: dict[str, str],
        fixed: set[str],
        sudo: tuple[str, ...] | None = None,
        *,
        remote: Session | None = None,
        reporter: Reporter | None = None,
        halt: threading.Event | None = None,
    ) -> None:
        self.executor = executor
        self.name = name
        self.values = values
        # `sudo=true [sudo_user=U]`: every command of the task runs through sudo.
        self.sudo = sudo
        # Command-line parameters win over the task's own `env` lines (docs/pfyfile.md).
        self.fixed = fixed
        self.reporter = reporter or executor.reporter
        # On a remote host, commands go over this SSH session instead of the sandbox.
        self.remote = remote
        # Set when another host failed under --fail-fast: stop between statements.
        self.halt = halt
        # Attached only where nothing else runs at once and nobody may cancel the run.
        self.attached = (
            self.reporter.attach
            and not self.reporter.prefix
            and executor.cancel is None
            and remote is None
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
        # back until they exit; task output is meant to be live.
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
            raise Stop(span, result.code)

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
        halt = self.halt
        for statement in statements:
            if (cancel is not None and cancel.is_set()) or (halt is not None and halt.is_set()):
                # Checked per statement too: `env`, `if` and in-process verbs start no
                # process for the sandbox to kill.
                from pf.tasks.tools import CANCELLED_CODE

                raise Stop(statement.span, CANCELLED_CODE)
            try:
                self.statement(statement)
            except PfError as error:
                raise Stop(statement.span, error.exit_code, error) from error

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

        lang = stmt.lang
        if lang is not None and "$" in lang:
            lang = self.language(lang, stmt.span)
        if self.remote is not None:
            if stmt.file is not None or not is_default(lang):
                raise UsageError(
                    "on a remote host pf runs bash `shell` lines only",
                    hint="run this task on this machine, or write the step in bash",
                )
            self.reporter.echo(self.name, stmt.code)
            self.remote_command(stmt.code, stmt.span)
            return
        ctx = self.context()
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

    def exported(self) -> dict[str, str]:
        """The task's own values: what differs from the environment pf started with."""
        environ = self.executor.environ
        return {k: v for k, v in self.values.items() if environ.get(k) != v}

    def remote_command(self, command: str, span: Span | None) -> int:
        """Run ``command`` over the SSH session; Stop unless it exits 0 (``span`` None: ask)."""
        assert self.remote is not None
        code = self.remote.run(command, self.exported(), self.sudo, self._on_line)
        if code and span is not None:
            raise Stop(span, code)
        return code

    def test(self, test: Test) -> bool:
        if test.op == "cmd" and self.remote is not None:
            self.reporter.echo(self.name, test.left)
            return self.remote_command(test.left, None) == 0
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
        if self.remote is not None and verb.name != "sync":
            raise UsageError(
                f"`{verb.name}` runs on this machine only, not on a remote host",
                hint="write the step as a `shell` line to run it on the host",
            )
        if verb.name == "compile":
            self.compile(verb)
            return
        from pf.tasks import HELPER_VERBS, SYSTEM_VERBS

        words = self.words(verb)
        if self.remote is not None:
            # `sync` on a host: rsync from here to that host, as `sync host=...` would.
            host = self.remote.host
            given = {w.split("=", 1)[0] for w in words if "=" in w}
            words += [f"host={host.name}"] if "host" not in given else []
            words += [f"user={host.user}"] if host.user and "user" not in given else []
            words += [f"port={host.port}"] if host.port and "port" not in given else []
        planner = HELPER_VERBS.get(verb.name) or SYSTEM_VERBS.get(verb.name)
        if planner is None:  # pragma: no cover - the parser only builds known verbs
            raise UsageError(f"`{verb.name}` cannot run here")
        plan = planner(words, self.context())
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


def sudo_options(task: Task, params: Mapping[str, str]) -> tuple[str, ...] | None:
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
