"""Every SQL statement the application runs, in one place. All are parameterised."""

from __future__ import annotations

POSITION_COLUMNS = (
    "sku",
    "location",
    "on_hand",
    "reserved",
    "picked",
    "on_order",
    "back_ordered",
    "stock_value",
    "min_quantity",
    "max_quantity",
    "low_stock_threshold",
    "reorder_quantity",
    "bin",
    "preferred_supplier",
    "picks",
    "version",
)

# Transaction-scoped advisory locks, taken in the order of the (sorted) array, so two
# writers never wait on each other in a cycle. They also cover rows not created yet.
LOCK = "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k"

_IN_KEYS = "(sku, location) IN (SELECT * FROM unnest($1::text[], $2::text[]))"

LOAD_POSITIONS = f"SELECT {', '.join(POSITION_COLUMNS)} FROM stock_position WHERE {_IN_KEYS}"

SAVE_POSITIONS = f"""
INSERT INTO stock_position ({", ".join(POSITION_COLUMNS)}, updated_at)
SELECT *, now() FROM unnest(
    $1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
    $7::bigint[], $8::numeric[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[],
    $13::text[], $14::text[], $15::jsonb[], $16::bigint[])
ON CONFLICT (sku, location) DO UPDATE SET
{", ".join(f"{c} = EXCLUDED.{c}" for c in POSITION_COLUMNS[2:])}, updated_at = now()
"""

ALL_POSITIONS = f"SELECT {', '.join(POSITION_COLUMNS)} FROM stock_position ORDER BY sku, location"

RESERVATION_COLUMNS = (
    "reservation_id",
    "sku",
    "location",
    "order_ref",
    "quantity",
    "back_ordered",
    "expires_at",
    "sequence",
)

LOAD_RESERVATIONS = f"""
SELECT {", ".join(RESERVATION_COLUMNS)} FROM stock_reservation WHERE {_IN_KEYS}
"""

ALL_RESERVATIONS = f"SELECT {', '.join(RESERVATION_COLUMNS)} FROM stock_reservation"

RESERVATION_OWNERS = """
SELECT reservation_id, sku, location FROM stock_reservation
WHERE reservation_id = ANY($1::text[])
"""

SAVE_RESERVATIONS = f"""
INSERT INTO stock_reservation ({", ".join(RESERVATION_COLUMNS)})
SELECT * FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[],
    $7::timestamptz[], $8::bigint[])
ON CONFLICT (reservation_id) DO UPDATE SET
{", ".join(f"{c} = EXCLUDED.{c}" for c in RESERVATION_COLUMNS[1:])}
"""

DELETE_RESERVATIONS = "DELETE FROM stock_reservation WHERE reservation_id = ANY($1::text[])"

# Keyset pages: a page that could not expire some of its rows never hides the next one.
DUE_RESERVATIONS = """
SELECT reservation_id, sku, location, expires_at, sequence FROM stock_reservation
WHERE expires_at <= $1
  AND ($3::timestamptz IS NULL OR (expires_at, reservation_id) > ($3, $4::text))
ORDER BY expires_at, reservation_id
LIMIT $2
"""

PO_LINE_COLUMNS = (
    "po_number",
    "po_line",
    "sku",
    "location",
    "ordered_quantity",
    "unit_cost",
    "received_quantity",
    "received_value",
    "cancelled",
    "planned",
    "supplier",
    "expected_date",
    "version",
)

LOAD_PO_LINES = f"""
SELECT {", ".join(PO_LINE_COLUMNS)} FROM purchase_order_line
WHERE (po_number, po_line) IN (SELECT * FROM unnest($1::text[], $2::integer[]))
"""

SAVE_PO_LINES = f"""
INSERT INTO purchase_order_line ({", ".join(PO_LINE_COLUMNS)}, updated_at)
SELECT *, now() FROM unnest(
    $1::text[], $2::integer[], $3::text[], $4::text[], $5::bigint[], $6::numeric[],
    $7::bigint[], $8::numeric[], $9::boolean[], $10::boolean[], $11::text[], $12::date[],
    $13::bigint[])
ON CONFLICT (po_number, po_line) DO UPDATE SET
{", ".join(f"{c} = EXCLUDED.{c}" for c in PO_LINE_COLUMNS[2:])}, updated_at = now()
"""

LOAD_LOCATIONS = "SELECT code, name, active, version FROM stock_location WHERE code = ANY($1)"

SAVE_LOCATIONS = """
INSERT INTO stock_location (code, name, active, version, updated_at)
SELECT *, now() FROM unnest($1::text[], $2::text[], $3::boolean[], $4::bigint[])
ON CONFLICT (code) DO UPDATE SET
name = EXCLUDED.name, active = EXCLUDED.active, version = EXCLUDED.version, updated_at = now()
"""

LOAD_ITEMS = "SELECT sku, name, base_unit, active, version FROM stock_item WHERE sku = ANY($1)"

SAVE_ITEMS = """
INSERT INTO stock_item (sku, name, base_unit, active, version, updated_at)
SELECT *, now() FROM unnest($1::text[], $2::text[], $3::text[], $4::boolean[], $5::bigint[])
ON CONFLICT (sku) DO UPDATE SET
name = EXCLUDED.name, base_unit = EXCLUDED.base_unit, active = EXCLUDED.active,
version = EXCLUDED.version, updated_at = now()
"""

