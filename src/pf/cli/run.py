"""``pf TASK [params] [TASK2 ...]``, ``pf list``, ``pf help TASK``: the task runner's command line.

Owns finding the Pfyfile (``-f/--file``, ``PFY_FILE``, the legacy ``pf other.pf TASK``,
else ``Pfyfile.pf`` in the working directory or the nearest parent), pf's global
options, listing and describing tasks, and reporting a run (echoed commands in
colour on a terminal, a summary, the failing line). Resolving names and parameters
is :mod:`pf.tasks.params`; running is :mod:`pf.tasks.executor`.

This is the start path of ``pf list`` and of every task run (budget: ``pf list``
within 60 ms and 2.5x a bare interpreter), so at load time it imports only pf.dsl,
pf.errors and the standard library's cheapest modules; argparse, typing, Settings,
the verb modules and the engine are imported where they are first needed.
"""

from __future__ import annotations

import os
import sys

from pf.errors import UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~5 ms)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import TextIO

    from pf.cli.listing import Entry
    from pf.dsl.errors import DslError
    from pf.dsl.model import Pfyfile, Task
    from pf.dsl.source import Span
    from pf.tasks.executor import CompileCall, Outcome, Reporter

PFYFILE = "Pfyfile.pf"
#: pf's own commands that no task can shadow.
ALWAYS_PF = ("list", "help", "completion")


class Globals:
    """pf's options given before the command or first task."""

    __slots__ = ("fail_fast", "file", "force", "help", "jobs", "version")

    def __init__(self) -> None:
        self.file: str | None = None
        self.jobs: int | None = None
        self.force = False
        self.fail_fast = False
        self.help = False
        self.version = False


def split_globals(args: Sequence[str]) -> tuple[Globals, list[str]]:
    """Leading ``-f FILE``, ``-j N``, ``--force``, ``-h``, ``-V`` -> (Globals, the rest)."""
    options = Globals()
    at = 0
    n = len(args)
    while at < n:
        word = args[at]
        if word in ("-f", "--file"):
            if at + 1 >= n:
                raise UsageError(f"{word} needs a Pfyfile path")
            options.file = args[at + 1]
            at += 2
        elif word.startswith("--file="):
            options.file = word[len("--file=") :]
            at += 1
        elif word.startswith("-f") and len(word) > 2:
            options.file = word[2:]
            at += 1
        elif word in ("-j", "--jobs"):
            if at + 1 >= n:
                raise UsageError(f"{word} needs a number of parallel tasks")
            options.jobs = parse_jobs(args[at + 1])
            at += 2
        elif word.startswith("--jobs="):
            options.jobs = parse_jobs(word[len("--jobs=") :])
            at += 1
        elif word.startswith("-j") and len(word) > 2:
            options.jobs = parse_jobs(word[2:])
            at += 1
        elif word == "--force":
            options.force = True
            at += 1
        elif word == "--fail-fast":
            options.fail_fast = True
            at += 1
        elif word in ("-h", "--help"):
            options.help = True
            at += 1
        elif word in ("-V", "--version"):
            options.version = True
            at += 1
        elif word == "--":
            at += 1
            break
        elif word.startswith("-") and len(word) > 1:
            from pf.dsl.suggest import suggest

            known = ["--file", "--jobs", "--force", "--fail-fast", "--help", "--version"]
            guess = suggest(word, known)
            raise UsageError(
                f"unknown option `{word}`",
                hint=f"did you mean `{guess}`?" if guess else "run `pf --help` for pf's options",
            )
        else:
            break
    return options, list(args[at:])


def parse_jobs(text: str) -> int:
    # pf.tasks.params has the same rule; importing it here would load pf.dsl, which a
    # cached `pf list` never needs.
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise UsageError(f"-j/--jobs takes a positive number, got {text!r}")


def is_pfyfile_arg(word: str) -> bool:
    """The legacy ``pf other.pf TASK``: a first word ending in ``.pf`` or naming a file."""
    return word.endswith(".pf") or os.path.isfile(word)


# ------------------------------------------------------------------ discovery


