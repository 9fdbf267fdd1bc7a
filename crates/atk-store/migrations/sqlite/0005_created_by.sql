-- Which Service Role Key created a key (NULL when a person, the CLI or the
-- platform admin did), so revoking that key with `cascade` also revokes
-- every key it created.

ALTER TABLE api_keys ADD COLUMN created_by TEXT;

CREATE INDEX api_keys_by_creator ON api_keys (project_id, created_by);
