"""The Rust driver: Debian rustc 1.63 with its wasm32 std to wasm, LLVM 14 IR and asm.js.

Owns the argv for each Rust target. rustc links a cdylib itself and then always adds
``--export=__heap_base --export=__data_end`` and one ``--export`` per ``#[no_mangle]``
function, with no way to take any away. So for wasm the driver has rustc build a
staticlib (the crate's object plus std, alloc and the allocator shim) and links it with
rust-lld, lld 14, the linker rustc itself would call, passing rustc's own wasm flags but
its own exports: ``--export-dynamic`` (every ``#[no_mangle] pub extern "C"`` function)
or one ``--export`` per requested name, which lld refuses when the name is not defined.
Every module's export names are checked (``wasmobj.check_symbols``) after the link.
Imports base, tools, response, wasmobj, diagnostics and errors.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path, PurePosixPath

from pf.errors import Diagnostic, InvalidOption, RequestError, Unbuildable
from pf.toolchains import response, tools, wasmobj
from pf.toolchains.base import (
    END_OF_OPTIONS,
    CompileRequest,
    Options,
    Output,
    Plan,
    Run,
    Step,
    ToolSpec,
    Transform,
    operand,
)
from pf.toolchains.diagnostics import parse_gcc_style, parse_rustc
from pf.toolchains.names import bounded

TRIPLE = "wasm32-unknown-unknown"
EDITION = "2021"

# What rustc 1.63 passes rust-lld for a wasm32 cdylib (``--print link-args``), minus its
# export list. ``--import-undefined`` replaces its ``--allow-undefined``: functions
# declared in ``extern "C"`` blocks still become imports, but an ``--export`` of a name
# the crate does not define is an error instead of being dropped silently.
_LINK_FLAGS = (
    "-flavor",
    "wasm",
    "-z",
    "stack-size=1048576",
    "--stack-first",
    "--import-undefined",
    "--fatal-warnings",
    "--no-demangle",
    "--no-entry",
    "--gc-sections",
)
# rustc's own mapping of opt-level to lld's -O (string merging, not codegen).
_LLD_OPT = {"0": "-O0", "1": "-O1"}

REMAP_RSP = "obj/remap.rsp"
_CRATE_BYTES = 64

_MISSING_EXPORT = re.compile(r"^symbol exported via --export not found: (?P<name>\S+)$")


def _crate_name(root: str) -> str:
    # rustc derives the crate name from the file stem and rejects '-' or a leading digit;
    # lower case spares an upper-case file name (MAIN.RS) the non-snake-case warning.
    # rustc names intermediates <crate>.<crate>.<hash>-cgu.0.rcgu.o: bounded, they fit.
    stem = bounded(PurePosixPath(root).stem, _CRATE_BYTES)
    name = re.sub(r"\W", "_", stem.lower(), flags=re.ASCII)
    return name if name and not name[0].isdigit() else f"_{name}"


def _crate_root(request: CompileRequest) -> str:
    """The first ``.rs`` file (any case); with none, the first file: the language was given."""
    for source in request.sources:
        if PurePosixPath(source.name).suffix.lower() == ".rs":
            return source.name
    if request.sources:
        return request.sources[0].name
    raise RequestError(
        "A Rust request needs a source file: the first .rs file is the crate root, "
        "the others are modules it declares with `mod`"
    )


def _remap_scratch(scratch: Path) -> None:
    """Write ``--remap-path-prefix`` for the scratch dir into REMAP_RSP.

    rustc records its working directory (a new scratch dir per build) in debug info;
    only the remap flag, which needs the absolute path, takes it out, and argv holds
    no absolute paths, so the flag reaches rustc through an @file written here.
    """
    prefixes = dict.fromkeys((str(scratch), str(scratch.resolve())))
    response.write_lines(scratch / REMAP_RSP, [f"--remap-path-prefix={p}=." for p in prefixes])


_REMAP = Transform("compile", "rust-remap-scratch-v2", _remap_scratch)


def _check_exports(wasm: str) -> Transform:
    """Refuse a module exporting a name that is not an identifier: ``#[export_name]``
    takes any string, which the asm.js conversion and every caller would have to carry."""

    # A partial, not a closure: a plan crosses to pf serve's build process pickled.
    return Transform("link", "rust-check-export-names-v1", functools.partial(_check, wasm))


def _check(wasm: str, scratch: Path) -> None:
    wasmobj.check_symbols(wasmobj.module_exports((scratch / wasm).read_bytes()))


# wasm-bindgen code: the crate, its attribute, or an item imported from it.
_WASM_BINDGEN = re.compile(rb"\bwasm_bindgen\b")
# Written for every request that needs it: what pf makes instead of wasm-bindgen's glue.
_BINDGEN_HINT = (
    'write the exports as #[no_mangle] pub extern "C" fn with numeric arguments: pf '
    "builds those to wasm (and asm.js), and a page calls them through "
    "WebAssembly.instantiate, as the demo's loader (demos/polyglot/web/demo.js) does"
)


def _refuse_wasm_bindgen(request: CompileRequest) -> None:
    """wasm-bindgen's JS glue comes from its CLI, which no offline registry here carries
    (not Debian 12, PyPI or npm, whose wasm-pack downloads it); without it the
    crate's exports are not callable, so such sources are refused up front."""
    for source in request.sources:
        if _WASM_BINDGEN.search(source.content):
            raise Unbuildable(
                f"{source.name} uses wasm-bindgen, whose JavaScript glue pf cannot make "
                "here: the wasm-bindgen CLI (and wasm-pack, which downloads it) is not "
                "installable offline on this machine, and Cargo.toml dependencies are "
                "not fetched",
                hint=_BINDGEN_HINT,
            )