def find_pfyfile(explicit: str | None) -> str | None:
    """The Pfyfile to use: ``explicit`` (``-f``), else ``PFY_FILE``, else the nearest one.

    The search starts in the working directory and walks up its parents. The path is
    returned relative to the working directory when that is shorter, because it is
    what every error message and ``pf list`` show.
    """
    if explicit is None:
        from pf._environ import pfy_file

        explicit = pfy_file()
    if explicit is not None:
        return explicit
    cwd = os.getcwd()
    directory = cwd
    while True:
        candidate = os.path.join(directory, PFYFILE)
        if os.path.isfile(candidate):
            relative = os.path.relpath(candidate, cwd)
            return relative if len(relative) < len(candidate) else candidate
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def load(options: Globals) -> Pfyfile:
    """Find and parse the Pfyfile; a usage error when there is none."""
    from pf.dsl import parse_file

    return parse_file(find_or_fail(options), keep_going=True)


def blame(pfyfile: Pfyfile, words: Sequence[str]) -> DslError | None:
    """The error of the file left out of the load that a name in ``words`` would be in.

    A word naming the group of a broken ``Pfyfile.<group>.pf`` (``web``, ``web:x``)
    blames that file; any other name blames the main file, if it is the broken one.
    """
    from pf.dsl.analyzer import group_of

    broken = {
        None if path == pfyfile.path else group_of(path): error
        for path, error in pfyfile.errors.items()
    }
    for word in words:
        group = word.rpartition(":")[0] or word
        if group in broken:
            return broken[group]
    return broken.get(None)


def has_task(name: str, options: Globals) -> bool:
    """True when the Pfyfile in force defines a main-scope task (or alias) ``name``.

    Decides ``pf build``/``pf compile``/``pf toolchains``: a task of that name wins
    over the built-in command (users' Pfyfiles commonly have a ``build`` task). A
    missing Pfyfile means no such task. A broken one raises its error only if its
    text has a ``task NAME`` line, so ``pf compile x.c`` still works while an
    unrelated Pfyfile is half edited.
    """
    from pf.cli import listing
    from pf.dsl.errors import DslError

    path = find_pfyfile(options.file)
    if path is None or not os.path.isfile(path):
        return False
    try:
        found = listing.load(path)
        if found.find(None, name) is not None:
            return True
        # A main file left out of the load: its error below, if it meant to define `name`.
        for p, error in found.errors.items():
            if os.path.abspath(p) == found.path:
                raise error
        return False
    except DslError:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                if any(line.split()[:2] == ["task", name] for line in handle):
                    raise
        except OSError:
            pass
        return False


# ------------------------------------------------------------------ pf list


def _style(text: str, colour: str, stream: TextIO | None = None) -> str:
    from pf.cli.output import style

    return style(text, colour, stream or sys.stdout)


def _quote(value: str) -> str:
    return f'"{value}"' if (not value or " " in value or '"' in value) else value


def _where(path: str, cwd: str | None = None) -> str:
    """``path`` relative to the working directory (``cwd`` if given) when that is shorter."""
    here = os.getcwd() if cwd is None else cwd
    inside = here.rstrip("/") + "/"
    if path.startswith(inside) and "/." not in path and "//" not in path:
        # The usual case, and pf list's for every file of a folder: relpath would
        # normalise both paths (a getcwd, two abspaths) to find this prefix again.
        # (A "." or ".." part, or a doubled slash, takes the general way.)
        relative = path[len(inside) :]
    else:
        relative = os.path.relpath(path, here)
    return relative if len(relative) < len(path) else path


def find_or_fail(options: Globals) -> str:
    """The Pfyfile's path, or a usage error saying where pf looked."""
    path = find_pfyfile(options.file)
    if path is None:
        raise UsageError(
            f"no {PFYFILE} in {os.getcwd()} or any parent directory",
            hint="create one, or name one with -f FILE or PFY_FILE=FILE",
        )
    if os.path.isdir(path):
        raise UsageError(
            f"Pfyfile `{path}` is a directory",
            hint=f"name the file: -f {os.path.join(path, PFYFILE)}",
        )
    if not os.path.exists(path):
        raise UsageError(f"Pfyfile `{path}` does not exist")
    # Anything else that can be read will do: `-f /dev/null`, `-f <(generate-tasks)`.
    return path


def _problems(errors: dict[str, DslError], warnings: Sequence[DslError]) -> None:
    """Each file left out of the load and each warning, rendered on stderr."""
    if errors or warnings:
        from pf.cli.output import show_error

        for problem in [*errors.values(), *warnings]:
            show_error(problem)


