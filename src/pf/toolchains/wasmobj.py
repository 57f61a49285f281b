"""Read wasm object files and modules just enough to decide what a module exports.

Owns two small jobs that need no tool: listing the defined, externally visible
functions of relocatable wasm objects (``clang --target=wasm32* -c``, clang 14 or 19;
the "linking" custom section's symbol table), and narrowing the export section of a
finished module. Object bytes are the request's (its sources shape them), so malformed
ones raise ``WasmFormatError``, a CompileFailed. Imports ``pf.errors``, ``names`` and
``response``.

API used by the C and Fortran drivers::

    exported_functions(paths) -> list[str]      # defined non-local functions, sorted
    defines_main(paths) -> bool                 # a C/WASI entry point is defined
    write_export_file(scratch, objects, narrowed, dest="obj/exports.rsp",
                      library_flags=())         # clang response file for the link
    narrow_exports(module_bytes, names) -> bytes  # keep only the named exports

Format reference: WebAssembly tool-conventions, Linking.md (symbol table, version 2).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pf.errors import CompileFailed
from pf.toolchains.names import is_symbol, shown
from pf.toolchains.response import write_gnu

_MAGIC = b"\x00asm\x01\x00\x00\x00"
_CUSTOM = 0
_EXPORT = 7
_SYMBOL_TABLE = 8

_KIND_FUNCTION = 0
_KIND_DATA = 1
_KIND_SECTION = 3

_BINDING_LOCAL = 0x02
_UNDEFINED = 0x10
_EXPLICIT_NAME = 0x40

# clang renames a C ``main`` to one of these; they are entry points reached through
# ``_start``, never library exports.
MAIN_SYMBOLS: frozenset[str] = frozenset(
    {"main", "__original_main", "__main_void", "__main_argc_argv"}
)


class WasmFormatError(CompileFailed):
    """The bytes are not a wasm object/module this reader understands.

    A compile failure: the objects come from compiling the request's sources, which can
    shape their bytes (custom sections, symbol names), so a malformed one is the
    request's, reported like a compiler's error rather than as a crash.
    """


class _Reader:
    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end
        if not 0 <= pos <= self.end <= len(data):
            raise WasmFormatError("section runs past the end of data")

    def sub(self, size: int) -> _Reader:
        """A reader of the next ``size`` bytes; this reader moves past them."""
        start = self.pos
        self.take(size)
        return _Reader(self.data, start, self.pos)

    def done(self) -> bool:
        return self.pos >= self.end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise WasmFormatError("unexpected end of data")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def uleb(self) -> int:
        result = shift = 0
        while True:
            byte = self.byte()
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise WasmFormatError("LEB128 value too long")

    def take(self, size: int) -> bytes:
        if self.pos + size > self.end:
            raise WasmFormatError("section runs past the end of data")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def name(self) -> str:
        return self.take(self.uleb()).decode("utf-8", errors="replace")


def encode_uleb(value: int) -> bytes:
    """LEB128 encoding of an unsigned integer, as wasm sizes and counts are written."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _sections(data: bytes) -> Iterable[tuple[int, int, int, int]]:
    """(id, header start, payload start, payload end) for each section."""
    if not data.startswith(_MAGIC):
        raise WasmFormatError("not a wasm binary (bad magic or version)")
    reader = _Reader(data, len(_MAGIC))
    while not reader.done():
        start = reader.pos
        section_id = reader.byte()
        size = reader.uleb()
        payload = reader.pos
        reader.take(size)
        yield section_id, start, payload, reader.pos


@dataclass(frozen=True)
class ObjectSymbols:
    """What one object file defines: its visible functions and whether it has a C main."""

    functions: tuple[str, ...]
    has_main: bool


def read_symbols(data: bytes) -> ObjectSymbols:
    """The defined, non-local function symbols of one relocatable wasm object.

    Weak and hidden-visibility functions count (clang marks every wasm symbol hidden by
    default); ``static`` functions (local binding) and undefined imports do not.
    """
    functions: list[str] = []
    found_linking = False
    for section_id, _start, payload, end in _sections(data):
        if section_id != _CUSTOM:
            continue
        reader = _Reader(data, payload, end)
        if reader.name() != "linking":
            continue
        found_linking = True
        version = reader.uleb()
        if version != 2:
            raise WasmFormatError(f"unsupported linking section version {version}")
        while not reader.done():
            kind = reader.byte()
            subsection = reader.sub(reader.uleb())
            if kind == _SYMBOL_TABLE:
                functions.extend(_symbol_table(subsection))
    if not found_linking:
        raise WasmFormatError("no 'linking' section: not a relocatable object (use clang -c)")
    names = tuple(dict.fromkeys(functions))
    return ObjectSymbols(
        functions=tuple(n for n in names if n not in MAIN_SYMBOLS),
        has_main=any(n in MAIN_SYMBOLS for n in names),
    )


