-- pan's metadata on SQLite (embedded deployment). Times are Unix seconds.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);

-- Signin tokens, stored as the SHA-256 of the token so a leaked table grants nothing.
CREATE TABLE tokens (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX tokens_expires_at ON tokens (expires_at);

-- Stored content, once per (SHA-1, size); refcount = user_files rows naming it.
CREATE TABLE files (
    filehash        TEXT    NOT NULL,
    filesize        INTEGER NOT NULL,
    storage_key     TEXT    NOT NULL,
    refcount        INTEGER NOT NULL,
    backup_state    TEXT    NOT NULL DEFAULT 'none',
    backup_attempts INTEGER NOT NULL DEFAULT 0,
    backup_key      TEXT,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (filehash, filesize)
);

-- A user's own entry (name, times) for stored content.
CREATE TABLE user_files (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    filehash   TEXT    NOT NULL,
    filesize   INTEGER NOT NULL,
    filename   TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (user_id, filehash)
);
CREATE INDEX user_files_newest ON user_files (user_id, created_at);
CREATE INDEX user_files_content ON user_files (filehash, filesize);

-- Upload sessions and their chunks, when chunk state lives in SQL (no Redis).
CREATE TABLE upload_sessions (
    id         TEXT    NOT NULL PRIMARY KEY,
    owner_id   INTEGER NOT NULL REFERENCES users (id),
    filename   TEXT    NOT NULL,
    filehash   TEXT    NOT NULL,
    filesize   INTEGER NOT NULL,
    chunksize  INTEGER NOT NULL,
    chunkcount INTEGER NOT NULL,
    state      TEXT    NOT NULL,
    reason     TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX upload_sessions_resume ON upload_sessions (owner_id, filehash, filesize, state);
CREATE INDEX upload_sessions_idle ON upload_sessions (updated_at);

-- Which staged object holds each received chunk (the last one sent wins).
CREATE TABLE upload_chunks (
    upload_id  TEXT    NOT NULL,
    chkidx     INTEGER NOT NULL,
    object_key TEXT    NOT NULL,
    PRIMARY KEY (upload_id, chkidx)
);
