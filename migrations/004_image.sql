-- Migration 004: the Image (Glance v2) tables: images with their additional
-- properties, tags and members. Image data lives in the file store under the
-- data directory (DATA_DIR/images/<id>), never in the database.

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

UPDATE schema_version SET version = 4;
