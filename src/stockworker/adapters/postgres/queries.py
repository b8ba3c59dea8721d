"""Every SQL statement the application runs, in one place. All are parameterised."""

from __future__ import annotations

POSITION_COLUMNS = (
    "sku",
    "location",
    "on_hand",
    "reserved",
    "picked",
    "on_order",
    "min_quantity",
    "max_quantity",
    "low_stock_threshold",
    "reorder_quantity",
    "bin",
    "picks",
    "version",
)

# Transaction-scoped advisory locks, taken in the order of the (sorted) array, so two
# writers never wait on each other in a cycle. They also cover positions not created yet.
LOCK_POSITIONS = "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k"

LOAD_POSITIONS = f"""
SELECT {", ".join(POSITION_COLUMNS)}
FROM stock_position
WHERE (sku, location) IN (SELECT * FROM unnest($1::text[], $2::text[]))
"""

SAVE_POSITIONS = f"""
INSERT INTO stock_position ({", ".join(POSITION_COLUMNS)}, updated_at)
SELECT *, now() FROM unnest(
    $1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
    $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::text[], $12::jsonb[],
    $13::bigint[])
ON CONFLICT (sku, location) DO UPDATE SET
{", ".join(f"{c} = EXCLUDED.{c}" for c in POSITION_COLUMNS[2:])}, updated_at = now()
"""

ALL_POSITIONS = f"SELECT {', '.join(POSITION_COLUMNS)} FROM stock_position ORDER BY sku, location"

LOAD_RESULTS = """
SELECT command_id, result_event_id, result_topic, result_key, result_value,
       header_keys, header_values
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
)

OUTBOX_COLUMNS = ("event_id", "topic", "key", "value", "header_keys", "header_values")

NOTIFY_OUTBOX = "SELECT pg_notify($1, '')"

FETCH_UNPUBLISHED = """
SELECT id, event_id, topic, key, value, header_keys, header_values
FROM outbox
WHERE published_at IS NULL
ORDER BY id
LIMIT $1
"""

MARK_PUBLISHED = "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])"

TRY_RELAY_LEADERSHIP = "SELECT pg_try_advisory_lock($1)"

CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migration (
    version    text        PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""

APPLIED_MIGRATIONS = "SELECT version FROM schema_migration"

RECORD_MIGRATION = "INSERT INTO schema_migration (version) VALUES ($1)"

# Serialises concurrent `migrate` runs.
MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(7372019)"
