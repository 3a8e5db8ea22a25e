-- When the last backup attempt of a file was made (Unix seconds), for retries.
ALTER TABLE files ADD COLUMN backup_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX files_backup_due ON files (backup_state, backup_at);

-- Server-made secrets shared by every api process (e.g. the key that signs
-- download URLs), created on first use.
CREATE TABLE secrets (
    name  VARCHAR(64)  NOT NULL PRIMARY KEY,
    value VARCHAR(255) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
