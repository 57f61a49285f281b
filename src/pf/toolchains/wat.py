"""The WAT driver: wabt to wasm; then binaryen wasm2js (asm) or wasm2c + clang (llvm).

The module is assembled by wabt built to WebAssembly, kept resident (an Assemble step,
pf.toolchains.wabt): the same parser, validator and writer as wabt's wat2wasm, without
a process per module. Owns the argv for the other tools: options, ``--``, operands.
A WAT file is exactly one module, so a request holds one ``.wat``. ``exports`` is
honoured by dropping the other entries of the module's export section
(``wasmobj.narrow_exports``); the module's own exports are otherwise what they are.
Imports base, tools, wasmobj, c (shared opt helpers), diagnostics, errors.
"""

from __future__ import annotations

import functools
import posixpath
from pathlib import Path

from pf.errors import Diagnostic, InvalidOption, RequestError
from pf.toolchains import tools, wasmobj
from pf.toolchains.base import (
    END_OF_OPTIONS,
    Assemble,
    CompileRequest,
    Output,
    Plan,
    Run,
    Step,
    ToolSpec,
    Transform,
)
from pf.toolchains.c import ccache_env, optimise_flags, optimise_steps, refuse_passes
from pf.toolchains.diagnostics import parse_gcc_style

_SUFFIXES = {".wat", ".wast"}
WASM2C_SOURCE = "obj/module.c"

LLVM_NOTE = (
    "WAT has no direct LLVM front end: this is host-triple LLVM 14 IR of the C that wasm2c "
    "generates, i.e. of the wasm2c runtime model (an instance struct; exports named "
    "Z_<stem>Z_<export> taking the instance first; memory reached through wasm-rt.h), "
    "not a plain add(i32, i32)"
)


class WatDriver:
    """WebAssembly text via wabt; asm.js via wasm2js; runtime-model IR via wasm2c."""

    id = "wat"
    language = "wat"
    targets: tuple[str, ...] = ("wasm", "llvm", "asm")

    def tools(self, target: str) -> tuple[ToolSpec, ...]:
        if target == "llvm":
            return (tools.WABT_WASM, tools.WASM2C, tools.CLANG, tools.OPT)
        if target == "asm":
            return (tools.WABT_WASM, tools.WASM2JS)
        return (tools.WABT_WASM,)

    def plan(self, request: CompileRequest) -> Plan:
        names = [s.name for s in request.sources]
        # Other names are WAT too when none has a WAT suffix: the language was given.
        sources = [n for n in names if posixpath.splitext(n)[1].lower() in _SUFFIXES] or names
        if len(sources) != 1:
            raise RequestError(
                f"A WAT request compiles exactly one module: give one .wat file, not {len(sources)}"
            )
        options = request.options
        refuse_passes(request)
        if options.parallel:
            raise InvalidOption(
                "parallel", "WAT is compiled as written; there is no OpenMP for WebAssembly text"
            )
        # opt_level is accepted and ignored for wasm/asm: wabt assembles the
        # instructions as written, and a WAT author asks for exactly that module.
        # For llvm it sets clang's level on the wasm2c output.
        stem = request.stem
        final_wasm = request.target == "wasm"
        narrowed = options.exports
        raw = f"out/{stem}.wasm" if final_wasm and narrowed is None else f"obj/{stem}.wasm"
        assemble = Assemble("compile", tools.WABT_WASM.name, sources[0], raw, options.debug)
        steps: list[Step] = [assemble]
        wasm = raw
        if narrowed is not None:
            wasm = f"out/{stem}.wasm" if final_wasm else f"obj/{stem}.narrow.wasm"
            steps.append(_narrow(raw, wasm, narrowed))
        if request.target == "wasm":
            return Plan(
                steps=tuple(steps), outputs=(Output(wasm, "wasm"),), tools=self.tools("wasm")
            )
        if request.target == "asm":
            convert, js = tools.wasm2js_step(wasm, stem)
            return Plan(steps=(*steps, convert), outputs=(js,), tools=self.tools("asm"))
        return self._plan_llvm(request, steps, wasm)

    def _plan_llvm(self, request: CompileRequest, steps: list[Step], wasm: str) -> Plan:
        stem = request.stem
        # wasm2c writes obj/module.c and obj/module.h; the .c includes the .h by its
        # own directory and wasm-rt.h from /usr/include, so a host-triple clang finds both.
        # The file name is pf's own: wasm2c writes it into an #include line unescaped.
        # The module name is pinned to the stem, which wasm2c mangles into identifiers:
        # it would otherwise take it from a name section (only with debug) or the file.
        c_file = WASM2C_SOURCE
        convert = ("wasm2c", f"--module-name={stem}", "-o", c_file, END_OF_OPTIONS, wasm)
        steps.append(Run("convert", convert))
        opt_steps, ir = optimise_steps(request, f"obj/{stem}.ll")
        depfile = f"obj/{stem}.d"
        depend = ("-MD", "-MF", depfile)  # ccache depend mode, see c.py
        compile_ir = (
            "clang",
            "-S",
            "-emit-llvm",
            *optimise_flags(request),
            *depend,
            "-o",
            ir,
            c_file,  # pf's own name; no "--" under ccache (see c.py)
        )
        steps.append(Run("compile", compile_ir, ccache=True))
        used = self.tools("llvm") if opt_steps else self.tools("llvm")[:-1]
        return Plan(
            steps=(*steps, *opt_steps),
            outputs=(Output(f"out/{stem}.ll", "llvm"),),
            tools=used,
            env=ccache_env(request),
            note=LLVM_NOTE,
            depfiles=(depfile,),
        )

    def diagnostics(self, stderr: str) -> list[Diagnostic]:
        # wabt says "file:line:col: error: msg", then the source line and carets.
        return parse_gcc_style(stderr)


def _narrow(raw: str, dest: str, names: tuple[str, ...]) -> Transform:
    # The name is part of the cache key, so it carries the names the function keeps. A
    # partial, not a closure: a plan crosses to pf serve's build process pickled.
    narrow = functools.partial(_narrow_file, raw, dest, names)
    return Transform("link", f"wat-narrow-exports-v1:{','.join(names)}", narrow)


def _narrow_file(raw: str, dest: str, names: tuple[str, ...], scratch: Path) -> None:
    data = (scratch / raw).read_bytes()
    (scratch / dest).write_bytes(wasmobj.narrow_exports(data, names))
