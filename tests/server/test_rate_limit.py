"""Submissions are rate-limited per client: a burst, then 429 with Retry-After; reads are not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pf.server.ratelimit import Buckets, client_key
from tests.server.conftest import Server, unique_c

# One token a minute: nothing refills while a test runs, however slow the machine.
LIMITED = {"PF_RATE_LIMIT": "1", "PF_RATE_BURST": "3", "PF_JOBS": "1"}


def _client(server: Server, address: str) -> httpx.Client:
    """A client whose connections come from ``address`` (any 127.x.y.z is loopback)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=server.url, transport=transport, timeout=30)


def _compile(http: httpx.Client) -> httpx.Response:
    return http.post(
        "/api/compile", json={"language": "c", "target": "llvm", "files": unique_c("rate")}
    )


@pytest.fixture
def limited(make_server: type[Server], tmp_path: Path) -> Iterator[Server]:
    yield make_server(tmp_path / "work", env=LIMITED).start()


def test_a_burst_then_429_with_retry_after(limited: Server) -> None:
    with _client(limited, "127.0.0.1") as http:
        answers = [
            http.post("/api/build/wat", json={"target": "wasm"}),
            _compile(http),
            http.post("/api/build/all", json={"target": "wasm"}),
        ]
        assert [a.is_success for a in answers] == [True, True, True]
        for over in (
            _compile(http),
            http.post("/api/build/c", json={"target": "wasm"}),
            http.post("/api/tasks/anything", json={}),
        ):
            assert over.status_code == 429
            assert over.headers["content-type"] == "application/json"
            assert over.json()["code"] == "rate-limited"
            assert over.json()["error"]
            retry_after = over.headers["retry-after"]
            assert retry_after.isdigit() and int(retry_after) >= 1
        # Only submissions are limited: reads still answer.
        assert http.get("/api/status").status_code == 200
        assert http.get(f"/api/builds/{answers[0].json()['buildId']}").status_code == 200


def test_two_clients_are_limited_separately(limited: Server) -> None:
    with _client(limited, "127.0.0.1") as first, _client(limited, "127.0.0.2") as second:
        assert [_compile(first).status_code for _ in range(4)] == [202, 202, 202, 429]
        assert [_compile(second).status_code for _ in range(4)] == [202, 202, 202, 429]
        assert _compile(first).status_code == 429


def test_zero_turns_the_limit_off(make_server: type[Server], tmp_path: Path) -> None:
    server = make_server(
        tmp_path / "work", env={"PF_RATE_LIMIT": "0", "PF_RATE_BURST": "1"}
    ).start()
    with _client(server, "127.0.0.1") as http:
        codes = [http.post("/api/build/wat", json={"target": "wasm"}).status_code for _ in range(6)]
    assert codes == [200] * 6


def test_a_flood_of_addresses_does_not_grow_the_buckets() -> None:
    buckets = Buckets(per_minute=60, burst=5, max_clients=1000)
    for n in range(50_000):
        buckets.take(f"addr:10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", now=0.0)
    assert len(buckets) <= 1000
    # A remembered client keeps its empty bucket; a bucket that refilled is forgotten.
    for _ in range(5):
        assert buckets.take("addr:attacker", now=1.0) == 0
    assert buckets.take("addr:attacker", now=1.0) > 0
    buckets.take("addr:other", now=100.0)
    assert len(buckets) == 1


def test_the_client_key() -> None:
    assert client_key({"pf.client": "token:ci", "client": ("127.0.0.1", 1)}) == "token:ci"
    assert client_key({"client": ("127.0.0.2", 1)}) == "addr:127.0.0.2"
    # A host holds a whole /64: its addresses are one client.
    one = client_key({"client": ("2001:db8::1", 1)})
    assert one == client_key({"client": ("2001:db8::ffff:1", 1)}) == "addr:2001:db8::/64"
    assert client_key({}) == "addr:unknown"
