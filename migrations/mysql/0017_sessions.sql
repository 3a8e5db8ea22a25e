-- Sessions: a signin token may name the device it was given to, so its
-- owner can tell sessions apart (`GET /usr/tokens`).
ALTER TABLE tokens ADD COLUMN device VARCHAR(255) NULL, ADD KEY tokens_user_id (user_id);

-- App passwords: for clients that send a password on every request
-- (WebDAV, tus). 256 random bits, stored as their SHA-256 (never Argon2:
-- they are checked on every request); shown once, revoked one by one.
CREATE TABLE app_passwords (
    app_id       CHAR(32)     NOT NULL PRIMARY KEY,
    user_id      BIGINT       NOT NULL,
    name         VARCHAR(255) NOT NULL,
    secret_hash  CHAR(64)     NOT NULL,
    created_at   BIGINT       NOT NULL,
    last_used_at BIGINT       NULL,
    UNIQUE KEY app_passwords_secret (secret_hash),
    KEY app_passwords_user (user_id),
    CONSTRAINT app_passwords_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
