"""The tables the unit of work reads and writes, derived from the domain's records.

A table's columns are its record's fields, in their order and under their names; each
column's SQL type and conversion follow from the field's annotation (`_TYPES`). So a
field added to Position (and its column, in a migration) is loaded, saved and compared
by the statements in queries.py and the mapping here with no other change.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from operator import attrgetter, itemgetter
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import asyncpg

from stockworker.domain.catalog import Item, Location
from stockworker.domain.ledger import (
    CauseReferences,
    LedgerEntry,
    LedgerQuantities,
    LedgerSettings,
)
from stockworker.domain.position import Holding, Position, PositionKey, Reservation
from stockworker.domain.purchasing import PoLine
from stockworker.domain.tracking import Movement
from stockworker.domain.valuation import money
from stockworker.service.ports import DueReservation

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")


@dataclass(frozen=True, slots=True)
class SqlType:
    """A column type, and how a value crosses it when asyncpg's own codec is not enough."""

    name: str
    to_db: Callable[[Any], object] | None = None
    from_db: Callable[[Any], object] | None = None


def _json_object(value: Mapping[str, int]) -> str:
    return json.dumps(dict(value), separators=(",", ":"))


def _frozen_object(text: str) -> Mapping[str, int]:
    return MappingProxyType(json.loads(text))


# The SQL type of a stored field, by its annotation as the domain writes it. Money is
# read back with its 6 places whatever PostgreSQL's numeric kept.
_TYPES = {
    "str": SqlType("text"),
    "str | None": SqlType("text"),
    "int": SqlType("bigint"),
    "bool": SqlType("boolean"),
    "Decimal": SqlType("numeric", from_db=money),
    "date | None": SqlType("date"),
    "datetime": SqlType("timestamptz"),
    "datetime | None": SqlType("timestamptz"),
    "UUID": SqlType("uuid"),
    "Mapping[str, int]": SqlType("jsonb", to_db=_json_object, from_db=_frozen_object),
}


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: SqlType


def columns_of(
    record: type[DataclassInstance],
    skip: Iterable[str] = (),
    sql_types: Mapping[str, SqlType] | None = None,
) -> tuple[Column, ...]:
    """One column per field of the dataclass `record`, in field order; `sql_types` names
    the type of a column where the annotation does not tell it."""
    chosen = sql_types or {}
    return tuple(
        Column(f.name, chosen.get(f.name) or _TYPES[str(f.type)])
        for f in dataclasses.fields(record)
        if f.name not in skip
    )


class RowReader(Generic[R]):
    """Builds a dataclass `record` from a row with a column per field (`prefix` + name).

    The fields without a column (`skip` in columns_of) are given by the caller. Arguments
    go in by position, in field order: this runs for every row a batch loads.
    """

    def __init__(self, record: type[R], columns: Sequence[Column], prefix: str = "") -> None:
        fields = [f.name for f in dataclasses.fields(record)]
        names = [c.name for c in columns]
        if names != [f for f in fields if f in names]:
            raise ValueError(f"{record.__name__}: columns out of field order: {names}")
        get = itemgetter(*(prefix + name for name in names))
        self._record = record
        self._get = get if len(names) > 1 else lambda row: (get(row),)
        self._converted = tuple(
            (i, c.type.from_db) for i, c in enumerate(columns) if c.type.from_db
        )
        self._given = tuple((i, f) for i, f in enumerate(fields) if f not in names)

    def __call__(self, row: asyncpg.Record, **given: object) -> R:
        values = list(self._get(row))
        for i, from_db in self._converted:
            values[i] = from_db(values[i])
        for i, name in self._given:
            values.insert(i, given[name])
        return self._record(*values)


