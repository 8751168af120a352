"""Identity (Keystone): domains, projects, users, roles, application credentials, revocations."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
)

from cloudd.db.tables.base import _id, metadata

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