LEDGER_COLUMNS = (
    "sku",
    "location",
    "version",
    "command_id",
    "command_type",
    "reason",
    "occurred_at",
    "delta_on_hand",
    "delta_reserved",
    "delta_picked",
    "delta_on_order",
    "delta_back_ordered",
    "delta_stock_value",
    "on_hand",
    "reserved",
    "picked",
    "on_order",
    "back_ordered",
    "stock_value",
)

# The whole ledger in the order `project` folds it.
ALL_LEDGER = f"SELECT {', '.join(LEDGER_COLUMNS)} FROM stock_ledger ORDER BY sku, location, version"

POSITION_QUANTITIES = """
SELECT sku, location, on_hand, reserved, picked, on_order, back_ordered, stock_value, version
FROM stock_position
"""

POSITION_LEDGER = f"""
SELECT {", ".join(LEDGER_COLUMNS)} FROM stock_ledger
WHERE sku = $1 AND location = $2
ORDER BY version
"""

# Only one worker sweeps expired reservations at a time (released at commit).
TRY_EXPIRY_LEADERSHIP = "SELECT pg_try_advisory_xact_lock(7372021)"

LOAD_RESULTS = """
SELECT command_id, result_event_id, result_topic, result_key, result_value,
       header_keys, header_values, fingerprint
FROM processed_command
WHERE command_id = ANY($1::uuid[])
"""

PROCESSED_COMMAND_COLUMNS = (
    "command_id",
    "result_event_id",
    "result_topic",
    "result_key",
    "result_value",
    "header_keys",
    "header_values",
    "fingerprint",
)

OUTBOX_COLUMNS = ("event_id", "topic", "key", "value", "header_keys", "header_values")

NOTIFY_OUTBOX = "SELECT pg_notify($1, '')"

# Parked rows (refused by the broker for a reason of their own) wait for an operator.
FETCH_UNPUBLISHED = """
SELECT id, event_id, topic, key, value, header_keys, header_values
FROM outbox
WHERE published_at IS NULL AND parked_at IS NULL
ORDER BY id
LIMIT $1
"""

MARK_PUBLISHED = "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])"

PARK = """
UPDATE outbox SET parked_at = now(), parked_reason = $2
WHERE id = $1 AND published_at IS NULL
"""

PARKED = """
SELECT id, event_id, topic, key, value, header_keys, header_values, parked_reason, parked_at
FROM outbox
WHERE parked_at IS NOT NULL
ORDER BY id
"""

REQUEUE_PARKED = """
UPDATE outbox SET parked_at = NULL, parked_reason = NULL
WHERE id = $1 AND parked_at IS NOT NULL
RETURNING id
"""

# Retention, in bounded chunks so no sweep holds long locks or a huge transaction.
DELETE_OLD_INBOX = """
DELETE FROM processed_command WHERE command_id IN (
    SELECT command_id FROM processed_command
    WHERE processed_at < now() - make_interval(secs => $1)
    LIMIT $2)
"""

DELETE_OLD_OUTBOX = """
DELETE FROM outbox WHERE id IN (
    SELECT id FROM outbox
    WHERE published_at < now() - make_interval(secs => $1)
    ORDER BY id
    LIMIT $2)
"""

# Only one worker sweeps old rows at a time (released at commit).
TRY_RETENTION_LEADERSHIP = "SELECT pg_try_advisory_xact_lock(7372022)"

TRY_RELAY_LEADERSHIP = "SELECT pg_try_advisory_lock($1)"

CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migration (
    version    text        PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""

APPLIED_MIGRATIONS = "SELECT version FROM schema_migration"

# Whether the migrations table exists (the worker's start-up check runs no DDL).
MIGRATIONS_TABLE_EXISTS = "SELECT to_regclass('schema_migration') IS NOT NULL"

# Slots of PostgreSQL's shared lock table: every session's locks must fit in it together.
LOCK_TABLE_SLOTS = """
SELECT current_setting('max_locks_per_transaction')::bigint
     * (current_setting('max_connections')::bigint
        + current_setting('max_prepared_transactions')::bigint)
"""

RECORD_MIGRATION = "INSERT INTO schema_migration (version) VALUES ($1)"

# The worker role's privileges: data only, and the ledger is append-only (read and insert;
# the REVOKE also takes back what an earlier `migrate --grant-to` granted). Statements run
# in order, in the migration's transaction. Role names cannot be bind parameters, so the
# statements are built by PostgreSQL's format() with %I (identifier quoting).
WORKER_GRANTS = """
SELECT ARRAY[
    'REVOKE CREATE ON SCHEMA public FROM PUBLIC',
    format('GRANT USAGE ON SCHEMA public TO %I', $1::text),
    format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %I', $1::text),
    format('REVOKE UPDATE, DELETE, TRUNCATE ON stock_ledger FROM %I', $1::text),
    format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO %I', $1::text)
]
"""

# Serialises concurrent `migrate` runs.
MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(7372019)"
