-- The running hash of an upload (chunks 0..hash_next-1 hashed, the hasher's
-- saved state in hex), and the leases that let one process at a time write
-- a chunk or advance the hash (expires_at in milliseconds).
ALTER TABLE upload_sessions ADD COLUMN hash_next BIGINT NOT NULL DEFAULT 0;
ALTER TABLE upload_sessions ADD COLUMN hash_state VARCHAR(1024) NULL;
CREATE TABLE upload_leases (
    upload_id  CHAR(32)    NOT NULL,
    name       VARCHAR(32) NOT NULL,
    holder     VARCHAR(64) NOT NULL,
    expires_at BIGINT      NOT NULL,
    PRIMARY KEY (upload_id, name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
