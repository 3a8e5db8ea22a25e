-- Names compare within a folder in Unicode NFC (macOS sends NFD: `café`
-- from a Mac and from Linux are one name), while each is stored as given.
-- The key is filled by pan at start-up for rows that lack it (SQL cannot
-- normalise), then kept with every name it writes. (255 characters: NFC of
-- a name of at most 255 bytes never has more.)
ALTER TABLE folders ADD COLUMN name_key VARCHAR(255) NULL /*M! COLLATE utf8mb4_nopad_bin */,
    ADD KEY folders_children_key (user_id, parent, name_key);
ALTER TABLE user_files ADD COLUMN filename_key VARCHAR(255) NULL /*M! COLLATE utf8mb4_nopad_bin */,
    ADD KEY user_files_children_key (user_id, folder, filename_key);
