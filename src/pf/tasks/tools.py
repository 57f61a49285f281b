"""The shared vocabulary of task verbs: plans, the tools they drive, their arguments, errors.

Every verb module (``polyglot``, ``helpers``, ``system``) is a set of pure functions from
plain values to a :class:`Plan`: data saying which files to write, which directories to
make or copy, and which argv lists to run, in order. Nothing here starts a process except
:func:`run_plan`, which applies a plan step by step (filesystem steps in-process, commands
through :func:`pf.sandbox.run`) and stops at the first failure, so a compiled snippet only
runs if it compiled and ``cmake --build`` only runs if configuring worked.

Tools are looked up on the task's own ``PATH`` (the environment the executor hands over),
so what pf finds is what the command will run; a missing tool raises :class:`ToolMissing`
with the exact install command. Imports sandbox, config and errors only.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from pf.config import Settings
from pf.dsl.suggest import MAX_DISTANCE, distance
from pf.errors import PfError, ToolchainMissing, UsageError
from pf.sandbox import Completed, Limits, LineSink, run, run_attached

# ---------------------------------------------------------------------------- errors


class TaskError(PfError):
    """A task verb could not do its work (not a failing command: that has its own code)."""

    code = "task-error"


class BadArgument(UsageError):
    """A verb was given an argument it cannot use (``jobs=many``, ``packages frobnicate``)."""

    code = "bad-argument"


class UnknownLanguage(UsageError):
    """``shell [lang:X]`` / ``shell_lang X`` names no language pf knows."""

    code = "unknown-language"

    def __init__(self, name: str, known: Sequence[str], close: Sequence[str]) -> None:
        hint = f"did you mean {_quoted(close)}?" if close else f"known: {', '.join(known)}"
        super().__init__(f"unknown language {name!r}", hint=hint)
        self.name = name


class ToolMissing(ToolchainMissing):
    """A verb needs a program that is not installed; the hint is the command that installs it."""

    code = "tool-missing"

    def __init__(self, tool: str, needed_for: str, install: str, reason: str = "") -> None:
        super().__init__(tool, reason or f"not found on PATH (needed for {needed_for})", install)
        self.tool = tool


class NoBuildSystem(TaskError):
    code = "no-build-system"


class StepFailed(TaskError):
    """An in-process step (mkdir, copy, chown, writing a file) failed."""

    code = "step-failed"


def _quoted(names: Sequence[str]) -> str:
    return " or ".join(repr(n) for n in names)


# ------------------------------------------------------------------- did you mean


def suggest(word: str, choices: Iterable[str], limit: int = 3) -> list[str]:
    """Choices within edit distance 2 of ``word``, closest first."""
    scored = sorted((distance(word.lower(), c.lower()), c) for c in set(choices))
    return [c for d, c in scored if d <= MAX_DISTANCE][:limit]


# -------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class Run:
    """Run ``argv`` in ``cwd`` with exactly ``env`` (the task's exported environment)."""

    argv: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str] = field(repr=False)

    def describe(self) -> str:
        return shlex.join(self.argv)


@dataclass(frozen=True)
class WriteFile:
    """Write ``text`` to ``path`` (parents created), e.g. a polyglot snippet into scratch."""

    path: Path
    text: str
    mode: int = 0o644

    def describe(self) -> str:
        return f"write {self.path}"


@dataclass(frozen=True)
class MakeDir:
    """``mkdir -p path``, then ``chmod mode`` if a mode is given (also when it existed)."""

    path: Path
    mode: int | None = None

    def describe(self) -> str:
        mode = f" -m {self.mode:o}" if self.mode is not None else ""
        return f"mkdir -p{mode} {shlex.quote(str(self.path))}"


@dataclass(frozen=True)
class CopyPath:
    """Copy a file or a directory tree like ``cp -r``; into ``dst`` if it is a directory.

    Missing parents of the destination are created. ``mode`` and ``user``/``group`` apply
    to the copied top-level path.
    """

    src: Path
    dst: Path
    mode: int | None = None
    user: str | None = None
    group: str | None = None

    def describe(self) -> str:
        extra = f" (mode {self.mode:o})" if self.mode is not None else ""
        if self.user or self.group:
            extra += f" (owner {self.user or ''}:{self.group or ''})"
        return f"copy {shlex.quote(str(self.src))} {shlex.quote(str(self.dst))}{extra}"


@dataclass(frozen=True)
class Say:
    """A line pf itself prints as task output (``build_detect``, autobuild's choice)."""

    text: str

    def describe(self) -> str:
        return f"# {self.text}"


Step = Run | WriteFile | MakeDir | CopyPath | Say


@dataclass(frozen=True)
class Plan:
    """What one verb does, as data: steps applied in order, stopping at the first failure."""

    steps: tuple[Step, ...] = ()

    @property
    def runs(self) -> list[Run]:
        return [s for s in self.steps if isinstance(s, Run)]

    @property
    def argvs(self) -> list[list[str]]:
        """Every command's argv, in order (what tests and dry runs look at)."""
        return [list(s.argv) for s in self.runs]

    def __add__(self, other: Plan) -> Plan:
        return Plan(self.steps + other.steps)


