"""Placement: resource classes, traits, providers, inventories, consumers, allocations."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Table,
)

from cloudd.db.tables.base import metadata


def _stamps() -> list[Column]:
    return [Column("created_at", DateTime, nullable=False), Column("updated_at", DateTime)]


resource_class = Table(
    "resource_class", metadata,
    Column("name", String(255), primary_key=True),
    Column("standard", Boolean, nullable=False, default=False),
    *_stamps(),
)

trait = Table(
    "trait", metadata,
    Column("name", String(255), primary_key=True),
    Column("standard", Boolean, nullable=False, default=False),
    *_stamps(),
)

resource_provider = Table(
    "resource_provider", metadata,
    Column("uuid", String(36), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("generation", Integer, nullable=False, default=0),
    Column("root_provider_uuid", String(36), nullable=False),
    Column("parent_provider_uuid", String(36), ForeignKey("resource_provider.uuid")),
    *_stamps(),
)

inventory = Table(
    "inventory", metadata,
    Column("resource_provider_uuid", String(36),
           ForeignKey("resource_provider.uuid", ondelete="CASCADE"), primary_key=True),
    Column("resource_class", String(255), ForeignKey("resource_class.name"),
           primary_key=True),
    Column("total", BigInteger, nullable=False),
    Column("reserved", BigInteger, nullable=False, default=0),
    Column("min_unit", BigInteger, nullable=False, default=1),
    Column("max_unit", BigInteger, nullable=False),
    Column("step_size", BigInteger, nullable=False, default=1),
    Column("allocation_ratio", Float, nullable=False, default=1.0),
    *_stamps(),
)

consumer_type = Table(
    "consumer_type", metadata,
    Column("name", String(255), primary_key=True),
    Column("created_at", DateTime, nullable=False),
)

consumer = Table(
    "consumer", metadata,
    Column("uuid", String(36), primary_key=True),
    Column("project_id", String(255), nullable=False),
    Column("user_id", String(255), nullable=False),
    Column("generation", Integer, nullable=False, default=0),
    Column("consumer_type", String(255), ForeignKey("consumer_type.name")),
    *_stamps(),
)

allocation = Table(
    "allocation", metadata,
    Column("resource_provider_uuid", String(36), ForeignKey("resource_provider.uuid"),
           primary_key=True),
    Column("consumer_uuid", String(36), primary_key=True),
    Column("resource_class", String(255), ForeignKey("resource_class.name"),
           primary_key=True),
    Column("used", BigInteger, nullable=False),
    *_stamps(),
)

resource_provider_aggregate = Table(
    "resource_provider_aggregate", metadata,
    Column("resource_provider_uuid", String(36),
           ForeignKey("resource_provider.uuid", ondelete="CASCADE"), primary_key=True),
    Column("aggregate_uuid", String(36), primary_key=True),
)

resource_provider_trait = Table(
    "resource_provider_trait", metadata,
    Column("resource_provider_uuid", String(36),
           ForeignKey("resource_provider.uuid", ondelete="CASCADE"), primary_key=True),
    Column("trait", String(255), ForeignKey("trait.name"), primary_key=True),
)
