"""SQLAlchemy Core tables mirroring schema.sql (a test keeps them in step)."""

from __future__ import annotations

from sqlalchemy import (BigInteger, Boolean, Column, DateTime, Float, ForeignKey, Integer,
                        MetaData, String, Table, Text)

metadata = MetaData()


def _id(name: str = "id", **kw) -> Column:
    return Column(name, String(64), primary_key=True, **kw)


schema_version = Table("schema_version", metadata,
                       Column("version", Integer, nullable=False))

domain = Table(
    "domain", metadata,
    _id(),
    Column("name", String(255), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", DateTime, nullable=False),
)

project = Table(
    "project", metadata,
    _id(),
    Column("name", String(64), nullable=False),
    Column("domain_id", String(64), ForeignKey("domain.id"), nullable=False),
    Column("parent_id", String(64), ForeignKey("project.id")),
    Column("description", Text, nullable=False, default=""),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("tags", Text, nullable=False, default="[]"),
    Column("extra", Text, nullable=False, default="{}"),
    Column("created_at", DateTime, nullable=False),
)

user = Table(
    "identity_user", metadata,
    _id(),
    Column("name", String(255), nullable=False),
    Column("domain_id", String(64), ForeignKey("domain.id"), nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("password_hash", String(255)),
    Column("password_created_at", DateTime),
    Column("default_project_id", String(64)),
    Column("description", Text, nullable=False, default=""),
    Column("email", String(255)),
    Column("extra", Text, nullable=False, default="{}"),
    Column("failed_auth_count", Integer, nullable=False, default=0),
    Column("failed_auth_at", DateTime),
    Column("created_at", DateTime, nullable=False),
)

GLOBAL_ROLE_DOMAIN = "<<null>>"

role = Table(
    "role", metadata,
    _id(),
    Column("name", String(255), nullable=False),
    Column("domain_id", String(64), nullable=False, default=GLOBAL_ROLE_DOMAIN),
    Column("description", Text, nullable=False, default=""),
)

implied_role = Table(
    "implied_role", metadata,
    Column("prior_role_id", String(64), ForeignKey("role.id", ondelete="CASCADE"),
           primary_key=True),
    Column("implied_role_id", String(64), ForeignKey("role.id", ondelete="CASCADE"),
           primary_key=True),
)

role_assignment = Table(
    "role_assignment", metadata,
    Column("type", String(16), primary_key=True),
    Column("actor_id", String(64), primary_key=True),
    Column("target_id", String(64), primary_key=True),
    Column("role_id", String(64), ForeignKey("role.id", ondelete="CASCADE"),
           primary_key=True),
    Column("inherited", Boolean, primary_key=True, default=False),
)

application_credential = Table(
    "application_credential", metadata,
    _id(),
    Column("name", String(255), nullable=False),
    Column("user_id", String(64), ForeignKey("identity_user.id", ondelete="CASCADE"),
           nullable=False),
    Column("project_id", String(64), nullable=False),
    Column("secret_hash", String(255), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("unrestricted", Boolean, nullable=False, default=False),
    Column("expires_at", DateTime),
    Column("created_at", DateTime, nullable=False),
)

application_credential_role = Table(
    "application_credential_role", metadata,
    Column("application_credential_id", String(64),
           ForeignKey("application_credential.id", ondelete="CASCADE"), primary_key=True),
    Column("role_id", String(64), ForeignKey("role.id", ondelete="CASCADE"),
           primary_key=True),
)

revocation_event = Table(
    "revocation_event", metadata,
    _id(),
    Column("audit_id", String(64)),
    Column("user_id", String(64)),
    Column("project_id", String(64)),
    Column("issued_before", DateTime, nullable=False),
    Column("revoked_at", DateTime, nullable=False),
)


# Placement ------------------------------------------------------------------

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
