"""Fair share of the scheduler: clients are served round-robin and hold only their share.

A real Scheduler with its real threads; the run function blocks each job on an Event the
test sets, so the test decides when a slot frees and watches which job takes it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from pf.engine.jobs import Job
from pf.engine.scheduler import Scheduler, ShareFull, client_share
from pf.errors import QueueFull

WAIT = 10.0  # seconds any single step may take on a loaded machine before the test fails


class Lane:
    """A scheduler whose every job is a cache miss and runs until the test releases it."""

    def __init__(
        self,
        jobs: int,
        max_queue: int,
        begin_room: int = 0,
        cost: Callable[[Job], float | None] | None = None,
    ) -> None:
        self.started: queue.Queue[Job] = queue.Queue()
        self.release: dict[str, threading.Event] = {}
        self.threads: dict[str, str] = {}  # the thread each job started on
        # One triage thread: jobs reach the run lane in the order the triage lane hands
        # them out, so the run lane's order is the test's to predict.
        self.scheduler = Scheduler(
            jobs,
            max_queue,
            triage=lambda job: False,
            run=self._run,
            retry_after=lambda _: 1,
            triage_threads=1,
            begin=self._begin if begin_room else None,
            begin_room=begin_room,
            begin_cost=cost,
        )
        self._serial = 0

    def _run(self, job: Job) -> None:
        self.threads[job.id] = threading.current_thread().name
        self.started.put(job)
        if not self.release[job.id].wait(WAIT * 3):
            raise AssertionError(f"{job.id} was never released")

    def _begin(self, job: Job, then: Callable[[], None]) -> None:
        """As pf serve's build process takes a compile: at once, ending it later."""
        self.threads[job.id] = threading.current_thread().name

        def end() -> None:
            self.release[job.id].wait(WAIT * 3)
            then()

        self.started.put(job)
        threading.Thread(target=end, name=f"end-{job.id}", daemon=True).start()

    def job(self, client: str, kind: str = "compile") -> Job:
        self._serial += 1
        job = Job(
            id=f"{client or 'cli'}-{self._serial}",
            language="c" if kind == "compile" else "task",
            target="wasm",
            project=None,
            options={},
            created_at=time.time(),
            client=client,
            kind=kind,
        )
        self.release[job.id] = threading.Event()
        return job

    def submit(self, client: str, count: int) -> list[Job]:
        jobs = [self.job(client) for _ in range(count)]
        for job in jobs:
            self.scheduler.submit([job])
        return jobs

    def next_started(self) -> Job:
        return self.started.get(timeout=WAIT)

    def wait_queued_in_run_lane(self, count: int) -> None:
        """Wait until the triage thread has moved ``count`` jobs on to the run lane."""
        deadline = time.monotonic() + WAIT
        while len(self.scheduler._run_lane) < count:
            assert time.monotonic() < deadline, "the triage lane never emptied"
            time.sleep(0.01)

    def wait_in_run_lane(self, job: Job) -> None:
        deadline = time.monotonic() + WAIT
        while job not in list(self.scheduler._run_lane):
            assert time.monotonic() < deadline, f"{job.id} never reached the run lane"
            time.sleep(0.01)

    def finish(self, job: Job) -> None:
        self.release[job.id].set()


@pytest.fixture
def lane() -> Iterator[Lane]:
    made = Lane(jobs=1, max_queue=100)
    made.scheduler.start()
    yield made
    made.scheduler.close()
    for event in made.release.values():
        event.set()
    made.scheduler.join(WAIT)


def test_one_job_of_another_client_runs_at_the_next_free_slot(lane: Lane) -> None:
    a_jobs = lane.submit("addr:a", 20)
    first = lane.next_started()
    assert first is a_jobs[0]
    lane.wait_queued_in_run_lane(19)
    (b_job,) = lane.submit("addr:b", 1)
    lane.wait_queued_in_run_lane(20)
    lane.finish(first)
    assert lane.next_started() is b_job
    lane.finish(b_job)
    # Then A's, in the order A sent them.
    for expected in a_jobs[1:4]:
        started = lane.next_started()
        assert started is expected
        lane.finish(started)


def test_clients_take_turns(lane: Lane) -> None:
    holder = lane.submit("addr:holder", 1)[0]
    assert lane.next_started() is holder
    a_jobs = lane.submit("addr:a", 3)
    b_jobs = lane.submit("addr:b", 3)
    cli = lane.submit("", 2)  # the CLI and resumed jobs: one client together
    lane.wait_queued_in_run_lane(8)
    lane.finish(holder)
    order = []
    for _ in range(8):
        job = lane.next_started()
        order.append(job)
        lane.finish(job)
    assert order == [
        a_jobs[0],
        b_jobs[0],
        cli[0],
        a_jobs[1],
        b_jobs[1],
        cli[1],
        *a_jobs[2:],
        *b_jobs[2:],
    ]