class Table(Generic[R]):
    """A table holding one `record` per row, keyed by `key`.

    A record that belongs to a row of an `owner` table does not hold the owner's key:
    those columns come first and are written from the owner. A `stamped` table's
    `updated_at` is set on every write.
    """

    def __init__(
        self,
        name: str,
        record: type[R],
        key: tuple[str, ...],
        *,
        owner: Table[Any] | None = None,
        skip: Iterable[str] = (),
        sql_types: Mapping[str, SqlType] | None = None,
        stamped: bool = True,
    ) -> None:
        own = columns_of(record, skip, sql_types)
        self.name = name
        self.key = key
        self.stamped = stamped
        self.owner_columns = owner.key_columns if owner else ()
        self.columns = (*self.owner_columns, *own)
        self.from_row: RowReader[R] = RowReader(record, own)
        self._owner_values = tuple(attrgetter(c.name) for c in self.owner_columns)
        self._values = tuple((attrgetter(c.name), c.type.to_db) for c in own)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def key_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.name in self.key)

    def to_columns(self, records: Sequence[R], owners: Sequence[object] = ()) -> list[list[Any]]:
        """One list per column, the shape `unnest($1::t[], ...)` takes; `owners` holds
        each record's owner (for the owner's columns)."""
        columns = [list(map(value, owners)) for value in self._owner_values]
        for value, to_db in self._values:
            column = list(map(value, records))
            columns.append([to_db(v) for v in column] if to_db else column)
        return columns


# A position's reservations and holdings are rows of their own tables, written only
# when they change.
POSITIONS = Table(
    "stock_position", Position, ("sku", "location"), skip=("reservations", "holdings")
)
RESERVATIONS = Table(
    "stock_reservation", Reservation, ("reservation_id",), owner=POSITIONS, stamped=False
)
HOLDINGS = Table(
    "stock_holding", Holding, ("sku", "location", "id"), owner=POSITIONS, stamped=False
)
PO_LINES = Table(
    "purchase_order_line",
    PoLine,
    ("po_number", "po_line"),
    sql_types={"po_line": SqlType("integer")},
)
LOCATIONS = Table("stock_location", Location, ("code",))
ITEMS = Table("stock_item", Item, ("sku",))


_NO_HOLDINGS: Mapping[str, Holding] = MappingProxyType({})


def positions_from_rows(
    reservation_rows: Iterable[asyncpg.Record],
    position_rows: Iterable[asyncpg.Record],
    holding_rows: Iterable[asyncpg.Record] = (),
) -> list[Position]:
    """Positions with their reservations and holdings, from rows of stock_reservation,
    stock_position and stock_holding."""
    held: dict[PositionKey, dict[str, Reservation]] = {}
    for r in reservation_rows:
        key = PositionKey(r["sku"], r["location"])
        held.setdefault(key, {})[r["reservation_id"]] = RESERVATIONS.from_row(r)
    holdings: dict[PositionKey, dict[str, Holding]] = {}
    for r in holding_rows:
        key = PositionKey(r["sku"], r["location"])
        holdings.setdefault(key, {})[r["id"]] = HOLDINGS.from_row(r)
    positions = []
    for r in position_rows:
        key = PositionKey(r["sku"], r["location"])
        tracked = holdings.get(key)
        positions.append(
            POSITIONS.from_row(
                r,
                reservations=MappingProxyType(held.get(key, {})),
                holdings=MappingProxyType(tracked) if tracked else _NO_HOLDINGS,
            )
        )
    return positions


_due = RowReader(DueReservation, columns_of(DueReservation, skip=("position",)))


def due_reservation_from_row(row: asyncpg.Record) -> DueReservation:
    return _due(row, position=PositionKey(row["sku"], row["location"]))


