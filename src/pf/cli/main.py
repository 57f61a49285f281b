"""Entry point: pick the subcommand or task, run it, turn every PfError into a message and code.

Subcommands are registered as import strings and imported only when chosen, so
``pf --help``, ``pf list`` and a task run never pay for modules they do not use.
Anything that is not a subcommand is a task of the Pfyfile (:mod:`pf.cli.run`).
``list``, ``help`` and ``completion`` are always pf's; for the commands in
:data:`COMMANDS`, a main-scope task of the same name in the Pfyfile wins (users'
Pfyfiles commonly have a ``build`` task).
"""

from __future__ import annotations

import os
import sys

from pf import __version__
from pf.errors import PfError

TYPE_CHECKING = False  # start-up time matters here (pf list); names for the type checker only
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

# name -> ("module:function", summary). The function receives the remaining argv.
COMMANDS: dict[str, tuple[str, str]] = {
    "compile": ("pf.cli.compile:command", "compile sources to wasm, LLVM IR or asm.js"),
    "build": ("pf.cli.build:command", "build every language of a project for every target"),
    "toolchains": ("pf.cli.toolchains:command", "show which tool serves each language and target"),
    "serve": ("pf.cli.serve:command", "serve the build API, live logs, artifacts and the demo"),
    "token": ("pf.cli.token:command", "create, list and revoke pf serve's API tokens"),
    "worker": ("pf.cli.worker:command", "run the builds pf serve queues in shared mode"),
    "check": ("pf.cli.check:command", "report every Pfyfile warning and error (exit 1 if any)"),
    "config": ("pf.cli.config:command", "print every setting, its value and where it came from"),
    "cache": ("pf.cli.cache:command", "show the compile cache's and ccache/sccache's statistics"),
}

_TASK_COMMANDS = (
    ("list [GROUP]", "list the Pfyfile's tasks with their parameters and descriptions"),
    ("list --json", "the same as a JSON array, for editors and scripts"),
    ("help TASK", "show one task in full (also: pf TASK --help)"),
    ("completion SHELL", "print the bash or zsh completion script"),
)


def usage() -> str:
    """``pf --help``: how to run tasks, pf's commands and options."""
    width = max(len(n) for n in [*COMMANDS, *(n for n, _ in _TASK_COMMANDS)])
    lines = [
        f"pf {__version__} - polyglot compile runner and task runner",
        "",
        "usage: pf [-f FILE] [-j N] [--force] TASK [key=value...] [TASK2 [key=value...]...]",
        "       pf COMMAND [ARGS...]",
        "",
        "Tasks come from Pfyfile.pf (here or in a parent directory; -f FILE or PFY_FILE",
        "name another), groups from Pfyfile.<group>.pf: `pf web build-rust`. Parameters:",
        "key=value, --key=value, --key value, or -k value for a one-letter parameter.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {summary}" for name, summary in _TASK_COMMANDS]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += [
        "",
        "options:",
        "  -f, --file FILE  use FILE instead of searching for Pfyfile.pf",
        "  -j, --jobs N     run up to N independent tasks at once (default 1)",
        "  --force          run tasks even when they are up to date",
        "  --fail-fast      on remote hosts (hosts=...), stop the others when one fails",
        "  -h, --help       this text; after a task name, that task's help",
        "  -V, --version    pf's version",
        "",
        "Run 'pf COMMAND --help' for a command's options.",
    ]
    return "\n".join(lines)


def load_command(name: str) -> Callable[[list[str]], int]:
    """The function behind subcommand ``name``, imported now."""
    import importlib  # here, not at the top: it imports warnings, ~0.5 ms of every start

    module_name, _, func = COMMANDS[name][0].partition(":")
    command: Callable[[list[str]], int] = getattr(importlib.import_module(module_name), func)
    return command


def run(argv: Sequence[str]) -> int:
    args = list(argv)
    if args[:1] == ["--complete"]:
        # Hidden: what the completion scripts call on every <TAB>.
        from pf.cli.completion import complete

        return complete(args[1:])
    from pf.cli import run as tasks

    options, rest = tasks.split_globals(args)
    if options.version:
        print(f"pf {__version__}")
        return 0
    if rest and rest[0] not in tasks.ALWAYS_PF and rest[0] not in COMMANDS:
        if tasks.is_pfyfile_arg(rest[0]):
            # The legacy form `pf other.pf TASK ...`; alone, it lists that file's tasks.
            options.file, rest = rest[0], rest[1:]
            if not rest and not options.help:
                return tasks.list_command([], options)
    if not rest:
        print(usage())
        return 0
    name = rest[0]
    if name in tasks.ALWAYS_PF:
        return tasks.BUILTINS[name](rest[1:], options)
    if name in COMMANDS and not tasks.has_task(name, options):
        return load_command(name)(rest[1:])
    return tasks.run_tasks(rest, options)


def _prints_only(args: list[str]) -> bool:
    """Whether ``args`` name one of pf's commands that only read Pfyfiles and print."""
    if args[:1] == ["--complete"]:
        return True
    from pf.cli.run import ALWAYS_PF, split_globals

    try:
        _, rest = split_globals(args)
    except PfError:
        return False
    return bool(rest) and rest[0] in ALWAYS_PF


def main(argv: Sequence[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        code = run(args)
    except PfError as error:
        from pf.cli.output import show_error

        show_error(error)
        code = error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    except BrokenPipeError:
        # The reader went away (`pf list | head -1`): stop quietly, as a program killed by
        # SIGPIPE does; stdout goes nowhere so that the flush at exit cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 128 + 13
    if _prints_only(args):
        # The process ends here. Before it does, the cycle collector would pass over
        # every object pf made (a parsed Pfyfile, pf's modules) only to free memory
        # the OS takes back anyway: ~1.5 ms, a tenth of `pf list`. These commands
        # hold no file or connection a collection would need to close (stdout and
        # stderr are flushed at exit all the same), so leave their objects be.
        import gc

        gc.freeze()
    sys.exit(code)
