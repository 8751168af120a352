"""Compute (Nova, migration 003 on): services, flavors, keypairs, instances, tasks, the
agents' outbox, migrations, server groups, quotas, aggregates."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
)

from cloudd.db.tables.base import metadata

compute_service = Table(
    "compute_service", metadata,
    Column("id", String(36), primary_key=True),
    Column("num", Integer, nullable=False, unique=True),
    Column("host", String(255), nullable=False),
    Column("binary_name", String(64), nullable=False),
    Column("zone", String(32), nullable=False, default="internal"),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("disabled_reason", String(255)),
    Column("forced_down", Boolean, nullable=False, default=False),
    Column("version", Integer, nullable=False, default=0),
    Column("last_seen_at", DateTime),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime),
)

compute_node = Table(
    "compute_node", metadata,
    Column("id", String(36), primary_key=True),
    Column("num", Integer, nullable=False, unique=True),
    Column("service_id", String(36),
           ForeignKey("compute_service.id", ondelete="CASCADE"), nullable=False),
    Column("host", String(255), nullable=False),
    Column("hypervisor_hostname", String(255), nullable=False, unique=True),
    Column("hypervisor_type", String(64), nullable=False, default="fake"),
    Column("hypervisor_version", Integer, nullable=False, default=0),
    Column("vcpus", Integer, nullable=False, default=0),
    Column("memory_mb", Integer, nullable=False, default=0),
    Column("local_gb", Integer, nullable=False, default=0),
    Column("host_ip", String(64)),
    Column("cpu_info", Text, nullable=False, default="{}"),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime),
)

id_counter = Table(
    "id_counter", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Integer, nullable=False),
)

agent_credential = Table(
    "agent_credential", metadata,
    Column("host", String(255), primary_key=True),
    Column("secret_hash", String(255), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

flavor = Table(
    "flavor", metadata,
    Column("id", String(255), primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("vcpus", Integer, nullable=False),
    Column("memory_mb", Integer, nullable=False),
    Column("root_gb", Integer, nullable=False, default=0),
    Column("ephemeral_gb", Integer, nullable=False, default=0),
    Column("swap", Integer, nullable=False, default=0),
    Column("rxtx_factor", Float, nullable=False, default=1.0),
    Column("is_public", Boolean, nullable=False, default=True),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("description", Text),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime),
)

flavor_extra_spec = Table(
    "flavor_extra_spec", metadata,
    Column("flavor_id", String(255),
           ForeignKey("flavor.id", ondelete="CASCADE"), primary_key=True),
    Column("spec_key", String(255), primary_key=True),
    Column("spec_value", String(255), nullable=False),
)

flavor_project = Table(
    "flavor_project", metadata,
    Column("flavor_id", String(255),
           ForeignKey("flavor.id", ondelete="CASCADE"), primary_key=True),
    Column("project_id", String(255), primary_key=True),
)

keypair = Table(
    "keypair", metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(255), nullable=False),
    Column("name", String(255), nullable=False),
    Column("key_type", String(16), nullable=False, default="ssh"),
    Column("public_key", Text, nullable=False),
    Column("fingerprint", String(255), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

instance = Table(
    "instance", metadata,
    Column("uuid", String(36), primary_key=True),
    Column("display_name", String(255), nullable=False),
    Column("hostname", String(255)),
    Column("description", Text),
    Column("project_id", String(255), nullable=False),
    Column("user_id", String(255), nullable=False),
    Column("host", String(255)),
    Column("node", String(255)),
    Column("availability_zone", String(255)),
    Column("flavor", Text, nullable=False),
    Column("old_flavor", Text),
    Column("new_flavor", Text),
    Column("image_ref", String(255), nullable=False, default=""),
    Column("vm_state", String(32), nullable=False),
    Column("task_state", String(32)),
    Column("power_state", Integer, nullable=False, default=0),
    Column("key_name", String(255)),
    Column("key_data", Text),
    Column("user_data", Text),
    Column("config_drive", String(16), nullable=False, default=""),
    Column("access_ip_v4", String(64)),
    Column("access_ip_v6", String(64)),
    Column("locked", Boolean, nullable=False, default=False),
    Column("locked_by", String(16)),
    Column("locked_reason", Text),
    Column("launch_index", Integer, nullable=False, default=0),
    Column("reservation_id", String(64), nullable=False),
    Column("progress", Integer, nullable=False, default=0),
    Column("request_spec", Text, nullable=False, default="{}"),
    Column("launched_at", DateTime),
    Column("terminated_at", DateTime),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("deleted_at", DateTime),
)

instance_metadata = Table(
    "instance_metadata", metadata,
    Column("instance_uuid", String(36),
           ForeignKey("instance.uuid", ondelete="CASCADE"), primary_key=True),
    Column("meta_key", String(255), primary_key=True),
    Column("meta_value", String(255), nullable=False),
)

instance_tag = Table(
    "instance_tag", metadata,
    Column("instance_uuid", String(36),
           ForeignKey("instance.uuid", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(80), primary_key=True),
)

instance_fault = Table(
    "instance_fault", metadata,
    Column("id", String(36), primary_key=True),
    Column("instance_uuid", String(36),
           ForeignKey("instance.uuid", ondelete="CASCADE"), nullable=False),
    Column("code", Integer, nullable=False),
    Column("message", String(255), nullable=False),
    Column("details", Text, nullable=False, default=""),
    Column("host", String(255)),
    Column("created_at", DateTime, nullable=False),
)

instance_action = Table(
    "instance_action", metadata,
    Column("id", String(36), primary_key=True),
    Column("instance_uuid", String(36),
           ForeignKey("instance.uuid", ondelete="CASCADE"), nullable=False),
    Column("action", String(255), nullable=False),
    Column("request_id", String(255), nullable=False),
    Column("project_id", String(255), nullable=False),
    Column("user_id", String(255), nullable=False),
    Column("message", String(255)),
    Column("start_time", DateTime, nullable=False),
    Column("finish_time", DateTime),
    Column("updated_at", DateTime),
)

instance_action_event = Table(
    "instance_action_event", metadata,
    Column("id", String(36), primary_key=True),
    Column("action_id", String(36),
           ForeignKey("instance_action.id", ondelete="CASCADE"), nullable=False),
    Column("event", String(255), nullable=False),
    Column("result", String(255)),
    Column("traceback", Text),
    Column("host", String(255)),
    Column("details", Text),
    Column("start_time", DateTime, nullable=False),
    Column("finish_time", DateTime),
)

task = Table(
    "task", metadata,
    Column("id", String(36), primary_key=True),
    Column("instance_uuid", String(36),
           ForeignKey("instance.uuid", ondelete="CASCADE"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("state", String(16), nullable=False, default="pending"),
    Column("step", String(32), nullable=False, default="start"),
    Column("payload", Text, nullable=False, default="{}"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("lease_until", DateTime),
    Column("request_id", String(255)),
    Column("action_id", String(36)),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime),
)

agent_command = Table(
    "agent_command", metadata,
    Column("id", String(36), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("task_id", String(36)),
    Column("instance_uuid", String(36)),
    Column("op", String(32), nullable=False),
    Column("args", Text, nullable=False, default="{}"),
    Column("state", String(16), nullable=False, default="pending"),
    Column("result", Text),
    Column("created_at", DateTime, nullable=False),
    Column("sent_at", DateTime),
    Column("updated_at", DateTime),
)

migration = Table(
    "migration", metadata,
    Column("id", String(36), primary_key=True),
    Column("num", Integer, nullable=False, unique=True),
    Column("instance_uuid", String(36),
           ForeignKey("instance.uuid", ondelete="CASCADE"), nullable=False),
    Column("migration_type", String(32), nullable=False),
    Column("status", String(32), nullable=False),
    Column("source_compute", String(255)),
    Column("dest_compute", String(255)),
    Column("source_node", String(255)),
    Column("dest_node", String(255)),
    Column("old_flavor_id", String(255)),
    Column("new_flavor_id", String(255)),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime),
)

server_group = Table(
    "server_group", metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("project_id", String(255), nullable=False),
    Column("user_id", String(255), nullable=False),
    Column("policy", String(32), nullable=False),
    Column("rules", Text, nullable=False, default="{}"),
    Column("created_at", DateTime, nullable=False),
)

server_group_member = Table(
    "server_group_member", metadata,
    Column("group_id", String(36),
           ForeignKey("server_group.id", ondelete="CASCADE"), primary_key=True),
    Column("instance_uuid", String(36), primary_key=True),
)

quota = Table(
    "quota", metadata,
    Column("project_id", String(255), primary_key=True),
    Column("resource", String(255), primary_key=True),
    Column("hard_limit", Integer, nullable=False),
)

quota_class = Table(
    "quota_class", metadata,
    Column("class_name", String(255), primary_key=True),
    Column("resource", String(255), primary_key=True),
    Column("hard_limit", Integer, nullable=False),
)

quota_lock = Table(
    "quota_lock", metadata,
    Column("project_id", String(255), primary_key=True),
    Column("touched_at", DateTime, nullable=False),
)

aggregate = Table(
    "aggregate", metadata,
    Column("id", String(36), primary_key=True),
    Column("num", Integer, nullable=False, unique=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime),
)

aggregate_host = Table(
    "aggregate_host", metadata,
    Column("aggregate_id", String(36),
           ForeignKey("aggregate.id", ondelete="CASCADE"), primary_key=True),
    Column("host", String(255), primary_key=True),
)

aggregate_metadata = Table(
    "aggregate_metadata", metadata,
    Column("aggregate_id", String(36),
           ForeignKey("aggregate.id", ondelete="CASCADE"), primary_key=True),
    Column("meta_key", String(255), primary_key=True),
    Column("meta_value", String(255), nullable=False),
)
