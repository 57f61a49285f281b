"""A real ``pf serve`` refuses bad source names with 400 naming the rule, before any compile."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import Server, wait_for

SOURCE = "int add(int a, int b) { return a + b; }\n"


def _post_raw(client: httpx.Client, body: str) -> httpx.Response:
    # Raw JSON text, so a name can hold what json.dumps would not send (a lone surrogate).
    return client.post(
        "/api/compile", content=body.encode(), headers={"content-type": "application/json"}
    )


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("@x.c", "starts with '@'"),
        ("-MFx.c", "starts with '-'"),
        ("--emit=x", "starts with '-'"),
        ("a/../b.c", "'..' path segment"),
        ("/abs.c", "absolute"),
        ("a\\b.c", "backslash"),
        ("a\u0001.c", "control character"),
        ("cafe\u0301.c", "not in Unicode NFC"),
        ("obj/x.c", "obj/ is where pf writes"),
        ("x" * 254 + ".c", "256 bytes long"),
    ],
)
def test_a_bad_name_is_400_naming_the_rule(client: httpx.Client, name: str, rule: str) -> None:
    answer = client.post("/api/compile", json={"language": "c", "files": {name: SOURCE}})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert rule in error and "Invalid source file name" in error
    assert "Traceback" not in answer.text


def test_a_lone_surrogate_in_a_name_is_400_not_a_crash(client: httpx.Client) -> None:
    body = '{"language": "c", "files": {"a\\ud800.c": ' + json.dumps(SOURCE) + "}}"
    answer = _post_raw(client, body)
    assert answer.status_code == 400, answer.text
    assert "lone surrogate" in answer.json()["error"]


def test_a_refused_name_leaves_no_trace(server: Server, client: httpx.Client) -> None:
    name = "-MF" + str(server.workdir / "written-by-attack")
    answer = client.post("/api/compile", json={"language": "c", "files": {name: SOURCE}})
    assert answer.status_code == 400
    assert not (server.workdir / "written-by-attack").exists()
    assert not Path(name).exists()


def test_a_symbol_named_like_a_linker_flag_is_a_compile_error(
    server: Server, client: httpx.Client, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"s3cr3t-bytes-never-shown\n")
    marker = tmp_path / "marker.tar"
    source = (
        f'int f(void) __asm__("x -Wl,--reproduce={marker} @{secret}");\n'
        "int f(void) { return 1; }\n"
    )
    answer = client.post("/api/compile", json={"language": "c", "files": {"a.c": source}})
    assert answer.status_code == 202, answer.text
    record = wait_for(client, answer.json()["buildId"])
    assert record["status"] == "failed"
    assert "cannot export" in str(record["error"]), record
    assert not marker.exists()
    logs = client.get(f"/api/logs/{record['buildId']}")
    assert logs.status_code == 200
    assert "s3cr3t" not in json.dumps(record) and "s3cr3t" not in logs.text
    # Nor in the server's log, its database, its cache or anything else it wrote.
    for path in server.workdir.rglob("*"):
        if path.is_file():
            assert b"s3cr3t" not in path.read_bytes(), path
