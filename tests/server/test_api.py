"""Every endpoint of docs/server.md and every field, against a real pf serve on loopback:
one embedded server, then the shared deployment (two API processes, two pf workers)."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.server.conftest import MODES, Server, server_in_mode, unique_c, wait_for

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
RECORD_FIELDS = {
    "buildId",
    "language",
    "target",
    "project",
    "status",
    "startTime",
    "endTime",
    "duration",
    "progress",
    "error",
    "cached",
    "artifacts",
    "phase",
    "eta",
    "timings",
    "diagnostics",
    "kind",
    "createdTime",
}


@pytest.fixture(scope="module", params=MODES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    yield from server_in_mode(request, tmp_path_factory)


@pytest.fixture(scope="module")
def built(server: Server) -> dict[str, object]:
    """One completed C build of the demo project, shared by the module's tests."""
    with httpx.Client(base_url=server.url, timeout=60) as http:
        answer = http.post("/api/build/c", json={"target": "wasm", "opt_level": "2"})
        assert answer.status_code == 200, answer.text
        record = wait_for(http, answer.json()["buildId"])
    assert record["status"] == "completed", record
    return record


def test_health(client: httpx.Client) -> None:
    answer = client.get("/api/health")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert set(body) == {"status", "timestamp", "server", "version"}
    assert body["status"] == "ok"
    assert ISO.match(body["timestamp"])


def test_ready_reports_store_and_toolchains(client: httpx.Client) -> None:
    body = client.get("/api/ready").json()
    assert body["ready"] is True
    assert body["store"] == "ok"
    assert body["toolchains"]["available"] == body["toolchains"]["total"] == 12


def test_system(client: httpx.Client, server: Server) -> None:
    body = client.get("/api/system").json()
    assert body["platform"] == sys.platform
    assert body["availableLanguages"] == ["rust", "c", "fortran", "wat"]
    assert body["buildTargets"] == ["wasm", "llvm", "asm"]
    assert body["nodeVersion"].startswith("v")
    assert body["rootDir"] == str(server.web)
    assert {"arch", "pythonVersion", "cwd"} <= set(body)
    c_wasm = body["toolchains"]["c"]["wasm"]
    assert c_wasm["available"] is True and c_wasm["tool"] == "clang" and c_wasm["version"]
    (emscripten,) = c_wasm["alternatives"]
    assert emscripten["driver"] == "emscripten" and emscripten["tool"] == "emcc"
    assert emscripten["available"] is True and emscripten["version"] == "3.1.6"
    assert set(body["toolchains"]) == {"rust", "c", "fortran", "wat"}
    assert all(set(t) == {"wasm", "llvm", "asm"} for t in body["toolchains"].values())


def test_projects(client: httpx.Client, server: Server) -> None:
    projects = client.get("/api/projects").json()["projects"]
    assert projects == [
        {
            "name": "polyglot",
            "path": str(server.projects / "polyglot"),
            "languages": ["rust", "c", "fortran", "wat"],
        }
    ]


def test_build_record_has_every_field(built: dict[str, object]) -> None:
    assert RECORD_FIELDS <= set(built)
    assert built["language"] == "c" and built["target"] == "wasm"
    assert built["project"] == "polyglot" and built["kind"] == "compile"
    assert built["progress"] == 100 and built["error"] is None
    assert re.match(r"^c-wasm-\d{13}-[0-9a-f]+$", str(built["buildId"]))
    for key in ("startTime", "endTime", "createdTime"):
        assert ISO.match(str(built[key])), key
    assert isinstance(built["duration"], int | float)
    assert set(built["timings"]) >= {"queued", "compile"}  # type: ignore[arg-type]
    [artifact] = built["artifacts"]  # type: ignore[misc]
    assert artifact["path"] == "math.wasm" and artifact["size"] > 0
    assert re.fullmatch(r"[0-9a-f]{64}", artifact["digest"])
    assert artifact["url"] == f"/api/builds/{built['buildId']}/artifacts/math.wasm"


