"""What a worker thread does with one job: cache lookup, compile, record the end, emit events.

Strategy: ``triage`` asks the action cache (no compiler starts) and finishes a hit on the
spot; ``run`` compiles a miss through ``compile_sources``, turning its phase callbacks
into progress events and its output lines into log lines (capped by the job's
LogBudget) as they arrive. Every outcome goes through ``end``, which takes the job's
lock, refuses a second ending, writes the final record and event through the recorder
and hands the job back to the service (``retire``). A cancel request wins over any
other outcome: a build whose cancel Event is set ends ``cancelled`` even if its compiler
finished first. A task run (kind ``task``) skips the cache and runs the Pfyfile task
through engine.taskruns instead of a compiler; the rest (log, events, end) is shared.
Imports engine internals, store, toolchains, tasks and errors; never server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Histogram

from pf.config import Settings
from pf.engine import events, taskruns
from pf.engine.buildproc import Unstarted
from pf.engine.cache import ActionCache
from pf.engine.compile import BuildResult, compile_sources, lookup, prepare
from pf.engine.diskspace import DiskFull, is_disk_full
from pf.engine.jobs import (
    CANCELLED,
    COMPLETED,
    DONE,
    FAILED,
    FIRST_STEP,
    RUNNING,
    Estimator,
    Job,
    step_progress,
)
from pf.engine.keys import Action
from pf.engine.recorder import Recorder
from pf.errors import BuildCancelled, CompileFailed, PfError
from pf.store.logs import LogLine
from pf.toolchains import CompileRequest

log = logging.getLogger("pf.engine")

BUILDS = Counter("pf_builds_total", "Builds ended, by outcome", ["language", "target", "status"])
BUILD_SECONDS = Histogram(
    "pf_build_duration_seconds",
    "Run time of builds that ran a compiler",
    ["language", "target"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
)
CACHE_REQUESTS = Counter(
    "pf_cache_requests_total",
    "Compile builds that started, by whether the cache answered them (hit) or a compiler "
    "ran (miss)",
    ["result"],
)

_LEVELS = {"stdout": "info", "stderr": "warn"}


class Runner:
    """Triage and run jobs; ``retire(job)`` is called once per job, after it ended."""

    def __init__(
        self,
        settings: Settings,
        cache: ActionCache,
        recorder: Recorder,
        estimator: Estimator,
        retire: Callable[[Job, BuildResult | None], None],
        index: Callable[[Job], None],
        begin: Callable[..., None] | None = None,
    ) -> None:
        self.index = index
        # pf serve's build process (engine.buildproc: BuildProcess.begin), which takes
        # compile_sources' keywords (and on_start, called with the time the compile
        # started, once it has, and whether its end comes with that) but brings its own
        # settings and cache. Without it a miss compiles here, on the run thread (``run``).
        self.begin_compile = begin
        self.settings = settings
        self.cache = cache
        self.recorder = recorder
        self.estimator = estimator
        self.retire = retire
        self.hits = 0
        self.misses = 0

    def _compile_here(
        self,
        request: CompileRequest,
        *,
        on_start: Callable[[float, bool], None],
        **callbacks: Any,
    ) -> BuildResult:
        on_start(time.time(), False)
        return compile_sources(request, self.settings, cache=self.cache, **callbacks)

    # Output lines -----------------------------------------------------------------

    def line(self, job: Job, stream: str, text: str, level: str | None = None) -> None:
        """Keep one line of ``job``'s output (if its budget allows)."""
        admitted = job.budget.admit(text)
        if admitted is None:
            return
        seq, kept = admitted
        if kept != text:  # the budget's marker line
            stream, level = "pf", "warn"
        level = level or _LEVELS.get(stream, "info")
        self.recorder.line(
            LogLine(job.id, seq, time.time(), stream, level, kept, attempt=job.attempt)
        )

    def note(self, job: Job, text: str, level: str = "info") -> None:
        self.line(job, "pf", text, level)

    # Phases -----------------------------------------------------------------------

    def _start(self, job: Job, record: bool, at: float | None = None) -> None:
        now = time.time() if at is None else at
        with job.lock:
            if job.finished:  # cancelled while it waited in the build process
                return
            job.status = RUNNING
            job.started_at = now
            job.timings["queued"] = now - job.created_at
        if record:
            self.recorder.record(job.record())

    def _phase(self, job: Job, label: str, progress: int) -> None:
        now = time.time()
        with job.lock:
            if job.finished:
                return
            job.phase = label
            job.progress = progress
            job.eta = self.estimator.eta(job.language, job.target, job.elapsed(now))
            event = events.build_progress(job.id, RUNNING, progress, label, job.eta)
        # Stored, not only announced: a build that dies with the process keeps the phase
        # it reached. A few rows per compile, batched by the writer thread; cache hits
        # never come here. Not urgent: a short compile's phases then ride on its end's
        # write, and a long one's are at most the writer's progress interval late.
        self.recorder.record(job.record(), event, urgent=False)

    # The two lanes ----------------------------------------------------------------

    def triage(self, job: Job) -> bool:
        """Finish ``job`` from the cache if its outputs exist; False sends it to ``run``."""
        if job.cancel.is_set():
            self.end(job, CANCELLED)
            return True
        if job.kind == "task":
            return False  # a task's effects are not cached: always run it
        try:
            found = self.look_up(job)
        except Exception as error:
            self._fail(job, error)
            return True
        if found is None and job.cancel.is_set():  # cancelled while it was looked up
            self.end(job, CANCELLED)
            return True
        return self.answer(job, found)

    def look_up(self, job: Job) -> BuildResult | PfError | None:
        """A compile job's cached result, the error its lookup met, or None on a miss.

        Runs no compiler (its tools may be probed); ends nothing: ``answer`` does.
        """
        assert job.request is not None
        plan, job.plan = job.plan, None  # only the lookup needs it: not kept with the job
        try:
            action = prepare(job.request, self.settings, plan)
            found = lookup(job.request, self.settings, cache=self.cache, action=action)
        except PfError as error:
            return error
        if found is None:
            job.action = action
        return found

    def answer(self, job: Job, found: BuildResult | PfError | None) -> bool:
        """End ``job`` as its lookup ``found`` it: completed from the cache, or failed;
        False on a miss (the job still has to run)."""
        if found is None:
            return False
        if isinstance(found, PfError):
            self.end(job, FAILED, error=found)
            return True
        self._start(job, record=False)
        self.end(job, COMPLETED, result=found)
        return True

    def run(self, job: Job, *, missed: bool = False) -> None:
        """Compile ``job`` and record how it ended; ``missed``: its lookup (triage) has
        just missed, so the cache is looked at only under the single-flight lock."""
        if job.cancel.is_set():
            self.end(job, CANCELLED)
            return
        if job.kind == "task":
            self._run_task(job)
            return
        assert job.request is not None
        try:
            result = self._compile_here(
                job.request, **self._callbacks(job), missed=missed, action=self._action(job)
            )
        except Exception as error:
            self._ended(job, None, error)
        else:
            self._ended(job, result, None)

    def begin(self, job: Job, then: Callable[[], None], *, missed: bool = False) -> None:
        """``run`` a compile in pf serve's build process without waiting for it:
        ``then()`` once the job ended, or came back unstarted, on the thread that learnt
        it (the build process's reader, or this one when it never got there)."""
        assert self.begin_compile is not None and job.request is not None
        if job.cancel.is_set():
            try:
                self.end(job, CANCELLED)
            finally:
                then()
            return

        def ended(result: BuildResult | None, error: BaseException | None) -> None:
            try:
                self._ended(job, result, error)
            finally:
                then()

        try:
            self.begin_compile(
                job.request, ended, **self._callbacks(job), missed=missed, action=self._action(job)
            )
        except Exception as error:
            ended(None, error)

    @staticmethod
    def _action(job: Job) -> Action | None:
        """The action ``job``'s lookup missed with, taken from it: the compile needs it
        once, and a queue of finished jobs need not keep it."""
        action, job.action = job.action, None
        return action

    def _callbacks(self, job: Job) -> dict[str, Any]:
        return {
            # A start that comes with the end is written with it: its row would be
            # replaced in the same batch, and building it cost the reader's thread.
            "on_start": lambda started, ending: self._start(job, record=not ending, at=started),
            "on_line": lambda stream, text: self.line(job, stream, text),
            "on_phase": lambda label, index: self._phase(
                job, label, step_progress(index, job.steps)
            ),
            "cancel": job.cancel,
        }

    def _ended(self, job: Job, result: BuildResult | None, error: BaseException | None) -> None:
        """Record how a compile ended: with ``result``, or ``error``."""
        if error is None:
            assert result is not None
            self.end(job, COMPLETED, result=result)
        elif isinstance(error, Unstarted):
            return  # pf serve is stopping: it never ran, and stays queued for the next start
        elif isinstance(error, BuildCancelled):
            self.end(job, CANCELLED)
        elif isinstance(error, PfError):
            self.end(job, FAILED, error=error)
        elif isinstance(error, Exception):
            self._fail(job, error)
        else:
            raise error

    def _run_task(self, job: Job) -> None:
        assert job.call is not None
        self._start(job, record=True)
        self._phase(job, "run", FIRST_STEP)
        started = time.monotonic()
        try:
            outcome = taskruns.execute(
                job.call,
                self.settings,
                self.cache,
                job.cancel,
                lambda stream, text: self.line(job, stream, text),
            )
        except PfError as error:
            self.end(job, FAILED, error=error)
        except Exception as error:
            self._fail(job, error)
        else:
            with job.lock:
                job.timings["run"] = time.monotonic() - started
            if outcome.code == 0:
                self.end(job, COMPLETED)
            else:
                self.end(job, FAILED, error=taskruns.failure(job.call, outcome))

    def _fail(self, job: Job, error: Exception) -> None:
        """End ``job`` failed by an exception that is not a PfError: a full disk is the
        user's to know about, anything else is a bug in pf."""
        if is_disk_full(error):
            log.warning("pf: build %s: no space left on device: %s", job.id, error)
            self.end(job, FAILED, error=DiskFull("this build's files"))
            return
        self._crash(job, error)

    def _crash(self, job: Job, error: Exception) -> None:
        log.exception("pf: build %s failed inside pf", job.id)
        self.end(
            job,
            FAILED,
            error=PfError(
                f"internal error: {error!r}", hint="this is a bug in pf, please report it"
            ),
        )

    # The end ----------------------------------------------------------------------

    def _describe(self, job: Job, result: BuildResult) -> None:
        if result.cached:
            self.note(job, f"cache hit: outputs of an identical earlier build ({result.key[:12]})")
            for stream, text in result.log:
                self.line(job, stream, text)
        for artifact in result.artifacts:
            self.note(
                job, f"built {artifact.name} ({artifact.size} bytes, sha256 {artifact.digest})"
            )

    def end(
        self,
        job: Job,
        status: str,
        *,
        error: PfError | None = None,
        result: BuildResult | None = None,
    ) -> bool:
        """Record how ``job`` ended, once; False if it had already ended."""
        if job.cancel.is_set():
            status, error, result = CANCELLED, None, None
        if job.finished:
            return False
        if result is not None:
            self._describe(job, result)
        if error is not None:
            self.note(job, f"error: {error.message}", "error")
            if error.hint:
                self.note(job, f"hint: {error.hint}", "error")
        now = time.time()
        with job.lock:
            if job.finished:
                return False
            job.ended_at = now
            job.eta = None
            # Ended before its lookup, or before its compile (cancelled while queued).
            job.plan = job.action = None
            if job.started_at is not None:
                job.duration_ms = round((now - job.started_at) * 1000)
            if status == COMPLETED and result is not None:
                self._completed(job, result)
            elif status == COMPLETED:  # a task run: nothing to store
                job.progress = DONE
                job.phase = "done"
            elif status == FAILED and error is not None:
                job.error = error.message
                if isinstance(error, CompileFailed):
                    job.diagnostics = tuple(d.to_dict() for d in error.diagnostics)
            elif status == CANCELLED:
                job.error = job.cancel_reason
            if status == COMPLETED and job.project is not None:
                # Before the status flips: whoever sees "completed" can fetch /wasm/... at once.
                self.index(job)
            job.status = status
        BUILDS.labels(job.language, job.target, status).inc()
        if job.kind == "compile" and job.started_at is not None:
            self._count_lookup(job.cached)
        # A task run (no result) ran for real, as a compile that missed the cache.
        if status == COMPLETED and (result is None or not result.cached):
            seconds = (job.duration_ms or 0) / 1000
            BUILD_SECONDS.labels(job.language, job.target).observe(seconds)
            self.estimator.add(job.language, job.target, seconds)
        self.retire(job, result)
        self.recorder.record(job.record(), _final_event(job))
        return True

    def _count_lookup(self, hit: bool) -> None:
        # Counted by how the build ended, as its record's ``cached`` says: a build that
        # waited behind an identical one and took its outputs (single-flight) is a hit.
        if hit:
            self.hits += 1
            CACHE_REQUESTS.labels("hit").inc()
        else:
            self.misses += 1
            CACHE_REQUESTS.labels("miss").inc()

    def _completed(self, job: Job, result: BuildResult) -> None:
        job.progress = DONE
        job.phase = "done"
        job.cached = result.cached
        job.action_key = result.key
        # Their bytes stay in the cache: a job is kept in memory long after.
        job.artifacts = tuple(a.without_data() for a in result.artifacts)
        job.diagnostics = tuple(d.to_dict() for d in result.diagnostics)
        job.timings["compile"] = sum(v for k, v in result.timings.items() if k != "store")
        job.timings["store"] = result.timings.get("store", 0.0)


def _final_event(job: Job) -> events.Event:
    if job.status == COMPLETED:
        return events.build_completed(job.id, job.cached)
    if job.status == FAILED:
        return events.build_failed(job.id, job.error)
    return events.build_cancelled(job.id)
