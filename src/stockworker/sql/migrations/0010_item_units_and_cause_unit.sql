-- Units of measure (issue 13): an item's named units and how many base units each holds,
-- as a JSON object ({"BOX": 12}); and the unit a command gave its quantity in, kept in the
-- ledger as the cause of its StockChanged, so `events republish` rebuilds it as it was.
-- Both are metadata-only changes (a constant default, a NULL column): no table rewrite.
ALTER TABLE stock_item
    ADD COLUMN units jsonb NOT NULL DEFAULT '{}'::jsonb
        CHECK (jsonb_typeof(units) = 'object');

ALTER TABLE stock_ledger
    ADD COLUMN unit text;
