"""A SQLite cursor for SQLAlchemy's aiosqlite dialect that crosses to the
database thread once per statement.

SQLAlchemy's own adapter makes four round trips to aiosqlite's thread for a
statement that returns rows (make a cursor, execute, fetch all, close), each
a queue put, a wake of the thread and a ``call_soon_threadsafe`` back to the
loop. Here one function runs all four in the thread and hands back the
description, the rows, the row count and the last row id. The sqlite3 calls
still run in aiosqlite's thread, never on the event loop; commit, rollback
and close are aiosqlite's own.
"""

from __future__ import annotations

import collections
from typing import Any

from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
)
from sqlalchemy.util.concurrency import await_


def _run(conn, operation: str, parameters: Any, many: bool):
    """In aiosqlite's thread: the whole statement, results included."""
    cur = conn.cursor()
    try:
        if many:
            cur.executemany(operation, parameters)
        elif parameters is None:
            cur.execute(operation)
        else:
            cur.execute(operation, parameters)
        description = cur.description
        rows = cur.fetchall() if description else ()
        return description, rows, cur.rowcount, cur.lastrowid
    finally:
        cur.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """Results are fetched whole in the thread (SQLAlchemy's adapter buffers
    them whole as well); server-side cursors stay SQLAlchemy's."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None
        self._soft_closed_memoized = {}
        self._rows = collections.deque()
        self._description = None
        self._rowcount = -1
        self._lastrowid = None

    @property
    def description(self):
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self):
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass

    async def _async_soft_close(self) -> None:
        return None

    def close(self) -> None:
        self._rows.clear()

    def _call(self, operation, parameters, many: bool) -> None:
        aconn = self._connection
        try:
            description, rows, rowcount, lastrowid = await_(
                aconn._execute(_run, aconn._conn, operation, parameters, many))
        except Exception as error:  # noqa: BLE001 - the adapter re-raises it as DBAPI's
            self._adapt_connection._handle_exception(error)
        self._description = description
        self._rows = collections.deque(rows)
        self._rowcount = rowcount
        self._lastrowid = lastrowid

    def execute(self, operation, parameters=None) -> None:
        self._call(operation, parameters, False)

    def executemany(self, operation, seq_of_parameters) -> None:
        self._call(operation, seq_of_parameters, True)

    def nextset(self) -> None:
        return None

    def setinputsizes(self, *inputsizes) -> None:
        return None


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneHopCursor


def adopt(dbapi_conn) -> None:
    """Make a freshly connected aiosqlite adapter hand out one-hop cursors."""
    if type(dbapi_conn) is AsyncAdapt_aiosqlite_connection:
        dbapi_conn.__class__ = OneHopConnection