# The ledger: an entry's own fields, its deltas (columns named delta_*), the quantities
# after it (each of these two a LedgerQuantities without its version), then (since
# migration 0008) the cause's references and the settings after it.
_ENTRY_COLUMNS = columns_of(
    LedgerEntry, skip=("deltas", "after", "references", "settings", "movements")
)
_QUANTITY_COLUMNS = columns_of(LedgerQuantities, skip=("version",))
_REFERENCE_COLUMNS = columns_of(CauseReferences, sql_types={"po_line": SqlType("integer")})
_SETTING_COLUMNS = columns_of(LedgerSettings)
_ENTRY_FIELDS = tuple(c.name for c in _ENTRY_COLUMNS)
_QUANTITY_FIELDS = tuple(c.name for c in _QUANTITY_COLUMNS)
_REFERENCE_FIELDS = tuple(c.name for c in _REFERENCE_COLUMNS)
_SETTING_FIELDS = tuple(c.name for c in _SETTING_COLUMNS)
LEDGER_COLUMNS = (
    *_ENTRY_FIELDS,
    *(f"delta_{q}" for q in _QUANTITY_FIELDS),
    *_QUANTITY_FIELDS,
    *_REFERENCE_FIELDS,
    *_SETTING_FIELDS,
    # occurred_at is stored as an instant; its offset, so an event rebuilt from the
    # ledger writes the time as the command gave it.
    "occurred_at_utc_offset",
    # (migration 0010) the serial numbers or lots moved, NULL when none.
    "movements",
)
# The columns of stock_position the ledger is checked against.
POSITION_QUANTITY_COLUMNS = ("sku", "location", *_QUANTITY_FIELDS, "version")

_entry = RowReader(LedgerEntry, _ENTRY_COLUMNS)
_deltas = RowReader(LedgerQuantities, _QUANTITY_COLUMNS, prefix="delta_")
quantities_from_row = RowReader(LedgerQuantities, _QUANTITY_COLUMNS)
_references = RowReader(CauseReferences, _REFERENCE_COLUMNS)
_settings = RowReader(LedgerSettings, _SETTING_COLUMNS)
_entry_values = attrgetter(*_ENTRY_FIELDS)
_quantity_values = attrgetter(*_QUANTITY_FIELDS)
_reference_values = attrgetter(*_REFERENCE_FIELDS)
_setting_values = attrgetter(*_SETTING_FIELDS)
_NO_SETTINGS = (None,) * len(_SETTING_FIELDS)


def ledger_entry_from_row(row: asyncpg.Record) -> LedgerEntry:
    entry = _entry(
        row,
        deltas=_deltas(row, version=0),
        after=quantities_from_row(row, version=row["version"]),
        references=_references(row),
        # Entries written before migration 0008 have no settings (and no offset).
        settings=None if row["min_quantity"] is None else _settings(row),
        movements=_movements_from_db(row["movements"]),
    )
    offset = row["occurred_at_utc_offset"]
    if offset:
        zone = timezone(timedelta(seconds=offset))
        entry = dataclasses.replace(entry, occurred_at=entry.occurred_at.astimezone(zone))
    return entry


def _utc_offset(moment: datetime) -> int:
    offset = moment.utcoffset()
    return 0 if offset is None else int(offset.total_seconds())


def ledger_record(entry: LedgerEntry) -> tuple[object, ...]:
    """A row of stock_ledger, in LEDGER_COLUMNS order."""
    settings = entry.settings
    return (
        *_entry_values(entry),
        *_quantity_values(entry.deltas),
        *_quantity_values(entry.after),
        *_reference_values(entry.references),
        *(_setting_values(settings) if settings is not None else _NO_SETTINGS),
        _utc_offset(entry.occurred_at),
        _movements_to_db(entry.movements),
    )


def _movements_to_db(moved: Sequence[Movement]) -> str | None:
    if not moved:
        return None
    return json.dumps(
        [
            [m.kind, m.id, m.expires_on and m.expires_on.isoformat(), m.on_hand, m.picked]
            for m in moved
        ],
        separators=(",", ":"),
    )


def _movements_from_db(text: str | None) -> tuple[Movement, ...]:
    if text is None:
        return ()
    return tuple(
        Movement(kind, hid, date.fromisoformat(expires) if expires else None, on_hand, picked)
        for kind, hid, expires, on_hand, picked in json.loads(text)
    )
