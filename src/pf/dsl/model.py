"""The resolved model the executor and CLI consume: Pfyfile and Task.

Owns the types only; :mod:`pf.dsl.analyzer` builds them. Unlike
:class:`pf.dsl.ast.TaskDef`, a :class:`Task` has its ``needs`` resolved to task
keys, so nothing downstream can meet an unresolved name.
"""

from __future__ import annotations

from pf.dsl._record import fields, new
from pf.dsl.ast import Meta, Node, Param, Statement
from pf.dsl.dump import lines_of, meta_lines, quote

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from pf.dsl.errors import DslError
    from pf.dsl.source import Span

#: ``(group or None, task name)``: how tasks are keyed and referred to.
TaskKey = tuple[str | None, str]


def display_name(key: TaskKey) -> str:
    """``build`` for a top-level task, ``web:build`` for task ``build`` of group ``web``."""
    group, name = key
    return name if group is None else f"{group}:{name}"


class Task(Node):
    """A resolved task, ready to run.

    ``params`` keep header order with their defaults; ``aliases`` are extra names
    in the same scope; ``needs`` are keys of other tasks (aliases resolved,
    duplicates dropped), to run first; ``sources``/``generates`` are the glob
    patterns for the up-to-date check, as written; ``body`` holds the statements
    to run in order (see :data:`pf.dsl.ast.Statement`); ``file`` is the path of
    the file that defines the task and ``span`` its header.
    """

    __slots__ = ()
    name: str
    group: str | None
    params: tuple[Param, ...]
    aliases: tuple[str, ...]
    meta: Meta
    needs: tuple[TaskKey, ...]
    sources: tuple[str, ...]
    generates: tuple[str, ...]
    body: tuple[Statement, ...]
    span: Span
    file: str

    def __new__(
        cls,
        name: str,
        group: str | None,
        params: tuple[Param, ...],
        aliases: tuple[str, ...],
        meta: Meta,
        needs: tuple[TaskKey, ...],
        sources: tuple[str, ...],
        generates: tuple[str, ...],
        body: tuple[Statement, ...],
        span: Span,
        file: str,
    ) -> Task:
        return new(
            cls, (name, group, params, aliases, meta, needs, sources, generates, body, span, file)
        )

    @property
    def key(self) -> TaskKey:
        """``(group, name)``, the task's key in :attr:`Pfyfile.tasks`."""
        return (self.group, self.name)

    @property
    def describe(self) -> str | None:
        """The ``describe`` text, for ``pf list``."""
        return self.meta.describe

    def defaults(self) -> dict[str, str | None]:
        """Parameter name -> default (None when the header gives none), in header order."""
        return {p.name: p.default for p in self.params}

    def dump_lines(self) -> list[str]:
        """Span-free text form, as :func:`pf.dsl.ast.dump` prints it."""
        head = [display_name(self.key)]
        head += [
            p.name if p.default is None else f"{p.name}={quote(p.default)}" for p in self.params
        ]
        if self.aliases:
            head.append("[" + "|".join(f"alias {a}" for a in self.aliases) + "]")
        out = ["task " + " ".join(head)]
        out += ["  " + line for line in meta_lines(self.meta)]
        if self.needs:
            out.append("  needs " + " ".join(display_name(k) for k in self.needs))
        if self.sources:
            out.append("  sources " + " ".join(quote(s) for s in self.sources))
        if self.generates:
            out.append("  generates " + " ".join(quote(s) for s in self.generates))
        for statement in self.body:
            out += lines_of(statement, "  ")
        return [*out, "end"]


fields(
    Task,
    "name",
    "group",
    "params",
    "aliases",
    "meta",
    "needs",
    "sources",
    "generates",
    "body",
    "span",
    "file",
)


class Pfyfile:
    """A main Pfyfile with its includes and group files, resolved.

    - ``path``: the main file; ``files``: every file read, in load order.
    - ``env``: the file-level ``env`` of the main scope (main file and the
      non-group files it includes), in order; ``group_env[g]``: group g's own.
      Values are raw; the executor interpolates them in order.
    - ``hosts``: ``hosts NAME = ...`` declarations from any file.
    - ``tasks``: ``(group or None, name) -> Task`` in definition order;
      ``aliases``: ``(group, alias) -> task key``.
    - ``warnings``: what the original pf tolerated and this load accepted
      (:class:`pf.dsl.errors.DslWarning`), in load order.
    - ``errors``: file of the folder that could not be loaded and was left out
      (the main file or a ``Pfyfile.<group>.pf`` beside it) -> its
      :class:`pf.dsl.errors.DslError`; the other files' tasks are here.

    >>> pf = parse_file("Pfyfile.pf")
    >>> pf.find("web", "build-rust").needs
    ((None, 'setup'),)
    """

    __slots__ = (
        "aliases",
        "env",
        "errors",
        "files",
        "group_env",
        "groups",
        "hosts",
        "path",
        "tasks",
        "warnings",
    )

    def __init__(
        self,
        path: str,
        files: tuple[str, ...],
        env: dict[str, str],
        group_env: dict[str, dict[str, str]],
        hosts: dict[str, tuple[str, ...]],
        tasks: dict[TaskKey, Task],
        aliases: dict[TaskKey, TaskKey],
        warnings: tuple[DslError, ...] = (),
        errors: dict[str, DslError] | None = None,
    ) -> None:
        self.path = path
        self.files = files
        self.env = env
        self.group_env = group_env
        self.hosts = hosts
        self.tasks = tasks
        self.aliases = aliases
        self.warnings = warnings
        self.errors = {} if errors is None else errors
        #: Group names in the order their files were loaded.
        self.groups: tuple[str, ...] = tuple(dict.fromkeys(g for g, _ in tasks if g is not None))

    def find(self, group: str | None, name: str) -> Task | None:
        """The task called ``name`` (or aliased so) in ``group`` (None: main scope)."""
        key = (group, name)
        task = self.tasks.get(key)
        if task is None and key in self.aliases:
            task = self.tasks[self.aliases[key]]
        return task

    def names(self, group: str | None = None) -> list[str]:
        """Task names and aliases of one scope, for did-you-mean and completion."""
        out = [n for g, n in self.tasks if g == group]
        return out + [n for g, n in self.aliases if g == group]

    def env_for(self, task: Task) -> dict[str, str]:
        """File-level env that applies to ``task``: main scope, then its group's."""
        if task.group is None:
            return dict(self.env)
        return {**self.env, **self.group_env.get(task.group, {})}

    def dump_lines(self) -> list[str]:
        """Span-free text form, as :func:`pf.dsl.ast.dump` prints it."""
        out = [f"env {k}={quote(v)}" for k, v in self.env.items()]
        for group, env in self.group_env.items():
            out += [f"env[{group}] {k}={quote(v)}" for k, v in env.items()]
        out += [f"hosts {name} = " + ", ".join(h) for name, h in self.hosts.items()]
        for task in self.tasks.values():
            out += task.dump_lines()
        return out

    def __repr__(self) -> str:
        return f"<Pfyfile {self.path} tasks={len(self.tasks)}>"
