-- Migration 002: the Placement tables.

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

UPDATE schema_version SET version = 2;
