-- Each file entry gets the file's own modification time (Unix seconds), as
-- the client declared it at upload (`mtime`), distinct from when it was
-- uploaded (`created_at`). Entries made before this take their upload time.
-- A folder listing sorted by time sorts files by it, so its index moves
-- from `created_at` to `mtime`. An unfinished upload keeps the declared
-- time until its merge records the entry (NULL: none declared, the upload
-- time is used).
ALTER TABLE user_files ADD COLUMN mtime INTEGER NOT NULL DEFAULT 0;
UPDATE user_files SET mtime = created_at;
DROP INDEX user_files_children_time;
CREATE INDEX user_files_children_mtime ON user_files (user_id, folder, mtime);
ALTER TABLE upload_sessions ADD COLUMN mtime INTEGER;
