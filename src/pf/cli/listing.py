"""What ``pf list`` and shell completion show, cached so they need not parse the Pfyfile each time.

Parsing a large Pfyfile in a fresh process costs as much again as the rest of
``pf list`` (its budget: <= 2.5x a bare interpreter, cold or not; importing pf.dsl and
parsing 500 tasks take 12-15 ms here), and completion runs on every <TAB>. What
they show is small: each task's group, name, file, parameters with defaults,
aliases and first description line.
After a parse that listing is written to ``.pf/list-<Pfyfile name>.cache`` beside
the main Pfyfile, and later calls read it back instead of parsing, as long as pf's
version, the size, mtime and inode of every file the parse read, and the set of
``Pfyfile.<group>.pf`` files beside the main one (a new group file) are all
unchanged. Anything else, a damaged cache, or an unwritable directory, and pf
simply parses. A load that left a file out or warned is not cached: its
messages are shown on every ``pf list`` until the files are fixed.

The format is tab-separated text with backslash escapes, read with ``str.split``:
no import (json would pull in ``re``, several ms) and, unlike marshal or pickle,
nothing a crafted file could exploit. Imports only pf and the standard library's
``os``; pf.dsl only on a miss.
"""

from __future__ import annotations

import os

from pf import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from pf.dsl.errors import DslError
    from pf.dsl.model import Pfyfile

_MAGIC = "pf-list-cache 1"
_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))


def _escape(text: str) -> str:
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        for raw, escaped in _ESCAPES:
            text = text.replace(raw, escaped)
    return text


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out: list[str] = []
    at = 0
    while True:
        slash = text.find("\\", at)
        if slash == -1 or slash + 1 >= len(text):
            out.append(text[at:])
            return "".join(out)
        out.append(text[at:slash])
        code = text[slash + 1]
        out.append({"t": "\t", "n": "\n", "r": "\r"}.get(code, code))
        at = slash + 2


class Entry:
    """One task as listed: group (None: main scope), name, defining file, params, aliases."""

    __slots__ = ("aliases", "describe", "file", "group", "name", "params")

    def __init__(
        self,
        group: str | None,
        name: str,
        file: str,
        params: list[tuple[str, str | None]],
        aliases: list[str],
        describe: str,
    ) -> None:
        self.group = group
        self.name = name
        self.file = file
        self.params = params
        self.aliases = aliases
        self.describe = describe


class Listing:
    """The tasks of one Pfyfile as ``pf list`` and completion need them."""

    __slots__ = ("entries", "errors", "groups", "path", "warnings")

    def __init__(self, path: str, entries: list[Entry], groups: list[str]) -> None:
        self.path = path
        self.entries = entries
        self.groups = groups
        #: Of the parse this listing came from (a cached listing has none): files left
        #: out -> why, and the warnings.
        self.errors: dict[str, DslError] = {}
        self.warnings: tuple[DslError, ...] = ()

    @classmethod
    def of(cls, pfyfile: Pfyfile) -> Listing:
        # Tasks share a few files: abspath once per file, and one getcwd for them all.
        cwd = os.getcwd()
        files = {path: os.path.normpath(os.path.join(cwd, path)) for path in pfyfile.files}
        entries = [
            Entry(
                task.group,
                task.name,
                files[task.file],
                [(p.name, p.default) for p in task.params],
                list(task.aliases),
                (task.meta.describe or "").split("\n", 1)[0],
            )
            for task in pfyfile.tasks.values()
        ]
        listing = cls(os.path.abspath(pfyfile.path), entries, list(pfyfile.groups))
        listing.errors = pfyfile.errors
        listing.warnings = pfyfile.warnings
        return listing

    def names(self, group: str | None = None) -> list[str]:
        """Task names, then aliases, of one scope (None: the main scope)."""
        scope = [e for e in self.entries if e.group == group]
        return [e.name for e in scope] + [a for e in scope for a in e.aliases]

    def find(self, group: str | None, name: str) -> Entry | None:
        """The task called (or aliased) ``name`` in ``group``."""
        for entry in self.entries:
            if entry.group == group and (entry.name == name or name in entry.aliases):
                return entry
        return None


# ------------------------------------------------------------------ the cache file


def _cache_path(main: str) -> str:
    directory, name = os.path.split(main)
    return os.path.join(directory, ".pf", f"list-{name}.cache")


# A file changed this close to (or after) the parse began may have changed under it.
_SETTLED_NS = 100_000_000


def _stamp(path: str, before_ns: int | None = None) -> str:
    st = os.stat(path)
    if before_ns is not None and st.st_mtime_ns > before_ns - _SETTLED_NS:
        raise OSError(f"{path} changed while it was read")
    return f"{st.st_size}\t{st.st_mtime_ns}\t{st.st_ino}"


