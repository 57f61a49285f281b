"""The C driver: Debian clang 14 + wasm-ld + wasi-libc to wasm, LLVM 14 IR and asm.js.

Owns the argv for each C target. What a module exports and whether it is a WASI command
(has ``main``) or a library ("reactor") is only known after compiling, so a Transform
reads the objects' symbol tables (``wasmobj``) and writes ``obj/exports.rsp``, which the
link argv names as ``@obj/exports.rsp``. Imports base, tools, wasmobj, diagnostics, errors.
"""

from __future__ import annotations

import glob
import re
from pathlib import Path, PurePosixPath

from pf.errors import Diagnostic, InvalidOption, RequestError
from pf.toolchains import tools, wasmobj
from pf.toolchains.base import CompileRequest, Output, Plan, Run, Step, ToolSpec, Transform
from pf.toolchains.diagnostics import parse_gcc_style

TRIPLE = "--target=wasm32-wasi"
EXPORTS_RSP = "obj/exports.rsp"
# Only added when no object defines main: a library module with no _start.
LIBRARY_FLAGS = ("-mexec-model=reactor", "-Wl,--no-entry")

_OMP_INCLUDE = re.compile(rb"^\s*#\s*include\s*[<\"]omp\.h[>\"]", re.MULTILINE)
# clang 14 finds omp.h in its resource dir once Debian's libomp-14-dev is installed.
_OMP_HEADERS = (
    "/usr/lib/llvm-14/lib/clang/*/include/omp.h",
    "/usr/lib/llvm-14/include/openmp/omp.h",
)
_OMP_PACKAGE = "libomp-14-dev"


def _omp_header_installed() -> bool:
    return any(glob.glob(pattern) for pattern in _OMP_HEADERS)


def refuse_passes(request: CompileRequest) -> None:
    """``passes`` is an ``opt`` pipeline over LLVM IR: only the llvm target produces IR."""
    if request.options.passes is not None and request.target != "llvm":
        raise InvalidOption(
            "passes",
            f"LLVM passes apply to target 'llvm' only, not {request.target!r}; "
            "use opt_level to optimise wasm",
        )


def optimise_steps(
    request: CompileRequest, ir: str, opt: ToolSpec = tools.OPT
) -> tuple[tuple[Step, ...], str]:
    """An ``opt -passes`` step from ``ir`` to ``out/<stem>.ll`` when passes are asked for.

    Returns the steps and the path the IR producer must write: ``ir`` when opt runs,
    else the final output directly.
    """
    final = f"out/{request.stem}.ll"
    passes = request.options.passes
    if passes is None:
        return (), final
    step = Run("optimise", (opt.name, f"-passes={passes}", "-S", ir, "-o", final))
    return (step,), ir


def optimise_flags(request: CompileRequest) -> tuple[str, ...]:
    """Clang flags for IR output: at -O0 clang marks functions optnone, which would make
    ``opt`` skip them, so the attribute is dropped when passes will run."""
    flags = [f"-O{request.options.opt_level}"]
    if request.options.passes is not None and request.options.opt_level == "0":
        flags += ["-Xclang", "-disable-O0-optnone"]
    if request.options.debug:
        flags.append("-g")
    return tuple(flags)


def _obj_name(index: int, source: str, suffix: str) -> str:
    # Indexed so that "a/x.c" and "b/x.c" cannot collide in the flat obj/ dir.
    return f"obj/{index}_{PurePosixPath(source).stem}{suffix}"


