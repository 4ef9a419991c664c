-- "Sign out" of the dashboard: sessions made from a token at or before this time (ms since
-- the epoch) are over.
ALTER TABLE api_tokens ADD COLUMN sessions_ended_at INTEGER;
