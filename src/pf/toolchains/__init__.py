"""Toolchain drivers: which tool serves each (language, target) and how it is invoked.

Drivers are registered as import strings and loaded on first use, so naming a
language does not import every driver. Imports sandbox, config and errors only.
"""

from __future__ import annotations

import importlib
from typing import cast

from pf.errors import InvalidOption, RequestError, UnsupportedLanguage, UnsupportedTarget
from pf.toolchains.base import (
    EXTENSIONS,
    LANGUAGES,
    OPT_LEVELS,
    TARGETS,
    Assemble,
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
    "wat": ("pf.toolchains.wat:WatDriver", "wabt 1.0.39 built to WebAssembly, resident"),
}

# Drivers that serve a language beside its own driver, chosen per request by
# driver_for_request: by id, the language they serve, import string and summary.
VARIANTS: dict[str, tuple[str, str, str]] = {
    "emscripten": (
        "c",
        "pf.toolchains.emscripten:EmscriptenDriver",
        "Debian emcc 3.1.6: ES6 module + wasm, asm.js, IR",
    ),
}

_loaded: dict[str, Driver] = {}


def _load(key: str, spec: str) -> Driver:
    driver = _loaded.get(key)
    if driver is None:
        module_name, _, class_name = spec.partition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        driver = _loaded[key] = cast(Driver, cls())
    return driver


def get_driver(language: str) -> Driver:
    """The driver for ``language``; raises UnsupportedLanguage naming the supported ones."""
    if language not in DRIVERS:
        raise UnsupportedLanguage(language, LANGUAGES)
    return _load(language, DRIVERS[language][0])


def get_variant(driver_id: str) -> Driver:
    """The variant driver called ``driver_id`` (a key of VARIANTS)."""
    return _load(driver_id, VARIANTS[driver_id][1])


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


def driver_for_request(request: CompileRequest) -> Driver:
    """The driver that builds ``request``: its language's, or a variant the request asks
    for (C with ``#include <emscripten.h>`` or ``emscripten=true``: Emscripten)."""
    driver = driver_for(request.language, request.target)
    if request.options.emscripten and request.language != "c":
        raise InvalidOption(
            "emscripten", f"Emscripten builds C only, not {request.language}", ["false"]
        )
    from pf.toolchains.emscripten import wants

    return get_variant("emscripten") if wants(request) else driver


__all__ = [
    "DRIVERS",
    "EXTENSIONS",
    "LANGUAGES",
    "OPT_LEVELS",
    "TARGETS",
    "VARIANTS",
    "Assemble",
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
    "driver_for_request",
    "get_driver",
    "get_variant",
    "language_of",
]
