"""The async database handle: SQLite with WAL and foreign keys, or PostgreSQL."""

from __future__ import annotations

import asyncio
import contextvars
import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from cloudd.config import DatabaseConfig
from cloudd.db.write_queue import WriteQueue

WRITE_OPTION = "cloudd_write"
# A pooled server connection idle longer than this is pinged before use.
PING_AFTER_IDLE = 5.0
# Set while a task holds a SQLite write transaction of this process.
_IN_WRITE: contextvars.ContextVar[bool] = contextvars.ContextVar("cloudd_in_write",
                                                                 default=False)
TOUCHED = "cloudd_touched"   # connection info: tables a write transaction changed
BEGIN_SEQ = "cloudd_begin_seq"   # connection info: Database.commit_seq when it began


class Database:
    """Hands out read and write transactions.

    ``write()`` on SQLite starts with ``BEGIN IMMEDIATE`` so two writers queue
    on the database lock instead of failing mid-transaction when a deferred
    read lock cannot be upgraded; readers use plain ``BEGIN`` and see a
    consistent snapshot under WAL.

    SQLite takes one writer at a time anyway, so on SQLite this process's
    writers first queue in this process (``write_queue.py``: API requests
    first, then first come, first served) and only then begin: the one holding it gets the database lock at once
    instead of several sleeping and retrying in SQLite's busy handler, which
    costs CPU and adds up to tens of milliseconds to each wait. Other
    processes on the same file still meet the busy handler. A write opened
    by a task that already holds one (it would wait for itself) skips the
    lock and meets the busy handler as before.
    """

    def __init__(self, url: str, *, echo: bool = False,
                 pool_size: int = DatabaseConfig.model_fields["pool_size"].default) -> None:
        self.url = make_url(url)
        self.dialect = self.url.get_backend_name()
        kwargs: dict = {"echo": echo}
        if self.dialect == "sqlite":
            path = self.url.database
            if path and path != ":memory:":
                _ensure_private_file(Path(path))
            kwargs["connect_args"] = {"timeout": 30}
        # Opening a connection is dear (on SQLite a thread and the PRAGMAs,
        # on PostgreSQL TLS and prepared statements again), so enough stay open
        # for a burst: SQLAlchemy's default of 5 made every one past the fifth
        # concurrent reader open a connection and close it again.
        if self.url.database not in (None, "", ":memory:") or self.dialect != "sqlite":
            kwargs["pool_size"] = pool_size
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.dialect != "sqlite":
            _install_idle_ping(self.engine)
        self._write_lock: WriteQueue | None = None
        self._write_loop: asyncio.AbstractEventLoop | None = None
        self._serialise_writes = self.dialect == "sqlite"
        if self.dialect == "sqlite":
            _install_sqlite_hooks(self.engine)
        # Called with the names of the tables a write() changed, right after
        # its commit (before write() returns), e.g. to refresh an in-memory
        # index of those tables. Hooks are synchronous and must not raise.
        self.commit_hooks: list[Callable[[set[str]], None]] = []
        # Counts the write transactions that committed a change (table_cache.py).
        self.commit_seq = 0
        event.listen(self.engine.sync_engine, "before_execute", _note_dml)

    def _lock(self) -> WriteQueue:
        loop = asyncio.get_running_loop()
        if self._write_lock is None or self._write_loop is not loop:
            self._write_lock, self._write_loop = WriteQueue(), loop
        return self._write_lock

    @asynccontextmanager
    async def write(self, *, one_statement: bool = False,
                    defer_inserts: bool = False) -> AsyncIterator[AsyncConnection]:
        """A read-write transaction, committed when the block ends cleanly.

        ``one_statement``: the block runs a single statement, atomic by
        itself, so on PostgreSQL it is sent in autocommit mode, without BEGIN
        and COMMIT: one round trip instead of three. (SQLite ignores it.)
        ``defer_inserts``: on SQLite the block's plain INSERTs are sent with
        its next statement or its COMMIT (sqlite_cursor.py), so an INSERT's
        error surfaces there; for blocks that do not catch one on the spot.
        """
        if not self._serialise_writes or _IN_WRITE.get():
            async with self._transaction(one_statement) as conn:
                yield conn
            return
        async with self._lock():
            token = _IN_WRITE.set(True)
            try:
                async with self._transaction(one_statement, defer_inserts) as conn:
                    yield conn
            finally:
                _IN_WRITE.reset(token)

    @asynccontextmanager
    async def _transaction(self, one_statement: bool = False, defer_inserts: bool = False
                           ) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            options: dict = {WRITE_OPTION: True}
            if one_statement and self.dialect != "sqlite":
                options["isolation_level"] = "AUTOCOMMIT"
            await conn.execution_options(**options)
            touched: set[str] = set()
            # Held, not read again after the block: a block cancelled mid-statement
            # leaves the connection invalidated, and its ``info`` would reconnect
            # outside SQLAlchemy's async bridge (MissingGreenlet, not CancelledError).
            info = conn.info
            info[TOUCHED] = touched
            info[BEGIN_SEQ] = self.commit_seq
            dbapi = conn.sync_connection.connection.dbapi_connection if defer_inserts else None
            if not hasattr(dbapi, "defer_inserts"):
                dbapi = None
            if dbapi is not None:
                dbapi.defer_inserts(True)
            try:
                async with conn.begin():
                    yield conn
            finally:
                info.pop(TOUCHED, None)
                if dbapi is not None:
                    dbapi.defer_inserts(False)
            if touched:
                self.commit_seq += 1
                for hook in self.commit_hooks:
                    hook(touched)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only snapshot; nothing in it is committed."""
        async with self.engine.connect() as conn:
            conn.info[BEGIN_SEQ] = self.commit_seq
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def lazy_read(self) -> AsyncIterator[LazyRead]:
        """``read()``, opened only at the block's first statement: a block
        whose reads all hit in-memory caches (a server create's flavor,
        image and limits) takes no connection, and pays none of the loop
        cycles a checkout, BEGIN, ROLLBACK and close cost under load."""
        lazy = LazyRead(self)
        try:
            yield lazy
        except BaseException as error:
            await lazy._close(error)
            raise
        await lazy._close(None)

    async def close(self) -> None:
        await self.engine.dispose()


class LazyRead:
    """What ``Database.lazy_read()`` yields: ``execute`` (and ``info``,
    ``dialect``) as an AsyncConnection's, the snapshot opened on first use."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._context = None
        self._conn: AsyncConnection | None = None
        self._info: dict = {BEGIN_SEQ: db.commit_seq}
        self.dialect = db.engine.dialect

    @property
    def info(self) -> dict:
        return self._conn.info if self._conn is not None else self._info

    async def execute(self, statement, parameters=None, **kwargs):
        if self._conn is None:
            self._context = self._db.read()
            self._conn = await self._context.__aenter__()
        return await self._conn.execute(statement, parameters, **kwargs)

    async def _close(self, error: BaseException | None) -> None:
        if self._context is not None:
            context, self._context, self._conn = self._context, None, None
            await context.__aexit__(type(error) if error else None, error,
                                    error.__traceback__ if error else None)


