"""A Job: one build's live state, the build records it produces, and its progress.

Worker threads change a job under its lock; the store gets ``record()`` and readers
``shown()``, frozen BuildRecords (store.record, where the record's fields are defined;
the API's JSON of one is pf.server.records'). A finished job is frozen in practice: its
shown record is taken once and reused. Build ids read ``<language>-<target>-<ms>-<suffix>``
where the suffix joins a per-process counter and random bits, so ids never collide in
one process and practically never across restarts. A task run (kind ``task``) is a Job
too, with language ``task`` and target the task's name (``web:build-rust``), so its
ETA comes from earlier runs of the same task; its id reads ``task-<name>-<ms>-<suffix>``.

Progress is a fixed scale over what a build actually does: 0 while queued, the driver's
phases ("compile", "link", "optimise", "convert") spread evenly over 10..90 by the index
of each one's first step in the plan, as it starts; 100 when done. The ETA is the median
run time of the latest compiled (not cached) builds of the same (language, target),
minus the time already spent; memory is bounded per pair. Imports store, toolchains and
config-level modules; nothing here runs anything.
"""

from __future__ import annotations

import itertools
import operator
import random
import statistics
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pf.engine.cache import Artifact
from pf.engine.keys import Action
from pf.store.blobs import BlobStore
from pf.store.logs import LogBudget
from pf.store.record import (
    CANCELLED,
    COMPLETED,
    FAILED,
    FINISHED,
    QUEUED,
    RUNNING,
    BuildRecord,
)
from pf.toolchains import CompileRequest, Plan

if TYPE_CHECKING:
    from pf.engine.taskruns import TaskCall

__all__ = [
    "CANCELLED",
    "COMPLETED",
    "DONE",
    "FAILED",
    "FINISHED",
    "QUEUED",
    "RUNNING",
    "Estimator",
    "Job",
    "iso_time",
    "new_build_id",
    "new_task_id",
    "step_progress",
]

_counter = itertools.count()


def new_build_id(language: str, target: str) -> str:
    """``rust-wasm-1732838400123-0007a1b2c3``: unique under any number of concurrent calls."""
    millis = int(time.time() * 1000)
    # The random part keeps processes apart (random reseeds in a forked child); it is no
    # secret. Not secrets.token_hex: each of its os.urandom calls gives up the GIL, and
    # getting it back from the busy triage and writer threads held every submission up.
    return (
        f"{language}-{target}-{millis}-{next(_counter) % 0x10000:04x}{random.getrandbits(24):06x}"
    )


def new_task_id(task: str) -> str:
    """``task-web:build-rust-1732838400123-0007a1b2c3``: as build ids, with the task's name."""
    # Cut long names: the id must fit its column (128) with its time and suffix.
    return new_build_id("task", task[:80])


def iso_time(epoch: float | None) -> str | None:
    """ISO-8601 in UTC with milliseconds, as JavaScript's toISOString() writes it."""
    if epoch is None:
        return None
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Progress: 0 while queued, driver steps over 10..90, 100 when done.
FIRST_STEP = 10
LAST_STEP = 90
DONE = 100

SAMPLES_PER_PAIR = 50


def step_progress(index: int, steps: int) -> int:
    """Progress as step ``index`` (0-based) of ``steps`` starts."""
    if steps <= 0:
        return FIRST_STEP
    index = max(0, min(index, steps - 1))
    return FIRST_STEP + (LAST_STEP - FIRST_STEP) * index // steps


class Estimator:
    """Median run time per (language, target), from the latest few builds. Thread-safe."""

    def __init__(self, per_pair: int = SAMPLES_PER_PAIR) -> None:
        self.per_pair = per_pair
        self._samples: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def add(self, language: str, target: str, seconds: float) -> None:
        with self._lock:
            samples = self._samples.get((language, target))
            if samples is None:
                samples = self._samples[(language, target)] = deque(maxlen=self.per_pair)
            samples.append(seconds)

    def seed(self, history: dict[tuple[str, str], list[float]]) -> None:
        for (language, target), samples in history.items():
            for seconds in samples:
                self.add(language, target, seconds)

    def median(self, language: str, target: str) -> float | None:
        with self._lock:
            samples = self._samples.get((language, target))
            return statistics.median(samples) if samples else None

    def typical(self) -> float | None:
        """The median over every pair's median: a rough size of "one build"."""
        with self._lock:
            medians = [statistics.median(s) for s in self._samples.values() if s]
        return statistics.median(medians) if medians else None

    def eta(self, language: str, target: str, elapsed: float | None) -> float | None:
        """Seconds left for a build that has run ``elapsed`` seconds (None: not started)."""
        median = self.median(language, target)
        if median is None:
            return None
        left = median - (elapsed or 0.0)
        return round(max(left, 0.0), 1)


