-- Times are milliseconds since the Unix epoch (INTEGER) in both dialects, so
-- one set of queries serves SQLite and PostgreSQL and hour buckets are
-- integer division.

CREATE TABLE projects (
    project_id  TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE entitlements (
    project_id     TEXT NOT NULL REFERENCES projects (project_id),
    product        TEXT NOT NULL,
    status         TEXT NOT NULL,
    trial_ends_at  INTEGER,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (project_id, product)
);

CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL REFERENCES projects (project_id),
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL,
    environment     TEXT NOT NULL,
    scopes          TEXT NOT NULL, -- JSON array of scope strings
    expiration      TEXT NOT NULL,
    secret_hash     BLOB NOT NULL UNIQUE,
    secret_preview  TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER,
    last_used_at    INTEGER,
    revoked_at      INTEGER,
    revoke_reason   TEXT,
    rotated_from    TEXT,
    rotated_to      TEXT
);

CREATE INDEX api_keys_by_project_newest ON api_keys (project_id, created_at DESC, id DESC);

CREATE TABLE settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
