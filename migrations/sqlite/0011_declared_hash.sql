-- An upload may start before its client has hashed the file: `filehash`
-- stays NULL until it is declared, and a client-local `fingerprint` (name,
-- size, mtime… hashed by the client) finds the caller's upload to resume.
-- SQLite cannot drop a NOT NULL in place, so the table is rebuilt.
CREATE TABLE upload_sessions_new (
    id               TEXT    NOT NULL PRIMARY KEY,
    owner_id         INTEGER NOT NULL REFERENCES users (id),
    filename         TEXT    NOT NULL,
    filehash         TEXT,
    filesize         INTEGER NOT NULL,
    chunksize        INTEGER NOT NULL,
    chunkcount       INTEGER NOT NULL,
    state            TEXT    NOT NULL,
    reason           TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    sha256           TEXT,
    entry_id         TEXT,
    folder           TEXT,
    merge_started_at INTEGER NULL,
    reason_code      TEXT,
    hash_next        INTEGER NOT NULL DEFAULT 0,
    hash_state       TEXT,
    fingerprint      TEXT
);
INSERT INTO upload_sessions_new (id, owner_id, filename, filehash, filesize, chunksize, chunkcount, state, reason,
    created_at, updated_at, sha256, entry_id, folder, merge_started_at, reason_code, hash_next, hash_state)
SELECT id, owner_id, filename, filehash, filesize, chunksize, chunkcount, state, reason,
    created_at, updated_at, sha256, entry_id, folder, merge_started_at, reason_code, hash_next, hash_state
FROM upload_sessions;
DROP TABLE upload_sessions;
ALTER TABLE upload_sessions_new RENAME TO upload_sessions;
CREATE INDEX upload_sessions_resume ON upload_sessions (owner_id, filehash, filesize, state);
CREATE INDEX upload_sessions_idle ON upload_sessions (updated_at);
CREATE INDEX upload_sessions_fingerprint ON upload_sessions (owner_id, fingerprint);
