-- The change feed on SQLite: each change a verifier may have cached is
-- written here by the transaction that makes it, so another process on the
-- same file (the CLI revoking a key while the server runs) is seen within
-- one poll. PostgreSQL announces with NOTIFY instead and has no such table.
-- Rows are removed ten minutes after they were written.

CREATE TABLE changes (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    origin   INTEGER NOT NULL,
    payload  TEXT NOT NULL,
    at       INTEGER NOT NULL
);

CREATE INDEX changes_by_age ON changes (at);
