-- An upload may start before its client has hashed the file: `filehash`
-- stays NULL until it is declared, and a client-local `fingerprint` (name,
-- size, mtime… hashed by the client) finds the caller's upload to resume.
ALTER TABLE upload_sessions
    MODIFY filehash CHAR(40) NULL,
    ADD COLUMN fingerprint VARCHAR(128) NULL,
    ADD KEY upload_sessions_fingerprint (owner_id, fingerprint);
