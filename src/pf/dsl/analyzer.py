"""Analyzer: files -> one resolved :class:`pf.dsl.model.Pfyfile`.

Owns includes (relative to the including file; a cycle is an error showing the
chain; a second inclusion is a no-op; a missing file is an error at its
``include``), groups (``Pfyfile.<group>.pf`` files that are included or sit
beside the main file), duplicate names per scope, aliases, ``needs`` resolution
(with did-you-mean) and dependency cycles.

Files beside each other are isolated: when the main file and its group files
are loaded together, a group file that cannot be parsed (itself or through what
it includes) is left out and its error kept in ``Pfyfile.errors``, so the
others' tasks still list and run; the main file too when the caller asks to
keep going (the CLI does; pf serve's task list wants the error). A name
defined twice in one scope is a warning, the later definition winning, as the
original pf had it. The only I/O in pf.dsl is reading Pfyfiles and listing the
main file's directory.
"""

from __future__ import annotations

import gc
import os

from pf.dsl._record import new
from pf.dsl.ast import Env, FileAst, HostsDecl, Include, TaskDef
from pf.dsl.errors import DslError, DslWarning
from pf.dsl.model import Pfyfile, Task, TaskKey, display_name
from pf.dsl.parser import WordMemo, parse_source
from pf.dsl.source import Source, Span
from pf.dsl.suggest import suggest

_PREFIX = "Pfyfile."
_SUFFIX = ".pf"


def group_of(path: str) -> str | None:
    """``web`` for ``.../Pfyfile.web.pf``; None for any other file name."""
    base = os.path.basename(path)
    if base.startswith(_PREFIX) and base.endswith(_SUFFIX) and len(base) > len(_PREFIX + _SUFFIX):
        return base[len(_PREFIX) : -len(_SUFFIX)]
    return None


def _scope(group: str | None) -> str:
    return "the main scope" if group is None else f"group `{group}`"


def _without_bom(text: str) -> str:
    # A leading BOM is no part of the text, as utf-8-sig would have it (that codec is
    # a Python module to import; one comparison does).
    return text[1:] if text[:1] == "\ufeff" else text


def _read_error(path: str, span: Span | None, exc: Exception) -> DslError:
    """The DslError for a file that cannot be opened or read: at ``span`` (the ``include``)."""
    if isinstance(exc, FileNotFoundError):
        if span is not None:
            directory = os.path.dirname(span.path) or "."
            return DslError(span, "include-not-found", {"path": path, "directory": directory})
        return DslError(None, "read-error", {"path": path, "reason": "no such file"})
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return DslError(span, "read-error", {"path": path, "reason": reason})


