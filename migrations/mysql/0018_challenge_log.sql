-- Proof-of-possession challenges issued on stored content, whoever asked:
-- a content whose challenges keep failing (3 wrong or unanswered in a day)
-- offers no cross-user instant upload until they age out.
CREATE TABLE challenge_log (
    upload_id CHAR(32) NOT NULL PRIMARY KEY,
    file_id   BIGINT   NOT NULL,
    issued_at BIGINT   NOT NULL,
    failed    SMALLINT NOT NULL DEFAULT 0,
    KEY challenge_log_file (file_id, issued_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
