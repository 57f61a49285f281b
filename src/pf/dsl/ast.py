"""The syntax tree of one Pfyfile: statements, task definitions, file-level items.

Owns the node types the parser builds (their text form is :mod:`pf.dsl.dump`).
Statement nodes are shared with the resolved model: the executor walks them.
:class:`TaskDef` is the *unresolved* task, whose ``needs`` are names as written.
Nodes are records (:mod:`pf.dsl._record`): immutable, built at C speed, and
cheaper to import than dataclasses.
"""

from __future__ import annotations

from pf.dsl._record import Record, fields, new

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from pf.dsl.lexer import Line, Word
    from pf.dsl.source import Source, Span


#: A verb argument value: a word, or a list written ``[a, "b c"]``.
Value = str | tuple[str, ...]


class Node(Record):
    """Base of every tree node: an immutable record, compared field by field, spans included."""

    __slots__ = ()

    def __repr__(self) -> str:
        from pf.dsl.dump import dump  # dump knows every node class: import it late

        return f"<{type(self).__name__} {dump(self)}>"


class Param(Node):
    """A task parameter from the header: ``name`` or ``name=default`` (default None)."""

    __slots__ = ()
    name: str
    default: str | None
    span: Span

    def __new__(cls, name: str, default: str | None, span: Span) -> Param:
        return new(
            cls,
            (
                name,
                default,
                span,
            ),
        )


fields(Param, "name", "default", "span")


class Ref(Node):
    """A name as written where it is used (an alias, a ``needs`` entry), with its span."""

    __slots__ = ()
    name: str
    span: Span

    def __new__(cls, name: str, span: Span) -> Ref:
        return new(
            cls,
            (
                name,
                span,
            ),
        )


fields(Ref, "name", "span")


class Meta(Node):
    """What ``pf list`` and ``pf help`` show: describe, synopsis, example, note, tag.

    Repeated ``describe``/``synopsis`` lines are joined with newlines; ``example``,
    ``note`` and ``tag`` accumulate (``tag a b`` adds two tags).
    """

    __slots__ = ()
    describe: str | None
    synopsis: str | None
    examples: tuple[str, ...]
    notes: tuple[str, ...]
    tags: tuple[str, ...]

    def __new__(
        cls,
        describe: str | None = None,
        synopsis: str | None = None,
        examples: tuple[str, ...] = (),
        notes: tuple[str, ...] = (),
        tags: tuple[str, ...] = (),
    ) -> Meta:
        return new(
            cls,
            (
                describe,
                synopsis,
                examples,
                notes,
                tags,
            ),
        )


fields(Meta, "describe", "synopsis", "examples", "notes", "tags")


# ---------------------------------------------------------------- statements


class Shell(Node):
    """Run code: ``shell CMD``, ``shell [lang:X] CODE``, ``shell @file -- args``, or a heredoc.

    ``code`` is exactly the text after the verb (and after ``[lang:X]``), leading
    and trailing blanks removed: pf never interpolates or re-quotes it, bash (or
    the language) gets it as written. ``lang`` is the language in force: the
    ``[lang:X]`` tag, else the task's sticky ``shell_lang``, else None for bash;
    it is lower-cased and not validated here (the executor knows the languages).
    For ``@file`` forms ``file`` is the path and ``args`` the words after ``--``,
    and ``code`` is "". ``heredoc`` marks a ``<< EOF`` block.
    """

    __slots__ = ()
    code: str
    lang: str | None
    span: Span
    file: str | None
    args: tuple[str, ...]
    heredoc: bool

    def __new__(
        cls,
        code: str,
        lang: str | None,
        span: Span,
        file: str | None = None,
        args: tuple[str, ...] = (),
        heredoc: bool = False,
    ) -> Shell:
        return new(
            cls,
            (
                code,
                lang,
                span,
                file,
                args,
                heredoc,
            ),
        )


fields(Shell, "code", "lang", "span", "file", "args", "heredoc")


