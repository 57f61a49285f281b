"""The original's demo project against a real pf serve: its layout, modules and C.

The project (tests/original_demo) is laid out as the original's: C for Emscripten in
``c/``, WAT in ``asm/``, Fortran in ``fortran/src/``, a wasm-bindgen crate in ``rust/``.
Builds sent without a project build it, and their outputs load from the URLs its pages
use: ``/wasm/asm/mini.wasm``, ``/wasm/c/c_trap.js``, ``/asm/c/c_trap_asm.js``,
``/llvm/c/c_trap.ll``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import Server, wait_for

ORIGINAL_DEMO = Path(__file__).resolve().parents[1] / "original_demo"
BUILD_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("original")
    shutil.copytree(ORIGINAL_DEMO, work / "projects")
    # A second project: a request without one must still mean the original's.
    shutil.copytree(
        ORIGINAL_DEMO / "pf-web-polyglot-demo-plus-c" / "asm", work / "projects" / "aaa" / "wat"
    )
    server = Server(work).start()
    yield server
    server.stop()


@pytest.fixture
def http(original: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=original.url, timeout=30) as client:
        yield client


def build(http: httpx.Client, language: str, target: str) -> dict[str, object]:
    answer = http.post(f"/api/build/{language}", json={"target": target})
    assert answer.status_code == 200, answer.text
    record = wait_for(http, answer.json()["buildId"], BUILD_TIMEOUT)
    assert record["status"] == "completed", record
    assert record["project"] == "pf-web-polyglot-demo-plus-c"
    return record


def group(http: httpx.Client, target: str, folder: str) -> dict[str, dict[str, object]]:
    modules = http.get("/api/modules").json()["modules"]
    found = next(m for m in modules if (m["target"], m["language"]) == (target, folder))
    return {f["name"]: f for f in found["files"]}


def test_wat_in_asm_is_served_where_the_page_loads_it(http: httpx.Client) -> None:
    record = build(http, "wat", "wasm")
    loaded = http.get("/wasm/asm/mini.wasm")
    assert loaded.status_code == 200 and loaded.content[:4] == b"\0asm"
    assert loaded.headers["content-type"] == "application/wasm"
    files = group(http, "wasm", "asm")
    entry = files["mini.wasm"]
    assert entry["path"] == "/wasm/asm/mini.wasm" and entry["size"] == len(loaded.content)
    assert entry["sourceLanguage"] == "wat" and entry["buildId"] == record["buildId"]
    assert entry["artifact"] == f"/api/builds/{record['buildId']}/artifacts/mini.wasm"
    assert http.get(str(entry["artifact"])).content == loaded.content
    # pf's language-named path is not the original's and is not invented.
    assert http.get("/wasm/wat/mini.wasm").status_code == 404


def test_c_for_emscripten_builds_the_es6_module_asm_js_and_ir(http: httpx.Client) -> None:
    build(http, "c", "wasm")
    module = http.get("/wasm/c/c_trap.js")
    assert module.status_code == 200
    assert module.headers["content-type"].startswith("text/javascript")
    assert "export default" in module.text
    assert http.get("/wasm/c/c_trap.wasm").content[:4] == b"\0asm"
    assert set(group(http, "wasm", "c")) == {"c_trap.js", "c_trap.wasm"}

    build(http, "c", "asm")
    asm = http.get("/asm/c/c_trap_asm.js")
    assert asm.status_code == 200 and "export default" in asm.text
    assert group(http, "asm", "c")["c_trap_asm.js"]["path"] == "/asm/c/c_trap_asm.js"

    build(http, "c", "llvm")
    ir = http.get("/llvm/c/c_trap.ll")
    assert ir.status_code == 200 and "wasm32-unknown-emscripten" in ir.text

    # wasm groups come first: a client of the original finds its modules there.
    modules = http.get("/api/modules").json()["modules"]
    targets = [m["target"] for m in modules]
    assert targets == sorted(targets, key=["wasm", "asm", "llvm"].index)


def test_a_wasm_bindgen_crate_is_refused_and_build_all_says_so(http: httpx.Client) -> None:
    refused = http.post("/api/build/rust", json={"target": "wasm"})
    assert refused.status_code == 400
    body = refused.json()
    assert "rust/src/lib.rs uses wasm-bindgen" in body["error"]
    assert body["code"] == "unbuildable"
    assert '#[no_mangle] pub extern "C"' in body["hint"]

    answer = http.post("/api/build/all", json={"target": "wasm"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["project"] == "pf-web-polyglot-demo-plus-c"
    assert "not built: rust" in body["message"]
    (skipped,) = body["skipped"]
    assert skipped["language"] == "rust" and "wasm-bindgen" in skipped["error"]
    records = [wait_for(http, i, BUILD_TIMEOUT) for i in body["buildIds"]]
    assert sorted(r["language"] for r in records) == ["c", "fortran", "wat"]
    assert all(r["status"] == "completed" for r in records), records
    assert http.get("/wasm/fortran/hello.wasm").content[:4] == b"\0asm"


def test_files_in_the_web_root_are_listed_under_every_target(
    http: httpx.Client, original: Server
) -> None:
    nested = original.web / "wasm" / "rust" / "pkg" / "rust_demo.wasm"
    nested.parent.mkdir(parents=True)
    nested.write_bytes(b"\0asm\1\0\0\0")
    ir = original.web / "llvm" / "rust" / "lib.ll"
    ir.parent.mkdir(parents=True)
    ir.write_text("; ModuleID = 'lib'\n")
    files = group(http, "wasm", "rust")
    assert files["pkg/rust_demo.wasm"]["path"] == "/wasm/rust/pkg/rust_demo.wasm"
    assert http.get("/wasm/rust/pkg/rust_demo.wasm").content == b"\0asm\1\0\0\0"
    assert group(http, "llvm", "rust")["lib.ll"]["size"] == ir.stat().st_size
    assert http.get("/llvm/rust/lib.ll").text == "; ModuleID = 'lib'\n"
