-- cloudd schema: the one schema, portable between SQLite and PostgreSQL.
-- Statements end with ";" at the end of a line. Later changes arrive as
-- numbered files in migrations/ (NNN_name.sql), each ending with an UPDATE of
-- schema_version; this file always holds the newest schema.

CREATE TABLE schema_version (
    version INTEGER NOT NULL
);
INSERT INTO schema_version (version) VALUES (2);

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
