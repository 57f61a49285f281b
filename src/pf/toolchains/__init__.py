"""Toolchain drivers: which tool serves each (language, target) and how it is invoked.

Drivers are registered as import strings and loaded on first use, so naming a
language does not import every driver. Imports sandbox, config and errors only.
"""

from __future__ import annotations

import importlib
from typing import cast

from pf.errors import RequestError, UnsupportedLanguage, UnsupportedTarget
from pf.toolchains.base import (
    EXTENSIONS,
    LANGUAGES,
    OPT_LEVELS,
    TARGETS,
    CompileRequest,
    Driver,
    Options,
    Output,
    Plan,
    Run,
    SourceFile,
    ToolInfo,
    ToolSpec,
    Transform,
    language_of,
)

DRIVERS: dict[str, tuple[str, str]] = {
    "rust": ("pf.toolchains.rust:RustDriver", "Debian rustc 1.63 with its wasm32 std"),
    "c": ("pf.toolchains.c:CDriver", "clang 14 + wasm-ld with wasi-libc"),
    "fortran": ("pf.toolchains.fortran:FortranDriver", "flang 19 IR retargeted to wasm32"),
    "wat": ("pf.toolchains.wat:WatDriver", "wabt wat2wasm"),
}

_loaded: dict[str, Driver] = {}


def get_driver(language: str) -> Driver:
    """The driver for ``language``; raises UnsupportedLanguage naming the supported ones."""
    if language not in DRIVERS:
        raise UnsupportedLanguage(language, LANGUAGES)
    driver = _loaded.get(language)
    if driver is None:
        module_name, _, class_name = DRIVERS[language][0].partition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        driver = _loaded[language] = cast(Driver, cls())
    return driver


def driver_for(language: str, target: str) -> Driver:
    """The driver serving ``language`` -> ``target``, or a RequestError saying why none does."""
    driver = get_driver(language)
    if target not in TARGETS:
        raise UnsupportedTarget(target, TARGETS)
    if target not in driver.targets:
        raise RequestError(
            f"{language} cannot be compiled to {target} here. "
            f"Supported targets for {language}: {', '.join(driver.targets)}"
        )
    return driver


__all__ = [
    "DRIVERS",
    "EXTENSIONS",
    "LANGUAGES",
    "OPT_LEVELS",
    "TARGETS",
    "CompileRequest",
    "Driver",
    "Options",
    "Output",
    "Plan",
    "Run",
    "SourceFile",
    "ToolInfo",
    "ToolSpec",
    "Transform",
    "driver_for",
    "get_driver",
    "language_of",
]
