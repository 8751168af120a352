-- Migration 005: the Network (Neutron v2.0 subset) tables: networks, subnets,
-- ports with their IP allocations, security groups and rules, and network quotas.
-- List-valued attributes that are only ever read whole (allocation pools, DNS
-- name servers, host routes, tags, binding profile) are JSON text.

-- A network. ``segment_key`` is unique: one flat network per physical network,
-- one vlan network per (physical network, VLAN id).
CREATE TABLE network (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    project_id VARCHAR(255) NOT NULL,
    name VARCHAR(255) NOT NULL DEFAULT '',
    description VARCHAR(255) NOT NULL DEFAULT '',
    admin_state_up BOOLEAN NOT NULL DEFAULT TRUE,
    status VARCHAR(16) NOT NULL,
    shared BOOLEAN NOT NULL DEFAULT FALSE,
    router_external BOOLEAN NOT NULL DEFAULT FALSE,
    mtu INTEGER NOT NULL,
    network_type VARCHAR(32) NOT NULL,
    physical_network VARCHAR(64),
    segmentation_id INTEGER,
    segment_key VARCHAR(128) UNIQUE,
    port_security_enabled BOOLEAN NOT NULL DEFAULT TRUE,
    tags TEXT NOT NULL DEFAULT '[]',
    revision_number INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX ix_network_project ON network (project_id);

CREATE TABLE subnet (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    project_id VARCHAR(255) NOT NULL,
    network_id VARCHAR(36) NOT NULL REFERENCES network (id),
    name VARCHAR(255) NOT NULL DEFAULT '',
    description VARCHAR(255) NOT NULL DEFAULT '',
    ip_version INTEGER NOT NULL,
    cidr VARCHAR(64) NOT NULL,
    gateway_ip VARCHAR(64),
    enable_dhcp BOOLEAN NOT NULL DEFAULT TRUE,
    ipv6_ra_mode VARCHAR(16),
    ipv6_address_mode VARCHAR(16),
    allocation_pools TEXT NOT NULL DEFAULT '[]',
    dns_nameservers TEXT NOT NULL DEFAULT '[]',
    host_routes TEXT NOT NULL DEFAULT '[]',
    tags TEXT NOT NULL DEFAULT '[]',
    revision_number INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX ix_subnet_network ON subnet (network_id);

-- A port. ``preserve_on_delete`` and ``device_order`` are cloudd's own: a port
-- the user made and gave to a server is unbound, not deleted, when the server
-- goes (Nova's flag); device_order is the port's place among its server's NICs.
CREATE TABLE port (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    project_id VARCHAR(255) NOT NULL,
    network_id VARCHAR(36) NOT NULL REFERENCES network (id),
    name VARCHAR(255) NOT NULL DEFAULT '',
    description VARCHAR(255) NOT NULL DEFAULT '',
    mac_address VARCHAR(32) NOT NULL,
    admin_state_up BOOLEAN NOT NULL DEFAULT TRUE,
    status VARCHAR(16) NOT NULL,
    device_id VARCHAR(255) NOT NULL DEFAULT '',
    device_owner VARCHAR(255) NOT NULL DEFAULT '',
    binding_host_id VARCHAR(255) NOT NULL DEFAULT '',
    binding_vnic_type VARCHAR(64) NOT NULL DEFAULT 'normal',
    binding_profile TEXT NOT NULL DEFAULT '{}',
    port_security_enabled BOOLEAN NOT NULL DEFAULT TRUE,
    preserve_on_delete BOOLEAN NOT NULL DEFAULT TRUE,
    device_order INTEGER NOT NULL DEFAULT 0,
    tags TEXT NOT NULL DEFAULT '[]',
    revision_number INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX ux_port_mac ON port (network_id, mac_address);
CREATE INDEX ix_port_device ON port (device_id);
CREATE INDEX ix_port_project ON port (project_id);

-- An address of a port on one of its network's subnets.
CREATE TABLE ip_allocation (
    port_id VARCHAR(36) NOT NULL REFERENCES port (id) ON DELETE CASCADE,
    subnet_id VARCHAR(36) NOT NULL REFERENCES subnet (id),
    network_id VARCHAR(36) NOT NULL,
    ip_address VARCHAR(64) NOT NULL,
    PRIMARY KEY (subnet_id, ip_address)
);
CREATE INDEX ix_ip_allocation_port ON ip_allocation (port_id);

CREATE TABLE security_group (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    project_id VARCHAR(255) NOT NULL,
    name VARCHAR(255) NOT NULL DEFAULT '',
    description VARCHAR(255) NOT NULL DEFAULT '',
    stateful BOOLEAN NOT NULL DEFAULT TRUE,
    tags TEXT NOT NULL DEFAULT '[]',
    revision_number INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX ix_security_group_project ON security_group (project_id);

-- Each project's one ``default`` group (Neutron's default_security_group table).
CREATE TABLE default_security_group (
    project_id VARCHAR(255) NOT NULL PRIMARY KEY,
    security_group_id VARCHAR(36) NOT NULL REFERENCES security_group (id) ON DELETE CASCADE
);

CREATE TABLE security_group_rule (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    project_id VARCHAR(255) NOT NULL,
    security_group_id VARCHAR(36) NOT NULL REFERENCES security_group (id) ON DELETE CASCADE,
    remote_group_id VARCHAR(36) REFERENCES security_group (id) ON DELETE CASCADE,
    direction VARCHAR(16) NOT NULL,
    ethertype VARCHAR(8) NOT NULL,
    protocol VARCHAR(40),
    port_range_min INTEGER,
    port_range_max INTEGER,
    remote_ip_prefix VARCHAR(64),
    description VARCHAR(255) NOT NULL DEFAULT '',
    revision_number INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX ix_sg_rule_group ON security_group_rule (security_group_id);
CREATE INDEX ix_sg_rule_remote ON security_group_rule (remote_group_id);

CREATE TABLE port_security_group (
    port_id VARCHAR(36) NOT NULL REFERENCES port (id) ON DELETE CASCADE,
    security_group_id VARCHAR(36) NOT NULL REFERENCES security_group (id),
    PRIMARY KEY (port_id, security_group_id)
);
CREATE INDEX ix_port_sg_group ON port_security_group (security_group_id);

-- A project's limit for one resource (network, subnet, port, security_group...).
CREATE TABLE network_quota (
    project_id VARCHAR(255) NOT NULL,
    resource VARCHAR(64) NOT NULL,
    hard_limit INTEGER NOT NULL,
    PRIMARY KEY (project_id, resource)
);

UPDATE schema_version SET version = 5;
