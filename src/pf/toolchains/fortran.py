"""The Fortran driver: flang-19 host IR, retargeted to wasm32 and linked with pf's runtime.

No packaged compiler targets Fortran -> wasm (docs/toolchains.md), so the wasm route is:
``flang-new-19 -S -emit-llvm`` (x86_64 IR) -> a Transform that rewrites the target
triple/datalayout to wasm32 -> clang-19 with wasi-libc -> wasm-ld. Debian ships
libFortranRuntime for x86_64 only; ``runtime/pf_fortran_rt.c`` implements the part flang
calls for list-directed PRINT of scalars, program start and STOP. It is compiled to a
wasm object once per clang-19 (a Prebuilt action, which the engine caches), not on
every compile. Any other runtime entry point is refused before linking with a message
naming the Fortran feature, at the user's line where flang records it.

The same Transform masks the scratch directory out of the IR (flang embeds the absolute
source path for runtime error messages) and renames flang's ``main(argc, argv, envp)``
so the runtime's ``__main_void`` (what wasi-libc's crt1 calls) can call it. Whether the
module is a WASI command (a main program) or a library (reactor) is known only then, so
it writes ``obj/mode.rsp``; a later Transform writes ``obj/exports.rsp`` from the objects'
symbol tables (``wasmobj``). Imports base, tools, wasmobj, diagnostics and errors.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from pf.errors import CompileFailed, Diagnostic, InvalidOption, RequestError
from pf.toolchains import response, tools, wasmobj
from pf.toolchains.base import (
    END_OF_OPTIONS,
    CompileRequest,
    Output,
    Plan,
    Prebuilt,
    Run,
    SourceFile,
    Step,
    ToolSpec,
    Transform,
    language_of,
    operand,
)
from pf.toolchains.diagnostics import parse_gcc_style
from pf.toolchains.names import MAX_STEM_BYTES, bounded

TRIPLE = "--target=wasm32-wasi"
WASM32_TRIPLE = "wasm32-unknown-wasi"
# clang-19's own layout for wasm32 (`clang-19 --target=wasm32-wasi -S -emit-llvm`).
WASM32_DATALAYOUT = "e-m:e-p:32:32-p10:8:8-p20:8:8-i64:64-n32:64-S128-ni:1:10:20"
RUNTIME_SOURCE = ".pf/pf_fortran_rt.c"
RUNTIME_OBJECT = "obj/pf_fortran_rt.o"
MODE_RSP = "obj/mode.rsp"
EXPORTS_RSP = "obj/exports.rsp"
LIBRARY_FLAGS = ("-mexec-model=reactor", "-Wl,--no-entry")
# flang's `main` after the rename; the runtime's __main_void calls it.
FORTRAN_MAIN = "_pf_fortran_main"
# flang-19 rejects -Os/-Oz ("invalid integral value"): flang optimises at -O2 and the
# size levels are applied by clang-19 (wasm) or opt-19 `default<Os>` (llvm) instead.
_FLANG_OPT = {"0": "-O0", "1": "-O1", "2": "-O2", "3": "-O3", "s": "-O2", "z": "-O2"}

_MODULE_DEF = re.compile(
    rb"^\s*module\s+(?!procedure\b|function\b|subroutine\b)(\w+)\s*$", re.I | re.M
)
_MODULE_USE = re.compile(rb"^\s*use\s*(?:,\s*\w+\s*::\s*|::\s*)?(\w+)", re.I | re.M)


@functools.cache
def runtime_source() -> bytes:
    """The C source of pf's Fortran wasm runtime, shipped as package data."""
    resource = importlib.resources.files("pf.toolchains") / "runtime" / "pf_fortran_rt.c"
    return resource.read_bytes()


@functools.cache
def runtime_symbols() -> frozenset[str]:
    """The libFortranRuntime entry points pf's runtime defines."""
    return frozenset(re.findall(r"\b(_Fortran\w+)\(", runtime_source().decode()))


