-- Name search: for every folder and file entry, the grams of its lowercased
-- name (at each position, the next three characters, or fewer at the end),
-- so a substring query is answered from this index on both SQLite and
-- MariaDB (a B-tree cannot serve LIKE '%x%'; MariaDB's full-text search has
-- no n-gram parser). pan fills it for existing entries at start-up (see
-- SqlRepo::index_existing_names). Grams are bytes (VARBINARY): a VARCHAR
-- compares with PAD SPACE, so `1) ` and `1)` would be one key.
CREATE TABLE name_grams (
    user_id BIGINT      NOT NULL,
    gram    VARBINARY(12) NOT NULL,
    item    CHAR(32)    NOT NULL,
    PRIMARY KEY (user_id, gram, item),
    KEY name_grams_item (item)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
