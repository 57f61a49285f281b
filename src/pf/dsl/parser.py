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
reported at the line that opened it. Declarations (metadata, ``needs``,
``sources``, ``generates``) are hoisted onto the task; ``shell_lang`` is applied
statically, in text order, to later ``shell`` lines.
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
    Value,
    Verb,
)
from pf.dsl.errors import DslError
from pf.dsl.lexer import Line, Reader, Word, is_name, words
from pf.dsl.source import Source, Span
from pf.dsl.suggest import suggest
from pf.dsl.verbs import (
    ARITY,
    DECLARATIONS,
    GENERIC_VERBS,
    METADATA,
    SYNC_USAGE,
    TASK_VERBS,
    TOP_LEVEL,
)


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


_NO_META = Meta()


class _TaskState:
    """What the parser accumulates for the task being read."""

    __slots__ = (
        "describe",
        "examples",
        "generates",
        "lang",
        "name",
        "needs",
        "notes",
        "sources",
        "synopsis",
        "tags",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.lang: str | None = None  # sticky shell_lang, applied in text order
        self.describe: list[str] = []
        self.synopsis: list[str] = []
        self.examples: list[str] = []
        self.notes: list[str] = []
        self.tags: list[str] = []
        self.needs: list[Ref] = []
        self.sources: list[str] = []
        self.generates: list[str] = []

    def meta(self) -> Meta:
        if not (self.describe or self.synopsis or self.examples or self.notes or self.tags):
            return _NO_META
        return Meta(
            "\n".join(self.describe) if self.describe else None,
            "\n".join(self.synopsis) if self.synopsis else None,
            tuple(self.examples),
            tuple(self.notes),
            tuple(self.tags),
        )


class Parser:
    """Parses one file; use :func:`parse_source`."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.reader = Reader(source)

    # ------------------------------------------------------------ top level

    def parse_file(self) -> FileAst:
        items: list[Item] = []
        while (line := self.reader.next()) is not None:
            verb, a, r = line.verb, line.start, line.rest
            b = a + len(verb)
            if verb == "task":
                items.append(self._task(line, a, b, r))
            elif verb == "include":
                items.append(self._include(line, r))
            elif verb == "env":
                items.append(self._env(line, a, r))
            elif verb == "hosts":
                items.append(self._hosts(line, a, r))
            elif verb == "end":
                raise DslError(line.span(a, b), "stray-end")
            elif verb == "else":
                raise DslError(line.span(a, b), "stray-else")
            elif verb in TASK_VERBS:
                raise DslError(line.span(a, b), "verb-outside-task", {"verb": verb})
            else:
                facts = {"word": verb}
                guess = suggest(verb, TOP_LEVEL)
                if guess:
                    facts["suggestion"] = guess
                raise DslError(line.span(a, b), "unknown-statement", facts)
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

    def _hosts(self, line: Line, a: int, r: int) -> HostsDecl:
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

    def _task(self, line: Line, a: int, b: int, r: int) -> TaskDef:
        text = line.text
        end = line.end
        aliases: list[Ref] = []
        # The usual header ends with its alias list: cut it off by hand rather than
        # through the general list syntax (headers are a third of all lines).
        bracket = text.rfind("[", r, end) if text[end - 1] == "]" else -1
        if (
            bracket > r
            and text[bracket - 1] in " \t"
            and not any(q in text[bracket:end] for q in "\"'")
        ):
            aliases = self._aliases(line, bracket + 1, end - 1)
            found = words(line, r, bracket, keys=True, lists=True)
        elif r < end and " " not in text[r:end] and "\t" not in text[r:end]:
            found = [new(Word, (text[r:end], r, end, None, None, True))]  # `task NAME`
        else:
            found = words(line, r, keys=True, lists=True)
        if not found:
            raise self._missing_name(line, r)
        first = found[0]
        name = text[first.start : first.end]
        name_span = line.span(first.start, first.end)
        if first.key is not None or first.items is not None or not first.bare:
            raise DslError(name_span, "invalid-task-name", {"name": name})
        if not _task_name_ok(name):
            raise DslError(name_span, "invalid-task-name", {"name": name})
        params: list[Param] = []
        seen: dict[str, Span] = {}
        for word in found[1:]:
            span = line.span(word.start, word.end)
            if word.items is not None and word.key is None:
                aliases += self._aliases(line, word.start + 1, word.end - 1)
                continue
            pname = word.key if word.key is not None else word.text
            if word.items is not None or not is_name(pname) or (word.key is None and not word.bare):
                raise DslError(span, "invalid-parameter", {"text": text[word.start : word.end]})
            if pname in seen:
                raise DslError(span, "duplicate-parameter", {"name": pname}, (seen[pname],))
            seen[pname] = span
            params.append(Param(pname, word.text if word.key is not None else None, span))
        state = _TaskState(name)
        opener = line.span(a, b)
        body, _ = self._block(state, f"task {name}", opener, None)
        return TaskDef(
            name,
            name_span,
            tuple(params),
            tuple(aliases),
            state.meta(),
            tuple(state.needs),
            tuple(state.sources),
            tuple(state.generates),
            tuple(body),
            line.statement_span(),
        )

    def _missing_name(self, line: Line, r: int) -> DslError:
        return DslError(line.span(r, r), "missing-task-name")

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
            out.append(Ref(name, line.span(name_at, name_at + len(name))))
            at = stop + 1
        return out

    def _block(
        self, state: _TaskState, kind: str, opener: Span, inside: str | None
    ) -> tuple[list[Statement], str]:
        """Statements up to the ``end`` (or ``else``) closing this block; returns which."""
        body: list[Statement] = []
        reader = self.reader
        while (line := reader.next()) is not None:
            verb, a, r = line.verb, line.start, line.rest
            b = a + len(verb)
            if verb == "end":
                if r < line.end:
                    self._nothing_after(line, "end", r)
                return body, "end"
            if verb == "else":
                if inside == "else":
                    raise DslError(line.span(a, b), "duplicate-else")
                if inside != "if":
                    raise DslError(line.span(a, b), "stray-else")
                self._nothing_after(line, "else", r)
                return body, "else"
            if verb == "task":
                raise DslError(
                    opener, "missing-end", {"block": kind, "next": "task"}, (line.span(a, b),)
                )
            if verb in ("include", "hosts"):
                raise DslError(
                    line.span(a, b), "top-level-only", {"verb": verb, "task": state.name}
                )
            if verb == "shell":
                body.append(self._shell(state, line, a, r))
            elif verb in GENERIC_VERBS:
                body.append(self._verb(line, verb, a, r))
            elif verb == "env":
                body.append(self._env(line, a, r))
            elif verb == "if":
                body.append(self._if(state, line, a, b, r))
            elif verb == "for":
                body.append(self._for(state, line, a, b, r))
            elif verb == "shell_lang":
                body.append(self._shell_lang(state, line, a, r))
            elif verb in DECLARATIONS:
                if inside is not None:
                    block = "if" if inside == "else" else inside
                    raise DslError(
                        line.span(a, b), "declaration-in-block", {"verb": verb, "block": block}
                    )
                self._declaration(state, line, verb, r)
            else:
                facts = {"verb": verb}
                guess = suggest(verb, TASK_VERBS)
                if guess:
                    facts["suggestion"] = guess
                raise DslError(line.span(a, b), "unknown-verb", facts)
        raise DslError(opener, "missing-end", {"block": kind, "next": ""})

    # ------------------------------------------------------------ statements

    def _shell(self, state: _TaskState, line: Line, a: int, r: int) -> Shell:
        text = line.text
        span = line.statement_span()
        code_at = r
        code = text[r:].rstrip()
        lang = state.lang
        if code[:5].lower() == "[lang":
            close = code.find("]")
            inner = code[1:close].strip() if close != -1 else ""
            tag = inner[5:].strip().lower() if inner[:5].lower() == "lang:" else ""
            if not tag or tag.split()[0] != tag:
                word = code[: close + 1] if close != -1 else code.split()[0]
                raise DslError(line.span(r, r + len(word)), "invalid-lang-tag", {"word": word})
            lang = tag
            rest = code[close + 1 :]
            code = rest.lstrip()
            code_at = r + close + 1 + len(rest) - len(code)
        if not code:
            raise self._missing(line, code_at, "shell", "a command", "write `shell CMD`")
        if code.startswith("<<"):
            delimiter = code[2:].lstrip("-~").strip()
            if len(delimiter) >= 2 and delimiter[0] == delimiter[-1] and delimiter[0] in "\"'":
                delimiter = delimiter[1:-1]
            if delimiter and delimiter.split()[0] == delimiter:
                body = self._heredoc(line, code_at, len(code), delimiter)
                return Shell(body, lang, span, heredoc=True)
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
        return Shell(code, lang, span)

    def _heredoc(self, line: Line, at: int, width: int, delimiter: str) -> str:
        body: list[str] = []
        while (raw := self.reader.raw()) is not None:
            if raw[0].strip() == delimiter:
                body = _dedent(body)
                return "\n".join(body) + "\n" if body else ""
            body.append(raw[0])
        raise DslError(line.span(at, at + width), "unterminated-heredoc", {"delimiter": delimiter})

    def _shell_lang(self, state: _TaskState, line: Line, a: int, r: int) -> ShellLang:
        found = words(line, r, keys=False, lists=False)
        if not found:
            raise self._missing(
                line,
                r,
                "shell_lang",
                "a language",
                "write `shell_lang python` or `shell_lang default`",
            )
        if len(found) > 1:
            raise self._trailing(line, "shell_lang", found[1])
        name = found[0].text.lower()
        state.lang = None if name == "default" else name
        return ShellLang(state.lang, line.statement_span())

    def _env(self, line: Line, a: int, r: int) -> Env:
        found = words(line, r, keys=True, lists=True)
        if not found:
            raise self._missing(line, r, "env", "KEY=VALUE pairs", 'write `env KEY=VALUE K2="v w"`')
        pairs: list[tuple[str, str]] = []
        for word in found:
            key = word.key
            if key is None or word.items is not None or not is_name(key):
                span = line.span(word.start, word.end)
                if key is None:
                    raise DslError(
                        span,
                        "expected-key-value",
                        {"word": line.text[word.start : word.end], "verb": "env"},
                    )
                if word.items is not None:
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
        return Env(tuple(pairs), line.statement_span())

    def _if(self, state: _TaskState, line: Line, a: int, b: int, r: int) -> If:
        text = line.text
        rest = text[r:].rstrip()
        test_span = line.span(r, r + len(rest)) if rest else line.span(r, r)
        test: Test
        if rest.startswith("`"):
            command = rest[1:-1].strip() if len(rest) >= 2 and rest.endswith("`") else ""
            if not command:
                raise DslError(test_span, "invalid-condition")
            test = Test("cmd", command, None, test_span)
        else:
            found = words(line, r, keys=False, lists=False)
            if len(found) == 1:
                test = Test("set", found[0].text, None, test_span)
            elif len(found) == 3 and found[1].bare and found[1].text in ("==", "!="):
                test = Test(found[1].text, found[0].text, found[2].text, test_span)
            else:
                raise DslError(test_span, "invalid-condition")
        opener = line.span(a, b)
        body, end = self._block(state, "if", opener, "if")
        orelse: list[Statement] = []
        if end == "else":
            orelse, _ = self._block(state, "if", opener, "else")
        return If(test, tuple(body), tuple(orelse), line.statement_span())

    def _for(self, state: _TaskState, line: Line, a: int, b: int, r: int) -> For:
        found = words(line, r, keys=False, lists=True)
        end = line.end
        bad = DslError(line.span(r, end) if end > r else line.span(a, b), "invalid-for")
        if len(found) < 3 or not found[0].bare or not is_name(found[0].text):
            raise bad
        if not found[1].bare or found[1].text != "in":
            raise bad
        values = found[2:]
        items: tuple[str, ...] | None = None
        source: str | None = None
        if len(values) == 1 and values[0].items is not None:
            items = values[0].items
        elif any(v.items is not None for v in values):
            raise bad
        elif len(values) == 1 and "$" in values[0].text:
            source = values[0].text
        else:
            items = tuple(v.text for v in values)
        opener = line.span(a, b)
        body, _ = self._block(state, "for", opener, "for")
        return For(found[0].text, items, source, tuple(body), line.statement_span())

    def _declaration(self, state: _TaskState, line: Line, verb: str, r: int) -> None:
        if verb in METADATA:
            text = line.text[r:].strip()
            if not text:
                raise self._missing(line, r, verb, "a text", f"write `{verb} TEXT`")
            if verb == "describe":
                state.describe.append(_unquote(text))
            elif verb == "synopsis":
                state.synopsis.append(_unquote(text))
            elif verb == "example":
                state.examples.append(_unquote(text))
            elif verb == "note":
                state.notes.append(_unquote(text))
            else:
                state.tags += text.split()
            return
        found = words(line, r, keys=False, lists=False)
        if not found:
            what = "task names" if verb == "needs" else "file patterns"
            raise self._missing(line, r, verb, what, f"write `{verb} a b`")
        if verb == "needs":
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
                state.needs.append(Ref(name, span))
        elif verb == "sources":
            state.sources += [w.text for w in found]
        else:
            state.generates += [w.text for w in found]

    def _verb(self, line: Line, verb: str, a: int, r: int) -> Verb:
        args: list[str] = []
        kwargs: dict[str, Value] = {}
        found = words(line, r, keys=True, lists=True)
        for word in found:
            key = word.key
            if key is None:
                if word.items is not None:
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
                kwargs[key] = word.items if word.items is not None else word.text
        arity = ARITY.get(verb)
        if arity is not None:
            if len(args) < arity[0]:
                raise self._missing(line, line.end, verb, arity[1], arity[2])
            if verb == "packages" and args[0] not in ("install", "remove"):
                first = next(w for w in found if w.key is None)
                raise DslError(
                    line.span(first.start, first.end),
                    "invalid-argument",
                    {
                        "what": "`packages` does `install` or `remove`",
                        "word": args[0],
                        "usage": arity[2],
                    },
                )
        elif verb == "sync":
            for key in ("src", "dest"):
                if key not in kwargs:
                    raise self._missing(line, line.end, "sync", f"`{key}=`", SYNC_USAGE)
        return Verb(verb, tuple(args), kwargs, line.statement_span(), (line, found))

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

    def _nothing_after(self, line: Line, verb: str, r: int) -> None:
        rest = line.text[r:].rstrip()
        if rest:
            word = rest.split()[0]
            raise DslError(
                line.span(r, r + len(word)), "trailing-words", {"verb": verb, "word": word}
            )


def parse_source(source: Source) -> FileAst:
    """Parse one file's text (no includes followed) into its syntax tree."""
    return Parser(source).parse_file()
