"""Watching the statements pf sends its database, whichever way they reach the driver.

Most go through SQLAlchemy, whose ``before_cursor_execute`` event sees them; on SQLite
a Prepared statement goes to the driver's own cursor (pf.store.prepared), past that
event, so its executions are watched on Prepared itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from unittest import mock

from sqlalchemy import Connection, event

from pf.store import Store
from pf.store.prepared import Prepared


@contextmanager
def inserts_into(store: Store, table: str) -> Iterator[list[tuple[str, Any]]]:
    """The ``(statement, parameters)`` of every INSERT INTO ``table`` run in the block,
    in order (parameters as the driver gets them)."""
    seen: list[tuple[str, Any]] = []
    prefix = f"INSERT INTO {table.upper()} "

    def watch(statement: str, params: Any) -> None:
        if statement.lstrip().upper().startswith(prefix):
            seen.append((statement, params))

    def through_sqlalchemy(_c: object, _cur: object, statement: str, params: Any, *_: Any) -> None:
        watch(statement, params)

    execute, execute_many = Prepared.execute, Prepared.execute_many

    def one(self: Prepared, conn: Connection, values: Mapping[str, Any]) -> int:
        if self.raw:
            watch(self.text, self.params(values))
        return execute(self, conn, values)

    def many(self: Prepared, conn: Connection, values: Sequence[Mapping[str, Any]]) -> None:
        if self.raw and values:
            watch(self.text, [self.params(v) for v in values])
        execute_many(self, conn, values)

    event.listen(store.db.engine, "before_cursor_execute", through_sqlalchemy)
    try:
        with mock.patch.object(Prepared, "execute", one):
            with mock.patch.object(Prepared, "execute_many", many):
                yield seen
    finally:
        event.remove(store.db.engine, "before_cursor_execute", through_sqlalchemy)
