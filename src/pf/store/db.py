"""One SQLAlchemy Engine per database URL, the schema migrated on open, errors translated once.

SQLite (the default, ``<cache_dir>/../pf.db``, i.e. ``.pf/pf.db``) runs in WAL mode with
``synchronous=NORMAL``: readers never wait for the writer and a commit costs no fsync,
at the price of the last few commits on a power cut (the service batches writes, so it
would lose them anyway). PostgreSQL (``postgresql://`` or ``postgresql+psycopg://``) goes
through psycopg 3, imported by SQLAlchemy only when such a URL is opened; its pooled
connections are pinged before use, so a restarted server is reconnected to without
restarting pf. Every SQLAlchemy error (which wraps the driver's, sqlite3's or psycopg's)
becomes a StoreError here, most specific first, so no third-party exception leaves
``pf.store``; a database that cannot be reached is StoreUnavailable, which tells a
client when to retry. Imports SQLAlchemy, config, errors and this package's migrate only.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, exc, text
from sqlalchemy.engine import URL, make_url

from pf.config import Settings
from pf.errors import StoreError
from pf.store.migrate import migrate

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.dialects import postgresql, sqlite

_BUSY_TIMEOUT_MS = 10_000
_HINT = "check PF_DATABASE_URL, and that the database file and its directory are writable"
# Seconds a client is told to wait while the database does not answer, and the most a
# new connection to PostgreSQL may take before the request fails rather than hangs.
RETRY_AFTER = 5
_CONNECT_TIMEOUT = 5
_DOWN_HINT = (
    "check PF_DATABASE_URL, and that the database server is running and reachable; "
    f"retry in {RETRY_AFTER} s"
)
_BUSY_HINT = f"another process holds the database's write lock; retry in {RETRY_AFTER} s"
# URL schemes SQLAlchemy would hand to psycopg2 (or not know at all): pf's driver is psycopg 3.
_PG_SCHEMES = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}


class StoreUnavailable(StoreError):
    """The database does not answer (stopped, unreachable, restarting): retry later."""

    code = "store-unavailable"
    retry_after = RETRY_AFTER


def default_url(settings: Settings) -> str:
    """PF_DATABASE_URL, or the SQLite file ``pf.db`` beside the cache directory."""
    if settings.database_url:
        return settings.database_url
    return f"sqlite:///{(settings.cache_dir.parent / 'pf.db').resolve()}"


@contextmanager
def translate(what: str) -> Iterator[None]:
    """Turn SQLAlchemy and driver errors raised in the block into StoreError."""
    try:
        yield
    except exc.IntegrityError as error:
        raise StoreError(f"{what}: constraint violated: {error.orig}", hint=_HINT) from error
    except (exc.OperationalError, exc.InterfaceError) as error:
        code = _sqlite_code(error.orig)
        if code == sqlite3.SQLITE_FULL:
            # SQLite rolled the transaction back: what was stored before stays whole.
            raise StoreError(
                f"{what}: no space left on device for the database",
                hint="free space in the database's directory; nothing stored was damaged",
            ) from error
        if code is not None and code not in _SQLITE_BUSY:
            # SQLite's OperationalError also means a missing table or an I/O error:
            # waiting does not mend those.
            raise StoreError(f"{what}: database unavailable: {error.orig}", hint=_HINT) from error
        raise StoreUnavailable(
            f"{what}: database unavailable: {_first_line(error.orig)}",
            hint=_BUSY_HINT if code is not None else _DOWN_HINT,
        ) from error
    except exc.DBAPIError as error:
        if error.connection_invalidated:
            raise StoreUnavailable(
                f"{what}: database connection lost: {_first_line(error.orig)}",
                hint=_DOWN_HINT,
            ) from error
        raise StoreError(
            f"{what}: database error: {_first_line(error.orig)}", hint=_HINT
        ) from error
    except exc.SQLAlchemyError as error:
        raise StoreError(f"{what}: {error}", hint=_HINT) from error
    except sqlite3.Error as error:  # raised by pragmas run outside SQLAlchemy's wrapping
        raise StoreError(f"{what}: {error}", hint=_HINT) from error


# SQLite's answers for a file that is not a database pf can use (as opposed to a busy
# or full one): damaged or foreign bytes, cannot be opened, no permission.
_UNUSABLE_FILE = frozenset(
    {
        sqlite3.SQLITE_NOTADB,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PERM,
        sqlite3.SQLITE_READONLY,
    }
)


# SQLite's answers when another connection holds the lock past busy_timeout.
_SQLITE_BUSY = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


def _first_line(error: BaseException | None) -> str:
    # psycopg's messages run on with DETAIL/HINT lines and a caret under the query.
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def engine_url(url: str) -> URL:
    """``url`` as SQLAlchemy opens it: a PostgreSQL URL without a driver names psycopg 3."""
    parsed = make_url(url)
    driver = _PG_SCHEMES.get(parsed.drivername)
    return parsed if driver is None else parsed.set(drivername=driver)


def upsert_into(dialect: str, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into ``table`` that takes ON CONFLICT, in ``dialect``'s words (the two
    backends spell it alike but SQLAlchemy builds it per dialect). PostgreSQL's dialect
    module is imported only when a PostgreSQL database is in use: a SQLite server does
    not carry it."""
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


