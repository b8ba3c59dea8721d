-- What a StockChanged holds besides the ledger's quantities, so that `stockworker events
-- republish` can rebuild it, byte for byte, after its outbox row is gone: the references
-- the command named (the event's cause) and the position's settings after the change.
-- Entries written before this migration have NULL settings: they cannot be republished.
-- Together ~50 bytes a ledger row (the references are NULL for most commands).
ALTER TABLE stock_ledger
    ADD COLUMN order_ref           text,
    ADD COLUMN reservation_id      text,
    ADD COLUMN po_number           text,
    ADD COLUMN po_line             integer,
    ADD COLUMN min_quantity        bigint,
    ADD COLUMN max_quantity        bigint,
    ADD COLUMN low_stock_threshold bigint,
    ADD COLUMN reorder_quantity    bigint,
    ADD COLUMN bin                 text,
    ADD COLUMN preferred_supplier  text,
    -- occurred_at is kept as an instant: this is the offset the command gave it with
    -- (seconds east of UTC), so a rebuilt event writes the time as the original did.
    ADD COLUMN occurred_at_utc_offset integer;

-- No index on occurred_at: one would be maintained on every change the worker writes.
-- `events republish` by time alone scans the ledger; by SKU it uses the primary key.