@dataclass(frozen=True)
class Context:
    """Where a verb runs: working directory, the exported environment, pf's settings.

    ``env`` is the complete environment of every command the plan runs (the executor has
    already merged process env < file env < defaults < task env < params), and its
    ``PATH`` is where tools are looked up.
    """

    cwd: Path
    env: Mapping[str, str]
    settings: Settings = field(default_factory=Settings)
    #: Whether the commands run as root: pf is root, or the task runs with ``sudo=true``.
    privileged: bool = field(default_factory=lambda: os.geteuid() == 0)

    @property
    def path(self) -> str:
        # Exactly where the sandboxed process will look (Popen searches env's PATH).
        return self.env.get("PATH", os.defpath)

    def resolve(self, path: str | Path) -> Path:
        """``path`` relative to this context's working directory; ``~`` is the task's HOME."""
        text = str(path)
        home = self.env.get("HOME")
        if home and (text == "~" or text.startswith("~/")):
            text = home + text[1:]
        return self.cwd / text

    def at(self, path: str | Path) -> Context:
        """The same context with its working directory moved to ``path``."""
        return replace(self, cwd=self.resolve(path))

    def command(self, argv: Sequence[str], cwd: Path | None = None, **extra_env: str) -> Run:
        env = {**self.env, **extra_env} if extra_env else self.env
        return Run(tuple(argv), cwd if cwd is not None else self.cwd, env)


VerbPlanner = Callable[[Sequence[str], Context], Plan]
"""A Pfyfile verb's planner: its (already interpolated) words and the context → a plan."""


# -------------------------------------------------------------------------- tools

_APT = "apt-get install -y"


@dataclass(frozen=True)
class Tool:
    """A program a verb drives: where to look for it and how to install it.

    ``candidates`` are tried in order: bare names on the task's PATH, then absolute
    paths (``$HOME`` expands from the task env), e.g. rustup's cargo when PATH lacks it.
    """

    name: str
    candidates: tuple[str, ...]
    install: str

    @classmethod
    def apt(cls, name: str, package: str | None = None, *candidates: str) -> Tool:
        return cls(name, candidates or (name,), f"{_APT} {package or name}")


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find_tool(tool: Tool, ctx: Context, needed_for: str = "") -> str:
    """The argv[0] that runs ``tool`` in ``ctx``: a bare name when PATH finds it.

    A bare name keeps echoed commands readable and is exactly what the process will
    execute, because the sandbox resolves argv[0] on the same ``env["PATH"]``.
    ``PF_TOOL_<NAME>`` (``Settings.tools``) pins a binary and wins over the search.
    """
    why = needed_for or tool.name
    pinned = ctx.settings.tools.get(tool.name)
    if pinned:
        found = pinned if os.path.isabs(pinned) else shutil.which(pinned, path=ctx.path)
        if found and _executable(found):
            return pinned
        env_name = "PF_TOOL_" + tool.name.upper().replace("-", "_").replace("+", "X")
        raise ToolMissing(tool.name, why, tool.install, f"{env_name}={pinned} is not executable")
    home = ctx.env.get("HOME", "")
    for candidate in tool.candidates:
        if "/" not in candidate:
            if shutil.which(candidate, path=ctx.path):
                return candidate
            continue
        expanded = candidate.replace("$HOME", home) if home else candidate
        if "$HOME" not in expanded and _executable(expanded):
            return expanded
    raise ToolMissing(tool.name, why, tool.install)


# ---------------------------------------------------------------------- arguments

_OPTION = re.compile(r"^(?:--)?([A-Za-z_][A-Za-z0-9_.-]*)=(.*)$", re.DOTALL)
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


@dataclass(frozen=True)
class Args:
    """A verb's words split into positionals and ``key=value`` options (in order)."""

    positional: tuple[str, ...]
    options: Mapping[str, str]

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.options.get(key, default)

    def extra(self, known: Iterable[str]) -> dict[str, str]:
        """Options that are not ``known`` (make variables, ``-D`` defines, ...)."""
        skip = set(known)
        return {k: v for k, v in self.options.items() if k not in skip}


def split_args(words: Sequence[str]) -> Args:
    """Split ``words`` into positionals and options; ``--key=value`` equals ``key=value``.

    A list value the lexer may have split at spaces (``excludes=["a", "b"]``) is
    joined back until its closing bracket.
    """
    positional: list[str] = []
    options: dict[str, str] = {}
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        match = _OPTION.match(word)
        if match is None:
            positional.append(word)
            continue
        key, value = match.groups()
        if value.startswith("[") and not value.rstrip().endswith("]"):
            while index < len(words):
                value += " " + words[index]
                index += 1
                if value.rstrip().endswith("]"):
                    break
        options[key] = value
    return Args(tuple(positional), options)


def parse_bool(verb: str, key: str, value: str | None, default: bool = False) -> bool:
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise BadArgument(f"{verb}: {key} must be true or false, got {value!r}")


