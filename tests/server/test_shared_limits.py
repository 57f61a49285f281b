"""The abuse limits hold in shared mode, over a real private PostgreSQL and Redis: a
client's submissions to two API processes (pf serve --workers 2) draw from one rate
bucket and one share of the job queue, a Redis outage falls back to each process's own
buckets (never a 500), and pf worker processes take builds round-robin across clients."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.redisd import RedisServer
from tests.server.conftest import Server, Worker, unique_c, wait_for

# Submissions a test sends at most while waiting for the kernel to spread its
# connections over both API processes.
MAX_TRIES = 200
DEADLINE = 30.0


@pytest.fixture
def shared(pg_url: str, redis_url: str) -> dict[str, str]:
    return {"PF_DATABASE_URL": pg_url, "PF_REDIS_URL": redis_url}


def _submit_on_new_connection(url: str, address: str, tag: str) -> tuple[int, httpx.Response]:
    """A compile from ``address`` on a connection of its own, and the pid of the API
    process that answered it (asked first on the same connection)."""
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(base_url=url, transport=transport, timeout=30) as http:
        pid = int(http.get("/api/system").json()["pid"])
        answer = http.post(
            "/api/compile", json={"language": "c", "target": "llvm", "files": unique_c(tag)}
        )
    return pid, answer


def _refused_as(answers: list[httpx.Response], code: str) -> None:
    """Every answer that is not a success is a 429 with ``code`` and a Retry-After."""
    refused = [a for a in answers if not a.is_success]
    assert {a.status_code for a in refused} == {429}
    assert {a.json()["code"] for a in refused} == {code}
    assert all(int(a.headers["retry-after"]) >= 1 for a in refused)


def _flood(
    url: str, address: str, each: int, settle: Callable[[int], None] = lambda accepted: None
) -> tuple[Counter[int], list[httpx.Response]]:
    """Submissions until each of two API processes has answered ``each`` of them;
    ``settle(accepted)`` runs after each."""
    by_pid: Counter[int] = Counter()
    answers = []
    while len(by_pid) < 2 or min(by_pid.values()) < each:
        assert len(answers) < MAX_TRIES, f"the submissions reached only {dict(by_pid)}"
        pid, answer = _submit_on_new_connection(url, address, "flood")
        by_pid[pid] += 1
        answers.append(answer)
        settle(sum(a.is_success for a in answers))
    return by_pid, answers


def _waiting_in_queue(pg_url: str, count: int) -> None:
    """Wait until ``count`` builds wait in the job queue: an API process queues a build
    a few milliseconds after it answers, and what is on its way is not counted yet."""
    deadline = time.monotonic() + DEADLINE
    while True:
        with psycopg.connect(pg_url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'"
            ).fetchone()
        assert row is not None
        if row[0] >= count:
            return
        assert time.monotonic() < deadline, f"{row[0]} builds in the queue, not {count}"
        time.sleep(0.02)


def test_one_rate_limit_over_two_api_processes(
    make_server: type[Server], tmp_path: Path, shared: dict[str, str]
) -> None:
    # One token a minute: nothing refills while the test runs. Alone, each process
    # would let a burst of 3 through: 6 in all.
    server = make_server(
        tmp_path,
        env={**shared, "PF_RATE_LIMIT": "1", "PF_RATE_BURST": "3"},
        args=("--workers", "2"),
    ).start()
    by_pid, answers = _flood(server.url, "127.0.0.1", 3)
    accepted = [a for a in answers if a.is_success]
    assert len(accepted) == 3, (dict(by_pid), [a.status_code for a in answers])
    _refused_as(answers, "rate-limited")
    # Another client has a bucket of its own.
    _, other = _submit_on_new_connection(server.url, "127.0.0.2", "other")
    assert other.is_success, other.text


def test_without_redis_each_process_limits_alone_and_never_fails(
    make_server: type[Server], tmp_path: Path, shared: dict[str, str], redis_server: RedisServer
) -> None:
    server = make_server(
        tmp_path, env={**shared, "PF_RATE_LIMIT": "1", "PF_RATE_BURST": "2"}
    ).start()
    statuses = [_submit_on_new_connection(server.url, "127.0.0.1", "up")[1] for _ in range(3)]
    assert [a.status_code for a in statuses] == [202, 202, 429]

    redis_server.stop()
    try:
        # The process's own bucket, full: a burst again, then 429, never a 500.
        down = [_submit_on_new_connection(server.url, "127.0.0.1", "down")[1] for _ in range(4)]
        assert [a.status_code for a in down] == [202, 202, 429, 429], [a.text for a in down]
        warnings = [
            line
            for line in server.log_lines()
            if "counts in this process only" in str(line.get("message"))
        ]
        assert len(warnings) == 1, warnings
        assert warnings[0]["level"] == "warning"
    finally:
        redis_server.start()
    # Redis is back (empty): the bucket is Redis's again, once the process tries it (it
    # waits a second after a failure): a deadline, not a count of tries, which a fast
    # machine spends inside that second.
    deadline = time.monotonic() + DEADLINE
    while not any(
        "counts in Redis again" in str(line.get("message")) for line in server.log_lines()
    ):
        assert time.monotonic() < deadline, "the rate limit never went back to Redis"
        answer = _submit_on_new_connection(server.url, "127.0.0.1", "back")[1]
        assert answer.status_code in (202, 429), answer.text


def test_a_clients_share_of_the_shared_queue_counts_over_two_api_processes(
    make_server: type[Server], tmp_path: Path, shared: dict[str, str], pg_url: str
) -> None:
    # No pf worker: every accepted build stays waiting. A share is max(16 / 4, 2 x 1) = 4.
    server = make_server(
        tmp_path,
        env={**shared, "PF_RATE_LIMIT": "0", "PF_MAX_QUEUE": "16", "PF_JOBS": "1"},
        args=("--workers", "2"),
    ).start()
    by_pid, answers = _flood(
        server.url, "127.0.0.1", 4, lambda accepted: _waiting_in_queue(pg_url, accepted)
    )
    assert sum(a.is_success for a in answers) == 4, (
        dict(by_pid),
        [a.status_code for a in answers],
    )
    _refused_as(answers, "queue-share-full")
    # The flood holds its share, not the queue: another client still gets in.
    _, other = _submit_on_new_connection(server.url, "127.0.0.2", "other")
    assert other.is_success, other.text
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get("/api/ready").json()["queue"]["queued"] == 5


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


def test_workers_take_builds_round_robin_across_clients(
    make_server: type[Server], tmp_path: Path, shared: dict[str, str], workers: list[Worker]
) -> None:
    server = make_server(tmp_path / "api", env={**shared, "PF_RATE_LIMIT": "0"}).start()
    flood = 8
    with (
        httpx.Client(
            base_url=server.url,
            transport=httpx.HTTPTransport(local_address="127.0.0.1"),
            timeout=30,
        ) as a,
        httpx.Client(
            base_url=server.url,
            transport=httpx.HTTPTransport(local_address="127.0.0.2"),
            timeout=30,
        ) as b,
    ):
        # No worker yet: A's flood is all waiting when B submits its one build.
        a_ids = [
            a.post("/api/compile", json={"language": "c", "files": unique_c(f"a{i}")}).json()[
                "buildId"
            ]
            for i in range(flood)
        ]
        b_id = b.post("/api/compile", json={"language": "c", "files": unique_c("b")}).json()[
            "buildId"
        ]
        workers.append(Worker(tmp_path / "worker", server.projects, shared).start(concurrency=1))
        records = {i: wait_for(a, i, timeout=120) for i in [*a_ids, b_id]}
    assert {r["status"] for r in records.values()} == {"completed"}, records
    started = {i: datetime.fromisoformat(str(r["startTime"])) for i, r in records.items()}
    order = sorted(started, key=started.__getitem__)
    # One build at a time: B's build waits for at most A's first, not for all eight.
    assert order.index(b_id) <= 1, order
    # A's builds keep their order among themselves.
    assert [i for i in order if i != b_id] == a_ids
