"""pf serve's side of shared mode: accepted builds go to the job queue, not to threads here.

A submission is validated and recorded (queued, ``build_started``) on the caller's
thread as in one process; then this Dispatcher's thread defers it on the Procrastinate
queue (store.jobqueue), so the event loop never waits for that round trip. Each job
carries the build's record, which is all a pf worker needs to run it. What waits here
is bounded (PF_MAX_QUEUE, with the queue's own depth): past it a submission is a 503.

Fair share, as the Scheduler keeps it in one process: a client may hold at most its
share of the waiting builds (ShareFull, 429), counted over every process from the queue,
and the queue hands builds out round-robin across clients (store.jobqueue, Fairness).
A named client's waiting builds are counted exactly (one query) before each of its
submissions is answered. A snapshot of every client's count (at most _DEPTH_TTL old)
plus what this process queued since would spare the query, but not safely: another
process's last second is missing from it, so a process that had not seen a client's
builds went on accepting them after the process that had refused them (a share of 4
ended at 5 and more). The queue's depth, which bounds memory rather than a client,
still comes from the snapshot.
A cancel that finds its build still here takes it out (``take``), under the lock a
deferral holds, so a build is either still here or already in the queue, never
between. A stop defers what waits before it returns. Imports engine.jobs,
engine.scheduler (the share and its error), store and errors only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from pf.engine.jobs import Job
from pf.engine.scheduler import ShareFull, client_share
from pf.errors import PfError, QueueFull
from pf.store.jobqueue import Queue, QueueState

log = logging.getLogger("pf.engine")

# How stale the queue's depth may be when a submission is checked against PF_MAX_QUEUE:
# reading it is a query, too dear for every submission.
_DEPTH_TTL = 1.0


class Dispatcher:
    """Defers accepted builds on ``queue`` from a thread; ``failed(job, error)`` ends a
    build the queue refused; ``retry_after(depth)`` is a ShareFull's Retry-After."""

    def __init__(
        self,
        queue: Queue,
        cap: int,
        failed: Callable[[Job, PfError], None],
        *,
        jobs: int,
        retry_after: Callable[[int], int],
    ) -> None:
        self.queue = queue
        self.cap = cap
        self.share = client_share(jobs, cap)
        self.failed = failed
        self.retry_after = retry_after
        self._waiting: deque[Job] = deque()
        self._cond = threading.Condition()
        self._sending = threading.Lock()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._depth = 0
        self._depth_at = 0.0
        # Builds this process queued since _depth_at (the queue's depth then).
        self._sent = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="pf-dispatch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Defer what waits, then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def check(self, count: int, client: str = "") -> None:
        """QueueFull unless ``count`` more builds fit PF_MAX_QUEUE (what waits here and
        in the queue, not yet taken by a worker), ShareFull unless they fit ``client``'s
        share of it (see the module docstring)."""
        now = time.monotonic()
        if now - self._depth_at > _DEPTH_TTL:
            # Under the sending lock, no build is between here and the queue: each is
            # counted once, by the queue or by _waiting.
            with self._sending:
                waiting = self.queue.depth()
                with self._cond:
                    self._depth = waiting
                    self._sent = 0
                    self._depth_at = now
        with self._cond:
            depth = self._depth + self._sent + len(self._waiting)
        if depth + count > self.cap:
            raise QueueFull(self.cap, retry_after=1)
        if not client:
            return
        # Under the sending lock, each of the client's builds is counted once: by the
        # queue, or here, not yet sent.
        with self._sending:
            queued = self.queue.waiting_of(client)
            with self._cond:
                held = queued + sum(1 for job in self._waiting if job.client == client)
        if held + count > self.share:
            raise ShareFull(self.share, self.retry_after(depth))

    def put(self, jobs: Sequence[Job]) -> None:
        with self._cond:
            self._waiting.extend(jobs)
            self._cond.notify_all()

    def take(self, build_id: str) -> Job | None:
        """Take a build that is not in the queue yet out of here; None if it is there."""
        with self._sending, self._cond:
            for job in self._waiting:
                if job.id == build_id:
                    self._waiting.remove(job)
                    return job
        return None

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def state(self) -> QueueState:
        return self.queue.state()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._stopping:
                    self._cond.wait()
                if not self._waiting:
                    return
            with self._sending:
                with self._cond:
                    if not self._waiting:
                        continue
                    job = self._waiting.popleft()
                self._send(job)

    def _send(self, job: Job) -> None:
        try:
            self.queue.defer(job.id, {"build_id": job.id, "row": job.record().values()}, job.client)
        except PfError as error:
            log.error("pf: build %s could not be queued: %s", job.id, error)
            self.failed(job, error)
            return
        with self._cond:
            self._sent += 1
