"""DslError and the one table of Pfyfile error wording; imports only pf.errors.

A raise site names a *kind* and passes *facts* (the offending word, the expected
form, a suggestion); the sentence lives here, once, like just's ``Display`` match
for ``CompileErrorKind``. Rendering with carets is :mod:`pf.dsl.render`'s job.
"""

from __future__ import annotations

from pf.errors import PfError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from pf.dsl.source import Span

_NAME_RULE = "letters, digits, `-`, `_` and `.`"
_IF_FORMS = 'write `if $x == "v"`, `if $x != "v"`, `if $x` or ``if `cmd` ``'

# kind -> (message, hint, label of the related spans). Placeholders are facts.
# A fact named `suggestion` replaces the hint with "did you mean ...?".
MESSAGES: dict[str, tuple[str, str | None, str | None]] = {
    # lexical
    "unterminated-string": ("unterminated string", "close it with a matching {quote}", None),
    "unterminated-list": ("unterminated list: this `[` is never closed", "close it with `]`", None),
    "unterminated-heredoc": (
        "heredoc `{delimiter}` is never closed",
        "end the block with a line holding only `{delimiter}`",
        None,
    ),
    # structure
    "unknown-statement": (
        "expected `task`, `include`, `env` or `hosts`, found `{word}`",
        "a line at the top level starts a task or declares a file setting",
        None,
    ),
    "verb-outside-task": (
        "`{verb}` is only allowed inside a task",
        "put it between `task NAME` and `end`",
        None,
    ),
    "top-level-only": (
        "`{verb}` is only allowed at the top level, not inside task `{task}`",
        "move it above or below the task",
        None,
    ),
    "missing-end": (
        "`{block}` is never closed",
        "add a line `end` to close this `{block}`",
        "`{next}` starts here before the `end`",
    ),
    "ignored-outside-task": (
        "`{verb}` outside any task is ignored",
        "put it between `task NAME` and `end`, or remove it",
        None,
    ),
    "ignored-statement": (
        "`{verb}` is not a pf statement and is ignored",
        "pf runs tasks on this machine or over SSH; remove this line",
        None,
    ),
    "alias-outside-task": (
        "an alias list outside any task is ignored",
        "write the aliases on the task's header line: `task NAME [alias x]`",
        None,
    ),
    "missing-end-at-eof": (
        "task `{name}` has no `end`; it runs to the end of the file",
        "add a line `end` after its last statement",
        None,
    ),
    "bare-command": (
        "`{verb}` is not a pf verb: this line is not run",
        "to run it in bash, write `shell {text}`",
        None,
    ),
    "unsupported-helper": (
        "`{verb}` is a helper of the original pf that pf does not support",
        "a run of this task stops at this line; do its work with `shell` lines instead",
        None,
    ),
    "packages-without-action": (
        "`packages` without `install` or `remove` installs `{names}`",
        "write `packages install {names}` to say so",
        None,
    ),
    "comment-in-continuation": (
        "a comment inside a `\\` continuation is dropped",
        "pf joins the lines around it (bash would end the command there); move the comment above",
        None,
    ),
    "stray-end": ("`end` without an open `task`, `if` or `for`", "remove this line", None),
    "stray-else": ("`else` outside an `if`", "`else` belongs between `if` and `end`", None),
    "duplicate-else": ("this `if` already has an `else`", "nest another `if` instead", None),
    "trailing-words": ("`{verb}` takes nothing after it, found `{word}`", None, None),
    "declaration-in-block": (
        "`{verb}` must be at the top level of the task, not inside `{block}`",
        "it declares something about the whole task; move it out of the block",
        None,
    ),
    # task headers
    "missing-task-name": ("expected a task name after `task`", "write `task NAME`", None),
    "invalid-task-name": (
        "invalid task name `{name}`",
        f"a task name is made of {_NAME_RULE}, and does not start with `-`",
        None,
    ),
    "invalid-parameter": (
        "invalid parameter `{text}`",
        'write `name` or `name=default` (`name="a b"` for spaces); names are sh names',
        None,
    ),
    "hyphenated-parameter": (
        "parameter `{name}` is not an sh name",
        "shell lines see it as `${{{twin}}}` (pf rewrites `${{{name}}}` there); "
        "rename it `{twin}` to say so",
        None,
    ),
    "duplicate-parameter": (
        "parameter `{name}` is declared twice",
        None,
        "first declared here",
    ),
    "invalid-alias": (
        "expected `alias NAME` or `alias=NAME`, found `{text}`",
        "separate aliases with `|`: `[alias bc|alias=buildc]`",
        None,
    ),
    # arguments
    "missing-argument": ("`{verb}` needs {what}", "{usage}", None),
    "invalid-argument": ("{what}, found `{word}`", "{usage}", None),
    "list-not-allowed": ("a list is not allowed here", "lists are values: `key=[a, b]`", None),
    "duplicate-argument": ("`{key}` is given twice", None, "first given here"),
    "expected-key-value": (
        "expected KEY=VALUE, found `{word}`",
        'write `{verb} KEY=VALUE KEY2="v w"`',
        None,
    ),
    "invalid-condition": ("cannot read this condition", _IF_FORMS, None),
    "invalid-for": (
        "cannot read this loop",
        'write `for NAME in ["a", "b"]` or `for NAME in $list`',
        None,
    ),
    "invalid-lang-tag": (
        "expected `[lang:NAME]`, found `{word}`",
        "for example `shell [lang:python] print(1)`",
        None,
    ),
    "unknown-language": (
        "unknown language `{name}`",
        "the languages are {known} (docs/pfyfile.md lists their aliases), and `default` for bash",
        None,
    ),
    "invalid-hosts": (
        "cannot read this host list",
        "write `hosts NAME = user@host:22, host2`",
        None,
    ),
    # files
    "read-error": ("cannot read `{path}`: {reason}", None, None),
    "include-not-found": (
        "included file `{path}` does not exist",
        "include paths are relative to the including file's directory, `{directory}`",
        None,
    ),
    "include-cycle": ("include cycle: {chain}", "remove one of these `include` lines", None),
    # names
    "duplicate-task": (
        "`{name}` is defined twice in {scope}",
        "rename one of them, or move it into a group file `Pfyfile.<group>.pf`",
        "first defined here",
    ),
    "task-redefined": (
        "`{name}` is defined again in {scope}; this later definition is used",
        "rename one of them, or remove the one that is not meant",
        "the earlier definition, now ignored",
    ),
    "duplicate-hosts": ("host list `{name}` is declared twice", None, "first declared here"),
    "unknown-group": (
        "task `{task}` needs `{name}`, but there is no group `{group}`",
        "groups come from files named `Pfyfile.<group>.pf`",
        None,
    ),
    "unknown-dependency": (
        "task `{task}` needs unknown task `{name}`",
        "`needs` names tasks of the same group, the main file, or `group:task`",
        None,
    ),
    "dependency-cycle": (
        "dependency cycle: {chain}",
        "a task cannot need itself, even indirectly",
        None,
    ),
}


