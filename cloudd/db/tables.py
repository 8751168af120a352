"""SQLAlchemy Core tables mirroring schema.sql (a test keeps them in step)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

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


# --- Compute (migration 003) ---------------------------------------------------

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

# --- Images (Glance v2) ----------------------------------------------------------

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


# --- remote consoles (migration 006) ---------------------------------------------

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


# --- networks (migration 005) ----------------------------------------------------


def _stamps() -> list[Column]:
    return [Column("revision_number", Integer, nullable=False, default=0),
            Column("created_at", DateTime, nullable=False),
            Column("updated_at", DateTime, nullable=False)]


network = Table(
    "network", metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(255), nullable=False),
    Column("name", String(255), nullable=False, default=""),
    Column("description", String(255), nullable=False, default=""),
    Column("admin_state_up", Boolean, nullable=False, default=True),
    Column("status", String(16), nullable=False),
    Column("shared", Boolean, nullable=False, default=False),
    Column("router_external", Boolean, nullable=False, default=False),
    Column("mtu", Integer, nullable=False),
    Column("network_type", String(32), nullable=False),
    Column("physical_network", String(64)),
    Column("segmentation_id", Integer),
    Column("segment_key", String(128), unique=True),
    Column("port_security_enabled", Boolean, nullable=False, default=True),
    Column("tags", Text, nullable=False, default="[]"),
    *_stamps(),
)

subnet = Table(
    "subnet", metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(255), nullable=False),
    Column("network_id", String(36), ForeignKey("network.id"), nullable=False),
    Column("name", String(255), nullable=False, default=""),
    Column("description", String(255), nullable=False, default=""),
    Column("ip_version", Integer, nullable=False),
    Column("cidr", String(64), nullable=False),
    Column("gateway_ip", String(64)),
    Column("enable_dhcp", Boolean, nullable=False, default=True),
    Column("ipv6_ra_mode", String(16)),
    Column("ipv6_address_mode", String(16)),
    Column("allocation_pools", Text, nullable=False, default="[]"),
    Column("dns_nameservers", Text, nullable=False, default="[]"),
    Column("host_routes", Text, nullable=False, default="[]"),
    Column("tags", Text, nullable=False, default="[]"),
    *_stamps(),
)

port = Table(
    "port", metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(255), nullable=False),
    Column("network_id", String(36), ForeignKey("network.id"), nullable=False),
    Column("name", String(255), nullable=False, default=""),
    Column("description", String(255), nullable=False, default=""),
    Column("mac_address", String(32), nullable=False),
    Column("admin_state_up", Boolean, nullable=False, default=True),
    Column("status", String(16), nullable=False),
    Column("device_id", String(255), nullable=False, default=""),
    Column("device_owner", String(255), nullable=False, default=""),
    Column("binding_host_id", String(255), nullable=False, default=""),
    Column("binding_vnic_type", String(64), nullable=False, default="normal"),
    Column("binding_profile", Text, nullable=False, default="{}"),
    Column("port_security_enabled", Boolean, nullable=False, default=True),
    Column("preserve_on_delete", Boolean, nullable=False, default=True),
    Column("device_order", Integer, nullable=False, default=0),
    Column("tags", Text, nullable=False, default="[]"),
    *_stamps(),
)

ip_allocation = Table(
    "ip_allocation", metadata,
    Column("port_id", String(36), ForeignKey("port.id", ondelete="CASCADE"), nullable=False),
    Column("subnet_id", String(36), ForeignKey("subnet.id"), primary_key=True),
    Column("network_id", String(36), nullable=False),
    Column("ip_address", String(64), primary_key=True),
)

security_group = Table(
    "security_group", metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(255), nullable=False),
    Column("name", String(255), nullable=False, default=""),
    Column("description", String(255), nullable=False, default=""),
    Column("stateful", Boolean, nullable=False, default=True),
    Column("tags", Text, nullable=False, default="[]"),
    *_stamps(),
)

default_security_group = Table(
    "default_security_group", metadata,
    Column("project_id", String(255), primary_key=True),
    Column("security_group_id", String(36),
           ForeignKey("security_group.id", ondelete="CASCADE"), nullable=False),
)

security_group_rule = Table(
    "security_group_rule", metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(255), nullable=False),
    Column("security_group_id", String(36),
           ForeignKey("security_group.id", ondelete="CASCADE"), nullable=False),
    Column("remote_group_id", String(36), ForeignKey("security_group.id", ondelete="CASCADE")),
    Column("direction", String(16), nullable=False),
    Column("ethertype", String(8), nullable=False),
    Column("protocol", String(40)),
    Column("port_range_min", Integer),
    Column("port_range_max", Integer),
    Column("remote_ip_prefix", String(64)),
    Column("description", String(255), nullable=False, default=""),
    *_stamps(),
)

port_security_group = Table(
    "port_security_group", metadata,
    Column("port_id", String(36), ForeignKey("port.id", ondelete="CASCADE"), primary_key=True),
    Column("security_group_id", String(36), ForeignKey("security_group.id"), primary_key=True),
)

network_quota = Table(
    "network_quota", metadata,
    Column("project_id", String(255), primary_key=True),
    Column("resource", String(64), primary_key=True),
    Column("hard_limit", Integer, nullable=False),
)