class ShellLang(Node):
    """``shell_lang NAME``: later ``shell`` lines of the task run in NAME (None: ``default``).

    The parser already applies it to every later :class:`Shell` (in text order),
    so an executor may skip this node; it stays in the body for tools and dumps.
    """

    __slots__ = ()
    lang: str | None
    span: Span

    def __new__(cls, lang: str | None, span: Span) -> ShellLang:
        return new(
            cls,
            (
                lang,
                span,
            ),
        )


fields(ShellLang, "lang", "span")


class Env(Node):
    """``env K=V K2="v w"``: ordered pairs, values unquoted but not yet interpolated."""

    __slots__ = ()
    pairs: tuple[tuple[str, str], ...]
    span: Span

    def __new__(cls, pairs: tuple[tuple[str, str], ...], span: Span) -> Env:
        return new(
            cls,
            (
                pairs,
                span,
            ),
        )


fields(Env, "pairs", "span")


class Test(Node):
    """The condition of an ``if``.

    ``op`` is ``"=="`` or ``"!="`` (compare ``left`` with ``right``), ``"set"`` (``if
    $x``: ``left`` is non-empty) or ``"cmd"`` (``if `cmd```: ``left`` is a bash
    command, true when it exits 0). ``left``/``right`` are unevaluated strings such
    as ``"$x"``; the executor interpolates them.
    """

    __slots__ = ()
    op: str
    left: str
    right: str | None
    span: Span

    def __new__(cls, op: str, left: str, right: str | None, span: Span) -> Test:
        return new(
            cls,
            (
                op,
                left,
                right,
                span,
            ),
        )


fields(Test, "op", "left", "right", "span")


class If(Node):
    """``if TEST`` ... [``else`` ...] ``end``."""

    __slots__ = ()
    test: Test
    body: tuple[Statement, ...]
    orelse: tuple[Statement, ...]
    span: Span

    def __new__(
        cls,
        test: Test,
        body: tuple[Statement, ...],
        orelse: tuple[Statement, ...],
        span: Span,
    ) -> If:
        return new(
            cls,
            (
                test,
                body,
                orelse,
                span,
            ),
        )


fields(If, "test", "body", "orelse", "span")


class For(Node):
    """``for NAME in ["a", "b"]`` (``items``) or ``for NAME in $list`` (``source``) ... ``end``.

    Exactly one of ``items`` and ``source`` is set. ``source`` is an unevaluated
    string; the executor interpolates it and splits it into words (on commas and
    blanks).
    """

    __slots__ = ()
    var: str
    items: tuple[str, ...] | None
    source: str | None
    body: tuple[Statement, ...]
    span: Span

    def __new__(
        cls,
        var: str,
        items: tuple[str, ...] | None,
        source: str | None,
        body: tuple[Statement, ...],
        span: Span,
    ) -> For:
        return new(
            cls,
            (
                var,
                items,
                source,
                body,
                span,
            ),
        )


fields(For, "var", "items", "source", "body", "span")


class Verb(Node):
    """Any other verb: build helpers, system verbs, ``compile``, in one generic shape.

    ``args`` are the positional words, ``kwargs`` the ``key=value`` words in
    order (a value is a word or, for ``key=[a, b]``, a tuple). Values are unquoted
    but not interpolated: the executor calls :func:`pf.dsl.interpolate`.
    :attr:`arg_spans`/:attr:`kwarg_spans` locate each one for runtime errors;
    they are computed when asked for (``_where`` keeps the line and its words).

    >>> verb.name, verb.args, verb.kwargs     # make all jobs=4
    ('make', ('all',), {'jobs': '4'})
    """

    __slots__ = ()
    name: str
    args: tuple[str, ...]
    kwargs: dict[str, Value]
    span: Span
    _where: tuple[Line, list[Word]] | None

    def __new__(
        cls,
        name: str,
        args: tuple[str, ...],
        kwargs: dict[str, Value],
        span: Span,
        _where: tuple[Line, list[Word]] | None = None,
    ) -> Verb:
        return new(cls, (name, args, kwargs, span, _where))

    @property
    def arg_spans(self) -> tuple[Span, ...]:
        """The span of each positional argument (the statement's span if unknown)."""
        if self._where is None:
            return (self.span,) * len(self.args)
        line, found = self._where
        return tuple(line.span(w.start, w.end) for w in found if w.key is None)

    @property
    def kwarg_spans(self) -> dict[str, Span]:
        """The span of each ``key=value`` argument (the statement's span if unknown)."""
        if self._where is None:
            return dict.fromkeys(self.kwargs, self.span)
        line, found = self._where
        return {w.key: line.span(w.start, w.end) for w in found if w.key is not None}


