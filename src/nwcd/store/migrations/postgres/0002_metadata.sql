-- The app's metadata of its payments and invoices (pay_* and make_invoice), returned by
-- lookup_invoice and list_transactions whatever the backend keeps.
ALTER TABLE payments ADD COLUMN metadata TEXT;
ALTER TABLE invoices ADD COLUMN metadata TEXT;
