-- Per-key restrictions chosen at creation and kept on rotation: the
-- networks a key may be used from (a JSON array of CIDR strings, empty for
-- anywhere) and its own rate limit (both NULL for none).

ALTER TABLE api_keys ADD COLUMN allowed_ips TEXT NOT NULL DEFAULT '[]';
ALTER TABLE api_keys ADD COLUMN rate_limit_requests BIGINT;
ALTER TABLE api_keys ADD COLUMN rate_limit_per_seconds BIGINT;
