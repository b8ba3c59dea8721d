"""What deciding a command yields: an Outcome (changes to apply) or a Rejection (a reason)."""

from __future__ import annotations

from dataclasses import dataclass

from stockworker.contract.codes import RejectionCode
from stockworker.domain.catalog import Item, Location
from stockworker.domain.position import Position
from stockworker.domain.purchasing import PoLine


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str
    code: str


@dataclass(frozen=True, slots=True)
class Rejection:
    code: RejectionCode
    message: str
    field_errors: tuple[FieldError, ...] = ()
    # The version of the position the rejection is about, when there is one.
    current_version: int | None = None


@dataclass(frozen=True, slots=True)
class PositionChange:
    """An accepted command's effect on one position; `reason` is recorded as its cause."""

    before: Position
    after: Position
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class PoLineChange:
    before: PoLine | None
    after: PoLine


@dataclass(frozen=True, slots=True)
class Outcome:
    """Everything an accepted command changes, applied together or not at all."""

    positions: tuple[PositionChange, ...] = ()
    po_line: PoLineChange | None = None
    location: Location | None = None
    item: Item | None = None


Decision = Outcome | Rejection
