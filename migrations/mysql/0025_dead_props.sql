-- WebDAV dead properties (PROPPATCH), per user and entry: a file's or
-- folder's id, '' for the user's root. They follow the entry's id, so a
-- MOVE keeps them; at most 100 and 64 KiB per entry (checked by the
-- writer, in the transaction that holds the user's turn).
CREATE TABLE dead_props (
    user_id  BIGINT       NOT NULL,
    entry_id VARCHAR(32)  NOT NULL,
    ns       VARCHAR(255) NOT NULL,
    name     VARCHAR(255) NOT NULL,
    value    MEDIUMTEXT   NOT NULL,
    PRIMARY KEY (user_id, entry_id, ns, name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
