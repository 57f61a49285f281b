"""dump(): a compact, span-free text form of tree and model nodes, for tests and debugging.

It reads like the Pfyfile it came from, with every value quoted, so a test can
state a whole parse in a few lines (just's ``test!`` tables).
"""

from __future__ import annotations

from pf.dsl.ast import (
    Env,
    FileAst,
    For,
    HostsDecl,
    If,
    Include,
    Meta,
    Param,
    Ref,
    Shell,
    ShellLang,
    TaskDef,
    Test,
    Unrunnable,
    Value,
    Verb,
)


def quote(text: str) -> str:
    """``text`` in double quotes with ``\\``, ``"``, newline and tab escaped."""
    return (
        '"'
        + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
        + '"'
    )


def _value(value: Value) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(quote(v) for v in value) + "]"
    return quote(value)


def meta_lines(meta: Meta) -> list[str]:
    lines = []
    if meta.describe is not None:
        lines.append(f"describe {quote(meta.describe)}")
    if meta.synopsis is not None:
        lines.append(f"synopsis {quote(meta.synopsis)}")
    lines += [f"example {quote(e)}" for e in meta.examples]
    lines += [f"note {quote(n)}" for n in meta.notes]
    if meta.tags:
        lines.append("tag " + " ".join(meta.tags))
    return lines


def lines_of(node: object, indent: str) -> list[str]:
    if isinstance(node, If):
        out = [indent + "if " + dump(node.test)]
        for s in node.body:
            out += lines_of(s, indent + "  ")
        if node.orelse:
            out.append(indent + "else")
            for s in node.orelse:
                out += lines_of(s, indent + "  ")
        return [*out, indent + "end"]
    if isinstance(node, For):
        head = _value(node.items) if node.items is not None else quote(node.source or "")
        out = [f"{indent}for {node.var} in {head}"]
        for s in node.body:
            out += lines_of(s, indent + "  ")
        return [*out, indent + "end"]
    if isinstance(node, TaskDef):
        out = [indent + "task " + _header(node.name, node.params, [a.name for a in node.aliases])]
        inner = indent + "  "
        out += [inner + line for line in meta_lines(node.meta)]
        if node.needs:
            out.append(inner + "needs " + " ".join(r.name for r in node.needs))
        if node.sources:
            out.append(inner + "sources " + " ".join(quote(s) for s in node.sources))
        if node.generates:
            out.append(inner + "generates " + " ".join(quote(s) for s in node.generates))
        for s in node.body:
            out += lines_of(s, inner)
        return [*out, indent + "end"]
    if isinstance(node, FileAst):
        out = []
        for item in node.items:
            out += lines_of(item, indent)
        return out
    return [indent + dump(node)]


def _header(name: str, params: tuple[Param, ...], aliases: list[str]) -> str:
    parts = [name]
    parts += [p.name if p.default is None else f"{p.name}={quote(p.default)}" for p in params]
    if aliases:
        parts.append("[" + "|".join(f"alias {a}" for a in aliases) + "]")
    return " ".join(parts)


def dump(node: object) -> str:
    """A compact, span-free text form of a node (multi-line for blocks), for tests.

    >>> dump(parse_text('task t\\n  shell [lang:py] print(1)\\nend\\n', 'P').tasks[None, 't'])
    'task t\\n  shell[py] "print(1)"\\nend'
    """
    if isinstance(node, Shell):
        lang = f"[{node.lang}]" if node.lang else ""
        if node.file is not None:
            args = "".join(" " + quote(a) for a in node.args)
            return f"shell{lang} @{quote(node.file)}" + (f" --{args}" if args else "")
        return f"shell{lang} {'<<' if node.heredoc else ''}{quote(node.code)}"
    if isinstance(node, ShellLang):
        return f"shell_lang {node.lang or 'default'}"
    if isinstance(node, Env):
        return "env " + " ".join(f"{k}={quote(v)}" for k, v in node.pairs)
    if isinstance(node, Test):
        if node.op == "cmd":
            return f"`{node.left}`"
        if node.op == "set":
            return quote(node.left)
        return f"{quote(node.left)} {node.op} {quote(node.right or '')}"
    if isinstance(node, Verb):
        parts = [node.name, *(quote(a) for a in node.args)]
        parts += [f"{k}={_value(v)}" for k, v in node.kwargs.items()]
        return " ".join(parts)
    if isinstance(node, Unrunnable):
        return f"unrunnable[{node.kind}] {quote(node.text)}"
    if isinstance(node, Include):
        return f"include {quote(node.path)}"
    if isinstance(node, HostsDecl):
        return f"hosts {node.name} = " + ", ".join(node.hosts)
    if isinstance(node, Param):
        return node.name if node.default is None else f"{node.name}={quote(node.default)}"
    if isinstance(node, Ref):
        return node.name
    if isinstance(node, Meta):
        return "; ".join(meta_lines(node))
    if isinstance(node, (If, For, TaskDef, FileAst)):
        return "\n".join(lines_of(node, ""))
    dump_lines = getattr(node, "dump_lines", None)  # model.Task and model.Pfyfile
    if dump_lines is not None:
        return "\n".join(dump_lines())
    raise TypeError(f"cannot dump {type(node).__name__}")
