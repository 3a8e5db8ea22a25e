-- Versions: a file's earlier contents. Replacing a file's content (an upload,
-- a move or a copy onto its name with on_conflict=replace, a restore) keeps
-- the content it had as a version: a row naming that content (one reference
-- in files.refcount, as an entry holds), its size and modification time,
-- when it was replaced and by whom. Versions follow their entry into the
-- trash and back, and go when it is purged.
CREATE TABLE file_versions (
    version_id  TEXT    NOT NULL PRIMARY KEY,
    entry_id    TEXT    NOT NULL,
    user_id     INTEGER NOT NULL,
    file_id     INTEGER NOT NULL,
    filesize    INTEGER NOT NULL,
    mtime       INTEGER NOT NULL,
    replaced_at INTEGER NOT NULL,
    author_kind TEXT    NOT NULL,
    author_name TEXT    NOT NULL,
    label       TEXT    NULL,
    pinned      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX file_versions_entry ON file_versions (entry_id, replaced_at);
CREATE INDEX file_versions_user ON file_versions (user_id, file_id);
-- What an upload does to a file of its name when it finishes (`replace`:
-- the file gets its content, keeping the old as a version; NULL: a free
-- name), the content it expects to replace (SHA-256), and who sends it.
ALTER TABLE upload_sessions ADD COLUMN on_conflict TEXT NULL;
ALTER TABLE upload_sessions ADD COLUMN if_match TEXT NULL;
ALTER TABLE upload_sessions ADD COLUMN author_kind TEXT NULL;
ALTER TABLE upload_sessions ADD COLUMN author_name TEXT NULL;