fields(Verb, "name", "args", "kwargs", "span", "_where")


class Unrunnable(Node):
    """A line the original pf accepted that pf loads but will not run.

    A bare command without a verb, a helper pf does not implement, a language pf
    does not know. Loading it gave a warning; running it raises
    ``DslError(span, kind, facts)``, so it is never run as something else.
    ``text`` is the line as written.
    """

    __slots__ = ()
    text: str
    kind: str
    facts: tuple[tuple[str, str], ...]
    span: Span

    def __new__(
        cls, text: str, kind: str, facts: tuple[tuple[str, str], ...], span: Span
    ) -> Unrunnable:
        return new(cls, (text, kind, facts, span))


fields(Unrunnable, "text", "kind", "facts", "span")


#: What a task body holds; the executor matches on these classes.
Statement = Shell | ShellLang | Env | If | For | Verb | Unrunnable


# ---------------------------------------------------------------- file level


class Include(Node):
    """``include PATH`` at the top level; the path as written."""

    __slots__ = ()
    path: str
    span: Span

    def __new__(cls, path: str, span: Span) -> Include:
        return new(
            cls,
            (
                path,
                span,
            ),
        )


fields(Include, "path", "span")


class HostsDecl(Node):
    """``hosts NAME = a, b``: a named host list for ``env=NAME``."""

    __slots__ = ()
    name: str
    hosts: tuple[str, ...]
    span: Span

    def __new__(cls, name: str, hosts: tuple[str, ...], span: Span) -> HostsDecl:
        return new(
            cls,
            (
                name,
                hosts,
                span,
            ),
        )


fields(HostsDecl, "name", "hosts", "span")


class TaskDef(Node):
    """A task as parsed, before names are resolved: ``needs`` are :class:`Ref` as written.

    Declarations (metadata, ``needs``, ``sources``, ``generates``) are hoisted out of
    the body; ``body`` holds only statements to run.
    """

    __slots__ = ()
    name: str
    name_span: Span
    params: tuple[Param, ...]
    aliases: tuple[Ref, ...]
    meta: Meta
    needs: tuple[Ref, ...]
    sources: tuple[str, ...]
    generates: tuple[str, ...]
    body: tuple[Statement, ...]
    span: Span

    def __new__(
        cls,
        name: str,
        name_span: Span,
        params: tuple[Param, ...],
        aliases: tuple[Ref, ...],
        meta: Meta,
        needs: tuple[Ref, ...],
        sources: tuple[str, ...],
        generates: tuple[str, ...],
        body: tuple[Statement, ...],
        span: Span,
    ) -> TaskDef:
        return new(
            cls,
            (
                name,
                name_span,
                params,
                aliases,
                meta,
                needs,
                sources,
                generates,
                body,
                span,
            ),
        )


fields(
    TaskDef,
    "name",
    "name_span",
    "params",
    "aliases",
    "meta",
    "needs",
    "sources",
    "generates",
    "body",
    "span",
)


#: A top-level item of one file, in file order.
Item = Include | Env | HostsDecl | TaskDef


class FileAst(Node):
    """One parsed file: its source and its top-level items in order."""

    __slots__ = ()
    source: Source
    items: tuple[Item, ...]

    def __new__(cls, source: Source, items: tuple[Item, ...]) -> FileAst:
        return new(
            cls,
            (
                source,
                items,
            ),
        )


fields(FileAst, "source", "items")
