"""Networks (Neutron, migration 005): networks, subnets, ports, addresses, security
groups and rules, quotas."""

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

from cloudd.db.tables.base import metadata


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
