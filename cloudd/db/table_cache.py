"""Read-through caches of rows that change rarely (flavors, quota limits,
images), dropped whenever a write of this process commits a change to one of
their tables.

Every write goes through ``Database.write()``, which records the tables its
statements changed and calls ``Database.commit_hooks`` right after the
commit; a cache clears itself there. A value is only kept when no commit
touching the cache's tables happened since the transaction that loaded it
began (``Database.commit_seq``, recorded on the connection at begin), and
the loading transaction changed none of them itself (it could still roll
back), so a load that straddles a write is never kept and the next request
after a commit reads the database again.

This relies on one controller process per database (as the conductor does):
a write by another process to these tables is not seen until this process
commits a change to them itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from cloudd.db.engine import BEGIN_SEQ, TOUCHED, Database


class TableCache:
    def __init__(self, db: Database, tables: set[str] | frozenset[str],
                 max_entries: int = 512) -> None:
        self.db = db
        self.tables = frozenset(tables)
        self.max_entries = max_entries
        self._data: dict[Hashable, Any] = {}
        self._changed_at = db.commit_seq      # commit_seq of the last change seen
        db.commit_hooks.append(self._committed)

    def _committed(self, touched: set[str]) -> None:
        if not self.tables.isdisjoint(touched):
            self._data.clear()
            self._changed_at = self.db.commit_seq

    def clear(self) -> None:
        self._data.clear()
        self._changed_at = self.db.commit_seq

    async def get(self, conn, key: Hashable, load: Callable[[Any], Awaitable[Any]]) -> Any:
        """The cached value of ``key``, else ``await load(conn)`` (kept when safe).
        Values are shared: callers must not change them."""
        try:
            return self._data[key]
        except KeyError:
            pass
        value = await load(conn)
        info = conn.info
        began = info.get(BEGIN_SEQ)
        touched = info.get(TOUCHED)
        if began is not None and began >= self._changed_at and \
                (not touched or self.tables.isdisjoint(touched)):
            if len(self._data) >= self.max_entries:
                self._data.clear()
            self._data[key] = value
        return value
