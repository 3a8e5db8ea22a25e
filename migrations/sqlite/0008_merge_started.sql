-- When an upload's current merge started, so status can say how long it
-- has been merging (updated_at is the merge's heartbeat).
ALTER TABLE upload_sessions ADD COLUMN merge_started_at INTEGER NULL;
