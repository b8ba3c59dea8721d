-- The whole stock model: back orders and valuation on positions, reservations,
-- purchase-order lines, the location and item catalogue, and the append-only ledger.

ALTER TABLE stock_position
    ADD COLUMN back_ordered       bigint  NOT NULL DEFAULT 0,
    ADD COLUMN stock_value        numeric NOT NULL DEFAULT 0,
    ADD COLUMN preferred_supplier text,
    ADD CONSTRAINT back_ordered_not_negative CHECK (back_ordered >= 0),
    -- value at moving-average cost: never negative, none without stock
    ADD CONSTRAINT stock_value_valid CHECK (stock_value >= 0 AND (on_hand > 0 OR stock_value = 0)),
    -- back orders wait only while nothing is available
    ADD CONSTRAINT back_orders_wait_for_stock
        CHECK (back_ordered = 0 OR on_hand = reserved + picked);

-- Open reservations; a fully released or consumed one is deleted.
CREATE TABLE stock_reservation (
    reservation_id text        PRIMARY KEY,
    sku            text        NOT NULL,
    location       text        NOT NULL,
    order_ref      text        NOT NULL,
    quantity       bigint      NOT NULL,
    back_ordered   bigint      NOT NULL,
    expires_at     timestamptz,
    -- arrival order: back orders are filled by lowest sequence first
    sequence       bigint      NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (sku, location) REFERENCES stock_position (sku, location),
    CONSTRAINT reservation_holds_something
        CHECK (quantity >= 0 AND back_ordered >= 0 AND quantity + back_ordered > 0)
);
CREATE INDEX stock_reservation_position ON stock_reservation (sku, location);
CREATE INDEX stock_reservation_expiry ON stock_reservation (expires_at)
    WHERE expires_at IS NOT NULL;

CREATE TABLE purchase_order_line (
    po_number         text        NOT NULL,
    po_line           integer     NOT NULL,
    sku               text        NOT NULL,
    location          text        NOT NULL,
    ordered_quantity  bigint      NOT NULL,
    unit_cost         numeric     NOT NULL,
    received_quantity bigint      NOT NULL,
    received_value    numeric     NOT NULL,
    cancelled         boolean     NOT NULL,
    planned           boolean     NOT NULL,
    supplier          text,
    expected_date     date,
    version           bigint      NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (po_number, po_line),
    CONSTRAINT po_line_quantities_valid CHECK (
        ordered_quantity >= 0 AND received_quantity >= 0 AND received_value >= 0
        AND unit_cost >= 0 AND (planned OR ordered_quantity = 0))
);
CREATE INDEX purchase_order_line_position ON purchase_order_line (sku, location);

CREATE TABLE stock_location (
    code       text        PRIMARY KEY,
    name       text        NOT NULL,
    active     boolean     NOT NULL,
    version    bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE stock_item (
    sku        text        PRIMARY KEY,
    name       text        NOT NULL,
    base_unit  text        NOT NULL,
    active     boolean     NOT NULL,
    version    bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per applied position change, never updated or deleted. Folding a position's
-- deltas in version order gives its quantities (`stockworker project` checks that).
CREATE TABLE stock_ledger (
    sku                text        NOT NULL,
    location           text        NOT NULL,
    version            bigint      NOT NULL,
    command_id         uuid        NOT NULL,
    command_type       text        NOT NULL,
    reason             text,
    occurred_at        timestamptz NOT NULL,
    recorded_at        timestamptz NOT NULL DEFAULT now(),
    delta_on_hand      bigint      NOT NULL,
    delta_reserved     bigint      NOT NULL,
    delta_picked       bigint      NOT NULL,
    delta_on_order     bigint      NOT NULL,
    delta_back_ordered bigint      NOT NULL,
    delta_stock_value  numeric     NOT NULL,
    on_hand            bigint      NOT NULL,
    reserved           bigint      NOT NULL,
    picked             bigint      NOT NULL,
    on_order           bigint      NOT NULL,
    back_ordered       bigint      NOT NULL,
    stock_value        numeric     NOT NULL,
    PRIMARY KEY (sku, location, version)
);
