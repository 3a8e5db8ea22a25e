-- The quota ledger: room reserved in a user's quota for content on its way
-- in (an upload's declared size, a single upload's body), held until the
-- content is committed (in the same transaction as its entry) or released.
-- Reservations are made in the transaction that takes the user's turn, so
-- concurrent ones, from any number of processes, never overshoot.
CREATE TABLE quota_holds (
    hold_id    TEXT    NOT NULL PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    bytes      INTEGER NOT NULL,
    is_upload  INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX quota_holds_user ON quota_holds (user_id);
CREATE INDEX quota_holds_age ON quota_holds (created_at);
