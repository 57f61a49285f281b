"""The load test of pf serve, as the original's artillery scenario: warm-up, ramp-up, sustained.

Run it through ``bench/load.py`` (``make load``), which starts a pf serve, makes a token
and prints the figures; or by hand against a running server::

    .venv/bin/locust -f bench/locustfile.py --headless --host http://127.0.0.1:8080 \\
        -u 20 -r 5 -t 60s --pf-token "$TOKEN"

Two kinds of users:

``ApiUser`` (most of them) polls and submits as a page or a CI job does, in a cycle of
``GET /api/health``, ``GET /api/status``, ``POST /api/compile`` with a small WAT module
(one of a few, so most are cache hits, as a team recompiling the same sources; every
tenth a new module, which runs wat2wasm in the sandbox) and ``POST /api/build/wat``
(the server's default project).

``WsUser`` holds a WebSocket subscription to build events (``/ws``), as the original's
page does: its connect is timed up to ``initial_status``; then, in a loop, it submits a
new WAT module and times it from the submission to that build's ``build_completed`` on
its socket (``WS build_completed``); a ``build_failed`` or no answer within
``EVENT_TIMEOUT`` is a failure.

The shape (``Phases``) takes ``-u``, ``-r`` and ``-t``: the first fifth of the time is a
warm-up with a fifth of the users, the next three tenths ramp up to all of them, and
the rest holds them.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from typing import Any

import websocket
from geventhttpclient import URL, HTTPClient
from locust import FastHttpUser, LoadTestShape, User, between, events, task
from locust.exception import StopUser

EVENT_TIMEOUT = 30.0
# Modules ApiUser compiles again and again (cache hits after the first of each).
KNOWN_MODULES = 8
# Every n-th ApiUser compile is a module never seen before (a real compile).
NEW_EVERY = 10
_RUN = uuid.uuid4().hex[:8]  # distinct from any earlier run against the same server
_serial = itertools.count()


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument(
        "--pf-token",
        default="",
        include_in_web_ui=False,
        help="a pf token of scope build (none: a server without tokens)",
    )
    parser.add_argument(
        "--pf-ws-users", type=int, default=2, help="WebSocket users among the -u users"
    )


@events.init.add_listener
def _ws_users(environment: Any, **_: Any) -> None:
    options = environment.parsed_options
    if options is not None:
        WsUser.fixed_count = max(1, options.pf_ws_users)


def wat_module(tag: str) -> str:
    return (
        f";; load {tag}\n(module\n"
        '  (func (export "add") (param i32 i32) (result i32)\n'
        "    local.get 0\n    local.get 1\n    i32.add))\n"
    )


def compile_body(tag: str) -> dict[str, Any]:
    return {"language": "wat", "target": "wasm", "files": {"load.wat": wat_module(tag)}}


def _headers(environment: Any) -> dict[str, str]:
    token = environment.parsed_options.pf_token if environment.parsed_options else ""
    return {"Authorization": f"Bearer {token}"} if token else {}


class ApiUser(FastHttpUser):
    """Health checks, status polls and build submissions over HTTP.

    Each user goes round the same cycle of ten requests, four health checks, three
    status polls, two compiles and one project build (the rarer ones first), so even a
    run of a few seconds sends every kind.
    """

    weight = 10
    wait_time = between(0.1, 0.5)
    CYCLE = (
        "compile",
        "build_wat",
        "health",
        "status",
        "health",
        "compile",
        "status",
        "health",
        "status",
        "health",
    )

    def on_start(self) -> None:
        self.auth = _headers(self.environment)
        self.steps = itertools.cycle(self.CYCLE)

    @task
    def next_request(self) -> None:
        getattr(self, next(self.steps))()

    def health(self) -> None:
        self.client.get("/api/health", name="GET /api/health")

    def status(self) -> None:
        self.client.get("/api/status", headers=self.auth, name="GET /api/status")

    def compile(self) -> None:
        n = next(_serial)
        tag = f"new {_RUN} {n}" if n % NEW_EVERY == 0 else f"known {n % KNOWN_MODULES}"
        with self.client.post(
            "/api/compile",
            json=compile_body(tag),
            headers=self.auth,
            name="POST /api/compile",
            catch_response=True,
        ) as answer:
            if answer.status_code != 202 or "buildId" not in (answer.json() or {}):
                answer.failure(f"{answer.status_code}: {answer.text[:200]}")

    def build_wat(self) -> None:
        with self.client.post(
            "/api/build/wat",
            json={"target": "wasm"},
            headers=self.auth,
            name="POST /api/build/wat",
            catch_response=True,
        ) as answer:
            if answer.status_code != 200 or "buildId" not in (answer.json() or {}):
                answer.failure(f"{answer.status_code}: {answer.text[:200]}")


class WsUser(User):
    """A subscriber to build events that times its own builds from submission to end."""

    weight = 1
    fixed_count = 2  # --pf-ws-users sets it
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        self.auth = _headers(self.environment)
        base = self.host.rstrip("/")
        url = "ws" + base.removeprefix("http") + "/ws"
        started = time.perf_counter()
        try:
            self.ws = websocket.create_connection(
                url, header=[f"{k}: {v}" for k, v in self.auth.items()], timeout=EVENT_TIMEOUT
            )
            first = json.loads(self.ws.recv())
            if first.get("type") != "initial_status":
                raise ValueError(f"first message {first.get('type')!r}, not initial_status")
        except Exception as exc:
            self._report("WS connect", started, exc)
            raise StopUser() from exc
        self._report("WS connect", started, None)
        self.client = HTTPClient.from_url(URL(base), concurrency=1)

    def on_stop(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        if getattr(self, "client", None) is not None:
            self.client.close()

    def _report(self, name: str, started: float, error: Exception | None, size: int = 0) -> None:
        events.request.fire(
            request_type="WS",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=size,
            exception=error,
            context={},
        )

    @task
    def build_and_wait(self) -> None:
        body = json.dumps(compile_body(f"ws {_RUN} {next(_serial)}"))
        started = time.perf_counter()
        try:
            answer = self.client.post(
                "/api/compile",
                body=body,
                headers={"Content-Type": "application/json", **self.auth},
            )
            text = answer.read()
            if answer.status_code != 202:
                raise ValueError(f"submission: {answer.status_code}: {text[:200]!r}")
            build_id = json.loads(text)["buildId"]
            self._wait_for(build_id, started)
        except Exception as exc:
            self._report("WS build_completed", started, exc)
            return
        self._report("WS build_completed", started, None)

    def _wait_for(self, build_id: str, started: float) -> None:
        deadline = started + EVENT_TIMEOUT
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError(f"no end of {build_id} within {EVENT_TIMEOUT:.0f} s")
            self.ws.settimeout(left)
            message = json.loads(self.ws.recv())
            updates = message["updates"] if message.get("type") == "batch" else [message]
            for update in updates:
                if update.get("buildId") != build_id:
                    continue
                if update.get("type") == "build_completed":
                    return
                if update.get("type") in ("build_failed", "build_cancelled"):
                    raise ValueError(f"{build_id}: {update.get('type')}: {update.get('error')}")


class Phases(LoadTestShape):
    """Warm-up (a fifth of the time, a fifth of the users), ramp-up (three tenths), sustained."""

    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options if self.runner else None
        users = max(1, getattr(options, "num_users", None) or 10)
        rate = float(getattr(options, "spawn_rate", None) or 5)
        duration = float(getattr(options, "run_time", None) or 60)
        elapsed = self.get_run_time()
        warm = max(1, users // 5)
        if elapsed >= duration:
            return None
        if elapsed < 0.2 * duration:
            return warm, rate
        if elapsed < 0.5 * duration:
            share = (elapsed - 0.2 * duration) / (0.3 * duration)
            return warm + round((users - warm) * share), rate
        return users, rate