# What a missing runtime entry point means in Fortran terms: first matching prefix wins.
_FEATURES: tuple[tuple[str, str], ...] = (
    ("_FortranAioBeginExternalFormattedOutput", "formatted WRITE/PRINT (a FMT= format)"),
    ("_FortranAioBeginExternalFormattedInput", "formatted READ"),
    ("_FortranAioBeginExternalListInput", "list-directed READ"),
    ("_FortranAioBeginInternal", "internal I/O (READ/WRITE on a character variable)"),
    ("_FortranAioBeginUnformatted", "unformatted I/O"),
    ("_FortranAioBeginOpen", "OPEN"),
    ("_FortranAioBeginClose", "CLOSE"),
    ("_FortranAioBeginInquire", "INQUIRE"),
    ("_FortranAioBeginRewind", "REWIND"),
    ("_FortranAioBeginBackspace", "BACKSPACE"),
    ("_FortranAioBeginEndfile", "ENDFILE"),
    ("_FortranAioBeginFlush", "FLUSH"),
    ("_FortranAioBeginWait", "WAIT"),
    ("_FortranAioInput", "READ"),
    ("_FortranAioOutputNamelist", "NAMELIST output"),
    ("_FortranAioOutputDescriptor", "list-directed output of arrays or derived types"),
    ("_FortranAioOutputCharacter", "output of non-default CHARACTER kinds"),
    ("_FortranAioEnableHandlers", "IOSTAT=/ERR=/END=/IOMSG= on I/O statements"),
    ("_FortranAioSet", "I/O control specifiers (ADVANCE=, DELIM=, ...)"),
    ("_FortranAio", "this I/O statement"),
    ("_FortranAAllocatable", "ALLOCATE/DEALLOCATE"),
    ("_FortranAPointer", "POINTER allocation and association"),
    ("_FortranAAssign", "assignment of allocatable, array or derived-type values"),
    ("_FortranAConcatenate", "character concatenation (//)"),
    ("_FortranACharacter", "character operations on runtime lengths"),
    ("_FortranARandom", "RANDOM_NUMBER/RANDOM_SEED"),
    ("_FortranADateAndTime", "DATE_AND_TIME"),
    ("_FortranACpuTime", "CPU_TIME"),
    ("_FortranASystemClock", "SYSTEM_CLOCK"),
    ("_FortranAGetCommand", "GET_COMMAND/GET_COMMAND_ARGUMENT"),
    ("_FortranAArgumentCount", "COMMAND_ARGUMENT_COUNT"),
    ("_FortranAGetEnvVariable", "GET_ENVIRONMENT_VARIABLE"),
    ("_FortranAPauseStatement", "PAUSE"),
    ("_FortranAFailImageStatement", "FAIL IMAGE"),
    ("_FortranAInitialize", "derived types with default initialisation of allocatables"),
    ("_FortranADestroy", "derived types with allocatable components"),
)
# Runtime routines named after an intrinsic: `_FortranASumInteger4` -> SUM.
_INTRINSIC = re.compile(
    r"^_FortranA(?P<name>[A-Z][A-Za-z]*?)"
    r"(?:Integer|Real|Complex|Logical|Character|Dim|Descriptor|Unsigned|Ascii|\d|$)"
)
_INTRINSICS = frozenset(
    "ADJUSTL ADJUSTR ALL ANY BESSEL_JN BESSEL_YN COUNT CSHIFT DOT_PRODUCT EOSHIFT EXPONENT "
    "FINDLOC FRACTION IALL IANY INDEX IPARITY LEN_TRIM MATMUL MAXLOC MAXVAL MINLOC MINVAL "
    "MOD MODULO NEAREST NORM2 PACK PARITY PRODUCT REPEAT RESHAPE RRSPACING SCALE SCAN "
    "SET_EXPONENT SPACING SPREAD SUM TRANSFER TRANSPOSE TRIM UNPACK VERIFY".split()
)

_DECLARE = re.compile(r"^declare [^@]*@(?P<name>_Fortran\w+)\(", re.M)
_CALL = re.compile(
    r"(?:(?P<result>%[\w.]+) = )?(?:tail |musttail |notail )?"
    r"call [^@]*@(?P<name>_Fortran\w+)\((?P<args>.*)\)"
)
# flang passes (sourceFile, sourceLine) as the last arguments of most runtime calls.
_SOURCE_LINE = re.compile(r"ptr (?:nonnull )?@_QQclX\w+, i32 (?P<line>\d+)\)?$")
_COOKIE = re.compile(r"^ptr (?:nonnull )?(?P<cookie>%[\w.]+)")
_UNDEFINED = re.compile(r"^(?:(?P<object>\S+\.o): )?undefined symbol: (?P<symbol>_Fortran\w+)")


