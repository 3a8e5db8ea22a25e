-- Share links: a user hands a file or a folder to anyone holding the link.
-- `link_id` is the link's opaque random id (nothing in it names the owner or
-- the content); the password is kept as an Argon2id hash, like account
-- passwords. A link whose target is trashed or gone stops working.
CREATE TABLE shares (
    id            BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    link_id       CHAR(22)     NOT NULL,
    user_id       BIGINT       NOT NULL,
    target_kind   VARCHAR(8)   NOT NULL,
    target_id     CHAR(32)     NOT NULL,
    password_hash VARCHAR(255) NULL,
    expires_at    BIGINT       NULL,
    max_downloads BIGINT       NULL,
    downloads     BIGINT       NOT NULL DEFAULT 0,
    created_at    BIGINT       NOT NULL,
    revoked_at    BIGINT       NULL,
    UNIQUE KEY shares_link_id (link_id),
    KEY shares_user (user_id, created_at),
    CONSTRAINT shares_user_fk FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
