-- Stock positions, the inbox of processed commands, and the transactional outbox.

CREATE TABLE stock_position (
    sku                 text        NOT NULL,
    location            text        NOT NULL,
    on_hand             bigint      NOT NULL DEFAULT 0,
    reserved            bigint      NOT NULL DEFAULT 0,
    picked              bigint      NOT NULL DEFAULT 0,
    on_order            bigint      NOT NULL DEFAULT 0,
    min_quantity        bigint      NOT NULL DEFAULT 0,
    max_quantity        bigint      NOT NULL DEFAULT 0,
    low_stock_threshold bigint      NOT NULL DEFAULT 0,
    reorder_quantity    bigint      NOT NULL DEFAULT 0,
    bin                 text,
    -- picked quantity per order reference; the values add up to `picked`
    picks               jsonb       NOT NULL DEFAULT '{}',
    version             bigint      NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sku, location),
    CONSTRAINT quantities_not_negative
        CHECK (on_hand >= 0 AND reserved >= 0 AND picked >= 0 AND on_order >= 0),
    CONSTRAINT on_hand_covers_reserved_and_picked CHECK (on_hand >= reserved + picked),
    CONSTRAINT min_max_valid CHECK (0 <= min_quantity AND min_quantity <= max_quantity),
    CONSTRAINT thresholds_not_negative CHECK (low_stock_threshold >= 0 AND reorder_quantity >= 0),
    CONSTRAINT bin_length CHECK (char_length(bin) <= 50),
    CONSTRAINT version_positive CHECK (version >= 1),
    CONSTRAINT picks_is_object CHECK (jsonb_typeof(picks) = 'object')
);

-- One row per processed command_id, written in the transaction that applied it.
-- The stored result message is what a duplicate of the command gets again.
CREATE TABLE processed_command (
    command_id      uuid        PRIMARY KEY,
    result_event_id uuid        NOT NULL,
    result_topic    text        NOT NULL,
    result_key      bytea,
    result_value    bytea       NOT NULL,
    header_keys     text[]      NOT NULL DEFAULT '{}',
    header_values   bytea[]     NOT NULL DEFAULT '{}',
    processed_at    timestamptz NOT NULL DEFAULT now()
);

-- Messages to publish, written in the same transaction as the change that caused them.
-- The relay publishes unpublished rows in id order and sets published_at.
CREATE TABLE outbox (
    id            bigserial   PRIMARY KEY,
    event_id      uuid        NOT NULL,
    topic         text        NOT NULL,
    key           bytea,
    value         bytea       NOT NULL,
    header_keys   text[]      NOT NULL DEFAULT '{}',
    header_values bytea[]     NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    CONSTRAINT headers_paired
        CHECK (cardinality(header_keys) = cardinality(header_values))
);

CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
