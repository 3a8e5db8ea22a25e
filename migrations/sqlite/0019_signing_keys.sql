-- Signing keys, one set per purpose ('url': signed download URLs, 'share':
-- share access tokens), shared by every api process. The newest key of a
-- purpose signs; each artefact names its key (`kid`). A key is retired when
-- a newer one is made (every PAN_KEY_DAYS, or `api admin rotate-keys`) and
-- dropped once the longest lifetime it can have signed has passed.
CREATE TABLE signing_keys (
    purpose    TEXT    NOT NULL,
    kid        TEXT    NOT NULL,
    secret     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (purpose, kid)
);

-- The one key of older versions signed links and share tokens without a key
-- id: it becomes key "0" of both purposes, made "at 0" so that a fresh key
-- replaces it at once; artefacts without a kid are checked with it until it
-- is dropped. (It stays in `secrets`, where it seeds the challenge ranges.)
INSERT INTO signing_keys (purpose, kid, secret, created_at)
    SELECT 'url', '0', value, 0 FROM secrets WHERE name = 'download_link_key';
INSERT INTO signing_keys (purpose, kid, secret, created_at)
    SELECT 'share', '0', value, 0 FROM secrets WHERE name = 'download_link_key';
