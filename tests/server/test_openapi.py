"""Schemathesis fuzzes /openapi.json against a real server: no 5xx, every answer matches."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pf.server.openapi import DOCUMENT
from tests.server.conftest import Server

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # Fuzzed submissions become real builds; one worker and a short grace keep them cheap.
    server = Server(
        tmp_path_factory.mktemp("fuzz"), env={"PF_JOBS": "1", "PF_SHUTDOWN_GRACE": "1"}
    ).start()
    yield server
    server.stop()


# The document pf serves, loaded in-process: schemathesis' fixture-based (lazy) loader
# does not run under pytest 9. test_served_document_is_this_one ties the two together.
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_served_document_is_this_one(fuzzed: Server) -> None:
    assert httpx.get(f"{fuzzed.url}/openapi.json").json() == DOCUMENT


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case: schemathesis.Case, fuzzed: Server) -> None:
    case.call_and_validate(base_url=fuzzed.url, checks=CHECKS, timeout=30)
