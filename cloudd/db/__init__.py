"""Storage: one async engine over SQLite (embedded default) or PostgreSQL."""

from cloudd.db import lean

lean.install()  # before anything imports sqlalchemy.ext.asyncio: no ORM in memory

from cloudd.db.engine import Database

__all__ = ["Database"]