class CDriver:
    """C via clang 14 for wasm32-wasi: objects, then a link whose exports come from them."""

    id = "c"
    language = "c"
    targets: tuple[str, ...] = ("wasm", "llvm", "asm")

    def tools(self, target: str) -> tuple[ToolSpec, ...]:
        if target == "llvm":
            return (tools.CLANG, tools.LLVM_LINK, tools.OPT)
        if target == "asm":
            return (tools.CLANG, tools.WASM2JS)
        return (tools.CLANG,)

    def plan(self, request: CompileRequest) -> Plan:
        sources = [s.name for s in request.sources if PurePosixPath(s.name).suffix == ".c"]
        if not sources:
            raise RequestError("A C request needs at least one .c source file")
        refuse_passes(request)
        self._check_parallel(request)
        if request.target == "llvm":
            return self._plan_llvm(request, sources)
        return self._plan_wasm(request, sources)

    def _check_parallel(self, request: CompileRequest) -> None:
        if not request.options.parallel:
            return
        if request.target != "llvm":
            raise InvalidOption(
                "parallel",
                "OpenMP needs a libomp runtime built for wasm32, and none exists "
                "(Debian's libomp is host-only; wasi-libc has no threads). "
                "Use target 'llvm' to get OpenMP IR, or drop 'parallel'",
            )
        needs_header = any(_OMP_INCLUDE.search(s.content) for s in request.sources)
        if needs_header and not _omp_header_installed():
            raise InvalidOption(
                "parallel",
                f"the sources include <omp.h>, which clang 14 cannot find: install "
                f"{_OMP_PACKAGE} (apt-get install -y --no-install-recommends {_OMP_PACKAGE})",
            )

    def _plan_wasm(self, request: CompileRequest, sources: list[str]) -> Plan:
        options = request.options
        flags = [TRIPLE, f"-O{options.opt_level}"]
        if options.debug:
            flags.append("-g")
        steps: list[Step] = []
        objects: list[str] = []
        for index, source in enumerate(sources):
            obj = _obj_name(index, source, ".o")
            objects.append(obj)
            # -MD lets ccache run in depend mode: on a miss it reads the dependency file
            # instead of running the preprocessor a second time (+5 ms, not +40 ms).
            depfile = _obj_name(index, source, ".d")
            compile_argv = ("clang", *flags, "-MD", "-MF", depfile, "-c", source, "-o", obj)
            steps.append(Run("compile", compile_argv, ccache=True))

        narrowed = options.exports

        def write_exports(scratch: Path) -> None:
            wasmobj.write_export_file(
                scratch, objects, narrowed, EXPORTS_RSP, library_flags=LIBRARY_FLAGS
            )

        # The name is part of the cache key, so it carries what the function depends on.
        which = "*" if narrowed is None else ",".join(narrowed)
        steps.append(Transform("link", f"c-exports-v1:{which}", write_exports))
        strip = () if options.debug else ("-Wl,--strip-all",)
        wasm = Output(f"out/{request.stem}.wasm", "wasm")
        if request.target == "asm":
            wasm = Output(f"obj/{request.stem}.wasm", "wasm")
        link = ("clang", *flags, *objects, f"@{EXPORTS_RSP}", *strip, "-o", wasm.path)
        steps.append(Run("link", link))
        if request.target == "asm":
            convert, js = tools.wasm2js_step(wasm.path, request.stem)
            return Plan(steps=(*steps, convert), outputs=(js,), tools=self.tools("asm"))
        return Plan(steps=tuple(steps), outputs=(wasm,), tools=self.tools("wasm"))

    def _plan_llvm(self, request: CompileRequest, sources: list[str]) -> Plan:
        flags = [TRIPLE, "-S", "-emit-llvm", *optimise_flags(request)]
        if request.options.parallel:
            flags.append("-fopenmp")
        opt_steps, ir = optimise_steps(request, f"obj/{request.stem}.linked.ll")
        steps: list[Step] = []
        used = [tools.CLANG]
        if len(sources) == 1:
            depend = ("-MD", "-MF", f"obj/{request.stem}.d")
            steps.append(
                Run("compile", ("clang", *flags, *depend, sources[0], "-o", ir), ccache=True)
            )
        else:
            # One IR module per request: compile each file, then llvm-link them together.
            parts = [_obj_name(i, s, ".ll") for i, s in enumerate(sources)]
            for index, (source, part) in enumerate(zip(sources, parts, strict=True)):
                depend = ("-MD", "-MF", _obj_name(index, source, ".d"))
                argv = ("clang", *flags, *depend, source, "-o", part)
                steps.append(Run("compile", argv, ccache=True))
            steps.append(Run("link", ("llvm-link", "-S", *parts, "-o", ir)))
            used.append(tools.LLVM_LINK)
        if opt_steps:
            used.append(tools.OPT)
        note = "LLVM 14 IR for wasm32-wasi"
        if request.options.parallel:
            note += "; OpenMP regions call libomp (__kmpc_*), which exists only for the host"
        return Plan(
            steps=(*steps, *opt_steps),
            outputs=(Output(f"out/{request.stem}.ll", "llvm"),),
            tools=tuple(used),
            note=note,
        )

    def diagnostics(self, stderr: str) -> list[Diagnostic]:
        return parse_gcc_style(stderr)
