-- Content identity becomes (SHA-256, size): same-size SHA-1 collisions are
-- public, so SHA-1 (`filehash`) stays the protocol's declared checksum only.
-- Each stored content gets a numeric id; each user entry an opaque entry id
-- and a reference to its content by that id. Content stored before this
-- migration has no SHA-256 (NULL) and is never matched for dedup.
-- SQLite cannot drop a primary key or a UNIQUE constraint in place, so both
-- tables are rebuilt.

CREATE TABLE files_v3 (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    filehash        TEXT    NOT NULL,
    sha256          TEXT,
    filesize        INTEGER NOT NULL,
    storage_key     TEXT    NOT NULL,
    refcount        INTEGER NOT NULL,
    backup_state    TEXT    NOT NULL DEFAULT 'none',
    backup_attempts INTEGER NOT NULL DEFAULT 0,
    backup_key      TEXT,
    backup_at       INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL
);
INSERT INTO files_v3 (filehash, sha256, filesize, storage_key, refcount, backup_state, backup_attempts, backup_key,
                      backup_at, created_at)
SELECT filehash, NULL, filesize, storage_key, refcount, backup_state, backup_attempts, backup_key, backup_at, created_at
FROM files;

CREATE TABLE user_files_v3 (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id   TEXT    NOT NULL UNIQUE,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    file_id    INTEGER NOT NULL REFERENCES files_v3 (id),
    filename   TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (user_id, file_id)
);
INSERT INTO user_files_v3 (id, entry_id, user_id, file_id, filename, created_at, updated_at)
SELECT uf.id, lower(hex(randomblob(16))), uf.user_id, f.id, uf.filename, uf.created_at, uf.updated_at
FROM user_files uf JOIN files_v3 f ON f.filehash = uf.filehash AND f.filesize = uf.filesize;

DROP TABLE user_files;
DROP TABLE files;
ALTER TABLE files_v3 RENAME TO files;
ALTER TABLE user_files_v3 RENAME TO user_files;

CREATE UNIQUE INDEX files_identity ON files (sha256, filesize);
CREATE INDEX files_sha1 ON files (filehash, filesize);
CREATE INDEX files_backup_due ON files (backup_state, backup_at);
CREATE INDEX files_storage_key ON files (storage_key);
CREATE INDEX user_files_newest ON user_files (user_id, created_at);
CREATE INDEX user_files_file ON user_files (file_id);

-- Uploads: the SHA-256 the client declared (optional), and the entry a
-- finished upload produced.
ALTER TABLE upload_sessions ADD COLUMN sha256 TEXT;
ALTER TABLE upload_sessions ADD COLUMN entry_id TEXT;

-- Open proof-of-possession challenges: the digest a client holding the
-- content would send, for one upload, single use, expiring within a minute.
CREATE TABLE upload_challenges (
    upload_id  TEXT    NOT NULL PRIMARY KEY,
    file_id    INTEGER NOT NULL,
    expected   TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
