"""The original's output layout: where a project build's outputs are published.

The original wrote a project's outputs under its web root as ``<target>/<source
folder>/<file>``: ``web/wasm/c/c_trap.js``, ``web/asm/c/c_trap_asm.js``,
``web/llvm/c/c_trap.ll``, and ``web/wasm/asm/mini.wasm`` for the WAT that lives in
``asm/``. Its pages fetch those paths (``/wasm/asm/mini.wasm``), so pf publishes under
the same ones: ``pf build`` writes there, ``pf serve`` answers them from the latest
build (its outputs stay in the content-addressed cache). The source folder is the
project directory that holds a language's sources, or the language's name for sources
at the project's top. Pure functions; imports engine.projects only.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from pf.engine.projects import Project

# The original's directory per target, which is also pf's target name.
TARGET_DIRS: tuple[str, ...] = ("wasm", "asm", "llvm")


def source_folder(project: Project | None, language: str) -> str:
    """The folder ``language``'s sources live in within ``project`` (its first source's
    top directory), else the language's name."""
    names = project.sources.get(language, ()) if project is not None else ()
    if names:
        parts = PurePosixPath(names[0]).parts
        if len(parts) > 1:
            return parts[0]
    return language


def published_path(target: str, folder: str, name: str) -> str:
    """``<target>/<folder>/<name>``: the path under the web root (and the URL path) of a
    build's output ``name``."""
    return f"{target}/{folder}/{name}"
