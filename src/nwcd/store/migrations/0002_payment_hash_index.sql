-- reserve() looks up live payments by hash alone (one live payment per hash, any connection).
CREATE INDEX payments_by_payment_hash ON payments (payment_hash);
