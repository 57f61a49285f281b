"""Statements compiled once per dialect and sent as their SQL text, for the writer's hot path.

Executing a SQLAlchemy Core statement costs about half a millisecond of Python before the
driver sees it (building it, its cache key, the execution context, the type processing),
which the writer thread paid for every row a build writes. A Prepared statement is
compiled once; each execution converts the values with the columns' own bind processors
(so a JSON or boolean column stores exactly what SQLAlchemy would) and hands the text to
``Connection.exec_driver_sql``, which keeps SQLAlchemy's transaction, error wrapping and
events. On SQLite the text goes to the driver's own cursor instead, inside the same
transaction: ``exec_driver_sql`` still cost more Python than SQLite took to run the
statement (a build's rows are written by a thread that shares the GIL with pf serve's
event loop), and a driver error is wrapped as SQLAlchemy would wrap it, so callers see
the same exceptions. One text per statement: the driver keeps it prepared. Imports
SQLAlchemy and sqlite3 only.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, exc
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement


class Prepared:
    """``statement`` compiled for ``dialect`` with the bind parameters ``keys``."""

    def __init__(self, statement: ClauseElement, dialect: Dialect, keys: Sequence[str]) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        assert isinstance(compiled, SQLCompiler)
        self.text = str(compiled)
        self.raw = dialect.name == "sqlite"
        self.positional = compiled.positional
        order = compiled.positiontup if compiled.positional else list(compiled.binds)
        assert order is not None
        self._converters: list[tuple[str, Callable[[Any], Any] | None]] = [
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in order
        ]

    def params(self, values: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        """The driver's parameters for one execution with ``values``."""
        converted = [
            (name, values[name] if convert is None else convert(values[name]))
            for name, convert in self._converters
        ]
        if self.positional:
            return tuple(value for _, value in converted)
        return dict(converted)

    def execute(self, conn: Connection, values: Mapping[str, Any]) -> int:
        """Run the statement once with ``values``; returns the count of rows it changed."""
        params = self.params(values)
        if not self.raw:
            return conn.exec_driver_sql(self.text, params).rowcount
        with self._cursor(conn, params) as cursor:
            return int(cursor.execute(self.text, params).rowcount)

    def execute_many(self, conn: Connection, values: Sequence[Mapping[str, Any]]) -> None:
        if not values:
            return
        params = [self.params(v) for v in values]
        if not self.raw:
            conn.exec_driver_sql(self.text, params)
            return
        with self._cursor(conn, params) as cursor:
            cursor.executemany(self.text, params)

    @contextlib.contextmanager
    def _cursor(
        self, conn: Connection, params: Sequence[Any] | Mapping[str, Any]
    ) -> Iterator[sqlite3.Cursor]:
        """A cursor of ``conn``'s SQLite connection, in its transaction; a driver error
        raised as SQLAlchemy raises it."""
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            yield cursor
        except sqlite3.Error as error:
            raise exc.DBAPIError.instance(self.text, params, error, sqlite3.Error) from error
        finally:
            cursor.close()
