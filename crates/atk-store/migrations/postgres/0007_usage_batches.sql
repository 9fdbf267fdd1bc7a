-- Usage flushes applied, by batch id, so that a flush whose commit
-- succeeded but whose acknowledgement was lost is not counted again when
-- it is retried. Ids are removed a day after their batch was made.

CREATE TABLE usage_batches (
    batch_id    TEXT PRIMARY KEY,
    applied_at  BIGINT NOT NULL
);

CREATE INDEX usage_batches_by_age ON usage_batches (applied_at);
