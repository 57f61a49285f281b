"""Entry point: pick the subcommand, run it, and turn every PfError into a message and exit code.

Subcommands are registered as import strings and imported only when chosen, so
``pf --help`` and a cache hit never pay for modules they do not use.
"""

from __future__ import annotations

import importlib
import sys

from pf import __version__
from pf.errors import PfError, UsageError

TYPE_CHECKING = False  # start-up time matters here (pf list); names for the type checker only
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

# name -> ("module:function", summary). The function receives the remaining argv.
COMMANDS: dict[str, tuple[str, str]] = {
    "compile": ("pf.cli.compile:command", "compile sources to wasm, LLVM IR or asm.js"),
    "build": ("pf.cli.build:command", "build every language of a project for every target"),
    "toolchains": ("pf.cli.toolchains:command", "show which tool serves each language and target"),
}


def _suggest(name: str, choices: Sequence[str]) -> str | None:
    import difflib

    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return close[0] if close else None


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [f"pf {__version__} - polyglot compile runner", "", "usage: pf COMMAND [ARGS...]", ""]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "Run 'pf COMMAND --help' for a command's options."]
    return "\n".join(lines)


def _load(name: str) -> Callable[[list[str]], int]:
    module_name, _, func = COMMANDS[name][0].partition(":")
    command: Callable[[list[str]], int] = getattr(importlib.import_module(module_name), func)
    return command


def run(argv: Sequence[str]) -> int:
    args = list(argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    if args[0] in {"-V", "--version"}:
        print(f"pf {__version__}")
        return 0
    name = args[0]
    if name not in COMMANDS:
        guess = _suggest(name, list(COMMANDS))
        raise UsageError(
            f"unknown command {name!r}",
            hint=f"did you mean {guess!r}?" if guess else "run 'pf --help' for the commands",
        )
    return _load(name)(args[1:])


def main(argv: Sequence[str] | None = None) -> None:
    from pf.cli.output import show_error

    try:
        code = run(sys.argv[1:] if argv is None else argv)
    except PfError as error:
        show_error(error)
        code = error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)
