-- Share links: a user hands a file or a folder to anyone holding the link.
-- `link_id` is the link's opaque random id (nothing in it names the owner or
-- the content); the password is kept as an Argon2id hash, like account
-- passwords. A link whose target is trashed or gone stops working.
CREATE TABLE shares (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    link_id       TEXT    NOT NULL UNIQUE,
    user_id       INTEGER NOT NULL REFERENCES users (id),
    target_kind   TEXT    NOT NULL,
    target_id     TEXT    NOT NULL,
    password_hash TEXT,
    expires_at    INTEGER,
    max_downloads INTEGER,
    downloads     INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER
);
CREATE INDEX shares_user ON shares (user_id, created_at);