def parse_jobs(verb: str, value: str | None) -> int | None:
    """``jobs=N`` as a positive int, or None when absent."""
    if value is None or value == "":
        return None
    try:
        jobs = int(value)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise BadArgument(f"{verb}: jobs must be a positive integer, got {value!r}")
    return jobs


def parse_mode(verb: str, value: str | None) -> int | None:
    """An octal permission mode (``0755``, ``755``, ``0o755``), or None when absent."""
    if value is None or value == "":
        return None
    text = value.lower().removeprefix("0o")
    if not re.fullmatch(r"[0-7]{1,4}", text):
        raise BadArgument(f"{verb}: mode must be octal like 0755, got {value!r}")
    return int(text, 8)


def parse_list(value: str | None) -> list[str]:
    """``[a, "b c"]``, ``a,b`` or a single word as a list of strings."""
    if value is None:
        return []
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    items = []
    for part in text.split(","):
        item = part.strip()
        if len(item) >= 2 and item[0] == item[-1] and item[0] in "\"'":
            item = item[1:-1]
        if item:
            items.append(item)
    return items


# ------------------------------------------------------------------------ running

# Task commands run as long as the user wants (dev servers) and may need large address
# spaces (node and go reserve tens of GiB of virtual memory); only capture stays capped.
TASK_LIMITS = Limits(timeout=None, memory=None, file_size=None, processes=None)
#: The exit code of a plan stopped by its ``cancel`` Event before a step (as for SIGINT).
CANCELLED_CODE = 130

StepSink = Callable[[Step], None]


@dataclass(frozen=True)
class PlanResult:
    """How a plan ended: ``code`` 0 or the failing command's exit code."""

    code: int
    completed: tuple[Completed, ...] = ()
    failed: Step | None = None

    @property
    def ok(self) -> bool:
        return self.code == 0


def exit_code(done: Completed) -> int:
    """A shell-style exit code: 128+N for a signal, 124 for pf's timeout."""
    if done.timed_out:
        return 124
    return 128 - done.code if done.code < 0 else done.code


def _apply(step: WriteFile | MakeDir | CopyPath) -> None:
    if isinstance(step, WriteFile):
        step.path.parent.mkdir(parents=True, exist_ok=True)
        step.path.write_text(step.text, encoding="utf-8")
        step.path.chmod(step.mode)
    elif isinstance(step, MakeDir):
        step.path.mkdir(parents=True, exist_ok=True)
        if step.mode is not None:
            step.path.chmod(step.mode)
    else:
        target = step.dst / step.src.name if step.dst.is_dir() else step.dst
        target.parent.mkdir(parents=True, exist_ok=True)
        if step.src.is_dir():
            shutil.copytree(step.src, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(step.src, target)
        if step.mode is not None:
            target.chmod(step.mode)
        if step.user is not None and step.group is not None:
            shutil.chown(target, step.user, step.group)
        elif step.user is not None:
            shutil.chown(target, user=step.user)
        elif step.group is not None:
            shutil.chown(target, group=step.group)


def run_plan(
    plan: Plan,
    *,
    limits: Limits = TASK_LIMITS,
    on_line: LineSink | None = None,
    on_step: StepSink | None = None,
    cancel: threading.Event | None = None,
    attached: bool = False,
) -> PlanResult:
    """Apply ``plan`` in order; stop at the first failing command.

    ``on_step`` sees each step before it runs (the executor echoes ``describe()``),
    ``on_line`` gets every output line live. A filesystem step that fails raises
    :class:`StepFailed`; a command that fails ends the plan with its exit code.
    Setting ``cancel`` kills the running command's process group and starts no
    further step (pf serve's cancel of a task run). ``attached`` runs commands on
    pf's own stdin, stdout and stderr instead (:func:`pf.sandbox.run_attached`: the
    CLI running one task at a time); ``on_line`` then gets only pf's own lines.
    """
    if attached and cancel is not None:
        raise ValueError("an attached plan cannot be cancelled: its user is at the terminal")
    completed: list[Completed] = []
    for step in plan.steps:
        if cancel is not None and cancel.is_set():
            return PlanResult(CANCELLED_CODE, tuple(completed), step)
        if on_step is not None:
            on_step(step)
        if isinstance(step, Say):
            if on_line is not None:
                on_line("stdout", step.text)
        elif isinstance(step, Run):
            if attached:
                done = run_attached(step.argv, cwd=step.cwd, env=step.env, limits=limits)
            else:
                done = run(
                    step.argv,
                    cwd=step.cwd,
                    env=step.env,
                    limits=limits,
                    on_line=on_line,
                    cancel=cancel,
                )
            completed.append(done)
            if not done.ok:
                return PlanResult(exit_code(done), tuple(completed), step)
        else:
            try:
                _apply(step)
            except (OSError, LookupError) as exc:
                raise StepFailed(f"{step.describe()}: {exc}") from exc
    return PlanResult(0, tuple(completed))
