"""The served OpenAPI document is the contract: schemathesis, as a user runs it, finds
nothing against a real server; and the document's bodies are the validators' own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pf.server import schemas
from pf.server.openapi import DOCUMENT
from tests.pg import PgCluster
from tests.redisd import RedisServer
from tests.server.conftest import Server, Worker

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")

# Every check and every phase (examples, coverage, fuzzing with positive and negative
# data, stateful along the document's links), bounded and seeded so a run is the same
# run on every machine. Two checks do not apply, each for a stated reason; submissions
# may answer 400 to a schema-valid body for what only a driver knows.
CONFIG = """
seed = 20261206
workers = 2
request-timeout = 30
max-failures = 40

# Response times are the benchmark's to measure, not the contract's: "all" checks would
# fail a response slower than 10 s, and on a loaded test machine a profile's answer (its
# window, then its rendering) once took 13 s. The request timeout alone bounds them.
[checks]
max_response_time = 30

[generation]
deterministic = true
max-examples = 30
database = "none"

[[operations]]
include-operation-id = ["buildAll", "buildLanguage", "compile", "runTask"]
# A driver refuses what it cannot honour (parallel without OpenMP, passes outside target
# llvm), and the toolchains own the file name rule: 400 naming the option or file.
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "404", "409", "429", "503"]

[[operations]]
include-operation-id = ["getProfile", "getMemory"]
# A profile longer than PF_PROFILE_MAX_SECONDS is 400 (a setting, so not in the schema),
# one while another runs 409; memory is 409 until tracing is started.
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "409"]
"""

CPYTHON_AST_BUG = "SystemError: AST constructor recursion depth mismatch"

# DELETE /api/builds/{id} cancels a build; its record stays readable (docs/server.md), so a
# cancelled build that still answers GET is the contract, not a stale resource.
EXCLUDED_CHECKS = ("use_after_free",)


@pytest.fixture(scope="module", params=["open", "token", "shared"])
def fuzzed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, list[str]]]:
    """A server in open mode (loopback, no token), one that needs a token (with the
    schemathesis arguments that authenticate as an admin), or one in shared mode: on
    PostgreSQL and Redis, its builds run by a pf worker."""
    # Fuzzed submissions become real builds; one worker and a short grace keep them cheap.
    # Without the rate limit: past its burst every submission would be a 429, and the
    # logic behind them would go unfuzzed (the 429 itself is tested on its own).
    # Profiles of at most a fifth of a second: each fuzzed one holds a request that long.
    env = {
        "PF_JOBS": "1",
        "PF_SHUTDOWN_GRACE": "1",
        "PF_RATE_LIMIT": "0",
        "PF_PROFILE_MAX_SECONDS": "0.2",
    }
    if request.param == "shared":
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        redis: RedisServer = request.getfixturevalue("redis_server")
        if redis.process is None:
            redis.start()
        database = cluster.create_database(f"pf_fuzz_{os.getpid()}")
        env |= {"PF_DATABASE_URL": database, "PF_REDIS_URL": redis.url(1)}
    server = Server(tmp_path_factory.mktemp("fuzz"), env=env)
    extra: list[str] = []
    worker: Worker | None = None
    if request.param == "token":
        token = subprocess.run(
            [sys.executable, "-m", "pf", "token", "create", "fuzz", "--scope", "admin"],
            cwd=server.workdir,
            env=server.env(),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        extra = ["--header", f"Authorization: Bearer {token}"]
    else:
        # Every operation answers without credentials by design: there is no
        # authentication for this check to find ignored.
        extra = ["--exclude-checks", ",".join([*EXCLUDED_CHECKS, "ignored_auth"])]
    server.start()
    if request.param == "shared":
        worker = Worker(server.workdir / "worker", server.projects, env).start()
    yield server, extra
    if worker is not None:
        worker.stop()
    server.stop()


def test_served_document_is_this_one(fuzzed: tuple[Server, list[str]]) -> None:
    answer = httpx.get(f"{fuzzed[0].url}/openapi.json")
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == DOCUMENT


def test_request_bodies_are_the_validated_schemas() -> None:
    published = DOCUMENT["components"]["schemas"]
    for name, schema in schemas.REQUESTS.items():
        assert published[name] is schema
    for path in DOCUMENT["paths"].values():
        for operation in path.values():
            body = operation.get("requestBody")
            if body is not None:
                target = body["content"]["application/json"]["schema"]["$ref"]
                assert target.rsplit("/", 1)[1] in schemas.REQUESTS


def test_every_operation_is_described_with_its_scope_and_errors() -> None:
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            codes = set(operation["responses"])
            assert {"400", "431"} <= codes, (method, path)
            assert "Scope:" in operation["description"] or operation.get("security") == [{}]
            if "Scope:" in operation["description"]:
                assert {"401", "403"} <= codes, (method, path)
            if "requestBody" in operation:
                assert "415" in codes, (method, path)


def test_schemathesis_finds_nothing(fuzzed: tuple[Server, list[str]], tmp_path: Path) -> None:
    server, extra = fuzzed
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    if "--exclude-checks" not in extra:
        extra = [*extra, "--exclude-checks", ",".join(EXCLUDED_CHECKS)]
    argv = [str(SCHEMATHESIS), "--config-file", str(config), "run", f"{server.url}/openapi.json"]
    argv += ["--checks", "all", *extra]
    for _ in range(2):
        run = subprocess.run(
            argv, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
        )
        report = run.stdout + run.stderr
        # Debian's Python 3.11.2 now and then fails to parse Hypothesis's own source while
        # schemathesis draws a case (CPython gh-106905): the fuzzer crashed, pf was not
        # judged. That one interpreter error, and only it, earns a second run.
        if CPYTHON_AST_BUG not in report or "Failures:" in report:
            break
    assert run.returncode == 0, report
    assert "Stateful" in report and "Coverage" in report, report
