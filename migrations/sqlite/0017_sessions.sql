-- Sessions: a signin token may name the device it was given to, so its
-- owner can tell sessions apart (`GET /usr/tokens`).
ALTER TABLE tokens ADD COLUMN device TEXT;
CREATE INDEX tokens_user ON tokens (user_id);

-- App passwords: for clients that send a password on every request
-- (WebDAV, tus). 256 random bits, stored as their SHA-256 (never Argon2:
-- they are checked on every request); shown once, revoked one by one.
CREATE TABLE app_passwords (
    app_id       TEXT    NOT NULL PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id),
    name         TEXT    NOT NULL,
    secret_hash  TEXT    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
);
CREATE INDEX app_passwords_user ON app_passwords (user_id);
