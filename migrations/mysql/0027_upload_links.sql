-- Upload links (a file drop): a user lets anyone holding the link upload
-- into one of their folders, and see nothing. `link_id` is random (22
-- URL-safe characters); the password is an Argon2id hash; `max_bytes`
-- limits what the link takes in all (`bytes_used` counts it, reserved when
-- an upload begins); the uploads count against the owner's quota.
CREATE TABLE upload_links (
    link_id       CHAR(22)     NOT NULL PRIMARY KEY,
    user_id       BIGINT       NOT NULL,
    folder_id     VARCHAR(32)  NOT NULL,
    password_hash VARCHAR(255) NULL,
    expires_at    BIGINT       NULL,
    max_bytes     BIGINT       NULL,
    bytes_used    BIGINT       NOT NULL DEFAULT 0,
    created_at    BIGINT       NOT NULL,
    revoked_at    BIGINT       NULL,
    KEY upload_links_user (user_id, created_at),
    CONSTRAINT upload_links_user_fk FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
