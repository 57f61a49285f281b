"""asm.js output that imports WASI or ``env`` loads in node with the files docs/asmjs.md
gives (a resolve hook and two small modules), run here exactly as the docs show them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from pf.config import Settings
from tests.toolchains.support import compile_files, outputs
from tests.tools import needs_tool

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "asmjs.md"
FORTRAN = ROOT / "demos" / "polyglot" / "fortran" / "hello.f90"
HELLO_C = b"""#include <stdio.h>
int add(int a, int b) { return a + b; }
int main(void) { printf("hello from C, add(2,3)=%d\\n", add(2, 3)); return 0; }
"""
BIG_C = b"long long big(int a) { return (long long)a << 40; }\n"

pytestmark = needs_tool("node")


def doc_files(dest: Path) -> None:
    """Write every ``<!-- file: NAME -->`` block of the doc into ``dest``."""
    blocks = re.findall(r"<!-- file: (\S+) -->\n```js\n(.*?)```", DOC.read_text(), re.S)
    assert {name for name, _ in blocks} >= {"wasi.mjs", "env.mjs", "hooks.mjs", "main.mjs"}
    for name, body in blocks:
        (dest / name).write_text(body)


def node(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", "--jitless", *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def asm(settings: Settings, language: str, name: str, source: bytes) -> str:
    (path,) = outputs(compile_files(settings, language, "asm", {name: source})).values()
    return path.read_text()


def test_without_its_imports_the_module_does_not_load(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "hello.mjs").write_text(asm(settings, "c", "hello.c", HELLO_C))
    done = node(tmp_path, "hello.mjs")
    assert done.returncode != 0 and "ERR_MODULE_NOT_FOUND" in done.stderr


@pytest.mark.parametrize(
    ("language", "name", "source", "expected"),
    [
        ("c", "hello.c", HELLO_C, ["hello from C, add(2,3)=5"]),
        ("fortran", "hello.f90", FORTRAN.read_bytes(), [" Hello from Fortran 42"]),
    ],
)
def test_a_wasi_program_runs_through_the_documented_loader(
    settings: Settings,
    tmp_path: Path,
    language: str,
    name: str,
    source: bytes,
    expected: list[str],
) -> None:
    module = asm(settings, language, name, source)
    assert "from 'wasi_snapshot_preview1'" in module
    (tmp_path / "hello.mjs").write_text(module)
    doc_files(tmp_path)
    done = node(tmp_path, "--import", "./register.mjs", "main.mjs")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[: len(expected)] == expected


def test_a_64_bit_result_comes_back_through_env(settings: Settings, tmp_path: Path) -> None:
    module = asm(settings, "c", "big.c", BIG_C)
    assert "import { setTempRet0 } from 'env';" in module
    (tmp_path / "big.mjs").write_text(module)
    doc_files(tmp_path)
    (tmp_path / "run.mjs").write_text(
        "import { big } from './big.mjs';\n"
        "import { getTempRet0 } from 'env';\n"
        "const low = big(3) >>> 0;\n"
        "console.log(low, getTempRet0());\n"
    )
    done = node(tmp_path, "--import", "./register.mjs", "run.mjs")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", str(3 << 8)]
