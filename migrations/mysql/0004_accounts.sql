-- Accounts an operator manages: a per-user storage quota (NULL: the
-- installation's default), a switch to disable a user, and one-time invite
-- codes (stored as their SHA-256, so a leaked table grants nothing).
ALTER TABLE users
    ADD COLUMN quota_bytes BIGINT NULL,
    ADD COLUMN quota_files BIGINT NULL,
    ADD COLUMN disabled SMALLINT NOT NULL DEFAULT 0;

CREATE TABLE invites (
    code_hash  CHAR(64) NOT NULL PRIMARY KEY,
    created_at BIGINT   NOT NULL,
    used_by    BIGINT   NULL,
    used_at    BIGINT   NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
