-- A share link's download limit counts bytes: it sends at most
-- max_downloads x size_bytes of content. `size_bytes` is the size of what it
-- shares, taken when it is made (a folder: its files' total); NULL on links
-- made before this migration, filled in when one is next opened (with
-- `bytes_sent` = the downloads counted so far x that size).
ALTER TABLE shares ADD COLUMN size_bytes BIGINT NULL, ADD COLUMN bytes_sent BIGINT NOT NULL DEFAULT 0;
