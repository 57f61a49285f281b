"""POST /api/build/all builds every language for real; the artifacts are fetched and run."""

from __future__ import annotations

from pathlib import Path

import httpx
import wasmtime

from tests.server.conftest import Server, download_artifacts, wait_for
from tests.toolchains.support import instantiate


def test_build_all_builds_every_language_and_the_modules_run(
    server: Server, tmp_path: Path
) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        answer = http.post("/api/build/all", json={"target": "wasm"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["target"] == "wasm" and body["project"] == "polyglot"
        assert body["message"] == "4 builds queued"
        assert len(set(body["buildIds"])) == 4
        records = [wait_for(http, build_id, timeout=120) for build_id in body["buildIds"]]
        assert [r["language"] for r in records] == ["rust", "c", "fortran", "wat"]
        assert all(r["status"] == "completed" for r in records), records
        files = download_artifacts(http, records, tmp_path)

    for language in ("rust", "c", "wat"):
        store, exports = instantiate(files[language])
        assert exports["add"](store, 40, 2) == 42, language
    _, rust = instantiate(files["rust"])
    assert rust["fibonacci"](_, 10) == 55

    out = tmp_path / "fortran.out"
    store, exports = instantiate(files["fortran"], stdout=out)
    try:
        exports["_start"](store)
    except wasmtime.ExitTrap as exit_trap:
        assert exit_trap.code == 0
    assert out.read_text().strip()


def test_build_all_for_llvm_ir(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        body = http.post("/api/build/all", json={"target": "llvm", "opt_level": "1"}).json()
        records = [wait_for(http, build_id, timeout=120) for build_id in body["buildIds"]]
        for record in records:
            assert record["status"] == "completed", record
            [artifact] = record["artifacts"]  # type: ignore[misc]
            assert artifact["path"].endswith(".ll")
            text = http.get(artifact["url"]).text
            assert "define" in text, record["language"]
