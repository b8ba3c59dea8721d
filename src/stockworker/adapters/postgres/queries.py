"""Every SQL statement the application runs, by name. All are parameterised.

The hand-written ones are in queries.sql, loaded once at import. Those that follow a
table's columns (load by key, read all, save as an upsert of one array per column) are
built here from the declarations in tables.py, so each column is named in one place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any

from stockworker.adapters.postgres.outbox_rows import PROCESSED_COMMAND_COLUMNS
from stockworker.adapters.postgres.tables import (
    HOLDINGS,
    ITEMS,
    LEDGER_COLUMNS,
    LOCATIONS,
    PO_LINES,
    POSITION_QUANTITY_COLUMNS,
    POSITIONS,
    RESERVATIONS,
    Column,
    Table,
)

# A statement starts after its `-- name --` line and the `--` lines right under it.
_NAME = re.compile(r"^-- ([a-z_]+) --\n(?:--.*\n)*", re.MULTILINE)


def _load(file: str) -> dict[str, str]:
    """The statements in `file` (next to this module), by name."""
    path = resources.files("stockworker.adapters.postgres") / file
    _header, *parts = _NAME.split(path.read_text(encoding="utf-8"))
    names, statements = parts[::2], [s.strip() for s in parts[1::2]]
    if len(set(names)) != len(names):
        raise RuntimeError(f"{file} names a statement twice")
    return dict(zip(names, statements, strict=True))


_statements = _load("queries.sql")


def _sql(name: str) -> str:
    return _statements.pop(name)


def _list(names: Iterable[str]) -> str:
    return ", ".join(names)


def _arrays(columns: Sequence[Column]) -> str:
    """The parameters $1, $2, ... as arrays of these columns' types."""
    return _list(f"${i}::{c.type.name}[]" for i, c in enumerate(columns, 1))


def _keys_in(columns: Sequence[Column]) -> str:
    """A condition: the row's values of `columns` are among those in the arrays $1, ..."""
    if len(columns) == 1:
        return f"{columns[0].name} = ANY({_arrays(columns)})"
    return f"({_list(c.name for c in columns)}) IN (SELECT * FROM unnest({_arrays(columns)}))"


def _select(columns: Iterable[str], table: str, where: str = "", order_by: str = "") -> str:
    statement = f"SELECT {_list(columns)} FROM {table}"
    if where:
        statement += f"\nWHERE {where}"
    if order_by:
        statement += f"\nORDER BY {order_by}"
    return statement


def _load_by_key(table: Table[Any]) -> str:
    return _select(table.names, table.name, _keys_in(table.key_columns))


def _upsert(table: Table[Any]) -> str:
    """Insert the rows given as one array per column, or update the row with their key;
    a stamped table's `updated_at` is set either way."""
    names = table.names
    updates = [f"{c} = EXCLUDED.{c}" for c in names if c not in table.key]
    columns, rows = _list(names), "*"
    if table.stamped:
        columns, rows = f"{columns}, updated_at", "*, now()"
        updates.append("updated_at = now()")
    return (
        f"INSERT INTO {table.name} ({columns})\n"
        f"SELECT {rows} FROM unnest({_arrays(table.columns)})\n"
        f"ON CONFLICT ({_list(table.key)}) DO UPDATE SET\n{_list(updates)}"
    )


# The unit of work: locks, state, inbox.
LOCK = _sql("lock")

LOAD_POSITIONS = _load_by_key(POSITIONS)
SAVE_POSITIONS = _upsert(POSITIONS)
ALL_POSITIONS = _select(POSITIONS.names, POSITIONS.name, order_by=_list(POSITIONS.key))

# A position's reservations, by the position's key.
LOAD_RESERVATIONS = _select(
    RESERVATIONS.names, RESERVATIONS.name, _keys_in(RESERVATIONS.owner_columns)
)
ALL_RESERVATIONS = _select(RESERVATIONS.names, RESERVATIONS.name)
SAVE_RESERVATIONS = _upsert(RESERVATIONS)
RESERVATION_OWNERS = _sql("reservation_owners")
DELETE_RESERVATIONS = _sql("delete_reservations")
DUE_RESERVATIONS = _sql("due_reservations")

# A tracked position's serial numbers or lots, by the position's key.
LOAD_HOLDINGS = _select(HOLDINGS.names, HOLDINGS.name, _keys_in(HOLDINGS.owner_columns))
ALL_HOLDINGS = _select(HOLDINGS.names, HOLDINGS.name)
SAVE_HOLDINGS = _upsert(HOLDINGS)
DELETE_HOLDINGS = _sql("delete_holdings")
SERIAL_LOCATIONS = _sql("serial_locations")
DUE_LOTS = _sql("due_lots")
STOCKED_POSITIONS = _sql("stocked_positions")
TRY_EXPIRY_LEADERSHIP = _sql("try_expiry_leadership")

