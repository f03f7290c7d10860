-- The PostgreSQL schema: the same tables and columns as SQLite's migrations 0001-0004 (the
-- statements in nwcd/store/sql.py run on both), integers as BIGINT.

-- Connections: one wallet key pair per app.
CREATE TABLE connections (
    wallet_pubkey    TEXT PRIMARY KEY,
    wallet_secret    TEXT NOT NULL,
    name             TEXT NOT NULL UNIQUE,
    app_pubkey       TEXT NOT NULL,
    relays           TEXT NOT NULL,            -- JSON list
    methods          TEXT,                     -- JSON list; NULL = every method
    max_amount_msat  BIGINT,
    budget_msat      BIGINT,
    budget_period    TEXT NOT NULL DEFAULT 'never',
    expires_at       BIGINT,
    lud16            TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    revoked_at       BIGINT,
    last_used_at     BIGINT
);

-- The idempotency key: one row per request event id, claimed (by one instance, its owner)
-- before any side effect.
CREATE TABLE requests (
    event_id       TEXT PRIMARY KEY,
    wallet_pubkey  TEXT NOT NULL,
    app_pubkey     TEXT NOT NULL,
    scheme         TEXT NOT NULL,
    method         TEXT,
    event_json     TEXT NOT NULL,
    received_at    BIGINT NOT NULL,
    done           INTEGER NOT NULL DEFAULT 0,
    created_at     BIGINT,
    owner          TEXT NOT NULL DEFAULT ''
);
CREATE INDEX requests_by_age ON requests (received_at);
CREATE INDEX requests_open_by_owner ON requests (owner) WHERE done = 0;

-- One row per payment (a pay_* request, or one item of a multi_* request).
-- state: reserved -> in_flight -> succeeded | failed | unknown
CREATE TABLE payments (
    id               BIGSERIAL PRIMARY KEY,
    request_id       TEXT NOT NULL REFERENCES requests (event_id),
    item_index       INTEGER NOT NULL,
    wallet_pubkey    TEXT NOT NULL,
    result_type      TEXT NOT NULL,
    d_tag            TEXT,
    payment_hash     TEXT NOT NULL,
    invoice          TEXT,
    amount_msat      BIGINT NOT NULL,
    fee_reserve_msat BIGINT NOT NULL,
    state            TEXT NOT NULL,
    preimage         TEXT,
    fee_msat         BIGINT,
    error_code       TEXT,
    error_message    TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (request_id, item_index)
);
CREATE INDEX payments_by_hash ON payments (wallet_pubkey, payment_hash);
CREATE INDEX payments_by_state ON payments (state) WHERE state IN ('reserved', 'in_flight', 'unknown');
CREATE INDEX payments_budget ON payments (wallet_pubkey, created_at);
-- One live payment per payment hash, whoever asks: a constraint, not a check-then-insert.
CREATE UNIQUE INDEX payments_live_hash ON payments (payment_hash) WHERE state <> 'failed';

-- Signed responses: an outbox, stored before they are published, marked once a relay took them.
CREATE TABLE responses (
    seq          BIGSERIAL,
    event_id     TEXT PRIMARY KEY,
    request_id   TEXT NOT NULL REFERENCES requests (event_id),
    item_index   INTEGER,
    event_json   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    published    INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX responses_by_request ON responses (request_id);
CREATE INDEX responses_unpublished ON responses (created_at) WHERE published = 0;

-- Bumped on every connection change (and NOTIFY nwcd_connections), so every instance follows.
CREATE TABLE meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO meta (key, value) VALUES ('connections_version', 0);

-- Invoices made through a connection: only that app sees them and their notifications.
CREATE TABLE invoices (
    payment_hash   TEXT PRIMARY KEY,
    wallet_pubkey  TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    notified       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX invoices_by_wallet ON invoices (wallet_pubkey);

-- Running `nwcd serve` instances: a lease renewed by heartbeat, and the connections version
-- each one has subscribed to.
CREATE TABLE instances (
    instance_id        TEXT PRIMARY KEY,
    started_at         BIGINT NOT NULL,
    heartbeat_at       BIGINT NOT NULL,
    lease_expires_at   BIGINT NOT NULL,
    listening_version  BIGINT NOT NULL
);
