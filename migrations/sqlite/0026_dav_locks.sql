-- WebDAV locks of the embedded deployment (the fleet keeps them in Redis):
-- per user and path, lapsing at expires_at (at most an hour after they were
-- taken or refreshed). Transient: not part of the metadata backup.
CREATE TABLE dav_locks (
    token      TEXT    NOT NULL PRIMARY KEY,
    user_id    INTEGER NOT NULL,
    path       TEXT    NOT NULL,
    infinite   INTEGER NOT NULL,
    exclusive  INTEGER NOT NULL,
    owner      TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX dav_locks_user ON dav_locks (user_id, expires_at);
