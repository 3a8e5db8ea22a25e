-- Why a merge failed, as a stable code beside the message (CHUNKS_MISSING,
-- SHA1_MISMATCH, SHA256_MISMATCH, ASSEMBLY_FAILED, STORE_FAILED).
ALTER TABLE upload_sessions ADD COLUMN reason_code TEXT;
