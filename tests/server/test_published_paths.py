"""Where pf serve publishes project builds (the original's layout), against a real server.

Every language and target is published at ``/<target>/<source folder>/<file>``, the
folder being the project directory that holds the sources (not the language's name),
and the bytes are the content-addressed build's; a cached rebuild publishes the same
file. Source folders with hostile names (URL syntax, dot segments, flags, newlines)
are listed with paths that load, and never reach outside the published file. When two
projects would publish the same path, the default project's file keeps it; within one
project the later build does.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.server.conftest import DEMOS, Server, wait_for

ORIGINAL = "pf-web-polyglot-demo-plus-c"
BUILD_TIMEOUT = 120.0
# Each language of the bundled demo, moved to a folder not named after it.
FOLDERS = {"rust": "rs", "c": "csrc", "fortran": "f/src", "wat": "text"}
HOSTILE = [
    "a b",
    "q?x",
    "h#x",
    "%2e%2e",
    "%2e%2e%2f%2e%2e",
    "ü",
    "<i>",
    'q"t',
    "semi;colon+amp&",
]
# Folders the source name rule refuses (a tool would read the first as an option).
REFUSED = {
    "-rf": "'-rf' starts with '-'",
    "nl\nx": "control character",
    "back\\slash": "backslash",
}


def wat(answer: int) -> str:
    return f'(module (func (export "answer") (result i32) i32.const {answer}))\n'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("published")
    projects = work / "projects"
    for language, folder in FOLDERS.items():
        shutil.copytree(DEMOS / "polyglot" / language, projects / "layout" / folder)
    for index, folder in enumerate(HOSTILE):
        (projects / f"hostile{index}" / folder).mkdir(parents=True)
        (projects / f"hostile{index}" / folder / f"m{index}.wat").write_text(wat(index))
    for index, folder in enumerate(REFUSED):
        (projects / f"refused{index}" / folder).mkdir(parents=True)
        (projects / f"refused{index}" / folder / "m.wat").write_text(wat(0))
    # The same published path from two projects, one of them the default.
    for project, answer in ((ORIGINAL, 1), ("other", 2)):
        (projects / project / "w").mkdir(parents=True)
        (projects / project / "w" / "same.wat").write_text(wat(answer))
    # Two languages of one project whose sources share a folder and a stem.
    (projects / "twolang" / "src").mkdir(parents=True)
    (projects / "twolang" / "src" / "m.wat").write_text(wat(3))
    (projects / "twolang" / "src" / "m.c").write_text("int answer(void) { return 4; }\n")
    running = Server(work).start()
    yield running
    running.stop()


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def build(http: httpx.Client, project: str, language: str, target: str) -> dict[str, object]:
    answer = http.post(f"/api/build/{language}", json={"target": target, "project": project})
    assert answer.status_code == 200, answer.text
    record = wait_for(http, answer.json()["buildId"], BUILD_TIMEOUT)
    assert record["status"] == "completed", record
    return record


def listed(http: httpx.Client) -> dict[str, dict[str, object]]:
    """Every file /api/modules lists, by the build artifact it came from (or its path)."""
    files = [f for group in http.get("/api/modules").json()["modules"] for f in group["files"]]
    return {str(f.get("artifact", f["path"])): f for f in files}


@pytest.mark.parametrize("target", ["wasm", "asm", "llvm"])
def test_every_language_is_published_under_its_source_folder(
    http: httpx.Client, target: str
) -> None:
    for language, folder in FOLDERS.items():
        record = build(http, "layout", language, target)
        top = folder.split("/")[0]
        files = listed(http)
        for artifact in record["artifacts"]:  # type: ignore[attr-defined]
            url = artifact["url"]
            entry = files[url]
            assert entry["path"] == f"/{target}/{top}/{artifact['path']}", entry
            assert entry["project"] == "layout" and entry["sourceLanguage"] == language
            published = http.get(str(entry["path"]))
            assert published.status_code == 200, (language, target, entry)
            assert published.content == http.get(url).content
            assert entry["size"] == len(published.content)
        # The language's name is not a folder of this project: nothing is invented there.
        name = record["artifacts"][0]["path"]  # type: ignore[index]
        assert http.get(f"/{target}/{language}/{name}").status_code == 404


def test_a_cached_rebuild_publishes_the_same_bytes(http: httpx.Client) -> None:
    first = build(http, "layout", "wat", "wasm")
    again = build(http, "layout", "wat", "wasm")
    assert again["cached"] is True
    digests = [[a["digest"] for a in r["artifacts"]] for r in (first, again)]  # type: ignore[attr-defined]
    assert digests[0] == digests[1]
    entry = listed(http)[f"/api/builds/{again['buildId']}/artifacts/add.wasm"]
    assert entry["buildId"] == again["buildId"]
    assert http.get("/wasm/text/add.wasm").content[:4] == b"\0asm"


def test_hostile_source_folders_are_listed_with_paths_that_load(
    http: httpx.Client, server: Server
) -> None:
    records = [build(http, f"hostile{i}", "wat", "wasm") for i in range(len(HOSTILE))]
    files = listed(http)
    for index, (folder, record) in enumerate(zip(HOSTILE, records, strict=True)):
        entry = files[f"/api/builds/{record['buildId']}/artifacts/m{index}.wasm"]
        # As a page would use it: the path as given, in a URL.
        loaded = http.get(f"{server.url}{entry['path']}")
        assert loaded.status_code == 200, (folder, entry["path"])
        assert loaded.content == http.get(str(entry["artifact"])).content
    for index, why in enumerate(REFUSED.values()):
        refused = http.post("/api/build/wat", json={"project": f"refused{index}"})
        assert refused.status_code == 400 and why in refused.json()["error"]
    # Sent raw (no client normalises it): a dot-segment folder reaches no other file.
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"GET /wasm/%2e%2e/%2e%2e/server.log HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        head = sock.recv(65536)
    assert head.split(b" ")[1] in {b"400", b"404"}, head[:200]


def test_the_default_project_keeps_a_path_another_project_would_publish(
    http: httpx.Client,
) -> None:
    mine = build(http, ORIGINAL, "wat", "wasm")
    other = build(http, "other", "wat", "wasm")
    ours = http.get("/wasm/w/same.wasm").content
    assert ours == http.get(f"/api/builds/{mine['buildId']}/artifacts/same.wasm").content
    theirs = http.get(f"/api/builds/{other['buildId']}/artifacts/same.wasm").content
    assert theirs != ours  # still built and fetchable by its build's URL
    entry = listed(http)[f"/api/builds/{mine['buildId']}/artifacts/same.wasm"]
    assert entry["project"] == ORIGINAL and entry["path"] == "/wasm/w/same.wasm"
    # A later build of the default project takes the path again, as ever.
    again = build(http, ORIGINAL, "wat", "wasm")
    assert listed(http)[f"/api/builds/{again['buildId']}/artifacts/same.wasm"]["project"] == (
        ORIGINAL
    )


def test_two_languages_sharing_a_folder_and_stem_publish_the_later_build(
    http: httpx.Client,
) -> None:
    for language in ("wat", "c", "wat"):
        record = build(http, "twolang", language, "wasm")
        latest = http.get(f"/api/builds/{record['buildId']}/artifacts/m.wasm").content
        assert http.get("/wasm/src/m.wasm").content == latest, language
