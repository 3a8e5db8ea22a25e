-- pan's metadata on MySQL / MariaDB (fleet deployment). Times are Unix seconds.
-- Names and keys compare byte for byte (utf8mb4_bin), as on SQLite.

CREATE TABLE users (
    id            BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    username      VARCHAR(64)  NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    created_at    BIGINT       NOT NULL,
    UNIQUE KEY users_username (username)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Signin tokens, stored as the SHA-256 of the token so a leaked table grants nothing.
CREATE TABLE tokens (
    token_hash CHAR(64) NOT NULL PRIMARY KEY,
    user_id    BIGINT   NOT NULL,
    created_at BIGINT   NOT NULL,
    expires_at BIGINT   NOT NULL,
    KEY tokens_expires_at (expires_at),
    CONSTRAINT tokens_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Stored content, once per (SHA-1, size); refcount = user_files rows naming it.
CREATE TABLE files (
    filehash        CHAR(40)     NOT NULL,
    filesize        BIGINT       NOT NULL,
    storage_key     VARCHAR(255) NOT NULL,
    refcount        BIGINT       NOT NULL,
    backup_state    VARCHAR(16)  NOT NULL DEFAULT 'none',
    backup_attempts INT          NOT NULL DEFAULT 0,
    backup_key      VARCHAR(255) NULL,
    created_at      BIGINT       NOT NULL,
    PRIMARY KEY (filehash, filesize)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- A user's own entry (name, times) for stored content.
CREATE TABLE user_files (
    id         BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id    BIGINT       NOT NULL,
    filehash   CHAR(40)     NOT NULL,
    filesize   BIGINT       NOT NULL,
    filename   VARCHAR(255) NOT NULL,
    created_at BIGINT       NOT NULL,
    updated_at BIGINT       NOT NULL,
    UNIQUE KEY user_files_entry (user_id, filehash),
    KEY user_files_newest (user_id, created_at),
    KEY user_files_content (filehash, filesize),
    CONSTRAINT user_files_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Upload sessions and their chunks, when chunk state lives in SQL (no Redis).
CREATE TABLE upload_sessions (
    id         CHAR(32)      NOT NULL PRIMARY KEY,
    owner_id   BIGINT        NOT NULL,
    filename   VARCHAR(255)  NOT NULL,
    filehash   CHAR(40)      NOT NULL,
    filesize   BIGINT        NOT NULL,
    chunksize  BIGINT        NOT NULL,
    chunkcount BIGINT        NOT NULL,
    state      VARCHAR(16)   NOT NULL,
    reason     VARCHAR(1024) NULL,
    created_at BIGINT        NOT NULL,
    updated_at BIGINT        NOT NULL,
    KEY upload_sessions_resume (owner_id, filehash, filesize, state),
    KEY upload_sessions_idle (updated_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Which staged object holds each received chunk (the last one sent wins).
CREATE TABLE upload_chunks (
    upload_id  CHAR(32)     NOT NULL,
    chkidx     BIGINT       NOT NULL,
    object_key VARCHAR(255) NOT NULL,
    PRIMARY KEY (upload_id, chkidx)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
