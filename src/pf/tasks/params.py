"""Command-line words -> task invocations: which tasks run, in order, with which parameters.

Owns the four equivalent parameter forms of docs/pfyfile.md (``key=value``, ``--key=value``,
``--key value``, ``-k value``), group addressing (``pf web build-rust`` and
``web:build-rust``), and the pf flags that may follow a task name (``--help``/``-h``,
``--force``, ``-j N``). Unknown tasks and groups get "did you mean"; a parameter the
task does not declare is passed on (the original pf exported every ``key=value``), with
a warning when it looks like a typo of one it does declare.

Runs on every ``pf TASK``, so it imports only pf.dsl and pf.errors: no argparse (its
rules for ``--key value`` and ``-k value`` are not pf's anyway), no typing.
"""

from __future__ import annotations

from pf.dsl.lexer import is_name, is_param_name
from pf.dsl.model import display_name
from pf.dsl.suggest import suggest
from pf.errors import UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Sequence

    from pf.dsl.model import Pfyfile, Task


class Invocation:
    """One task to run and the parameters given for it on the command line, in order."""

    __slots__ = ("params", "task")

    def __init__(self, task: Task, params: dict[str, str]) -> None:
        self.task = task
        self.params = params

    def __repr__(self) -> str:
        return f"Invocation({display_name(self.task.key)!r}, {self.params!r})"


class Flags:
    """pf's own options found among the words: ``--force``, ``-j N``, ``--help``."""

    __slots__ = ("fail_fast", "force", "help", "jobs")

    def __init__(
        self,
        force: bool = False,
        jobs: int | None = None,
        help: bool = False,
        fail_fast: bool = False,
    ) -> None:
        self.force = force
        self.jobs = jobs
        self.help = help
        self.fail_fast = fail_fast


def parse_jobs(text: str) -> int:
    """``-j N``'s N: a positive integer, else a usage error."""
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise UsageError(f"-j/--jobs takes a positive number, got {text!r}")


def _is_negative_number(word: str) -> bool:
    # argparse's test (`-1`, `-0.5`, `-.5`), so `--key -1` reads as it would there.
    if not word.startswith("-") or not word.isascii():
        return False
    whole, dot, fraction = word[1:].partition(".")
    if dot:
        return fraction.isdigit() and (whole == "" or whole.isdigit())
    return whole.isdigit()


def unknown_task(
    pfyfile: Pfyfile, name: str, group: str | None, extra: Sequence[str] = ()
) -> UsageError:
    """The error for a task name that resolves to nothing, with did-you-mean."""
    if group is not None:
        guess = suggest(name, pfyfile.names(group))
        return UsageError(
            f"group `{group}` has no task `{name}`",
            hint=f"did you mean `{group} {guess}`?"
            if guess
            else f"run `pf list` to see the tasks of group `{group}`",
        )
    guess = suggest(name, [*pfyfile.names(None), *pfyfile.groups, *extra])
    if guess is None and ":" not in name:
        # `pf build-rust` for the task `build-rust` of a group: say which.
        owners = [g for g in pfyfile.groups if pfyfile.find(g, name) is not None]
        if owners:
            return UsageError(
                f"unknown task `{name}`",
                hint=f"it is in group `{owners[0]}`: run `pf {owners[0]} {name}`",
            )
    return UsageError(
        f"unknown task `{name}`",
        hint=f"did you mean `{guess}`?" if guess else "run `pf list` to see the tasks",
    )


def resolve_task(
    pfyfile: Pfyfile, words: Sequence[str], at: int, extra: Sequence[str] = ()
) -> tuple[Task, int]:
    """The task named at ``words[at]`` (maybe with a group word before it) and the next index.

    ``web build-rust`` and ``web:build-rust`` name task ``build-rust`` of group ``web``;
    a group name followed by anything that is not one of its tasks falls back to a
    main-scope task of that name. ``extra`` are more names for did-you-mean (pf's
    subcommands).
    """
    word = words[at]
    group, colon, name = word.rpartition(":")
    if colon and group in pfyfile.groups:
        task = pfyfile.find(group, name)
        if task is None:
            raise unknown_task(pfyfile, name, group)
        return task, at + 1
    if word in pfyfile.groups:
        following = words[at + 1] if at + 1 < len(words) else None
        if following is not None:
            task = pfyfile.find(word, following)
            if task is not None:
                return task, at + 2
        top = pfyfile.find(None, word)
        if (
            following is not None
            and not following.startswith("-")
            and "=" not in following
            and pfyfile.find(None, following) is None
            # With a main-scope task of the group's name, only a near miss of one of
            # the group's tasks is taken for a group call.
            and (top is None or suggest(following, pfyfile.names(word)) is not None)
        ):
            raise unknown_task(pfyfile, following, word)
        if top is not None:
            return top, at + 1
        tasks = ", ".join(pfyfile.names(word)[:8])
        raise UsageError(f"`{word}` is a group: name one of its tasks", hint=f"pf {word} {tasks}")
    task = pfyfile.find(None, word)
    if task is None:
        raise unknown_task(pfyfile, word, None, extra)
    return task, at + 1


