"""The C driver: Debian clang 14 + wasm-ld + wasi-libc to wasm, LLVM 14 IR and asm.js.

Owns the argv for each C target: options first, then the operands, sources through
``base.operand`` (never read as an option or @file). The link puts ``--`` before its
operands; compiles do not, because they run through ccache, which in depend mode
(Debian's 4.7) appends a flag of its own after the operands, where ``--`` would make
clang read it as a file name.

What a module exports and whether it is a WASI command (has ``main``) or a library
("reactor") is only known after compiling, so a Transform reads the objects' symbol
tables (``wasmobj``) and writes ``obj/exports.rsp`` (checked names, quoted words), which
the link argv names as ``@obj/exports.rsp``. Imports base, tools, wasmobj, diagnostics, errors.
"""

from __future__ import annotations

import functools
import glob
import re
from pathlib import Path, PurePosixPath

from pf.errors import Diagnostic, InvalidOption, RequestError
from pf.toolchains import tools, wasmobj
from pf.toolchains.base import (
    END_OF_OPTIONS,
    CompileRequest,
    Output,
    Plan,
    Run,
    Step,
    ToolSpec,
    Transform,
    operand,
    stem_of,
)
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
# Every compile names its language: clang would take "x.C" for C++ and refuse "x.txt".
AS_C = ("-x", "c")
DEBUG_DIR = "-fdebug-compilation-dir=."
_HEADER_SUFFIXES = {".h"}


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
    step = Run("optimise", (opt.name, f"-passes={passes}", "-S", "-o", final, END_OF_OPTIONS, ir))
    return (step,), ir


def debug_flags(request: CompileRequest) -> tuple[str, ...]:
    """``-g`` for clang compiles, with the compilation directory recorded as ``.``.

    Steps run in a fresh scratch dir with sources named relatively; without the
    directory flag its random path would land in DW_AT_comp_dir / DIFile, and two builds
    of the same request would differ.
    """
    return ("-g", DEBUG_DIR) if request.options.debug else ()


def ccache_env(request: CompileRequest) -> dict[str, str]:
    """With ``-g`` ccache hashes the working directory, a new scratch dir per build, so it
    would never hit; ``-fdebug-compilation-dir=.`` keeps that directory out of the
    output, so leaving it out of the hash is sound."""
    return {"CCACHE_NOHASHDIR": "1"} if request.options.debug else {}


def optimise_flags(request: CompileRequest) -> tuple[str, ...]:
    """Clang flags for IR output: at -O0 clang marks functions optnone, which would make
    ``opt`` skip them, so the attribute is dropped when passes will run."""
    flags = [f"-O{request.options.opt_level}"]
    if request.options.passes is not None and request.options.opt_level == "0":
        flags += ["-Xclang", "-disable-O0-optnone"]
    return (*flags, *debug_flags(request))


def c_sources(request: CompileRequest) -> list[str]:
    """The sources to compile as C: the ``.c`` files (any case), or, when there are none
    (the request's language was given for other names), every file but headers."""
    names = [s.name for s in request.sources]
    chosen = [n for n in names if _suffix(n) == ".c"]
    if not chosen:
        chosen = [n for n in names if _suffix(n) not in _HEADER_SUFFIXES]
    if not chosen:
        raise RequestError(
            "A C request needs a .c source file to compile: headers (.h) alone have no code"
        )
    return chosen


def _suffix(name: str) -> str:
    return PurePosixPath(name).suffix.lower()


def _obj_name(index: int, source: str, suffix: str) -> str:
    # Indexed so that "a/x.c" and "b/x.c" cannot collide in the flat obj/ dir.
    return f"obj/{index}_{stem_of(source)}{suffix}"


def _write_exports(
    objects: tuple[str, ...], narrowed: tuple[str, ...] | None, scratch: Path
) -> None:
    wasmobj.write_export_file(scratch, objects, narrowed, EXPORTS_RSP, library_flags=LIBRARY_FLAGS)


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
        sources = c_sources(request)
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
        depfiles: list[str] = []
        for index, source in enumerate(sources):
            obj = _obj_name(index, source, ".o")
            objects.append(obj)
            # -MD lets ccache run in depend mode: on a miss it reads the dependency file
            # instead of running the preprocessor a second time (+5 ms, not +40 ms).
            depfile = _obj_name(index, source, ".d")
            depfiles.append(depfile)
            compile_argv = (
                "clang",
                TRIPLE,
                f"-O{options.opt_level}",
                *debug_flags(request),
                "-MD",
                "-MF",
                depfile,
                "-c",
                *AS_C,
                "-o",
                obj,
                operand(source),
            )
            steps.append(Run("compile", compile_argv, ccache=True))

        narrowed = options.exports
        # A partial, not a closure: a plan crosses to pf serve's build process pickled.
        write_exports = functools.partial(_write_exports, tuple(objects), narrowed)
        # The name is part of the cache key, so it carries what the function depends on.
        which = "*" if narrowed is None else ",".join(narrowed)
        steps.append(Transform("link", f"c-exports-v2:{which}", write_exports))
        strip = () if options.debug else ("-Wl,--strip-all",)
        wasm = Output(f"out/{request.stem}.wasm", "wasm")
        if request.target == "asm":
            wasm = Output(f"obj/{request.stem}.wasm", "wasm")
        link = (
            "clang",
            *flags,
            f"@{EXPORTS_RSP}",
            *strip,
            "-o",
            wasm.path,
            END_OF_OPTIONS,
            *objects,
        )
        steps.append(Run("link", link))
        output = wasm
        if request.target == "asm":
            convert, output = tools.wasm2js_step(wasm.path, request.stem)
            steps.append(convert)
        return Plan(
            steps=tuple(steps),
            outputs=(output,),
            tools=self.tools(request.target),
            env=ccache_env(request),
            depfiles=tuple(depfiles),
        )

    def _plan_llvm(self, request: CompileRequest, sources: list[str]) -> Plan:
        flags = [TRIPLE, "-S", "-emit-llvm", *optimise_flags(request)]
        if request.options.parallel:
            flags.append("-fopenmp")
        opt_steps, ir = optimise_steps(request, f"obj/{request.stem}.linked.ll")
        steps: list[Step] = []
        used = [tools.CLANG]
        depfiles: list[str] = []
        if len(sources) == 1:
            depfiles.append(f"obj/{request.stem}.d")
            depend = ("-MD", "-MF", depfiles[0])
            argv = ("clang", *flags, *depend, *AS_C, "-o", ir, operand(sources[0]))
            steps.append(Run("compile", argv, ccache=True))
        else:
            # One IR module per request: compile each file, then llvm-link them together.
            parts = [_obj_name(i, s, ".ll") for i, s in enumerate(sources)]
            for index, (source, part) in enumerate(zip(sources, parts, strict=True)):
                depfiles.append(_obj_name(index, source, ".d"))
                depend = ("-MD", "-MF", depfiles[-1])
                argv = (
                    "clang",
                    *flags,
                    *depend,
                    *AS_C,
                    "-o",
                    part,
                    operand(source),
                )
                steps.append(Run("compile", argv, ccache=True))
            steps.append(Run("link", ("llvm-link", "-S", "-o", ir, END_OF_OPTIONS, *parts)))
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
            env=ccache_env(request),
            note=note,
            depfiles=tuple(depfiles),
        )

    def diagnostics(self, stderr: str) -> list[Diagnostic]:
        return parse_gcc_style(stderr)