def _sqlite_code(error: BaseException | None) -> int | None:
    code = getattr(error, "sqlite_errorcode", None)
    # Extended codes carry the primary code in their low byte.
    return code & 0xFF if isinstance(code, int) else None


def unreadable(file: Path, reason: str) -> StoreError:
    """The error for a SQLite file pf cannot use as its database: one line, what to do."""
    return StoreError(
        f"{file} is not a readable SQLite database ({reason}); move it aside to start "
        "a new history, or restore a backup"
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        # Turning a new database to WAL needs its exclusive lock, and SQLite answers
        # "locked" at once rather than calling the busy handler when processes opening
        # it together hold shared locks: try again until the busy timeout has passed.
        deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as error:
                if _sqlite_code(error) not in _SQLITE_BUSY or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


class Database:
    """An Engine for one URL with the schema in place. ``open()`` does the blocking work."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise StoreError("the build database is not open", hint="this is a bug in pf")
        return self._engine

    @property
    def is_open(self) -> bool:
        return self._engine is not None

    def open(self) -> None:
        """Create the engine and the tables (idempotent).

        A SQLite file that is not a database (damaged, truncated, a directory in its
        place, unreadable) is a StoreError naming the file and what to do about it.
        """
        with self._lock:
            if self._engine is not None:
                return
            file = self.file
            if file is not None:
                self._check_file(file)
            try:
                self._engine = self._create()
            except StoreError as error:
                cause = error.__cause__
                if file is None or not isinstance(cause, exc.DBAPIError):
                    raise
                if _sqlite_code(cause.orig) not in _UNUSABLE_FILE:
                    raise
                raise unreadable(file, str(cause.orig)) from cause

    def _check_file(self, file: Path) -> None:
        if file.is_dir():
            raise unreadable(file, "it is a directory")
        if file.exists() and not os.access(file, os.R_OK | os.W_OK):
            raise unreadable(file, "permission denied")

    def _create(self) -> Engine:
        url = engine_url(self.url)
        with translate(f"cannot open {self._display()}"):
            file = self.file
            if file is not None:
                try:
                    file.parent.mkdir(parents=True, exist_ok=True)
                except OSError as error:
                    raise StoreError(
                        f"cannot create the directory of {file}: {error.strerror}",
                        hint=_HINT,
                    ) from error
            backend = url.get_backend_name()
            if backend == "sqlite":
                # Last in, first out: the writer thread, one transaction after another,
                # gets back the connection it just used, whose page cache is still valid.
                # Handed the pool's oldest one (another thread's, behind the writes),
                # SQLite re-read some 17 pages a build from the file.
                engine = create_engine(url, pool_use_lifo=True)
                event.listen(engine, "connect", _sqlite_pragmas)
            else:
                # A pooled connection to a server that restarted is dead: the ping finds
                # it and the pool opens a new one, instead of the request failing.
                connect_args = {"connect_timeout": _CONNECT_TIMEOUT}
                engine = create_engine(
                    url,
                    pool_pre_ping=True,
                    connect_args=connect_args if backend == "postgresql" else {},
                )
            try:
                migrate(engine, self._display())
            except BaseException:
                engine.dispose()
                raise
        return engine

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    @property
    def file(self) -> Path | None:
        """The SQLite file of this database; None for another backend or one in memory."""
        url = make_url(self.url)
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        return Path(url.database)

    def _display(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    @contextmanager
    def begin(self, what: str) -> Iterator[Connection]:
        """A connection in one transaction, committed at the end; errors as StoreError."""
        with translate(what), self.engine.begin() as conn:
            yield conn

    def ping(self) -> bool:
        """Whether a trivial query answers."""
        try:
            with self.begin("ping") as conn:
                conn.execute(text("SELECT 1"))
        except StoreError:
            return False
        return True
