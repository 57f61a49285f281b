"""The shipped Prometheus configuration, alert rules and Grafana dashboard, against a
real pf: Debian's prometheus scrapes pf serve (two API processes, shared mode) and a pf
worker, from deploy/prometheus/prometheus.yml with only its addresses, token file and
intervals replaced; after a few builds every dashboard expression returns series and
every alert rule evaluates without error over metrics pf really exports."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.pg import PgCluster
from tests.redisd import RedisServer
from tests.server.conftest import Server, Worker, wait_for
from tests.server.test_auth import make_token
from tests.tools import needs_tool

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "pf.json"
DEADLINE = 90.0
# Grafana's rate window; with a scrape a second, 30 s holds plenty of samples.
RATE_INTERVAL = "30s"
WAT = (
    '(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))\n'
)

pytestmark = needs_tool("prometheus", "promtool", "wat2wasm")


def _promtool(*args: str) -> str:
    done = subprocess.run(
        ["promtool", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_promtool_accepts_the_shipped_files() -> None:
    assert "SUCCESS" in _promtool("check", "rules", str(PROMETHEUS_DIR / "alerts.yml"))
    # The shipped file names a token file only a deployment has: its syntax is checked
    # here, and the whole of it (rules and token file) once rendered, below.
    _promtool("check", "config", "--syntax-only", str(PROMETHEUS_DIR / "prometheus.yml"))


def _dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = []
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            found.append(target["expr"].replace("$__rate_interval", RATE_INTERVAL))
    return found


@dataclass
class Observed:
    server: Server
    worker: Worker
    prometheus: str  # its URL
    admin: dict[str, str]  # headers of an admin token for pf serve


def _logged(path: Path, message: str, key: str, proc: subprocess.Popen[bytes]) -> str:
    """The value of ``key`` in the first JSON log line of ``path`` saying ``message``."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        for raw in path.read_bytes().splitlines():
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if entry.get("message") == message:
                return str(entry[key])
        assert proc.poll() is None, path.read_text()
        time.sleep(0.05)
    raise TimeoutError(f"no {message!r} in {path}:\n{path.read_text()}")


def _render(into: Path, pf: str, worker: str, token_file: Path) -> Path:
    """The shipped prometheus.yml with these targets and token file, scraping every
    second, beside a copy of the shipped alerts.yml."""
    text = (PROMETHEUS_DIR / "prometheus.yml").read_text()
    replaced = {
        '["127.0.0.1:8080"]': f'["{pf}"]',
        '["127.0.0.1:9465"]': f'["{worker}"]',
        "credentials_file: /etc/prometheus/pf-token": f"credentials_file: {token_file}",
        "scrape_interval: 15s": "scrape_interval: 1s",
        "evaluation_interval: 15s": "evaluation_interval: 1s",
    }
    for old, new in replaced.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    shutil.copy(PROMETHEUS_DIR / "alerts.yml", into / "alerts.yml")
    config = into / "prometheus.yml"
    config.write_text(text)
    return config


@pytest.fixture(scope="module")
def observed(
    tmp_path_factory: pytest.TempPathFactory,
    pg_cluster: PgCluster,
    redis_server: RedisServer,
) -> Iterator[Observed]:
    if redis_server.process is None:
        redis_server.start()
    database = pg_cluster.create_database(f"pf_observe_{os.getpid()}")
    env = {"PF_DATABASE_URL": database, "PF_REDIS_URL": redis_server.url(2), "PF_JOBS": "1"}
    top = tmp_path_factory.mktemp("observe")
    server = Server(top / "serve", env=env, args=("--workers", "2"))
    admin = make_token(server, "observer", "admin")
    token_file = top / "pf-token"
    token_file.write_text(make_token(server, "prometheus", "read") + "\n")
    server.start()
    worker = Worker(top / "worker", server.projects, {**env, "PF_WORKER_METRICS": "127.0.0.1:0"})
    prometheus: subprocess.Popen[bytes] | None = None
    try:
        worker.start()
        assert worker.proc is not None
        worker_port = _logged(worker.log_path, "pf worker metrics", "port", worker.proc)
        config = _render(top, f"127.0.0.1:{server.port}", f"127.0.0.1:{worker_port}", token_file)
        _promtool("check", "config", str(config))
        log_path = top / "prometheus.log"
        with log_path.open("wb") as log:
            prometheus = subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={config}",
                    f"--storage.tsdb.path={top / 'data'}",
                    "--web.listen-address=127.0.0.1:0",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        address = _prometheus_address(log_path, prometheus)
        yield Observed(server, worker, f"http://{address}", {"Authorization": f"Bearer {admin}"})
    finally:
        if prometheus is not None:
            prometheus.send_signal(signal.SIGTERM)
            try:
                prometheus.wait(30)
            except subprocess.TimeoutExpired:
                prometheus.kill()
                prometheus.wait()
        worker.stop()
        server.stop()


