"""``pf build``: the whole bundled demo, every language for every target (``make run``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import DEMO


def pf_build(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pf", "build", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_bundled_demo_builds_for_every_language_and_target(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pf", "build", str(DEMO), "-o", str(tmp_path / "web"), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)
    built = {(r["language"], r["target"]) for r in records}
    languages, targets = ("rust", "c", "fortran", "wat"), ("wasm", "llvm", "asm")
    assert built == {(lang, target) for lang in languages for target in targets}
    suffixes = {"wasm": ".wasm", "llvm": ".ll", "asm": ".mjs"}
    for record in records:
        for output in record["outputs"]:
            path = Path(output)
            assert path.parent == tmp_path / "web" / record["target"] / record["language"]
            assert path.suffix == suffixes[record["target"]]
            assert path.stat().st_size > 0


def test_a_project_without_that_language_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "only.c").write_text("int one(void) { return 1; }\n")
    done = subprocess.run(
        [sys.executable, "-m", "pf", "build", str(tmp_path), "--language", "rust"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert f"project {tmp_path.name} has no rust sources" in done.stderr
    assert "hint: it has: c" in done.stderr


def test_a_directory_without_sources_is_a_usage_error_listing_the_extensions(
    tmp_path: Path,
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not a source\n")
    done = pf_build("empty", cwd=tmp_path)
    assert done.returncode == 2
    assert "error: no sources of any language were found under empty" in done.stderr
    assert ".rs (rust), .c .h (c), .f .for" in done.stderr and ".wat .wast (wat)" in done.stderr
    assert "built 0" not in done.stdout


def test_failures_are_records_in_the_json_list(tmp_path: Path) -> None:
    (tmp_path / "good.wat").write_text('(module (func (export "one") (result i32) i32.const 1))\n')
    (tmp_path / "bad.c").write_text("int add(int a, int b) {\n  return a +;\n}\n")
    done = pf_build(".", "--target", "wasm", "--json", cwd=tmp_path)
    assert done.returncode == 1
    records = {r["language"]: r for r in json.loads(done.stdout)}
    assert records["wat"]["status"] == "completed"
    failed = records["c"]
    assert (failed["status"], failed["target"]) == ("failed", "wasm")
    assert failed["error"] == "compile failed: clang exited with code 1"
    assert {
        "file": "bad.c",
        "line": 2,
        "col": 13,
        "severity": "error",
        "message": "expected expression",
    } in failed["diagnostics"]
    assert "c -> wasm: error: compile failed" in done.stderr


def test_key_value_options_may_follow_flags(tmp_path: Path) -> None:
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "math.c").write_text(
        "int add(int a, int b) { return a + b; }\nint sub(int a, int b) { return a - b; }\n"
    )
    done = pf_build("demo", "--target", "wasm", "opt_level=3", "exports=add", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "built 1 of 1 for project demo" in done.stdout
    assert (tmp_path / "demo" / "web" / "wasm" / "c" / "math.wasm").exists()


def test_an_output_path_that_is_a_file_is_refused_before_building(tmp_path: Path) -> None:
    (tmp_path / "add.c").write_text("int add(int a, int b) { return a + b; }\n")
    (tmp_path / "web").write_text("a file\n")
    done = pf_build(".", cwd=tmp_path)
    assert done.returncode == 2
    assert "error: cannot write outputs to web: web exists and is not a directory" in done.stderr
    assert "Traceback" not in done.stderr


def test_outputs_go_where_the_originals_build_put_them(tmp_path: Path) -> None:
    original = Path(__file__).resolve().parents[1] / "original_demo"
    project = tmp_path / "pf-web-polyglot-demo-plus-c"
    shutil.copytree(original / project.name, project)
    shutil.rmtree(project / "rust")  # wasm-bindgen: refused, as tests/server say
    done = pf_build(str(project), "--target", "wasm", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    web = project / "web"
    assert (web / "wasm" / "asm" / "mini.wasm").read_bytes()[:4] == b"\0asm"
    assert "export default" in (web / "wasm" / "c" / "c_trap.js").read_text()
    assert (web / "wasm" / "c" / "c_trap.wasm").is_file()
    assert (web / "wasm" / "fortran" / "hello.wasm").is_file()
    done = pf_build(str(project), "--language", "c", "--target", "asm", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (web / "asm" / "c" / "c_trap_asm.js").is_file()
