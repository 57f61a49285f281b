"""pf serve and pf token on a real PostgreSQL, which is stopped under a running server:
503 with Retry-After (never 500), /api/ready says so, accepted builds are kept, and all
recovers when PostgreSQL is back, without restarting pf."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.pg import PgCluster
from tests.server.conftest import Server, unique_c, wait_for, wait_ready

DEADLINE = 60.0


@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    """A PostgreSQL of this test's own: it is stopped and started again under pf."""
    own = PgCluster()
    own.start()
    yield own
    own.destroy()


def _stored(url: str, build_id: str) -> tuple[str, int] | None:
    """A build's status and how many log lines PostgreSQL holds for it."""
    with psycopg.connect(url) as conn:
        found = conn.execute("SELECT status FROM builds WHERE id = %s", (build_id,)).fetchone()
        lines = conn.execute("SELECT count(*) FROM logs WHERE build_id = %s", (build_id,))
        count = lines.fetchone()
    return None if found is None else (str(found[0]), int(count[0]) if count else 0)


def _compile(http: httpx.Client, tag: str) -> str:
    answer = http.post("/api/compile", json={"language": "c", "files": unique_c(tag)})
    assert answer.status_code == 202, answer.text
    build_id: str = answer.json()["buildId"]
    return build_id


def test_pf_serve_rides_out_a_postgresql_restart(
    cluster: PgCluster, make_server: type[Server], tmp_path: Path
) -> None:
    url = cluster.create_database("pf")
    env = {"PF_DATABASE_URL": url}
    work = tmp_path / "work"
    work.mkdir()
    made = subprocess.run(
        [sys.executable, "-m", "pf", "token", "create", "ci", "--scope", "admin"],
        cwd=work,
        env={**Server(work).env(), **env},
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    server = make_server(work, env=env).start()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
        # The token pf token wrote to PostgreSQL is the one pf serve asks for.
        assert httpx.get(f"{server.url}/api/builds/x").status_code == 401
        before = _compile(http, "before")
        assert wait_for(http, before)["status"] == "completed"
        assert wait_ready(http, True, DEADLINE)["store"] == "ok"

        cluster.stop()
        down = wait_ready(http, False, DEADLINE)
        assert down["store"] == "unavailable"
        assert "database" in str(down["reason"])
        # Requests that need the database are told to come back; the tokens in memory
        # still authenticate them.
        for path in ("/api/builds/not-in-memory", f"/api/logs/{before}"):
            answer = http.get(path)
            assert answer.status_code == 503, (path, answer.text)
            assert int(answer.headers["Retry-After"]) >= 1
            assert answer.json()["code"] == "store-unavailable"
        # A build accepted while the database is down runs, and its record waits.
        during = _compile(http, "during")
        assert wait_for(http, during)["status"] == "completed"

        cluster.start()
        assert wait_ready(http, True, DEADLINE)["store"] == "ok"
        deadline = time.monotonic() + DEADLINE
        while (found := _stored(url, during)) is None or found[0] != "completed":
            assert time.monotonic() < deadline, f"{during} never reached the database"
            time.sleep(0.1)
        logs = http.get(f"/api/logs/{during}")
        assert logs.status_code == 200 and logs.json(), logs.text
        assert http.get("/api/builds/not-in-memory").status_code == 404
        after = _compile(http, "after")
        assert wait_for(http, after)["status"] == "completed"

    assert server.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises what stopped it
    assert _stored(url, before) is not None and _stored(url, after) is not None
    assert not [e for e in server.log_lines() if e.get("status") == 500]


def test_what_waits_for_a_stopped_postgresql_is_bounded_and_all_written_later(
    cluster: PgCluster, make_server: type[Server], tmp_path: Path
) -> None:
    url = cluster.create_database("pf")
    # Eight times PF_MAX_QUEUE bounds what may wait for the database: 16 items.
    env = {"PF_DATABASE_URL": url, "PF_MAX_QUEUE": "2"}
    server = make_server(tmp_path / "work", env=env).start()
    files = unique_c("cached")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        first = http.post("/api/compile", json={"language": "c", "files": files}).json()
        assert wait_for(http, first["buildId"])["status"] == "completed"

        cluster.stop()
        accepted: list[str] = []
        refused = None
        for _ in range(200):
            answer = http.post("/api/compile", json={"language": "c", "files": files})
            if answer.status_code == 503:
                refused = answer
                break
            assert answer.status_code in (200, 202), answer.text
            accepted.append(answer.json()["buildId"])
            wait_for(http, accepted[-1])
        assert refused is not None, "the writer's backlog never bounded what was accepted"
        assert refused.json()["code"] == "writer-behind"
        assert int(refused.headers["Retry-After"]) >= 1
        assert 0 < len(accepted) < 200

        cluster.start()
        deadline = time.monotonic() + DEADLINE
        while True:
            answer = http.post("/api/compile", json={"language": "c", "files": files})
            if answer.status_code != 503:
                break
            assert time.monotonic() < deadline, answer.text
            time.sleep(0.1)
        assert answer.status_code in (200, 202), answer.text
        accepted.append(answer.json()["buildId"])
        wait_for(http, accepted[-1])
    assert server.stop() in (0, -signal.SIGTERM)
    stored = {build: _stored(url, build) for build in accepted}
    assert all(found is not None and found[0] == "completed" for found in stored.values()), stored