def test_submit_answer_and_status_views(client: httpx.Client, built: dict[str, object]) -> None:
    answer = client.post("/api/build/wat", json={})
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"buildId", "status", "message"}
    assert body["status"] in {"queued", "completed"}
    wait_for(client, body["buildId"])
    listing = client.get("/api/status").json()["builds"]
    ids = [b["buildId"] for b in listing]
    assert body["buildId"] in ids and built["buildId"] in ids
    one = client.get("/api/status", params={"buildId": built["buildId"]})
    assert one.status_code == 200 and one.json()["buildId"] == built["buildId"]
    only_c = client.get("/api/status", params={"language": "c", "limit": 5}).json()["builds"]
    assert only_c and all(b["language"] == "c" for b in only_c)
    beside_an_id = client.get("/api/status", params={"buildId": built["buildId"], "status": "x"})
    assert beside_an_id.status_code == 400 and "'status'" in beside_an_id.json()["error"]
    missing = client.get("/api/status", params={"buildId": "nope"})
    assert missing.status_code == 404 and missing.json() == {
        "error": "Build not found",
        "code": "not-found",
    }


def test_build_detail_and_cancel_of_a_finished_build(
    client: httpx.Client, built: dict[str, object]
) -> None:
    detail = client.get(f"/api/builds/{built['buildId']}")
    assert detail.status_code == 200 and detail.json()["buildId"] == built["buildId"]
    # Cancelling what already finished is a conflict with its state, and changes nothing.
    late = client.delete(f"/api/builds/{built['buildId']}")
    assert late.status_code == 409 and late.headers["content-type"] == "application/json"
    assert late.json()["code"] == "conflict"
    assert "already finished (completed)" in late.json()["error"]
    assert client.get(f"/api/builds/{built['buildId']}").json() == detail.json()
    assert client.get("/api/builds/nope").status_code == 404
    assert client.delete("/api/builds/nope").status_code == 404


def test_logs(client: httpx.Client, built: dict[str, object]) -> None:
    body = client.get(f"/api/logs/{built['buildId']}").json()
    assert body["buildId"] == built["buildId"]
    assert body["logs"], body
    for entry in body["logs"]:
        assert {"timestamp", "level", "message", "stdout", "stderr"} <= set(entry)
        assert ISO.match(entry["timestamp"])
    gone = client.get("/api/logs/nope")
    assert gone.status_code == 404 and gone.json()["error"] == "Build logs not found"


def test_artifact_download_with_strong_etag(client: httpx.Client, built: dict[str, object]) -> None:
    [artifact] = built["artifacts"]  # type: ignore[misc]
    answer = client.get(artifact["url"])
    assert answer.status_code == 200
    assert answer.content[:4] == b"\0asm" and len(answer.content) == artifact["size"]
    assert answer.headers["content-type"] == "application/wasm"
    assert answer.headers["etag"] == f'"{artifact["digest"]}"'
    assert "immutable" in answer.headers["cache-control"]
    again = client.get(artifact["url"], headers={"If-None-Match": answer.headers["etag"]})
    assert again.status_code == 304
    missing = client.get(f"/api/builds/{built['buildId']}/artifacts/other.wasm")
    assert missing.status_code == 404 and "error" in missing.json()


def test_unsatisfiable_artifact_range_is_a_json_416(
    client: httpx.Client, built: dict[str, object]
) -> None:
    [artifact] = built["artifacts"]  # type: ignore[misc]
    answer = client.get(artifact["url"], headers={"Range": "bytes=999999-"})
    assert answer.status_code == 416
    assert answer.headers["content-range"] == f"bytes */{artifact['size']}"
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["code"] == "range-not-satisfiable"


def test_modules_and_the_original_wasm_path(client: httpx.Client, built: dict[str, object]) -> None:
    modules = client.get("/api/modules").json()["modules"]
    c_files = next(m["files"] for m in modules if m["language"] == "c")
    entry = next(f for f in c_files if f["name"] == "math.wasm")
    assert {"name", "path", "size", "modified"} <= set(entry)
    assert client.get(entry["path"]).content[:4] == b"\0asm"
    legacy = client.get("/wasm/c/math.wasm")
    assert legacy.status_code == 200 and legacy.content[:4] == b"\0asm"
    assert client.get("/wasm/c/absent.wasm").status_code == 404


