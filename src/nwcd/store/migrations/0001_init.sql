-- Connections: one wallet key pair per app.
CREATE TABLE connections (
    wallet_pubkey    TEXT PRIMARY KEY,
    wallet_secret    TEXT NOT NULL,
    name             TEXT NOT NULL UNIQUE,
    app_pubkey       TEXT NOT NULL,
    relays           TEXT NOT NULL,            -- JSON list
    methods          TEXT,                     -- JSON list; NULL = every method
    max_amount_msat  INTEGER,
    budget_msat      INTEGER,
    budget_period    TEXT NOT NULL DEFAULT 'never',
    expires_at       INTEGER,
    lud16            TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    revoked_at       INTEGER,
    last_used_at     INTEGER
);

-- The idempotency key: one row per request event id, claimed before any side effect.
CREATE TABLE requests (
    event_id       TEXT PRIMARY KEY,
    wallet_pubkey  TEXT NOT NULL,
    app_pubkey     TEXT NOT NULL,
    scheme         TEXT NOT NULL,
    method         TEXT,
    event_json     TEXT NOT NULL,
    received_at    INTEGER NOT NULL,
    done           INTEGER NOT NULL DEFAULT 0
);

-- One row per payment attempt (a pay_* request, or one item of a multi_* request).
-- state: reserved -> in_flight -> succeeded | failed | unknown
CREATE TABLE payments (
    id               INTEGER PRIMARY KEY,
    request_id       TEXT NOT NULL REFERENCES requests(event_id),
    item_index       INTEGER NOT NULL,
    wallet_pubkey    TEXT NOT NULL,
    result_type      TEXT NOT NULL,
    d_tag            TEXT,
    payment_hash     TEXT NOT NULL,
    invoice          TEXT,
    amount_msat      INTEGER NOT NULL,
    fee_reserve_msat INTEGER NOT NULL,
    state            TEXT NOT NULL,
    preimage         TEXT,
    fee_msat         INTEGER,
    error_code       TEXT,
    error_message    TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (request_id, item_index)
);
CREATE INDEX payments_by_hash ON payments (wallet_pubkey, payment_hash);
CREATE INDEX payments_by_state ON payments (state) WHERE state IN ('reserved', 'in_flight', 'unknown');
CREATE INDEX payments_budget ON payments (wallet_pubkey, created_at);

-- Signed responses, stored before they are published; re-published on duplicates.
CREATE TABLE responses (
    event_id     TEXT PRIMARY KEY,
    request_id   TEXT NOT NULL REFERENCES requests(event_id),
    item_index   INTEGER,
    event_json   TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX responses_by_request ON responses (request_id);

-- Bumped on every connection change, so a running service notices CLI edits.
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta (key, value) VALUES ('connections_version', 0);

-- Invoices made through a connection: only that app sees them and their notifications.
CREATE TABLE invoices (
    payment_hash   TEXT PRIMARY KEY,
    wallet_pubkey  TEXT NOT NULL,
    created_at     INTEGER NOT NULL
);
CREATE INDEX invoices_by_wallet ON invoices (wallet_pubkey);
