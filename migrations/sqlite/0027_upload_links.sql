-- Upload links (a file drop): a user lets anyone holding the link upload
-- into one of their folders, and see nothing. `link_id` is random (22
-- URL-safe characters); the password is an Argon2id hash; `max_bytes`
-- limits what the link takes in all (`bytes_used` counts it, reserved when
-- an upload begins); the uploads count against the owner's quota.
CREATE TABLE upload_links (
    link_id       TEXT    NOT NULL PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id),
    folder_id     TEXT    NOT NULL,
    password_hash TEXT,
    expires_at    INTEGER,
    max_bytes     INTEGER,
    bytes_used    INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER
);
CREATE INDEX upload_links_user ON upload_links (user_id, created_at);