def feature_of(symbol: str) -> str:
    """The Fortran feature a libFortranRuntime entry point implements, in words."""
    for prefix, feature in _FEATURES:
        if symbol.startswith(prefix):
            return feature
    match = _INTRINSIC.match(symbol)
    if match:
        name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", match["name"]).upper()
        if name in _INTRINSICS:
            return f"the {name} intrinsic on arrays or characters"
    return f"the Fortran runtime routine {symbol}"


def unsupported_message(symbol: str) -> str:
    return (
        f"{feature_of(symbol)} is not supported by pf's Fortran wasm runtime "
        f"(flang calls {symbol} from libFortranRuntime, which does not exist for wasm32)"
    )


_HINT = (
    "pf's Fortran wasm runtime covers list-directed PRINT */WRITE(*,*) of scalars, STOP and "
    "ERROR STOP; compile to target 'llvm' for full Fortran"
)


def _flat(name: str) -> str:
    """One scratch file name per source, also for sources in subdirectories.

    A name too long to take suffixes (``.host.ll``) within one file name is cut, and a
    digest of the whole name keeps two such names apart.
    """
    flat = name.replace("/", "__")
    if bounded(flat) == flat:
        return flat
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]
    return f"{bounded(flat, MAX_STEM_BYTES - 17)}-{digest}"


def _source_of_object(path: str) -> str:
    stem = path.rsplit("/", 1)[-1].removesuffix(".o")
    return stem.replace("__", "/")


def _ordered(sources: Sequence[SourceFile]) -> list[SourceFile]:
    """Sources in an order where each file comes after the files defining the modules it USEs."""
    defines = {s.name: {m.lower() for m in _MODULE_DEF.findall(s.content)} for s in sources}
    uses = {s.name: {m.lower() for m in _MODULE_USE.findall(s.content)} for s in sources}
    done: list[SourceFile] = []
    pending = list(sources)
    while pending:
        have = {m for s in done for m in defines[s.name]}
        wanted = {m for s in pending for m in defines[s.name]}
        ready = [s for s in pending if not (uses[s.name] - defines[s.name] - have) & wanted]
        if not ready:  # a cycle: let flang report the missing module
            ready = pending[:1]
        done.append(ready[0])
        pending.remove(ready[0])
    return done


# ---- IR rewriting (runs in the scratch dir) ----------------------------------------------


def _llvm_string(data: bytes) -> str:
    return "".join(
        chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else f"\\{b:02X}" for b in data
    )


_BYTES = re.compile(
    r'^@(?P<name>[\w.$]+) = (?P<head>[^\[\n]*)\[(?P<size>\d+) x i8\] c"(?P<body>[^"]*)"', re.M
)


def _llvm_bytes(body: str) -> bytes:
    return re.sub(rb"\\([0-9A-Fa-f]{2})", lambda m: bytes([int(m[1], 16)]), body.encode("latin-1"))


def mask_scratch(text: str, scratch: Path) -> str:
    """Remove the scratch directory from IR, including from flang's path string constants.

    flang names a string constant ``_QQclX<hex of its bytes>`` (or a hash when long), so a
    changed constant gets a new length and the hex name of its new bytes.
    """
    prefixes = sorted({str(scratch), str(scratch.resolve())}, key=len, reverse=True)

    def masked(data: bytes) -> bytes:
        for prefix in prefixes:
            data = data.replace(prefix.encode() + b"/", b"").replace(prefix.encode(), b".")
        return data

    renames: dict[str, str] = {}

    def rewrite(match: re.Match[str]) -> str:
        data = _llvm_bytes(match["body"])
        new = masked(data)
        if new == data:
            return match[0]
        name = match["name"]
        if name.startswith("_QQclX"):
            # Short constants are named by their hex, long ones by a hash of their
            # bytes; either way the name came from the scratch path, so it is renamed
            # after the masked bytes, or two builds would differ in it.
            renamed = f"_QQclX{new.hex().upper()}"
            if f"@{renamed} " not in text:
                renames[name] = renamed
        return f'@{name} = {match["head"]}[{len(new)} x i8] c"{_llvm_string(new)}"'

    text = _BYTES.sub(rewrite, text)
    for old, new_name in renames.items():
        text = re.sub(rf"{old}(?![0-9A-Fa-f])", new_name, text)
    for prefix in prefixes:
        text = text.replace(prefix + "/", "").replace(prefix, ".")
    return text


