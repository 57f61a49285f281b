"""The tools pf drives, where to find them on Debian 12, and the command that installs each."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pf.config import Settings
from pf.toolchains.base import Output, Plan, Run, ToolSpec

_APT = "apt-get install -y --no-install-recommends"

CLANG = ToolSpec(
    name="clang",
    candidates=("/usr/bin/clang-14", "clang-14", "clang"),
    install=f"{_APT} clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32",
)
CLANG19 = ToolSpec(
    name="clang-19",
    candidates=("/usr/bin/clang-19", "clang-19"),
    install=f"{_APT} clang-19 lld-19 libclang-rt-19-dev-wasm32 wasi-libc",
)
FLANG = ToolSpec(
    name="flang",
    candidates=("/usr/bin/flang-new-19", "flang-new-19"),
    install=f"{_APT} flang-19 clang-19 lld-19 libclang-rt-19-dev-wasm32 wasi-libc",
)
# Debian's rustc 1.63 is the only Rust here with a wasm32 std; a rustup toolchain earlier
# on PATH has none, so the Debian binary is named by its full path first (docs/toolchains.md).
RUSTC = ToolSpec(
    name="rustc",
    candidates=("/usr/bin/rustc",),
    install=f"{_APT} rustc libstd-rust-dev-wasm32 lld-14",
)
WAT2WASM = ToolSpec(
    name="wat2wasm",
    candidates=("/usr/bin/wat2wasm", "wat2wasm"),
    install=f"{_APT} wabt",
)
# The WAT assembler pf runs: wabt's own library built to WebAssembly (npm wabt), run by
# wasmtime in a resident sandboxed process (pf.toolchains.wabt). Set-up writes its
# launcher beside the wasm, naming the wasm's digest, so a new wasm is a new tool.
WABT_WASM = ToolSpec(
    name="wabt-wasm",
    candidates=(f"{sys.prefix}/share/pf/wabt/pf-wabt",),
    install="scripts/setup.sh",
)
WASM2C = ToolSpec(
    name="wasm2c",
    candidates=("/usr/bin/wasm2c", "wasm2c"),
    install=f"{_APT} wabt",
)
WASM2JS = ToolSpec(
    name="wasm2js",
    candidates=("/usr/bin/wasm2js", "wasm2js"),
    install=f"{_APT} binaryen",
    # binaryen versions are single numbers: "wasm2js version 108".
    version_pattern=r"version (\d+)",
)
OPT = ToolSpec(
    name="opt",
    candidates=("/usr/bin/opt-14", "opt-14", "opt"),
    install=f"{_APT} llvm-14",
)
OPT19 = ToolSpec(
    name="opt-19",
    candidates=("/usr/bin/opt-19", "/usr/lib/llvm-19/bin/opt", "opt-19"),
    install=f"{_APT} llvm-19",
)
CCACHE = ToolSpec(
    name="ccache",
    candidates=("/usr/bin/ccache", "ccache"),
    install=f"{_APT} ccache",
)


def wasm2js_step(wasm: str, stem: str) -> tuple[Run, Output]:
    """Turn a wasm file into asm.js-style JavaScript (an ES module) with binaryen.

    No maintained tool emits validated ``"use asm"`` code any more; wasm2js output is
    asm.js-style (typed-array heap, ``|0`` coercions) and runs with WebAssembly disabled.
    """
    output = Output(f"out/{stem}.mjs", "js")
    return Run("convert", ("wasm2js", wasm, "-o", output.path)), output


# Joins the per-file LLVM 14 IR of a multi-file C request into one module (C driver).
LLVM_LINK = ToolSpec(
    name="llvm-link",
    candidates=("/usr/bin/llvm-link-14", "llvm-link-14", "llvm-link"),
    install=f"{_APT} llvm-14",
)

# Links Rust wasm modules (Rust driver). Debian's rust-lld is lld 14, the linker rustc
# 1.63 itself uses for wasm32, so the driver links exactly as rustc would but with its
# own --export list.
RUST_LLD = ToolSpec(
    name="rust-lld",
    candidates=("/usr/bin/rust-lld",),
    install=f"{_APT} lld-14",
    version_args=("-flavor", "wasm", "--version"),
)

# Joins the per-file flang-19 (LLVM 19) IR of a multi-file Fortran request (Fortran driver).
LLVM_LINK19 = ToolSpec(
    name="llvm-link-19",
    candidates=("/usr/bin/llvm-link-19", "/usr/lib/llvm-19/bin/llvm-link", "llvm-link-19"),
    install=f"{_APT} llvm-19",
)

# Debian's emscripten 3.1.6 (C to an ES6 module + wasm, asm.js, IR). /usr/bin/emcc is a
# shell wrapper around emcc.py; it drives clang-14, wasm-ld-14, binaryen and node from
# /usr, and its prebuilt libraries sit in a frozen cache it only reads.
EMCC = ToolSpec(
    name="emcc",
    candidates=("/usr/bin/emcc", "emcc"),
    install=f"{_APT} emscripten",
    # "emcc (Emscripten gcc/clang-like replacement + linker emulating GNU ld) 3.1.6 ()"
    version_pattern=r"\) (\d+\.\d+\.\d+)",
)


def as_configured(plan: Plan, settings: Settings) -> Plan:
    """``plan`` with its Assemble steps run as PF_WAT_ASSEMBLER says: by the resident
    assembler (as drivers plan them), or by a wat2wasm process each."""
    return plan.assembled_by(WAT2WASM) if settings.wat_assembler == "wat2wasm" else plan


def configured_tools(specs: Sequence[ToolSpec], settings: Settings) -> tuple[ToolSpec, ...]:
    """A driver's tools as ``as_configured`` plans run them."""
    if settings.wat_assembler != "wat2wasm":
        return tuple(specs)
    return tuple(WAT2WASM if spec.name == WABT_WASM.name else spec for spec in specs)
