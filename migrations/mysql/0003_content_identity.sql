-- Content identity becomes (SHA-256, size): same-size SHA-1 collisions are
-- public, so SHA-1 (`filehash`) stays the protocol's declared checksum only.
-- Each stored content gets a numeric id; each user entry an opaque entry id
-- and a reference to its content by that id. Content stored before this
-- migration has no SHA-256 (NULL) and is never matched for dedup (a unique
-- index lets NULLs repeat).

ALTER TABLE files
    DROP PRIMARY KEY,
    ADD COLUMN id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY FIRST,
    ADD COLUMN sha256 CHAR(64) NULL AFTER filehash,
    ADD UNIQUE KEY files_identity (sha256, filesize),
    ADD KEY files_sha1 (filehash, filesize),
    ADD KEY files_storage_key (storage_key);

ALTER TABLE user_files
    ADD COLUMN entry_id CHAR(32) NULL AFTER id,
    ADD COLUMN file_id BIGINT NULL AFTER user_id;
-- Entry ids: 128 bits from MD5 over a UUID, a random number and the row id
-- (RANDOM_BYTES needs MariaDB 10.10; this works on every supported version).
UPDATE user_files uf JOIN files f ON f.filehash = uf.filehash AND f.filesize = uf.filesize
SET uf.file_id = f.id, uf.entry_id = MD5(CONCAT(UUID(), RAND(), uf.id));
-- Entries whose content row was missing pointed at nothing already; the
-- SQLite migration's inner join drops them the same way.
DELETE FROM user_files WHERE file_id IS NULL;
ALTER TABLE user_files
    DROP INDEX user_files_entry,
    DROP INDEX user_files_content,
    DROP COLUMN filehash,
    DROP COLUMN filesize,
    MODIFY entry_id CHAR(32) NOT NULL,
    MODIFY file_id BIGINT NOT NULL,
    ADD UNIQUE KEY user_files_entry_id (entry_id),
    ADD UNIQUE KEY user_files_content (user_id, file_id),
    ADD KEY user_files_file (file_id);

-- Uploads: the SHA-256 the client declared (optional), and the entry a
-- finished upload produced.
ALTER TABLE upload_sessions
    ADD COLUMN sha256 CHAR(64) NULL,
    ADD COLUMN entry_id CHAR(32) NULL;

-- Open proof-of-possession challenges: the digest a client holding the
-- content would send, for one upload, single use, expiring within a minute.
CREATE TABLE upload_challenges (
    upload_id  CHAR(32) NOT NULL PRIMARY KEY,
    file_id    BIGINT   NOT NULL,
    expected   CHAR(64) NOT NULL,
    expires_at BIGINT   NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
