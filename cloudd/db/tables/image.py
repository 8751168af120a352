"""Images (Glance v2): images, properties, tags, members."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
)

from cloudd.db.tables.base import metadata

image = Table(
    "image", metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(255)),
    Column("status", String(30), nullable=False),
    Column("visibility", String(16), nullable=False),
    Column("protected", Boolean, nullable=False, default=False),
    Column("os_hidden", Boolean, nullable=False, default=False),
    Column("owner", String(255)),
    Column("disk_format", String(20)),
    Column("container_format", String(20)),
    Column("size", BigInteger),
    Column("virtual_size", BigInteger),
    Column("checksum", String(32)),
    Column("os_hash_algo", String(64)),
    Column("os_hash_value", String(128)),
    Column("min_disk", Integer, nullable=False, default=0),
    Column("min_ram", Integer, nullable=False, default=0),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

image_property = Table(
    "image_property", metadata,
    Column("image_id", String(36), ForeignKey("image.id", ondelete="CASCADE"),
           primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("value", Text, nullable=False),
)

image_tag = Table(
    "image_tag", metadata,
    Column("image_id", String(36), ForeignKey("image.id", ondelete="CASCADE"),
           primary_key=True),
    Column("value", String(255), primary_key=True),
)

image_member = Table(
    "image_member", metadata,
    Column("image_id", String(36), ForeignKey("image.id", ondelete="CASCADE"),
           primary_key=True),
    Column("member", String(255), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)
