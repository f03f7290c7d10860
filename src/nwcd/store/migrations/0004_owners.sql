-- Each request belongs to the instance that claimed it; the work of an instance that stopped
-- is taken over by another (requests from before this migration belong to nobody: the first
-- start takes them over).
ALTER TABLE requests ADD COLUMN owner TEXT NOT NULL DEFAULT '';
CREATE INDEX requests_open_by_owner ON requests (owner) WHERE done = 0;

-- One live payment per payment hash, whoever asks: a constraint, not a check-then-insert.
DROP INDEX payments_by_payment_hash;
CREATE UNIQUE INDEX payments_live_hash ON payments (payment_hash) WHERE state <> 'failed';

-- An incoming payment is notified once, by whichever instance claims it first.
ALTER TABLE invoices ADD COLUMN notified INTEGER NOT NULL DEFAULT 0;

-- Instances registered before this migration had no work of their own.
DELETE FROM instances;
