"""Shared mode for real: pf serve processes queue builds on Procrastinate in a private
PostgreSQL, pf worker processes run them, and what one worker built every process serves.
Workers are SIGKILLed mid-build and cancelled builds are aborted on whichever worker
runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.server.conftest import Server, chatty_tool, unique_c, wait_for
from tests.toolchains.support import instantiate

DEADLINE = 60.0


class Worker:
    """One ``pf worker`` process with a cache directory of its own."""

    def __init__(self, directory: Path, projects: Path, env: Mapping[str, str]) -> None:
        self.directory = directory
        self.projects = projects
        self.extra_env = dict(env)
        self.log_path = directory / "worker.log"
        self.proc: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    def start(self, concurrency: int = 1) -> Worker:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PF_")}
        env["PF_CACHE_DIR"] = str(self.directory / "cache")
        env.update(self.extra_env)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pf.cli.worker",
                    "--projects",
                    str(self.projects),
                    "--concurrency",
                    str(concurrency),
                ],
                cwd=self.directory,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + DEADLINE
        while b"pf worker ready" not in self.log_path.read_bytes():
            assert self.proc.poll() is None, self.log_path.read_text()
            assert time.monotonic() < deadline, self.log_path.read_text()
            time.sleep(0.05)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Farm:
    """pf serve and pf worker processes sharing one PostgreSQL and one Redis."""

    def __init__(self, tmp_path: Path, pg_url: str, redis_url: str) -> None:
        self.tmp_path = tmp_path
        self.env = {"PF_DATABASE_URL": pg_url, "PF_REDIS_URL": redis_url}
        self.pg_url = pg_url
        self.servers: list[Server] = []
        self.workers: list[Worker] = []

    def server(self, **env: str) -> Server:
        work = self.tmp_path / f"api{len(self.servers)}"
        work.mkdir()
        server = Server(work, env={**self.env, **env})
        self.servers.append(server)
        return server.start()

    def worker(self, concurrency: int = 1, **env: str) -> Worker:
        assert self.servers, "start a server first: workers build its projects"
        directory = self.tmp_path / f"worker{len(self.workers)}"
        worker = Worker(directory, self.servers[0].projects, {**self.env, **env})
        self.workers.append(worker)
        return worker.start(concurrency)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop(signal.SIGKILL)
        for server in self.servers:
            server.stop()


@pytest.fixture
def farm(tmp_path: Path, pg_url: str, redis_url: str) -> Iterator[Farm]:
    made = Farm(tmp_path, pg_url, redis_url)
    yield made
    made.stop()


def _job_attempts(pg_url: str, build_id: str) -> list[int]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT attempts FROM procrastinate_jobs WHERE lock = %s", (build_id,)
        ).fetchall()
    return [int(r[0]) for r in rows]


def _wait_status(http: httpx.Client, build_id: str, status: str, timeout: float) -> float:
    """Seconds until the build's record says ``status``."""
    started = time.monotonic()
    record = wait_for(http, build_id, timeout=timeout, until=(status,))
    assert record["status"] == status
    return time.monotonic() - started


def test_builds_of_every_language_run_on_two_workers_and_their_artifacts_run(
    farm: Farm, tmp_path: Path
) -> None:
    server = farm.server()
    farm.worker()
    farm.worker()
    with httpx.Client(base_url=server.url, timeout=60) as http:
        ready = http.get("/api/ready").json()
        assert ready["queue"]["workers"] == 2, ready
        body = http.post("/api/build/all", json={"target": "wasm"}).json()
        records = [wait_for(http, build_id, timeout=120) for build_id in body["buildIds"]]
        assert [r["status"] for r in records] == ["completed"] * 4, records
        files = {}
        for record in records:
            [artifact] = record["artifacts"]  # type: ignore[misc]
            # The API process built nothing: the bytes come from the shared cache.
            fetched = http.get(artifact["url"])
            assert fetched.status_code == 200
            path = tmp_path / f"{record['language']}-{artifact['path']}"
            path.write_bytes(fetched.content)
            files[record["language"]] = path
        logs = http.get(f"/api/logs/{records[0]['buildId']}").json()["logs"]
        assert any("built" in entry["message"] for entry in logs)
        metrics = http.get("/api/metrics").json()
        assert metrics["buildCount"] == 4 and metrics["activeBuilds"] == 0
    for language in ("rust", "c", "wat"):
        store, exports = instantiate(files[language])
        assert exports["add"](store, 40, 2) == 42, language
    assert not (server.workdir / ".pf" / "cache" / "ac").exists() or not any(
        (server.workdir / ".pf" / "cache" / "ac").rglob("*.json")
    ), "pf serve compiled in shared mode"
