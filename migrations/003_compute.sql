-- Migration 003: the Compute (Nova) tables: hosts and agents, flavors,
-- keypairs, instances with their tasks and the agent outbox, server groups,
-- quotas, aggregates and migrations.

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

UPDATE schema_version SET version = 3;
