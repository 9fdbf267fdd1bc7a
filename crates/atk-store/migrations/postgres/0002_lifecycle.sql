-- Usage counters: one row per key, action ('' when none), outcome code and
-- hour. Flushes add to `count`, so several nodes sum correctly.
CREATE TABLE usage_counts (
    key_id      TEXT NOT NULL,
    project_id  TEXT NOT NULL,
    action      TEXT NOT NULL,
    code        TEXT NOT NULL,
    hour        BIGINT NOT NULL,
    count       BIGINT NOT NULL,
    PRIMARY KEY (key_id, action, code, hour)
);

-- Append-only audit log. `seq` orders events; `id` is what clients see.
CREATE TABLE audit_events (
    seq          BIGSERIAL PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    project_id   TEXT,
    at           BIGINT NOT NULL,
    actor_type   TEXT NOT NULL,
    actor_id     TEXT NOT NULL,
    action       TEXT NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT NOT NULL,
    source_ip    TEXT,
    details      TEXT NOT NULL
);

CREATE INDEX audit_events_by_project ON audit_events (project_id, seq DESC);

CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

-- TRUNCATE bypasses row triggers; refuse it too.
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
