-- Usage counters: one row per key, action ('' when none), outcome code and
-- hour. Flushes add to `count`, so several nodes sum correctly.
CREATE TABLE usage_counts (
    key_id      TEXT NOT NULL,
    project_id  TEXT NOT NULL,
    action      TEXT NOT NULL,
    code        TEXT NOT NULL,
    hour        INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    PRIMARY KEY (key_id, action, code, hour)
);

-- Append-only audit log. `seq` orders events; `id` is what clients see.
CREATE TABLE audit_events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    project_id   TEXT,
    at           INTEGER NOT NULL,
    actor_type   TEXT NOT NULL,
    actor_id     TEXT NOT NULL,
    action       TEXT NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT NOT NULL,
    source_ip    TEXT,
    details      TEXT NOT NULL
);

CREATE INDEX audit_events_by_project ON audit_events (project_id, seq DESC);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;

CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
