"""The async database handle: SQLite with WAL and foreign keys, or PostgreSQL."""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Callable

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

WRITE_OPTION = "cloudd_write"
TOUCHED = "cloudd_touched"   # connection info: tables a write transaction changed


class Database:
    """Hands out read and write transactions.

    ``write()`` on SQLite starts with ``BEGIN IMMEDIATE`` so two writers queue
    on the database lock instead of failing mid-transaction when a deferred
    read lock cannot be upgraded; readers use plain ``BEGIN`` and see a
    consistent snapshot under WAL.
    """

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 5) -> None:
        self.url = make_url(url)
        self.dialect = self.url.get_backend_name()
        kwargs: dict = {"echo": echo}
        if self.dialect == "sqlite":
            path = self.url.database
            if path and path != ":memory:":
                _ensure_private_file(Path(path))
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs["pool_size"] = pool_size
            kwargs["pool_pre_ping"] = True
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            _install_sqlite_hooks(self.engine)
        # Called with the names of the tables a write() changed, right after
        # its commit (before write() returns), e.g. to refresh an in-memory
        # index of those tables. Hooks are synchronous and must not raise.
        self.commit_hooks: list[Callable[[set[str]], None]] = []
        event.listen(self.engine.sync_engine, "before_execute", _note_dml)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A read-write transaction, committed when the block ends cleanly."""
        async with self.engine.connect() as conn:
            await conn.execution_options(**{WRITE_OPTION: True})
            touched: set[str] = set()
            conn.info[TOUCHED] = touched
            try:
                async with conn.begin():
                    yield conn
            finally:
                conn.info.pop(TOUCHED, None)
            if touched:
                for hook in self.commit_hooks:
                    hook(touched)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only snapshot; nothing in it is committed."""
        async with self.engine.connect() as conn:
            async with conn.begin():
                yield conn

    async def close(self) -> None:
        await self.engine.dispose()


def _note_dml(conn, clauseelement, _multiparams, _params, _options) -> None:
    """Record the table of each INSERT/UPDATE/DELETE run inside write()."""
    touched = conn.info.get(TOUCHED)
    if touched is not None and getattr(clauseelement, "is_dml", False):
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
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        # Take over transaction control from the driver so BEGIN is ours.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn) -> None:
        if conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

