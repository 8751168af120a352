-- cloudd schema: the one schema, portable between SQLite and PostgreSQL.
-- Statements end with ";" at the end of a line. Later changes arrive as
-- numbered files in migrations/ (NNN_name.sql), each ending with an UPDATE of
-- schema_version; this file always holds the newest schema.

CREATE TABLE schema_version (
    version INTEGER NOT NULL
);
INSERT INTO schema_version (version) VALUES (6);

-- Identity -----------------------------------------------------------------

CREATE TABLE domain (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE project (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    name VARCHAR(64) NOT NULL,
    domain_id VARCHAR(64) NOT NULL REFERENCES domain (id),
    parent_id VARCHAR(64) REFERENCES project (id),
    description TEXT NOT NULL DEFAULT '',
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    tags TEXT NOT NULL DEFAULT '[]',
    extra TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL,
    CONSTRAINT uq_project_domain_name UNIQUE (domain_id, name)
);

CREATE TABLE identity_user (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    domain_id VARCHAR(64) NOT NULL REFERENCES domain (id),
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    password_hash VARCHAR(255),
    password_created_at TIMESTAMP,
    default_project_id VARCHAR(64),
    description TEXT NOT NULL DEFAULT '',
    email VARCHAR(255),
    extra TEXT NOT NULL DEFAULT '{}',
    failed_auth_count INTEGER NOT NULL DEFAULT 0,
    failed_auth_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    CONSTRAINT uq_user_domain_name UNIQUE (domain_id, name)
);

CREATE TABLE role (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    -- '<<null>>' for global roles, as Keystone does, so the unique key holds.
    domain_id VARCHAR(64) NOT NULL DEFAULT '<<null>>',
    description TEXT NOT NULL DEFAULT '',
    CONSTRAINT uq_role_name UNIQUE (domain_id, name)
);

CREATE TABLE implied_role (
    prior_role_id VARCHAR(64) NOT NULL REFERENCES role (id) ON DELETE CASCADE,
    implied_role_id VARCHAR(64) NOT NULL REFERENCES role (id) ON DELETE CASCADE,
    PRIMARY KEY (prior_role_id, implied_role_id)
);

-- type: UserProject, UserDomain or UserSystem; target_id is the project or
-- domain id, or 'system' for the whole cloud.
CREATE TABLE role_assignment (
    type VARCHAR(16) NOT NULL,
    actor_id VARCHAR(64) NOT NULL,
    target_id VARCHAR(64) NOT NULL,
    role_id VARCHAR(64) NOT NULL REFERENCES role (id) ON DELETE CASCADE,
    inherited BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (type, actor_id, target_id, role_id, inherited)
);
CREATE INDEX ix_role_assignment_target ON role_assignment (target_id);

CREATE TABLE application_credential (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    user_id VARCHAR(64) NOT NULL REFERENCES identity_user (id) ON DELETE CASCADE,
    project_id VARCHAR(64) NOT NULL,
    secret_hash VARCHAR(255) NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    unrestricted BOOLEAN NOT NULL DEFAULT FALSE,
    expires_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    CONSTRAINT uq_app_cred_user_name UNIQUE (user_id, name)
);

CREATE TABLE application_credential_role (
    application_credential_id VARCHAR(64) NOT NULL
        REFERENCES application_credential (id) ON DELETE CASCADE,
    role_id VARCHAR(64) NOT NULL REFERENCES role (id) ON DELETE CASCADE,
    PRIMARY KEY (application_credential_id, role_id)
);

-- Keystone-style revocation events: a token matches an event when every
-- non-null column matches it and it was issued at or before issued_before.
CREATE TABLE revocation_event (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    audit_id VARCHAR(64),
    user_id VARCHAR(64),
    project_id VARCHAR(64),
    issued_before TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP NOT NULL
);
CREATE INDEX ix_revocation_event_audit ON revocation_event (audit_id);
CREATE INDEX ix_revocation_event_user ON revocation_event (user_id);

-- Placement ------------------------------------------------------------------
-- Providers, classes, traits and consumers are keyed by their public names
-- and UUIDs, so no table needs an auto-increment column (which SQLite and
-- PostgreSQL spell differently).

CREATE TABLE resource_class (
    name VARCHAR(255) NOT NULL PRIMARY KEY,
    standard BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP
);

CREATE TABLE trait (
    name VARCHAR(255) NOT NULL PRIMARY KEY,
    standard BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP
);

CREATE TABLE resource_provider (
    uuid VARCHAR(36) NOT NULL PRIMARY KEY,
    name VARCHAR(200) NOT NULL UNIQUE,
    generation INTEGER NOT NULL DEFAULT 0,
    root_provider_uuid VARCHAR(36) NOT NULL,
    parent_provider_uuid VARCHAR(36) REFERENCES resource_provider (uuid),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP
);
CREATE INDEX ix_resource_provider_root ON resource_provider (root_provider_uuid);
CREATE INDEX ix_resource_provider_parent ON resource_provider (parent_provider_uuid);

CREATE TABLE inventory (
    resource_provider_uuid VARCHAR(36) NOT NULL
        REFERENCES resource_provider (uuid) ON DELETE CASCADE,
    resource_class VARCHAR(255) NOT NULL REFERENCES resource_class (name),
    total BIGINT NOT NULL,
    reserved BIGINT NOT NULL DEFAULT 0,
    min_unit BIGINT NOT NULL DEFAULT 1,
    max_unit BIGINT NOT NULL,
    step_size BIGINT NOT NULL DEFAULT 1,
    allocation_ratio FLOAT NOT NULL DEFAULT 1.0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP,
    PRIMARY KEY (resource_provider_uuid, resource_class)
);
CREATE INDEX ix_inventory_class ON inventory (resource_class);

CREATE TABLE consumer_type (
    name VARCHAR(255) NOT NULL PRIMARY KEY,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE consumer (
    uuid VARCHAR(36) NOT NULL PRIMARY KEY,
    project_id VARCHAR(255) NOT NULL,
    user_id VARCHAR(255) NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0,
    consumer_type VARCHAR(255) REFERENCES consumer_type (name),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP
);
CREATE INDEX ix_consumer_project_user ON consumer (project_id, user_id);

CREATE TABLE allocation (
    resource_provider_uuid VARCHAR(36) NOT NULL REFERENCES resource_provider (uuid),
    consumer_uuid VARCHAR(36) NOT NULL,
    resource_class VARCHAR(255) NOT NULL REFERENCES resource_class (name),
    used BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP,
    PRIMARY KEY (resource_provider_uuid, consumer_uuid, resource_class)
);
CREATE INDEX ix_allocation_consumer ON allocation (consumer_uuid);
CREATE INDEX ix_allocation_class ON allocation (resource_class);

CREATE TABLE resource_provider_aggregate (
    resource_provider_uuid VARCHAR(36) NOT NULL
        REFERENCES resource_provider (uuid) ON DELETE CASCADE,
    aggregate_uuid VARCHAR(36) NOT NULL,
    PRIMARY KEY (resource_provider_uuid, aggregate_uuid)
);
CREATE INDEX ix_rp_aggregate_aggregate ON resource_provider_aggregate (aggregate_uuid);

CREATE TABLE resource_provider_trait (
    resource_provider_uuid VARCHAR(36) NOT NULL
        REFERENCES resource_provider (uuid) ON DELETE CASCADE,
    trait VARCHAR(255) NOT NULL REFERENCES trait (name),
    PRIMARY KEY (resource_provider_uuid, trait)
);
CREATE INDEX ix_rp_trait_trait ON resource_provider_trait (trait);

-- Compute ------------------------------------------------------------------------

-- Hosts ------------------------------------------------------------------------
-- One row per service (nova-compute per agent host; nova-scheduler and
-- nova-conductor for the controller). ``num`` is the integer id older
-- microversions show (before 2.53); ``id`` the UUID newer ones show.

CREATE TABLE compute_service (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    num INTEGER NOT NULL UNIQUE,
    host VARCHAR(255) NOT NULL,
    binary_name VARCHAR(64) NOT NULL,
    zone VARCHAR(32) NOT NULL DEFAULT 'internal',
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    disabled_reason VARCHAR(255),
    forced_down BOOLEAN NOT NULL DEFAULT FALSE,
    version INTEGER NOT NULL DEFAULT 0,
    last_seen_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP,
    CONSTRAINT uq_compute_service_host_binary UNIQUE (host, binary_name)
);

-- A hypervisor. ``id`` is also its resource provider's uuid in placement.
CREATE TABLE compute_node (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    num INTEGER NOT NULL UNIQUE,
    service_id VARCHAR(36) NOT NULL REFERENCES compute_service (id) ON DELETE CASCADE,
    host VARCHAR(255) NOT NULL,
    hypervisor_hostname VARCHAR(255) NOT NULL UNIQUE,
    hypervisor_type VARCHAR(64) NOT NULL DEFAULT 'fake',
    hypervisor_version INTEGER NOT NULL DEFAULT 0,
    vcpus INTEGER NOT NULL DEFAULT 0,
    memory_mb INTEGER NOT NULL DEFAULT 0,
    local_gb INTEGER NOT NULL DEFAULT 0,
    host_ip VARCHAR(64),
    cpu_info TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP
);
CREATE INDEX ix_compute_node_host ON compute_node (host);

-- The next integer id of tables that show one (services, nodes, aggregates,
-- migrations): taken with UPDATE ... RETURNING, so concurrent writers never
-- get the same number, and a deleted row's number is never given again.
CREATE TABLE id_counter (
    name VARCHAR(64) NOT NULL PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO id_counter (name, value) VALUES ('compute_service', 0);
INSERT INTO id_counter (name, value) VALUES ('compute_node', 0);
INSERT INTO id_counter (name, value) VALUES ('aggregate', 0);
INSERT INTO id_counter (name, value) VALUES ('migration', 0);

-- The credential an agent presents (``cloudd host add NAME``): a bcrypt hash.
CREATE TABLE agent_credential (
    host VARCHAR(255) NOT NULL PRIMARY KEY,
    secret_hash VARCHAR(255) NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- Flavors and keypairs ----------------------------------------------------------

CREATE TABLE flavor (
    id VARCHAR(255) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL UNIQUE,
    vcpus INTEGER NOT NULL,
    memory_mb INTEGER NOT NULL,
    root_gb INTEGER NOT NULL DEFAULT 0,
    ephemeral_gb INTEGER NOT NULL DEFAULT 0,
    swap INTEGER NOT NULL DEFAULT 0,
    rxtx_factor FLOAT NOT NULL DEFAULT 1.0,
    is_public BOOLEAN NOT NULL DEFAULT TRUE,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    description TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP
);

CREATE TABLE flavor_extra_spec (
    flavor_id VARCHAR(255) NOT NULL REFERENCES flavor (id) ON DELETE CASCADE,
    spec_key VARCHAR(255) NOT NULL,
    spec_value VARCHAR(255) NOT NULL,
    PRIMARY KEY (flavor_id, spec_key)
);

CREATE TABLE flavor_project (
    flavor_id VARCHAR(255) NOT NULL REFERENCES flavor (id) ON DELETE CASCADE,
    project_id VARCHAR(255) NOT NULL,
    PRIMARY KEY (flavor_id, project_id)
);

CREATE TABLE keypair (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    user_id VARCHAR(255) NOT NULL,
    name VARCHAR(255) NOT NULL,
    key_type VARCHAR(16) NOT NULL DEFAULT 'ssh',
    public_key TEXT NOT NULL,
    fingerprint VARCHAR(255) NOT NULL,
    created_at TIMESTAMP NOT NULL,
    CONSTRAINT uq_keypair_user_name UNIQUE (user_id, name)
);

-- Instances --------------------------------------------------------------------
-- ``flavor`` (and ``old_flavor``/``new_flavor`` during a resize) hold the
-- flavor as it was when used, as JSON, as Nova's instance_extra does.
-- ``request_spec`` holds what the scheduler needs again on a reschedule or
-- a resize: requested zone, scheduler hints, group, image properties,
-- requested networks, block device mappings (JSON).

CREATE TABLE instance (
    uuid VARCHAR(36) NOT NULL PRIMARY KEY,
    display_name VARCHAR(255) NOT NULL,
    hostname VARCHAR(255),
    description TEXT,
    project_id VARCHAR(255) NOT NULL,
    user_id VARCHAR(255) NOT NULL,
    host VARCHAR(255),
    node VARCHAR(255),
    availability_zone VARCHAR(255),
    flavor TEXT NOT NULL,
    old_flavor TEXT,
    new_flavor TEXT,
    image_ref VARCHAR(255) NOT NULL DEFAULT '',
    vm_state VARCHAR(32) NOT NULL,
    task_state VARCHAR(32),
    power_state INTEGER NOT NULL DEFAULT 0,
    key_name VARCHAR(255),
    key_data TEXT,
    user_data TEXT,
    config_drive VARCHAR(16) NOT NULL DEFAULT '',
    access_ip_v4 VARCHAR(64),
    access_ip_v6 VARCHAR(64),
    locked BOOLEAN NOT NULL DEFAULT FALSE,
    locked_by VARCHAR(16),
    locked_reason TEXT,
    launch_index INTEGER NOT NULL DEFAULT 0,
    reservation_id VARCHAR(64) NOT NULL,
    progress INTEGER NOT NULL DEFAULT 0,
    request_spec TEXT NOT NULL DEFAULT '{}',
    launched_at TIMESTAMP,
    terminated_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP,
    deleted BOOLEAN NOT NULL DEFAULT FALSE,
    deleted_at TIMESTAMP
);
CREATE INDEX ix_instance_project ON instance (project_id, deleted);
CREATE INDEX ix_instance_host ON instance (host, deleted);
CREATE INDEX ix_instance_created ON instance (created_at, uuid);

CREATE TABLE instance_metadata (
    instance_uuid VARCHAR(36) NOT NULL REFERENCES instance (uuid) ON DELETE CASCADE,
    meta_key VARCHAR(255) NOT NULL,
    meta_value VARCHAR(255) NOT NULL,
    PRIMARY KEY (instance_uuid, meta_key)
);

CREATE TABLE instance_tag (
    instance_uuid VARCHAR(36) NOT NULL REFERENCES instance (uuid) ON DELETE CASCADE,
    tag VARCHAR(80) NOT NULL,
    PRIMARY KEY (instance_uuid, tag)
);
CREATE INDEX ix_instance_tag_tag ON instance_tag (tag);

CREATE TABLE instance_fault (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    instance_uuid VARCHAR(36) NOT NULL REFERENCES instance (uuid) ON DELETE CASCADE,
    code INTEGER NOT NULL,
    message VARCHAR(255) NOT NULL,
    details TEXT NOT NULL DEFAULT '',
    host VARCHAR(255),
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX ix_instance_fault_instance ON instance_fault (instance_uuid, created_at);

CREATE TABLE instance_action (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    instance_uuid VARCHAR(36) NOT NULL REFERENCES instance (uuid) ON DELETE CASCADE,
    action VARCHAR(255) NOT NULL,
    request_id VARCHAR(255) NOT NULL,
    project_id VARCHAR(255) NOT NULL,
    user_id VARCHAR(255) NOT NULL,
    message VARCHAR(255),
    start_time TIMESTAMP NOT NULL,
    finish_time TIMESTAMP,
    updated_at TIMESTAMP
);
CREATE INDEX ix_instance_action_instance ON instance_action (instance_uuid, start_time);

CREATE TABLE instance_action_event (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    action_id VARCHAR(36) NOT NULL REFERENCES instance_action (id) ON DELETE CASCADE,
    event VARCHAR(255) NOT NULL,
    result VARCHAR(255),
    traceback TEXT,
    host VARCHAR(255),
    details TEXT,
    start_time TIMESTAMP NOT NULL,
    finish_time TIMESTAMP
);
CREATE INDEX ix_instance_action_event_action ON instance_action_event (action_id);

-- Work ---------------------------------------------------------------------------
-- A task is one action on one instance (build, delete, reboot, resize, ...),
-- written with the request that starts it. The conductor advances it step
-- by step; ``lease_until`` marks a step in progress, so a crashed
-- controller's work is found again. At most one open task per instance
-- (state pending, running or waiting), enforced by the unique index.

CREATE TABLE task (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    instance_uuid VARCHAR(36) NOT NULL REFERENCES instance (uuid) ON DELETE CASCADE,
    kind VARCHAR(32) NOT NULL,
    state VARCHAR(16) NOT NULL DEFAULT 'pending',
    step VARCHAR(32) NOT NULL DEFAULT 'start',
    payload TEXT NOT NULL DEFAULT '{}',
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_until TIMESTAMP,
    request_id VARCHAR(255),
    action_id VARCHAR(36),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP
);
CREATE UNIQUE INDEX uq_task_open_per_instance ON task (instance_uuid)
    WHERE state IN ('pending', 'running', 'waiting');
CREATE INDEX ix_task_state ON task (state);

-- The outbox: commands for an agent. Sent while the agent is connected,
-- resent until acknowledged with a result; the agent treats a repeated id
-- as done.
CREATE TABLE agent_command (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    host VARCHAR(255) NOT NULL,
    task_id VARCHAR(36),
    instance_uuid VARCHAR(36),
    op VARCHAR(32) NOT NULL,
    args TEXT NOT NULL DEFAULT '{}',
    state VARCHAR(16) NOT NULL DEFAULT 'pending',
    result TEXT,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP,
    updated_at TIMESTAMP
);
CREATE INDEX ix_agent_command_host_state ON agent_command (host, state, created_at);

CREATE TABLE migration (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    num INTEGER NOT NULL UNIQUE,
    instance_uuid VARCHAR(36) NOT NULL REFERENCES instance (uuid) ON DELETE CASCADE,
    migration_type VARCHAR(32) NOT NULL,
    status VARCHAR(32) NOT NULL,
    source_compute VARCHAR(255),
    dest_compute VARCHAR(255),
    source_node VARCHAR(255),
    dest_node VARCHAR(255),
    old_flavor_id VARCHAR(255),
    new_flavor_id VARCHAR(255),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP
);
CREATE INDEX ix_migration_instance ON migration (instance_uuid);

-- Server groups -------------------------------------------------------------------

CREATE TABLE server_group (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    project_id VARCHAR(255) NOT NULL,
    user_id VARCHAR(255) NOT NULL,
    policy VARCHAR(32) NOT NULL,
    rules TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX ix_server_group_project ON server_group (project_id);

CREATE TABLE server_group_member (
    group_id VARCHAR(36) NOT NULL REFERENCES server_group (id) ON DELETE CASCADE,
    instance_uuid VARCHAR(36) NOT NULL,
    PRIMARY KEY (group_id, instance_uuid)
);
CREATE INDEX ix_server_group_member_instance ON server_group_member (instance_uuid);

-- Quotas -----------------------------------------------------------------------------
-- Limits per project (and per class; 'default' holds the defaults); -1 is
-- unlimited. quota_lock has one row per project: a create touches it first,
-- so concurrent creates in one project serialise on PostgreSQL as they do
-- on SQLite's single writer, and counting usage then checking never overshoots.

CREATE TABLE quota (
    project_id VARCHAR(255) NOT NULL,
    resource VARCHAR(255) NOT NULL,
    hard_limit INTEGER NOT NULL,
    PRIMARY KEY (project_id, resource)
);

CREATE TABLE quota_class (
    class_name VARCHAR(255) NOT NULL,
    resource VARCHAR(255) NOT NULL,
    hard_limit INTEGER NOT NULL,
    PRIMARY KEY (class_name, resource)
);

CREATE TABLE quota_lock (
    project_id VARCHAR(255) NOT NULL PRIMARY KEY,
    touched_at TIMESTAMP NOT NULL
);

-- Aggregates ---------------------------------------------------------------------------
-- ``num`` is the integer id the API shows; ``id`` (a UUID) is also the
-- placement aggregate the hosts' providers are members of.

CREATE TABLE aggregate (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    num INTEGER NOT NULL UNIQUE,
    name VARCHAR(255) NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP
);

CREATE TABLE aggregate_host (
    aggregate_id VARCHAR(36) NOT NULL REFERENCES aggregate (id) ON DELETE CASCADE,
    host VARCHAR(255) NOT NULL,
    PRIMARY KEY (aggregate_id, host)
);

CREATE TABLE aggregate_metadata (
    aggregate_id VARCHAR(36) NOT NULL REFERENCES aggregate (id) ON DELETE CASCADE,
    meta_key VARCHAR(255) NOT NULL,
    meta_value VARCHAR(255) NOT NULL,
    PRIMARY KEY (aggregate_id, meta_key)
);

-- Images (Glance v2) ---------------------------------------------------------------

-- An image. ``status`` follows Glance: queued, saving, active, killed,
-- uploading, importing, deactivated (a deleted image's row is removed).
CREATE TABLE image (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    name VARCHAR(255),
    status VARCHAR(30) NOT NULL,
    visibility VARCHAR(16) NOT NULL,
    protected BOOLEAN NOT NULL DEFAULT FALSE,
    os_hidden BOOLEAN NOT NULL DEFAULT FALSE,
    owner VARCHAR(255),
    disk_format VARCHAR(20),
    container_format VARCHAR(20),
    size BIGINT,
    virtual_size BIGINT,
    checksum VARCHAR(32),
    os_hash_algo VARCHAR(64),
    os_hash_value VARCHAR(128),
    min_disk INTEGER NOT NULL DEFAULT 0,
    min_ram INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX ix_image_owner ON image (owner);
CREATE INDEX ix_image_created ON image (created_at, id);

-- Additional properties (kernel_id, ramdisk_id, hw_*, os_*...): strings.
CREATE TABLE image_property (
    image_id VARCHAR(36) NOT NULL REFERENCES image (id) ON DELETE CASCADE,
    name VARCHAR(255) NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (image_id, name)
);

CREATE TABLE image_tag (
    image_id VARCHAR(36) NOT NULL REFERENCES image (id) ON DELETE CASCADE,
    value VARCHAR(255) NOT NULL,
    PRIMARY KEY (image_id, value)
);
CREATE INDEX ix_image_tag_value ON image_tag (value);

-- A project an image is shared with, and whether it accepted the share.
CREATE TABLE image_member (
    image_id VARCHAR(36) NOT NULL REFERENCES image (id) ON DELETE CASCADE,
    member VARCHAR(255) NOT NULL,
    status VARCHAR(20) NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (image_id, member)
);
CREATE INDEX ix_image_member_member ON image_member (member, status);

-- Networks (migration 005) ----------------------------------------------------

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

-- Remote consoles (migration 006) ----------------------------------------------

CREATE TABLE console_auth_token (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    token_hash VARCHAR(64) NOT NULL UNIQUE,
    instance_uuid VARCHAR(36) NOT NULL,
    -- novnc or serial
    console_type VARCHAR(32) NOT NULL,
    -- the agent (compute host) whose guest it is, and where its console listens
    compute_host VARCHAR(255) NOT NULL,
    host VARCHAR(255) NOT NULL,
    port INTEGER NOT NULL,
    internal_access_path VARCHAR(255),
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX ix_console_auth_token_instance ON console_auth_token (instance_uuid);
CREATE INDEX ix_console_auth_token_expires ON console_auth_token (expires_at);