def test_a_client_that_resubmits_does_not_starve_one_that_waits(lane: Lane) -> None:
    """A client that queues its next job while its last one runs goes behind the others."""
    waiting = lane.submit("addr:patient", 3)
    lane.submit("addr:eager", 1)
    started = []
    job = lane.next_started()
    for _ in range(5):
        started.append(job)
        if job.client == "addr:eager":
            eager = lane.submit("addr:eager", 1)[0]  # while its last one still runs
            lane.wait_in_run_lane(eager)
        lane.finish(job)
        job = lane.next_started()
    lane.finish(job)
    clients = [j.client for j in started]
    assert clients.count("addr:patient") >= 2, clients
    assert [j for j in started if j.client == "addr:patient"] == waiting[
        : clients.count("addr:patient")
    ]


def test_a_client_holds_only_its_share_of_the_queue() -> None:
    made = Lane(jobs=2, max_queue=40)  # not started: everything stays queued
    share = client_share(2, 40)
    assert share == 10
    made.submit("addr:greedy", share)
    with pytest.raises(ShareFull) as refused:
        made.scheduler.submit([made.job("addr:greedy")])
    assert refused.value.http_status == 429 and refused.value.retry_after >= 1
    with pytest.raises(ShareFull):
        made.scheduler.check(1, "addr:greedy")
    # Others still get in, up to the whole queue.
    for n in range(3):
        made.submit(f"addr:other-{n}", share)
    with pytest.raises(QueueFull):
        made.scheduler.submit([made.job("addr:late")])
    # A cancelled (removed) job gives its place back to its client.
    greedy = [j for j in made.scheduler.queued() if j.client == "addr:greedy"]
    assert made.scheduler.remove(greedy[0])
    made.scheduler.check(1, "addr:greedy")
    # Jobs of no known client (the operator's, in-process) are bounded by the queue alone.
    made.scheduler.remove(greedy[1])
    made.scheduler.submit([made.job("")])
    made.scheduler.submit([made.job("")])
    with pytest.raises(QueueFull):
        made.scheduler.submit([made.job("")])
    # Jobs resumed at start (force) are not refused.
    made.scheduler.submit([made.job("") for _ in range(5)], force=True)
    assert made.scheduler.depth == 40 + 5


def test_a_lone_client_keeps_every_build_thread_busy() -> None:
    assert client_share(jobs=1, max_queue=2) == 2
    assert client_share(jobs=8, max_queue=1000) == 250
    assert client_share(jobs=64, max_queue=100) == 100


def test_compiles_handed_over_without_a_thread_and_task_runs_stay_within_jobs() -> None:
    """Compiles go to pf serve's build process (which runs PF_JOBS at once) with no run
    thread waiting on each, up to the room given; a task run runs on a run thread, and
    while one is held at most PF_JOBS jobs are, so a task waits for a place."""
    made = Lane(jobs=2, max_queue=50, begin_room=4)
    made.scheduler.start()

    def held(count: int) -> None:
        deadline = time.monotonic() + WAIT
        while len(made.scheduler.running_jobs()) != count:
            assert time.monotonic() < deadline, made.scheduler.running_jobs()
            time.sleep(0.01)

    try:
        c = [made.job("addr:a") for _ in range(5)]
        for job in c:
            made.scheduler.submit([job])
        assert [made.next_started() for _ in range(4)] == c[:4]  # the room: four
        with pytest.raises(queue.Empty):
            made.started.get(timeout=0.3)
        assert not any(name.startswith("pf-build-") for name in made.threads.values())
        made.release[c[0].id].set()
        # Handed over by the thread that learnt of an end, not by a run thread.
        assert made.next_started() is c[4] and made.threads[c[4].id] == f"end-{c[0].id}"
        task = made.job("addr:b", kind="task")
        made.scheduler.submit([task])
        later = made.job("addr:a")
        made.scheduler.submit([later])
        made.wait_in_run_lane(later)
        for job in c[1:3]:
            made.release[job.id].set()
        held(2)
        with pytest.raises(queue.Empty):
            made.started.get(timeout=0.3)  # 2 held: with the task, 3; and all wait behind it
        made.release[c[3].id].set()
        assert made.next_started() is task  # 1 compile + the task: 2 = PF_JOBS
        assert made.threads[task.id].startswith("pf-build-")
        with pytest.raises(queue.Empty):
            made.started.get(timeout=0.3)  # no compile joins while the task runs
        made.release[c[4].id].set()
        assert made.next_started() is later
        made.release[task.id].set()
        made.release[later.id].set()
        held(0)
    finally:
        made.scheduler.close()


@pytest.mark.parametrize(
    ("seconds", "handed"),
    [(None, 2), (1.0, 2), (0.012, 4)],
    ids=["unknown", "long", "quick"],
)
def test_quick_compiles_are_handed_over_beyond_the_room_up_to_the_budget(
    seconds: float | None, handed: int
) -> None:
    """Two a job at least; more while those handed over are expected to take
    BEGIN_BUDGET (0.05 s) together: four of 12 ms, none more of a second or unknown."""
    made = Lane(jobs=1, max_queue=50, begin_room=2, cost=lambda job: seconds)
    made.scheduler.start()
    try:
        jobs = made.submit("addr:a", 10)
        assert [made.next_started() for _ in range(handed)] == jobs[:handed]
        with pytest.raises(queue.Empty):
            made.started.get(timeout=0.3)
        made.finish(jobs[0])
        assert made.next_started() is jobs[handed]  # one ended, one more
    finally:
        made.scheduler.close()
        for event in made.release.values():
            event.set()
