"""The stock ledger: one append-only entry per applied position change.

Positions are a projection of the ledger: folding a position's entries in version
order from zero gives its quantities. `project` does that fold and `differences`
compares the result with a stored position, so drift between the two is found.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from stockworker.domain.outcome import PositionChange
from stockworker.domain.valuation import ZERO

QUANTITY_FIELDS = ("on_hand", "reserved", "picked", "on_order", "back_ordered", "stock_value")


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


def _quantities(change_side: object, version: int) -> LedgerQuantities:
    return LedgerQuantities(
        **{name: getattr(change_side, name) for name in QUANTITY_FIELDS}, version=version
    )


def ledger_entry(
    change: PositionChange,
    command_id: UUID,
    command_type: str,
    occurred_at: datetime,
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
            **{name: getattr(after, name) - getattr(before, name) for name in QUANTITY_FIELDS}
        ),
        after=_quantities(after, after.version),
    )


@dataclass(frozen=True, slots=True)
class Projection:
    quantities: LedgerQuantities
    problems: tuple[str, ...]


def project(entries: Iterable[LedgerEntry]) -> Projection:
    """Fold one position's entries (in version order) from zero, checking each step."""
    state = LedgerQuantities()
    problems: list[str] = []
    for entry in entries:
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
    return Projection(state, tuple(problems))


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
    result = LedgerQuantities()
    for entry in entries:
        if entry.occurred_at <= moment:
            result = entry.after
    return result
