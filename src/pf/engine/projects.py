"""Projects on disk: a directory whose source files, grouped by language, build as one module each.

The bundled demo is such a project: ``demos/polyglot/{rust,c,fortran,wat}/``. Source
names are kept relative to the project, so diagnostics read ``c/math.c:3:5``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pf.errors import RequestError
from pf.toolchains import LANGUAGES, CompileRequest, Options, SourceFile, language_of

# Directories that hold outputs or tooling state, never sources.
_SKIPPED = {"out", "obj", "target", "node_modules", "web", "build", "dist"}
# A crate root or main file leads, so its stem names the module.
_LEADERS = ("lib.rs", "main.rs")


@dataclass(frozen=True)
class Project:
    name: str
    path: Path
    sources: Mapping[str, tuple[str, ...]]  # language -> names relative to path

    @property
    def languages(self) -> list[str]:
        return [lang for lang in LANGUAGES if lang in self.sources]


def lead_first(names: list[str]) -> list[str]:
    """``names`` with a crate root (lib.rs, main.rs) first, the rest in the given order.

    The first source names the module and is the crate root a Rust driver compiles.
    """

    def rank(name: str) -> int:
        base = PurePosixPath(name).name
        return _LEADERS.index(base) if base in _LEADERS else len(_LEADERS)

    return sorted(names, key=rank)


def discover(path: Path, name: str | None = None) -> Project:
    """Scan ``path`` for sources; raises RequestError when it is not a directory."""
    if not path.is_dir():
        raise RequestError(f"project directory {path} does not exist")
    found: dict[str, list[str]] = {}
    for file in sorted(path.rglob("*")):
        relative = file.relative_to(path)
        if any(p.startswith(".") or p in _SKIPPED for p in relative.parts[:-1]):
            continue
        language = language_of(file.name)
        if language and file.is_file() and not file.name.startswith("."):
            found.setdefault(language, []).append(relative.as_posix())
    sources = {lang: tuple(lead_first(sorted(names))) for lang, names in found.items()}
    return Project(name or path.resolve().name, path, sources)


def request_for(project: Project, language: str, target: str, options: Options) -> CompileRequest:
    """The compile request for one language of ``project``."""
    names = project.sources.get(language)
    if not names:
        raise RequestError(
            f"project {project.name} has no {language} sources",
            hint=f"it has: {', '.join(project.languages) or 'no sources'}",
        )
    files = tuple(SourceFile(n, (project.path / n).read_bytes()) for n in names)
    return CompileRequest(language, target, files, options)
