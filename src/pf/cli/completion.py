"""Shell completion: ``pf completion bash|zsh`` prints a script; ``pf --complete LINE`` answers it.

The scripts stay dumb: on every <TAB> they hand pf the command line up to the cursor,
and pf prints the words that may come next, one per line, already filtered by the
word being typed: pf's commands and options, the Pfyfile's task names, aliases and
groups, a group's tasks after its name, and a task's parameters (``name=``) after the
task. pf knows the Pfyfile's rules (``-f``, ``PFY_FILE``, groups), so the scripts
need not. Answering costs one ``pf list``-sized start (tens of ms). Imports only
what ``pf list`` imports.
"""

from __future__ import annotations

import sys

from pf.errors import PfError, UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Sequence

    from pf.cli.listing import Entry, Listing

BASH = r"""# bash completion for pf. Load it with:  source <(pf completion bash)
# or save it as ~/.local/share/bash-completion/completions/pf
_pf() {
    local line=${COMP_LINE:0:COMP_POINT}
    local word=${line##*[[:space:]]}
    # bash replaces only the part of the word after its last COMP_WORDBREAKS character
    # (= and : by default); pf answers whole words, so that much is cut off each answer.
    local cut=${word%"${word##*[=:]}"}
    local IFS=$'\n' candidate
    COMPREPLY=()
    for candidate in $(command pf --complete "$line" 2>/dev/null); do
        COMPREPLY+=("${candidate#"$cut"}")
    done
    if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *= ]]; then
        compopt -o nospace 2>/dev/null
    fi
    return 0
}
complete -o default -F _pf pf
"""

ZSH = r"""#compdef pf
# zsh completion for pf. Load it with:  source <(pf completion zsh)
# or save it as _pf in a directory of your $fpath.
_pf() {
    local line="${(j: :)words[1,CURRENT]}"
    local -a found params plain
    found=("${(@f)$(command pf --complete "$line" 2>/dev/null)}")
    found=(${found:#})
    params=(${(M)found:#*=})
    plain=(${found:#*=})
    (( ${#plain} )) && compadd -Q -- "${plain[@]}"
    (( ${#params} )) && compadd -Q -S '' -- "${params[@]}"
    (( ${#found} )) || _files
}
if (( $+functions[compdef] )); then
    compdef _pf pf
fi
"""

SCRIPTS = {"bash": BASH, "zsh": ZSH}
OPTIONS = ("--file", "--jobs", "--force", "--fail-fast", "--help", "--version", "-f", "-j")


def command(args: Sequence[str]) -> int:
    """``pf completion bash|zsh``: print the script."""
    if len(args) != 1 or args[0] not in SCRIPTS:
        raise UsageError(
            "pf completion needs a shell: bash or zsh",
            hint="source <(pf completion bash)   # in ~/.bashrc",
        )
    sys.stdout.write(SCRIPTS[args[0]])
    return 0


def _pfyfile(words: list[str]) -> tuple[Listing | None, list[str]]:
    """The tasks of the Pfyfile the line refers to (or None) and the words after pf's options.

    Through the listing cache: completion runs on every <TAB>.
    """
    from pf.cli.listing import load
    from pf.cli.run import find_pfyfile, is_pfyfile_arg, split_globals

    try:
        options, rest = split_globals(words)
    except UsageError:
        return None, []
    if rest and is_pfyfile_arg(rest[0]):
        options.file, rest = rest[0], rest[1:]
    path = find_pfyfile(options.file)
    if path is None:
        return None, rest
    try:
        return load(path), rest
    except PfError:
        return None, rest


def _params(task: Entry, given: set[str]) -> list[str]:
    return [f"{name}=" for name, _ in task.params if name not in given]


def candidates(words: list[str], current: str) -> list[str]:
    """The words that may stand where ``current`` is being typed after ``words``."""
    from pf.cli.main import COMMANDS
    from pf.cli.run import ALWAYS_PF

    if words and words[-1] in ("-f", "--file"):
        return []  # a path: the shell completes files
    if current.startswith("-"):
        return [o for o in OPTIONS if o.startswith(current)]
    pfyfile, rest = _pfyfile(words)
    top: list[str] = []
    if pfyfile is not None:
        top = [*pfyfile.names(None), *pfyfile.groups]
    if not rest:
        found = [*ALWAYS_PF, *COMMANDS, *top]
    elif rest[0] == "completion":
        found = list(SCRIPTS) if len(rest) == 1 else []
    elif rest[0] == "list":
        found = list(pfyfile.groups) if pfyfile is not None else []
    elif pfyfile is None or (rest[0] in COMMANDS and pfyfile.find(None, rest[0]) is None):
        found = []  # a built-in command's arguments: files
    else:
        found = _after_tasks(pfyfile, rest[1:] if rest[0] == "help" else rest, current, top)
    unique = dict.fromkeys(w for w in found if w.startswith(current))
    return list(unique)


def _after_tasks(pfyfile: Listing, rest: list[str], current: str, top: list[str]) -> list[str]:
    """After ``pf TASK k=v ...``: the last task's parameters, more tasks, a group's tasks."""
    if rest and rest[-1] in pfyfile.groups:
        return pfyfile.names(rest[-1])
    task: Entry | None = None
    given: set[str] = set()
    previous: str | None = None
    for word in rest:
        if "=" in word:
            given.add(word.split("=", 1)[0].lstrip("-"))
        elif previous in pfyfile.groups and pfyfile.find(previous, word) is not None:
            task, given = pfyfile.find(previous, word), set()
        elif pfyfile.find(None, word) is not None:
            task, given = pfyfile.find(None, word), set()
        previous = word
    if "=" in current and task is not None:
        key = current.split("=", 1)[0]
        return [f"{name}={default}" for name, default in task.params if name == key and default]
    return ([] if task is None else _params(task, given)) + top


def complete(args: Sequence[str]) -> int:
    """``pf --complete LINE``: print the candidates for the last (maybe empty) word of LINE."""
    line = args[0] if args else ""
    words = line.split()
    current = words.pop() if words and not line[-1:].isspace() else ""
    try:
        found = candidates(words[1:], current)
    except PfError:
        found = []  # completion never shows an error in the middle of a command line
    sys.stdout.write("".join(f"{word}\n" for word in found))
    return 0