@dataclass(eq=False, slots=True)
class Job:
    """One build from submission to its end. Mutated only under ``lock``."""

    # Slots: a queue of PF_MAX_QUEUE jobs and PF_MAX_BUILDS finished ones are alive at
    # once, and an instance dict of these 30 fields alone costs 1.6 KB.

    id: str
    language: str
    target: str
    project: str | None
    options: Mapping[str, Any]
    created_at: float
    request: CompileRequest | None = None
    call: TaskCall | None = None  # a task run's resolved task and parameters
    kind: str = "compile"
    steps: int = 1
    tools: tuple[str, ...] = ()  # the tools its plan runs (prebuilt inputs' included)
    # The plan made when it was validated, until its cache lookup uses it (then None):
    # planned once on this side, not again for the lookup.
    plan: Plan | None = None
    # The action its lookup missed with, until its compile is handed over (then None):
    # keyed once, not again where it compiles.
    action: Action | None = None
    budget: LogBudget = field(default_factory=lambda: LogBudget(20_000, 4 << 20))
    inline_sources: Mapping[str, str] | None = None
    # Who submitted it: "token:<name>" or "addr:<address>" (empty when not known, e.g.
    # the CLI). Fair scheduling and "cancel your own builds" key on it.
    client: str = ""
    status: str = QUEUED
    progress: int = 0
    phase: str | None = "queued"
    started_at: float | None = None
    ended_at: float | None = None
    duration_ms: int | None = None
    error: str | None = None
    cached: bool = False
    action_key: str | None = None
    artifacts: tuple[Artifact, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    diagnostics: tuple[Mapping[str, Any], ...] = ()
    task: str | None = None
    params: Mapping[str, Any] | None = None
    eta: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str | None = None
    # The run of the build this job is: a pf worker that takes a build up again after
    # the one running it died runs attempt 1, 2, ... (store.builds.upsert).
    attempt: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _shown: BuildRecord | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def shown_status(self) -> str:
        # A cancel request decides the outcome at once; the record says so while the
        # compiler's process group is being killed.
        return CANCELLED if self.cancel.is_set() and not self.finished else self.status

    def record(self) -> BuildRecord:
        """The build's record now, as it is stored."""
        with self.lock:
            return self._record(self.status)

    def shown(self) -> BuildRecord:
        """The build's record as its readers see it: cancelled as soon as that is asked.

        A finished build's is taken once and reused, which keeps listing builds cheap."""
        with self.lock:
            if self._shown is not None:
                return self._shown
            record = self._record(self.shown_status)
            if self.finished:
                self._shown = record
            return record

    def _record(self, status: str) -> BuildRecord:
        finished = self.finished
        # A field added to the record and not to Job fails here, at the first build.
        same = dict(zip(_SAME, _same_of(self), strict=True))
        return BuildRecord(
            **same,
            status=status,
            eta=None if finished else self.eta,
            options=dict(self.options),
            artifacts=tuple(
                {"name": a.name, "kind": a.kind, "digest": a.digest, "size": a.size}
                for a in self.artifacts
            ),
            timings=dict(self.timings),
            sources=None if finished else self.inline_sources,
            client=self.client or None,
        )

    @classmethod
    def from_record(cls, record: BuildRecord, blobs: BlobStore) -> Job:
        """A job rebuilt from its stored record (artifacts point into ``blobs``)."""
        artifacts = tuple(
            Artifact(a["name"], a["kind"], a["digest"], a["size"], blobs.path(a["digest"]))
            for a in record.artifacts
        )
        return cls(
            **{name: getattr(record, name) for name in _SAME},
            status=record.status,
            eta=record.eta,
            options=dict(record.options),
            artifacts=artifacts,
            timings=dict(record.timings),
            inline_sources=record.sources,
            client=record.client or "",
        )

    def elapsed(self, now: float) -> float | None:
        return None if self.started_at is None else now - self.started_at

    def find_artifact(self, name: str) -> Artifact | None:
        for artifact in self.artifacts:
            if artifact.name == name:
                return artifact
        return None


# The record's fields a Job holds as they are; the rest it keeps in its own form
# (Artifacts with their paths, a client of "" for none) or works out (status, eta).
_SAME = tuple(
    f.name
    for f in fields(BuildRecord)
    if f.name not in {"status", "eta", "options", "artifacts", "timings", "sources", "client"}
)
# A record is made at each step of every build: one C call reads them all.
_same_of = operator.attrgetter(*_SAME)