def test_modules_lists_web_root_files_the_server_did_not_build(
    client: httpx.Client, server: Server
) -> None:
    prebuilt = server.web / "wasm" / "wat" / "prebuilt.wasm"
    prebuilt.parent.mkdir(parents=True, exist_ok=True)
    prebuilt.write_bytes(b"\0asm\1\0\0\0")
    (prebuilt.parent / ".hidden.wasm").write_bytes(b"\0asm\1\0\0\0")
    modules = client.get("/api/modules").json()["modules"]
    wat_files = next(m["files"] for m in modules if m["language"] == "wat")
    entry = next(f for f in wat_files if f["name"] == "prebuilt.wasm")
    assert entry["path"] == "/wasm/wat/prebuilt.wasm" and entry["size"] == 8
    assert not any(f["name"] == ".hidden.wasm" for f in wat_files)
    assert client.get(entry["path"]).content == b"\0asm\1\0\0\0"


def test_modules_never_lists_a_symlink_leading_out_of_the_web_root(
    client: httpx.Client, server: Server
) -> None:
    outside = server.workdir / "secret.txt"
    outside.write_text("not for the web " * 100)
    folder = server.web / "wasm" / "c"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "evil.wasm").symlink_to(outside)
    (folder / "real.wasm").write_bytes(b"\0asm\1\0\0\0")
    (folder / "alias.wasm").symlink_to(folder / "real.wasm")  # inside the root: served
    modules = client.get("/api/modules").json()["modules"]
    c_files = {f["name"]: f for f in next(m["files"] for m in modules if m["language"] == "c")}
    assert "evil.wasm" not in c_files
    assert client.get("/wasm/c/evil.wasm").status_code == 404  # as the static files refuse it
    assert c_files["alias.wasm"]["size"] == 8
    assert client.get("/wasm/c/alias.wasm").content == b"\0asm\1\0\0\0"


def test_compile_inline_sources(client: httpx.Client) -> None:
    source = "int twice(int x) { return 2 * x; }\n"
    answer = client.post(
        "/api/compile",
        json={"language": "c", "target": "wasm", "files": {"twice.c": source}, "options": {}},
    )
    assert answer.status_code == 202, answer.text
    record = wait_for(client, answer.json()["buildId"])
    assert record["status"] == "completed" and record["project"] is None
    [artifact] = record["artifacts"]  # type: ignore[misc]
    assert client.get(artifact["url"]).content[:4] == b"\0asm"


def test_a_task_run_is_a_build_with_its_record_and_log(client: httpx.Client) -> None:
    answer = client.post("/api/tasks/greet", json={"params": {"who": "contract"}})
    assert answer.status_code == 202, answer.text
    queued = answer.json()
    assert queued["kind"] == "task" and queued["status"] == "queued"
    record = wait_for(client, queued["buildId"])
    assert record["status"] == "completed" and record["kind"] == "task", record
    logs = [
        entry["message"] for entry in client.get(f"/api/logs/{record['buildId']}").json()["logs"]
    ]
    assert "hello contract" in logs
    history = client.get("/api/status").json()["builds"]
    assert record["buildId"] in [b["buildId"] for b in history]


def test_compile_error_is_a_failed_build_with_diagnostics(client: httpx.Client) -> None:
    answer = client.post(
        "/api/compile", json={"language": "c", "files": {"bad.c": "int f( { return 1; }\n"}}
    )
    record = wait_for(client, answer.json()["buildId"])
    assert record["status"] == "failed" and record["error"]
    [first, *_] = record["diagnostics"]  # type: ignore[misc]
    assert first["file"] == "bad.c" and first["line"] == 1


def test_metrics_json(client: httpx.Client, built: dict[str, object]) -> None:
    body = client.get("/api/metrics").json()
    for key in (
        "requestCount",
        "avgRequestTime",
        "buildCount",
        "activeBuilds",
        "queuedBuilds",
        "cacheHits",
        "cacheMisses",
        "wsConnections",
    ):
        assert isinstance(body[key], int | float), key
    assert body["requestCount"] > 0 and body["buildCount"] >= 1
    assert body["memoryUsage"]["rss"] > 0