def _prometheus_address(log_path: Path, proc: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + DEADLINE
    pattern = re.compile(r'msg="Listening on" address=(\S+)')
    while time.monotonic() < deadline:
        found = pattern.search(log_path.read_text(errors="replace"))
        if found:
            return found.group(1)
        assert proc.poll() is None, log_path.read_text()
        time.sleep(0.05)
    raise TimeoutError(log_path.read_text())


def _query(prometheus: str, expr: str) -> list[dict[str, object]]:
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    body = answer.json()
    assert answer.status_code == 200 and body["status"] == "success", (expr, body)
    result: list[dict[str, object]] = body["data"]["result"]
    return result


def _until_series(prometheus: str, expressions: list[str]) -> dict[str, int]:
    """Each expression's number of series, once all have some (or at the deadline)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        counts = {expr: len(_query(prometheus, expr)) for expr in expressions}
        if all(counts.values()) or time.monotonic() > deadline:
            return counts
        time.sleep(0.5)


def _build(observed: Observed) -> None:
    """A compile that runs wat2wasm, the same again (a cache hit), and one that fails."""
    with httpx.Client(base_url=observed.server.url, headers=observed.admin, timeout=30) as http:
        for files in ({"add.wat": WAT}, {"add.wat": WAT}, {"bad.wat": "(module (func"}):
            answer = http.post("/api/compile", json={"language": "wat", "files": files})
            assert answer.status_code == 202, answer.text
            wait_for(http, answer.json()["buildId"])


def test_every_dashboard_panel_and_alert_has_pf_series(observed: Observed) -> None:
    _build(observed)
    targets = _until_series(observed.prometheus, ['up{job="pf"} == 1', 'up{job="pf-worker"} == 1'])
    assert all(targets.values()), targets
    counts = _until_series(observed.prometheus, _dashboard_expressions())
    assert all(counts.values()), {expr: n for expr, n in counts.items() if not n}
    # Every alert rule's expression: evaluated by Prometheus itself (health "ok" after
    # its evaluations), and each metric it names has series from pf.
    rules = _loaded_rules(observed.prometheus)
    assert len(rules) == (PROMETHEUS_DIR / "alerts.yml").read_text().count("- alert:")
    named = set()
    for rule in rules:
        assert rule["health"] == "ok", rule
        _query(observed.prometheus, str(rule["query"]))
        named |= set(re.findall(r"\b(pf_[a-z_]+)", str(rule["query"])))
    assert named
    missing = {
        name: n for name, n in _until_series(observed.prometheus, sorted(named)).items() if not n
    }
    assert not missing, missing


def _loaded_rules(prometheus: str) -> list[dict[str, object]]:
    """The alert rules Prometheus loaded, once each has been evaluated."""
    deadline = time.monotonic() + DEADLINE
    while True:
        body = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()
        rules = [rule for group in body["data"]["groups"] for rule in group["rules"]]
        if rules and all(rule.get("lastEvaluation", "").startswith("2") for rule in rules):
            return rules
        assert time.monotonic() < deadline, body
        time.sleep(0.5)


def test_a_worker_and_two_api_processes_are_scraped_with_their_own_values(
    observed: Observed,
) -> None:
    # Memory is per process: both API processes, their supervisor, and the worker.
    counts = _until_series(
        observed.prometheus,
        [
            'count(pf_process_resident_memory_bytes{job="pf"} > 0) == 3',
            'pf_process_resident_memory_bytes{job="pf-worker"} > 0',
        ],
    )
    assert all(counts.values()), _query(observed.prometheus, "pf_process_resident_memory_bytes")
    # The shared queue's gauges are one value, whichever process answered the scrape.
    workers = _query(observed.prometheus, 'pf_workers{job="pf"}')
    assert [float(str(s["value"][1])) for s in workers] == [1.0], workers  # type: ignore[index]
    capacity = _query(observed.prometheus, 'pf_queue_capacity{job="pf"}')
    assert [float(str(s["value"][1])) for s in capacity] == [1000.0], capacity  # type: ignore[index]
