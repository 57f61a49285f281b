"""Recursive-descent parser: one Pfyfile's text -> :class:`pf.dsl.ast.FileAst`.

Strategy. The language is line-oriented: every logical line (after comments,
blanks and ``\\`` continuations are handled by :mod:`pf.dsl.lexer`) starts with
a verb, and the verb decides how the rest of the line is read. So the parser is
a recursive descent over *lines* rather than tokens: ``parse_file`` reads
top-level items, ``_task`` a header and a body, ``_block`` the statements up to
the ``end`` (or ``else``) that closes the innermost open block, and one method
per verb (``_shell``, ``_env``, ``_if``, ...) one statement. ``shell`` keeps the
raw rest of its line, so bash sees exactly what the author wrote; every other
verb has its rest cut into words. Errors are raised at the first problem as
:class:`DslError` with the exact span (the caret), never collected: a Pfyfile
is fixed one mistake at a time, like just. A block that never closes is
reported at the line that opened it, except a task still open at the end of the
file, which the original pf accepted: that and the other constructs it tolerated
(verbs and ``image`` outside tasks, ``[alias x]`` lines) are loaded as it meant
them, each with a :class:`DslWarning` collected in ``Parser.warnings``.
Declarations (metadata, ``needs``, ``sources``, ``generates``) are hoisted
onto the task; ``shell_lang`` is applied statically, in text order, to later
``shell`` lines.
"""

from __future__ import annotations