def _check_options(request: CompileRequest) -> None:
    options = request.options
    if options.parallel:
        raise InvalidOption(
            "parallel",
            "Rust has no OpenMP, and wasm32-unknown-unknown has no threads in Rust 1.63's "
            "std; drop 'parallel' (use a C source with target 'llvm' for OpenMP IR)",
        )
    if options.passes is not None and request.target != "llvm":
        raise InvalidOption(
            "passes",
            f"LLVM passes apply to target 'llvm' only, not {request.target!r}; "
            "use opt_level to optimise wasm",
        )


def _rustc_flags(root: str, options: Options) -> tuple[str, ...]:
    flags = [
        "--color=never",
        "--edition",
        EDITION,
        "--target",
        TRIPLE,
        "--crate-name",
        _crate_name(root),
        "-C",
        f"opt-level={options.opt_level}",
        # Panics trap ('unreachable') instead of needing an unwinder wasm lacks.
        "-C",
        "panic=abort",
        # One codegen unit: --emit writes one object / one IR module to the named path.
        "-C",
        "codegen-units=1",
    ]
    if options.debug:
        flags += ["-g", f"@{REMAP_RSP}"]
    return tuple(flags)


def _debug_steps(options: Options) -> tuple[Step, ...]:
    return (_REMAP,) if options.debug else ()


