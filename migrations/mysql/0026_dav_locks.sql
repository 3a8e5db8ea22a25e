-- WebDAV locks of a deployment without Redis (the fleet keeps them in
-- Redis): per user and path, lapsing at expires_at (at most an hour after
-- they were taken or refreshed). Transient: not part of the metadata backup.
CREATE TABLE dav_locks (
    token      VARCHAR(64) NOT NULL PRIMARY KEY,
    user_id    BIGINT      NOT NULL,
    path       TEXT        NOT NULL,
    infinite   INT         NOT NULL,
    exclusive  INT         NOT NULL,
    owner      MEDIUMTEXT  NOT NULL,
    expires_at BIGINT      NOT NULL,
    INDEX dav_locks_user (user_id, expires_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