def list_json(options: Globals) -> int:
    """``pf list --json``: every task as data, in definition order; problems on stderr."""
    import json

    from pf.dsl.model import display_name

    pfyfile = load(options)
    out = [
        {
            "name": task.name,
            "group": task.group,
            "file": os.path.abspath(task.file),
            "line": task.span.line,
            "description": task.describe,
            "params": task.defaults(),
            "aliases": list(task.aliases),
            "needs": [display_name(key) for key in task.needs],
        }
        for task in pfyfile.tasks.values()
    ]
    sys.stdout.write(json.dumps(out, indent=2) + "\n")
    _problems(pfyfile.errors, pfyfile.warnings)
    return 2 if pfyfile.path in pfyfile.errors else 0


def list_command(args: Sequence[str], options: Globals) -> int:
    """``pf list [GROUP] [--names] [--json]``: tasks by file and group, params, descriptions.

    Files that cannot be loaded and warnings are shown on stderr after the listing;
    the status is 2 only when the main Pfyfile itself was left out.
    """
    from pf.cli import listing as cache

    if "--json" in args:
        return list_json(options)
    names_only = "--names" in args
    wanted = [a for a in args if a != "--names"]
    # Read from the listing cache when the Pfyfile is unchanged: parsing 500 tasks costs
    # more than this command's whole budget.
    listing = cache.load(find_or_fail(options))
    code = 2 if listing.path in {os.path.abspath(p) for p in listing.errors} else 0
    if names_only:
        out = listing.names(None) + listing.groups
        out += [f"{g}:{n}" for g in listing.groups for n in listing.names(g)]
        sys.stdout.write("".join(f"{name}\n" for name in out))
        return code
    for name in wanted:
        if name not in listing.groups:
            from pf.dsl.analyzer import group_of

            for path, error in listing.errors.items():
                if group_of(path) == name:
                    raise error  # the group's file was left out: say why
            from pf.dsl.suggest import suggest

            guess = suggest(name, listing.groups)
            raise UsageError(
                f"no group `{name}`",
                hint=f"did you mean `{guess}`?"
                if guess
                else "groups: " + (", ".join(listing.groups) or "none"),
            )
    sections: dict[tuple[str | None, str], list[Entry]] = {}
    for entry in listing.entries:
        if wanted and entry.group not in wanted:
            continue
        # Main-scope tasks are grouped by the file that defines them; a group's by group.
        key = (entry.group, entry.file if entry.group is None else "")
        sections.setdefault(key, []).append(entry)
    stream = sys.stdout
    from pf.cli.output import style

    # Colour is decided once: asking the terminal for each of 500 tasks shows up in the
    # time of `pf list`.
    colour = style("x", "bold", stream) != "x"

    def paint(text: str, name: str) -> str:
        return style(text, name, stream) if colour else text

    lines: list[str] = []
    width = 0
    rows: list[tuple[str, str, str]] = []
    cwd = os.getcwd()
    for (group, file), entries in sections.items():
        if group is None:
            heading = paint(_where(file, cwd), "bold")
        else:
            heading = paint(f"group {group}", "bold") + f"  ({_where(entries[0].file, cwd)})"
        rows.append(("", "", heading))
        for entry in entries:
            head = entry.name
            params = " ".join(k if d is None else f"{k}={_quote(d)}" for k, d in entry.params)
            left = f"{head} {params}" if params else head
            width = max(width, len(left))
            about = entry.describe
            if entry.aliases:
                alias = "alias " + ", ".join(entry.aliases)
                about = f"{about}  [{alias}]" if about else f"[{alias}]"
            rows.append((head, params, about))
    width = min(width, 44)
    first = True
    for head, params, about in rows:
        if not head:
            if not first:
                lines.append("")
            lines.append(about)
            first = False
            continue
        left = f"{head} {params}" if params else head
        pad = " " * (width - len(left))
        shown = paint(head, "cyan") + (f" {paint(params, 'dim')}" if params else "")
        lines.append(f"  {shown}{pad}  {about}".rstrip())
    if not listing.entries:
        lines.append(f"{_where(listing.path)}: no tasks")
    stream.write("\n".join(lines) + "\n")
    stream.flush()  # the listing before the problems, when both go to one terminal
    _problems(listing.errors, listing.warnings)
    return code


# ------------------------------------------------------------------ pf help TASK


