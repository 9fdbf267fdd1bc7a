-- Console accounts, their roles per project, sessions and one-time links.
-- Secrets (session tokens, setup and invite links) are stored only as their
-- keyed hash, like API keys; passwords only as Argon2id PHC strings.

CREATE TABLE accounts (
    id              TEXT PRIMARY KEY,
    email           TEXT NOT NULL UNIQUE,
    display_name    TEXT NOT NULL,
    password_hash   TEXT NOT NULL,
    platform_admin  BIGINT NOT NULL, -- 0 or 1
    created_at      BIGINT NOT NULL
);

CREATE TABLE memberships (
    account_id  TEXT NOT NULL REFERENCES accounts (id),
    project_id  TEXT NOT NULL REFERENCES projects (project_id),
    role        TEXT NOT NULL,
    PRIMARY KEY (account_id, project_id)
);

CREATE INDEX memberships_by_project ON memberships (project_id);

CREATE TABLE console_sessions (
    token_hash    BYTEA PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id),
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL -- absolute end, whatever the activity
);

-- One-time links: the first-owner setup link and member invites.
CREATE TABLE console_links (
    token_hash  BYTEA PRIMARY KEY,
    purpose     TEXT NOT NULL, -- 'setup' or 'invite'
    project_id  TEXT REFERENCES projects (project_id),
    role        TEXT,
    created_by  TEXT,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);

-- Console forms that must take effect once (create key, rotate): a
-- resubmitted form finds its nonce taken.
CREATE TABLE console_form_nonces (
    nonce_hash  BYTEA PRIMARY KEY,
    used_at     BIGINT NOT NULL
);