def retarget(text: str) -> str:
    """Host (x86_64) flang IR -> wasm32 IR, flang's main renamed for the runtime."""
    text = re.sub(r"(?m)^target triple = .*$", f'target triple = "{WASM32_TRIPLE}"', text)
    text = re.sub(
        r"(?m)^target datalayout = .*$", f'target datalayout = "{WASM32_DATALAYOUT}"', text
    )
    # Keep the attributes (an emptied group is a parse error) but drop x86 specifics,
    # which clang-19 would warn about for every function.
    text = re.sub(r'"target-cpu"="[^"]*"', '"target-cpu"="generic"', text)
    text = re.sub(r'"tune-cpu"="[^"]*"', '"tune-cpu"="generic"', text)
    text = re.sub(r'"target-features"="[^"]*"', '"target-features"=""', text)
    return re.sub(r"@main\(", f"@{FORTRAN_MAIN}(", text)


def unsupported_calls(text: str, source: str) -> list[Diagnostic]:
    """One diagnostic per (feature, line) for runtime routines pf's runtime lacks."""
    missing = set(_DECLARE.findall(text)) - runtime_symbols()
    if not missing:
        return []
    cookie_lines: dict[str, int] = {}
    found: dict[tuple[str, int], Diagnostic] = {}
    located: set[str] = set()
    for raw in text.splitlines():
        call = _CALL.search(raw)
        if not call:
            continue
        where = _SOURCE_LINE.search(call["args"])
        line = int(where["line"]) if where else 0
        if call["result"] and where:
            cookie_lines[call["result"]] = line
        cookie = _COOKIE.match(call["args"])
        if not where and cookie:
            line = cookie_lines.get(cookie["cookie"], 0)
        if call["name"] in missing:
            located.add(call["name"])
            message = unsupported_message(call["name"])
            found.setdefault((message, line), Diagnostic(source, line, 0, "error", message))
    for name in missing - located:
        message = unsupported_message(name)
        found.setdefault((message, 0), Diagnostic(source, 0, 0, "error", message))
    return sorted(found.values(), key=lambda d: (d.line, d.message))


# A transform's function is a module-level one with its arguments bound (a partial, not
# a closure): a plan crosses to pf serve's build process pickled.
def _mask_files(paths: Sequence[str]) -> Callable[[Path], None]:
    return functools.partial(_mask, tuple(paths))


def _mask(paths: tuple[str, ...], scratch: Path) -> None:
    for path in paths:
        file = scratch / path
        file.write_text(mask_scratch(file.read_text(), scratch))


def _retarget_files(units: Sequence[tuple[str, str, str]]) -> Callable[[Path], None]:
    """(source, host IR, wasm IR) per unit; refuses unsupported runtime calls, writes mode.rsp."""
    return functools.partial(_retarget, tuple(units))


def _retarget(units: tuple[tuple[str, str, str], ...], scratch: Path) -> None:
    problems: list[Diagnostic] = []
    program = False
    for source, host, wasm in units:
        text = retarget(mask_scratch((scratch / host).read_text(), scratch))
        problems += unsupported_calls(text, source)
        program = program or f"@{FORTRAN_MAIN}(" in text
        (scratch / wasm).write_text(text)
    if problems:
        features = sorted({d.message.split(" is not supported")[0] for d in problems})
        raise CompileFailed(
            f"{'; '.join(features)}: not supported by pf's Fortran wasm runtime",
            diagnostics=problems,
            log="\n".join(str(d) for d in problems),
            hint=_HINT,
        )
    response.write_gnu(scratch / MODE_RSP, () if program else LIBRARY_FLAGS)


