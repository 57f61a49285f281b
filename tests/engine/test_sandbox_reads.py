"""Compiles cannot read host files into any output: each way a source names a file, with
the real compilers through the real compile path (PF_SANDBOX=bwrap, the default)."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pf.config import load_settings
from pf.engine.cache import ActionCache
from pf.engine.compile import _sweeper, compile_sources
from pf.errors import CompileFailed, PfError, SandboxUnavailable
from pf.toolchains import CompileRequest, SourceFile

SECRET = b"PF_SECRET_4c1d_do_not_leak = 1;\n"
TOKEN = b"PF_SECRET_4c1d"


@pytest.fixture(params=["private", "world-readable"])
def secret(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A secret outside every compile directory: in the test's own (0700) directory,
    and in one any user may read, where only the sandbox keeps it out of reach."""
    if request.param == "private":
        path = tmp_path / "outside" / "secret.h"
        path.parent.mkdir()
        path.write_bytes(SECRET)
        yield path
        return
    folder = Path(tempfile.mkdtemp(prefix="pf-secret-"))
    folder.chmod(0o755)
    path = folder / "secret.h"
    path.write_bytes(SECRET)
    path.chmod(0o644)
    yield path
    subprocess.run(["rm", "-rf", str(folder)], check=True)


def _everything(root: Path) -> bytes:
    """Every byte pf stored under ``root`` (artifacts, manifests, logs), once the scratch
    dirs of finished compiles are gone (a thread deletes them behind the result)."""
    _sweeper.wait()
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _attempt(language: str, target: str, name: str, source: str) -> tuple[bytes, PfError | None]:
    """Compile; returns every byte the attempt produced or stored, and its error."""
    settings = load_settings()
    cache = ActionCache(settings.cache_dir, settings.cache_max_bytes)
    lines: list[str] = []
    request = CompileRequest(language, target, (SourceFile(name, source.encode()),))
    try:
        result = compile_sources(
            request, settings, cache=cache, on_line=lambda s, t: lines.append(t)
        )
    except PfError as error:
        seen = [error.message, error.hint or "", json.dumps(error.to_dict())]
        if isinstance(error, CompileFailed):
            seen.append(error.log)
        produced = "\n".join([*seen, *lines]).encode()
        return produced + _everything(settings.cache_dir), error
    produced = json.dumps(result.to_dict()).encode() + "\n".join(lines).encode()
    produced += b"".join(a.read_bytes() for a in result.artifacts)
    return produced + _everything(settings.cache_dir), None


ATTACKS = {
    "c-include": ("c", "wasm", "a.c", '#include "{secret}"\nint f(void) {{ return 0; }}\n'),
    "c-include-llvm": ("c", "llvm", "a.c", '#include "{secret}"\nint f(void) {{ return 0; }}\n'),
    "c-incbin": (
        "c",
        "wasm",
        "a.c",
        '__asm__(".section .data.leak,\\"\\",@\\n.incbin \\"{secret}\\"\\n");\n'
        "int f(void) {{ return 0; }}\n",
    ),
    "rust-include-bytes": (
        "rust",
        "wasm",
        "lib.rs",
        '#[no_mangle] pub static LEAK: &[u8] = include_bytes!("{secret}");\n'
        '#[no_mangle] pub extern "C" fn f() -> u8 {{ LEAK[0] }}\n',
    ),
    "rust-include-str": (
        "rust",
        "llvm",
        "lib.rs",
        '#[no_mangle] pub static LEAK: &str = include_str!("{secret}");\n'
        '#[no_mangle] pub extern "C" fn f() -> usize {{ LEAK.len() }}\n',
    ),
    "fortran-include": (
        "fortran",
        "llvm",
        "x.f90",
        "subroutine s()\n  include '{secret}'\nend subroutine\n",
    ),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_source_cannot_read_a_host_file(attack: str, secret: Path) -> None:
    language, target, name, template = ATTACKS[attack]
    produced, error = _attempt(language, target, name, template.format(secret=secret))
    assert TOKEN not in produced
    # The compiler reports the file as missing: the sandbox has no such path.
    assert isinstance(error, CompileFailed)
    said = error.log.lower()
    assert any(w in said for w in ("no such file", "not found", "could not find", "cannot"))


@pytest.mark.parametrize("attack", ["c-include", "rust-include-str"])
def test_unconfined_the_same_source_does_leak(
    monkeypatch: pytest.MonkeyPatch, secret: Path, attack: str
) -> None:
    """The attacks are real: what the sandbox stops, an unconfined compile lets through."""
    monkeypatch.setenv("PF_SANDBOX", "off")
    language, target, name, template = ATTACKS[attack]
    produced, _error = _attempt(language, target, name, template.format(secret=secret))
    assert TOKEN in produced


PLANTER = """#!/bin/bash
if [ "$1" = --version ]; then exec /usr/bin/clang-14 --version; fi
# A compiler gone bad: its outputs are links to a host file.
for arg in "$@"; do
  case "$prev" in -o) out="$arg";; -MF) dep="$arg";; esac
  prev="$arg"
done
[ -n "$dep" ] && : > "$dep"
ln -sf {secret} "$out"
"""


@pytest.fixture
def planter(secret: Path) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="pf-tool-"))
    folder.chmod(0o755)
    tool = folder / "clang"
    tool.write_text(PLANTER.format(secret=secret))
    tool.chmod(0o755)
    yield tool
    subprocess.run(["rm", "-rf", str(folder)], check=True)


@pytest.mark.parametrize("target", ["wasm", "llvm"])
def test_a_link_a_tool_plants_is_never_followed(
    monkeypatch: pytest.MonkeyPatch, planter: Path, target: str
) -> None:
    monkeypatch.setenv("PF_TOOL_CLANG", str(planter))
    produced, error = _attempt("c", target, "a.c", "int f(void) { return 0; }\n")
    assert TOKEN not in produced
    assert isinstance(error, CompileFailed)
    assert "link or special file" in error.message


def test_a_missing_bwrap_refuses_the_compile_with_cause_and_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PF_TOOL_BWRAP", "/nonexistent/bin/bwrap")
    _produced, error = _attempt("c", "wasm", "a.c", "int f(void) { return 0; }\n")
    assert isinstance(error, SandboxUnavailable)
    assert error.http_status == 503
    assert "/nonexistent/bin/bwrap" in error.message
    assert "apt-get install bubblewrap" in (error.hint or "")


def test_confined_and_unconfined_results_never_share_a_cache_entry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = "int f(void) { return 1; }\n"
    settings = load_settings()
    request = CompileRequest("c", "wasm", (SourceFile("a.c", source.encode()),))
    confined = compile_sources(request, settings)
    monkeypatch.setenv("PF_SANDBOX", "off")
    unconfined = compile_sources(request, load_settings())
    assert not unconfined.cached
    assert confined.key != unconfined.key
