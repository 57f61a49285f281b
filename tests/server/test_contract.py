"""Strict edges of the HTTP contract: strings that are not text, numbers JSON has not,
names past the file system's limits, artifact URLs, a second cancel and media types.
Each answer is a 4xx JSON error naming the problem (or the documented success), never
a 5xx, and nothing refused is stored: on one embedded server, then on the shared
deployment (2 API processes, 2 pf workers)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.server.conftest import MODES, Server, server_in_mode, unique_c, wait_for

CLANG = "/usr/bin/clang-14"
WAT = (
    '(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))\n'
)


@pytest.fixture(scope="module", params=MODES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    yield from server_in_mode(request, tmp_path_factory)


def _post(client: httpx.Client, path: str, raw: str) -> httpx.Response:
    return client.post(path, content=raw.encode(), headers={"Content-Type": "application/json"})


def _error(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert set(body) <= {"error", "code", "hint", "diagnostics"}
    return str(body["error"])


# Raw JSON text: the escapes reach the server as written (a JSON encoder would refuse).
LONE = "\\ud800"


@pytest.mark.parametrize(
    ("path", "raw", "named"),
    [
        ("/api/compile", f'{{"language":"c","files":{{"a{LONE}.c":"int x;"}}}}', "files"),
        ("/api/compile", f'{{"language":"c","files":{{"a.c":"/* {LONE} */"}}}}', "file 'a.c'"),
        ("/api/compile", f'{{"language":"c{LONE}","files":{{"a.c":""}}}}', "field 'language'"),
        ("/api/compile", f'{{"language":"c","files":{{"a.c":""}},"{LONE}":1}}', "request body"),
        (
            "/api/compile",
            '{"language":"c","files":{"a.c":""},"options":{"passes":"\\udfff"}}',
            "option 'passes'",
        ),
        ("/api/build/c", f'{{"project":"{LONE}"}}', "field 'project'"),
        ("/api/build/c", f'{{"opt_level":"{LONE}"}}', "field 'opt_level'"),
        ("/api/build/c", f'{{"exports":["add","{LONE}"]}}', "field 'exports.1'"),
        ("/api/build/all", f'{{"target":"wasm{LONE}"}}', "field 'target'"),
        ("/api/tasks/hello", f'{{"params":{{"who":"{LONE}"}}}}', "parameter 'who'"),
        ("/api/tasks/hello", f'{{"params":{{"{LONE}":"x"}}}}', "field 'params'"),
    ],
)
def test_a_lone_surrogate_anywhere_is_400_naming_the_field(
    client: httpx.Client, path: str, raw: str, named: str
) -> None:
    before = client.get("/api/metrics").json()["buildCount"]
    message = _error(_post(client, path, raw), 400)
    assert named in message and "surrogate" in message, message
    assert client.get("/api/metrics").json()["buildCount"] == before


def test_a_surrogate_pair_is_text_and_compiles(client: httpx.Client) -> None:
    raw = '{"language":"wat","files":{"smile-\\ud83d\\ude00.wat":' + _json_string(WAT) + "}}"
    answer = _post(client, "/api/compile", raw)
    assert answer.status_code == 202, answer.text
    record = wait_for(client, answer.json()["buildId"])
    assert record["status"] == "completed", record


def _json_string(text: str) -> str:
    return json.dumps(text)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])
def test_numbers_json_does_not_have_are_400(client: httpx.Client, number: str) -> None:
    _error(_post(client, "/api/build/c", f'{{"opt_level": {number}}}'), 400)
    _error(_post(client, "/api/tasks/hello", f'{{"params": {{"x": {number}}}}}'), 400)


LONG = "a" * 300


@pytest.mark.parametrize(
    "name", [f"{LONG}.c", f"src/{LONG}.c", f"{'b' * 255}/{LONG}.c", ".c/" + "x/" * 10 + LONG]
)
def test_a_file_name_part_past_255_is_400(client: httpx.Client, name: str) -> None:
    answer = client.post("/api/compile", json={"language": "c", "files": {name: "int x;"}})
    message = _error(answer, 400)
    assert "Invalid source file name" in message and "the limit is 255" in message


def test_over_long_names_and_ids_are_4xx_never_5xx(client: httpx.Client) -> None:
    assert "'project'" in _error(client.post("/api/build/c", json={"project": LONG}), 400)
    huge = "x" * 8000
    for answer in (
        client.post(f"/api/tasks/{huge}", json={}),
        client.get(f"/api/builds/{huge}"),
        client.delete(f"/api/builds/{huge}"),
        client.get(f"/api/logs/{huge}"),
        # Within PF_MAX_HEADER_SIZE (16 KiB with the request line): a longer one is 431.
        client.get(f"/api/builds/{huge}/artifacts/{huge[:3000]}/{huge[:3000]}.wasm"),
        client.get("/api/status", params={"buildId": huge}),
        client.get("/api/builds/%ED%A0%80"),  # a surrogate's UTF-8 bytes, percent-encoded
        client.get("/api/builds/%ff%fe/artifacts/%ff"),
    ):
        _error(answer, 404)
    for params in ({"limit": "9" * 5000}, {"limit": "-1"}, {"language": huge}):
        _error(client.get("/api/status", params=params), 400)


def test_artifact_urls_are_percent_encoded_and_served_back(client: httpx.Client) -> None:
    name = "my mod#1?50%é.wat"
    answer = client.post("/api/compile", json={"language": "wat", "files": {name: WAT}})
    assert answer.status_code == 202, answer.text
    record = wait_for(client, answer.json()["buildId"])
    assert record["status"] == "completed", record
    [artifact] = [a for a in record["artifacts"] if a["path"].endswith(".wasm")]
    url = artifact["url"]
    assert url.isascii() and " " not in url and "#" not in url and "?" not in url
    assert url.endswith("/my%20mod%231%3F50%25%C3%A9.wasm"), url
    served = client.get(url)
    assert served.status_code == 200
    assert served.headers["content-type"] == "application/wasm"
    assert served.content.startswith(b"\0asm")
    assert served.headers["etag"].strip('"') == artifact["digest"]


def test_media_types_are_the_documented_ones(client: httpx.Client) -> None:
    for answer in (
        client.get("/api/nope"),
        client.post("/api/health"),
        client.post("/api/build/c", content=b"{bad"),
        client.get("/api/builds/nope"),
    ):
        # A POST without a JSON body is 415 before its path is looked at.
        assert answer.status_code in {400, 404, 405, 415}
        assert answer.headers["content-type"] == "application/json"
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert client.get("/api/health").headers["content-type"] == "application/json"


def test_cancelling_twice_is_409_the_second_time(held_server: Server) -> None:
    with httpx.Client(base_url=held_server.url, timeout=30) as http:

        def compile_c(tag: str) -> str:
            answer = http.post("/api/compile", json={"language": "c", "files": unique_c(tag)})
            return str(answer.json()["buildId"])

        running = compile_c("running")
        wait_for(http, running, until=("running",))
        queued = compile_c("queued")
        first = http.delete(f"/api/builds/{queued}")
        assert first.status_code == 200 and first.json()["status"] == "cancelled"
        second = http.delete(f"/api/builds/{queued}")
        assert second.status_code == 409
        assert second.json()["code"] == "conflict"
        assert http.get(f"/api/builds/{queued}").json()["status"] == "cancelled"

        assert http.delete(f"/api/builds/{running}").status_code == 200
        # At once, while its process group is being killed, and after it has ended.
        assert http.delete(f"/api/builds/{running}").status_code == 409
        wait_for(http, running)
        assert http.get(f"/api/builds/{running}").json()["status"] == "cancelled"
        assert http.delete(f"/api/builds/{running}").status_code == 409


def test_a_multibyte_name_past_255_bytes_is_400(client: httpx.Client) -> None:
    name = "\u20ac" * 100 + ".c"  # 102 characters, 302 bytes in UTF-8
    answer = client.post("/api/compile", json={"language": "c", "files": {name: "int x;"}})
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/json"
    assert "302 bytes long in UTF-8; the limit is 255" in answer.json()["error"]


@pytest.mark.parametrize("body", ["\n", "  \t "])
def test_a_blank_body_is_400_as_express_has_it(client: httpx.Client, body: str) -> None:
    # No bytes at all read as {} (test_validation); blank space is not JSON.
    before = len(client.get("/api/status").json()["builds"])
    assert "invalid JSON body" in _error(_post(client, "/api/build/all", body), 400)
    assert len(client.get("/api/status").json()["builds"]) == before