def _open(path: str, span: Span | None) -> tuple[int, tuple[int, int]]:
    """An open descriptor of the file and which file it is (device, inode)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise _read_error(path, span, exc) from None
    try:
        status = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        raise _read_error(path, span, exc) from None
    return fd, (status.st_dev, status.st_ino)


def _read(fd: int, path: str, span: Span | None) -> str:
    """The text behind ``fd``, as ``open(path, encoding="utf-8")`` would read it.

    Straight from the descriptor: a text file object (a buffer, a decoder, an
    isatty check) costs more than reading a whole Pfyfile, and a folder has dozens.
    """
    chunks: list[bytes] = []
    try:
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        text = b"".join(chunks).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _read_error(path, span, exc) from None
    if "\r" in text:  # universal newlines, as text mode reads them
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _without_bom(text)


def _identity(path: str) -> tuple[int, int] | str:
    """Which file ``path`` is, for text given in place of its contents.

    The absolute path stands in for a file that does not exist.
    """
    try:
        status = os.stat(path)
    except OSError:
        return os.path.abspath(path)
    return (status.st_dev, status.st_ino)


def _is_file(entry: os.DirEntry[str]) -> bool:
    """A regular file, or a link to one, as os.path.isfile tells."""
    try:
        return entry.is_file()
    except OSError:  # a link it cannot follow (a loop, no permission)
        return False


class _Analyzer:
    def __init__(self) -> None:
        self.loaded: set[tuple[int, int] | str] = set()
        self.files: list[str] = []
        self.stack: list[tuple[tuple[int, int] | str, str]] = []  # (identity, shown) being loaded
        self.defs: list[tuple[str | None, TaskDef, str]] = []  # (group, def, file)
        self.env: dict[str, str] = {}
        self.group_env: dict[str, dict[str, str]] = {}
        self.hosts: dict[str, tuple[str, ...]] = {}
        self.host_spans: dict[str, Span] = {}
        self.memo: WordMemo = {}  # shared by the files of this one parse
        self.warnings: list[DslError] = []
        self.errors: dict[str, DslError] = {}  # file left out -> why

    def load(self, path: str, text: str | None, group: str | None, via: Span | None) -> None:
        fd = -1
        identity: tuple[int, int] | str
        try:
            if text is None:
                fd, identity = _open(path, via)
            else:
                try:
                    identity = _identity(path)
                except ValueError as exc:  # a NUL byte in the path
                    raise _read_error(path, via, exc) from None
            for k, (seen, _) in enumerate(self.stack):
                if seen == identity:
                    chain = [shown for _, shown in self.stack[k:]] + [path]
                    assert via is not None  # the first file cannot be in the stack already
                    raise DslError(via, "include-cycle", {"chain": " -> ".join(chain)})
            if identity in self.loaded:
                return  # included twice: the first inclusion already spliced it
            if text is None:
                text = _read(fd, path, via)
        finally:
            if fd != -1:
                os.close(fd)
        self.loaded.add(identity)
        self.files.append(path)
        tree = parse_source(Source(path, text), self.memo, self.warnings)
        self.stack.append((identity, path))
        self._items(tree, path, group)
        self.stack.pop()

    def _items(self, tree: FileAst, path: str, group: str | None) -> None:
        directory = os.path.dirname(path)
        for item in tree.items:
            if isinstance(item, TaskDef):
                self.defs.append((group, item, path))
            elif isinstance(item, Include):
                target = os.path.normpath(os.path.join(directory, item.path))
                self.load(target, None, group_of(target) or group, item.span)
            elif isinstance(item, Env):
                # A new dict rather than an update, so that isolated() can snapshot cheaply.
                env = dict(self.env if group is None else self.group_env.get(group, {}))
                env.update(item.pairs)
                if group is None:
                    self.env = env
                else:
                    self.group_env[group] = env
            elif isinstance(item, HostsDecl):
                if item.name in self.hosts:
                    raise DslError(
                        item.span,
                        "duplicate-hosts",
                        {"name": item.name},
                        (self.host_spans[item.name],),
                    )
                self.hosts[item.name] = item.hosts
                self.host_spans[item.name] = item.span

    def siblings(self, main: str) -> None:
        """Load the ``Pfyfile.<group>.pf`` files beside the main file as groups."""
        directory = os.path.dirname(main)
        found: list[tuple[str, str]] = []
        try:
            # scandir knows each entry's type without a stat (but for a symlink).
            with os.scandir(directory or ".") as entries:
                for entry in entries:
                    group = group_of(entry.name)
                    if group is not None and _is_file(entry):
                        found.append((entry.name, group))
        except OSError:
            return
        for name, group in sorted(found):
            self.isolated(os.path.join(directory, name), None, group)

    def isolated(self, path: str, text: str | None, group: str | None) -> None:
        """Load one file of the folder; if it fails, keep its error and nothing of it."""
        defs, warnings = len(self.defs), len(self.warnings)
        # Env dicts are replaced, never changed in place (see _items): copying the
        # outer dicts is a snapshot.
        env, group_env = self.env, dict(self.group_env)
        hosts, host_spans = dict(self.hosts), dict(self.host_spans)
        try:
            self.load(path, text, group, None)
        except DslError as error:
            if error.span is None and not self.files:
                raise  # the main file itself cannot be read: nothing to list at all
            # The files it read stay in ``files``: editing one must refresh a cache.
            del self.defs[defs:], self.warnings[warnings:]
            self.env, self.group_env = env, group_env
            self.hosts, self.host_spans = hosts, host_spans
            self.stack.clear()
            self.errors[path] = error

    def resolve(self, main: str) -> Pfyfile:
        tasks: dict[TaskKey, TaskDef] = {}
        owner: dict[TaskKey, tuple[str | None, str]] = {}
        aliases: dict[TaskKey, TaskKey] = {}
        first: dict[TaskKey, Span] = {}
        for group, tdef, path in self.defs:
            key = (group, tdef.name)
            if key in tasks:
                # Redefined: the later one wins, and the earlier one's aliases go with it.
                earlier = tasks.pop(key)
                self.warnings.append(
                    DslWarning(
                        tdef.name_span,
                        "task-redefined",
                        {"name": tdef.name, "scope": _scope(group)},
                        (earlier.name_span,),
                    )
                )
                for ref in earlier.aliases:
                    del first[(group, ref.name)], aliases[(group, ref.name)]
            elif key in first:
                self._claim(first, key, tdef.name_span)  # an alias of another task
            first[key] = tdef.name_span
            tasks[key] = tdef
            owner[key] = (group, path)
            for ref in tdef.aliases:
                alias = (group, ref.name)
                self._claim(first, alias, ref.span)
                aliases[alias] = key
        groups = {g for g, _ in tasks}

        resolved: dict[TaskKey, Task] = {}
        edges: dict[TaskKey, list[tuple[TaskKey, Span]]] = {}
        for key, tdef in tasks.items():
            group, path = owner[key]
            needs: tuple[TaskKey, ...] = ()
            if tdef.needs:
                found: list[TaskKey] = []
                edges[key] = out = []
                for ref in tdef.needs:
                    target = _need(key, ref.name, ref.span, groups, tasks, aliases)
                    if target not in found:
                        found.append(target)
                        out.append((target, ref.span))
                needs = tuple(found)
            resolved[key] = new(
                Task,
                (
                    tdef.name,
                    group,
                    tdef.params,
                    tuple([r.name for r in tdef.aliases]) if tdef.aliases else (),
                    tdef.meta,
                    needs,
                    tdef.sources,
                    tdef.generates,
                    tdef.body,
                    tdef.span,
                    path,
                ),
            )
        _check_cycles(edges)
        return Pfyfile(
            main,
            tuple(self.files),
            self.env,
            self.group_env,
            self.hosts,
            resolved,
            aliases,
            tuple(sorted(self.warnings, key=self._position)),
            self.errors,
        )

    def _position(self, warning: DslError) -> tuple[int, int, int]:
        # Warnings in the order of the text, though a redefinition is found last.
        span = warning.span
        assert span is not None  # every warning points somewhere
        return (self.files.index(span.path), span.line, span.col)

    @staticmethod
    def _claim(first: dict[TaskKey, Span], key: TaskKey, span: Span) -> None:
        if key in first:
            raise DslError(
                span, "duplicate-task", {"name": key[1], "scope": _scope(key[0])}, (first[key],)
            )
        first[key] = span


def _need(
    owner: TaskKey,
    name: str,
    span: Span,
    groups: set[str | None],
    tasks: dict[TaskKey, TaskDef],
    aliases: dict[TaskKey, TaskKey],
) -> TaskKey:
    """Resolve one ``needs`` name: ``group:task``, else own scope, then the main scope."""

    group, colon, task = name.rpartition(":")
    if colon:
        scope: str | None = group or None
        if scope not in groups:
            raise DslError(
                span,
                "unknown-group",
                {"task": display_name(owner), "name": name, "group": group},
            )
        scopes: tuple[str | None, ...] = (scope,)
    else:
        scopes = (owner[0], None) if owner[0] is not None else (None,)
    for scope in scopes:
        key = (scope, task)
        if key in tasks:
            return key
        if key in aliases:
            return aliases[key]
    facts = {"task": display_name(owner), "name": name}
    candidates = [n for g, n in [*tasks, *aliases] if g in scopes]
    guess = suggest(task, candidates)
    if guess:
        facts["suggestion"] = f"{group}:{guess}" if colon else guess
    raise DslError(span, "unknown-dependency", facts)


def _check_cycles(edges: dict[TaskKey, list[tuple[TaskKey, Span]]]) -> None:
    """Raise at the ``needs`` entry that closes a dependency cycle, with the chain.

    ``edges`` holds only tasks that need something: a task missing from it is a leaf.
    """
    done: set[TaskKey] = set()
    for root in edges:
        if root in done:
            continue
        path: list[TaskKey] = [root]
        on_path = {root}
        iters = [iter(edges[root])]
        while iters:
            step = next(iters[-1], None)
            if step is None:
                iters.pop()
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                continue
            target, span = step
            if target in on_path:
                chain = [*path[path.index(target) :], target]
                raise DslError(
                    span,
                    "dependency-cycle",
                    {"chain": " -> ".join(display_name(k) for k in chain)},
                )
            if target in done:
                continue
            if target not in edges:
                done.add(target)
                continue
            path.append(target)
            on_path.add(target)
            iters.append(iter(edges[target]))


def analyze(
    path: str, text: str | None = None, *, siblings: bool = True, keep_going: bool = False
) -> Pfyfile:
    """Parse ``path`` (or ``text`` as if it were that file) with everything it pulls in.

    With ``siblings``, a group file beside it that cannot be loaded is left out (its
    error in ``errors``); with ``keep_going`` too, so is the main file itself.
    """
    # Parsing allocates many small tuples and frees none of them: the cyclic GC
    # would walk them over and over for nothing (~10% of a 500-task parse).
    collecting = gc.isenabled()
    gc.disable()
    try:
        analyzer = _Analyzer()
        text = None if text is None else _without_bom(text)
        if siblings and keep_going:
            analyzer.isolated(path, text, None)
            analyzer.siblings(path)
        elif siblings:
            analyzer.load(path, text, None, None)
            analyzer.siblings(path)
        else:
            analyzer.load(path, text, None, None)
        return analyzer.resolve(path)
    finally:
        if collecting:
            gc.enable()
