-- Migration 006: remote console tokens (Nova's console_auth_tokens).
-- A console URL carries a random token; only its SHA-256 is stored, with what
-- the proxy connects to. The proxy deletes the row when it connects (a token
-- is used once); expired rows are purged whenever a token is issued.

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

UPDATE schema_version SET version = 6;
