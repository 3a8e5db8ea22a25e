-- Name search: for every folder and file entry, the grams of its lowercased
-- name (at each position, the next three characters, or fewer at the end),
-- so a substring query is answered from this index on both SQLite and
-- MariaDB (a B-tree cannot serve LIKE '%x%'; MariaDB's full-text search has
-- no n-gram parser). pan fills it for existing entries at start-up (see
-- SqlRepo::index_existing_names).
CREATE TABLE name_grams (
    user_id BIGINT      NOT NULL,
    gram    VARCHAR(3)  NOT NULL,
    item    CHAR(32)    NOT NULL,
    PRIMARY KEY (user_id, gram, item),
    KEY name_grams_item (item)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
