"""The build queue: bounded, two lanes, at most PF_JOBS compiles at once.

Strategy: a submitted job first waits in the *triage* lane, served by a couple of
threads that only ask the action cache whether the job's outputs already exist. A hit
is finished right there, in about a millisecond, so it never waits behind compiles; a
miss moves to the *run* lane, served by ``jobs`` threads that run compilers; in pf
serve, whose build process runs the compiles (``jobs`` at once, keeping the others in
order: engine.buildproc), the compiles are handed to it without a thread (``begin``)
by whichever thread fills the lane or ends one of them, up to ``begin_room`` at once
(or more, while they are expected to take ``BEGIN_BUDGET`` together), and the threads
run the task runs. A job handed over but not started there still counts as waiting.
Both lanes together are bounded by ``max_queue``: past it ``submit`` raises QueueFull
with a Retry-After estimate, before anything is recorded. A queued job is cancelled by
taking it out of its lane; a job already in a thread is cancelled by its Event (the
service owns that part). Identical misses that reach two runners at once share one
compile through the engine's single-flight lock. ``close`` stops both lanes from handing
out work; what is still queued stays queued (the store keeps it for the next start).

Fairness: a job belongs to its client (``Job.client``: a token's name or an address;
``""`` for the CLI and for jobs resumed at start, one client together). Each lane keeps
one FIFO per client and hands the next job to the client it served least recently
(a client new to the lane first), so a client with one compile waits for at most one
job of each other client, not for all of them (and for those handed to pf serve's build
process before it: ``begin_room``, or ``BEGIN_BUDGET`` seconds of quick ones). And a
client may hold only its share of the queue, ``max(max_queue // 4, 2 * jobs)`` jobs:
past it ``check`` raises ShareFull (429 with a Retry-After), so at least four clients
can always queue work whatever one of them sends, and a client alone still keeps every
build thread busy. Jobs of no known client (``""``: resumed at start, or submitted
in-process by the operator) are bounded by the queue alone: every HTTP submission
names its client.
Imports engine.jobs, errors and prometheus_client only.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import Gauge

from pf.engine.jobs import QUEUED, RUNNING, Job
from pf.errors import QueueFull, ServiceUnavailable

# With several API processes the depth is the shared queue's, read by whichever process
# was scraped last (BuildService.sample).
QUEUE_DEPTH = Gauge(
    "pf_queue_depth",
    "Builds waiting for a worker (triage and run lanes)",
    multiprocess_mode="livemostrecent",
)

TRIAGE_THREADS = 2
# Compiles handed over beyond ``begin_room``: while together they are expected to take at
# most this many seconds (by ``begin_cost``), and never more than BEGIN_MOST in all.
BEGIN_BUDGET = 0.05
BEGIN_MOST = 64
# How long a cancel waits for a job to leave its cache check (normally milliseconds).
_TRIAGE_WAIT = 2.0


def client_share(jobs: int, max_queue: int) -> int:
    """The most jobs one client may have queued (see the module docstring)."""
    return min(max_queue, max(max_queue // 4, 2 * jobs))


class ShareFull(ServiceUnavailable):
    """A client already holds its share of the queue (HTTP 429, Retry-After)."""

    code = "queue-share-full"
    http_status = 429

    def __init__(self, share: int, retry_after: int) -> None:
        super().__init__(
            f"you already have {share} builds waiting, your share of the build queue",
            retry_after=retry_after,
            hint=f"retry in {retry_after} s, once some of your builds have started",
        )
        self.share = share


class _FairLane:
    """One lane: a FIFO of jobs per client, handed out to the least recently served client.

    ``_served`` remembers, per client with jobs queued or held here, the turn it was last
    served (0: not yet); a client with neither is forgotten, so the lane's memory is
    bounded by its jobs. Not thread-safe: the Scheduler's lock guards it.
    """

    def __init__(self) -> None:
        self._queues: dict[str, deque[Job]] = {}
        self._held: dict[str, int] = {}
        self._served: dict[str, int] = {}
        self._turn = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[Job]:
        for queue in self._queues.values():
            yield from queue

    def count(self, client: str) -> int:
        queue = self._queues.get(client)
        return len(queue) if queue is not None else 0

    def extend(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            queue = self._queues.get(job.client)
            if queue is None:
                queue = self._queues[job.client] = deque()
                self._served.setdefault(job.client, 0)
            queue.append(job)
            self._size += 1

    def take(self) -> Job:
        """The next job, of the client served least recently (arrival order among ties);
        the lane counts it as held until ``release``. The lane must not be empty."""
        served = self._served
        # Linear in the clients with queued work: at most PF_MAX_QUEUE, and a handful
        # in practice, against a take per build.
        client = min(self._queues, key=served.__getitem__)
        queue = self._queues[client]
        job = queue.popleft()
        if not queue:
            del self._queues[client]
        self._size -= 1
        self._turn += 1
        served[client] = self._turn
        self._held[client] = self._held.get(client, 0) + 1
        return job

    def peek(self) -> Job:
        """The job ``take`` would hand out next. The lane must not be empty."""
        return self._queues[min(self._queues, key=self._served.__getitem__)][0]

    def release(self, job: Job) -> None:
        """A job that ``take`` handed out is done with this lane."""
        client = job.client
        left = self._held[client] - 1
        if left:
            self._held[client] = left
        else:
            del self._held[client]
            self._forget(client)

    def discard(self, job: Job) -> bool:
        """Take a queued job out; False if it is not queued here."""
        queue = self._queues.get(job.client)
        if queue is None:
            return False
        try:
            queue.remove(job)
        except ValueError:
            return False
        self._size -= 1
        if not queue:
            del self._queues[job.client]
            self._forget(job.client)
        return True

    def _forget(self, client: str) -> None:
        if client not in self._queues and client not in self._held:
            self._served.pop(client, None)


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
        begin: Callable[[Job, Callable[[], None]], None] | None = None,
        begin_room: int = 0,
        begin_cost: Callable[[Job], float | None] | None = None,
    ) -> None:
        self.jobs = jobs
        # Compiles handed to that process without a thread waiting for each (``begin``,
        # which calls its second argument once the job is done with), given by whichever
        # thread fills the run lane or ends one of them. The run threads then take the
        # task runs only. One thread fewer a compile (taken by a run thread, woken again
        # at its end): a WAT compile is a few milliseconds, and each of those hand-overs
        # cost this process's GIL as much. At most ``begin_room`` at once, or more while
        # those handed over are expected to take BEGIN_BUDGET seconds together at most
        # (``begin_cost``: a job's typical seconds, None if unknown): the process then
        # always has the next compiles at hand, however short, while a client's next job
        # still waits behind at most that much work handed over before it.
        self._begin = begin
        self._begin_room = begin_room
        self._begin_cost = begin_cost
        self._begun = 0
        self._begun_cost: dict[Job, float] = {}  # the cost of each job handed over
        self._pumping = threading.local()
        self.max_queue = max_queue
        self.share = client_share(jobs, max_queue)
        self._triage = triage
        self._run = run
        self._retry_after = retry_after
        self._triage_threads = triage_threads
        self._lock = threading.Lock()
        # One condition a lane, each woken once a job: with one for both, every job
        # queued or moved woke all six threads to find one of them work.
        self._triage_work = threading.Condition(self._lock)
        self._run_work = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._triage_lane = _FairLane()
        self._run_lane = _FairLane()
        self._triaging: set[Job] = set()
        self._running: set[Job] = set()
        self._held_back = False  # a run thread left a job queued for lack of room
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
        """Jobs waiting: in either lane, being looked up in the cache, or held by a run
        thread that has not started them."""
        waiting = len(self._triage_lane) + len(self._triaging) + len(self._run_lane)
        return waiting + sum(1 for job in list(self._running) if job.status == QUEUED)

    @property
    def running(self) -> int:
        """Jobs started (at most ``jobs``)."""
        return sum(1 for job in list(self._running) if job.status == RUNNING)

    def running_jobs(self) -> list[Job]:
        with self._lock:
            return list(self._running | self._triaging)

    def _queued_by(self, client: str) -> int:
        triaging = sum(1 for job in self._triaging if job.client == client)
        return self._triage_lane.count(client) + triaging + self._run_lane.count(client)

    def _check(self, count: int, client: str) -> None:
        """Under the lock: QueueFull or ShareFull unless ``count`` more jobs of ``client`` fit."""
        depth = self.depth
        if depth + count > self.max_queue:
            raise QueueFull(self.max_queue, self._retry_after(depth))
        if client and self._queued_by(client) + count > self.share:
            raise ShareFull(self.share, self._retry_after(depth))

    def check(self, count: int, client: str = "") -> None:
        """Raise QueueFull unless ``count`` more jobs fit the queue, ShareFull unless they
        fit ``client``'s share of it."""
        with self._lock:
            self._check(count, client)

    def submit(self, jobs: Sequence[Job], *, force: bool = False, triaged: bool = False) -> None:
        """Queue ``jobs`` (all or none, all of one client); ``force`` skips the bounds
        (jobs resumed at start, or already counted by ``check``); ``triaged`` jobs are
        known cache misses and go straight to the run lane."""
        if not jobs:
            return
        with self._lock:
            if not force:
                self._check(len(jobs), jobs[0].client)
            (self._run_lane if triaged else self._triage_lane).extend(jobs)
            QUEUE_DEPTH.set(self.depth)
            if not triaged:
                self._triage_work.notify(len(jobs))
            else:
                self._run_work.notify(sum(self._for_a_thread(job) for job in jobs))
        if triaged:
            self._pump()

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
                if lane.discard(job):
                    QUEUE_DEPTH.set(self.depth)
                    return True
        return False

    def _take(
        self,
        lane: _FairLane,
        holding: set[Job],
        work: threading.Condition,
        fits: Callable[[Job], bool] | None = None,
    ) -> Job | None:
        with self._lock:
            while not self._closed:
                if lane and (fits is None or fits(lane.peek())):
                    break
                work.wait()
            if self._closed:
                return None
            job = lane.take()
            holding.add(job)
            return job

    def _fits(self, job: Job) -> bool:
        """Under the lock, with ``begin``: whether ``job`` may be taken now. The build
        process bounds compiles at ``jobs`` on its own; a task run (which runs here) and
        anything while one runs here are taken only while fewer than ``jobs`` are held,
        so compiles and task runs together stay within ``jobs`` as well."""
        held = self._running
        if job.kind == "task" or any(j.kind == "task" for j in held):
            fits = len(held) < self.jobs
            self._held_back = self._held_back or not fits
            return fits
        return True

    def _serve_triage(self) -> None:
        lane = self._triage_lane
        while (job := self._take(lane, self._triaging, self._triage_work)) is not None:
            done = True
            try:
                done = self._triage(job)
            finally:
                with self._lock:
                    self._triaging.discard(job)
                    lane.release(job)
                    if not done:
                        self._run_lane.extend([job])
                        if self._for_a_thread(job):
                            self._run_work.notify()
                    QUEUE_DEPTH.set(self.depth)
                    self._idle.notify_all()
            if not done:
                self._pump()

    def _serve_runs(self) -> None:
        lane = self._run_lane
        fits = self._fits_a_thread if self._begin is not None else None
        while (job := self._take(lane, self._running, self._run_work, fits)) is not None:
            with self._lock:
                QUEUE_DEPTH.set(self.depth)
            try:
                self._run(job)
            finally:
                self._done_with(job)

    def _for_a_thread(self, job: Job) -> bool:
        """Whether a run thread runs ``job`` (else ``begin`` takes it: no thread is woken)."""
        return self._begin is None or job.kind == "task"

    def _fits_a_thread(self, job: Job) -> bool:
        """Under the lock, with ``begin``: a run thread takes a task run that fits."""
        return job.kind == "task" and self._fits(job)

    def _done_with(self, job: Job, begun: bool = False) -> None:
        """A job a run thread or ``begin`` took has ended (or went back unstarted)."""
        with self._lock:
            self._running.discard(job)
            self._run_lane.release(job)
            self._begun -= begun
            self._begun_cost.pop(job, None)
            self._idle.notify_all()
            if self._held_back:  # a thread waits for a job to end, not for work
                self._held_back = False
                self._run_work.notify_all()
        self._pump()

    def _pump(self) -> None:
        """Give the compiles at the head of the run lane to ``begin`` while there is room
        (a task run there is a run thread's). Whoever ends one of them while this thread
        gives them (``begin`` may end a job at once) leaves the giving to this loop."""
        if self._begin is None or getattr(self._pumping, "on", False):
            return
        self._pumping.on = True
        try:
            while True:
                with self._lock:
                    if self._closed or not self._run_lane or self._begun >= BEGIN_MOST:
                        return
                    job = self._run_lane.peek()
                    if job.kind == "task":
                        self._run_work.notify()
                        return
                    if not self._fits(job):
                        return  # a task run holds its share: the next end gives it again
                    cost = self._cost(job)
                    if cost is None:
                        return
                    job = self._run_lane.take()
                    self._running.add(job)
                    self._begun += 1
                    self._begun_cost[job] = cost
                    QUEUE_DEPTH.set(self.depth)
                self._begin(job, functools.partial(self._done_with, job, begun=True))
        finally:
            self._pumping.on = False

    def _cost(self, job: Job) -> float | None:
        """Under the lock: ``job``'s expected seconds if it may be handed over now."""
        cost = self._begin_cost(job) if self._begin_cost is not None else None
        if self._begun < self._begin_room:
            return cost or 0.0
        if cost is None or sum(self._begun_cost.values()) + cost > BEGIN_BUDGET:
            return None
        return cost

    def close(self) -> None:
        """Hand out no more work; threads end once their current job is done."""
        with self._lock:
            self._closed = True
            self._triage_work.notify_all()
            self._run_work.notify_all()

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
