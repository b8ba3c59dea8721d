"""The stock ledger: one append-only entry per applied position change.

Positions are a projection of the ledger: folding a position's entries in version
order from zero gives its quantities. `project` does that fold and `differences`
compares the result with a stored position, so drift between the two is found.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from stockworker.contract.commands import AnyCommand
from stockworker.domain.outcome import PositionChange
from stockworker.domain.position import Position
from stockworker.domain.tracking import Movement, movements
from stockworker.domain.valuation import ZERO

QUANTITY_FIELDS = (
    "on_hand",
    "reserved",
    "picked",
    "on_order",
    "back_ordered",
    "stock_value",
    "expired",
)


@dataclass(frozen=True, slots=True)
class LedgerQuantities:
    """A position's quantities and value as the ledger records them (or their deltas)."""

    on_hand: int = 0
    reserved: int = 0
    picked: int = 0
    on_order: int = 0
    back_ordered: int = 0
    stock_value: Decimal = ZERO
    version: int = 0
    # Free units of expired lots (since migration 0010), so `available` can be rebuilt.
    expired: int = 0


@dataclass(frozen=True, slots=True)
class CauseReferences:
    """The references the command named (StockChanged.cause), where it has them."""

    order_ref: str | None = None
    reservation_id: str | None = None
    po_number: str | None = None
    po_line: int | None = None
    unit: str | None = None


NO_REFERENCES = CauseReferences()

# The command fields kept as references, in CauseReferences' order.
REFERENCE_FIELDS = ("order_ref", "reservation_id", "po_number", "po_line", "unit")


@dataclass(frozen=True, slots=True)
class LedgerSettings:
    """A position's settings after a change (StockChanged.settings)."""

    min_quantity: int
    max_quantity: int
    low_stock_threshold: int
    reorder_quantity: int
    bin: str | None
    preferred_supplier: str | None


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    sku: str
    location: str
    version: int
    command_id: UUID
    command_type: str
    reason: str | None
    occurred_at: datetime
    deltas: LedgerQuantities  # its `version` is unused (0)
    after: LedgerQuantities
    # What a StockChanged needs besides the above, so it can be published again from the
    # ledger (`stockworker events republish`). Entries written before migration 0008
    # have no settings (None) and no references.
    references: CauseReferences = NO_REFERENCES
    settings: LedgerSettings | None = None
    # The serial numbers or lots the change moved (since migration 0010).
    movements: tuple[Movement, ...] = ()


def _quantities(p: Position, version: int) -> LedgerQuantities:
    # Written out, not over QUANTITY_FIELDS: this runs twice for every change.
    return LedgerQuantities(
        p.on_hand,
        p.reserved,
        p.picked,
        p.on_order,
        p.back_ordered,
        p.stock_value,
        version,
        p.expired,
    )


def ledger_entry(
    change: PositionChange,
    command_id: UUID,
    command_type: str,
    occurred_at: datetime,
    references: CauseReferences = NO_REFERENCES,
) -> LedgerEntry:
    before, after = change.before, change.after
    return LedgerEntry(
        sku=after.sku,
        location=after.location,
        version=after.version,
        command_id=command_id,
        command_type=command_type,
        reason=change.reason,
        occurred_at=occurred_at,
        deltas=LedgerQuantities(
            after.on_hand - before.on_hand,
            after.reserved - before.reserved,
            after.picked - before.picked,
            after.on_order - before.on_order,
            after.back_ordered - before.back_ordered,
            after.stock_value - before.stock_value,
            0,
            after.expired - before.expired,
        ),
        after=_quantities(after, after.version),
        references=references,
        movements=movements(before, after),
        settings=LedgerSettings(
            after.min_quantity,
            after.max_quantity,
            after.low_stock_threshold,
            after.reorder_quantity,
            after.bin,
            after.preferred_supplier,
        ),
    )


# Looked up per command class once: getattr with a default on a model without the field
# goes through pydantic's __getattr__ and an AttributeError, which cost the worker ~3 %
# of its CPU.
_reference_names: dict[type[AnyCommand], tuple[str, ...]] = {}


def reference_names(kind: type[AnyCommand]) -> tuple[str, ...]:
    """The cause references (REFERENCE_FIELDS) that commands of this class carry."""
    names = _reference_names.get(kind)
    if names is None:
        fields = kind.model_fields
        names = _reference_names[kind] = tuple(n for n in REFERENCE_FIELDS if n in fields)
    return names


def references_of(command: AnyCommand) -> CauseReferences:
    """The references a command names (the same as its events' cause)."""
    names = reference_names(type(command))
    if not names:
        return NO_REFERENCES
    return CauseReferences(**{n: getattr(command, n) for n in names})


# A tracked position's holdings as the ledger's movements give them: id -> (on_hand, picked).
Held = dict[str, tuple[int, int]]


@dataclass(frozen=True, slots=True)
class Projection:
    quantities: LedgerQuantities
    problems: tuple[str, ...]
    holdings: Held = field(default_factory=dict)


def fold_movements(held: Held, moved: Iterable[Movement]) -> None:
    """Apply one entry's movements to `held` (holdings that reach zero are dropped)."""
    for m in moved:
        on_hand, picked = held.get(m.id, (0, 0))
        on_hand, picked = on_hand + m.on_hand, picked + m.picked
        if on_hand:
            held[m.id] = (on_hand, picked)
        else:
            held.pop(m.id, None)


def project(entries: Iterable[LedgerEntry]) -> Projection:
    """Fold one position's entries (in version order) from zero, checking each step."""
    state = LedgerQuantities()
    problems: list[str] = []
    held: Held = {}
    for entry in entries:
        fold_movements(held, entry.movements)
        if entry.version != state.version + 1:
            problems.append(f"version {entry.version} follows {state.version}")
        state = LedgerQuantities(
            **{
                name: getattr(state, name) + getattr(entry.deltas, name) for name in QUANTITY_FIELDS
            },
            version=entry.version,
        )
        if state != entry.after:
            problems.append(
                f"version {entry.version}: deltas give {state}, entry says {entry.after}"
            )
    return Projection(state, tuple(problems), held)


def holding_differences(projected: Held, stored: Held) -> list[str]:
    """What differs between the holdings the ledger gives and those stored."""
    return [
        f"holding {hid}: ledger {projected.get(hid, (0, 0))}, position {stored.get(hid, (0, 0))}"
        " (on_hand, picked)"
        for hid in sorted(projected.keys() | stored.keys())
        if projected.get(hid, (0, 0)) != stored.get(hid, (0, 0))
    ]


def differences(projected: LedgerQuantities, stored: LedgerQuantities | None) -> list[str]:
    """What differs between a projected and a stored position, field by field."""
    if stored is None:
        return ["position missing"] if projected.version else []
    return [
        f"{name}: ledger {getattr(projected, name)}, position {getattr(stored, name)}"
        for name in (*QUANTITY_FIELDS, "version")
        if getattr(projected, name) != getattr(stored, name)
    ]


def as_of(entries: Iterable[LedgerEntry], moment: datetime) -> LedgerQuantities:
    """The quantities after the last change (in version order) that occurred by `moment`."""
    return holdings_as_of(entries, moment)[0]


def holdings_as_of(
    entries: Iterable[LedgerEntry], moment: datetime
) -> tuple[LedgerQuantities, Held]:
    """The quantities and holdings after the last change that occurred by `moment`."""
    result = LedgerQuantities()
    held: Held = {}
    for entry in entries:
        if entry.occurred_at <= moment:
            result = entry.after
            fold_movements(held, entry.movements)
    return result, held
