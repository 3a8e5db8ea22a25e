-- Names may no longer hold `\` (a path separator to Windows zip extractors)
-- nor invisible marks (U+200E, U+200F, U+061C, U+2028, U+2029, U+FEFF,
-- U+FFFE, U+FFFF): existing names get `_` in their place. A name this makes
-- equal to a sibling's stays (as names from before folders did); tag
-- characters are left to the audit, which lists every name the rule refuses.
UPDATE folders SET name = REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(name,
    char(92), '_'), char(8206), '_'), char(8207), '_'), char(1564), '_'), char(8232), '_'), char(8233), '_'),
    char(65279), '_'), char(65534), '_'), char(65535), '_');
UPDATE user_files SET filename = REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(filename,
    char(92), '_'), char(8206), '_'), char(8207), '_'), char(1564), '_'), char(8232), '_'), char(8233), '_'),
    char(65279), '_'), char(65534), '_'), char(65535), '_');
UPDATE upload_sessions SET filename = REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(filename,
    char(92), '_'), char(8206), '_'), char(8207), '_'), char(1564), '_'), char(8232), '_'), char(8233), '_'),
    char(65279), '_'), char(65534), '_'), char(65535), '_');
