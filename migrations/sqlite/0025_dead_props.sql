-- WebDAV dead properties (PROPPATCH), per user and entry: a file's or
-- folder's id, '' for the user's root. They follow the entry's id, so a
-- MOVE keeps them; at most 100 and 64 KiB per entry (checked by the
-- writer, in the transaction that holds the user's turn).
CREATE TABLE dead_props (
    user_id  INTEGER NOT NULL,
    entry_id TEXT    NOT NULL,
    ns       TEXT    NOT NULL,
    name     TEXT    NOT NULL,
    value    TEXT    NOT NULL,
    PRIMARY KEY (user_id, entry_id, ns, name)
);
