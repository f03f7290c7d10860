-- The request's own created_at: read-only requests are pruned by it (a re-delivery of
-- a pruned request is older than the subscription's reach and dropped before any claim).
ALTER TABLE requests ADD COLUMN created_at INTEGER;
UPDATE requests SET created_at = CAST(json_extract(event_json, '$.created_at') AS INTEGER);
CREATE INDEX requests_by_age ON requests (received_at);

-- The outbox: a response is stored unpublished and marked once a relay took it; on start,
-- unpublished ones are sent. Rows stored before this migration count as published.
ALTER TABLE responses ADD COLUMN published INTEGER NOT NULL DEFAULT 1;
CREATE INDEX responses_unpublished ON responses (created_at) WHERE published = 0;

-- Running `nwcd serve` instances: a lease renewed by heartbeat, and the connections
-- version each one has subscribed to (a new URI is shown once every instance listens).
CREATE TABLE instances (
    instance_id        TEXT PRIMARY KEY,
    started_at         INTEGER NOT NULL,
    heartbeat_at       INTEGER NOT NULL,
    lease_expires_at   INTEGER NOT NULL,
    listening_version  INTEGER NOT NULL
);