LOAD_PO_LINES = _load_by_key(PO_LINES)
SAVE_PO_LINES = _upsert(PO_LINES)
LOAD_LOCATIONS = _load_by_key(LOCATIONS)
SAVE_LOCATIONS = _upsert(LOCATIONS)
LOAD_ITEMS = _load_by_key(ITEMS)
SAVE_ITEMS = _upsert(ITEMS)

LOAD_RESULTS = _select(
    PROCESSED_COMMAND_COLUMNS, "processed_command", "command_id = ANY($1::uuid[])"
)

# The ledger, read back: all of it in the order `project` folds it, one position's.
ALL_LEDGER = _select(LEDGER_COLUMNS, "stock_ledger", order_by="sku, location, version")
POSITION_LEDGER = _select(
    LEDGER_COLUMNS, "stock_ledger", "sku = $1 AND location = $2", order_by="version"
)
POSITION_QUANTITIES = _select(POSITION_QUANTITY_COLUMNS, "stock_position")

# The outbox: announced at commit, published by the relay, parked, swept.
NOTIFY_OUTBOX = _sql("notify_outbox")
FETCH_UNPUBLISHED = _sql("fetch_unpublished")
DELETE_PUBLISHED = _sql("delete_published")
PARK = _sql("park")
PARKED = _sql("parked")
REQUEUE_PARKED = _sql("requeue_parked")
TRY_RELAY_LEADERSHIP = _sql("try_relay_leadership")
DELETE_OLD_INBOX = _sql("delete_old_inbox")
DELETE_OLD_OUTBOX = _sql("delete_old_outbox")
TRY_RETENTION_LEADERSHIP = _sql("try_retention_leadership")

# Operators: the audit trail, dead letters dealt with.
RECORD_OPERATION = _sql("record_operation")
MAY_RECORD_OPERATIONS = _sql("may_record_operations")
RECENT_OPERATIONS = _sql("recent_operations")
DEAD_LETTER_RESOLUTIONS = _sql("dead_letter_resolutions")
RESOLVE_DEAD_LETTER = _sql("resolve_dead_letter")

# replay: the inbox, the rebuild's target and the sweeper's expiries.
REPLAY_IN_INBOX = _sql("replay_in_inbox")
REBUILD_TARGET_ROWS = _sql("rebuild_target_rows")
REBUILD_EXPIRIES = _sql("rebuild_expiries")
REPLAY_RELAY_RUNNING = _sql("replay_relay_running")

# Events republish (subscribers): the selected ledger entries, entries by key, results.
REPUBLISH_LEDGER = _select(
    LEDGER_COLUMNS,
    "stock_ledger",
    "($1::timestamptz IS NULL OR occurred_at >= $1)"
    " AND ($2::timestamptz IS NULL OR occurred_at < $2)"
    " AND ($3::text[] IS NULL OR sku = ANY($3::text[]))"
    " AND ($4::text IS NULL OR location = $4::text)",
    order_by="sku, location, version",
)
LEDGER_ENTRIES_AT = _select(
    LEDGER_COLUMNS,
    "stock_ledger",
    "(sku, location, version) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]))",
)
REPUBLISH_RESULTS = _select(
    PROCESSED_COMMAND_COLUMNS, "processed_command", order_by="processed_at, command_id"
)
SNAPSHOT_POSITION_KEYS = _sql("snapshot_position_keys")

# Metrics (and readiness): the outbox's backlog, its oldest row's age, parked rows.
OUTBOX_STATS = _sql("outbox_stats")

# Readiness (/health/ready): the database answers and is not a standby.
READINESS_PROBE = _sql("readiness_probe")

# Migrations.
CREATE_MIGRATIONS_TABLE = _sql("create_migrations_table")
APPLIED_MIGRATIONS = _sql("applied_migrations")
MIGRATIONS_TABLE_EXISTS = _sql("migrations_table_exists")
LOCK_TABLE_SLOTS = _sql("lock_table_slots")
RECORD_MIGRATION = _sql("record_migration")
WORKER_GRANTS = _sql("worker_grants")
MIGRATION_LOCK = _sql("migration_lock")

if _statements:
    raise RuntimeError(f"queries.sql: statements without a name here: {sorted(_statements)}")
