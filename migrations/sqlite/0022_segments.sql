-- Uploads as byte segments: each received send covers bytes
-- start_at..start_at+len and is staged under object_key; a chunk of the
-- fixed-size protocol is one kind of segment. Segments never overlap, so an
-- upload is whole when the bytes it received (`received`, their sum) are
-- its size. A size of -1 is not known yet (an upload that appends until
-- it ends). The running hash and the leases count bytes now.
CREATE TABLE upload_segments (
    upload_id  TEXT    NOT NULL,
    start_at   INTEGER NOT NULL,
    len        INTEGER NOT NULL,
    object_key TEXT    NOT NULL,
    PRIMARY KEY (upload_id, start_at)
);
INSERT INTO upload_segments (upload_id, start_at, len, object_key)
    SELECT c.upload_id, c.chkidx * s.chunksize, MIN(s.chunksize, s.filesize - c.chkidx * s.chunksize), c.object_key
    FROM upload_chunks c JOIN upload_sessions s ON s.id = c.upload_id;
DROP TABLE upload_chunks;
ALTER TABLE upload_sessions ADD COLUMN received INTEGER NOT NULL DEFAULT 0;
UPDATE upload_sessions SET received =
    (SELECT COALESCE(SUM(len), 0) FROM upload_segments WHERE upload_segments.upload_id = upload_sessions.id);
UPDATE upload_sessions SET hash_next = MIN(hash_next * chunksize, filesize);
DELETE FROM upload_leases;
