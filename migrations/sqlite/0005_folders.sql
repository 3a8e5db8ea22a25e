-- Folders and the trash. Each user has a tree rooted at `/`: a folder or a
-- file names its parent folder by the folder's public id (`''` is the root).
-- A deleted item goes to the trash: the item the user deleted gets
-- `trashed_at`, and it and everything below it get `trashed_by` = its id, so
-- "live" is `trashed_by IS NULL` and a restore or purge is one statement per
-- table. The same content may now sit in several folders of one user, so the
-- one-entry-per-content-per-user key goes (SQLite cannot drop it in place:
-- the table is rebuilt). `filesize` is copied onto the entry (content never
-- changes) so a folder sorts by size from an index.
--
-- Names may no longer hold `/` or be `.` or `..`: existing names have each
-- `/` replaced by `_`, and `.`/`..` become `_.`/`_..`.

CREATE TABLE folders (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    folder_id  TEXT    NOT NULL UNIQUE,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    parent     TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    trashed_at INTEGER,
    trashed_by TEXT
);
CREATE INDEX folders_children ON folders (user_id, parent, name);
CREATE INDEX folders_children_time ON folders (user_id, parent, created_at);
CREATE INDEX folders_trash ON folders (user_id, trashed_at);
CREATE INDEX folders_trashed_by ON folders (trashed_by);
CREATE INDEX folders_trashed_at ON folders (trashed_at);

CREATE TABLE user_files_v5 (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id   TEXT    NOT NULL UNIQUE,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    file_id    INTEGER NOT NULL REFERENCES files (id),
    folder     TEXT    NOT NULL DEFAULT '',
    filename   TEXT    NOT NULL,
    filesize   INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    trashed_at INTEGER,
    trashed_by TEXT
);
INSERT INTO user_files_v5 (id, entry_id, user_id, file_id, folder, filename, filesize, created_at, updated_at)
SELECT uf.id, uf.entry_id, uf.user_id, uf.file_id, '',
       CASE REPLACE(uf.filename, '/', '_') WHEN '.' THEN '_.' WHEN '..' THEN '_..' ELSE REPLACE(uf.filename, '/', '_') END,
       f.filesize, uf.created_at, uf.updated_at
FROM user_files uf JOIN files f ON f.id = uf.file_id;
DROP TABLE user_files;
ALTER TABLE user_files_v5 RENAME TO user_files;

CREATE INDEX user_files_newest ON user_files (user_id, created_at);
CREATE INDEX user_files_file ON user_files (file_id);
CREATE INDEX user_files_children ON user_files (user_id, folder, filename);
CREATE INDEX user_files_children_time ON user_files (user_id, folder, created_at);
CREATE INDEX user_files_children_size ON user_files (user_id, folder, filesize);
CREATE INDEX user_files_trash ON user_files (user_id, trashed_at);
CREATE INDEX user_files_trashed_by ON user_files (trashed_by);
CREATE INDEX user_files_trashed_at ON user_files (trashed_at);

-- Unfinished uploads remember their destination folder (NULL: the root) and
-- names there follow the same rule.
ALTER TABLE upload_sessions ADD COLUMN folder TEXT;
UPDATE upload_sessions SET filename = REPLACE(filename, '/', '_');

-- A counter bumped by every change to a user's tree: on MariaDB its row lock
-- makes one user's tree changes take turns (name clashes, moves into
-- oneself); on SQLite the write lock already does.
ALTER TABLE users ADD COLUMN tree_rev INTEGER NOT NULL DEFAULT 0;
