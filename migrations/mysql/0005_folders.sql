-- Folders and the trash. Each user has a tree rooted at `/`: a folder or a
-- file names its parent folder by the folder's public id (`''` is the root).
-- A deleted item goes to the trash: the item the user deleted gets
-- `trashed_at`, and it and everything below it get `trashed_by` = its id, so
-- "live" is `trashed_by IS NULL` and a restore or purge is one statement per
-- table. The same content may now sit in several folders of one user, so the
-- one-entry-per-content-per-user key goes. `filesize` is copied onto the
-- entry (content never changes) so a folder sorts by size from an index.
--
-- Names may no longer hold `/` or be `.` or `..`: existing names have each
-- `/` replaced by `_`, and `.`/`..` become `_.`/`_..`. Names compare byte
-- for byte, trailing spaces included (MariaDB's utf8mb4_bin pads with
-- spaces, so `a` and `a ` would clash there and not on SQLite): names use
-- utf8mb4_nopad_bin on MariaDB.

CREATE TABLE folders (
    id         BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    folder_id  CHAR(32)     NOT NULL,
    user_id    BIGINT       NOT NULL,
    parent     CHAR(32)     NOT NULL,
    name       VARCHAR(255) NOT NULL /*M! COLLATE utf8mb4_nopad_bin */,
    created_at BIGINT       NOT NULL,
    updated_at BIGINT       NOT NULL,
    trashed_at BIGINT       NULL,
    trashed_by CHAR(32)     NULL,
    UNIQUE KEY folders_folder_id (folder_id),
    KEY folders_children (user_id, parent, name),
    KEY folders_children_time (user_id, parent, created_at),
    KEY folders_trash (user_id, trashed_at),
    KEY folders_trashed_by (trashed_by),
    KEY folders_trashed_at (trashed_at),
    CONSTRAINT folders_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

ALTER TABLE user_files
    ADD COLUMN folder CHAR(32) NOT NULL DEFAULT '' AFTER file_id,
    ADD COLUMN filesize BIGINT NOT NULL DEFAULT 0 AFTER filename,
    ADD COLUMN trashed_at BIGINT NULL,
    ADD COLUMN trashed_by CHAR(32) NULL;
UPDATE user_files uf JOIN files f ON f.id = uf.file_id SET uf.filesize = f.filesize;
UPDATE user_files SET filename = REPLACE(filename, '/', '_');
UPDATE user_files SET filename = CONCAT('_', filename) WHERE filename IN ('.', '..');
ALTER TABLE user_files
    MODIFY filename VARCHAR(255) NOT NULL /*M! COLLATE utf8mb4_nopad_bin */,
    DROP INDEX user_files_content,
    ADD KEY user_files_children (user_id, folder, filename),
    ADD KEY user_files_children_time (user_id, folder, created_at),
    ADD KEY user_files_children_size (user_id, folder, filesize),
    ADD KEY user_files_trash (user_id, trashed_at),
    ADD KEY user_files_trashed_by (trashed_by),
    ADD KEY user_files_trashed_at (trashed_at);

-- Unfinished uploads remember their destination folder (NULL: the root) and
-- names there follow the same rule.
ALTER TABLE upload_sessions ADD COLUMN folder CHAR(32) NULL;
UPDATE upload_sessions SET filename = REPLACE(filename, '/', '_');

-- A counter bumped by every change to a user's tree: its row lock makes one
-- user's tree changes take turns (name clashes, moves into oneself).
ALTER TABLE users ADD COLUMN tree_rev BIGINT NOT NULL DEFAULT 0;
