-- The running hash of an upload (chunks 0..hash_next-1 hashed, the hasher's
-- saved state in hex), and the leases that let one process at a time write
-- a chunk or advance the hash.
ALTER TABLE upload_sessions ADD COLUMN hash_next INTEGER NOT NULL DEFAULT 0;
ALTER TABLE upload_sessions ADD COLUMN hash_state TEXT;
CREATE TABLE upload_leases (
    upload_id  TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    holder     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (upload_id, name)
);
