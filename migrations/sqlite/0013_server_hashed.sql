-- An upload whose content nobody declared (WebDAV, tus): the server's own
-- running hash is its identity, and it is never instant.
ALTER TABLE upload_sessions ADD COLUMN server_hashed INTEGER NOT NULL DEFAULT 0;
