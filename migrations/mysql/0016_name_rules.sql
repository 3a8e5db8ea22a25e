-- Names may no longer hold `\` (a path separator to Windows zip extractors)
-- nor invisible marks (U+200E, U+200F, U+061C, U+2028, U+2029, U+FEFF,
-- U+FFFE, U+FFFF): existing names get `_` in their place. A name this makes
-- equal to a sibling's stays (as names from before folders did); tag
-- characters are left to the audit, which lists every name the rule refuses.
UPDATE folders SET name = REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(name, CHAR(92 USING utf32), '_'), CHAR(8206 USING utf32), '_'), CHAR(8207 USING utf32), '_'), CHAR(1564 USING utf32), '_'), CHAR(8232 USING utf32), '_'), CHAR(8233 USING utf32), '_'), CHAR(65279 USING utf32), '_'), CHAR(65534 USING utf32), '_'), CHAR(65535 USING utf32), '_');
UPDATE user_files SET filename = REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(filename, CHAR(92 USING utf32), '_'), CHAR(8206 USING utf32), '_'), CHAR(8207 USING utf32), '_'), CHAR(1564 USING utf32), '_'), CHAR(8232 USING utf32), '_'), CHAR(8233 USING utf32), '_'), CHAR(65279 USING utf32), '_'), CHAR(65534 USING utf32), '_'), CHAR(65535 USING utf32), '_');
UPDATE upload_sessions SET filename = REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(filename, CHAR(92 USING utf32), '_'), CHAR(8206 USING utf32), '_'), CHAR(8207 USING utf32), '_'), CHAR(1564 USING utf32), '_'), CHAR(8232 USING utf32), '_'), CHAR(8233 USING utf32), '_'), CHAR(65279 USING utf32), '_'), CHAR(65534 USING utf32), '_'), CHAR(65535 USING utf32), '_');
