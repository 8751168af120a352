"""Remote consoles (migration 006): one-time console tokens."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    String,
    Table,
)

from cloudd.db.tables.base import metadata

console_auth_token = Table(
    "console_auth_token", metadata,
    Column("id", String(36), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("instance_uuid", String(36), nullable=False),
    Column("console_type", String(32), nullable=False),
    Column("compute_host", String(255), nullable=False),
    Column("host", String(255), nullable=False),
    Column("port", Integer, nullable=False),
    Column("internal_access_path", String(255)),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
)
