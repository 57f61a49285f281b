"""What the service can build and what it has built: projects on disk and module files.

Projects are the directories under the projects root that hold sources, or the root
itself when it holds language directories or sources at its top. Scanning is cheap but
not free, and every submission needs it, so a scan is reused for ``ttl`` seconds.
Modules are the artifacts of the latest completed project build per (language, file
name), the original's ``/wasm/<language>/<file>``; the index is bounded. Imports
engine.projects and toolchains only; nothing here runs a build.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pf.engine.cache import Artifact
from pf.engine.jobs import iso_time
from pf.engine.projects import Project, discover
from pf.errors import NotFound, RequestError
from pf.toolchains import LANGUAGES, language_of

PROJECT_TTL = 1.0
MAX_MODULES = 1000


class Projects:
    """The projects under ``root``, rescanned at most every ``ttl`` seconds. Thread-safe."""

    def __init__(self, root: Path, ttl: float = PROJECT_TTL) -> None:
        self.root = root
        self.ttl = ttl
        self._found: dict[str, Project] = {}
        self._scanned = float("-inf")
        self._lock = threading.Lock()

    def _scan(self) -> dict[str, Project]:
        if not self.root.is_dir():
            return {}
        if _is_project(self.root):
            top = discover(self.root)
            return {top.name: top}
        found: dict[str, Project] = {}
        for child in sorted(self.root.iterdir()):
            if child.is_dir() and not child.name.startswith("."):
                project = discover(child)
                if project.sources and project.name not in found:
                    found[project.name] = project
        return found

    def all(self) -> list[Project]:
        with self._lock:
            if time.monotonic() - self._scanned > self.ttl:
                try:
                    self._found = self._scan()
                except (OSError, RequestError):
                    self._found = {}
                self._scanned = time.monotonic()
            return list(self._found.values())

    def get(self, name: str | None) -> Project:
        """The project called ``name``, or the default one for None; NotFound otherwise."""
        projects = self.all()
        if name is None:
            if not projects:
                raise NotFound(f"no projects under {self.root}")
            return projects[0]
        for project in projects:
            if project.name == name:
                return project
        known = ", ".join(p.name for p in projects) or "none"
        raise NotFound(f"Project not found: {name}. Available: {known}")


def _is_project(path: Path) -> bool:
    """A project holds language directories (``c/``, ``rust/``...) or sources at its top."""
    for entry in path.iterdir():
        if entry.is_dir() and entry.name in LANGUAGES:
            return True
        if entry.is_file() and language_of(entry.name):
            return True
    return False


@dataclass(frozen=True)
class Module:
    language: str
    target: str
    build_id: str
    artifact: Artifact
    built_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.artifact.name,
            "path": f"/api/builds/{self.build_id}/artifacts/{self.artifact.name}",
            "size": self.artifact.size,
            "modified": iso_time(self.built_at),
            "digest": self.artifact.digest,
            "target": self.target,
            "buildId": self.build_id,
        }


class Modules:
    """The latest built file per (language, name), at most ``limit`` of them. Thread-safe."""

    def __init__(self, limit: int = MAX_MODULES) -> None:
        self.limit = limit
        self._files: OrderedDict[tuple[str, str], Module] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, module: Module) -> None:
        key = (module.language, module.artifact.name)
        with self._lock:
            self._files[key] = module
            self._files.move_to_end(key)
            while len(self._files) > self.limit:
                self._files.popitem(last=False)

    def get(self, language: str, name: str) -> Module | None:
        with self._lock:
            return self._files.get((language, name))

    def listing(self) -> list[dict[str, Any]]:
        """API.md's ``modules``: per language, its files, by name."""
        with self._lock:
            modules = list(self._files.values())
        out = []
        for language in LANGUAGES:
            files = sorted(
                (m for m in modules if m.language == language), key=lambda m: m.artifact.name
            )
            if files:
                out.append({"language": language, "files": [m.to_dict() for m in files]})
        return out