def _is_flag_for(task: Task, name: str) -> bool:
    # `--force`/`-j` after a task are pf's unless the task declares a parameter so named
    # (many tasks declare `jobs`; that one is always the task's).
    return all(p.name != name for p in task.params)


def parse_invocations(
    pfyfile: Pfyfile,
    words: Sequence[str],
    flags: Flags,
    *,
    extra_names: Sequence[str] = (),
    warnings: list[str] | None = None,
) -> list[Invocation]:
    """Split ``words`` into tasks and their parameters; pf flags found go into ``flags``.

    >>> parse_invocations(pf, ["build", "opt_level=3", "test", "-k", "v"], Flags())
    [Invocation('build', {'opt_level': '3'}), Invocation('test', {'k': 'v'})]
    """
    out: list[Invocation] = []
    at = 0
    n = len(words)
    current: Invocation | None = None
    while at < n:
        word = words[at]
        if not word.startswith("-") and "=" in word:
            key, _, value = word.partition("=")
            if current is None:
                raise UsageError(
                    f"parameter `{word}` comes before any task name",
                    hint=f"parameters follow their task: `pf TASK {word}`",
                )
            if not is_param_name(key):
                raise UsageError(
                    f"invalid parameter `{word}`",
                    hint="parameter names are letters, digits and `_`: write `name=value`",
                )
            _bind(current, key, value, warnings)
            at += 1
            continue
        if word in ("-h", "--help"):
            flags.help = True
            at += 1
            continue
        if word.startswith("--") and len(word) > 2:
            key, eq, value = word[2:].partition("=")
            if current is None or (
                key in ("force", "jobs", "fail-fast") and _is_flag_for(current.task, key)
            ):
                at = _pf_flag(words, at, key, eq, value, flags)
                continue
            if not is_param_name(key):
                raise UsageError(f"invalid parameter `{word}`", hint="write `--name=value`")
            if not eq:
                # `--key value`; a bare `--key` at the end or before another option is a
                # boolean switch, as `release=true`. A negative number is a value: pf
                # has no option that looks like one.
                if at + 1 < n and (
                    not words[at + 1].startswith("-") or _is_negative_number(words[at + 1])
                ):
                    value = words[at + 1]
                    at += 1
                else:
                    value = "true"
            _bind(current, key, value, warnings)
            at += 1
            continue
        if word.startswith("-") and len(word) > 1:
            letter, attached = word[1], word[2:]
            if letter == "j" and (current is None or _is_flag_for(current.task, "j")):
                if attached:
                    flags.jobs = parse_jobs(attached)
                    at += 1
                elif at + 1 < n:
                    flags.jobs = parse_jobs(words[at + 1])
                    at += 2
                else:
                    raise UsageError("-j needs a number of parallel tasks")
                continue
            if current is None or not is_name(letter) or attached:
                raise UsageError(
                    f"unknown option `{word}`",
                    hint="pf's options: -f FILE, -j N, --force, --help; "
                    "a task's parameters follow its name",
                )
            if at + 1 >= n:
                raise UsageError(f"`{word}` needs a value: write `{word} VALUE`")
            _bind(current, letter, words[at + 1], warnings)
            at += 2
            continue
        task, at = resolve_task(pfyfile, words, at, extra_names)
        current = Invocation(task, {})
        out.append(current)
    for invocation in out:
        _check_remote(pfyfile, invocation)
    return out


def _pf_flag(words: Sequence[str], at: int, key: str, eq: str, value: str, flags: Flags) -> int:
    if key == "force" and not eq:
        flags.force = True
        return at + 1
    if key == "fail-fast" and not eq:
        flags.fail_fast = True
        return at + 1
    if key == "jobs":
        if eq:
            flags.jobs = parse_jobs(value)
            return at + 1
        if at + 1 < len(words):
            flags.jobs = parse_jobs(words[at + 1])
            return at + 2
        raise UsageError("--jobs needs a number of parallel tasks")
    guess = suggest(key, ["force", "jobs", "help", "file", "fail-fast"])
    raise UsageError(
        f"unknown option `--{key}`",
        hint=f"did you mean `--{guess}`?" if guess else "run `pf --help` for pf's options",
    )


def _bind(invocation: Invocation, key: str, value: str, warnings: list[str] | None) -> None:
    task = invocation.task
    declared = [p.name for p in task.params]
    if warnings is not None and declared and key not in declared:
        guess = suggest(key, declared)
        if guess is not None:
            warnings.append(
                f"task `{display_name(task.key)}` has no parameter `{key}` "
                f"(did you mean `{guess}`?); passing it on as a variable"
            )
    invocation.params[key] = value


def _check_remote(pfyfile: Pfyfile, invocation: Invocation) -> None:
    # Read now, so that a host pf cannot read is a usage error before anything runs.
    from pf.tasks.hosts import hosts_for

    hosts_for(pfyfile, invocation.task, invocation.params)
