"""Storage: one async engine over SQLite (embedded default) or PostgreSQL."""

from cloudd.db.engine import Database

__all__ = ["Database"]
