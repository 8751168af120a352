"""A Database holding just a test's own tables (tests of the database layer)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import MetaData

from cloudd.db.engine import Database


@asynccontextmanager
async def database_with(url: str, metadata: MetaData) -> AsyncIterator[Database]:
    """``Database(url)`` with ``metadata``'s tables created; closed afterwards."""
    database = Database(url)
    try:
        async with database.write() as conn:
            await conn.run_sync(metadata.create_all)
        yield database
    finally:
        await database.close()
