-- The upload link an upload came through (NULL: the owner's own): only
-- that link's holders may touch it, and its bytes go back to that link
-- when it ends without a file (aborted, failed or expired).
ALTER TABLE upload_sessions ADD COLUMN via_link TEXT;
