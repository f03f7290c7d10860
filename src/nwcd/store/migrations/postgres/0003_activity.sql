-- What each request finished as, for the operator's activity page (SQLite's migration 0006):
-- "ok" or the NIP-47 error code it was answered with, the amount its payments asked for,
-- its payment items, the milliseconds from receipt to the last answer, and when.
ALTER TABLE requests ADD COLUMN outcome TEXT;
ALTER TABLE requests ADD COLUMN amount_msat BIGINT;
ALTER TABLE requests ADD COLUMN items INTEGER;
ALTER TABLE requests ADD COLUMN latency_ms BIGINT;
ALTER TABLE requests ADD COLUMN finished_at BIGINT;

-- Recent requests first, of everyone or of one connection; pruning reads the first one by
-- received_at as it read requests_by_age.
DROP INDEX requests_by_age;
CREATE INDEX requests_recent ON requests (received_at, event_id);
CREATE INDEX requests_recent_by_wallet ON requests (wallet_pubkey, received_at, event_id);