def _symbol_table(reader: _Reader) -> list[str]:
    names: list[str] = []
    for _ in range(reader.uleb()):
        kind = reader.byte()
        flags = reader.uleb()
        undefined = bool(flags & _UNDEFINED)
        if kind == _KIND_DATA:
            reader.name()
            if not undefined:
                for _field in ("segment", "offset", "size"):
                    reader.uleb()
            continue
        if kind == _KIND_SECTION:
            reader.uleb()
            continue
        # function, global, tag, table: an index, then a name when defined or explicit.
        reader.uleb()
        if undefined and not flags & _EXPLICIT_NAME:
            continue
        name = reader.name()
        if kind == _KIND_FUNCTION and not undefined and not flags & _BINDING_LOCAL:
            names.append(name)
    return names


def _read_all(paths: Iterable[Path]) -> list[ObjectSymbols]:
    found = []
    for path in paths:
        try:
            found.append(read_symbols(path.read_bytes()))
        except WasmFormatError as exc:
            raise WasmFormatError(f"cannot read the compiled object {path.name}: {exc}") from exc
    return found


def exported_functions(paths: Iterable[Path]) -> list[str]:
    """Every externally visible function the objects define, sorted, entry points excluded."""
    return sorted({name for symbols in _read_all(paths) for name in symbols.functions})


def defines_main(paths: Iterable[Path]) -> bool:
    """Whether any object defines a C ``main`` (so the link makes a WASI command)."""
    return any(symbols.has_main for symbols in _read_all(paths))


def check_symbols(names: Iterable[str]) -> None:
    """Refuse exported names that are not identifiers (``names.SYMBOL``), naming them.

    Such a name can only come from an explicit label (C ``__asm__("...")``, Fortran
    ``bind(C, name="...")``, Rust ``#[export_name = "..."]``). It is refused rather than
    left unexported: a module silently missing a function the source exports is harder
    to understand than an error that says which name to change.
    """
    bad = [name for name in names if not is_symbol(name)]
    if bad:
        raise CompileFailed(
            f"cannot export {', '.join(shown(name) for name in bad)}: an exported function "
            "needs an identifier name (letters, digits and '_', not starting with a digit)",
            hint="rename the function's label (C __asm__, Fortran bind(C, name=), "
            "Rust #[export_name]), or list the functions to export in the 'exports' option",
        )


def _check_exist(wanted: Sequence[str], available: Sequence[str], what: str) -> None:
    missing = [name for name in wanted if name not in available]
    if missing:
        listed = [name if is_symbol(name) else shown(name) for name in available]
        have = ", ".join(listed) if listed else "none"
        raise CompileFailed(
            f"exports names {', '.join(repr(m) for m in missing)}, which the {what} "
            f"does not define. Functions it defines: {have}",
            hint="fix the 'exports' option or remove it to export every visible function",
        )


def write_export_file(
    scratch: Path,
    objects: Sequence[str],
    narrowed: tuple[str, ...] | None,
    dest: str = "obj/exports.rsp",
    library_flags: Sequence[str] = (),
    public: Callable[[str], bool] = lambda name: True,
) -> list[str]:
    """Write a clang response file exporting the chosen functions; return their names.

    Every chosen name must be an identifier (``check_symbols``), and every word is
    quoted (``response.write_gnu``), so nothing in the file becomes a flag of its own.

    ``objects`` are paths relative to ``scratch``. With ``narrowed`` None every visible
    function is exported; otherwise exactly the named ones, each of which must be
    defined (else CompileFailed naming it and listing what exists). ``library_flags``
    go into the file only when no object defines ``main`` (e.g. ``-mexec-model=reactor``),
    since that is known only after compiling. Functions ``public`` rejects (a compiler's
    internal symbols) are neither exported by default nor offered in the error.
    """
    paths = [scratch / obj for obj in objects]
    symbols = _read_all(paths)
    available = sorted({name for s in symbols for name in s.functions if public(name)})
    if narrowed is None:
        chosen = available
    else:
        _check_exist(narrowed, available, "program")
        chosen = list(dict.fromkeys(narrowed))
    check_symbols(chosen)
    words = [] if any(s.has_main for s in symbols) else list(library_flags)
    words += [f"-Wl,--export={name}" for name in chosen]
    write_gnu(scratch / dest, words)
    return chosen


def module_exports(data: bytes) -> list[str]:
    """The export names of a finished wasm module, in order."""
    for section_id, _start, payload, end in _sections(data):
        if section_id == _EXPORT:
            reader = _Reader(data, payload, end)
            names = []
            for _ in range(reader.uleb()):
                names.append(reader.name())
                reader.byte()
                reader.uleb()
            return names
    return []


def narrow_exports(data: bytes, names: Sequence[str]) -> bytes:
    """The module with only the named exports kept (dropping an export keeps it valid).

    Every name must be exported already, else CompileFailed listing the exports.
    """
    _check_exist(names, module_exports(data), "module")
    keep = set(names)
    out = bytearray(data[: len(_MAGIC)])
    for section_id, start, payload, end in _sections(data):
        if section_id != _EXPORT:
            out += data[start:end]
            continue
        reader = _Reader(data, payload, end)
        entries: list[bytes] = []
        for _ in range(reader.uleb()):
            entry_start = reader.pos
            name = reader.name()
            reader.byte()
            reader.uleb()
            if name in keep:
                entries.append(data[entry_start : reader.pos])
        body = encode_uleb(len(entries)) + b"".join(entries)
        out += bytes([_EXPORT]) + encode_uleb(len(body)) + body
    return bytes(out)
