"""The build queue: bounded, two lanes, at most PF_JOBS compiles at once.

Strategy: a submitted job first waits in the *triage* lane, served by a couple of
threads that only ask the action cache whether the job's outputs already exist. A hit
is finished right there, in about a millisecond, so it never waits behind compiles; a
miss moves to the *run* lane, served by exactly ``jobs`` threads that run compilers.
Both lanes together are bounded by ``max_queue``: past it ``submit`` raises QueueFull
with a Retry-After estimate, before anything is recorded. A queued job is cancelled by
taking it out of its lane; a job already in a thread is cancelled by its Event (the
service owns that part). Identical misses that reach two runners at once share one
compile through the engine's single-flight lock. ``close`` stops both lanes from handing
out work; what is still queued stays queued (the store keeps it for the next start).
Imports engine.jobs, errors and prometheus_client only.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from prometheus_client import Gauge

from pf.engine.jobs import Job
from pf.errors import QueueFull

QUEUE_DEPTH = Gauge("pf_queue_depth", "Builds waiting for a worker (triage and run lanes)")

TRIAGE_THREADS = 2
# How long a cancel waits for a job to leave its cache check (normally milliseconds).
_TRIAGE_WAIT = 2.0


class Scheduler:
    """Two lanes of jobs and the threads that serve them.

    ``triage(job)`` returns True when it finished the job (a cache hit, a failure or a
    cancellation) and False to send it on to ``run(job)``.
    """

    def __init__(
        self,
        jobs: int,
        max_queue: int,
        triage: Callable[[Job], bool],
        run: Callable[[Job], None],
        retry_after: Callable[[int], int],
        triage_threads: int = TRIAGE_THREADS,
    ) -> None:
        self.jobs = jobs
        self.max_queue = max_queue
        self._triage = triage
        self._run = run
        self._retry_after = retry_after
        self._triage_threads = triage_threads
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._triage_lane: deque[Job] = deque()
        self._run_lane: deque[Job] = deque()
        self._triaging: set[Job] = set()
        self._running: set[Job] = set()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def start(self) -> None:
        for index in range(self._triage_threads):
            self._spawn(self._serve_triage, f"pf-triage-{index}")
        for index in range(self.jobs):
            self._spawn(self._serve_runs, f"pf-build-{index}")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    @property
    def depth(self) -> int:
        """Jobs waiting: in either lane, or being looked up in the cache."""
        return len(self._triage_lane) + len(self._triaging) + len(self._run_lane)

    @property
    def running(self) -> int:
        return len(self._running)

    def running_jobs(self) -> list[Job]:
        with self._lock:
            return list(self._running | self._triaging)

    def check(self, count: int) -> None:
        """Raise QueueFull unless ``count`` more jobs fit."""
        with self._lock:
            depth = self.depth
        if depth + count > self.max_queue:
            raise QueueFull(self.max_queue, self._retry_after(depth))

    def submit(self, jobs: Sequence[Job], *, force: bool = False, triaged: bool = False) -> None:
        """Queue ``jobs`` (all or none); ``force`` skips the bound (jobs resumed at start,
        or already counted by ``check``); ``triaged`` jobs are known cache misses and go
        straight to the run lane."""
        if not jobs:
            return
        with self._lock:
            depth = self.depth
            if not force and depth + len(jobs) > self.max_queue:
                raise QueueFull(self.max_queue, self._retry_after(depth))
            (self._run_lane if triaged else self._triage_lane).extend(jobs)
            QUEUE_DEPTH.set(self.depth)
            self._work.notify_all()

    def remove(self, job: Job) -> bool:
        """Take a queued job out of its lane; False when a thread already holds it.

        A job in its cache check is still queued to the caller: the check takes
        milliseconds, so wait for it to place the job (or finish it, on a hit) rather
        than treat the job as running.
        """
        deadline = time.monotonic() + _TRIAGE_WAIT
        with self._lock:
            while job in self._triaging and (remaining := deadline - time.monotonic()) > 0:
                self._idle.wait(remaining)
            for lane in (self._triage_lane, self._run_lane):
                try:
                    lane.remove(job)
                except ValueError:
                    continue
                QUEUE_DEPTH.set(self.depth)
                return True
        return False

    def _take(self, lane: deque[Job], holding: set[Job]) -> Job | None:
        with self._lock:
            while not lane and not self._closed:
                self._work.wait()
            if self._closed:
                return None
            job = lane.popleft()
            holding.add(job)
            return job

    def _serve_triage(self) -> None:
        while (job := self._take(self._triage_lane, self._triaging)) is not None:
            done = True
            try:
                done = self._triage(job)
            finally:
                with self._lock:
                    self._triaging.discard(job)
                    if not done:
                        self._run_lane.append(job)
                        self._work.notify_all()
                    QUEUE_DEPTH.set(self.depth)
                    self._idle.notify_all()

    def _serve_runs(self) -> None:
        while (job := self._take(self._run_lane, self._running)) is not None:
            with self._lock:
                QUEUE_DEPTH.set(self.depth)
            try:
                self._run(job)
            finally:
                with self._lock:
                    self._running.discard(job)
                    self._idle.notify_all()

    def close(self) -> None:
        """Hand out no more work; threads end once their current job is done."""
        with self._lock:
            self._closed = True
            self._work.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no thread holds a job; False if some still do after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._running or self._triaging:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = [t for t in self._threads if t.is_alive()]

    def queued(self) -> list[Job]:
        with self._lock:
            return [*self._triage_lane, *self._triaging, *self._run_lane]
