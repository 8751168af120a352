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

A transaction that asks for it (``defer_inserts``, ``Database.write``) also
holds back its plain INSERTs (no RETURNING; one row or many) and sends them with its next
statement or with its COMMIT: the server create's three INSERTs and the
COMMIT are one trip. An INSERT that fails then fails that later call; the
transaction rolls back whole either way, so only callers that do not catch
an INSERT's error on the spot may ask.
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
_DEFER = "_cloudd_defer"       # attribute: held-back INSERTs (a list) while deferring


def _run(conn, begin: str | None, operation: str, parameters: Any, many: bool,
         held: list | None = None):
    """In aiosqlite's thread: the whole statement, results included (after
    the BEGIN and the held-back INSERTs, if any)."""
    if begin is not None:
        conn.execute(begin)
    if held:
        _send_held(conn, held)
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


def _send_held(conn, held: list) -> None:
    for operation, parameters, many in held:
        if many:
            conn.executemany(operation, parameters)
        else:
            conn.execute(operation, parameters)


def _commit_with(conn, begin: str | None, held: list) -> None:
    """In aiosqlite's thread: the held-back INSERTs, then COMMIT."""
    if begin is not None:
        conn.execute(begin)
    _send_held(conn, held)
    conn.commit()


async def _nothing() -> None:
    return None


def _deferrable(operation: str) -> bool:
    head = operation.lstrip()[:6].upper()
    return head == "INSERT" and "RETURNING" not in operation.upper()


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
        held = aconn.__dict__.get(_DEFER)
        if held is not None and _deferrable(operation):
            held.append((operation, parameters, many))
            self._description, self._rows = None, collections.deque()
            self._rowcount, self._lastrowid = len(parameters) if many else 1, None
            await_(_nothing())      # SQLAlchemy requires an await; this one never waits
            return
        begin = aconn.__dict__.pop(_BEGIN, None)
        aconn.__dict__.pop(_OPEN, None)             # unknown until the trip is back
        if held:
            aconn.__dict__[_DEFER] = []
        try:
            description, rows, rowcount, lastrowid, open_ = await_(
                aconn._execute(_run, aconn._conn, begin, operation, parameters, many, held))
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

    def defer_inserts(self, on: bool) -> None:
        """Hold plain INSERTs back until the next statement or the commit."""
        state = self._connection.__dict__
        if on:
            state[_DEFER] = []
        elif state.pop(_DEFER, None):
            raise RuntimeError("deferred INSERTs were neither sent nor rolled back")

    def commit(self) -> None:
        state = self._connection.__dict__
        held = state.get(_DEFER)
        if held:
            state[_DEFER] = []
            begin = state.pop(_BEGIN, None)
            state.pop(_OPEN, None)
            try:
                await_(self._connection._execute(_commit_with, self._connection._conn,
                                                 begin, held))
            except Exception as error:  # noqa: BLE001 - re-raised as DBAPI's
                self._handle_exception(error)
            state[_OPEN] = False
            return
        if state.pop(_BEGIN, None) is None and state.get(_OPEN, True):
            super().commit()
            state[_OPEN] = False

    def rollback(self) -> None:
        state = self._connection.__dict__
        if state.get(_DEFER):
            state[_DEFER] = []          # never sent: nothing of them to undo
        if state.pop(_BEGIN, None) is None and state.get(_OPEN, True):
            state.pop(_OPEN, None)
            super().rollback()
            state[_OPEN] = False


def adopt(dbapi_conn) -> None:
    """Make a freshly connected aiosqlite adapter hand out one-hop cursors."""
    if type(dbapi_conn) is AsyncAdapt_aiosqlite_connection:
        dbapi_conn.__class__ = OneHopConnection