def _write_exports(
    objects: Sequence[str], narrowed: tuple[str, ...] | None
) -> Callable[[Path], None]:
    return functools.partial(_exports, tuple(objects), narrowed)


def _exports(objects: tuple[str, ...], narrowed: tuple[str, ...] | None, scratch: Path) -> None:
    wasmobj.write_export_file(scratch, objects, narrowed, dest=EXPORTS_RSP, public=_public)


def _public(symbol: str) -> bool:
    # flang's own symbols (_QQmain, module procedures _QM...P...) and pf's renamed main
    # are not an API.
    return not symbol.startswith("_Q") and symbol != FORTRAN_MAIN


def runtime_prebuilt() -> Prebuilt:
    """pf's runtime as a wasm32 object: built once per clang-19 and runtime source, then
    taken from the action cache, as a packaged libFortranRuntime would be installed once."""
    compile_runtime = Run(
        "compile",
        (
            tools.CLANG19.name,
            TRIPLE,
            "-O2",
            "-c",
            "-o",
            RUNTIME_OBJECT,
            END_OF_OPTIONS,
            RUNTIME_SOURCE,
        ),
    )
    plan = Plan(
        steps=(compile_runtime,),
        outputs=(Output(RUNTIME_OBJECT, "object"),),
        tools=(tools.CLANG19,),
        extra_inputs=(SourceFile(RUNTIME_SOURCE, runtime_source()),),
    )
    return Prebuilt("pf Fortran runtime", plan)


