"""The build queue of shared mode: Procrastinate jobs in the build database (PostgreSQL).

pf serve defers one job per build (task ``pf.build``, its lock the build's id) and pf
worker processes take them, woken by LISTEN/NOTIFY. Its schema is applied by pf's own
migrations (store.migrate). This module owns the Procrastinate App objects and the
few queries pf makes of the queue (depth, workers, a build's job, cancel, stalled jobs);
Procrastinate's and psycopg's errors become StoreError here, so none leaves pf.store.
Procrastinate (and psycopg) are imported when shared mode is used, never by the
embedded default.

Fairness. Workers take the waiting job of highest priority, oldest first among equals
(Procrastinate's fetch). A build is deferred with the priority of the job workers will
take next (the highest waiting), or one below its client's last waiting job if that is
lower: a client's builds keep their order, and a client with nothing waiting is served
after at most one build of each other client, however many one of them queued first.
The client is the one the build's record names (``row.client``).
Imports SQLAlchemy's URL parser, errors and this package's db only.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from pf.errors import StoreError
from pf.store.db import RETRY_AFTER, StoreUnavailable

if TYPE_CHECKING:
    import procrastinate

TASK = "pf.build"
QUEUE = "builds"


def conninfo(url: str) -> str:
    """A database URL (SQLAlchemy's spelling) as libpq reads it."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.contextmanager
def translate(what: str) -> Iterator[None]:
    """Procrastinate's and psycopg's errors raised in the block as StoreError."""
    import procrastinate.exceptions
    import psycopg

    try:
        yield
    except (psycopg.OperationalError, procrastinate.exceptions.ConnectorException) as error:
        raise StoreUnavailable(
            f"{what}: the job queue's database does not answer: {error}",
            hint=f"check PF_DATABASE_URL and that PostgreSQL runs; retry in {RETRY_AFTER} s",
        ) from error
    except (psycopg.Error, procrastinate.exceptions.ProcrastinateException) as error:
        raise StoreError(f"{what}: {error}") from error


@contextlib.asynccontextmanager
async def translated(what: str) -> AsyncIterator[None]:
    """``translate`` for async blocks."""
    with translate(what):
        yield


@dataclass(frozen=True)
class QueueState:
    """What /api/ready and /api/metrics say of the queue."""

    todo: int
    doing: int
    workers: int

    def to_dict(self) -> dict[str, int]:
        return {"queued": self.todo, "running": self.doing, "workers": self.workers}


def _deferrer(queue_app: procrastinate.App, build_id: str, priority: int = 0) -> Any:
    # The lock finds a build's job again (cancel); the queueing lock keeps a build from
    # waiting in the queue twice (a recovered orphan and its late original).
    return queue_app.configure_task(
        TASK, queue=QUEUE, lock=build_id, queueing_lock=build_id, priority=priority
    )


# The client of a waiting build, as its job's arguments hold it ("" for none).
_CLIENT = "coalesce(args->'row'->>'client', '')"
_WAITING = f"FROM procrastinate_jobs WHERE queue_name = '{QUEUE}' AND status = 'todo'"
_PRIORITY = (
    f"SELECT max(priority) AS next, min(priority) FILTER (WHERE {_CLIENT} = %(client)s) "
    f"AS last {_WAITING}"
)


async def requeue(queue_app: procrastinate.App, build_id: str, args: Mapping[str, Any]) -> bool:
    """Queue a build again from a worker; False if it is waiting in the queue already."""
    import procrastinate.exceptions

    try:
        await _deferrer(queue_app, build_id).defer_async(**args)
    except procrastinate.exceptions.AlreadyEnqueued:
        return False
    return True


async def orphans(queue_app: procrastinate.App, before: float) -> list[str]:
    """Builds recorded queued before ``before`` (epoch seconds) that have no job: the
    pf serve that recorded them died before it queued them."""
    connector = queue_app.connector
    rows = await connector.execute_query_all_async(
        "SELECT b.id FROM builds b WHERE b.status = 'queued' AND b.created_at < %(before)s "
        "AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs j WHERE j.lock = b.id) "
        "ORDER BY b.created_at LIMIT 100",
        before=before,
    )
    return [str(row["id"]) for row in rows]


def app(url: str, *, sync: bool) -> procrastinate.App:
    """A Procrastinate App on ``url``: a synchronous one (pf serve's threads defer and
    cancel), or an asynchronous one (pf worker's loop)."""
    import procrastinate
    from procrastinate.sync_psycopg_connector import SyncPsycopgConnector

    info = conninfo(url)
    connector: Any
    if sync:
        connector = SyncPsycopgConnector(conninfo=info)
    else:
        connector = procrastinate.PsycopgConnector(conninfo=info)
    return procrastinate.App(connector=connector)


class Queue:
    """pf serve's side of the queue: defer, look up, cancel, count. Thread-safe."""

    def __init__(self, url: str) -> None:
        self._app = app(url, sync=True)
        self._open = False

    def open(self) -> None:
        with translate("cannot open the job queue"):
            self._app.open()
        self._open = True

    def close(self) -> None:
        if self._open:
            with translate("cannot close the job queue"):
                self._app.close()
            self._open = False

    def defer(self, build_id: str, args: Mapping[str, Any], client: str = "") -> int:
        """Queue one build of ``client`` in its turn (see Fairness); returns its job id."""
        connector = self._app.connector.get_sync_connector()
        with translate("cannot queue the build"):
            found = connector.execute_query_one(_PRIORITY, client=client)
            priority = 0 if found["next"] is None else int(found["next"])
            if found["last"] is not None:
                priority = min(priority, int(found["last"]) - 1)
            return int(_deferrer(self._app, build_id, priority).defer(**args))

    def depth(self) -> int:
        """Builds waiting in the queue (not yet taken by a worker)."""
        connector = self._app.connector.get_sync_connector()
        with translate("cannot read the job queue"):
            row = connector.execute_query_one(f"SELECT count(*) AS n {_WAITING}")
        return int(row["n"])

    def waiting_of(self, client: str) -> int:
        """Builds of ``client`` waiting in the queue."""
        connector = self._app.connector.get_sync_connector()
        with translate("cannot read the job queue"):
            row = connector.execute_query_one(
                f"SELECT count(*) AS n {_WAITING} AND {_CLIENT} = %(client)s", client=client
            )
        return int(row["n"])

    def job_of(self, build_id: str) -> tuple[int, str] | None:
        """The id and status (todo, doing, succeeded, ...) of a build's job, or None."""
        with translate("cannot read the job queue"):
            found = self._app.job_manager.list_jobs(lock=build_id)
        if not found:
            return None
        job = found[-1]
        assert job.id is not None
        return job.id, str(job.status)

    def cancel(self, job_id: int, *, abort: bool) -> bool:
        """Cancel a job still waiting (``abort`` False) or ask its worker to abort it;
        False when it is no longer in that state."""
        with translate("cannot cancel the build's job"):
            return bool(self._app.job_manager.cancel_job_by_id(job_id, abort=abort))

    def state(self) -> QueueState:
        connector = self._app.connector.get_sync_connector()
        with translate("cannot read the job queue"):
            rows = connector.execute_query_all(
                "SELECT status::text AS status, count(*) AS n FROM procrastinate_jobs "
                "WHERE status IN ('todo', 'doing') GROUP BY status"
            )
            workers = connector.execute_query_one("SELECT count(*) AS n FROM procrastinate_workers")
        counts = {row["status"]: int(row["n"]) for row in rows}
        return QueueState(counts.get("todo", 0), counts.get("doing", 0), int(workers["n"]))

    def live_workers(self, within: float) -> int:
        """pf worker processes that said they are alive within the last ``within`` seconds
        (a killed worker's row stays until another worker prunes it)."""
        connector = self._app.connector.get_sync_connector()
        with translate("cannot read the job queue"):
            row = connector.execute_query_one(
                "SELECT count(*) AS n FROM procrastinate_workers "
                "WHERE last_heartbeat > now() - make_interval(secs => %(within)s)",
                within=within,
            )
        return int(row["n"])


async def retry_stalled(manager: Any, job: Any) -> bool:
    """Give a job of a silent worker back to the queue (Procrastinate's stalled-job
    retry); False when it is no longer running there (another worker did it first)."""
    import procrastinate.exceptions

    try:
        await manager.retry_job(job)
    except procrastinate.exceptions.ConnectorException as error:
        if _NOT_DOING in str(error.__cause__ or error):
            return False
        raise
    return True


# What procrastinate_retry_job says of a job that is not running (any more).
_NOT_DOING = 'not in "doing" status'
