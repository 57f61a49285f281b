"""pf worker: run the builds pf serve queued in shared mode, through the same engine.

Strategy: a Farm is one process's worth of what BuildService runs builds with (store,
Recorder, event bus, action cache with the shared tier, Runner, Intake, Pfyfiles) plus a
Procrastinate worker on the queue store.jobqueue names. Each job carries its build's
record as pf serve stored it when queued; the task rebuilds the Job from it (as a
restart resumes a queued build: engine.intake, engine.taskruns) and hands it to
``Runner.run`` on a thread, so a compile runs exactly as in pf serve: cache lookup,
single-flight, sandbox, log lines, progress, record, events.

Exactly once. A worker says it is alive every PF_WORKER_HEARTBEAT seconds; every worker,
as often, gives the builds of workers silent for PF_WORKER_STALLED_AFTER back to the
queue (Procrastinate's stalled-job retry), which counts the job's ``attempts``. The build
runs again under that attempt number, and the store refuses any row of an earlier
attempt, or any row once the build has ended (store.builds.upsert); the Recorder then
announces nothing for a refused row. So a worker that was only slow, not dead, can
finish its compile but neither its record nor its events count, and a build whose
worker died after recording its end is not run again. The outputs are content-addressed
and the action is keyed by its inputs, so a re-run stores the same bytes under the same
names: it is idempotent by its action key.

Cancel. DELETE /api/builds/{id} on any pf serve cancels a waiting job in the queue, or
asks Procrastinate to abort a running one, which reaches this worker by LISTEN/NOTIFY
and cancels the task: the job's cancel event is set, the Runner kills the compiler's
process group and records the build cancelled, as in pf serve.

Imports engine internals, store, tasks, config and errors; never server or cli.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from prometheus_client import Gauge

from pf.config import Settings
from pf.engine.bus import bus_for
from pf.engine.cache import ActionCache
from pf.engine.catalog import Projects
from pf.engine.compile import BuildResult
from pf.engine.intake import Intake
from pf.engine.jobs import CANCELLED, FAILED, FINISHED, QUEUED, Estimator, Job
from pf.engine.recorder import Recorder
from pf.engine.runner import Runner
from pf.engine.taskruns import Pfyfiles
from pf.engine.vitals import sample_memory
from pf.errors import PfError
from pf.store import jobqueue
from pf.store.history import Store
from pf.store.record import BuildRecord
from pf.store.shared import SharedCache
from pf.toolchains.matrix import matrix

log = logging.getLogger("pf.worker")

_POLL = 0.1
# A build recorded queued this many seconds ago with no job in the queue was left by a
# pf serve that died between the two (each takes milliseconds); workers look for such
# builds every few heartbeats.
ORPHAN_AGE = 30.0
_ORPHAN_ROUNDS = 5
# Runs of one build that may end with their worker lost before it is failed.
MAX_ATTEMPTS = 3

WORKER_HEARTBEAT = Gauge(
    "pf_worker_heartbeat_timestamp_seconds",
    "When this pf worker's loop last went round its heartbeat (Unix time)",
)

# Set when a worker that took a build up again finds the one before it had asked to
# abort it: the user's cancel stands.
ABORTED_WHILE_LOST = "cancelled while its pf worker was lost"


def shared_cache(settings: Settings, store: Store) -> SharedCache:
    """The compile cache every process of a shared deployment reads (store.shared)."""
    return SharedCache(store.db, settings.shared_cache_max_bytes)


class Farm:
    """One pf worker process: ``await Farm(settings, projects).run(concurrency)``."""

    def __init__(self, settings: Settings, projects_root: Path) -> None:
        settings_url = settings.database_url
        if not settings.shared or settings_url is None:
            raise PfError(
                "pf worker needs shared mode: a PostgreSQL PF_DATABASE_URL and PF_REDIS_URL",
                hint="set both to the ones pf serve uses (docs/scale.md)",
            )
        self.settings = settings
        self.store = Store.for_settings(settings)
        self.bus = bus_for(settings)
        self.recorder = Recorder(self.store, self.bus, max_backlog=8 * settings.max_queue)
        self.cache = ActionCache.for_settings(settings, shared_cache(settings, self.store))
        self.runner = Runner(
            settings, self.cache, self.recorder, Estimator(), self._retire, _no_index
        )
        self.intake = Intake(settings, Projects(projects_root))
        self.pfyfiles = Pfyfiles(settings, projects_root)
        self.app = jobqueue.app(settings_url, sync=False)
        self.app.task(name=jobqueue.TASK, queue=jobqueue.QUEUE, pass_context=True)(self._build)
        self._warming: asyncio.Future[Any] | None = None

    # The task -----------------------------------------------------------------------

    async def _build(self, context: Any, build_id: str, row: dict[str, Any]) -> None:
        attempt = int(context.job.attempts)
        if attempt:
            stored = await asyncio.to_thread(self.store.get, build_id)
            if stored is not None and stored.status in FINISHED:
                # It ended under a worker that died before the queue heard so.
                return
        job = Job.from_record(BuildRecord.from_values(row), self.cache.blobs)
        job.attempt = attempt
        running = asyncio.ensure_future(asyncio.to_thread(self._run, job))
        try:
            await asyncio.shield(running)
        except asyncio.CancelledError:
            # Procrastinate aborts this job (a cancel through the API): the Runner kills
            # the compiler (or never starts it) and records the build cancelled.
            job.cancel.set()
            await running
            raise

    def _run(self, job: Job) -> None:
        """Run one build on this thread; its record is written when this returns, before
        the queue hears the job is done."""
        lost = _not_again(job)
        if lost is not None:
            self.runner.end(job, FAILED, error=lost)
        else:
            try:
                self._resume(job)
            except PfError as error:
                self.runner.end(job, FAILED, error=error)
            else:
                self.runner.run(job)
        self.recorder.flush()

    def _resume(self, job: Job) -> None:
        """Give the job its request (or task call) and, on a later attempt, say so."""
        if job.kind == "task":
            job.call = self.pfyfiles.call(job.task or job.target, dict(job.params or {}))
            job.budget = self.intake.budget()
        else:
            self.intake.resume(job)
        if job.attempt:
            log.warning("pf worker: taking up build %s again (attempt %d)", job.id, job.attempt)
            # This run's record first: from then on the store refuses the lines of the run
            # before (its worker may be only slow), so the lines counted here are all it
            # will ever have, and this run's follow them under one separator line.
            self.recorder.record(job.record())
            self.recorder.flush()
            job.budget.count_stored(self.store.logs(job.id))
            self.runner.note(job, retried_line(job.attempt), "warn")

    def _retire(self, job: Job, _result: BuildResult | None) -> None:
        job.request = None
        job.call = None
        job.inline_sources = None

    # Recovery -----------------------------------------------------------------------

    async def _recover(self) -> None:
        """Every heartbeat, give the builds of silent workers back to the queue; now and
        then, queue the builds a pf serve recorded but died before queueing."""
        manager = self.app.job_manager
        rounds = 0
        while True:
            # The worker's own gauges (its pf worker --metrics endpoint, if any).
            WORKER_HEARTBEAT.set_to_current_time()
            sample_memory()
            await asyncio.sleep(self.settings.worker_heartbeat)
            rounds += 1
            try:
                async with jobqueue.translated("cannot look for stalled builds"):
                    stalled = await manager.get_stalled_jobs(
                        queue=jobqueue.QUEUE,
                        seconds_since_heartbeat=self.settings.worker_stalled_after,
                    )
                for found in stalled:
                    await self._retry(found)
                if rounds % _ORPHAN_ROUNDS == 0:
                    await self._adopt()
            except PfError as error:
                # The database is away: the next round asks again.
                log.warning("pf worker: %s", error)

    async def _adopt(self) -> None:
        """Queue the builds recorded queued long ago that have no job in the queue."""
        before = time.time() - ORPHAN_AGE
        async with jobqueue.translated("cannot look for unqueued builds"):
            found = await jobqueue.orphans(self.app, before)
        for build_id in found:
            row = await asyncio.to_thread(self.store.get, build_id)
            if row is None or row.status != QUEUED:
                continue
            async with jobqueue.translated("cannot queue an unqueued build"):
                queued = await jobqueue.requeue(
                    self.app, build_id, {"build_id": build_id, "row": row.values()}
                )
            if queued:
                log.warning("pf worker: build %s was recorded but never queued: queued", build_id)

    async def _retry(self, found: Any) -> None:
        manager = self.app.job_manager
        async with jobqueue.translated("cannot give a stalled build back to the queue"):
            retried = await jobqueue.retry_stalled(manager, found)
        if not retried:
            return  # another worker gave it back first
        build_id = str(found.task_kwargs.get("build_id", ""))
        log.warning("pf worker: the worker running build %s stopped: queued again", build_id)
        async with jobqueue.translated("cannot read the job queue"):
            status = await manager.get_job_status_async(found.id)
        if str(status.value) == "failed":
            # Its abort was asked while its worker was lost: Procrastinate ends it there.
            await asyncio.to_thread(self._end_lost, build_id, int(found.attempts) + 1)

    def _end_lost(self, build_id: str, attempt: int) -> None:
        row = self.store.get(build_id)
        if row is None or row.status in FINISHED:
            return
        job = Job.from_record(row, self.cache.blobs)
        job.attempt = attempt
        job.cancel_reason = ABORTED_WHILE_LOST
        job.cancel.set()
        self.runner.end(job, CANCELLED)
        self.recorder.flush()

    # Lifecycle ----------------------------------------------------------------------

    async def run(self, concurrency: int) -> None:
        """Take builds until SIGTERM/SIGINT, then let the running ones finish."""
        self.bus.attach(asyncio.get_running_loop())
        await asyncio.to_thread(self.store.open)
        self.recorder.start()
        recovery = asyncio.ensure_future(self._recover())
        # Probe every toolchain now rather than in the first build of each: a worker
        # that takes over a dead one's build is then as quick as a warm one.
        # Not awaited (an error in it is logged by asyncio as never retrieved); the
        # reference keeps the task from being collected while it runs.
        self._warming = asyncio.ensure_future(asyncio.to_thread(matrix, self.settings))
        try:
            async with jobqueue.translated("cannot open the job queue"):
                async with self.app.open_async():
                    log.info(
                        "pf worker ready",
                        extra={"concurrency": concurrency, "database": self.store.url},
                    )
                    await self.app.run_worker_async(
                        queues=[jobqueue.QUEUE],
                        concurrency=concurrency,
                        name=f"pf-worker-{time.time_ns()}",
                        update_heartbeat_interval=self.settings.worker_heartbeat,
                        stalled_worker_timeout=self.settings.worker_stalled_after,
                        delete_jobs="successful",
                        # LISTEN/NOTIFY wakes an idle worker for a new build, but not for
                        # one the stalled-job retry gave back (only inserts notify), and
                        # Procrastinate 3 drops a notification that arrives while its
                        # fetch finds nothing: idle workers also look this often, so no
                        # build waits for one longer (one indexed query per look).
                        fetch_job_polling_interval=_POLL,
                        install_signal_handlers=True,
                    )
        finally:
            recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recovery
            await asyncio.to_thread(self.recorder.stop)
            self.bus.close()
            self.bus.detach()
            await asyncio.to_thread(self.store.close)


def retried_line(attempt: int) -> str:
    """The log line that opens run ``attempt`` (0 the first) of a build taken up again.

    As CI systems show a re-run job: the log reads top to bottom, the attempt that was
    lost first (kept: what it printed may say why its worker died), then this line, then
    the run that counts. Live clients and the stored log read the same."""
    earlier = "attempt 1" if attempt == 1 else f"attempts 1-{attempt}"
    return (
        f"=== attempt {attempt + 1} of this build starts here: the pf worker running "
        f"attempt {attempt} stopped, so the build runs again from the start; the lines "
        f"above are from {earlier} ==="
    )


def _not_again(job: Job) -> PfError | None:
    """Why a build whose worker was lost must not run again, if it must not.

    A compile is idempotent by its action key and runs again, but not for ever: one that
    kills every worker that runs it (memory, a kernel bug) stops after MAX_ATTEMPTS. A
    task run has effects a second run would repeat: it fails, as a build running when
    pf serve stopped does.
    """
    if job.attempt and job.kind == "task":
        return PfError(
            "interrupted: the pf worker running this task stopped",
            hint="task runs are not run twice; run it again if its effects are wanted",
        )
    if job.attempt >= MAX_ATTEMPTS:
        return PfError(
            f"interrupted: {job.attempt} pf workers stopped while running this build",
            hint="check the workers' logs and memory; the build may be what stops them",
        )
    return None


def _no_index(_job: Job) -> None:
    """A worker serves no /wasm/ files: the API processes index completed builds."""
