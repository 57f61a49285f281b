"""Up-to-date checks: skip a task with ``sources``/``generates`` when nothing it uses changed.

A task's *fingerprint* is a sha256 over its definition as pf prints it (so any change
to its commands counts), the values bound for it (file env, header defaults and
command-line parameters; not the whole process environment, which changes between
shells for reasons a build does not care about), and the path and content digest of
every file its ``sources`` globs match: checksums, not mtimes, so a touched
but unchanged file does not re-run anything and an edited one always does. It is
up to date when the fingerprint equals the one recorded after its last successful
run and every ``generates`` glob matches something.

The fingerprint recorded is the one computed *before* the run: if the task edits its
own sources, the next run sees the difference and runs again, rather than trusting
an input that was never built.

State is one small JSON file, ``.pf/tasks-state.json`` beside the main Pfyfile,
holding at most :data:`MAX_ENTRIES` fingerprints (least recently written dropped),
replaced atomically (temp file + ``os.replace``) so a crash or a concurrent ``pf``
leaves either the old or the new file, never a torn one. Two ``pf`` processes
finishing at once may lose one entry: that task merely runs again next time.
Imports nothing from pf at run time (a Task is only read).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import threading
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from pf.dsl.model import Task

STATE_DIR = ".pf"
STATE_FILE = "tasks-state.json"
MAX_ENTRIES = 1000
_FORMAT = 1  # bump when the fingerprint recipe changes: old entries then never match


def _has_magic(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def expand(patterns: Iterable[str], root: str) -> list[str]:
    """Files the glob ``patterns`` match under ``root``, relative, sorted, without duplicates.

    ``**`` crosses directories; a pattern naming a directory takes every file below it.
    """
    found: set[str] = set()
    for pattern in patterns:
        if _has_magic(pattern):
            matches = glob.glob(pattern, root_dir=root, recursive=True)
        else:
            matches = [pattern] if os.path.lexists(os.path.join(root, pattern)) else []
        for match in matches:
            full = os.path.join(root, match)
            if os.path.isdir(full):
                for base, dirs, files in os.walk(full):
                    dirs.sort()
                    rel = os.path.relpath(base, root)
                    found.update(os.path.normpath(os.path.join(rel, f)) for f in files)
            else:
                found.add(os.path.normpath(match))
    return sorted(found)


def outputs_exist(patterns: Iterable[str], root: str) -> bool:
    """True when every ``generates`` pattern matches at least one existing path."""
    for pattern in patterns:
        if _has_magic(pattern):
            if not glob.glob(pattern, root_dir=root, recursive=True):
                return False
        elif not os.path.exists(os.path.join(root, pattern)):
            return False
    return True


def fingerprint(task: Task, values: Mapping[str, str], sources: Iterable[str], root: str) -> str:
    """The sha256 of the task's definition, its bound ``values`` and its source files."""
    digest = hashlib.sha256(f"pf-task-fingerprint {_FORMAT}\0".encode())
    digest.update("\n".join(task.dump_lines()).encode("utf-8", "surrogateescape"))
    for key in sorted(values):
        digest.update(f"\0{key}={values[key]}".encode("utf-8", "surrogateescape"))
    digest.update(b"\0sources")
    for name in sources:
        path = os.path.join(root, name)
        digest.update(b"\0" + name.encode("utf-8", "surrogateescape") + b"\0")
        try:
            with open(path, "rb") as handle:
                digest.update(hashlib.file_digest(handle, "sha256").digest())
        except OSError:
            # A dangling link or unreadable file: its absence is part of the state.
            digest.update(b"missing")
    return digest.hexdigest()


class State:
    """The recorded fingerprints of one Pfyfile's tasks; safe to share between threads."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, STATE_DIR, STATE_FILE)
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, object]] | None = None

    def _load(self) -> dict[str, dict[str, object]]:
        if self._entries is None:
            try:
                with open(self.path, encoding="utf-8") as handle:
                    data = json.load(handle)
                entries = data.get("tasks") if data.get("format") == _FORMAT else None
                self._entries = entries if isinstance(entries, dict) else {}
            except (OSError, ValueError, AttributeError):
                # Missing or damaged state only means tasks run again.
                self._entries = {}
        return self._entries

    def fresh(self, name: str, digest: str) -> bool:
        """True when ``digest`` is what the last successful run of ``name`` recorded."""
        with self._lock:
            entry = self._load().get(name)
        return isinstance(entry, dict) and entry.get("digest") == digest

    def record(self, name: str, digest: str) -> None:
        """Remember ``digest`` for ``name`` and write the state file atomically."""
        with self._lock:
            entries = self._load()
            entries.pop(name, None)  # re-insert: dict order is the eviction order
            entries[name] = {"digest": digest, "at": round(time.time(), 3)}
            while len(entries) > MAX_ENTRIES:
                del entries[next(iter(entries))]
            self._write(entries)

    def _write(self, entries: dict[str, dict[str, object]]) -> None:
        directory = os.path.dirname(self.path)
        os.makedirs(directory, exist_ok=True)
        temp = f"{self.path}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            with open(temp, "w", encoding="utf-8") as handle:
                json.dump({"format": _FORMAT, "tasks": entries}, handle, indent=0)
            os.replace(temp, self.path)
        except OSError:
            # State is an optimisation: failing to save it must not fail the task.
            try:
                os.unlink(temp)
            except OSError:
                pass