def describe_task(task: Task) -> str:
    """One task in full, for ``pf help TASK`` and ``pf TASK --help``."""
    from pf.dsl.model import display_name

    stream = sys.stdout
    call = task.name if task.group is None else f"{task.group} {task.name}"
    where = f"{_where(task.file)}:{task.span.line}"
    lines = [f"{_style(display_name(task.key), 'bold', stream)}  ({where})"]
    if task.describe:
        lines += [f"  {line}" for line in task.describe.split("\n")]
    usage = " ".join(
        f"[{p.name}={_quote(p.default)}]" if p.default is not None else f"[{p.name}=VALUE]"
        for p in task.params
    )
    lines += ["", f"usage: pf {call}" + (f" {usage}" if usage else "")]
    meta = task.meta
    fields = [
        ("synopsis", meta.synopsis),
        ("aliases", ", ".join(task.aliases)),
        ("needs", ", ".join(display_name(k) for k in task.needs)),
        ("sources", " ".join(task.sources)),
        ("generates", " ".join(task.generates)),
        ("tags", ", ".join(meta.tags)),
    ]
    lines += [f"{name}: {value}" for name, value in fields if value]
    if task.params:
        lines.append("parameters (any form: k=v, --k=v, --k v, -k v for one letter):")
        for p in task.params:
            default = f"default {_quote(p.default)}" if p.default is not None else "no default"
            lines.append(f"  {p.name:<16} {default}")
    for title, items in (("examples", meta.examples), ("notes", meta.notes)):
        if items:
            lines.append(f"{title}:")
            lines += [f"  {item}" for item in items]
    lines += ["", *(f"  {line}" for line in _source_lines(task))]
    return "\n".join(lines)


def _source_lines(task: Task) -> list[str]:
    """The task as written: from its header to its last ``end`` before the next top-level item."""
    text = task.span.source.text.split("\n")
    out: list[str] = []
    for line in text[task.span.line - 1 :]:
        if out and line[:1] not in ("", " ", "\t", "#", "}") and line.split()[:1] != ["end"]:
            break  # an unindented word other than `end` starts the next item
        out.append(line.rstrip())
    while out and out[-1].strip() != "end":
        out.pop()
    return out or task.dump_lines()


def help_command(args: Sequence[str], options: Globals) -> int:
    """``pf help [TASK...]``: tasks in full; without a task, pf's usage."""
    if not args:
        from pf.cli.main import usage

        print(usage())
        return 0
    from pf.cli.main import COMMANDS

    if len(args) == 1 and args[0] in COMMANDS and not has_task(args[0], options):
        from pf.cli.main import load_command

        return load_command(args[0])(["--help"])
    pfyfile = load(options)
    from pf.tasks.params import resolve_task

    shown: list[str] = []
    at = 0
    while at < len(args):
        try:
            task, at = resolve_task(pfyfile, args, at, ALWAYS_PF)
        except UsageError as unknown:
            raise blame(pfyfile, args[at : at + 2]) or unknown from None
        shown.append(describe_task(task))
    print("\n\n".join(shown))
    return 0


# ------------------------------------------------------------------ pf TASK ...


def _reporter(prefix: bool) -> Reporter:
    from pf.cli.output import style
    from pf.tasks.executor import Reporter

    class Painted(Reporter):
        """Echoed commands in cyan and skips dimmed, on a terminal only (NO_COLOR wins)."""

        def paint(self, text: str, colour: str, stream: TextIO) -> str:
            return style(text, "cyan" if colour == "cmd" else "dim", stream)

    # One task at a time: commands get pf's own terminal, stdin and output, as in make.
    return Painted(prefix, attach=not prefix)


def _compile(call: CompileCall) -> list[str]:
    # The engine and the toolchain drivers load only when a task reaches `compile`.
    from pf.engine.taskcompile import compile_hook

    return compile_hook(call)


def _snippet(span: Span, stream: TextIO) -> list[str]:
    """``--> file:line:col`` and the source line with carets, as pf.dsl.render lays out."""
    line = span.source.line_text(span.line).expandtabs(4)
    width = len(str(span.line))
    pad = " " * width
    start = min(max(span.col - 1, 0), len(line))
    carets = max(min(span.length, len(line) - start), 1)
    bar = _style("|", "cyan", stream)
    return [
        f"{pad}{_style('-->', 'cyan', stream)} {span.path}:{span.line}:{span.col}",
        f"{pad} {bar}",
        f"{_style(str(span.line), 'cyan', stream)} {bar} {line}",
        f"{pad} {bar} {' ' * start}{_style('^' * carets, 'red', stream)}",
    ]


