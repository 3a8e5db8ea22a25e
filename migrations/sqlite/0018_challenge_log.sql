-- Proof-of-possession challenges issued on stored content, whoever asked:
-- a content whose challenges keep failing (3 wrong or unanswered in a day)
-- offers no cross-user instant upload until they age out.
CREATE TABLE challenge_log (
    upload_id TEXT    NOT NULL PRIMARY KEY,
    file_id   INTEGER NOT NULL,
    issued_at INTEGER NOT NULL,
    failed    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX challenge_log_file ON challenge_log (file_id, issued_at);