def _siblings(main: str) -> str:
    # The group files beside the main file, as pf.dsl.analyzer finds them: a new one
    # must invalidate the cache even though no file the parse read has changed.
    names = [
        n
        for n in os.listdir(os.path.dirname(main))
        if n.startswith("Pfyfile.") and n.endswith(".pf") and len(n) > len("Pfyfile..pf")
    ]
    return _escape("/".join(sorted(names)))


def read(main_path: str) -> Listing | None:
    """The cached listing of the Pfyfile at ``main_path`` if it is still current, else None."""
    main = os.path.abspath(main_path)
    try:
        with open(_cache_path(main), encoding="utf-8") as handle:
            lines = handle.read().split("\n")
        if lines[0] != f"{_MAGIC}\t{__version__}\t{_escape(main)}":
            return None
        if lines[1] != f"S\t{_siblings(main)}":
            return None
        entries: list[Entry] = []
        groups: list[str] = []
        for line in lines[2:]:
            if not line:
                continue
            kind, _, rest = line.partition("\t")
            if kind == "F":
                path, _, stamp = rest.partition("\t")
                if _stamp(_unescape(path)) != stamp:
                    return None
            elif kind == "G":
                groups.append(_unescape(rest))
            elif kind == "T":
                fields = rest.split("\t")
                if "\\" in rest:  # escapes are rare: unescape only the lines that have one
                    fields = [_unescape(f) for f in fields]
                group, name, file, aliases, describe = fields[:5]
                params: list[tuple[str, str | None]] = []
                for item in fields[5:]:
                    key, eq, default = item.partition("=")
                    params.append((key, default if eq else None))
                entries.append(
                    Entry(
                        group or None,
                        name,
                        file,
                        params,
                        aliases.split(",") if aliases else [],
                        describe,
                    )
                )
            else:
                return None
        return Listing(main, entries, groups)
    except (OSError, ValueError, IndexError):
        return None  # missing, unreadable or damaged: parse instead


def write(listing: Listing, files: tuple[str, ...], parsed_ns: int) -> None:
    """Save ``listing`` with the stamps of ``files``, parsed from ``parsed_ns`` on.

    Skipped silently when it cannot be written, and when a file was modified too close
    to the parse to be sure the listing shows its current content (the next call
    caches it).
    """
    main = listing.path
    path = _cache_path(main)
    try:
        lines = [f"{_MAGIC}\t{__version__}\t{_escape(main)}", f"S\t{_siblings(main)}"]
        cwd = os.getcwd()  # once, not once per file as os.path.abspath would
        lines += [
            f"F\t{_escape(os.path.normpath(os.path.join(cwd, f)))}\t{_stamp(f, parsed_ns)}"
            for f in files
        ]
        lines += [f"G\t{_escape(g)}" for g in listing.groups]
        for e in listing.entries:
            line = f"T\t{e.group or ''}\t{e.name}\t{e.file}\t{','.join(e.aliases)}\t{e.describe}"
            count = 5
            for k, d in e.params:
                line += f"\t{k}" if d is None else f"\t{k}={d}"
                count += 1
            if "\\" in line or "\n" in line or "\r" in line or line.count("\t") > count:
                fields = [e.group or "", e.name, e.file, ",".join(e.aliases), e.describe]
                fields += [k if d is None else f"{k}={d}" for k, d in e.params]
                line = "T\t" + "\t".join([_escape(f) for f in fields])
            lines.append(line)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        temp = f"{path}.{os.getpid()}.tmp"
        with open(temp, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        os.replace(temp, path)
    except OSError:
        pass  # a read-only checkout: pf list still works, it parses every time


def load(main_path: str) -> Listing:
    """The listing of the Pfyfile at ``main_path``: from the cache, else parsed (and cached)."""
    cached = read(main_path)
    if cached is not None:
        return cached
    import gc
    import time

    from pf.dsl import parse_file  # only on a miss: ~3 ms to import, more to parse

    # The parse leaves tens of thousands of young objects, none of them garbage: with
    # the collector on, the allocations below would walk them all, for nothing. They
    # are freed (by reference counting) when this returns.
    collecting = gc.isenabled()
    gc.disable()
    try:
        started = time.time_ns()
        pfyfile = parse_file(main_path, keep_going=True)
        listing = Listing.of(pfyfile)
        if not pfyfile.errors and not pfyfile.warnings:
            write(listing, pfyfile.files, started)
    finally:
        if collecting:
            gc.enable()
    return listing