class RustDriver:
    """Rust via Debian rustc 1.63 for wasm32-unknown-unknown, linked by rust-lld."""

    id = "rust"
    language = "rust"
    targets: tuple[str, ...] = ("wasm", "llvm", "asm")

    def tools(self, target: str) -> tuple[ToolSpec, ...]:
        if target == "llvm":
            return (tools.RUSTC, tools.OPT)
        if target == "asm":
            return (tools.RUSTC, tools.RUST_LLD, tools.WASM2JS)
        return (tools.RUSTC, tools.RUST_LLD)

    def plan(self, request: CompileRequest) -> Plan:
        root = _crate_root(request)
        _refuse_wasm_bindgen(request)
        _check_options(request)
        if request.target == "llvm":
            return self._plan_llvm(request, root)
        return self._plan_wasm(request, root)

    def _plan_wasm(self, request: CompileRequest, root: str) -> Plan:
        options = request.options
        crate = _crate_name(root)
        obj, archive, depfile = f"obj/{crate}.o", f"obj/lib{crate}.a", f"obj/{crate}.d"
        compile_argv = (
            tools.RUSTC.name,
            *_rustc_flags(root, options),
            "--crate-type=staticlib",
            "--out-dir",
            "obj",
            f"--emit=obj={obj},link={archive},dep-info={depfile}",
            END_OF_OPTIONS,
            operand(root),
        )
        if options.exports is None:
            exports: tuple[str, ...] = ("--export-dynamic",)
        else:
            exports = tuple(f"--export={name}" for name in options.exports)
        strip = () if options.debug else ("--strip-all",)
        asm = request.target == "asm"
        wasm = Output(f"{'obj' if asm else 'out'}/{request.stem}.wasm", "wasm")
        # The crate's object is named first so --export-dynamic sees its symbols; the
        # archive then supplies std and the allocator shim, member by member. rust-lld
        # takes no "--"; its operands are pf's own obj/ paths.
        link_argv = (
            tools.RUST_LLD.name,
            *_LINK_FLAGS,
            _LLD_OPT.get(options.opt_level, "-O2"),
            *strip,
            *exports,
            obj,
            archive,
            "-o",
            wasm.path,
        )
        steps = [
            *_debug_steps(options),
            Run("compile", compile_argv),
            Run("link", link_argv),
            _check_exports(wasm.path),
        ]
        output = wasm
        if asm:
            convert, output = tools.wasm2js_step(wasm.path, request.stem)
            steps.append(convert)
        return Plan(
            steps=tuple(steps),
            outputs=(output,),
            tools=self.tools(request.target),
            depfiles=(depfile,),
        )

    def _plan_llvm(self, request: CompileRequest, root: str) -> Plan:
        options = request.options
        final = f"out/{request.stem}.ll"
        ir = final if options.passes is None else f"obj/{request.stem}.ll"
        depfile = f"obj/{_crate_name(root)}.d"
        steps: list[Step] = [
            *_debug_steps(options),
            Run(
                "compile",
                (
                    tools.RUSTC.name,
                    *_rustc_flags(root, options),
                    "--crate-type=cdylib",
                    "--out-dir",
                    "obj",
                    f"--emit=llvm-ir={ir},dep-info={depfile}",
                    END_OF_OPTIONS,
                    operand(root),
                ),
            ),
        ]
        used = [tools.RUSTC]
        if options.passes is not None:
            steps.append(
                Run(
                    "optimise",
                    (
                        tools.OPT.name,
                        "-S",
                        f"-passes={options.passes}",
                        "-o",
                        final,
                        END_OF_OPTIONS,
                        ir,
                    ),
                )
            )
            used.append(tools.OPT)
        note = f"LLVM 14 IR for {TRIPLE}"
        if options.exports is not None:
            note += "; 'exports' narrows wasm exports and does not apply to IR"
        return Plan(
            steps=tuple(steps),
            outputs=(Output(final, "llvm"),),
            tools=tuple(used),
            note=note,
            depfiles=(depfile,),
        )

    def diagnostics(self, stderr: str) -> list[Diagnostic]:
        found = parse_rustc(stderr)
        for diagnostic in parse_gcc_style(stderr):
            if diagnostic.file != tools.RUST_LLD.name:
                continue
            missing = _MISSING_EXPORT.match(diagnostic.message)
            if missing:
                name = missing["name"]
                diagnostic = Diagnostic(
                    file=diagnostic.file,
                    line=0,
                    col=0,
                    severity="error",
                    message=(
                        f"cannot export {name!r}: the crate defines no "
                        f'`#[no_mangle] pub extern "C" fn {name}` (exports option)'
                    ),
                )
            found.append(diagnostic)
        return found
