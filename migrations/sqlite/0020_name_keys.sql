-- Names compare within a folder in Unicode NFC (macOS sends NFD: `café`
-- from a Mac and from Linux are one name), while each is stored as given.
-- The key is filled by pan at start-up for rows that lack it (SQL cannot
-- normalise), then kept with every name it writes.
ALTER TABLE folders ADD COLUMN name_key TEXT;
ALTER TABLE user_files ADD COLUMN filename_key TEXT;
CREATE INDEX folders_children_key ON folders (user_id, parent, name_key);
CREATE INDEX user_files_children_key ON user_files (user_id, folder, filename_key);
