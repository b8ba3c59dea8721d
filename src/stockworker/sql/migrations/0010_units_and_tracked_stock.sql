-- Units of measure and tracked stock (issue 13).
--
-- An item's named units and how many base units each holds, as a JSON object
-- ({"BOX": 12}), and how its stock is tracked: none, by serial number, or by lot.
-- Both are metadata-only changes (constant defaults): no table rewrite.
ALTER TABLE stock_item
    ADD COLUMN units jsonb NOT NULL DEFAULT '{}'::jsonb
        CHECK (jsonb_typeof(units) = 'object'),
    ADD COLUMN tracking text NOT NULL DEFAULT 'none'
        CHECK (tracking IN ('none', 'serial', 'lot'));

-- Free units of expired lots: on hand but not available (0 for untracked items), so
-- available = on_hand - reserved - picked - expired, and reservations fit what is left.
ALTER TABLE stock_position
    ADD COLUMN expired bigint NOT NULL DEFAULT 0 CHECK (expired >= 0),
    ADD CONSTRAINT stock_position_unexpired_covers_reserved
        CHECK (on_hand - picked - expired >= reserved);

-- The serial numbers or lots a tracked item's position holds (none for untracked
-- items): the position's on_hand and picks are their sums, which the domain checks on
-- every change. `picks` is the picked quantity per order reference.
CREATE TABLE stock_holding (
    sku        text   NOT NULL,
    location   text   NOT NULL,
    kind       text   NOT NULL CHECK (kind IN ('serial', 'lot')),
    id         text   NOT NULL,
    on_hand    bigint NOT NULL CHECK (on_hand > 0),
    picks      jsonb  NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(picks) = 'object'),
    expires_on date,
    sequence   bigint NOT NULL,
    -- Reported as close to its expiry (LotExpiring); expired (its free units are not
    -- available any more, they stay on hand until adjusted out).
    warned     boolean NOT NULL DEFAULT false,
    expired    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (sku, location, id),
    FOREIGN KEY (sku, location) REFERENCES stock_position (sku, location),
    CHECK (kind = 'lot' OR (on_hand = 1 AND expires_on IS NULL))
);
-- A tracked position's on_hand and picked are the sums of its holdings: checked at
-- commit (deferred: a batch deletes and writes holdings in separate statements) for
-- every position whose holdings changed, so untracked positions pay nothing.
CREATE FUNCTION stock_holding_sums_check() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    at_sku text := CASE WHEN TG_OP = 'DELETE' THEN OLD.sku ELSE NEW.sku END;
    at_location text := CASE WHEN TG_OP = 'DELETE' THEN OLD.location ELSE NEW.location END;
BEGIN
    IF EXISTS (
        SELECT 1
        FROM stock_position p
        CROSS JOIN LATERAL (
            SELECT coalesce(sum(h.on_hand), 0) AS on_hand,
                   coalesce(sum((SELECT coalesce(sum(v::bigint), 0)
                                 FROM jsonb_each_text(h.picks) AS e(k, v))), 0) AS picked
            FROM stock_holding h
            WHERE h.sku = at_sku AND h.location = at_location
        ) held
        WHERE p.sku = at_sku AND p.location = at_location
          AND (p.on_hand, p.picked) IS DISTINCT FROM (held.on_hand, held.picked)
    ) THEN
        RAISE EXCEPTION 'the serials or lots of % at % do not add up to its on_hand and picked',
            at_sku, at_location
            USING ERRCODE = 'check_violation', CONSTRAINT = 'stock_holding_sums';
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER stock_holding_sums
    AFTER INSERT OR UPDATE OR DELETE ON stock_holding
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION stock_holding_sums_check();

-- A serial number is in stock at one location of its item at most.
CREATE UNIQUE INDEX stock_holding_serial ON stock_holding (sku, id) WHERE kind = 'serial';
-- The lot-expiry sweep's pages: lots with a date that have not expired yet.
CREATE INDEX stock_holding_expiry ON stock_holding (expires_on, sku, location, id)
    WHERE kind = 'lot' AND expires_on IS NOT NULL AND NOT expired;

-- The ledger keeps, for each change, the unit its command gave (the cause of its
-- StockChanged), the serial numbers or lots it moved, and the expired units (delta and
-- after), so `events republish` rebuilds the event as it was and `project` folds
-- holdings too. NULL or 0 for most rows.
ALTER TABLE stock_ledger
    ADD COLUMN unit text,
    ADD COLUMN movements jsonb,
    ADD COLUMN delta_expired bigint NOT NULL DEFAULT 0,
    ADD COLUMN expired bigint NOT NULL DEFAULT 0;
