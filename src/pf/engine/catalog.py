"""What the service can build and what it has built: projects on disk and module files.

Projects are the directories under the projects root that hold sources, or the root
itself when it holds language directories or sources at its top. Scanning is cheap but
not free, and every submission needs it, so a scan is reused for ``ttl`` seconds. A
request that names no project gets the default one (``Projects.get``): the configured
PF_DEFAULT_PROJECT, else the original's demo project when it is there, else the only
project; with several and none of those, the request is refused with their names, never
answered with whichever sorts first.
Modules are the artifacts of the latest completed project build per published path,
the original's layout (engine.layout: ``/wasm/<source folder>/<file>``); the index is
bounded. The original had one project per web root; when two projects here would
publish the same path, the default project's file keeps it (the original's pages, which
send no project, load what they built), and otherwise the later build wins. Imports
engine.projects, engine.layout and toolchains only; nothing here runs a build.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pf.engine.cache import Artifact
from pf.engine.jobs import iso_time
from pf.engine.layout import TARGET_DIRS, published_path
from pf.engine.projects import Project, discover
from pf.errors import NotFound, RequestError, UsageError
from pf.toolchains import LANGUAGES, language_of

PROJECT_TTL = 1.0
MAX_MODULES = 1000
# The original's clients send {target} without a project and meant its demo project.
ORIGINAL_DEFAULT = "pf-web-polyglot-demo-plus-c"


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

    def get(self, name: str | None, default: str | None = None) -> Project:
        """The project called ``name``; for None, ``default`` when given, else the
        original's demo project, else the only one. NotFound for an unknown name,
        RequestError when several projects leave the choice open."""
        projects = self.all()
        if name is None:
            if default is not None:
                return self._named(default, projects)
            if not projects:
                raise NotFound(f"no projects under {self.root}")
            found = _implicit(projects)
            if found is None:
                raise RequestError(
                    f"no project given and {len(projects)} to choose from: {_names(projects)}",
                    hint="name one in the request (project), or set PF_DEFAULT_PROJECT "
                    "(pf serve --default-project)",
                )
            return found
        return self._named(name, projects)

    def default_name(self, configured: str | None) -> str | None:
        """The name of the project a request without one gets, or None when that is not
        settled (no projects, or several and no rule choosing one)."""
        if configured is not None:
            return configured
        found = _implicit(self.all())
        return found.name if found is not None else None

    def find(self, name: str | None) -> Project | None:
        """The project called ``name`` as last scanned, or None."""
        return next((p for p in self.all() if p.name == name), None)

    def check_default(self, name: str) -> None:
        """Refuse a configured default project that does not exist (at start-up)."""
        projects = self.all()
        if not any(p.name == name for p in projects):
            raise UsageError(
                f"default project {name} is not under {self.root}",
                hint=f"projects: {_names(projects)}",
            )

    def _named(self, name: str, projects: list[Project]) -> Project:
        for project in projects:
            if project.name == name:
                return project
        raise NotFound(f"Project not found: {name}. Available: {_names(projects)}")


def _implicit(projects: list[Project]) -> Project | None:
    """The project a request without one means, when that is unambiguous."""
    for project in projects:
        if project.name == ORIGINAL_DEFAULT:
            return project
    return projects[0] if len(projects) == 1 else None


def _names(projects: list[Project]) -> str:
    return ", ".join(p.name for p in projects) or "none"


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
    """One output of a completed project build, published at ``<target>/<folder>/<name>``."""

    language: str
    target: str
    build_id: str
    artifact: Artifact
    built_at: float
    folder: str
    project: str | None = None

    @property
    def published(self) -> str:
        return published_path(self.target, self.folder, self.artifact.name)

    def to_dict(self) -> dict[str, Any]:
        """The original's file entry (``path`` loads: a folder's name may hold URL syntax,
        so it is percent-encoded), then pf's extra fields."""
        return {
            "name": self.artifact.name,
            "path": quote(f"/{self.published}"),
            "size": self.artifact.size,
            "modified": iso_time(self.built_at),
            "digest": self.artifact.digest,
            "target": self.target,
            "sourceLanguage": self.language,
            "buildId": self.build_id,
            "project": self.project,
            "artifact": f"/api/builds/{self.build_id}/artifacts/{self.artifact.name}",
        }


def _stays(current: Module, module: Module, preferred: str | None) -> bool:
    """Whether ``current`` keeps its published path rather than ``module`` taking it."""
    if current.project != module.project and preferred in {current.project, module.project}:
        return current.project == preferred
    return current.built_at > module.built_at


class Modules:
    """The latest built file per published path, at most ``limit`` of them. Thread-safe."""

    def __init__(self, limit: int = MAX_MODULES) -> None:
        self.limit = limit
        self._files: OrderedDict[str, Module] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, module: Module, preferred: str | None = None) -> None:
        """Publish ``module`` unless a build that ended later published that path (in
        shared mode completions arrive from several places, not in their order), or the
        ``preferred`` project (the default one) did and ``module`` is another's."""
        key = module.published
        with self._lock:
            current = self._files.get(key)
            if current is not None and _stays(current, module, preferred):
                return
            self._files[key] = module
            self._files.move_to_end(key)
            while len(self._files) > self.limit:
                self._files.popitem(last=False)

    def get(self, published: str) -> Module | None:
        """The module published at ``<target>/<folder>/<name>``, or None."""
        with self._lock:
            return self._files.get(published)

    def listing(self) -> list[dict[str, Any]]:
        """docs/server.md's ``modules``: a group per target and source folder (the original's
        ``language``: the folder under ``wasm/``), wasm first, files by name."""
        with self._lock:
            modules = list(self._files.values())
        groups: dict[tuple[int, str], list[Module]] = {}
        for module in modules:
            rank = TARGET_DIRS.index(module.target) if module.target in TARGET_DIRS else 99
            groups.setdefault((rank, module.folder), []).append(module)
        return [
            {
                "language": folder,
                "target": files[0].target,
                "files": [m.to_dict() for m in sorted(files, key=lambda m: m.artifact.name)],
            }
            for (_rank, folder), files in sorted(groups.items())
        ]
