"""``pf compile`` and ``pf toolchains`` as a user runs them: the real binary, real compilers."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime

from tests.conftest import DEMO


def pf(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "pf", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _script(path: Path, body: str) -> str:
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def _functions(wasm: Path) -> set[str]:
    module = wasmtime.Module(wasmtime.Engine(), wasm.read_bytes())
    return {e.name for e in module.exports if isinstance(e.type, wasmtime.FuncType)}


def test_compile_prints_artifacts_cache_state_and_time(tmp_path: Path) -> None:
    done = pf("compile", str(DEMO / "c" / "math.c"), "-o", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "compiled c -> wasm in" in done.stdout and "(cache miss)" in done.stdout
    assert "out/math.wasm" in done.stdout
    again = pf("compile", str(DEMO / "c" / "math.c"), "-o", "out", "--json", cwd=tmp_path)
    record = json.loads(again.stdout)
    assert record["cached"] is True
    assert record["artifacts"][0]["path"] == "math.wasm"
    assert (tmp_path / "out" / "math.wasm").stat().st_size == record["artifacts"][0]["size"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["opt_level=9"],
            "Invalid option 'opt_level': '9' is not an optimisation level. "
            "Allowed: 0, 1, 2, 3, s, z",
        ),
        (
            ["speed=fast"],
            "Invalid option 'speed': unknown option. "
            "Allowed: opt_level, parallel, passes, exports, debug",
        ),
        (["debug=perhaps"], "Invalid option 'debug': 'perhaps' is not a boolean"),
        (["--target", "exe"], "argument --target/-t: invalid choice: 'exe'"),
    ],
)
def test_bad_options_are_refused_with_the_allowed_values(
    args: list[str], message: str, tmp_path: Path
) -> None:
    done = pf("compile", str(DEMO / "c" / "math.c"), *args, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_unknown_extension_asks_for_the_language(tmp_path: Path) -> None:
    (tmp_path / "prog.cob").write_text("IDENTIFICATION DIVISION.\n")
    done = pf("compile", "prog.cob", cwd=tmp_path)
    assert done.returncode == 2
    assert "cannot tell the language of prog.cob" in done.stderr
    assert "--language (rust, c, fortran, wat)" in done.stderr


def test_sources_of_two_languages_are_refused_before_compiling(tmp_path: Path) -> None:
    (tmp_path / "add.c").write_text("int add(int a, int b) { return a + b; }\n")
    (tmp_path / "add.wat").write_text('(module (func (export "add") (result i32) i32.const 1))\n')
    (tmp_path / "add.h").write_text("int add(int a, int b);\n")
    done = pf("compile", "add.c", "add.h", "add.wat", "-o", "out", cwd=tmp_path)
    assert done.returncode == 2
    assert "add.c is c but add.wat is wat: one `pf compile` compiles one language" in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_compile_error_shows_the_users_file_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "bad.c").write_text("int add(int a, int b) {\n  return a +;\n}\n")
    done = pf("compile", "bad.c", cwd=tmp_path)
    assert done.returncode == 1
    assert "bad.c:2:13: error: expected expression" in done.stderr
    assert "Traceback" not in done.stderr and "build-" not in done.stderr
    assert not (tmp_path / "bad.wasm").exists()


def test_diagnostics_keep_the_directory_the_user_typed(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "bad.c").write_text("int add(int a, int b) {\n  return a +;\n}\n")
    done = pf("compile", "sub/bad.c", cwd=tmp_path)
    assert done.returncode == 1
    assert "  sub/bad.c:2:13: error: expected expression" in done.stderr
    outside = pf("compile", "../sub/bad.c", cwd=tmp_path / "sub")
    assert "  bad.c:2:13: error: expected expression" in outside.stderr  # no `..` in names


def test_a_missing_toolchain_names_its_install_command(tmp_path: Path) -> None:
    done = pf(
        "compile", str(DEMO / "c" / "math.c"), cwd=tmp_path, env={"PF_TOOL_CLANG": "/nowhere/clang"}
    )
    assert done.returncode == 3
    assert "clang: PF_TOOL_CLANG=/nowhere/clang is not executable" in done.stderr
    assert "apt-get install -y --no-install-recommends clang-14" in done.stderr


def test_a_hanging_compiler_is_killed_at_the_timeout(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    hang = _script(
        tmp_path / "clang",
        'if [ "$1" = --version ]; then echo "clang version 14.0.6"; exit 0; fi\n'
        f"sleep 300 & echo $! > {pidfile}; wait\n",
    )
    done = pf(
        "compile",
        str(DEMO / "c" / "math.c"),
        cwd=tmp_path,
        env={"PF_TOOL_CLANG": hang, "PF_SANDBOX": "off", "PF_BUILD_TIMEOUT": "1", "PF_CCACHE": "0"},
    )
    assert done.returncode == 124
    assert "ran longer than 1 s and was stopped with its whole process group" in done.stderr
    pid = int(pidfile.read_text())
    assert (
        not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    )


def test_a_flooding_compiler_is_capped_with_the_marker(tmp_path: Path) -> None:
    flood = _script(
        tmp_path / "clang",
        'if [ "$1" = --version ]; then echo "clang version 14.0.6"; exit 0; fi\n'
        "yes 'noise noise noise noise' | head -c 5000000 >&2; exit 1\n",
    )
    done = pf(
        "compile",
        str(DEMO / "c" / "math.c"),
        "--json",
        cwd=tmp_path,
        env={"PF_TOOL_CLANG": flood, "PF_SANDBOX": "off", "PF_MAX_BUFFER": "64K", "PF_CCACHE": "0"},
    )
    assert done.returncode == 1
    assert "[truncated: output exceeded 65536 bytes; the rest was discarded]" in done.stderr
    assert len(done.stderr) < 20_000


def test_toolchains_lists_every_pair_with_its_tool(tmp_path: Path) -> None:
    done = pf("toolchains", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    own = [r for r in rows if "driver" not in r]
    assert len(own) == 12
    assert {(r["language"], r["target"]) for r in own if r["available"]} == {
        (lang, target)
        for lang in ("rust", "c", "fortran", "wat")
        for target in ("wasm", "llvm", "asm")
    }
    c_wasm = next(r for r in rows if (r["language"], r["target"]) == ("c", "wasm"))
    assert (c_wasm["tool"], c_wasm["version"]) == ("clang", "14.0.6")
    emscripten = [r for r in rows if r.get("driver") == "emscripten"]
    assert [(r["language"], r["target"], r["tool"]) for r in emscripten] == [
        ("c", "wasm", "emcc"),
        ("c", "llvm", "emcc"),
        ("c", "asm", "emcc"),
    ]


@pytest.mark.parametrize(
    ("assembler", "tool"), [("wabt-wasm", "wabt-wasm"), ("wat2wasm", "wat2wasm")]
)
def test_toolchains_names_the_wat_assembler_that_is_configured(
    tmp_path: Path, assembler: str, tool: str
) -> None:
    done = pf("toolchains", "--json", cwd=tmp_path, env={"PF_WAT_ASSEMBLER": assembler})
    assert done.returncode == 0, done.stderr
    wat = [r for r in json.loads(done.stdout) if r["language"] == "wat"]
    assert [r["tool"] for r in wat] == [tool] * 3


def test_toolchains_explains_a_missing_tool(tmp_path: Path) -> None:
    done = pf("toolchains", cwd=tmp_path, env={"PF_TOOL_WASM2JS": "/nowhere/wasm2js"})
    assert done.returncode == 0
    assert "c        -> asm   missing" in done.stdout
    assert "install: apt-get install -y --no-install-recommends binaryen" in done.stdout


def test_unknown_command_suggests_the_closest(tmp_path: Path) -> None:
    done = pf("compil", "x.c", cwd=tmp_path)
    assert done.returncode == 2
    assert "unknown command 'compil'" in done.stderr and "did you mean 'compile'?" in done.stderr


def test_the_crate_root_leads_whatever_order_the_files_come_in(tmp_path: Path) -> None:
    (tmp_path / "helper.rs").write_text("pub fn twice(x: i32) -> i32 { x * 2 }\n")
    (tmp_path / "lib.rs").write_text(
        'mod helper;\n#[no_mangle]\npub extern "C" fn quad(x: i32) -> i32 '
        "{ helper::twice(helper::twice(x)) }\n"
    )
    done = pf("compile", "helper.rs", "lib.rs", "-o", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "lib.wasm").read_bytes()[:4] == b"\0asm"


def test_key_value_options_may_follow_any_flag(tmp_path: Path) -> None:
    done = pf(
        "compile", str(DEMO / "c" / "math.c"), "--json", "-o", "out", "exports=add", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "completed" and record["error"] is None
    exported = _functions(tmp_path / "out" / "math.wasm")
    assert "add" in exported and "checked_div" not in exported


def test_json_prints_the_record_of_a_failed_compile(tmp_path: Path) -> None:
    (tmp_path / "bad.c").write_text("int add(int a, int b) {\n  return a +;\n}\n")
    done = pf("compile", "bad.c", "--json", cwd=tmp_path)
    assert done.returncode == 1
    record = json.loads(done.stdout)
    assert record["status"] == "failed"
    assert (record["language"], record["target"], record["code"]) == ("c", "wasm", "compile-failed")
    assert record["error"] == "compile failed: clang exited with code 1"
    assert record["artifacts"] == [] and record["outputs"] == []
    assert {
        "file": "bad.c",
        "line": 2,
        "col": 13,
        "severity": "error",
        "message": "expected expression",
    } in record["diagnostics"]
    assert "bad.c:2:13: error: expected expression" in done.stderr


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (
            "/dev/null/x",
            "cannot write outputs to /dev/null/x: /dev/null exists and is not a directory",
        ),
        ("add.c", "cannot write outputs to add.c: add.c exists and is not a directory"),
        ("od", "cannot write od/add.wasm: Is a directory"),
    ],
)
def test_a_bad_output_path_is_a_usage_error_naming_it(
    output: str, message: str, tmp_path: Path
) -> None:
    (tmp_path / "add.c").write_text("int add(int a, int b) { return a + b; }\n")
    (tmp_path / "od" / "add.wasm").mkdir(parents=True)
    done = pf("compile", "add.c", "-o", output, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"error: {message}" in done.stderr
    assert "hint: choose another output directory with -o" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("language", "source", "exports"),
    [
        ("c", "int add(int a, int b) { return a + b; }\n", ["add"]),
        ("wat", '(module (func (export "one") (result i32) i32.const 1))\n', ["one"]),
    ],
)
def test_language_overrides_the_extension(
    language: str, source: str, exports: list[str], tmp_path: Path
) -> None:
    (tmp_path / "x.txt").write_text(source)
    done = pf("compile", "--language", language, "x.txt", "-o", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert set(exports) <= _functions(tmp_path / "out" / "x.wasm")


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "1e300"])
def test_a_bad_build_timeout_is_a_config_error_before_compiling(value: str, tmp_path: Path) -> None:
    done = pf("compile", str(DEMO / "c" / "math.c"), cwd=tmp_path, env={"PF_BUILD_TIMEOUT": value})
    assert done.returncode == 1
    assert "error: PF_BUILD_TIMEOUT: invalid value for build_timeout" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "math.wasm").exists()