def report_failure(outcome: Outcome) -> None:
    """What failed and where: pf's error (if pf raised one) and the line of the Pfyfile."""
    from pf.cli.output import show_error

    failure = outcome.failure
    if failure is None:
        return
    err = sys.stderr
    if failure.error is not None:
        show_error(failure.error, err)
        lines = [f"{_style('note', 'cyan', err)}: in task `{failure.task}`"]
    else:
        lines = [
            f"{_style('error', 'red', err)}: task `{failure.task}` failed: "
            f"a command exited with code {failure.code}"
        ]
    # A Pfyfile error raised at run time already showed its own line.
    if failure.span is not None and getattr(failure.error, "span", None) is None:
        lines += _snippet(failure.span, err)
    err.write("\n".join(lines) + "\n")


def summary(outcome: Outcome) -> str:
    """``pf: 2 run, 1 skipped (up to date), 0 failed in 0.41 s``."""
    text = (
        f"pf: {len(outcome.ran)} run, {len(outcome.skipped)} skipped (up to date), "
        f"{len(outcome.failed)} failed in {outcome.seconds:.2f} s"
    )
    return _style(text, "red" if outcome.failed else "green", sys.stderr)


def run_tasks(args: Sequence[str], options: Globals) -> int:
    """``pf TASK [params] [TASK2 [params]...]``: run tasks in order; the exit code of a failure."""
    from pf.tasks.params import Flags, parse_invocations

    try:
        pfyfile = load(options)
    except UsageError:
        if options.file is None and find_pfyfile(None) is None:
            raise _unknown_command(args[0]) from None
        raise
    flags = Flags(
        force=options.force, jobs=options.jobs, help=options.help, fail_fast=options.fail_fast
    )
    warnings: list[str] = []
    from pf.cli.main import COMMANDS

    extra = [*ALWAYS_PF, *COMMANDS]
    try:
        invocations = parse_invocations(pfyfile, args, flags, extra_names=extra, warnings=warnings)
    except UsageError as unknown:
        # A task of a file left out of the load is unknown: show why that file was.
        raise blame(pfyfile, args) or unknown from None
    for warning in warnings:
        print(f"{_style('warning', 'yellow', sys.stderr)}: {warning}", file=sys.stderr)
    if flags.help:
        print("\n\n".join(describe_task(i.task) for i in invocations))
        return 0
    from pf._environ import environ
    from pf.tasks.executor import Executor

    jobs = flags.jobs or 1
    _exit_on_sigterm()
    executor = Executor(
        pfyfile,
        environ=environ(),
        reporter=_reporter(jobs > 1),
        compile=_compile,
        jobs=jobs,
        force=flags.force,
        fail_fast=flags.fail_fast,
    )
    outcome = executor.run(invocations)
    report_failure(outcome)
    print(summary(outcome), file=sys.stderr)
    return outcome.code


def _exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so the sandbox's cleanup kills the running command's group.

    Commands run in their own sessions (pf.sandbox), where a signal sent to pf does not
    reach them; without this, ``kill PID`` on a ``pf web-dev`` would leave the server
    running.
    """
    import signal

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)


def _unknown_command(name: str) -> UsageError:
    from pf.cli.main import COMMANDS
    from pf.dsl.suggest import suggest

    guess = suggest(name, [*ALWAYS_PF, *COMMANDS])
    # Quoted as the other commands quote names (tests/cli/test_compile_cli.py).
    return UsageError(
        f"unknown command {name!r} (and no {PFYFILE} here or in a parent to hold such a task)",
        hint=f"did you mean {guess!r}?"
        if guess
        else "run 'pf --help' for pf's commands; tasks come from a Pfyfile.pf",
    )


def completion_command(args: Sequence[str], options: Globals) -> int:
    from pf.cli.completion import command

    return command(args)


#: ``pf list``, ``pf help`` and ``pf completion``: always pf's own.
BUILTINS: dict[str, Callable[[Sequence[str], Globals], int]] = {
    "list": list_command,
    "help": help_command,
    "completion": completion_command,
}
