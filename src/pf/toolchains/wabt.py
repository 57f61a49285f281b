"""The WAT assembler: wabt's C API compiled to WebAssembly (npm's wabt), run in wasmtime.

One long-lived process assembles many modules without a process start per module: the
wasm is compiled once (``Assembler``), and every ``assemble`` runs in a fresh wasmtime
Store and Instance, so nothing of one compile's memory, globals or tables reaches the
next. That keeps each output a pure function of its input, which the shared action cache
relies on. The sequence is wat2wasm's: parse, validate, write the binary (LEBs
canonicalised, not relocatable, the name section only with ``debug_names``).

The resident process (``python -I -B -m pf.toolchains.wabt``: isolated, and writing
nothing, set-up having compiled pf's bytecode already) serves requests framed on stdin,
one reply each on stdout (pf.toolchains.assembly). pf starts it through pf-wabt, the
launcher set-up writes beside the wasm, confined (pf.sandbox.resident).
Imports config-free: errors, the protocol, the standard library and wasmtime only.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import struct
import sys
import threading
from pathlib import Path
from typing import Any, BinaryIO

import wasmtime

# wasmtime-py's ctypes layer (the version is pinned in pyproject.toml): looking up one
# export by name and calling it unchecked cost a third of what the public
# Instance.exports (it wraps all 74) and Func.__call__ (types checked on every call) do.
from wasmtime import _ffi as ffi
from wasmtime._extern import wrap_extern
from wasmtime._func import enter_wasm

from pf.errors import PfError, ToolchainMissing
from pf.toolchains.assembly import (
    DEFAULT_MAX_FRAME,
    Assembled,
    decode_request,
    encode_reply,
    frame,
    read_frame,
)

SHARE_DIR = Path(sys.prefix) / "share" / "pf" / "wabt"
INSTALL = "scripts/setup.sh"

_PAGE = 65536
# The C API functions assemble calls, by their names in exports.json.
_FUNCTIONS = (
    "_malloc",
    "_wabt_new_errors",
    "_wabt_new_wast_buffer_lexer",
    "_wabt_new_features",
    "_wabt_parse_wat",
    "_wabt_parse_wat_result_get_result",
    "_wabt_parse_wat_result_release_module",
    "_wabt_validate_module",
    "_wabt_format_text_errors",
    "_wabt_write_binary_module",
    "_wabt_write_module_result_get_result",
    "_wabt_write_module_result_release_output_buffer",
    "_wabt_output_buffer_get_data",
    "_wabt_output_buffer_get_size",
)
_IMPORTS = (
    "fd_write",
    "emscripten_resize_heap",
    "environ_get",
    "environ_sizes_get",
    "fd_close",
    "abort",
)


class _Abort(Exception):
    """wabt called abort() (out of memory, or a failed check): ends the compile as a trap."""


class _Compile(threading.local):
    # Whether this thread's current compile was refused memory: an abort after that is
    # the memory limit, not a bug in wabt.
    refused = False


class Assembler:
    """wabt's wasm compiled once; each ``assemble`` runs in a fresh Store and Instance.

    ``compiled_path`` is the module as set-up compiled it (``--precompile``): loading it
    takes milliseconds where compiling takes a third of a second, at every start of a
    resident. wasmtime refuses one made by another version or configuration, and the
    wasm is compiled then. It is trusted like pf's own code beside it.
    """

    def __init__(
        self,
        wasm_path: Path | str,
        exports_path: Path | str,
        compiled_path: Path | None = None,
    ) -> None:
        try:
            names = json.loads(Path(exports_path).read_text(encoding="utf-8"))
            wasm = Path(wasm_path).read_bytes()
        except (OSError, ValueError) as err:
            raise ToolchainMissing(
                "the WAT assembler (wabt as WebAssembly)", str(err), INSTALL
            ) from err
        try:
            self.version: str = names["version"]
            self._memory: str = names["memory"]
            ctors: str = names["ctors"]
            functions = {name: names["functions"][name] for name in _FUNCTIONS}
            imports = {role: names["imports"][role] for role in _IMPORTS}
        except (KeyError, TypeError) as err:
            raise ToolchainMissing(
                "the WAT assembler (wabt as WebAssembly)",
                f"{exports_path} lacks {err}",
                INSTALL,
            ) from err
        # Without these, each live wasm memory reserves 4 GiB of address space, which the
        # resident's address-space limit (pf's memory cap) would not hold twice: reserved
        # as used, a memory past the cap fails to grow (the compile's out-of-memory trap).
        config = wasmtime.Config()
        config.memory_reservation = 0
        config.memory_guard_size = 0
        self._engine = wasmtime.Engine(config)
        module = self._load(wasm, compiled_path)
        self._pages = _initial_pages(module, self._memory)
        self._arity = _arities(module, [ctors, *functions.values()])
        self._compile = _Compile()
        linker = wasmtime.Linker(self._engine)
        types = {
            (i.module, i.name): i.type
            for i in module.imports
            if isinstance(i.type, wasmtime.FuncType)
        }
        for role, fn in self._host_functions().items():
            where = imports[role]
            ty = types[(where["module"], where["name"])]
            linker.define_func(where["module"], where["name"], ty, fn, access_caller=True)
        self._module = module
        self._pre = linker.instantiate_pre(module)
        self._ctors = ctors
        self._functions = functions

    def _load(self, wasm: bytes, compiled_path: Path | None) -> wasmtime.Module:
        if compiled_path is not None and compiled_path.is_file():
            try:
                return wasmtime.Module.deserialize_file(self._engine, str(compiled_path))
            except wasmtime.WasmtimeError:
                pass  # made by another wasmtime or configuration: compile, as without one
        return wasmtime.Module(self._engine, wasm)

    def save_compiled(self, out: Path) -> None:
        """Write the compiled module where ``compiled_path`` will find it."""
        partial = out.with_name(f".{out.name}.partial")
        partial.write_bytes(self._module.serialize())
        partial.replace(out)

    def assemble(
        self, source: bytes, name: str, *, debug_names: bool, memory_limit: int
    ) -> Assembled:
        """Assemble one WAT module, as ``wat2wasm [--debug-names] NAME`` would."""
        file_name = name.encode()
        if b"\0" in file_name:
            raise ValueError("a source name cannot hold a NUL byte")
        if memory_limit < self._pages * _PAGE:
            return Assembled(None, "", _trap_below_initial(memory_limit, self._pages))
        self._compile.refused = False
        store = wasmtime.Store(self._engine)
        store.set_limits(memory_size=memory_limit)
        try:
            return self._run(store, source, file_name, debug_names)
        except _Abort:
            if self._compile.refused:
                return Assembled(None, "", _trap_memory(memory_limit))
            return Assembled(None, "", "the assembler aborted (wabt called abort)")
        except wasmtime.Trap as trap:
            if trap.trap_code == wasmtime.TrapCode.STACK_OVERFLOW:
                return Assembled(
                    None, "", "the module nests too deeply for the assembler (stack overflow)"
                )
            if trap.trap_code == wasmtime.TrapCode.MEMORY_OUT_OF_BOUNDS:
                # wabt's own stack lives in its memory and, unchecked, overflows out of it.
                return Assembled(
                    None,
                    "",
                    "the assembler failed on an out-of-bounds memory access "
                    "(its stack overflows when a module nests too deeply)",
                )
            first = trap.message.splitlines()[0] if trap.message else "trap"
            return Assembled(None, "", f"the assembler trapped: {first}")
        finally:
            self._compile.refused = False

    def _run(
        self, store: wasmtime.Store, source: bytes, file_name: bytes, debug_names: bool
    ) -> Assembled:
        instance = self._pre.instantiate(store)
        wabt = _Exports(store, instance, self._functions, self._arity)
        memory = wabt.memory(self._memory)
        wabt.call_name(self._ctors)
        call = wabt.call
        # The file name (a C string) and the source in one allocation.
        names_at = call("_malloc", len(file_name) + 1 + len(source))
        memory.write(store, file_name + b"\0" + source, names_at)
        source_at = names_at + len(file_name) + 1
        errors = call("_wabt_new_errors")
        lexer = call("_wabt_new_wast_buffer_lexer", names_at, source_at, len(source), errors)
        features = call("_wabt_new_features")
        parsed = call("_wabt_parse_wat", lexer, features, errors)

        def failed() -> Assembled:
            text = _output(store, memory, call, call("_wabt_format_text_errors", errors, lexer))
            return Assembled(None, text.decode("utf-8", "replace"))

        if call("_wabt_parse_wat_result_get_result", parsed) != 0:
            return failed()
        module = call("_wabt_parse_wat_result_release_module", parsed)
        if call("_wabt_validate_module", module, features, errors) != 0:
            return failed()
        # (module, log, canonicalize_lebs, relocatable, write_debug_names): wat2wasm's.
        written = call("_wabt_write_binary_module", module, 0, 1, 0, int(debug_names))
        if call("_wabt_write_module_result_get_result", written) != 0:
            return Assembled(None, "", "the assembler could not write the binary module")
        buffer = call("_wabt_write_module_result_release_output_buffer", written)
        return Assembled(_output(store, memory, call, buffer), "")

    def _host_functions(self) -> dict[str, Any]:
        memory_name = self._memory
        compile_state = self._compile

        def fd_write(caller: Any, fd: int, iov: int, iovcnt: int, written_at: int) -> int:
            # Output to stdout/stderr is dropped; the count written keeps libc from retrying.
            memory = caller[memory_name]
            vectors = memory.read(caller, iov, iov + 8 * iovcnt)
            total = sum(struct.unpack_from("<I", vectors, 8 * i + 4)[0] for i in range(iovcnt))
            memory.write(caller, struct.pack("<I", total & 0xFFFFFFFF), written_at)
            return 0

        def resize_heap(caller: Any, requested: int) -> int:
            memory = caller[memory_name]
            needed = ((requested & 0xFFFFFFFF) + _PAGE - 1) // _PAGE - memory.size(caller)
            if needed <= 0:
                return 1
            try:
                memory.grow(caller, needed)
            except wasmtime.WasmtimeError:
                compile_state.refused = True
                return 0
            return 1

        def environ_sizes_get(caller: Any, count_at: int, size_at: int) -> int:
            memory = caller[memory_name]
            memory.write(caller, bytes(4), count_at)
            memory.write(caller, bytes(4), size_at)
            return 0

        def environ_get(caller: Any, environ: int, buffer: int) -> int:
            return 0

        def fd_close(caller: Any, fd: int) -> int:
            return 0

        def abort(caller: Any) -> None:
            raise _Abort

        return {
            "fd_write": fd_write,
            "emscripten_resize_heap": resize_heap,
            "environ_get": environ_get,
            "environ_sizes_get": environ_sizes_get,
            "fd_close": fd_close,
            "abort": abort,
        }


class _Exports:
    """One instance's exports, looked up by name only when used, called unchecked.

    Unchecked is sound because Assembler checked once that every function called takes
    only i32 and returns at most one i32, and each call's arity is checked here.
    """

    def __init__(
        self,
        store: wasmtime.Store,
        instance: wasmtime.Instance,
        functions: dict[str, str],
        arity: dict[str, int],
    ) -> None:
        self._store = store
        self._context = store._context()
        self._instance = ctypes.byref(instance._instance)
        self._functions = functions
        self._arity = arity

    def _get(self, export: str) -> Any:
        raw = export.encode()
        item = ffi.wasmtime_extern_t()
        found = ffi.wasmtime_instance_export_get(
            self._context, self._instance, raw, len(raw), ctypes.byref(item)
        )
        if not found:
            raise ToolchainMissing(
                "the WAT assembler (wabt as WebAssembly)", f"no export {export!r}", INSTALL
            )
        return item

    def memory(self, export: str) -> wasmtime.Memory:
        memory = wrap_extern(self._get(export))
        if not isinstance(memory, wasmtime.Memory):
            raise ToolchainMissing(
                "the WAT assembler (wabt as WebAssembly)", f"{export!r} is no memory", INSTALL
            )
        return memory

    def call(self, function: str, *args: int) -> int:
        return self.call_name(self._functions[function], *args)

    def call_name(self, export: str, *args: int) -> int:
        if self._arity[export] != len(args):
            raise TypeError(f"{export} takes {self._arity[export]} arguments, not {len(args)}")
        item = self._get(export)
        values = (ffi.wasmtime_val_raw_t * max(len(args), 1))()
        for i, arg in enumerate(args):
            values[i].i32 = arg - (1 << 32) if arg >= 1 << 31 else arg
        with enter_wasm(self._store) as trap:
            error = ffi.wasmtime_func_call_unchecked(
                self._context, ctypes.byref(item.of.func), values, len(values), trap
            )
            if error:
                raise wasmtime.WasmtimeError._from_ptr(error)
        return int(values[0].i32) & 0xFFFFFFFF


def _arities(module: wasmtime.Module, names: list[str]) -> dict[str, int]:
    i32 = wasmtime.ValType.i32()
    types = {e.name: e.type for e in module.exports}
    arity = {}
    for name in names:
        ty = types.get(name)
        if (
            not isinstance(ty, wasmtime.FuncType)
            or any(p != i32 for p in ty.params)
            or len(ty.results) > 1
            or any(r != i32 for r in ty.results)
        ):
            raise ToolchainMissing(
                "the WAT assembler (wabt as WebAssembly)",
                f"its export {name!r} is not a function of i32s",
                INSTALL,
            )
        arity[name] = len(ty.params)
    return arity


def _output(store: wasmtime.Store, memory: Any, call: Any, buffer: int) -> bytes:
    data = call("_wabt_output_buffer_get_data", buffer)
    size = call("_wabt_output_buffer_get_size", buffer)
    return bytes(memory.read(store, data, data + size))


def _initial_pages(module: wasmtime.Module, name: str) -> int:
    for export in module.exports:
        if export.name == name and isinstance(export.type, wasmtime.MemoryType):
            return int(export.type.limits.min)
    raise ToolchainMissing(
        "the WAT assembler (wabt as WebAssembly)", f"its wasm exports no memory {name!r}", INSTALL
    )


def _trap_memory(limit: int) -> str:
    return f"the assembler ran out of memory: a compile may use at most {limit} bytes"


def _trap_below_initial(limit: int, pages: int) -> str:
    return (
        f"the assembler's memory limit of {limit} bytes is below the "
        f"{pages * _PAGE} bytes wabt starts with"
    )


def serve(assembler: Assembler, stdin: BinaryIO, stdout: BinaryIO, max_frame: int) -> None:
    """One reply per request until end of input; ProtocolError on a frame it cannot decode."""
    while (payload := read_frame(stdin, max_frame)) is not None:
        request = decode_request(payload)
        assembled = assembler.assemble(
            request.source,
            request.name,
            debug_names=request.debug_names,
            memory_limit=request.memory_limit,
        )
        stdout.write(frame(encode_reply(assembled)))
        stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pf.toolchains.wabt",
        description="Assemble WAT modules framed on stdin, one reply frame each on stdout.",
    )
    parser.add_argument("--version", action="store_true", help="print the versions and exit")
    parser.add_argument("--wasm", type=Path, default=SHARE_DIR / "wabt.wasm")
    parser.add_argument("--exports", type=Path, default=SHARE_DIR / "exports.json")
    parser.add_argument("--max-frame", type=int, default=DEFAULT_MAX_FRAME, metavar="BYTES")
    parser.add_argument("--sha256", help="refuse a wasm whose SHA-256 is not this one")
    parser.add_argument(
        "--precompile", action="store_true", help="save the compiled module beside the wasm"
    )
    args = parser.parse_args(argv)
    try:
        digest = hashlib.sha256(args.wasm.read_bytes()).hexdigest()
        if args.sha256 is not None and digest != args.sha256:
            raise ToolchainMissing(
                "wabt-wasm",
                f"{args.wasm} is not the wasm its launcher was made for "
                f"(SHA-256 {digest}, not {args.sha256})",
                INSTALL,
            )
        if args.version:
            names = json.loads(args.exports.read_text(encoding="utf-8"))
            print(f"wabt {names['version']} (WebAssembly, wasmtime {_wasmtime_version()})")
            return 0
        # Named by the wasm's digest: a compiled module never stands for another wasm.
        compiled = args.wasm.with_name(f"{args.wasm.stem}-{digest[:16]}.cwasm")
        assembler = Assembler(args.wasm, args.exports, compiled)
        if args.precompile:
            assembler.save_compiled(compiled)
            return 0
        serve(assembler, sys.stdin.buffer, sys.stdout.buffer, args.max_frame)
    except PfError as err:
        print(f"pf.toolchains.wabt: {err.message}", file=sys.stderr)
        return 1
    except (OSError, ValueError, KeyError, wasmtime.WasmtimeError) as err:
        print(f"pf.toolchains.wabt: {err}", file=sys.stderr)
        return 1
    return 0


def _wasmtime_version() -> str:
    from importlib.metadata import version

    return version("wasmtime")


if __name__ == "__main__":
    sys.exit(main())
