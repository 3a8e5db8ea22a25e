-- Name search: for every folder and file entry, the grams of its lowercased
-- name (at each position, the next three characters, or fewer at the end),
-- so a substring query is answered from this index on both SQLite and
-- MariaDB (a B-tree cannot serve LIKE '%x%'). pan fills it for existing
-- entries at start-up (see SqlRepo::index_existing_names).
CREATE TABLE name_grams (
    user_id INTEGER NOT NULL,
    gram    TEXT    NOT NULL,
    item    TEXT    NOT NULL,
    PRIMARY KEY (user_id, gram, item)
);
CREATE INDEX name_grams_item ON name_grams (item);
