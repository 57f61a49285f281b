"""The Emscripten driver: Debian's emcc 3.1.6 turns C into an ES6 module + wasm, asm.js or IR.

C written for Emscripten (``#include <emscripten.h>``, ``EMSCRIPTEN_KEEPALIVE``,
``EM_JS``) needs its headers and its JavaScript runtime, which clang + wasi-libc do not
have. ``wants(request)`` says when a C request is such C: its ``emscripten`` option, else
an include of ``<emscripten.h>`` or ``<emscripten/...>`` in a source.

Target ``wasm`` gives what the original's web demo imports: ``<stem>.js``, an ES6 module
whose default export instantiates ``<stem>.wasm`` (``-sMODULARIZE -sEXPORT_ES6
-sENVIRONMENT=web -sINVOKE_RUN=0``: main is exported, not run); ``asm`` gives the same
module with the code in JavaScript (``-sWASM=0``, ``<stem>_asm.js``); ``llvm`` gives the
IR clang emits for ``wasm32-unknown-emscripten``. The ``EMSCRIPTEN_KEEPALIVE`` functions
are exported; ``exports`` adds checked names to ``-sEXPORTED_FUNCTIONS``.

emcc runs confined like every compiler: it reads its prebuilt libraries from Debian's
frozen cache under /usr (read-only inside the sandbox, and FROZEN_CACHE means it never
builds into it), and writes only its temporary files (TMPDIR) and the outputs in the
scratch dir. Imports base, tools, c (shared IR helpers), diagnostics, errors.
"""

from __future__ import annotations

import re

from pf.errors import Diagnostic, InvalidOption
from pf.toolchains import tools
from pf.toolchains.base import (
    END_OF_OPTIONS,
    CompileRequest,
    Output,
    Plan,
    Run,
    Step,
    ToolSpec,
    operand,
)
from pf.toolchains.c import AS_C, c_sources, optimise_flags, optimise_steps, refuse_passes
from pf.toolchains.diagnostics import parse_gcc_style

_INCLUDE = re.compile(rb"^[ \t]*#[ \t]*include[ \t]*[<\"]emscripten(?:\.h|/)", re.MULTILINE)
# Debian's emscripten finds its JavaScript parser (acorn) there, not beside node:
# NodeSource's node, which the machine may have, does not look in /usr/share/nodejs.
ENV = {"NODE_PATH": "/usr/share/nodejs"}
# The original's web build: an ES6 module for the browser whose default export is a
# factory; main is not run on load.
MODULE_FLAGS = ("-sMODULARIZE", "-sEXPORT_ES6", "-sENVIRONMENT=web", "-sINVOKE_RUN=0")
# asm.js: no wasm, and the memory image inside the .js rather than a .mem file beside it.
ASM_FLAGS = ("-sWASM=0", "--memory-init-file", "0")
NOTE = "Emscripten 3.1.6 (emcc): an ES6 module; await its default export to instantiate"


def wants(request: CompileRequest) -> bool:
    """Whether a C request builds with emcc rather than clang + wasi-libc."""
    if request.language != "c":
        return False
    chosen = request.options.emscripten
    if chosen is not None:
        return chosen
    return any(_INCLUDE.search(source.content) for source in request.sources)


def _exported(request: CompileRequest) -> tuple[str, ...]:
    # Names are checked symbols (Options.parse); emcc wants C names with a leading '_'.
    names = request.options.exports
    if not names:
        return ()
    return (f"-sEXPORTED_FUNCTIONS={','.join('_' + name for name in names)}",)


class EmscriptenDriver:
    """C via Debian's emcc: the original web demo's ES6 module + wasm, asm.js and IR."""

    id = "emscripten"
    language = "c"
    targets: tuple[str, ...] = ("wasm", "llvm", "asm")

    def tools(self, target: str) -> tuple[ToolSpec, ...]:
        if target == "llvm":
            return (tools.EMCC, tools.LLVM_LINK, tools.OPT)
        return (tools.EMCC,)

    def plan(self, request: CompileRequest) -> Plan:
        sources = c_sources(request)
        refuse_passes(request)
        if request.options.parallel and request.target != "llvm":
            raise InvalidOption(
                "parallel",
                "Emscripten 3.1.6 has no OpenMP runtime for the browser; use target "
                "'llvm' to get OpenMP IR, or drop 'parallel'",
            )
        if request.target == "llvm":
            return self._plan_llvm(request, sources)
        return self._plan_module(request, sources)

    def _plan_module(self, request: CompileRequest, sources: list[str]) -> Plan:
        options = request.options
        stem = request.stem
        if request.target == "asm":
            outputs: tuple[Output, ...] = (Output(f"out/{stem}_asm.js", "js"),)
            flags: tuple[str, ...] = (*MODULE_FLAGS, *ASM_FLAGS)
        else:
            outputs = (Output(f"out/{stem}.js", "js"), Output(f"out/{stem}.wasm", "wasm"))
            flags = MODULE_FLAGS
        argv = (
            "emcc",
            f"-O{options.opt_level}",
            *(("-g",) if options.debug else ()),
            *flags,
            *_exported(request),
            "-o",
            outputs[0].path,
            *AS_C,
            *(operand(source) for source in sources),
        )
        return Plan(
            steps=(Run("compile", argv),),
            outputs=outputs,
            tools=self.tools(request.target),
            env=ENV,
            note=NOTE,
        )

    def _plan_llvm(self, request: CompileRequest, sources: list[str]) -> Plan:
        flags = ["-S", "-emit-llvm", *optimise_flags(request)]
        if request.options.parallel:
            flags.append("-fopenmp")
        opt_steps, ir = optimise_steps(request, f"obj/{request.stem}.linked.ll")
        steps: list[Step] = []
        used = [tools.EMCC]
        if len(sources) == 1:
            steps.append(Run("compile", ("emcc", *flags, "-o", ir, *AS_C, operand(sources[0]))))
        else:
            # emcc -S writes one file per source: compile each, then llvm-link them.
            parts = [f"obj/{index}_{request.stem}.ll" for index in range(len(sources))]
            for source, part in zip(sources, parts, strict=True):
                steps.append(Run("compile", ("emcc", *flags, "-o", part, *AS_C, operand(source))))
            steps.append(Run("link", ("llvm-link", "-S", "-o", ir, END_OF_OPTIONS, *parts)))
            used.append(tools.LLVM_LINK)
        if opt_steps:
            used.append(tools.OPT)
        return Plan(
            steps=(*steps, *opt_steps),
            outputs=(Output(f"out/{request.stem}.ll", "llvm"),),
            tools=tuple(used),
            env=ENV,
            note="LLVM 14 IR for wasm32-unknown-emscripten (Emscripten 3.1.6)",
        )

    def diagnostics(self, stderr: str) -> list[Diagnostic]:
        return parse_gcc_style(stderr)