def test_prometheus_metrics(client: httpx.Client, server: Server, built: dict[str, object]) -> None:
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    names = ["pf_http_requests_total", "pf_http_request_duration_seconds_bucket"]
    names.append("pf_ws_connections")
    if not server.shared:
        # In shared mode builds and cache lookups are counted by the pf workers that run
        # them, and several API processes report no process_* series (docs/scale.md).
        names += ["pf_builds_total", "pf_queue_depth", "pf_cache_requests_total"]
        names.append("process_resident_memory_bytes")
    for name in names:
        assert name in text, name


def test_openapi_document_lists_every_api_path(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) >= {
        "/api/health",
        "/api/system",
        "/api/projects",
        "/api/modules",
        "/api/build/all",
        "/api/build/{language}",
        "/api/status",
        "/api/logs/{buildId}",
        "/api/compile",
        "/api/builds/{buildId}",
        "/api/builds/{buildId}/artifacts/{path}",
        "/api/metrics",
    }


@pytest.mark.parametrize("path", ["/api/nope", "/api", "/api/build", "/api/builds/x/y"])
def test_unknown_api_paths_are_json_404(client: httpx.Client, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/json"
    assert "error" in answer.json()


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/api/build/c", "POST"),
        ("POST", "/api/health", "GET, HEAD"),
        ("PUT", "/api/builds/some-id", "DELETE, GET, HEAD"),
        # Methods outside every route's list are 405s too, never the static files' 404.
        ("TRACE", "/api/health", "GET, HEAD"),
        ("PROPFIND", "/api/compile", "POST"),
    ],
)
def test_wrong_method_is_json_405_with_allow(
    client: httpx.Client, method: str, path: str, allow: str
) -> None:
    # As JSON: a state-changing request of another type is refused before routing (415).
    answer = client.request(method, path, headers={"Content-Type": "application/json"})
    assert answer.status_code == 405
    assert answer.headers["allow"] == allow
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {"error": "Method Not Allowed", "code": "method-not-allowed"}


def test_metrics_count_cache_hits_as_the_records_say(client: httpx.Client, server: Server) -> None:
    def counters() -> tuple[int, int, float, float]:
        body = client.get("/api/metrics").json()
        text = client.get("/metrics").text

        def sample(result: str) -> float:
            pattern = rf'^pf_cache_requests_total{{result="{result}"}} (\S+)$'
            found = re.search(pattern, text, re.MULTILINE)
            return float(found.group(1)) if found else 0.0

        return body["cacheHits"], body["cacheMisses"], sample("hit"), sample("miss")

    before = counters()
    files = unique_c("forty")

    async def submit() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=40)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as http:
            return await asyncio.gather(
                *(
                    http.post("/api/compile", json={"language": "c", "files": files})
                    for _ in range(40)
                )
            )

    answers = asyncio.run(submit())
    assert {a.status_code for a in answers} == {202}
    records = [wait_for(client, a.json()["buildId"]) for a in answers]
    assert {r["status"] for r in records} == {"completed"}
    hits = sum(1 for r in records if r["cached"])
    misses = len(records) - hits
    assert misses >= 1  # the first one, at least, ran the compiler
    after = counters()
    # In shared mode the pf workers look the cache up, so the API counts none itself.
    looked_up = [0, 0] if server.shared else [hits, misses]
    assert [a - b for a, b in zip(after, before, strict=True)] == [hits, misses, *looked_up]


def test_spa_fallback_is_only_for_non_api_paths(client: httpx.Client) -> None:
    page = client.get("/some/client/route")
    assert page.status_code == 200 and "pf demo" in page.text


def test_cors_is_same_origin_by_default(client: httpx.Client) -> None:
    answer = client.get("/api/health", headers={"Origin": "https://example.com"})
    assert "access-control-allow-origin" not in answer.headers
    preflight = client.options(
        "/api/build/c",
        headers={"Origin": "https://example.com", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-methods" not in preflight.headers


def test_keep_alive_reuses_one_connection(server: Server) -> None:
    with httpx.Client(base_url=server.url) as http:
        for _ in range(3):
            answer = http.get("/api/health")
            assert answer.headers.get("connection") != "close"
