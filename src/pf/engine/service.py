"""The build service: the one object pf serve's HTTP and WebSocket layers talk to.

Strategy: a submission is validated on the caller's thread (language, target, options,
project, and the driver's plan, so every client mistake is a 4xx before anything is
queued), becomes a Job, and is recorded and announced (``build_started``) before the
Scheduler sees it. From there worker threads own it: a triage thread answers cache hits
at once, and the misses run (runner.py): handed to pf serve's build process without a
thread waiting for each (Scheduler's ``begin``), or on PF_JOBS build threads where the
compiles run in this process (the shared tier). Once the queue is half full the triage
threads have fallen behind (they share the GIL with the event loop), and a submission
is looked up in the cache by the submitting call itself: a hit is answered then and
there, a miss goes straight to the run lane. Every write and event goes through the
Recorder's single writer thread, in order. Live jobs sit in ``_active`` and
are never evicted; finished ones move to a bounded RecentBuilds, and anything older is
read back from the store. Every public method is cheap and non-blocking enough to call
from the asyncio loop (reads of old builds and logs are single indexed SQLite queries);
``start`` and ``stop`` run their blocking parts in threads.

Restart policy (one process): builds *queued* when pf stopped run again on
start (nothing of them had run, and the user asked for them); builds *running* when it
stopped are marked failed with error ``interrupted by restart``, because their
compiler died with the process and re-running silently could loop on whatever killed
it. A graceful stop lets running builds finish for ``grace`` seconds, then cancels them
(error ``cancelled: pf serve shut down``); queued ones stay queued for the next start.

Shared mode (PF_DATABASE_URL on PostgreSQL and PF_REDIS_URL, unless PF_LOCAL_BUILDS=1):
this process validates, records and announces a submission as above, then hands it to
the job queue (engine.dispatch) instead of its Scheduler; pf worker processes run it
(engine.farm) and write its record and events. Queries then read the shared store, not
this process's memory: a build may run anywhere and be asked for through any pf serve.
A restart here neither fails running builds nor resumes queued ones: the workers and
the queue own them.

Pfyfile task runs (``submit_task``, engine.taskruns) are jobs like any build: the same
queue, workers, records, logs, events, cancellation and restart policy (a queued run
runs again, its task looked up in the Pfyfile as it is then).
Imports engine internals, store, toolchains, tasks, config and errors; never
pf.server/pf.cli.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from pf import sandbox
from pf.config import Settings
from pf.engine import events
from pf.engine.buildproc import LOOKAHEAD, BuildProcess
from pf.engine.bus import bus_for
from pf.engine.cache import ActionCache, Artifact
from pf.engine.catalog import Module, Modules, Projects
from pf.engine.compile import BuildResult
from pf.engine.diskspace import FreeSpace
from pf.engine.dispatch import Dispatcher
from pf.engine.events import Subscription
from pf.engine.intake import Intake
from pf.engine.jobs import (
    CANCELLED,
    COMPLETED,
    FAILED,
    QUEUED,
    RUNNING,
    Estimator,
    Job,
    iso_time,
    new_task_id,
)
from pf.engine.layout import TARGET_DIRS, source_folder
from pf.engine.recorder import Recorder
from pf.engine.retention import PRUNE_INTERVAL, RecentBuilds, prune_history, pruner
from pf.engine.runner import Runner
from pf.engine.scheduler import QUEUE_DEPTH, Scheduler
from pf.engine.taskruns import Pfyfiles
from pf.engine.vitals import QUEUE_CAPACITY, WORKERS
from pf.errors import Forbidden, NotFound, PfError, ServiceUnavailable, StoreError
from pf.store.db import StoreUnavailable
from pf.store.history import Store
from pf.store.jobqueue import QUEUE
from pf.store.record import BuildRecord
from pf.store.shared import SharedCache

log = logging.getLogger("pf.engine")

SHUTDOWN_REASON = "cancelled: pf serve shut down"
_CANCEL_JOIN = 10.0
_FRESH = 10.0  # seconds after its end during which a build's log may still be in flight


class BuildFinished(PfError):
    """A cancel of a build that already ended (HTTP 409, as the OpenAPI document says)."""

    code = "conflict"
    http_status = 409

    def __init__(self, build_id: str, status: str) -> None:
        super().__init__(
            f"Build {build_id} already finished ({status}): there is nothing to cancel",
            hint="only queued and running builds can be cancelled",
        )
        self.status = status


class WriterBehind(ServiceUnavailable):
    """The database writer is too far behind to take more builds now (HTTP 503)."""

    code = "writer-behind"

    def __init__(self, backlog: int) -> None:
        super().__init__(
            f"pf is still recording earlier builds ({backlog} records wait for the database)",
            retry_after=1,
            hint="retry in 1 s; if this lasts, the database is locked or too slow",
        )


class BuildService:
    """Builds on request: queue, run, record, stream. See the module docstring.

    ``store`` may be None (the store PF_DATABASE_URL names, or ``.pf/pf.db``). A service
    starts and stops once; make a new one to start again::

        service = BuildService(settings, None, Path("demos"))
        await service.start()
        record = service.submit_build("c", "wasm", None, {"opt_level": "s"})
        await service.stop(grace=30)
    """

    def __init__(self, settings: Settings, store: Store | None, projects_root: Path) -> None:
        # Whoever sends a build here waits on it over HTTP: it gets PF_API_BUILD_TIMEOUT,
        # never more than PF_BUILD_TIMEOUT (which CLI builds keep), so no request holds
        # a build thread for the whole of a slow CLI build's allowance.
        settings = replace(
            settings, build_timeout=min(settings.build_timeout, settings.api_build_timeout)
        )
        self.settings = settings
        self.store = store if store is not None else Store.for_settings(settings)
        self.projects_root = projects_root
        # Shared mode: builds go to pf worker processes through the job queue.
        self.remote = not settings.builds_here
        # Other processes complete builds too: their modules are published here.
        completed = self._completed_elsewhere if settings.shared else None
        self.bus = bus_for(settings, self.store, completed)
        # Each build is a handful of records, lines and events: eight per queue slot keeps
        # the writer's backlog (and its memory) bounded by PF_MAX_QUEUE as well.
        self.recorder = Recorder(self.store, self.bus, max_backlog=8 * settings.max_queue)
        self.estimator = Estimator()
        self.recent = RecentBuilds(settings.max_builds)
        self.catalog = Projects(projects_root)
        self.intake = Intake(settings, self.catalog)
        self.pfyfiles = Pfyfiles(settings, projects_root)
        self.modules_index = Modules()
        self._active: dict[str, Job] = {}
        self._lock = threading.RLock()
        self._accepting = False
        self._started = False
        self._history = 0
        self._probed: set[str] = set()  # tools a cache lookup has probed (see _accept)
        self._cache: ActionCache | None = None
        self._runner: Runner | None = None
        self.dispatcher: Dispatcher | None = None
        # Builds this process queued, for the moment before their record is stored.
        self._sent = RecentBuilds(settings.max_builds)
        # Compiles run in a process of their own, off this one's GIL; with the shared
        # tier (PF_LOCAL_BUILDS in shared mode) they stay here, beside its connection.
        self.build_process = (
            BuildProcess(settings) if not settings.shared and not self.remote else None
        )
        self.scheduler = Scheduler(
            settings.jobs,
            settings.max_queue,
            self._triage,
            self._run,
            self._retry_after,
            begin=self._begin if self.build_process is not None else None,
            begin_room=settings.jobs * LOOKAHEAD,
            begin_cost=lambda job: self.estimator.median(job.language, job.target),
        )
        database = self.store.db.file
        self.free_space = FreeSpace(
            [settings.cache_dir, *([database.parent] if database is not None else [])],
            settings.min_free_disk,
        )

    # Lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store, recover from the last stop, and start the worker threads."""
        if self._started:
            return
        self.bus.attach(asyncio.get_running_loop())
        resumed = await asyncio.to_thread(self._open)
        self.recorder.every(PRUNE_INTERVAL, pruner(self.store, self.settings))
        self.recorder.start()
        self.scheduler.start()
        if self.dispatcher is not None:
            self.dispatcher.start()
        if self.build_process is not None:
            try:
                await asyncio.to_thread(self.build_process.start)
            except OSError as error:
                # Not fatal here: the first compile starts it again, and fails with why.
                log.warning("pf: the build process did not start (%s)", error)
        self._started = True
        self._accepting = True
        if resumed:
            self._accept(resumed, force=True, announce=False)

    def _open(self) -> list[Job]:
        self.store.open()
        shared = SharedCache(self.store.db, self.settings.shared_cache_max_bytes)
        self._cache = ActionCache.for_settings(
            self.settings, shared if self.settings.shared else None
        )
        self._runner = Runner(
            self.settings,
            self._cache,
            self.recorder,
            self.estimator,
            self._retire,
            self._index_modules,
            begin=self.build_process.begin if self.build_process is not None else None,
        )
        if self.remote:
            return self._open_remote()
        interrupted, queued = self.store.recover(time.time())
        if interrupted:
            log.warning("pf: %d builds were running at the last stop: marked failed", interrupted)
        prune_history(self.store, self.settings)
        blobs = self._cache.blobs
        finished = [
            Job.from_record(r, blobs) for r in reversed(self.store.recent(self.recent.limit))
        ]
        finished = [j for j in finished if j.finished]
        self.recent.seed(finished)
        for job in finished:
            if job.status == COMPLETED and job.project is not None:
                self._index_modules(job)
        self.estimator.seed(self.store.durations(self.estimator.per_pair))
        self._history = self.store.count()
        resumed = []
        for row in queued:
            job = Job.from_record(row, blobs)
            try:
                if job.kind == "task":
                    self._resume_task(job)
                else:
                    self.intake.resume(job)
            except PfError as error:
                self._runner.end(job, FAILED, error=error)
                continue
            resumed.append(job)
        return resumed

    def _open_remote(self) -> list[Job]:
        from pf.store.jobqueue import Queue

        assert self.settings.database_url is not None
        queue = Queue(self.settings.database_url)
        queue.open()
        self.dispatcher = Dispatcher(
            queue,
            self.settings.max_queue,
            self._not_queued,
            jobs=self.settings.jobs,
            retry_after=self._retry_after,
        )
        self.estimator.seed(self.store.durations(self.estimator.per_pair))
        assert self._cache is not None
        for row in reversed(self.store.completed_projects(self.modules_index.limit)):
            self._index_modules(Job.from_record(row, self._cache.blobs))
        return []

    def _not_queued(self, job: Job, error: PfError) -> None:
        assert self._runner is not None
        self._runner.end(job, FAILED, error=error)

    async def stop(self, grace: float) -> None:
        """Stop accepting; let running builds finish for ``grace`` s; then cancel them."""
        if not self._started:
            return
        self._accepting = False
        if self.dispatcher is not None:
            await asyncio.to_thread(self.dispatcher.stop)
            await asyncio.to_thread(self.dispatcher.queue.close)
        self.scheduler.close()
        if self.build_process is not None:
            self.build_process.hold()
        idle = await asyncio.to_thread(self.scheduler.wait_idle, grace)
        if not idle:
            for job in self.scheduler.running_jobs():
                job.cancel_reason = SHUTDOWN_REASON
                job.cancel.set()
            if self.build_process is not None:
                self.build_process.forward_cancels()
            await asyncio.to_thread(self.scheduler.wait_idle, _CANCEL_JOIN)
        await asyncio.to_thread(self.scheduler.join, _CANCEL_JOIN)
        if self.build_process is not None:
            await asyncio.to_thread(self.build_process.close)
        await asyncio.to_thread(self.recorder.stop)
        self.bus.close()
        self.bus.detach()
        await asyncio.to_thread(self.store.close)
        with self._lock:
            self._active.clear()
        self._started = False

    async def readiness(self) -> dict[str, Any]:
        """Whether builds can be served: the store answers, some toolchain is usable, and
        the cache and database have PF_MIN_FREE_DISK free; ``reason`` says why not."""
        from pf.toolchains.matrix import matrix

        store_ok = await asyncio.to_thread(self.store.ping)
        pairs = await asyncio.to_thread(matrix, self.settings)
        available = sum(1 for p in pairs if p.available)
        short = self.free_space.shortage()
        # Compiles are refused while the sandbox cannot start (it fails closed).
        unconfinable = await asyncio.to_thread(sandbox.probe, self.settings)
        confinement = None if unconfinable is None else f"{unconfinable} ({unconfinable.hint})"
        bus_problem = await asyncio.to_thread(self.bus.problem)
        reasons = [
            reason
            for failed, reason in (
                (not self._accepting, "the build service is starting or shutting down"),
                (not store_ok, "the build database does not answer"),
                # In shared mode pf worker processes compile, not this one.
                (available == 0 and not self.remote, "no toolchain is usable"),
                (short is not None, short),
                (confinement is not None and not self.remote, confinement),
                (bus_problem is not None, bus_problem),
            )
            if failed
        ]
        queue: dict[str, int] | str | None = None
        if self.dispatcher is not None:
            queue = await asyncio.to_thread(self._queue_state)
            if queue == "unavailable":
                reasons.append("the job queue does not answer")
        body: dict[str, Any] = {
            "ready": not reasons,
            "accepting": self._accepting,
            "store": "ok" if store_ok else "unavailable",
            "toolchains": {"available": available, "total": len(pairs)},
            "disk": "ok" if short is None else "low",
            "sandbox": self.settings.sandbox if unconfinable is None else "unavailable",
            "events": "ok" if bus_problem is None else "unavailable",
        }
        if queue is not None:
            body["queue"] = queue
        if reasons:
            body["reason"] = "; ".join(str(reason) for reason in reasons)
        return body

    def _queue_state(self) -> dict[str, int] | str:
        """The job queue's builds waiting and running and its pf workers (shared mode)."""
        assert self.dispatcher is not None
        try:
            state = self.dispatcher.state().to_dict()
        except StoreUnavailable:
            return "unavailable"
        state["queued"] += self.dispatcher.waiting
        return state

    # Submissions --------------------------------------------------------------------

    def submit_build(
        self,
        language: str,
        target: str,
        project: str | None,
        options: Mapping[str, object],
        *,
        client: str = "",
    ) -> BuildRecord:
        """Queue a build of one language of a project; returns its record (status queued)."""
        self._check_accepting()
        job = self.intake.build(language, target, project, options)
        job.client = client
        self._accept([job])
        return job.shown()

    def submit_all(
        self,
        target: str,
        project: str | None,
        options: Mapping[str, object],
        *,
        client: str = "",
    ) -> tuple[list[BuildRecord], dict[str, str]]:
        """Queue one build per language of the project whose driver serves ``target``;
        returns their records and, per language left out as unbuildable, why."""
        self._check_accepting()
        jobs, skipped = self.intake.all(target, project, options)
        for job in jobs:
            job.client = client
        self._accept(jobs)
        return [job.shown() for job in jobs], {k: e.message for k, e in skipped.items()}

    def submit_compile(
        self,
        language: str,
        target: str,
        files: Mapping[str, str],
        options: Mapping[str, object],
        *,
        client: str = "",
    ) -> BuildRecord:
        """Queue a compile of sources sent inline (POST /api/compile)."""
        self._check_accepting()
        job = self.intake.inline(language, target, files, options)
        job.client = client
        self._accept([job])
        return job.shown()

    def submit_task(self, name: str, params: Mapping[str, str], *, client: str = "") -> BuildRecord:
        """Queue a run of the Pfyfile task ``name`` (``task`` or ``group:task``).

        Reads the Pfyfile (when it changed): call from a thread, not the event loop.
        TaskNotFound (404), InvalidParameter (400), PfyfileInvalid (503).
        """
        self._check_accepting()
        call = self.pfyfiles.call(name, params)
        job = Job(
            id=new_task_id(call.name),
            language="task",
            target=call.name,
            project=None,
            options={},
            created_at=time.time(),
            kind="task",
            task=call.name,
            params=dict(call.params),
            budget=self.intake.budget(),
            client=client,
        )
        job.call = call
        self._accept([job])
        return job.shown()

    async def recorded(self) -> None:
        """Wait until every build submitted so far is in the store (or held by the writer
        while the database does not answer): call after a submit, before answering it."""
        await self.recorder.settled()

    def tasks(self) -> dict[str, Any]:
        """The tasks of the server's Pfyfile (engine.taskruns.Pfyfiles.listing); call from
        a thread: it may parse the Pfyfile."""
        return self.pfyfiles.listing()

    def _resume_task(self, job: Job) -> None:
        job.call = self.pfyfiles.call(job.task or job.target, dict(job.params or {}))
        job.budget = self.intake.budget()

    def _check_accepting(self) -> None:
        if not self._accepting:
            raise ServiceUnavailable(
                "the build service is not running (starting or shutting down)", retry_after=5
            )

    def _accept(self, jobs: list[Job], *, force: bool = False, announce: bool = True) -> None:
        if self.dispatcher is not None:
            self._send(jobs)
            return
        if force or self.scheduler.depth * 2 < self.settings.max_queue:
            self._enqueue(jobs, force=force, announce=announce)
            self.scheduler.submit(jobs, force=True)
            return
        # The queue is half full: the triage threads, which share the GIL with this
        # loop, fell behind. Look the compiles up here instead, so a flood of cache hits
        # is answered as it comes rather than filling the queue (with every queued job's
        # memory, which the allocator keeps after the flood) until misses get 503s, and
        # a hit is answered even when the queue is full: only what must wait counts
        # against the bound. Below half full the lookup stays off this path (answering
        # every hit here halved the submission rate). Only compiles whose tools were
        # probed before: a probe runs the tool.
        assert self._runner is not None
        found: dict[Job, BuildResult | PfError] = {}
        others: list[Job] = []
        misses: list[Job] = []
        for job in jobs:
            if job.kind != "compile" or not self._probed.issuperset(job.tools):
                others.append(job)
            elif (result := self._runner.look_up(job)) is not None:
                found[job] = result
            else:
                misses.append(job)
        self._enqueue(jobs, waiting=len(others) + len(misses))
        for job, result in found.items():
            self._runner.answer(job, result)
        self.scheduler.submit(misses, force=True, triaged=True)
        self.scheduler.submit(others, force=True)

    def _enqueue(
        self,
        jobs: list[Job],
        *,
        force: bool = False,
        announce: bool = True,
        waiting: int | None = None,
    ) -> None:
        """Record and announce ``jobs`` unless ``waiting`` of them (default: all) do not fit
        the queue (QueueFull, nothing recorded); ``force`` skips the bound."""
        with self._lock:
            count = len(jobs) if waiting is None else waiting
            if not force and self.recorder.behind():
                raise WriterBehind(self.recorder.backlog)
            if not force and count:
                self.scheduler.check(count, jobs[0].client if jobs else "")
            for job in jobs:
                self._active[job.id] = job
                job.eta = self.estimator.eta(job.language, job.target, None)
                started = events.build_started(job.id, job.language, job.target, job.project)
                self.recorder.record(job.record(), started if announce else None)
            self._history += 0 if force else len(jobs)

    def _send(self, jobs: list[Job]) -> None:
        """Record and announce ``jobs``, then queue them for pf worker processes."""
        assert self.dispatcher is not None
        if self.recorder.behind():
            raise WriterBehind(self.recorder.backlog)
        self.dispatcher.check(len(jobs), jobs[0].client if jobs else "")
        with self._lock:
            for job in jobs:
                job.plan = None  # a pf worker looks it up, with a plan of its own
                self._sent.add(job)
                job.eta = self.estimator.eta(job.language, job.target, None)
                started = events.build_started(job.id, job.language, job.target, job.project)
                self.recorder.record(job.record(), started)
        self.dispatcher.put(jobs)

    def _retry_after(self, depth: int) -> int:
        typical = self.estimator.typical() or 5.0
        return max(1, min(300, math.ceil(typical * (depth + 1) / self.settings.jobs)))

    # Worker callbacks ---------------------------------------------------------------

    def _triage(self, job: Job) -> bool:
        assert self._runner is not None
        done = self._runner.triage(job)
        if job.kind == "compile" and job.status != FAILED:
            # Its tools were probed (found, versions read, binaries digested): a lookup
            # needing only those is a few stats and small reads from now on.
            self._probed.update(job.tools)
        return done

    def _run(self, job: Job) -> None:
        assert self._runner is not None
        # Every compile here was looked up first: by triage, or on the loop.
        self._runner.run(job, missed=True)

    def _begin(self, job: Job, then: Callable[[], None]) -> None:
        assert self._runner is not None
        self._runner.begin(job, then, missed=True)  # looked up first, as in _run

    def _retire(self, job: Job, _result: BuildResult | None) -> None:
        job.request = None
        job.call = None
        job.inline_sources = None
        with self._lock:
            self._active.pop(job.id, None)
            self.recent.add(job)

    def _index_modules(self, job: Job) -> None:
        """Publish a completed project build's artifacts at the original's paths
        (engine.layout): the latest /<target>/<source folder>/<file>."""
        assert job.ended_at is not None
        folder = source_folder(self.catalog.find(job.project), job.language)
        preferred = self.catalog.default_name(self.settings.default_project)
        for artifact in job.artifacts:
            module = Module(
                job.language, job.target, job.id, artifact, job.ended_at, folder, job.project
            )
            self.modules_index.add(module, preferred)

    async def _completed_elsewhere(self, build_id: str) -> None:
        """Shared mode: another process (a pf worker) completed ``build_id``; publish its
        modules before this process's clients hear of it, so one that fetches them at
        once finds them."""
        try:
            await asyncio.to_thread(self._index_stored, build_id)
        except StoreError as error:
            log.warning("pf: modules of build %s not published here: %s", build_id, error)

    def _index_stored(self, build_id: str) -> None:
        row = self.store.get(build_id) if self._cache is not None else None
        if row is not None and row.status == COMPLETED and row.project is not None:
            assert self._cache is not None
            self._index_modules(Job.from_record(row, self._cache.blobs))

    # Queries ------------------------------------------------------------------------

    def _job(self, build_id: str) -> Job | None:
        if self.remote:
            return self._stored(build_id)
        with self._lock:
            job = self._active.get(build_id) or self.recent.get(build_id)
        if job is not None:
            return job
        if not self.store.is_open or self._cache is None:
            return None
        row = self.store.get(build_id)
        return Job.from_record(row, self._cache.blobs) if row is not None else None

    def _stored(self, build_id: str) -> Job | None:
        """Shared mode: a build as the store has it (a worker may be running it), or as
        this process queued it while its record is on the way."""
        if self.store.is_open and self._cache is not None:
            row = self.store.get(build_id)
            if row is not None:
                return Job.from_record(row, self._cache.blobs)
        with self._lock:
            return self._sent.get(build_id)

    def get(self, build_id: str) -> BuildRecord | None:
        """One build's record: memory first, then the store; None if unknown."""
        job = self._job(build_id)
        return job.shown() if job is not None else None

    def list_builds(
        self, limit: int = 100, status: str | None = None, language: str | None = None
    ) -> list[BuildRecord]:
        """The newest builds first, optionally of one status or language."""
        if self.remote:
            if self._cache is None:
                return []
            return self.store.recent(limit, status=status, language=language)
        with self._lock:
            jobs = [*self._active.values(), *self.recent.newest_first()]
            in_memory = len(jobs)
        if status is not None or language is not None:
            jobs = [
                j
                for j in jobs
                if (status is None or j.shown_status == status)
                and (language is None or j.language == language)
            ]
        newest = heapq.nlargest(limit, jobs, key=_newest)
        records = [j.shown() for j in newest]
        # Older builds than memory holds are in the store only.
        if len(records) < limit and self._history > in_memory and self._cache is not None:
            seen = {r.id for r in records}
            rows = self.store.recent(limit + len(records), status=status, language=language)
            stored = [Job.from_record(r, self._cache.blobs) for r in rows if r.id not in seen]
            merged = heapq.nlargest(limit, [*newest, *stored], key=_newest)
            records = [j.shown() for j in merged]
        return records

    def cancel(self, build_id: str, *, by: str | None = None) -> BuildRecord:
        """Cancel a queued build (dropped at once) or a running one (its process group is
        killed). NotFound for an unknown id, BuildFinished (409) for one that ended;
        with ``by`` (a client), Forbidden (403) for a build another client submitted."""
        if self.remote:
            return self._cancel_remote(build_id, by)
        with self._lock:
            job = self._active.get(build_id)
        if job is None:
            record = self.get(build_id)
            if record is None:
                raise NotFound(f"Build not found: {build_id}")
            raise BuildFinished(build_id, record.status)
        if by is not None and job.client != by:
            raise Forbidden(
                f"build {build_id} was submitted by another client: "
                "a build token cancels only its own builds (an admin token cancels any)"
            )
        if job.cancel.is_set():
            # Cancelled already, its processes being killed: the second cancel gets the
            # answer it will get once the build has ended, not a second 200.
            raise BuildFinished(build_id, CANCELLED)
        assert self._runner is not None
        if self.scheduler.remove(job):
            self._runner.end(job, CANCELLED)
        else:
            job.cancel.set()
            if self.build_process is not None:
                self.build_process.forward_cancels()
            if job.status == QUEUED:
                # Handed to the build process but not started there: it never will be,
                # so it ends now, as one still in the queue does.
                self._runner.end(job, CANCELLED)
        return job.shown()

    def _cancel_remote(self, build_id: str, by: str | None) -> BuildRecord:
        """Shared mode's cancel: take the build out of the queue if no worker has it,
        else ask the worker running it to abort (it records the end)."""
        assert self.dispatcher is not None and self._runner is not None
        job = self._stored(build_id)
        if job is None:
            raise NotFound(f"Build not found: {build_id}")
        if job.finished:
            raise BuildFinished(build_id, job.status)
        if by is not None and job.client != by:
            raise Forbidden(
                f"build {build_id} was submitted by another client: "
                "a build token cancels only its own builds (an admin token cancels any)"
            )
        waiting = self.dispatcher.take(build_id)
        queue = self.dispatcher.queue
        found = queue.job_of(build_id) if waiting is None else None
        # Not in the queue at all (a pf serve died before queueing it), or still waiting
        # there: no worker has it, so it ends here.
        if (
            waiting is not None
            or found is None
            or (found[1] == "todo" and queue.cancel(found[0], abort=False))
        ):
            job.cancel.set()
            self._runner.end(job, CANCELLED)
            return job.shown()
        queue.cancel(found[0], abort=True)
        job.cancel.set()  # shown as cancelled while its worker kills the compiler
        return job.shown()

    def logs(self, build_id: str) -> list[dict[str, Any]] | None:
        """docs/server.md's log entries of a build, in order; None if the build is unknown.

        Blocks up to a few ms for a build that just ended (call from a thread).
        """
        job = self._job(build_id)
        if job is None:
            return None
        if job.ended_at is not None and time.time() - job.ended_at < _FRESH:
            # Its record says it ended before the writer thread may have stored its last
            # lines: a client that saw "completed" must find them all.
            self.recorder.flush(timeout=_CANCEL_JOIN)
        return [
            {
                "timestamp": iso_time(line.ts),
                "level": line.level,
                "message": line.text,
                "stdout": line.text if line.stream == "stdout" else "",
                "stderr": line.text if line.stream == "stderr" else "",
                "stream": line.stream,
            }
            for line in self.store.logs(build_id)
        ]

    def lines_after(self, build_id: str, after: int, limit: int) -> list[dict[str, Any]]:
        """The first ``limit`` stored log lines of a build numbered above ``after``, as
        build_log events carry them (``{stream, text, seq}``); [] for an unknown build.
        Call from a thread.

        Every line is stored before it is published, so a client that saw line ``after``
        live finds every later published one here."""
        return [
            {"stream": line.stream, "text": line.text, "seq": line.seq}
            for line in self.store.logs(build_id, after, limit=limit)
        ]

    def artifact(self, build_id: str, path: str) -> Artifact | None:
        """An artifact of a build whose bytes are still in the cache, as a file, or None.

        Call from a thread: a small artifact the cache keeps in its database is written to
        a file at its first request, and in shared mode bytes a worker built are brought
        from the shared cache."""
        job = self._job(build_id)
        found = job.find_artifact(path) if job is not None else None
        return self._as_file(found) if found is not None else None

    def module_file(self, published: str) -> Artifact | None:
        """The latest build's file at ``<target>/<folder>/<name>`` (its URL path), or None.

        Never blocks (call it on the loop). None where ``may_find_module`` is true may
        mean that its bytes are not in a file yet (a small one the cache keeps in its
        database), or in shared mode that this process has not seen the build yet or
        lacks its bytes: ``find_module_file``."""
        module = self.modules_index.get(published)
        if module is None or not module.artifact.path.is_file():
            return None
        return module.artifact

    def may_find_module(self, published: str) -> bool:
        """Whether ``find_module_file`` may find what ``module_file`` did not."""
        return self.settings.shared or self.modules_index.get(published) is not None

    def find_module_file(self, published: str) -> Artifact | None:
        """``module_file``, from a thread: its bytes brought into a file, from the cache's
        database or the shared cache, and in shared mode after asking the store for the
        build that last completed at that path (its completion event may not have reached
        this process yet, or Redis lost it)."""
        module = self.modules_index.get(published)
        if module is None:
            module = self._look_up_module(published)
        return self._as_file(module.artifact) if module is not None else None

    def _as_file(self, artifact: Artifact) -> Artifact | None:
        """``artifact`` once its blob is a file here: written from the cache's database,
        or brought from the shared cache, if it is not one yet; None if neither has it."""
        if artifact.path.is_file():
            return artifact
        if self._cache is None or self._cache.fetch(artifact.digest, artifact.size) is None:
            return None
        return artifact if artifact.path.is_file() else None

    def _look_up_module(self, published: str) -> Module | None:
        target, _, rest = published.partition("/")
        folder, _, name = rest.partition("/")
        if self._cache is None or target not in TARGET_DIRS or not name:
            return None
        for project in self.catalog.all():
            for language in project.languages:
                if source_folder(project, language) != folder:
                    continue
                row = self.store.latest_completed(project.name, language, target)
                if row is not None and any(a.get("name") == name for a in row.artifacts):
                    self._index_modules(Job.from_record(row, self._cache.blobs))
        return self.modules_index.get(published)

    def projects(self) -> list[dict[str, Any]]:
        return [
            {"name": p.name, "path": str(p.path), "languages": p.languages}
            for p in self.catalog.all()
        ]

    def modules(self) -> list[dict[str, Any]]:
        return self.modules_index.listing()

    def subscribe(self) -> Subscription:
        """A subscription to every build event from now on (call on the event loop)."""
        return self.bus.subscribe()

    @property
    def queue_depth(self) -> int:
        return self.scheduler.depth

    @property
    def active_builds(self) -> int:
        """Builds running a compiler right now (at most PF_JOBS)."""
        return self.scheduler.running

    @property
    def queued_builds(self) -> int:
        """Builds waiting: for a cache lookup or for a free worker (bounded by PF_MAX_QUEUE)."""
        return self.scheduler.depth

    def metrics(self) -> dict[str, Any]:
        """docs/server.md's /api/metrics fields that the service owns (not the HTTP ones); in
        shared mode, counted over every process from the store (call from a thread)."""
        if self.remote:
            return self._shared_metrics()
        runner = self._runner
        return {
            "buildCount": self._history,
            "activeBuilds": self.active_builds,
            "queuedBuilds": self.queued_builds,
            "cacheHits": runner.hits if runner is not None else 0,
            "cacheMisses": runner.misses if runner is not None else 0,
            "memoryUsage": _memory_usage(),
            "eventSubscribers": self.bus.subscribers,
        }

    def sample(self) -> None:
        """Refresh the gauges that are read rather than counted (engine.vitals): queue
        depth and capacity, free disk, and in shared mode the live pf workers. Call from
        a thread: in shared mode it queries the job queue."""
        QUEUE_CAPACITY.set(self.settings.max_queue)
        self.free_space.shortage()
        dispatcher = self.dispatcher
        if dispatcher is None:
            QUEUE_DEPTH.set(self.scheduler.depth)
            return
        QUEUE_DEPTH.set(dispatcher.state().todo + dispatcher.waiting)
        alive = dispatcher.queue.live_workers(self.settings.worker_stalled_after)
        WORKERS.labels(QUEUE).set(alive)

    def _shared_metrics(self) -> dict[str, Any]:
        counts = self.store.status_counts()
        hits, misses = self.store.cache_counts()
        return {
            "buildCount": sum(counts.values()),
            "activeBuilds": counts.get(RUNNING, 0),
            "queuedBuilds": counts.get(QUEUED, 0),
            "cacheHits": hits,
            "cacheMisses": misses,
            "memoryUsage": _memory_usage(),
            "eventSubscribers": self.bus.subscribers,
        }


def _newest(job: Job) -> tuple[float, str]:
    return (job.created_at, job.id)


def _memory_usage() -> dict[str, int]:
    try:
        with open("/proc/self/statm") as handle:
            pages = [int(field) for field in handle.read().split()]
    except (OSError, ValueError):
        return {}
    size = os.sysconf("SC_PAGE_SIZE")
    return {"rss": pages[1] * size, "vms": pages[0] * size}