class FortranDriver:
    """flang-19 to LLVM IR; to wasm (and asm.js) through retargeted IR and pf's runtime."""

    id = "flang"
    language = "fortran"
    targets = ("wasm", "llvm", "asm")

    def tools(self, target: str) -> tuple[ToolSpec, ...]:
        if target == "llvm":
            return (tools.FLANG,)
        if target == "asm":
            return (tools.FLANG, tools.CLANG19, tools.WASM2JS)
        return (tools.FLANG, tools.CLANG19)

    def plan(self, request: CompileRequest) -> Plan:
        options = request.options
        if options.passes is not None and request.target != "llvm":
            raise InvalidOption(
                "passes",
                f"LLVM passes apply to target 'llvm' only, not {request.target!r}; "
                "use opt_level to optimise wasm",
            )
        if options.parallel and request.target != "llvm":
            raise InvalidOption(
                "parallel",
                "OpenMP needs a threads runtime (libomp) that does not exist for wasm32; "
                "use target 'llvm' for OpenMP IR (flang -fopenmp)",
            )
        named = [s for s in request.sources if language_of(s.name) == "fortran"]
        # With no Fortran suffix anywhere, the language was given for other names.
        sources = _ordered(named or request.sources)
        if not sources:
            raise RequestError("no Fortran source (.f, .f90, ...) in the request")
        if request.target == "llvm":
            return self._llvm_plan(request, sources)
        return self._wasm_plan(request, sources)

    def _flang(self, request: CompileRequest, source: SourceFile, out: str) -> Run:
        options = request.options
        argv = [tools.FLANG.name, "-S", "-emit-llvm", _FLANG_OPT[options.opt_level]]
        if options.debug:
            argv.append("-g")
        if options.parallel:
            argv.append("-fopenmp")
        if language_of(source.name) != "fortran":
            # flang reads other names as linker input; free form is the modern default.
            argv += ["-x", "f95"]
        # .mod files go to obj/, where later files of the same request find them.
        # flang-new takes no "--"; operand() keeps the source name from reading as a flag.
        argv += ["-module-dir", "obj", "-o", out, operand(source.name)]
        return Run("compile", tuple(argv))

    def _llvm_plan(self, request: CompileRequest, sources: Sequence[SourceFile]) -> Plan:
        options = request.options
        final = f"out/{request.stem}.ll"
        passes = options.passes
        if passes is None and options.opt_level in ("s", "z"):
            passes = f"default<O{options.opt_level}>"
        direct = len(sources) == 1 and passes is None
        irs = [final] if direct else [f"obj/{_flat(s.name)}.ll" for s in sources]
        steps: list[Step] = [
            self._flang(request, s, ir) for s, ir in zip(sources, irs, strict=True)
        ]
        steps.append(Transform("compile", "fortran-mask-scratch-v2", _mask_files(irs)))
        used: list[ToolSpec] = [tools.FLANG]
        ir = irs[0]
        if len(irs) > 1:
            ir = final if passes is None else "obj/linked.ll"
            link = (tools.LLVM_LINK19.name, "-S", "-o", ir, END_OF_OPTIONS, *irs)
            steps.append(Run("link", link))
            used.append(tools.LLVM_LINK19)
        if passes is not None:
            steps.append(
                Run(
                    "optimise",
                    (tools.OPT19.name, f"-passes={passes}", "-S", "-o", final, END_OF_OPTIONS, ir),
                )
            )
            used.append(tools.OPT19)
        return Plan(steps=tuple(steps), outputs=(Output(final, "llvm"),), tools=tuple(used))

    def _wasm_plan(self, request: CompileRequest, sources: Sequence[SourceFile]) -> Plan:
        options = request.options
        clang_opt = f"-O{options.opt_level}"
        debug = ("-g",) if options.debug else ()
        units = [
            (s.name, f"obj/{_flat(s.name)}.host.ll", f"obj/{_flat(s.name)}.wasm.ll")
            for s in sources
        ]
        objects = [f"obj/{_flat(s.name)}.o" for s in sources]
        steps: list[Step] = [
            self._flang(request, s, host) for s, (_, host, _) in zip(sources, units, strict=True)
        ]
        steps.append(Transform("compile", "fortran-retarget-wasm32-v3", _retarget_files(units)))
        for (_, _, wasm_ir), obj in zip(units, objects, strict=True):
            steps.append(
                Run(
                    "compile",
                    (
                        tools.CLANG19.name,
                        TRIPLE,
                        clang_opt,
                        *debug,
                        "-c",
                        "-o",
                        obj,
                        END_OF_OPTIONS,
                        wasm_ir,
                    ),
                )
            )
        # The export choice is not in any argv, so it goes into the Transform's name (cache key).
        which = "all" if options.exports is None else ",".join(options.exports)
        steps.append(
            Transform(
                "link", f"fortran-exports-v2:{which}", _write_exports(objects, options.exports)
            )
        )
        wasm = (
            f"out/{request.stem}.wasm" if request.target == "wasm" else f"obj/{request.stem}.wasm"
        )
        strip = () if options.debug else ("-Wl,--strip-all",)
        steps.append(
            Run(
                "link",
                (
                    tools.CLANG19.name,
                    TRIPLE,
                    clang_opt,
                    *debug,
                    *strip,
                    f"@{MODE_RSP}",
                    f"@{EXPORTS_RSP}",
                    "-o",
                    wasm,
                    END_OF_OPTIONS,
                    *objects,
                    RUNTIME_OBJECT,
                ),
            )
        )
        used = [tools.FLANG, tools.CLANG19]
        output = Output(wasm, "wasm")
        if request.target == "asm":
            convert, output = tools.wasm2js_step(wasm, request.stem)
            steps.append(convert)
            used.append(tools.WASM2JS)
        return Plan(
            steps=tuple(steps),
            outputs=(output,),
            tools=tuple(used),
            prebuilt=(runtime_prebuilt(),),
            note="Fortran via flang-19 IR retargeted to wasm32 with pf's minimal runtime "
            "(list-directed PRINT of scalars, STOP)",
        )

    def diagnostics(self, stderr: str) -> list[Diagnostic]:
        found: list[Diagnostic] = []
        for diagnostic in parse_gcc_style(stderr):
            undefined = _UNDEFINED.match(diagnostic.message)
            if undefined:
                obj = undefined["object"]
                diagnostic = Diagnostic(
                    file=_source_of_object(obj) if obj else diagnostic.file,
                    line=0,
                    col=0,
                    severity="error",
                    message=unsupported_message(undefined["symbol"]),
                )
            if diagnostic not in found:
                found.append(diagnostic)
        return found
