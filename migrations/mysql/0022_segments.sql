-- Uploads as byte segments: each received send covers bytes
-- start_at..start_at+len and is staged under object_key; a chunk of the
-- fixed-size protocol is one kind of segment. Segments never overlap, so an
-- upload is whole when the bytes it received (`received`, their sum) are
-- its size. A size of -1 is not known yet (an upload that appends until
-- it ends). The running hash and the leases count bytes now.
CREATE TABLE upload_segments (
    upload_id  CHAR(32)     NOT NULL,
    start_at   BIGINT       NOT NULL,
    len        BIGINT       NOT NULL,
    object_key VARCHAR(255) NOT NULL,
    PRIMARY KEY (upload_id, start_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
INSERT INTO upload_segments (upload_id, start_at, len, object_key)
    SELECT c.upload_id, c.chkidx * s.chunksize, LEAST(s.chunksize, s.filesize - c.chkidx * s.chunksize), c.object_key
    FROM upload_chunks c JOIN upload_sessions s ON s.id = c.upload_id;
DROP TABLE upload_chunks;
ALTER TABLE upload_sessions ADD COLUMN received BIGINT NOT NULL DEFAULT 0;
UPDATE upload_sessions SET received =
    (SELECT COALESCE(SUM(len), 0) FROM upload_segments WHERE upload_segments.upload_id = upload_sessions.id);
UPDATE upload_sessions SET hash_next = LEAST(hash_next * chunksize, filesize);
DELETE FROM upload_leases;
ALTER TABLE upload_leases MODIFY name VARCHAR(64) NOT NULL;
