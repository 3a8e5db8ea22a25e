-- Versions: a file's earlier contents. Replacing a file's content (an upload,
-- a move or a copy onto its name with on_conflict=replace, a restore) keeps
-- the content it had as a version: a row naming that content (one reference
-- in files.refcount, as an entry holds), its size and modification time,
-- when it was replaced and by whom. Versions follow their entry into the
-- trash and back, and go when it is purged.
CREATE TABLE file_versions (
    version_id  CHAR(32)     NOT NULL PRIMARY KEY,
    entry_id    CHAR(32)     NOT NULL,
    user_id     BIGINT       NOT NULL,
    file_id     BIGINT       NOT NULL,
    filesize    BIGINT       NOT NULL,
    mtime       BIGINT       NOT NULL,
    replaced_at BIGINT       NOT NULL,
    author_kind VARCHAR(16)  NOT NULL,
    author_name VARCHAR(255) NOT NULL,
    label       VARCHAR(255) NULL,
    pinned      SMALLINT     NOT NULL DEFAULT 0,
    KEY file_versions_entry (entry_id, replaced_at),
    KEY file_versions_user (user_id, file_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
-- What an upload does to a file of its name when it finishes (`replace`:
-- the file gets its content, keeping the old as a version; NULL: a free
-- name), the content it expects to replace (SHA-256), and who sends it.
ALTER TABLE upload_sessions ADD COLUMN on_conflict VARCHAR(16) NULL;
ALTER TABLE upload_sessions ADD COLUMN if_match CHAR(64) NULL;
ALTER TABLE upload_sessions ADD COLUMN author_kind VARCHAR(16) NULL;
ALTER TABLE upload_sessions ADD COLUMN author_name VARCHAR(255) NULL;
