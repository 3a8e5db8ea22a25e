-- Accounts an operator manages: a per-user storage quota (NULL: the
-- installation's default), a switch to disable a user, and one-time invite
-- codes (stored as their SHA-256, so a leaked table grants nothing).
ALTER TABLE users ADD COLUMN quota_bytes INTEGER;
ALTER TABLE users ADD COLUMN quota_files INTEGER;
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;

CREATE TABLE invites (
    code_hash  TEXT    NOT NULL PRIMARY KEY,
    created_at INTEGER NOT NULL,
    used_by    INTEGER,
    used_at    INTEGER
);
