-- The quota ledger: room reserved in a user's quota for content on its way
-- in (an upload's declared size, a single upload's body), held until the
-- content is committed (in the same transaction as its entry) or released.
-- Reservations are made in the transaction that takes the user's turn, so
-- concurrent ones, from any number of processes, never overshoot.
CREATE TABLE quota_holds (
    hold_id    VARCHAR(64) NOT NULL PRIMARY KEY,
    user_id    BIGINT      NOT NULL,
    bytes      BIGINT      NOT NULL,
    is_upload  SMALLINT    NOT NULL,
    created_at BIGINT      NOT NULL,
    KEY quota_holds_user (user_id),
    KEY quota_holds_age (created_at),
    CONSTRAINT quota_holds_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