class DslError(PfError):
    """A Pfyfile that cannot be read, parsed or resolved: ``(span, kind, facts)``.

    ``span`` is the culprit (None only when a whole file cannot be read), ``kind``
    a key of :data:`MESSAGES`, ``facts`` the values its sentences mention, and
    ``related`` other positions worth showing (the first definition of a
    duplicate, the task that starts before an ``end``).

    >>> DslError(span, "unknown-statement", {"word": "tsk", "suggestion": "task"})
    """

    code = "pfyfile-error"
    #: "error" stops the file from loading; "warning" (:class:`DslWarning`) does not.
    severity = "error"
    exit_code = 2  # a Pfyfile mistake is a usage error, as for a bad command line
    http_status = 400

    def __init__(
        self,
        span: Span | None,
        kind: str,
        facts: dict[str, str] | None = None,
        related: tuple[Span, ...] = (),
    ) -> None:
        facts = facts or {}
        message, hint, label = MESSAGES[kind]
        suggestion = facts.get("suggestion")
        if suggestion is not None:
            hint = f"did you mean `{suggestion}`?"
        super().__init__(message.format_map(facts), hint=hint.format_map(facts) if hint else None)
        self.span = span
        self.kind = kind
        self.facts = facts
        self.related = related
        self.related_label = label.format_map(facts) if label else None

    def __str__(self) -> str:
        return f"{self.span}: {self.message}" if self.span else self.message

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = dict(super().to_dict())
        out["kind"] = self.kind
        if self.span is not None:
            out["span"] = {
                "file": self.span.path,
                "line": self.span.line,
                "col": self.span.col,
                "length": self.span.length,
            }
        return out


class DslWarning(DslError):
    """A construct the original pf tolerated: loaded as it meant it, reported at its span.

    Never raised while loading: :class:`pf.dsl.model.Pfyfile` keeps the warnings
    of a load in ``warnings``, and ``pf check`` turns them into a failure.
    """

    code = "pfyfile-warning"
    severity = "warning"
