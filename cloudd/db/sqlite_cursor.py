"""A SQLite cursor for SQLAlchemy's aiosqlite dialect that crosses to the
database thread once per statement.

SQLAlchemy's own adapter makes four round trips to aiosqlite's thread for a
statement that returns rows (make a cursor, execute, fetch all, close), each
a queue put, a wake of the thread and a ``call_soon_threadsafe`` back to the
loop. Here one function runs all four in the thread and hands back the
description, the rows, the row count and the last row id. The sqlite3 calls
still run in aiosqlite's thread, never on the event loop; commit, rollback
and close are aiosqlite's own.

The ``BEGIN`` a transaction starts with (``begin_later``) rides along with
its first statement, and a transaction that ran no statement commits or
rolls back without a trip at all (SQLite never saw it begin). Each trip
also brings back whether SQLite is inside a transaction afterwards, so the
rollback the pool issues when a connection is returned after its commit
costs no trip either.
"""

from __future__ import annotations

import collections
from typing import Any

from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
)
from sqlalchemy.util.concurrency import await_

_BEGIN = "_cloudd_begin"       # attribute of the aiosqlite connection: a BEGIN to send
_OPEN = "_cloudd_open"         # attribute: False when SQLite is known to be outside a transaction


def _run(conn, begin: str | None, operation: str, parameters: Any, many: bool):
    """In aiosqlite's thread: the whole statement, results included."""
    if begin is not None:
        conn.execute(begin)
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
        return description, rows, cur.rowcount, cur.lastrowid, conn.in_transaction
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
        begin = aconn.__dict__.pop(_BEGIN, None)
        aconn.__dict__.pop(_OPEN, None)             # unknown until the trip is back
        try:
            description, rows, rowcount, lastrowid, open_ = await_(
                aconn._execute(_run, aconn._conn, begin, operation, parameters, many))
        except Exception as error:  # noqa: BLE001 - the adapter re-raises it as DBAPI's
            self._adapt_connection._handle_exception(error)
        aconn.__dict__[_OPEN] = open_
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

    def begin_later(self, statement: str) -> None:
        """Send ``statement`` (a BEGIN) just before the next statement."""
        self._connection.__dict__[_BEGIN] = statement

    def commit(self) -> None:
        state = self._connection.__dict__
        if state.pop(_BEGIN, None) is None and state.get(_OPEN, True):
            super().commit()
            state[_OPEN] = False

    def rollback(self) -> None:
        state = self._connection.__dict__
        if state.pop(_BEGIN, None) is None and state.get(_OPEN, True):
            state.pop(_OPEN, None)
            super().rollback()
            state[_OPEN] = False


def adopt(dbapi_conn) -> None:
    """Make a freshly connected aiosqlite adapter hand out one-hop cursors."""
    if type(dbapi_conn) is AsyncAdapt_aiosqlite_connection:
        dbapi_conn.__class__ = OneHopConnection