def _note_dml(conn, clauseelement, _multiparams, _params, _options) -> None:
    """Record the table of each INSERT/UPDATE/DELETE run inside write(), or
    the name(s) in the statement's execution option ``cloudd_note_as`` in
    its place (say, an UPDATE of a column no commit hook follows, or the
    tables of a statement's data-modifying CTEs)."""
    touched = conn.info.get(TOUCHED)
    if touched is None:
        return
    names = clauseelement.get_execution_options().get("cloudd_note_as") \
        if hasattr(clauseelement, "get_execution_options") else None
    if names is not None:
        touched.update((names,) if isinstance(names, str) else names)
    elif getattr(clauseelement, "is_dml", False):
        name = getattr(getattr(clauseelement, "table", None), "name", None)
        if name:
            touched.add(name)


def _ensure_private_file(path: Path) -> None:
    """Create the SQLite file 0600 (it holds password hashes) in a 0700 dir."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    from cloudd.db import sqlite_cursor

    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        sqlite_cursor.adopt(dbapi_conn)
        # Take over transaction control from the driver so BEGIN is ours.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(sync_engine, "invalidate")
    def _on_invalidate(dbapi_conn, _record, _exception) -> None:
        # A block cancelled mid-statement (shutdown cancels actors) gets its
        # connection invalidated; the statement would run on in the driver's
        # thread, holding the database (and its write lock) until it ends and
        # the close queued behind it. sqlite3's interrupt() is for another thread.
        raw = getattr(getattr(dbapi_conn, "_connection", None), "_connection", None)
        if raw is not None:
            with suppress(sqlite3.ProgrammingError):    # closed meanwhile
                raw.interrupt()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn) -> None:
        statement = "BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) \
            else "BEGIN"
        dbapi_conn = conn.connection.dbapi_connection
        if isinstance(dbapi_conn, sqlite_cursor.OneHopConnection):
            dbapi_conn.begin_later(statement)     # sent with the first statement
        else:
            conn.exec_driver_sql(statement)


def _install_idle_ping(engine: AsyncEngine) -> None:
    """SQLAlchemy's ``pool_pre_ping``, but only for a connection that sat idle
    in the pool for ``PING_AFTER_IDLE`` seconds: a busy controller does not pay
    a round trip per transaction, and a connection the server dropped while it
    sat idle (a restart) is still replaced before anyone uses it. A dead one
    used sooner fails its transaction, and SQLAlchemy then invalidates the pool."""
    import time

    from sqlalchemy.exc import DisconnectionError

    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "checkin")
    def _on_checkin(_dbapi_conn, record) -> None:
        record.info["cloudd_idle_since"] = time.monotonic()

    @event.listens_for(sync_engine, "checkout")
    def _on_checkout(dbapi_conn, record, _proxy) -> None:
        since = record.info.get("cloudd_idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE:
            return
        try:
            dbapi_conn.ping()
        except Exception as exc:        # any failure means a dead connection
            raise DisconnectionError(f"stale pooled connection: {exc}") from exc