from pf.dsl._record import new
from pf.dsl.ast import (
    Env,
    FileAst,
    For,
    HostsDecl,
    If,
    Include,
    Item,
    Meta,
    Param,
    Ref,
    Shell,
    ShellLang,
    Statement,
    TaskDef,
    Test,
    Unrunnable,
    Value,
    Verb,
)
from pf.dsl.errors import DslError, DslWarning
from pf.dsl.lexer import Line, Reader, Word, is_name, is_param_name, sh_twin, words
from pf.dsl.source import Source, Span
from pf.dsl.suggest import suggest
from pf.dsl.verbs import (
    ARITY,
    DECLARATIONS,
    GENERIC_VERBS,
    LANGUAGE_NAMES,
    LANGUAGES,
    METADATA,
    SYNC_USAGE,
    TASK_VERBS,
    TOP_LEVEL,
    UNSUPPORTED_HELPERS,
    language_facts,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable


def _task_name_ok(name: str) -> bool:
    return (
        name.isascii()
        and name[0] != "-"
        and name.replace("-", "a").replace("_", "a").replace(".", "a").isalnum()
    )


def _unquote(text: str) -> str:
    # `describe "Build it"` reads as `describe Build it`; inner quotes stay.
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def _simple_params(line: Line, at: int, stop: int) -> tuple[Param, ...] | None:
    """The parameters in ``text[at:stop]`` if all are plain: ``k``, ``k=v`` or ``k="v"``.

    Nearly every header is written so; its words need no general scan. None for
    anything else (a tab, an escape, a list, a quoted blank, a bad or repeated
    name), which :meth:`Parser._params` then reads, and reports if wrong.
    """
    text = line.text
    rest = text[at:stop]
    if "\t" in rest or "\\" in rest or "'" in rest or "[" in rest:
        return None
    source, lineno, offset = line.source, line.lineno, line.offset
    single = line.segments is None
    params: list[Param] = []
    names: list[str] = []
    at -= 1
    for part in rest.split(" "):
        at += 1
        if not part:
            continue
        pair = _PARAMS.get(part)
        if pair is None:
            pair = _param_word(part)
            if len(_PARAMS) < 4096:
                _PARAMS[part] = pair
        if not pair or pair[0] in names:
            return None
        name = pair[0]
        names.append(name)
        end = at + len(part)
        span = (
            new(Span, (source, lineno, at + 1, offset + at, end - at))
            if single
            else line.span(at, end)
        )
        params.append(new(Param, (name, pair[1], span)))
        at = end
    return tuple(params)


def _param_word(part: str) -> tuple[str, str | None] | tuple[()]:
    """``(name, default)`` of a plain parameter word, or ``()`` if it is not one."""
    eq = part.find("=")
    if eq == -1:
        name, value = part, None
    else:
        name, value = part[:eq], part[eq + 1 :]
        if '"' in value:
            if len(value) < 2 or value[0] != '"' or value[-1] != '"' or value.count('"') != 2:
                return ()
            value = value[1:-1]
    if '"' in name or not _param_name_ok(name, is_param_name):
        return ()
    return name, value


def _simple_env(text: str, at: int) -> tuple[tuple[str, str], ...] | None:
    """The pairs of ``env K=V K2="v"`` from ``at`` if all are plain, else None.

    As for :func:`_simple_params`: the usual line needs no general word scan; any
    other form (or a mistake) is left to :meth:`Parser._env`'s.
    """
    rest = text[at:]
    if "\t" in rest or "\\" in rest or "'" in rest or "[" in rest:
        return None
    pairs: list[tuple[str, str]] = []
    for part in rest.split(" "):
        if not part:
            continue
        eq = part.find("=")
        if eq <= 0:
            return None
        key, value = part[:eq], part[eq + 1 :]
        if '"' in value:
            if len(value) < 2 or value[0] != '"' or value[-1] != '"' or value.count('"') != 2:
                return None
            value = value[1:-1]
        if '"' in key or not _param_name_ok(key):
            return None
        pairs.append((key, value))
    return tuple(pairs) if pairs else None


def _dedent(lines: list[str]) -> list[str]:
    """Remove the indentation common to the non-blank lines (heredoc bodies)."""
    margin: str | None = None
    for line in lines:
        body = line.lstrip()
        if not body:
            continue
        indent = line[: len(line) - len(body)]
        if margin is None:
            margin = indent
        else:
            k = 0
            while k < len(margin) and k < len(indent) and margin[k] == indent[k]:
                k += 1
            margin = margin[:k]
    cut = len(margin or "")
    return [line[cut:] if line.strip() else "" for line in lines]


def _heredocs(code: str) -> list[tuple[str, bool]]:
    """The heredocs a bash line opens, in order: (delimiter, whether it was quoted).

    Skips ``<<`` inside quotes, after a comment, in ``$(( ))`` arithmetic and ``<<<``
    here-strings, which open nothing.
    """
    out: list[tuple[str, bool]] = []
    n = len(code)
    i = 0
    depth = 0
    while i < n:
        c = code[i]
        if c == "'" or c == '"':
            close = code.find(c, i + 1)
            while c == '"' and close > 0 and code[close - 1] == "\\":
                close = code.find(c, close + 1)
            if close == -1:
                break
            i = close + 1
        elif c == "\\":
            i += 2
        elif c == "#" and (i == 0 or code[i - 1] in " \t;&|"):
            break
        elif code.startswith("((", i):
            depth += 1
            i += 2
        elif code.startswith("))", i) and depth:
            depth -= 1
            i += 2
        elif code.startswith("<<<", i):
            i += 3
        elif code.startswith("<<", i) and not depth:
            i += 2
            if code[i : i + 1] == "-":
                i += 1
            while i < n and code[i] in " \t":
                i += 1
            word: list[str] = []
            quoted = False
            while i < n and code[i] not in " \t;&|<>()":
                ch = code[i]
                if ch == "'" or ch == '"':
                    close = code.find(ch, i + 1)
                    if close == -1:
                        return out
                    word.append(code[i + 1 : close])
                    quoted = True
                    i = close + 1
                elif ch == "\\":
                    word.append(code[i + 1 : i + 2])
                    quoted = True
                    i += 2
                else:
                    word.append(ch)
                    i += 1
            if word:
                out.append(("".join(word), quoted))
        else:
            i += 1
    return out


_NO_META = Meta()
# The same few parameter names recur on every task: (name, check) -> answer.
_NAMES: dict[tuple[str, Callable[[str], bool]], bool] = {}
# Parameter words recur too (`opt_level="2"` on many headers): each word -> _param_word's answer.
_PARAMS: dict[str, tuple[str, str | None] | tuple[()]] = {}


def _param_name_ok(name: str, check: Callable[[str], bool] = is_name) -> bool:
    """``check(name)`` (an sh name by default), remembered per (name, check)."""
    key = (name, check)
    known = _NAMES.get(key)
    if known is None:
        known = check(name)
        if len(_NAMES) < 4096:
            _NAMES[key] = known
    return known


def _sh_names(code: str, names: tuple[str, ...]) -> str:
    """``code`` with ``$remote-addr``/``${remote-addr...}`` of ``names`` as their sh twins.

    ``names`` are the task's hyphenated parameters, longest first, so that of
    ``a-b`` and ``a-b-c`` the longer one is taken where both would match.
    """
    for name in names:
        if name not in code:
            continue
        twin = sh_twin(name)
        code = code.replace("${" + name + "}", "${" + twin + "}")
        code = code.replace("${" + name + ":", "${" + twin + ":")
        bare = "$" + name
        at = code.find(bare)
        while at != -1:
            end = at + len(bare)
            if end < len(code) and (code[end].isalnum() or code[end] == "_"):
                at = code.find(bare, end)  # a longer name that merely starts so
                continue
            code = f"{code[:at]}${{{twin}}}{code[end:]}"
            at = code.find(bare, at + len(twin) + 3)
    return code


class _TaskState:
    """What the parser accumulates for the task being read (lists made on first use)."""

    __slots__ = (
        "aliases",
        "describe",
        "generates",
        "hyphens",
        "lang",
        "lang_span",
        "meta",
        "name",
        "needs",
        "sources",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.aliases: list[Ref] | None = None  # from `[alias x]` lines in the body
        self.hyphens: tuple[str, ...] = ()  # hyphenated parameters, longest first
        self.lang: str | None = None  # sticky shell_lang, applied in text order
        self.lang_span: Span | None = None  # where that shell_lang named an unknown language
        # The usual metadata is one `describe`, kept as is; any more goes to ``meta``.
        self.describe: str | None = None
        self.meta: dict[str, list[str]] | None = None  # describe, synopsis, ... -> texts
        self.needs: list[Ref] | None = None
        self.sources: list[str] | None = None
        self.generates: list[str] | None = None

    def task_meta(self) -> Meta:
        meta = self.meta
        if meta is None:
            one = self.describe
            return _NO_META if one is None else new(Meta, (one, None, (), (), ()))
        describe = meta.get("describe")
        synopsis = meta.get("synopsis")
        return new(
            Meta,
            (
                "\n".join(describe) if describe else None,
                "\n".join(synopsis) if synopsis else None,
                tuple(meta.get("example", ())),
                tuple(meta.get("note", ())),
                tuple(meta.get("tag", ())),
            ),
        )


#: The words of lines already read, by (text, start, keys, lists): one parse of several
#: files keeps one, as the same lines recur across tasks (`make all jobs=$jobs`).
WordMemo = dict[tuple[str, int, bool, bool], list[Word]]


class Parser:
    """Parses one file; use :func:`parse_source`."""

    def __init__(self, source: Source, memo: WordMemo | None = None) -> None:
        self.source = source
        #: What the original pf tolerated and this parse accepted, in text order.
        self.warnings: list[DslError] = []
        self.reader = Reader(source, self.warnings)
        self._memo: WordMemo = {} if memo is None else memo

    def _words(self, line: Line, start: int, keys: bool, lists: bool) -> list[Word]:
        """:func:`pf.dsl.lexer.words` from ``start``, cut once per distinct line (read-only)."""
        key = (line.text, start, keys, lists)
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = words(line, start, keys=keys, lists=lists)
        return found

    # ------------------------------------------------------------ top level

    def parse_file(self) -> FileAst:
        items: list[Item] = []
        line = self.reader
        advance = line.advance
        while (verb := advance()) is not None:
            if verb == "task":
                items.append(self._task(line))
            elif verb == "include":
                items.append(self._include(line, line.rest))
            elif verb == "env":
                items.append(self._env(line))
            elif verb == "hosts":
                items.append(self._hosts(line, line.rest))
            elif verb == "end":
                raise DslError(line.verb_span(), "stray-end")
            elif verb == "else":
                raise DslError(line.verb_span(), "stray-else")
            elif verb in _OPENERS:
                # Ignoring an `if` or `for` would leave its `end` stray: still an error.
                raise DslError(line.verb_span(), "verb-outside-task", {"verb": verb})
            elif verb in TASK_VERBS:
                self.warnings.append(
                    DslWarning(line.verb_span(), "ignored-outside-task", {"verb": verb})
                )
                if verb == "shell":
                    self._skip_shell_body(line)
            elif verb == "image":
                self.warnings.append(
                    DslWarning(line.verb_span(), "ignored-statement", {"verb": verb})
                )
            elif verb.startswith("[alias"):
                self.warnings.append(
                    DslWarning(line.span(line.start, line.end), "alias-outside-task")
                )
            else:
                facts = {"word": verb}
                guess = suggest(verb, TOP_LEVEL)
                if guess:
                    facts["suggestion"] = guess
                raise DslError(line.verb_span(), "unknown-statement", facts)
        return FileAst(self.source, tuple(items))

    def _include(self, line: Line, r: int) -> Include:
        found = words(line, r, keys=False, lists=False)
        if not found:
            raise self._missing(line, r, "include", "a file path", "write `include PATH`")
        if len(found) > 1:
            raise self._trailing(line, "include", found[1])
        if not found[0].text:  # include ""
            raise self._missing(
                line, found[0].start, "include", "a file path", "write `include PATH`"
            )
        return Include(found[0].text, line.span(found[0].start, found[0].end))

    def _hosts(self, line: Line, r: int) -> HostsDecl:
        rest = line.text[r:]
        eq = rest.find("=")
        name = rest[:eq].strip() if eq != -1 else ""
        value = rest[eq + 1 :].strip() if eq != -1 else ""
        if value.startswith("[") and value.endswith("]"):
            value = value[1:-1]
        hosts = tuple(h.strip("\"'") for h in value.replace(",", " ").split())
        if not name or not _task_name_ok(name) or not all(hosts) or not hosts:
            raise DslError(
                line.span(r, line.end) if r < line.end else line.verb_span(), "invalid-hosts"
            )
        return HostsDecl(name, hosts, line.statement_span())

    # ------------------------------------------------------------ tasks

    def _task(self, line: Line) -> TaskDef:
        text, a, r, end = line.text, line.start, line.rest, line.end
        aliases: list[Ref] = []
        # The usual header ends with its alias list: cut it off by hand rather than
        # through the general list syntax (headers are a third of all lines).
        bracket = text.rfind("[", r, end) if text[end - 1] == "]" else -1
        stop = len(text)
        if (
            bracket > r
            and text[bracket - 1] in " \t"
            and '"' not in text[bracket:end]
            and "'" not in text[bracket:end]
        ):
            aliases = self._aliases(line, bracket + 1, end - 1)
            stop = bracket
        # The usual name and parameters are plain words: take them without the
        # general word scan, which reads (and reports) everything else.
        cut = text.find(" ", r, stop)
        if cut == -1:
            cut = stop
        name = text[r:cut]
        params: tuple[Param, ...] | None = None
        if name and _task_name_ok(name):
            params = _simple_params(line, cut, stop) if cut < end else ()
        if params is None:
            name, name_span, params = self._header(line, stop, aliases)
            span = line.span(a, end)
        elif line.segments is None:  # one physical line: spans without Line.span's search
            source, lineno, offset = line.source, line.lineno, line.offset
            name_span = new(Span, (source, lineno, r + 1, offset + r, cut - r))
            span = new(Span, (source, lineno, a + 1, offset + a, end - a))
        else:
            name_span = line.span(r, cut)
            span = line.span(a, end)
        state = _TaskState(name)
        if "-" in text[cut:stop]:  # rare: look at the names only then
            self._hyphens(state, params)
        body = self._block(state, "task", span, None)[0]
        if state.aliases is not None:
            aliases += state.aliases
        needs = state.needs
        sources = state.sources
        generates = state.generates
        return new(
            TaskDef,
            (
                name,
                name_span,
                params,
                tuple(aliases) if aliases else (),
                state.task_meta(),
                () if needs is None else tuple(needs),
                () if sources is None else tuple(sources),
                () if generates is None else tuple(generates),
                tuple(body),
                span,
            ),
        )

    def _hyphens(self, state: _TaskState, params: tuple[Param, ...]) -> None:
        """Warn of each hyphenated parameter and have shell lines see it by its sh twin."""
        hyphens = [p for p in params if "-" in p.name]
        for param in hyphens:
            name = param.name
            self.warnings.append(
                DslWarning(
                    param.span, "hyphenated-parameter", {"name": name, "twin": sh_twin(name)}
                )
            )
        state.hyphens = tuple(sorted((p.name for p in hyphens), key=len, reverse=True))

    def _header(
        self, line: Line, stop: int, aliases: list[Ref]
    ) -> tuple[str, Span, tuple[Param, ...]]:
        """Name and parameters of a header read word by word, with every error reported.

        ``stop`` is where the alias list begins (the end of the text if there is none).
        """
        text, r, end = line.text, line.rest, line.end
        if stop < len(text):
            found = words(line, r, stop, keys=True, lists=True)
        elif r < end and " " not in text[r:end] and "\t" not in text[r:end]:
            found = [Word(text[r:end], r, end, None, None, True)]  # `task NAME` as written
        else:
            found = words(line, r, keys=True, lists=True)
        if not found:
            raise DslError(line.span(r, r), "missing-task-name")
        first = found[0]
        name = text[first.start : first.end]
        name_span = line.span(first.start, first.end)
        if (
            first.key is not None
            or first.items is not None
            or not first.bare
            or not _task_name_ok(name)
        ):
            raise DslError(name_span, "invalid-task-name", {"name": name})
        params: tuple[Param, ...] = ()
        if len(found) > 1:
            params = self._params(line, found, aliases)
        return name, name_span, params

    def _params(self, line: Line, found: list[Word], aliases: list[Ref]) -> tuple[Param, ...]:
        """The header's words after the name: parameters, and ``[alias ...]`` lists."""
        params: list[Param] = []
        seen: dict[str, Span] = {}
        for word in found[1:]:
            start, stop, key, items = word.start, word.end, word.key, word.items
            span = line.span(start, stop)
            if items is not None and key is None:
                aliases += self._aliases(line, start + 1, stop - 1)
                continue
            pname = word.text if key is None else key
            if (
                items is not None
                or not _param_name_ok(pname, is_param_name)
                or (key is None and not word.bare)
            ):
                raise DslError(span, "invalid-parameter", {"text": line.text[start:stop]})
            if pname in seen:
                raise DslError(span, "duplicate-parameter", {"name": pname}, (seen[pname],))
            seen[pname] = span
            params.append(new(Param, (pname, None if key is None else word.text, span)))
        return tuple(params)

    def _aliases(self, line: Line, at: int, end: int) -> list[Ref]:
        """``[alias bc|alias=buildc]`` between ``at`` and ``end``: names, each with its span."""
        text = line.text
        out: list[Ref] = []
        while at <= end:
            bar = text.find("|", at, end)
            stop = end if bar == -1 else bar
            part = text[at:stop]
            body = part.strip()
            lead = at + len(part) - len(part.lstrip())
            name = ""
            if body.startswith("alias"):
                after = body[5:]
                if after[:1] in (" ", "\t", "="):  # `aliasbc` is not `alias bc`
                    name = after.lstrip(" \t=")
            if not name or not _task_name_ok(name):
                raise DslError(
                    line.span(lead, lead + max(len(body), 1)), "invalid-alias", {"text": body}
                )
            name_at = lead + len(body) - len(name)
            out.append(new(Ref, (name, line.span(name_at, name_at + len(name)))))
            at = stop + 1
        return out

    def _block(
        self, state: _TaskState, kind: str, opener: Span, inside: str | None
    ) -> tuple[list[Statement], str]:
        """Statements up to the ``end`` (or ``else``) closing this block; returns which.

        ``opener`` is the statement span of the line that opened the block (``task``,
        ``if`` or ``for``); a missing ``end`` is reported at its verb.
        """
        body: list[Statement] = []
        append = body.append
        line = self.reader
        advance = line.advance
        statements = _STATEMENTS
        while (verb := advance()) is not None:
            if verb == "end":
                if line.rest < line.end:
                    self._nothing_after(line, "end", line.rest)
                return body, "end"
            parse = statements.get(verb)
            if parse is not None:
                append(parse(self, state, line))
                continue
            declare = _DECLARATIONS.get(verb)
            if declare is not None:
                if inside is not None:
                    block = "if" if inside == "else" else inside
                    raise DslError(
                        line.verb_span(), "declaration-in-block", {"verb": verb, "block": block}
                    )
                declare(self, state, line)
                continue
            if verb == "else":
                if inside == "else":
                    raise DslError(line.verb_span(), "duplicate-else")
                if inside != "if":
                    raise DslError(line.verb_span(), "stray-else")
                self._nothing_after(line, "else", line.rest)
                return body, "else"
            if verb == "task":
                raise self._unclosed(state, kind, opener, "task", (line.verb_span(),))
            if verb.startswith("[alias") and inside is None:
                self._alias_line(state, line)
                continue
            if verb in ("include", "hosts"):
                raise DslError(
                    line.verb_span(), "top-level-only", {"verb": verb, "task": state.name}
                )
            append(self._unrunnable(line, verb))
        if kind == "task":
            self.warnings.append(
                DslWarning(self._verb_of(opener, kind), "missing-end-at-eof", {"name": state.name})
            )
            return body, "end"
        raise self._unclosed(state, kind, opener, "", ())

    def _unrunnable(self, line: Line, verb: str) -> Unrunnable:
        """A line without a pf verb, or with a helper pf lacks: a warning now, an error if run."""
        text = line.text[line.start : line.end]
        facts = {"verb": verb, "text": text}
        if verb in UNSUPPORTED_HELPERS:
            kind = "unsupported-helper"
        else:
            kind = "bare-command"
            guess = suggest(verb, TASK_VERBS)
            if guess:
                facts["suggestion"] = guess
        span = line.verb_span()
        self.warnings.append(DslWarning(span, kind, facts))
        return new(Unrunnable, (text, kind, tuple(facts.items()), span))

    def _alias_line(self, state: _TaskState, line: Line) -> None:
        """``[alias x|alias=y]`` on a line of its own in a task: more names for it."""
        text, a, end = line.text, line.start, line.end
        if text[end - 1] != "]":
            raise DslError(line.span(a, end), "invalid-alias", {"text": text[a:end]})
        found = self._aliases(line, a + 1, end - 1)
        if state.aliases is None:
            state.aliases = found
        else:
            state.aliases += found

    @staticmethod
    def _verb_of(opener: Span, kind: str) -> Span:
        # The verb starts the statement span: cut that down to the verb, as
        # Line.verb_span would (one span less to build per block).
        return new(
            Span,
            (opener.source, opener.line, opener.col, opener.offset, min(len(kind), opener.length)),
        )

    @staticmethod
    def _unclosed(
        state: _TaskState, kind: str, opener: Span, next_verb: str, related: tuple[Span, ...]
    ) -> DslError:
        block = f"task {state.name}" if kind == "task" else kind
        return DslError(
            Parser._verb_of(opener, kind),
            "missing-end",
            {"block": block, "next": next_verb},
            related,
        )

    # ------------------------------------------------------------ statements
    # Each takes (state, line) and is found through _STATEMENTS or _DECLARATIONS.

    def _shell(self, state: _TaskState, line: Line) -> Shell | Unrunnable:
        node = self._shell_node(state, line)
        lang = node.lang
        if lang is None or lang in LANGUAGE_NAMES or "$" in lang:
            return node
        # A language pf does not know: loaded, and an error only if the line is run.
        if lang == state.lang and state.lang_span is not None:
            span = state.lang_span  # from `shell_lang`, which warned already
            facts = self._language_facts(lang)
        else:
            code = line.text[line.rest : line.end]
            name = code[6 : code.find("]")].strip()
            at = line.rest + code.rfind(name, 0, code.find("]"))
            span = line.span(at, at + len(name))
            facts = self._language_facts(name)
            self.warnings.append(DslWarning(span, "unknown-language", facts))
        text = line.text[line.start : line.end]
        return new(Unrunnable, (text, "unknown-language", tuple(facts.items()), span))

    def _shell_node(self, state: _TaskState, line: Line) -> Shell:
        text, a, r, end = line.text, line.start, line.rest, line.end
        span = line.span(a, end)
        code = text[r:end]
        if code[-1:].isspace():  # blanks other than space and tab end the line too
            code = code.rstrip()
        if code and code[0] not in "[<@|" and "<<" not in code:  # the common `shell CMD`
            if state.hyphens and state.lang in _SH:
                code = _sh_names(code, state.hyphens)
            return new(Shell, (code, state.lang, span, None, (), False))
        code_at = r
        lang = state.lang
        if code[:5].lower() == "[lang":
            close = code.find("]")
            inner = code[1:close].strip() if close != -1 else ""
            tag = inner[5:].strip().lower() if inner[:5].lower() == "lang:" else ""
            if not tag or tag.split()[0] != tag:
                word = code[: close + 1] if close != -1 else code.split()[0]
                raise DslError(line.span(r, r + len(word)), "invalid-lang-tag", {"word": word})
            # `[lang:$var]` is resolved when the line runs, so its case is kept.
            lang = code[6:close].strip() if "$" in tag else tag
            rest = code[close + 1 :]
            code = rest.lstrip()
            code_at = r + close + 1 + len(rest) - len(code)
        if not code:
            raise self._missing(line, code_at, "shell", "a command", "write `shell CMD`")
        if code == "|":
            body = self._block_text(line)
            if not body:
                raise self._missing(
                    line,
                    code_at + 1,
                    "shell",
                    "an indented block",
                    "indent the lines of the script",
                )
            if state.hyphens and lang in _SH:
                body = _sh_names(body, state.hyphens)
            return new(Shell, (body, lang, span, None, (), False))
        if code.startswith("<<"):
            delimiter = code[2:].lstrip("-~").strip()
            if len(delimiter) >= 2 and delimiter[0] == delimiter[-1] and delimiter[0] in "\"'":
                delimiter = delimiter[1:-1]
            if delimiter and delimiter.split()[0] == delimiter:
                body = self._heredoc(line, code_at, len(code), delimiter)
                if state.hyphens and lang in _SH:
                    body = _sh_names(body, state.hyphens)
                return new(Shell, (body, lang, span, None, (), True))
        if code[0] == "@":
            found = words(line, code_at, keys=False, lists=False)
            path = found[0].text[1:]
            if not path:
                raise self._missing(
                    line,
                    code_at + 1,
                    "shell",
                    "a file after `@`",
                    "write `shell @script.py -- ARGS`",
                )
            rest_words = found[1:]
            if rest_words and rest_words[0].bare and rest_words[0].text == "--":
                rest_words = rest_words[1:]
            return Shell("", lang, span, file=path, args=tuple(w.text for w in rest_words))
        if "<<" in code and lang in _SH:
            docs = _heredocs(code)
            if docs:
                script = self._with_heredocs(line, code, code_at, docs, state.hyphens)
                return new(Shell, (script, lang, span, None, (), False))
        if state.hyphens and lang in _SH:
            code = _sh_names(code, state.hyphens)
        return new(Shell, (code, lang, span, None, (), False))

    def _with_heredocs(
        self,
        line: Line,
        code: str,
        at: int,
        docs: list[tuple[str, bool]],
        hyphens: tuple[str, ...],
    ) -> str:
        """A bash line that opens heredocs, then each body (dedented) and its terminator.

        The terminator is written at the start of its line, where bash looks for it;
        a quoted delimiter's body is bash's literal text, so it is never rewritten.
        """
        parts = [_sh_names(code, hyphens) if hyphens else code]
        for word, quoted in docs:
            body: list[str] = []
            while (raw := self.reader.raw()) is not None and raw[0].strip() != word:
                body.append(raw[0])
            if raw is None:
                start = at + code.find("<<")
                raise DslError(
                    line.span(start, start + 2), "unterminated-heredoc", {"delimiter": word}
                )
            text = "\n".join(_dedent(body))
            parts += [_sh_names(text, hyphens) if hyphens and not quoted else text, word]
        return "\n".join(parts) + "\n"

    def _skip_shell_body(self, line: Line) -> None:
        """Read past the block or heredocs of an ignored ``shell`` line, so that their
        lines are not read as statements."""
        code = line.text[line.rest : line.end]
        if code == "|":
            self._block_text(line)
            return
        for word, _ in _heredocs(code) if "<<" in code else ():
            while (raw := self.reader.raw()) is not None and raw[0].strip() != word:
                pass

    def _block_text(self, line: Line) -> str:
        """The block of a ``shell |`` line: the lines indented deeper than its verb, dedented."""
        margin = line.span(line.start, line.start).col - 1
        body = _dedent(self.reader.indented(margin))
        return "\n".join(body) + "\n" if body else ""

    def _heredoc(self, line: Line, at: int, width: int, delimiter: str) -> str:
        body: list[str] = []
        while (raw := self.reader.raw()) is not None:
            if raw[0].strip() == delimiter:
                body = _dedent(body)
                return "\n".join(body) + "\n" if body else ""
            body.append(raw[0])
        raise DslError(line.span(at, at + width), "unterminated-heredoc", {"delimiter": delimiter})

    def _shell_lang(self, state: _TaskState, line: Line) -> ShellLang:
        r = line.rest
        found = words(line, r, keys=False, lists=False)
        if not found or not found[0].text:  # `shell_lang ""` names no language either
            raise self._missing(
                line,
                r,
                "shell_lang",
                "a language",
                "write `shell_lang python` or `shell_lang default`",
            )
        if len(found) > 1:
            raise self._trailing(line, "shell_lang", found[1])
        word = found[0]
        name = word.text if "$" in word.text else word.text.lower()
        state.lang_span = None
        if name not in LANGUAGE_NAMES and "$" not in name:
            span = line.span(word.start, word.end)
            self.warnings.append(
                DslWarning(span, "unknown-language", self._language_facts(word.text))
            )
            state.lang_span = span
        state.lang = None if name == "default" else name
        return ShellLang(state.lang, line.statement_span())

    def _env_statement(self, state: _TaskState, line: Line) -> Env:
        return self._env(line)

    def _env(self, line: Line) -> Env:
        r = line.rest
        simple = _simple_env(line.text, r)
        if simple is not None:
            return new(Env, (simple, line.statement_span()))
        return self._env_words(line)

    def _env_words(self, line: Line) -> Env:
        """``env`` read word by word, every mistake reported (what :func:`_simple_env` is
        a shortcut of, for the lines it takes)."""
        r = line.rest
        found = words(line, r, keys=True, lists=True)
        if not found:
            raise self._missing(line, r, "env", "KEY=VALUE pairs", 'write `env KEY=VALUE K2="v w"`')
        pairs: list[tuple[str, str]] = []
        for word in found:
            key, items = word.key, word.items
            if key is None or items is not None or not _param_name_ok(key):
                span = line.span(word.start, word.end)
                if key is None:
                    raise DslError(
                        span,
                        "expected-key-value",
                        {"word": line.text[word.start : word.end], "verb": "env"},
                    )
                if items is not None:
                    raise DslError(span, "list-not-allowed")
                raise DslError(
                    span,
                    "invalid-argument",
                    {
                        "what": "an environment variable name is an sh name",
                        "word": key,
                        "usage": "use letters, digits and `_`",
                    },
                )
            pairs.append((key, word.text))
        return new(Env, (tuple(pairs), line.statement_span()))

    def _if(self, state: _TaskState, line: Line) -> If:
        text = line.text
        r = line.rest
        rest = text[r:].rstrip()
        test_span = line.span(r, r + len(rest))
        test: Test
        if rest.startswith("`"):
            command = rest[1:-1].strip() if len(rest) >= 2 and rest.endswith("`") else ""
            if not command:
                raise DslError(test_span, "invalid-condition")
            test = Test("cmd", command, None, test_span)
        else:
            found = self._words(line, r, False, False)
            if len(found) == 1:
                test = Test("set", found[0].text, None, test_span)
            elif len(found) == 3 and found[1].bare and found[1].text in ("==", "!="):
                test = Test(found[1].text, found[0].text, found[2].text, test_span)
            else:
                raise DslError(test_span, "invalid-condition")
        span = line.statement_span()
        body, end = self._block(state, "if", span, "if")
        orelse: list[Statement] = []
        if end == "else":
            orelse = self._block(state, "if", span, "else")[0]
        return new(If, (test, tuple(body), tuple(orelse), span))

    def _for(self, state: _TaskState, line: Line) -> For:
        r = line.rest
        found = self._words(line, r, False, True)
        end = line.end
        if len(found) < 3 or not found[0].bare or not is_name(found[0].text):
            raise self._invalid_for(line)
        if not found[1].bare or found[1].text != "in":
            raise self._invalid_for(line)
        values = found[2:]
        items: tuple[str, ...] | None = None
        source: str | None = None
        if len(values) == 1 and values[0].items is not None:
            items = values[0].items
        elif any(v.items is not None for v in values):
            raise self._invalid_for(line)
        elif len(values) == 1 and "$" in values[0].text:
            source = values[0].text
        else:
            items = tuple(v.text for v in values)
        span = line.span(line.start, end)
        body = self._block(state, "for", span, "for")[0]
        return new(For, (found[0].text, items, source, tuple(body), span))

    @staticmethod
    def _invalid_for(line: Line) -> DslError:
        r, end = line.rest, line.end
        return DslError(line.span(r, end) if end > r else line.verb_span(), "invalid-for")

    def _metadata(self, state: _TaskState, line: Line) -> None:
        verb, r = line.verb, line.rest
        text = line.text[r:].strip()
        if not text:
            raise self._missing(line, r, verb, "a text", f"write `{verb} TEXT`")
        meta = state.meta
        if meta is None:
            if verb == "describe" and state.describe is None:
                state.describe = _unquote(text)
                return
            meta = state.meta = {} if state.describe is None else {"describe": [state.describe]}
        values = text.split() if verb == "tag" else [_unquote(text)]
        if verb in meta:
            meta[verb] += values
        else:
            meta[verb] = values

    def _needs(self, state: _TaskState, line: Line) -> None:
        found = self._patterns(line, "task names")
        needs = state.needs
        if needs is None:
            needs = state.needs = []
        for word in found:
            span = line.span(word.start, word.end)
            name = word.text
            group, _, task = name.rpartition(":")
            if (
                not word.bare
                or not task
                or not _task_name_ok(task)
                or (group and not _task_name_ok(group))
            ):
                raise DslError(
                    span,
                    "invalid-argument",
                    {
                        "what": "`needs` takes task names",
                        "word": line.text[word.start : word.end],
                        "usage": "write `needs build test` or `needs web:build`",
                    },
                )
            needs.append(new(Ref, (name, span)))

    def _sources(self, state: _TaskState, line: Line) -> None:
        found = self._patterns(line, "file patterns")
        if state.sources is None:
            state.sources = []
        state.sources += [w.text for w in found]

    def _generates(self, state: _TaskState, line: Line) -> None:
        found = self._patterns(line, "file patterns")
        if state.generates is None:
            state.generates = []
        state.generates += [w.text for w in found]

    def _patterns(self, line: Line, what: str) -> list[Word]:
        verb, r = line.verb, line.rest
        found = self._words(line, r, False, False)
        if not found:
            raise self._missing(line, r, verb, what, f"write `{verb} a b`")
        return found

    def _verb(self, state: _TaskState, line: Line) -> Verb:
        verb = line.verb
        args: list[str] = []
        kwargs: dict[str, Value] = {}
        found = self._words(line, line.rest, True, True)
        for word in found:
            key, items = word.key, word.items
            if key is None:
                if items is not None:
                    raise DslError(line.span(word.start, word.end), "list-not-allowed")
                args.append(word.text)
            elif key in kwargs:
                first = next(w for w in found if w.key == key)
                raise DslError(
                    line.span(word.start, word.end),
                    "duplicate-argument",
                    {"key": key},
                    (line.span(first.start, first.end),),
                )
            else:
                kwargs[key] = word.text if items is None else items
        arity = ARITY.get(verb)
        if arity is not None:
            if len(args) < arity[0]:
                raise self._missing(line, line.end, verb, arity[1], arity[2])
            if verb == "packages":
                args = self._packages(line, found, args, arity[2])
        elif verb == "sync":
            for key in ("src", "dest"):
                if key not in kwargs:
                    raise self._missing(line, line.end, "sync", f"`{key}=`", SYNC_USAGE)
        where = (self.reader.line(), found)  # the reader moves on: keep a copy of the line
        return new(Verb, (verb, tuple(args), kwargs, line.statement_span(), where))

    def _packages(self, line: Line, found: list[Word], args: list[str], usage: str) -> list[str]:
        """``packages install|remove NAMES``; the original's ``packages NAMES`` installs them."""
        first = next(w for w in found if w.key is None)
        span = line.span(first.start, first.end)
        if args[0] in _PACKAGE_ACTIONS:
            if len(args) < 2:
                raise self._missing(line, line.end, "packages", "package names", usage)
            return args
        if suggest(args[0], _PACKAGE_ACTIONS):  # `packages instal x`: a typo, not a package
            facts = {"what": "`packages` does `install` or `remove`", "word": args[0]}
            raise DslError(span, "invalid-argument", {**facts, "usage": usage})
        self.warnings.append(DslWarning(span, "packages-without-action", {"names": " ".join(args)}))
        return ["install", *args]

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _missing(line: Line, at: int, verb: str, what: str, usage: str) -> DslError:
        # A zero-width span where the missing word would go: right after the text.
        if not line.text[at:].strip():
            at = min(at, line.end)
        return DslError(
            line.span(at, at), "missing-argument", {"verb": verb, "what": what, "usage": usage}
        )

    @staticmethod
    def _trailing(line: Line, verb: str, word: Word) -> DslError:
        return DslError(
            line.span(word.start, word.end),
            "trailing-words",
            {"verb": verb, "word": line.text[word.start : word.end]},
        )

    @staticmethod
    def _language_facts(name: str) -> dict[str, str]:
        """What an ``unknown-language`` warning or error says of ``name``."""
        return language_facts(name)

    def _nothing_after(self, line: Line, verb: str, r: int) -> None:
        rest = line.text[r:].rstrip()
        if rest:
            word = rest.split()[0]
            raise DslError(
                line.span(r, r + len(word)), "trailing-words", {"verb": verb, "word": word}
            )


#: How each statement verb is read inside a task (by the verb of the line).
_STATEMENTS: dict[str, Callable[[Parser, _TaskState, Line], Statement]] = {
    "shell": Parser._shell,
    "env": Parser._env_statement,
    "if": Parser._if,
    "for": Parser._for,
    "shell_lang": Parser._shell_lang,
    **dict.fromkeys(GENERIC_VERBS, Parser._verb),
}
#: Declarations: hoisted onto the task, only at the top level of its body.
_DECLARATIONS: dict[str, Callable[[Parser, _TaskState, Line], None]] = {
    **dict.fromkeys(METADATA, Parser._metadata),
    "needs": Parser._needs,
    "sources": Parser._sources,
    "generates": Parser._generates,
}
assert set(_DECLARATIONS) == set(DECLARATIONS)


_SH_LIKE = ("bash", "sh", "dash", "ksh", "zsh")
#: The languages whose code bash or sh reads: hyphenated parameters are rewritten there.
_SH = frozenset((None, *(name for sh in _SH_LIKE for name in (sh, *LANGUAGES[sh]))))
_PACKAGE_ACTIONS = ("install", "remove")
#: Verbs that open a block: outside a task they cannot be skipped alone.
_OPENERS = frozenset(("if", "for"))


def parse_source(
    source: Source, memo: WordMemo | None = None, warnings: list[DslError] | None = None
) -> FileAst:
    """Parse one file's text (no includes followed) into its syntax tree.

    Files parsed together may share ``memo`` (a dict, empty at first). The
    warnings of the parse are appended to ``warnings`` when it is given.
    """
    parser = Parser(source, memo)
    tree = parser.parse_file()
    if warnings is not None:
        warnings += parser.warnings
    return tree
